/* test_lock.c: kiln_lock (LOCK-01..LOCK-08 of docs/CONFORMANCE.md), plus a stress test.
 *
 * Not tested: LOCK-06 (scoped acquisition releasing on normal and error exit): C has no
 * scope-bound acquisition; the caller pairs acquire and release itself. */
// kt: timeout 60
#include "sync_test_util.h"

static kiln_lock *g_lock;
static atomic_int g_started, g_done, g_inside, g_phase, g_rc;

static void reset_globals(void) {
  atomic_store(&g_started, 0);
  atomic_store(&g_done, 0);
  atomic_store(&g_inside, 0);
  atomic_store(&g_phase, 0);
  atomic_store(&g_rc, 0);
}

static void *try_acquire_thread(void *arg) {
  (void)arg;
  atomic_store(&g_rc, kiln_lock_acquire(g_lock, 0));
  return NULL;
}

/* LOCK-01: acquire returns 0; a try succeeds on a free lock and fails on a held one, whether the
 * caller or another thread holds it. */
TEST(lock_try_fails_while_held_by_anyone) {
  g_lock = st_lock();
  KT_FALSE(kiln_lock_locked(g_lock));
  KT_CODE(kiln_lock_acquire(g_lock, -1), KILN_OK);
  KT_TRUE(kiln_lock_locked(g_lock));
  KT_CODE(kiln_lock_acquire(g_lock, 0), KILN_ETIMEDOUT); /* held by the caller */
  st_run(try_acquire_thread, NULL);
  KT_CODE(atomic_load(&g_rc), KILN_ETIMEDOUT); /* held by another thread */
  KT_CODE(kiln_lock_release(g_lock), KILN_OK);
  KT_FALSE(kiln_lock_locked(g_lock));
  KT_CODE(kiln_lock_acquire(g_lock, 0), KILN_OK);
  KT_CODE(kiln_lock_release(g_lock), KILN_OK);
  st_run(try_acquire_thread, NULL);
  KT_CODE(atomic_load(&g_rc), KILN_OK); /* free: another thread gets it at once */
  KT_CODE(kiln_lock_release(g_lock), KILN_OK);
  kiln_lock_destroy(g_lock);
  kiln_lock_destroy(NULL);
}

static void *contender(void *arg) {
  (void)arg;
  atomic_fetch_add(&g_started, 1);
  int rc = kiln_lock_acquire(g_lock, -1);
  if (rc) atomic_store(&g_rc, rc);
  if (atomic_fetch_add(&g_inside, 1) != 0) atomic_store(&g_rc, 99); /* two inside at once */
  atomic_fetch_sub(&g_inside, 1);
  atomic_fetch_add(&g_done, 1);
  kiln_lock_release(g_lock);
  return NULL;
}

/* LOCK-02: when the holder releases, all 5 threads blocked in acquire get through, one at a
 * time. */
TEST(lock_release_lets_every_blocked_thread_through) {
  reset_globals();
  g_lock = st_lock();
  KT_CODE(kiln_lock_acquire(g_lock, -1), KILN_OK);
  st_bunch b;
  st_start(&b, 5, contender, NULL);
  ST_UNTIL(atomic_load(&g_started) == 5 && kiln__lock_contended(g_lock));
  KT_EQ(atomic_load(&g_done), 0);
  KT_CODE(kiln_lock_release(g_lock), KILN_OK);
  st_join(&b);
  KT_EQ(atomic_load(&g_done), 5);
  KT_CODE(atomic_load(&g_rc), KILN_OK);
  KT_FALSE(kiln_lock_locked(g_lock));
  kiln_lock_destroy(g_lock);
}

static void *reacquirer(void *arg) {
  (void)arg;
  kiln_lock_acquire(g_lock, -1);
  atomic_store(&g_phase, 1);
  kiln_lock_acquire(g_lock, -1); /* blocks until the main thread releases */
  atomic_store(&g_phase, 2);
  return NULL;
}

/* LOCK-03: not reentrant: the holder's second acquire blocks until someone releases. */
TEST(lock_is_not_reentrant) {
  reset_globals();
  g_lock = st_lock();
  st_bunch b;
  st_start(&b, 1, reacquirer, NULL);
  /* The second acquire has marked the lock contended: the thread is on its way to sleep. */
  ST_UNTIL(atomic_load(&g_phase) == 1 && kiln__lock_contended(g_lock));
  KT_EQ(atomic_load(&g_phase), 1);
  KT_CODE(kiln_lock_release(g_lock), KILN_OK);
  st_join(&b);
  KT_EQ(atomic_load(&g_phase), 2);
  KT_TRUE(kiln_lock_locked(g_lock)); /* the thread's second acquire holds it now */
  KT_CODE(kiln_lock_release(g_lock), KILN_OK);
  kiln_lock_destroy(g_lock);
}

static void *acquire_thread(void *arg) {
  (void)arg;
  atomic_store(&g_rc, kiln_lock_acquire(g_lock, -1));
  return NULL;
}

static void *release_thread(void *arg) {
  (void)arg;
  atomic_store(&g_rc, kiln_lock_release(g_lock));
  return NULL;
}

/* LOCK-04: a thread other than the acquirer may release, also while a third thread sleeps on
 * the lock (that one then gets it). */
TEST(lock_released_by_another_thread) {
  reset_globals();
  g_lock = st_lock();
  st_run(acquire_thread, NULL);
  KT_CODE(atomic_load(&g_rc), KILN_OK);
  KT_TRUE(kiln_lock_locked(g_lock));
  KT_CODE(kiln_lock_release(g_lock), KILN_OK);
  KT_FALSE(kiln_lock_locked(g_lock));

  KT_CODE(kiln_lock_acquire(g_lock, -1), KILN_OK);
  st_run(release_thread, NULL);
  KT_CODE(atomic_load(&g_rc), KILN_OK);
  KT_FALSE(kiln_lock_locked(g_lock));

  KT_CODE(kiln_lock_acquire(g_lock, -1), KILN_OK);
  atomic_store(&g_rc, 1);
  st_bunch sleeper;
  st_start(&sleeper, 1, acquire_thread, NULL);
  ST_UNTIL(kiln__lock_contended(g_lock));
  st_run(release_thread, NULL); /* neither the holder nor the sleeper releases it */
  st_join(&sleeper);
  KT_CODE(atomic_load(&g_rc), KILN_OK);
  KT_TRUE(kiln_lock_locked(g_lock));
  KT_CODE(kiln_lock_release(g_lock), KILN_OK);
  kiln_lock_destroy(g_lock);
}

/* LOCK-05: releasing an unlocked lock is KILN_ESTATE (RuntimeError) and changes nothing. */
TEST(lock_release_when_unlocked_is_estate) {
  kiln_lock *l = st_lock();
  KT_CODE(kiln_lock_release(l), KILN_ESTATE);
  KT_FALSE(kiln_lock_locked(l));
  KT_CODE(kiln_lock_acquire(l, -1), KILN_OK);
  KT_CODE(kiln_lock_release(l), KILN_OK);
  KT_CODE(kiln_lock_release(l), KILN_ESTATE);
  KT_FALSE(kiln_lock_locked(l));
  KT_CODE(kiln_lock_acquire(l, 0), KILN_OK);
  KT_CODE(kiln_lock_release(l), KILN_OK);
  kiln_lock_destroy(l);
}

static void *timed_acquire_thread(void *arg) {
  double *elapsed = arg;
  double t0 = kt_now();
  atomic_store(&g_rc, kiln_lock_acquire(g_lock, ST_T));
  *elapsed = kt_now() - t0;
  return NULL;
}

/* LOCK-07: acquire(t) on a held lock gives up after about t; on a free lock it succeeds at
 * once. After a timed-out acquire, once the holder releases, the lock is free and a try
 * succeeds. */
TEST(lock_timed_acquire_gives_up_after_timeout) {
  g_lock = st_lock();
  double t0 = kt_now();
  KT_CODE(kiln_lock_acquire(g_lock, ST_T), KILN_OK);
  KT_TRUE(kt_now() - t0 < ST_T);
  t0 = kt_now();
  KT_CODE(kiln_lock_acquire(g_lock, ST_T), KILN_ETIMEDOUT); /* held by the caller */
  KT_TIMED(kt_now() - t0, ST_T);
  double elapsed = 0;
  st_run(timed_acquire_thread, &elapsed); /* held by another thread */
  KT_CODE(atomic_load(&g_rc), KILN_ETIMEDOUT);
  KT_TIMED(elapsed, ST_T);
  KT_CODE(kiln_lock_release(g_lock), KILN_OK);
  KT_FALSE(kiln_lock_locked(g_lock));
  KT_CODE(kiln_lock_acquire(g_lock, 0), KILN_OK);
  KT_CODE(kiln_lock_release(g_lock), KILN_OK);
  KT_FALSE(kiln_lock_locked(g_lock));
  kiln_lock_destroy(g_lock);
}

/* LOCK-08, translated: a NaN timeout is KILN_EINVAL and takes nothing; any negative timeout
 * waits forever; a timeout far above any real wait (Python's TIMEOUT_MAX has no C counterpart) is
 * accepted. Not applicable: "a timeout with blocking=False" (C has no blocking flag; timeout 0 is
 * the try), and rejecting negatives other than -1 (the header makes every negative "forever"). */
TEST(lock_timeout_nan_einval_negative_forever) {
  kiln_lock *l = st_lock();
  KT_CODE(kiln_lock_acquire(l, NAN), KILN_EINVAL);
  KT_FALSE(kiln_lock_locked(l));
  KT_CODE(kiln_lock_acquire(l, -5.0), KILN_OK);
  KT_CODE(kiln_lock_acquire(l, NAN), KILN_EINVAL);
  KT_CODE(kiln_lock_release(l), KILN_OK);
  KT_CODE(kiln_lock_acquire(l, 1e300), KILN_OK);
  KT_CODE(kiln_lock_release(l), KILN_OK);
  KT_CODE(kiln_lock_acquire(l, INFINITY), KILN_OK);
  KT_CODE(kiln_lock_release(l), KILN_OK);
  kiln_lock_destroy(l);
}

/* ---- stress: mutual exclusion and no lost wake-up, with blocking, try and timed acquires ---- */

enum { STRESS_THREADS = 6, STRESS_ITERS = 4000 };
static long g_counter; /* guarded by g_lock: a plain int, so TSan checks the lock's ordering */
static atomic_long g_successes;

static void *stress_thread(void *arg) {
  int mode = (int)(intptr_t)arg % 3;
  for (int i = 0; i < STRESS_ITERS; i++) {
    int rc;
    if (mode == 0) rc = kiln_lock_acquire(g_lock, -1);
    else if (mode == 1) rc = kiln_lock_acquire(g_lock, 0);
    else rc = kiln_lock_acquire(g_lock, 0.0005);
    if (rc == KILN_ETIMEDOUT && mode != 0) continue;
    if (rc != 0) {
      atomic_store(&g_rc, rc);
      return NULL;
    }
    if (atomic_fetch_add(&g_inside, 1) != 0) atomic_store(&g_rc, 99);
    g_counter++;
    atomic_fetch_sub(&g_inside, 1);
    atomic_fetch_add(&g_successes, 1);
    if (kiln_lock_release(g_lock) != 0) atomic_store(&g_rc, 98);
  }
  return NULL;
}

TEST(lock_stress) {
  reset_globals();
  g_lock = st_lock();
  g_counter = 0;
  atomic_store(&g_successes, 0);
  pthread_t th[STRESS_THREADS];
  for (int i = 0; i < STRESS_THREADS; i++)
    KT_EQ(pthread_create(&th[i], NULL, stress_thread, (void *)(intptr_t)i), 0);
  for (int i = 0; i < STRESS_THREADS; i++) pthread_join(th[i], NULL);
  KT_CODE(atomic_load(&g_rc), KILN_OK);
  KT_EQ(g_counter, atomic_load(&g_successes));
  KT_TRUE(g_counter >= (STRESS_THREADS / 3) * STRESS_ITERS); /* the blocking ones never fail */
  KT_FALSE(kiln_lock_locked(g_lock));
  kiln_lock_destroy(g_lock);
}
