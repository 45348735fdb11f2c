/* test_passes.c: the passes derived from the first hit (engine/batch/derive.c) on frames the path
 * tracer renders: position against depth and the surfaces' own geometry, uv across a quad,
 * objcoord and nocs of a transformed box against its instance's xform and box, category against
 * the instance pass, and the flows against a second frame rendered after the camera or an object
 * moved. Scenes are built in code with their instance table (the loader fills it for files). */
// kt: timeout 300
#define _GNU_SOURCE
#include <math.h>
#include <stdlib.h>

#include "batch_internal.h"
#include "render_query.h"
#include "render_test_util.h"

enum { W = 32, H = 32 };

/* Row-major affine xform: scale s, then rotation about y by ay and about x by ax (degrees), then
 * translation t. */
static void make_xform(const float s[3], double ay, double ax, const float t[3], float x[16]) {
  double cy = cos(ay * M_PI / 180), sy = sin(ay * M_PI / 180);
  double cx = cos(ax * M_PI / 180), sx = sin(ax * M_PI / 180);
  double ry[9] = {cy, 0, sy, 0, 1, 0, -sy, 0, cy}, rx[9] = {1, 0, 0, 0, cx, -sx, 0, sx, cx};
  double r[9];
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) {
      r[3 * i + j] = 0;
      for (int k = 0; k < 3; k++) r[3 * i + j] += rx[3 * i + k] * ry[3 * k + j];
    }
  memset(x, 0, 16 * sizeof *x);
  for (int i = 0; i < 3; i++) {
    for (int j = 0; j < 3; j++) x[4 * i + j] = (float)(r[3 * i + j] * s[j]);
    x[4 * i + 3] = t[i];
  }
  x[15] = 1;
}

static void xf(const float x[16], const float p[3], float o[3]) {
  for (int i = 0; i < 3; i++)
    o[i] = x[4 * i] * p[0] + x[4 * i + 1] * p[1] + x[4 * i + 2] * p[2] + x[4 * i + 3];
}

/* The unit box [-0.5, 0.5]^3 placed by x: 6 quads of object and instance id `id`. */
static void add_box(kiln__scene *s, const float x[16], uint32_t id) {
  static const int faces[6][4][3] = {
      {{0, 0, 0}, {0, 1, 0}, {1, 1, 0}, {1, 0, 0}}, {{0, 0, 1}, {1, 0, 1}, {1, 1, 1}, {0, 1, 1}},
      {{0, 0, 0}, {0, 0, 1}, {0, 1, 1}, {0, 1, 0}}, {{1, 0, 0}, {1, 1, 0}, {1, 1, 1}, {1, 0, 1}},
      {{0, 0, 0}, {1, 0, 0}, {1, 0, 1}, {0, 0, 1}}, {{0, 1, 0}, {0, 1, 1}, {1, 1, 1}, {1, 1, 0}}};
  for (int f = 0; f < 6; f++) {
    float v[4][3];
    for (int c = 0; c < 4; c++) {
      float p[3] = {faces[f][c][0] - 0.5f, faces[f][c][1] - 0.5f, faces[f][c][2] - 0.5f};
      xf(x, p, v[c]);
    }
    add_quad(s, v, 0, id);
  }
}

/* A wall in the plane z = 2 facing the camera, x, y in [-3, 3], uv 0..1 across it (u along +x, v
 * along +y), object and instance 2. */
static void add_wall(kiln__scene *s) {
  const float v[4][3] = {{-3, -3, 2}, {3, -3, 2}, {3, 3, 2}, {-3, 3, 2}};
  const float uv[4][2] = {{0, 0}, {1, 0}, {1, 1}, {0, 1}};
  add_quad_attr(s, v, uv, NULL, 0, 2);
}

/* The scene: a box placed by x (object 1) before the wall (object 2), with the instance table
 * and categories 7 (box) and none (wall). */
static kiln__scene box_scene(const float x[16]) {
  kiln__scene s = base_scene();
  s.settings.width = W, s.settings.height = H, s.settings.spp = 1;
  add_material(&s, (kiln__material){.type = KILN__MAT_DIFFUSE, .albedo = {0.5f, 0.5f, 0.5f}});
  add_box(&s, x, 1);
  add_wall(&s);
  s.nobjects = 2;
  s.object_names = calloc(2, sizeof *s.object_names);
  s.object_names[0] = strdup("box"), s.object_names[1] = strdup("wall");
  s.object_category_id = calloc(2, sizeof *s.object_category_id);
  s.object_category_id[0] = 7;
  s.ninstances = 2;
  s.instances = calloc(2, sizeof *s.instances);
  s.instances[0].object_id = 1;
  memcpy(s.instances[0].xform, x, 16 * sizeof(float));
  for (int k = 0; k < 3; k++) s.instances[0].bbox_min[k] = -0.5f, s.instances[0].bbox_max[k] = 0.5f;
  s.instances[1].object_id = 2;
  const float id[16] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
  memcpy(s.instances[1].xform, id, sizeof id);
  const float lo[3] = {-3, -3, 2}, hi[3] = {3, 3, 2};
  memcpy(s.instances[1].bbox_min, lo, 12), memcpy(s.instances[1].bbox_max, hi, 12);
  return s;
}

/* Frees what box_scene added that the scene's own free may not know (and leaves nothing twice). */
static void close_box(ctx *c) {
  kiln__scene *d = &c->scene->data;
  free(d->instances), free(d->object_category_id);
  d->instances = NULL, d->object_category_id = NULL, d->ninstances = 0;
  close_ctx(c);
}

static kiln_camera camera_at(float x, float y, float z, float lx) {
  kiln_camera cam = {0};
  cam.position[0] = x, cam.position[1] = y, cam.position[2] = z;
  cam.look_at[0] = lx;
  cam.up[1] = 1;
  cam.vfov_deg = 40;
  return cam;
}

static const kiln_image *render_with(ctx *c, const kiln_camera *cam, kiln_future **f) {
  kiln_frame_config fc;
  kiln_frame_config_default(c->r, &fc);
  fc.camera = cam;
  return render(c, &fc, f);
}

static kiln__frame_view view_of(const kiln_camera *cam, const ctx *c) {
  return (kiln__frame_view){cam, c->scene->data.instances, c->scene->data.ninstances, NULL};
}

static void derive(const kiln_image *img, const ctx *c, const kiln__frame_view *self,
                   const kiln__frame_view *next, unsigned passes, void *out[KILN__NPASS]) {
  kiln__derive_in in = {.img = img, .scene = &c->scene->data, .self = *self, .next = next};
  char msg[256] = "";
  int rc = kiln__derive(&in, passes, out, msg, sizeof msg);
  if (rc) KT_FAIL("kiln__derive: %s: %s", kiln_err_name(rc), msg);
}

static const float BOX_S[3] = {1.0f, 0.6f, 0.8f}, BOX_T[3] = {0.2f, -0.1f, 0.3f};

/* The box scene (the box turned 30 and 20 degrees) rendered once from cam, with passes derived
 * from it (no next frame); shot_close releases it. */
typedef struct shot {
  float x[16]; /* the box's xform */
  ctx c;
  kiln_camera cam;
  kiln_future *f;
  const kiln_image *img;
  void *out[KILN__NPASS];
  kiln_image_info ii;
} shot;

static void shoot(shot *t, kiln_camera cam, unsigned passes) {
  make_xform(BOX_S, 30, 20, BOX_T, t->x);
  kiln__scene s = box_scene(t->x);
  t->c = open_ctx(&s, NULL);
  t->cam = cam;
  t->img = render_with(&t->c, &t->cam, &t->f);
  kiln__frame_view v = view_of(&t->cam, &t->c);
  derive(t->img, &t->c, &v, NULL, passes, t->out);
  t->ii = info_of(t->img);
}

static void shot_close(shot *t) {
  kiln__derived_free(t->out);
  kiln_future_release(t->f);
  close_box(&t->c);
}

/* position is the hit: its distance along the view axis is the depth, wall pixels lie on z = 2,
 * and it is NaN exactly where depth says background. */
TEST(position_matches_depth) {
  shot t;
  shoot(&t, camera_at(0.3f, 0.4f, -4, 0), KILN_PASS_POSITION);
  const kiln_camera cam = t.cam;
  const float *P = t.out[KILN__PI_POSITION];
  const kiln_image_info ii = t.ii;
  double wv[3], wl = 0;
  for (int k = 0; k < 3; k++) wv[k] = (double)cam.look_at[k] - cam.position[k], wl += wv[k] * wv[k];
  int wall = 0;
  for (int i = 0; i < W * H; i++) {
    const float *p = P + 3 * i;
    if (ii.object_id[i] == 0) {
      KT_TRUE(isnan(p[0]) && isnan(p[1]) && isnan(p[2]));
      continue;
    }
    double along = 0;
    for (int k = 0; k < 3; k++) along += (p[k] - cam.position[k]) * wv[k] / sqrt(wl);
    if (fabs(along - ii.depth[i]) > 1e-5 * ii.depth[i])
      KT_FAIL("pixel %d: position %g %g %g is %.7g along the view, depth %.7g", i, p[0], p[1], p[2],
              along, ii.depth[i]);
    if (ii.object_id[i] == 2) {
      wall++;
      if (fabsf(p[2] - 2) > 1e-5f) KT_FAIL("wall pixel %d at z %.7g, not 2", i, p[2]);
    }
  }
  KT_TRUE(wall > 100);
  shot_close(&t);
}

/* uv of the wall is linear across it (it faces the camera, so also across the pixels of a row),
 * and equals its position mapped to 0..1. uv has 1 in its third channel on a surface only. */
TEST(uv_linear_on_quad) {
  shot t;
  shoot(&t, camera_at(0, 0, -4, 0), KILN_PASS_POSITION);
  const float *P = t.out[KILN__PI_POSITION];
  const kiln_image_info ii = t.ii;
  int n = 0;
  for (int i = 0; i < W * H; i++) {
    if (ii.object_id[i] != 2) continue;
    n++;
    float u = ii.uv[2 * i], vv = ii.uv[2 * i + 1];
    float eu = (P[3 * i] + 3) / 6, ev = (P[3 * i + 1] + 3) / 6;
    if (fabsf(u - eu) > 1e-5f || fabsf(vv - ev) > 1e-5f)
      KT_FAIL("pixel %d: uv %.7g %.7g, its position gives %.7g %.7g", i, u, vv, eu, ev);
    int px = i % W;
    if (px + 1 < W && ii.object_id[i + 1] == 2 && px > 0 && ii.object_id[i - 1] == 2) {
      float d1 = ii.uv[2 * (i + 1)] - u, d0 = u - ii.uv[2 * (i - 1)];
      if (fabsf(d1 - d0) > 1e-5f) KT_FAIL("pixel %d: u steps %.7g then %.7g", i, d0, d1);
      KT_TRUE(fabsf(ii.uv[2 * (i + 1) + 1] - vv) < 1e-6f); /* v constant along a row */
    }
  }
  KT_TRUE(n > 100);
  /* the file form: u, v, hit */
  void *data = NULL;
  size_t len = 0;
  double conv = 0;
  char msg[256];
  KT_CODE(kiln__encode_pass(KILN_FORMAT_NPY, 0, false, t.img, t.out, KILN__PI_UV, &data, &len,
                            &conv, msg, sizeof msg),
          KILN_OK);
  const float *npy = (const float *)((const char *)data + len - (size_t)W * H * 12);
  for (int i = 0; i < W * H; i++) {
    KT_EQ(npy[3 * i + 2], ii.object_id[i] ? 1.0f : 0.0f);
    if (ii.object_id[i]) KT_EQ(npy[3 * i], ii.uv[2 * i]);
  }
  free(data);
  shot_close(&t);
}

/* objcoord of the box lies in its object box and is its instance's inverse xform applied to the
 * position; nocs is the box's own normalisation of it; category is the instance's object's. */
TEST(objcoord_nocs_category) {
  shot t;
  shoot(&t, camera_at(-0.5f, 1.0f, -4, 0),
        KILN_PASS_POSITION | KILN_PASS_OBJCOORD | KILN_PASS_NOCS | KILN_PASS_CATEGORY);
  const float *x = t.x, *P = t.out[KILN__PI_POSITION], *O = t.out[KILN__PI_OBJCOORD],
              *N = t.out[KILN__PI_NOCS];
  const uint32_t *cat = t.out[KILN__PI_CATEGORY];
  const kiln_image_info ii = t.ii;
  int box = 0;
  double diag = sqrt(1.0 * 1.0 * 3);
  for (int i = 0; i < W * H; i++) {
    uint32_t inst = ii.instance_id[i];
    KT_EQ(cat[i], inst == 1 ? 7u : 0u);
    if (inst == 0) {
      KT_TRUE(isnan(O[3 * i]) && isnan(N[3 * i]));
      continue;
    }
    if (inst != 1) continue;
    box++;
    float back[3];
    xf(x, O + 3 * i, back); /* the xform of objcoord is the position again */
    for (int k = 0; k < 3; k++) {
      if (fabsf(O[3 * i + k]) > 0.5f + 1e-4f)
        KT_FAIL("pixel %d: objcoord %g %g %g outside the box", i, O[3 * i], O[3 * i + 1],
                O[3 * i + 2]);
      if (fabsf(back[k] - P[3 * i + k]) > 1e-4f)
        KT_FAIL("pixel %d: xform(objcoord)[%d] %.7g, position %.7g", i, k, back[k], P[3 * i + k]);
      float want = (float)(O[3 * i + k] / diag + 0.5);
      KT_TRUE(fabsf(N[3 * i + k] - want) < 1e-6f);
      KT_TRUE(N[3 * i + k] >= 0 && N[3 * i + k] <= 1);
    }
    /* a face of the box: one coordinate is at +-0.5 */
    float m = 0;
    for (int k = 0; k < 3; k++) m = fmaxf(m, fabsf(O[3 * i + k]));
    if (fabsf(m - 0.5f) > 1e-4f) KT_FAIL("pixel %d: objcoord not on a face (max |c| %g)", i, m);
  }
  KT_TRUE(box > 40);
  shot_close(&t);
}

/* The face of the box (or the wall) object point o is on: its axis and sign, 6 for the wall. */
static int face_of(uint32_t inst, const float *o) {
  if (inst == 2) return 6;
  int ax = 0;
  for (int k = 1; k < 3; k++)
    if (fabsf(o[k]) > fabsf(o[ax])) ax = k;
  return 2 * ax + (o[ax] > 0);
}

/* The scene of the frame after a's on a's device (a renderer of its own), with the tracer of its
 * surfaces that the flow's occlusion test uses; close_next releases both. */
static ctx open_next(const ctx *a, kiln__scene *s, kiln__tracer **tr) {
  kiln_scene *sc = kiln__scene_wrap(s);
  KT_TRUE(sc != NULL);
  kiln_renderer *r;
  kiln_renderer_config rc;
  kiln_renderer_config_default(&rc);
  KT_CODE(kiln_renderer_create(sc, &a->dev, 1, &rc, &r), KILN_OK);
  KT_CODE(kiln__tracer_create(&sc->data, NULL, tr), KILN_OK);
  return (ctx){a->gpu, a->dev, r, sc};
}

/* Frees what open_next made, and what box_scene added to its scene (as close_box does). */
static void close_next(ctx *b, kiln__tracer *tr) {
  kiln__tracer_destroy(tr);
  kiln_renderer_destroy(b->r);
  kiln__scene *d = &b->scene->data;
  free(d->instances), free(d->object_category_id);
  d->instances = NULL, d->object_category_id = NULL;
  kiln_scene_destroy(b->scene);
}

/* Frame t (ca, scene a) and frame t + 1 (cb, scene b): a valid forward flow of t (of the pixels
 * of instance `only`; 0: all) lands where t + 1 sees the same point: the object coordinates of
 * t + 1 interpolated bilinearly at the landing point, between 4 pixel centres on one face of the
 * same instance, are those of the pixel of t (to 0.01: the interpolation's own error on a face
 * seen in perspective). Points that land between faces are not checked. The flow is tested for
 * occlusion against scene b's surfaces: a point hidden at t + 1 has none. */
static void check_flow(kiln__scene *sa, kiln__scene *sb, const kiln_camera *ca,
                       const kiln_camera *cb, uint32_t only, double min_motion) {
  ctx a = open_ctx(sa, NULL);
  kiln__tracer *tb;
  ctx b = open_next(&a, sb, &tb);
  kiln_future *fa, *fb;
  const kiln_image *ia = render_with(&a, ca, &fa), *ib = render_with(&b, cb, &fb);
  kiln__frame_view va = view_of(ca, &a), vb = view_of(cb, &b);
  vb.tracer = tb;
  void *oa[KILN__NPASS], *ob[KILN__NPASS];
  derive(ia, &a, &va, &vb, KILN_PASS_FLOW_FWD | KILN_PASS_OBJCOORD, oa);
  derive(ib, &b, &vb, NULL, KILN_PASS_OBJCOORD | KILN_PASS_FLOW_FWD, ob);
  const float *fl = oa[KILN__PI_FLOW_FWD], *Oa = oa[KILN__PI_OBJCOORD], *Ob = ob[KILN__PI_OBJCOORD];
  kiln_image_info A = info_of(ia), B = info_of(ib);
  int valid = 0, checked = 0, same = 0, worst_at = -1;
  double motion = 0, worst = 0;
  for (int i = 0; i < W * H; i++) {
    const float *v = fl + 3 * i;
    KT_TRUE(((const float *)ob[KILN__PI_FLOW_FWD])[3 * i + 2] ==
            0); /* no next frame: invalid everywhere */
    if (A.instance_id[i] == 0) {
      KT_TRUE(v[2] == 0);
      continue;
    }
    if (v[2] == 0 || (only && A.instance_id[i] != only)) continue;
    valid++;
    motion += hypot(v[0], v[1]);
    double qx = i % W + v[0], qy = i / W + v[1];
    KT_TRUE(qx >= -0.5 && qx < W - 0.5 && qy >= -0.5 && qy < H - 0.5);
    int x0 = (int)floor(qx), y0 = (int)floor(qy);
    if (x0 < 0 || y0 < 0 || x0 + 1 >= W || y0 + 1 >= H) continue;
    int js[4] = {y0 * W + x0, y0 * W + x0 + 1, (y0 + 1) * W + x0, (y0 + 1) * W + x0 + 1};
    int face = face_of(A.instance_id[i], Oa + 3 * i), on = 0;
    for (int k = 0; k < 4; k++)
      on += B.instance_id[js[k]] == A.instance_id[i] &&
            face_of(B.instance_id[js[k]], Ob + 3 * js[k]) == face;
    if (on < 4) continue;
    checked++;
    double fx = qx - x0, fy = qy - y0,
           wt[4] = {(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy}, d = 0;
    for (int c = 0; c < 3; c++) {
      double o = 0;
      for (int k = 0; k < 4; k++) o += wt[k] * Ob[3 * js[k] + c];
      d += pow(o - Oa[3 * i + c], 2);
    }
    if (sqrt(d) < 0.01) same++;
    if (sqrt(d) > worst) worst = sqrt(d), worst_at = i;
  }
  if (checked < valid / 2 || same < checked * 98 / 100)
    KT_FAIL("%d valid flows, %d land inside one face, %d of those on their own point (the worst "
            "%.4f away, pixel %d)",
            valid, checked, same, worst, worst_at);
  KT_TRUE(valid > (only ? 60 : W * H / 3));
  if (motion / valid < min_motion)
    KT_FAIL("mean motion %.3g px: the test would pass without any flow", motion / valid);
  kiln__derived_free(oa), kiln__derived_free(ob);
  kiln_future_release(fb), kiln_future_release(fa);
  close_next(&b, tb);
  close_box(&a);
}

TEST(flow_moving_camera) {
  float x[16];
  make_xform(BOX_S, 30, 20, BOX_T, x);
  kiln__scene sa = box_scene(x), sb = box_scene(x);
  kiln_camera ca = camera_at(0, 0, -4, 0), cb = camera_at(0.8f, 0.4f, -3.5f, 0.3f);
  check_flow(&sa, &sb, &ca, &cb, 0, 2);
}

TEST(flow_moving_object) {
  float xa[16], xb[16];
  const float tb[3] = {0.9f, 0.1f, 0.2f};
  make_xform(BOX_S, 30, 20, BOX_T, xa);
  make_xform(BOX_S, 38, 24, tb, xb);
  kiln__scene sa = box_scene(xa), sb = box_scene(xb);
  kiln_camera cam = camera_at(0, 0, -4, 0);
  check_flow(&sa, &sb, &cam, &cam, 1, 4); /* the box's own pixels move */
  sa = box_scene(xa), sb = box_scene(xb);
  check_flow(&sa, &sb, &cam, &cam, 0, 0.5); /* the wall it covers is hidden, the rest still */
}

/* Wall points the box moves in front of are hidden at t + 1: none of them has a valid flow when
 * the occlusion test has the next frame's surfaces, and some do without it. */
TEST(flow_marks_hidden) {
  float xa[16], xb[16];
  const float tb[3] = {0.9f, 0.1f, 0.2f};
  make_xform(BOX_S, 30, 20, BOX_T, xa);
  make_xform(BOX_S, 38, 24, tb, xb);
  kiln__scene sa = box_scene(xa), sb = box_scene(xb);
  kiln_camera cam = camera_at(0, 0, -4, 0);
  ctx a = open_ctx(&sa, NULL);
  kiln__tracer *tr;
  ctx b = open_next(&a, &sb, &tr);
  kiln_future *fa, *fb;
  const kiln_image *ia = render_with(&a, &cam, &fa), *ib = render_with(&b, &cam, &fb);
  kiln__frame_view va = view_of(&cam, &a), vb = view_of(&cam, &b);
  int hidden_valid[2] = {0, 0}, hidden = 0;
  for (int pass = 0; pass < 2; pass++) {
    vb.tracer = pass ? tr : NULL;
    void *o[KILN__NPASS];
    derive(ia, &a, &va, &vb, KILN_PASS_FLOW_FWD, o);
    const float *fl = o[KILN__PI_FLOW_FWD];
    kiln_image_info A = info_of(ia), B = info_of(ib);
    for (int i = 0; i < W * H; i++) {
      if (A.instance_id[i] != 2) continue;
      /* the wall stands still: its point lands on its own pixel, which now sees the box */
      bool covered = B.instance_id[i] == 1;
      hidden += pass == 0 && covered;
      if (covered && fl[3 * i + 2] > 0) hidden_valid[pass]++;
    }
    kiln__derived_free(o);
  }
  KT_TRUE(hidden > 20);
  KT_EQ(hidden_valid[0], hidden);
  KT_EQ(hidden_valid[1], 0);
  kiln_future_release(fb), kiln_future_release(fa);
  close_next(&b, tr);
  close_box(&a);
}

/* A point behind the other frame's camera, or outside its image, has no valid flow; nor has a
 * frame without a neighbour. */
TEST(flow_marks_out_of_view) {
  float x[16];
  make_xform(BOX_S, 30, 20, BOX_T, x);
  kiln__scene s = box_scene(x);
  ctx c = open_ctx(&s, NULL);
  kiln_camera ca = camera_at(0, 0, -4, 0), cb = camera_at(2.5f, 0, -4, 2.5f); /* half out */
  kiln_camera cbehind = camera_at(0, 0, 4, 0); /* behind the wall, looking back */
  cbehind.look_at[2] = 10;
  kiln_future *f;
  const kiln_image *img = render_with(&c, &ca, &f);
  kiln__frame_view va = view_of(&ca, &c), vb = view_of(&cb, &c), vc = view_of(&cbehind, &c);
  void *o1[KILN__NPASS], *o2[KILN__NPASS];
  derive(img, &c, &va, &vb, KILN_PASS_FLOW_FWD, o1);
  derive(img, &c, &va, &vc, KILN_PASS_FLOW_FWD, o2);
  const float *f1 = o1[KILN__PI_FLOW_FWD], *f2 = o2[KILN__PI_FLOW_FWD];
  int in = 0, out = 0;
  for (int i = 0; i < W * H; i++) {
    KT_TRUE(f2[3 * i + 2] == 0);
    if (f1[3 * i + 2] == 0) {
      if (info_of(img).object_id[i]) out++;
      continue;
    }
    in++;
    /* looking along +z with y up, +x is the camera's left: it moved left, so every point it
     * still sees moved right in the image */
    KT_TRUE(f1[3 * i] > 0);
  }
  KT_TRUE(in > 50 && out > 50);
  kiln__derived_free(o1), kiln__derived_free(o2);
  kiln_future_release(f);
  close_box(&c);
}
