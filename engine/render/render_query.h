/* render_query.h (internal): what engine/render gives the folders above it besides the renderer:
 * CPU ray queries over a scene's BVH (tracer.c), the same geometry the path tracer intersects.
 * engine/batch uses it to tell whether a point is hidden from another frame's camera (the flow
 * passes). Everything else of the folder stays in render_internal.h. */
#ifndef KILN_ENGINE_RENDER_QUERY_H
#define KILN_ENGINE_RENDER_QUERY_H

#include <stdbool.h>

#include "kiln/sched.h"
#include "scene_data.h"

typedef struct kiln__tracer kiln__tracer;

/* Builds the BVH of s (borrowed: it must outlive the tracer) into a new tracer. pool may be NULL
 * (serial); blocking, and may run in a task of pool. 0, KILN_EINVAL, KILN_ENOMEM. */
int kiln__tracer_create(const kiln__scene *s, kiln_pool *pool, kiln__tracer **out);

/* As kiln__tracer_create, but where s's shared meshes are base's scene's (bit for bit), their
 * trees are base's (borrowed: base must outlive the tracer) and only the flat tree and the top
 * level are built; otherwise (or base NULL) everything is. */
int kiln__tracer_create_on(const kiln__scene *s, const kiln__tracer *base, kiln_pool *pool,
                           kiln__tracer **out);

/* Whether the segment org + t dir, t in (tmin, tmax), hits any surface (dir need not be unit).
 * Any thread, any number at once. */
bool kiln__tracer_blocked(const kiln__tracer *t, const float org[3], const float dir[3], float tmin,
                          float tmax);

/* NULL is a no-op. */
void kiln__tracer_destroy(kiln__tracer *t);

#endif
