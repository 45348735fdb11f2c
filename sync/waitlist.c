/* waitlist.c: the FIFO of parked threads behind kiln_semaphore, kiln_condition and kiln_event
 * (see sync_internal.h). Each sleeper has its own condition variable, so waking the oldest n
 * signals exactly those n threads, never a herd, and a node marked woken stays woken: a waiter
 * that times out at the same moment still reports the wake-up it was given rather than losing it.
 *
 * Every function runs with the owner's mutex held; that mutex is the only lock involved. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <time.h>

#include "base.h"
#include "sync_internal.h"

void kiln__cond_init_monotonic(pthread_cond_t *cv) {
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(cv, &ca);
  pthread_condattr_destroy(&ca);
}

void kiln__waitlist_push(kiln__waitlist *wl, kiln__parked *p) {
  kiln__cond_init_monotonic(&p->cv);
  p->woken = false;
  p->next = NULL;
  p->prev = wl->tail;
  if (wl->tail) wl->tail->next = p;
  else wl->head = p;
  wl->tail = p;
  wl->n++;
}

static void unlink_node(kiln__waitlist *wl, kiln__parked *p) {
  if (p->prev) p->prev->next = p->next;
  else wl->head = p->next;
  if (p->next) p->next->prev = p->prev;
  else wl->tail = p->prev;
  p->prev = p->next = NULL;
  wl->n--;
}

void kiln__waitlist_remove(kiln__waitlist *wl, kiln__parked *p) {
  if (!p->woken) unlink_node(wl, p);
}

int kiln__waitlist_wake(kiln__waitlist *wl, int n) {
  int woken = 0;
  while (woken < n && wl->head) {
    kiln__parked *p = wl->head;
    unlink_node(wl, p);
    p->woken = true;
    /* Signalled with the mutex held: the sleeper cannot see `woken`, return and destroy cv
     * before this call is done with it. */
    pthread_cond_signal(&p->cv);
    woken++;
  }
  return woken;
}

int kiln__waitlist_park(kiln__waitlist *wl, kiln__parked *p, pthread_mutex_t *mu, double deadline) {
  int rc = 0;
  while (!p->woken) {
    if (deadline == INFINITY) {
      pthread_cond_wait(&p->cv, mu);
      continue;
    }
    struct timespec ts;
    kiln__abs_timespec(deadline, &ts);
    if (pthread_cond_timedwait(&p->cv, mu, &ts) == ETIMEDOUT && !p->woken) {
      unlink_node(wl, p);
      rc = KILN_ETIMEDOUT;
      break;
    }
  }
  pthread_cond_destroy(&p->cv);
  return rc;
}
