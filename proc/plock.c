/* plock.c: process-shared lock, rlock and condition (multiprocessing.Lock, RLock, Condition).
 *
 * Each is a monitor (pmon.c) guarding a lock core: a count and the holder's identity. A waiter
 * sleeps on the monitor and takes over from a holder whose process died, with KILN_EOWNERDEAD.
 *
 * The condition keeps its waiters in a fixed table of slots in the shared state, each with an
 * arrival ticket: notify(n) marks the n oldest waiting slots notified and wakes the monitor, so
 * exactly min(n, waiting) waiters return 0 (COND-05), threads and processes alike. A waiter
 * whose deadline passes frees its slot under the monitor, so a notify never picks a waiter that
 * already gave up; a slot whose waiter's process died is passed over (and freed) by notify, at
 * the cost of a look at /proc for each waiter of another process it wakes. */
#define _GNU_SOURCE
#include <math.h>
#include <stdlib.h>

#include "proc_internal.h"
#include "pshm_internal.h"

typedef struct lock_state {
  kiln__phdr h;
  kiln__mon mon;
  kiln__plk lk;
} lock_state;

struct kiln_plock {
  kiln__pobj obj;
};
struct kiln_prlock {
  kiln__pobj obj;
};

static lock_state *lst(const kiln__pobj *o) { return o->mem; }

static int lock_init(void *mem, bool recursive, uint32_t type) {
  lock_state *s = mem;
  int rc = kiln__mon_init(&s->mon);
  if (rc != 0) return rc;
  s->lk = (kiln__plk){.recursive = recursive};
  kiln__pobj_publish(mem, type);
  return 0;
}

static int lock_acquire(lock_state *s, double timeout) {
  double deadline;
  if (kiln__deadline(timeout, &deadline) != 0) return KILN_EINVAL;
  kiln__mon_lock(&s->mon);
  int rc = kiln__plk_acquire(&s->mon, &s->lk, deadline);
  kiln__mon_unlock(&s->mon);
  return rc;
}

static int lock_release(lock_state *s) {
  kiln__mon_lock(&s->mon);
  int rc = kiln__plk_release(&s->mon, &s->lk);
  kiln__mon_unlock(&s->mon);
  return rc;
}

static bool lock_locked(lock_state *s, bool mine) {
  kiln__mon_lock(&s->mon);
  bool r = s->lk.count && (!mine || kiln__powner_is_me(&s->lk.owner));
  kiln__mon_unlock(&s->mon);
  return r;
}

/* ---- lock ---- */

static int plock_init_cb(void *mem, const void *arg) {
  (void)arg;
  return lock_init(mem, false, KILN__PT_LOCK);
}

size_t kiln_plock_size(void) { return kiln__pround(sizeof(lock_state)); }
int kiln_plock_init(void *mem) { return plock_init_cb(mem, NULL); }
int kiln_plock_at(void *mem, kiln_plock **out) {
  return kiln__pobj_at(sizeof **out, mem, KILN__PT_LOCK, (void **)out);
}
int kiln_plock_create(const char *name, kiln_plock **out) {
  return kiln__pobj_new(sizeof **out, name, kiln_plock_size(), plock_init_cb, NULL, (void **)out);
}
int kiln_plock_attach(const char *name, kiln_plock **out) {
  return kiln__pobj_open(sizeof **out, name, KILN__PT_LOCK, kiln_plock_size(),
                         (void **)out);
}
kiln_shm *kiln_plock_shm(const kiln_plock *l) { return l->obj.shm; }
void kiln_plock_destroy(kiln_plock *l) { kiln__pobj_free(l); }

int kiln_plock_acquire(kiln_plock *l, double timeout) { return lock_acquire(lst(&l->obj), timeout); }
int kiln_plock_release(kiln_plock *l) { return lock_release(lst(&l->obj)); }
bool kiln_plock_locked(kiln_plock *l) { return lock_locked(lst(&l->obj), false); }

/* ---- rlock ---- */

static int prlock_init_cb(void *mem, const void *arg) {
  (void)arg;
  return lock_init(mem, true, KILN__PT_RLOCK);
}

size_t kiln_prlock_size(void) { return kiln__pround(sizeof(lock_state)); }
int kiln_prlock_init(void *mem) { return prlock_init_cb(mem, NULL); }
int kiln_prlock_at(void *mem, kiln_prlock **out) {
  return kiln__pobj_at(sizeof **out, mem, KILN__PT_RLOCK, (void **)out);
}
int kiln_prlock_create(const char *name, kiln_prlock **out) {
  return kiln__pobj_new(sizeof **out, name, kiln_prlock_size(), prlock_init_cb, NULL, (void **)out);
}
int kiln_prlock_attach(const char *name, kiln_prlock **out) {
  return kiln__pobj_open(sizeof **out, name, KILN__PT_RLOCK, kiln_prlock_size(),
                         (void **)out);
}
kiln_shm *kiln_prlock_shm(const kiln_prlock *r) { return r->obj.shm; }
void kiln_prlock_destroy(kiln_prlock *r) { kiln__pobj_free(r); }

int kiln_prlock_acquire(kiln_prlock *r, double timeout) { return lock_acquire(lst(&r->obj), timeout); }
int kiln_prlock_release(kiln_prlock *r) { return lock_release(lst(&r->obj)); }
bool kiln_prlock_is_owned(kiln_prlock *r) { return lock_locked(lst(&r->obj), true); }
bool kiln_prlock_locked(kiln_prlock *r) { return lock_locked(lst(&r->obj), false); }

/* ---- condition ---- */

enum { COND_SLOTS = 128, SLOT_FREE = 0, SLOT_WAITING = 1, SLOT_NOTIFIED = 2 };

typedef struct cond_slot {
  uint64_t ticket;
  uint32_t state;
  kiln__powner who; /* the waiter, so a notify can pass over one whose process died */
} cond_slot;

typedef struct cond_state {
  lock_state l; /* its header is the condition's */
  uint64_t next_ticket;
  cond_slot slot[COND_SLOTS];
} cond_state;

struct kiln_pcond {
  kiln__pobj obj;
};

static cond_state *cst(const kiln_pcond *c) { return c->obj.mem; }

static int pcond_init_cb(void *mem, const void *arg) {
  cond_state *s = mem;
  s->next_ticket = 0;
  for (int i = 0; i < COND_SLOTS; i++) s->slot[i] = (cond_slot){0};
  return lock_init(mem, !*(const bool *)arg, KILN__PT_COND);
}

size_t kiln_pcond_size(void) { return kiln__pround(sizeof(cond_state)); }
int kiln_pcond_init(void *mem, bool plain_lock) { return pcond_init_cb(mem, &plain_lock); }
int kiln_pcond_at(void *mem, kiln_pcond **out) {
  return kiln__pobj_at(sizeof **out, mem, KILN__PT_COND, (void **)out);
}
int kiln_pcond_create(const char *name, bool plain_lock, kiln_pcond **out) {
  return kiln__pobj_new(sizeof **out, name, kiln_pcond_size(), pcond_init_cb, &plain_lock,
                        (void **)out);
}
int kiln_pcond_attach(const char *name, kiln_pcond **out) {
  return kiln__pobj_open(sizeof **out, name, KILN__PT_COND, kiln_pcond_size(),
                         (void **)out);
}
kiln_shm *kiln_pcond_shm(const kiln_pcond *c) { return c->obj.shm; }
void kiln_pcond_destroy(kiln_pcond *c) { kiln__pobj_free(c); }

int kiln_pcond_acquire(kiln_pcond *c, double timeout) { return lock_acquire(&cst(c)->l, timeout); }
int kiln_pcond_release(kiln_pcond *c) { return lock_release(&cst(c)->l); }

/* With the monitor held: whether the caller may wait or notify (over a plain lock: it is held). */
static bool cond_held(cond_state *s) {
  if (!s->l.lk.count) return false;
  return !s->l.lk.recursive || kiln__powner_is_me(&s->l.lk.owner);
}

/* With the monitor held: whether slot x's waiter is in another process that has died. */
static bool slot_dead(const cond_slot *x) { return kiln__powner_dead(&x->who); }

static cond_slot *slot_take(cond_state *s) {
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < COND_SLOTS; i++) {
      cond_slot *x = &s->slot[i];
      /* the second pass takes back the slots of dead waiters, only when the table is full */
      if (x->state == SLOT_FREE || (pass == 1 && slot_dead(x))) {
        *x = (cond_slot){.ticket = s->next_ticket++, .state = SLOT_WAITING};
        kiln__powner_self(&x->who);
        return x;
      }
    }
  }
  return NULL;
}

/* With the monitor held and the lock released: sleeps until notified or deadline. */
static bool cond_sleep(cond_state *s, cond_slot *me, double deadline) {
  while (me->state != SLOT_NOTIFIED && kiln__now() < deadline) kiln__mon_wait(&s->l.mon, deadline, false);
  bool notified = me->state == SLOT_NOTIFIED;
  me->state = SLOT_FREE;
  return notified;
}

int kiln_pcond_wait(kiln_pcond *c, double timeout) {
  double deadline;
  if (kiln__deadline(timeout, &deadline) != 0) return KILN_EINVAL;
  cond_state *s = cst(c);
  kiln__mon_lock(&s->l.mon);
  cond_slot *me = cond_held(s) ? slot_take(s) : NULL;
  if (!me) {
    int busy = cond_held(s);
    kiln__mon_unlock(&s->l.mon);
    return busy ? KILN_EBUSY : KILN_ESTATE;
  }
  uint32_t levels = s->l.lk.count;
  s->l.lk.count = 0; /* released completely, every rlock level (COND-07) */
  kiln__mon_wake(&s->l.mon);
  bool notified = cond_sleep(s, me, deadline);
  int rc = kiln__plk_acquire(&s->l.mon, &s->l.lk, INFINITY);
  s->l.lk.count = levels;
  kiln__mon_unlock(&s->l.mon);
  if (rc != 0) return rc;
  return notified ? 0 : KILN_ETIMEDOUT;
}

int kiln_pcond_wait_for(kiln_pcond *c, bool (*pred)(void *arg), void *arg, double timeout) {
  double deadline;
  if (kiln__deadline(timeout, &deadline) != 0) return KILN_EINVAL;
  int dead = 0;
  while (!pred(arg)) {
    double left = deadline == INFINITY ? -1.0 : deadline - kiln__now();
    if (deadline != INFINITY && left <= 0) return dead ? dead : KILN_ETIMEDOUT;
    int rc = kiln_pcond_wait(c, left);
    if (rc == KILN_EOWNERDEAD) dead = rc;
    else if (rc != 0 && rc != KILN_ETIMEDOUT) return rc;
  }
  return dead;
}

int kiln_pcond_notify(kiln_pcond *c, int n) {
  if (n < 0) return KILN_EINVAL;
  cond_state *s = cst(c);
  kiln__mon_lock(&s->l.mon);
  if (!cond_held(s)) {
    kiln__mon_unlock(&s->l.mon);
    return KILN_ESTATE;
  }
  int woken = 0;
  while (woken < n) {
    cond_slot *oldest = NULL;
    for (int i = 0; i < COND_SLOTS; i++) {
      cond_slot *x = &s->slot[i];
      if (x->state == SLOT_WAITING && (!oldest || x->ticket < oldest->ticket)) oldest = x;
    }
    if (!oldest) break;
    /* a waiter that died must not absorb the notify: its slot is freed and the next one chosen */
    oldest->state = slot_dead(oldest) ? SLOT_FREE : SLOT_NOTIFIED;
    woken += oldest->state == SLOT_NOTIFIED;
  }
  if (woken) kiln__mon_wake(&s->l.mon);
  kiln__mon_unlock(&s->l.mon);
  return 0;
}

int kiln_pcond_notify_all(kiln_pcond *c) { return kiln_pcond_notify(c, COND_SLOTS); }

int kiln__pcond_waiting(kiln_pcond *c) {
  cond_state *s = cst(c);
  kiln__mon_lock(&s->l.mon);
  int n = 0;
  for (int i = 0; i < COND_SLOTS; i++) n += s->slot[i].state == SLOT_WAITING;
  kiln__mon_unlock(&s->l.mon);
  return n;
}
