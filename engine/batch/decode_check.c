/* decode_check.c: whether one output file is what a run writes for a pass (kiln verify): each
 * format decoded in full, by the decoder written for it, against the size, bit depth and channels
 * output.c gives that pass:
 *
 *   PNG   libspng decodes the pixels (zlib stream and CRCs) and the chunks after them, and the file
 *         must end exactly with IEND: a file cut anywhere is corrupt
 *   JPEG  TurboJPEG, with libjpeg's warnings as errors (a truncated scan is a warning), and the
 *         end-of-image marker last
 *   EXR   tinyexr's header and image readers (every chunk's offset inside the file, every block
 *         decompressed)
 *   NPY   the header (magic, version, the dict's descr, fortran_order and shape) and a data length
 *         of exactly the shape's bytes
 *   HDR   the Radiance header and every scanline decoded (flat or run-length), one at a time, with
 *         nothing after the last: memory does not grow with the image
 *
 * Nothing here keeps state: any number of threads may check files at once. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spng.h>
#include <tinyexr.h>
#include <turbojpeg.h>

#include "batch_internal.h"

void kiln__expect_of(kiln_format f, int pi, int32_t w, int32_t h, kiln__expect *e) {
  memset(e, 0, sizeof *e);
  e->width = w, e->height = h;
  bool ids = pi == 4 || pi == 5 || pi == KILN__PI_CATEGORY;
  e->channels = pi == 1 || ids ? 1 : 3;
  if (f == KILN_FORMAT_NPY) {
    e->kind = KILN__FILE_NPY, e->descr = ids ? "<u4" : "<f4";
  } else if (f == KILN_FORMAT_EXR || (f == KILN_FORMAT_HDR && pi != 0) ||
             kiln__pass_float_only(pi)) {
    e->kind = KILN__FILE_EXR;
  } else if (f == KILN_FORMAT_HDR) {
    e->kind = KILN__FILE_HDR;
  } else if (f == KILN_FORMAT_JPEG && pi == 0) {
    e->kind = KILN__FILE_JPEG;
  } else {
    e->kind = KILN__FILE_PNG;
    /* depth, ids and the flows (KITTI's form): 16-bit; colour, normal, albedo, nocs: 8-bit, or
     * 16-bit for png16 */
    bool flow = pi >= KILN__PI_FLOW_FWD; /* the flows and the motions */
    e->bits = pi == 1 || ids || flow || f == KILN_FORMAT_PNG16 ? 16 : 8;
  }
}

void kiln__expect_slot(kiln_format f, unsigned passes, int slot, int32_t w, int32_t h,
                       kiln__expect *e) {
  if (slot != KILN__LAYERS) {
    kiln__expect_of(f, slot, w, h, e);
    return;
  }
  memset(e, 0, sizeof *e);
  kiln__layer_channel ch[KILN__NPASS * 4];
  e->kind = KILN__FILE_EXR, e->width = w, e->height = h;
  e->layers = passes, e->channels = kiln__layer_channels(passes, ch);
}

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int bad(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(char *why, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, cap, fmt, ap);
  va_end(ap);
  return KILN_EPARSE;
}

static int size_differs(const kiln__expect *e, long w, long h, char *why, size_t cap) {
  return bad(why, cap, "%ldx%ld pixels; the run writes %dx%d", w, h, e->width, e->height);
}

/* ---- PNG ------------------------------------------------------------------------------------ */

/* Every chunk inside the file, the last one IEND, ending the file. */
static int png_chunks(const unsigned char *b, size_t n, char *why, size_t cap) {
  size_t p = 8;
  while (n - p >= 12) {
    uint32_t len = be32(b + p);
    if (len > n - p - 12)
      return bad(why, cap, "the %.4s chunk runs past the end of the file (truncated)", b + p + 4);
    bool end = memcmp(b + p + 4, "IEND", 4) == 0;
    p += 12 + (size_t)len;
    if (end)
      return p == n ? 0 : bad(why, cap, "%zu bytes after the IEND chunk", n - p);
  }
  return bad(why, cap, "the file ends before its IEND chunk (truncated)");
}

static int check_png(const unsigned char *b, size_t n, const kiln__expect *e, char *why,
                     size_t cap) {
  if (n < 8 || memcmp(b, "\x89PNG\r\n\x1a\n", 8) != 0)
    return bad(why, cap, "not a PNG file (its first bytes are not PNG's signature)");
  int rc = png_chunks(b, n, why, cap);
  if (rc) return rc;
  spng_ctx *ctx = spng_ctx_new(0);
  if (!ctx) return KILN_ENOMEM;
  struct spng_ihdr ih;
  size_t size = 0;
  unsigned char *px = NULL;
  int src = spng_set_png_buffer(ctx, b, n);
  if (!src) src = spng_get_ihdr(ctx, &ih);
  if (src) {
    rc = bad(why, cap, "cannot decode the PNG: %s", spng_strerror(src));
  } else if ((int64_t)ih.width != e->width || (int64_t)ih.height != e->height) {
    rc = size_differs(e, (long)ih.width, (long)ih.height, why, cap);
  } else if (ih.bit_depth != e->bits ||
             ih.color_type != (e->channels == 3 ? SPNG_COLOR_TYPE_TRUECOLOR
                                                : SPNG_COLOR_TYPE_GRAYSCALE)) {
    rc = bad(why, cap, "%d-bit %s; the run writes %d-bit %s", ih.bit_depth,
             ih.color_type == SPNG_COLOR_TYPE_GRAYSCALE   ? "grey"
             : ih.color_type == SPNG_COLOR_TYPE_TRUECOLOR ? "RGB"
                                                          : "of another colour type",
             e->bits, e->channels == 3 ? "RGB" : "grey");
  } else if ((src = spng_decoded_image_size(ctx, SPNG_FMT_PNG, &size)) != 0) {
    rc = bad(why, cap, "cannot decode the PNG: %s", spng_strerror(src));
  } else if (!(px = malloc(size))) {
    rc = KILN_ENOMEM;
  } else if ((src = spng_decode_image(ctx, px, size, SPNG_FMT_PNG, 0)) != 0 ||
             (src = spng_decode_chunks(ctx)) != 0) {
    rc = bad(why, cap, "cannot decode the PNG: %s", spng_strerror(src));
  }
  free(px);
  spng_ctx_free(ctx);
  return rc;
}

/* ---- JPEG ----------------------------------------------------------------------------------- */

static int check_jpeg(const unsigned char *b, size_t n, const kiln__expect *e, char *why,
                      size_t cap) {
  if (n < 4 || b[0] != 0xff || b[1] != 0xd8)
    return bad(why, cap, "not a JPEG file (it does not start with a JPEG marker)");
  if (b[n - 2] != 0xff || b[n - 1] != 0xd9)
    return bad(why, cap, "the file does not end with JPEG's end-of-image marker (truncated)");
  tjhandle tj = tjInitDecompress();
  if (!tj) return KILN_ENOMEM;
  int w = 0, h = 0, sub = 0, cs = 0, rc = 0;
  unsigned char *px = NULL;
  if (tjDecompressHeader3(tj, b, (unsigned long)n, &w, &h, &sub, &cs)) {
    rc = bad(why, cap, "cannot decode the JPEG: %s", tjGetErrorStr2(tj));
  } else if (w != e->width || h != e->height) {
    rc = size_differs(e, w, h, why, cap);
  } else if (sub == TJSAMP_GRAY || cs == TJCS_GRAY) {
    rc = bad(why, cap, "a grey JPEG; the run writes RGB");
  } else if (!(px = malloc((size_t)w * (size_t)h * 3))) {
    rc = KILN_ENOMEM;
  } else if (tjDecompress2(tj, b, (unsigned long)n, px, w, 0, h, TJPF_RGB,
                           TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS)) {
    rc = bad(why, cap, "cannot decode the JPEG: %s", tjGetErrorStr2(tj));
  }
  free(px);
  tjDestroy(tj);
  return rc;
}

/* ---- EXR ------------------------------------------------------------------------------------ */

static int exr_error(const char *what, const char *err, char *why, size_t cap) {
  const char *m = err ? err : "not a valid EXR file";
  size_t n = strcspn(m, "\n"); /* tinyexr's messages end with a newline */
  bad(why, cap, "%s: %.*s", what, (int)n, m);
  FreeEXRErrorMessage(err);
  return KILN_EPARSE;
}

static uint64_t le64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

/* Every block the offset table names lies inside the file, its data included: a truncated file
 * is told here, before tinyexr decodes anything. */
static int exr_blocks(const unsigned char *b, size_t n, const EXRHeader *h, long height, char *why,
                      size_t cap) {
  int lines = h->compression_type == TINYEXR_COMPRESSIONTYPE_ZIP   ? 16
              : h->compression_type == TINYEXR_COMPRESSIONTYPE_PIZ ? 32
                                                                   : 1;
  uint64_t blocks = h->chunk_count > 0 ? (uint64_t)h->chunk_count
                                       : ((uint64_t)height + (uint64_t)lines - 1) / (uint64_t)lines;
  uint64_t table = 8 + (uint64_t)h->header_len;
  if (table > n || blocks > (n - table) / 8)
    return bad(why, cap, "the file ends inside the EXR offset table (truncated)");
  for (uint64_t k = 0; k < blocks; k++) {
    uint64_t o = le64(b + table + 8 * k);
    if (o < table + 8 * blocks || o > n || n - o < 8 ||
        (uint64_t)(b[o + 4] | b[o + 5] << 8 | b[o + 6] << 16 | (uint32_t)b[o + 7] << 24) >
            n - o - 8)
      return bad(why, cap, "EXR block %llu of %llu runs past the end of the file (truncated)",
                 (unsigned long long)k + 1, (unsigned long long)blocks);
  }
  return 0;
}

/* A multilayer file's channels: the names kiln__layer_channels gives, in its order, ids UINT and
 * every other channel HALF or FLOAT (kiln_batch_config.exr_half: either is what some run writes),
 * all of them alike. */
static int exr_layers(const EXRHeader *h, const kiln__expect *e, char *why, size_t cap) {
  kiln__layer_channel ch[KILN__NPASS * 4];
  int n = kiln__layer_channels(e->layers, ch), float_type = -1;
  for (int c = 0; c < n; c++) {
    const char *got = h->channels[c].name;
    int t = h->pixel_types[c];
    if (strcmp(got, ch[c].name))
      return bad(why, cap, "channel %d is \"%.40s\"; the run writes \"%s\" there", c + 1, got,
                 ch[c].name);
    if (ch[c].uint && t != TINYEXR_PIXELTYPE_UINT)
      return bad(why, cap, "channel %s is not UINT; the run writes ids as UINT", got);
    if (!ch[c].uint && t != TINYEXR_PIXELTYPE_HALF && t != TINYEXR_PIXELTYPE_FLOAT)
      return bad(why, cap, "channel %s is not HALF or FLOAT", got);
    if (!ch[c].uint && float_type >= 0 && t != float_type)
      return bad(why, cap, "channel %s is %s, others %s: the run writes them alike", got,
                 t == TINYEXR_PIXELTYPE_HALF ? "HALF" : "FLOAT",
                 float_type == TINYEXR_PIXELTYPE_HALF ? "HALF" : "FLOAT");
    if (!ch[c].uint) float_type = t;
  }
  return 0;
}

static int check_exr(const unsigned char *b, size_t n, const kiln__expect *e, char *why,
                     size_t cap) {
  EXRVersion ver;
  if (ParseEXRVersionFromMemory(&ver, b, n) != TINYEXR_SUCCESS)
    return bad(why, cap, "not an EXR file (its first bytes are not EXR's magic number)");
  if (ver.multipart || ver.non_image || ver.tiled)
    return bad(why, cap, "a multi-part, deep or tiled EXR; the run writes one scanline image");
  EXRHeader h;
  InitEXRHeader(&h);
  const char *err = NULL;
  if (ParseEXRHeaderFromMemory(&h, &ver, b, n, &err) != TINYEXR_SUCCESS)
    return exr_error("cannot read the EXR header", err, why, cap);
  int rc = 0;
  long w = (long)h.data_window.max_x - h.data_window.min_x + 1,
       hh = (long)h.data_window.max_y - h.data_window.min_y + 1;
  if (w != e->width || hh != e->height) {
    rc = size_differs(e, w, hh, why, cap);
  } else if (h.num_channels != e->channels) {
    rc = bad(why, cap, "%d channels; the run writes %d", h.num_channels, e->channels);
  } else if (e->layers && (rc = exr_layers(&h, e, why, cap)) != 0) {
  } else if ((rc = exr_blocks(b, n, &h, hh, why, cap)) == 0) {
    EXRImage img;
    InitEXRImage(&img);
    /* (tinyexr frees its image array, but not the planes in it, when a block's data is bad: a
     * few KiB lost per corrupt file, which exr_blocks keeps truncated files from reaching) */
    if (LoadEXRImageFromMemory(&img, &h, b, n, &err) != TINYEXR_SUCCESS)
      rc = exr_error("cannot decode the EXR", err, why, cap);
    else FreeEXRImage(&img);
  }
  FreeEXRHeader(&h);
  return rc;
}

/* ---- NPY ------------------------------------------------------------------------------------ */

/* The value of 'key' in the header dict text (its first character), or NULL. */
static const char *npy_value(const char *dict, const char *key) {
  char k[32];
  snprintf(k, sizeof k, "'%s'", key);
  const char *p = strstr(dict, k);
  if (!p) return NULL;
  p += strlen(k);
  while (*p == ' ') p++;
  if (*p++ != ':') return NULL;
  while (*p == ' ') p++;
  return p;
}

/* shape "(h, w)" or "(h, w, c)" into dims; how many, or -1. */
static int npy_shape(const char *p, unsigned long long dims[4]) {
  if (!p || *p++ != '(') return -1;
  int n = 0;
  for (;;) {
    while (*p == ' ') p++;
    if (*p == ')') return n;
    char *end;
    errno = 0;
    if (*p < '0' || *p > '9' || n == 4) return -1;
    dims[n++] = strtoull(p, &end, 10);
    if (errno) return -1;
    p = end;
    while (*p == ' ') p++;
    if (*p == ',') p++;
    else if (*p != ')') return -1;
  }
}

static int check_npy(const unsigned char *b, size_t n, const kiln__expect *e, char *why,
                     size_t cap) {
  if (n < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
    return bad(why, cap, "not an NPY file (its first bytes are not NPY's magic string)");
  if (b[6] < 1 || b[6] > 3) return bad(why, cap, "NPY version %d.%d is unknown", b[6], b[7]);
  size_t start = b[6] == 1 ? 10 : 12;
  if (n < start) return bad(why, cap, "the file ends inside the NPY header (truncated)");
  size_t hlen = b[6] == 1 ? (size_t)(b[8] | b[9] << 8) : (size_t)b[8] | (size_t)b[9] << 8 |
                                                            (size_t)b[10] << 16 |
                                                            (size_t)b[11] << 24;
  if (hlen > n - start) return bad(why, cap, "the file ends inside the NPY header (truncated)");
  if (hlen == 0 || b[start + hlen - 1] != '\n')
    return bad(why, cap, "the NPY header does not end with a newline");
  char *dict = strndup((const char *)b + start, hlen);
  if (!dict) return KILN_ENOMEM;
  const char *d = npy_value(dict, "descr"), *fo = npy_value(dict, "fortran_order");
  unsigned long long dims[4] = {0};
  int nd = npy_shape(npy_value(dict, "shape"), dims), rc = 0;
  size_t dl = strlen(e->descr);
  if (!d || d[0] != '\'' || strncmp(d + 1, e->descr, dl) != 0 || d[1 + dl] != '\'')
    rc = bad(why, cap, "NPY dtype is not '%s' (the run writes '%s')", e->descr, e->descr);
  else if (!fo || strncmp(fo, "False", 5) != 0)
    rc = bad(why, cap, "an NPY array in Fortran order; the run writes C order");
  else if (nd != (e->channels == 1 ? 2 : 3) || dims[0] != (unsigned long long)e->height ||
           dims[1] != (unsigned long long)e->width || (nd == 3 && dims[2] != 3))
    rc = bad(why, cap, "NPY shape %s; the run writes (%d, %d%s)",
             nd < 0 ? "unreadable" : "of another size", e->height, e->width,
             e->channels == 3 ? ", 3" : "");
  free(dict);
  if (rc) return rc;
  uint64_t want = (uint64_t)e->width * (uint64_t)e->height * (uint64_t)e->channels * 4;
  uint64_t have = n - start - hlen;
  if (have != want)
    return bad(why, cap, "%llu bytes of array data, the shape needs %llu%s",
               (unsigned long long)have, (unsigned long long)want,
               have < want ? " (truncated)" : "");
  return 0;
}

/* ---- Radiance .hdr ---------------------------------------------------------------------------- */

static int check_hdr(const unsigned char *b, size_t n, const kiln__expect *e, char *why,
                     size_t cap) {
  const unsigned char *p = b, *end = b + n;
  static const char *const magic[] = {"#?RADIANCE\n", "#?RGBE\n"};
  if (!(n >= 11 && memcmp(b, magic[0], 11) == 0) && !(n >= 7 && memcmp(b, magic[1], 7) == 0))
    return bad(why, cap, "not a Radiance .hdr file (it does not start with #?RADIANCE)");
  for (;;) { /* header lines up to an empty one */
    const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) return bad(why, cap, "the .hdr header is truncated");
    bool empty = nl == p;
    if (nl - p >= 7 && memcmp(p, "FORMAT=", 7) == 0 &&
        !(nl - p == 22 && memcmp(p, "FORMAT=32-bit_rle_rgbe", 22) == 0))
      return bad(why, cap, "a .hdr of another pixel format than 32-bit_rle_rgbe");
    p = nl + 1;
    if (empty) break;
  }
  const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
  char res[64];
  long hh = 0, w = 0;
  char tail;
  if (!nl || nl - p >= (long)sizeof res)
    return bad(why, cap, "the .hdr resolution line is missing or malformed");
  memcpy(res, p, (size_t)(nl - p)), res[nl - p] = 0;
  if (sscanf(res, "-Y %ld +X %ld %c", &hh, &w, &tail) != 2 || hh < 1 || w < 1)
    return bad(why, cap, "malformed .hdr resolution line (expected '-Y <height> +X <width>')");
  if (w != e->width || hh != e->height) return size_differs(e, w, hh, why, cap);
  p = nl + 1;
  unsigned char *line = malloc(4 * (size_t)w);
  if (!line) return KILN_ENOMEM;
  const char *what = NULL;
  for (long y = 0; y < hh && !what; y++) what = kiln__hdr_scanline(&p, end, (uint32_t)w, line);
  free(line);
  if (!what && p != end) what = "there are bytes after the last scanline";
  return what ? bad(why, cap, "%s", what) : 0;
}

/* ---- one file ---------------------------------------------------------------------------------- */

int kiln__check_file(const char *path, const kiln__expect *e, uint64_t *bytes, char *why,
                     size_t cap) {
  why[0] = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return KILN__CHECK_MISSING;
    bad(why, cap, "cannot open: %s", strerror(errno));
    return KILN__CHECK_CORRUPT;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    bad(why, cap, "not a regular file");
    return KILN__CHECK_CORRUPT;
  }
  size_t n = (size_t)st.st_size;
  unsigned char *b = malloc(n ? n : 1);
  if (!b) {
    close(fd);
    return KILN_ENOMEM;
  }
  size_t got = 0;
  int err = 0;
  while (got < n) {
    ssize_t r = read(fd, b + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) err = errno;
    if (r <= 0) break;
    got += (size_t)r;
  }
  close(fd);
  int rc;
  if (got < n) {
    rc = bad(why, cap, "cannot read: %s", err ? strerror(err) : "shorter than its size");
  } else {
    *bytes += n;
    rc = kiln__check_bytes(b, n, e, why, cap);
    free(b);
    return rc;
  }
  free(b);
  return rc ? KILN__CHECK_CORRUPT : KILN__CHECK_OK;
}

int kiln__check_bytes(const unsigned char *b, size_t n, const kiln__expect *e, char *why,
                      size_t cap) {
  why[0] = 0;
  int rc;
  if (n == 0) {
    rc = bad(why, cap, "an empty file");
  } else {
    switch (e->kind) {
      case KILN__FILE_PNG: rc = check_png(b, n, e, why, cap); break;
      case KILN__FILE_JPEG: rc = check_jpeg(b, n, e, why, cap); break;
      case KILN__FILE_EXR: rc = check_exr(b, n, e, why, cap); break;
      case KILN__FILE_NPY: rc = check_npy(b, n, e, why, cap); break;
      default: rc = check_hdr(b, n, e, why, cap); break;
    }
  }
  if (rc == KILN_ENOMEM) return rc;
  return rc ? KILN__CHECK_CORRUPT : KILN__CHECK_OK;
}
