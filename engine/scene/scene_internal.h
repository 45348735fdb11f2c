/* scene_internal.h (internal): what the scene loader's files share.
 *
 *   json_locate.c  line/column of a JSON path in the scene text (cJSON keeps no positions)
 *   obj.c, ply.c   mesh files -> kiln__mesh (a triangle soup in object space)
 *   texture.c      PNG/JPEG albedo textures (sRGB -> linear) and .hdr maps (stb_image)
 *   scene_build.c  growing the flattened kiln__scene: triangles, transforms, primitives
 *   scene_json.c   the JSON format (docs/SCENE.md): validation with located errors, kiln_scene_load
 *
 * Nothing here prints or exits; every failure is a KILN_E* code plus a message. */
#ifndef KILN_ENGINE_SCENE_INTERNAL_H
#define KILN_ENGINE_SCENE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"

#include "scene_data.h"

/* ---- json_locate.c ------------------------------------------------------------------------- */

/* One step of a JSON path: an object key (key != NULL; index: which occurrence of the key, 0 for
 * the first) or an array index. */
typedef struct kiln__jpath_step {
  const char *key;
  int index;
} kiln__jpath_step;

/* Finds the value at path (n steps) in the JSON text and sets *line and *column (1-based; column
 * counts bytes) of its first character, or of its key when at_key and the last step is a key.
 * Returns false (and the position of the deepest step found) when the path is not in the text. */
bool kiln__json_locate(const char *text, const kiln__jpath_step *path, int n, bool at_key,
                       int *line, int *column);

/* Line and column (1-based) of byte offset off in text. */
void kiln__text_position(const char *text, size_t off, int *line, int *column);

/* ---- obj.c, ply.c ------------------------------------------------------------------------ */

/* A material read from an MTL file. */
typedef struct kiln__mtl {
  char *name;
  float kd[3], ke[3];
  char *map_kd; /* the texture's path: as written in the MTL, joined to the MTL's folder; or NULL */
} kiln__mtl;

/* A mesh file's triangles in object space, unindexed. */
typedef struct kiln__mesh {
  size_t ntris;
  float *pos;          /* 9 per triangle */
  float *nrm;          /* 9 per triangle, or NULL; where a face had none, its geometric normal */
  float *uv;           /* 6 per triangle, or NULL; (0,0) where a face had none */
  uint32_t *tri_group; /* per triangle: index into groups */
  uint32_t *tri_mat;   /* per triangle: index into mat_names, or UINT32_MAX for none */
  size_t ngroups;
  char **groups;       /* OBJ `o` names ("" for faces before any `o`); PLY: one group, "" */
  size_t nmat_names;
  char **mat_names;    /* OBJ `usemtl` names in first-use order */
  size_t nmtls;
  kiln__mtl *mtls;     /* definitions from the `mtllib` files */
  char *mtl_dir;       /* the OBJ's folder, which mtllib names are relative to */
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
 * triangle is degenerate (scene_build.c). */
void kiln__tri_normal(const float p[9], float n[3]);

/* The next whitespace-separated token of the line at *p, NUL-terminated in place (the line is
 * modified); NULL at the end of the line. Shared by the OBJ and PLY readers (obj.c). */
char *kiln__mesh_token(char **p);

/* Appends a triangle to m (growing its arrays). n and uv may be NULL. */
int kiln__mesh_push(kiln__mesh *m, size_t *cap, const float p[9], const float *n, const float *uv,
                    uint32_t group, uint32_t mat);

/* ---- texture.c ---------------------------------------------------------------------------- */

/* Loads an 8-bit PNG/JPEG (is_hdr false: sRGB decoded to linear) or a Radiance .hdr (is_hdr:
 * linear as stored) into t. KILN_EIO if the file cannot be read, KILN_EPARSE if it is not a
 * decodable image (msg says why), KILN_ENOMEM. */
int kiln__texture_load(const char *path, bool is_hdr, kiln__texture *t, char *msg, size_t msgsz);

/* ---- scene_build.c ------------------------------------------------------------------------ */

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
  size_t tri_cap, sphere_cap, mat_cap, tex_cap, obj_cap;
  bool any_nrm, any_uv;
  uint32_t next_instance; /* the next instance id to hand out (1-based) */
} kiln__scene_builder;

/* Appends a triangle; p, n (may be NULL: geometric normal), uv (may be NULL) in world space.
 * KILN_EINVAL (nothing appended) if a position is not finite; the geometry functions below pass
 * that on, and KILN_ENOMEM.
 * Triangles of a transform with negative determinant should be passed with v1, v2 swapped so that
 * the front face stays the side of cross(v1 - v0, v2 - v0). */
int kiln__sb_tri(kiln__scene_builder *b, const float p[9], const float *n, const float *uv,
                 uint32_t mat, uint32_t obj, uint32_t inst);
/* Appends mesh m transformed by x; mats (nmat_names + 1 entries) maps m's tri_mat to scene
 * materials, its last entry standing for faces without one (UINT32_MAX); group g of m becomes
 * object id obj_of_group[g]; the instance id is inst_of_group[g]. */
int kiln__sb_mesh(kiln__scene_builder *b, const kiln__mesh *m, const kiln__xform *x,
                  const uint32_t *mats, const uint32_t *obj_of_group, const uint32_t *inst_of_group);
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
/* Finishes: drops the normal/uv arrays nothing used. The builder's scene is then complete. */
void kiln__sb_finish(kiln__scene_builder *b);

#endif
