/* test_queue_stress.c: kiln_queue with many producers and consumers at once.
 *
 * Every test puts the integers 0..N-1 (producer p puts those with i % NPROD == p, in increasing
 * order) and checks with a per-item counter that each comes out exactly once. Consumers call
 * task_done per item, the main thread joins the queue once the producers are done, then shuts it
 * down (normal mode), which is how the consumers learn to stop. FIFO also checks that each
 * consumer sees each producer's items in increasing order. */
// kt: timeout 120
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "queue_test_util.h"

enum { NPROD = 4, NCONS = 4 };

typedef struct mpmc {
  kiln_queue *q;
  size_t nitems;
  bool fifo;
  _Atomic unsigned char *seen; /* how often each item came out */
  _Atomic bool producers_done; /* stops the maxsize toggler */
} mpmc;

typedef struct worker {
  mpmc *m;
  int id;
  pthread_t th;
} worker;

static void *producer(void *a) {
  worker *w = a;
  for (size_t i = (size_t)w->id; i < w->m->nitems; i += NPROD)
    KT_CODE(kiln_queue_put(w->m->q, QTU_ITEM(i), -1), KILN_OK);
  return NULL;
}

static void *consumer(void *a) {
  worker *w = a;
  mpmc *m = w->m;
  long long last[NPROD];
  for (int p = 0; p < NPROD; p++) last[p] = -1;
  void *it;
  int rc;
  while ((rc = kiln_queue_get(m->q, &it, -1)) == 0) {
    size_t i = QTU_VAL(it);
    KT_TRUE(i < m->nitems);
    atomic_fetch_add_explicit(&m->seen[i], 1, memory_order_relaxed);
    if (m->fifo) {
      KT_TRUE((long long)i > last[i % NPROD]);
      last[i % NPROD] = (long long)i;
    }
    KT_CODE(kiln_queue_task_done(m->q), KILN_OK);
  }
  KT_CODE(rc, KILN_ESHUTDOWN);
  return NULL;
}

/* Changes maxsize over and over (never to a size that stops progress) until the producers end. */
static void *toggler(void *a) {
  mpmc *m = a;
  static const size_t sizes[] = {1, 2, 3, 8, 0, 5, 1, 64};
  for (size_t n = 0; !atomic_load_explicit(&m->producers_done, memory_order_relaxed); n++) {
    kiln_queue_set_maxsize(m->q, sizes[n % (sizeof sizes / sizeof sizes[0])]);
    sched_yield();
  }
  return NULL;
}

static void run_mpmc(kiln_queue_kind kind, size_t maxsize, size_t nitems, bool toggle) {
  mpmc m = {.q = qtu_queue(kind, maxsize), .nitems = nitems, .fifo = kind == KILN_QUEUE_FIFO};
  m.seen = calloc(nitems, sizeof *m.seen);
  KT_TRUE(m.seen != NULL);
  worker prod[NPROD], cons[NCONS];
  pthread_t tog;
  for (int i = 0; i < NCONS; i++) {
    cons[i] = (worker){.m = &m, .id = i};
    KT_EQ(pthread_create(&cons[i].th, NULL, consumer, &cons[i]), 0);
  }
  for (int i = 0; i < NPROD; i++) {
    prod[i] = (worker){.m = &m, .id = i};
    KT_EQ(pthread_create(&prod[i].th, NULL, producer, &prod[i]), 0);
  }
  if (toggle) KT_EQ(pthread_create(&tog, NULL, toggler, &m), 0);
  for (int i = 0; i < NPROD; i++) KT_EQ(pthread_join(prod[i].th, NULL), 0);
  atomic_store_explicit(&m.producers_done, true, memory_order_relaxed);
  if (toggle) {
    KT_EQ(pthread_join(tog, NULL), 0);
    kiln_queue_set_maxsize(m.q, maxsize);
  }
  KT_CODE(kiln_queue_join(m.q, -1), KILN_OK);
  KT_EQ(kiln_queue_qsize(m.q), 0);
  kiln_queue_shutdown(m.q, false);
  for (int i = 0; i < NCONS; i++) KT_EQ(pthread_join(cons[i].th, NULL), 0);
  for (size_t i = 0; i < nitems; i++)
    if (atomic_load_explicit(&m.seen[i], memory_order_relaxed) != 1)
      KT_FAIL("item %zu came out %d times", i, (int)atomic_load(&m.seen[i]));
  KT_CODE(kiln_queue_task_done(m.q), KILN_EINVAL);
  free((void *)m.seen);
  kiln_queue_destroy(m.q);
}

/* 4 producers x 4 consumers, 100k items, unbounded, each kind. */
TEST(mpmc_fifo) { run_mpmc(KILN_QUEUE_FIFO, 0, 100000, false); }
TEST(mpmc_lifo) { run_mpmc(KILN_QUEUE_LIFO, 0, 100000, false); }
TEST(mpmc_priority) { run_mpmc(KILN_QUEUE_PRIORITY, 0, 100000, false); }

/* Bounded at 4: putters and getters both block a lot. */
TEST(mpmc_bounded_fifo) { run_mpmc(KILN_QUEUE_FIFO, 4, 50000, false); }
TEST(mpmc_bounded_lifo) { run_mpmc(KILN_QUEUE_LIFO, 2, 30000, false); }
TEST(mpmc_bounded_priority) { run_mpmc(KILN_QUEUE_PRIORITY, 3, 30000, false); }
/* maxsize 1: every put waits for a get. */
TEST(mpmc_maxsize_1) { run_mpmc(KILN_QUEUE_FIFO, 1, 20000, false); }

/* maxsize changed all the time while 8 threads use the queue. */
TEST(mpmc_set_maxsize) { run_mpmc(KILN_QUEUE_FIFO, 2, 50000, true); }

/* Timed puts and gets under contention: a timeout never loses or duplicates an item. Producers
 * retry on EFULL, consumers on EEMPTY, with short timeouts on a tiny queue. */
typedef struct timed_ctx {
  kiln_queue *q;
  size_t nitems;
  _Atomic unsigned char *seen;
  _Atomic size_t taken;
  _Atomic long timeouts;
} timed_ctx;

typedef struct timed_worker {
  timed_ctx *c;
  int id;
  pthread_t th;
} timed_worker;

static void *timed_producer(void *a) {
  timed_worker *w = a;
  for (size_t i = (size_t)w->id; i < w->c->nitems; i += NPROD) {
    int rc;
    while ((rc = kiln_queue_put(w->c->q, QTU_ITEM(i), i % 2 ? 0.0005 : 0)) == KILN_EFULL) {
      atomic_fetch_add_explicit(&w->c->timeouts, 1, memory_order_relaxed);
      sched_yield(); /* a try that failed: let a consumer run */
    }
    KT_CODE(rc, KILN_OK);
  }
  return NULL;
}

static void *timed_consumer(void *a) {
  timed_worker *w = a;
  timed_ctx *c = w->c;
  while (atomic_load_explicit(&c->taken, memory_order_relaxed) < c->nitems) {
    void *it;
    int rc = kiln_queue_get(c->q, &it, w->id % 2 ? 0.0005 : 0);
    if (rc == KILN_EEMPTY) {
      atomic_fetch_add_explicit(&c->timeouts, 1, memory_order_relaxed);
      sched_yield();
      continue;
    }
    KT_CODE(rc, KILN_OK);
    atomic_fetch_add_explicit(&c->seen[QTU_VAL(it)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->taken, 1, memory_order_relaxed);
  }
  return NULL;
}

TEST(mpmc_timed) {
  enum { N = 20000 };
  timed_ctx c = {.q = qtu_queue(KILN_QUEUE_FIFO, 2), .nitems = N};
  c.seen = calloc(N, sizeof *c.seen);
  KT_TRUE(c.seen != NULL);
  timed_worker prod[NPROD], cons[NCONS];
  for (int i = 0; i < NPROD; i++) {
    prod[i] = (timed_worker){.c = &c, .id = i};
    cons[i] = (timed_worker){.c = &c, .id = i};
    KT_EQ(pthread_create(&prod[i].th, NULL, timed_producer, &prod[i]), 0);
    KT_EQ(pthread_create(&cons[i].th, NULL, timed_consumer, &cons[i]), 0);
  }
  for (int i = 0; i < NPROD; i++) {
    KT_EQ(pthread_join(prod[i].th, NULL), 0);
    KT_EQ(pthread_join(cons[i].th, NULL), 0);
  }
  for (size_t i = 0; i < N; i++) KT_EQ(atomic_load(&c.seen[i]), 1);
  KT_EQ(kiln_queue_qsize(c.q), 0);
  free((void *)c.seen);
  kiln_queue_destroy(c.q);
}

/* Immediate shutdown in the middle of traffic: every item put is either taken by a consumer or
 * handed to item_free, exactly once. */
static _Atomic unsigned char *g_fate; /* per item: 1 taken, 2 freed */

static void fate_free(void *item) {
  unsigned char old = atomic_fetch_add_explicit(&g_fate[QTU_VAL(item)], 2, memory_order_relaxed);
  KT_EQ(old, 0);
}

typedef struct shut_ctx {
  kiln_queue *q;
  _Atomic size_t put_ok;
  _Atomic size_t got;
} shut_ctx;

typedef struct shut_worker {
  shut_ctx *c;
  int id;
  pthread_t th;
} shut_worker;

enum { MAXITEMS = 1 << 22 }; /* far more than the producers can put before the shutdown */

static void *shut_producer(void *a) {
  shut_worker *w = a;
  size_t i;
  int rc = 0;
  for (i = (size_t)w->id; i < MAXITEMS; i += NPROD) {
    if ((rc = kiln_queue_put(w->c->q, QTU_ITEM(i), -1)) != 0) break;
    atomic_fetch_add_explicit(&w->c->put_ok, 1, memory_order_relaxed);
  }
  if (i < MAXITEMS) KT_CODE(rc, KILN_ESHUTDOWN); /* else: ran out of items, which is fine too */
  return NULL;
}

static void *shut_consumer(void *a) {
  shut_worker *w = a;
  void *it;
  int rc;
  while ((rc = kiln_queue_get(w->c->q, &it, -1)) == 0) {
    unsigned char old = atomic_fetch_add_explicit(&g_fate[QTU_VAL(it)], 1, memory_order_relaxed);
    KT_EQ(old, 0);
    atomic_fetch_add_explicit(&w->c->got, 1, memory_order_relaxed);
  }
  KT_CODE(rc, KILN_ESHUTDOWN);
  return NULL;
}

TEST(immediate_shutdown_under_load) {
  g_fate = calloc(MAXITEMS, sizeof *g_fate);
  KT_TRUE(g_fate != NULL);
  kiln_queue_config cfg;
  kiln_queue_config_default(&cfg);
  cfg.maxsize = 64;
  cfg.item_free = fate_free;
  shut_ctx c = {0};
  KT_CODE(kiln_queue_create(&cfg, &c.q), KILN_OK);
  shut_worker prod[NPROD], cons[2];
  for (int i = 0; i < NPROD; i++) {
    prod[i] = (shut_worker){.c = &c, .id = i};
    KT_EQ(pthread_create(&prod[i].th, NULL, shut_producer, &prod[i]), 0);
  }
  for (int i = 0; i < 2; i++) {
    cons[i] = (shut_worker){.c = &c, .id = i};
    KT_EQ(pthread_create(&cons[i].th, NULL, shut_consumer, &cons[i]), 0);
  }
  /* wait until traffic flows and the queue is full (consumers are slower than 4 producers) */
  while (atomic_load_explicit(&c.got, memory_order_relaxed) < 2000) sched_yield();
  kiln_queue_shutdown(c.q, true);
  for (int i = 0; i < NPROD; i++) KT_EQ(pthread_join(prod[i].th, NULL), 0);
  for (int i = 0; i < 2; i++) KT_EQ(pthread_join(cons[i].th, NULL), 0);
  size_t put = atomic_load(&c.put_ok), taken = 0, freed = 0;
  for (size_t i = 0; i < MAXITEMS; i++) {
    unsigned char f = atomic_load_explicit(&g_fate[i], memory_order_relaxed);
    KT_TRUE(f <= 2);
    taken += f == 1;
    freed += f == 2;
  }
  KT_EQ(taken, atomic_load(&c.got));
  KT_EQ(taken + freed, put);
  /* every put is accounted for: taken (task_done owed) or dropped */
  KT_CODE(kiln_queue_join(c.q, 0), taken ? KILN_ETIMEDOUT : KILN_OK);
  for (size_t i = 0; i < taken; i++) KT_CODE(kiln_queue_task_done(c.q), KILN_OK);
  KT_CODE(kiln_queue_join(c.q, 0), KILN_OK);
  KT_CODE(kiln_queue_task_done(c.q), KILN_EINVAL);
  kiln_queue_destroy(c.q);
  free((void *)g_fate);
}
