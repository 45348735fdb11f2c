/* lock.c: kiln_lock (threading.Lock) and kiln_rlock (threading.RLock).
 *
 * kiln_lock is one 32-bit word and a futex: the three-state mutex of Drepper, "Futexes Are
 * Tricky" (2011), mutex #3. 0 unlocked, 1 locked, 2 locked and some thread may sleep on the word.
 * Acquiring is one CAS 0 -> 1 when free; a thread that must wait swaps in 2 and sleeps on the
 * futex while the word is 2; release swaps in 0 and wakes one sleeper only if it saw 2. Unlike a
 * pthread mutex, any thread may release (LOCK-04): the word has no owner. The happens-before that
 * a lock promises (and that ThreadSanitizer checks) is carried by the C11 atomics on the word
 * alone: every successful acquire is an acquire RMW reading the value stored by the release
 * exchange of the previous holder. The futex is only the sleeping place; it orders nothing.
 *
 * Release touches nothing but the word after unlocking, and FUTEX_WAKE on a word whose lock was
 * freed meanwhile is harmless (EFAULT or a spurious wake-up that the waiter's loop absorbs), so
 * the last user may destroy a lock as soon as its own release returns, as with pthreads.
 *
 * kiln_rlock is a kiln_lock plus an owner and a count (CPython's _PyRLock in C). The owner is
 * the address of a thread-local byte: unique among living threads.
 *
 * Lock order: none; no function here holds anything while it calls out. Linux only (futex). */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "sync_internal.h"

enum { UNLOCKED = 0, LOCKED = 1, CONTENDED = 2 };

/* Short spin before sleeping: a holder usually releases within a few hundred cycles, and a
 * futex round trip costs microseconds. Kept small: kiln often runs on few, busy cores. */
enum { SPINS = 100 };

struct kiln_lock {
  _Atomic uint32_t word;
};

struct kiln_rlock {
  kiln_lock lock;
  /* The owning thread's id, 0 when free. Written only by the thread that holds `lock` (its own
   * id after acquiring, 0 before releasing); read by anyone. A thread reading its own id back
   * therefore reads its own latest write (coherence), so relaxed order is enough: no data is
   * published through it, the lock word does that. */
  _Atomic uintptr_t owner;
  unsigned long count; /* levels; read and written only by the owner */
};

static _Thread_local char rlock_self_tag;

static uintptr_t self_id(void) { return (uintptr_t)&rlock_self_tag; }

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __asm__ __volatile__("pause");
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* ---- futex --------------------------------------------------------------------------------- */

/* Sleeps while *w == val, until woken or the absolute CLOCK_MONOTONIC deadline (INFINITY: none).
 * May return early for any reason (a wake-up, a signal, the value changed); callers re-check.
 * The cast drops _Atomic only to hand the kernel the word's address. */
static void futex_wait(_Atomic uint32_t *w, uint32_t val, double deadline) {
  struct timespec ts, *tsp = NULL;
  if (deadline != INFINITY) {
    kiln__abs_timespec(deadline, &ts);
    tsp = &ts;
  }
  /* FUTEX_WAIT_BITSET takes an absolute timeout on CLOCK_MONOTONIC (plain FUTEX_WAIT takes a
   * relative one, which would drift over repeated early returns). */
  syscall(SYS_futex, (void *)w, FUTEX_WAIT_BITSET_PRIVATE, val, tsp, NULL, FUTEX_BITSET_MATCH_ANY);
}

static void futex_wake_one(_Atomic uint32_t *w) {
  syscall(SYS_futex, (void *)w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* ---- lock ---------------------------------------------------------------------------------- */

int kiln_lock_create(kiln_lock **out) {
  *out = NULL;
  kiln_lock *l = malloc(sizeof *l);
  if (!l) return KILN_ENOMEM;
  atomic_init(&l->word, UNLOCKED);
  *out = l;
  return 0;
}

void kiln_lock_destroy(kiln_lock *l) { free(l); }

static int lock_slow(kiln_lock *l, double timeout) {
  double deadline;
  kiln__deadline(timeout, &deadline); /* NaN was refused by the caller */
  for (int i = 0; i < SPINS; i++) {
    cpu_relax();
    /* relaxed: only a hint for whether the CAS below can succeed; the CAS itself acquires. */
    uint32_t c = atomic_load_explicit(&l->word, memory_order_relaxed);
    if (c == CONTENDED) break; /* others already sleep: queue up behind them, do not burn CPU */
    /* acquire: pairs with the release exchange in kiln_lock_release. */
    if (c == UNLOCKED && atomic_compare_exchange_weak_explicit(
                             &l->word, &c, LOCKED, memory_order_acquire, memory_order_relaxed))
      return 0;
  }
  for (;;) {
    /* Taking the lock this way marks it CONTENDED even if we were the only waiter: at worst one
     * needless FUTEX_WAKE at release. acquire: pairs with the release exchange in
     * kiln_lock_release. */
    if (atomic_exchange_explicit(&l->word, CONTENDED, memory_order_acquire) == UNLOCKED) return 0;
    if (deadline != INFINITY && kiln__now() >= deadline) return KILN_ETIMEDOUT;
    futex_wait(&l->word, CONTENDED, deadline);
  }
}

int kiln_lock_acquire(kiln_lock *l, double timeout) {
  if (isnan(timeout)) return KILN_EINVAL;
  uint32_t c = UNLOCKED;
  /* acquire: pairs with the release exchange in kiln_lock_release. */
  if (atomic_compare_exchange_strong_explicit(&l->word, &c, LOCKED, memory_order_acquire,
                                              memory_order_relaxed))
    return 0;
  if (timeout == 0) return KILN_ETIMEDOUT;
  return lock_slow(l, timeout);
}

int kiln_lock_release(kiln_lock *l) {
  /* release: pairs with the acquire CAS / exchange of the next holder. On an unlocked lock this
   * stores 0 over 0, which changes nothing. */
  uint32_t old = atomic_exchange_explicit(&l->word, UNLOCKED, memory_order_release);
  if (old == LOCKED) return 0;
  if (old == UNLOCKED) return KILN_ESTATE;
  futex_wake_one(&l->word);
  return 0;
}

bool kiln_lock_locked(kiln_lock *l) { return atomic_load(&l->word) != UNLOCKED; }

bool kiln__lock_contended(kiln_lock *l) { return atomic_load(&l->word) == CONTENDED; }

/* ---- rlock --------------------------------------------------------------------------------- */

int kiln_rlock_create(kiln_rlock **out) {
  *out = NULL;
  kiln_rlock *r = malloc(sizeof *r);
  if (!r) return KILN_ENOMEM;
  atomic_init(&r->lock.word, UNLOCKED);
  atomic_init(&r->owner, 0);
  r->count = 0;
  *out = r;
  return 0;
}

void kiln_rlock_destroy(kiln_rlock *r) { free(r); }

int kiln_rlock_acquire(kiln_rlock *r, double timeout) {
  if (isnan(timeout)) return KILN_EINVAL;
  uintptr_t me = self_id();
  /* relaxed: see kiln_rlock.owner. */
  if (atomic_load_explicit(&r->owner, memory_order_relaxed) == me) {
    r->count++;
    return 0;
  }
  int rc = kiln_lock_acquire(&r->lock, timeout);
  if (rc) return rc;
  /* relaxed: see kiln_rlock.owner; the lock's acquire already ordered us after the last owner. */
  atomic_store_explicit(&r->owner, me, memory_order_relaxed);
  r->count = 1;
  return 0;
}

int kiln_rlock_release(kiln_rlock *r) {
  /* relaxed: see kiln_rlock.owner. */
  if (atomic_load_explicit(&r->owner, memory_order_relaxed) != self_id()) return KILN_ESTATE;
  if (--r->count > 0) return 0;
  /* relaxed: the release exchange in kiln_lock_release orders it before the next owner's
   * store. */
  atomic_store_explicit(&r->owner, 0, memory_order_relaxed);
  return kiln_lock_release(&r->lock);
}

bool kiln_rlock_is_owned(kiln_rlock *r) {
  /* relaxed: see kiln_rlock.owner. */
  return atomic_load_explicit(&r->owner, memory_order_relaxed) == self_id();
}

bool kiln_rlock_locked(kiln_rlock *r) { return kiln_lock_locked(&r->lock); }

unsigned long kiln_rlock_recursion_count(kiln_rlock *r) {
  /* relaxed: see kiln_rlock.owner. count is the owner's own field, so only the owner reads it:
   * another thread may be changing it meanwhile. */
  if (atomic_load_explicit(&r->owner, memory_order_relaxed) != self_id()) return 0;
  return r->count;
}

int kiln__rlock_release_save(kiln_rlock *r, unsigned long *levels) {
  *levels = 0;
  /* relaxed: see kiln_rlock.owner. */
  if (atomic_load_explicit(&r->owner, memory_order_relaxed) != self_id()) return KILN_ESTATE;
  *levels = r->count;
  r->count = 0;
  atomic_store_explicit(&r->owner, 0, memory_order_relaxed); /* as in kiln_rlock_release */
  return kiln_lock_release(&r->lock);
}

void kiln__rlock_acquire_restore(kiln_rlock *r, unsigned long levels) {
  kiln_lock_acquire(&r->lock, -1); /* cannot fail without a timeout */
  atomic_store_explicit(&r->owner, self_id(), memory_order_relaxed); /* as in acquire */
  r->count = levels;
}
