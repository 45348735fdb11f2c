/* test_records.c: the per-thread record caches (scheduler/record.c) across thread exits and remote
 * frees, and outside submitters racing kiln_pool_shutdown (submissions counted without the pool's
 * lock), and a thread's cache keeping the records of a burst it needed. All run under
 * ThreadSanitizer and AddressSanitizer in `make test`. */
// kt: timeout 300
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "internal.h" /* the size of a record */
#include "kiln/sched.h"
#include "kt.h"

enum { N = 20000 };
static kiln_pool *g_pool;
static kiln_future *g_held[N];

static int nop(void *a, void **r) {
  (void)a, (void)r;
  return 0;
}

/* Runs on a worker: the record it allocates belongs to that worker's cache. */
static int spawner(void *a, void **r) {
  (void)r;
  return kiln_submit(kiln_pool_current(), nop, NULL, (kiln_future **)a);
}

/* Allocates N records (a chain) and a promise, and exits with all of them alive. */
static void *submitter(void *arg) {
  (void)arg;
  kiln_future *prev = NULL;
  for (int i = 0; i < N; i++) {
    kiln_future *f;
    if (kiln_submit_after(g_pool, &prev, prev ? 1 : 0, nop, NULL, &f)) abort();
    g_held[i] = f;
    prev = f;
  }
  kiln_future *p;
  if (kiln_promise_create(&p)) abort();
  return p;
}

/* Frees the first half of the records of another thread (remote frees to a live owner). */
static void *releaser(void *arg) {
  kiln_future **fs = arg;
  for (int i = 0; i < N / 2; i++) kiln_future_release(fs[i]);
  return NULL;
}

/* Records outlive the thread whose cache they came from (a submitter that exited, pool workers
 * after destroy), are freed from other threads, and a thread's cache is emptied and refilled: no
 * leak, no use after free, no race. */
TEST(records_outlive_their_threads) {
  static kiln_future *many[N];
  for (int round = 0; round < 3; round++) {
    kiln_pool_config c;
    kiln_pool_config_default(&c);
    c.threads = 2;
    KT_CODE(kiln_pool_create(&c, &g_pool), KILN_OK);
    pthread_t t;
    void *prom;
    pthread_create(&t, NULL, submitter, NULL);
    pthread_join(t, &prom); /* the submitter's cache is gone; its records are alive */
    KT_CODE(kiln_promise_resolve(prom, NULL), KILN_OK);
    kiln_future_release(prom);
    KT_CODE(kiln_future_result(g_held[N - 1], -1, NULL), KILN_OK); /* the whole chain ran */
    pthread_create(&t, NULL, releaser, g_held);
    pthread_join(t, NULL);
    for (int i = N / 2; i < N; i++) kiln_future_release(g_held[i]);
    kiln_future *outer[64], *inner[64];
    for (int i = 0; i < 64; i++)
      KT_CODE(kiln_submit(g_pool, spawner, &inner[i], &outer[i]), KILN_OK);
    for (int i = 0; i < 64; i++) KT_CODE(kiln_future_result(outer[i], -1, NULL), KILN_OK);
    kiln_pool_destroy(g_pool); /* the workers exit with records of their caches alive */
    for (int i = 0; i < 64; i++) {
      KT_TRUE(kiln_future_done(inner[i]));
      kiln_future_release(inner[i]);
      kiln_future_release(outer[i]);
    }
    for (int i = 0; i < N; i++) KT_CODE(kiln_promise_create(&many[i]), KILN_OK);
    pthread_create(&t, NULL, releaser, many);
    pthread_join(t, NULL);
    for (int i = N / 2; i < N; i++) kiln_future_release(many[i]);
    for (int i = 0; i < N; i++) KT_CODE(kiln_promise_create(&many[i]), KILN_OK);
    for (int i = 0; i < N; i++) kiln_future_release(many[i]);
  }
}

static atomic_long ran, accepted;

static int count(void *a, void **r) {
  (void)a, (void)r;
  atomic_fetch_add(&ran, 1);
  return 0;
}

/* Submits up to 2000 tasks (a chain when arg is non-NULL) until the pool refuses them. */
static void *outside(void *arg) {
  kiln_future *prev = NULL;
  for (int i = 0; i < 2000; i++) {
    kiln_future *f = NULL;
    int rc = arg ? kiln_submit_after(g_pool, &prev, prev ? 1 : 0, count, NULL, &f)
                 : kiln_submit(g_pool, count, NULL, &f);
    if (rc == KILN_ESHUTDOWN) break;
    if (rc) KT_FAIL("submit: %s", kiln_err_name(rc));
    atomic_fetch_add(&accepted, 1);
    if (arg) {
      if (prev) kiln_future_release(prev);
      prev = f;
    } else {
      kiln_future_release(f);
    }
  }
  if (prev) kiln_future_release(prev);
  return NULL;
}

/* Outside threads submit (plain tasks and chains) while the pool shuts down with wait: every
 * accepted task has run when shutdown returns, later submissions get KILN_ESHUTDOWN. */
TEST(pool_shutdown_races_outside_submitters) {
  for (int r = 0; r < 150; r++) {
    atomic_store(&ran, 0);
    atomic_store(&accepted, 0);
    kiln_pool_config c;
    kiln_pool_config_default(&c);
    c.threads = 1 + r % 3;
    KT_CODE(kiln_pool_create(&c, &g_pool), KILN_OK);
    pthread_t t[3];
    for (long i = 0; i < 3; i++) pthread_create(&t[i], NULL, outside, (void *)(i & 1));
    for (volatile int s = 0; s < (r % 7) * 20000; s++) { /* vary where shutdown lands */
    }
    KT_CODE(kiln_pool_shutdown(g_pool, true, false), KILN_OK);
    long done_at_shutdown = atomic_load(&ran);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    long acc = atomic_load(&accepted);
    if (done_at_shutdown != acc)
      KT_FAIL("round %d: %ld tasks accepted, %ld had run when shutdown(wait) returned", r, acc,
              done_at_shutdown);
    kiln_pool_destroy(g_pool);
  }
}

/* ---- a thread keeps the records of a burst it needed ---- */

enum { BURST = 100000 }; /* more than a thread keeps before it has needed more */
static kiln_future *g_burst[BURST];

static int cmp_ptr(const void *a, const void *b) {
  uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
  return (x > y) - (x < y);
}

static void *release_burst(void *arg) {
  (void)arg;
  for (int i = 0; i < BURST; i++) kiln_future_release(g_burst[i]);
  return NULL;
}

/* Allocates the burst again while this thread holds BURST blocks of a record's size from malloc,
 * which would take any record the cache had given back (the first allocation takes in the
 * remote frees; the blocks are taken after it): every new record must be one of `first`
 * (sorted). Returns how many are not. */
static long realloc_misses(kiln_future **first) {
  void **hold = malloc(sizeof *hold * BURST);
  if (!hold) return -1;
  long misses = 0;
  for (int i = 0; i < BURST; i++) {
    if (kiln_promise_create(&g_burst[i]) != KILN_OK) return -1;
    if (i == 0)
      for (int k = 0; k < BURST; k++) hold[k] = malloc(sizeof(struct kiln_future));
    if (!bsearch(&g_burst[i], first, BURST, sizeof *first, cmp_ptr)) misses++;
  }
  for (int i = 0; i < BURST; i++) free(hold[i]);
  free(hold);
  return misses;
}

static void *burst_owner(void *arg) {
  long *misses = arg; /* [0]: after remote frees, [1]: after this thread's own */
  kiln_future **first = malloc(sizeof *first * BURST);
  if (!first) return NULL;
  for (int i = 0; i < BURST; i++) {
    if (kiln_promise_create(&g_burst[i]) != KILN_OK) return NULL;
    first[i] = g_burst[i];
  }
  qsort(first, BURST, sizeof *first, cmp_ptr);
  pthread_t t; /* another thread frees them: they come back through this cache's remote list */
  if (pthread_create(&t, NULL, release_burst, NULL) != 0) return NULL;
  pthread_join(t, NULL);
  misses[0] = realloc_misses(first);
  release_burst(NULL); /* this thread frees them: they come back to its local list */
  misses[1] = realloc_misses(first);
  release_burst(NULL);
  free(first);
  return NULL;
}

/* A thread outside any pool that once had BURST futures out at once (a graph built with every
 * future kept) gets them back from its cache the next time, whether other threads or it freed
 * them, instead of from malloc. */
TEST(record_cache_keeps_a_burst_it_needed) {
  long misses[2] = {-2, -2};
  pthread_t t; /* a thread of its own: its cache starts empty */
  KT_EQ(pthread_create(&t, NULL, burst_owner, misses), 0);
  KT_EQ(pthread_join(t, NULL), 0);
  KT_EQ(misses[0], 0);
  KT_EQ(misses[1], 0);
}
