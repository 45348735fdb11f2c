/* test_pool_fiber.c: pool fibers (gevent's model on the work-stealing pool): spawn and join,
 * kiln_await across threads (10^5 fibers, none lost or woken twice), migration between workers,
 * kiln_yield, kiln_sleep's order, timeouts, kill, joinall and as_completed on fiber futures,
 * chains of fibers, stack reuse, shutdown with suspended fibers, greenlets inside. */
// kt: timeout 300
#define _GNU_SOURCE /* does not clash with kt.h's _POSIX_C_SOURCE */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kiln/fiber.h"
#include "kiln/sched.h"
#include "kt.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif
#if defined(__SANITIZE_THREAD__)
#define TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TSAN 1
#endif
#endif
#ifndef TSAN
#define TSAN 0
#endif

enum { SMALL_STACK = 32 * 1024 };

static kiln_pool *pool(int threads) {
  kiln_pool_config cfg;
  kiln_pool_config_default(&cfg);
  cfg.threads = threads;
  kiln_pool *p = NULL;
  KT_EQ(kiln_pool_create(&cfg, &p), 0);
  return p;
}

static kiln_future *spawn(kiln_pool *p, kiln_task_fn fn, void *arg) {
  kiln_future *f = NULL;
  KT_CODE(kiln_fiber_spawn(p, fn, arg, SMALL_STACK, &f), 0);
  KT_TRUE(f != NULL);
  return f;
}

static kiln_future *promise(void) {
  kiln_future *f = NULL;
  KT_EQ(kiln_promise_create(&f), 0);
  return f;
}

/* Spins (yielding the CPU) until *flag is set: a handshake, not a sleep. */
static void spin_until(atomic_int *flag) {
  while (!atomic_load(flag)) sched_yield();
}

/* ---- spawn and join ----------------------------------------------------------------------- */

static int add_one(void *arg, void **result) {
  KT_TRUE(kiln_pool_current() != NULL);
  *result = (void *)((intptr_t)arg + 1);
  return 0;
}

static int fails(void *arg, void **result) {
  (void)arg;
  (void)result;
  return kiln_task_fail(KILN_EIO, "fiber %d failed", 7);
}

/* GEV-01 (docs/CONFORMANCE.md) */
TEST(spawn_join) {
  kiln_pool *p = pool(2);
  kiln_future *f = spawn(p, add_one, (void *)41);
  void *v = NULL;
  KT_CODE(kiln_await(f, -1, &v), 0); /* outside a fiber: kiln_future_result */
  KT_EQ((intptr_t)v, 42);
  KT_TRUE(kiln_future_done(f));
  KT_FALSE(kiln_future_cancelled(f));
  kiln_future *g = spawn(p, fails, NULL);
  const char *msg = NULL;
  KT_CODE(kiln_future_error(g, -1, &msg), KILN_EIO);
  KT_STR_EQ(msg, "fiber 7 failed");
  kiln_future_release(g);
  KT_CODE(kiln_fiber_spawn(p, NULL, NULL, 0, &g), KILN_EINVAL);
  KT_PTR_EQ(g, NULL);
  KT_CODE(kiln_fiber_kill(f, false, 0), 0); /* an ended fiber: nothing */
  kiln_future *pr = promise();
  KT_CODE(kiln_fiber_kill(pr, false, 0), KILN_EINVAL);
  kiln_future_release(pr);
  kiln_future_release(f);
  kiln_pool_shutdown(p, true, false);
  KT_CODE(kiln_fiber_spawn(p, add_one, NULL, 0, &f), KILN_ESHUTDOWN);
  kiln_pool_destroy(p);
}

/* ---- 10^5 awaits completed in random order by other threads ------------------------------- */

struct many {
  kiln_future **promises;
  atomic_int *woken;
  size_t n;
  size_t *order;
  int nthreads;
};

struct many_arg {
  struct many *m;
  size_t i;
};

static int await_one(void *arg, void **result) {
  struct many_arg *a = arg;
  void *v = NULL;
  int rc = kiln_await(a->m->promises[a->i], -1, &v);
  if (rc) return rc;
  atomic_fetch_add(&a->m->woken[a->i], 1);
  *result = v;
  return 0;
}

struct completer {
  struct many *m;
  int k;
};

static void *complete_some(void *arg) {
  struct completer *c = arg;
  for (size_t j = (size_t)c->k; j < c->m->n; j += (size_t)c->m->nthreads) {
    size_t i = c->m->order[j];
    KT_EQ(kiln_promise_resolve(c->m->promises[i], (void *)(i + 1)), 0);
  }
  return NULL;
}

TEST(many_awaits_random_order) {
  size_t n = SANITIZED ? 20000 : 100000;
  kiln_pool *p = pool(2);
  struct many m = {.n = n, .nthreads = 3};
  m.promises = calloc(n, sizeof *m.promises);
  m.woken = calloc(n, sizeof *m.woken);
  m.order = calloc(n, sizeof *m.order);
  struct many_arg *args = calloc(n, sizeof *args);
  kiln_future **fibers = calloc(n, sizeof *fibers);
  for (size_t i = 0; i < n; i++) {
    m.promises[i] = promise();
    m.order[i] = i;
    args[i] = (struct many_arg){&m, i};
  }
  uint64_t s = 88172645463325252ull;
  for (size_t i = n - 1; i > 0; i--) { /* Fisher-Yates with xorshift */
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    size_t j = (size_t)(s % (i + 1));
    size_t t = m.order[i];
    m.order[i] = m.order[j];
    m.order[j] = t;
  }
  for (size_t i = 0; i < n; i++) fibers[i] = spawn(p, await_one, &args[i]);
  pthread_t th[3];
  struct completer c[3];
  for (int k = 0; k < 3; k++) {
    c[k] = (struct completer){&m, k};
    KT_EQ(pthread_create(&th[k], NULL, complete_some, &c[k]), 0);
  }
  for (int k = 0; k < 3; k++) pthread_join(th[k], NULL);
  size_t nd = 0;
  KT_CODE(kiln_wait(fibers, n, KILN_ALL_COMPLETED, 120, &nd), 0);
  KT_EQ(nd, n);
  for (size_t i = 0; i < n; i++) {
    void *v = NULL;
    KT_CODE(kiln_future_result(fibers[i], 0, &v), 0);
    size_t who = (size_t)(uintptr_t)v - 1; /* fibers were reordered by kiln_wait */
    KT_TRUE(who < n);
    kiln_future_release(fibers[i]);
  }
  for (size_t i = 0; i < n; i++) {
    if (atomic_load(&m.woken[i]) != 1) KT_FAIL("fiber %zu woke %d times", i, m.woken[i]);
    kiln_future_release(m.promises[i]);
  }
  kiln_pool_destroy(p);
  free(m.promises), free(m.woken), free(m.order), free(args), free(fibers);
}

/* ---- migration: an await resumes on another worker ---------------------------------------- */

struct migrate {
  kiln_future *go;
  atomic_int resumed;
  int before, after;
};

static int record_workers(void *arg, void **result) {
  (void)result;
  struct migrate *m = arg;
  m->before = kiln_worker_index();
  KT_CODE(kiln_await(m->go, -1, NULL), 0);
  m->after = kiln_worker_index();
  atomic_store(&m->resumed, 1);
  return 0;
}

struct blocker {
  atomic_int started;
  atomic_int *release;
};

static int block_worker(void *arg, void **result) {
  (void)result;
  struct blocker *b = arg;
  atomic_store(&b->started, 1);
  spin_until(b->release);
  return 0;
}

TEST(await_resumes_on_another_worker) {
  kiln_pool *p = pool(2);
  bool moved = false;
  for (int trial = 0; trial < 400 && !moved; trial++) {
    struct migrate m = {.go = promise()};
    kiln_future *f = spawn(p, record_workers, &m);
    while (!kiln_future_running(f)) sched_yield(); /* started: it awaits m.go next */
    /* one worker busy until the fiber has resumed: whichever it is, the fiber resumes on the
     * other one half of the time */
    struct blocker b = {.release = &m.resumed};
    kiln_future *bf = NULL;
    KT_EQ(kiln_submit(p, block_worker, &b, &bf), 0);
    spin_until(&b.started);
    KT_EQ(kiln_promise_resolve(m.go, NULL), 0);
    KT_CODE(kiln_future_result(f, -1, NULL), 0);
    KT_CODE(kiln_future_result(bf, -1, NULL), 0);
    KT_TRUE(m.before >= 0 && m.after >= 0);
    moved = m.before != m.after;
    kiln_future_release(f);
    kiln_future_release(bf);
    kiln_future_release(m.go);
  }
  KT_TRUE(moved);
  kiln_pool_destroy(p);
}

/* ---- yield -------------------------------------------------------------------------------- */

static atomic_int yield_log[8];
static atomic_int yield_pos;

static int note_b(void *arg, void **result) {
  (void)arg;
  (void)result;
  atomic_store(&yield_log[atomic_fetch_add(&yield_pos, 1)], 'B');
  return 0;
}

static int yielder(void *arg, void **result) {
  kiln_pool *p = arg;
  atomic_store(&yield_log[atomic_fetch_add(&yield_pos, 1)], 'A');
  kiln_future *b = NULL;
  KT_CODE(kiln_fiber_spawn(p, note_b, NULL, SMALL_STACK, &b), 0);
  KT_FALSE(kiln_future_done(b)); /* one worker: b waits for this fiber to let go */
  KT_CODE(kiln_yield(), 0);
  KT_TRUE(kiln_future_done(b)); /* it ran while this fiber yielded */
  atomic_store(&yield_log[atomic_fetch_add(&yield_pos, 1)], 'a');
  *result = b;
  return 0;
}

/* GEV-03 (docs/CONFORMANCE.md) */
TEST(yield_lets_another_fiber_run) {
  kiln_pool *p = pool(1);
  kiln_future *f = spawn(p, yielder, p);
  void *b = NULL;
  KT_CODE(kiln_future_result(f, -1, &b), 0);
  KT_EQ(atomic_load(&yield_pos), 3);
  KT_EQ(yield_log[0], 'A');
  KT_EQ(yield_log[1], 'B');
  KT_EQ(yield_log[2], 'a');
  kiln_future_release(b);
  kiln_future_release(f);
  KT_CODE(kiln_yield(), 0); /* outside a fiber */
  kiln_pool_destroy(p);
}

/* ---- sleep -------------------------------------------------------------------------------- */

enum { SLEEPERS = 1000 };

struct sleeper {
  kiln_future *gate;
  atomic_int *waiting;
  double *base;
  double offset;
  double deadline;
  double slept; /* when it went to sleep */
  double woke;
  atomic_int *pos;
  int rank;
};

static int sleep_until(void *arg, void **result) {
  (void)result;
  struct sleeper *s = arg;
  atomic_fetch_add(s->waiting, 1);
  KT_CODE(kiln_await(s->gate, -1, NULL), 0);
  s->deadline = *s->base + s->offset;
  s->slept = kt_now();
  KT_CODE(kiln_sleep_until(s->deadline), 0);
  s->woke = kt_now();
  s->rank = atomic_fetch_add(s->pos, 1);
  return 0;
}

/* GEV-04 (docs/CONFORMANCE.md) */
TEST(sleep_order_1000_fibers_one_worker) {
  kiln_pool *p = pool(1);
  static struct sleeper s[SLEEPERS];
  static kiln_future *f[SLEEPERS];
  atomic_int pos = 0;
  int order[SLEEPERS];
  for (int i = 0; i < SLEEPERS; i++) order[i] = i;
  uint64_t x = 12345;
  for (int i = SLEEPERS - 1; i > 0; i--) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    int j = (int)(x % (uint64_t)(i + 1));
    int t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  /* fiber i wakes order[i]-th: deadlines 100 us apart. All fibers start and wait at a gate
   * first; the first deadline is then far enough for all of them to go to sleep before it. */
  kiln_future *gate = promise();
  atomic_int waiting = 0;
  double base = 0;
  for (int i = 0; i < SLEEPERS; i++) {
    s[i] = (struct sleeper){.gate = gate,
                            .waiting = &waiting,
                            .base = &base,
                            .offset = order[i] * 1e-4,
                            .pos = &pos,
                            .rank = -1};
    f[i] = spawn(p, sleep_until, &s[i]);
  }
  while (atomic_load(&waiting) < SLEEPERS) sched_yield();
  base = kt_now() + (SANITIZED ? 1.0 : 0.3);
  KT_EQ(kiln_promise_resolve(gate, NULL), 0); /* orders base before the fibers' reads */
  for (int i = 0; i < SLEEPERS; i++) {
    KT_CODE(kiln_future_result(f[i], -1, NULL), 0);
    kiln_future_release(f[i]);
  }
  double first = base;
  for (int i = 0; i < SLEEPERS; i++)
    if (s[i].slept >= first) KT_FAIL("fiber %d went to sleep after the first deadline", i);
  for (int i = 0; i < SLEEPERS; i++) {
    KT_TRUE(s[i].woke >= s[i].deadline);
    if (s[i].rank != order[i])
      KT_FAIL("fiber %d (deadline rank %d) woke %d-th", i, order[i], s[i].rank);
  }
  kiln_future_release(gate);
  KT_CODE(kiln_sleep(0.001), 0); /* outside a fiber: the thread sleeps */
  KT_CODE(kiln_sleep(NAN), KILN_EINVAL);
  double t0 = kt_now();
  KT_CODE(kiln_sleep_until(t0 + 0.002), 0); /* outside: to the deadline, not before */
  KT_TRUE(kt_now() >= t0 + 0.002);
  KT_CODE(kiln_sleep_until(t0 - 1), 0);
  KT_CODE(kiln_sleep_until(NAN), KILN_EINVAL);
  kiln_pool_destroy(p);
}

/* ---- timeouts ----------------------------------------------------------------------------- */

static int timeouts(void *arg, void **result) {
  (void)result;
  kiln_future *never = arg;
  double t0 = kt_now();
  KT_CODE(kiln_await(never, 0.05, NULL), KILN_ETIMEDOUT);
  KT_TIMED(kt_now() - t0, 0.05);
  KT_CODE(kiln_await(never, 0, NULL), KILN_ETIMEDOUT);
  KT_CODE(kiln_await(never, NAN, NULL), KILN_EINVAL);
  t0 = kt_now();
  KT_CODE(kiln_future_result(never, 0.05, NULL), KILN_ETIMEDOUT); /* suspends, too */
  KT_TIMED(kt_now() - t0, 0.05);
  kiln_future *fs[1] = {never};
  size_t nd = 9;
  t0 = kt_now();
  KT_CODE(kiln_wait(fs, 1, KILN_ALL_COMPLETED, 0.05, &nd), KILN_ETIMEDOUT);
  KT_TIMED(kt_now() - t0, 0.05);
  KT_EQ(nd, 0);
  kiln_future *done = promise();
  KT_EQ(kiln_promise_resolve(done, (void *)5), 0);
  void *v = NULL;
  KT_CODE(kiln_await(done, 0, &v), 0);
  KT_EQ((intptr_t)v, 5);
  kiln_future_release(done);
  return 0;
}

/* GEV-05 (docs/CONFORMANCE.md) */
TEST(await_timeouts) {
  kiln_pool *p = pool(1);
  kiln_future *never = promise();
  kiln_future *f = spawn(p, timeouts, never);
  KT_CODE(kiln_future_result(f, -1, NULL), 0);
  kiln_future_release(f);
  kiln_future_release(never);
  kiln_pool_destroy(p);
}

/* ---- kill --------------------------------------------------------------------------------- */

struct victim {
  kiln_future *never;
  atomic_int started, kill_sent, ran;
  int got;
};

static int await_forever(void *arg, void **result) {
  (void)result;
  struct victim *v = arg;
  atomic_store(&v->ran, 1);
  atomic_store(&v->started, 1);
  v->got = kiln_await(v->never, -1, NULL);
  return v->got;
}

static int busy_then_sleep(void *arg, void **result) {
  (void)result;
  struct victim *v = arg;
  atomic_store(&v->started, 1);
  spin_until(&v->kill_sent); /* running, not waiting, when the kill comes */
  v->got = kiln_sleep(30);
  return 0; /* handled: ends normally */
}

/* GEV-06, GEV-07, GEV-09 (docs/CONFORMANCE.md) */
TEST(kill_suspended_running_unstarted) {
  kiln_pool *p = pool(1);
  /* suspended in kiln_await */
  struct victim a = {.never = promise()};
  kiln_future *fa = spawn(p, await_forever, &a);
  spin_until(&a.started);
  KT_CODE(kiln_fiber_kill(fa, true, 10), 0);
  KT_CODE(a.got, KILN_ECANCELLED);
  KT_TRUE(kiln_future_cancelled(fa));
  KT_CODE(kiln_future_result(fa, 0, NULL), KILN_ECANCELLED);
  /* running: its next sleep returns at once */
  struct victim b = {0};
  kiln_future *fb = spawn(p, busy_then_sleep, &b);
  spin_until(&b.started);
  double t0 = kt_now();
  KT_CODE(kiln_fiber_kill(fb, false, 0), 0);
  atomic_store(&b.kill_sent, 1);
  KT_CODE(kiln_future_result(fb, 10, NULL), 0);
  KT_TRUE(kt_now() - t0 < 10);
  KT_CODE(b.got, KILN_ECANCELLED);
  KT_FALSE(kiln_future_cancelled(fb)); /* it handled the kill and returned 0 */
  /* unstarted: the one worker is busy, the fiber never runs */
  atomic_int release = 0;
  struct blocker bl = {.release = &release};
  kiln_future *busy = NULL;
  KT_EQ(kiln_submit(p, block_worker, &bl, &busy), 0);
  spin_until(&bl.started);
  struct victim c = {.never = promise()};
  kiln_future *fc = spawn(p, await_forever, &c);
  KT_CODE(kiln_fiber_kill(fc, true, 0.05), 0);
  KT_TRUE(kiln_future_cancelled(fc));
  atomic_store(&release, 1);
  KT_CODE(kiln_future_result(busy, -1, NULL), 0);
  kiln_pool_destroy(p); /* runs whatever is queued: the cancelled fiber must not run */
  KT_EQ(atomic_load(&c.ran), 0);
  kiln_future_release(fa), kiln_future_release(fb), kiln_future_release(fc);
  kiln_future_release(busy);
  kiln_future_release(a.never), kiln_future_release(c.never);
}

static int ignores_kill(void *arg, void **result) {
  (void)result;
  struct victim *v = arg;
  atomic_store(&v->started, 1);
  v->got = kiln_await(v->never, -1, NULL);
  return kiln_future_result(v->never, -1, NULL); /* not interrupted by kills */
}

/* GEV-07, GEV-08 (docs/CONFORMANCE.md) */
TEST(kill_wait_times_out) {
  kiln_pool *p = pool(2);
  struct victim v = {.never = promise()};
  kiln_future *f = spawn(p, ignores_kill, &v);
  spin_until(&v.started);
  double t0 = kt_now();
  KT_CODE(kiln_fiber_kill(f, true, 0.05), KILN_ETIMEDOUT);
  KT_TIMED(kt_now() - t0, 0.05);
  KT_CODE(kiln_fiber_kill(f, false, 0), 0); /* a second kill: no effect on the result wait */
  KT_EQ(kiln_promise_resolve(v.never, NULL), 0);
  KT_CODE(kiln_future_result(f, -1, NULL), 0);
  KT_CODE(v.got, KILN_ECANCELLED);
  KT_FALSE(kiln_future_cancelled(f));
  kiln_future_release(f);
  kiln_future_release(v.never);
  kiln_pool_destroy(p);
}

/* ---- joinall and as_completed ------------------------------------------------------------- */

static int await_arg(void *arg, void **result) { return kiln_await(arg, -1, result); }

enum { JOIN_N = 10 };

struct joinall {
  kiln_future *gate;
  kiln_pool *p;
};

static int joinall_inside(void *arg, void **result) {
  (void)result;
  struct joinall *j = arg;
  kiln_future *fs[JOIN_N];
  for (int i = 0; i < JOIN_N; i++)
    fs[i] = spawn(j->p, i % 2 ? await_arg : add_one, i % 2 ? (void *)j->gate : (void *)0);
  size_t nd = 0;
  KT_CODE(kiln_wait(fs, JOIN_N, KILN_ALL_COMPLETED, 0.05, &nd), KILN_ETIMEDOUT);
  KT_EQ(nd, JOIN_N / 2);
  /* as_completed inside a fiber: the quick ones come first, then (after the gate) the rest */
  kiln_completion *c = NULL;
  KT_EQ(kiln_as_completed(fs, JOIN_N, 30, &c), 0);
  for (int i = 0; i < JOIN_N / 2; i++) {
    kiln_future *d = NULL;
    KT_CODE(kiln_completion_next(c, &d), 0);
    KT_CODE(kiln_future_result(d, 0, NULL), 0);
    kiln_future_release(d);
  }
  KT_EQ(kiln_promise_resolve(j->gate, (void *)9), 0);
  int n = 0;
  kiln_future *d = NULL;
  while (kiln_completion_next(c, &d) == 0) {
    void *v = NULL;
    KT_CODE(kiln_future_result(d, 0, &v), 0);
    KT_EQ((intptr_t)v, 9);
    kiln_future_release(d);
    n++;
  }
  KT_EQ(n, JOIN_N / 2);
  kiln_completion_destroy(c);
  KT_CODE(kiln_wait(fs, JOIN_N, KILN_ALL_COMPLETED, 5, &nd), 0);
  KT_EQ(nd, JOIN_N);
  for (int i = 0; i < JOIN_N; i++) kiln_future_release(fs[i]);
  return 0;
}

/* GEV-02 (docs/CONFORMANCE.md) */
TEST(joinall_and_as_completed) {
  kiln_pool *p = pool(2);
  /* from a thread outside the pool */
  kiln_future *gate = promise();
  kiln_future *fs[JOIN_N];
  for (int i = 0; i < JOIN_N; i++)
    fs[i] = spawn(p, i % 2 ? await_arg : add_one, i % 2 ? (void *)gate : (void *)0);
  size_t nd = 0;
  KT_CODE(kiln_wait(fs, JOIN_N, KILN_ALL_COMPLETED, 0.05, &nd), KILN_ETIMEDOUT);
  KT_EQ(nd, JOIN_N / 2);
  KT_EQ(kiln_promise_resolve(gate, (void *)3), 0);
  kiln_completion *c = NULL;
  KT_EQ(kiln_as_completed(fs, JOIN_N, 30, &c), 0);
  int n = 0;
  kiln_future *d = NULL;
  while (kiln_completion_next(c, &d) == 0) {
    KT_CODE(kiln_future_result(d, 0, NULL), 0);
    kiln_future_release(d);
    n++;
  }
  KT_EQ(n, JOIN_N);
  kiln_completion_destroy(c);
  for (int i = 0; i < JOIN_N; i++) kiln_future_release(fs[i]);
  kiln_future_release(gate);
  /* and from inside a fiber, where the waits suspend */
  struct joinall j = {.gate = promise(), .p = p};
  kiln_future *f = spawn(p, joinall_inside, &j);
  KT_CODE(kiln_future_result(f, -1, NULL), 0);
  kiln_future_release(f);
  kiln_future_release(j.gate);
  kiln_pool_destroy(p);
}

/* ---- chains ------------------------------------------------------------------------------- */

enum { CHAIN = 1000 };

static int chain_link(void *arg, void **result) {
  intptr_t depth = (intptr_t)arg;
  if (depth == CHAIN) {
    *result = (void *)1;
    return 0;
  }
  kiln_future *child = NULL;
  KT_CODE(
      kiln_fiber_spawn(kiln_pool_current(), chain_link, (void *)(depth + 1), SMALL_STACK, &child),
      0);
  void *v = NULL;
  int rc = kiln_await(child, -1, &v);
  kiln_future_release(child);
  *result = (void *)((intptr_t)v + 1);
  return rc;
}

TEST(chain_of_1000_fibers) {
  kiln_pool *p = pool(2);
  kiln_future *f = spawn(p, chain_link, (void *)1);
  void *v = NULL;
  KT_CODE(kiln_future_result(f, -1, &v), 0);
  KT_EQ((intptr_t)v, CHAIN);
  kiln_future_release(f);
  /* and a chain built from outside: fiber i awaits fiber i-1 */
  static kiln_future *fs[CHAIN];
  kiln_future *first = promise();
  for (int i = 0; i < CHAIN; i++) fs[i] = spawn(p, await_arg, i ? fs[i - 1] : first);
  KT_EQ(kiln_promise_resolve(first, (void *)77), 0);
  KT_CODE(kiln_future_result(fs[CHAIN - 1], -1, &v), 0);
  KT_EQ((intptr_t)v, 77);
  for (int i = 0; i < CHAIN; i++) kiln_future_release(fs[i]);
  kiln_future_release(first);
  kiln_pool_destroy(p);
}

/* ---- memory: stacks reused over 10^5 spawns ----------------------------------------------- */

static long rss_kib(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0, rss = 0;
  if (f) {
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
    fclose(f);
  }
  return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static int touch_stack(void *arg, void **result) {
  volatile char buf[16 * 1024];
  for (size_t i = 0; i < sizeof buf; i += 512) buf[i] = (char)i;
  KT_CODE(kiln_await(arg, -1, result), 0);
  KT_CODE(kiln_yield(), 0);
  return buf[512] == 0 ? 0 : 0;
}

TEST(stacks_reused_over_100k_spawns) {
  kiln_pool *p = pool(2);
  kiln_future *done = promise();
  KT_EQ(kiln_promise_resolve(done, (void *)1), 0);
  enum { BATCH = 1000 };
  kiln_future *fs[BATCH];
  long before = 0, peak = 0;
  for (int round = 0; round < 100; round++) {
    for (int i = 0; i < BATCH; i++) fs[i] = spawn(p, touch_stack, done);
    size_t nd = 0;
    KT_CODE(kiln_wait(fs, BATCH, KILN_ALL_COMPLETED, 60, &nd), 0);
    for (int i = 0; i < BATCH; i++) {
      KT_CODE(kiln_future_result(fs[i], 0, NULL), 0);
      kiln_future_release(fs[i]);
    }
    long now = rss_kib();
    if (round == 4) before = now; /* warm: pools filled */
    if (round > 4 && now > peak) peak = now;
  }
  fprintf(stderr, "rss after 5000 spawns %ld KiB, peak over the next 95000 %ld KiB\n", before,
          peak);
  if (!SANITIZED) KT_TRUE(peak < before + 16 * 1024);
  kiln_future_release(done);
  kiln_pool_destroy(p);
}

/* ---- shutdown with suspended fibers ------------------------------------------------------- */

static void *resolve(void *gate) {
  kiln_promise_resolve(gate, (void *)4);
  return NULL;
}

TEST(shutdown_waits_for_suspended_fibers) {
  kiln_pool *p = pool(1);
  kiln_future *gate = promise();
  kiln_future *fs[4];
  for (int i = 0; i < 4; i++) fs[i] = spawn(p, await_arg, gate);
  for (int i = 0; i < 4; i++)
    while (!kiln_future_running(fs[i])) sched_yield();
  /* an unstarted fiber behind a busy worker: cancel_pending cancels it */
  atomic_int release = 0;
  struct blocker bl = {.release = &release};
  kiln_future *busy = NULL;
  KT_EQ(kiln_submit(p, block_worker, &bl, &busy), 0);
  spin_until(&bl.started);
  struct victim c = {.never = gate};
  kiln_future *unstarted = spawn(p, await_forever, &c);
  KT_CODE(kiln_pool_shutdown(p, false, true), 0);
  KT_TRUE(kiln_future_cancelled(unstarted));
  atomic_store(&release, 1);
  pthread_t th; /* resolves while (or before) shutdown waits: it must wait either way */
  KT_EQ(pthread_create(&th, NULL, resolve, gate), 0);
  KT_CODE(kiln_pool_shutdown(p, true, false), 0);
  for (int i = 0; i < 4; i++) {
    KT_TRUE(kiln_future_done(fs[i]));
    void *v = NULL;
    KT_CODE(kiln_future_result(fs[i], 0, &v), 0);
    KT_EQ((intptr_t)v, 4);
    kiln_future_release(fs[i]);
  }
  pthread_join(th, NULL);
  KT_EQ(atomic_load(&c.ran), 0);
  kiln_future_release(unstarted);
  kiln_future_release(busy);
  kiln_future_release(gate);
  kiln_pool_destroy(p);
}

/* ---- greenlets inside a pool fiber -------------------------------------------------------- */

static int echo_twice(void *arg, void *value, void **result) {
  (void)arg;
  kiln_fiber *parent = kiln_fiber_parent(kiln_fiber_current());
  void *v = NULL;
  KT_EQ(kiln_fiber_switch(parent, (void *)((intptr_t)value * 2), &v), 0);
  *result = (void *)((intptr_t)v * 2);
  return 0;
}

static int hosts_greenlet(void *arg, void **result) {
  kiln_fiber *self = kiln_fiber_current();
  KT_FALSE(kiln_fiber_is_main(self));
  KT_PTR_EQ(kiln_fiber_parent(self), NULL);
  kiln_fiber *g = NULL;
  KT_EQ(kiln_fiber_create(echo_twice, NULL, 0, NULL, &g), 0);
  KT_PTR_EQ(kiln_fiber_parent(g), self);
  void *v = NULL;
  KT_EQ(kiln_fiber_switch(g, (void *)3, &v), 0);
  KT_EQ((intptr_t)v, 6);
  KT_EQ(kiln_fiber_switch(g, (void *)5, &v), 0);
  KT_EQ((intptr_t)v, 10);
  KT_TRUE(kiln_fiber_dead(g));
  KT_PTR_EQ(kiln_fiber_current(), self);
  kiln_fiber_destroy(g);
  /* no greenlet left: the await suspends, and may resume on another worker */
  KT_CODE(kiln_await(arg, -1, result), 0);
  KT_TRUE(kiln_fiber_current() != NULL);
  return 0;
}

TEST(greenlets_inside_a_pool_fiber) {
  kiln_pool *p = pool(2);
  kiln_future *gate = promise();
  kiln_future *f = spawn(p, hosts_greenlet, gate);
  KT_EQ(kiln_promise_resolve(gate, (void *)8), 0);
  void *v = NULL;
  KT_CODE(kiln_future_result(f, -1, &v), 0);
  KT_EQ((intptr_t)v, 8);
  kiln_future_release(f);
  kiln_future_release(gate);
  kiln_pool_destroy(p);
}

struct pinned {
  kiln_future *gate;
  kiln_fiber *host; /* the pool fiber's record */
  kiln_fiber *seen; /* kiln_fiber_current() in the task that opens the gate */
};

static int open_gate(void *arg, void **result) {
  (void)result;
  struct pinned *pn = arg;
  pn->seen = kiln_fiber_current();
  return kiln_promise_resolve(pn->gate, (void *)6);
}

static int pinned_by_greenlet(void *arg, void **result) {
  struct pinned *pn = arg;
  pn->host = kiln_fiber_current();
  kiln_fiber *g = NULL;
  KT_EQ(kiln_fiber_create(echo_twice, NULL, 0, NULL, &g), 0); /* alive: the fiber is pinned */
  kiln_future *t = NULL;
  KT_EQ(kiln_submit(kiln_pool_current(), open_gate, pn, &t), 0);
  /* pinned: the await runs the queued task on this fiber's stack instead of suspending */
  KT_CODE(kiln_await(pn->gate, -1, result), 0);
  KT_PTR_EQ(pn->seen, pn->host);
  KT_CODE(kiln_future_result(t, -1, NULL), 0);
  kiln_future_release(t);
  kiln_fiber_destroy(g);
  return 0;
}

TEST(greenlets_pin_their_pool_fiber) {
  kiln_pool *p = pool(1);
  struct pinned pn = {.gate = promise()};
  kiln_future *f = spawn(p, pinned_by_greenlet, &pn);
  void *v = NULL;
  KT_CODE(kiln_future_result(f, -1, &v), 0);
  KT_EQ((intptr_t)v, 6);
  kiln_future_release(f);
  kiln_future_release(pn.gate);
  kiln_pool_destroy(p);
}

/* A pool fiber that waits was left by the pool's own switch: a greenlet switch to its record,
 * from another fiber on the same worker, is refused instead of resuming it the wrong way. */
typedef struct stolen {
  kiln_future *gate;
  _Atomic(kiln_fiber *) waiter;
  int switch_rc;
} stolen;

static int wait_on_gate(void *arg, void **result) {
  (void)result;
  stolen *s = arg;
  atomic_store(&s->waiter, kiln_fiber_current());
  return kiln_await(s->gate, 20.0, NULL);
}

static int switch_to_waiter(void *arg, void **result) {
  (void)result;
  stolen *s = arg;
  kiln_fiber *w = atomic_load(&s->waiter);
  KT_TRUE(w != NULL); /* one worker: the waiter ran first and is suspended */
  KT_TRUE(kiln_fiber_started(w) && !kiln_fiber_dead(w));
  s->switch_rc = kiln_fiber_switch(w, NULL, NULL);
  s->switch_rc = s->switch_rc ? s->switch_rc : kiln_fiber_throw(w, KILN_ECANCELLED, NULL);
  kiln_promise_resolve(s->gate, NULL);
  return 0;
}

TEST(switch_to_a_waiting_pool_fiber_is_refused) {
  kiln_pool *p = pool(1);
  stolen s = {promise(), NULL, 0};
  kiln_future *a = spawn(p, wait_on_gate, &s);
  kiln_future *b = spawn(p, switch_to_waiter, &s);
  KT_CODE(kiln_future_result(a, 30.0, NULL), 0);
  KT_CODE(kiln_future_result(b, 30.0, NULL), 0);
  KT_CODE(s.switch_rc, KILN_ESTATE);
  kiln_future_release(a);
  kiln_future_release(b);
  kiln_future_release(s.gate);
  kiln_pool_destroy(p);
}

/* ---- a child of fork --------------------------------------------------------------------------- */

static int naps(void *arg, void **result) {
  (void)arg;
  (void)result;
  return kiln_sleep(0.001);
}

/* The parent's timer thread is not copied by fork: a child's sleeping fiber must still wake. */
TEST(sleep_in_a_child_of_fork) {
  if (TSAN) KT_SKIP("TSan does not start threads in a child of a multi-threaded fork");
  kiln_pool *p = pool(1);
  kiln_future *f = spawn(p, naps, NULL); /* starts the timer thread */
  KT_CODE(kiln_future_result(f, 30.0, NULL), 0);
  kiln_future_release(f);
  kiln_pool_destroy(p);
  fflush(NULL);
  pid_t pid = fork();
  KT_TRUE(pid >= 0);
  if (pid == 0) {
    kiln_pool_config cfg;
    kiln_pool_config_default(&cfg);
    cfg.threads = 1;
    kiln_pool *cp = NULL;
    kiln_future *cf = NULL;
    if (kiln_pool_create(&cfg, &cp) != 0) _exit(3);
    if (kiln_fiber_spawn(cp, naps, NULL, SMALL_STACK, &cf) != 0) _exit(4);
    int rc = kiln_future_result(cf, 10.0, NULL);
    _exit(rc == KILN_ETIMEDOUT ? 5 : rc == 0 ? 0 : 6);
  }
  int status = 0;
  KT_EQ(waitpid(pid, &status, 0), pid);
  KT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 5) KT_FAIL("the child's sleeping fiber never woke");
  KT_EQ(WEXITSTATUS(status), 0);
}
