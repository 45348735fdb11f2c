/* kiln/proc.h: multiprocessing for C: processes and their start methods, waiting on channels
 * between processes, a process pool whose results are ordinary kiln futures, shared memory,
 * process-shared locks, semaphores, conditions, events and barriers, process queues, and a
 * manager process that serves named objects to other processes and hosts.
 *
 * Semantics follow CPython's multiprocessing, with exceptions turned into negative KILN_E* codes
 * (kiln/error.h); docs/CONFORMANCE.md lists the rules kept and docs/PROCESSES.md explains the
 * choices a threaded C program forces (start methods, what crosses a process boundary).
 *
 * What crosses a process boundary: byte strings (the caller serialises; kiln copies bytes, never
 * pointers), shared memory segments (by name), and channels (kiln/sync.h) handed to a child when
 * it starts.
 * Function pointers are passed as addresses: every process kiln starts is a fork of the program
 * (directly, or of its fork server), so a function of the program or of a library loaded before
 * the fork server started has the same address in the child.
 *
 * Timeouts are double seconds: negative waits forever, 0 does not block, NaN is KILN_EINVAL. */
#ifndef KILN_PROC_H
#define KILN_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/error.h"
#include "kiln/sched.h"
#include "kiln/sync.h"
#include "kiln/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== processes, connections, process pool ======================================================= */

/* ---- start methods and the fork server ----------------------------------------------------------
 *
 * Forking a process that has running threads copies only the calling thread: a lock another thread
 * held (malloc's, stdio's, a kiln pool's) stays locked forever in the child. So kiln's default
 * start method is a fork server: a small process forked by kiln_forkserver_start() while the
 * program still has one thread, which later forks every child on request. Its children start
 * from that clean, single-threaded image (the program's code and static data as they were when
 * the server started; anything the program built since, they do not see: pass it as the byte
 * argument or through shared memory). KILN_START_FORK forks the caller directly: fast and sees
 * everything, but safe only while the caller knows no other thread holds a lock the child needs
 * (no pool running, or a child that only calls async-signal-safe functions). */
typedef enum kiln_start_method {
  KILN_START_FORKSERVER = 0, /* the default; kiln_forkserver_start() must have run */
  KILN_START_FORK = 1,
} kiln_start_method;

/* Starts the fork server. Call it early in main(), before any thread exists (before creating a
 * kiln_pool, a GPU context or anything that starts threads). A restart after kiln_forkserver_stop
 * must also happen before any thread exists. Idempotent. The server ignores SIGINT and SIGTERM (a
 * Ctrl-C reaching the process group is the parent's business) and dies with the program (it
 * watches the program's pidfd), taking its daemon children with it. 0, or KILN_EIO with errno's
 * cause. Not thread-safe with itself. */
KILN_API int kiln_forkserver_start(void);

/* Whether the fork server is running (started and not stopped). */
KILN_API bool kiln_forkserver_running(void);

/* Stops the fork server (children already started are not affected). Idempotent. */
KILN_API void kiln_forkserver_stop(void);

/* ---- connections --------------------------------------------------------------------------------
 *
 * Pipes between processes are kiln_channel (kiln/sync.h, multiprocessing.Pipe): make a pair with
 * kiln_channel_pair before starting a child, hand one end to the child through
 * kiln_process_config.channels, and close the parent's copy of that end once the child has
 * started, so that end of stream (KILN_EEOF) reaches the other side when the child dies. */

/* ---- processes (multiprocessing.Process) --------------------------------------------------------- */

typedef struct kiln_process kiln_process;

/* What a child runs: arg is a private copy of the bytes given to kiln_process_start (NULL when
 * len is 0). Its return value is the exit status (0..255); it may also call exit() or die. */
typedef int (*kiln_process_fn)(const void *arg, size_t len);

typedef struct kiln_process_config {
  kiln_start_method start;  /* KILN_START_FORKSERVER by default */
  bool daemon;              /* dies (SIGKILL) when the program that started it ends */
  const char *name;         /* shown in ps (prctl PR_SET_NAME, 15 bytes); NULL: "kiln-proc" */
  kiln_channel *const *channels; /* ends handed to the child: kiln_process_channel(i) there */
  size_t nchannels;
} kiln_process_config;

KILN_API void kiln_process_config_default(kiln_process_config *cfg);

/* Starts fn(arg, len) in a new process. The child has copies of the channels, the standard
 * streams and nothing else the caller opened (other descriptors are closed in it). The caller's
 * copies of the channels stay open: destroy the ends meant for the child once it has started, so
 * that end of stream reaches the other side when the child dies. KILN_ESTATE for FORKSERVER when the fork server
 * is not running, KILN_EINVAL, KILN_ENOMEM, KILN_EIO. */
KILN_API int kiln_process_start(const kiln_process_config *cfg, kiln_process_fn fn, const void *arg,
                                size_t len, kiln_process **out);

/* In a child started by kiln: the i-th channel it was given, or NULL. Owned by kiln (do not
 * destroy it; closing it is fine). */
KILN_API kiln_channel *kiln_process_channel(size_t i);

/* The child's pid. */
KILN_API int kiln_process_pid(const kiln_process *p);

/* Waits until the process has ended (and reaps it): 0, or KILN_ETIMEDOUT (timeout < 0 forever).
 * Any thread; several may join at once (never concurrently with kiln_process_destroy). */
KILN_API int kiln_process_join(kiln_process *p, double timeout);

/* Whether the process is still running (reaps it if it has just ended). Never blocks. */
KILN_API bool kiln_process_is_alive(kiln_process *p);

/* Python's exitcode once the process has ended: its exit status (0..255), or -N when signal N
 * killed it. KILN_ESTATE while it runs. */
KILN_API int kiln_process_exitcode(kiln_process *p, int *code);

/* Sends SIGTERM / SIGKILL (no effect once it has ended; never signals a reused pid). 0 or
 * KILN_EIO. */
KILN_API int kiln_process_terminate(kiln_process *p);
KILN_API int kiln_process_kill(kiln_process *p);

/* A file descriptor that becomes readable (POLLIN) when the process has ended (its pidfd): for
 * poll/epoll loops. Owned by the handle. */
KILN_API int kiln_process_sentinel(const kiln_process *p);

/* multiprocessing.connection.wait over channels and processes: waits until at least one of
 * chs[0..n) can receive (a message or end of stream) or one of procs[0..nprocs) has ended, or the
 * timeout passed (negative waits forever, kiln's timeout rule). Reorders both arrays so the ready
 * ones come first, *nready_chs and *nready_procs of them (both 0 after the timeout). KILN_ESTATE
 * if a channel is send-only or closed, KILN_EINVAL. */
KILN_API int kiln_process_wait(kiln_channel **chs, size_t n, kiln_process **procs, size_t nprocs,
                               double timeout, size_t *nready_chs, size_t *nready_procs);

/* Frees the handle. A process still running goes on (a daemon one still dies with the program);
 * it is reaped by kiln. NULL is a no-op. */
KILN_API void kiln_process_destroy(kiln_process *p);

/* ==== process pool (multiprocessing.Pool, concurrent.futures.ProcessPoolExecutor) ================ */

/* Arguments and results cross to the workers as byte strings: the caller serialises (or passes
 * the name of a shared memory segment). A result is a kiln_bytes owned by whoever the call says. */
typedef struct kiln_bytes {
  size_t len;
  void *data; /* malloc'd (NULL only when len is 0) */
} kiln_bytes;

/* A task, run in a worker process: reads arg[0..len), and on success returns 0 with *result set to
 * malloc'd bytes (or NULL) and *rlen their size; kiln sends them back and frees them. A negative
 * KILN_E* return fails the task with that code (message via kiln_ptask_fail). */
typedef int (*kiln_ptask_fn)(const void *arg, size_t len, void **result, size_t *rlen);

/* Inside a process task: records the failure's message and returns code
 * (`return kiln_ptask_fail(KILN_EIO, "cannot open %s", path);`). */
KILN_API int kiln_ptask_fail(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

typedef struct kiln_ppool kiln_ppool;

typedef struct kiln_ppool_config {
  int processes;                 /* > 0; 0 means the number of online CPUs; < 0 is KILN_EINVAL */
  kiln_start_method start;       /* KILN_START_FORKSERVER by default */
  void (*initializer)(const void *initarg, size_t len); /* runs once in each worker at start */
  const void *initarg;
  size_t initarg_len;
  uint32_t maxtasksperchild;     /* a worker is replaced after this many tasks; 0: never */
  /* What a worker dying in the middle of a task does. false (the default, multiprocessing.Pool
   * made safe): that task fails with KILN_EKILLED (killed by a signal: its message names it) or
   * KILN_EEXITED, the worker is replaced and the pool goes on. true (ProcessPoolExecutor): the
   * pool is broken: that task and every pending one fail with KILN_EBROKEN, and later submits
   * return KILN_EBROKEN. */
  bool break_on_worker_death;
} kiln_ppool_config;

KILN_API void kiln_ppool_config_default(kiln_ppool_config *cfg);

/* Starts the workers. KILN_EINVAL (bad config), KILN_ESTATE (fork server not running),
 * KILN_ENOMEM, KILN_EIO. */
KILN_API int kiln_ppool_create(const kiln_ppool_config *cfg, kiln_ppool **out);

/* The executor form: queues fn(arg) and returns its future at once. The future succeeds with a
 * `kiln_bytes *` (owned by the future, valid while you hold it), or fails with the task's code and
 * message, KILN_EKILLED / KILN_EEXITED / KILN_EBROKEN as above, or KILN_ECANCELLED. It is an
 * ordinary kiln_future: it mixes with thread tasks, promises and GPU jobs in kiln_wait,
 * kiln_as_completed and kiln_submit_after. Cancelling it before a worker takes it removes it.
 * KILN_ESHUTDOWN after close/terminate, KILN_EBROKEN, KILN_ENOMEM. Any thread. */
KILN_API int kiln_ppool_submit(kiln_ppool *p, kiln_ptask_fn fn, const void *arg, size_t len,
                               kiln_future **out);

/* apply: submits and waits; on success *result is the task's bytes (result->data is yours to
 * free; result may be NULL). Returns the task's code. */
KILN_API int kiln_ppool_apply(kiln_ppool *p, kiln_ptask_fn fn, const void *arg, size_t len,
                              kiln_bytes *result);

/* apply_async: as submit; when the task is done exactly one of callback (success) or
 * error_callback (failure, cancellation) runs once with cb_arg, on a thread of kiln's. out may be
 * NULL. */
KILN_API int kiln_ppool_apply_async(kiln_ppool *p, kiln_ptask_fn fn, const void *arg, size_t len,
                                    kiln_done_fn callback, kiln_done_fn error_callback,
                                    void *cb_arg, kiln_future **out);

/* map_async over args[0..n) in chunks of chunksize (>= 1) items per message to a worker. The
 * future succeeds with a `kiln_bytes *` array of the n results in input order (owned by the
 * future), or fails with the first failing item's code and "item K: <its message>" (the other
 * chunks still run). Callbacks as apply_async; an empty input succeeds at once. */
KILN_API int kiln_ppool_map_async(kiln_ppool *p, kiln_ptask_fn fn, const kiln_bytes *args,
                                  size_t n, size_t chunksize, kiln_done_fn callback,
                                  kiln_done_fn error_callback, void *cb_arg, kiln_future **out);

/* map: as map_async, then waits. results[i] (may be NULL) receives item i's bytes (yours to free),
 * errors[i] (may be NULL) its code. 0 when all succeeded, else the first failing item's code. */
KILN_API int kiln_ppool_map(kiln_ppool *p, kiln_ptask_fn fn, const kiln_bytes *args, size_t n,
                            size_t chunksize, kiln_bytes *results, int *errors);

/* starmap: each item is nargs byte strings, args[i * nargs .. (i + 1) * nargs), given to fn as
 * one array. Otherwise as map. */
typedef int (*kiln_pstar_fn)(const kiln_bytes *args, size_t nargs, void **result, size_t *rlen);
KILN_API int kiln_ppool_starmap(kiln_ppool *p, kiln_pstar_fn fn, const kiln_bytes *args, size_t n,
                                size_t nargs, size_t chunksize, kiln_bytes *results, int *errors);
KILN_API int kiln_ppool_starmap_async(kiln_ppool *p, kiln_pstar_fn fn, const kiln_bytes *args,
                                      size_t n, size_t nargs, size_t chunksize,
                                      kiln_done_fn callback, kiln_done_fn error_callback,
                                      void *cb_arg, kiln_future **out);

/* imap / imap_unordered: results as they come, without waiting for the whole input. The args are
 * copied at the call. ordered: in input order (a result waits for the ones before it); otherwise
 * in completion order. */
typedef struct kiln_pimap kiln_pimap;
KILN_API int kiln_ppool_imap(kiln_ppool *p, kiln_ptask_fn fn, const kiln_bytes *args, size_t n,
                             size_t chunksize, bool ordered, kiln_pimap **out);

/* The next result: 0 with *result (data yours to free) and *index its input position; the item's
 * own failure code (its message in kiln_pimap_message) for a failed item: the iteration goes on
 * past it, as Python's imap raises at that item and can be resumed; KILN_EEOF after the last;
 * KILN_ETIMEDOUT (nothing consumed). One thread at a time. */
KILN_API int kiln_pimap_next(kiln_pimap *it, double timeout, kiln_bytes *result, size_t *index);
KILN_API const char *kiln_pimap_message(const kiln_pimap *it);
/* Drops the results not taken (the items still run). NULL is a no-op. */
KILN_API void kiln_pimap_destroy(kiln_pimap *it);

/* The pool's worker pids (up to cap), their count returned: for tests and monitoring. */
KILN_API size_t kiln_ppool_pids(kiln_ppool *p, int *pids, size_t cap);

/* close: no new work (KILN_ESHUTDOWN), queued work still runs, then the workers exit.
 * terminate: also cancels every task not yet started and kills the workers (running tasks fail
 * with KILN_ECANCELLED). join: waits until the workers have exited; KILN_ESTATE unless closed or
 * terminated. destroy: terminate (if not closed), join, free; NULL is a no-op. */
KILN_API int kiln_ppool_close(kiln_ppool *p);
KILN_API int kiln_ppool_terminate(kiln_ppool *p);
KILN_API int kiln_ppool_join(kiln_ppool *p);
KILN_API void kiln_ppool_destroy(kiln_ppool *p);


/* ==== shared memory, process-shared synchronisation, process queues ============================== */


/* ==== manager ==================================================================================== */


#ifdef __cplusplus
}
#endif
#endif /* KILN_PROC_H */
