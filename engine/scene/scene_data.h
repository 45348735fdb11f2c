/* scene_data.h (internal): what engine/scene gives the other engine folders: the scene after
 * loading and validation, flattened for the renderer, and the reader's located-error JSON walk and
 * image reader, which the job reader (engine/batch) uses for job files and thumbnails. Every other
 * folder includes this header only; what the scene folder's own files share is scene_internal.h.
 *
 * The scene loader (load.c, sections.c, objects.c, obj.c, ply.c, ...) produces one kiln__scene;
 * the BVH builder and the renderer (engine/render) only read it. The flat triangle arrays are in
 * world space: object transforms are applied by the loader, quads and boxes are triangulated,
 * quad area lights become two one-sided emissive triangles. Spheres stay analytic. A mesh file
 * placed by several transforms, or placed once with "share": true, is
 * kept once, in object space (a kiln__shared_mesh), with one kiln__placement per transform, when
 * share_mesh (objects.c) says so; any other instanced geometry is copied once per instance into
 * the flat arrays. Colours are linear RGB. Ids are 1-based; 0 means background in the id passes.
 *
 * Ownership: every array is malloc'd and owned by the scene, kiln__scene_free frees them all, but
 * for what a scene loaded through an asset cache borrows from it: a shared mesh's per-triangle
 * arrays (kiln__shared_mesh.source) and texels (kiln__texture.borrowed). Those are the cache's,
 * immutable, and kept alive by the reference the scene holds on the cache (kiln__scene.assets),
 * so that every frame of a job reads one copy of each mesh and image file. A scene is immutable
 * once built, so any number of threads may read it. */
#ifndef KILN_ENGINE_SCENE_DATA_H
#define KILN_ENGINE_SCENE_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>

typedef enum {
  KILN__MAT_DIFFUSE = 0,    /* Lambertian: albedo */
  KILN__MAT_CONDUCTOR = 1,  /* GGX microfacet metal: albedo is the reflectance F0, roughness */
  KILN__MAT_DIELECTRIC = 2, /* smooth glass: ior, albedo tints transmission */
  KILN__MAT_EMISSIVE = 3,   /* emits `emission` (radiance) from its front face; black behind */
  KILN__MAT_PRINCIPLED = 4  /* metallic-roughness (glTF's core, Blender's Principled BSDF) */
} kiln__material_type;

typedef struct kiln__material {
  kiln__material_type type;
  float albedo[3];
  float emission[3]; /* radiance; non-zero only for EMISSIVE */
  float roughness;   /* CONDUCTOR: perceptual roughness in [0, 1]; GGX alpha = roughness^2 */
  float ior;         /* DIELECTRIC: > 1 */
  int32_t texture;   /* index into kiln__scene.textures for an albedo texture, or -1 */
  char *name;        /* for messages; may be NULL */
  /* PRINCIPLED only (the fields below are not read for the other types, so their initialisers
   * may leave them zero): albedo is the base colour, roughness the perceptual roughness (GGX
   * alpha = roughness^2), ior the dielectric specular's (F0 = ((ior - 1) / (ior + 1))^2),
   * emission the emitted radiance, added to what the surface reflects. Each texture index is -1
   * when absent; a texture multiplies the constant it goes with. */
  float metallic;         /* in [0, 1] */
  float alpha;            /* constant coverage in [0, 1] (glTF baseColorFactor's 4th number) */
  float alpha_cutoff;     /* > 0: a hit whose alpha (alpha x alpha_texture) is below it is a
                             hole (glTF alphaMode MASK); 0: opaque, alpha never read */
  float normal_scale;     /* the normal map's x and y scale (glTF normalTexture.scale), 1 */
  int32_t mr_texture;     /* linear; G multiplies roughness, B metallic (glTF's packing) */
  int32_t normal_texture; /* linear tangent-space normal map, +y up (OpenGL / glTF / Blender) */
  int32_t emission_texture; /* sRGB-decoded; multiplies emission */
  int32_t alpha_texture;    /* linear; R is the coverage (the base colour image's alpha) */
  /* applied to the hit's uv before every lookup of this material's textures:
   * u' = uv_xform[0] u + uv_xform[1] v + uv_xform[2], v' = uv_xform[3] u + uv_xform[4] v +
   * uv_xform[5] (kiln's uv: v = 1 at the image's top row); identity {1, 0, 0, 0, 1, 0} */
  float uv_xform[6];
} kiln__material;

typedef struct kiln__texture {
  int32_t width, height;
  float *rgb; /* width*height*3 floats, row 0 at the top (v = 1): linear, or (srgb) the 8-bit
                 sRGB-encoded values / 255 */
  bool srgb;  /* decoded to linear after filtering, in the shader (KILN__TEX_SRGB_FILTERED) */
  bool borrowed; /* rgb is an asset cache's (immutable, alive while the cache is): never freed
                    by the texture's holder; kiln__texture_release frees the others */
} kiln__texture;

/* Frees t's texels unless they are borrowed, and empties t. */
void kiln__texture_release(kiln__texture *t);

/* Punctual lights (glTF's KHR_lights_punctual, Blender's point, spot and sun lamps). Not hit by
 * rays; light reaches surfaces through next-event estimation only. Units (docs/SCENE.md,
 * "Punctual lights"): from Blender, color = lamp colour x watts / (4 pi) (point, spot) or x
 * W/m^2 (sun); from glTF as Blender's importer (683 lm/W), color = colour x candela / 683 (point,
 * spot) or x lux / 683 (directional), cos_inner / cos_outer the cosines of innerConeAngle /
 * outerConeAngle, direction the node's -Z, radius 0. */
typedef enum { KILN__LIGHT_POINT = 0, KILN__LIGHT_SPOT = 1, KILN__LIGHT_SUN = 2 } kiln__light_type;

typedef struct kiln__plight {
  kiln__light_type type;
  float position[3];  /* POINT, SPOT: world space */
  float direction[3]; /* SPOT, SUN: unit, the direction the light travels */
  float color[3];     /* POINT, SPOT: radiant intensity (radiance x area: what reaches a surface
                         facing it at distance d is color / d^2); SUN: irradiance on a surface
                         facing it */
  float radius;       /* POINT, SPOT: the radius of a spherical soft light, 0 a point; SUN: the
                         angular radius in radians of its disc, 0 a parallel light */
  float cos_inner, cos_outer; /* SPOT: full intensity within the inner cone, none outside the
                                 outer one, glTF's smooth falloff between */
  uint32_t object_id; /* its name (object_names); 0: none */
} kiln__plight;

typedef struct kiln__sphere {
  float center[3], radius;
  uint32_t material, object_id, instance_id;
} kiln__sphere;

typedef enum { KILN__ENV_CONSTANT = 0, KILN__ENV_GRADIENT = 1, KILN__ENV_MAP = 2 } kiln__env_type;

typedef struct kiln__environment {
  kiln__env_type type;
  float color[3];     /* CONSTANT: radiance; GRADIENT: radiance towards -up (horizon/bottom) */
  float top[3];       /* GRADIENT: radiance towards +up; lerp by 0.5 * (1 + dir.y) */
  int32_t texture;    /* MAP: equirectangular radiance map (index into textures), else -1 */
  float intensity;    /* scales all of the above */
  float rotation_deg; /* MAP: rotation about +y */
} kiln__environment;

typedef enum { KILN__CAM_PINHOLE = 0, KILN__CAM_THIN_LENS = 1 } kiln__camera_type;

typedef struct kiln__camera {
  kiln__camera_type type;
  float position[3], look_at[3], up[3];
  float vfov_deg;       /* vertical field of view */
  float aperture;       /* THIN_LENS: lens diameter (world units) */
  float focus_distance; /* THIN_LENS: distance to the plane in focus */
  /* Intrinsics in pixels for a k_width x k_height image, as kiln_camera's (kiln/render.h): used
   * instead of vfov_deg when k_width > 0 (vfov_deg then holds their vertical field of view) */
  float fx, fy, cx, cy;
  int32_t k_width, k_height;
} kiln__camera;

/* One placed copy of an object's geometry (the instance pass's ids). Object space is the
 * geometry as its source gives it: a mesh file's coordinates, a primitive's or a light's own
 * numbers; xform places it in the world (instances[k] . transform, docs/SCENE.md). */
typedef struct kiln__instance {
  uint32_t object_id;             /* 1-based */
  float xform[16];                /* object to world, row-major, last row 0 0 0 1 */
  float bbox_min[3], bbox_max[3]; /* object-space axis-aligned box of its geometry */
} kiln__instance;

/* A mesh kept once in object space (its file's coordinates) and placed by kiln__placements. Per
 * triangle as the flat arrays (nrm, uv, col, tan may be NULL; nrm's vertex normals unit, or zero
 * where the file's are). The per-triangle arrays are the file's as decoded (with unit normals),
 * whatever the scene around it: a load through an asset cache borrows them from the cache
 * (source: the cache's entry, the same pointer for every load of the same file), so that two
 * frames' meshes are the same exactly when their sources, slot_material and group_object are.
 * What is the scene's own is in the two small tables: slot_material maps the file's material
 * slots (tri_slot: its usemtl names in order, UINT32_MAX for faces without one, the last slot)
 * to scene materials, group_object its groups (tri_group, 0 .. ngroups - 1, which also picks
 * the instance id within a placement) to object ids (kiln__shared_mesh_material and _object).
 * No triangle's material emits (lights are sampled from world-space triangles, which stay in
 * the flat arrays). */
typedef struct kiln__shared_mesh {
  size_t ntris, ngroups;
  const float *pos, *nrm, *uv, *col, *tan;
  const uint32_t *tri_slot, *tri_group;
  size_t nslots;           /* >= 1 */
  uint32_t *slot_material; /* nslots (malloc'd, owned) */
  uint32_t *group_object;  /* ngroups (malloc'd, owned) */
  const void *source; /* the asset cache entry the per-triangle arrays belong to, or NULL: they
                         are malloc'd and owned by the mesh */
} kiln__shared_mesh;

/* Triangle t's scene material and object id. */
static inline uint32_t kiln__shared_mesh_material(const kiln__shared_mesh *q, size_t t) {
  uint32_t k = q->tri_slot[t];
  return q->slot_material[k == UINT32_MAX ? q->nslots - 1 : k];
}
static inline uint32_t kiln__shared_mesh_object(const kiln__shared_mesh *q, size_t t) {
  return q->group_object[q->tri_group[t]];
}

/* One placed copy of a shared mesh: its groups are instances first_instance .. first_instance +
 * ngroups - 1 of the instance table, whose xform (the same for all of them) places it. */
typedef struct kiln__placement {
  uint32_t mesh;           /* index into kiln__scene.meshes */
  uint32_t first_instance; /* 1-based instance id of its group 0 */
} kiln__placement;

typedef enum { KILN__TONEMAP_NONE = 0, KILN__TONEMAP_FILMIC = 1 } kiln__tonemap;

typedef struct kiln__settings {
  int32_t width, height;
  int32_t spp;         /* samples per pixel */
  int32_t max_bounces; /* Cycles' meaning: 0 = direct light only (camera ray + light) */
  uint32_t seed;
  float exposure;        /* stops: colour is scaled by 2^exposure before tone mapping */
  kiln__tonemap tonemap; /* applied when converting to 8/16-bit sRGB, never to float passes */
} kiln__settings;

typedef struct kiln__scene {
  /* triangles: ntris of each */
  size_t ntris;
  float *pos; /* 9 floats per triangle: v0, v1, v2 (world space) */
  float *nrm; /* 9 floats per triangle (shading normals), or NULL: geometric normal */
  float *uv;  /* 6 floats per triangle, or NULL */
  float *col; /* 9 floats per triangle: linear RGB per vertex, or NULL (white); multiplies a
                 PRINCIPLED material's base colour and the albedo of the other types */
  float *tan; /* 12 floats per triangle: per vertex a unit tangent (world space, along +u) and
                 the bitangent's sign (w = +-1: bitangent = w cross(normal, tangent)), or NULL */
  uint32_t *tri_material;
  uint32_t *tri_object;   /* object id, 1-based, in the order objects appear in the scene */
  uint32_t *tri_instance; /* instance id, 1-based, unique over the scene */

  /* shared meshes and their placements (none: both 0 and NULL) */
  size_t nmeshes;
  kiln__shared_mesh *meshes;
  size_t nplacements;
  kiln__placement *placements;

  size_t nspheres;
  kiln__sphere *spheres;

  size_t nmaterials;
  kiln__material *materials;
  size_t ntextures;
  kiln__texture *textures;

  size_t nobjects;
  char **object_names; /* nobjects names (object id k has name object_names[k - 1]) */
  /* nobjects entries each, or NULL when no object has a category: object id k's category name
   * (NULL: none) and id (0: none) (docs/SCENE.md, "Categories") */
  char **object_category;
  uint32_t *object_category_id;

  /* the categories the scene declares (top-level "categories"), in declaration order; when it
   * declares none, those its objects name, in order of first appearance (categories.c) */
  size_t ncategories;
  char **category_names;
  uint32_t *category_ids; /* unique, >= 1 */

  size_t ninstances;
  kiln__instance *instances; /* instance id k is instances[k - 1] */

  size_t nplights;
  kiln__plight *plights;

  /* What the loader accepted but could not render as written (an MTL key without a meaning
   * here, an ignored glTF feature): each distinct message once, in order of first occurrence. */
  size_t nwarnings;
  char **warnings;

  kiln__environment env;
  kiln__camera camera;
  kiln__settings settings;

  /* the asset cache the scene borrows meshes and texels from (a reference: kiln__scene_free
   * releases it), or NULL */
  struct kiln__asset_cache *assets;
} kiln__scene;

/* Frees everything s owns (not s itself) and releases its asset cache. NULL is a no-op. */
void kiln__scene_free(kiln__scene *s);
/* Frees what m owns (not what it borrows). */
void kiln__shared_mesh_free(kiln__shared_mesh *m);
/* Placement p's object-to-world transform, row-major 3x4 (the instance table's rows). */
static inline const float *kiln__placement_xform(const kiln__scene *s, const kiln__placement *p) {
  return s->instances[p->first_instance - 1].xform;
}
/* The triangles a scene renders: the flat ones and every placement's. */
size_t kiln__scene_triangles(const kiln__scene *s);

/* The public handle (kiln/scene.h) around a kiln__scene. */
struct kiln_scene {
  kiln__scene data;
};

/* Wraps data into a new handle, taking ownership of what it points to (data itself is copied).
 * NULL on ENOMEM (data is then freed). Tests and the loader build scenes this way. */
struct kiln_scene *kiln__scene_wrap(kiln__scene *data);

/* ---- asset_cache.c: files decoded once for many loads ------------------------------------- */

/* Mesh files (OBJ, PLY) and image files (textures, environment maps) as decoded by one load,
 * kept for the next loads that name the same file, unchanged on disk (path, inode, size and
 * modification time): a job's frames with overrides are loads of its scene with other numbers.
 * glTF files are not kept (they go into the scene whole). Owned by its creator; any number of
 * loads may use one cache at once. */
#include "kiln/error.h"
#include "kiln/sched.h"

typedef struct kiln__asset_cache kiln__asset_cache;

/* A new cache holding one reference (its creator's). 0 or KILN_ENOMEM. */
int kiln__asset_cache_create(kiln__asset_cache **out);
/* Takes one more reference on c (a scene that borrows from it, a renderer that keeps pointers
 * into it) and returns c. Any thread. */
kiln__asset_cache *kiln__asset_cache_retain(kiln__asset_cache *c);
/* Drops a reference; the last one frees the cache and everything in it. A scene loaded through
 * the cache keeps it, so its creator may drop its own before such scenes are freed. NULL is a
 * no-op. Any thread. */
void kiln__asset_cache_destroy(kiln__asset_cache *c);
/* Files decoded (misses) and files served from the cache (hits) so far. Any thread. */
void kiln__asset_cache_stats(kiln__asset_cache *c, uint64_t *reads, uint64_t *hits);

/* kiln_scene_load_pool and kiln_scene_load_string (cache may be NULL: none). The same scene,
 * the same errors. */
int kiln__scene_load_cached(kiln_pool *pool, const char *path, kiln__asset_cache *cache,
                            kiln_error_detail *err, struct kiln_scene **out);
int kiln__scene_load_string_cached(const char *json, const char *base_dir,
                                   const char *name_for_messages, kiln_pool *pool,
                                   kiln__asset_cache *cache, kiln_error_detail *err,
                                   struct kiln_scene **out);

/* Whether kiln_scene_load reads path as a glTF (.gltf / .glb, any case) rather than scene JSON. */
bool kiln__is_gltf_path(const char *path);
/* The JSON scene equivalent to s, a glTF loaded as the whole scene from path: the file as one
 * object (with its lights), s's camera, environment and settings; what the job reader patches
 * with per-frame overrides. malloc'd text, or NULL on ENOMEM. */
char *kiln__gltf_scene_json(const struct kiln_scene *s, const char *path);

/* ---- the located-error JSON walk (load.c), shared with the job reader ------------------------ */

#include "kiln/error.h"

struct cJSON; /* <cjson/cJSON.h>: `cJSON` there is this struct */

enum { KILN__SJ_MAX_DEPTH = 32 };

/* One step of a JSON path: an object key (key != NULL; index: which occurrence of the key, 0 for
 * the first) or an array index. */
typedef struct kiln__jpath_step {
  const char *key;
  int index;
} kiln__jpath_step;

/* The scene loader's own state during one load (scene_internal.h); NULL in a ctx that walks
 * another document (a job file, a list line). */
typedef struct kiln__sj_load kiln__sj_load;

/* The walk of one JSON text: where it is (path, depth) and where errors go. Every kiln__sj_
 * function that returns int returns 0 or a KILN_E* code with *err filled (code, file, line,
 * column, path, message); the first error ends the walk, so callers return it at once (the path is
 * left as it was, which is what the error reported). */
typedef struct kiln__sj_ctx {
  const char *text, *file, *base_dir;
  kiln_error_detail *err;
  kiln__jpath_step path[KILN__SJ_MAX_DEPTH];
  int depth;
  kiln__sj_load *ld;
} kiln__sj_ctx;

#if defined(__GNUC__) || defined(__clang__)
#define KILN__PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#define KILN__PRINTF(fmt_index, first_arg)
#endif

void kiln__sj_push_key(kiln__sj_ctx *c, const char *key);
void kiln__sj_push_index(kiln__sj_ctx *c, int i);
void kiln__sj_pop(kiln__sj_ctx *c);
/* A KILN_EPARSE error at the value of the current path (at member key of it: _at). */
int kiln__sj_fail(kiln__sj_ctx *c, const char *fmt, ...) KILN__PRINTF(2, 3);
int kiln__sj_fail_at(kiln__sj_ctx *c, const char *key, const char *fmt, ...) KILN__PRINTF(3, 4);
int kiln__sj_nomem(kiln__sj_ctx *c);
/* The name of names (NULL-terminated) closest to s by edit distance, or NULL when none is close. */
const char *kiln__sj_closest(const char *s, const char *const *names);
int kiln__sj_expect_object(kiln__sj_ctx *c, const struct cJSON *o, const char *what);
int kiln__sj_check_keys(kiln__sj_ctx *c, const struct cJSON *o, const char *const *allowed);
int kiln__sj_num(kiln__sj_ctx *c, const struct cJSON *o, const char *key, bool required, double def,
                 double lo, double hi, double *out);
int kiln__sj_integer(kiln__sj_ctx *c, const struct cJSON *o, const char *key, double def, double lo,
                     double hi, double *out);
int kiln__sj_vec3_value(kiln__sj_ctx *c, const struct cJSON *v, const char *what, double lo,
                        double hi, float out[3]);
int kiln__sj_vec3(kiln__sj_ctx *c, const struct cJSON *o, const char *key, const float *def,
                  double lo, double hi, float out[3]);
int kiln__sj_string(kiln__sj_ctx *c, const struct cJSON *o, const char *key, const char *def,
                    const char **out);
int kiln__sj_choice(kiln__sj_ctx *c, const struct cJSON *o, const char *key, const char *def,
                    const char *const *choices, int *out);
/* Checks a transform object (docs/SCENE.md, "Transforms") at the current path. */
int kiln__sj_check_xform(kiln__sj_ctx *c, const struct cJSON *o);

/* ---- plights.c ------------------------------------------------------------------------------ */

/* The keys a "point", "spot" or "sun" entry of a scene's `lights` may have (NULL-terminated):
 * what a job's per-frame light override of such a light may name. NULL for another type. */
const char *const *kiln__plight_keys(const char *type);

/* ---- camera_json.c: a camera's matrix and intrinsics -------------------------------------- */

/* The keys of a camera object beyond position, look_at, up and vfov, for the allowed-key lists of
 * the readers that accept a camera (NULL-free: list them before the list's NULL). */
#define KILN__SJ_CAMERA_EXTRA_KEYS "matrix", "convention", "fx", "fy", "cx", "cy", "K", \
                                   "intrinsics_size"

/* What a camera object says with those keys (docs/SCENE.md, "camera"). */
typedef struct kiln__cam_extra {
  bool pose; /* "matrix" given: position, look_at (a point ahead on the view axis) and up */
  float position[3], look_at[3], up[3];
  bool intrinsics; /* "fx"... or "K" given: the fields below */
  float fx, fy, cx, cy;
  int32_t k_width, k_height;
  float vfov_deg; /* the intrinsics' vertical field of view (for whoever needs one) */
} kiln__cam_extra;

/* Reads those keys of camera object o (at the current path; its keys already checked) into *out
 * (zeroed first): a matrix must be a rotation and a translation and excludes position, look_at
 * and up; intrinsics exclude vfov, default to image size width x height, and need fx > 0 and
 * fy > 0 (fy defaults to fx, cx and cy to the image's centre). 0, or KILN_EPARSE (located). */
int kiln__sj_camera_extra(kiln__sj_ctx *c, const struct cJSON *o, int32_t width, int32_t height,
                          kiln__cam_extra *out);

/* ---- categories.c: a "categories" declaration, which scenes and jobs share ---------------- */

typedef struct kiln__category {
  char *name;
  uint32_t id;
} kiln__category;

/* Reads the declaration o (at the current path): an array of names, ids 1..n in order, or an
 * object {name: id} (ids integers >= 1); names and ids distinct. *out gets *n entries (malloc'd,
 * names owned: kiln__categories_free), in declaration order. */
int kiln__sj_categories(kiln__sj_ctx *c, const struct cJSON *o, kiln__category **out, size_t *n);
void kiln__categories_free(kiln__category *cats, size_t n);
/* The index of name in cats (linear), or -1. */
int kiln__categories_find(const kiln__category *cats, size_t n, const char *name);

/* ---- names in O(n log n) (name_index.c) ----------------------------------------------------- */

/* A name and its position in a document (0-based, in document order). name is borrowed. */
typedef struct kiln__name_ref {
  const char *name;
  size_t index;
} kiln__name_ref;

/* Sorts refs by name, equal names by index, so that a name's occurrences are neighbours. */
void kiln__names_sort(kiln__name_ref *refs, size_t n);
/* In sorted refs: the smallest index whose name occurs at a smaller index too (the first repeat
 * in document order, always a second occurrence), or SIZE_MAX when the names are distinct. */
size_t kiln__names_first_repeat(const kiln__name_ref *sorted, size_t n);
/* In sorted refs: the first occurrence (smallest index) of name, or NULL; *count (when count is
 * not NULL) gets the number of occurrences. */
const kiln__name_ref *kiln__names_find(const kiln__name_ref *sorted, size_t n, const char *name,
                                       size_t *count);
/* *repeat: the first member of object o (in document order) whose key an earlier member has too,
 * or NULL when its keys are distinct. 0, or KILN_ENOMEM (*repeat NULL). */
int kiln__json_first_repeat(const struct cJSON *o, const struct cJSON **repeat);

/* Finds the value at path (n steps) in the JSON text and sets *line and *column (1-based; column
 * counts bytes) of its first character, or of its key when at_key and the last step is a key.
 * Returns false (and the position of the deepest step found) when the path is not in the text
 * (json_locate.c). */
bool kiln__json_locate(const char *text, const kiln__jpath_step *path, int n, bool at_key,
                       int *line, int *column);

/* The byte offset of the first \u0000 escape inside a string of the JSON text (already parsed by
 * cJSON, which would truncate the string there), or (size_t)-1 when there is none. */
size_t kiln__json_nul_escape(const char *text);

/* Line and column (1-based) of byte offset off in text. */
void kiln__text_position(const char *text, size_t off, int *line, int *column);

static inline double kiln__len3(const float v[3]) {
  return sqrt((double)v[0] * v[0] + (double)v[1] * v[1] + (double)v[2] * v[2]);
}

static inline void kiln__cross3(const float a[3], const float b[3], float out[3]) {
  out[0] = a[1] * b[2] - a[2] * b[1];
  out[1] = a[2] * b[0] - a[0] * b[2];
  out[2] = a[0] * b[1] - a[1] * b[0];
}

/* ---- texture.c: image files ------------------------------------------------------------------ */

/* How an image's values become kiln's linear floats. */
typedef enum {
  KILN__TEX_SRGB = 0,   /* PNG or JPEG, 8-bit values sRGB-decoded (colours) */
  KILN__TEX_LINEAR = 1, /* PNG or JPEG, values / 255 as they are (normal, roughness, metallic,
                           alpha maps) */
  KILN__TEX_HDR = 2,    /* a floating-point map (environment), Radiance .hdr or OpenEXR: linear
                           as stored (RGBE as (m + 0.5) 2^(e - 136); EXR's NaN / Inf texels
                           black, negative channels 0) */
  KILN__TEX_SRGB_FILTERED = 3 /* PNG or JPEG colours kept encoded (values / 255) and decoded
                                 after filtering, as Cycles filters 8-bit sRGB images: the
                                 principled material's base colour and emission */
} kiln__tex_mode;

/* Decodes the image in data[0..n) into t (rgb), and when alpha is not NULL its alpha channel
 * into *alpha (R = G = B = coverage in [0, 1], linear; alpha->rgb NULL when the image has none).
 * name is for messages only. Codes as kiln__texture_load. */
int kiln__texture_decode(const unsigned char *data, size_t n, kiln__tex_mode mode, kiln__texture *t,
                         kiln__texture *alpha, char *msg, size_t msgsz);
/* kiln__texture_decode of the file at path. */
int kiln__texture_load_ex(const char *path, kiln__tex_mode mode, kiln__texture *t,
                          kiln__texture *alpha, char *msg, size_t msgsz);

/* Loads an 8-bit PNG/JPEG (is_hdr false: sRGB decoded to linear) or a Radiance .hdr or OpenEXR
 * map (is_hdr: linear, as KILN__TEX_HDR says) into t. The format is decided by the file's first bytes; sizes are checked
 * before allocating (docs/SCENE.md, Image files). KILN_EIO if the file cannot be read,
 * KILN_EPARSE if it is not a decodable image of the kind asked for (msg says why), KILN_ENOMEM. */
int kiln__texture_load(const char *path, bool is_hdr, kiln__texture *t, char *msg, size_t msgsz);

/* One scanline of a Radiance .hdr of width w at *pp (before end): flat RGBE, or the run-length
 * form of widths 8..32767, decoded into line (4 w bytes, RGBE) and *pp moved past it. NULL, or
 * why it is malformed ("... (truncated)" when the data ends inside it). What kiln verify checks
 * written .hdr files with too. */
const char *kiln__hdr_scanline(const unsigned char **pp, const unsigned char *end, uint32_t w,
                               unsigned char *line);

#endif
