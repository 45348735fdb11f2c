/* test_texture.c: albedo textures (PNG, JPEG; sRGB decoded to linear), .hdr environment maps, the
 * errors of missing or undecodable image files, and hostile ones: formats kiln does not document,
 * sizes the file cannot hold or memory cannot afford, malformed JPEG tables, truncated data. */
#include <math.h>
#include <stdint.h>

#include <spng.h>
#include <stb_image.h> /* the reference decoder (linked from libstb; not in kiln's library) */
#include <turbojpeg.h>

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

/* An equirectangular .hdr map: linear floats as stored (RGBE read as Radiance and Blender read
 * it: (m + 0.5) 2^(e - 136), the middle of the step the writer truncated to), with rotation and
 * intensity. */
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
  /* written (1, 2, 4), (0.5, 0.25, 8), (3, 3, 3), (0, 0, 0): steps of 1/32, 1/16, 1/64; black */
  const float want[12] = {32.5f / 32, 64.5f / 32, 128.5f / 32, 8.5f / 16, 4.5f / 16, 128.5f / 16,
                          192.5f / 64, 192.5f / 64, 192.5f / 64, 0, 0, 0};
  for (int i = 0; i < 12; i++) ST_NEAR(t->rgb[i], want[i], 0);
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
       KILN_EPARSE, "junk.png", "materials.m.texture", "not a PNG or JPEG"},
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

/* Loads a scene naming the file of case c and checks the located error: the image file, the key
 * that named it, the code and a fragment of the reason. */
typedef struct st_bad_image {
  const char *name; /* the file in the test folder */
  bool env;         /* named as the environment map (else as a material's texture) */
  int code;
  const char *frag;
} st_bad_image;

static void st_expect_image_error(const char *dir, const st_bad_image *c) {
  char json[512];
  if (c->env)
    snprintf(json, sizeof json, CAM "\"environment\": {\"type\": \"map\", \"file\": \"%s\"}}",
             c->name);
  else
    snprintf(json, sizeof json,
             CAM "\"materials\": {\"m\": {\"type\": \"diffuse\", \"texture\": \"%s\"}}}", c->name);
  kiln_error_detail e;
  kiln_scene *s = NULL;
  int rc = kiln_scene_load_string(json, dir, "test.json", &e, &s);
  char buf[2048];
  kiln_error_detail_format(&e, buf, sizeof buf);
  if (rc != c->code) KT_FAIL("%s: %s: %s", c->name, kiln_err_name(rc), buf);
  KT_TRUE(s == NULL);
  KT_STR_CONTAINS(e.file, c->name);
  KT_STR_EQ(e.path, c->env ? "environment.file" : "materials.m.texture");
  KT_STR_CONTAINS(e.message, c->frag);
}

/* dir/name: the first keep bytes of the file at dir/from. */
static void st_truncate_copy(const char *dir, const char *from, const char *name, double keep) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, from);
  size_t n;
  char *b = st_read_file(path, &n);
  st_write(dir, name, b, (size_t)(n * keep));
  free(b);
}

/* A w x h RGB image of a smooth ramp plus noise (deterministic). */
static unsigned char *st_noise_rgb(int w, int h) {
  unsigned char *px = malloc((size_t)w * h * 3);
  if (!px) KT_FAIL("out of memory");
  uint32_t r = 12345;
  for (int i = 0; i < w * h * 3; i++) {
    r = r * 1664525u + 1013904223u;
    int v = (i / 3 % w) * 200 / w + (int)(r >> 27);
    px[i] = (unsigned char)(v > 255 ? 255 : v);
  }
  return px;
}

/* dir/name: px (w x h RGB) as a JPEG through TurboJPEG, with chroma subsampling sub. */
static void st_write_tj(const char *dir, const char *name, const unsigned char *px, int w, int h,
                        int sub) {
  tjhandle tj = tjInitCompress();
  unsigned char *jpg = NULL;
  unsigned long len = 0;
  if (!tj || tjCompress2(tj, px, w, 0, h, TJPF_RGB, &jpg, &len, sub, 90, 0))
    KT_FAIL("tjCompress2: %s", tjGetErrorStr2(tj));
  st_write(dir, name, jpg, len);
  tjFree(jpg);
  tjDestroy(tj);
}

/* Files that are not what their names say, or claim more than they hold: each a located
 * KILN_EPARSE before anything is allocated for their pixels. */
TEST(hostile_images) {
  const char *dir = st_tmpdir();
  st_write_jpg_bad_huffman(dir, "huffman.jpg");
  st_write_tga_header(dir, "tga.png");
  st_write_png_claiming(dir, "wide.png", 60000, 60000);
  st_write_png_claiming(dir, "big.png", 16384, 16384);   /* 3 GiB as floats */
  st_write_png_claiming(dir, "claim.png", 4000, 4000);   /* in 63 bytes */
  unsigned char sof[sizeof st_grey_jpg];                 /* the grey JPEG, claiming 4000x4000 */
  memcpy(sof, st_grey_jpg, sizeof sof);
  for (size_t i = 0; i + 9 < sizeof sof; i++)
    if (sof[i] == 0xff && sof[i + 1] == 0xc0) sof[i + 5] = sof[i + 7] = 0x0f, sof[i + 6] = sof[i + 8] = 0xa0;
  st_write(dir, "claim.jpg", sof, sizeof sof);
  unsigned char *px = st_noise_rgb(64, 64);
  char path[1024];
  snprintf(path, sizeof path, "%s/noise.png", dir);
  if (!stbi_write_png(path, 64, 64, 3, px, 64 * 3)) KT_FAIL("stbi_write_png");
  st_truncate_copy(dir, "noise.png", "cut.png", 0.6);
  st_write_tj(dir, "noise.jpg", px, 64, 64, TJSAMP_420);
  st_truncate_copy(dir, "noise.jpg", "cut.jpg", 0.6);
  free(px);
  const char *head = "#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n";
  char b[256];
  st_write(dir, "zero.hdr", b, (size_t)snprintf(b, sizeof b, "%s-Y 0 +X 0\n", head));
  st_write(dir, "flip.hdr", b, (size_t)snprintf(b, sizeof b, "%s+Y 2 +X 2\n", head));
  st_write(dir, "xyze.hdr", "#?RADIANCE\nFORMAT=32-bit_rle_xyze\n\n-Y 1 +X 1\n\1\1\1\x80", 46);
  int n = snprintf(b, sizeof b, "%s-Y 1 +X 8\n", head);
  memcpy(b + n, "\2\2\0\10\x89\1\0\0\0\0\0\0", 12); /* a run of 9 in a scanline of 8 */
  st_write(dir, "run.hdr", b, (size_t)n + 12);
  st_write_hdr_ramp(dir, "rle.hdr", 32, 8);
  st_truncate_copy(dir, "rle.hdr", "cut_rle.hdr", 0.8);
  st_write_hdr(dir, "flat.hdr");
  st_truncate_copy(dir, "flat.hdr", "cut_flat.hdr", 0.95);
  size_t len;
  snprintf(path, sizeof path, "%s/flat.hdr", dir);
  char *flat = st_read_file(path, &len);
  char *more = malloc(len + 4);
  memcpy(more, flat, len), memcpy(more + len, "\0\0\0\0", 4);
  st_write(dir, "more.hdr", more, len + 4);
  free(flat), free(more);
  const st_bad_image t[] = {
      {"huffman.jpg", false, KILN_EPARSE, "cannot decode JPEG"},
      {"tga.png", false, KILN_EPARSE, "not a PNG or JPEG"},
      {"wide.png", false, KILN_EPARSE, "60000x60000 pixels: a texture may have at most 16384 a side"},
      {"big.png", false, KILN_EPARSE, "3072 MiB decoded: a texture may use at most 512 MiB"},
      {"claim.png", false, KILN_EPARSE, "4000x4000 pixels, which need at least 46516 bytes"},
      {"claim.jpg", false, KILN_EPARSE, "4000x4000 pixels, which need at least 31250 bytes"},
      {"cut.png", false, KILN_EPARSE, "cannot decode PNG"},
      {"cut.jpg", false, KILN_EPARSE, "cannot decode JPEG"},
      {"flat.hdr", false, KILN_EPARSE, "a Radiance .hdr image: textures are PNG or JPEG"},
      {"t.png", true, KILN_EIO, "cannot open"},
      {"noise.png", true, KILN_EPARSE, "not a Radiance .hdr or OpenEXR image (a PNG or JPEG"},
      {"zero.hdr", true, KILN_EPARSE, "no pixels (0x0)"},
      {"flip.hdr", true, KILN_EPARSE, "resolution line"},
      {"xyze.hdr", true, KILN_EPARSE, "unsupported .hdr pixel format '32-bit_rle_xyze'"},
      {"run.hdr", true, KILN_EPARSE, "a run goes past the end of its scanline"},
      {"cut_rle.hdr", true, KILN_EPARSE, "truncated"},
      {"cut_flat.hdr", true, KILN_EPARSE, "truncated"},
      {"more.hdr", true, KILN_EPARSE, "bytes after the last scanline"},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) st_expect_image_error(dir, &t[i]);
  st_tmp_cleanup();
}

/* A run-length encoded .hdr (widths 8 to 32767) and a flat one both decode to what was written,
 * within RGBE's 8-bit mantissa. */
TEST(hdr_rle_and_flat) {
  const char *dir = st_tmpdir();
  const int sizes[3][2] = {{37, 5}, {8, 3}, {7, 4}};
  for (int k = 0; k < 3; k++) {
    int w = sizes[k][0], h = sizes[k][1];
    st_write_hdr_ramp(dir, "ramp.hdr", w, h);
    char path[1024], msg[300];
    snprintf(path, sizeof path, "%s/ramp.hdr", dir);
    kiln__texture t;
    int rc = kiln__texture_load(path, true, &t, msg, sizeof msg);
    if (rc) KT_FAIL("%dx%d: %s: %s", w, h, kiln_err_name(rc), msg);
    KT_EQ(t.width, w);
    KT_EQ(t.height, h);
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++)
        for (int c = 0; c < 3; c++) {
          float want = st_hdr_value(x, y, c), got = t.rgb[(y * w + x) * 3 + c];
          float m = fmaxf(st_hdr_value(x, y, 0), fmaxf(st_hdr_value(x, y, 1), st_hdr_value(x, y, 2)));
          ST_NEAR(got, want, m / 128);
        }
    free(t.rgb);
  }
  st_tmp_cleanup();
}

/* Encodes px (w x h, PNG layout for ih) with libspng into dir/name. */
static void st_write_spng(const char *dir, const char *name, struct spng_ihdr ih,
                          const struct spng_plte *plte, const void *px, size_t n) {
  spng_ctx *enc = spng_ctx_new(SPNG_CTX_ENCODER);
  int rc = spng_set_option(enc, SPNG_ENCODE_TO_BUFFER, 1);
  if (!rc) rc = spng_set_ihdr(enc, &ih);
  if (!rc && plte) rc = spng_set_plte(enc, (struct spng_plte *)plte);
  if (!rc) rc = spng_encode_image(enc, px, n, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
  size_t len = 0;
  void *png = rc ? NULL : spng_get_png_buffer(enc, &len, &rc);
  if (!png) KT_FAIL("spng encode %s: %s", name, spng_strerror(rc));
  st_write(dir, name, png, len);
  free(png);
  spng_ctx_free(enc);
}

/* The 8-bit value whose sRGB decoding is v (v must be one of them). */
static int st_byte_of(float v) {
  int best = 0;
  for (int k = 1; k < 256; k++)
    if (fabs(srgb(k) - v) < fabs(srgb(best) - v)) best = k;
  return best;
}

/* Largest difference, in 8-bit levels, between kiln's decoding of dir/name and stb_image's, not
 * counting column skip (-1: none). */
static int st_diff_vs_stb(const char *dir, const char *name, int skip) {
  char path[1024], msg[300];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  kiln__texture t;
  int rc = kiln__texture_load(path, false, &t, msg, sizeof msg);
  if (rc) KT_FAIL("%s: %s: %s", name, kiln_err_name(rc), msg);
  int w, h, comp;
  unsigned char *ref = stbi_load(path, &w, &h, &comp, 3);
  if (!ref) KT_FAIL("stb_image cannot read %s: %s", name, stbi_failure_reason());
  KT_EQ(t.width, w);
  KT_EQ(t.height, h);
  int most = 0;
  for (int i = 0; i < w * h * 3; i++) {
    if (i / 3 % w == skip) continue;
    int d = abs(st_byte_of(t.rgb[i]) - ref[i]);
    if (d > most) most = d;
  }
  stbi_image_free(ref);
  free(t.rgb);
  return most;
}

/* Every PNG colour type and bit depth (and interlacing) decodes to exactly stb_image's 8-bit RGB:
 * grey replicated, palette expanded, alpha dropped, 16 bits to their high byte. */
TEST(png_same_as_stb) {
  const char *dir = st_tmpdir();
  enum { W = 13, H = 7 };
  uint16_t px[W * H * 4];
  uint32_t r = 99;
  for (size_t i = 0; i < sizeof px / sizeof px[0]; i++) r = r * 1664525u + 1013904223u, px[i] = (uint16_t)(r >> 16);
  unsigned char px8[W * H * 4];
  for (size_t i = 0; i < sizeof px8; i++) px8[i] = (unsigned char)px[i];
  struct spng_plte plte = {.n_entries = 256};
  for (int i = 0; i < 256; i++)
    plte.entries[i] = (struct spng_plte_entry){(uint8_t)i, (uint8_t)(255 - i), (uint8_t)(i * 7), 255};
  const struct {
    uint8_t type, depth, interlace, channels;
  } t[] = {{SPNG_COLOR_TYPE_GRAYSCALE, 8, 0, 1}, {SPNG_COLOR_TYPE_GRAYSCALE, 16, 0, 1},
           {SPNG_COLOR_TYPE_TRUECOLOR, 8, 1, 3}, {SPNG_COLOR_TYPE_TRUECOLOR, 16, 0, 3},
           {SPNG_COLOR_TYPE_INDEXED, 8, 0, 1},   {SPNG_COLOR_TYPE_GRAYSCALE_ALPHA, 8, 0, 2},
           {SPNG_COLOR_TYPE_TRUECOLOR_ALPHA, 8, 0, 4}, {SPNG_COLOR_TYPE_TRUECOLOR_ALPHA, 16, 1, 4}};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    struct spng_ihdr ih = {W, H, t[i].depth, t[i].type, 0, 0, t[i].interlace};
    size_t n = (size_t)W * H * t[i].channels * (t[i].depth / 8);
    st_write_spng(dir, "x.png", ih, t[i].type == SPNG_COLOR_TYPE_INDEXED ? &plte : NULL,
                  t[i].depth == 16 ? (const void *)px : (const void *)px8, n);
    int d = st_diff_vs_stb(dir, "x.png", -1);
    if (d) KT_FAIL("colour type %d, %d bits: differs from stb_image by %d", t[i].type, t[i].depth, d);
  }
  st_tmp_cleanup();
}

/* JPEG through libjpeg-turbo (accurate integer IDCT, smooth upsampling) against stb_image's own
 * decoder: the same pixels up to IDCT, upsampling and colour-conversion rounding (at most 3
 * levels; 2 on this image). One exception, left out here: with 4:2:2 subsampling stb weighs the
 * second-last column's chroma towards the wrong neighbour (its h2v1 upsampler's edge case), up to
 * 14 levels off where libjpeg-turbo interpolates as it does everywhere else. */
TEST(jpeg_close_to_stb) {
  const char *dir = st_tmpdir();
  unsigned char *px = st_noise_rgb(64, 48);
  const int subs[3] = {TJSAMP_444, TJSAMP_422, TJSAMP_420};
  for (int i = 0; i < 3; i++) {
    st_write_tj(dir, "n.jpg", px, 64, 48, subs[i]);
    int d = st_diff_vs_stb(dir, "n.jpg", subs[i] == TJSAMP_422 ? 62 : -1);
    printf("subsampling %d: at most %d levels from stb_image\n", subs[i], d);
    if (d > 3) KT_FAIL("subsampling %d: differs from stb_image by %d levels", subs[i], d);
  }
  st_write_jpg(dir, "g.jpg");
  KT_EQ(st_diff_vs_stb(dir, "g.jpg", -1), 0);
  free(px);
  st_tmp_cleanup();
}
