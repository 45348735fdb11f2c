/* scene_internal.h (internal): what the files of engine/scene share (what other folders use of
 * them is in scene_data.h, which this includes).
 *
 *   load.c         the JSON format (docs/SCENE.md): the walk's paths, located errors, typed
 *                  getters; kiln_scene_load
 *   sections.c     settings, camera, environment, materials, textures, transforms
 *   camera_json.c  a camera's matrix and intrinsics (shared with the job reader: scene_data.h)
 *   objects.c      objects (mesh files, loaded once each and in parallel on a pool; primitives)
 *                  and quad lights, each instance's entry in the instance table
 *   categories.c   the scene's categories and the objects' ("category", "category_id")
 *   json_locate.c  line/column of a JSON path in the scene text (cJSON keeps no positions)
 *   obj.c, ply.c   mesh files -> kiln__mesh (a triangle soup in object space)
 *   mtl.c          an MTL material that asks for more than diffuse / emissive -> principled
 *   gltf.cpp       glTF 2.0 (.gltf, .glb) through tinygltf: meshes, nodes, materials, lights,
 *                  camera, straight into the builder (the one C++ file, behind a C interface)
 *   texture.c      PNG/JPEG albedo textures (sRGB -> linear; libspng, libjpeg-turbo), .hdr
 *                  maps (its own reader) and .exr maps (tinyexr); kiln__texture_load is declared
 *                  in scene_data.h
 *   build.c        growing the flattened kiln__scene: triangles, transforms, primitives
 *   scene_data.c   the public handle around a kiln__scene
 *
 * Nothing here prints or exits; every failure is a KILN_E* code plus a message. */
#ifndef KILN_ENGINE_SCENE_INTERNAL_H
#define KILN_ENGINE_SCENE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"

#include <cjson/cJSON.h>

#include "kiln/scene.h"
#include "kiln/sched.h"
#include "scene_data.h"

/* ---- obj.c, ply.c ------------------------------------------------------------------------ */

/* The texture maps of an MTL material that kiln renders (map_Ks and the others are warned about
 * and dropped when read). */
enum {
  KILN__MTL_MAP_KD,   /* map_Kd: base colour (sRGB) */
  KILN__MTL_MAP_KE,   /* map_Ke: emission (sRGB) */
  KILN__MTL_MAP_NS,   /* map_Ns: roughness as it is (what Blender's importer wires) */
  KILN__MTL_MAP_PR,   /* map_Pr: roughness */
  KILN__MTL_MAP_PM,   /* map_Pm: metallic */
  KILN__MTL_MAP_D,    /* map_d: coverage */
  KILN__MTL_MAP_BUMP, /* map_Bump, bump, norm: a tangent-space normal map */
  KILN__MTL_NMAPS
};

typedef struct kiln__mtl_map {
  char *path;        /* as written in the MTL, joined to the MTL's folder; NULL: no such map */
  float uv_xform[6]; /* from -o and -s: u' = s_u u + o_u, v' = s_v v + o_v (scene_data.h's form) */
  float bm;          /* -bm: the normal map's strength (bump maps only); 1 */
} kiln__mtl_map;

/* A material read from an MTL file. A negative number stands for a key not given. */
typedef struct kiln__mtl {
  char *name;
  float kd[3], ke[3];  /* 0.8 and 0 when not given */
  float ks[3], ka[3];  /* [0] < 0: not given */
  float ns, d, pr, pm; /* Ns, d (or 1 - Tr), Pr, Pm; < 0: not given */
  bool d_from_tr;      /* d came from Tr (a later d wins over it) */
  bool kd_given;       /* Blender's exporter leaves Kd out when a map_Kd replaces it */
  int illum;           /* -1: not given */
  kiln__mtl_map maps[KILN__MTL_NMAPS];
  size_t nwarnings;
  char **warnings; /* "file:line: text": what it says that kiln does not render, each passed to
                      kiln__sb_warn when a scene uses the material */
} kiln__mtl;

/* A mesh file's triangles in object space, unindexed. */
typedef struct kiln__mesh {
  size_t ntris;
  float *pos;          /* 9 per triangle */
  float *nrm;          /* 9 per triangle, or NULL; where a face had none, its geometric normal */
  float *uv;           /* 6 per triangle, or NULL; (0,0) where a face had none */
  float *col;          /* 9 per triangle (linear RGB per vertex), or NULL; white where none */
  float *tan;          /* 12 per triangle (tangent xyz + bitangent sign), or NULL */
  uint32_t *tri_group; /* per triangle: index into groups */
  uint32_t *tri_mat;   /* per triangle: index into mat_names, or UINT32_MAX for none */
  size_t ngroups;
  char **groups; /* OBJ `o` names ("" for faces before any `o`); PLY: one group, "" */
  size_t nmat_names;
  char **mat_names; /* OBJ `usemtl` names in first-use order */
  size_t nmtls;
  kiln__mtl *mtls; /* definitions from the `mtllib` files */
  char *mtl_dir;   /* the OBJ's folder, which mtllib names are relative to */
} kiln__mesh;

/* Where a mesh file went wrong: the file (OBJ, MTL or PLY), its line (0 if none applies). */
typedef struct kiln__mesh_error {
  char file[512];
  int line;
  char message[256];
} kiln__mesh_error;

/* Load path into *m (zeroed first). KILN_EIO (cannot open/read), KILN_EPARSE (malformed, with
 * err->line), KILN_ENOMEM. On failure *m holds nothing. */
int kiln__obj_load(const char *path, kiln__mesh *m, kiln__mesh_error *err);
int kiln__ply_load(const char *path, kiln__mesh *m, kiln__mesh_error *err);
void kiln__mesh_free(kiln__mesh *m);

/* The unit geometric normal of triangle p (9 floats), cross(v1 - v0, v2 - v0); zero when the
 * triangle is degenerate (build.c). */
void kiln__tri_normal(const float p[9], float n[3]);

/* The next whitespace-separated token of the line at *p, NUL-terminated in place (the line is
 * modified); NULL at the end of the line. Shared by the OBJ and PLY readers (obj.c). */
char *kiln__mesh_token(char **p);

/* Appends a triangle to m (growing its arrays). n and uv may be NULL. */
int kiln__mesh_push(kiln__mesh *m, size_t *cap, const float p[9], const float *n, const float *uv,
                    uint32_t group, uint32_t mat);
/* Sets the vertex colours (9 floats, linear RGB) of the triangle kiln__mesh_push appended last;
 * the first call makes m->col, the earlier triangles white. cap is kiln__mesh_push's. */
int kiln__mesh_push_col(kiln__mesh *m, size_t cap, const float col[9]);
/* sRGB-encoded value in [0, 1] to linear (IEC 61966-2-1), as vertex colours are stored. */
float kiln__srgb_to_linear(float x);

/* ---- texture.c ----------------------------------------------------------------------------- */

/* What one image file may claim before kiln__texture_load allocates anything for it: sides of at
 * most KILN__TEXTURE_MAX_SIDE pixels, and at most KILN__TEXTURE_MAX_BYTES as kiln keeps it (3
 * floats a texel: 8192 x 4096 fits, 8192 x 8192 does not). docs/SCENE.md states both. */
#define KILN__TEXTURE_MAX_SIDE 16384
#define KILN__TEXTURE_MAX_BYTES ((uint64_t)512 << 20)

/* ---- asset_cache.c ------------------------------------------------------------------------ */

/* Mesh file path read as OBJ (is_obj) or PLY: *out borrowed from c until its last reference is
 * dropped (the same pointer for every hit on the entry), or the reader's error (codes as
 * kiln__obj_load). Any thread. */
int kiln__asset_cache_mesh(kiln__asset_cache *c, const char *path, bool is_obj,
                           const kiln__mesh **out, kiln__mesh_error *err);
/* What a load reads of mesh m besides its arrays, the same for every load of the file
 * (objects.c): each group's object-space box (all zero for a group without triangles), and
 * which material slots its faces use (used[k] for tri_mat k, used[nmat_names] for faces without
 * one). */
typedef struct kiln__mesh_facts {
  float (*box)[2][3]; /* ngroups (malloc'd) */
  bool *used;         /* nmat_names + 1 (malloc'd) */
} kiln__mesh_facts;
/* *f (zeroed first) for m: 0 or KILN_ENOMEM (f then holds nothing). O(triangles). */
int kiln__mesh_facts_make(const kiln__mesh *m, kiln__mesh_facts *f);
void kiln__mesh_facts_free(kiln__mesh_facts *f);
/* kiln__mesh_facts_make of m (from kiln__asset_cache_mesh of c), made on the first call and kept
 * with the entry: *out borrowed as the mesh is. 0 or KILN_ENOMEM. Any thread. */
int kiln__asset_cache_mesh_facts(kiln__asset_cache *c, const kiln__mesh *m,
                                 const kiln__mesh_facts **out);
/* mesh m's (from kiln__asset_cache_mesh of c) vertex normals made unit (kiln__unit_normals),
 * computed on the first call and kept with the entry: *out borrowed as the mesh is, NULL when m
 * has none. 0 or KILN_ENOMEM. Any thread. */
int kiln__asset_cache_unit_normals(kiln__asset_cache *c, const kiln__mesh *m, const float **out);
/* kiln__texture_load_ex, from c when it holds the file read the same way: t (and alpha) are
 * the cache's texels, borrowed (t->borrowed; alive while c is), or, when c could not keep them,
 * the caller's own. Any thread. */
int kiln__asset_cache_texture(kiln__asset_cache *c, const char *path, kiln__tex_mode mode,
                              kiln__texture *t, kiln__texture *alpha, char *msg, size_t msgsz);
/* kiln__texture_load_ex through the load's cache, if it has one (sections.c). */
int kiln__sj_texture_file(kiln__sj_ctx *c, const char *path, kiln__tex_mode mode, kiln__texture *t,
                          kiln__texture *alpha, char *msg, size_t msgsz);

/* ---- build.c ------------------------------------------------------------------------ */

/* A 4x4 affine transform, row-major: p' = m * [p, 1]. */
typedef struct kiln__xform {
  double m[4][4];
} kiln__xform;

void kiln__xform_identity(kiln__xform *x);
void kiln__xform_mul(kiln__xform *out, const kiln__xform *a, const kiln__xform *b); /* a * b */
void kiln__xform_point(const kiln__xform *x, const float in[3], float out[3]);
/* Determinant of the upper-left 3x3. */
double kiln__xform_det3(const kiln__xform *x);

/* The scene under construction: kiln__scene plus capacities. */
typedef struct kiln__scene_builder {
  kiln__scene s;
  size_t tri_cap, sphere_cap, mat_cap, tex_cap, obj_cap, inst_cap;
  bool any_nrm, any_uv;
  size_t col_cap, tan_cap, plight_cap, warn_cap;
  size_t mesh_cap, placement_cap;
  uint32_t next_instance; /* the next instance id to hand out (1-based) */
} kiln__scene_builder;

/* Appends a triangle; p, n (may be NULL: geometric normal), uv (may be NULL) in world space.
 * KILN_EINVAL (nothing appended) if a position is not finite; the geometry functions below pass
 * that on, and KILN_ENOMEM.
 * Triangles of a transform with negative determinant should be passed with v1, v2 swapped so that
 * the front face stays the side of cross(v1 - v0, v2 - v0). */
int kiln__sb_tri(kiln__scene_builder *b, const float p[9], const float *n, const float *uv,
                 uint32_t mat, uint32_t obj, uint32_t inst);
/* Sets the vertex colours (9 floats, linear RGB) and / or tangents (12 floats: xyz + bitangent
 * sign, in world space) of the last triangle appended; either may be NULL (left as they are:
 * white, no tangent). The arrays are made on first use, earlier triangles white / zero.
 * KILN_ENOMEM. */
int kiln__sb_tri_attrs(kiln__scene_builder *b, const float *col, const float *tan);
/* Appends mesh m transformed by x (its colours, and its tangents by x's 3x3, too); mats (nmat_names + 1 entries) maps m's tri_mat to scene
 * materials, its last entry standing for faces without one (UINT32_MAX); group g of m becomes
 * object id obj_of_group[g]; the instance id is inst_of_group[g]. */
int kiln__sb_mesh(kiln__scene_builder *b, const kiln__mesh *m, const kiln__xform *x,
                  const uint32_t *mats, const uint32_t *obj_of_group,
                  const uint32_t *inst_of_group);
/* Adds m (its materials mats as kiln__sb_mesh takes them, its groups' object ids obj_of_group) as
 * a shared mesh of the scene, in object space; *out its index. With cache (then the scene's
 * assets), m is the cache's (kiln__asset_cache_mesh) and the mesh borrows its arrays; without,
 * it copies them. 0 or KILN_ENOMEM. */
int kiln__sb_shared_mesh(kiln__scene_builder *b, const kiln__mesh *m, kiln__asset_cache *cache,
                         const uint32_t *mats, const uint32_t *obj_of_group, uint32_t *out);
/* A copy of ntris triangles' vertex normals nrm (9 floats each), each made unit (zero stays
 * zero): what a shared mesh holds. malloc'd, or NULL on ENOMEM (or for nrm NULL). */
float *kiln__unit_normals(const float *nrm, size_t ntris);
/* Places shared mesh `mesh`: its groups are instances first_instance.. (already recorded with
 * kiln__sb_instance). 0 or KILN_ENOMEM. */
int kiln__sb_placement(kiln__scene_builder *b, uint32_t mesh, uint32_t first_instance);
/* Quad p, p + u, p + u + v, p + v as two triangles whose front faces cross(u, v). */
int kiln__sb_quad(kiln__scene_builder *b, const float p[3], const float u[3], const float v[3],
                  const kiln__xform *x, uint32_t mat, uint32_t obj, uint32_t inst);
/* Axis-aligned box lo..hi (12 triangles facing outwards), then transformed by x. */
int kiln__sb_box(kiln__scene_builder *b, const float lo[3], const float hi[3], const kiln__xform *x,
                 uint32_t mat, uint32_t obj, uint32_t inst);
int kiln__sb_sphere(kiln__scene_builder *b, const float c[3], float r, uint32_t mat, uint32_t obj,
                    uint32_t inst);
/* Appends a material (taking name) / texture (taking its pixels) / object name (copied). The index
 * (0-based) or object id (1-based) goes to *out. */
int kiln__sb_material(kiln__scene_builder *b, const kiln__material *mat, uint32_t *out);
int kiln__sb_texture(kiln__scene_builder *b, kiln__texture *t, uint32_t *out);
int kiln__sb_object(kiln__scene_builder *b, const char *name, uint32_t *out);
/* Records instance id inst (1-based, handed out in order by next_instance): object obj placed by
 * x, its object-space box lo..hi. KILN_ENOMEM. */
int kiln__sb_instance(kiln__scene_builder *b, uint32_t inst, uint32_t obj, const kiln__xform *x,
                      const float lo[3], const float hi[3]);
/* Appends a punctual light (copied). KILN_ENOMEM. */
int kiln__sb_plight(kiln__scene_builder *b, const kiln__plight *l);
/* Adds a warning (printf format) unless the same text is there already. KILN_ENOMEM. */
int kiln__sb_warn(kiln__scene_builder *b, const char *fmt, ...) KILN__PRINTF(2, 3);
/* Finishes: drops the normal/uv arrays nothing used. The builder's scene is then complete. */
void kiln__sb_finish(kiln__scene_builder *b);

/* ---- gltf.cpp: glTF 2.0 files (tinygltf, the one C++ file; docs/SCENE.md "glTF") ----------- */

/* What a glTF file adds to the scene being built. */
typedef struct kiln__gltf_opts {
  const kiln__xform *xs; /* nx placements of the glTF's whole scene (instances[k] * transform) */
  size_t nx;
  const char *name;  /* the JSON object's name: object names become "name.node"; NULL: node's */
  bool has_material; /* every primitive gets scene material `material` (an override) */
  uint32_t material;
  bool lights; /* add the file's KHR_lights_punctual lights */
  bool camera; /* set the scene camera: the scene's first camera node, else one framing it */
} kiln__gltf_opts;

/* Where a glTF file went wrong. */
typedef struct kiln__gltf_error {
  char file[512];   /* the .gltf / .glb, or an image file it names */
  int line, column; /* of the value at fault in a .gltf's JSON text; 0 for .glb and other files */
  char path[256];   /* its JSON path in the glTF ("meshes[2].primitives[0].mode"); "" for the
                       file as a whole (a truncated .glb, malformed JSON) */
  char message[256];
} kiln__gltf_error;

/* Reads the glTF at path (.gltf or .glb, told apart by its first bytes) and adds its default scene
 * (else scene 0, else every root node) to b: one object per node with a mesh (ids *first_obj ..
 * *first_obj + *nobjs - 1, in node order), with one instance per placement; its materials,
 * textures (decoded by kiln__texture_decode), and as o says its lights and camera. Warnings (what
 * is ignored) go to kiln__sb_warn. 0, or KILN_EIO / KILN_EPARSE / KILN_ENOMEM with *err filled;
 * on failure b may hold part of the file (the caller discards the scene). Never throws. */
int kiln__gltf_add(kiln__scene_builder *b, const char *path, const kiln__gltf_opts *o,
                   uint32_t *first_obj, uint32_t *nobjs, kiln__gltf_error *err);

/* ---- the JSON reader (load.c, sections.c, objects.c) ------------------------------------- */


typedef struct kiln__sj_named_mat {
  const char *name; /* borrowed from the cJSON tree */
  uint32_t index;
} kiln__sj_named_mat;

/* One image file decoded in one mode: the same file as sRGB and as linear is two textures. alpha
 * is the texture of its alpha plane (kiln__sj_texture_ex with alpha wanted; -1: none, or not
 * asked for yet while !alpha_read). */
typedef struct kiln__sj_tex_entry {
  char *path;
  kiln__tex_mode mode;
  uint32_t index;
  int32_t alpha;
  bool alpha_read;
} kiln__sj_tex_entry;

/* A mesh file the scene names, loaded once however many objects name it. */
typedef struct kiln__sj_mesh_entry {
  char *path;
  bool is_obj;
  bool loaded;   /* written by the loading task, read after kiln_map returns (which orders them) */
  bool borrowed; /* the mesh is the load's asset cache's: cached, not mesh */
  kiln__sj_load *ld;
  int rc;
  kiln__mesh mesh;          /* the file read by this load (owned), unless borrowed */
  const kiln__mesh *cached; /* borrowed: the cache's entry (its address is its identity) */
  kiln__mesh_error err;
} kiln__sj_mesh_entry;

/* The scene loader's state during one load (a kiln__sj_ctx points to it). */
struct kiln__sj_load {
  kiln_pool *pool;          /* loads mesh files in parallel, or NULL */
  kiln__asset_cache *cache; /* mesh and image files decoded by earlier loads, or NULL */
  kiln__sj_mesh_entry *meshes;
  size_t nmeshes;
  kiln__scene_builder b;
  kiln__sj_named_mat *mats; /* in document order (the did-you-mean list takes the first ones) */
  size_t nmats;
  kiln__name_ref *mat_index; /* every name of "materials", sorted: index is into mats */
  kiln__sj_tex_entry *texs;
  size_t ntexs;
  /* categories (categories.c): the declared ones (declared) or those objects name, in order */
  bool declared;
  kiln__category *cats; /* an object's undeclared name has id 0 until kiln__sj_categories_finish */
  size_t ncats, cats_cap;
  int32_t *obj_cat; /* per object id - 1: index into cats, -1 none; obj_cat_n entries */
  size_t obj_cat_n, obj_cat_cap;
};


/* ---- load.c: the walk's helpers that only the scene reader uses (the others: scene_data.h) ---- */

int kiln__sj_file_fail(kiln__sj_ctx *c, int code, const char *file, int line, const char *msg);
char *kiln__sj_scene_path(kiln__sj_ctx *c, const char *name);

/* ---- sections.c ---------------------------------------------------------------------- */

int kiln__sj_parse_settings(kiln__sj_ctx *c, const cJSON *o);
int kiln__sj_parse_camera(kiln__sj_ctx *c, const cJSON *o);
int kiln__sj_texture(kiln__sj_ctx *c, const char *dir, const char *name, bool hdr, int32_t *out);
/* Loads (once per file and mode) the texture named by the value at the current path, relative to
 * dir (NULL: the scene's folder); *out its index. alpha (may be NULL): the texture of the
 * image's alpha plane, -1 when it has none (PNG with alpha or tRNS only). */
int kiln__sj_texture_ex(kiln__sj_ctx *c, const char *dir, const char *name, kiln__tex_mode mode,
                        int32_t *alpha, int32_t *out);
int kiln__sj_parse_environment(kiln__sj_ctx *c, const cJSON *o);
int kiln__sj_parse_materials(kiln__sj_ctx *c, const cJSON *o);
const kiln__sj_named_mat *kiln__sj_find_material(const kiln__sj_ctx *c, const char *name);
int kiln__sj_object_material(kiln__sj_ctx *c, const cJSON *obj, const char *obj_name, bool required,
                             bool *present, uint32_t *out);
/* A transform object into *x (identity when o is NULL). */
int kiln__sj_parse_xform(kiln__sj_ctx *c, const cJSON *o, kiln__xform *x);
/* Object obj's "transform" member into *x (identity when it has none), its errors at that key. */
int kiln__sj_member_xform(kiln__sj_ctx *c, const cJSON *obj, kiln__xform *x);
int kiln__sj_parse_instances(kiln__sj_ctx *c, const cJSON *obj, kiln__xform **xs, size_t *nx);

/* ---- categories.c ------------------------------------------------------------------------ */

/* The top-level "categories" (o, may be NULL: none declared). */
int kiln__sj_parse_categories(kiln__sj_ctx *c, const cJSON *o);
/* The "category" and "category_id" of the object or light obj (at the current path), given to
 * object ids first..last inclusive. */
int kiln__sj_object_category(kiln__sj_ctx *c, const cJSON *obj, uint32_t first, uint32_t last);
/* After every object: ids for undeclared names, and the scene's category arrays. */
int kiln__sj_categories_finish(kiln__sj_ctx *c);

/* ---- objects.c ----------------------------------------------------------------------- */

int kiln__sj_preload_meshes(kiln__sj_ctx *c, const cJSON *root);
int kiln__sj_parse_object(kiln__sj_ctx *c, const cJSON *obj);
int kiln__sj_parse_light(kiln__sj_ctx *c, const cJSON *o);

/* ---- plights.c ----------------------------------------------------------------------- */

/* A point, spot or sun entry of `lights` (o, at the current path; its type already read). */
int kiln__sj_parse_plight(kiln__sj_ctx *c, const cJSON *o, kiln__light_type type);

/* ---- mtl.c -------------------------------------------------------------------------------- */

/* Whether MTL material d asks for more than a diffuse or emissive material: a specular or
 * metallic lobe, partial coverage, or a map other than map_Kd (docs/SCENE.md, Meshes). */
bool kiln__mtl_is_principled(const kiln__mtl *d);
/* Fills the PRINCIPLED fields of *mt (whose albedo and emission hold Kd and Ke) from d, loading
 * its maps. */
int kiln__sj_mtl_principled(kiln__sj_ctx *c, const kiln__mtl *d, kiln__material *mt);

#endif
