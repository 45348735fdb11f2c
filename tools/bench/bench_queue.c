/* bench_queue.c: kiln-bench-queue, MPMC throughput of kiln_queue (FIFO) against a plain
 * mutex + two condition variables ring (the textbook bounded buffer, signalling on every put and
 * get), measured in the same run.
 *
 * Workload: P producers put N items in total, C consumers take them; the clock runs from the
 * start of the threads to the last consumer's exit. Two shapes: bounded (maxsize 1024 for both)
 * and unbounded (kiln maxsize 0; the baseline gets a ring larger than N, so it never fills).
 * Each shape runs ROUNDS times, kiln and baseline alternating (and taking turns going first);
 * the best round of each counts, which filters out the noise of a shared machine. Besides wall
 * time, the process CPU time of each round is printed (ns of CPU per item, lowest round): on a
 * machine shared with other jobs it is the steadier of the two figures.
 *
 * Usage: kiln-bench-queue [items] [rounds]   (defaults: 2000000 items, 5 rounds) */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kiln/sync.h"

enum { PRODUCERS = 2, CONSUMERS = 2, BOUND = 1024 };
#define STOP ((void *)UINTPTR_MAX) /* one per consumer, put after every producer has finished */

/* ---- baseline: bounded ring, one mutex, two condition variables -------------------------- */

typedef struct ring {
  pthread_mutex_t mu;
  pthread_cond_t not_empty, not_full;
  void **buf;
  size_t cap, head, count;
} ring;

static int ring_init(ring *r, size_t cap) {
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->not_empty, NULL);
  pthread_cond_init(&r->not_full, NULL);
  r->buf = malloc(cap * sizeof *r->buf);
  r->cap = cap;
  r->head = r->count = 0;
  return r->buf ? 0 : -1;
}

static void ring_fini(ring *r) {
  free(r->buf);
  pthread_cond_destroy(&r->not_full);
  pthread_cond_destroy(&r->not_empty);
  pthread_mutex_destroy(&r->mu);
}

static void ring_put(ring *r, void *item) {
  pthread_mutex_lock(&r->mu);
  while (r->count == r->cap) pthread_cond_wait(&r->not_full, &r->mu);
  r->buf[(r->head + r->count++) % r->cap] = item;
  pthread_cond_signal(&r->not_empty);
  pthread_mutex_unlock(&r->mu);
}

static void *ring_get(ring *r) {
  pthread_mutex_lock(&r->mu);
  while (r->count == 0) pthread_cond_wait(&r->not_empty, &r->mu);
  void *item = r->buf[r->head];
  r->head = (r->head + 1) % r->cap;
  r->count--;
  pthread_cond_signal(&r->not_full);
  pthread_mutex_unlock(&r->mu);
  return item;
}

/* ---- the two queues behind one interface ----------------------------------------------------- */

typedef struct target {
  kiln_queue *kq; /* NULL: the baseline ring */
  ring r;
} target;

static int put(target *t, void *item) {
  if (!t->kq) {
    ring_put(&t->r, item);
    return 0;
  }
  return kiln_queue_put(t->kq, item, -1);
}

static int get(target *t, void **item) {
  if (!t->kq) {
    *item = ring_get(&t->r);
    return 0;
  }
  return kiln_queue_get(t->kq, item, -1);
}

typedef struct job {
  target *t;
  size_t lo, hi; /* producer: puts lo..hi-1 */
  uint64_t sum;  /* consumer: sum of what it took */
  int failed;
  pthread_t th;
} job;

static void *produce(void *a) {
  job *j = a;
  for (size_t i = j->lo; i < j->hi; i++)
    if (put(j->t, (void *)(uintptr_t)i) != 0) j->failed = 1;
  return NULL;
}

static void *consume(void *a) {
  job *j = a;
  for (;;) {
    void *item;
    if (get(j->t, &item) != 0) {
      j->failed = 1;
      break;
    }
    if (item == STOP) break;
    j->sum += (uintptr_t)item;
  }
  return NULL;
}

static double clock_s(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One round; returns items per second (negative on a failure) and sets *cpu_ns_per_item. */
static double run_round(bool use_kiln, size_t maxsize, size_t n, double *cpu_ns_per_item) {
  target t = {0};
  if (use_kiln) {
    kiln_queue_config cfg;
    kiln_queue_config_default(&cfg);
    cfg.maxsize = maxsize;
    if (kiln_queue_create(&cfg, &t.kq) != 0) return -1;
  } else if (ring_init(&t.r, maxsize ? maxsize : n + CONSUMERS) != 0) {
    return -1;
  }
  job prod[PRODUCERS] = {0}, cons[CONSUMERS] = {0};
  double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
  for (int i = 0; i < CONSUMERS; i++) {
    cons[i].t = &t;
    pthread_create(&cons[i].th, NULL, consume, &cons[i]);
  }
  for (int i = 0; i < PRODUCERS; i++) {
    prod[i] = (job){.t = &t};
    prod[i].lo = n * (size_t)i / PRODUCERS;
    prod[i].hi = n * (size_t)(i + 1) / PRODUCERS;
    pthread_create(&prod[i].th, NULL, produce, &prod[i]);
  }
  int failed = 0;
  for (int i = 0; i < PRODUCERS; i++) {
    pthread_join(prod[i].th, NULL);
    failed |= prod[i].failed;
  }
  for (int i = 0; i < CONSUMERS; i++) failed |= put(&t, STOP) != 0;
  uint64_t sum = 0;
  for (int i = 0; i < CONSUMERS; i++) {
    pthread_join(cons[i].th, NULL);
    failed |= cons[i].failed;
    sum += cons[i].sum;
  }
  double dt = clock_s(CLOCK_MONOTONIC) - t0;
  *cpu_ns_per_item = (clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0) * 1e9 / (double)n;
  if (use_kiln) kiln_queue_destroy(t.kq);
  else ring_fini(&t.r);
  if (failed || sum != (uint64_t)n * (n - 1) / 2) return -1;
  return (double)n / dt;
}

int main(int argc, char **argv) {
  size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 2000000;
  int rounds = argc > 2 ? atoi(argv[2]) : 5;
  if (n < 2 || rounds < 1) {
    fprintf(stderr, "usage: %s [items >= 2] [rounds >= 1]\n", argv[0]);
    return 2;
  }
  printf("kiln-bench-queue: %d producers, %d consumers, %zu items, best of %d rounds\n", PRODUCERS,
         CONSUMERS, n, rounds);
  static const size_t shapes[2] = {BOUND, 0};
  for (int s = 0; s < 2; s++) {
    double best_k = 0, best_b = 0, cpu_k = INFINITY, cpu_b = INFINITY;
    for (int r = 0; r < rounds; r++) {
      double k, b, ck, cb; /* alternate which goes first, so neither always meets a cold start */
      if (r % 2 == 0) {
        k = run_round(true, shapes[s], n, &ck);
        b = run_round(false, shapes[s], n, &cb);
      } else {
        b = run_round(false, shapes[s], n, &cb);
        k = run_round(true, shapes[s], n, &ck);
      }
      if (k < 0 || b < 0) {
        fprintf(stderr, "round %d failed (%s)\n", r, k < 0 ? "kiln" : "baseline");
        return 1;
      }
      if (k > best_k) best_k = k;
      if (b > best_b) best_b = b;
      if (ck < cpu_k) cpu_k = ck;
      if (cb < cpu_b) cpu_b = cb;
    }
    char shape[32];
    if (shapes[s]) snprintf(shape, sizeof shape, "bounded %zu", shapes[s]);
    else snprintf(shape, sizeof shape, "unbounded");
    printf("%-12s kiln_queue %10.0f items/s   baseline %10.0f items/s   kiln/baseline %.2f\n",
           shape, best_k, best_b, best_k / best_b);
    printf("%-12s kiln_queue %10.1f cpu ns/item baseline %10.1f cpu ns/item baseline/kiln %.2f\n",
           "", cpu_k, cpu_b, cpu_b / cpu_k);
  }
  return 0;
}
