/* encode.c: PNG (own chunk writer over libdeflate), JPEG and HDR (stb_image_write), EXR (tinyexr),
 * NPY (own writer), and sRGB quantisation. Declared in image_internal.h.
 *
 * PNG rows are filtered adaptively (None/Sub/Up/Paeth, the one with the smallest sum of absolute
 * differences per row, as libpng's heuristic), then the whole image goes through one
 * libdeflate_zlib_compress call. */
#define _GNU_SOURCE
#include "image_internal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libdeflate.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stb_image_write.h>
#include <tinyexr.h>

#include "kiln/error.h"

static size_t type_size(kiln__pixel_type t) {
  switch (t) {
    case KILN__PIX_U8: return 1;
    case KILN__PIX_U16: return 2;
    default: return 4;
  }
}

static bool raster_ok(const kiln__raster *r, int max_channels) {
  return r && r->data && r->width > 0 && r->height > 0 && r->channels >= 1 &&
         r->channels <= max_channels && r->width <= (1 << 24) && r->height <= (1 << 24);
}

static size_t row_bytes(const kiln__raster *r) {
  return (size_t)r->width * (size_t)r->channels * type_size(r->type);
}

static const unsigned char *row_ptr(const kiln__raster *r, int y) {
  size_t stride = r->stride ? r->stride : row_bytes(r);
  return (const unsigned char *)r->data + (size_t)y * stride;
}

/* ---- growable byte buffer ---------------------------------------------------------------------- */

typedef struct buf {
  unsigned char *p;
  size_t len, cap;
  bool failed;
} buf;

static void buf_put(buf *b, const void *src, size_t n) {
  if (b->failed || n == 0) return;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    unsigned char *p = realloc(b->p, cap);
    if (!p) {
      b->failed = true;
      return;
    }
    b->p = p, b->cap = cap;
  }
  memcpy(b->p + b->len, src, n);
  b->len += n;
}

static void put_be32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

static int buf_finish(buf *b, void **out, size_t *len) {
  if (b->failed) {
    free(b->p);
    return KILN_ENOMEM;
  }
  *out = b->p;
  *len = b->len;
  return 0;
}

/* ---- PNG ------------------------------------------------------------------------------------- */

static void png_chunk(buf *b, const char type[4], const unsigned char *data, size_t n) {
  unsigned char hdr[8];
  put_be32(hdr, (uint32_t)n);
  memcpy(hdr + 4, type, 4);
  buf_put(b, hdr, 8);
  buf_put(b, data, n);
  uint32_t crc = libdeflate_crc32(0, type, 4);
  if (n > 0) crc = libdeflate_crc32(crc, data, n); /* libdeflate_crc32(crc, NULL, 0) returns 0 */
  unsigned char c[4];
  put_be32(c, crc);
  buf_put(b, c, 4);
}

/* The sum of absolute differences of a filtered row (its bytes read as signed): libpng's
 * heuristic's cost. */
static unsigned long row_cost(const unsigned char *f, size_t n) {
  unsigned long cost = 0;
  for (size_t i = 0; i < n; i++) cost += (unsigned long)abs((int)(signed char)f[i]);
  return cost;
}

/* Filters one row (PNG's big-endian bytes in `raw`) into out[0] = type, out[1..n]. bpp: bytes per
 * pixel; prev: the previous raw row, zeros for the first (as PNG defines it). Each filter is its
 * own branch-free loop over the row (the compiler's to vectorise), into scratch[0..4n); ties go
 * to the earlier filter of None, Sub, Up, Paeth. */
static void png_filter_row(const unsigned char *raw, const unsigned char *prev, size_t n,
                           size_t bpp, unsigned char *out, unsigned char *scratch) {
  unsigned char *sub = scratch, *up = scratch + n, *pae = scratch + 2 * n;
  size_t head = bpp < n ? bpp : n;
  for (size_t i = 0; i < head; i++) {
    sub[i] = raw[i];
    up[i] = (unsigned char)(raw[i] - prev[i]);
    pae[i] = (unsigned char)(raw[i] - prev[i]); /* a = c = 0: Paeth predicts b */
  }
  for (size_t i = head; i < n; i++) {
    int a = raw[i - bpp], b = prev[i], c = prev[i - bpp];
    int pa = abs(b - c), pb = abs(a - c), pc = abs(a + b - 2 * c);
    int pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    sub[i] = (unsigned char)(raw[i] - a);
    up[i] = (unsigned char)(raw[i] - b);
    pae[i] = (unsigned char)(raw[i] - pred);
  }
  const unsigned char *rows[4] = {raw, sub, up, pae};
  int best = 0;
  unsigned long best_cost = row_cost(raw, n);
  for (int f = 1; f < 4; f++) {
    unsigned long cost = row_cost(rows[f], n);
    if (cost < best_cost) best_cost = cost, best = f;
  }
  out[0] = (unsigned char)(best == 3 ? 4 : best); /* PNG filter types: 0 None 1 Sub 2 Up 4 Paeth */
  memcpy(out + 1, rows[best], n);
}

int kiln__encode_png(const kiln__raster *r, int level, void **out, size_t *len) {
  *out = NULL, *len = 0;
  if (!raster_ok(r, 4) || (r->type != KILN__PIX_U8 && r->type != KILN__PIX_U16)) return KILN_EINVAL;
  if (level == 0) level = 6;
  if (level < 1 || level > 12) return KILN_EINVAL;
  size_t n = row_bytes(r), bpp = (size_t)r->channels * type_size(r->type);
  size_t filtered_len = (n + 1) * (size_t)r->height;
  unsigned char *filtered = malloc(filtered_len);
  unsigned char *rows = malloc(2 * n), *scratch = malloc(3 * n), *zeros = calloc(n, 1);
  struct libdeflate_compressor *z = libdeflate_alloc_compressor(level);
  size_t bound = z ? libdeflate_zlib_compress_bound(z, filtered_len) : 0;
  unsigned char *zbuf = bound ? malloc(bound) : NULL;
  int rc = KILN_ENOMEM;
  if (filtered && rows && scratch && zeros && zbuf) {
    unsigned char *raw = rows, *prev = zeros;
    for (int y = 0; y < r->height; y++) {
      const unsigned char *src = row_ptr(r, y);
      if (r->type == KILN__PIX_U16) { /* PNG samples are big-endian */
        for (size_t i = 0; i < n; i += 2) {
          uint16_t v;
          memcpy(&v, src + i, 2);
          raw[i] = (unsigned char)(v >> 8), raw[i + 1] = (unsigned char)v;
        }
      } else {
        memcpy(raw, src, n);
      }
      png_filter_row(raw, prev, n, bpp, filtered + (size_t)y * (n + 1), scratch);
      prev = raw;
      raw = raw == rows ? rows + n : rows;
    }
    size_t zlen = libdeflate_zlib_compress(z, filtered, filtered_len, zbuf, bound);
    buf b = {0};
    static const unsigned char sig[8] = {137, 80, 78, 71, 13, 10, 26, 10};
    static const unsigned char color_type[5] = {0, 0, 4, 2, 6};
    unsigned char ihdr[13];
    put_be32(ihdr, (uint32_t)r->width);
    put_be32(ihdr + 4, (uint32_t)r->height);
    ihdr[8] = r->type == KILN__PIX_U16 ? 16 : 8;
    ihdr[9] = color_type[r->channels];
    ihdr[10] = ihdr[11] = ihdr[12] = 0;
    buf_put(&b, sig, 8);
    png_chunk(&b, "IHDR", ihdr, 13);
    png_chunk(&b, "IDAT", zbuf, zlen);
    png_chunk(&b, "IEND", NULL, 0);
    rc = zlen ? buf_finish(&b, out, len) : (free(b.p), KILN_ENOMEM);
  }
  if (z) libdeflate_free_compressor(z);
  free(filtered), free(rows), free(scratch), free(zeros), free(zbuf);
  return rc;
}

/* ---- JPEG, HDR (stb_image_write) ---------------------------------------------------------------- */

static void stb_sink(void *ctx, void *data, int size) { buf_put(ctx, data, (size_t)size); }

/* stb wants a packed raster. */
static const void *packed(const kiln__raster *r, void **copy) {
  *copy = NULL;
  if (!r->stride || r->stride == row_bytes(r)) return r->data;
  unsigned char *p = malloc(row_bytes(r) * (size_t)r->height);
  if (!p) return NULL;
  for (int y = 0; y < r->height; y++)
    memcpy(p + (size_t)y * row_bytes(r), row_ptr(r, y), row_bytes(r));
  *copy = p;
  return p;
}

int kiln__encode_jpeg(const kiln__raster *r, int quality, void **out, size_t *len) {
  *out = NULL, *len = 0;
  if (!raster_ok(r, 3) || r->type != KILN__PIX_U8 || r->channels == 2 || quality < 1 ||
      quality > 100)
    return KILN_EINVAL;
  void *copy;
  const void *px = packed(r, &copy);
  if (!px) return KILN_ENOMEM;
  buf b = {0};
  int ok = stbi_write_jpg_to_func(stb_sink, &b, r->width, r->height, r->channels, px, quality);
  free(copy);
  if (!ok && !b.failed) b.failed = true;
  return buf_finish(&b, out, len);
}

int kiln__encode_hdr(const kiln__raster *r, void **out, size_t *len) {
  *out = NULL, *len = 0;
  if (!raster_ok(r, 3) || r->type != KILN__PIX_F32 || r->channels != 3) return KILN_EINVAL;
  void *copy;
  const void *px = packed(r, &copy);
  if (!px) return KILN_ENOMEM;
  buf b = {0};
  int ok = stbi_write_hdr_to_func(stb_sink, &b, r->width, r->height, 3, px);
  free(copy);
  if (!ok && !b.failed) b.failed = true;
  return buf_finish(&b, out, len);
}

/* ---- EXR (tinyexr) ------------------------------------------------------------------------------ */

int kiln__encode_exr(const kiln__raster *r, void **out, size_t *len) {
  *out = NULL, *len = 0;
  if (!raster_ok(r, 4) || r->type != KILN__PIX_F32) return KILN_EINVAL;
  static const char *names[4][4] = {{"Y"}, {"A", "Y"}, {"B", "G", "R"}, {"A", "B", "G", "R"}};
  static const int src_of[4][4] = {{0}, {1, 0}, {2, 1, 0}, {3, 2, 1, 0}}; /* EXR sorts names */
  int nc = r->channels;
  size_t npx = (size_t)r->width * (size_t)r->height;
  float *planes = malloc(npx * (size_t)nc * sizeof *planes);
  EXRChannelInfo *ch = calloc((size_t)nc, sizeof *ch);
  int *types = malloc((size_t)nc * sizeof *types), *req = malloc((size_t)nc * sizeof *req);
  unsigned char *ptrs[4];
  int rc = KILN_ENOMEM;
  if (planes && ch && types && req) {
    for (int c = 0; c < nc; c++) {
      float *plane = planes + (size_t)c * npx;
      int s = src_of[nc - 1][c];
      for (int y = 0; y < r->height; y++) {
        const float *row = (const float *)(const void *)row_ptr(r, y);
        for (int x = 0; x < r->width; x++)
          plane[(size_t)y * (size_t)r->width + (size_t)x] = row[x * nc + s];
      }
      ptrs[c] = (unsigned char *)plane;
      snprintf(ch[c].name, sizeof ch[c].name, "%s", names[nc - 1][c]);
      types[c] = req[c] = TINYEXR_PIXELTYPE_FLOAT;
    }
    EXRHeader h;
    InitEXRHeader(&h);
    EXRImage img;
    InitEXRImage(&img);
    img.images = ptrs;
    img.width = r->width;
    img.height = r->height;
    img.num_channels = nc;
    h.num_channels = nc;
    h.channels = ch;
    h.pixel_types = types;
    h.requested_pixel_types = req;
    h.compression_type = TINYEXR_COMPRESSIONTYPE_ZIP;
    unsigned char *mem = NULL;
    const char *err = NULL;
    size_t n = SaveEXRImageToMemory(&img, &h, &mem, &err);
    if (n > 0 && mem) {
      *out = mem; /* tinyexr allocates with malloc */
      *len = n;
      rc = 0;
    } else {
      if (err) FreeEXRErrorMessage(err);
      rc = KILN_EIO;
    }
  }
  free(planes), free(ch), free(types), free(req);
  return rc;
}

int kiln__encode_exr_channels(int32_t w, int32_t h, const kiln__exr_channel *ch, int n,
                              int compression, void **out, size_t *len) {
  *out = NULL, *len = 0;
  if (w < 1 || h < 1 || w > (1 << 24) || h > (1 << 24) || n < 1 || n > 1024 ||
      (compression != TINYEXR_COMPRESSIONTYPE_NONE && compression != TINYEXR_COMPRESSIONTYPE_RLE &&
       compression != TINYEXR_COMPRESSIONTYPE_ZIPS && compression != TINYEXR_COMPRESSIONTYPE_ZIP &&
       compression != TINYEXR_COMPRESSIONTYPE_PIZ))
    return KILN_EINVAL;
  for (int c = 0; c < n; c++)
    if (!ch[c].data || ch[c].step < 1 || strlen(ch[c].name) >= 256 ||
        (c > 0 && strcmp(ch[c - 1].name, ch[c].name) >= 0))
      return KILN_EINVAL;
  size_t npx = (size_t)w * (size_t)h;
  uint32_t *planes = malloc(npx * (size_t)n * 4); /* float and uint32 alike: 4 bytes a value */
  EXRChannelInfo *info = calloc((size_t)n, sizeof *info);
  int *types = malloc((size_t)n * sizeof *types), *req = malloc((size_t)n * sizeof *req);
  unsigned char **ptrs = malloc((size_t)n * sizeof *ptrs);
  int rc = KILN_ENOMEM;
  if (planes && info && types && req && ptrs) {
    for (int c = 0; c < n; c++) {
      uint32_t *plane = planes + (size_t)c * npx;
      const uint32_t *src = ch[c].data;
      for (size_t i = 0; i < npx; i++) plane[i] = src[i * ch[c].step];
      ptrs[c] = (unsigned char *)plane;
      snprintf(info[c].name, sizeof info[c].name, "%s", ch[c].name);
      types[c] = ch[c].uint ? TINYEXR_PIXELTYPE_UINT : TINYEXR_PIXELTYPE_FLOAT;
      req[c] = ch[c].uint   ? TINYEXR_PIXELTYPE_UINT
               : ch[c].half ? TINYEXR_PIXELTYPE_HALF
                            : TINYEXR_PIXELTYPE_FLOAT;
    }
    EXRHeader hd;
    InitEXRHeader(&hd);
    EXRImage img;
    InitEXRImage(&img);
    img.images = ptrs;
    img.width = w, img.height = h, img.num_channels = n;
    hd.num_channels = n;
    hd.channels = info;
    hd.pixel_types = types;
    hd.requested_pixel_types = req;
    hd.compression_type = compression;
    unsigned char *mem = NULL;
    const char *err = NULL;
    size_t got = SaveEXRImageToMemory(&img, &hd, &mem, &err);
    if (got > 0 && mem) {
      *out = mem, *len = got, rc = 0;
    } else {
      if (err) FreeEXRErrorMessage(err);
      free(mem);
      rc = KILN_EIO;
    }
  }
  free(planes), free(info), free(types), free(req), free(ptrs);
  return rc;
}

/* ---- NPY ---------------------------------------------------------------------------------------- */

int kiln__encode_npy(const kiln__raster *r, void **out, size_t *len) {
  *out = NULL, *len = 0;
  if (!raster_ok(r, 64)) return KILN_EINVAL;
  static const char *dtypes[] = {"<u1", "<u2", "<u4", "<f4"};
  char dict[160];
  int dl = r->channels == 1
               ? snprintf(dict, sizeof dict,
                          "{'descr': '%s', 'fortran_order': False, 'shape': (%d, %d), }",
                          dtypes[r->type], r->height, r->width)
               : snprintf(dict, sizeof dict,
                          "{'descr': '%s', 'fortran_order': False, 'shape': (%d, %d, %d), }",
                          dtypes[r->type], r->height, r->width, r->channels);
  /* magic(6) version(2) header_len(2) dict, padded with spaces and '\n' to a multiple of 64 */
  size_t total = 10 + (size_t)dl + 1;
  size_t pad = (64 - total % 64) % 64;
  unsigned char head[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0};
  size_t hlen = (size_t)dl + pad + 1;
  head[8] = (unsigned char)(hlen & 0xff), head[9] = (unsigned char)(hlen >> 8);
  buf b = {0};
  buf_put(&b, head, 10);
  buf_put(&b, dict, (size_t)dl);
  for (size_t i = 0; i < pad; i++) buf_put(&b, " ", 1);
  buf_put(&b, "\n", 1);
  for (int y = 0; y < r->height; y++) buf_put(&b, row_ptr(r, y), row_bytes(r)); /* x86: LE */
  return buf_finish(&b, out, len);
}

/* ---- sRGB --------------------------------------------------------------------------------------- */

static float aces_fit(float x) { /* Narkowicz 2015 fit of the ACES filmic curve */
  float y = (x * (2.51f * x + 0.03f)) / (x * (2.43f * x + 0.59f) + 0.14f);
  return y < 0 ? 0 : y > 1 ? 1 : y;
}

static float srgb_oetf(float l) {
  return l <= 0.0031308f ? 12.92f * l : 1.055f * powf(l, 1.0f / 2.4f) - 0.055f;
}

/* The 8-bit sRGB code of v in [0, 1] by the curve itself: what the table below reproduces. */
static uint8_t srgb8_exact(float v) { return (uint8_t)(srgb_oetf(v) * 255.0f + 0.5f); }

/* 8-bit sRGB through a table, the same bytes as srgb8_exact for every float in [0, 1]. The code
 * is a non-decreasing function of v, so on each bucket of floats (those sharing their top 16
 * bits: exponent and 7 mantissa bits, a 2^-7 relative range) it is a base code plus the number of
 * the bucket's thresholds that v has reached; on a bucket the curve rises by less than one code
 * (at most 255 * 1.055 / 2.4 * 2^-7 = 0.88 near 1, less below), so there is at most one
 * threshold: the least float of the bucket whose code is above the base. The thresholds are
 * found by bisection on the float bits against srgb8_exact, once per process; the test
 * (tests/encode) compares the two on every float in [0, 1]. */
enum { SRGB8_BUCKETS = (0x3f800000 >> 16) + 1 };
static struct {
  uint8_t base[SRGB8_BUCKETS];
  uint32_t step[SRGB8_BUCKETS]; /* the threshold's bits; 0xffffffff: none */
} srgb8;
static pthread_once_t srgb8_once = PTHREAD_ONCE_INIT;

static float float_of(uint32_t bits) {
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

static void srgb8_build(void) {
  for (uint32_t k = 0; k < SRGB8_BUCKETS; k++) {
    uint32_t lo = k << 16, hi = k + 1 < SRGB8_BUCKETS ? lo + 0xffff : 0x3f800000;
    uint8_t base = srgb8_exact(float_of(lo));
    srgb8.base[k] = base;
    srgb8.step[k] = 0xffffffffu;
    if (srgb8_exact(float_of(hi)) == base) continue;
    while (lo + 1 < hi) { /* code(lo) == base < code(hi) */
      uint32_t mid = lo + (hi - lo) / 2;
      if (srgb8_exact(float_of(mid)) == base) lo = mid;
      else hi = mid;
    }
    srgb8.step[k] = hi;
  }
}

/* v in [0, 1] (not NaN) to its 8-bit sRGB code. */
static inline uint8_t srgb8_of(float v) {
  uint32_t bits;
  memcpy(&bits, &v, 4);
  uint32_t k = bits >> 16;
  return (uint8_t)(srgb8.base[k] + (bits >= srgb8.step[k]));
}

uint8_t kiln__srgb8(float v) {
  pthread_once(&srgb8_once, srgb8_build);
  return srgb8_of(v);
}

uint8_t kiln__srgb8_exact(float v) { return srgb8_exact(v); }

void kiln__linear_to_srgb(const float *rgb, size_t npixels, float exposure, bool filmic,
                          kiln__pixel_type type, void *out) {
  float scale = exp2f(exposure), maxv = type == KILN__PIX_U16 ? 65535.0f : 255.0f;
  if (type == KILN__PIX_U8) pthread_once(&srgb8_once, srgb8_build);
  for (size_t i = 0; i < npixels * 3; i++) {
    float v = rgb[i] * scale;
    if (!(v > 0)) v = 0; /* also NaN */
    v = filmic ? aces_fit(v) : (v > 1 ? 1 : v);
    if (type == KILN__PIX_U16) ((uint16_t *)out)[i] = (uint16_t)(srgb_oetf(v) * maxv + 0.5f);
    else ((uint8_t *)out)[i] = srgb8_of(v);
  }
}
