/* test_pack.c: the scene as the path tracer's buffers (engine/render/pack.c), on the CPU: emitters
 * picked in proportion to area times luminance, the environment's pick probability, and the map's
 * sampling distribution (CDFs end at 1, the pixel probabilities sum to 1 and follow luminance
 * times sin(polar angle), widened to each texel's 3x3 neighbourhood); the BVH nodes and leaf records
 * as the shader traverses them (stackless, quantised boxes) find the CPU BVH's closest hits. */
// kt: timeout 60
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/gpu.h"
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
  s.materials[0] =
      (kiln__material){.type = KILN__MAT_EMISSIVE, .emission = {1, 1, 1}, .texture = -1};
  s.materials[1] =
      (kiln__material){.type = KILN__MAT_EMISSIVE, .emission = {10, 10, 10}, .texture = -1};
  s.materials[2] =
      (kiln__material){.type = KILN__MAT_DIFFUSE, .albedo = {0.5f, 0.5f, 0.5f}, .texture = -1};
  s.ntris = 1;
  s.pos = malloc(9 * sizeof(float));
  const float p[9] = {0, 0, 0, 2, 0, 0, 0, 2, 0};
  memcpy(s.pos, p, sizeof p);
  s.tri_material = calloc(1, 4), s.tri_object = calloc(1, 4), s.tri_instance = calloc(1, 4);
  s.nspheres = 2;
  s.spheres = calloc(2, sizeof *s.spheres);
  s.spheres[0] = (kiln__sphere){{0, 5, 0}, 1, 2, 2, 2};
  s.spheres[1] = (kiln__sphere){{3, 5, 0}, 1, 1, 3, 3};
  s.env = (kiln__environment){
      .type = KILN__ENV_CONSTANT, .color = {1, 1, 1}, .texture = -1, .intensity = 1};
  return s;
}

TEST(light_weights) {
  kiln__scene s = lights_scene();
  kiln__bvh b;
  KT_CODE(kiln__bvh_build(NULL, &s, &b), KILN_OK);
  kiln__render_buffers p;
  KT_CODE(kiln__render_pack(&s, &b, &p), KILN_OK);
  const float *l = p.data[PT_BIND_LIGHTS], *m = p.data[PT_BIND_MATS];
  const pt_globals *g = p.data[PT_BIND_GLOBALS];
  const float *sp = p.data[PT_BIND_SPHERES];
  KT_EQ(g->nlights, 2); /* two emitters: the triangle, then the emissive sphere */
  KT_EQ(fbits(l[0]), 0);
  KT_EQ(fbits(l[4]), 2); /* ntris + sphere index 1 */
  KT_TRUE(m[10] == 0.1f && m[12 + 10] == 1.0f && m[24 + 10] == 0);
  double w0 = 2 * 0.1, w1 = 4 * 3.14159265358979 * 1, total = w0 + w1;
  if (fabs(l[1] - w0 / total) > 1e-6) KT_FAIL("triangle's CDF %g, want %g", l[1], w0 / total);
  KT_TRUE(l[5] == 1.0f);
  KT_TRUE(fabs(g->light_weight - total) < 1e-5 * total);
  KT_TRUE(g->env_pick == 0.5f); /* a lit sky and emitters: the sky is picked half the time */
  /* the sphere's pick probability, for its MIS weight: (1 - 1/2) * w1 / total */
  if (fabs(sp[8 + 7] - 0.5 * w1 / total) > 1e-6)
    KT_FAIL("sphere pick %g, want %g", sp[15], 0.5 * w1 / total);
  KT_TRUE(sp[7] == 0);
  kiln__render_pack_free(&p);
  /* a black sky is never picked; alone, a lit one always is */
  s.env.color[0] = s.env.color[1] = s.env.color[2] = 0;
  KT_CODE(kiln__render_pack(&s, &b, &p), KILN_OK);
  KT_TRUE(((const float *)p.data[PT_BIND_GLOBALS])[18] == 0);
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
  s.textures[0] = (kiln__texture){W, H, rgb, false, false};
  s.env =
      (kiln__environment){.type = KILN__ENV_MAP, .texture = 0, .intensity = 1, .rotation_deg = 90};
  kiln__bvh b;
  KT_CODE(kiln__bvh_build(NULL, &s, &b), KILN_OK);
  kiln__render_buffers p;
  KT_CODE(kiln__render_pack(&s, &b, &p), KILN_OK);
  const pt_globals *g = p.data[PT_BIND_GLOBALS];
  const float *d = p.data[PT_BIND_ENVDIST];
  KT_EQ(g->env_texture, 0);
  KT_EQ(g->env_dist, 1);
  KT_TRUE(g->env_pick == 1.0f); /* no emitters: NEE always picks the sky */
  KT_TRUE(fabsf(g->env_cos) < 1e-7f && g->env_sin == -1.0f); /* cos, sin of 90 + 180 degrees */
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
  KT_EQ(fbits(((const float *)p.data[PT_BIND_GLOBALS])[15]), 0);
  KT_TRUE(((const float *)p.data[PT_BIND_GLOBALS])[18] == 0);
  kiln__render_pack_free(&p);
  kiln__bvh_free(&b);
  kiln__scene_free(&s);
}

/* ---- the BVH as the shader reads it: quantised one-load nodes with skip links, leaf records --- */

static float frnd(uint32_t *st) {
  *st = *st * 1664525u + 1013904223u;
  return (float)(*st >> 8) / 16777216.0f;
}

/* Möller-Trumbore and the sphere as pathtrace.comp's tri_hit and sphere_hit, on a record. */
static bool record_hit(const float *r, bool tri, const float *o, const float *d, float *t) {
  if (!tri) {
    float oc[3] = {o[0] - r[0], o[1] - r[1], o[2] - r[2]};
    float a = d[0] * d[0] + d[1] * d[1] + d[2] * d[2],
          hb = oc[0] * d[0] + oc[1] * d[1] + oc[2] * d[2];
    float c = oc[0] * oc[0] + oc[1] * oc[1] + oc[2] * oc[2] - r[4] * r[4], disc = hb * hb - a * c;
    if (disc < 0) return false;
    float t0 = (-hb - sqrtf(disc)) / a, t1 = (-hb + sqrtf(disc)) / a, x = t0 > 0 ? t0 : t1;
    if (x > 0 && x < *t) return *t = x, true;
    return false;
  }
  float e1[3], e2[3], tv[3], pv[3], qv[3];
  for (int k = 0; k < 3; k++) e1[k] = r[4 + k], e2[k] = r[8 + k], tv[k] = o[k] - r[k];
  for (int k = 0; k < 3; k++) {
    int a = (k + 1) % 3, b = (k + 2) % 3;
    pv[k] = d[a] * e2[b] - d[b] * e2[a];
    qv[k] = tv[a] * e1[b] - tv[b] * e1[a];
  }
  float det = e1[0] * pv[0] + e1[1] * pv[1] + e1[2] * pv[2];
  if (fabsf(det) < 1e-20f) return false;
  float inv = 1 / det, u = (tv[0] * pv[0] + tv[1] * pv[1] + tv[2] * pv[2]) * inv;
  float w = (d[0] * qv[0] + d[1] * qv[1] + d[2] * qv[2]) * inv;
  float x = (e2[0] * qv[0] + e2[1] * qv[1] + e2[2] * qv[2]) * inv;
  if (u < 0 || u > 1 || w < 0 || u + w > 1 || !(x > 0 && x < *t)) return false;
  return *t = x, true;
}

/* The shader's trace(): stackless over the packed nodes, the slab test on the grid. */
static uint32_t packed_trace(const kiln__render_buffers *p, uint32_t ntris, const float *o,
                             const float *d, float *t) {
  const uint32_t *nodes = p->data[PT_BIND_NODES], *gu = p->data[PT_BIND_GLOBALS];
  const pt_globals *g = p->data[PT_BIND_GLOBALS];
  const float *rec = p->data[PT_BIND_PRIMS];
  const float go[3] = {g->grid_origin.x, g->grid_origin.y, g->grid_origin.z};
  const float gs[3] = {g->grid_step.x, g->grid_step.y, g->grid_step.z};
  float to[3], ts[3];
  for (int k = 0; k < 3; k++) to[k] = (go[k] - o[k]) * (1 / d[k]), ts[k] = gs[k] * (1 / d[k]);
  uint32_t hit = UINT32_MAX;
  for (uint32_t ni = 0; ni < gu[19];) {
    const uint32_t *n = nodes + 4 * ni;
    uint32_t q[6] = {n[0] & 0xffff, n[0] >> 16,    n[1] & 0xffff,
                     n[1] >> 16,    n[2] & 0xffff, n[2] >> 16};
    float a = 0, b = *t;
    for (int k = 0; k < 3; k++) {
      float t0 = to[k] + (float)q[k] * ts[k], t1 = to[k] + (float)q[3 + k] * ts[k];
      a = fmaxf(a, fminf(t0, t1)), b = fminf(b, fmaxf(t0, t1));
    }
    bool leaf = n[3] >> 31, in = a <= b;
    ni = !leaf && !in ? n[3] : ni + 1;
    if (!leaf || !in) continue;
    uint32_t first = n[3] & 0x07ffffff, count = (n[3] >> 27 & 15) + 1;
    for (uint32_t i = first; i < first + count; i++) {
      uint32_t prim;
      memcpy(&prim, rec + 12 * i + 3, 4);
      if (record_hit(rec + 12 * i, prim < ntris, o, d, t)) hit = prim;
    }
  }
  return hit;
}

/* 400 small triangles and 30 spheres: the packed traversal finds the CPU BVH's closest hit for
 * 3000 rays; every quantised box holds its node's box; the features are the scene's. */
TEST(nodes_stackless) {
  kiln__scene s = {0};
  uint32_t st = 7;
  s.nmaterials = 1;
  s.materials = calloc(1, sizeof *s.materials);
  s.materials[0] = (kiln__material){.type = KILN__MAT_DIFFUSE, .texture = -1};
  s.ntris = 400;
  s.pos = malloc(9 * s.ntris * sizeof(float));
  s.tri_material = calloc(s.ntris, 4);
  for (size_t i = 0; i < s.ntris; i++) {
    float c[3] = {frnd(&st) * 10 - 3, frnd(&st) * 4 + 1, frnd(&st) * 6};
    for (int v = 0; v < 9; v++) s.pos[9 * i + v] = c[v % 3] + frnd(&st) - 0.5f;
  }
  s.nspheres = 30;
  s.spheres = calloc(s.nspheres, sizeof *s.spheres);
  for (size_t i = 0; i < s.nspheres; i++)
    s.spheres[i] =
        (kiln__sphere){{frnd(&st) * 10 - 3, frnd(&st) * 4 + 1, frnd(&st) * 6}, 0.3f, 0, 0, 0};
  s.env = (kiln__environment){.type = KILN__ENV_CONSTANT, .texture = -1, .intensity = 1};
  kiln__bvh b;
  KT_CODE(kiln__bvh_build(NULL, &s, &b), KILN_OK);
  kiln__render_buffers p;
  KT_CODE(kiln__render_pack(&s, &b, &p), KILN_OK);
  KT_EQ(p.features, KILN__RF_SPHERES);
  const uint32_t *nodes = p.data[PT_BIND_NODES];
  const pt_globals *g = p.data[PT_BIND_GLOBALS];
  const float go[3] = {g->grid_origin.x, g->grid_origin.y, g->grid_origin.z};
  const float gs[3] = {g->grid_step.x, g->grid_step.y, g->grid_step.z};
  for (size_t i = 0; i < b.nnodes; i++)
    for (int k = 0; k < 6; k++) {
      uint32_t q = nodes[4 * i + k / 2] >> (16 * (k % 2)) & 0xffff;
      int axis = k % 3;
      float x = go[axis] + (float)q * gs[axis];
      float want = k < 3 ? b.nodes[i].bmin[axis] : b.nodes[i].bmax[axis];
      if (k < 3 ? x > want : x < want) KT_FAIL("node %zu bound %d: %g vs %g", i, k, x, want);
    }
  int hits = 0;
  for (int r = 0; r < 3000; r++) {
    float o[3] = {frnd(&st) * 14 - 5, frnd(&st) * 8 - 1, frnd(&st) * 10 - 2}, d[3];
    for (int k = 0; k < 3; k++) d[k] = frnd(&st) * 2 - 1;
    if (r % 7 == 0) d[r % 3] = 0; /* axis-parallel rays: infinite reciprocals */
    float tc = 1e30f, tp = 1e30f;
    uint32_t pc = UINT32_MAX;
    bool hc = kiln__bvh_intersect(&b, &s, o, d, 0, &tc, &pc);
    uint32_t pp = packed_trace(&p, (uint32_t)s.ntris, o, d, &tp);
    KT_EQ(pp, hc ? pc : UINT32_MAX);
    if (hc && fabsf(tp - tc) > 1e-4f * tc) KT_FAIL("ray %d: t %g vs %g", r, tp, tc);
    hits += hc;
  }
  KT_TRUE(hits > 300);
  kiln__render_pack_free(&p);
  kiln__bvh_free(&b);
  kiln__scene_free(&s);
}

/* ---- layout.h against the compiled shader ------------------------------------------------- */

typedef struct member {
  const char *name;
  size_t offset;
} member;
#define GM(f) \
  { #f, offsetof(pt_globals, f) }
#define PM(f) \
  { #f, offsetof(pt_push, f) }
static const member globals_members[] = {
    GM(ntris),       GM(nspheres),    GM(nlights),      GM(env_type),    GM(env_color),
    GM(unused0),     GM(env_top),     GM(light_weight), GM(has_normals), GM(has_uv),
    GM(env_texture), GM(env_dist),    GM(env_cos),      GM(env_sin),     GM(env_pick),
    GM(nnodes),      GM(grid_origin), GM(nleaf_prims),  GM(grid_step),   GM(nmaterials),
    GM(nplights),    GM(has_col),     GM(has_tan),      GM(plight_pick)};
static const member push_members[] = {PM(cam_pos), PM(cam_u), PM(cam_v), PM(cam_w),
                                      PM(image),   PM(pass),  PM(frame)};

/* The number of members of the struct named `name` in the SPIR-V words w[0..n) that carry
 * Offset decorations (the copy laid out for a buffer or push-constant block), each checked against
 * want[] by name (OpMemberName). */
static size_t check_struct(const uint32_t *w, size_t n, const char *name, const member *want,
                           size_t nwant) {
  enum { OP_NAME = 5, OP_MEMBER_NAME = 6, OP_MEMBER_DECORATE = 72, DECO_OFFSET = 35 };
  size_t checked = 0;
  for (size_t i = 5; i < n; i += w[i] >> 16) { /* each struct type named `name` */
    if ((w[i] & 0xffff) != OP_NAME || strcmp((const char *)&w[i + 2], name) != 0) continue;
    uint32_t id = w[i + 1];
    for (size_t j = 5; j < n; j += w[j] >> 16) { /* its members' offsets */
      if ((w[j] & 0xffff) != OP_MEMBER_DECORATE || w[j + 1] != id || w[j + 3] != DECO_OFFSET)
        continue;
      const char *mname = NULL;
      for (size_t k = 5; k < n && !mname; k += w[k] >> 16)
        if ((w[k] & 0xffff) == OP_MEMBER_NAME && w[k + 1] == id && w[k + 2] == w[j + 2])
          mname = (const char *)&w[k + 3];
      KT_TRUE(mname != NULL);
      size_t m = 0;
      while (m < nwant && strcmp(want[m].name, mname) != 0) m++;
      if (m == nwant) KT_FAIL("%s.%s: in the shader, not in the test", name, mname);
      if (want[m].offset != w[j + 4])
        KT_FAIL("%s.%s: offset %u in the shader, %zu in C", name, mname, w[j + 4], want[m].offset);
      checked++;
    }
  }
  return checked;
}

/* Every member of the globals and push-constant structs is where C puts it (layout.h's
 * _Static_asserts fix C's offsets; this checks that the shader's std430 offsets are the same). */
TEST(layout_matches_spirv) {
  const uint32_t *w;
  size_t size;
  KT_CODE(kiln_gpu_builtin_spirv("pathtrace", &w, &size), KILN_OK);
  size_t ng = sizeof globals_members / sizeof *globals_members;
  size_t np = sizeof push_members / sizeof *push_members;
  KT_EQ(check_struct(w, size / 4, "pt_globals", globals_members, ng), ng);
  KT_EQ(check_struct(w, size / 4, "pt_push", push_members, np), np);
}
