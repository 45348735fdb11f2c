/* test_encode.c: the image encoders of engine/image/encode.c and the atomic writes of base/.
 *
 * Every encoder is checked by decoding its output with an independent reader (stb_image for PNG,
 * JPEG and HDR, tinyexr for EXR, a parse of the NPY header) and comparing pixels. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libdeflate.h>
#include <stb_image.h>
#include <tinyexr.h>

#include "image_internal.h"
#include "kiln/error.h"
#include "kt.h"

enum { W = 67, H = 41 }; /* odd sizes: no accidental alignment */

static void fill_u8(uint8_t *p, int c) {
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      for (int k = 0; k < c; k++)
        p[(y * W + x) * c + k] = (uint8_t)(x * 3 + y * 7 + k * 50 + ((x * y) % 13));
}

/* PNG round trip, 8 and 16 bit, 1..4 channels, packed and strided, every compression level. */
TEST(PNG_roundtrip) {
  for (int c = 1; c <= 4; c++) {
    uint8_t *p8 = malloc((size_t)W * H * c);
    uint16_t *p16 = malloc((size_t)W * H * c * 2 + 64 * H);
    KT_TRUE(p8 && p16);
    fill_u8(p8, c);
    /* 16-bit, with a stride of one row plus 32 bytes */
    size_t stride = (size_t)W * c * 2 + 32;
    for (int y = 0; y < H; y++)
      for (int i = 0; i < W * c; i++)
        ((uint16_t *)((char *)p16 + y * stride))[i] =
            (uint16_t)(p8[y * W * c + i] * 257u + (i & 1));
    for (int level = 1; level <= 12; level += 11) {
      kiln__raster r8 = {W, H, c, KILN__PIX_U8, p8, 0};
      void *png = NULL;
      size_t len = 0;
      KT_CODE(kiln__encode_png(&r8, level, &png, &len), KILN_OK);
      int w, h, n;
      unsigned char *d = stbi_load_from_memory(png, (int)len, &w, &h, &n, 0);
      KT_TRUE(d != NULL);
      KT_EQ(w, W);
      KT_EQ(h, H);
      KT_EQ(n, c);
      KT_EQ(memcmp(d, p8, (size_t)W * H * c), 0);
      stbi_image_free(d);
      free(png);

      kiln__raster r16 = {W, H, c, KILN__PIX_U16, p16, stride};
      KT_CODE(kiln__encode_png(&r16, level, &png, &len), KILN_OK);
      KT_TRUE(stbi_is_16_bit_from_memory(png, (int)len));
      uint16_t *d16 = stbi_load_16_from_memory(png, (int)len, &w, &h, &n, 0);
      KT_TRUE(d16 != NULL);
      for (int y = 0; y < H; y++)
        for (int i = 0; i < W * c; i++)
          KT_EQ(d16[y * W * c + i], ((uint16_t *)((char *)p16 + y * stride))[i]);
      stbi_image_free(d16);
      free(png);
    }
    free(p8);
    free(p16);
  }
}

/* CRC-32 of the PNG specification, bit by bit (independent of libdeflate's). */
static uint32_t crc32_ref(const unsigned char *p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return c ^ 0xffffffffu;
}

/* Every chunk's CRC is right and the file ends with IEND: strict readers (libpng, Blender) check
 * both, stb_image does not. */
TEST(PNG_chunk_crcs) {
  uint8_t *p8 = malloc((size_t)W * H * 3);
  fill_u8(p8, 3);
  kiln__raster r = {W, H, 3, KILN__PIX_U8, p8, 0};
  void *png = NULL;
  size_t len = 0;
  KT_CODE(kiln__encode_png(&r, 0, &png, &len), KILN_OK);
  const unsigned char *b = png;
  KT_EQ(memcmp(b, "\x89PNG\r\n\x1a\n", 8), 0);
  size_t off = 8;
  int chunks = 0;
  char last[5] = "";
  while (off + 12 <= len) {
    uint32_t n = (uint32_t)b[off] << 24 | (uint32_t)b[off + 1] << 16 | (uint32_t)b[off + 2] << 8 |
                 b[off + 3];
    KT_TRUE(off + 12 + n <= len);
    const unsigned char *c = b + off + 8 + n;
    uint32_t crc = (uint32_t)c[0] << 24 | (uint32_t)c[1] << 16 | (uint32_t)c[2] << 8 | c[3];
    memcpy(last, b + off + 4, 4);
    if (crc != crc32_ref(b + off + 4, 4 + n)) KT_FAIL("chunk %s: bad CRC %08x", last, crc);
    off += 12 + n;
    chunks++;
  }
  KT_EQ(off, len);
  KT_TRUE(chunks >= 3);
  KT_STR_EQ(last, "IEND");
  free(png);
  free(p8);
}

TEST(PNG_invalid) {
  uint8_t px[4] = {0};
  void *out = (void *)1;
  size_t len = 1;
  kiln__raster r = {1, 1, 5, KILN__PIX_U8, px, 0};
  KT_CODE(kiln__encode_png(&r, 0, &out, &len), KILN_EINVAL);
  KT_PTR_EQ(out, NULL);
  r.channels = 3;
  r.type = KILN__PIX_F32;
  KT_CODE(kiln__encode_png(&r, 0, &out, &len), KILN_EINVAL);
  r.type = KILN__PIX_U8;
  r.width = 0;
  KT_CODE(kiln__encode_png(&r, 0, &out, &len), KILN_EINVAL);
  r.width = 1;
  KT_CODE(kiln__encode_png(&r, 13, &out, &len), KILN_EINVAL);
}

TEST(JPEG_roundtrip) {
  uint8_t *p = malloc((size_t)W * H * 3);
  KT_TRUE(p != NULL);
  for (int i = 0; i < W * H * 3; i++) p[i] = (uint8_t)(100 + (i % 3) * 40); /* flat colour */
  kiln__raster r = {W, H, 3, KILN__PIX_U8, p, 0};
  void *jpg = NULL;
  size_t len = 0;
  KT_CODE(kiln__encode_jpeg(&r, 95, &jpg, &len), KILN_OK);
  int w, h, n;
  unsigned char *d = stbi_load_from_memory(jpg, (int)len, &w, &h, &n, 3);
  KT_TRUE(d != NULL);
  KT_EQ(w, W);
  KT_EQ(h, H);
  for (int i = 0; i < W * H * 3; i++) KT_TRUE(abs((int)d[i] - (int)p[i]) <= 3); /* lossy */
  stbi_image_free(d);
  free(jpg);
  KT_CODE(kiln__encode_jpeg(&r, 0, &jpg, &len), KILN_EINVAL);
  free(p);
}

static void fill_f32(float *p, int c) {
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      for (int k = 0; k < c; k++)
        p[(y * W + x) * c + k] = 0.01f * (float)(x + 2 * y) + 0.3f * (float)k;
}

TEST(HDR_roundtrip) {
  float *p = malloc(sizeof(float) * W * H * 3);
  KT_TRUE(p != NULL);
  fill_f32(p, 3);
  kiln__raster r = {W, H, 3, KILN__PIX_F32, p, 0};
  void *out = NULL;
  size_t len = 0;
  KT_CODE(kiln__encode_hdr(&r, &out, &len), KILN_OK);
  int w, h, n;
  float *d = stbi_loadf_from_memory(out, (int)len, &w, &h, &n, 3);
  KT_TRUE(d != NULL);
  KT_EQ(w, W);
  /* RGBE: 8-bit mantissas under the pixel's shared exponent, so the error is relative to the
   * pixel's largest component */
  for (int i = 0; i < W * H * 3; i++) {
    const float *px = p + (i / 3) * 3;
    float m = fmaxf(px[0], fmaxf(px[1], px[2]));
    KT_TRUE(fabsf(d[i] - p[i]) <= m / 128.0f);
  }
  stbi_image_free(d);
  free(out);
  free(p);
}

TEST(EXR_roundtrip) {
  for (int c = 1; c <= 4; c++) {
    float *p = malloc(sizeof(float) * W * H * c);
    KT_TRUE(p != NULL);
    fill_f32(p, c);
    kiln__raster r = {W, H, c, KILN__PIX_F32, p, 0};
    void *out = NULL;
    size_t len = 0;
    KT_CODE(kiln__encode_exr(&r, &out, &len), KILN_OK);
    EXRVersion ver;
    KT_EQ(ParseEXRVersionFromMemory(&ver, out, len), TINYEXR_SUCCESS);
    EXRHeader hdr;
    InitEXRHeader(&hdr);
    const char *err = NULL;
    KT_EQ(ParseEXRHeaderFromMemory(&hdr, &ver, out, len, &err), TINYEXR_SUCCESS);
    EXRImage img;
    InitEXRImage(&img);
    KT_EQ(LoadEXRImageFromMemory(&img, &hdr, out, len, &err), TINYEXR_SUCCESS);
    KT_EQ(img.width, W);
    KT_EQ(img.height, H);
    KT_EQ(img.num_channels, c);
    /* channel names map back to our interleaved order */
    for (int ch = 0; ch < c; ch++) {
      const char *name = hdr.channels[ch].name;
      int src = c == 1           ? 0
                : name[0] == 'R' ? 0
                : name[0] == 'G' ? 1
                : name[0] == 'B' ? 2
                : name[0] == 'A' ? c - 1
                                 : 0;
      KT_EQ(hdr.pixel_types[ch], TINYEXR_PIXELTYPE_FLOAT);
      const float *plane = (const float *)(const void *)img.images[ch];
      for (int i = 0; i < W * H; i++) KT_TRUE(plane[i] == p[i * c + src]);
    }
    FreeEXRImage(&img);
    FreeEXRHeader(&hdr);
    free(out);
    free(p);
  }
}

TEST(NPY_layout) {
  uint32_t *ids = malloc(sizeof(uint32_t) * W * H);
  KT_TRUE(ids != NULL);
  for (int i = 0; i < W * H; i++) ids[i] = (uint32_t)i * 2654435761u;
  kiln__raster r = {W, H, 1, KILN__PIX_U32, ids, 0};
  void *out = NULL;
  size_t len = 0;
  KT_CODE(kiln__encode_npy(&r, &out, &len), KILN_OK);
  const unsigned char *b = out;
  KT_EQ(memcmp(b, "\x93NUMPY\x01\x00", 8), 0);
  size_t hlen = (size_t)b[8] | (size_t)b[9] << 8;
  KT_EQ((10 + hlen) % 64, 0);
  char header[256] = {0};
  memcpy(header, b + 10, hlen < 255 ? hlen : 255);
  KT_STR_CONTAINS(header, "'descr': '<u4'");
  KT_STR_CONTAINS(header, "'fortran_order': False");
  char shape[64];
  snprintf(shape, sizeof shape, "'shape': (%d, %d)", H, W);
  KT_STR_CONTAINS(header, shape);
  KT_EQ(header[hlen - 1], '\n');
  KT_EQ(len, 10 + hlen + sizeof(uint32_t) * W * H);
  KT_EQ(memcmp(b + 10 + hlen, ids, sizeof(uint32_t) * W * H), 0);
  free(out);

  float *rgb = malloc(sizeof(float) * W * H * 3);
  KT_TRUE(rgb != NULL);
  fill_f32(rgb, 3);
  kiln__raster rf = {W, H, 3, KILN__PIX_F32, rgb, 0};
  KT_CODE(kiln__encode_npy(&rf, &out, &len), KILN_OK);
  b = out;
  hlen = (size_t)b[8] | (size_t)b[9] << 8;
  memset(header, 0, sizeof header);
  memcpy(header, b + 10, hlen < 255 ? hlen : 255);
  KT_STR_CONTAINS(header, "'descr': '<f4'");
  snprintf(shape, sizeof shape, "'shape': (%d, %d, 3)", H, W);
  KT_STR_CONTAINS(header, shape);
  KT_EQ(memcmp(b + 10 + hlen, rgb, sizeof(float) * W * H * 3), 0);
  free(out);
  free(rgb);
  free(ids);
}

/* sRGB quantisation: the transfer curve's known points, clamping, NaN, exposure. */
TEST(SRGB_quantise) {
  float in[12] = {0, 0.0031308f, 0.5f, 1, 2, NAN, -1, 0.25f, 0.25f, 0.25f, 0, 0};
  uint8_t o8[9];
  uint16_t o16[9];
  kiln__linear_to_srgb(in, 3, 0, false, KILN__PIX_U8, o8);
  KT_EQ(o8[0], 0);
  KT_EQ(o8[1], 10);  /* 0.0031308 * 12.92 * 255 = 10.3 */
  KT_EQ(o8[2], 188); /* 1.055 * 0.5^(1/2.4) - 0.055 = 0.7354 */
  KT_EQ(o8[3], 255);
  KT_EQ(o8[4], 255); /* clamped */
  KT_EQ(o8[5], 0);   /* NaN */
  KT_EQ(o8[6], 0);
  kiln__linear_to_srgb(in, 3, 0, false, KILN__PIX_U16, o16);
  KT_EQ(o16[3], 65535);
  KT_TRUE(o16[2] > 48150 && o16[2] < 48210);
  /* one stop of exposure doubles linear light: 0.25 at +1 equals 0.5 at 0 */
  kiln__linear_to_srgb(in + 7, 1, 1, false, KILN__PIX_U8, o8); /* in[7..9] */
  KT_EQ(o8[0], 188);
  /* filmic maps everything into range, monotonically */
  float ramp[3 * 6] = {0.01f, 0.01f, 0.01f, 0.1f, 0.1f, 0.1f, 0.5f, 0.5f, 0.5f,
                       1,     1,     1,     4,    4,    4,    100,  100,  100};
  uint8_t f[18];
  kiln__linear_to_srgb(ramp, 6, 0, true, KILN__PIX_U8, f);
  for (int i = 3; i < 18; i += 3) KT_TRUE(f[i] >= f[i - 3]);
  KT_TRUE(f[15] >= 250);
}

/* 8-bit output (four values at a time where SSE2 is there) is each value's own code: scaled by the
 * exposure, NaN, negatives and -0 to 0, above 1 to 1, then the table, for counts that leave every
 * tail length and for two exposures. */
TEST(SRGB_u8_matches_per_value) {
  enum { N = 1001 };
  float *in = malloc(sizeof(float) * 3 * N);
  uint8_t *got = malloc(3 * N);
  KT_TRUE(in && got);
  static const float special[] = {NAN,   -NAN,       INFINITY,    -INFINITY, -0.0f,   0.0f, 1.0f,
                                  -1.0f, 1.0000001f, 0.99999994f, 1e-30f,    -1e-30f, 3.0f};
  uint32_t rng = 7;
  for (int i = 0; i < 3 * N; i++) {
    rng = rng * 1664525u + 1013904223u;
    in[i] = i % 5 == 0 ? special[(rng >> 8) % (sizeof special / sizeof special[0])]
                       : (float)(rng >> 8) / 16777216.0f * 1.5f - 0.1f;
  }
  static const float exposures[] = {0, -1.5f};
  for (int e = 0; e < 2; e++)
    for (size_t npx = 1; npx <= 5; npx++) {
      size_t n = N - npx;
      kiln__linear_to_srgb(in, n, exposures[e], false, KILN__PIX_U8, got);
      for (size_t i = 0; i < 3 * n; i++) {
        float v = in[i] * exp2f(exposures[e]);
        uint8_t want = kiln__srgb8(v > 0 ? (v < 1 ? v : 1) : 0);
        if (got[i] != want)
          KT_FAIL("exposure %g, %zu pixels: value %zu (%g) gives %u, not %u", exposures[e], n, i,
                  in[i], got[i], want);
      }
    }
  free(in), free(got);
}

/* The table gives the curve's own code for every float in [0, 1] (about 10^9 of them): the
 * 8-bit output of kiln__linear_to_srgb is what it was with powf per channel. */
TEST(SRGB_table_matches_curve_on_every_float) {
  uint32_t bad = 0, first = 0;
  for (uint32_t bits = 0; bits <= 0x3f800000u; bits++) {
    float v;
    memcpy(&v, &bits, 4);
    if (kiln__srgb8(v) != kiln__srgb8_exact(v) && bad++ == 0) first = bits;
  }
  if (bad) {
    float v;
    memcpy(&v, &first, 4);
    KT_FAIL("%u floats differ, the first %.9g (0x%08x): table %u, curve %u", bad, v, first,
            kiln__srgb8(v), kiln__srgb8_exact(v));
  }
}

/* libpng's heuristic as kiln's encoder first wrote it (one scalar loop trying each filter), the
 * reference for the filtered rows: row y of raw into out (type byte, then n bytes). */
static void ref_filter_row(const unsigned char *raw, const unsigned char *prev, size_t n,
                           size_t bpp, unsigned char *out, unsigned char *scratch) {
  unsigned long best_cost = (unsigned long)-1;
  for (int f = 0; f < 4; f++) {
    unsigned long cost = 0;
    for (size_t i = 0; i < n; i++) {
      int a = i >= bpp ? raw[i - bpp] : 0, b = prev ? prev[i] : 0;
      int c = (i >= bpp && prev) ? prev[i - bpp] : 0;
      int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
      int paeth = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      unsigned pred = f == 0 ? 0 : f == 1 ? (unsigned)a : f == 2 ? (unsigned)b : (unsigned)paeth;
      unsigned char v = (unsigned char)(raw[i] - pred);
      scratch[i] = v;
      cost += v < 128 ? v : 256u - v;
    }
    if (cost < best_cost) {
      best_cost = cost;
      out[0] = (unsigned char)(f == 3 ? 4 : f);
      memcpy(out + 1, scratch, n);
    }
  }
}

/* The encoder's filtered rows (its IDAT, inflated) are the reference's, byte for byte, for 8- and
 * 16-bit rasters of 1 to 4 channels, smooth, slightly noisy and fully random (every byte value,
 * Paeth's widest differences), one pixel wide and wider, rows of every length modulo 16 past the
 * first pixel (the SSE2 loop's 16 bytes and the byte loop's tail): the same PNG bytes as the
 * scalar heuristic. */
TEST(PNG_filters_match_reference) {
  static const int widths[] = {1, 2, 5, 6, 11, 17, 22, 33, 67, 300};
  uint32_t rng = 12345;
  for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++)
    for (int c = 1; c <= 4; c++)
      for (int wide = 0; wide <= 1; wide++) {
        int w = widths[wi], h = 23;
        size_t bpp = (size_t)c * (wide ? 2 : 1), n = (size_t)w * bpp;
        unsigned char *raw = malloc(n * (size_t)h), *want = malloc((n + 1) * (size_t)h);
        unsigned char *scratch = malloc(n), *got = malloc((n + 1) * (size_t)h);
        KT_TRUE(raw && want && scratch && got);
        for (size_t i = 0; i < n * (size_t)h; i++) { /* a ramp, noise on some rows, random ones */
          rng = rng * 1664525u + 1013904223u;
          size_t y = i / n;
          raw[i] = y % 4 == 3 ? (unsigned char)(rng >> 24)
                              : (unsigned char)((i % n) * 7 / n * 30 + (y % 4 ? rng >> 27 : 0));
        }
        for (int y = 0; y < h; y++)
          ref_filter_row(raw + (size_t)y * n, y ? raw + (size_t)(y - 1) * n : NULL, n, bpp,
                         want + (size_t)y * (n + 1), scratch);
        /* the encoder reads 16-bit samples in native order and writes them big-endian */
        unsigned char *native = malloc(n * (size_t)h);
        KT_TRUE(native != NULL);
        for (size_t i = 0; i < n * (size_t)h; i++) native[i] = wide ? raw[i ^ 1] : raw[i];
        kiln__raster r = {w, h, c, wide ? KILN__PIX_U16 : KILN__PIX_U8, native, 0};
        void *png;
        size_t len;
        KT_CODE(kiln__encode_png(&r, 1, &png, &len), KILN_OK);
        /* IDAT: after the signature (8) and IHDR (25), length, "IDAT", zlib stream */
        const unsigned char *p = (const unsigned char *)png + 33;
        size_t zlen = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
        KT_TRUE(!memcmp(p + 4, "IDAT", 4));
        struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
        size_t out = 0;
        KT_TRUE(d != NULL);
        KT_EQ(libdeflate_zlib_decompress(d, p + 8, zlen, got, (n + 1) * (size_t)h, &out), 0);
        libdeflate_free_decompressor(d);
        KT_EQ(out, (n + 1) * (size_t)h);
        for (size_t i = 0; i < out; i++)
          if (got[i] != want[i])
            KT_FAIL("width %d, %d channels, %d-bit: filtered byte %zu (row %zu) is %u, not %u", w,
                    c, wide ? 16 : 8, i, i / (n + 1), got[i], want[i]);
        free(png), free(raw), free(native), free(want), free(scratch), free(got);
      }
}

/* Images for PNG_bytes_do_not_depend_on_the_thread: sizes, depths and levels that make a thread's
 * kept compressor and buffers change between one image and the next, one of them larger than a
 * thread keeps (4 MiB filtered). */
enum { WS_IMAGES = 4 };
static const struct {
  int w, h, c, wide, level;
} ws_images[WS_IMAGES] = {
    {1300, 1100, 3, 0, 1}, {67, 41, 4, 1, 6}, {300, 23, 1, 0, 1}, {64, 64, 3, 0, 9}};
static void *ws_pixels[WS_IMAGES];
static void *ws_want[WS_IMAGES]; /* each image encoded alone, on a thread of its own */
static size_t ws_want_len[WS_IMAGES];

static void ws_make_pixels(void) {
  uint32_t rng = 99;
  for (int k = 0; k < WS_IMAGES; k++) {
    size_t n =
        (size_t)ws_images[k].w * ws_images[k].h * ws_images[k].c * (ws_images[k].wide ? 2 : 1);
    unsigned char *p = malloc(n);
    KT_TRUE(p != NULL);
    for (size_t i = 0; i < n; i++) {
      rng = rng * 1664525u + 1013904223u;
      p[i] = (unsigned char)(i / 7 % 200 + (rng >> 29));
    }
    ws_pixels[k] = p;
  }
}

static int ws_encode(int k, void **png, size_t *len) {
  kiln__raster r = {ws_images[k].w, ws_images[k].h,
                    ws_images[k].c, ws_images[k].wide ? KILN__PIX_U16 : KILN__PIX_U8,
                    ws_pixels[k],   0};
  return kiln__encode_png(&r, ws_images[k].level, png, len);
}

static void *ws_encode_one(void *arg) {
  int k = (int)(intptr_t)arg;
  return ws_encode(k, &ws_want[k], &ws_want_len[k]) == 0 ? arg : NULL;
}

/* Every image twice, starting at image `start`: returns the number of outputs that differ from
 * ws_want (or failed). */
static void *ws_encode_all(void *arg) {
  int start = (int)(intptr_t)arg;
  intptr_t bad = 0;
  for (int j = 0; j < 2 * WS_IMAGES; j++) {
    int k = (start + j) % WS_IMAGES;
    void *png = NULL;
    size_t len = 0;
    if (ws_encode(k, &png, &len) != 0 || len != ws_want_len[k] || memcmp(png, ws_want[k], len))
      bad++;
    free(png);
  }
  return (void *)bad;
}

/* The encoder keeps a compressor and buffers per thread: an image's PNG bytes are the same
 * whatever the thread encoded before (other sizes, depths and levels, an image larger than a
 * thread keeps), with four threads encoding at once (under TSan: no state shared between them),
 * and each output decodes to its pixels. */
TEST(PNG_bytes_do_not_depend_on_the_thread) {
  ws_make_pixels();
  for (int k = 0; k < WS_IMAGES; k++) {
    pthread_t t;
    void *ok = NULL;
    KT_EQ(pthread_create(&t, NULL, ws_encode_one, (void *)(intptr_t)k), 0);
    KT_EQ(pthread_join(t, &ok), 0);
    KT_TRUE(ok == (void *)(intptr_t)k);
    int w, h, n;
    if (ws_images[k].wide) {
      uint16_t *d = stbi_load_16_from_memory(ws_want[k], (int)ws_want_len[k], &w, &h, &n, 0);
      KT_TRUE(d != NULL);
      const unsigned char *p = ws_pixels[k];
      for (size_t i = 0; i < (size_t)w * h * n; i++) {
        uint16_t v;
        memcpy(&v, p + 2 * i, 2);
        KT_EQ(d[i], v);
      }
      stbi_image_free(d);
    } else {
      unsigned char *d = stbi_load_from_memory(ws_want[k], (int)ws_want_len[k], &w, &h, &n, 0);
      KT_TRUE(d != NULL);
      KT_EQ(memcmp(d, ws_pixels[k], (size_t)w * h * n), 0);
      stbi_image_free(d);
    }
    KT_EQ(w, ws_images[k].w);
    KT_EQ(h, ws_images[k].h);
    KT_EQ(n, ws_images[k].c);
  }
  KT_EQ((intptr_t)ws_encode_all((void *)(intptr_t)1), 0); /* this thread, then four at once */
  pthread_t t[4];
  for (int i = 0; i < 4; i++)
    KT_EQ(pthread_create(&t[i], NULL, ws_encode_all, (void *)(intptr_t)i), 0);
  for (int i = 0; i < 4; i++) {
    void *bad = NULL;
    KT_EQ(pthread_join(t[i], &bad), 0);
    KT_EQ((intptr_t)bad, 0);
  }
  for (int k = 0; k < WS_IMAGES; k++) free(ws_pixels[k]), free(ws_want[k]);
}

static char g_dir[64];

static void make_dir(void) {
  snprintf(g_dir, sizeof g_dir, "/tmp/kiln-encode-XXXXXX");
  KT_TRUE(mkdtemp(g_dir) != NULL);
}

static int count_entries(const char *dir) {
  DIR *d = opendir(dir);
  KT_TRUE(d != NULL);
  int n = 0;
  for (struct dirent *e; (e = readdir(d));)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(d);
  return n;
}

static void remove_dir(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  KT_EQ(system(cmd), 0);
}

/* An atomic write leaves exactly the file, complete; a second one replaces it whole. */
TEST(WRITE_atomic) {
  make_dir();
  char path[128];
  snprintf(path, sizeof path, "%s/a.bin", g_dir);
  char msg[256];
  KT_CODE(kiln__write_atomic(path, "hello", 5, false, msg, sizeof msg), KILN_OK);
  KT_CODE(kiln__write_atomic(path, "goodbye!", 8, true, msg, sizeof msg), KILN_OK);
  FILE *f = fopen(path, "rb");
  KT_TRUE(f != NULL);
  char got[16] = {0};
  KT_EQ(fread(got, 1, sizeof got, f), 8);
  fclose(f);
  KT_STR_EQ(got, "goodbye!");
  KT_EQ(count_entries(g_dir), 1); /* no temporary left behind */
  /* a folder that does not exist: an error naming the file, nothing created */
  snprintf(path, sizeof path, "%s/missing/b.bin", g_dir);
  KT_CODE(kiln__write_atomic(path, "x", 1, false, msg, sizeof msg), KILN_EIO);
  KT_STR_CONTAINS(msg, "missing/");
  KT_STR_CONTAINS(msg, "No such file or directory");
  remove_dir();
}

/* A full disk (here: the file-size limit, which fails write(2) the same way) reports the error
 * and leaves neither a partial file nor the temporary; an older complete file stays intact. */
TEST(WRITE_full_disk) {
  make_dir();
  char path[128];
  snprintf(path, sizeof path, "%s/frame.png", g_dir);
  char msg[256];
  KT_CODE(kiln__write_atomic(path, "old-complete", 12, false, msg, sizeof msg), KILN_OK);
  pid_t pid = fork();
  KT_TRUE(pid >= 0);
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN); /* write(2) then fails with EFBIG instead of killing us */
    struct rlimit rl = {4096, 4096};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(10);
    static char big[65536];
    memset(big, 'x', sizeof big);
    int rc = kiln__write_atomic(path, big, sizeof big, false, msg, sizeof msg);
    if (rc != KILN_EIO) _exit(11);
    if (!strstr(msg, "frame.png") || !strstr(msg, "File too large")) _exit(12);
    _exit(0);
  }
  int st = 0;
  KT_EQ(waitpid(pid, &st, 0), pid);
  KT_TRUE(WIFEXITED(st));
  KT_EQ(WEXITSTATUS(st), 0);
  KT_EQ(count_entries(g_dir), 1);
  FILE *f = fopen(path, "rb");
  KT_TRUE(f != NULL);
  char got[32] = {0};
  KT_EQ(fread(got, 1, sizeof got, f), 12);
  fclose(f);
  KT_STR_EQ(got, "old-complete");
  remove_dir();
}

/* ---- output-name templates and contact sheets (engine/batch/names.c) ---- */

#include <limits.h>

#include "batch_internal.h"

TEST(OUTNAME_expand) {
  char out[256], msg[256];
  kiln__outname_vars v = {42, "chair_007", "depth", "exr", 7};
  KT_CODE(
      kiln__outname_expand("out/{frame:05d}_{pass}.{ext}", &v, out, sizeof out, msg, sizeof msg),
      KILN_OK);
  KT_STR_EQ(out, "out/00042_depth.exr");
  KT_CODE(kiln__outname_expand("{name}/{frame}{{x}}", &v, out, sizeof out, msg, sizeof msg),
          KILN_OK);
  KT_STR_EQ(out, "chair_007/42{x}");
  v.name = NULL; /* no name: the zero-padded frame number */
  KT_CODE(kiln__outname_expand("{name}.png", &v, out, sizeof out, msg, sizeof msg), KILN_OK);
  KT_STR_EQ(out, "00042.png");
  v.frame = 123456;
  KT_CODE(kiln__outname_expand("{frame:03d}", &v, out, sizeof out, msg, sizeof msg), KILN_OK);
  KT_STR_EQ(out, "123456"); /* a width is a minimum */
  KT_CODE(kiln__outname_expand("{frame:012d}", &v, out, 8, msg, sizeof msg), KILN_EINVAL);
  KT_STR_CONTAINS(msg, "too long");
}

/* Buckets: floor division (negative frames bucket below 0, as Python's //), padded or not; the
 * position {index} likewise; the extremes of a long do not overflow. */
TEST(OUTNAME_buckets) {
  char out[256], msg[256];
  static const struct {
    long frame;
    uint64_t index;
    const char *tmpl, *want;
  } cases[] = {
      {0, 0, "{frame//1000:03d}/{frame:06d}", "000/000000"},
      {999, 5, "{frame//1000:03d}/{frame:06d}", "000/000999"},
      {1000, 5, "{frame//1000:03d}/{frame:06d}", "001/001000"},
      {123456789, 5, "{frame//1000}", "123456"},
      {-1, 5, "{frame//1000}", "-1"},
      {-1000, 5, "{frame//1000}", "-1"},
      {-1001, 5, "{frame//1000:03d}", "-02"},
      {7, 1234567, "{index//1000:04d}/{index:08d}", "1234/01234567"},
      {7, 1234567, "{index//1}", "1234567"},
      {LONG_MIN, 0, "{frame//1000000000000000}", "-9224"},
      {LONG_MAX, UINT64_MAX, "{frame//1}_{index//2}", "9223372036854775807_9223372036854775807"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    kiln__outname_vars v = {cases[i].frame, NULL, "color", "png", cases[i].index};
    KT_CODE(kiln__outname_expand(cases[i].tmpl, &v, out, sizeof out, msg, sizeof msg), KILN_OK);
    KT_STR_EQ(out, cases[i].want);
  }
  static const char *const bad[] = {"{frame//0}", "{frame//}", "{frame/2}", "{frame//-1}",
                                    "{frame//1e3}", "{frame//1000000000000001}", "{name//2}",
                                    "{index:5d}", "{index//2:0d}", "{pass//2}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (kiln__outname_check(bad[i], msg, sizeof msg) != KILN_EPARSE)
      KT_FAIL("%s was taken", bad[i]);
  KT_CODE(kiln__outname_check("a/{frame//10}/{index//2:03d}_{pass}.{ext}", msg, sizeof msg), 0);
}

TEST(OUTNAME_errors) {
  char msg[256];
  KT_CODE(kiln__outname_check("out/{frme}.png", msg, sizeof msg), KILN_EPARSE);
  KT_STR_CONTAINS(msg, "column 5");
  KT_STR_CONTAINS(msg, "unknown field {frme}");
  KT_CODE(kiln__outname_check("out/{frame.png", msg, sizeof msg), KILN_EPARSE);
  KT_STR_CONTAINS(msg, "unmatched '{'");
  KT_CODE(kiln__outname_check("a}b", msg, sizeof msg), KILN_EPARSE);
  KT_STR_CONTAINS(msg, "column 2");
  KT_CODE(kiln__outname_check("{frame:5d}", msg, sizeof msg), KILN_EPARSE);
  KT_CODE(kiln__outname_check("{frame:05x}", msg, sizeof msg), KILN_EPARSE);
  KT_CODE(kiln__outname_check("{name:05d}", msg, sizeof msg), KILN_EPARSE);
  KT_CODE(kiln__outname_check("{frame:013d}", msg, sizeof msg), KILN_EPARSE);
  KT_CODE(kiln__outname_check("{frame:05d}_{pass}.{ext}", msg, sizeof msg), KILN_OK);
}

/* A width of many digits is an error, not a signed overflow: 4294967301 is 5 modulo 2^32, which a
 * wrapping int would take for {frame:05d}. */
TEST(OUTNAME_width_is_bounded) {
  char msg[256];
  KT_CODE(kiln__outname_check("{frame:04294967301d}.png", msg, sizeof msg), KILN_EPARSE);
  KT_STR_CONTAINS(msg, "bad format");
  KT_CODE(kiln__outname_check("{frame:099999999999999999999999999999d}", msg, sizeof msg),
          KILN_EPARSE);
  KT_CODE(kiln__outname_check("{frame:00000000000000000000012d}", msg, sizeof msg), KILN_OK);
}

/* The reason comes first and a long template is quoted around the column only, so the reason
 * survives the message's size limit whatever the template's length. */
TEST(OUTNAME_long_template_keeps_its_reason) {
  char tmpl[3000], msg[512];
  memset(tmpl, 'a', 2000);
  memset(tmpl + 2006, 'b', 500);
  tmpl[2506] = 0;
  memcpy(tmpl + 2000, "{frme}", 6);
  KT_CODE(kiln__outname_check(tmpl, msg, sizeof msg), KILN_EPARSE);
  KT_STR_CONTAINS(msg, "unknown field {frme}");
  KT_STR_CONTAINS(msg, "at column 2001");
  KT_STR_CONTAINS(msg, "\"...aaaa");
  KT_STR_CONTAINS(msg, "aaaa{frme}bbbb");
  KT_TRUE(strlen(msg) < 300);
  memset(tmpl, 'a', 2000);
  snprintf(tmpl + 2000, sizeof tmpl - 2000, "/../{frame}.png");
  KT_CODE(kiln__outname_confined(tmpl, msg, sizeof msg), KILN_EPARSE);
  KT_STR_CONTAINS(msg, "'..' component would write outside the output folder");
}

/* Templates name files inside the output folder: no absolute path, no ".." component, whatever
 * the values substituted (names cannot be "", "." or "..", nor hold '/'). */
TEST(OUTNAME_confined) {
  char msg[256];
  static const char *const bad[] = {"../{frame}.png", "/tmp/{frame}.png", "a/../../{frame}.png",
                                    "{name}/../../x.{ext}", "..", "a/..", "{{x}}/../../y"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    if (kiln__outname_confined(bad[i], msg, sizeof msg) != KILN_EPARSE)
      KT_FAIL("template %s was accepted", bad[i]);
  KT_CODE(kiln__outname_confined("/x.png", msg, sizeof msg), KILN_EPARSE);
  KT_STR_CONTAINS(msg, "absolute path");
  static const char *const good[] = {"{frame}.png", "a/b/{name}.{ext}", "..{frame}.png",
                                     "./{frame}..png", "x/...{pass}/y", "{name}..{ext}"};
  for (size_t i = 0; i < sizeof good / sizeof *good; i++)
    if (kiln__outname_confined(good[i], msg, sizeof msg) != 0)
      KT_FAIL("template %s was refused: %s", good[i], msg);
  KT_TRUE(kiln__path_inside("a/b.png"));
  KT_TRUE(kiln__path_inside("..a/b..")); /* dots in names are names */
  KT_FALSE(kiln__path_inside(""));
  KT_FALSE(kiln__path_inside("/a"));
  KT_FALSE(kiln__path_inside("a/../../b"));
  KT_FALSE(kiln__path_inside("a/.."));
}

TEST(CONTACT_sheet) {
  enum { IW = 64, IH = 32, N = 5 };
  uint8_t *imgs[N];
  for (int i = 0; i < N; i++) {
    imgs[i] = malloc(IW * IH * 3);
    KT_TRUE(imgs[i] != NULL);
    memset(imgs[i], 40 * (i + 1), IW * IH * 3); /* flat grey levels 40..200 */
  }
  uint8_t *sheet = NULL;
  int sw = 0, sh = 0;
  KT_CODE(kiln__contact_sheet((const uint8_t *const *)imgs, N, IW, IH, 16, 0, &sheet, &sw, &sh),
          KILN_OK);
  /* factor 4: 16x8 thumbnails, 3 columns x 2 rows, 2-pixel gaps */
  KT_EQ(sw, 3 * 16 + 4 * 2);
  KT_EQ(sh, 2 * 8 + 3 * 2);
  for (int i = 0; i < N; i++) {
    int ox = 2 + (i % 3) * 18, oy = 2 + (i / 3) * 10;
    KT_EQ(sheet[((oy + 3) * sw + ox + 5) * 3], 40 * (i + 1)); /* a flat image stays flat */
  }
  KT_EQ(sheet[0], 32);                                   /* background */
  KT_EQ(sheet[((2 + 8 + 5) * sw + 2 + 36 + 5) * 3], 32); /* the empty sixth cell */
  free(sheet);
  KT_CODE(kiln__contact_sheet((const uint8_t *const *)imgs, 0, IW, IH, 16, 0, &sheet, &sw, &sh),
          KILN_EINVAL);
  for (int i = 0; i < N; i++) free(imgs[i]);
}
