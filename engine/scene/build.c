/* build.c: growing the flattened kiln__scene (scene_data.h) while a scene file is read.
 *
 * Everything arrives here in world space or with its transform: mesh triangles are transformed
 * (positions by M, normals by the inverse transpose of M's 3x3, renormalised), quads and boxes are
 * triangulated, spheres stay analytic. A transform with a negative determinant mirrors, which would
 * turn front faces into back faces; v1 and v2 are swapped there so that the front face of every
 * triangle stays the side cross(v1 - v0, v2 - v0) points to (what emission and the renderer use).
 * Arrays grow by doubling; on ENOMEM the builder still owns what it had (kiln__scene_free). */
#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/error.h"
#include "scene_internal.h"

void kiln__xform_identity(kiln__xform *x) {
  memset(x, 0, sizeof *x);
  for (int i = 0; i < 4; i++) x->m[i][i] = 1.0;
}

void kiln__xform_mul(kiln__xform *out, const kiln__xform *a, const kiln__xform *b) {
  kiln__xform r;
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++) {
      double v = 0;
      for (int k = 0; k < 4; k++) v += a->m[i][k] * b->m[k][j];
      r.m[i][j] = v;
    }
  *out = r;
}

void kiln__xform_point(const kiln__xform *x, const float in[3], float out[3]) {
  double r[3];
  for (int i = 0; i < 3; i++)
    r[i] = x->m[i][0] * in[0] + x->m[i][1] * in[1] + x->m[i][2] * in[2] + x->m[i][3];
  for (int i = 0; i < 3; i++) out[i] = (float)r[i];
}

double kiln__xform_det3(const kiln__xform *x) {
  const double(*m)[4] = x->m;
  return m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
         m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
         m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
}

/* The inverse transpose of x's 3x3 (the cofactor matrix divided by the determinant; the scale
 * does not matter as normals are renormalised, but the sign does). */
static void normal_matrix(const kiln__xform *x, double n[3][3]) {
  const double(*m)[4] = x->m;
  double det = kiln__xform_det3(x);
  double s = det < 0 ? -1.0 : 1.0;
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) {
      int i1 = (i + 1) % 3, i2 = (i + 2) % 3, j1 = (j + 1) % 3, j2 = (j + 2) % 3;
      n[i][j] = s * (m[i1][j1] * m[i2][j2] - m[i1][j2] * m[i2][j1]);
    }
}

static void normalize3(float v[3]) {
  double l = sqrt((double)v[0] * v[0] + (double)v[1] * v[1] + (double)v[2] * v[2]);
  if (l > 0) v[0] = (float)(v[0] / l), v[1] = (float)(v[1] / l), v[2] = (float)(v[2] / l);
}

void kiln__tri_normal(const float p[9], float n[3]) {
  float e1[3] = {p[3] - p[0], p[4] - p[1], p[5] - p[2]};
  float e2[3] = {p[6] - p[0], p[7] - p[1], p[8] - p[2]};
  n[0] = e1[1] * e2[2] - e1[2] * e2[1];
  n[1] = e1[2] * e2[0] - e1[0] * e2[2];
  n[2] = e1[0] * e2[1] - e1[1] * e2[0];
  normalize3(n);
}

/* Grows *arr (elements of size sz) so that it holds at least need. */
static int grow(void **arr, size_t *cap, size_t need, size_t sz) {
  if (need <= *cap) return 0;
  size_t nc = *cap ? *cap : 16;
  while (nc < need) nc *= 2;
  void *p = realloc(*arr, nc * sz);
  if (!p) return KILN_ENOMEM;
  *arr = p, *cap = nc;
  return 0;
}

/* Makes the per-triangle array *arr (k floats a triangle) hold tri_cap triangles, filling those
 * it did not hold yet with fill. */
static int grow_attr(kiln__scene_builder *b, float **arr, size_t *cap, size_t k, float fill) {
  if (*cap >= b->tri_cap) return 0;
  float *a = realloc(*arr, b->tri_cap * k * sizeof(float));
  if (!a) return KILN_ENOMEM;
  for (size_t i = *cap * k; i < b->tri_cap * k; i++) a[i] = fill;
  *arr = a, *cap = b->tri_cap;
  return 0;
}

static int grow_tris(kiln__scene_builder *b) {
  kiln__scene *s = &b->s;
  size_t need = s->ntris + 1;
  if (need <= b->tri_cap) return 0;
  size_t nc = b->tri_cap ? b->tri_cap * 2 : 64;
  float *pos = realloc(s->pos, nc * 9 * sizeof(float));
  if (pos) s->pos = pos;
  float *nrm = realloc(s->nrm, nc * 9 * sizeof(float));
  if (nrm) s->nrm = nrm;
  float *uv = realloc(s->uv, nc * 6 * sizeof(float));
  if (uv) s->uv = uv;
  uint32_t *a = realloc(s->tri_material, nc * sizeof(uint32_t));
  if (a) s->tri_material = a;
  uint32_t *o = realloc(s->tri_object, nc * sizeof(uint32_t));
  if (o) s->tri_object = o;
  uint32_t *in = realloc(s->tri_instance, nc * sizeof(uint32_t));
  if (in) s->tri_instance = in;
  if (!pos || !nrm || !uv || !a || !o || !in) return KILN_ENOMEM;
  b->tri_cap = nc;
  /* colours and tangents, once some triangle has them, grow with the rest */
  if (s->col && grow_attr(b, &s->col, &b->col_cap, 9, 1.0f)) return KILN_ENOMEM;
  if (s->tan && grow_attr(b, &s->tan, &b->tan_cap, 12, 0.0f)) return KILN_ENOMEM;
  return 0;
}

int kiln__sb_tri(kiln__scene_builder *b, const float p[9], const float *n, const float *uv,
                 uint32_t mat, uint32_t obj, uint32_t inst) {
  for (int i = 0; i < 9; i++)
    if (!isfinite(p[i])) return KILN_EINVAL;
  int rc = grow_tris(b);
  if (rc) return rc;
  kiln__scene *s = &b->s;
  size_t t = s->ntris;
  memcpy(s->pos + 9 * t, p, 9 * sizeof(float));
  if (n) {
    memcpy(s->nrm + 9 * t, n, 9 * sizeof(float));
    b->any_nrm = true;
  } else {
    float g[3];
    kiln__tri_normal(p, g);
    for (int k = 0; k < 3; k++) memcpy(s->nrm + 9 * t + 3 * k, g, sizeof g);
  }
  if (uv) {
    memcpy(s->uv + 6 * t, uv, 6 * sizeof(float));
    b->any_uv = true;
  } else {
    memset(s->uv + 6 * t, 0, 6 * sizeof(float));
  }
  s->tri_material[t] = mat, s->tri_object[t] = obj, s->tri_instance[t] = inst;
  s->ntris++;
  return 0;
}

int kiln__sb_tri_attrs(kiln__scene_builder *b, const float *col, const float *tan) {
  kiln__scene *s = &b->s;
  if (s->ntris == 0) return KILN_EINVAL;
  size_t t = s->ntris - 1;
  if (col) {
    if (grow_attr(b, &s->col, &b->col_cap, 9, 1.0f)) return KILN_ENOMEM;
    memcpy(s->col + 9 * t, col, 9 * sizeof(float));
  }
  if (tan) {
    if (grow_attr(b, &s->tan, &b->tan_cap, 12, 0.0f)) return KILN_ENOMEM;
    memcpy(s->tan + 12 * t, tan, 12 * sizeof(float));
  }
  return 0;
}

/* Transforms one triangle (and its normals, colours, tangents) by x, keeping the front face. */
static int xform_tri(kiln__scene_builder *b, const kiln__xform *x, const double nm[3][3], bool flip,
                     const float *p, const float *n, const float *uv, const float *col,
                     const float *tan, uint32_t mat, uint32_t obj, uint32_t inst) {
  float wp[9], wn[9] = {0}, wuv[6] = {0}, wc[9], wt[12];
  for (int k = 0; k < 3; k++) {
    kiln__xform_point(x, p + 3 * k, wp + 3 * k);
    if (n) {
      for (int i = 0; i < 3; i++)
        wn[3 * k + i] =
            (float)(nm[i][0] * n[3 * k] + nm[i][1] * n[3 * k + 1] + nm[i][2] * n[3 * k + 2]);
      normalize3(wn + 3 * k);
    }
  }
  if (uv) memcpy(wuv, uv, sizeof wuv);
  if (col) memcpy(wc, col, sizeof wc);
  if (tan)
    for (int k = 0; k < 3; k++) {
      const float *v = tan + 4 * k;
      for (int i = 0; i < 3; i++)
        wt[4 * k + i] = (float)(x->m[i][0] * v[0] + x->m[i][1] * v[1] + x->m[i][2] * v[2]);
      normalize3(wt + 4 * k);
      /* a mirroring transform turns the frame's handedness: keep the bitangent where it was */
      wt[4 * k + 3] = flip ? -v[3] : v[3];
    }
  if (flip) {
    float t[4];
    memcpy(t, wp + 3, 12), memcpy(wp + 3, wp + 6, 12), memcpy(wp + 6, t, 12);
    memcpy(t, wn + 3, 12), memcpy(wn + 3, wn + 6, 12), memcpy(wn + 6, t, 12);
    memcpy(t, wc + 3, 12), memcpy(wc + 3, wc + 6, 12), memcpy(wc + 6, t, 12);
    memcpy(t, wt + 4, 16), memcpy(wt + 4, wt + 8, 16), memcpy(wt + 8, t, 16);
    float u[2];
    memcpy(u, wuv + 2, sizeof u), memcpy(wuv + 2, wuv + 4, sizeof u), memcpy(wuv + 4, u, sizeof u);
  }
  int rc = kiln__sb_tri(b, wp, n ? wn : NULL, uv ? wuv : NULL, mat, obj, inst);
  if (rc == 0 && (col || tan)) rc = kiln__sb_tri_attrs(b, col ? wc : NULL, tan ? wt : NULL);
  return rc;
}

int kiln__sb_mesh(kiln__scene_builder *b, const kiln__mesh *m, const kiln__xform *x,
                  const uint32_t *mats, const uint32_t *obj_of_group,
                  const uint32_t *inst_of_group) {
  double nm[3][3];
  normal_matrix(x, nm);
  bool flip = kiln__xform_det3(x) < 0;
  for (size_t t = 0; t < m->ntris; t++) {
    uint32_t g = m->tri_group[t];
    uint32_t mi = m->tri_mat[t] == UINT32_MAX ? (uint32_t)m->nmat_names : m->tri_mat[t];
    int rc = xform_tri(b, x, nm, flip, m->pos + 9 * t, m->nrm ? m->nrm + 9 * t : NULL,
                       m->uv ? m->uv + 6 * t : NULL, m->col ? m->col + 9 * t : NULL,
                       m->tan ? m->tan + 12 * t : NULL, mats[mi], obj_of_group[g],
                       inst_of_group[g]);
    if (rc) return rc;
  }
  return 0;
}

/* A copy of n * k floats of a (NULL: NULL); *fail set when out of memory. */
static float *copy_floats(const float *a, size_t n, size_t k, bool *fail) {
  if (!a) return NULL;
  float *c = malloc(n * k * sizeof *c);
  if (!c) return *fail = true, NULL;
  memcpy(c, a, n * k * sizeof *c);
  return c;
}

float *kiln__unit_normals(const float *nrm, size_t ntris) {
  bool fail = false;
  float *u = copy_floats(nrm, ntris, 9, &fail);
  /* unit normals, as a baked copy's are before its normal matrix: the shader then need only
   * renormalise each vertex's where a placement does not keep lengths (layout.h) */
  for (size_t v = 0; u && v < 3 * ntris; v++) normalize3(u + 3 * v);
  return u;
}

/* q's per-triangle arrays: copies of m's (unit normals), owned by q. KILN_ENOMEM (q then owns
 * what was copied). */
static int copy_mesh_arrays(kiln__shared_mesh *q, const kiln__mesh *m) {
  size_t n = m->ntris;
  bool fail = false;
  q->pos = copy_floats(m->pos, n, 9, &fail);
  q->uv = copy_floats(m->uv, n, 6, &fail), q->col = copy_floats(m->col, n, 9, &fail);
  q->tan = copy_floats(m->tan, n, 12, &fail);
  if (m->nrm && !(q->nrm = kiln__unit_normals(m->nrm, n))) fail = true;
  uint32_t *slot = malloc((n ? n : 1) * sizeof *slot), *group = malloc((n ? n : 1) * sizeof *group);
  if (slot) memcpy(slot, m->tri_mat, n * sizeof *slot);
  if (group) memcpy(group, m->tri_group, n * sizeof *group);
  q->tri_slot = slot, q->tri_group = group;
  return fail || !slot || !group ? KILN_ENOMEM : 0;
}

int kiln__sb_shared_mesh(kiln__scene_builder *b, const kiln__mesh *m, kiln__asset_cache *cache,
                         const uint32_t *mats, const uint32_t *obj_of_group, uint32_t *out) {
  kiln__scene *s = &b->s;
  if (grow((void **)&s->meshes, &b->mesh_cap, s->nmeshes + 1, sizeof *s->meshes))
    return KILN_ENOMEM;
  kiln__shared_mesh *q = &s->meshes[s->nmeshes];
  memset(q, 0, sizeof *q);
  q->ntris = m->ntris, q->ngroups = m->ngroups, q->nslots = m->nmat_names + 1;
  q->slot_material = malloc(q->nslots * sizeof *q->slot_material);
  q->group_object = malloc((q->ngroups ? q->ngroups : 1) * sizeof *q->group_object);
  int rc = q->slot_material && q->group_object ? 0 : KILN_ENOMEM;
  if (!rc && cache) { /* the cache's arrays, borrowed: s->assets keeps them */
    assert(s->assets == cache);
    const float *nrm;
    if (!(rc = kiln__asset_cache_unit_normals(cache, m, &nrm))) {
      q->source = m;
      q->pos = m->pos, q->nrm = nrm, q->uv = m->uv, q->col = m->col, q->tan = m->tan;
      q->tri_slot = m->tri_mat, q->tri_group = m->tri_group;
    }
  } else if (!rc) {
    rc = copy_mesh_arrays(q, m);
  }
  if (rc) {
    kiln__shared_mesh_free(q);
    return rc;
  }
  memcpy(q->slot_material, mats, q->nslots * sizeof *mats);
  memcpy(q->group_object, obj_of_group, q->ngroups * sizeof *obj_of_group);
  *out = (uint32_t)s->nmeshes++;
  return 0;
}

int kiln__sb_placement(kiln__scene_builder *b, uint32_t mesh, uint32_t first_instance) {
  kiln__scene *s = &b->s;
  if (grow((void **)&s->placements, &b->placement_cap, s->nplacements + 1, sizeof *s->placements))
    return KILN_ENOMEM;
  s->placements[s->nplacements++] = (kiln__placement){mesh, first_instance};
  return 0;
}

int kiln__sb_quad(kiln__scene_builder *b, const float p[3], const float u[3], const float v[3],
                  const kiln__xform *x, uint32_t mat, uint32_t obj, uint32_t inst) {
  float c[4][3];
  for (int i = 0; i < 3; i++) {
    c[0][i] = p[i], c[1][i] = p[i] + u[i], c[2][i] = p[i] + u[i] + v[i], c[3][i] = p[i] + v[i];
  }
  const float quv[4][2] = {{0, 0}, {1, 0}, {1, 1}, {0, 1}};
  const int tri[2][3] = {{0, 1, 2}, {0, 2, 3}};
  double nm[3][3];
  normal_matrix(x, nm);
  bool flip = kiln__xform_det3(x) < 0;
  for (int t = 0; t < 2; t++) {
    float tp[9], tuv[6];
    for (int k = 0; k < 3; k++) {
      memcpy(tp + 3 * k, c[tri[t][k]], 3 * sizeof(float));
      memcpy(tuv + 2 * k, quv[tri[t][k]], 2 * sizeof(float));
    }
    int rc = xform_tri(b, x, nm, flip, tp, NULL, tuv, NULL, NULL, mat, obj, inst);
    if (rc) return rc;
  }
  return 0;
}

int kiln__sb_box(kiln__scene_builder *b, const float lo[3], const float hi[3], const kiln__xform *x,
                 uint32_t mat, uint32_t obj, uint32_t inst) {
  const float dx = hi[0] - lo[0], dy = hi[1] - lo[1], dz = hi[2] - lo[2];
  /* Each face: a corner and two edges with cross(u, v) pointing out of the box. */
  const float faces[6][3][3] = {
      {{lo[0], lo[1], lo[2]}, {0, dy, 0}, {dx, 0, 0}}, /* -z */
      {{lo[0], lo[1], hi[2]}, {dx, 0, 0}, {0, dy, 0}}, /* +z */
      {{lo[0], lo[1], lo[2]}, {0, 0, dz}, {0, dy, 0}}, /* -x */
      {{hi[0], lo[1], lo[2]}, {0, dy, 0}, {0, 0, dz}}, /* +x */
      {{lo[0], lo[1], lo[2]}, {dx, 0, 0}, {0, 0, dz}}, /* -y */
      {{lo[0], hi[1], lo[2]}, {0, 0, dz}, {dx, 0, 0}}, /* +y */
  };
  for (int f = 0; f < 6; f++) {
    int rc = kiln__sb_quad(b, faces[f][0], faces[f][1], faces[f][2], x, mat, obj, inst);
    if (rc) return rc;
  }
  return 0;
}

int kiln__sb_sphere(kiln__scene_builder *b, const float c[3], float r, uint32_t mat, uint32_t obj,
                    uint32_t inst) {
  kiln__scene *s = &b->s;
  if (!isfinite(c[0]) || !isfinite(c[1]) || !isfinite(c[2]) || !isfinite(r)) return KILN_EINVAL;
  if (grow((void **)&s->spheres, &b->sphere_cap, s->nspheres + 1, sizeof *s->spheres))
    return KILN_ENOMEM;
  kiln__sphere *sp = &s->spheres[s->nspheres++];
  memcpy(sp->center, c, sizeof sp->center);
  sp->radius = r, sp->material = mat, sp->object_id = obj, sp->instance_id = inst;
  return 0;
}

int kiln__sb_material(kiln__scene_builder *b, const kiln__material *mat, uint32_t *out) {
  kiln__scene *s = &b->s;
  if (grow((void **)&s->materials, &b->mat_cap, s->nmaterials + 1, sizeof *s->materials))
    return KILN_ENOMEM;
  *out = (uint32_t)s->nmaterials;
  s->materials[s->nmaterials++] = *mat;
  return 0;
}

int kiln__sb_texture(kiln__scene_builder *b, kiln__texture *t, uint32_t *out) {
  kiln__scene *s = &b->s;
  if (grow((void **)&s->textures, &b->tex_cap, s->ntextures + 1, sizeof *s->textures))
    return KILN_ENOMEM;
  *out = (uint32_t)s->ntextures;
  s->textures[s->ntextures++] = *t;
  memset(t, 0, sizeof *t);
  return 0;
}

int kiln__sb_object(kiln__scene_builder *b, const char *name, uint32_t *out) {
  kiln__scene *s = &b->s;
  if (grow((void **)&s->object_names, &b->obj_cap, s->nobjects + 1, sizeof *s->object_names))
    return KILN_ENOMEM;
  size_t n = strlen(name);
  char *c = malloc(n + 1);
  if (!c) return KILN_ENOMEM;
  memcpy(c, name, n + 1);
  s->object_names[s->nobjects++] = c;
  *out = (uint32_t)s->nobjects;
  return 0;
}

int kiln__sb_instance(kiln__scene_builder *b, uint32_t inst, uint32_t obj, const kiln__xform *x,
                      const float lo[3], const float hi[3]) {
  kiln__scene *s = &b->s;
  if (inst == 0) return KILN_EINVAL;
  size_t n = s->ninstances > inst ? s->ninstances : inst;
  if (grow((void **)&s->instances, &b->inst_cap, n, sizeof *s->instances)) return KILN_ENOMEM;
  /* ids are handed out in order, so the gap (if any) is empty: zero it rather than leave garbage */
  if (inst > s->ninstances)
    memset(s->instances + s->ninstances, 0, (inst - s->ninstances) * sizeof *s->instances);
  kiln__instance *in = &s->instances[inst - 1];
  in->object_id = obj;
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++) in->xform[4 * i + j] = (float)x->m[i][j];
  memcpy(in->bbox_min, lo, sizeof in->bbox_min), memcpy(in->bbox_max, hi, sizeof in->bbox_max);
  s->ninstances = n;
  return 0;
}

int kiln__sb_plight(kiln__scene_builder *b, const kiln__plight *l) {
  kiln__scene *s = &b->s;
  if (grow((void **)&s->plights, &b->plight_cap, s->nplights + 1, sizeof *s->plights))
    return KILN_ENOMEM;
  s->plights[s->nplights++] = *l;
  return 0;
}

int kiln__sb_warn(kiln__scene_builder *b, const char *fmt, ...) {
  char text[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  kiln__scene *s = &b->s;
  for (size_t i = 0; i < s->nwarnings; i++)
    if (strcmp(s->warnings[i], text) == 0) return 0;
  if (grow((void **)&s->warnings, &b->warn_cap, s->nwarnings + 1, sizeof *s->warnings))
    return KILN_ENOMEM;
  size_t n = strlen(text) + 1;
  char *c = malloc(n);
  if (!c) return KILN_ENOMEM;
  memcpy(c, text, n);
  s->warnings[s->nwarnings++] = c;
  return 0;
}

void kiln__sb_finish(kiln__scene_builder *b) {
  kiln__scene *s = &b->s;
  if (!b->any_nrm) free(s->nrm), s->nrm = NULL;
  if (!b->any_uv) free(s->uv), s->uv = NULL;
  if (s->ntris == 0) {
    free(s->pos), free(s->nrm), free(s->uv), free(s->col), free(s->tan);
    free(s->tri_material), free(s->tri_object), free(s->tri_instance);
    s->pos = s->nrm = s->uv = s->col = s->tan = NULL;
    s->tri_material = s->tri_object = s->tri_instance = NULL;
  }
}
