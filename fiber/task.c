/* task.c: pool fibers (gevent's greenlets on kiln's work-stealing pool): kiln_fiber_spawn,
 * kiln_await, kiln_yield, kiln_sleep, kiln_fiber_kill, and the hooks through which the
 * scheduler's waits suspend a pool fiber instead of blocking its worker.
 *
 * A pool fiber is a task record of the pool (its own future, marked `fiber`) whose arg is a
 * kiln__pfiber. Whenever a worker pops the record, run_task hands it to kiln__ftask_run, which
 * "drives" the fiber: it swaps from the worker's stack into the fiber's and back when the fiber
 * suspends or ends. A suspended fiber is in no queue; its record stays RUNNING and counted in
 * the pool's outstanding work (so shutdown(wait) waits for it). Waking it queues the record
 * again (on the waker's deque when the waker is a worker of the pool, else through the injection
 * queue), so the fiber resumes on whichever worker pops or steals it: M:N.
 *
 * The lost wake-up (a completion that fires on another thread while the fiber is still switching
 * out) is ruled out as in Go's gopark, with one atomic word, `wstate`: RUN (running, or queued
 * to run), NOTIFIED (a wake came while it was not parked), PARKED. The fiber never parks itself:
 * it stores RUN, checks its condition, and switches to the worker that drives it; only then, off
 * the fiber's stack, the worker moves wstate from RUN to PARKED with a CAS. A waker exchanges it
 * for NOTIFIED. If the waker finds PARKED, it queues the fiber; if the worker's CAS finds
 * NOTIFIED, the worker queues it at once. Either way exactly one of them queues it, and neither
 * touches the kiln__pfiber after that: the fiber may already run, end and be freed elsewhere.
 * A wake that finds RUN only leaves NOTIFIED, which makes the coming park fail (waits loop on
 * their condition: spurious wake-ups are harmless).
 *
 * Who may wake a fiber, and why the kiln__pfiber is alive then: a waiter it waits on (the wake
 * runs under the waiter's lock, which the fiber takes to clear the wake before its wait returns);
 * its timer (fire runs under the timer lock; the fiber cancels the timer before going on); a
 * kill (under the record's lock, where record->arg is cleared before the kiln__pfiber is freed).
 *
 * Thread-local state and migration: a fiber's code may resume on another thread than it left.
 * Code on a fiber's stack here reads thread-local state only through small functions that are
 * never inlined (running(), the scheduler's own functions), after a switch, so that no address
 * of a thread-local variable computed on the old thread is used on the new one. The worker side
 * (drive) never changes thread. User code has the same rule: see include/kiln/fiber.h.
 *
 * Sanitizers: ASan's start/finish_switch_fiber take the bounds of the stack switched to; a
 * fiber's driver's bounds are learned at each resume (finish_switch_fiber on the fiber side), so
 * they follow migration. TSan gets a fiber per pool fiber; a switch back goes to whatever TSan
 * fiber the driver ran on. Both switch with synchronisation, and the queueing in between is
 * ordinary atomics and locks, so TSan sees the order of a fiber's steps across threads.
 *
 * Lock order: record.mu -> waiter.mu -> timer.mu -> pool.mu (notify queues the fiber under any
 * of the first three). */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fiber_internal.h"
#include "internal.h"

#ifdef KILN__FIBER_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef KILN__FIBER_TSAN
#include <sanitizer/tsan_interface.h>
#endif

enum { MIN_STACK = 16 * 1024 };

/* Why a fiber switched back to its driver. */
enum { PARK_WAIT = 1, PARK_YIELD, PARK_EXIT };

/* kiln__pfiber.wstate */
enum { RUN, NOTIFIED, PARKED };

typedef struct kiln__pfiber {
  /* First member: if greenlets created inside still hold it when the fiber ends, fiber.c frees
   * this record as a kiln_fiber (see finish). gl is kiln_fiber_current() inside the fiber; its sp
   * is the fiber's saved stack pointer, its stack the fiber's stack. */
  kiln_fiber gl;
  kiln_fiber back;   /* the driving worker's context during a drive: sp, sanitizer state */
  kiln_future *task; /* the fiber's own future; the fiber holds a reference until it ends */
  kiln_task_fn fn;
  void *arg;
  size_t stack_size;
  int park;           /* PARK_*: written by the fiber before it switches back, read by its driver */
  _Atomic int wstate; /* RUN, NOTIFIED, PARKED (see the top of the file) */
  _Atomic bool killed;     /* a kill not yet delivered to an await or sleep */
  _Atomic bool was_killed; /* killed at least once: its end with KILN_ECANCELLED is a cancel */
  bool wake_fifo;     /* how a wake queues it: set by the fiber before it waits, read by the waker
                   * that finds PARKED (which orders it) */
  char *fail_message; /* kiln_task_fail's message and the result destructor while */
  void (*result_free)(void *); /* the fiber is switched out (the thread-local ones meanwhile) */
  int code;
  void *value;
  kiln__timer timer;
} kiln__pfiber;

/* The pool fiber whose driver runs on this thread, innermost first (drive nests when a task
 * helping in a wait runs another fiber). */
static _Thread_local kiln__pfiber *tl_running;

/* The pool fiber whose own code is running now and may suspend, or NULL when the code running
 * is: no pool fiber's; a task that a pinned fiber's (helping) wait runs on its stack; a greenlet
 * created inside a pool fiber (it must stay on this thread); or a pool fiber that has greenlets
 * still alive (pinned to this thread until they are destroyed). Never inlined: it reads
 * thread-local state afresh after a switch. */
__attribute__((noinline)) static kiln__pfiber *running(void) {
  kiln__pfiber *pf = tl_running;
  __asm__ volatile("" ::: "memory"); /* not pure or const for the optimiser */
  if (!pf || kiln__self.task != pf->task) return NULL;
  kiln__fiber_thread *th = kiln__fiber_thread_peek();
  if (!th || th->current != &pf->gl || pf->gl.refs > 1) return NULL;
  return pf;
}

bool kiln__ftask_suspendable(void) { return running() != NULL; }

/* ---- switching -------------------------------------------------------------------------------- */

/* The thread of a suspended pool fiber's record: no thread's (its tp is no thread pointer). */
static kiln__fiber_thread no_thread;

/* Fiber side: back to the driver, which acts on pf->park; returns when some worker drives the
 * fiber again (PARK_EXIT never returns). Touches only pf: the thread may differ afterwards. */
static void suspend(kiln__pfiber *pf, int park) {
  pf->park = park;
  /* Suspended by kiln__fiber_swap, the record must not be resumed by fiber.c's switch, whose
   * fast path takes any started fiber of the calling thread: while the fiber waits its record
   * belongs to no thread, so that a kiln_fiber_switch to it (its kiln_fiber_current() kept by
   * other code on the worker) is refused with KILN_ESTATE. An ending fiber keeps its thread:
   * greenlets that outlive it free the record through it (fiber.c). */
  if (park != PARK_EXIT) pf->gl.thread = &no_thread;
#ifdef KILN__FIBER_ASAN
  /* a dying fiber passes NULL, so that ASan frees its fake stack */
  __sanitizer_start_switch_fiber(park == PARK_EXIT ? NULL : &pf->gl.asan_fake, pf->back.asan_bottom,
                                 pf->back.asan_size);
#endif
#ifdef KILN__FIBER_TSAN
  __tsan_switch_to_fiber(pf->back.tsan, 0);
#endif
  kiln__fiber_swap(&pf->gl.sp, pf->back.sp, NULL);
#ifdef KILN__FIBER_ASAN
  __sanitizer_finish_switch_fiber(pf->gl.asan_fake, &pf->back.asan_bottom, &pf->back.asan_size);
#endif
}

/* The body of every pool fiber, entered through fiber.c's kiln__fiber_main (which learns the
 * driver's ASan bounds into the thread's `from`, set by drive to &pf->back). Never returns. */
static int pool_entry(void *arg, void *value, void **result) {
  (void)value;
  (void)result;
  kiln__pfiber *pf = arg;
  void *v = NULL;
  int code = pf->fn(pf->arg, &v);
  pf->code = code;
  pf->value = code == 0 ? v : NULL;
  suspend(pf, PARK_EXIT);
  abort(); /* unreachable: nothing drives an ended fiber */
}

static void resume(kiln__pfiber *pf, bool fifo) {
  kiln_future *t = pf->task;
  kiln_future_retain(t); /* the queue reference */
  kiln__schedule_fiber(t, fifo);
}

/* The wake of a waiting fiber, from any thread (see the top of the file for why pf is alive). */
static void notify(void *arg) {
  kiln__pfiber *pf = arg;
  /* acq_rel: acquire pairs with the CAS to PARKED (the fiber's writes before it parked, as
   * wake_fifo); release orders what the waker changed (the condition) before the fiber's next
   * look at wstate */
  if (atomic_exchange_explicit(&pf->wstate, NOTIFIED, memory_order_acq_rel) == PARKED)
    resume(pf, pf->wake_fifo);
}

static void timer_fire(kiln__timer *tm) { notify((char *)tm - offsetof(kiln__pfiber, timer)); }

/* Driver side, the fiber switched out to wait or yield. */
static void park(kiln__pfiber *pf) {
  if (pf->park == PARK_YIELD) {
    resume(pf, true); /* behind the work queued now, so that it runs first */
    return;
  }
  int expected = RUN;
  /* acq_rel: release publishes the fiber's state to the waker that finds PARKED; acquire (on
   * failure too) pairs with the waker's exchange */
  if (!atomic_compare_exchange_strong_explicit(&pf->wstate, &expected, PARKED, memory_order_acq_rel,
                                               memory_order_acquire))
    resume(pf, pf->wake_fifo);
}

/* The record will not run its fiber any more: clears the kill's way to pf, frees pf. */
static void detach(kiln_future *t) {
  pthread_mutex_lock(&t->mu);
  t->arg = NULL;
  pthread_mutex_unlock(&t->mu);
}

/* Driver side, the fiber has ended: its stack goes to this thread's pool, its result to its
 * future. */
static void finish(kiln_future *t, kiln__pfiber *pf, kiln__fiber_thread *th) {
  kiln__stack_put(th, &pf->gl.stack, false);
#ifdef KILN__FIBER_TSAN
  __tsan_destroy_fiber(pf->gl.tsan);
  pf->gl.tsan = NULL;
#endif
  detach(t);
  t->code = pf->code;
  if (pf->code == 0) {
    t->value = pf->value;
    t->value_free = pf->result_free;
    free(pf->fail_message);
  } else {
    t->message = pf->fail_message;
  }
  uint32_t final =
      pf->code == KILN_ECANCELLED && atomic_load_explicit(&pf->was_killed, memory_order_relaxed)
          ? KILN__CANCELLED
          : KILN__FINISHED;
  /* Greenlets created inside and never destroyed still point at gl as their parent: fiber.c
   * frees the record when the last of them goes (gl is the first member). */
  pf->gl.state = KILN__FIBER_DEAD;
  pf->gl.released = true;
  if (--pf->gl.refs == 0) free(pf);
  kiln__self.bypass_ok = kiln__self.worker != NULL; /* a continuation runs next, as in run_task */
  kiln__publish(t, KILN__RUNNING, final);
  kiln__self.bypass_ok = false;
  kiln_future_release(t); /* the fiber's own reference */
}

/* Worker side: runs the fiber until it switches back, then parks or finishes it. */
static void drive(kiln_future *t, kiln__pfiber *pf) {
  kiln__fiber_thread *th = kiln__fiber_thread_self();
  kiln__guard_thread_init(th);
  kiln_fiber *prev = th->current;
  kiln__pfiber *prev_running = tl_running;
  kiln_future *saved_task = kiln__self.task;
  char *saved_message = kiln__self.fail_message;
  void (*saved_free)(void *) = kiln__self.result_free;
  kiln__self.task = t;
  kiln__self.fail_message = pf->fail_message;
  kiln__self.result_free = pf->result_free;
  tl_running = pf;
  pf->gl.thread = th;
  th->current = &pf->gl;
#if defined(KILN__FIBER_ASAN) || defined(KILN__FIBER_TSAN)
  /* A first drive enters kiln__fiber_main, which learns the bounds of the stack it came from
   * into the thread's `from` (its transfer argument is not used): the driver's, so that the
   * fiber's first suspend switches back to them. */
  th->from = &pf->back;
#endif
#ifdef KILN__FIBER_ASAN
  void *fake = NULL;
  __sanitizer_start_switch_fiber(&fake, pf->gl.asan_bottom, pf->gl.asan_size);
#endif
#ifdef KILN__FIBER_TSAN
  pf->back.tsan = __tsan_get_current_fiber();
  __tsan_switch_to_fiber(pf->gl.tsan, 0);
#endif
  kiln__fiber_swap(&pf->back.sp, pf->gl.sp, &pf->back);
#ifdef KILN__FIBER_ASAN
  __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
  th->current = prev;
  tl_running = prev_running;
  pf->fail_message = kiln__self.fail_message;
  pf->result_free = kiln__self.result_free;
  kiln__self.task = saved_task;
  kiln__self.fail_message = saved_message;
  kiln__self.result_free = saved_free;
  if (pf->park == PARK_EXIT) finish(t, pf, th);
  else park(pf);
}

/* A stack and a first frame, on the worker that starts the fiber. 0 or KILN_ENOMEM. */
static int start(kiln__pfiber *pf, kiln__fiber_thread *th) {
  int rc = kiln__stack_get(th, pf->stack_size, &pf->gl.stack);
  if (rc) return rc;
  kiln_fiber *gl = &pf->gl;
  size_t page = kiln__page_size();
  gl->stack_size = gl->stack.map_size - page;
  gl->sp = kiln__fiber_init_stack(gl->stack.map + gl->stack.map_size);
  gl->state = KILN__FIBER_STARTED;
  gl->refs = 1; /* pf's own; each greenlet created inside adds one */
  gl->fn = pool_entry;
  gl->arg = pf;
#ifdef KILN__FIBER_ASAN
  gl->asan_bottom = gl->stack.map + page;
  gl->asan_size = gl->stack_size;
#endif
#ifdef KILN__FIBER_TSAN
  gl->tsan = __tsan_create_fiber(0);
#endif
  return 0;
}

/* An unstarted fiber that will never run: its future is done (failed or cancelled). */
static void drop(kiln_future *t, kiln__pfiber *pf) {
  detach(t);
  free(pf);
  kiln_future_release(t); /* the fiber's own reference */
}

void kiln__ftask_run(kiln_future *t, int refuse) {
  kiln__pfiber *pf = t->arg;
  uint32_t st = atomic_load_explicit(&t->state, memory_order_acquire) & KILN__STATE_MASK;
  if (st == KILN__RUNNING) {
    drive(t, pf);
    return;
  }
  if (st == KILN__PENDING)
    pf->task = t; /* before set_running publishes RUNNING: a kill that
                                          * sees RUNNING reads pf->task */
  if (st == KILN__PENDING && refuse == 0 && kiln_promise_set_running(t)) {
    if (start(pf, kiln__fiber_thread_self()) == 0) {
      drive(t, pf);
      return;
    }
    if (kiln__claim(t, 1u << KILN__RUNNING))
      kiln__fail_claimed(t, KILN_ENOMEM, kiln__format("no memory for the fiber's stack"));
  } else if (refuse == KILN_EBROKEN && kiln__claim(t, 1u << KILN__PENDING)) {
    kiln__fail_claimed(t, KILN_EBROKEN,
                       kiln__format("the pool is broken: a worker initializer failed"));
  } else {
    kiln_future_cancel(t); /* a cancelling pool; or a kill got there first */
  }
  drop(t, pf);
}

/* ---- waiting ---------------------------------------------------------------------------------- */

/* Fiber side: suspends until pred(ctx) (NULL: never), the deadline (KILN_ETIMEDOUT; 0 when pred
 * is NULL, as for a sleep), or, if killable, a kill (KILN_ECANCELLED, consumed). Whatever the
 * fiber waits on must call notify(pf) when pred may have become true. */
static int wait_loop(kiln__pfiber *pf, bool (*pred)(void *), void *ctx, double deadline,
                     bool killable) {
  for (;;) {
    /* A wake from now on makes the park fail. An exchange, not a store: a waker's exchange is
     * either after this one in wstate's order (it finds RUN or PARKED and is not lost), or
     * before it, and then this acquire reads its release, so the condition it set is seen. */
    (void)atomic_exchange_explicit(&pf->wstate, RUN, memory_order_acq_rel);
    if (pred && pred(ctx)) return 0;
    if (killable && atomic_exchange_explicit(&pf->killed, false, memory_order_acq_rel))
      return KILN_ECANCELLED;
    if (deadline != INFINITY) {
      if (kiln__now() >= deadline) return pred ? KILN_ETIMEDOUT : 0;
      pf->timer.deadline = deadline;
      int rc = kiln__timer_arm(&pf->timer);
      if (rc) return rc;
    }
    suspend(pf, PARK_WAIT);
    if (deadline != INFINITY) kiln__timer_cancel(&pf->timer);
  }
}

/* kiln_await's wake queues the fiber where the waker is (its deque, if it is a worker of the
 * pool: the fiber runs next there, as a continuation). The scheduler's waits (kiln_wait,
 * as_completed, ...) are woken by every completion of a set and look at the whole set each time:
 * their fiber is queued behind the work queued then (FIFO), so that a joinall of n fibers on one
 * worker wakes once when they have run, not n times. */
static int wait_on(kiln__pfiber *pf, kiln__waiter *w, bool (*pred)(void *), void *ctx,
                   double deadline, bool killable) {
  pf->wake_fifo = !killable;
  pthread_mutex_lock(&w->mu);
  w->wake = notify;
  w->wake_arg = pf;
  pthread_mutex_unlock(&w->mu);
  int rc = wait_loop(pf, pred, ctx, deadline, killable);
  pthread_mutex_lock(&w->mu); /* after this no wake through w can reach pf */
  w->wake = NULL;
  w->wake_arg = NULL;
  pthread_mutex_unlock(&w->mu);
  return rc;
}

int kiln__ftask_wait(kiln__waiter *w, bool (*pred)(void *), void *ctx, double deadline) {
  kiln__pfiber *pf = running();
  return wait_on(pf, w, pred, ctx, deadline, false);
}

static bool done_pred(void *f) { return kiln_future_done(f); }

static bool take_kill(kiln__pfiber *pf) {
  return atomic_exchange_explicit(&pf->killed, false, memory_order_acq_rel);
}

void kiln__ftask_keep_kill(void) {
  kiln__pfiber *pf = running();
  /* the fiber's own flag, set by itself: nothing to wake */
  if (pf) atomic_store_explicit(&pf->killed, true, memory_order_relaxed);
}

int kiln_await(kiln_future *f, double timeout, void **value) {
  if (value) *value = NULL;
  kiln__pfiber *pf = running();
  if (!pf) return kiln_future_result(f, timeout, value);
  if (take_kill(pf)) return KILN_ECANCELLED;
  if (!kiln_future_done(f)) {
    double deadline;
    int rc = kiln__deadline(timeout, &deadline);
    if (rc) return rc;
    if (timeout == 0) return KILN_ETIMEDOUT;
    kiln__waiter w;
    kiln__waiter_init(&w);
    kiln__listener node = {.kind = KILN__L_WAITER, .u.waiter = &w};
    if (kiln__add_listener(f, &node)) {
      rc = wait_on(pf, &w, done_pred, f, deadline, true);
      kiln__remove_listener(f, &node);
    }
    kiln__waiter_fini(&w);
    if (rc) return rc;
  }
  return kiln_future_result(f, 0, value);
}

int kiln_yield(void) {
  kiln__pfiber *pf = running();
  if (!pf) {
    sched_yield();
    return 0;
  }
  if (take_kill(pf)) return KILN_ECANCELLED;
  suspend(pf, PARK_YIELD);
  return 0;
}

int kiln_sleep_until(double deadline) {
  if (isnan(deadline)) return KILN_EINVAL;
  kiln__pfiber *pf = running();
  if (pf) {
    if (deadline <= kiln__now()) return kiln_yield();
    pf->wake_fifo = true; /* deadlines passed together wake in their order */
    return wait_loop(pf, NULL, NULL, deadline, true);
  }
  if (deadline <= kiln__now()) return 0;
  struct timespec ts;
  kiln__abs_timespec(deadline, &ts);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
  return 0;
}

int kiln_sleep(double seconds) {
  if (isnan(seconds)) return KILN_EINVAL;
  if (seconds <= 0) return running() ? kiln_yield() : 0;
  return kiln_sleep_until(kiln__now() + seconds);
}

/* ---- spawn and kill --------------------------------------------------------------------------- */

int kiln_fiber_spawn(kiln_pool *p, kiln_task_fn fn, void *arg, size_t stack_size,
                     kiln_future **out) {
  if (out) *out = NULL;
  if (!p || !fn) return KILN_EINVAL;
  if (stack_size == 0) stack_size = KILN_FIBER_STACK_DEFAULT;
  if (stack_size < MIN_STACK) stack_size = MIN_STACK;
  if (stack_size > SIZE_MAX / 2) return KILN_EINVAL;
  kiln__pfiber *pf = calloc(1, sizeof *pf);
  if (!pf) return KILN_ENOMEM;
  pf->fn = fn;
  pf->arg = arg;
  pf->stack_size = stack_size;
  pf->timer.fire = timer_fire;
  pf->timer.index = SIZE_MAX;
  kiln_future *t;
  int rc = kiln__submit_fiber(p, pf, &t);
  if (rc) {
    free(pf);
    return rc;
  }
  if (out) *out = t;
  else kiln_future_release(t);
  return 0;
}

int kiln_fiber_kill(kiln_future *f, bool wait, double timeout) {
  if (!f || !f->fiber) return KILN_EINVAL;
  if (isnan(timeout)) return KILN_EINVAL;
  if (!kiln_future_cancel(f)) { /* started: deliver it to its await or sleep */
    pthread_mutex_lock(&f->mu);
    kiln__pfiber *pf = f->arg;
    if (pf) {
      atomic_store_explicit(&pf->was_killed, true, memory_order_relaxed);
      atomic_store_explicit(&pf->killed, true, memory_order_seq_cst);
      notify(pf);
    }
    pthread_mutex_unlock(&f->mu);
  }
  if (!wait) return 0;
  kiln__pfiber *self = running();
  if (self && self->task == f) return KILN_ESTATE; /* it cannot wait for its own end */
  int rc = kiln_future_result(f, timeout, NULL);
  return rc == KILN_ETIMEDOUT ? rc : 0;
}
