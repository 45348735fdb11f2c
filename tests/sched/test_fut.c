/* test_fut.c: futures and promises (FUT-01..FUT-10 of docs/CONFORMANCE.md). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "sched_test_util.h"

static int g_val = 42;

/* FUT-01: the four states and their predicates. */
TEST(future_states_and_predicates) {
  kiln_future *f = tu_promise();
  KT_FALSE(kiln_future_done(f));
  KT_FALSE(kiln_future_running(f));
  KT_FALSE(kiln_future_cancelled(f));
  KT_TRUE(kiln_promise_set_running(f));
  KT_TRUE(kiln_future_running(f));
  KT_FALSE(kiln_future_done(f));
  KT_FALSE(kiln_future_cancelled(f));
  KT_CODE(kiln_promise_resolve(f, &g_val), KILN_OK);
  KT_TRUE(kiln_future_done(f));
  KT_FALSE(kiln_future_running(f));
  KT_FALSE(kiln_future_cancelled(f));
  kiln_future_release(f);

  f = tu_promise();
  KT_TRUE(kiln_future_cancel(f));
  KT_TRUE(kiln_future_cancelled(f));
  KT_TRUE(kiln_future_done(f));
  KT_FALSE(kiln_future_running(f));
  kiln_future_release(f);

  f = tu_promise();
  KT_CODE(kiln_promise_reject(f, KILN_EIO, "boom"), KILN_OK);
  KT_TRUE(kiln_future_done(f));
  KT_FALSE(kiln_future_cancelled(f));
  KT_FALSE(kiln_future_running(f));
  kiln_future_release(f);

  /* The same states on a pool task. */
  kiln_pool *p = tu_pool(1);
  tu_blocker b;
  tu_blocker_init(&b);
  kiln_future *t = tu_start_blocker(p, &b);
  KT_TRUE(kiln_future_running(t));
  KT_FALSE(kiln_future_done(t));
  KT_FALSE(kiln_future_cancelled(t));
  kiln_future *q = tu_submit(p, tu_task_ret, &g_val);
  KT_FALSE(kiln_future_running(q));
  KT_FALSE(kiln_future_done(q));
  tu_gate_open(&b.gate);
  void *v = NULL;
  KT_CODE(kiln_future_result(t, -1, &v), KILN_OK);
  KT_PTR_EQ(v, &b);
  KT_CODE(kiln_future_result(q, -1, &v), KILN_OK);
  KT_PTR_EQ(v, &g_val);
  KT_TRUE(kiln_future_done(t));
  KT_FALSE(kiln_future_running(t));
  KT_FALSE(kiln_future_cancelled(t));
  kiln_future_release(t);
  kiln_future_release(q);
  kiln_pool_destroy(p);
  tu_blocker_fini(&b);
}

/* FUT-02: cancel on pending → true and cancelled; again → true, nothing changes. */
TEST(future_cancel_pending_returns_true_twice) {
  kiln_future *f = tu_promise();
  KT_TRUE(kiln_future_cancel(f));
  KT_TRUE(kiln_future_cancelled(f));
  KT_TRUE(kiln_future_done(f));
  KT_TRUE(kiln_future_cancel(f));
  KT_TRUE(kiln_future_cancelled(f));
  KT_TRUE(kiln_future_done(f));
  KT_FALSE(kiln_future_running(f));
  KT_CODE(kiln_future_result(f, 0, NULL), KILN_ECANCELLED);
  KT_FALSE(kiln_promise_set_running(f));
  kiln_future_release(f);
}

/* FUT-03: cancel on running or finished → false, state unchanged. */
TEST(future_cancel_running_or_finished_returns_false) {
  kiln_future *f = tu_promise();
  KT_TRUE(kiln_promise_set_running(f));
  KT_FALSE(kiln_future_cancel(f));
  KT_TRUE(kiln_future_running(f));
  KT_FALSE(kiln_future_cancelled(f));
  KT_FALSE(kiln_future_done(f));
  KT_CODE(kiln_promise_resolve(f, &g_val), KILN_OK);
  KT_FALSE(kiln_future_cancel(f));
  KT_TRUE(kiln_future_done(f));
  KT_FALSE(kiln_future_cancelled(f));
  void *v = NULL;
  KT_CODE(kiln_future_result(f, 0, &v), KILN_OK);
  KT_PTR_EQ(v, &g_val);
  kiln_future_release(f);

  f = tu_promise();
  KT_CODE(kiln_promise_reject(f, KILN_EPARSE, "bad %s", "token"), KILN_OK);
  KT_FALSE(kiln_future_cancel(f));
  KT_TRUE(kiln_future_done(f));
  KT_FALSE(kiln_future_cancelled(f));
  KT_CODE(kiln_future_result(f, 0, NULL), KILN_EPARSE);
  kiln_future_release(f);

  /* A running pool task cannot be cancelled. */
  kiln_pool *p = tu_pool(1);
  tu_blocker b;
  tu_blocker_init(&b);
  kiln_future *t = tu_start_blocker(p, &b);
  KT_FALSE(kiln_future_cancel(t));
  KT_TRUE(kiln_future_running(t));
  tu_gate_open(&b.gate);
  KT_CODE(kiln_future_result(t, -1, NULL), KILN_OK);
  KT_FALSE(kiln_future_cancel(t));
  KT_FALSE(kiln_future_cancelled(t));
  kiln_future_release(t);
  kiln_pool_destroy(p);
  tu_blocker_fini(&b);
}

/* FUT-04: timeout 0 never blocks; each state gives its answer. NaN is KILN_EINVAL. */
TEST(future_result_timeout_zero_never_blocks) {
  double t0 = kt_now();
  void *v = &g_val;
  const char *msg = "x";
  kiln_future *pend = tu_promise();
  KT_CODE(kiln_future_result(pend, 0, &v), KILN_ETIMEDOUT);
  KT_CODE(kiln_future_error(pend, 0, &msg), KILN_ETIMEDOUT);
  KT_CODE(kiln_future_result(pend, NAN, NULL), KILN_EINVAL);
  KT_CODE(kiln_future_error(pend, NAN, NULL), KILN_EINVAL);

  kiln_future *run = tu_promise();
  KT_TRUE(kiln_promise_set_running(run));
  KT_CODE(kiln_future_result(run, 0, NULL), KILN_ETIMEDOUT);
  KT_CODE(kiln_future_error(run, 0, NULL), KILN_ETIMEDOUT);

  kiln_future *canc = tu_promise();
  KT_TRUE(kiln_future_cancel(canc));
  KT_CODE(kiln_future_result(canc, 0, NULL), KILN_ECANCELLED);
  KT_CODE(kiln_future_error(canc, 0, NULL), KILN_ECANCELLED);

  kiln_future *fail = tu_promise();
  KT_CODE(kiln_promise_reject(fail, KILN_EIO, "disk %d", 3), KILN_OK);
  v = &g_val;
  KT_CODE(kiln_future_result(fail, 0, &v), KILN_EIO);
  KT_PTR_EQ(v, NULL);
  msg = NULL;
  KT_CODE(kiln_future_error(fail, 0, &msg), KILN_EIO);
  KT_STR_EQ(msg, "disk 3");

  kiln_future *ok = tu_promise();
  KT_CODE(kiln_promise_resolve(ok, &g_val), KILN_OK);
  v = NULL;
  KT_CODE(kiln_future_result(ok, 0, &v), KILN_OK);
  KT_PTR_EQ(v, &g_val);
  msg = "x";
  KT_CODE(kiln_future_error(ok, 0, &msg), KILN_OK);
  KT_PTR_EQ(msg, NULL);
  KT_TRUE(kt_now() - t0 < 1.0);

  kiln_future_release(pend);
  kiln_future_release(run);
  kiln_future_release(canc);
  kiln_future_release(fail);
  kiln_future_release(ok);
}

struct waiter {
  kiln_future *f;
  int use_error;
  double timeout;
  int rc;
  void *value;
  const char *msg;
};

static void *waiter_main(void *arg) {
  struct waiter *w = arg;
  if (w->use_error) w->rc = kiln_future_error(w->f, w->timeout, &w->msg);
  else w->rc = kiln_future_result(w->f, w->timeout, &w->value);
  return NULL;
}

/* FUT-05: result(timeout) and error(timeout) block until another thread completes the future. */
TEST(future_result_blocks_until_another_thread_completes) {
  kiln_future *a = tu_promise(), *b = tu_promise();
  struct waiter wa = {a, 0, 30.0, 1, NULL, NULL}, wb = {b, 1, 30.0, 1, NULL, NULL};
  struct waiter wa2 = {a, 1, -1, 1, NULL, NULL};
  pthread_t ta, tb, ta2;
  pthread_create(&ta, NULL, waiter_main, &wa);
  pthread_create(&tb, NULL, waiter_main, &wb);
  pthread_create(&ta2, NULL, waiter_main, &wa2);
  KT_CODE(kiln_promise_resolve(a, &g_val), KILN_OK);
  KT_CODE(kiln_promise_reject(b, KILN_EIO, "late failure"), KILN_OK);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  pthread_join(ta2, NULL);
  KT_CODE(wa.rc, KILN_OK);
  KT_PTR_EQ(wa.value, &g_val);
  KT_CODE(wa2.rc, KILN_OK);
  KT_PTR_EQ(wa2.msg, NULL);
  KT_CODE(wb.rc, KILN_EIO);
  KT_STR_EQ(wb.msg, "late failure");
  kiln_future_release(a);
  kiln_future_release(b);

  /* The same through a pool task released by the main thread. */
  kiln_pool *p = tu_pool(2);
  tu_blocker bl;
  tu_blocker_init(&bl);
  kiln_future *t = tu_submit(p, tu_task_blocker, &bl);
  struct waiter wt = {t, 0, 30.0, 1, NULL, NULL};
  pthread_t tt;
  pthread_create(&tt, NULL, waiter_main, &wt);
  KT_TRUE(tu_latch_wait(&bl.started, 1, 30.0));
  tu_gate_open(&bl.gate);
  pthread_join(tt, NULL);
  KT_CODE(wt.rc, KILN_OK);
  KT_PTR_EQ(wt.value, &bl);
  kiln_future_release(t);
  kiln_pool_destroy(p);
  tu_blocker_fini(&bl);
}

/* FUT-06: a blocked waiter wakes with KILN_ECANCELLED when another thread cancels. */
TEST(future_cancel_wakes_blocked_waiters_with_ecancelled) {
  kiln_future *f = tu_promise();
  struct waiter w1 = {f, 0, 30.0, 1, NULL, NULL}, w2 = {f, 1, -1, 1, NULL, NULL};
  pthread_t t1, t2;
  pthread_create(&t1, NULL, waiter_main, &w1);
  pthread_create(&t2, NULL, waiter_main, &w2);
  KT_TRUE(kiln_future_cancel(f));
  pthread_join(t1, NULL);
  pthread_join(t2, NULL);
  KT_CODE(w1.rc, KILN_ECANCELLED);
  KT_CODE(w2.rc, KILN_ECANCELLED);
  kiln_future_release(f);
}

/* FUT-07: completing a done future is KILN_ESTATE and the first result stays. */
TEST(future_second_completion_is_estate_first_result_stays) {
  int other = 7;
  void *v = NULL;
  const char *msg = NULL;
  kiln_future *f = tu_promise();
  KT_CODE(kiln_promise_reject(f, 0, "not an error"), KILN_EINVAL);
  KT_CODE(kiln_promise_reject(f, 3, NULL), KILN_EINVAL);
  KT_FALSE(kiln_future_done(f));
  KT_CODE(kiln_promise_resolve(f, &g_val), KILN_OK);
  KT_CODE(kiln_promise_resolve(f, &other), KILN_ESTATE);
  KT_CODE(kiln_promise_reject(f, KILN_EIO, "x"), KILN_ESTATE);
  KT_TRUE(kiln_future_done(f));
  KT_CODE(kiln_future_result(f, 0, &v), KILN_OK);
  KT_PTR_EQ(v, &g_val);
  kiln_future_release(f);

  f = tu_promise();
  KT_CODE(kiln_promise_reject(f, KILN_EIO, "first %d", 1), KILN_OK);
  KT_CODE(kiln_promise_reject(f, KILN_EPARSE, "second"), KILN_ESTATE);
  KT_CODE(kiln_promise_resolve(f, &g_val), KILN_ESTATE);
  KT_TRUE(kiln_future_done(f));
  KT_CODE(kiln_future_error(f, 0, &msg), KILN_EIO);
  KT_STR_EQ(msg, "first 1");
  kiln_future_release(f);

  f = tu_promise();
  KT_TRUE(kiln_future_cancel(f));
  KT_CODE(kiln_promise_resolve(f, &g_val), KILN_ESTATE);
  KT_CODE(kiln_promise_reject(f, KILN_EIO, NULL), KILN_ESTATE);
  KT_TRUE(kiln_future_cancelled(f));
  KT_CODE(kiln_future_result(f, 0, NULL), KILN_ECANCELLED);
  kiln_future_release(f);

  /* resolve_owned after done: ESTATE and the value is not taken (we free it). */
  f = tu_promise();
  KT_CODE(kiln_promise_resolve(f, &g_val), KILN_OK);
  void *mine = malloc(16);
  KT_CODE(kiln_promise_resolve_owned(f, mine, free), KILN_ESTATE);
  free(mine);
  kiln_future_release(f);
}

struct cb_rec {
  int calls;
  kiln_future *seen;
  int done, cancelled, running, rc;
  void *value;
  pthread_t thread;
  int order[8];
  int norder;
};

static void cb_record(kiln_future *f, void *arg) {
  struct cb_rec *r = arg;
  r->calls++;
  r->seen = f;
  r->done = kiln_future_done(f);
  r->cancelled = kiln_future_cancelled(f);
  r->running = kiln_future_running(f);
  r->rc = kiln_future_result(f, 0, &r->value);
  r->thread = pthread_self();
}

/* FUT-08: a callback added before completion runs inside resolve/reject/cancel, before they
 * return, with the future already in its final state. */
TEST(future_callback_runs_inside_the_completing_call) {
  for (int mode = 0; mode < 3; mode++) {
    kiln_future *f = tu_promise();
    struct cb_rec r;
    memset(&r, 0, sizeof r);
    KT_CODE(kiln_future_on_done(f, cb_record, &r), KILN_OK);
    KT_EQ(r.calls, 0);
    if (mode == 0) {
      KT_CODE(kiln_promise_resolve(f, &g_val), KILN_OK);
    } else if (mode == 1) {
      KT_CODE(kiln_promise_reject(f, KILN_EIO, "e"), KILN_OK);
    } else {
      KT_TRUE(kiln_future_cancel(f));
    }
    KT_EQ(r.calls, 1);
    KT_PTR_EQ(r.seen, f);
    KT_TRUE(r.done);
    KT_FALSE(r.running);
    KT_TRUE(pthread_equal(r.thread, pthread_self()));
    if (mode == 0) {
      KT_CODE(r.rc, KILN_OK);
      KT_PTR_EQ(r.value, &g_val);
      KT_FALSE(r.cancelled);
    } else if (mode == 1) {
      KT_CODE(r.rc, KILN_EIO);
      KT_FALSE(r.cancelled);
    } else {
      KT_CODE(r.rc, KILN_ECANCELLED);
      KT_TRUE(r.cancelled);
    }
    kiln_future_release(f);
    KT_EQ(r.calls, 1);
  }
}

/* FUT-09: on_done on a done future runs at once, in the caller's thread. */
TEST(future_on_done_of_done_future_runs_at_once) {
  for (int mode = 0; mode < 3; mode++) {
    kiln_future *f = tu_promise();
    if (mode == 0) KT_CODE(kiln_promise_resolve(f, &g_val), KILN_OK);
    if (mode == 1) KT_CODE(kiln_promise_reject(f, KILN_EPARSE, NULL), KILN_OK);
    if (mode == 2) KT_TRUE(kiln_future_cancel(f));
    struct cb_rec r;
    memset(&r, 0, sizeof r);
    KT_CODE(kiln_future_on_done(f, cb_record, &r), KILN_OK);
    KT_EQ(r.calls, 1);
    KT_PTR_EQ(r.seen, f);
    KT_TRUE(r.done);
    KT_TRUE(pthread_equal(r.thread, pthread_self()));
    KT_CODE(r.rc, mode == 0 ? KILN_OK : mode == 1 ? KILN_EPARSE : KILN_ECANCELLED);
    kiln_future_release(f);
    KT_EQ(r.calls, 1);
  }
  /* A pool task's future, once done. */
  kiln_pool *p = tu_pool(1);
  kiln_future *t = tu_submit(p, tu_task_ret, &g_val);
  KT_CODE(kiln_future_result(t, -1, NULL), KILN_OK);
  struct cb_rec r;
  memset(&r, 0, sizeof r);
  KT_CODE(kiln_future_on_done(t, cb_record, &r), KILN_OK);
  KT_EQ(r.calls, 1);
  KT_TRUE(pthread_equal(r.thread, pthread_self()));
  KT_PTR_EQ(r.value, &g_val);
  kiln_future_release(t);
  kiln_pool_destroy(p);
}

struct order_rec {
  _Atomic int next;
  int slot[16];
  _Atomic int calls[16];
};
struct order_arg {
  struct order_rec *rec;
  int id;
};
static void cb_order(kiln_future *f, void *arg) {
  (void)f;
  struct order_arg *a = arg;
  int k = atomic_fetch_add(&a->rec->next, 1);
  if (k < 16) a->rec->slot[k] = a->id;
  atomic_fetch_add(&a->rec->calls[a->id], 1);
}
/* A callback that itself uses the future (the C stand-in for a "failing" callback: there are no
 * exceptions; it must not disturb later callbacks or the completing call). */
static void cb_meddle(kiln_future *f, void *arg) {
  struct order_arg *a = arg;
  (void)kiln_future_cancel(f);
  (void)kiln_future_result(f, 0, NULL);
  cb_order(f, a);
}

/* FUT-10: callbacks run in the order added, once each; a misbehaving one stops nothing. */
TEST(future_callbacks_run_in_order_once_each) {
  struct order_rec rec;
  memset(&rec, 0, sizeof rec);
  struct order_arg args[6];
  for (int i = 0; i < 6; i++) args[i] = (struct order_arg){&rec, i};
  kiln_future *f = tu_promise();
  KT_CODE(kiln_future_on_done(f, cb_order, &args[0]), KILN_OK);
  KT_CODE(kiln_future_on_done(f, cb_meddle, &args[1]), KILN_OK);
  KT_CODE(kiln_future_on_done(f, cb_order, &args[2]), KILN_OK);
  KT_CODE(kiln_future_on_done(f, cb_order, &args[3]), KILN_OK);
  KT_CODE(kiln_promise_resolve(f, &g_val), KILN_OK);
  KT_EQ(atomic_load(&rec.next), 4);
  for (int i = 0; i < 4; i++) {
    KT_EQ(rec.slot[i], i);
    KT_EQ(atomic_load(&rec.calls[i]), 1);
  }
  KT_CODE(kiln_promise_resolve(f, NULL), KILN_ESTATE);
  KT_CODE(kiln_future_on_done(f, cb_order, &args[4]), KILN_OK);
  KT_EQ(atomic_load(&rec.next), 5);
  KT_EQ(rec.slot[4], 4);
  for (int i = 0; i < 4; i++) KT_EQ(atomic_load(&rec.calls[i]), 1);
  void *v = NULL;
  KT_CODE(kiln_future_result(f, 0, &v), KILN_OK);
  KT_PTR_EQ(v, &g_val);
  kiln_future_release(f);

  /* Callbacks of a pool task run in order, once each, in the worker that completes it. */
  struct order_rec rec2;
  memset(&rec2, 0, sizeof rec2);
  struct order_arg a2[3];
  for (int i = 0; i < 3; i++) a2[i] = (struct order_arg){&rec2, i};
  kiln_pool *p = tu_pool(1);
  tu_blocker b;
  tu_blocker_init(&b);
  kiln_future *t = tu_submit(p, tu_task_blocker, &b);
  for (int i = 0; i < 3; i++) KT_CODE(kiln_future_on_done(t, cb_order, &a2[i]), KILN_OK);
  tu_gate_open(&b.gate);
  kiln_pool_destroy(p); /* waits for the task, and so for its callbacks */
  KT_EQ(atomic_load(&rec2.next), 3);
  for (int i = 0; i < 3; i++) {
    KT_EQ(rec2.slot[i], i);
    KT_EQ(atomic_load(&rec2.calls[i]), 1);
  }
  kiln_future_release(t);
  tu_blocker_fini(&b);
}
