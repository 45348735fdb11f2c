/* job_common.h: what fuzz_job.c and fuzz_joblist.c do with a job once it loaded: expand its
 * frames (at most FZ_MAX_FRAMES, so that a job of a billion frames costs no more than one of
 * 32), its output template for each frame and pass, and the scene of the first few frames that
 * override it. Include in one file per target. */
#ifndef KILN_TESTS_FUZZ_JOB_COMMON_H
#define KILN_TESTS_FUZZ_JOB_COMMON_H

#include <stdio.h>

#include "batch_internal.h"
#include "fuzz.h"
#include "kiln/batch.h"

enum { FZ_MAX_FRAMES = 32, FZ_MAX_FRAME_SCENES = 4 };

static void fz_expand_names(const char *tmpl, const kiln_job_frame *fr) {
  static const char *const passes[] = {"color", "depth", "id"};
  static const char *const exts[] = {"png", "exr", "npy"};
  char name[1024], msg[512];
  for (int i = 0; i < 3; i++) {
    kiln__outname_vars v = {fr->frame, fr->name, passes[i], exts[i], fr->index};
    int rc = kiln__outname_expand(tmpl, &v, name, sizeof name, msg, sizeof msg);
    if (i == 0) fz_report(rc ? "output name" : name, rc, msg);
  }
}

static void fz_run_job(const char *path, const kiln_job_options *opt) {
  kiln_error_detail err;
  kiln_job *job = NULL;
  char msg[2048];
  int rc = kiln_job_load(path, opt, &err, &job);
  if (rc != 0) {
    (void)kiln_error_detail_format(&err, msg, sizeof msg);
    fz_report("job", rc, msg);
    return;
  }
  kiln_job_info info;
  kiln_job_get_info(job, &info);
  kiln_job_frame fr;
  int scenes = 0, frames = 0;
  for (; frames < FZ_MAX_FRAMES && (rc = kiln_job_next(job, &fr, &err)) == 0; frames++) {
    fz_expand_names(info.output, &fr);
    if (fr.scene_patch && scenes < FZ_MAX_FRAME_SCENES) {
      kiln_scene *s = NULL;
      scenes++;
      int src = kiln_job_frame_scene(job, &fr, &err, &s);
      if (src == 0) kiln_scene_destroy(s);
      else (void)kiln_error_detail_format(&err, msg, sizeof msg);
      fz_report("frame scene", src, msg);
    }
    kiln_job_frame_clear(&fr);
  }
  if (rc != 0 && rc != KILN_EEOF) {
    (void)kiln_error_detail_format(&err, msg, sizeof msg);
    fz_report("next frame", rc, msg);
  }
  snprintf(msg, sizeof msg, "%d frames, %d frame scenes", frames, scenes);
  fz_report("job", 0, msg);
  kiln_job_destroy(job);
}

#endif
