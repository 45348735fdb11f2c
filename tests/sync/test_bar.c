/* test_bar.c: kiln_barrier (BAR-01..BAR-10 of docs/CONFORMANCE.md), plus reset, the action, and
 * a lockstep test over 1000 rounds.
 *
 * Not tested: the "across processes" part of BAR-03 waits for the process pool. BAR-05 and
 * BAR-07 are not rules of docs/CONFORMANCE.md; barrier_reset_sends_waiters_away,
 * barrier_action_runs_once_per_round and barrier_failing_action_breaks_it cover CPython's
 * test_reset, test_action and test_abort-by-action instead. */
// kt: timeout 60
#include "sync_test_util.h"

enum { N = 5 };

static kiln_barrier *g_b, *g_b3;
static atomic_int g_rc, g_r0, g_r1, g_res1, g_res2, g_res3, g_sum, g_zeros, g_mask, g_bad;
static atomic_int g_actions, g_action_by_last;
static _Thread_local int t_index;

static void reset_globals(void) {
  atomic_int *all[] = {&g_rc,  &g_r0,    &g_r1,   &g_res1, &g_res2,    &g_res3,
                       &g_sum, &g_zeros, &g_mask, &g_bad,  &g_actions, &g_action_by_last};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) atomic_store(all[i], 0);
}

static void note_rc(int rc) {
  if (rc) atomic_store(&g_rc, rc);
}

/* BAR-01: parties < 1 is KILN_EINVAL (and *out NULL); so is a NaN default timeout. */
TEST(barrier_parties_below_one_is_einval) {
  kiln_barrier *b = (kiln_barrier *)(uintptr_t)1;
  KT_CODE(kiln_barrier_create(0, NULL, NULL, -1, &b), KILN_EINVAL);
  KT_TRUE(b == NULL);
  KT_CODE(kiln_barrier_create(-1, NULL, NULL, -1, &b), KILN_EINVAL);
  KT_TRUE(b == NULL);
  KT_CODE(kiln_barrier_create(2, NULL, NULL, NAN, &b), KILN_EINVAL);
  KT_TRUE(b == NULL);
  b = st_barrier(1, NULL, NULL, -1);
  KT_CODE(kiln_barrier_wait_timeout(b, NAN, NULL), KILN_EINVAL);
  KT_FALSE(kiln_barrier_broken(b));
  kiln_barrier_destroy(b);
  kiln_barrier_destroy(NULL);
}

static void *wait_once(void *arg) {
  (void)arg;
  int rc = kiln_barrier_wait(g_b, NULL);
  atomic_fetch_add(rc == 0 ? &g_res1 : rc == KILN_EBROKEN ? &g_res2 : &g_bad, 1);
  return NULL;
}

/* BAR-02: parties is N; n_waiting counts the blocked threads (2 of 3) and is 0 after the
 * release; broken stays false. */
TEST(barrier_counts_waiting_threads) {
  reset_globals();
  g_b = st_barrier(3, NULL, NULL, -1);
  KT_EQ(kiln_barrier_parties(g_b), 3);
  KT_EQ(kiln_barrier_n_waiting(g_b), 0);
  for (int round = 0; round < 2; round++) {
    reset_globals();
    st_bunch b;
    st_start(&b, 2, wait_once, NULL);
    ST_UNTIL(kiln_barrier_n_waiting(g_b) == 2);
    KT_FALSE(kiln_barrier_broken(g_b));
    int idx = -1;
    KT_CODE(kiln_barrier_wait(g_b, &idx), KILN_OK);
    KT_EQ(idx, 2); /* the last arrival gets parties-1 */
    KT_EQ(kiln_barrier_n_waiting(g_b), 0);
    st_join(&b);
    KT_EQ(kiln_barrier_n_waiting(g_b), 0);
    KT_EQ(atomic_load(&g_res1), 2);
    KT_FALSE(kiln_barrier_broken(g_b));
  }
  kiln_barrier_destroy(g_b);
}

/* CPython's multipass: between two waits of round i, every thread has passed the first wait of
 * round i and none has passed the second of round i. */
static void multipass(int rounds, int parties) {
  for (int i = 0; i < rounds; i++) {
    atomic_fetch_add(&g_r0, 1);
    if (atomic_load(&g_r1) != i * parties) atomic_fetch_add(&g_bad, 1);
    note_rc(kiln_barrier_wait(g_b, NULL));
    atomic_fetch_add(&g_r1, 1);
    if (atomic_load(&g_r0) != (i + 1) * parties) atomic_fetch_add(&g_bad, 1);
    note_rc(kiln_barrier_wait(g_b, NULL));
  }
}

static int g_rounds;
static void *multipass_thread(void *arg) {
  multipass(g_rounds, (int)(intptr_t)arg);
  return NULL;
}

static void run_multipass(int parties, int rounds) {
  reset_globals();
  g_rounds = rounds;
  g_b = st_barrier(parties, NULL, NULL, -1);
  st_bunch b;
  st_start(&b, parties, multipass_thread, (void *)(intptr_t)parties);
  st_join(&b);
  KT_CODE(atomic_load(&g_rc), KILN_OK);
  KT_EQ(atomic_load(&g_bad), 0);
  KT_EQ(atomic_load(&g_r0), rounds * parties);
  KT_EQ(atomic_load(&g_r1), rounds * parties);
  KT_EQ(kiln_barrier_n_waiting(g_b), 0);
  KT_FALSE(kiln_barrier_broken(g_b));
  kiln_barrier_destroy(g_b);
}

/* BAR-03: wait blocks until N threads call it, then releases them all; the rounds stay in
 * lockstep; the barrier is reusable (one round, then 10). */
TEST(barrier_releases_all_together_in_lockstep) {
  run_multipass(N, 1);
  run_multipass(N, 10);
}

/* BAR-03 over 1000 rounds (CPython runs 1000 across processes). */
TEST(barrier_lockstep_1000_rounds) { run_multipass(4, 1000); }

enum { INDEX_ROUNDS = 20 };

static void *index_thread(void *arg) {
  (void)arg;
  for (int i = 0; i < INDEX_ROUNDS; i++) {
    int idx = -1;
    note_rc(kiln_barrier_wait(g_b, &idx));
    if (idx < 0 || idx >= N) {
      atomic_fetch_add(&g_bad, 1);
      continue;
    }
    atomic_fetch_add(&g_sum, idx);
    if (idx == 0) atomic_fetch_add(&g_zeros, 1);
    if (atomic_fetch_or(&g_mask, 1 << idx) & (1 << idx)) atomic_fetch_add(&g_bad, 1);
    /* the second wait keeps the rounds apart while the main thread cannot see them: clear the
     * mask once per round, by index 0 after everyone has recorded */
    int idx2 = -1;
    note_rc(kiln_barrier_wait(g_b, &idx2));
    if (idx2 == 0) {
      if (atomic_load(&g_mask) != (1 << N) - 1) atomic_fetch_add(&g_bad, 1);
      atomic_store(&g_mask, 0);
    }
    note_rc(kiln_barrier_wait(g_b, NULL));
  }
  return NULL;
}

/* BAR-04: each round gives every thread a different index in 0..N-1: they sum to N(N-1)/2 and
 * exactly one thread gets 0. */
TEST(barrier_indices_distinct_in_each_round) {
  reset_globals();
  g_b = st_barrier(N, NULL, NULL, -1);
  st_bunch b;
  st_start(&b, N, index_thread, NULL);
  st_join(&b);
  KT_CODE(atomic_load(&g_rc), KILN_OK);
  KT_EQ(atomic_load(&g_bad), 0);
  KT_EQ(atomic_load(&g_sum), INDEX_ROUNDS * N * (N - 1) / 2);
  KT_EQ(atomic_load(&g_zeros), INDEX_ROUNDS);
  kiln_barrier_destroy(g_b);
}

/* CPython's test_abort body: the thread with index N/2 aborts instead of waiting again; the
 * others count how their second wait ended. */
static void abort_body(void) {
  int idx = -1;
  int rc = kiln_barrier_wait(g_b, &idx);
  if (rc == 0 && idx == N / 2) {
    kiln_barrier_abort(g_b);
    return;
  }
  if (rc == 0) rc = kiln_barrier_wait(g_b, NULL);
  atomic_fetch_add(rc == 0 ? &g_res1 : rc == KILN_EBROKEN ? &g_res2 : &g_bad, 1);
}

static void *abort_thread(void *arg) {
  (void)arg;
  abort_body();
  return NULL;
}

/* BAR-06: abort breaks the barrier: every waiting thread and every later caller gets
 * KILN_EBROKEN, and broken is true. */
TEST(barrier_abort_breaks_it) {
  reset_globals();
  g_b = st_barrier(N, NULL, NULL, -1);
  st_bunch b;
  st_start(&b, N, abort_thread, NULL);
  st_join(&b);
  KT_EQ(atomic_load(&g_res1), 0);
  KT_EQ(atomic_load(&g_res2), N - 1);
  KT_EQ(atomic_load(&g_bad), 0);
  KT_TRUE(kiln_barrier_broken(g_b));
  KT_CODE(kiln_barrier_wait(g_b, NULL), KILN_EBROKEN);
  KT_CODE(kiln_barrier_wait_timeout(g_b, 0, NULL), KILN_EBROKEN);
  KT_EQ(kiln_barrier_n_waiting(g_b), 0);
  kiln_barrier_destroy(g_b);
}

static void *abort_reset_thread(void *arg) {
  (void)arg;
  abort_body();
  /* Everyone leaves g_b before the reset, and nobody enters it again before the reset. */
  int idx = -1;
  note_rc(kiln_barrier_wait(g_b3, &idx));
  if (idx == N - 1) kiln_barrier_reset(g_b);
  note_rc(kiln_barrier_wait(g_b3, NULL));
  if (kiln_barrier_wait(g_b, NULL) == 0) atomic_fetch_add(&g_res3, 1);
  return NULL;
}

/* BAR-08: a broken barrier, once every thread has left it, can be reset and used again. */
TEST(barrier_reset_after_break_works_again) {
  reset_globals();
  g_b = st_barrier(N, NULL, NULL, -1);
  g_b3 = st_barrier(N, NULL, NULL, -1);
  st_bunch b;
  st_start(&b, N, abort_reset_thread, NULL);
  st_join(&b);
  KT_CODE(atomic_load(&g_rc), KILN_OK);
  KT_EQ(atomic_load(&g_res1), 0);
  KT_EQ(atomic_load(&g_res2), N - 1);
  KT_EQ(atomic_load(&g_res3), N);
  KT_FALSE(kiln_barrier_broken(g_b));
  kiln_barrier_destroy(g_b);
  kiln_barrier_destroy(g_b3);
}

static double g_elapsed_max;
static pthread_mutex_t g_elapsed_mu = PTHREAD_MUTEX_INITIALIZER;

/* CPython's test_timeout / test_default_timeout: after a first round, the thread with index N/2
 * arrives only once the barrier is broken (CPython sleeps there; we wait for the break itself),
 * so the others' timed wait expires. */
static void *timeout_thread(void *arg) {
  bool use_default = arg != NULL;
  int idx = -1;
  note_rc(kiln_barrier_wait_timeout(g_b, -1, &idx)); /* a first round without a timeout */
  int rc;
  if (idx == N / 2) {
    ST_UNTIL(kiln_barrier_broken(g_b));
    rc = use_default ? kiln_barrier_wait(g_b, NULL) : kiln_barrier_wait_timeout(g_b, ST_T, NULL);
  } else {
    double t0 = kt_now();
    rc = use_default ? kiln_barrier_wait(g_b, NULL) : kiln_barrier_wait_timeout(g_b, ST_T, NULL);
    double e = kt_now() - t0;
    pthread_mutex_lock(&g_elapsed_mu);
    if (e > g_elapsed_max) g_elapsed_max = e;
    pthread_mutex_unlock(&g_elapsed_mu);
  }
  atomic_fetch_add(rc == KILN_EBROKEN ? &g_res2 : &g_bad, 1);
  return NULL;
}

static void check_timeout(bool use_default) {
  reset_globals();
  g_elapsed_max = 0;
  g_b = st_barrier(N, NULL, NULL, use_default ? ST_T : -1);
  st_bunch b;
  st_start(&b, N, timeout_thread, use_default ? (void *)1 : NULL);
  st_join(&b);
  KT_CODE(atomic_load(&g_rc), KILN_OK);
  KT_EQ(atomic_load(&g_bad), 0);
  KT_EQ(atomic_load(&g_res2), N); /* the one that timed out, the other waiters, the late one */
  KT_TIMED(g_elapsed_max, ST_T);
  KT_TRUE(kiln_barrier_broken(g_b));
  kiln_barrier_destroy(g_b);
}

/* BAR-09: a timed wait that expires breaks the barrier: the thread that timed out, every other
 * waiter and any late arrival get KILN_EBROKEN (all N). The default timeout applies to
 * kiln_barrier_wait. */
TEST(barrier_timeout_breaks_it_for_everyone) {
  check_timeout(false);
  check_timeout(true);
}

/* BAR-10: a barrier of 1 returns at once, every time, with index 0. */
TEST(barrier_of_one_returns_at_once) {
  kiln_barrier *b = st_barrier(1, NULL, NULL, -1);
  for (int i = 0; i < 5; i++) {
    int idx = -1;
    double t0 = kt_now();
    KT_CODE(kiln_barrier_wait(b, &idx), KILN_OK);
    KT_TRUE(kt_now() - t0 < ST_T);
    KT_EQ(idx, 0);
    KT_CODE(kiln_barrier_wait_timeout(b, 0, &idx), KILN_OK);
  }
  KT_EQ(kiln_barrier_n_waiting(b), 0);
  kiln_barrier_destroy(b);
}

static void *reset_thread(void *arg) {
  (void)arg;
  int idx = -1;
  note_rc(kiln_barrier_wait(g_b, &idx));
  if (idx == N / 2) {
    ST_UNTIL(kiln_barrier_n_waiting(g_b) == N - 1); /* everyone else is inside */
    kiln_barrier_reset(g_b);
  } else {
    int rc = kiln_barrier_wait(g_b, NULL);
    atomic_fetch_add(rc == 0 ? &g_res1 : rc == KILN_EBROKEN ? &g_res2 : &g_bad, 1);
  }
  if (kiln_barrier_wait(g_b, NULL) == 0) atomic_fetch_add(&g_res3, 1); /* usable again */
  return NULL;
}

/* CPython's test_reset: reset while threads wait sends them away with KILN_EBROKEN, and the
 * barrier works again at once, without a separate synchronisation. */
TEST(barrier_reset_sends_waiters_away) {
  reset_globals();
  g_b = st_barrier(N, NULL, NULL, -1);
  st_bunch b;
  st_start(&b, N, reset_thread, NULL);
  st_join(&b);
  KT_CODE(atomic_load(&g_rc), KILN_OK);
  KT_EQ(atomic_load(&g_res1), 0);
  KT_EQ(atomic_load(&g_res2), N - 1);
  KT_EQ(atomic_load(&g_res3), N);
  KT_EQ(atomic_load(&g_bad), 0);
  KT_FALSE(kiln_barrier_broken(g_b));
  kiln_barrier_reset(g_b); /* idle: a no-op */
  KT_FALSE(kiln_barrier_broken(g_b));
  kiln_barrier_destroy(g_b);
}

static int counting_action(void *arg) {
  (void)arg;
  atomic_fetch_add(&g_actions, 1);
  /* no thread is released before the action: all N have arrived, none has left */
  if (kiln_barrier_n_waiting(g_b) != N) atomic_fetch_add(&g_bad, 1);
  t_index = -2; /* marks the thread that runs it */
  return 0;
}

static void *action_thread(void *arg) {
  (void)arg;
  for (int i = 0; i < 10; i++) {
    t_index = 0;
    int idx = -1;
    note_rc(kiln_barrier_wait(g_b, &idx));
    if (t_index == -2) {
      if (idx == N - 1) atomic_fetch_add(&g_action_by_last, 1);
    }
  }
  return NULL;
}

/* CPython's test_action: the action runs once per round, before anyone is released, in the last
 * arriving thread. */
TEST(barrier_action_runs_once_per_round) {
  reset_globals();
  g_b = st_barrier(N, counting_action, NULL, -1);
  st_bunch b;
  st_start(&b, N, action_thread, NULL);
  st_join(&b);
  KT_CODE(atomic_load(&g_rc), KILN_OK);
  KT_EQ(atomic_load(&g_actions), 10);
  KT_EQ(atomic_load(&g_action_by_last), 10);
  KT_EQ(atomic_load(&g_bad), 0);
  kiln_barrier_destroy(g_b);
}

static int failing_action(void *arg) {
  (void)arg;
  atomic_fetch_add(&g_actions, 1);
  return KILN_EIO;
}

/* A failing action breaks the barrier: every thread of that round, and later callers, get
 * KILN_EBROKEN. */
TEST(barrier_failing_action_breaks_it) {
  reset_globals();
  g_b = st_barrier(N, failing_action, NULL, -1);
  st_bunch b;
  st_start(&b, N, wait_once, NULL);
  st_join(&b);
  KT_EQ(atomic_load(&g_res2), N);
  KT_EQ(atomic_load(&g_bad), 0);
  KT_EQ(atomic_load(&g_actions), 1);
  KT_TRUE(kiln_barrier_broken(g_b));
  KT_CODE(kiln_barrier_wait(g_b, NULL), KILN_EBROKEN);
  kiln_barrier_reset(g_b);
  KT_FALSE(kiln_barrier_broken(g_b));
  kiln_barrier_destroy(g_b);
}
