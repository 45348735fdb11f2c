/* test_enomem.c: allocation-failure injection (SQLite's malloc-failure test mode).
 *
 * This executable is linked with -Wl,--wrap=malloc,calloc,realloc (tests/CMakeLists.txt), so every
 * allocation kiln_static makes goes through the wrappers below. Each scenario is run again and
 * again with the k-th allocation after its start failing, k = 1, 2, ..., until a run completes
 * with no failure injected. Every run must return 0 or KILN_ENOMEM (never crash, hang or report
 * another error), and ASan's leak checker, which runs at exit in the ASan build of `make test`,
 * proves that a failed call frees what it took.
 *
 * Allocations by other threads (pool workers) count too, so which allocation fails varies from
 * run to run; every run must still hold the invariants above. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/sched.h"
#include "kiln/sync.h"
#include "kt.h"

// kt: timeout 300

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);

static _Atomic long g_countdown; /* > 0: allocations left before the failing one; 0: off */
static _Atomic long g_failed;    /* failures injected in this run */

static bool inject(void) {
  long c = atomic_load_explicit(&g_countdown, memory_order_relaxed);
  while (c > 0) {
    if (atomic_compare_exchange_weak_explicit(&g_countdown, &c, c - 1, memory_order_relaxed,
                                              memory_order_relaxed)) {
      if (c == 1) {
        atomic_fetch_add_explicit(&g_failed, 1, memory_order_relaxed);
        return true;
      }
      return false;
    }
  }
  return false;
}

void *__wrap_malloc(size_t n) { return inject() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t m) { return inject() ? NULL : __real_calloc(n, m); }
void *__wrap_realloc(void *p, size_t n) { return inject() ? NULL : __real_realloc(p, n); }

typedef int (*scenario_fn)(void);

/* Runs s with the k-th allocation failing, for every k until a run injects nothing. */
static void sweep(const char *name, scenario_fn s) {
  const char *only = getenv("KILN_FAULT_AT"); /* debugging: run only the k given */
  if (only) {
    atomic_store(&g_countdown, atol(only));
    int rc = s();
    atomic_store(&g_countdown, 0);
    fprintf(stderr, "%s, allocation %s failing: %s, %ld injected\n", name, only, kiln_err_name(rc),
            atomic_load(&g_failed));
    return;
  }
  long k = 1;
  for (;; k++) {
    atomic_store(&g_failed, 0);
    atomic_store(&g_countdown, k);
    int rc = s();
    atomic_store(&g_countdown, 0);
    if (rc != 0 && rc != KILN_ENOMEM)
      KT_FAIL("%s, allocation %ld failing: %s (%d), expected 0 or KILN_ENOMEM", name, k,
              kiln_err_name(rc), rc);
    if (atomic_load(&g_failed) == 0) {
      KT_CODE(rc, KILN_OK); /* nothing failed: the scenario must have succeeded */
      break;
    }
    KT_TRUE(k < 100000);
  }
  KT_TRUE(k > 1); /* the scenario allocates: the sweep reached its allocations */
}

/* ---- scenarios: each frees everything it made, on every path ---- */

static int new_pool(kiln_pool **p) {
  kiln_pool_config cfg;
  kiln_pool_config_default(&cfg);
  cfg.threads = 2;
  return kiln_pool_create(&cfg, p);
}

static int task_ret(void *arg, void **result) {
  *result = arg;
  return 0;
}

static int sc_pool(void) {
  kiln_pool *p = NULL;
  int rc = new_pool(&p);
  if (rc) return rc;
  kiln_future *f[8] = {0};
  int first = 0;
  for (int i = 0; i < 8; i++) {
    rc = kiln_submit(p, task_ret, (void *)(intptr_t)i, &f[i]);
    if (rc && !first) first = rc;
  }
  for (int i = 0; i < 8; i++) {
    if (!f[i]) continue;
    void *v = NULL;
    rc = kiln_future_result(f[i], -1, &v);
    if (rc && !first) first = rc;
    if (!rc && (intptr_t)v != i) first = KILN_EIO;
    kiln_future_release(f[i]);
  }
  kiln_pool_destroy(p);
  return first;
}

static int sc_deps(void) {
  kiln_pool *p = NULL;
  int rc = new_pool(&p);
  if (rc) return rc;
  kiln_future *pr = NULL, *a = NULL, *b = NULL;
  rc = kiln_promise_create(&pr);
  if (!rc) rc = kiln_submit_after(p, &pr, 1, task_ret, NULL, &a);
  kiln_future *ab[2] = {pr, a};
  if (!rc) rc = kiln_submit_after(p, ab, 2, task_ret, NULL, &b);
  if (pr) kiln_promise_resolve(pr, NULL);
  int first = rc;
  kiln_future *all[3] = {pr, a, b};
  size_t n = b ? 3 : a ? 2 : pr ? 1 : 0, ndone = 0;
  if (n) {
    rc = kiln_wait(all, n, KILN_ALL_COMPLETED, -1, &ndone);
    if (rc && !first) first = rc;
  }
  kiln_completion *c = NULL;
  if (n && (rc = kiln_as_completed(all, n, -1, &c)) == 0) {
    kiln_future *f;
    while ((rc = kiln_completion_next(c, &f)) == 0) kiln_future_release(f); /* ours */
    if (rc != KILN_EEOF && !first) first = rc;
    kiln_completion_destroy(c);
  } else if (n && !first) {
    first = rc;
  }
  /* a dependent whose registration failed has no future; those that exist must be done */
  for (size_t i = 0; i < n; i++)
    if (!kiln_future_done(all[i]) && !first) first = KILN_EIO;
  kiln_future_release(b);
  kiln_future_release(a);
  kiln_future_release(pr);
  kiln_pool_destroy(p);
  return first;
}

static void body(void *ctx, size_t lo, size_t hi) {
  _Atomic size_t *sum = ctx;
  atomic_fetch_add(sum, hi - lo);
}

static int sc_map(void) {
  kiln_pool *p = NULL;
  int rc = new_pool(&p);
  if (rc) return rc;
  void *args[16], *res[16];
  for (intptr_t i = 0; i < 16; i++) args[i] = (void *)i;
  int first = kiln_map(p, task_ret, args, 16, 3, -1, res, NULL);
  kiln_future *f = NULL;
  rc = kiln_map_async(p, task_ret, args, 16, 5, NULL, NULL, NULL, &f);
  if (rc && !first) first = rc;
  if (f) {
    rc = kiln_future_result(f, -1, NULL);
    if (rc && !first) first = rc;
    kiln_future_release(f);
  }
  _Atomic size_t sum = 0;
  rc = kiln_parallel_for(p, 0, 10000, 10, body, &sum);
  if (rc && !first) first = rc;
  if (!rc && atomic_load(&sum) != 10000 && !first) first = KILN_EIO;
  kiln_pool_destroy(p);
  return first;
}

/* Every item comes out once, in order when ordered, as its value or KILN_ENOMEM. */
static int imap_run(kiln_pool *p, void *const *args, bool ordered) {
  kiln_imap *it = NULL;
  int first = kiln_imap_start(p, task_ret, args, 16, 3, ordered, &it);
  if (first) return first;
  void *v;
  size_t i, k = 0;
  int rc;
  while ((rc = kiln_imap_next(it, -1, &v, &i)) != KILN_EEOF) {
    if (rc == 0 && (void *)(intptr_t)i != v) rc = KILN_EIO;
    if (ordered && i != k) rc = KILN_EIO;
    if (rc && !first) first = rc;
    k++;
  }
  kiln_imap_destroy(it);
  return k == 16 || first ? first : KILN_EIO;
}

static int sc_imap(void) {
  kiln_pool *p = NULL;
  int rc = new_pool(&p);
  if (rc) return rc;
  void *args[16];
  for (intptr_t i = 0; i < 16; i++) args[i] = (void *)i;
  int first = imap_run(p, args, true);
  rc = imap_run(p, args, false);
  kiln_pool_destroy(p);
  return first ? first : rc;
}

static int sc_sync(void) {
  kiln_lock *l = NULL;
  kiln_rlock *r = NULL;
  kiln_semaphore *s = NULL;
  kiln_condition *c = NULL;
  kiln_event *e = NULL;
  kiln_barrier *b = NULL;
  kiln_queue *q = NULL;
  kiln_channel *x = NULL, *y = NULL;
  int rc = kiln_lock_create(&l);
  if (!rc) rc = kiln_rlock_create(&r);
  if (!rc) rc = kiln_semaphore_create(1, true, &s);
  if (!rc) rc = kiln_condition_create(&c);
  if (!rc) rc = kiln_event_create(&e);
  if (!rc) rc = kiln_barrier_create(1, NULL, NULL, -1, &b);
  if (!rc) rc = kiln_queue_create(NULL, &q);
  for (intptr_t i = 1; !rc && i <= 100; i++) rc = kiln_queue_put(q, (void *)i, 0);
  void *item;
  while (!rc && kiln_queue_get(q, &item, 0) == 0) {}
  if (!rc) rc = kiln_channel_pair(true, &x, &y);
  if (!rc) rc = kiln_channel_send(x, "hello", 5, -1);
  if (!rc) {
    void *buf = NULL;
    size_t len = 0;
    rc = kiln_channel_recv(y, &buf, &len, -1);
    if (!rc && (len != 5 || memcmp(buf, "hello", 5) != 0)) rc = KILN_EIO;
    free(buf);
  }
  kiln_channel_destroy(x);
  kiln_channel_destroy(y);
  kiln_queue_destroy(q);
  kiln_barrier_destroy(b);
  kiln_event_destroy(e);
  kiln_condition_destroy(c);
  kiln_semaphore_destroy(s);
  kiln_rlock_destroy(r);
  kiln_lock_destroy(l);
  return rc;
}

TEST(ENOMEM_pool) { sweep("submit/result", sc_pool); }
TEST(ENOMEM_deps) { sweep("submit_after/wait/as_completed", sc_deps); }
TEST(ENOMEM_map) { sweep("map/map_async/parallel_for", sc_map); }
TEST(ENOMEM_sync) { sweep("sync objects", sc_sync); }
TEST(ENOMEM_imap) { sweep("imap/imap_unordered", sc_imap); }
