/* future.c: futures and promises: states, results, listeners (done-callbacks, dependents,
 * waiters), cancellation and reference counting.
 *
 * A future moves PENDING -> RUNNING -> FINISHED, or PENDING -> CANCELLED, or PENDING/RUNNING ->
 * FINISHED directly (promises, failed dependencies, broken pools). Every move to a final state goes
 * through a claim (CAS into RUNNING or COMPLETING) so that exactly one thread writes the result,
 * then kiln__publish() makes it visible with one atomic add and drains the listeners.
 * publish() is iterative: dependents that fail because their dependency failed are chained on a
 * local worklist, so a chain of 10^5 failing dependents does not recurse. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

bool kiln__is_done(uint32_t s) {
  uint32_t st = s & KILN__STATE_MASK;
  return st == KILN__FINISHED || st == KILN__CANCELLED;
}

char *kiln__vformat(const char *fmt, va_list ap) {
  char *s = NULL;
  if (!fmt) return NULL;
  if (vasprintf(&s, fmt, ap) < 0) return NULL;
  return s;
}

char *kiln__format(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = kiln__vformat(fmt, ap);
  va_end(ap);
  return s;
}

/* Moves f from one of the states in `allowed` (a mask of 1 << state) to COMPLETING. */
bool kiln__claim(kiln_future *f, uint32_t allowed) {
  /* acquire: pairs with the release in publish, for a caller that then reads the state */
  uint32_t s = atomic_load_explicit(&f->state, memory_order_acquire);
  for (;;) {
    if (!(allowed & (1u << (s & KILN__STATE_MASK)))) return false;
    uint32_t n = (s & ~(uint32_t)KILN__STATE_MASK) | KILN__COMPLETING;
    if (atomic_compare_exchange_weak_explicit(&f->state, &s, n, memory_order_acq_rel,
                                              memory_order_acquire))
      return true;
  }
}

/* Notifies waiters under f->mu (a waiter removes its node under the same lock before its stack
 * frame dies), then returns the callbacks and dependents for the caller to run outside the lock. */
static kiln__listener *detach_listeners(kiln_future *f) {
  pthread_mutex_lock(&f->mu);
  kiln__listener *l = f->head, *keep = NULL, **tail = &keep;
  f->head = f->tail = NULL;
  while (l) {
    kiln__listener *next = l->next;
    if (l->kind == KILN__L_WAITER) {
      kiln__waiter_notify(l->u.waiter);
    } else {
      l->next = NULL;
      *tail = l;
      tail = &l->next;
    }
    l = next;
  }
  pthread_mutex_unlock(&f->mu);
  return keep;
}

/* The message of a dependent that fails because dependency `index` (0-based) of ndeps did. */
char *kiln__dependency_message(kiln_future *dep, size_t index, size_t ndeps) {
  uint32_t st = atomic_load_explicit(&dep->state, memory_order_acquire) & KILN__STATE_MASK;
  if (st == KILN__CANCELLED)
    return kiln__format("dependency %zu of %zu was cancelled", index + 1, ndeps);
  return kiln__format("dependency %zu of %zu failed: %s: %.160s", index + 1, ndeps,
                      kiln_err_name(dep->code),
                      dep->message ? dep->message : kiln_strerror(dep->code));
}

static void fail_dependent(kiln_future *d, size_t index, kiln_future *dep, kiln_future **work) {
  if (!kiln__claim(d, 1u << KILN__PENDING)) return;
  char *msg = kiln__dependency_message(dep, index, d->ndeps);
  d->code = KILN_EDEPENDENCY;
  d->message = msg;
  kiln_future_retain(d); /* held by the worklist until published */
  d->cascade = *work;
  *work = d;
}

/* One dependency of d is done. */
static void dependency_done(kiln_future *d, size_t index, kiln_future *dep, kiln_future **work) {
  uint32_t st = atomic_load_explicit(&dep->state, memory_order_acquire) & KILN__STATE_MASK;
  bool ok = st == KILN__FINISHED && dep->code == 0;
  if (!ok) fail_dependent(d, index, dep, work);
  /* acq_rel: the last decrement sees every dependency's result before the task runs */
  if (atomic_fetch_sub_explicit(&d->deps_left, 1, memory_order_acq_rel) == 1)
    kiln__schedule_ready(d);
}

static void run_listeners(kiln_future *f, kiln__listener *l, kiln_future **work) {
  while (l) {
    kiln__listener *next = l->next;
    if (l->kind == KILN__L_CALLBACK) {
      l->u.cb.fn(f, l->u.cb.arg);
      free(l);
    } else {
      dependency_done(l->u.dependent, l->index, f, work);
    }
    l = next;
  }
}

static void publish_one(kiln_future *f, uint32_t from, uint32_t final, kiln_future **work) {
  /* acq_rel: release publishes the result fields; acquire sees listeners queued before */
  uint32_t old = atomic_fetch_add_explicit(&f->state, final - from, memory_order_acq_rel);
  if (old & KILN__HAS_LISTENERS) run_listeners(f, detach_listeners(f), work);
  if (f->pool && f->counted) kiln__task_done(f->pool);
}

/* Makes f's final state visible (from RUNNING or COMPLETING) and drains listeners, iteratively
 * for dependents that fail in consequence. The caller holds a reference to f. */
void kiln__publish(kiln_future *f, uint32_t from, uint32_t final) {
  kiln_future *work = NULL;
  publish_one(f, from, final, &work);
  while (work) {
    kiln_future *d = work;
    work = d->cascade;
    d->cascade = NULL;
    publish_one(d, KILN__COMPLETING, KILN__FINISHED, &work);
    kiln_future_release(d); /* the worklist's reference */
  }
}

void kiln__fail_claimed(kiln_future *f, int code, char *message) {
  f->code = code;
  f->message = message;
  kiln__publish(f, KILN__COMPLETING, KILN__FINISHED);
}

/* 1: queued; 0: f is already done and l was not queued (the caller handles it now). */
int kiln__add_listener(kiln_future *f, kiln__listener *l) {
  l->next = NULL;
  pthread_mutex_lock(&f->mu);
  uint32_t s = atomic_load_explicit(&f->state, memory_order_acquire);
  do {
    if (kiln__is_done(s)) {
      pthread_mutex_unlock(&f->mu);
      return 0;
    }
    /* acq_rel on success: pairs with publish's fetch_add, which then sees the flag */
  } while (!atomic_compare_exchange_weak_explicit(&f->state, &s, s | KILN__HAS_LISTENERS,
                                                  memory_order_acq_rel, memory_order_acquire));
  if (f->tail) f->tail->next = l;
  else f->head = l;
  f->tail = l;
  pthread_mutex_unlock(&f->mu);
  return 1;
}

void kiln__remove_listener(kiln_future *f, kiln__listener *l) {
  pthread_mutex_lock(&f->mu);
  kiln__listener *prev = NULL;
  for (kiln__listener *it = f->head; it; prev = it, it = it->next) {
    if (it != l) continue;
    if (prev) prev->next = it->next;
    else f->head = it->next;
    if (f->tail == it) f->tail = prev;
    break;
  }
  pthread_mutex_unlock(&f->mu);
}

/* ---- public: references and state ----------------------------------------------------------- */

kiln_future *kiln_future_retain(kiln_future *f) {
  /* relaxed: a new reference is made from an existing one, which keeps f alive */
  atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
  return f;
}

void kiln_future_release(kiln_future *f) {
  if (!f) return;
  /* The last reference is most often dropped by the thread that sees it is the only one left
   * (a caller after the task ran, or the runner's queue reference after the caller let go): a
   * count of 1 read by a holder can only be its own reference, and only a holder can make a new
   * one, so nobody else can touch f any more and the read-modify-write is not needed (the
   * is-unique test of reference-counted pointers, e.g. Rust's Arc::get_mut). The acquire load
   * pairs with the acq_rel decrement of the thread that dropped the previous reference, as the
   * decrement below does; either way the last release sees every other thread's use of f. */
  if (atomic_load_explicit(&f->refs, memory_order_acquire) != 1 &&
      atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
    return;
  if (f->value_free && f->value) f->value_free(f->value);
  if (f->message) free(f->message);
  if (f->dep_nodes && f->dep_nodes != f->inline_nodes) free(f->dep_nodes);
  kiln__future_free(f);
}

static uint32_t state_of(kiln_future *f) {
  return atomic_load_explicit(&f->state, memory_order_acquire) & KILN__STATE_MASK;
}

bool kiln_future_done(kiln_future *f) { return kiln__is_done(state_of(f)); }
bool kiln_future_running(kiln_future *f) {
  uint32_t s = state_of(f);
  return s == KILN__RUNNING || s == KILN__COMPLETING;
}
bool kiln_future_cancelled(kiln_future *f) { return state_of(f) == KILN__CANCELLED; }

bool kiln_future_cancel(kiln_future *f) {
  if (kiln__claim(f, 1u << KILN__PENDING)) {
    f->code = KILN_ECANCELLED;
    kiln__publish(f, KILN__COMPLETING, KILN__CANCELLED);
    return true;
  }
  return state_of(f) == KILN__CANCELLED;
}

int kiln_future_on_done(kiln_future *f, kiln_done_fn fn, void *arg) {
  kiln__listener *l = calloc(1, sizeof(*l));
  if (!l) return KILN_ENOMEM;
  l->kind = KILN__L_CALLBACK;
  l->heap = true;
  l->u.cb.fn = fn;
  l->u.cb.arg = arg;
  if (!kiln__add_listener(f, l)) {
    free(l);
    fn(f, arg);
  }
  return 0;
}

/* ---- public: waiting ------------------------------------------------------------------------- */

static bool future_done_pred(void *f) { return kiln_future_done(f); }

static int wait_done(kiln_future *f, double timeout) {
  if (kiln_future_done(f)) return 0;
  double deadline;
  int rc = kiln__deadline(timeout, &deadline);
  if (rc) return rc;
  if (timeout == 0) return KILN_ETIMEDOUT;
  /* A worker first runs other tasks while f is pending (a pool fiber suspends instead); only when it runs out of work does it
   * pay for a waiter and a listener, which it needs to be woken from sleep. */
  if (kiln__self.worker && !kiln__ftask_suspendable() &&
      kiln__help_briefly(kiln__self.worker, future_done_pred, f, deadline))
    return 0;
  kiln__waiter w;
  kiln__waiter_init(&w);
  kiln__listener node = {.kind = KILN__L_WAITER, .u.waiter = &w};
  if (kiln__add_listener(f, &node)) {
    rc = kiln__wait(&w, future_done_pred, f, deadline);
    kiln__remove_listener(f, &node);
  }
  kiln__waiter_fini(&w);
  return rc;
}

int kiln_future_result(kiln_future *f, double timeout, void **value) {
  if (value) *value = NULL;
  int rc = wait_done(f, timeout);
  if (rc) return rc;
  if (state_of(f) == KILN__CANCELLED) return KILN_ECANCELLED;
  if (f->code == 0 && value) *value = f->value;
  return f->code;
}

int kiln_future_error(kiln_future *f, double timeout, const char **message) {
  if (message) *message = NULL;
  int rc = wait_done(f, timeout);
  if (rc) return rc;
  if (state_of(f) == KILN__CANCELLED) return KILN_ECANCELLED;
  if (f->code != 0 && message) *message = f->message ? f->message : kiln_strerror(f->code);
  return f->code;
}

/* ---- public: promises ------------------------------------------------------------------------ */

int kiln_promise_create(kiln_future **out) {
  *out = NULL;
  kiln_future *f = kiln__future_alloc();
  if (!f) return KILN_ENOMEM;
  atomic_store_explicit(&f->refs, 1, memory_order_relaxed);
  *out = f;
  return 0;
}

bool kiln_promise_set_running(kiln_future *f) {
  uint32_t s = atomic_load_explicit(&f->state, memory_order_acquire);
  while ((s & KILN__STATE_MASK) == KILN__PENDING) {
    uint32_t n = (s & ~(uint32_t)KILN__STATE_MASK) | KILN__RUNNING;
    if (atomic_compare_exchange_weak_explicit(&f->state, &s, n, memory_order_acq_rel,
                                              memory_order_acquire))
      return true;
  }
  return (s & KILN__STATE_MASK) == KILN__RUNNING;
}

int kiln_promise_resolve_owned(kiln_future *f, void *value, void (*dtor)(void *)) {
  if (!kiln__claim(f, (1u << KILN__PENDING) | (1u << KILN__RUNNING))) return KILN_ESTATE;
  f->code = 0;
  f->value = value;
  f->value_free = dtor;
  kiln__publish(f, KILN__COMPLETING, KILN__FINISHED);
  return 0;
}

int kiln_promise_resolve(kiln_future *f, void *value) {
  return kiln_promise_resolve_owned(f, value, NULL);
}

int kiln_promise_reject(kiln_future *f, int code, const char *fmt, ...) {
  if (code >= 0) return KILN_EINVAL;
  if (!kiln__claim(f, (1u << KILN__PENDING) | (1u << KILN__RUNNING))) return KILN_ESTATE;
  va_list ap;
  va_start(ap, fmt);
  char *msg = kiln__vformat(fmt, ap);
  va_end(ap);
  kiln__fail_claimed(f, code, msg);
  return 0;
}

/* Removes a done-callback (fn, arg) not yet run; true if it was found. */
bool kiln__remove_callback(kiln_future *f, kiln_done_fn fn, void *arg) {
  pthread_mutex_lock(&f->mu);
  kiln__listener *prev = NULL, *it = f->head;
  for (; it; prev = it, it = it->next)
    if (it->kind == KILN__L_CALLBACK && it->u.cb.fn == fn && it->u.cb.arg == arg) break;
  if (it) {
    if (prev) prev->next = it->next;
    else f->head = it->next;
    if (f->tail == it) f->tail = prev;
  }
  pthread_mutex_unlock(&f->mu);
  free(it);
  return it != NULL;
}
