/* test_asc.c: kiln_as_completed (ASC-01, 03, 04 of docs/CONFORMANCE.md) and adding while
 * iterating. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "sched_test_util.h"

static int index_of(kiln_future *const *fs, size_t n, const kiln_future *f) {
  for (size_t i = 0; i < n; i++)
    if (fs[i] == f) return (int)i;
  return -1;
}

/* ASC-01: every input future is yielded exactly once (duplicates once), the already-done first. */
TEST(as_completed_yields_each_future_once_done_first) {
  kiln_future *ok = tu_promise(), *bad = tu_promise(), *canc = tu_promise();
  kiln_future *p1 = tu_promise(), *p2 = tu_promise();
  KT_CODE(kiln_promise_resolve(ok, NULL), KILN_OK);
  KT_CODE(kiln_promise_reject(bad, KILN_EIO, "x"), KILN_OK);
  KT_TRUE(kiln_future_cancel(canc));
  kiln_future *in[7] = {p1, ok, p2, bad, ok, canc, p1};
  kiln_future *distinct[5] = {p1, ok, p2, bad, canc};
  int seen[5] = {0};
  kiln_completion *c = NULL;
  KT_CODE(kiln_as_completed(in, 7, -1, &c), KILN_OK);
  KT_EQ(kiln_completion_pending(c), 5);
  /* the three done ones come first, before anything else completes */
  for (int k = 0; k < 3; k++) {
    kiln_future *y = NULL;
    KT_CODE(kiln_completion_next(c, &y), KILN_OK);
    int i = index_of(distinct, 5, y);
    KT_TRUE(i == 1 || i == 3 || i == 4);
    seen[i]++;
    kiln_future_release(y);
  }
  KT_EQ(kiln_completion_pending(c), 2);
  KT_CODE(kiln_promise_resolve(p2, NULL), KILN_OK);
  kiln_future *y = NULL;
  KT_CODE(kiln_completion_next(c, &y), KILN_OK);
  KT_PTR_EQ(y, p2);
  seen[2]++;
  kiln_future_release(y);
  KT_CODE(kiln_promise_reject(p1, KILN_EPARSE, NULL), KILN_OK);
  KT_CODE(kiln_completion_next(c, &y), KILN_OK);
  KT_PTR_EQ(y, p1);
  seen[0]++;
  kiln_future_release(y);
  KT_EQ(kiln_completion_pending(c), 0);
  KT_CODE(kiln_completion_next(c, &y), KILN_EEOF);
  for (int i = 0; i < 5; i++) KT_EQ(seen[i], 1);
  kiln_completion_destroy(c);
  tu_release_all(distinct, 5);

  /* pool tasks, completing in any order */
  enum { N = 100 };
  kiln_pool *p = tu_pool(4);
  kiln_future *fs[N];
  int seen2[N] = {0};
  for (intptr_t i = 0; i < N; i++) fs[i] = tu_submit(p, tu_task_ret, (void *)i);
  KT_CODE(kiln_as_completed(fs, N, 30.0, &c), KILN_OK);
  for (int k = 0; k < N; k++) {
    KT_CODE(kiln_completion_next(c, &y), KILN_OK);
    void *v = NULL;
    KT_CODE(kiln_future_result(y, 0, &v), KILN_OK);
    seen2[(intptr_t)v]++;
    kiln_future_release(y);
  }
  KT_CODE(kiln_completion_next(c, &y), KILN_EEOF);
  for (int i = 0; i < N; i++) KT_EQ(seen2[i], 1);
  kiln_completion_destroy(c);
  tu_release_all(fs, N);
  kiln_pool_destroy(p);
}

/* ASC-03: the timeout (0 included) is one deadline: finished ones are yielded, then
 * KILN_ETIMEDOUT. */
TEST(as_completed_timeout_is_one_deadline) {
  kiln_future *d1 = tu_promise(), *d2 = tu_promise(), *p1 = tu_promise(), *p2 = tu_promise();
  KT_CODE(kiln_promise_resolve(d1, NULL), KILN_OK);
  KT_CODE(kiln_promise_resolve(d2, NULL), KILN_OK);
  kiln_future *fs[4] = {p1, d1, p2, d2};
  kiln_completion *c = NULL;
  kiln_future *y = NULL;

  KT_CODE(kiln_as_completed(fs, 4, 0, &c), KILN_OK);
  for (int k = 0; k < 2; k++) {
    KT_CODE(kiln_completion_next(c, &y), KILN_OK);
    KT_TRUE(y == d1 || y == d2);
    kiln_future_release(y);
  }
  KT_CODE(kiln_completion_next(c, &y), KILN_ETIMEDOUT);
  KT_EQ(kiln_completion_pending(c), 2);
  kiln_completion_destroy(c);

  double t0 = kt_now();
  KT_CODE(kiln_as_completed(fs, 4, 0.2, &c), KILN_OK);
  for (int k = 0; k < 2; k++) {
    KT_CODE(kiln_completion_next(c, &y), KILN_OK);
    kiln_future_release(y);
  }
  KT_CODE(kiln_completion_next(c, &y), KILN_ETIMEDOUT);
  KT_TIMED(kt_now() - t0, 0.2);
  /* the deadline has passed: no new wait */
  t0 = kt_now();
  KT_CODE(kiln_completion_next(c, &y), KILN_ETIMEDOUT);
  KT_TRUE(kt_now() - t0 < 0.1);
  kiln_completion_destroy(c);
  KT_CODE(kiln_as_completed(fs, 4, NAN, &c), KILN_EINVAL);
  tu_release_all(fs, 4);
}

/* ASC-04: the timeout message is "N (of M) futures unfinished". */
TEST(as_completed_timeout_message_counts_unfinished) {
  kiln_future *ok = tu_promise(), *bad = tu_promise(), *pend = tu_promise(), *run = tu_promise();
  KT_CODE(kiln_promise_resolve(ok, NULL), KILN_OK);
  KT_CODE(kiln_promise_reject(bad, KILN_EIO, NULL), KILN_OK);
  KT_TRUE(kiln_promise_set_running(run));
  kiln_future *fs[4] = {pend, ok, run, bad};
  kiln_completion *c = NULL;
  KT_CODE(kiln_as_completed(fs, 4, 0.1, &c), KILN_OK);
  KT_STR_EQ(kiln_completion_message(c), "");
  kiln_future *y = NULL;
  KT_CODE(kiln_completion_next(c, &y), KILN_OK);
  kiln_future_release(y);
  KT_STR_EQ(kiln_completion_message(c), "");
  KT_CODE(kiln_completion_next(c, &y), KILN_OK);
  kiln_future_release(y);
  KT_CODE(kiln_completion_next(c, &y), KILN_ETIMEDOUT);
  KT_STR_EQ(kiln_completion_message(c), "2 (of 4) futures unfinished");
  kiln_completion_destroy(c);
  KT_CODE(kiln_promise_resolve(run, NULL), KILN_OK);
  tu_release_all(fs, 4);
}

struct feeder {
  kiln_pool *pool;
  kiln_completion *c;
  kiln_future *sentinel;
  int n;
  int rc;
};
static void *feeder_main(void *arg) {
  struct feeder *fd = arg;
  fd->rc = 0;
  for (intptr_t i = 0; i < fd->n; i++) {
    kiln_future *f = NULL;
    int rc = kiln_submit(fd->pool, tu_task_ret, (void *)i, &f);
    if (rc == 0) rc = kiln_completion_add(fd->c, f);
    /* no duplicate add here: this task may already be yielded, and then it is a new entry */
    if (rc == 0 && (i % 100) == 0) rc = kiln_completion_add(fd->c, fd->sentinel);
    kiln_future_release(f);
    if (rc) {
      fd->rc = rc;
      break;
    }
  }
  kiln_promise_resolve(fd->sentinel, NULL); /* the last add is done: let iteration end */
  return NULL;
}

/* kiln_completion_add while iterating, fed from another thread: every future exactly once. */
TEST(as_completed_add_while_iterating) {
  enum { N = 2000 };
  kiln_pool *p = tu_pool(3);
  kiln_future *sentinel = tu_promise();
  kiln_completion *c = NULL;
  KT_CODE(kiln_as_completed(&sentinel, 1, -1, &c), KILN_OK);
  struct feeder fd = {p, c, sentinel, N, 1};
  static int seen[N];
  memset(seen, 0, sizeof seen);
  int sentinel_seen = 0, total = 0;
  pthread_t t;
  pthread_create(&t, NULL, feeder_main, &fd);
  for (;;) {
    kiln_future *y = NULL;
    int rc = kiln_completion_next(c, &y);
    if (rc == KILN_EEOF) break;
    KT_CODE(rc, KILN_OK);
    total++;
    if (y == sentinel) {
      sentinel_seen++;
    } else {
      void *v = NULL;
      KT_CODE(kiln_future_result(y, 0, &v), KILN_OK);
      KT_TRUE((intptr_t)v >= 0 && (intptr_t)v < N);
      seen[(intptr_t)v]++;
    }
    kiln_future_release(y);
  }
  pthread_join(t, NULL);
  KT_CODE(fd.rc, KILN_OK);
  KT_EQ(sentinel_seen, 1);
  KT_EQ(total, N + 1);
  for (int i = 0; i < N; i++) KT_EQ(seen[i], 1);
  KT_EQ(kiln_completion_pending(c), 0);
  kiln_completion_destroy(c);
  kiln_future_release(sentinel);
  kiln_pool_destroy(p);
}

/* End of iteration: KILN_EEOF every time, also for an empty set; destroy releases unyielded. */
TEST(as_completed_eof_every_time_destroy_releases) {
  kiln_completion *c = NULL;
  kiln_future *y = (kiln_future *)&y;
  KT_CODE(kiln_as_completed(NULL, 0, -1, &c), KILN_OK);
  KT_CODE(kiln_completion_next(c, &y), KILN_EEOF);
  KT_CODE(kiln_completion_next(c, &y), KILN_EEOF);
  KT_EQ(kiln_completion_pending(c), 0);
  KT_STR_EQ(kiln_completion_message(c), "");
  kiln_completion_destroy(c);

  kiln_future *a = tu_promise(), *b = tu_promise(), *d = tu_promise();
  KT_CODE(kiln_promise_resolve(a, NULL), KILN_OK);
  KT_CODE(kiln_promise_resolve(b, NULL), KILN_OK);
  KT_CODE(kiln_promise_resolve(d, NULL), KILN_OK);
  kiln_future *fs[3] = {a, b, d};
  KT_CODE(kiln_as_completed(fs, 3, 0, &c), KILN_OK);
  for (int k = 0; k < 3; k++) {
    KT_CODE(kiln_completion_next(c, &y), KILN_OK);
    kiln_future_release(y);
  }
  KT_CODE(kiln_completion_next(c, &y), KILN_EEOF);
  KT_CODE(kiln_completion_next(c, &y), KILN_EEOF);
  KT_STR_EQ(kiln_completion_message(c), "");
  kiln_completion_destroy(c);

  /* destroyed mid-iteration: the references of the unyielded ones are released (ASan) */
  KT_CODE(kiln_as_completed(fs, 3, -1, &c), KILN_OK);
  KT_CODE(kiln_completion_next(c, &y), KILN_OK);
  kiln_future_release(y);
  KT_EQ(kiln_completion_pending(c), 2);
  kiln_completion_destroy(c);
  kiln_completion_destroy(NULL);
  tu_release_all(fs, 3);
}
