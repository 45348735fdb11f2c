/* job_list.c: one image of a list (a line of a .jsonl file, or an element of a job's "images"):
 * its keys and values are checked against the job's scene (every object, material and light it
 * names must exist; every value has the type and range the scene format gives it), then expanded
 * into a kiln_job_frame: name, frame, seed, the camera (the scene's, with the image's keys
 * overriding it), and the object/material/light/environment overrides as a scene patch for
 * kiln_job_frame_scene (job_scene.c). The same code validates at load and expands in
 * kiln_job_next, so what was checked is what is expanded. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch_internal.h"

static const char *const mat_types[] = {"diffuse", "conductor", "dielectric", "emissive", NULL};
static const char *const env_types[] = {"constant", "gradient", "map", NULL};

/* A key of map o that appears twice: an error at its second occurrence (the first such in the
 * text). O(n log n): a list line may name tens of thousands of objects. */
static int dup_members(kiln__sj_ctx *c, const cJSON *o) {
  const cJSON *m;
  if (kiln__json_first_repeat(o, &m)) return kiln__sj_nomem(c);
  if (!m) return 0;
  kiln__sj_push_key(c, m->string);
  if (c->depth <= KILN__SJ_MAX_DEPTH) c->path[c->depth - 1].index = 1;
  int rc = kiln__sj_fail(c, "duplicate key '%s'", m->string);
  kiln__json_locate(c->text, c->path, c->depth, true, &c->err->line, &c->err->column);
  kiln__sj_pop(c);
  return rc;
}

/* ---- name, camera ---------------------------------------------------------------------------- */

static int parse_name(kiln__sj_ctx *c, const cJSON *o, kiln_job_frame *fr) {
  const char *s;
  int rc = kiln__sj_string(c, o, "name", NULL, &s);
  if (rc) return rc;
  if (strlen(s) >= sizeof fr->name)
    return kiln__sj_fail_at(c, "name", "name is longer than %zu bytes", sizeof fr->name - 1);
  if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
    return kiln__sj_fail_at(c, "name", "name must not be '%s': it is used in file names", s);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p == '/' || *p == '\\' || *p < 0x20 || *p == 0x7f)
      return kiln__sj_fail_at(c, "name",
                              "name '%s' is not a safe file name: no '/', '\\' or control "
                              "characters",
                              s);
  snprintf(fr->name, sizeof fr->name, "%s", s);
  return 0;
}

/* The line's matrix and intrinsics (x) over cam, which holds the scene's camera. */
static void apply_extra(const kiln__cam_extra *x, bool vfov_given, kiln_camera *cam) {
  if (x->pose) {
    memcpy(cam->position, x->position, sizeof cam->position);
    memcpy(cam->look_at, x->look_at, sizeof cam->look_at);
    memcpy(cam->up, x->up, sizeof cam->up);
  }
  if (x->intrinsics) {
    cam->fx = x->fx, cam->fy = x->fy, cam->cx = x->cx, cam->cy = x->cy;
    cam->k_width = x->k_width, cam->k_height = x->k_height, cam->vfov_deg = x->vfov_deg;
  } else if (vfov_given) { /* the line's vfov replaces the scene's intrinsics */
    cam->fx = cam->fy = cam->cx = cam->cy = 0;
    cam->k_width = cam->k_height = 0;
  }
}

/* The image's "camera" (o): the scene's camera with these keys replaced. */
static int parse_camera(const kiln_job *job, kiln__sj_ctx *c, const cJSON *o, kiln_camera *cam) {
  static const char *const pin_keys[] = {"type", "position", "look_at", "up", "vfov",
                                         KILN__SJ_CAMERA_EXTRA_KEYS, NULL};
  static const char *const lens_keys[] = {"type", "position", "look_at", "up", "vfov",
                                          "aperture", "focus_distance",
                                          KILN__SJ_CAMERA_EXTRA_KEYS, NULL};
  static const char *const types[] = {"pinhole", "thin_lens", NULL};
  const kiln__settings *st = &job->scene->data.settings;
  kiln__cam_extra x;
  int type, rc;
  double vfov, ap, fd;
  *cam = job->camera;
  kiln__sj_push_key(c, "camera");
  if ((rc = kiln__sj_expect_object(c, o, "camera")) ||
      (rc =
           kiln__sj_choice(c, o, "type", cam->thin_lens ? "thin_lens" : "pinhole", types, &type)) ||
      (rc = kiln__sj_check_keys(c, o, type ? lens_keys : pin_keys)) ||
      (rc = kiln__sj_camera_extra(c, o, st->width, st->height, &x)) ||
      (rc = kiln__sj_vec3(c, o, "position", cam->position, -1e30, 1e30, cam->position)) ||
      (rc = kiln__sj_vec3(c, o, "look_at", cam->look_at, -1e30, 1e30, cam->look_at)) ||
      (rc = kiln__sj_vec3(c, o, "up", cam->up, -1e30, 1e30, cam->up)) ||
      (rc = kiln__sj_num(c, o, "vfov", false, cam->vfov_deg, 0, 180, &vfov)))
    return rc;
  if (vfov <= 0 || vfov >= 180)
    return kiln__sj_fail_at(c, "vfov", "vfov must be in (0, 180) degrees, not %g", vfov);
  cam->vfov_deg = (float)vfov;
  apply_extra(&x, cJSON_GetObjectItemCaseSensitive(o, "vfov") != NULL, cam);
  if (type) {
    float d[3] = {cam->look_at[0] - cam->position[0], cam->look_at[1] - cam->position[1],
                  cam->look_at[2] - cam->position[2]};
    bool moved = x.pose || cJSON_GetObjectItemCaseSensitive(o, "position") ||
                 cJSON_GetObjectItemCaseSensitive(o, "look_at");
    double fd_def = job->focus_given && !moved ? job->camera.focus_distance : kiln__len3(d);
    /* a matrix's look_at is no point of interest: nothing to focus on by default */
    if (x.pose && !cJSON_GetObjectItemCaseSensitive(o, "focus_distance"))
      return kiln__sj_fail(c, "a thin_lens camera given by matrix needs focus_distance (it has "
                              "no look_at to focus on)");
    if ((rc = kiln__sj_num(c, o, "aperture", !job->camera.thin_lens, job->camera.aperture, 0, 1e30,
                           &ap)) ||
        (rc = kiln__sj_num(c, o, "focus_distance", false, fd_def, 0, 1e30, &fd)))
      return rc;
    if (fd <= 0) return kiln__sj_fail_at(c, "focus_distance", "focus_distance must be > 0");
    cam->aperture = (float)ap, cam->focus_distance = (float)fd;
  } else {
    cam->aperture = 0, cam->focus_distance = 0;
  }
  cam->thin_lens = type == 1;
  if ((rc = kiln__job_check_camera(c, cam, NULL))) return rc;
  kiln__sj_pop(c);
  return 0;
}

/* ---- materials ------------------------------------------------------------------------------- */

/* A material override o (at the current path) of base (the scene's material; NULL: o is a whole
 * material written in place). A "type" other than base's replaces the material; else the keys
 * of o replace base's. */
static int check_material(kiln__sj_ctx *c, const cJSON *o, const cJSON *base) {
  static const char *const k_diff[] = {"type", "albedo", "texture", NULL};
  static const char *const k_cond[] = {"type", "albedo", "roughness", "texture", NULL};
  static const char *const k_diel[] = {"type", "ior", "albedo", NULL};
  static const char *const k_emit[] = {"type", "emission", NULL};
  static const char *const *const keys[] = {k_diff, k_cond, k_diel, k_emit};
  const cJSON *bt = base ? cJSON_GetObjectItemCaseSensitive(base, "type") : NULL;
  const char *def = cJSON_IsString(bt) ? bt->valuestring : NULL;
  int type, rc;
  float v[3];
  double d;
  const char *s;
  if ((rc = kiln__sj_expect_object(c, o, "a material")) ||
      (rc = kiln__sj_choice(c, o, "type", def, mat_types, &type)) ||
      (rc = kiln__sj_check_keys(c, o, keys[type])))
    return rc;
  bool replace = !def || strcmp(def, mat_types[type]) != 0;
  if (cJSON_GetObjectItemCaseSensitive(o, "albedo") &&
      (rc = kiln__sj_vec3(c, o, "albedo", NULL, 0, 1, v)))
    return rc;
  if ((rc = kiln__sj_num(c, o, "roughness", false, 0, 0, 1, &d)) ||
      (rc = kiln__sj_num(c, o, "ior", false, 1.5, -HUGE_VAL, 10, &d)))
    return rc;
  if (d <= 1) return kiln__sj_fail_at(c, "ior", "ior must be > 1, not %g", d);
  if (cJSON_GetObjectItemCaseSensitive(o, "texture") &&
      (rc = kiln__sj_string(c, o, "texture", NULL, &s)))
    return rc;
  if (type == 3 && (replace || cJSON_GetObjectItemCaseSensitive(o, "emission"))) {
    if ((rc = kiln__sj_vec3(c, o, "emission", NULL, 0, 1e9, v))) return rc;
    if (v[0] + v[1] + v[2] <= 0)
      return kiln__sj_fail_at(c, "emission", "emission is black: an emissive material must emit");
  }
  return 0;
}

/* The names of the scene's top-level materials (for messages), NULL-terminated, at most 64. */
static void material_names(const cJSON *mats, const char **names) {
  int k = 0;
  for (const cJSON *m = mats ? mats->child : NULL; m && k < 64; m = m->next) names[k++] = m->string;
  names[k] = NULL;
}

static int check_materials(const kiln_job *job, kiln__sj_ctx *c, const cJSON *o) {
  const cJSON *mats = cJSON_GetObjectItemCaseSensitive(job->scene_doc, "materials");
  int rc;
  kiln__sj_push_key(c, "materials");
  if (!cJSON_IsObject(o)) return kiln__sj_fail(c, "materials must be an object of material names");
  if ((rc = dup_members(c, o))) return rc;
  for (const cJSON *m = o->child; m; m = m->next) {
    kiln__sj_push_key(c, m->string);
    const cJSON *base = kiln__job_material(job, m->string);
    if (!base) {
      const char *names[65];
      material_names(mats, names);
      return kiln__job_no_such(c, "material (in its 'materials')", m->string, (char *const *)names,
                               (size_t)cJSON_GetArraySize(mats));
    }
    if ((rc = check_material(c, m, base))) return rc;
    kiln__sj_pop(c);
  }
  kiln__sj_pop(c);
  return 0;
}

/* ---- objects, lights, environment ------------------------------------------------------------ */

/* The entry of names named by the current member m; an error when none or several. */
static int find_entry(kiln__sj_ctx *c, const char *what, const kiln__name_ref *index,
                      char *const *names, size_t n, const char *name) {
  int i = kiln__job_find(index, n, name);
  if (i == -1) return kiln__job_no_such(c, what, name, names, n);
  if (i == -2)
    return kiln__sj_fail(c, "several %ss of the scene are named '%s': give them distinct names",
                         what, name);
  return 0;
}

static int check_xform(kiln__sj_ctx *c, const cJSON *o) {
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "transform");
  if (!t) return 0;
  kiln__sj_push_key(c, "transform");
  int rc = kiln__sj_check_xform(c, t);
  if (!rc) kiln__sj_pop(c);
  return rc;
}

static int check_objects(const kiln_job *job, kiln__sj_ctx *c, const cJSON *o) {
  static const char *const keys[] = {"transform", "material", NULL};
  const cJSON *mats = cJSON_GetObjectItemCaseSensitive(job->scene_doc, "materials");
  int rc;
  kiln__sj_push_key(c, "objects");
  if (!cJSON_IsObject(o)) return kiln__sj_fail(c, "objects must be an object of object names");
  if ((rc = dup_members(c, o))) return rc;
  for (const cJSON *m = o->child; m; m = m->next) {
    kiln__sj_push_key(c, m->string);
    if ((rc = find_entry(c, "object", job->object_index, job->objects, job->nobjects, m->string)) ||
        (rc = kiln__sj_expect_object(c, m, "an object override")) ||
        (rc = kiln__sj_check_keys(c, m, keys)) || (rc = check_xform(c, m)))
      return rc;
    const cJSON *mat = cJSON_GetObjectItemCaseSensitive(m, "material");
    if (mat) {
      kiln__sj_push_key(c, "material");
      if (cJSON_IsString(mat)) {
        if (!kiln__job_material(job, mat->valuestring)) {
          const char *names[65];
          material_names(mats, names);
          return kiln__job_no_such(c, "material (in its 'materials')", mat->valuestring,
                                   (char *const *)names, (size_t)cJSON_GetArraySize(mats));
        }
      } else if (cJSON_IsObject(mat)) {
        if ((rc = check_material(c, mat, NULL))) return rc;
      } else {
        return kiln__sj_fail(c, "material must be a material name or a material object");
      }
      kiln__sj_pop(c);
    }
    kiln__sj_pop(c);
  }
  kiln__sj_pop(c);
  return 0;
}

/* The light override m of the scene's light base: values, and the area of the merged quad. */
static int check_light(kiln__sj_ctx *c, const cJSON *m, const cJSON *base) {
  static const char *const keys[] = {"corner", "u", "v", "radiance", "transform", NULL};
  float p[3], u[3], v[3], n[3], r[3];
  int rc;
  const cJSON *bt = cJSON_GetObjectItemCaseSensitive(base, "type");
  const char *const *pkeys = kiln__plight_keys(cJSON_IsString(bt) ? bt->valuestring : NULL);
  if (pkeys) { /* a point, spot or sun: its own keys but type and name; values checked when the
                  frame's scene is loaded, with their paths */
    const char *allowed[16];
    size_t k = 0;
    for (size_t i = 0; pkeys[i] && k + 1 < sizeof allowed / sizeof *allowed; i++)
      if (strcmp(pkeys[i], "type") != 0 && strcmp(pkeys[i], "name") != 0) allowed[k++] = pkeys[i];
    allowed[k] = NULL;
    return (rc = kiln__sj_expect_object(c, m, "a light override")) ? rc
                                                                  : kiln__sj_check_keys(c, m, allowed);
  }
  if ((rc = kiln__sj_expect_object(c, m, "a light override")) ||
      (rc = kiln__sj_check_keys(c, m, keys)) ||
      (rc = kiln__sj_vec3(c, m, "corner", (const float[3]){0, 0, 0}, -1e30, 1e30, p)) ||
      (rc = kiln__sj_vec3(c, m, "radiance", (const float[3]){1, 1, 1}, 0, 1e9, r)) ||
      (rc = check_xform(c, m)))
    return rc;
  if (r[0] + r[1] + r[2] <= 0)
    return kiln__sj_fail_at(c, "radiance", "radiance is black: the light emits nothing");
  for (int k = 0; k < 2; k++) {
    const char *key = k ? "v" : "u";
    float *out = k ? v : u;
    if (!cJSON_GetObjectItemCaseSensitive(m, key)) { /* the scene's value, already valid */
      const cJSON *a = cJSON_GetObjectItemCaseSensitive(base, key);
      int i = 0;
      for (const cJSON *e = a ? a->child : NULL; e && i < 3; e = e->next)
        out[i++] = (float)e->valuedouble;
      continue;
    }
    if ((rc = kiln__sj_vec3(c, m, key, NULL, -1e30, 1e30, out))) return rc;
  }
  kiln__cross3(u, v, n);
  if (kiln__len3(n) < 1e-12)
    return kiln__sj_fail(c, "light has zero area (u and v are parallel or zero)");
  return 0;
}

static int check_lights(const kiln_job *job, kiln__sj_ctx *c, const cJSON *o) {
  const cJSON *lights = cJSON_GetObjectItemCaseSensitive(job->scene_doc, "lights");
  int rc;
  kiln__sj_push_key(c, "lights");
  if (!cJSON_IsObject(o)) return kiln__sj_fail(c, "lights must be an object of light names");
  if ((rc = dup_members(c, o))) return rc;
  for (const cJSON *m = o->child; m; m = m->next) {
    kiln__sj_push_key(c, m->string);
    if ((rc = find_entry(c, "light", job->light_index, job->lights, job->nlights, m->string)))
      return rc;
    const cJSON *base =
        cJSON_GetArrayItem(lights, kiln__job_find(job->light_index, job->nlights, m->string));
    if ((rc = check_light(c, m, base))) return rc;
    kiln__sj_pop(c);
  }
  kiln__sj_pop(c);
  return 0;
}

/* The environment override o: a "type" other than the scene's replaces its environment. */
static int check_environment(const kiln_job *job, kiln__sj_ctx *c, const cJSON *o) {
  static const char *const k_const[] = {"type", "color", "intensity", NULL};
  static const char *const k_grad[] = {"type", "bottom", "top", "intensity", NULL};
  static const char *const k_map[] = {"type", "file", "rotation", "intensity", NULL};
  static const char *const *const keys[] = {k_const, k_grad, k_map};
  const cJSON *base = cJSON_GetObjectItemCaseSensitive(job->scene_doc, "environment");
  const cJSON *bt = cJSON_GetObjectItemCaseSensitive(base, "type");
  const char *def = cJSON_IsString(bt) ? bt->valuestring : NULL;
  int type, rc;
  float v[3];
  double d;
  const char *s;
  kiln__sj_push_key(c, "environment");
  if ((rc = kiln__sj_expect_object(c, o, "environment")) ||
      (rc = kiln__sj_choice(c, o, "type", def, env_types, &type)) ||
      (rc = kiln__sj_check_keys(c, o, keys[type])) ||
      (rc = kiln__sj_num(c, o, "intensity", false, 1, 0, 1e9, &d)) ||
      (rc = kiln__sj_num(c, o, "rotation", false, 0, -360, 360, &d)))
    return rc;
  bool replace = !def || strcmp(def, env_types[type]) != 0;
  static const char *const vecs[] = {"color", "bottom", "top", NULL};
  for (int i = 0; vecs[i]; i++) {
    bool need = replace && type == 1 && i > 0;
    if ((need || cJSON_GetObjectItemCaseSensitive(o, vecs[i])) &&
        (rc = kiln__sj_vec3(c, o, vecs[i], NULL, 0, 1e9, v)))
      return rc;
  }
  if ((replace && type == 2) || cJSON_GetObjectItemCaseSensitive(o, "file"))
    if ((rc = kiln__sj_string(c, o, "file", NULL, &s))) return rc;
  kiln__sj_pop(c);
  return 0;
}

/* ---- an image --------------------------------------------------------------------------------- */

/* The scene overrides of o as JSON text into fr->scene_patch (NULL when there are none). */
static int make_patch(const cJSON *o, kiln_job_frame *fr) {
  static const char *const keys[] = {"objects", "materials", "lights", "environment", NULL};
  cJSON *patch = NULL;
  for (int i = 0; keys[i]; i++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, keys[i]);
    if (!v) continue;
    cJSON *d = cJSON_Duplicate(v, true);
    if ((!patch && !(patch = cJSON_CreateObject())) || !d)
      return cJSON_Delete(d), cJSON_Delete(patch), KILN_ENOMEM;
    cJSON_AddItemToObject(patch, keys[i], d);
  }
  if (!patch) return 0;
  fr->scene_patch = cJSON_PrintUnformatted(patch);
  cJSON_Delete(patch);
  return fr->scene_patch ? 0 : KILN_ENOMEM;
}

int kiln__list_image(const kiln_job *job, kiln__sj_ctx *c, const cJSON *o, uint64_t index,
                     kiln_job_frame *fr) {
  static const char *const keys[] = {"name",      "frame",  "seed",        "camera", "objects",
                                     "materials", "lights", "environment", NULL};
  double frame, seed;
  int rc;
  const cJSON *v;
  if (!cJSON_IsObject(o)) return kiln__sj_fail(c, "an image must be a JSON object");
  if ((rc = kiln__sj_check_keys(c, o, keys)) ||
      (rc = kiln__sj_integer(c, o, "frame", (double)index, -1e15, 1e15, &frame)) ||
      (rc = kiln__sj_integer(c, o, "seed", job->seed, 0, 4294967295.0, &seed)))
    return rc;
  fr->frame = (long)frame, fr->seed = (uint32_t)seed;
  fr->camera = job->camera;
  if (cJSON_GetObjectItemCaseSensitive(o, "name")) {
    if ((rc = parse_name(c, o, fr))) return rc;
  } else {
    snprintf(fr->name, sizeof fr->name, "%05ld", fr->frame);
  }
  if (((v = cJSON_GetObjectItemCaseSensitive(o, "camera")) &&
       (rc = parse_camera(job, c, v, &fr->camera))) ||
      ((v = cJSON_GetObjectItemCaseSensitive(o, "objects")) && (rc = check_objects(job, c, v))) ||
      ((v = cJSON_GetObjectItemCaseSensitive(o, "materials")) &&
       (rc = check_materials(job, c, v))) ||
      ((v = cJSON_GetObjectItemCaseSensitive(o, "lights")) && (rc = check_lights(job, c, v))) ||
      ((v = cJSON_GetObjectItemCaseSensitive(o, "environment")) &&
       (rc = check_environment(job, c, v))))
    return rc;
  if ((rc = make_patch(o, fr))) return kiln__sj_nomem(c);
  return 0;
}

int kiln__list_line(const kiln_job *job, const char *text, long lineno, uint64_t index,
                    kiln_error_detail *err, kiln_job_frame *fr) {
  kiln__sj_ctx c;
  kiln__job_ctx(&c, text, job->list_path, err);
  size_t off = strspn(text, " \t\r");
  const char *end = NULL;
  cJSON *root = NULL;
  int rc;
  if (text[off] == '#' || (text[off] == '/' && text[off + 1] == '/')) {
    kiln__text_position(text, off, &err->line, &err->column);
    snprintf(err->message, sizeof err->message, "comments are not allowed in a .jsonl list");
    rc = KILN_EPARSE;
  } else if (!(root = cJSON_ParseWithOpts(text, &end, true))) {
    off = end ? (size_t)(end - text) : strlen(text);
    kiln__text_position(text, off, &err->line, &err->column);
    snprintf(err->message, sizeof err->message, "JSON syntax error%s",
             text[off] && text[off] != '\n' ? "" : " (unexpected end of line)");
    rc = KILN_EPARSE;
  } else if ((off = kiln__json_nul_escape(text)) != (size_t)-1) {
    kiln__text_position(text, off, &err->line, &err->column);
    snprintf(err->message, sizeof err->message, "\\u0000 in a string: strings must not hold NUL");
    cJSON_Delete(root);
    rc = KILN_EPARSE;
  } else {
    rc = kiln__list_image(job, &c, root, index, fr);
    cJSON_Delete(root);
  }
  if (rc) {
    snprintf(err->file, sizeof err->file, "%s", job->list_path);
    err->line = (int)lineno, err->column = err->column ? err->column : 0;
  }
  return rc;
}
