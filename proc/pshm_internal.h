/* pshm_internal.h (internal): what the shared-memory files of proc/ share.
 *
 *   shm.c     named POSIX shared memory segments (kiln_shm)
 *   pmon.c    the monitor every process-shared object is built on (a robust process-shared
 *             mutex and a futex word to sleep on), process identities for dead-owner checks, and
 *             objects that live in a segment of their own
 *   plock.c   lock, rlock, condition
 *   psem.c    semaphore, event, barrier
 *   shared.c  Value / Array
 *   pqueue.c  process queues
 *
 * Every object's shared state starts with a kiln__phdr, so attaching by name checks that the
 * segment holds an object of the expected kind. */
#ifndef KILN_PSHM_INTERNAL_H
#define KILN_PSHM_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/proc.h"

/* ---- object headers ---- */

#define KILN__PMAGIC 0x6b6c6e50u /* "Pnlk" */
enum {
  KILN__PT_LOCK = 1, KILN__PT_RLOCK, KILN__PT_SEM, KILN__PT_COND, KILN__PT_EVENT,
  KILN__PT_BARRIER, KILN__PT_SHARED, KILN__PT_QUEUE,
};
typedef struct kiln__phdr {
  _Atomic uint32_t magic; /* stored last by init (release), so a half-initialised object is refused */
  uint32_t type;
} kiln__phdr;

/* Rounds n up to a multiple of 64 (the size every object reports, so objects packed one after
 * another in a segment stay aligned). */
static inline size_t kiln__pround(size_t n) { return (n + 63) & ~(size_t)63; }

/* ---- pmon.c: the monitor ----
 *
 * mu guards all of an object's state; seq is a futex word that wakers bump (under mu) and
 * sleepers wait on (after dropping mu), so a wake between the unlock and the sleep is never lost.
 * Works between processes because both the mutex and the futex are process-shared (the futex is
 * keyed on the shared page, not on the address). A holder that dies inside mu leaves it to the
 * next locker, which marks it consistent: the critical sections only store whole fields. */
typedef struct kiln__mon {
  pthread_mutex_t mu;
  _Atomic uint32_t seq;
  _Atomic uint32_t nsleep; /* threads asleep in kiln__mon_wait's futex; a dead sleeper leaves it
                            * high, which only costs wakers a system call */
} kiln__mon;

/* 0 or KILN_EIO. Once, before any process uses it. */
int kiln__mon_init(kiln__mon *m);
void kiln__mon_lock(kiln__mon *m);
void kiln__mon_unlock(kiln__mon *m);
/* With mu held: sleeps until a kiln__mon_wake, the deadline (kiln__now base), or (poll) 20 ms;
 * mu is held again on return. true when woken by a wake (or a wake raced the sleep). Spurious
 * returns happen: callers re-check their condition. */
bool kiln__mon_wait(kiln__mon *m, double deadline, bool poll);
/* With mu held: wakes every sleeper. */
void kiln__mon_wake(kiln__mon *m);

/* ---- pmon.c: process identities ----
 *
 * A holder is (pid, tid, start time of the process): the start time tells a reused pid apart;
 * 0 is unknown (/proc could not be read), which never makes a live process look dead. */
typedef struct kiln__powner {
  int32_t pid, tid;
  uint64_t start;
} kiln__powner;

/* The calling thread's identity. Any thread; may read /proc/self/stat (once per thread). */
void kiln__powner_self(kiln__powner *o);
/* Whether o's process has ended (gone, a zombie with no thread left, or its pid reused, also by
 * the calling process). A holder whose start time is unknown (its /proc could not be read) is
 * dead only once its pid is gone; a dead thread of a live process is not noticed. */
bool kiln__powner_dead(const kiln__powner *o);
bool kiln__powner_is_me(const kiln__powner *o); /* same process and thread */

/* ---- pmon.c: the lock core of plock, prlock and pcond, guarded by a monitor ---- */
typedef struct kiln__plk {
  uint32_t count; /* 0 free; rlock levels otherwise */
  uint32_t recursive;
  kiln__powner owner;
} kiln__plk;

/* With m held: takes l (re-enters when recursive and the caller owns it). 0, KILN_EOWNERDEAD
 * (taken over from a dead holder), KILN_ETIMEDOUT. */
int kiln__plk_acquire(kiln__mon *m, kiln__plk *l, double deadline);
/* With m held: drops one level (all of a plain lock). KILN_ESTATE when not held (plain) or not
 * owned by the caller (recursive). */
int kiln__plk_release(kiln__mon *m, kiln__plk *l);

/* ---- pmon.c: objects in a segment of their own ---- */
typedef struct kiln__pobj {
  kiln_shm *shm; /* NULL for an object placed by the caller */
  int creator;   /* pid that created shm, or 0: only it unlinks, at fini */
  void *mem;     /* the object's state */
} kiln__pobj;

/* Creates a segment of size bytes for a new object. 0 or kiln_shm_create's codes. */
int kiln__pobj_create(kiln__pobj *o, const char *name, size_t size);
/* Attaches name and checks it holds an object of type, in a segment of at least size bytes
 * (KILN_EINVAL if not: a shorter one would be used past its end). */
int kiln__pobj_attach(kiln__pobj *o, const char *name, uint32_t type, size_t size);
/* Checks mem holds an initialised object of type: 0 or KILN_EINVAL. */
int kiln__pobj_check(const void *mem, uint32_t type);
/* Marks mem initialised as type (after everything else of it is written). */
void kiln__pobj_publish(void *mem, uint32_t type);
/* Unlinks (in the creating process) and unmaps. */
void kiln__pobj_fini(kiln__pobj *o);

/* Handles: hsize bytes (malloc'd) that start with a kiln__pobj. new: over a new segment of size
 * bytes that init(mem, arg) prepares (init publishes). open: over an attached segment of type
 * and at least size bytes. at: over the caller's initialised memory. 0 or the codes of create / attach / check, or
 * KILN_ENOMEM. free: fini and free; NULL is a no-op. */
int kiln__pobj_new(size_t hsize, const char *name, size_t size,
                   int (*init)(void *mem, const void *arg), const void *arg, void **out);
int kiln__pobj_open(size_t hsize, const char *name, uint32_t type, size_t size, void **out);
int kiln__pobj_at(size_t hsize, void *mem, uint32_t type, void **out);
void kiln__pobj_free(void *h);

/* ---- probes for tests ---- */

/* plock.c: waiters of c not yet notified. psem.c: threads asleep on e's monitor. */
int kiln__pcond_waiting(kiln_pcond *c);
int kiln__pevent_sleepers(kiln_pevent *e);

#endif /* KILN_PSHM_INTERNAL_H */
