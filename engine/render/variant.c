/* variant.c: scene variants: a frame whose scene is the renderer's own with other materials,
 * lights, environment or object placements (a job's per-frame overrides), rendered by the
 * renderer made for the job's scene instead of a renderer of its own.
 *
 * The base is the scene as the renderer uploaded it: its BVH, its packed buffers and the
 * positions the BVH was built from (a copy of the triangles' and spheres' geometry). A variant
 * whose geometry is the base's bit for bit (material, light colour or environment overrides)
 * reuses the base BVH; any other builds its own. Either way the variant is packed whole by
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
  atomic_ullong variants, bvh_builds, uploads, upload_bytes;
};

/* The spheres' centres and radii (what the BVH reads of them) into out (4 floats each). */
static void sphere_geometry(const kiln__scene *s, float *out) {
  for (size_t i = 0; i < s->nspheres; i++) {
    memcpy(out + 4 * i, s->spheres[i].center, 12);
    out[4 * i + 3] = s->spheres[i].radius;
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
  }
  if (!b || !b->pos || !b->spheres) {
    kiln__variant_base_free(b);
    kiln__bvh_free(bvh);
    kiln__render_pack_free(p);
    return KILN_ENOMEM;
  }
  if (s->ntris) memcpy(b->pos, s->pos, s->ntris * 36);
  sphere_geometry(s, b->spheres);
  atomic_init(&b->variants, 0);
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
  free(b);
}

const kiln__render_buffers *kiln__variant_base_pack(const kiln__variant_base *b) {
  return &b->pack;
}

/* Whether s's geometry (what the BVH is built from) is the base's, bit for bit. */
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
  bool same;
  int rc = same_geometry(b, s, &same);
  if (rc) return rc;
  atomic_fetch_add_explicit(&b->variants, 1, memory_order_relaxed);
  if (same) return kiln__render_pack(s, &b->bvh, out);
  atomic_fetch_add_explicit(&b->bvh_builds, 1, memory_order_relaxed);
  kiln__bvh bvh;
  if ((rc = kiln__bvh_build(pool, s, &bvh))) return rc;
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
  out->buffers_uploaded = atomic_load_explicit(&m->uploads, memory_order_relaxed);
  out->bytes_uploaded = atomic_load_explicit(&m->upload_bytes, memory_order_relaxed);
}
