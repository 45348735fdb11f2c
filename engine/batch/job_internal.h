/* jobfile.h (internal): what the files of the job loader (docs/JOBS.md, include/kiln/batch.h) share.
 *
 *   jobfile.c    loading a .json job or a .jsonl list, the job's scene and its names, kiln_job_next
 *   job_anim.c   animations: frame ranges, seeds, camera orbits and keyframes, object keyframes
 *   job_list.c   list images (a .jsonl line or an element of "images"): validation and overrides
 *   job_scene.c  kiln_job_frame_scene: a frame's scene patch applied to the scene document
 *
 * Errors go through a kiln__sj_ctx (scene_json.h) whose text is the job file, or the list line being
 * read, so every error is located the way the scene loader locates its own. Nothing prints. */
#ifndef KILN_ENGINE_JOBFILE_H
#define KILN_ENGINE_JOBFILE_H

#include <stdio.h>

#include "kiln/batch.h"
#include "scene_json.h"

/* A camera keyframe, every field resolved at load (defaults from the scene's camera). */
typedef struct kiln__cam_key {
  long frame;
  kiln_camera cam;
  bool focus_given; /* focus_distance was given (else: the distance to look_at, per frame) */
} kiln__cam_key;

/* An object keyframe: translate, rotation (unit quaternion w, x, y, z), scale. */
typedef struct kiln__obj_key {
  long frame;
  double t[3], q[4], s[3];
} kiln__obj_key;

typedef struct kiln__obj_track {
  const char *name; /* borrowed from the job's cJSON tree */
  kiln__obj_key *keys;
  size_t nkeys;
} kiln__obj_track;

typedef enum { KILN__SEED_SCENE, KILN__SEED_FIXED, KILN__SEED_FRAME } kiln__seed_mode;
typedef enum { KILN__CAMERA_SCENE, KILN__CAMERA_ORBIT, KILN__CAMERA_KEYS } kiln__camera_mode;

typedef struct kiln__anim {
  long start, end, step; /* frames start, start + step, ... <= end */
  kiln__seed_mode seed_mode;
  uint32_t seed;         /* KILN__SEED_FIXED */
  kiln__camera_mode cam_mode;
  /* orbit: position = center + radius (cos a e0 + sin a e1) + height axis, a in degrees */
  double center[3], axis[3], e0[3], e1[3], radius, height, start_deg, deg_per_frame;
  float vfov;
  kiln__cam_key *keys;   /* KILN__CAMERA_KEYS, frames strictly increasing */
  size_t nkeys;
  bool spherical;        /* keys: position around look_at by slerp */
  kiln__obj_track *tracks;
  size_t ntracks;
} kiln__anim;

typedef enum { KILN__JOB_ANIM, KILN__JOB_LIST_FILE, KILN__JOB_LIST_INLINE } kiln__job_kind;

/* A job. Everything is written by kiln_job_load and read-only afterwards, except the iteration
 * state (list, lineno, next_image, next), which only kiln_job_next and kiln_job_rewind touch (one
 * caller at a time). kiln_job_frame_scene reads the scene document and names only, so any number
 * of threads may call it while another iterates. */
struct kiln_job {
  char *path;            /* the job file as given */
  char *text;            /* its text (.json jobs), NULL for a bare list */
  cJSON *root;           /* its document (.json jobs) */
  char *scene_path, *scene_dir;
  char *scene_text;
  cJSON *scene_doc;      /* the scene document, read-only after load */
  kiln_scene *scene;
  kiln_camera camera;    /* the scene's camera */
  bool focus_given;      /* the scene's camera gives focus_distance */
  uint32_t seed;         /* the scene's seed */
  int32_t width, height, spp; /* job overrides of the scene's settings; 0: the scene's */
  char **objects;        /* names of the scene's objects[] entries ("name", else the default) */
  size_t nobjects;
  char **lights;         /* names of the scene's lights[] entries */
  size_t nlights;
  char *output;
  unsigned passes;
  kiln_format format;
  kiln__job_kind kind;
  kiln__anim anim;
  char *list_path;       /* KILN__JOB_LIST_FILE */
  FILE *list;
  long lineno;           /* lines of list read so far */
  const cJSON *images, *next_image; /* KILN__JOB_LIST_INLINE */
  uint64_t count, next;
};

/* Applies the job's width, height and spp to a scene it loaded (before anyone else sees it). */
void kiln__job_apply_settings(const kiln_job *job, kiln_scene *s);

/* A ctx that locates errors in text, reported as file (err is the caller's). */
void kiln__job_ctx(kiln__sj_ctx *c, const char *text, const char *file, kiln_scene_error *err);

/* The index of the scene's objects[] (lights[]) entry named name; -1 when none, -2 when several. */
int kiln__job_find(char *const *names, size_t n, const char *name);

/* An error "no object named 'x' in the scene (did you mean 'y'?)" at the current path. */
int kiln__job_no_such(kiln__sj_ctx *c, const char *what, const char *name, char *const *names, size_t n);

/* Checks the camera c0 (at the current path; key_at names the member to blame). */
int kiln__job_check_camera(kiln__sj_ctx *c, const kiln_camera *cam, const char *key_at);

/* ---- job_anim.c --------------------------------------------------------------------------- */

/* Parses "animation" (o, at the current path) into job->anim and counts the frames. */
int kiln__anim_parse(kiln_job *job, kiln__sj_ctx *c, const cJSON *o);
/* Frame index of the animation into *fr (index, frame, name, camera, seed, scene_patch). */
int kiln__anim_frame(const kiln_job *job, uint64_t index, kiln_job_frame *fr);
void kiln__anim_free(kiln__anim *a);

/* A unit quaternion from Euler degrees (R = Rz Ry Rx) or an axis and angle; its rotation matrix. */
void kiln__quat_euler(const double deg[3], double q[4]);
void kiln__quat_axis(const double axis[3], double deg, double q[4]);
void kiln__quat_slerp(const double a[4], const double b[4], double t, double out[4]);
void kiln__quat_matrix(const double q[4], double m[3][3]);

/* ---- job_list.c --------------------------------------------------------------------------- */

/* Validates the list image o (at the current path of c) and expands it into fr (frame, name,
 * camera, seed, scene_patch; index and where are the caller's). fr->frame defaults to index. */
int kiln__list_image(const kiln_job *job, kiln__sj_ctx *c, const cJSON *o, uint64_t index,
                     kiln_job_frame *fr);

/* Reads one JSON object from line text (line number lineno of job->list_path) into fr. */
int kiln__list_line(const kiln_job *job, const char *text, long lineno, uint64_t index,
                    kiln_scene_error *err, kiln_job_frame *fr);

#endif
