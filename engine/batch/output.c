/* output.c: what the batch writes: pass and format names, and the encoding of every pass in every
 * format (docs/JOBS.md, "What is written"). Used by batch.c and the job reader; nothing here
 * prints. */
#define _GNU_SOURCE
#include "batch_internal.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "image_internal.h"

#include <tinyexr.h>

/* ---- passes and formats ------------------------------------------------------------------- */

/* libdeflate level of every PNG: on rendered frames level 1 encodes ~1.6x faster than 6 for files
 * under 1% larger (kiln-bench-batch, docs/PERFORMANCE.md) */
enum { PNG_LEVEL = 1 };

const char *const kiln__pass_names[KILN__NPASS + 1] = {
    "color", "depth",    "normal",   "albedo",   "id",       "instance", "uv",
    "position", "objcoord", "nocs", "category", "flow_fwd", "flow_bwd", "motion_fwd", "motion_bwd",
    NULL};
_Static_assert(KILN_PASS_ALL == (1u << KILN__NPASS) - 1, "a name for every pass");
_Static_assert((unsigned)KILN_PLANE_DEPTH == (unsigned)KILN_PASS_DEPTH &&
                   (unsigned)KILN_PLANE_UV == (unsigned)KILN_PASS_UV &&
                   (unsigned)KILN_PLANE_ALL == (1u << KILN__NPLANE) - 1,
               "the renderer's planes are the first passes, bit for bit");

unsigned kiln__planes_of(unsigned passes) {
  unsigned planes = passes & ((1u << KILN__NPLANE) - 1);
  if (passes & (KILN_PASS_POSITION | KILN_PASS_OBJCOORD | KILN_PASS_NOCS | KILN_PASS_FLOW_FWD |
                KILN_PASS_MOTION_FWD | KILN_PASS_MOTION_BWD |
                KILN_PASS_FLOW_BWD))
    planes |= KILN_PASS_DEPTH | KILN_PASS_INSTANCE;
  if (passes & KILN_PASS_CATEGORY) planes |= KILN_PASS_ID;
  return planes;
}

/* ---- passes and formats ------------------------------------------------------------------- */

const char *kiln_pass_name(unsigned pass) {
  for (int i = 0; i < KILN__NPASS; i++)
    if (pass == 1u << i) return kiln__pass_names[i];
  return NULL;
}

int kiln_pass_parse(const char *list, unsigned *passes, kiln_error_detail *err) {
  kiln_error_detail dummy;
  if (!err) err = &dummy;
  memset(err, 0, sizeof *err);
  if (!passes) {
    snprintf(err->message, sizeof err->message, "passes must not be NULL");
    return err->code = KILN_EINVAL;
  }
  unsigned set = KILN_PASS_COLOR;
  const char *p = list ? list : "";
  while (*p) {
    const char *e = strchr(p, ',');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    int found = -1;
    for (int i = 0; i < KILN__NPASS; i++)
      if (strlen(kiln__pass_names[i]) == n && strncmp(p, kiln__pass_names[i], n) == 0) found = i;
    if (found < 0 && n == 9 && strncmp(p, "object_id", 9) == 0) found = 4;
    if (found < 0 && n == 11 && strncmp(p, "instance_id", 11) == 0) found = 5;
    if (found < 0 && n > 0) {
      snprintf(err->message, sizeof err->message,
               "unknown pass \"%.*s\"; passes: color, depth, normal, albedo, id, instance, uv, "
               "position, objcoord, nocs, category, flow_fwd, flow_bwd, motion_fwd, motion_bwd",
               (int)n,
               p);
      return err->code = KILN_EPARSE;
    }
    if (found >= 0) set |= 1u << found;
    p += n;
    if (*p == ',') p++;
  }
  *passes = set;
  return 0;
}

/* Every name a job or --format may give, and the format of each (format_of[i] is that of name i).
 * A format's own name, and its colour file's extension, is the first name that gives it. */
const char *const kiln__format_names[] = {"png", "png16", "jpg",       "exr", "npy",
                                          "hdr", "jpeg",  "exr-multi", NULL};
static const kiln_format format_of[] = {KILN_FORMAT_PNG, KILN_FORMAT_PNG16, KILN_FORMAT_JPEG,
                                        KILN_FORMAT_EXR, KILN_FORMAT_NPY,   KILN_FORMAT_HDR,
                                        KILN_FORMAT_JPEG, KILN_FORMAT_EXR_MULTI};
_Static_assert(sizeof format_of / sizeof format_of[0] ==
                   sizeof kiln__format_names / sizeof kiln__format_names[0] - 1,
               "one format for every name");

int kiln_format_parse(const char *name, kiln_format *out) {
  if (!name || !out) return KILN_EPARSE;
  for (int i = 0; kiln__format_names[i]; i++)
    if (strcmp(name, kiln__format_names[i]) == 0) {
      *out = kiln__format_of(i);
      return 0;
    }
  return KILN_EPARSE;
}

kiln_format kiln__format_of(int i) { return format_of[i]; }

const char *kiln_format_name(kiln_format f) {
  if (f == KILN_FORMAT_DEFAULT) return "default";
  for (int i = 0; kiln__format_names[i]; i++)
    if (format_of[i] == f) return kiln__format_names[i];
  return "?";
}

bool kiln__pass_float_only(int pi) {
  return pi == KILN__PI_UV || pi == KILN__PI_POSITION || pi == KILN__PI_OBJCOORD;
}

/* The file extension of pass index pi in format f. */
const char *kiln__pass_ext(kiln_format f, int pi) {
  if (f == KILN_FORMAT_EXR_MULTI || pi == KILN__LAYERS) return "exr";
  if (pi == 0) return f == KILN_FORMAT_PNG16 ? "png" : kiln_format_name(f);
  switch (f) {
    case KILN_FORMAT_EXR:
    case KILN_FORMAT_HDR: return "exr";
    case KILN_FORMAT_NPY: return "npy";
    default: return kiln__pass_float_only(pi) ? "exr" : "png";
  }
}

int kiln__frame_files(kiln_format f, unsigned passes, int files[KILN__NPASS]) {
  if (f == KILN_FORMAT_EXR_MULTI) {
    files[0] = KILN__LAYERS;
    return 1;
  }
  int n = 0;
  for (int pi = 0; pi < KILN__NPASS; pi++)
    if (passes & (1u << pi)) files[n++] = pi;
  return n;
}

const char *kiln__slot_name(int slot) {
  return slot == KILN__LAYERS ? "layers" : kiln__pass_names[slot];
}

kiln__exr_opts kiln__exr_opts_of(const kiln_batch_config *cfg) {
  static const int comp[] = {TINYEXR_COMPRESSIONTYPE_ZIP,  TINYEXR_COMPRESSIONTYPE_NONE,
                             TINYEXR_COMPRESSIONTYPE_RLE,  TINYEXR_COMPRESSIONTYPE_ZIPS,
                             TINYEXR_COMPRESSIONTYPE_ZIP,  TINYEXR_COMPRESSIONTYPE_PIZ};
  unsigned c = (unsigned)cfg->exr_compression;
  return (kiln__exr_opts){cfg->exr_half, comp[c < sizeof comp / sizeof comp[0] ? c : 0]};
}

/* ---- multilayer EXR ------------------------------------------------------------------------- */

/* The conventional channel names of the passes that have them (Nuke's and Blender's: R G B, Z,
 * N.X N.Y N.Z); a pass not listed is named by the rule in kiln/batch.h. */
static const struct {
  const char *pass;
  const char *names[3];
  bool uint;
} known_channels[] = {
    {"color", {"R", "G", "B"}, false},
    {"depth", {"Z"}, false},
    {"normal", {"N.X", "N.Y", "N.Z"}, false},
    {"albedo", {"albedo.R", "albedo.G", "albedo.B"}, false},
    {"id", {"id"}, true},
    {"instance", {"instance"}, true},
    {"uv", {"uv.U", "uv.V"}, false},
    {"position", {"P.X", "P.Y", "P.Z"}, false},
    {"objcoord", {"objcoord.X", "objcoord.Y", "objcoord.Z"}, false},
    {"nocs", {"nocs.X", "nocs.Y", "nocs.Z"}, false},
    {"category", {"category"}, true},
    {"flow_fwd", {"flow_fwd.U", "flow_fwd.V", "flow_fwd.valid"}, false},
    {"flow_bwd", {"flow_bwd.U", "flow_bwd.V", "flow_bwd.valid"}, false},
    {"motion_fwd", {"motion_fwd.U", "motion_fwd.V", "motion_fwd.valid"}, false},
    {"motion_bwd", {"motion_bwd.U", "motion_bwd.V", "motion_bwd.valid"}, false},
};

/* The bytes a pixel of pass pi has in the multilayer file: a renderer plane's own, or a derived
 * plane's (kiln__derive: 3 floats, category 1 uint32). */
static void layer_planes(const kiln_image *img, void *const derived[KILN__NPASS],
                         void *planes[KILN__NPASS], size_t per[KILN__NPASS]) {
  kiln__iso_planes(img, planes, per);
  for (int pi = KILN__NPLANE; pi < KILN__NPASS; pi++) {
    planes[pi] = derived ? derived[pi] : NULL;
    per[pi] = pi == KILN__PI_CATEGORY ? 4 : 12;
  }
}

static int cmp_channel(const void *a, const void *b) {
  return strcmp(((const kiln__layer_channel *)a)->name, ((const kiln__layer_channel *)b)->name);
}

int kiln__layer_channels(unsigned passes, kiln__layer_channel *ch) {
  kiln_image probe = {0};
  void *planes[KILN__NPASS];
  size_t per[KILN__NPASS];
  layer_planes(&probe, NULL, planes, per);
  int n = 0;
  for (int pi = 0; pi < KILN__NPASS; pi++) {
    if (!(passes & (1u << pi))) continue;
    int k = -1;
    for (size_t j = 0; j < sizeof known_channels / sizeof known_channels[0]; j++)
      if (!strcmp(known_channels[j].pass, kiln__pass_names[pi])) k = (int)j;
    int nc = (int)(per[pi] / 4);
    for (int c = 0; c < nc && c < 4; c++, n++) {
      ch[n] = (kiln__layer_channel){"", pi, c, k >= 0 && known_channels[k].uint};
      if (k >= 0 && c < 3 && known_channels[k].names[c])
        snprintf(ch[n].name, sizeof ch[n].name, "%s", known_channels[k].names[c]);
      else if (nc == 1)
        snprintf(ch[n].name, sizeof ch[n].name, "%s", kiln__pass_names[pi]);
      else
        snprintf(ch[n].name, sizeof ch[n].name, "%s.%c", kiln__pass_names[pi], "RGBA"[c]);
    }
  }
  qsort(ch, (size_t)n, sizeof *ch, cmp_channel);
  return n;
}

int kiln__encode_layers(const kiln_image *img, void *const derived[KILN__NPASS], unsigned passes,
                        kiln__exr_opts o, void **data, size_t *len, char *msg, size_t msgcap) {
  kiln__layer_channel lc[KILN__NPASS * 4];
  kiln__exr_channel ch[KILN__NPASS * 4];
  void *planes[KILN__NPASS];
  size_t per[KILN__NPASS];
  layer_planes(img, derived, planes, per);
  int n = kiln__layer_channels(passes, lc);
  for (int i = 0; i < n; i++)
    if (!planes[lc[i].pass]) {
      kiln__say(msg, msgcap, "the multilayer EXR lacks the %s pass", kiln__pass_names[lc[i].pass]);
      return KILN_EINVAL;
    }
  for (int i = 0; i < n; i++)
    ch[i] = (kiln__exr_channel){lc[i].name, lc[i].uint, o.half && !lc[i].uint,
                                (const uint32_t *)planes[lc[i].pass] + lc[i].component,
                                per[lc[i].pass] / 4};
  kiln_image_info ii;
  kiln_image_get_info(img, &ii);
  int rc = kiln__encode_exr_channels(ii.width, ii.height, ch, n, o.compression, data, len);
  if (rc)
    kiln__say(msg, msgcap, "cannot encode the multilayer EXR: %s", kiln_strerror(rc));
  return rc;
}

/* A single-pass EXR with options other than the defaults (float, ZIP: those take
 * kiln__encode_exr, whose files stay as they always were). ids stay float, exact to 2^24. */
static int encode_exr_opts(const kiln__raster *r, bool ids, kiln__exr_opts o, void **data,
                           size_t *len) {
  static const char *const names[2][3] = {{"Y"}, {"B", "G", "R"}};
  kiln__exr_channel ch[3];
  int nc = r->channels == 3 ? 3 : 1;
  for (int c = 0; c < nc; c++)
    ch[c] = (kiln__exr_channel){names[nc == 3][c], false, o.half && !ids,
                                (const float *)r->data + (nc == 3 ? 2 - c : 0), (size_t)nc};
  return kiln__encode_exr_channels(r->width, r->height, ch, nc, o.compression, data, len);
}

static int encode_one(kiln_format f, float exposure, bool filmic, kiln__exr_opts o,
                      const kiln_image *img, void *const derived[KILN__NPASS], int pi, void **data,
                      size_t *len, double *conv_s, char *msg, size_t msgcap);

int kiln__encode_slot(kiln_format f, float exposure, bool filmic, kiln__exr_opts o,
                      unsigned passes, const kiln_image *img, void *const derived[KILN__NPASS],
                      int slot, void **data, size_t *len, double *conv_s, char *msg,
                      size_t msgcap) {
  if (slot == KILN__LAYERS)
    return kiln__encode_layers(img, derived, passes, o, data, len, msg, msgcap);
  return encode_one(f, exposure, filmic, o, img, derived, slot, data, len, conv_s, msg, msgcap);
}

int kiln__encode_pass(kiln_format f, float exposure, bool filmic, const kiln_image *img,
                      void *const derived[KILN__NPASS], int pi, void **data, size_t *len,
                      double *conv_s, char *msg, size_t msgcap) {
  kiln__exr_opts o = {false, TINYEXR_COMPRESSIONTYPE_ZIP};
  return encode_one(f, exposure, filmic, o, img, derived, pi, data, len, conv_s, msg, msgcap);
}

/* ---- encoding ------------------------------------------------------------------------------ */

static uint16_t to_u16(float v, float scale) {
  float x = v * scale;
  if (!(x > 0)) return 0;
  if (x >= 65535.0f) return 65535;
  return (uint16_t)lrintf(x);
}

/* uv as 3 floats a pixel: u, v, and 1 on a surface (0, 0, 0 for background). */
static float *uv_plane(const kiln_image_info *ii, size_t n) {
  float *o = malloc(n * 3 * sizeof *o);
  if (!o) return NULL;
  for (size_t i = 0; i < n; i++) {
    bool hit = ii->object_id[i] != 0;
    o[3 * i] = hit ? ii->uv[2 * i] : 0, o[3 * i + 1] = hit ? ii->uv[2 * i + 1] : 0;
    o[3 * i + 2] = hit ? 1.0f : 0.0f;
  }
  return o;
}

/* A flow plane (u, v, valid) as KITTI's 16-bit PNG: u * 64 + 2^15, v * 64 + 2^15, valid. */
static uint16_t *kitti_plane(const float *fl, size_t n) {
  uint16_t *o = malloc(n * 3 * sizeof *o);
  if (!o) return NULL;
  for (size_t i = 0; i < n; i++) {
    bool ok = fl[3 * i + 2] > 0;
    for (int k = 0; k < 2; k++) {
      float x = ok ? fl[3 * i + k] * 64.0f + 32768.0f : 32768.0f;
      o[3 * i + k] = x <= 0 ? 0 : x >= 65535.0f ? 65535 : (uint16_t)lrintf(x);
    }
    o[3 * i + 2] = ok;
  }
  return o;
}

/* nocs (NaN for background) as 8- or 16-bit RGB, background 0. */
static void *nocs_plane(const float *src, size_t n, bool wide) {
  void *o = malloc(n * 3 * (wide ? 2 : 1));
  if (!o) return NULL;
  float scale = wide ? 65535.0f : 255.0f;
  for (size_t i = 0; i < 3 * n; i++) {
    float v = src[i] > 1 ? 1 : src[i]; /* NaN: to_u16 gives 0 */
    if (wide) ((uint16_t *)o)[i] = to_u16(v, scale);
    else ((uint8_t *)o)[i] = (uint8_t)to_u16(v, scale);
  }
  return o;
}

/* The derived pass pi (kiln__derive's 3-float plane p; not category, which is encoded as the
 * ids are) as a raster r for the format chosen. */
static int derived_raster(int pi, const void *p, size_t n, bool flt, bool wide, kiln__raster *r,
                          void **tmp) {
  r->channels = 3;
  if (flt || kiln__pass_float_only(pi)) {
    r->data = p;
    return 0;
  }
  if (pi == KILN__PI_NOCS) {
    if (!(*tmp = nocs_plane(p, n, wide))) return KILN_ENOMEM;
    r->type = wide ? KILN__PIX_U16 : KILN__PIX_U8, r->data = *tmp;
    return 0;
  }
  if (!(*tmp = kitti_plane(p, n))) return KILN_ENOMEM;
  r->type = KILN__PIX_U16, r->data = *tmp;
  return 0;
}

static int encode_one(kiln_format f, float exposure, bool filmic, kiln__exr_opts o,
                      const kiln_image *img, void *const derived[KILN__NPASS], int pi, void **data,
                      size_t *len, double *conv_s, char *msg, size_t msgcap) {
  kiln_image_info ii;
  kiln_image_get_info(img, &ii);
  int32_t w = ii.width, h = ii.height;
  size_t n = (size_t)w * (size_t)h;
  bool exr = f == KILN_FORMAT_EXR || (f == KILN_FORMAT_HDR && pi != 0) ||
             (f != KILN_FORMAT_NPY && kiln__pass_float_only(pi));
  bool npy = f == KILN_FORMAT_NPY;
  bool wide = f == KILN_FORMAT_PNG16;
  double t0 = kiln__now();
  void *tmp = NULL;
  kiln__raster r = {w, h, 1, KILN__PIX_F32, NULL, 0};
  int rc = 0;
  switch (pi) {
    case 0: /* colour */
      r.channels = 3;
      if (exr || npy || f == KILN_FORMAT_HDR) {
        r.data = ii.color;
      } else {
        r.type = wide ? KILN__PIX_U16 : KILN__PIX_U8;
        tmp = malloc(n * 3 * (wide ? 2 : 1));
        if (!tmp) return KILN_ENOMEM;
        kiln__linear_to_srgb(ii.color, n, exposure, filmic, r.type, tmp);
        r.data = tmp;
      }
      break;
    case 1: /* depth */
      if (exr || npy) {
        r.data = ii.depth;
      } else {
        uint16_t *d = malloc(n * 2);
        if (!d) return KILN_ENOMEM;
        const float *z = ii.depth;
        for (size_t i = 0; i < n; i++) d[i] = to_u16(z[i], 1000.0f);
        r.type = KILN__PIX_U16, r.data = tmp = d;
      }
      break;
    case 2:   /* normal: (n + 1) / 2 */
    case 3: { /* albedo: linear */
      const float *src = pi == 2 ? ii.normal : ii.albedo;
      r.channels = 3;
      if (exr || npy) {
        r.data = src;
      } else {
        float scale = wide ? 65535.0f : 255.0f;
        tmp = malloc(n * 3 * (wide ? 2 : 1));
        if (!tmp) return KILN_ENOMEM;
        for (size_t i = 0; i < 3 * n; i++) {
          float v = pi == 2 ? (src[i] + 1.0f) * 0.5f : src[i];
          v = v > 1 ? 1 : v;
          if (wide) ((uint16_t *)tmp)[i] = to_u16(v, scale);
          else ((uint8_t *)tmp)[i] = (uint8_t)to_u16(v, scale);
        }
        r.type = wide ? KILN__PIX_U16 : KILN__PIX_U8, r.data = tmp;
      }
      break;
    }
    case KILN__PI_UV:
      r.channels = 3;
      if (!(tmp = uv_plane(&ii, n))) return KILN_ENOMEM;
      r.data = tmp;
      break;
    case KILN__PI_POSITION:
    case KILN__PI_OBJCOORD:
    case KILN__PI_NOCS:
    case KILN__PI_FLOW_FWD:
    case KILN__PI_MOTION_FWD:
    case KILN__PI_MOTION_BWD:
    case KILN__PI_FLOW_BWD:
      if (!derived || !derived[pi]) return KILN_EINVAL;
      if ((rc = derived_raster(pi, derived[pi], n, exr || npy, wide, &r, &tmp))) return rc;
      break;
    default: { /* ids: object, instance, category */
      if (pi == KILN__PI_CATEGORY && (!derived || !derived[pi])) return KILN_EINVAL;
      const uint32_t *ids = pi == 4 ? ii.object_id : pi == 5 ? ii.instance_id : derived[pi];
      if (npy) {
        r.type = KILN__PIX_U32, r.data = ids;
      } else if (exr) {
        float *fl = malloc(n * sizeof *fl);
        if (!fl) return KILN_ENOMEM;
        for (size_t i = 0; i < n; i++) fl[i] = (float)ids[i];
        r.data = tmp = fl;
      } else {
        uint16_t *d = malloc(n * 2);
        if (!d) return KILN_ENOMEM;
        for (size_t i = 0; i < n && !rc; i++) {
          if (ids[i] > 65535) {
            kiln__say(msg, msgcap, "%s %u does not fit a 16-bit PNG (use --format exr or npy)",
                      kiln__pass_names[pi], ids[i]);
            rc = KILN_EUNSUPPORTED;
          }
          d[i] = (uint16_t)ids[i];
        }
        r.type = KILN__PIX_U16, r.data = tmp = d;
      }
    }
  }
  *conv_s += kiln__now() - t0;
  if (!rc) {
    if (npy) rc = kiln__encode_npy(&r, data, len);
    else if (exr && (o.half || o.compression != TINYEXR_COMPRESSIONTYPE_ZIP))
      rc = encode_exr_opts(&r, pi == 4 || pi == 5, o, data, len);
    else if (exr) rc = kiln__encode_exr(&r, data, len);
    else if (pi == 0 && f == KILN_FORMAT_HDR) rc = kiln__encode_hdr(&r, data, len);
    else if (pi == 0 && f == KILN_FORMAT_JPEG) rc = kiln__encode_jpeg(&r, 95, data, len);
    else rc = kiln__encode_png(&r, PNG_LEVEL, data, len);
    if (rc)
      kiln__say(msg, msgcap, "cannot encode the %s pass as %s: %s", kiln__pass_names[pi],
                npy   ? "npy"
                : exr ? "exr"
                      : kiln_format_name(f),
                kiln_strerror(rc));
  }
  free(tmp);
  return rc;
}
