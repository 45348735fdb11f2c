/* annotate.c: a frame's ground truth (batch_internal.h, docs/DATASETS.md): for every instance of
 * the scene, its pose, its box projected, what the instance pass shows of it, and what it would
 * cover with every other instance removed.
 *
 * Conventions. Camera space is OpenCV's (x right, y down, z forward: depth). Image points come
 * from K (kiln_camera_intrinsics), so pixel (i, j)'s centre is at (i, j) in them; the instance
 * pass is the path tracer's first hit of the pinhole ray through each pixel centre (never the
 * thin lens: depth of field does not blur the ids). The unoccluded silhouette samples the same
 * rays: pixel (i, j) is covered when the pinhole ray through its centre hits one of the
 * instance's triangles or spheres, found by projecting the geometry, not by tracing:
 *
 *  - triangles are clipped at a near plane just in front of the camera (a triangle crossing the
 *    camera plane keeps only its part in front; nothing behind wraps around), projected, and
 *    filled row by row: each row's span comes from the three edge functions, and the pixels at
 *    the span's ends are tested exactly, a centre on an edge belonging to the triangle whose edge
 *    is top or left (two triangles sharing an edge never both take it);
 *  - spheres are solved per row: the pixels whose rays meet the sphere in front of the camera
 *    form an interval of a quadratic in x (the conic's outline), tested exactly at its ends.
 *
 * Instances are rasterised one at a time into a stamp buffer (one word a pixel holding the last
 * instance that covered it), so an instance's triangles overlapping each other count once: the
 * triangles are first bucketed by instance (their order in the scene interleaves the groups of a
 * mesh), and each shared mesh's by group, once for all its placements. Cost: O(triangles + rows each primitive spans + pixels covered), and one pass over the
 * instance pass; no BVH, no rays. */
#define _GNU_SOURCE
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "batch_internal.h"

#define NEAR 1e-6 /* camera-space depth the triangles are clipped at */

typedef struct raster {
  int32_t w, h;
  double fx, fy, cx, cy;
  double rot[3][3], pos[3]; /* world to camera: p_cam = rot (p - pos) */
  uint32_t *stamp;          /* w * h: the last instance (1-based) that covered each pixel */
  uint32_t cur;             /* the instance being rasterised */
  kiln__gt_instance *gi;    /* its record: px_all and box_all grow as pixels are covered */
} raster;

static void cover(raster *r, int32_t i, int32_t j) {
  uint32_t *s = &r->stamp[(size_t)j * (size_t)r->w + (size_t)i];
  if (*s == r->cur) return;
  *s = r->cur;
  kiln__gt_instance *g = r->gi;
  if (g->px_all++ == 0) {
    g->box_all[0] = i, g->box_all[1] = j, g->box_all[2] = i + 1, g->box_all[3] = j + 1;
    return;
  }
  if (i < g->box_all[0]) g->box_all[0] = i;
  if (j < g->box_all[1]) g->box_all[1] = j;
  if (i + 1 > g->box_all[2]) g->box_all[2] = i + 1;
  if (j + 1 > g->box_all[3]) g->box_all[3] = j + 1;
}

static void to_camera(const raster *r, const double p[3], double o[3]) {
  double d[3] = {p[0] - r->pos[0], p[1] - r->pos[1], p[2] - r->pos[2]};
  for (int k = 0; k < 3; k++)
    o[k] = r->rot[k][0] * d[0] + r->rot[k][1] * d[1] + r->rot[k][2] * d[2];
}

/* ---- triangles ---------------------------------------------------------------------------------- */

/* An edge function a x + b y + c, positive inside. */
typedef struct edge {
  double a, b, c;
} edge;

/* Whether (x, y) is inside the edge's half-plane; a point on it only for top or left edges. */
static bool inside(const edge *e, double x, double y) {
  double v = e->a * x + e->b * y + e->c;
  return v > 0 || (v == 0 && (e->a > 0 || (e->a == 0 && e->b > 0)));
}

/* Fills the projected triangle q (3 points, pixel coordinates, pixel centres at integers). */
static void fill_tri(raster *r, const double q[3][2]) {
  double area =
      (q[1][0] - q[0][0]) * (q[2][1] - q[0][1]) - (q[2][0] - q[0][0]) * (q[1][1] - q[0][1]);
  if (!(fabs(area) > 0) || !isfinite(area)) return;
  double s = area > 0 ? 1 : -1;
  edge e[3];
  double ylo = HUGE_VAL, yhi = -HUGE_VAL;
  for (int k = 0; k < 3; k++) {
    const double *p = q[k], *n = q[(k + 1) % 3];
    /* inside when (n - p) x (x - p) has the sign of the area */
    e[k].a = -s * (n[1] - p[1]), e[k].b = s * (n[0] - p[0]);
    e[k].c = -(e[k].a * p[0] + e[k].b * p[1]);
    ylo = fmin(ylo, p[1]), yhi = fmax(yhi, p[1]);
  }
  double j0 = fmax(ceil(ylo), 0), j1 = fmin(floor(yhi), r->h - 1);
  for (double jd = j0; jd <= j1; jd++) {
    double lo = -1, hi = r->w; /* the span, widened by a pixel each side, tested exactly */
    bool empty = false;
    for (int k = 0; k < 3 && !empty; k++) {
      double rest = e[k].b * jd + e[k].c;
      if (e[k].a > 0) lo = fmax(lo, -rest / e[k].a);
      else if (e[k].a < 0) hi = fmin(hi, -rest / e[k].a);
      else empty = rest < 0;
    }
    if (empty || !(lo <= hi + 2)) continue;
    int32_t i0 = (int32_t)fmax(floor(lo) - 1, 0), i1 = (int32_t)fmin(ceil(hi) + 1, r->w - 1);
    for (int32_t i = i0; i <= i1; i++)
      if (inside(&e[0], i, jd) && inside(&e[1], i, jd) && inside(&e[2], i, jd))
        cover(r, i, (int32_t)jd);
  }
}

/* Clips world triangle p (9 floats) at the near plane, projects and fills what is in front. */
static void raster_tri(raster *r, const float p[9]) {
  double v[3][3], poly[4][3];
  for (int k = 0; k < 3; k++) {
    double w[3] = {p[3 * k], p[3 * k + 1], p[3 * k + 2]};
    to_camera(r, w, v[k]);
  }
  int n = 0;
  for (int k = 0; k < 3; k++) { /* Sutherland-Hodgman against z >= NEAR */
    const double *a = v[k], *b = v[(k + 1) % 3];
    bool ain = a[2] >= NEAR, bin = b[2] >= NEAR;
    if (ain) memcpy(poly[n++], a, sizeof poly[0]);
    if (ain != bin) {
      double t = (NEAR - a[2]) / (b[2] - a[2]);
      for (int i = 0; i < 3; i++) poly[n][i] = a[i] + t * (b[i] - a[i]);
      poly[n++][2] = NEAR;
    }
  }
  if (n < 3) return;
  double q[4][2];
  for (int k = 0; k < n; k++) {
    q[k][0] = r->fx * poly[k][0] / poly[k][2] + r->cx;
    q[k][1] = r->fy * poly[k][1] / poly[k][2] + r->cy;
  }
  double t0[3][2] = {{q[0][0], q[0][1]}, {q[1][0], q[1][1]}, {q[2][0], q[2][1]}};
  fill_tri(r, t0);
  if (n == 4) {
    double t1[3][2] = {{q[0][0], q[0][1]}, {q[2][0], q[2][1]}, {q[3][0], q[3][1]}};
    fill_tri(r, t1);
  }
}

/* ---- spheres ----------------------------------------------------------------------------------- */

/* Whether the ray through pixel centre (i, j) meets the sphere (camera-space centre c, q =
 * |c|^2 - radius^2) in front of the camera. */
static bool sphere_hit(const raster *r, const double c[3], double q, double i, double j) {
  double d[3] = {(i - r->cx) / r->fx, (j - r->cy) / r->fy, 1};
  double t = d[0] * c[0] + d[1] * c[1] + d[2] * c[2];
  if (q < 0) return true; /* the camera is inside: every ray leaves through it */
  return t > 0 && t * t >= (d[0] * d[0] + d[1] * d[1] + 1) * q;
}

static void raster_sphere(raster *r, const kiln__sphere *sp) {
  double w[3] = {sp->center[0], sp->center[1], sp->center[2]}, c[3];
  to_camera(r, w, c);
  double rad = sp->radius, q = c[0] * c[0] + c[1] * c[1] + c[2] * c[2] - rad * rad;
  if (q >= 0 && c[2] <= -rad) return; /* wholly behind the camera */
  for (int32_t j = 0; j < r->h; j++) {
    double b = (j - r->cy) / r->fy, m = b * c[1] + c[2];
    /* (a cx + m)^2 >= (a^2 + b^2 + 1) q, for a = (i - cx) / fx: A a^2 + B a + C >= 0 */
    double A = c[0] * c[0] - q, B = 2 * c[0] * m, C = m * m - (b * b + 1) * q;
    int32_t i0 = 0, i1 = r->w - 1;
    if (q >= 0 && A < 0) { /* the usual case: an interval between the roots */
      double disc = B * B - 4 * A * C;
      if (disc < 0) continue;
      double sq = sqrt(disc), a0 = (-B + sq) / (2 * A), a1 = (-B - sq) / (2 * A);
      double x0 = fmin(a0, a1) * r->fx + r->cx, x1 = fmax(a0, a1) * r->fx + r->cx;
      if (x1 < -1 || x0 > r->w) continue;
      i0 = (int32_t)fmax(floor(x0) - 1, 0), i1 = (int32_t)fmin(ceil(x1) + 1, r->w - 1);
    }
    for (int32_t i = i0; i <= i1; i++)
      if (sphere_hit(r, c, q, i, j)) cover(r, i, j);
  }
}

/* ---- the record ----------------------------------------------------------------------------------- */

/* World point p projected: x, y through K, depth along the view axis; x and y NaN at depth 0. */
static void project(const raster *r, const double p[3], double out[3]) {
  double c[3];
  to_camera(r, p, c);
  out[2] = c[2];
  if (c[2] == 0) {
    out[0] = out[1] = NAN;
    return;
  }
  out[0] = r->fx * c[0] / c[2] + r->cx, out[1] = r->fy * c[1] / c[2] + r->cy;
}

static void xform_point(const double m[16], const double p[3], double o[3]) {
  for (int k = 0; k < 3; k++)
    o[k] = m[4 * k] * p[0] + m[4 * k + 1] * p[1] + m[4 * k + 2] * p[2] + m[4 * k + 3];
}

static void fill_static(const kiln__scene *s, const raster *r, size_t k, kiln__gt_instance *g) {
  const kiln__instance *in = &s->instances[k];
  g->instance_id = (uint32_t)k + 1, g->object_id = in->object_id;
  if (in->object_id >= 1 && in->object_id <= s->nobjects) {
    g->name = s->object_names[in->object_id - 1];
    if (s->object_category) {
      g->category = s->object_category[in->object_id - 1];
      g->category_id = s->object_category_id[in->object_id - 1];
    }
  }
  for (int i = 0; i < 16; i++) g->xform[i] = in->xform[i];
  memcpy(g->bbox_min, in->bbox_min, sizeof g->bbox_min);
  memcpy(g->bbox_max, in->bbox_max, sizeof g->bbox_max);
  for (int c = 0; c < 8; c++) {
    double p[3] = {c & 1 ? in->bbox_max[0] : in->bbox_min[0],
                   c & 2 ? in->bbox_max[1] : in->bbox_min[1],
                   c & 4 ? in->bbox_max[2] : in->bbox_min[2]},
           w[3];
    xform_point(g->xform, p, w);
    project(r, w, g->corners[c]);
  }
  double o[3] = {g->xform[3], g->xform[7], g->xform[11]};
  project(r, o, g->center);
}

/* px_visib and box_visib from the instance pass. */
static void visible(kiln__frame_gt *gt, const uint32_t *ids) {
  for (int32_t j = 0; j < gt->height; j++)
    for (int32_t i = 0; i < gt->width; i++) {
      uint32_t id = ids[(size_t)j * (size_t)gt->width + (size_t)i];
      if (id == 0 || id > gt->n) continue;
      kiln__gt_instance *g = &gt->inst[id - 1];
      if (g->px_visib++ == 0) {
        g->box_visib[0] = i, g->box_visib[1] = j, g->box_visib[2] = i + 1, g->box_visib[3] = j + 1;
        continue;
      }
      if (i < g->box_visib[0]) g->box_visib[0] = i;
      if (j < g->box_visib[1]) g->box_visib[1] = j;
      if (i + 1 > g->box_visib[2]) g->box_visib[2] = i + 1;
      if (j + 1 > g->box_visib[3]) g->box_visib[3] = j + 1;
    }
}

/* The silhouette of instance k (its record's box_all) cut out of the stamp buffer. */
static int cut_mask(const raster *r, kiln__gt_instance *g) {
  if (g->px_all == 0) return 0;
  int32_t w = g->box_all[2] - g->box_all[0], h = g->box_all[3] - g->box_all[1];
  if (!(g->mask_all = malloc((size_t)w * (size_t)h))) return KILN_ENOMEM;
  for (int32_t y = 0; y < h; y++)
    for (int32_t x = 0; x < w; x++) {
      size_t p = (size_t)(y + g->box_all[1]) * (size_t)r->w + (size_t)(x + g->box_all[0]);
      g->mask_all[(size_t)y * (size_t)w + (size_t)x] = r->stamp[p] == r->cur;
    }
  return 0;
}

/* Primitives bucketed by id (an instance's, or a shared mesh's group): first[k] .. first[k + 1]
 * of order are those whose id is base + k, for k < n; other ids are left out. */
static int bucket(size_t n, size_t count, const uint32_t *id_of, uint32_t base, size_t **first,
                  uint32_t **order) {
  *first = calloc(n + 2, sizeof **first);
  *order = malloc((count ? count : 1) * sizeof **order);
  if (!*first || !*order) return KILN_ENOMEM;
  for (size_t t = 0; t < count; t++) {
    uint32_t id = id_of[t];
    if (id >= base && id - base < n) (*first)[id - base + 1]++;
  }
  for (size_t k = 1; k <= n + 1; k++) (*first)[k] += (*first)[k - 1];
  size_t *at = malloc((n + 1) * sizeof *at);
  if (!at) return KILN_ENOMEM;
  memcpy(at, *first, (n + 1) * sizeof *at);
  for (size_t t = 0; t < count; t++) {
    uint32_t id = id_of[t];
    if (id >= base && id - base < n) (*order)[at[id - base]++] = (uint32_t)t;
  }
  free(at);
  return 0;
}

static int silhouettes(const kiln__scene *s, raster *r, kiln__frame_gt *gt, bool masks) {
  size_t *tf = NULL, *sf = NULL;
  uint32_t *to = NULL, *so = NULL;
  uint32_t *sid = malloc((s->nspheres ? s->nspheres : 1) * sizeof *sid);
  int rc = sid ? bucket(gt->n, s->ntris, s->tri_instance, 1, &tf, &to) : KILN_ENOMEM;
  for (size_t t = 0; !rc && t < s->nspheres; t++) sid[t] = s->spheres[t].instance_id;
  if (!rc) rc = bucket(gt->n, s->nspheres, sid, 1, &sf, &so);
  free(sid);
  /* each shared mesh's triangles bucketed by group once, so that an instance (a group of a
   * placement) rasterises its own triangles only */
  size_t **gf = NULL;
  uint32_t **go = NULL;
  if (!rc && s->nmeshes) {
    gf = calloc(s->nmeshes, sizeof *gf), go = calloc(s->nmeshes, sizeof *go);
    if (!gf || !go) rc = KILN_ENOMEM;
  }
  for (size_t m = 0; !rc && m < s->nmeshes; m++)
    rc =
        bucket(s->meshes[m].ngroups, s->meshes[m].ntris, s->meshes[m].tri_group, 0, &gf[m], &go[m]);
  /* instances of shared meshes: the placement each is a group of (UINT32_MAX: none) */
  uint32_t *pl_of = rc ? NULL : malloc((gt->n ? gt->n : 1) * sizeof *pl_of);
  if (!rc && !pl_of) rc = KILN_ENOMEM;
  for (size_t k = 0; !rc && k < gt->n; k++) pl_of[k] = UINT32_MAX;
  for (size_t p = 0; !rc && p < s->nplacements; p++) {
    const kiln__placement *pl = &s->placements[p];
    for (size_t g = 0; g < s->meshes[pl->mesh].ngroups; g++)
      if (pl->first_instance + g - 1 < gt->n) pl_of[pl->first_instance + g - 1] = (uint32_t)p;
  }
  for (size_t k = 0; k < gt->n && !rc; k++) {
    r->cur = (uint32_t)k + 1, r->gi = &gt->inst[k];
    for (size_t t = tf[k]; t < tf[k + 1]; t++) raster_tri(r, s->pos + 9 * (size_t)to[t]);
    for (size_t t = sf[k]; t < sf[k + 1]; t++) raster_sphere(r, &s->spheres[so[t]]);
    if (pl_of[k] != UINT32_MAX) { /* the mesh's triangles of this group, placed */
      const kiln__placement *pl = &s->placements[pl_of[k]];
      const kiln__shared_mesh *m = &s->meshes[pl->mesh];
      const float *x = kiln__placement_xform(s, pl);
      size_t g = k + 1 - pl->first_instance;
      for (size_t i = gf[pl->mesh][g]; i < gf[pl->mesh][g + 1]; i++) {
        float w[9];
        const float *v = m->pos + 9 * (size_t)go[pl->mesh][i];
        for (int c = 0; c < 3; c++)
          for (int j = 0; j < 3; j++)
            w[3 * c + j] = x[4 * j] * v[3 * c] + x[4 * j + 1] * v[3 * c + 1] +
                           x[4 * j + 2] * v[3 * c + 2] + x[4 * j + 3];
        raster_tri(r, w);
      }
    }
    if (masks) rc = cut_mask(r, &gt->inst[k]);
  }
  for (size_t m = 0; gf && go && m < s->nmeshes; m++) free(gf[m]), free(go[m]);
  free(gf), free(go);
  free(pl_of);
  free(tf), free(to), free(sf), free(so);
  return rc;
}

void kiln__frame_gt_free(kiln__frame_gt *g) {
  if (!g) return;
  for (size_t k = 0; k < g->n; k++) free(g->inst[k].mask_all);
  free(g->inst);
  memset(g, 0, sizeof *g);
}

int kiln__annotate(const struct kiln__scene *s, const kiln_camera *cam, int32_t width,
                   int32_t height, const uint32_t *instance_pass, bool masks, kiln__frame_gt *out,
                   char *msg, size_t msgcap) {
  memset(out, 0, sizeof *out);
  if (!s || !cam || !instance_pass || width <= 0 || height <= 0) {
    kiln__say(msg, msgcap, "annotate: a scene, a camera and an instance pass are needed");
    return KILN_EINVAL;
  }
  out->width = width, out->height = height;
  if (kiln_camera_intrinsics(cam, width, height, out->K) ||
      kiln_camera_to_world(cam, KILN_CAMERA_GL, out->c2w_gl) ||
      kiln_camera_to_world(cam, KILN_CAMERA_CV, out->c2w_cv)) {
    kiln__say(msg, msgcap, "annotate: the frame's camera has no valid intrinsics or pose");
    return KILN_EINVAL;
  }
  raster r = {.w = width, .h = height};
  r.fx = out->K[0], r.cx = out->K[2], r.fy = out->K[4], r.cy = out->K[5];
  for (int a = 0; a < 3; a++) {
    r.pos[a] = out->c2w_cv[4 * a + 3];
    for (int k = 0; k < 3; k++) r.rot[k][a] = out->c2w_cv[4 * a + k]; /* the transpose */
  }
  out->n = s->ninstances;
  if (out->n && !(out->inst = calloc(out->n, sizeof *out->inst))) goto nomem;
  for (size_t k = 0; k < out->n; k++) fill_static(s, &r, k, &out->inst[k]);
  visible(out, instance_pass);
  if (!out->n) return 0;
  if (!(r.stamp = calloc((size_t)width * (size_t)height, sizeof *r.stamp))) goto nomem;
  int rc = silhouettes(s, &r, out, masks);
  free(r.stamp);
  if (rc) goto nomem;
  for (size_t k = 0; k < out->n; k++) {
    kiln__gt_instance *g = &out->inst[k];
    /* the rays and the projection round differently at silhouettes: a sliver the rays hit but
     * no pixel centre of the projection falls in is wholly visible, not invisible */
    g->visib_fract = g->px_all     ? fmin(1.0, (double)g->px_visib / (double)g->px_all)
                     : g->px_visib ? 1
                                   : 0;
  }
  return 0;
nomem:
  kiln__frame_gt_free(out);
  kiln__say(msg, msgcap, "annotate: out of memory");
  return KILN_ENOMEM;
}
