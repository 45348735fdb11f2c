/* test_nested.c: waits inside tasks, parallel_for, leaks, task messages. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "sched_test_util.h"

static int task_fib(void *arg, void **result) {
  intptr_t n = (intptr_t)arg;
  if (n < 2) {
    *result = (void *)n;
    return 0;
  }
  kiln_pool *p = kiln_pool_current();
  if (!p) return KILN_ESTATE;
  kiln_future *a = NULL, *b = NULL;
  int rc = kiln_submit(p, task_fib, (void *)(n - 1), &a);
  if (rc) return rc;
  rc = kiln_submit(p, task_fib, (void *)(n - 2), &b);
  if (rc) {
    kiln_future_release(a);
    return rc;
  }
  void *va = NULL, *vb = NULL;
  int ra = kiln_future_result(a, -1, &va);
  int rb = kiln_future_result(b, -1, &vb);
  kiln_future_release(a);
  kiln_future_release(b);
  if (ra) return ra;
  if (rb) return rb;
  *result = (void *)((intptr_t)va + (intptr_t)vb);
  return 0;
}

/* Nested submit + result on a 1-worker pool never deadlocks. */
TEST(nested_one_worker) {
  kiln_pool *p = tu_pool(1);
  void *v = NULL;
  kiln_future *f = tu_submit(p, task_fib, (void *)(intptr_t)18);
  KT_CODE(kiln_future_result(f, -1, &v), KILN_OK);
  KT_EQ((intptr_t)v, 2584);
  kiln_future_release(f);
  KT_EQ(kiln_pool_started_threads(p), 1);
  v = NULL;
  KT_CODE(kiln_pool_apply(p, task_fib, (void *)(intptr_t)12, &v), KILN_OK);
  KT_EQ((intptr_t)v, 144);
  kiln_pool_destroy(p);
}

static int task_square(void *arg, void **result) {
  intptr_t i = (intptr_t)arg;
  *result = (void *)(i * i);
  return 0;
}

static int task_waits_inside(void *arg, void **result) {
  (void)arg;
  enum { N = 8 };
  kiln_pool *p = kiln_pool_current();
  kiln_future *fs[N];
  for (intptr_t i = 0; i < N; i++)
    if (kiln_submit(p, task_square, (void *)i, &fs[i])) return KILN_ENOMEM;
  size_t nd = 0;
  int rc = kiln_wait(fs, N, KILN_ALL_COMPLETED, -1, &nd);
  if (rc) return rc;
  if (nd != N) return KILN_EINVAL;
  tu_release_all(fs, N);

  for (intptr_t i = 0; i < N; i++)
    if (kiln_submit(p, task_square, (void *)i, &fs[i])) return KILN_ENOMEM;
  kiln_completion *c = NULL;
  rc = kiln_as_completed(fs, N, -1, &c);
  if (rc) return rc;
  intptr_t sum = 0;
  int count = 0;
  for (;;) {
    kiln_future *y = NULL;
    rc = kiln_completion_next(c, &y);
    if (rc == KILN_EEOF) break;
    if (rc) return rc;
    void *v = NULL;
    if (kiln_future_result(y, 0, &v)) return KILN_EINVAL;
    sum += (intptr_t)v;
    count++;
    kiln_future_release(y);
  }
  kiln_completion_destroy(c);
  tu_release_all(fs, N);
  if (count != N) return KILN_EINVAL;
  /* a map inside the task too */
  void *args[N], *res[N];
  for (intptr_t i = 0; i < N; i++) args[i] = (void *)i;
  rc = kiln_map(p, task_square, args, N, 3, -1, res, NULL);
  if (rc) return rc;
  for (intptr_t i = 0; i < N; i++)
    if ((intptr_t)res[i] != i * i) return KILN_EINVAL;
  *result = (void *)sum;
  return 0;
}

/* kiln_wait, as_completed and map inside a task of a 1-worker pool. */
TEST(nested_wait_in_task) {
  kiln_pool *p = tu_pool(1);
  kiln_future *f = tu_submit(p, task_waits_inside, NULL);
  void *v = NULL;
  KT_CODE(kiln_future_result(f, -1, &v), KILN_OK);
  KT_EQ((intptr_t)v, 0 + 1 + 4 + 9 + 16 + 25 + 36 + 49);
  kiln_future_release(f);
  kiln_pool_destroy(p);
}

struct pfor {
  _Atomic unsigned char *seen;
  _Atomic unsigned long long sum;
  _Atomic long bad;
  size_t grain;
};
static void pfor_body(void *ctx, size_t lo, size_t hi) {
  struct pfor *s = ctx;
  if (lo >= hi || hi - lo > s->grain) atomic_fetch_add(&s->bad, 1);
  unsigned long long sum = 0;
  for (size_t i = lo; i < hi; i++) {
    atomic_fetch_add_explicit(&s->seen[i], 1, memory_order_relaxed);
    sum += i;
  }
  atomic_fetch_add(&s->sum, sum);
}

/* parallel_for visits every index of [0, 10^6] exactly once, for several grains. */
TEST(parallel_for_sum) {
  const size_t end = 1000001;
  kiln_pool *p = tu_pool(4);
  _Atomic unsigned char *seen = calloc(end, sizeof *seen);
  KT_TRUE(seen != NULL);
  size_t grains[] = {1, 7, 1000, 10000000, 0};
  for (int g = 0; g < 5; g++) {
    for (size_t i = 0; i < end; i++) atomic_store_explicit(&seen[i], 0, memory_order_relaxed);
    struct pfor s;
    s.seen = seen;
    atomic_init(&s.sum, 0);
    atomic_init(&s.bad, 0);
    s.grain = grains[g] ? grains[g] : 1;
    size_t e = grains[g] == 0 ? 5000 : end;
    KT_CODE(kiln_parallel_for(p, 0, e, grains[g], pfor_body, &s), KILN_OK);
    KT_EQ(atomic_load(&s.bad), 0);
    KT_EQ(atomic_load(&s.sum), (unsigned long long)(e - 1) * e / 2);
    for (size_t i = 0; i < e; i++)
      if (atomic_load_explicit(&seen[i], memory_order_relaxed) != 1)
        KT_FAIL("index %zu visited %d times (grain %zu)", i, (int)seen[i], grains[g]);
  }
  /* empty range and an offset range */
  struct pfor s;
  s.seen = seen;
  atomic_init(&s.sum, 0);
  atomic_init(&s.bad, 0);
  s.grain = 10;
  KT_CODE(kiln_parallel_for(p, 5, 5, 10, pfor_body, &s), KILN_OK);
  KT_EQ(atomic_load(&s.sum), 0);
  KT_CODE(kiln_parallel_for(p, 100, 200, 10, pfor_body, &s), KILN_OK);
  KT_EQ(atomic_load(&s.sum), 14950);
  KT_EQ(atomic_load(&s.bad), 0);
  free(seen);
  kiln_pool_destroy(p);
}

struct pnest {
  kiln_pool *p;
  _Atomic unsigned long long sum;
  _Atomic long bad;
};
static void inner_body(void *ctx, size_t lo, size_t hi) {
  struct pnest *s = ctx;
  unsigned long long sum = 0;
  for (size_t i = lo; i < hi; i++) sum += i;
  atomic_fetch_add(&s->sum, sum);
}
static void outer_body(void *ctx, size_t lo, size_t hi) {
  struct pnest *s = ctx;
  for (size_t i = lo; i < hi; i++)
    if (kiln_parallel_for(s->p, 0, 1000, 10, inner_body, s)) atomic_fetch_add(&s->bad, 1);
}
static int task_pfor(void *arg, void **result) {
  (void)result;
  struct pnest *s = arg;
  return kiln_parallel_for(s->p, 0, 64, 1, outer_body, s);
}

/* parallel_for nested in parallel_for, and called from inside a task, on 1 and 3 workers. */
TEST(parallel_for_nested) {
  for (int threads = 1; threads <= 3; threads += 2) {
    kiln_pool *p = tu_pool(threads);
    struct pnest s;
    s.p = p;
    atomic_init(&s.sum, 0);
    atomic_init(&s.bad, 0);
    KT_CODE(kiln_parallel_for(p, 0, 64, 1, outer_body, &s), KILN_OK);
    KT_EQ(atomic_load(&s.sum), 64ULL * 499500ULL);
    atomic_store(&s.sum, 0);
    kiln_future *f = tu_submit(p, task_pfor, &s);
    KT_CODE(kiln_future_result(f, -1, NULL), KILN_OK);
    KT_EQ(atomic_load(&s.sum), 64ULL * 499500ULL);
    KT_EQ(atomic_load(&s.bad), 0);
    kiln_future_release(f);
    kiln_pool_destroy(p);
  }
}

static _Atomic int g_freed;
static void count_free(void *v) {
  atomic_fetch_add(&g_freed, 1);
  free(v);
}
static int task_alloc(void *arg, void **result) {
  int *v = malloc(64);
  if (!v) return KILN_ENOMEM;
  *v = (int)(intptr_t)arg;
  kiln_task_set_result_free(count_free);
  *result = v;
  return 0;
}

/* Results with a destructor are freed on the last release, read or not (ASan checks the rest). */
TEST(leak_unread) {
  enum { N = 10000 };
  kiln_pool *p = tu_pool(4);
  for (intptr_t i = 0; i < N; i++) kiln_future_release(tu_submit(p, task_alloc, (void *)i));
  kiln_future *f = tu_submit(p, task_alloc, (void *)(intptr_t)77);
  kiln_future *extra = kiln_future_retain(f);
  void *v = NULL;
  KT_CODE(kiln_future_result(f, -1, &v), KILN_OK);
  KT_EQ(*(int *)v, 77);
  kiln_future_release(f);
  KT_EQ(*(int *)v, 77); /* still held through extra */
  kiln_pool_destroy(p);
  KT_EQ(atomic_load(&g_freed), N);
  kiln_future_release(extra);
  KT_EQ(atomic_load(&g_freed), N + 1);

  /* promises: resolve_owned frees on the last release, resolve does not */
  kiln_future *pr = tu_promise();
  KT_CODE(kiln_promise_resolve_owned(pr, malloc(32), count_free), KILN_OK);
  kiln_future_release(pr);
  KT_EQ(atomic_load(&g_freed), N + 2);
  int local = 1;
  pr = tu_promise();
  KT_CODE(kiln_promise_resolve(pr, &local), KILN_OK);
  kiln_future_release(pr);
  kiln_future_release(NULL);
}

static int task_fail_open(void *arg, void **result) {
  (void)result;
  return kiln_task_fail(KILN_EIO, "cannot open %s", (const char *)arg);
}
static int task_fail_then_ok(void *arg, void **result) {
  (void)arg, (void)result;
  (void)kiln_task_fail(KILN_EIO, "changed my mind");
  return 0;
}
static int task_plain_fail(void *arg, void **result) {
  (void)arg, (void)result;
  return KILN_EPARSE;
}

/* kiln_task_fail records the message of the failure the task returns; outside a task it only
 * returns the code. */
TEST(task_fail_message) {
  KT_CODE(kiln_task_fail(KILN_EIO, "outside %d", 1), KILN_EIO);
  kiln_pool *p = tu_pool(2);
  kiln_future *f = tu_submit(p, task_fail_open, "/tmp/x.scene");
  const char *msg = NULL;
  KT_CODE(kiln_future_error(f, -1, &msg), KILN_EIO);
  KT_STR_EQ(msg, "cannot open /tmp/x.scene");
  KT_CODE(kiln_future_result(f, 0, NULL), KILN_EIO);
  kiln_future_release(f);

  f = tu_submit(p, task_fail_then_ok, NULL);
  msg = "x";
  KT_CODE(kiln_future_error(f, -1, &msg), KILN_OK);
  KT_PTR_EQ(msg, NULL);
  kiln_future_release(f);

  /* a message does not leak into the next task of the same worker */
  f = tu_submit(p, task_plain_fail, NULL);
  msg = NULL;
  KT_CODE(kiln_future_error(f, -1, &msg), KILN_EPARSE);
  if (msg) KT_TRUE(strstr(msg, "cannot open") == NULL && strstr(msg, "changed my mind") == NULL);
  kiln_future_release(f);

  /* the message survives the pool */
  f = tu_submit(p, task_fail_open, "/a/b");
  KT_CODE(kiln_future_result(f, -1, NULL), KILN_EIO);
  kiln_pool_destroy(p);
  KT_CODE(kiln_future_error(f, 0, &msg), KILN_EIO);
  KT_STR_EQ(msg, "cannot open /a/b");
  kiln_future_release(f);
}
