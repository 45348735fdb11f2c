/* sections.c: the sections of a JSON scene other than its objects (docs/SCENE.md):
 * settings, camera, environment, materials (named and inline, with their textures), and the
 * transforms that objects, instances and lights share. Each reads the value at the current path
 * of the walk (scene_internal.h) and reports errors there. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scene_internal.h"

/* ---- settings, camera, environment ------------------------------------------------------------ */

int kiln__sj_parse_settings(kiln__sj_ctx *c, const cJSON *o) {
  static const char *const keys[] = {"width", "height",   "spp",     "max_bounces",
                                     "seed",  "exposure", "tonemap", NULL};
  static const char *const tonemaps[] = {"none", "filmic", NULL};
  kiln__settings *st = &c->ld->b.s.settings;
  double w, h, spp, mb, seed, ev;
  int tm, rc;
  if (o) {
    kiln__sj_push_key(c, "settings");
    if ((rc = kiln__sj_expect_object(c, o, "settings")) || (rc = kiln__sj_check_keys(c, o, keys)))
      return rc;
  }
  const cJSON *src = o ? o : NULL;
  if ((rc = kiln__sj_integer(c, src, "width", 256, 1, 16384, &w)) ||
      (rc = kiln__sj_integer(c, src, "height", 256, 1, 16384, &h)) ||
      (rc = kiln__sj_integer(c, src, "spp", 16, 1, 1 << 24, &spp)) ||
      (rc = kiln__sj_integer(c, src, "max_bounces", 12, 0, 1024, &mb)) ||
      (rc = kiln__sj_integer(c, src, "seed", 0, 0, 4294967295.0, &seed)) ||
      (rc = kiln__sj_num(c, src, "exposure", false, 0, -30, 30, &ev)) ||
      (rc = kiln__sj_choice(c, src, "tonemap", "none", tonemaps, &tm)))
    return rc;
  st->width = (int32_t)w, st->height = (int32_t)h, st->spp = (int32_t)spp;
  st->max_bounces = (int32_t)mb, st->seed = (uint32_t)seed, st->exposure = (float)ev;
  st->tonemap = tm ? KILN__TONEMAP_FILMIC : KILN__TONEMAP_NONE;
  if (o) kiln__sj_pop(c);
  return 0;
}

/* The camera's view checks: position, look_at and up give a view direction and an up. */
static int check_view(kiln__sj_ctx *c, const kiln__camera *cam) {
  float f[3] = {cam->look_at[0] - cam->position[0], cam->look_at[1] - cam->position[1],
                cam->look_at[2] - cam->position[2]},
        x[3];
  if (kiln__len3(f) < 1e-12)
    return kiln__sj_fail_at(c, "look_at", "look_at equals position: no view direction");
  if (kiln__len3(cam->up) < 1e-12) return kiln__sj_fail_at(c, "up", "up has zero length");
  kiln__cross3(f, cam->up, x);
  if (kiln__len3(x) <= 1e-6 * kiln__len3(f) * kiln__len3(cam->up))
    return kiln__sj_fail_at(c, "up", "up is parallel to the view direction (look_at - position)");
  return 0;
}

int kiln__sj_parse_camera(kiln__sj_ctx *c, const cJSON *o) {
  static const char *const pin_keys[] = {"type", "position", "look_at", "up", "vfov",
                                         KILN__SJ_CAMERA_EXTRA_KEYS, NULL};
  static const char *const lens_keys[] = {"type", "position", "look_at", "up", "vfov",
                                          "aperture", "focus_distance",
                                          KILN__SJ_CAMERA_EXTRA_KEYS, NULL};
  static const char *const types[] = {"pinhole", "thin_lens", NULL};
  static const float up_def[3] = {0, 1, 0};
  kiln__camera *cam = &c->ld->b.s.camera;
  const kiln__settings *st = &c->ld->b.s.settings;
  kiln__cam_extra x;
  int type, rc;
  double vfov, ap = 0, fd = 0;
  if (!o) return kiln__sj_fail(c, "missing required key 'camera'");
  kiln__sj_push_key(c, "camera");
  if ((rc = kiln__sj_expect_object(c, o, "camera")) ||
      (rc = kiln__sj_choice(c, o, "type", "pinhole", types, &type)) ||
      (rc = kiln__sj_check_keys(c, o, type ? lens_keys : pin_keys)) ||
      (rc = kiln__sj_camera_extra(c, o, st->width, st->height, &x)))
    return rc;
  if (x.pose) {
    memcpy(cam->position, x.position, sizeof x.position);
    memcpy(cam->look_at, x.look_at, sizeof x.look_at);
    memcpy(cam->up, x.up, sizeof x.up);
  } else if ((rc = kiln__sj_vec3(c, o, "position", NULL, -HUGE_VAL, HUGE_VAL, cam->position)) ||
             (rc = kiln__sj_vec3(c, o, "look_at", NULL, -HUGE_VAL, HUGE_VAL, cam->look_at)) ||
             (rc = kiln__sj_vec3(c, o, "up", up_def, -HUGE_VAL, HUGE_VAL, cam->up))) {
    return rc;
  }
  if ((rc = kiln__sj_num(c, o, "vfov", false, 40, 0, 180, &vfov))) return rc;
  if (vfov <= 0 || vfov >= 180)
    return kiln__sj_fail_at(c, "vfov", "vfov must be in (0, 180) degrees, not %g", vfov);
  if ((rc = check_view(c, cam))) return rc;
  if (type) {
    float f[3] = {cam->look_at[0] - cam->position[0], cam->look_at[1] - cam->position[1],
                  cam->look_at[2] - cam->position[2]};
    /* a matrix's look_at is no point of interest: nothing to focus on by default */
    if (x.pose && !cJSON_GetObjectItemCaseSensitive(o, "focus_distance"))
      return kiln__sj_fail(c, "a thin_lens camera given by matrix needs focus_distance (it has "
                              "no look_at to focus on)");
    if ((rc = kiln__sj_num(c, o, "aperture", true, 0, 0, HUGE_VAL, &ap)) ||
        (rc = kiln__sj_num(c, o, "focus_distance", false, kiln__len3(f), 0, HUGE_VAL, &fd)))
      return rc;
    if (fd <= 0) return kiln__sj_fail_at(c, "focus_distance", "focus_distance must be > 0");
  }
  cam->type = type ? KILN__CAM_THIN_LENS : KILN__CAM_PINHOLE;
  cam->vfov_deg = x.intrinsics ? x.vfov_deg : (float)vfov;
  cam->aperture = (float)ap, cam->focus_distance = (float)fd;
  cam->fx = x.fx, cam->fy = x.fy, cam->cx = x.cx, cam->cy = x.cy;
  cam->k_width = x.k_width, cam->k_height = x.k_height;
  kiln__sj_pop(c);
  return 0;
}

/* Adds the decoded texture t (taken) to the scene; its index into *out. */
static int add_texture(kiln__sj_ctx *c, kiln__texture *t, uint32_t *out) {
  if (kiln__sb_texture(&c->ld->b, t, out)) {
    kiln__texture_release(t);
    return kiln__sj_nomem(c);
  }
  return 0;
}

int kiln__sj_texture_file(kiln__sj_ctx *c, const char *path, kiln__tex_mode mode,
                          kiln__texture *t, kiln__texture *alpha, char *msg, size_t msgsz) {
  if (c->ld->cache)
    return kiln__asset_cache_texture(c->ld->cache, path, mode, t, alpha, msg, msgsz);
  return kiln__texture_load_ex(path, mode, t, alpha, msg, msgsz);
}

int kiln__sj_texture_ex(kiln__sj_ctx *c, const char *dir, const char *name, kiln__tex_mode mode,
                        int32_t *alpha, int32_t *out) {
  char *p = dir ? kiln__path_join(dir, name) : kiln__sj_scene_path(c, name);
  if (!p) return kiln__sj_nomem(c);
  kiln__sj_tex_entry *e = NULL;
  for (size_t i = 0; i < c->ld->ntexs && !e; i++)
    if (c->ld->texs[i].mode == mode && strcmp(c->ld->texs[i].path, p) == 0) e = &c->ld->texs[i];
  if (e && (!alpha || e->alpha_read)) {
    free(p);
    if (alpha) *alpha = e->alpha;
    return *out = (int32_t)e->index, 0;
  }
  /* new, or known without its alpha plane: decode (again) with it */
  kiln__texture t, a;
  char msg[300];
  int rc = kiln__sj_texture_file(c, p, mode, &t, alpha ? &a : NULL, msg, sizeof msg);
  if (rc) {
    rc = kiln__sj_file_fail(c, rc, p, 0, msg);
    free(p);
    return rc;
  }
  uint32_t idx, aidx = 0;
  if (e) { /* known: only its alpha plane was missing */
    kiln__texture_release(&t), free(p), p = NULL;
    idx = e->index;
  } else if ((rc = add_texture(c, &t, &idx))) {
    free(p);
    if (alpha) kiln__texture_release(&a);
    return rc;
  }
  bool has_alpha = alpha && a.rgb;
  if (has_alpha && (rc = add_texture(c, &a, &aidx))) {
    free(p);
    return rc;
  }
  if (!e) {
    kiln__sj_tex_entry *arr = realloc(c->ld->texs, (c->ld->ntexs + 1) * sizeof *arr);
    if (!arr) {
      free(p);
      return kiln__sj_nomem(c);
    }
    c->ld->texs = arr;
    e = &arr[c->ld->ntexs++];
    *e = (kiln__sj_tex_entry){p, mode, idx, -1, false};
  }
  if (alpha) e->alpha = has_alpha ? (int32_t)aidx : -1, e->alpha_read = true, *alpha = e->alpha;
  *out = (int32_t)idx;
  return 0;
}

/* Loads (once per file) a texture named by the value at the current path; *out its index. */
int kiln__sj_texture(kiln__sj_ctx *c, const char *dir, const char *name, bool hdr, int32_t *out) {
  return kiln__sj_texture_ex(c, dir, name, hdr ? KILN__TEX_HDR : KILN__TEX_SRGB, NULL, out);
}

int kiln__sj_parse_environment(kiln__sj_ctx *c, const cJSON *o) {
  static const char *const types[] = {"constant", "gradient", "map", NULL};
  static const char *const k_const[] = {"type", "color", "intensity", NULL};
  static const char *const k_grad[] = {"type", "bottom", "top", "intensity", NULL};
  static const char *const k_map[] = {"type", "file", "rotation", "intensity", NULL};
  static const char *const *const keys[] = {k_const, k_grad, k_map};
  static const float black[3] = {0, 0, 0};
  kiln__environment *env = &c->ld->b.s.env;
  env->type = KILN__ENV_CONSTANT, env->texture = -1, env->intensity = 1;
  if (!o) return 0;
  int type, rc;
  double in, rot;
  kiln__sj_push_key(c, "environment");
  if ((rc = kiln__sj_expect_object(c, o, "environment")) ||
      (rc = kiln__sj_choice(c, o, "type", NULL, types, &type)) ||
      (rc = kiln__sj_check_keys(c, o, keys[type])) ||
      (rc = kiln__sj_num(c, o, "intensity", false, 1, 0, 1e9, &in)))
    return rc;
  env->type = (kiln__env_type)type, env->intensity = (float)in;
  if (type == KILN__ENV_CONSTANT) {
    rc = kiln__sj_vec3(c, o, "color", black, 0, 1e9, env->color);
  } else if (type == KILN__ENV_GRADIENT) {
    if (!(rc = kiln__sj_vec3(c, o, "bottom", NULL, 0, 1e9, env->color)))
      rc = kiln__sj_vec3(c, o, "top", NULL, 0, 1e9, env->top);
  } else {
    const char *file;
    if (!(rc = kiln__sj_string(c, o, "file", NULL, &file)) &&
        !(rc = kiln__sj_num(c, o, "rotation", false, 0, -360, 360, &rot))) {
      env->rotation_deg = (float)rot;
      kiln__sj_push_key(c, "file");
      rc = kiln__sj_texture(c, NULL, file, true, &env->texture);
      kiln__sj_pop(c);
    }
  }
  if (!rc) kiln__sj_pop(c);
  return rc;
}

/* ---- materials --------------------------------------------------------------------------------- */

/* o[key] as 2 numbers in [lo, hi]; def when absent. */
static int vec2_at(kiln__sj_ctx *c, const cJSON *o, const char *key, const double def[2], double lo,
                   double hi, double out[2]) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  out[0] = def[0], out[1] = def[1];
  if (!v) return 0;
  if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2)
    return kiln__sj_fail_at(c, key, "%s must be an array of 2 numbers", key);
  kiln__sj_push_key(c, key);
  int i = 0;
  for (const cJSON *e = v->child; e; e = e->next, i++) {
    kiln__sj_push_index(c, i);
    if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble))
      return kiln__sj_fail(c, "%s[%d] must be a finite number", key, i);
    if (e->valuedouble < lo || e->valuedouble > hi)
      return kiln__sj_fail(c, "%s[%d] must be in [%g, %g], not %g", key, i, lo, hi, e->valuedouble);
    out[i] = e->valuedouble;
    kiln__sj_pop(c);
  }
  kiln__sj_pop(c);
  return 0;
}

/* uv_transform {offset, scale, rotation} (KHR_texture_transform's, on glTF's uv (s, t) where
 * t = 1 - v) as the affine map of kiln's uv into m->uv_xform (docs/SCENE.md). */
static int parse_uv_transform(kiln__sj_ctx *c, const cJSON *o, kiln__material *m) {
  static const char *const keys[] = {"offset", "scale", "rotation", NULL};
  static const double zero[2] = {0, 0}, one[2] = {1, 1};
  double off[2], sc[2], rot;
  int rc;
  kiln__sj_push_key(c, "uv_transform");
  if ((rc = kiln__sj_expect_object(c, o, "uv_transform")) ||
      (rc = kiln__sj_check_keys(c, o, keys)) ||
      (rc = vec2_at(c, o, "offset", zero, -1e6, 1e6, off)) ||
      (rc = vec2_at(c, o, "scale", one, -1e6, 1e6, sc)) ||
      (rc = kiln__sj_num(c, o, "rotation", false, 0, -1e6, 1e6, &rot)))
    return rc;
  double co = cos(rot), si = sin(rot);
  /* glTF: s' = co sx s + si sy t + ox, t' = -si sx s + co sy t + oy; with t = 1 - v, v' = 1 - t' */
  const double x[6] = {co * sc[0], -si * sc[1], si * sc[1] + off[0],
                       si * sc[0], co * sc[1], 1 - co * sc[1] - off[1]};
  for (int i = 0; i < 6; i++) m->uv_xform[i] = (float)x[i];
  kiln__sj_pop(c);
  return 0;
}

/* o[key], when present, as a texture file in mode; its index into *out (else -1 stays). */
static int texture_key(kiln__sj_ctx *c, const cJSON *o, const char *key, kiln__tex_mode mode,
                       int32_t *alpha, int32_t *out) {
  const char *file;
  if (!cJSON_GetObjectItemCaseSensitive(o, key)) return 0;
  int rc = kiln__sj_string(c, o, key, NULL, &file);
  if (rc) return rc;
  kiln__sj_push_key(c, key);
  rc = kiln__sj_texture_ex(c, NULL, file, mode, alpha, out);
  if (!rc) kiln__sj_pop(c);
  return rc;
}

/* The keys of a principled material (type already read) into m. */
static int parse_principled(kiln__sj_ctx *c, const cJSON *o, kiln__material *m) {
  static const float grey[3] = {0.8f, 0.8f, 0.8f}, black[3] = {0, 0, 0};
  double met, rough, ior, alpha, cut, ns;
  int rc;
  if ((rc = kiln__sj_vec3(c, o, "base_color", grey, 0, 1, m->albedo)) ||
      (rc = kiln__sj_num(c, o, "metallic", false, 0, 0, 1, &met)) ||
      (rc = kiln__sj_num(c, o, "roughness", false, 0.5, 0, 1, &rough)) ||
      (rc = kiln__sj_num(c, o, "ior", false, 1.5, -HUGE_VAL, 10, &ior)) ||
      (rc = kiln__sj_vec3(c, o, "emission", black, 0, 1e9, m->emission)) ||
      (rc = kiln__sj_num(c, o, "alpha", false, 1, 0, 1, &alpha)) ||
      (rc = kiln__sj_num(c, o, "alpha_cutoff", false, 0, 0, 1, &cut)) ||
      (rc = kiln__sj_num(c, o, "normal_scale", false, 1, -1e3, 1e3, &ns)))
    return rc;
  if (ior < 1) return kiln__sj_fail_at(c, "ior", "ior must be >= 1, not %g", ior);
  m->metallic = (float)met, m->roughness = (float)rough, m->ior = (float)ior;
  m->alpha = (float)alpha, m->alpha_cutoff = (float)cut, m->normal_scale = (float)ns;
  if (cJSON_GetObjectItemCaseSensitive(o, "emission_texture") &&
      m->emission[0] + m->emission[1] + m->emission[2] <= 0)
    return kiln__sj_fail_at(c, "emission_texture",
                            "emission_texture multiplies emission, which is black (the default): "
                            "give emission too");
  const cJSON *uvt = cJSON_GetObjectItemCaseSensitive(o, "uv_transform");
  if (uvt && (rc = parse_uv_transform(c, uvt, m))) return rc;
  /* the base colour image's alpha is its coverage only where the material cuts out */
  if ((rc = texture_key(c, o, "base_color_texture", KILN__TEX_SRGB_FILTERED,
                        cut > 0 ? &m->alpha_texture : NULL, &m->texture)) ||
      (rc = texture_key(c, o, "metallic_roughness_texture", KILN__TEX_LINEAR, NULL,
                        &m->mr_texture)) ||
      (rc = texture_key(c, o, "normal_texture", KILN__TEX_LINEAR, NULL, &m->normal_texture)) ||
      (rc = texture_key(c, o, "emission_texture", KILN__TEX_SRGB_FILTERED, NULL,
                        &m->emission_texture)))
    return rc;
  return 0;
}

/* The material object o (at the current path) named name; its scene index into *out. */
static int parse_material(kiln__sj_ctx *c, const cJSON *o, const char *name, uint32_t *out) {
  static const char *const types[] = {"diffuse", "conductor", "dielectric", "emissive",
                                      "principled", NULL};
  static const char *const k_diff[] = {"type", "albedo", "texture", NULL};
  static const char *const k_cond[] = {"type", "albedo", "roughness", "texture", NULL};
  static const char *const k_diel[] = {"type", "ior", "albedo", NULL};
  static const char *const k_emit[] = {"type", "emission", NULL};
  static const char *const k_prin[] = {"type", "base_color", "metallic", "roughness", "ior",
                                       "emission", "alpha", "alpha_cutoff",
                                       "base_color_texture", "metallic_roughness_texture",
                                       "normal_texture", "normal_scale", "emission_texture",
                                       "uv_transform", NULL};
  static const char *const *const keys[] = {k_diff, k_cond, k_diel, k_emit, k_prin};
  static const float grey[3] = {0.8f, 0.8f, 0.8f}, white[3] = {1, 1, 1};
  kiln__material m = {.texture = -1, .mr_texture = -1, .normal_texture = -1,
                      .emission_texture = -1, .alpha_texture = -1,
                      .uv_xform = {1, 0, 0, 0, 1, 0}};
  int type, rc;
  double rough = 0, ior = 1.5;
  if ((rc = kiln__sj_expect_object(c, o, "a material")) ||
      (rc = kiln__sj_choice(c, o, "type", NULL, types, &type)) ||
      (rc = kiln__sj_check_keys(c, o, keys[type])))
    return rc;
  m.type = (kiln__material_type)type;
  if (type == KILN__MAT_PRINCIPLED) {
    if ((rc = parse_principled(c, o, &m))) return rc;
  } else if (type == KILN__MAT_EMISSIVE) {
    if ((rc = kiln__sj_vec3(c, o, "emission", NULL, 0, 1e9, m.emission))) return rc;
    if (m.emission[0] + m.emission[1] + m.emission[2] <= 0)
      return kiln__sj_fail_at(c, "emission", "emission is black: an emissive material must emit");
  } else {
    if ((rc = kiln__sj_vec3(c, o, "albedo", type == KILN__MAT_DIFFUSE ? grey : white, 0, 1,
                            m.albedo)))
      return rc;
  }
  if (type == KILN__MAT_CONDUCTOR && (rc = kiln__sj_num(c, o, "roughness", false, 0, 0, 1, &rough)))
    return rc;
  if (type == KILN__MAT_DIELECTRIC) {
    if ((rc = kiln__sj_num(c, o, "ior", false, 1.5, -HUGE_VAL, 10, &ior))) return rc;
    if (ior <= 1) return kiln__sj_fail_at(c, "ior", "ior must be > 1, not %g", ior);
  }
  if (type != KILN__MAT_PRINCIPLED) m.roughness = (float)rough, m.ior = (float)ior;
  const char *tex;
  if (type != KILN__MAT_PRINCIPLED && cJSON_GetObjectItemCaseSensitive(o, "texture")) {
    if ((rc = kiln__sj_string(c, o, "texture", NULL, &tex))) return rc;
    kiln__sj_push_key(c, "texture");
    rc = kiln__sj_texture(c, NULL, tex, false, &m.texture);
    kiln__sj_pop(c);
    if (rc) return rc;
  }
  size_t n = strlen(name);
  if (!(m.name = malloc(n + 1))) return kiln__sj_nomem(c);
  memcpy(m.name, name, n + 1);
  if (kiln__sb_material(&c->ld->b, &m, out)) {
    free(m.name);
    return kiln__sj_nomem(c);
  }
  return 0;
}

int kiln__sj_parse_materials(kiln__sj_ctx *c, const cJSON *o) {
  if (!o) return 0;
  kiln__sj_push_key(c, "materials");
  int rc = kiln__sj_expect_object(c, o, "materials");
  if (rc) return rc;
  size_t n = (size_t)cJSON_GetArraySize(o), i = 0;
  if (n && !(c->ld->mats = calloc(n, sizeof *c->ld->mats))) return kiln__sj_nomem(c);
  if (n && !(c->ld->mat_index = malloc(n * sizeof *c->ld->mat_index))) return kiln__sj_nomem(c);
  for (const cJSON *m = o->child; m; m = m->next, i++)
    c->ld->mat_index[i] = (kiln__name_ref){m->string, i};
  kiln__names_sort(c->ld->mat_index, n);
  /* materials before the first repeat are checked first, as a reader going down the file would */
  size_t repeat = kiln__names_first_repeat(c->ld->mat_index, n);
  i = 0;
  for (const cJSON *m = o->child; m; m = m->next, i++) {
    if (i == repeat) {
      kiln__sj_push_key(c, m->string);
      if (c->depth <= KILN__SJ_MAX_DEPTH)
        c->path[c->depth - 1].index = 1; /* the second occurrence */
      kiln__sj_fail(c, "material '%s' is defined twice", m->string);
      int d = c->depth < KILN__SJ_MAX_DEPTH ? c->depth : KILN__SJ_MAX_DEPTH;
      kiln__json_locate(c->text, c->path, d, true, &c->err->line, &c->err->column);
      return KILN_EPARSE;
    }
    kiln__sj_push_key(c, m->string);
    uint32_t idx;
    if ((rc = parse_material(c, m, m->string, &idx))) return rc;
    kiln__sj_pop(c);
    c->ld->mats[c->ld->nmats++] = (kiln__sj_named_mat){m->string, idx};
  }
  kiln__sj_pop(c);
  return 0;
}

const kiln__sj_named_mat *kiln__sj_find_material(const kiln__sj_ctx *c, const char *name) {
  const kiln__name_ref *r = kiln__names_find(c->ld->mat_index, c->ld->nmats, name, NULL);
  return r ? &c->ld->mats[r->index] : NULL;
}

/* obj["material"] (a name or an inline material) into *out; *present says whether it was there. */
int kiln__sj_object_material(kiln__sj_ctx *c, const cJSON *obj, const char *obj_name, bool required,
                             bool *present, uint32_t *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "material");
  *present = v != NULL;
  if (!v) return required ? kiln__sj_fail(c, "missing required key 'material'") : 0;
  kiln__sj_push_key(c, "material");
  int rc = 0;
  if (cJSON_IsString(v)) {
    const kiln__sj_named_mat *m = kiln__sj_find_material(c, v->valuestring);
    if (!m) {
      const char *names[64];
      size_t k = 0;
      for (; k < c->ld->nmats && k < 63; k++) names[k] = c->ld->mats[k].name;
      names[k] = NULL;
      const char *near = kiln__sj_closest(v->valuestring, names);
      rc = near ? kiln__sj_fail(c, "no material named '%s' in 'materials' (did you mean '%s'?)",
                                v->valuestring, near)
                : kiln__sj_fail(c, "no material named '%s' in 'materials'", v->valuestring);
    } else {
      *out = m->index;
    }
  } else if (cJSON_IsObject(v)) {
    rc = parse_material(c, v, obj_name, out);
  } else {
    rc = kiln__sj_fail(c, "material must be a material name or a material object");
  }
  if (!rc) kiln__sj_pop(c);
  return rc;
}

/* ---- transforms --------------------------------------------------------------------------------- */

static void rotation(kiln__xform *r, const double axis[3], double deg) {
  double l = sqrt(axis[0] * axis[0] + axis[1] * axis[1] + axis[2] * axis[2]);
  double x = axis[0] / l, y = axis[1] / l, z = axis[2] / l;
  double a = deg * (3.14159265358979323846 / 180.0), s = sin(a), co = cos(a), t = 1 - co;
  kiln__xform_identity(r);
  r->m[0][0] = t * x * x + co, r->m[0][1] = t * x * y - s * z, r->m[0][2] = t * x * z + s * y;
  r->m[1][0] = t * x * y + s * z, r->m[1][1] = t * y * y + co, r->m[1][2] = t * y * z - s * x;
  r->m[2][0] = t * x * z - s * y, r->m[2][1] = t * y * z + s * x, r->m[2][2] = t * z * z + co;
}

/* rotate: [x, y, z] Euler degrees (about x first, then y, then z) or {axis, angle}. */
static int parse_rotate(kiln__sj_ctx *c, const cJSON *v, kiln__xform *r) {
  static const char *const keys[] = {"axis", "angle", NULL};
  int rc;
  kiln__xform_identity(r);
  if (cJSON_IsObject(v)) {
    float axis[3];
    double angle;
    if ((rc = kiln__sj_check_keys(c, v, keys)) ||
        (rc = kiln__sj_vec3(c, v, "axis", NULL, -HUGE_VAL, HUGE_VAL, axis)) ||
        (rc = kiln__sj_num(c, v, "angle", true, 0, -1e6, 1e6, &angle)))
      return rc;
    if (kiln__len3(axis) < 1e-12) return kiln__sj_fail_at(c, "axis", "axis has zero length");
    const double a[3] = {axis[0], axis[1], axis[2]};
    rotation(r, a, angle);
    return 0;
  }
  float e[3];
  if ((rc = kiln__sj_vec3_value(c, v, "rotate", -1e6, 1e6, e)))
    return kiln__sj_fail(
        c, "rotate must be [x, y, z] Euler angles in degrees or {\"axis\", \"angle\"}");
  static const double ax[3][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
  for (int i = 0; i < 3; i++) {
    kiln__xform ri;
    rotation(&ri, ax[i], e[i]);
    kiln__xform_mul(r, &ri, r); /* later axes apply after earlier ones */
  }
  return 0;
}

/* A transform object (at the current path): {translate, rotate, scale} (applied scale first, then
 * rotate, then translate) or {matrix: 16 numbers, row-major, last row 0 0 0 1}. */
int kiln__sj_parse_xform(kiln__sj_ctx *c, const cJSON *o, kiln__xform *x) {
  static const char *const keys[] = {"translate", "rotate", "scale", "matrix", NULL};
  static const char *const mkeys[] = {"matrix", NULL};
  int rc;
  kiln__xform_identity(x);
  if ((rc = kiln__sj_expect_object(c, o, "a transform"))) return rc;
  const cJSON *mat = cJSON_GetObjectItemCaseSensitive(o, "matrix");
  if ((rc = kiln__sj_check_keys(c, o, mat ? mkeys : keys))) return rc;
  if (mat) {
    kiln__sj_push_key(c, "matrix");
    if (!cJSON_IsArray(mat) || cJSON_GetArraySize(mat) != 16)
      return kiln__sj_fail(c, "matrix must be an array of 16 numbers (row-major)");
    int i = 0;
    for (const cJSON *e = mat->child; e; e = e->next, i++) {
      kiln__sj_push_index(c, i);
      if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble) || fabs(e->valuedouble) > 1e30)
        return kiln__sj_fail(c, "matrix[%d] must be a finite number", i);
      kiln__sj_pop(c);
      x->m[i / 4][i % 4] = e->valuedouble;
    }
    if (x->m[3][0] != 0 || x->m[3][1] != 0 || x->m[3][2] != 0 || x->m[3][3] != 1)
      return kiln__sj_fail(c, "matrix: the last row must be 0 0 0 1 (affine)");
    if (fabs(kiln__xform_det3(x)) < 1e-18) return kiln__sj_fail(c, "matrix is singular");
    kiln__sj_pop(c);
    return 0;
  }
  kiln__xform s, r, t;
  kiln__xform_identity(&s), kiln__xform_identity(&t);
  const cJSON *sc = cJSON_GetObjectItemCaseSensitive(o, "scale");
  if (sc) {
    kiln__sj_push_key(c, "scale");
    float v[3];
    if (cJSON_IsNumber(sc)) {
      v[0] = v[1] = v[2] = (float)sc->valuedouble;
      if (!isfinite(sc->valuedouble)) return kiln__sj_fail(c, "scale must be finite");
    } else if ((rc = kiln__sj_vec3_value(c, sc, "scale", -1e30, 1e30, v))) {
      return kiln__sj_fail(c, "scale must be a number or an array of 3 numbers");
    }
    for (int i = 0; i < 3; i++) {
      if (fabs(v[i]) < 1e-12)
        return kiln__sj_fail(c, "scale must not be zero (it flattens the object)");
      s.m[i][i] = v[i];
    }
    kiln__sj_pop(c);
  }
  const cJSON *ro = cJSON_GetObjectItemCaseSensitive(o, "rotate");
  kiln__xform_identity(&r);
  if (ro) {
    kiln__sj_push_key(c, "rotate");
    if ((rc = parse_rotate(c, ro, &r))) return rc;
    kiln__sj_pop(c);
  }
  float tr[3];
  if ((rc = kiln__sj_vec3(c, o, "translate", (const float[3]){0, 0, 0}, -1e30, 1e30, tr)))
    return rc;
  for (int i = 0; i < 3; i++) t.m[i][3] = tr[i];
  kiln__xform_mul(x, &r, &s);
  kiln__xform_mul(x, &t, x);
  return 0;
}

int kiln__sj_check_xform(kiln__sj_ctx *c, const cJSON *o) {
  kiln__xform x;
  return kiln__sj_parse_xform(c, o, &x);
}

/* The object's transform and instances: *nx transforms into *xs (malloc'd; instance k's is
 * instances[k] * transform). */
int kiln__sj_member_xform(kiln__sj_ctx *c, const cJSON *obj, kiln__xform *x) {
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, "transform");
  kiln__xform_identity(x);
  if (!t) return 0;
  kiln__sj_push_key(c, "transform");
  int rc = kiln__sj_parse_xform(c, t, x);
  if (!rc) kiln__sj_pop(c);
  return rc;
}

int kiln__sj_parse_instances(kiln__sj_ctx *c, const cJSON *obj, kiln__xform **xs, size_t *nx) {
  kiln__xform base;
  int rc;
  if ((rc = kiln__sj_member_xform(c, obj, &base))) return rc;
  const cJSON *in = cJSON_GetObjectItemCaseSensitive(obj, "instances");
  if (in && (!cJSON_IsArray(in) || cJSON_GetArraySize(in) < 1))
    return kiln__sj_fail_at(c, "instances", "instances must be a non-empty array of transforms");
  size_t n = in ? (size_t)cJSON_GetArraySize(in) : 1;
  if (!(*xs = malloc(n * sizeof **xs))) return kiln__sj_nomem(c);
  *nx = n;
  if (!in) return (*xs)[0] = base, 0;
  kiln__sj_push_key(c, "instances");
  int i = 0;
  for (const cJSON *e = in->child; e; e = e->next, i++) {
    kiln__sj_push_index(c, i);
    if ((rc = kiln__sj_parse_xform(c, e, &(*xs)[i]))) return rc;
    kiln__xform_mul(&(*xs)[i], &(*xs)[i], &base);
    kiln__sj_pop(c);
  }
  kiln__sj_pop(c);
  return 0;
}
