/* kiln-bench-instances: a mesh placed 100 times, shared (one mesh, 100 placements: what the loader
 * does for a mesh file with 100 instances) against baked (100 mesh objects of one instance each:
 * 100 world-space copies, what the loader did for instances before meshes were shared).
 *
 *   kiln-bench-instances [triangles] [size] [spp]
 *
 * For a procedurally generated mesh of `triangles` (default 20,000) in a 10 x 10 grid: the loaded
 * scene's host bytes (its triangle arrays), the renderer's device buffer bytes
 * (kiln_gpu_device_stats.buffer_bytes), load and renderer-creation time (BVH build, packing,
 * upload); then a size x size frame (default 128) at spp (default 16) rendered by each, 3 frames
 * each taking turns (after a warm-up frame each), their median wall time and spread. Then the
 * shared scene alone with a mesh of 1,000,000 triangles (its baked form would be 100 million):
 * its memory, the CPU cost of a frame that moves its placements (a top level against a whole
 * BVH build, and the packing), and a frame. Prints one line per figure.
 *
 *   kiln-bench-instances variant [triangles] [frames]
 *
 * What a job's frame that moves the placements costs on the CPU, as the batch renders one: the
 * frame's scene loaded through the job's asset cache, then submitted as a variant of the job's
 * scene (BVH, packing, comparison with the job's buffers, uploads) to a renderer whose kernel
 * writes nothing (kiln__renderer_null_kernel: no tracing). The mesh (default 1,000,000
 * triangles) is placed 100 times; each frame rotates every placement a little. Prints the median
 * load, submit-to-done and total time of the frames (default 7) and the spread.
 *
 *   kiln-bench-instances one [triangles] [size] [spp] [reps]
 *
 * A mesh (default 100,000 triangles) placed once, filling most of the frame: shared (one mesh,
 * one placement: "share": true) against baked (copied into the world: the same object without
 * "share"). Memory and set-up as above, then a size x size frame at spp rendered by each,
 * reps times (default 5) taking turns after a warm-up, median and spread, with the mesh square to
 * the world's axes (turned 0 degrees about y) and turned 30 degrees (its baked copy's world-space
 * boxes then fit it less well); then the variant run above for each, the one placement rotated a
 * little per frame (7 frames). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_clock.h"
#include "kiln/gpu.h"
#include "kiln/render.h"
#include "kiln/scene.h"
#include "render_internal.h"

/* A binary PLY of a grid of about n triangles with a ripple, in [0, 0.8]^2 of y = 0. */
static int write_ply(const char *path, size_t n) {
  int q = (int)sqrt((double)n / 2);
  if (q < 1) q = 1;
  FILE *f = fopen(path, "wb");
  if (!f) return 1;
  fprintf(f,
          "ply\nformat binary_little_endian 1.0\nelement vertex %d\nproperty float x\n"
          "property float y\nproperty float z\nelement face %d\n"
          "property list uchar int vertex_indices\nend_header\n",
          (q + 1) * (q + 1), 2 * q * q);
  for (int j = 0; j <= q; j++)
    for (int i = 0; i <= q; i++) {
      float v[3] = {0.8f * (float)i / (float)q,
                    0.05f * sinf((float)i * 12.0f / (float)q) * cosf((float)j * 9.0f / (float)q),
                    0.8f * (float)j / (float)q};
      fwrite(v, 4, 3, f);
    }
  for (int j = 0; j < q; j++)
    for (int i = 0; i < q; i++) {
      int32_t a = j * (q + 1) + i, b = a + 1, c = a + q + 1, d = c + 1;
      unsigned char three = 3;
      int32_t t0[3] = {a, c, b}, t1[3] = {b, c, d};
      fwrite(&three, 1, 1, f), fwrite(t0, 4, 3, f);
      fwrite(&three, 1, 1, f), fwrite(t1, 4, 3, f);
    }
  return fclose(f) != 0;
}

/* The scene JSON of the mesh file placed n times: shared (one object, n instances; with n 1,
 * "share": true) or baked (n objects of one instance), each placement rotated turn degrees more
 * about y than with 0. malloc'd. */
static char *scene_json_placed(const char *ply, int n, bool shared, int size, int spp, int turn) {
  size_t cap = 64 * 1024;
  char *j = malloc(cap), *w = j;
  w += sprintf(w,
               "{\"settings\": {\"width\": %d, \"height\": %d, \"spp\": %d, \"max_bounces\": 3},\n"
               " \"camera\": {\"position\": [0, 9, -9], \"look_at\": [0, 0, 0], \"vfov\": 50},\n"
               " \"materials\": {\"m\": {\"type\": \"diffuse\", \"albedo\": [0.7, 0.6, 0.5]}},\n"
               " \"lights\": [{\"type\": \"quad\", \"corner\": [-2, 8, -2], \"u\": [4, 0, 0],"
               " \"v\": [0, 0, 4], \"radiance\": [4, 4, 4]}],\n"
               " \"environment\": {\"type\": \"constant\", \"color\": [0.2, 0.2, 0.25]},\n"
               " \"objects\": [",
               size, size, spp);
  if (shared)
    w += sprintf(w,
                 "{\"type\": \"mesh\", \"file\": \"%s\", \"material\": \"m\",%s \"instances\": [",
                 ply, n == 1 ? " \"share\": true," : "");
  for (int k = 0; k < n; k++) {
    const char *sep = k ? ", " : "";
    char xf[160];
    if (n == 1) /* alone: the mesh scaled to fill the frame */
      snprintf(xf, sizeof xf, "{\"translate\": [-4, 0, -4], \"scale\": 10, \"rotate\": [0, %d, 0]}",
               turn % 360);
    else
      snprintf(xf, sizeof xf, "{\"translate\": [%d, 0, %d], \"rotate\": [0, %d, 0]}", k % 10 - 5,
               k / 10 - 5, (37 * k + turn) % 360);
    if (shared) w += sprintf(w, "%s%s", sep, xf);
    else
      w += sprintf(
          w, "%s{\"type\": \"mesh\", \"file\": \"%s\", \"material\": \"m\", \"transform\": %s}",
          sep, ply, xf);
  }
  sprintf(w, "%s]}\n", shared ? "]}" : "");
  return j;
}

static char *scene_json_turned(const char *ply, bool shared, int size, int spp, int turn) {
  return scene_json_placed(ply, 100, shared, size, spp, turn);
}

static char *scene_json(const char *ply, bool shared, int size, int spp) {
  return scene_json_turned(ply, shared, size, spp, 0);
}

/* The bytes of s's triangle arrays: the flat ones and the shared meshes'. */
static size_t host_bytes(const kiln__scene *s) {
  size_t per = 9 + (s->nrm ? 9 : 0) + (s->uv ? 6 : 0) + (s->col ? 9 : 0) + (s->tan ? 12 : 0);
  size_t b = s->ntris * (per * 4 + 12);
  for (size_t m = 0; m < s->nmeshes; m++) {
    const kiln__shared_mesh *q = &s->meshes[m];
    size_t pm = 9 + (q->nrm ? 9 : 0) + (q->uv ? 6 : 0) + (q->col ? 9 : 0) + (q->tan ? 12 : 0);
    b += q->ntris * (pm * 4 + 12);
  }
  return b + s->nplacements * sizeof *s->placements;
}

typedef struct side {
  const char *name;
  kiln_scene *scene;
  kiln_renderer *r;
  double load_s, create_s;
  uint64_t device_bytes;
} side;

static int open_side(side *sd, const char *name, const char *json, const char *dir,
                     kiln_gpu_device *dev) {
  sd->name = name;
  kiln_error_detail e;
  double t0 = now();
  if (kiln_scene_load_string(json, dir, "bench.json", &e, &sd->scene)) {
    char m[1024];
    fprintf(stderr, "load: %s\n", kiln_error_detail_format(&e, m, sizeof m));
    return 1;
  }
  double t1 = now();
  kiln_gpu_device_stats a, b;
  kiln_gpu_device_get_stats(dev, &a);
  if (kiln_renderer_create(sd->scene, &dev, 1, NULL, &sd->r)) return 1;
  double t2 = now();
  kiln_gpu_device_get_stats(dev, &b);
  sd->load_s = t1 - t0, sd->create_s = t2 - t1;
  sd->device_bytes = b.buffer_bytes - a.buffer_bytes;
  const kiln__scene *s = &((const struct kiln_scene *)sd->scene)->data;
  printf("%-7s %zu triangles rendered (%zu in the world's arrays, %zu meshes, %zu placements): "
         "host %.1f MiB, device %.1f MiB, load %.2f s, renderer %.2f s\n",
         name, kiln__scene_triangles(s), s->ntris, s->nmeshes, s->nplacements,
         (double)host_bytes(s) / 1048576.0, (double)sd->device_bytes / 1048576.0, sd->load_s,
         sd->create_s);
  return 0;
}

static double frame(side *sd) {
  kiln_frame_config fc;
  kiln_frame_config_default(sd->r, &fc);
  kiln_future *f = NULL;
  double t0 = now();
  if (kiln_renderer_submit(sd->r, &fc, &f)) return -1;
  int rc = kiln_future_result(f, -1, NULL);
  double t = now() - t0;
  kiln_future_release(f);
  return rc ? -1 : t;
}

/* kiln-bench-instances variant: see the top of the file; n placements (100, or 1 for the mode
 * `one`), shared or baked (scene_json_placed), label names the run in its line. */
static int bench_variant(size_t ntris, int frames, int n, const char *label, bool shared,
                         kiln_gpu_device *dev, const char *dir) {
  if (frames < 1) {
    fprintf(stderr, "variant: the frame count must be at least 1\n");
    return 1;
  }
  char ply[600];
  snprintf(ply, sizeof ply, "%s/variant.ply", dir);
  if (write_ply(ply, ntris)) return 1;
  kiln__asset_cache *cache = NULL;
  kiln_scene *job = NULL;
  kiln_renderer *r = NULL;
  kiln_error_detail e;
  char *js = scene_json_placed("variant.ply", n, shared, 64, 1, 0);
  kiln_renderer_config cfg;
  kiln_renderer_config_default(&cfg);
  cfg.scene_variants = true;
  int rc = kiln__asset_cache_create(&cache);
  if (!rc) rc = kiln__scene_load_string_cached(js, dir, "job.json", NULL, cache, &e, &job);
  if (!rc) rc = kiln_renderer_create(job, &dev, 1, &cfg, &r);
  if (!rc) rc = kiln__renderer_null_kernel(r);
  free(js);
  double *tl = calloc((size_t)frames, sizeof *tl), *ts = calloc((size_t)frames, sizeof *ts),
         *tt = calloc((size_t)frames, sizeof *tt);
  if (!rc && (!tl || !ts || !tt)) rc = KILN_ENOMEM;
  for (int i = 0; !rc && i <= frames; i++) { /* frame 0: warm-up */
    char *jv = scene_json_placed("variant.ply", n, shared, 64, 1, 1 + i);
    kiln_scene *v = NULL;
    kiln_frame_config fc;
    kiln_future *f = NULL;
    double t0 = now();
    rc = kiln__scene_load_string_cached(jv, dir, "frame.json", NULL, cache, &e, &v);
    double t1 = now();
    if (!rc) kiln_frame_config_default(r, &fc), rc = kiln_renderer_submit_scene(r, v, &fc, &f);
    if (!rc) rc = kiln_future_result(f, -1, NULL);
    double t2 = now();
    kiln_future_release(f);
    kiln_scene_destroy(v);
    double t3 = now();
    free(jv);
    if (i) tl[i - 1] = t1 - t0, ts[i - 1] = t2 - t1, tt[i - 1] = t3 - t0;
  }
  if (!rc) {
    kiln__variant_stats st;
    kiln__renderer_variant_stats(r, &st);
    double lo = tt[0], hi = tt[0];
    for (int i = 1; i < frames; i++) lo = fmin(lo, tt[i]), hi = fmax(hi, tt[i]);
    printf("%s %zu-triangle mesh x %d, placements moved: load %.4f s, submit to done "
           "%.4f s, frame %.4f s (median of %d; frame min %.4f, max %.4f); %llu BVH builds, "
           "%llu top levels, %llu buffers, %.1f MiB uploaded\n",
           label, ntris, n, median(tl, frames), median(ts, frames), median(tt, frames), frames, lo,
           hi, (unsigned long long)st.bvh_builds, (unsigned long long)st.top_builds,
           (unsigned long long)st.buffers_uploaded, (double)st.bytes_uploaded / 1048576.0);
  } else {
    fprintf(stderr, "variant: %s\n", kiln_strerror(rc));
  }
  free(tl), free(ts), free(tt);
  kiln_renderer_destroy(r);
  kiln_scene_destroy(job);
  kiln__asset_cache_destroy(cache);
  remove(ply);
  return rc != 0;
}

static int bench_one_render(size_t ntris, int size, int spp, int reps, int turn,
                            kiln_gpu_device *dev, const char *dir);

/* kiln-bench-instances one: see the top of the file. */
static int bench_one(size_t ntris, int size, int spp, int reps, kiln_gpu_device *dev,
                     const char *dir) {
  char ply[600];
  snprintf(ply, sizeof ply, "%s/one.ply", dir);
  if (reps < 1 || write_ply(ply, ntris)) return 1;
  for (int turn = 0; turn <= 30; turn += 30) {
    int rc = bench_one_render(ntris, size, spp, reps, turn, dev, dir);
    if (rc) return rc;
  }
  remove(ply);
  int rc = 0;
  static const char *const names[2] = {"shared", "baked"};
  for (int k = 0; k < 2 && !rc; k++) rc = bench_variant(ntris, 7, 1, names[k], k == 0, dev, dir);
  return rc;
}

/* The render half of kiln-bench-instances one: the mesh (dir/one.ply) turned turn degrees about
 * y, shared against baked. */
static int bench_one_render(size_t ntris, int size, int spp, int reps, int turn,
                            kiln_gpu_device *dev, const char *dir) {
  char *js[2] = {scene_json_placed("one.ply", 1, true, size, spp, turn),
                 scene_json_placed("one.ply", 1, false, size, spp, turn)};
  side sides[2] = {{0}};
  static const char *const names[2] = {"shared", "baked"};
  int rc = 0;
  for (int k = 0; k < 2 && !rc; k++) rc = open_side(&sides[k], names[k], js[k], dir, dev);
  double *t[2] = {calloc((size_t)reps, sizeof(double)), calloc((size_t)reps, sizeof(double))};
  if (!rc && (!t[0] || !t[1])) rc = 1;
  for (int k = 0; k < 2 && !rc; k++) frame(&sides[k]); /* warm-up: the kernel compiled */
  for (int rep = 0; rep < reps && !rc; rep++)
    for (int j = 0; j < 2; j++) { /* taking turns, each first every other rep */
      int k = (j + rep) % 2;
      t[k][rep] = frame(&sides[k]);
    }
  for (int k = 0; k < 2 && !rc; k++) {
    double lo = t[k][0], hi = t[k][0];
    for (int i = 1; i < reps; i++) lo = fmin(lo, t[k][i]), hi = fmax(hi, t[k][i]);
    printf("%-7s %zu-triangle mesh placed once, turned %d degrees, %dx%d at %d spp: median "
           "%.4f s of %d (min %.4f, max %.4f)\n",
           sides[k].name, ntris, turn, size, size, spp, median(t[k], reps), reps, lo, hi);
  }
  free(t[0]), free(t[1]);
  for (int k = 0; k < 2; k++) kiln_renderer_destroy(sides[k].r), kiln_scene_destroy(sides[k].scene);
  free(js[0]), free(js[1]);
  return rc;
}

int main(int argc, char **argv) {
  bool variant = argc > 1 && strcmp(argv[1], "variant") == 0;
  bool one = argc > 1 && strcmp(argv[1], "one") == 0;
  if (variant || one) argc--, argv++;
  size_t ntris = argc > 1 ? (size_t)atol(argv[1]) : 20000;
  int size = argc > 2 ? atoi(argv[2]) : 128, spp = argc > 3 ? atoi(argv[3]) : 16;
  char dir[] = "/tmp/kiln-bench-inst-XXXXXX";
  if (!mkdtemp(dir)) return 1;
  char ply[600], big[600];
  snprintf(ply, sizeof ply, "%s/mesh.ply", dir);
  snprintf(big, sizeof big, "%s/big.ply", dir);
  kiln_gpu *gpu = NULL;
  kiln_gpu_device *dev = NULL;
  kiln_gpu_config gc;
  kiln_gpu_config_default(&gc);
  uint32_t idx;
  size_t nd;
  if (kiln_gpu_create(&gc, &gpu) || kiln_gpu_select(gpu, "auto", &idx, 1, &nd) || nd != 1 ||
      kiln_gpu_device_open(gpu, idx, NULL, &dev)) {
    fprintf(stderr, "no device\n");
    return 1;
  }
  if (variant) {
    int vrc = bench_variant(argc > 1 ? (size_t)atol(argv[1]) : 1000000,
                            argc > 2 ? atoi(argv[2]) : 7, 100, "variant", true, dev, dir);
    kiln_gpu_device_close(dev);
    kiln_gpu_destroy(gpu);
    rmdir(dir);
    return vrc;
  }
  if (one) {
    int orc = bench_one(argc > 1 ? (size_t)atol(argv[1]) : 100000, size, spp,
                        argc > 4 ? atoi(argv[4]) : 5, dev, dir);
    kiln_gpu_device_close(dev);
    kiln_gpu_destroy(gpu);
    rmdir(dir);
    return orc;
  }
  if (write_ply(ply, ntris) || write_ply(big, 1000000)) return 1;
  char *js = scene_json("mesh.ply", true, size, spp),
       *jb = scene_json("mesh.ply", false, size, spp);
  side sides[2] = {{0}};
  if (open_side(&sides[0], "shared", js, dir, dev) || open_side(&sides[1], "baked", jb, dir, dev))
    return 1;
  enum { REPS = 3 };
  double t[2][REPS];
  for (int k = 0; k < 2; k++) frame(&sides[k]); /* warm-up: the kernel compiled */
  for (int rep = 0; rep < REPS; rep++)
    for (int k = 0; k < 2; k++) t[k][rep] = frame(&sides[k]);
  for (int k = 0; k < 2; k++) {
    double lo = t[k][0], hi = t[k][0];
    for (int i = 1; i < REPS; i++) lo = fmin(lo, t[k][i]), hi = fmax(hi, t[k][i]);
    printf("%-7s %dx%d at %d spp: median %.3f s of %d (min %.3f, max %.3f)\n", sides[k].name, size,
           size, spp, median(t[k], REPS), REPS, lo, hi);
  }
  for (int k = 0; k < 2; k++) kiln_renderer_destroy(sides[k].r), kiln_scene_destroy(sides[k].scene);
  free(js), free(jb);
  char *jl = scene_json("big.ply", true, size, spp);
  side large = {0};
  int rc = open_side(&large, "shared", jl, dir, dev);
  if (!rc) {
    /* what a frame that moves the placements costs on the CPU (variant.c): a top level instead
     * of a whole build, then the packing every variant frame does */
    const kiln__scene *d = &((const struct kiln_scene *)large.scene)->data;
    kiln__bvh full, top;
    kiln__render_buffers p;
    double t0 = now();
    rc = kiln__bvh_build(NULL, d, &full);
    double t1 = now();
    if (!rc) rc = kiln__bvh_build_top(&full, d, &top);
    double t2 = now();
    if (!rc) rc = kiln__render_pack(d, &top, &p);
    double t3 = now();
    if (!rc) {
      printf("shared  1M-triangle mesh x 100: whole BVH %.3f s, top level alone %.6f s, "
             "packing %.3f s (1 thread)\n",
             t1 - t0, t2 - t1, t3 - t2);
      kiln__render_pack_free(&p);
      kiln__bvh_free(&top);
      kiln__bvh_free(&full);
    }
  }
  if (!rc) {
    frame(&large);
    printf("shared  1M-triangle mesh x 100, %dx%d at %d spp: %.3f s (one frame after a warm-up)\n",
           size, size, spp, frame(&large));
  }
  kiln_renderer_destroy(large.r), kiln_scene_destroy(large.scene);
  free(jl);
  kiln_gpu_device_close(dev);
  kiln_gpu_destroy(gpu);
  remove(ply), remove(big), rmdir(dir);
  return rc;
}
