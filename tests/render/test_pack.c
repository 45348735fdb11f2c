/* test_pack.c: the scene as the path tracer's buffers (engine/render_pack.c), on the CPU: emitters
 * picked in proportion to area times luminance, the environment's pick probability, and the map's
 * sampling distribution (CDFs end at 1, the pixel probabilities sum to 1 and follow luminance
 * times sin(polar angle), widened to each texel's 3x3 neighbourhood). */
// kt: timeout 60
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kt.h"
#include "render_internal.h"

static uint32_t fbits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

/* One emissive triangle of area 2 (radiance 1), one emissive sphere of radius 1 (radiance 10,
 * area 4 pi), one diffuse sphere; a constant sky. */
static kiln__scene lights_scene(void) {
  kiln__scene s = {0};
  s.nmaterials = 3;
  s.materials = calloc(3, sizeof *s.materials);
  s.materials[0] = (kiln__material){.type = KILN__MAT_EMISSIVE, .emission = {1, 1, 1}, .texture = -1};
  s.materials[1] = (kiln__material){.type = KILN__MAT_EMISSIVE, .emission = {10, 10, 10}, .texture = -1};
  s.materials[2] = (kiln__material){.type = KILN__MAT_DIFFUSE, .albedo = {0.5f, 0.5f, 0.5f}, .texture = -1};
  s.ntris = 1;
  s.pos = malloc(9 * sizeof(float));
  const float p[9] = {0, 0, 0, 2, 0, 0, 0, 2, 0};
  memcpy(s.pos, p, sizeof p);
  s.tri_material = calloc(1, 4), s.tri_object = calloc(1, 4), s.tri_instance = calloc(1, 4);
  s.nspheres = 2;
  s.spheres = calloc(2, sizeof *s.spheres);
  s.spheres[0] = (kiln__sphere){{0, 5, 0}, 1, 2, 2, 2};
  s.spheres[1] = (kiln__sphere){{3, 5, 0}, 1, 1, 3, 3};
  s.env = (kiln__environment){.type = KILN__ENV_CONSTANT, .color = {1, 1, 1}, .texture = -1, .intensity = 1};
  return s;
}

TEST(light_weights) {
  kiln__scene s = lights_scene();
  kiln__bvh b;
  KT_CODE(kiln__bvh_build(NULL, &s, &b), KILN_OK);
  kiln__render_buffers p;
  KT_CODE(kiln__render_pack(&s, &b, &p), KILN_OK);
  const float *l = p.data[KILN__RB_LIGHTS], *g = p.data[KILN__RB_GLOBALS], *m = p.data[KILN__RB_MATS];
  const float *sp = p.data[KILN__RB_SPHERES];
  KT_EQ(fbits(g[2]), 2); /* two emitters: the triangle, then the emissive sphere */
  KT_EQ(fbits(l[0]), 0);
  KT_EQ(fbits(l[4]), 2); /* ntris + sphere index 1 */
  KT_TRUE(m[10] == 0.1f && m[12 + 10] == 1.0f && m[24 + 10] == 0);
  double w0 = 2 * 0.1, w1 = 4 * 3.14159265358979 * 1, total = w0 + w1;
  if (fabs(l[1] - w0 / total) > 1e-6) KT_FAIL("triangle's CDF %g, want %g", l[1], w0 / total);
  KT_TRUE(l[5] == 1.0f);
  KT_TRUE(fabs(g[11] - total) < 1e-5 * total);
  KT_TRUE(g[18] == 0.5f); /* a lit sky and emitters: the sky is picked half the time */
  /* the sphere's pick probability, for its MIS weight: (1 - 1/2) * w1 / total */
  if (fabs(sp[8 + 7] - 0.5 * w1 / total) > 1e-6) KT_FAIL("sphere pick %g, want %g", sp[15], 0.5 * w1 / total);
  KT_TRUE(sp[7] == 0);
  kiln__render_pack_free(&p);
  /* a black sky is never picked; alone, a lit one always is */
  s.env.color[0] = s.env.color[1] = s.env.color[2] = 0;
  KT_CODE(kiln__render_pack(&s, &b, &p), KILN_OK);
  KT_TRUE(((const float *)p.data[KILN__RB_GLOBALS])[18] == 0);
  kiln__render_pack_free(&p);
  kiln__bvh_free(&b);
  kiln__scene_free(&s);
}

TEST(env_distribution) {
  kiln__scene s = {0};
  enum { W = 8, H = 4 };
  s.ntextures = 1;
  s.textures = calloc(1, sizeof *s.textures);
  float *rgb = calloc(W * H * 3, sizeof(float));
  for (int i = 0; i < W * H * 3; i++) rgb[i] = 0.25f;
  for (int k = 0; k < 3; k++) rgb[3 * (1 * W + 5) + k] = 8; /* one bright texel, row 1, column 5 */
  s.textures[0] = (kiln__texture){W, H, rgb};
  s.env = (kiln__environment){.type = KILN__ENV_MAP, .texture = 0, .intensity = 1, .rotation_deg = 90};
  kiln__bvh b;
  KT_CODE(kiln__bvh_build(NULL, &s, &b), KILN_OK);
  kiln__render_buffers p;
  KT_CODE(kiln__render_pack(&s, &b, &p), KILN_OK);
  const float *g = p.data[KILN__RB_GLOBALS], *d = p.data[KILN__RB_ENVDIST];
  KT_EQ(fbits(g[14]), 0);
  KT_EQ(fbits(g[15]), 1);
  KT_TRUE(g[18] == 1.0f); /* no emitters: NEE always picks the sky */
  KT_TRUE(fabsf(g[16]) < 1e-7f && g[17] == 1.0f); /* cos, sin of 90 degrees */
  KT_TRUE(d[H - 1] == 1.0f);
  for (int y = 0; y < H; y++) {
    KT_TRUE(d[H + y * W + W - 1] == 1.0f);
    for (int x = 1; x < W; x++) KT_TRUE(d[H + y * W + x] >= d[H + y * W + x - 1]);
  }
  const float *pmf = d + H + W * H;
  double sum = 0, wsum = 0;
  double wt[H][W];
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      double st = sin(3.14159265358979 * (y + 0.5) / H);
      bool near = abs(y - 1) <= 1 && (abs(x - 5) <= 1);
      wt[y][x] = (near ? 8 : 0.25) * st;
      wsum += wt[y][x];
      sum += pmf[y * W + x];
    }
  KT_TRUE(fabs(sum - 1) < 1e-5);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      if (fabs(pmf[y * W + x] - wt[y][x] / wsum) > 1e-6)
        KT_FAIL("pixel %d,%d: probability %g, want %g", x, y, pmf[y * W + x], wt[y][x] / wsum);
  kiln__render_pack_free(&p);
  /* a black map: nothing to sample, never picked */
  memset(rgb, 0, W * H * 3 * sizeof(float));
  KT_CODE(kiln__render_pack(&s, &b, &p), KILN_OK);
  KT_EQ(fbits(((const float *)p.data[KILN__RB_GLOBALS])[15]), 0);
  KT_TRUE(((const float *)p.data[KILN__RB_GLOBALS])[18] == 0);
  kiln__render_pack_free(&p);
  kiln__bvh_free(&b);
  kiln__scene_free(&s);
}
