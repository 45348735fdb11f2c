/* batch_internal.h (internal): what the files of engine/batch share.
 *
 *   job_file.c    the entry point of jobs: loading a .json job or a .jsonl list, the job's scene
 *                 and its names, kiln_job_next, the job's frame numbers
 *   job_common.c  what the job files below share: error contexts, name lookup, camera checks
 *   job_anim.c    animations: frame ranges, seeds, camera orbits and keyframes, object keyframes
 *   job_list.c    list images (a .jsonl line or an element of "images"): validation and overrides
 *   job_scene.c   kiln_job_frame_scene: a frame's scene patch applied to the scene document
 *   batch.c       the batch driver: issue, collect, finish; the writer and prepare tasks
 *   names.c       output file names from templates, contact sheets
 *   output.c      pass and format names, the encoding of every pass in every format
 *   derive.c      the passes computed on the CPU from the renderer's planes (position, objcoord,
 *                 nocs, category, the flows)
 *   select.c      which frames a run takes: --frames, then a shard of the positions
 *   claim.c       claim files in a shared folder: claim, heartbeat, take over, done markers
 *   chunks.c      a claiming run's chunks: what to do with each frame, waiting for the others
 *   manifest.c    the run's manifest, a JSON line per frame written
 *   annotate.c    a frame's ground truth: visible and unoccluded pixels and boxes, projections
 *   records.c     annotations as JSON: a manifest line's fields, ids.json
 *   dataset.c     the dataset writers' entry points, and what they share: the spool of
 *                 per-frame records sorted at commit, files renamed into place, JSON numbers
 *   coco.c        the COCO writer: images and compressed-RLE annotations, coco[_K].json
 *   bop.c         the BOP writer: a BOP scene (scene_camera/gt/gt_info, depth, masks, rgb)
 *   tar.c         WebDataset-style tar shards: members appended as frames finish, each tar renamed
 *                 into place when its last frame is settled; reading a tar's index back (verify)
 *   lock.c        the output folder's lock
 *   verify.c      kiln_batch_verify: every selected frame's files present and decodable
 *   decode_check.c  the per-format checks verify.c makes
 *
 * Calls go one way: job_file.c -> job_anim.c, job_list.c -> job_common.c; batch.c -> the job's
 * public calls, names.c, output.c, select.c, chunks.c -> claim.c, manifest.c, lock.c, tar.c; verify.c -> batch.c's
 * read-only calls, select.c, decode_check.c, tar.c. Errors of the job reader go through a kiln__sj_ctx
 * (scene_data.h) whose text is the job file, or the list line being read, so every error is
 * located the way the scene loader locates its own. Nothing here prints. */
#ifndef KILN_ENGINE_BATCH_INTERNAL_H
#define KILN_ENGINE_BATCH_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "base.h"
#include "kiln/batch.h"
#include "scene_data.h"

/* ---- jobs (job_*.c) ------------------------------------------------------------------------- */


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
  uint32_t seed; /* KILN__SEED_FIXED */
  kiln__camera_mode cam_mode;
  /* orbit: position = center + radius (cos a e0 + sin a e1) + height axis, a in degrees */
  double center[3], axis[3], e0[3], e1[3], radius, height, start_deg, deg_per_frame;
  float vfov;          /* orbit: 0 keeps the scene camera's (and its intrinsics) */
  kiln__cam_key *keys; /* KILN__CAMERA_KEYS, frames strictly increasing */
  size_t nkeys;
  bool spherical; /* keys: position around look_at by slerp */
  kiln__obj_track *tracks;
  size_t ntracks;
} kiln__anim;

typedef enum { KILN__JOB_ANIM, KILN__JOB_LIST_FILE, KILN__JOB_LIST_INLINE } kiln__job_kind;

/* Frames first, first + step, ... (n of them): the frame numbers of a list, noted at load in
 * runs, so that a list numbered in order takes one run, not one entry a line. */
typedef struct kiln__frame_run {
  long first, step;
  uint64_t n;
} kiln__frame_run;

/* A job. Everything is written by kiln_job_load and read-only afterwards, except the iteration
 * state (list, lineno, next_image, next), which only kiln_job_next and kiln_job_rewind touch (one
 * caller at a time). kiln_job_frame_scene reads the scene document and names only, so any number
 * of threads may call it while another iterates. */
struct kiln_job {
  char *path;  /* the job file as given */
  char *text;  /* its text (.json jobs), NULL for a bare list */
  cJSON *root; /* its document (.json jobs) */
  char *scene_path, *scene_dir;
  char *scene_text;
  cJSON *scene_doc; /* the scene document, read-only after load */
  kiln_scene *scene;
  kiln__asset_cache *assets; /* the scene's mesh and image files, decoded once for its frames */
  kiln_camera camera;         /* the scene's camera */
  bool focus_given;           /* the scene's camera gives focus_distance */
  uint32_t seed;              /* the scene's seed */
  int32_t width, height, spp; /* job overrides of the scene's settings; 0: the scene's */
  char **objects; /* names of the scene's objects[] entries ("name", else the default) */
  size_t nobjects;
  char **lights; /* names of the scene's lights[] entries */
  size_t nlights;
  kiln__name_ref *object_index, *light_index; /* objects and lights, sorted (kiln__job_find) */
  const cJSON **materials;        /* the members of the scene document's "materials", in order */
  kiln__name_ref *material_index; /* their names, sorted (kiln__job_material) */
  size_t nmaterials;
  char *output;
  unsigned passes;
  kiln_format format;
  bool exr_half;                        /* "exr": {"half"} */
  kiln_exr_compression exr_compression; /* "exr": {"compression"} */
  uint32_t tar_frames;                  /* "tar" */
  kiln__job_kind kind;
  kiln__anim anim;
  char *list_path; /* KILN__JOB_LIST_FILE */
  FILE *list;
  long lineno;                      /* lines of list read so far */
  const cJSON *images, *next_image; /* KILN__JOB_LIST_INLINE */
  uint64_t count, next;
  kiln__frame_run *runs; /* lists: every frame's number, noted at load */
  size_t nruns, runs_cap;
  /* categories (docs/JOBS.md, "Categories"): the job's own declaration (replacing the scene's;
   * ncats 0: none), and object name -> category name (each pair owned), applied to the job's
   * scene and to every frame's scene by kiln__job_apply_categories */
  kiln__category *cats;
  size_t ncats;
  char **ocat_objects, **ocat_names;
  size_t nocat;
};

/* ---- job_common.c --------------------------------------------------------------------------- */

/* Applies the job's width, height and spp to a scene it loaded (before anyone else sees it). */
void kiln__job_apply_settings(const kiln_job *job, kiln_scene *s);

/* Applies the job's categories to a scene it loaded (before anyone else sees it): its declaration
 * replaces the scene's; object_categories names objects' categories (an object matches a name
 * that is its own, or that its name starts with followed by '.': the groups of a mesh object; a
 * category the declaration in force lacks, when there is none, gets the smallest free id); the
 * other objects keep their category names, which the job's declaration must have. 0,
 * KILN_ENOMEM, or KILN_EPARSE with msg (a scene object's category the job's declaration lacks). */
int kiln__job_apply_categories(const kiln_job *job, kiln__scene *s, char *msg, size_t msgcap);
/* Whether object name is matched by the job's object_categories name key (as above). */
bool kiln__job_object_matches(const char *name, const char *key);

/* A ctx that locates errors in text, reported as file (err is the caller's). */
void kiln__job_ctx(kiln__sj_ctx *c, const char *text, const char *file, kiln_error_detail *err);

/* The index of the scene's objects[] (lights[]) entry named name, looked up in the job's
 * object_index (light_index) of n names; -1 when none, -2 when several. O(log n). */
int kiln__job_find(const kiln__name_ref *index, size_t n, const char *name);

/* The scene document's material named name (borrowed from job->scene_doc), or NULL. O(log n). */
const cJSON *kiln__job_material(const kiln_job *job, const char *name);

/* An error "no object named 'x' in the scene (did you mean 'y'?)" at the current path. */
int kiln__job_no_such(kiln__sj_ctx *c, const char *what, const char *name, char *const *names,
                      size_t n);

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
                    kiln_error_detail *err, kiln_job_frame *fr);

/* ---- job_file.c: the job's frame numbers ----------------------------------------------------- */

/* Where the job's own "output" template is (err: file, line, column, path "output"), for an error
 * in it found after loading (by kiln_batch_create); nothing when the job gives none. */
void kiln__job_locate_output(const kiln_job *job, kiln_error_detail *err);

/* Frame index of the job into *fr (cleared first; kiln_job_frame_clear releases it), without
 * touching the iteration state: what the flow passes read of the neighbouring frames. 0,
 * KILN_EEOF past the last frame, KILN_EUNSUPPORTED for a .jsonl list (read one line after the
 * other, never by index), KILN_ENOMEM. Thread-safe (reads the job only). */
int kiln__job_frame_at(const kiln_job *job, uint64_t index, kiln_job_frame *fr);

/* Calls fn(arg, frame) for the frame number of every frame of the job, in job order, from what
 * kiln_job_load noted (the job is not read again), and returns how many calls returned true. */
uint64_t kiln__job_count_frames(const kiln_job *job, bool (*fn)(void *arg, long frame), void *arg);

/* ---- select.c: which frames a run takes --------------------------------------------------------- */

/* The selection of a run: --frames by frame number, then a shard of the positions. The iteration
 * state (base, pos) belongs to the one thread that walks the job. */
typedef struct kiln__selection {
  long first, last, step; /* by frame number (kiln_batch_config's) */
  long base;              /* the frame the step counts from */
  bool base_set;
  uint32_t shard, shards; /* shards >= 1 */
  kiln_shard_mode mode;
  uint64_t total;  /* frames that pass --frames (kiln__selection_count) */
  uint64_t lo, hi; /* contiguous: this shard's positions [lo, hi) */
  uint64_t pos;    /* the position the next selected frame gets */
} kiln__selection;

void kiln__selection_init(kiln__selection *s, const kiln_batch_config *cfg);
/* Counts the frames that pass --frames (from the frame numbers the job noted at load: the job is
 * not read) into s->total, and returns it; rewinds s. */
uint64_t kiln__selection_count(kiln__selection *s, const kiln_job *job);
/* The frames of s's shard (after kiln__selection_count). */
uint64_t kiln__selection_shard_total(const kiln__selection *s);
/* The place of position pos (in s's shard) among the positions of the shard: 0, 1, ... */
uint64_t kiln__selection_rank(const kiln__selection *s, uint64_t pos);
/* Whether --frames narrows anything. */
bool kiln__selection_by_number(const kiln__selection *s);
/* Starts the walk again (with the job's kiln_job_rewind). */
void kiln__selection_rewind(kiln__selection *s);
/* The next frame of the job, in job order: whether it is in s's shard. When it passes --frames,
 * *pos (may be NULL) is its position in the selection, whatever the shard. */
bool kiln__selection_next(kiln__selection *s, long frame, uint64_t *pos);
/* Shard `shard` of `shards` cut contiguously: positions [*lo, *hi) of total. */
void kiln__shard_range(uint64_t total, uint32_t shard, uint32_t shards, uint64_t *lo,
                       uint64_t *hi);

/* ---- claim.c: chunks of frames claimed through files in a shared folder ------------------------ */

typedef struct kiln__claims kiln__claims;

typedef enum kiln__claim_result {
  KILN__CLAIM_MINE,      /* claimed: render it */
  KILN__CLAIM_TAKEN,     /* claimed from an expired claim (its holder died or stalled) */
  KILN__CLAIM_DONE,      /* another process (or an earlier run) finished it */
  KILN__CLAIM_BUSY       /* a live claim of another process holds it */
} kiln__claim_result;

/* Opens the claim folder dir (made if missing) for a run whose claims expire after timeout_s
 * without a heartbeat, and starts the heartbeat thread. 0, or KILN_EIO /
 * KILN_ENOMEM with msg. */
int kiln__claims_open(const char *dir, double timeout_s, kiln__claims **out, char *msg,
                      size_t msgcap);
/* Tries to claim chunk: *res says what happened. 0, or KILN_EIO with msg (the folder failed). */
int kiln__claims_try(kiln__claims *c, uint64_t chunk, kiln__claim_result *res, char *msg,
                     size_t msgcap);
/* Whether chunk (claimed by this process) was taken over by another process since: its frames
 * not yet issued should be left to the new holder. */
bool kiln__claims_lost(kiln__claims *c, uint64_t chunk);
/* Whether chunk is finished (its done marker exists); stale: its claim has expired (the caller
 * may try it again). For chunks this process does not hold. */
bool kiln__claims_poll(kiln__claims *c, uint64_t chunk, bool *stale);
/* Chunk (held) is finished: writes its done marker (written and failed frames in it) and stops
 * its heartbeat. */
int kiln__claims_finish(kiln__claims *c, uint64_t chunk, uint64_t written, uint64_t failed,
                        char *msg, size_t msgcap);
/* Gives chunk (held, unfinished) back: its claim expires at once, for another process to take. */
void kiln__claims_release(kiln__claims *c, uint64_t chunk);
/* Gives back every chunk still held, stops the heartbeat thread, frees c (NULL: nothing). */
void kiln__claims_close(kiln__claims *c);
/* How often a run waiting for other processes' chunks looks again, in seconds. */
double kiln__claims_poll_interval(const kiln__claims *c);

/* ---- chunks.c: a claiming run's chunks --------------------------------------------------------- */

typedef struct kiln__chunks kiln__chunks;

typedef enum kiln__take {
  KILN__TAKE_ISSUE,    /* a chunk this process holds: issue the frame */
  KILN__TAKE_SKIP,     /* another process holds it (or took it over): leave the frame */
  KILN__TAKE_ELSEWHERE /* another process finished it: report the frame as rendered elsewhere */
} kiln__take;

/* Cuts total selected frames into chunks of size, claimed in the folder dir. */
int kiln__chunks_open(const char *dir, uint64_t total, uint64_t size, double timeout_s,
                      kiln__chunks **out, char *msg, size_t msgcap);
/* Gives back the chunks still held and frees k (NULL: nothing). */
void kiln__chunks_close(kiln__chunks *k);
/* What to do with the selected frame at position pos (tries its chunk when untried). 0, or the
 * claim folder's error. */
int kiln__chunks_take(kiln__chunks *k, uint64_t pos, kiln__take *what, char *msg, size_t msgcap);
/* The frame at pos (taken: ISSUE) is in flight. */
void kiln__chunks_issued(kiln__chunks *k, uint64_t pos);
/* The frame at pos (taken: ISSUE) finished: written or skipped (ok), or failed; in_flight when
 * kiln__chunks_issued was called for it. Writes its chunk's done marker when it was the last. */
int kiln__chunks_finished(kiln__chunks *k, uint64_t pos, bool in_flight, bool ok, char *msg,
                          size_t msgcap);
/* The walk is past the frame at pos (whatever was done with it). */
int kiln__chunks_passed(kiln__chunks *k, uint64_t pos, char *msg, size_t msgcap);
/* After a walk, nothing in flight: waits while other processes hold chunks. True when another
 * walk is needed (a claim expired, or finished chunks have frames to report); false when every
 * chunk is finished and reported, or *stop was set. */
bool kiln__chunks_wait(kiln__chunks *k, const atomic_int *stop);
void kiln__chunks_counts(const kiln__chunks *k, uint64_t *claimed, uint64_t *taken);

/* ---- lock.c: the output folder's lock ---------------------------------------------------------- */

/* Locks <out_dir>/.kiln.lock for a run (shared: by the processes of one sharded or claiming job,
 * which together exclude a plain run). 0 with *fd the lock (-1 where the file system has no
 * locks), KILN_EBUSY naming the holder, KILN_EIO, KILN_EINVAL; msg says why. */
int kiln__lock_out_dir(const char *out_dir, bool shared, int *fd, char *msg, size_t msgcap);
/* Lets the lock go (the file removed by its last holder); *fd becomes -1. */
void kiln__unlock_out_dir(const char *out_dir, bool shared, int *fd);

/* ---- manifest.c: one JSON line per frame written -------------------------------------------------- */

typedef struct kiln__manifest kiln__manifest;
struct kiln__frame_gt; /* annotate.c, below */

enum { KILN__PATH_CAP = 4096 }; /* PATH_MAX, which not every file of the folder sees */

/* Starts the manifest at path (its temporary, beside it). 0, KILN_EIO, KILN_EINVAL, KILN_ENOMEM. */
int kiln__manifest_open(const char *path, kiln__manifest **out, char *msg, size_t msgcap);
/* Adds frame fr (position pos in the selection) and its nfiles files (relative to the output
 * folder). A failure is kept for kiln__manifest_commit to report. */
int kiln__manifest_add(kiln__manifest *m, const kiln_job_frame *fr, uint64_t pos,
                       char files[][KILN__PATH_CAP], size_t nfiles);
/* The same, with the frame's ground truth (kiln__gt_json's fields) when gt is not NULL. */
int kiln__manifest_add_record(kiln__manifest *m, const kiln_job_frame *fr, uint64_t pos,
                              char files[][KILN__PATH_CAP], size_t nfiles,
                              const struct kiln__frame_gt *gt);
/* Renames the manifest into place (keep), or removes its temporary (!keep, or after a failure),
 * and frees m (NULL: nothing). 0, or the first failure with msg. */
int kiln__manifest_commit(kiln__manifest *m, bool durable, bool keep, char *msg, size_t msgcap);

/* ---- annotate.c: a frame's ground truth (docs/DATASETS.md) ------------------------------------ */

struct kiln__scene;

/* One instance of the frame's scene, seen or not. Pixel coordinates follow OpenCV (x right, y down,
 * pixel (i, j) covers [i, i + 1) x [j, j + 1) and its centre is at i + 0.5 in this continuous
 * frame; the JSON record states the convention it writes). */
typedef struct kiln__gt_instance {
  uint32_t object_id, instance_id;
  uint32_t category_id;           /* 0: none */
  const char *name, *category;    /* borrowed from the frame's scene; category NULL: none */
  double xform[16];               /* object to world, row-major */
  float bbox_min[3], bbox_max[3]; /* object-space box */
  double corners[8][3];           /* the box's corners projected: x, y (pixels), depth along the
                                     view axis (negative: behind the camera) */
  double center[3];               /* the object-space origin projected, as corners */
  int32_t box_visib[4];           /* tight box of the visible pixels: x0, y0, x1, y1 exclusive;
                                     all 0 when px_visib is 0 */
  int32_t box_all[4];             /* the same for the unoccluded silhouette */
  uint64_t px_visib;              /* pixels of the instance pass holding this instance */
  uint64_t px_all;                /* pixels it covers with every other instance removed */
  double visib_fract;             /* px_visib / px_all clamped to 1; when px_all is 0: 1 if
                                     px_visib is not 0, else 0 */
  uint8_t *mask_all;              /* when asked for: the unoccluded silhouette over box_all,
                                     row-major, 1 byte a pixel (0 or 1); NULL otherwise */
} kiln__gt_instance;

typedef struct kiln__frame_gt {
  int32_t width, height;
  double K[9];           /* intrinsics, row-major (OpenCV) */
  double c2w_gl[16];     /* camera to world, kiln's / OpenGL's axes */
  double c2w_cv[16];     /* camera to world, OpenCV's axes */
  size_t n;              /* every instance of the scene, by instance id */
  kiln__gt_instance *inst;
} kiln__frame_gt;

void kiln__frame_gt_free(kiln__frame_gt *g);

/* The ground truth of one frame rendered with camera cam at width x height from scene s, whose
 * instance pass is instance_pass (width * height ids, row 0 at the top): every instance of s,
 * with its unoccluded silhouette found by projecting its geometry through the camera's pinhole
 * (the instance pass's own ray through each pixel centre); masks: keep each silhouette in
 * mask_all. 0 with *out filled (free it with kiln__frame_gt_free), KILN_ENOMEM, KILN_EINVAL. */
int kiln__annotate(const struct kiln__scene *s, const kiln_camera *cam, int32_t width,
                   int32_t height, const uint32_t *instance_pass, bool masks, kiln__frame_gt *out,
                   char *msg, size_t msgcap);

/* ---- records.c: annotations as JSON ----------------------------------------------------------- */

/* Adds gt's fields to a frame's manifest object o: width, height, camera {K, cam2world_opengl,
 * cam2world_opencv}, instances [...] (docs/DATASETS.md). false on ENOMEM (o keeps what was
 * added). */
bool kiln__gt_json(cJSON *o, const kiln__frame_gt *gt);
/* Writes ids.json (the job's camera model cam at width x height, every object and instance id of
 * scene s with its name and category, the categories, the conventions) to path, atomically. 0,
 * KILN_EIO, KILN_ENOMEM with msg. */
int kiln__ids_write(const struct kiln__scene *s, const kiln_camera *cam, int32_t width,
                    int32_t height, const char *path, bool durable, char *msg, size_t msgcap);

/* ---- coco.c, bop.c: dataset writers (docs/DATASETS.md) ---------------------------------------- */

typedef struct kiln__dataset kiln__dataset;

/* Starts the writer of kind for one run (one shard: shard_tag names its files, "" when the run is
 * not sharded) into out_dir, for a job whose scene is s (its categories and objects). Files are
 * built under temporary names and renamed by kiln__dataset_commit. 0, KILN_EIO, KILN_ENOMEM,
 * KILN_EINVAL; msg says why. */
int kiln__dataset_open(kiln_writer kind, const char *out_dir, const char *shard_tag,
                       const struct kiln__scene *s, bool durable, kiln__dataset **out, char *msg,
                       size_t msgcap);
/* Adds frame fr (its ground truth gt and its rendered image img: depth and instance passes),
 * whose colour file, written already, is color_file (relative to out_dir, as the manifest lists
 * it; absolute with allow_outside_out_dir). Thread-safe: writer tasks call it from any thread.
 * A failure is kept for commit too. */
int kiln__dataset_frame(kiln__dataset *d, const kiln_job_frame *fr, const char *color_file,
                        const kiln__frame_gt *gt, const kiln_image *img, char *msg,
                        size_t msgcap);
/* Finishes the files and renames them into place (keep), or removes them (!keep), and frees d
 * (NULL: nothing). 0, or the first failure with msg. */
int kiln__dataset_commit(kiln__dataset *d, bool keep, char *msg, size_t msgcap);
/* Whether the writer of kind needs kiln__annotate's unoccluded masks (mask_all). */
bool kiln__dataset_masks(kiln_writer kind);

/* The writers behind kiln__dataset_*, one pair of files each (coco.c, bop.c): the same contracts. */
typedef struct kiln__coco kiln__coco;
int kiln__coco_open(const char *out_dir, const char *shard_tag, const struct kiln__scene *s,
                    bool durable, kiln__coco **out, char *msg, size_t msgcap);
int kiln__coco_frame(kiln__coco *c, const kiln_job_frame *fr, const char *color_file,
                     const kiln__frame_gt *gt, const kiln_image *img, char *msg, size_t msgcap);
int kiln__coco_commit(kiln__coco *c, bool keep, char *msg, size_t msgcap);
/* The COCO compressed RLE string (pycocotools' rleToString) of counts[0..n): malloc'd, NULL when
 * out of memory. */
char *kiln__coco_rle_string(const uint32_t *counts, size_t n);

typedef struct kiln__bop kiln__bop;
int kiln__bop_open(const char *out_dir, const char *shard_tag, const struct kiln__scene *s,
                   bool durable, kiln__bop **out, char *msg, size_t msgcap);
int kiln__bop_frame(kiln__bop *b, const kiln_job_frame *fr, const char *color_file,
                    const kiln__frame_gt *gt, const kiln_image *img, char *msg, size_t msgcap);
int kiln__bop_commit(kiln__bop *b, bool keep, char *msg, size_t msgcap);

/* dataset.c: what the writers share. A spool keeps one record a frame (up to KILN__SPOOL_PARTS
 * texts) in a temporary file that is unlinked as soon as it is open (a killed run leaves
 * nothing), and an index of 40 bytes a record in memory, so that the files are assembled in key
 * order at commit whatever order frames finished in. */
enum { KILN__SPOOL_PARTS = 3 };
typedef struct kiln__spool kiln__spool;
/* A spool in folder dir. 0, KILN_EIO, KILN_ENOMEM with msg. */
int kiln__spool_open(const char *dir, kiln__spool **out, char *msg, size_t msgcap);
/* Adds the record of key (parts[i] of len[i] bytes each, nparts <= KILN__SPOOL_PARTS). A later
 * record of the same key replaces an earlier one. Thread-safe. 0, KILN_EIO, KILN_ENOMEM (kept:
 * kiln__spool_each returns it too). */
int kiln__spool_add(kiln__spool *sp, uint64_t key, const char *const *parts, const size_t *len,
                    size_t nparts);
/* Calls fn(arg, key, text, len) with part `part` of every record in increasing key order (text
 * is NUL-terminated and valid for the call); stops at fn's first non-zero return and returns it.
 * One thread, once no kiln__spool_add runs. KILN_EIO, KILN_ENOMEM for the spool's own failures. */
int kiln__spool_each(kiln__spool *sp, size_t part,
                     int (*fn)(void *arg, uint64_t key, const char *text, size_t len), void *arg);
void kiln__spool_free(kiln__spool *sp);

/* A file written whole through stdio under a temporary name beside path
 * (".NAME.tmp-HOST-PID-0", which --resume sweeps) and renamed into place by commit. */
typedef struct kiln__outfile {
  FILE *f;
  char path[KILN__PATH_CAP], tmp[KILN__PATH_CAP + 64];
} kiln__outfile;
int kiln__outfile_open(kiln__outfile *o, const char *path, char *msg, size_t msgcap);
/* Flushes (durable: fsyncs) and renames o into place (keep and no write failed), else removes the
 * temporary. 0, or KILN_EIO with msg. */
int kiln__outfile_commit(kiln__outfile *o, bool durable, bool keep, char *msg, size_t msgcap);
/* A double as JSON: the first of %.15g, %.16g, %.17g that reads back to v; null for NaN and
 * infinities. */
void kiln__json_number(char *buf, size_t cap, double v);

/* ---- batch.c: seams for tests ------------------------------------------------------------------ */

/* What the driver allocates with (frame contexts, the set of output names and its copies of the
 * names; calloc's contract), hashes output names with, and takes the next finished frame with:
 * calloc, FNV-1a and kiln_completion_next unless a test replaces them after kiln_batch_create (to
 * make them fail, or collide). */
typedef struct kiln__batch_hooks {
  void *(*alloc)(size_t n, size_t size);
  uint64_t (*name_hash)(const char *name);
  int (*completion_next)(kiln_completion *c, kiln_future **f);
} kiln__batch_hooks;

void kiln__batch_set_hooks(kiln_batch *b, const kiln__batch_hooks *h);
/* For benchmarks: the frames of b without scene overrides render with the null kernel
 * (kiln__renderer_create_null: the path tracer is not compiled), so that a run measures the CPU
 * side of frames alone. Before kiln_batch_run. */
void kiln__batch_null_kernel(kiln_batch *b);

/* ---- batch.c: what other files of the folder read of a batch ----------------------------------- */

/* kiln_batch_create, or (to_render false) a batch that is only looked at, never run, for which
 * cfg's pool and devices are not needed (kiln verify). */
int kiln__batch_open(kiln_job *job, const kiln_batch_config *cfg, bool to_render,
                     kiln_batch **out, kiln_error_detail *err);
/* Frames a tar (kiln_batch_config's, else the job's "tar"): 0 when b writes loose files. */
uint32_t kiln__batch_tar_frames(const kiln_batch *b);
/* The passes, format, output folder and template the batch writes with (borrowed from b). */
void kiln__batch_outputs(const kiln_batch *b, unsigned *passes, kiln_format *format,
                         const char **out_dir, const char **tmpl);
/* The name of pass pi of frame fr (the expanded template, relative to out_dir unless the caller
 * allowed otherwise) into rel. 0, or an error with msg. */
int kiln__batch_pass_name(const kiln_batch *b, const kiln_job_frame *fr, int pi, char *rel,
                          size_t cap, char *msg, size_t msgcap);
/* The path of pass pi of frame fr (out_dir joined with kiln__batch_pass_name) into out. 0, or an
 * error with msg. */
int kiln__batch_pass_path(const kiln_batch *b, const kiln_job_frame *fr, int pi, char *out,
                          size_t cap, char *msg, size_t msgcap);
/* The batch's selection (--frames and shard), for a walk over its job. */
kiln__selection *kiln__batch_selection(kiln_batch *b);
kiln_job *kiln__batch_job(kiln_batch *b);

/* ---- names.c: output file names from templates, and contact sheets --------------------------- */


/* Templates (docs/JOBS.md): `{frame}`, `{frame:05d}` (printf-style width with zero padding; any
 * width 1..12), `{index}` (the frame's 0-based position in the job), either divided into buckets
 * (`{frame//1000}`, `{index//100:03d}`: floor division by 1 .. KILN__BUCKET_MAX, so that a million
 * frames land in a thousand folders), `{name}` (the frame's output name), `{pass}` (color, depth,
 * normal, albedo, id, instance, or "layers" for a multilayer EXR), `{ext}`; `{{` and `}}` are
 * literal braces. Anything else in braces is an error, so a typo cannot silently write every frame
 * to the same file. */
#define KILN__BUCKET_MAX 1000000000000000LL
typedef struct kiln__outname_vars {
  long frame;
  const char *name; /* NULL: "{name}" expands to the frame number, zero-padded to 5 digits */
  const char *pass;
  const char *ext;
  uint64_t index; /* {index} */
} kiln__outname_vars;

/* Checks a template without expanding it. 0, or KILN_EPARSE with msg giving the reason first, then
 * the column ("unknown field {frme} (fields: ...), at column 5 of template \"out/{frme}.png\"";
 * a long template is quoted around the column only). */
int kiln__outname_check(const char *tmpl, char *msg, size_t msgcap);

/* Expands tmpl into out[0..cap). 0, KILN_EPARSE (bad template, msg says why), or KILN_EINVAL when
 * the result does not fit. */
int kiln__outname_expand(const char *tmpl, const kiln__outname_vars *v, char *out, size_t cap,
                         char *msg, size_t msgcap);

/* Whether the relative path rel stays inside the folder it is relative to: not empty, not
 * absolute, and no ".." component (symbolic links inside the folder are the folder owner's). */
bool kiln__path_inside(const char *rel);

/* Checks that tmpl (valid for kiln__outname_check) names files inside the output folder whatever
 * is substituted into it: 0, or KILN_EPARSE with msg saying why (an absolute path, a ".."
 * component). */
int kiln__outname_confined(const char *tmpl, char *msg, size_t msgcap);

/* A contact sheet: n images (8-bit RGB, packed, w x h each) scaled down by an integer box filter
 * to fit cells of at most thumb x thumb pixels, laid out `columns` per row (0: about square) on
 * a dark grey background with a 2-pixel gap. Allocates *out (3 bytes per pixel) and sets its
 * size. 0, KILN_EINVAL, KILN_ENOMEM. */
int kiln__contact_sheet(const uint8_t *const *images, size_t n, int w, int h, int thumb,
                        int columns, uint8_t **out, int *out_w, int *out_h);

/* Box-filters an 8-bit RGB image (packed, w x h) by an integer factor f >= 1 into out, which holds
 * max(w / f, 1) x max(h / f, 1) pixels (edge cells average the pixels they have). */
void kiln__box_downscale(const uint8_t *rgb, int w, int h, int f, uint8_t *out);

/* ---- output.c: what the batch writes ---------------------------------------------------------- */


/* Passes 0 .. KILN__NPLANE - 1 are the renderer's planes (kiln_image), the rest are derived on
 * the CPU from them (derive.c). */
enum { KILN__NPASS = 15, KILN__NPLANE = 7 };
/* The indices of the passes after the first six (pass i is bit 1 << i). */
enum {
  KILN__PI_UV = 6,
  KILN__PI_POSITION,
  KILN__PI_OBJCOORD,
  KILN__PI_NOCS,
  KILN__PI_CATEGORY,
  KILN__PI_FLOW_FWD,
  KILN__PI_FLOW_BWD,
  KILN__PI_MOTION_FWD,
  KILN__PI_MOTION_BWD
};
_Static_assert(KILN__PI_MOTION_BWD == KILN__NPASS - 1, "a name for every index");

/* "color", "depth", "normal", "albedo", "id", "instance", "uv", "position", "objcoord", "nocs",
 * "category", "flow_fwd", "flow_bwd", "motion_fwd", "motion_bwd", NULL: pass i is bit 1 << i. */
extern const char *const kiln__pass_names[KILN__NPASS + 1];

/* The renderer's planes that passes need: the planes among them, and those the derived ones are
 * computed from. */
unsigned kiln__planes_of(unsigned passes);

/* "png", "png16", "jpg", "exr", "npy", "hdr", "jpeg", NULL: the names a job or --format may give;
 * kiln__format_of(i) is the format of name i ("jpeg" is KILN_FORMAT_JPEG). */
extern const char *const kiln__format_names[];
kiln_format kiln__format_of(int i);

/* The file extension of pass pi in format f (colour in f's own, the others where they keep their
 * meaning: PNG, EXR or NPY; "exr" for every pass of exr-multi and for KILN__LAYERS). */
const char *kiln__pass_ext(kiln_format f, int pi);
/* Whether pass pi has only a float form (uv, position, objcoord: EXR in the PNG formats). */
bool kiln__pass_float_only(int pi);

/* The files of a frame are slots: a pass index each, or one KILN__LAYERS (a multilayer EXR holding
 * every pass). Every loop over a frame's files goes through kiln__frame_files. */
enum { KILN__LAYERS = KILN__NPASS };
/* The slots of a frame written with passes in format f, in pass order, into files; how many. */
int kiln__frame_files(kiln_format f, unsigned passes, int files[KILN__NPASS]);
/* {pass} of slot: the pass's name, or "layers". */
const char *kiln__slot_name(int slot);

/* The EXR options of a batch: half floats, and tinyexr's TINYEXR_COMPRESSIONTYPE_*. */
typedef struct kiln__exr_opts {
  bool half;
  int compression;
} kiln__exr_opts;
/* kiln_batch_config's EXR options as tinyexr takes them (the defaults: float, ZIP). */
kiln__exr_opts kiln__exr_opts_of(const kiln_batch_config *cfg);

/* One channel of a multilayer EXR: its name, the pass it comes from and which of the pass's
 * values, and whether it is UINT (ids) rather than float. */
typedef struct kiln__layer_channel {
  char name[40];
  int pass, component;
  bool uint;
} kiln__layer_channel;
/* The channels of a multilayer EXR of passes, sorted by name (as EXR stores them), into ch (cap
 * KILN__NPASS * 4); how many. */
int kiln__layer_channels(unsigned passes, kiln__layer_channel *ch);

/* Encodes the multilayer EXR of passes of img into *data and *len (free() them). 0, or a KILN_E*
 * code with msg saying why. Thread-safe. */
int kiln__encode_layers(const kiln_image *img, void *const derived[KILN__NPASS], unsigned passes,
                        kiln__exr_opts o, void **data,
                        size_t *len, char *msg, size_t msgcap);

/* Encodes pass pi of img in format f (colour scaled by 2^exposure and tone-mapped when it becomes
 * 8- or 16-bit) into *data and *len (free() them); a derived pass is read from derived[pi]
 * (kiln__derive's). Conversion time is added to *conv_s. 0, or a
 * KILN_E* code with msg saying why. Thread-safe. */
int kiln__encode_pass(kiln_format f, float exposure, bool filmic, const kiln_image *img,
                      void *const derived[KILN__NPASS], int pi, void **data, size_t *len,
                      double *conv_s, char *msg, size_t msgcap);
/* kiln__encode_pass with EXR options (slot KILN__LAYERS: the multilayer file of passes). */
int kiln__encode_slot(kiln_format f, float exposure, bool filmic, kiln__exr_opts o,
                      unsigned passes, const kiln_image *img, void *const derived[KILN__NPASS],
                      int slot, void **data, size_t *len, double *conv_s, char *msg,
                      size_t msgcap);

/* ---- derive.c: the passes computed from the renderer's planes -------------------------------- */

struct kiln__tracer; /* engine/render/render_query.h */

/* One frame as the derived passes see it: its camera and its scene's instance table and geometry
 * (borrowed). */
typedef struct kiln__frame_view {
  const kiln_camera *camera;
  const kiln__instance *instances;    /* instance id k is instances[k - 1] */
  size_t ninstances;                  /* 0: the scene has no table (points are taken as fixed) */
  const struct kiln__tracer *tracer;  /* a neighbour's: its surfaces, which hide points from its
                                         camera (the flow is then invalid); NULL: not tested */
} kiln__frame_view;

typedef struct kiln__derive_in {
  const kiln_image *img;               /* the frame: depth, instance and id planes */
  const kiln__scene *scene;            /* the object categories (may be NULL: none) */
  kiln__frame_view self;               /* the frame's camera and instances */
  const kiln__frame_view *next, *prev; /* the neighbouring frames of the job; NULL: none (the
                                          flow to it is invalid everywhere) */
} kiln__derive_in;

/* Computes the derived passes (bits KILN__NPLANE and up) of passes into out[pi], malloc'd: 3
 * floats a pixel (position, objcoord, nocs: NaN for background or an instance the table lacks;
 * flow_*: u, v, valid, u = v = 0 where not valid), or 1 uint32 a pixel (category). out is zeroed
 * first; free it with kiln__derived_free. 0, KILN_ENOMEM, or KILN_EINVAL (a degenerate camera)
 * with msg. Thread-safe. */
int kiln__derive(const kiln__derive_in *in, unsigned passes, void *out[KILN__NPASS], char *msg,
                 size_t msgcap);
void kiln__derived_free(void *out[KILN__NPASS]);

/* What the derived passes of a run share: the BVH of the job's scene (for the occlusion test of
 * the flows), built once by the first frame that needs it. pool (may be NULL) builds it. */
typedef struct kiln__derive_cache kiln__derive_cache;
int kiln__derive_cache_new(kiln_pool *pool, kiln__derive_cache **out);
void kiln__derive_cache_free(kiln__derive_cache *c); /* NULL: nothing */

/* The derived passes of frame fr of job (rendered as img): the frame's instance table from its
 * own scene (scene, when the caller has it; else loaded when the frame has overrides and the
 * scene has a table), the neighbours (job
 * index +- 1) through kiln__job_frame_at, each with its own scene's geometry for the occlusion
 * test (a neighbour with overrides: its scene loaded and its BVH built for this frame; else the
 * job's, from cache). cache NULL: no occlusion test. 0 or an error with msg, out as
 * kiln__derive's. Thread-safe. */
int kiln__derive_frame(const kiln_job *job, const kiln_job_frame *fr, const kiln_scene *scene,
                       const kiln_image *img, unsigned passes, kiln__derive_cache *cache,
                       void *out[KILN__NPASS], char *msg, size_t msgcap);

/* Whether job can give the derived passes of passes: 0, or KILN_EUNSUPPORTED with msg (the flows
 * of a .jsonl list, whose neighbouring lines are not read by index). */
int kiln__derive_check(const kiln_job *job, unsigned passes, char *msg, size_t msgcap);

/* ---- decode_check.c: whether an output file is what a run writes (kiln verify) ------------------ */

typedef enum { KILN__FILE_PNG, KILN__FILE_JPEG, KILN__FILE_EXR, KILN__FILE_NPY, KILN__FILE_HDR } kiln__file_kind;

/* What the file of one pass must be: its container, size and layout. */
typedef struct kiln__expect {
  kiln__file_kind kind;
  int32_t width, height;
  int channels;      /* 1 (grey, depth, ids) or 3 */
  int bits;          /* PNG: 8 or 16 bits a sample */
  const char *descr; /* NPY: "<f4" or "<u4" */
  unsigned layers;   /* EXR: a multilayer file of these passes (its channels' names and types
                        checked), else 0 */
} kiln__expect;

/* What output.c writes for slot pi (a pass, or KILN__LAYERS of passes) in format f at w x h. */
void kiln__expect_of(kiln_format f, int pi, int32_t w, int32_t h, kiln__expect *e);
void kiln__expect_slot(kiln_format f, unsigned passes, int slot, int32_t w, int32_t h,
                       kiln__expect *e);

enum { KILN__CHECK_OK = 0, KILN__CHECK_MISSING = 1, KILN__CHECK_CORRUPT = 2 };

/* Reads and decodes the file at path in full against e: KILN__CHECK_OK, _MISSING (no such file),
 * _CORRUPT (why says how: truncated, undecodable, another size or layout, unreadable), or
 * KILN_ENOMEM. Adds the bytes read to *bytes. Thread-safe. */
int kiln__check_file(const char *path, const kiln__expect *e, uint64_t *bytes, char *why,
                     size_t cap);
/* kiln__check_file of the n bytes at b (a tar member): _OK, _CORRUPT (why) or KILN_ENOMEM. */
int kiln__check_bytes(const unsigned char *b, size_t n, const kiln__expect *e, char *why,
                      size_t cap);

/* ---- tar.c: WebDataset-style tar shards (kiln_batch_config.tar_frames) -------------------------- */

typedef struct kiln__tars kiln__tars;

/* The name of tar k of shard (shards > 1: of a sharded run) into out (relative to out_dir). */
void kiln__tar_name(uint32_t shard, uint32_t shards, uint64_t k, char *out, size_t cap);
/* The tars of a run: frames r = 0 .. total-1 go per at a time into tar r / per, under out_dir. */
int kiln__tars_open(const char *out_dir, uint32_t shard, uint32_t shards, uint64_t per,
                    uint64_t total, bool durable, kiln__tars **out, char *msg, size_t msgcap);
/* Appends the n members (names, data, lengths) of frame r to its tar's temporary (made on the
 * first). Any thread (writer tasks); members of one call stay together. 0, or KILN_EIO with msg
 * (the tar is then abandoned: its temporary removed when it is settled). */
int kiln__tars_add(kiln__tars *t, uint64_t r, char *const *names, void *const *data,
                   const size_t *len, int n, char *msg, size_t msgcap);
/* Frame r is settled (written, failed or skipped): the driver thread, once per frame. When it is
 * the last of its tar, the tar is finished and renamed into place. 0, or KILN_EIO with msg. */
int kiln__tars_settle(kiln__tars *t, uint64_t r, char *msg, size_t msgcap);
/* Removes the temporaries of tars not finished and frees t (NULL: nothing). */
void kiln__tars_close(kiln__tars *t);

/* A tar's members as read back (kiln verify): names, offsets and sizes of its regular files. */
typedef struct kiln__tar_member {
  char *name;
  uint64_t offset, size;
} kiln__tar_member;
typedef struct kiln__tar_index {
  kiln__tar_member *m; /* sorted by name */
  size_t n;
} kiln__tar_index;
/* Reads the headers of the tar at path (ustar, pax path records; checksums, sizes within the
 * file, the end-of-archive blocks): KILN__CHECK_OK with *ix filled, _MISSING, _CORRUPT (why), or
 * KILN_ENOMEM. Data is not read. */
int kiln__tar_read_index(const char *path, kiln__tar_index *ix, char *why, size_t cap);
const kiln__tar_member *kiln__tar_find(const kiln__tar_index *ix, const char *name);
void kiln__tar_index_free(kiln__tar_index *ix);

/* ---- verify.c: kiln_batch_walk and kiln_batch_verify --------------------------------------------- */

/* A run's temporaries (.NAME.tmp-HOST-PID-N) beside its files, found by reading each folder once
 * (a few recently used folders are kept). */
typedef struct kiln__strays kiln__strays;
int kiln__strays_new(kiln__strays **out);
/* Calls fn(arg, tmp_path) for every temporary of the file at path. 0 or KILN_ENOMEM. */
int kiln__strays_of(kiln__strays *s, const char *path, void (*fn)(void *arg, const char *tmp),
                    void *arg);
void kiln__strays_free(kiln__strays *s);

/* ---- isolate.c, isolate_worker.c: frames rendered in worker processes ---------------------------
 *
 * One duplex connection per worker (a kiln_channel), one message per request or reply. Both
 * processes are the same build of kiln (the worker is a fork of the program's fork server), so
 * the structs travel as bytes, in native layout.
 *   setup    the worker's start argument: what it opens once (device, job, renderer)
 *   request  parent -> worker: one frame to render (its expanded kiln_job_frame, the patch after
 *            the struct); an empty message asks the worker to exit
 *   reply    worker -> parent: the frame's code, message and timings, then the planes asked
 *            for, in pass order (colour, depth, normal, albedo, id, instance, uv); the derived
 *            passes are computed by the parent from them */
enum { KILN__ISO_MAGIC = 0x6b69736fu /* "kiso" */, KILN__ISO_PATH = 4096 };

/* Fault injection for tests: what a worker does to itself on a frame's first attempt. */
typedef enum {
  KILN__FAULT_NONE = 0,
  KILN__FAULT_SEGV,     /* raise(SIGSEGV) before rendering */
  KILN__FAULT_HANG,     /* never answer (blocks until killed) */
  KILN__FAULT_EXIT,     /* _exit(3) before rendering */
  KILN__FAULT_LOST      /* answer KILN_EDEVICE_LOST, as a worker whose device was lost */
} kiln__fault_kind;

typedef struct kiln__fault {
  kiln__fault_kind kind;
  long frame;
  bool always; /* on every attempt ("segv!@50"), not only the first */
} kiln__fault;

enum { KILN__MAX_FAULTS = 16 };

typedef struct kiln__iso_setup {
  uint32_t magic;
  char job[KILN__ISO_PATH];   /* absolute path of the job file */
  char scene[KILN__ISO_PATH]; /* absolute path of the job's scene file */
  uint8_t device_uuid[16];    /* the device to open (by UUID, else by index) */
  uint32_t device_index;
  int32_t width, height, spp; /* the batch's (already resolved) */
  uint32_t passes;            /* the planes to send back (kiln__planes_of the batch's passes) */
  int threads;                /* the worker's pool */
  uint32_t nfaults;
  kiln__fault faults[KILN__MAX_FAULTS];
} kiln__iso_setup;

typedef struct kiln__iso_request {
  uint32_t magic;
  uint32_t attempt; /* 0 the first time the frame is sent, 1 on its retry */
  long frame;
  uint32_t seed;
  kiln_camera camera;
  uint32_t patch_len; /* bytes of the scene patch after the struct (no NUL); 0: none */
  char where[600];
} kiln__iso_request;

typedef struct kiln__iso_reply {
  uint32_t magic;
  int32_t code; /* 0, or the frame's KILN_E* code */
  char message[1024];
  int32_t width, height;
  uint32_t spp, passes;
  double prepare_s, render_s;
} kiln__iso_reply;

/* The planes of img in pass order (the order of kiln__pass_names), each with its bytes a pixel:
 * what a reply carries, and where the parent puts it back. */
void kiln__iso_planes(const kiln_image *img, void *planes[KILN__NPLANE], size_t per[KILN__NPLANE]);

/* The bytes of a reply that carries the passes of a w x h frame (the header included). */
size_t kiln__iso_reply_size(unsigned passes, int32_t w, int32_t h);

/* The worker process's entry (a kiln_process_fn): arg is a kiln__iso_setup; its connection to
 * the parent is the process's connection 0. */
int kiln__iso_worker_main(const void *arg, size_t len);

/* Parses a fault list ("segv@50,hang@120,exit@7,lost@9"; "segv!@50": on the retry too) into
 * setup's faults. 0, or KILN_EINVAL
 * with msg naming the bad item. */
int kiln__iso_parse_faults(const char *spec, kiln__iso_setup *setup, char *msg, size_t cap);

typedef struct kiln__isolate kiln__isolate;

/* Starts n workers, worker i with setups[i] (its device), at once, and waits until each is ready
 * (job, scene, device and renderer loaded); then a runner thread per worker. A worker is replaced
 * when it dies, hangs past frame_timeout_s (> 0; 0: no limit), loses its device, or has rendered
 * `recycle` frames (> 0). Once *stop (the batch's stop flag; may be NULL) is set, a frame whose
 * worker fails is not retried. KILN_ESTATE when the fork server is not running (it must start
 * before the program's threads and Vulkan: kiln_forkserver_start); a worker that cannot start
 * gives its own error and message. 0 or an error with msg. */
int kiln__isolate_start(const kiln__iso_setup *setups, size_t n, double frame_timeout_s,
                        uint32_t recycle, const atomic_int *stop, kiln__isolate **out, char *msg,
                        size_t cap);

/* Queues frame fr (borrowed for the call) for a worker: *render is a new promise that succeeds
 * with the frame's kiln_image (owned by the future) or fails with the frame's error: its own
 * (from the worker), or KILN_EKILLED / KILN_EEXITED / KILN_ETIMEDOUT when its worker died or hung
 * on both attempts (each frame is retried once, on a fresh worker). Driver thread only. */
int kiln__isolate_submit(kiln__isolate *iso, const kiln_job_frame *fr, kiln_future **render);

/* Stops the runners once every queued frame is settled, ends the workers, and fills sum's worker
 * counts and incidents ("frame 50: render worker 1234 killed by SIGSEGV"; sum may be NULL); frees
 * iso. NULL is a no-op. */
void kiln__isolate_stop(kiln__isolate *iso, kiln_batch_summary *sum);

#endif
