/* kiln-bench-batch: the batch pipeline (kiln/batch.h) against a naive serial loop over kiln's own
 * engine, peak memory against the number of frames, and PNG encoding of rendered frames against
 * stb_image_write. Every ratio is taken in one run.
 *
 *   kiln-bench-batch [--scene FILE] [--frames N] [--size S] [--spp N] [--memory] [--null]
 *                    [--slow-writes US,US,... [--rounds R] [--in-flight N]]
 *
 *   pipeline  N frames (default 1000) of an orbit of the scene (default examples/cornell/scene.json;
 *             the orbit of examples/cornell/orbit.json stretched over N frames) at SxS (default
 *             64) and the scene's spp (or --spp), colour PNG only, rendered and written by
 *             kiln_batch_run, against the naive loop: submit one frame, wait, convert, encode,
 *             write, next. Both on the same device, pool and job (the batch, as kiln render,
 *             opens a CPU device twice so that two frames render at once; the naive loop renders
 *             one at a time); images/s, the share of the cores busy, and the ratio.
 *   memory    (--memory) peak resident memory of a child process rendering 100 and then 10,000
 *             frames at 64x64, 1 spp (memory does not depend on spp), and their ratio.
 *   null      (also alone: --null) the ceiling the CPU side sets: the batch with the null kernel (an
 *             infinitely fast GPU: frames written without tracing) at 64x64, 256x256 and 512x512,
 *             colour PNG only, each size run 3 times in interleaved rounds; the median images/s and
 *             CPU milliseconds a frame (process CPU time over frames: conversion, encoding,
 *             writing, read-back and the pipeline itself), and the spread of the 3. --null with
 *             --size S runs that size alone (3000 frames up to 64x64, 600 up to 256x256, else 200).
 *             The runs' output folders are removed at the end, not between runs (see kept_dirs).
 *   slow writes (--slow-writes) instead of the above: the batch with every output write delayed
 *             by each of the given microseconds (the test hook KILN_TEST_WRITE_DELAY_US: slow
 *             shared storage), colour, depth and normal PNGs (3 files a frame), written one file
 *             after another by the worker (KILN_BATCH_WRITES=sync, as before the I/O engine)
 *             against the engine (every file of a frame at once) with the frame's writer a plain
 *             task that waits in kiln_future_result (async-task) and a pool fiber that waits
 *             without holding its worker (async, the default); then both with durable writes (an fsync
 *             per file, no hook: the disk's own latency). R rounds (default 3) interleaved;
 *             --in-flight N sets the batch's window of frames in flight (default: its own);
 *             frames/s, median (min..max), and CPU seconds a frame.
 *   png       one rendered 256x256 frame encoded as 8-bit sRGB PNG by libdeflate at level 1 (what
 *             the batch writes) and 6, and by stb_image_write: MB/s of input and file sizes (median of 30). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <stb_image_write.h>

#include "image_internal.h"
#include "bench_clock.h"
#include "batch_internal.h"
#include "kiln/batch.h"

static void die(const char *what, int rc) {
  fprintf(stderr, "kiln-bench-batch: %s: %s\n", what, kiln_strerror(rc));
  exit(1);
}

typedef struct env {
  kiln_pool *pool;
  kiln_gpu *gpu;
  kiln_gpu_device *dev;
  kiln_gpu_device *devs[2]; /* the batch's: dev, and dev again when it is a CPU device */
  size_t ndevs;
  kiln_job *job;
} env;

/* A job file (in a temporary folder) orbiting the scene over `frames` frames. */
static char *orbit_job(const char *scene, long frames) {
  char *abs = realpath(scene, NULL);
  if (!abs) {
    perror(scene);
    exit(1);
  }
  char *path = strdup("/tmp/kiln-bench-job-XXXXXX.json");
  int fd = mkstemps(path, 5);
  FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (!f) {
    perror("job file");
    exit(1);
  }
  fprintf(f,
          "{\"scene\": \"%s\", \"animation\": {\"frames\": {\"start\": 0, \"end\": %ld},\n"
          " \"camera\": {\"orbit\": {\"center\": [0.278, 0.273, 0.2796], \"start_angle\": 165,"
          " \"degrees\": 30, \"vfov\": 42}}}}\n",
          abs, frames - 1);
  fclose(f);
  free(abs);
  return path;
}

static void env_open(env *e, const char *job_path) {
  int rc;
  if ((rc = kiln_pool_create(NULL, &e->pool))) die("pool", rc);
  kiln_gpu_config gc;
  kiln_gpu_config_default(&gc);
  if ((rc = kiln_gpu_create(&gc, &e->gpu))) die("vulkan", rc);
  uint32_t idx;
  size_t n;
  if ((rc = kiln_gpu_select(e->gpu, "auto", &idx, 1, &n))) die("device", rc);
  if ((rc = kiln_gpu_device_open(e->gpu, idx, NULL, &e->dev))) die("device open", rc);
  /* as kiln render does: a CPU device (one queue) opened twice, so that two frames render at once */
  e->devs[0] = e->dev, e->ndevs = 1;
  kiln_gpu_device_info di;
  kiln_gpu_device_get_info(e->dev, &di);
  if (di.type == KILN_GPU_TYPE_CPU) {
    if ((rc = kiln_gpu_device_open(e->gpu, idx, NULL, &e->devs[1]))) die("device open", rc);
    e->ndevs = 2;
  }
  kiln_error_detail err;
  kiln_job_options jo = {NULL, e->pool};
  if ((rc = kiln_job_load(job_path, &jo, &err, &e->job))) {
    char m[1024];
    fprintf(stderr, "kiln-bench-batch: %s\n", kiln_error_detail_format(&err, m, sizeof m));
    exit(1);
  }
}

static void env_close(env *e) {
  kiln_job_destroy(e->job);
  if (e->ndevs > 1) kiln_gpu_device_close(e->devs[1]);
  kiln_gpu_device_close(e->dev);
  kiln_gpu_destroy(e->gpu);
  kiln_pool_destroy(e->pool);
}

static char *tmp_dir(void) {
  char *d = strdup("/tmp/kiln-bench-batch-XXXXXX");
  if (!mkdtemp(d)) {
    perror("mkdtemp");
    exit(1);
  }
  return d;
}

static void rm_rf(const char *d) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
  if (system(cmd) != 0) fprintf(stderr, "kiln-bench-batch: could not remove %s\n", d);
}

/* The batch: returns its wall time; *written the frames written. */
static size_t in_flight;    /* --in-flight: the batch's window (0: its default) */
static bool null_kernel_on; /* bench_null: the null kernel instead of the path tracer */

/* bench_null keeps every run's output folder until it ends (kept_dirs) instead of removing it
 * before the next run: on an ext4 without a journal the inode allocator skips every inode deleted
 * in the last minute (six while its inode table block is dirty), one by one, so thousands of
 * files created right after thousands were deleted cost several times more CPU in open(2), and
 * each run's figure depended on how many the run before it had just removed. */
enum { KEPT_MAX = 16 };
static char *kept_dirs[KEPT_MAX];
static int nkept;
static bool keep_outputs;

static void remove_kept(void) {
  for (int i = 0; i < nkept; i++) rm_rf(kept_dirs[i]), free(kept_dirs[i]);
  nkept = 0;
}

static double run_batch_with(env *e, long frames, int size, int spp, unsigned passes, bool durable,
                             uint64_t *written, kiln_batch_summary *s) {
  char *dir = tmp_dir();
  kiln_batch_config bc;
  kiln_batch_config_default(&bc);
  bc.pool = e->pool, bc.devs = e->devs, bc.ndevs = e->ndevs;
  bc.out_dir = dir;
  bc.passes = passes;
  bc.durable = durable;
  bc.in_flight = in_flight;
  bc.format = KILN_FORMAT_PNG;
  bc.first = 0, bc.last = frames - 1;
  bc.width = bc.height = size, bc.spp = spp;
  bc.output = passes == KILN_PASS_COLOR ? "{frame:06d}.{ext}" : "{frame:06d}_{pass}.{ext}";
  kiln_batch *b;
  kiln_error_detail err;
  int rc = kiln_batch_create(e->job, &bc, &b, &err);
  if (rc) {
    fprintf(stderr, "kiln-bench-batch: %s\n", err.message);
    exit(1);
  }
  if (null_kernel_on) kiln__batch_null_kernel(b);
  double t0 = now();
  rc = kiln_batch_run(b, s, &err);
  double t = now() - t0;
  if (rc || s->failed) {
    fprintf(stderr, "kiln-bench-batch: batch: %s (%llu failed)\n",
            rc ? err.message : "frames failed", (unsigned long long)s->failed);
    exit(1);
  }
  *written = s->written;
  kiln_batch_destroy(b);
  if (keep_outputs && nkept < KEPT_MAX) {
    kept_dirs[nkept++] = dir;
  } else {
    rm_rf(dir);
    free(dir);
  }
  return t;
}

static double run_batch(env *e, long frames, int size, int spp, uint64_t *written,
                        kiln_batch_summary *s) {
  return run_batch_with(e, frames, size, spp, KILN_PASS_COLOR, false, written, s);
}

static double run_batch_null(env *e, long frames, int size, int spp, uint64_t *written,
                             kiln_batch_summary *s) {
  null_kernel_on = true;
  double t = run_batch(e, frames, size, spp, written, s);
  null_kernel_on = false;
  return t;
}

static void print_spread(const char *what, double *v, int n, double cpu_per_frame) {
  double lo = v[0], hi = v[0];
  for (int i = 1; i < n; i++) lo = v[i] < lo ? v[i] : lo, hi = v[i] > hi ? v[i] : hi;
  printf("  %-44s %8.1f frames/s (%.1f..%.1f)  %.4f CPU s a frame\n", what, median(v, n), lo, hi,
         cpu_per_frame);
}

/* --slow-writes: sync against the engine under each delay, then with durable writes. */
static void bench_slow_writes(env *e, long frames, int size, int spp, const char *delays,
                              int rounds) {
  enum { MAXR = 21, MAXD = 8 };
  double d_us[MAXD];
  int nd = 0;
  for (const char *p = delays; *p && nd < MAXD;) {
    char *end;
    d_us[nd++] = strtod(p, &end);
    p = *end == ',' ? end + 1 : end;
    if (end == p && *p) break;
  }
  unsigned passes = KILN_PASS_COLOR | KILN_PASS_DEPTH | KILN_PASS_NORMAL;
  double load[3] = {0};
  if (getloadavg(load, 3) < 0) load[0] = -1;
  printf("slow writes: %ld frames of 3 PNGs (colour, depth, normal) at %dx%d, %d spp, %d "
         "rounds interleaved, %zu frames in flight%s, load average %.2f\n",
         frames, size, size, spp, rounds, in_flight, in_flight ? "" : " (0: the batch's default)",
         load[0]);
  for (int di = 0; di <= nd; di++) { /* di == nd: durable, no delay */
    bool durable = di == nd;
    char delay[32];
    snprintf(delay, sizeof delay, "%.0f", durable ? 0 : d_us[di]);
    setenv("KILN_TEST_WRITE_DELAY_US", delay, 1);
    static const char *const modes[3] = {"sync", "async-task", "async"};
    double fps[3][MAXR], cpu[3] = {0, 0, 0};
    for (int r = 0; r < rounds && r < MAXR; r++)
      for (int k = 0; k < 3; k++) {
        int m = (k + r) % 3; /* rotate which goes first */
        setenv("KILN_BATCH_WRITES", modes[m], 1);
        uint64_t w;
        kiln_batch_summary s;
        double c0 = cpu_now();
        double t = run_batch_with(e, frames, size, spp, passes, durable, &w, &s);
        cpu[m] += (cpu_now() - c0) / (double)w;
        fps[m][r] = (double)w / t;
      }
    int n = rounds < MAXR ? rounds : MAXR;
    double ms = 0, mt = 0, me = 0;
    char what[96];
    if (durable) printf(" durable (fsync per file and folder), no delay:\n");
    else printf(" every write delayed %.0f us:\n", d_us[di]);
    snprintf(what, sizeof what, "sync: one file after another, worker held");
    double copy[MAXR];
    memcpy(copy, fps[0], sizeof copy);
    ms = median(copy, n);
    print_spread(what, fps[0], n, cpu[0] / n);
    snprintf(what, sizeof what, "engine, writer a task: files at once");
    memcpy(copy, fps[1], sizeof copy);
    mt = median(copy, n);
    print_spread(what, fps[1], n, cpu[1] / n);
    snprintf(what, sizeof what, "engine, writer a fiber (the default)");
    memcpy(copy, fps[2], sizeof copy);
    me = median(copy, n);
    print_spread(what, fps[2], n, cpu[2] / n);
    printf("  fiber / sync %.2fx, task / sync %.2fx, fiber / task %.2fx\n", me / ms, mt / ms,
           me / mt);
  }
  unsetenv("KILN_TEST_WRITE_DELAY_US");
  unsetenv("KILN_BATCH_WRITES");
}

/* The naive loop: one frame at a time through the same engine. */
static double run_naive(env *e, long frames, int size, int spp, uint64_t *written) {
  char *dir = tmp_dir();
  kiln_renderer_config rcfg;
  kiln_renderer_config_default(&rcfg);
  rcfg.pool = e->pool;
  kiln_scene_info info;
  kiln_scene_get_info(kiln_job_scene(e->job), &info);
  double t0 = now();
  kiln_renderer *r;
  int rc = kiln_renderer_create(kiln_job_scene(e->job), &e->dev, 1, &rcfg, &r);
  if (rc) die("render_create", rc);
  kiln_job_rewind(e->job);
  kiln_job_frame fr;
  kiln_error_detail err;
  *written = 0;
  uint8_t *px = malloc((size_t)size * (size_t)size * 3);
  for (long i = 0; i < frames && kiln_job_next(e->job, &fr, &err) == 0; i++) {
    kiln_frame_config fc;
    kiln_frame_config_default(r, &fc);
    fc.camera = &fr.camera, fc.seed = fr.seed, fc.frame = (uint32_t)fr.frame;
    fc.width = fc.height = size, fc.spp = spp;
    kiln_future *f;
    if ((rc = kiln_renderer_submit(r, &fc, &f))) die("submit", rc);
    void *v;
    if ((rc = kiln_future_result(f, -1, &v))) die("render", rc);
    kiln_image_info ii;
    kiln_image_get_info(v, &ii);
    kiln__linear_to_srgb(ii.color, (size_t)size * (size_t)size, info.exposure, info.filmic,
                         KILN__PIX_U8, px);
    kiln__raster ras = {size, size, 3, KILN__PIX_U8, px, 0};
    void *png;
    size_t len;
    if ((rc = kiln__encode_png(&ras, 0, &png, &len))) die("encode", rc);
    char path[600];
    snprintf(path, sizeof path, "%s/%06ld.png", dir, fr.frame);
    if ((rc = kiln__write_atomic(path, png, len, false, NULL, 0))) die("write", rc);
    free(png);
    kiln_future_release(f);
    kiln_job_frame_clear(&fr);
    (*written)++;
  }
  double t = now() - t0;
  free(px);
  kiln_renderer_destroy(r);
  rm_rf(dir);
  free(dir);
  return t;
}

static void write_mem(void *ctx, void *data, int size) {
  (void)data;
  *(size_t *)ctx += (size_t)size;
}

static void bench_png(env *e) {
  kiln_renderer_config rcfg;
  kiln_renderer_config_default(&rcfg);
  rcfg.pool = e->pool;
  kiln_renderer *r;
  int rc = kiln_renderer_create(kiln_job_scene(e->job), &e->dev, 1, &rcfg, &r);
  if (rc) die("render_create", rc);
  kiln_frame_config fc;
  kiln_frame_config_default(r, &fc);
  fc.width = fc.height = 256, fc.spp = 16;
  kiln_future *f;
  void *v;
  if ((rc = kiln_renderer_submit(r, &fc, &f)) || (rc = kiln_future_result(f, -1, &v)))
    die("render", rc);
  size_t n = 256 * 256;
  uint8_t *px = malloc(n * 3);
  kiln_image_info ii;
  kiln_image_get_info(v, &ii);
  kiln__linear_to_srgb(ii.color, n, 0, false, KILN__PIX_U8, px);
  enum { REPS = 30 };
  double tk[REPS], t1[REPS], ts[REPS];
  size_t klen = 0, k1len = 0, slen = 0;
  for (int i = 0; i < REPS; i++) {
    kiln__raster ras = {256, 256, 3, KILN__PIX_U8, px, 0};
    void *png;
    double t0 = now();
    if ((rc = kiln__encode_png(&ras, 0, &png, &klen))) die("encode", rc);
    tk[i] = now() - t0;
    free(png);
    t0 = now();
    if ((rc = kiln__encode_png(&ras, 1, &png, &k1len))) die("encode", rc);
    t1[i] = now() - t0;
    free(png);
    slen = 0;
    t0 = now();
    stbi_write_png_to_func(write_mem, &slen, 256, 256, 3, px, 256 * 3);
    ts[i] = now() - t0;
  }
  qsort(tk, REPS, sizeof *tk, cmp_double);
  qsort(ts, REPS, sizeof *ts, cmp_double);
  qsort(t1, REPS, sizeof *t1, cmp_double);
  double mb = (double)(n * 3) / 1e6;
  printf("png (a rendered 256x256 16-spp frame, 8-bit sRGB, median of %d):\n", REPS);
  printf("  kiln, level 1       %8.1f MB/s  %7zu bytes  (what kiln render writes)\n",
         mb / t1[REPS / 2], k1len);
  printf("  kiln, level 6       %8.1f MB/s  %7zu bytes\n", mb / tk[REPS / 2], klen);
  printf("  stb_image_write     %8.1f MB/s  %7zu bytes\n", mb / ts[REPS / 2], slen);
  printf("  ratio kiln/stb      %8.2fx speed, %.2f size (level 1)\n", ts[REPS / 2] / t1[REPS / 2],
         (double)k1len / (double)slen);
  free(px);
  kiln_future_release(f);
  kiln_renderer_destroy(r);
}

/* Peak RSS of a child that renders `frames` frames at 64x64, 1 spp. */
static long child_peak_kib(const char *self, const char *job, long frames) {
  int fd[2];
  if (pipe(fd)) exit(1);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fd[1], 1);
    char n[32];
    snprintf(n, sizeof n, "%ld", frames);
    execl(self, self, "--child-memory", n, "--job", job, (char *)NULL);
    _exit(127);
  }
  close(fd[1]);
  char buf[64] = "";
  ssize_t k = read(fd[0], buf, sizeof buf - 1);
  close(fd[0]);
  int st;
  waitpid(pid, &st, 0);
  if (k <= 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
    fprintf(stderr, "kiln-bench-batch: memory child for %ld frames failed\n", frames);
    exit(1);
  }
  return atol(buf);
}

/* The CPU side's ceiling: the batch with the null kernel at three sizes, interleaved rounds; or
 * at only one size (only > 0: --null with --size, e.g. for a profiler). */
static void bench_null(env *e, int spp, int only) {
  enum { SIZES = 3, ROUNDS = 3 };
  int size[SIZES] = {64, 256, 512};
  long frames[SIZES] = {3000, 600, 200};
  int nsizes = SIZES;
  if (only > 0) {
    size[0] = only, frames[0] = only <= 64 ? 3000 : only <= 256 ? 600 : 200;
    nsizes = 1;
  }
  double rate[SIZES][ROUNDS], cpu_ms[SIZES][ROUNDS];
  keep_outputs = true;
  for (int r = 0; r < ROUNDS; r++)
    for (int k = 0; k < nsizes; k++) {
      uint64_t w;
      kiln_batch_summary s;
      double c0 = cpu_now();
      double t = run_batch_null(e, frames[k], size[k], spp, &w, &s);
      rate[k][r] = (double)w / t, cpu_ms[k][r] = 1e3 * (cpu_now() - c0) / (double)w;
    }
  keep_outputs = false;
  remove_kept();
  printf("null kernel (the CPU side's ceiling; colour PNG, %d spp; median of %d interleaved "
         "rounds, [min, max]):\n",
         spp, ROUNDS);
  for (int k = 0; k < nsizes; k++) {
    qsort(rate[k], ROUNDS, sizeof(double), cmp_double);
    qsort(cpu_ms[k], ROUNDS, sizeof(double), cmp_double);
    printf("  %3dx%-3d %6ld frames %9.1f images/s [%.1f, %.1f]  %7.3f CPU-ms/frame [%.3f, %.3f]\n",
           size[k], size[k], frames[k], rate[k][ROUNDS / 2], rate[k][0], rate[k][ROUNDS - 1],
           cpu_ms[k][ROUNDS / 2], cpu_ms[k][0], cpu_ms[k][ROUNDS - 1]);
  }
}

int main(int argc, char **argv) {
  const char *scene = "examples/cornell/scene.json";
  long frames = 1000, child = 0;
  int size = 64, spp = 0, size_given = 0;
  int memory = 0, rounds = 3, null_only = 0;
  const char *slow = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--scene") && i + 1 < argc) scene = argv[++i];
    else if (!strcmp(argv[i], "--job") && i + 1 < argc) scene = argv[++i]; /* the memory child */
    else if (!strcmp(argv[i], "--frames") && i + 1 < argc) frames = atol(argv[++i]);
    else if (!strcmp(argv[i], "--size") && i + 1 < argc) size = atoi(argv[++i]), size_given = 1;
    else if (!strcmp(argv[i], "--spp") && i + 1 < argc) spp = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--memory")) memory = 1;
    else if (!strcmp(argv[i], "--null")) null_only = 1;
    else if (!strcmp(argv[i], "--slow-writes") && i + 1 < argc) slow = argv[++i];
    else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--in-flight") && i + 1 < argc) in_flight = (size_t)atol(argv[++i]);
    else if (!strcmp(argv[i], "--child-memory") && i + 1 < argc) child = atol(argv[++i]);
    else {
      fprintf(
          stderr,
          "usage: kiln-bench-batch [--scene FILE] [--frames N] [--size S] [--spp N] [--memory] [--null]\n"
          "                        [--slow-writes US,US,... [--rounds R] [--in-flight N]]\n");
      return 2;
    }
  }
  long job_frames = memory && frames < 10000 ? 10000 : frames < 3000 ? 3000 : frames;
  char *job = child ? strdup(scene) : orbit_job(scene, job_frames);
  env e;
  env_open(&e, job);
  if (child) { /* --child-memory N: render N frames, print the peak RSS in KiB */
    kiln_batch_summary s;
    uint64_t w;
    run_batch(&e, child, 64, 1, &w, &s);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%ld\n", ru.ru_maxrss);
    env_close(&e);
    return w == (uint64_t)child ? 0 : 1;
  }
  kiln_scene_info info;
  kiln_scene_get_info(kiln_job_scene(e.job), &info);
  int s_spp = spp ? spp : info.spp;
  if (null_only) { /* --null: the CPU side's ceiling only */
    bench_null(&e, s_spp, size_given ? size : 0);
    env_close(&e);
    unlink(job);
    free(job);
    return 0;
  }
  if (slow) {
    bench_slow_writes(&e, frames, size, s_spp, slow, rounds > 0 ? rounds : 1);
    env_close(&e);
    unlink(job);
    free(job);
    return 0;
  }
  kiln_gpu_device_info di;
  kiln_gpu_device_get_info(e.dev, &di);
  printf(
      "kiln-bench-batch: an orbit of %s, %ld frames at %dx%d, %d spp, colour PNG, %d threads, device %s\n",
      scene, frames, size, size, s_spp, kiln_pool_threads(e.pool), di.name);
  uint64_t wn, wb;
  kiln_batch_summary s;
  double c0 = cpu_now();
  double tn = run_naive(&e, frames, size, s_spp, &wn);
  double c1 = cpu_now();
  double tb = run_batch(&e, frames, size, s_spp, &wb, &s);
  double c2 = cpu_now();
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  printf("pipeline:\n");
  printf("  naive serial loop   %8.2f s  %8.2f images/s  %5.2f of %ld cores busy\n", tn,
         (double)wn / tn, (c1 - c0) / tn, ncpu);
  printf(
      "  kiln batch          %8.2f s  %8.2f images/s  %5.2f of %ld cores busy  (first image after %.3f s%s)\n",
      tb, (double)wb / tb, (c2 - c1) / tb, ncpu, s.first_image_s,
      e.ndevs > 1 ? "; the CPU device opened twice, as kiln render does" : "");
  printf("  ratio batch/naive   %8.2fx  (CPU seconds a frame: naive %.4f, batch %.4f)\n", tn / tb,
         (c1 - c0) / (double)wn, (c2 - c1) / (double)wb);
  bench_png(&e);
  bench_null(&e, s_spp, 0);
  env_close(&e);
  if (memory) {
    long m100 = child_peak_kib(argv[0], job, 100), m10k = child_peak_kib(argv[0], job, 10000);
    printf("memory (peak RSS, 64x64, 1 spp):\n");
    printf("  100 frames          %8.1f MiB\n", (double)m100 / 1024.0);
    printf("  10000 frames        %8.1f MiB\n", (double)m10k / 1024.0);
    printf("  ratio               %8.3f\n", (double)m10k / (double)m100);
  }
  if (!child) unlink(job);
  free(job);
  return 0;
}
