/* sync_internal.h: what the files of sync/ share (lock.c, waitlist.c, semaphore.c, condition.c,
 * event.c, barrier.c; queue.c and channel.c need only kiln/sync.h and the queue's probe), and a few read-only probes that
 * let tests know a thread is blocked without sleeping. Nothing here is public. sync/ depends on
 * base/ (the clock) and nothing else of kiln.
 *
 * Lock order, outer first, for the whole family: a condition's lock or rlock -> that condition's
 * mu; every other mu is a leaf. The lock word of kiln_lock is never held across a call into
 * another primitive by this code. */
#ifndef KILN_SYNC_INTERNAL_H
#define KILN_SYNC_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "kiln/sync.h"

/* ---- waitlist: a FIFO of parked threads (waitlist.c) ---------------------------------------
 *
 * The C counterpart of the list of per-waiter locks in CPython's Condition: each waiting thread
 * puts its own node on the list and sleeps on the node's own condition variable, so a wake-up can
 * pick exactly which threads run (the oldest n) and none is lost or stored. Every call is made
 * with the owner's mutex held (the same mutex for every call on one list); that mutex guards the
 * list and every node's `woken`. Nodes live on the waiting thread's stack. */
typedef struct kiln__parked {
  struct kiln__parked *prev, *next;
  pthread_cond_t cv; /* CLOCK_MONOTONIC, like every deadline in kiln */
  bool woken;        /* set by kiln__waitlist_wake, which also unlinks the node */
} kiln__parked;

typedef struct kiln__waitlist {
  kiln__parked *head, *tail; /* head: the longest waiting */
  int n;
} kiln__waitlist;

/* Appends p (uninitialised) at the tail. Every push is followed by one kiln__waitlist_park. */
void kiln__waitlist_push(kiln__waitlist *wl, kiln__parked *p);
/* Unlinks p if it is still listed (not woken). */
void kiln__waitlist_remove(kiln__waitlist *wl, kiln__parked *p);
/* Wakes and unlinks the min(n, listed) oldest nodes; returns how many. */
int kiln__waitlist_wake(kiln__waitlist *wl, int n);
/* Sleeps on mu until p is woken (0) or the absolute kiln__now() deadline passes (KILN_ETIMEDOUT,
 * p unlinked). Finishes p either way: it may go out of scope after this returns. */
int kiln__waitlist_park(kiln__waitlist *wl, kiln__parked *p, pthread_mutex_t *mu, double deadline);

/* Initialises a condition variable on CLOCK_MONOTONIC. */
void kiln__cond_init_monotonic(pthread_cond_t *cv);

/* ---- rlock internals used by condition.c (lock.c) ------------------------------------------ */

/* Releases every level the caller holds and returns the count in *levels: CPython's
 * _release_save. KILN_ESTATE if the caller does not own r (RLOCK-07). */
int kiln__rlock_release_save(kiln_rlock *r, unsigned long *levels);
/* Acquires r (no timeout) and sets its count back to levels: CPython's _acquire_restore. */
void kiln__rlock_acquire_restore(kiln_rlock *r, unsigned long levels);

/* ---- channel internals for proc/ (channel.c) --------------------------------------------------
 * A channel end crosses to a child process as its socket, its rings' memfd (none for a socket
 * stream) and flags saying its directions and which side of the pair it is. */

enum {
  KILN__CH_RECV = 1,
  KILN__CH_SEND = 2,
  KILN__CH_SIDE_B = 4, /* the end reads ring 1 and writes ring 0 (channel.c) */
  KILN__CH_MEM = 8     /* for a protocol that carries the flags: a memfd comes with the socket */
};

typedef struct kiln__channel_fds {
  int sock;
  int mem;       /* -1: the socket is the byte stream */
  uint8_t flags; /* KILN__CH_RECV | KILN__CH_SEND | KILN__CH_SIDE_B */
} kiln__channel_fds;

/* A pair whose byte stream is the socket pair itself, never a ring: for a caller that reads an
 * end's socket itself (kiln__channel_share). Otherwise as kiln_channel_pair. */
int kiln__channel_pair_socket(bool duplex, kiln_channel **a, kiln_channel **b);
/* Wraps f's descriptors (owned from now on, closed on failure too) as an end that another
 * process shares: its close never shutdown(2)s the socket. 0, KILN_ENOMEM, KILN_EIO (mem is not
 * a pair's rings, or lacks the ring this end uses). */
int kiln__channel_adopt(const kiln__channel_fds *f, kiln_channel **out);
/* For an end of kiln__channel_pair_socket only: marks ch as shared with another process (from
 * now on its close does not shutdown(2) the socket, which would end the stream for the other copy
 * too) and returns its socket (borrowed) and directions. KILN_ESTATE when closed. Any thread. */
int kiln__channel_share(kiln_channel *ch, int *fd, bool *can_send, bool *can_recv);
/* Marks ch shared, and fills *f with new close-on-exec duplicates (>= 3) of its descriptors,
 * owned by the caller, made under the end's lock, so a close racing with it cannot hand over a
 * reused number. KILN_ESTATE when closed, KILN_EIO (no descriptor left). Any thread. */
int kiln__channel_dup(kiln_channel *ch, kiln__channel_fds *f);
/* kiln_channel_wait against an absolute deadline (kiln__now() base), polling extra[0..nextra)
 * too: their revents are set on return (all 0 after the timeout). */
struct pollfd;
int kiln__channel_wait_extra(kiln_channel **chs, size_t n, struct pollfd *extra, size_t nextra,
                             double deadline, size_t *nready);

/* ---- probes for tests: snapshots, taken under the object's own mutex ----------------------- */

/* Whether a thread has announced it is (or is about to be) asleep waiting for l. */
bool kiln__lock_contended(kiln_lock *l);
int kiln__semaphore_waiting(kiln_semaphore *s);
int kiln__condition_waiting(kiln_condition *c);
int kiln__event_waiting(kiln_event *e);
/* The sleepers of get, put and join (queue.c). A thread counted there has released the queue's
 * mutex inside its wait (and may have been woken since, not yet back). */
void kiln__queue_waiting(kiln_queue *q, size_t *getters, size_t *putters, size_t *joiners);
/* Whether ch's byte stream is a shared-memory ring (false: the socket). */
bool kiln__channel_has_ring(kiln_channel *ch);
/* Moves the write position of the ring ch receives from by delta bytes, as a process scribbling
 * on the shared header would. KILN_ESTATE for an end without one. Tests only. */
int kiln__channel_scribble(kiln_channel *ch, uint32_t delta);

#endif /* KILN_SYNC_INTERNAL_H */
