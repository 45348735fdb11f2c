/* pack.c: a kiln__scene and its BVH flattened into the path tracer's storage buffers (bindings,
 * globals and codes: shaders/pathtrace/layout.h). Layouts (std430, 4-byte words):
 *
 *   NODES     4 per node: the box quantised, and a link (see pack_nodes)
 *   PRIMS    12 per entry of the BVH's prims (leaf order): triangle v0.xyz, primitive | edge
 *                v1 - v0, 0 | edge v2 - v0, 0 (float differences, as the shader would compute
 *                them); sphere centre.xyz, primitive | radius, 0, 0, 0 | 0
 *   TRIS     12 per triangle: v0.xyz, material | v1.xyz, object id | v2.xyz, instance id
 *   SPHERES   8 per sphere: centre.xyz, radius | material, object, instance, light pick pdf (float)
 *   MATS     12 per material: albedo.rgb, type | emission.rgb, roughness | ior, texture (PT_NONE: none),
 *                luminance relative to the brightest emitter's (emitters only: emissive, and
 *                principled with emission; 0 for the others), 0
 *   MATX     16 per material (only when some material is principled; zeros for the others):
 *                metallic, alpha, alpha cutoff, normal scale | metallic-roughness, normal,
 *                emission, alpha textures (PT_NONE: none) | uv transform a, b, c, 0 | d, e, f, 0
 *   VATTR    24 per triangle (only when the scene has vertex colours or tangents): the vertices'
 *                colours rgb, 0 (white where it has none) | their tangents xyz, bitangent sign
 *                (zeros where it has none)
 *   LIGHTS    4 per emitter: primitive (triangle i, or ntris + sphere j), weight CDF, weight,
 *                the previous emitter's CDF (0 for the first: one load gives the pick's stratum)
 *   GLOBALS  one pt_globals (layout.h names its fields)
 *   ATTR     16 per triangle (only when the scene has shading normals or uv): n0, n1, n2, uv0,
 *                uv1, uv2, 0
 *   TEXINFO   4 per texture: first float in TEXELS, width, height, 0
 *   TEXELS   3 per texel, every texture one after the other
 *   ENVDIST  (map only) H row CDF values, then H rows of W column CDF values, then the W*H pixel
 *                probabilities; each pixel weighted by luminance * sin(polar angle of its centre)
 *   PLIGHTS  16 per punctual light: position, type | direction, radius | colour, cos inner |
 *                cos outer, pick CDF, pick probability, the previous light's CDF (see pack_plights)
 *   INST     (placements only) the header, the top-level nodes and PT_INST_VEC4S per placement
 *                (layout.h; pack_inst)
 *
 * Shared meshes (scene_data.h) follow the flat geometry: their triangles after the flat ones in
 * TRIS, ATTR and VATTR (object space; TRIS's third w is the triangle's group, not an instance
 * id), each mesh's nodes after the flat tree's in NODES, quantised on the mesh's own grid, with
 * absolute links and leaf ranges in PRIMS, whose entries for them follow the flat tree's (object
 * space, primitive: the triangle's index in TRIS). No mesh triangle is an emitter.
 *
 * Emitters are picked in proportion to their power: area times relative luminance, that of a
 * principled material's emission times its emission texture's mean (then triangles uniformly on
 * their area, spheres by the cone they subtend); the environment is picked with probability 1/2
 * when there are lights too, 1 alone, 0 when it is black. Punctual lights share the rest with the
 * emitters by power (pack_plights). CDFs are summed in double and end exactly at 1. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/error.h"
#include "render_internal.h"

static const double PI_D = 3.14159265358979323846;

/* The shader knows materials and environments by layout.h's codes. */
_Static_assert(PT_MAT_DIFFUSE == KILN__MAT_DIFFUSE && PT_MAT_CONDUCTOR == KILN__MAT_CONDUCTOR &&
                   PT_MAT_DIELECTRIC == KILN__MAT_DIELECTRIC &&
                   PT_MAT_EMISSIVE == KILN__MAT_EMISSIVE &&
                   PT_MAT_PRINCIPLED == KILN__MAT_PRINCIPLED,
               "material codes");
_Static_assert(PT_LIGHT_POINT == KILN__LIGHT_POINT && PT_LIGHT_SPOT == KILN__LIGHT_SPOT &&
                   PT_LIGHT_SUN == KILN__LIGHT_SUN,
               "punctual light codes");
_Static_assert(PT_ENV_CONSTANT == KILN__ENV_CONSTANT && PT_ENV_GRADIENT == KILN__ENV_GRADIENT &&
                   PT_ENV_MAP == KILN__ENV_MAP,
               "environment codes");

static float ubits(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

void kiln__render_pack_free(kiln__render_buffers *p) {
  for (int i = 0; i < PT_BIND_COUNT; i++) {
    if (!(p->borrowed & 1u << i)) free(p->data[i]);
    p->data[i] = NULL;
  }
  p->borrowed = 0;
}

static double luminance(const float *c) { return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]; }

static double tri_area(const float *v) {
  double e1[3], e2[3];
  for (int c = 0; c < 3; c++) e1[c] = v[3 + c] - v[c], e2[c] = v[6 + c] - v[c];
  double cx = e1[1] * e2[2] - e1[2] * e2[1], cy = e1[2] * e2[0] - e1[0] * e2[2],
         cz = e1[0] * e2[1] - e1[1] * e2[0];
  return 0.5 * sqrt(cx * cx + cy * cy + cz * cz);
}

/* The mean of texture i's texels (linear RGB), or white for i < 0. */
static void texture_mean(const kiln__scene *s, int32_t i, double out[3]) {
  out[0] = out[1] = out[2] = 1;
  if (i < 0) return;
  const kiln__texture *t = &s->textures[i];
  size_t n = (size_t)t->width * (size_t)t->height;
  double sum[3] = {0, 0, 0};
  for (size_t k = 0; k < n; k++)
    for (int c = 0; c < 3; c++) {
      double v = t->rgb[3 * k + c];
      sum[c] += t->srgb ? (v <= 0.04045 ? v / 12.92 : pow((v + 0.055) / 1.055, 2.4)) : v;
    }
  for (int c = 0; c < 3; c++) out[c] = n ? sum[c] / (double)n : 0;
}

/* The luminance a material emits, on average over its emission texture: > 0 makes its
 * primitives lights. */
static double emitted(const kiln__scene *s, const kiln__material *q) {
  if (q->type == KILN__MAT_EMISSIVE) return luminance(q->emission);
  if (q->type != KILN__MAT_PRINCIPLED) return 0;
  double m[3];
  texture_mean(s, q->emission_texture, m);
  const float e[3] = {(float)(q->emission[0] * m[0]), (float)(q->emission[1] * m[1]),
                      (float)(q->emission[2] * m[2])};
  return luminance(e);
}

/* Whether primitives of material mat are lights (LIGHTS), lum holding each material's emitted():
 * the emissive ones, and principled ones that emit. Their relative luminance in MATS is > 0. */
static bool emissive(const kiln__scene *s, const double *lum, uint32_t mat) {
  return s->materials[mat].type == KILN__MAT_EMISSIVE || lum[mat] > 0;
}

/* LIGHTS, and each emissive sphere's pick probability into SPHERES; the total weight. An
 * emitter's weight is its area times its material's relative luminance (as packed in MATS);
 * pother is the probability that a light sample picks something else (environment, punctual). */
static double pack_lights(const kiln__scene *s, const double *lum, const float *mats, float *l,
                          float *sp, size_t nl, double pother) {
  double total = 0;
  size_t k = 0;
  for (size_t i = 0; i < s->ntris + s->nspheres; i++) {
    bool tri = i < s->ntris;
    const kiln__sphere *q = tri ? NULL : &s->spheres[i - s->ntris];
    if (!emissive(s, lum, tri ? s->tri_material[i] : q->material)) continue;
    uint32_t mat = tri ? s->tri_material[i] : q->material;
    double area = (tri ? tri_area(s->pos + 9 * i) : 4 * PI_D * (double)q->radius * q->radius) *
                  (double)mats[12 * mat + 10];
    total += area;
    l[4 * k] = ubits((uint32_t)i);
    l[4 * k + 1] = (float)total;
    l[4 * k + 2] = (float)area;
    k++;
  }
  /* normalised as before spheres were lights and power weighted the pick (the float cumulative
   * sum over the double total), so that scenes of alike emitters and no emissive sphere keep
   * their bits */
  for (size_t j = 0; j < nl; j++) {
    l[4 * j + 1] = j + 1 == nl ? 1.0f : (float)(l[4 * j + 1] / total);
    l[4 * j + 3] = j > 0 ? l[4 * j - 3] : 0.0f;
    uint32_t prim;
    memcpy(&prim, &l[4 * j], 4);
    if (prim >= s->ntris)
      sp[8 * (prim - s->ntris) + 7] = (float)((1 - pother) * l[4 * j + 2] / total);
  }
  return total;
}

/* The emitters' power: emitted radiance's luminance (lum: each material's, as emitted() gives
 * it) times pi times area (one-sided Lambertian). */
static double emitter_power(const kiln__scene *s, const double *lum) {
  double p = 0;
  for (size_t i = 0; i < s->ntris; i++)
    if (emissive(s, lum, s->tri_material[i]))
      p += tri_area(s->pos + 9 * i) * lum[s->tri_material[i]];
  for (size_t i = 0; i < s->nspheres; i++) {
    const kiln__sphere *q = &s->spheres[i];
    if (emissive(s, lum, q->material))
      p += 4 * PI_D * (double)q->radius * q->radius * lum[q->material];
  }
  return PI_D * p;
}

/* A punctual light's power (luminance): a point's 4 pi I; a spot's I times the solid angle of
 * the cone halfway between its inner and outer ones (pbrt's estimate); a sun's irradiance over
 * the disc the scene's bounding sphere (radius scene_r) shows it. */
static double plight_power(const kiln__plight *l, double scene_r) {
  double y = luminance(l->color);
  if (l->type == KILN__LIGHT_SUN) return y * PI_D * scene_r * scene_r;
  if (l->type == KILN__LIGHT_SPOT)
    return y * 2 * PI_D * (1 - 0.5 * ((double)l->cos_inner + l->cos_outer));
  return y * 4 * PI_D;
}

/* The radius of the sphere about the scene's bounding box (1 for an empty scene). */
static double scene_radius(const kiln__bvh *b) {
  bool top = b->tlas.nprims > 0;
  if (!b->nprims && !top) return 1;
  float lo[3], hi[3];
  const kiln__bvh_node *root = b->nprims ? &b->nodes[0] : &b->tlas.nodes[0];
  memcpy(lo, root->bmin, 12), memcpy(hi, root->bmax, 12);
  for (int k = 0; top && k < 3; k++) { /* the placements' too */
    lo[k] = fminf(lo[k], b->tlas.nodes[0].bmin[k]);
    hi[k] = fmaxf(hi[k], b->tlas.nodes[0].bmax[k]);
  }
  double d2 = 0;
  for (int k = 0; k < 3; k++) {
    double e = (double)hi[k] - lo[k];
    d2 += e * e;
  }
  return 0.5 * sqrt(d2);
}

/* PLIGHTS (16 floats a light, layout at the top) and the probability that a light sample picks a
 * punctual light: the part of 1 - penv that the punctual lights' power is of theirs and the
 * emitters' together (all of it without emitters: nothing else is there to pick). Among them a
 * light is picked by its power, floored at 1e-6 of the total so that each keeps a share. */
static double pack_plights(const kiln__scene *s, const double *lum, const kiln__bvh *b, float *out,
                           size_t nl, double penv) {
  if (!s->nplights) return 0;
  const double r = scene_radius(b);
  double total = 0, sum = 0, run = 0;
  for (size_t i = 0; i < s->nplights; i++) total += plight_power(&s->plights[i], r);
  const double least = total > 0 ? 1e-6 * total : 1;
  for (size_t i = 0; i < s->nplights; i++) sum += fmax(plight_power(&s->plights[i], r), least);
  for (size_t i = 0; i < s->nplights; i++) {
    const kiln__plight *l = &s->plights[i];
    const double w = fmax(plight_power(l, r), least);
    float *v = out + 16 * i;
    memcpy(v, l->position, 12), v[3] = ubits((uint32_t)l->type);
    memcpy(v + 4, l->direction, 12), v[7] = l->radius;
    memcpy(v + 8, l->color, 12), v[11] = l->cos_inner;
    run += w;
    v[12] = l->cos_outer;
    v[13] = i + 1 == s->nplights ? 1.0f : (float)(run / sum);
    v[14] = (float)(w / sum);
    v[15] = i ? out[16 * (i - 1) + 13] : 0.0f;
  }
  if (!nl) return 1 - penv;
  return (1 - penv) * total / (total + emitter_power(s, lum));
}

/* Whether the environment sends any light (then NEE samples it). */
static bool env_lit(const kiln__scene *s) {
  const kiln__environment *e = &s->env;
  if (!(e->intensity > 0)) return false;
  if (e->type == KILN__ENV_MAP) return e->texture >= 0; /* a black map: its distribution is empty */
  for (int c = 0; c < 3; c++)
    if (e->color[c] > 0 || (e->type == KILN__ENV_GRADIENT && e->top[c] > 0)) return true;
  return false;
}

/* The largest luminance of texel (x, y) and its 8 neighbours (wrapping in x, clamped in y): the
 * bilinear lookup over pixel (x, y) blends exactly those, so a distribution built on it gives
 * every direction with light a density in proportion (no fireflies at a bright texel's fringe). */
static double lum_max3(const kiln__texture *t, size_t x, size_t y) {
  size_t w = (size_t)t->width, h = (size_t)t->height;
  double m = 0;
  for (int dy = -1; dy <= 1; dy++) {
    if ((dy < 0 && y == 0) || (dy > 0 && y + 1 == h)) continue;
    for (int dx = -1; dx <= 1; dx++) {
      size_t xx = (x + w + (size_t)(dx + 1) - 1) % w, yy = y + (size_t)(dy + 1) - 1;
      double l = luminance(t->rgb + 3 * (yy * w + xx));
      if (l > m) m = l;
    }
  }
  return m;
}

/* ENVDIST for texture t (W x H); *lit false when the map is black (nothing to sample). 0 or
 * KILN_ENOMEM. */
static int pack_envdist(const kiln__texture *t, float *d, bool *lit) {
  size_t w = (size_t)t->width, h = (size_t)t->height;
  float *rows = d, *cols = d + h, *pmf = d + h + w * h;
  double total = 0;
  double *rowsum = malloc(h * sizeof *rowsum);
  *lit = false;
  if (!rowsum) return KILN_ENOMEM;
  for (size_t y = 0; y < h; y++) {
    double st = sin(PI_D * ((double)y + 0.5) / (double)h), run = 0;
    for (size_t x = 0; x < w; x++) {
      double f = lum_max3(t, x, y) * st;
      run += f;
      pmf[y * w + x] = (float)f;
      cols[y * w + x] = (float)run;
    }
    for (size_t x = 0; x < w; x++)
      cols[y * w + x] = run > 0 ? (x + 1 == w ? 1.0f : (float)(cols[y * w + x] / run))
                                : (float)(x + 1) / (float)w;
    rowsum[y] = run;
    total += run;
  }
  double run = 0;
  for (size_t y = 0; y < h; y++) {
    run += rowsum[y];
    rows[y] = y + 1 == h ? 1.0f : (float)(run / total);
  }
  free(rowsum);
  if (!(total > 0)) return 0;
  for (size_t i = 0; i < w * h; i++) pmf[i] = (float)(pmf[i] / total);
  *lit = true;
  return 0;
}

/* TRIS and ATTR (each when not NULL) of n triangles: positions pos, ids (material, object,
 * instance or group; ids NULL: left for the caller, ids[k] NULL: 0), normals nrm and uv (NULL:
 * zeros). */
static void pack_tris(size_t n, const float *pos, const uint32_t *const ids[3], const float *nrm,
                      const float *uv, float *t, float *attr) {
  for (size_t i = 0; i < n; i++) {
    const float *v = pos + 9 * i;
    for (int k = 0; t && k < 3; k++) {
      memcpy(t + 12 * i + 4 * k, v + 3 * k, 12);
      if (ids) t[12 * i + 4 * k + 3] = ubits(ids[k] ? ids[k][i] : 0);
    }
    if (!attr) continue;
    if (nrm) memcpy(attr + 16 * i, nrm + 9 * i, 36);
    if (uv) memcpy(attr + 16 * i + 9, uv + 6 * i, 24);
  }
}

/* MATS. An emissive material's relative luminance is its luminance over the brightest emitter's:
 * in (0, 1], and 1 exactly for the brightest, so emitters that are all alike weigh by area alone. */
static void pack_materials(const kiln__scene *s, const double *lum, float *m, float *x) {
  double mx = 0;
  for (size_t i = 0; i < s->nmaterials; i++)
    if (lum[i] > mx) mx = lum[i];
  for (size_t i = 0; i < s->nmaterials; i++) {
    const kiln__material *q = &s->materials[i];
    memcpy(m + 12 * i, q->albedo, 12);
    m[12 * i + 3] = ubits((uint32_t)q->type);
    memcpy(m + 12 * i + 4, q->emission, 12);
    m[12 * i + 7] = q->roughness;
    m[12 * i + 8] = q->ior;
    m[12 * i + 9] = ubits(q->texture >= 0 ? (uint32_t)q->texture : PT_NONE);
    if (q->type == KILN__MAT_EMISSIVE && mx > 0)
      m[12 * i + 10] = (float)(luminance(q->emission) / mx);
    if (q->type != KILN__MAT_PRINCIPLED) continue;
    if (mx > 0) m[12 * i + 10] = (float)(lum[i] / mx);
    float *e = x + 16 * i;
    e[0] = q->metallic, e[1] = q->alpha, e[2] = q->alpha_cutoff, e[3] = q->normal_scale;
    const int32_t tex[4] = {q->mr_texture, q->normal_texture, q->emission_texture,
                            q->alpha_texture};
    for (int k = 0; k < 4; k++) e[4 + k] = ubits(tex[k] >= 0 ? (uint32_t)tex[k] : PT_NONE);
    memcpy(e + 8, q->uv_xform, 12), memcpy(e + 12, q->uv_xform + 3, 12);
  }
}

/* VATTR of n triangles from their colours and tangents (either may be NULL). */
static void pack_vattr(size_t n, const float *col, const float *tan, float *v) {
  for (size_t i = 0; i < n; i++, v += 24) {
    for (int k = 0; k < 3; k++) {
      if (col) memcpy(v + 4 * k, col + 9 * i + 3 * k, 12);
      else v[4 * k] = v[4 * k + 1] = v[4 * k + 2] = 1;
    }
    if (tan) memcpy(v + 12, tan + 12 * i, 48);
  }
}

static void pack_spheres(const kiln__scene *s, float *sp) {
  for (size_t i = 0; i < s->nspheres; i++) {
    const kiln__sphere *q = &s->spheres[i];
    memcpy(sp + 8 * i, q->center, 12);
    sp[8 * i + 3] = q->radius;
    uint32_t ids[3] = {q->material, q->object_id, q->instance_id};
    memcpy(sp + 8 * i + 4, ids, 12);
  }
}

static void pack_textures(const kiln__scene *s, uint32_t *info, float *texels) {
  size_t off = 0;
  for (size_t i = 0; i < s->ntextures; i++) {
    const kiln__texture *t = &s->textures[i];
    size_t n = (size_t)t->width * (size_t)t->height * 3;
    info[4 * i] = (uint32_t)off, info[4 * i + 1] = (uint32_t)t->width;
    info[4 * i + 2] = (uint32_t)t->height, info[4 * i + 3] = t->srgb;
    memcpy(texels + off, t->rgb, n * sizeof(float));
    off += n;
  }
}

/* The grid the node boxes are quantised on: 65535 steps per axis from one step below the root
 * box to at least one step above it (as the shader computes origin + q * scale, fused or not),
 * so that every quantised plane, the scene's outer ones too, lies a step or more outside its
 * primitives: the shader's slab test, rounded differently, cannot cull a ray that hits them. A
 * flat axis gets steps of its coordinate's size over 65533 (or of 1). */
static void node_grid(const kiln__bvh_node *root, float origin[3], float scale[3]) {
  for (int k = 0; k < 3; k++) {
    float lo = root->bmin[k], hi = root->bmax[k], ext = hi - lo;
    scale[k] = (ext > 0 ? ext : fabsf(lo) > 1 ? fabsf(lo) : 1) / 65533.0f;
    origin[k] = lo - scale[k];
    while (origin[k] > lo - scale[k] * 0.5f) origin[k] = nextafterf(origin[k], -INFINITY);
    while (origin[k] + 65535.0f * scale[k] < hi + scale[k] ||
           fmaf(65535.0f, scale[k], origin[k]) < hi + scale[k])
      scale[k] = nextafterf(scale[k], INFINITY);
  }
}

/* The grid step q whose point is at or below x (down) or at or above it (up), one step further
 * out for margin, both ways of rounding the shader's origin + q * scale checked. */
static uint32_t quantise(float x, float origin, float scale, bool up) {
  if (!(scale > 0)) return 0; /* flat on this axis: every bound is the origin */
  double q = floor(((double)x - origin) / scale);
  q = up ? q + 2 : q - 1;
  q = !(q > 0) ? 0 : q > 65535 ? 65535 : q; /* NaN too */
  for (;;) {
    float f = (float)q, a = origin + f * scale, b = fmaf(f, scale, origin);
    if (up ? (a >= x && b >= x) || q == 65535 : (a <= x && b <= x) || q == 0) break;
    q += up ? 1 : -1;
  }
  return (uint32_t)q;
}

/* NODES, 4 words per node: the box on the grid of node_grid (16 bits per bound, rounded outwards:
 * x, y of bmin | z of bmin, x of bmax | y, z of bmax, low half first) and a link word. Leaf: bit 31,
 * count - 1 in bits 27-30, first primitive in bits 0-26. Interior: its skip link, the node that
 * follows its subtree in depth-first order (the tree's end after the last); its left child is the
 * next node. For interior node i with right child r, the left child i + 1 skips to r and r skips
 * where i does; parents precede their children, so one pass in index order sets every link before
 * it is read. Tree t's nodes go to out (base: the index of its first in its buffer, which links
 * count from; its leaves' first primitives are prim_base + their own). KILN_EINVAL beyond those
 * fields' ranges. */
static int pack_tree(const kiln__bvh_tree *t, uint32_t *out, size_t base, size_t prim_base,
                     float origin[3], float scale[3]) {
  node_grid(&t->nodes[0], origin, scale);
  if (base + t->nnodes > (1u << 31) || prim_base + t->nprims > (1u << 27)) return KILN_EINVAL;
  for (size_t i = 0; i < t->nnodes; i++) {
    const kiln__bvh_node *n = &t->nodes[i];
    uint32_t q[6];
    for (int k = 0; k < 3; k++) {
      q[k] = quantise(n->bmin[k], origin[k], scale[k], false);
      q[3 + k] = quantise(n->bmax[k], origin[k], scale[k], true);
    }
    for (int w = 0; w < 3; w++) out[4 * i + w] = q[2 * w] | q[2 * w + 1] << 16;
    if (n->count > 16) return KILN_EINVAL;
    if (n->count) out[4 * i + 3] = 1u << 31 | (n->count - 1) << 27 | (uint32_t)(prim_base + n->a);
  }
  if (t->nprims == 0) return 0; /* the placeholder root: never traversed */
  if (!t->nodes[0].count) out[3] = (uint32_t)(base + t->nnodes);
  for (size_t i = 0; i < t->nnodes; i++) {
    if (t->nodes[i].count) continue;
    uint32_t r = t->nodes[i].a;
    if (!t->nodes[i + 1].count) out[4 * (i + 1) + 3] = (uint32_t)(base + r);
    if (!t->nodes[r].count) out[4 * r + 3] = out[4 * i + 3];
  }
  return 0;
}

static int pack_nodes(const kiln__bvh *b, uint32_t *out, float origin[3], float scale[3]) {
  const kiln__bvh_tree flat = {b->nodes, b->nnodes, b->prims, b->nprims};
  return pack_tree(&flat, out, 0, 0, origin, scale);
}

/* The scene's KILN__RF_* features (what the shader must keep code for). */
static uint32_t features(const kiln__scene *s, bool env_map, bool env_lit) {
  uint32_t f = (s->nspheres ? KILN__RF_SPHERES : 0) | (env_map ? KILN__RF_ENV_MAP : 0) |
               (s->nrm ? KILN__RF_NORMALS : 0) | (s->uv ? KILN__RF_UV : 0) |
               (env_lit ? KILN__RF_ENV_LIT : 0) | (s->nplights ? KILN__RF_PLIGHTS : 0);
  for (size_t i = 0; i < s->nmaterials; i++) {
    const kiln__material *q = &s->materials[i];
    if (q->type == KILN__MAT_CONDUCTOR) f |= KILN__RF_CONDUCTORS;
    if (q->type == KILN__MAT_DIELECTRIC) f |= KILN__RF_DIELECTRICS;
    if (q->texture >= 0) f |= KILN__RF_TEXTURES;
    if (q->type == KILN__MAT_PRINCIPLED) f |= KILN__RF_PRINCIPLED;
    if (q->type == KILN__MAT_PRINCIPLED && q->alpha_cutoff > 0) f |= KILN__RF_ALPHA;
  }
  if (s->col || s->tan) f |= KILN__RF_VATTR;
  for (size_t m = 0; m < s->nmeshes; m++) {
    const kiln__shared_mesh *q = &s->meshes[m];
    f |= (q->nrm ? KILN__RF_NORMALS : 0) | (q->uv ? KILN__RF_UV : 0) |
         (q->col || q->tan ? KILN__RF_VATTR : 0);
  }
  if (s->nplacements) f |= KILN__RF_INSTANCES;
  return f;
}

/* PRIMS: the leaves' primitives with what their intersection test reads, so that the shader
 * reads no index first (lavapipe loads storage buffers lane by lane: each load counts). */
static void pack_leaf_prims(const kiln__scene *s, const kiln__bvh *b, float *r) {
  for (size_t i = 0; i < b->nprims; i++, r += 12) {
    uint32_t prim = b->prims[i];
    if (prim < s->ntris) {
      const float *v = s->pos + 9 * (size_t)prim;
      for (int k = 0; k < 3; k++)
        r[k] = v[k], r[4 + k] = v[3 + k] - v[k], r[8 + k] = v[6 + k] - v[k];
    } else {
      const kiln__sphere *q = &s->spheres[prim - s->ntris];
      memcpy(r, q->center, 12);
      r[4] = q->radius;
    }
    r[3] = ubits(prim);
  }
}

/* PRIMS entries of mesh tree t over triangles pos, whose TRIS index is tri_base + their own. */
static void pack_mesh_prims(const kiln__bvh_tree *t, const float *pos, size_t tri_base, float *r) {
  for (size_t i = 0; i < t->nprims; i++, r += 12) {
    const float *v = pos + 9 * (size_t)t->prims[i];
    for (int k = 0; k < 3; k++) r[k] = v[k], r[4 + k] = v[3 + k] - v[k], r[8 + k] = v[6 + k] - v[k];
    r[3] = ubits((uint32_t)(tri_base + t->prims[i]));
  }
}

/* Whether the rows of a world-to-object transform w (3 x 4, row-major) are orthonormal, to
 * float rounding: a rotation, a mirror or the identity, which keep a unit normal unit. */
static bool orthonormal(const float w[12]) {
  for (int i = 0; i < 3; i++)
    for (int j = i; j < 3; j++) {
      double d = (double)w[4 * i] * w[4 * j] + (double)w[4 * i + 1] * w[4 * j + 1] +
                 (double)w[4 * i + 2] * w[4 * j + 2];
      if (fabs(d - (i == j ? 1.0 : 0.0)) > 1e-6) return false;
    }
  return true;
}

/* The mesh trees in NODES (after the flat tree's nnodes) and PRIMS (after its nprims), each
 * unless NULL (already there: a buffer reused), and INST: the header, the top level on its own
 * grid, the placements (layout.h, PT_INST_VEC4S) in the top level's leaf order, as PRIMS holds
 * the flat tree's primitives. tri_base: each mesh's first triangle in TRIS. */
static int pack_inst(const kiln__scene *s, const kiln__bvh *b, const size_t *tri_base,
                     uint32_t *nodes, float *prims, uint32_t *inst) {
  size_t node_at = b->nnodes, prim_at = b->nprims;
  size_t *first = malloc(s->nmeshes * sizeof *first);
  float(*grid)[2][3] = malloc(s->nmeshes * sizeof *grid);
  int rc = first && grid ? 0 : KILN_ENOMEM;
  for (size_t m = 0; m < s->nmeshes && !rc; m++) {
    const kiln__bvh_tree *t = &b->blas[m];
    first[m] = node_at;
    if (nodes) rc = pack_tree(t, nodes + 4 * node_at, node_at, prim_at, grid[m][0], grid[m][1]);
    else node_grid(&t->nodes[0], grid[m][0], grid[m][1]);
    if (prims) pack_mesh_prims(t, s->meshes[m].pos, tri_base[m], prims + 12 * prim_at);
    node_at += t->nnodes, prim_at += t->nprims;
  }
  float origin[3], scale[3];
  const size_t ntop = b->tlas.nnodes;
  if (!rc) rc = pack_tree(&b->tlas, inst + 4 * PT_INST_HEADER, 0, 0, origin, scale);
  if (!rc) {
    inst[0] = (uint32_t)ntop, inst[1] = (uint32_t)s->nplacements;
    memcpy(inst + 4, origin, 12), memcpy(inst + 8, scale, 12);
    for (size_t i = 0; i < s->nplacements; i++) { /* in the top level's leaf order */
      size_t k = b->tlas.prims[i];
      const kiln__placement *pl = &s->placements[k];
      uint32_t *r = inst + 4 * (PT_INST_HEADER + ntop + PT_INST_VEC4S * i);
      memcpy(r, b->w2o + 12 * k, 48);
      r[12] = (uint32_t)first[pl->mesh];
      r[13] = (uint32_t)(first[pl->mesh] + b->blas[pl->mesh].nnodes);
      r[14] = pl->first_instance;
      r[15] = !orthonormal(b->w2o + 12 * k);
      memcpy(r + 16, grid[pl->mesh][0], 12), memcpy(r + 20, grid[pl->mesh][1], 12);
    }
  }
  free(first), free(grid);
  return rc;
}

/* The buffers of reuse (KILN__PACK_REUSE_* bits) that p takes from base: those whose size is
 * what p needs (sizes: p->size), TEXINFO and TEXELS only together. */
static uint32_t reusable(const kiln__render_buffers *base, uint32_t reuse,
                         const kiln__render_buffers *p) {
  uint32_t keep = 0;
  for (int i = 0; base && i < PT_BIND_COUNT; i++)
    if (reuse & 1u << i && base->data[i] && base->size[i] == p->size[i]) keep |= 1u << i;
  const uint32_t tex = 1u << PT_BIND_TEXINFO | 1u << PT_BIND_TEXELS;
  if ((keep & tex) != tex) keep &= ~tex;
  return keep;
}

/* kiln__render_pack_reusing with each material's emitted() in lum. */
static int pack_all(const kiln__scene *s, const kiln__bvh *b, const double *lum,
                    const kiln__render_buffers *base, uint32_t reuse, kiln__render_buffers *p) {
  size_t nl = 0, ntexels = 0;
  for (size_t i = 0; i < s->ntris; i++) nl += emissive(s, lum, s->tri_material[i]);
  for (size_t i = 0; i < s->nspheres; i++) nl += emissive(s, lum, s->spheres[i].material);
  for (size_t i = 0; i < s->ntextures; i++)
    ntexels += (size_t)s->textures[i].width * (size_t)s->textures[i].height;
  if (ntexels > UINT32_MAX / 3) return KILN_ENOMEM; /* offsets are 32-bit in the shader */
  const kiln__texture *envt =
      s->env.type == KILN__ENV_MAP && s->env.texture >= 0 ? &s->textures[s->env.texture] : NULL;
  size_t envn = envt ? (size_t)envt->width * (size_t)envt->height : 0;
  bool has_nrm = s->nrm, has_uv = s->uv, has_col = s->col, has_tan = s->tan, principled = false;
  for (size_t i = 0; i < s->nmaterials; i++)
    principled |= s->materials[i].type == KILN__MAT_PRINCIPLED;
  /* shared meshes: their triangles, nodes and leaf entries after the flat ones */
  size_t ntris = s->ntris, nnodes = b->nnodes, nprims = b->nprims, ninst = 0;
  size_t *tri_base = s->nplacements ? malloc(s->nmeshes * sizeof *tri_base) : NULL;
  if (s->nplacements && !tri_base) return KILN_ENOMEM;
  for (size_t m = 0; s->nplacements && m < s->nmeshes; m++) {
    const kiln__shared_mesh *q = &s->meshes[m];
    tri_base[m] = ntris;
    ntris += q->ntris, nnodes += b->blas[m].nnodes, nprims += b->blas[m].nprims;
    has_nrm |= q->nrm != NULL, has_uv |= q->uv != NULL;
    has_col |= q->col != NULL, has_tan |= q->tan != NULL;
  }
  if (s->nplacements) ninst = PT_INST_HEADER + b->tlas.nnodes + PT_INST_VEC4S * s->nplacements;
  bool attr = has_nrm || has_uv, vattr = has_col || has_tan;
  size_t bytes[PT_BIND_COUNT] = {[PT_BIND_NODES] = nnodes * 16,
                                 [PT_BIND_PRIMS] = nprims * 48,
                                 [PT_BIND_TRIS] = ntris * 48,
                                 [PT_BIND_SPHERES] = s->nspheres * 32,
                                 [PT_BIND_MATS] = s->nmaterials * 48,
                                 [PT_BIND_LIGHTS] = nl * 16,
                                 [PT_BIND_GLOBALS] = sizeof(pt_globals),
                                 [PT_BIND_ATTR] = attr ? ntris * 64 : 0,
                                 [PT_BIND_TEXINFO] = s->ntextures * 16,
                                 [PT_BIND_TEXELS] = ntexels * 12,
                                 [PT_BIND_ENVDIST] = envt ? (envt->height + 2 * envn) * 4 : 0,
                                 [PT_BIND_SCENE] = 0,
                                 [PT_BIND_PLIGHTS] = s->nplights * 64,
                                 [PT_BIND_MATX] = principled ? s->nmaterials * 64 : 0,
                                 [PT_BIND_VATTR] = vattr ? ntris * 96 : 0,
                                 [PT_BIND_INST] = ninst * 16};
  p->scene_vec4s = nnodes + 3 * (nprims + ntris + s->nmaterials) + nl;
  /* the shared copy and the uniform block hold the flat geometry only: not with placements */
  bool block = p->scene_vec4s <= PT_UNIFORM_VEC4S_MAX && !s->nplacements;
  if (block) bytes[PT_BIND_SCENE] = p->scene_vec4s * 16;
  for (int i = 0; i < PT_BIND_COUNT; i++) {
    if (i == PT_BIND_ACCUM || i == PT_BIND_AOV || (KILN__TEXEL_MASK >> i & 1u)) continue;
    p->size[i] = bytes[i] < 16 ? 16 : bytes[i];
  }
  p->borrowed = reusable(base, reuse, p);
  for (int i = 0; i < PT_BIND_COUNT; i++) {
    if (!p->size[i]) continue;
    if (p->borrowed & 1u << i) {
      p->data[i] = base->data[i];
      continue;
    }
    p->data[i] = calloc(1, p->size[i]);
    if (!p->data[i]) {
      kiln__render_pack_free(p);
      free(tri_base);
      return KILN_ENOMEM;
    }
  }
#define OWN(k) (p->borrowed & 1u << (k) ? NULL : p->data[k]) /* NULL: base's, already packed */
  float origin[3], scale[3];
  int rc = 0;
  if (OWN(PT_BIND_NODES)) rc = pack_nodes(b, p->data[PT_BIND_NODES], origin, scale);
  else node_grid(&b->nodes[0], origin, scale);
  if (!rc && s->nplacements)
    rc = pack_inst(s, b, tri_base, OWN(PT_BIND_NODES), OWN(PT_BIND_PRIMS), p->data[PT_BIND_INST]);
  if (rc) {
    kiln__render_pack_free(p);
    free(tri_base);
    return rc;
  }
  if (OWN(PT_BIND_PRIMS)) pack_leaf_prims(s, b, p->data[PT_BIND_PRIMS]);
  float *tris = OWN(PT_BIND_TRIS), *ap = attr ? OWN(PT_BIND_ATTR) : NULL;
  float *va = vattr ? OWN(PT_BIND_VATTR) : NULL;
  const uint32_t *const flat_ids[3] = {s->tri_material, s->tri_object, s->tri_instance};
  pack_tris(s->ntris, s->pos, flat_ids, s->nrm, s->uv, tris, ap);
  if (va) pack_vattr(s->ntris, s->col, s->tan, va);
  for (size_t m = 0; s->nplacements && m < s->nmeshes; m++) {
    const kiln__shared_mesh *q = &s->meshes[m];
    size_t o = tri_base[m];
    pack_tris(q->ntris, q->pos, NULL, q->nrm, q->uv, tris ? tris + 12 * o : NULL,
              ap ? ap + 16 * o : NULL);
    if (tris) p->mesh_tris_packed += q->ntris;
    for (size_t t = 0; tris && t < q->ntris; t++) {
      float *w = tris + 12 * (o + t);
      w[3] = ubits(kiln__shared_mesh_material(q, t)), w[7] = ubits(kiln__shared_mesh_object(q, t));
      w[11] = ubits(q->tri_group[t]);
    }
    if (va) pack_vattr(q->ntris, q->col, q->tan, va + 24 * o);
  }
  free(tri_base);
  pack_spheres(s, p->data[PT_BIND_SPHERES]);
  pack_materials(s, lum, p->data[PT_BIND_MATS], principled ? p->data[PT_BIND_MATX] : NULL);
  if (OWN(PT_BIND_TEXELS)) {
    pack_textures(s, p->data[PT_BIND_TEXINFO], p->data[PT_BIND_TEXELS]);
    p->texels_packed = ntexels;
  }
  bool dist = false;
  if (envt && !OWN(PT_BIND_ENVDIST)) {
    dist = ((const pt_globals *)base->data[PT_BIND_GLOBALS])->env_dist != 0;
  } else if (envt && pack_envdist(envt, p->data[PT_BIND_ENVDIST], &dist)) {
    kiln__render_pack_free(p);
    return KILN_ENOMEM;
  }
#undef OWN
  double penv = !env_lit(s) || (envt && !dist) ? 0 : nl > 0 || s->nplights > 0 ? 0.5 : 1;
  double ppl = pack_plights(s, lum, b, p->data[PT_BIND_PLIGHTS], nl, penv);
  double total = pack_lights(s, lum, p->data[PT_BIND_MATS], p->data[PT_BIND_LIGHTS],
                             p->data[PT_BIND_SPHERES], nl, penv + ppl);

  pt_globals *g = p->data[PT_BIND_GLOBALS];
  g->ntris = (uint32_t)s->ntris, g->nspheres = (uint32_t)s->nspheres, g->nlights = (uint32_t)nl;
  g->env_type = (uint32_t)s->env.type;
  const float ik = s->env.intensity, *ec = s->env.color, *et = s->env.top;
  g->env_color = envt ? (pt_vec3){ik, ik, ik} : (pt_vec3){ec[0] * ik, ec[1] * ik, ec[2] * ik};
  g->env_top = (pt_vec3){et[0] * ik, et[1] * ik, et[2] * ik};
  g->light_weight = (float)total;
  g->has_normals = has_nrm, g->has_uv = has_uv;
  g->env_texture = envt ? (uint32_t)s->env.texture : PT_NONE;
  g->env_dist = dist;
  /* the map's frame (environment.glsl, to_map): the rotation plus half a turn, since latlong()
   * puts u = 0.5 towards -x where Blender's Environment Texture has +x (docs/SCENE.md) */
  double rot = s->env.rotation_deg * PI_D / 180;
  g->env_cos = (float)-cos(rot), g->env_sin = (float)-sin(rot), g->env_pick = (float)penv;
  g->nnodes = (uint32_t)b->nnodes;
  g->grid_origin = (pt_vec3){origin[0], origin[1], origin[2]};
  g->grid_step = (pt_vec3){scale[0], scale[1], scale[2]};
  g->nleaf_prims = (uint32_t)b->nprims, g->nmaterials = (uint32_t)s->nmaterials;
  g->nplights = (uint32_t)s->nplights, g->plight_pick = (float)ppl;
  g->has_col = has_col, g->has_tan = has_tan;
  p->features = features(s, envt != NULL, penv > 0);
  if (block) {
    uint8_t *u = p->data[PT_BIND_SCENE];
    size_t at = 0;
    static const int order[] = {PT_BIND_NODES, PT_BIND_PRIMS, PT_BIND_TRIS, PT_BIND_MATS,
                                PT_BIND_LIGHTS};
    static const size_t each[] = {16, 48, 48, 48, 16}; /* bytes an element */
    const size_t count[] = {b->nnodes, b->nprims, s->ntris, s->nmaterials, nl};
    for (int k = 0; k < 5; k++) {
      memcpy(u + at, p->data[order[k]], count[k] * each[k]);
      at += count[k] * each[k];
    }
  }
  return 0;
}

int kiln__render_pack_reusing(const kiln__scene *s, const kiln__bvh *b,
                              const kiln__render_buffers *base, uint32_t reuse,
                              kiln__render_buffers *p) {
  memset(p, 0, sizeof *p);
  double *lum = malloc((s->nmaterials ? s->nmaterials : 1) * sizeof *lum);
  if (!lum) return KILN_ENOMEM;
  for (size_t i = 0; i < s->nmaterials; i++) lum[i] = emitted(s, &s->materials[i]);
  int rc = pack_all(s, b, lum, base, reuse, p);
  free(lum);
  return rc;
}

int kiln__render_pack(const kiln__scene *s, const kiln__bvh *b, kiln__render_buffers *p) {
  return kiln__render_pack_reusing(s, b, NULL, 0, p);
}
