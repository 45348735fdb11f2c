/* tools/bench/bench_lock.c: kiln-bench-lock, kiln_lock against pthread_mutex_t in one run.
 *
 * Uncontended: one thread acquires and releases in a loop (--iters pairs per run). The rows are
 * pthread_mutex_t (the baseline), kiln_lock, kiln_rlock and a kiln_semaphore of 1; each run of
 * each row alternates with the others, and the median of --reps runs is reported in ns per
 * acquire+release pair, with the ratio to pthread_mutex (target for kiln_lock: <= 1.2).
 *
 * The process starts (and joins) one thread first, as glibc's mutex takes a non-atomic fast path
 * in a process that never had a second thread.
 *
 * Contended (--threads T > 1, default 2): T threads each do --iters/10 pairs around a tiny
 * critical section on one shared lock; reported as ns per pair over all threads. It depends on
 * the machine's load far more than the uncontended rows; read it as a sanity check.
 *
 *   kiln-bench-lock [--iters N] [--reps R] [--threads T]
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kiln/sync.h"

enum { ROW_PTHREAD, ROW_LOCK, ROW_RLOCK, ROW_SEM, ROW_COUNT };
static const char *const row_names[ROW_COUNT] = {"pthread_mutex", "kiln_lock", "kiln_rlock",
                                                 "kiln_semaphore"};

static pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;
static kiln_lock *g_lock;
static kiln_rlock *g_rlock;
static kiln_semaphore *g_sem;
static volatile long g_sink; /* the critical section's work, so the loop is not empty */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* n acquire+release pairs on row's object; returns non-zero on an error code. */
static int pairs(int row, long n) {
  for (long i = 0; i < n; i++) {
    int rc = 0;
    switch (row) {
      case ROW_PTHREAD:
        pthread_mutex_lock(&g_mutex);
        g_sink++;
        pthread_mutex_unlock(&g_mutex);
        break;
      case ROW_LOCK:
        rc = kiln_lock_acquire(g_lock, -1);
        g_sink++;
        rc |= kiln_lock_release(g_lock);
        break;
      case ROW_RLOCK:
        rc = kiln_rlock_acquire(g_rlock, -1);
        g_sink++;
        rc |= kiln_rlock_release(g_rlock);
        break;
      default:
        rc = kiln_semaphore_acquire(g_sem, -1);
        g_sink++;
        rc |= kiln_semaphore_release(g_sem, 1);
        break;
    }
    if (rc) return rc;
  }
  return 0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct contended_arg {
  int row;
  long n;
  int rc;
};

static void *contended_thread(void *p) {
  struct contended_arg *a = p;
  a->rc = pairs(a->row, a->n);
  return NULL;
}

/* ns per pair with `threads` threads hammering one object. */
static double contended_run(int row, int threads, long n, int *rc) {
  pthread_t th[64];
  struct contended_arg args[64];
  double t0 = now_s();
  for (int i = 0; i < threads; i++) {
    args[i] = (struct contended_arg){row, n, 0};
    if (pthread_create(&th[i], NULL, contended_thread, &args[i]) != 0) {
      *rc = -1;
      threads = i;
      break;
    }
  }
  for (int i = 0; i < threads; i++) {
    pthread_join(th[i], NULL);
    if (args[i].rc) *rc = args[i].rc;
  }
  return (now_s() - t0) * 1e9 / ((double)n * threads);
}

static void *idle_thread(void *p) { return p; }

static int parse_long(const char *s, long min, long max, long *out) {
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < min || v > max) return -1;
  *out = v;
  return 0;
}

int main(int argc, char **argv) {
  long iters = 10000000, reps = 9, threads = 2;
  for (int i = 1; i < argc; i++) {
    long *dst = strcmp(argv[i], "--iters") == 0     ? &iters
                : strcmp(argv[i], "--reps") == 0    ? &reps
                : strcmp(argv[i], "--threads") == 0 ? &threads
                                                    : NULL;
    long max = dst == &threads ? 64 : 1000000000L;
    if (!dst || i + 1 >= argc || parse_long(argv[++i], 1, max, dst)) {
      fprintf(stderr, "usage: kiln-bench-lock [--iters N] [--reps R] [--threads T (1..64)]\n");
      return 2;
    }
  }
  /* glibc skips the atomic instructions of pthread_mutex while a process has only ever had one
   * thread (__libc_single_threaded); kiln's users are multithreaded, and so is the comparison. */
  pthread_t idle;
  if (pthread_create(&idle, NULL, idle_thread, NULL) != 0 || pthread_join(idle, NULL) != 0) {
    fprintf(stderr, "kiln-bench-lock: cannot start a thread\n");
    return 1;
  }
  if (kiln_lock_create(&g_lock) || kiln_rlock_create(&g_rlock) ||
      kiln_semaphore_create(1, false, &g_sem)) {
    fprintf(stderr, "kiln-bench-lock: out of memory\n");
    return 1;
  }

  char date[64] = "";
  time_t t = time(NULL);
  struct tm tmv;
  if (gmtime_r(&t, &tmv)) strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", &tmv);
  printf("kiln-bench-lock: %s; nproc=%ld\ncommand:", date, sysconf(_SC_NPROCESSORS_ONLN));
  for (int i = 0; i < argc; i++) printf(" %s", argv[i]);
  printf("\nuncontended acquire+release, %ld pairs per run, median of %ld runs\n", iters, reps);

  double *samples[ROW_COUNT];
  for (int r = 0; r < ROW_COUNT; r++) {
    samples[r] = malloc((size_t)reps * sizeof(double));
    if (!samples[r]) return 1;
    if (pairs(r, iters / 10)) return 1; /* warm-up */
  }
  for (long k = 0; k < reps; k++) {
    for (int r = 0; r < ROW_COUNT; r++) {
      double t0 = now_s();
      int rc = pairs(r, iters);
      samples[r][k] = (now_s() - t0) * 1e9 / (double)iters;
      if (rc) {
        fprintf(stderr, "kiln-bench-lock: %s: error %d\n", row_names[r], rc);
        return 1;
      }
    }
  }
  double base = median(samples[ROW_PTHREAD], (int)reps);
  for (int r = 0; r < ROW_COUNT; r++) {
    double m = median(samples[r], (int)reps);
    printf("  %-15s %7.2f ns/pair   ratio to pthread_mutex %.2f%s\n", row_names[r], m, m / base,
           r == ROW_LOCK ? " (target <= 1.20)" : "");
  }

  if (threads > 1) {
    long n = iters / 10;
    printf("contended: %ld threads x %ld pairs on one object, median of %ld runs\n", threads, n,
           reps);
    for (int r = 0; r < ROW_COUNT; r++) {
      for (long k = 0; k < reps; k++) {
        int rc = 0;
        samples[r][k] = contended_run(r, (int)threads, n, &rc);
        if (rc) {
          fprintf(stderr, "kiln-bench-lock: contended %s: error %d\n", row_names[r], rc);
          return 1;
        }
      }
    }
    double cbase = median(samples[ROW_PTHREAD], (int)reps);
    for (int r = 0; r < ROW_COUNT; r++) {
      double m = median(samples[r], (int)reps);
      printf("  %-15s %7.2f ns/pair   ratio to pthread_mutex %.2f\n", row_names[r], m, m / cbase);
    }
  }

  for (int r = 0; r < ROW_COUNT; r++) free(samples[r]);
  kiln_lock_destroy(g_lock);
  kiln_rlock_destroy(g_rlock);
  kiln_semaphore_destroy(g_sem);
  return 0;
}
