/* render_internal.h (internal): the scene as shaders/pathtrace.comp reads it.
 *
 * render_pack.c flattens a kiln__scene and its BVH into the storage buffers of the path tracer;
 * render.c uploads them once per device and binds them, with the two per-frame buffers (accum,
 * aov), to every dispatch. The binding numbers below and the layouts written in render_pack.c
 * are the shader's, one for one: change both together. */
#ifndef KILN_ENGINE_RENDER_INTERNAL_H
#define KILN_ENGINE_RENDER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "bvh.h"
#include "scene_data.h"

enum {
  KILN__RB_NODES = 0,    /* BVH nodes, a uvec4 each: quantised box, skip link or leaf range */
  KILN__RB_PRIMS = 1,    /* the leaves' primitives in leaf order, with their intersection data */
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
  KILN__RB_SCENE = 13,   /* a uniform buffer: NODES, PRIMS, TRIS, MATS and LIGHTS one after the
                            other as uvec4s, as the shader's shared copy holds them, when they fit
                            KILN__UNIFORM_VEC4S (scene_vec4s of them); else 16 bytes of zeros */
  KILN__RB_TNODES = 14,  /* NODES again, as a uniform texel buffer (where the kernel reads it so;
                            else SCENE's buffer stands in): render.c binds them, no data here */
  KILN__RB_TPRIMS = 15,  /* PRIMS again, likewise */
  KILN__RB_COUNT = 16
};

/* What a scene has: bit k is the shader's boolean specialization constant constant_id = k (its
 * default is true, the general code). A clear bit promises the scene lacks the feature. */
enum {
  KILN__RF_SPHERES = 1u << 0,
  KILN__RF_CONDUCTORS = 1u << 1,
  KILN__RF_DIELECTRICS = 1u << 2,
  KILN__RF_TEXTURES = 1u << 3,    /* a material with an albedo texture */
  KILN__RF_ENV_MAP = 1u << 4,
  KILN__RF_NORMALS = 1u << 5,
  KILN__RF_UV = 1u << 6,
  KILN__RF_ENV_LIT = 1u << 7,     /* next-event estimation may pick the environment */
  KILN__RF_SHARED = 1u << 8,      /* read NODES, PRIMS, TRIS, MATS and LIGHTS from one block as
                                     SCENE lays them out: a copy in workgroup shared memory
                                     (they fit KILN__SHARED_VEC4S), or with KILN__RF_UNIFORM the
                                     SCENE uniform buffer itself (its default is false: the
                                     storage buffers). render.c's choice per device */
  KILN__RF_UNIFORM = 1u << 9,
  /* bit 10 is no feature: constant_id 10 is the integer UNIFORM_VEC4S below */
  KILN__RF_TEXEL = 1u << 11,      /* read NODES and PRIMS through TNODES and TPRIMS, texel fetches
                                     (render.c's choice per device) */
  KILN__RF_COUNT = 12
};

/* pathtrace.comp's integer specialization constant UNIFORM_VEC4S (constant_id 10): the length of
 * its SCENE block's array, the scene's scene_vec4s where it reads SCENE (render.c writes it). */
enum { KILN__SC_UNIFORM_VEC4S = 10 };

/* pathtrace.comp's SHARED_VEC4S: the 16-byte words of its shared copy of the scene (a node 1, a
 * leaf primitive 3, a triangle 3, a material 3, a light 1): 16 KiB, Vulkan's least
 * maxComputeSharedMemorySize. */
#define KILN__SHARED_VEC4S 1024u
/* The most the SCENE uniform buffer holds: 64 KiB (lavapipe's maxUniformBufferRange, and
 * NVIDIA's; a device with less reads the storage buffers). */
#define KILN__UNIFORM_VEC4S 4096u

typedef struct kiln__render_buffers {
  void *data[KILN__RB_COUNT]; /* malloc'd, owned; NULL for ACCUM and AOV */
  size_t size[KILN__RB_COUNT]; /* bytes; at least 16 for every scene buffer (none is empty) */
  uint32_t features;           /* KILN__RF_* that the scene has (not SHARED and UNIFORM) */
  size_t scene_vec4s;          /* the uvec4s of NODES, PRIMS, TRIS, MATS and LIGHTS together */
} kiln__render_buffers;

/* Fills *p from scene s and its BVH b. 0, KILN_ENOMEM, or KILN_EINVAL for a BVH beyond the node
 * format (more than 2^27 primitives or 2^31 nodes); *p then holds nothing. Pure function of its
 * inputs; any thread. */
int kiln__render_pack(const kiln__scene *s, const kiln__bvh *b, kiln__render_buffers *p);

/* Frees what p holds; a zeroed p is a no-op. */
void kiln__render_pack_free(kiln__render_buffers *p);

/* The KILN__RF_* of renderer r's kernel on its device dev (0 past the last): what the scene has
 * and where it is read from there. For tests. */
struct kiln_renderer;
uint32_t kiln__render_device_features(const struct kiln_renderer *r, size_t dev);

#endif
