/* pool.c: the work-stealing pool: workers, submission, the idle/sleep protocol, helping while
 * waiting, shutdown, and the multiprocessing.Pool-style calls.
 *
 * Each worker owns a Chase-Lev deque (deque.c): it pushes and pops at the bottom, idle workers
 * steal from the top of a random victim. Threads outside the pool submit through the injection
 * queue. Workers start lazily, one more whenever work is queued and no idle worker's credit is
 * left for it (see idle_credit).
 *
 * Task bypass: a dependent made ready by the completion of the task a worker has just run is kept
 * in that worker's `bypass` slot and run next (a continuation: no deque push, no wake-up, and no
 * steal that would bounce a chain between workers). A worker going back to a waiting task pushes
 * the slot onto its deque first, so a long task never hides ready work from thieves.
 *
 * Sleeping: an idle worker increments nsleepers, rechecks for work (under pool.mu), then waits on
 * work_cv until epoch changes. A pusher publishes its task, then a seq_cst fence, then reads
 * nsleepers: by this Dekker pair either the pusher sees the sleeper and wakes it (epoch++ and
 * signal under mu), or the sleeper sees the task. An idle pool blocks in pthread_cond_wait.
 * The pair is asymmetric where Linux has membarrier(2): a worker pushes its spawns millions of
 * times a second and goes to sleep rarely, so the sleeper pays for both sides with one
 * process-wide barrier (membarrier's private expedited command: every running thread of the
 * process executes a full memory barrier, one that is not running has passed one when it was
 * switched out) and the pusher's fence is only a compiler barrier; the fast-path/slow-path pairing
 * of the membarrier(2) manual page, as in liburcu and folly's asymmetric barriers.
 *
 * Shutdown and lifetime: `outstanding` counts the accepted tasks that could be pending outside
 * every deque: those submitted from outside the pool and those with dependencies. A task a worker
 * spawns with no dependencies goes straight onto its own deque and is not counted (two contended
 * atomics fewer per spawn): deques are drained before exit instead. A worker exits only when, under
 * mu, shutdown is set, outstanding is 0, no deque or injection queue holds work, and every other
 * worker is asleep or gone (`busy` false: it is cleared and set only under mu, around a top-level
 * sleep); a sleeping worker cannot push, so nothing can appear after that check. A worker counts
 * the counted tasks it completes in `ndone` and takes them from outstanding in one go before it
 * sleeps (flush_done): outstanding may count too many while that worker is awake, but an awake
 * worker blocks that exit check anyway, and shutdown(wait) returns only after every worker has
 * exited. A thread outside the pool counts its submission first and checks shutdown after (no
 * lock: with seq_cst on both sides, either it sees shutdown and takes its count back, or the exit
 * check sees the count). It takes a count back only under mu, and an uncounted task completed
 * from outside (a cancel) does not touch the pool at all, so a thread that completes the last
 * task from outside cannot touch a freed pool: the pool is freed after its workers are joined,
 * and they exit only after that thread has unlocked mu.
 *
 * Lock order: mu is the innermost lock (see internal.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

enum { SPIN_ROUNDS = 64 };

struct kiln__worker {
  kiln__deque deque;
  kiln_pool *pool;
  int index;
  uint64_t rng;
  pthread_t thread;
  bool holds_credit;   /* owner only: this worker's idle credit is in pool.idle_credit */
  bool busy;           /* guarded by pool.mu: not in a top-level sleep (see "Shutdown") */
  kiln_future *bypass; /* owner only: the next task to run, set by kiln__schedule_ready */
  int64_t ndone;       /* owner only: counted tasks done here, not yet taken from outstanding */
};

struct kiln_pool {
  int threads;
  int (*init)(void *);
  void *init_arg;
  char name[16];
  void *mem, *workers_mem; /* the allocations behind the pool and `workers` */
  kiln__worker *workers;   /* threads entries; the first `started` are running */
  _Atomic int started;     /* written under mu */
  /* Idle credits (Python's _idle_semaphore): a worker adds one when it goes idle and takes one
   * back when it leaves idle, if any is left; a submission consumes one instead of starting a
   * thread. So a burst of k submissions meets at most as many credits as workers were idle, and
   * starts threads for the rest: blocking tasks never queue behind each other while the pool may
   * still grow (rules EXE-03, POOL-01). Only the thread-start heuristic reads it. */
  _Alignas(64) _Atomic int idle_credit;     /* own cache line: changed at every task's end */
  _Alignas(64) _Atomic int64_t outstanding; /* accepted tasks not yet done; own cache line */
  /* read on every submission and wake-up, rarely written */
  _Alignas(64) _Atomic int nsleepers; /* workers inside the sleep protocol */
  _Atomic bool shutdown;              /* no new submissions (shutdown, close, terminate) */
  _Atomic bool cancelling;            /* cancel tasks instead of running them */
  _Atomic bool broken;                /* an initializer failed */
  bool closed, terminated, joined;    /* guarded by mu */
  int nexited;                        /* guarded by mu: workers done touching the pool */
  bool reaped;                        /* guarded by mu: the joiner has joined every thread */
  pthread_mutex_t mu;     /* inject queue, sleeping, thread start, outside completions */
  pthread_cond_t work_cv; /* workers sleep here */
  pthread_cond_t done_cv; /* shutdown(wait) sleeps here */
  uint64_t epoch;         /* guarded by mu; bumped on every wake */
  kiln_future *inject_head, *inject_tail; /* guarded by mu */
  _Atomic size_t ninject;
};

_Thread_local kiln__tls kiln__self;

/* A child of fork() is no worker of any pool: fork copies the calling thread's kiln__self, but
 * not the pool's threads, so a process forked from inside a task would otherwise take itself for
 * a worker of its parent's pool (kiln_pool_current, helping waits, kiln_task_fail). Registered
 * with pthread_atfork once, by the first kiln_pool_create. The record cache stays: it is this
 * thread's own, copied whole. */
static void self_after_fork(void) { kiln__self = (kiln__tls){.cache = kiln__self.cache}; }

static pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;

static void register_atfork(void) { pthread_atfork(NULL, NULL, self_after_fork); }

/* ---- waking ------------------------------------------------------------------------------------ */

/* true once this process is registered for membarrier's private expedited command (see
 * "Sleeping"); cleared for good if a barrier ever fails (e.g. in a child of fork whose
 * registration did not carry over). Relaxed: a pusher that still reads true after it is cleared
 * is covered by bounded sleeps: the sleeper that cleared it, and every sleeper after it
 * (g_asym_failed), looks for work again every 10 ms (sleep_barrier). */
static _Atomic bool g_asym;
static _Atomic bool g_asym_failed; /* set for good by the sleeper that clears g_asym */
static pthread_once_t g_asym_once = PTHREAD_ONCE_INIT;

static void asym_register(void) {
  long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  bool ok = cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
            syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
  atomic_store_explicit(&g_asym, ok, memory_order_relaxed);
}

/* The pusher's half of the sleep Dekker pair, between publishing a task and reading nsleepers. */
static inline void push_barrier(void) {
  if (atomic_load_explicit(&g_asym, memory_order_relaxed))
    atomic_signal_fence(memory_order_seq_cst);    /* the sleeper's membarrier does the rest */
  else atomic_thread_fence(memory_order_seq_cst); /* Dekker with the sleeper's fence */
}

/* The sleeper's half, after its nsleepers++ and before it looks for work. false: the barrier
 * failed, so a pusher may have missed this sleeper: the caller sleeps for a bounded time only.
 * Every sleep that wake_one must be able to interrupt goes through here: a plain fence on the
 * sleeper's side alone no longer pairs with a pusher's compiler barrier. */
static bool sleep_barrier(void) {
  atomic_thread_fence(memory_order_seq_cst); /* Dekker with a fencing pusher */
  /* After a failure, every later sleep is bounded too: a pusher may still read the stale true
   * (relaxed) and pair a compiler barrier with this sleeper's plain fence. */
  if (!atomic_load_explicit(&g_asym, memory_order_relaxed))
    return !atomic_load_explicit(&g_asym_failed, memory_order_relaxed);
  if (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0) return true;
  atomic_store_explicit(&g_asym_failed, true, memory_order_relaxed);
  atomic_store_explicit(&g_asym, false, memory_order_relaxed); /* pushers fence from now on */
  return false;
}

static void wake_one(kiln_pool *p) {
  /* the task was published before; Dekker with the sleeper's nsleepers++ (see "Sleeping") */
  push_barrier();
  if (atomic_load_explicit(&p->nsleepers, memory_order_relaxed) == 0) return;
  pthread_mutex_lock(&p->mu);
  p->epoch++;
  pthread_cond_signal(&p->work_cv);
  pthread_mutex_unlock(&p->mu);
}

int kiln__pool_sleepers(kiln_pool *p) {
  return atomic_load_explicit(&p->nsleepers, memory_order_relaxed); /* a snapshot: orders nothing */
}

void kiln__pool_wake_all(kiln_pool *p) {
  pthread_mutex_lock(&p->mu);
  p->epoch++;
  pthread_cond_broadcast(&p->work_cv);
  pthread_cond_broadcast(&p->done_cv);
  pthread_mutex_unlock(&p->mu);
}

static void *worker_main(void *arg);

static bool idle_take(kiln_pool *p);

/* A worker gives its credit when it may soon look for work: before publishing a completion (a
 * thread woken by it may submit next, rule EXE-03) and when it goes idle. It keeps it across
 * the gap between the two, so that gap starts no thread. */
static void idle_enter(kiln__worker *w) {
  if (w->holds_credit) return;
  w->holds_credit = true;
  atomic_fetch_add_explicit(&w->pool->idle_credit, 1, memory_order_relaxed);
}

/* The worker has work again: it takes its credit back, unless a submission consumed it. */
static void idle_leave(kiln__worker *w) {
  if (!w->holds_credit) return;
  w->holds_credit = false;
  idle_take(w->pool);
}

/* Takes one credit if there is one. Relaxed: credits only steer when threads start; the task
 * itself is published by the queues, never through this counter. */
static bool idle_take(kiln_pool *p) {
  int c = atomic_load_explicit(&p->idle_credit, memory_order_relaxed);
  while (c > 0)
    if (atomic_compare_exchange_weak_explicit(&p->idle_credit, &c, c - 1, memory_order_relaxed,
                                              memory_order_relaxed))
      return true;
  return false;
}

/* Under mu. Starts one more worker if the pool may have more and no idle worker's credit is left
 * for this submission. */
static void maybe_start_locked(kiln_pool *p) {
  int started = atomic_load_explicit(&p->started, memory_order_relaxed);
  if (started >= p->threads || idle_take(p)) return;
  if (atomic_load_explicit(&p->shutdown, memory_order_relaxed) &&
      atomic_load_explicit(&p->outstanding, memory_order_relaxed) == 0)
    return;
  kiln__worker *w = &p->workers[started];
  w->busy = true;
  if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
    w->busy = false;
    return; /* run with the workers we have; with none, tasks wait for a later start */
  }
  atomic_store_explicit(&p->started, started + 1, memory_order_release);
}

static void maybe_start(kiln_pool *p) {
  if (atomic_load_explicit(&p->started, memory_order_acquire) >= p->threads) return;
  if (idle_take(p)) return;
  pthread_mutex_lock(&p->mu);
  maybe_start_locked(p);
  pthread_mutex_unlock(&p->mu);
}

/* ---- queues ------------------------------------------------------------------------------------ */

static bool own_worker(kiln_pool *p) { return kiln__self.worker && kiln__self.worker->pool == p; }

static void inject(kiln_pool *p, kiln_future *t);

/* Queues a task that holds its queue reference. */
static void enqueue(kiln_pool *p, kiln_future *t) {
  if (own_worker(p) && kiln__deque_push(&kiln__self.worker->deque, t) == 0) {
    wake_one(p);
    maybe_start(p);
    return;
  }
  inject(p, t);
}

/* Through the injection queue, behind what is queued there. */
static void inject(kiln_pool *p, kiln_future *t) {
  pthread_mutex_lock(&p->mu);
  t->next = NULL;
  if (p->inject_tail) p->inject_tail->next = t;
  else p->inject_head = t;
  p->inject_tail = t;
  atomic_fetch_add_explicit(&p->ninject, 1, memory_order_release);
  p->epoch++;
  pthread_cond_signal(&p->work_cv);
  maybe_start_locked(p);
  pthread_mutex_unlock(&p->mu);
}

/* Fibers woken by a thread that is no worker of their pool, while it batches its wakes (the I/O
 * engine's completion thread, over one reap of completions): queued here, then spliced into the
 * injection queue under one lock, with one signal, by kiln__wake_batch_end. The pool stays alive
 * meanwhile: the fibers are started work, which shutdown and destroy wait for. */
static _Thread_local struct {
  int depth;
  kiln_pool *pool;
  kiln_future *head, *tail;
  int n;
} tl_batch;

void kiln__wake_batch_begin(void) { tl_batch.depth++; }

void kiln__wake_batch_flush(void) {
  kiln_pool *p = tl_batch.pool;
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  if (p->inject_tail) p->inject_tail->next = tl_batch.head;
  else p->inject_head = tl_batch.head;
  p->inject_tail = tl_batch.tail;
  atomic_fetch_add_explicit(&p->ninject, (size_t)tl_batch.n, memory_order_release);
  p->epoch++;
  if (tl_batch.n > 1) pthread_cond_broadcast(&p->work_cv);
  else pthread_cond_signal(&p->work_cv);
  for (int i = 0; i < tl_batch.n && i < p->threads; i++) maybe_start_locked(p);
  pthread_mutex_unlock(&p->mu);
  tl_batch.pool = NULL;
  tl_batch.head = tl_batch.tail = NULL;
  tl_batch.n = 0;
}

void kiln__wake_batch_end(void) {
  if (--tl_batch.depth == 0) kiln__wake_batch_flush();
}

void kiln__schedule_fiber(kiln_future *t, bool fifo) {
  kiln_pool *p = t->pool;
  if (tl_batch.depth && !own_worker(p)) {
    if (tl_batch.pool != p) {
      kiln__wake_batch_flush();
      tl_batch.pool = p;
    }
    t->next = NULL;
    if (tl_batch.tail) tl_batch.tail->next = t;
    else tl_batch.head = t;
    tl_batch.tail = t;
    tl_batch.n++;
    return;
  }
  if (fifo) inject(p, t);
  else enqueue(p, t);
}

void kiln__schedule(kiln_future *t) {
  if ((atomic_load_explicit(&t->state, memory_order_acquire) & KILN__STATE_MASK) != KILN__PENDING) {
    kiln_future_release(t); /* failed or cancelled while waiting: nothing to run */
    return;
  }
  enqueue(t->pool, t);
}

void kiln__schedule_ready(kiln_future *t) {
  kiln__worker *w = kiln__self.worker;
  if (kiln__self.bypass_ok && w && w->pool == t->pool && !w->bypass &&
      (atomic_load_explicit(&t->state, memory_order_acquire) & KILN__STATE_MASK) == KILN__PENDING) {
    w->bypass = t; /* find_task hands it out first, right after this publish */
    return;
  }
  kiln__schedule(t);
}

/* Back to a waiting task (which may run for long): a kept continuation goes where thieves can
 * take it. */
static void flush_bypass(kiln__worker *w) {
  kiln_future *t = w->bypass;
  if (!t) return;
  w->bypass = NULL;
  enqueue(w->pool, t);
}

static kiln_future *pop_inject(kiln_pool *p) {
  /* acquire: pairs with the release increment in enqueue */
  if (atomic_load_explicit(&p->ninject, memory_order_acquire) == 0) return NULL;
  pthread_mutex_lock(&p->mu);
  kiln_future *t = p->inject_head;
  if (t) {
    p->inject_head = t->next;
    if (!p->inject_head) p->inject_tail = NULL;
    atomic_fetch_sub_explicit(&p->ninject, 1, memory_order_relaxed);
  }
  pthread_mutex_unlock(&p->mu);
  return t;
}

static uint64_t next_rand(kiln__worker *w) {
  w->rng ^= w->rng << 13;
  w->rng ^= w->rng >> 7;
  w->rng ^= w->rng << 17;
  return w->rng;
}

static kiln_future *steal_any(kiln__worker *w) {
  kiln_pool *p = w->pool;
  int n = atomic_load_explicit(&p->started, memory_order_acquire);
  if (n <= 1) return NULL;
  int start = (int)(next_rand(w) % (uint64_t)n);
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < n; i++) {
      kiln__worker *v = &p->workers[(start + i) % n];
      if (v == w) continue;
      void *x = kiln__deque_steal(&v->deque);
      if (x == KILN__DEQUE_ABORT) {
        round = -1;
        continue;
      }
      if (x) return x;
    }
    if (round >= 0) break;
  }
  return NULL;
}

static kiln_future *find_task(kiln__worker *w) {
  kiln_future *t = w->bypass;
  if (t) {
    w->bypass = NULL;
    return t;
  }
  t = kiln__deque_pop(&w->deque);
  if (!t) t = pop_inject(w->pool);
  if (!t) t = steal_any(w);
  return t;
}

/* Under mu: is there any queued work a sleeper should get up for? */
static bool has_work_locked(kiln_pool *p) {
  if (p->inject_head) return true;
  int n = atomic_load_explicit(&p->started, memory_order_relaxed);
  for (int i = 0; i < n; i++) {
    kiln__deque *d = &p->workers[i].deque;
    if (atomic_load_explicit(&d->top, memory_order_acquire) <
        atomic_load_explicit(&d->bottom, memory_order_acquire))
      return true;
  }
  return false;
}

/* ---- running tasks ----------------------------------------------------------------------------- */

/* A worker's completions are taken from outstanding in one go, before it sleeps: until then
 * outstanding only counts too many, and nothing waits for it to drop while that worker is
 * awake (see "Shutdown and lifetime"). */
static void flush_done(kiln__worker *w) {
  int64_t n = w->ndone;
  if (n == 0) return;
  w->ndone = 0;
  kiln_pool *p = w->pool;
  /* seq_cst, with shutdown's seq_cst store and later load of outstanding: either this thread
   * sees shutdown and wakes the waiter, or the waiter sees the count it left */
  if (atomic_fetch_sub_explicit(&p->outstanding, n, memory_order_seq_cst) == n &&
      atomic_load_explicit(&p->shutdown, memory_order_seq_cst))
    kiln__pool_wake_all(p);
}

void kiln__task_done(kiln_pool *p) {
  if (own_worker(p)) {
    kiln__self.worker->ndone++; /* no shared write per task: flush_done takes them all later */
    return;
  }
  pthread_mutex_lock(&p->mu);
  if (atomic_fetch_sub_explicit(&p->outstanding, 1, memory_order_acq_rel) == 1) {
    p->epoch++;
    pthread_cond_broadcast(&p->work_cv);
    pthread_cond_broadcast(&p->done_cv);
  }
  pthread_mutex_unlock(&p->mu);
}

static void run_task(kiln_future *t) {
  kiln_pool *p = t->pool;
  if (t->fiber) { /* fiber/task.c starts, resumes or refuses it */
    int refuse = atomic_load_explicit(&p->broken, memory_order_acquire)       ? KILN_EBROKEN
                 : atomic_load_explicit(&p->cancelling, memory_order_acquire) ? KILN_ECANCELLED
                                                                              : 0;
    kiln__ftask_run(t, refuse);
  } else if (atomic_load_explicit(&p->broken, memory_order_acquire)) {
    if (kiln__claim(t, 1u << KILN__PENDING))
      kiln__fail_claimed(t, KILN_EBROKEN,
                         kiln__format("the pool is broken: a worker "
                                      "initializer failed"));
  } else if (atomic_load_explicit(&p->cancelling, memory_order_acquire)) {
    kiln_future_cancel(t);
  } else {
    if (kiln_promise_set_running(t)) { /* PENDING -> RUNNING, listener flags kept */
      kiln__tls saved = kiln__self;
      kiln__self.task = t;
      kiln__self.fail_message = NULL;
      kiln__self.result_free = NULL;
      void *value = NULL;
      int code = t->fn(t->arg, &value);
      t->code = code;
      if (code == 0) {
        t->value = value;
        t->value_free = kiln__self.result_free;
        free(kiln__self.fail_message);
      } else {
        t->message = kiln__self.fail_message;
      }
      kiln__self.task = saved.task;
      kiln__self.fail_message = saved.fail_message;
      kiln__self.result_free = saved.result_free;
      /* counted idle while completing, so that a submission made by a thread woken by this
       * completion reuses this worker instead of starting another (rule EXE-03) */
      /* Only a top-level task's end may give the credit: a task run nested inside another
       * task's wait hands control back to that task, which is not idle. */
      if (kiln__self.worker && !kiln__self.task) idle_enter(kiln__self.worker);
      kiln__self.bypass_ok = kiln__self.worker != NULL;
      kiln__publish(t, KILN__RUNNING, KILN__FINISHED);
      kiln__self.bypass_ok = false;
    }
  }
  kiln_future_release(t); /* the queue reference */
}

/* ---- workers ----------------------------------------------------------------------------------- */

/* Under mu, in a top-level sleep of a worker whose busy flag is cleared: may every worker go? */
static bool may_exit_locked(kiln_pool *p) {
  /* seq_cst: pairs with the count-then-check of an outside submission (kiln__submit_internal) */
  if (!atomic_load_explicit(&p->shutdown, memory_order_relaxed) ||
      atomic_load_explicit(&p->outstanding, memory_order_seq_cst) != 0 || has_work_locked(p))
    return false;
  int n = atomic_load_explicit(&p->started, memory_order_relaxed);
  for (int i = 0; i < n; i++)
    if (p->workers[i].busy) return false;
  return true;
}

/* Runs tasks until pred(ctx) holds (pred NULL: until the pool may exit), or the deadline.
 * 0, or KILN_ETIMEDOUT. The worker counts as idle while it finds nothing to do. */
int kiln__help_until(kiln__worker *w, bool (*pred)(void *), void *ctx, double deadline) {
  kiln_pool *p = w->pool;
  for (;;) {
    if (pred && pred(ctx)) {
      idle_leave(w); /* back to the waiting task: not idle (a no-op unless a credit is held) */
      flush_bypass(w);
      return 0;
    }
    kiln_future *t = find_task(w);
    if (t) {
      idle_leave(w);
      run_task(t);
      continue;
    }
    idle_enter(w);
    for (int i = 0; i < SPIN_ROUNDS && !t; i++) {
      if (pred && pred(ctx)) break;
      if (i > SPIN_ROUNDS / 2) sched_yield();
      t = find_task(w);
    }
    if (t || (pred && pred(ctx))) {
      idle_leave(w);
      if (t) run_task(t);
      continue;
    }
    int rc = 0;
    flush_done(w);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->nsleepers, 1, memory_order_seq_cst);
    double until = sleep_barrier() ? deadline : fmin(deadline, kiln__now() + 0.01);
    uint64_t e = p->epoch;
    if (!pred) w->busy = false;
    bool ready = (pred && pred(ctx)) || has_work_locked(p) || (!pred && may_exit_locked(p));
    if (!ready) {
      if (until == INFINITY) {
        while (p->epoch == e) pthread_cond_wait(&p->work_cv, &p->mu);
      } else {
        struct timespec ts;
        kiln__abs_timespec(until, &ts);
        while (p->epoch == e && rc == 0)
          if (pthread_cond_timedwait(&p->work_cv, &p->mu, &ts) == ETIMEDOUT) rc = KILN_ETIMEDOUT;
        if (rc && until < deadline) rc = 0; /* only a bounded sleep: look again */
      }
    }
    bool exit_now = !pred && may_exit_locked(p);
    if (exit_now) { /* the other sleepers must see it too */
      p->epoch++;
      pthread_cond_broadcast(&p->work_cv);
    } else if (!pred) {
      w->busy = true;
    }
    atomic_fetch_sub_explicit(&p->nsleepers, 1, memory_order_relaxed);
    pthread_mutex_unlock(&p->mu);
    idle_leave(w);
    if (exit_now) return 0;
    if (rc && !(pred && pred(ctx))) { /* idle_leave ran just above */
      flush_bypass(w);
      return rc;
    }
  }
}

kiln_pool *kiln__worker_pool(kiln__worker *w) { return w->pool; }

bool kiln__help_briefly(kiln__worker *w, bool (*pred)(void *), void *ctx, double deadline) {
  for (int misses = 0; misses < SPIN_ROUNDS;) {
    if (pred(ctx)) {
      flush_bypass(w);
      return true;
    }
    if (deadline != INFINITY && kiln__now() >= deadline) {
      flush_bypass(w);
      return false;
    }
    kiln_future *t = find_task(w);
    if (t) {
      misses = 0;
      run_task(t);
    } else if (++misses > SPIN_ROUNDS / 2) {
      sched_yield();
    }
  }
  flush_bypass(w);
  return pred(ctx);
}

bool kiln__deque_drained(void) {
  kiln__worker *w = kiln__self.worker;
  if (!w) return false;
  /* relaxed: a hint only; a wrong answer costs one split too many or too few */
  return atomic_load_explicit(&w->deque.top, memory_order_relaxed) >=
         atomic_load_explicit(&w->deque.bottom, memory_order_relaxed);
}

static void *worker_main(void *arg) {
  kiln__worker *w = arg;
  kiln_pool *p = w->pool;
  kiln__self.worker = w;
  char name[32]; /* Linux keeps the first 15 bytes */
  snprintf(name, sizeof name, "%s_%d", p->name, w->index);
  name[15] = 0;
  pthread_setname_np(pthread_self(), name);
  if (p->init && p->init(p->init_arg) != 0) {
    atomic_store_explicit(&p->broken, true, memory_order_release);
    atomic_store_explicit(&p->shutdown, true, memory_order_release);
    kiln__pool_wake_all(p);
  }
  kiln__help_until(w, NULL, NULL, INFINITY);
  kiln__self.worker = NULL; /* its record cache goes at thread exit (record.c) */
  /* Last touch of the pool: once a joiner sees every worker counted here, it may free it. */
  pthread_mutex_lock(&p->mu);
  p->nexited++;
  pthread_cond_broadcast(&p->done_cv);
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

/* ---- public: pools ----------------------------------------------------------------------------- */

static int cpu_count(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  return 1;
}

/* Zeroed memory on a cache-line boundary, which the _Alignas(64) members need; *raw is what to
 * free. Through calloc rather than aligned_alloc, so that the fault-injection test reaches it. */
static void *zalloc_aligned(size_t n, void **raw) {
  unsigned char *m = calloc(1, n + 63);
  *raw = m;
  return m ? m + (-(uintptr_t)m & 63) : NULL;
}

void kiln_pool_config_default(kiln_pool_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->threads = cpu_count();
  cfg->name = "kiln";
}

int kiln_pool_create(const kiln_pool_config *cfg, kiln_pool **out) {
  *out = NULL;
  kiln_pool_config def;
  if (!cfg) {
    kiln_pool_config_default(&def);
    cfg = &def;
  }
  if (cfg->threads <= 0) return KILN_EINVAL;
  pthread_once(&g_atfork_once, register_atfork);
  pthread_once(&g_asym_once, asym_register); /* before any worker of any pool can push */
  void *raw;
  kiln_pool *p = zalloc_aligned(sizeof *p, &raw);
  if (!p) return KILN_ENOMEM;
  p->mem = raw;
  p->workers = zalloc_aligned((size_t)cfg->threads * sizeof *p->workers, &p->workers_mem);
  if (!p->workers) {
    free(p->mem);
    return KILN_ENOMEM;
  }
  p->threads = cfg->threads;
  p->init = cfg->init;
  p->init_arg = cfg->init_arg;
  snprintf(p->name, sizeof p->name, "%s", cfg->name ? cfg->name : "kiln");
  for (int i = 0; i < p->threads; i++) {
    kiln__worker *w = &p->workers[i];
    if (kiln__deque_init(&w->deque, 256) != 0) {
      for (int j = 0; j < i; j++) kiln__deque_fini(&p->workers[j].deque);
      free(p->workers_mem);
      free(p->mem);
      return KILN_ENOMEM;
    }
    w->pool = p;
    w->index = i;
    w->rng = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1);
  }
  pthread_mutex_init(&p->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&p->work_cv, &ca);
  pthread_cond_init(&p->done_cv, &ca);
  pthread_condattr_destroy(&ca);
  *out = p;
  return 0;
}

int kiln_pool_threads(const kiln_pool *p) { return p->threads; }
int kiln_pool_started_threads(kiln_pool *p) {
  return atomic_load_explicit(&p->started, memory_order_acquire);
}
kiln_pool *kiln_pool_current(void) { return kiln__self.worker ? kiln__self.worker->pool : NULL; }
int kiln_worker_index(void) { return kiln__self.worker ? kiln__self.worker->index : -1; }

/* One queued item of a cancelling pool: an unstarted task is cancelled; a started fiber's
 * resumption is kept (on *keep) to be queued again, since its fiber must run to its end. */
static void cancel_item(kiln_future *t, kiln_future **keep) {
  if (t->fiber) {
    if ((atomic_load_explicit(&t->state, memory_order_acquire) & KILN__STATE_MASK) ==
        KILN__RUNNING) {
      t->next = *keep;
      *keep = t;
      return;
    }
    kiln__ftask_run(t, KILN_ECANCELLED);
  }
  kiln_future_cancel(t);
  kiln_future_release(t);
}

/* Cancels every queued task that has not started; workers cancel the rest as they pop them. */
static void cancel_queued(kiln_pool *p) {
  atomic_store_explicit(&p->cancelling, true, memory_order_release);
  pthread_mutex_lock(&p->mu);
  kiln_future *list = p->inject_head;
  p->inject_head = p->inject_tail = NULL;
  atomic_store_explicit(&p->ninject, 0, memory_order_relaxed);
  pthread_mutex_unlock(&p->mu);
  kiln_future *keep = NULL;
  while (list) {
    kiln_future *t = list;
    list = t->next;
    cancel_item(t, &keep);
  }
  int n = atomic_load_explicit(&p->started, memory_order_acquire);
  for (int i = 0; i < n; i++) {
    void *x;
    while ((x = kiln__deque_steal(&p->workers[i].deque)) != KILN__DEQUE_EMPTY) {
      if (x == KILN__DEQUE_ABORT) continue;
      cancel_item(x, &keep);
    }
  }
  while (keep) {
    kiln_future *t = keep;
    keep = t->next;
    inject(p, t);
  }
}

/* Under mu: waits on done_cv until the deadline. false once it has passed. */
static bool done_wait_locked(kiln_pool *p, double deadline) {
  if (deadline == INFINITY) {
    pthread_cond_wait(&p->done_cv, &p->mu);
    return true;
  }
  struct timespec ts;
  kiln__abs_timespec(deadline, &ts);
  return pthread_cond_timedwait(&p->done_cv, &p->mu, &ts) != ETIMEDOUT || kiln__now() < deadline;
}

/* Waits until no accepted task is left and every worker has exited, then reaps the threads (the
 * first caller does; concurrent callers return once the workers are done). 0 or KILN_ETIMEDOUT. */
static int wait_and_join(kiln_pool *p, double deadline) {
  pthread_mutex_lock(&p->mu);
  p->epoch++;
  pthread_cond_broadcast(&p->work_cv);
  if (atomic_load_explicit(&p->started, memory_order_relaxed) == 0 &&
      atomic_load_explicit(&p->outstanding, memory_order_acquire) > 0) {
    /* every thread start failed so far (EAGAIN): try once more, else nobody could ever run the
     * queued tasks, and waiting for them would hang: cancel them */
    maybe_start_locked(p);
    if (atomic_load_explicit(&p->started, memory_order_relaxed) == 0) {
      pthread_mutex_unlock(&p->mu);
      cancel_queued(p);
      pthread_mutex_lock(&p->mu);
    }
  }
  /* seq_cst: pairs with the worker's decrement in kiln__task_done (see there) */
  while (atomic_load_explicit(&p->outstanding, memory_order_seq_cst) > 0)
    if (!done_wait_locked(p, deadline)) {
      pthread_mutex_unlock(&p->mu);
      return KILN_ETIMEDOUT;
    }
  p->epoch++;
  pthread_cond_broadcast(&p->work_cv);
  while (p->nexited < atomic_load_explicit(&p->started, memory_order_relaxed))
    if (!done_wait_locked(p, deadline)) {
      pthread_mutex_unlock(&p->mu);
      return KILN_ETIMEDOUT;
    }
  int n = atomic_load_explicit(&p->started, memory_order_relaxed);
  if (p->joined) { /* another thread reaps: wait for it, since a destroy may follow us */
    while (!p->reaped)
      if (!done_wait_locked(p, deadline)) {
        pthread_mutex_unlock(&p->mu);
        return KILN_ETIMEDOUT;
      }
    pthread_mutex_unlock(&p->mu);
    return 0;
  }
  p->joined = true;
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < n; i++) pthread_join(p->workers[i].thread, NULL); /* exiting already */
  pthread_mutex_lock(&p->mu);
  p->reaped = true;
  pthread_cond_broadcast(&p->done_cv);
  pthread_mutex_unlock(&p->mu);
  return 0;
}

int kiln_pool_shutdown(kiln_pool *p, bool wait, bool cancel_pending) {
  if (wait && own_worker(p)) return KILN_ESTATE;
  pthread_mutex_lock(&p->mu);
  atomic_store_explicit(&p->shutdown, true, memory_order_seq_cst);
  pthread_mutex_unlock(&p->mu);
  if (cancel_pending) cancel_queued(p);
  kiln__pool_wake_all(p);
  if (wait) wait_and_join(p, INFINITY);
  return 0;
}

void kiln_pool_destroy(kiln_pool *p) {
  if (!p) return;
  kiln_pool_shutdown(p, true, false);
  for (int i = 0; i < p->threads; i++) kiln__deque_fini(&p->workers[i].deque);
  pthread_cond_destroy(&p->work_cv);
  pthread_cond_destroy(&p->done_cv);
  pthread_mutex_destroy(&p->mu);
  free(p->workers_mem);
  free(p->mem);
}

/* ---- public: submitting ------------------------------------------------------------------------ */

/* A task record that was never accepted: nothing else has seen it. */
static void release_refused(kiln_future *t) {
  if (t->dep_nodes != t->inline_nodes) free(t->dep_nodes);
  kiln__future_free(t);
}

int kiln__submit_internal(kiln_pool *p, kiln_future *const *deps, size_t ndeps, kiln_task_fn fn,
                          void *arg, bool internal, kiln_future **out) {
  if (out) *out = NULL;
  kiln_future *t = kiln__future_alloc();
  if (!t) return KILN_ENOMEM;
  if (ndeps > 2) {
    t->dep_nodes = calloc(ndeps, sizeof(kiln__listener));
    if (!t->dep_nodes) {
      kiln__future_free(t);
      return KILN_ENOMEM;
    }
  } else {
    t->dep_nodes = t->inline_nodes;
  }
  t->fn = fn;
  t->arg = arg;
  t->pool = p;
  t->fiber = false;
  t->ndeps = ndeps;
  /* caller's reference (if any) + the queue reference */
  atomic_store_explicit(&t->refs, out ? 2u : 1u, memory_order_relaxed);
  /* Accept the task. A worker's spawn without dependencies goes onto its own deque and is not
   * counted (see "Shutdown and lifetime"). */
  t->counted = !own_worker(p) || ndeps > 0;
  if (own_worker(p)) {
    if (!internal && atomic_load_explicit(&p->shutdown, memory_order_acquire)) goto refused;
    if (t->counted) atomic_fetch_add_explicit(&p->outstanding, 1, memory_order_relaxed);
  } else {
    /* Outside the pool, count first, then check (no lock): seq_cst, with kiln_pool_shutdown's
     * store of shutdown and the seq_cst loads of outstanding in wait_and_join and
     * may_exit_locked, so either this thread sees shutdown or they see the count. */
    atomic_fetch_add_explicit(&p->outstanding, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&p->shutdown, memory_order_seq_cst)) {
      int rc =
          atomic_load_explicit(&p->broken, memory_order_acquire) ? KILN_EBROKEN : KILN_ESHUTDOWN;
      kiln__task_done(p); /* the count back, under mu: wakes a shutdown that saw it */
      release_refused(t);
      return rc;
    }
  }
  if (out) *out = t;
  if (ndeps == 0) {
    kiln__schedule(t);
    return 0;
  }
  atomic_store_explicit(&t->deps_left, ndeps + 1, memory_order_relaxed);
  kiln_future *work = NULL;
  for (size_t i = 0; i < ndeps; i++) {
    kiln__listener *l = &t->dep_nodes[i];
    l->kind = KILN__L_DEPENDENT;
    l->index = i;
    l->u.dependent = t;
    if (!kiln__add_listener(deps[i], l)) {
      /* already done: handle it here, as publish would have */
      uint32_t st = atomic_load_explicit(&deps[i]->state, memory_order_acquire) & KILN__STATE_MASK;
      if (!(st == KILN__FINISHED && deps[i]->code == 0) && kiln__claim(t, 1u << KILN__PENDING)) {
        char *msg = kiln__dependency_message(deps[i], i, ndeps);
        kiln_future_retain(t);
        work = t;
        t->code = KILN_EDEPENDENCY;
        t->message = msg;
      }
      atomic_fetch_sub_explicit(&t->deps_left, 1, memory_order_acq_rel);
    }
  }
  if (work) {
    kiln__publish(t, KILN__COMPLETING, KILN__FINISHED);
    kiln_future_release(t);
  }
  /* acq_rel: pairs with the decrements of dependencies completing concurrently */
  if (atomic_fetch_sub_explicit(&t->deps_left, 1, memory_order_acq_rel) == 1) kiln__schedule(t);
  return 0;

refused:
  release_refused(t);
  return atomic_load_explicit(&p->broken, memory_order_acquire) ? KILN_EBROKEN : KILN_ESHUTDOWN;
}

int kiln__submit_fiber(kiln_pool *p, void *fiber, kiln_future **out) {
  *out = NULL;
  kiln_future *t = kiln__future_alloc();
  if (!t) return KILN_ENOMEM;
  t->arg = fiber;
  t->pool = p;
  t->fiber = true;
  t->counted = true;
  /* the caller's, the queue's, and the fiber's own (fiber/task.c drops it when the fiber ends
   * or can no longer start) */
  atomic_store_explicit(&t->refs, 3u, memory_order_relaxed);
  /* count first, then check: as an outside submission in kiln__submit_internal */
  atomic_fetch_add_explicit(&p->outstanding, 1, memory_order_seq_cst);
  if (atomic_load_explicit(&p->shutdown, memory_order_seq_cst)) {
    int rc = atomic_load_explicit(&p->broken, memory_order_acquire) ? KILN_EBROKEN : KILN_ESHUTDOWN;
    kiln__task_done(p);
    release_refused(t);
    return rc;
  }
  *out = t;
  kiln__schedule(t);
  return 0;
}

int kiln__pool_accepting(kiln_pool *p) {
  if (!atomic_load_explicit(&p->shutdown, memory_order_acquire)) return 0;
  return atomic_load_explicit(&p->broken, memory_order_acquire) ? KILN_EBROKEN : KILN_ESHUTDOWN;
}

int kiln_submit(kiln_pool *p, kiln_task_fn fn, void *arg, kiln_future **out) {
  return kiln__submit_internal(p, NULL, 0, fn, arg, false, out);
}

int kiln_submit_after(kiln_pool *p, kiln_future *const *deps, size_t ndeps, kiln_task_fn fn,
                      void *arg, kiln_future **out) {
  return kiln__submit_internal(p, deps, ndeps, fn, arg, false, out);
}

int kiln_task_fail(int code, const char *fmt, ...) {
  if (!kiln__self.task || !fmt) return code;
  va_list ap;
  va_start(ap, fmt);
  char *msg = kiln__vformat(fmt, ap);
  va_end(ap);
  free(kiln__self.fail_message);
  kiln__self.fail_message = msg;
  return code;
}

void kiln_task_set_result_free(void (*dtor)(void *)) {
  if (kiln__self.task) kiln__self.result_free = dtor;
}

/* ---- public: multiprocessing.Pool-style close, terminate, join (apply and map_async: mpool.c) --- */

int kiln_pool_close(kiln_pool *p) {
  kiln_pool_shutdown(p, false, false);
  pthread_mutex_lock(&p->mu);
  p->closed = true;
  pthread_mutex_unlock(&p->mu);
  return 0;
}

int kiln_pool_terminate(kiln_pool *p) {
  kiln_pool_shutdown(p, false, true);
  pthread_mutex_lock(&p->mu);
  p->terminated = true;
  pthread_mutex_unlock(&p->mu);
  return 0;
}

int kiln_pool_join_timeout(kiln_pool *p, double timeout) {
  double deadline;
  int rc = kiln__deadline(timeout, &deadline);
  if (rc) return rc;
  pthread_mutex_lock(&p->mu);
  bool ok = p->closed || p->terminated;
  pthread_mutex_unlock(&p->mu);
  if (!ok) return KILN_ESTATE;
  if (own_worker(p)) return KILN_ESTATE;
  return wait_and_join(p, deadline);
}

int kiln_pool_join(kiln_pool *p) { return kiln_pool_join_timeout(p, -1); }
