/* bvh.h (internal): a bounding volume hierarchy over a kiln__scene's triangles and spheres.
 *
 * Built on the CPU with binned SAH (Wald 2007, "On fast Construction of SAH-based Bounding Volume
 * Hierarchies": 16 bins on each axis over the centroid bounds), flattened depth-first into 32-byte
 * nodes that the path tracer (shaders/pathtrace.comp) reads as they are:
 *   interior: count == 0, left child = this index + 1, right child = a;
 *   leaf:     count > 0, primitives prims[a .. a + count).
 * A primitive index p < ntris is triangle p, otherwise sphere p - ntris.
 * With a pool, nodes of 8192+ primitives build their two subtrees as parallel tasks
 * (kiln_parallel_for over the two children, a task tree), each into its own node array, appended
 * in order afterwards. The tree is a pure function of the scene: the same whatever the pool and
 * its thread count (binning of large nodes runs in parallel over fixed chunks and reduces
 * min/max/counts, which do not depend on order). */
#ifndef KILN_ENGINE_BVH_H
#define KILN_ENGINE_BVH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/sched.h"
#include "scene_data.h"

typedef struct kiln__bvh_node {
  float bmin[3];
  uint32_t a;
  float bmax[3];
  uint32_t count;
} kiln__bvh_node;

typedef struct kiln__bvh {
  kiln__bvh_node *nodes; /* nnodes, nodes[0] the root (malloc'd, owned) */
  size_t nnodes;
  uint32_t *prims;       /* nprims primitive indices, grouped by leaf (malloc'd, owned) */
  size_t nprims;
} kiln__bvh;

/* Builds the BVH of s into *out (zeroed first). pool may be NULL (serial). A scene without
 * primitives gives one placeholder node that traversals must not visit (nprims == 0).
 * 0, KILN_EINVAL (more than 2^32-1 primitives), KILN_ENOMEM.
 * Blocking; may be called from a task of pool (kiln_parallel_for helps run the chunks). */
int kiln__bvh_build(kiln_pool *pool, const kiln__scene *s, kiln__bvh *out);

/* Frees what b owns. NULL is a no-op. */
void kiln__bvh_free(kiln__bvh *b);

/* CPU closest-hit query (tests, tools): the nearest hit with t in (tmin, *t) along org + t*dir;
 * on a hit updates *t and *prim and returns true. Any thread. */
bool kiln__bvh_intersect(const kiln__bvh *b, const kiln__scene *s, const float org[3],
                         const float dir[3], float tmin, float *t, uint32_t *prim);

/* The same query by testing every primitive (the reference for the BVH's tests). */
bool kiln__brute_intersect(const kiln__scene *s, const float org[3], const float dir[3],
                           float tmin, float *t, uint32_t *prim);

#endif
