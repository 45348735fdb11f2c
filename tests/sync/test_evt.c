/* test_evt.c: kiln_event (EVT-01..EVT-03 of docs/CONFORMANCE.md).
 *
 * Not tested: the "processes" part of EVT-02 waits for the process pool. */
// kt: timeout 60
#include "sync_test_util.h"

static kiln_event *g_e;
static atomic_int g_ok, g_bad;

/* EVT-01: is_set starts false; set makes it true and clear false, both repeatable. */
TEST(event_set_and_clear) {
  kiln_event *e = st_event();
  KT_FALSE(kiln_event_is_set(e));
  kiln_event_set(e);
  KT_TRUE(kiln_event_is_set(e));
  kiln_event_set(e);
  KT_TRUE(kiln_event_is_set(e));
  kiln_event_clear(e);
  KT_FALSE(kiln_event_is_set(e));
  kiln_event_clear(e);
  KT_FALSE(kiln_event_is_set(e));
  kiln_event_destroy(e);
  kiln_event_destroy(NULL);
}

static void *waiter(void *arg) {
  (void)arg;
  int rc = kiln_event_wait(g_e, -1);
  atomic_fetch_add(rc == 0 ? &g_ok : &g_bad, 1);
  return NULL;
}

/* N threads blocked in wait; then `wake` runs; all must return 0. */
static void check_wakes_all(void (*wake)(void)) {
  enum { N = 5 };
  atomic_store(&g_ok, 0);
  atomic_store(&g_bad, 0);
  st_bunch b;
  st_start(&b, N, waiter, NULL);
  ST_UNTIL(kiln__event_waiting(g_e) == N);
  KT_EQ(atomic_load(&g_ok), 0);
  wake();
  st_join(&b);
  KT_EQ(atomic_load(&g_ok), N);
  KT_EQ(atomic_load(&g_bad), 0);
  KT_EQ(kiln__event_waiting(g_e), 0);
}

static void do_set(void) { kiln_event_set(g_e); }

static void do_set_clear(void) {
  kiln_event_set(g_e);
  kiln_event_clear(g_e);
}

/* EVT-02: set wakes every waiter, each wait returns 0, later waits return 0 at once; again after
 * clear. A waiter woken by set returns 0 even if clear ran before it got to run (gh-57711). */
TEST(event_set_wakes_every_waiter) {
  g_e = st_event();
  check_wakes_all(do_set);
  double t0 = kt_now();
  KT_CODE(kiln_event_wait(g_e, -1), KILN_OK);
  KT_CODE(kiln_event_wait(g_e, 0), KILN_OK);
  KT_TRUE(kt_now() - t0 < ST_T);
  kiln_event_clear(g_e);
  check_wakes_all(do_set);
  kiln_event_clear(g_e);
  check_wakes_all(do_set_clear);
  KT_FALSE(kiln_event_is_set(g_e));
  kiln_event_destroy(g_e);
}

/* EVT-03: on an unset event wait(0) fails at once and wait(t) after about t; on a set event
 * wait(t) returns 0 at once. A NaN timeout is KILN_EINVAL. */
TEST(event_wait_times_out_while_unset) {
  kiln_event *e = st_event();
  double t0 = kt_now();
  KT_CODE(kiln_event_wait(e, 0), KILN_ETIMEDOUT);
  KT_TRUE(kt_now() - t0 < ST_T);
  t0 = kt_now();
  KT_CODE(kiln_event_wait(e, ST_T), KILN_ETIMEDOUT);
  KT_TIMED(kt_now() - t0, ST_T);
  KT_EQ(kiln__event_waiting(e), 0);
  KT_CODE(kiln_event_wait(e, NAN), KILN_EINVAL);
  kiln_event_set(e);
  t0 = kt_now();
  KT_CODE(kiln_event_wait(e, ST_T), KILN_OK);
  KT_TRUE(kt_now() - t0 < ST_T);
  KT_CODE(kiln_event_wait(e, NAN), KILN_EINVAL);
  kiln_event_destroy(e);
}

/* ---- stress: ping-pong between two threads with two events, 2000 round trips ---------------- */

enum { ROUNDS = 2000 };
static kiln_event *g_ping, *g_pong;
static long g_shared; /* handed back and forth: plain memory, so TSan checks the ordering */

static void *ponger(void *arg) {
  (void)arg;
  for (int i = 0; i < ROUNDS; i++) {
    if (kiln_event_wait(g_ping, -1) != 0) atomic_fetch_add(&g_bad, 1);
    kiln_event_clear(g_ping);
    g_shared++;
    kiln_event_set(g_pong);
  }
  return NULL;
}

TEST(event_ping_pong) {
  g_ping = st_event();
  g_pong = st_event();
  g_shared = 0;
  atomic_store(&g_bad, 0);
  st_bunch b;
  st_start(&b, 1, ponger, NULL);
  for (int i = 0; i < ROUNDS; i++) {
    g_shared++;
    kiln_event_set(g_ping);
    KT_CODE(kiln_event_wait(g_pong, -1), KILN_OK);
    kiln_event_clear(g_pong);
  }
  st_join(&b);
  KT_EQ(g_shared, 2 * ROUNDS);
  KT_EQ(atomic_load(&g_bad), 0);
  kiln_event_destroy(g_ping);
  kiln_event_destroy(g_pong);
}
