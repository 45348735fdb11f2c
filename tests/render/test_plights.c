/* test_plights.c: punctual lights (point, spot, sun; docs/SCENE.md "Punctual lights") on a diffuse
 * plane of albedo 0.8 seen straight down, on lavapipe under the validation layer. A delta light
 * over a lone plane gives every sample the exact radiance at its point, so the expected pixel is
 * the documented model averaged over the pixel (an 8x8 grid of rays): a albedo / pi * I cos / d^2,
 * glTF's spot falloff, E cos for a sun. Lights with extent add noise: those compare means within
 * 4 standard errors. Last, the numbers Cycles (Blender 3.4) rendered for the same scenes. */
// kt: timeout 300
#include "render_internal.h"
#include "render_test_util.h"

static const double PI = 3.14159265358979323846;
static const double ALB = 0.8;

enum { W = 64 };
static const float CAM_POS[3] = {0, 3, 0}, CAM_AT[3] = {0, 0, 0}, CAM_UP[3] = {0, 0, -1};
static const float VFOV = 30;

/* A 4 x 4 diffuse plane at y = 0 facing +y, seen from 3 above with a 30-degree field of view (the
 * view spans +-0.80 on the plane), nothing else, a black sky. */
static kiln__scene plane_scene(int spp, int max_bounces) {
  kiln__scene s = base_scene();
  s.settings.width = s.settings.height = W;
  s.settings.spp = spp, s.settings.max_bounces = max_bounces;
  memcpy(s.camera.position, CAM_POS, 12), memcpy(s.camera.look_at, CAM_AT, 12);
  memcpy(s.camera.up, CAM_UP, 12);
  s.camera.vfov_deg = VFOV;
  add_material(&s, (kiln__material){.type = KILN__MAT_DIFFUSE, .albedo = {0.8f, 0.8f, 0.8f}});
  const float q[4][3] = {{-2, 0, 2}, {2, 0, 2}, {2, 0, -2}, {-2, 0, -2}};
  add_quad(&s, q, 0, 1);
  return s;
}

static uint32_t fbits_of(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static void add_plight(kiln__scene *s, kiln__plight l) {
  s->plights = realloc(s->plights, (s->nplights + 1) * sizeof l);
  s->plights[s->nplights++] = l;
}

static kiln__plight point(float x, float y, float z, double watts) {
  float i = (float)(watts / (4 * PI));
  return (kiln__plight){.type = KILN__LIGHT_POINT, .position = {x, y, z}, .color = {i, i, i}};
}

/* A spot at height h aiming straight down, cones in degrees. */
static kiln__plight spot_down(float h, double watts, double inner, double outer) {
  kiln__plight l = point(0, h, 0, watts);
  l.type = KILN__LIGHT_SPOT;
  l.direction[1] = -1;
  l.cos_inner = (float)cos(inner * PI / 180), l.cos_outer = (float)cos(outer * PI / 180);
  return l;
}

/* A sun of irradiance e travelling down at `tilt` degrees from the vertical, angular diameter
 * `angle` degrees. */
static kiln__plight sun(double e, double tilt, double angle) {
  double t = tilt * PI / 180;
  return (kiln__plight){.type = KILN__LIGHT_SUN,
                        .direction = {0, (float)-cos(t), (float)-sin(t)},
                        .color = {(float)e, (float)e, (float)e},
                        .radius = (float)(angle * PI / 360)};
}

/* Renders s (taken) and returns its colour (W * W * 3 floats, malloc'd) and, when ids is not
 * NULL, its object ids (malloc'd). */
static float *render_plane(kiln__scene *s, uint32_t **ids) {
  ctx c = open_ctx(s, NULL);
  kiln_frame_config fc;
  kiln_frame_config_default(c.r, &fc);
  kiln_future *f;
  const kiln_image *img = render(&c, &fc, &f);
  float *col = malloc(sizeof(float) * 3 * W * W);
  memcpy(col, info_of(img).color, sizeof(float) * 3 * W * W);
  if (ids) {
    *ids = malloc(sizeof(uint32_t) * W * W);
    memcpy(*ids, info_of(img).object_id, sizeof(uint32_t) * W * W);
  }
  for (int i = 0; i < 3 * W * W; i++)
    if (!isfinite(col[i])) KT_FAIL("pixel %d channel %d is %g", i / 3, i % 3, col[i]);
  kiln_future_release(f);
  close_ctx(&c);
  return col;
}

/* Where the ray through image point (x, y) (pixels, y down; camera.glsl) of the camera with field
 * of view vfov meets the plane y = 0. */
static void plane_point_fov(double vfov, double x, double y, double p[3]) {
  double th = tan(vfov * 0.5 * PI / 180);
  /* looking down -y with up -z: right is cross(forward, up) = +x */
  double d[3] = {(2 * x / W - 1) * th, -1, -(1 - 2 * y / W) * th};
  double t = CAM_POS[1] / -d[1];
  p[0] = CAM_POS[0] + t * d[0], p[1] = 0, p[2] = CAM_POS[2] + t * d[2];
}

static void plane_point(double x, double y, double p[3]) { plane_point_fov(VFOV, x, y, p); }

/* The documented radiance at plane point p lit by delta light l (radius 0; a sun of angle 0). */
static double model(const kiln__plight *l, const double p[3]) {
  if (l->type == KILN__LIGHT_SUN) return ALB / PI * l->color[0] * fmax(-l->direction[1], 0);
  double to[3] = {l->position[0] - p[0], l->position[1] - p[1], l->position[2] - p[2]};
  double d2 = to[0] * to[0] + to[1] * to[1] + to[2] * to[2], d = sqrt(d2);
  double v = ALB / PI * l->color[0] * (to[1] / d) / d2;
  if (l->type == KILN__LIGHT_SPOT) {
    double c = -(l->direction[0] * to[0] + l->direction[1] * to[1] + l->direction[2] * to[2]) / d;
    double t = (c - l->cos_outer) / ((double)l->cos_inner - l->cos_outer);
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    v *= t * t;
  }
  return v;
}

/* The model averaged over pixel (x, y) on an 8x8 grid. */
static double pixel_model(const kiln__plight *l, int x, int y) {
  double sum = 0;
  for (int j = 0; j < 8; j++)
    for (int i = 0; i < 8; i++) {
      double p[3];
      plane_point(x + (i + 0.5) / 8, y + (j + 0.5) / 8, p);
      sum += model(l, p);
    }
  return sum / 64;
}

/* The mean of channel 0 over the pixels x, y in [lo, hi), and of the model there. */
static void block_mean(const float *col, const kiln__plight *l, int lo, int hi, double *got,
                       double *want) {
  double g = 0, m = 0;
  for (int y = lo; y < hi; y++)
    for (int x = lo; x < hi; x++) g += col[3 * (y * W + x)], m += l ? pixel_model(l, x, y) : 0;
  *got = g / ((hi - lo) * (hi - lo)), *want = m / ((hi - lo) * (hi - lo));
}

/* Mean and standard error of the mean of channel 0 over the whole image. */
static void image_stats(const float *col, double *mean, double *se) {
  double s = 0, s2 = 0;
  for (int i = 0; i < W * W; i++) s += col[3 * i], s2 += (double)col[3 * i] * col[3 * i];
  *mean = s / (W * W);
  double var = s2 / (W * W) - *mean * *mean;
  *se = sqrt((var > 0 ? var : 0) / (W * W - 1));
}

/* Every pixel within rel of the model (and abs where the model is near 0). */
static void check_pixels(const float *col, const kiln__plight *l, double rel, double abs_tol) {
  for (int y = 0; y < W; y++)
    for (int x = 0; x < W; x++) {
      double want = pixel_model(l, x, y), got = col[3 * (y * W + x)];
      if (!(fabs(got - want) <= rel * want + abs_tol))
        KT_FAIL("pixel %d,%d: %.6g, want %.6g", x, y, got, want);
      if (col[3 * (y * W + x)] != col[3 * (y * W + x) + 2]) KT_FAIL("pixel %d,%d not grey", x, y);
    }
}

/* ---- packing ------------------------------------------------------------------------------- */

/* A lit sky, an emissive sphere (radiance 2, radius 0.5: power pi L 4 pi r^2 = 2 pi^2), a 100 W
 * point (power 4 pi I = 100) and a 50 W spot with cones 0 and 60 degrees (power I 2 pi (1 - (1 +
 * 0.5) / 2) = 6.25): the sky half the light samples, the rest split by power, each
 * punctual light by its own. Without punctual lights the kernel's PLIGHTS code is specialised away
 * and the emitters keep what they had. */
TEST(pick_probabilities) {
  kiln__scene s = plane_scene(1, 1);
  s.env.color[0] = s.env.color[1] = s.env.color[2] = 0.5f;
  add_material(&s, (kiln__material){.type = KILN__MAT_EMISSIVE, .emission = {2, 2, 2}});
  add_sphere(&s, 0, 2, 0, 0.5f, 1, 2);
  add_plight(&s, point(0, 1, 0, 100));
  add_plight(&s, spot_down(1, 50, 0, 60));
  kiln__bvh b;
  KT_CODE(kiln__bvh_build(NULL, &s, &b), KILN_OK);
  kiln__render_buffers p;
  KT_CODE(kiln__render_pack(&s, &b, &p), KILN_OK);
  const pt_globals *g = p.data[PT_BIND_GLOBALS];
  const float *v = p.data[PT_BIND_PLIGHTS], *sp = p.data[PT_BIND_SPHERES];
  const double pe = 2 * PI * PI, pp[2] = {100, 6.25},
               ppl = 0.5 * (pp[0] + pp[1]) / (pp[0] + pp[1] + pe);
  KT_TRUE(g->env_pick == 0.5f);
  KT_EQ(g->nplights, 2);
  if (fabs(g->plight_pick - ppl) > 1e-6) KT_FAIL("plight_pick %g, want %g", g->plight_pick, ppl);
  KT_TRUE(p.features & KILN__RF_PLIGHTS);
  /* the emitter's pick probability (its MIS weight's) is what is left */
  if (fabs(sp[7] - (0.5 - ppl)) > 1e-6) KT_FAIL("sphere pick %g, want %g", sp[7], 0.5 - ppl);
  const double p0 = pp[0] / (pp[0] + pp[1]);
  KT_TRUE(fabs(v[13] - p0) < 1e-6 && fabs(v[14] - p0) < 1e-6 && v[15] == 0);
  KT_TRUE(v[16 + 13] == 1.0f && fabs(v[16 + 14] - (1 - p0)) < 1e-6 && v[16 + 15] == v[13]);
  KT_EQ(fbits_of(v[3]), KILN__LIGHT_POINT);
  KT_EQ(fbits_of(v[16 + 3]), KILN__LIGHT_SPOT);
  KT_TRUE(v[16 + 5] == -1.0f && v[16 + 11] == 1.0f && fabs(v[16 + 12] - 0.5) < 1e-7);
  kiln__render_pack_free(&p);
  /* the same without its punctual lights */
  s.nplights = 0;
  KT_CODE(kiln__render_pack(&s, &b, &p), KILN_OK);
  g = p.data[PT_BIND_GLOBALS], sp = p.data[PT_BIND_SPHERES];
  KT_TRUE(g->plight_pick == 0 && g->nplights == 0 && !(p.features & KILN__RF_PLIGHTS));
  KT_TRUE(sp[7] == 0.5f);
  kiln__render_pack_free(&p);
  kiln__bvh_free(&b);
  kiln__scene_free(&s);
}

/* ---- the documented model ----------------------------------------------------------------- */

/* A 100 W point 1 above the plane: a / pi * (100 / 4 pi) / d^2 * cos at every pixel; below it
 * 0.8 / pi * 100 / (4 pi) = 2.026. */
TEST(point_irradiance) {
  kiln__scene s = plane_scene(8, 4);
  add_plight(&s, point(0, 1, 0, 100));
  kiln__plight l = s.plights[0];
  float *col = render_plane(&s, NULL);
  check_pixels(col, &l, 0.01, 1e-4);
  double got, want;
  block_mean(col, &l, W / 2 - 1, W / 2 + 1, &got, &want);
  fprintf(stderr, "below the point: %.5f, model %.5f (at the foot %.5f)\n", got, want,
          ALB / PI * 100 / (4 * PI));
  KT_TRUE(fabs(got - want) < 0.002 * want);
  KT_TRUE(fabs(want - ALB / PI * 100 / (4 * PI)) < 0.002 * want);
  free(col);
}

/* Twice as high, a quarter of the light below it: the central 4x4 pixels' ratio is 4 times the
 * ratio of the cosine and distance variations over them (0.9981: 3.9925 in all). */
TEST(inverse_square) {
  float *col[2];
  double a, b, ma, mb;
  for (int k = 0; k < 2; k++) {
    kiln__scene s = plane_scene(4, 4);
    add_plight(&s, point(0, 1.0f + (float)k, 0, 60));
    kiln__plight l = s.plights[0];
    col[k] = render_plane(&s, NULL);
    block_mean(col[k], &l, W / 2 - 2, W / 2 + 2, k ? &b : &a, k ? &mb : &ma);
  }
  fprintf(stderr, "height 1: %.5f, height 2: %.5f, ratio %.5f, model's %.5f\n", a, b, a / b,
          ma / mb);
  KT_TRUE(fabs(ma / mb - 4) < 0.01);
  KT_TRUE(fabs(a / b - ma / mb) < 0.001 * ma / mb);
  free(col[0]), free(col[1]);
}

/* A spot aiming down, cones 15 and 25 degrees: full within the inner cone (as the point lamp
 * of its power), nothing outside the outer one (exactly), glTF's squared ramp between. */
TEST(spot_cone) {
  kiln__scene s = plane_scene(8, 4);
  add_plight(&s, spot_down(1, 100, 15, 25));
  kiln__plight l = s.plights[0];
  float *col = render_plane(&s, NULL);
  kiln__plight pt = point(0, 1, 0, 100);
  int inside = 0, outside = 0;
  for (int y = 0; y < W; y++)
    for (int x = 0; x < W; x++) {
      /* the angle off the axis at the pixel's 4 corners */
      double lo = 90, hi = 0;
      for (int k = 0; k < 4; k++) {
        double p[3];
        plane_point(x + (k & 1), y + (k >> 1), p);
        double a = atan(sqrt(p[0] * p[0] + p[2] * p[2])) * 180 / PI;
        lo = fmin(lo, a), hi = fmax(hi, a);
      }
      double got = col[3 * (y * W + x)];
      if (hi < 15) {
        inside++;
        if (!(fabs(got - pixel_model(&pt, x, y)) < 0.01 * got))
          KT_FAIL("inside, pixel %d,%d: %g, want the point's %g", x, y, got,
                  pixel_model(&pt, x, y));
      } else if (lo > 25) {
        outside++;
        if (got != 0) KT_FAIL("outside, pixel %d,%d: %g, want 0", x, y, got);
      }
    }
  KT_TRUE(inside > 100 && outside > 1000);
  check_pixels(col, &l, 0.03, 0.01); /* the ramp: the model's pixel average */
  free(col);
}

/* A sun lights the plane uniformly with a / pi * E cos(tilt): at 0 and 60 degrees, every pixel,
 * and the second half the first. */
TEST(sun_cosine_law) {
  float *col[2];
  const double tilt[2] = {0, 60};
  for (int k = 0; k < 2; k++) {
    kiln__scene s = plane_scene(2, 4);
    add_plight(&s, sun(3, tilt[k], 0));
    kiln__plight l = s.plights[0];
    col[k] = render_plane(&s, NULL);
    check_pixels(col[k], &l, 1e-5, 0);
  }
  KT_TRUE(fabs(col[1][0] / col[0][0] - 0.5) < 1e-5);
  free(col[0]), free(col[1]);
}

/* A sun of angular diameter 20 degrees facing the plane: a disc of radiance E over its solid
 * angle gives the plane E (1 + cos 10deg) / 2. */
TEST(sun_disc) {
  kiln__scene s = plane_scene(16, 4);
  add_plight(&s, sun(3, 0, 20));
  float *col = render_plane(&s, NULL);
  double mean, se, want = ALB / PI * 3 * (1 + cos(10 * PI / 180)) / 2;
  image_stats(col, &mean, &se);
  fprintf(stderr, "sun disc: mean %.6f, model %.6f, se %.6f\n", mean, want, se);
  KT_TRUE(fabs(mean - want) < 4 * se + 1e-6);
  free(col);
}

/* A sphere light wholly above a point's horizon lights it as a point light of its power does
 * (Nusselt: pi L sin^2 = I / d^2 along the way to its centre). Radius 0.25, 1 above. */
TEST(sphere_light) {
  kiln__scene s = plane_scene(16, 4);
  add_plight(&s, point(0, 1, 0, 100));
  s.plights[0].radius = 0.25f;
  kiln__plight pt = point(0, 1, 0, 100);
  float *col = render_plane(&s, NULL);
  double mean, se, got, want;
  image_stats(col, &mean, &se);
  block_mean(col, &pt, 0, W, &got, &want);
  fprintf(stderr, "sphere light: mean %.5f, point model %.5f, se %.5f\n", mean, want, se);
  KT_TRUE(fabs(mean - want) < 4 * se + 1e-4 * want);
  KT_TRUE(se < 0.01 * want);
  free(col);
}

/* A small quad at height 0.5 between a point light at (1, 1, 0) and the plane casts a shadow on
 * [-0.2, 0.2]^2 of the plane (direct light only): exactly black there, the model around it. */
TEST(shadow) {
  kiln__scene s = plane_scene(4, 0);
  add_plight(&s, point(1, 1, 0, 50));
  kiln__plight l = s.plights[0];
  const float q[4][3] = {
      {0.4f, 0.5f, 0.1f}, {0.6f, 0.5f, 0.1f}, {0.6f, 0.5f, -0.1f}, {0.4f, 0.5f, -0.1f}};
  add_quad(&s, q, 0, 2);
  uint32_t *ids;
  float *col = render_plane(&s, &ids);
  int dark = 0, lit = 0;
  for (int y = 0; y < W; y++)
    for (int x = 0; x < W; x++) {
      double lo = INFINITY, hi = 0; /* max |x|, |z| of the pixel's corners on the plane */
      for (int k = 0; k < 4; k++) {
        double p[3];
        plane_point(x + (k & 1), y + (k >> 1), p);
        double m = fmax(fabs(p[0]), fabs(p[2]));
        lo = fmin(lo, m), hi = fmax(hi, m);
      }
      double got = col[3 * (y * W + x)];
      int id = (int)ids[y * W + x];
      bool near_occluder = false;
      for (int dy = -1; dy <= 1; dy++)
        for (int dx = -1; dx <= 1; dx++) {
          int xx = x + dx, yy = y + dy;
          if (xx >= 0 && yy >= 0 && xx < W && yy < W && ids[yy * W + xx] != 1) near_occluder = true;
        }
      if (near_occluder || id != 1) continue;
      if (hi < 0.19) {
        dark++;
        if (got != 0) KT_FAIL("in the shadow, pixel %d,%d: %g", x, y, got);
      } else if (lo > 0.21) {
        lit++;
        double want = pixel_model(&l, x, y);
        if (!(fabs(got - want) < 0.01 * want + 1e-4))
          KT_FAIL("lit, pixel %d,%d: %g, want %g", x, y, got, want);
      }
    }
  fprintf(stderr, "shadow: %d dark pixels, %d lit\n", dark, lit);
  KT_TRUE(dark > 100 && lit > 2000);
  free(col), free(ids);
}

/* Punctual lights beside an emissive sphere and a sky (radiance 0.2): the picks split by power,
 * the sum stays unbiased. The plane's radiance is a (L_sky (1 - s) + L_e s) + the point's and the
 * sun's models, s = sin^2(alpha) cos(theta) the cosine-weighted solid angle the sphere hides. */
TEST(mixed_with_emitters_and_sky) {
  kiln__scene s = plane_scene(32, 0);
  s.env.color[0] = s.env.color[1] = s.env.color[2] = 0.2f;
  add_material(&s, (kiln__material){.type = KILN__MAT_EMISSIVE, .emission = {20, 20, 20}});
  add_sphere(&s, 0, 4, 0, 0.5f, 1, 2);
  add_plight(&s, point(0.5f, 1, 0, 30));
  add_plight(&s, sun(1, 30, 0));
  kiln__plight l0 = s.plights[0], l1 = s.plights[1];
  s.camera.vfov_deg = 10; /* the sphere (at 4, above the camera) stays out of view */
  ctx c = open_ctx(&s, NULL);
  kiln_frame_config fc;
  kiln_frame_config_default(c.r, &fc);
  kiln_future *f;
  const kiln_image *img = render(&c, &fc, &f);
  double want = 0, mean, se;
  for (int y = 0; y < W; y++)
    for (int x = 0; x < W; x++) {
      double p[3];
      plane_point_fov(10, x + 0.5, y + 0.5, p);
      double to[3] = {-p[0], 4, -p[2]}, d2 = to[0] * to[0] + to[1] * to[1] + to[2] * to[2];
      double sk = 0.25 / d2 * (4 / sqrt(d2));
      want += ALB * (0.2 * (1 - sk) + 20 * sk) + model(&l0, p) + model(&l1, p);
    }
  want /= W * W;
  image_stats(info_of(img).color, &mean, &se);
  fprintf(stderr, "mixed: mean %.5f, model %.5f, se %.5f\n", mean, want, se);
  KT_TRUE(fabs(mean - want) < 4 * se + 1e-3 * want);
  kiln_future_release(f);
  close_ctx(&c);
}

/* ---- Cycles ------------------------------------------------------------------------------- */

/* The same scenes in Cycles (tools/bench/blender/plights.py at 64 spp, the point at 16: Blender
 * 3.4.1, CPU, 64x64, Standard view transform, black world; the plane a Diffuse BSDF of 0.8, the
 * camera 3 above looking down with a 30-degree field of view; Blender's Z is kiln's Y): means over
 * the whole image and over its central 4x4 pixels.
 * Lamps: a 100 W point 1 above (radius 0); the same with radius 0.25; a 100 W spot there, size
 * 120 degrees, blend 0; a sun of strength 3 tilted 30 degrees; the same with angle 20 degrees. */
static const struct {
  const char *what;
  double all, centre;
} CYCLES[] = {
    {"point", 1.2649571, 2.0210752},        {"point r 0.25", 1.2075733, 1.9026688},
    {"spot 120", 1.0996163, 2.0192051},     {"sun", 0.6615945, 0.6615945},
    {"sun angle 20", 0.6565224, 0.6567203},
};

/* Within 1.5% of Cycles where the two models agree: the point lamp (all and centre), the spot on
 * its axis (Cycles 3.4 multiplies a spot by the cosine off its axis, glTF does not), the sun
 * (with and without a disc). Cycles 3.4 draws a sphere lamp as a disc facing the lit point:
 * I / (d^2 + r^2) on the axis, where kiln's sphere gives I / d^2: 1 + 0.25^2 more below it. */
TEST(matches_cycles) {
  kiln__plight lights[5] = {point(0, 1, 0, 100), point(0, 1, 0, 100), spot_down(1, 100, 60, 60),
                            sun(3, 30, 0), sun(3, 30, 20)};
  lights[1].radius = 0.25f;
  for (int k = 0; k < 5; k++) {
    kiln__scene s = plane_scene(k == 1 || k == 4 ? 32 : 4, 4);
    add_plight(&s, lights[k]);
    float *col = render_plane(&s, NULL);
    double all, centre, unused;
    block_mean(col, NULL, 0, W, &all, &unused);
    block_mean(col, NULL, W / 2 - 2, W / 2 + 2, &centre, &unused);
    double want_centre = CYCLES[k].centre * (k == 1 ? 1 + 0.25 * 0.25 : 1);
    fprintf(stderr, "%s: kiln %.5f / %.5f, Cycles %.5f / %.5f (all / centre)\n", CYCLES[k].what,
            all, centre, CYCLES[k].all, CYCLES[k].centre);
    if (!(fabs(centre / want_centre - 1) < 0.015))
      KT_FAIL("%s: centre %g, Cycles %g", CYCLES[k].what, centre, want_centre);
    if (k != 1 && k != 2 && !(fabs(all / CYCLES[k].all - 1) < 0.015))
      KT_FAIL("%s: mean %g, Cycles %g", CYCLES[k].what, all, CYCLES[k].all);
    free(col);
  }
}
