/* kiln/fiber.h: fibers with greenlet's model: coroutines with their own stacks that a thread
 * switches between explicitly, passing a value each way.
 *
 * Every thread has an implicit main fiber (the thread's own stack), created the first time the
 * thread calls into this header. kiln_fiber_create makes a fiber that has not started; the first
 * kiln_fiber_switch to it runs fn(arg, value, &result) on the fiber's stack. A fiber runs until it
 * switches to another fiber or its fn returns; then its parent resumes (greenlet's rules, which
 * docs/FIBERS.md lists):
 *   - fn returning 0 hands *result to the pending switch of the parent (it returns 0 with that
 *     value); fn returning a negative KILN_E* code ends the fiber with that error, which the
 *     parent's pending switch returns instead (greenlet: an exception propagates to the parent);
 *   - a fiber whose parent is dead passes its result on to the nearest live ancestor; a thread's
 *     main fiber never dies, so someone always resumes;
 *   - kiln_fiber_throw makes the target's pending switch return a code instead of a value; thrown
 *     into a fiber that has not started, the fiber dies without running and its parent gets it;
 *   - switching (or throwing) to a dead fiber goes to its nearest live ancestor;
 *   - switching to the current fiber returns the value (or the thrown code) at once;
 *   - a fiber belongs to the thread that created it: switching to, throwing into, re-parenting
 *     or destroying it from another thread is refused (KILN_ESTATE, or an assert for destroy).
 *
 * These fibers are plain user-level contexts of one thread: blocking calls (a lock,
 * kiln_future_result) block the thread with every fiber on it. Pool fibers (the second half of
 * this header, gevent's model) run on a kiln_pool's workers and suspend in their waits instead.
 *
 * Threads: every call acts on the calling thread's fibers only. Different threads may use their
 * own fibers concurrently without any locking. */
#ifndef KILN_FIBER_H
#define KILN_FIBER_H

#include <stdbool.h>
#include <stddef.h>

#include "kiln/error.h"
#include "kiln/sched.h"
#include "kiln/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_fiber kiln_fiber;

/* A fiber's body. arg is create's arg; value is what the first switch to the fiber passed. On
 * return 0, *result (NULL unless set) goes to the parent's pending switch; a negative KILN_E* code
 * goes to it as an error instead. Returning a positive value is a contract violation. */
typedef int (*kiln_fiber_fn)(void *arg, void *value, void **result);

/* The stack size used when create is given 0: 256 KiB of address space, of which only the
 * pages a fiber touches are ever resident. C code has no growable stacks, and ordinary libc
 * calls (printf, getaddrinfo, qsort) want tens of KiB; a page or two of headroom would fail in
 * ways a guard page only catches after the fact. 10^5 fibers of 256 KiB reserve 25 GiB of
 * address space, far inside what a 64-bit process has. */
#define KILN_FIBER_STACK_DEFAULT ((size_t)256 * 1024)

/* Creates a fiber that has not started, on the calling thread.
 *   fn          the body (not NULL); arg is passed to it unchanged (borrowed, never freed here)
 *   stack_size  bytes of usable stack, rounded up to whole pages; 0 = KILN_FIBER_STACK_DEFAULT;
 *               at least 16 KiB is used. A PROT_NONE guard page lies below it.
 *   parent      the fiber resumed when this one ends; NULL = the calling fiber. It must belong
 *               to the calling thread (else KILN_ESTATE).
 * Returns 0 and sets *out, or KILN_EINVAL / KILN_ESTATE / KILN_ENOMEM (*out NULL). Stacks come
 * from a per-thread pool, so create after destroy does not usually map memory. */
KILN_API int kiln_fiber_create(kiln_fiber_fn fn, void *arg, size_t stack_size, kiln_fiber *parent,
                               kiln_fiber **out);

/* Destroys a fiber; NULL is a no-op. Called on the fiber's own thread, never on the current
 * fiber or a thread's main fiber (asserts). A fiber that has started and not ended is first
 * killed as greenlet does when it collects one: KILN_ECANCELLED is thrown into it, with the
 * caller as its parent when that makes no cycle, and it is expected to return; if it switches
 * away instead, its frames are abandoned without unwinding (nothing on them is freed). A fiber
 * that is some other fiber's parent stays in memory, dead, until that child is destroyed or
 * re-parented, so that results can still pass through it to its ancestors. */
KILN_API void kiln_fiber_destroy(kiln_fiber *f);

/* Switches to f with value: starts it (fn gets value) or resumes its pending switch (which
 * returns 0 and value). Returns when some fiber switches back to the caller: 0 and *value_out
 * set to the value passed (value_out may be NULL), or a negative code: one thrown into the
 * caller, or the error a child ended with (*value_out NULL). Switching to a dead fiber goes to
 * its nearest live ancestor; switching to the current fiber returns (0, value) at once.
 * KILN_ESTATE (nothing happens) if f belongs to another thread. */
KILN_API int kiln_fiber_switch(kiln_fiber *f, void *value, void **value_out);

/* Like kiln_fiber_switch, but f's pending switch returns code (negative, else KILN_EINVAL)
 * instead of a value. Into a fiber that has not started: the fiber is marked dead without
 * running and code goes on to its nearest live ancestor (to the caller at once if that is the
 * caller). What the caller's own call returns follows kiln_fiber_switch. */
KILN_API int kiln_fiber_throw(kiln_fiber *f, int code, void **value_out);

/* The calling thread's current fiber: its main fiber when no other is running. Never NULL. The
 * pointer is borrowed; a main fiber lives as long as its thread. */
KILN_API kiln_fiber *kiln_fiber_current(void);

/* f's parent (borrowed); NULL for a thread's main fiber. */
KILN_API kiln_fiber *kiln_fiber_parent(const kiln_fiber *f);

/* Makes parent the fiber resumed when f ends. KILN_EINVAL if parent is NULL, or if f is a main
 * fiber, or if parent is f or has f among its ancestors (greenlet: "cyclic parent chain");
 * KILN_ESTATE if f or parent belongs to another thread. Nothing changes on an error. */
KILN_API int kiln_fiber_set_parent(kiln_fiber *f, kiln_fiber *parent);

/* Whether f has ended (its fn returned, or it was killed by a throw before starting). A main
 * fiber is never dead. */
KILN_API bool kiln_fiber_dead(const kiln_fiber *f);

/* Whether f has started (a main fiber always has). A dead fiber counts as started. */
KILN_API bool kiln_fiber_started(const kiln_fiber *f);

/* Whether f is its thread's main fiber. */
KILN_API bool kiln_fiber_is_main(const kiln_fiber *f);

/* The usable stack size of f in bytes (after rounding); 0 for a main fiber. */
KILN_API size_t kiln_fiber_stack_size(const kiln_fiber *f);

/* Opt-in stack overflow report. Installs, once per process, a SIGSEGV handler (on an alternate
 * signal stack, which every thread that creates fibers gets) that recognises a fault inside the
 * guard page of the faulting thread's current fiber, writes one line to stderr with write(2):
 *   kiln: fiber stack overflow: fault at 0x... in the guard page of fiber 0x... (stack
 *   0x...-0x..., N bytes); aborting
 * and calls abort(). Any other fault goes to the handler that was installed before (or to the
 * default action, which ends the process with SIGSEGV). Without it, an overflow still stops at
 * the guard page, with a plain SIGSEGV. Install it before starting threads that may run fibers
 * and after any other SIGSEGV handler the program sets. Thread-safe. 0, or KILN_ENOMEM. */
KILN_API int kiln_fiber_guard_handler_install(void);

/* ---- pool fibers: gevent's greenlets on the work-stealing pool ------------------------------
 *
 * kiln_fiber_spawn runs a kiln_task_fn as a fiber on a pool's workers: M:N, a fiber that
 * suspends may resume on any worker (stealing included). While it waits (kiln_await,
 * kiln_sleep, kiln_yield, and the scheduler's own waits, below) the worker is free to run other
 * tasks and fibers. Its future is the fiber's own: done when fn returns, with fn's value or error
 * (kiln_task_fail and kiln_task_set_result_free work inside, as in any task), usable in
 * kiln_wait, kiln_as_completed, kiln_future_on_done and as a dependency like any future. join is
 * kiln_await (or kiln_future_result) on it, joinall kiln_wait on several.
 *
 * Which waits suspend: inside a pool fiber, kiln_await, kiln_sleep and kiln_yield, and also
 * every wait of kiln/sched.h (kiln_future_result, kiln_future_error, kiln_wait,
 * kiln_completion_next, kiln_imap_next, kiln_pool_apply, kiln_map, kiln_parallel_for's join)
 * suspend the fiber; they do not run other tasks on the fiber's stack, as they do in a plain
 * task. Waits of kiln/sync.h (locks, conditions, queues...) and system calls block the worker
 * with the fiber on it, as in a task; kiln/fiberio.h has I/O calls that wait through an engine
 * instead.
 *
 * Greenlets inside a pool fiber: kiln_fiber_current() there is the pool fiber's own record (not
 * a main fiber: kiln_fiber_is_main is false, kiln_fiber_parent NULL, never dead while it runs).
 * kiln_fiber_create inside makes greenlets of the worker's thread, with the pool fiber as
 * parent; switching between them works as on any thread. Such greenlets cannot move to another
 * thread, so the pool fiber is pinned while any of them exists (created and not yet
 * destroyed): its waits, and the waits of the greenlets themselves, block the worker (running
 * other tasks, as in a plain task) instead of suspending. Destroy them before the pool fiber
 * ends (if some are left, the pool fiber's record stays until they are destroyed). Never
 * destroy kiln_fiber_current() of a pool fiber.
 *
 * Thread-local storage: code after a suspending call may run on another thread than before it.
 * Do not keep the address of a thread-local variable across kiln_await, kiln_sleep, kiln_yield
 * or a suspending scheduler wait; read errno again after them (with glibc, &errno is a const
 * function of the thread that the compiler may reuse within one function).
 *
 * Pool shutdown: a started fiber counts as accepted work until it ends. shutdown(wait) and
 * kiln_pool_destroy wait for suspended fibers; cancel_pending (and kiln_pool_terminate) cancel
 * the fibers not yet started, never the started ones. A fiber suspended on a future that never
 * completes keeps shutdown(wait) and destroy waiting forever, as a task blocked forever would:
 * kill it first (its kiln_await returns KILN_ECANCELLED), or give its waits a timeout.
 *
 * Sanitizers: the ASan and TSan builds follow fibers across threads. */

/* Runs fn(arg, &result) as a fiber on p's workers. stack_size as kiln_fiber_create's (0: the
 * default 256 KiB of address space, of which the pages touched become resident; at least
 * 16 KiB). The stack is taken when the fiber starts, from the starting worker's stack pool, and
 * goes back, when the fiber ends, to the pool of the worker it ends on. Returns 0 and *out (one
 * reference: the fiber's future; out may be NULL), or KILN_EINVAL (p or fn NULL),
 * KILN_ESHUTDOWN / KILN_EBROKEN (the pool takes no work), KILN_ENOMEM. A fiber whose stack
 * cannot be mapped when it starts fails with KILN_ENOMEM. Any thread. */
KILN_API int kiln_fiber_spawn(kiln_pool *p, kiln_task_fn fn, void *arg, size_t stack_size,
                              kiln_future **out);

/* kiln_future_result's contract (0 and *value borrowed while you hold f; f's code;
 * KILN_ECANCELLED; KILN_ETIMEDOUT; KILN_EINVAL for a NaN timeout). Inside a pool fiber it
 * suspends the fiber until f is done, the timeout passes, or the fiber is killed: then it returns
 * KILN_ECANCELLED (also when f is already done: a pending kill is delivered at the next await or
 * sleep, once). Elsewhere (a thread, a task, a greenlet, a pinned pool fiber) it is exactly
 * kiln_future_result. value may be NULL. */
KILN_API int kiln_await(kiln_future *f, double timeout, void **value);

/* gevent's sleep(0): inside a pool fiber, queues the fiber behind the work already queued and
 * lets the worker run it, then returns 0 (KILN_ECANCELLED, without yielding, if a kill is
 * pending). Elsewhere: sched_yield(), 0. */
KILN_API int kiln_yield(void);

/* Inside a pool fiber: suspends it for seconds (on the process's timer thread; <= 0 is
 * kiln_yield; +inf until killed). 0, KILN_ECANCELLED when killed (at once if a kill is
 * pending), KILN_EINVAL for NaN, KILN_ENOMEM if the timer cannot be set. Elsewhere: sleeps the
 * calling thread (clock_nanosleep, resumed after signals), 0. */
KILN_API int kiln_sleep(double seconds);

/* kiln_sleep to an absolute deadline: seconds on CLOCK_MONOTONIC (clock_gettime's, as a double),
 * so that a fiber that wakes periodically does not drift by the time it took to get here, and
 * several fibers given deadlines at once wake in their deadlines' order even when the worker is
 * preempted between their calls. A deadline already past is kiln_yield. Codes as kiln_sleep. */
KILN_API int kiln_sleep_until(double deadline);

/* gevent's kill. A fiber not yet started never runs: its future is cancelled. A started one gets
 * KILN_ECANCELLED from its pending kiln_await or kiln_sleep (or its next one, or kiln_yield);
 * its other waits are not interrupted. If it then ends with KILN_ECANCELLED, its future counts
 * as cancelled (kiln_future_cancelled is true). Killing an ended fiber does nothing. With wait,
 * then waits for the fiber's end up to timeout (suspending, inside a pool fiber): KILN_ETIMEDOUT
 * if it has not ended by then. 0; KILN_EINVAL (f not a fiber's future, NaN timeout); KILN_ESTATE
 * for a fiber that kills itself with wait (the kill is still delivered). Any thread. */
KILN_API int kiln_fiber_kill(kiln_future *f, bool wait, double timeout);

#ifdef __cplusplus
}
#endif

#endif /* KILN_FIBER_H */
