/* fiber_internal.h: structures shared by the files of fiber/ (fiber.c: the API and greenlet's
 * rules; stack.c: guarded stacks and their per-thread pool; switch.c: the context switch in
 * assembly; guard.c: the opt-in overflow report). Nothing here is public.
 *
 * Everything here belongs to one thread: a fiber and its thread's state are only touched by
 * that thread (the signal handler of guard.c reads them on the same thread), so nothing is
 * atomic and nothing is locked. */
#ifndef KILN_FIBER_INTERNAL_H
#define KILN_FIBER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "kiln/fiber.h"

/* The sanitizer builds tell the fibers' stacks to ASan and TSan (gcc defines __SANITIZE_*__,
 * clang answers __has_feature). */
#if defined(__SANITIZE_ADDRESS__)
#define KILN__FIBER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KILN__FIBER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define KILN__FIBER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define KILN__FIBER_TSAN 1
#endif
#endif

/* A stack: one mapping, the PROT_NONE guard page at map, the usable stack above it up to
 * map + map_size (the stack grows down towards the guard). map is NULL for no stack. */
typedef struct kiln__fiber_stack {
  char *map;
  size_t map_size;
} kiln__fiber_stack;

enum { KILN__FIBER_UNSTARTED, KILN__FIBER_STARTED, KILN__FIBER_DEAD };

struct kiln_fiber {
  void *sp; /* saved stack pointer while suspended (switch.c's frame) */
  struct kiln__fiber_thread *thread;
  kiln_fiber *parent; /* NULL only for a main fiber; holds a reference on it */
  kiln_fiber_fn fn;
  void *arg;
  kiln__fiber_stack stack; /* returned to the pool as soon as the fiber is dead and left */
  size_t stack_size;       /* usable bytes, kept after the stack goes back */
  int refs;                /* the user's handle + one per child; main fibers are not counted */
  unsigned char state;
  bool is_main;
  bool released; /* kiln_fiber_destroy was called: free it when refs reach 0 */
#ifdef KILN__FIBER_ASAN
  void *asan_fake;         /* ASan's fake stack of this fiber while it is switched out */
  const void *asan_bottom; /* this fiber's stack as ASan reports it (learned for main) */
  size_t asan_size;
#endif
#ifdef KILN__FIBER_TSAN
  void *tsan; /* TSan's fiber (the thread's own for a main fiber) */
#endif
};

enum { KILN__STACK_POOL_MAX = 64, KILN__STACK_POOL_HOT = 4, KILN__FIBER_FREE_MAX = 64 };

/* A thread's fibers: its main fiber, which one runs, the value or code in flight during a
 * switch, and its pool of free stacks. */
typedef struct kiln__fiber_thread {
  kiln_fiber main;
  kiln_fiber *current;
  void *value; /* what the switch in progress hands over ... */
  int code;    /* ... or the error it hands over instead (0: a value) */
  bool ready;
  kiln__fiber_stack pool[KILN__STACK_POOL_MAX]; /* LIFO; entries past KILN__STACK_POOL_HOT
                                                 * were given back to the kernel (madvise) */
  int npool;
  kiln_fiber *free_fibers; /* freed records kept for reuse, linked through sp (at most
                            * KILN__FIBER_FREE_MAX; poisoned under ASan meanwhile) */
  int nfree;
  void *altstack; /* guard.c's signal stack for this thread, if it made one */
  size_t altstack_size;
} kiln__fiber_thread;

/* The calling thread's state, set up on first use (fiber.c); never NULL. */
kiln__fiber_thread *kiln__fiber_thread_self(void);
/* The calling thread's state if it has used fibers, else NULL; async-signal-safe once set up. */
kiln__fiber_thread *kiln__fiber_thread_peek(void);

/* stack.c. The page size, a stack for size usable bytes (pooled or newly mapped; KILN_ENOMEM),
 * the way back to the pool (abandoned: frames may still be live anywhere on it), and the pool's
 * teardown at thread exit. */
size_t kiln__page_size(void);
int kiln__stack_get(kiln__fiber_thread *t, size_t size, kiln__fiber_stack *out);
void kiln__stack_put(kiln__fiber_thread *t, kiln__fiber_stack *s, bool abandoned);
void kiln__stack_drain(kiln__fiber_thread *t);

/* switch.c. kiln__fiber_swap saves the callee-saved registers (and on x86-64 the MXCSR and x87
 * control words) on the current stack, stores the stack pointer in *save_sp, loads new_sp and
 * returns transfer there. kiln__fiber_init_stack builds, below top, the frame that a swap to a
 * new fiber pops: it enters kiln__fiber_main(transfer). */
void *kiln__fiber_swap(void **save_sp, void *new_sp, void *transfer);
void *kiln__fiber_init_stack(char *top);
_Noreturn void kiln__fiber_main(void *transfer);

/* timer.c: one timer thread per process with a binary min-heap of deadlines, for the timeouts
 * of waiting pool fibers (task.c). A timer is caller-owned storage: set deadline (kiln__now()
 * seconds) and fire, then arm it. fire(tm) runs on the timer thread, under the timer lock, once
 * the deadline has passed; it must not arm or cancel timers. arm: 0, or KILN_ENOMEM (the heap
 * cannot grow, or the thread cannot start). cancel: after it returns, fire is not running and
 * will not run (a no-op if it has fired or was never armed). A timer is armed at most once at a
 * time. Any thread. */
typedef struct kiln__timer {
  double deadline;
  void (*fire)(struct kiln__timer *tm);
  size_t index; /* its place in the heap, guarded by the timer lock; SIZE_MAX: not armed */
} kiln__timer;
int kiln__timer_arm(kiln__timer *tm);
void kiln__timer_cancel(kiln__timer *tm);

/* guard.c: gives the calling thread a signal stack when the overflow handler is installed. */
void kiln__guard_thread_init(kiln__fiber_thread *t);
void kiln__guard_thread_fini(kiln__fiber_thread *t);

#endif
