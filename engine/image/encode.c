/* encode.c: PNG (own chunk writer over libdeflate), JPEG and HDR (stb_image_write), EXR (tinyexr),
 * NPY (own writer), and sRGB quantisation. Declared in image_internal.h.
 *
 * PNG rows are filtered adaptively (None/Sub/Up/Paeth, the one with the smallest sum of absolute
 * differences per row, as libpng's heuristic; SSE2 where the target has it), then the whole image
 * goes through one libdeflate_zlib_compress call, straight into the returned buffer; the
 * compressor and the filter buffers are kept per thread (png_ws). */
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

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

static void png_chunk_head(unsigned char *p, const char type[4], size_t n) {
  put_be32(p, (uint32_t)n);
  memcpy(p + 4, type, 4);
}

/* Writes the CRC of the chunk whose head (length, type) is at p and whose n data bytes follow it,
 * after the data. */
static void png_chunk_crc(unsigned char *p, size_t n) {
  put_be32(p + 8 + n, libdeflate_crc32(0, p + 4, 4 + n));
}

/* The sum of absolute differences of a filtered row (its bytes read as signed): libpng's
 * heuristic's cost. */
static unsigned long row_cost(const unsigned char *f, size_t n) {
  unsigned long cost = 0;
  for (size_t i = 0; i < n; i++) cost += (unsigned long)abs((int)(signed char)f[i]);
  return cost;
}

/* Bytes [from, to) of the Sub, Up and Paeth rows, one byte at a time; from >= bpp. */
static void filter_bytes(const unsigned char *raw, const unsigned char *prev, size_t bpp,
                         size_t from, size_t to, unsigned char *sub, unsigned char *up,
                         unsigned char *pae) {
  for (size_t i = from; i < to; i++) {
    int a = raw[i - bpp], b = prev[i], c = prev[i - bpp];
    int pa = abs(b - c), pb = abs(a - c), pc = abs(a + b - 2 * c);
    int pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    sub[i] = (unsigned char)(raw[i] - a);
    up[i] = (unsigned char)(raw[i] - b);
    pae[i] = (unsigned char)(raw[i] - pred);
  }
}

#if defined(__SSE2__)
/* Per byte lane: min(v, -v) as unsigned, |v| of v read as signed (0x80 gives 128); psadbw adds
 * 8 of them into each 64-bit half. */
static inline __m128i cost16(__m128i v) {
  __m128i zero = _mm_setzero_si128();
  return _mm_sad_epu8(_mm_min_epu8(v, _mm_sub_epi8(zero, v)), zero);
}

static inline __m128i abs16(__m128i x) {
  return _mm_max_epi16(x, _mm_sub_epi16(_mm_setzero_si128(), x));
}

static inline __m128i pick16(__m128i mask, __m128i yes, __m128i no) {
  return _mm_or_si128(_mm_and_si128(mask, yes), _mm_andnot_si128(mask, no));
}

/* Paeth's predictor on 8 samples widened to 16 bits, ties as the PNG specification breaks them
 * (a, then b, then c). */
static inline __m128i paeth16(__m128i a, __m128i b, __m128i c) {
  __m128i bc = _mm_sub_epi16(b, c), ac = _mm_sub_epi16(a, c);
  __m128i pa = abs16(bc), pb = abs16(ac), pc = abs16(_mm_add_epi16(bc, ac));
  __m128i not_a = _mm_cmpgt_epi16(pa, _mm_min_epi16(pb, pc)), not_b = _mm_cmpgt_epi16(pb, pc);
  return pick16(not_a, pick16(not_b, c, b), a);
}

/* Bytes [bpp, bpp + 16k) of the three rows, 16 at a time (k as many as fit in n), their costs
 * added into cost[1..3] and None's over the same bytes into cost[0]. Returns bpp + 16k, where the
 * byte loop goes on. bpp < n. */
static size_t filter_sse2(const unsigned char *raw, const unsigned char *prev, size_t n, size_t bpp,
                          unsigned char *sub, unsigned char *up, unsigned char *pae,
                          unsigned long cost[4]) {
  __m128i zero = _mm_setzero_si128(), s0 = zero, s1 = zero, s2 = zero, s3 = zero;
  size_t i = bpp;
  for (; i + 16 <= n; i += 16) {
    __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(raw + i));
    __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(raw + i - bpp));
    __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(prev + i));
    __m128i c = _mm_loadu_si128((const __m128i *)(const void *)(prev + i - bpp));
    __m128i lo =
        paeth16(_mm_unpacklo_epi8(a, zero), _mm_unpacklo_epi8(b, zero), _mm_unpacklo_epi8(c, zero));
    __m128i hi =
        paeth16(_mm_unpackhi_epi8(a, zero), _mm_unpackhi_epi8(b, zero), _mm_unpackhi_epi8(c, zero));
    __m128i fs = _mm_sub_epi8(x, a), fu = _mm_sub_epi8(x, b);
    __m128i fp = _mm_sub_epi8(x, _mm_packus_epi16(lo, hi));
    _mm_storeu_si128((__m128i *)(void *)(sub + i), fs);
    _mm_storeu_si128((__m128i *)(void *)(up + i), fu);
    _mm_storeu_si128((__m128i *)(void *)(pae + i), fp);
    s0 = _mm_add_epi64(s0, cost16(x)), s1 = _mm_add_epi64(s1, cost16(fs));
    s2 = _mm_add_epi64(s2, cost16(fu)), s3 = _mm_add_epi64(s3, cost16(fp));
  }
  __m128i s[4] = {s0, s1, s2, s3};
  for (int f = 0; f < 4; f++) {
    uint64_t half[2];
    _mm_storeu_si128((__m128i *)(void *)half, s[f]);
    cost[f] += (unsigned long)(half[0] + half[1]);
  }
  return i;
}
#endif

/* Filters one row (PNG's big-endian bytes in `raw`) into out[0] = type, out[1..n]. bpp: bytes per
 * pixel; prev: the previous raw row, zeros for the first (as PNG defines it). The Sub, Up and
 * Paeth rows go into scratch[0..3n) with their costs summed on the way (16 bytes at a time with
 * SSE2, the first bpp bytes and the tail one at a time); ties go to the earlier filter of None,
 * Sub, Up, Paeth. */
static void png_filter_row(const unsigned char *raw, const unsigned char *prev, size_t n,
                           size_t bpp, unsigned char *out, unsigned char *scratch) {
  unsigned char *sub = scratch, *up = scratch + n, *pae = scratch + 2 * n;
  size_t head = bpp < n ? bpp : n;
  for (size_t i = 0; i < head; i++) {
    sub[i] = raw[i];
    up[i] = (unsigned char)(raw[i] - prev[i]);
    pae[i] = (unsigned char)(raw[i] - prev[i]); /* a = c = 0: Paeth predicts b */
  }
  unsigned long cost[4] = {0, 0, 0, 0};
  size_t done = head;
#if defined(__SSE2__)
  if (bpp < n) done = filter_sse2(raw, prev, n, bpp, sub, up, pae, cost);
#endif
  filter_bytes(raw, prev, bpp, done, n, sub, up, pae);
  const unsigned char *rows[4] = {raw, sub, up, pae};
  /* the vector loop covered [head, done); add the bytes it did not */
  for (int f = 0; f < 4; f++)
    cost[f] += row_cost(rows[f], head) + row_cost(rows[f] + done, n - done);
  int best = 0;
  for (int f = 1; f < 4; f++)
    if (cost[f] < cost[best]) best = f;
  out[0] = (unsigned char)(best == 3 ? 4 : best); /* PNG filter types: 0 None 1 Sub 2 Up 4 Paeth */
  memcpy(out + 1, rows[best], n);
}

/* A thread's PNG workspace: the compressor of the last level it used and the buffers of the
 * filtered image and of the rows, kept between images so that a batch's thousands of frames do
 * not allocate (and fault in) a compressor and ~4 buffers each. A libdeflate compressor may be
 * used by one thread at a time; a workspace is only ever used by its own thread, for the length
 * of one kiln__encode_png call (which never yields: a fiber cannot move between threads inside
 * it). A buffer above WS_KEEP bytes is freed after the image, so a thread keeps at most WS_KEEP
 * bytes of each, and one compressor, once a large image has passed.
 *
 * The key is created once (pthread_once) and never changed; its destructor frees a thread's
 * workspace when the thread exits, so libkiln must not be dlclose'd while threads that encoded
 * PNGs still run. Without a key every image gets a workspace of its own, as without the cache. */
enum { WS_KEEP = 4 << 20 };

typedef struct png_ws {
  struct libdeflate_compressor *z;
  int level;               /* z's */
  unsigned char *filtered; /* cap_filtered bytes */
  unsigned char *rows;     /* cap_rows bytes: two raw rows, 3 filtered, a row of zeros */
  size_t cap_filtered, cap_rows;
} png_ws;

static pthread_once_t ws_once = PTHREAD_ONCE_INIT;
static pthread_key_t ws_key;
static bool ws_key_ok; /* written once inside pthread_once, which orders it before every reader */

static void ws_free(void *arg) {
  png_ws *ws = arg;
  if (!ws) return;
  if (ws->z) libdeflate_free_compressor(ws->z);
  free(ws->filtered), free(ws->rows), free(ws);
}

static void ws_key_create(void) { ws_key_ok = pthread_key_create(&ws_key, ws_free) == 0; }

/* The calling thread's workspace (*own false), or a fresh one for this call alone (*own true:
 * no key, or the key could not be set); NULL on ENOMEM. */
static png_ws *ws_get(bool *own) {
  pthread_once(&ws_once, ws_key_create);
  png_ws *ws = ws_key_ok ? pthread_getspecific(ws_key) : NULL;
  *own = false;
  if (ws) return ws;
  if (!(ws = calloc(1, sizeof *ws))) return NULL;
  *own = !ws_key_ok || pthread_setspecific(ws_key, ws) != 0;
  return ws;
}

/* Grows *p (capacity *cap) to at least n bytes; false on ENOMEM (*p NULL and *cap 0 then). The
 * old bytes are not kept. */
static bool ws_reserve(unsigned char **p, size_t *cap, size_t n) {
  if (*cap >= n) return true;
  free(*p);
  *p = malloc(n);
  *cap = *p ? n : 0;
  return *p != NULL;
}

/* After an image: frees what a thread should not keep (all of a workspace of its own). */
static void ws_put(png_ws *ws, bool own) {
  if (own) {
    ws_free(ws);
    return;
  }
  if (ws->cap_filtered > WS_KEEP) free(ws->filtered), ws->filtered = NULL, ws->cap_filtered = 0;
  if (ws->cap_rows > WS_KEEP) free(ws->rows), ws->rows = NULL, ws->cap_rows = 0;
}

/* The workspace's compressor at `level` (made when the last was of another level); NULL on
 * ENOMEM. */
static struct libdeflate_compressor *ws_compressor(png_ws *ws, int level) {
  if (ws->z && ws->level == level) return ws->z;
  if (ws->z) libdeflate_free_compressor(ws->z);
  ws->z = libdeflate_alloc_compressor(level);
  ws->level = level;
  return ws->z;
}

/* Every row of r filtered into f ((n + 1) bytes a row); rows: the workspace's 6n bytes. */
static void png_filter_image(const kiln__raster *r, size_t n, size_t bpp, unsigned char *f,
                             unsigned char *rows) {
  unsigned char *raw = rows, *prev = rows + 5 * n, *scratch = rows + 2 * n;
  memset(prev, 0, n);
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
    png_filter_row(raw, prev, n, bpp, f + (size_t)y * (n + 1), scratch);
    prev = raw;
    raw = raw == rows ? rows + n : rows;
  }
}

/* The PNG around a zlib stream: signature, IHDR, IDAT's head at 33, the stream at 41 (where the
 * caller compressed it), IDAT's CRC, IEND. */
enum { PNG_HEAD = 8 + 25 + 8, PNG_TAIL = 4 + 12 };

static void png_frame(const kiln__raster *r, unsigned char *p, size_t zlen) {
  static const unsigned char sig[8] = {137, 80, 78, 71, 13, 10, 26, 10};
  static const unsigned char color_type[5] = {0, 0, 4, 2, 6};
  memcpy(p, sig, 8);
  unsigned char *ihdr = p + 8;
  png_chunk_head(ihdr, "IHDR", 13);
  put_be32(ihdr + 8, (uint32_t)r->width);
  put_be32(ihdr + 12, (uint32_t)r->height);
  ihdr[16] = r->type == KILN__PIX_U16 ? 16 : 8;
  ihdr[17] = color_type[r->channels];
  ihdr[18] = ihdr[19] = ihdr[20] = 0;
  png_chunk_crc(ihdr, 13);
  png_chunk_head(p + 33, "IDAT", zlen);
  png_chunk_crc(p + 33, zlen);
  unsigned char *iend = p + PNG_HEAD + zlen + 4;
  png_chunk_head(iend, "IEND", 0);
  png_chunk_crc(iend, 0);
}

int kiln__encode_png(const kiln__raster *r, int level, void **out, size_t *len) {
  *out = NULL, *len = 0;
  if (!raster_ok(r, 4) || (r->type != KILN__PIX_U8 && r->type != KILN__PIX_U16)) return KILN_EINVAL;
  if (level == 0) level = 6;
  if (level < 1 || level > 12) return KILN_EINVAL;
  size_t n = row_bytes(r), bpp = (size_t)r->channels * type_size(r->type);
  size_t filtered_len = (n + 1) * (size_t)r->height;
  bool own;
  png_ws *ws = ws_get(&own);
  if (!ws) return KILN_ENOMEM;
  struct libdeflate_compressor *z = ws_compressor(ws, level);
  int rc = KILN_ENOMEM;
  if (z && ws_reserve(&ws->filtered, &ws->cap_filtered, filtered_len) &&
      ws_reserve(&ws->rows, &ws->cap_rows, 6 * n)) {
    png_filter_image(r, n, bpp, ws->filtered, ws->rows);
    size_t bound = libdeflate_zlib_compress_bound(z, filtered_len);
    unsigned char *p = malloc(PNG_HEAD + bound + PNG_TAIL);
    size_t zlen =
        p ? libdeflate_zlib_compress(z, ws->filtered, filtered_len, p + PNG_HEAD, bound) : 0;
    if (zlen) {
      png_frame(r, p, zlen);
      size_t total = PNG_HEAD + zlen + PNG_TAIL;
      unsigned char *shrunk = realloc(p, total); /* give back what the bound over-reserved */
      *out = shrunk ? shrunk : p, *len = total;
      rc = 0;
    } else {
      free(p);
    }
  }
  ws_put(ws, own);
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
  size_t i = 0;
#if defined(__SSE2__)
  if (type == KILN__PIX_U8 && !filmic) { /* a batch's every frame: 4 values clamped at once */
    __m128 s = _mm_set1_ps(scale), zero = _mm_setzero_ps(), one = _mm_set1_ps(1.0f);
    for (; i + 4 <= npixels * 3; i += 4) {
      /* maxps returns its second operand when either is NaN: NaN (and -0) give 0, as below */
      __m128 v = _mm_min_ps(_mm_max_ps(_mm_mul_ps(_mm_loadu_ps(rgb + i), s), zero), one);
      float f[4];
      _mm_storeu_ps(f, v);
      for (int j = 0; j < 4; j++) ((uint8_t *)out)[i + j] = srgb8_of(f[j]);
    }
  }
#endif
  for (; i < npixels * 3; i++) {
    float v = rgb[i] * scale;
    if (!(v > 0)) v = 0; /* also NaN */
    v = filmic ? aces_fit(v) : (v > 1 ? 1 : v);
    if (type == KILN__PIX_U16) ((uint16_t *)out)[i] = (uint16_t)(srgb_oetf(v) * maxv + 0.5f);
    else ((uint8_t *)out)[i] = srgb8_of(v);
  }
}
