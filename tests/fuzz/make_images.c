/* make_images.c: writes the binary seeds and assets of the fuzz targets (make_seeds.sh compiles
 * and runs it; not part of the build). Tiny images in every variant the decoders distinguish
 * that a small writer can make: PNG grey, grey+alpha, RGB, RGBA (stb_image_write), palette and
 * 16-bit (written here with zlib); JPEG 4:4:4, 4:2:0, grey, odd sizes (stb_image_write); Radiance
 * .hdr run-length encoded and flat; PLY binary little- and big-endian.
 *
 *   make_images SEEDS_DIR ASSETS_DIR */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "kt_stb_write.h"

static const char *seeds, *assets;

static FILE *open_out(const char *dir, const char *name) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f) perror(path), exit(1);
  return f;
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
  plys();
  coloured_plys();
  return 0;
}
