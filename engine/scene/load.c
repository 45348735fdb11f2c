/* load.c: kiln's JSON scene format (docs/SCENE.md) -> kiln__scene, with located errors.
 *
 * The text is parsed by cJSON, then walked once, section by section (settings, camera,
 * environment, materials, objects, lights). The walk keeps the JSON path of the value it is looking
 * at (kiln__sj_ctx.path); every error, semantic or not, is reported with that path, and with the
 * line and column kiln__json_locate finds for it in the text. Every object's keys are checked
 * against the keys its type allows (and for duplicates): an unknown key is an error with a "did you
 * mean" when one is close. Errors in files the scene names (meshes, MTL, images) carry that file and
 * its line instead, and the path of the key that named it. The first error stops the load; nothing
 * is half-built on return.
 *
 * Threads: all state is in the kiln__sj_ctx of one load. cJSON is used through
 * cJSON_ParseWithOpts(return_parse_end), never its cJSON_GetErrorPtr global; cJSON 1.7 still
 * writes that global on every parse (a write nothing reads, inside libcjson), the one piece of
 * shared state concurrent loads touch. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scene_internal.h"

/* ---- paths and errors ------------------------------------------------------------------------ */

void kiln__sj_push_key(kiln__sj_ctx *c, const char *key) {
  if (c->depth < KILN__SJ_MAX_DEPTH) c->path[c->depth] = (kiln__jpath_step){key, 0};
  c->depth++;
}
void kiln__sj_push_index(kiln__sj_ctx *c, int i) {
  if (c->depth < KILN__SJ_MAX_DEPTH) c->path[c->depth] = (kiln__jpath_step){NULL, i};
  c->depth++;
}
void kiln__sj_pop(kiln__sj_ctx *c) { c->depth--; }

static void path_string(const kiln__sj_ctx *c, char *buf, size_t size) {
  size_t n = 0;
  buf[0] = '\0';
  int d = c->depth < KILN__SJ_MAX_DEPTH ? c->depth : KILN__SJ_MAX_DEPTH;
  for (int i = 0; i < d && n < size; i++) {
    int w = c->path[i].key ? snprintf(buf + n, size - n, "%s%s", i ? "." : "", c->path[i].key)
                           : snprintf(buf + n, size - n, "[%d]", c->path[i].index);
    if (w < 0) break;
    n += (size_t)w;
  }
}

/* Fills the error for the value at the current path (its key when at_key). Returns code. */
static int vfail(kiln__sj_ctx *c, int code, bool at_key, const char *fmt, va_list ap) {
  kiln_error_detail *e = c->err;
  snprintf(e->file, sizeof e->file, "%s", c->file);
  int d = c->depth < KILN__SJ_MAX_DEPTH ? c->depth : KILN__SJ_MAX_DEPTH;
  kiln__json_locate(c->text, c->path, d, at_key, &e->line, &e->column);
  path_string(c, e->path, sizeof e->path);
  vsnprintf(e->message, sizeof e->message, fmt, ap);
  return code;
}

int kiln__sj_fail(kiln__sj_ctx *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = vfail(c, KILN_EPARSE, false, fmt, ap);
  va_end(ap);
  return rc;
}

/* An error at member key of the current object (the path is left as it was). */
int kiln__sj_fail_at(kiln__sj_ctx *c, const char *key, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  kiln__sj_push_key(c, key);
  int rc = vfail(c, KILN_EPARSE, false, fmt, ap);
  kiln__sj_pop(c);
  va_end(ap);
  return rc;
}

int kiln__sj_nomem(kiln__sj_ctx *c) {
  snprintf(c->err->file, sizeof c->err->file, "%s", c->file);
  snprintf(c->err->message, sizeof c->err->message, "out of memory");
  return KILN_ENOMEM;
}

/* An error inside a file the scene names (code from its loader), reported at that file. */
int kiln__sj_file_fail(kiln__sj_ctx *c, int code, const char *file, int line, const char *msg) {
  kiln__sj_fail(c, "%s", code == KILN_ENOMEM && !msg[0] ? "out of memory" : msg);
  snprintf(c->err->file, sizeof c->err->file, "%s", file);
  c->err->line = line, c->err->column = 0;
  return code;
}

/* ---- keys -------------------------------------------------------------------------------------- */

static size_t edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 40 || lb > 40) return 99;
  size_t d[41][41];
  for (size_t i = 0; i <= la; i++) d[i][0] = i;
  for (size_t j = 0; j <= lb; j++) d[0][j] = j;
  for (size_t i = 1; i <= la; i++)
    for (size_t j = 1; j <= lb; j++) {
      size_t sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
      size_t del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
      d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
    }
  return d[la][lb];
}

/* The closest of names (NULL-terminated) to s when close enough to be a typo, else NULL. */
const char *kiln__sj_closest(const char *s, const char *const *names) {
  const char *best = NULL;
  size_t bd = 99, limit = strlen(s) <= 4 ? 1 : 2;
  for (int i = 0; names[i]; i++) {
    size_t d = edit_distance(s, names[i]);
    if (d < bd) bd = d, best = names[i];
  }
  return bd <= limit ? best : NULL;
}

int kiln__sj_expect_object(kiln__sj_ctx *c, const cJSON *o, const char *what) {
  return cJSON_IsObject(o) ? 0 : kiln__sj_fail(c, "%s must be an object", what);
}

/* Every key of o must be in allowed, and appear once. Not quadratic however many keys o has: the
 * keys before m are distinct allowed ones (else the walk had stopped), so the inner loop runs at
 * most as often as allowed has names. */
int kiln__sj_check_keys(kiln__sj_ctx *c, const cJSON *o, const char *const *allowed) {
  for (const cJSON *m = o->child; m; m = m->next) {
    for (const cJSON *prev = o->child; prev != m; prev = prev->next)
      if (strcmp(prev->string, m->string) == 0) {
        kiln__sj_push_key(c, m->string);
        if (c->depth <= KILN__SJ_MAX_DEPTH)
          c->path[c->depth - 1].index = 1; /* the second occurrence */
        int rc = kiln__sj_fail(c, "duplicate key '%s'", m->string);
        int d = c->depth < KILN__SJ_MAX_DEPTH ? c->depth : KILN__SJ_MAX_DEPTH;
        kiln__json_locate(c->text, c->path, d, true, &c->err->line, &c->err->column);
        kiln__sj_pop(c);
        return rc;
      }
    bool ok = false;
    for (int i = 0; allowed[i] && !ok; i++) ok = strcmp(m->string, allowed[i]) == 0;
    if (ok) continue;
    const char *near = kiln__sj_closest(m->string, allowed);
    kiln__sj_push_key(c, m->string);
    int rc;
    if (near) rc = kiln__sj_fail(c, "unknown key '%s' (did you mean '%s'?)", m->string, near);
    else rc = kiln__sj_fail(c, "unknown key '%s'", m->string);
    /* the key itself, not its value, is at fault */
    int d = c->depth < KILN__SJ_MAX_DEPTH ? c->depth : KILN__SJ_MAX_DEPTH;
    kiln__json_locate(c->text, c->path, d, true, &c->err->line, &c->err->column);
    kiln__sj_pop(c);
    return rc;
  }
  return 0;
}

/* ---- values -------------------------------------------------------------------------------------- */

/* o[key] as a finite number in [lo, hi]; def when absent and not required. */
int kiln__sj_num(kiln__sj_ctx *c, const cJSON *o, const char *key, bool required, double def,
                 double lo, double hi, double *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!v) {
    if (required) return kiln__sj_fail(c, "missing required key '%s'", key);
    *out = def;
    return 0;
  }
  if (!cJSON_IsNumber(v)) return kiln__sj_fail_at(c, key, "%s must be a number", key);
  double d = v->valuedouble;
  if (!isfinite(d)) return kiln__sj_fail_at(c, key, "%s must be finite", key);
  if (d < lo || d > hi)
    return kiln__sj_fail_at(c, key, "%s must be in [%g, %g], not %g", key, lo, hi, d);
  *out = d;
  return 0;
}

int kiln__sj_integer(kiln__sj_ctx *c, const cJSON *o, const char *key, double def, double lo,
                     double hi, double *out) {
  int rc = kiln__sj_num(c, o, key, false, def, lo, hi, out);
  if (!rc && *out != floor(*out))
    return kiln__sj_fail_at(c, key, "%s must be an integer, not %g", key, *out);
  return rc;
}

/* The 3 numbers of array v (at the current path), each in [lo, hi]. */
int kiln__sj_vec3_value(kiln__sj_ctx *c, const cJSON *v, const char *what, double lo, double hi,
                        float out[3]) {
  if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 3)
    return kiln__sj_fail(c, "%s must be an array of 3 numbers", what);
  int i = 0;
  for (const cJSON *e = v->child; e; e = e->next, i++) {
    kiln__sj_push_index(c, i);
    int rc = 0;
    if (!cJSON_IsNumber(e)) rc = kiln__sj_fail(c, "%s[%d] must be a number", what, i);
    else if (!isfinite(e->valuedouble)) rc = kiln__sj_fail(c, "%s[%d] must be finite", what, i);
    else if (e->valuedouble < lo || e->valuedouble > hi)
      rc = kiln__sj_fail(c, "%s[%d] must be in [%g, %g], not %g", what, i, lo, hi, e->valuedouble);
    else if (fabs(e->valuedouble) > 1e30) rc = kiln__sj_fail(c, "%s[%d] is too large", what, i);
    kiln__sj_pop(c);
    if (rc) return rc;
    out[i] = (float)e->valuedouble;
  }
  return 0;
}

/* o[key] as 3 numbers; def (NULL: required) when absent. */
int kiln__sj_vec3(kiln__sj_ctx *c, const cJSON *o, const char *key, const float *def, double lo,
                  double hi, float out[3]) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!v) {
    if (!def) return kiln__sj_fail(c, "missing required key '%s'", key);
    memcpy(out, def, 3 * sizeof(float));
    return 0;
  }
  kiln__sj_push_key(c, key);
  int rc = kiln__sj_vec3_value(c, v, key, lo, hi, out);
  kiln__sj_pop(c);
  return rc;
}

/* o[key] as a string; def (NULL: required) when absent. */
int kiln__sj_string(kiln__sj_ctx *c, const cJSON *o, const char *key, const char *def,
                    const char **out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!v) {
    if (!def) return kiln__sj_fail(c, "missing required key '%s'", key);
    *out = def;
    return 0;
  }
  if (!cJSON_IsString(v) || !v->valuestring[0])
    return kiln__sj_fail_at(c, key, "%s must be a non-empty string", key);
  *out = v->valuestring;
  return 0;
}

/* o[key] as one of choices (NULL-terminated); its index into *out. */
int kiln__sj_choice(kiln__sj_ctx *c, const cJSON *o, const char *key, const char *def,
                    const char *const *choices, int *out) {
  const char *s;
  int rc = kiln__sj_string(c, o, key, def, &s);
  if (rc) return rc;
  for (int i = 0; choices[i]; i++)
    if (strcmp(s, choices[i]) == 0) return *out = i, 0;
  char list[256] = "";
  for (int i = 0; choices[i]; i++)
    snprintf(list + strlen(list), sizeof list - strlen(list), "%s'%s'", i ? ", " : "", choices[i]);
  const char *near = kiln__sj_closest(s, choices);
  if (near) return kiln__sj_fail_at(c, key, "unknown %s '%s' (did you mean '%s'?)", key, s, near);
  return kiln__sj_fail_at(c, key, "unknown %s '%s' (one of %s)", key, s, list);
}

/* A path relative to the scene's folder, malloc'd. */
char *kiln__sj_scene_path(kiln__sj_ctx *c, const char *name) {
  return kiln__path_join(c->base_dir, name);
}

/* key's array of root (may be absent), each element through fn. */
static int each(kiln__sj_ctx *c, const cJSON *root, const char *key,
                int (*fn)(kiln__sj_ctx *, const cJSON *)) {
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, key);
  if (!a) return 0;
  kiln__sj_push_key(c, key);
  if (!cJSON_IsArray(a)) return kiln__sj_fail(c, "%s must be an array", key);
  int i = 0, rc;
  for (const cJSON *e = a->child; e; e = e->next, i++) {
    kiln__sj_push_index(c, i);
    if ((rc = fn(c, e))) return rc;
    kiln__sj_pop(c);
  }
  kiln__sj_pop(c);
  return 0;
}

/* ---- loading ------------------------------------------------------------------------------------- */

static int parse_root(kiln__sj_ctx *c, const cJSON *root) {
  static const char *const keys[] = {"name",        "description", "settings",   "camera",
                                     "environment", "materials",   "categories", "objects",
                                     "lights",      NULL};
  int rc;
  if (!cJSON_IsObject(root)) return kiln__sj_fail(c, "a scene must be a JSON object");
  const char *ignored;
  if ((rc = kiln__sj_check_keys(c, root, keys)) ||
      (cJSON_GetObjectItemCaseSensitive(root, "name") &&
       (rc = kiln__sj_string(c, root, "name", NULL, &ignored))) ||
      (cJSON_GetObjectItemCaseSensitive(root, "description") &&
       (rc = kiln__sj_string(c, root, "description", NULL, &ignored))) ||
      (rc = kiln__sj_parse_settings(c, cJSON_GetObjectItemCaseSensitive(root, "settings"))) ||
      (rc = kiln__sj_parse_camera(c, cJSON_GetObjectItemCaseSensitive(root, "camera"))) ||
      (rc = kiln__sj_parse_environment(c, cJSON_GetObjectItemCaseSensitive(root, "environment"))) ||
      (rc = kiln__sj_parse_materials(c, cJSON_GetObjectItemCaseSensitive(root, "materials"))) ||
      (rc = kiln__sj_parse_categories(c, cJSON_GetObjectItemCaseSensitive(root, "categories"))) ||
      (rc = kiln__sj_preload_meshes(c, root)) ||
      (rc = each(c, root, "objects", kiln__sj_parse_object)) ||
      (rc = each(c, root, "lights", kiln__sj_parse_light)) || (rc = kiln__sj_categories_finish(c)))
    return rc;
  return 0;
}

static int load_string(const char *json, const char *base_dir, const char *name_for_messages,
                       kiln_pool *pool, kiln__asset_cache *cache, kiln_error_detail *err,
                       kiln_scene **out) {
  memset(err, 0, sizeof *err);
  if (out) *out = NULL;
  if (!json || !out) {
    snprintf(err->message, sizeof err->message, "json and out must not be NULL");
    return KILN_EINVAL;
  }
  kiln__sj_load ld = {.pool = pool, .cache = cache, .b = {.next_instance = 1}};
  kiln__sj_ctx c = {.text = json,
                    .file = name_for_messages ? name_for_messages : "<string>",
                    .base_dir = base_dir,
                    .err = err,
                    .ld = &ld};
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithOpts(json, &end, true);
  int rc;
  if (!root) {
    snprintf(err->file, sizeof err->file, "%s", c.file);
    size_t off = end ? (size_t)(end - json) : strlen(json);
    kiln__text_position(json, off, &err->line, &err->column);
    /* cJSON cannot tell a syntax error from a failed allocation; a syntax error is by far likelier */
    snprintf(err->message, sizeof err->message, "JSON syntax error%s",
             json[off] ? "" : " (unexpected end)");
    return KILN_EPARSE;
  }
  size_t nul = kiln__json_nul_escape(json);
  if (nul != (size_t)-1) {
    cJSON_Delete(root);
    snprintf(err->file, sizeof err->file, "%s", c.file);
    kiln__text_position(json, nul, &err->line, &err->column);
    snprintf(err->message, sizeof err->message, "\\u0000 in a string: strings must not hold NUL");
    return KILN_EPARSE;
  }
  /* the scene borrows from the cache (meshes, texels): it holds a reference from the start, and
   * kiln__scene_free releases it on failure too */
  if (cache) ld.b.s.assets = kiln__asset_cache_retain(cache);
  rc = parse_root(&c, root);
  cJSON_Delete(root);
  for (size_t i = 0; i < ld.ntexs; i++) free(ld.texs[i].path);
  for (size_t i = 0; i < ld.nmeshes; i++) {
    free(ld.meshes[i].path);
    if (!ld.meshes[i].borrowed) kiln__mesh_free(&ld.meshes[i].mesh);
  }
  free(ld.texs), free(ld.mats), free(ld.mat_index), free(ld.meshes);
  kiln__categories_free(ld.cats, ld.ncats);
  free(ld.obj_cat);
  if (rc) {
    kiln__scene_free(&ld.b.s);
    return rc;
  }
  kiln__sb_finish(&ld.b);
  if (!(*out = kiln__scene_wrap(&ld.b.s))) return kiln__sj_nomem(&c); /* wrap freed the scene */
  memset(err, 0, sizeof *err);
  return 0;
}

/* Whether path's name ends in suffix (lower case), ignoring case. */
static bool has_suffix(const char *path, const char *suffix) {
  size_t a = strlen(path), b = strlen(suffix);
  if (a < b) return false;
  for (size_t i = 0; i < b; i++) {
    char x = path[a - b + i];
    if (x >= 'A' && x <= 'Z') x = (char)(x - 'A' + 'a');
    if (x != suffix[i]) return false;
  }
  return true;
}

bool kiln__is_gltf_path(const char *path) {
  return has_suffix(path, ".gltf") || has_suffix(path, ".glb");
}

char *kiln__gltf_scene_json(const struct kiln_scene *s, const char *path) {
  const kiln__scene *d = &s->data;
  const kiln__camera *c = &d->camera;
  const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
  cJSON *root = cJSON_CreateObject();
  if (!root) return NULL;
  cJSON *cam = cJSON_AddObjectToObject(root, "camera");
  cJSON *env = cJSON_AddObjectToObject(root, "environment");
  cJSON *objs = cJSON_AddArrayToObject(root, "objects");
  cJSON *o = objs ? cJSON_CreateObject() : NULL;
  if (o && !cJSON_AddItemToArray(objs, o)) cJSON_Delete(o), o = NULL;
  bool ok = cam && env && o && cJSON_AddStringToObject(o, "type", "gltf") &&
            cJSON_AddStringToObject(o, "file", base) && cJSON_AddTrueToObject(o, "lights") &&
            cJSON_AddItemToObject(cam, "position", cJSON_CreateFloatArray(c->position, 3)) &&
            cJSON_AddItemToObject(cam, "look_at", cJSON_CreateFloatArray(c->look_at, 3)) &&
            cJSON_AddItemToObject(cam, "up", cJSON_CreateFloatArray(c->up, 3)) &&
            cJSON_AddNumberToObject(cam, "vfov", c->vfov_deg) &&
            cJSON_AddStringToObject(env, "type", "constant") &&
            cJSON_AddItemToObject(env, "color", cJSON_CreateFloatArray(d->env.color, 3));
  char *text = ok ? cJSON_Print(root) : NULL;
  cJSON_Delete(root);
  return text;
}

/* A .gltf / .glb as the whole scene (docs/SCENE.md, "glTF"): the settings' defaults, the file's
 * camera (or one framing it) and lights; a white environment when it has no lights. */
static int load_gltf_scene(kiln_pool *pool, const char *path, kiln_error_detail *err,
                           kiln_scene **out) {
  kiln__sj_load ld = {.pool = pool, .b = {.next_instance = 1}};
  kiln__sj_ctx c = {.text = "", .file = path, .base_dir = "", .err = err, .ld = &ld};
  kiln__xform id;
  kiln__xform_identity(&id);
  kiln__gltf_opts o = {.xs = &id, .nx = 1, .lights = true, .camera = true};
  kiln__gltf_error ge;
  uint32_t first, n;
  int rc = kiln__sj_parse_settings(&c, NULL);
  if (!rc) rc = kiln__sj_parse_environment(&c, NULL);
  if (!rc && (rc = kiln__gltf_add(&ld.b, path, &o, &first, &n, &ge))) {
    snprintf(err->file, sizeof err->file, "%s", ge.file);
    err->line = ge.line, err->column = ge.column;
    snprintf(err->path, sizeof err->path, "%s", ge.path);
    snprintf(err->message, sizeof err->message, "%s", ge.message);
  }
  if (!rc) rc = kiln__sj_categories_finish(&c);
  kiln__categories_free(ld.cats, ld.ncats);
  free(ld.obj_cat);
  if (rc) {
    kiln__scene_free(&ld.b.s);
    return rc;
  }
  if (ld.b.s.nplights == 0) {
    kiln__environment *env = &ld.b.s.env;
    env->type = KILN__ENV_CONSTANT, env->intensity = 1;
    env->color[0] = env->color[1] = env->color[2] = 1;
  }
  kiln__sb_finish(&ld.b);
  if (!(*out = kiln__scene_wrap(&ld.b.s))) return kiln__sj_nomem(&c);
  memset(err, 0, sizeof *err);
  return 0;
}

static int load_file(kiln_pool *pool, const char *path, kiln__asset_cache *cache,
                     kiln_error_detail *err, kiln_scene **out) {
  memset(err, 0, sizeof *err);
  if (out) *out = NULL;
  if (!path || !out) {
    snprintf(err->message, sizeof err->message, "path and out must not be NULL");
    return KILN_EINVAL;
  }
  if (kiln__is_gltf_path(path)) return load_gltf_scene(pool, path, err, out);
  char *text, *dir;
  size_t len;
  int rc = kiln__read_file(path, &text, &len, err->message, sizeof err->message);
  if (rc) {
    snprintf(err->file, sizeof err->file, "%s", path);
    return rc;
  }
  if (strlen(text) != len) {
    free(text);
    snprintf(err->file, sizeof err->file, "%s", path);
    snprintf(err->message, sizeof err->message, "NUL byte in the scene file");
    return KILN_EPARSE;
  }
  if (!(dir = kiln__dirname(path))) {
    free(text);
    snprintf(err->file, sizeof err->file, "%s", path);
    snprintf(err->message, sizeof err->message, "out of memory");
    return KILN_ENOMEM;
  }
  rc = load_string(text, dir, path, pool, cache, err, out);
  free(text), free(dir);
  return rc;
}

/* The public calls: err may be NULL, and its code is the code returned. */

int kiln_scene_load_string(const char *json, const char *base_dir, const char *name_for_messages,
                           kiln_error_detail *err, kiln_scene **out) {
  kiln_error_detail dummy;
  if (!err) err = &dummy;
  return err->code = load_string(json, base_dir, name_for_messages, NULL, NULL, err, out);
}

int kiln_scene_load(const char *path, kiln_error_detail *err, kiln_scene **out) {
  return kiln_scene_load_pool(NULL, path, err, out);
}

int kiln_scene_load_pool(kiln_pool *pool, const char *path, kiln_error_detail *err,
                         kiln_scene **out) {
  kiln_error_detail dummy;
  if (!err) err = &dummy;
  return err->code = load_file(pool, path, NULL, err, out);
}

int kiln__scene_load_cached(kiln_pool *pool, const char *path, kiln__asset_cache *cache,
                            kiln_error_detail *err, kiln_scene **out) {
  kiln_error_detail dummy;
  if (!err) err = &dummy;
  return err->code = load_file(pool, path, cache, err, out);
}

int kiln__scene_load_string_cached(const char *json, const char *base_dir,
                                   const char *name_for_messages, kiln_pool *pool,
                                   kiln__asset_cache *cache, kiln_error_detail *err,
                                   kiln_scene **out) {
  kiln_error_detail dummy;
  if (!err) err = &dummy;
  return err->code = load_string(json, base_dir, name_for_messages, pool, cache, err, out);
}

void kiln_scene_get_info(const kiln_scene *s, kiln_scene_info *info) {
  const kiln__scene *d = &s->data;
  memset(info, 0, sizeof *info);
  info->width = d->settings.width, info->height = d->settings.height;
  info->spp = d->settings.spp, info->max_bounces = d->settings.max_bounces;
  info->seed = d->settings.seed, info->exposure = d->settings.exposure;
  info->filmic = d->settings.tonemap == KILN__TONEMAP_FILMIC;
  info->nobjects = d->nobjects, info->ntriangles = kiln__scene_triangles(d), info->nspheres = d->nspheres;
  info->nmaterials = d->nmaterials, info->ntextures = d->ntextures;
  for (size_t t = 0; t < d->ntris; t++)
    info->nlight_triangles += d->materials[d->tri_material[t]].type == KILN__MAT_EMISSIVE;
}

const char *kiln_scene_object_name(const kiln_scene *s, uint32_t id) {
  if (id == 0 || id > s->data.nobjects) return NULL;
  return s->data.object_names[id - 1];
}
