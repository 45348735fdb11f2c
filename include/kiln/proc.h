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
 * the name of a shared memory segment). A result is a kiln_bytes owned by whoever the call says.
 * One task's arguments (a map chunk's together) and results travel as one channel message, under
 * 4 GiB: larger arguments are KILN_EINVAL at the call, larger results fail the task with
 * KILN_EINVAL. */
typedef struct kiln_bytes {
  size_t len;
  void *data; /* malloc'd (NULL only when len is 0) */
} kiln_bytes;

/* A task, run in a worker process: reads arg[0..len), and on success returns 0 with *result set to
 * malloc'd bytes (or NULL) and *rlen their size; kiln sends them back and frees them. A negative
 * KILN_E* return fails the task with that code (message via kiln_ptask_fail); a positive one
 * fails it with KILN_EINVAL (its result dropped). */
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
  int processes;                 /* 1..4096; 0 means the number of online CPUs; < 0 is KILN_EINVAL */
  kiln_start_method start;       /* KILN_START_FORKSERVER by default */
  void (*initializer)(const void *initarg, size_t len); /* runs once in each worker at start */
  const void *initarg;
  size_t initarg_len;
  /* A worker is replaced after this many tasks (a map chunk counts as one); 0: never (Python's
   * None). Python's ValueError cases cannot be written here: the type has no negative or
   * fractional values, and 0 means unlimited rather than an error. */
  uint32_t maxtasksperchild;
  /* What a worker dying in the middle of a task does. false (the default, multiprocessing.Pool
   * made safe): that task fails with KILN_EKILLED (killed by a signal: its message names it) or
   * KILN_EEXITED, the worker is replaced and the pool goes on. true (ProcessPoolExecutor): the
   * pool is broken: that task and every pending one fail with KILN_EBROKEN, and later submits
   * return KILN_EBROKEN. */
  bool break_on_worker_death;
} kiln_ppool_config;

KILN_API void kiln_ppool_config_default(kiln_ppool_config *cfg);

/* Starts the workers (cfg NULL: the defaults). The pool then runs one thread per worker, which
 * also runs the callbacks and the futures' done-callbacks: those may submit, but must not wait on
 * the pool (apply, map, a pool future's result, join, destroy), which could wait on their own
 * thread. KILN_EINVAL (bad config), KILN_ESTATE (fork server not running), KILN_ENOMEM, KILN_EIO.
 * *out NULL on failure. */
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

/* Everything in this section lives in shared memory and works between any processes of one host
 * that map it: children forked directly (which inherit the mapping) and children of the fork
 * server (which do not: they attach by name). Each object is either
 *   - in a segment of its own: kiln_X_create(name, ...) makes it, kiln_X_attach(name) opens it in
 *     another process; or
 *   - placed in memory the caller shares (a kiln_shm segment, or any MAP_SHARED mapping):
 *     kiln_X_size() bytes (a multiple of 64, so objects packed one after another stay aligned)
 *     at an 8-byte aligned address, kiln_X_init(mem, ...) once, then kiln_X_at(mem) in every
 *     process that maps it.
 * kiln_X_create and kiln_X_attach return 0, KILN_EINVAL (a bad argument, or a segment that holds
 * another kind of object), the codes of kiln_shm_create / kiln_shm_attach (KILN_EEXIST,
 * KILN_ENOENT), KILN_ENOMEM or KILN_EIO, and set *out (NULL on failure).
 * Handles are per process (malloc'd, freed by kiln_X_destroy, which unmaps a segment of the
 * object's own but never frees the shared state; NULL is a no-op). Every call on a handle may be
 * made by any thread of its process, concurrently; a handle is inherited by a plain fork and works
 * there. Destroying a handle that a thread of the same process is blocked on is undefined.
 * kiln_X_init is not thread-safe: run it once, before the object is shared. kiln_X_at checks
 * that mem holds an initialised object of that kind (KILN_EINVAL if not). A kiln_X_shm result is
 * borrowed from the handle. Blocking calls block the calling thread, also inside a pool task,
 * as the calls of sync.h do (the same rule about tasks applies).
 *
 * Names: a name is 1..200 characters without '/'; the segment is /dev/shm/kiln-NAME, so kiln's
 * entries are easy to tell apart. A NULL name at creation picks a unique one (kiln_shm_name gives
 * it back, to pass to other processes).
 *
 * Lifetime of own segments: the handle that created an object's segment unlinks the name when it
 * is destroyed in the creating process (processes already attached keep using it; the memory goes
 * when the last one unmaps). So create, start the children, let them attach, and destroy last.
 * kiln_shm segments are different: Python's SharedMemory rules, the caller unlinks explicitly.
 *
 * Robustness: the state of every object is guarded by a robust process-shared mutex, so a process
 * that dies inside a call never blocks the others. A lock, rlock or condition whose holder process
 * dies holding it passes to the next acquirer with KILN_EOWNERDEAD: that acquirer holds it, and
 * the data it guards may be half-updated (repair it, as with PTHREAD_MUTEX_ROBUST). Waiters notice
 * a dead holder within about 20 ms. A semaphore unit, or a queue message half-written by a dying
 * process, is simply lost (no owner to report). */

/* ---- named shared memory (multiprocessing.shared_memory.SharedMemory) ---------------------------- */

typedef struct kiln_shm kiln_shm;

/* Creates and maps a new zero-filled segment of size bytes. name NULL picks a unique name.
 * 0, KILN_EINVAL (size 0, bad name), KILN_EEXIST (the name exists), KILN_ENOMEM, KILN_EIO. */
KILN_API int kiln_shm_create(const char *name, size_t size, kiln_shm **out);

/* Maps an existing segment; its size is the segment's own. 0, KILN_EINVAL (NULL or bad name),
 * KILN_ENOENT (no such segment), KILN_ENOMEM, KILN_EIO. */
KILN_API int kiln_shm_attach(const char *name, kiln_shm **out);

/* The mapping (page aligned), its size in bytes, and the name (without "kiln-"), all valid until
 * kiln_shm_close. */
KILN_API void *kiln_shm_data(const kiln_shm *s);
KILN_API size_t kiln_shm_size(const kiln_shm *s);
KILN_API const char *kiln_shm_name(const kiln_shm *s);

/* Removes the name (later attaches get KILN_ENOENT; mappings stay valid). Exactly once over all
 * processes: 0, then KILN_ENOENT. Any thread. */
KILN_API int kiln_shm_unlink(kiln_shm *s);

/* Unmaps and frees the handle; never unlinks. NULL is a no-op. */
KILN_API void kiln_shm_close(kiln_shm *s);

/* ---- process-shared lock (multiprocessing.Lock) ----------------------------------------------
 * As kiln_lock (sync.h): not reentrant, any thread of any process may release it (LOCK-04). */

typedef struct kiln_plock kiln_plock;

KILN_API size_t kiln_plock_size(void);
KILN_API int kiln_plock_init(void *mem);
KILN_API int kiln_plock_at(void *mem, kiln_plock **out);
KILN_API int kiln_plock_create(const char *name, kiln_plock **out);
KILN_API int kiln_plock_attach(const char *name, kiln_plock **out);
/* The object's own segment (borrowed; NULL for kiln_plock_at handles). */
KILN_API kiln_shm *kiln_plock_shm(const kiln_plock *l);
KILN_API void kiln_plock_destroy(kiln_plock *l);

/* 0, KILN_EOWNERDEAD (acquired from a holder that died), KILN_ETIMEDOUT (timeout 0: held now),
 * KILN_EINVAL (NaN). */
KILN_API int kiln_plock_acquire(kiln_plock *l, double timeout);
/* KILN_ESTATE when it is not locked (Python's ValueError). */
KILN_API int kiln_plock_release(kiln_plock *l);
KILN_API bool kiln_plock_locked(kiln_plock *l);

/* ---- process-shared rlock (multiprocessing.RLock) ------------------------------------------------
 * Owned by one thread of one process (RLOCK-04), re-acquired by it with a count. */

typedef struct kiln_prlock kiln_prlock;

KILN_API size_t kiln_prlock_size(void);
KILN_API int kiln_prlock_init(void *mem);
KILN_API int kiln_prlock_at(void *mem, kiln_prlock **out);
KILN_API int kiln_prlock_create(const char *name, kiln_prlock **out);
KILN_API int kiln_prlock_attach(const char *name, kiln_prlock **out);
KILN_API kiln_shm *kiln_prlock_shm(const kiln_prlock *r);
KILN_API void kiln_prlock_destroy(kiln_prlock *r);

/* As kiln_plock_acquire; KILN_EOWNERDEAD leaves the count at 1. */
KILN_API int kiln_prlock_acquire(kiln_prlock *r, double timeout);
/* KILN_ESTATE unless the calling thread owns it. */
KILN_API int kiln_prlock_release(kiln_prlock *r);
KILN_API bool kiln_prlock_is_owned(kiln_prlock *r);
KILN_API bool kiln_prlock_locked(kiln_prlock *r);

/* ---- process-shared semaphore (multiprocessing.Semaphore / BoundedSemaphore) ------------------ */

typedef struct kiln_psem kiln_psem;

/* value < 0 is KILN_EINVAL; bounded: releases never go above value. */
KILN_API size_t kiln_psem_size(void);
KILN_API int kiln_psem_init(void *mem, int value, bool bounded);
KILN_API int kiln_psem_at(void *mem, kiln_psem **out);
KILN_API int kiln_psem_create(const char *name, int value, bool bounded, kiln_psem **out);
KILN_API int kiln_psem_attach(const char *name, kiln_psem **out);
KILN_API kiln_shm *kiln_psem_shm(const kiln_psem *s);
KILN_API void kiln_psem_destroy(kiln_psem *s);

/* 0 or KILN_ETIMEDOUT (timeout 0: no unit free, at once: SEM-06's multiprocessing form). Each
 * unit released lets exactly one acquirer through, but not in arrival order (unlike
 * kiln_semaphore): a newcomer may take a unit before a sleeper wakes. */
KILN_API int kiln_psem_acquire(kiln_psem *s, double timeout);
/* n >= 1 else KILN_EINVAL; bounded and above the initial value: KILN_EINVAL, nothing changed. */
KILN_API int kiln_psem_release(kiln_psem *s, int n);
KILN_API int kiln_psem_value(kiln_psem *s);

/* ---- process-shared condition (multiprocessing.Condition) --------------------------------------
 * The condition holds its own lock: an rlock (Python's default) or, with plain_lock, a plain lock.
 * Waiters may be threads of any process; notify wakes the longest waiting first, passing over
 * waiters whose process died. */

typedef struct kiln_pcond kiln_pcond;

KILN_API size_t kiln_pcond_size(void);
KILN_API int kiln_pcond_init(void *mem, bool plain_lock);
KILN_API int kiln_pcond_at(void *mem, kiln_pcond **out);
KILN_API int kiln_pcond_create(const char *name, bool plain_lock, kiln_pcond **out);
KILN_API int kiln_pcond_attach(const char *name, kiln_pcond **out);
KILN_API kiln_shm *kiln_pcond_shm(const kiln_pcond *c);
KILN_API void kiln_pcond_destroy(kiln_pcond *c);

/* The lock: as kiln_prlock_* (or kiln_plock_* with plain_lock). */
KILN_API int kiln_pcond_acquire(kiln_pcond *c, double timeout);
KILN_API int kiln_pcond_release(kiln_pcond *c);
/* As kiln_condition_wait: 0 notified, KILN_ETIMEDOUT, KILN_ESTATE (lock not held by the caller),
 * KILN_EOWNERDEAD (notified or not, the lock came back from a holder that died), KILN_EBUSY (128
 * threads wait on it already; nothing done). */
KILN_API int kiln_pcond_wait(kiln_pcond *c, double timeout);
KILN_API int kiln_pcond_wait_for(kiln_pcond *c, bool (*pred)(void *arg), void *arg, double timeout);
/* Wakes min(n, waiting) waiters. KILN_ESTATE when the caller does not hold the lock. */
KILN_API int kiln_pcond_notify(kiln_pcond *c, int n);
KILN_API int kiln_pcond_notify_all(kiln_pcond *c);

/* ---- process-shared event (multiprocessing.Event) --------------------------------------------- */

typedef struct kiln_pevent kiln_pevent;

KILN_API size_t kiln_pevent_size(void);
KILN_API int kiln_pevent_init(void *mem);
KILN_API int kiln_pevent_at(void *mem, kiln_pevent **out);
KILN_API int kiln_pevent_create(const char *name, kiln_pevent **out);
KILN_API int kiln_pevent_attach(const char *name, kiln_pevent **out);
KILN_API kiln_shm *kiln_pevent_shm(const kiln_pevent *e);
KILN_API void kiln_pevent_destroy(kiln_pevent *e);

KILN_API void kiln_pevent_set(kiln_pevent *e);
KILN_API void kiln_pevent_clear(kiln_pevent *e);
KILN_API bool kiln_pevent_is_set(kiln_pevent *e);
/* 0 once set (a waiter woken by set returns 0 even if clear follows at once), KILN_ETIMEDOUT. */
KILN_API int kiln_pevent_wait(kiln_pevent *e, double timeout);

/* ---- process-shared barrier (multiprocessing.Barrier) ------------------------------------------
 * As kiln_barrier, without an action (a function pointer means nothing in another process). */

typedef struct kiln_pbarrier kiln_pbarrier;

/* parties >= 1 else KILN_EINVAL; timeout: the default for wait (negative: none). */
KILN_API size_t kiln_pbarrier_size(void);
KILN_API int kiln_pbarrier_init(void *mem, int parties, double timeout);
KILN_API int kiln_pbarrier_at(void *mem, kiln_pbarrier **out);
KILN_API int kiln_pbarrier_create(const char *name, int parties, double timeout,
                                  kiln_pbarrier **out);
KILN_API int kiln_pbarrier_attach(const char *name, kiln_pbarrier **out);
KILN_API kiln_shm *kiln_pbarrier_shm(const kiln_pbarrier *b);
KILN_API void kiln_pbarrier_destroy(kiln_pbarrier *b);

/* 0 with *index (may be NULL) distinct in 0..parties-1 per round; KILN_EBROKEN (aborted, reset
 * while waiting, or a wait timed out: every waiter and later caller until reset). timeout < 0 in
 * wait_timeout waits forever; kiln_pbarrier_wait uses the default. */
KILN_API int kiln_pbarrier_wait(kiln_pbarrier *b, int *index);
KILN_API int kiln_pbarrier_wait_timeout(kiln_pbarrier *b, double timeout, int *index);
KILN_API void kiln_pbarrier_abort(kiln_pbarrier *b);
KILN_API void kiln_pbarrier_reset(kiln_pbarrier *b);
KILN_API bool kiln_pbarrier_broken(kiln_pbarrier *b);
KILN_API int kiln_pbarrier_n_waiting(kiln_pbarrier *b);
KILN_API int kiln_pbarrier_parties(kiln_pbarrier *b);

/* ---- shared Value and Array of C types (multiprocessing.Value / Array / RawValue / RawArray) ---- */

typedef enum kiln_ctype {
  KILN_CT_CHAR, KILN_CT_SHORT, KILN_CT_INT, KILN_CT_LONG, KILN_CT_LONGLONG,
  KILN_CT_UINT8, KILN_CT_UINT16, KILN_CT_UINT32, KILN_CT_UINT64,
  KILN_CT_FLOAT, KILN_CT_DOUBLE,
} kiln_ctype;

/* The lock of a Value or Array (SHM-02). */
typedef enum kiln_shared_lock {
  KILN_SHARED_LOCK_FRESH = 0, /* lock=True: a new rlock next to the data (the default) */
  KILN_SHARED_LOCK_NONE = 1,  /* lock=False: RawValue / RawArray, no lock */
  KILN_SHARED_LOCK_GIVEN = 2, /* the caller's rlock (cfg.lock), which must have its own segment */
} kiln_shared_lock;

typedef struct kiln_shared_config {
  kiln_ctype type;         /* KILN_CT_INT by default */
  size_t length;           /* number of items, >= 1; a Value is an Array of 1. Default 1 */
  kiln_shared_lock lock_mode;
  kiln_prlock *lock;       /* KILN_SHARED_LOCK_GIVEN: borrowed, must outlive the handle */
  const char *name;        /* NULL: a unique name */
  const void *init;        /* length items to copy in, or NULL: zero-filled (SHM-04) */
} kiln_shared_config;

typedef struct kiln_shared kiln_shared;

KILN_API void kiln_shared_config_default(kiln_shared_config *cfg);
/* 0, KILN_EINVAL (bad type, length 0, GIVEN without a lock or with one of no own segment, NONE
 * or FRESH with a lock), KILN_EEXIST, KILN_ENOMEM, KILN_EIO. The creator's destroy unlinks. */
KILN_API int kiln_shared_create(const kiln_shared_config *cfg, kiln_shared **out);
/* Opens it in another process (a GIVEN lock is attached too, by its segment's name). */
KILN_API int kiln_shared_attach(const char *name, kiln_shared **out);
KILN_API void kiln_shared_destroy(kiln_shared *s);

/* The items (borrowed, valid until destroy): read and write them under get_lock when other
 * processes write too. */
KILN_API void *kiln_shared_data(const kiln_shared *s);
KILN_API size_t kiln_shared_length(const kiln_shared *s);
KILN_API kiln_ctype kiln_shared_type(const kiln_shared *s);
KILN_API size_t kiln_ctype_size(kiln_ctype t);
KILN_API kiln_shm *kiln_shared_shm(const kiln_shared *s);
/* The lock (borrowed): the one given (the same pointer in the creating process), the fresh one,
 * or NULL for a raw object. */
KILN_API kiln_prlock *kiln_shared_get_lock(const kiln_shared *s);

/* Slice copies of items [start, start + n), taken under the lock when there is one.
 * KILN_EINVAL when out of range; KILN_EOWNERDEAD when the copy was made but the lock came from a
 * process that died holding it (the items may be half-updated). */
KILN_API int kiln_shared_read(kiln_shared *s, size_t start, size_t n, void *out);
KILN_API int kiln_shared_write(kiln_shared *s, size_t start, size_t n, const void *in);

/* ---- process queues (multiprocessing.Queue / JoinableQueue / SimpleQueue) ----------------------
 * Messages are byte strings (the caller serialises) kept in a ring in shared memory. Python's
 * exceptions become: Full → KILN_EFULL, Empty → KILN_EEMPTY, "Queue is closed" (ValueError) →
 * KILN_ESTATE, OSError "is closed" from empty() → KILN_ESTATE, a message that cannot go in →
 * KILN_EINVAL (the queue and its count are unchanged). */

typedef enum kiln_pqueue_kind {
  KILN_PQUEUE_QUEUE = 0,
  KILN_PQUEUE_JOINABLE = 1, /* adds task_done / join */
  KILN_PQUEUE_SIMPLE = 2,   /* unbounded (but for capacity), no maxsize */
} kiln_pqueue_kind;

typedef struct kiln_pqueue_config {
  kiln_pqueue_kind kind;
  size_t maxsize;     /* messages; 0: bounded only by capacity. Ignored for SIMPLE */
  size_t capacity;    /* bytes of the ring; 0: 1 MiB. Largest message: capacity - 8 */
  const char *name;   /* NULL: unique */
} kiln_pqueue_config;

typedef struct kiln_pqueue kiln_pqueue;

KILN_API void kiln_pqueue_config_default(kiln_pqueue_config *cfg);
/* 0, KILN_EINVAL, KILN_EEXIST, KILN_ENOMEM, KILN_EIO. The creator's destroy unlinks. */
KILN_API int kiln_pqueue_create(const kiln_pqueue_config *cfg, kiln_pqueue **out);
KILN_API int kiln_pqueue_attach(const char *name, kiln_pqueue **out);
KILN_API kiln_shm *kiln_pqueue_shm(const kiln_pqueue *q);
KILN_API void kiln_pqueue_destroy(kiln_pqueue *q);

/* Copies len bytes in, waiting up to timeout for room. 0, KILN_EFULL, KILN_EINVAL (len above the
 * largest message), KILN_ESTATE (this handle is closed). Any thread. */
KILN_API int kiln_pqueue_put(kiln_pqueue *q, const void *buf, size_t len, double timeout);
/* Takes the oldest message: *buf malloc'd (free() it; non-NULL also for an empty one), *len.
 * 0, KILN_EEMPTY, KILN_ESTATE (closed handle), KILN_ENOMEM (the message stays queued), KILN_EIO
 * (the queue was left inconsistent by a process killed in the middle of an update: its head
 * message's length cannot be right, and nothing is copied). */
KILN_API int kiln_pqueue_get(kiln_pqueue *q, void **buf, size_t *len, double timeout);
/* The same into buf[0..cap): KILN_EINVAL and *len the size needed when it does not fit (the
 * message stays queued). */
KILN_API int kiln_pqueue_get_into(kiln_pqueue *q, void *buf, size_t cap, size_t *len,
                                  double timeout);
KILN_API size_t kiln_pqueue_qsize(kiln_pqueue *q);
/* 1 empty, 0 not; on a closed handle 1 if it never put or got, else KILN_ESTATE (MQ-05; a
 * closed SIMPLE queue is always KILN_ESTATE). */
KILN_API int kiln_pqueue_empty(kiln_pqueue *q);
KILN_API bool kiln_pqueue_full(kiln_pqueue *q);
KILN_API size_t kiln_pqueue_max_message(const kiln_pqueue *q);
/* JOINABLE only (else KILN_EUNSUPPORTED): task_done is KILN_EINVAL when called more often than
 * put; join waits until every message put has been task_done'd (0 or KILN_ETIMEDOUT). */
KILN_API int kiln_pqueue_task_done(kiln_pqueue *q);
KILN_API int kiln_pqueue_join(kiln_pqueue *q, double timeout);
/* This process's handle stops: later put/get on it are KILN_ESTATE. Other handles and processes
 * go on. Twice is fine. */
KILN_API void kiln_pqueue_close(kiln_pqueue *q);


/* ==== manager ==================================================================================== */

/* A manager (multiprocessing.managers) is a server that holds named shared objects (dicts, lists,
 * namespaces, locks, events, semaphores and queues of byte strings) and serves them to clients in
 * any process, on this host (a Unix socket) or another (TCP). Every operation is a round trip to
 * the server: slower than shared memory or a process queue, but any process that knows the
 * address and the key can use the objects, and a blocking call (a lock, a queue get) blocks only
 * its caller: the server gives every connection its own thread.
 *
 * Addresses: "/path/to.sock" (or anything with a '/') is a Unix socket; "host:port" (and
 * "[v6addr]:port") is TCP, where port 0 lets the system pick one (the address the server reports
 * then names the real port). A NULL address in the config is a Unix socket in a new private
 * folder under $TMPDIR (or /tmp); the server removes the socket file (and that folder) when it
 * stops.
 *
 * Authentication, as Python's deliver_challenge/answer_challenge: each side sends the other 32
 * random bytes and checks the answer is HMAC-SHA256(authkey, challenge); a client with a wrong key
 * gets KILN_EAUTH and the server drops the connection without serving it. This proves both sides
 * know the key; nothing is encrypted: use it on a trusted network, or through an SSH tunnel.
 *
 * Objects live in one namespace of names (1 to 255 bytes, a C string). The first call that names
 * an object creates it (an empty dict, list or namespace, an unlocked lock, a clear event, an
 * unbounded queue, a semaphore of value 1); kiln_mqueue_create and kiln_msem_create create with
 * parameters. A name belongs to one kind: naming it as another kind is KILN_EINVAL. Objects live
 * until the server stops.
 *
 * Every call on a client returns, besides the codes it lists, KILN_EINVAL for a bad argument
 * (NULL name, NaN timeout, a message over KILN_MANAGER_MAX_MESSAGE), KILN_EEOF when the server
 * closed the connection, KILN_EIO when the connection broke, KILN_ESHUTDOWN when the server is
 * stopping, and KILN_ENOMEM; after KILN_EEOF or KILN_EIO the client is broken and every later call
 * fails the same way. Byte results are kiln_bytes whose data is malloc'd (free() it; NULL only
 * when len is 0). */

/* The largest request or reply (a key and value, a list extend, a dict's keys) in bytes. */
#define KILN_MANAGER_MAX_MESSAGE (64u << 20)

typedef struct kiln_manager kiln_manager;               /* a server in a process of its own */
typedef struct kiln_manager_server kiln_manager_server; /* a server served by the calling process */
typedef struct kiln_mclient kiln_mclient;               /* one authenticated connection */

typedef struct kiln_manager_config {
  const char *address;     /* see above; NULL: a Unix socket in a private folder (the default) */
  const void *authkey;     /* NULL: 32 random bytes (read them with kiln_manager_authkey) */
  size_t authkey_len;      /* 1 .. 1024 bytes when authkey is set */
  kiln_start_method start; /* kiln_manager_start only: KILN_START_FORKSERVER by default */
  double auth_timeout;     /* seconds a connection may take to authenticate (default 5): a
                              client that stalls or sends garbage is dropped after it */
} kiln_manager_config;

KILN_API void kiln_manager_config_default(kiln_manager_config *cfg);

/* Starts a server in a new process (multiprocessing.Manager().start()) and returns once it
 * listens. cfg NULL: the defaults. The server process stops when kiln_manager_shutdown runs, when a client asks it to
 * (kiln_mclient_shutdown_server), or when the process that started it ends. 0, KILN_EINVAL,
 * KILN_EEXIST (the address is in use), KILN_ESTATE (fork server not running for
 * KILN_START_FORKSERVER), KILN_ENOMEM, KILN_EIO. Any thread. */
KILN_API int kiln_manager_start(const kiln_manager_config *cfg, kiln_manager **out);

/* The address clients connect to (borrowed; valid until shutdown). */
KILN_API const char *kiln_manager_address(const kiln_manager *m);
/* The key (borrowed; valid until shutdown) and its length in *len. */
KILN_API const void *kiln_manager_authkey(const kiln_manager *m, size_t *len);
/* The server process's pid. */
KILN_API int kiln_manager_pid(const kiln_manager *m);

/* Stops the server process (it removes its socket file), waits for it to end (killing it if it
 * has not ended within 5 s) and frees m. Clients still connected then see KILN_EEOF. 0, or
 * KILN_EKILLED when it had to be killed. NULL is a no-op. Once per manager. */
KILN_API int kiln_manager_shutdown(kiln_manager *m);

/* A server served by the calling process (Python's get_server().serve_forever()), e.g. in a
 * process the user starts on another host. create binds and listens at once (so the address is
 * known, port 0 resolved; cfg NULL: the defaults) and returns; serve accepts and serves clients on threads of its own
 * (at most 1024 connections at once: more are closed as they arrive) until kiln_manager_server_stop or a client's kiln_mclient_shutdown_server, then ends every
 * connection and returns 0 (KILN_EIO if accepting failed). create: 0, KILN_EINVAL, KILN_EEXIST,
 * KILN_ENOMEM, KILN_EIO. serve runs once per server, on one thread; stop may be called from any
 * thread, before or during serve (it is async-signal-safe); destroy (NULL: no-op) after serve has
 * returned, or instead of serving; it removes the socket file. */
KILN_API int kiln_manager_server_create(const kiln_manager_config *cfg, kiln_manager_server **out);
KILN_API const char *kiln_manager_server_address(const kiln_manager_server *s);
KILN_API const void *kiln_manager_server_authkey(const kiln_manager_server *s, size_t *len);
KILN_API int kiln_manager_server_serve(kiln_manager_server *s);
KILN_API void kiln_manager_server_stop(kiln_manager_server *s);
KILN_API void kiln_manager_server_destroy(kiln_manager_server *s);

/* Connects to the server at address and authenticates both ways (within 10 s). 0, KILN_EAUTH (a
 * wrong key on either side), KILN_ENOENT (nobody listens there), KILN_ETIMEDOUT, KILN_EINVAL,
 * KILN_EIO, KILN_ENOMEM. The client may be used by several threads of its process at once: calls
 * are serialised, so a blocking call (a lock acquire, a queue get) holds up the other threads'
 * calls on the same client; give each thread that blocks a client of its own. Locks are held per
 * client: every thread of a client is the same owner. A client must not be used across fork(). */
KILN_API int kiln_manager_connect(const char *address, const void *authkey, size_t keylen,
                                  kiln_mclient **out);
/* Closes the connection and frees c; the server releases every lock and rlock this client held
 * (a client that dies does the same). NULL is a no-op. No call on c may be running. */
KILN_API void kiln_mclient_close(kiln_mclient *c);
/* Asks the server to stop (Python's manager.shutdown() from a client). 0 or the codes above. */
KILN_API int kiln_mclient_shutdown_server(kiln_mclient *c);
/* Frees an array of n byte strings returned by a client call (each data, then the array). */
KILN_API void kiln_mbytes_free(kiln_bytes *a, size_t n);

/* ---- dict of byte-string keys to byte-string values (insertion ordered, as Python's) ---- */
KILN_API int kiln_mdict_set(kiln_mclient *c, const char *name, const void *key, size_t klen,
                            const void *val, size_t vlen);
/* *val receives a copy of the value: 0, or KILN_ENOENT (no such key; *val zeroed). */
KILN_API int kiln_mdict_get(kiln_mclient *c, const char *name, const void *key, size_t klen,
                            kiln_bytes *val);
/* As get, but a missing key gives a copy of dflt (Python's get(key, default)): 0. */
KILN_API int kiln_mdict_get_or(kiln_mclient *c, const char *name, const void *key, size_t klen,
                               const void *dflt, size_t dlen, kiln_bytes *val);
/* Removes the key: 0 or KILN_ENOENT. */
KILN_API int kiln_mdict_del(kiln_mclient *c, const char *name, const void *key, size_t klen);
/* Removes the key and gives its value (val may be NULL): 0 or KILN_ENOENT. */
KILN_API int kiln_mdict_pop(kiln_mclient *c, const char *name, const void *key, size_t klen,
                            kiln_bytes *val);
/* 1 when the key is there, 0 when not, or a negative code. */
KILN_API int kiln_mdict_contains(kiln_mclient *c, const char *name, const void *key, size_t klen);
KILN_API int kiln_mdict_len(kiln_mclient *c, const char *name, size_t *len);
/* Every key, in insertion order: *keys is a malloc'd array of *n (free with kiln_mbytes_free). */
KILN_API int kiln_mdict_keys(kiln_mclient *c, const char *name, kiln_bytes **keys, size_t *n);

/* ---- list of byte strings; an index i < 0 counts from the end, as in Python ---- */
KILN_API int kiln_mlist_append(kiln_mclient *c, const char *name, const void *item, size_t len);
KILN_API int kiln_mlist_extend(kiln_mclient *c, const char *name, const kiln_bytes *items,
                               size_t n);
/* 0, or KILN_EINVAL when i is out of range. */
KILN_API int kiln_mlist_get(kiln_mclient *c, const char *name, int64_t i, kiln_bytes *item);
KILN_API int kiln_mlist_set(kiln_mclient *c, const char *name, int64_t i, const void *item,
                            size_t len);
/* Removes item i (-1: the last) and gives it (item may be NULL): 0, KILN_EEMPTY (empty list),
 * KILN_EINVAL (out of range). */
KILN_API int kiln_mlist_pop(kiln_mclient *c, const char *name, int64_t i, kiln_bytes *item);
KILN_API int kiln_mlist_len(kiln_mclient *c, const char *name, size_t *len);

/* ---- namespace: attributes (C strings) to byte strings ---- */
KILN_API int kiln_mns_set(kiln_mclient *c, const char *name, const char *attr, const void *val,
                          size_t len);
/* 0, or KILN_ENOENT (no such attribute; Python's AttributeError). */
KILN_API int kiln_mns_get(kiln_mclient *c, const char *name, const char *attr, kiln_bytes *val);
KILN_API int kiln_mns_del(kiln_mclient *c, const char *name, const char *attr);

/* ---- locks: held by a client; a client that closes or dies releases what it holds ---- */
/* Acquires, waiting up to timeout: 0 or KILN_ETIMEDOUT. A Lock is not reentrant (a second
 * acquire by its holder waits like anyone else); any client may release it (LOCK-04); releasing
 * an unlocked one is KILN_ESTATE. An RLock counts its holder's acquires; only its holder may
 * release it (KILN_ESTATE otherwise). */
KILN_API int kiln_mlock_acquire(kiln_mclient *c, const char *name, double timeout);
KILN_API int kiln_mlock_release(kiln_mclient *c, const char *name);
KILN_API int kiln_mrlock_acquire(kiln_mclient *c, const char *name, double timeout);
KILN_API int kiln_mrlock_release(kiln_mclient *c, const char *name);

/* ---- event and semaphore ---- */
KILN_API int kiln_mevent_set(kiln_mclient *c, const char *name);
KILN_API int kiln_mevent_clear(kiln_mclient *c, const char *name);
/* 1 when set, 0 when not, or a negative code. */
KILN_API int kiln_mevent_is_set(kiln_mclient *c, const char *name);
/* 0 once set (at once if it is), KILN_ETIMEDOUT. */
KILN_API int kiln_mevent_wait(kiln_mclient *c, const char *name, double timeout);
/* Creates a semaphore of the given value: 0, or KILN_EEXIST when the name exists (then it is
 * left as it is: racing creators may all go on after KILN_EEXIST). */
KILN_API int kiln_msem_create(kiln_mclient *c, const char *name, uint32_t value);
/* 0 or KILN_ETIMEDOUT. */
KILN_API int kiln_msem_acquire(kiln_mclient *c, const char *name, double timeout);
KILN_API int kiln_msem_release(kiln_mclient *c, const char *name);

/* ---- FIFO queue of byte strings ---- */
/* Creates a queue holding at most maxsize items (0: unbounded): 0, or KILN_EEXIST as above. */
KILN_API int kiln_mqueue_create(kiln_mclient *c, const char *name, size_t maxsize);
/* Puts a copy of item, waiting up to timeout for room: 0 or KILN_EFULL (MQ-01). */
KILN_API int kiln_mqueue_put(kiln_mclient *c, const char *name, const void *item, size_t len,
                             double timeout);
/* Takes the oldest item, waiting up to timeout: 0 or KILN_EEMPTY. */
KILN_API int kiln_mqueue_get(kiln_mclient *c, const char *name, kiln_bytes *item, double timeout);
KILN_API int kiln_mqueue_qsize(kiln_mclient *c, const char *name, size_t *n);



#ifdef __cplusplus
}
#endif
#endif /* KILN_PROC_H */
