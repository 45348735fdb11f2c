/* barrier.c: kiln_barrier (threading.Barrier), CPython's algorithm.
 *
 * A round goes FILLING (threads arrive and take the indices 0..parties-1) -> DRAINING (the last
 * arrival ran the action and released everyone; they leave) -> FILLING again once the last one
 * has left. Arrivals during DRAINING or RESETTING wait for the round to empty first, which keeps
 * the rounds in lockstep. BROKEN (abort, failing action, a timed-out wait) sends every waiter and
 * every later caller away with KILN_EBROKEN until reset; RESETTING is reset() while threads are
 * still inside: they leave with KILN_EBROKEN and the last one out sets FILLING.
 *
 * The action runs in the last arriving thread with mu held, as in CPython (whose action runs
 * under the barrier's Condition): it must not call kiln_barrier_wait, _abort or _reset on the
 * same barrier, but may read _broken, _n_waiting and _parties, which take no lock.
 *
 * Lock order: mu is a leaf (the action runs under it). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "base.h"
#include "sync_internal.h"

enum { FILLING = 0, DRAINING = 1, RESETTING = -1, BROKEN = -2 };

struct kiln_barrier {
  pthread_mutex_t mu;
  pthread_cond_t cv; /* broadcast on every state change */
  int parties;
  int (*action)(void *arg);
  void *arg;
  double timeout;
  /* Written under mu; read under mu or, for the lock-free getters, anywhere (seq_cst). */
  _Atomic int state;
  _Atomic int count; /* threads inside wait (FILLING: the arrivals of this round) */
};

int kiln_barrier_create(int parties, int (*action)(void *arg), void *arg, double timeout,
                        kiln_barrier **out) {
  *out = NULL;
  if (parties < 1 || isnan(timeout)) return KILN_EINVAL;
  kiln_barrier *b = calloc(1, sizeof *b);
  if (!b) return KILN_ENOMEM;
  pthread_mutex_init(&b->mu, NULL);
  kiln__cond_init_monotonic(&b->cv);
  b->parties = parties;
  b->action = action;
  b->arg = arg;
  b->timeout = timeout;
  atomic_init(&b->state, FILLING);
  atomic_init(&b->count, 0);
  *out = b;
  return 0;
}

void kiln_barrier_destroy(kiln_barrier *b) {
  if (!b) return;
  /* A thread whose kiln_barrier_wait has returned may destroy the barrier while the other parties
   * of its round, released but not yet out, still need mu: wait until they have left (as glibc's
   * pthread_barrier_destroy does). Threads still blocked in a round being filled are the caller's
   * error (see sync.h), not waited for. */
  pthread_mutex_lock(&b->mu);
  while (atomic_load(&b->count) > 0 && atomic_load(&b->state) != FILLING)
    pthread_cond_wait(&b->cv, &b->mu);
  pthread_mutex_unlock(&b->mu);
  pthread_cond_destroy(&b->cv);
  pthread_mutex_destroy(&b->mu);
  free(b);
}

/* Caller holds mu. */
static void set_state(kiln_barrier *b, int state) {
  atomic_store(&b->state, state);
  pthread_cond_broadcast(&b->cv);
}

/* The last arrival: run the action, then release the round. Caller holds mu. */
static int release_round(kiln_barrier *b) {
  if (b->action && b->action(b->arg) != 0) {
    set_state(b, BROKEN);
    return KILN_EBROKEN;
  }
  set_state(b, DRAINING);
  return 0;
}

/* Any other arrival: wait for the round to be released or broken. Caller holds mu. */
static int wait_round(kiln_barrier *b, double timeout) {
  double deadline;
  kiln__deadline(timeout, &deadline); /* NaN was refused by the caller */
  struct timespec ts;
  kiln__abs_timespec(deadline, &ts);
  while (atomic_load(&b->state) == FILLING) {
    if (deadline == INFINITY) {
      pthread_cond_wait(&b->cv, &b->mu);
    } else if (pthread_cond_timedwait(&b->cv, &b->mu, &ts) != 0 &&
               atomic_load(&b->state) == FILLING) {
      set_state(b, BROKEN); /* the timed-out waiter breaks the barrier for everyone */
      return KILN_EBROKEN;
    }
  }
  return atomic_load(&b->state) < 0 ? KILN_EBROKEN : 0;
}

int kiln_barrier_wait_timeout(kiln_barrier *b, double timeout, int *index) {
  if (index) *index = 0;
  if (isnan(timeout)) return KILN_EINVAL;
  pthread_mutex_lock(&b->mu);
  while (atomic_load(&b->state) == DRAINING || atomic_load(&b->state) == RESETTING)
    pthread_cond_wait(&b->cv, &b->mu);
  if (atomic_load(&b->state) == BROKEN) {
    pthread_mutex_unlock(&b->mu);
    return KILN_EBROKEN;
  }
  int idx = atomic_fetch_add(&b->count, 1);
  int rc = idx + 1 == b->parties ? release_round(b) : wait_round(b, timeout);
  /* Leave; the last one out of a released or reset round opens the next. */
  if (atomic_fetch_sub(&b->count, 1) == 1) {
    int s = atomic_load(&b->state);
    if (s == DRAINING || s == RESETTING) set_state(b, FILLING);
    else pthread_cond_broadcast(&b->cv); /* a destroy may wait for the last one out */
  }
  pthread_mutex_unlock(&b->mu);
  if (rc == 0 && index) *index = idx;
  return rc;
}

int kiln_barrier_wait(kiln_barrier *b, int *index) {
  return kiln_barrier_wait_timeout(b, b->timeout, index);
}

void kiln_barrier_abort(kiln_barrier *b) {
  pthread_mutex_lock(&b->mu);
  set_state(b, BROKEN);
  pthread_mutex_unlock(&b->mu);
}

void kiln_barrier_reset(kiln_barrier *b) {
  pthread_mutex_lock(&b->mu);
  int s = atomic_load(&b->state);
  if (atomic_load(&b->count) > 0) {
    /* Threads inside leave with KILN_EBROKEN; the last one out sets FILLING. A DRAINING round is
     * already released and empties by itself. */
    if (s == FILLING || s == BROKEN) set_state(b, RESETTING);
  } else {
    set_state(b, FILLING);
  }
  pthread_mutex_unlock(&b->mu);
}

bool kiln_barrier_broken(kiln_barrier *b) { return atomic_load(&b->state) == BROKEN; }

int kiln_barrier_n_waiting(kiln_barrier *b) {
  /* CPython: the arrivals of the round being filled; 0 while a round drains or resets. */
  return atomic_load(&b->state) == FILLING ? atomic_load(&b->count) : 0;
}

int kiln_barrier_parties(kiln_barrier *b) { return b->parties; }
