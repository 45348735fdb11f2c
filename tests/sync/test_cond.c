/* test_cond.c: kiln_condition (COND-01..COND-09 of docs/CONFORMANCE.md), plus producer/consumer
 * stress tests.
 *
 * Not tested: the "processes" part of COND-05 (waiters that mix threads and processes) waits for
 * the process pool. There is no rule COND-06. */
// kt: timeout 60
#include "sync_test_util.h"

static kiln_condition *g_c;
static kiln_rlock *g_r;
static atomic_int g_rc, g_ready, g_phase, g_flag, g_done, g_pred_calls, g_not_owned_in_pred;
static atomic_int g_res1[4], g_res2[4], g_res1_total, g_res2_total;
static int g_state; /* guarded by g_c's lock */
static double g_elapsed;

static void reset_globals(void) {
  atomic_store(&g_rc, 0);
  atomic_store(&g_ready, 0);
  atomic_store(&g_phase, 0);
  atomic_store(&g_flag, 0);
  atomic_store(&g_done, 0);
  atomic_store(&g_pred_calls, 0);
  atomic_store(&g_not_owned_in_pred, 0);
  atomic_store(&g_res1_total, 0);
  atomic_store(&g_res2_total, 0);
  for (int i = 0; i < 4; i++) atomic_store(&g_res1[i], 0), atomic_store(&g_res2[i], 0);
  g_state = 0;
}

static void note_rc(int rc) {
  if (rc) atomic_store(&g_rc, rc);
}

static void *try_acquire_thread(void *arg) {
  (void)arg;
  int rc = kiln_condition_acquire(g_c, 0);
  atomic_store(&g_rc, rc);
  if (rc == 0) kiln_condition_release(g_c);
  return NULL;
}

static void *release_thread(void *arg) {
  (void)arg;
  atomic_store(&g_rc, kiln_condition_release(g_c));
  return NULL;
}

/* COND-01: the default lock is reentrant and follows the RLOCK ownership rules. */
TEST(condition_default_lock_is_reentrant) {
  g_c = st_cond();
  KT_CODE(kiln_condition_acquire(g_c, -1), KILN_OK);
  KT_CODE(kiln_condition_acquire(g_c, 0), KILN_OK);
  st_run(try_acquire_thread, NULL);
  KT_CODE(atomic_load(&g_rc), KILN_ETIMEDOUT);
  st_run(release_thread, NULL);
  KT_CODE(atomic_load(&g_rc), KILN_ESTATE); /* not the owner */
  KT_CODE(kiln_condition_release(g_c), KILN_OK);
  KT_CODE(kiln_condition_release(g_c), KILN_OK);
  KT_CODE(kiln_condition_release(g_c), KILN_ESTATE); /* one too many */
  st_run(try_acquire_thread, NULL);
  KT_CODE(atomic_load(&g_rc), KILN_OK);
  kiln_condition_destroy(g_c);
  kiln_condition_destroy(NULL);
}

/* COND-02: a lock passed in is the condition's lock, both ways; the same for an rlock. */
TEST(condition_uses_the_lock_passed_in) {
  kiln_lock *l = st_lock();
  kiln_condition *c = (kiln_condition *)(uintptr_t)1;
  KT_CODE(kiln_condition_create_lock(NULL, &c), KILN_EINVAL);
  KT_TRUE(c == NULL);
  KT_CODE(kiln_condition_create_lock(l, &c), KILN_OK);
  KT_CODE(kiln_condition_acquire(c, -1), KILN_OK);
  KT_CODE(kiln_lock_acquire(l, 0), KILN_ETIMEDOUT);
  KT_CODE(kiln_condition_acquire(c, 0), KILN_ETIMEDOUT); /* a plain lock is not reentrant */
  KT_CODE(kiln_condition_release(c), KILN_OK);
  KT_CODE(kiln_lock_acquire(l, 0), KILN_OK);
  KT_CODE(kiln_condition_acquire(c, 0), KILN_ETIMEDOUT);
  KT_CODE(kiln_lock_release(l), KILN_OK);
  KT_CODE(kiln_condition_release(c), KILN_ESTATE);
  kiln_condition_destroy(c);
  kiln_lock_destroy(l);

  kiln_rlock *r = st_rlock();
  c = (kiln_condition *)(uintptr_t)1;
  KT_CODE(kiln_condition_create_rlock(NULL, &c), KILN_EINVAL);
  KT_TRUE(c == NULL);
  KT_CODE(kiln_condition_create_rlock(r, &c), KILN_OK);
  KT_CODE(kiln_condition_acquire(c, -1), KILN_OK);
  KT_TRUE(kiln_rlock_is_owned(r));
  KT_CODE(kiln_rlock_acquire(r, 0), KILN_OK); /* the same rlock: one more level */
  KT_CODE(kiln_condition_release(c), KILN_OK);
  KT_TRUE(kiln_rlock_is_owned(r));
  KT_CODE(kiln_rlock_release(r), KILN_OK);
  KT_FALSE(kiln_rlock_locked(r));
  kiln_condition_destroy(c);
  kiln_rlock_destroy(r);
}

static bool pred_true(void *arg) {
  (void)arg;
  return true;
}

static void *hold_until_flag(void *arg) {
  (void)arg;
  kiln_condition_acquire(g_c, -1);
  atomic_store(&g_ready, 1);
  ST_UNTIL(atomic_load(&g_flag) == 1);
  kiln_condition_release(g_c);
  return NULL;
}

/* COND-03: wait, wait_for, notify and notify_all without holding the lock are KILN_ESTATE (over
 * a plain lock: when it is not locked); nothing is done. */
TEST(condition_use_without_the_lock_is_estate) {
  reset_globals();
  g_c = st_cond();
  KT_CODE(kiln_condition_wait(g_c, -1), KILN_ESTATE);
  KT_CODE(kiln_condition_wait(g_c, 0), KILN_ESTATE);
  KT_CODE(kiln_condition_wait_for(g_c, pred_true, NULL, -1), KILN_ESTATE);
  KT_CODE(kiln_condition_notify(g_c, 1), KILN_ESTATE);
  KT_CODE(kiln_condition_notify_all(g_c), KILN_ESTATE);
  /* held by another thread: still not ours */
  st_bunch b;
  st_start(&b, 1, hold_until_flag, NULL);
  ST_UNTIL(atomic_load(&g_ready) == 1);
  KT_CODE(kiln_condition_wait(g_c, -1), KILN_ESTATE);
  KT_CODE(kiln_condition_notify(g_c, 1), KILN_ESTATE);
  KT_CODE(kiln_condition_notify_all(g_c), KILN_ESTATE);
  atomic_store(&g_flag, 1);
  st_join(&b);
  /* held: argument errors come after the ownership check */
  KT_CODE(kiln_condition_acquire(g_c, -1), KILN_OK);
  KT_CODE(kiln_condition_notify(g_c, -1), KILN_EINVAL);
  KT_CODE(kiln_condition_wait(g_c, NAN), KILN_EINVAL);
  KT_CODE(kiln_condition_notify(g_c, 0), KILN_OK);
  KT_CODE(kiln_condition_release(g_c), KILN_OK);
  KT_EQ(kiln__condition_waiting(g_c), 0);
  kiln_condition_destroy(g_c);

  kiln_lock *l = st_lock();
  KT_CODE(kiln_condition_create_lock(l, &g_c), KILN_OK);
  KT_CODE(kiln_condition_wait(g_c, -1), KILN_ESTATE);
  KT_CODE(kiln_condition_notify(g_c, 1), KILN_ESTATE);
  KT_CODE(kiln_condition_notify_all(g_c), KILN_ESTATE);
  KT_FALSE(kiln_lock_locked(l));
  /* over a plain lock "held" means locked, by anyone (CPython's _is_owned on a Lock) */
  atomic_store(&g_ready, 0);
  atomic_store(&g_flag, 0);
  st_start(&b, 1, hold_until_flag, NULL);
  ST_UNTIL(atomic_load(&g_ready) == 1);
  KT_CODE(kiln_condition_notify(g_c, 1), KILN_OK);
  atomic_store(&g_flag, 1);
  st_join(&b);
  kiln_condition_destroy(g_c);
  kiln_lock_destroy(l);
}

static void *notified_waiter(void *arg) {
  (void)arg;
  kiln_condition_acquire(g_c, -1);
  atomic_store(&g_ready, 1);
  int rc = kiln_condition_wait(g_c, -1);
  atomic_store(&g_flag, kiln_rlock_is_owned(g_r));
  kiln_condition_release(g_c);
  atomic_store(&g_rc, rc);
  return NULL;
}

/* COND-04: wait returns 0 when a notify picks it, KILN_ETIMEDOUT after about the timeout
 * (wait(0): at once), and holds the lock again on return either way. A notify with no waiter is
 * not stored. */
TEST(condition_wait_notified_or_times_out) {
  reset_globals();
  g_r = st_rlock();
  KT_CODE(kiln_condition_create_rlock(g_r, &g_c), KILN_OK);
  atomic_store(&g_rc, 1);
  st_bunch b;
  st_start(&b, 1, notified_waiter, NULL);
  ST_UNTIL(atomic_load(&g_ready) == 1);
  KT_CODE(kiln_condition_acquire(g_c, -1), KILN_OK); /* the waiter released it in wait */
  KT_EQ(kiln__condition_waiting(g_c), 1);
  KT_CODE(kiln_condition_notify(g_c, 1), KILN_OK);
  KT_CODE(kiln_condition_release(g_c), KILN_OK);
  st_join(&b);
  KT_CODE(atomic_load(&g_rc), KILN_OK);
  KT_EQ(atomic_load(&g_flag), 1);

  KT_CODE(kiln_condition_acquire(g_c, -1), KILN_OK);
  double t0 = kt_now();
  KT_CODE(kiln_condition_wait(g_c, 0), KILN_ETIMEDOUT);
  KT_TRUE(kt_now() - t0 < ST_T);
  KT_TRUE(kiln_rlock_is_owned(g_r));
  KT_CODE(kiln_condition_notify(g_c, 1), KILN_OK); /* nobody waits: not stored */
  KT_CODE(kiln_condition_notify_all(g_c), KILN_OK);
  t0 = kt_now();
  KT_CODE(kiln_condition_wait(g_c, ST_T), KILN_ETIMEDOUT);
  KT_TIMED(kt_now() - t0, ST_T);
  KT_TRUE(kiln_rlock_is_owned(g_r));
  KT_EQ(kiln__condition_waiting(g_c), 0);
  KT_CODE(kiln_condition_release(g_c), KILN_OK);
  KT_FALSE(kiln_rlock_locked(g_r));
  kiln_condition_destroy(g_c);
  kiln_rlock_destroy(g_r);

  /* over a plain lock too */
  kiln_lock *l = st_lock();
  KT_CODE(kiln_condition_create_lock(l, &g_c), KILN_OK);
  KT_CODE(kiln_condition_acquire(g_c, -1), KILN_OK);
  t0 = kt_now();
  KT_CODE(kiln_condition_wait(g_c, ST_T), KILN_ETIMEDOUT);
  KT_TIMED(kt_now() - t0, ST_T);
  KT_TRUE(kiln_lock_locked(l));
  KT_CODE(kiln_condition_release(g_c), KILN_OK);
  kiln_condition_destroy(g_c);
  kiln_lock_destroy(l);
}

/* Two waits per thread (CPython's _check_notify): each records, after it returns, the phase the
 * notifier had set when it released the lock. */
static void *notify_worker(void *arg) {
  (void)arg;
  for (int round = 0; round < 2; round++) {
    kiln_condition_acquire(g_c, -1);
    atomic_fetch_add(&g_ready, 1);
    note_rc(kiln_condition_wait(g_c, -1));
    int phase = atomic_load(&g_phase);
    kiln_condition_release(g_c);
    atomic_fetch_add(round == 0 ? &g_res1[phase] : &g_res2[phase], 1);
    atomic_fetch_add(round == 0 ? &g_res1_total : &g_res2_total, 1);
  }
  return NULL;
}

/* Taking the lock after `ready` threads announced themselves (under the lock, just before wait)
 * proves they are all listed: each released the lock only inside wait. */
static void lock_when_ready(int ready) {
  ST_UNTIL(atomic_load(&g_ready) == ready);
  KT_CODE(kiln_condition_acquire(g_c, -1), KILN_OK);
}

static void check_notify(bool use_all) {
  enum { N = 5 };
  reset_globals();
  st_bunch b;
  st_start(&b, N, notify_worker, NULL);
  lock_when_ready(N);
  KT_EQ(kiln__condition_waiting(g_c), N);
  KT_CODE(kiln_condition_notify(g_c, 0), KILN_OK);
  KT_EQ(kiln__condition_waiting(g_c), N);
  KT_CODE(kiln_condition_notify(g_c, 3), KILN_OK);
  KT_EQ(kiln__condition_waiting(g_c), N - 3);
  for (int i = 0; i < 50; i++) sched_yield();
  KT_EQ(atomic_load(&g_res1_total), 0); /* woken, but they need the lock we hold */
  atomic_store(&g_phase, 1);
  KT_CODE(kiln_condition_release(g_c), KILN_OK);

  ST_UNTIL(atomic_load(&g_res1_total) == 3);
  lock_when_ready(N + 3); /* the 3 are back in their second wait */
  KT_EQ(kiln__condition_waiting(g_c), N);
  KT_EQ(atomic_load(&g_res1[1]), 3);
  KT_EQ(atomic_load(&g_res2_total), 0);
  KT_CODE(kiln_condition_notify(g_c, 2), KILN_OK); /* the 2 oldest: first-round waiters */
  KT_EQ(kiln__condition_waiting(g_c), N - 2);
  atomic_store(&g_phase, 2);
  KT_CODE(kiln_condition_release(g_c), KILN_OK);

  ST_UNTIL(atomic_load(&g_res1_total) == N);
  lock_when_ready(2 * N);
  KT_EQ(kiln__condition_waiting(g_c), N);
  KT_EQ(atomic_load(&g_res1[2]), 2);
  KT_EQ(atomic_load(&g_res2_total), 0);
  if (use_all) KT_CODE(kiln_condition_notify_all(g_c), KILN_OK);
  else KT_CODE(kiln_condition_notify(g_c, N + 2), KILN_OK); /* min(7, 5) */
  KT_EQ(kiln__condition_waiting(g_c), 0);
  atomic_store(&g_phase, 3);
  KT_CODE(kiln_condition_release(g_c), KILN_OK);
  st_join(&b);
  KT_EQ(atomic_load(&g_res2[3]), N);
  KT_EQ(atomic_load(&g_res1_total) + atomic_load(&g_res2_total), 2 * N);
  KT_CODE(atomic_load(&g_rc), KILN_OK);
}

/* COND-05: notify(n) wakes exactly min(n, waiting) threads, oldest first; notify_all wakes all;
 * the woken continue only after the notifier releases the lock; repeated cycles stay correct.
 * Over the default rlock, a plain lock and a caller's rlock. */
TEST(condition_notify_n_wakes_min_n_waiters) {
  g_c = st_cond();
  check_notify(false);
  check_notify(true);
  kiln_condition_destroy(g_c);

  kiln_lock *l = st_lock();
  KT_CODE(kiln_condition_create_lock(l, &g_c), KILN_OK);
  check_notify(false);
  check_notify(true);
  KT_FALSE(kiln_lock_locked(l));
  kiln_condition_destroy(g_c);
  kiln_lock_destroy(l);

  kiln_rlock *r = st_rlock();
  KT_CODE(kiln_condition_create_rlock(r, &g_c), KILN_OK);
  check_notify(true);
  KT_FALSE(kiln_rlock_locked(r));
  kiln_condition_destroy(g_c);
  kiln_rlock_destroy(r);
}

/* Holds 3 levels, waits (flag: 0 forever, 1 with the timeout), then checks the levels. */
static void *leveled_waiter(void *arg) {
  bool timed = arg != NULL;
  for (int i = 0; i < 3; i++) kiln_condition_acquire(g_c, -1);
  atomic_store(&g_ready, 1);
  double t0 = kt_now();
  int rc = kiln_condition_wait(g_c, timed ? ST_T : -1);
  g_elapsed = kt_now() - t0;
  atomic_store(&g_rc, rc);
  int ok = kiln_rlock_is_owned(g_r);
  for (int i = 0; i < 3; i++) ok &= kiln_condition_release(g_c) == 0;
  ok &= kiln_condition_release(g_c) == KILN_ESTATE; /* exactly 3 levels came back */
  atomic_store(&g_flag, ok);
  return NULL;
}

/* COND-07: wait releases every rlock level (another thread can take the lock meanwhile) and
 * takes back the same number before returning, after a notify and after a timeout. */
TEST(condition_wait_releases_every_rlock_level) {
  g_r = st_rlock();
  KT_CODE(kiln_condition_create_rlock(g_r, &g_c), KILN_OK);
  for (int timed = 0; timed < 2; timed++) {
    reset_globals();
    st_bunch b;
    st_start(&b, 1, leveled_waiter, timed ? (void *)1 : NULL);
    ST_UNTIL(atomic_load(&g_ready) == 1 && kiln__condition_waiting(g_c) == 1);
    KT_CODE(kiln_condition_acquire(g_c, -1), KILN_OK); /* all 3 levels were released */
    KT_TRUE(kiln_rlock_is_owned(g_r));
    if (!timed) KT_CODE(kiln_condition_notify(g_c, 1), KILN_OK);
    KT_CODE(kiln_condition_release(g_c), KILN_OK);
    st_join(&b);
    KT_CODE(atomic_load(&g_rc), timed ? KILN_ETIMEDOUT : KILN_OK);
    if (timed) KT_TIMED(g_elapsed, ST_T);
    KT_EQ(atomic_load(&g_flag), 1);
    KT_FALSE(kiln_rlock_locked(g_r));
  }
  kiln_condition_destroy(g_c);
  kiln_rlock_destroy(g_r);
}

static bool pred_state(void *arg) {
  atomic_fetch_add(&g_pred_calls, 1);
  if (!kiln_rlock_is_owned(g_r)) atomic_store(&g_not_owned_in_pred, 1);
  return g_state == (int)(intptr_t)arg;
}

static void *wait_for_thread(void *arg) {
  kiln_condition_acquire(g_c, -1);
  double t0 = kt_now();
  int rc = kiln_condition_wait_for(g_c, pred_state, arg, arg == (void *)4 ? -1 : ST_T);
  g_elapsed = kt_now() - t0;
  atomic_store(&g_flag, g_state == 4 && kiln_rlock_is_owned(g_r));
  kiln_condition_release(g_c);
  atomic_store(&g_rc, rc);
  atomic_store(&g_done, 1);
  return NULL;
}

/* Bumps g_state and notifies, up to `times` times, each time once the waiter is listed. Returns
 * how many notifies found the waiter listed just before notifying. */
static int bump_and_notify(int times) {
  int delivered = 0;
  for (int i = 0; i < times; i++) {
    ST_UNTIL(kiln__condition_waiting(g_c) == 1 || atomic_load(&g_done));
    KT_CODE(kiln_condition_acquire(g_c, -1), KILN_OK);
    delivered += kiln__condition_waiting(g_c);
    g_state++;
    KT_CODE(kiln_condition_notify(g_c, 1), KILN_OK);
    KT_CODE(kiln_condition_release(g_c), KILN_OK);
  }
  return delivered;
}

/* COND-08: wait_for returns 0 once pred holds, re-checking after every notify, at once if it
 * holds already; pred runs with the lock held and the caller holds it on return. */
TEST(condition_wait_for_returns_once_pred_holds) {
  reset_globals();
  g_r = st_rlock();
  KT_CODE(kiln_condition_create_rlock(g_r, &g_c), KILN_OK);
  st_bunch b;
  st_start(&b, 1, wait_for_thread, (void *)4);
  KT_EQ(bump_and_notify(4), 4);
  st_join(&b);
  KT_CODE(atomic_load(&g_rc), KILN_OK);
  KT_EQ(atomic_load(&g_flag), 1);
  KT_EQ(atomic_load(&g_pred_calls), 5); /* the first check and one per notify */
  KT_EQ(atomic_load(&g_not_owned_in_pred), 0);

  atomic_store(&g_pred_calls, 0);
  KT_CODE(kiln_condition_acquire(g_c, -1), KILN_OK);
  double t0 = kt_now();
  KT_CODE(kiln_condition_wait_for(g_c, pred_state, (void *)4, -1), KILN_OK);
  KT_CODE(kiln_condition_wait_for(g_c, pred_state, (void *)4, 0), KILN_OK);
  KT_TRUE(kt_now() - t0 < ST_T);
  KT_EQ(atomic_load(&g_pred_calls), 2);
  KT_TRUE(kiln_rlock_is_owned(g_r));
  KT_CODE(kiln_condition_release(g_c), KILN_OK);
  kiln_condition_destroy(g_c);
  kiln_rlock_destroy(g_r);
}

/* COND-09: wait_for(pred, t) gives up with KILN_ETIMEDOUT after about t when pred never holds,
 * although notifies arrive in between (each makes it re-check). */
TEST(condition_wait_for_times_out_despite_notifies) {
  reset_globals();
  g_r = st_rlock();
  KT_CODE(kiln_condition_create_rlock(g_r, &g_c), KILN_OK);
  st_bunch b;
  st_start(&b, 1, wait_for_thread, (void *)1000);
  int delivered = bump_and_notify(4);
  st_join(&b);
  KT_CODE(atomic_load(&g_rc), KILN_ETIMEDOUT);
  KT_TIMED(g_elapsed, ST_T);
  KT_TRUE(delivered >= 1);
  /* pred runs first, after each notify, and once more after the wait that timed out (CPython),
   * unless the last notify met the timeout */
  int calls = atomic_load(&g_pred_calls);
  if (calls < 1 + delivered || calls > 2 + delivered)
    KT_FAIL("pred ran %d times for %d notifies", calls, delivered);
  KT_EQ(atomic_load(&g_not_owned_in_pred), 0);
  KT_FALSE(kiln_rlock_locked(g_r));
  kiln_condition_destroy(g_c);
  kiln_rlock_destroy(g_r);
}

/* ---- stress: a bounded buffer, two conditions over one plain lock, notify(1) ---------------- */

enum { PRODUCERS = 3, CONSUMERS = 3, ITEMS = 3000, CAP = 4 };

static struct {
  kiln_lock *lock;
  kiln_condition *not_empty, *not_full;
  long buf[CAP]; /* guarded by lock: plain memory, so TSan checks the lock's ordering */
  int head, count;
  long left_to_take, sum;
} g_bb;

static bool bb_has_room(void *arg) {
  (void)arg;
  return g_bb.count < CAP;
}

static bool bb_has_item_or_end(void *arg) {
  (void)arg;
  return g_bb.count > 0 || g_bb.left_to_take == 0;
}

static void *bb_producer(void *arg) {
  long base = (long)(intptr_t)arg * ITEMS;
  for (long i = 1; i <= ITEMS; i++) {
    kiln_condition_acquire(g_bb.not_full, -1);
    note_rc(kiln_condition_wait_for(g_bb.not_full, bb_has_room, NULL, -1));
    g_bb.buf[(g_bb.head + g_bb.count++) % CAP] = base + i;
    note_rc(kiln_condition_notify(g_bb.not_empty, 1));
    kiln_condition_release(g_bb.not_full);
  }
  return NULL;
}

static void *bb_consumer(void *arg) {
  (void)arg;
  for (;;) {
    kiln_condition_acquire(g_bb.not_empty, -1);
    note_rc(kiln_condition_wait_for(g_bb.not_empty, bb_has_item_or_end, NULL, -1));
    if (g_bb.left_to_take == 0) {
      note_rc(kiln_condition_notify_all(g_bb.not_empty)); /* let the other consumers out */
      kiln_condition_release(g_bb.not_empty);
      return NULL;
    }
    g_bb.sum += g_bb.buf[g_bb.head];
    g_bb.head = (g_bb.head + 1) % CAP;
    g_bb.count--;
    g_bb.left_to_take--;
    if (g_bb.left_to_take == 0) note_rc(kiln_condition_notify_all(g_bb.not_empty));
    note_rc(kiln_condition_notify(g_bb.not_full, 1));
    kiln_condition_release(g_bb.not_empty);
  }
}

TEST(condition_stress) {
  reset_globals();
  g_bb.lock = st_lock();
  KT_CODE(kiln_condition_create_lock(g_bb.lock, &g_bb.not_empty), KILN_OK);
  KT_CODE(kiln_condition_create_lock(g_bb.lock, &g_bb.not_full), KILN_OK);
  g_bb.head = g_bb.count = 0;
  g_bb.sum = 0;
  g_bb.left_to_take = (long)PRODUCERS * ITEMS;
  pthread_t th[PRODUCERS + CONSUMERS];
  for (int i = 0; i < PRODUCERS; i++)
    KT_EQ(pthread_create(&th[i], NULL, bb_producer, (void *)(intptr_t)i), 0);
  for (int i = 0; i < CONSUMERS; i++)
    KT_EQ(pthread_create(&th[PRODUCERS + i], NULL, bb_consumer, NULL), 0);
  for (int i = 0; i < PRODUCERS + CONSUMERS; i++) pthread_join(th[i], NULL);
  long n = (long)PRODUCERS * ITEMS;
  KT_CODE(atomic_load(&g_rc), KILN_OK);
  KT_EQ(g_bb.sum, n * (n + 1) / 2);
  KT_EQ(g_bb.count, 0);
  KT_FALSE(kiln_lock_locked(g_bb.lock));
  kiln_condition_destroy(g_bb.not_empty);
  kiln_condition_destroy(g_bb.not_full);
  kiln_lock_destroy(g_bb.lock);
}

/* ---- stress: a ping-pong of turns over the default rlock, every thread waits for its turn ---- */

enum { TURN_THREADS = 4, TURN_ROUNDS = 500 };
static int g_turn; /* guarded by g_c's lock */

static bool my_turn(void *arg) { return g_turn % TURN_THREADS == (int)(intptr_t)arg; }

static void *turn_thread(void *arg) {
  for (int i = 0; i < TURN_ROUNDS; i++) {
    kiln_condition_acquire(g_c, -1);
    kiln_condition_acquire(g_c, -1); /* two levels: wait must release both */
    note_rc(kiln_condition_wait_for(g_c, my_turn, arg, -1));
    g_turn++;
    note_rc(kiln_condition_notify_all(g_c));
    kiln_condition_release(g_c);
    kiln_condition_release(g_c);
  }
  return NULL;
}

TEST(condition_stress_turns) {
  reset_globals();
  g_c = st_cond();
  g_turn = 0;
  pthread_t th[TURN_THREADS];
  for (int i = 0; i < TURN_THREADS; i++)
    KT_EQ(pthread_create(&th[i], NULL, turn_thread, (void *)(intptr_t)i), 0);
  for (int i = 0; i < TURN_THREADS; i++) pthread_join(th[i], NULL);
  KT_CODE(atomic_load(&g_rc), KILN_OK);
  KT_EQ(g_turn, TURN_THREADS * TURN_ROUNDS);
  KT_EQ(kiln__condition_waiting(g_c), 0);
  kiln_condition_destroy(g_c);
}
