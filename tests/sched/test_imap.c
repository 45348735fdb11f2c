/* test_imap.c: kiln_imap_* (Pool.imap and imap_unordered on the thread pool): POOL-10, the imap
 * half of POOL-06, and the C contract around them (a failing item, timeouts, destroying early,
 * shutdown while iterating, iterating from inside a task, who frees the values).
 *
 * Items that must stay unfinished block their worker on a gate (sched_test_util.h), so the
 * pools here have a worker per blocked item where a test needs the others to run. */
// kt: timeout 60
#include <math.h>

#include "sched_test_util.h"

/* ---- tasks ---- */

static tu_gate g_gate;
static atomic_int g_freed, g_made;

/* Item i: (void *)(2 * i). */
static int task_double(void *arg, void **result) {
  *result = (void *)(2 * (intptr_t)arg);
  return 0;
}

/* Item i is (intptr_t)arg; items listed in g_block wait on g_gate first. */
static intptr_t g_block_from = INTPTR_MAX, g_block_only = -1;
static int task_maybe_blocked(void *arg, void **result) {
  intptr_t i = (intptr_t)arg;
  if (i >= g_block_from || i == g_block_only) tu_gate_wait(&g_gate);
  *result = (void *)(2 * i);
  return 0;
}

static void count_free(void *v) {
  atomic_fetch_add(&g_freed, 1);
  free(v);
}

/* A malloc'd copy of i with a destructor; items >= g_block_from wait on g_gate first. */
static int task_owned(void *arg, void **result) {
  intptr_t i = (intptr_t)arg;
  if (i >= g_block_from) tu_gate_wait(&g_gate);
  intptr_t *v = malloc(sizeof *v);
  if (!v) return KILN_ENOMEM;
  *v = i;
  atomic_fetch_add(&g_made, 1);
  kiln_task_set_result_free(count_free);
  *result = v;
  return 0;
}

/* Item 3 fails with a message, item 5 without one; the others succeed. A failing item also
 * registers a destructor for a value it stored: that value is never seen, and must be freed. */
static int task_some_fail(void *arg, void **result) {
  intptr_t i = (intptr_t)arg;
  if (i == 3) return kiln_task_fail(KILN_EIO, "bad item %d", (int)i);
  if (i == 5) {
    intptr_t *v = malloc(sizeof *v);
    if (v) atomic_fetch_add(&g_made, 1);
    kiln_task_set_result_free(count_free);
    *result = v;
    return KILN_EPARSE;
  }
  *result = (void *)(2 * i);
  return 0;
}

static void **iota(size_t n) {
  void **args = malloc((n ? n : 1) * sizeof *args);
  KT_TRUE(args != NULL);
  for (size_t i = 0; i < n; i++) args[i] = (void *)(intptr_t)i;
  return args;
}

static kiln_imap *start(kiln_pool *p, kiln_task_fn fn, void **args, size_t n, size_t chunksize,
                        bool ordered) {
  kiln_imap *it = NULL;
  KT_CODE(kiln_imap_start(p, fn, args, n, chunksize, ordered, &it), KILN_OK);
  KT_TRUE(it != NULL);
  return it;
}

/* Takes the next result, which must be a success for item `want` (or any item if want < 0);
 * returns its index. */
static size_t take_ok(kiln_imap *it, double timeout, intptr_t want) {
  void *v = (void *)1;
  size_t index = SIZE_MAX;
  KT_CODE(kiln_imap_next(it, timeout, &v, &index), KILN_OK);
  if (want >= 0) KT_EQ(index, want);
  KT_EQ((intptr_t)v, 2 * (intptr_t)index);
  KT_STR_EQ(kiln_imap_message(it), "");
  return index;
}

static void expect_eof(kiln_imap *it) {
  void *v = (void *)1;
  KT_CODE(kiln_imap_next(it, -1, &v, NULL), KILN_EEOF);
  KT_PTR_EQ(v, NULL);
  KT_CODE(kiln_imap_next(it, 0, NULL, NULL), KILN_EEOF); /* and again */
}

/* ---- POOL-10 ---- */

/* Item 0 is free, every later item waits on the gate: the first result must come out while the
 * rest are still blocked, whatever the chunking (within one chunk too). */
static void lazy_case(size_t chunksize, bool ordered) {
  enum { N = 6 };
  tu_gate_init(&g_gate);
  g_block_from = 1;
  kiln_pool *p = tu_pool(N);
  void **args = iota(N);
  kiln_imap *it = start(p, task_maybe_blocked, args, N, chunksize, ordered);
  take_ok(it, -1, 0);
  KT_CODE(kiln_imap_next(it, 0, NULL, NULL), KILN_ETIMEDOUT); /* the others are blocked */
  tu_gate_open(&g_gate);
  bool seen[N] = {true};
  for (int k = 1; k < N; k++) {
    size_t i = take_ok(it, -1, ordered ? k : -1);
    KT_FALSE(seen[i]);
    seen[i] = true;
  }
  expect_eof(it);
  kiln_imap_destroy(it);
  kiln_pool_destroy(p);
  free(args);
  tu_gate_fini(&g_gate);
  g_block_from = INTPTR_MAX;
}

/* POOL-10: imap and imap_unordered are lazy: the first result is there while later items still
 * wait on an event released afterwards; with chunks of 1 and one chunk for all. */
TEST(POOL_10_imap_is_lazy) {
  lazy_case(1, true);
  lazy_case(100, true);
  lazy_case(1, false);
  lazy_case(100, false);
}

/* POOL-10: imap yields in input order then stops, with the same sequence for any chunksize;
 * imap_unordered yields every item exactly once. */
TEST(POOL_10_imap_order_same_for_any_chunksize_unordered_once_each) {
  enum { N = 1000 };
  kiln_pool *p = tu_pool(4);
  void **args = iota(N);
  const size_t sizes[] = {1, 7, 100, N, 2 * N};
  for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
    kiln_imap *it = start(p, task_double, args, N, sizes[s], true);
    for (intptr_t k = 0; k < N; k++) take_ok(it, -1, k);
    expect_eof(it);
    kiln_imap_destroy(it);
    it = start(p, task_double, args, N, sizes[s], false);
    static bool seen[N];
    memset(seen, 0, sizeof seen);
    for (int k = 0; k < N; k++) {
      size_t i = take_ok(it, -1, -1);
      KT_TRUE(i < N);
      KT_FALSE(seen[i]);
      seen[i] = true;
    }
    expect_eof(it);
    kiln_imap_destroy(it);
  }
  kiln_pool_destroy(p);
  free(args);
}

/* POOL-10: an ordered result waits only for the items before it, an unordered one for nothing:
 * with item 2 blocked, imap gives 0 and 1 and then waits; imap_unordered gives all the others. */
TEST(POOL_10_imap_waits_only_for_predecessors) {
  enum { N = 8 };
  void **args = iota(N);
  for (int ordered = 1; ordered >= 0; ordered--) {
    tu_gate_init(&g_gate);
    g_block_only = 2;
    kiln_pool *p = tu_pool(2);
    kiln_imap *it = start(p, task_maybe_blocked, args, N, 1, ordered);
    bool seen[N] = {false};
    for (int k = 0; k < (ordered ? 2 : N - 1); k++) seen[take_ok(it, -1, ordered ? k : -1)] = true;
    KT_FALSE(seen[2]);
    KT_CODE(kiln_imap_next(it, 0, NULL, NULL), KILN_ETIMEDOUT);
    tu_gate_open(&g_gate);
    take_ok(it, -1, 2);
    for (int k = 3; ordered && k < N; k++) take_ok(it, -1, k);
    expect_eof(it);
    kiln_imap_destroy(it);
    kiln_pool_destroy(p);
    tu_gate_fini(&g_gate);
  }
  g_block_only = -1;
  free(args);
}

/* ---- POOL-06 ---- */

/* POOL-06: an empty input ends at once, with chunksize 1 too, ordered or not; args may be NULL. */
TEST(POOL_06_imap_empty_input_ends_at_once) {
  kiln_pool *p = tu_pool(2);
  for (int ordered = 0; ordered < 2; ordered++) {
    for (size_t cs = 1; cs <= 100; cs += 99) {
      kiln_imap *it = start(p, task_double, NULL, 0, cs, ordered);
      expect_eof(it);
      KT_STR_EQ(kiln_imap_message(it), "");
      kiln_imap_destroy(it);
    }
  }
  kiln_imap_destroy(NULL);
  kiln_pool_destroy(p);
}

/* ---- the C contract ---- */

/* A failed item comes out at its position with its own code and message, its value NULL (and
 * freed with the task's destructor), and iteration goes on past it. */
TEST(imap_failing_item_gives_its_code_and_goes_on) {
  enum { N = 9 };
  kiln_pool *p = tu_pool(3);
  void **args = iota(N);
  for (int ordered = 1; ordered >= 0; ordered--) {
    atomic_store(&g_made, 0);
    atomic_store(&g_freed, 0);
    kiln_imap *it = start(p, task_some_fail, args, N, 2, ordered);
    int fails = 0;
    for (int k = 0; k < N; k++) {
      void *v = (void *)1;
      size_t i = SIZE_MAX;
      int rc = kiln_imap_next(it, -1, &v, &i);
      if (ordered) KT_EQ(i, k);
      if (i == 3 || i == 5) {
        KT_CODE(rc, i == 3 ? KILN_EIO : KILN_EPARSE);
        KT_PTR_EQ(v, NULL);
        KT_STR_EQ(kiln_imap_message(it), i == 3 ? "bad item 3" : kiln_strerror(KILN_EPARSE));
        fails++;
      } else {
        KT_CODE(rc, KILN_OK);
        KT_EQ((intptr_t)v, 2 * (intptr_t)i);
        KT_STR_EQ(kiln_imap_message(it), "");
      }
    }
    KT_EQ(fails, 2);
    expect_eof(it);
    KT_STR_EQ(kiln_imap_message(it), "");
    kiln_imap_destroy(it);
    KT_EQ(atomic_load(&g_freed), atomic_load(&g_made));
  }
  kiln_pool_destroy(p);
  free(args);
}

/* A timed next gives up after about its timeout and consumes nothing; a try (0) too; NaN is
 * KILN_EINVAL; chunksize 0 is KILN_EINVAL. */
TEST(imap_timeout_consumes_nothing) {
  enum { N = 3 };
  tu_gate_init(&g_gate);
  g_block_only = 0;
  kiln_pool *p = tu_pool(2);
  void **args = iota(N);
  kiln_imap *it = NULL;
  KT_CODE(kiln_imap_start(p, task_double, args, N, 0, true, &it), KILN_EINVAL);
  KT_PTR_EQ(it, NULL);
  it = start(p, task_maybe_blocked, args, N, 1, true);
  double t0 = kt_now();
  size_t index = 7;
  KT_CODE(kiln_imap_next(it, 0.1, NULL, &index), KILN_ETIMEDOUT);
  KT_TIMED(kt_now() - t0, 0.1);
  KT_CODE(kiln_imap_next(it, 0, NULL, NULL), KILN_ETIMEDOUT);
  KT_CODE(kiln_imap_next(it, NAN, NULL, NULL), KILN_EINVAL);
  tu_gate_open(&g_gate);
  for (int k = 0; k < N; k++) take_ok(it, -1, k); /* item 0 is still first */
  expect_eof(it);
  kiln_imap_destroy(it);
  kiln_pool_destroy(p);
  free(args);
  tu_gate_fini(&g_gate);
  g_block_only = -1;
}

/* Values are handed over by next (the caller frees them; the task's destructor is not run on
 * them). Destroying before the end drops the results not taken, now or as their chunks finish
 * (the chunks still run), freeing each with the task's destructor exactly once. A next with a
 * NULL value pointer drops that value the same way. */
TEST(imap_destroy_early_drops_the_rest_chunks_still_run) {
  enum { N = 50, TAKE = 5 };
  void **args = iota(N);
  for (int ordered = 1; ordered >= 0; ordered--) {
    tu_gate_init(&g_gate);
    g_block_from = 10;
    atomic_store(&g_made, 0);
    atomic_store(&g_freed, 0);
    kiln_pool *p = tu_pool(4);
    kiln_imap *it = start(p, task_owned, args, N, 3, ordered);
    for (int k = 0; k < TAKE; k++) {
      intptr_t *v = NULL;
      size_t i = SIZE_MAX;
      KT_CODE(kiln_imap_next(it, -1, (void **)&v, &i), KILN_OK);
      KT_TRUE(v != NULL);
      KT_EQ(*v, i);
      free(v); /* ours now */
    }
    KT_CODE(kiln_imap_next(it, -1, NULL, NULL), KILN_OK); /* dropped: the destructor frees it */
    KT_EQ(atomic_load(&g_freed), 1);
    kiln_imap_destroy(it); /* items >= 10 are still blocked or queued */
    tu_gate_open(&g_gate);
    kiln_pool_destroy(p); /* runs every chunk to the end */
    KT_EQ(atomic_load(&g_made), N);
    KT_EQ(atomic_load(&g_freed), N - TAKE);
    tu_gate_fini(&g_gate);
  }
  g_block_from = INTPTR_MAX;
  free(args);
}

/* Shutting the pool down with cancel_pending (or terminating it) while iterating: the items of
 * the chunks that never ran come out as KILN_ECANCELLED at their positions, the running one still
 * delivers its result, and the iteration ends. Starting on a pool that takes no work fails. */
static void shutdown_case(bool ordered, bool terminate) {
  enum { N = 5 };
  tu_blocker b;
  tu_blocker_init(&b);
  kiln_pool *p = tu_pool(1);
  kiln_future *blocker = tu_start_blocker(p, &b); /* holds the only worker */
  void **args = iota(N);
  kiln_imap *it = start(p, task_double, args, N, 2, ordered);
  KT_CODE(kiln_imap_next(it, 0, NULL, NULL), KILN_ETIMEDOUT);
  if (terminate) KT_CODE(kiln_pool_terminate(p), KILN_OK);
  else KT_CODE(kiln_pool_shutdown(p, false, true), KILN_OK);
  bool seen[N] = {false};
  for (int k = 0; k < N; k++) {
    size_t i = SIZE_MAX;
    KT_CODE(kiln_imap_next(it, -1, NULL, &i), KILN_ECANCELLED);
    if (ordered) KT_EQ(i, k);
    KT_FALSE(seen[i]);
    seen[i] = true;
    KT_STR_CONTAINS(kiln_imap_message(it), "cancelled");
  }
  expect_eof(it);
  kiln_imap_destroy(it);
  kiln_imap *none = (kiln_imap *)1;
  KT_CODE(kiln_imap_start(p, task_double, args, N, 1, ordered, &none), KILN_ESHUTDOWN);
  KT_PTR_EQ(none, NULL);
  tu_gate_open(&b.gate);
  KT_CODE(kiln_future_result(blocker, -1, NULL), KILN_OK);
  kiln_future_release(blocker);
  if (terminate) KT_CODE(kiln_pool_join(p), KILN_OK);
  kiln_pool_destroy(p);
  tu_blocker_fini(&b);
  free(args);
}

TEST(imap_pool_shutdown_while_iterating_cancels_the_rest) {
  shutdown_case(true, false);
  shutdown_case(false, false);
  shutdown_case(true, true);
  shutdown_case(false, true);
}

static tu_latch g_started;

/* Signals that it started, then waits on the gate; item i gives 2 * i. */
static int task_signal_then_block(void *arg, void **result) {
  tu_latch_add(&g_started, 1);
  tu_gate_wait(&g_gate);
  *result = (void *)(2 * (intptr_t)arg);
  return 0;
}

/* A chunk already running when the pool shuts down with cancel_pending runs all its items, and
 * they deliver their results. */
TEST(imap_pool_shutdown_keeps_running_chunks) {
  enum { N = 4 };
  tu_gate_init(&g_gate);
  tu_latch_init(&g_started);
  kiln_pool *p = tu_pool(1);
  void **args = iota(N);
  kiln_imap *it = start(p, task_signal_then_block, args, N, N, true); /* one chunk */
  KT_TRUE(tu_latch_wait(&g_started, 1, 30.0));
  KT_CODE(kiln_pool_shutdown(p, false, true), KILN_OK);
  KT_CODE(kiln_imap_next(it, 0, NULL, NULL), KILN_ETIMEDOUT);
  tu_gate_open(&g_gate);
  for (int k = 0; k < N; k++) take_ok(it, -1, k);
  expect_eof(it);
  kiln_imap_destroy(it);
  kiln_pool_destroy(p);
  free(args);
  tu_latch_fini(&g_started);
  tu_gate_fini(&g_gate);
}

struct inner {
  bool ordered;
  size_t chunksize;
};

/* Inside a task: iterates 20 items on the task's own pool and returns their sum. */
static int task_iterate(void *arg, void **result) {
  struct inner *in = arg;
  enum { N = 20 };
  void *args[N];
  for (int i = 0; i < N; i++) args[i] = (void *)(intptr_t)i;
  kiln_imap *it = NULL;
  int rc =
      kiln_imap_start(kiln_pool_current(), task_double, args, N, in->chunksize, in->ordered, &it);
  if (rc) return rc;
  intptr_t sum = 0;
  void *v;
  size_t i, k = 0;
  while ((rc = kiln_imap_next(it, -1, &v, &i)) == 0) {
    if (in->ordered && i != k) rc = KILN_ESTATE;
    sum += (intptr_t)v;
    k++;
  }
  kiln_imap_destroy(it);
  if (rc != KILN_EEOF) return rc;
  *result = (void *)sum;
  return k == N ? 0 : KILN_ESTATE;
}

/* From inside a task of a one-worker pool: next runs the chunks itself while it waits. */
TEST(imap_from_inside_a_task_on_one_worker) {
  kiln_pool *p = tu_pool(1);
  for (int ordered = 0; ordered < 2; ordered++) {
    for (size_t cs = 1; cs <= 7; cs += 6) {
      struct inner in = {ordered, cs};
      void *sum = NULL;
      KT_CODE(kiln_pool_apply(p, task_iterate, &in, &sum), KILN_OK);
      KT_EQ((intptr_t)sum, 2 * (19 * 20 / 2));
    }
  }
  kiln_pool_destroy(p);
}

/* An iterator outlives its pool, as futures do: destroying the pool runs every chunk, and the
 * results are still there to take. */
TEST(imap_outlives_its_pool) {
  enum { N = 100 };
  kiln_pool *p = tu_pool(2);
  void **args = iota(N);
  kiln_imap *ordered = start(p, task_double, args, N, 7, true);
  kiln_imap *unordered = start(p, task_double, args, N, 7, false);
  kiln_pool_destroy(p);
  bool seen[N] = {false};
  for (int k = 0; k < N; k++) {
    take_ok(ordered, 0, k); /* all done: a try is enough */
    size_t i = take_ok(unordered, 0, -1);
    KT_FALSE(seen[i]);
    seen[i] = true;
  }
  expect_eof(ordered);
  expect_eof(unordered);
  kiln_imap_destroy(ordered);
  kiln_imap_destroy(unordered);
  free(args);
}
