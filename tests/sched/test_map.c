/* test_map.c: kiln_map (MAP-01, MAP-04..MAP-08 of docs/CONFORMANCE.md). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "sched_test_util.h"

enum { MN = 60 };

/* Squares its index; later items finish first (less spinning), so completion order differs from
 * input order. */
static int map_square(void *arg, void **result) {
  intptr_t i = (intptr_t)arg;
  volatile unsigned x = 0;
  for (intptr_t k = 0; k < (MN - i) * 500; k++) x += (unsigned)k;
  (void)x;
  *result = (void *)(i * i);
  return 0;
}

/* MAP-01: results in input order, equal for chunksize 1, 3, 100; chunksize 0 is KILN_EINVAL. */
TEST(map_results_in_input_order_for_any_chunksize) {
  kiln_pool *p = tu_pool(4);
  void *args[MN];
  for (intptr_t i = 0; i < MN; i++) args[i] = (void *)i;
  size_t chunks[] = {1, 3, 100};
  for (int c = 0; c < 3; c++) {
    void *res[MN];
    int err[MN];
    for (int i = 0; i < MN; i++) res[i] = (void *)-1, err[i] = 99;
    KT_CODE(kiln_map(p, map_square, args, MN, chunks[c], -1, res, err), KILN_OK);
    for (intptr_t i = 0; i < MN; i++) {
      KT_EQ((intptr_t)res[i], i * i);
      KT_CODE(err[i], KILN_OK);
    }
  }
  void *res[MN];
  int err[MN];
  KT_CODE(kiln_map(p, map_square, args, MN, 0, -1, res, err), KILN_EINVAL);
  KT_CODE(kiln_map(p, map_square, args, MN, 2, -1, NULL, NULL), KILN_OK);
  KT_CODE(kiln_map(p, map_square, args, 0, 1, -1, res, err), KILN_OK);
  kiln_pool_destroy(p);
}

struct mitem {
  intptr_t i;
  int code; /* what the item returns */
  _Atomic int *ran;
};

static int map_item(void *arg, void **result) {
  struct mitem *m = arg;
  atomic_fetch_add(m->ran, 1);
  if (m->code) return kiln_task_fail(m->code, "item %d failed", (int)m->i);
  *result = (void *)(m->i + 1000);
  return 0;
}

/* MAP-04: the first failure in input order is map's code; errors[k] holds it; earlier results are
 * delivered. */
TEST(map_first_failure_in_input_order_is_the_code) {
  kiln_pool *p = tu_pool(3);
  _Atomic int ran = 0;
  struct mitem items[MN];
  void *args[MN];
  for (int i = 0; i < MN; i++) {
    items[i] = (struct mitem){i, 0, &ran};
    args[i] = &items[i];
  }
  items[7].code = KILN_EIO;
  items[30].code = KILN_EPARSE;
  void *res[MN];
  int err[MN];
  KT_CODE(kiln_map(p, map_item, args, MN, 1, -1, res, err), KILN_EIO);
  KT_CODE(err[7], KILN_EIO);
  KT_CODE(err[30], KILN_EPARSE);
  for (int i = 0; i < 7; i++) {
    KT_CODE(err[i], KILN_OK);
    KT_EQ((intptr_t)res[i], i + 1000);
  }
  /* the first failure decides even when a later one is earlier in the chunking */
  items[7].code = 0;
  items[2].code = KILN_EUNSUPPORTED;
  KT_CODE(kiln_map(p, map_item, args, MN, 4, -1, res, err), KILN_EUNSUPPORTED);
  KT_CODE(err[2], KILN_EUNSUPPORTED);
  KT_CODE(err[0], KILN_OK);
  KT_CODE(err[1], KILN_OK);
  KT_EQ((intptr_t)res[1], 1001);
  kiln_pool_destroy(p);
}

/* MAP-05: after a failure the later items still ran and have their results. */
TEST(map_items_after_a_failure_still_run) {
  kiln_pool *p = tu_pool(3);
  for (size_t chunk = 1; chunk <= 7; chunk += 6) {
    _Atomic int ran = 0;
    struct mitem items[MN];
    void *args[MN];
    for (int i = 0; i < MN; i++) {
      items[i] = (struct mitem){i, 0, &ran};
      args[i] = &items[i];
    }
    items[3].code = KILN_EIO;
    void *res[MN];
    int err[MN];
    KT_CODE(kiln_map(p, map_item, args, MN, chunk, -1, res, err), KILN_EIO);
    KT_EQ(atomic_load(&ran), MN);
    for (int i = 0; i < MN; i++) {
      if (i == 3) {
        KT_CODE(err[i], KILN_EIO);
        continue;
      }
      KT_CODE(err[i], KILN_OK);
      KT_EQ((intptr_t)res[i], i + 1000);
    }
  }
  kiln_pool_destroy(p);
}

struct mblock {
  intptr_t i;
  kiln_future *promise; /* items >= 2 wait (helping) on it */
  _Atomic int *ran;
};
static int map_block_promise(void *arg, void **result) {
  struct mblock *m = arg;
  atomic_fetch_add(m->ran, 1);
  if (m->i >= 2) {
    int rc = kiln_future_result(m->promise, -1, NULL);
    if (rc) return rc;
  }
  *result = (void *)(m->i + 1);
  return 0;
}

/* MAP-06: timeout is one deadline from the call: fast items are delivered, then KILN_ETIMEDOUT. */
TEST(map_timeout_is_one_deadline_from_the_call) {
  enum { N = 6 };
  kiln_pool *p = tu_pool(2);
  kiln_future *pr = tu_promise();
  _Atomic int ran = 0;
  struct mblock items[N];
  void *args[N];
  for (int i = 0; i < N; i++) {
    items[i] = (struct mblock){i, pr, &ran};
    args[i] = &items[i];
  }
  void *res[N];
  int err[N];
  double t0 = kt_now();
  int rc = kiln_map(p, map_block_promise, args, N, 1, 0.2, res, err);
  double el = kt_now() - t0;
  KT_CODE(rc, KILN_ETIMEDOUT);
  KT_TIMED(el, 0.2);
  KT_CODE(err[0], KILN_OK);
  KT_CODE(err[1], KILN_OK);
  KT_EQ((intptr_t)res[0], 1);
  KT_EQ((intptr_t)res[1], 2);
  for (int i = 2; i < N; i++) KT_TRUE(err[i] == KILN_ETIMEDOUT || err[i] == KILN_ECANCELLED);
  KT_CODE(kiln_promise_resolve(pr, NULL), KILN_OK);
  kiln_pool_destroy(p);
  kiln_future_release(pr);
}

struct mgate {
  intptr_t i;
  tu_blocker *b;
  _Atomic int *ran;
};
static int map_gate_first(void *arg, void **result) {
  struct mgate *m = arg;
  atomic_fetch_add(m->ran, 1);
  if (m->i == 0) tu_task_blocker(m->b, result);
  *result = (void *)(m->i + 1);
  return 0;
}

/* MAP-07: after the deadline the calls not started are cancelled and never run; the running one
 * is left to finish (errors[0] = KILN_ETIMEDOUT). 1 worker, item 0 blocks it. */
TEST(map_deadline_cancels_calls_not_started) {
  enum { N = 10 };
  kiln_pool *p = tu_pool(1);
  tu_blocker b;
  tu_blocker_init(&b);
  _Atomic int ran = 0;
  struct mgate items[N];
  void *args[N];
  for (int i = 0; i < N; i++) {
    items[i] = (struct mgate){i, &b, &ran};
    args[i] = &items[i];
  }
  void *res[N];
  int err[N];
  double t0 = kt_now();
  int rc = kiln_map(p, map_gate_first, args, N, 1, 0.2, res, err);
  double el = kt_now() - t0;
  KT_CODE(rc, KILN_ETIMEDOUT);
  KT_TIMED(el, 0.2);
  KT_EQ(atomic_load(&ran), 1);
  KT_CODE(err[0], KILN_ETIMEDOUT);
  for (int i = 1; i < N; i++) KT_CODE(err[i], KILN_ECANCELLED);
  tu_gate_open(&b.gate);
  kiln_pool_destroy(p); /* waits for item 0; the cancelled ones must not start now */
  KT_EQ(atomic_load(&ran), 1);
  tu_blocker_fini(&b);
}

/* MAP-08: a task returning KILN_ETIMEDOUT itself is only that item's error, not map's deadline. */
TEST(map_task_returning_etimedout_is_only_that_item) {
  enum { N = 4 };
  kiln_pool *p = tu_pool(2);
  _Atomic int ran = 0;
  struct mitem items[N];
  void *args[N];
  for (int i = 0; i < N; i++) {
    items[i] = (struct mitem){i, 0, &ran};
    args[i] = &items[i];
  }
  items[1].code = KILN_ETIMEDOUT;
  void *res[N];
  int err[N];
  double t0 = kt_now();
  KT_CODE(kiln_map(p, map_item, args, N, 1, 30.0, res, err), KILN_ETIMEDOUT);
  KT_TRUE(kt_now() - t0 < 20.0);
  KT_CODE(err[0], KILN_OK);
  KT_CODE(err[1], KILN_ETIMEDOUT);
  KT_CODE(err[2], KILN_OK);
  KT_CODE(err[3], KILN_OK);
  KT_EQ((intptr_t)res[0], 1000);
  KT_EQ((intptr_t)res[2], 1002);
  KT_EQ((intptr_t)res[3], 1003);
  KT_EQ(atomic_load(&ran), N);
  /* and without a deadline */
  KT_CODE(kiln_map(p, map_item, args, N, 3, -1, res, err), KILN_ETIMEDOUT);
  KT_CODE(err[0], KILN_OK);
  KT_CODE(err[1], KILN_ETIMEDOUT);
  KT_CODE(err[2], KILN_OK);
  KT_CODE(err[3], KILN_OK);
  KT_EQ((intptr_t)res[3], 1003);
  kiln_pool_destroy(p);
}
