/* tools/bench/bench_sched.c: kiln-bench-sched, kiln's scheduler against oneTBB and OpenMP tasks.
 *
 * Six workloads, each run by the three runtimes on the same number of threads:
 *   fib       fib(30) with a future (task) per call and no cut-off
 *   pfor      parallel-for over 10^7 trivial iterations, grain 100 (~10^5 chunks)
 *   wavefront 512x512 cells, (i,j) after (i-1,j) and (i,j-1), all submitted up front; kiln
 *             releases its futures two rows behind, oneTBB's graph is torn down inside the timing
 *   wavefront-kept  the same DAG as users write it: kiln keeps every future (262,144 handles) until
 *             the last result, oneTBB keeps its flow graph; construction and run are timed, the
 *             release of the handles and the graph's teardown are not, for both
 *   chain     10^5 tasks, each after the previous one, running while they are submitted
 *   chain-built  the same chain built first (its first task gated on a promise), then started,
 *             as oneTBB's flow graph runs it (oneTBB and OpenMP rows are the same as chain's)
 * Each timed run is preceded by untimed warm-up runs; the median of --reps runs is reported in
 * ms with the fastest and slowest run, and the ratios kiln/oneTBB and kiln/OpenMP (below 1: kiln
 * is faster): the median of the per-round ratios (each round runs the three runtimes back to back)
 * with their range. Every run's result is checked; a wrong result or a runtime error exits with
 * status 1.
 *
 *   kiln-bench-sched [--threads N] [--reps R] [--warmup W] [--cpu] [--verbose]
 *                    [--only fib|pfor|wavefront|wavefront-kept|chain|chain-built]
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "kiln/sched.h"

enum { IMPL_KILN, IMPL_TBB, IMPL_OMP, IMPL_COUNT };
static const char *const impl_names[IMPL_COUNT] = {"kiln", "oneTBB", "OpenMP"};

#define FIB_N 30
#define FIB_EXPECTED 832040LL
#define PFOR_N 10000000u
#define PFOR_GRAIN 100u
#define WF_N 512u
#define CHAIN_N 100000u

static kiln_pool *g_pool;
static char g_errmsg[256];

static void set_err(const char *fmt, int code) {
  snprintf(g_errmsg, sizeof g_errmsg, fmt, code, kiln_strerror(code));
}

/* ---- fib ------------------------------------------------------------------------------------ */

static long long g_fib_result;

static int kiln_fib_task(void *arg, void **result) {
  intptr_t n = (intptr_t)arg;
  if (n < 2) {
    *result = (void *)n;
    return 0;
  }
  kiln_pool *p = kiln_pool_current();
  kiln_future *a = NULL, *b = NULL;
  int rc = kiln_submit(p, kiln_fib_task, (void *)(n - 1), &a);
  if (rc != 0) return rc;
  rc = kiln_submit(p, kiln_fib_task, (void *)(n - 2), &b);
  if (rc != 0) {
    kiln_future_result(a, -1.0, NULL);
    kiln_future_release(a);
    return rc;
  }
  void *x = NULL, *y = NULL;
  int rx = kiln_future_result(a, -1.0, &x);
  int ry = kiln_future_result(b, -1.0, &y);
  kiln_future_release(a);
  kiln_future_release(b);
  if (rx != 0) return rx;
  if (ry != 0) return ry;
  *result = (void *)((intptr_t)x + (intptr_t)y);
  return 0;
}

static int run_fib_kiln(void) {
  kiln_future *f = NULL;
  int rc = kiln_submit(g_pool, kiln_fib_task, (void *)(intptr_t)FIB_N, &f);
  if (rc != 0) {
    set_err("kiln_submit: %d (%s)", rc);
    return 1;
  }
  void *v = NULL;
  rc = kiln_future_result(f, -1.0, &v);
  kiln_future_release(f);
  if (rc != 0) {
    set_err("kiln_future_result: %d (%s)", rc);
    return 1;
  }
  g_fib_result = (long long)(intptr_t)v;
  return 0;
}
static int run_fib_tbb(void) { return bench_tbb_fib(FIB_N, &g_fib_result); }
static int run_fib_omp(void) { return bench_omp_fib(FIB_N, &g_fib_result); }
static void reset_fib(void) { g_fib_result = -1; }
static int check_fib(void) {
  if (g_fib_result == FIB_EXPECTED) return 0;
  snprintf(g_errmsg, sizeof g_errmsg, "fib(%d) = %lld, expected %lld", FIB_N, g_fib_result,
           FIB_EXPECTED);
  return 1;
}

/* ---- parallel-for --------------------------------------------------------------------------- */

static uint32_t *g_pfor;

static void kiln_pfor_body(void *ctx, size_t lo, size_t hi) { bench_pfor_body(ctx, lo, hi); }

static int run_pfor_kiln(void) {
  int rc = kiln_parallel_for(g_pool, 0, PFOR_N, PFOR_GRAIN, kiln_pfor_body, g_pfor);
  if (rc != 0) {
    set_err("kiln_parallel_for: %d (%s)", rc);
    return 1;
  }
  return 0;
}
static int run_pfor_tbb(void) { return bench_tbb_pfor(g_pfor, PFOR_N, PFOR_GRAIN); }
static int run_pfor_omp(void) { return bench_omp_pfor(g_pfor, PFOR_N, PFOR_GRAIN); }
static void reset_pfor(void) { memset(g_pfor, 0xff, (size_t)PFOR_N * sizeof *g_pfor); }
static int check_pfor(void) {
  for (size_t i = 0; i < PFOR_N; i++) {
    if (g_pfor[i] != (uint32_t)i * 2u) {
      snprintf(g_errmsg, sizeof g_errmsg, "a[%zu] = %u, expected %u", i, (unsigned)g_pfor[i],
               (unsigned)((uint32_t)i * 2u));
      return 1;
    }
  }
  return 0;
}

/* ---- wavefront ------------------------------------------------------------------------------ */

#define WF_W (WF_N + 1u)
static uint32_t *g_wf;     /* (WF_N+1)^2, row 0 and column 0 stay 0 */
static uint32_t *g_wf_ref; /* computed serially once */

static int kiln_wf_task(void *arg, void **result) {
  (void)result;
  size_t idx = (size_t)(uintptr_t)arg;
  g_wf[idx] = bench_wf_cell(g_wf[idx - WF_W], g_wf[idx - 1]);
  return 0;
}

/* All cells are submitted from this thread in row-major order; a future is released once the
 * last cell that depends on it has been submitted, so two rows of futures are held at a time. */
static int run_wf_kiln(void) {
  kiln_future *rows[2][WF_N + 1];
  kiln_future **prev = rows[0], **cur = rows[1];
  int rc = 0;
  for (size_t i = 1; i <= WF_N; i++) {
    for (size_t j = 1; j <= WF_N; j++) {
      kiln_future *deps[2];
      size_t nd = 0;
      if (i > 1) deps[nd++] = prev[j];
      if (j > 1) deps[nd++] = cur[j - 1];
      rc = kiln_submit_after(g_pool, deps, nd, kiln_wf_task, (void *)(uintptr_t)(i * WF_W + j),
                             &cur[j]);
      if (rc != 0) {
        set_err("kiln_submit_after: %d (%s)", rc);
        fprintf(stderr, "kiln-bench-sched: wavefront: submit of (%zu,%zu) failed\n", i, j);
        exit(1); /* futures are leaked on purpose: we are exiting */
      }
      if (i > 1) kiln_future_release(prev[j]);
    }
    kiln_future **t = prev;
    prev = cur;
    cur = t;
  }
  /* prev is now the last row; its last cell depends on every other cell. */
  rc = kiln_future_result(prev[WF_N], -1.0, NULL);
  for (size_t j = 1; j <= WF_N; j++) kiln_future_release(prev[j]);
  if (rc != 0) {
    set_err("kiln_future_result: %d (%s)", rc);
    return 1;
  }
  return 0;
}
static int run_wf_tbb(void) { return bench_tbb_wavefront(g_wf, WF_N); }

/* wavefront-kept: every cell's future is kept in one array, as a program that wants every
 * result (or its error) writes it; all are released after the last result, outside the timing. */
static kiln_future **g_wf_kept; /* WF_W * WF_W, indexed like g_wf; row 0 and column 0 unused */

static int run_wf_kept_kiln(void) {
  for (size_t i = 1; i <= WF_N; i++) {
    for (size_t j = 1; j <= WF_N; j++) {
      kiln_future *deps[2];
      size_t nd = 0;
      if (i > 1) deps[nd++] = g_wf_kept[(i - 1) * WF_W + j];
      if (j > 1) deps[nd++] = g_wf_kept[i * WF_W + j - 1];
      int rc = kiln_submit_after(g_pool, deps, nd, kiln_wf_task, (void *)(uintptr_t)(i * WF_W + j),
                                 &g_wf_kept[i * WF_W + j]);
      if (rc != 0) {
        set_err("kiln_submit_after: %d (%s)", rc);
        return 1; /* the teardown releases what was submitted */
      }
    }
  }
  int rc = kiln_future_result(g_wf_kept[WF_N * WF_W + WF_N], -1.0, NULL);
  if (rc != 0) {
    set_err("kiln_future_result: %d (%s)", rc);
    return 1;
  }
  return 0;
}
static void free_wf_kept_kiln(void) {
  for (size_t k = 0; k < (size_t)WF_W * WF_W; k++) {
    kiln_future_release(g_wf_kept[k]); /* NULL for the border: a no-op */
    g_wf_kept[k] = NULL;
  }
}
static int run_wf_kept_tbb(void) { return bench_tbb_wavefront_kept(g_wf, WF_N); }
static int run_wf_omp(void) { return bench_omp_wavefront(g_wf, WF_N); }
static void reset_wf(void) { memset(g_wf, 0, (size_t)WF_W * WF_W * sizeof *g_wf); }
static int check_wf(void) {
  for (size_t k = 0; k < (size_t)WF_W * WF_W; k++) {
    if (g_wf[k] != g_wf_ref[k]) {
      snprintf(g_errmsg, sizeof g_errmsg, "v[%zu][%zu] = %u, expected %u", k / WF_W, k % WF_W,
               (unsigned)g_wf[k], (unsigned)g_wf_ref[k]);
      return 1;
    }
  }
  return 0;
}

/* ---- chain ---------------------------------------------------------------------------------- */

static size_t g_chain; /* task k moves it from k to k+1, so it ends at CHAIN_N only in order */

static int kiln_chain_task(void *arg, void **result) {
  (void)result;
  size_t k = (size_t)(uintptr_t)arg;
  if (g_chain == k) g_chain = k + 1;
  return 0;
}

/* gated: the first task waits on a promise resolved once the whole chain is submitted, so the
 * graph is built first and then run, as oneTBB's flow graph does (build, try_put, wait_for_all).
 * Not gated: the chain runs while it is being submitted, as OpenMP's does. */
static int chain_kiln(bool gated) {
  kiln_future *gate = NULL, *prev = NULL;
  if (gated && kiln_promise_create(&gate) != 0) return 1;
  prev = gate ? kiln_future_retain(gate) : NULL;
  for (size_t k = 0; k < CHAIN_N; k++) {
    kiln_future *f = NULL;
    int rc =
        kiln_submit_after(g_pool, &prev, prev ? 1 : 0, kiln_chain_task, (void *)(uintptr_t)k, &f);
    if (rc != 0) {
      set_err("kiln_submit_after: %d (%s)", rc);
      kiln_future_release(prev);
      if (gate) kiln_promise_resolve(gate, NULL), kiln_future_release(gate);
      return 1;
    }
    kiln_future_release(prev);
    prev = f;
  }
  if (gate) {
    kiln_promise_resolve(gate, NULL);
    kiln_future_release(gate);
  }
  int rc = kiln_future_result(prev, -1.0, NULL);
  kiln_future_release(prev);
  if (rc != 0) {
    set_err("kiln_future_result: %d (%s)", rc);
    return 1;
  }
  return 0;
}
static int run_chain_kiln(void) { return chain_kiln(false); }
static int run_chain_gated_kiln(void) { return chain_kiln(true); }
static int run_chain_tbb(void) { return bench_tbb_chain(CHAIN_N, &g_chain); }
static int run_chain_omp(void) { return bench_omp_chain(CHAIN_N, &g_chain); }
static void reset_chain(void) { g_chain = 0; }
static int check_chain(void) {
  if (g_chain == CHAIN_N) return 0;
  snprintf(g_errmsg, sizeof g_errmsg, "chain counter = %zu, expected %u (tasks out of order)",
           g_chain, CHAIN_N);
  return 1;
}

/* ---- driver --------------------------------------------------------------------------------- */

typedef struct workload {
  const char *key;
  const char *label;
  void (*reset)(void);
  int (*run[IMPL_COUNT])(void);
  int (*check)(void);
  void (*teardown[IMPL_COUNT])(void); /* after the timing; NULL: none */
} workload;

static const workload workloads[] = {
    {"fib",
     "fib(30), future per call, no cut-off",
     reset_fib,
     {run_fib_kiln, run_fib_tbb, run_fib_omp},
     check_fib,
     {NULL, NULL, NULL}},
    {"pfor",
     "parallel-for 10^7 iterations, grain 100",
     reset_pfor,
     {run_pfor_kiln, run_pfor_tbb, run_pfor_omp},
     check_pfor,
     {NULL, NULL, NULL}},
    {"wavefront",
     "wavefront 512x512 (262144 dependent tasks)",
     reset_wf,
     {run_wf_kiln, run_wf_tbb, run_wf_omp},
     check_wf,
     {NULL, NULL, NULL}},
    {"wavefront-kept",
     "wavefront 512x512, every future kept, teardown untimed",
     reset_wf,
     {run_wf_kept_kiln, run_wf_kept_tbb, run_wf_omp},
     check_wf,
     {free_wf_kept_kiln, bench_tbb_wavefront_kept_free, NULL}},
    {"chain",
     "chain of 10^5 dependent tasks, run while submitted",
     reset_chain,
     {run_chain_kiln, run_chain_tbb, run_chain_omp},
     check_chain,
     {NULL, NULL, NULL}},
    {"chain-built",
     "chain of 10^5 dependent tasks, built then started",
     reset_chain,
     {run_chain_gated_kiln, run_chain_tbb, run_chain_omp},
     check_chain,
     {NULL, NULL, NULL}},
};
#define NWORKLOADS (sizeof workloads / sizeof workloads[0])

static clockid_t g_clock = CLOCK_MONOTONIC; /* --cpu: CLOCK_PROCESS_CPUTIME_ID */

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(g_clock, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void pause_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void usage(FILE *to) {
  fprintf(to,
          "usage: kiln-bench-sched [--threads N] [--reps R] [--warmup W] [--cpu] [--verbose]\n"
          "                        [--only fib|pfor|wavefront|wavefront-kept|chain|chain-built]\n"
          "  --threads N  threads per runtime (default 2)\n"
          "  --reps R     timed runs per workload and runtime; the median is reported (default 7)\n"
          "  --warmup W   untimed runs before them (default 1)\n"
          "  --cpu        time the process's CPU time (all threads) instead of wall time: less\n"
          "               sensitive to a busy machine; spinning and stealing count too\n");
}

static int parse_int(const char *s, int min, int *out) {
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < min || v > 1000000) return -1;
  *out = (int)v;
  return 0;
}

static void cpu_model(char *buf, size_t cap) {
  snprintf(buf, cap, "unknown CPU");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return;
  char line[512];
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "model name", 10) == 0) {
      const char *c = strchr(line, ':');
      if (c) {
        c++;
        while (*c == ' ' || *c == '\t') c++;
        snprintf(buf, cap, "%s", c);
        buf[strcspn(buf, "\n")] = '\0';
      }
      break;
    }
  }
  fclose(f);
}

/* Runs one workload once on one runtime and checks the result. 0 and *ms, or 1. */
static int run_once(const workload *w, int impl, double *ms) {
  w->reset();
  pause_ms(20); /* let the previous runtime's spinning threads go idle */
  g_errmsg[0] = '\0';
  double t0 = now_ms();
  int rc = w->run[impl]();
  double t1 = now_ms();
  if (w->teardown[impl]) w->teardown[impl]();
  if (rc != 0) {
    fprintf(stderr, "kiln-bench-sched: %s on %s: runtime error%s%s\n", w->key, impl_names[impl],
            g_errmsg[0] ? ": " : "", g_errmsg);
    return 1;
  }
  if (w->check() != 0) {
    fprintf(stderr, "kiln-bench-sched: %s on %s: WRONG RESULT: %s\n", w->key, impl_names[impl],
            g_errmsg);
    return 1;
  }
  *ms = t1 - t0;
  return 0;
}

/* Warm-up, then reps rounds; each round runs every runtime once, in turn, so that a noisy
 * stretch of the machine hits all three alike (the runtimes are interleaved, not run in blocks).
 * med[impl] gets each runtime's median. */
typedef struct stats {
  double med[IMPL_COUNT], lo[IMPL_COUNT], hi[IMPL_COUNT];               /* ms */
  double ratio[IMPL_COUNT], ratio_lo[IMPL_COUNT], ratio_hi[IMPL_COUNT]; /* kiln / impl, per round */
} stats;

static double median_sorted(const double *x, int n) {
  return n % 2 ? x[n / 2] : (x[n / 2 - 1] + x[n / 2]) / 2.0;
}

static int measure(const workload *w, int reps, int warmup, int verbose, stats *st) {
  double *t = calloc((size_t)reps * IMPL_COUNT, sizeof *t);
  if (!t) return 1;
  for (int r = -warmup; r < reps; r++)
    for (int impl = 0; impl < IMPL_COUNT; impl++) {
      double ms;
      if (run_once(w, impl, &ms) != 0) {
        free(t);
        return 1;
      }
      if (verbose)
        fprintf(stderr, "  %-9s %-6s %s %2d: %9.3f ms\n", w->key, impl_names[impl],
                r < 0 ? "warm-up" : "rep    ", r < 0 ? -r : r + 1, ms);
      if (r >= 0) t[impl * reps + r] = ms;
    }
  double *r = calloc((size_t)reps, sizeof *r);
  if (!r) {
    free(t);
    return 1;
  }
  for (int impl = 0; impl < IMPL_COUNT; impl++) {
    for (int k = 0; k < reps; k++) r[k] = t[IMPL_KILN * reps + k] / t[impl * reps + k];
    qsort(r, (size_t)reps, sizeof *r, cmp_double);
    st->ratio[impl] = median_sorted(r, reps);
    st->ratio_lo[impl] = r[0];
    st->ratio_hi[impl] = r[reps - 1];
  }
  for (int impl = 0; impl < IMPL_COUNT; impl++) {
    double *x = t + impl * reps;
    qsort(x, (size_t)reps, sizeof *x, cmp_double);
    st->med[impl] = median_sorted(x, reps);
    st->lo[impl] = x[0];
    st->hi[impl] = x[reps - 1];
  }
  free(r);
  free(t);
  return 0;
}

int main(int argc, char **argv) {
  int threads = 2, reps = 7, warmup = 1, verbose = 0;
  const char *only = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
      verbose = 1;
    } else if (strcmp(a, "--cpu") == 0) {
      g_clock = CLOCK_PROCESS_CPUTIME_ID;
    } else if (i + 1 < argc && strcmp(a, "--threads") == 0) {
      if (parse_int(argv[++i], 1, &threads) != 0) goto bad;
    } else if (i + 1 < argc && strcmp(a, "--reps") == 0) {
      if (parse_int(argv[++i], 1, &reps) != 0) goto bad;
    } else if (i + 1 < argc && strcmp(a, "--warmup") == 0) {
      if (parse_int(argv[++i], 0, &warmup) != 0) goto bad;
    } else if (i + 1 < argc && strcmp(a, "--only") == 0) {
      only = argv[++i];
    } else {
    bad:
      fprintf(stderr, "kiln-bench-sched: bad argument '%s'\n", a);
      usage(stderr);
      return 2;
    }
  }
  if (only) {
    size_t k = 0;
    while (k < NWORKLOADS && strcmp(workloads[k].key, only) != 0) k++;
    if (k == NWORKLOADS) {
      fprintf(stderr, "kiln-bench-sched: unknown workload '%s'\n", only);
      return 2;
    }
  }

  /* Header: machine and the exact command. */
  char cpu[256];
  cpu_model(cpu, sizeof cpu);
  char date[64] = "";
  time_t now = time(NULL);
  struct tm tmv;
  if (gmtime_r(&now, &tmv)) strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", &tmv);
  printf("kiln-bench-sched: %s; machine: nproc=%ld, %s\n", date, sysconf(_SC_NPROCESSORS_ONLN),
         cpu);
  printf("command:");
  for (int i = 0; i < argc; i++) printf(" %s", argv[i]);
  printf("\nthreads=%d reps=%d warmup=%d; median %s per run (interleaved rounds), ratios "
         "below 1 mean kiln is faster\n\n",
         threads, reps, warmup,
         g_clock == CLOCK_MONOTONIC ? "wall time" : "process CPU time (all threads)");
  fflush(stdout);

  /* Data. */
  g_pfor = malloc((size_t)PFOR_N * sizeof *g_pfor);
  g_wf = malloc((size_t)WF_W * WF_W * sizeof *g_wf);
  g_wf_ref = calloc((size_t)WF_W * WF_W, sizeof *g_wf_ref);
  g_wf_kept = calloc((size_t)WF_W * WF_W, sizeof *g_wf_kept);
  if (!g_pfor || !g_wf || !g_wf_ref || !g_wf_kept) {
    fprintf(stderr, "kiln-bench-sched: out of memory\n");
    return 1;
  }
  for (size_t i = 1; i <= WF_N; i++)
    for (size_t j = 1; j <= WF_N; j++)
      g_wf_ref[i * WF_W + j] =
          bench_wf_cell(g_wf_ref[(i - 1) * WF_W + j], g_wf_ref[i * WF_W + j - 1]);

  /* Runtimes. */
  kiln_pool_config cfg;
  kiln_pool_config_default(&cfg);
  cfg.threads = threads;
  cfg.name = "bench";
  int rc = kiln_pool_create(&cfg, &g_pool);
  if (rc != 0) {
    fprintf(stderr, "kiln-bench-sched: kiln_pool_create: %d (%s)\n", rc, kiln_strerror(rc));
    return 1;
  }
  if (bench_tbb_init(threads) != 0 || bench_omp_init(threads) != 0) {
    fprintf(stderr, "kiln-bench-sched: cannot set up oneTBB / OpenMP\n");
    return 1;
  }

  printf("| workload | kiln ms (min-max) | oneTBB ms (min-max) | OpenMP ms (min-max) | kiln/oneTBB "
         "per round (min-max) | kiln/OpenMP per round (min-max) |\n");
  printf("|---|---:|---:|---:|---:|---:|\n");
  fflush(stdout);
  int status = 0;
  for (size_t k = 0; k < NWORKLOADS; k++) {
    const workload *w = &workloads[k];
    if (only && strcmp(only, w->key) != 0) continue;
    stats st;
    if (measure(w, reps, warmup, verbose, &st) != 0) {
      status = 1;
      goto out;
    }
    printf("| %s |", w->label);
    for (int impl = 0; impl < IMPL_COUNT; impl++)
      printf(" %.2f (%.2f-%.2f) |", st.med[impl], st.lo[impl], st.hi[impl]);
    printf(" %.2f (%.2f-%.2f) | %.2f (%.2f-%.2f) |\n", st.ratio[IMPL_TBB], st.ratio_lo[IMPL_TBB],
           st.ratio_hi[IMPL_TBB], st.ratio[IMPL_OMP], st.ratio_lo[IMPL_OMP], st.ratio_hi[IMPL_OMP]);
    fflush(stdout);
  }
out:
  kiln_pool_destroy(g_pool);
  bench_tbb_fini();
  free(g_pfor);
  free(g_wf);
  free(g_wf_ref);
  free(g_wf_kept);
  return status;
}
