/* queue_test_util.h: helpers shared by the queue tests (not a test file itself).
 *
 * A test that needs a thread to be *blocked* in put, get or join before it acts waits for it with
 * qtu_wait_blocked, which reads the queue's own count of sleepers (a test probe in sync_internal.h): a
 * thread counted there has released the queue's mutex inside its condition wait, so whatever the
 * test does next is seen by it when it re-checks. No sleeps. */
#ifndef KILN_QUEUE_TEST_UTIL_H
#define KILN_QUEUE_TEST_UTIL_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "kt.h"
#include "sync_internal.h" /* kiln__queue_waiting */

/* Priority order of items that are integers cast to pointers: smallest first. */
static inline int qtu_cmp_uintptr(const void *a, const void *b, void *ctx) {
  (void)ctx;
  uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
  return (x > y) - (x < y);
}

static inline kiln_queue *qtu_queue(kiln_queue_kind kind, size_t maxsize) {
  kiln_queue_config cfg;
  kiln_queue_config_default(&cfg);
  cfg.kind = kind;
  cfg.maxsize = maxsize;
  if (kind == KILN_QUEUE_PRIORITY) cfg.compare = qtu_cmp_uintptr;
  kiln_queue *q = NULL;
  KT_CODE(kiln_queue_create(&cfg, &q), KILN_OK);
  KT_TRUE(q != NULL);
  return q;
}

/* Items are small integers cast to pointers; 0 is a valid item too. */
#define QTU_ITEM(n) ((void *)(uintptr_t)(n))
#define QTU_VAL(p) ((uintptr_t)(p))

/* Waits until exactly g getters, p putters and j joiners are asleep on q (30 s at most). */
static inline void qtu_wait_blocked(kiln_queue *q, size_t g, size_t p, size_t j) {
  double end = kt_now() + 30.0;
  size_t ng = 0, np = 0, nj = 0;
  for (;;) {
    kiln__queue_waiting(q, &ng, &np, &nj);
    if (ng == g && np == p && nj == j) return;
    if (kt_now() > end)
      KT_FAIL("waiting for %zu/%zu/%zu sleepers (get/put/join), have %zu/%zu/%zu", g, p, j, ng, np,
              nj);
    sched_yield();
  }
}

/* One blocking call run on its own thread. */
typedef struct qtu_op {
  kiln_queue *q;
  void *item; /* put: the item; get: what came back */
  double timeout;
  int rc;
  pthread_t th;
} qtu_op;

static inline void *qtu_put_main(void *a) {
  qtu_op *o = a;
  o->rc = kiln_queue_put(o->q, o->item, o->timeout);
  return NULL;
}
static inline void *qtu_get_main(void *a) {
  qtu_op *o = a;
  o->rc = kiln_queue_get(o->q, &o->item, o->timeout);
  return NULL;
}
static inline void *qtu_join_main(void *a) {
  qtu_op *o = a;
  o->rc = kiln_queue_join(o->q, o->timeout);
  return NULL;
}

static inline void qtu_start(qtu_op *o, void *(*fn)(void *), kiln_queue *q, void *item,
                             double timeout) {
  o->q = q;
  o->item = item;
  o->timeout = timeout;
  o->rc = 1;
  KT_EQ(pthread_create(&o->th, NULL, fn, o), 0);
}
static inline int qtu_finish(qtu_op *o) {
  KT_EQ(pthread_join(o->th, NULL), 0);
  return o->rc;
}

#endif
