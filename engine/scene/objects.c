/* objects.c: the `objects` and `lights` of a JSON scene (docs/SCENE.md); glTF objects go to
 * gltf.cpp. Mesh files are read
 * once each (a cache keyed by path), all at once on a pool when kiln_scene_load_pool gives one, and
 * their errors are reported in scene order whatever order they were read in. Primitives and quad
 * lights go to the builder (build.c) with their transforms and instances. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scene_internal.h"

/* ---- objects ------------------------------------------------------------------------------------- */

/* Scene materials for mesh m: mats[k] for m's mat_names[k], mats[nmat_names] for faces without a
 * usemtl. The object's "material" (override) wins; then a material of that name in 'materials';
 * then the MTL definition. */
static int mesh_materials(kiln__sj_ctx *c, const kiln__mesh *m, const kiln__mesh_facts *f,
                          bool has_override, uint32_t override, const char *file, uint32_t *mats) {
  bool needs_none = f->used[m->nmat_names];
  if (has_override) {
    for (size_t k = 0; k <= m->nmat_names; k++) mats[k] = override;
    return 0;
  }
  if (needs_none)
    return kiln__sj_file_fail(c, KILN_EPARSE, file, 0,
                              "faces without a material (no usemtl): give the object a 'material'");
  mats[m->nmat_names] = 0;
  for (size_t k = 0; k < m->nmat_names; k++) {
    const char *name = m->mat_names[k];
    const kiln__sj_named_mat *nm = kiln__sj_find_material(c, name);
    if (nm) {
      mats[k] = nm->index;
      continue;
    }
    const kiln__mtl *d = NULL;
    for (size_t j = 0; j < m->nmtls && !d; j++)
      if (strcmp(m->mtls[j].name, name) == 0) d = &m->mtls[j];
    char msg[300];
    if (!d) {
      snprintf(msg, sizeof msg,
               "usemtl '%.100s' is defined neither in an MTL file nor in 'materials'", name);
      return kiln__sj_file_fail(c, KILN_EPARSE, file, 0, msg);
    }
    kiln__material mt = {.type = KILN__MAT_DIFFUSE, .texture = -1, .roughness = 0, .ior = 1.5f};
    bool emits = d->ke[0] > 0 || d->ke[1] > 0 || d->ke[2] > 0;
    for (int i = 0; i < 3; i++) {
      if (!(d->kd[i] >= 0 && d->kd[i] <= 1) || !(d->ke[i] >= 0)) {
        snprintf(msg, sizeof msg, "MTL material '%.100s': Kd must be in [0, 1] and Ke >= 0", name);
        return kiln__sj_file_fail(c, KILN_EPARSE, file, 0, msg);
      }
      mt.albedo[i] = d->kd[i], mt.emission[i] = d->ke[i];
    }
    for (size_t w = 0; w < d->nwarnings; w++)
      if (kiln__sb_warn(&c->ld->b, "%s", d->warnings[w])) return kiln__sj_nomem(c);
    const char *map_kd = d->maps[KILN__MTL_MAP_KD].path;
    int rc;
    if (kiln__mtl_is_principled(d)) {
      if ((rc = kiln__sj_mtl_principled(c, d, &mt))) return rc;
    } else {
      if (emits) mt.type = KILN__MAT_EMISSIVE;
      if (map_kd && !emits && (rc = kiln__sj_texture(c, "", map_kd, false, &mt.texture))) return rc;
    }
    size_t n = strlen(name);
    if (!(mt.name = malloc(n + 1))) return kiln__sj_nomem(c);
    memcpy(mt.name, name, n + 1);
    if (kiln__sb_material(&c->ld->b, &mt, &mats[k])) return free(mt.name), kiln__sj_nomem(c);
  }
  return 0;
}

static bool ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  if (a < b) return false;
  for (size_t i = 0; i < b; i++) {
    char x = s[a - b + i], y = suffix[i];
    if (x >= 'A' && x <= 'Z') x = (char)(x - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

static const char *basename_of(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

/* A builder failure (build.c): ENOMEM, or KILN_EINVAL for geometry that a transform took out
 * of float range; reported at the current object. */
static int build_fail(kiln__sj_ctx *c, int rc) {
  if (rc == KILN_ENOMEM) return kiln__sj_nomem(c);
  return kiln__sj_fail(c, "a transformed vertex or sphere is not finite: the values are too large");
}

/* ---- mesh files: loaded once each, in parallel when a pool is given ------------------------- */

static int load_entry(void *arg, void **result) {
  kiln__sj_mesh_entry *e = arg;
  const kiln__mesh *m;
  if (e->ld->cache) { /* the cache's mesh: a shared mesh borrows its arrays, others copy them */
    if (!(e->rc = kiln__asset_cache_mesh(e->ld->cache, e->path, e->is_obj, &m, &e->err)))
      e->cached = m, e->borrowed = true;
  } else {
    e->rc = e->is_obj ? kiln__obj_load(e->path, &e->mesh, &e->err)
                      : kiln__ply_load(e->path, &e->mesh, &e->err);
  }
  e->loaded = true;
  if (result) *result = NULL;
  return 0; /* failures are reported in scene order by add_mesh, not by the map */
}

/* The entry of file (relative to the scene), added unloaded if new; NULL on ENOMEM. */
static kiln__sj_mesh_entry *mesh_lookup(kiln__sj_ctx *c, const char *file) {
  char *path = kiln__sj_scene_path(c, file);
  if (!path) return NULL;
  for (size_t i = 0; i < c->ld->nmeshes; i++)
    if (strcmp(c->ld->meshes[i].path, path) == 0) return free(path), &c->ld->meshes[i];
  kiln__sj_mesh_entry *a = realloc(c->ld->meshes, (c->ld->nmeshes + 1) * sizeof *a);
  if (!a) return free(path), NULL;
  c->ld->meshes = a;
  kiln__sj_mesh_entry *e = &a[c->ld->nmeshes++];
  memset(e, 0, sizeof *e);
  e->path = path, e->is_obj = ends_with(file, ".obj"), e->ld = c->ld;
  return e;
}

/* With a pool and several mesh files: loads them all at once before the objects are read. Entries
 * are only created for well-formed mesh objects; anything else is left for add_mesh to report. */
int kiln__sj_preload_meshes(kiln__sj_ctx *c, const cJSON *root) {
  const cJSON *objs = cJSON_GetObjectItemCaseSensitive(root, "objects");
  if (!c->ld->pool || !cJSON_IsArray(objs)) return 0;
  for (const cJSON *o = objs->child; o; o = o->next) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, "file");
    if (!cJSON_IsString(t) || strcmp(t->valuestring, "mesh") != 0 || !cJSON_IsString(f) ||
        (!ends_with(f->valuestring, ".obj") && !ends_with(f->valuestring, ".ply")))
      continue;
    if (!mesh_lookup(c, f->valuestring)) return kiln__sj_nomem(c);
  }
  if (c->ld->nmeshes < 2) return 0;
  void **args = malloc(c->ld->nmeshes * sizeof *args);
  if (!args) return kiln__sj_nomem(c);
  for (size_t i = 0; i < c->ld->nmeshes; i++) args[i] = &c->ld->meshes[i];
  /* if the map itself fails (pool shut down, ENOMEM), the entries it did not load are loaded by
   * add_mesh in this thread */
  (void)kiln_map(c->ld->pool, load_entry, args, c->ld->nmeshes, 1, -1, NULL, NULL);
  free(args);
  return 0;
}

int kiln__mesh_facts_make(const kiln__mesh *m, kiln__mesh_facts *f) {
  memset(f, 0, sizeof *f);
  f->box = malloc((m->ngroups ? m->ngroups : 1) * sizeof *f->box);
  f->used = calloc(m->nmat_names + 1, sizeof *f->used);
  if (!f->box || !f->used) {
    kiln__mesh_facts_free(f);
    return KILN_ENOMEM;
  }
  for (size_t g = 0; g < m->ngroups; g++)
    for (int i = 0; i < 3; i++) f->box[g][0][i] = INFINITY, f->box[g][1][i] = -INFINITY;
  for (size_t t = 0; t < m->ntris; t++) {
    f->used[m->tri_mat[t] == UINT32_MAX ? m->nmat_names : m->tri_mat[t]] = true;
    float(*bx)[3] = f->box[m->tri_group[t]];
    for (int k = 0; k < 9; k++) {
      float v = m->pos[9 * t + k];
      if (v < bx[0][k % 3]) bx[0][k % 3] = v;
      if (v > bx[1][k % 3]) bx[1][k % 3] = v;
    }
  }
  for (size_t g = 0; g < m->ngroups; g++)
    if (f->box[g][0][0] > f->box[g][1][0]) memset(f->box[g], 0, sizeof f->box[g]);
  return 0;
}

void kiln__mesh_facts_free(kiln__mesh_facts *f) {
  free(f->box), free(f->used);
  memset(f, 0, sizeof *f);
}

/* Whether a mesh object is kept once in object space and placed by its transforms xs (nx of
 * them) rather than copied into the world per transform: the one rule for which geometry the
 * scene shares (scene_data.h). want is the object's "share": -1 absent, 0 false, 1 true. Absent,
 * two or more transforms share; true shares one too, so that a frame that moves the mesh (a job's
 * override) builds a top level over its placement instead of a whole BVH and packs and uploads
 * none of its triangles; false keeps copies. Placed once, sharing is asked for, not assumed: a
 * placement costs render time (a ray walks the flat tree, then the top level and the mesh's tree;
 * docs/PERFORMANCE.md, "A large mesh placed once"), and a scene with a placement leaves the
 * small-scene paths (the scene in shared memory or a uniform buffer, pack.c). Each transform
 * invertible and taking the mesh's box (box: ngroups group boxes) to finite coordinates; and no
 * triangle whose material emits (light sampling picks world-space emitter triangles) or has a
 * normal map (the shader builds tangent frames from world-space triangles): such a mesh is copied
 * whatever "share" says, so that an override may give a shared mesh such a material.
 * These two exclusions also keep two shader paths out of reach: bsdf.glsl's surf_tangent and
 * lights.glsl's emitter_pdf take a primitive index >= g.ntris for a sphere, and a shared mesh's
 * triangles sit at those indices in TRIS. Letting emitters or normal maps be shared needs both to
 * test the hit's placement (Hit.pl) first, and tangents turned into the world. */
static bool share_mesh(const kiln__scene *s, const kiln__mesh *m, const uint32_t *mats,
                       const kiln__mesh_facts *f, const kiln__xform *xs, size_t nx, int want) {
  if (nx == 0 || m->ntris == 0 || want == 0 || (nx < 2 && want != 1)) return false;
  const float(*box)[2][3] = (const float(*)[2][3])f->box;
  for (size_t k = 0; k <= m->nmat_names; k++) { /* the materials the triangles use */
    if (!f->used[k]) continue;
    const kiln__material *q = &s->materials[mats[k]];
    bool emits = q->emission[0] > 0 || q->emission[1] > 0 || q->emission[2] > 0;
    if (q->type == KILN__MAT_EMISSIVE || (q->type == KILN__MAT_PRINCIPLED && emits) ||
        (q->type == KILN__MAT_PRINCIPLED && q->normal_texture >= 0))
      return false;
  }
  for (size_t k = 0; k < nx; k++) {
    double det = kiln__xform_det3(&xs[k]);
    if (!(fabs(det) > 1e-30) || !isfinite(det)) return false;
    for (size_t g = 0; g < m->ngroups; g++)
      for (int c = 0; c < 8; c++) {
        float p[3], w[3];
        for (int i = 0; i < 3; i++) p[i] = box[g][c >> i & 1][i];
        kiln__xform_point(&xs[k], p, w);
        if (!isfinite(w[0]) || !isfinite(w[1]) || !isfinite(w[2])) return false;
      }
  }
  return true;
}

/* A mesh object: one scene object per group of the file (OBJ `o`), each instanced. */
static int add_mesh(kiln__sj_ctx *c, const cJSON *obj, const char *name, const kiln__xform *xs,
                    size_t nx) {
  const char *file;
  int rc = kiln__sj_string(c, obj, "file", NULL, &file);
  if (rc) return rc;
  const cJSON *sh = cJSON_GetObjectItemCaseSensitive(obj, "share");
  if (sh && !cJSON_IsBool(sh)) return kiln__sj_fail_at(c, "share", "share must be true or false");
  int want = sh ? cJSON_IsTrue(sh) : -1;
  bool has_mat;
  uint32_t mat = 0;
  if ((rc = kiln__sj_object_material(c, obj, name ? name : basename_of(file), false, &has_mat,
                                     &mat)))
    return rc;
  kiln__sj_push_key(c, "file");
  bool obj_fmt = ends_with(file, ".obj"), ply_fmt = ends_with(file, ".ply");
  if (!obj_fmt && !ply_fmt)
    return kiln__sj_fail(c, "mesh file '%s' must end in .obj or .ply", file);
  kiln__sj_mesh_entry *me = mesh_lookup(c, file);
  if (!me) return kiln__sj_nomem(c);
  if (!me->loaded) load_entry(me, NULL);
  if (me->rc)
    return kiln__sj_file_fail(c, me->rc, me->err.file[0] ? me->err.file : me->path, me->err.line,
                              me->err.message);
  const kiln__mesh *mp = me->borrowed ? me->cached : &me->mesh;
  const char *path = me->path;
  /* the file's boxes and materials used: the cache's (made once per file), else made here */
  kiln__mesh_facts own = {0};
  const kiln__mesh_facts *facts = &own;
  rc = me->borrowed ? kiln__asset_cache_mesh_facts(c->ld->cache, mp, &facts)
                    : kiln__mesh_facts_make(mp, &own);
  if (rc) return kiln__sj_nomem(c);
  uint32_t *mats = malloc((mp->nmat_names + 1) * sizeof *mats);
  uint32_t *objs = malloc(mp->ngroups * sizeof *objs), *insts = malloc(mp->ngroups * sizeof *insts);
  rc = (!mats || !objs || !insts) ? kiln__sj_nomem(c)
                                  : mesh_materials(c, mp, facts, has_mat, mat, path, mats);
  for (size_t g = 0; !rc && g < mp->ngroups; g++) {
    char oname[512];
    const char *gname = mp->groups[g][0] ? mp->groups[g] : basename_of(file);
    if (mp->ngroups == 1 && name) snprintf(oname, sizeof oname, "%s", name);
    else if (name) snprintf(oname, sizeof oname, "%s.%s", name, gname);
    else snprintf(oname, sizeof oname, "%s", gname);
    if (kiln__sb_object(&c->ld->b, oname, &objs[g])) rc = kiln__sj_nomem(c);
  }
  const float(*box)[2][3] = (const float(*)[2][3])facts->box;
  bool share = !rc && share_mesh(&c->ld->b.s, mp, mats, facts, xs, nx, want);
  uint32_t mesh = 0;
  if (share &&
      kiln__sb_shared_mesh(&c->ld->b, mp, me->borrowed ? c->ld->cache : NULL, mats, objs, &mesh))
    rc = kiln__sj_nomem(c);
  for (size_t k = 0; !rc && k < nx; k++) {
    for (size_t g = 0; g < mp->ngroups; g++) insts[g] = c->ld->b.next_instance++;
    for (size_t g = 0; g < mp->ngroups && !rc; g++)
      if (kiln__sb_instance(&c->ld->b, insts[g], objs[g], &xs[k], box[g][0], box[g][1]))
        rc = kiln__sj_nomem(c);
    if (!rc && share && kiln__sb_placement(&c->ld->b, mesh, insts[0])) rc = kiln__sj_nomem(c);
    if (!rc && !share && (rc = kiln__sb_mesh(&c->ld->b, mp, &xs[k], mats, objs, insts)))
      rc = build_fail(c, rc);
  }
  if (!rc) kiln__sj_pop(c);
  if (!rc && mp->ngroups) rc = kiln__sj_object_category(c, obj, objs[0], objs[mp->ngroups - 1]);
  free(mats), free(objs), free(insts);
  kiln__mesh_facts_free(&own);
  return rc;
}

/* The uniform scale of x's 3x3 when it is a similarity (rotation * uniform scale), else 0. */
static double similarity_scale(const kiln__xform *x) {
  double col[3];
  for (int j = 0; j < 3; j++)
    col[j] = sqrt(x->m[0][j] * x->m[0][j] + x->m[1][j] * x->m[1][j] + x->m[2][j] * x->m[2][j]);
  for (int j = 0; j < 3; j++) {
    if (fabs(col[j] - col[0]) > 1e-5 * col[0]) return 0;
    int k = (j + 1) % 3;
    double d = x->m[0][j] * x->m[0][k] + x->m[1][j] * x->m[1][k] + x->m[2][j] * x->m[2][k];
    if (fabs(d) > 1e-5 * col[0] * col[0]) return 0;
  }
  return col[0];
}

/* A primitive's object-space box, from its own numbers: sphere (type 1) centre a, radius r; quad
 * (2) corner a, edges u, v; box (3) a..u. */
static void primitive_box(int type, const float a[3], const float u[3], const float v[3], float r,
                          float lo[3], float hi[3]) {
  for (int i = 0; i < 3; i++) {
    if (type == 1) {
      lo[i] = a[i] - r, hi[i] = a[i] + r;
    } else if (type == 2) {
      float p[4] = {a[i], a[i] + u[i], a[i] + v[i], a[i] + u[i] + v[i]};
      lo[i] = hi[i] = p[0];
      for (int k = 1; k < 4; k++) lo[i] = fminf(lo[i], p[k]), hi[i] = fmaxf(hi[i], p[k]);
    } else {
      lo[i] = a[i], hi[i] = u[i];
    }
  }
}

static int add_primitive(kiln__sj_ctx *c, const cJSON *obj, int type, const char *name,
                         const kiln__xform *xs, size_t nx) {
  static const char *const tnames[] = {"mesh", "sphere", "quad", "box"};
  static const float zero[3] = {0, 0, 0};
  bool has_mat;
  uint32_t mat, id;
  float a[3], u[3] = {0, 0, 0}, v[3] = {0, 0, 0};
  double r = 0;
  int rc = kiln__sj_object_material(c, obj, name ? name : tnames[type], true, &has_mat, &mat);
  if (rc) return rc;
  if (type == 1) {
    if ((rc = kiln__sj_vec3(c, obj, "center", zero, -1e30, 1e30, a)) ||
        (rc = kiln__sj_num(c, obj, "radius", true, 0, -HUGE_VAL, 1e30, &r)))
      return rc;
    if (r <= 0) return kiln__sj_fail_at(c, "radius", "radius must be > 0, not %g", r);
  } else if (type == 2) {
    if ((rc = kiln__sj_vec3(c, obj, "corner", NULL, -1e30, 1e30, a)) ||
        (rc = kiln__sj_vec3(c, obj, "u", NULL, -1e30, 1e30, u)) ||
        (rc = kiln__sj_vec3(c, obj, "v", NULL, -1e30, 1e30, v)))
      return rc;
    float n[3];
    kiln__cross3(u, v, n);
    if (kiln__len3(n) < 1e-12)
      return kiln__sj_fail(c, "quad has zero area (u and v are parallel or zero)");
  } else {
    if ((rc = kiln__sj_vec3(c, obj, "min", NULL, -1e30, 1e30, a)) ||
        (rc = kiln__sj_vec3(c, obj, "max", NULL, -1e30, 1e30, u)))
      return rc;
    for (int i = 0; i < 3; i++)
      if (!(u[i] > a[i]))
        return kiln__sj_fail_at(c, "max", "box size must be positive: max[%d] <= min[%d]", i, i);
  }
  if (kiln__sb_object(&c->ld->b, name ? name : tnames[type], &id)) return kiln__sj_nomem(c);
  float lo[3], hi[3];
  primitive_box(type, a, u, v, (float)r, lo, hi);
  for (size_t k = 0; k < nx; k++) {
    uint32_t inst = c->ld->b.next_instance++;
    if (kiln__sb_instance(&c->ld->b, inst, id, &xs[k], lo, hi)) return kiln__sj_nomem(c);
    if (type == 1) {
      double s = similarity_scale(&xs[k]);
      if (s <= 0)
        return kiln__sj_fail(c,
                             "a sphere's transform may rotate, translate and scale uniformly only");
      float wc[3];
      kiln__xform_point(&xs[k], a, wc);
      rc = kiln__sb_sphere(&c->ld->b, wc, (float)(r * s), mat, id, inst);
    } else if (type == 2) {
      rc = kiln__sb_quad(&c->ld->b, a, u, v, &xs[k], mat, id, inst);
    } else {
      rc = kiln__sb_box(&c->ld->b, a, u, &xs[k], mat, id, inst);
    }
    if (rc) return build_fail(c, rc);
  }
  return kiln__sj_object_category(c, obj, id, id);
}

/* A glTF object: the glTF's scene (its mesh nodes, each an object; its lights with "lights"),
 * placed by each of the object's transforms. Errors inside the file are reported at that file
 * (line and column in a .gltf), with this object's "file" as the path and the glTF's own JSON
 * path leading the message. */
static int add_gltf(kiln__sj_ctx *c, const cJSON *obj, const char *name, const kiln__xform *xs,
                    size_t nx) {
  const char *file;
  int rc = kiln__sj_string(c, obj, "file", NULL, &file);
  if (rc) return rc;
  kiln__gltf_opts o = {.xs = xs, .nx = nx, .name = name};
  const cJSON *l = cJSON_GetObjectItemCaseSensitive(obj, "lights");
  if (l && !cJSON_IsBool(l)) return kiln__sj_fail_at(c, "lights", "lights must be true or false");
  o.lights = cJSON_IsTrue(l);
  if ((rc = kiln__sj_object_material(c, obj, name ? name : basename_of(file), false,
                                     &o.has_material, &o.material)))
    return rc;
  kiln__sj_push_key(c, "file");
  if (!ends_with(file, ".gltf") && !ends_with(file, ".glb"))
    return kiln__sj_fail(c, "glTF file '%s' must end in .gltf or .glb", file);
  char *path = kiln__sj_scene_path(c, file);
  if (!path) return kiln__sj_nomem(c);
  size_t before = c->ld->b.s.nobjects;
  uint32_t first, n;
  kiln__gltf_error ge;
  rc = kiln__gltf_add(&c->ld->b, path, &o, &first, &n, &ge);
  free(path);
  if (rc) {
    char msg[600];
    snprintf(msg, sizeof msg, "%s%s%s", ge.path, ge.path[0] ? ": " : "", ge.message);
    kiln__sj_file_fail(c, rc, ge.file, ge.line, msg);
    c->err->column = ge.column;
    return rc;
  }
  kiln__sj_pop(c);
  size_t after = c->ld->b.s.nobjects;
  if (after > before) rc = kiln__sj_object_category(c, obj, (uint32_t)before + 1, (uint32_t)after);
  return rc;
}

int kiln__sj_parse_object(kiln__sj_ctx *c, const cJSON *obj) {
  static const char *const types[] = {"mesh", "sphere", "quad", "box", "gltf", NULL};
  static const char *const k_mesh[] = {"type",      "name",      "file",     "material",
                                       "transform", "instances", "share",    "category",
                                       "category_id", NULL};
  static const char *const k_sph[] = {"type",        "name",      "center",    "radius",
                                      "material",    "transform", "instances", "category",
                                      "category_id", NULL};
  static const char *const k_quad[] = {"type",     "name",        "corner",    "u",
                                       "v",        "material",    "transform", "instances",
                                       "category", "category_id", NULL};
  static const char *const k_box[] = {"type",        "name",      "min",       "max",
                                      "material",    "transform", "instances", "category",
                                      "category_id", NULL};
  static const char *const k_gltf[] = {"type",        "name",      "file",   "material",
                                       "transform",   "instances", "lights", "category",
                                       "category_id", NULL};
  static const char *const *const keys[] = {k_mesh, k_sph, k_quad, k_box, k_gltf};
  int type, rc;
  const char *name = NULL;
  if ((rc = kiln__sj_expect_object(c, obj, "an object")) ||
      (rc = kiln__sj_choice(c, obj, "type", NULL, types, &type)) ||
      (rc = kiln__sj_check_keys(c, obj, keys[type])))
    return rc;
  if (cJSON_GetObjectItemCaseSensitive(obj, "name") &&
      (rc = kiln__sj_string(c, obj, "name", NULL, &name)))
    return rc;
  kiln__xform *xs = NULL;
  size_t nx = 0;
  rc = kiln__sj_parse_instances(c, obj, &xs, &nx);
  if (!rc)
    rc = type == 0   ? add_mesh(c, obj, name, xs, nx)
         : type == 4 ? add_gltf(c, obj, name, xs, nx)
                     : add_primitive(c, obj, type, name, xs, nx);
  free(xs);
  return rc;
}

/* A quad area light: one-sided, emitting along cross(u, v); two emissive triangles. The other
 * types are punctual lights (plights.c). */
int kiln__sj_parse_light(kiln__sj_ctx *c, const cJSON *o) {
  static const char *const types[] = {"quad", "point", "spot", "sun", NULL};
  static const char *const keys[] = {"type",     "name",      "corner",   "u",           "v",
                                     "radiance", "transform", "category", "category_id", NULL};
  int type, rc;
  float p[3], u[3], v[3], n[3];
  kiln__material m = {.type = KILN__MAT_EMISSIVE, .texture = -1, .ior = 1.5f};
  const char *name = "light";
  if ((rc = kiln__sj_expect_object(c, o, "a light")) ||
      (rc = kiln__sj_choice(c, o, "type", NULL, types, &type)))
    return rc;
  _Static_assert(KILN__LIGHT_POINT == 0 && KILN__LIGHT_SPOT == 1 && KILN__LIGHT_SUN == 2,
                 "types[1..3] are the punctual light types");
  if (type > 0) return kiln__sj_parse_plight(c, o, (kiln__light_type)(type - 1));
  if ((rc = kiln__sj_check_keys(c, o, keys)) ||
      (cJSON_GetObjectItemCaseSensitive(o, "name") &&
       (rc = kiln__sj_string(c, o, "name", NULL, &name))) ||
      (rc = kiln__sj_vec3(c, o, "corner", NULL, -1e30, 1e30, p)) ||
      (rc = kiln__sj_vec3(c, o, "u", NULL, -1e30, 1e30, u)) ||
      (rc = kiln__sj_vec3(c, o, "v", NULL, -1e30, 1e30, v)) ||
      (rc = kiln__sj_vec3(c, o, "radiance", NULL, 0, 1e9, m.emission)))
    return rc;
  kiln__cross3(u, v, n);
  if (kiln__len3(n) < 1e-12)
    return kiln__sj_fail(c, "light has zero area (u and v are parallel or zero)");
  if (m.emission[0] + m.emission[1] + m.emission[2] <= 0)
    return kiln__sj_fail_at(c, "radiance", "radiance is black: the light emits nothing");
  kiln__xform x;
  if ((rc = kiln__sj_member_xform(c, o, &x))) return rc;
  uint32_t mi, id;
  size_t len = strlen(name);
  if (!(m.name = malloc(len + 1))) return kiln__sj_nomem(c);
  memcpy(m.name, name, len + 1);
  if (kiln__sb_material(&c->ld->b, &m, &mi)) return free(m.name), kiln__sj_nomem(c);
  if (kiln__sb_object(&c->ld->b, name, &id)) return kiln__sj_nomem(c);
  uint32_t inst = c->ld->b.next_instance++;
  float lo[3], hi[3];
  primitive_box(2, p, u, v, 0, lo, hi);
  if (kiln__sb_instance(&c->ld->b, inst, id, &x, lo, hi)) return kiln__sj_nomem(c);
  if ((rc = kiln__sb_quad(&c->ld->b, p, u, v, &x, mi, id, inst))) return build_fail(c, rc);
  return kiln__sj_object_category(c, o, id, id);
}
