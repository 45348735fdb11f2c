/* semaphore.c: kiln_semaphore (threading.Semaphore and BoundedSemaphore).
 *
 * Units are handed over, not raced for: a release gives its units to the threads already
 * waiting, oldest first (one each, through the waitlist), and only the rest goes to the value.
 * That gives the header's arrival order.
 *
 * One 64-bit word holds the value (low half) and the number of listed waiters (high half), with
 * the invariant: value > 0 only while no thread is listed. So while nobody waits, acquire and
 * release are each one CAS on the word and never touch mu; a release that sees waiters takes mu
 * and hands its units over. The waiter count changes only under mu, and with waiters listed the
 * value is 0, so the whole word is stable while mu is held and waiters exist: a release under mu
 * can wake k threads and publish "k fewer waiters, n-k more units" in one step. A thread that is
 * about to wait counts itself in with a CAS that also checks value == 0, so a concurrent
 * lock-free release either lands first (the CAS fails, the unit is taken instead) or sees the
 * waiter and goes through mu.
 *
 * Lock order: mu is a leaf. */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "base.h"
#include "sync_internal.h"

#define ONE_WAITER ((uint64_t)1 << 32)

static uint32_t value_of(uint64_t w) { return (uint32_t)w; }
static uint32_t waiters_of(uint64_t w) { return (uint32_t)(w >> 32); }

struct kiln_semaphore {
  _Atomic uint64_t word; /* value | waiters << 32 */
  int initial;
  bool bounded;
  pthread_mutex_t mu; /* guards wl and every change of the waiter count */
  kiln__waitlist wl;
};

int kiln_semaphore_create(int value, bool bounded, kiln_semaphore **out) {
  *out = NULL;
  if (value < 0) return KILN_EINVAL;
  kiln_semaphore *s = calloc(1, sizeof *s);
  if (!s) return KILN_ENOMEM;
  atomic_init(&s->word, (uint64_t)value);
  s->initial = value;
  s->bounded = bounded;
  pthread_mutex_init(&s->mu, NULL);
  *out = s;
  return 0;
}

void kiln_semaphore_destroy(kiln_semaphore *s) {
  if (!s) return;
  pthread_mutex_destroy(&s->mu);
  free(s);
}

/* Takes a free unit if there is one. With mu held and no unit free, counts the caller in as a
 * waiter instead (returns false; the caller then lists itself). */
static bool take_or_count_in(kiln_semaphore *s, bool count_in) {
  /* relaxed: the CAS below is what acquires. */
  uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
  for (;;) {
    if (value_of(w) > 0) {
      /* acquire: pairs with the release CAS in kiln_semaphore_release, so that what the releasing
       * thread did before the release happens before what we do with the unit. */
      if (atomic_compare_exchange_weak_explicit(&s->word, &w, w - 1, memory_order_acquire,
                                                memory_order_relaxed))
        return true;
    } else if (!count_in) {
      return false;
    } else if (atomic_compare_exchange_weak_explicit(&s->word, &w, w + ONE_WAITER,
                                                     memory_order_relaxed, memory_order_relaxed)) {
      /* relaxed: the count only routes releases to mu; the unit itself is handed over under
       * mu, which orders it. */
      return false;
    }
  }
}

int kiln_semaphore_acquire(kiln_semaphore *s, double timeout) {
  double deadline;
  int rc = kiln__deadline(timeout, &deadline);
  if (rc) return rc;
  if (take_or_count_in(s, false)) return 0;
  if (timeout == 0) return KILN_ETIMEDOUT;
  pthread_mutex_lock(&s->mu);
  if (take_or_count_in(s, true)) {
    pthread_mutex_unlock(&s->mu);
    return 0;
  }
  kiln__parked p;
  kiln__waitlist_push(&s->wl, &p);
  rc = kiln__waitlist_park(&s->wl, &p, &s->mu, deadline); /* 0: a unit was handed to us */
  if (rc) /* timed out and unlinked: count ourselves out (still under mu) */
    atomic_fetch_sub_explicit(&s->word, ONE_WAITER, memory_order_relaxed); /* as above */
  pthread_mutex_unlock(&s->mu);
  return rc;
}

/* Whether adding n units to value v breaks the bound (or overflows an int). */
static bool too_many(const kiln_semaphore *s, uint32_t v, int n) {
  return (int64_t)v + n > (s->bounded ? s->initial : INT_MAX);
}

/* With mu held and waiters listed (so the word is stable): hands min(n, waiters) units over. */
static int hand_over(kiln_semaphore *s, uint64_t w, int n) {
  if (too_many(s, value_of(w), n)) return KILN_EINVAL;
  int k = kiln__waitlist_wake(&s->wl, n);
  /* k fewer waiters and n - k more units (n > k only when k was every waiter). release: pairs
   * with the acquire CAS of a later taker of those units. */
  atomic_fetch_add_explicit(&s->word, (uint64_t)(n - k) - (uint64_t)k * ONE_WAITER,
                            memory_order_release);
  return 0;
}

int kiln_semaphore_release(kiln_semaphore *s, int n) {
  if (n < 1) return KILN_EINVAL;
  for (;;) {
    /* relaxed: the CAS below is what releases. */
    uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
    while (waiters_of(w) == 0) {
      if (too_many(s, value_of(w), n)) return KILN_EINVAL;
      /* release: pairs with the acquire CAS in take_or_count_in. */
      if (atomic_compare_exchange_weak_explicit(&s->word, &w, w + (uint64_t)n, memory_order_release,
                                                memory_order_relaxed))
        return 0;
    }
    pthread_mutex_lock(&s->mu);
    w = atomic_load_explicit(&s->word, memory_order_relaxed); /* stable under mu, see above */
    if (waiters_of(w) > 0) {
      int rc = hand_over(s, w, n);
      pthread_mutex_unlock(&s->mu);
      return rc;
    }
    pthread_mutex_unlock(&s->mu); /* the waiters timed out meanwhile: back to the fast path */
  }
}

int kiln_semaphore_value(kiln_semaphore *s) { return (int)value_of(atomic_load(&s->word)); }

int kiln__semaphore_waiting(kiln_semaphore *s) {
  pthread_mutex_lock(&s->mu);
  int n = s->wl.n;
  pthread_mutex_unlock(&s->mu);
  return n;
}
