/* test_fiber.c: kiln_fiber, greenlet's model (include/kiln/fiber.h): values both ways, the parent
 * on exit, throw, dead fibers, parents, threads, stacks (pool, the overflow between threads,
 * recursion, the guard page). */
// kt: timeout 120
#define _GNU_SOURCE /* pthread_barrier_t; does not clash with kt.h's _POSIX_C_SOURCE */
#include <fenv.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kiln/fiber.h"
#include "kt.h"

static kiln_fiber *make(kiln_fiber_fn fn, void *arg, size_t stack, kiln_fiber *parent) {
  kiln_fiber *f = NULL;
  KT_EQ(kiln_fiber_create(fn, arg, stack, parent, &f), 0);
  KT_TRUE(f != NULL);
  return f;
}

/* ---- values, parents, errors ------------------------------------------------------------ */

/* Adds what it is sent to a running total, hands the total back, until it is sent NULL. */
static int accumulate(void *arg, void *value, void **result) {
  intptr_t total = (intptr_t)arg;
  kiln_fiber *parent = kiln_fiber_parent(kiln_fiber_current());
  while (value) {
    total += (intptr_t)value;
    KT_EQ(kiln_fiber_switch(parent, (void *)total, &value), 0);
  }
  *result = (void *)(total * 10);
  return 0;
}

TEST(switch_values_both_ways) {
  kiln_fiber *main_fiber = kiln_fiber_current();
  KT_TRUE(kiln_fiber_is_main(main_fiber));
  KT_TRUE(kiln_fiber_started(main_fiber));
  KT_FALSE(kiln_fiber_dead(main_fiber));
  KT_PTR_EQ(kiln_fiber_parent(main_fiber), NULL);
  kiln_fiber *f = make(accumulate, (void *)100, 0, NULL);
  KT_PTR_EQ(kiln_fiber_parent(f), main_fiber);
  KT_FALSE(kiln_fiber_started(f));
  KT_FALSE(kiln_fiber_dead(f));
  KT_EQ(kiln_fiber_stack_size(f), KILN_FIBER_STACK_DEFAULT);
  void *out = NULL;
  KT_EQ(kiln_fiber_switch(f, (void *)1, &out), 0);
  KT_EQ((intptr_t)out, 101);
  KT_TRUE(kiln_fiber_started(f));
  KT_FALSE(kiln_fiber_dead(f));
  KT_PTR_EQ(kiln_fiber_current(), main_fiber);
  KT_EQ(kiln_fiber_switch(f, (void *)20, &out), 0);
  KT_EQ((intptr_t)out, 121);
  /* The fiber ends: its result comes back through the parent's pending switch. */
  KT_EQ(kiln_fiber_switch(f, NULL, &out), 0);
  KT_EQ((intptr_t)out, 1210);
  KT_TRUE(kiln_fiber_dead(f));
  KT_TRUE(kiln_fiber_started(f));
  kiln_fiber_destroy(f);
  kiln_fiber_destroy(NULL);
}

static int fail_with(void *arg, void *value, void **result) {
  (void)value;
  *result = (void *)1; /* not handed over: the fiber ends with an error */
  return (int)(intptr_t)arg;
}

TEST(error_ends_fiber_and_goes_to_parent) {
  kiln_fiber *f = make(fail_with, (void *)(intptr_t)KILN_EIO, 0, NULL);
  void *out = (void *)7;
  KT_EQ(kiln_fiber_switch(f, NULL, &out), KILN_EIO);
  KT_PTR_EQ(out, NULL);
  KT_TRUE(kiln_fiber_dead(f));
  kiln_fiber_destroy(f);
}

/* Waits in a switch to its parent; reports the code that interrupts it, then either goes on
 * (returns a value) or passes the code on, as *arg says. */
typedef struct {
  int seen;
  bool pass_on;
  bool ran;
} catcher;

static int catch_throw(void *arg, void *value, void **result) {
  (void)value;
  catcher *c = arg;
  c->ran = true;
  void *v = (void *)1;
  c->seen = kiln_fiber_switch(kiln_fiber_parent(kiln_fiber_current()), (void *)5, &v);
  if (c->seen < 0 && c->pass_on) return c->seen;
  KT_PTR_EQ(v, NULL);
  *result = (void *)6;
  return 0;
}

TEST(throw_caught_goes_on) {
  catcher c = {0, false, false};
  kiln_fiber *f = make(catch_throw, &c, 0, NULL);
  void *out = NULL;
  KT_EQ(kiln_fiber_switch(f, NULL, &out), 0);
  KT_EQ((intptr_t)out, 5);
  KT_EQ(kiln_fiber_throw(f, KILN_ETIMEDOUT, &out), 0);
  KT_EQ(c.seen, KILN_ETIMEDOUT);
  KT_EQ((intptr_t)out, 6);
  KT_TRUE(kiln_fiber_dead(f));
  kiln_fiber_destroy(f);
}

TEST(throw_uncaught_reaches_parent) {
  catcher c = {0, true, false};
  kiln_fiber *f = make(catch_throw, &c, 0, NULL);
  KT_EQ(kiln_fiber_switch(f, NULL, NULL), 0);
  void *out = (void *)1;
  KT_EQ(kiln_fiber_throw(f, KILN_ECANCELLED, &out), KILN_ECANCELLED);
  KT_PTR_EQ(out, NULL);
  KT_EQ(c.seen, KILN_ECANCELLED);
  KT_TRUE(kiln_fiber_dead(f));
  kiln_fiber_destroy(f);
}

TEST(throw_into_unstarted_kills_it_unrun) {
  catcher c = {0, false, false};
  kiln_fiber *f = make(catch_throw, &c, 0, NULL);
  KT_EQ(kiln_fiber_throw(f, KILN_EIO, NULL), KILN_EIO);
  KT_FALSE(c.ran);
  KT_TRUE(kiln_fiber_dead(f));
  KT_TRUE(kiln_fiber_started(f));
  KT_EQ(kiln_fiber_throw(f, 0, NULL), KILN_EINVAL);
  KT_EQ(kiln_fiber_throw(f, 3, NULL), KILN_EINVAL);
  kiln_fiber_destroy(f);
}

static int switch_to_self(void *arg, void *value, void **result) {
  (void)arg;
  void *out = NULL;
  KT_EQ(kiln_fiber_switch(kiln_fiber_current(), (void *)9, &out), 0);
  KT_EQ((intptr_t)out, 9);
  KT_EQ(kiln_fiber_throw(kiln_fiber_current(), KILN_EBUSY, &out), KILN_EBUSY);
  *result = value;
  return 0;
}

TEST(switch_to_self_returns_at_once) {
  void *out = NULL;
  KT_EQ(kiln_fiber_switch(kiln_fiber_current(), (void *)3, &out), 0);
  KT_EQ((intptr_t)out, 3);
  KT_EQ(kiln_fiber_throw(kiln_fiber_current(), KILN_EFULL, &out), KILN_EFULL);
  KT_PTR_EQ(out, NULL);
  kiln_fiber *f = make(switch_to_self, NULL, 0, NULL);
  KT_EQ(kiln_fiber_switch(f, (void *)4, &out), 0);
  KT_EQ((intptr_t)out, 4);
  kiln_fiber_destroy(f);
}

static int echo(void *arg, void *value, void **result) {
  (void)arg;
  *result = value;
  return 0;
}

TEST(dead_fiber_switch_goes_to_parent) {
  kiln_fiber *f = make(echo, NULL, 0, NULL);
  void *out = NULL;
  KT_EQ(kiln_fiber_switch(f, (void *)2, &out), 0);
  KT_EQ((intptr_t)out, 2);
  KT_TRUE(kiln_fiber_dead(f));
  /* greenlet: a switch to a dead greenlet goes to its parent, here the caller: at once. */
  KT_EQ(kiln_fiber_switch(f, (void *)8, &out), 0);
  KT_EQ((intptr_t)out, 8);
  KT_EQ(kiln_fiber_throw(f, KILN_EEOF, &out), KILN_EEOF);
  kiln_fiber_destroy(f);
}

/* A fiber whose child ends and then waits to be resumed by a switch to the dead child. */
static int resumed_through_dead_child(void *arg, void *value, void **result) {
  (void)value;
  kiln_fiber **child = arg;
  *child = make(echo, NULL, 0, NULL); /* parent: this fiber */
  void *out = NULL;
  KT_EQ(kiln_fiber_switch(*child, (void *)1, &out), 0); /* the child ends at once */
  KT_EQ((intptr_t)out, 1);
  KT_EQ(kiln_fiber_switch(kiln_fiber_parent(kiln_fiber_current()), NULL, &out), 0);
  *result = out; /* what main sent to the dead child */
  return 0;
}

TEST(dead_fiber_switch_resumes_its_live_parent) {
  kiln_fiber *child = NULL;
  kiln_fiber *f = make(resumed_through_dead_child, &child, 0, NULL);
  KT_EQ(kiln_fiber_switch(f, NULL, NULL), 0);
  KT_TRUE(kiln_fiber_dead(child));
  void *out = NULL;
  KT_EQ(kiln_fiber_switch(child, (void *)42, &out), 0);
  KT_EQ((intptr_t)out, 42);
  KT_TRUE(kiln_fiber_dead(f));
  kiln_fiber_destroy(child);
  kiln_fiber_destroy(f);
}

/* greenlet's outer/inner: outer makes inner (its child) and ends; inner's result, when it ends
 * later, passes over dead outer to main. The child keeps outer's record alive meanwhile. */
static int make_orphan(void *arg, void *value, void **result) {
  (void)arg;
  (void)value;
  *result = make(echo, NULL, 0, NULL);
  return 0;
}

TEST(result_skips_dead_parent) {
  kiln_fiber *outer = make(make_orphan, NULL, 0, NULL);
  void *out = NULL;
  KT_EQ(kiln_fiber_switch(outer, NULL, &out), 0);
  kiln_fiber *inner = out;
  KT_TRUE(kiln_fiber_dead(outer));
  KT_PTR_EQ(kiln_fiber_parent(inner), outer);
  kiln_fiber_destroy(outer); /* inner still refers to it */
  KT_EQ(kiln_fiber_switch(inner, (void *)77, &out), 0);
  KT_EQ((intptr_t)out, 77);
  kiln_fiber_destroy(inner); /* and now both go */
}

static int must_not_run(void *arg, void *value, void **result) {
  (void)value;
  (void)result;
  *(bool *)arg = true;
  return 0;
}

TEST(created_never_started_then_destroyed) {
  bool ran = false;
  for (int i = 0; i < 100; i++) kiln_fiber_destroy(make(must_not_run, &ran, 64 * 1024, NULL));
  KT_FALSE(ran);
  kiln_fiber *f = NULL;
  KT_EQ(kiln_fiber_create(NULL, NULL, 0, NULL, &f), KILN_EINVAL);
  KT_PTR_EQ(f, NULL);
}

/* Suspended, then destroyed: sees KILN_ECANCELLED (greenlet's GreenletExit) and unwinds. */
static int cleans_up(void *arg, void *value, void **result) {
  (void)value;
  (void)result;
  int *seen = arg;
  *seen = kiln_fiber_switch(kiln_fiber_parent(kiln_fiber_current()), NULL, NULL);
  return *seen;
}

TEST(destroy_suspended_unwinds_it) {
  int seen = 1;
  kiln_fiber *f = make(cleans_up, &seen, 0, NULL);
  KT_EQ(kiln_fiber_switch(f, NULL, NULL), 0);
  KT_EQ(seen, 1);
  kiln_fiber_destroy(f);
  KT_EQ(seen, KILN_ECANCELLED);
}

/* Nested: a fiber creates two children that hand a token back and forth through it. */
static int relay(void *arg, void *value, void **result) {
  (void)arg;
  intptr_t n = (intptr_t)value;
  kiln_fiber *parent = kiln_fiber_parent(kiln_fiber_current());
  while (n < 1000) KT_EQ(kiln_fiber_switch(parent, (void *)(n + 1), (void **)&n), 0);
  *result = (void *)n;
  return 0;
}

static int coordinator(void *arg, void *value, void **result) {
  (void)arg;
  (void)value;
  kiln_fiber *a = make(relay, NULL, 32 * 1024, NULL);
  kiln_fiber *b = make(relay, NULL, 32 * 1024, NULL);
  KT_PTR_EQ(kiln_fiber_parent(a), kiln_fiber_current());
  intptr_t n = 0;
  int turns = 0;
  while (!kiln_fiber_dead(a) || !kiln_fiber_dead(b)) {
    kiln_fiber *next = (turns++ % 2 == 0 && !kiln_fiber_dead(a)) || kiln_fiber_dead(b) ? a : b;
    KT_EQ(kiln_fiber_switch(next, (void *)n, (void **)&n), 0);
  }
  kiln_fiber_destroy(a);
  kiln_fiber_destroy(b);
  *result = (void *)(intptr_t)turns;
  return 0;
}

TEST(nested_fibers) {
  kiln_fiber *f = make(coordinator, NULL, 0, NULL);
  void *out = NULL;
  KT_EQ(kiln_fiber_switch(f, NULL, &out), 0);
  KT_TRUE((intptr_t)out >= 1000);
  KT_TRUE(kiln_fiber_dead(f));
  kiln_fiber_destroy(f);
}

TEST(set_parent_refuses_cycles) {
  kiln_fiber *main_fiber = kiln_fiber_current();
  kiln_fiber *a = make(echo, NULL, 0, NULL);
  kiln_fiber *b = make(echo, NULL, 0, a);
  KT_PTR_EQ(kiln_fiber_parent(b), a);
  KT_EQ(kiln_fiber_set_parent(a, b), KILN_EINVAL);
  KT_EQ(kiln_fiber_set_parent(a, a), KILN_EINVAL);
  KT_EQ(kiln_fiber_set_parent(a, NULL), KILN_EINVAL);
  KT_EQ(kiln_fiber_set_parent(main_fiber, a), KILN_EINVAL);
  KT_PTR_EQ(kiln_fiber_parent(a), main_fiber);
  /* b ends into its parent a, which starts with b's result. */
  void *out = NULL;
  KT_EQ(kiln_fiber_switch(b, (void *)3, &out), 0);
  KT_EQ((intptr_t)out, 3);
  KT_TRUE(kiln_fiber_dead(a));
  KT_EQ(kiln_fiber_set_parent(b, main_fiber), 0);
  KT_PTR_EQ(kiln_fiber_parent(b), main_fiber);
  kiln_fiber_destroy(a);
  kiln_fiber_destroy(b);
}

/* Floating-point control state is callee-saved: each fiber keeps its own rounding mode, both the
 * one fegetround reports and the one SSE arithmetic uses (x86-64 keeps them apart). */
static volatile double g_one = 1.0, g_three = 3.0, g_third;

/* The quotient is stored through a volatile before returning: the compiler may not move the
 * division across fesetround otherwise (it assumes the default environment). */
static double third(void) {
  g_third = g_one / g_three;
  return g_third;
}

static int round_up(void *arg, void *value, void **result) {
  (void)arg;
  (void)value;
  (void)result;
  KT_EQ(fegetround(), FE_TONEAREST); /* a new fiber starts with its creator's */
  double nearest = third();
  KT_EQ(fesetround(FE_UPWARD), 0);
  double up = third();
  KT_TRUE(up > nearest);
  KT_EQ(kiln_fiber_switch(kiln_fiber_parent(kiln_fiber_current()), NULL, NULL), 0);
  KT_EQ(fegetround(), FE_UPWARD);
  KT_TRUE(third() == up);
  return 0;
}

TEST(rounding_mode_is_per_fiber) {
  KT_EQ(fegetround(), FE_TONEAREST);
  double nearest = third();
  kiln_fiber *f = make(round_up, NULL, 0, NULL);
  KT_EQ(kiln_fiber_switch(f, NULL, NULL), 0);
  KT_EQ(fegetround(), FE_TONEAREST);
  KT_TRUE(third() == nearest);
  KT_EQ(fesetround(FE_DOWNWARD), 0);
  double down = third();
  KT_EQ(kiln_fiber_switch(f, NULL, NULL), 0);
  KT_EQ(fegetround(), FE_DOWNWARD);
  KT_TRUE(third() == down);
  KT_EQ(fesetround(FE_TONEAREST), 0);
  kiln_fiber_destroy(f);
}

/* ---- threads ------------------------------------------------------------------------------ */

enum { THREADS = 4, PING_PONGS = 20000 };

static int counter(void *arg, void *value, void **result) {
  (void)arg;
  kiln_fiber *parent = kiln_fiber_parent(kiln_fiber_current());
  intptr_t n = (intptr_t)value;
  for (int i = 0; i < PING_PONGS; i++)
    KT_EQ(kiln_fiber_switch(parent, (void *)(n + 1), (void **)&n), 0);
  *result = (void *)n;
  return 0;
}

static void *ping_pong_thread(void *arg) {
  kiln_fiber *main_fiber = kiln_fiber_current();
  KT_TRUE(kiln_fiber_is_main(main_fiber));
  KT_TRUE(main_fiber != arg); /* each thread its own main fiber */
  kiln_fiber *f = make(counter, NULL, 64 * 1024, NULL);
  intptr_t n = 0;
  while (!kiln_fiber_dead(f)) KT_EQ(kiln_fiber_switch(f, (void *)n, (void **)&n), 0);
  kiln_fiber_destroy(f);
  return (void *)n;
}

TEST(fibers_on_several_threads) {
  pthread_t th[THREADS];
  for (int i = 0; i < THREADS; i++)
    KT_EQ(pthread_create(&th[i], NULL, ping_pong_thread, kiln_fiber_current()), 0);
  for (int i = 0; i < THREADS; i++) {
    void *n = NULL;
    KT_EQ(pthread_join(th[i], &n), 0);
    KT_EQ((intptr_t)n, PING_PONGS);
  }
}

static pthread_barrier_t g_barrier;
static kiln_fiber *g_foreign;

static void *owner_thread(void *arg) {
  (void)arg;
  g_foreign = make(echo, NULL, 0, NULL);
  pthread_barrier_wait(&g_barrier); /* published */
  pthread_barrier_wait(&g_barrier); /* the other thread has tried */
  void *out = NULL;
  KT_EQ(kiln_fiber_switch(g_foreign, (void *)5, &out), 0); /* still usable at home */
  KT_EQ((intptr_t)out, 5);
  kiln_fiber_destroy(g_foreign);
  return NULL;
}

TEST(cross_thread_switch_refused) {
  KT_EQ(pthread_barrier_init(&g_barrier, NULL, 2), 0);
  pthread_t th;
  KT_EQ(pthread_create(&th, NULL, owner_thread, NULL), 0);
  pthread_barrier_wait(&g_barrier);
  void *out = (void *)1;
  KT_EQ(kiln_fiber_switch(g_foreign, NULL, &out), KILN_ESTATE);
  KT_PTR_EQ(out, NULL);
  KT_EQ(kiln_fiber_throw(g_foreign, KILN_EIO, NULL), KILN_ESTATE);
  kiln_fiber *mine = make(echo, NULL, 0, NULL);
  KT_EQ(kiln_fiber_set_parent(mine, g_foreign), KILN_ESTATE);
  kiln_fiber *f = NULL;
  KT_EQ(kiln_fiber_create(echo, NULL, 0, g_foreign, &f), KILN_ESTATE);
  KT_PTR_EQ(f, NULL);
  KT_FALSE(kiln_fiber_started(g_foreign));
  pthread_barrier_wait(&g_barrier);
  KT_EQ(pthread_join(th, NULL), 0);
  kiln_fiber_destroy(mine);
  pthread_barrier_destroy(&g_barrier);
}

/* ---- stacks ------------------------------------------------------------------------------- */

static long rss_pages(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  KT_TRUE(f != NULL);
  long size = 0, resident = 0;
  KT_EQ(fscanf(f, "%ld %ld", &size, &resident), 2);
  fclose(f);
  return resident;
}

/* Touches about arg bytes of its stack, then waits to be destroyed or resumed. */
static int touch_stack(void *arg, void *value, void **result) {
  (void)value;
  (void)result;
  size_t n = (size_t)(uintptr_t)arg;
  volatile char buf[96 * 1024];
  for (size_t i = 0; i < n && i < sizeof buf; i += 512) buf[i] = (char)i;
  return kiln_fiber_switch(kiln_fiber_parent(kiln_fiber_current()), (void *)(uintptr_t)buf[0],
                           NULL);
}

/* The sanitizers keep memory of their own for what the fibers touched: ASan an eighth of every
 * stack byte used (its shadow, not given back with the stack), TSan several times more, and a
 * thread state per fiber that is slow to make (about 0.1 ms). So under ASan the bound allows for
 * the shadow of the burst's stacks, and under TSan only 3% of the cycles run and the resident
 * size is not checked; the plain build checks it exactly. */
#if defined(__SANITIZE_THREAD__)
#define KT_TSAN 1
#elif defined(__SANITIZE_ADDRESS__)
#define KT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define KT_TSAN 1
#elif __has_feature(address_sanitizer)
#define KT_ASAN 1
#endif
#endif
#ifdef KT_TSAN
#define CYCLES 30000
#else
#define CYCLES 1000000
#endif

TEST(million_fibers_rss_comes_back) {
  long page_kib = sysconf(_SC_PAGESIZE) / 1024;
  for (int i = 0; i < 1000; i++) { /* warm: the pool, malloc's arenas */
    kiln_fiber *f = make(echo, NULL, 0, NULL);
    KT_EQ(kiln_fiber_switch(f, NULL, NULL), 0);
    kiln_fiber_destroy(f);
  }
  long before = rss_pages();
  for (int i = 0; i < CYCLES; i++) {
    kiln_fiber *f = make(echo, NULL, 0, NULL);
    void *out = NULL;
    KT_EQ(kiln_fiber_switch(f, (void *)(intptr_t)(i + 1), &out), 0);
    if ((intptr_t)out != i + 1) KT_EQ((intptr_t)out, i + 1);
    kiln_fiber_destroy(f);
  }
  /* A burst: 256 fibers alive at once, each with 96 KiB of its stack touched. */
  enum { BURST = 256 };
  static kiln_fiber *live[BURST];
  for (int i = 0; i < BURST; i++) {
    live[i] = make(touch_stack, (void *)(uintptr_t)(96 * 1024), 0, NULL);
    KT_EQ(kiln_fiber_switch(live[i], NULL, NULL), 0);
  }
  long peak = rss_pages();
  for (int i = 0; i < BURST; i++) kiln_fiber_destroy(live[i]);
  long after = rss_pages();
  fprintf(stderr, "rss: before %ld KiB, peak %ld KiB, after %ld KiB\n", before * page_kib,
          peak * page_kib, after * page_kib);
  KT_TRUE((peak - before) * page_kib > 16 * 1024); /* the burst did take memory */
#ifndef KT_TSAN
  long slack_kib = 4 * 1024;
#ifdef KT_ASAN
  slack_kib += BURST * 96 / 8;
#endif
  KT_TRUE((after - before) * page_kib < slack_kib); /* and gave it back */
#endif
}

static int depth(int n) {
  volatile char frame[512];
  frame[0] = (char)n;
  frame[511] = (char)n;
  return n == 0 ? frame[0] : depth(n - 1) + (frame[511] != (char)n);
}

static int recurse(void *arg, void *value, void **result) {
  (void)value;
  *result = (void *)(intptr_t)depth((int)(intptr_t)arg);
  return 0;
}

/* Records its frame's address (a real stack address, under ASan's fake stacks too) and ends. */
static int frame_where(void *arg, void *value, void **result) {
  (void)value;
  *(uintptr_t *)arg = (uintptr_t)__builtin_frame_address(0);
  *result = NULL;
  return 0;
}

enum { GIVEN = 5 }; /* one more than a thread keeps warm: the last goes to the overflow */
static uintptr_t g_given[GIVEN];
static pthread_barrier_t g_stacks_given;

/* Ends GIVEN fibers that held a stack each at once, then stays alive (its pool with it, so that
 * no stack of it is unmapped and mapped again at the same address) until the test is done. */
static void *give_stacks(void *arg) {
  (void)arg;
  kiln_fiber *f[GIVEN];
  for (int i = 0; i < GIVEN; i++) f[i] = make(frame_where, &g_given[i], 0, NULL);
  for (int i = 0; i < GIVEN; i++) {
    KT_EQ(kiln_fiber_switch(f[i], NULL, NULL), 0);
    KT_TRUE(kiln_fiber_dead(f[i]));
    kiln_fiber_destroy(f[i]);
  }
  pthread_barrier_wait(&g_stacks_given);
  pthread_barrier_wait(&g_stacks_given);
  return NULL;
}

/* A stack given back on one thread beyond the ones it keeps warm is taken by a thread that has
 * none, instead of that thread mapping a new one (pool fibers end on other workers than the one
 * they started on): the new fiber runs on one of the first thread's stacks. */
TEST(warm_stacks_move_between_threads) {
  KT_EQ(pthread_barrier_init(&g_stacks_given, NULL, 2), 0);
  pthread_t th;
  KT_EQ(pthread_create(&th, NULL, give_stacks, NULL), 0);
  pthread_barrier_wait(&g_stacks_given);
  uintptr_t here = 0;
  kiln_fiber *f = make(frame_where, &here, 0, NULL);
  KT_EQ(kiln_fiber_switch(f, NULL, NULL), 0);
  kiln_fiber_destroy(f);
  bool reused = false;
  for (int i = 0; i < GIVEN; i++) reused |= here == g_given[i];
  KT_TRUE(reused);
  pthread_barrier_wait(&g_stacks_given);
  KT_EQ(pthread_join(th, NULL), 0);
  pthread_barrier_destroy(&g_stacks_given);
}

TEST(deep_recursion_within_stack) {
  /* 1000 frames of at least 512 bytes in a 1 MiB stack (sanitizers enlarge frames). */
  kiln_fiber *f = make(recurse, (void *)(intptr_t)1000, 1024 * 1024, NULL);
  KT_EQ(kiln_fiber_stack_size(f), 1024 * 1024);
  void *out = (void *)1;
  KT_EQ(kiln_fiber_switch(f, NULL, &out), 0);
  KT_EQ((intptr_t)out, 0);
  kiln_fiber_destroy(f);
}

static int overflow(void *arg, void *value, void **result) {
  (void)arg;
  (void)value;
  *result = (void *)(intptr_t)depth(1 << 30);
  return 0;
}

TEST(stack_overflow_is_reported) {
  int fds[2];
  KT_EQ(pipe(fds), 0);
  fflush(NULL);
  pid_t pid = fork();
  KT_TRUE(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], STDERR_FILENO);
    close(fds[0]);
    if (kiln_fiber_guard_handler_install() != 0) _exit(3);
    kiln_fiber *f = NULL;
    if (kiln_fiber_create(overflow, NULL, 64 * 1024, NULL, &f) != 0) _exit(4);
    kiln_fiber_switch(f, NULL, NULL);
    _exit(5); /* not reached */
  }
  close(fds[1]);
  char msg[4096] = {0};
  size_t n = 0;
  ssize_t r;
  while (n < sizeof msg - 1 && (r = read(fds[0], msg + n, sizeof msg - 1 - n)) > 0) n += (size_t)r;
  close(fds[0]);
  int status = 0;
  KT_EQ(waitpid(pid, &status, 0), pid);
  if (!WIFSIGNALED(status)) KT_FAIL("child exited with %d: %s", WEXITSTATUS(status), msg);
  KT_EQ(WTERMSIG(status), SIGABRT);
  KT_STR_CONTAINS(msg, "kiln: fiber stack overflow: fault at 0x");
  KT_STR_CONTAINS(msg, "in the guard page of fiber 0x");
  KT_STR_CONTAINS(msg, ", 65536 bytes); aborting\n");
}

static void own_handler(int sig) {
  (void)sig;
  static const char msg[] = "own handler\n";
  ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)w;
  _exit(7);
}

/* A fault that is not a fiber overflow goes to the handler that was there before. */
TEST(other_faults_go_to_previous_handler) {
  int fds[2];
  KT_EQ(pipe(fds), 0);
  fflush(NULL);
  pid_t pid = fork();
  KT_TRUE(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], STDERR_FILENO);
    close(fds[0]);
    signal(SIGSEGV, own_handler);
    if (kiln_fiber_guard_handler_install() != 0) _exit(3);
    kiln_fiber *f = NULL; /* a fiber exists, but the fault is on the main stack */
    if (kiln_fiber_create(echo, NULL, 0, NULL, &f) != 0) _exit(4);
    volatile int *volatile bad = (volatile int *)(uintptr_t)64;
    *bad = 1;
    _exit(5);
  }
  close(fds[1]);
  char msg[4096] = {0};
  size_t n = 0;
  ssize_t r;
  while (n < sizeof msg - 1 && (r = read(fds[0], msg + n, sizeof msg - 1 - n)) > 0) n += (size_t)r;
  close(fds[0]);
  int status = 0;
  KT_EQ(waitpid(pid, &status, 0), pid);
  if (!WIFEXITED(status)) KT_FAIL("child ended by signal %d: %s", WTERMSIG(status), msg);
  KT_EQ(WEXITSTATUS(status), 7);
  KT_STR_EQ(msg, "own handler\n");
}
