/* test_exe.c: the pool as an executor (EXE-01..EXE-16 of docs/CONFORMANCE.md). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sched.h>

#include "sched_test_util.h"

struct payload {
  int a;
  const char *s;
  double d;
};

static int task_payload(void *arg, void **result) {
  struct payload *p = arg;
  if (p->a != 17 || strcmp(p->s, "seventeen") != 0 || p->d != 1.5) return KILN_EINVAL;
  p->a = 18;
  *result = p;
  return 0;
}

/* EXE-01: submit returns a future whose result is fn's value; the argument arrives unchanged. */
TEST(submit_result_is_task_value_argument_unchanged) {
  kiln_pool *p = tu_pool(2);
  struct payload pl = {17, "seventeen", 1.5};
  kiln_future *f = NULL;
  KT_CODE(kiln_submit(p, task_payload, &pl, &f), KILN_OK);
  void *v = NULL;
  KT_CODE(kiln_future_result(f, -1, &v), KILN_OK);
  KT_PTR_EQ(v, &pl);
  KT_EQ(pl.a, 18);
  kiln_future_release(f);
  kiln_future *g = tu_submit(p, tu_task_ret, NULL);
  v = &pl;
  KT_CODE(kiln_future_result(g, -1, &v), KILN_OK);
  KT_PTR_EQ(v, NULL);
  kiln_future_release(g);
  kiln_pool_destroy(p);
}

/* EXE-02: threads <= 0 is KILN_EINVAL (out NULL); the default is the CPUs this process may use. */
TEST(pool_threads_below_one_einval_default_cpus) {
  kiln_pool_config cfg;
  kiln_pool *p = (kiln_pool *)&cfg;
  kiln_pool_config_default(&cfg);
  cfg.threads = 0;
  KT_CODE(kiln_pool_create(&cfg, &p), KILN_EINVAL);
  KT_PTR_EQ(p, NULL);
  p = (kiln_pool *)&cfg;
  cfg.threads = -1;
  KT_CODE(kiln_pool_create(&cfg, &p), KILN_EINVAL);
  KT_PTR_EQ(p, NULL);

  cpu_set_t set;
  CPU_ZERO(&set);
  KT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
  int ncpu = CPU_COUNT(&set);
  kiln_pool_config_default(&cfg);
  KT_EQ(cfg.threads, ncpu);
  KT_CODE(kiln_pool_create(NULL, &p), KILN_OK);
  KT_EQ(kiln_pool_threads(p), ncpu);
  KT_EQ(kiln_pool_started_threads(p), 0);
  kiln_pool_destroy(p);
  p = tu_pool(3);
  KT_EQ(kiln_pool_threads(p), 3);
  kiln_pool_destroy(p);
  kiln_pool_destroy(NULL);
}

/* EXE-03: idle workers are reused; never more workers than configured. */
TEST(pool_reuses_idle_workers_never_more_than_threads) {
  kiln_pool *p = tu_pool(4);
  for (int i = 0; i < 3; i++) {
    kiln_future *f = tu_submit(p, tu_task_ret, NULL);
    KT_CODE(kiln_future_result(f, -1, NULL), KILN_OK);
    kiln_future_release(f);
  }
  KT_EQ(kiln_pool_started_threads(p), 1);
  kiln_pool_destroy(p);

  enum { T = 3, N = 15 * T };
  p = tu_pool(T);
  kiln_future *gate = tu_promise();
  kiln_future *fs[N];
  for (int i = 0; i < N; i++) {
    fs[i] = tu_submit(p, tu_task_wait_promise, gate);
    KT_TRUE(kiln_pool_started_threads(p) <= T);
  }
  KT_TRUE(kiln_pool_started_threads(p) >= 1);
  KT_CODE(kiln_promise_resolve(gate, NULL), KILN_OK);
  for (int i = 0; i < N; i++) {
    KT_CODE(kiln_future_result(fs[i], -1, NULL), KILN_OK);
    kiln_future_release(fs[i]);
  }
  KT_TRUE(kiln_pool_started_threads(p) <= T);
  KT_EQ(kiln_pool_threads(p), T);
  kiln_future_release(gate);
  kiln_pool_destroy(p);
}

struct fifo {
  _Atomic int next;
  int order[64];
  _Atomic int ran[64];
};
struct fifo_arg {
  struct fifo *fi;
  int id;
};
static int task_fifo(void *arg, void **result) {
  (void)result;
  struct fifo_arg *a = arg;
  int k = atomic_fetch_add(&a->fi->next, 1);
  a->fi->order[k] = a->id;
  atomic_fetch_add(&a->fi->ran[a->id], 1);
  return 0;
}

/* EXE-04: from outside, work starts in submission order; a queued task can be cancelled and its
 * fn never runs. */
TEST(pool_starts_work_in_order_cancelled_task_never_runs) {
  enum { N = 40, C1 = 10, C2 = 39 };
  kiln_pool *p = tu_pool(1);
  tu_blocker b;
  tu_blocker_init(&b);
  kiln_future *blk = tu_start_blocker(p, &b);
  struct fifo fi;
  memset(&fi, 0, sizeof fi);
  struct fifo_arg args[N];
  kiln_future *fs[N];
  for (int i = 0; i < N; i++) {
    args[i] = (struct fifo_arg){&fi, i};
    fs[i] = tu_submit(p, task_fifo, &args[i]);
  }
  KT_TRUE(kiln_future_cancel(fs[C1]));
  KT_TRUE(kiln_future_cancel(fs[C2]));
  KT_TRUE(kiln_future_cancelled(fs[C1]));
  tu_gate_open(&b.gate);
  KT_CODE(kiln_future_result(blk, -1, NULL), KILN_OK);
  for (int i = 0; i < N; i++) {
    int rc = kiln_future_result(fs[i], -1, NULL);
    KT_CODE(rc, (i == C1 || i == C2) ? KILN_ECANCELLED : KILN_OK);
  }
  KT_EQ(atomic_load(&fi.next), N - 2);
  int k = 0;
  for (int i = 0; i < N; i++) {
    if (i == C1 || i == C2) {
      KT_EQ(atomic_load(&fi.ran[i]), 0);
      continue;
    }
    KT_EQ(atomic_load(&fi.ran[i]), 1);
    KT_EQ(fi.order[k], i);
    k++;
  }
  tu_release_all(fs, N);
  kiln_future_release(blk);
  kiln_pool_destroy(p);
  KT_EQ(atomic_load(&fi.next), N - 2);
  tu_blocker_fini(&b);
}

static int task_fail_msg(void *arg, void **result) {
  *result = arg; /* must not show: a failed future has no value */
  return kiln_task_fail(KILN_EIO, "cannot open %s", (const char *)arg);
}

/* EXE-05: a task's error is stored in the future and comes back unchanged. */
TEST(task_error_stored_in_future_unchanged) {
  kiln_pool *p = tu_pool(2);
  kiln_future *f = tu_submit(p, task_fail_msg, "/no/such/file");
  void *v = &v;
  KT_CODE(kiln_future_result(f, -1, &v), KILN_EIO);
  KT_PTR_EQ(v, NULL);
  const char *msg = NULL;
  KT_CODE(kiln_future_error(f, -1, &msg), KILN_EIO);
  KT_STR_EQ(msg, "cannot open /no/such/file");
  KT_FALSE(kiln_future_cancelled(f));
  KT_TRUE(kiln_future_done(f));
  kiln_future_release(f);
  f = tu_submit(p, tu_task_code, (void *)(intptr_t)KILN_EPARSE);
  KT_CODE(kiln_future_result(f, -1, NULL), KILN_EPARSE);
  KT_CODE(kiln_future_error(f, -1, NULL), KILN_EPARSE);
  kiln_future_release(f);
  kiln_pool_destroy(p);
}

static void noop_body(void *ctx, size_t lo, size_t hi) { (void)ctx, (void)lo, (void)hi; }

/* EXE-06: submit after shutdown is KILN_ESHUTDOWN; shutdown may be repeated. */
TEST(submit_after_shutdown_is_eshutdown) {
  kiln_pool *p = tu_pool(2);
  kiln_future *f = tu_submit(p, tu_task_ret, NULL);
  KT_CODE(kiln_pool_shutdown(p, false, false), KILN_OK);
  kiln_future *g = (kiln_future *)&g;
  KT_CODE(kiln_submit(p, tu_task_ret, NULL, &g), KILN_ESHUTDOWN);
  KT_PTR_EQ(g, NULL);
  g = (kiln_future *)&g;
  KT_CODE(kiln_submit_after(p, &f, 1, tu_task_ret, NULL, &g), KILN_ESHUTDOWN);
  KT_PTR_EQ(g, NULL);
  KT_CODE(kiln_pool_apply_async(p, tu_task_ret, NULL, NULL, NULL, NULL, NULL), KILN_ESHUTDOWN);
  KT_CODE(kiln_parallel_for(p, 0, 10, 1, noop_body, NULL), KILN_ESHUTDOWN);
  KT_CODE(kiln_pool_shutdown(p, true, false), KILN_OK);
  KT_CODE(kiln_pool_shutdown(p, true, false), KILN_OK);
  KT_CODE(kiln_pool_shutdown(p, false, true), KILN_OK);
  KT_CODE(kiln_submit(p, tu_task_ret, NULL, &g), KILN_ESHUTDOWN);
  KT_CODE(kiln_future_result(f, -1, NULL), KILN_OK);
  kiln_future_release(f);
  kiln_pool_destroy(p);
}

static int task_count_spin(void *arg, void **result) {
  (void)result;
  volatile unsigned x = 0;
  for (int i = 0; i < 20000; i++) x += (unsigned)i;
  (void)x;
  atomic_fetch_add((_Atomic int *)arg, 1);
  return 0;
}

/* EXE-07: shutdown(wait) runs every submitted task, cancels none, returns when all are done. */
TEST(shutdown_wait_runs_every_submitted_task) {
  enum { N = 200 };
  kiln_pool *p = tu_pool(3);
  _Atomic int count = 0;
  kiln_future *fs[N];
  for (int i = 0; i < N; i++) fs[i] = tu_submit(p, task_count_spin, &count);
  KT_CODE(kiln_pool_shutdown(p, true, false), KILN_OK);
  KT_EQ(atomic_load(&count), N);
  for (int i = 0; i < N; i++) {
    KT_TRUE(kiln_future_done(fs[i]));
    KT_FALSE(kiln_future_cancelled(fs[i]));
    KT_CODE(kiln_future_result(fs[i], 0, NULL), KILN_OK);
  }
  tu_release_all(fs, N);
  kiln_pool_destroy(p);
}

/* EXE-08: after shutdown(wait) every worker has exited; destroying a busy pool still finishes the
 * submitted work and its threads exit. */
TEST(shutdown_wait_and_destroy_leave_no_worker_thread) {
  enum { N = 300 };
  int base = tu_thread_count();
  KT_TRUE(base >= 1);
  kiln_pool *p = tu_pool(4);
  _Atomic int count = 0;
  kiln_future *fs[N];
  for (int i = 0; i < N; i++) fs[i] = tu_submit(p, task_count_spin, &count);
  KT_CODE(kiln_pool_shutdown(p, true, false), KILN_OK);
  KT_EQ(atomic_load(&count), N);
  KT_EQ(tu_thread_count(), base);
  kiln_pool_destroy(p);
  tu_release_all(fs, N);

  /* destroy without shutdown, on a busy pool */
  atomic_store(&count, 0);
  p = tu_pool(4);
  for (int i = 0; i < N; i++) fs[i] = tu_submit(p, task_count_spin, &count);
  kiln_pool_destroy(p);
  KT_EQ(atomic_load(&count), N);
  KT_EQ(tu_thread_count(), base);
  for (int i = 0; i < N; i++) KT_CODE(kiln_future_result(fs[i], 0, NULL), KILN_OK);
  tu_release_all(fs, N);
}

/* EXE-09: shutdown(wait=false) returns at once; queued and running tasks still finish; results
 * stay readable. */
TEST(shutdown_nowait_returns_at_once_tasks_still_finish) {
  enum { N = 20 };
  int base = tu_thread_count();
  kiln_pool *p = tu_pool(1);
  tu_blocker b;
  tu_blocker_init(&b);
  kiln_future *blk = tu_start_blocker(p, &b);
  _Atomic int count = 0;
  kiln_future *fs[N];
  for (int i = 0; i < N; i++) fs[i] = tu_submit(p, task_count_spin, &count);
  KT_CODE(kiln_pool_shutdown(p, false, false), KILN_OK); /* would hang here if it waited */
  KT_FALSE(kiln_future_done(blk));
  tu_gate_open(&b.gate);
  for (int i = 0; i < N; i++) {
    KT_CODE(kiln_future_result(fs[i], -1, NULL), KILN_OK);
    KT_FALSE(kiln_future_cancelled(fs[i]));
  }
  KT_EQ(atomic_load(&count), N);
  KT_CODE(kiln_pool_shutdown(p, true, false), KILN_OK);
  KT_EQ(tu_thread_count(), base);
  kiln_pool_destroy(p);
  void *v = NULL;
  KT_CODE(kiln_future_result(blk, 0, &v), KILN_OK);
  KT_PTR_EQ(v, &b);
  kiln_future_release(blk);
  tu_release_all(fs, N);
  tu_blocker_fini(&b);
}

struct exe10 {
  kiln_pool *p;
  int rc;
};
static void *exe10_shutdown(void *arg) {
  struct exe10 *s = arg;
  s->rc = kiln_pool_shutdown(s->p, true, true);
  return NULL;
}
static void cb_latch(kiln_future *f, void *arg) {
  (void)f;
  tu_latch_add((tu_latch *)arg, 1);
}

/* EXE-10: shutdown(wait, cancel_pending) cancels every task not started; the running one
 * finishes normally. The 1-worker pool's first task blocks until every queued task has been
 * cancelled (seen through their done-callbacks, which run in the cancelling thread). */
TEST(shutdown_cancel_pending_cancels_tasks_not_started) {
  enum { N = 50 };
  kiln_pool *p = tu_pool(1);
  tu_blocker b;
  tu_blocker_init(&b);
  kiln_future *blk = tu_start_blocker(p, &b);
  _Atomic int count = 0;
  tu_latch done;
  tu_latch_init(&done);
  kiln_future *fs[N];
  for (int i = 0; i < N; i++) {
    fs[i] = tu_submit(p, task_count_spin, &count);
    KT_CODE(kiln_future_on_done(fs[i], cb_latch, &done), KILN_OK);
  }
  struct exe10 s = {p, 1};
  pthread_t t;
  pthread_create(&t, NULL, exe10_shutdown, &s);
  int all = tu_latch_wait(&done, N, 30.0);
  tu_gate_open(&b.gate); /* open even on failure so that the test ends */
  pthread_join(t, NULL);
  KT_TRUE(all);
  KT_CODE(s.rc, KILN_OK);
  KT_TRUE(kiln_future_done(blk));
  KT_FALSE(kiln_future_cancelled(blk));
  KT_CODE(kiln_future_result(blk, 0, NULL), KILN_OK);
  for (int i = 0; i < N; i++) {
    KT_TRUE(kiln_future_cancelled(fs[i]));
    KT_CODE(kiln_future_result(fs[i], 0, NULL), KILN_ECANCELLED);
  }
  KT_EQ(atomic_load(&count), 0);
  kiln_future *g = NULL;
  KT_CODE(kiln_submit(p, tu_task_ret, NULL, &g), KILN_ESHUTDOWN);
  kiln_pool_destroy(p);
  KT_EQ(atomic_load(&count), 0);
  tu_release_all(fs, N);
  kiln_future_release(blk);
  tu_latch_fini(&done);
  tu_blocker_fini(&b);
}

enum { E13_T = 3 };
struct exe13 {
  _Atomic int inits;
  _Atomic int init_by_index[E13_T];
  _Atomic int bad;
  _Atomic int tasks;
  kiln_pool *_Atomic pool;
};
static _Thread_local int tl_inited;
static int init_record(void *arg) {
  struct exe13 *e = arg;
  int idx = kiln_worker_index();
  if (idx < 0 || idx >= E13_T || tl_inited) atomic_fetch_add(&e->bad, 1);
  else atomic_fetch_add(&e->init_by_index[idx], 1);
  tl_inited = 1;
  atomic_fetch_add(&e->inits, 1);
  return 0;
}
static int task_check_init(void *arg, void **result) {
  (void)result;
  struct exe13 *e = arg;
  int idx = kiln_worker_index();
  if (!tl_inited || idx < 0 || idx >= E13_T) atomic_fetch_add(&e->bad, 1);
  if (kiln_pool_current() != atomic_load(&e->pool)) atomic_fetch_add(&e->bad, 1);
  volatile unsigned x = 0;
  for (int i = 0; i < 5000; i++) x += (unsigned)i;
  (void)x;
  atomic_fetch_add(&e->tasks, 1);
  return 0;
}

/* EXE-13: the initializer runs once in each worker, before that worker's first task. */
TEST(pool_initializer_runs_before_each_workers_first_task) {
  enum { N = 300 };
  struct exe13 e;
  memset(&e, 0, sizeof e);
  kiln_pool_config cfg;
  kiln_pool_config_default(&cfg);
  cfg.threads = E13_T;
  cfg.init = init_record;
  cfg.init_arg = &e;
  kiln_pool *p = NULL;
  KT_CODE(kiln_pool_create(&cfg, &p), KILN_OK);
  atomic_store(&e.pool, p);
  KT_EQ(kiln_worker_index(), -1);
  KT_PTR_EQ(kiln_pool_current(), NULL);
  kiln_future *fs[N];
  for (int i = 0; i < N; i++) fs[i] = tu_submit(p, task_check_init, &e);
  for (int i = 0; i < N; i++) KT_CODE(kiln_future_result(fs[i], -1, NULL), KILN_OK);
  tu_release_all(fs, N);
  int started = kiln_pool_started_threads(p);
  KT_CODE(kiln_pool_shutdown(p, true, false), KILN_OK);
  KT_EQ(atomic_load(&e.bad), 0);
  KT_EQ(atomic_load(&e.tasks), N);
  KT_TRUE(started >= 1 && started <= E13_T);
  KT_EQ(atomic_load(&e.inits), kiln_pool_started_threads(p));
  for (int i = 0; i < E13_T; i++) KT_TRUE(atomic_load(&e.init_by_index[i]) <= 1);
  kiln_pool_destroy(p);
  KT_EQ(kiln_worker_index(), -1);
}

static int init_fail(void *arg) {
  atomic_fetch_add((_Atomic int *)arg, 1);
  return -1;
}
static int task_mark(void *arg, void **result) {
  (void)result;
  atomic_fetch_add((_Atomic int *)arg, 1);
  return 0;
}

/* EXE-14: a failing initializer breaks the pool: the pending future fails with KILN_EBROKEN and
 * later submissions return KILN_EBROKEN. */
TEST(pool_failing_initializer_breaks_pool) {
  _Atomic int inits = 0, ran = 0;
  kiln_pool_config cfg;
  kiln_pool_config_default(&cfg);
  cfg.threads = 2;
  cfg.init = init_fail;
  cfg.init_arg = &inits;
  kiln_pool *p = NULL;
  KT_CODE(kiln_pool_create(&cfg, &p), KILN_OK);
  kiln_future *f = NULL;
  KT_CODE(kiln_submit(p, task_mark, &ran, &f), KILN_OK); /* workers start lazily */
  KT_CODE(kiln_future_result(f, -1, NULL), KILN_EBROKEN);
  KT_TRUE(kiln_future_done(f));
  kiln_future *g = (kiln_future *)&g;
  KT_CODE(kiln_submit(p, task_mark, &ran, &g), KILN_EBROKEN);
  KT_PTR_EQ(g, NULL);
  g = (kiln_future *)&g;
  KT_CODE(kiln_submit_after(p, NULL, 0, task_mark, &ran, &g), KILN_EBROKEN);
  KT_PTR_EQ(g, NULL);
  KT_TRUE(atomic_load(&inits) >= 1);
  kiln_pool_destroy(p);
  KT_EQ(atomic_load(&ran), 0);
  kiln_future_release(f);
}

struct names {
  char name[64][32];
  int idx[64];
};
struct name_arg {
  struct names *n;
  int i;
};
static int task_name(void *arg, void **result) {
  (void)result;
  struct name_arg *a = arg;
  pthread_getname_np(pthread_self(), a->n->name[a->i], sizeof a->n->name[a->i]);
  a->n->idx[a->i] = kiln_worker_index();
  volatile unsigned x = 0;
  for (int i = 0; i < 20000; i++) x += (unsigned)i;
  (void)x;
  return 0;
}

static void check_names(const char *prefix, int threads, const char *cfg_name) {
  enum { N = 64 };
  kiln_pool_config cfg;
  kiln_pool_config_default(&cfg);
  cfg.threads = threads;
  if (cfg_name) cfg.name = cfg_name;
  kiln_pool *p = NULL;
  KT_CODE(kiln_pool_create(&cfg, &p), KILN_OK);
  static struct names nm;
  memset(&nm, 0, sizeof nm);
  struct name_arg args[N];
  kiln_future *fs[N];
  for (int i = 0; i < N; i++) {
    args[i] = (struct name_arg){&nm, i};
    fs[i] = tu_submit(p, task_name, &args[i]);
  }
  for (int i = 0; i < N; i++) KT_CODE(kiln_future_result(fs[i], -1, NULL), KILN_OK);
  tu_release_all(fs, N);
  kiln_pool_destroy(p);
  for (int i = 0; i < N; i++) {
    KT_TRUE(nm.idx[i] >= 0 && nm.idx[i] < threads);
    char want[64];
    snprintf(want, sizeof want, "%s_%d", prefix, nm.idx[i]);
    KT_STR_EQ(nm.name[i], want);
  }
}

/* EXE-16: workers are named "<name>_<i>", i = kiln_worker_index(); the default name is "kiln". */
TEST(pool_workers_named_prefix_and_index) {
  check_names("tpool", 3, "tpool");
  check_names("kiln", 2, NULL);
}
