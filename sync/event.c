/* event.c: kiln_event (threading.Event).
 *
 * A flag and a waitlist. set() raises the flag and wakes every listed waiter; a woken waiter
 * returns 0 even if clear() ran before it got to run (CPython gh-57711: the wake-up, not the flag
 * at return time, decides). The flag is also readable without the mutex, so is_set() and a wait
 * on a set event take no lock.
 *
 * Lock order: mu is a leaf. */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdlib.h>

#include "base.h"
#include "sync_internal.h"

struct kiln_event {
  /* Written under mu; read anywhere. */
  _Atomic bool flag;
  pthread_mutex_t mu; /* guards wl and the writes of flag */
  kiln__waitlist wl;
};

int kiln_event_create(kiln_event **out) {
  *out = NULL;
  kiln_event *e = calloc(1, sizeof *e);
  if (!e) return KILN_ENOMEM;
  atomic_init(&e->flag, false);
  pthread_mutex_init(&e->mu, NULL);
  *out = e;
  return 0;
}

void kiln_event_destroy(kiln_event *e) {
  if (!e) return;
  pthread_mutex_destroy(&e->mu);
  free(e);
}

void kiln_event_set(kiln_event *e) {
  pthread_mutex_lock(&e->mu);
  /* release: pairs with the acquire loads in is_set / wait, so a thread that sees the event set
   * also sees what the setter did before set(). */
  atomic_store_explicit(&e->flag, true, memory_order_release);
  kiln__waitlist_wake(&e->wl, e->wl.n);
  pthread_mutex_unlock(&e->mu);
}

void kiln_event_clear(kiln_event *e) {
  pthread_mutex_lock(&e->mu);
  /* relaxed: clearing publishes nothing; under mu it is ordered against set() anyway. */
  atomic_store_explicit(&e->flag, false, memory_order_relaxed);
  pthread_mutex_unlock(&e->mu);
}

bool kiln_event_is_set(kiln_event *e) {
  /* acquire: pairs with the release store in kiln_event_set. */
  return atomic_load_explicit(&e->flag, memory_order_acquire);
}

int kiln_event_wait(kiln_event *e, double timeout) {
  double deadline;
  int rc = kiln__deadline(timeout, &deadline);
  if (rc) return rc;
  if (kiln_event_is_set(e)) return 0;
  if (timeout == 0) return KILN_ETIMEDOUT;
  pthread_mutex_lock(&e->mu);
  /* relaxed: under mu, which orders us after the set() that wrote it. */
  if (atomic_load_explicit(&e->flag, memory_order_relaxed)) {
    pthread_mutex_unlock(&e->mu);
    return 0;
  }
  kiln__parked p;
  kiln__waitlist_push(&e->wl, &p);
  rc = kiln__waitlist_park(&e->wl, &p, &e->mu, deadline);
  pthread_mutex_unlock(&e->mu);
  return rc;
}

int kiln__event_waiting(kiln_event *e) {
  pthread_mutex_lock(&e->mu);
  int n = e->wl.n;
  pthread_mutex_unlock(&e->mu);
  return n;
}
