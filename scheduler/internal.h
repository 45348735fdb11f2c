/* internal.h: structures shared by the files of scheduler/ (pool.c, future.c, wait.c, map.c,
 * record.c, mpool.c, imap.c, deque.c).
 * Nothing here is public.
 *
 * Lock order (outer first): future.mu -> waiter.mu -> pool.mu. No lock is held while user code
 * (tasks, done-callbacks) runs. */
#ifndef KILN_SCHED_INTERNAL_H
#define KILN_SCHED_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base.h"
#include "kiln/sched.h"

/* ---- the work-stealing deque (deque.c) -------------------------------------------------------
 * A Chase-Lev deque of void * items, one per worker.
 * Owner (one thread): kiln__deque_push, kiln__deque_pop. Thieves (any thread): kiln__deque_steal.
 * Algorithm: Chase & Lev, "Dynamic circular work-stealing deque" (SPAA 2005), with the C11 memory
 * orders of Lê, Pop, Cohen, Zappa Nardelli, "Correct and efficient work-stealing for weak memory
 * models" (PPoPP 2013). The array grows; old arrays are kept until kiln__deque_fini because a thief
 * may still be reading one. */
typedef struct kiln__deque_array {
  int64_t size;                   /* a power of two */
  struct kiln__deque_array *prev; /* older arrays, freed at fini */
  _Atomic(void *) buf[];
} kiln__deque_array;

typedef struct kiln__deque {
  _Alignas(64) _Atomic int64_t top;    /* thieves' end; separate cache line from bottom */
  _Alignas(64) _Atomic int64_t bottom; /* owner's end */
  _Atomic(kiln__deque_array *) array;
} kiln__deque;

#define KILN__DEQUE_EMPTY ((void *)0)
#define KILN__DEQUE_ABORT ((void *)1) /* lost a race with another thief: try again */

int kiln__deque_init(kiln__deque *d, int64_t capacity); /* 0 or KILN_ENOMEM */
void kiln__deque_fini(kiln__deque *d);
int kiln__deque_push(kiln__deque *d, void *item); /* owner; 0 or KILN_ENOMEM */
void *kiln__deque_pop(kiln__deque *d);            /* owner; item or EMPTY */
void *kiln__deque_steal(kiln__deque *d);          /* any; item, EMPTY or ABORT */

/* Future states: the low 3 bits of kiln_future.state. COMPLETING is a private claim: the thread
 * that moved the future there alone writes code/value/message, then publishes the final state. */
enum {
  KILN__PENDING = 0,
  KILN__RUNNING = 1,
  KILN__COMPLETING = 2,
  KILN__FINISHED = 3,
  KILN__CANCELLED = 4,
  KILN__STATE_MASK = 7,
  KILN__HAS_LISTENERS = 8 /* set (under mu) once a listener is queued: publish must drain */
};

/* A thread waiting on something. An external thread sleeps on cv; a worker of `pool` sleeps in
 * its pool (and runs tasks), so notify wakes that pool. One waiting thread at a time. */
typedef struct kiln__waiter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  kiln_pool *pool; /* guarded by mu */
  /* guarded by mu: set while a pool fiber waits here (fiber/task.c); notify then calls
   * wake(wake_arg) under mu instead of waking a thread */
  void (*wake)(void *wake_arg);
  void *wake_arg;
} kiln__waiter;

enum { KILN__L_CALLBACK, KILN__L_DEPENDENT, KILN__L_WAITER };

typedef struct kiln__listener {
  struct kiln__listener *next;
  int kind;
  bool heap;    /* freed after use (callbacks); dependents and waiters are owned elsewhere */
  size_t index; /* dependents: which dependency of the dependent this is */
  union {
    struct {
      kiln_done_fn fn;
      void *arg;
    } cb;
    struct kiln_future *dependent;
    kiln__waiter *waiter;
  } u;
} kiln__listener;

/* A future, and for tasks the task record too.
 * Invariants: code/value/message/value_free are written only by the thread that claimed the
 * future (RUNNING or COMPLETING) and read only after an acquire load sees a done state.
 * refs counts the caller's references plus one "queue" reference while a task is not yet run. */
struct kiln_future {
  _Atomic uint32_t state;
  _Atomic uint32_t refs;
  int code;
  void *value;
  void (*value_free)(void *);
  char *message;
  /* task part (pool == NULL for promises) */
  kiln_task_fn fn;
  void *arg;
  kiln_pool *pool;
  bool counted;             /* in pool.outstanding (see pool.c, "Shutdown and lifetime") */
  bool fiber;               /* a pool fiber's own future (fiber/task.c): arg is the fiber */
  _Atomic size_t deps_left; /* dependencies not yet done, plus one while submit_after registers */
  size_t ndeps;
  kiln__listener *dep_nodes; /* ndeps nodes: inline_nodes or a heap array */
  kiln__listener inline_nodes[2];
  /* listeners, in the order added; guarded by mu */
  pthread_mutex_t mu;
  kiln__listener *head, *tail;
  struct kiln_future *next;    /* injection queue, record caches */
  struct kiln_future *cascade; /* private worklist of publish() */
  struct kiln__cache *cache;   /* the record cache this record belongs to (record.c); NULL: none */
};

/* Thread-local state of the calling thread. */
typedef struct kiln__worker kiln__worker;
typedef struct kiln__cache kiln__cache;
typedef struct kiln__tls {
  kiln__worker *worker; /* NULL outside pools */
  kiln_future *task;    /* the task running now on this thread, if any */
  char *fail_message;   /* set by kiln_task_fail during the task */
  void (*result_free)(void *);
  bool bypass_ok;     /* publishing the task this worker just ran: see kiln__schedule_ready */
  kiln__cache *cache; /* this thread's record cache (record.c), NULL until its first record */
} kiln__tls;
extern _Thread_local kiln__tls kiln__self;


/* waiter */
void kiln__waiter_init(kiln__waiter *w);
void kiln__waiter_fini(kiln__waiter *w);
void kiln__waiter_notify(kiln__waiter *w);
/* Waits until pred(ctx) or the deadline; 0 or KILN_ETIMEDOUT. Inside a worker it runs tasks. */
int kiln__wait(kiln__waiter *w, bool (*pred)(void *), void *ctx, double deadline);

/* records (record.c): any thread; kiln__future_free once the last reference is gone */
kiln_future *kiln__future_alloc(void);
void kiln__future_free(kiln_future *f);

/* futures (future.c) */
bool kiln__is_done(uint32_t state);
bool kiln__claim(kiln_future *f, uint32_t allowed_states_mask);
void kiln__publish(kiln_future *f, uint32_t from, uint32_t final);
void kiln__fail_claimed(kiln_future *f, int code, char *message); /* message is taken */
int kiln__add_listener(kiln_future *f, kiln__listener *l);        /* 1 added, 0 already done */
void kiln__remove_listener(kiln_future *f, kiln__listener *l);
bool kiln__remove_callback(kiln_future *f, kiln_done_fn fn, void *arg);
char *kiln__vformat(const char *fmt, va_list ap);
char *kiln__format(const char *fmt, ...);
char *kiln__dependency_message(kiln_future *dep, size_t index, size_t ndeps);

/* pool (pool.c) */
void kiln__schedule(kiln_future *t); /* a ready task: queue it (takes the queue ref) */
/* A dependent made ready by a completion: like kiln__schedule, but while a worker publishes the
 * task it has just run, the first such dependent is kept to run next on that worker (task
 * bypass: no deque push, no wake-up, no steal), as a continuation. */
void kiln__schedule_ready(kiln_future *t);
void kiln__task_done(kiln_pool *p);     /* accounting when a task future is done */
void kiln__pool_wake_all(kiln_pool *p); /* caller keeps p alive */
int kiln__help_until(kiln__worker *w, bool (*pred)(void *), void *ctx, double deadline);
kiln_pool *kiln__worker_pool(kiln__worker *w);
/* Runs queued tasks of w's pool while pred(ctx) is false and some can be found (spinning a
 * little when none), without registering anything: the cheap first phase of a wait inside a
 * task. true once pred holds; false when out of work or past the deadline. */
bool kiln__help_briefly(kiln__worker *w, bool (*pred)(void *), void *ctx, double deadline);
/* Inside a worker: its own deque is empty, so an idle thief would find nothing of it to take.
 * Lazy binary splitting (parallel_for) splits only then. false outside pools. */
bool kiln__deque_drained(void);
int kiln__pool_accepting(kiln_pool *p); /* 0, KILN_ESHUTDOWN or KILN_EBROKEN: would submit work? */
/* How many of p's workers are inside the sleep protocol now (a snapshot, for tests). */
int kiln__pool_sleepers(kiln_pool *p);
int kiln__submit_internal(kiln_pool *p, kiln_future *const *deps, size_t ndeps, kiln_task_fn fn,
                          void *arg, bool internal, kiln_future **out);

/* pool fibers (fiber/task.c; see include/kiln/fiber.h). The hooks the scheduler calls:
 * kiln__ftask_run: run_task hands it every fiber record it pops; refuse is 0, KILN_EBROKEN or
 * KILN_ECANCELLED (the pool would fail or cancel an unstarted task). It starts or resumes the
 * fiber, or finishes an unstarted one that must not run. The caller keeps the queue reference.
 * kiln__ftask_suspendable: the calling code is a pool fiber's own, which may suspend (waits
 * then suspend it instead of running tasks on its stack). kiln__ftask_wait: kiln__wait for it. */
void kiln__ftask_run(kiln_future *t, int refuse);
bool kiln__ftask_suspendable(void);
int kiln__ftask_wait(kiln__waiter *w, bool (*pred)(void *), void *ctx, double deadline);
/* kiln__ftask_keep_kill: a kill that a kiln_await of the calling pool fiber took was not
 * reported to its caller; it is delivered again at the fiber's next await or sleep. */
void kiln__ftask_keep_kill(void);
/* pool.c, for fiber/task.c: submits a fiber record (always counted in outstanding: a suspended
 * fiber is in no queue, and shutdown(wait) must wait for it); queues a started fiber again
 * (t holds a new queue reference; fifo: behind the queued work, through the injection queue). */
int kiln__submit_fiber(kiln_pool *p, void *fiber, kiln_future **out);
void kiln__schedule_fiber(kiln_future *t, bool fifo);
/* A thread that wakes fibers in bursts from outside the pool (the I/O engine's completion thread)
 * brackets a burst with begin/end (nestable): the fibers it wakes meanwhile reach their pool's
 * injection queue together at the end, under one lock and one signal. flush queues them at once;
 * kiln__wait calls it, so that a thread never waits on fibers whose wake it holds back. */
void kiln__wake_batch_begin(void);
void kiln__wake_batch_end(void);
void kiln__wake_batch_flush(void);

#endif
