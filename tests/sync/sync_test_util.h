/* sync_test_util.h: helpers shared by the tests of kiln's threading primitives (not a test file).
 *
 * Handshakes, never sleeps: a test that must know another thread is blocked waits (yielding)
 * until the primitive's own bookkeeping says so, through the probes of sync/sync_internal.h
 * (kiln__lock_contended, kiln__semaphore_waiting, ...) or a counter the threads bump. */
#ifndef KILN_SYNC_TEST_UTIL_H
#define KILN_SYNC_TEST_UTIL_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "kiln/sync.h"
#include "kt.h"
#include "sync_internal.h"

/* Yields until cond holds; fails the test after 30 s (a hang, not a timing assumption). */
#define ST_UNTIL(cond)                                                        \
  do {                                                                        \
    double st_t0 = kt_now();                                                  \
    while (!(cond)) {                                                         \
      if (kt_now() - st_t0 > 30.0) KT_FAIL("gave up waiting for: %s", #cond); \
      sched_yield();                                                          \
    }                                                                         \
  } while (0)

/* ---- threads ---- */

enum { ST_MAX_THREADS = 32 };

typedef struct st_bunch {
  pthread_t th[ST_MAX_THREADS];
  int n;
} st_bunch;

/* Starts n threads running fn(arg); the same arg for all. */
static inline void st_start(st_bunch *b, int n, void *(*fn)(void *), void *arg) {
  KT_TRUE(n <= ST_MAX_THREADS);
  b->n = n;
  for (int i = 0; i < n; i++) KT_EQ(pthread_create(&b->th[i], NULL, fn, arg), 0);
}

static inline void st_join(st_bunch *b) {
  for (int i = 0; i < b->n; i++) KT_EQ(pthread_join(b->th[i], NULL), 0);
  b->n = 0;
}

/* Runs fn(arg) on a new thread and waits for it: "from another thread". */
static inline void st_run(void *(*fn)(void *), void *arg) {
  st_bunch b;
  st_start(&b, 1, fn, arg);
  st_join(&b);
}

/* ---- constructors that assert ---- */

static inline kiln_lock *st_lock(void) {
  kiln_lock *l = NULL;
  KT_CODE(kiln_lock_create(&l), KILN_OK);
  KT_TRUE(l != NULL);
  return l;
}

static inline kiln_rlock *st_rlock(void) {
  kiln_rlock *r = NULL;
  KT_CODE(kiln_rlock_create(&r), KILN_OK);
  KT_TRUE(r != NULL);
  return r;
}

static inline kiln_semaphore *st_sem(int value, bool bounded) {
  kiln_semaphore *s = NULL;
  KT_CODE(kiln_semaphore_create(value, bounded, &s), KILN_OK);
  KT_TRUE(s != NULL);
  return s;
}

static inline kiln_condition *st_cond(void) {
  kiln_condition *c = NULL;
  KT_CODE(kiln_condition_create(&c), KILN_OK);
  KT_TRUE(c != NULL);
  return c;
}

static inline kiln_event *st_event(void) {
  kiln_event *e = NULL;
  KT_CODE(kiln_event_create(&e), KILN_OK);
  KT_TRUE(e != NULL);
  return e;
}

static inline kiln_barrier *st_barrier(int parties, int (*action)(void *), void *arg,
                                       double timeout) {
  kiln_barrier *b = NULL;
  KT_CODE(kiln_barrier_create(parties, action, arg, timeout, &b), KILN_OK);
  KT_TRUE(b != NULL);
  return b;
}

/* The timeout used by the timed cases (docs/CONFORMANCE.md: >= 0.6 x and < 10 x of it). */
#define ST_T 0.1

#endif
