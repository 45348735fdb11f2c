/* scene_json.h (internal): what the files of the JSON scene reader share.
 *
 *   scene_json.c      the walk's state (kiln__sj_ctx), JSON paths, located errors, typed getters; loading
 *   scene_sections.c  settings, camera, environment, materials, textures, transforms
 *   scene_objects.c   objects (mesh files, loaded once each and in parallel on a pool; primitives)
 *                     and quad lights
 *
 * Every kiln__sj_ function that returns int returns 0 or a KILN_E* code with c->err filled; the
 * first error ends the load, so callers return it at once (the path is left as it was, which is
 * what the error reported). */
#ifndef KILN_ENGINE_SCENE_JSON_H
#define KILN_ENGINE_SCENE_JSON_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "kiln/scene.h"
#include "kiln/sched.h"
#include "scene_internal.h"

enum { KILN__SJ_MAX_DEPTH = 32 };

typedef struct kiln__sj_named_mat {
  const char *name; /* borrowed from the cJSON tree */
  uint32_t index;
} kiln__sj_named_mat;

typedef struct kiln__sj_tex_entry {
  char *path;
  bool hdr;
  uint32_t index;
} kiln__sj_tex_entry;

/* A mesh file the scene names, loaded once however many objects name it. */
typedef struct kiln__sj_mesh_entry {
  char *path;
  bool is_obj;
  bool loaded; /* written by the loading task, read after kiln_map returns (which orders them) */
  int rc;
  kiln__mesh mesh;
  kiln__mesh_error err;
} kiln__sj_mesh_entry;

typedef struct kiln__sj_ctx {
  const char *text, *file, *base_dir;
  kiln_pool *pool; /* loads mesh files in parallel, or NULL */
  kiln__sj_mesh_entry *meshes;
  size_t nmeshes;
  kiln_scene_error *err;
  kiln__jpath_step path[KILN__SJ_MAX_DEPTH];
  int depth;
  kiln__scene_builder b;
  kiln__sj_named_mat *mats;
  size_t nmats;
  kiln__sj_tex_entry *texs;
  size_t ntexs;
} kiln__sj_ctx;


/* ---- scene_json.c: paths, errors, keys, values ---------------------------------------------- */

void kiln__sj_push_key(kiln__sj_ctx *c, const char *key);
void kiln__sj_push_index(kiln__sj_ctx *c, int i);
void kiln__sj_pop(kiln__sj_ctx *c);
int kiln__sj_fail(kiln__sj_ctx *c, const char *fmt, ...);
int kiln__sj_fail_at(kiln__sj_ctx *c, const char *key, const char *fmt, ...);
int kiln__sj_nomem(kiln__sj_ctx *c);
int kiln__sj_file_fail(kiln__sj_ctx *c, int code, const char *file, int line, const char *msg);
const char *kiln__sj_closest(const char *s, const char *const *names);
int kiln__sj_expect_object(kiln__sj_ctx *c, const cJSON *o, const char *what);
int kiln__sj_check_keys(kiln__sj_ctx *c, const cJSON *o, const char *const *allowed);
int kiln__sj_num(kiln__sj_ctx *c, const cJSON *o, const char *key, bool required, double def, double lo, double hi, double *out);
int kiln__sj_integer(kiln__sj_ctx *c, const cJSON *o, const char *key, double def, double lo, double hi, double *out);
int kiln__sj_vec3_value(kiln__sj_ctx *c, const cJSON *v, const char *what, double lo, double hi, float out[3]);
int kiln__sj_vec3(kiln__sj_ctx *c, const cJSON *o, const char *key, const float *def, double lo, double hi, float out[3]);
int kiln__sj_string(kiln__sj_ctx *c, const cJSON *o, const char *key, const char *def, const char **out);
int kiln__sj_choice(kiln__sj_ctx *c, const cJSON *o, const char *key, const char *def, const char *const *choices, int *out);
char *kiln__sj_scene_path(kiln__sj_ctx *c, const char *name);

static inline double len3(const float v[3]) {
  return sqrt((double)v[0] * v[0] + (double)v[1] * v[1] + (double)v[2] * v[2]);
}

static inline void cross3(const float a[3], const float b[3], float out[3]) {
  out[0] = a[1] * b[2] - a[2] * b[1];
  out[1] = a[2] * b[0] - a[0] * b[2];
  out[2] = a[0] * b[1] - a[1] * b[0];
}

/* ---- scene_sections.c ---------------------------------------------------------------------- */

int kiln__sj_parse_settings(kiln__sj_ctx *c, const cJSON *o);
int kiln__sj_parse_camera(kiln__sj_ctx *c, const cJSON *o);
int kiln__sj_texture(kiln__sj_ctx *c, const char *dir, const char *name, bool hdr, int32_t *out);
int kiln__sj_parse_environment(kiln__sj_ctx *c, const cJSON *o);
int kiln__sj_parse_materials(kiln__sj_ctx *c, const cJSON *o);
const kiln__sj_named_mat *kiln__sj_find_material(const kiln__sj_ctx *c, const char *name);
int kiln__sj_object_material(kiln__sj_ctx *c, const cJSON *obj, const char *obj_name, bool required, bool *present, uint32_t *out);
int kiln__sj_parse_xform(kiln__sj_ctx *c, const cJSON *o, kiln__xform *x);
int kiln__sj_parse_instances(kiln__sj_ctx *c, const cJSON *obj, kiln__xform **xs, size_t *nx);

/* ---- scene_objects.c ----------------------------------------------------------------------- */

int kiln__sj_preload_meshes(kiln__sj_ctx *c, const cJSON *root);
int kiln__sj_parse_object(kiln__sj_ctx *c, const cJSON *obj);
int kiln__sj_parse_light(kiln__sj_ctx *c, const cJSON *o);

#endif
