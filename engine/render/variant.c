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
 * base's, else all its trees. Either way the variant is packed whole by
 * kiln__render_pack, so its buffers are exactly those of a renderer made for the variant alone,
 * and renderer.c uploads only the buffers whose bytes differ from the base's.
 *
 * Threads: the base is read-only after create; the counters are atomics (relaxed: statistics
 * for tests and benchmarks, ordered with nothing else). */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "render_internal.h"

struct kiln__variant_base {
  kiln__bvh bvh;
  kiln__render_buffers pack;
  size_t ntris, nspheres;
  float *pos;     /* 9 floats per triangle, the base's (malloc'd, owned) */
  float *spheres; /* 4 floats per sphere: centre and radius (malloc'd, owned) */
  size_t nmeshes, *mesh_ntris, nplacements;
  float **mesh_pos;  /* each shared mesh's positions (malloc'd, owned) */
  float *placements; /* 13 floats per placement: its mesh (bits) and xform's 3x4 (malloc'd) */
  atomic_ullong variants, bvh_builds, top_builds, uploads, upload_bytes;
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

int kiln__variant_base_create(const kiln__scene *s, kiln__bvh *bvh, kiln__render_buffers *p,
                              kiln__variant_base **out) {
  *out = NULL;
  kiln__variant_base *b = calloc(1, sizeof *b);
  if (b) {
    b->bvh = *bvh, b->pack = *p;
    memset(bvh, 0, sizeof *bvh), memset(p, 0, sizeof *p);
    b->ntris = s->ntris, b->nspheres = s->nspheres;
    b->pos = malloc(s->ntris ? s->ntris * 36 : 1);
    b->spheres = malloc(s->nspheres ? s->nspheres * 16 : 1);
    b->nmeshes = s->nmeshes, b->nplacements = s->nplacements;
    b->mesh_ntris = calloc(s->nmeshes + 1, sizeof *b->mesh_ntris);
    b->mesh_pos = calloc(s->nmeshes + 1, sizeof *b->mesh_pos);
    b->placements = malloc((s->nplacements + 1) * 52);
  }
  bool fail = !b || !b->pos || !b->spheres || !b->mesh_ntris || !b->mesh_pos || !b->placements;
  for (size_t m = 0; !fail && m < s->nmeshes; m++) {
    b->mesh_ntris[m] = s->meshes[m].ntris;
    if (!(b->mesh_pos[m] = malloc(s->meshes[m].ntris * 36 + 1))) fail = true;
    else memcpy(b->mesh_pos[m], s->meshes[m].pos, s->meshes[m].ntris * 36);
  }
  if (fail) {
    kiln__variant_base_free(b);
    kiln__bvh_free(bvh);
    kiln__render_pack_free(p);
    return KILN_ENOMEM;
  }
  if (s->ntris) memcpy(b->pos, s->pos, s->ntris * 36);
  sphere_geometry(s, b->spheres);
  placement_geometry(s, b->placements);
  atomic_init(&b->variants, 0);
  atomic_init(&b->top_builds, 0);
  atomic_init(&b->bvh_builds, 0);
  atomic_init(&b->uploads, 0);
  atomic_init(&b->upload_bytes, 0);
  *out = b;
  return 0;
}

void kiln__variant_base_free(kiln__variant_base *b) {
  if (!b) return;
  kiln__bvh_free(&b->bvh);
  kiln__render_pack_free(&b->pack);
  free(b->pos), free(b->spheres);
  for (size_t m = 0; b->mesh_pos && m < b->nmeshes; m++) free(b->mesh_pos[m]);
  free(b->mesh_pos), free(b->mesh_ntris), free(b->placements);
  free(b);
}

const kiln__render_buffers *kiln__variant_base_pack(const kiln__variant_base *b) {
  return &b->pack;
}

/* Whether s's shared meshes' positions are the base's, bit for bit. */
static bool same_meshes(const kiln__variant_base *b, const kiln__scene *s) {
  if (s->nmeshes != b->nmeshes) return false;
  for (size_t m = 0; m < s->nmeshes; m++)
    if (s->meshes[m].ntris != b->mesh_ntris[m] ||
        memcmp(s->meshes[m].pos, b->mesh_pos[m], b->mesh_ntris[m] * 36) != 0)
      return false;
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

int kiln__variant_pack(kiln__variant_base *b, kiln_pool *pool, const kiln__scene *s,
                       kiln__render_buffers *out) {
  memset(out, 0, sizeof *out);
  bool same, same_pl = false, meshes = same_meshes(b, s);
  int rc = same_geometry(b, s, &same);
  same = same && meshes;
  if (!rc && same) rc = same_placements(b, s, &same_pl);
  if (rc) return rc;
  atomic_fetch_add_explicit(&b->variants, 1, memory_order_relaxed);
  if (same && same_pl) return kiln__render_pack(s, &b->bvh, out);
  kiln__bvh bvh;
  if (same) { /* only placements moved: the base's trees under a new top level */
    atomic_fetch_add_explicit(&b->top_builds, 1, memory_order_relaxed);
    if ((rc = kiln__bvh_build_top(&b->bvh, s, &bvh))) return rc;
    rc = kiln__render_pack(s, &bvh, out);
    kiln__bvh_free(&bvh);
    return rc;
  }
  atomic_fetch_add_explicit(&b->bvh_builds, 1, memory_order_relaxed);
  /* the flat geometry moved: its tree built again, the shared meshes' kept when they are the
   * base's (a scene without placements has none) */
  rc = meshes && b->nmeshes ? kiln__bvh_build_flat(pool, &b->bvh, s, &bvh)
                            : kiln__bvh_build(pool, s, &bvh);
  if (rc) return rc;
  rc = kiln__render_pack(s, &bvh, out);
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
}
