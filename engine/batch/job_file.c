/* job_file.c: loading a job (docs/JOBS.md): a .json job (scene, output settings, and an animation
 * or a list of images) or a bare .jsonl list, its scene, and the frames, expanded one at a time.
 *
 * kiln_job_load validates everything before it returns: the job's keys and values, the scene (by
 * kiln_scene_load_pool, so scene errors are located in the scene file), every keyframe, and every
 * line of a list, which is streamed once (each line parsed, checked and dropped) to count the
 * frames. kiln_job_next then expands frames lazily: an animation computes frame i from its
 * parameters; a list re-reads its file line by line (a FILE * and a line counter), so memory does
 * not grow with the number of frames. Errors inside the job file or a list line go through a
 * kiln__sj_ctx whose text is that file or line (batch_internal.h), which gives them a line, a column and
 * a JSON path, exactly as the scene loader's.
 *
 * Threads: kiln_job_next and kiln_job_rewind change the iteration state and must not run
 * concurrently for one job; everything else only reads the job (struct kiln_job in batch_internal.h). */
#define _POSIX_C_SOURCE 200809L
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch_internal.h"


/* ---- the scene ----------------------------------------------------------------------------- */

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  return d ? memcpy(d, s, n) : NULL;
}

/* Names of the entries of array key of the scene document: "name", else def(entry); and the
 * same names sorted into *index. */
static int entry_names(const cJSON *doc, const char *key, bool objects, char ***out,
                       kiln__name_ref **index, size_t *n) {
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(doc, key);
  *n = (size_t)(cJSON_IsArray(a) ? cJSON_GetArraySize(a) : 0);
  if (!*n) return 0;
  if (!(*out = calloc(*n, sizeof **out)) || !(*index = malloc(*n * sizeof **index)))
    return KILN_ENOMEM;
  size_t i = 0;
  for (const cJSON *e = a->child; e; e = e->next, i++) {
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
    const char *s = objects ? "object" : "light";
    if (cJSON_IsString(nm)) {
      s = nm->valuestring;
    } else if (objects) {
      const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "type");
      const cJSON *f = cJSON_GetObjectItemCaseSensitive(e, "file");
      if (cJSON_IsString(f)) s = f->valuestring;
      else if (cJSON_IsString(t)) s = t->valuestring;
    }
    if (!((*out)[i] = dup_str(s))) return KILN_ENOMEM;
    (*index)[i] = (kiln__name_ref){(*out)[i], i};
  }
  kiln__names_sort(*index, *n);
  return 0;
}

/* The members of the scene document's "materials" (names the loader found distinct), indexed. */
static int material_index(kiln_job *job) {
  const cJSON *o = cJSON_GetObjectItemCaseSensitive(job->scene_doc, "materials");
  size_t n = (size_t)(cJSON_IsObject(o) ? cJSON_GetArraySize(o) : 0), i = 0;
  if (!n) return 0;
  if (!(job->materials = malloc(n * sizeof *job->materials)) ||
      !(job->material_index = malloc(n * sizeof *job->material_index)))
    return KILN_ENOMEM;
  for (const cJSON *m = o->child; m; m = m->next, i++)
    job->materials[i] = m, job->material_index[i] = (kiln__name_ref){m->string, i};
  kiln__names_sort(job->material_index, n);
  job->nmaterials = n;
  return 0;
}

static int nomem(kiln_error_detail *err, const char *file) {
  snprintf(err->file, sizeof err->file, "%s", file);
  snprintf(err->message, sizeof err->message, "out of memory");
  return KILN_ENOMEM;
}

/* Loads the scene at path (validated, errors located in it) and keeps its document and names. */
static int load_scene(kiln_job *job, const char *path, kiln_pool *pool, kiln_error_detail *err) {
  int rc = kiln__asset_cache_create(&job->assets);
  if (rc) return nomem(err, path);
  if ((rc = kiln__scene_load_cached(pool, path, job->assets, err, &job->scene))) return rc;
  size_t len;
  if (!(job->scene_path = dup_str(path)) || !(job->scene_dir = kiln__dirname(path)))
    return nomem(err, path);
  /* a glTF scene's overrides patch its JSON equivalent (a scene with the file as its object) */
  if (kiln__is_gltf_path(path)) {
    if (!(job->scene_text = kiln__gltf_scene_json(job->scene, path))) return nomem(err, path);
  } else if ((rc = kiln__read_file(path, &job->scene_text, &len, err->message,
                                   sizeof err->message))) {
    snprintf(err->file, sizeof err->file, "%s", path);
    return rc;
  }
  if (!(job->scene_doc = cJSON_ParseWithOpts(job->scene_text, NULL, true))) return nomem(err, path);
  if (entry_names(job->scene_doc, "objects", true, &job->objects, &job->object_index,
                  &job->nobjects) ||
      entry_names(job->scene_doc, "lights", false, &job->lights, &job->light_index,
                  &job->nlights) ||
      material_index(job))
    return nomem(err, path);
  const kiln__camera *sc = &job->scene->data.camera;
  kiln_camera *cam = &job->camera;
  cam->thin_lens = sc->type == KILN__CAM_THIN_LENS;
  memcpy(cam->position, sc->position, sizeof cam->position);
  memcpy(cam->look_at, sc->look_at, sizeof cam->look_at);
  memcpy(cam->up, sc->up, sizeof cam->up);
  cam->vfov_deg = sc->vfov_deg, cam->aperture = sc->aperture,
  cam->focus_distance = sc->focus_distance;
  cam->fx = sc->fx, cam->fy = sc->fy, cam->cx = sc->cx, cam->cy = sc->cy;
  cam->k_width = sc->k_width, cam->k_height = sc->k_height;
  const cJSON *c = cJSON_GetObjectItemCaseSensitive(job->scene_doc, "camera");
  job->focus_given = cam->thin_lens && cJSON_GetObjectItemCaseSensitive(c, "focus_distance");
  job->seed = job->scene->data.settings.seed;
  kiln__job_apply_settings(job, job->scene);
  return 0;
}

/* ---- the .json job --------------------------------------------------------------------------- */

static int parse_passes(kiln_job *job, kiln__sj_ctx *c, const cJSON *p) {
  kiln__sj_push_key(c, "passes");
  if (!cJSON_IsArray(p)) return kiln__sj_fail(c, "passes must be an array of pass names");
  int i = 0;
  for (const cJSON *e = p->child; e; e = e->next, i++) {
    kiln__sj_push_index(c, i);
    if (!cJSON_IsString(e)) return kiln__sj_fail(c, "a pass must be a string");
    int k = 0;
    while (kiln__pass_names[k] && strcmp(kiln__pass_names[k], e->valuestring) != 0) k++;
    if (!kiln__pass_names[k]) {
      const char *near = kiln__sj_closest(e->valuestring, kiln__pass_names);
      if (near)
        return kiln__sj_fail(c, "unknown pass '%s' (did you mean '%s'?)", e->valuestring, near);
      return kiln__sj_fail(c,
                           "unknown pass '%s' (one of color, depth, normal, albedo, id, instance)",
                           e->valuestring);
    }
    job->passes |= 1u << k;
    kiln__sj_pop(c);
  }
  kiln__sj_pop(c);
  return 0;
}

/* "exr": {"half": bool, "compression": "none" | "rle" | "zips" | "zip" | "piz"}. */
static int parse_exr(kiln_job *job, kiln__sj_ctx *c, const cJSON *o) {
  static const char *const keys[] = {"half", "compression", NULL};
  static const char *const comps[] = {"none", "rle", "zips", "zip", "piz", NULL};
  int rc, comp;
  kiln__sj_push_key(c, "exr");
  if ((rc = kiln__sj_expect_object(c, o, "exr")) || (rc = kiln__sj_check_keys(c, o, keys)))
    return rc;
  const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "half");
  if (h && !cJSON_IsBool(h)) return kiln__sj_fail_at(c, "half", "half must be true or false");
  job->exr_half = cJSON_IsTrue(h);
  if ((rc = kiln__sj_choice(c, o, "compression", "zip", comps, &comp))) return rc;
  job->exr_compression = (kiln_exr_compression)(KILN_EXR_NONE + comp); /* in kiln_exr_compression's order */
  kiln__sj_pop(c);
  return 0;
}

/* output, passes, format, width, height, spp. */
static int parse_settings(kiln_job *job, kiln__sj_ctx *c, const cJSON *root) {
  const char *out = "{frame:05d}_{pass}.{ext}";
  int rc, fmt;
  double w, h, spp;
  if ((rc = kiln__sj_string(c, root, "output", out, &out))) return rc;
  char msg[400];
  if (kiln__outname_check(out, msg, sizeof msg) || kiln__outname_confined(out, msg, sizeof msg))
    return kiln__sj_fail_at(c, "output", "%s", msg);
  if (!(job->output = dup_str(out))) return kiln__sj_nomem(c);
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "passes");
  if (p && (rc = parse_passes(job, c, p))) return rc;
  if ((rc = kiln__sj_choice(c, root, "format", "png", kiln__format_names, &fmt)) ||
      (rc = kiln__sj_integer(c, root, "width", 0, 1, 16384, &w)) ||
      (rc = kiln__sj_integer(c, root, "height", 0, 1, 16384, &h)) ||
      (rc = kiln__sj_integer(c, root, "spp", 0, 1, 1 << 24, &spp)))
    return rc;
  job->format = kiln__format_of(fmt);
  job->width = (int32_t)w, job->height = (int32_t)h, job->spp = (int32_t)spp;
  const cJSON *exr = cJSON_GetObjectItemCaseSensitive(root, "exr");
  double tar;
  if ((exr && (rc = parse_exr(job, c, exr))) ||
      (rc = kiln__sj_integer(c, root, "tar", 0, 1, 1 << 24, &tar)))
    return rc;
  job->tar_frames = (uint32_t)tar;
  return 0;
}

static int open_list(kiln_job *job, kiln_error_detail *err);

/* An error at the current path: no object of the job's scene is called name (or has it as the
 * name of its mesh, name.group). */
static int no_object(kiln__sj_ctx *c, const kiln__scene *s, const char *name) {
  const char **list = malloc((s->nobjects + 1) * sizeof *list);
  if (!list) return kiln__sj_nomem(c);
  for (size_t i = 0; i < s->nobjects; i++) list[i] = s->object_names[i];
  list[s->nobjects] = NULL;
  const char *near = kiln__sj_closest(name, list);
  int rc =
      near ? kiln__sj_fail(c, "the scene has no object named '%s' (did you mean '%s'?)", name, near)
           : kiln__sj_fail(c, "the scene has no object named '%s'", name);
  free(list);
  return rc;
}

/* An error at the current path: the declaration in force (the job's, else the scene's) has no
 * category name. */
static int no_category(kiln__sj_ctx *c, const kiln_job *job, const kiln__scene *s,
                       const char *name) {
  size_t n = job->ncats ? job->ncats : s->ncategories;
  const char **list = malloc((n + 1) * sizeof *list);
  if (!list) return kiln__sj_nomem(c);
  for (size_t i = 0; i < n; i++) list[i] = job->ncats ? job->cats[i].name : s->category_names[i];
  list[n] = NULL;
  const char *near = kiln__sj_closest(name, list);
  const char *who = job->ncats ? "the job" : "the scene";
  int rc = near ? kiln__sj_fail(c, "unknown category '%s' (did you mean '%s'?)", name, near)
                : kiln__sj_fail(c, "unknown category '%s': %s declares %zu", name, who, n);
  free(list);
  return rc;
}

/* object_categories: {object name: category name}, each checked against the job's scene. */
static int parse_object_categories(kiln_job *job, kiln__sj_ctx *c, const cJSON *o) {
  const kiln__scene *s = &job->scene->data;
  bool declared = job->ncats || cJSON_GetObjectItemCaseSensitive(job->scene_doc, "categories");
  kiln__sj_push_key(c, "object_categories");
  if (!cJSON_IsObject(o))
    return kiln__sj_fail(c, "object_categories must be an object {object name: category}");
  size_t n = (size_t)cJSON_GetArraySize(o);
  if (n && (!(job->ocat_objects = calloc(n, sizeof(char *))) ||
            !(job->ocat_names = calloc(n, sizeof(char *)))))
    return kiln__sj_nomem(c);
  for (const cJSON *e = o->child; e; e = e->next) {
    kiln__sj_push_key(c, e->string);
    if (!cJSON_IsString(e) || !e->valuestring[0])
      return kiln__sj_fail(c, "a category must be a non-empty string (its name)");
    bool any = false;
    for (size_t i = 0; i < s->nobjects && !any; i++)
      any = kiln__job_object_matches(s->object_names[i], e->string);
    if (!any) return no_object(c, s, e->string);
    bool known = job->ncats && kiln__categories_find(job->cats, job->ncats, e->valuestring) >= 0;
    for (size_t i = 0; !job->ncats && i < s->ncategories && !known; i++)
      known = strcmp(s->category_names[i], e->valuestring) == 0;
    if (declared && !known) return no_category(c, job, s, e->valuestring);
    size_t k = job->nocat;
    if (!(job->ocat_objects[k] = dup_str(e->string)) ||
        !(job->ocat_names[k] = dup_str(e->valuestring)))
      return kiln__sj_nomem(c);
    job->nocat++;
    kiln__sj_pop(c);
  }
  kiln__sj_pop(c);
  return 0;
}

/* The job's "categories" and "object_categories", applied to its scene. */
static int parse_categories(kiln_job *job, kiln__sj_ctx *c, const cJSON *root) {
  const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "categories");
  const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, "object_categories");
  int rc;
  if (d) {
    kiln__sj_push_key(c, "categories");
    if ((rc = kiln__sj_categories(c, d, &job->cats, &job->ncats))) return rc;
    kiln__sj_pop(c);
  }
  if (o && (rc = parse_object_categories(job, c, o))) return rc;
  char msg[400];
  if ((rc = kiln__job_apply_categories(job, &job->scene->data, msg, sizeof msg)))
    return rc == KILN_ENOMEM ? kiln__sj_nomem(c) : kiln__sj_fail_at(c, "categories", "%s", msg);
  return 0;
}

/* Notes the number of the list's next frame (job->runs). */
static int note_frame(kiln_job *job, long frame) {
  kiln__frame_run *r = job->nruns ? &job->runs[job->nruns - 1] : NULL;
  if (r && r->n == 1 && frame > LONG_MIN / 2 && frame < LONG_MAX / 2 && r->first > LONG_MIN / 2 &&
      r->first < LONG_MAX / 2) {
    r->step = frame - r->first, r->n = 2;
    return 0;
  }
  if (r && r->n > 1 && frame - r->step == r->first + (long)(r->n - 1) * r->step) {
    r->n++;
    return 0;
  }
  if (job->nruns == job->runs_cap) {
    size_t cap = job->runs_cap ? 2 * job->runs_cap : 4;
    kiln__frame_run *t = realloc(job->runs, cap * sizeof *t);
    if (!t) return KILN_ENOMEM;
    job->runs = t, job->runs_cap = cap;
  }
  job->runs[job->nruns++] = (kiln__frame_run){frame, 0, 1};
  return 0;
}

static int parse_job(kiln_job *job, const kiln_job_options *opt, kiln__sj_ctx *c) {
  static const char *const keys[] = {"description", "scene",      "output",            "passes",
                                     "format",      "width",      "height",            "spp",
                                     "animation",   "images",     "categories",        "object_categories",
                                     "exr",         "tar",
                                     NULL};
  const cJSON *root = job->root;
  int rc;
  if (!cJSON_IsObject(root)) return kiln__sj_fail(c, "a job must be a JSON object");
  const char *scene = NULL, *ignored;
  if ((rc = kiln__sj_check_keys(c, root, keys)) ||
      (cJSON_GetObjectItemCaseSensitive(root, "description") &&
       (rc = kiln__sj_string(c, root, "description", NULL, &ignored))) ||
      (!opt->scene && (rc = kiln__sj_string(c, root, "scene", NULL, &scene))) ||
      (opt->scene && cJSON_GetObjectItemCaseSensitive(root, "scene") &&
       (rc = kiln__sj_string(c, root, "scene", NULL, &ignored))) ||
      (rc = parse_settings(job, c, root)))
    return rc;
  const cJSON *anim = cJSON_GetObjectItemCaseSensitive(root, "animation");
  const cJSON *images = cJSON_GetObjectItemCaseSensitive(root, "images");
  if (anim && images)
    return kiln__sj_fail_at(c, "images", "a job has either 'animation' or 'images', not both");
  if (!anim && !images) return kiln__sj_fail(c, "a job needs 'animation' or 'images'");
  char *dir = kiln__dirname(job->path), *sp = NULL;
  if (!dir || (scene && !(sp = kiln__path_join(dir, scene)))) return free(dir), kiln__sj_nomem(c);
  rc = load_scene(job, scene ? sp : opt->scene, opt->pool, c->err);
  free(sp);
  if (!rc) rc = parse_categories(job, c, root);
  if (rc) return free(dir), rc;
  if (anim) {
    job->kind = KILN__JOB_ANIM;
    kiln__sj_push_key(c, "animation");
    if (!(rc = kiln__anim_parse(job, c, anim))) kiln__sj_pop(c);
  } else if (cJSON_IsString(images) && images->valuestring[0]) {
    job->kind = KILN__JOB_LIST_FILE;
    if (!(job->list_path = kiln__path_join(dir, images->valuestring))) rc = kiln__sj_nomem(c);
    else if ((rc = open_list(job, c->err)) == KILN_EIO &&
             !c->err->line) { /* at "images" in the job */
      char msg[sizeof c->err->message];
      snprintf(msg, sizeof msg, "%s", c->err->message);
      kiln__sj_fail_at(c, "images", "%s", msg);
      rc = KILN_EIO;
    }
  } else if (cJSON_IsArray(images)) {
    job->kind = KILN__JOB_LIST_INLINE;
    job->images = job->next_image = images->child;
    kiln_job_frame fr;
    for (const cJSON *e = images->child; e && !rc; e = e->next, job->count++) {
      memset(&fr, 0, sizeof fr);
      kiln__sj_push_key(c, "images");
      kiln__sj_push_index(c, (int)job->count);
      if (!(rc = kiln__list_image(job, c, e, job->count, &fr))) c->depth -= 2;
      if (!rc && (rc = note_frame(job, fr.frame))) kiln__sj_nomem(c);
      kiln_job_frame_clear(&fr);
    }
  } else {
    rc = kiln__sj_fail_at(c, "images", "images must be a .jsonl file name or an array of images");
  }
  free(dir);
  return rc;
}

static int load_json_job(kiln_job *job, const kiln_job_options *opt, kiln_error_detail *err) {
  size_t len;
  int rc = kiln__read_file(job->path, &job->text, &len, err->message, sizeof err->message);
  kiln__sj_ctx c;
  kiln__job_ctx(&c, job->text, job->path, err);
  snprintf(err->file, sizeof err->file, "%s", job->path);
  if (rc) return rc;
  if (strlen(job->text) != len) {
    snprintf(err->message, sizeof err->message, "NUL byte in the job file");
    return KILN_EPARSE;
  }
  const char *end = NULL;
  if (!(job->root = cJSON_ParseWithOpts(job->text, &end, true))) {
    size_t off = end ? (size_t)(end - job->text) : len;
    kiln__text_position(job->text, off, &err->line, &err->column);
    snprintf(err->message, sizeof err->message, "JSON syntax error%s",
             job->text[off] ? "" : " (unexpected end)");
    return KILN_EPARSE;
  }
  size_t nul = kiln__json_nul_escape(job->text);
  if (nul != (size_t)-1) {
    kiln__text_position(job->text, nul, &err->line, &err->column);
    snprintf(err->message, sizeof err->message, "\\u0000 in a string: strings must not hold NUL");
    return KILN_EPARSE;
  }
  memset(err, 0, sizeof *err);
  return parse_job(job, opt, &c);
}

void kiln__job_locate_output(const kiln_job *job, kiln_error_detail *err) {
  if (!job->root || !cJSON_GetObjectItemCaseSensitive(job->root, "output")) return;
  kiln__sj_ctx c;
  kiln__job_ctx(&c, job->text, job->path, err);
  char msg[sizeof err->message];
  snprintf(msg, sizeof msg, "%s", err->message);
  kiln__sj_fail_at(&c, "output", "%s", msg);
}

/* ---- lists ---------------------------------------------------------------------------------- */

static bool blank(const char *s) {
  for (; *s; s++)
    if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n') return false;
  return true;
}

/* The next non-blank line of the list into *fr; KILN_EEOF at the end. */
static int next_line(kiln_job *job, kiln_job_frame *fr, kiln_error_detail *err) {
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  errno = 0;
  while ((n = getline(&line, &cap, job->list)) >= 0) {
    job->lineno++;
    if ((size_t)n != strlen(line)) {
      free(line);
      snprintf(err->file, sizeof err->file, "%s", job->list_path);
      err->line = (int)job->lineno;
      snprintf(err->message, sizeof err->message, "NUL byte in the line");
      return KILN_EPARSE;
    }
    if (blank(line)) continue;
    int rc = kiln__list_line(job, line, job->lineno, job->next, err, fr);
    free(line);
    if (!rc) snprintf(fr->where, sizeof fr->where, "%s:%ld", job->list_path, job->lineno);
    return rc;
  }
  free(line);
  if (ferror(job->list) || errno == ENOMEM) {
    int rc = errno == ENOMEM ? KILN_ENOMEM : KILN_EIO;
    snprintf(err->file, sizeof err->file, "%s", job->list_path);
    err->line = (int)job->lineno + 1;
    snprintf(err->message, sizeof err->message, "cannot read: %s", strerror(errno ? errno : EIO));
    return rc;
  }
  return KILN_EEOF;
}

/* Opens the list and validates every line, counting the images. */
static int open_list(kiln_job *job, kiln_error_detail *err) {
  if (!(job->list = fopen(job->list_path, "rb"))) {
    snprintf(err->file, sizeof err->file, "%s", job->list_path);
    snprintf(err->message, sizeof err->message, "cannot open %s: %s", job->list_path,
             strerror(errno));
    return KILN_EIO;
  }
  int rc;
  kiln_job_frame fr;
  for (;;) {
    memset(&fr, 0, sizeof fr);
    rc = next_line(job, &fr, err);
    if (!rc && (rc = note_frame(job, fr.frame))) nomem(err, job->list_path);
    kiln_job_frame_clear(&fr);
    if (rc) break;
    job->next++;
  }
  if (rc != KILN_EEOF) return rc;
  memset(err, 0, sizeof *err);
  job->count = job->next;
  return kiln_job_rewind(job);
}

/* ---- the API ------------------------------------------------------------------------------- */

static bool is_jsonl(const char *path) {
  size_t n = strlen(path);
  return n >= 6 && strcmp(path + n - 6, ".jsonl") == 0;
}

int kiln_job_load(const char *path, const kiln_job_options *opt, kiln_error_detail *err,
                  kiln_job **out) {
  kiln_error_detail dummy;
  kiln_job_options none = {0};
  if (!err) err = &dummy;
  memset(err, 0, sizeof *err);
  if (out) *out = NULL;
  if (!path || !out) {
    snprintf(err->message, sizeof err->message, "path and out must not be NULL");
    return err->code = KILN_EINVAL;
  }
  if (!opt) opt = &none;
  kiln_job *job = calloc(1, sizeof *job);
  if (!job || !(job->path = dup_str(path))) return free(job), err->code = nomem(err, path);
  job->passes = KILN_PASS_COLOR, job->format = KILN_FORMAT_PNG;
  int rc;
  if (is_jsonl(path)) {
    job->kind = KILN__JOB_LIST_FILE;
    if (!opt->scene) {
      snprintf(err->file, sizeof err->file, "%s", path);
      snprintf(err->message, sizeof err->message,
               "a .jsonl list names no scene: give one (kiln_job_options.scene, --scene)");
      rc = KILN_EINVAL;
    } else if (!(job->output = dup_str("{frame:05d}_{pass}.{ext}")) ||
               !(job->list_path = dup_str(path))) {
      rc = nomem(err, path);
    } else if (!(rc = load_scene(job, opt->scene, opt->pool, err))) {
      rc = open_list(job, err);
    }
  } else {
    rc = load_json_job(job, opt, err);
  }
  if (rc) {
    kiln_job_destroy(job);
    return err->code = rc;
  }
  memset(err, 0, sizeof *err);
  *out = job;
  return 0;
}

const kiln_scene *kiln_job_scene(const kiln_job *job) { return job->scene; }

void kiln_job_get_info(const kiln_job *job, kiln_job_info *info) {
  assert(job && info);
  *info = (kiln_job_info){job->output,   job->passes,          job->format,
                          job->count,    job->exr_half,        job->exr_compression,
                          job->tar_frames};
}

uint64_t kiln__job_count_frames(const kiln_job *job, bool (*fn)(void *arg, long frame), void *arg) {
  uint64_t n = 0;
  if (job->kind == KILN__JOB_ANIM) {
    for (uint64_t i = 0; i < job->count; i++)
      n += fn(arg, job->anim.start + (long)i * job->anim.step);
    return n;
  }
  for (size_t r = 0; r < job->nruns; r++)
    for (uint64_t i = 0; i < job->runs[r].n; i++)
      n += fn(arg, job->runs[r].first + (long)i * job->runs[r].step);
  return n;
}

static int next_frame(kiln_job *job, kiln_job_frame *fr, kiln_error_detail *err) {
  int rc;
  if (job->kind == KILN__JOB_ANIM) {
    if (job->next >= job->count) return KILN_EEOF;
    if ((rc = kiln__anim_frame(job, job->next, fr))) return nomem(err, job->path);
  } else if (job->kind == KILN__JOB_LIST_FILE) {
    if ((rc = next_line(job, fr, err))) return kiln_job_frame_clear(fr), rc;
  } else {
    if (!job->next_image) return KILN_EEOF;
    kiln__sj_ctx c;
    kiln__job_ctx(&c, job->text, job->path, err);
    kiln__sj_push_key(&c, "images");
    kiln__sj_push_index(&c, (int)job->next);
    if ((rc = kiln__list_image(job, &c, job->next_image, job->next, fr)))
      return kiln_job_frame_clear(fr), rc;
    snprintf(fr->where, sizeof fr->where, "%s: images[%llu]", job->path,
             (unsigned long long)job->next);
    job->next_image = job->next_image->next;
  }
  fr->index = job->next++;
  return 0;
}

int kiln__job_frame_at(const kiln_job *job, uint64_t index, kiln_job_frame *fr) {
  memset(fr, 0, sizeof *fr);
  if (index >= job->count) return KILN_EEOF;
  if (job->kind == KILN__JOB_ANIM) return kiln__anim_frame(job, index, fr) ? KILN_ENOMEM : 0;
  if (job->kind != KILN__JOB_LIST_INLINE) return KILN_EUNSUPPORTED;
  const cJSON *o = job->images;
  for (uint64_t i = 0; o && i < index; i++) o = o->next;
  if (!o) return KILN_EEOF;
  kiln_error_detail err;
  kiln__sj_ctx c;
  kiln__job_ctx(&c, job->text, job->path, &err);
  kiln__sj_push_key(&c, "images");
  kiln__sj_push_index(&c, (int)index);
  int rc = kiln__list_image(job, &c, o, index, fr); /* validated at load: only ENOMEM is left */
  if (rc) return kiln_job_frame_clear(fr), rc;
  fr->index = index;
  snprintf(fr->where, sizeof fr->where, "%s: images[%llu]", job->path, (unsigned long long)index);
  return 0;
}

int kiln_job_next(kiln_job *job, kiln_job_frame *fr, kiln_error_detail *err) {
  assert(job && fr);
  kiln_error_detail dummy;
  if (!err) err = &dummy;
  memset(err, 0, sizeof *err);
  memset(fr, 0, sizeof *fr);
  int rc = next_frame(job, fr, err);
  if (rc == KILN_EEOF) memset(err, 0, sizeof *err);
  else err->code = rc;
  return rc;
}

int kiln_job_rewind(kiln_job *job) {
  assert(job);
  job->next = 0, job->lineno = 0;
  job->next_image = job->images;
  if (job->list) {
    /* reopened, not fseek'd: stdio may keep a buffer of the old contents, and an editor may have
     * replaced the file */
    fclose(job->list);
    if (!(job->list = fopen(job->list_path, "rb"))) return KILN_EIO;
  }
  return 0;
}

void kiln_job_frame_clear(kiln_job_frame *fr) {
  if (!fr) return;
  free(fr->scene_patch);
  memset(fr, 0, sizeof *fr);
}

void kiln_job_destroy(kiln_job *job) {
  if (!job) return;
  if (job->list) fclose(job->list);
  kiln__anim_free(&job->anim);
  for (size_t i = 0; i < job->nobjects; i++) free(job->objects[i]);
  for (size_t i = 0; i < job->nlights; i++) free(job->lights[i]);
  free(job->objects), free(job->lights), free(job->object_index), free(job->light_index);
  free(job->materials), free(job->material_index);
  kiln_scene_destroy(job->scene);
  kiln__asset_cache_destroy(job->assets);
  cJSON_Delete(job->scene_doc), cJSON_Delete(job->root);
  free(job->scene_text), free(job->scene_path), free(job->scene_dir);
  free(job->text), free(job->path), free(job->output), free(job->list_path);
  free(job->runs);
  kiln__categories_free(job->cats, job->ncats);
  for (size_t i = 0; i < job->nocat; i++) free(job->ocat_objects[i]), free(job->ocat_names[i]);
  free(job->ocat_objects), free(job->ocat_names);
  free(job);
}
