/* wait.c: deadlines, the waiter that every blocking call sleeps on, kiln_wait and
 * kiln_as_completed.
 *
 * An external thread sleeps on its waiter's condition variable; a worker instead runs tasks of its
 * pool and sleeps in the pool (kiln__help_until), so notify wakes the pool too. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

enum { EXTERNAL_SPINS = 200 };

void kiln__waiter_init(kiln__waiter *w) {
  pthread_mutex_init(&w->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&w->cv, &ca);
  pthread_condattr_destroy(&ca);
  w->pool = NULL;
  w->wake = NULL;
  w->wake_arg = NULL;
}

void kiln__waiter_fini(kiln__waiter *w) {
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
}

void kiln__waiter_notify(kiln__waiter *w) {
  pthread_mutex_lock(&w->mu);
  if (w->wake) w->wake(w->wake_arg);         /* a pool fiber waits: it clears this under mu first */
  if (w->pool) kiln__pool_wake_all(w->pool); /* the waiting worker keeps its pool alive */
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

int kiln__wait(kiln__waiter *w, bool (*pred)(void *), void *ctx, double deadline) {
  if (pred(ctx)) return 0;
  kiln__wake_batch_flush(); /* what it waits for may need a fiber this thread has woken */
  if (kiln__ftask_suspendable()) return kiln__ftask_wait(w, pred, ctx, deadline);
  kiln__worker *self = kiln__self.worker;
  if (self) {
    pthread_mutex_lock(&w->mu);
    w->pool = kiln__worker_pool(self);
    pthread_mutex_unlock(&w->mu);
    int rc = kiln__help_until(self, pred, ctx, deadline);
    pthread_mutex_lock(&w->mu);
    w->pool = NULL;
    pthread_mutex_unlock(&w->mu);
    return rc;
  }
  for (int i = 0; i < EXTERNAL_SPINS; i++)
    if (pred(ctx)) return 0;
  int rc = 0;
  pthread_mutex_lock(&w->mu);
  while (!pred(ctx)) {
    if (deadline == INFINITY) {
      pthread_cond_wait(&w->cv, &w->mu);
      continue;
    }
    struct timespec ts;
    kiln__abs_timespec(deadline, &ts);
    if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT && !pred(ctx)) {
      rc = KILN_ETIMEDOUT;
      break;
    }
  }
  pthread_mutex_unlock(&w->mu);
  return rc;
}

/* ---- kiln_wait --------------------------------------------------------------------------------- */

struct wait_ctx {
  kiln_future **uniq;
  size_t n;
  kiln_return_when when;
};

static bool failed(kiln_future *f) {
  return kiln_future_done(f) && !kiln_future_cancelled(f) && kiln_future_result(f, 0, NULL) != 0;
}

static bool wait_pred(void *arg) {
  struct wait_ctx *c = arg;
  size_t done = 0;
  for (size_t i = 0; i < c->n; i++) {
    if (!kiln_future_done(c->uniq[i])) continue;
    done++;
    if (c->when == KILN_FIRST_COMPLETED) return true;
    if (c->when == KILN_FIRST_EXCEPTION && failed(c->uniq[i])) return true;
  }
  return done == c->n;
}

static int cmp_ptr(const void *a, const void *b) {
  uintptr_t x = (uintptr_t) * (kiln_future *const *)a, y = (uintptr_t) * (kiln_future *const *)b;
  return x < y ? -1 : x > y;
}

/* Marks first occurrences: dup[i] is true when fs[i] appeared earlier. */
static int find_duplicates(kiln_future **fs, size_t n, bool *dup) {
  kiln_future **sorted = malloc(n * sizeof *sorted);
  if (!sorted) return KILN_ENOMEM;
  memcpy(sorted, fs, n * sizeof *sorted);
  qsort(sorted, n, sizeof *sorted, cmp_ptr);
  bool any = false;
  for (size_t i = 1; i < n; i++) any |= sorted[i] == sorted[i - 1];
  free(sorted);
  memset(dup, 0, n);
  if (!any) return 0;
  for (size_t i = 0; i < n; i++) /* quadratic only when duplicates exist */
    for (size_t j = 0; j < i && !dup[i]; j++) dup[i] = fs[j] == fs[i];
  return 0;
}

int kiln_wait(kiln_future **fs, size_t n, kiln_return_when when, double timeout, size_t *ndone) {
  *ndone = 0;
  double deadline;
  int rc = kiln__deadline(timeout, &deadline);
  if (rc) return rc;
  if (when != KILN_ALL_COMPLETED && when != KILN_FIRST_COMPLETED && when != KILN_FIRST_EXCEPTION)
    return KILN_EINVAL;
  if (n == 0) return 0;
  bool *dup = malloc(n);
  kiln_future **uniq = malloc(n * sizeof *uniq);
  kiln__listener *nodes = calloc(n, sizeof *nodes);
  if (!dup || !uniq || !nodes || find_duplicates(fs, n, dup)) {
    free(dup), free(uniq), free(nodes);
    return KILN_ENOMEM;
  }
  size_t nu = 0;
  for (size_t i = 0; i < n; i++)
    if (!dup[i]) uniq[nu++] = fs[i];
  struct wait_ctx ctx = {uniq, nu, when};
  if (!wait_pred(&ctx)) {
    kiln__waiter w;
    kiln__waiter_init(&w);
    bool *added = calloc(nu, 1);
    for (size_t i = 0; added && i < nu; i++) {
      nodes[i].kind = KILN__L_WAITER;
      nodes[i].u.waiter = &w;
      added[i] = kiln__add_listener(uniq[i], &nodes[i]);
    }
    rc = added ? (timeout == 0 ? KILN_ETIMEDOUT : kiln__wait(&w, wait_pred, &ctx, deadline))
               : KILN_ENOMEM;
    for (size_t i = 0; added && i < nu; i++)
      if (added[i]) kiln__remove_listener(uniq[i], &nodes[i]);
    free(added);
    kiln__waiter_fini(&w);
    if (rc == KILN_ETIMEDOUT && wait_pred(&ctx)) rc = 0;
  }
  /* Stable reorder from one snapshot of the done flags: distinct done, distinct pending, then
   * the duplicate entries. It is a permutation of fs, so the caller's references stay put. */
  kiln_future **out = malloc(n * sizeof *out);
  bool *snap = malloc(nu ? nu : 1);
  if (out && snap) {
    size_t o = 0;
    for (size_t i = 0; i < nu; i++) snap[i] = kiln_future_done(uniq[i]);
    for (size_t i = 0; i < nu; i++)
      if (snap[i]) out[o++] = uniq[i];
    *ndone = o;
    for (size_t i = 0; i < nu; i++)
      if (!snap[i]) out[o++] = uniq[i];
    for (size_t i = 0; i < n; i++)
      if (dup[i]) out[o++] = fs[i];
    memcpy(fs, out, n * sizeof *fs);
  } else {
    rc = KILN_ENOMEM;
  }
  free(out), free(snap);
  free(dup), free(uniq), free(nodes);
  return rc;
}

/* ---- as_completed ------------------------------------------------------------------------------ */

/* The completion holds a reference to every future added and not yet yielded. Each pending
 * future's done-callback holds a reference to the completion (refs), so destroying it while
 * callbacks are still to come is safe. `set` (open addressing, tombstones) holds the futures added
 * and not yet yielded, to ignore duplicates. Guarded by mu, except nready (read by the waiting
 * predicate without the lock). */
#define TOMB ((kiln_future *)1)

struct kiln_completion {
  pthread_mutex_t mu;
  kiln__waiter waiter;
  _Atomic size_t refs;
  _Atomic size_t nready;
  kiln_future **ready; /* ring */
  size_t rhead, rcap;
  kiln_future **set;
  size_t setcap, setused; /* used counts live and tombstones */
  size_t pending;         /* added, not yet yielded */
  size_t total;
  double deadline;
  bool destroyed;
  char message[64];
};

static size_t hash_ptr(const void *p, size_t cap) {
  uintptr_t x = (uintptr_t)p;
  x ^= x >> 17;
  x *= 0xed5ad4bbU;
  x ^= x >> 11;
  return (size_t)x & (cap - 1);
}

static int set_grow(kiln_completion *c) {
  size_t ncap = c->setcap ? c->setcap * 2 : 64;
  while (c->pending * 2 >= ncap) ncap *= 2;
  kiln_future **n = calloc(ncap, sizeof *n);
  if (!n) return KILN_ENOMEM;
  for (size_t i = 0; i < c->setcap; i++) {
    kiln_future *f = c->set[i];
    if (!f || f == TOMB) continue;
    size_t h = hash_ptr(f, ncap);
    while (n[h]) h = (h + 1) & (ncap - 1);
    n[h] = f;
  }
  free(c->set);
  c->set = n;
  c->setcap = ncap;
  c->setused = c->pending;
  return 0;
}

/* 1 inserted, 0 already there, <0 error */
static int set_insert(kiln_completion *c, kiln_future *f) {
  if ((c->setused + 1) * 2 > c->setcap && set_grow(c)) return KILN_ENOMEM;
  size_t h = hash_ptr(f, c->setcap), slot = SIZE_MAX;
  for (; c->set[h]; h = (h + 1) & (c->setcap - 1)) {
    if (c->set[h] == f) return 0;
    if (c->set[h] == TOMB && slot == SIZE_MAX) slot = h;
  }
  if (slot == SIZE_MAX) {
    slot = h;
    c->setused++;
  }
  c->set[slot] = f;
  return 1;
}

static void set_remove(kiln_completion *c, kiln_future *f) {
  for (size_t h = hash_ptr(f, c->setcap); c->set[h]; h = (h + 1) & (c->setcap - 1))
    if (c->set[h] == f) {
      c->set[h] = TOMB;
      return;
    }
}

static void completion_unref(kiln_completion *c) {
  if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1) return;
  kiln__waiter_fini(&c->waiter);
  pthread_mutex_destroy(&c->mu);
  free(c->ready);
  free(c->set);
  free(c);
}

static void completion_on_done(kiln_future *f, void *arg) {
  kiln_completion *c = arg;
  pthread_mutex_lock(&c->mu);
  bool drop = c->destroyed;
  if (!drop) {
    size_t n = atomic_load_explicit(&c->nready, memory_order_relaxed);
    c->ready[(c->rhead + n) % c->rcap] = f; /* room reserved in kiln_completion_add */
    /* release: pairs with the acquire load in ready_pred */
    atomic_store_explicit(&c->nready, n + 1, memory_order_release);
  }
  pthread_mutex_unlock(&c->mu);
  if (drop) kiln_future_release(f);
  else kiln__waiter_notify(&c->waiter);
  completion_unref(c);
}

/* Reserves a ready slot for every pending future, so the callback never allocates. */
static int reserve_ready(kiln_completion *c) {
  if (c->pending < c->rcap) return 0;
  size_t ncap = c->rcap ? c->rcap * 2 : 64;
  kiln_future **n = malloc(ncap * sizeof *n);
  if (!n) return KILN_ENOMEM;
  size_t k = atomic_load_explicit(&c->nready, memory_order_relaxed);
  for (size_t i = 0; i < k; i++) n[i] = c->ready[(c->rhead + i) % c->rcap];
  free(c->ready);
  c->ready = n;
  c->rcap = ncap;
  c->rhead = 0;
  return 0;
}

int kiln_completion_add(kiln_completion *c, kiln_future *f) {
  pthread_mutex_lock(&c->mu);
  int rc = reserve_ready(c);
  if (rc == 0) rc = set_insert(c, f);
  if (rc <= 0) {
    pthread_mutex_unlock(&c->mu);
    return rc;
  }
  c->pending++;
  c->total++;
  pthread_mutex_unlock(&c->mu);
  kiln_future_retain(f);
  atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
  rc = kiln_future_on_done(f, completion_on_done, c);
  if (rc) { /* out of memory: roll back */
    pthread_mutex_lock(&c->mu);
    set_remove(c, f);
    c->pending--;
    c->total--;
    pthread_mutex_unlock(&c->mu);
    kiln_future_release(f);
    completion_unref(c);
  }
  return rc;
}

int kiln_as_completed(kiln_future *const *fs, size_t n, double timeout, kiln_completion **out) {
  *out = NULL;
  double deadline;
  int rc = kiln__deadline(timeout, &deadline);
  if (rc) return rc;
  kiln_completion *c = calloc(1, sizeof *c);
  if (!c) return KILN_ENOMEM;
  pthread_mutex_init(&c->mu, NULL);
  kiln__waiter_init(&c->waiter);
  atomic_init(&c->refs, 1);
  atomic_init(&c->nready, 0);
  c->deadline = deadline;
  for (size_t i = 0; i < n; i++) {
    rc = kiln_completion_add(c, fs[i]);
    if (rc) {
      kiln_completion_destroy(c);
      return rc;
    }
  }
  *out = c;
  return 0;
}

static bool ready_pred(void *arg) {
  kiln_completion *c = arg;
  return atomic_load_explicit(&c->nready, memory_order_acquire) > 0;
}

int kiln_completion_next(kiln_completion *c, kiln_future **f) {
  *f = NULL;
  for (;;) {
    pthread_mutex_lock(&c->mu);
    size_t n = atomic_load_explicit(&c->nready, memory_order_relaxed);
    if (n > 0) {
      *f = c->ready[c->rhead];
      c->rhead = (c->rhead + 1) % c->rcap;
      atomic_store_explicit(&c->nready, n - 1, memory_order_relaxed);
      set_remove(c, *f);
      c->pending--;
      c->message[0] = 0;
      pthread_mutex_unlock(&c->mu);
      return 0;
    }
    size_t pending = c->pending, total = c->total;
    if (pending == 0) {
      pthread_mutex_unlock(&c->mu);
      return KILN_EEOF;
    }
    pthread_mutex_unlock(&c->mu);
    int rc = c->deadline <= kiln__now() ? KILN_ETIMEDOUT
                                        : kiln__wait(&c->waiter, ready_pred, c, c->deadline);
    if (rc == KILN_ETIMEDOUT && !ready_pred(c)) {
      pthread_mutex_lock(&c->mu);
      snprintf(c->message, sizeof c->message, "%zu (of %zu) futures unfinished", pending, total);
      pthread_mutex_unlock(&c->mu);
      return KILN_ETIMEDOUT;
    }
  }
}

const char *kiln_completion_message(kiln_completion *c) { return c->message; }

size_t kiln_completion_pending(kiln_completion *c) {
  pthread_mutex_lock(&c->mu);
  size_t n = c->pending;
  pthread_mutex_unlock(&c->mu);
  return n;
}

void kiln_completion_destroy(kiln_completion *c) {
  if (!c) return;
  pthread_mutex_lock(&c->mu);
  c->destroyed = true;
  size_t n = atomic_load_explicit(&c->nready, memory_order_relaxed);
  kiln_future **drop = malloc((n ? n : 1) * sizeof *drop);
  for (size_t i = 0; i < n; i++) {
    kiln_future *f = c->ready[(c->rhead + i) % c->rcap];
    if (drop) drop[i] = f;
    else kiln_future_release(f); /* no memory: release under the lock (no user code runs) */
  }
  atomic_store_explicit(&c->nready, 0, memory_order_relaxed);
  /* futures still pending: take our callback back, with its references */
  size_t npend = 0;
  kiln_future **pend = malloc((c->setcap ? c->setcap : 1) * sizeof *pend);
  for (size_t i = 0; pend && i < c->setcap; i++) {
    kiln_future *f = c->set[i];
    bool queued = false;
    for (size_t j = 0; j < n && !queued; j++) queued = drop && drop[j] == f;
    if (f && f != TOMB && !queued) pend[npend++] = f;
  }
  pthread_mutex_unlock(&c->mu);
  for (size_t i = 0; i < npend; i++) {
    if (!kiln__remove_callback(pend[i], completion_on_done, c)) continue; /* it is running */
    kiln_future_release(pend[i]);
    completion_unref(c);
  }
  free(pend);
  for (size_t i = 0; drop && i < n; i++) kiln_future_release(drop[i]);
  free(drop);
  completion_unref(c);
}
