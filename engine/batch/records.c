/* records.c: annotations as JSON (docs/DATASETS.md): the fields a frame's ground truth adds to its
 * manifest line, and ids.json, the run's table of object and instance ids, names and categories.
 *
 * Every matrix is written row-major as nested arrays (rows); image points follow K (OpenCV: x
 * right, y down, pixel (i, j)'s centre at (i, j)); 2D boxes are COCO-like [x, y, w, h] in pixel
 * edges (pixel i spans [i, i + 1), so a box of the pixels i0..i1 is [i0, j0, i1 - i0 + 1, ...]).
 * A number that is not finite (a point on the camera plane) is written as null. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch_internal.h"

/* rows x cols of m (row-major) as an array of rows; NULL on ENOMEM. */
static cJSON *matrix(const double *m, int rows, int cols) {
  cJSON *a = cJSON_CreateArray();
  for (int i = 0; a && i < rows; i++) {
    cJSON *r = cJSON_CreateDoubleArray(m + i * cols, cols);
    if (!r || !cJSON_AddItemToArray(a, r)) {
      cJSON_Delete(r), cJSON_Delete(a);
      return NULL;
    }
  }
  return a;
}

static bool add(cJSON *o, const char *key, cJSON *v) {
  if (v && cJSON_AddItemToObject(o, key, v)) return true;
  cJSON_Delete(v);
  return false;
}

static bool add_num(cJSON *o, const char *key, double v) {
  return add(o, key, cJSON_CreateNumber(v));
}

/* A string, or null when s is NULL. */
static bool add_str(cJSON *o, const char *key, const char *s) {
  return add(o, key, s ? cJSON_CreateString(s) : cJSON_CreateNull());
}

/* x0, y0, x1, y1 (exclusive) as [x, y, w, h], or null when empty. */
static cJSON *xywh(const int32_t b[4], uint64_t px) {
  if (!px) return cJSON_CreateNull();
  const int v[4] = {b[0], b[1], b[2] - b[0], b[3] - b[1]};
  return cJSON_CreateIntArray(v, 4);
}

static cJSON *bbox3d(const kiln__gt_instance *g) {
  cJSON *o = cJSON_CreateObject(), *c = cJSON_CreateArray();
  const double lo[3] = {g->bbox_min[0], g->bbox_min[1], g->bbox_min[2]};
  const double hi[3] = {g->bbox_max[0], g->bbox_max[1], g->bbox_max[2]};
  bool ok = o && c && add(o, "min", cJSON_CreateDoubleArray(lo, 3)) &&
            add(o, "max", cJSON_CreateDoubleArray(hi, 3));
  for (int k = 0; ok && k < 8; k++)
    ok = cJSON_AddItemToArray(c, cJSON_CreateDoubleArray(g->corners[k], 3));
  if (ok && (ok = cJSON_AddItemToObject(o, "corners_2d", c))) c = NULL;
  cJSON_Delete(c);
  if (!ok) cJSON_Delete(o);
  return ok ? o : NULL;
}

static cJSON *instance(const kiln__gt_instance *g) {
  cJSON *o = cJSON_CreateObject();
  bool ok = o && add_num(o, "object_id", g->object_id) &&
            add_num(o, "instance_id", g->instance_id) && add_str(o, "name", g->name) &&
            add_str(o, "category", g->category) && add_num(o, "category_id", g->category_id) &&
            add(o, "object_to_world", matrix(g->xform, 4, 4)) &&
            add(o, "bbox_visib", xywh(g->box_visib, g->px_visib)) &&
            add(o, "bbox_all", xywh(g->box_all, g->px_all)) &&
            add_num(o, "px_visib", (double)g->px_visib) &&
            add_num(o, "px_all", (double)g->px_all) && add_num(o, "visib_fract", g->visib_fract) &&
            add(o, "bbox3d", bbox3d(g)) &&
            add(o, "center_2d", cJSON_CreateDoubleArray(g->center, 3));
  if (!ok) cJSON_Delete(o);
  return ok ? o : NULL;
}

bool kiln__gt_json(cJSON *o, const kiln__frame_gt *gt) {
  cJSON *cam = cJSON_CreateObject(), *list = cJSON_CreateArray();
  bool ok = cam && list && add(cam, "K", matrix(gt->K, 3, 3)) &&
            add(cam, "cam2world_opengl", matrix(gt->c2w_gl, 4, 4)) &&
            add(cam, "cam2world_opencv", matrix(gt->c2w_cv, 4, 4));
  for (size_t k = 0; ok && k < gt->n; k++) {
    cJSON *g = instance(&gt->inst[k]);
    ok = g && cJSON_AddItemToArray(list, g);
    if (!ok) cJSON_Delete(g);
  }
  ok = ok && add_num(o, "width", gt->width) && add_num(o, "height", gt->height);
  if (ok && (ok = cJSON_AddItemToObject(o, "camera", cam))) cam = NULL;
  if (ok && (ok = cJSON_AddItemToObject(o, "instances", list))) list = NULL;
  cJSON_Delete(cam), cJSON_Delete(list);
  return ok;
}

/* ---- ids.json ----------------------------------------------------------------------------------- */

static cJSON *object_entry(const kiln__scene *s, uint32_t id, uint32_t inst) {
  cJSON *o = cJSON_CreateObject();
  const char *cat = s->object_category ? s->object_category[id - 1] : NULL;
  uint32_t cid = s->object_category_id ? s->object_category_id[id - 1] : 0;
  bool ok = o && (!inst || add_num(o, "instance_id", inst)) && add_num(o, "object_id", id) &&
            add_str(o, "name", s->object_names[id - 1]) && add_str(o, "category", cat) &&
            add_num(o, "category_id", cid);
  if (!ok) cJSON_Delete(o);
  return ok ? o : NULL;
}

static const char *const conventions[][2] = {
    {"K", "3x3 row-major, OpenCV: x right, y down, pixel (i, j)'s centre at (i, j)"},
    {"cam2world_opengl", "4x4 row-major; camera axes x right, y up, looking along -z"},
    {"cam2world_opencv", "4x4 row-major; camera axes x right, y down, looking along +z"},
    {"bbox", "[x, y, w, h] in pixels, pixel i spanning [i, i + 1)"},
    {"corners_2d", "[x, y, depth]: x, y through K; depth along the view axis, negative behind"},
};

/* The job's camera model at the run's size: what every frame has unless it gives its own (each
 * record's camera is the one used). */
static cJSON *camera_model(const kiln_camera *cam, int32_t w, int32_t h) {
  double K[9];
  cJSON *o = cJSON_CreateObject();
  bool ok = o && kiln_camera_intrinsics(cam, w, h, K) == 0 &&
            add_str(o, "model", cam->thin_lens ? "thin_lens" : "pinhole") &&
            add_num(o, "width", w) && add_num(o, "height", h) && add(o, "K", matrix(K, 3, 3)) &&
            (!cam->thin_lens || (add_num(o, "aperture", cam->aperture) &&
                                 add_num(o, "focus_distance", cam->focus_distance)));
  if (!ok) cJSON_Delete(o);
  return ok ? o : NULL;
}

static cJSON *ids_doc(const kiln__scene *s, const kiln_camera *cam, int32_t w, int32_t h) {
  cJSON *o = cJSON_CreateObject(), *objs = cJSON_CreateArray(), *insts = cJSON_CreateArray(),
        *cats = cJSON_CreateArray(), *conv = cJSON_CreateObject();
  bool ok = o && objs && insts && cats && conv && add(o, "camera", camera_model(cam, w, h));
  for (size_t i = 0; ok && i < s->nobjects; i++) {
    cJSON *e = object_entry(s, (uint32_t)i + 1, 0);
    if (!(ok = e && cJSON_AddItemToArray(objs, e))) cJSON_Delete(e);
  }
  for (size_t i = 0; ok && i < s->ninstances; i++) {
    uint32_t id = s->instances[i].object_id;
    cJSON *e = id >= 1 && id <= s->nobjects ? object_entry(s, id, (uint32_t)i + 1) : NULL;
    if (!(ok = e && cJSON_AddItemToArray(insts, e))) cJSON_Delete(e);
  }
  for (size_t i = 0; ok && i < s->ncategories; i++) {
    cJSON *e = cJSON_CreateObject();
    if (!(ok = e && add_num(e, "id", s->category_ids[i]) &&
               add_str(e, "name", s->category_names[i]) && cJSON_AddItemToArray(cats, e)))
      cJSON_Delete(e);
  }
  for (size_t i = 0; ok && i < sizeof conventions / sizeof conventions[0]; i++)
    ok = add_str(conv, conventions[i][0], conventions[i][1]);
  ok = ok && add_num(o, "background_id", 0);
  if (ok && (ok = cJSON_AddItemToObject(o, "categories", cats))) cats = NULL;
  if (ok && (ok = cJSON_AddItemToObject(o, "objects", objs))) objs = NULL;
  if (ok && (ok = cJSON_AddItemToObject(o, "instances", insts))) insts = NULL;
  if (ok && (ok = cJSON_AddItemToObject(o, "conventions", conv))) conv = NULL;
  cJSON_Delete(objs), cJSON_Delete(insts), cJSON_Delete(cats), cJSON_Delete(conv);
  if (!ok) cJSON_Delete(o);
  return ok ? o : NULL;
}

int kiln__ids_write(const kiln__scene *s, const kiln_camera *cam, int32_t width, int32_t height,
                    const char *path, bool durable, char *msg, size_t msgcap) {
  cJSON *o = ids_doc(s, cam, width, height);
  char *text = o ? cJSON_Print(o) : NULL;
  cJSON_Delete(o);
  if (!text) {
    kiln__say(msg, msgcap, "ids.json: out of memory");
    return KILN_ENOMEM;
  }
  size_t n = strlen(text);
  text[n] = '\n'; /* cJSON_Print leaves no newline; the NUL is not written */
  int rc = kiln__write_atomic(path, text, n + 1, durable, msg, msgcap);
  free(text);
  return rc;
}
