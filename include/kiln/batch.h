/* kiln/batch.h: jobs (one scene and many frames) and the batch pipeline that renders them.
 *
 * A job (docs/JOBS.md) names a scene and its frames: an animation (a frame range, camera orbits
 * and keyframed camera and object transforms), or a list of images (a JSONL file, one image per
 * line, each with overrides of the camera, object transforms, material parameters, lights, seed
 * and output name). kiln_job_load reads and validates the whole job (every list line included:
 * a malformed line is an error before anything renders) and loads the scene once; the frames are
 * then expanded lazily, one at a time, by kiln_job_next, so memory does not grow with their
 * number.
 *
 * kiln_batch_run renders a job: per frame prepare (camera, overrides) -> render on the least busy
 * device -> read back -> encode -> write atomically (a temporary file, then rename), each a kiln
 * task or GPU future, at most `in_flight` frames at once, driven by kiln_as_completed. A failed
 * frame is reported and the batch goes on. */
#ifndef KILN_BATCH_H
#define KILN_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/error.h"
#include "kiln/gpu.h"
#include "kiln/render.h"
#include "kiln/scene.h"
#include "kiln/sched.h"
#include "kiln/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Passes (AOVs), as a bit set. File names use the names in brackets for {pass}. */
enum {
  KILN_PASS_COLOR = 1u << 0,    /* [color]    linear RGB -> sRGB for 8/16-bit formats */
  KILN_PASS_DEPTH = 1u << 1,    /* [depth]    float distance along the camera axis */
  KILN_PASS_NORMAL = 1u << 2,   /* [normal]   world-space unit normal */
  KILN_PASS_ALBEDO = 1u << 3,   /* [albedo]   material albedo */
  KILN_PASS_ID = 1u << 4,       /* [id]       object id (uint32, 0 = background) */
  KILN_PASS_INSTANCE = 1u << 5, /* [instance] instance id (uint32) */
  KILN_PASS_UV = 1u << 6,       /* [uv]       texture coordinates of the first hit (float2) */
  KILN_PASS_POSITION = 1u << 7, /* [position] world-space position of the first hit (float3) */
  KILN_PASS_OBJCOORD = 1u << 8, /* [objcoord] the hit in its instance's object space (float3) */
  KILN_PASS_NOCS = 1u << 9,     /* [nocs]     normalised object coordinates, in [0,1]^3 */
  KILN_PASS_CATEGORY = 1u << 10, /* [category] the object's category id (uint32, 0 = none) */
  KILN_PASS_FLOW_FWD = 1u << 11, /* [flow_fwd] motion in pixels to the next frame + valid */
  KILN_PASS_FLOW_BWD = 1u << 12, /* [flow_bwd] motion in pixels to the previous frame + valid */
  KILN_PASS_MOTION_FWD = 1u << 13, /* [motion_fwd] as flow_fwd, defined also where the point is
                                      hidden or outside the image in the next frame */
  KILN_PASS_MOTION_BWD = 1u << 14, /* [motion_bwd] the same to the previous frame */
  KILN_PASS_ALL = (1u << 15) - 1
};
/* position, objcoord, nocs, category and the flows are derived on the CPU from the first-hit
 * planes, the frame's camera and its scene's instance table (the flows also from the neighbouring
 * frames' cameras and transforms; the motion passes are the flows without the visibility test);
 * docs/JOBS.md, "Passes", gives units and conventions. */

/* Parses a comma-separated list of pass names ("depth,normal") into a bit set (color is always
 * added). 0, or KILN_EPARSE with err's message naming the unknown pass (err may be NULL; it has no
 * file, line or path). */
KILN_API int kiln_pass_parse(const char *list, unsigned *passes, kiln_error_detail *err);
/* "color", "depth", ... for one bit; NULL for anything else. */
KILN_API const char *kiln_pass_name(unsigned pass);

/* Formats. Colour goes in the format named; the other passes go where they keep their meaning:
 *   png, png16, jpg  depth: 16-bit PNG in millimetres (0 = background, saturating at 65.535 m);
 *                    normal: RGB of (n + 1) / 2, albedo: linear RGB, nocs: RGB of the [0,1]
 *                    coordinates (0 = background) (8-bit for png and jpg, 16-bit for png16); id,
 *                    instance, category: 16-bit grey PNG (a frame with ids above 65535 fails);
 *                    flow_fwd, flow_bwd, motion_fwd, motion_bwd: KITTI's 16-bit RGB (u * 64 + 2^15, v * 64 + 2^15,
 *                    valid); uv, position, objcoord: float EXR (no integer form keeps them)
 *   exr, hdr         every other pass as float EXR (ids as float, exact up to 2^24)
 *   npy              every pass as NPY: float32 (h, w), (h, w, 2) or (h, w, 3), ids uint32 (h, w)
 *   exr-multi        every pass in one multilayer EXR a frame (below) */
typedef enum {
  KILN_FORMAT_DEFAULT = 0, /* in kiln_batch_config: the job's format (whose own default is png) */
  KILN_FORMAT_PNG,         /* 8-bit sRGB colour */
  KILN_FORMAT_PNG16,       /* 16-bit sRGB colour */
  KILN_FORMAT_JPEG,        /* 8-bit sRGB colour as JPEG (quality 95) */
  KILN_FORMAT_EXR,         /* linear float colour */
  KILN_FORMAT_NPY,         /* linear float32 colour */
  KILN_FORMAT_HDR,         /* linear colour as Radiance .hdr */
  KILN_FORMAT_EXR_MULTI    /* "exr-multi": one multilayer EXR a frame holding every pass ({pass}
                              is "layers"): R G B (colour, linear; no A: kiln renders no alpha),
                              Z (depth), N.X N.Y N.Z (normal), albedo.R albedo.G albedo.B, id and
                              instance as UINT channels (exact), any other pass as <pass> (one
                              channel) or <pass>.R <pass>.G <pass>.B */
} kiln_format;

/* The compression of the EXR files a batch writes (tinyexr's: no DWA, no B44). */
typedef enum kiln_exr_compression {
  KILN_EXR_DEFAULT = 0, /* ZIP */
  KILN_EXR_NONE,
  KILN_EXR_RLE,
  KILN_EXR_ZIPS, /* zlib, one scanline a block */
  KILN_EXR_ZIP,  /* zlib, 16 scanlines a block */
  KILN_EXR_PIZ   /* wavelet + Huffman, 32 scanlines a block: best on noisy renders */
} kiln_exr_compression;

/* "png", "png16", "jpg" (or "jpeg"), "exr", "npy", "hdr", "exr-multi". 0 or KILN_EPARSE (never gives
 * KILN_FORMAT_DEFAULT). */
KILN_API int kiln_format_parse(const char *name, kiln_format *out);
/* The name of f ("jpg" for KILN_FORMAT_JPEG, "default" for KILN_FORMAT_DEFAULT), "?" for a value
 * that is not a kiln_format. Static: never free it. */
KILN_API const char *kiln_format_name(kiln_format f);

typedef struct kiln_job kiln_job;

typedef struct kiln_job_options {
  const char *scene; /* a scene file to use instead of the job's "scene" (required for a bare
                         .jsonl list, which names none); NULL: the job's */
  kiln_pool *pool;   /* reads the scene's mesh files in parallel; NULL: serially */
} kiln_job_options;

/* Loads the job at path (a .json job, or a .jsonl list whose scene comes from opt->scene) and its
 * scene, validating everything. 0 and *out, or KILN_EINVAL, KILN_EIO, KILN_EPARSE, KILN_ENOMEM
 * and *out NULL. err (may be NULL) is filled as by kiln_scene_load (file, line, column, JSON path,
 * message; for a list line, that line) and zeroed on success. opt may be NULL. */
KILN_API int kiln_job_load(const char *path, const kiln_job_options *opt, kiln_error_detail *err,
                           kiln_job **out);

/* The job's scene, as loaded (no per-frame overrides). Borrowed: valid until kiln_job_destroy. */
KILN_API const kiln_scene *kiln_job_scene(const kiln_job *job);

/* Job-level settings (defaults in brackets). */
typedef struct kiln_job_info {
  const char *output; /* the output template ["{frame:05d}_{pass}.{ext}"]; borrowed from the job
                         (valid until kiln_job_destroy) */
  unsigned passes;    /* the passes [color] */
  kiln_format format; /* the format [png]; never KILN_FORMAT_DEFAULT */
  uint64_t count;     /* the number of frames in the job (before any selection) */
  /* the job's "exr" and "tar" (docs/JOBS.md, "Output layouts"); kiln_batch_config's own, when
     set, win */
  bool exr_half;                        /* [false] */
  kiln_exr_compression exr_compression; /* [KILN_EXR_DEFAULT] */
  uint32_t tar_frames;                  /* [0: no tars] */
} kiln_job_info;

/* Fills *info (job and info must not be NULL). Any thread. */
KILN_API void kiln_job_get_info(const kiln_job *job, kiln_job_info *info);

/* One frame of a job, expanded. */
typedef struct kiln_job_frame {
  uint64_t index;     /* 0-based position in the job */
  long frame;         /* frame number: {frame} in templates, part of the random sequence.
                          Animation: start + index * step; list: the line's "frame", else index */
  char name[128];     /* {name}: the list line's "name", else the frame number as %05ld */
  char where[600];    /* for messages: "job.json: frame 12" or "list.jsonl:37" */
  kiln_camera camera; /* the camera of this frame (the scene's unless overridden) */
  uint32_t seed;      /* the scene's seed unless overridden */
  char *scene_patch;  /* NULL, or the frame's object/material/light/environment overrides as
                          JSON, applied by kiln_job_frame_scene. Owned by the frame */
} kiln_job_frame;

/* Expands the next frame into *fr (which kiln_job_frame_clear must release before reuse).
 * 0, or KILN_EEOF after the last frame (err zeroed), or an error (KILN_EIO reading a list,
 * KILN_ENOMEM) with err filled (err may be NULL). Frames come in job order. Not thread-safe for
 * one job: one caller at a time. */
KILN_API int kiln_job_next(kiln_job *job, kiln_job_frame *fr, kiln_error_detail *err);

/* Starts the frames again from the first. */
KILN_API int kiln_job_rewind(kiln_job *job);

KILN_API void kiln_job_frame_clear(kiln_job_frame *fr);

/* The scene of frame fr: the job's scene with fr->scene_patch applied, loaded anew (BVH and upload
 * are then per frame). *out NULL with 0 when the frame has no patch (use kiln_job_scene).
 * KILN_EINVAL when job, fr or out is NULL; other errors as kiln_scene_load's, err (may be NULL)
 * naming fr->where and the JSON path. Thread-safe (any number at once). */
KILN_API int kiln_job_frame_scene(const kiln_job *job, const kiln_job_frame *fr,
                                  kiln_error_detail *err, kiln_scene **out);

KILN_API void kiln_job_destroy(kiln_job *job);

/* ---- the batch -------------------------------------------------------------------------------- */

typedef struct kiln_batch kiln_batch;

/* What happened to one frame: passed to the progress callback once per frame, done or failed. */
typedef struct kiln_batch_event {
  const kiln_job_frame *frame;           /* borrowed for the call */
  int status;                            /* 0 written, 1 skipped (--resume: its files exist), 2
                                  rendered by another process (claiming: its chunk was done
                                  elsewhere), or the KILN_E* code of the failure */
  const char *message;                   /* the failure in words ("" when written or skipped) */
  uint64_t done, failed, skipped, total; /* counts so far (skipped includes status 2); total:
                                            frames selected (in this shard) */
  double elapsed_s;                      /* since kiln_batch_run began */
} kiln_batch_event;

typedef void (*kiln_batch_progress_fn)(void *arg, const kiln_batch_event *ev);

/* ---- sharding and claiming: one job over many processes (docs/CLUSTER.md) -------------------- */

/* How the selected frames (those --frames selects, in job order, numbered 0..total-1 by their
 * position p) are split into `shards` disjoint parts, the union of which is every selected frame
 * exactly once. */
typedef enum kiln_shard_mode {
  KILN_SHARD_ROUND_ROBIN = 0, /* shard k takes p = k, k + shards, k + 2 shards, ... (balances
                                 frames of uneven cost: neighbours usually cost alike) */
  KILN_SHARD_CONTIGUOUS       /* shard k takes p in [floor(k total / shards),
                                 floor((k + 1) total / shards)) (locality: one range of files) */
} kiln_shard_mode;

/* Whether position pos (< total) of the selected frames belongs to shard `shard` of `shards`
 * (shards 0 or 1: every position belongs to shard 0). Pure: what kiln_batch_run and kiln verify
 * use, exposed so that callers can plan shards. */
KILN_API bool kiln_shard_contains(uint64_t pos, uint64_t total, uint32_t shard, uint32_t shards,
                                  kiln_shard_mode mode);

/* "round-robin" / "contiguous" into *mode: 0 or KILN_EPARSE. */
KILN_API int kiln_shard_mode_parse(const char *name, kiln_shard_mode *mode);

/* Dataset writers: files in a standard layout besides the frames' own (docs/DATASETS.md). */
typedef enum kiln_writer {
  KILN_WRITER_NONE = 0,
  KILN_WRITER_COCO, /* COCO detection / instance segmentation JSON, one per shard */
  KILN_WRITER_BOP   /* the BOP format: scene_camera, scene_gt, scene_gt_info, depth, masks */
} kiln_writer;

typedef struct kiln_batch_config {
  kiln_pool *pool;              /* required: runs preparation, read-back, encoding, writes */
  kiln_gpu_device *const *devs; /* required: opened devices, >= 1. A CPU device (lavapipe,
                                       one queue) opened twice and given as two renders two frames
                                       at once, filling each dispatch's idle tail (kiln render
                                       does this; ~10% more images/s on two cores) */
  size_t ndevs;
  const char *out_dir;             /* where outputs go (created if missing). NULL: "." */
  const char *output;              /* output template; NULL: the job's. Relative to out_dir */
  unsigned passes;                 /* 0: the job's. Colour is always written */
  kiln_format format;              /* KILN_FORMAT_DEFAULT (the default): the job's */
  long first, last, step;          /* frames first..last inclusive (by frame number; negative
                                       numbers allowed), every step-th counted from first (from
                                       the first frame in range when first is LONG_MIN). Default
                                       LONG_MIN, LONG_MAX, 1: every frame */
  int32_t width, height, spp;      /* 0: the job's / scene's */
  size_t in_flight;                /* frames at once; 0: 2 per lane of every device (and no
                                      more than in_flight_bytes hold) */
  bool resume;                     /* skip frames whose every output file exists */
  bool overwrite;                  /* replace existing outputs (else a frame whose output
                                       exists fails, naming it) */
  bool durable;                    /* fsync each file and its folder */
  const char *contact_sheet;       /* write a contact sheet PNG of the colour images here (a path
                                       relative to out_dir); NULL: none */
  bool allow_outside_out_dir;      /* false (the default): output and contact_sheet must stay
                                       inside out_dir (no absolute path, no ".." component), or
                                       kiln_batch_create refuses them. true: the caller's own
                                       output and contact_sheet may name any path. The job's
                                       template never may (kiln_job_load refuses it) */
  int contact_thumb;               /* thumbnail size in pixels; 0: 128 */
  uint32_t shard, shards;          /* render only shard `shard` (0-based) of `shards` parts of the
                                       selected frames; shards 0 or 1 (the default): all of them */
  kiln_shard_mode shard_mode;      /* how the parts are cut [round-robin] */
  bool claim;                      /* instead of a fixed shard: take chunks of `chunk` selected
                                       frames through claim files in <out_dir>/.kiln-claims/, with
                                       any number of other processes on any hosts sharing out_dir
                                       (docs/CLUSTER.md); excludes shards > 1. Frames whose files
                                       all exist are skipped, as with resume, unless overwrite */
  uint32_t chunk;                  /* frames per claim; 0: 64 */
  double claim_timeout_s;          /* a claim whose heartbeat is older is taken over; 0: 120 s.
                                       Heartbeats come every timeout / 4 */
  const char *manifest;            /* write one JSON line per frame written or found complete
                                       (index, frame, name, seed, files relative to out_dir) to
                                       this path (relative to out_dir unless absolute), atomically
                                       when the run ends; NULL: none */
  kiln_batch_progress_fn progress; /* called on the thread of kiln_batch_run; may be NULL */
  void *progress_arg;
  /* Isolation (docs/PROCESSES.md, "Isolated rendering"): frames render in worker processes, one
   * per device lane, started through the fork server (kiln_forkserver_start must have been called
   * before the program started threads or opened Vulkan; else kiln_batch_run fails with
   * KILN_ESTATE). Each worker opens its own Vulkan device (the same GPU as the lane's device in
   * devs) and loads the job; the calling process keeps the pipeline, the progress and the files.
   * A worker that dies, hangs past frame_timeout_s or loses its device is replaced and its frame
   * sent once more to a fresh worker; a second failure fails the frame (KILN_EKILLED,
   * KILN_EEXITED, KILN_ETIMEDOUT, KILN_EDEVICE_LOST) and the batch goes on. */
  bool isolate;
  double frame_timeout_s; /* isolate: a frame's worker that has not answered within this is
                              killed (0: no limit). Worker start-up does not count */
  uint32_t recycle;       /* isolate: replace a worker after this many frames (0: never) */
  const char *faults;     /* isolate, for tests: faults the workers inject on a frame's first
                              attempt, "segv@50,hang@120,exit@7,lost@9" (raise SIGSEGV, never
                              answer, _exit(3), report the device lost); NULL: none. A bad list
                              is KILN_EINVAL from kiln_batch_create */
  /* Datasets (docs/DATASETS.md). annotations: each frame's ground truth (camera, every
   * instance's pose, boxes, pixel counts, visibility) goes into its manifest record, and ids.json
   * (ids, names, categories) into out_dir; the instance pass is rendered whether written or not.
   * Without a manifest the records go to "annotations.jsonl" in out_dir ("annotations_K.jsonl"
   * for shard K of shards > 1, "annotations_HOST-PID.jsonl" when claiming). Frames skipped by
   * resume keep their line without the ground truth. With isolate, the calling process loads the
   * scene of each frame with overrides (kiln_job_frame_scene) to annotate it. */
  bool annotations;
  /* a dataset writer besides the files (implies annotations) [none]: KILN_WRITER_COCO writes
   * out_dir/coco.json (coco_<shard>.json with shards), KILN_WRITER_BOP the BOP scene
   * out_dir/bop/<shard, 6 digits>/; both when the run ends, from the frames it wrote (frames a
   * resumed run skips are not in them). Not with claim (KILN_EINVAL) */
  kiln_writer writer;
  /* Output layouts (docs/JOBS.md, "Output layouts"). EXR files (format exr, exr-multi, and the
   * non-colour passes of hdr): float channels as 16-bit half instead of 32-bit float (ids stay
   * exact: float in single-pass files, UINT in multilayer ones), and their compression. */
  bool exr_half;
  kiln_exr_compression exr_compression;
  /* tar_frames > 0: WebDataset-style shards instead of loose files. The frames this run takes
   * (its shard's, in job order, numbered r = 0, 1, ...) go N at a time into
   * out_dir/shard-{r/N:06d}.tar (shard-{K:03d}-{r/N:06d}.tar for shard K of a sharded run),
   * members <name>.<pass>.<ext> (the frame's {name}, which must hold no '.'); each tar is built
   * as a temporary and renamed when the last of its frames is settled (a failed frame leaves it
   * short); a stopped run removes the temporaries of tars it did not finish. resume: a tar that
   * exists counts as all of its frames' files. Excludes claim. The template is still checked
   * but names no file. */
  uint32_t tar_frames;
  /* Frames in flight are no more than fit these bytes (a frame's device and read-back memory
   * and its image, by its size and passes), and at least one. 0 (default): 1 GiB. */
  uint64_t in_flight_bytes;
} kiln_batch_config;

KILN_API void kiln_batch_config_default(kiln_batch_config *cfg);

/* Seconds spent in each stage, summed over frames (so they can exceed the wall time). */
typedef struct kiln_batch_summary {
  uint64_t total, written, failed, skipped; /* frames selected (in this shard) / written /
                                               failed / skipped (their files existed) */
  uint64_t elsewhere;                       /* claiming: frames whose chunk another process
                                               rendered (counted in skipped too) */
  uint64_t chunks_claimed, chunks_taken_over; /* claiming: chunks this run claimed, and of those,
                                                 how many it took over from an expired claim */
  uint64_t files;                           /* files written */
  uint64_t bytes;                           /* bytes written */
  bool stopped;                             /* kiln_batch_stop left frames unissued */
  double wall_s, first_image_s; /* wall time; time to the first written frame (0: none) */
  double images_per_s;          /* written / wall_s */
  double prepare_s, render_s, readback_s, encode_s, write_s;
  uint64_t peak_rss_bytes;         /* the process's peak resident memory at the end */
  int manifest_status;             /* 0 written (or not asked for), else the error */
  char manifest_message[512];      /* why, when manifest_status is not 0; else "" */
  int contact_sheet_status;        /* 0 written (or not asked for), else the error */
  char contact_sheet_message[512]; /* why, when contact_sheet_status is not 0; else "" */
  /* isolate: worker processes started (replacements and recycling included), deaths (a signal
   * or an exit while holding a frame), hangs (killed past frame_timeout_s), device losses,
   * recycles, and frames sent a second time */
  uint64_t worker_starts, worker_crashes, worker_hangs, worker_lost, worker_recycles;
  uint64_t frames_retried;
  char incidents[2048];      /* isolate: one line per incident, in the order they happened
                                ("frame 50: render worker 1234 killed by SIGSEGV"); "" when none */
  uint64_t incidents_dropped; /* incidents that did not fit in incidents */
  int writer_status;          /* the dataset writer's files: 0 written (or no writer), else the
                                 error (a frame the writer could not take fails with its error) */
  char writer_message[512];   /* why, when writer_status is not 0; else "" */
} kiln_batch_summary;

/* Makes a batch of job (borrowed; must outlive the batch) with cfg (copied; strings borrowed).
 * 0, KILN_EINVAL (no pool or device, bad step, size or format, or a template that would give two
 * passes or two frames one file, or a file the wrong extension, or that writes outside out_dir),
 * KILN_ENOMEM; err (may be NULL) says why (its message; an error of a template has path "output",
 * and when the template is the job's, the job's file, line and column) and is zeroed on success. */
KILN_API int kiln_batch_create(kiln_job *job, const kiln_batch_config *cfg, kiln_batch **out,
                               kiln_error_detail *err);

/* Renders the batch; returns when every issued frame has finished (whatever is returned, no task
 * of the batch runs after the return). 0 when the batch ran: every selected frame was written,
 * skipped or failed, as sum says (sum->failed counts the failures, each also reported through the
 * progress callback; a frame whose context or files cannot be allocated fails with KILN_ENOMEM,
 * and the batch goes on). A negative KILN_E* code for an error that stopped the batch before any
 * frame: the output folder cannot be made, another run holds it (KILN_EBUSY: "another kiln render
 * (pid N) is writing to DIR"), the selection matches no frame, the first frame's files exist
 * without resume or overwrite, the scene cannot be uploaded; or for a failure of the runtime
 * that stopped it midway (no more frames are issued; those in flight are waited for and reported).
 * err (may be NULL) says why, and is zeroed when 0 is returned (a contact sheet that cannot be
 * written is in sum, not an error of the call). *sum is filled in every case. A frame whose files
 * would be those of an earlier frame of the run (two list images with one name) fails.
 * The output folder is locked for the run: from before the first frame until the return, the run
 * holds an exclusive flock(2) on DIR/.kiln.lock (created if missing, removed at the return while
 * still held; not an output), so a second run on the folder, in this process or another, fails at
 * once with KILN_EBUSY. The kernel releases the lock if the process dies (the file then stays,
 * unlocked, and the next run takes it). On a file system without locks (ENOLCK) the run goes on
 * unlocked; on NFS, flock is only as good as the mount's locking (docs/JOBS.md, "One run per
 * output folder"). A frame lost with its device is issued again on another device, up to twice.
 * Blocking; call it from outside the pool. */
KILN_API int kiln_batch_run(kiln_batch *b, kiln_batch_summary *sum, kiln_error_detail *err);

/* Stops issuing frames; frames in flight finish (and are written). Async-signal-safe: a SIGINT
 * handler may call it. Any thread. */
KILN_API void kiln_batch_stop(kiln_batch *b);

KILN_API void kiln_batch_destroy(kiln_batch *b);

/* ---- the selection, and checking what a run wrote (kiln verify) ------------------------------ */

/* Calls fn(arg, fr, pos) for every frame cfg selects (its --frames, then its shard; claim,
 * resume and the output options do not matter), in job order: fr is borrowed for the call, pos is
 * the frame's position among the frames --frames selects (what shards cut). Needs no pool and no
 * device (cfg's are not used). Rewinds the job first and leaves it walked: not while another
 * caller iterates the job. 0, or KILN_EINVAL (bad step, shard or selection that matches no frame),
 * KILN_EIO / KILN_ENOMEM reading the job, with err (may be NULL) saying why. */
typedef void (*kiln_batch_walk_fn)(void *arg, const kiln_job_frame *fr, uint64_t pos);
KILN_API int kiln_batch_walk(kiln_job *job, const kiln_batch_config *cfg, kiln_batch_walk_fn fn,
                             void *arg, kiln_error_detail *err);

typedef enum kiln_verify_kind {
  KILN_VERIFY_MISSING = 1, /* the file is not there */
  KILN_VERIFY_CORRUPT,     /* there, but truncated, not decodable, of another size or layout
                              than the run writes, or not a readable file */
  KILN_VERIFY_STRAY        /* a temporary (.NAME.tmp-HOST-PID-N) of the file: a write that was
                              killed, or is in flight; informational only */
} kiln_verify_kind;

/* One file that is not as a run would leave it. */
typedef struct kiln_verify_problem {
  const kiln_job_frame *frame; /* borrowed for the call */
  uint64_t position;           /* the frame's position in the selection */
  const char *pass;            /* "color", "depth", ... */
  const char *path;            /* the file (the temporary's own path for KILN_VERIFY_STRAY) */
  kiln_verify_kind kind;
  const char *reason; /* in words ("the file ends inside the pixel data (truncated)"); "" when
                         missing */
} kiln_verify_problem;

typedef void (*kiln_batch_verify_fn)(void *arg, const kiln_verify_problem *p);

typedef struct kiln_batch_verify_summary {
  uint64_t frames;     /* frames selected (in this shard) */
  uint64_t complete;   /* of those, frames whose every file is present and decodes */
  uint64_t files;      /* files expected */
  uint64_t ok, missing, corrupt; /* files: ok + missing + corrupt == files */
  uint64_t strays;     /* temporaries found beside the expected files */
  uint64_t bytes;      /* bytes read and decoded */
  double wall_s;
} kiln_batch_verify_summary;

/* Checks the files a run of job with cfg writes (kiln render's output, docs/CLUSTER.md): for
 * every frame cfg selects (its --frames and shard, as kiln_batch_walk; claim is ignored: every
 * frame), every pass's file (cfg's or the job's out_dir, output template, passes and format, as
 * kiln_batch_create resolves them) must exist and decode completely as what the run writes there:
 * a PNG (libspng, every chunk's CRC, up to IEND), JPEG (TurboJPEG, warnings are errors), EXR
 * (tinyexr), NPY (header, dtype, shape and data length) or Radiance .hdr (every scanline), of the
 * run's width x height (cfg's, else the job's or scene's), bit depth and channels for that pass
 * (kiln/batch.h, "Formats"; a multilayer EXR's channel names and types too). With tar_frames
 * (cfg's or the job's), each frame's files are members of its tar: the tar's headers are read,
 * then each member decoded as a file would be; a missing tar makes its frames' files missing, a
 * damaged one corrupt. A truncated file is corrupt. Temporaries of the selected frames'
 * files are reported as strays (informational: they do not make a frame incomplete).
 * fn (may be NULL) gets each missing, corrupt or stray file, on the calling thread, in job order
 * (within a frame: strays, then passes in order).
 * Files are decoded on cfg->pool when given (a task per frame, a bounded window of frames in flight,
 * so memory does not grow with the job), else on the calling thread; no device is used (cfg->devs
 * is ignored). 0 when the check ran (*sum says what it found, whatever it found), or an error that
 * stopped it: as kiln_batch_create's for a bad cfg or template, KILN_EINVAL for a selection that
 * matches no frame, KILN_EIO reading the job, KILN_ENOMEM; err (may be NULL) says why, zeroed on
 * success. *sum is filled in every case (sum may be NULL). Blocking; call it from outside the
 * pool. */
KILN_API int kiln_batch_verify(kiln_job *job, const kiln_batch_config *cfg, kiln_batch_verify_fn fn,
                               void *arg, kiln_batch_verify_summary *sum, kiln_error_detail *err);

#ifdef __cplusplus
}
#endif
#endif /* KILN_BATCH_H */
