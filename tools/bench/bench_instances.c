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
 * BVH build, and the packing), and a frame. Prints one line per figure. */
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

/* The scene JSON of the mesh file placed 100 times: shared (one object, 100 instances) or baked
 * (100 objects of one instance). malloc'd. */
static char *scene_json(const char *ply, bool shared, int size, int spp) {
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
    w += sprintf(w, "{\"type\": \"mesh\", \"file\": \"%s\", \"material\": \"m\", \"instances\": [",
                 ply);
  for (int k = 0; k < 100; k++) {
    const char *sep = k ? ", " : "";
    char xf[160];
    snprintf(xf, sizeof xf, "{\"translate\": [%d, 0, %d], \"rotate\": [0, %d, 0]}", k % 10 - 5,
             k / 10 - 5, 37 * k % 360);
    if (shared) w += sprintf(w, "%s%s", sep, xf);
    else
      w += sprintf(
          w, "%s{\"type\": \"mesh\", \"file\": \"%s\", \"material\": \"m\", \"transform\": %s}",
          sep, ply, xf);
  }
  sprintf(w, "%s]}\n", shared ? "]}" : "");
  return j;
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

int main(int argc, char **argv) {
  size_t ntris = argc > 1 ? (size_t)atol(argv[1]) : 20000;
  int size = argc > 2 ? atoi(argv[2]) : 128, spp = argc > 3 ? atoi(argv[3]) : 16;
  char dir[] = "/tmp/kiln-bench-inst-XXXXXX";
  if (!mkdtemp(dir)) return 1;
  char ply[600], big[600];
  snprintf(ply, sizeof ply, "%s/mesh.ply", dir);
  snprintf(big, sizeof big, "%s/big.ply", dir);
  if (write_ply(ply, ntris) || write_ply(big, 1000000)) return 1;
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
