/* test_principled.c: the principled material in JSON scenes: defaults, every key, the uv transform
 * against KHR_texture_transform's own definition, and which textures load how (once per file and
 * decode mode; the base colour's alpha plane only where the material cuts out). Errors are in
 * test_errors.c's table. */
#include <math.h>

#include "st_images.h"

static const kiln__material *mat_named(const kiln__scene *d, const char *name) {
  for (size_t i = 0; i < d->nmaterials; i++)
    if (d->materials[i].name && strcmp(d->materials[i].name, name) == 0) return &d->materials[i];
  KT_FAIL("no material '%s'", name);
  return NULL;
}

TEST(defaults) {
  kiln_scene *s = st_load_ok("{\"camera\": {\"position\": [0, 0, -1], \"look_at\": [0, 0, 0]},\n"
                             "\"materials\": {\"p\": {\"type\": \"principled\"}}}",
                             NULL);
  const kiln__material *m = mat_named(st_data(s), "p");
  KT_TRUE(m->type == KILN__MAT_PRINCIPLED);
  for (int k = 0; k < 3; k++) KT_TRUE(m->albedo[k] == 0.8f && m->emission[k] == 0);
  KT_TRUE(m->metallic == 0 && m->roughness == 0.5f && m->ior == 1.5f);
  KT_TRUE(m->alpha == 1 && m->alpha_cutoff == 0 && m->normal_scale == 1);
  KT_TRUE(m->texture == -1 && m->mr_texture == -1 && m->normal_texture == -1 &&
          m->emission_texture == -1 && m->alpha_texture == -1);
  const float id[6] = {1, 0, 0, 0, 1, 0};
  for (int k = 0; k < 6; k++) KT_TRUE(m->uv_xform[k] == id[k]);
  kiln_scene_destroy(s);
}

/* KHR_texture_transform on glTF's uv (s, t), t = 1 - v: the matrix T(offset) R(rotation) S(scale)
 * with R = [[cos, sin], [-sin, cos]]; kiln's uv_xform must give the same point. */
TEST(uv_transform_is_khr) {
  const double off[2] = {0.25, -0.5}, sc[2] = {2, 3}, rot = 0.3;
  kiln_scene *s = st_load_ok(
      "{\"camera\": {\"position\": [0, 0, -1], \"look_at\": [0, 0, 0]},\n"
      "\"materials\": {\"p\": {\"type\": \"principled\", \"uv_transform\": "
      "{\"offset\": [0.25, -0.5], \"scale\": [2, 3], \"rotation\": 0.3}}}}",
      NULL);
  const kiln__material *m = mat_named(st_data(s), "p");
  const double pts[3][2] = {{0, 0}, {1, 0.25}, {0.3, 0.9}};
  for (int i = 0; i < 3; i++) {
    double u = pts[i][0], v = pts[i][1], ss = u, t = 1 - v;
    double s2 = cos(rot) * sc[0] * ss + sin(rot) * sc[1] * t + off[0];
    double t2 = -sin(rot) * sc[0] * ss + cos(rot) * sc[1] * t + off[1];
    double ku = m->uv_xform[0] * u + m->uv_xform[1] * v + m->uv_xform[2];
    double kv = m->uv_xform[3] * u + m->uv_xform[4] * v + m->uv_xform[5];
    if (fabs(ku - s2) > 1e-6 || fabs(kv - (1 - t2)) > 1e-6)
      KT_FAIL("uv (%g, %g): kiln (%g, %g), KHR (%g, %g)", u, v, ku, kv, s2, 1 - t2);
  }
  kiln_scene_destroy(s);
  /* the extension's own example: "only the lower left quadrant of the source image, rotated
   * clockwise 90 degrees": uv [0, 1]^2 lands in u, v in [0, 0.5] (v = 0 the bottom row) */
  s = st_load_ok("{\"camera\": {\"position\": [0, 0, -1], \"look_at\": [0, 0, 0]},\n"
                 "\"materials\": {\"p\": {\"type\": \"principled\", \"uv_transform\": "
                 "{\"offset\": [0, 1], \"scale\": [0.5, 0.5], \"rotation\": 1.57079632679}}}}",
                 NULL);
  m = mat_named(st_data(s), "p");
  for (int i = 0; i < 4; i++) {
    double u = i & 1, v = i >> 1;
    double ku = m->uv_xform[0] * u + m->uv_xform[1] * v + m->uv_xform[2];
    double kv = m->uv_xform[3] * u + m->uv_xform[4] * v + m->uv_xform[5];
    if (ku < -1e-6 || ku > 0.5 + 1e-6 || kv < -1e-6 || kv > 0.5 + 1e-6)
      KT_FAIL("corner (%g, %g) went to (%g, %g), outside the lower left quadrant", u, v, ku, kv);
  }
  kiln_scene_destroy(s);
}

/* One RGBA PNG as base colour and emission (sRGB, kept encoded: decoded after filtering),
 * metallic-roughness and normal map (linear) and a diffuse material's albedo (sRGB decoded per
 * texel): three decodes, shared by mode; with alpha_cutoff its alpha plane is a fourth texture. */
TEST(textures_by_mode) {
  const char *dir = st_tmpdir();
  char path[1024];
  snprintf(path, sizeof path, "%s/rgba.png", dir);
  const unsigned char px[8] = {0, 128, 255, 64, 255, 255, 255, 255};
  if (!stbi_write_png(path, 2, 1, 4, px, 8)) KT_FAIL("stbi_write_png %s", path);
  kiln_scene *s = st_load_ok(
      "{\"camera\": {\"position\": [0, 0, -1], \"look_at\": [0, 0, 0]},\n"
      "\"materials\": {\n"
      " \"a\": {\"type\": \"principled\", \"base_color_texture\": \"rgba.png\",\n"
      "  \"metallic_roughness_texture\": \"rgba.png\", \"normal_texture\": \"rgba.png\",\n"
      "  \"emission\": [1, 1, 1], \"emission_texture\": \"rgba.png\"},\n"
      " \"b\": {\"type\": \"principled\", \"base_color_texture\": \"rgba.png\",\n"
      "  \"alpha_cutoff\": 0.5, \"alpha\": 0.9},\n"
      " \"c\": {\"type\": \"diffuse\", \"texture\": \"rgba.png\"}}}",
      dir);
  const kiln__scene *d = st_data(s);
  const kiln__material *a = mat_named(d, "a"), *b = mat_named(d, "b"), *c = mat_named(d, "c");
  KT_TRUE(d->ntextures == 4);
  KT_TRUE(a->texture != c->texture && a->texture == b->texture && a->emission_texture == a->texture);
  KT_TRUE(a->mr_texture == a->normal_texture && a->mr_texture != a->texture);
  KT_TRUE(a->alpha_texture == -1 && b->alpha_texture >= 0 && b->alpha == 0.9f &&
          b->alpha_cutoff == 0.5f);
  const kiln__texture *srgb = &d->textures[a->texture], *lin = &d->textures[a->mr_texture],
                      *al = &d->textures[b->alpha_texture];
  const kiln__texture *dif = &d->textures[c->texture];
  KT_TRUE(fabs(lin->rgb[1] - 128 / 255.0) < 1e-6 && !lin->srgb);
  KT_TRUE(fabs(srgb->rgb[1] - 128 / 255.0) < 1e-6 && srgb->srgb);
  KT_TRUE(fabs(dif->rgb[1] - 0.2158605) < 1e-5 && !dif->srgb);
  KT_TRUE(fabs(al->rgb[0] - 64 / 255.0) < 1e-6 && al->rgb[3] == 1);
  kiln_scene_destroy(s);
  st_tmp_cleanup();
}
