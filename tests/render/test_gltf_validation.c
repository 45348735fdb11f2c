/* test_gltf_validation.c: the glTF corpus written by Blender 3.4 (tests/render/data/gltf, made by
 * tools/validation/gltf_corpus.py), each file loaded with kiln_scene_load as it is and rendered
 * on lavapipe, against Cycles' 1024-spp render of the same file re-imported into Blender (the
 * per-channel means of tests/render/data/gltf/cycles_means.json, copied below). One test per
 * material feature on its own, as docs/VALIDATION.md describes: the mean of two renders with
 * different seeds within 4 standard errors (the per-pixel noise of their average estimated as
 * (A - B)^2 / 4, as cornell_mean does) plus a margin for what differs between the two renderers'
 * models and is not noise (docs/VALIDATION.md, "glTF corpus", gives each feature's measured gap).
 * The mean of box-filtered pixels is the average radiance over the image plane whatever the
 * resolution, so the 32x32 renders here estimate the 64x64 reference's numbers. */
// kt: timeout 300
#include <stdio.h>

#include "render_test_util.h"

typedef struct ref {
  const char *name; /* tests/render/data/gltf/<name>.glb */
  double mean[3];   /* Cycles, 64x64, 1024 spp, seed 0, max bounces 4 */
} ref;

/* tests/render/data/gltf/cycles_means.json (Blender 3.4.1) */
static const ref REFS[] = {
    {"basecolor_texture", {0.097753, 0.048120, 0.130485}},
    {"metallic", {0.240590, 0.165893, 0.123340}},
    {"roughness_map", {0.257608, 0.149770, 0.111595}},
    {"normal_map", {0.242586, 0.212072, 0.191991}},
    {"emission", {0.752178, 0.511399, 0.295863}},
    {"emission_texture", {0.236482, 0.343532, 0.297016}},
    {"vertex_colors", {0.152543, 0.146980, 0.166679}},
    {"alpha_cutout", {0.216611, 0.099279, 0.046867}},
    {"instancing", {0.215267, 0.153367, 0.304973}},
};

enum { SIZE = 32, SPP = 64, BOUNCES = 4 };

/* The corpus file `name`: its means against Cycles' within 4 standard errors plus `margin` (a
 * fraction of the reference). */
static void check(const char *name, double margin) {
  const ref *rf = NULL;
  for (size_t i = 0; i < sizeof REFS / sizeof REFS[0]; i++)
    if (!strcmp(REFS[i].name, name)) rf = &REFS[i];
  KT_TRUE(rf != NULL);
  char rel[256];
  snprintf(rel, sizeof rel, "tests/render/data/gltf/%s.glb", name);
  check_means(rel, SIZE, SPP, BOUNCES, rf->mean, margin, "Cycles");
}

/* Hard-edged checks and stripes: the order of filtering and sRGB decoding shows here (decoding
 * each texel first would be +2.5% in the base colour's G, +2.1% in the emission's B); a
 * principled material's colour textures filter the stored values and then decode, as Cycles. */
TEST(gltf_basecolor_texture) { check("basecolor_texture", 0.02); }
TEST(gltf_metallic) { check("metallic", 0.02); }
TEST(gltf_roughness_map) { check("roughness_map", 0.02); }
/* Without Cycles' bump shadowing term on the principled diffuse lobe kiln is 9-14% brighter here
 * (docs/VALIDATION.md): the normals alone agree. */
TEST(gltf_normal_map) { check("normal_map", 0.02); }
TEST(gltf_emission) { check("emission", 0.02); }
TEST(gltf_emission_texture) { check("emission_texture", 0.02); }
TEST(gltf_vertex_colors) { check("vertex_colors", 0.02); }
TEST(gltf_alpha_cutout) { check("alpha_cutout", 0.02); }
TEST(gltf_instancing) { check("instancing", 0.02); }

/* The same scene as a .glb and as a .gltf with its .bin and .png beside it (Blender's "glTF
 * Separate"): the same image, bit for bit. */
static const kiln_image *render_file(ctx *c, const char *rel, kiln_future **f) {
  char *path = repo_path(rel);
  kiln_error_detail err;
  int lrc = kiln_scene_load(path, &err, &c->scene);
  if (lrc) {
    char buf[512];
    KT_FAIL("load %s: %s", path, kiln_error_detail_format(&err, buf, sizeof buf));
  }
  free(path);
  c->gpu = tg_gpu();
  c->dev = tg_device(c->gpu, NULL);
  KT_CODE(kiln_renderer_create(c->scene, &c->dev, 1, NULL, &c->r), KILN_OK);
  kiln_frame_config fc;
  kiln_frame_config_default(c->r, &fc);
  fc.width = fc.height = 16;
  fc.spp = 4;
  fc.max_bounces = BOUNCES;
  return render(c, &fc, f);
}

TEST(gltf_separate_same_as_glb) {
  ctx a = {0}, b = {0};
  kiln_future *fa, *fb;
  const kiln_image *ia = render_file(&a, "tests/render/data/gltf/basecolor_texture.glb", &fa);
  const kiln_image *ib =
      render_file(&b, "tests/render/data/gltf/separate/basecolor_texture.gltf", &fb);
  const float *pa = info_of(ia).color, *pb = info_of(ib).color;
  double sum = 0;
  for (size_t i = 0; i < 16 * 16 * 3; i++) sum += pa[i];
  KT_TRUE(sum > 0.01 * 16 * 16 * 3); /* lit: not two black images */
  KT_TRUE(memcmp(pa, pb, 16 * 16 * 3 * sizeof(float)) == 0);
  kiln_future_release(fa);
  kiln_future_release(fb);
  close_ctx(&a);
  close_ctx(&b);
}
