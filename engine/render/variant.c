/* variant.c: scene variants: a frame whose scene is the renderer's own with other materials,
 * lights, environment or object placements (a job's per-frame overrides), rendered by the
 * renderer made for the job's scene instead of a renderer of its own.
 *
 * The base is the scene as the renderer uploaded it: its BVH, its packed buffers and the
 * positions the BVH was built from (a copy of the triangles' and spheres' geometry, the shared
 * meshes' positions and the placements' transforms). A variant whose geometry is the base's bit
 * for bit (material, light colour or environment overrides) reuses the base BVH; one whose flat
 * geometry and shared meshes are the base's but whose placements differ (moved instances of
 * shared meshes) builds only a top level over its placements, on the base's other trees; any
 * other builds its own flat tree and top level, on the base's mesh trees when its meshes are the
 * base's, else all its trees. The variant is then packed (kiln__render_pack_reusing) but for
 * the buffers whose inputs are provably the base's, which it borrows from the base's pack instead
 * of writing and comparing them again: NODES and PRIMS when its trees and positions are the base's;
 * TRIS, ATTR and VATTR when, besides, its flat triangles' attributes are the base's and each shared
 * mesh is the base's (the same asset cache entry, kiln__shared_mesh.source, with the same
 * material and object tables); TEXINFO and TEXELS when its textures are the base's cache entries,
 * ENVDIST when its environment map is. Cache entries are immutable and never freed before the
 * cache, and the base holds a reference on its scene's cache, so the same pointer means the same
 * bytes. A frame that moves the placements of a cached mesh thus costs its top level, its INST
 * buffer and the O(flat triangles) comparisons, whatever the mesh's size. The variant's buffers
 * are exactly those of a renderer made for the variant alone, and renderer.c uploads only those
 * whose bytes differ from the base's (a borrowed one is the base's own: nothing to compare).
 *
 * Threads: the base is read-only after create; the counters are atomics (relaxed: statistics
 * for tests and benchmarks, ordered with nothing else). */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "render_internal.h"

/* A shared mesh of the base: what tells whether a variant's mesh is the same. */
typedef struct base_mesh {
  size_t ntris, nslots, ngroups;
  const void *source; /* the cache entry (s->assets keeps it), or NULL: pos is a copy */
  const float *pos;   /* the scene's (source) or a copy (malloc'd, owned) */
  uint32_t *slot_material, *group_object; /* copies (malloc'd, owned) */
} base_mesh;

struct kiln__variant_base {
  kiln__bvh bvh;
  kiln__render_buffers pack;
  struct kiln__asset_cache *assets; /* a reference: keeps the borrowed pointers below valid */
  size_t ntris, nspheres;
  /* copies of the flat triangles' arrays (malloc'd, owned; NULL where the scene's are) */
  float *pos, *nrm, *uv, *col, *tan;
  uint32_t *tri_material, *tri_object, *tri_instance;
  float *spheres; /* 4 floats per sphere: centre and radius (malloc'd, owned) */
  size_t nmeshes, nplacements;
  base_mesh *meshes; /* malloc'd, owned */
  float *placements; /* 13 floats per placement: its mesh (bits) and xform's 3x4 (malloc'd) */
  size_t ntextures;
  kiln__texture *textures; /* the scene's, shallow (malloc'd array; rgb compared, not read) */
  kiln__environment env;
  atomic_ullong variants, bvh_builds, top_builds, uploads, upload_bytes;
  atomic_ullong reused, mesh_tris_packed, texels_packed;
};

/* The spheres' centres and radii (what the BVH reads of them) into out (4 floats each). */
static void sphere_geometry(const kiln__scene *s, float *out) {
  for (size_t i = 0; i < s->nspheres; i++) {
    memcpy(out + 4 * i, s->spheres[i].center, 12);
    out[4 * i + 3] = s->spheres[i].radius;
  }
}

/* s's placements as the base keeps them (13 floats each) into out. */
static void placement_geometry(const kiln__scene *s, float *out) {
  for (size_t i = 0; i < s->nplacements; i++) {
    memcpy(out + 13 * i, &s->placements[i].mesh, 4);
    memcpy(out + 13 * i + 1, kiln__placement_xform(s, &s->placements[i]), 48);
  }
}

/* A malloc'd copy of n bytes of a (NULL for a NULL a; *fail set on ENOMEM). */
static void *dup_bytes(const void *a, size_t n, bool *fail) {
  if (!a) return NULL;
  void *c = malloc(n ? n : 1);
  if (!c) return *fail = true, NULL;
  return memcpy(c, a, n);
}

/* The base's copy of shared mesh q into *m; false on ENOMEM (*m then holds what was made). */
static bool keep_mesh(const kiln__shared_mesh *q, base_mesh *m) {
  bool fail = false;
  m->ntris = q->ntris, m->nslots = q->nslots, m->ngroups = q->ngroups, m->source = q->source;
  m->pos = q->source ? q->pos : dup_bytes(q->pos, q->ntris * 36, &fail);
  m->slot_material = dup_bytes(q->slot_material, q->nslots * 4, &fail);
  m->group_object = dup_bytes(q->group_object, q->ngroups * 4, &fail);
  return !fail;
}

/* Takes copies of s's flat triangles' arrays, spheres, meshes and placements; false on ENOMEM. */
static bool keep_scene(kiln__variant_base *b, const kiln__scene *s) {
  bool fail = false;
  size_t n = s->ntris;
  b->ntris = n, b->nspheres = s->nspheres;
  b->pos = dup_bytes(s->pos, n * 36, &fail), b->nrm = dup_bytes(s->nrm, n * 36, &fail);
  b->uv = dup_bytes(s->uv, n * 24, &fail), b->col = dup_bytes(s->col, n * 36, &fail);
  b->tan = dup_bytes(s->tan, n * 48, &fail);
  b->tri_material = dup_bytes(s->tri_material, n * 4, &fail);
  b->tri_object = dup_bytes(s->tri_object, n * 4, &fail);
  b->tri_instance = dup_bytes(s->tri_instance, n * 4, &fail);
  b->spheres = malloc(s->nspheres ? s->nspheres * 16 : 1);
  b->placements = malloc((s->nplacements + 1) * 52);
  b->meshes = calloc(s->nmeshes + 1, sizeof *b->meshes);
  b->textures = dup_bytes(s->textures, s->ntextures * sizeof *s->textures, &fail);
  if (fail || !b->spheres || !b->placements || !b->meshes) return false;
  b->nmeshes = s->nmeshes, b->nplacements = s->nplacements, b->ntextures = s->ntextures;
  b->env = s->env;
  for (size_t m = 0; m < s->nmeshes; m++)
    if (!keep_mesh(&s->meshes[m], &b->meshes[m])) return false;
  sphere_geometry(s, b->spheres);
  placement_geometry(s, b->placements);
  return true;
}

int kiln__variant_base_create(const kiln__scene *s, kiln__bvh *bvh, kiln__render_buffers *p,
                              kiln__variant_base **out) {
  *out = NULL;
  kiln__variant_base *b = calloc(1, sizeof *b);
  if (b) {
    b->bvh = *bvh, b->pack = *p;
    memset(bvh, 0, sizeof *bvh), memset(p, 0, sizeof *p);
    if (s->assets) b->assets = kiln__asset_cache_retain(s->assets);
  }
  if (!b || !keep_scene(b, s)) {
    kiln__variant_base_free(b);
    kiln__bvh_free(bvh);
    kiln__render_pack_free(p);
    return KILN_ENOMEM;
  }
  atomic_init(&b->variants, 0);
  atomic_init(&b->top_builds, 0);
  atomic_init(&b->bvh_builds, 0);
  atomic_init(&b->uploads, 0);
  atomic_init(&b->upload_bytes, 0);
  atomic_init(&b->reused, 0);
  atomic_init(&b->mesh_tris_packed, 0);
  atomic_init(&b->texels_packed, 0);
  *out = b;
  return 0;
}

void kiln__variant_base_free(kiln__variant_base *b) {
  if (!b) return;
  kiln__bvh_free(&b->bvh);
  kiln__render_pack_free(&b->pack);
  free(b->pos), free(b->nrm), free(b->uv), free(b->col), free(b->tan);
  free(b->tri_material), free(b->tri_object), free(b->tri_instance);
  free(b->spheres), free(b->placements), free(b->textures);
  for (size_t m = 0; b->meshes && m < b->nmeshes; m++) {
    if (!b->meshes[m].source) free((void *)b->meshes[m].pos);
    free(b->meshes[m].slot_material), free(b->meshes[m].group_object);
  }
  free(b->meshes);
  kiln__asset_cache_destroy(b->assets); /* last: the pointers into it are gone */
  free(b);
}

const kiln__render_buffers *kiln__variant_base_pack(const kiln__variant_base *b) {
  return &b->pack;
}

/* Whether arrays a and b (either NULL: absent) of n bytes hold the same. */
static bool same_array(const void *a, const void *b, size_t n) {
  if (!a || !b) return a == b;
  return a == b || memcmp(a, b, n) == 0;
}

/* Whether s's shared mesh q is the base's mesh m in every byte it packs: the same cache entry
 * (immutable, alive: the same pointer is the same bytes) and the same scene tables. */
static bool mesh_identical(const base_mesh *m, const kiln__shared_mesh *q) {
  return q->source && q->source == m->source && q->ntris == m->ntris && q->nslots == m->nslots &&
         q->ngroups == m->ngroups &&
         memcmp(q->slot_material, m->slot_material, m->nslots * 4) == 0 &&
         memcmp(q->group_object, m->group_object, m->ngroups * 4) == 0;
}

/* Whether s's shared meshes' positions are the base's, bit for bit (*identical: and every other
 * array of theirs, proven without reading them). */
static bool same_meshes(const kiln__variant_base *b, const kiln__scene *s, bool *identical) {
  *identical = s->nmeshes == b->nmeshes;
  if (s->nmeshes != b->nmeshes) return false;
  for (size_t m = 0; m < s->nmeshes; m++) {
    const base_mesh *bm = &b->meshes[m];
    const kiln__shared_mesh *q = &s->meshes[m];
    if (mesh_identical(bm, q)) continue;
    *identical = false;
    if (q->ntris != bm->ntris || !same_array(q->pos, bm->pos, bm->ntris * 36)) return false;
  }
  return true;
}

/* Whether s's placements (meshes and transforms) are the base's, bit for bit. */
static int same_placements(const kiln__variant_base *b, const kiln__scene *s, bool *same) {
  *same = false;
  if (s->nplacements != b->nplacements) return 0;
  float *g = malloc((s->nplacements + 1) * 52);
  if (!g) return KILN_ENOMEM;
  placement_geometry(s, g);
  *same = memcmp(g, b->placements, s->nplacements * 52) == 0;
  free(g);
  return 0;
}

/* Whether s's flat geometry (what the flat tree is built from) is the base's, bit for bit. */
static int same_geometry(const kiln__variant_base *b, const kiln__scene *s, bool *same) {
  *same = false;
  if (s->ntris != b->ntris || s->nspheres != b->nspheres) return 0;
  if (s->ntris && memcmp(s->pos, b->pos, s->ntris * 36) != 0) return 0;
  if (!s->nspheres) return *same = true, 0;
  float *g = malloc(s->nspheres * 16);
  if (!g) return KILN_ENOMEM;
  sphere_geometry(s, g);
  *same = memcmp(g, b->spheres, s->nspheres * 16) == 0;
  free(g);
  return 0;
}

/* Whether texture t of a variant is the base's u: the same cache entry's texels. */
static bool texture_identical(const kiln__texture *t, const kiln__texture *u) {
  return t->borrowed && u->borrowed && t->rgb == u->rgb && t->width == u->width &&
         t->height == u->height && t->srgb == u->srgb;
}

/* The buffers of variant s that are the base's byte for byte (kiln__render_pack_reusing's reuse
 * bits), same: its flat geometry and mesh positions are the base's (so are its trees), meshes:
 * its shared meshes are the base's entries. */
static uint32_t reuse_bits(const kiln__variant_base *b, const kiln__scene *s, bool same,
                           bool meshes) {
  uint32_t r = 0;
  size_t n = s->ntris;
  if (same && (s->nplacements > 0) == (b->nplacements > 0)) {
    r |= 1u << PT_BIND_NODES | 1u << PT_BIND_PRIMS;
    if (meshes && same_array(s->tri_material, b->tri_material, n * 4) &&
        same_array(s->tri_object, b->tri_object, n * 4) &&
        same_array(s->tri_instance, b->tri_instance, n * 4))
      r |= 1u << PT_BIND_TRIS;
    if (meshes && same_array(s->nrm, b->nrm, n * 36) && same_array(s->uv, b->uv, n * 24))
      r |= 1u << PT_BIND_ATTR;
    if (meshes && same_array(s->col, b->col, n * 36) && same_array(s->tan, b->tan, n * 48))
      r |= 1u << PT_BIND_VATTR;
  }
  bool tex = s->ntextures == b->ntextures;
  for (size_t i = 0; tex && i < s->ntextures; i++)
    tex = texture_identical(&s->textures[i], &b->textures[i]);
  if (tex) r |= 1u << PT_BIND_TEXINFO | 1u << PT_BIND_TEXELS;
  const kiln__environment *e = &s->env, *be = &b->env;
  if (e->type == KILN__ENV_MAP && be->type == KILN__ENV_MAP && e->texture >= 0 &&
      be->texture >= 0 && texture_identical(&s->textures[e->texture], &b->textures[be->texture]))
    r |= 1u << PT_BIND_ENVDIST;
  return r;
}

/* Packs s on BVH bvh, borrowing from the base what reuse_bits proves is its, and counts. */
static int pack_counted(kiln__variant_base *b, const kiln__scene *s, const kiln__bvh *bvh,
                        uint32_t reuse, kiln__render_buffers *out) {
  int rc = kiln__render_pack_reusing(s, bvh, &b->pack, reuse, out);
  if (rc) return rc;
  unsigned reused = 0;
  for (uint32_t x = out->borrowed; x; x &= x - 1) reused++;
  atomic_fetch_add_explicit(&b->reused, reused, memory_order_relaxed);
  atomic_fetch_add_explicit(&b->mesh_tris_packed, out->mesh_tris_packed, memory_order_relaxed);
  atomic_fetch_add_explicit(&b->texels_packed, out->texels_packed, memory_order_relaxed);
  return 0;
}

int kiln__variant_pack(kiln__variant_base *b, kiln_pool *pool, const kiln__scene *s,
                       kiln__render_buffers *out) {
  memset(out, 0, sizeof *out);
  bool same, same_pl = false, identical, meshes = same_meshes(b, s, &identical);
  int rc = same_geometry(b, s, &same);
  same = same && meshes;
  if (!rc && same) rc = same_placements(b, s, &same_pl);
  if (rc) return rc;
  atomic_fetch_add_explicit(&b->variants, 1, memory_order_relaxed);
  uint32_t reuse = reuse_bits(b, s, same, identical);
  if (same && same_pl) return pack_counted(b, s, &b->bvh, reuse, out);
  kiln__bvh bvh;
  if (same) { /* only placements moved: the base's trees under a new top level */
    atomic_fetch_add_explicit(&b->top_builds, 1, memory_order_relaxed);
    if ((rc = kiln__bvh_build_top(&b->bvh, s, &bvh))) return rc;
    rc = pack_counted(b, s, &bvh, reuse, out);
    kiln__bvh_free(&bvh);
    return rc;
  }
  atomic_fetch_add_explicit(&b->bvh_builds, 1, memory_order_relaxed);
  /* the flat geometry moved: its tree built again, the shared meshes' kept when they are the
   * base's (a scene without placements has none) */
  rc = meshes && b->nmeshes ? kiln__bvh_build_flat(pool, &b->bvh, s, &bvh)
                            : kiln__bvh_build(pool, s, &bvh);
  if (rc) return rc;
  rc = pack_counted(b, s, &bvh, reuse, out);
  kiln__bvh_free(&bvh);
  return rc;
}

void kiln__variant_base_count_upload(kiln__variant_base *b, size_t bytes) {
  atomic_fetch_add_explicit(&b->uploads, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&b->upload_bytes, bytes, memory_order_relaxed);
}

void kiln__variant_base_stats(kiln__variant_base *m, kiln__variant_stats *out) {
  out->variants = atomic_load_explicit(&m->variants, memory_order_relaxed);
  out->bvh_builds = atomic_load_explicit(&m->bvh_builds, memory_order_relaxed);
  out->top_builds = atomic_load_explicit(&m->top_builds, memory_order_relaxed);
  out->buffers_uploaded = atomic_load_explicit(&m->uploads, memory_order_relaxed);
  out->bytes_uploaded = atomic_load_explicit(&m->upload_bytes, memory_order_relaxed);
  out->buffers_reused = atomic_load_explicit(&m->reused, memory_order_relaxed);
  out->mesh_tris_packed = atomic_load_explicit(&m->mesh_tris_packed, memory_order_relaxed);
  out->texels_packed = atomic_load_explicit(&m->texels_packed, memory_order_relaxed);
}
