/* job_scene.c: kiln_job_frame_scene: a frame's scene, the job's scene document with the frame's
 * patch (object, material, light and environment overrides as JSON) applied, loaded anew.
 *
 * The patch is merged into a copy of the document: an object or light override replaces the named
 * entry's keys it gives (a transform replaces the whole transform); a material or environment
 * override does the same unless its "type" differs from the scene's, in which case it replaces the
 * material or environment. The result is printed and loaded as kiln_scene_load_string would
 * (relative file names resolved against the scene's folder), with the job's asset cache: mesh
 * and image files are decoded once per job, not once per frame. An error in the merged text is
 * reported with the frame's `where` as its file and the path rewritten to the override's
 * (objects[2] becomes objects.<name>), since the merged text's lines exist nowhere.
 *
 * Threads: only reads the job (its scene document and names; its asset cache takes its own
 * lock), so any number of calls may run at once, alongside kiln_job_next. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch_internal.h"

/* Sets obj[key] to a copy of v. */
static bool set_key(cJSON *obj, const char *key, const cJSON *v) {
  cJSON *d = cJSON_Duplicate(v, true);
  if (!d) return false;
  if (cJSON_GetObjectItemCaseSensitive(obj, key))
    return cJSON_ReplaceItemInObjectCaseSensitive(obj, key, d);
  if (cJSON_AddItemToObject(obj, key, d)) return true;
  cJSON_Delete(d);
  return false;
}

static bool merge(cJSON *dst, const cJSON *src) {
  for (const cJSON *k = src->child; k; k = k->next)
    if (!set_key(dst, k->string, k)) return false;
  return true;
}

/* Merges src into container[key] (an object), or replaces it when src's type differs. */
static bool merge_typed(cJSON *container, const char *key, const cJSON *src) {
  cJSON *dst = cJSON_GetObjectItemCaseSensitive(container, key);
  const cJSON *st = cJSON_GetObjectItemCaseSensitive(src, "type");
  const cJSON *dt = cJSON_GetObjectItemCaseSensitive(dst, "type");
  if (!cJSON_IsObject(dst) ||
      (cJSON_IsString(st) &&
       !(cJSON_IsString(dt) && strcmp(st->valuestring, dt->valuestring) == 0)))
    return set_key(container, key, src);
  return merge(dst, src);
}

/* Merges each member of patch (named entries) into the entry of doc[key] of that name. */
static int merge_entries(const kiln_job *job, cJSON *doc, const cJSON *patch, const char *key,
                         bool objects) {
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(patch, key);
  cJSON *arr = cJSON_GetObjectItemCaseSensitive(doc, key);
  for (const cJSON *m = p ? p->child : NULL; m; m = m->next) {
    int i = objects ? kiln__job_find(job->object_index, job->nobjects, m->string)
                    : kiln__job_find(job->light_index, job->nlights, m->string);
    cJSON *e = i >= 0 ? cJSON_GetArrayItem(arr, i) : NULL;
    if (!e || !cJSON_IsObject(m)) return KILN_EPARSE;
    if (!merge(e, m)) return KILN_ENOMEM;
  }
  return 0;
}

static int apply(const kiln_job *job, cJSON *doc, const cJSON *patch) {
  int rc;
  if ((rc = merge_entries(job, doc, patch, "objects", true)) ||
      (rc = merge_entries(job, doc, patch, "lights", false)))
    return rc;
  const cJSON *mats = cJSON_GetObjectItemCaseSensitive(patch, "materials");
  cJSON *dm = cJSON_GetObjectItemCaseSensitive(doc, "materials");
  for (const cJSON *m = mats ? mats->child : NULL; m; m = m->next) {
    if (!cJSON_IsObject(m) || !cJSON_GetObjectItemCaseSensitive(dm, m->string)) return KILN_EPARSE;
    if (!merge_typed(dm, m->string, m)) return KILN_ENOMEM;
  }
  const cJSON *env = cJSON_GetObjectItemCaseSensitive(patch, "environment");
  if (env && (!cJSON_IsObject(env) || !merge_typed(doc, "environment", env)))
    return cJSON_IsObject(env) ? KILN_ENOMEM : KILN_EPARSE;
  return 0;
}

/* "objects[3].x" -> "objects.<name of entry 3>.x" (likewise lights), in place. */
static void rename_path(const kiln_job *job, char *path, size_t cap) {
  static const char *const keys[] = {"objects[", "lights["};
  for (int k = 0; k < 2; k++) {
    size_t n = strlen(keys[k]);
    if (strncmp(path, keys[k], n) != 0) continue;
    char *end;
    unsigned long i = strtoul(path + n, &end, 10);
    char *const *names = k ? job->lights : job->objects;
    size_t count = k ? job->nlights : job->nobjects;
    if (*end != ']' || i >= count) return;
    char out[600];
    snprintf(out, sizeof out, "%.*s.%.200s%.255s", (int)n - 1, keys[k], names[i], end + 1);
    size_t len = strlen(out) < cap ? strlen(out) : cap - 1;
    memcpy(path, out, len);
    path[len] = '\0';
  }
}

static int frame_scene(const kiln_job *job, const kiln_job_frame *fr, kiln_error_detail *err,
                       kiln_scene **out) {
  snprintf(err->file, sizeof err->file, "%.511s", fr->where);
  cJSON *patch = cJSON_ParseWithOpts(fr->scene_patch, NULL, true), *doc = NULL;
  char *text = NULL;
  int rc = KILN_ENOMEM;
  if (!patch || !cJSON_IsObject(patch)) {
    rc = KILN_EPARSE;
    snprintf(err->message, sizeof err->message, "the frame's scene patch is not a JSON object");
  } else if (!(doc = cJSON_Duplicate(job->scene_doc, true)) || (rc = apply(job, doc, patch))) {
    snprintf(err->message, sizeof err->message, "%s",
             rc == KILN_EPARSE ? "the frame's scene patch names "
                                 "an object, light or material the scene does not have"
                               : "out of memory");
  } else if (!(text = cJSON_PrintUnformatted(doc))) {
    rc = KILN_ENOMEM;
    snprintf(err->message, sizeof err->message, "out of memory");
  } else if ((rc = kiln__scene_load_string_cached(text, job->scene_dir, fr->where, NULL,
                                                  job->assets, err, out))) {
    if (strncmp(err->file, fr->where, sizeof err->file - 1) == 0) {
      err->line = err->column = 0;
      rename_path(job, err->path, sizeof err->path);
    }
  } else {
    kiln__job_apply_settings(job, *out);
    char msg[400];
    if ((rc = kiln__job_apply_categories(job, &(*out)->data, msg, sizeof msg))) {
      snprintf(err->message, sizeof err->message, "%s", msg);
      kiln_scene_destroy(*out);
      *out = NULL;
    }
  }
  free(text);
  cJSON_Delete(doc), cJSON_Delete(patch);
  return rc;
}

int kiln_job_frame_scene(const kiln_job *job, const kiln_job_frame *fr, kiln_error_detail *err,
                         kiln_scene **out) {
  kiln_error_detail dummy;
  if (!err) err = &dummy;
  memset(err, 0, sizeof *err);
  if (out) *out = NULL;
  if (!job || !fr || !out) {
    snprintf(err->message, sizeof err->message, "job, fr and out must not be NULL");
    return err->code = KILN_EINVAL;
  }
  if (!fr->scene_patch) return 0;
  int rc = frame_scene(job, fr, err, out);
  if (rc) err->code = rc;
  else memset(err, 0, sizeof *err);
  return rc;
}
