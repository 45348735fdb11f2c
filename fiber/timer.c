/* timer.c: the deadlines of waiting pool fibers (kiln_sleep, kiln_await with a timeout): one
 * timer thread per process, started by the first kiln__timer_arm, sleeping on a condition
 * variable (CLOCK_MONOTONIC) until the earliest deadline of a binary min-heap. Arm and cancel are
 * O(log n) (each timer knows its heap index), so 10^5 sleeping fibers cost 10^5 heap slots and
 * one thread, not a thread or a system timer each.
 *
 * fire() runs under the lock, which is what makes cancel final: once cancel has taken the lock
 * and found the timer gone or removed it, no fire of it is running or to come. The lock is taken
 * before the pool's (fire queues a fiber): timer.mu -> pool.mu.
 *
 * The thread is the one piece of process-wide state here, like the scheduler's record-cache key:
 * created by the first arm, it lives as long as the process (an idle timer thread blocks in
 * pthread_cond_wait and uses no CPU). fork copies neither it nor the parent's other threads: the
 * lock is held across fork (pthread_atfork), and the child drops the parent's timers (their
 * fibers do not exist there) and starts a thread of its own at its first arm. */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>

#include "base.h"
#include "fiber_internal.h"

static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  kiln__timer **heap; /* guarded by mu */
  size_t n, cap;      /* guarded by mu */
  bool running;       /* guarded by mu: this process has the timer thread */
} g = {.mu = PTHREAD_MUTEX_INITIALIZER};

static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static bool before(const kiln__timer *a, const kiln__timer *b) { return a->deadline < b->deadline; }

static void place(size_t i, kiln__timer *tm) {
  g.heap[i] = tm;
  tm->index = i;
}

static void sift_up(size_t i) {
  kiln__timer *tm = g.heap[i];
  while (i > 0 && before(tm, g.heap[(i - 1) / 2])) {
    place(i, g.heap[(i - 1) / 2]);
    i = (i - 1) / 2;
  }
  place(i, tm);
}

static void sift_down(size_t i) {
  kiln__timer *tm = g.heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= g.n) break;
    if (c + 1 < g.n && before(g.heap[c + 1], g.heap[c])) c++;
    if (!before(g.heap[c], tm)) break;
    place(i, g.heap[c]);
    i = c;
  }
  place(i, tm);
}

/* Under mu. */
static void remove_at(size_t i) {
  kiln__timer *tm = g.heap[i];
  tm->index = SIZE_MAX;
  kiln__timer *last = g.heap[--g.n];
  if (i == g.n) return;
  place(i, last);
  if (i > 0 && before(last, g.heap[(i - 1) / 2])) sift_up(i);
  else sift_down(i);
}

static void *timer_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&g.mu);
  for (;;) {
    if (g.n == 0) {
      pthread_cond_wait(&g.cv, &g.mu);
      continue;
    }
    kiln__timer *top = g.heap[0];
    if (top->deadline > kiln__now()) {
      struct timespec ts;
      kiln__abs_timespec(top->deadline, &ts);
      pthread_cond_timedwait(&g.cv, &g.mu, &ts);
      continue;
    }
    remove_at(0);
    top->fire(top);
  }
  return NULL;
}

static void init_cv(void) {
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&g.cv, &ca);
  pthread_condattr_destroy(&ca);
}

static void before_fork(void) { pthread_mutex_lock(&g.mu); }
static void after_fork_parent(void) { pthread_mutex_unlock(&g.mu); }

/* The child's only thread is the one that forked, which holds mu. The condition variable may
 * still count the parent's timer thread as a waiter: it is made anew, not destroyed. */
static void after_fork_child(void) {
  g.n = 0;
  g.running = false;
  init_cv();
  pthread_mutex_unlock(&g.mu);
}

static void setup(void) {
  init_cv();
  pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

/* Under mu: starts the timer thread. false: it could not be started. */
static bool start_locked(void) {
  /* Every signal blocked: the timer thread must not take a signal meant for the program's own
   * threads. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t th;
  g.running = pthread_create(&th, &attr, timer_main, NULL) == 0;
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (g.running) pthread_setname_np(th, "kiln_timer");
  return g.running;
}

int kiln__timer_arm(kiln__timer *tm) {
  pthread_once(&g_once, setup);
  pthread_mutex_lock(&g.mu);
  if (!g.running && !start_locked()) {
    pthread_mutex_unlock(&g.mu);
    return KILN_ENOMEM;
  }
  if (g.n == g.cap) {
    size_t cap = g.cap ? g.cap * 2 : 256;
    kiln__timer **h = realloc(g.heap, cap * sizeof *h);
    if (!h) {
      pthread_mutex_unlock(&g.mu);
      return KILN_ENOMEM;
    }
    g.heap = h;
    g.cap = cap;
  }
  g.n++;
  place(g.n - 1, tm);
  sift_up(g.n - 1);
  if (tm->index == 0) pthread_cond_signal(&g.cv); /* a new earliest deadline */
  pthread_mutex_unlock(&g.mu);
  return 0;
}

void kiln__timer_cancel(kiln__timer *tm) {
  pthread_mutex_lock(&g.mu);
  if (tm->index != SIZE_MAX) remove_at(tm->index);
  pthread_mutex_unlock(&g.mu);
}
