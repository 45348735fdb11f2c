/* test_stress.c: the Chase-Lev deque under thieves, and random DAGs of dependent tasks.
 * KILN_STRESS_SCALE (a number, default 1) scales the work down or up. */
// kt: timeout 600
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sched.h>

#include "internal.h" /* the deque; kiln__pool_sleepers */
#include "sched_test_util.h"

static double stress_scale(void) {
  const char *s = getenv("KILN_STRESS_SCALE");
  if (!s || !*s) return 1.0;
  double v = atof(s);
  return v > 0 ? v : 1.0;
}

static uint64_t xorshift64(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

struct dq {
  kiln__deque d;
  int *vals;
  _Atomic unsigned char *taken;
  size_t n;
  _Atomic int owner_done;
  _Atomic long stolen, bad;
};

static void take(struct dq *q, void *item) {
  int *v = item;
  if (v < q->vals || v >= q->vals + q->n) {
    atomic_fetch_add(&q->bad, 1);
    return;
  }
  atomic_fetch_add_explicit(&q->taken[*v], 1, memory_order_relaxed);
}

static void *thief_main(void *arg) {
  struct dq *q = arg;
  for (;;) {
    int done = atomic_load(&q->owner_done);
    void *x = kiln__deque_steal(&q->d);
    if (x == KILN__DEQUE_ABORT) continue;
    if (x == KILN__DEQUE_EMPTY) {
      if (done) break;
      continue;
    }
    take(q, x);
    atomic_fetch_add_explicit(&q->stolen, 1, memory_order_relaxed);
  }
  return NULL;
}

/* One owner pushes and pops, three thieves steal: every item is taken exactly once. */
TEST(deque_torture) {
  enum { THIEVES = 3 };
  struct dq *q = calloc(1, sizeof *q);
  KT_TRUE(q != NULL);
  q->n = (size_t)(2000000 * stress_scale());
  if (q->n < 1000) q->n = 1000;
  q->vals = malloc(sizeof *q->vals * q->n);
  q->taken = calloc(q->n, sizeof *q->taken);
  KT_TRUE(q->vals && q->taken);
  for (size_t i = 0; i < q->n; i++) q->vals[i] = (int)i;
  KT_CODE(kiln__deque_init(&q->d, 8), KILN_OK);
  KT_TRUE(kiln__deque_pop(&q->d) == KILN__DEQUE_EMPTY);
  KT_TRUE(kiln__deque_steal(&q->d) == KILN__DEQUE_EMPTY);
  pthread_t t[THIEVES];
  for (int i = 0; i < THIEVES; i++) pthread_create(&t[i], NULL, thief_main, q);
  uint64_t rng = 0x9E3779B97F4A7C15ULL;
  size_t next = 0;
  long popped = 0;
  while (next < q->n) {
    size_t burst = 1 + (size_t)(xorshift64(&rng) % 64);
    for (size_t k = 0; k < burst && next < q->n; k++)
      KT_CODE(kiln__deque_push(&q->d, &q->vals[next++]), KILN_OK);
    size_t pops = (size_t)(xorshift64(&rng) % 48);
    for (size_t k = 0; k < pops; k++) {
      void *x = kiln__deque_pop(&q->d);
      if (x == KILN__DEQUE_EMPTY) break;
      KT_TRUE(x != KILN__DEQUE_ABORT);
      take(q, x);
      popped++;
    }
  }
  for (;;) {
    void *x = kiln__deque_pop(&q->d);
    if (x == KILN__DEQUE_EMPTY) break;
    KT_TRUE(x != KILN__DEQUE_ABORT);
    take(q, x);
    popped++;
  }
  atomic_store(&q->owner_done, 1);
  for (int i = 0; i < THIEVES; i++) pthread_join(t[i], NULL);
  KT_EQ(atomic_load(&q->bad), 0);
  KT_EQ(popped + atomic_load(&q->stolen), (long)q->n);
  for (size_t i = 0; i < q->n; i++)
    if (atomic_load_explicit(&q->taken[i], memory_order_relaxed) != 1)
      KT_FAIL("item %zu taken %d times", i, (int)q->taken[i]);
  kiln__deque_fini(&q->d);
  free(q->vals);
  free(q->taken);
  free(q);
}

/* ---- random DAGs ---- */

enum { MAXDEPS = 4 };
struct node {
  _Atomic int ran; /* times fn ran */
  _Atomic int ok;  /* set when fn finished successfully */
  int fail;        /* fn returns KILN_EIO */
  int ndeps;
  struct node *deps[MAXDEPS];
  int dep_idx[MAXDEPS];
  _Atomic long *violations;
};

static int dag_task(void *arg, void **result) {
  struct node *n = arg;
  if (atomic_fetch_add(&n->ran, 1) != 0) atomic_fetch_add(n->violations, 1);
  for (int k = 0; k < n->ndeps; k++)
    if (!atomic_load_explicit(&n->deps[k]->ok, memory_order_acquire))
      atomic_fetch_add(n->violations, 1);
  if (n->fail) return KILN_EIO;
  atomic_store_explicit(&n->ok, 1, memory_order_release);
  *result = n;
  return 0;
}

/* Rounds of random DAGs with cancellations, failures and short timed waits: each task runs at
 * most once, only after all its deps succeeded; failed or cancelled deps give KILN_EDEPENDENCY;
 * every future ends done. */
TEST(dag_random) {
  double scale = stress_scale();
  long total = (long)(1000000 * scale);
  int round = 20000;
  if (total < round) round = total < 100 ? 100 : (int)total;
  int rounds = (int)((total + round - 1) / round);
  kiln_pool *p = tu_pool(4);
  struct node *nodes = malloc(sizeof *nodes * (size_t)round);
  kiln_future **fs = malloc(sizeof *fs * (size_t)round);
  int *cancelled = malloc(sizeof *cancelled * (size_t)round);
  int *status = malloc(sizeof *status * (size_t)round);
  KT_TRUE(nodes && fs && cancelled && status);
  _Atomic long violations = 0;
  uint64_t rng = 0x2545F4914F6CDD1DULL;
  long ran_total = 0, cancelled_total = 0, dep_failed = 0;

  for (int r = 0; r < rounds; r++) {
    for (int i = 0; i < round; i++) {
      struct node *n = &nodes[i];
      atomic_init(&n->ran, 0);
      atomic_init(&n->ok, 0);
      n->violations = &violations;
      n->fail = (xorshift64(&rng) % 200) == 0;
      n->ndeps = i == 0 ? 0 : (int)(xorshift64(&rng) % (MAXDEPS + 1));
      kiln_future *deps[MAXDEPS];
      for (int k = 0; k < n->ndeps; k++) {
        int span = i < 64 ? i : 64;
        int d = (xorshift64(&rng) % 8) == 0 ? (int)(xorshift64(&rng) % (uint64_t)i)
                                            : i - 1 - (int)(xorshift64(&rng) % (uint64_t)span);
        n->dep_idx[k] = d;
        n->deps[k] = &nodes[d];
        deps[k] = fs[d];
      }
      cancelled[i] = 0;
      KT_CODE(kiln_submit_after(p, deps, (size_t)n->ndeps, dag_task, n, &fs[i]), KILN_OK);
      uint64_t dice = xorshift64(&rng) % 1000;
      if (dice < 5) {
        int c = (int)(xorshift64(&rng) % (uint64_t)(i + 1));
        if (kiln_future_cancel(fs[c])) cancelled[c] = 1;
      } else if (dice < 8) {
        int c = (int)(xorshift64(&rng) % (uint64_t)(i + 1));
        void *v = NULL;
        int rc = kiln_future_result(fs[c], (dice & 1) ? 0.0 : 0.0005, &v);
        if (rc == 0 && (v != &nodes[c] || !atomic_load(&nodes[c].ok)))
          atomic_fetch_add(&violations, 1);
        if (rc != 0 && rc != KILN_ETIMEDOUT && rc != KILN_ECANCELLED && rc != KILN_EIO &&
            rc != KILN_EDEPENDENCY)
          KT_FAIL("unexpected code %s from a timed result", kiln_err_name(rc));
      }
    }
    for (int i = 0; i < round; i++) {
      int rc = kiln_future_result(fs[i], -1, NULL);
      KT_TRUE(kiln_future_done(fs[i]));
      int want;
      if (cancelled[i]) {
        want = KILN_ECANCELLED;
      } else {
        int deps_ok = 1;
        for (int k = 0; k < nodes[i].ndeps; k++)
          if (status[nodes[i].dep_idx[k]] != 0) deps_ok = 0;
        want = !deps_ok ? KILN_EDEPENDENCY : nodes[i].fail ? KILN_EIO : 0;
      }
      status[i] = rc;
      if (rc != want)
        KT_FAIL("round %d task %d: %s, expected %s", r, i, kiln_err_name(rc), kiln_err_name(want));
      int ran = atomic_load(&nodes[i].ran);
      KT_EQ(ran, (want == 0 || want == KILN_EIO) ? 1 : 0);
      ran_total += ran;
      cancelled_total += cancelled[i];
      dep_failed += want == KILN_EDEPENDENCY;
      KT_EQ(kiln_future_cancelled(fs[i]), cancelled[i]);
    }
    KT_EQ(atomic_load(&violations), 0);
    tu_release_all(fs, (size_t)round);
  }
  KT_TRUE(ran_total > 0);
  KT_TRUE(cancelled_total > 0);
  KT_TRUE(dep_failed > 0);
  kiln_pool_destroy(p);
  free(nodes);
  free(fs);
  free(cancelled);
  free(status);
}

/* ---- a spawn wakes a sleeping worker ---- */

struct wake_round {
  tu_latch child_ran;
  _Atomic int timeouts;
};

static int wake_child(void *arg, void **result) {
  (void)result;
  tu_latch_add(&((struct wake_round *)arg)->child_ran, 1);
  return 0;
}

/* Spawns a child onto its own deque, then blocks in a primitive the pool knows nothing of until
 * the child has run: only the other worker, which may be asleep, can run it, so the spawn must
 * wake it. A missed wake-up shows as a timed-out wait instead of a hang. */
static int wake_parent(void *arg, void **result) {
  (void)result;
  struct wake_round *w = arg;
  long before = tu_latch_get(&w->child_ran);
  kiln_future *c = NULL;
  int rc = kiln_submit(kiln_pool_current(), wake_child, w, &c);
  if (rc != 0) return rc;
  if (!tu_latch_wait(&w->child_ran, before + 1, 30.0)) atomic_fetch_add(&w->timeouts, 1);
  kiln_future_release(c);
  return 0;
}

/* Each round starts once the previous one's result is in, so its spawn meets the other worker
 * at every stage of going idle: still spinning, inside the sleep protocol, or asleep. Every
 * fourth round first waits (for at most 5 s) until both workers are inside the sleep protocol,
 * so that the spawn must wake one: coverage, not a synchronisation (what is checked is the
 * latch; a round that never sees both asleep runs anyway). */
TEST(spawn_wakes_sleeping_worker) {
  int rounds = (int)(2000 * stress_scale());
  if (rounds < 10) rounds = 10;
  kiln_pool *p = tu_pool(2);
  struct wake_round w;
  tu_latch_init(&w.child_ran);
  atomic_init(&w.timeouts, 0);
  for (int r = 0; r < rounds; r++) {
    if (r % 4 == 3) {
      double until = kt_now() + 5.0;
      while (kiln__pool_sleepers(p) < 2 && kt_now() < until) sched_yield();
    }
    kiln_future *f = NULL;
    KT_CODE(kiln_submit(p, wake_parent, &w, &f), KILN_OK);
    KT_CODE(kiln_future_result(f, -1, NULL), KILN_OK);
    kiln_future_release(f);
    if (atomic_load(&w.timeouts) != 0)
      KT_FAIL("a spawn did not wake the idle worker (round %d)", r);
  }
  KT_EQ(tu_latch_get(&w.child_ran), rounds);
  kiln_pool_destroy(p);
  tu_latch_fini(&w.child_ran);
}
