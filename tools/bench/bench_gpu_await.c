/* kiln-bench-gpu-await: a mixed CPU + GPU graph on a 2-worker pool, with the wait on each GPU job
 * done three ways.
 *
 * The graph of one round: `chains` GPU jobs (one small dispatch of the embedded "hash" kernel each,
 * completed by the fence bridge), each followed by `work_us` of CPU work that depends on it, and
 * `indep` independent CPU tasks of `work_us` each, queued interleaved with the chains.
 *
 *   A  block   a pool task submits its GPU job and waits with kiln_future_result (outside a
 *              fiber: the worker blocks, or runs other queued tasks on its own stack), then works
 *   B  fiber   a pool fiber (kiln_fiber_spawn) submits its GPU job and waits with kiln_await: the
 *              fiber suspends and the worker is free until the fence bridge completes the job
 *   C  after   the GPU job is submitted from the main thread and the CPU work is a task submitted
 *              with kiln_submit_after on its future (no one waits: what the batch does)
 *
 * Figures per round: graph throughput (items, chains + indep, per wall second), the workers' busy
 * share (CPU work done / (2 x wall)), the worker-seconds spent inside the GPU wait (A only: time a
 * worker was held by a blocked task, counted once per worker however deep the waits nest, part
 * of it spent helping: running other tasks on the waiting stack), and the GPU jobs in flight
 * (largest, and mean over submissions). Rounds interleave A, B, C; medians (min..max).
 *
 * Usage: kiln-bench-gpu-await [--device SPEC] [--rounds R] [--chains N] [--indep M]
 *                             [--work-us W] [--elements E]
 * Exit status 1 when something fails. */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_clock.h"
#include "kiln/fiber.h"
#include "kiln/gpu.h"
#include "kiln/sched.h"

#define CHECK(cond, ...)                         \
  do {                                           \
    if (!(cond)) {                               \
      fprintf(stderr, "kiln-bench-gpu-await: "); \
      fprintf(stderr, __VA_ARGS__);              \
      fprintf(stderr, "\n");                     \
      exit(1);                                   \
    }                                            \
  } while (0)

enum { WORKERS = 2, MAX_ROUNDS = 51, NVAR = 3 };

typedef struct bench {
  kiln_pool *pool;
  kiln_gpu_kernel *k;
  kiln_gpu_buffer *src;
  kiln_gpu_buffer **dst; /* one per chain: the jobs of a round run at once */
  uint32_t elements;
  uint64_t spins; /* iterations of spin() that take about work_us */
  _Atomic uint64_t work_ns, wait_ns, sink;
  _Atomic int in_flight, max_in_flight;
  _Atomic uint64_t in_flight_sum, submits;
} bench;

typedef struct item {
  bench *b;
  uint32_t index;
} item;

static uint64_t spin(uint64_t n, uint64_t x) {
  for (uint64_t i = 0; i < n; i++) x = x * 6364136223846793005u + 1442695040888963407u;
  return x;
}

static void work(bench *b, uint64_t seed) {
  double t0 = now();
  atomic_fetch_add_explicit(&b->sink, spin(b->spins, seed), memory_order_relaxed);
  atomic_fetch_add_explicit(&b->work_ns, (uint64_t)((now() - t0) * 1e9), memory_order_relaxed);
}

static void gpu_done(kiln_future *f, void *arg) {
  (void)f;
  atomic_fetch_sub_explicit(&((bench *)arg)->in_flight, 1, memory_order_relaxed);
}

/* Submits chain i's GPU job: one dispatch of hash over b->elements. */
static kiln_future *gpu_submit(bench *b, uint32_t i) {
  kiln_gpu_job *job;
  CHECK(kiln_gpu_job_create(kiln_gpu_buffer_get_device(b->src), &job) == 0, "job_create");
  uint32_t push[2] = {b->elements, i};
  kiln_gpu_buffer *bufs[2] = {b->src, b->dst[i]};
  CHECK(kiln_gpu_job_dispatch(job, b->k, bufs, push, (b->elements + 63) / 64, 1, 1) == 0,
        "dispatch");
  int n = atomic_fetch_add_explicit(&b->in_flight, 1, memory_order_relaxed) + 1;
  int m = atomic_load_explicit(&b->max_in_flight, memory_order_relaxed);
  while (n > m && !atomic_compare_exchange_weak(&b->max_in_flight, &m, n)) {}
  atomic_fetch_add_explicit(&b->in_flight_sum, (uint64_t)n, memory_order_relaxed);
  atomic_fetch_add_explicit(&b->submits, 1, memory_order_relaxed);
  kiln_future *f;
  CHECK(kiln_gpu_job_submit(job, NULL, 0, &f) == 0, "job_submit");
  if (kiln_future_on_done(f, gpu_done, b) != 0) gpu_done(f, b); /* done already */
  return f;
}

static int indep_task(void *arg, void **res) {
  item *it = arg;
  *res = NULL;
  work(it->b, it->index);
  return 0;
}

/* How deep this worker is in block_chain's waits: a wait entered while helping inside another is
 * not counted again (the worker is held once). */
static _Thread_local int wait_depth;

/* A: wait with the scheduler's wait outside a fiber (the worker blocks or helps). */
static int block_chain(void *arg, void **res) {
  item *it = arg;
  bench *b = it->b;
  *res = NULL;
  kiln_future *g = gpu_submit(b, it->index);
  double t0 = now();
  bool outer = wait_depth++ == 0;
  int rc = kiln_future_result(g, -1, NULL);
  wait_depth--;
  if (outer)
    atomic_fetch_add_explicit(&b->wait_ns, (uint64_t)((now() - t0) * 1e9), memory_order_relaxed);
  kiln_future_release(g);
  if (rc) return rc;
  work(b, it->index);
  return 0;
}

/* B: the same as a pool fiber that suspends in kiln_await. */
static int fiber_chain(void *arg, void **res) {
  item *it = arg;
  bench *b = it->b;
  *res = NULL;
  kiln_future *g = gpu_submit(b, it->index);
  int rc = kiln_await(g, -1, NULL);
  kiln_future_release(g);
  if (rc) return rc;
  work(b, it->index);
  return 0;
}

/* C: the CPU work as a dependent task. */
static int follow_task(void *arg, void **res) {
  item *it = arg;
  *res = NULL;
  work(it->b, it->index);
  return 0;
}

typedef struct figures {
  double items_per_s, busy, wait_ws, max_flight, mean_flight;
} figures;

static figures run_round(bench *b, int variant, uint32_t chains, uint32_t indep, item *items) {
  uint32_t total = chains + indep;
  kiln_future **fs = calloc(2 * (size_t)total, sizeof *fs);
  CHECK(fs, "out of memory");
  atomic_store(&b->work_ns, 0), atomic_store(&b->wait_ns, 0);
  atomic_store(&b->max_in_flight, 0), atomic_store(&b->in_flight_sum, 0);
  atomic_store(&b->submits, 0);
  size_t nf = 0, ng = 0;
  kiln_future **gpu = fs + total;
  double t0 = now();
  /* chains and independent tasks interleaved: indep/chains independent tasks after each chain */
  uint32_t ci = 0, ii = 0;
  while (ci < chains || ii < indep) {
    if (ci < chains) {
      item *it = &items[ci];
      it->index = ci++;
      if (variant == 0) CHECK(kiln_submit(b->pool, block_chain, it, &fs[nf++]) == 0, "submit");
      else if (variant == 1)
        CHECK(kiln_fiber_spawn(b->pool, fiber_chain, it, 0, &fs[nf++]) == 0, "fiber_spawn");
      else {
        gpu[ng] = gpu_submit(b, it->index);
        CHECK(kiln_submit_after(b->pool, &gpu[ng], 1, follow_task, it, &fs[nf++]) == 0,
              "submit_after");
        ng++;
      }
    }
    uint32_t per = chains ? (indep + chains - 1) / chains : indep;
    for (uint32_t j = 0; j < per && ii < indep; j++) {
      item *it = &items[chains + ii];
      it->index = chains + ii++;
      CHECK(kiln_submit(b->pool, indep_task, it, &fs[nf++]) == 0, "submit");
    }
  }
  size_t ndone;
  CHECK(kiln_wait(fs, nf, KILN_ALL_COMPLETED, -1, &ndone) == 0, "wait");
  double wall = now() - t0;
  for (size_t i = 0; i < nf; i++) {
    CHECK(kiln_future_result(fs[i], 0, NULL) == 0, "a task failed");
    kiln_future_release(fs[i]);
  }
  for (size_t i = 0; i < ng; i++) kiln_future_release(gpu[i]);
  free(fs);
  figures f;
  f.items_per_s = total / wall;
  f.busy = (double)atomic_load(&b->work_ns) * 1e-9 / (WORKERS * wall);
  f.wait_ws = (double)atomic_load(&b->wait_ns) * 1e-9;
  f.max_flight = atomic_load(&b->max_in_flight);
  uint64_t s = atomic_load(&b->submits);
  f.mean_flight = s ? (double)atomic_load(&b->in_flight_sum) / (double)s : 0;
  return f;
}

static void on_log(void *arg, kiln_gpu_log_level level, const char *msg) {
  (void)arg;
  if (level >= KILN_GPU_LOG_WARN) fprintf(stderr, "kiln: %s\n", msg);
}

static void print_stat(const char *what, double *v, int n, double scale, const char *fmt) {
  double lo = v[0], hi = v[0];
  for (int i = 1; i < n; i++) lo = v[i] < lo ? v[i] : lo, hi = v[i] > hi ? v[i] : hi;
  double m = median(v, n);
  printf("    %-34s", what);
  printf(fmt, m * scale);
  printf(" (");
  printf(fmt, lo * scale);
  printf("..");
  printf(fmt, hi * scale);
  printf(")\n");
}

int main(int argc, char **argv) {
  const char *spec = NULL;
  int rounds = 7;
  uint32_t chains = 64, indep = 128, elements = 16384;
  double work_us = 200;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--device") && i + 1 < argc) spec = argv[++i];
    else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--chains") && i + 1 < argc) chains = (uint32_t)atoi(argv[++i]);
    else if (!strcmp(argv[i], "--indep") && i + 1 < argc) indep = (uint32_t)atoi(argv[++i]);
    else if (!strcmp(argv[i], "--work-us") && i + 1 < argc) work_us = atof(argv[++i]);
    else if (!strcmp(argv[i], "--elements") && i + 1 < argc) elements = (uint32_t)atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: kiln-bench-gpu-await [--device SPEC] [--rounds R] [--chains N] "
                      "[--indep M] [--work-us W] [--elements E]\n");
      return 2;
    }
  }
  CHECK(rounds > 0 && rounds <= MAX_ROUNDS && chains > 0 && chains <= 4096 && indep <= 1u << 20 &&
            elements > 0 && work_us > 0,
        "bad arguments");
  kiln_gpu_config gc;
  kiln_gpu_config_default(&gc);
  gc.log = on_log;
  kiln_gpu *gpu;
  CHECK(kiln_gpu_create(&gc, &gpu) == 0, "kiln_gpu_create");
  uint32_t idx;
  size_t n;
  CHECK(kiln_gpu_select(gpu, spec, &idx, 1, &n) == 0, "no device matches");
  kiln_gpu_device_config dc;
  kiln_gpu_device_config_default(&dc);
  dc.pipeline_cache = false;
  kiln_gpu_device *dev;
  CHECK(kiln_gpu_device_open(gpu, idx, &dc, &dev) == 0, "kiln_gpu_device_open");
  kiln_gpu_kernel_config kc;
  kiln_gpu_kernel_config_default(&kc);
  kc.builtin = "hash";
  kc.buffers = 2;
  kc.push_size = 8;
  bench b = {.elements = elements};
  CHECK(kiln_gpu_kernel_create(dev, &kc, &b.k) == 0, "kernel");
  CHECK(kiln_gpu_buffer_create(dev, 4ull * elements, &b.src) == 0, "buffer");
  b.dst = calloc(chains, sizeof *b.dst);
  CHECK(b.dst, "out of memory");
  for (uint32_t i = 0; i < chains; i++)
    CHECK(kiln_gpu_buffer_create(dev, 4ull * elements, &b.dst[i]) == 0, "buffer");
  kiln_pool_config pc;
  kiln_pool_config_default(&pc);
  pc.threads = WORKERS;
  CHECK(kiln_pool_create(&pc, &b.pool) == 0, "pool");

  /* calibrate the CPU work: iterations per microsecond, best of a few tries */
  double best = 0;
  for (int t = 0; t < 5; t++) {
    double t0 = now();
    atomic_fetch_add(&b.sink, spin(1u << 20, (uint64_t)t));
    double r = (1u << 20) / ((now() - t0) * 1e6);
    if (r > best) best = r;
  }
  b.spins = (uint64_t)(best * work_us);

  item *items = calloc(chains + indep, sizeof *items);
  CHECK(items, "out of memory");
  for (uint32_t i = 0; i < chains + indep; i++) items[i].b = &b;
  kiln_gpu_device_info di;
  kiln_gpu_device_get_info(dev, &di);
  double load[3] = {0};
  FILE *la = fopen("/proc/loadavg", "r");
  if (la) {
    if (fscanf(la, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3) load[0] = -1;
    fclose(la);
  }
  printf("kiln-bench-gpu-await: device %u (%s), %d workers, %d rounds; a round: %u GPU jobs "
         "(hash over %u elements) each followed by %.0f us of CPU work, and %u independent "
         "tasks of %.0f us; load average %.2f\n",
         idx, di.name, WORKERS, rounds, chains, elements, work_us, indep, work_us, load[0]);
  for (int v = 0; v < NVAR; v++) run_round(&b, v, chains, indep, items); /* warm-up */

  static const char *const names[NVAR] = {"A  block: task + kiln_future_result",
                                          "B  fiber: kiln_fiber_spawn + kiln_await",
                                          "C  after: kiln_submit_after (no wait)"};
  double thr[NVAR][MAX_ROUNDS], busy[NVAR][MAX_ROUNDS], waitws[NVAR][MAX_ROUNDS],
      maxf[NVAR][MAX_ROUNDS], meanf[NVAR][MAX_ROUNDS];
  for (int r = 0; r < rounds; r++)
    for (int v = 0; v < NVAR; v++) {
      int vv = (v + r) % NVAR; /* rotate the order, so none always goes first */
      figures f = run_round(&b, vv, chains, indep, items);
      thr[vv][r] = f.items_per_s, busy[vv][r] = f.busy, waitws[vv][r] = f.wait_ws;
      maxf[vv][r] = f.max_flight, meanf[vv][r] = f.mean_flight;
    }
  double med[NVAR];
  for (int v = 0; v < NVAR; v++) {
    printf("  %s\n", names[v]);
    double copy[MAX_ROUNDS];
    memcpy(copy, thr[v], sizeof copy);
    med[v] = median(copy, rounds);
    print_stat("items/s (wall)", thr[v], rounds, 1, "%.0f");
    print_stat("workers busy with CPU work (%)", busy[v], rounds, 100, "%.1f");
    if (v == 0) print_stat("worker-ms held in GPU waits", waitws[v], rounds, 1e3, "%.1f");
    print_stat("GPU jobs in flight, largest", maxf[v], rounds, 1, "%.0f");
    print_stat("GPU jobs in flight, mean", meanf[v], rounds, 1, "%.1f");
  }
  printf("  throughput B/A %.2fx, C/A %.2fx, B/C %.2fx (medians)\n", med[1] / med[0],
         med[2] / med[0], med[1] / med[2]);

  CHECK(kiln_pool_shutdown(b.pool, true, false) == 0, "shutdown");
  kiln_pool_destroy(b.pool);
  for (uint32_t i = 0; i < chains; i++) kiln_gpu_buffer_destroy(b.dst[i]);
  kiln_gpu_buffer_destroy(b.src);
  free(b.dst);
  free(items);
  kiln_gpu_kernel_destroy(b.k);
  kiln_gpu_device_close(dev);
  kiln_gpu_destroy(gpu);
  return 0;
}
