/* kiln-bench-batch: the batch pipeline (kiln/batch.h) against a naive serial loop over kiln's own
 * engine, peak memory against the number of frames, and PNG encoding of rendered frames against
 * stb_image_write. Every ratio is taken in one run.
 *
 *   kiln-bench-batch [--scene FILE] [--frames N] [--size S] [--spp N] [--memory] [--null]
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
 *             writing, read-back and the pipeline itself), and the spread of the 3.
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

#include "batch_internal.h"
#include "image_internal.h"
#include "bench_clock.h"
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
static double run_batch_null(env *e, long frames, int size, int spp, uint64_t *written,
                             kiln_batch_summary *s, bool null_kernel);

static double run_batch(env *e, long frames, int size, int spp, uint64_t *written,
                        kiln_batch_summary *s) {
  return run_batch_null(e, frames, size, spp, written, s, false);
}

static double run_batch_null(env *e, long frames, int size, int spp, uint64_t *written,
                             kiln_batch_summary *s, bool null_kernel) {
  char *dir = tmp_dir();
  kiln_batch_config bc;
  kiln_batch_config_default(&bc);
  bc.pool = e->pool, bc.devs = e->devs, bc.ndevs = e->ndevs;
  bc.out_dir = dir;
  bc.passes = KILN_PASS_COLOR;
  bc.format = KILN_FORMAT_PNG;
  bc.first = 0, bc.last = frames - 1;
  bc.width = bc.height = size, bc.spp = spp;
  bc.output = "{frame:06d}.{ext}";
  kiln_batch *b;
  kiln_error_detail err;
  int rc = kiln_batch_create(e->job, &bc, &b, &err);
  if (rc) {
    fprintf(stderr, "kiln-bench-batch: %s\n", err.message);
    exit(1);
  }
  if (null_kernel) kiln__batch_null_kernel(b);
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
  rm_rf(dir);
  free(dir);
  return t;
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

/* The CPU side's ceiling: the batch with the null kernel at three sizes, interleaved rounds. */
static void bench_null(env *e, int spp) {
  enum { SIZES = 3, ROUNDS = 3 };
  static const int size[SIZES] = {64, 256, 512};
  static const long frames[SIZES] = {3000, 600, 200};
  double rate[SIZES][ROUNDS], cpu_ms[SIZES][ROUNDS];
  for (int r = 0; r < ROUNDS; r++)
    for (int k = 0; k < SIZES; k++) {
      uint64_t w;
      kiln_batch_summary s;
      double c0 = cpu_now();
      double t = run_batch_null(e, frames[k], size[k], spp, &w, &s, true);
      rate[k][r] = (double)w / t, cpu_ms[k][r] = 1e3 * (cpu_now() - c0) / (double)w;
    }
  printf("null kernel (the CPU side's ceiling; colour PNG, %d spp; median of %d interleaved "
         "rounds, [min, max]):\n",
         spp, ROUNDS);
  for (int k = 0; k < SIZES; k++) {
    qsort(rate[k], ROUNDS, sizeof(double), cmp_double);
    qsort(cpu_ms[k], ROUNDS, sizeof(double), cmp_double);
    printf("  %3dx%-3d %6ld frames %9.1f images/s [%.1f, %.1f]  %7.3f CPU-ms/frame [%.3f, %.3f]\n",
           size[k], size[k], frames[k], rate[k][ROUNDS / 2], rate[k][0], rate[k][ROUNDS - 1],
           cpu_ms[k][ROUNDS / 2], cpu_ms[k][0], cpu_ms[k][ROUNDS - 1]);
  }
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

int main(int argc, char **argv) {
  const char *scene = "examples/cornell/scene.json";
  long frames = 1000, child = 0;
  int size = 64, spp = 0;
  int memory = 0, null_only = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--scene") && i + 1 < argc) scene = argv[++i];
    else if (!strcmp(argv[i], "--job") && i + 1 < argc) scene = argv[++i]; /* the memory child */
    else if (!strcmp(argv[i], "--frames") && i + 1 < argc) frames = atol(argv[++i]);
    else if (!strcmp(argv[i], "--size") && i + 1 < argc) size = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--spp") && i + 1 < argc) spp = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--memory")) memory = 1;
    else if (!strcmp(argv[i], "--null")) null_only = 1;
    else if (!strcmp(argv[i], "--child-memory") && i + 1 < argc) child = atol(argv[++i]);
    else {
      fprintf(
          stderr,
          "usage: kiln-bench-batch [--scene FILE] [--frames N] [--size S] [--spp N] [--memory] [--null]\n");
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
    bench_null(&e, s_spp);
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
  bench_null(&e, s_spp);
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
