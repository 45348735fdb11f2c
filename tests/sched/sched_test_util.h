/* sched_test_util.h: helpers shared by the scheduler tests (not a test file itself).
 *
 * Two kinds of blocking are used on purpose:
 *  - promises (kiln_future_result on a kiln_promise): a task that waits on one *helps*: its worker
 *    runs other queued tasks of the pool meanwhile (sched.h, "Blocking inside a task");
 *  - gates and latches (a pthread mutex + condition variable): a task that waits on one really
 *    blocks its worker, which is what tests need that keep tasks queued behind a running one
 *    (FIFO order, cancel_pending, terminate, map timeouts). These are explicit handshakes, never
 *    sleeps. */
#ifndef KILN_SCHED_TEST_UTIL_H
#define KILN_SCHED_TEST_UTIL_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kiln/sched.h"
#include "kt.h"

/* ---- pools ---- */

static inline kiln_pool *tu_pool(int threads) {
  kiln_pool_config cfg;
  kiln_pool_config_default(&cfg);
  cfg.threads = threads;
  kiln_pool *p = NULL;
  KT_CODE(kiln_pool_create(&cfg, &p), KILN_OK);
  KT_TRUE(p != NULL);
  return p;
}

static inline kiln_future *tu_promise(void) {
  kiln_future *f = NULL;
  KT_CODE(kiln_promise_create(&f), KILN_OK);
  KT_TRUE(f != NULL);
  return f;
}

static inline kiln_future *tu_submit(kiln_pool *p, kiln_task_fn fn, void *arg) {
  kiln_future *f = NULL;
  KT_CODE(kiln_submit(p, fn, arg, &f), KILN_OK);
  KT_TRUE(f != NULL);
  return f;
}

/* ---- gate: a one-shot event on a condition variable (really blocks a worker) ---- */

typedef struct tu_gate {
  pthread_mutex_t m;
  pthread_cond_t c;
  int open;
} tu_gate;

static inline void tu_gate_init(tu_gate *g) {
  pthread_mutex_init(&g->m, NULL);
  pthread_cond_init(&g->c, NULL);
  g->open = 0;
}
static inline void tu_gate_fini(tu_gate *g) {
  pthread_cond_destroy(&g->c);
  pthread_mutex_destroy(&g->m);
}
static inline void tu_gate_open(tu_gate *g) {
  pthread_mutex_lock(&g->m);
  g->open = 1;
  pthread_cond_broadcast(&g->c);
  pthread_mutex_unlock(&g->m);
}
static inline void tu_gate_wait(tu_gate *g) {
  pthread_mutex_lock(&g->m);
  while (!g->open) pthread_cond_wait(&g->c, &g->m);
  pthread_mutex_unlock(&g->m);
}

/* ---- latch: a counter one can wait on (really blocks) ---- */

typedef struct tu_latch {
  pthread_mutex_t m;
  pthread_cond_t c;
  long n;
} tu_latch;

static inline void tu_latch_init(tu_latch *l) {
  pthread_mutex_init(&l->m, NULL);
  pthread_cond_init(&l->c, NULL);
  l->n = 0;
}
static inline void tu_latch_fini(tu_latch *l) {
  pthread_cond_destroy(&l->c);
  pthread_mutex_destroy(&l->m);
}
static inline void tu_latch_add(tu_latch *l, long k) {
  pthread_mutex_lock(&l->m);
  l->n += k;
  pthread_cond_broadcast(&l->c);
  pthread_mutex_unlock(&l->m);
}
static inline long tu_latch_get(tu_latch *l) {
  pthread_mutex_lock(&l->m);
  long n = l->n;
  pthread_mutex_unlock(&l->m);
  return n;
}
/* Waits until the count is >= n or timeout seconds pass; returns whether it reached n. */
static inline int tu_latch_wait(tu_latch *l, long n, double timeout) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  long long ns = (long long)dl.tv_nsec + (long long)(timeout * 1e9);
  dl.tv_sec += (time_t)(ns / 1000000000LL);
  dl.tv_nsec = (long)(ns % 1000000000LL);
  pthread_mutex_lock(&l->m);
  while (l->n < n) {
    if (pthread_cond_timedwait(&l->c, &l->m, &dl) == ETIMEDOUT) break;
  }
  int ok = l->n >= n;
  pthread_mutex_unlock(&l->m);
  return ok;
}

/* ---- common tasks ---- */

/* Stores arg as the result. */
static inline int tu_task_ret(void *arg, void **result) {
  *result = arg;
  return 0;
}
/* Returns (int)(intptr_t)arg as the task's code. */
static inline int tu_task_code(void *arg, void **result) {
  (void)result;
  return (int)(intptr_t)arg;
}
/* Waits (helping) on the promise arg; returns its code. */
static inline int tu_task_wait_promise(void *arg, void **result) {
  (void)result;
  int rc = kiln_future_result((kiln_future *)arg, -1, NULL);
  return rc;
}
/* Blocks its worker on the gate arg. */
static inline int tu_task_gate(void *arg, void **result) {
  (void)result;
  tu_gate_wait((tu_gate *)arg);
  return 0;
}

/* A gate-blocked task that signals when it starts. */
typedef struct tu_blocker {
  tu_gate gate;
  tu_latch started;
} tu_blocker;

static inline void tu_blocker_init(tu_blocker *b) {
  tu_gate_init(&b->gate);
  tu_latch_init(&b->started);
}
static inline void tu_blocker_fini(tu_blocker *b) {
  tu_gate_fini(&b->gate);
  tu_latch_fini(&b->started);
}
static inline int tu_task_blocker(void *arg, void **result) {
  tu_blocker *b = arg;
  tu_latch_add(&b->started, 1);
  tu_gate_wait(&b->gate);
  *result = b;
  return 0;
}
/* Submits a blocker and waits until it runs. */
static inline kiln_future *tu_start_blocker(kiln_pool *p, tu_blocker *b) {
  kiln_future *f = tu_submit(p, tu_task_blocker, b);
  KT_TRUE(tu_latch_wait(&b->started, 1, 30.0));
  return f;
}

/* Number of threads of this process (Linux /proc). */
static inline void *tu_noop_thread(void *a) { return a; }
/* Threads of this process. The first call creates and joins one thread so that a sanitizer's
 * own background thread (TSan starts one lazily) already exists when a test takes its base. */
static inline int tu_thread_count(void) {
  static int warmed;
  if (!warmed) {
    pthread_t th;
    warmed = 1;
    if (pthread_create(&th, NULL, tu_noop_thread, NULL) == 0) pthread_join(th, NULL);
  }
  FILE *fp = fopen("/proc/self/status", "r");
  if (!fp) return -1;
  char line[256];
  int n = -1;
  while (fgets(line, sizeof line, fp)) {
    if (strncmp(line, "Threads:", 8) == 0) {
      n = atoi(line + 8);
      break;
    }
  }
  fclose(fp);
  return n;
}

static inline void tu_release_all(kiln_future **fs, size_t n) {
  for (size_t i = 0; i < n; i++) kiln_future_release(fs[i]);
}

#endif
