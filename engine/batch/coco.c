/* coco.c: the COCO writer (kiln render --writer coco): one detection and instance-segmentation
 * JSON a run, coco.json (coco_<shard>.json for shard <shard> of a sharded run).
 *
 * Each frame becomes one image (id = the frame's index in the job + 1, so ids are unique across
 * the shards of a job without renumbering) and one annotation per instance visible in it whose
 * object has a category: segmentation as compressed RLE exactly as pycocotools' encode writes it
 * (runs over the pixels in column-major order, starting with background; rleToString's form),
 * area the number of visible pixels, bbox [x, y, w, h] of those pixels. A scene that declares no
 * categories at all gets one category per object (id = the object's id, name = its name), so
 * that every visible instance is annotated. The records go to a spool (dataset.c) as frames
 * finish; commit writes the file sorted by image id, annotation ids 1..N in (image id, then
 * instance id) order, in the one layout kiln merge writes too (tools/kiln/merge.c), so merged
 * shards equal one run's file byte for byte:
 *
 *   {"info":{...},"licenses":[],"images":[
 *   {"id":1,...},
 *   ...
 *   ],"annotations":[
 *   {"id":1,"image_id":1,...},
 *   ...
 *   ],"categories":[
 *   {"id":1,"name":"mug","supercategory":"mug"},
 *   ...
 *   ]}
 *
 * one element a line, each as cJSON_PrintUnformatted prints it. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch_internal.h"
#include "image_internal.h"
#include "kiln/version.h"

struct kiln__coco {
  char path[KILN__PATH_CAP];
  bool durable;
  kiln__spool *spool;
  char *info, *categories; /* printed at open: one line, and the lines of the array */
  bool by_object;          /* the scene has no categories: one per object */
};

/* ---- compressed RLE --------------------------------------------------------------------------- */

char *kiln__coco_rle_string(const uint32_t *counts, size_t n) {
  /* pycocotools' rleToString: each count, less the one two before it from the fourth on (i > 2,
   * as pycocotools has it), as 5-bit groups, low first, in characters 48 + (group | 0x20 when
   * more follow); a group's 0x10 bit is the sign of what is left. At most 7 characters a count. */
  char *s = malloc(n * 7 + 1);
  if (!s) return NULL;
  size_t p = 0;
  for (size_t i = 0; i < n; i++) {
    int64_t x = (int64_t)counts[i];
    if (i > 2) x -= (int64_t)counts[i - 2];
    for (bool more = true; more;) {
      int c = (int)((uint64_t)x & 0x1f);
      x = (x - c) / 32; /* an arithmetic shift by 5, written without shifting a negative */
      more = (c & 0x10) ? x != -1 : x != 0;
      if (more) c |= 0x20;
      s[p++] = (char)(c + 48);
    }
  }
  s[p] = 0;
  return s;
}

/* The runs of one instance over the pass in column-major order, and its visible box. */
typedef struct inst_runs {
  uint32_t *counts;
  size_t n, cap;
  uint64_t end; /* where its last foreground run ended */
  uint64_t px;
  int32_t x0, y0, x1, y1;
} inst_runs;

static int push(inst_runs *r, uint64_t v) {
  if (r->n == r->cap) {
    size_t cap = r->cap ? 2 * r->cap : 16;
    uint32_t *c = realloc(r->counts, cap * sizeof *c);
    if (!c) return KILN_ENOMEM;
    r->counts = c, r->cap = cap;
  }
  r->counts[r->n++] = (uint32_t)v;
  return 0;
}

/* A foreground run [start, start + len) of instance r in column x, rows y .. y + len - 1. */
static int add_run(inst_runs *r, uint64_t start, uint64_t len, int32_t x, int32_t y) {
  if (r->px == 0) r->x0 = x, r->x1 = x + 1, r->y0 = y, r->y1 = y + (int32_t)len;
  if (x + 1 > r->x1) r->x1 = x + 1;
  if (y < r->y0) r->y0 = y;
  if (y + (int32_t)len > r->y1) r->y1 = y + (int32_t)len;
  r->px += len;
  int rc = push(r, start - r->end);
  if (!rc) rc = push(r, len);
  r->end = start + len;
  return rc;
}

/* Every instance's runs in one column-major walk of the instance pass (w x h, rows top first):
 * runs[id] for ids 1..nids (others are ignored). A run never crosses a column, so each of them
 * is one stretch of rows. */
static int scan_runs(const uint32_t *ids, int32_t w, int32_t h, inst_runs *runs, size_t nids) {
  for (int32_t x = 0; x < w; x++) {
    int32_t y = 0;
    while (y < h) {
      uint32_t v = ids[(size_t)y * (size_t)w + (size_t)x];
      int32_t y1 = y + 1;
      while (y1 < h && ids[(size_t)y1 * (size_t)w + (size_t)x] == v) y1++;
      if (v >= 1 && v <= nids) {
        uint64_t start = (uint64_t)x * (uint64_t)h + (uint64_t)y;
        inst_runs *r = &runs[v];
        if (r->px && r->end == start) { /* continues its run from the column before */
          r->counts[r->n - 1] += (uint32_t)(y1 - y);
          r->end += (uint64_t)(y1 - y);
          r->px += (uint64_t)(y1 - y);
          if (y < r->y0) r->y0 = y;
          if (y1 > r->y1) r->y1 = y1;
          if (x + 1 > r->x1) r->x1 = x + 1;
        } else if (add_run(r, start, (uint64_t)(y1 - y), x, y)) {
          return KILN_ENOMEM;
        }
      }
      y = y1;
    }
  }
  return 0;
}

/* ---- open --------------------------------------------------------------------------------- */

static int cmp_cat(const void *pa, const void *pb) {
  const cJSON *a = *(const cJSON *const *)pa, *b = *(const cJSON *const *)pb;
  double x = cJSON_GetObjectItemCaseSensitive(a, "id")->valuedouble,
         y = cJSON_GetObjectItemCaseSensitive(b, "id")->valuedouble;
  return x < y ? -1 : x > y;
}

static cJSON *category(uint32_t id, const char *name) {
  cJSON *o = cJSON_CreateObject();
  if (o && cJSON_AddNumberToObject(o, "id", id) && cJSON_AddStringToObject(o, "name", name) &&
      cJSON_AddStringToObject(o, "supercategory", name))
    return o;
  cJSON_Delete(o);
  return NULL;
}

/* The categories array's lines, sorted by id: the scene's declared categories and any category of
 * an object not among them, or one per object when the scene has none. */
static char *print_categories(const kiln__scene *s, bool by_object) {
  size_t cap = by_object ? s->nobjects : s->ncategories + s->nobjects;
  cJSON **c = calloc(cap ? cap : 1, sizeof *c);
  if (!c) return NULL;
  size_t n = 0;
  bool ok = true;
  if (by_object) {
    for (size_t i = 0; i < s->nobjects && ok; i++)
      ok = (c[n++] = category((uint32_t)i + 1, s->object_names[i])) != NULL;
  } else {
    for (size_t i = 0; i < s->ncategories && ok; i++)
      ok = (c[n++] = category(s->category_ids[i], s->category_names[i])) != NULL;
    for (size_t i = 0; ok && s->object_category_id && i < s->nobjects; i++) {
      uint32_t id = s->object_category_id[i];
      bool seen = id == 0 || !s->object_category || !s->object_category[i];
      for (size_t k = 0; k < n && !seen; k++)
        seen = cJSON_GetObjectItemCaseSensitive(c[k], "id")->valuedouble == id;
      if (!seen) ok = (c[n++] = category(id, s->object_category[i])) != NULL;
    }
  }
  if (ok) qsort(c, n, sizeof *c, cmp_cat);
  char *out = NULL;
  size_t len = 0;
  FILE *f = ok ? open_memstream(&out, &len) : NULL;
  for (size_t i = 0; i < n && f; i++) {
    char *t = cJSON_PrintUnformatted(c[i]);
    if (!t || fprintf(f, "\n%s%s", t, i + 1 < n ? "," : "") < 0) ok = false;
    free(t);
  }
  if (f && fclose(f) != 0) ok = false;
  for (size_t i = 0; i < n; i++) cJSON_Delete(c[i]);
  free(c);
  if (!ok) free(out), out = NULL;
  return out;
}

static char *print_info(void) {
  cJSON *o = cJSON_CreateObject();
  char *t = NULL;
  if (o && cJSON_AddStringToObject(o, "description", "rendered by kiln") &&
      cJSON_AddStringToObject(o, "version", KILN_VERSION_STRING) &&
      cJSON_AddStringToObject(o, "contributor", "kiln") && cJSON_AddStringToObject(o, "url", ""))
    t = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return t;
}

int kiln__coco_open(const char *out_dir, const char *shard_tag, const struct kiln__scene *s,
                    bool durable, kiln__coco **out, char *msg, size_t msgcap) {
  *out = NULL;
  kiln__coco *c = calloc(1, sizeof *c);
  if (!c) {
    kiln__say(msg, msgcap, "out of memory");
    return KILN_ENOMEM;
  }
  c->durable = durable;
  c->by_object = s->ncategories == 0 && !s->object_category_id;
  bool tagged = shard_tag && shard_tag[0];
  int rc = 0;
  if (snprintf(c->path, sizeof c->path, "%s/coco%s%s.json", out_dir, tagged ? "_" : "",
               tagged ? shard_tag : "") >= (int)sizeof c->path) {
    kiln__say(msg, msgcap, "output path too long: %s", out_dir);
    rc = KILN_EINVAL;
  }
  if (!rc && (!(c->info = print_info()) || !(c->categories = print_categories(s, c->by_object)))) {
    kiln__say(msg, msgcap, "out of memory");
    rc = KILN_ENOMEM;
  }
  if (!rc) rc = kiln__spool_open(out_dir, &c->spool, msg, msgcap);
  if (rc) {
    free(c->info);
    free(c->categories);
    free(c);
    return rc;
  }
  *out = c;
  return 0;
}

/* ---- a frame -------------------------------------------------------------------------------- */

static char *print_image(const kiln_job_frame *fr, const char *color_file, int32_t w, int32_t h) {
  cJSON *o = cJSON_CreateObject();
  char *t = NULL;
  if (o && cJSON_AddNumberToObject(o, "id", (double)fr->index + 1) &&
      cJSON_AddStringToObject(o, "file_name", color_file) &&
      cJSON_AddNumberToObject(o, "width", w) && cJSON_AddNumberToObject(o, "height", h) &&
      cJSON_AddNumberToObject(o, "frame", (double)fr->frame))
    t = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return t;
}

/* The annotation of instance gi (its runs r) without its id, which commit gives it. */
static char *print_annotation(const kiln_job_frame *fr, const kiln__gt_instance *gi,
                              uint32_t category_id, const inst_runs *r, int32_t w, int32_t h) {
  char *counts = kiln__coco_rle_string(r->counts, r->n);
  cJSON *o = cJSON_CreateObject(), *seg = cJSON_CreateObject();
  const double sz[2] = {h, w}, box[4] = {r->x0, r->y0, r->x1 - r->x0, r->y1 - r->y0};
  char *t = NULL;
  bool ok = counts && o && seg && cJSON_AddNumberToObject(o, "image_id", (double)fr->index + 1) &&
            cJSON_AddNumberToObject(o, "category_id", category_id) &&
            cJSON_AddItemToObject(seg, "size", cJSON_CreateDoubleArray(sz, 2)) &&
            cJSON_AddStringToObject(seg, "counts", counts) &&
            cJSON_AddItemToObject(o, "segmentation", seg);
  if (ok) seg = NULL; /* o owns it */
  ok = ok && cJSON_AddNumberToObject(o, "area", (double)r->px) &&
       cJSON_AddItemToObject(o, "bbox", cJSON_CreateDoubleArray(box, 4)) &&
       cJSON_AddNumberToObject(o, "iscrowd", 0) &&
       cJSON_AddNumberToObject(o, "instance_id", gi->instance_id) &&
       cJSON_AddNumberToObject(o, "object_id", gi->object_id);
  if (ok) t = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  cJSON_Delete(seg);
  free(counts);
  return t;
}

/* The annotations of every visible instance with a category, one a line, into a memstream. */
static int annotations(const kiln__coco *c, const kiln_job_frame *fr, const kiln__frame_gt *gt,
                       const inst_runs *runs, size_t nids, char **text, size_t *len) {
  FILE *f = open_memstream(text, len);
  if (!f) return KILN_ENOMEM;
  bool ok = true;
  size_t lines = 0;
  for (size_t id = 1; id <= nids && ok; id++) {
    const inst_runs *r = &runs[id];
    if (!r->px) continue;
    /* gt->inst is by instance id (inst[id - 1]); looked for only if not */
    const kiln__gt_instance *gi =
        id <= gt->n && gt->inst[id - 1].instance_id == id ? &gt->inst[id - 1] : NULL;
    for (size_t k = 0; k < gt->n && !gi; k++)
      if (gt->inst[k].instance_id == id) gi = &gt->inst[k];
    uint32_t cat = !gi ? 0 : c->by_object ? gi->object_id : gi->category_id;
    if (!cat) continue; /* no category: not annotated */
    char *t = print_annotation(fr, gi, cat, r, gt->width, gt->height);
    ok = t && fprintf(f, "%s%s", lines++ ? "\n" : "", t) >= 0;
    free(t);
  }
  if (fclose(f) != 0) ok = false;
  if (!ok) {
    free(*text);
    *text = NULL;
  }
  return ok ? 0 : KILN_ENOMEM;
}

int kiln__coco_frame(kiln__coco *c, const kiln_job_frame *fr, const char *color_file,
                     const kiln__frame_gt *gt, const kiln_image *img, char *msg, size_t msgcap) {
  kiln_image_info ii;
  kiln_image_get_info(img, &ii);
  if (ii.width != gt->width || ii.height != gt->height || !ii.instance_id) {
    kiln__say(msg, msgcap, "coco: the frame's image (%dx%d) does not match its annotations (%dx%d)",
              ii.width, ii.height, gt->width, gt->height);
    return KILN_EINVAL;
  }
  size_t nids = gt->n;
  inst_runs *runs = calloc(nids + 1, sizeof *runs);
  char *image = print_image(fr, color_file, gt->width, gt->height), *anns = NULL;
  size_t alen = 0;
  int rc = runs && image ? scan_runs(ii.instance_id, ii.width, ii.height, runs, nids) : KILN_ENOMEM;
  for (size_t id = 1; !rc && id <= nids; id++) { /* the background after the last run */
    uint64_t all = (uint64_t)ii.width * (uint64_t)ii.height;
    if (runs[id].px && runs[id].end < all && push(&runs[id], all - runs[id].end)) rc = KILN_ENOMEM;
  }
  if (!rc) rc = annotations(c, fr, gt, runs, nids, &anns, &alen);
  if (!rc) {
    const char *parts[2] = {image, anns};
    const size_t lens[2] = {strlen(image), alen};
    rc = kiln__spool_add(c->spool, fr->index, parts, lens, 2);
    if (rc) kiln__say(msg, msgcap, "coco: cannot keep the frame's record: %s", kiln_strerror(rc));
  } else {
    kiln__say(msg, msgcap, "coco: out of memory");
  }
  for (size_t id = 0; runs && id <= nids; id++) free(runs[id].counts);
  free(runs);
  free(image);
  free(anns);
  return rc;
}

/* ---- commit ------------------------------------------------------------------------------- */

typedef struct writing {
  FILE *f;
  uint64_t n;   /* elements written so far */
  uint64_t ann; /* the last annotation id given */
} writing;

static int put_image(void *arg, uint64_t key, const char *text, size_t len) {
  (void)key;
  writing *w = arg;
  return fprintf(w->f, "%s%.*s", w->n++ ? ",\n" : "\n", (int)len, text) < 0 ? KILN_EIO : 0;
}

/* Each line of an image's annotations, with the next id put first. */
static int put_annotations(void *arg, uint64_t key, const char *text, size_t len) {
  (void)key;
  writing *w = arg;
  for (const char *p = text, *end = text + len; p < end;) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *e = nl ? nl : end;
    if (e - p > 2 && fprintf(w->f, "%s{\"id\":%llu,%.*s", w->n++ ? ",\n" : "\n",
                             (unsigned long long)++w->ann, (int)(e - p - 1), p + 1) < 0)
      return KILN_EIO;
    p = e + 1;
  }
  return 0;
}

int kiln__coco_commit(kiln__coco *c, bool keep, char *msg, size_t msgcap) {
  if (!c) return 0;
  int rc = 0;
  if (keep) {
    kiln__outfile o;
    rc = kiln__outfile_open(&o, c->path, msg, msgcap);
    writing w = {o.f, 0, 0};
    if (!rc && fprintf(o.f, "{\"info\":%s,\"licenses\":[],\"images\":[", c->info) < 0) rc = KILN_EIO;
    if (!rc) rc = kiln__spool_each(c->spool, 0, put_image, &w);
    w.n = 0;
    if (!rc && fputs("\n],\"annotations\":[", o.f) < 0) rc = KILN_EIO;
    if (!rc) rc = kiln__spool_each(c->spool, 1, put_annotations, &w);
    if (!rc && fprintf(o.f, "\n],\"categories\":[%s\n]}\n", c->categories) < 0) rc = KILN_EIO;
    if (rc && o.f) kiln__say(msg, msgcap, "cannot write %s: %s", c->path, kiln_strerror(rc));
    int crc = kiln__outfile_commit(&o, c->durable, rc == 0, rc ? NULL : msg, msgcap);
    if (!rc) rc = crc;
  }
  kiln__spool_free(c->spool);
  free(c->info);
  free(c->categories);
  free(c);
  return rc;
}
