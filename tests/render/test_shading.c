/* test_shading.c: albedo textures, the dielectric's radiance convention, shading normals, the
 * equirectangular environment map (lookup, rotation, importance sampling) and light sampling of
 * emissive spheres, on lavapipe under the validation layer. Expected values are analytic or
 * quadratures of the documented model; tolerances are 4 standard errors of the mean estimated
 * from the images themselves, plus float rounding. */
// kt: timeout 300
#define _GNU_SOURCE
#include <unistd.h>

#include "render_test_util.h"

#include "kt_stb_write.h"

static const double PI = 3.14159265358979323846;

/* The documented texture lookup: bilinear between texel centres, row 0 at v = 1, repeating in u
 * (and in v when wrap_v; clamped otherwise). */
static void tex_ref(const kiln__texture *t, double u, double v, bool wrap_v, double out[3]) {
  double fx = u * t->width - 0.5, fy = (1 - v) * t->height - 0.5;
  double x0 = floor(fx), y0 = floor(fy), ax = fx - x0, ay = fy - y0;
  int xs[2], ys[2];
  for (int i = 0; i < 2; i++) {
    long xi = (long)x0 + i, yi = (long)y0 + i;
    xs[i] = (int)(((xi % t->width) + t->width) % t->width);
    if (wrap_v) ys[i] = (int)(((yi % t->height) + t->height) % t->height);
    else ys[i] = (int)(yi < 0 ? 0 : yi >= t->height ? t->height - 1 : yi);
  }
  for (int c = 0; c < 3; c++) {
    double a = t->rgb[3 * (ys[0] * t->width + xs[0]) + c],
           b = t->rgb[3 * (ys[0] * t->width + xs[1]) + c];
    double e = t->rgb[3 * (ys[1] * t->width + xs[0]) + c],
           f = t->rgb[3 * (ys[1] * t->width + xs[1]) + c];
    out[c] = (a + (b - a) * ax) + ((e + (f - e) * ax) - (a + (b - a) * ax)) * ay;
  }
}

/* Mean and standard error of the mean of channel k over the pixels where take[i]. */
static void stats(const float *col, const bool *take, int n, int k, double *mean, double *se,
                  int *cnt) {
  double s = 0, s2 = 0;
  *cnt = 0;
  for (int i = 0; i < n; i++)
    if (take[i]) {
      double v = col[3 * i + k];
      s += v, s2 += v * v, (*cnt)++;
    }
  *mean = *cnt ? s / *cnt : 0;
  double var = *cnt ? s2 / *cnt - *mean * *mean : 0;
  *se = *cnt > 1 ? sqrt((var > 0 ? var : 0) / (*cnt - 1)) : 0;
}

/* ---- albedo textures ------------------------------------------------------------------------- */

/* A 4x4 texture of four 2x2 quadrants, on a quad seen face-on whose uv runs over [0, 2]^2 (the
 * texture repeats twice), diffuse, tinted, in a uniform environment of radiance 1 (every sample of
 * a plane under a uniform sky is exactly its albedo there). The albedo pass equals the documented
 * lookup at the centre ray's uv at every quad pixel; the colour equals the quadrant's colour at
 * every pixel whose whole footprint lies where the lookup is a single texel pair of one quadrant. */
TEST(texture_bilinear_repeat) {
  kiln__scene s = base_scene();
  const int W = 64;
  s.settings.width = s.settings.height = W;
  s.settings.spp = 4;
  s.env.color[0] = s.env.color[1] = s.env.color[2] = 1;
  const float quad_col[4][3] = {
      {0.9f, 0.1f, 0.1f}, {0.1f, 0.9f, 0.1f}, {0.1f, 0.1f, 0.9f}, {0.9f, 0.9f, 0.2f}};
  float rgb[4 * 4 * 3];
  for (int y = 0; y < 4; y++)
    for (int x = 0; x < 4; x++) memcpy(rgb + 3 * (y * 4 + x), quad_col[(y / 2) * 2 + x / 2], 12);
  int32_t ti = add_texture(&s, 4, 4, rgb);
  const float tint[3] = {1, 0.5f, 1};
  add_material(&s,
               (kiln__material){.type = KILN__MAT_DIFFUSE, .albedo = {tint[0], tint[1], tint[2]}});
  s.materials[0].texture = ti;
  const float q[4][3] = {{-1, -1, 0}, {-1, 1, 0}, {1, 1, 0}, {1, -1, 0}};
  const float uv[4][2] = {{0, 0}, {0, 2}, {2, 2}, {2, 0}}; /* uv = (x + 1, y + 1) */
  add_quad_attr(&s, q, uv, NULL, 0, 1);
  kiln__texture tex = {4, 4, rgb, false, false};
  float pos[3], at[3], up[3], vfov = s.camera.vfov_deg;
  memcpy(pos, s.camera.position, 12), memcpy(at, s.camera.look_at, 12), memcpy(up, s.camera.up, 12);
  ctx c = open_ctx(&s, NULL);
  kiln_frame_config fc;
  kiln_frame_config_default(c.r, &fc);
  kiln_future *f;
  const kiln_image *img = render(&c, &fc, &f);
  int nquad = 0, npure = 0, nrepeat = 0;
  for (int y = 0; y < W; y++)
    for (int x = 0; x < W; x++) {
      int i = y * W + x;
      if (info_of(img).object_id[i] != 1) continue;
      nquad++;
      double d[3], e[3];
      centre_ray(pos, at, up, vfov, W, W, x + 0.5, y + 0.5, d);
      double t = -pos[2] / d[2], u = pos[0] + t * d[0] + 1, v = pos[1] + t * d[1] + 1;
      tex_ref(&tex, u, v, true, e);
      const float *al = info_of(img).albedo + 3 * i;
      for (int k = 0; k < 3; k++)
        if (fabs(al[k] - tint[k] * e[k]) > 1e-4)
          KT_FAIL("albedo pass at %d,%d (uv %g,%g) channel %d: %g, want %g", x, y, u, v, k, al[k],
                  tint[k] * e[k]);
      if (u > 1.05 || v > 1.05) nrepeat++;
      /* the footprint's uv extent (the map from the image to the plane is affine, face-on) */
      double d0[3], d1[3];
      centre_ray(pos, at, up, vfov, W, W, x, y, d0);
      centre_ray(pos, at, up, vfov, W, W, x + 1, y + 1, d1);
      double u0 = pos[0] - pos[2] / d0[2] * d0[0] + 1, u1 = pos[0] - pos[2] / d1[2] * d1[0] + 1;
      double v0 = pos[1] - pos[2] / d0[2] * d0[1] + 1, v1 = pos[1] - pos[2] / d1[2] * d1[1] + 1;
      bool pure = true;
      double uu[2] = {fmin(u0, u1), fmax(u0, u1)}, vv[2] = {fmin(v0, v1), fmax(v0, v1)};
      for (int a = 0; a < 2; a++) { /* both taps in one quadrant over the whole interval */
        double lo = (a ? 1 - vv[1] : uu[0]) * 4 - 0.5, hi = (a ? 1 - vv[0] : uu[1]) * 4 - 0.5;
        double k0 = floor(lo);
        long km = (((long)k0 % 4) + 4) % 4;
        if (!(hi <= k0 + 1 && km % 2 == 0)) pure = false;
      }
      if (!pure || !interior(img, x, y, 1)) continue;
      npure++;
      const float *cl = info_of(img).color + 3 * i;
      for (int k = 0; k < 3; k++)
        if (fabs(cl[k] - tint[k] * e[k]) > 1e-4)
          KT_FAIL("colour at %d,%d channel %d: %g, want %g", x, y, k, cl[k], tint[k] * e[k]);
    }
  fprintf(stderr, "quad pixels %d, pure footprints %d, repeated-uv pixels %d\n", nquad, npure,
          nrepeat);
  KT_TRUE(nquad > 1000 && npure > 200 && nrepeat > 500);
  kiln_future_release(f);
  close_ctx(&c);
}

static void write_text(const char *path, const char *text) {
  FILE *fp = fopen(path, "w");
  KT_TRUE(fp != NULL);
  fputs(text, fp);
  fclose(fp);
}

static double srgb_decode(int b) {
  double x = b / 255.0;
  return x <= 0.04045 ? x / 12.92 : pow((x + 0.055) / 1.055, 2.4);
}

/* A 2x2 sRGB PNG on a quad primitive from a scene file: the albedo pass at each texel's centre
 * (1x1 frames aimed at it) is the texel's sRGB value decoded to linear. */
TEST(texture_png_srgb) {
  char dir[] = "/tmp/kiln_shading_XXXXXX";
  KT_TRUE(mkdtemp(dir) != NULL);
  char png[128], json[128];
  snprintf(png, sizeof png, "%s/t.png", dir);
  snprintf(json, sizeof json, "%s/scene.json", dir);
  const unsigned char px[12] = {255, 0, 0, 0, 128, 0, 0, 0, 64, 200, 200, 30};
  KT_TRUE(stbi_write_png(png, 2, 2, 3, px, 6) != 0);
  write_text(
      json,
      "{\"camera\": {\"position\": [0, 0, 4], \"look_at\": [0, 0, 0]},\n"
      " \"objects\": [{\"type\": \"quad\", \"corner\": [-1, -1, 0], \"u\": [2, 0, 0], \"v\": [0, 2, 0],\n"
      "   \"material\": {\"type\": \"diffuse\", \"albedo\": [1, 1, 1], \"texture\": \"t.png\"}}]}\n");
  kiln_scene *scene;
  kiln_error_detail err;
  if (kiln_scene_load(json, &err, &scene)) {
    char b[512];
    KT_FAIL("load: %s", kiln_error_detail_format(&err, b, sizeof b));
  }
  ctx c = {0};
  c.gpu = tg_gpu();
  c.dev = tg_device(c.gpu, NULL);
  c.scene = scene;
  KT_CODE(kiln_renderer_create(scene, &c.dev, 1, NULL, &c.r), KILN_OK);
  for (int t = 0; t < 4; t++) {
    int tx = t % 2,
        ty = t / 2; /* texel (tx, ty), row 0 at the top: uv ((tx + .5) / 2, 1 - (ty + .5) / 2) */
    float wx = -1 + 2 * (tx + 0.5f) / 2, wy = -1 + 2 * (1 - (ty + 0.5f) / 2);
    kiln_camera cam = {
        .position = {wx, wy, 4}, .look_at = {wx, wy, 0}, .up = {0, 1, 0}, .vfov_deg = 10};
    kiln_frame_config fc;
    kiln_frame_config_default(c.r, &fc);
    fc.camera = &cam, fc.width = fc.height = 1, fc.spp = 1;
    kiln_future *f;
    const kiln_image *img = render(&c, &fc, &f);
    KT_EQ(info_of(img).object_id[0], 1);
    for (int k = 0; k < 3; k++) {
      double want = srgb_decode(px[3 * t + k]), got = info_of(img).albedo[k];
      if (fabs(got - want) > 1e-6)
        KT_FAIL("texel %d channel %d: albedo %g, want %g (sRGB %d)", t, k, got, want,
                px[3 * t + k]);
    }
    kiln_future_release(f);
  }
  close_ctx(&c);
  remove(png), remove(json), rmdir(dir);
}

/* ---- dielectric ------------------------------------------------------------------------------- */

/* Fresnel reflectance of unpolarised light from air onto glass of ior n at incidence cos ci. */
static double fresnel(double ci, double n) {
  double eta = 1 / n, s2 = eta * eta * (1 - ci * ci);
  if (s2 >= 1) return 1;
  double ct = sqrt(1 - s2);
  double rs = (eta * ci - ct) / (eta * ci + ct), rp = (ci - eta * ct) / (ci + eta * ct);
  return 0.5 * (rs * rs + rp * rp);
}

/* A glass quad (ior 1.5) seen head-on at 16 spp, `behind` (material 1) a larger quad behind it,
 * the environment of radiance env. Checks that each channel's mean over the glass is, within 4
 * standard errors, the mean over the pixels' centre rays of F (reflect) or 1 - F, and (max_sd > 0)
 * that the pixels' standard deviation stays below max_sd. */
static void glass_quad_check(kiln__material behind, float env, bool reflect, double max_sd) {
  kiln__scene s = base_scene();
  s.camera.vfov_deg = 20;
  s.settings.spp = 16;
  s.env.color[0] = s.env.color[1] = s.env.color[2] = env;
  add_material(&s,
               (kiln__material){.type = KILN__MAT_DIELECTRIC, .albedo = {1, 1, 1}, .ior = 1.5f});
  add_material(&s, behind);
  const float glass[4][3] = {{-10, -10, 0}, {-10, 10, 0}, {10, 10, 0}, {10, -10, 0}};
  const float back[4][3] = {{-50, -50, 1}, {-50, 50, 1}, {50, 50, 1}, {50, -50, 1}};
  add_quad(&s, glass, 0, 1);
  add_quad(&s, back, 1, 2);
  float pos[3], at[3], up[3];
  memcpy(pos, s.camera.position, 12), memcpy(at, s.camera.look_at, 12), memcpy(up, s.camera.up, 12);
  int w = s.settings.width, n = w * w;
  ctx c = open_ctx(&s, NULL);
  kiln_frame_config fc;
  kiln_frame_config_default(c.r, &fc);
  kiln_future *f;
  const kiln_image *img = render(&c, &fc, &f);
  double want = 0;
  bool take[24 * 24];
  KT_TRUE(n <= 24 * 24);
  for (int i = 0; i < n; i++) {
    double d[3];
    centre_ray(pos, at, up, 20, w, w, i % w + 0.5, i / w + 0.5, d);
    double fr = fresnel(d[2], 1.5);
    want += reflect ? fr : 1 - fr;
    take[i] = info_of(img).object_id[i] == 1;
    KT_TRUE(take[i]);
  }
  want /= n;
  for (int k = 0; k < 3; k++) {
    double mean, se;
    int cnt;
    stats(info_of(img).color, take, n, k, &mean, &se, &cnt);
    double sd = se * sqrt(cnt);
    fprintf(stderr, "channel %d: mean %.5f, want %.5f, se %.5f, pixel sd %.5f\n", k, mean, want, se,
            sd);
    if (fabs(mean - want) > 4 * se + 1e-4)
      KT_FAIL("channel %d: mean %g, want %g (se %g)", k, mean, want, se);
    if (max_sd > 0 && sd > max_sd)
      KT_FAIL("channel %d: pixel standard deviation %g > %g", k, sd, max_sd);
  }
  kiln_future_release(f);
  close_ctx(&c);
}

/* One glass interface (a quad, ior 1.5) in front of an emitter of radiance 1, black elsewhere: a
 * camera ray reflects to black with probability F or refracts onto the emitter, so a pixel is
 * 1 - F with Cycles' convention for sharp glass (no 1/eta^2 on refraction) and (1 - F) / 2.25 with
 * radiance scaling. The mean over the image is the mean of 1 - F(centre ray) within 4 standard
 * errors (F varies by < 1e-4 over this field of view, less over one pixel). */
TEST(dielectric_interface) {
  glass_quad_check((kiln__material){.type = KILN__MAT_EMISSIVE, .emission = {1, 1, 1}}, 0, false,
                   0);
}

/* The same interface seen head-on with the light on the camera's side: a uniform environment of
 * radiance 1, and behind the glass a black diffuse quad, so that a pixel is the reflection F
 * (0.040) alone. Choosing reflection with probability F, 16 stratified samples reflect 0 or 1
 * times and a pixel's standard deviation is 0.030; Cycles 3.4 gives each lobe at least 1/8 of
 * the choices at the camera ray's hit (its defensive sampling), so 1 or 2 samples reflect,
 * weighted F / 0.115, and its pixels scatter by 0.0078 (measured: the glass sphere of the noise
 * set, tools/validation/noise, reflecting a wall of radiance 0.3, 0.00235). kiln does as Cycles:
 * the mean is F within 4 standard errors and the pixels' standard deviation below 0.012. */
TEST(dielectric_reflection_noise) {
  glass_quad_check((kiln__material){.type = KILN__MAT_DIFFUSE, .albedo = {0, 0, 0}}, 1, true,
                   0.012);
}

/* ---- shading normals ------------------------------------------------------------------------- */

/* A flat quad facing the camera (-z) whose vertex normals all lean 50 degrees towards +y, diffuse
 * (albedo 0.8), under a gradient sky (radiance 0.5 (1 + dir.y)). The normal pass holds the vertex
 * normal; the colour is the documented model: albedo times the integral of L cos_s / pi over the
 * directions above both the shading and the geometric hemisphere (a quadrature here), which
 * differs from flat shading's 0.5 * albedo by far more than the noise. */
TEST(shading_normals) {
  kiln__scene s = base_scene();
  s.settings.spp = 16;
  s.camera.vfov_deg = 20;
  s.env.type = KILN__ENV_GRADIENT;
  s.env.top[0] = s.env.top[1] = s.env.top[2] = 1;
  add_material(&s, (kiln__material){.type = KILN__MAT_DIFFUSE, .albedo = {0.8f, 0.8f, 0.8f}});
  const double a = 50 * PI / 180;
  const float ns[3] = {0, (float)sin(a), (float)-cos(a)};
  const float q[4][3] = {{-5, -5, 0}, {-5, 5, 0}, {5, 5, 0}, {5, -5, 0}};
  const float nr[4][3] = {
      {ns[0], ns[1], ns[2]}, {ns[0], ns[1], ns[2]}, {ns[0], ns[1], ns[2]}, {ns[0], ns[1], ns[2]}};
  add_quad_attr(&s, q, NULL, nr, 0, 1);
  int w = s.settings.width, n = w * w;
  ctx c = open_ctx(&s, NULL);
  kiln_frame_config fc;
  kiln_frame_config_default(c.r, &fc);
  kiln_future *f;
  const kiln_image *img = render(&c, &fc, &f);
  /* quadrature over the sphere (midpoint rule in polar angle from +y and azimuth) */
  double want = 0, flat = 0;
  const int NT = 1000, NP = 2000;
  for (int it = 0; it < NT; it++) {
    double th = (it + 0.5) * PI / NT, st = sin(th), ct = cos(th);
    for (int ip = 0; ip < NP; ip++) {
      double ph = (ip + 0.5) * 2 * PI / NP;
      double o[3] = {st * cos(ph), ct, st * sin(ph)};
      double cs = o[0] * ns[0] + o[1] * ns[1] + o[2] * ns[2], cg = -o[2];
      double dw = st * (PI / NT) * (2 * PI / NP), L = 0.5 * (1 + o[1]);
      if (cs > 0 && cg > 0) want += L * cs / PI * dw;
      if (cg > 0) flat += L * cg / PI * dw;
    }
  }
  want *= 0.8, flat *= 0.8;
  bool take[24 * 24];
  KT_TRUE(n <= 24 * 24);
  for (int i = 0; i < n; i++) {
    take[i] = info_of(img).object_id[i] == 1;
    KT_TRUE(take[i]);
    const float *nn = info_of(img).normal + 3 * i;
    for (int k = 0; k < 3; k++)
      if (fabsf(nn[k] - ns[k]) > 1e-5f) KT_FAIL("normal pass %d: %g %g %g", i, nn[0], nn[1], nn[2]);
  }
  double mean, se;
  int cnt;
  stats(info_of(img).color, take, n, 0, &mean, &se, &cnt);
  fprintf(stderr, "shading normals: mean %.5f, model %.5f, flat shading %.5f, se %.5f\n", mean,
          want, flat, se);
  KT_TRUE(fabs(want - flat) > 10 * se); /* the test tells the two apart */
  if (fabs(mean - want) > 4 * se + 1e-4) KT_FAIL("mean %g, want %g (se %g)", mean, want, se);
  kiln_future_release(f);
  close_ctx(&c);
}

/* ---- environment map ------------------------------------------------------------------------ */

/* The octant (bit 0: x > 0, bit 1: y > 0, bit 2: z > 0) of the map direction that the documented
 * mapping (Blender's) gives pixel (x, y) of a w x h map: u = 0.5 looks towards +x, 0.75 towards
 * +z, rows from +y (top) to -y. */
static int map_octant(int x, int y, int w, int h) {
  double u = (x + 0.5) / w, th = (y + 0.5) / h * PI, ph = 2 * PI * (u - 0.5);
  double d[3] = {sin(th) * cos(ph), cos(th), sin(th) * sin(ph)};
  return (d[0] > 0) | (d[1] > 0) << 1 | (d[2] > 0) << 2;
}

static void octant_colour(int o, float c[3]) {
  c[0] = (float)(o + 1), c[1] = 0.5f, c[2] = (float)(8 - o) * 0.25f;
}

/* c as it comes back from a .hdr that stb_image_write wrote: mantissas truncated to the largest
 * channel's exponent, read back as (m + 0.5) 2^(e - 136). */
static void rgbe_roundtrip(float c[3]) {
  int e;
  frexpf(fmaxf(c[0], fmaxf(c[1], c[2])), &e);
  for (int k = 0; k < 3; k++) c[k] = ldexpf(floorf(ldexpf(c[k], 8 - e)) + 0.5f, e - 8);
}

/* Writes dir/sky.hdr (64x32, one colour per octant) and dir/scene.json using it, rotated by rot. */
static void write_octant_scene(const char *dir, int rot, const char *extra_objects) {
  enum { MW = 64, MH = 32 };
  static float map[MW * MH * 3];
  for (int y = 0; y < MH; y++)
    for (int x = 0; x < MW; x++) octant_colour(map_octant(x, y, MW, MH), map + 3 * (y * MW + x));
  char p[256];
  snprintf(p, sizeof p, "%s/sky.hdr", dir);
  KT_TRUE(stbi_write_hdr(p, MW, MH, 3, map) != 0);
  char json[1024];
  snprintf(
      json, sizeof json,
      "{\"camera\": {\"position\": [0, 0, 0], \"look_at\": [0, 0, 1]},\n"
      " \"environment\": {\"type\": \"map\", \"file\": \"sky.hdr\", \"rotation\": %d, \"intensity\": 2},\n"
      " \"objects\": [%s]}\n",
      rot, extra_objects);
  snprintf(p, sizeof p, "%s/scene.json", dir);
  write_text(p, json);
}

static kiln_scene *load_in(const char *dir) {
  char p[256];
  snprintf(p, sizeof p, "%s/scene.json", dir);
  kiln_scene *scene;
  kiln_error_detail err;
  if (kiln_scene_load(p, &err, &scene)) {
    char b[512];
    KT_FAIL("load: %s", kiln_error_detail_format(&err, b, sizeof b));
  }
  return scene;
}

/* A map with one colour per octant of directions (64x32 texels, so the octants' centres are many
 * texels from any blend): 1x1 frames aimed at each octant's centre see that octant's colour times
 * the intensity, exactly (as RGBE holds it); with rotation 90 the content that was towards +x is
 * seen towards +z (Blender's Mapping node rotating Z by 90). */
TEST(env_map_orientation) {
  char dir[] = "/tmp/kiln_envmap_XXXXXX";
  KT_TRUE(mkdtemp(dir) != NULL);
  for (int rot = 0; rot <= 90; rot += 90) {
    write_octant_scene(dir, rot, "");
    kiln_scene *scene = load_in(dir);
    ctx c = {0};
    c.gpu = tg_gpu();
    c.dev = tg_device(c.gpu, NULL);
    c.scene = scene;
    KT_CODE(kiln_renderer_create(scene, &c.dev, 1, NULL, &c.r), KILN_OK);
    for (int o = 0; o < 8; o++) {
      float d[3] = {o & 1 ? 1.f : -1.f, o & 2 ? 1.f : -1.f, o & 4 ? 1.f : -1.f};
      kiln_camera cam = {
          .position = {0, 0, 0}, .look_at = {d[0], d[1], d[2]}, .up = {0, 1, 0}, .vfov_deg = 5};
      if (o == 2 || o == 3 || o == 6 || o == 7) cam.up[0] = 1, cam.up[1] = 0; /* never parallel */
      kiln_frame_config fc;
      kiln_frame_config_default(c.r, &fc);
      fc.camera = &cam, fc.width = fc.height = 1, fc.spp = 1;
      kiln_future *f;
      const kiln_image *img = render(&c, &fc, &f);
      /* map direction: rotation 90 looks up world (x, y, z) at the map's (z, y, -x) */
      float m[3] = {rot ? d[2] : d[0], d[1], rot ? -d[0] : d[2]};
      int mo = (m[0] > 0) | (m[1] > 0) << 1 | (m[2] > 0) << 2;
      float want[3];
      octant_colour(mo, want);
      rgbe_roundtrip(want);
      for (int k = 0; k < 3; k++)
        if (fabsf(info_of(img).color[k] - 2 * want[k]) > 1e-5f * 2 * want[k])
          KT_FAIL("rotation %d, octant %d: channel %d = %g, want %g (map octant %d)", rot, o, k,
                  info_of(img).color[k], 2 * want[k], mo);
      kiln_future_release(f);
    }
    close_ctx(&c);
  }
  char p[256];
  snprintf(p, sizeof p, "%s/sky.hdr", dir), remove(p);
  snprintf(p, sizeof p, "%s/scene.json", dir), remove(p);
  rmdir(dir);
}

/* Quadrature of the map's (bilinear) radiance times cos/pi over the upper hemisphere (+y). */
static double map_irradiance_up(const kiln__texture *t, double intensity) {
  const int NT = 800, NP = 1600;
  double e = 0;
  for (int it = 0; it < NT / 2; it++) {
    double th = (it + 0.5) * PI / NT, st = sin(th), ct = cos(th);
    for (int ip = 0; ip < NP; ip++) {
      double u = (ip + 0.5) / NP, c[3];
      tex_ref(t, u, 1 - th / PI, false, c);
      e += c[0] * ct / PI * st * (PI / NT) * (2 * PI / NP);
    }
  }
  return e * intensity;
}

/* Importance sampling of the map: a diffuse floor (facing +y, albedo 0.5, seen from above) under a
 * map that is dim but for a small bright patch above the horizon. Every floor point sees the same
 * sky, so every pixel's expectation is albedo times the irradiance integral (a quadrature of the
 * bilinear map here); the mean is within 4 standard errors of it. With the patch found by BSDF
 * sampling alone the image would be far noisier: the standard error is also bounded (2% of the
 * mean, a bound that sampling the patch's 0.4% of the sphere by the cosine alone misses ~5x). */
TEST(env_map_sampling) {
  enum { MW = 32, MH = 16 };
  kiln__scene s = base_scene();
  s.settings.width = s.settings.height = 16;
  s.settings.spp = 16;
  s.settings.max_bounces = 0;
  float map[MW * MH * 3];
  for (int i = 0; i < MW * MH * 3; i++) map[i] = 0.05f;
  for (int y = 3; y <= 4; y++)
    for (int x = 10; x <= 11; x++)
      map[3 * (y * MW + x)] = map[3 * (y * MW + x) + 1] = map[3 * (y * MW + x) + 2] = 200;
  s.env.type = KILN__ENV_MAP;
  s.env.texture = add_texture(&s, MW, MH, map);
  s.env.rotation_deg = 30;
  s.env.intensity = 1;
  float pos[3] = {0, 5, 0}, at[3] = {0, 0, 0}, up[3] = {0, 0, 1};
  memcpy(s.camera.position, pos, 12), memcpy(s.camera.look_at, at, 12), memcpy(s.camera.up, up, 12);
  add_material(&s, (kiln__material){.type = KILN__MAT_DIFFUSE, .albedo = {0.5f, 0.5f, 0.5f}});
  const float q[4][3] = {{-10, 0, -10}, {-10, 0, 10}, {10, 0, 10}, {10, 0, -10}};
  add_quad(&s, q, 0, 1);
  kiln__texture tex = {MW, MH, map, false, false};
  double want = 0.5 * map_irradiance_up(&tex, 1); /* rotation about y keeps the upper hemisphere */
  int n = 16 * 16;
  ctx c = open_ctx(&s, NULL);
  kiln_frame_config fc;
  kiln_frame_config_default(c.r, &fc);
  kiln_future *f;
  const kiln_image *img = render(&c, &fc, &f);
  bool take[16 * 16];
  for (int i = 0; i < n; i++) {
    take[i] = info_of(img).object_id[i] == 1;
    KT_TRUE(take[i]);
    KT_TRUE(info_of(img).normal[3 * i + 1] > 0.99999f);
  }
  double mean, se;
  int cnt;
  stats(info_of(img).color, take, n, 0, &mean, &se, &cnt);
  fprintf(stderr, "map sampling: mean %.5f, quadrature %.5f, se %.5f\n", mean, want, se);
  if (fabs(mean - want) > 4 * se + 1e-4 * want) KT_FAIL("mean %g, want %g (se %g)", mean, want, se);
  if (se > 0.02 * want) KT_FAIL("se %g: the bright patch is not importance-sampled", se);
  kiln_future_release(f);
  close_ctx(&c);
}

/* A diffuse sphere (albedo a) inside a map of uniform radiance L renders a L wherever it covers
 * the image: the map's sampling pdf (luminance * sin(polar angle), normalised) integrates to one.
 * (L: 0.5 as RGBE, mantissa 128 and exponent 128, is 128.5 / 256, times the intensity 2.) */
TEST(env_map_furnace) {
  char dir[] = "/tmp/kiln_envmap_XXXXXX";
  KT_TRUE(mkdtemp(dir) != NULL);
  enum { MW = 16, MH = 8 };
  float map[MW * MH * 3];
  for (int i = 0; i < MW * MH * 3; i++) map[i] = 0.5f;
  char p[256];
  snprintf(p, sizeof p, "%s/sky.hdr", dir);
  KT_TRUE(stbi_write_hdr(p, MW, MH, 3, map) != 0);
  snprintf(p, sizeof p, "%s/scene.json", dir);
  write_text(p, "{\"camera\": {\"position\": [0, 0, -4], \"look_at\": [0, 0, 0], \"vfov\": 40},\n"
                " \"settings\": {\"width\": 24, \"height\": 24, \"spp\": 16, \"max_bounces\": 4},\n"
                " \"environment\": {\"type\": \"map\", \"file\": \"sky.hdr\", \"intensity\": 2},\n"
                " \"objects\": [{\"type\": \"sphere\", \"radius\": 1,\n"
                "   \"material\": {\"type\": \"diffuse\", \"albedo\": [0.5, 0.25, 0.8]}}]}\n");
  kiln_scene *scene = load_in(dir);
  ctx c = {0};
  c.gpu = tg_gpu();
  c.dev = tg_device(c.gpu, NULL);
  c.scene = scene;
  KT_CODE(kiln_renderer_create(scene, &c.dev, 1, NULL, &c.r), KILN_OK);
  kiln_frame_config fc;
  kiln_frame_config_default(c.r, &fc);
  kiln_future *f;
  const kiln_image *img = render(&c, &fc, &f);
  const double L = 2 * 128.5 / 256, alb[3] = {0.5 * L, 0.25 * L, 0.8 * L};
  bool take[24 * 24];
  int n = 24 * 24, bg = 0;
  for (int i = 0; i < n; i++) {
    take[i] = interior(img, i % 24, i / 24, 1);
    if (interior(img, i % 24, i / 24, 0)) {
      bg++;
      for (int k = 0; k < 3; k++)
        if (fabs(info_of(img).color[3 * i + k] - L) > 1e-5)
          KT_FAIL("background pixel %d channel %d: %g, want %g", i, k,
                  info_of(img).color[3 * i + k], L);
    }
  }
  KT_TRUE(bg > 50);
  for (int k = 0; k < 3; k++) {
    double mean, se;
    int cnt;
    stats(info_of(img).color, take, n, k, &mean, &se, &cnt);
    KT_TRUE(cnt > 50);
    fprintf(stderr, "map furnace channel %d: mean %.5f, albedo %.5f, se %.5f\n", k, mean, alb[k],
            se);
    if (fabs(mean - alb[k]) > 4 * se + 1e-5)
      KT_FAIL("channel %d: mean %g, want %g (se %g)", k, mean, alb[k], se);
  }
  kiln_future_release(f);
  close_ctx(&c);
  remove(p);
  snprintf(p, sizeof p, "%s/sky.hdr", dir), remove(p);
  rmdir(dir);
}

/* ---- emissive spheres ------------------------------------------------------------------------- */

/* A diffuse floor (albedo 0.5) under an emissive sphere (radius 1, radiance 100, centre 10 above),
 * black sky, seen from below the sphere: a floor point's radiance is a L sin^2(alpha) cos(theta)
 * with sin(alpha) = r / d (the sphere is wholly above the horizon), here about 0.5. The mean over
 * the image is the mean of that at the centre rays' hits within 4 standard errors, and the error
 * is small: BSDF sampling alone finds a sphere that fills 0.25% of the hemisphere so rarely that
 * its standard error would be ~10%; the bound here is 1%. */
TEST(sphere_light_sampling) {
  kiln__scene s = base_scene();
  s.settings.width = s.settings.height = 16;
  s.settings.spp = 16;
  s.env.color[0] = s.env.color[1] = s.env.color[2] = 0;
  float pos[3] = {0, 5, 0}, at[3] = {0, 0, 0}, up[3] = {0, 0, 1};
  memcpy(s.camera.position, pos, 12), memcpy(s.camera.look_at, at, 12), memcpy(s.camera.up, up, 12);
  s.camera.vfov_deg = 4;
  add_material(&s, (kiln__material){.type = KILN__MAT_DIFFUSE, .albedo = {0.5f, 0.5f, 0.5f}});
  add_material(&s, (kiln__material){.type = KILN__MAT_EMISSIVE, .emission = {100, 100, 100}});
  const float q[4][3] = {{-20, 0, -20}, {-20, 0, 20}, {20, 0, 20}, {20, 0, -20}};
  add_quad(&s, q, 0, 1);
  add_sphere(&s, 0, 10, 0, 1, 1, 2);
  int n = 16 * 16;
  ctx c = open_ctx(&s, NULL);
  kiln_frame_config fc;
  kiln_frame_config_default(c.r, &fc);
  kiln_future *f;
  const kiln_image *img = render(&c, &fc, &f);
  double want = 0;
  bool take[16 * 16];
  for (int i = 0; i < n; i++) {
    take[i] = info_of(img).object_id[i] == 1;
    KT_TRUE(take[i]);
    double d[3];
    centre_ray(pos, at, up, 4, 16, 16, i % 16 + 0.5, i / 16 + 0.5, d);
    double t = -pos[1] / d[1], p[3] = {pos[0] + t * d[0], 0, pos[2] + t * d[2]};
    double to[3] = {-p[0], 10, -p[2]}, dist = sqrt(to[0] * to[0] + to[1] * to[1] + to[2] * to[2]);
    want += 0.5 * 100 * (1 / (dist * dist)) * (to[1] / dist);
  }
  want /= n;
  double mean, se;
  int cnt;
  stats(info_of(img).color, take, n, 0, &mean, &se, &cnt);
  fprintf(stderr, "sphere light: mean %.5f, analytic %.5f, se %.5f\n", mean, want, se);
  if (fabs(mean - want) > 4 * se + 1e-5) KT_FAIL("mean %g, want %g (se %g)", mean, want, se);
  if (se > 0.01 * want) KT_FAIL("se %g: the sphere is not light-sampled", se);
  kiln_future_release(f);
  close_ctx(&c);
}

/* ---- determinism ---------------------------------------------------------------------------- */

/* Every new path at once (a textured quad with vertex normals, an emissive sphere, a rotated map
 * environment light-sampled alongside it, a glass sphere): tiles of 64 with passes of 4 spp and
 * tiles of 8 with passes of 1 spp give the same bits, passes included; another frame differs. */
TEST(determinism_shading) {
  kiln__scene s = base_scene();
  s.settings.width = 20, s.settings.height = 18, s.settings.spp = 5;
  enum { MW = 8, MH = 4 };
  float map[MW * MH * 3];
  for (int i = 0; i < MW * MH * 3; i++) map[i] = 0.1f * (float)(i % 7);
  s.env.type = KILN__ENV_MAP;
  s.env.texture = add_texture(&s, MW, MH, map);
  s.env.rotation_deg = 40;
  float rgb[2 * 2 * 3] = {1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1};
  int32_t ti = add_texture(&s, 2, 2, rgb);
  add_material(&s, (kiln__material){.type = KILN__MAT_DIFFUSE, .albedo = {0.8f, 0.8f, 0.8f}});
  s.materials[0].texture = ti;
  add_material(&s, (kiln__material){.type = KILN__MAT_EMISSIVE, .emission = {5, 4, 3}});
  add_material(&s,
               (kiln__material){.type = KILN__MAT_DIELECTRIC, .albedo = {1, 1, 1}, .ior = 1.5f});
  const float q[4][3] = {{-2, -1, 1}, {-2, 2, 1}, {2, 2, 1}, {2, -1, 1}};
  const float uv[4][2] = {{0, 0}, {0, 3}, {3, 3}, {3, 0}};
  const float nr[4][3] = {
      {0.3f, 0, -0.954f}, {0, 0.3f, -0.954f}, {-0.3f, 0, -0.954f}, {0, -0.3f, -0.954f}};
  add_quad_attr(&s, q, uv, nr, 0, 1);
  add_sphere(&s, 0.8f, 0.5f, -0.5f, 0.3f, 1, 2);
  add_sphere(&s, -0.6f, -0.2f, 0, 0.5f, 2, 3);
  ctx c = open_ctx(&s, NULL);
  kiln_frame_config fc;
  kiln_frame_config_default(c.r, &fc);
  fc.frame = 2;
  kiln_future *f1, *f2, *f3;
  fc.tile_size = 64, fc.pass_spp = 4;
  const kiln_image *a = render(&c, &fc, &f1);
  fc.tile_size = 8, fc.pass_spp = 1;
  const kiln_image *b = render(&c, &fc, &f2);
  size_t n = 20 * 18;
  KT_TRUE(memcmp(info_of(a).color, info_of(b).color, n * 12) == 0);
  KT_TRUE(memcmp(info_of(a).normal, info_of(b).normal, n * 12) == 0);
  KT_TRUE(memcmp(info_of(a).albedo, info_of(b).albedo, n * 12) == 0);
  for (size_t i = 0; i < 3 * n; i++) KT_TRUE(isfinite(info_of(a).color[i]));
  fc.frame = 3;
  const kiln_image *d = render(&c, &fc, &f3);
  KT_TRUE(memcmp(info_of(a).color, info_of(d).color, n * 12) != 0);
  kiln_future_release(f1), kiln_future_release(f2), kiln_future_release(f3);
  close_ctx(&c);
}

/* Two emissive spheres (radiance 1 and 100, radius 1, 10 above a diffuse floor of albedo 0.5) and
 * a sky of radiance 0.5: emitters are picked by power and the sky half the time, all combined by
 * MIS. A floor point's radiance is exact: a (L_sky (1 - s1 - s2) + L1 s1 + L2 s2) with
 * s = sin^2(alpha) cos(theta), the cosine-weighted solid angle of each sphere (which hides that
 * much sky). The mean is within 4 standard errors of the mean of that at the centre rays. */
TEST(lights_by_power_and_sky) {
  kiln__scene s = base_scene();
  s.settings.width = s.settings.height = 16;
  s.settings.spp = 16;
  s.settings.max_bounces = 0;
  s.env.color[0] = s.env.color[1] = s.env.color[2] = 0.5f;
  float pos[3] = {0, 5, 0}, at[3] = {0, 0, 0}, up[3] = {0, 0, 1};
  memcpy(s.camera.position, pos, 12), memcpy(s.camera.look_at, at, 12), memcpy(s.camera.up, up, 12);
  s.camera.vfov_deg = 4;
  add_material(&s, (kiln__material){.type = KILN__MAT_DIFFUSE, .albedo = {0.5f, 0.5f, 0.5f}});
  add_material(&s, (kiln__material){.type = KILN__MAT_EMISSIVE, .emission = {1, 1, 1}});
  add_material(&s, (kiln__material){.type = KILN__MAT_EMISSIVE, .emission = {100, 100, 100}});
  const float q[4][3] = {{-20, 0, -20}, {-20, 0, 20}, {20, 0, 20}, {20, 0, -20}};
  add_quad(&s, q, 0, 1);
  const double cx[2] = {-2, 2}, L[2] = {1, 100};
  add_sphere(&s, (float)cx[0], 10, 0, 1, 1, 2);
  add_sphere(&s, (float)cx[1], 10, 0, 1, 2, 3);
  int n = 16 * 16;
  ctx c = open_ctx(&s, NULL);
  kiln_frame_config fc;
  kiln_frame_config_default(c.r, &fc);
  kiln_future *f;
  const kiln_image *img = render(&c, &fc, &f);
  double want = 0;
  bool take[16 * 16];
  for (int i = 0; i < n; i++) {
    take[i] = info_of(img).object_id[i] == 1;
    KT_TRUE(take[i]);
    double d[3];
    centre_ray(pos, at, up, 4, 16, 16, i % 16 + 0.5, i / 16 + 0.5, d);
    double t = -pos[1] / d[1], p[3] = {pos[0] + t * d[0], 0, pos[2] + t * d[2]}, v = 0.5;
    for (int k = 0; k < 2; k++) {
      double to[3] = {cx[k] - p[0], 10, -p[2]},
             dist = sqrt(to[0] * to[0] + to[1] * to[1] + to[2] * to[2]);
      double sk = (1 / (dist * dist)) * (to[1] / dist);
      v += (L[k] - 0.5) * sk;
    }
    want += 0.5 * v;
  }
  want /= n;
  double mean, se;
  int cnt;
  stats(info_of(img).color, take, n, 0, &mean, &se, &cnt);
  fprintf(stderr, "two spheres and sky: mean %.5f, analytic %.5f, se %.5f\n", mean, want, se);
  if (fabs(mean - want) > 4 * se + 1e-5) KT_FAIL("mean %g, want %g (se %g)", mean, want, se);
  kiln_future_release(f);
  close_ctx(&c);
}
