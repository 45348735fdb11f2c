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
 * Not here yet: fibers as pool tasks, kiln_await inside a fiber and cooperative I/O. A fiber is
 * a plain user-level context today: blocking calls (a lock, kiln_future_result) block the thread
 * with every fiber on it.
 *
 * Threads: every call acts on the calling thread's fibers only. Different threads may use their
 * own fibers concurrently without any locking. */
#ifndef KILN_FIBER_H
#define KILN_FIBER_H

#include <stdbool.h>
#include <stddef.h>

#include "kiln/error.h"
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

#ifdef __cplusplus
}
#endif

#endif /* KILN_FIBER_H */
