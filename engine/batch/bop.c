/* bop.c: the BOP writer (kiln render --writer bop): one BOP scene a run, in the layout of the
 * BOP toolkit (github.com/thodan/bop_toolkit, docs/bop_datasets_format.md):
 *
 *   OUT/bop/SSSSSS/             SSSSSS: the scene id, the shard number (0 when not sharded)
 *     scene_camera.json         {"IM": {"cam_K", "cam_R_w2c", "cam_t_w2c", "depth_scale"}, ...}
 *     scene_gt.json             {"IM": [{"cam_R_m2c", "cam_t_m2c", "obj_id"}, ...], ...}
 *     scene_gt_info.json        {"IM": [{"bbox_obj", "bbox_visib", "px_count_all",
 *                                        "px_count_valid", "px_count_visib", "visib_fract"}]}
 *     rgb/IIIIII.png            the colour file, hard-linked (.jpg for jpg; another format:
 *                               encoded here as an 8-bit sRGB PNG)
 *     depth/IIIIII.png          16-bit, in units of depth_scale millimetres, 0: none
 *     mask/IIIIII_GGGGGG.png    the unoccluded silhouette of ground truth GG, 8-bit 0/255
 *     mask_visib/IIIIII_GGGGGG.png  its visible pixels (the instance pass)
 *
 * IM (IIIIII) is the frame's index in the job, GG its place in the image's list: every instance
 * whose unoccluded silhouette covers a pixel, by instance id. obj_id is kiln's object id (1-based,
 * in scene order), which names the object's 3D model. Poses are OpenCV's (x right, y down, z
 * forward), rotations row-major, translations in millimetres: kiln's world unit is taken as one
 * metre. PNGs are written atomically as each frame finishes; the JSON files at commit, sorted by
 * image id, from the spool (dataset.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batch_internal.h"
#include "image_internal.h"

/* Depth in PNG: 1 mm a unit (16 bits: up to 65.535 m), as kiln's own depth PNGs. */
#define DEPTH_SCALE 1.0
#define MM_PER_UNIT 1000.0

enum { NPARTS = 3 }; /* a frame's records: scene_camera, scene_gt, scene_gt_info */
static const char *const json_names[NPARTS] = {"scene_camera.json", "scene_gt.json",
                                               "scene_gt_info.json"};

struct kiln__bop {
  char out_dir[KILN__PATH_CAP], dir[KILN__PATH_CAP]; /* dir: OUT/bop/SSSSSS */
  bool durable;
  float exposure;
  bool filmic;
  kiln__spool *spool;
};

int kiln__bop_open(const char *out_dir, const char *shard_tag, const struct kiln__scene *s,
                   bool durable, kiln__bop **out, char *msg, size_t msgcap) {
  *out = NULL;
  char *end = NULL;
  unsigned long scene = shard_tag && shard_tag[0] ? strtoul(shard_tag, &end, 10) : 0;
  if (end && (*end || scene > 999999)) {
    kiln__say(msg, msgcap, "bop: the scene id must be a shard number, not \"%s\"", shard_tag);
    return KILN_EINVAL;
  }
  kiln__bop *b = calloc(1, sizeof *b);
  if (!b) {
    kiln__say(msg, msgcap, "out of memory");
    return KILN_ENOMEM;
  }
  b->durable = durable;
  b->exposure = s->settings.exposure;
  b->filmic = s->settings.tonemap == KILN__TONEMAP_FILMIC;
  int rc = 0;
  if (snprintf(b->out_dir, sizeof b->out_dir, "%s", out_dir) >= (int)sizeof b->out_dir ||
      snprintf(b->dir, sizeof b->dir, "%s/bop/%06lu", out_dir, scene) >= (int)sizeof b->dir - 64) {
    kiln__say(msg, msgcap, "output path too long: %s", out_dir);
    rc = KILN_EINVAL;
  }
  static const char *const subs[] = {"rgb", "depth", "mask", "mask_visib"};
  for (size_t i = 0; i < 4 && !rc; i++) {
    char p[KILN__PATH_CAP + 16];
    snprintf(p, sizeof p, "%s/%s", b->dir, subs[i]);
    int e = kiln__make_dirs(p, 0777);
    if (e) {
      kiln__say(msg, msgcap, "cannot create %s: %s", p, strerror(e));
      rc = KILN_EIO;
    }
  }
  if (!rc) rc = kiln__spool_open(b->dir, &b->spool, msg, msgcap);
  if (rc) {
    free(b);
    return rc;
  }
  *out = b;
  return 0;
}

/* ---- JSON records ----------------------------------------------------------------------------- */

/* "[a, b, ...]" of n numbers, as Python's json.dumps writes a list. */
static void put_array(FILE *f, const double *v, size_t n) {
  char num[40];
  fputc('[', f);
  for (size_t i = 0; i < n; i++) {
    kiln__json_number(num, sizeof num, v[i]);
    fprintf(f, "%s%s", i ? ", " : "", num);
  }
  fputc(']', f);
}

static void put_box(FILE *f, const int32_t box[4], uint64_t px) {
  /* BOP's [x, y, width, height]; [-1, -1, -1, -1] for no pixel */
  double v[4] = {-1, -1, -1, -1};
  if (px) v[0] = box[0], v[1] = box[1], v[2] = box[2] - box[0], v[3] = box[3] - box[1];
  put_array(f, v, 4);
}

/* The world-to-camera transform (OpenCV axes) of the frame: the inverse of c2w_cv. */
static void world_to_camera(const double c2w[16], double w2c[16]) {
  memset(w2c, 0, 16 * sizeof *w2c);
  for (int r = 0; r < 3; r++) {
    for (int c = 0; c < 3; c++) w2c[4 * r + c] = c2w[4 * c + r];
    for (int k = 0; k < 3; k++) w2c[4 * r + 3] -= c2w[4 * k + r] * c2w[4 * k + 3];
  }
  w2c[15] = 1;
}

static void mul4(const double a[16], const double b[16], double o[16]) {
  for (int r = 0; r < 4; r++)
    for (int c = 0; c < 4; c++) {
      double s = 0;
      for (int k = 0; k < 4; k++) s += a[4 * r + k] * b[4 * k + c];
      o[4 * r + c] = s;
    }
}

static void put_camera(FILE *f, const kiln__frame_gt *gt, const double w2c[16]) {
  double R[9], t[3];
  for (int r = 0; r < 3; r++) {
    for (int c = 0; c < 3; c++) R[3 * r + c] = w2c[4 * r + c];
    t[r] = w2c[4 * r + 3] * MM_PER_UNIT;
  }
  char num[40];
  fputs("{\"cam_K\": ", f);
  put_array(f, gt->K, 9);
  fputs(", \"cam_R_w2c\": ", f);
  put_array(f, R, 9);
  fputs(", \"cam_t_w2c\": ", f);
  put_array(f, t, 3);
  kiln__json_number(num, sizeof num, DEPTH_SCALE);
  fprintf(f, ", \"depth_scale\": %s}", num);
}

static void put_gt(FILE *f, const kiln__gt_instance *gi, const double w2c[16], bool first) {
  double m2c[16];
  mul4(w2c, gi->xform, m2c);
  double R[9], t[3];
  for (int r = 0; r < 3; r++) {
    for (int c = 0; c < 3; c++) R[3 * r + c] = m2c[4 * r + c];
    t[r] = m2c[4 * r + 3] * MM_PER_UNIT;
  }
  fputs(first ? "{\"cam_R_m2c\": " : ", {\"cam_R_m2c\": ", f);
  put_array(f, R, 9);
  fputs(", \"cam_t_m2c\": ", f);
  put_array(f, t, 3);
  fprintf(f, ", \"obj_id\": %u}", gi->object_id);
}

static void put_info(FILE *f, const kiln__gt_instance *gi, uint64_t valid, bool first) {
  char num[40];
  fputs(first ? "{\"bbox_obj\": " : ", {\"bbox_obj\": ", f);
  put_box(f, gi->box_all, gi->px_all);
  fputs(", \"bbox_visib\": ", f);
  put_box(f, gi->box_visib, gi->px_visib);
  kiln__json_number(num, sizeof num, gi->visib_fract);
  fprintf(f,
          ", \"px_count_all\": %llu, \"px_count_valid\": %llu, \"px_count_visib\": %llu, "
          "\"visib_fract\": %s}",
          (unsigned long long)gi->px_all, (unsigned long long)valid,
          (unsigned long long)gi->px_visib, num);
}

/* ---- PNG files -------------------------------------------------------------------------------- */

static int write_png(const kiln__bop *b, const char *path, const kiln__raster *r, char *msg,
                     size_t msgcap) {
  void *png = NULL;
  size_t len = 0;
  int rc = kiln__encode_png(r, 1, &png, &len);
  if (rc) kiln__say(msg, msgcap, "bop: cannot encode %s: %s", path, kiln_strerror(rc));
  else rc = kiln__write_atomic(path, png, len, b->durable, msg, msgcap);
  free(png);
  return rc;
}

/* depth/IM.png from the depth pass; the 16-bit values into d (n pixels) */
static int write_depth(const kiln__bop *b, const char *im, const kiln_image_info *ii,
                       uint16_t *d, char *msg, size_t msgcap) {
  size_t n = (size_t)ii->width * (size_t)ii->height;
  for (size_t i = 0; i < n; i++) {
    double v = (double)ii->depth[i] * MM_PER_UNIT / DEPTH_SCALE;
    /* BOP reads 0 as no depth: what a PNG cannot hold is none, never a wrong distance */
    d[i] = v > 0 && v < 65535.5 ? (uint16_t)lround(v) : 0;
  }
  char path[KILN__PATH_CAP + 64];
  snprintf(path, sizeof path, "%s/depth/%s.png", b->dir, im);
  kiln__raster r = {ii->width, ii->height, 1, KILN__PIX_U16, d, 0};
  return write_png(b, path, &r, msg, msgcap);
}

/* mask_visib/ and mask/ of ground truth gt_id (instance gi); *valid: its silhouette's pixels with
 * a depth. m is a scratch plane of the image's size. */
static int write_masks(const kiln__bop *b, const char *im, unsigned gt_id,
                       const kiln__gt_instance *gi, const kiln_image_info *ii, const uint16_t *d,
                       uint8_t *m, uint64_t *valid, char *msg, size_t msgcap) {
  size_t n = (size_t)ii->width * (size_t)ii->height;
  char path[KILN__PATH_CAP + 64];
  kiln__raster r = {ii->width, ii->height, 1, KILN__PIX_U8, m, 0};
  for (size_t i = 0; i < n; i++) m[i] = ii->instance_id[i] == gi->instance_id ? 255 : 0;
  snprintf(path, sizeof path, "%s/mask_visib/%s_%06u.png", b->dir, im, gt_id);
  int rc = write_png(b, path, &r, msg, msgcap);
  if (rc) return rc;
  memset(m, 0, n);
  int32_t bw = gi->box_all[2] - gi->box_all[0];
  *valid = 0;
  for (int32_t y = gi->box_all[1]; y < gi->box_all[3]; y++)
    for (int32_t x = gi->box_all[0]; x < gi->box_all[2]; x++) {
      if (x < 0 || y < 0 || x >= ii->width || y >= ii->height) continue;
      size_t i = (size_t)y * (size_t)ii->width + (size_t)x;
      if (!gi->mask_all[(size_t)(y - gi->box_all[1]) * (size_t)bw + (size_t)(x - gi->box_all[0])])
        continue;
      m[i] = 255;
      if (d[i]) (*valid)++;
    }
  snprintf(path, sizeof path, "%s/mask/%s_%06u.png", b->dir, im, gt_id);
  return write_png(b, path, &r, msg, msgcap);
}

/* rgb/IM.png (.jpg): a hard link to the colour file, put in place atomically (a link under a
 * temporary name, renamed); a copy where links cannot be made (another file system). */
static int link_color(const kiln__bop *b, const char *src, const char *dst, char *msg,
                      size_t msgcap) {
  static _Atomic unsigned long counter;
  char tmp[KILN__PATH_CAP + 128], host[40];
  kiln__tmp_host(host, sizeof host);
  const char *slash = strrchr(dst, '/');
  snprintf(tmp, sizeof tmp, "%.*s/.%s.tmp-%s-%ld-l%lu", (int)(slash - dst), dst, slash + 1, host,
           (long)getpid(), atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed));
  if (link(src, tmp) == 0) {
    if (rename(tmp, dst) == 0) return 0;
    int e = errno;
    unlink(tmp);
    kiln__say(msg, msgcap, "bop: cannot write %s: %s", dst, strerror(e));
    return KILN_EIO;
  }
  char *data = NULL;
  size_t len = 0;
  int rc = kiln__read_file(src, &data, &len, msg, msgcap);
  if (!rc) rc = kiln__write_atomic(dst, data, len, b->durable, msg, msgcap);
  free(data);
  return rc;
}

static int write_rgb(const kiln__bop *b, const char *im, const char *color_file,
                     const kiln_image_info *ii, char *msg, size_t msgcap) {
  const char *dot = strrchr(color_file, '.');
  bool png = dot && !strcmp(dot, ".png"), jpg = dot && !strcmp(dot, ".jpg");
  char dst[KILN__PATH_CAP + 64], src[2 * KILN__PATH_CAP];
  snprintf(src, sizeof src, "%s%s%s", color_file[0] == '/' ? "" : b->out_dir,
           color_file[0] == '/' ? "" : "/", color_file);
  struct stat st;
  if ((png || jpg) && stat(src, &st) == 0 && S_ISREG(st.st_mode)) {
    snprintf(dst, sizeof dst, "%s/rgb/%s.%s", b->dir, im, jpg ? "jpg" : "png");
    return link_color(b, src, dst, msg, msgcap);
  }
  /* exr, hdr, npy, a multilayer file, a tar member: the colour as the png format writes it */
  snprintf(dst, sizeof dst, "%s/rgb/%s.png", b->dir, im);
  size_t n = (size_t)ii->width * (size_t)ii->height;
  uint8_t *rgb = malloc(n * 3);
  if (!rgb) {
    kiln__say(msg, msgcap, "bop: out of memory");
    return KILN_ENOMEM;
  }
  kiln__linear_to_srgb(ii->color, n, b->exposure, b->filmic, KILN__PIX_U8, rgb);
  kiln__raster r = {ii->width, ii->height, 3, KILN__PIX_U8, rgb, 0};
  int rc = write_png(b, dst, &r, msg, msgcap);
  free(rgb);
  return rc;
}

/* ---- a frame -------------------------------------------------------------------------------- */

/* The frame's files, and its three records into the memstreams f[]. */
static int frame_files(kiln__bop *b, const kiln_job_frame *fr, const char *color_file,
                       const kiln__frame_gt *gt, const kiln_image_info *ii, FILE *const f[NPARTS],
                       char *msg, size_t msgcap) {
  char im[32];
  snprintf(im, sizeof im, "%06llu", (unsigned long long)fr->index);
  size_t n = (size_t)ii->width * (size_t)ii->height;
  uint16_t *d = malloc(n * sizeof *d);
  uint8_t *m = malloc(n);
  int rc = d && m ? 0 : KILN_ENOMEM;
  if (rc) kiln__say(msg, msgcap, "bop: out of memory");
  if (!rc) rc = write_depth(b, im, ii, d, msg, msgcap);
  if (!rc) rc = write_rgb(b, im, color_file, ii, msg, msgcap);
  double w2c[16];
  world_to_camera(gt->c2w_cv, w2c);
  put_camera(f[0], gt, w2c);
  fputc('[', f[1]);
  fputc('[', f[2]);
  unsigned gt_id = 0;
  for (size_t k = 0; k < gt->n && !rc; k++) {
    const kiln__gt_instance *gi = &gt->inst[k];
    if (!gi->px_all) continue; /* out of view, or no geometry */
    if (!gi->mask_all) {
      kiln__say(msg, msgcap, "bop: instance %u has no unoccluded mask", gi->instance_id);
      rc = KILN_EINVAL;
      break;
    }
    uint64_t valid = 0;
    rc = write_masks(b, im, gt_id, gi, ii, d, m, &valid, msg, msgcap);
    put_gt(f[1], gi, w2c, gt_id == 0);
    put_info(f[2], gi, valid, gt_id == 0);
    gt_id++;
  }
  fputc(']', f[1]);
  fputc(']', f[2]);
  free(d);
  free(m);
  return rc;
}

int kiln__bop_frame(kiln__bop *b, const kiln_job_frame *fr, const char *color_file,
                    const kiln__frame_gt *gt, const kiln_image *img, char *msg, size_t msgcap) {
  kiln_image_info ii;
  kiln_image_get_info(img, &ii);
  if (ii.width != gt->width || ii.height != gt->height || !ii.instance_id || !ii.depth) {
    kiln__say(msg, msgcap, "bop: the frame's image (%dx%d) does not match its annotations (%dx%d)",
              ii.width, ii.height, gt->width, gt->height);
    return KILN_EINVAL;
  }
  char *text[NPARTS] = {0};
  size_t len[NPARTS] = {0};
  FILE *f[NPARTS] = {0};
  int rc = 0;
  for (int i = 0; i < NPARTS && !rc; i++)
    if (!(f[i] = open_memstream(&text[i], &len[i]))) rc = KILN_ENOMEM;
  if (!rc) rc = frame_files(b, fr, color_file, gt, &ii, f, msg, msgcap);
  else kiln__say(msg, msgcap, "bop: out of memory");
  for (int i = 0; i < NPARTS; i++)
    if (f[i] && fclose(f[i]) != 0 && !rc) {
      kiln__say(msg, msgcap, "bop: out of memory");
      rc = KILN_ENOMEM;
    }
  if (!rc) {
    const char *parts[NPARTS] = {text[0], text[1], text[2]};
    rc = kiln__spool_add(b->spool, fr->index, parts, len, NPARTS);
    if (rc) kiln__say(msg, msgcap, "bop: cannot keep the frame's record: %s", kiln_strerror(rc));
  }
  for (int i = 0; i < NPARTS; i++) free(text[i]);
  return rc;
}

/* ---- commit ------------------------------------------------------------------------------- */

typedef struct writing {
  FILE *f;
  uint64_t n;
} writing;

/* One image's record: "  \"IM\": RECORD", as the BOP toolkit's save_json writes it. */
static int put_record(void *arg, uint64_t key, const char *text, size_t len) {
  writing *w = arg;
  return fprintf(w->f, "%s  \"%llu\": %.*s", w->n++ ? ",\n" : "", (unsigned long long)key,
                 (int)len, text) < 0
             ? KILN_EIO
             : 0;
}

int kiln__bop_commit(kiln__bop *b, bool keep, char *msg, size_t msgcap) {
  if (!b) return 0;
  int rc = 0;
  for (int i = 0; i < NPARTS && keep && !rc; i++) {
    char path[KILN__PATH_CAP + 64];
    snprintf(path, sizeof path, "%s/%s", b->dir, json_names[i]);
    kiln__outfile o;
    if ((rc = kiln__outfile_open(&o, path, msg, msgcap))) break;
    writing w = {o.f, 0};
    if (fputs("{\n", o.f) < 0) rc = KILN_EIO;
    if (!rc) rc = kiln__spool_each(b->spool, (size_t)i, put_record, &w);
    if (!rc && fputs(w.n ? "\n}\n" : "}\n", o.f) < 0) rc = KILN_EIO;
    if (rc) kiln__say(msg, msgcap, "cannot write %s: %s", path, kiln_strerror(rc));
    int crc = kiln__outfile_commit(&o, b->durable, rc == 0, rc ? NULL : msg, msgcap);
    if (!rc) rc = crc;
  }
  kiln__spool_free(b->spool);
  free(b);
  return rc;
}
