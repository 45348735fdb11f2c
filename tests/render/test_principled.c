/* test_principled.c: the principled material (Cycles 3.4's Principled BSDF v1 as docs/SCENE.md
 * describes it), vertex colours, normal maps, alpha cut-outs and emission textures, on lavapipe.
 * Expected values are the documented model's (quadratures here) or exact; tolerances are 4
 * standard errors of the mean estimated from the images, plus float rounding. */
// kt: timeout 300
#include "render_test_util.h"

#include "render_internal.h"

static const double PI = 3.14159265358979323846;

static kiln__material principled(float r, float g, float b, float metallic, float roughness) {
  return (kiln__material){.type = KILN__MAT_PRINCIPLED, .albedo = {r, g, b},
                          .metallic = metallic, .roughness = roughness, .ior = 1.5f,
                          .alpha = 1, .normal_scale = 1, .mr_texture = -1,
                          .normal_texture = -1, .emission_texture = -1, .alpha_texture = -1,
                          .uv_xform = {1, 0, 0, 0, 1, 0}};
}

/* Where the centre ray of pixel (x, y) meets the plane z = zp. */
static void hit_plane(const kiln__camera *cam, int w, int h, int x, int y, double zp, double p[3]) {
  double d[3];
  centre_ray(cam->position, cam->look_at, cam->up, cam->vfov_deg, w, h, x + 0.5, y + 0.5, d);
  double t = (zp - cam->position[2]) / d[2];
  for (int k = 0; k < 3; k++) p[k] = cam->position[k] + t * d[k];
}

/* Mean and standard error of the mean of channel k over the interior pixels of object id. */
static void obj_stats(const kiln_image *img, uint32_t id, int k, double *mean, double *se,
                      int *n) {
  int w = info_of(img).width, h = info_of(img).height;
  double s = 0, s2 = 0;
  *n = 0;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      if (interior(img, x, y, id)) {
        double v = info_of(img).color[3 * (y * w + x) + k];
        s += v, s2 += v * v, (*n)++;
      }
  *mean = *n ? s / *n : 0;
  double var = *n ? s2 / *n - *mean * *mean : 0;
  *se = *n > 1 ? sqrt((var > 0 ? var : 0) / (*n - 1)) : 0;
}

/* ---- the model, for quadratures: a copy of bsdf.glsl's principled_eval (f cos) ---------------- */

static double pow5_1m(double c) {
  double x = 1 - (c < 0 ? 0 : c > 1 ? 1 : c);
  return x * x * x * x * x;
}
static double fresnel_dielectric(double c, double eta) {
  c = fabs(c);
  double g2 = eta * eta - 1 + c * c;
  if (g2 <= 0) return 1;
  double g = sqrt(g2), A = (g - c) / (g + c), B = (c * (g + c) - 1) / (c * (g - c) + 1);
  return 0.5 * A * A * (1 + B * B);
}
/* f cos of a grey principled material (base colour b) for wo at cosine mu (in the xz plane),
 * wi = (sin t cos p, sin t sin p, cos t), about n = +z. */
static double model_fcos(double b, double metal, double rough, double mu, double ct, double ph) {
  double so = sqrt(1 - mu * mu), st = sqrt(1 - ct * ct);
  double wo[3] = {so, 0, mu}, wi[3] = {st * cos(ph), st * sin(ph), ct};
  double fo = pow5_1m(mu), fi = pow5_1m(ct), rr = rough * (1 + so * wi[0] + mu * ct);
  double fd = (1 - 0.5 * fo) * (1 - 0.5 * fi) + rr * (fo + fi + fo * fi * (rr - 1));
  double f = b * (1 - metal) * fd * ct / PI;
  double a = fmax(rough * rough, 1e-3), a2 = a * a;
  double h[3] = {wo[0] + wi[0], wo[1] + wi[1], wo[2] + wi[2]};
  double hl = sqrt(h[0] * h[0] + h[1] * h[1] + h[2] * h[2]);
  double nh = h[2] / hl, lh = (wi[0] * h[0] + wi[1] * h[1] + wi[2] * h[2]) / hl;
  double k = nh * nh * (a2 - 1) + 1, D = a2 / (PI * k * k);
  double l1 = 0.5 * (-1 + sqrt(1 + a2 * (1 - mu * mu) / (mu * mu)));
  double l2 = 0.5 * (-1 + sqrt(1 + a2 * (1 - ct * ct) / (ct * ct)));
  double f0 = fresnel_dielectric(1, 1.5), fh = fmax(fresnel_dielectric(lh, 1.5) - f0, 0) / (1 - f0);
  double cs = f0 * (1 - metal) + b * metal;
  return f + (cs * (1 - fh) + fh) * D / (4 * mu * (1 + l1 + l2));
}
/* The directional albedo at mu: the integral of f cos over the hemisphere (midpoint rule in cos
 * theta and phi, finer where the specular peak is). */
static double model_albedo(double b, double metal, double rough, double mu) {
  const int NT = 400, NP = 400;
  double s = 0;
  for (int i = 0; i < NT; i++) {
    double ct = (i + 0.5) / NT;
    for (int j = 0; j < NP; j++) s += model_fcos(b, metal, rough, mu, ct, (j + 0.5) * 2 * PI / NP);
  }
  return s * (1.0 / NT) * (2 * PI / NP);
}

/* ---- furnace -------------------------------------------------------------------------------- */

/* One sphere of base colour 1, roughness 0.5, in a uniform environment of radiance 1 (a convex
 * object: every scattered ray escapes, so a pixel is the directional albedo at its view angle).
 * metallic 1: every pixel <= 1 (the weight F G2 / G1 with F = 1, as the conductor's). metallic 0:
 * Cycles' Principled v1 adds the diffuse and the specular without layering, and the principled
 * diffuse's retro-reflection adds more at grazing angles: the albedo is above 1 (1.04 head-on,
 * 1.2 at grazing), as in Cycles. The mean is checked against the model's quadrature at each
 * pixel's centre ray, which also checks the lobe sampling's pdf (a wrong one biases it). */
static void furnace(float metal, double *mean_out, double *want_out, double *se_out, float *maxv) {
  kiln__scene s = base_scene();
  s.settings.width = s.settings.height = 32;
  s.settings.spp = 16;
  s.camera.position[2] = -4.5f;
  s.env.color[0] = s.env.color[1] = s.env.color[2] = 1;
  add_material(&s, principled(1, 1, 1, metal, 0.5f));
  add_sphere(&s, 0, 0, 0, 1, 0, 1);
  kiln__camera cam = s.camera;
  ctx c = open_ctx(&s, NULL);
  kiln_frame_config fc;
  kiln_frame_config_default(c.r, &fc);
  kiln_future *f;
  const kiln_image *img = render(&c, &fc, &f);
  int w = 32, n = 0;
  double sum = 0, sum2 = 0, want = 0;
  *maxv = 0;
  for (int y = 0; y < w; y++)
    for (int x = 0; x < w; x++) {
      if (!interior(img, x, y, 1)) continue;
      double d[3];
      centre_ray(cam.position, cam.look_at, cam.up, cam.vfov_deg, w, w, x + 0.5, y + 0.5, d);
      const double o[3] = {cam.position[0], cam.position[1], cam.position[2]};
      double bq = o[0] * d[0] + o[1] * d[1] + o[2] * d[2];
      double cq = o[0] * o[0] + o[1] * o[1] + o[2] * o[2] - 1, t = -bq - sqrt(bq * bq - cq);
      double mu = 0;
      for (int k = 0; k < 3; k++) mu -= d[k] * (o[k] + t * d[k]);
      want += model_albedo(1, metal, 0.5, mu);
      for (int k = 0; k < 3; k++)
        if (info_of(img).color[3 * (y * w + x) + k] > *maxv)
          *maxv = info_of(img).color[3 * (y * w + x) + k];
      double v = info_of(img).color[3 * (y * w + x)];
      sum += v, sum2 += v * v, n++;
    }
  KT_TRUE(n > 100);
  *mean_out = sum / n, *want_out = want / n;
  double var = sum2 / n - *mean_out * *mean_out;
  *se_out = sqrt((var > 0 ? var : 0) / (n - 1));
  kiln_future_release(f);
  close_ctx(&c);
}

TEST(white_furnace) {
  double mean, want, se;
  float maxv;
  furnace(1, &mean, &want, &se, &maxv);
  fprintf(stderr, "metallic 1: mean %.5f, model %.5f, se %.5f, max %.5f\n", mean, want, se, maxv);
  if (maxv > 1 + 1e-5f) KT_FAIL("metallic 1: pixel %g > 1", maxv);
  if (fabs(mean - want) > 4 * se + 2e-3) KT_FAIL("metallic 1: mean %g, model %g", mean, want);
  furnace(0, &mean, &want, &se, &maxv);
  fprintf(stderr, "metallic 0: mean %.5f, model %.5f, se %.5f, max %.5f\n", mean, want, se, maxv);
  KT_TRUE(want > 1.02 && want < 1.25); /* Cycles v1's energy gain, bounded */
  if (fabs(mean - want) > 4 * se + 2e-3) KT_FAIL("metallic 0: mean %g, model %g", mean, want);
}

/* ---- metallic 1 against the conductor ------------------------------------------------------- */

static void sphere_means(kiln__material m, double mean[3], double se[3]) {
  kiln__scene s = base_scene();
  s.settings.width = s.settings.height = 32;
  s.settings.spp = 16;
  s.camera.position[2] = -4.5f;
  s.env.type = KILN__ENV_GRADIENT;
  s.env.color[0] = s.env.color[1] = s.env.color[2] = 0.2f;
  s.env.top[0] = s.env.top[1] = s.env.top[2] = 1;
  add_material(&s, m);
  add_sphere(&s, 0, 0, 0, 1, 0, 1);
  ctx c = open_ctx(&s, NULL);
  kiln_frame_config fc;
  kiln_frame_config_default(c.r, &fc);
  kiln_future *f;
  const kiln_image *img = render(&c, &fc, &f);
  for (int k = 0; k < 3; k++) {
    int n;
    obj_stats(img, 1, k, &mean[k], &se[k], &n);
    KT_TRUE(n > 100);
  }
  kiln_future_release(f);
  close_ctx(&c);
}

/* A principled material of metallic 1 and no textures is the conductor of F0 = base colour,
 * sampled the same way (the specular lobe always: the diffuse has weight 0), with one difference:
 * its Fresnel is Cycles' (the dielectric curve of ior 1.5 rescaled onto [F0, 1]) where the
 * conductor's is Schlick's; the two agree head-on and differ at grazing angles, by a few percent
 * of the sphere's mean. */
TEST(metallic_vs_conductor) {
  double mp[3], sp[3], mc[3], sc[3];
  sphere_means(principled(0.9f, 0.6f, 0.3f, 1, 0.3f), mp, sp);
  sphere_means((kiln__material){.type = KILN__MAT_CONDUCTOR, .albedo = {0.9f, 0.6f, 0.3f},
                                .roughness = 0.3f},
               mc, sc);
  bool differ = false;
  for (int k = 0; k < 3; k++) {
    double rel = (mp[k] - mc[k]) / mc[k];
    fprintf(stderr, "channel %d: principled %.5f, conductor %.5f (%+.2f%%), se %.5f %.5f\n", k,
            mp[k], mc[k], 100 * rel, sp[k], sc[k]);
    if (fabs(rel) > 0.05) KT_FAIL("channel %d: %+.2f%% apart", k, 100 * rel);
    differ |= mp[k] != mc[k];
  }
  KT_TRUE(differ); /* not the conductor's code with another name */
}

/* ---- vertex colours ------------------------------------------------------------------------- */

/* The vertex colours at a point (affine in x and y: barycentric interpolation reproduces it). */
static void vcol(double x, double y, double c[3]) {
  c[0] = 0.5 + 0.3 * x, c[1] = 0.6 + 0.3 * y, c[2] = 0.7 - 0.2 * x + 0.1 * y;
}

/* A diffuse quad and a principled quad with vertex colours: the albedo pass is the material's
 * albedo times the interpolated colour, at every pixel of both. */
TEST(vertex_colours_albedo) {
  kiln__scene s = base_scene();
  const int W = 48;
  s.settings.width = s.settings.height = W;
  s.settings.spp = 1;
  const float ad[3] = {0.5f, 0.8f, 1}, ap[3] = {0.9f, 0.6f, 0.3f};
  add_material(&s, (kiln__material){.type = KILN__MAT_DIFFUSE, .albedo = {ad[0], ad[1], ad[2]}});
  add_material(&s, principled(ap[0], ap[1], ap[2], 0, 0.5f));
  const float q1[4][3] = {{-1.2f, -0.6f, 0}, {-1.2f, 0.6f, 0}, {-0.1f, 0.6f, 0}, {-0.1f, -0.6f, 0}};
  const float q2[4][3] = {{0.1f, -0.6f, 0}, {0.1f, 0.6f, 0}, {1.2f, 0.6f, 0}, {1.2f, -0.6f, 0}};
  add_quad(&s, q1, 0, 1);
  add_quad(&s, q2, 1, 2);
  s.col = malloc(s.ntris * 9 * sizeof(float));
  for (size_t i = 0; i < s.ntris * 3; i++) {
    double c[3];
    vcol(s.pos[3 * i], s.pos[3 * i + 1], c);
    for (int k = 0; k < 3; k++) s.col[3 * i + k] = (float)c[k];
  }
  kiln__camera cam = s.camera;
  ctx c = open_ctx(&s, NULL);
  kiln_frame_config fc;
  kiln_frame_config_default(c.r, &fc);
  kiln_future *f;
  const kiln_image *img = render(&c, &fc, &f);
  int seen[3] = {0, 0, 0};
  for (int y = 0; y < W; y++)
    for (int x = 0; x < W; x++) {
      uint32_t id = info_of(img).object_id[y * W + x];
      if (id == 0) continue;
      seen[id]++;
      double p[3], col[3];
      hit_plane(&cam, W, W, x, y, 0, p);
      vcol(p[0], p[1], col);
      const float *a = info_of(img).albedo + 3 * (y * W + x), *m = id == 1 ? ad : ap;
      for (int k = 0; k < 3; k++)
        if (fabs(a[k] - m[k] * col[k]) > 1e-4)
          KT_FAIL("object %u pixel %d,%d channel %d: albedo %g, want %g", id, x, y, k, a[k],
                  m[k] * col[k]);
    }
  KT_TRUE(seen[1] > 200 && seen[2] > 200);
  kiln_future_release(f);
  close_ctx(&c);
}

/* ---- normal maps ------------------------------------------------------------------------------ */

/* Two quads facing the camera (normal -z), u along +x and v along +y, with a constant normal map
 * of tangent-space normal m. The left one has no tangents: the triangle's own from its uv, +x,
 * with the bitangent along +v (+y). The right one has tangents +x of sign +1 (bitangent
 * cross(n, t) = -y) and normal_scale 0.5. The normal pass is the bent normal, exactly. */
TEST(normal_map_tilts_the_normal) {
  kiln__scene s = base_scene();
  const int W = 48;
  s.settings.width = s.settings.height = W;
  s.settings.spp = 1;
  const double m[3] = {0.3, 0.4, sqrt(1 - 0.09 - 0.16)};
  const float texel[3] = {(float)(0.5 + 0.5 * m[0]), (float)(0.5 + 0.5 * m[1]),
                          (float)(0.5 + 0.5 * m[2])};
  int32_t nt = add_texture(&s, 1, 1, texel);
  kiln__material a = principled(0.8f, 0.8f, 0.8f, 0, 0.5f), b = a;
  add_material(&s, a);
  add_material(&s, b);
  s.materials[0].normal_texture = s.materials[1].normal_texture = nt;
  s.materials[1].normal_scale = 0.5f;
  const float q1[4][3] = {{-1.2f, -0.6f, 0}, {-1.2f, 0.6f, 0}, {-0.1f, 0.6f, 0}, {-0.1f, -0.6f, 0}};
  const float q2[4][3] = {{0.1f, -0.6f, 0}, {0.1f, 0.6f, 0}, {1.2f, 0.6f, 0}, {1.2f, -0.6f, 0}};
  const float uv[4][2] = {{0, 0}, {0, 1}, {1, 1}, {1, 0}};
  add_quad_attr(&s, q1, uv, NULL, 0, 1);
  add_quad_attr(&s, q2, uv, NULL, 1, 2);
  /* tangents: none on the left quad (zeros), +x with sign +1 on the right */
  s.tan = calloc(s.ntris * 12, sizeof(float));
  for (size_t t = 2; t < 4; t++)
    for (int k = 0; k < 3; k++) s.tan[12 * t + 4 * k] = 1, s.tan[12 * t + 4 * k + 3] = 1;
  ctx c = open_ctx(&s, NULL);
  kiln_frame_config fc;
  kiln_frame_config_default(c.r, &fc);
  kiln_future *f;
  const kiln_image *img = render(&c, &fc, &f);
  /* n = -z. Left: t = +x, bitangent sign from the uv (w = -1: -cross(n, t) = +y, along +v).
   * Right: t = +x, w = +1: bitangent cross(n, t) = -y; x and y scaled by 0.5. */
  double want[3][3];
  const double l1 = sqrt(m[0] * m[0] + m[1] * m[1] + m[2] * m[2]);
  want[1][0] = m[0] / l1, want[1][1] = m[1] / l1, want[1][2] = -m[2] / l1;
  const double r[3] = {0.5 * m[0], -0.5 * m[1], -m[2]};
  const double l2 = sqrt(r[0] * r[0] + r[1] * r[1] + r[2] * r[2]);
  for (int k = 0; k < 3; k++) want[2][k] = r[k] / l2;
  int seen[3] = {0, 0, 0};
  for (int i = 0; i < W * W; i++) {
    uint32_t id = info_of(img).object_id[i];
    if (id == 0) continue;
    seen[id]++;
    const float *nn = info_of(img).normal + 3 * i;
    for (int k = 0; k < 3; k++)
      if (fabs(nn[k] - want[id][k]) > 1e-4)
        KT_FAIL("object %u pixel %d: normal %g %g %g, want %g %g %g", id, i, nn[0], nn[1], nn[2],
                want[id][0], want[id][1], want[id][2]);
  }
  KT_TRUE(seen[1] > 200 && seen[2] > 200);
  kiln_future_release(f);
  close_ctx(&c);
}

/* docs/validation/principled/nm.json: two quads facing the camera with a constant normal map
 * (8-bit texel 191, 166, 231: tangent-space (0.5, 0.3, 0.81)), tangent up on one and bitangent up
 * on the other, under a gradient sky (black below, white above). Cycles 3.4's means over each
 * quad's interior at 96x48 and 1024 spp, from nm_blender.py, with its bump shadowing term on the
 * diffuse lobe (without it kiln was 18% and 16% brighter); here 48x24 at 16 spp, within 4
 * standard errors + 1%. */
TEST(normal_map_against_cycles) {
  kiln__scene s = base_scene();
  s.settings.width = 48, s.settings.height = 24, s.settings.spp = 16;
  s.camera.vfov_deg = 25;
  s.env.type = KILN__ENV_GRADIENT;
  s.env.top[0] = s.env.top[1] = s.env.top[2] = 1;
  const float texel[3] = {191 / 255.0f, 166 / 255.0f, 231 / 255.0f};
  int32_t nt = add_texture(&s, 1, 1, texel);
  add_material(&s, principled(0.8f, 0.8f, 0.8f, 0, 0.5f));
  s.materials[0].normal_texture = nt;
  const float uv[4][2] = {{0, 0}, {1, 0}, {1, 1}, {0, 1}};
  const float q1[4][3] = {{-1.3f, -0.6f, 0}, {-1.3f, 0.6f, 0}, {-0.1f, 0.6f, 0}, {-0.1f, -0.6f, 0}};
  const float q2[4][3] = {{1.3f, -0.6f, 0}, {0.1f, -0.6f, 0}, {0.1f, 0.6f, 0}, {1.3f, 0.6f, 0}};
  add_quad_attr(&s, q1, uv, NULL, 0, 1); /* u up (+y), v along +x */
  add_quad_attr(&s, q2, uv, NULL, 0, 2); /* u along -x, v up */
  ctx c = open_ctx(&s, NULL);
  kiln_frame_config fc;
  kiln_frame_config_default(c.r, &fc);
  kiln_future *f;
  const kiln_image *img = render(&c, &fc, &f);
  static const double cycles[3] = {0, 0.42396, 0.39027};
  for (uint32_t id = 1; id <= 2; id++) {
    double mean, se;
    int n;
    obj_stats(img, id, 0, &mean, &se, &n);
    fprintf(stderr, "quad %u: mean %.5f (se %.5f, %d px), Cycles %.5f\n", id, mean, se, n,
            cycles[id]);
    KT_TRUE(n > 50);
    if (fabs(mean - cycles[id]) > 4 * se + 0.01 * cycles[id])
      KT_FAIL("quad %u: mean %g, Cycles %g (se %g)", id, mean, cycles[id], se);
  }
  kiln_future_release(f);
  close_ctx(&c);
}

/* ---- alpha cut-outs ----------------------------------------------------------------------------- */

static void add_wall_and_card(kiln__scene *s, uint32_t card_mat) {
  add_material(s, (kiln__material){.type = KILN__MAT_DIFFUSE, .albedo = {0.7f, 0.5f, 0.3f}});
  const float wall[4][3] = {{-3, -3, 0}, {-3, 3, 0}, {3, 3, 0}, {3, -3, 0}};
  const float card[4][3] = {{-0.6f, -0.6f, -1}, {-0.6f, 0.6f, -1}, {0.6f, 0.6f, -1}, {0.6f, -0.6f, -1}};
  const float uv[4][2] = {{0, 0}, {0, 1}, {1, 1}, {1, 0}};
  add_quad_attr(s, wall, uv, NULL, (uint32_t)s->nmaterials - 1, 2);
  add_quad_attr(s, card, uv, NULL, card_mat, 1);
}

/* A card (principled, alpha_cutoff 0.5) in front of a wall. With an alpha texture of texels
 * 0, 0, 1, 1 along u: the id pass shows the wall where the coverage is 0 and the card where it is
 * 1. With coverage 0.2 everywhere: the card is gone for every ray, shadow rays too: the wall
 * (diffuse, under a uniform sky: each sample is exactly its albedo) renders its albedo at every
 * pixel, behind the card too. And a card that is all hole emits nothing, to rays or to light
 * sampling. */
TEST(alpha_cutout) {
  const int W = 48;
  {
    kiln__scene s = base_scene();
    s.settings.width = s.settings.height = W;
    s.settings.spp = 1;
    s.env.color[0] = s.env.color[1] = s.env.color[2] = 1;
    const float cov[4 * 3] = {0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1};
    int32_t at = add_texture(&s, 4, 1, cov);
    add_material(&s, principled(0.2f, 0.9f, 0.2f, 0, 0.5f));
    s.materials[0].alpha_cutoff = 0.5f, s.materials[0].alpha_texture = at;
    add_wall_and_card(&s, 0);
    kiln__camera cam = s.camera;
    ctx c = open_ctx(&s, NULL);
    kiln_frame_config fc;
    kiln_frame_config_default(c.r, &fc);
    kiln_future *f;
    const kiln_image *img = render(&c, &fc, &f);
    int holes = 0, solid = 0;
    for (int y = 0; y < W; y++)
      for (int x = 0; x < W; x++) {
        double p[3];
        hit_plane(&cam, W, W, x, y, -1, p);
        double u = (p[0] + 0.6) / 1.2, v = (p[1] + 0.6) / 1.2;
        if (v < 0.05 || v > 0.95) continue;
        uint32_t id = info_of(img).object_id[y * W + x];
        if (u > 0.15 && u < 0.35) {
          holes++;
          if (id != 2) KT_FAIL("pixel %d,%d (u %g): id %u, want the wall (2)", x, y, u, id);
        } else if (u > 0.65 && u < 0.85) {
          solid++;
          if (id != 1) KT_FAIL("pixel %d,%d (u %g): id %u, want the card (1)", x, y, u, id);
        }
      }
    KT_TRUE(holes > 20 && solid > 20);
    kiln_future_release(f);
    close_ctx(&c);
  }
  {
    kiln__scene s = base_scene();
    s.settings.width = s.settings.height = W;
    s.settings.spp = 4;
    s.env.color[0] = s.env.color[1] = s.env.color[2] = 1;
    add_material(&s, principled(0.2f, 0.9f, 0.2f, 0, 0.5f));
    s.materials[0].alpha = 0.2f, s.materials[0].alpha_cutoff = 0.5f;
    add_wall_and_card(&s, 0);
    ctx c = open_ctx(&s, NULL);
    kiln_frame_config fc;
    kiln_frame_config_default(c.r, &fc);
    kiln_future *f;
    const kiln_image *img = render(&c, &fc, &f);
    const float alb[3] = {0.7f, 0.5f, 0.3f};
    for (int i = 0; i < W * W; i++) {
      KT_TRUE(info_of(img).object_id[i] == 2);
      for (int k = 0; k < 3; k++)
        if (fabsf(info_of(img).color[3 * i + k] - alb[k]) > 1e-4f)
          KT_FAIL("pixel %d channel %d: %g, want the albedo %g", i, k, info_of(img).color[3 * i + k],
                  alb[k]);
    }
    kiln_future_release(f);
    close_ctx(&c);
  }
  { /* an emitting card that is all hole, facing the wall, black sky: nothing is lit */
    kiln__scene s = base_scene();
    s.settings.width = s.settings.height = 24;
    s.settings.spp = 4;
    add_material(&s, principled(0.5f, 0.5f, 0.5f, 0, 0.5f));
    s.materials[0].alpha = 0.2f, s.materials[0].alpha_cutoff = 0.5f;
    s.materials[0].emission[0] = s.materials[0].emission[1] = s.materials[0].emission[2] = 5;
    add_material(&s, (kiln__material){.type = KILN__MAT_DIFFUSE, .albedo = {0.7f, 0.5f, 0.3f}});
    const float wall[4][3] = {{-3, -3, 0}, {-3, 3, 0}, {3, 3, 0}, {3, -3, 0}};
    const float card[4][3] = {{-1, -1, -1}, {1, -1, -1}, {1, 1, -1}, {-1, 1, -1}}; /* faces +z */
    add_quad(&s, wall, 1, 2);
    add_quad(&s, card, 0, 1);
    ctx c = open_ctx(&s, NULL);
    kiln_frame_config fc;
    kiln_frame_config_default(c.r, &fc);
    kiln_future *f;
    const kiln_image *img = render(&c, &fc, &f);
    for (int i = 0; i < 24 * 24 * 3; i++)
      if (info_of(img).color[i] != 0) KT_FAIL("value %d: %g, want 0", i, info_of(img).color[i]);
    kiln_future_release(f);
    close_ctx(&c);
  }
}

/* ---- emission ---------------------------------------------------------------------------------- */

/* A black principled quad (metallic 0: only its specular, of a black sky) emitting 2 x a texture of
 * texels R, R, B, B along u, face-on: where a pixel's footprint is within one colour's constant
 * part it renders exactly 2 x that colour. Packed as a light: its pick weight is its area times
 * the luminance of emission x the texture's mean (relative to the brightest emitter's). */
TEST(emission_texture) {
  kiln__scene s = base_scene();
  const int W = 48;
  s.settings.width = s.settings.height = W;
  s.settings.spp = 4;
  const float R[3] = {1, 0.5f, 0.25f}, B[3] = {0.25f, 0.5f, 1};
  const float tex[12] = {R[0], R[1], R[2], R[0], R[1], R[2], B[0], B[1], B[2], B[0], B[1], B[2]};
  int32_t et = add_texture(&s, 4, 1, tex);
  add_material(&s, principled(0, 0, 0, 0, 0.5f));
  s.materials[0].emission[0] = s.materials[0].emission[1] = s.materials[0].emission[2] = 2;
  s.materials[0].emission_texture = et;
  add_material(&s, (kiln__material){.type = KILN__MAT_EMISSIVE, .emission = {1, 1, 1}});
  const float q[4][3] = {{-1, -1, 0}, {-1, 1, 0}, {1, 1, 0}, {1, -1, 0}};
  const float uv[4][2] = {{0, 0}, {0, 1}, {1, 1}, {1, 0}};
  add_quad_attr(&s, q, uv, NULL, 0, 1);
  const float far[4][3] = {{-1, 5, 5}, {-1, 5, 6}, {1, 5, 6}, {1, 5, 5}}; /* out of view */
  add_quad_attr(&s, far, uv, NULL, 1, 2);
  kiln__camera cam = s.camera;

  kiln__bvh bvh;
  kiln__render_buffers p;
  KT_CODE(kiln__bvh_build(NULL, &s, &bvh), KILN_OK);
  KT_CODE(kiln__render_pack(&s, &bvh, &p), KILN_OK);
  const float *mats = p.data[PT_BIND_MATS];
  double mean_lum = 2 * (0.5 * (0.2126 * R[0] + 0.7152 * R[1] + 0.0722 * R[2]) +
                         0.5 * (0.2126 * B[0] + 0.7152 * B[1] + 0.0722 * B[2]));
  KT_TRUE(mean_lum > 1); /* the brightest: relative luminance 1, the plain emitter's 1 / mean_lum */
  if (fabs(mats[10] - 1) > 1e-6 || fabs(mats[12 + 10] - 1 / mean_lum) > 1e-6)
    KT_FAIL("relative luminances %g %g, want 1 and %g", mats[10], mats[22], 1 / mean_lum);
  KT_TRUE(((const pt_globals *)p.data[PT_BIND_GLOBALS])->nlights == 4);
  KT_TRUE(p.features & KILN__RF_PRINCIPLED);
  KT_TRUE(!(p.features & (KILN__RF_ALPHA | KILN__RF_VATTR)));
  kiln__render_pack_free(&p);
  kiln__bvh_free(&bvh);

  ctx c = open_ctx(&s, NULL);
  kiln_frame_config fc;
  kiln_frame_config_default(c.r, &fc);
  kiln_future *f;
  const kiln_image *img = render(&c, &fc, &f);
  int pure = 0;
  for (int y = 0; y < W; y++)
    for (int x = 0; x < W; x++) {
      double p0[3], p1[3];
      hit_plane(&cam, W, W, x - 1, y - 1, 0, p0); /* the footprint, a pixel of margin */
      hit_plane(&cam, W, W, x + 1, y + 1, 0, p1);
      double u0 = (fmin(p0[0], p1[0]) + 1) / 2, u1 = (fmax(p0[0], p1[0]) + 1) / 2;
      const float *want = u0 > 0.13 && u1 < 0.37 ? R : u0 > 0.63 && u1 < 0.87 ? B : NULL;
      if (!want || !interior(img, x, y, 1)) continue;
      pure++;
      const float *cl = info_of(img).color + 3 * (y * W + x);
      for (int k = 0; k < 3; k++)
        if (fabsf(cl[k] - 2 * want[k]) > 1e-4f)
          KT_FAIL("pixel %d,%d channel %d: %g, want %g", x, y, k, cl[k], 2 * want[k]);
      for (int k = 0; k < 3; k++) KT_TRUE(info_of(img).albedo[3 * (y * W + x) + k] == 0);
    }
  KT_TRUE(pure > 100);
  kiln_future_release(f);
  close_ctx(&c);
}

/* ---- packing ------------------------------------------------------------------------------------ */

/* MATX and VATTR hold what layout.h says: a principled material's words (zeros for the others),
 * each triangle's vertex colours (white where the scene has none) and tangents. */
TEST(pack_matx_vattr) {
  kiln__scene s = base_scene();
  float texel[3] = {0.5f, 0.5f, 1};
  int32_t t0 = add_texture(&s, 1, 1, texel), t1 = add_texture(&s, 1, 1, texel);
  add_material(&s, (kiln__material){.type = KILN__MAT_DIFFUSE, .albedo = {1, 1, 1}});
  add_material(&s, principled(0.1f, 0.2f, 0.3f, 0.7f, 0.4f));
  kiln__material *m = &s.materials[1];
  m->alpha = 0.6f, m->alpha_cutoff = 0.25f, m->normal_scale = 2;
  m->mr_texture = t0, m->normal_texture = t1, m->alpha_texture = t0;
  const float xf[6] = {1, 2, 3, 4, 5, 6};
  memcpy(m->uv_xform, xf, sizeof xf);
  const float q[4][3] = {{-1, -1, 0}, {-1, 1, 0}, {1, 1, 0}, {1, -1, 0}};
  add_quad(&s, q, 0, 1);
  add_quad(&s, q, 1, 2);
  s.tan = calloc(s.ntris * 12, sizeof(float));
  for (size_t i = 0; i < s.ntris * 12; i++) s.tan[i] = (float)i;
  kiln__bvh bvh;
  kiln__render_buffers p;
  KT_CODE(kiln__bvh_build(NULL, &s, &bvh), KILN_OK);
  KT_CODE(kiln__render_pack(&s, &bvh, &p), KILN_OK);
  KT_TRUE(p.features & KILN__RF_PRINCIPLED && p.features & KILN__RF_ALPHA &&
          p.features & KILN__RF_VATTR);
  KT_TRUE(p.size[PT_BIND_MATX] == 2 * 64 && p.size[PT_BIND_VATTR] == s.ntris * 96);
  const float *x = p.data[PT_BIND_MATX];
  for (int k = 0; k < 16; k++) KT_TRUE(x[k] == 0); /* the diffuse material */
  x += 16;
  KT_TRUE(x[0] == 0.7f && x[1] == 0.6f && x[2] == 0.25f && x[3] == 2);
  uint32_t tx[4];
  memcpy(tx, x + 4, 16);
  KT_TRUE(tx[0] == (uint32_t)t0 && tx[1] == (uint32_t)t1 && tx[2] == PT_NONE &&
          tx[3] == (uint32_t)t0);
  KT_TRUE(x[8] == 1 && x[9] == 2 && x[10] == 3 && x[11] == 0);
  KT_TRUE(x[12] == 4 && x[13] == 5 && x[14] == 6 && x[15] == 0);
  const float *v = p.data[PT_BIND_VATTR];
  for (size_t t = 0; t < s.ntris; t++)
    for (int k = 0; k < 3; k++) {
      for (int c = 0; c < 3; c++) KT_TRUE(v[24 * t + 4 * k + c] == 1);
      for (int c = 0; c < 4; c++) KT_TRUE(v[24 * t + 12 + 4 * k + c] == s.tan[12 * t + 4 * k + c]);
    }
  const pt_globals *g = p.data[PT_BIND_GLOBALS];
  KT_TRUE(g->has_col == 0 && g->has_tan == 1);
  kiln__render_pack_free(&p);
  kiln__bvh_free(&bvh);
  kiln__scene_free(&s);
}

/* ---- scene memory ------------------------------------------------------------------------------ */

/* Every principled feature at once (textures, a normal map, a cut-out, emission as a light, vertex
 * colours and tangents): the same bits whichever memory the scene is read from (the principled
 * words are read from MATX and VATTR in every mode, the material itself through mat_at). Three
 * modes, not four: each is a pipeline to compile, slow under the sanitizers. */
TEST(principled_scene_memory_modes) {
  kiln__scene s = base_scene();
  s.settings.width = 24, s.settings.height = 20, s.settings.spp = 4;
  s.env.type = KILN__ENV_GRADIENT;
  s.env.top[0] = s.env.top[1] = s.env.top[2] = 1;
  const float rgb[12] = {0.9f, 0.2f, 0.1f, 0.2f, 0.9f, 0.1f, 0.1f, 0.2f, 0.9f, 0.8f, 0.8f, 0.8f};
  int32_t t = add_texture(&s, 2, 2, rgb);
  add_material(&s, principled(0.9f, 0.9f, 0.9f, 0.3f, 0.4f));
  kiln__material *m = &s.materials[0];
  m->texture = m->mr_texture = m->normal_texture = m->emission_texture = m->alpha_texture = t;
  m->alpha_cutoff = 0.5f;
  m->emission[0] = m->emission[1] = m->emission[2] = 0.5f;
  add_material(&s, principled(0.5f, 0.5f, 0.5f, 1, 0.2f));
  const float q[4][3] = {{-1, -1, 0}, {-1, 1, 0}, {1, 1, 0}, {1, -1, 0}};
  const float uv[4][2] = {{0, 0}, {0, 2}, {2, 2}, {2, 0}};
  add_quad_attr(&s, q, uv, NULL, 0, 1);
  const float floor_[4][3] = {{-3, -1, -3}, {-3, -1, 3}, {3, -1, 3}, {3, -1, -3}};
  add_quad_attr(&s, floor_, uv, NULL, 1, 2);
  add_sphere(&s, 0.5f, 0.3f, -0.8f, 0.3f, 0, 3);
  s.col = malloc(s.ntris * 9 * sizeof(float));
  for (size_t i = 0; i < s.ntris * 9; i++) s.col[i] = 0.5f + 0.5f * (float)(i % 5) / 4;
  s.tan = calloc(s.ntris * 12, sizeof(float));
  for (size_t i = 0; i < s.ntris * 3; i++) s.tan[4 * i + 1] = 1, s.tan[4 * i + 3] = -1;
  ctx c = open_ctx(&s, NULL);
  kiln_renderer_destroy(c.r);
  c.r = NULL;
  /* TEXEL reads the materials from the uniform buffer too (the scene fits it): UNIFORM's path */
  static const kiln_renderer_scene_memory modes[] = {
      KILN_RENDERER_SCENE_STORAGE, KILN_RENDERER_SCENE_SHARED, KILN_RENDERER_SCENE_TEXEL};
  float *ref = NULL;
  const size_t n = 24 * 20 * 3;
  for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
    kiln_renderer_config rc;
    kiln_renderer_config_default(&rc);
    rc.scene_memory = modes[i];
    KT_CODE(kiln_renderer_create(c.scene, &c.dev, 1, &rc, &c.r), KILN_OK);
    uint32_t feat = kiln__renderer_device_features(c.r, 0);
    KT_TRUE(feat & KILN__RF_PRINCIPLED);
    KT_TRUE(modes[i] != KILN_RENDERER_SCENE_TEXEL || (feat & KILN__RF_UNIFORM && feat & KILN__RF_TEXEL));
    kiln_frame_config fc;
    kiln_frame_config_default(c.r, &fc);
    kiln_future *f;
    const kiln_image *img = render(&c, &fc, &f);
    const float *col = info_of(img).color;
    if (!ref) {
      ref = malloc(n * sizeof(float));
      memcpy(ref, col, n * sizeof(float));
      double sum = 0;
      for (size_t k = 0; k < n; k++) sum += col[k];
      KT_TRUE(sum > 0);
    } else if (memcmp(ref, col, n * sizeof(float)) != 0) {
      KT_FAIL("scene memory mode %d renders other bits than storage buffers", (int)modes[i]);
    }
    kiln_future_release(f);
    kiln_renderer_destroy(c.r);
    c.r = NULL;
  }
  free(ref);
  close_ctx(&c);
}
