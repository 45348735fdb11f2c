/* kiln/sync.h: Python's threading and queue toolkit for C threads: lock, rlock, semaphore and
 * bounded semaphore, condition, event, barrier, queue (FIFO, LIFO, priority) and channel (a
 * multiprocessing.Pipe between threads).
 *
 * Semantics follow CPython's threading, queue and multiprocessing.connection, with exceptions
 * turned into negative KILN_E* codes. docs/CONFORMANCE.md lists the rules kept, by ID (LOCK-04,
 * Q-07, ...), with the C form of each and the test that checks it.
 *
 * Timeouts are double seconds, as in sched.h: negative waits forever, 0 does not block (a try),
 * NaN is KILN_EINVAL. A timeout larger than any real wait (say 1e300) is accepted and waits
 * forever in practice (CPython's TIMEOUT_MAX has no C counterpart). A call that gives up because
 * its timeout passed returns KILN_ETIMEDOUT unless documented otherwise (queues return
 * KILN_EFULL / KILN_EEMPTY like Python's Full / Empty).
 *
 * Blocking inside a pool task: every blocking call here blocks the calling thread, also when that
 * thread is a pool worker. Unlike kiln_future_result, it does not run other tasks meanwhile
 * (a task that holds a lock must not be suspended under unrelated work that may want the same
 * lock). So a task must not wait, without a timeout, for something that only a task still queued
 * on the same pool would provide when no other worker is free to run it: wait on a future for
 * that, or give the pool enough workers.
 *
 * Every object is created by a *_create call that returns 0 or KILN_ENOMEM / KILN_EINVAL and sets
 * *out (NULL on failure), and freed by *_destroy (NULL is a no-op). Destroying an object that a
 * thread is still blocked on is undefined, as in pthreads. All other calls are thread-safe. */
#ifndef KILN_SYNC_H
#define KILN_SYNC_H

#include <stdbool.h>
#include <stddef.h>

#include "kiln/error.h"
#include "kiln/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- lock (threading.Lock) ----------------------------------------------------------------- */

typedef struct kiln_lock kiln_lock;

KILN_API int kiln_lock_create(kiln_lock **out);
KILN_API void kiln_lock_destroy(kiln_lock *l);

/* Acquires the lock, waiting up to timeout. 0, or KILN_ETIMEDOUT (timeout 0: the lock is held).
 * Not reentrant: a second acquire by the holder waits like anyone else. */
KILN_API int kiln_lock_acquire(kiln_lock *l, double timeout);

/* Releases the lock; any thread may release it (LOCK-04). KILN_ESTATE if it is not locked. */
KILN_API int kiln_lock_release(kiln_lock *l);

/* Whether some thread holds the lock now. */
KILN_API bool kiln_lock_locked(kiln_lock *l);

/* ---- rlock (threading.RLock) --------------------------------------------------------------- */

typedef struct kiln_rlock kiln_rlock;

KILN_API int kiln_rlock_create(kiln_rlock **out);
KILN_API void kiln_rlock_destroy(kiln_rlock *r);

/* Acquires, or re-acquires if the caller already owns it (the count goes up). 0 or
 * KILN_ETIMEDOUT. */
KILN_API int kiln_rlock_acquire(kiln_rlock *r, double timeout);

/* Releases one level. KILN_ESTATE if the caller does not own it (not held, held by another thread,
 * or one release too many). */
KILN_API int kiln_rlock_release(kiln_rlock *r);

/* Whether the calling thread owns it. */
KILN_API bool kiln_rlock_is_owned(kiln_rlock *r);

/* Whether any thread owns it. */
KILN_API bool kiln_rlock_locked(kiln_rlock *r);

/* How many times the calling thread holds it (RLock._recursion_count()): its acquires not yet
 * released; 0 when it does not own it, also while another thread does. Any thread; it reads only
 * the caller's own ownership, so the answer cannot be stale for the caller. */
KILN_API unsigned long kiln_rlock_recursion_count(kiln_rlock *r);

/* ---- semaphore (threading.Semaphore / BoundedSemaphore) ------------------------------------ */

typedef struct kiln_semaphore kiln_semaphore;

/* value < 0 is KILN_EINVAL. A bounded semaphore may never go above its initial value. */
KILN_API int kiln_semaphore_create(int value, bool bounded, kiln_semaphore **out);
KILN_API void kiln_semaphore_destroy(kiln_semaphore *s);

/* Takes one unit, waiting up to timeout for one. 0 or KILN_ETIMEDOUT. Waiters are let in one per
 * unit released, in arrival order. */
KILN_API int kiln_semaphore_acquire(kiln_semaphore *s, double timeout);

/* Adds n units (n >= 1, else KILN_EINVAL) and wakes up to n waiters. On a bounded semaphore, a
 * release that would go above the initial value is KILN_EINVAL and changes nothing. Any thread. */
KILN_API int kiln_semaphore_release(kiln_semaphore *s, int n);

/* The current value (units free now). */
KILN_API int kiln_semaphore_value(kiln_semaphore *s);

/* ---- condition (threading.Condition) ------------------------------------------------------- */

typedef struct kiln_condition kiln_condition;

/* A condition over its own new rlock (Python's default). */
KILN_API int kiln_condition_create(kiln_condition **out);
/* A condition over the caller's lock or rlock, which must outlive it. Acquiring the condition
 * acquires that lock. */
KILN_API int kiln_condition_create_lock(kiln_lock *l, kiln_condition **out);
KILN_API int kiln_condition_create_rlock(kiln_rlock *r, kiln_condition **out);
KILN_API void kiln_condition_destroy(kiln_condition *c);

/* Acquire and release the underlying lock (same codes as the lock's). */
KILN_API int kiln_condition_acquire(kiln_condition *c, double timeout);
KILN_API int kiln_condition_release(kiln_condition *c);

/* Releases the lock completely (every rlock level), waits for a notify or the timeout, and takes
 * the lock back at the same level before returning, also on timeout. 0 when notified,
 * KILN_ETIMEDOUT otherwise. KILN_ESTATE when the caller does not hold the lock (over a plain lock:
 * when it is not locked), nothing done. No spurious wake-ups: 0 means a notify chose this
 * waiter. */
KILN_API int kiln_condition_wait(kiln_condition *c, double timeout);

/* Waits until pred(arg) returns true, re-checking after each wake-up; returns at once if it holds
 * already. 0 once it holds, KILN_ETIMEDOUT if the timeout (one deadline from the call) passes
 * while it does not. The caller holds the lock whenever pred runs and on return. KILN_ESTATE as
 * for wait. */
KILN_API int kiln_condition_wait_for(kiln_condition *c, bool (*pred)(void *arg), void *arg,
                                     double timeout);

/* Wakes min(n, waiting) waiters, longest waiting first (n >= 0); they continue once the notifier
 * releases the lock. A notify with no waiter is not stored. KILN_ESTATE when the caller does not
 * hold the lock. */
KILN_API int kiln_condition_notify(kiln_condition *c, int n);
KILN_API int kiln_condition_notify_all(kiln_condition *c);

/* ---- event (threading.Event) --------------------------------------------------------------- */

typedef struct kiln_event kiln_event;

KILN_API int kiln_event_create(kiln_event **out);
KILN_API void kiln_event_destroy(kiln_event *e);
KILN_API void kiln_event_set(kiln_event *e); /* wakes every waiter; later waits return at once */
KILN_API void kiln_event_clear(kiln_event *e);
KILN_API bool kiln_event_is_set(kiln_event *e);
/* 0 once the event is set (at once if it is), KILN_ETIMEDOUT otherwise. */
KILN_API int kiln_event_wait(kiln_event *e, double timeout);

/* ---- barrier (threading.Barrier) ----------------------------------------------------------- */

typedef struct kiln_barrier kiln_barrier;

/* parties >= 1, else KILN_EINVAL. action (may be NULL) runs once per round, in one of the waiting
 * threads, after all parties arrive and before any is released; a non-zero return breaks the
 * barrier. timeout is the default for kiln_barrier_wait (negative: none). */
KILN_API int kiln_barrier_create(int parties, int (*action)(void *arg), void *arg, double timeout,
                                 kiln_barrier **out);
/* Frees the barrier. May be called as soon as one party's wait has returned: it first waits for
 * the other parties of that round, already released, to leave. */
KILN_API void kiln_barrier_destroy(kiln_barrier *b);

/* Waits until `parties` threads have called it, with the barrier's default timeout. 0, and *index
 * (may be NULL) gets a distinct value 0..parties-1 in each round. KILN_EBROKEN if the barrier is
 * or becomes broken: by abort, by a failing action, or by a wait that timed out (that waiter, all
 * the others and any later caller get KILN_EBROKEN). */
KILN_API int kiln_barrier_wait(kiln_barrier *b, int *index);
/* The same with a per-call timeout instead of the default. */
KILN_API int kiln_barrier_wait_timeout(kiln_barrier *b, double timeout, int *index);

/* Breaks the barrier: current and later waiters get KILN_EBROKEN until reset. */
KILN_API void kiln_barrier_abort(kiln_barrier *b);
/* Back to the empty, unbroken state; threads waiting now get KILN_EBROKEN. */
KILN_API void kiln_barrier_reset(kiln_barrier *b);
KILN_API bool kiln_barrier_broken(kiln_barrier *b);
KILN_API int kiln_barrier_n_waiting(kiln_barrier *b);
KILN_API int kiln_barrier_parties(kiln_barrier *b);

/* ---- queue (queue.Queue / LifoQueue / PriorityQueue) --------------------------------------- */

typedef struct kiln_queue kiln_queue;

typedef enum { KILN_QUEUE_FIFO, KILN_QUEUE_LIFO, KILN_QUEUE_PRIORITY } kiln_queue_kind;

typedef struct kiln_queue_config {
  kiln_queue_kind kind;
  size_t maxsize; /* 0: unbounded */
  /* KILN_QUEUE_PRIORITY: required; < 0 when a comes before b. Items that compare equal come out
   * in the order they were put. Called under the queue's lock: it must not call the queue. */
  int (*compare)(const void *a, const void *b, void *ctx);
  void *compare_ctx;
  /* optional: frees items the queue throws away (immediate shutdown, destroy) */
  void (*item_free)(void *item);
} kiln_queue_config;

/* Fills *cfg with the defaults: FIFO, unbounded, no comparator, no item_free. */
KILN_API void kiln_queue_config_default(kiln_queue_config *cfg);

/* cfg NULL means the defaults. KILN_EINVAL for a priority queue without compare. */
KILN_API int kiln_queue_create(const kiln_queue_config *cfg, kiln_queue **out);
/* Frees the queue; items still in it go to item_free if set. */
KILN_API void kiln_queue_destroy(kiln_queue *q);

/* Puts item, waiting up to timeout for a free slot. 0, KILN_EFULL (timeout passed or 0 on a full
 * queue), KILN_ESHUTDOWN (shut down before or while waiting; the item is not taken), KILN_ENOMEM
 * (the queue could not grow; the item is not taken). */
KILN_API int kiln_queue_put(kiln_queue *q, void *item, double timeout);

/* Takes the next item into *item, waiting up to timeout. 0, KILN_EEMPTY (timeout passed or 0 on an
 * empty queue), KILN_ESHUTDOWN (shut down and empty, or shut down immediately). */
KILN_API int kiln_queue_get(kiln_queue *q, void **item, double timeout);

KILN_API size_t kiln_queue_qsize(kiln_queue *q);
KILN_API bool kiln_queue_empty(kiln_queue *q);
KILN_API bool kiln_queue_full(kiln_queue *q); /* qsize == maxsize > 0 */
KILN_API size_t kiln_queue_maxsize(kiln_queue *q);
/* Changes maxsize while in use (0: unbounded). Growing it wakes blocked putters; shrinking it
 * below qsize keeps the items and blocks puts until gets make room. */
KILN_API void kiln_queue_set_maxsize(kiln_queue *q, size_t maxsize);

/* One item fully processed. KILN_EINVAL when no put is unfinished (called too often). */
KILN_API int kiln_queue_task_done(kiln_queue *q);
/* Waits until every item ever put has been task_done'd (or an immediate shutdown dropped it).
 * 0 or KILN_ETIMEDOUT. */
KILN_API int kiln_queue_join(kiln_queue *q, double timeout);

/* Python 3.13's shutdown: puts fail with KILN_ESHUTDOWN from now on, blocked putters too. Without
 * immediate, gets still return the items left, then KILN_ESHUTDOWN. With immediate, the items are
 * dropped (to item_free), unfinished tasks drop with them so join returns, and every get fails.
 * May be called again, in either mode. */
KILN_API void kiln_queue_shutdown(kiln_queue *q, bool immediate);
KILN_API bool kiln_queue_is_shutdown(kiln_queue *q);

/* ---- channel (multiprocessing.Pipe) -------------------------------------------------------- */

typedef struct kiln_channel kiln_channel;

/* Creates a connected pair. Duplex: both ends send and receive. One-way: *a only receives and *b
 * only sends (Python's Pipe(duplex=False) returns (reader, writer) in that order). Works between
 * threads and, handed to a child (kiln/proc.h), between processes.
 *
 * Built on a Unix socket pair and, where memfd_create and mmap are allowed (otherwise the socket
 * alone carries the bytes), a shared-memory ring of 1 MiB per direction in one memfd: messages go
 * through the ring without a system call while the reader keeps up; the socket carries wake-ups
 * and the end of the stream. A pair costs 3 descriptors (2 sockets, 1 memfd; each end handed to
 * a child takes a socket and the memfd there) and 1 or 2 MiB of shared memory, touched only as
 * the rings fill. Copies of the sending end in several processes may send at once (each message
 * goes in whole); receiving is for one process at a time, and waiting (poll, wait) on one end for
 * one thread at a time. Threads of one process may otherwise share an end (their calls are
 * serialised). */
KILN_API int kiln_channel_pair(bool duplex, kiln_channel **a, kiln_channel **b);

/* Closes the end (if not closed yet) and frees it. */
KILN_API void kiln_channel_destroy(kiln_channel *ch);

/* Closes the end: the peer receives the messages already sent, then KILN_EEOF. Later calls on
 * this end return KILN_ESTATE. Closing twice is fine. An end handed to a child process
 * (kiln/proc.h) is shared with it: closing it closes only this process's descriptor (the peer
 * sees KILN_EEOF once the child's copy is closed too), and does not wake this process's threads
 * blocked on that end. */
KILN_API void kiln_channel_close(kiln_channel *ch);
KILN_API bool kiln_channel_closed(kiln_channel *ch);

/* Sends one message of len bytes (0 is fine; up to 2^32-1 bytes, else KILN_EINVAL). Message
 * boundaries are kept. Waits up to timeout for the peer to drain room for the message (for its
 * start, if it is larger than the ring) (KILN_ETIMEDOUT, nothing sent); once started, the message
 * is always sent whole, waiting as long as it takes. KILN_ESTATE on a receive-only or closed end;
 * KILN_EEOF (Python's BrokenPipeError) when the peer is closed. A peer process that died without
 * closing its end while it was not waiting for a message is noticed when the ring is full (sends
 * before that succeed into the ring, as a socket's buffer would take them). Concurrent senders on
 * one end never interleave. */
KILN_API int kiln_channel_send(kiln_channel *ch, const void *buf, size_t len, double timeout);

/* Receives the next message into a new malloc'd buffer (*buf, free() it; NULL for an empty
 * message) and its length. 0, KILN_ETIMEDOUT, KILN_EEOF (peer closed and nothing left),
 * KILN_ESTATE (send-only or closed end), KILN_ENOMEM (the message stays queued). */
KILN_API int kiln_channel_recv(kiln_channel *ch, void **buf, size_t *len, double timeout);

/* Receives the next message into buf[0..cap). 0 and *len its length. If it does not fit:
 * KILN_EINVAL, *len the size needed, and the message stays queued for the next receive. Other
 * codes as for kiln_channel_recv. */
KILN_API int kiln_channel_recv_into(kiln_channel *ch, void *buf, size_t cap, size_t *len,
                                    double timeout);

/* Receives the next message without copying it out: *data points at its *len bytes inside the
 * channel (in the shared ring when the message lies there whole and in one piece, which is the
 * usual case for messages up to the ring's size; otherwise in a buffer of the end's own), valid
 * until kiln_channel_release(ch). Until then the end is held: the same thread must release it
 * before it receives on this end again, other threads' receives on it wait, and the end must not
 * be destroyed. The bytes are only read, never written, through *data. Codes as for
 * kiln_channel_recv (nothing to release after an error). */
KILN_API int kiln_channel_recv_view(kiln_channel *ch, const void **data, size_t *len,
                                    double timeout);
/* Ends the view of the last kiln_channel_recv_view on ch (called by the thread that received it):
 * the message's room goes back to the sender. */
KILN_API void kiln_channel_release(kiln_channel *ch);

/* Waits up to timeout until a message or end-of-stream can be received. 1 when ready, 0 when
 * not (timeout 0: a check that never blocks), KILN_ESTATE on a send-only or closed end. */
KILN_API int kiln_channel_poll(kiln_channel *ch, double timeout);

/* Waits up to timeout until at least one of chs[0..n) is ready to receive (a message or
 * end-of-stream). Reorders chs so that the ready ones come first, *nready of them (0 after the
 * timeout). KILN_ESTATE if one is send-only or closed. */
KILN_API int kiln_channel_wait(kiln_channel **chs, size_t n, double timeout, size_t *nready);

#ifdef __cplusplus
}
#endif
#endif /* KILN_SYNC_H */
