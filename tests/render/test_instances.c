/* test_instances.c: shared meshes (a mesh file placed by several transforms, or placed once with
 * "share": true, kept once in object space) and the two-level BVH: the CPU traversal finds what
 * testing every triangle finds; a top level rebuilt over moved placements finds what a fresh build does; the packed buffers
 * traversed as the shader does find the CPU's hits; images of a scene with
 * shared instances are those of the same scene with the copies baked (bit for bit where the
 * transforms are the identity, within noise elsewhere, ids included); and a mesh of a million
 * triangles placed 100 times costs the device memory of one mesh. */
// kt: timeout 300
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "kt.h"
#include "kt_stb_write.h"
#include "render_internal.h"
#include "render_query.h"
#include "render_test_util.h"

#if defined(__SANITIZE_ADDRESS__)
#define INST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define INST_ASAN 1
#endif
#endif

static uint32_t rng_state = 12345;
static float frand(void) {
  rng_state = rng_state * 1664525u + 1013904223u;
  return (float)(rng_state >> 8) / 16777216.0f;
}

/* Row-major 4x4: scale by s, then rotation by deg about the unit axis, then translation by t. */
static void make_xform(float x[16], float deg, const float axis[3], const float s[3],
                       const float t[3]) {
  double a = deg * 3.14159265358979 / 180, c = cos(a), si = sin(a), C = 1 - c;
  double ux = axis[0], uy = axis[1], uz = axis[2];
  double r[3][3] = {{c + ux * ux * C, ux * uy * C - uz * si, ux * uz * C + uy * si},
                    {uy * ux * C + uz * si, c + uy * uy * C, uy * uz * C - ux * si},
                    {uz * ux * C - uy * si, uz * uy * C + ux * si, c + uz * uz * C}};
  memset(x, 0, 16 * sizeof(float));
  for (int i = 0; i < 3; i++) {
    for (int j = 0; j < 3; j++) x[4 * i + j] = (float)(r[i][j] * s[j]);
    x[4 * i + 3] = t[i];
  }
  x[15] = 1;
}

/* A scene of n random flat triangles and one shared mesh of m random triangles placed by five
 * transforms (rotated, scaled unevenly, mirrored). */
static kiln__scene random_scene(size_t n, size_t m) {
  kiln__scene s = {0};
  s.ntris = n;
  s.pos = malloc((n + 1) * 36);
  s.tri_material = calloc(n + 1, 4), s.tri_object = calloc(n + 1, 4);
  s.tri_instance = calloc(n + 1, 4);
  for (size_t i = 0; i < n; i++) {
    float c[3] = {frand() * 10 - 5, frand() * 10 - 5, frand() * 10 - 5};
    for (int k = 0; k < 9; k++) s.pos[9 * i + k] = c[k % 3] + frand() - 0.5f;
  }
  s.nmeshes = 1;
  s.meshes = calloc(1, sizeof *s.meshes);
  kiln__shared_mesh *q = &s.meshes[0];
  q->ntris = m, q->ngroups = 1;
  float *pos = malloc(m * 36);
  q->pos = pos, q->tri_slot = calloc(m, 4), q->tri_group = calloc(m, 4);
  q->nslots = 1, q->slot_material = calloc(1, 4), q->group_object = calloc(1, 4);
  for (size_t i = 0; i < m; i++) {
    float c[3] = {frand() * 2 - 1, frand() * 2 - 1, frand() * 2 - 1};
    for (int k = 0; k < 9; k++) pos[9 * i + k] = c[k % 3] + 0.3f * (frand() - 0.5f);
  }
  enum { NP = 5 };
  s.nplacements = NP, s.ninstances = NP;
  s.placements = calloc(NP, sizeof *s.placements);
  s.instances = calloc(NP, sizeof *s.instances);
  const float ax[3] = {0.6f, 0.8f, 0}, one[3] = {1, 1, 1}, uneven[3] = {2, 0.5f, 1},
              mirror[3] = {-1, 1, 1};
  for (int k = 0; k < NP; k++) {
    s.placements[k] = (kiln__placement){0, (uint32_t)k + 1};
    s.instances[k].object_id = 1;
    /* along x, not in placement order (the top level's leaves then reorder them) */
    const float t[3] = {3.0f * (float)(k * 3 % NP) - 6, frand() * 4 - 2, frand() * 4 - 2};
    make_xform(s.instances[k].xform, 40.0f * (float)k, ax,
               k == 1   ? uneven
               : k == 3 ? mirror
                        : one,
               t);
  }
  return s;
}

/* A random ray; every other one aimed near a random placement's origin. */
static void random_ray(const kiln__scene *s, float o[3], float d[3]) {
  for (int k = 0; k < 3; k++) o[k] = frand() * 24 - 12, d[k] = frand() * 2 - 1;
  if (frand() < 0.5f) return;
  const float *x = s->instances[(size_t)(frand() * (float)s->ninstances) % s->ninstances].xform;
  for (int k = 0; k < 3; k++) d[k] = x[4 * k + 3] + 2 * frand() - 1 - o[k];
}

/* The BVH's closest hits are brute force's: t, primitive and placement. */
static void expect_brute(const kiln__bvh *b, const kiln__scene *s, int nrays, int *placed) {
  for (int i = 0; i < nrays; i++) {
    float o[3], d[3];
    random_ray(s, o, d);
    float ta = 1e30f, tb = 1e30f;
    uint32_t pa = 0, pb = 0, la = 0, lb = 0;
    bool ha = kiln__bvh_intersect_ex(b, s, o, d, 0, &ta, &pa, &la);
    bool hb = kiln__brute_intersect_ex(s, o, d, 0, &tb, &pb, &lb);
    KT_EQ(ha, hb);
    if (!ha) continue;
    if (ta != tb || pa != pb || la != lb)
      KT_FAIL("ray %d: bvh t %g prim %u placement %u, brute t %g prim %u placement %u", i, ta, pa,
              la, tb, pb, lb);
    *placed += la != UINT32_MAX;
  }
}

TEST(two_level_matches_brute_force) {
  kiln__scene s = random_scene(300, 400);
  kiln__bvh b;
  KT_CODE(kiln__bvh_build(NULL, &s, &b), KILN_OK);
  KT_EQ(b.nblas, 1);
  KT_EQ(b.tlas.nprims, 5);
  int placed = 0;
  expect_brute(&b, &s, 3000, &placed);
  KT_TRUE(placed > 100); /* the placements were hit, not only the flat triangles */
  /* moved placements: a top level over them on the same mesh trees finds the same hits */
  for (size_t k = 0; k < s.ninstances; k++) s.instances[k].xform[7] += 1.5f * (float)k;
  kiln__bvh top;
  KT_CODE(kiln__bvh_build_top(&b, &s, &top), KILN_OK);
  KT_TRUE(top.blas == b.blas && top.nodes == b.nodes);
  placed = 0;
  expect_brute(&top, &s, 3000, &placed);
  KT_TRUE(placed > 100);
  kiln__bvh_free(&top);
  /* moved flat triangles: a flat tree and top level built on the same mesh trees (which freeing
   * the top level above left intact) */
  for (size_t i = 0; i < 9 * s.ntris; i++) s.pos[i] += i % 3 == 1 ? 0.7f : 0.0f;
  KT_CODE(kiln__bvh_build_flat(NULL, &b, &s, &top), KILN_OK);
  KT_TRUE(top.blas == b.blas && top.nodes != b.nodes);
  placed = 0;
  expect_brute(&top, &s, 3000, &placed);
  KT_TRUE(placed > 100);
  kiln__bvh_free(&top);
  /* a singular transform cannot be inverted: refused, nothing held */
  memset(s.instances[2].xform, 0, 12 * sizeof(float));
  KT_CODE(kiln__bvh_build_top(&b, &s, &top), KILN_EINVAL);
  kiln__bvh_free(&b);
  kiln__scene_free(&s);
}

/* Tracers a and b answer every segment alike (random rays of s, to random lengths). */
static void expect_same_blocked(const kiln__tracer *a, const kiln__tracer *b, const kiln__scene *s,
                                int *blocked) {
  for (int i = 0; i < 3000; i++) {
    float o[3], d[3];
    random_ray(s, o, d);
    float tmax = frand() * 30;
    bool x = kiln__tracer_blocked(a, o, d, 0, tmax), y = kiln__tracer_blocked(b, o, d, 0, tmax);
    if (x != y) KT_FAIL("ray %d: %d against %d", i, x, y);
    *blocked += x;
  }
}

/* A tracer built on another's mesh trees (a frame whose flat triangles and placements moved, as
 * overrides do) answers as one built from scratch; where the meshes differ it builds its own. */
TEST(tracer_on_base_meshes_matches_fresh) {
  rng_state = 777;
  kiln__scene a = random_scene(300, 400);
  rng_state = 777;
  kiln__scene b = random_scene(300, 400);
  for (size_t i = 0; i < 9 * b.ntris; i++) b.pos[i] += i % 3 == 0 ? 0.9f : 0.0f;
  for (size_t k = 0; k < b.ninstances; k++) b.instances[k].xform[3] -= 0.8f * (float)k;
  kiln__tracer *base, *on, *fresh;
  KT_CODE(kiln__tracer_create(&a, NULL, &base), KILN_OK);
  KT_CODE(kiln__tracer_create_on(&b, base, NULL, &on), KILN_OK);
  KT_CODE(kiln__tracer_create(&b, NULL, &fresh), KILN_OK);
  int blocked = 0;
  expect_same_blocked(on, fresh, &b, &blocked);
  KT_TRUE(blocked > 300 && blocked < 2700);
  kiln__tracer_destroy(on), kiln__tracer_destroy(fresh);
  /* the mesh itself differs: not the base's trees */
  float *bpos = (float *)b.meshes[0].pos; /* owned by the hand-made scene */
  for (size_t i = 0; i < 9 * b.meshes[0].ntris; i++) bpos[i] *= 1.5f;
  KT_CODE(kiln__tracer_create_on(&b, base, NULL, &on), KILN_OK);
  KT_CODE(kiln__tracer_create(&b, NULL, &fresh), KILN_OK);
  blocked = 0;
  expect_same_blocked(on, fresh, &b, &blocked);
  KT_TRUE(blocked > 300 && blocked < 2700);
  kiln__tracer_destroy(on), kiln__tracer_destroy(fresh), kiln__tracer_destroy(base);
  kiln__scene_free(&a), kiln__scene_free(&b);
}

/* ---- the packed buffers, traversed as the shader does ---------------------------------------- */

/* Möller-Trumbore on a PRIMS record, as intersect.glsl's tri_hit. */
static bool record_tri(const float *r, const float *o, const float *d, float *t) {
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

/* walk(): the stackless loop over nodes [ni, end) (uvec4s at nodes) on the grid go, gs; a leaf's
 * entries are PRIMS records (prims) or, when top, placements (visit). */
typedef struct packed {
  const uint32_t *nodes, *inst;
  const float *prims;
  uint32_t ntop;
} packed;

static void packed_walk(const packed *p, const uint32_t *nodes, uint32_t ni, uint32_t end,
                        const float go[3], const float gs[3], const float *o, const float *d,
                        bool top, float *t, uint32_t *prim, uint32_t *rec) {
  float to[3], ts[3];
  for (int k = 0; k < 3; k++) to[k] = (go[k] - o[k]) * (1 / d[k]), ts[k] = gs[k] * (1 / d[k]);
  while (ni < end) {
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
      if (!top) {
        if (record_tri(p->prims + 12 * i, o, d, t)) memcpy(prim, p->prims + 12 * i + 3, 4);
        continue;
      }
      const uint32_t *r = p->inst + 4 * (PT_INST_HEADER + p->ntop + PT_INST_VEC4S * i);
      float w[12], oo[3], od[3], mgo[3], mgs[3];
      memcpy(w, r, 48), memcpy(mgo, r + 16, 12), memcpy(mgs, r + 20, 12);
      for (int k = 0; k < 3; k++) {
        oo[k] = w[4 * k] * o[0] + w[4 * k + 1] * o[1] + w[4 * k + 2] * o[2] + w[4 * k + 3];
        od[k] = w[4 * k] * d[0] + w[4 * k + 1] * d[1] + w[4 * k + 2] * d[2];
      }
      float before = *t;
      packed_walk(p, p->nodes, r[12], r[13], mgo, mgs, oo, od, false, t, prim, rec);
      if (*t < before) *rec = i;
    }
  }
}

/* The packed layout (pack.c) traversed as intersect.glsl does (the flat tree, then the top level
 * and each placement's mesh tree in object space) finds the CPU BVH's closest hits: the same
 * triangle (its TRIS index) and the placement its record names. */
TEST(packed_two_level_matches_cpu) {
  kiln__scene s = random_scene(200, 300);
  s.nmaterials = 1;
  s.materials = calloc(1, sizeof *s.materials);
  s.materials[0] = (kiln__material){.type = KILN__MAT_DIFFUSE, .texture = -1};
  s.env = (kiln__environment){.type = KILN__ENV_CONSTANT, .texture = -1, .intensity = 1};
  for (size_t k = 0; k < s.ninstances; k++) s.instances[k].object_id = 1;
  kiln__bvh b;
  KT_CODE(kiln__bvh_build(NULL, &s, &b), KILN_OK);
  kiln__render_buffers pk;
  KT_CODE(kiln__render_pack(&s, &b, &pk), KILN_OK);
  KT_TRUE(pk.features & KILN__RF_INSTANCES);
  const pt_globals *g = pk.data[PT_BIND_GLOBALS];
  const uint32_t *inst = pk.data[PT_BIND_INST];
  KT_EQ(inst[1], s.nplacements);
  packed p = {pk.data[PT_BIND_NODES], inst, pk.data[PT_BIND_PRIMS], inst[0]};
  const float go[3] = {g->grid_origin.x, g->grid_origin.y, g->grid_origin.z};
  const float gs[3] = {g->grid_step.x, g->grid_step.y, g->grid_step.z};
  float tgo[3], tgs[3];
  memcpy(tgo, inst + 4, 12), memcpy(tgs, inst + 8, 12);
  const uint32_t *tris = pk.data[PT_BIND_TRIS];
  int placed = 0;
  for (int i = 0; i < 3000; i++) {
    float o[3], d[3];
    random_ray(&s, o, d);
    float tc = 1e30f, tp = 1e30f;
    uint32_t pc = UINT32_MAX, lc = UINT32_MAX, pp = UINT32_MAX, rec = UINT32_MAX;
    bool hc = kiln__bvh_intersect_ex(&b, &s, o, d, 0, &tc, &pc, &lc);
    packed_walk(&p, p.nodes, 0, g->nnodes, go, gs, o, d, false, &tp, &pp, &rec);
    packed_walk(&p, inst + 4 * PT_INST_HEADER, 0, p.ntop, tgo, tgs, o, d, true, &tp, &pp, &rec);
    KT_EQ(pp != UINT32_MAX, hc);
    if (!hc) continue;
    if (fabsf(tp - tc) > 1e-4f * tc) KT_FAIL("ray %d: t %g packed, %g cpu", i, tp, tc);
    if (lc == UINT32_MAX) {
      KT_EQ(pp, pc);
      KT_EQ(rec, UINT32_MAX);
      continue;
    }
    placed++;
    KT_EQ(pp, s.ntris + pc); /* the mesh's triangles follow the flat ones in TRIS */
    KT_TRUE(rec != UINT32_MAX);
    const uint32_t *r = inst + 4 * (PT_INST_HEADER + p.ntop + PT_INST_VEC4S * rec);
    KT_EQ(r[14], s.placements[lc].first_instance); /* the record is the placement's */
    KT_EQ(tris[12 * pp + 11], 0);                  /* group 0 */
  }
  KT_TRUE(placed > 100);
  kiln__render_pack_free(&pk);
  kiln__bvh_free(&b);
  kiln__scene_free(&s);
}

/* ---- images -------------------------------------------------------------------------------- */

static char dir[512];

static void write_file(const char *name, const char *text) {
  char p[700];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "w");
  if (!f || fputs(text, f) < 0) KT_FAIL("cannot write %s", p);
  fclose(f);
}

static void setup(void) {
  const char *base = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/kiln-inst-XXXXXX", base && base[0] ? base : "/tmp");
  if (!mkdtemp(dir)) KT_FAIL("mkdtemp failed");
  /* a tetrahedron with uv, two groups */
  write_file("tet.obj", "v 0 0 0\nv 0.6 0 0\nv 0 0.6 0\nv 0 0 0.6\n"
                        "vt 0 0\nvt 1 0\nvt 0 1\n"
                        "o one\nf 1/1 3/2 2/3\nf 1/1 2/2 4/3\n"
                        "o two\nf 1/1 4/2 3/3\nf 2/1 3/2 4/3\n");
}

static void cleanup(void) {
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* A scene around `objects` (JSON array members): a floor, a sphere, a quad light, a sky. */
static kiln_scene *load_scene(const char *objects) {
  char json[4096];
  snprintf(
      json, sizeof json,
      "{\"settings\": {\"width\": 24, \"height\": 20, \"spp\": 16, \"max_bounces\": 3},\n"
      " \"camera\": {\"position\": [0.3, 1.2, -3], \"look_at\": [0, 0.3, 0], \"vfov\": 30},\n"
      " \"materials\": {\"tan\": {\"type\": \"diffuse\", \"albedo\": [0.7, 0.5, 0.3]},\n"
      "   \"grey\": {\"type\": \"diffuse\", \"albedo\": [0.5, 0.5, 0.5]}},\n"
      " \"objects\": [%s,\n"
      "  {\"type\": \"sphere\", \"center\": [1, 0.3, 0.5], \"radius\": 0.3, \"material\": \"grey\"},\n"
      "  {\"type\": \"quad\", \"name\": \"floor\", \"corner\": [-4, 0, -4], \"u\": [0, 0, 8],"
      " \"v\": [8, 0, 0], \"material\": \"grey\"}],\n"
      " \"lights\": [{\"type\": \"quad\", \"corner\": [-0.5, 2.5, -0.5], \"u\": [1, 0, 0],"
      " \"v\": [0, 0, 1], \"radiance\": [5, 5, 5]}],\n"
      " \"environment\": {\"type\": \"constant\", \"color\": [0.2, 0.25, 0.3]}}",
      objects);
  kiln_error_detail e;
  kiln_scene *s = NULL;
  int rc = kiln_scene_load_string(json, dir, "t.json", &e, &s);
  if (rc) {
    char m[1400];
    KT_FAIL("load: %s", kiln_error_detail_format(&e, m, sizeof m));
  }
  return s;
}

/* Renders s alone (at spp, every plane, the scene read from memory mode m); the caller releases
 * *f. */
static kiln_image_info render_mode(kiln_gpu_device *dev, kiln_scene *s, int spp,
                                   kiln_renderer_scene_memory m, kiln_future **f,
                                   kiln_renderer **r) {
  kiln_renderer_config cfg;
  kiln_renderer_config_default(&cfg);
  cfg.scene_memory = m;
  KT_CODE(kiln_renderer_create(s, &dev, 1, &cfg, r), KILN_OK);
  kiln_frame_config fc;
  kiln_frame_config_default(*r, &fc);
  fc.spp = spp, fc.planes = KILN_PLANE_ALL;
  KT_CODE(kiln_renderer_submit(*r, &fc, f), KILN_OK);
  void *v = NULL;
  int rc = kiln_future_result(*f, -1, &v);
  if (rc) KT_FAIL("frame failed: %s", kiln_err_name(rc));
  return info_of(v);
}

static kiln_image_info render_scene(kiln_gpu_device *dev, kiln_scene *s, int spp, kiln_future **f,
                                    kiln_renderer **r) {
  return render_mode(dev, s, spp, KILN_RENDERER_SCENE_AUTO, f, r);
}

/* Instances of one mesh, both the identity and so on top of each other, against two mesh objects
 * placed once each (baked into the world): the same hits, the same t, the same shading, so the
 * same bytes in every plane but the object ids (one object there, two here). */
TEST(identity_placements_match_baked_exactly) {
  setup();
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  kiln_scene *shared = load_scene(
      "{\"type\": \"mesh\", \"name\": \"t\", \"file\": \"tet.obj\", \"material\": \"tan\","
      " \"instances\": [{}, {}]}");
  kiln_scene *baked = load_scene(
      "{\"type\": \"mesh\", \"name\": \"t\", \"file\": \"tet.obj\", \"material\": \"tan\"},"
      "{\"type\": \"mesh\", \"name\": \"u\", \"file\": \"tet.obj\", \"material\": \"tan\"}");
  KT_EQ(shared->data.nplacements, 2);
  KT_EQ(shared->data.ntris, 4); /* the floor and the light */
  KT_EQ(baked->data.nplacements, 0);
  KT_EQ(baked->data.ntris, 4 + 8);
  kiln_future *fa, *fb;
  kiln_renderer *ra, *rb;
  kiln_image_info a = render_scene(dev, shared, 16, &fa, &ra);
  kiln_image_info b = render_scene(dev, baked, 16, &fb, &rb);
  KT_TRUE(kiln__renderer_device_features(ra, 0) & KILN__RF_INSTANCES);
  KT_TRUE(!(kiln__renderer_device_features(rb, 0) & KILN__RF_INSTANCES));
  size_t n = (size_t)a.width * (size_t)a.height;
  KT_TRUE(memcmp(a.color, b.color, n * 12) == 0);
  KT_TRUE(memcmp(a.depth, b.depth, n * 4) == 0);
  KT_TRUE(memcmp(a.normal, b.normal, n * 12) == 0);
  KT_TRUE(memcmp(a.albedo, b.albedo, n * 12) == 0);
  KT_TRUE(memcmp(a.uv, b.uv, n * 8) == 0);
  /* the tetrahedron's pixels: groups one and two are objects 1 and 2 shared, 1 and 2 (t) or 3
   * and 4 (u) baked, whichever copy a tie kept */
  size_t on = 0;
  for (size_t i = 0; i < n; i++) {
    if (b.object_id[i] >= 1 && b.object_id[i] <= 4) {
      on++;
      KT_EQ(a.object_id[i], (b.object_id[i] - 1) % 2 + 1);
    }
  }
  KT_TRUE(on > 15);
  /* the shared copy and the uniform block hold the flat scene only: asked for, a scene with
   * placements is read from the storage buffers, with the same bytes */
  static const kiln_renderer_scene_memory modes[] = {
      KILN_RENDERER_SCENE_STORAGE, KILN_RENDERER_SCENE_SHARED, KILN_RENDERER_SCENE_UNIFORM};
  for (size_t k = 0; k < sizeof modes / sizeof modes[0]; k++) {
    kiln_future *fm;
    kiln_renderer *rm;
    kiln_image_info m = render_mode(dev, shared, 16, modes[k], &fm, &rm);
    uint32_t fe = kiln__renderer_device_features(rm, 0);
    KT_TRUE(!(fe & (KILN__RF_SHARED | KILN__RF_UNIFORM | KILN__RF_TEXEL)));
    KT_TRUE(memcmp(a.color, m.color, n * 12) == 0);
    kiln_future_release(fm);
    kiln_renderer_destroy(rm);
  }
  kiln_future_release(fa), kiln_future_release(fb);
  kiln_renderer_destroy(ra), kiln_renderer_destroy(rb);
  kiln_scene_destroy(shared), kiln_scene_destroy(baked);
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
  cleanup();
}

/* A tetrahedron with vertex normals that are not unit (OBJ leaves them as written), in groups one
 * and two. */
static const char tetn_obj[] = "v 0 0 0\nv 0.6 0 0\nv 0 0.6 0\nv 0 0 0.6\n"
                               "vn -1 -1 -1\nvn 1 -0.2 -0.2\nvn -0.2 1 -0.2\nvn -0.2 -0.2 1\n"
                               "vt 0 0\nvt 1 0\nvt 0 1\n"
                               "o one\nf 1/1/1 3/2/3 2/3/2\nf 1/1/1 2/2/2 4/3/4\n"
                               "o two\nf 1/1/1 4/2/4 3/3/3\nf 2/1/2 3/2/3 4/3/4\n";

/* Shading normals of a mesh with vertex normals: each vertex's turned into the world and made
 * unit before interpolating, as a baked copy's are. The identity placements give the baked
 * copies' bytes in every plane; rotated, unevenly scaled and mirrored ones their normals. */
TEST(vertex_normals_match_baked) {
  setup();
  write_file("tetn.obj", tetn_obj);
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  kiln_scene *shared = load_scene("{\"type\": \"mesh\", \"name\": \"t\", \"file\": \"tetn.obj\","
                                  " \"material\": \"tan\", \"instances\": [{}, {}]}");
  kiln_scene *baked = load_scene(
      "{\"type\": \"mesh\", \"name\": \"t\", \"file\": \"tetn.obj\", \"material\": \"tan\"},"
      "{\"type\": \"mesh\", \"name\": \"u\", \"file\": \"tetn.obj\", \"material\": \"tan\"}");
  KT_EQ(shared->data.nplacements, 2);
  KT_EQ(baked->data.nplacements, 0);
  kiln_future *fa, *fb;
  kiln_renderer *ra, *rb;
  kiln_image_info a = render_scene(dev, shared, 16, &fa, &ra);
  kiln_image_info b = render_scene(dev, baked, 16, &fb, &rb);
  size_t n = (size_t)a.width * (size_t)a.height, on = 0;
  for (size_t i = 0; i < n; i++) on += b.object_id[i] >= 1 && b.object_id[i] <= 4;
  KT_TRUE(on > 15);
  KT_TRUE(memcmp(a.normal, b.normal, n * 12) == 0);
  KT_TRUE(memcmp(a.color, b.color, n * 12) == 0);
  KT_TRUE(memcmp(a.albedo, b.albedo, n * 12) == 0);
  KT_TRUE(memcmp(a.depth, b.depth, n * 4) == 0);
  kiln_future_release(fa), kiln_future_release(fb);
  kiln_renderer_destroy(ra), kiln_renderer_destroy(rb);
  kiln_scene_destroy(shared), kiln_scene_destroy(baked);
#define N0 "{\"translate\": [-0.9, 0, 0], \"rotate\": [0, 35, 0]}"
#define N1 "{\"translate\": [0, 0.1, 0.2], \"scale\": [1.5, 0.7, 1], \"rotate\": [20, 0, 10]}"
#define N2 "{\"translate\": [0.6, 0, -0.6], \"scale\": [-1, 1, 1]}"
  shared = load_scene("{\"type\": \"mesh\", \"name\": \"t\", \"file\": \"tetn.obj\","
                      " \"material\": \"tan\", \"instances\": [" N0 ", " N1 ", " N2 "]}");
  baked = load_scene("{\"type\": \"mesh\", \"name\": \"t\", \"file\": \"tetn.obj\","
                     " \"material\": \"tan\", \"transform\": " N0 "},"
                     "{\"type\": \"mesh\", \"name\": \"u\", \"file\": \"tetn.obj\","
                     " \"material\": \"tan\", \"transform\": " N1 "},"
                     "{\"type\": \"mesh\", \"name\": \"v\", \"file\": \"tetn.obj\","
                     " \"material\": \"tan\", \"transform\": " N2 "}");
  KT_EQ(shared->data.nplacements, 3);
  a = render_scene(dev, shared, 4, &fa, &ra);
  b = render_scene(dev, baked, 4, &fb, &rb);
  /* the pixels whose first hit is the same instance (1..6) in both */
  size_t same = 0, close = 0;
  double worst = 0;
  for (size_t i = 0; i < n; i++) {
    if (b.instance_id[i] < 1 || b.instance_id[i] > 6 || a.instance_id[i] != b.instance_id[i])
      continue;
    same++;
    double d = 0;
    for (int c = 0; c < 3; c++) d += fabs(a.normal[3 * i + c] - b.normal[3 * i + c]);
    close += d < 1e-3;
    worst = d > worst ? d : worst;
  }
  KT_TRUE(same > 30);
  if (close < same)
    KT_FAIL("%zu of %zu normals differ, by up to %g (L1)", same - close, same, worst);
  kiln_future_release(fa), kiln_future_release(fb);
  kiln_renderer_destroy(ra), kiln_renderer_destroy(rb);
  kiln_scene_destroy(shared), kiln_scene_destroy(baked);
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
  cleanup();
}

/* dir/chk.png: an 8x8 RGBA checker of 2x2 opaque and clear blocks, the texture of CUT. */
static void write_checker_png(void) {
  unsigned char px[8 * 8 * 4];
  for (int i = 0; i < 64; i++) {
    int x = i % 8, y = i / 8;
    px[4 * i] = 200, px[4 * i + 1] = 100, px[4 * i + 2] = 50;
    px[4 * i + 3] = ((x / 2 + y / 2) & 1) ? 255 : 0;
  }
  char p[700];
  snprintf(p, sizeof p, "%s/chk.png", dir);
  if (!stbi_write_png(p, 8, 8, 4, px, 32)) KT_FAIL("cannot write %s", p);
}

/* Alpha cut-outs (a checker of opaque and clear texels) in a shared mesh: the same pixels see
 * through it, to the same instances behind, and the image is the baked copies' within noise. */
TEST(alpha_cutouts_match_baked) {
  setup();
  write_checker_png();
#define CUT                                                                            \
  "{\"type\": \"principled\", \"base_color\": [0.9, 0.4, 0.2], \"alpha_cutoff\": 0.5," \
  " \"base_color_texture\": \"chk.png\"}"
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  kiln_scene *shared = load_scene("{\"type\": \"mesh\", \"name\": \"t\", \"file\": \"tet.obj\","
                                  " \"material\": " CUT ", \"instances\": [{},"
                                  " {\"translate\": [0.5, 0, 0]}]}");
  kiln_scene *baked = load_scene(
      "{\"type\": \"mesh\", \"name\": \"t\", \"file\": \"tet.obj\", \"material\": " CUT "},"
      "{\"type\": \"mesh\", \"name\": \"u\", \"file\": \"tet.obj\", \"material\": " CUT ","
      " \"transform\": {\"translate\": [0.5, 0, 0]}}");
  KT_EQ(shared->data.nplacements, 2);
  KT_EQ(baked->data.nplacements, 0);
  kiln_future *fa, *fb;
  kiln_renderer *ra, *rb;
  kiln_image_info a = render_scene(dev, shared, 64, &fa, &ra);
  kiln_image_info b = render_scene(dev, baked, 64, &fb, &rb);
  KT_TRUE(kiln__renderer_device_features(ra, 0) & KILN__RF_ALPHA);
  size_t n = (size_t)a.width * (size_t)a.height, same = 0, on = 0;
  double ma = 0, mb = 0;
  for (size_t i = 0; i < n; i++) {
    same += a.instance_id[i] == b.instance_id[i];
    on += b.instance_id[i] >= 1 && b.instance_id[i] <= 4;
    for (int c = 0; c < 3; c++) ma += a.color[3 * i + c], mb += b.color[3 * i + c];
  }
  KT_TRUE(on > 15);
  if (same + 2 < n) KT_FAIL("%zu of %zu pixels see another instance", n - same, n);
  if (fabs(ma - mb) > 0.01 * mb)
    KT_FAIL("mean %g shared, %g baked", ma / (double)n, mb / (double)n);
  kiln_future_release(fa), kiln_future_release(fb);
  kiln_renderer_destroy(ra), kiln_renderer_destroy(rb);
  kiln_scene_destroy(shared), kiln_scene_destroy(baked);
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
  cleanup();
}

/* As dir/big.obj, a grid of 1152 triangles (2 q^2) with uv, standing in
 * [-0.6, 0.6] x [0, 1.2] of z = 0 with a ripple in z, its lower and upper halves OBJ groups "lo"
 * and "hi". Returns its triangles. */
static size_t write_big_obj(void) {
  int q = 24;
  char p[700];
  snprintf(p, sizeof p, "%s/big.obj", dir);
  FILE *f = fopen(p, "w");
  if (!f) KT_FAIL("cannot write %s", p);
  for (int j = 0; j <= q; j++)
    for (int i = 0; i <= q; i++) {
      double u = (double)i / q, v = (double)j / q;
      fprintf(f, "v %g %g %g\nvt %g %g\n", 1.2 * u - 0.6, 1.2 * v, 0.05 * sin(u * 11) * cos(v * 7),
              4 * u, 4 * v);
    }
  for (int j = 0; j < q; j++) {
    if (j == 0 || j == q / 2) fprintf(f, "o %s\n", j ? "hi" : "lo");
    for (int i = 0; i < q; i++) {
      int a = j * (q + 1) + i + 1, b = a + 1, c = a + q + 1, d = c + 1;
      fprintf(f, "f %d/%d %d/%d %d/%d\nf %d/%d %d/%d %d/%d\n", a, a, c, c, b, b, b, b, c, c, d, d);
    }
  }
  if (fclose(f) != 0) KT_FAIL("cannot write %s", p);
  return (size_t)(2 * q * q);
}

/* A mesh placed once with "share": true is shared (one placement), and renders as its copy
 * baked into the world (the same object without "share"): bit for bit in every plane, object and instance ids
 * included, at the identity (plain, and with alpha cut-outs); within noise elsewhere, the same
 * ids on all but a pixel or two. A mesh placed twice with "share": false is copied. */
TEST(a_mesh_placed_once_and_shared_matches_baked) {
  setup();
  size_t ntris = write_big_obj();
  write_checker_png();
  static const char *const objects[3] = {
      "{\"type\": \"mesh\", \"name\": \"g\", \"file\": \"big.obj\", \"material\": \"tan\"}",
      "{\"type\": \"mesh\", \"name\": \"g\", \"file\": \"big.obj\", \"material\": " CUT "}",
      "{\"type\": \"mesh\", \"name\": \"g\", \"file\": \"big.obj\", \"material\": \"tan\","
      " \"transform\": {\"translate\": [0.1, 0.05, 0.2], \"rotate\": [10, 30, 0],"
      " \"scale\": [0.9, 1.1, 1]}}"};
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  for (int k = 0; k < 3; k++) {
    char with_share[600];
    snprintf(with_share, sizeof with_share, "{\"share\": true, %s", objects[k] + 1);
    kiln_scene *shared = load_scene(with_share);
    kiln_scene *baked = load_scene(objects[k]);
    KT_EQ(shared->data.nmeshes, 1);
    KT_EQ(shared->data.nplacements, 1);
    KT_EQ(shared->data.meshes[0].ntris, ntris);
    KT_EQ(shared->data.ntris, 4); /* the floor and the light */
    KT_EQ(baked->data.nplacements, 0);
    KT_EQ(baked->data.ntris, 4 + ntris);
    int spp = k < 2 ? 8 : 64;
    kiln_future *fa, *fb;
    kiln_renderer *ra, *rb;
    kiln_image_info a = render_scene(dev, shared, spp, &fa, &ra);
    kiln_image_info b = render_scene(dev, baked, spp, &fb, &rb);
    KT_TRUE(kiln__renderer_device_features(ra, 0) & KILN__RF_INSTANCES);
    KT_TRUE(!(kiln__renderer_device_features(rb, 0) & KILN__RF_INSTANCES));
    if (k == 1) KT_TRUE(kiln__renderer_device_features(ra, 0) & KILN__RF_ALPHA);
    size_t n = (size_t)a.width * (size_t)a.height, on[3] = {0}, same = 0;
    for (size_t i = 0; i < n; i++) {
      if (b.object_id[i] <= 2) on[b.object_id[i]]++;
      same += a.object_id[i] == b.object_id[i] && a.instance_id[i] == b.instance_id[i];
    }
    KT_TRUE(on[1] > 10 && on[2] > 10); /* both groups seen */
    if (k < 2) {
      KT_TRUE(memcmp(a.color, b.color, n * 12) == 0);
      KT_TRUE(memcmp(a.depth, b.depth, n * 4) == 0);
      KT_TRUE(memcmp(a.normal, b.normal, n * 12) == 0);
      KT_TRUE(memcmp(a.albedo, b.albedo, n * 12) == 0);
      KT_TRUE(memcmp(a.uv, b.uv, n * 8) == 0);
      KT_EQ(same, n);
    } else {
      if (same + 2 < n) KT_FAIL("%zu of %zu pixels see another object", n - same, n);
      double ma = 0, mb = 0;
      for (size_t i = 0; i < 3 * n; i++) ma += a.color[i], mb += b.color[i];
      if (fabs(ma - mb) > 0.02 * mb)
        KT_FAIL("mean %g shared, %g baked", ma / (double)n, mb / (double)n);
    }
    kiln_future_release(fa), kiln_future_release(fb);
    kiln_renderer_destroy(ra), kiln_renderer_destroy(rb);
    kiln_scene_destroy(shared), kiln_scene_destroy(baked);
  }
  /* placed twice: shared when "share" is absent, copied with "share": false */
  static const char *const twice[2] = {
      "{\"type\": \"mesh\", \"name\": \"g\", \"file\": \"big.obj\", \"material\": \"tan\","
      " \"instances\": [{}, {\"translate\": [0.5, 0, 0]}]}",
      "{\"type\": \"mesh\", \"name\": \"g\", \"file\": \"big.obj\", \"material\": \"tan\","
      " \"share\": false, \"instances\": [{}, {\"translate\": [0.5, 0, 0]}]}"};
  for (int k = 0; k < 2; k++) {
    kiln_scene *s = load_scene(twice[k]);
    KT_EQ(s->data.nplacements, k ? 0 : 2);
    KT_EQ(s->data.ntris, 4 + (k ? 2 * ntris : 0));
    kiln_scene_destroy(s);
  }
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
  cleanup();
}
#undef CUT

/* Three placements (rotated, scaled unevenly, mirrored) against three baked copies: the same
 * image within noise (the object-space ray rounds differently), the same instance ids where
 * each pixel's first hit is, world-space normals alike. */
TEST(placements_match_baked_copies) {
  setup();
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
#define T0 "{\"translate\": [-0.9, 0, 0], \"rotate\": [0, 35, 0]}"
#define T1 "{\"translate\": [0, 0.1, 0.2], \"scale\": [1.5, 0.7, 1], \"rotate\": [20, 0, 10]}"
#define T2 "{\"translate\": [0.6, 0, -0.6], \"scale\": [-1, 1, 1]}"
  kiln_scene *shared =
      load_scene("{\"type\": \"mesh\", \"name\": \"t\", \"file\": \"tet.obj\","
                 " \"material\": \"tan\", \"instances\": [" T0 ", " T1 ", " T2 "]}");
  kiln_scene *baked = load_scene(
      "{\"type\": \"mesh\", \"name\": \"t\", \"file\": \"tet.obj\", \"material\": \"tan\","
      " \"transform\": " T0 "},"
      "{\"type\": \"mesh\", \"name\": \"u\", \"file\": \"tet.obj\", \"material\": \"tan\","
      " \"transform\": " T1 "},"
      "{\"type\": \"mesh\", \"name\": \"v\", \"file\": \"tet.obj\", \"material\": \"tan\","
      " \"transform\": " T2 "}");
  KT_EQ(shared->data.nplacements, 3);
  KT_EQ(baked->data.nplacements, 0);
  kiln_future *fa, *fb;
  kiln_renderer *ra, *rb;
  kiln_image_info a = render_scene(dev, shared, 256, &fa, &ra);
  kiln_image_info b = render_scene(dev, baked, 256, &fb, &rb);
  size_t n = (size_t)a.width * (size_t)a.height;
  double ma[3] = {0}, mb[3] = {0};
  for (size_t i = 0; i < n; i++)
    for (int c = 0; c < 3; c++) ma[c] += a.color[3 * i + c], mb[c] += b.color[3 * i + c];
  for (int c = 0; c < 3; c++)
    if (fabs(ma[c] - mb[c]) > 0.01 * mb[c])
      KT_FAIL("channel %d: mean %g shared, %g baked", c, ma[c] / (double)n, mb[c] / (double)n);
  /* ids: the same instance (1..6: placement k's groups are 2k+1, 2k+2 in both scenes) */
  size_t on = 0, same = 0, nsame = 0;
  for (size_t i = 0; i < n; i++) {
    if (b.instance_id[i] < 1 || b.instance_id[i] > 6) continue;
    on++;
    same += a.instance_id[i] == b.instance_id[i];
    double d = 0;
    for (int c = 0; c < 3; c++) d += fabs(a.normal[3 * i + c] - b.normal[3 * i + c]);
    nsame += d < 1e-3;
  }
  KT_TRUE(on > 30);
  if (same + 2 < on || nsame + 2 < on)
    KT_FAIL("%zu pixels on the meshes: %zu with the same instance, %zu the same normal", on, same,
            nsame);
  kiln_future_release(fa), kiln_future_release(fb);
  kiln_renderer_destroy(ra), kiln_renderer_destroy(rb);
  kiln_scene_destroy(shared), kiln_scene_destroy(baked);
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
  cleanup();
}

/* A binary PLY of a (q + 1) x (q + 1) grid of vertices, 2 q^2 triangles, in the unit square of
 * y = 0 with a ripple (so that the tree is not flat). */
static void write_grid_ply(const char *name, int q) {
  char p[700];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "wb");
  if (!f) KT_FAIL("cannot write %s", p);
  size_t nv = (size_t)(q + 1) * (size_t)(q + 1), nf = 2 * (size_t)q * (size_t)q;
  fprintf(f,
          "ply\nformat binary_little_endian 1.0\nelement vertex %zu\nproperty float x\n"
          "property float y\nproperty float z\nelement face %zu\n"
          "property list uchar int vertex_indices\nend_header\n",
          nv, nf);
  for (int j = 0; j <= q; j++)
    for (int i = 0; i <= q; i++) {
      float v[3] = {(float)i / (float)q, 0.02f * sinf((float)(i + j) * 0.05f), (float)j / (float)q};
      fwrite(v, 4, 3, f);
    }
  for (int j = 0; j < q; j++)
    for (int i = 0; i < q; i++) {
      int32_t a = j * (q + 1) + i, b = a + 1, c = a + q + 1, d = c + 1;
      unsigned char three = 3;
      int32_t t0[3] = {a, c, b}, t1[3] = {b, c, d};
      fwrite(&three, 1, 1, f), fwrite(t0, 4, 3, f);
      fwrite(&three, 1, 1, f), fwrite(t1, 4, 3, f);
    }
  if (fclose(f) != 0) KT_FAIL("cannot write %s", p);
}

/* A mesh of a million triangles placed 100 times: the loaded scene holds it once; the device
 * holds one mesh (its triangles, tree and leaf entries) plus the placements, not 100 copies;
 * a 16 x 16 frame of 1 sample sees several instances. Too slow for the sanitizer's build. */
TEST(million_triangles_placed_100_times) {
#ifdef INST_ASAN
  KT_SKIP("a million-triangle mesh is too slow under AddressSanitizer");
#endif
  setup();
  enum { Q = 708 }; /* 2 * 708^2 = 1,002,528 triangles */
  const size_t ntris = 2 * (size_t)Q * Q;
  write_grid_ply("grid.ply", Q);
  char insts[100 * 48 + 16], *w = insts;
  for (int k = 0; k < 100; k++)
    w += sprintf(w, "%s{\"translate\": [%d, 0, %d]}", k ? "," : "", k % 10 - 5, k / 10 - 5);
  char obj[sizeof insts + 200];
  snprintf(obj, sizeof obj,
           "{\"type\": \"mesh\", \"name\": \"g\", \"file\": \"grid.ply\", \"material\": \"tan\","
           " \"instances\": [%s]}",
           insts);
  kiln_scene *s = load_scene(obj);
  const kiln__scene *d = &s->data;
  KT_EQ(d->nmeshes, 1);
  KT_EQ(d->meshes[0].ntris, ntris);
  KT_EQ(d->nplacements, 100);
  KT_EQ(d->ntris, 4); /* only the floor and the light are in the world's arrays */
  kiln_scene_info info;
  kiln_scene_get_info(s, &info);
  KT_EQ(info.ntriangles, 100 * ntris + 4);
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  kiln_gpu_device_stats st0, st1;
  kiln_gpu_device_get_stats(dev, &st0);
  kiln_renderer *r = NULL;
  KT_CODE(kiln_renderer_create(s, &dev, 1, NULL, &r), KILN_OK);
  kiln_gpu_device_get_stats(dev, &st1);
  uint64_t bytes = st1.buffer_bytes - st0.buffer_bytes;
  /* the same mesh placed once (copied into the world, as before meshes were shared): the device
   * memory of one mesh */
  kiln_scene *once = load_scene("{\"type\": \"mesh\", \"name\": \"g\", \"file\": \"grid.ply\","
                                " \"material\": \"tan\"}");
  KT_EQ(once->data.nplacements, 0);
  kiln_renderer *r1 = NULL;
  kiln_gpu_device_get_stats(dev, &st0);
  KT_CODE(kiln_renderer_create(once, &dev, 1, NULL, &r1), KILN_OK);
  kiln_gpu_device_get_stats(dev, &st1);
  uint64_t one = st1.buffer_bytes - st0.buffer_bytes;
  kiln_renderer_destroy(r1);
  kiln_scene_destroy(once);
  /* TRIS and PRIMS alone are 96 bytes a triangle: the counter counts the mesh; 100 copies would
   * be 100 times that. The mesh's own tree differs a little from the one over it and the floor
   * (1% of its bytes at most), the placements take a few KiB. */
  KT_TRUE(one >= 96 * ntris);
  if (bytes > one + one / 100 + 100 * 1024)
    KT_FAIL("%llu device bytes for the mesh placed 100 times, %llu for it placed once",
            (unsigned long long)bytes, (unsigned long long)one);
  kiln_frame_config fc;
  kiln_frame_config_default(r, &fc);
  fc.width = fc.height = 16, fc.spp = 1, fc.planes = KILN_PLANE_COLOR | KILN_PLANE_INSTANCE;
  kiln_future *f = NULL;
  KT_CODE(kiln_renderer_submit(r, &fc, &f), KILN_OK);
  void *v = NULL;
  KT_CODE(kiln_future_result(f, -1, &v), KILN_OK);
  kiln_image_info ii = info_of(v);
  uint32_t seen[101] = {0};
  int distinct = 0;
  for (int i = 0; i < 256; i++) {
    uint32_t id = ii.instance_id[i];
    if (id >= 1 && id <= 100 && !seen[id]++) distinct++;
  }
  KT_TRUE(distinct >= 3);
  kiln_future_release(f);
  kiln_renderer_destroy(r);
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
  kiln_scene_destroy(s);
  cleanup();
}
