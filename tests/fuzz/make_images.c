/* make_images.c: writes the binary seeds and assets of the fuzz targets (make_seeds.sh compiles
 * and runs it; not part of the build). Tiny images in every variant the decoders distinguish
 * that a small writer can make: PNG grey, grey+alpha, RGB, RGBA (stb_image_write), palette,
 * 16-bit and tRNS (written here with zlib); JPEG 4:4:4, 4:2:0, grey, odd sizes (stb_image_write);
 * Radiance .hdr run-length encoded and flat; OpenEXR scanline and tiled (one level, mipmapped),
 * HALF and FLOAT, RGB, RGBA and Y, every compression tinyexr writes (tinyexr); PLY binary little-
 * and big-endian. And the malformed files every decoder must refuse before allocating: each
 * format truncated, and claiming 30000 x 30000 pixels (or a size within the side limit but past
 * the memory limit, or past what the file holds) in a file of a few hundred bytes.
 *
 *   make_images SEEDS_DIR ASSETS_DIR */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "kt_exr_write.h"
#include "kt_stb_write.h"

static const char *seeds, *assets;

static FILE *open_out(const char *dir, const char *name) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f) perror(path), exit(1);
  return f;
}

/* The file dir/name cut to its first keep bytes (copied to dir/out), or with the bytes at `at`
 * replaced by the n bytes of b. */
static unsigned char *slurp(const char *dir, const char *name, size_t *len) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  if (!f) perror(path), exit(1);
  unsigned char *b = malloc(1 << 20);
  if (!b) exit(1);
  *len = fread(b, 1, 1 << 20, f);
  fclose(f);
  return b;
}

static void truncated(const char *dir, const char *name, const char *out, double frac) {
  size_t n;
  unsigned char *b = slurp(dir, name, &n);
  FILE *f = open_out(dir, out);
  fwrite(b, 1, (size_t)((double)n * frac), f);
  fclose(f);
  free(b);
}

static void patched(const char *dir, const char *name, const char *out, size_t at,
                    const unsigned char *p, size_t np) {
  size_t n;
  unsigned char *b = slurp(dir, name, &n);
  if (at + np > n) fprintf(stderr, "%s: patch past the end\n", name), exit(1);
  memcpy(b + at, p, np);
  FILE *f = open_out(dir, out);
  fwrite(b, 1, n, f);
  fclose(f);
  free(b);
}

/* Where needle first occurs in the file, just past it. */
static size_t find_after(const char *dir, const char *name, const void *needle, size_t nn) {
  size_t n;
  unsigned char *b = slurp(dir, name, &n);
  for (size_t i = 0; i + nn <= n; i++)
    if (memcmp(b + i, needle, nn) == 0) return free(b), i + nn;
  fprintf(stderr, "%s: marker not found\n", name), exit(1);
}

static void put32(FILE *f, uint32_t v) {
  unsigned char b[4] = {v >> 24, v >> 16, v >> 8, v};
  fwrite(b, 1, 4, f);
}

static void chunk(FILE *f, const char *type, const unsigned char *d, uint32_t n) {
  put32(f, n);
  fwrite(type, 1, 4, f);
  if (n) fwrite(d, 1, n, f);
  uLong crc = crc32(0, (const Bytef *)type, 4);
  crc = crc32(crc, d, n);
  put32(f, (uint32_t)crc);
}

/* A PNG of raw scanlines (filter bytes included) of the given colour type and depth. */
static void png(const char *name, int w, int h, int depth, int ctype, const unsigned char *raw,
                size_t rawlen, const unsigned char *plte, uint32_t nplte) {
  FILE *f = fopen(name, "wb");
  if (!f) perror(name), exit(1);
  fwrite("\x89PNG\r\n\x1a\n", 1, 8, f);
  unsigned char ihdr[13] = {0, 0, 0, w, 0, 0, 0, h, depth, ctype, 0, 0, 0};
  chunk(f, "IHDR", ihdr, 13);
  if (plte) chunk(f, "PLTE", plte, nplte);
  uLongf zl = compressBound(rawlen);
  unsigned char *z = malloc(zl);
  if (!z || compress2(z, &zl, raw, rawlen, 9) != Z_OK) exit(1);
  chunk(f, "IDAT", z, (uint32_t)zl);
  chunk(f, "IEND", NULL, 0);
  free(z);
  fclose(f);
}

static void pngs(void) {
  char path[1024];
  unsigned char px[4 * 4 * 4];
  for (int i = 0; i < (int)sizeof px; i++) px[i] = (unsigned char)(i * 37 + 11);
  for (int comp = 1; comp <= 4; comp++) {
    snprintf(path, sizeof path, "%s/png/comp%d.png", seeds, comp);
    stbi_write_png(path, 4, 3, comp, px, 4 * comp);
  }
  snprintf(path, sizeof path, "%s/wood.png", assets);
  stbi_write_png(path, 4, 4, 3, px, 12);
  /* palette, 2 bits: 3 rows of 4 pixels, filter 0 */
  unsigned char plte[12] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255};
  unsigned char pal[] = {0, 0x1b, 1, 0xe4, 0, 0x55};
  snprintf(path, sizeof path, "%s/png/palette2.png", seeds);
  png(path, 4, 3, 2, 3, pal, sizeof pal, plte, sizeof plte);
  /* 16-bit RGB, 2x2, filters 1 (sub) and 2 (up) */
  unsigned char rgb16[2 * (1 + 12)] = {1, 0x12, 0x34, 0, 0, 0xff, 0xff, 0, 1, 0, 2,  0,  3,
                                       2, 1,    2,    3, 4, 5,    6,    7, 8, 9, 10, 11, 12};
  snprintf(path, sizeof path, "%s/png/rgb16.png", seeds);
  png(path, 2, 2, 16, 2, rgb16, sizeof rgb16, NULL, 0);
  /* 16-bit grey + alpha, 1x2, filter 4 (Paeth) */
  unsigned char ga16[2 * (1 + 4)] = {4, 1, 2, 3, 4, 3, 9, 8, 7, 6};
  snprintf(path, sizeof path, "%s/png/ga16.png", seeds);
  png(path, 1, 2, 16, 4, ga16, sizeof ga16, NULL, 0);
  /* RGB with a tRNS colour key: the alpha plane comes from it */
  {
    FILE *f = open_out(seeds, "png/rgb_trns.png");
    fwrite("\x89PNG\r\n\x1a\n", 1, 8, f);
    unsigned char ihdr[13] = {0, 0, 0, 2, 0, 0, 0, 2, 8, 2, 0, 0, 0};
    chunk(f, "IHDR", ihdr, 13);
    unsigned char trns[6] = {0, 255, 0, 0, 0, 0}; /* red is transparent */
    chunk(f, "tRNS", trns, 6);
    unsigned char raw[2 * 7] = {0, 255, 0, 0, 0, 255, 0, 0, 0, 0, 255, 9, 9, 9};
    uLongf zl = compressBound(sizeof raw);
    unsigned char z[64];
    if (compress2(z, &zl, raw, sizeof raw, 9) != Z_OK) exit(1);
    chunk(f, "IDAT", z, (uint32_t)zl);
    chunk(f, "IEND", NULL, 0);
    fclose(f);
  }
  /* 30000 x 30000 claimed by the IHDR of a 2x2 RGB file (IHDR's CRC made right) */
  {
    FILE *f = open_out(seeds, "png/claims_30000x30000.png");
    fwrite("\x89PNG\r\n\x1a\n", 1, 8, f);
    unsigned char ihdr[13] = {0, 0, 0x75, 0x30, 0, 0, 0x75, 0x30, 8, 2, 0, 0, 0};
    chunk(f, "IHDR", ihdr, 13);
    unsigned char z[64];
    uLongf zl = sizeof z;
    unsigned char raw[14] = {0};
    if (compress2(z, &zl, raw, sizeof raw, 9) != Z_OK) exit(1);
    chunk(f, "IDAT", z, (uint32_t)zl);
    chunk(f, "IEND", NULL, 0);
    fclose(f);
  }
  truncated(seeds, "png/comp4.png", "png/truncated_rgba.png", 0.6);
  truncated(seeds, "png/rgb16.png", "png/truncated_rgb16.png", 0.5);
}

static void jpegs(void) {
  char path[1024];
  unsigned char px[9 * 7 * 3];
  for (int i = 0; i < (int)sizeof px; i++) px[i] = (unsigned char)(i * 53 + 7);
  snprintf(path, sizeof path, "%s/jpeg/rgb444_q95.jpg", seeds);
  stbi_write_jpg(path, 8, 8, 3, px, 95);
  snprintf(path, sizeof path, "%s/jpeg/rgb420_q50.jpg", seeds);
  stbi_write_jpg(path, 8, 8, 3, px, 50);
  snprintf(path, sizeof path, "%s/jpeg/odd_9x7.jpg", seeds);
  stbi_write_jpg(path, 9, 7, 3, px, 80);
  snprintf(path, sizeof path, "%s/jpeg/grey.jpg", seeds);
  stbi_write_jpg(path, 8, 4, 1, px, 90);
  snprintf(path, sizeof path, "%s/wood.jpg", assets);
  stbi_write_jpg(path, 8, 8, 3, px, 90);
  /* the frame header (SOF0: length, precision, height, width) claiming 30000 x 30000 */
  size_t sof = find_after(seeds, "jpeg/rgb444_q95.jpg", "\xff\xc0", 2);
  const unsigned char big[4] = {0x75, 0x30, 0x75, 0x30};
  patched(seeds, "jpeg/rgb444_q95.jpg", "jpeg/claims_30000x30000.jpg", sof + 3, big, 4);
  const unsigned char mid[4] = {0x10, 0x00, 0x10, 0x00}; /* 4096 x 4096: more than the file holds */
  patched(seeds, "jpeg/rgb444_q95.jpg", "jpeg/claims_4096x4096.jpg", sof + 3, mid, 4);
  truncated(seeds, "jpeg/rgb420_q50.jpg", "jpeg/truncated_420.jpg", 0.7);
}

static void hdrs(void) {
  char path[1024];
  float px[16 * 4 * 3];
  for (int i = 0; i < 16 * 4 * 3; i++) px[i] = (float)(i % 7) * 0.25f + 0.01f * (float)i;
  snprintf(path, sizeof path, "%s/hdr/rle_16x4.hdr", seeds);
  stbi_write_hdr(path, 16, 4, 3, px); /* widths 8 to 32767: run-length encoded scanlines */
  snprintf(path, sizeof path, "%s/hdr/flat_4x2.hdr", seeds);
  stbi_write_hdr(path, 4, 2, 3, px); /* narrower: flat RGBE */
  snprintf(path, sizeof path, "%s/sky.hdr", assets);
  stbi_write_hdr(path, 16, 8, 3, px);
  /* a minimal header, as other writers make it */
  FILE *f = open_out(seeds, "hdr/minimal_2x1.hdr");
  fputs("#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 1 +X 2\n", f);
  fwrite("\x80\x40\x20\x81\x10\x10\x10\x80", 1, 8, f);
  fclose(f);
  f = open_out(seeds, "hdr/claims_30000x30000.hdr");
  fputs("#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 30000 +X 30000\n", f);
  fwrite("\x80\x40\x20\x81\x10\x10\x10\x80", 1, 8, f);
  fclose(f);
  truncated(seeds, "hdr/rle_16x4.hdr", "hdr/truncated_rle.hdr", 0.7);
}

/* OpenEXR: 8 x 4 images (12 x 10 where tiled, so that edge tiles are partial) of a ramp. */
static void exrs(void) {
  static const char *const rgb[] = {"B", "G", "R"}, *const rgba[] = {"A", "B", "G", "R"},
                           *const y[] = {"Y"}, *const rg[] = {"G", "R"}, *const z[] = {"Z"};
  static const struct {
    const char *name;
    int comp;
  } comps[] = {{"none", TINYEXR_COMPRESSIONTYPE_NONE}, {"rle", TINYEXR_COMPRESSIONTYPE_RLE},
               {"zips", TINYEXR_COMPRESSIONTYPE_ZIPS}, {"zip", TINYEXR_COMPRESSIONTYPE_ZIP},
               {"piz", TINYEXR_COMPRESSIONTYPE_PIZ}};
  float px[12 * 10 * 4];
  for (int i = 0; i < 12 * 10 * 4; i++) px[i] = (float)(i % 11) * 0.3f + 0.01f * (float)i;
  px[5] = -1.0f; /* a negative texel: made 0 */
  char path[1024];
  for (size_t k = 0; k < sizeof comps / sizeof comps[0]; k++)
    for (int half = 0; half <= 1; half++) {
      snprintf(path, sizeof path, "%s/exr/scan_%s_%s_rgb.exr", seeds, comps[k].name,
               half ? "half" : "float");
      if (kt_exr_write(path, 8, 4, 3, rgb, px, (kt_exr_opts){half, comps[k].comp, 0, 0}, 0))
        exit(1);
    }
  struct {
    const char *name;
    int nch;
    const char *const *ch;
    kt_exr_opts o;
    int w, h;
  } v[] = {
      {"scan_zip_half_rgba", 4, rgba, {1, TINYEXR_COMPRESSIONTYPE_ZIP, 0, 0}, 8, 4},
      {"scan_piz_float_y", 1, y, {0, TINYEXR_COMPRESSIONTYPE_PIZ, 0, 0}, 8, 4},
      {"tiled_none_float_rgb", 3, rgb, {0, TINYEXR_COMPRESSIONTYPE_NONE, 4, 0}, 12, 10},
      {"tiled_zip_half_rgba", 4, rgba, {1, TINYEXR_COMPRESSIONTYPE_ZIP, 8, 0}, 12, 10},
      {"tiled_piz_half_rgb_mipmap", 3, rgb, {1, TINYEXR_COMPRESSIONTYPE_PIZ, 4, 1}, 12, 10},
      {"tiled_rle_float_y_mipmap", 1, y, {0, TINYEXR_COMPRESSIONTYPE_RLE, 4, 1}, 12, 10},
      {"wrong_channels_rg", 2, rg, {1, TINYEXR_COMPRESSIONTYPE_ZIP, 0, 0}, 8, 4},
      {"wrong_channels_z", 1, z, {0, TINYEXR_COMPRESSIONTYPE_NONE, 0, 0}, 8, 4},
  };
  for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
    snprintf(path, sizeof path, "%s/exr/%s.exr", seeds, v[k].name);
    if (kt_exr_write(path, v[k].w, v[k].h, v[k].nch, v[k].ch, px, v[k].o, 0)) exit(1);
  }
  snprintf(path, sizeof path, "%s/sky.exr", assets);
  if (kt_exr_write(path, 8, 4, 3, rgb, px, (kt_exr_opts){1, TINYEXR_COMPRESSIONTYPE_ZIP, 0, 0}, 0))
    exit(1);
  truncated(seeds, "exr/scan_zip_float_rgb.exr", "exr/truncated_scan_zip.exr", 0.6);
  truncated(seeds, "exr/scan_none_half_rgb.exr", "exr/truncated_scan_none.exr", 0.9);
  truncated(seeds, "exr/tiled_zip_half_rgba.exr", "exr/truncated_tiled_zip.exr", 0.8);
  truncated(seeds, "exr/scan_zip_half_rgba.exr", "exr/truncated_header.exr", 0.1);
  /* dataWindow (xmin, ymin, xmax, ymax) of a small file claiming more: 30000 x 30000 (past the
   * side limit), 16000 x 9000 (past the memory limit), 4096 x 4096 (past what the file holds) */
  static const char dw[] = "dataWindow\0box2i\0\x10\0\0\0";
  static const struct {
    const char *name;
    uint32_t w, h;
  } big[] = {{"claims_30000x30000", 30000, 30000},
             {"claims_16000x9000", 16000, 9000},
             {"claims_4096x4096", 4096, 4096}};
  for (int tiled = 0; tiled <= 1; tiled++) {
    const char *src = tiled ? "exr/tiled_none_float_rgb.exr" : "exr/scan_zip_half_rgba.exr";
    size_t at = find_after(seeds, src, dw, sizeof dw - 1);
    for (size_t k = 0; k < 3; k++) {
      uint32_t mx = big[k].w - 1, my = big[k].h - 1;
      unsigned char b[8] = {mx, mx >> 8, mx >> 16, mx >> 24, my, my >> 8, my >> 16, my >> 24};
      char out[128];
      snprintf(out, sizeof out, "exr/%s_%s.exr", big[k].name, tiled ? "tiled" : "scan");
      patched(seeds, src, out, at + 8, b, 8);
    }
  }
}

static void plys(void) {
  static const float v[4][3] = {{0, 0, 0}, {1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
  static const int faces[2][3] = {{0, 1, 2}, {0, 2, 3}};
  for (int big = 0; big <= 1; big++) {
    FILE *f = open_out(seeds, big ? "ply/binary_be.ply" : "ply/binary_le.ply");
    fprintf(f,
            "ply\nformat binary_%s_endian 1.0\nelement vertex 4\nproperty float x\n"
            "property float y\nproperty float z\nelement face 2\n"
            "property list uchar int vertex_indices\nend_header\n",
            big ? "big" : "little");
    for (int i = 0; i < 4; i++)
      for (int k = 0; k < 3; k++) {
        unsigned char b[4];
        memcpy(b, &v[i][k], 4);
        if (big) fputc(b[3], f), fputc(b[2], f), fputc(b[1], f), fputc(b[0], f);
        else fwrite(b, 1, 4, f);
      }
    for (int i = 0; i < 2; i++) {
      fputc(3, f);
      for (int k = 0; k < 3; k++) {
        uint32_t x = (uint32_t)faces[i][k];
        unsigned char b[4] = {x, x >> 8, x >> 16, x >> 24};
        if (big) fputc(b[3], f), fputc(b[2], f), fputc(b[1], f), fputc(b[0], f);
        else fwrite(b, 1, 4, f);
      }
    }
    fclose(f);
  }
}

static void put_be_le(FILE *f, const void *p, int n, int big) {
  const unsigned char *b = p;
  for (int i = 0; i < n; i++) fputc(b[big ? n - 1 - i : i], f);
}

/* Colours (uchar and an ignored alpha), extra scalar and list properties, `vertex_index` lists of
 * ushort count and short items, an extra element: everything ply.c reads or skips. */
static void coloured_plys(void) {
  static const float v[4][3] = {{0, 0, 0}, {1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
  static const unsigned char rgba[4][4] = {{255, 0, 0, 9}, {0, 255, 0, 9}, {0, 0, 255, 9},
                                          {128, 128, 128, 9}};
  for (int big = 0; big <= 1; big++) {
    FILE *f = open_out(seeds, big ? "ply/colour_be.ply" : "ply/colour_le.ply");
    fprintf(f,
            "ply\nformat binary_%s_endian 1.0\nelement vertex 4\nproperty float x\n"
            "property float y\nproperty float z\nproperty uchar red\nproperty uchar green\n"
            "property uchar blue\nproperty uchar alpha\nproperty list uchar float extra\n"
            "element face 2\nproperty list ushort short vertex_index\nproperty uchar flags\n"
            "element material 1\nproperty double a\nend_header\n",
            big ? "big" : "little");
    for (int i = 0; i < 4; i++) {
      for (int k = 0; k < 3; k++) put_be_le(f, &v[i][k], 4, big);
      fwrite(rgba[i], 1, 4, f);
      fputc(1, f);
      put_be_le(f, &v[i][0], 4, big);
    }
    static const short faces[2][3] = {{0, 1, 2}, {0, 2, 3}};
    for (int i = 0; i < 2; i++) {
      const unsigned short n = 3;
      put_be_le(f, &n, 2, big);
      for (int k = 0; k < 3; k++) put_be_le(f, &faces[i][k], 2, big);
      fputc(7, f);
    }
    const double a = 0.5;
    put_be_le(f, &a, 8, big);
    fclose(f);
  }
}

int main(int argc, char **argv) {
  if (argc != 3) return fprintf(stderr, "usage: make_images SEEDS_DIR ASSETS_DIR\n"), 2;
  seeds = argv[1], assets = argv[2];
  pngs();
  jpegs();
  hdrs();
  exrs();
  plys();
  coloured_plys();
  return 0;
}
