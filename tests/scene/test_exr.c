/* test_exr.c: OpenEXR environment maps (tinyexr behind kiln's own checks): every layout,
 * sample type and compression tinyexr reads decodes to the values written; NaN, infinite and
 * negative texels made harmless; malformed and oversized files refused with a located error
 * before anything is allocated for their pixels. And the limits of the other formats where
 * the alpha plane counts, and the .hdr writer read back within its step. */
#include <float.h>
#include <math.h>
#include <stdint.h>

#include "image_internal.h"
#include "kt_exr_write.h"
#include "scene_test_util.h"

#define CAM "{\"camera\": {\"position\": [0, 0, -5], \"look_at\": [0, 0, 0]},\n"

enum { W = 12, H = 10 };

/* Texel (x, y) channel c of the test maps: distinct, positive, and HALF-exact (k / 64, k < 2048). */
static float value(int x, int y, int c) { return (float)(((x * 7 + y * 13 + c * 5) % 97) + 1) / 64.0f; }

static float *map_px(int nch) {
  float *px = malloc((size_t)W * H * (size_t)nch * sizeof *px);
  KT_TRUE(px != NULL);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      for (int c = 0; c < nch; c++) px[((size_t)y * W + (size_t)x) * (size_t)nch + (size_t)c] = value(x, y, c);
  return px;
}

static int decode(const unsigned char *b, size_t n, kiln__texture *t, char *msg, size_t cap) {
  return kiln__texture_decode(b, n, KILN__TEX_HDR, t, NULL, msg, cap);
}

/* Scanline and tiled (one level, mipmapped), HALF and FLOAT, every compression tinyexr writes,
 * channels written as B, G, R (sorted, as EXR files have them) and as A, B, G, R: the texels
 * come back exactly, R G B in that order, row 0 at the top; a Y-only file is grey. */
TEST(exr_layouts_and_compressions) {
  static const int comps[] = {TINYEXR_COMPRESSIONTYPE_NONE, TINYEXR_COMPRESSIONTYPE_RLE,
                              TINYEXR_COMPRESSIONTYPE_ZIPS, TINYEXR_COMPRESSIONTYPE_ZIP,
                              TINYEXR_COMPRESSIONTYPE_PIZ};
  static const int tiles[][2] = {{0, 0}, {4, 0}, {8, 1}};
  static const char *const bgr[] = {"B", "G", "R"}, *const abgr[] = {"A", "B", "G", "R"},
                           *const y[] = {"Y"};
  float *px3 = map_px(3), *px4 = map_px(4), *px1 = map_px(1);
  /* px3 holds channel c at index c; written as B, G, R it must come back with R = index 2 */
  int cases = 0;
  for (size_t ci = 0; ci < sizeof comps / sizeof comps[0]; ci++)
    for (int half = 0; half <= 1; half++)
      for (size_t ti = 0; ti < 3; ti++)
        for (int layout = 0; layout < 3; layout++) {
          kt_exr_opts o = {half, comps[ci], tiles[ti][0], tiles[ti][1]};
          int nch = layout == 0 ? 3 : layout == 1 ? 4 : 1;
          const char *const *names = layout == 0 ? bgr : layout == 1 ? abgr : y;
          size_t n;
          unsigned char *b =
              kt_exr_bytes(W, H, nch, names, layout == 0 ? px3 : layout == 1 ? px4 : px1, o, &n);
          KT_TRUE(b != NULL);
          kiln__texture t;
          char msg[256] = "";
          int rc = decode(b, n, &t, msg, sizeof msg);
          if (rc)
            KT_FAIL("compression %d half %d tile %d mipmap %d layout %d: %s", comps[ci], half,
                    o.tile, o.mipmap, layout, msg);
          KT_EQ(t.width, W);
          KT_EQ(t.height, H);
          for (int yy = 0; yy < H; yy++)
            for (int x = 0; x < W; x++)
              for (int k = 0; k < 3; k++) {
                /* the channel named R is written from index nch - 1 (B G R) or 3 (A B G R) */
                int src = layout == 2 ? 0 : layout == 0 ? 2 - k : 3 - k;
                float got = t.rgb[((size_t)yy * W + (size_t)x) * 3 + (size_t)k];
                if (got != value(x, yy, src))
                  KT_FAIL("compression %d half %d tile %d layout %d: texel (%d, %d) channel %d = "
                          "%g, want %g",
                          comps[ci], half, o.tile, layout, x, yy, k, got, value(x, yy, src));
              }
          free(t.rgb), free(b);
          cases++;
        }
  KT_EQ(cases, 90);
  free(px3), free(px4), free(px1);
}

/* Texels with a NaN or an infinite channel become black, negative channels 0; others stay. */
TEST(exr_nonfinite_texels) {
  static const char *const bgr[] = {"B", "G", "R"};
  float px[4 * 3] = {1, 2, 3, NAN, 1, 1, 1, INFINITY, 1, -2, 0.5f, -0.0f};
  for (int half = 0; half <= 1; half++) {
    size_t n;
    unsigned char *b =
        kt_exr_bytes(4, 1, 3, bgr, px, (kt_exr_opts){half, TINYEXR_COMPRESSIONTYPE_ZIP, 0, 0}, &n);
    KT_TRUE(b != NULL);
    kiln__texture t;
    char msg[256];
    KT_CODE(decode(b, n, &t, msg, sizeof msg), KILN_OK);
    /* channels come back reversed (written B, G, R from indices 0, 1, 2) */
    const float want[12] = {3, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0.5f, 0};
    for (int i = 0; i < 12; i++) {
      if (t.rgb[i] != want[i]) KT_FAIL("half %d: value %d = %g, want %g", half, i, t.rgb[i], want[i]);
      KT_FALSE(signbit(t.rgb[i]));
    }
    free(t.rgb), free(b);
  }
}

/* The little-endian int32 n bytes after the first occurrence of tag in b. */
static unsigned char *find_attr(unsigned char *b, size_t n, const char *tag, size_t tlen) {
  for (size_t i = 0; i + tlen + 4 <= n; i++)
    if (memcmp(b + i, tag, tlen) == 0) return b + i + tlen + 4; /* past the size field */
  KT_FAIL("attribute not found");
  return NULL;
}

static void put_le32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8), p[2] = (unsigned char)(v >> 16),
  p[3] = (unsigned char)(v >> 24);
}

/* Malformed and oversized files, each an error that names the file and the key, decided before
 * the pixels are allocated (30000 x 30000 claimed by a file of a few hundred bytes). */
TEST(exr_errors_located) {
  const char *dir = st_tmpdir();
  static const char *const bgr[] = {"B", "G", "R"}, *const gr[] = {"G", "R"}, *const z[] = {"Z"};
  float *px = map_px(3);
  const kt_exr_opts zip = {1, TINYEXR_COMPRESSIONTYPE_ZIP, 0, 0},
                    tiled = {0, TINYEXR_COMPRESSIONTYPE_NONE, 4, 0};
  size_t n, nt;
  unsigned char *b = kt_exr_bytes(W, H, 3, bgr, px, zip, &n);
  unsigned char *bt = kt_exr_bytes(W, H, 3, bgr, px, tiled, &nt);
  KT_TRUE(b && bt);
  st_write(dir, "cut.exr", b, n * 6 / 10);
  st_write(dir, "cut_header.exr", b, 40);
  st_write(dir, "cut_tiled.exr", bt, nt * 8 / 10);
  static const char dw[] = "dataWindow\0box2i";
  static const struct {
    const char *name;
    uint32_t w, h;
    int tiled;
  } claims[] = {{"wide.exr", 30000, 30000, 0}, {"wide_tiled.exr", 30000, 30000, 1},
                {"big.exr", 16000, 9000, 0}, {"claim.exr", 4096, 4096, 0},
                {"claim_tiled.exr", 2048, 2048, 1}};
  for (size_t i = 0; i < sizeof claims / sizeof claims[0]; i++) {
    unsigned char *c = malloc(claims[i].tiled ? nt : n);
    memcpy(c, claims[i].tiled ? bt : b, claims[i].tiled ? nt : n);
    unsigned char *d = find_attr(c, claims[i].tiled ? nt : n, dw, sizeof dw);
    put_le32(d + 8, claims[i].w - 1), put_le32(d + 12, claims[i].h - 1);
    st_write(dir, claims[i].name, c, claims[i].tiled ? nt : n);
    free(c);
  }
  unsigned char *c = malloc(n);
  memcpy(c, b, n);
  put_le32(find_attr(c, n, dw, sizeof dw) + 8, (uint32_t)-5); /* xmax < xmin */
  st_write(dir, "empty.exr", c, n);
  free(c);
  size_t m;
  unsigned char *x = kt_exr_bytes(W, H, 2, gr, px, zip, &m);
  st_write(dir, "rg.exr", x, m);
  free(x);
  x = kt_exr_bytes(W, H, 1, z, px, zip, &m);
  st_write(dir, "z.exr", x, m);
  free(x);
  static const struct {
    const char *file, *frag;
  } t[] = {
      {"cut.exr", "runs past the end of the file (truncated)"},
      {"cut_header.exr", "cannot decode the EXR: its header"},
      {"cut_tiled.exr", "(truncated"},
      {"wide.exr", "claims 30000x30000 pixels: a texture may have at most 16384 a side"},
      {"wide_tiled.exr", "claims 30000x30000 pixels: a texture may have at most 16384 a side"},
      {"big.exr", "a texture may use at most 512 MiB"},
      {"claim.exr", "4096x4096 pixels, which need at least"},
      {"claim_tiled.exr", "2048x2048 pixels, which need at least"},
      {"empty.exr", "no pixels"},
      {"rg.exr", "no R, G and B channels and no Y channel (2 channels, the first G)"},
      {"z.exr", "no R, G and B channels and no Y channel (1 channel, the first Z)"},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    char json[512];
    snprintf(json, sizeof json,
             CAM "\"environment\": {\"type\": \"map\",\n \"file\": \"%s\", \"rotation\": 10}}",
             t[i].file);
    kiln_error_detail e;
    kiln_scene *s = NULL;
    int rc = kiln_scene_load_string(json, dir, "test.json", &e, &s);
    char buf[2048];
    kiln_error_detail_format(&e, buf, sizeof buf);
    fprintf(stderr, "%s\n", buf);
    if (rc != KILN_EPARSE) KT_FAIL("%s: %s: %s", t[i].file, kiln_err_name(rc), buf);
    KT_TRUE(s == NULL);
    KT_STR_CONTAINS(e.file, t[i].file);
    KT_STR_EQ(e.path, "environment.file");
    KT_STR_CONTAINS(e.message, t[i].frag);
  }
  /* an EXR is a map, not an albedo texture */
  st_write(dir, "map.exr", b, n);
  kiln_error_detail e;
  kiln_scene *s = NULL;
  KT_CODE(kiln_scene_load_string(CAM "\"materials\": {\"m\": {\"type\": \"diffuse\", \"texture\": "
                                     "\"map.exr\"}}}",
                                 dir, "test.json", &e, &s),
          KILN_EPARSE);
  KT_STR_CONTAINS(e.message, "an OpenEXR image: textures are PNG or JPEG");
  free(b), free(bt), free(px);
  st_tmp_cleanup();
}

/* b (n bytes, an EXR) with the attribute name/type/value inserted first in its header (the
 * offsets after it are then wrong: only the header is of interest). */
static unsigned char *with_attr(const unsigned char *b, size_t n, const char *name,
                                const char *type, const void *v, uint32_t len, size_t *out) {
  size_t nl = strlen(name) + 1, tl = strlen(type) + 1, m = nl + tl + 4 + len;
  unsigned char *o = malloc(n + m);
  KT_TRUE(o != NULL);
  memcpy(o, b, 8);
  memcpy(o + 8, name, nl), memcpy(o + 8 + nl, type, tl), put_le32(o + 8 + nl + tl, len);
  memcpy(o + 8 + nl + tl + 4, v, len);
  memcpy(o + 8 + m, b + 8, n - 8);
  *out = n + m;
  return o;
}

/* Headers on which tinyexr's reader asserts (aborting the process, as Debian builds it) are
 * refused before it reads them: a tiled file's "tiles" of other than 9 bytes (the first finding
 * of fuzz.exr, tests/fuzz/regressions/exr/), and a "type" it does not know or that disagrees with
 * the file's layout. */
TEST(exr_headers_tinyexr_would_abort_on) {
  static const char *const bgr[] = {"B", "G", "R"};
  float *px = map_px(3);
  size_t n, nt, m;
  unsigned char *b = kt_exr_bytes(W, H, 3, bgr, px, (kt_exr_opts){0, 0, 0, 0}, &n);
  unsigned char *bt = kt_exr_bytes(W, H, 3, bgr, px, (kt_exr_opts){0, 0, 4, 0}, &nt);
  KT_TRUE(b && bt);
  static const struct {
    int tiled;
    const char *name, *type, *value;
    uint32_t len;
    const char *frag;
  } t[] = {
      {1, "tiles", "tiledesc", "\4\0\0\0\4\0\0\0\0\0\0\0\0\0", 14, "malformed EXR tile description (14 bytes"},
      {0, "type", "string", "bogusimage", 10, "unknown EXR part type 'bogusimage'"},
      {0, "type", "string", "tiledimage", 10, "type 'tiledimage' disagrees with its layout (scanlines)"},
      {1, "type", "string", "scanlineimage", 13, "type 'scanlineimage' disagrees with its layout (tiled)"},
      {0, "type", "string", "deepscanline", 12, "type 'deepscanline' disagrees"},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    unsigned char *c = with_attr(t[i].tiled ? bt : b, t[i].tiled ? nt : n, t[i].name, t[i].type,
                                 t[i].value, t[i].len, &m);
    kiln__texture tex;
    char msg[256] = "";
    KT_CODE(decode(c, m, &tex, msg, sizeof msg), KILN_EPARSE);
    KT_STR_CONTAINS(msg, t[i].frag);
    free(c);
  }
  /* the types that agree pass the guard (and the file then loads) */
  unsigned char *c = with_attr(b, n, "type", "string", "scanlineimage", 14, &m);
  kiln__texture tex;
  char msg[256] = "";
  int rc = decode(c, m, &tex, msg, sizeof msg);
  KT_TRUE(rc != KILN_EPARSE || strstr(msg, "disagrees") == NULL);
  if (rc == 0) free(tex.rgb);
  free(c), free(b), free(bt), free(px);
}

/* The files fuzzing found tinyexr mishandling (tests/fuzz/regressions/exr/), each refused by
 * kiln's checks before tinyexr decodes it, with the reason. */
TEST(exr_fuzz_findings_refused) {
  static const struct {
    const char *file, *frag;
  } t[] = {
      {"tiles_attribute_of_14_bytes_abort.exr", "malformed EXR tile description (14 bytes"},
      {"tile_coordinates_overflow_int.exr", "names a tile outside the image"},
      {"piz_bitmap_past_the_block.exr", "its PIZ data is malformed"},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    char path[1200];
    snprintf(path, sizeof path, "%s/../fuzz/regressions/exr/%s", st_src_dir(), t[i].file);
    size_t n;
    char *b = st_read_file(path, &n);
    kiln__texture tex;
    char msg[256] = "";
    KT_CODE(decode((const unsigned char *)b, n, &tex, msg, sizeof msg), KILN_EPARSE);
    KT_STR_CONTAINS(msg, t[i].frag);
    free(b);
  }
}

/* A map named by a scene: "file" takes .exr as it takes .hdr, with rotation and intensity. */
TEST(exr_environment) {
  const char *dir = st_tmpdir();
  static const char *const bgr[] = {"B", "G", "R"};
  float *px = map_px(3);
  size_t n;
  unsigned char *b =
      kt_exr_bytes(W, H, 3, bgr, px, (kt_exr_opts){1, TINYEXR_COMPRESSIONTYPE_PIZ, 0, 0}, &n);
  st_write(dir, "sky.exr", b, n);
  kiln_scene *s = st_load_ok(CAM "\"environment\": {\"type\": \"map\", \"file\": \"sky.exr\", "
                                 "\"rotation\": -45, \"intensity\": 3}}",
                             dir);
  const kiln__scene *d = st_data(s);
  KT_EQ(d->env.type, KILN__ENV_MAP);
  ST_NEAR(d->env.rotation_deg, -45, 0);
  ST_NEAR(d->env.intensity, 3, 0);
  const kiln__texture *t = &d->textures[d->env.texture];
  KT_EQ(t->width, W);
  KT_EQ(t->height, H);
  ST_NEAR(t->rgb[0], value(0, 0, 2), 0);
  kiln_scene_destroy(s);
  free(b), free(px);
  st_tmp_cleanup();
}

/* The alpha plane is kept as floats too, and counts against the memory limit: a PNG with alpha
 * of 8192 x 4096 (384 MiB as RGB floats) is refused as 768 MiB when its alpha is asked for, and
 * gets only as far as the file-size check without. */
TEST(alpha_plane_counts_against_the_limit) {
  unsigned char b[8 + 25 + 12] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
  unsigned char *p = b + 8;
  static const unsigned char ihdr[21] = {0, 0, 0, 13, 'I', 'H', 'D', 'R', 0, 0, 0x20, 0, 0, 0,
                                         0x10, 0, 8, 6, 0, 0, 0}; /* 8192 x 4096, 8-bit RGBA */
  memcpy(p, ihdr, 21);
  uint32_t crc = 0xffffffffu;
  for (int i = 4; i < 21; i++) {
    crc ^= p[i];
    for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
  }
  crc = ~crc;
  p[21] = (unsigned char)(crc >> 24), p[22] = (unsigned char)(crc >> 16),
  p[23] = (unsigned char)(crc >> 8), p[24] = (unsigned char)crc;
  memcpy(p + 25, "\0\0\0\0IEND\xae\x42\x60\x82", 12);
  kiln__texture t, a;
  char msg[256];
  KT_CODE(kiln__texture_decode(b, sizeof b, KILN__TEX_LINEAR, &t, &a, msg, sizeof msg),
          KILN_EPARSE);
  KT_STR_CONTAINS(msg, "8192x4096 pixels, 768 MiB decoded: a texture may use at most 512 MiB");
  KT_CODE(kiln__texture_decode(b, sizeof b, KILN__TEX_SRGB, &t, NULL, msg, sizeof msg),
          KILN_EPARSE);
  KT_STR_CONTAINS(msg, "8192x4096 pixels, which need at least");
}

/* kiln's .hdr writer (stb_image_write: mantissas truncated to the largest channel's exponent)
 * read back by kiln's reader ((m + 0.5) 2^(e - 136)): every value within half a step of what was
 * written, half a step being at most 1/256 of the texel's largest channel, and no bias: the mean
 * signed error is under a tenth of that (reading m 2^(e - 136), as kiln did, is half a step low
 * on average). */
TEST(hdr_writer_roundtrip) {
  enum { N = 64 };
  float px[N * N * 3];
  uint32_t r = 12345;
  /* channels within a factor 4 of each other (a channel far below its texel's largest reads as
   * half a step, as in Radiance and Blender: not what this measures) */
  for (int i = 0; i < N * N; i++) {
    r = r * 1664525u + 1013904223u;
    int e = (int)(r % 16) - 6;
    for (int k = 0; k < 3; k++) {
      r = r * 1664525u + 1013904223u;
      px[3 * i + k] = ldexpf(0.25f + 0.75f * (float)(r >> 8) / 16777216.0f, e);
    }
  }
  kiln__raster ra = {N, N, 3, KILN__PIX_F32, px, N * 3 * sizeof(float)};
  void *out;
  size_t len;
  KT_CODE(kiln__encode_hdr(&ra, &out, &len), KILN_OK);
  kiln__texture t;
  char msg[256];
  KT_CODE(decode(out, len, &t, msg, sizeof msg), KILN_OK);
  double bias = 0;
  for (int i = 0; i < N * N; i++) {
    const float *w = px + 3 * i;
    double m = fmax(w[0], fmax(w[1], w[2]));
    for (int k = 0; k < 3; k++) {
      double err = (double)t.rgb[3 * i + k] - w[k];
      if (fabs(err) > m / 256 * (1 + 1e-6))
        KT_FAIL("texel %d channel %d: wrote %.9g, read %.9g (largest channel %g)", i, k, w[k],
                t.rgb[3 * i + k], m);
      bias += err / m;
    }
  }
  bias /= N * N * 3;
  fprintf(stderr, "hdr round trip: mean signed error %.3g of the largest channel\n", bias);
  KT_TRUE(fabs(bias) < 0.1 / 256);
  free(t.rgb), free(out);
}
