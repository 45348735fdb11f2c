/* condition.c: kiln_condition (threading.Condition).
 *
 * CPython's algorithm with the waitlist standing in for its deque of per-waiter locks: a waiter
 * lists itself while it still holds the user-visible lock, then releases that lock and sleeps on
 * its own node. A notifier must hold the lock, so it either runs before the waiter listed itself
 * (and the waiter was not waiting yet: nothing to store) or finds it listed (nothing lost).
 * notify(n) unlinks and wakes the n oldest nodes; a woken waiter then takes the lock back, so it
 * continues only once the notifier has released it. 0 from wait means exactly that a notify
 * picked this node: there are no spurious wake-ups.
 *
 * The lock is a kiln_lock or a kiln_rlock (ours when made by kiln_condition_create). "Held" means
 * owned by the caller for an rlock and merely locked for a lock, as CPython's _is_owned.
 *
 * Lock order: the condition's lock or rlock -> mu. mu guards wl only. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>

#include "base.h"
#include "sync_internal.h"

struct kiln_condition {
  kiln_lock *lock; /* exactly one of lock and rlock is set */
  kiln_rlock *rlock;
  bool own_rlock; /* made by kiln_condition_create: destroyed with the condition */
  pthread_mutex_t mu;
  kiln__waitlist wl;
};

static int make(kiln_lock *l, kiln_rlock *r, bool own, kiln_condition **out) {
  kiln_condition *c = calloc(1, sizeof *c);
  if (!c) return KILN_ENOMEM;
  c->lock = l;
  c->rlock = r;
  c->own_rlock = own;
  pthread_mutex_init(&c->mu, NULL);
  *out = c;
  return 0;
}

int kiln_condition_create(kiln_condition **out) {
  *out = NULL;
  kiln_rlock *r;
  int rc = kiln_rlock_create(&r);
  if (rc) return rc;
  rc = make(NULL, r, true, out);
  if (rc) kiln_rlock_destroy(r);
  return rc;
}

int kiln_condition_create_lock(kiln_lock *l, kiln_condition **out) {
  *out = NULL;
  if (!l) return KILN_EINVAL;
  return make(l, NULL, false, out);
}

int kiln_condition_create_rlock(kiln_rlock *r, kiln_condition **out) {
  *out = NULL;
  if (!r) return KILN_EINVAL;
  return make(NULL, r, false, out);
}

void kiln_condition_destroy(kiln_condition *c) {
  if (!c) return;
  if (c->own_rlock) kiln_rlock_destroy(c->rlock);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

int kiln_condition_acquire(kiln_condition *c, double timeout) {
  return c->rlock ? kiln_rlock_acquire(c->rlock, timeout) : kiln_lock_acquire(c->lock, timeout);
}

int kiln_condition_release(kiln_condition *c) {
  return c->rlock ? kiln_rlock_release(c->rlock) : kiln_lock_release(c->lock);
}

static bool held(kiln_condition *c) {
  return c->rlock ? kiln_rlock_is_owned(c->rlock) : kiln_lock_locked(c->lock);
}

/* Releases the lock completely; *levels says how to take it back. */
static int release_all(kiln_condition *c, unsigned long *levels) {
  if (c->rlock) return kiln__rlock_release_save(c->rlock, levels);
  *levels = 1;
  return kiln_lock_release(c->lock);
}

static void restore(kiln_condition *c, unsigned long levels) {
  if (c->rlock) kiln__rlock_acquire_restore(c->rlock, levels);
  else kiln_lock_acquire(c->lock, -1); /* cannot fail without a timeout */
}

/* wait with an absolute deadline (INFINITY: none). */
static int wait_until(kiln_condition *c, double deadline) {
  if (!held(c)) return KILN_ESTATE;
  kiln__parked p;
  pthread_mutex_lock(&c->mu);
  kiln__waitlist_push(&c->wl, &p);
  pthread_mutex_unlock(&c->mu);
  unsigned long levels;
  int rc = release_all(c, &levels);
  pthread_mutex_lock(&c->mu);
  if (rc) {
    /* Over a plain lock, another thread released it between held() and here: nothing done. A
     * notify that already chose us goes on to the next waiter rather than being lost. */
    if (p.woken) kiln__waitlist_wake(&c->wl, 1);
    else kiln__waitlist_remove(&c->wl, &p);
    pthread_cond_destroy(&p.cv);
    pthread_mutex_unlock(&c->mu);
    return KILN_ESTATE;
  }
  rc = kiln__waitlist_park(&c->wl, &p, &c->mu, deadline);
  pthread_mutex_unlock(&c->mu);
  restore(c, levels);
  return rc;
}

int kiln_condition_wait(kiln_condition *c, double timeout) {
  if (!held(c)) return KILN_ESTATE;
  double deadline;
  int rc = kiln__deadline(timeout, &deadline);
  if (rc) return rc;
  return wait_until(c, deadline);
}

int kiln_condition_wait_for(kiln_condition *c, bool (*pred)(void *arg), void *arg, double timeout) {
  if (!held(c)) return KILN_ESTATE;
  double deadline;
  int rc = kiln__deadline(timeout, &deadline);
  if (rc) return rc;
  /* As CPython: pred is checked after every wake-up and once more after the last timed-out wait,
   * so a notify that lands at the deadline still counts. */
  while (!pred(arg)) {
    if (deadline != INFINITY && kiln__now() >= deadline) return KILN_ETIMEDOUT;
    rc = wait_until(c, deadline);
    if (rc == KILN_ESTATE) return rc;
  }
  return 0;
}

int kiln_condition_notify(kiln_condition *c, int n) {
  if (!held(c)) return KILN_ESTATE;
  if (n < 0) return KILN_EINVAL;
  pthread_mutex_lock(&c->mu);
  kiln__waitlist_wake(&c->wl, n);
  pthread_mutex_unlock(&c->mu);
  return 0;
}

int kiln_condition_notify_all(kiln_condition *c) {
  if (!held(c)) return KILN_ESTATE;
  pthread_mutex_lock(&c->mu);
  kiln__waitlist_wake(&c->wl, c->wl.n);
  pthread_mutex_unlock(&c->mu);
  return 0;
}

int kiln__condition_waiting(kiln_condition *c) {
  pthread_mutex_lock(&c->mu);
  int n = c->wl.n;
  pthread_mutex_unlock(&c->mu);
  return n;
}
