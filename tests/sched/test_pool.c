/* test_pool.c: the multiprocessing.Pool rules (POOL-xx of docs/CONFORMANCE.md) on kiln's pool:
 * apply, apply_async, map_async, close, terminate, join, initializers.
 *
 * Not applicable to a C thread pool, so not tested:
 *  - POOL-07 (the input iterator raising): kiln_map / kiln_map_async take an array, which cannot
 *    fail;
 *  - POOL-10 (imap / imap_unordered): kiln_as_completed over submitted futures is the C form and is
 *    covered by the ASC tests;
 *  - POOL-13 (scoped use): C has no `with`; map_async after terminate is refused in
 *    pool_close_runs_queued_work_terminate_cancels_it;
 *  - POOL-18 (maxtasksperchild): threads are not recycled;
 *  - POOL-09's unpicklable result: nothing is serialised between threads. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "sched_test_util.h"

struct cbcount {
  _Atomic int ok, err;
};
static void cb_ok(kiln_future *f, void *arg) {
  (void)f;
  atomic_fetch_add(&((struct cbcount *)arg)->ok, 1);
}
static void cb_err(kiln_future *f, void *arg) {
  (void)f;
  atomic_fetch_add(&((struct cbcount *)arg)->err, 1);
}

/* POOL-09: apply_async: exactly one of callback / error_callback runs, once. apply returns the
 * task's code and value. */
TEST(pool_apply_async_runs_exactly_one_callback) {
  kiln_pool *p = tu_pool(1);
  struct cbcount ok = {0, 0}, bad = {0, 0}, canc = {0, 0}, nulls = {0, 0};
  int x = 1;
  kiln_future *f1 = NULL, *f2 = NULL;
  KT_CODE(kiln_pool_apply_async(p, tu_task_ret, &x, cb_ok, cb_err, &ok, &f1), KILN_OK);
  KT_CODE(
      kiln_pool_apply_async(p, tu_task_code, (void *)(intptr_t)KILN_EIO, cb_ok, cb_err, &bad, NULL),
      KILN_OK);
  KT_CODE(
      kiln_pool_apply_async(p, tu_task_code, (void *)(intptr_t)KILN_EIO, cb_ok, NULL, &nulls, NULL),
      KILN_OK);
  KT_CODE(kiln_pool_apply_async(p, tu_task_ret, &x, NULL, cb_err, &nulls, NULL), KILN_OK);
  void *v = NULL;
  KT_CODE(kiln_future_result(f1, -1, &v), KILN_OK);
  KT_PTR_EQ(v, &x);

  tu_blocker b;
  tu_blocker_init(&b);
  kiln_future *blk = tu_start_blocker(p, &b);
  KT_CODE(kiln_pool_apply_async(p, tu_task_ret, &x, cb_ok, cb_err, &canc, &f2), KILN_OK);
  KT_TRUE(kiln_future_cancel(f2));
  KT_EQ(atomic_load(&canc.err), 1); /* callbacks run before cancel returns */
  KT_EQ(atomic_load(&canc.ok), 0);
  tu_gate_open(&b.gate);

  v = NULL;
  KT_CODE(kiln_pool_apply(p, tu_task_ret, &x, &v), KILN_OK);
  KT_PTR_EQ(v, &x);
  KT_CODE(kiln_pool_apply(p, tu_task_code, (void *)(intptr_t)KILN_EPARSE, NULL), KILN_EPARSE);
  kiln_pool_destroy(p); /* waits for every task, so for their callbacks */
  KT_EQ(atomic_load(&ok.ok), 1);
  KT_EQ(atomic_load(&ok.err), 0);
  KT_EQ(atomic_load(&bad.ok), 0);
  KT_EQ(atomic_load(&bad.err), 1);
  KT_EQ(atomic_load(&canc.ok), 0);
  KT_EQ(atomic_load(&canc.err), 1);
  KT_EQ(atomic_load(&nulls.ok), 0);
  KT_EQ(atomic_load(&nulls.err), 0);
  kiln_future_release(f1);
  kiln_future_release(f2);
  kiln_future_release(blk);
  tu_blocker_fini(&b);
}

/* POOL-15: join before close/terminate is KILN_ESTATE; after close no new work, queued work
 * runs. */
TEST(pool_join_before_close_is_estate) {
  kiln_pool *p = tu_pool(2);
  KT_CODE(kiln_pool_join(p), KILN_ESTATE);
  kiln_future *f = tu_submit(p, tu_task_ret, NULL);
  KT_CODE(kiln_pool_join(p), KILN_ESTATE);
  KT_CODE(kiln_pool_close(p), KILN_OK);
  kiln_future *g = NULL;
  KT_CODE(kiln_submit(p, tu_task_ret, NULL, &g), KILN_ESHUTDOWN);
  KT_CODE(kiln_pool_apply(p, tu_task_ret, NULL, NULL), KILN_ESHUTDOWN);
  KT_CODE(kiln_pool_apply_async(p, tu_task_ret, NULL, NULL, NULL, NULL, NULL), KILN_ESHUTDOWN);
  KT_CODE(kiln_pool_join(p), KILN_OK);
  KT_TRUE(kiln_future_done(f));
  KT_CODE(kiln_future_result(f, 0, NULL), KILN_OK);
  KT_CODE(kiln_pool_join(p), KILN_OK);
  kiln_future_release(f);
  kiln_pool_destroy(p);
}

static int task_count(void *arg, void **result) {
  (void)result;
  atomic_fetch_add((_Atomic int *)arg, 1);
  return 0;
}

/* POOL-12: terminate with 10000 pending tasks behind a blocked one: they end cancelled, join
 * returns. */
TEST(pool_terminate_cancels_pending_and_join_returns) {
  enum { N = 10000 };
  kiln_pool *p = tu_pool(1);
  tu_blocker b;
  tu_blocker_init(&b);
  kiln_future *blk = tu_start_blocker(p, &b);
  _Atomic int ran = 0;
  kiln_future **fs = malloc(sizeof *fs * N);
  KT_TRUE(fs != NULL);
  for (int i = 0; i < N; i++) fs[i] = tu_submit(p, task_count, &ran);
  double t0 = kt_now();
  KT_CODE(kiln_pool_terminate(p), KILN_OK);
  KT_TRUE(kt_now() - t0 < 10.0);
  for (int i = 0; i < N; i++) KT_TRUE(kiln_future_cancelled(fs[i]));
  kiln_future *g = NULL;
  KT_CODE(kiln_submit(p, tu_task_ret, NULL, &g), KILN_ESHUTDOWN);
  tu_gate_open(&b.gate);
  KT_CODE(kiln_pool_join(p), KILN_OK);
  KT_TRUE(kiln_future_done(blk));
  KT_CODE(kiln_future_result(blk, 0, NULL), KILN_OK);
  KT_EQ(atomic_load(&ran), 0);
  kiln_pool_destroy(p);
  tu_release_all(fs, N);
  free(fs);
  kiln_future_release(blk);
  tu_blocker_fini(&b);
}


/* POOL-01: Pool(n), n <= 0 is KILN_EINVAL; Pool(3) runs exactly 3 workers, even with 45 blocked
 * tasks. */
TEST(pool_threads_below_one_einval_runs_exactly_n) {
  kiln_pool_config cfg;
  kiln_pool_config_default(&cfg);
  kiln_pool *p = (kiln_pool *)&cfg;
  cfg.threads = 0;
  KT_CODE(kiln_pool_create(&cfg, &p), KILN_EINVAL);
  KT_PTR_EQ(p, NULL);
  cfg.threads = -1;
  KT_CODE(kiln_pool_create(&cfg, &p), KILN_EINVAL);
  p = tu_pool(3);
  KT_EQ(kiln_pool_threads(p), 3);
  tu_gate g;
  tu_gate_init(&g);
  kiln_future *fs[45];
  for (int i = 0; i < 45; i++) fs[i] = tu_submit(p, tu_task_gate, &g);
  KT_TRUE(kiln_pool_started_threads(p) <= 3);
  tu_gate_open(&g);
  for (int i = 0; i < 45; i++) KT_CODE(kiln_future_result(fs[i], -1, NULL), KILN_OK);
  KT_EQ(kiln_pool_started_threads(p), 3);
  tu_release_all(fs, 45);
  kiln_pool_destroy(p);
  tu_gate_fini(&g);
}

static int task_square(void *arg, void **result) {
  intptr_t x = (intptr_t)arg;
  *result = (void *)(x * x);
  return 0;
}

/* POOL-02: apply blocks and returns the task's result. */
TEST(pool_apply_blocks_and_returns_the_result) {
  kiln_pool *p = tu_pool(2);
  void *v = NULL;
  KT_CODE(kiln_pool_apply(p, task_square, (void *)(intptr_t)7, &v), KILN_OK);
  KT_EQ((intptr_t)v, 49);
  kiln_pool_destroy(p);
}

static int task_fail_io(void *arg, void **result) {
  (void)result;
  return kiln_task_fail(KILN_EIO, "cannot read %s", (const char *)arg);
}

/* POOL-03: a task's error reaches the caller unchanged: the same code and its message, not
 * wrapped. */
TEST(pool_task_error_reaches_caller_unwrapped) {
  kiln_pool *p = tu_pool(2);
  KT_CODE(kiln_pool_apply(p, task_fail_io, "a.obj", NULL), KILN_EIO);
  kiln_future *f = NULL;
  KT_CODE(kiln_pool_apply_async(p, task_fail_io, "b.obj", NULL, NULL, NULL, &f), KILN_OK);
  const char *msg = NULL;
  KT_CODE(kiln_future_error(f, -1, &msg), KILN_EIO);
  KT_STR_EQ(msg, "cannot read b.obj");
  kiln_future_release(f);
  kiln_pool_destroy(p);
}

static _Atomic uint64_t g_sink; /* keeps the busy loop below from being optimised away */
static int task_slow_square(void *arg, void **result) {
  intptr_t x = (intptr_t)arg;
  uint64_t spin = 0;
  for (intptr_t i = 0; i < (x % 7) * 2000; i++) spin = spin * 31u + (uint64_t)i; /* uneven order */
  atomic_store_explicit(&g_sink, spin, memory_order_relaxed);
  *result = (void *)(x * x);
  return 0;
}

/* POOL-04: map and map_async give the results in input order for any chunksize. */
TEST(pool_map_and_map_async_keep_input_order) {
  enum { N = 1000 };
  kiln_pool *p = tu_pool(4);
  void *args[N];
  for (intptr_t i = 0; i < N; i++) args[i] = (void *)i;
  size_t sizes[] = {1, 3, 64, N, 5 * N};
  for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
    void *res[N];
    int err[N];
    KT_CODE(kiln_map(p, task_slow_square, args, N, sizes[s], -1, res, err), KILN_OK);
    for (intptr_t i = 0; i < N; i++) KT_EQ((intptr_t)res[i], i * i);
    kiln_future *f = NULL;
    KT_CODE(kiln_map_async(p, task_slow_square, args, N, sizes[s], NULL, NULL, NULL, &f), KILN_OK);
    void *v = NULL;
    KT_CODE(kiln_future_result(f, -1, &v), KILN_OK);
    void **out = v;
    KT_TRUE(out != NULL);
    for (intptr_t i = 0; i < N; i++) KT_EQ((intptr_t)out[i], i * i);
    kiln_future_release(f);
  }
  void *dummy = NULL;
  KT_CODE(kiln_map_async(p, task_square, &dummy, 1, 0, NULL, NULL, NULL, NULL), KILN_EINVAL);
  kiln_pool_destroy(p);
}

struct mcb {
  _Atomic int ok, err;
  _Atomic intptr_t sum;
  _Atomic int code;
};
static void mcb_ok(kiln_future *f, void *arg) {
  struct mcb *c = arg;
  void *v = NULL;
  if (kiln_future_result(f, 0, &v) == 0 && v) {
    void **r = v;
    intptr_t s = 0;
    for (int i = 0; i < 100; i++) s += (intptr_t)r[i];
    atomic_store(&c->sum, s);
  }
  atomic_fetch_add(&c->ok, 1);
}
static void mcb_err(kiln_future *f, void *arg) {
  struct mcb *c = arg;
  atomic_store(&c->code, kiln_future_result(f, 0, NULL));
  atomic_fetch_add(&c->err, 1);
}
static int task_fail_at_13(void *arg, void **result) {
  intptr_t x = (intptr_t)arg;
  if (x == 13) return kiln_task_fail(KILN_EPARSE, "bad item %d", (int)x);
  *result = arg;
  return 0;
}

/* POOL-05: map_async: on success callback runs once with every result; if an item fails
 * error_callback runs once with that error; never both. */
TEST(pool_map_async_runs_exactly_one_callback) {
  void *args[100];
  for (intptr_t i = 0; i < 100; i++) args[i] = (void *)i;
  for (int rep = 0; rep < 20; rep++) {
    kiln_pool *p = tu_pool(3);
    struct mcb good = {0, 0, 0, 0}, bad = {0, 0, 0, 0};
    kiln_future *f = NULL, *g = NULL;
    KT_CODE(kiln_map_async(p, task_square, args, 100, 7, mcb_ok, mcb_err, &good, &f), KILN_OK);
    KT_CODE(kiln_map_async(p, task_fail_at_13, args, 100, 4, mcb_ok, mcb_err, &bad, &g), KILN_OK);
    KT_CODE(kiln_future_result(f, -1, NULL), KILN_OK);
    const char *msg = NULL;
    KT_CODE(kiln_future_error(g, -1, &msg), KILN_EPARSE);
    KT_STR_EQ(msg, "item 13: bad item 13");
    /* a waiter may wake before the completing thread has run the callbacks; destroying the pool
     * waits for every chunk, and so for every callback */
    kiln_pool_destroy(p);
    kiln_future_release(f);
    kiln_future_release(g);
    KT_EQ(atomic_load(&good.ok), 1);
    KT_EQ(atomic_load(&good.err), 0);
    KT_EQ(atomic_load(&good.sum), 328350); /* sum of i^2, i < 100 */
    KT_EQ(atomic_load(&bad.ok), 0);
    KT_EQ(atomic_load(&bad.err), 1);
    KT_EQ(atomic_load(&bad.code), KILN_EPARSE);
  }
}

/* POOL-06: an empty input gives empty results from map and map_async, also with chunksize 1, and
 * nothing stalls: map_async's callback runs before the call returns. */
TEST(pool_map_empty_input_gives_empty_results) {
  kiln_pool *p = tu_pool(2);
  KT_CODE(kiln_map(p, task_square, NULL, 0, 1, -1, NULL, NULL), KILN_OK);
  struct mcb c = {0, 0, 0, 0};
  kiln_future *f = NULL;
  KT_CODE(kiln_map_async(p, task_square, NULL, 0, 1, mcb_ok, mcb_err, &c, &f), KILN_OK);
  KT_EQ(atomic_load(&c.ok), 1);
  KT_TRUE(kiln_future_done(f));
  void *v = (void *)&c;
  KT_CODE(kiln_future_result(f, 0, &v), KILN_OK);
  KT_PTR_EQ(v, NULL);
  kiln_future_release(f);
  kiln_pool_destroy(p);
}

/* POOL-08: apply_async's future blocks until the task is done; a timed get gives KILN_ETIMEDOUT
 * after about the timeout and the task keeps running to completion. */
TEST(pool_apply_async_timed_get_times_out_task_runs_on) {
  kiln_pool *p = tu_pool(1);
  tu_blocker b;
  tu_blocker_init(&b);
  kiln_future *f = NULL;
  KT_CODE(kiln_pool_apply_async(p, tu_task_blocker, &b, NULL, NULL, NULL, &f), KILN_OK);
  KT_TRUE(tu_latch_wait(&b.started, 1, 30.0));
  double t0 = kt_now();
  KT_CODE(kiln_future_result(f, 0.1, NULL), KILN_ETIMEDOUT);
  KT_TIMED(kt_now() - t0, 0.1);
  KT_TRUE(kiln_future_running(f));
  tu_gate_open(&b.gate);
  void *v = NULL;
  KT_CODE(kiln_future_result(f, -1, &v), KILN_OK);
  KT_PTR_EQ(v, &b);
  kiln_future_release(f);
  kiln_pool_destroy(p);
  tu_blocker_fini(&b);
}

/* POOL-16: close: no new work, queued work still runs, join waits for it and for the workers.
 * terminate: queued work never completes (cancelled); map_async after it is refused. */
TEST(pool_close_runs_queued_work_terminate_cancels_it) {
  kiln_pool *p = tu_pool(1);
  tu_blocker b;
  tu_blocker_init(&b);
  kiln_future *blk = tu_start_blocker(p, &b);
  _Atomic int ran = 0;
  kiln_future *fs[20];
  for (int i = 0; i < 20; i++) fs[i] = tu_submit(p, task_count, &ran);
  KT_CODE(kiln_pool_close(p), KILN_OK);
  void *one = NULL;
  KT_CODE(kiln_map_async(p, task_square, &one, 1, 1, NULL, NULL, NULL, NULL), KILN_ESHUTDOWN);
  tu_gate_open(&b.gate);
  KT_CODE(kiln_pool_join(p), KILN_OK);
  KT_EQ(atomic_load(&ran), 20);
  for (int i = 0; i < 20; i++) KT_CODE(kiln_future_result(fs[i], 0, NULL), KILN_OK);
  KT_EQ(kiln_pool_started_threads(p), 1);
  kiln_pool_destroy(p);
  tu_release_all(fs, 20);
  kiln_future_release(blk);
  tu_blocker_fini(&b);

  p = tu_pool(1);
  tu_blocker_init(&b);
  blk = tu_start_blocker(p, &b);
  atomic_store(&ran, 0);
  struct mcb c = {0, 0, 0, 0};
  void *args[8] = {0};
  kiln_future *m = NULL;
  KT_CODE(kiln_map_async(p, task_square, args, 8, 2, mcb_ok, mcb_err, &c, &m), KILN_OK);
  KT_CODE(kiln_pool_terminate(p), KILN_OK);
  KT_CODE(kiln_map_async(p, task_square, args, 8, 2, NULL, NULL, NULL, NULL), KILN_ESHUTDOWN);
  const char *msg = NULL;
  KT_CODE(kiln_future_error(m, -1, &msg), KILN_ECANCELLED);
  KT_STR_CONTAINS(msg, "cancelled");
  tu_gate_open(&b.gate);
  KT_CODE(kiln_pool_join(p), KILN_OK); /* every chunk done, so every callback run */
  KT_EQ(atomic_load(&c.err), 1);
  KT_EQ(atomic_load(&c.ok), 0);
  kiln_pool_destroy(p);
  kiln_future_release(m);
  kiln_future_release(blk);
  tu_blocker_fini(&b);
}

/* Cancelling a map_async future cancels its chunks that have not started. */
TEST(pool_map_async_cancel_cancels_chunks_not_started) {
  kiln_pool *p = tu_pool(1);
  tu_blocker b;
  tu_blocker_init(&b);
  kiln_future *blk = tu_start_blocker(p, &b);
  _Atomic int ran = 0;
  void *args[10];
  for (int i = 0; i < 10; i++) args[i] = &ran;
  struct mcb c = {0, 0, 0, 0};
  kiln_future *m = NULL;
  KT_CODE(kiln_map_async(p, task_count, args, 10, 1, mcb_ok, mcb_err, &c, &m), KILN_OK);
  KT_TRUE(kiln_future_cancel(m));
  KT_EQ(atomic_load(&c.err), 1);
  tu_gate_open(&b.gate);
  kiln_pool_destroy(p);
  KT_EQ(atomic_load(&ran), 0);
  KT_EQ(atomic_load(&c.ok), 0);
  KT_EQ(atomic_load(&c.err), 1);
  kiln_future_release(m);
  kiln_future_release(blk);
  tu_blocker_fini(&b);
}

static _Atomic int g_inits;
static int init_count(void *arg) {
  (void)arg;
  atomic_fetch_add(&g_inits, 1);
  return 0;
}

/* POOL-19: The initializer runs once in each worker: one worker, one call, however many tasks. */
TEST(pool_initializer_runs_once_per_worker) {
  kiln_pool_config cfg;
  kiln_pool_config_default(&cfg);
  cfg.threads = 1;
  cfg.init = init_count;
  kiln_pool *p = NULL;
  KT_CODE(kiln_pool_create(&cfg, &p), KILN_OK);
  for (int i = 0; i < 50; i++) KT_CODE(kiln_pool_apply(p, tu_task_ret, NULL, NULL), KILN_OK);
  kiln_pool_destroy(p);
  KT_EQ(atomic_load(&g_inits), 1);
}

/* POOL-21: AsyncResult: ready() is kiln_future_done; successful() is a 0 result once done; waiting
 * with a timeout never fails the future (KILN_ETIMEDOUT is only the wait's outcome). */
TEST(pool_async_result_ready_successful_and_timed_wait) {
  kiln_pool *p = tu_pool(1);
  tu_blocker b;
  tu_blocker_init(&b);
  kiln_future *blk = tu_start_blocker(p, &b);
  kiln_future *f = NULL, *g = NULL;
  KT_CODE(kiln_pool_apply_async(p, tu_task_ret, NULL, NULL, NULL, NULL, &f), KILN_OK);
  KT_CODE(kiln_pool_apply_async(p, tu_task_code, (void *)(intptr_t)KILN_EIO, NULL, NULL, NULL, &g),
          KILN_OK);
  KT_FALSE(kiln_future_done(f));
  KT_CODE(kiln_future_result(f, 0, NULL), KILN_ETIMEDOUT);
  KT_FALSE(kiln_future_done(f));
  tu_gate_open(&b.gate);
  KT_CODE(kiln_future_result(f, -1, NULL), KILN_OK);
  KT_CODE(kiln_future_result(g, -1, NULL), KILN_EIO);
  KT_TRUE(kiln_future_done(f) && kiln_future_done(g));
  kiln_pool_destroy(p);
  kiln_future_release(f);
  kiln_future_release(g);
  kiln_future_release(blk);
  tu_blocker_fini(&b);
}

static void *join_thread(void *arg) { return (void *)(intptr_t)kiln_pool_join((kiln_pool *)arg); }

/* join with a timeout: KILN_ETIMEDOUT after about the timeout while a task still runs (and the
 * pool keeps working), 0 once it is done; two threads joining at once both return only after the
 * workers have exited. */
TEST(pool_join_timeout) {
  kiln_pool *p = tu_pool(2);
  KT_CODE(kiln_pool_join_timeout(p, 0), KILN_ESTATE); /* not closed */
  tu_blocker b;
  tu_blocker_init(&b);
  kiln_future *blk = tu_start_blocker(p, &b);
  KT_CODE(kiln_pool_close(p), KILN_OK);
  double t0 = kt_now();
  KT_CODE(kiln_pool_join_timeout(p, 0.1), KILN_ETIMEDOUT);
  KT_TIMED(kt_now() - t0, 0.1);
  KT_CODE(kiln_pool_join_timeout(p, 0), KILN_ETIMEDOUT);
  KT_CODE(kiln_pool_join_timeout(p, NAN), KILN_EINVAL);
  KT_FALSE(kiln_future_done(blk));
  pthread_t th[2];
  for (int i = 0; i < 2; i++) KT_EQ(pthread_create(&th[i], NULL, join_thread, p), 0);
  tu_gate_open(&b.gate);
  for (int i = 0; i < 2; i++) {
    void *rc = NULL;
    KT_EQ(pthread_join(th[i], &rc), 0);
    KT_EQ((int)(intptr_t)rc, KILN_OK);
  }
  KT_TRUE(kiln_future_done(blk));
  KT_CODE(kiln_pool_join_timeout(p, 0), KILN_OK);
  kiln_pool_destroy(p);
  kiln_future_release(blk);
  tu_blocker_fini(&b);
}
