/* kiln/sched.h: kiln's task runtime: a work-stealing pool, futures, promises, dependencies,
 * wait, as_completed, map and parallel_for.
 *
 * Semantics follow CPython's concurrent.futures and multiprocessing.Pool, with exceptions turned
 * into negative KILN_E* codes (kiln/error.h). docs/CONFORMANCE.md lists the rules kept, by ID
 * (FUT-01, WAIT-08, ...), with the C form of each and the test that checks it.
 *
 * Timeouts are double seconds: negative waits forever, 0 does not block, NaN is KILN_EINVAL.
 *
 * Blocking inside a task: every call here that waits (kiln_future_result, kiln_future_error,
 * kiln_wait, kiln_completion_next, kiln_imap_next, kiln_map, kiln_parallel_for, kiln_pool_apply)
 * may be called from inside a pool task. There the worker runs other queued tasks of its pool
 * while it waits, so nested waits never deadlock, even on a one-worker pool. A timed wait inside a
 * task may return late by the length of the task the worker was running when the deadline
 * passed.
 *
 * Ownership: every call that returns a kiln_future gives the caller one reference, which the
 * caller gives back with kiln_future_release(). A future outlives its pool: results can still be
 * read after the pool is shut down or destroyed. */
#ifndef KILN_SCHED_H
#define KILN_SCHED_H

#include <stdbool.h>
#include <stddef.h>

#include "kiln/error.h"
#include "kiln/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_pool kiln_pool;
typedef struct kiln_future kiln_future;
typedef struct kiln_completion kiln_completion;

/* A task: returns 0 or a negative KILN_E* code. On success it may store a value in *result
 * (NULL by default). The value is carried by the future; the future frees it on its last release
 * only if the task registered a destructor with kiln_task_set_result_free(). */
typedef int (*kiln_task_fn)(void *arg, void **result);

/* Called once a future is done (finished or cancelled), in the thread that completed it, or at
 * once in the caller's thread if it was already done. f is borrowed for the call. */
typedef void (*kiln_done_fn)(kiln_future *f, void *arg);

/* ---- pools --------------------------------------------------------------------------------- */

typedef struct kiln_pool_config {
  int threads;                 /* number of workers; > 0. Default: the CPUs this process may use */
  int (*init)(void *init_arg); /* optional: runs once in each worker before its first task; a
                                   non-zero return breaks the pool (KILN_EBROKEN, see below) */
  void *init_arg;
  const char *name; /* thread name prefix: workers are "<name>_<i>". Default "kiln" */
} kiln_pool_config;

/* Fills *cfg with the defaults. */
KILN_API void kiln_pool_config_default(kiln_pool_config *cfg);

/* Creates a pool. cfg NULL means the defaults. Workers start lazily: one more each time work is
 * submitted while no worker is idle, never more than cfg->threads.
 * KILN_EINVAL when threads <= 0; KILN_ENOMEM. *out is NULL on failure.
 * Broken pools: if an initializer fails, the pool is broken: queued and later tasks fail with
 * KILN_EBROKEN and kiln_submit returns KILN_EBROKEN. */
KILN_API int kiln_pool_create(const kiln_pool_config *cfg, kiln_pool **out);

/* Stops accepting work: later submissions return KILN_ESHUTDOWN. Tasks already submitted
 * (queued, waiting for dependencies, or running) still run, unless cancel_pending: then every
 * task that has not started is cancelled (kiln_future_cancelled() is true); running ones finish.
 * With wait, returns once every accepted task is done and every worker has exited.
 * May be called again; later calls only add cancel_pending or waiting.
 * Called with wait from one of the pool's own tasks: KILN_ESTATE, nothing done. */
KILN_API int kiln_pool_shutdown(kiln_pool *p, bool wait, bool cancel_pending);

/* kiln_pool_shutdown(p, true, false), then frees the pool. Safe on a busy pool: it waits for the
 * submitted work. NULL is a no-op. Must not be called from the pool's own tasks. */
KILN_API void kiln_pool_destroy(kiln_pool *p);

/* Number of workers the pool may run (cfg->threads). */
KILN_API int kiln_pool_threads(const kiln_pool *p);

/* Number of worker threads started so far (<= kiln_pool_threads). */
KILN_API int kiln_pool_started_threads(kiln_pool *p);

/* The pool whose worker is the calling thread, or NULL outside any pool. Borrowed. */
KILN_API kiln_pool *kiln_pool_current(void);

/* The index 0..threads-1 of the calling worker, or -1 outside any pool. */
KILN_API int kiln_worker_index(void);

/* ---- submitting work ----------------------------------------------------------------------- */

/* Queues fn(arg) on the pool. From a worker of p the task goes on that worker's own deque (LIFO
 * for the owner, stolen FIFO by others); from other threads through the pool's injection queue.
 * KILN_ESHUTDOWN after shutdown/close/terminate, KILN_EBROKEN on a broken pool, KILN_ENOMEM.
 * Any thread. */
KILN_API int kiln_submit(kiln_pool *p, kiln_task_fn fn, void *arg, kiln_future **out);

/* Like kiln_submit, but fn runs only once every future in deps[0..ndeps) has succeeded. If one
 * fails or is cancelled, this future fails with KILN_EDEPENDENCY without running, and its message
 * names the cause ("dependency 1 of 2 failed: KILN_EIO: <its message>"). The dependents of a
 * cancelled future are not cancelled: they fail with KILN_EDEPENDENCY. deps may hold futures of
 * any pool, promises, and duplicates; ndeps may be 0. The caller keeps its references to deps. */
KILN_API int kiln_submit_after(kiln_pool *p, kiln_future *const *deps, size_t ndeps,
                               kiln_task_fn fn, void *arg, kiln_future **out);

/* Inside a task: records a message for the failure the task is about to return, and returns code,
 * so a task can `return kiln_task_fail(KILN_EIO, "cannot open %s", path);`. Outside a task it only
 * returns code. */
KILN_API int kiln_task_fail(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Inside a task: the future frees the task's result with dtor on its last release. */
KILN_API void kiln_task_set_result_free(void (*dtor)(void *value));

/* ---- multiprocessing.Pool-style calls ------------------------------------------------------- */

/* Submits and waits: returns the task's code and stores its value in *result (may be NULL).
 * Waits without a timeout (as Python's apply); for one, use kiln_pool_apply_async and
 * kiln_future_result. Inside a task it runs other tasks while it waits (see the top of this
 * file). */
KILN_API int kiln_pool_apply(kiln_pool *p, kiln_task_fn fn, void *arg, void **result);

/* Submits; when the task is done exactly one of callback (success) or error_callback (failure or
 * cancellation) runs, once, with cb_arg. Either may be NULL. out may be NULL. */
KILN_API int kiln_pool_apply_async(kiln_pool *p, kiln_task_fn fn, void *arg, kiln_done_fn callback,
                                   kiln_done_fn error_callback, void *cb_arg, kiln_future **out);

/* Pool.map_async: runs fn over args[0..n) in chunks of chunksize items (>= 1, else KILN_EINVAL)
 * and returns at once. The future (*out, may be NULL) succeeds with a `void **` array of the n
 * results in input order (owned by the future: valid while you hold it, freed with it; NULL when
 * n is 0; the items themselves stay the caller's), or fails as soon as one item fails, with that
 * item's code and the message "item K: <its message>"; the other chunks still run and their
 * results are dropped. Cancelling the future cancels the chunks not yet started. Exactly one of
 * callback (success) or error_callback (failure or cancellation) runs, once, with cb_arg; for an
 * empty input callback runs before this call returns. KILN_ESHUTDOWN / KILN_EBROKEN when the
 * pool takes no work (nothing runs then, no callback), KILN_ENOMEM (likewise). If the pool shuts
 * down while the chunks are being submitted, the call returns 0 and the future fails with that
 * code. Any thread, also from inside a task. */
KILN_API int kiln_map_async(kiln_pool *p, kiln_task_fn fn, void *const *args, size_t n,
                            size_t chunksize, kiln_done_fn callback, kiln_done_fn error_callback,
                            void *cb_arg, kiln_future **out);

/* Pool.imap / imap_unordered: results one at a time, each as soon as it is there, without
 * waiting for the whole input. fn runs over args[0..n) in chunks of chunksize items (>= 1, else
 * KILN_EINVAL); the array of pointers is copied (the items stay the caller's and must outlive the
 * run). ordered: results come in input order, each waiting only for itself and the ones before
 * it; otherwise in completion order. Every chunk is submitted before this returns; a result is
 * ready as soon as its item has run, not its whole chunk. n may be 0 (args NULL): the first next
 * is KILN_EEOF. KILN_ESHUTDOWN / KILN_EBROKEN when the pool takes no work, KILN_ENOMEM (nothing
 * runs then, *out NULL). If the pool shuts down while the chunks are being submitted, the call
 * returns 0 and the items not submitted come out of next with that code. Any thread, also from
 * inside a task. The iterator is the caller's, freed with kiln_imap_destroy. */
typedef struct kiln_imap kiln_imap;
KILN_API int kiln_imap_start(kiln_pool *p, kiln_task_fn fn, void *const *args, size_t n,
                             size_t chunksize, bool ordered, kiln_imap **out);

/* The next result. 0: *value is what the item's task stored (now the caller's, see below) and
 * *index its input position. The item's own failure code (its message in kiln_imap_message) for
 * a failed item, with *index set and *value NULL: iteration goes on past it, as Python's imap
 * raises at that item and can be resumed. Items whose chunk never ran fail with KILN_ECANCELLED
 * (pool terminated or shut down with cancel_pending) or the chunk's own code (KILN_EBROKEN).
 * KILN_EEOF after the last item, and on every later call. KILN_ETIMEDOUT when timeout passed
 * first: nothing is consumed. KILN_EINVAL for a NaN timeout. value and index may be NULL.
 * Ownership: a value returned here is handed over. kiln never frees it, even if the task
 * registered a destructor with kiln_task_set_result_free (the caller, who knows the task, frees
 * it); the destructor frees only the results never taken: those left at kiln_imap_destroy, the
 * values of failed items, and a result taken with value NULL. One thread at a time per iterator;
 * inside a task it runs other tasks of the task's pool while it waits (see the top of this
 * file). */
KILN_API int kiln_imap_next(kiln_imap *it, double timeout, void **value, size_t *index);

/* The message of the failed item that the last kiln_imap_next returned (what its task gave
 * kiln_task_fail, else kiln_strerror of its code); "" after a success, a timeout or the end.
 * Borrowed: valid until the next call on it. The thread that calls next. */
KILN_API const char *kiln_imap_message(const kiln_imap *it);

/* Frees the iterator, also before the end: results not taken are dropped (freed with their
 * task's destructor if it set one), the chunks still queued or running still run, and their
 * results are dropped as they come. Not concurrently with next. NULL is a no-op. */
KILN_API void kiln_imap_destroy(kiln_imap *it);

/* close(): no new work (KILN_ESHUTDOWN), queued work still runs. terminate(): also cancels every
 * task not yet started (running tasks cannot be interrupted in C and finish). join(): waits until
 * all accepted work is done and the workers have exited; KILN_ESTATE unless closed or
 * terminated. */
KILN_API int kiln_pool_close(kiln_pool *p);
KILN_API int kiln_pool_terminate(kiln_pool *p);
KILN_API int kiln_pool_join(kiln_pool *p);
/* join() with a timeout: 0 once every worker has exited, KILN_ETIMEDOUT if the timeout passed
 * first (the pool keeps running; join again later), KILN_ESTATE as for join. From inside one of
 * the pool's own tasks, join is KILN_ESTATE (a worker cannot wait for itself to exit). */
KILN_API int kiln_pool_join_timeout(kiln_pool *p, double timeout);

/* ---- futures ------------------------------------------------------------------------------- */

/* Takes one more reference; returns f. Any thread. */
KILN_API kiln_future *kiln_future_retain(kiln_future *f);

/* Gives back one reference; the last frees the future (and its value, if a destructor was set).
 * Releasing a pending future does not cancel it. NULL is a no-op. Any thread. */
KILN_API void kiln_future_release(kiln_future *f);

/* Waits up to timeout for f. Returns 0 and the value in *value (borrowed: valid while you hold f),
 * the task's error code (value NULL), KILN_ECANCELLED, or KILN_ETIMEDOUT. value may be NULL. */
KILN_API int kiln_future_result(kiln_future *f, double timeout, void **value);

/* Like concurrent.futures' exception(): 0 when f succeeded (*message NULL); the error code with
 * *message (borrowed, valid while you hold f) when it failed; KILN_ECANCELLED; KILN_ETIMEDOUT.
 * message may be NULL. */
KILN_API int kiln_future_error(kiln_future *f, double timeout, const char **message);

/* States (FUT-01): pending, running, finished (value or error), cancelled.
 * done = finished or cancelled. */
KILN_API bool kiln_future_done(kiln_future *f);
KILN_API bool kiln_future_running(kiln_future *f);
KILN_API bool kiln_future_cancelled(kiln_future *f);

/* Cancels f if it has not started: returns true (also when already cancelled). Returns false for a
 * running or finished future. Waiters wake with KILN_ECANCELLED; callbacks run before this
 * returns. A cancelled task's function never runs. */
KILN_API bool kiln_future_cancel(kiln_future *f);

/* Adds a done-callback. Callbacks run in the order added, once each, in the thread that completes
 * f (inside kiln_promise_resolve/kiln_future_cancel, before they return), or at once in this
 * thread if f is already done. KILN_ENOMEM. */
KILN_API int kiln_future_on_done(kiln_future *f, kiln_done_fn fn, void *arg);

/* ---- promises: futures completed by their owner --------------------------------------------- */

KILN_API int kiln_promise_create(kiln_future **out);

/* Marks a pending promise running (like set_running_or_notify_cancel): true if it now runs, false
 * if it was cancelled. After this, kiln_future_cancel() returns false. */
KILN_API bool kiln_promise_set_running(kiln_future *f);

/* Completes the promise with a value (not freed by the future) or an error (code < 0 and a
 * printf-style message, fmt may be NULL). KILN_ESTATE if it is already done: the first result
 * stays. KILN_EINVAL for code >= 0 in reject. */
KILN_API int kiln_promise_resolve(kiln_future *f, void *value);
KILN_API int kiln_promise_resolve_owned(kiln_future *f, void *value, void (*dtor)(void *value));
KILN_API int kiln_promise_reject(kiln_future *f, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* ---- waiting on many ----------------------------------------------------------------------- */

typedef enum { KILN_ALL_COMPLETED, KILN_FIRST_COMPLETED, KILN_FIRST_EXCEPTION } kiln_return_when;

/* Waits until the condition holds or timeout passes. A cancelled future counts as done at once
 * (rule WAIT-08). FIRST_EXCEPTION: until a future fails (cancellation is not a failure) or
 * all are done. Then reorders fs stably: fs[0..*ndone) are the distinct done futures in input
 * order, then the distinct pending ones, then any duplicate entries. Returns 0, or
 * KILN_ETIMEDOUT when the condition did not hold in time (fs and *ndone are filled in either
 * way); KILN_EINVAL. */
KILN_API int kiln_wait(kiln_future **fs, size_t n, kiln_return_when when, double timeout,
                       size_t *ndone);

/* Starts iterating fs in completion order; every future is yielded exactly once (duplicates
 * once), those already done first. timeout is one deadline counted from this call, also for
 * futures added later. The completion takes its own references. */
KILN_API int kiln_as_completed(kiln_future *const *fs, size_t n, double timeout,
                               kiln_completion **out);

/* Adds f to the set while iterating (a batch feeds the set as it submits). A future already in the
 * set and not yet yielded is ignored; a future added again after it was yielded (and released)
 * counts as a new entry. Any thread. */
KILN_API int kiln_completion_add(kiln_completion *c, kiln_future *f);

/* Next done future: 0 and *f (one reference, yours to release); KILN_EEOF when every future has
 * been yielded; KILN_ETIMEDOUT when the deadline passed with some unfinished (see
 * kiln_completion_message). One thread at a time per completion. */
KILN_API int kiln_completion_next(kiln_completion *c, kiln_future **f);

/* "N (of M) futures unfinished" after a timeout, else "". Borrowed, valid until the next call. */
KILN_API const char *kiln_completion_message(kiln_completion *c);

/* Number of futures added but not yet yielded. */
KILN_API size_t kiln_completion_pending(kiln_completion *c);

/* Releases the references of futures not yet yielded. NULL is a no-op. */
KILN_API void kiln_completion_destroy(kiln_completion *c);

/* ---- data parallelism ---------------------------------------------------------------------- */

/* results[i] = value of fn(args[i]); errors[i] = its code. Items run in chunks of chunksize
 * (>= 1, else KILN_EINVAL); results come in input order. timeout is one deadline from the call:
 * when it passes, the calls not started are cancelled (errors[i] = KILN_ECANCELLED), those still
 * running are left to finish in the background (errors[i] = KILN_ETIMEDOUT, results dropped).
 * Returns 0 if all succeeded, KILN_ETIMEDOUT if the deadline passed, else the code of the first
 * failed item in input order (the later items still ran). results and errors may be NULL. */
KILN_API int kiln_map(kiln_pool *p, kiln_task_fn fn, void *const *args, size_t n, size_t chunksize,
                      double timeout, void **results, int *errors);

/* Calls body(ctx, lo, hi) over disjoint subranges covering [begin, end), each at most grain long
 * (grain 0 means 1). Ranges are halved lazily, only when the running worker has nothing left for
 * idle workers to steal, so a loop costs O(threads x log n) tasks, not n / grain. Returns when
 * all are done. 0, KILN_ESHUTDOWN, KILN_ENOMEM. */
KILN_API int kiln_parallel_for(kiln_pool *p, size_t begin, size_t end, size_t grain,
                               void (*body)(void *ctx, size_t lo, size_t hi), void *ctx);

#ifdef __cplusplus
}
#endif
#endif /* KILN_SCHED_H */
