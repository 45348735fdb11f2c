/* test_queue.c: kiln_queue against Q-01..Q-16 of docs/CONFORMANCE.md (single-thread and
 * blocked-thread cases). The many-thread cases are in test_queue_stress.c.
 *
 * Q-07 differs on purpose: CPython raises ValueError for a negative timeout, kiln's convention
 * (sync.h) is that a negative timeout waits forever, so negative_timeout_waits_forever_nan_einval
 * tests that, and NaN -> KILN_EINVAL. There are no rules. */
// kt: timeout 60
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "queue_test_util.h"

static const kiln_queue_kind KINDS[3] = {KILN_QUEUE_FIFO, KILN_QUEUE_LIFO, KILN_QUEUE_PRIORITY};

/* a new queue is empty, not full, size 0; qsize counts; full iff qsize == maxsize > 0. */
TEST(new_queue_empty_not_full_qsize_counts) {
  for (int k = 0; k < 3; k++) {
    kiln_queue *q = qtu_queue(KINDS[k], 3);
    KT_TRUE(kiln_queue_empty(q));
    KT_FALSE(kiln_queue_full(q));
    KT_EQ(kiln_queue_qsize(q), 0);
    KT_EQ(kiln_queue_maxsize(q), 3);
    for (int i = 1; i <= 3; i++) {
      KT_CODE(kiln_queue_put(q, QTU_ITEM(i), 0), KILN_OK);
      KT_EQ(kiln_queue_qsize(q), i);
      KT_FALSE(kiln_queue_empty(q));
      KT_EQ(kiln_queue_full(q), i == 3);
    }
    void *it;
    KT_CODE(kiln_queue_get(q, &it, 0), KILN_OK);
    KT_EQ(kiln_queue_qsize(q), 2);
    KT_FALSE(kiln_queue_full(q));
    kiln_queue_destroy(q);

    /* maxsize 0: unbounded, never full. */
    q = qtu_queue(KINDS[k], 0);
    KT_EQ(kiln_queue_maxsize(q), 0);
    for (int i = 0; i < 5000; i++) {
      KT_CODE(kiln_queue_put(q, QTU_ITEM(i), 0), KILN_OK);
      KT_FALSE(kiln_queue_full(q));
    }
    KT_EQ(kiln_queue_qsize(q), 5000);
    kiln_queue_destroy(q);
  }
}

/* 111, 333, 222 come out 111,333,222 / 222,333,111 / 111,222,333. */
TEST(fifo_lifo_priority_order) {
  static const uintptr_t want[3][3] = {{111, 333, 222}, {222, 333, 111}, {111, 222, 333}};
  for (int k = 0; k < 3; k++) {
    kiln_queue *q = qtu_queue(KINDS[k], 0);
    KT_CODE(kiln_queue_put(q, QTU_ITEM(111), 0), KILN_OK);
    KT_CODE(kiln_queue_put(q, QTU_ITEM(333), 0), KILN_OK);
    KT_CODE(kiln_queue_put(q, QTU_ITEM(222), 0), KILN_OK);
    for (int i = 0; i < 3; i++) {
      void *it = NULL;
      KT_CODE(kiln_queue_get(q, &it, 0), KILN_OK);
      KT_EQ(QTU_VAL(it), want[k][i]);
    }
    void *it = QTU_ITEM(1);
    KT_CODE(kiln_queue_get(q, &it, 0), KILN_EEMPTY);
    KT_PTR_EQ(it, NULL); /* the OUT parameter is zeroed */
    kiln_queue_destroy(q);
  }
}

/* put on a full queue: timeout 0 -> EFULL at once; timeout 0.1 -> EFULL after it. */
TEST(put_on_full_queue_is_efull) {
  for (int k = 0; k < 3; k++) {
    kiln_queue *q = qtu_queue(KINDS[k], 2);
    KT_CODE(kiln_queue_put(q, QTU_ITEM(1), 0), KILN_OK);
    KT_CODE(kiln_queue_put(q, QTU_ITEM(2), 0), KILN_OK);
    double t0 = kt_now();
    KT_CODE(kiln_queue_put(q, QTU_ITEM(3), 0), KILN_EFULL);
    KT_TRUE(kt_now() - t0 < 0.5);
    t0 = kt_now();
    KT_CODE(kiln_queue_put(q, QTU_ITEM(3), 0.1), KILN_EFULL);
    KT_TIMED(kt_now() - t0, 0.1);
    KT_EQ(kiln_queue_qsize(q), 2);
    kiln_queue_destroy(q);
  }
}

/* a blocking put on a full queue (no timeout, or 10 s) waits for a get, then succeeds. */
TEST(blocking_put_on_full_waits_for_get) {
  static const double timeouts[2] = {-1, 10};
  for (int k = 0; k < 3; k++) {
    for (int t = 0; t < 2; t++) {
      kiln_queue *q = qtu_queue(KINDS[k], 1);
      KT_CODE(kiln_queue_put(q, QTU_ITEM(7), 0), KILN_OK);
      qtu_op o;
      qtu_start(&o, qtu_put_main, q, QTU_ITEM(8), timeouts[t]);
      qtu_wait_blocked(q, 0, 1, 0);
      KT_EQ(kiln_queue_qsize(q), 1);
      void *it = NULL;
      KT_CODE(kiln_queue_get(q, &it, 0), KILN_OK);
      KT_EQ(QTU_VAL(it), 7);
      KT_CODE(qtu_finish(&o), KILN_OK);
      KT_CODE(kiln_queue_get(q, &it, 0), KILN_OK);
      KT_EQ(QTU_VAL(it), 8);
      kiln_queue_destroy(q);
    }
  }
}

/* get on an empty queue: timeout 0 -> EEMPTY at once; timeout 0.1 -> EEMPTY after it. */
TEST(get_on_empty_queue_is_eempty) {
  for (int k = 0; k < 3; k++) {
    kiln_queue *q = qtu_queue(KINDS[k], 0);
    void *it = QTU_ITEM(5);
    double t0 = kt_now();
    KT_CODE(kiln_queue_get(q, &it, 0), KILN_EEMPTY);
    KT_TRUE(kt_now() - t0 < 0.5);
    KT_PTR_EQ(it, NULL);
    t0 = kt_now();
    KT_CODE(kiln_queue_get(q, &it, 0.1), KILN_EEMPTY);
    KT_TIMED(kt_now() - t0, 0.1);
    kiln_queue_destroy(q);
  }
}

/* a blocking get on an empty queue (no timeout, or 10 s) waits for a put, returns it. */
TEST(blocking_get_on_empty_waits_for_put) {
  static const double timeouts[2] = {-1, 10};
  for (int k = 0; k < 3; k++) {
    for (int t = 0; t < 2; t++) {
      kiln_queue *q = qtu_queue(KINDS[k], 0);
      qtu_op o;
      qtu_start(&o, qtu_get_main, q, NULL, timeouts[t]);
      qtu_wait_blocked(q, 1, 0, 0);
      KT_CODE(kiln_queue_put(q, QTU_ITEM(42), 0), KILN_OK);
      KT_CODE(qtu_finish(&o), KILN_OK);
      KT_EQ(QTU_VAL(o.item), 42);
      KT_TRUE(kiln_queue_empty(q));
      kiln_queue_destroy(q);
    }
  }
}

/* Q-07 (kiln's convention, not CPython's ValueError): a negative timeout waits forever, in put,
 * get and join; NaN is KILN_EINVAL for all three; a huge timeout waits like forever. */
TEST(negative_timeout_waits_forever_nan_einval) {
  kiln_queue *q = qtu_queue(KILN_QUEUE_FIFO, 1);
  void *it = QTU_ITEM(1);
  KT_CODE(kiln_queue_put(q, QTU_ITEM(1), NAN), KILN_EINVAL);
  KT_CODE(kiln_queue_get(q, &it, NAN), KILN_EINVAL);
  KT_CODE(kiln_queue_join(q, NAN), KILN_EINVAL);
  KT_EQ(kiln_queue_qsize(q), 0);

  /* get(-5) and get(1e300) block until a put. */
  static const double forever[2] = {-5, 1e300};
  for (int t = 0; t < 2; t++) {
    qtu_op g;
    qtu_start(&g, qtu_get_main, q, NULL, forever[t]);
    qtu_wait_blocked(q, 1, 0, 0);
    KT_CODE(kiln_queue_put(q, QTU_ITEM(9), 0), KILN_OK);
    KT_CODE(qtu_finish(&g), KILN_OK);
    KT_EQ(QTU_VAL(g.item), 9);
  }
  /* put(-0.5) and put(1e300) on a full queue block until a get. */
  KT_CODE(kiln_queue_put(q, QTU_ITEM(1), -1), KILN_OK);
  for (int t = 0; t < 2; t++) {
    qtu_op p;
    qtu_start(&p, qtu_put_main, q, QTU_ITEM(2), t ? 1e300 : -0.5);
    qtu_wait_blocked(q, 0, 1, 0);
    KT_CODE(kiln_queue_get(q, &it, -1), KILN_OK);
    KT_CODE(qtu_finish(&p), KILN_OK);
  }
  /* join(-1) blocks until the last task_done. */
  qtu_op j;
  qtu_start(&j, qtu_join_main, q, NULL, -1);
  qtu_wait_blocked(q, 0, 0, 1);
  for (int i = 0; i < 5; i++) KT_CODE(kiln_queue_task_done(q), KILN_OK); /* 5 puts so far */
  KT_CODE(qtu_finish(&j), KILN_OK);
  KT_CODE(kiln_queue_task_done(q), KILN_EINVAL);
  kiln_queue_destroy(q);
}

/* task_done with nothing unfinished -> EINVAL, on a fresh queue and after join returned. */
TEST(task_done_too_often_is_einval) {
  kiln_queue *q = qtu_queue(KILN_QUEUE_FIFO, 0);
  KT_CODE(kiln_queue_task_done(q), KILN_EINVAL);
  KT_CODE(kiln_queue_join(q, 0), KILN_OK);
  KT_CODE(kiln_queue_put(q, QTU_ITEM(1), 0), KILN_OK);
  KT_CODE(kiln_queue_put(q, QTU_ITEM(2), 0), KILN_OK);
  void *it;
  KT_CODE(kiln_queue_get(q, &it, 0), KILN_OK);
  KT_CODE(kiln_queue_get(q, &it, 0), KILN_OK);
  KT_CODE(kiln_queue_task_done(q), KILN_OK);
  KT_CODE(kiln_queue_task_done(q), KILN_OK);
  KT_CODE(kiln_queue_join(q, -1), KILN_OK);
  KT_CODE(kiln_queue_task_done(q), KILN_EINVAL);
  kiln_queue_destroy(q);
}

/* Q-10 workers: get an item, add it to the sum, task_done; item 0 is never a stop signal, the
 * queue's shutdown is. */
typedef struct sum_ctx {
  kiln_queue *q;
  _Atomic long sum;
  _Atomic long done;
} sum_ctx;

static void *sum_worker(void *a) {
  sum_ctx *c = a;
  void *it;
  int rc;
  while ((rc = kiln_queue_get(c->q, &it, -1)) == 0) {
    atomic_fetch_add_explicit(&c->sum, (long)QTU_VAL(it), memory_order_relaxed);
    atomic_fetch_add_explicit(&c->done, 1, memory_order_relaxed);
    KT_CODE(kiln_queue_task_done(c->q), KILN_OK);
  }
  KT_CODE(rc, KILN_ESHUTDOWN);
  return NULL;
}

/* join returns once every put is task_done'd, with the workers' effects visible; it can be
 * reused after more puts; a timed join on unfinished work times out. */
TEST(join_waits_until_every_item_task_done) {
  kiln_queue *q = qtu_queue(KILN_QUEUE_FIFO, 0);
  sum_ctx c = {.q = q};
  pthread_t th[2];
  for (int i = 0; i < 2; i++) KT_EQ(pthread_create(&th[i], NULL, sum_worker, &c), 0);
  for (int round = 1; round <= 2; round++) {
    for (int i = 0; i < 100; i++) KT_CODE(kiln_queue_put(q, QTU_ITEM(i), -1), KILN_OK);
    KT_CODE(kiln_queue_join(q, -1), KILN_OK);
    /* relaxed is enough: join's mutex orders the workers' adds before this read */
    KT_EQ(atomic_load_explicit(&c.sum, memory_order_relaxed), round * 4950);
    KT_EQ(atomic_load_explicit(&c.done, memory_order_relaxed), round * 100);
  }
  kiln_queue_shutdown(q, false);
  for (int i = 0; i < 2; i++) KT_EQ(pthread_join(th[i], NULL), 0);

  /* join(0) and join(0.1) with an unfinished put */
  kiln_queue *q2 = qtu_queue(KILN_QUEUE_LIFO, 0);
  KT_CODE(kiln_queue_put(q2, QTU_ITEM(1), 0), KILN_OK);
  KT_CODE(kiln_queue_join(q2, 0), KILN_ETIMEDOUT);
  double t0 = kt_now();
  KT_CODE(kiln_queue_join(q2, 0.1), KILN_ETIMEDOUT);
  KT_TIMED(kt_now() - t0, 0.1);
  /* task_done before the get is allowed (it only counts) */
  KT_CODE(kiln_queue_task_done(q2), KILN_OK);
  KT_CODE(kiln_queue_join(q2, 0), KILN_OK);
  kiln_queue_destroy(q2);
  kiln_queue_destroy(q);
}

/* after shutdown, put -> ESHUTDOWN; get returns what is left, then ESHUTDOWN (0, timed and
 * blocking); is_shutdown false -> true; shutdown, immediate, non-immediate all accepted. */
TEST(shutdown_refuses_puts_gets_drain_then_eshutdown) {
  for (int k = 0; k < 3; k++) {
    kiln_queue *q = qtu_queue(KINDS[k], 0);
    KT_FALSE(kiln_queue_is_shutdown(q));
    KT_CODE(kiln_queue_put(q, QTU_ITEM(1), 0), KILN_OK);
    KT_CODE(kiln_queue_put(q, QTU_ITEM(2), 0), KILN_OK);
    kiln_queue_shutdown(q, false);
    KT_TRUE(kiln_queue_is_shutdown(q));
    KT_CODE(kiln_queue_put(q, QTU_ITEM(3), 0), KILN_ESHUTDOWN);
    KT_CODE(kiln_queue_put(q, QTU_ITEM(3), -1), KILN_ESHUTDOWN);
    KT_CODE(kiln_queue_put(q, QTU_ITEM(3), 0.1), KILN_ESHUTDOWN);
    KT_EQ(kiln_queue_qsize(q), 2);
    void *it = NULL;
    KT_CODE(kiln_queue_get(q, &it, 0), KILN_OK);
    KT_EQ(QTU_VAL(it), k == 1 ? 2 : 1);
    KT_CODE(kiln_queue_get(q, &it, -1), KILN_OK);
    KT_EQ(QTU_VAL(it), k == 1 ? 1 : 2);
    double t0 = kt_now();
    KT_CODE(kiln_queue_get(q, &it, 0), KILN_ESHUTDOWN);
    KT_CODE(kiln_queue_get(q, &it, 10), KILN_ESHUTDOWN);
    KT_CODE(kiln_queue_get(q, &it, -1), KILN_ESHUTDOWN);
    KT_TRUE(kt_now() - t0 < 1.0); /* none of them waited */
    KT_PTR_EQ(it, NULL);
    /* two task_dones are owed; join waits for them even after shutdown */
    KT_CODE(kiln_queue_join(q, 0), KILN_ETIMEDOUT);
    KT_CODE(kiln_queue_task_done(q), KILN_OK);
    KT_CODE(kiln_queue_task_done(q), KILN_OK);
    KT_CODE(kiln_queue_join(q, 0), KILN_OK);
    kiln_queue_destroy(q);
  }
  /* allowed transitions: normal, immediate, normal */
  kiln_queue *q = qtu_queue(KILN_QUEUE_FIFO, 0);
  KT_CODE(kiln_queue_put(q, QTU_ITEM(1), 0), KILN_OK);
  kiln_queue_shutdown(q, false);
  KT_TRUE(kiln_queue_is_shutdown(q));
  kiln_queue_shutdown(q, true);
  KT_TRUE(kiln_queue_is_shutdown(q));
  KT_EQ(kiln_queue_qsize(q), 0);
  kiln_queue_shutdown(q, false);
  KT_TRUE(kiln_queue_is_shutdown(q));
  void *it;
  KT_CODE(kiln_queue_get(q, &it, 0), KILN_ESHUTDOWN);
  kiln_queue_destroy(q);
}

/* immediate shutdown drops the items; get -> ESHUTDOWN at once; unfinished tasks drop with
 * the items, so join returns; then task_done -> EINVAL. Items already taken still count. */
TEST(immediate_shutdown_drops_items_and_tasks) {
  for (int k = 0; k < 3; k++) {
    kiln_queue *q = qtu_queue(KINDS[k], 0);
    for (int i = 0; i < 3; i++) KT_CODE(kiln_queue_put(q, QTU_ITEM(i), 0), KILN_OK);
    kiln_queue_shutdown(q, true);
    KT_TRUE(kiln_queue_is_shutdown(q));
    KT_EQ(kiln_queue_qsize(q), 0);
    KT_TRUE(kiln_queue_empty(q));
    void *it;
    double t0 = kt_now();
    KT_CODE(kiln_queue_get(q, &it, -1), KILN_ESHUTDOWN);
    KT_CODE(kiln_queue_get(q, &it, 0), KILN_ESHUTDOWN);
    KT_TRUE(kt_now() - t0 < 1.0);
    KT_CODE(kiln_queue_join(q, -1), KILN_OK);
    KT_CODE(kiln_queue_task_done(q), KILN_EINVAL);
    KT_CODE(kiln_queue_put(q, QTU_ITEM(1), 0), KILN_ESHUTDOWN);
    kiln_queue_destroy(q);
  }
  /* 3 put, 1 taken (not yet task_done'd), 2 dropped: one task_done is still owed. */
  kiln_queue *q = qtu_queue(KILN_QUEUE_FIFO, 0);
  for (int i = 0; i < 3; i++) KT_CODE(kiln_queue_put(q, QTU_ITEM(i), 0), KILN_OK);
  void *it;
  KT_CODE(kiln_queue_get(q, &it, 0), KILN_OK);
  kiln_queue_shutdown(q, true);
  KT_CODE(kiln_queue_join(q, 0), KILN_ETIMEDOUT);
  KT_CODE(kiln_queue_task_done(q), KILN_OK);
  KT_CODE(kiln_queue_join(q, 0), KILN_OK);
  KT_CODE(kiln_queue_task_done(q), KILN_EINVAL);
  kiln_queue_destroy(q);
}

/* Q-15 putters: blocked on a full queue, both modes wake them with ESHUTDOWN; the items stay
 * (normal) or are dropped (immediate). */
static void q15_putters(bool immediate) {
  kiln_queue *q = qtu_queue(KILN_QUEUE_FIFO, 2);
  KT_CODE(kiln_queue_put(q, QTU_ITEM(1), 0), KILN_OK);
  KT_CODE(kiln_queue_put(q, QTU_ITEM(2), 0), KILN_OK);
  qtu_op p[3];
  for (int i = 0; i < 3; i++) qtu_start(&p[i], qtu_put_main, q, QTU_ITEM(10 + i), i == 2 ? 10 : -1);
  qtu_wait_blocked(q, 0, 3, 0);
  kiln_queue_shutdown(q, immediate);
  for (int i = 0; i < 3; i++) KT_CODE(qtu_finish(&p[i]), KILN_ESHUTDOWN);
  KT_EQ(kiln_queue_qsize(q), immediate ? 0 : 2);
  kiln_queue_destroy(q);
}

/* Q-15 getters: n_getters blocked on an empty queue; then nput items and a shutdown. */
static void q15_getters(bool immediate, int nput, int want_ok) {
  kiln_queue *q = qtu_queue(KILN_QUEUE_FIFO, 0);
  qtu_op g[3];
  for (int i = 0; i < 3; i++) qtu_start(&g[i], qtu_get_main, q, NULL, i == 2 ? 10 : -1);
  qtu_wait_blocked(q, 3, 0, 0);
  /* The getters may wake in any order between these calls; the items stay until taken, so
   * exactly nput getters get one whatever the order. */
  for (int i = 0; i < nput; i++) KT_CODE(kiln_queue_put(q, QTU_ITEM(100 + i), 0), KILN_OK);
  kiln_queue_shutdown(q, immediate);
  int ok = 0, shut = 0;
  uintptr_t sum = 0;
  for (int i = 0; i < 3; i++) {
    int rc = qtu_finish(&g[i]);
    if (rc == KILN_OK) {
      ok++;
      sum += QTU_VAL(g[i].item);
    } else {
      KT_CODE(rc, KILN_ESHUTDOWN);
      KT_PTR_EQ(g[i].item, NULL);
      shut++;
    }
  }
  KT_EQ(ok, want_ok);
  KT_EQ(shut, 3 - want_ok);
  if (want_ok == 2) KT_EQ(sum, 201);
  kiln_queue_destroy(q);
}

/* blocked putters get ESHUTDOWN (both modes); blocked getters get ESHUTDOWN; normal mode
 * with 2 items and 3 getters: exactly one ESHUTDOWN; immediate: all three. */
TEST(shutdown_wakes_blocked_putters_and_getters) {
  q15_putters(false);
  q15_putters(true);
  q15_getters(false, 0, 0);
  q15_getters(true, 0, 0);
  /* puts racing the blocked getters' wake-ups: the 2 items still go to exactly 2 getters */
  q15_getters(false, 2, 2);

  /* CPython's own shape: 2 items, shutdown, then 3 getters */
  for (int imm = 0; imm < 2; imm++) {
    kiln_queue *q = qtu_queue(KILN_QUEUE_FIFO, 0);
    KT_CODE(kiln_queue_put(q, QTU_ITEM(1), 0), KILN_OK);
    KT_CODE(kiln_queue_put(q, QTU_ITEM(2), 0), KILN_OK);
    kiln_queue_shutdown(q, imm);
    qtu_op g[3];
    for (int i = 0; i < 3; i++) qtu_start(&g[i], qtu_get_main, q, NULL, -1);
    int shut = 0;
    for (int i = 0; i < 3; i++) shut += qtu_finish(&g[i]) == KILN_ESHUTDOWN;
    KT_EQ(shut, imm ? 3 : 1);
    kiln_queue_destroy(q);
  }
}

/* Q-16 mixed workers. */
typedef struct mix_ctx {
  kiln_queue *q;
  _Atomic long put, got;
} mix_ctx;

static void *mix_producer(void *a) {
  mix_ctx *c = a;
  int rc;
  for (uintptr_t i = 0; (rc = kiln_queue_put(c->q, QTU_ITEM(i), -1)) == 0; i++)
    atomic_fetch_add_explicit(&c->put, 1, memory_order_relaxed);
  KT_CODE(rc, KILN_ESHUTDOWN);
  return NULL;
}

static void *mix_consumer(void *a) {
  mix_ctx *c = a;
  void *it;
  int rc;
  while ((rc = kiln_queue_get(c->q, &it, -1)) == 0) {
    atomic_fetch_add_explicit(&c->got, 1, memory_order_relaxed);
    KT_CODE(kiln_queue_task_done(c->q), KILN_OK);
  }
  KT_CODE(rc, KILN_ESHUTDOWN);
  return NULL;
}

static void q16_mix(bool immediate) {
  kiln_queue *q = qtu_queue(KILN_QUEUE_FIFO, 8);
  mix_ctx c = {.q = q};
  pthread_t prod[2], cons[2];
  qtu_op j[2];
  for (int i = 0; i < 2; i++) {
    KT_EQ(pthread_create(&prod[i], NULL, mix_producer, &c), 0);
    KT_EQ(pthread_create(&cons[i], NULL, mix_consumer, &c), 0);
    qtu_start(&j[i], qtu_join_main, q, NULL, -1);
  }
  /* let some items flow: a get/put handshake through the queue itself */
  while (atomic_load_explicit(&c.got, memory_order_relaxed) < 1000) sched_yield();
  kiln_queue_shutdown(q, immediate);
  for (int i = 0; i < 2; i++) {
    KT_EQ(pthread_join(prod[i], NULL), 0);
    KT_EQ(pthread_join(cons[i], NULL), 0);
    KT_CODE(qtu_finish(&j[i]), KILN_OK);
  }
  long put = atomic_load_explicit(&c.put, memory_order_relaxed);
  long got = atomic_load_explicit(&c.got, memory_order_relaxed);
  if (immediate) KT_TRUE(got <= put);
  else KT_EQ(got, put);
  KT_EQ(kiln_queue_qsize(q), 0);
  KT_CODE(kiln_queue_join(q, 0), KILN_OK);
  kiln_queue_destroy(q);
}

/* joiners return after an immediate shutdown; after a normal one only once the items left
 * are taken and task_done'd; producers, consumers and joiners together all finish. */
TEST(shutdown_releases_joiners) {
  for (int imm = 0; imm < 2; imm++) {
    kiln_queue *q = qtu_queue(KILN_QUEUE_FIFO, 0);
    for (int i = 0; i < 3; i++) KT_CODE(kiln_queue_put(q, QTU_ITEM(i), 0), KILN_OK);
    qtu_op j[2];
    qtu_start(&j[0], qtu_join_main, q, NULL, -1);
    qtu_start(&j[1], qtu_join_main, q, NULL, 30);
    qtu_wait_blocked(q, 0, 0, 2);
    kiln_queue_shutdown(q, imm);
    if (!imm) {
      /* still owed: 3 gets and task_dones */
      KT_CODE(kiln_queue_join(q, 0), KILN_ETIMEDOUT);
      void *it;
      for (int i = 0; i < 3; i++) {
        KT_CODE(kiln_queue_get(q, &it, 0), KILN_OK);
        KT_CODE(kiln_queue_join(q, 0), KILN_ETIMEDOUT);
        KT_CODE(kiln_queue_task_done(q), KILN_OK);
      }
      KT_CODE(kiln_queue_get(q, &it, 0), KILN_ESHUTDOWN);
    }
    for (int i = 0; i < 2; i++) KT_CODE(qtu_finish(&j[i]), KILN_OK);
    KT_CODE(kiln_queue_task_done(q), KILN_EINVAL);
    kiln_queue_destroy(q);
  }
  q16_mix(false);
  q16_mix(true);
}

/* ---- API beyond the conformance rules -------------------------------------------------------- */

static int cmp_never(const void *a, const void *b, void *ctx) {
  (void)a, (void)b, (void)ctx;
  return 0;
}

/* create: NULL cfg is the defaults; a priority queue needs compare; a bad kind is EINVAL;
 * destroy(NULL) is a no-op. */
TEST(create) {
  kiln_queue_config cfg;
  memset(&cfg, 0xff, sizeof cfg);
  kiln_queue_config_default(&cfg);
  KT_EQ(cfg.kind, KILN_QUEUE_FIFO);
  KT_EQ(cfg.maxsize, 0);
  KT_TRUE(cfg.compare == NULL && cfg.compare_ctx == NULL && cfg.item_free == NULL);

  kiln_queue *q = (kiln_queue *)&cfg;
  KT_CODE(kiln_queue_create(NULL, &q), KILN_OK);
  KT_EQ(kiln_queue_maxsize(q), 0);
  KT_CODE(kiln_queue_put(q, QTU_ITEM(1), 0), KILN_OK);
  KT_CODE(kiln_queue_put(q, QTU_ITEM(2), 0), KILN_OK);
  void *it;
  KT_CODE(kiln_queue_get(q, &it, 0), KILN_OK);
  KT_EQ(QTU_VAL(it), 1); /* FIFO */
  kiln_queue_destroy(q);

  cfg.kind = KILN_QUEUE_PRIORITY;
  q = (kiln_queue *)&cfg;
  KT_CODE(kiln_queue_create(&cfg, &q), KILN_EINVAL);
  KT_PTR_EQ(q, NULL);
  cfg.compare = cmp_never;
  KT_CODE(kiln_queue_create(&cfg, &q), KILN_OK);
  kiln_queue_destroy(q);

  cfg.kind = (kiln_queue_kind)7;
  q = (kiln_queue *)&cfg;
  KT_CODE(kiln_queue_create(&cfg, &q), KILN_EINVAL);
  KT_PTR_EQ(q, NULL);
  kiln_queue_destroy(NULL);
}

/* A keyed item for the tie test. */
typedef struct keyed {
  int key, id;
} keyed;

static int cmp_keyed(const void *a, const void *b, void *ctx) {
  KT_PTR_EQ(ctx, &cmp_keyed);
  const keyed *x = a, *y = b;
  return (x->key > y->key) - (x->key < y->key);
}

/* Priority: smallest first; equal keys come out in put order, across heap growth and shrinking. */
TEST(priority_ties) {
  enum { N = 5000 };
  kiln_queue_config cfg;
  kiln_queue_config_default(&cfg);
  cfg.kind = KILN_QUEUE_PRIORITY;
  cfg.compare = cmp_keyed;
  cfg.compare_ctx = (void *)&cmp_keyed;
  kiln_queue *q = NULL;
  KT_CODE(kiln_queue_create(&cfg, &q), KILN_OK);
  static keyed items[N];
  unsigned seed = 12345;
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < N; i++) {
      seed = seed * 1103515245u + 12345u;
      items[i] = (keyed){(int)((seed >> 16) % 10), i};
      KT_CODE(kiln_queue_put(q, &items[i], 0), KILN_OK);
    }
    KT_EQ(kiln_queue_qsize(q), N);
    keyed *prev = NULL;
    for (int i = 0; i < N; i++) {
      void *it;
      KT_CODE(kiln_queue_get(q, &it, 0), KILN_OK);
      keyed *k = it;
      if (prev) {
        KT_TRUE(prev->key <= k->key);
        if (prev->key == k->key) KT_TRUE(prev->id < k->id);
      }
      prev = k;
    }
    KT_TRUE(kiln_queue_empty(q));
  }
  kiln_queue_destroy(q);
}

/* FIFO and LIFO keep their order while the ring wraps, grows and shrinks (interleaved puts and
 * gets; the size swings between 0 and a few thousand, past the shrink floor). */
TEST(order_growth) {
  for (int k = 0; k < 2; k++) {
    kiln_queue *q = qtu_queue(KINDS[k], 0);
    uintptr_t next_put = 0, next_get = 0; /* FIFO: values come out as 0, 1, 2, ... */
    static uintptr_t stack[30000];        /* LIFO: a model stack */
    size_t depth = 0;
    unsigned seed = 99;
    for (int step = 0; step < 60000; step++) {
      seed = seed * 1103515245u + 12345u;
      int phase = (step / 10000) % 2; /* grow, then drain, then grow ... */
      bool put = depth == 0 || ((seed >> 16) % 4 != 0) == (phase == 0);
      if (put && depth < 20000) {
        KT_CODE(kiln_queue_put(q, QTU_ITEM(next_put), 0), KILN_OK);
        stack[depth++] = next_put++;
      } else {
        void *it;
        KT_CODE(kiln_queue_get(q, &it, 0), KILN_OK);
        uintptr_t want = k == 0 ? next_get++ : stack[depth - 1];
        depth--;
        KT_EQ(QTU_VAL(it), want);
      }
      KT_EQ(kiln_queue_qsize(q), depth);
    }
    kiln_queue_destroy(q);
  }
}

/* set_maxsize: growing wakes blocked putters (as many as fit); shrinking below qsize keeps the
 * items and makes puts wait until gets make room; 0 makes the queue unbounded. */
TEST(set_maxsize) {
  kiln_queue *q = qtu_queue(KILN_QUEUE_FIFO, 1);
  KT_CODE(kiln_queue_put(q, QTU_ITEM(0), 0), KILN_OK);
  qtu_op p[3];
  for (int i = 0; i < 3; i++) qtu_start(&p[i], qtu_put_main, q, QTU_ITEM(1 + i), -1);
  qtu_wait_blocked(q, 0, 3, 0);
  kiln_queue_set_maxsize(q, 2); /* room for one: one putter gets in, two go back to sleep */
  KT_EQ(kiln_queue_maxsize(q), 2);
  qtu_wait_blocked(q, 0, 2, 0);
  KT_EQ(kiln_queue_qsize(q), 2);
  KT_TRUE(kiln_queue_full(q));
  kiln_queue_set_maxsize(q, 0);
  for (int i = 0; i < 3; i++) KT_CODE(qtu_finish(&p[i]), KILN_OK);
  KT_EQ(kiln_queue_qsize(q), 4);
  KT_FALSE(kiln_queue_full(q));

  /* shrink to 2 with 4 items: full, puts fail until qsize < 2 */
  kiln_queue_set_maxsize(q, 2);
  KT_TRUE(kiln_queue_full(q));
  KT_CODE(kiln_queue_put(q, QTU_ITEM(9), 0), KILN_EFULL);
  qtu_op late;
  qtu_start(&late, qtu_put_main, q, QTU_ITEM(9), -1);
  qtu_wait_blocked(q, 0, 1, 0);
  void *it;
  for (int i = 0; i < 2; i++) {
    KT_CODE(kiln_queue_get(q, &it, 0), KILN_OK);
    if (i == 0) KT_EQ(QTU_VAL(it), 0); /* the three putters' items came in any order */
    KT_EQ(kiln_queue_qsize(q), 3 - i); /* qsize >= maxsize: the putter stays asleep */
    KT_TRUE(kiln_queue_full(q));
  }
  qtu_wait_blocked(q, 0, 1, 0);
  KT_CODE(kiln_queue_get(q, &it, 0), KILN_OK); /* now 1 < 2: the putter is woken */
  KT_CODE(qtu_finish(&late), KILN_OK);
  KT_EQ(kiln_queue_qsize(q), 2);
  kiln_queue_destroy(q);
}

/* Counting item_free. */
static _Atomic int g_freed;
static void count_free(void *item) {
  atomic_fetch_add_explicit(&g_freed, 1, memory_order_relaxed);
  free(item);
}

static kiln_queue *freeing_queue(kiln_queue_kind kind) {
  kiln_queue_config cfg;
  kiln_queue_config_default(&cfg);
  cfg.kind = kind;
  cfg.item_free = count_free;
  if (kind == KILN_QUEUE_PRIORITY) cfg.compare = qtu_cmp_uintptr;
  kiln_queue *q = NULL;
  KT_CODE(kiln_queue_create(&cfg, &q), KILN_OK);
  return q;
}

/* item_free gets exactly the items an immediate shutdown drops and those left at destroy; not
 * those taken by get, nor any on a normal shutdown. (ASan checks for leaks and double frees.) */
TEST(item_free) {
  for (int k = 0; k < 3; k++) {
    /* immediate shutdown: 10 put, 3 taken, 7 freed; destroy frees nothing more */
    atomic_store(&g_freed, 0);
    kiln_queue *q = freeing_queue(KINDS[k]);
    for (int i = 0; i < 10; i++) KT_CODE(kiln_queue_put(q, malloc(16), 0), KILN_OK);
    for (int i = 0; i < 3; i++) {
      void *it;
      KT_CODE(kiln_queue_get(q, &it, 0), KILN_OK);
      free(it);
    }
    kiln_queue_shutdown(q, false);
    KT_EQ(atomic_load(&g_freed), 0);
    kiln_queue_shutdown(q, true);
    KT_EQ(atomic_load(&g_freed), 7);
    kiln_queue_shutdown(q, true);
    KT_EQ(atomic_load(&g_freed), 7);
    kiln_queue_destroy(q);
    KT_EQ(atomic_load(&g_freed), 7);

    /* destroy with items left (after wrapping the ring) frees each once */
    atomic_store(&g_freed, 0);
    q = freeing_queue(KINDS[k]);
    for (int i = 0; i < 40; i++) {
      KT_CODE(kiln_queue_put(q, malloc(16), 0), KILN_OK);
      if (i % 3 == 0) {
        void *it;
        KT_CODE(kiln_queue_get(q, &it, 0), KILN_OK);
        free(it);
      }
    }
    KT_EQ(kiln_queue_qsize(q), 26);
    kiln_queue_destroy(q);
    KT_EQ(atomic_load(&g_freed), 26);

    /* destroy of an empty queue frees nothing */
    atomic_store(&g_freed, 0);
    q = freeing_queue(KINDS[k]);
    kiln_queue_destroy(q);
    KT_EQ(atomic_load(&g_freed), 0);
  }
}
