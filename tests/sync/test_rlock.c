/* test_rlock.c: kiln_rlock (RLOCK-01..RLOCK-07 of docs/CONFORMANCE.md, and the LOCK rules that
 * apply to an rlock too: LOCK-01, -02, -07, -08, as the rlock_* tests that name them).
 *
 * Not tested: LOCK-06 for RLock (scoped acquisition): C has no scope-bound acquisition. */
// kt: timeout 60
#include "sync_test_util.h"

static kiln_rlock *g_r;
static atomic_int g_rc, g_flag, g_started, g_done, g_inside;
static kiln_event *g_go;

static void *try_acquire_thread(void *arg) {
  (void)arg;
  int rc = kiln_rlock_acquire(g_r, 0);
  atomic_store(&g_rc, rc);
  if (rc == 0) kiln_rlock_release(g_r);
  return NULL;
}

static void *release_thread(void *arg) {
  (void)arg;
  atomic_store(&g_rc, kiln_rlock_release(g_r));
  return NULL;
}

static void *observer_thread(void *arg) {
  (void)arg;
  atomic_store(&g_flag, (kiln_rlock_is_owned(g_r) ? 1 : 0) | (kiln_rlock_locked(g_r) ? 2 : 0));
  return NULL;
}

/* Holds g_r with two levels until g_go is set, then releases both. */
static void *holder_thread(void *arg) {
  (void)arg;
  kiln_rlock_acquire(g_r, -1);
  kiln_rlock_acquire(g_r, -1);
  atomic_store(&g_started, 1);
  kiln_event_wait(g_go, -1);
  atomic_store(&g_rc, kiln_rlock_release(g_r));
  if (atomic_load(&g_rc) == 0) atomic_store(&g_rc, kiln_rlock_release(g_r));
  return NULL;
}

static void start_holder(st_bunch *b) {
  atomic_store(&g_started, 0);
  atomic_store(&g_rc, 0);
  g_go = st_event();
  st_start(b, 1, holder_thread, NULL);
  ST_UNTIL(atomic_load(&g_started) == 1);
}

static void stop_holder(st_bunch *b) {
  kiln_event_set(g_go);
  st_join(b);
  KT_CODE(atomic_load(&g_rc), KILN_OK);
  kiln_event_destroy(g_go);
}

/* RLOCK-01: the owner may acquire again (a try too) and must release as many times. */
TEST(rlock_owner_reacquires_and_releases_as_often) {
  g_r = st_rlock();
  KT_CODE(kiln_rlock_acquire(g_r, -1), KILN_OK);
  KT_CODE(kiln_rlock_acquire(g_r, -1), KILN_OK);
  KT_CODE(kiln_rlock_acquire(g_r, 0), KILN_OK);
  KT_CODE(kiln_rlock_release(g_r), KILN_OK);
  KT_CODE(kiln_rlock_release(g_r), KILN_OK);
  KT_TRUE(kiln_rlock_locked(g_r));
  st_run(try_acquire_thread, NULL);
  KT_CODE(atomic_load(&g_rc), KILN_ETIMEDOUT); /* one level still held */
  KT_CODE(kiln_rlock_release(g_r), KILN_OK);
  KT_FALSE(kiln_rlock_locked(g_r));
  st_run(try_acquire_thread, NULL);
  KT_CODE(atomic_load(&g_rc), KILN_OK);
  kiln_rlock_destroy(g_r);
  kiln_rlock_destroy(NULL);
}

/* RLOCK-02: release when not held (never acquired, or one release too many) is KILN_ESTATE. */
TEST(rlock_release_when_not_held_is_estate) {
  g_r = st_rlock();
  KT_CODE(kiln_rlock_release(g_r), KILN_ESTATE);
  KT_CODE(kiln_rlock_acquire(g_r, -1), KILN_OK);
  KT_CODE(kiln_rlock_acquire(g_r, -1), KILN_OK);
  KT_CODE(kiln_rlock_release(g_r), KILN_OK);
  KT_CODE(kiln_rlock_release(g_r), KILN_OK);
  KT_CODE(kiln_rlock_release(g_r), KILN_ESTATE);
  KT_FALSE(kiln_rlock_locked(g_r));
  kiln_rlock_destroy(g_r);
}

/* RLOCK-03: a release from a thread that does not own it, while another holds it, is
 * KILN_ESTATE and leaves it held. */
TEST(rlock_release_by_non_owner_is_estate) {
  g_r = st_rlock();
  st_bunch b;
  start_holder(&b);
  KT_CODE(kiln_rlock_release(g_r), KILN_ESTATE);
  KT_TRUE(kiln_rlock_locked(g_r));
  stop_holder(&b);
  KT_FALSE(kiln_rlock_locked(g_r));
  /* and the other way round: held here, released there */
  KT_CODE(kiln_rlock_acquire(g_r, -1), KILN_OK);
  st_run(release_thread, NULL);
  KT_CODE(atomic_load(&g_rc), KILN_ESTATE);
  KT_TRUE(kiln_rlock_is_owned(g_r));
  KT_CODE(kiln_rlock_release(g_r), KILN_OK);
  kiln_rlock_destroy(g_r);
}

/* RLOCK-04: is_owned is true only in the owner, also while held, and false after the last
 * release. */
TEST(rlock_is_owned_only_in_the_owner) {
  g_r = st_rlock();
  KT_FALSE(kiln_rlock_is_owned(g_r));
  KT_CODE(kiln_rlock_acquire(g_r, -1), KILN_OK);
  KT_TRUE(kiln_rlock_is_owned(g_r));
  st_run(observer_thread, NULL);
  KT_EQ(atomic_load(&g_flag), 2); /* not owned there, but locked */
  KT_CODE(kiln_rlock_acquire(g_r, -1), KILN_OK);
  KT_CODE(kiln_rlock_release(g_r), KILN_OK);
  KT_TRUE(kiln_rlock_is_owned(g_r));
  KT_CODE(kiln_rlock_release(g_r), KILN_OK);
  KT_FALSE(kiln_rlock_is_owned(g_r));
  st_bunch b;
  start_holder(&b);
  KT_FALSE(kiln_rlock_is_owned(g_r));
  stop_holder(&b);
  KT_FALSE(kiln_rlock_is_owned(g_r));
  kiln_rlock_destroy(g_r);
}

/* RLOCK-05: locked is true while any thread holds it, asked from any thread, until the last
 * matching release. */
TEST(rlock_locked_seen_from_any_thread) {
  g_r = st_rlock();
  KT_FALSE(kiln_rlock_locked(g_r));
  KT_CODE(kiln_rlock_acquire(g_r, -1), KILN_OK);
  KT_CODE(kiln_rlock_acquire(g_r, -1), KILN_OK);
  KT_TRUE(kiln_rlock_locked(g_r));
  st_run(observer_thread, NULL);
  KT_EQ(atomic_load(&g_flag), 2);
  KT_CODE(kiln_rlock_release(g_r), KILN_OK);
  st_run(observer_thread, NULL);
  KT_EQ(atomic_load(&g_flag), 2);
  KT_CODE(kiln_rlock_release(g_r), KILN_OK);
  KT_FALSE(kiln_rlock_locked(g_r));
  st_run(observer_thread, NULL);
  KT_EQ(atomic_load(&g_flag), 0);
  st_bunch b;
  start_holder(&b);
  KT_TRUE(kiln_rlock_locked(g_r)); /* held by another thread */
  stop_holder(&b);
  KT_FALSE(kiln_rlock_locked(g_r));
  kiln_rlock_destroy(g_r);
}

/* RLOCK-07: "release all levels and save" (what condition wait does) on an rlock the caller
 * does not own is KILN_ESTATE: directly, and through kiln_condition_wait. */
TEST(rlock_release_save_by_non_owner_is_estate) {
  g_r = st_rlock();
  kiln_condition *c = NULL;
  KT_CODE(kiln_condition_create_rlock(g_r, &c), KILN_OK);
  unsigned long levels = 7;
  KT_CODE(kiln__rlock_release_save(g_r, &levels), KILN_ESTATE);
  KT_EQ(levels, 0);
  KT_CODE(kiln_condition_wait(c, 0), KILN_ESTATE);
  st_bunch b;
  start_holder(&b);
  KT_CODE(kiln__rlock_release_save(g_r, &levels), KILN_ESTATE);
  KT_CODE(kiln_condition_wait(c, 0), KILN_ESTATE);
  KT_TRUE(kiln_rlock_locked(g_r));
  stop_holder(&b);
  /* owned: saves the levels and restores them */
  KT_CODE(kiln_rlock_acquire(g_r, -1), KILN_OK);
  KT_CODE(kiln_rlock_acquire(g_r, -1), KILN_OK);
  KT_CODE(kiln__rlock_release_save(g_r, &levels), KILN_OK);
  KT_EQ(levels, 2);
  KT_FALSE(kiln_rlock_locked(g_r));
  kiln__rlock_acquire_restore(g_r, levels);
  KT_CODE(kiln_rlock_release(g_r), KILN_OK);
  KT_CODE(kiln_rlock_release(g_r), KILN_OK);
  KT_CODE(kiln_rlock_release(g_r), KILN_ESTATE);
  kiln_condition_destroy(c);
  kiln_rlock_destroy(g_r);
}

/* LOCK-01 on an rlock: a try from another thread fails while it is held, succeeds when free. */
TEST(rlock_try_from_other_thread_fails_while_held) {
  g_r = st_rlock();
  KT_CODE(kiln_rlock_acquire(g_r, -1), KILN_OK);
  st_run(try_acquire_thread, NULL);
  KT_CODE(atomic_load(&g_rc), KILN_ETIMEDOUT);
  KT_CODE(kiln_rlock_release(g_r), KILN_OK);
  st_run(try_acquire_thread, NULL);
  KT_CODE(atomic_load(&g_rc), KILN_OK);
  kiln_rlock_destroy(g_r);
}

static void *contender(void *arg) {
  (void)arg;
  atomic_fetch_add(&g_started, 1);
  int rc = kiln_rlock_acquire(g_r, -1);
  if (rc == 0) rc = kiln_rlock_acquire(g_r, -1); /* and once more, reentrantly */
  if (rc) atomic_store(&g_rc, rc);
  if (atomic_fetch_add(&g_inside, 1) != 0) atomic_store(&g_rc, 99);
  atomic_fetch_sub(&g_inside, 1);
  atomic_fetch_add(&g_done, 1);
  kiln_rlock_release(g_r);
  kiln_rlock_release(g_r);
  return NULL;
}

/* LOCK-02 on an rlock: 5 blocked threads all get through once the owner releases. */
TEST(rlock_release_lets_every_blocked_thread_through) {
  g_r = st_rlock();
  atomic_store(&g_started, 0);
  atomic_store(&g_done, 0);
  atomic_store(&g_rc, 0);
  KT_CODE(kiln_rlock_acquire(g_r, -1), KILN_OK);
  st_bunch b;
  st_start(&b, 5, contender, NULL);
  ST_UNTIL(atomic_load(&g_started) == 5);
  KT_EQ(atomic_load(&g_done), 0);
  KT_CODE(kiln_rlock_release(g_r), KILN_OK);
  st_join(&b);
  KT_EQ(atomic_load(&g_done), 5);
  KT_CODE(atomic_load(&g_rc), KILN_OK);
  KT_FALSE(kiln_rlock_locked(g_r));
  kiln_rlock_destroy(g_r);
}

static void *timed_thread(void *arg) {
  double *elapsed = arg;
  double t0 = kt_now();
  atomic_store(&g_rc, kiln_rlock_acquire(g_r, ST_T));
  *elapsed = kt_now() - t0;
  return NULL;
}

/* LOCK-07 on an rlock: a timed acquire by a non-owner gives up after about t; the owner's is
 * immediate; after the timeout the lock is free once the owner releases. */
TEST(rlock_timed_acquire_gives_up_after_timeout) {
  g_r = st_rlock();
  KT_CODE(kiln_rlock_acquire(g_r, ST_T), KILN_OK);
  double t0 = kt_now();
  KT_CODE(kiln_rlock_acquire(g_r, ST_T), KILN_OK);
  KT_TRUE(kt_now() - t0 < ST_T);
  double elapsed = 0;
  st_run(timed_thread, &elapsed);
  KT_CODE(atomic_load(&g_rc), KILN_ETIMEDOUT);
  KT_TIMED(elapsed, ST_T);
  KT_CODE(kiln_rlock_release(g_r), KILN_OK);
  KT_CODE(kiln_rlock_release(g_r), KILN_OK);
  KT_FALSE(kiln_rlock_locked(g_r));
  st_run(try_acquire_thread, NULL);
  KT_CODE(atomic_load(&g_rc), KILN_OK);
  kiln_rlock_destroy(g_r);
}

/* LOCK-08 on an rlock: NaN is KILN_EINVAL and adds no level, for the owner too; huge and
 * negative timeouts are accepted. (blocking=False with a timeout has no C counterpart.) */
TEST(rlock_timeout_nan_einval_negative_forever) {
  g_r = st_rlock();
  KT_CODE(kiln_rlock_acquire(g_r, NAN), KILN_EINVAL);
  KT_FALSE(kiln_rlock_locked(g_r));
  KT_CODE(kiln_rlock_acquire(g_r, 1e300), KILN_OK);
  KT_CODE(kiln_rlock_acquire(g_r, NAN), KILN_EINVAL);
  KT_CODE(kiln_rlock_acquire(g_r, -3.0), KILN_OK);
  KT_CODE(kiln_rlock_release(g_r), KILN_OK);
  KT_CODE(kiln_rlock_release(g_r), KILN_OK);
  KT_CODE(kiln_rlock_release(g_r), KILN_ESTATE);
  kiln_rlock_destroy(g_r);
}

static void *count_thread(void *arg) {
  (void)arg;
  atomic_store(&g_flag, (int)kiln_rlock_recursion_count(g_r));
  return NULL;
}

/* RLOCK-06: the recursion count is the caller's own level: 0 before, 1, 2 after a re-acquire,
 * back to 0 after the last release; 0 in a thread that does not own it, while another holds it. */
TEST(rlock_recursion_count_is_the_callers_level) {
  g_r = st_rlock();
  KT_EQ(kiln_rlock_recursion_count(g_r), 0);
  KT_CODE(kiln_rlock_acquire(g_r, -1), KILN_OK);
  KT_EQ(kiln_rlock_recursion_count(g_r), 1);
  KT_CODE(kiln_rlock_acquire(g_r, 0), KILN_OK);
  KT_EQ(kiln_rlock_recursion_count(g_r), 2);
  atomic_store(&g_flag, -1);
  st_run(count_thread, NULL);
  KT_EQ(atomic_load(&g_flag), 0); /* held here, not there */
  KT_CODE(kiln_rlock_release(g_r), KILN_OK);
  KT_EQ(kiln_rlock_recursion_count(g_r), 1);
  KT_CODE(kiln_rlock_release(g_r), KILN_OK);
  KT_EQ(kiln_rlock_recursion_count(g_r), 0);
  KT_CODE(kiln_rlock_release(g_r), KILN_ESTATE);
  KT_EQ(kiln_rlock_recursion_count(g_r), 0);
  st_bunch b;
  start_holder(&b); /* two levels in the holder */
  KT_EQ(kiln_rlock_recursion_count(g_r), 0);
  stop_holder(&b);
  KT_EQ(kiln_rlock_recursion_count(g_r), 0);
  kiln_rlock_destroy(g_r);
}

/* RLOCK-06 through a condition over the rlock: a wait gives up every level and takes the same
 * number back, so the count is the same after the wait as before it. */
TEST(rlock_recursion_count_survives_a_condition_wait) {
  g_r = st_rlock();
  kiln_condition *c = NULL;
  KT_CODE(kiln_condition_create_rlock(g_r, &c), KILN_OK);
  KT_CODE(kiln_condition_acquire(c, -1), KILN_OK);
  KT_CODE(kiln_condition_acquire(c, -1), KILN_OK);
  KT_CODE(kiln_rlock_acquire(g_r, -1), KILN_OK);
  KT_EQ(kiln_rlock_recursion_count(g_r), 3);
  KT_CODE(kiln_condition_wait(c, 0.01), KILN_ETIMEDOUT);
  KT_EQ(kiln_rlock_recursion_count(g_r), 3);
  for (int i = 0; i < 3; i++) KT_CODE(kiln_condition_release(c), KILN_OK);
  KT_EQ(kiln_rlock_recursion_count(g_r), 0);
  KT_FALSE(kiln_rlock_locked(g_r));
  kiln_condition_destroy(c);
  kiln_rlock_destroy(g_r);
}
