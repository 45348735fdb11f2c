/* tracer.c: CPU ray queries over a scene's BVH for the folders above render/ (render_query.h),
 * through the closest-hit traversal the BVH's tests use (bvh.c): the same triangles and spheres,
 * and the same intersection tests, as the path tracer. */
#include <stdlib.h>

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
