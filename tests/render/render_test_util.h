/* render_test_util.h: scenes built in code, one renderer on one lavapipe device, and rendering
 * a frame to completion, for the render tests (each test file includes it once). */
#ifndef KILN_RENDER_TEST_UTIL_H
#define KILN_RENDER_TEST_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/gpu_test_util.h"
#include "kiln/render.h"
#include "kiln/scene.h"
#include "scene_data.h"

/* ---- scene building ------------------------------------------------------------------------ */

static inline kiln__scene base_scene(void) {
  kiln__scene s = {0};
  s.env.type = KILN__ENV_CONSTANT;
  s.env.intensity = 1;
  s.env.texture = -1;
  s.camera.type = KILN__CAM_PINHOLE;
  float pos[3] = {0, 0, -4}, at[3] = {0, 0, 0}, up[3] = {0, 1, 0};
  memcpy(s.camera.position, pos, 12), memcpy(s.camera.look_at, at, 12), memcpy(s.camera.up, up, 12);
  s.camera.vfov_deg = 40;
  s.settings = (kiln__settings){.width = 24, .height = 24, .spp = 8, .max_bounces = 8, .seed = 1};
  return s;
}

static inline void add_material(kiln__scene *s, kiln__material m) {
  s->materials = realloc(s->materials, (s->nmaterials + 1) * sizeof m);
  m.texture = -1;
  s->materials[s->nmaterials++] = m;
}

static inline void add_sphere(kiln__scene *s, float x, float y, float z, float r, uint32_t mat,
                              uint32_t id) {
  s->spheres = realloc(s->spheres, (s->nspheres + 1) * sizeof *s->spheres);
  s->spheres[s->nspheres++] = (kiln__sphere){{x, y, z}, r, mat, id, id};
}

/* Two triangles v0 v1 v2, v0 v2 v3, with per-corner uv and shading normals (each may be NULL:
 * zeros, and the face's geometric normal). Once any quad has uv (normals), every triangle does. */
static inline void add_quad_attr(kiln__scene *s, const float v[4][3], const float (*uv)[2],
                                 const float (*nrm)[3], uint32_t mat, uint32_t id) {
  size_t n = s->ntris;
  s->pos = realloc(s->pos, (n + 2) * 9 * sizeof(float));
  s->tri_material = realloc(s->tri_material, (n + 2) * 4);
  s->tri_object = realloc(s->tri_object, (n + 2) * 4);
  s->tri_instance = realloc(s->tri_instance, (n + 2) * 4);
  if (uv && !s->uv) s->uv = calloc(6 * n + 1, sizeof(float));
  if (nrm && !s->nrm) {
    s->nrm = calloc(9 * n + 1, sizeof(float));
    for (size_t t = 0; t < n; t++) {
      const float *p = s->pos + 9 * t;
      float e1[3], e2[3], c[3];
      for (int k = 0; k < 3; k++) e1[k] = p[3 + k] - p[k], e2[k] = p[6 + k] - p[k];
      c[0] = e1[1] * e2[2] - e1[2] * e2[1], c[1] = e1[2] * e2[0] - e1[0] * e2[2],
      c[2] = e1[0] * e2[1] - e1[1] * e2[0];
      float l = sqrtf(c[0] * c[0] + c[1] * c[1] + c[2] * c[2]);
      for (int k = 0; k < 9; k++) s->nrm[9 * t + k] = c[k % 3] / l;
    }
  }
  if (s->uv) s->uv = realloc(s->uv, (n + 2) * 6 * sizeof(float));
  if (s->nrm) s->nrm = realloc(s->nrm, (n + 2) * 9 * sizeof(float));
  int idx[6] = {0, 1, 2, 0, 2, 3};
  float e1[3], e2[3], g[3];
  for (int k = 0; k < 3; k++) e1[k] = v[1][k] - v[0][k], e2[k] = v[2][k] - v[0][k];
  g[0] = e1[1] * e2[2] - e1[2] * e2[1], g[1] = e1[2] * e2[0] - e1[0] * e2[2],
  g[2] = e1[0] * e2[1] - e1[1] * e2[0];
  float gl = sqrtf(g[0] * g[0] + g[1] * g[1] + g[2] * g[2]);
  for (int i = 0; i < 6; i++) {
    memcpy(s->pos + 9 * n + 3 * i, v[idx[i]], 12);
    if (s->uv) {
      s->uv[6 * n + 2 * i] = uv ? uv[idx[i]][0] : 0;
      s->uv[6 * n + 2 * i + 1] = uv ? uv[idx[i]][1] : 0;
    }
    if (s->nrm)
      for (int k = 0; k < 3; k++) s->nrm[9 * n + 3 * i + k] = nrm ? nrm[idx[i]][k] : g[k] / gl;
  }
  for (int t = 0; t < 2; t++)
    s->tri_material[n + t] = mat, s->tri_object[n + t] = id, s->tri_instance[n + t] = id;
  s->ntris += 2;
}

static inline void add_quad(kiln__scene *s, const float v[4][3], uint32_t mat, uint32_t id) {
  add_quad_attr(s, v, NULL, NULL, mat, id);
}

/* Appends a texture of w x h linear RGB texels (copied); its index. */
static inline int32_t add_texture(kiln__scene *s, int32_t w, int32_t h, const float *rgb) {
  s->textures = realloc(s->textures, (s->ntextures + 1) * sizeof *s->textures);
  float *c = malloc((size_t)w * (size_t)h * 3 * sizeof(float));
  memcpy(c, rgb, (size_t)w * (size_t)h * 3 * sizeof(float));
  s->textures[s->ntextures] = (kiln__texture){w, h, c, false, false};
  return (int32_t)s->ntextures++;
}

typedef struct ctx {
  kiln_gpu *gpu;
  kiln_gpu_device *dev;
  kiln_renderer *r;
  kiln_scene *scene;
} ctx;

static inline ctx open_ctx(kiln__scene *s, kiln_pool *pool) {
  ctx c = {0};
  c.gpu = tg_gpu();
  c.dev = tg_device(c.gpu, NULL);
  if (s) {
    c.scene = kiln__scene_wrap(s);
    KT_TRUE(c.scene != NULL);
  }
  kiln_renderer_config rc;
  kiln_renderer_config_default(&rc);
  rc.pool = pool;
  KT_CODE(kiln_renderer_create(c.scene, &c.dev, 1, &rc, &c.r), KILN_OK);
  return c;
}

static inline void close_ctx(ctx *c) {
  kiln_renderer_destroy(c->r);
  kiln_scene_destroy(c->scene);
  kiln_gpu_device_close(c->dev);
  tg_finish(c->gpu);
}

/* Renders and waits; *f must be released by the caller (it owns the image). */
static inline const kiln_image *render(ctx *c, const kiln_frame_config *fc, kiln_future **f) {
  KT_CODE(kiln_renderer_submit(c->r, fc, f), KILN_OK);
  void *v = NULL;
  int rc = kiln_future_result(*f, -1, &v);
  if (rc) {
    const char *m = NULL;
    kiln_future_error(*f, 0, &m);
    KT_FAIL("frame failed: %s: %s", kiln_err_name(rc), m ? m : "");
  }
  return v;
}

/* kiln_image_get_info's answer, as a value. */
static inline kiln_image_info info_of(const kiln_image *img) {
  kiln_image_info i;
  kiln_image_get_info(img, &i);
  return i;
}

/* Pixels whose 3x3 neighbourhood's centre rays all hit object id: jittered samples stay on it. */
static inline bool interior(const kiln_image *img, int x, int y, uint32_t id) {
  int w = info_of(img).width, h = info_of(img).height;
  for (int dy = -1; dy <= 1; dy++)
    for (int dx = -1; dx <= 1; dx++) {
      int xx = x + dx, yy = y + dy;
      if (xx < 0 || yy < 0 || xx >= w || yy >= h) return false;
      if (info_of(img).object_id[yy * w + xx] != id) return false;
    }
  return true;
}

/* The centre ray of pixel (x, y), as the renderer builds it (renderer.c / camera.glsl). */
static inline void centre_ray(const float pos[3], const float at[3], const float up[3], float vfov,
                              int w, int h, double x, double y, double d[3]) {
  double W[3], U[3], V[3];
  for (int k = 0; k < 3; k++) W[k] = at[k] - pos[k];
  double l = sqrt(W[0] * W[0] + W[1] * W[1] + W[2] * W[2]);
  for (int k = 0; k < 3; k++) W[k] /= l;
  U[0] = W[1] * up[2] - W[2] * up[1], U[1] = W[2] * up[0] - W[0] * up[2],
  U[2] = W[0] * up[1] - W[1] * up[0];
  l = sqrt(U[0] * U[0] + U[1] * U[1] + U[2] * U[2]);
  for (int k = 0; k < 3; k++) U[k] /= l;
  V[0] = U[1] * W[2] - U[2] * W[1], V[1] = U[2] * W[0] - U[0] * W[2],
  V[2] = U[0] * W[1] - U[1] * W[0];
  double th = tan(vfov * 0.5 * 3.14159265358979323846 / 180), tw = th * w / h;
  double nx = x / w, ny = y / h;
  for (int k = 0; k < 3; k++) d[k] = W[k] + (2 * nx - 1) * tw * U[k] + (1 - 2 * ny) * th * V[k];
  l = sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
  for (int k = 0; k < 3; k++) d[k] /= l;
}

static inline char *repo_path(const char *rel) {
  const char *me = __FILE__; /* <repo>/tests/render/render_test_util.h */
  const char *cut = strstr(me, "tests/render/");
  size_t n = cut ? (size_t)(cut - me) : 0;
  char *p = malloc(n + strlen(rel) + 1);
  memcpy(p, me, n);
  strcpy(p + n, rel);
  return p;
}

/* The whole of file path, NUL-terminated (malloc'd); fails the test if it cannot be read. */
static inline char *slurp_text(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) KT_FAIL("cannot read %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  KT_TRUE(s && fread(s, 1, (size_t)n, f) == (size_t)n);
  s[n] = '\0';
  fclose(f);
  return s;
}

/* Loads the scene file rel (relative to the repository), renders it twice at size x size, spp
 * samples (seeds 11 and 12; bounces < 0: the scene's max bounces), and checks each channel's mean
 * of both against want[] within 4 standard errors plus margin x want (the per-pixel noise variance
 * of the average estimated as (A - B)^2 / 4). who names the reference in messages. */
static inline void check_means(const char *rel, int size, int spp, int bounces,
                               const double want[3], double margin, const char *who) {
  char *path = repo_path(rel);
  kiln_scene *scene;
  kiln_error_detail err;
  if (kiln_scene_load(path, &err, &scene)) {
    char buf[512];
    KT_FAIL("load %s: %s", path, kiln_error_detail_format(&err, buf, sizeof buf));
  }
  free(path);
  for (size_t i = 0; i < kiln_scene_warning_count(scene); i++)
    fprintf(stderr, "%s: warning: %s\n", rel, kiln_scene_warning(scene, i));
  ctx c = {0};
  c.gpu = tg_gpu();
  c.dev = tg_device(c.gpu, NULL);
  c.scene = scene;
  KT_CODE(kiln_renderer_create(scene, &c.dev, 1, NULL, &c.r), KILN_OK);
  kiln_frame_config fc;
  kiln_frame_config_default(c.r, &fc);
  fc.width = fc.height = size;
  fc.spp = spp;
  if (bounces >= 0) fc.max_bounces = bounces;
  kiln_future *fa, *fb;
  fc.seed = 11;
  KT_CODE(kiln_renderer_submit(c.r, &fc, &fa), KILN_OK);
  fc.seed = 12;
  const kiln_image *b = render(&c, &fc, &fb);
  void *va;
  KT_CODE(kiln_future_result(fa, -1, &va), KILN_OK);
  const kiln_image *a = va;
  KT_TRUE(info_of(a).width == size && info_of(a).height == size);
  const float *pa = info_of(a).color, *pb = info_of(b).color;
  size_t n = (size_t)size * (size_t)size;
  int bad = -1;
  double bad_mean = 0, bad_tol = 0;
  for (int k = 0; k < 3; k++) {
    double s = 0, v = 0;
    for (size_t i = 0; i < n; i++) {
      double x = pa[3 * i + k], y = pb[3 * i + k];
      s += 0.5 * (x + y);
      v += (x - y) * (x - y) / 4;
    }
    double mean = s / n, se = sqrt(v) / n, tol = 4 * se + margin * want[k];
    fprintf(stderr, "%s channel %d: kiln %.5f, %s %.5f, diff %+.2f%%, se %.5f, tol %.5f\n", rel, k,
            mean, who, want[k], 100 * (mean / want[k] - 1), se, tol);
    if (fabs(mean - want[k]) > tol && bad < 0) bad = k, bad_mean = mean, bad_tol = tol;
  }
  kiln_future_release(fa);
  kiln_future_release(fb);
  close_ctx(&c);
  if (bad >= 0)
    KT_FAIL("%s channel %d: mean %g vs %s %g, more than %g apart", rel, bad, bad_mean, who,
            want[bad], bad_tol);
}

#endif
