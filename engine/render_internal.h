/* render_internal.h (internal): the scene as shaders/pathtrace.comp reads it.
 *
 * render_pack.c flattens a kiln__scene and its BVH into the storage buffers of the path tracer;
 * render.c uploads them once per device and binds them, with the two per-frame buffers (accum,
 * aov), to every dispatch. The binding numbers below and the layouts written in render_pack.c
 * are the shader's, one for one: change both together. */
#ifndef KILN_ENGINE_RENDER_INTERNAL_H
#define KILN_ENGINE_RENDER_INTERNAL_H

#include <stddef.h>

#include "bvh.h"
#include "scene_data.h"

enum {
  KILN__RB_NODES = 0,    /* BVH nodes, as bvh.h lays them out */
  KILN__RB_PRIMS = 1,    /* primitive indices of the leaves */
  KILN__RB_TRIS = 2,     /* 3 vec4 per triangle: vertices, w = material / object / instance */
  KILN__RB_SPHERES = 3,  /* centre + radius; material, object, instance, light pick probability */
  KILN__RB_MATS = 4,     /* albedo + type, emission + roughness, ior + texture index */
  KILN__RB_LIGHTS = 5,   /* emissive triangles and spheres with their area CDF */
  KILN__RB_GLOBALS = 6,  /* counts, environment, flags */
  KILN__RB_ACCUM = 7,    /* per frame: colour sums */
  KILN__RB_AOV = 8,      /* per frame: first-hit passes */
  KILN__RB_ATTR = 9,     /* 16 floats per triangle: 3 shading normals, 3 uv, 1 pad */
  KILN__RB_TEXINFO = 10, /* uvec4 per texture: first float in TEXELS, width, height, 0 */
  KILN__RB_TEXELS = 11,  /* every texture's linear RGB floats, rows top (v = 1) first */
  KILN__RB_ENVDIST = 12, /* the map's sampling distribution: row CDF, column CDFs, pixel pmf */
  KILN__RB_COUNT = 13
};

typedef struct kiln__render_buffers {
  void *data[KILN__RB_COUNT]; /* malloc'd, owned; NULL for ACCUM and AOV */
  size_t size[KILN__RB_COUNT]; /* bytes; at least 16 for every scene buffer (none is empty) */
} kiln__render_buffers;

/* Fills *p from scene s and its BVH b. 0, or KILN_ENOMEM (*p then holds nothing). Pure function
 * of its inputs; any thread. */
int kiln__render_pack(const kiln__scene *s, const kiln__bvh *b, kiln__render_buffers *p);

/* Frees what p holds; a zeroed p is a no-op. */
void kiln__render_pack_free(kiln__render_buffers *p);

#endif
