/* derive.c: the passes computed on the CPU from a frame's first-hit planes (docs/JOBS.md,
 * "Passes"): position, objcoord, nocs, category, flow_fwd, flow_bwd, motion_fwd and motion_bwd.
 *
 * Every one starts from the position of the first hit, recovered from the depth plane and the
 * camera: the pixel-centre ray of pixel (i, j) in OpenCV's camera axes is
 * ((i - cx) / fx, (j - cy) / fy, 1) (kiln_camera_intrinsics), and depth is the distance along
 * the view axis, so the hit is cam + R (x, y, 1) depth. The shader's AOV ray is that same ray
 * (normalised, in single precision), so this is the hit it found to within float rounding of
 * depth (~1e-7 relative); doing it here in double costs no AOV space and keeps the shader's
 * output unchanged.
 *
 * Object space comes from the scene's instance table (scene_data.h): p_obj = xform^-1 p. Motion
 * to a neighbouring frame carries p_obj through that frame's xform of the same instance and
 * projects it through that frame's camera, so rigid motion of the camera and of every instance
 * is exact; deformation is not known here. A point is hidden at the other frame when a surface of
 * that frame's scene lies between it and that frame's camera: a CPU ray through the same BVH the
 * renderer builds (engine/render/render_query.h). */
#define _GNU_SOURCE
#include "batch_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "image_internal.h"
#include "render_query.h"

/* A camera as matrices: intrinsics, camera to world (OpenCV axes) and its inverse. */
typedef struct view {
  double fx, fy, cx, cy;
  double c2w[16], w2c[16];
  int32_t w, h;
} view;

static int view_of(const kiln_camera *cam, int32_t w, int32_t h, view *v) {
  double K[9];
  int rc = kiln_camera_intrinsics(cam, w, h, K);
  if (!rc) rc = kiln_camera_to_world(cam, KILN_CAMERA_CV, v->c2w);
  if (rc) return rc;
  v->fx = K[0], v->fy = K[4], v->cx = K[2], v->cy = K[5], v->w = w, v->h = h;
  /* the rotation is orthonormal: its inverse is its transpose */
  for (int r = 0; r < 3; r++) {
    for (int c = 0; c < 3; c++) v->w2c[4 * r + c] = v->c2w[4 * c + r];
    v->w2c[4 * r + 3] =
        -(v->c2w[3] * v->c2w[r] + v->c2w[7] * v->c2w[4 + r] + v->c2w[11] * v->c2w[8 + r]);
  }
  v->w2c[12] = v->w2c[13] = v->w2c[14] = 0, v->w2c[15] = 1;
  return 0;
}

static void apply(const double m[16], const double p[3], double o[3]) {
  for (int r = 0; r < 3; r++)
    o[r] = m[4 * r] * p[0] + m[4 * r + 1] * p[1] + m[4 * r + 2] * p[2] + m[4 * r + 3];
}

/* The inverse of the affine row-major x (last row 0 0 0 1) into inv; false when singular. */
static bool affine_inverse(const float x[16], double inv[16]) {
  double a[9] = {x[0], x[1], x[2], x[4], x[5], x[6], x[8], x[9], x[10]};
  double c[9] = {a[4] * a[8] - a[5] * a[7], a[2] * a[7] - a[1] * a[8], a[1] * a[5] - a[2] * a[4],
                 a[5] * a[6] - a[3] * a[8], a[0] * a[8] - a[2] * a[6], a[2] * a[3] - a[0] * a[5],
                 a[3] * a[7] - a[4] * a[6], a[1] * a[6] - a[0] * a[7], a[0] * a[4] - a[1] * a[3]};
  double det = a[0] * c[0] + a[1] * c[3] + a[2] * c[6];
  if (!(fabs(det) > 0) || !isfinite(det)) return false;
  for (int r = 0; r < 3; r++) {
    for (int k = 0; k < 3; k++) inv[4 * r + k] = c[3 * r + k] / det;
    inv[4 * r + 3] = -(inv[4 * r] * x[3] + inv[4 * r + 1] * x[7] + inv[4 * r + 2] * x[11]);
  }
  inv[12] = inv[13] = inv[14] = 0, inv[15] = 1;
  return true;
}

static void to_double(const float x[16], double m[16]) {
  for (int k = 0; k < 16; k++) m[k] = x[k];
}

/* The hit of pixel i (depth d) in world space; false for background. */
static bool hit_of(const view *v, size_t i, float d, double p[3]) {
  if (!(d > 0) || !isfinite(d)) return false;
  double cam[3] = {((double)(i % (size_t)v->w) - v->cx) / v->fx * d,
                   ((double)(i / (size_t)v->w) - v->cy) / v->fy * d, d};
  apply(v->c2w, cam, p);
  return true;
}

/* The inverse xform of every instance of table (n of them), NULL rows where singular. */
static double (*inverses(const kiln__instance *t, size_t n, bool **ok))[16] {
  double(*inv)[16] = malloc((n ? n : 1) * sizeof *inv);
  *ok = malloc(n ? n : 1);
  if (!inv || !*ok) {
    free(inv), free(*ok), *ok = NULL;
    return NULL;
  }
  for (size_t k = 0; k < n; k++) (*ok)[k] = affine_inverse(t[k].xform, inv[k]);
  return inv;
}

/* The hit in its instance's object space (false: background, or an instance the table lacks). */
static bool object_point(const kiln__derive_in *in, double (*inv)[16], const bool *ok, size_t i,
                         const double p[3], double o[3]) {
  uint32_t id = in->img->instance_id[i];
  if (id == 0 || id > in->self.ninstances || !ok[id - 1]) return false;
  apply(inv[id - 1], p, o);
  return true;
}

/* Whether world point q is hidden from the camera of view ov by a surface of its frame: the
 * segment from the camera to q hits something before q. The end is cut short by 1e-3 of the
 * length so that the surface q lies on (found again within float rounding, a little more at
 * grazing angles) does not hide q itself; a surface closer to q than that is not seen. */
static bool hidden(const view *ov, const kiln__tracer *t, const double q[3]) {
  float org[3] = {(float)ov->c2w[3], (float)ov->c2w[7], (float)ov->c2w[11]};
  float dir[3] = {(float)(q[0] - ov->c2w[3]), (float)(q[1] - ov->c2w[7]),
                  (float)(q[2] - ov->c2w[11])};
  return kiln__tracer_blocked(t, org, dir, 0, 1.0f - 1e-3f);
}

/* The flow (visible: only where the point is inside the other frame's image and not hidden there)
 * or the motion (every point in front of the other camera) of every pixel to frame other. */
static void flow_to(const kiln__derive_in *in, const view *v, const kiln__frame_view *other,
                    bool visible, double (*inv)[16], const bool *ok, float *out) {
  size_t n = (size_t)v->w * (size_t)v->h;
  view ov;
  bool have = other && view_of(other->camera, v->w, v->h, &ov) == 0;
  /* without any instance table (a scene built without one) every point is taken as fixed in
   * the world: camera motion only */
  bool fixed = in->self.ninstances == 0;
  for (size_t i = 0; i < n; i++) {
    float *f = out + 3 * i;
    f[0] = f[1] = f[2] = 0;
    double p[3], q[3], o[3], c[3];
    if (!have || !hit_of(v, i, in->img->depth[i], p)) continue;
    if (fixed) {
      memcpy(q, p, sizeof q);
    } else {
      uint32_t id = in->img->instance_id[i];
      if (!object_point(in, inv, ok, i, p, o) || id > other->ninstances) continue;
      double x[16];
      to_double(other->instances[id - 1].xform, x);
      apply(x, o, q);
    }
    apply(ov.w2c, q, c);
    if (!(c[2] > 0)) continue; /* behind the other camera */
    double u = ov.fx * c[0] / c[2] + ov.cx, w = ov.fy * c[1] / c[2] + ov.cy;
    if (visible && !(u >= -0.5 && u < v->w - 0.5 && w >= -0.5 && w < v->h - 0.5))
      continue; /* outside */
    if (visible && other->tracer && hidden(&ov, other->tracer, q)) continue;
    f[0] = (float)(u - (double)(i % (size_t)v->w));
    f[1] = (float)(w - (double)(i / (size_t)v->w));
    f[2] = 1;
  }
}

void kiln__derived_free(void *out[KILN__NPASS]) {
  for (int pi = 0; pi < KILN__NPASS; pi++) free(out[pi]), out[pi] = NULL;
}

static void points(const kiln__derive_in *in, const view *v, unsigned passes, double (*inv)[16],
                   const bool *ok, void *out[KILN__NPASS]) {
  size_t n = (size_t)v->w * (size_t)v->h;
  float *pos = out[KILN__PI_POSITION], *oc = out[KILN__PI_OBJCOORD], *nc = out[KILN__PI_NOCS];
  for (size_t i = 0; i < n; i++) {
    double p[3], o[3];
    bool hit = hit_of(v, i, in->img->depth[i], p);
    bool obj = hit && (passes & (KILN_PASS_OBJCOORD | KILN_PASS_NOCS)) &&
               object_point(in, inv, ok, i, p, o);
    for (int k = 0; k < 3; k++) {
      if (pos) pos[3 * i + k] = hit ? (float)p[k] : NAN;
      if (oc) oc[3 * i + k] = obj ? (float)o[k] : NAN;
    }
    if (nc) {
      const kiln__instance *t = obj ? &in->self.instances[in->img->instance_id[i] - 1] : NULL;
      double diag = 0, ctr[3];
      for (int k = 0; t && k < 3; k++) {
        double e = (double)t->bbox_max[k] - t->bbox_min[k];
        diag += e * e, ctr[k] = 0.5 * ((double)t->bbox_max[k] + t->bbox_min[k]);
      }
      diag = sqrt(diag);
      for (int k = 0; k < 3; k++)
        nc[3 * i + k] = obj && diag > 0 ? (float)((o[k] - ctr[k]) / diag + 0.5) : NAN;
    }
  }
}

int kiln__derive(const kiln__derive_in *in, unsigned passes, void *out[KILN__NPASS], char *msg,
                 size_t msgcap) {
  memset(out, 0, KILN__NPASS * sizeof *out);
  const kiln_image *img = in->img;
  size_t n = (size_t)img->width * (size_t)img->height;
  view v;
  if (view_of(in->self.camera, img->width, img->height, &v)) {
    kiln__say(msg, msgcap, "the frame's camera has no valid intrinsics or pose");
    return KILN_EINVAL;
  }
  for (int pi = KILN__NPLANE; pi < KILN__NPASS; pi++) {
    if (!(passes & (1u << pi))) continue;
    size_t per = pi == KILN__PI_CATEGORY ? sizeof(uint32_t) : 3 * sizeof(float);
    if (!(out[pi] = malloc(n * per))) return kiln__derived_free(out), KILN_ENOMEM;
  }
  bool *ok = NULL;
  double(*inv)[16] = inverses(in->self.instances, in->self.ninstances, &ok);
  if (!inv) return kiln__derived_free(out), KILN_ENOMEM;
  if (passes & (KILN_PASS_POSITION | KILN_PASS_OBJCOORD | KILN_PASS_NOCS))
    points(in, &v, passes, inv, ok, out);
  static const struct {
    int pi;
    bool fwd, visible;
  } flows[] = {{KILN__PI_FLOW_FWD, true, true},
               {KILN__PI_FLOW_BWD, false, true},
               {KILN__PI_MOTION_FWD, true, false},
               {KILN__PI_MOTION_BWD, false, false}};
  for (size_t k = 0; k < sizeof flows / sizeof flows[0]; k++)
    if (passes & (1u << flows[k].pi))
      flow_to(in, &v, flows[k].fwd ? in->next : in->prev, flows[k].visible, inv, ok,
              out[flows[k].pi]);
  if (passes & KILN_PASS_CATEGORY) {
    const kiln__scene *s = in->scene;
    uint32_t *cat = out[KILN__PI_CATEGORY];
    for (size_t i = 0; i < n; i++) {
      uint32_t id = img->object_id[i];
      cat[i] = s && s->object_category_id && id >= 1 && id <= s->nobjects
                   ? s->object_category_id[id - 1]
                   : 0;
    }
  }
  free(inv), free(ok);
  return 0;
}

/* ---- a job's frame ------------------------------------------------------------------------------ */

enum {
  FLOWS = KILN_PASS_FLOW_FWD | KILN_PASS_FLOW_BWD | KILN_PASS_MOTION_FWD | KILN_PASS_MOTION_BWD,
  OCCLUSION = KILN_PASS_FLOW_FWD | KILN_PASS_FLOW_BWD /* those that test visibility */
};

int kiln__derive_check(const kiln_job *job, unsigned passes, char *msg, size_t msgcap) {
  if ((passes & FLOWS) && job->kind == KILN__JOB_LIST_FILE) {
    kiln__say(msg, msgcap,
              "the flow and motion passes need the neighbouring frames by index: an animation "
              "or a job's inline \"images\", not a .jsonl list");
    return KILN_EUNSUPPORTED;
  }
  return 0;
}

struct kiln__derive_cache {
  kiln_pool *pool;
  pthread_mutex_t mu; /* a leaf: guards the fields below, and is held while the BVH builds */
  bool tried;
  int rc;
  kiln__tracer *job_tracer; /* the job's scene's, built by the first frame that needs it */
};

int kiln__derive_cache_new(kiln_pool *pool, kiln__derive_cache **out) {
  kiln__derive_cache *c = calloc(1, sizeof *c);
  if (!c) return KILN_ENOMEM;
  c->pool = pool;
  pthread_mutex_init(&c->mu, NULL);
  *out = c;
  return 0;
}

void kiln__derive_cache_free(kiln__derive_cache *c) {
  if (!c) return;
  kiln__tracer_destroy(c->job_tracer);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

/* The tracer of the job's scene, built once. */
static int job_tracer(const kiln_job *job, kiln__derive_cache *c, const kiln__tracer **out) {
  pthread_mutex_lock(&c->mu);
  if (!c->tried) {
    c->tried = true;
    c->rc = kiln__tracer_create(&kiln_job_scene(job)->data, c->pool, &c->job_tracer);
  }
  int rc = c->rc;
  *out = c->job_tracer;
  pthread_mutex_unlock(&c->mu);
  return rc;
}

/* One frame's view: the job's scene's table, or its own scene's when it has overrides (which may
 * move objects) and the table matters, or (geometry: a neighbour whose occlusion is tested) its
 * geometry does (*own: the scene loaded, for the caller to destroy). */
static int frame_view(const kiln_job *job, const kiln_job_frame *fr, bool geometry,
                      kiln__frame_view *v, kiln_scene **own, char *msg, size_t msgcap) {
  const kiln__scene *s = &kiln_job_scene(job)->data;
  *own = NULL;
  if (fr->scene_patch && (s->ninstances || geometry)) {
    kiln_error_detail err;
    int rc = kiln_job_frame_scene(job, fr, &err, own);
    if (rc) {
      char m[1200];
      kiln__say(msg, msgcap, "%s", kiln_error_detail_format(&err, m, sizeof m));
      return rc;
    }
    if (*own) s = &(*own)->data;
  }
  *v = (kiln__frame_view){&fr->camera, s->instances, s->ninstances, NULL};
  return 0;
}

/* The tracer of neighbour v (its scene own, or the job's when NULL) into *tr (*mine: built here,
 * for the caller to destroy). */
static int neighbour_tracer(const kiln_job *job, kiln__derive_cache *cache, const kiln_scene *own,
                            kiln__frame_view *v, kiln__tracer **mine, char *msg, size_t msgcap) {
  *mine = NULL;
  int rc;
  if (own) {
    /* the job scene's mesh trees serve a frame whose shared meshes are the job's (the common
     * case: overrides move placements, not the meshes), so that only its flat tree and top
     * level are built */
    const kiln__tracer *base = NULL;
    if (own->data.nmeshes && job_tracer(job, cache, &base)) base = NULL;
    rc = kiln__tracer_create_on(&own->data, base, cache->pool, mine);
    v->tracer = *mine;
  } else {
    rc = job_tracer(job, cache, &v->tracer);
  }
  if (rc)
    kiln__say(msg, msgcap, "cannot build the BVH the flow's occlusion test uses: %s",
              kiln_strerror(rc));
  return rc;
}

int kiln__derive_frame(const kiln_job *job, const kiln_job_frame *fr, const kiln_scene *scene,
                       const kiln_image *img, unsigned passes, kiln__derive_cache *cache,
                       void *out[KILN__NPASS], char *msg, size_t msgcap) {
  memset(out, 0, KILN__NPASS * sizeof *out);
  kiln_job_frame nb[2];
  memset(nb, 0, sizeof nb);
  kiln_scene *own[3] = {NULL, NULL, NULL};
  kiln__tracer *tracers[2] = {NULL, NULL};
  kiln__frame_view views[3];
  const kiln__frame_view *at[2] = {NULL, NULL}; /* next, prev */
  kiln__derive_in in = {.img = img, .scene = &kiln_job_scene(job)->data};
  int rc = 0;
  if (scene)
    in.self = (kiln__frame_view){&fr->camera, scene->data.instances, scene->data.ninstances, NULL};
  else rc = frame_view(job, fr, false, &in.self, &own[0], msg, msgcap);
  for (int k = 0; k < 2 && !rc && (passes & FLOWS); k++) {
    if (k == 1 && fr->index == 0) break;
    uint64_t idx = k == 0 ? fr->index + 1 : fr->index - 1;
    rc = kiln__job_frame_at(job, idx, &nb[k]);
    if (rc == KILN_EEOF) { /* the last frame has no next: its forward flow is invalid */
      rc = 0;
      continue;
    }
    if (rc) {
      kiln__say(msg, msgcap, "cannot expand frame %llu for the flow: %s", (unsigned long long)idx,
                kiln_strerror(rc));
      break;
    }
    bool occl = cache && (passes & OCCLUSION);
    rc = frame_view(job, &nb[k], occl, &views[k + 1], &own[k + 1], msg, msgcap);
    if (!rc && occl)
      rc = neighbour_tracer(job, cache, own[k + 1], &views[k + 1], &tracers[k], msg, msgcap);
    if (!rc) at[k] = &views[k + 1];
  }
  in.next = at[0], in.prev = at[1];
  if (!rc) rc = kiln__derive(&in, passes, out, msg, msgcap);
  kiln__tracer_destroy(tracers[0]), kiln__tracer_destroy(tracers[1]);
  for (int k = 0; k < 3; k++) kiln_scene_destroy(own[k]);
  kiln_job_frame_clear(&nb[0]), kiln_job_frame_clear(&nb[1]);
  return rc;
}
