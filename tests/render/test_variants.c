/* test_variants.c: scene variants (kiln_renderer_submit_scene): a job's frame with overrides,
 * rendered by the renderer made for the job's scene, gives the image that a renderer made for
 * the frame's scene alone gives, bit for bit, for every kind of override (materials, a material
 * of another type, lights, the environment, an object's transform and material, object
 * keyframes); material, light and environment overrides build no BVH, moving the instances of a
 * shared mesh builds only the top level, and each frame uploads only what differs. */
// kt: timeout 240
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "batch_internal.h"
#include "kiln/batch.h"
#include "kt_stb_write.h"
#include "render_internal.h"
#include "render_test_util.h"

static const char scene_json[] =
    "{\n"
    "  \"settings\": {\"width\": 24, \"height\": 16, \"spp\": 4, \"max_bounces\": 3, \"seed\": 5},\n"
    "  \"camera\": {\"position\": [0, 1, -4], \"look_at\": [0, 0.8, 0], \"vfov\": 45},\n"
    "  \"materials\": {\"red\": {\"type\": \"diffuse\", \"albedo\": [0.8, 0.1, 0.1]},\n"
    "                \"metal\": {\"type\": \"conductor\", \"roughness\": 0.2},\n"
    "                \"floor\": {\"type\": \"diffuse\", \"texture\": \"grid.png\"}},\n"
    "  \"objects\": [\n"
    "    {\"type\": \"sphere\", \"name\": \"ball\", \"center\": [-0.8, 0.5, 0], \"radius\": 0.5,\n"
    "     \"material\": \"red\"},\n"
    "    {\"type\": \"box\", \"name\": \"crate\", \"min\": [0.3, 0, 0], \"max\": [1.2, 0.9, 0.9],\n"
    "     \"material\": \"metal\"},\n"
    "    {\"type\": \"mesh\", \"name\": \"tet\", \"file\": \"tet.obj\", \"material\": \"red\",\n"
    "     \"instances\": [{\"translate\": [0, 1.6, 0.5]}, {\"translate\": [1, 1.5, 1]}]},\n"
    "    {\"type\": \"quad\", \"name\": \"ground\", \"corner\": [-5, 0, -5], \"u\": [0, 0, 10],\n"
    "     \"v\": [10, 0, 0], \"material\": \"floor\"}\n"
    "  ],\n"
    "  \"lights\": [{\"type\": \"quad\", \"name\": \"key\", \"corner\": [-0.5, 3, -0.5],\n"
    "              \"u\": [1, 0, 0], \"v\": [0, 0, 1], \"radiance\": [6, 6, 6]}],\n"
    "  \"environment\": {\"type\": \"constant\", \"color\": [0.2, 0.2, 0.25]}\n"
    "}\n";

static const char tet_obj[] = "v 0 0 0\nv 0.4 0 0\nv 0 0.4 0\nv 0 0 0.4\n"
                              "f 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n";

/* One line a kind of override; the first has none (the job's scene itself). */
static const char list_job[] =
    "{\"scene\": \"scene.json\", \"images\": [\n"
    "  {\"name\": \"plain\"},\n"
    "  {\"name\": \"albedo\", \"materials\": {\"red\": {\"albedo\": [0.1, 0.2, 0.9]}}},\n"
    "  {\"name\": \"glass\", \"materials\": {\"metal\": {\"type\": \"dielectric\", \"ior\": 1.45}}},\n"
    "  {\"name\": \"light\", \"lights\": {\"key\": {\"radiance\": [8, 4, 2]}}},\n"
    "  {\"name\": \"env\", \"environment\": {\"type\": \"gradient\", \"bottom\": [0.1, 0.05, 0],\n"
    "   \"top\": [0.1, 0.2, 0.4]}},\n"
    "  {\"name\": \"moved\", \"objects\": {\"crate\": {\"transform\": {\"translate\": [-0.5, 0, 0.5],\n"
    "   \"rotate\": [0, 30, 0]}}}},\n"
    "  {\"name\": \"gold\", \"objects\": {\"ball\": {\"material\": {\"type\": \"conductor\",\n"
    "   \"albedo\": [1, 0.78, 0.34], \"roughness\": 0.3}}}},\n"
    "  {\"name\": \"light_moved\", \"seed\": 9, \"lights\": {\"key\": {\"corner\": [0, 2.5, -1]}},\n"
    "   \"camera\": {\"position\": [0.5, 1.2, -3.5]}}\n"
    "]}\n";

/* Moves of the tetrahedron, a mesh placed twice (shared), then of the crate (a box, copied into
 * the world). */
/* Overrides that make the tetrahedron unshareable (its material emits: copied into the world),
 * then shareable again (mirrored, then moved with the crate). */
static const char flip_job[] =
    "{\"scene\": \"scene.json\", \"images\": [\n"
    "  {\"name\": \"red_emits\", \"materials\": {\"red\": {\"type\": \"emissive\",\n"
    "   \"emission\": [2, 1, 1]}}},\n"
    "  {\"name\": \"tet_emits\", \"objects\": {\"tet\": {\"material\": {\"type\": \"emissive\",\n"
    "   \"emission\": [1, 2, 1]}}}},\n"
    "  {\"name\": \"tet_mirrored\", \"objects\": {\"tet\": {\"transform\": {\"scale\": [-1, 1, 1]}}}},\n"
    "  {\"name\": \"tet_and_crate\", \"objects\": {\"tet\": {\"transform\": {\"translate\": [0.1, 0, 0]}},\n"
    "   \"crate\": {\"transform\": {\"translate\": [0.2, 0, 0]}}}}\n"
    "]}\n";

static const char inst_job[] =
    "{\"scene\": \"scene.json\", \"images\": [\n"
    "  {\"name\": \"tet_moved\", \"objects\": {\"tet\": {\"transform\": {\"translate\": [-0.4, 0, -0.3],\n"
    "   \"rotate\": [0, 40, 0]}}}},\n"
    "  {\"name\": \"crate_moved\", \"objects\": {\"crate\": {\"transform\": {\"translate\": [0.2, 0, 0]}}}}\n"
    "]}\n";

static const char anim_job[] =
    "{\"scene\": \"scene.json\", \"animation\": {\"frames\": 3, \"seed\": \"frame\",\n"
    "  \"objects\": {\"tet\": {\"keyframes\": [{\"frame\": 0},\n"
    "    {\"frame\": 2, \"translate\": [0.3, -0.2, 0], \"rotate\": [0, 60, 0]}]},\n"
    "  \"ball\": {\"keyframes\": [{\"frame\": 0}, {\"frame\": 2, \"translate\": [0, 0.4, 0]}]}}}}\n";

static char dir[512];

static void write_file(const char *name, const char *text) {
  char p[700];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "w");
  if (!f || fputs(text, f) < 0) KT_FAIL("cannot write %s", p);
  fclose(f);
}

/* A 4x4 checker of colours a and b as dir/grid.png. */
static void write_grid(unsigned char a, unsigned char b) {
  unsigned char px[4 * 4 * 3];
  for (int i = 0; i < 16; i++)
    for (int k = 0; k < 3; k++)
      px[3 * i + k] = ((i % 4 + i / 4) % 2) ? a : (unsigned char)(b - 20 * k);
  char p[700];
  snprintf(p, sizeof p, "%s/grid.png", dir);
  if (!stbi_write_png(p, 4, 4, 3, px, 12)) KT_FAIL("cannot write %s", p);
}

static void setup(void) {
  const char *base = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/kiln-variants-XXXXXX", base && base[0] ? base : "/tmp");
  if (!mkdtemp(dir)) KT_FAIL("mkdtemp failed");
  write_file("scene.json", scene_json);
  write_file("tet.obj", tet_obj);
  write_grid(200, 90);
  write_file("list.json", list_job);
  write_file("anim.json", anim_job);
  write_file("inst.json", inst_job);
}

static void cleanup(void) {
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

static kiln_job *load_job(const char *name) {
  char p[700];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  kiln_job *job = NULL;
  kiln_error_detail e;
  int rc = kiln_job_load(p, NULL, &e, &job);
  if (rc) {
    char m[1400];
    KT_FAIL("load %s: %s", name, kiln_error_detail_format(&e, m, sizeof m));
  }
  return job;
}

static kiln_image *wait_image(kiln_future *f) {
  void *v = NULL;
  int rc = kiln_future_result(f, -1, &v);
  if (rc) {
    const char *m = NULL;
    kiln_future_error(f, 0, &m);
    KT_FAIL("frame failed: %s: %s", kiln_err_name(rc), m ? m : "");
  }
  return v;
}

/* Every plane both images have, byte for byte. */
static void expect_same(const kiln_image *a, const kiln_image *b, const char *what) {
  kiln_image_info x = info_of(a), y = info_of(b);
  KT_EQ(x.width, y.width);
  KT_EQ(x.height, y.height);
  size_t n = (size_t)x.width * (size_t)x.height;
  const struct {
    const void *p, *q;
    size_t bytes;
    const char *name;
  } planes[] = {{x.color, y.color, 12, "color"},     {x.depth, y.depth, 4, "depth"},
                {x.normal, y.normal, 12, "normal"},  {x.albedo, y.albedo, 12, "albedo"},
                {x.object_id, y.object_id, 4, "id"}, {x.instance_id, y.instance_id, 4, "inst"}};
  KT_TRUE(x.color && y.color);
  for (size_t k = 0; k < sizeof planes / sizeof planes[0]; k++) {
    if (!planes[k].p || !planes[k].q) continue;
    if (memcmp(planes[k].p, planes[k].q, n * planes[k].bytes) != 0)
      KT_FAIL("%s: the %s planes differ", what, planes[k].name);
  }
}

/* Renders every frame of job with overrides twice: as a variant on r and by a renderer made for
 * the frame's scene alone; the images must be the same. Returns the frames with overrides. */
static int check_job(kiln_job *job, kiln_renderer *r, kiln_gpu_device *dev,
                     kiln__variant_stats *after_each, int cap) {
  kiln_job_frame fr;
  kiln_error_detail e;
  int n = 0, rc;
  while ((rc = kiln_job_next(job, &fr, &e)) == 0) {
    kiln_scene *scene = NULL;
    KT_CODE(kiln_job_frame_scene(job, &fr, &e, &scene), KILN_OK);
    if (!scene) {
      kiln_job_frame_clear(&fr);
      continue;
    }
    kiln_renderer *alone = NULL;
    kiln_renderer_config rc0;
    kiln_renderer_config_default(&rc0);
    KT_CODE(kiln_renderer_create(scene, &dev, 1, &rc0, &alone), KILN_OK);
    kiln_frame_config fc;
    kiln_frame_config_default(r, &fc);
    fc.camera = &fr.camera, fc.seed = fr.seed, fc.frame = (uint32_t)fr.frame;
    kiln_future *fa = NULL, *fb = NULL;
    KT_CODE(kiln_renderer_submit_scene(r, scene, &fc, &fa), KILN_OK);
    KT_CODE(kiln_renderer_submit(alone, &fc, &fb), KILN_OK);
    expect_same(wait_image(fa), wait_image(fb), fr.where);
    kiln_future_release(fa), kiln_future_release(fb);
    kiln_renderer_destroy(alone);
    kiln_scene_destroy(scene);
    if (n < cap) kiln__renderer_variant_stats(r, &after_each[n]);
    n++;
    kiln_job_frame_clear(&fr);
  }
  KT_CODE(rc, KILN_EEOF);
  return n;
}

static kiln_renderer *job_renderer(kiln_job *job, kiln_gpu_device *dev) {
  kiln_renderer_config rc;
  kiln_renderer_config_default(&rc);
  rc.scene_variants = true;
  kiln_renderer *r = NULL;
  KT_CODE(kiln_renderer_create(kiln_job_scene(job), &dev, 1, &rc, &r), KILN_OK);
  return r;
}

TEST(overrides_match_a_fresh_load) {
  setup();
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  kiln_job *job = load_job("list.json");
  kiln_renderer *r = job_renderer(job, dev);
  kiln__variant_stats st[8];
  int n = check_job(job, r, dev, st, 8);
  KT_EQ(n, 7);
  /* albedo, glass, light colour, environment: the job scene's BVH; the crate moved: one built */
  for (int i = 0; i < 4; i++) KT_EQ(st[i].bvh_builds, 0);
  KT_EQ(st[4].bvh_builds, 1);
  KT_EQ(st[5].bvh_builds, 1); /* a material in place of the ball's: no new BVH */
  KT_EQ(st[6].bvh_builds, 2); /* the quad light moved: its triangles did */
  KT_EQ(st[6].variants, 7);
  for (int i = 0; i < 7; i++) KT_EQ(st[i].top_builds, 0);
  /* an albedo override uploads the few buffers that hold materials, not the geometry */
  KT_TRUE(st[0].buffers_uploaded >= 1 && st[0].buffers_uploaded <= 3);
  /* materials, lights and the environment: the tetrahedron (a shared mesh, the job's cache
   * entry) is neither packed nor compared again; the crate moved: the triangle buffers are
   * packed again, its 4 triangles with them */
  KT_EQ(st[3].mesh_tris_packed, 0);
  KT_TRUE(st[3].buffers_reused >= 4 * 5);
  KT_EQ(st[4].mesh_tris_packed, 4);
  /* a material of the ball's own comes before the light's, whose index (in its triangles' ids)
   * is then one more: TRIS differs, packed again with the mesh's triangles */
  KT_EQ(st[5].mesh_tris_packed, 8);
  /* no override names an image: the grid's texels are never packed again */
  KT_EQ(st[6].texels_packed, 0);
  KT_TRUE(st[1].kernels >= 1); /* a dielectric: a kernel with that feature */
  kiln_renderer_destroy(r);
  kiln_job_destroy(job);
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
  cleanup();
}

/* The tetrahedron is a mesh placed twice, so shared: moving it builds only a top level over the
 * placements and uploads the placements' buffer and what the scene's extent sets (the globals'
 * and punctual lights' numbers), not the geometry; moving the crate builds the flat tree and a
 * top level, on the job scene's tree of the tetrahedron. */
/* A frame whose overrides turn a shared mesh into copies (an emitting material) has other
 * geometry than the job scene: a BVH of its own; one that keeps it shared and moves it builds a
 * top level only. Every frame's image is a fresh load's, byte for byte (check_job). */
TEST(overrides_that_change_what_is_shared) {
  setup();
  write_file("flip.json", flip_job);
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  kiln_job *job = load_job("flip.json");
  KT_EQ(kiln_job_scene(job)->data.nplacements, 2);
  kiln_renderer *r = job_renderer(job, dev);
  kiln__variant_stats st[4];
  KT_EQ(check_job(job, r, dev, st, 4), 4);
  /* counts so far, after each frame */
  const uint64_t bvh[4] = {1, 2, 2, 3}, top[4] = {0, 0, 1, 1};
  for (int i = 0; i < 4; i++) {
    KT_EQ(st[i].variants, (uint64_t)i + 1);
    KT_EQ(st[i].bvh_builds, bvh[i]);
    KT_EQ(st[i].top_builds, top[i]);
  }
  kiln_renderer_destroy(r);
  kiln_job_destroy(job);
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
  cleanup();
}

TEST(moved_instances_build_a_top_level) {
  setup();
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  kiln_job *job = load_job("inst.json");
  KT_EQ(kiln_job_scene(job)->data.nplacements, 2);
  kiln_renderer *r = job_renderer(job, dev);
  kiln__variant_stats st[2];
  KT_EQ(check_job(job, r, dev, st, 2), 2);
  KT_EQ(st[0].bvh_builds, 0);
  KT_EQ(st[0].top_builds, 1);
  KT_TRUE(st[0].buffers_uploaded >= 1 && st[0].buffers_uploaded <= 3);
  KT_TRUE(st[0].bytes_uploaded < 4096);
  /* the placements moved: no mesh triangle nor texel packed; the trees', triangles' and
   * textures' buffers (NODES, PRIMS, TRIS, ATTR, VATTR, TEXINFO, TEXELS) are the job's */
  KT_EQ(st[0].mesh_tris_packed, 0);
  KT_EQ(st[0].texels_packed, 0);
  KT_EQ(st[0].buffers_reused, 7);
  /* the crate moved: the flat tree differs, so do the triangle buffers */
  KT_EQ(st[1].mesh_tris_packed, 4);
  KT_EQ(st[1].texels_packed, 0);
  KT_EQ(st[1].bvh_builds, 1);
  KT_EQ(st[1].top_builds, 1);
  kiln_renderer_destroy(r);
  kiln_job_destroy(job);
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
  cleanup();
}

/* A grid of 1152 triangles (2 q^2) with uv, in [-0.6, 0.6] x [0, 1.2]
 * of z = 0 with a ripple in z, as dir/name. */
static size_t write_grid_obj(const char *name) {
  int q = 24;
  char p[700];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "w");
  if (!f) KT_FAIL("cannot write %s", p);
  for (int j = 0; j <= q; j++)
    for (int i = 0; i <= q; i++) {
      float u = (float)i / (float)q, v = (float)j / (float)q;
      fprintf(f, "v %g %g %g\nvt %g %g\n", 1.2 * u - 0.6, 1.2 * v,
              0.05 * sin(u * 11.0) * cos(v * 7.0), u, v);
    }
  for (int j = 0; j < q; j++)
    for (int i = 0; i < q; i++) {
      int a = j * (q + 1) + i + 1, b = a + 1, c = a + q + 1, d = c + 1;
      fprintf(f, "f %d/%d %d/%d %d/%d\nf %d/%d %d/%d %d/%d\n", a, a, b, b, c, c, b, b, d, d, c, c);
    }
  if (fclose(f) != 0) KT_FAIL("cannot write %s", p);
  return (size_t)(2 * q * q);
}

/* The scene of the tests below: scene.json's with a mesh placed once and shared ("grid", "share":
 * true) and one placed once and copied into the world ("wedge"). */
static const char one_scene_json[] =
    "{\n"
    "  \"settings\": {\"width\": 24, \"height\": 16, \"spp\": 4, \"max_bounces\": 3, \"seed\": 5},\n"
    "  \"camera\": {\"position\": [0, 1, -4], \"look_at\": [0, 0.8, 0], \"vfov\": 45},\n"
    "  \"materials\": {\"red\": {\"type\": \"diffuse\", \"albedo\": [0.8, 0.1, 0.1]},\n"
    "                \"metal\": {\"type\": \"conductor\", \"roughness\": 0.2},\n"
    "                \"floor\": {\"type\": \"diffuse\", \"texture\": \"grid.png\"}},\n"
    "  \"objects\": [\n"
    "    {\"type\": \"mesh\", \"name\": \"grid\", \"file\": \"big.obj\", \"share\": true,\n"
    "     \"material\": \"metal\",\n"
    "     \"transform\": {\"translate\": [-0.3, 0.1, 0.4], \"rotate\": [0, 20, 0]}},\n"
    "    {\"type\": \"mesh\", \"name\": \"wedge\", \"file\": \"tet.obj\", \"material\": \"red\",\n"
    "     \"transform\": {\"translate\": [0.8, 0.2, -0.5]}},\n"
    "    {\"type\": \"quad\", \"name\": \"ground\", \"corner\": [-5, 0, -5], \"u\": [0, 0, 10],\n"
    "     \"v\": [10, 0, 0], \"material\": \"floor\"}\n"
    "  ],\n"
    "  \"lights\": [{\"type\": \"quad\", \"name\": \"key\", \"corner\": [-0.5, 3, -0.5],\n"
    "              \"u\": [1, 0, 0], \"v\": [0, 0, 1], \"radiance\": [6, 6, 6]}],\n"
    "  \"environment\": {\"type\": \"constant\", \"color\": [0.2, 0.2, 0.25]}\n"
    "}\n";

/* The grid moved; moved with its material's albedo changed (a domain-randomisation frame); given
 * an emitting material (copied into the world for that frame); given another material of its own
 * in place (still shared, its triangles' material table another); the wedge moved. */
static const char one_job[] =
    "{\"scene\": \"one.json\", \"images\": [\n"
    "  {\"name\": \"grid_moved\", \"objects\": {\"grid\": {\"transform\": {\"translate\": [0.2, 0, 0.3],\n"
    "   \"rotate\": [0, -35, 0]}}}},\n"
    "  {\"name\": \"grid_moved_metal\", \"materials\": {\"metal\": {\"albedo\": [0.9, 0.6, 0.3]}},\n"
    "   \"objects\": {\"grid\": {\"transform\": {\"translate\": [-0.1, 0.2, 0], \"scale\": 0.8}}}},\n"
    "  {\"name\": \"grid_emits\", \"objects\": {\"grid\": {\"material\": {\"type\": \"emissive\",\n"
    "   \"emission\": [1, 2, 1]}}}},\n"
    "  {\"name\": \"grid_glass\", \"objects\": {\"grid\": {\"material\": {\"type\": \"dielectric\",\n"
    "   \"ior\": 1.5}}}},\n"
    "  {\"name\": \"wedge_moved\", \"objects\": {\"wedge\": {\"transform\": {\"translate\": [0.5, 0, 0]}}}}\n"
    "]}\n";

/* A mesh placed once with "share": true is shared: a frame that moves it
 * (with a material change or not) builds only a top level and packs none of its triangles; one
 * that makes it emit copies it into the world (a BVH of its own); one that gives it another
 * material packs its triangles again but builds nothing. A mesh placed once without "share" is copied: moving
 * it builds the flat tree, on the job's tree of the grid. Every frame's image is a fresh load's
 * rendered by its own renderer, byte for byte (check_job). */
TEST(a_mesh_placed_once_and_shared_moves_by_its_top_level) {
  setup();
  size_t ntris = write_grid_obj("big.obj");
  write_file("one.json", one_scene_json);
  write_file("onejob.json", one_job);
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  kiln_job *job = load_job("onejob.json");
  const kiln__scene *js = &kiln_job_scene(job)->data;
  KT_EQ(js->nmeshes, 1);
  KT_EQ(js->nplacements, 1);
  KT_EQ(js->meshes[0].ntris, ntris);
  KT_EQ(js->ntris, 4 + 2 + 2); /* the wedge, the ground and the light: copies */
  kiln_renderer *r = job_renderer(job, dev);
  kiln__variant_stats st[5];
  KT_EQ(check_job(job, r, dev, st, 5), 5);
  /* counts so far, after each frame */
  const uint64_t bvh[5] = {0, 0, 1, 1, 2}, top[5] = {1, 2, 2, 2, 2};
  for (int i = 0; i < 5; i++) {
    KT_EQ(st[i].variants, (uint64_t)i + 1);
    KT_EQ(st[i].bvh_builds, bvh[i]);
    KT_EQ(st[i].top_builds, top[i]);
  }
  /* moved, and moved with an albedo: nothing of the grid packed, the 7 geometry and texture
   * buffers the job's */
  KT_EQ(st[0].mesh_tris_packed, 0);
  KT_EQ(st[0].buffers_reused, 7);
  KT_EQ(st[1].mesh_tris_packed, 0);
  KT_EQ(st[1].buffers_reused, 14);
  KT_TRUE(st[0].bytes_uploaded < 4096);
  /* a material of its own: another material table, its triangles packed again */
  KT_TRUE(st[3].mesh_tris_packed >= ntris);
  kiln_renderer_destroy(r);
  kiln_job_destroy(job);
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
  cleanup();
}

TEST(object_keyframes_match_a_fresh_load) {
  setup();
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  kiln_job *job = load_job("anim.json");
  kiln_renderer *r = job_renderer(job, dev);
  kiln__variant_stats st[3];
  KT_EQ(check_job(job, r, dev, st, 3), 3);
  kiln_renderer_destroy(r);
  kiln_job_destroy(job);
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
  cleanup();
}

/* Texture overrides: another image file (read once into the job's cache, then borrowed like
 * the job's own), back to the job's, and the other file with the shared mesh moved. */
static const char tex_job[] =
    "{\"scene\": \"scene.json\", \"images\": [\n"
    "  {\"name\": \"grid2\", \"materials\": {\"floor\": {\"texture\": \"grid2.png\"}}},\n"
    "  {\"name\": \"grid\", \"materials\": {\"floor\": {\"texture\": \"grid.png\"}}},\n"
    "  {\"name\": \"grid2_tet\", \"materials\": {\"floor\": {\"texture\": \"grid2.png\"}},\n"
    "   \"objects\": {\"tet\": {\"transform\": {\"translate\": [0.2, 0, 0]}}}}\n"
    "]}\n";

TEST(texture_overrides_match_a_fresh_load) {
  setup();
  write_file("tex.json", tex_job);
  char p[700];
  snprintf(p, sizeof p, "%s/grid2.png", dir);
  unsigned char px[8 * 3 * 3];
  for (size_t i = 0; i < sizeof px; i++) px[i] = (unsigned char)(37 * i);
  KT_TRUE(stbi_write_png(p, 8, 3, 3, px, 24) != 0);
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  kiln_job *job = load_job("tex.json");
  kiln_renderer *r = job_renderer(job, dev);
  kiln__variant_stats st[3];
  KT_EQ(check_job(job, r, dev, st, 3), 3);
  KT_EQ(st[0].texels_packed, 24); /* another image (8x3) in place of the grid: packed */
  KT_EQ(st[0].mesh_tris_packed, 0);
  KT_EQ(st[1].texels_packed, 24); /* the job's image again: its buffers, nothing packed */
  KT_EQ(st[2].texels_packed, 48);
  KT_EQ(st[2].top_builds, 1);
  KT_EQ(st[2].mesh_tris_packed, 0);
  kiln_renderer_destroy(r);
  kiln_job_destroy(job);
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
  cleanup();
}

/* The frame's image against a renderer made for scene file name alone, both through the job's
 * cache; returns the renderer's counters after it. */
static kiln__variant_stats render_file(kiln_job *job, kiln_renderer *r, kiln_gpu_device *dev,
                                       const char *name) {
  char p[700];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  kiln_scene *scene = NULL;
  kiln_error_detail e;
  KT_CODE(kiln__scene_load_cached(NULL, p, job->assets, &e, &scene), KILN_OK);
  kiln_renderer *alone = NULL;
  KT_CODE(kiln_renderer_create(scene, &dev, 1, NULL, &alone), KILN_OK);
  kiln_frame_config fc;
  kiln_frame_config_default(r, &fc);
  kiln_future *fa = NULL, *fb = NULL;
  KT_CODE(kiln_renderer_submit_scene(r, scene, &fc, &fa), KILN_OK);
  KT_CODE(kiln_renderer_submit(alone, &fc, &fb), KILN_OK);
  expect_same(wait_image(fa), wait_image(fb), name);
  kiln_future_release(fa), kiln_future_release(fb);
  kiln_renderer_destroy(alone);
  kiln_scene_destroy(scene);
  kiln__variant_stats st;
  kiln__renderer_variant_stats(r, &st);
  return st;
}

/* The job's scene with the shared mesh read from another path: a copy of the file (the same
 * triangles, another cache entry: its trees are the job's, its triangles packed again), then a
 * file of other triangles (a BVH of its own). Either way the image is a fresh load's. */
TEST(a_mesh_from_another_file_matches_a_fresh_load) {
  setup();
  static const char tet_big[] = "v 0 0 0\nv 0.6 0 0\nv 0 0.6 0\nv 0 0 0.6\n"
                                "f 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n";
  char *copy = strdup(scene_json), *big = strdup(scene_json);
  KT_TRUE(copy && big);
  char *at = strstr(copy, "tet.obj"), *bt = strstr(big, "tet.obj");
  KT_TRUE(at && bt);
  /* same-length names, so the two texts are otherwise the job scene's */
  memcpy(at, "tec.obj", 7), memcpy(bt, "teb.obj", 7);
  write_file("tec.obj", tet_obj), write_file("teb.obj", tet_big);
  write_file("scene_copy.json", copy), write_file("scene_big.json", big);
  free(copy), free(big);
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  kiln_job *job = load_job("list.json");
  kiln_renderer *r = job_renderer(job, dev);
  kiln__variant_stats st = render_file(job, r, dev, "scene_copy.json");
  KT_EQ(st.bvh_builds, 0);
  KT_EQ(st.top_builds, 0);
  KT_EQ(st.mesh_tris_packed, 4);
  st = render_file(job, r, dev, "scene_big.json");
  KT_EQ(st.bvh_builds, 1);
  KT_EQ(st.mesh_tris_packed, 8);
  st = render_file(job, r, dev, "scene.json"); /* the job's file again: its entry */
  KT_EQ(st.mesh_tris_packed, 8);
  KT_EQ(st.bvh_builds, 1);
  kiln_renderer_destroy(r);
  kiln_job_destroy(job);
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
  cleanup();
}

/* A renderer made for a scene loaded through a cache keeps that cache's entries alive: with the
 * scene and the cache's creator gone, a variant loaded through another cache (other entries: its
 * mesh and texels are compared and packed, not taken by pointer) renders as a fresh load. */
TEST(a_renderer_keeps_the_cache_it_borrows_from) {
  setup();
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  char p[700];
  snprintf(p, sizeof p, "%s/scene.json", dir);
  kiln__asset_cache *c1 = NULL, *c2 = NULL;
  KT_CODE(kiln__asset_cache_create(&c1), KILN_OK);
  KT_CODE(kiln__asset_cache_create(&c2), KILN_OK);
  kiln_scene *first = NULL, *second = NULL;
  kiln_error_detail e;
  KT_CODE(kiln__scene_load_cached(NULL, p, c1, &e, &first), KILN_OK);
  kiln_renderer_config rc;
  kiln_renderer_config_default(&rc);
  rc.scene_variants = true;
  kiln_renderer *r = NULL;
  KT_CODE(kiln_renderer_create(first, &dev, 1, &rc, &r), KILN_OK);
  kiln_scene_destroy(first);
  kiln__asset_cache_destroy(c1); /* the renderer's reference keeps it */
  KT_CODE(kiln__scene_load_cached(NULL, p, c2, &e, &second), KILN_OK);
  kiln__asset_cache_destroy(c2); /* the scene's reference keeps it */
  kiln_renderer *alone = NULL;
  KT_CODE(kiln_renderer_create(second, &dev, 1, NULL, &alone), KILN_OK);
  kiln_frame_config fc;
  kiln_frame_config_default(r, &fc);
  kiln_future *fa = NULL, *fb = NULL;
  KT_CODE(kiln_renderer_submit_scene(r, second, &fc, &fa), KILN_OK);
  KT_CODE(kiln_renderer_submit(alone, &fc, &fb), KILN_OK);
  expect_same(wait_image(fa), wait_image(fb), "another cache");
  kiln_future_release(fa), kiln_future_release(fb);
  kiln__variant_stats st;
  kiln__renderer_variant_stats(r, &st);
  KT_EQ(st.bvh_builds, 0); /* the same positions: the renderer's trees */
  KT_EQ(st.mesh_tris_packed, 4);
  KT_EQ(st.texels_packed, 16);
  kiln_renderer_destroy(alone);
  kiln_scene_destroy(second);
  kiln_renderer_destroy(r);
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
  cleanup();
}

/* Inputs the size of the job's but not its: an image of the grid's size, and two shared meshes of
 * one file (one cache entry) whose materials are swapped. Their buffers are packed again (the
 * sizes alone prove nothing), and the images are a fresh load's. */
static const char twins_job[] =
    "{\"scene\": \"twins.json\", \"images\": [\n"
    "  {\"name\": \"same_size_image\", \"materials\": {\"floor\": {\"texture\": \"grid4.png\"}}},\n"
    "  {\"name\": \"swapped\", \"objects\": {\"tet\": {\"material\": \"metal\"},\n"
    "   \"tet2\": {\"material\": \"red\"}}},\n"
    "  {\"name\": \"swapped_moved\", \"objects\": {\"tet\": {\"material\": \"metal\",\n"
    "   \"transform\": {\"translate\": [0.2, 0, 0]}}, \"tet2\": {\"material\": \"red\"}}}\n"
    "]}\n";

TEST(inputs_of_the_same_size_are_packed_again) {
  setup();
  char *twins = malloc(sizeof scene_json + 256);
  KT_TRUE(twins != NULL);
  const char *cut = strstr(scene_json, "    {\"type\": \"quad\", \"name\": \"ground\"");
  KT_TRUE(cut != NULL);
  int at = (int)(cut - scene_json);
  snprintf(twins, sizeof scene_json + 256, "%.*s%s%s", at, scene_json,
           "    {\"type\": \"mesh\", \"name\": \"tet2\", \"file\": \"tet.obj\", \"material\": "
           "\"metal\",\n     \"instances\": [{\"translate\": [-1, 1.2, 0.8]}, {\"translate\": "
           "[-1.5, 0.3, 1]}]},\n",
           cut);
  write_file("twins.json", twins);
  free(twins);
  write_file("twins_job.json", twins_job);
  unsigned char px[4 * 4 * 3];
  for (size_t i = 0; i < sizeof px; i++) px[i] = (unsigned char)(250 - 13 * i);
  char p[700];
  snprintf(p, sizeof p, "%s/grid4.png", dir);
  KT_TRUE(stbi_write_png(p, 4, 4, 3, px, 12) != 0);
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  kiln_job *job = load_job("twins_job.json");
  const kiln__scene *js = &kiln_job_scene(job)->data;
  KT_EQ(js->nmeshes, 2);
  KT_TRUE(js->meshes[0].source == js->meshes[1].source);
  kiln_renderer *r = job_renderer(job, dev);
  kiln__variant_stats st[3];
  KT_EQ(check_job(job, r, dev, st, 3), 3);
  KT_EQ(st[0].texels_packed, 16); /* 4x4 like the grid, other texels */
  KT_EQ(st[0].mesh_tris_packed, 0);
  KT_EQ(st[1].mesh_tris_packed, 8); /* both meshes' triangles: their materials differ */
  KT_EQ(st[1].bvh_builds, 0);
  KT_EQ(st[1].texels_packed, 16);
  KT_EQ(st[2].mesh_tris_packed, 16);
  KT_EQ(st[2].top_builds, 1);
  kiln_renderer_destroy(r);
  kiln_job_destroy(job);
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
  cleanup();
}

/* Without scene_variants a renderer keeps nothing for them and refuses them. */
TEST(variants_need_the_config) {
  setup();
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  kiln_job *job = load_job("list.json");
  kiln_renderer *r = NULL;
  KT_CODE(kiln_renderer_create(kiln_job_scene(job), &dev, 1, NULL, &r), KILN_OK);
  kiln_frame_config fc;
  kiln_frame_config_default(r, &fc);
  kiln_future *f = (kiln_future *)1;
  KT_CODE(kiln_renderer_submit_scene(r, kiln_job_scene(job), &fc, &f), KILN_EINVAL);
  KT_TRUE(f == NULL);
  kiln_renderer_destroy(r);
  kiln_job_destroy(job);
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
  cleanup();
}

/* The job reads its mesh and image files once, at load; its frames' scenes take them from its
 * cache; a file rewritten on disk is read again. */
TEST(job_assets_are_read_once) {
  setup();
  kiln_job *job = load_job("list.json");
  uint64_t reads, hits;
  kiln__asset_cache_stats(job->assets, &reads, &hits);
  KT_EQ(reads, 2); /* tet.obj, grid.png */
  KT_EQ(hits, 0);
  kiln_job_frame fr;
  kiln_error_detail e;
  int n = 0;
  while (kiln_job_next(job, &fr, &e) == 0) {
    kiln_scene *scene = NULL;
    KT_CODE(kiln_job_frame_scene(job, &fr, &e, &scene), KILN_OK);
    if (scene) {
      const kiln__scene *d = &scene->data, *js = &kiln_job_scene(job)->data;
      KT_EQ(d->ntextures, 1);
      KT_TRUE(memcmp(d->textures[0].rgb, js->textures[0].rgb, 16 * 12) == 0);
      n++;
    }
    kiln_scene_destroy(scene);
    kiln_job_frame_clear(&fr);
  }
  KT_EQ(n, 7);
  kiln__asset_cache_stats(job->assets, &reads, &hits);
  KT_EQ(reads, 2);
  KT_EQ(hits, 14);
  /* a new grid (another size on disk too, whatever the file system's time resolution) */
  unsigned char px[8 * 4 * 3];
  memset(px, 30, sizeof px);
  char p[700];
  snprintf(p, sizeof p, "%s/grid.png", dir);
  KT_TRUE(stbi_write_png(p, 8, 4, 3, px, 24) != 0);
  KT_CODE(kiln_job_rewind(job), KILN_OK);
  kiln_scene *scene = NULL;
  while (!scene && kiln_job_next(job, &fr, &e) == 0) {
    KT_CODE(kiln_job_frame_scene(job, &fr, &e, &scene), KILN_OK);
    kiln_job_frame_clear(&fr);
  }
  KT_TRUE(scene != NULL);
  KT_EQ(scene->data.textures[0].width, 8);
  kiln__asset_cache_stats(job->assets, &reads, &hits);
  KT_EQ(reads, 3);
  KT_EQ(hits, 15);
  kiln_scene_destroy(scene);
  kiln_job_destroy(job);
  cleanup();
}

/* ---- variants submitted from several threads at once ------------------------------------- */

typedef struct one {
  kiln_renderer *r;
  kiln_scene *scene;
  kiln_job_frame fr;
  kiln_image *img; /* owned by f */
  kiln_future *f;
} one;

static int submit_one(void *arg, void **result) {
  one *o = arg;
  *result = NULL;
  kiln_frame_config fc;
  kiln_frame_config_default(o->r, &fc);
  fc.camera = &o->fr.camera, fc.seed = o->fr.seed, fc.frame = (uint32_t)o->fr.frame;
  int rc = kiln_renderer_submit_scene(o->r, o->scene, &fc, &o->f);
  if (!rc) rc = kiln_future_result(o->f, -1, (void **)&o->img);
  return rc;
}

/* Every frame of the list job submitted at once from a pool's threads (kernels for the new
 * features made while other frames render): the images are those of one frame at a time. */
TEST(concurrent_variants_match_one_at_a_time) {
  setup();
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  kiln_pool_config pc;
  kiln_pool_config_default(&pc);
  pc.threads = 4;
  kiln_pool *pool = NULL;
  KT_CODE(kiln_pool_create(&pc, &pool), KILN_OK);
  kiln_job *job = load_job("list.json");
  kiln_renderer *shared = job_renderer(job, dev), *serial = job_renderer(job, dev);
  one ones[8];
  void *args[8];
  size_t n = 0;
  kiln_error_detail e;
  while (n < 8 && kiln_job_next(job, &ones[n].fr, &e) == 0) {
    one *o = &ones[n];
    o->r = shared, o->scene = NULL, o->img = NULL, o->f = NULL;
    KT_CODE(kiln_job_frame_scene(job, &o->fr, &e, &o->scene), KILN_OK);
    if (!o->scene) {
      kiln_job_frame_clear(&o->fr);
      continue;
    }
    args[n] = o;
    n++;
  }
  KT_EQ(n, 7);
  int errors[8] = {0};
  KT_CODE(kiln_map(pool, submit_one, args, n, 1, -1, NULL, errors), KILN_OK);
  for (size_t i = 0; i < n; i++) {
    KT_CODE(errors[i], KILN_OK);
    one s = ones[i];
    s.r = serial, s.f = NULL, s.img = NULL;
    void *unused;
    KT_CODE(submit_one(&s, &unused), KILN_OK);
    expect_same(ones[i].img, s.img, ones[i].fr.where);
    kiln_future_release(s.f);
    kiln_future_release(ones[i].f);
    kiln_scene_destroy(ones[i].scene);
    kiln_job_frame_clear(&ones[i].fr);
  }
  kiln_renderer_destroy(shared);
  kiln_renderer_destroy(serial);
  kiln_job_destroy(job);
  kiln_pool_destroy(pool);
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
  cleanup();
}
