/* test_wait.c: kiln_wait (WAIT-02, 04..08 of docs/CONFORMANCE.md) and its reordering of fs. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "sched_test_util.h"

static int g_v = 5;

struct completer {
  kiln_future *f;
  int code; /* 0: resolve, < 0: reject */
};
static void *completer_main(void *arg) {
  struct completer *c = arg;
  if (c->code == 0) kiln_promise_resolve(c->f, &g_v);
  else kiln_promise_reject(c->f, c->code, "failed in a thread");
  return NULL;
}
static pthread_t complete_later(struct completer *c) {
  pthread_t t;
  pthread_create(&t, NULL, completer_main, c);
  return t;
}

/* WAIT-02: FIRST_COMPLETED returns once one future completes; the others stay in not_done. */
TEST(wait_first_completed_returns_after_one) {
  kiln_future *a = tu_promise(), *b = tu_promise(), *c = tu_promise();
  kiln_future *fs[3] = {a, b, c};
  size_t nd = 99;
  KT_CODE(kiln_wait(fs, 3, KILN_FIRST_COMPLETED, 0, &nd), KILN_ETIMEDOUT);
  KT_EQ(nd, 0);
  struct completer cb = {b, 0};
  pthread_t t = complete_later(&cb);
  KT_CODE(kiln_wait(fs, 3, KILN_FIRST_COMPLETED, 30.0, &nd), KILN_OK);
  pthread_join(t, NULL);
  KT_EQ(nd, 1);
  KT_PTR_EQ(fs[0], b);
  KT_PTR_EQ(fs[1], a);
  KT_PTR_EQ(fs[2], c);

  /* pool tasks: one fast, one blocked */
  kiln_pool *p = tu_pool(2);
  tu_blocker bl;
  tu_blocker_init(&bl);
  kiln_future *slow = tu_start_blocker(p, &bl);
  kiln_future *fast = tu_submit(p, tu_task_ret, &g_v);
  kiln_future *gs[2] = {slow, fast};
  KT_CODE(kiln_wait(gs, 2, KILN_FIRST_COMPLETED, -1, &nd), KILN_OK);
  KT_EQ(nd, 1);
  KT_PTR_EQ(gs[0], fast);
  KT_PTR_EQ(gs[1], slow);
  KT_TRUE(kiln_future_running(slow));
  tu_gate_open(&bl.gate);
  kiln_future_release(slow);
  kiln_future_release(fast);
  kiln_pool_destroy(p);
  tu_blocker_fini(&bl);
  kiln_future_release(a);
  kiln_future_release(b);
  kiln_future_release(c);
}

/* WAIT-04: FIRST_EXCEPTION returns when one fails (at once if one already failed); done holds it
 * and every future already finished. */
TEST(wait_first_exception_returns_on_a_failure) {
  kiln_future *ok = tu_promise(), *p1 = tu_promise(), *bad = tu_promise(), *p2 = tu_promise();
  KT_CODE(kiln_promise_resolve(ok, NULL), KILN_OK);
  kiln_future *fs[4] = {p1, ok, bad, p2};
  size_t nd = 99;
  struct completer cb = {bad, KILN_EIO};
  pthread_t t = complete_later(&cb);
  KT_CODE(kiln_wait(fs, 4, KILN_FIRST_EXCEPTION, 30.0, &nd), KILN_OK);
  pthread_join(t, NULL);
  KT_EQ(nd, 2);
  KT_PTR_EQ(fs[0], ok);
  KT_PTR_EQ(fs[1], bad);
  KT_PTR_EQ(fs[2], p1);
  KT_PTR_EQ(fs[3], p2);

  /* one already failed: returns at once, even with timeout 0 */
  kiln_future *canc = tu_promise();
  KT_TRUE(kiln_future_cancel(canc));
  kiln_future *gs[5] = {p1, bad, ok, p2, canc};
  double t0 = kt_now();
  KT_CODE(kiln_wait(gs, 5, KILN_FIRST_EXCEPTION, 0, &nd), KILN_OK);
  KT_CODE(kiln_wait(gs, 5, KILN_FIRST_EXCEPTION, -1, &nd), KILN_OK);
  KT_TRUE(kt_now() - t0 < 1.0);
  KT_EQ(nd, 3);
  KT_PTR_EQ(gs[0], bad);
  KT_PTR_EQ(gs[1], ok);
  KT_PTR_EQ(gs[2], canc);
  KT_PTR_EQ(gs[3], p1);
  KT_PTR_EQ(gs[4], p2);

  /* a failing pool task */
  kiln_pool *p = tu_pool(2);
  kiln_future *f = tu_submit(p, tu_task_code, (void *)(intptr_t)KILN_EPARSE);
  kiln_future *hs[2] = {p1, f};
  KT_CODE(kiln_wait(hs, 2, KILN_FIRST_EXCEPTION, 30.0, &nd), KILN_OK);
  KT_EQ(nd, 1);
  KT_PTR_EQ(hs[0], f);
  kiln_future_release(f);
  kiln_pool_destroy(p);
  kiln_future *all[5] = {ok, p1, bad, p2, canc};
  tu_release_all(all, 5);
}

/* WAIT-05: cancellation is not a failure for FIRST_EXCEPTION; with no failure it is
 * ALL_COMPLETED. */
TEST(wait_first_exception_ignores_cancellation) {
  kiln_future *canc = tu_promise(), *ok = tu_promise(), *pend = tu_promise();
  KT_TRUE(kiln_future_cancel(canc));
  KT_CODE(kiln_promise_resolve(ok, NULL), KILN_OK);
  kiln_future *fs[3] = {pend, canc, ok};
  size_t nd = 99;
  double t0 = kt_now();
  KT_CODE(kiln_wait(fs, 3, KILN_FIRST_EXCEPTION, 0.2, &nd), KILN_ETIMEDOUT);
  KT_TIMED(kt_now() - t0, 0.2);
  KT_EQ(nd, 2);
  KT_PTR_EQ(fs[0], canc);
  KT_PTR_EQ(fs[1], ok);
  KT_PTR_EQ(fs[2], pend);
  struct completer cb = {pend, 0};
  pthread_t t = complete_later(&cb);
  KT_CODE(kiln_wait(fs, 3, KILN_FIRST_EXCEPTION, 30.0, &nd), KILN_OK);
  pthread_join(t, NULL);
  KT_EQ(nd, 3);
  KT_PTR_EQ(fs[0], canc);
  KT_PTR_EQ(fs[1], ok);
  KT_PTR_EQ(fs[2], pend);
  kiln_future_release(canc);
  kiln_future_release(ok);
  kiln_future_release(pend);
}

static int task_spin_ret(void *arg, void **result) {
  volatile unsigned x = 0;
  for (int i = 0; i < 50000; i++) x += (unsigned)i;
  (void)x;
  *result = arg;
  return 0;
}

/* WAIT-06: ALL_COMPLETED waits for every future; failed and cancelled count as completed. */
TEST(wait_all_completed_counts_failed_and_cancelled) {
  enum { NT = 20 };
  kiln_pool *p = tu_pool(3);
  kiln_future *fs[NT + 3];
  for (int i = 0; i < NT; i++) fs[i] = tu_submit(p, task_spin_ret, NULL);
  kiln_future *bad = tu_promise(), *canc = tu_promise(), *late = tu_promise();
  KT_CODE(kiln_promise_reject(bad, KILN_EIO, NULL), KILN_OK);
  KT_TRUE(kiln_future_cancel(canc));
  fs[NT] = late;
  fs[NT + 1] = bad;
  fs[NT + 2] = canc;
  struct completer cb = {late, KILN_EPARSE};
  pthread_t t = complete_later(&cb);
  size_t nd = 0;
  KT_CODE(kiln_wait(fs, NT + 3, KILN_ALL_COMPLETED, -1, &nd), KILN_OK);
  pthread_join(t, NULL);
  KT_EQ(nd, NT + 3);
  for (int i = 0; i < NT + 3; i++) KT_TRUE(kiln_future_done(fs[i]));
  tu_release_all(fs, NT + 3);
  kiln_pool_destroy(p);
}

/* WAIT-07: with a timeout, wait returns after it, unfinished futures in not_done. */
TEST(wait_timeout_leaves_unfinished_in_not_done) {
  kiln_future *done = tu_promise(), *pend = tu_promise();
  KT_CODE(kiln_promise_resolve(done, NULL), KILN_OK);
  kiln_future *fs[2] = {pend, done};
  size_t nd = 99;
  double t0 = kt_now();
  KT_CODE(kiln_wait(fs, 2, KILN_ALL_COMPLETED, 0.2, &nd), KILN_ETIMEDOUT);
  KT_TIMED(kt_now() - t0, 0.2);
  KT_EQ(nd, 1);
  KT_PTR_EQ(fs[0], done);
  KT_PTR_EQ(fs[1], pend);
  kiln_future *gs[1] = {pend};
  t0 = kt_now();
  KT_CODE(kiln_wait(gs, 1, KILN_FIRST_COMPLETED, 0.15, &nd), KILN_ETIMEDOUT);
  KT_TIMED(kt_now() - t0, 0.15);
  KT_EQ(nd, 0);
  KT_PTR_EQ(gs[0], pend);
  KT_CODE(kiln_wait(gs, 1, KILN_ALL_COMPLETED, NAN, &nd), KILN_EINVAL);
  kiln_future_release(done);
  kiln_future_release(pend);
}

/* WAIT-08 (documented choice): a future cancelled by the user counts as done at once, also a
 * queued pool task. */
TEST(wait_user_cancelled_future_is_done_at_once) {
  kiln_pool *p = tu_pool(1);
  tu_blocker b;
  tu_blocker_init(&b);
  kiln_future *blk = tu_start_blocker(p, &b);
  kiln_future *q = tu_submit(p, tu_task_ret, NULL);
  KT_TRUE(kiln_future_cancel(q));
  kiln_future *fs[2] = {blk, q};
  size_t nd = 99;
  KT_CODE(kiln_wait(fs, 2, KILN_FIRST_COMPLETED, 0, &nd), KILN_OK);
  KT_EQ(nd, 1);
  KT_PTR_EQ(fs[0], q);
  KT_PTR_EQ(fs[1], blk);
  kiln_future *gs[1] = {q};
  KT_CODE(kiln_wait(gs, 1, KILN_ALL_COMPLETED, 0, &nd), KILN_OK);
  KT_EQ(nd, 1);
  kiln_completion *c = NULL;
  KT_CODE(kiln_as_completed(gs, 1, 0, &c), KILN_OK);
  kiln_future *y = NULL;
  KT_CODE(kiln_completion_next(c, &y), KILN_OK);
  KT_PTR_EQ(y, q);
  kiln_future_release(y);
  KT_CODE(kiln_completion_next(c, &y), KILN_EEOF);
  kiln_completion_destroy(c);
  tu_gate_open(&b.gate);
  kiln_future_release(blk);
  kiln_future_release(q);
  kiln_pool_destroy(p);
  tu_blocker_fini(&b);
}

/* Duplicates count once; fs is reordered: distinct done (input order), distinct pending, then
 * the duplicate entries. */
TEST(wait_duplicates_count_once) {
  kiln_future *a = tu_promise(), *b = tu_promise(), *c = tu_promise();
  KT_CODE(kiln_promise_resolve(a, NULL), KILN_OK);
  KT_CODE(kiln_promise_resolve(c, NULL), KILN_OK);
  kiln_future *fs[5] = {b, a, b, c, a};
  size_t nd = 99;
  KT_CODE(kiln_wait(fs, 5, KILN_ALL_COMPLETED, 0, &nd), KILN_ETIMEDOUT);
  KT_EQ(nd, 2);
  KT_PTR_EQ(fs[0], a);
  KT_PTR_EQ(fs[1], c);
  KT_PTR_EQ(fs[2], b);
  KT_PTR_EQ(fs[3], b);
  KT_PTR_EQ(fs[4], a);

  kiln_future *gs[4] = {a, a, c, a};
  KT_CODE(kiln_wait(gs, 4, KILN_ALL_COMPLETED, 0, &nd), KILN_OK);
  KT_EQ(nd, 2);
  KT_PTR_EQ(gs[0], a);
  KT_PTR_EQ(gs[1], c);
  KT_PTR_EQ(gs[2], a);
  KT_PTR_EQ(gs[3], a);

  /* FIRST_COMPLETED with the only pending future twice */
  kiln_future *hs[3] = {b, b, a};
  KT_CODE(kiln_wait(hs, 3, KILN_FIRST_COMPLETED, 0, &nd), KILN_OK);
  KT_EQ(nd, 1);
  KT_PTR_EQ(hs[0], a);
  KT_PTR_EQ(hs[1], b);
  KT_PTR_EQ(hs[2], b);
  kiln_future_release(a);
  kiln_future_release(b);
  kiln_future_release(c);
}
