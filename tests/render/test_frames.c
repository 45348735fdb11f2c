/* test_frames.c: the CPU side of frames: only the planes asked for are traced, written and read
 * back; every plane of every frame is the bytes the renderer gave before frame memory was pooled
 * and planes were chosen; colour-only frames give the same colour; frame memory is reused, so
 * peak memory does not grow with the number of frames. */
// kt: timeout 120
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "image_internal.h"
#include "render_internal.h"
#include "render_test_util.h"

static uint64_t fnv(const void *p, size_t n) {
  const unsigned char *b = p;
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

/* ---- images unchanged ------------------------------------------------------------------------ */

enum { NCONF = 6 };
static const struct {
  const char *scene;
  int w, h, spp;
  unsigned tile;
} conf[NCONF] = {{"examples/cornell/scene.json", 48, 36, 8, 0},
                 {"examples/cornell/scene.json", 70, 50, 4, 32},
                 {"tests/render/data/gltf/normal_map.glb", 32, 32, 4, 0},
                 {"tests/render/data/gltf/alpha_cutout.glb", 32, 32, 4, 0},
                 {"tests/render/data/gltf/instancing.glb", 32, 24, 4, 0},
                 {"tests/render/data/gltf/vertex_colors.glb", 24, 32, 4, 0}};

/* FNV-1a of colour, depth, normal, albedo, object id, instance id and uv of frame 3 of each
 * configuration, from the renderer before frame memory was pooled, the AOVs laid out as planes
 * and planes made optional (lavapipe, Mesa 22.3). */
static const uint64_t want[NCONF][7] = {
    {0x0b4ae7d5f94c331aull, 0x51aee190cf3bae12ull, 0xb25c7abe5bb5991eull, 0x140651d4d26163bfull,
     0x9323e5745632c7d5ull, 0x9323e5745632c7d5ull, 0xb1ee950ab8c7658bull},
    {0x7c9041a8f8b3615dull, 0x0e9c30a6d2c7c266ull, 0x9c84121a34dae04eull, 0xcf480f690c7c6a52ull,
     0x862a6b8119046d40ull, 0x862a6b8119046d40ull, 0x7867265179e5f792ull},
    {0x39e0eae233ae1addull, 0x3ff0423be8f939ffull, 0x6f3a5915f1636132ull, 0x20a077eec10f5d03ull,
     0xcd1cfc3c514d0883ull, 0xcd1cfc3c514d0883ull, 0xd04c5319dd6c33afull},
    {0x6fcc28f6ea613c24ull, 0xceb1874a3e1ce203ull, 0xe788e0a4afc0e383ull, 0xfaa0be2d985d731eull,
     0x473a9d195357f8e3ull, 0x473a9d195357f8e3ull, 0x5b369e267dba9323ull},
    {0x8006b23a614aa1d2ull, 0x1e09b5dc33792bd1ull, 0x8283968ad92530e0ull, 0x660b22f7aaae1d72ull,
     0x09a03e99327188fdull, 0x09a03e99327188fdull, 0x5270449ab55504daull},
    {0x26e0d31dd8fc2022ull, 0x0b7b768c9645308cull, 0xf805a7e38f318e83ull, 0xc1983214af66098dull,
     0x8ed7901871561743ull, 0x8ed7901871561743ull, 0xa4f4436abf9c3549ull},
};

static kiln_scene *load(const char *rel) {
  char *path = repo_path(rel);
  kiln_scene *s;
  kiln_error_detail err;
  int rc = kiln_scene_load(path, &err, &s);
  free(path);
  if (rc) KT_FAIL("load %s: %s", rel, err.message);
  return s;
}

/* Frame 3 of configuration k with the planes asked for. */
static const kiln_image *frame3(ctx *c, int k, unsigned planes, kiln_future **f) {
  kiln_frame_config fc;
  kiln_frame_config_default(c->r, &fc);
  fc.width = conf[k].w, fc.height = conf[k].h, fc.spp = conf[k].spp;
  fc.tile_size = conf[k].tile, fc.frame = 3, fc.planes = planes;
  return render(c, &fc, f);
}

TEST(images_unchanged) {
  for (int k = 0; k < NCONF; k++) {
    ctx c = {0};
    c.gpu = tg_gpu();
    c.dev = tg_device(c.gpu, NULL);
    c.scene = load(conf[k].scene);
    KT_CODE(kiln_renderer_create(c.scene, &c.dev, 1, NULL, &c.r), KILN_OK);
    kiln_future *f, *g;
    kiln_image_info a = info_of(frame3(&c, k, 0, &f));
    size_t n = (size_t)a.width * (size_t)a.height;
    const void *plane[7] = {a.color, a.depth, a.normal, a.albedo, a.object_id, a.instance_id, a.uv};
    const size_t per[7] = {12, 4, 12, 12, 4, 4, 8};
    for (int p = 0; p < 7; p++)
      if (fnv(plane[p], n * per[p]) != want[k][p])
        KT_FAIL("%s %dx%d: plane %d is 0x%016llx, was 0x%016llx", conf[k].scene, conf[k].w,
                conf[k].h, p, (unsigned long long)fnv(plane[p], n * per[p]),
                (unsigned long long)want[k][p]);
    /* colour alone: the same colour, and no other plane */
    kiln_image_info b = info_of(frame3(&c, k, KILN_PLANE_COLOR, &g));
    KT_EQ(fnv(b.color, n * 12), want[k][0]);
    KT_TRUE(!b.depth && !b.normal && !b.albedo && !b.object_id && !b.instance_id && !b.uv);
    kiln_future_release(f);
    kiln_future_release(g);
    close_ctx(&c);
  }
}

/* A renderer made with the null kernel (kiln__renderer_create_null: the path tracer never
 * compiled) gives every plane of a frame the bytes of one made with the path tracer and then
 * switched to the null kernel (kiln__renderer_null_kernel), its tiles and passes included (the
 * null kernel's noise is drawn once a pass), and not the path tracer's image. */
TEST(null_kernel_from_the_start_matches_switching_to_it) {
  ctx c = {0};
  c.gpu = tg_gpu();
  c.dev = tg_device(c.gpu, NULL);
  c.scene = load(conf[1].scene);
  kiln_renderer *made, *switched;
  KT_CODE(kiln_renderer_create(c.scene, &c.dev, 1, NULL, &switched), KILN_OK);
  KT_CODE(kiln__renderer_null_kernel(switched), KILN_OK);
  KT_CODE(kiln__renderer_create_null(c.scene, &c.dev, 1, NULL, &made), KILN_OK);
  kiln_future *f, *g;
  kiln_frame_config fc; /* 16 spp, the device's tiles: several passes and tiles on lavapipe */
  kiln_frame_config_default(made, &fc);
  fc.width = 70, fc.height = 50, fc.spp = 16, fc.frame = 3;
  c.r = made;
  kiln_image_info a = info_of(render(&c, &fc, &f));
  c.r = switched;
  kiln_image_info b = info_of(render(&c, &fc, &g));
  size_t n = (size_t)a.width * (size_t)a.height;
  const void *pa[7] = {a.color, a.depth, a.normal, a.albedo, a.object_id, a.instance_id, a.uv};
  const void *pb[7] = {b.color, b.depth, b.normal, b.albedo, b.object_id, b.instance_id, b.uv};
  const size_t per[7] = {12, 4, 12, 12, 4, 4, 8};
  for (int p = 0; p < 7; p++)
    if (memcmp(pa[p], pb[p], n * per[p]))
      KT_FAIL("plane %d: 0x%016llx made null, 0x%016llx switched", p,
              (unsigned long long)fnv(pa[p], n * per[p]),
              (unsigned long long)fnv(pb[p], n * per[p]));
  KT_TRUE(fnv(a.color, n * 12) != want[1][0] && a.color[0] > 0); /* not the path tracer's */
  kiln_future_release(f);
  kiln_future_release(g);
  kiln_renderer_destroy(made);
  close_ctx(&c); /* and the switched renderer */
}

/* ---- only the planes asked for ------------------------------------------------------------- */

TEST(planes_not_asked_for_are_not_computed) {
  ctx c = {0};
  c.gpu = tg_gpu();
  c.dev = tg_device(c.gpu, NULL);
  c.scene = load(conf[0].scene);
  KT_CODE(kiln_renderer_create(c.scene, &c.dev, 1, NULL, &c.r), KILN_OK);
  static const struct {
    unsigned planes;
    uint64_t aov_planes; /* AOV planes written and read back */
    bool depth, normal, albedo, id, instance, uv;
  } t[] = {{KILN_PLANE_COLOR, 0, 0, 0, 0, 0, 0, 0},
           {KILN_PLANE_DEPTH, 1, 1, 0, 0, 0, 0, 0},
           {KILN_PLANE_NORMAL | KILN_PLANE_INSTANCE, 2, 0, 1, 0, 0, 1, 0},
           {KILN_PLANE_UV, 2, 0, 0, 0, 1, 0, 1}, /* uv brings object_id */
           {KILN_PLANE_ALBEDO | KILN_PLANE_ID, 1, 0, 0, 1, 1, 0, 0},
           {0, 3, 1, 1, 1, 1, 1, 1}};
  kiln_future *f0;
  kiln_image_info all = info_of(frame3(&c, 0, 0, &f0)); /* the reference for every plane */
  size_t n = (size_t)all.width * (size_t)all.height;
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    kiln__renderer_stats s0, s1;
    kiln__renderer_get_stats(c.r, &s0);
    kiln_future *f;
    kiln_image_info ii = info_of(frame3(&c, 0, t[i].planes, &f));
    kiln__renderer_get_stats(c.r, &s1);
    KT_EQ(s1.frames - s0.frames, 1);
    KT_EQ(s1.aov_planes - s0.aov_planes, t[i].aov_planes);
    KT_EQ(s1.bytes_read_back - s0.bytes_read_back, n * 16 * (1 + t[i].aov_planes));
    KT_EQ(ii.depth != NULL, t[i].depth);
    KT_EQ(ii.normal != NULL, t[i].normal);
    KT_EQ(ii.albedo != NULL, t[i].albedo);
    KT_EQ(ii.object_id != NULL, t[i].id);
    KT_EQ(ii.instance_id != NULL, t[i].instance);
    KT_EQ(ii.uv != NULL, t[i].uv);
    /* what is there is what a frame with every plane has */
    KT_TRUE(!memcmp(ii.color, all.color, n * 12));
    KT_TRUE(!ii.depth || !memcmp(ii.depth, all.depth, n * 4));
    KT_TRUE(!ii.normal || !memcmp(ii.normal, all.normal, n * 12));
    KT_TRUE(!ii.albedo || !memcmp(ii.albedo, all.albedo, n * 12));
    KT_TRUE(!ii.object_id || !memcmp(ii.object_id, all.object_id, n * 4));
    KT_TRUE(!ii.instance_id || !memcmp(ii.instance_id, all.instance_id, n * 4));
    KT_TRUE(!ii.uv || !memcmp(ii.uv, all.uv, n * 8));
    kiln_future_release(f);
  }
  kiln_future_release(f0);
  close_ctx(&c);
}

/* ---- frame memory reused --------------------------------------------------------------------- */

/* Under AddressSanitizer freed memory waits in its quarantine, so peak RSS says nothing about
 * reuse there: the test then checks the pool's counts alone. */
#if defined(__SANITIZE_ADDRESS__)
#define FRAMES_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FRAMES_ASAN 1
#endif
#endif

static long peak_rss_kib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

/* Renders frames [0, last) of 16x16, 1 spp, with `window` in flight; *rss_100: the peak RSS once
 * frame 100 is done. */
static void frames(ctx *c, long last, int window, long *rss_100) {
  enum { MAXW = 16 };
  kiln_future *f[MAXW] = {0};
  for (long i = 0; i < last + window; i++) {
    kiln_future **slot = &f[i % window];
    if (*slot) {
      KT_CODE(kiln_future_result(*slot, -1, NULL), KILN_OK);
      kiln_future_release(*slot);
      *slot = NULL;
      if (i - window == 100) *rss_100 = peak_rss_kib();
    }
    if (i >= last) continue;
    kiln_frame_config fc;
    kiln_frame_config_default(c->r, &fc);
    fc.width = fc.height = 16, fc.spp = 1, fc.frame = (uint32_t)i;
    fc.planes = i % 3 == 0 ? KILN_PLANE_COLOR : 0; /* two sizes of frame memory */
    KT_CODE(kiln_renderer_submit(c->r, &fc, slot), KILN_OK);
  }
}

/* 10,000 frames peak at the memory of 100 (within 10%), and frame memory is made only for the
 * frames in flight at once. */
TEST(ten_thousand_frames_in_the_memory_of_a_hundred) {
  kiln_pool *pool;
  KT_CODE(kiln_pool_create(NULL, &pool), KILN_OK);
  ctx c = {0};
  c.gpu = tg_gpu();
  c.dev = tg_device(c.gpu, NULL);
  c.scene = load(conf[0].scene);
  kiln_renderer_config rc;
  kiln_renderer_config_default(&rc);
  rc.pool = pool;
  KT_CODE(kiln_renderer_create(c.scene, &c.dev, 1, &rc, &c.r), KILN_OK);
  enum { WINDOW = 8 };
  long m100 = 0;
  frames(&c, 10000, WINDOW, &m100);
  long m10k = peak_rss_kib();
  kiln__renderer_stats s;
  kiln__renderer_get_stats(c.r, &s);
  fprintf(stderr,
          "peak RSS: %ld KiB after 100 frames, %ld KiB after 10,000; frame memory made "
          "%llu times, reused %llu\n",
          m100, m10k, (unsigned long long)s.bufs_made, (unsigned long long)s.bufs_reused);
#ifndef FRAMES_ASAN
  if ((double)m10k > 1.10 * (double)m100)
    KT_FAIL("peak RSS grew from %ld KiB (100 frames) to %ld KiB (10,000)", m100, m10k);
#endif
  KT_EQ(s.frames, 10000);
  KT_TRUE(s.bufs_made <= 2 * WINDOW); /* two sizes, at most WINDOW of each */
  KT_EQ(s.bufs_made + s.bufs_reused, 10000);
  close_ctx(&c);
  kiln_pool_destroy(pool);
}

/* ---- sizes at the ends of their types ------------------------------------------------------ */

/* A tile larger than any int32 image side is the whole image: the same pixels as a tile of the
 * image's size, not a loop whose int32 step is negative. A frame whose memory, w * h * 16 per
 * plane, does not fit a 64-bit size is refused before anything is made. */
TEST(huge_tiles_and_frames) {
  ctx c = {0};
  c.gpu = tg_gpu();
  c.dev = tg_device(c.gpu, NULL);
  c.scene = load(conf[0].scene);
  KT_CODE(kiln_renderer_create(c.scene, &c.dev, 1, NULL, &c.r), KILN_OK);
  kiln_frame_config fc;
  kiln_frame_config_default(c.r, &fc);
  fc.width = 20, fc.height = 12, fc.spp = 2, fc.planes = KILN_PLANE_COLOR;
  fc.tile_size = 20;
  kiln_future *f, *g;
  kiln_image_info a = info_of(render(&c, &fc, &f));
  fc.tile_size = 0x80000000u;
  kiln_image_info b = info_of(render(&c, &fc, &g));
  KT_EQ(fnv(a.color, 20 * 12 * 12), fnv(b.color, 20 * 12 * 12));
  kiln_future_release(f);
  kiln_future_release(g);
  fc.tile_size = 0;
  fc.width = 1 << 30, fc.height = (1 << 30) + 1; /* w * h * 16 wraps to 16 GiB */
  kiln_future *h = NULL;
  KT_CODE(kiln_renderer_submit(c.r, &fc, &h), KILN_EINVAL);
  KT_TRUE(h == NULL);
  close_ctx(&c);
}
