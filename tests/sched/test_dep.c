/* test_dep.c: kiln_submit_after (dependencies). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "sched_test_util.h"

struct rec {
  _Atomic int seq;
};
struct rtask {
  struct rec *r;
  int at;                    /* sequence number when it ran, -1 if never */
  kiln_future *must_be_done; /* optional: checked when it runs */
  int saw_done;
};
static int task_record(void *arg, void **result) {
  struct rtask *t = arg;
  volatile unsigned x = 0;
  for (int i = 0; i < 20000; i++) x += (unsigned)i;
  (void)x;
  if (t->must_be_done) t->saw_done = kiln_future_done(t->must_be_done);
  t->at = atomic_fetch_add(&t->r->seq, 1);
  *result = t;
  return 0;
}

static kiln_future *after(kiln_pool *p, kiln_future *const *deps, size_t n, kiln_task_fn fn,
                          void *arg) {
  kiln_future *f = NULL;
  KT_CODE(kiln_submit_after(p, deps, n, fn, arg, &f), KILN_OK);
  KT_TRUE(f != NULL);
  return f;
}

/* Dependents run only after all their deps succeeded. */
TEST(dep_runs_after) {
  kiln_pool *p = tu_pool(4);
  struct rec r = {0};
  struct rtask t[4], dt = {&r, -1, NULL, 0};
  kiln_future *deps[5];
  for (int i = 0; i < 4; i++) {
    t[i] = (struct rtask){&r, -1, NULL, 0};
    deps[i] = tu_submit(p, task_record, &t[i]);
  }
  kiln_future *pr = tu_promise();
  deps[4] = pr;
  dt.must_be_done = pr;
  kiln_future *d = after(p, deps, 5, task_record, &dt);
  for (int i = 0; i < 4; i++) KT_CODE(kiln_future_result(deps[i], -1, NULL), KILN_OK);
  KT_CODE(kiln_future_result(d, 0.05, NULL), KILN_ETIMEDOUT);
  KT_FALSE(kiln_future_done(d));
  KT_FALSE(kiln_future_running(d));
  KT_EQ(atomic_load(&r.seq), 4);
  KT_CODE(kiln_promise_resolve(pr, NULL), KILN_OK);
  void *v = NULL;
  KT_CODE(kiln_future_result(d, -1, &v), KILN_OK);
  KT_PTR_EQ(v, &dt);
  KT_EQ(dt.at, 4);
  KT_TRUE(dt.saw_done);
  for (int i = 0; i < 4; i++) KT_TRUE(t[i].at < dt.at);

  /* a diamond: b and c after a, d after b and c */
  struct rec r2 = {0};
  struct rtask ta = {&r2, -1, NULL, 0}, tb = ta, tc = ta, td = ta;
  kiln_future *pa = tu_promise();
  kiln_future *fa = after(p, &pa, 1, task_record, &ta);
  kiln_future *fb = after(p, &fa, 1, task_record, &tb);
  kiln_future *fc = after(p, &fa, 1, task_record, &tc);
  kiln_future *bc[2] = {fb, fc};
  kiln_future *fd = after(p, bc, 2, task_record, &td);
  KT_CODE(kiln_promise_resolve(pa, NULL), KILN_OK);
  KT_CODE(kiln_future_result(fd, -1, NULL), KILN_OK);
  KT_EQ(ta.at, 0);
  KT_TRUE(tb.at > ta.at && tc.at > ta.at);
  KT_EQ(td.at, 3);
  kiln_future *all[5] = {pa, fa, fb, fc, fd};
  tu_release_all(all, 5);

  tu_release_all(deps, 5);
  kiln_future_release(d);
  kiln_pool_destroy(p);
}

static int task_mustnt(void *arg, void **result) {
  (void)result;
  atomic_fetch_add((_Atomic int *)arg, 1);
  return 0;
}
static int task_fail_disk(void *arg, void **result) {
  (void)arg, (void)result;
  return kiln_task_fail(KILN_EIO, "disk on %s", "fire");
}

/* A failed dep fails the dependent with KILN_EDEPENDENCY naming the cause; fn never runs. */
TEST(dep_fail) {
  kiln_pool *p = tu_pool(2);
  _Atomic int ran = 0;
  kiln_future *bad = tu_submit(p, task_fail_disk, NULL);
  kiln_future *ok = tu_promise();
  kiln_future *deps[2] = {bad, ok};
  kiln_future *d = after(p, deps, 2, task_mustnt, &ran);
  KT_CODE(kiln_future_result(d, -1, NULL), KILN_EDEPENDENCY);
  KT_FALSE(kiln_future_cancelled(d));
  const char *msg = NULL;
  KT_CODE(kiln_future_error(d, 0, &msg), KILN_EDEPENDENCY);
  KT_STR_CONTAINS(msg, "of 2 failed");
  KT_STR_CONTAINS(msg, "KILN_EIO");
  KT_STR_CONTAINS(msg, "disk on fire");

  /* a rejected promise as the dep, second of two */
  kiln_future *rej = tu_promise();
  kiln_future *deps2[2] = {ok, rej};
  kiln_future *d2 = after(p, deps2, 2, task_mustnt, &ran);
  KT_CODE(kiln_promise_reject(rej, KILN_EPARSE, "line %d: bad token", 12), KILN_OK);
  KT_CODE(kiln_future_result(d2, -1, NULL), KILN_EDEPENDENCY);
  KT_CODE(kiln_future_error(d2, 0, &msg), KILN_EDEPENDENCY);
  KT_STR_CONTAINS(msg, "of 2 failed");
  KT_STR_CONTAINS(msg, "KILN_EPARSE");
  KT_STR_CONTAINS(msg, "line 12: bad token");
  KT_CODE(kiln_promise_resolve(ok, NULL), KILN_OK);
  kiln_pool_destroy(p);
  KT_EQ(atomic_load(&ran), 0);
  kiln_future *all[5] = {bad, ok, d, rej, d2};
  tu_release_all(all, 5);
}

/* Cancelling a dep fails (does not cancel) its dependents. */
TEST(dep_cancel) {
  kiln_pool *p = tu_pool(1);
  _Atomic int ran = 0;
  kiln_future *pr = tu_promise();
  kiln_future *d = after(p, &pr, 1, task_mustnt, &ran);
  KT_TRUE(kiln_future_cancel(pr));
  KT_CODE(kiln_future_result(d, -1, NULL), KILN_EDEPENDENCY);
  KT_FALSE(kiln_future_cancelled(d));
  const char *msg = NULL;
  KT_CODE(kiln_future_error(d, 0, &msg), KILN_EDEPENDENCY);
  KT_STR_CONTAINS(msg, "cancelled"); /* the message names the cause */

  /* a queued pool task as the dep, cancelled while a blocker holds the only worker */
  tu_blocker b;
  tu_blocker_init(&b);
  kiln_future *blk = tu_start_blocker(p, &b);
  kiln_future *q = tu_submit(p, task_mustnt, &ran);
  kiln_future *d2 = after(p, &q, 1, task_mustnt, &ran);
  kiln_future *d3 = after(p, &d2, 1, task_mustnt, &ran);
  KT_TRUE(kiln_future_cancel(q));
  tu_gate_open(&b.gate);
  KT_CODE(kiln_future_result(d2, -1, NULL), KILN_EDEPENDENCY);
  KT_CODE(kiln_future_result(d3, -1, NULL), KILN_EDEPENDENCY);
  KT_FALSE(kiln_future_cancelled(d2));
  KT_FALSE(kiln_future_cancelled(d3));
  KT_TRUE(kiln_future_cancelled(q));
  kiln_pool_destroy(p);
  KT_EQ(atomic_load(&ran), 0);
  kiln_future *all[6] = {pr, d, blk, q, d2, d3};
  tu_release_all(all, 6);
  tu_blocker_fini(&b);
}

/* A chain of 100000 dependents of a rejected root all fail, without recursion blowing the stack. */
TEST(dep_cascade) {
  enum { N = 100000 };
  kiln_pool *p = tu_pool(2);
  _Atomic int ran = 0;
  kiln_future **fs = malloc(sizeof *fs * N);
  KT_TRUE(fs != NULL);
  kiln_future *root = tu_promise();
  fs[0] = after(p, &root, 1, task_mustnt, &ran);
  for (int i = 1; i < N; i++) fs[i] = after(p, &fs[i - 1], 1, task_mustnt, &ran);
  KT_CODE(kiln_promise_reject(root, KILN_EIO, "root cause"), KILN_OK);
  for (int i = 0; i < N; i++) KT_CODE(kiln_future_result(fs[i], -1, NULL), KILN_EDEPENDENCY);
  const char *msg = NULL;
  KT_CODE(kiln_future_error(fs[0], 0, &msg), KILN_EDEPENDENCY);
  KT_STR_CONTAINS(msg, "root cause");
  KT_CODE(kiln_future_error(fs[N - 1], 0, &msg), KILN_EDEPENDENCY);
  KT_TRUE(msg != NULL);
  KT_EQ(atomic_load(&ran), 0);
  tu_release_all(fs, N);
  free(fs);
  kiln_future_release(root);
  kiln_pool_destroy(p);
}

/* Deps from several pools and promises, dependents on either pool. */
TEST(dep_mixed_pools) {
  kiln_pool *pa = tu_pool(2), *pb = tu_pool(1);
  struct rec r = {0};
  struct rtask ta = {&r, -1, NULL, 0}, tb = ta, tc = ta, td = ta;
  kiln_future *pr = tu_promise();
  kiln_future *fa = tu_submit(pa, task_record, &ta);
  kiln_future *fb = after(pb, &pr, 1, task_record, &tb);
  kiln_future *deps[4] = {fa, pr, fb, fa};
  kiln_future *fc = after(pb, deps, 4, task_record, &tc);
  kiln_future *fd = after(pa, &fc, 1, task_record, &td);
  KT_CODE(kiln_future_result(fa, -1, NULL), KILN_OK);
  KT_FALSE(kiln_future_done(fc));
  KT_CODE(kiln_promise_resolve(pr, NULL), KILN_OK);
  void *v = NULL;
  KT_CODE(kiln_future_result(fd, -1, &v), KILN_OK);
  KT_PTR_EQ(v, &td);
  KT_TRUE(tc.at > ta.at && tc.at > tb.at);
  KT_TRUE(td.at > tc.at);
  KT_EQ(atomic_load(&r.seq), 4);
  kiln_pool_destroy(pa);
  kiln_pool_destroy(pb);
  kiln_future *all[5] = {pr, fa, fb, fc, fd};
  tu_release_all(all, 5);
}

/* ndeps 0 runs like kiln_submit; duplicates of one dep count once. */
TEST(dep_zero_deps) {
  kiln_pool *p = tu_pool(2);
  int x = 3;
  kiln_future *f = after(p, NULL, 0, tu_task_ret, &x);
  void *v = NULL;
  KT_CODE(kiln_future_result(f, -1, &v), KILN_OK);
  KT_PTR_EQ(v, &x);
  kiln_future_release(f);
  kiln_future *done = tu_promise();
  KT_CODE(kiln_promise_resolve(done, NULL), KILN_OK);
  kiln_future *dd[3] = {done, done, done};
  f = after(p, dd, 3, tu_task_ret, &x);
  KT_CODE(kiln_future_result(f, -1, &v), KILN_OK);
  KT_PTR_EQ(v, &x);
  kiln_future_release(f);
  kiln_future *pend = tu_promise();
  kiln_future *pp[3] = {pend, pend, done};
  f = after(p, pp, 3, tu_task_ret, &x);
  KT_FALSE(kiln_future_done(f));
  KT_CODE(kiln_promise_resolve(pend, NULL), KILN_OK);
  KT_CODE(kiln_future_result(f, -1, &v), KILN_OK);
  kiln_future_release(f);
  kiln_future_release(done);
  kiln_future_release(pend);
  kiln_pool_destroy(p);
}

struct chain {
  _Atomic long counter;
  _Atomic long bad;
};
struct link {
  struct chain *c;
  long i;
};
static int task_link(void *arg, void **result) {
  (void)result;
  struct link *l = arg;
  long got = atomic_load_explicit(&l->c->counter, memory_order_relaxed);
  if (got != l->i) atomic_fetch_add(&l->c->bad, 1);
  atomic_store_explicit(&l->c->counter, got + 1, memory_order_relaxed);
  return 0;
}

/* A chain of 100000 tasks runs in order, each adding 1. */
TEST(dep_chain) {
  enum { N = 100000 };
  kiln_pool *p = tu_pool(4);
  struct chain c = {0, 0};
  struct link *links = malloc(sizeof *links * N);
  KT_TRUE(links != NULL);
  links[0] = (struct link){&c, 0};
  kiln_future *prev = tu_submit(p, task_link, &links[0]);
  for (long i = 1; i < N; i++) {
    links[i] = (struct link){&c, i};
    kiln_future *f = after(p, &prev, 1, task_link, &links[i]);
    kiln_future_release(prev); /* releasing does not cancel */
    prev = f;
  }
  KT_CODE(kiln_future_result(prev, -1, NULL), KILN_OK);
  KT_EQ(atomic_load(&c.counter), N);
  KT_EQ(atomic_load(&c.bad), 0);
  kiln_future_release(prev);
  kiln_pool_destroy(p);
  free(links);
}
