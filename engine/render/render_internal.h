/* render_internal.h: engine/render's private header: the BVH (bvh.c), the scene packed as the
 * path tracer reads it (pack.c), and what the tests may ask the renderer (renderer.c).
 *
 * pack.c flattens a kiln__scene and its BVH into the storage buffers of the path tracer;
 * renderer.c uploads them once per device and binds them, with the two per-frame buffers (accum,
 * aov), to every dispatch. The binding numbers, the globals and the push constants are
 * shaders/pathtrace/layout.h's, which the shader includes too; the layout of each buffer's words
 * is written in pack.c. */
#ifndef KILN_ENGINE_RENDER_INTERNAL_H
#define KILN_ENGINE_RENDER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pthread.h>

#include "../../shaders/pathtrace/layout.h"
#include "kiln/gpu.h"
#include "kiln/render.h"
#include "kiln/sched.h"
#include "scene_data.h"

/* ---- the BVH --------------------------------------------------------------------------------- */

/* A bounding volume hierarchy over a kiln__scene's triangles and spheres.
 *
 * Built on the CPU with binned SAH (Wald 2007, "On fast Construction of SAH-based Bounding Volume
 * Hierarchies": 16 bins on each axis over the centroid bounds), flattened depth-first into 32-byte
 * nodes that the path tracer (shaders/pathtrace/) reads as they are:
 *   interior: count == 0, left child = this index + 1, right child = a;
 *   leaf:     count > 0, primitives prims[a .. a + count).
 * A primitive index p < ntris is triangle p, otherwise sphere p - ntris.
 * With a pool, nodes of 8192+ primitives build their two subtrees as parallel tasks
 * (kiln_parallel_for over the two children, a task tree), each into its own node array, appended
 * in order afterwards. The tree is a pure function of the scene: the same whatever the pool and
 * its thread count (binning of large nodes runs in parallel over fixed chunks and reduces
 * min/max/counts, which do not depend on order). */
typedef struct kiln__bvh_node {
  float bmin[3];
  uint32_t a;
  float bmax[3];
  uint32_t count;
} kiln__bvh_node;

/* One tree: the nodes above over primitives prims (indices into whatever it is built over). */
typedef struct kiln__bvh_tree {
  kiln__bvh_node *nodes; /* nnodes, nodes[0] the root (malloc'd, owned) */
  size_t nnodes;
  uint32_t *prims; /* nprims primitive indices, grouped by leaf (malloc'd, owned) */
  size_t nprims;
} kiln__bvh_tree;

/* The scene's acceleration structure: the flat tree over its world-space triangles and spheres
 * (the fields at the top), one tree per shared mesh over its
 * object-space triangles (blas[m], prims: triangle indices of meshes[m]), and the top-level tree
 * over the placements' world boxes (tlas, prims: placement indices), with each placement's
 * world-to-object transform (w2o, 12 floats each: the inverse of its xform's 3x4). Without
 * placements blas, tlas and w2o are empty. */
typedef struct kiln__bvh {
  kiln__bvh_node *nodes; /* the flat tree: nnodes, nodes[0] the root (malloc'd, owned) */
  size_t nnodes;
  uint32_t *prims; /* nprims primitive indices, grouped by leaf (malloc'd, owned) */
  size_t nprims;
  size_t nblas;
  kiln__bvh_tree *blas; /* nblas (s->nmeshes), malloc'd, owned unless blas_borrowed */
  bool flat_borrowed;   /* the flat tree belongs to another kiln__bvh (a variant's) */
  bool blas_borrowed;   /* blas belongs to another kiln__bvh (a variant's) */
  kiln__bvh_tree tlas;
  float *w2o; /* 12 per placement (malloc'd, owned) */
} kiln__bvh;

/* Builds the BVH of s into *out (zeroed first): the flat tree, each shared mesh's and the top
 * level. pool may be NULL (serial). A scene without primitives gives one placeholder node that
 * traversals must not visit (nprims == 0); likewise a tree over nothing.
 * 0, KILN_EINVAL (more than 2^32-1 primitives, or a placement whose transform is singular),
 * KILN_ENOMEM. Blocking; may be called from a task of pool (kiln_parallel_for helps run the
 * chunks). */
int kiln__bvh_build(kiln_pool *pool, const kiln__scene *s, kiln__bvh *out);

/* *out: a BVH of s whose flat tree and mesh trees are base's (borrowed: base must outlive it,
 * and s's flat geometry and meshes must be those base was built from) with a top level built now
 * over s's placements. Codes as kiln__bvh_build. */
int kiln__bvh_build_top(const kiln__bvh *base, const kiln__scene *s, kiln__bvh *out);

/* *out: a BVH of s whose mesh trees are base's (borrowed, as kiln__bvh_build_top's; s's meshes
 * must be those base was built from) with the flat tree and the top level built now. Codes as
 * kiln__bvh_build. */
int kiln__bvh_build_flat(kiln_pool *pool, const kiln__bvh *base, const kiln__scene *s,
                         kiln__bvh *out);

/* Frees what b owns. NULL is a no-op. */
void kiln__bvh_free(kiln__bvh *b);

/* CPU closest-hit query (tests, tools): the nearest hit with t in (tmin, *t) along org + t*dir;
 * on a hit updates *t and *prim and returns true. A placement's hit sets *prim to the mesh's
 * triangle index and *placement (when not NULL) to the placement's index; a flat hit sets
 * *placement to UINT32_MAX. Any thread. */
bool kiln__bvh_intersect_ex(const kiln__bvh *b, const kiln__scene *s, const float org[3],
                            const float dir[3], float tmin, float *t, uint32_t *prim,
                            uint32_t *placement);
bool kiln__bvh_intersect(const kiln__bvh *b, const kiln__scene *s, const float org[3],
                         const float dir[3], float tmin, float *t, uint32_t *prim);

/* The same query by testing every primitive (the reference for the BVH's tests): every
 * placement's triangles, the ray taken into object space by the inverse of its transform
 * (computed here, as kiln__bvh_build does). */
bool kiln__brute_intersect_ex(const kiln__scene *s, const float org[3], const float dir[3],
                              float tmin, float *t, uint32_t *prim, uint32_t *placement);
bool kiln__brute_intersect(const kiln__scene *s, const float org[3], const float dir[3], float tmin,
                           float *t, uint32_t *prim);

/* The inverse of the row-major 3x4 transform x (its last row 0 0 0 1 implied) into inv, in
 * double. false when x's 3x3 is singular. */
bool kiln__xform_invert(const float x[12], float inv[12]);

/* ---- the packed scene --------------------------------------------------------------------- */

/* What a kernel is specialised for: bit k is the shader's boolean specialization constant
 * constant_id = k (layout.h's PT_SC_*). A clear feature bit promises the scene lacks the feature
 * (its default in the shader is true, the general code); SHARED, UNIFORM and TEXEL say where the
 * scene is read from (renderer.c's choice per device; their default is false: the storage
 * buffers). Ids PT_SC_UNIFORM_VEC4S and PT_SC_SHARED_VEC4S are integers, no bits here. */
enum {
  KILN__RF_SPHERES = 1u << PT_SC_SPHERES,
  KILN__RF_CONDUCTORS = 1u << PT_SC_CONDUCTORS,
  KILN__RF_DIELECTRICS = 1u << PT_SC_DIELECTRICS,
  KILN__RF_TEXTURES = 1u << PT_SC_TEXTURES,
  KILN__RF_ENV_MAP = 1u << PT_SC_ENV_MAP,
  KILN__RF_NORMALS = 1u << PT_SC_NORMALS,
  KILN__RF_UV = 1u << PT_SC_UV,
  KILN__RF_ENV_LIT = 1u << PT_SC_ENV_LIT,
  KILN__RF_SHARED = 1u << PT_SC_SCENE_SHARED, /* NODES, PRIMS, TRIS, MATS and LIGHTS from one
                                                 block laid out as SCENE: a copy in workgroup
                                                 shared memory (they fit PT_SHARED_VEC4S), or
                                                 with KILN__RF_UNIFORM the SCENE buffer itself */
  KILN__RF_UNIFORM = 1u << PT_SC_SCENE_UNIFORM,
  KILN__RF_TEXEL = 1u << PT_SC_SCENE_TEXEL, /* NODES, PRIMS... through the texel bindings */
  KILN__RF_PRINCIPLED = 1u << PT_SC_PRINCIPLED,
  KILN__RF_VATTR = 1u << PT_SC_VATTR,
  KILN__RF_PLIGHTS = 1u << PT_SC_PLIGHTS,
  KILN__RF_ALPHA = 1u << PT_SC_ALPHA,
  KILN__RF_INSTANCES = 1u << PT_SC_INSTANCES, /* placements: read from the storage buffers (or
                                                 texel fetches), never SHARED or UNIFORM */
  KILN__RF_SPREAD = 1u << PT_SC_SPREAD_GROUPS /* renderer.c's choice on CPU devices */
};

/* The texel bindings (KILN__RF_TEXEL, the default on CPU devices): X(binding, the scene buffer it
 * binds a second time, 1 where its texels are R32UI words rather than RGBA32UI). */
#define KILN__TEXEL_BINDINGS(X)           \
  X(PT_BIND_TNODES, PT_BIND_NODES, 0)     \
  X(PT_BIND_TPRIMS, PT_BIND_PRIMS, 0)     \
  X(PT_BIND_TINST, PT_BIND_INST, 0)       \
  X(PT_BIND_TTRIS, PT_BIND_TRIS, 0)       \
  X(PT_BIND_TATTR, PT_BIND_ATTR, 0)       \
  X(PT_BIND_TTEXELS, PT_BIND_TEXELS, 1)   \
  X(PT_BIND_TTEXINFO, PT_BIND_TEXINFO, 0) \
  X(PT_BIND_TENVDIST, PT_BIND_ENVDIST, 1) \
  X(PT_BIND_TMATS, PT_BIND_MATS, 0)       \
  X(PT_BIND_TLIGHTS, PT_BIND_LIGHTS, 0)   \
  X(PT_BIND_TSPHERES, PT_BIND_SPHERES, 0) \
  X(PT_BIND_TMATX, PT_BIND_MATX, 0)       \
  X(PT_BIND_TPLIGHTS, PT_BIND_PLIGHTS, 0)
#define KILN__TEXEL_BIT(t, of, words) | 1u << (t)
/* Bit b: binding b is one of the texel bindings. */
#define KILN__TEXEL_MASK (0u KILN__TEXEL_BINDINGS(KILN__TEXEL_BIT))

typedef struct kiln__render_buffers {
  void *data[PT_BIND_COUNT];  /* malloc'd, owned (but for borrowed); NULL for ACCUM, AOV and the
                                 texel bindings (TNODES, TPRIMS... the same buffers again) */
  size_t size[PT_BIND_COUNT]; /* bytes; at least 16 for every scene buffer (none is empty) */
  uint32_t features;          /* KILN__RF_* that the scene has (not SHARED and UNIFORM) */
  size_t scene_vec4s;         /* the uvec4s of NODES, PRIMS, TRIS, MATS and LIGHTS together */
  uint32_t borrowed; /* bit k: data[k] is another pack's (kiln__render_pack_reusing's base), not
                        freed with this one */
  /* what this pack wrote (statistics): shared meshes' triangles into TRIS, texels into TEXELS */
  size_t mesh_tris_packed, texels_packed;
} kiln__render_buffers;

/* Fills *p from scene s and its BVH b. 0, KILN_ENOMEM, or KILN_EINVAL for a BVH beyond the node
 * format (more than 2^27 primitives or 2^31 nodes); *p then holds nothing. Pure function of its
 * inputs; any thread. */
int kiln__render_pack(const kiln__scene *s, const kiln__bvh *b, kiln__render_buffers *p);

/* kiln__render_pack, but each buffer k of the bits of reuse (1 << PT_BIND_NODES, PRIMS, TRIS,
 * ATTR, VATTR, TEXINFO with TEXELS, ENVDIST) is base's own (borrowed: base must outlive *p) when
 * its size is what s needs: the caller promises that packing s would write those bytes (s's
 * inputs to that buffer are base's: variant.c), and nothing reads or writes them here. base
 * may be NULL (reuse then 0). */
int kiln__render_pack_reusing(const kiln__scene *s, const kiln__bvh *b,
                              const kiln__render_buffers *base, uint32_t reuse,
                              kiln__render_buffers *p);

/* Frees what p holds (not what it borrows); a zeroed p is a no-op. */
void kiln__render_pack_free(kiln__render_buffers *p);

/* ---- frames in flight (frames.c) ------------------------------------------------------------ */

/* The device memory and read-back memory of one frame: colour sums (a vec4 a pixel), the AOV
 * planes asked for (naov vec4 planes; aov NULL without any), and rb, which the job downloads both
 * into (colour first, then the AOV planes). Owned by a frame in flight, else by the pool. */
typedef struct kiln__frame_bufs {
  size_t npix;
  uint32_t naov;
  kiln_gpu_buffer *accum, *aov;
  kiln_gpu_readback *rb;
  struct kiln__frame_bufs *next; /* the pool's list */
} kiln__frame_bufs;

/* The sets of frames that are done, kept for the next frames of the same size on one device.
 * Any thread; get and put may run at once. */
typedef struct kiln__frame_pool {
  pthread_mutex_t mu;     /* guards the fields below; a leaf */
  kiln__frame_bufs *idle; /* most recently returned first */
  uint64_t idle_bytes;    /* device and host bytes of idle (2 x the set's buffers) */
  uint64_t budget;        /* the most idle bytes kept */
  uint64_t made, reused;  /* sets made, sets handed out again (tests) */
} kiln__frame_pool;

void kiln__frame_pool_init(kiln__frame_pool *p, uint64_t budget);
/* Frees every idle set; none may be out. */
void kiln__frame_pool_fini(kiln__frame_pool *p);
/* A set for npix pixels and naov AOV planes on dev: an idle one of that size, else a new one.
 * 0, or a buffer or readback creation error. */
int kiln__frame_pool_get(kiln__frame_pool *p, kiln_gpu_device *dev, size_t npix, uint32_t naov,
                         kiln__frame_bufs **out);
/* Gives s back (its frame's job done); frees the least recently returned beyond the budget. */
void kiln__frame_pool_put(kiln__frame_pool *p, kiln__frame_bufs *s);
/* Frees s (not in a pool). NULL is a no-op. */
void kiln__frame_bufs_free(kiln__frame_bufs *s);
void kiln__frame_pool_counts(kiln__frame_pool *p, uint64_t *made, uint64_t *reused);

/* The AOV planes (PT_AOV_*) that the first-hit planes (KILN_PLANE_*) need. */
uint32_t kiln__aov_groups(unsigned planes);

/* A new image of w x h with the planes (KILN_PLANE_*; colour always, uv with object_id) built
 * from s's read-back memory (its frame's job done): colour sums over spp, the AOV planes. NULL
 * when out of memory. Any thread. */
struct kiln_image *kiln__frame_image(const kiln__frame_bufs *s, int32_t w, int32_t h, uint32_t spp,
                                     unsigned planes);

/* ---- scene variants (variant.c) ------------------------------------------------------------ */

/* The scene a renderer was made for, kept (with kiln_renderer_config.scene_variants) to render
 * variants of it: see variant.c. */
typedef struct kiln__variant_base kiln__variant_base;

/* What a renderer did for variants so far (tests and benchmarks). */
typedef struct kiln__variant_stats {
  uint64_t variants;         /* variant frames packed */
  uint64_t bvh_builds;       /* of those, the ones whose geometry differed: a BVH was built */
  uint64_t top_builds; /* of those, the ones whose placements only differed: only a top level
                          over them was built, on the base's other trees */
  uint64_t buffers_uploaded; /* buffers whose bytes differed from the scene's, uploaded per frame */
  uint64_t bytes_uploaded;
  uint64_t buffers_reused;   /* buffers proven the scene's, borrowed: not packed nor compared */
  uint64_t mesh_tris_packed; /* shared meshes' triangles packed into variants' TRIS */
  uint64_t texels_packed;    /* texels packed into variants' TEXELS */
  uint64_t kernels; /* kernels made for variants of other features (on every device) */
} kiln__variant_stats;

/* A base of scene s with its BVH *bvh and packed buffers *p, which it takes (they are zeroed,
 * and freed on failure too). It keeps copies of s's flat arrays, placements and mesh tables, the
 * pointers s borrows from its asset cache, and a reference on that cache (so s itself may go).
 * 0 or KILN_ENOMEM. */
int kiln__variant_base_create(const kiln__scene *s, kiln__bvh *bvh, kiln__render_buffers *p,
                              kiln__variant_base **out);
void kiln__variant_base_free(kiln__variant_base *b); /* NULL is a no-op */
/* The base's packed buffers (borrowed). */
const kiln__render_buffers *kiln__variant_base_pack(const kiln__variant_base *b);
/* Packs variant s into *out (zeroed first; kiln__render_pack_free frees it; it may borrow the
 * base's buffers, so the base must outlive it): with the base's BVH when s's triangles, spheres,
 * shared meshes and placements are the base's; with the base's flat and mesh trees and a top
 * level built now when only the placements differ; else with a flat tree and top level built now
 * (on pool, may be NULL), on the base's mesh trees when the shared meshes are the base's, else
 * all built now. The buffers that are provably the base's are the base's (variant.c). Codes as
 * kiln__render_pack, and kiln__bvh_build's. Any thread, any number at once. */
int kiln__variant_pack(kiln__variant_base *b, kiln_pool *pool, const kiln__scene *s,
                       kiln__render_buffers *out);
/* Counts one buffer of bytes uploaded for a variant. Any thread. */
void kiln__variant_base_count_upload(kiln__variant_base *b, size_t bytes);
/* Fills the counters of *out that the base keeps (all but kernels). Any thread. */
void kiln__variant_base_stats(kiln__variant_base *b, kiln__variant_stats *out);

/* ---- the renderer, for tests -------------------------------------------------------------- */

/* *out: renderer r's variant counters (all 0 without scene_variants). Any thread. */
struct kiln_renderer;
void kiln__renderer_variant_stats(struct kiln_renderer *r, kiln__variant_stats *out);


struct kiln_renderer;

/* The KILN__RF_* of renderer r's kernel on its device dev (0 past the last): what the scene has
 * and where it is read from there. */
uint32_t kiln__renderer_device_features(const struct kiln_renderer *r, size_t dev);

/* For benchmarks: replaces r's kernels by pathtrace_null (shaders/pathtrace/), which writes
 * what a frame reads back without tracing anything, so that frames cost only their CPU side (an
 * infinitely fast GPU). Call before submitting any frame, from the thread that made r. 0, or
 * kiln_gpu_kernel_create's error (the devices switched so far keep the null kernel). */
int kiln__renderer_null_kernel(struct kiln_renderer *r);

/* kiln_renderer_create with pathtrace_null as every device's kernel from the start, as
 * kiln__renderer_null_kernel would leave it, without first compiling the path tracer that the
 * frames would never run (on lavapipe an LLVM compile per device, about a fifth of a 600-frame
 * 256x256 null-kernel batch's CPU time). Same arguments, results and threads as
 * kiln_renderer_create. */
int kiln__renderer_create_null(const kiln_scene *scene, kiln_gpu_device *const *devs, size_t ndevs,
                               const kiln_renderer_config *cfg, struct kiln_renderer **out);

/* What renderer r has done so far (tests): frames submitted, AOV planes written (one a frame
 * per PT_AOV_* group asked for), bytes read back, and the sets of frame memory made new and
 * handed out again from the pool, all devices together. Any thread. */
typedef struct kiln__renderer_stats {
  uint64_t frames, aov_planes, bytes_read_back, bufs_made, bufs_reused;
} kiln__renderer_stats;
void kiln__renderer_get_stats(struct kiln_renderer *r, kiln__renderer_stats *out);

/* Fault injection: the next n frames submitted to r find kiln_future_on_done failing with
 * KILN_ENOMEM (as when the callback's node cannot be allocated). Any thread. */
void kiln__renderer_fail_on_done(struct kiln_renderer *r, int n);

#endif
