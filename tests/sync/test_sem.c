/* test_sem.c: kiln_semaphore, plain and bounded (SEM-01..SEM-09 of docs/CONFORMANCE.md), plus
 * arrival order.
 *
 * Not tested: SEM-07 (scoped use, also on error and nested): C has no scope-bound acquisition.
 * The "processes" and multiprocessing parts of SEM-06 wait for the process pool. */
// kt: timeout 60
#include "sync_test_util.h"

static kiln_semaphore *g_s;
static atomic_int g_rc, g_acquired, g_finished, g_phase;
static atomic_int g_by_phase[4];

static void reset_globals(void) {
  atomic_store(&g_rc, 0);
  atomic_store(&g_acquired, 0);
  atomic_store(&g_finished, 0);
  atomic_store(&g_phase, 0);
  for (int i = 0; i < 4; i++) atomic_store(&g_by_phase[i], 0);
}

/* SEM-01: a negative initial value is KILN_EINVAL (and *out NULL); 0 is fine. The default value
 * 1 has no C counterpart: the value is a required argument. */
TEST(semaphore_negative_initial_value_is_einval) {
  kiln_semaphore *s = (kiln_semaphore *)(uintptr_t)1; /* must be reset to NULL */
  KT_CODE(kiln_semaphore_create(-1, false, &s), KILN_EINVAL);
  KT_TRUE(s == NULL);
  s = (kiln_semaphore *)(uintptr_t)1;
  KT_CODE(kiln_semaphore_create(-5, true, &s), KILN_EINVAL);
  KT_TRUE(s == NULL);
  s = st_sem(0, false);
  KT_EQ(kiln_semaphore_value(s), 0);
  kiln_semaphore_destroy(s);
  s = st_sem(1, true);
  KT_EQ(kiln_semaphore_value(s), 1);
  kiln_semaphore_destroy(s);
  kiln_semaphore_destroy(NULL);
}

/* SEM-02: acquire decrements, release increments (2 -> 1 -> 0 -> 1 -> 2); a try at 0 fails at
 * once. */
TEST(semaphore_acquire_decrements_release_increments) {
  for (int bounded = 0; bounded < 2; bounded++) {
    kiln_semaphore *s = st_sem(2, bounded);
    KT_EQ(kiln_semaphore_value(s), 2);
    KT_CODE(kiln_semaphore_acquire(s, -1), KILN_OK);
    KT_EQ(kiln_semaphore_value(s), 1);
    KT_CODE(kiln_semaphore_acquire(s, 0), KILN_OK);
    KT_EQ(kiln_semaphore_value(s), 0);
    double t0 = kt_now();
    KT_CODE(kiln_semaphore_acquire(s, 0), KILN_ETIMEDOUT);
    KT_TRUE(kt_now() - t0 < ST_T);
    KT_EQ(kiln_semaphore_value(s), 0);
    KT_CODE(kiln_semaphore_release(s, 1), KILN_OK);
    KT_EQ(kiln_semaphore_value(s), 1);
    KT_CODE(kiln_semaphore_release(s, 1), KILN_OK);
    KT_EQ(kiln_semaphore_value(s), 2);
    kiln_semaphore_destroy(s);
  }
}

/* Two acquires per thread; each records the phase it got through in. */
static void *two_acquires(void *arg) {
  (void)arg;
  for (int k = 0; k < 2; k++) {
    int rc = kiln_semaphore_acquire(g_s, -1);
    if (rc) atomic_store(&g_rc, rc);
    atomic_fetch_add(&g_by_phase[atomic_load(&g_phase)], 1);
    atomic_fetch_add(&g_acquired, 1);
  }
  atomic_fetch_add(&g_finished, 1);
  return NULL;
}

/* Every thread is finished or listed as waiting: nothing can move until the next release. */
#define QUIET(n) (kiln__semaphore_waiting(g_s) + atomic_load(&g_finished) == (n))

/* Semaphore(7), one unit taken, 10 threads x 2 acquires, released by `multi` n at a time or one
 * by one: exactly 6 get through, then exactly 7 more, then exactly 6 more, then the last. */
static void contended(bool multi) {
  enum { N = 10 };
  reset_globals();
  g_s = st_sem(7, false);
  KT_CODE(kiln_semaphore_acquire(g_s, -1), KILN_OK);
  st_bunch b;
  st_start(&b, N, two_acquires, NULL);
  ST_UNTIL(QUIET(N) && atomic_load(&g_acquired) >= 6);
  KT_EQ(atomic_load(&g_acquired), 6);
  KT_EQ(atomic_load(&g_by_phase[0]), 6);
  KT_EQ(kiln_semaphore_value(g_s), 0);

  atomic_store(&g_phase, 1);
  if (multi) KT_CODE(kiln_semaphore_release(g_s, 7), KILN_OK);
  else
    for (int i = 0; i < 7; i++) KT_CODE(kiln_semaphore_release(g_s, 1), KILN_OK);
  ST_UNTIL(QUIET(N) && atomic_load(&g_acquired) >= 13);
  KT_EQ(atomic_load(&g_acquired), 13);
  KT_EQ(atomic_load(&g_by_phase[1]), 7);

  atomic_store(&g_phase, 2);
  if (multi) KT_CODE(kiln_semaphore_release(g_s, 6), KILN_OK);
  else
    for (int i = 0; i < 6; i++) KT_CODE(kiln_semaphore_release(g_s, 1), KILN_OK);
  ST_UNTIL(QUIET(N) && atomic_load(&g_acquired) >= 19);
  KT_EQ(atomic_load(&g_acquired), 19);
  KT_EQ(atomic_load(&g_by_phase[2]), 6);
  KT_EQ(kiln__semaphore_waiting(g_s), 1);
  KT_CODE(kiln_semaphore_acquire(g_s, 0), KILN_ETIMEDOUT); /* still at 0 */

  atomic_store(&g_phase, 3);
  KT_CODE(kiln_semaphore_release(g_s, 1), KILN_OK);
  st_join(&b);
  KT_EQ(atomic_load(&g_acquired), 20);
  KT_EQ(atomic_load(&g_by_phase[3]), 1);
  KT_CODE(atomic_load(&g_rc), KILN_OK);
  KT_EQ(kiln_semaphore_value(g_s), 0);
  KT_EQ(kiln__semaphore_waiting(g_s), 0);
  kiln_semaphore_destroy(g_s);
}

/* SEM-03: a blocking acquire at 0 waits for a release, and each release lets in exactly one
 * waiter. */
TEST(semaphore_each_release_admits_one_waiter) { contended(false); }

/* SEM-04: release(n) adds n and wakes up to n waiters; n < 1 is KILN_EINVAL and changes
 * nothing. */
TEST(semaphore_release_n_wakes_up_to_n) {
  contended(true);
  kiln_semaphore *s = st_sem(1, false);
  KT_CODE(kiln_semaphore_release(s, 0), KILN_EINVAL);
  KT_CODE(kiln_semaphore_release(s, -1), KILN_EINVAL);
  KT_EQ(kiln_semaphore_value(s), 1);
  KT_CODE(kiln_semaphore_release(s, 5), KILN_OK); /* no waiter: all 5 go to the value */
  KT_EQ(kiln_semaphore_value(s), 6);
  kiln_semaphore_destroy(s);

  /* 3 waiters, release(5): all 3 wake, 2 units remain. */
  reset_globals();
  g_s = st_sem(0, false);
  st_bunch b;
  st_start(&b, 3, two_acquires, NULL); /* each wants 2: 6 in all */
  ST_UNTIL(kiln__semaphore_waiting(g_s) == 3);
  KT_CODE(kiln_semaphore_release(g_s, 5), KILN_OK);
  ST_UNTIL(QUIET(3) && atomic_load(&g_acquired) >= 5);
  KT_EQ(atomic_load(&g_acquired), 5);
  KT_EQ(kiln_semaphore_value(g_s), 0);
  KT_CODE(kiln_semaphore_release(g_s, 1), KILN_OK);
  st_join(&b);
  KT_EQ(atomic_load(&g_acquired), 6);
  kiln_semaphore_destroy(g_s);
}

static void *timed_acquire(void *arg) {
  double *elapsed = arg;
  double t0 = kt_now();
  atomic_store(&g_rc, kiln_semaphore_acquire(g_s, ST_T));
  *elapsed = kt_now() - t0;
  return NULL;
}

/* SEM-06: acquire(t) succeeds at once when a unit is free, otherwise gives up after about t; a
 * NaN timeout is KILN_EINVAL. (acquire(blocking=False, timeout=t) has no C counterpart.) */
TEST(semaphore_timed_acquire_gives_up_after_timeout) {
  g_s = st_sem(2, false);
  KT_CODE(kiln_semaphore_acquire(g_s, NAN), KILN_EINVAL);
  KT_EQ(kiln_semaphore_value(g_s), 2);
  KT_CODE(kiln_semaphore_acquire(g_s, 0.005), KILN_OK);
  KT_CODE(kiln_semaphore_acquire(g_s, 0.005), KILN_OK);
  KT_CODE(kiln_semaphore_acquire(g_s, 0.005), KILN_ETIMEDOUT);
  KT_CODE(kiln_semaphore_release(g_s, 1), KILN_OK);
  KT_CODE(kiln_semaphore_acquire(g_s, 0.005), KILN_OK);
  double t0 = kt_now();
  KT_CODE(kiln_semaphore_acquire(g_s, ST_T), KILN_ETIMEDOUT);
  KT_TIMED(kt_now() - t0, ST_T);
  double elapsed = 0;
  st_run(timed_acquire, &elapsed);
  KT_CODE(atomic_load(&g_rc), KILN_ETIMEDOUT);
  KT_TIMED(elapsed, ST_T);
  /* The timed-out waiters left no trace: a release goes to the value. */
  KT_EQ(kiln__semaphore_waiting(g_s), 0);
  KT_CODE(kiln_semaphore_release(g_s, 1), KILN_OK);
  KT_EQ(kiln_semaphore_value(g_s), 1);
  kiln_semaphore_destroy(g_s);
}

/* SEM-08: a plain semaphore may be released above its initial value. */
TEST(semaphore_release_above_initial_value) {
  kiln_semaphore *s = st_sem(2, false);
  KT_CODE(kiln_semaphore_release(s, 1), KILN_OK);
  KT_EQ(kiln_semaphore_value(s), 3);
  KT_CODE(kiln_semaphore_release(s, 1), KILN_OK);
  KT_EQ(kiln_semaphore_value(s), 4);
  kiln_semaphore_destroy(s);
}

static void *acquire_one(void *arg) {
  (void)arg;
  int rc = kiln_semaphore_acquire(g_s, -1);
  if (rc) atomic_store(&g_rc, rc);
  return NULL;
}

static void *release_one(void *arg) {
  (void)arg;
  int rc = kiln_semaphore_release(g_s, 1);
  if (rc) atomic_store(&g_rc, rc);
  return NULL;
}

/* SEM-09: a bounded release past the initial value is KILN_EINVAL and changes nothing: on a
 * fresh one, after acquire + release, and after N threads acquire and N others release
 * (limits 1..9). */
TEST(bounded_semaphore_over_release_is_einval) {
  kiln_semaphore *s = st_sem(1, true);
  KT_CODE(kiln_semaphore_release(s, 1), KILN_EINVAL);
  KT_EQ(kiln_semaphore_value(s), 1);
  KT_CODE(kiln_semaphore_acquire(s, -1), KILN_OK);
  KT_CODE(kiln_semaphore_release(s, 1), KILN_OK);
  KT_CODE(kiln_semaphore_release(s, 1), KILN_EINVAL);
  KT_EQ(kiln_semaphore_value(s), 1);
  kiln_semaphore_destroy(s);

  s = st_sem(3, true);
  KT_CODE(kiln_semaphore_acquire(s, -1), KILN_OK);
  KT_CODE(kiln_semaphore_acquire(s, -1), KILN_OK);
  KT_CODE(kiln_semaphore_release(s, 3), KILN_EINVAL); /* would reach 4: nothing changes */
  KT_EQ(kiln_semaphore_value(s), 1);
  KT_CODE(kiln_semaphore_release(s, 2), KILN_OK);
  KT_EQ(kiln_semaphore_value(s), 3);
  kiln_semaphore_destroy(s);

  for (int limit = 1; limit < 10; limit++) {
    reset_globals();
    g_s = st_sem(limit, true);
    st_bunch b;
    st_start(&b, limit, acquire_one, NULL);
    st_join(&b);
    KT_EQ(kiln_semaphore_value(g_s), 0);
    st_start(&b, limit, release_one, NULL);
    st_join(&b);
    KT_CODE(atomic_load(&g_rc), KILN_OK);
    KT_EQ(kiln_semaphore_value(g_s), limit);
    KT_CODE(kiln_semaphore_release(g_s, 1), KILN_EINVAL);
    KT_EQ(kiln_semaphore_value(g_s), limit);
    kiln_semaphore_destroy(g_s);
  }
}

static atomic_int g_order[8], g_woken;

static void *ordered_waiter(void *arg) {
  int me = (int)(intptr_t)arg;
  int rc = kiln_semaphore_acquire(g_s, -1);
  if (rc) atomic_store(&g_rc, rc);
  atomic_store(&g_order[atomic_fetch_add(&g_woken, 1)], me);
  return NULL;
}

/* The header's promise: waiters get the released units in arrival order, one unit each. */
TEST(semaphore_waiters_served_in_arrival_order) {
  enum { N = 6 };
  reset_globals();
  atomic_store(&g_woken, 0);
  for (int i = 0; i < N; i++) atomic_store(&g_order[i], -1);
  g_s = st_sem(0, false);
  pthread_t th[N];
  for (int i = 0; i < N; i++) {
    KT_EQ(pthread_create(&th[i], NULL, ordered_waiter, (void *)(intptr_t)i), 0);
    ST_UNTIL(kiln__semaphore_waiting(g_s) == i + 1); /* thread i is listed before i+1 starts */
  }
  for (int i = 0; i < N; i++) {
    KT_CODE(kiln_semaphore_release(g_s, 1), KILN_OK);
    ST_UNTIL(atomic_load(&g_order[i]) != -1);
    KT_EQ(atomic_load(&g_order[i]), i);
  }
  for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
  KT_CODE(atomic_load(&g_rc), KILN_OK);
  KT_EQ(atomic_load(&g_woken), N);
  KT_EQ(kiln_semaphore_value(g_s), 0);
  kiln_semaphore_destroy(g_s);
}

/* ---- stress: at most K inside, with blocking, try and timed acquires; and cross-thread
 * hand-offs where releases come from other threads than the acquires ---- */

enum { STRESS_K = 2, STRESS_THREADS = 6, STRESS_ITERS = 3000 };
static atomic_int g_inside, g_max_inside;
static atomic_long g_taken;

static void *stress_thread(void *arg) {
  int mode = (int)(intptr_t)arg % 3;
  for (int i = 0; i < STRESS_ITERS; i++) {
    int rc = kiln_semaphore_acquire(g_s, mode == 0 ? -1 : mode == 1 ? 0 : 0.0005);
    if (rc == KILN_ETIMEDOUT && mode != 0) continue;
    if (rc) {
      atomic_store(&g_rc, rc);
      return NULL;
    }
    int in = atomic_fetch_add(&g_inside, 1) + 1;
    int m = atomic_load(&g_max_inside);
    while (in > m && !atomic_compare_exchange_weak(&g_max_inside, &m, in)) {}
    atomic_fetch_sub(&g_inside, 1);
    atomic_fetch_add(&g_taken, 1);
    if (kiln_semaphore_release(g_s, 1) != 0) atomic_store(&g_rc, 98);
  }
  return NULL;
}

enum { HANDOFF_RELEASES = 3000 }; /* per producer: 1500 x release(1) + 1500 x release(2) */

static void *handoff_producer(void *arg) {
  (void)arg;
  for (int i = 0; i < HANDOFF_RELEASES; i++)
    if (kiln_semaphore_release(g_s, 1 + i % 2) != 0) atomic_store(&g_rc, 97);
  return NULL;
}

/* Takes units until told to stop; after the stop it takes at most one more. */
static void *handoff_consumer(void *arg) {
  bool timed = arg != NULL;
  for (;;) {
    int rc = kiln_semaphore_acquire(g_s, timed ? 0.0005 : -1);
    if (rc == KILN_ETIMEDOUT) {
      if (atomic_load(&g_phase)) return NULL;
      continue;
    }
    if (rc) {
      atomic_store(&g_rc, rc);
      return NULL;
    }
    atomic_fetch_add(&g_taken, 1);
    if (atomic_load(&g_phase)) return NULL;
  }
}

TEST(semaphore_stress) {
  reset_globals();
  atomic_store(&g_inside, 0);
  atomic_store(&g_max_inside, 0);
  atomic_store(&g_taken, 0);
  g_s = st_sem(STRESS_K, true);
  pthread_t th[STRESS_THREADS];
  for (int i = 0; i < STRESS_THREADS; i++)
    KT_EQ(pthread_create(&th[i], NULL, stress_thread, (void *)(intptr_t)i), 0);
  for (int i = 0; i < STRESS_THREADS; i++) pthread_join(th[i], NULL);
  KT_CODE(atomic_load(&g_rc), KILN_OK);
  KT_TRUE(atomic_load(&g_max_inside) <= STRESS_K);
  KT_TRUE(atomic_load(&g_taken) >= (long)(STRESS_THREADS / 3) * STRESS_ITERS);
  KT_EQ(kiln_semaphore_value(g_s), STRESS_K);
  KT_EQ(kiln__semaphore_waiting(g_s), 0);
  kiln_semaphore_destroy(g_s);

  /* 2 blocking and 2 timed consumers take while 2 producers release 9000 units (1 or 2 at a
   * time); then a stop and one unit per consumer, so that none stays blocked. Every unit is
   * accounted for. */
  reset_globals();
  atomic_store(&g_taken, 0);
  g_s = st_sem(0, false);
  pthread_t c[4], p[2];
  for (int i = 0; i < 4; i++)
    KT_EQ(pthread_create(&c[i], NULL, handoff_consumer, (void *)(intptr_t)(i % 2)), 0);
  for (int i = 0; i < 2; i++) KT_EQ(pthread_create(&p[i], NULL, handoff_producer, NULL), 0);
  for (int i = 0; i < 2; i++) pthread_join(p[i], NULL);
  atomic_store(&g_phase, 1);
  KT_CODE(kiln_semaphore_release(g_s, 4), KILN_OK);
  for (int i = 0; i < 4; i++) pthread_join(c[i], NULL);
  KT_CODE(atomic_load(&g_rc), KILN_OK);
  long released = 2L * (HANDOFF_RELEASES / 2) * 3 + 4;
  KT_EQ(atomic_load(&g_taken) + kiln_semaphore_value(g_s), released);
  KT_EQ(kiln__semaphore_waiting(g_s), 0);
  kiln_semaphore_destroy(g_s);
}
