/* scene_data.h (internal): a scene after loading and validation, flattened for the renderer.
 *
 * The scene loader (scene.c, obj.c, ply.c, ...) produces one kiln__scene; the BVH builder and the
 * renderer (bvh.c, render.c) only read it. Everything is in world space: object transforms and
 * instancing are applied by the loader (an instanced mesh is copied once per instance), quads and
 * boxes are triangulated, quad area lights become two one-sided emissive triangles. Spheres stay
 * analytic. Colours are linear RGB. Ids are 1-based; 0 means background in the id passes.
 *
 * Ownership: every array is malloc'd and owned by the scene; kiln__scene_free frees them all.
 * A scene is immutable once built, so any number of threads may read it. */
#ifndef KILN_ENGINE_SCENE_DATA_H
#define KILN_ENGINE_SCENE_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
  KILN__MAT_DIFFUSE = 0,    /* Lambertian: albedo */
  KILN__MAT_CONDUCTOR = 1,  /* GGX microfacet metal: albedo is the reflectance F0, roughness */
  KILN__MAT_DIELECTRIC = 2, /* smooth glass: ior, albedo tints transmission */
  KILN__MAT_EMISSIVE = 3    /* emits `emission` (radiance) from its front face; black behind */
} kiln__material_type;

typedef struct kiln__material {
  kiln__material_type type;
  float albedo[3];
  float emission[3];  /* radiance; non-zero only for EMISSIVE */
  float roughness;    /* CONDUCTOR: perceptual roughness in [0, 1]; GGX alpha = roughness^2 */
  float ior;          /* DIELECTRIC: > 1 */
  int32_t texture;    /* index into kiln__scene.textures for an albedo texture, or -1 */
  char *name;         /* for messages; may be NULL */
} kiln__material;

typedef struct kiln__texture {
  int32_t width, height;
  float *rgb; /* width*height*3 linear floats, row 0 at the top (v = 1) */
} kiln__texture;

typedef struct kiln__sphere {
  float center[3], radius;
  uint32_t material, object_id, instance_id;
} kiln__sphere;

typedef enum { KILN__ENV_CONSTANT = 0, KILN__ENV_GRADIENT = 1, KILN__ENV_MAP = 2 } kiln__env_type;

typedef struct kiln__environment {
  kiln__env_type type;
  float color[3];   /* CONSTANT: radiance; GRADIENT: radiance towards -up (horizon/bottom) */
  float top[3];     /* GRADIENT: radiance towards +up; lerp by 0.5 * (1 + dir.y) */
  int32_t texture;  /* MAP: equirectangular radiance map (index into textures), else -1 */
  float intensity;  /* scales all of the above */
  float rotation_deg; /* MAP: rotation about +y */
} kiln__environment;

typedef enum { KILN__CAM_PINHOLE = 0, KILN__CAM_THIN_LENS = 1 } kiln__camera_type;

typedef struct kiln__camera {
  kiln__camera_type type;
  float position[3], look_at[3], up[3];
  float vfov_deg;       /* vertical field of view */
  float aperture;       /* THIN_LENS: lens diameter (world units) */
  float focus_distance; /* THIN_LENS: distance to the plane in focus */
} kiln__camera;

typedef enum { KILN__TONEMAP_NONE = 0, KILN__TONEMAP_FILMIC = 1 } kiln__tonemap;

typedef struct kiln__settings {
  int32_t width, height;
  int32_t spp;           /* samples per pixel */
  int32_t max_bounces;   /* Cycles' meaning: 0 = direct light only (camera ray + light) */
  uint32_t seed;
  float exposure;        /* stops: colour is scaled by 2^exposure before tone mapping */
  kiln__tonemap tonemap; /* applied when converting to 8/16-bit sRGB, never to float passes */
} kiln__settings;

typedef struct kiln__scene {
  /* triangles: ntris of each */
  size_t ntris;
  float *pos;            /* 9 floats per triangle: v0, v1, v2 (world space) */
  float *nrm;            /* 9 floats per triangle (shading normals), or NULL: geometric normal */
  float *uv;             /* 6 floats per triangle, or NULL */
  uint32_t *tri_material;
  uint32_t *tri_object;   /* object id, 1-based, in the order objects appear in the scene */
  uint32_t *tri_instance; /* instance id, 1-based, unique over the scene */

  size_t nspheres;
  kiln__sphere *spheres;

  size_t nmaterials;
  kiln__material *materials;
  size_t ntextures;
  kiln__texture *textures;

  size_t nobjects;
  char **object_names; /* nobjects names (object id k has name object_names[k - 1]) */

  kiln__environment env;
  kiln__camera camera;
  kiln__settings settings;
} kiln__scene;

/* Frees everything s owns (not s itself). NULL is a no-op. */
void kiln__scene_free(kiln__scene *s);

/* The public handle (kiln/scene.h) around a kiln__scene. */
struct kiln_scene {
  kiln__scene data;
};

/* Wraps data into a new handle, taking ownership of what it points to (data itself is copied).
 * NULL on ENOMEM (data is then freed). Tests and the loader build scenes this way. */
struct kiln_scene *kiln__scene_wrap(kiln__scene *data);

#endif
