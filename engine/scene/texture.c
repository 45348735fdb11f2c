/* texture.c: image files for scenes: PNG and JPEG textures, Radiance .hdr and OpenEXR environment
 * maps.
 *
 * Texture files come from anywhere (asset sets scraped from the web), so they are read as hostile:
 *   - the format is decided by the file's first bytes, never by its name, and only the documented
 *     formats are accepted: PNG or JPEG for textures, Radiance .hdr or OpenEXR for environment
 *     maps;
 *   - the size an image claims is checked before anything is allocated for its pixels: at most
 *     KILN__TEXTURE_MAX_SIDE a side, at most KILN__TEXTURE_MAX_BYTES once decoded (what kiln
 *     keeps, the alpha plane included, and for EXR what tinyexr allocates to decode it), and no
 *     more than the file's bytes can hold (check_claim_mem);
 *   - PNG is decoded by libspng, JPEG by libjpeg-turbo (TurboJPEG), both written for untrusted
 *     input and fuzzed upstream; .hdr by the reader below, which checks its header and that its
 *     scanlines fill the image exactly (a truncated file is an error, not black pixels); EXR by
 *     tinyexr, after kiln has checked its header's channels and sizes and that every block of its
 *     offset table lies inside the file.
 * 8-bit values are sRGB-encoded and converted to linear with the exact piecewise curve
 * (IEC 61966-2-1), or divided by 255 for data maps; .hdr and .exr maps are linear already and
 * kept as floats (RGBE read as Radiance's reader does, EXR texels made finite and non-negative).
 * Rows are kept in file order, row 0 at the top (v = 1), as scene_data.h says. Nothing here is
 * global: loads may run on any number of threads. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <spng.h>
#include <tinyexr.h>
#include <turbojpeg.h>

#include "kiln/error.h"
#include "scene_internal.h"

enum { FMT_UNKNOWN, FMT_PNG, FMT_JPEG, FMT_HDR, FMT_EXR };

/* The Radiance header's first line, either spelling Radiance's own tools accept. */
static size_t hdr_magic_len(const unsigned char *b, size_t n) {
  static const char *const magic[] = {"#?RADIANCE\n", "#?RGBE\n"};
  for (size_t i = 0; i < 2; i++) {
    size_t m = strlen(magic[i]);
    if (n >= m && memcmp(b, magic[i], m) == 0) return m;
  }
  return 0;
}

/* OpenEXR's magic number, 20000630 little-endian. */
static bool exr_magic(const unsigned char *b, size_t n) {
  return n >= 4 && b[0] == 0x76 && b[1] == 0x2f && b[2] == 0x31 && b[3] == 0x01;
}

static int sniff(const unsigned char *b, size_t n) {
  static const unsigned char png[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
  if (n >= 8 && memcmp(b, png, 8) == 0) return FMT_PNG;
  if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) return FMT_JPEG;
  if (hdr_magic_len(b, n)) return FMT_HDR;
  if (exr_magic(b, n)) return FMT_EXR;
  return FMT_UNKNOWN;
}

/* 0, or KILN_EPARSE with msg: whether a w x h image, whose pixel data needs at least `need` bytes
 * of a file of `have`, may be decoded into per_texel bytes a texel (what kiln keeps: 12, 24 with
 * an alpha plane; an EXR adds its decoder's planes) plus `extra` bytes. Called before anything is
 * allocated for its pixels. */
static int check_claim_mem(uint64_t w, uint64_t h, uint64_t per_texel, uint64_t extra,
                           uint64_t need, uint64_t have, char *msg, size_t msgsz) {
  const uint64_t side = KILN__TEXTURE_MAX_SIDE;
  /* within the side limit (and with per_texel and extra far below 2^32), bytes cannot overflow */
  const uint64_t bytes = w <= side && h <= side ? w * h * per_texel + extra : 0;
  if (w == 0 || h == 0)
    snprintf(msg, msgsz, "the image has no pixels (%llux%llu)", (unsigned long long)w,
             (unsigned long long)h);
  else if (w > side || h > side)
    snprintf(msg, msgsz, "the image claims %llux%llu pixels: a texture may have at most %d a side",
             (unsigned long long)w, (unsigned long long)h, KILN__TEXTURE_MAX_SIDE);
  else if (bytes > KILN__TEXTURE_MAX_BYTES)
    snprintf(msg, msgsz,
             "the image claims %llux%llu pixels, %llu MiB decoded: a texture may use at most %llu "
             "MiB",
             (unsigned long long)w, (unsigned long long)h,
             (unsigned long long)((bytes + (1 << 20) - 1) >> 20),
             (unsigned long long)(KILN__TEXTURE_MAX_BYTES >> 20));
  else if (need > have)
    snprintf(msg, msgsz,
             "the image claims %llux%llu pixels, which need at least %llu bytes; the file has %llu "
             "(truncated or corrupt)",
             (unsigned long long)w, (unsigned long long)h, (unsigned long long)need,
             (unsigned long long)have);
  else
    return 0;
  return KILN_EPARSE;
}

/* check_claim_mem for an image kept as rgb floats only. */
static int check_claim(uint64_t w, uint64_t h, uint64_t need, uint64_t have, char *msg,
                       size_t msgsz) {
  return check_claim_mem(w, h, 3 * sizeof(float), 0, need, have, msg, msgsz);
}

/* ---- PNG (libspng) ----------------------------------------------------------------------------- */

/* Deflate cannot expand its input more than 1032 times (a 258-byte match per 2 bits). */
#define DEFLATE_MAX_RATIO 1032u

/* Ancillary chunks are not used; this bounds what spng keeps of them (compressed text and ICC
 * profiles are inflated when read), with room for the largest ICC profiles in use. */
#define PNG_CHUNK_CACHE ((size_t)64 << 20)

/* RGB8 into *px, or (*rgba in: alpha wanted) RGBA8 when the image has an alpha channel or a
 * tRNS chunk (*rgba out: whether it did). */
static int decode_png(const unsigned char *b, size_t n, unsigned char **px, uint32_t *w,
                      uint32_t *h, bool *rgba, char *msg, size_t msgsz) {
  spng_ctx *ctx = spng_ctx_new(0);
  if (!ctx) return KILN_ENOMEM;
  struct spng_ihdr ih;
  int rc = spng_set_chunk_limits(ctx, n, PNG_CHUNK_CACHE);
  if (!rc) rc = spng_set_png_buffer(ctx, b, n);
  if (!rc) rc = spng_get_ihdr(ctx, &ih);
  if (rc) {
    spng_ctx_free(ctx);
    if (rc == SPNG_EMEM) return KILN_ENOMEM;
    snprintf(msg, msgsz, "cannot decode PNG: %s", spng_strerror(rc));
    return KILN_EPARSE;
  }
  /* every row is a filter byte and its samples; interlaced images have more rows, not fewer */
  const uint64_t channels[7] = {1, 0, 3, 1, 2, 0, 4};
  uint64_t bits = ih.color_type < 7 ? channels[ih.color_type] * ih.bit_depth : 64;
  uint64_t raw = ((uint64_t)ih.width * bits + 7) / 8 * ih.height + ih.height;
  struct spng_trns trns;
  *rgba = *rgba && (ih.color_type == SPNG_COLOR_TYPE_GRAYSCALE_ALPHA ||
                    ih.color_type == SPNG_COLOR_TYPE_TRUECOLOR_ALPHA ||
                    spng_get_trns(ctx, &trns) == 0);
  /* the alpha plane is kept as floats too: its bytes count against the limit */
  int crc = check_claim_mem(ih.width, ih.height, (*rgba ? 6 : 3) * sizeof(float), 0,
                            (raw + DEFLATE_MAX_RATIO - 1) / DEFLATE_MAX_RATIO, n, msg, msgsz);
  const int fmt = *rgba ? SPNG_FMT_RGBA8 : SPNG_FMT_RGB8;
  size_t size = 0;
  unsigned char *out = NULL;
  if (!crc && !(rc = spng_decoded_image_size(ctx, fmt, &size)) && !(out = malloc(size)))
    rc = SPNG_EMEM;
  /* no SPNG_DECODE_GAMMA: values are used as stored; tRNS only where alpha is wanted */
  if (out && !rc) rc = spng_decode_image(ctx, out, size, fmt, *rgba ? SPNG_DECODE_TRNS : 0);
  spng_ctx_free(ctx);
  if (crc || rc) {
    free(out);
    if (crc) return crc;
    if (rc == SPNG_EMEM) return KILN_ENOMEM;
    snprintf(msg, msgsz, "cannot decode PNG: %s", spng_strerror(rc));
    return KILN_EPARSE;
  }
  *px = out, *w = ih.width, *h = ih.height;
  return 0;
}

/* ---- JPEG (libjpeg-turbo) ---------------------------------------------------------------------- */

/* CMYK (Adobe's inverted convention, as libjpeg returns it) to RGB: each of c, m, y times k, as
 * stb_image did, so that such textures look as they did. */
static void cmyk_to_rgb(const unsigned char *in, size_t n, unsigned char *out) {
  for (size_t i = 0; i < n; i++) {
    unsigned k = in[4 * i + 3];
    for (int c = 0; c < 3; c++) {
      unsigned t = in[4 * i + c] * k + 128;
      out[3 * i + c] = (unsigned char)((t + (t >> 8)) >> 8);
    }
  }
}

static int decode_jpeg(const unsigned char *b, size_t n, unsigned char **px, uint32_t *w,
                       uint32_t *h, char *msg, size_t msgsz) {
  tjhandle tj = tjInitDecompress();
  if (!tj) return KILN_ENOMEM;
  int iw = 0, ih = 0, sub = 0, cs = 0, rc = KILN_EPARSE;
  unsigned char *out = NULL, *cmyk = NULL;
  if (tjDecompressHeader3(tj, b, (unsigned long)n, &iw, &ih, &sub, &cs)) {
    snprintf(msg, msgsz, "cannot decode JPEG: %s", tjGetErrorStr2(tj));
    goto done;
  }
  /* every 8x8 block of the full-resolution component costs at least one bit of Huffman code */
  uint64_t blocks = (((uint64_t)iw + 7) / 8) * (((uint64_t)ih + 7) / 8);
  if ((rc = check_claim((uint64_t)iw, (uint64_t)ih, (blocks + 7) / 8, n, msg, msgsz))) goto done;
  bool four = cs == TJCS_CMYK || cs == TJCS_YCCK;
  size_t np = (size_t)iw * (size_t)ih;
  out = malloc(np * 3);
  if (four) cmyk = malloc(np * 4);
  if (!out || (four && !cmyk)) {
    rc = KILN_ENOMEM;
    goto done;
  }
  /* warnings (corrupt or truncated data, which libjpeg would fill with grey) are errors; the
   * accurate integer IDCT; at most 500 progressive scans (a scan-count denial of service) */
  const int flags = TJFLAG_ACCURATEDCT | TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS;
  if (tjDecompress2(tj, b, (unsigned long)n, four ? cmyk : out, iw, 0, ih,
                    four ? TJPF_CMYK : TJPF_RGB, flags)) {
    snprintf(msg, msgsz, "cannot decode JPEG: %s", tjGetErrorStr2(tj));
    rc = KILN_EPARSE;
    goto done;
  }
  if (four) cmyk_to_rgb(cmyk, np, out);
  *px = out, *w = (uint32_t)iw, *h = (uint32_t)ih;
  out = NULL, rc = 0;
done:
  free(out), free(cmyk);
  tjDestroy(tj);
  return rc;
}

/* ---- Radiance .hdr ----------------------------------------------------------------------------- */

/* The next header line at *p (without its '\n', which must be there), *p moved past it; NULL at
 * the end of the data. */
static const unsigned char *hdr_line(const unsigned char **p, const unsigned char *end,
                                     size_t *len) {
  const unsigned char *nl = memchr(*p, '\n', (size_t)(end - *p));
  if (!nl) return NULL;
  const unsigned char *s = *p;
  *len = (size_t)(nl - s), *p = nl + 1;
  return s;
}

/* "-Y <height> +X <width>", the orientation every writer uses (rows top to bottom). Numbers of up
 * to 9 digits: anything larger is past every limit anyway. */
static bool hdr_resolution(const unsigned char *s, size_t len, uint32_t *w, uint32_t *h) {
  char t[64];
  if (len >= sizeof t) return false;
  memcpy(t, s, len), t[len] = '\0';
  char hs[16], ws[16], tail;
  if (sscanf(t, "-Y %15s +X %15s %c", hs, ws, &tail) != 2) return false;
  const char *num[2] = {hs, ws};
  uint32_t v[2];
  for (int i = 0; i < 2; i++) {
    size_t d = strspn(num[i], "0123456789");
    if (d == 0 || d > 9 || num[i][d]) return false;
    v[i] = (uint32_t)strtoul(num[i], NULL, 10);
  }
  *h = v[0], *w = v[1];
  return true;
}

/* The fewest bytes a scanline of w pixels can take: flat, 4 a pixel; run-length encoded (only
 * for 8 <= w < 32768), a 4-byte start and, per channel, 2 bytes for every run of up to 127. */
static uint64_t hdr_min_row(uint64_t w) {
  uint64_t flat = 4 * w;
  if (w < 8 || w >= 0x8000) return flat;
  uint64_t rle = 4 + 4 * 2 * ((w + 126) / 127);
  return rle < flat ? rle : flat;
}

const char *kiln__hdr_scanline(const unsigned char **pp, const unsigned char *end, uint32_t w,
                               unsigned char *line) {
  const unsigned char *p = *pp;
  static const char *const trunc = "the file ends inside the pixel data (truncated)";
  if (w >= 8 && w < 0x8000 && end - p >= 4 && p[0] == 2 && p[1] == 2 && !(p[2] & 0x80)) {
    if ((uint32_t)(p[2] << 8 | p[3]) != w) return "a scanline's length is not the image's width";
    p += 4;
    for (int ch = 0; ch < 4; ch++)
      for (uint32_t x = 0; x < w;) {
        if (p == end) return trunc;
        uint32_t c = *p++;
        bool run = c > 128;
        if (run) c -= 128;
        if (c == 0 || c > w - x) return "a run goes past the end of its scanline";
        if ((size_t)(end - p) < (run ? 1 : c)) return trunc;
        for (uint32_t k = 0; k < c; k++, x++) line[4 * x + ch] = run ? *p : p[k];
        p += run ? 1 : c;
      }
  } else {
    if ((uint64_t)(end - p) < 4 * (uint64_t)w) return trunc;
    memcpy(line, p, 4 * (size_t)w);
    p += 4 * (size_t)w;
  }
  *pp = p;
  return NULL;
}

static int decode_hdr(const unsigned char *b, size_t n, float **rgb, uint32_t *w, uint32_t *h,
                      char *msg, size_t msgsz) {
  const unsigned char *p = b + hdr_magic_len(b, n), *end = b + n, *s;
  size_t len;
  /* header lines up to an empty one; FORMAT, when given, must be RGBE (not XYZE) */
  while ((s = hdr_line(&p, end, &len)) && len > 0) {
    static const char fmt[] = "FORMAT=";
    if (len >= sizeof fmt - 1 && memcmp(s, fmt, sizeof fmt - 1) == 0 &&
        !(len == 22 && memcmp(s, "FORMAT=32-bit_rle_rgbe", 22) == 0)) {
      snprintf(msg, msgsz, "unsupported .hdr pixel format '%.*s' (only 32-bit_rle_rgbe)",
               (int)(len < 67 ? len - 7 : 60), (const char *)s + 7);
      return KILN_EPARSE;
    }
  }
  if (!s || !(s = hdr_line(&p, end, &len)) || !hdr_resolution(s, len, w, h)) {
    snprintf(msg, msgsz, "%s", s ? "malformed .hdr resolution line (expected '-Y <height> +X <width>')"
                                 : "the .hdr header is truncated");
    return KILN_EPARSE;
  }
  int rc = check_claim(*w, *h, *h * hdr_min_row(*w), (uint64_t)(end - p), msg, msgsz);
  if (rc) return rc;
  /* RGBE: (mantissa + 0.5) * 2^(e - 128 - 8), the middle of the step a writer's truncation
   * leaves (Radiance's colr_color, and Blender's reader); e == 0 is black */
  float scale[256];
  for (int e = 0; e < 256; e++) scale[e] = e ? ldexpf(1.0f, e - 136) : 0.0f;
  size_t np = (size_t)*w * *h;
  float *f = malloc(np * 3 * sizeof *f);
  unsigned char *line = malloc(4 * (size_t)*w);
  const char *why = NULL;
  for (uint32_t y = 0; f && line && !why && y < *h; y++) {
    why = kiln__hdr_scanline(&p, end, *w, line);
    for (uint32_t x = 0; !why && x < *w; x++)
      for (int c = 0; c < 3; c++)
        f[((size_t)y * *w + x) * 3 + c] = ((float)line[4 * x + c] + 0.5f) * scale[line[4 * x + 3]];
  }
  free(line);
  if (!why && p != end) why = "there are bytes after the last scanline";
  if (!f || !line || why) {
    free(f);
    if (!why) return KILN_ENOMEM;
    snprintf(msg, msgsz, "malformed .hdr pixel data: %s", why);
    return KILN_EPARSE;
  }
  *rgb = f;
  return 0;
}

/* ---- OpenEXR (tinyexr) ------------------------------------------------------------------------- */

/* No codec tinyexr reads (RLE, ZIPS, ZIP, PIZ; ZFP where built in) expands its data more than this:
 * deflate 1032 times, PIZ's Huffman runs (255 16-bit values a 9-bit code) about 450. */
#define EXR_MAX_RATIO 2048u

static int exr_fail(const char *what, const char *err, char *msg, size_t msgsz) {
  const char *m = err ? err : "not a valid EXR file";
  int len = (int)strcspn(m, "\n"); /* tinyexr's messages end with a newline */
  snprintf(msg, msgsz, "cannot decode the EXR: %s%s%.*s", what, *what ? ": " : "", len, m);
  FreeEXRErrorMessage(err);
  return KILN_EPARSE;
}

/* The name of the compression an EXR header declares when it is one tinyexr does not read (the
 * attribute "compression" of type "compression", one byte), else NULL. */
static const char *exr_compression_name(const unsigned char *b, size_t n) {
  static const char attr[] = "compression\0compression\0\1\0\0\0";
  static const char *const names[] = {"PXR24", "B44", "B44A", "DWAA", "DWAB"};
  const size_t m = sizeof attr - 1;
  for (size_t i = 8; i + m < n && i < ((size_t)1 << 16); i++)
    if (memcmp(b + i, attr, m) == 0)
      return b[i + m] >= 5 && b[i + m] <= 9 ? names[b[i + m] - 5] : NULL;
  return NULL;
}

/* tinyexr's header reader asserts (aborts, in Debian's build) on two things a file decides: a
 * "tiles" attribute of a tiled file that is not 9 bytes, and a "type" attribute that is not one
 * of the four it knows or disagrees with the file being tiled. Its walk over the attributes is
 * repeated here (the same bounds: 1024 attributes, each name and type NUL-terminated, a 4-byte
 * size) and such files refused before it sees them; anything else malformed is left to it. */
static int exr_header_guard(const unsigned char *b, size_t n, bool tiled, char *msg,
                            size_t msgsz) {
  size_t p = 8;
  bool has_tiles = false;
  const char *type = NULL;
  for (int k = 0; k < 1024 && p < n && b[p]; k++) {
    const unsigned char *name = b + p, *nz = memchr(name, 0, n - p);
    if (!nz) return 0;
    const unsigned char *tp = nz + 1, *tz = tp < b + n ? memchr(tp, 0, (size_t)(b + n - tp)) : NULL;
    if (!tz || (size_t)(b + n - (tz + 1)) < 4) return 0;
    const unsigned char *v = tz + 5;
    uint32_t len = (uint32_t)tz[1] | (uint32_t)tz[2] << 8 | (uint32_t)tz[3] << 16 |
                   (uint32_t)tz[4] << 24;
    if (len == 0 || len > (size_t)(b + n - v)) return 0; /* tinyexr refuses it */
    if (tiled && strcmp((const char *)name, "tiles") == 0) {
      if (len != 9) {
        snprintf(msg, msgsz, "malformed EXR tile description (%u bytes, not 9)", len);
        return KILN_EPARSE;
      }
      has_tiles = true;
    } else if (strcmp((const char *)name, "type") == 0 && v[0]) {
      static const char *const known[] = {"scanlineimage", "tiledimage", "deepscanline",
                                          "deeptile"};
      const unsigned char *vz = memchr(v, 0, len);
      const size_t vlen = vz ? (size_t)(vz - v) : len; /* tinyexr reads it up to a NUL */
      type = NULL;
      for (int i = 0; i < 4; i++)
        if (vlen == strlen(known[i]) && memcmp(v, known[i], vlen) == 0) type = known[i];
      if (!type) {
        snprintf(msg, msgsz, "unknown EXR part type '%.*s'", (int)(len < 40 ? len : 40),
                 (const char *)v);
        return KILN_EPARSE;
      }
    }
    p = (size_t)(v - b) + len;
  }
  if (type && (strncmp(type, "deep", 4) == 0 || (strcmp(type, "tiledimage") == 0) != has_tiles)) {
    snprintf(msg, msgsz, "the EXR's type '%s' disagrees with its layout (%s)", type,
             has_tiles ? "tiled" : "scanlines");
    return KILN_EPARSE;
  }
  return 0;
}

static uint64_t exr_le64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

/* Levels of a tiled image along one axis (OpenEXR's rounding: down, or up with mode 1). */
static uint32_t exr_levels(uint64_t size, int round_up) {
  uint32_t n = 1;
  while (size > 1) size = round_up ? (size + 1) / 2 : size / 2, n++;
  return n;
}

static uint64_t exr_level_size(uint64_t size, uint32_t l, int round_up) {
  uint64_t s = round_up ? (size + ((uint64_t)1 << l) - 1) >> l : size >> l;
  return s ? s : 1;
}

/* The number of levels across (*nx) and down (*ny) of a tiled w x hh image: 1 and 1 for one
 * level, the same number for mipmaps, each side's own for ripmaps. */
static void exr_level_counts(const EXRHeader *h, uint64_t w, uint64_t hh, uint32_t *nx,
                             uint32_t *ny) {
  const int up = h->tile_rounding_mode;
  *nx = *ny = 1;
  if (h->tile_level_mode == TINYEXR_TILE_MIPMAP_LEVELS)
    *nx = *ny = exr_levels(w > hh ? w : hh, up);
  else if (h->tile_level_mode == TINYEXR_TILE_RIPMAP_LEVELS)
    *nx = exr_levels(w, up), *ny = exr_levels(hh, up);
}

/* What tinyexr allocates for a tiled image's tiles (every tile at full tile size, every level,
 * 4 bytes a channel as kiln asks for floats) into *bytes, and the number of tiles into *tiles. */
static void exr_tiles(const EXRHeader *h, uint64_t w, uint64_t hh, uint64_t *bytes, uint64_t *tiles) {
  const uint64_t tx = (uint64_t)h->tile_size_x, ty = (uint64_t)h->tile_size_y;
  const int up = h->tile_rounding_mode;
  uint32_t nx, ny;
  exr_level_counts(h, w, hh, &nx, &ny);
  *tiles = 0;
  for (uint32_t ly = 0; ly < ny; ly++)
    for (uint32_t lx = 0; lx < nx; lx++) {
      if (h->tile_level_mode != TINYEXR_TILE_RIPMAP_LEVELS && lx != ly) continue;
      uint64_t lw = exr_level_size(w, lx, up), lh = exr_level_size(hh, ly, up);
      *tiles += ((lw + tx - 1) / tx) * ((lh + ty - 1) / ty);
    }
  *bytes = *tiles * tx * ty * (uint64_t)h->num_channels * 4;
}

/* Whether the tile a tiled block's header names (tile column, row, level x, level y: the first
 * 16 bytes at p) exists in the image: tinyexr multiplies these by the tile size in int, and a
 * wrapped product would pass its own bounds check and make it write past the tile. */
static bool exr_tile_exists(const EXRHeader *h, uint64_t w, uint64_t hh, const unsigned char *p) {
  int32_t c[4];
  for (int i = 0; i < 4; i++)
    c[i] = (int32_t)((uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
                     (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24);
  const int up = h->tile_rounding_mode;
  uint32_t nx, ny;
  exr_level_counts(h, w, hh, &nx, &ny);
  if (c[0] < 0 || c[1] < 0 || c[2] < 0 || c[3] < 0 || (uint32_t)c[2] >= nx ||
      (uint32_t)c[3] >= ny || (h->tile_level_mode != TINYEXR_TILE_RIPMAP_LEVELS && c[2] != c[3]))
    return false;
  const uint64_t lw = exr_level_size(w, (uint32_t)c[2], up), lh = exr_level_size(hh, (uint32_t)c[3], up);
  return (uint64_t)c[0] < (lw + (uint64_t)h->tile_size_x - 1) / (uint64_t)h->tile_size_x &&
         (uint64_t)c[1] < (lh + (uint64_t)h->tile_size_y - 1) / (uint64_t)h->tile_size_y;
}

/* The uncompressed bytes of the block at p (its header read as tinyexr reads it: a scanline
 * block's first line, or a tiled block's tile, which exr_tile_exists has checked), per_px stored
 * bytes a texel; 0 where tinyexr will refuse the block anyway. */
static uint64_t exr_block_raw(const EXRHeader *h, uint64_t w, uint64_t hh, uint64_t per_px,
                              const unsigned char *p) {
  int32_t c[2];
  for (int i = 0; i < 2; i++)
    c[i] = (int32_t)((uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
                     (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24);
  if (!h->tiled) {
    const int64_t end = (int64_t)h->data_window.max_y + 1, first = c[0],
                  last = first + 32 < end ? first + 32 : end; /* PIZ: 32 lines a block */
    return last > first && first >= h->data_window.min_y ? w * (uint64_t)(last - first) * per_px
                                                         : 0;
  }
  int32_t l[2];
  for (int i = 0; i < 2; i++)
    l[i] = (int32_t)((uint32_t)p[8 + 4 * i] | (uint32_t)p[9 + 4 * i] << 8 |
                     (uint32_t)p[10 + 4 * i] << 16 | (uint32_t)p[11 + 4 * i] << 24);
  const int up = h->tile_rounding_mode;
  const uint64_t tx = (uint64_t)h->tile_size_x, ty = (uint64_t)h->tile_size_y;
  const uint64_t lw = exr_level_size(w, (uint32_t)l[0], up), lh = exr_level_size(hh, (uint32_t)l[1], up);
  const uint64_t x0 = (uint64_t)c[0] * tx, y0 = (uint64_t)c[1] * ty;
  return (lw - x0 < tx ? lw - x0 : tx) * (lh - y0 < ty ? lh - y0 : ty) * per_px;
}

/* Whether a PIZ block's data (d, len bytes) holds the parts whose sizes it declares before
 * tinyexr reads them: its bitmap (the range min..max of 2-byte bounds, at most 8192 bytes) and its
 * Huffman stream (a 4-byte length, then at least the 20-byte Huffman header). tinyexr copies the
 * bitmap without checking it against the block, reading past the file. */
static bool exr_piz_ok(const unsigned char *d, uint64_t len, uint64_t raw) {
  if (len == raw) return true; /* stored uncompressed: tinyexr copies it as it is */
  if (len < 4) return false;
  const uint64_t lo = (uint64_t)d[0] | (uint64_t)d[1] << 8, hi = (uint64_t)d[2] | (uint64_t)d[3] << 8;
  uint64_t at = 4 + (lo <= hi ? hi - lo + 1 : 0);
  if (hi >= 8192 || at + 4 > len) return false;
  const int32_t n = (int32_t)((uint32_t)d[at] | (uint32_t)d[at + 1] << 8 |
                              (uint32_t)d[at + 2] << 16 | (uint32_t)d[at + 3] << 24);
  return n >= 20 && at + 4 + (uint64_t)n <= len;
}

/* The channels kiln reads into ch[] (R, G, B, Y; -1 where absent) and the stored bytes of a
 * texel, all channels, into *per_px; KILN_EPARSE with msg when they will not do. */
static int exr_channels(const EXRHeader *h, int ch[4], uint64_t *per_px, char *msg, size_t msgsz) {
  static const char *const want[4] = {"R", "G", "B", "Y"};
  *per_px = 0;
  for (int k = 0; k < 4; k++) ch[k] = -1;
  for (int c = 0; c < h->num_channels; c++) {
    const EXRChannelInfo *ci = &h->channels[c];
    *per_px += h->pixel_types[c] == TINYEXR_PIXELTYPE_HALF ? 2 : 4;
    for (int k = 0; k < 4; k++)
      if (strcmp(ci->name, want[k]) == 0) ch[k] = c;
    if (ci->x_sampling != 1 || ci->y_sampling != 1) {
      snprintf(msg, msgsz, "channel '%.40s' is subsampled (%dx%d): only full-resolution channels "
               "are read", ci->name, ci->x_sampling, ci->y_sampling);
      return KILN_EPARSE;
    }
  }
  const bool rgb = ch[0] >= 0 && ch[1] >= 0 && ch[2] >= 0;
  if (!rgb && ch[3] < 0) {
    snprintf(msg, msgsz, "the EXR has no R, G and B channels and no Y channel (%d channel%s%s%.40s)",
             h->num_channels, h->num_channels == 1 ? "" : "s", h->num_channels ? ", the first " : "",
             h->num_channels ? h->channels[0].name : "");
    return KILN_EPARSE;
  }
  for (int k = rgb ? 0 : 3; k < (rgb ? 3 : 4); k++)
    if (h->pixel_types[ch[k]] == TINYEXR_PIXELTYPE_UINT) {
      snprintf(msg, msgsz, "channel '%s' holds integers (UINT); a map's channels are HALF or FLOAT",
               want[k]);
      return KILN_EPARSE;
    }
  return 0;
}

/* Every block of the offset table (blocks of them, each a head-byte header and its data) inside
 * the file, each tile a block names inside the image, each PIZ block's parts inside the block. */
static int exr_blocks(const EXRHeader *h, const unsigned char *b, size_t n, uint64_t w,
                      uint64_t hh, uint64_t per_px, uint64_t blocks, uint64_t head, char *msg,
                      size_t msgsz) {
  /* every block of the offset table inside the file, its data included: a truncated file is
   * told here, by name, rather than by tinyexr's decoder */
  const uint64_t table = 8 + (uint64_t)h->header_len;
  if (table > n || blocks > (n - table) / 8) {
    snprintf(msg, msgsz, "the file ends inside the EXR offset table (truncated)");
    return KILN_EPARSE;
  }
  for (uint64_t k = 0; k < blocks; k++) {
    uint64_t o = exr_le64(b + table + 8 * k);
    if (o < table + 8 * blocks || o > n || n - o < head ||
        (uint64_t)(b[o + head - 4] | b[o + head - 3] << 8 | b[o + head - 2] << 16 |
                   (uint32_t)b[o + head - 1] << 24) > n - o - head) {
      snprintf(msg, msgsz, "EXR block %llu of %llu runs past the end of the file (truncated)",
               (unsigned long long)k + 1, (unsigned long long)blocks);
      return KILN_EPARSE;
    }
    const uint64_t dlen = (uint64_t)(b[o + head - 4] | b[o + head - 3] << 8 | b[o + head - 2] << 16 |
                                     (uint32_t)b[o + head - 1] << 24);
    if (h->tiled && !exr_tile_exists(h, w, hh, b + o)) {
      snprintf(msg, msgsz, "EXR block %llu of %llu names a tile outside the image",
               (unsigned long long)k + 1, (unsigned long long)blocks);
      return KILN_EPARSE;
    }
    if (h->compression_type == TINYEXR_COMPRESSIONTYPE_PIZ &&
        !exr_piz_ok(b + o + head, dlen, exr_block_raw(h, w, hh, per_px, b + o))) {
      snprintf(msg, msgsz, "EXR block %llu of %llu: its PIZ data is malformed",
               (unsigned long long)k + 1, (unsigned long long)blocks);
      return KILN_EPARSE;
    }
  }
  return 0;
}

/* The header's promises checked before tinyexr decodes anything: a non-empty data window,
 * channels kiln can use (exr_channels, into ch[]), tiles of a known layout, sizes within kiln's
 * limits and what the file can hold, and the blocks (exr_blocks). */
static int exr_check(const EXRHeader *h, const unsigned char *b, size_t n, int ch[4], char *msg,
                     size_t msgsz) {
  const int64_t w = (int64_t)h->data_window.max_x - h->data_window.min_x + 1,
                hh = (int64_t)h->data_window.max_y - h->data_window.min_y + 1;
  if (w <= 0 || hh <= 0) {
    snprintf(msg, msgsz, "the image has no pixels (its data window is empty)");
    return KILN_EPARSE;
  }
  uint64_t per_px;
  int rc = exr_channels(h, ch, &per_px, msg, msgsz);
  if (rc) return rc;
  uint64_t blocks, tile_bytes = 0, head = 8;
  if (h->tiled) {
    if (h->tile_size_x <= 0 || h->tile_size_y <= 0 || h->tile_size_x > KILN__TEXTURE_MAX_SIDE ||
        h->tile_size_y > KILN__TEXTURE_MAX_SIDE || h->tile_level_mode > 2) {
      snprintf(msg, msgsz, "malformed EXR tile description (%dx%d tiles, level mode %d)",
               h->tile_size_x, h->tile_size_y, h->tile_level_mode);
      return KILN_EPARSE;
    }
    if (w > KILN__TEXTURE_MAX_SIDE || hh > KILN__TEXTURE_MAX_SIDE) blocks = 1; /* refused below */
    else exr_tiles(h, (uint64_t)w, (uint64_t)hh, &tile_bytes, &blocks); /* < 2^40 each */
    head = 20;
  } else {
    const int lines = h->compression_type == TINYEXR_COMPRESSIONTYPE_ZIP   ? 16
                      : h->compression_type == TINYEXR_COMPRESSIONTYPE_PIZ ? 32
                      : h->compression_type == TINYEXR_COMPRESSIONTYPE_ZFP ? 16
                                                                           : 1;
    blocks = ((uint64_t)hh + (uint64_t)lines - 1) / (uint64_t)lines;
  }
  if (h->chunk_count > 0 && (uint64_t)h->chunk_count != blocks) {
    snprintf(msg, msgsz, "the EXR's chunkCount (%d) is not the %llu blocks its size needs",
             h->chunk_count, (unsigned long long)blocks);
    return KILN_EPARSE;
  }
  /* what tinyexr allocates (4 bytes a channel a texel, or its tiles) and what kiln keeps */
  const uint64_t planes = h->tiled ? 0 : 4 * (uint64_t)h->num_channels;
  const bool sides_ok = w <= KILN__TEXTURE_MAX_SIDE && hh <= KILN__TEXTURE_MAX_SIDE;
  const uint64_t raw = sides_ok ? (uint64_t)w * (uint64_t)hh * per_px : 0; /* else refused */
  const uint64_t ratio = h->compression_type == TINYEXR_COMPRESSIONTYPE_NONE ? 1 : EXR_MAX_RATIO;
  rc = check_claim_mem((uint64_t)w, (uint64_t)hh, 3 * sizeof(float) + planes, tile_bytes,
                       blocks * (8 + head) + (raw + ratio - 1) / ratio, n, msg, msgsz);
  if (rc) return rc;
  return exr_blocks(h, b, n, (uint64_t)w, (uint64_t)hh, per_px, blocks, head, msg, msgsz);
}

/* Level 0 of the decoded image's channel c (floats) as texel (x, y), for scanline and tiled
 * images alike. */
static void exr_gather(const EXRHeader *h, const EXRImage *img, int c, int k, float *rgb,
                       uint32_t w, uint32_t hh) {
  if (!h->tiled) {
    const float *p = (const float *)img->images[c];
    for (size_t i = 0; i < (size_t)w * hh; i++) rgb[3 * i + k] = p[i];
    return;
  }
  const int tx = h->tile_size_x, ty = h->tile_size_y;
  for (int t = 0; t < img->num_tiles; t++) {
    const EXRTile *tl = &img->tiles[t];
    const float *p = (const float *)tl->images[c];
    /* tile coordinates come from the file: only texels inside the image are taken */
    for (int y = 0; y < tl->height && y < ty; y++)
      for (int x = 0; x < tl->width && x < tx; x++) {
        int64_t gx = (int64_t)tl->offset_x * tx + x, gy = (int64_t)tl->offset_y * ty + y;
        if (gx >= 0 && gy >= 0 && gx < (int64_t)w && gy < (int64_t)hh)
          rgb[3 * ((size_t)gy * w + (size_t)gx) + k] = p[(size_t)y * (size_t)tx + (size_t)x];
      }
  }
}

/* Texels with a NaN or an infinite channel become black (as Cycles makes them); negative channels
 * become 0: light is never negative in kiln, and its sampler weighs texels by luminance. */
static void exr_sanitise(float *rgb, size_t np) {
  for (size_t i = 0; i < np; i++) {
    float *p = rgb + 3 * i;
    if (!isfinite(p[0]) || !isfinite(p[1]) || !isfinite(p[2])) p[0] = p[1] = p[2] = 0;
    for (int k = 0; k < 3; k++) p[k] = p[k] > 0 ? p[k] : 0; /* -0 too */
  }
}

static int decode_exr(const unsigned char *b, size_t n, float **rgb, uint32_t *w, uint32_t *h,
                      char *msg, size_t msgsz) {
  EXRVersion ver;
  if (ParseEXRVersionFromMemory(&ver, b, n) != TINYEXR_SUCCESS) {
    snprintf(msg, msgsz, "cannot decode the EXR: its version field is malformed or truncated");
    return KILN_EPARSE;
  }
  if (ver.multipart || ver.non_image) {
    snprintf(msg, msgsz, "a %s EXR: environment maps are single-part images",
             ver.multipart ? "multi-part" : "deep");
    return KILN_EPARSE;
  }
  int rc = exr_header_guard(b, n, ver.tiled != 0, msg, msgsz);
  if (rc) return rc;
  EXRHeader hd;
  InitEXRHeader(&hd);
  const char *err = NULL;
  if (ParseEXRHeaderFromMemory(&hd, &ver, b, n, &err) != TINYEXR_SUCCESS) {
    FreeEXRHeader(&hd);
    const char *c = exr_compression_name(b, n);
    if (!c) return exr_fail("its header", err, msg, msgsz);
    FreeEXRErrorMessage(err);
    snprintf(msg, msgsz, "the EXR's compression is %s: kiln reads none, RLE, ZIPS, ZIP and PIZ "
             "(save the map with one of those)", c);
    return KILN_EPARSE;
  }
  int ch[4];
  rc = exr_check(&hd, b, n, ch, msg, msgsz);
  if (rc) {
    FreeEXRHeader(&hd);
    return rc;
  }
  for (int c = 0; c < hd.num_channels; c++)
    if (hd.pixel_types[c] == TINYEXR_PIXELTYPE_HALF)
      hd.requested_pixel_types[c] = TINYEXR_PIXELTYPE_FLOAT;
  const uint32_t iw = (uint32_t)(hd.data_window.max_x - hd.data_window.min_x + 1),
                 ih = (uint32_t)(hd.data_window.max_y - hd.data_window.min_y + 1);
  EXRImage img;
  InitEXRImage(&img);
  /* tinyexr frees the planes of a scanline image that fails to decode only as far as
   * num_channels says, which it sets on success: set it first */
  img.num_channels = hd.num_channels;
  if (LoadEXRImageFromMemory(&img, &hd, b, n, &err) != TINYEXR_SUCCESS) {
    FreeEXRHeader(&hd); /* (img was freed by tinyexr) */
    return exr_fail("", err, msg, msgsz);
  }
  float *f = calloc((size_t)iw * ih * 3, sizeof *f);
  if (f) {
    const bool grey = ch[0] < 0 || ch[1] < 0 || ch[2] < 0;
    for (int k = 0; k < 3; k++) exr_gather(&hd, &img, grey ? ch[3] : ch[k], k, f, iw, ih);
    exr_sanitise(f, (size_t)iw * ih);
  }
  FreeEXRImage(&img);
  FreeEXRHeader(&hd);
  if (!f) return KILN_ENOMEM;
  *rgb = f, *w = iw, *h = ih;
  return 0;
}

/* ---- the entry point ----------------------------------------------------------------------------- */

static float srgb_to_linear(unsigned char c) {
  float x = c / 255.0f;
  return x <= 0.04045f ? x / 12.92f : powf((x + 0.055f) / 1.055f, 2.4f);
}

/* What a file of format fmt is said to be when the caller wanted the other kind. */
static const char *refusal(int fmt, bool is_hdr) {
  if (is_hdr)
    return fmt == FMT_UNKNOWN
               ? "not a Radiance .hdr or OpenEXR image (its first bytes are neither '#?RADIANCE' "
                 "nor EXR's magic number)"
               : "not a Radiance .hdr or OpenEXR image (a PNG or JPEG: environment maps are .hdr "
                 "or .exr)";
  return fmt == FMT_HDR   ? "a Radiance .hdr image: textures are PNG or JPEG"
         : fmt == FMT_EXR ? "an OpenEXR image: textures are PNG or JPEG"
                          : "not a PNG or JPEG image (its first bytes are those of neither)";
}

int kiln__texture_decode(const unsigned char *bytes, size_t len, kiln__tex_mode mode,
                         kiln__texture *t, kiln__texture *alpha, char *msg, size_t msgsz) {
  memset(t, 0, sizeof *t);
  if (alpha) memset(alpha, 0, sizeof *alpha);
  const bool is_hdr = mode == KILN__TEX_HDR;
  int fmt = sniff(bytes, len);
  if ((fmt == FMT_HDR || fmt == FMT_EXR) != is_hdr || fmt == FMT_UNKNOWN) {
    snprintf(msg, msgsz, "%s", refusal(fmt, is_hdr));
    return KILN_EPARSE;
  }
  uint32_t w = 0, h = 0;
  float *f = NULL;
  unsigned char *c = NULL;
  bool rgba = alpha != NULL;
  int rc;
  if (fmt == FMT_HDR) rc = decode_hdr(bytes, len, &f, &w, &h, msg, msgsz), rgba = false;
  else if (fmt == FMT_EXR) rc = decode_exr(bytes, len, &f, &w, &h, msg, msgsz), rgba = false;
  else if (fmt == FMT_PNG) rc = decode_png(bytes, len, &c, &w, &h, &rgba, msg, msgsz);
  else rc = decode_jpeg(bytes, len, &c, &w, &h, msg, msgsz), rgba = false;
  if (rc) return rc;
  size_t npx = (size_t)w * (size_t)h, n = npx * 3;
  if (c) {
    f = malloc(n * sizeof(float));
    float *a = rgba ? malloc(n * sizeof(float)) : NULL;
    if (!f || (rgba && !a)) {
      free(c), free(f), free(a);
      return KILN_ENOMEM;
    }
    float lut[256];
    for (int i = 0; i < 256; i++)
      lut[i] = mode == KILN__TEX_SRGB ? srgb_to_linear((unsigned char)i) : (float)i / 255.0f;
    const size_t step = rgba ? 4 : 3;
    for (size_t i = 0; i < npx; i++) {
      const unsigned char *q = c + step * i;
      f[3 * i] = lut[q[0]], f[3 * i + 1] = lut[q[1]], f[3 * i + 2] = lut[q[2]];
      if (a) a[3 * i] = a[3 * i + 1] = a[3 * i + 2] = (float)q[3] / 255.0f;
    }
    free(c);
    if (a) alpha->width = (int)w, alpha->height = (int)h, alpha->rgb = a;
    t->srgb = mode == KILN__TEX_SRGB_FILTERED;
  }
  /* RGBE values are finite and non-negative by construction (at most 255.5 * 2^119); EXR texels
   * are made so (exr_sanitise) */
  t->width = (int)w, t->height = (int)h, t->rgb = f;
  return 0;
}

int kiln__texture_load_ex(const char *path, kiln__tex_mode mode, kiln__texture *t,
                          kiln__texture *alpha, char *msg, size_t msgsz) {
  memset(t, 0, sizeof *t);
  if (alpha) memset(alpha, 0, sizeof *alpha);
  char *buf;
  size_t len;
  int rc = kiln__read_file(path, &buf, &len, msg, msgsz);
  if (rc) return rc;
  rc = kiln__texture_decode((const unsigned char *)buf, len, mode, t, alpha, msg, msgsz);
  free(buf);
  return rc;
}

int kiln__texture_load(const char *path, bool is_hdr, kiln__texture *t, char *msg, size_t msgsz) {
  return kiln__texture_load_ex(path, is_hdr ? KILN__TEX_HDR : KILN__TEX_SRGB, t, NULL, msg, msgsz);
}
