/* kiln-bench-render: render-only throughput of the Cornell box (examples/cornell) in samples/s and
 * images/s at 64x64, 256x256 and 512x512; BVH build time of a procedurally generated
 * 1,000,000-triangle mesh with 1 and 2 threads; CPU traversal speed on it (rays/s).
 *
 *   kiln-bench-render [path/to/examples/cornell/scene.json] [spp]
 *
 * Timings are wall clock of one frame after a warm-up frame (the kernel compiled, buffers
 * allocated). Then the 256x256 frame once per kiln_renderer_scene_memory (where the shader reads
 * the small scene from): the median wall and process CPU time of 3 frames each, the modes taking
 * turns frame by frame so that a change in the machine's load falls on all of them. Prints one
 * line per figure. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_clock.h"
#include "render_internal.h"
#include "kiln/gpu.h"
#include "kiln/render.h"
#include "kiln/scene.h"

/* The 256x256 frame with the scene read from each kind of memory, interleaved. */
static int bench_scene_memory(const kiln_scene *scene, kiln_gpu_device *dev, int spp) {
  enum { MODES = 4, REPS = 3 };
  static const kiln_renderer_scene_memory mode[MODES] = {
      KILN_RENDERER_SCENE_STORAGE, KILN_RENDERER_SCENE_SHARED, KILN_RENDERER_SCENE_UNIFORM,
      KILN_RENDERER_SCENE_TEXEL};
  static const char *const name[MODES] = {"storage buffers", "shared memory", "uniform buffer",
                                          "texel buffers"};
  kiln_renderer *r[MODES];
  double wall[MODES][REPS + 1], cpu[MODES][REPS + 1];
  for (int m = 0; m < MODES; m++) {
    kiln_renderer_config rc;
    kiln_renderer_config_default(&rc);
    rc.scene_memory = mode[m];
    if (kiln_renderer_create(scene, &dev, 1, &rc, &r[m])) return 1;
  }
  for (int rep = 0; rep <= REPS; rep++) /* rep 0 warms up */
    for (int m = 0; m < MODES; m++) {
      kiln_frame_config fc;
      kiln_frame_config_default(r[m], &fc);
      fc.width = fc.height = 256, fc.spp = spp;
      kiln_future *f;
      double t0 = now(), c0 = cpu_now();
      if (kiln_renderer_submit(r[m], &fc, &f) || kiln_future_result(f, -1, NULL)) return 1;
      wall[m][rep] = now() - t0, cpu[m][rep] = cpu_now() - c0;
      kiln_future_release(f);
    }
  for (int m = 0; m < MODES; m++) {
    qsort(wall[m] + 1, REPS, sizeof(double), cmp_double);
    qsort(cpu[m] + 1, REPS, sizeof(double), cmp_double);
    printf(
        "cornell 256x256, %d spp, scene in %-16s %.3f s/image, %.3f CPU-s/image (median of %d)\n",
        spp, name[m], wall[m][1 + REPS / 2], cpu[m][1 + REPS / 2], REPS);
    kiln_renderer_destroy(r[m]);
  }
  return 0;
}

static uint32_t lcg(uint32_t *s) {
  *s = *s * 1664525u + 1013904223u;
  return *s >> 8;
}
static float frand(uint32_t *s) { return (float)lcg(s) / 16777216.0f; }

static int bench_bvh(void) {
  size_t n = 1000000;
  kiln__scene s = {0};
  s.ntris = n;
  s.pos = malloc(9 * n * sizeof(float));
  if (!s.pos) return 1;
  uint32_t st = 1;
  for (size_t i = 0; i < n; i++) { /* small triangles scattered through the unit cube */
    float c[3] = {frand(&st), frand(&st), frand(&st)};
    for (int v = 0; v < 3; v++)
      for (int k = 0; k < 3; k++) s.pos[9 * i + 3 * v + k] = c[k] + 0.01f * (frand(&st) - 0.5f);
  }
  kiln__bvh b = {0};
  for (int threads = 1; threads <= 2; threads++) {
    kiln_pool_config pc;
    kiln_pool_config_default(&pc);
    pc.threads = threads;
    kiln_pool *pool;
    if (kiln_pool_create(&pc, &pool)) return 1;
    kiln__bvh_free(&b);
    double t0 = now();
    int rc = kiln__bvh_build(pool, &s, &b);
    double t1 = now();
    kiln_pool_destroy(pool);
    if (rc) return 1;
    printf("bvh build 1M triangles, %d thread%s: %.3f s (%zu nodes)\n", threads,
           threads > 1 ? "s" : "", t1 - t0, b.nnodes);
  }
  size_t rays = 200000, hits = 0;
  double t0 = now();
  for (size_t r = 0; r < rays; r++) {
    float o[3] = {frand(&st) * 3 - 1, frand(&st) * 3 - 1, -1}, d[3];
    for (int k = 0; k < 3; k++) d[k] = frand(&st) - o[k];
    float t = 1e30f;
    uint32_t p;
    hits += kiln__bvh_intersect(&b, &s, o, d, 0, &t, &p);
  }
  double t1 = now();
  printf("cpu traversal (closest hit, 1 thread): %.0f rays/s (%zu of %zu hit)\n",
         (double)rays / (t1 - t0), hits, rays);
  kiln__bvh_free(&b);
  kiln__scene_free(&s);
  return 0;
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : "examples/cornell/scene.json";
  int spp = argc > 2 ? atoi(argv[2]) : 16;
  kiln_scene *scene;
  kiln_error_detail err;
  if (kiln_scene_load(path, &err, &scene)) {
    char buf[512];
    fprintf(stderr, "kiln-bench-render: %s\n", kiln_error_detail_format(&err, buf, sizeof buf));
    return 1;
  }
  kiln_gpu *gpu;
  kiln_gpu_config gc;
  kiln_gpu_config_default(&gc);
  uint32_t idx;
  size_t nd;
  kiln_gpu_device *dev;
  kiln_renderer *r;
  if (kiln_gpu_create(&gc, &gpu) || kiln_gpu_select(gpu, "auto", &idx, 1, &nd) || nd != 1 ||
      kiln_gpu_device_open(gpu, idx, NULL, &dev) ||
      kiln_renderer_create(scene, &dev, 1, NULL, &r)) {
    fprintf(stderr, "kiln-bench-render: no usable Vulkan device or renderer\n");
    return 1;
  }
  kiln_gpu_device_info di;
  kiln_gpu_device_get_info(dev, &di);
  printf("device: %s\n", di.name);
  const int sizes[3] = {64, 256, 512};
  for (int i = 0; i < 3; i++) {
    kiln_frame_config fc;
    kiln_frame_config_default(r, &fc);
    fc.width = fc.height = sizes[i];
    fc.spp = spp;
    double t = 0;
    for (int rep = 0; rep < 2; rep++) { /* rep 0 warms up */
      kiln_future *f;
      double t0 = now();
      if (kiln_renderer_submit(r, &fc, &f) || kiln_future_result(f, -1, NULL)) {
        fprintf(stderr, "kiln-bench-render: frame failed\n");
        return 1;
      }
      t = now() - t0;
      kiln_future_release(f);
    }
    double samples = (double)sizes[i] * sizes[i] * spp;
    printf("cornell %dx%d, %d spp: %.3f s/image, %.2f images/s, %.3g samples/s\n", sizes[i],
           sizes[i], spp, t, 1 / t, samples / t);
  }
  kiln_renderer_destroy(r);
  if (bench_scene_memory(scene, dev, spp)) {
    fprintf(stderr, "kiln-bench-render: a frame failed\n");
    return 1;
  }
  kiln_gpu_device_close(dev);
  kiln_gpu_destroy(gpu);
  kiln_scene_destroy(scene);
  return bench_bvh();
}
