/* job_common.c: what the job reader's files share (batch_internal.h): a walk context over a job
 * file or list line, looking up the scene's objects and lights by name, checking a camera, and the
 * job's size overrides. job_file.c, job_anim.c, job_list.c and job_scene.c call these; these call
 * none of them, so the job files depend on this one and not on each other in a circle. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch_internal.h"

void kiln__job_ctx(kiln__sj_ctx *c, const char *text, const char *file, kiln_error_detail *err) {
  memset(c, 0, sizeof *c);
  c->text = text, c->file = file, c->err = err;
}

int kiln__job_find(const kiln__name_ref *index, size_t n, const char *name) {
  size_t count;
  const kiln__name_ref *r = kiln__names_find(index, n, name, &count);
  return !r ? -1 : count > 1 ? -2 : (int)r->index;
}

const cJSON *kiln__job_material(const kiln_job *job, const char *name) {
  const kiln__name_ref *r = kiln__names_find(job->material_index, job->nmaterials, name, NULL);
  return r ? job->materials[r->index] : NULL;
}

int kiln__job_no_such(kiln__sj_ctx *c, const char *what, const char *name, char *const *names,
                      size_t n) {
  const char *list[65];
  size_t k = 0;
  for (; k < n && k < 64; k++) list[k] = names[k];
  list[k] = NULL;
  const char *near = kiln__sj_closest(name, list);
  if (near)
    return kiln__sj_fail(c, "the scene has no %s named '%s' (did you mean '%s'?)", what, name,
                         near);
  return kiln__sj_fail(c, "the scene has no %s named '%s'", what, name);
}

int kiln__job_check_camera(kiln__sj_ctx *c, const kiln_camera *cam, const char *key_at) {
  float f[3] = {cam->look_at[0] - cam->position[0], cam->look_at[1] - cam->position[1],
                cam->look_at[2] - cam->position[2]},
        x[3];
  int d = c->depth;
  if (key_at) kiln__sj_push_key(c, key_at);
  int rc = 0;
  if (cam->k_width > 0 && !(cam->k_height > 0 && cam->fx > 0 && cam->fy > 0))
    rc = kiln__sj_fail(c, "intrinsics need fx > 0, fy > 0 and a size, not fx = %g, fy = %g for "
                          "%d x %d", cam->fx, cam->fy, (int)cam->k_width, (int)cam->k_height);
  else if (cam->k_width <= 0 && !(cam->vfov_deg > 0 && cam->vfov_deg < 180))
    rc = kiln__sj_fail(c, "vfov must be in (0, 180) degrees, not %g", cam->vfov_deg);
  else if (kiln__len3(f) < 1e-12)
    rc = kiln__sj_fail(c, "look_at equals position: no view direction");
  else if (kiln__len3(cam->up) < 1e-12) rc = kiln__sj_fail(c, "up has zero length");
  else if (kiln__cross3(f, cam->up, x), kiln__len3(x) <= 1e-6 * kiln__len3(f) * kiln__len3(cam->up))
    rc = kiln__sj_fail(c, "up is parallel to the view direction (look_at - position)");
  else if (cam->thin_lens && !(cam->focus_distance > 0))
    rc = kiln__sj_fail(c, "focus_distance must be > 0");
  else if (cam->thin_lens && !(cam->aperture >= 0)) rc = kiln__sj_fail(c, "aperture must be >= 0");
  c->depth = d;
  return rc;
}

void kiln__job_apply_settings(const kiln_job *job, kiln_scene *s) {
  if (job->width) s->data.settings.width = job->width;
  if (job->height) s->data.settings.height = job->height;
  if (job->spp) s->data.settings.spp = job->spp;
}

/* ---- categories ------------------------------------------------------------------------------ */

bool kiln__job_object_matches(const char *name, const char *key) {
  size_t n = strlen(key);
  return strncmp(name, key, n) == 0 && (name[n] == '\0' || name[n] == '.');
}

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  return d ? memcpy(d, s, n) : NULL;
}

/* The table in force: a copy of the job's declaration, else of the scene's categories. */
static int table_copy(const kiln_job *job, const kiln__scene *s, kiln__category **t, size_t *n,
                      size_t extra) {
  size_t m = job->ncats ? job->ncats : s->ncategories;
  *n = 0;
  if (!(*t = calloc(m + extra + 1, sizeof **t))) return KILN_ENOMEM;
  for (size_t i = 0; i < m; i++, (*n)++) {
    const char *name = job->ncats ? job->cats[i].name : s->category_names[i];
    if (!((*t)[i].name = dup_str(name))) return KILN_ENOMEM;
    (*t)[i].id = job->ncats ? job->cats[i].id : s->category_ids[i];
  }
  return 0;
}

static uint32_t free_id(const kiln__category *t, size_t n) {
  uint32_t id = 1;
  for (bool taken = true; taken; id += taken) {
    taken = false;
    for (size_t i = 0; i < n && !taken; i++) taken = t[i].id == id;
  }
  return id;
}

/* The category of object i becomes t[k]. */
static int set_object(kiln__scene *s, size_t i, const kiln__category *c) {
  char *d = dup_str(c->name);
  if (!d) return KILN_ENOMEM;
  free(s->object_category[i]);
  s->object_category[i] = d, s->object_category_id[i] = c->id;
  return 0;
}

static int apply(const kiln_job *job, kiln__scene *s, kiln__category *t, size_t *n, char *msg,
                 size_t msgcap) {
  bool declared = job->ncats || cJSON_GetObjectItemCaseSensitive(job->scene_doc, "categories");
  for (size_t e = 0; e < job->nocat; e++) {
    int k = kiln__categories_find(t, *n, job->ocat_names[e]);
    if (k < 0 && declared) { /* checked at load: only a frame's own scene could get here */
      kiln__say(msg, msgcap, "unknown category '%s'", job->ocat_names[e]);
      return KILN_EPARSE;
    }
    if (k < 0) {
      if (!(t[*n].name = dup_str(job->ocat_names[e]))) return KILN_ENOMEM;
      t[*n].id = free_id(t, *n);
      k = (int)(*n)++;
    }
    for (size_t i = 0; i < s->nobjects; i++)
      if (kiln__job_object_matches(s->object_names[i], job->ocat_objects[e]) &&
          set_object(s, i, &t[k]))
        return KILN_ENOMEM;
  }
  /* the objects the map did not name keep the scene's category names, under the job's ids */
  for (size_t i = 0; job->ncats && i < s->nobjects; i++) {
    if (!s->object_category[i]) continue;
    int k = kiln__categories_find(t, *n, s->object_category[i]);
    if (k < 0) {
      kiln__say(msg, msgcap,
                "the scene's object '%s' has category '%s', which the job does not declare",
                s->object_names[i], s->object_category[i]);
      return KILN_EPARSE;
    }
    s->object_category_id[i] = t[k].id;
  }
  return 0;
}

int kiln__job_apply_categories(const kiln_job *job, kiln__scene *s, char *msg, size_t msgcap) {
  if (!job->ncats && !job->nocat) return 0;
  if (!s->object_category && s->nobjects &&
      (!(s->object_category = calloc(s->nobjects, sizeof *s->object_category)) ||
       !(s->object_category_id = calloc(s->nobjects, sizeof *s->object_category_id)))) {
    kiln__say(msg, msgcap, "out of memory");
    return KILN_ENOMEM;
  }
  kiln__category *t = NULL;
  size_t n = 0;
  int rc = table_copy(job, s, &t, &n, job->nocat);
  if (!rc) rc = apply(job, s, t, &n, msg, msgcap);
  char **names = rc ? NULL : calloc(n + 1, sizeof *names);
  uint32_t *ids = rc ? NULL : malloc((n + 1) * sizeof *ids);
  if (!rc && (!names || !ids)) rc = KILN_ENOMEM;
  if (rc) {
    if (rc == KILN_ENOMEM) kiln__say(msg, msgcap, "out of memory");
    free(names), free(ids);
    kiln__categories_free(t, n);
    return rc;
  }
  for (size_t i = 0; i < s->ncategories; i++) free(s->category_names[i]);
  free(s->category_names), free(s->category_ids);
  for (size_t i = 0; i < n; i++) names[i] = t[i].name, ids[i] = t[i].id;
  free(t);
  s->category_names = names, s->category_ids = ids, s->ncategories = n;
  return 0;
}
