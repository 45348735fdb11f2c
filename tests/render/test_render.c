/* test_render.c: the path tracer on lavapipe, with the Khronos validation layer (any message
 * fails the test): furnace, energy conservation, the Cornell box mean against Blender,
 * determinism across tiles, passes and threads, and the AOVs. Sizes are tiny: lavapipe runs on
 * two busy cores, and under TSan/ASan 3-10x slower. */
// kt: timeout 300
#define _GNU_SOURCE
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "base.h"
#include "render_internal.h"
#include "render_test_util.h"

/* ---- furnace ------------------------------------------------------------------------------- */

/* A diffuse sphere of albedo a in a uniform environment of radiance 1: every bounce off a convex
 * object escapes, so each sample of a pixel on the sphere is exactly a (a sample has zero
 * variance: the sky's light sample and the BSDF sample are both cosine-distributed, so MIS gives
 * each weight 1/2 and each carries a, times 1, whatever the directions). The tolerance is float
 * rounding only; the background is exactly 1. */
TEST(furnace) {
  kiln__scene s = base_scene();
  add_material(&s, (kiln__material){.type = KILN__MAT_DIFFUSE, .albedo = {0.5f, 0.25f, 0.8f}});
  add_sphere(&s, 0, 0, 0, 1, 0, 1);
  s.env.color[0] = s.env.color[1] = s.env.color[2] = 1;
  ctx c = open_ctx(&s, NULL);
  kiln_frame_config fc;
  kiln_frame_config_default(c.r, &fc);
  kiln_future *f;
  const kiln_image *img = render(&c, &fc, &f);
  int w = info_of(img).width, on = 0, off = 0;
  const float *col = info_of(img).color;
  const float a[3] = {0.5f, 0.25f, 0.8f};
  for (int y = 0; y < w; y++)
    for (int x = 0; x < w; x++) {
      const float *p = col + 3 * (y * w + x);
      uint32_t id = info_of(img).object_id[y * w + x];
      if (interior(img, x, y, 1)) {
        on++;
        for (int k = 0; k < 3; k++)
          if (fabsf(p[k] - a[k]) > 1e-4f)
            KT_FAIL("pixel %d,%d channel %d = %g, want %g", x, y, k, p[k], a[k]);
      } else if (id == 0 && interior(img, x, y, 0)) {
        off++;
        for (int k = 0; k < 3; k++) KT_TRUE(fabsf(p[k] - 1) < 1e-6f);
      }
    }
  KT_TRUE(on > 50 && off > 50);
  kiln_future_release(f);
  close_ctx(&c);
}

/* ---- energy conservation -------------------------------------------------------------------- */

/* Mean and the standard error of the mean of channel 0 over the sphere's interior pixels; the
 * per-pixel noise variance comes from the spread of pixel values (the sphere is uniform in a
 * uniform environment, so that spread is noise, plus the true variation, which only widens it). */
static void sphere_stats(const kiln_image *img, uint32_t id, double *mean, double *se, float *maxv,
                         int *n) {
  int w = info_of(img).width;
  double s = 0, s2 = 0;
  *n = 0;
  *maxv = 0;
  for (int y = 0; y < w; y++)
    for (int x = 0; x < w; x++)
      if (interior(img, x, y, id)) {
        for (int k = 0; k < 3; k++) {
          float v = info_of(img).color[3 * (y * w + x) + k];
          if (v > *maxv) *maxv = v;
        }
        double v = info_of(img).color[3 * (y * w + x)];
        s += v, s2 += v * v, (*n)++;
      }
  *mean = s / *n;
  double var = s2 / *n - *mean * *mean;
  *se = sqrt(var > 0 ? var / *n : 0);
}

/* A conductor of F0 = 1 (rough) and a clear dielectric in a uniform environment of radiance 1.
 * The conductor's every sample is <= 1 (single scattering off a convex object: weight F G2/G1).
 * The dielectric is a white furnace: a smooth clear sphere absorbs nothing, and with Cycles'
 * convention (no 1/eta^2 on refraction, see test_shading.c's dielectric_interface) every path
 * that leaves it carries 1 times the weight of its choice at the camera ray's hit (F / p or
 * (1 - F) / (1 - p), p the defensive probability of reflecting), so the mean is 1 within 4
 * standard errors, both ways (the variance is that weight's and Russian roulette's; a path cut
 * by max_bounces inside the glass is far rarer than the tolerance). */
TEST(energy_conservation) {
  kiln__scene s = base_scene();
  add_material(
      &s, (kiln__material){.type = KILN__MAT_CONDUCTOR, .albedo = {1, 1, 1}, .roughness = 0.6f});
  add_material(&s,
               (kiln__material){.type = KILN__MAT_DIELECTRIC, .albedo = {1, 1, 1}, .ior = 1.5f});
  add_sphere(&s, -1.1f, 0, 0, 1, 0, 1);
  add_sphere(&s, 1.1f, 0, 0, 1, 1, 2);
  s.env.color[0] = s.env.color[1] = s.env.color[2] = 1;
  s.camera.position[2] = -6;
  s.settings.width = s.settings.height = 32;
  s.settings.max_bounces = 32;
  ctx c = open_ctx(&s, NULL);
  kiln_frame_config fc;
  kiln_frame_config_default(c.r, &fc);
  kiln_future *f;
  const kiln_image *img = render(&c, &fc, &f);
  double mean, se;
  float maxv;
  int n;
  sphere_stats(img, 1, &mean, &se, &maxv, &n);
  KT_TRUE(n > 20);
  if (maxv > 1 + 1e-5f) KT_FAIL("conductor pixel %g > 1", maxv);
  KT_TRUE(mean > 0.5); /* GGX single scattering loses some energy at this roughness, not half */
  sphere_stats(img, 2, &mean, &se, &maxv, &n);
  KT_TRUE(n > 20);
  fprintf(stderr, "dielectric furnace: mean %.6f, se %.6f\n", mean, se);
  if (fabs(mean - 1) > 4 * se + 1e-5) KT_FAIL("dielectric mean %g, want 1 (se %g)", mean, se);
  kiln_future_release(f);
  close_ctx(&c);
}

/* ---- Cornell box --------------------------------------------------------------------------- */

/* Per-channel mean of Blender's 1024-spp 256x256 reference (ref_256x256_1024spp.pfm of
 * ../shared/anchors/cornell), computed from the file; its own noise is negligible here. */
static const double cornell_ref[3] = {0.19290129, 0.12599459, 0.03630422};

/* Two independent 64x64 renders A, B (different seeds): the mean of (A + B) / 2 against Blender's,
 * within 4 standard errors, the per-pixel noise variance of (A + B) / 2 estimated as
 * (A - B)^2 / 4, plus 1% for the model differences that are not noise (the issue's own bound at
 * full resolution is 2%). */
TEST(cornell_mean) {
  check_means("examples/cornell/scene.json", 64, 16, -1, cornell_ref, 0.01, "Blender");
}

/* ---- determinism --------------------------------------------------------------------------- */

/* The Cornell box at 24x20 (not a tile multiple), 6 spp: tiles of 64 with passes of 4 spp, tiles
 * of 8 with 1 spp passes, and a renderer whose BVH was built on a 2-thread pool: the same bits. */
TEST(determinism) {
  char *path = repo_path("examples/cornell/scene.json");
  kiln_scene *scene;
  KT_CODE(kiln_scene_load(path, NULL, &scene), KILN_OK);
  free(path);
  kiln_pool_config pc;
  kiln_pool_config_default(&pc);
  pc.threads = 2;
  kiln_pool *pool;
  KT_CODE(kiln_pool_create(&pc, &pool), KILN_OK);
  ctx c = {0};
  c.gpu = tg_gpu();
  c.dev = tg_device(c.gpu, NULL);
  c.scene = scene;
  KT_CODE(kiln_renderer_create(scene, &c.dev, 1, NULL, &c.r), KILN_OK);
  kiln_renderer_config rc;
  kiln_renderer_config_default(&rc);
  rc.pool = pool;
  kiln_renderer *r2;
  KT_CODE(kiln_renderer_create(scene, &c.dev, 1, &rc, &r2), KILN_OK);
  kiln_frame_config fc;
  kiln_frame_config_default(c.r, &fc);
  fc.width = 24, fc.height = 20, fc.spp = 6, fc.frame = 3;
  kiln_future *f1, *f2, *f3;
  fc.tile_size = 64, fc.pass_spp = 4;
  const kiln_image *i1 = render(&c, &fc, &f1);
  fc.tile_size = 8, fc.pass_spp = 1;
  const kiln_image *i2 = render(&c, &fc, &f2);
  kiln_renderer *keep = c.r;
  c.r = r2;
  const kiln_image *i3 = render(&c, &fc, &f3);
  c.r = keep;
  size_t n = 24 * 20;
  KT_TRUE(memcmp(info_of(i1).color, info_of(i2).color, n * 12) == 0);
  KT_TRUE(memcmp(info_of(i1).color, info_of(i3).color, n * 12) == 0);
  KT_TRUE(memcmp(info_of(i1).depth, info_of(i2).depth, n * 4) == 0);
  /* A GPU's default sizes (the whole frame, 8 samples a pass): the same bits again. */
  kiln_future *f5;
  fc.tile_size = 1024, fc.pass_spp = 8;
  const kiln_image *i5 = render(&c, &fc, &f5);
  KT_TRUE(memcmp(info_of(i1).color, info_of(i5).color, n * 12) == 0);
  kiln_future_release(f5);
  /* On a CPU device a dispatch's workgroups are spread over its tile (a permutation of its
   * cells, groups.glsl; spread_workgroups_cover_their_tile checks it is one): tiles of 1 to 64
   * cells, edge tiles included, give the bits of tiles of one workgroup. */
  kiln_gpu_device_info di;
  kiln_gpu_device_get_info(c.dev, &di);
  KT_EQ(!!(kiln__renderer_device_features(c.r, 0) & KILN__RF_SPREAD), di.type == KILN_GPU_TYPE_CPU);
  fc.width = 100, fc.height = 60, fc.spp = 2;
  static const uint32_t tiles[] = {8, 40, 64, 1024};
  kiln_future *ft[4];
  const kiln_image *it[4];
  for (int k = 0; k < 4; k++) {
    fc.tile_size = tiles[k], fc.pass_spp = 2;
    it[k] = render(&c, &fc, &ft[k]);
    if (k && (memcmp(info_of(it[0]).color, info_of(it[k]).color, 100 * 60 * 12) ||
              memcmp(info_of(it[0]).object_id, info_of(it[k]).object_id, 100 * 60 * 4)))
      KT_FAIL("tiles of %u: not the image of tiles of 8", tiles[k]);
  }
  for (int k = 0; k < 4; k++) kiln_future_release(ft[k]);
  fc.width = 24, fc.height = 20, fc.spp = 6;
  /* A different frame index changes the noise. */
  fc.frame = 4;
  kiln_future *f4;
  const kiln_image *i4 = render(&c, &fc, &f4);
  KT_TRUE(memcmp(info_of(i1).color, info_of(i4).color, n * 12) != 0);
  kiln_future_release(f1), kiln_future_release(f2), kiln_future_release(f3),
      kiln_future_release(f4);
  kiln_renderer_destroy(r2);
  close_ctx(&c);
  kiln_pool_destroy(pool);
}

/* The uvec4s of the scene's block (render_internal.h's scene_vec4s): nodes, leaf records,
 * triangles, materials and lights. */
static size_t scene_vec4s(const kiln__scene *s) {
  kiln__bvh b;
  kiln__render_buffers p;
  if (kiln__bvh_build(NULL, s, &b)) return 0;
  size_t n = kiln__render_pack(s, &b, &p) ? 0 : p.scene_vec4s;
  kiln__render_pack_free(&p);
  kiln__bvh_free(&b);
  return n;
}

/* Every image's bits, colour and AOVs, equal. */
static bool same_image(const kiln_image *a, const kiln_image *b, size_t n) {
  return !memcmp(info_of(a).color, info_of(b).color, n * 12) &&
         !memcmp(info_of(a).depth, info_of(b).depth, n * 4) &&
         !memcmp(info_of(a).normal, info_of(b).normal, n * 12) &&
         !memcmp(info_of(a).albedo, info_of(b).albedo, n * 12) &&
         !memcmp(info_of(a).object_id, info_of(b).object_id, n * 4) &&
         !memcmp(info_of(a).instance_id, info_of(b).instance_id, n * 4);
}

/* One frame of scene with the scene read from memory m; *f holds the image. */
/* *where: the kernel's KILN__RF_SHARED and KILN__RF_UNIFORM bits (where the scene was read). */
static const kiln_image *render_in(ctx *c, kiln_renderer_scene_memory m, kiln_future **f,
                                   uint32_t *where) {
  kiln_renderer_config rc;
  kiln_renderer_config_default(&rc);
  rc.scene_memory = m;
  kiln_renderer *keep = c->r;
  if (kiln_renderer_create(c->scene, &c->dev, 1, &rc, &c->r)) return NULL;
  *where = kiln__renderer_device_features(c->r, 0) &
           (KILN__RF_SHARED | KILN__RF_UNIFORM | KILN__RF_TEXEL);
  kiln_frame_config fc;
  kiln_frame_config_default(c->r, &fc);
  fc.width = 24, fc.height = 20, fc.spp = 6;
  const kiln_image *img = render(c, &fc, f);
  kiln_renderer_destroy(c->r);
  c->r = keep;
  return img;
}

/* The Cornell box fits the shader's shared copy: read from storage buffers, from the
 * workgroup-shared copy, from the uniform buffer, through texel fetches (with the uniform buffer)
 * and automatically (on lavapipe, a CPU device: texel fetches), the same bits, colour and AOVs.
 * With 400 unused materials more it fits only the uniform buffer (the shared mode falls back to
 * the storage buffers), with 1500 neither (texel fetches with the storage buffers): the same bits
 * again. */
TEST(scene_memory_paths) {
  char *path = repo_path("examples/cornell/scene.json");
  kiln_scene *scene;
  KT_CODE(kiln_scene_load(path, NULL, &scene), KILN_OK);
  free(path);
  KT_TRUE(scene_vec4s(&scene->data) <= PT_SHARED_VEC4S);
  ctx c = {0};
  c.gpu = tg_gpu();
  c.dev = tg_device(c.gpu, NULL);
  c.scene = scene;
  kiln_gpu_device_info di;
  kiln_gpu_device_get_info(c.dev, &di);
  KT_TRUE(di.max_uniform_range >= 16384);
  kiln_renderer_config bad;
  kiln_renderer_config_default(&bad);
  bad.scene_memory = (kiln_renderer_scene_memory)7;
  KT_CODE(kiln_renderer_create(scene, &c.dev, 1, &bad, &c.r), KILN_EINVAL);
  KT_TRUE(c.r == NULL);
  static const kiln_renderer_scene_memory modes[] = {
      KILN_RENDERER_SCENE_SHARED, KILN_RENDERER_SCENE_UNIFORM, KILN_RENDERER_SCENE_TEXEL,
      KILN_RENDERER_SCENE_AUTO};
  kiln_future *f0, *f;
  uint32_t where;
  const kiln_image *ref = render_in(&c, KILN_RENDERER_SCENE_STORAGE, &f0, &where);
  KT_TRUE(ref != NULL);
  KT_EQ(where, 0);
  const kiln_gpu_device_info *info = &di;
  const uint32_t U = KILN__RF_SHARED | KILN__RF_UNIFORM, S = KILN__RF_SHARED, T = KILN__RF_TEXEL;
  size_t n = 24 * 20;
  kiln__scene *sd = &scene->data;
  for (int round = 0; round < 3; round++) {
    if (round > 0) /* 400, then 1500 unused materials more */
      for (int k = 0; k < (round == 1 ? 400 : 1100); k++)
        add_material(sd, (kiln__material){.type = KILN__MAT_DIFFUSE});
    size_t words = scene_vec4s(sd);
    KT_TRUE(round != 1 || (words > PT_SHARED_VEC4S && words <= PT_UNIFORM_VEC4S_MAX));
    KT_TRUE(round != 2 || words > PT_UNIFORM_VEC4S_MAX);
    bool uniform_fits = round < 2 && words * 16 <= info->max_uniform_range;
    for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
      const kiln_image *img = render_in(&c, modes[i], &f, &where);
      KT_TRUE(img != NULL);
      KT_TRUE(same_image(ref, img, n));
      uint32_t expect = 0;
      if (modes[i] == KILN_RENDERER_SCENE_SHARED) expect = round == 0 ? S : 0;
      if (modes[i] == KILN_RENDERER_SCENE_UNIFORM) expect = uniform_fits ? U : 0;
      if (modes[i] == KILN_RENDERER_SCENE_TEXEL ||
          (modes[i] == KILN_RENDERER_SCENE_AUTO && info->type == KILN_GPU_TYPE_CPU))
        expect = T | (uniform_fits ? U : 0); /* lavapipe: 2^27 texels */
      else if (modes[i] == KILN_RENDERER_SCENE_AUTO) expect = round == 0 ? S : 0;
      KT_EQ(where, expect);
      kiln_future_release(f);
    }
  }
  kiln_future_release(f0);
  close_ctx(&c);
}

/* A scene that reads every scene buffer the texel bindings cover (layout.h's T* bindings):
 * spheres (one emissive), a textured quad, a mesh placed four times (placements, triangles and
 * their normals: INST, TRIS, ATTR), an environment map (TEXELS, TEXINFO, ENVDIST), a quad light,
 * point and spot lights (LIGHTS, PLIGHTS) and its materials (MATS; a scene with placements has
 * no uniform block, so they come through the texel binding too). Read from the storage buffers
 * and through texel fetches: the same bits, colour and AOVs. */
TEST(every_texel_binding_matches_storage) {
  char *rich = repo_path("tools/bench/rich/scene.json"), *text = slurp_text(rich);
  char *dir = repo_path("tools/bench/rich"),
       *hdr = repo_path("tools/validation/env_orientation/sun.hdr");
  KT_TRUE(text != NULL);
  /* the rich benchmark scene, lit by the environment map and two punctual lights as well */
  const char *env = "\"environment\": { \"type\": \"constant\", \"color\": [0, 0, 0] }";
  const char *lights = "\"lights\": [";
  char *at_env = strstr(text, env), *at_lights = strstr(text, lights);
  KT_TRUE(at_env && at_lights && at_env < at_lights);
  size_t cap = strlen(text) + 1024;
  char *json = malloc(cap);
  snprintf(json, cap,
           "%.*s\"environment\": {\"type\": \"map\", \"file\": \"%s\", \"intensity\": 0.5}"
           "%.*s\"lights\": [{\"type\": \"point\", \"position\": [0.5, 1.2, -1], \"power\": 40},"
           " {\"type\": \"spot\", \"position\": [-1, 2, -1], \"look_at\": [0, 0, 0],"
           " \"power\": 200, \"inner_cone\": 20, \"outer_cone\": 30},%s",
           (int)(at_env - text), text, hdr, (int)(at_lights - at_env - strlen(env)),
           at_env + strlen(env), at_lights + strlen(lights));
  kiln_scene *scene;
  kiln_error_detail err;
  if (kiln_scene_load_string(json, dir, "rich+lights.json", &err, &scene)) {
    char buf[512];
    KT_FAIL("load: %s", kiln_error_detail_format(&err, buf, sizeof buf));
  }
  const kiln__scene *sd = &scene->data;
  KT_TRUE(sd->nspheres == 3 && sd->nplacements == 4 && sd->nplights == 2);
  ctx c = {0};
  c.gpu = tg_gpu();
  c.dev = tg_device(c.gpu, NULL);
  c.scene = scene;
  kiln_future *fs, *ft;
  uint32_t ws, wt;
  const kiln_image *a = render_in(&c, KILN_RENDERER_SCENE_STORAGE, &fs, &ws);
  const kiln_image *b = render_in(&c, KILN_RENDERER_SCENE_TEXEL, &ft, &wt);
  KT_TRUE(a && b);
  KT_EQ(ws, 0);
  KT_EQ(wt, KILN__RF_TEXEL);
  KT_TRUE(same_image(a, b, 24 * 20));
  double sum = 0; /* lit: not two black images */
  for (size_t i = 0; i < 24 * 20 * 3; i++) sum += info_of(a).color[i];
  KT_TRUE(sum > 24 * 20 * 0.05);
  kiln_future_release(fs), kiln_future_release(ft);
  close_ctx(&c);
  free(json), free(text), free(rich), free(dir), free(hdr);
}

/* One renderer on two device instances (two VkDevices of the same physical device), frames in
 * flight at once on both: every frame is bit-identical to the same frame rendered alone. */
TEST(devices_and_concurrent_frames) {
  char *path = repo_path("examples/cornell/scene.json");
  kiln_scene *scene;
  KT_CODE(kiln_scene_load(path, NULL, &scene), KILN_OK);
  free(path);
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *devs[2] = {tg_device(gpu, NULL), tg_device(gpu, NULL)};
  kiln_renderer *r;
  KT_CODE(kiln_renderer_create(scene, devs, 2, NULL, &r), KILN_OK);
  kiln_frame_config fc;
  kiln_frame_config_default(r, &fc);
  fc.width = 16, fc.height = 16, fc.spp = 4;
  /* One frame on each device alone first: lavapipe JIT-compiles the kernel on its first dispatch,
   * and two of its devices compiling at once race inside LLVM's lazy statics (in the driver, not
   * in kiln: TSan reports it in llvm::sys::DynamicLibrary). */
  for (int i = 0; i < 2; i++) {
    kiln_future *w;
    fc.device = i;
    KT_CODE(kiln_renderer_submit(r, &fc, &w), KILN_OK);
    KT_CODE(kiln_future_result(w, -1, NULL), KILN_OK);
    kiln_future_release(w);
  }
  enum { N = 4 };
  kiln_future *f[N];
  for (int i = 0; i < N; i++) {
    fc.device = i % 2;
    fc.frame = (uint32_t)(i / 2); /* frames 0, 0, 1, 1: each on both devices */
    KT_CODE(kiln_renderer_submit(r, &fc, &f[i]), KILN_OK);
  }
  const kiln_image *img[N];
  for (int i = 0; i < N; i++) {
    void *v;
    KT_CODE(kiln_future_result(f[i], -1, &v), KILN_OK);
    img[i] = v;
  }
  KT_TRUE(memcmp(info_of(img[0]).color, info_of(img[1]).color, 16 * 16 * 12) == 0);
  KT_TRUE(memcmp(info_of(img[2]).color, info_of(img[3]).color, 16 * 16 * 12) == 0);
  KT_TRUE(memcmp(info_of(img[0]).color, info_of(img[2]).color, 16 * 16 * 12) != 0);
  /* Alone, with the least-busy device chosen by the renderer. */
  fc.device = -1, fc.frame = 1;
  kiln_future *g;
  KT_CODE(kiln_renderer_submit(r, &fc, &g), KILN_OK);
  void *v;
  KT_CODE(kiln_future_result(g, -1, &v), KILN_OK);
  KT_TRUE(memcmp(info_of(v).color, info_of(img[2]).color, 16 * 16 * 12) == 0);
  kiln_future_release(g);
  for (int i = 0; i < N; i++) kiln_future_release(f[i]);
  /* Bad configs are refused before any GPU work. */
  fc.device = 2;
  KT_CODE(kiln_renderer_submit(r, &fc, &g), KILN_EINVAL);
  KT_PTR_EQ(g, NULL);
  fc.device = -1, fc.spp = -1;
  KT_CODE(kiln_renderer_submit(r, &fc, &g), KILN_EINVAL);
  kiln_renderer_destroy(r);
  kiln_scene_destroy(scene);
  kiln_gpu_device_close(devs[0]);
  kiln_gpu_device_close(devs[1]);
  tg_finish(gpu);
}

/* ---- AOVs ---------------------------------------------------------------------------------- */

/* A quad facing the camera at z = 3 (camera at the origin looking down +z) and a sphere in front
 * of it: depth is 3 on the quad exactly (distance along the camera axis, not along the ray), and
 * 3 - r at the sphere's centre pixel; normals unit; ids as built; background 0. */
TEST(aovs) {
  kiln__scene s = base_scene();
  float pos[3] = {0, 0, 0}, at[3] = {0, 0, 1};
  memcpy(s.camera.position, pos, 12), memcpy(s.camera.look_at, at, 12);
  s.camera.vfov_deg = 60;
  s.settings.width = s.settings.height = 16;
  s.settings.spp = 1;
  add_material(&s, (kiln__material){.type = KILN__MAT_DIFFUSE, .albedo = {0.2f, 0.4f, 0.6f}});
  add_material(&s, (kiln__material){.type = KILN__MAT_DIFFUSE, .albedo = {0.9f, 0.1f, 0.1f}});
  /* Quad covering x in [-1, 1.2], y in [-1, 1] at z = 3, wound to face -z; the right part of the
   * image (x < -1 is on the right: +x appears on the left) sees background. */
  const float q[4][3] = {{-1, -1, 3}, {-1, 1, 3}, {1.2f, 1, 3}, {1.2f, -1, 3}};
  add_quad(&s, q, 0, 1);
  add_sphere(&s, 0.6f, 0.6f, 2, 0.25f, 1, 2);
  s.env.color[0] = 0.5f;
  ctx c = open_ctx(&s, NULL);
  kiln_frame_config fc;
  kiln_frame_config_default(c.r, &fc);
  kiln_future *f;
  const kiln_image *img = render(&c, &fc, &f);
  int w = 16, nq = 0, ns = 0, nb = 0;
  float th = tanf(30 * 3.14159265f / 180);
  for (int y = 0; y < w; y++)
    for (int x = 0; x < w; x++) {
      int i = y * w + x;
      uint32_t id = info_of(img).object_id[i], inst = info_of(img).instance_id[i];
      float dep = info_of(img).depth[i];
      const float *nr = info_of(img).normal + 3 * i, *al = info_of(img).albedo + 3 * i;
      /* The centre ray's direction, to predict what it hits. */
      float px = -(2 * (x + 0.5f) / w - 1) * th, py = (1 - 2 * (y + 0.5f) / w) * th;
      KT_EQ(id, inst);
      if (id == 0) {
        nb++;
        KT_TRUE(dep == 0 && nr[0] == 0 && nr[1] == 0 && nr[2] == 0);
        KT_TRUE(3 * px < -1 || 3 * px > 1.2f || 3 * py < -1 || 3 * py > 1);
        continue;
      }
      float len = sqrtf(nr[0] * nr[0] + nr[1] * nr[1] + nr[2] * nr[2]);
      KT_TRUE(fabsf(len - 1) < 1e-5f);
      if (id == 1) {
        nq++;
        if (fabsf(dep - 3) > 1e-5f) KT_FAIL("quad depth %g at %d,%d", dep, x, y);
        KT_TRUE(fabsf(nr[2]) > 0.99999f);
        KT_TRUE(al[0] == 0.2f && al[1] == 0.4f && al[2] == 0.6f);
        KT_TRUE(3 * px >= -1 - 1e-4f && 3 * px <= 1.2f + 1e-4f);
      } else {
        KT_EQ(id, 2);
        ns++;
        if (!(dep > 1.75f - 1e-4f && dep < 2.25f)) KT_FAIL("sphere depth %g at %d,%d", dep, x, y);
        KT_TRUE(al[0] == 0.9f);
        /* Analytic: the ray's hit on the sphere. */
        float d[3] = {px, py, 1}, l = sqrtf(px * px + py * py + 1);
        for (int k = 0; k < 3; k++) d[k] /= l;
        float oc[3] = {-0.6f, -0.6f, -2};
        float b = oc[0] * d[0] + oc[1] * d[1] + oc[2] * d[2];
        float cc = oc[0] * oc[0] + oc[1] * oc[1] + oc[2] * oc[2] - 0.0625f;
        float t = -b - sqrtf(b * b - cc);
        if (fabsf(t * d[2] - dep) > 1e-4f) KT_FAIL("sphere depth %g, analytic %g", dep, t * d[2]);
      }
    }
  KT_TRUE(nq > 50 && ns > 0 && nb > 10);
  kiln_future_release(f);
  close_ctx(&c);
}

/* ---- axis-parallel rays ------------------------------------------------------------------- */

/* A closed box [-h, h]^3 of 12 triangles, every face wound outwards. */
static void add_box(kiln__scene *s, float h, uint32_t mat, uint32_t id) {
  static const float cu[4] = {-1, 1, 1, -1}, cv[4] = {-1, -1, 1, 1};
  for (int axis = 0; axis < 3; axis++)
    for (int sign = -1; sign <= 1; sign += 2) {
      int u = (axis + 1) % 3, v = (axis + 2) % 3;
      float q[4][3];
      for (int i = 0; i < 4; i++)
        q[i][axis] = (float)sign * h, q[i][u] = cu[i] * h, q[i][v] = cv[i] * h;
      if (sign < 0) /* reversed: the normal u x v = +axis turns to -axis */
        for (int k = 0; k < 3; k++) {
          float t = q[1][k];
          q[1][k] = q[3][k], q[3][k] = t;
        }
      add_quad(s, q, mat, id);
    }
}

/* The centre pixel of an odd-sized image looks exactly down the camera's axis: looking along z
 * (then along -y) at a box centred on the origin, its ray has two direction components exactly 0,
 * whose reciprocals were infinite, making the slab test's times NaN (what min and max make of
 * NaN is the device's choice; lavapipe happened to get this ray right, axis_parallel_slab shows
 * one it did not). The centre ray must hit the box's near face at distance 3, in every
 * scene-memory mode. */
TEST(axis_parallel_rays) {
  kiln__scene s = base_scene();
  s.settings.width = s.settings.height = 5;
  s.settings.spp = 2;
  add_material(&s, (kiln__material){.type = KILN__MAT_DIFFUSE, .albedo = {0.5f, 0.5f, 0.5f}});
  add_box(&s, 1, 0, 1);
  s.env.color[0] = s.env.color[1] = s.env.color[2] = 1;
  ctx c = open_ctx(&s, NULL);
  static const kiln_camera cams[2] = {
      {.position = {0, 0, -4}, .look_at = {0, 0, 0}, .up = {0, 1, 0}, .vfov_deg = 40},
      {.position = {0, 4, 0}, .look_at = {0, 0, 0}, .up = {0, 0, 1}, .vfov_deg = 40}};
  static const float facing[2][3] = {{0, 0, -1}, {0, 1, 0}};
  static const kiln_renderer_scene_memory modes[] = {
      KILN_RENDERER_SCENE_STORAGE, KILN_RENDERER_SCENE_SHARED, KILN_RENDERER_SCENE_UNIFORM,
      KILN_RENDERER_SCENE_TEXEL};
  for (size_t m = 0; m < sizeof modes / sizeof *modes; m++) {
    kiln_renderer_config rc;
    kiln_renderer_config_default(&rc);
    rc.scene_memory = modes[m];
    kiln_renderer *r;
    KT_CODE(kiln_renderer_create(c.scene, &c.dev, 1, &rc, &r), KILN_OK);
    for (int k = 0; k < 2; k++) {
      kiln_frame_config fc;
      kiln_frame_config_default(r, &fc);
      fc.camera = &cams[k];
      kiln_future *f;
      KT_CODE(kiln_renderer_submit(r, &fc, &f), KILN_OK);
      void *v;
      KT_CODE(kiln_future_result(f, -1, &v), KILN_OK);
      const kiln_image *img = v;
      int i = 2 * 5 + 2;
      const float *n = info_of(img).normal + 3 * i;
      float dep = info_of(img).depth[i];
      if (info_of(img).object_id[i] != 1 || !(fabsf(dep - 3) < 1e-5f))
        KT_FAIL("mode %zu camera %d: centre pixel object %u depth %g, want 1 and 3", m, k,
                info_of(img).object_id[i], dep);
      for (int a = 0; a < 3; a++) KT_TRUE(fabsf(n[a] - facing[k][a]) < 1e-6f);
      for (int p = 0; p < 25; p++) {
        KT_TRUE(isfinite(info_of(img).depth[p]));
        for (int a = 0; a < 3; a++) KT_TRUE(isfinite(info_of(img).color[3 * p + a]));
      }
      kiln_future_release(f);
    }
    kiln_renderer_destroy(r);
  }
  close_ctx(&c);
}

/* A kernel of one storage buffer at binding 0 (B b, its array v of type elem) on dev: the GLSL
 * head, the shader file rel (relative to the repository: pure functions, no bindings), then
 * main_fn. */
static kiln_gpu_kernel *file_kernel(kiln_gpu_device *dev, const char *rel, const char *elem,
                                    const char *main_fn) {
  char *path = repo_path(rel), *body = slurp_text(path);
  free(path);
  size_t cap = strlen(body) + strlen(main_fn) + 256;
  char *src = malloc(cap);
  snprintf(src, cap,
           "#version 450\nlayout(local_size_x = 1) in;\n"
           "layout(std430, binding = 0) buffer B { %s v[]; } b;\n%s%s",
           elem, body, main_fn);
  free(body);
  kiln_gpu_kernel_config kc;
  kiln_gpu_kernel_config_default(&kc);
  kc.glsl = src;
  kc.glsl_name = rel;
  kc.buffers = 1;
  kiln_gpu_kernel *k = NULL;
  KT_CODE(kiln_gpu_kernel_create(dev, &kc, &k), KILN_OK);
  free(src);
  return k;
}

/* shaders/pathtrace/groups.glsl compiled alone into a kernel that counts, for each workgroup of
 * a dispatch of gx x gy, the cell spread_cell gives it: every cell exactly once, for every
 * shape from 1 x 1 to 12 x 12 and some larger ones (n coprime with the first guess or not), and
 * the first half of the workgroups (one llvmpipe thread's run of two) covers the whole tile: each
 * half of the tile's rows gets at least half its share of that run. */
TEST(spread_workgroups_cover_their_tile) {
  /* v[cell]: workgroups given that cell; v[n + w]: workgroup w's cell */
  static const char main_fn[] =
      "void main() {\n"
      "  uvec2 c = spread_cell(gl_WorkGroupID.xy, gl_NumWorkGroups.xy);\n"
      "  uint gx = gl_NumWorkGroups.x, n = gx * gl_NumWorkGroups.y;\n"
      "  atomicAdd(b.v[c.y * gx + c.x], 1u);\n"
      "  b.v[n + gl_WorkGroupID.y * gx + gl_WorkGroupID.x] = c.y * gx + c.x;\n"
      "}\n";
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  kiln_gpu_kernel *k = file_kernel(dev, "shaders/pathtrace/groups.glsl", "uint", main_fn);
  enum { NSHAPES = 12 * 12 + 4 };
  uint32_t shapes[NSHAPES][2];
  for (uint32_t i = 0; i < 144; i++) shapes[i][0] = i % 12 + 1, shapes[i][1] = i / 12 + 1;
  static const uint32_t big[4][2] = {{8, 8}, {5, 8}, {100, 7}, {64, 64}};
  memcpy(shapes[144], big, sizeof big);
  for (int sh = 0; sh < NSHAPES; sh++) {
    uint32_t gx = shapes[sh][0], gy = shapes[sh][1], n = gx * gy;
    kiln_gpu_buffer *buf;
    KT_CODE(kiln_gpu_buffer_create(dev, 8 * n, &buf), KILN_OK);
    uint32_t *v = calloc(2 * n, 4);
    kiln_gpu_job *job;
    KT_CODE(kiln_gpu_job_create(dev, &job), KILN_OK);
    KT_CODE(kiln_gpu_job_upload(job, buf, 0, v, 8 * n), KILN_OK);
    KT_CODE(kiln_gpu_job_dispatch(job, k, &buf, NULL, gx, gy, 1), KILN_OK);
    KT_CODE(kiln_gpu_job_download(job, buf, 0, 8 * n, v), KILN_OK);
    kiln_future *f;
    KT_CODE(kiln_gpu_job_submit(job, NULL, 0, &f), KILN_OK);
    KT_CODE(kiln_future_result(f, -1, NULL), KILN_OK);
    kiln_future_release(f);
    for (uint32_t c = 0; c < n; c++)
      if (v[c] != 1) KT_FAIL("%u x %u workgroups: cell %u rendered %u times", gx, gy, c, v[c]);
    if (gy >= 4) { /* the first run of two, in each half of the rows */
      uint32_t top = 0, bottom = 0;
      for (uint32_t w = 0; w < n / 2; w++) *(v[n + w] / gx < gy / 2 ? &top : &bottom) += 1;
      /* each half of the rows at least half its share of the run (tile order: none at all) */
      if (2 * top * gy < n / 2 * (gy / 2) || 2 * bottom * gy < n / 2 * (gy - gy / 2))
        KT_FAIL("%u x %u workgroups: the first half renders %u cells at the top, %u at the bottom",
                gx, gy, top, bottom);
    }
    free(v);
    kiln_gpu_buffer_destroy(buf);
  }
  kiln_gpu_kernel_destroy(k);
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
}

/* shaders/pathtrace/box.glsl compiled alone into a kernel that runs box_hit for the rays below
 * against the box [2, 4]^3 on a unit grid from the origin: rays parallel to the x axis's slab
 * (direction x exactly +0 or -0) inside it hit, outside it miss, on its plane hit (the boundary
 * counts). With 1 / 0 = inf the slab's times were NaN (0 * inf, inf - inf) and the answer was
 * whatever min and max make of NaN: on lavapipe the ray along the box's plane missed. */
TEST(axis_parallel_slab) {
  static const char main_fn[] =
      "void main() {\n"
      "  uint i = gl_GlobalInvocationID.x;\n"
      "  Slab s = slab_setup(vec3(0.0), vec3(1.0), b.v[2u * i].xyz, b.v[2u * i + 1u].xyz);\n"
      "  uvec4 n = uvec4(2u | 2u << 16, 2u | 4u << 16, 4u | 4u << 16, 0u);\n"
      "  b.v[2u * i].w = box_hit(n, s, 0.0, 1e30) ? 1.0 : 0.0;\n"
      "}\n";
  enum { N = 8 };
  static const struct {
    float o[3], d[3];
    bool hit;
  } rays[N] = {{{3, 3, 0}, {0, 0, 1}, true},     {{5, 3, 0}, {0, 0, 1}, false},
               {{0, 3, 0}, {0, 0, 1}, false},    {{2, 3, 0}, {0, 0, 1}, true},
               {{3, 0, 3}, {-0.0f, 1, 0}, true}, {{3, 5, 3}, {0, -1, -0.0f}, true},
               {{6, 5, 3}, {0, -1, 0}, false},   {{3, 6, 1}, {0, -1, 0}, false}};
  float data[N][8];
  for (int i = 0; i < N; i++) {
    memcpy(data[i], rays[i].o, 12), memcpy(data[i] + 4, rays[i].d, 12);
    data[i][3] = -1, data[i][7] = 0;
  }
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  kiln_gpu_kernel *k = file_kernel(dev, "shaders/pathtrace/box.glsl", "vec4", main_fn);
  kiln_gpu_buffer *buf;
  KT_CODE(kiln_gpu_buffer_create(dev, sizeof data, &buf), KILN_OK);
  kiln_gpu_job *job;
  KT_CODE(kiln_gpu_job_create(dev, &job), KILN_OK);
  KT_CODE(kiln_gpu_job_upload(job, buf, 0, data, sizeof data), KILN_OK);
  KT_CODE(kiln_gpu_job_dispatch(job, k, &buf, NULL, N, 1, 1), KILN_OK);
  KT_CODE(kiln_gpu_job_download(job, buf, 0, sizeof data, data), KILN_OK);
  kiln_future *f;
  KT_CODE(kiln_gpu_job_submit(job, NULL, 0, &f), KILN_OK);
  KT_CODE(kiln_future_result(f, -1, NULL), KILN_OK);
  kiln_future_release(f);
  for (int i = 0; i < N; i++)
    if (data[i][3] != (rays[i].hit ? 1.0f : 0.0f))
      KT_FAIL("ray %d from (%g %g %g) along (%g %g %g): box_hit %g, want %d", i, rays[i].o[0],
              rays[i].o[1], rays[i].o[2], rays[i].d[0], rays[i].d[1], rays[i].d[2], data[i][3],
              rays[i].hit);
  kiln_gpu_buffer_destroy(buf);
  kiln_gpu_kernel_destroy(k);
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
}

/* ---- thin lens ------------------------------------------------------------------------------ */

/* An emissive half-plane (x > 0 at z = 3, radiance 1, facing the camera) on black: with a pinhole,
 * and with a thin lens focused at 3, every pixel is 0 or 1 except at most the one column that
 * straddles the edge; focused at 1 with an aperture of 0.5 the edge's circle of confusion on the
 * plane is 0.5 * (3 - 1) / 1 = 1 unit, several pixels wide: many pixels are in between. */
TEST(thin_lens) {
  kiln__scene s = base_scene();
  float pos[3] = {0, 0, 0}, at[3] = {0, 0, 1};
  memcpy(s.camera.position, pos, 12), memcpy(s.camera.look_at, at, 12);
  s.camera.vfov_deg = 60;
  s.settings.width = s.settings.height = 16;
  s.settings.spp = 8;
  add_material(&s, (kiln__material){.type = KILN__MAT_EMISSIVE, .emission = {1, 1, 1}});
  const float q[4][3] = {{0, -50, 3}, {0, 50, 3}, {50, 50, 3}, {50, -50, 3}};
  add_quad(&s, q, 0, 1);
  ctx c = open_ctx(&s, NULL);
  kiln_camera cam = {.thin_lens = true,
                     .position = {0, 0, 0},
                     .look_at = {0, 0, 1},
                     .up = {0, 1, 0},
                     .vfov_deg = 60,
                     .aperture = 0.5f,
                     .focus_distance = 3};
  for (int run = 0; run < 3; run++) {
    kiln_frame_config fc;
    kiln_frame_config_default(c.r, &fc);
    if (run > 0) fc.camera = &cam;
    cam.focus_distance = run == 2 ? 1 : 3;
    kiln_future *f;
    const kiln_image *img = render(&c, &fc, &f);
    int between = 0, ones = 0;
    for (int i = 0; i < 16 * 16; i++) {
      float v = info_of(img).color[3 * i];
      if (v > 0.01f && v < 0.99f) between++;
      if (v > 0.99f) ones++;
    }
    if (run < 2) {
      if (between > 16) KT_FAIL("run %d: %d pixels between 0 and 1", run, between);
      KT_TRUE(ones >= 7 * 16);
    } else if (between < 3 * 16) {
      KT_FAIL("out of focus: only %d pixels between 0 and 1", between);
    }
    kiln_future_release(f);
  }
  close_ctx(&c);
}

/* max_bounces = 0 is direct light only (camera ray + light sampled at the first hit): the Cornell
 * box is darker than with 4 bounces, and its ceiling (lit only indirectly) is black but for the
 * light itself. */
TEST(max_bounces) {
  char *path = repo_path("examples/cornell/scene.json");
  kiln_scene *scene;
  KT_CODE(kiln_scene_load(path, NULL, &scene), KILN_OK);
  free(path);
  ctx c = {0};
  c.gpu = tg_gpu();
  c.dev = tg_device(c.gpu, NULL);
  c.scene = scene;
  KT_CODE(kiln_renderer_create(scene, &c.dev, 1, NULL, &c.r), KILN_OK);
  kiln_frame_config fc;
  kiln_frame_config_default(c.r, &fc);
  fc.width = fc.height = 24, fc.spp = 4;
  double mean[2];
  for (int run = 0; run < 2; run++) {
    fc.max_bounces = run == 0 ? 0 : 4;
    kiln_future *f;
    const kiln_image *img = render(&c, &fc, &f);
    double s = 0, ceiling_sum = 0;
    int ceiling = 0;
    for (int i = 0; i < 24 * 24; i++) {
      s += info_of(img).color[3 * i];
      /* the top row's ceiling pixels (white, facing down) */
      if (i < 24 && info_of(img).normal[3 * i + 1] < -0.99f && info_of(img).albedo[3 * i] > 0.7f) {
        ceiling++;
        ceiling_sum += info_of(img).color[3 * i];
      }
    }
    mean[run] = s / (24 * 24);
    KT_TRUE(ceiling >= 4);
    if (run == 0) KT_TRUE(ceiling_sum == 0);
    else KT_TRUE(ceiling_sum > 0);
    kiln_future_release(f);
  }
  KT_TRUE(mean[0] < 0.8 * mean[1]);
  close_ctx(&c);
}

/* ---- writers -------------------------------------------------------------------------------- */

/* PFM: header "PF\n8 6\n-1.0\n", then rows bottom to top, bit-exact floats; PNG: a PNG file. */
TEST(writers) {
  kiln__scene s = base_scene();
  s.settings.width = 8, s.settings.height = 6, s.settings.spp = 2;
  add_material(&s, (kiln__material){.type = KILN__MAT_DIFFUSE, .albedo = {0.5f, 0.5f, 0.5f}});
  add_sphere(&s, 0, 0, 0, 1, 0, 1);
  s.env.type = KILN__ENV_GRADIENT;
  s.env.color[0] = 0.2f, s.env.top[1] = 2;
  ctx c = open_ctx(&s, NULL);
  kiln_frame_config fc;
  kiln_frame_config_default(c.r, &fc);
  kiln_future *f;
  const kiln_image *img = render(&c, &fc, &f);
  char dir[] = "/tmp/kiln_render_XXXXXX";
  KT_TRUE(mkdtemp(dir) != NULL);
  char pfm[128], png[128];
  snprintf(pfm, sizeof pfm, "%s/a.pfm", dir);
  snprintf(png, sizeof png, "%s/a.png", dir);
  KT_CODE(kiln_image_write_pfm(img, pfm), KILN_OK);
  KT_CODE(kiln_image_write_png(img, png, 0, true), KILN_OK);
  FILE *fp = fopen(pfm, "rb");
  KT_TRUE(fp != NULL);
  char head[16];
  KT_EQ(fread(head, 1, 12, fp), 12);
  KT_TRUE(memcmp(head, "PF\n8 6\n-1.0\n", 12) == 0);
  float px[6][8][3];
  KT_EQ(fread(px, sizeof px, 1, fp), 1);
  fclose(fp);
  for (int y = 0; y < 6; y++)
    KT_TRUE(memcmp(px[5 - y], info_of(img).color + 24 * y, sizeof px[0]) == 0);
  /* The gradient: the top row sees more of the +y sky (green) than the bottom row. */
  KT_TRUE(px[5][0][1] > px[0][0][1]);
  fp = fopen(png, "rb");
  KT_TRUE(fp != NULL);
  unsigned char sig[8];
  KT_EQ(fread(sig, 1, 8, fp), 8);
  fclose(fp);
  KT_TRUE(memcmp(sig, "\x89PNG\r\n\x1a\n", 8) == 0);
  remove(pfm), remove(png), rmdir(dir);
  kiln_future_release(f);
  close_ctx(&c);
}
