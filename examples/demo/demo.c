/* kiln-demo: counts the primes below 4,000,000 in 64 tasks on a kiln pool, collects the chunks in
 * completion order with kiln_as_completed, then does the same serially and prints the speed-up. */
#define _POSIX_C_SOURCE 200809L

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "kiln/sched.h"

enum { LIMIT = 4000000, NCHUNKS = 64, CHUNK = LIMIT / NCHUNKS, EXPECTED = 283146 };

struct chunk {
  int index;
  uint32_t lo, hi; /* [lo, hi) */
  long count;      /* written by the task */
};

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static bool is_prime(uint32_t n) {
  if (n < 2) return false;
  if (n % 2 == 0) return n == 2;
  for (uint32_t d = 3; d * d <= n; d += 2)
    if (n % d == 0) return false;
  return true;
}

static long count_primes(uint32_t lo, uint32_t hi) {
  long count = 0;
  for (uint32_t n = lo; n < hi; n++) count += is_prime(n);
  return count;
}

/* The task: counts its chunk and returns the chunk itself as the result. */
static int count_task(void *arg, void **result) {
  struct chunk *c = arg;
  c->count = count_primes(c->lo, c->hi);
  *result = c;
  return 0;
}

static int fail(const char *what, int rc) {
  fprintf(stderr, "kiln-demo: %s: %s (%s)\n", what, kiln_strerror(rc), kiln_err_name(rc));
  return 1;
}

/* Runs the parallel count; 0 and *total on success, else 1 after printing the error. */
static int run_parallel(long *total, double *seconds) {
  static struct chunk chunks[NCHUNKS];
  kiln_future *futures[NCHUNKS] = {0};
  kiln_pool *pool = NULL;
  kiln_completion *done = NULL;
  int status = 1, rc;
  size_t submitted = 0;

  kiln_pool_config cfg;
  kiln_pool_config_default(&cfg);
  if ((rc = kiln_pool_create(&cfg, &pool)) != 0) return fail("kiln_pool_create", rc);
  printf("pool: %d workers; %d tasks of %d numbers each\n", kiln_pool_threads(pool), NCHUNKS,
         CHUNK);

  double t0 = now();
  for (int i = 0; i < NCHUNKS; i++) {
    chunks[i] = (struct chunk){i, (uint32_t)i * CHUNK, (uint32_t)(i + 1) * CHUNK, 0};
    if ((rc = kiln_submit(pool, count_task, &chunks[i], &futures[i])) != 0) {
      fail("kiln_submit", rc);
      goto out;
    }
    submitted++;
  }
  if ((rc = kiln_as_completed(futures, submitted, -1.0, &done)) != 0) {
    fail("kiln_as_completed", rc);
    goto out;
  }

  long sum = 0;
  int ncompleted = 0;
  for (;;) {
    kiln_future *f = NULL;
    rc = kiln_completion_next(done, &f);
    if (rc == KILN_EEOF) break;
    if (rc != 0) {
      fail("kiln_completion_next", rc);
      goto out;
    }
    void *value = NULL;
    rc = kiln_future_result(f, 0.0, &value);
    if (rc != 0) {
      const char *msg = NULL;
      kiln_future_error(f, 0.0, &msg);
      fprintf(stderr, "kiln-demo: a task failed: %s: %s\n", kiln_strerror(rc), msg ? msg : "");
      kiln_future_release(f);
      goto out;
    }
    const struct chunk *c = value;
    sum += c->count;
    ncompleted++;
    if (ncompleted % 8 == 0)
      printf("  %2d/%d chunks done; last: chunk %2d [%7u, %7u) has %5ld primes; %6ld so far\n",
             ncompleted, NCHUNKS, c->index, (unsigned)c->lo, (unsigned)c->hi, c->count, sum);
    kiln_future_release(f);
  }
  *seconds = now() - t0;
  *total = sum;
  status = 0;

out:
  kiln_completion_destroy(done);
  for (size_t i = 0; i < submitted; i++) kiln_future_release(futures[i]);
  kiln_pool_destroy(pool);
  return status;
}

int main(void) {
  long parallel = 0;
  double tp = 0.0;
  if (run_parallel(&parallel, &tp) != 0) return 1;
  printf("parallel: %ld primes below %d in %.3f s\n", parallel, LIMIT, tp);

  double t0 = now();
  long serial = count_primes(0, LIMIT);
  double ts = now() - t0;
  printf("serial:   %ld primes below %d in %.3f s\n", serial, LIMIT, ts);

  if (parallel != EXPECTED || serial != EXPECTED) {
    fprintf(stderr, "kiln-demo: wrong count: parallel %ld, serial %ld, expected %d\n", parallel,
            serial, EXPECTED);
    return 1;
  }
  printf("speed-up: %.2fx\n", tp > 0.0 ? ts / tp : 0.0);
  return 0;
}
