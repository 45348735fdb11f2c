/* job_anim.c: animations (docs/JOBS.md): a frame range, a seed rule, a camera (the scene's, an
 * orbit, or keyframes interpolated linearly or spherically around look_at) and object keyframes
 * (translate and scale interpolated linearly, rotation by quaternion slerp), turned into frames.
 *
 * kiln__anim_parse reads and checks everything, including every interpolated camera between the
 * keyframes (so no frame can have a degenerate camera); kiln__anim_frame is then a pure function
 * of the parameters and the frame index, which is what lets kiln_job_next expand frames lazily.
 * Frames before the first keyframe or after the last hold that keyframe's values. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch_internal.h"

#define DEG (3.14159265358979323846 / 180.0)

/* ---- quaternions (w, x, y, z) ----------------------------------------------------------------- */

static void quat_mul(const double a[4], const double b[4], double out[4]) {
  double r[4] = {a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3],
                 a[0] * b[1] + a[1] * b[0] + a[2] * b[3] - a[3] * b[2],
                 a[0] * b[2] - a[1] * b[3] + a[2] * b[0] + a[3] * b[1],
                 a[0] * b[3] + a[1] * b[2] - a[2] * b[1] + a[3] * b[0]};
  memcpy(out, r, sizeof r);
}

void kiln__quat_axis(const double axis[3], double deg, double q[4]) {
  double l = sqrt(axis[0] * axis[0] + axis[1] * axis[1] + axis[2] * axis[2]);
  double h = 0.5 * deg * DEG, s = sin(h) / l;
  q[0] = cos(h), q[1] = axis[0] * s, q[2] = axis[1] * s, q[3] = axis[2] * s;
}

/* R = Rz Ry Rx (the scene format's Euler order): x applies first. */
void kiln__quat_euler(const double deg[3], double q[4]) {
  static const double ax[3][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
  double r[4];
  kiln__quat_axis(ax[0], deg[0], q);
  for (int i = 1; i < 3; i++) {
    kiln__quat_axis(ax[i], deg[i], r);
    quat_mul(r, q, q);
  }
}

/* Shortest-path slerp; nearly equal rotations are interpolated linearly and renormalised. */
void kiln__quat_slerp(const double a[4], const double b[4], double t, double out[4]) {
  double d = a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3], sb = 1;
  if (d < 0) d = -d, sb = -1;
  double wa = 1 - t, wb = t;
  if (d < 0.9995) {
    double th = acos(d), s = sin(th);
    wa = sin((1 - t) * th) / s, wb = sin(t * th) / s;
  }
  double l = 0;
  for (int i = 0; i < 4; i++) out[i] = wa * a[i] + sb * wb * b[i], l += out[i] * out[i];
  l = sqrt(l);
  for (int i = 0; i < 4; i++) out[i] /= l;
}

void kiln__quat_matrix(const double q[4], double m[3][3]) {
  double w = q[0], x = q[1], y = q[2], z = q[3];
  m[0][0] = 1 - 2 * (y * y + z * z), m[0][1] = 2 * (x * y - w * z), m[0][2] = 2 * (x * z + w * y);
  m[1][0] = 2 * (x * y + w * z), m[1][1] = 1 - 2 * (x * x + z * z), m[1][2] = 2 * (y * z - w * x);
  m[2][0] = 2 * (x * z - w * y), m[2][1] = 2 * (y * z + w * x), m[2][2] = 1 - 2 * (x * x + y * y);
}

/* ---- vectors --------------------------------------------------------------------------------- */

static double dot3d(const double a[3], const double b[3]) {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

static double norm3d(double v[3]) {
  double l = sqrt(dot3d(v, v));
  if (l > 0) v[0] /= l, v[1] /= l, v[2] /= l;
  return l;
}

/* Unit vectors a, b (not opposite) at fraction t of the great circle from a to b. */
static void slerp3(const double a[3], const double b[3], double t, double out[3]) {
  double d = dot3d(a, b), wa = 1 - t, wb = t;
  if (d > 1) d = 1;
  if (d < 0.9995) {
    double th = acos(d), s = sin(th);
    wa = sin((1 - t) * th) / s, wb = sin(t * th) / s;
  }
  for (int i = 0; i < 3; i++) out[i] = wa * a[i] + wb * b[i];
  norm3d(out);
}

/* ---- frames --------------------------------------------------------------------------------- */

/* The segment of keys (n >= 1, frames increasing, stride bytes apart, frame first) around f:
 * *i and fraction *t towards key *i + 1 (t = 0 and the end key outside the range). */
static void segment(const void *keys, size_t n, size_t stride, long f, size_t *i, double *t) {
#define KF(k) (*(const long *)((const char *)keys + (k)*stride))
  *t = 0;
  if (f <= KF(0)) return (void)(*i = 0);
  if (f >= KF(n - 1)) return (void)(*i = n - 1);
  size_t lo = 0, hi = n - 1; /* KF(lo) < f < KF(hi) */
  while (hi - lo > 1) {
    size_t mid = (lo + hi) / 2;
    if (KF(mid) <= f) lo = mid;
    else hi = mid;
  }
  *i = lo;
  *t = (double)(f - KF(lo)) / (double)(KF(hi) - KF(lo));
#undef KF
}

static void orbit_camera(const kiln_job *job, long f, kiln_camera *cam) {
  const kiln__anim *a = &job->anim;
  double th = (a->start_deg + a->deg_per_frame * (double)(f - a->start)) * DEG, p[3], d[3];
  for (int i = 0; i < 3; i++) {
    p[i] = a->center[i] + a->radius * (cos(th) * a->e0[i] + sin(th) * a->e1[i]) +
           a->height * a->axis[i];
    d[i] = a->center[i] - p[i];
    cam->position[i] = (float)p[i], cam->look_at[i] = (float)a->center[i],
    cam->up[i] = (float)a->axis[i];
  }
  if (a->vfov > 0) { /* the orbit's own vfov replaces the scene camera's intrinsics */
    cam->vfov_deg = a->vfov;
    cam->fx = cam->fy = cam->cx = cam->cy = 0, cam->k_width = cam->k_height = 0;
  }
  if (cam->thin_lens && !job->focus_given) cam->focus_distance = (float)sqrt(dot3d(d, d));
}

static void keyed_camera(const kiln_job *job, long f, kiln_camera *cam) {
  const kiln__anim *a = &job->anim;
  size_t i;
  double t;
  segment(a->keys, a->nkeys, sizeof *a->keys, f, &i, &t);
  const kiln__cam_key *k0 = &a->keys[i], *k1 = &a->keys[t > 0 ? i + 1 : i];
  const kiln_camera *c0 = &k0->cam, *c1 = &k1->cam;
  double up[3], o0[3], o1[3], look[3];
  for (int j = 0; j < 3; j++) {
    look[j] = (1 - t) * c0->look_at[j] + t * c1->look_at[j];
    up[j] = (1 - t) * c0->up[j] + t * c1->up[j];
    o0[j] = c0->position[j] - c0->look_at[j], o1[j] = c1->position[j] - c1->look_at[j];
  }
  norm3d(up);
  double pos[3];
  if (a->spherical && t > 0) {
    double l0 = norm3d(o0), l1 = norm3d(o1), dir[3];
    slerp3(o0, o1, t, dir);
    for (int j = 0; j < 3; j++) pos[j] = look[j] + ((1 - t) * l0 + t * l1) * dir[j];
  } else {
    for (int j = 0; j < 3; j++) pos[j] = (1 - t) * c0->position[j] + t * c1->position[j];
  }
  *cam = *c0;
  for (int j = 0; j < 3; j++)
    cam->position[j] = (float)pos[j], cam->look_at[j] = (float)look[j], cam->up[j] = (float)up[j];
  cam->vfov_deg = (float)((1 - t) * c0->vfov_deg + t * c1->vfov_deg);
  /* Keys with intrinsics all have the scene's; towards a key with a vfov of its own, the field
   * of view blends from the intrinsics' vertical one (and the principal point goes central). */
  if (c1->k_width <= 0) cam->fx = cam->fy = cam->cx = cam->cy = 0, cam->k_width = cam->k_height = 0;
  cam->aperture = (float)((1 - t) * c0->aperture + t * c1->aperture);
  if (k0->focus_given || k1->focus_given) {
    cam->focus_distance = (float)((1 - t) * c0->focus_distance + t * c1->focus_distance);
  } else {
    double d[3] = {look[0] - pos[0], look[1] - pos[1], look[2] - pos[2]};
    cam->focus_distance = (float)sqrt(dot3d(d, d));
  }
}

static void frame_camera(const kiln_job *job, long f, kiln_camera *cam) {
  *cam = job->camera;
  if (job->anim.cam_mode == KILN__CAMERA_ORBIT) orbit_camera(job, f, cam);
  else if (job->anim.cam_mode == KILN__CAMERA_KEYS) keyed_camera(job, f, cam);
}

/* Track tr's transform at frame f as a row-major 4x4 matrix: T R S. */
static void track_matrix(const kiln__obj_track *tr, long f, double m[16]) {
  size_t i;
  double t, q[4], r[3][3], tv[3], sv[3];
  segment(tr->keys, tr->nkeys, sizeof *tr->keys, f, &i, &t);
  const kiln__obj_key *k0 = &tr->keys[i], *k1 = &tr->keys[t > 0 ? i + 1 : i];
  kiln__quat_slerp(k0->q, k1->q, t, q);
  kiln__quat_matrix(q, r);
  for (int j = 0; j < 3; j++)
    tv[j] = (1 - t) * k0->t[j] + t * k1->t[j], sv[j] = (1 - t) * k0->s[j] + t * k1->s[j];
  for (int row = 0; row < 3; row++) {
    for (int col = 0; col < 3; col++) m[row * 4 + col] = r[row][col] * sv[col];
    m[row * 4 + 3] = tv[row];
  }
  m[12] = m[13] = m[14] = 0, m[15] = 1;
}

/* {"objects": {name: {"transform": {"matrix": [...]}}, ...}} for frame f. */
static char *tracks_patch(const kiln_job *job, long f) {
  cJSON *root = cJSON_CreateObject(), *objs = cJSON_AddObjectToObject(root, "objects");
  bool ok = objs != NULL;
  for (size_t i = 0; ok && i < job->anim.ntracks; i++) {
    double m[16];
    track_matrix(&job->anim.tracks[i], f, m);
    cJSON *o = cJSON_AddObjectToObject(objs, job->anim.tracks[i].name);
    cJSON *x = o ? cJSON_AddObjectToObject(o, "transform") : NULL;
    cJSON *a = cJSON_CreateDoubleArray(m, 16);
    ok = x && a && cJSON_AddItemToObject(x, "matrix", a);
    if (!ok) cJSON_Delete(a);
  }
  char *s = ok ? cJSON_PrintUnformatted(root) : NULL;
  cJSON_Delete(root);
  return s;
}

int kiln__anim_frame(const kiln_job *job, uint64_t index, kiln_job_frame *fr) {
  const kiln__anim *a = &job->anim;
  long f = a->start + (long)index * a->step;
  fr->index = index, fr->frame = f;
  snprintf(fr->name, sizeof fr->name, "%05ld", f);
  snprintf(fr->where, sizeof fr->where, "%s: frame %ld", job->path, f);
  fr->seed = a->seed_mode == KILN__SEED_FIXED   ? a->seed
             : a->seed_mode == KILN__SEED_FRAME ? job->seed + (uint32_t)(unsigned long)f
                                                : job->seed;
  frame_camera(job, f, &fr->camera);
  if (a->ntracks && !(fr->scene_patch = tracks_patch(job, f))) return KILN_ENOMEM;
  return 0;
}

void kiln__anim_free(kiln__anim *a) {
  for (size_t i = 0; i < a->ntracks; i++) free(a->tracks[i].keys);
  free(a->tracks), free(a->keys);
  memset(a, 0, sizeof *a);
}

/* ---- parsing ---------------------------------------------------------------------------------- */

static int parse_frames(kiln__anim *a, kiln__sj_ctx *c, const cJSON *o) {
  static const char *const keys[] = {"start", "end", "step", NULL};
  double s, e, st;
  int rc;
  if (!o) return kiln__sj_fail(c, "missing required key 'frames'");
  kiln__sj_push_key(c, "frames");
  if (cJSON_IsNumber(o)) {
    if (o->valuedouble != floor(o->valuedouble) || o->valuedouble < 1 || o->valuedouble > 1e15)
      return kiln__sj_fail(c,
                           "frames must be a frame count >= 1 or {\"start\", \"end\", \"step\"}");
    a->start = 0, a->end = (long)o->valuedouble - 1, a->step = 1;
  } else {
    if ((rc =
             kiln__sj_expect_object(c, o, "frames (a count, or {\"start\", \"end\", \"step\"})")) ||
        (rc = kiln__sj_check_keys(c, o, keys)) ||
        (rc = kiln__sj_integer(c, o, "start", 0, -1e15, 1e15, &s)) ||
        (rc = kiln__sj_num(c, o, "end", true, 0, -1e15, 1e15, &e)) ||
        (rc = kiln__sj_integer(c, o, "end", 0, -1e15, 1e15, &e)) ||
        (rc = kiln__sj_integer(c, o, "step", 1, 1, 1e15, &st)))
      return rc;
    if (e < s) return kiln__sj_fail_at(c, "end", "end (%.0f) is before start (%.0f)", e, s);
    a->start = (long)s, a->end = (long)e, a->step = (long)st;
  }
  kiln__sj_pop(c);
  return 0;
}

static int parse_seed(kiln__anim *a, kiln__sj_ctx *c, const cJSON *o) {
  if (!o) return 0;
  double d;
  if (cJSON_IsString(o) && strcmp(o->valuestring, "scene") == 0) return 0;
  if (cJSON_IsString(o) && strcmp(o->valuestring, "frame") == 0)
    return a->seed_mode = KILN__SEED_FRAME, 0;
  if (!cJSON_IsNumber(o))
    return kiln__sj_fail_at(c, "seed", "seed must be \"scene\", \"frame\" or a number");
  d = o->valuedouble;
  if (d != floor(d) || d < 0 || d > 4294967295.0)
    return kiln__sj_fail_at(c, "seed", "seed must be an integer in [0, 4294967295], not %g", d);
  a->seed_mode = KILN__SEED_FIXED, a->seed = (uint32_t)d;
  return 0;
}

static int parse_orbit(kiln_job *job, kiln__sj_ctx *c, const cJSON *o) {
  static const char *const keys[] = {
      "center", "radius", "height", "elevation", "start_angle", "degrees", "degrees_per_frame",
      "axis",   "vfov",   NULL};
  kiln__anim *a = &job->anim;
  const kiln_camera *sc = &job->camera;
  float v[3];
  double d, rel[3], hor[3];
  int rc;
  kiln__sj_push_key(c, "orbit");
  if ((rc = kiln__sj_expect_object(c, o, "orbit")) || (rc = kiln__sj_check_keys(c, o, keys)) ||
      (rc = kiln__sj_vec3(c, o, "axis", (const float[3]){0, 1, 0}, -1e30, 1e30, v)))
    return rc;
  for (int i = 0; i < 3; i++) a->axis[i] = v[i];
  if (norm3d(a->axis) < 1e-12) return kiln__sj_fail_at(c, "axis", "axis has zero length");
  if ((rc = kiln__sj_vec3(c, o, "center", sc->look_at, -1e30, 1e30, v))) return rc;
  for (int i = 0; i < 3; i++) a->center[i] = v[i], rel[i] = sc->position[i] - v[i];
  /* e0: +z made perpendicular to the axis (+x when the axis is z); e1 = axis x e0 */
  double z[3] = {0, 0, 1};
  if (fabs(a->axis[2]) > 0.999) z[0] = 1, z[2] = 0;
  double za = dot3d(z, a->axis), ha = dot3d(rel, a->axis);
  for (int i = 0; i < 3; i++) a->e0[i] = z[i] - za * a->axis[i], hor[i] = rel[i] - ha * a->axis[i];
  norm3d(a->e0);
  a->e1[0] = a->axis[1] * a->e0[2] - a->axis[2] * a->e0[1];
  a->e1[1] = a->axis[2] * a->e0[0] - a->axis[0] * a->e0[2];
  a->e1[2] = a->axis[0] * a->e0[1] - a->axis[1] * a->e0[0];
  double r0 = sqrt(dot3d(hor, hor)), angle0 = atan2(dot3d(hor, a->e1), dot3d(hor, a->e0)) / DEG;
  bool has_el = cJSON_GetObjectItemCaseSensitive(o, "elevation") != NULL;
  if (has_el && cJSON_GetObjectItemCaseSensitive(o, "height"))
    return kiln__sj_fail_at(c, "elevation", "give either height or elevation, not both");
  if ((rc = kiln__sj_num(c, o, "radius", false, has_el ? sqrt(dot3d(rel, rel)) : r0, 0, 1e30,
                         &a->radius)) ||
      (rc = kiln__sj_num(c, o, "height", false, ha, -1e30, 1e30, &a->height)) ||
      (rc = kiln__sj_num(c, o, "elevation", false, 0, -90, 90, &d)))
    return rc;
  if (!(a->radius > 0)) {
    if (cJSON_GetObjectItemCaseSensitive(o, "radius"))
      return kiln__sj_fail_at(c, "radius", "radius must be > 0");
    return kiln__sj_fail(c, "the scene's camera is on the orbit's axis: give 'radius'");
  }
  if (has_el) {
    if (fabs(d) >= 90)
      return kiln__sj_fail_at(c, "elevation", "elevation must be in (-90, 90) degrees");
    a->height = a->radius * sin(d * DEG), a->radius *= cos(d * DEG);
  }
  const cJSON *deg = cJSON_GetObjectItemCaseSensitive(o, "degrees");
  const cJSON *dpf = cJSON_GetObjectItemCaseSensitive(o, "degrees_per_frame");
  if (deg && dpf)
    return kiln__sj_fail_at(c, "degrees_per_frame",
                            "give either degrees or degrees_per_frame, not both");
  if (!deg && !dpf)
    return kiln__sj_fail(c, "missing required key 'degrees' (or 'degrees_per_frame')");
  if ((rc = kiln__sj_num(c, o, "start_angle", false, angle0, -1e6, 1e6, &a->start_deg)) ||
      (rc = kiln__sj_num(c, o, deg ? "degrees" : "degrees_per_frame", true, 0, -1e9, 1e9, &d)))
    return rc;
  a->deg_per_frame = dpf ? d : a->end > a->start ? d / (double)(a->end - a->start) : 0;
  double vf;
  if ((rc = kiln__sj_num(c, o, "vfov", false, sc->vfov_deg, 0, 180, &vf))) return rc;
  if (vf <= 0 || vf >= 180)
    return kiln__sj_fail_at(c, "vfov", "vfov must be in (0, 180) degrees, not %g", vf);
  a->vfov = cJSON_GetObjectItemCaseSensitive(o, "vfov") ? (float)vf : 0;
  a->cam_mode = KILN__CAMERA_ORBIT;
  kiln__sj_pop(c);
  return 0;
}

/* Camera keyframe o (at the current path) into k; lens: the frames use a thin lens. */
static int parse_cam_key(kiln_job *job, kiln__sj_ctx *c, const cJSON *o, bool lens,
                         kiln__cam_key *k) {
  static const char *const keys[] = {"frame", "position", "look_at",        "up",
                                     "vfov",  "aperture", "focus_distance", NULL};
  const kiln_camera *sc = &job->camera;
  kiln_camera *cam = &k->cam;
  double f, vf, ap, fd;
  int rc;
  *cam = *sc;
  if ((rc = kiln__sj_expect_object(c, o, "a keyframe")) || (rc = kiln__sj_check_keys(c, o, keys)) ||
      (rc = kiln__sj_num(c, o, "frame", true, 0, -1e15, 1e15, &f)) ||
      (rc = kiln__sj_integer(c, o, "frame", 0, -1e15, 1e15, &f)) ||
      (rc = kiln__sj_vec3(c, o, "position", NULL, -1e30, 1e30, cam->position)) ||
      (rc = kiln__sj_vec3(c, o, "look_at", NULL, -1e30, 1e30, cam->look_at)) ||
      (rc = kiln__sj_vec3(c, o, "up", sc->up, -1e30, 1e30, cam->up)) ||
      (rc = kiln__sj_num(c, o, "vfov", false, sc->vfov_deg, 0, 180, &vf)) ||
      (rc = kiln__sj_num(c, o, "aperture", false, sc->aperture, 0, 1e30, &ap)) ||
      (rc = kiln__sj_num(c, o, "focus_distance", false, sc->focus_distance, 0, 1e30, &fd)))
    return rc;
  k->frame = (long)f;
  cam->thin_lens = lens, cam->vfov_deg = (float)vf, cam->aperture = (float)(lens ? ap : 0);
  if (cJSON_GetObjectItemCaseSensitive(o, "vfov")) /* replaces the scene's intrinsics */
    cam->fx = cam->fy = cam->cx = cam->cy = 0, cam->k_width = cam->k_height = 0;
  k->focus_given = cJSON_GetObjectItemCaseSensitive(o, "focus_distance") || job->focus_given;
  float d[3] = {cam->look_at[0] - cam->position[0], cam->look_at[1] - cam->position[1],
                cam->look_at[2] - cam->position[2]};
  cam->focus_distance = (float)(k->focus_given ? fd : kiln__len3(d));
  if (lens && !(cam->focus_distance > 0))
    return kiln__sj_fail_at(c, "focus_distance", "focus_distance must be > 0");
  return kiln__job_check_camera(c, cam, NULL);
}

/* Every frame of the animation inside the keyframes' range has a camera that can render. */
static int check_keyed_frames(kiln_job *job, kiln__sj_ctx *c) {
  const kiln__anim *a = &job->anim;
  long lo = a->keys[0].frame, hi = a->keys[a->nkeys - 1].frame;
  long f = a->start;
  if (f <= lo) f += ((lo - f) / a->step + 1) * a->step; /* the first frame after the first key */
  for (; f <= a->end && f <= hi; f += a->step) {
    kiln_camera cam;
    keyed_camera(job, f, &cam);
    size_t i;
    double t;
    segment(a->keys, a->nkeys, sizeof *a->keys, f, &i, &t);
    kiln__sj_push_index(c, (int)i + 1);
    int rc = kiln__job_check_camera(c, &cam, NULL);
    if (rc) {
      char m[sizeof c->err->message];
      snprintf(m, sizeof m, "%s", c->err->message);
      snprintf(c->err->message, sizeof c->err->message,
               "frame %ld, interpolated towards this keyframe: %.400s", f, m);
      return rc;
    }
    kiln__sj_pop(c);
    if (a->step > hi - f) break; /* f + step would overflow past hi */
  }
  return 0;
}

static int parse_cam_keys(kiln_job *job, kiln__sj_ctx *c, const cJSON *cam) {
  static const char *const interps[] = {"linear", "spherical", NULL};
  kiln__anim *a = &job->anim;
  const cJSON *ks = cJSON_GetObjectItemCaseSensitive(cam, "keyframes");
  int interp, rc;
  if ((rc = kiln__sj_choice(c, cam, "interpolation", "linear", interps, &interp))) return rc;
  a->spherical = interp == 1;
  kiln__sj_push_key(c, "keyframes");
  if (!cJSON_IsArray(ks) || cJSON_GetArraySize(ks) < 1)
    return kiln__sj_fail(c, "keyframes must be a non-empty array");
  bool lens = job->camera.thin_lens;
  for (const cJSON *e = ks->child; e; e = e->next)
    lens = lens || cJSON_GetObjectItemCaseSensitive(e, "aperture");
  a->nkeys = (size_t)cJSON_GetArraySize(ks);
  if (!(a->keys = calloc(a->nkeys, sizeof *a->keys))) return kiln__sj_nomem(c);
  int i = 0;
  for (const cJSON *e = ks->child; e; e = e->next, i++) {
    kiln__sj_push_index(c, i);
    if ((rc = parse_cam_key(job, c, e, lens, &a->keys[i]))) return rc;
    if (i && a->keys[i].frame <= a->keys[i - 1].frame)
      return kiln__sj_fail_at(c, "frame",
                              "keyframes must be in increasing frame order (%ld after %ld)",
                              a->keys[i].frame, a->keys[i - 1].frame);
    if (i && a->spherical) {
      double o0[3], o1[3];
      for (int j = 0; j < 3; j++)
        o0[j] = a->keys[i - 1].cam.position[j] - a->keys[i - 1].cam.look_at[j],
        o1[j] = a->keys[i].cam.position[j] - a->keys[i].cam.look_at[j];
      norm3d(o0), norm3d(o1);
      if (dot3d(o0, o1) < -0.9999)
        return kiln__sj_fail_at(c, "position",
                                "opposite the previous keyframe around look_at: the spherical "
                                "path is ambiguous (add a keyframe between them)");
    }
    kiln__sj_pop(c);
  }
  if ((rc = check_keyed_frames(job, c))) return rc;
  a->cam_mode = KILN__CAMERA_KEYS;
  kiln__sj_pop(c);
  return 0;
}

static int parse_camera(kiln_job *job, kiln__sj_ctx *c, const cJSON *cam) {
  static const char *const k_orbit[] = {"orbit", NULL};
  static const char *const k_keys[] = {"keyframes", "interpolation", NULL};
  int rc;
  kiln__sj_push_key(c, "camera");
  if ((rc = kiln__sj_expect_object(c, cam, "camera"))) return rc;
  const cJSON *orbit = cJSON_GetObjectItemCaseSensitive(cam, "orbit");
  if (orbit && cJSON_GetObjectItemCaseSensitive(cam, "keyframes"))
    return kiln__sj_fail_at(c, "keyframes", "a camera has either 'orbit' or 'keyframes', not both");
  if ((rc = kiln__sj_check_keys(c, cam, orbit ? k_orbit : k_keys))) return rc;
  if (orbit) rc = parse_orbit(job, c, orbit);
  else if (cJSON_GetObjectItemCaseSensitive(cam, "keyframes")) rc = parse_cam_keys(job, c, cam);
  else rc = kiln__sj_fail(c, "missing required key 'orbit' or 'keyframes'");
  if (!rc) kiln__sj_pop(c);
  return rc;
}

/* rotate (at the current path): [x, y, z] Euler degrees or {"axis", "angle"}, as a quaternion. */
static int parse_rotate(kiln__sj_ctx *c, const cJSON *o, double q[4]) {
  static const char *const keys[] = {"axis", "angle", NULL};
  float v[3];
  double ang, e[3];
  int rc;
  kiln__sj_push_key(c, "rotate");
  if (cJSON_IsObject(o)) {
    if ((rc = kiln__sj_check_keys(c, o, keys)) ||
        (rc = kiln__sj_vec3(c, o, "axis", NULL, -1e30, 1e30, v)) ||
        (rc = kiln__sj_num(c, o, "angle", true, 0, -1e6, 1e6, &ang)))
      return rc;
    if (kiln__len3(v) < 1e-12) return kiln__sj_fail_at(c, "axis", "axis has zero length");
    kiln__quat_axis((const double[3]){v[0], v[1], v[2]}, ang, q);
  } else {
    if (kiln__sj_vec3_value(c, o, "rotate", -1e6, 1e6, v))
      return kiln__sj_fail(
          c, "rotate must be [x, y, z] Euler angles in degrees or {\"axis\", \"angle\"}");
    e[0] = v[0], e[1] = v[1], e[2] = v[2];
    kiln__quat_euler(e, q);
  }
  kiln__sj_pop(c);
  return 0;
}

static int parse_obj_key(kiln__sj_ctx *c, const cJSON *o, kiln__obj_key *k) {
  static const char *const keys[] = {"frame", "translate", "rotate", "scale", NULL};
  double f;
  float t[3], s[3] = {1, 1, 1};
  int rc;
  if ((rc = kiln__sj_expect_object(c, o, "a keyframe")) || (rc = kiln__sj_check_keys(c, o, keys)) ||
      (rc = kiln__sj_num(c, o, "frame", true, 0, -1e15, 1e15, &f)) ||
      (rc = kiln__sj_integer(c, o, "frame", 0, -1e15, 1e15, &f)) ||
      (rc = kiln__sj_vec3(c, o, "translate", (const float[3]){0, 0, 0}, -1e30, 1e30, t)))
    return rc;
  k->frame = (long)f;
  k->q[0] = 1, k->q[1] = k->q[2] = k->q[3] = 0;
  const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "rotate"),
              *sc = cJSON_GetObjectItemCaseSensitive(o, "scale");
  if (r && (rc = parse_rotate(c, r, k->q))) return rc;
  if (sc) {
    kiln__sj_push_key(c, "scale");
    if (cJSON_IsNumber(sc) && isfinite(sc->valuedouble) && fabs(sc->valuedouble) <= 1e30)
      s[0] = s[1] = s[2] = (float)sc->valuedouble;
    else if (kiln__sj_vec3_value(c, sc, "scale", -1e30, 1e30, s))
      return kiln__sj_fail(c, "scale must be a number or an array of 3 numbers");
    for (int i = 0; i < 3; i++)
      if (fabs(s[i]) < 1e-12)
        return kiln__sj_fail(c, "scale must not be zero (it flattens the object)");
    kiln__sj_pop(c);
  }
  for (int i = 0; i < 3; i++) k->t[i] = t[i], k->s[i] = s[i];
  return 0;
}

static int parse_track(kiln__sj_ctx *c, const cJSON *o, kiln__obj_track *tr) {
  static const char *const keys[] = {"keyframes", NULL};
  int rc, i = 0;
  if ((rc = kiln__sj_expect_object(c, o, "an object's animation")) ||
      (rc = kiln__sj_check_keys(c, o, keys)))
    return rc;
  const cJSON *ks = cJSON_GetObjectItemCaseSensitive(o, "keyframes");
  kiln__sj_push_key(c, "keyframes");
  if (!cJSON_IsArray(ks) || cJSON_GetArraySize(ks) < 1)
    return kiln__sj_fail(c, "keyframes must be a non-empty array");
  if (!(tr->keys = calloc((size_t)cJSON_GetArraySize(ks), sizeof *tr->keys)))
    return kiln__sj_nomem(c);
  for (const cJSON *e = ks->child; e; e = e->next, i++) {
    kiln__sj_push_index(c, i);
    kiln__obj_key *k = &tr->keys[i];
    if ((rc = parse_obj_key(c, e, k))) return rc;
    tr->nkeys++;
    if (i && k->frame <= k[-1].frame)
      return kiln__sj_fail_at(c, "frame",
                              "keyframes must be in increasing frame order (%ld after %ld)",
                              k->frame, k[-1].frame);
    for (int j = 0; i && j < 3; j++)
      if ((k->s[j] > 0) != (k[-1].s[j] > 0))
        return kiln__sj_fail_at(c, "scale",
                                "scale changes sign since the previous keyframe: the object would "
                                "pass through zero size");
    kiln__sj_pop(c);
  }
  kiln__sj_pop(c);
  return 0;
}

static int parse_tracks(kiln_job *job, kiln__sj_ctx *c, const cJSON *o) {
  kiln__anim *a = &job->anim;
  int rc;
  kiln__sj_push_key(c, "objects");
  if (!cJSON_IsObject(o)) return kiln__sj_fail(c, "objects must be an object of object names");
  size_t n = (size_t)cJSON_GetArraySize(o);
  if (n && !(a->tracks = calloc(n, sizeof *a->tracks))) return kiln__sj_nomem(c);
  const cJSON *repeat;
  if (kiln__json_first_repeat(o, &repeat)) return kiln__sj_nomem(c);
  for (const cJSON *m = o->child; m; m = m->next) {
    kiln__sj_push_key(c, m->string);
    if (m == repeat) { /* after the tracks before it are checked, as a reader would find it */
      c->path[c->depth - 1].index = 1;
      rc = kiln__sj_fail(c, "duplicate key '%s'", m->string);
      kiln__json_locate(c->text, c->path, c->depth, true, &c->err->line, &c->err->column);
      return rc;
    }
    int idx = kiln__job_find(job->object_index, job->nobjects, m->string);
    if (idx == -1) return kiln__job_no_such(c, "object", m->string, job->objects, job->nobjects);
    if (idx == -2)
      return kiln__sj_fail(
          c, "several objects of the scene are named '%s': give them distinct names", m->string);
    kiln__obj_track *tr = &a->tracks[a->ntracks++];
    tr->name = m->string;
    if ((rc = parse_track(c, m, tr))) return rc;
    kiln__sj_pop(c);
  }
  kiln__sj_pop(c);
  return 0;
}

int kiln__anim_parse(kiln_job *job, kiln__sj_ctx *c, const cJSON *o) {
  static const char *const keys[] = {"frames", "seed", "camera", "objects", NULL};
  kiln__anim *a = &job->anim;
  const cJSON *v;
  int rc;
  if ((rc = kiln__sj_expect_object(c, o, "animation")) || (rc = kiln__sj_check_keys(c, o, keys)) ||
      (rc = parse_frames(a, c, cJSON_GetObjectItemCaseSensitive(o, "frames"))) ||
      (rc = parse_seed(a, c, cJSON_GetObjectItemCaseSensitive(o, "seed"))) ||
      ((v = cJSON_GetObjectItemCaseSensitive(o, "camera")) && (rc = parse_camera(job, c, v))) ||
      ((v = cJSON_GetObjectItemCaseSensitive(o, "objects")) && (rc = parse_tracks(job, c, v))))
    return rc;
  job->count = (uint64_t)((a->end - a->start) / a->step) + 1;
  return 0;
}
