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
#include <stdint.h>

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

/* The fast switch (switch.c) is written in assembly and reaches these fields by the offsets
 * below (checked there against offsetof): sp, thread, out, state and ctx come first in a fiber,
 * tp and current first in a thread's state. Sanitizer builds have no fast switch: every switch
 * goes through fiber.c, which tells ASan and TSan about it. */
#if !defined(KILN__FIBER_ASAN) && !defined(KILN__FIBER_TSAN)
#define KILN__FIBER_FAST 1
#endif
#define KILN__FIBER_SP 0
#define KILN__FIBER_THREAD 8
#define KILN__FIBER_OUT 16
#define KILN__FIBER_STATE 24
#define KILN__FIBER_STARTED_VALUE 1
#define KILN__FIBER_CTX 32
#if defined(__aarch64__)
#define KILN__FIBER_CTX_WORDS 21 /* x19-x30, d8-d15, FPCR */
#else
#define KILN__FIBER_CTX_WORDS 7 /* rbx rbp r12-r15, MXCSR + x87 control word */
#endif
#define KILN__THREAD_TP 0
#define KILN__THREAD_CURRENT 8

struct kiln_fiber {
  void *sp; /* stack pointer while suspended (x86-64: just above its return address) */
  struct kiln__fiber_thread *thread;
  void **out;          /* where the value for its pending switch goes (NULL: nowhere) */
  unsigned char state; /* KILN__FIBER_UNSTARTED / _STARTED / _DEAD */
  bool is_main;
  bool released; /* kiln_fiber_destroy was called: free it when refs reach 0 */
  uint64_t ctx[KILN__FIBER_CTX_WORDS]; /* callee-saved registers while suspended (switch.c) */
  kiln_fiber *parent;                  /* NULL only for a main fiber; holds a reference on it */
  kiln_fiber_fn fn;
  void *arg;
  kiln__fiber_stack stack; /* returned to the pool once the fiber is dead and left */
  size_t stack_size;       /* usable bytes, kept after the stack goes back */
  int refs;                /* the user's handle + one per child; main fibers are not counted */
#ifdef KILN__FIBER_ASAN
  void *asan_fake;         /* ASan's fake stack of this fiber while it is switched out */
  const void *asan_bottom; /* this fiber's stack as ASan reports it (learned for main) */
  size_t asan_size;
#endif
#ifdef KILN__FIBER_TSAN
  void *tsan; /* TSan's fiber (the thread's own for a main fiber) */
#endif
};

enum {
  KILN__STACK_POOL_MAX = 64,
  KILN__STACK_POOL_HOT = 4,
  KILN__STACK_SHARED_MAX = 16, /* stack.c: the warm stacks that move between threads */
  KILN__FIBER_FREE_MAX = 64
};

/* A thread's fibers: the thread pointer that identifies the thread to the fast switch, which
 * fiber runs, its main fiber, the dead fiber whose stack waits to go back, and its pool of free
 * stacks. */
typedef struct kiln__fiber_thread {
  void *tp;            /* kiln__thread_pointer() of the owning thread */
  kiln_fiber *current; /* the running fiber */
  void *value;         /* where a new fiber's first value goes (its out until it starts) */
  kiln_fiber *zombie;  /* the last fiber that ended: it has left its stack for good, which goes
                        * back to the pool at the thread's next create, destroy or fiber end */
#if defined(KILN__FIBER_ASAN) || defined(KILN__FIBER_TSAN)
  kiln_fiber *from; /* the fiber that switched to the current one (ASan's finish needs it) */
#endif
  kiln_fiber main;
  kiln__fiber_stack pool[KILN__STACK_POOL_MAX]; /* LIFO; entries past KILN__STACK_POOL_HOT
                                                 * were given back to the kernel (madvise) */
  int npool;
  kiln_fiber *free_fibers; /* freed records kept for reuse, linked through sp (at most
                            * KILN__FIBER_FREE_MAX; poisoned under ASan meanwhile) */
  int nfree;
  void *altstack; /* guard.c's signal stack for this thread, if it made one */
  size_t altstack_size;
} kiln__fiber_thread;

/* The calling thread's thread pointer (x86-64: the TCB's self pointer at %fs:0; AArch64:
 * TPIDR_EL0): unique among live threads, and one instruction to read, where a TLS variable of a
 * shared library costs a call to __tls_get_addr. */
static inline void *kiln__thread_pointer(void) {
  void *tp;
#if defined(__x86_64__)
  __asm__("movq %%fs:0, %0" : "=r"(tp));
#elif defined(__aarch64__)
  __asm__("mrs %0, tpidr_el0" : "=r"(tp));
#else
#error "kiln's fibers have a context switch for x86-64 and AArch64 only"
#endif
  return tp;
}

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

/* switch.c.
 *
 * kiln__fiber_swap saves the callee-saved registers (and on x86-64 the MXCSR and x87 control
 * words) on the current stack, stores the stack pointer in *save_sp, loads new_sp and returns
 * transfer there. kiln__fiber_init_stack builds, below top, the frame that a swap to a new fiber
 * pops: it enters kiln__fiber_main(transfer).
 *
 * kiln__fiber_jump is fiber.c's switch: it saves self's context (self->sp, self->ctx; the
 * return address stays on the stack), stores value in *target->out, resumes target's context and
 * makes target's pending call return code. It returns in turn the code passed by whichever
 * fiber resumes self, that fiber having stored self's value in *self->out. The caller sets
 * self->out and the thread's current fiber first. kiln__fiber_init_context gives a new fiber
 * the context that enters kiln__fiber_main (its transfer then is the code, 0). A fiber
 * suspended by one of the two switches is resumed by the same one.
 *
 * kiln_fiber_switch itself (except under sanitizers) is assembly: to a fiber of the calling
 * thread that has started and not ended it takes kiln__fiber_jump's steps inline, and the
 * target's pending switch returns 0 straight to its caller; anything else goes on to
 * kiln__fiber_switch_slow (fiber.c) with the same arguments. */
void *kiln__fiber_swap(void **save_sp, void *new_sp, void *transfer);
void *kiln__fiber_init_stack(char *top);
_Noreturn void kiln__fiber_main(void *transfer);
void kiln__fiber_init_context(kiln_fiber *f, char *top);
int kiln__fiber_jump(kiln_fiber *self, kiln_fiber *target, void *value, int code);
int kiln__fiber_switch_slow(kiln_fiber *f, void *value, void **value_out);

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
