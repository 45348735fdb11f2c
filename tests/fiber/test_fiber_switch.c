/* test_fiber_switch.c: kiln_fiber_switch's common case (a started fiber of the calling thread),
 * which fiber/switch.c takes in assembly: callee-saved registers and floating-point control
 * state kept per fiber, values with and without an out, a started fiber of another thread
 * refused, and switches mixed with the slower paths (throw, a fiber's end) in both orders. */
// kt: timeout 60
#define _GNU_SOURCE /* pthread_barrier_t; does not clash with kt.h's _POSIX_C_SOURCE */
#include <fenv.h>
#include <pthread.h>
#include <stdint.h>

#if defined(__x86_64__)
#include <fpu_control.h>
#include <xmmintrin.h>
#endif

#include "kiln/fiber.h"
#include "kt.h"

static kiln_fiber *make(kiln_fiber_fn fn, void *arg, kiln_fiber *parent) {
  kiln_fiber *f = NULL;
  KT_EQ(kiln_fiber_create(fn, arg, 0, parent, &f), 0);
  KT_TRUE(f != NULL);
  return f;
}

static kiln_fiber *parent_of_current(void) { return kiln_fiber_parent(kiln_fiber_current()); }

/* ---- callee-saved registers --------------------------------------------------------------- */

/* Overwrites every callee-saved register it can name before each switch back, so that the
 * caller's values survive only if the switch restores its own. */
static int clobber(void *arg, void *value, void **result) {
  (void)arg;
  (void)result;
  for (;;) {
#if defined(__x86_64__)
    __asm__ volatile("movq $-1, %%rbx\n movq $-1, %%r12\n movq $-1, %%r13\n"
                     "movq $-1, %%r14\n movq $-1, %%r15\n" ::
                         : "rbx", "r12", "r13", "r14", "r15");
#elif defined(__aarch64__)
    __asm__ volatile("mov x19, #-1\n mov x20, #-1\n mov x21, #-1\n mov x22, #-1\n"
                     "mov x23, #-1\n mov x24, #-1\n mov x25, #-1\n mov x26, #-1\n"
                     "mov x27, #-1\n mov x28, #-1\n fmov d8, #-1.0\n fmov d9, #-1.0\n"
                     "fmov d10, #-1.0\n fmov d11, #-1.0\n fmov d12, #-1.0\n fmov d13, #-1.0\n"
                     "fmov d14, #-1.0\n fmov d15, #-1.0\n" ::
                         : "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27", "x28",
                           "d8", "d9", "d10", "d11", "d12", "d13", "d14", "d15");
#endif
    int rc = kiln_fiber_switch(parent_of_current(), value, &value);
    if (rc < 0) return rc;
  }
}

/* volatile sources keep the compiler from folding the sums into constants. */
static volatile uint64_t g_seed = 0x9e3779b97f4a7c15u;
static volatile double g_dseed = 1.25;

TEST(callee_saved_registers_survive_switches) {
  kiln_fiber *f = make(clobber, NULL, NULL);
  KT_EQ(kiln_fiber_switch(f, NULL, NULL), 0); /* started: the rest take the common case */
  uint64_t a = g_seed, b = a * 3, c = a ^ 77, d = a + 5, e = a >> 3, g = ~a, h = a * 7;
  double x = g_dseed, y = x * 2, z = x + 3, w = x * x;
  for (int i = 0; i < 1000; i++) {
    void *out = NULL;
    KT_EQ(kiln_fiber_switch(f, (void *)(intptr_t)i, &out), 0);
    KT_EQ((intptr_t)out, i);
    a += b, b ^= c, c += d, d ^= e, e += g, g ^= h, h += a;
    x += y, y *= 0.5, z += w, w -= x;
  }
  /* The same arithmetic without switches. */
  uint64_t a2 = g_seed, b2 = a2 * 3, c2 = a2 ^ 77, d2 = a2 + 5, e2 = a2 >> 3, g2 = ~a2, h2 = a2 * 7;
  double x2 = g_dseed, y2 = x2 * 2, z2 = x2 + 3, w2 = x2 * x2;
  for (int i = 0; i < 1000; i++) {
    a2 += b2, b2 ^= c2, c2 += d2, d2 ^= e2, e2 += g2, g2 ^= h2, h2 += a2;
    x2 += y2, y2 *= 0.5, z2 += w2, w2 -= x2;
  }
  KT_EQ(a, a2);
  KT_EQ(b, b2);
  KT_EQ(c, c2);
  KT_EQ(d, d2);
  KT_EQ(e, e2);
  KT_EQ(g, g2);
  KT_EQ(h, h2);
  KT_TRUE(x == x2 && y == y2 && z == z2 && w == w2);
  kiln_fiber_destroy(f);
}

/* ---- floating-point control state --------------------------------------------------------- */

#if defined(__x86_64__)
/* MXCSR: rounding control, and the status flags (bits 0-5), which arithmetic may set at any
 * time and are left out of the comparisons. */
enum { MXCSR_RC = 0x6000, MXCSR_TOWARD_ZERO = 0x6000, MXCSR_FLAGS = 0x3f, FCW_PC = 0x300 };

static unsigned csr_get(void) { return _mm_getcsr() & ~(unsigned)MXCSR_FLAGS; }

static unsigned fcw_get(void) {
  fpu_control_t cw;
  _FPU_GETCW(cw);
  return cw;
}

static void fcw_set(unsigned v) {
  fpu_control_t cw = (fpu_control_t)v;
  _FPU_SETCW(cw);
}

/* Reports the MXCSR and x87 control word it runs with at each switch back (started with its
 * creator's), and changes neither. */
static int report_control(void *arg, void *value, void **result) {
  (void)arg;
  (void)value;
  (void)result;
  for (;;) {
    uintptr_t words = (uintptr_t)csr_get() | (uintptr_t)fcw_get() << 32;
    int rc = kiln_fiber_switch(parent_of_current(), (void *)words, NULL);
    if (rc < 0) return rc;
  }
}

/* Each of the two words changed alone, in the caller or in the fiber, stays with that fiber;
 * the switches after the first take the common case. */
TEST(mxcsr_and_x87_control_word_stay_with_their_fiber) {
  unsigned csr0 = csr_get(), cw0 = fcw_get();
  kiln_fiber *f = make(report_control, NULL, NULL);
  void *out = NULL;
  KT_EQ(kiln_fiber_switch(f, NULL, &out), 0);
  KT_EQ((uintptr_t)out, (uintptr_t)csr0 | (uintptr_t)cw0 << 32);

  _mm_setcsr((csr0 & ~MXCSR_RC) | MXCSR_TOWARD_ZERO); /* the SSE rounding mode only */
  KT_EQ(kiln_fiber_switch(f, NULL, &out), 0);
  KT_EQ((uintptr_t)out, (uintptr_t)csr0 | (uintptr_t)cw0 << 32);
  KT_EQ(csr_get(), (csr0 & ~MXCSR_RC) | MXCSR_TOWARD_ZERO);
  KT_EQ(fcw_get(), cw0);
  _mm_setcsr(csr0);

  fcw_set(cw0 & ~FCW_PC); /* the x87 precision only: single */
  KT_EQ(kiln_fiber_switch(f, NULL, &out), 0);
  KT_EQ((uintptr_t)out, (uintptr_t)csr0 | (uintptr_t)cw0 << 32);
  KT_EQ(fcw_get(), cw0 & ~FCW_PC);
  KT_EQ(csr_get(), csr0);
  fcw_set(cw0);

  KT_EQ(kiln_fiber_switch(f, NULL, &out), 0);
  KT_EQ((uintptr_t)out, (uintptr_t)csr0 | (uintptr_t)cw0 << 32);
  kiln_fiber_destroy(f);
}

/* Changes its own control words and hands back what it then runs with. */
static int change_control(void *arg, void *value, void **result) {
  (void)arg;
  (void)value;
  (void)result;
  unsigned csr = csr_get(), cw = fcw_get();
  _mm_setcsr((csr & ~MXCSR_RC) | MXCSR_TOWARD_ZERO);
  fcw_set(cw & ~FCW_PC);
  for (int i = 0;; i++) {
    KT_EQ(csr_get(), (csr & ~MXCSR_RC) | MXCSR_TOWARD_ZERO);
    KT_EQ(fcw_get(), cw & ~FCW_PC);
    int rc = kiln_fiber_switch(parent_of_current(), (void *)(intptr_t)i, NULL);
    if (rc < 0) {
      _mm_setcsr(csr);
      fcw_set(cw);
      return rc;
    }
  }
}

TEST(control_words_changed_in_a_fiber_do_not_leak) {
  unsigned csr0 = csr_get(), cw0 = fcw_get();
  kiln_fiber *f = make(change_control, NULL, NULL);
  for (int i = 0; i < 100; i++) {
    void *out = NULL;
    KT_EQ(kiln_fiber_switch(f, NULL, &out), 0);
    KT_EQ((intptr_t)out, i);
    KT_EQ(csr_get(), csr0);
    KT_EQ(fcw_get(), cw0);
  }
  kiln_fiber_destroy(f);
  KT_EQ(csr_get(), csr0);
  KT_EQ(fcw_get(), cw0);
}
#endif

/* The status flags are the thread's, not the fiber's: an inexact division in a fiber shows in
 * the caller's fetestexcept after the switch back, and a clear in the caller shows in the fiber.
 * (A switch that compared them would also reload the control words every time two fibers' sticky
 * flags differ.) */
static volatile double g_one = 1.0, g_three = 3.0, g_quotient;

static int divide(void *arg, void *value, void **result) {
  (void)arg;
  (void)value;
  (void)result;
  for (;;) {
    KT_EQ(fetestexcept(FE_INEXACT), 0); /* cleared by the caller */
    g_quotient = g_one / g_three;
    KT_TRUE(fetestexcept(FE_INEXACT) != 0);
    int rc = kiln_fiber_switch(parent_of_current(), NULL, NULL);
    if (rc < 0) return rc;
  }
}

TEST(status_flags_stay_with_the_thread) {
  kiln_fiber *f = make(divide, NULL, NULL);
  for (int i = 0; i < 3; i++) { /* the first starts it, the others take the common case */
    KT_EQ(feclearexcept(FE_ALL_EXCEPT), 0);
    KT_EQ(kiln_fiber_switch(f, NULL, NULL), 0);
    KT_TRUE(fetestexcept(FE_INEXACT) != 0);
  }
  KT_EQ(feclearexcept(FE_ALL_EXCEPT), 0);
  kiln_fiber_destroy(f);
}

#if defined(__x86_64__)
/* kiln__fiber_swap, the stack-frame switch that fiber.c no longer uses but the rest of the
 * runtime may build on, keeps the same rules: control words per context, status flags the
 * thread's. Its new stack is made by hand here in kiln__fiber_init_stack's layout (MXCSR and
 * x87 control word, r15 r14 r13 r12 rbx rbp, return address), returning into swap_entry_start,
 * which calls swap_entry with the stack aligned as a call leaves it. */
void *kiln__fiber_swap(void **save_sp, void *new_sp, void *transfer);
void swap_entry(void);
void swap_entry_start(void);
__asm__(".text\n"
        ".globl swap_entry_start\n"
        "swap_entry_start:\n"
        "  call swap_entry\n"
        "  ud2\n");

static void *g_main_sp, *g_swap_sp;

void swap_entry(void) {
  for (intptr_t i = 0;; i++) {
    if (i == 1) KT_EQ(fesetround(FE_UPWARD), 0);
    if (i == 2) {
      KT_EQ(fegetround(), FE_UPWARD); /* its own, back after the caller's */
      KT_EQ(fesetround(FE_TONEAREST), 0);
      KT_EQ(fetestexcept(FE_INEXACT), 0); /* cleared by the caller */
      g_quotient = g_one / g_three;
    }
    KT_EQ((intptr_t)kiln__fiber_swap(&g_swap_sp, g_main_sp, (void *)(i + 100)), i + 1);
  }
}

TEST(stack_frame_swap_keeps_the_same_rules) {
  static uint64_t stack[8192] __attribute__((aligned(16)));
  uint64_t *sp = stack + 8192 - 8;
  uint32_t csr;
  uint16_t cw;
  __asm__ volatile("stmxcsr %0" : "=m"(csr));
  __asm__ volatile("fnstcw %0" : "=m"(cw));
  sp[0] = csr | (uint64_t)cw << 32;
  for (int i = 1; i < 7; i++) sp[i] = 0;
  sp[7] = (uint64_t)(uintptr_t)swap_entry_start;
  g_swap_sp = sp;
  KT_EQ((intptr_t)kiln__fiber_swap(&g_main_sp, g_swap_sp, NULL), 100);
  KT_EQ((intptr_t)kiln__fiber_swap(&g_main_sp, g_swap_sp, (void *)1), 101); /* it rounds up */
  KT_EQ(fegetround(), FE_TONEAREST);
  KT_EQ(feclearexcept(FE_ALL_EXCEPT), 0);
  KT_EQ((intptr_t)kiln__fiber_swap(&g_main_sp, g_swap_sp, (void *)2), 102); /* it divides */
  KT_TRUE(fetestexcept(FE_INEXACT) != 0);
  KT_EQ(fegetround(), FE_TONEAREST);
  KT_EQ(feclearexcept(FE_ALL_EXCEPT), 0);
  /* Its stack is simply dropped: nothing on it needs unwinding. */
}
#endif

/* ---- values, and the common case mixed with the others ----------------------------------- */

/* Hands back value + 1 each time; ends with NULL's successor when sent 99. */
static int increment(void *arg, void *value, void **result) {
  (void)arg;
  for (;;) {
    intptr_t v = (intptr_t)value;
    if (v == 99) {
      *result = (void *)(intptr_t)100;
      return 0;
    }
    int rc = kiln_fiber_switch(parent_of_current(), (void *)(v + 1), &value);
    if (rc < 0) {
      value = (void *)(intptr_t)(rc * 10); /* a throw: handed back as a value, then go on */
      KT_EQ(kiln_fiber_switch(parent_of_current(), value, &value), 0);
    }
  }
}

TEST(common_case_mixed_with_throw_and_end) {
  kiln_fiber *f = make(increment, NULL, NULL);
  void *out = NULL;
  KT_EQ(kiln_fiber_switch(f, (void *)1, &out), 0); /* starts it */
  KT_EQ((intptr_t)out, 2);
  KT_EQ(kiln_fiber_switch(f, (void *)5, NULL), 0); /* no out: the 6 is dropped */
  KT_EQ(kiln_fiber_switch(f, (void *)7, &out), 0);
  KT_EQ((intptr_t)out, 8);
  /* A throw resumes a fiber that the common case suspended, and the common case resumes the
   * caller that the throw suspended. */
  KT_EQ(kiln_fiber_throw(f, KILN_EIO, &out), 0);
  KT_EQ((intptr_t)out, KILN_EIO * 10);
  KT_EQ(kiln_fiber_switch(f, (void *)10, &out), 0);
  KT_EQ((intptr_t)out, 11);
  /* Its end resumes a caller suspended by the common case, with the result in its out. */
  KT_EQ(kiln_fiber_switch(f, (void *)99, &out), 0);
  KT_EQ((intptr_t)out, 100);
  KT_TRUE(kiln_fiber_dead(f));
  /* A dead fiber is not the common case: the switch goes to its parent, the caller itself. */
  KT_EQ(kiln_fiber_switch(f, (void *)3, &out), 0);
  KT_EQ((intptr_t)out, 3);
  kiln_fiber_destroy(f);
}

/* Switches to itself with and without an out, from a started fiber. */
static int to_self(void *arg, void *value, void **result) {
  (void)arg;
  (void)value;
  kiln_fiber *self = kiln_fiber_current();
  void *out = NULL;
  KT_EQ(kiln_fiber_switch(self, (void *)41, &out), 0);
  KT_EQ((intptr_t)out, 41);
  KT_EQ(kiln_fiber_switch(self, (void *)42, NULL), 0);
  KT_EQ(kiln_fiber_switch(parent_of_current(), (void *)43, &out), 0);
  KT_EQ(kiln_fiber_switch(self, out, &out), 0);
  *result = out;
  return 0;
}

TEST(switch_to_self_in_the_common_case) {
  kiln_fiber *f = make(to_self, NULL, NULL);
  void *out = NULL;
  KT_EQ(kiln_fiber_switch(f, NULL, &out), 0);
  KT_EQ((intptr_t)out, 43);
  KT_EQ(kiln_fiber_switch(f, (void *)44, &out), 0);
  KT_EQ((intptr_t)out, 44);
  KT_TRUE(kiln_fiber_dead(f));
  kiln_fiber_destroy(f);
  /* The main fiber to itself. */
  KT_EQ(kiln_fiber_switch(kiln_fiber_current(), (void *)45, &out), 0);
  KT_EQ((intptr_t)out, 45);
}

/* ---- threads ------------------------------------------------------------------------------ */

static pthread_barrier_t g_barrier;
static kiln_fiber *g_started;

static int echo(void *arg, void *value, void **result) {
  (void)arg;
  (void)result;
  for (;;) {
    int rc = kiln_fiber_switch(parent_of_current(), value, &value);
    if (rc < 0) return rc;
  }
}

static void *started_owner(void *arg) {
  (void)arg;
  g_started = make(echo, NULL, NULL);
  void *out = NULL;
  KT_EQ(kiln_fiber_switch(g_started, (void *)1, &out), 0); /* started, suspended */
  pthread_barrier_wait(&g_barrier);                        /* published */
  pthread_barrier_wait(&g_barrier);                        /* the other thread has tried */
  KT_EQ(kiln_fiber_switch(g_started, (void *)5, &out), 0); /* still usable at home */
  KT_EQ((intptr_t)out, 5);
  kiln_fiber_destroy(g_started);
  return NULL;
}

/* A fiber that has started passes every check of the common case but the thread's. */
TEST(started_fiber_of_another_thread_refused) {
  KT_EQ(pthread_barrier_init(&g_barrier, NULL, 2), 0);
  pthread_t th;
  KT_EQ(pthread_create(&th, NULL, started_owner, NULL), 0);
  pthread_barrier_wait(&g_barrier);
  kiln_fiber *me = kiln_fiber_current();
  void *out = (void *)1;
  KT_EQ(kiln_fiber_switch(g_started, (void *)9, &out), KILN_ESTATE);
  KT_PTR_EQ(out, NULL);
  KT_PTR_EQ(kiln_fiber_current(), me);
  KT_TRUE(kiln_fiber_started(g_started) && !kiln_fiber_dead(g_started));
  pthread_barrier_wait(&g_barrier);
  KT_EQ(pthread_join(th, NULL), 0);
  pthread_barrier_destroy(&g_barrier);
}
