/* layout.h: the path tracer's data layout, written once and included both by the shader
 * (pathtrace.comp, GLSL, through GL_GOOGLE_include_directive) and by the C that packs and binds
 * its buffers (engine/render/render_internal.h): binding numbers, specialization constant ids,
 * material and environment codes, the globals block and the push-constant block.
 *
 * Both languages read the same lines: numbers are #defines, and the two structs are written in
 * the pt_* types below, GLSL's own types in the shader and plain C structs in C. Every vec3 is
 * followed by a 4-byte scalar, so std430 (the shader's rule: a vec3 aligned to 16 bytes, a
 * scalar packed into its fourth word) and C lay them out alike; the C side checks every offset
 * with _Static_assert, and tests/render (test_pack.c) checks them against the compiled SPIR-V.
 * Names here carry pt_ / PT_ rather than kiln__: GLSL reserves names containing "__". */
#ifndef PT_LAYOUT_H
#define PT_LAYOUT_H

#ifdef GL_core_profile /* GLSL */
#define pt_uint uint
#define pt_vec3 vec3
#define pt_vec4 vec4
#define pt_uvec4 uvec4
#define pt_ivec4 ivec4
#else /* C */
#include <stddef.h>
#include <stdint.h>
typedef uint32_t pt_uint;
typedef struct pt_vec3 { float x, y, z; } pt_vec3;
typedef struct pt_vec4 { float x, y, z, w; } pt_vec4;
typedef struct pt_uvec4 { uint32_t x, y, z, w; } pt_uvec4;
typedef struct pt_ivec4 { int32_t x, y, z, w; } pt_ivec4;
#endif

/* ---- descriptor bindings (set 0) ------------------------------------------------------------
 * std430 storage buffers unless said otherwise; engine/render/pack.c writes each layout. */
#define PT_BIND_NODES 0    /* BVH nodes, a uvec4 each: quantised box, skip link or leaf range */
#define PT_BIND_PRIMS 1    /* the leaves' primitives in leaf order, with their intersection data */
#define PT_BIND_TRIS 2     /* 3 vec4 per triangle: vertices, w = material / object / instance */
#define PT_BIND_SPHERES 3  /* centre + radius; material, object, instance, light pick probability */
#define PT_BIND_MATS 4     /* albedo + type, emission + roughness, ior + texture index */
#define PT_BIND_LIGHTS 5   /* emissive triangles and spheres with their weight CDF */
#define PT_BIND_GLOBALS 6  /* one pt_globals */
#define PT_BIND_ACCUM 7    /* per frame: a vec4 colour sum per pixel */
#define PT_BIND_AOV 8      /* per frame: the AOV planes asked for (pt_push.frame.w, PT_AOV_*),
                              each a vec4 per pixel, one plane after the other in bit order */
#define PT_BIND_ATTR 9     /* 16 floats per triangle: 3 shading normals, 3 uv, 1 pad */
#define PT_BIND_TEXINFO 10 /* uvec4 per texture: first float in TEXELS, width, height, 0 */
#define PT_BIND_TEXELS 11  /* every texture's linear RGB floats, rows top (v = 1) first */
#define PT_BIND_ENVDIST 12 /* the map's sampling distribution: row CDF, column CDFs, pixel pmf */
#define PT_BIND_SCENE 13   /* a uniform buffer (std140): NODES, PRIMS, TRIS, MATS and LIGHTS one
                              after the other as uvec4s, when they fit PT_UNIFORM_VEC4S_MAX */
#define PT_BIND_TNODES 14  /* NODES again, as a uniform texel buffer (RGBA32UI) */
#define PT_BIND_TPRIMS 15  /* PRIMS again, likewise */
#define PT_BIND_MATX 16    /* 4 vec4 per material, read for PRINCIPLED ones only: (metallic, alpha,
                              alpha cutoff, normal scale), (metallic-roughness, normal, emission,
                              alpha textures: uint indices, PT_NONE none), the uv transform's rows
                              (a, b, c, 0) and (d, e, f, 0) */
#define PT_BIND_VATTR 17   /* 6 vec4 per triangle when the scene has vertex colours or tangents:
                              the 3 vertices' colours (rgb, 0), then their tangents (xyz, bitangent
                              sign) */
#define PT_BIND_PLIGHTS 18 /* punctual lights, 4 vec4 each: position + type, direction + radius,
                              colour + cos inner, cos outer + 3 words the light sampling's own */
#define PT_BIND_INST 19    /* shared meshes' placements (uvec4s): a header (top-level node count,
                              placement count; the top level's grid origin; its grid step), the
                              top-level nodes (NODES' format, links within the top level, a leaf's
                              range in placements), then PT_INST_VEC4S per placement */
#define PT_BIND_TINST 20   /* INST again, as a uniform texel buffer (RGBA32UI) */
#define PT_BIND_TTRIS 21   /* TRIS again, likewise */
#define PT_BIND_TATTR 22   /* ATTR again, likewise (4 texels a triangle) */
#define PT_BIND_TTEXELS 23 /* TEXELS again, as a uniform texel buffer of R32UI words */
#define PT_BIND_TTEXINFO 24 /* TEXINFO again, as a uniform texel buffer (RGBA32UI) */
#define PT_BIND_TENVDIST 25 /* ENVDIST again, as a uniform texel buffer of R32UI words */
#define PT_BIND_TMATS 26   /* MATS again, as a uniform texel buffer (RGBA32UI) */
#define PT_BIND_TLIGHTS 27 /* LIGHTS again, likewise */
#define PT_BIND_TSPHERES 28 /* SPHERES again, likewise */
#define PT_BIND_TMATX 29   /* MATX again, likewise */
#define PT_BIND_TPLIGHTS 30 /* PLIGHTS again, likewise */
#define PT_BIND_COUNT 31

/* ---- specialization constants ----------------------------------------------------------------
 * Ids 0-9, 11 and 13-17 are booleans (default true for the features: the general code; false for the
 * scene-memory modes), 10 and 12 integers. A false feature promises the scene lacks it. */
#define PT_SC_SPHERES 0
#define PT_SC_CONDUCTORS 1
#define PT_SC_DIELECTRICS 2
#define PT_SC_TEXTURES 3      /* a material with an albedo texture */
#define PT_SC_ENV_MAP 4
#define PT_SC_NORMALS 5       /* per-vertex shading normals */
#define PT_SC_UV 6
#define PT_SC_ENV_LIT 7       /* next-event estimation may pick the environment */
#define PT_SC_SCENE_SHARED 8  /* the scene read from one block laid out as SCENE holds it */
#define PT_SC_SCENE_UNIFORM 9 /* ... that block being the SCENE uniform buffer itself */
#define PT_SC_UNIFORM_VEC4S 10 /* uint: the length of SCENE's array in the shader */
#define PT_SC_SCENE_TEXEL 11  /* the scene through the texel bindings T* (texel fetches) */
#define PT_SC_SHARED_VEC4S 12 /* uint: the length of the workgroup-shared copy of the scene */
#define PT_SC_PRINCIPLED 13 /* a PRINCIPLED material */
#define PT_SC_VATTR 14      /* vertex colours or tangents (VATTR) */
#define PT_SC_PLIGHTS 15    /* punctual lights (PLIGHTS) */
#define PT_SC_ALPHA 16      /* a material with an alpha cut-out: the traversal tests coverage */
#define PT_SC_INSTANCES 17  /* shared meshes placed by transforms (INST) */
#define PT_SC_SPREAD_GROUPS 18 /* a dispatch's workgroups spread over its tile (CPU devices) */
#define PT_SC_COUNT 19

/* A placement's uvec4s in INST: its world-to-object rows (3 vec4), then its mesh's node range in
 * NODES (first, end), its first instance id and 1 where the rows are not orthonormal (vertex
 * normals, unit in object space, then need renormalising in the world), then the grid its mesh's
 * nodes are quantised on: origin (xyz, 0), step (xyz, 0). */
#define PT_INST_VEC4S 6
#define PT_INST_HEADER 3

/* The 16-byte words of the shader's shared copy of the scene (a node 1, a leaf primitive 3, a
 * triangle 3, a material 3, a light 1) where it makes one: 16 KiB, Vulkan's least
 * maxComputeSharedMemorySize. */
#define PT_SHARED_VEC4S 1024
/* The most the SCENE uniform buffer holds: 64 KiB (lavapipe's maxUniformBufferRange, and
 * NVIDIA's; a device with less reads the storage buffers). */
#define PT_UNIFORM_VEC4S_MAX 4096

/* ---- codes ------------------------------------------------------------------------------------
 * A material's type (MATS, albedo_type.w) and the environment's (pt_globals.env_type); the
 * scene's own enums (engine/scene/scene_data.h) are checked equal in engine/render/pack.c. */
#define PT_MAT_DIFFUSE 0u
#define PT_MAT_CONDUCTOR 1u
#define PT_MAT_DIELECTRIC 2u
#define PT_MAT_EMISSIVE 3u
#define PT_MAT_PRINCIPLED 4u
#define PT_LIGHT_POINT 0u
#define PT_LIGHT_SPOT 1u
#define PT_LIGHT_SUN 2u
#define PT_ENV_CONSTANT 0u
#define PT_ENV_GRADIENT 1u
#define PT_ENV_MAP 2u
#define PT_NONE 0xffffffffu /* no texture; no primitive hit */
/* The AOV planes (pt_push.frame.w): which first-hit vec4s a frame writes; a frame without any
 * traces no first-hit ray of its own. */
#define PT_AOV_DEPTH_NORMAL 1u /* depth, shading normal */
#define PT_AOV_ALBEDO_ID 2u    /* albedo, object id */
#define PT_AOV_INSTANCE_UV 4u  /* instance id, uv, unused */

/* ---- the globals block (GLOBALS) ---------------------------------------------------------- */
struct pt_globals {
  pt_uint ntris, nspheres, nlights, env_type;
  pt_vec3 env_color;  /* radiance, scaled by intensity (a map: the intensity) */
  float unused0;
  pt_vec3 env_top;    /* the gradient's top, scaled by intensity */
  float light_weight; /* the emitters' total pick weight (area times relative luminance) */
  pt_uint has_normals, has_uv;
  pt_uint env_texture; /* the map's texture, PT_NONE without one */
  pt_uint env_dist;    /* 1: ENVDIST holds the map's distribution */
  float env_cos, env_sin; /* cos, sin of the map frame's angle about +y: rotation + 180 degrees */
  float env_pick;      /* the probability that next-event estimation picks the environment */
  pt_uint nnodes;      /* BVH nodes: the traversal's end */
  pt_vec3 grid_origin; /* the grid the node boxes are quantised on */
  pt_uint nleaf_prims; /* PRIMS entries */
  pt_vec3 grid_step;
  pt_uint nmaterials;
  pt_uint nplights;    /* PLIGHTS entries */
  pt_uint has_col, has_tan; /* VATTR holds vertex colours / tangents */
  float plight_pick;   /* the probability that next-event estimation picks a punctual light */
};

/* ---- the push constants: one tile x a few samples of one frame ----------------------------- */
struct pt_push {
  pt_vec4 cam_pos;  /* w: aperture (lens diameter; 0: pinhole) */
  pt_vec4 cam_u;    /* right * width / (2 fx) (tan(vfov/2) * aspect); w: focus distance */
  pt_vec4 cam_v;    /* up * height / (2 fy) (tan(vfov/2)); w: principal point x offset */
  pt_vec4 cam_w;    /* forward (unit); w: principal point y offset (camera.glsl) */
  pt_ivec4 image;   /* width, height, tile x0, tile y0 */
  pt_uvec4 pass;    /* tile w, tile h, first sample, sample count */
  pt_uvec4 frame;   /* seed, frame, max bounces, AOV planes (PT_AOV_*) */
};

#ifndef GL_core_profile
typedef struct pt_globals pt_globals;
typedef struct pt_push pt_push;
/* std430's offsets, which the shader uses: a vec3 or vec4 starts on 16 bytes. */
_Static_assert(offsetof(pt_globals, env_color) == 16 && offsetof(pt_globals, unused0) == 28,
               "pt_globals: env_color");
_Static_assert(offsetof(pt_globals, env_top) == 32 && offsetof(pt_globals, light_weight) == 44,
               "pt_globals: env_top");
_Static_assert(offsetof(pt_globals, has_normals) == 48 && offsetof(pt_globals, env_dist) == 60,
               "pt_globals: flags");
_Static_assert(offsetof(pt_globals, env_cos) == 64 && offsetof(pt_globals, nnodes) == 76,
               "pt_globals: rotation");
_Static_assert(offsetof(pt_globals, grid_origin) == 80 && offsetof(pt_globals, nleaf_prims) == 92,
               "pt_globals: grid origin");
_Static_assert(offsetof(pt_globals, grid_step) == 96 && offsetof(pt_globals, nmaterials) == 108,
               "pt_globals: grid step");
_Static_assert(offsetof(pt_globals, nplights) == 112 && offsetof(pt_globals, plight_pick) == 124,
               "pt_globals: punctual lights");
_Static_assert(sizeof(pt_globals) == 128, "pt_globals: size");
_Static_assert(offsetof(pt_push, image) == 64 && offsetof(pt_push, frame) == 96 &&
                   sizeof(pt_push) == 112,
               "pt_push");
#endif

#endif /* PT_LAYOUT_H */
