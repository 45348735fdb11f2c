/* job_common.c: what the job reader's files share (batch_internal.h): a walk context over a job
 * file or list line, looking up the scene's objects and lights by name, checking a camera, and the
 * job's size overrides. job_file.c, job_anim.c, job_list.c and job_scene.c call these; these call
 * none of them, so the job files depend on this one and not on each other in a circle. */
#include <stdio.h>
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
