/* psem.c: process-shared semaphore, event and barrier (multiprocessing.Semaphore /
 * BoundedSemaphore, Event, Barrier).
 *
 * Each is a monitor (pmon.c) guarding a few counters; waiters re-check after every wake. No
 * owner: a process that dies holding a semaphore unit takes the unit with it, as in Python.
 *
 * The barrier is threading.Barrier's state machine: FILLING while parties arrive, DRAINING while
 * the released ones leave (late arrivals wait for that), RESETTING after a reset with waiters
 * inside, BROKEN after abort, a timeout, or the death of a waiting party's process. Parties are
 * recorded by arrival index (the first BAR_SLOTS of a round) with their process identity, so that
 * a party that died in the wait (it will never arrive at the next round, nor leave this one) is
 * noticed: while filling, each waiter looks at the one that arrived before it (the first at the
 * last), one look at /proc per 20 ms, and a dead one breaks the barrier; while a round drains or
 * resets, the waiters for it take dead parties out, so it reopens. */
#define _GNU_SOURCE
#include <limits.h>
#include <math.h>
#include <stdlib.h>

#include "proc_internal.h"
#include "pshm_internal.h"

/* ---- semaphore ---- */

typedef struct sem_state {
  kiln__phdr h;
  kiln__mon mon;
  int value;
  int bound; /* -1: unbounded */
} sem_state;

struct kiln_psem {
  kiln__pobj obj;
};

typedef struct sem_args {
  int value;
  bool bounded;
} sem_args;

static sem_state *sst(const kiln_psem *s) { return s->obj.mem; }

static int psem_init_cb(void *mem, const void *arg) {
  const sem_args *a = arg;
  if (a->value < 0) return KILN_EINVAL;
  sem_state *s = mem;
  int rc = kiln__mon_init(&s->mon);
  if (rc != 0) return rc;
  s->value = a->value;
  s->bound = a->bounded ? a->value : -1;
  kiln__pobj_publish(mem, KILN__PT_SEM);
  return 0;
}

size_t kiln_psem_size(void) { return kiln__pround(sizeof(sem_state)); }
int kiln_psem_init(void *mem, int value, bool bounded) {
  return psem_init_cb(mem, &(sem_args){value, bounded});
}
int kiln_psem_at(void *mem, kiln_psem **out) {
  return kiln__pobj_at(sizeof **out, mem, KILN__PT_SEM, (void **)out);
}
int kiln_psem_create(const char *name, int value, bool bounded, kiln_psem **out) {
  *out = NULL;
  if (value < 0) return KILN_EINVAL;
  return kiln__pobj_new(sizeof **out, name, kiln_psem_size(), psem_init_cb,
                        &(sem_args){value, bounded}, (void **)out);
}
int kiln_psem_attach(const char *name, kiln_psem **out) {
  return kiln__pobj_open(sizeof **out, name, KILN__PT_SEM, kiln_psem_size(), (void **)out);
}
kiln_shm *kiln_psem_shm(const kiln_psem *s) { return s->obj.shm; }
void kiln_psem_destroy(kiln_psem *s) { kiln__pobj_free(s); }

int kiln_psem_acquire(kiln_psem *sem, double timeout) {
  double deadline;
  if (kiln__deadline(timeout, &deadline) != 0) return KILN_EINVAL;
  sem_state *s = sst(sem);
  int rc = 0;
  kiln__mon_lock(&s->mon);
  while (s->value == 0 && rc == 0) {
    if (kiln__now() >= deadline) rc = KILN_ETIMEDOUT;
    else kiln__mon_wait(&s->mon, deadline, false);
  }
  if (rc == 0) s->value--;
  kiln__mon_unlock(&s->mon);
  return rc;
}

int kiln_psem_release(kiln_psem *sem, int n) {
  if (n < 1) return KILN_EINVAL;
  sem_state *s = sst(sem);
  int rc = 0;
  kiln__mon_lock(&s->mon);
  if (s->value > INT_MAX - n || (s->bound >= 0 && s->value + n > s->bound)) rc = KILN_EINVAL;
  else {
    s->value += n;
    kiln__mon_wake(&s->mon);
  }
  kiln__mon_unlock(&s->mon);
  return rc;
}

int kiln_psem_value(kiln_psem *sem) {
  sem_state *s = sst(sem);
  kiln__mon_lock(&s->mon);
  int v = s->value;
  kiln__mon_unlock(&s->mon);
  return v;
}

/* ---- event ---- */

typedef struct event_state {
  kiln__phdr h;
  kiln__mon mon;
  uint32_t flag;
  uint64_t sets; /* bumped by each set: a waiter woken by it returns 0 even if cleared since */
} event_state;

struct kiln_pevent {
  kiln__pobj obj;
};

static event_state *est(const kiln_pevent *e) { return e->obj.mem; }

static int pevent_init_cb(void *mem, const void *arg) {
  (void)arg;
  event_state *s = mem;
  int rc = kiln__mon_init(&s->mon);
  if (rc != 0) return rc;
  s->flag = 0;
  s->sets = 0;
  kiln__pobj_publish(mem, KILN__PT_EVENT);
  return 0;
}

size_t kiln_pevent_size(void) { return kiln__pround(sizeof(event_state)); }
int kiln_pevent_init(void *mem) { return pevent_init_cb(mem, NULL); }
int kiln_pevent_at(void *mem, kiln_pevent **out) {
  return kiln__pobj_at(sizeof **out, mem, KILN__PT_EVENT, (void **)out);
}
int kiln_pevent_create(const char *name, kiln_pevent **out) {
  return kiln__pobj_new(sizeof **out, name, kiln_pevent_size(), pevent_init_cb, NULL, (void **)out);
}
int kiln_pevent_attach(const char *name, kiln_pevent **out) {
  return kiln__pobj_open(sizeof **out, name, KILN__PT_EVENT, kiln_pevent_size(), (void **)out);
}
kiln_shm *kiln_pevent_shm(const kiln_pevent *e) { return e->obj.shm; }
void kiln_pevent_destroy(kiln_pevent *e) { kiln__pobj_free(e); }

void kiln_pevent_set(kiln_pevent *e) {
  event_state *s = est(e);
  kiln__mon_lock(&s->mon);
  s->flag = 1;
  s->sets++;
  kiln__mon_wake(&s->mon);
  kiln__mon_unlock(&s->mon);
}

void kiln_pevent_clear(kiln_pevent *e) {
  event_state *s = est(e);
  kiln__mon_lock(&s->mon);
  s->flag = 0;
  kiln__mon_unlock(&s->mon);
}

bool kiln_pevent_is_set(kiln_pevent *e) {
  event_state *s = est(e);
  kiln__mon_lock(&s->mon);
  bool r = s->flag;
  kiln__mon_unlock(&s->mon);
  return r;
}

int kiln_pevent_wait(kiln_pevent *e, double timeout) {
  double deadline;
  if (kiln__deadline(timeout, &deadline) != 0) return KILN_EINVAL;
  event_state *s = est(e);
  kiln__mon_lock(&s->mon);
  uint64_t seen = s->sets;
  int rc = 0;
  while (!s->flag && s->sets == seen) {
    if (kiln__now() >= deadline) {
      rc = KILN_ETIMEDOUT;
      break;
    }
    kiln__mon_wait(&s->mon, deadline, false);
  }
  kiln__mon_unlock(&s->mon);
  return rc;
}

/* ---- barrier ---- */

enum { BAR_FILLING = 0, BAR_DRAINING = 1, BAR_RESETTING = -1, BAR_BROKEN = -2 };
enum { BAR_SLOTS = 64 }; /* parties tracked for death; those that arrive later are not */

/* Invariant: while FILLING, slots [0, min(count, BAR_SLOTS)) hold the parties inside (nobody
 * leaves a filling round); otherwise a slot is cleared when its party leaves or is taken out. */
typedef struct barrier_state {
  kiln__phdr h;
  kiln__mon mon;
  int parties;
  int count; /* inside wait: arrived and not yet left */
  int state;
  double timeout;
  kiln__powner inside[BAR_SLOTS]; /* by arrival index; pid 0: none */
} barrier_state;

struct kiln_pbarrier {
  kiln__pobj obj;
};

typedef struct bar_args {
  int parties;
  double timeout;
} bar_args;

static barrier_state *bst(const kiln_pbarrier *b) { return b->obj.mem; }

static int pbarrier_init_cb(void *mem, const void *arg) {
  const bar_args *a = arg;
  if (a->parties < 1 || isnan(a->timeout)) return KILN_EINVAL;
  barrier_state *s = mem;
  int rc = kiln__mon_init(&s->mon);
  if (rc != 0) return rc;
  s->parties = a->parties;
  s->count = 0;
  s->state = BAR_FILLING;
  s->timeout = a->timeout;
  for (int i = 0; i < BAR_SLOTS; i++) s->inside[i] = (kiln__powner){0};
  kiln__pobj_publish(mem, KILN__PT_BARRIER);
  return 0;
}

size_t kiln_pbarrier_size(void) { return kiln__pround(sizeof(barrier_state)); }
int kiln_pbarrier_init(void *mem, int parties, double timeout) {
  return pbarrier_init_cb(mem, &(bar_args){parties, timeout});
}
int kiln_pbarrier_at(void *mem, kiln_pbarrier **out) {
  return kiln__pobj_at(sizeof **out, mem, KILN__PT_BARRIER, (void **)out);
}
int kiln_pbarrier_create(const char *name, int parties, double timeout, kiln_pbarrier **out) {
  *out = NULL;
  if (parties < 1 || isnan(timeout)) return KILN_EINVAL;
  return kiln__pobj_new(sizeof **out, name, kiln_pbarrier_size(), pbarrier_init_cb,
                        &(bar_args){parties, timeout}, (void **)out);
}
int kiln_pbarrier_attach(const char *name, kiln_pbarrier **out) {
  return kiln__pobj_open(sizeof **out, name, KILN__PT_BARRIER, kiln_pbarrier_size(), (void **)out);
}
kiln_shm *kiln_pbarrier_shm(const kiln_pbarrier *b) { return b->obj.shm; }
void kiln_pbarrier_destroy(kiln_pbarrier *b) { kiln__pobj_free(b); }

/* With the monitor held: party i is out of the barrier (it left, or its process died); the last
 * one out of a drained or reset round reopens the barrier. */
static void bar_leave(barrier_state *s, int i) {
  if (i < BAR_SLOTS) s->inside[i] = (kiln__powner){0};
  if (--s->count == 0 && (s->state == BAR_DRAINING || s->state == BAR_RESETTING)) {
    s->state = BAR_FILLING;
    kiln__mon_wake(&s->mon);
  }
}

/* With the monitor held: takes out every recorded party whose process has died. */
static void bar_reap(barrier_state *s) {
  for (int i = 0; i < BAR_SLOTS; i++)
    if (s->inside[i].pid != 0 && kiln__powner_dead(&s->inside[i])) bar_leave(s, i);
}

/* With the monitor held, while filling: the party waiter i watches (the one that arrived before
 * it; the first watches the last), or -1. Every tracked party is watched by one that arrived
 * after it, or by the first when it is the last, so a dead party with a live watcher is seen. */
static int bar_watched(const barrier_state *s, int i) {
  int n = s->count < BAR_SLOTS ? s->count : BAR_SLOTS;
  if (i >= n || n < 2) return -1;
  return i > 0 ? i - 1 : n - 1;
}

/* With the monitor held: a waiter's part after arriving as index i (not the last). It polls
 * only when its watched party may be in another process (the first always does: later arrivals
 * do not wake it), so that the threads of one process wait without waking. */
static int bar_sleep(barrier_state *s, int i, double deadline) {
  bool check = false; /* after a quiet slice, not at once: a slow party is the usual case */
  while (s->state == BAR_FILLING) {
    int w = bar_watched(s, i);
    if (check && w >= 0 && kiln__powner_dead(&s->inside[w])) {
      bar_leave(s, w); /* it never will; a reset then finds only live parties inside */
      s->state = BAR_BROKEN;
      kiln__mon_wake(&s->mon);
      return KILN_EBROKEN;
    }
    if (kiln__now() >= deadline) {
      s->state = BAR_BROKEN; /* a timeout breaks the barrier for everyone (BAR-09) */
      kiln__mon_wake(&s->mon);
      return KILN_EBROKEN;
    }
    bool poll = i == 0 || (w >= 0 && (s->inside[w].pid != s->inside[i].pid ||
                                      s->inside[w].start != s->inside[i].start));
    check = !kiln__mon_wait(&s->mon, deadline, poll) || check;
  }
  return s->state < 0 ? KILN_EBROKEN : 0;
}

int kiln_pbarrier_wait_timeout(kiln_pbarrier *b, double timeout, int *index) {
  if (index) *index = -1;
  double deadline;
  if (kiln__deadline(timeout, &deadline) != 0) return KILN_EINVAL;
  barrier_state *s = bst(b);
  kiln__mon_lock(&s->mon);
  /* wait for the previous round to drain, or a reset to finish; a party that died inside never
   * leaves, so after each quiet slice the dead are taken out */
  while (s->state == BAR_DRAINING || s->state == BAR_RESETTING) {
    if (!kiln__mon_wait(&s->mon, INFINITY, true)) bar_reap(s);
  }
  int rc = 0;
  if (s->state == BAR_BROKEN) rc = KILN_EBROKEN;
  else {
    int i = s->count++;
    if (i < BAR_SLOTS) kiln__powner_self(&s->inside[i]);
    if (i + 1 == s->parties) {
      s->state = BAR_DRAINING;
      kiln__mon_wake(&s->mon);
    } else {
      rc = bar_sleep(s, i, deadline);
    }
    if (rc == 0 && index) *index = i;
    bar_leave(s, i);
  }
  kiln__mon_unlock(&s->mon);
  return rc;
}

int kiln_pbarrier_wait(kiln_pbarrier *b, int *index) {
  return kiln_pbarrier_wait_timeout(b, bst(b)->timeout, index);
}

void kiln_pbarrier_abort(kiln_pbarrier *b) {
  barrier_state *s = bst(b);
  kiln__mon_lock(&s->mon);
  s->state = BAR_BROKEN;
  kiln__mon_wake(&s->mon);
  kiln__mon_unlock(&s->mon);
}

void kiln_pbarrier_reset(kiln_pbarrier *b) {
  barrier_state *s = bst(b);
  kiln__mon_lock(&s->mon);
  if (s->count > 0) {
    if (s->state == BAR_FILLING || s->state == BAR_BROKEN) s->state = BAR_RESETTING;
  } else {
    s->state = BAR_FILLING;
  }
  kiln__mon_wake(&s->mon);
  kiln__mon_unlock(&s->mon);
}

bool kiln_pbarrier_broken(kiln_pbarrier *b) {
  barrier_state *s = bst(b);
  kiln__mon_lock(&s->mon);
  bool r = s->state == BAR_BROKEN;
  kiln__mon_unlock(&s->mon);
  return r;
}

int kiln_pbarrier_n_waiting(kiln_pbarrier *b) {
  barrier_state *s = bst(b);
  kiln__mon_lock(&s->mon);
  int n = s->state == BAR_FILLING ? s->count : 0;
  kiln__mon_unlock(&s->mon);
  return n;
}

int kiln_pbarrier_parties(kiln_pbarrier *b) { return bst(b)->parties; }

int kiln__pevent_sleepers(kiln_pevent *e) {
  event_state *s = est(e);
  kiln__mon_lock(&s->mon);
  int n = (int)atomic_load_explicit(&s->mon.nsleep, memory_order_relaxed);
  kiln__mon_unlock(&s->mon);
  return n;
}
