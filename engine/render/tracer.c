/* tracer.c: CPU ray queries over a scene's BVH for the folders above render/ (render_query.h),
 * through the closest-hit traversal the BVH's tests use (bvh.c): the same triangles and spheres,
 * and the same intersection tests, as the path tracer. */
#include <stdlib.h>
#include <string.h>

#include "kiln/error.h"
#include "render_internal.h"
#include "render_query.h"

struct kiln__tracer {
  const kiln__scene *s;
  kiln__bvh bvh;
};

int kiln__tracer_create(const kiln__scene *s, kiln_pool *pool, kiln__tracer **out) {
  *out = NULL;
  kiln__tracer *t = calloc(1, sizeof *t);
  if (!t) return KILN_ENOMEM;
  t->s = s;
  int rc = kiln__bvh_build(pool, s, &t->bvh);
  if (rc) {
    free(t);
    return rc;
  }
  *out = t;
  return 0;
}

/* Whether s's shared meshes are those b's trees were built over (positions bit for bit: the
 * trees depend on nothing else). */
static bool same_meshes(const kiln__scene *s, const kiln__scene *b) {
  if (s->nmeshes != b->nmeshes) return false;
  for (size_t m = 0; m < s->nmeshes; m++)
    if (s->meshes[m].ntris != b->meshes[m].ntris ||
        memcmp(s->meshes[m].pos, b->meshes[m].pos, s->meshes[m].ntris * 36) != 0)
      return false;
  return true;
}

int kiln__tracer_create_on(const kiln__scene *s, const kiln__tracer *base, kiln_pool *pool,
                           kiln__tracer **out) {
  if (!base || !s->nmeshes || !same_meshes(s, base->s)) return kiln__tracer_create(s, pool, out);
  *out = NULL;
  kiln__tracer *t = calloc(1, sizeof *t);
  if (!t) return KILN_ENOMEM;
  t->s = s;
  int rc = kiln__bvh_build_flat(pool, &base->bvh, s, &t->bvh);
  if (rc) {
    free(t);
    return rc;
  }
  *out = t;
  return 0;
}

bool kiln__tracer_blocked(const kiln__tracer *t, const float org[3], const float dir[3], float tmin,
                          float tmax) {
  uint32_t prim;
  return kiln__bvh_intersect(&t->bvh, t->s, org, dir, tmin, &tmax, &prim);
}

void kiln__tracer_destroy(kiln__tracer *t) {
  if (!t) return;
  kiln__bvh_free(&t->bvh);
  free(t);
}
