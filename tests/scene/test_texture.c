/* test_texture.c: albedo textures (PNG, JPEG; sRGB decoded to linear), .hdr environment maps, and
 * the errors of missing or undecodable image files. */
#include <math.h>

#include "st_images.h"

#define CAM "{\"camera\": {\"position\": [0, 0, -5], \"look_at\": [0, 0, 0]},\n"

static double srgb(double c) {
  c /= 255.0;
  return c <= 0.04045 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4);
}

/* A PNG albedo texture: linear values, row 0 at the top; shared by two materials. */
TEST(png_texture) {
  const char *dir = st_tmpdir();
  st_write_png(dir, "t.png");
  st_write_jpg(dir, "g.jpg");
  kiln_scene *s = st_load_ok(
      CAM "\"materials\": {\"wood\": {\"type\": \"diffuse\", \"texture\": \"t.png\"},\n"
          " \"metal\": {\"type\": \"conductor\", \"roughness\": 0.3, \"texture\": \"t.png\"},\n"
          " \"grey\": {\"type\": \"diffuse\", \"texture\": \"g.jpg\"}},\n"
          "\"objects\": [{\"type\": \"sphere\", \"radius\": 1, \"material\": \"wood\"}]}",
      dir);
  const kiln__scene *d = st_data(s);
  KT_EQ(d->ntextures, 2);
  KT_EQ(d->nmaterials, 3);
  KT_EQ(d->materials[0].texture, 0);
  KT_EQ(d->materials[1].texture, 0);
  KT_EQ(d->materials[2].texture, 1);
  ST_NEAR(d->materials[1].roughness, 0.3, 1e-7);
  const kiln__texture *t = &d->textures[0];
  KT_EQ(t->width, 2);
  KT_EQ(t->height, 1);
  ST_NEAR(t->rgb[0], 0, 0);
  ST_NEAR(t->rgb[1], srgb(128), 1e-6);
  ST_NEAR(t->rgb[2], 1, 1e-6);
  ST_NEAR(t->rgb[3], 1, 1e-6);
  const kiln__texture *g = &d->textures[1];
  KT_EQ(g->width, 4);
  KT_EQ(g->height, 2);
  for (int i = 0; i < 24; i++) ST_NEAR(g->rgb[i], srgb(128), 0.02);
  kiln_scene_destroy(s);
  st_tmp_cleanup();
}

/* An equirectangular .hdr map: linear floats as stored, with rotation and intensity. */
TEST(hdr_environment) {
  const char *dir = st_tmpdir();
  st_write_hdr(dir, "sky.hdr");
  kiln_scene *s =
      st_load_ok(CAM "\"environment\": {\"type\": \"map\", \"file\": \"sky.hdr\", \"rotation\": 90,"
                     " \"intensity\": 2}}",
                 dir);
  const kiln__scene *d = st_data(s);
  KT_EQ(d->env.type, KILN__ENV_MAP);
  KT_EQ(d->env.texture, 0);
  ST_NEAR(d->env.rotation_deg, 90, 0);
  ST_NEAR(d->env.intensity, 2, 0);
  const kiln__texture *t = &d->textures[0];
  KT_EQ(t->width, 2);
  KT_EQ(t->height, 2);
  const float want[12] = {1, 2, 4, 0.5f, 0.25f, 8, 3, 3, 3, 0, 0, 0};
  for (int i = 0; i < 12; i++) ST_NEAR(t->rgb[i], want[i], want[i] / 64); /* RGBE: 8-bit mantissa */
  kiln_scene_destroy(s);
  s = st_load_ok(
      CAM
      "\"environment\": {\"type\": \"gradient\", \"bottom\": [1, 1, 1], \"top\": [0.2, 0.4, 1]}}",
      NULL);
  d = st_data(s);
  KT_EQ(d->env.type, KILN__ENV_GRADIENT);
  ST_NEAR(d->env.top[1], 0.4, 1e-7);
  ST_NEAR(d->env.color[0], 1, 0);
  KT_EQ(d->env.texture, -1);
  kiln_scene_destroy(s);
  st_tmp_cleanup();
}

/* Missing files are KILN_EIO, undecodable ones KILN_EPARSE; both name the image and the path. */
TEST(image_errors) {
  const char *dir = st_tmpdir();
  st_write(dir, "junk.png", "this is not a png", (size_t)-1);
  st_write_png(dir, "t.png");
  const struct {
    const char *json;
    int code;
    const char *file, *path, *frag;
  } t[] = {
      {CAM "\"materials\": {\"m\": {\"type\": \"diffuse\", \"texture\": \"none.png\"}}}", KILN_EIO,
       "none.png", "materials.m.texture", "cannot open"},
      {CAM "\"materials\": {\"m\": {\"type\": \"diffuse\", \"texture\": \"junk.png\"}}}",
       KILN_EPARSE, "junk.png", "materials.m.texture", "cannot decode"},
      {CAM "\"environment\": {\"type\": \"map\", \"file\": \"t.png\"}}", KILN_EPARSE, "t.png",
       "environment.file", "not a Radiance"},
      {CAM
       "\"materials\": {\"m\": {\"type\": \"emissive\", \"emission\": [1, 1, 1], \"texture\": \"t.png\"}}}",
       KILN_EPARSE, "test.json", "materials.m.texture", "unknown key"},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    kiln_error_detail e;
    kiln_scene *s = NULL;
    int rc = kiln_scene_load_string(t[i].json, dir, "test.json", &e, &s);
    char buf[2048];
    kiln_error_detail_format(&e, buf, sizeof buf);
    if (rc != t[i].code) KT_FAIL("case %zu: %s: %s", i, kiln_err_name(rc), buf);
    KT_STR_CONTAINS(e.file, t[i].file);
    KT_STR_EQ(e.path, t[i].path);
    KT_STR_CONTAINS(e.message, t[i].frag);
  }
  st_tmp_cleanup();
}
