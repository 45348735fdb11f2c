/* batch.c: the batch pipeline of kiln/batch.h.
 *
 * One driver thread (the caller of kiln_batch_run) reads the job once, expanding frames lazily, and
 * keeps at most `in_flight` of them in the pipeline:
 *
 *   frame without scene overrides:  kiln_renderer_submit on the shared renderer ─► R (GPU future)
 *   frame with overrides:           prepare task P (load the patched scene with the job's cached
 *                                   meshes and textures, submit it to the shared renderer as a
 *                                   variant of the job's scene) ─► promise Rp, resolved with R
 *   then:                           writer task W after R or Rp: convert, encode and write every
 *                                   pass atomically, make the contact-sheet thumbnail
 *
 * The driver runs in three steps, each going forward: begin (the output folder, the number of
 * frames selected, counted from the frame numbers the job noted at load, the contact sheet's
 * cells), then issue and collect in turn (issue expands and issues frames until the window is
 * full, checking the first selected frame's outputs and making the shared renderer before anything
 * is issued; collect takes the next finished W from one kiln_as_completed set and reports its
 * frame), then finish (every frame still in flight waited for, the contact sheet, the sums).
 * A frame's failure (its own, its scene's, the GPU's, the disk's, or memory for its context) is
 * reported through the progress callback and the batch goes on; a frame lost with its device is
 * issued again on another one. What each pass becomes on disk is in output.c, output names in
 * names.c. Nothing here prints. */
#define _GNU_SOURCE
#include "kiln/batch.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "batch_internal.h"
#include "kiln/fiber.h"
#include "writer.h"
#include "image_internal.h"
#include "render_internal.h"

enum { NPASS = KILN__NPASS, MAX_RETRIES = 2, SHEET_CELLS = 100 };

/* ---- the batch ------------------------------------------------------------------------------ */

static int check_template(const struct kiln_batch *b, char *msg, size_t msgcap);
static bool outside_allowed(const struct kiln_batch *b);

struct kiln_batch {
  kiln_job *job;
  kiln_batch_config cfg;
  const char *tmpl;
  unsigned passes;
  kiln_format format;
  char out_dir[PATH_MAX];
  atomic_int stop;
  kiln_renderer *shared; /* the job's scene on every device, made by kiln_batch_run */
  kiln__isolate *iso;    /* isolate: the worker processes, for the length of a run */
  kiln__derive_cache *derive; /* the flows: what their frames share (derive.c) */
  kiln_scene_info info;
  int32_t width, height; /* of every frame */
  kiln__batch_hooks hooks;
  bool null_kernel;             /* benchmarks: the shared renderer's kernels do no tracing */
  bool annotate;                /* annotations, or a dataset writer */
  char manifest_name[PATH_MAX]; /* annotations without a manifest: the default one's name */
  char shard_tag[96];           /* this process's part of a job: "K" (shard K), "HOST-PID"
                                    (claiming), "" (the whole job) */
  kiln__dataset *dataset;       /* the dataset writer of a run; NULL: none */
  kiln__exr_opts exr;  /* how EXR files are written */
  kiln__tars *tars;    /* tar_frames: the run's tar shards, for the length of a run */
  kiln__writer *out;   /* writes the frames' files (writer.c); opened by the first run */

  pthread_mutex_t mu; /* guards the sums below, written by writer tasks */
  double prepare_s, render_s, readback_s, encode_s, write_s;

  /* contact sheet: the thumbnail of every sheet_every-th selected frame */
  uint8_t **thumbs;
  size_t ncells;
  uint64_t sheet_every;
  int thumb_w, thumb_h, thumb_f;

  /* the driver's own state */
  kiln__selection sel;
  char swept[PATH_MAX]; /* the last folder swept of temporaries (--resume) */
  char **names;         /* the output paths issued in this run (open addressing, NULL: free) */
  size_t nnames, names_cap;
};

typedef struct frame_ctx {
  kiln_batch *b;
  kiln_job_frame fr;
  uint64_t sel;        /* place among the frames this run issues (the contact sheet's cell) */
  uint64_t pos;        /* position among the selected frames (shards and chunks cut these) */
  uint64_t rank;       /* place among this shard's frames (tar shards group these) */
  bool chunked;        /* counted in its chunk's frames in flight (claiming) */
  kiln_future *render; /* R, or the promise Rp of a frame with overrides */
  kiln_future *writer; /* W */
  kiln_scene *scene;   /* annotations: the frame's own scene (frames with overrides), kept by
                          its prepare task (or loaded by W under isolation) until W annotates */
  kiln__frame_gt gt;   /* annotations: written by W, read by the driver after W completes */
  bool has_gt;
  bool patched;
  int retries;
  double t_render; /* when its render was submitted */
  /* written by W, read by the driver after W completes */
  uint64_t files, bytes;
} frame_ctx;

void kiln_batch_config_default(kiln_batch_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->format = KILN_FORMAT_DEFAULT;
  cfg->first = LONG_MIN, cfg->last = LONG_MAX, cfg->step = 1;
}

static uint64_t name_hash(const char *name) {
  return kiln__fnv1a(KILN__FNV1A_SEED, name, strlen(name));
}

/* A path of the caller's (contact sheet, manifest) must stay inside out_dir unless it says so. */
static int confined(const kiln_batch_config *cfg, const char *what, const char *path, char *msg,
                    size_t msgcap) {
  if (!path || cfg->allow_outside_out_dir || kiln__path_inside(path)) return 0;
  kiln__say(msg, msgcap,
            "%s \"%.200s\": %s would write outside the output folder (allow it with "
            "allow_outside_out_dir)",
            what, path,
            !path[0]         ? "an empty path"
            : path[0] == '/' ? "an absolute path"
                             : "a '..' component");
  return KILN_EINVAL;
}

/* The shard tag; and since annotations go into the manifest, the manifest when none is asked for:
 * annotations.jsonl in the output folder, annotations_K.jsonl for shard K of a sharded run,
 * annotations_HOST-PID.jsonl for a claiming one (each process of a job its own file, as kiln
 * render's {shard} gives). */
static void default_manifest(kiln_batch *b) {
  char *t = b->shard_tag;
  if (b->cfg.claim) {
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    host[strcspn(host, ".")] = 0;
    snprintf(t, sizeof b->shard_tag, "%s-%ld", host, (long)getpid());
  } else if (b->cfg.shards > 1) {
    snprintf(t, sizeof b->shard_tag, "%u", b->cfg.shard);
  }
  if (b->cfg.manifest) return;
  snprintf(b->manifest_name, sizeof b->manifest_name, "annotations%s%s.jsonl", t[0] ? "_" : "", t);
  b->cfg.manifest = b->manifest_name;
}

/* *tmpl_err: the error is the template's (located at it by kiln_batch_create). */
static int create(kiln_job *job, const kiln_batch_config *cfg, bool to_render, kiln_batch **out,
                  char *msg, size_t msgcap, bool *tmpl_err) {
  if (!job || !cfg || !out) {
    kiln__say(msg, msgcap, "job, cfg and out must not be NULL");
    return KILN_EINVAL;
  }
  if (to_render && (!cfg->pool || !cfg->devs || cfg->ndevs == 0)) {
    kiln__say(msg, msgcap, "a batch needs a pool and at least one device");
    return KILN_EINVAL;
  }
  if (cfg->step < 1) {
    kiln__say(msg, msgcap, "frame step %ld: must be at least 1", cfg->step);
    return KILN_EINVAL;
  }
  if (cfg->width < 0 || cfg->height < 0 || cfg->spp < 0 || (cfg->width > 0) != (cfg->height > 0)) {
    kiln__say(msg, msgcap, "size %dx%d, spp %d: must be positive", cfg->width, cfg->height,
              cfg->spp);
    return KILN_EINVAL;
  }
  if (cfg->shards > 1 && cfg->shard >= cfg->shards) {
    kiln__say(msg, msgcap, "shard %u of %u: shards are numbered 0 to %u", cfg->shard, cfg->shards,
              cfg->shards - 1);
    return KILN_EINVAL;
  }
  if (cfg->shards <= 1 && cfg->shard != 0) {
    kiln__say(msg, msgcap, "shard %u: without shards (shards %u) there is only shard 0", cfg->shard,
              cfg->shards);
    return KILN_EINVAL;
  }
  if (cfg->shard_mode != KILN_SHARD_ROUND_ROBIN && cfg->shard_mode != KILN_SHARD_CONTIGUOUS) {
    kiln__say(msg, msgcap, "unknown shard mode %d", (int)cfg->shard_mode);
    return KILN_EINVAL;
  }
  if (cfg->claim && cfg->shards > 1) {
    kiln__say(msg, msgcap, "claiming takes chunks of the whole selection: it excludes shards");
    return KILN_EINVAL;
  }
  if (cfg->claim && cfg->contact_sheet) {
    kiln__say(msg, msgcap, "a contact sheet needs every frame in one run: not with claiming");
    return KILN_EINVAL;
  }
  if (cfg->claim && !(cfg->claim_timeout_s == 0 || cfg->claim_timeout_s >= 0.2)) {
    kiln__say(msg, msgcap, "claim timeout %g s: at least 0.2 s", cfg->claim_timeout_s);
    return KILN_EINVAL;
  }
  if (cfg->isolate && !(cfg->frame_timeout_s >= 0 && cfg->frame_timeout_s < 1e9)) {
    kiln__say(msg, msgcap, "frame timeout %g s: must be 0 (none) or a positive number of seconds",
              cfg->frame_timeout_s);
    return KILN_EINVAL;
  }
  kiln__iso_setup faults = {0};
  if (cfg->isolate && kiln__iso_parse_faults(cfg->faults, &faults, msg, msgcap)) return KILN_EINVAL;
  if (cfg->writer != KILN_WRITER_NONE && cfg->writer != KILN_WRITER_COCO &&
      cfg->writer != KILN_WRITER_BOP) {
    kiln__say(msg, msgcap, "unknown dataset writer %d", (int)cfg->writer);
    return KILN_EINVAL;
  }
  if ((unsigned)cfg->exr_compression > KILN_EXR_PIZ) {
    kiln__say(msg, msgcap, "unknown EXR compression %d", (int)cfg->exr_compression);
    return KILN_EINVAL;
  }
  if (cfg->claim && cfg->writer) {
    /* a claiming process's files would lack the frames of the chunks it takes over (their
     * records died with their holder): shards name a writer's files instead */
    kiln__say(msg, msgcap, "a dataset writer needs every frame of its part in one run: use shards, "
                           "not claiming");
    return KILN_EINVAL;
  }
  if (cfg->format != KILN_FORMAT_DEFAULT && !strcmp(kiln_format_name(cfg->format), "?")) {
    kiln__say(msg, msgcap, "unknown format %d", (int)cfg->format);
    return KILN_EINVAL;
  }
  kiln_batch *b = calloc(1, sizeof *b);
  if (!b) {
    kiln__say(msg, msgcap, "out of memory");
    return KILN_ENOMEM;
  }
  kiln_job_info ji;
  kiln_job_get_info(job, &ji);
  b->job = job;
  b->cfg = *cfg;
  if (b->cfg.claim && !b->cfg.overwrite) b->cfg.resume = true; /* chunks taken over half done */
  if (b->cfg.claim && !b->cfg.chunk) b->cfg.chunk = 64;
  if (b->cfg.claim && b->cfg.claim_timeout_s == 0) b->cfg.claim_timeout_s = 120;
  kiln__selection_init(&b->sel, &b->cfg);
  b->annotate = cfg->annotations || cfg->writer != KILN_WRITER_NONE;
  if (b->annotate) default_manifest(b);
  b->tmpl = cfg->output ? cfg->output : ji.output;
  b->passes = (cfg->passes ? cfg->passes : ji.passes) | KILN_PASS_COLOR;
  b->format = cfg->format != KILN_FORMAT_DEFAULT ? cfg->format : ji.format;
  b->hooks = (kiln__batch_hooks){calloc, name_hash, kiln_completion_next};
  /* the job's output layout where cfg leaves it open */
  b->cfg.exr_half = cfg->exr_half || ji.exr_half;
  if (cfg->exr_compression == KILN_EXR_DEFAULT) b->cfg.exr_compression = ji.exr_compression;
  if (!cfg->tar_frames) b->cfg.tar_frames = ji.tar_frames;
  b->exr = kiln__exr_opts_of(&b->cfg);
  if (b->cfg.tar_frames && b->cfg.claim) {
    kiln__say(msg, msgcap, "tar shards group a run's frames in order: not with claiming");
    free(b);
    return KILN_EINVAL;
  }
  snprintf(b->out_dir, sizeof b->out_dir, "%s", cfg->out_dir && *cfg->out_dir ? cfg->out_dir : ".");
  kiln_scene_get_info(kiln_job_scene(job), &b->info);
  b->width = cfg->width ? cfg->width : b->info.width;
  b->height = cfg->height ? cfg->height : b->info.height;
  char m[1024];
  int rc;
  /* the job's template stays inside out_dir always; the caller's own only unless it says so */
  if (kiln__outname_check(b->tmpl, m, sizeof m) != 0 ||
      (!outside_allowed(b) && kiln__outname_confined(b->tmpl, m, sizeof m) != 0)) {
    kiln__say(msg, msgcap, "%s", m);
    free(b);
    *tmpl_err = true;
    return KILN_EINVAL;
  }
  if ((rc = check_template(b, m, sizeof m))) {
    kiln__say(msg, msgcap, "%s", m);
    free(b);
    *tmpl_err = true;
    return rc;
  }
  if ((rc = kiln__derive_check(job, b->passes, msg, msgcap)) ||
      ((b->passes & (KILN_PASS_FLOW_FWD | KILN_PASS_FLOW_BWD)) && /* occlusion tests */
       (rc = kiln__derive_cache_new(cfg->pool, &b->derive)))) {
    free(b);
    return rc;
  }
  if (confined(cfg, "contact sheet", cfg->contact_sheet, msg, msgcap) ||
      confined(cfg, "manifest", cfg->manifest, msg, msgcap)) {
    free(b);
    return KILN_EINVAL;
  }
  pthread_mutex_init(&b->mu, NULL);
  atomic_init(&b->stop, 0);
  *out = b;
  return 0;
}

int kiln_batch_create(kiln_job *job, const kiln_batch_config *cfg, kiln_batch **out,
                      kiln_error_detail *err) {
  return kiln__batch_open(job, cfg, true, out, err);
}

int kiln__batch_open(kiln_job *job, const kiln_batch_config *cfg, bool to_render,
                     kiln_batch **out, kiln_error_detail *err) {
  kiln_error_detail dummy;
  if (!err) err = &dummy;
  memset(err, 0, sizeof *err);
  if (out) *out = NULL;
  bool tmpl_err = false;
  int rc = create(job, cfg, to_render, out, err->message, sizeof err->message, &tmpl_err);
  if (rc && tmpl_err) {
    if (cfg->output) snprintf(err->path, sizeof err->path, "output");
    else kiln__job_locate_output(job, err);
  }
  return err->code = rc;
}

void kiln__batch_set_hooks(kiln_batch *b, const kiln__batch_hooks *h) { b->hooks = *h; }
void kiln__batch_null_kernel(kiln_batch *b) { b->null_kernel = true; }

void kiln__batch_outputs(const kiln_batch *b, unsigned *passes, kiln_format *format,
                         const char **out_dir, const char **tmpl) {
  *passes = b->passes, *format = b->format, *out_dir = b->out_dir, *tmpl = b->tmpl;
}

kiln__selection *kiln__batch_selection(kiln_batch *b) { return &b->sel; }
uint32_t kiln__batch_tar_frames(const kiln_batch *b) { return b->cfg.tar_frames; }
kiln_job *kiln__batch_job(kiln_batch *b) { return b->job; }

void kiln_batch_stop(kiln_batch *b) { atomic_store_explicit(&b->stop, 1, memory_order_relaxed); }

static void names_clear(kiln_batch *b) {
  for (size_t i = 0; i < b->names_cap; i++) free(b->names[i]), b->names[i] = NULL;
  b->nnames = 0;
}

void kiln_batch_destroy(kiln_batch *b) {
  if (!b) return;
  kiln_renderer_destroy(b->shared);
  kiln__derive_cache_free(b->derive);
  kiln__writer_close(b->out);
  if (b->thumbs)
    for (size_t i = 0; i < b->ncells; i++) free(b->thumbs[i]);
  free(b->thumbs);
  names_clear(b);
  free(b->names);
  pthread_mutex_destroy(&b->mu);
  free(b);
}

/* ---- output names ----------------------------------------------------------------------------- */

/* Whether files may go outside out_dir: only through a template and contact sheet the caller
 * gives itself, with allow_outside_out_dir; never through the job's template. */
static bool outside_allowed(const kiln_batch *b) {
  return b->cfg.output && b->cfg.allow_outside_out_dir;
}

/* The path of pass pi of frame fr into out. 0, or an error with msg. */
int kiln__batch_pass_name(const kiln_batch *b, const kiln_job_frame *fr, int pi, char *rel,
                          size_t cap, char *msg, size_t msgcap) {
  kiln__outname_vars v = {fr->frame, fr->name, kiln__slot_name(pi), kiln__pass_ext(b->format, pi),
                          fr->index};
  int rc = kiln__outname_expand(b->tmpl, &v, rel, cap, msg, msgcap);
  if (rc) return rc;
  if (!outside_allowed(b) && !kiln__path_inside(rel)) { /* kiln__outname_confined says never */
    kiln__say(msg, msgcap, "output name \"%.300s\" would be outside the output folder", rel);
    return KILN_EINVAL;
  }
  return 0;
}

int kiln__batch_pass_path(const kiln_batch *b, const kiln_job_frame *fr, int pi, char *out, size_t cap,
                     char *msg, size_t msgcap) {
  char rel[PATH_MAX];
  int rc = kiln__batch_pass_name(b, fr, pi, rel, sizeof rel, msg, msgcap);
  if (rc) return rc;
  int n =
      rel[0] == '/' ? snprintf(out, cap, "%s", rel) : snprintf(out, cap, "%s/%s", b->out_dir, rel);
  if (n < 0 || (size_t)n >= cap) {
    kiln__say(msg, msgcap, "output path too long: %s/%s", b->out_dir, rel);
    return KILN_EINVAL;
  }
  return 0;
}

/* The path of the tar that holds the frame of rank r (tar mode) into out. */
static int tar_path(const kiln_batch *b, uint64_t r, char *out, size_t cap, char *msg,
                    size_t msgcap) {
  char name[64];
  kiln__tar_name(b->sel.shard, b->sel.shards, r / b->cfg.tar_frames, name, sizeof name);
  if (snprintf(out, cap, "%s/%s", b->out_dir, name) >= (int)cap) {
    kiln__say(msg, msgcap, "output path too long: %s/%s", b->out_dir, name);
    return KILN_EINVAL;
  }
  return 0;
}

/* The files a frame gets: 1 (its tar) in tar mode, else one a slot. */
static int file_count(const kiln_batch *b) {
  int files[NPASS];
  return b->cfg.tar_frames ? 1 : kiln__frame_files(b->format, b->passes, files);
}

/* How many of frame fr's output files exist (and the first that does, into first); the frame's
 * tar in tar mode (r: its rank). */
static int existing_outputs(const kiln_batch *b, const kiln_job_frame *fr, uint64_t r, int *n,
                            char *first, size_t cap, char *msg, size_t msgcap) {
  *n = 0;
  if (b->cfg.tar_frames) {
    char path[PATH_MAX];
    int rc = tar_path(b, r, path, sizeof path, msg, msgcap);
    if (!rc && access(path, F_OK) == 0) snprintf(first, cap, "%s", path), *n = 1;
    return rc;
  }
  int files[NPASS], nf = kiln__frame_files(b->format, b->passes, files);
  for (int i = 0; i < nf; i++) {
    int pi = files[i];
    char path[PATH_MAX];
    int rc = kiln__batch_pass_path(b, fr, pi, path, sizeof path, msg, msgcap);
    if (rc) return rc;
    if (access(path, F_OK) == 0) {
      if (*n == 0) snprintf(first, cap, "%s", path);
      (*n)++;
    }
  }
  return 0;
}

/* Two frames never share a file: the template is expanded for frames whose numbers, positions
 * and names all differ, chosen where bucketing ({frame//10}) and numbers run together
 * ({frame}{frame//10}: 1 and 10 give "10" and "101") would collide, and every pair must differ. A
 * template with an undivided {frame}, {index} or {name} passes (a list's names are checked one by
 * one as frames are issued); one whose every field is divided, or that has none, fails on frames
 * 0 and 1. */
static int frames_apart(const struct kiln_batch *b, char *msg, size_t msgcap) {
  static const long frames[] = {0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 1001, -1, -10, -1000};
  enum { N = sizeof frames / sizeof frames[0] };
  char names[N][16], *got[N];
  int rc = 0, a = -1, b2 = -1;
  bool all_one = true;
  for (int i = 0; i < N; i++) got[i] = NULL;
  for (int i = 0; i < N && !rc; i++) {
    snprintf(names[i], sizeof names[i], "n%d", i);
    kiln__outname_vars v = {frames[i], names[i], "color", kiln__pass_ext(b->format, 0),
                            (uint64_t)i};
    char e[PATH_MAX];
    rc = kiln__outname_expand(b->tmpl, &v, e, sizeof e, msg, msgcap);
    if (!rc && !(got[i] = strdup(e))) rc = KILN_ENOMEM;
    for (int j = 0; j < i && !rc && a < 0; j++)
      if (!strcmp(got[i], got[j])) a = j, b2 = i;
    if (!rc && i > 0 && strcmp(got[i], got[0])) all_one = false;
  }
  if (!rc && a >= 0 && all_one)
    kiln__say(msg, msgcap,
              "neither {frame}, {index} nor {name}: every frame would write the same file; "
              "template \"%.100s\"",
              b->tmpl);
  else if (!rc && a >= 0)
    kiln__say(msg, msgcap,
              "frames %ld and %ld would write one file \"%.100s\": a name needs {frame}, "
              "{index} or {name} undivided; template \"%.100s\"",
              frames[a], frames[b2], got[b2], b->tmpl);
  if (!rc && a >= 0) rc = KILN_EINVAL;
  for (int i = 0; i < N; i++) free(got[i]);
  return rc;
}

/* The template must give every pass of a frame its own file, every frame its own files (when the job
 * has several), and each file the extension of what it holds when the template does not use {ext}:
 * checked by expanding it, so escaped braces ({{pass}}) cannot fool the check. */
static int check_template(const struct kiln_batch *b, char *msg, size_t msgcap) {
  char x[PATH_MAX], y[PATH_MAX];
  int last = -1;
  int files[NPASS], nf = kiln__frame_files(b->format, b->passes, files);
  for (int i = 0; i < nf; i++) {
    int pi = files[i];
    kiln__outname_vars v = {0, "a", kiln__slot_name(pi), kiln__pass_ext(b->format, pi), 0};
    int rc = kiln__outname_expand(b->tmpl, &v, x, sizeof x, msg, msgcap);
    if (rc) return rc;
    const char *dot = strrchr(x, '.'), *ext = kiln__pass_ext(b->format, pi);
    if (!strstr(b->tmpl, "{ext}") && (!dot || strcmp(dot + 1, ext) != 0)) {
      kiln__say(msg, msgcap,
                "the %s pass is written as .%s but the template names it \"%.100s\" (use {ext}); "
                "template \"%.100s\"",
                kiln__slot_name(pi), ext, x, b->tmpl);
      return KILN_EINVAL;
    }
    if (last >= 0) {
      kiln__outname_vars u = {0, "a", kiln__slot_name(last), kiln__pass_ext(b->format, last), 0};
      if ((rc = kiln__outname_expand(b->tmpl, &u, y, sizeof y, msg, msgcap))) return rc;
      if (strcmp(x, y) == 0) {
        kiln__say(msg, msgcap,
                  "the %s and %s passes would get one file (use {pass}); template \"%.100s\"",
                  kiln__pass_names[last], kiln__pass_names[pi], b->tmpl);
        return KILN_EINVAL;
      }
    }
    last = pi;
  }
  kiln_job_info ji;
  kiln_job_get_info(b->job, &ji);
  if (ji.count > 1) return frames_apart(b, msg, msgcap);
  return 0;
}

/* ---- the writer: convert, encode, write --------------------------------------------------------- */

/* The contact-sheet thumbnail of an image: 8-bit sRGB, box-filtered by b->thumb_f. */
static uint8_t *thumbnail(const kiln_batch *b, const kiln_image *img) {
  kiln_image_info ii;
  kiln_image_get_info(img, &ii);
  int32_t w = ii.width, h = ii.height;
  if (w != b->width || h != b->height) return NULL;
  size_t n = (size_t)w * (size_t)h;
  uint8_t *full = malloc(n * 3), *t = malloc((size_t)b->thumb_w * (size_t)b->thumb_h * 3);
  if (full && t) {
    kiln__linear_to_srgb(ii.color, n, b->info.exposure, b->info.filmic, KILN__PIX_U8, full);
    kiln__box_downscale(full, w, h, b->thumb_f, t);
  } else {
    free(t);
    t = NULL;
  }
  free(full);
  return t;
}

static void release_own(frame_ctx *c) {
  kiln_scene_destroy(c->scene);
  c->scene = NULL;
}

/* gt's names and categories borrowed from the job's scene js instead of the frame's own, which
 * goes with the frame's renderer: overrides move objects, never add, remove or rename them, so
 * object ids are the job's. */
static void rebind_names(kiln__frame_gt *gt, const kiln__scene *js) {
  for (size_t k = 0; k < gt->n; k++) {
    kiln__gt_instance *g = &gt->inst[k];
    bool in = g->object_id >= 1 && g->object_id <= js->nobjects;
    g->name = in ? js->object_names[g->object_id - 1] : NULL;
    g->category = in && js->object_category ? js->object_category[g->object_id - 1] : NULL;
    g->category_id = in && js->object_category_id ? js->object_category_id[g->object_id - 1] : 0;
  }
}

static int file_name(const kiln_batch *b, const kiln_job_frame *fr, uint64_t r, int pi, char *rel,
                     size_t cap, char *msg, size_t msgcap);

/* Whether the writer of a frame with overrides needs that frame's own scene: annotations and the
 * derived passes read its instance table. */
static bool needs_scene(const kiln_batch *b) { return b->annotate || (b->passes >> KILN__NPLANE); }

/* Frame c's scene into c->scene when the frame has overrides and it is not there yet: under
 * isolation a worker rendered it, so it is loaded here (the JSON and mesh files again, no BVH or
 * upload); otherwise prepare_task kept the one it rendered. Frames without overrides use the job's. */
static int own_scene(frame_ctx *c, char *msg, size_t msgcap) {
  if (!c->patched || c->scene) return 0;
  kiln_error_detail err;
  int rc = kiln_job_frame_scene(c->b->job, &c->fr, &err, &c->scene);
  if (rc) {
    char m[1200];
    kiln__say(msg, msgcap, "the frame's scene: %s", kiln_error_detail_format(&err, m, sizeof m));
  }
  return rc;
}

/* Frame c's ground truth from its image (W, once the passes are written; own_scene has run), and
 * the dataset writer's share of it. */
static int annotate_frame(frame_ctx *c, const kiln_image *img, char *msg, size_t msgcap) {
  kiln_batch *b = c->b;
  kiln_image_info ii;
  kiln_image_get_info(img, &ii);
  const kiln_scene *s = c->scene ? c->scene : kiln_job_scene(b->job);
  kiln__frame_gt_free(&c->gt);
  c->has_gt = false;
  int rc = kiln__annotate(&s->data, &c->fr.camera, ii.width, ii.height, ii.instance_id,
                          kiln__dataset_masks(b->cfg.writer), &c->gt, msg, msgcap);
  if (rc) return rc;
  c->has_gt = true;
  if (s != kiln_job_scene(b->job)) rebind_names(&c->gt, &kiln_job_scene(b->job)->data);
  char color[PATH_MAX]; /* the file holding the colour: the pass's, the layers', a tar member */
  int slot = b->format == KILN_FORMAT_EXR_MULTI ? KILN__LAYERS : 0;
  if (b->dataset && !(rc = file_name(b, &c->fr, c->rank, slot, color, sizeof color, msg, msgcap)))
    rc = kiln__dataset_frame(b->dataset, &c->fr, color, &c->gt, img, msg, msgcap);
  return rc;
}

/* Encodes slot pi of frame c's image (timing the conversion and the encoding). */
static int encode_timed(frame_ctx *c, const kiln_image *img, void *const derived[NPASS], int pi,
                        void **data, size_t *len, double *conv_s, double *enc_s, char *msg,
                        size_t msgcap) {
  kiln_batch *b = c->b;
  double te = kiln__now(), tc = *conv_s;
  int rc = kiln__encode_slot(b->format, b->info.exposure, b->info.filmic, b->exr, b->passes, img,
                             derived, pi, data, len, conv_s, msg, msgcap);
  *enc_s += kiln__now() - te - (*conv_s - tc);
  return rc;
}

/* Frame c's files, each written atomically where the template puts it. */
static int write_files(frame_ctx *c, const kiln_image *img, void *const derived[NPASS],
                       double *conv_s, double *enc_s, double *write_s, char *msg, size_t msgcap) {
  kiln_batch *b = c->b;
  int files[NPASS], nf = kiln__frame_files(b->format, b->passes, files), rc = 0;
  char paths[NPASS][PATH_MAX];
  kiln__wfile out[NPASS];
  int nout = 0;
  for (int i = 0; i < nf && !rc; i++) {
    int pi = files[i];
    char *path = paths[i];
    rc = kiln__batch_pass_path(b, &c->fr, pi, path, PATH_MAX, msg, msgcap);
    if (rc) break;
    char *slash = strrchr(path, '/');
    if (slash && slash != path) { /* templates may name sub-folders */
      *slash = 0;
      int e = kiln__make_dirs(path, 0777);
      *slash = '/';
      if (e) {
        kiln__say(msg, msgcap, "cannot create the folder of %s: %s", path, strerror(e));
        rc = KILN_EIO;
        break;
      }
    }
    void *data = NULL;
    size_t len = 0;
    if ((rc = encode_timed(c, img, derived, pi, &data, &len, conv_s, enc_s, msg, msgcap))) break;
    out[nout++] = (kiln__wfile){path, data, len};
  }
  if (!rc) { /* every file of the frame at once (writer.c) */
    double tw = kiln__now();
    rc = kiln__writer_write(b->out, out, nout, b->cfg.durable, msg, msgcap);
    *write_s += kiln__now() - tw;
  }
  for (int i = 0; i < nout; i++) {
    if (!rc) c->files++, c->bytes += out[i].len;
    free((void *)out[i].data);
  }
  return rc;
}

/* The name of frame fr's slot pi inside its tar: <name>.<pass>.<ext> (WebDataset's key is the
 * part before the first dot, so the name must have none). */
static int tar_member(const kiln_batch *b, const kiln_job_frame *fr, int pi, char *out, size_t cap,
                      char *msg, size_t msgcap) {
  if (strchr(fr->name, '.')) {
    kiln__say(msg, msgcap,
              "the name \"%s\" holds a '.': a tar shard's key (the part of a member's name "
              "before its first dot) must not",
              fr->name);
    return KILN_EINVAL;
  }
  snprintf(out, cap, "%s.%s.%s", fr->name, kiln__slot_name(pi), kiln__pass_ext(b->format, pi));
  return 0;
}

/* Frame c's files as members of its tar: every slot encoded first, then appended together, so a
 * frame that fails leaves nothing of itself in the tar. */
static int write_tar_members(frame_ctx *c, const kiln_image *img, void *const derived[NPASS],
                             double *conv_s, double *enc_s, double *write_s, char *msg,
                             size_t msgcap) {
  kiln_batch *b = c->b;
  int files[NPASS], nf = kiln__frame_files(b->format, b->passes, files), rc = 0;
  char names[NPASS][KILN__PATH_CAP], *np[NPASS];
  void *data[NPASS] = {0};
  size_t len[NPASS] = {0};
  for (int i = 0; i < nf && !rc; i++) {
    np[i] = names[i];
    rc = tar_member(b, &c->fr, files[i], names[i], sizeof names[i], msg, msgcap);
    if (!rc)
      rc = encode_timed(c, img, derived, files[i], &data[i], &len[i], conv_s, enc_s, msg, msgcap);
  }
  if (!rc) {
    double tw = kiln__now();
    rc = kiln__tars_add(b->tars, c->rank, np, data, len, nf, msg, msgcap);
    *write_s += kiln__now() - tw;
  }
  for (int i = 0; i < nf; i++) {
    if (!rc) c->files++, c->bytes += len[i];
    free(data[i]);
  }
  return rc;
}

static int writer_task(void *arg, void **result) {
  frame_ctx *c = arg;
  kiln_batch *b = c->b;
  *result = NULL;
  double t0 = kiln__now();
  double render_s = t0 - c->t_render, conv_s = 0, enc_s = 0, write_s = 0;
  void *v = NULL;
  kiln_future_result(c->render, 0, &v);
  const kiln_image *img = v;
  if (c->patched && !b->iso) { /* Rp's value is the frame's render future R */
    v = NULL;
    kiln_future_result((kiln_future *)img, 0, &v);
    img = v;
  }
  char msg[1024] = "";
  c->files = c->bytes = 0;
  void *derived[NPASS] = {NULL};
  int rc = needs_scene(b) ? own_scene(c, msg, sizeof msg) : 0;
  if (!rc && (b->passes >> KILN__NPLANE)) { /* the passes computed from the planes (derive.c) */
    double td = kiln__now();
    rc = kiln__derive_frame(b->job, &c->fr, c->scene, img, b->passes, b->derive, derived, msg,
                            sizeof msg);
    conv_s += kiln__now() - td;
  }
  if (!rc)
    rc = b->tars ? write_tar_members(c, img, derived, &conv_s, &enc_s, &write_s, msg, sizeof msg)
                 : write_files(c, img, derived, &conv_s, &enc_s, &write_s, msg, sizeof msg);
  kiln__derived_free(derived);
  if (!rc && b->annotate) rc = annotate_frame(c, img, msg, sizeof msg);
  if (!rc && b->thumbs && c->sel % b->sheet_every == 0 && c->sel / b->sheet_every < b->ncells)
    b->thumbs[c->sel / b->sheet_every] = thumbnail(b, img);
  release_own(c);
  pthread_mutex_lock(&b->mu);
  b->render_s += render_s, b->readback_s += conv_s, b->encode_s += enc_s, b->write_s += write_s;
  pthread_mutex_unlock(&b->mu);
  if (rc) return kiln_task_fail(rc, "%s", msg[0] ? msg : kiln_strerror(rc));
  return 0;
}

/* W as a pool fiber: it waits for the render, and for its files' writes, without holding a worker.
 * A failed render fails it with KILN_EDEPENDENCY, as kiln_submit_after does (outcome() then
 * reports the render's own error). */
static int writer_fiber(void *arg, void **result) {
  frame_ctx *c = arg;
  *result = NULL;
  int rc = kiln_await(c->render, -1, NULL);
  if (rc) return kiln_task_fail(KILN_EDEPENDENCY, "the render failed: %s", kiln_strerror(rc));
  return writer_task(arg, result);
}

/* Whether W runs as a fiber: when its writes go through the engine, and nothing it runs waits on
 * the pool while holding a lock (building the derived passes' tracer does: a fiber suspended
 * there could leave every worker blocked on that lock), and no tar is written (appends under a
 * lock, no engine). */
static bool writer_as_fiber(const kiln_batch *b) {
  return kiln__writer_async(b->out) && !(b->passes >> KILN__NPLANE) && !b->tars;
}

/* W's stack: encoders and the writer's buffers of names; only the pages touched are resident. */
enum { WRITER_STACK = 1 << 20 };

/* ---- preparing frames with scene overrides ------------------------------------------------------ */

static void release_future(void *v) { kiln_future_release(v); }

/* R's done-callback: settles Rp with R. Resolving Rp lets the writer run and the driver free c, so
 * this holds its own reference to Rp and touches nothing of c after settling it. */
static void on_render_done(kiln_future *r, void *arg) {
  frame_ctx *c = arg;
  kiln_future *rp = kiln_future_retain(c->render);
  const char *m = NULL;
  int rc = kiln_future_result(r, 0, NULL);
  if (rc == 0) {
    kiln_promise_resolve_owned(rp, kiln_future_retain(r), release_future);
  } else {
    kiln_future_error(r, 0, &m);
    kiln_promise_reject(rp, rc, "%s", m ? m : kiln_strerror(rc));
  }
  kiln_future_release(rp);
}

/* The renderer's planes a frame of b needs: those of its passes, the instance ids for
 * annotations, the depth for BOP's depth images (dataset writers annotate). */
static unsigned frame_planes(const kiln_batch *b) {
  unsigned extra = b->annotate ? KILN_PASS_INSTANCE : 0u;
  if (b->cfg.writer == KILN_WRITER_BOP) extra |= KILN_PASS_DEPTH;
  if (b->passes & KILN_PASS_UV) extra |= KILN_PASS_ID; /* tells background from uv (0, 0) */
  return kiln__planes_of(b->passes | extra);
}

static void fill_frame_config(const kiln_batch *b, const kiln_job_frame *fr,
                              kiln_frame_config *fc) {
  fc->planes = frame_planes(b);
  fc->camera = &fr->camera;
  fc->seed = fr->seed;
  fc->frame = (uint32_t)fr->frame;
  fc->width = b->cfg.width, fc->height = b->cfg.height;
  fc->spp = b->cfg.spp;
}

/* The task of a frame with overrides: its scene, a renderer on the least busy device, the render.
 * It settles Rp (through on_render_done once the render is done), holding its own reference to Rp,
 * and touches nothing of c once Rp may be settled. */
static int prepare_task(void *arg, void **result) {
  frame_ctx *c = arg;
  kiln_batch *b = c->b;
  kiln_future *rp = kiln_future_retain(c->render);
  *result = NULL;
  double t0 = kiln__now();
  kiln_error_detail err;
  kiln_scene *scene = NULL;
  kiln_future *r = NULL;
  int rc = kiln_job_frame_scene(b->job, &c->fr, &err, &scene);
  if (rc) {
    char m[1200];
    kiln_promise_reject(rp, rc, "%s", kiln_error_detail_format(&err, m, sizeof m));
    goto out;
  }
  /* the job's renderer renders the frame's scene as a variant of the job's: it uploads what
   * differs (materials, lights, a moved object's geometry), on its least busy device */
  kiln_frame_config fc;
  kiln_frame_config_default(b->shared, &fc);
  fill_frame_config(b, &c->fr, &fc);
  c->t_render = kiln__now();
  rc = kiln_renderer_submit_scene(b->shared, scene, &fc, &r);
  if (needs_scene(b) && !rc) c->scene = scene; /* for W (own_scene); released by release_own */
  else kiln_scene_destroy(scene);
  pthread_mutex_lock(&b->mu);
  b->prepare_s += kiln__now() - t0;
  pthread_mutex_unlock(&b->mu);
  if (rc) {
    kiln_promise_reject(rp, rc, "cannot prepare the frame: %s", kiln_strerror(rc));
    goto out;
  }
  if (kiln_future_on_done(r, on_render_done, c) != 0) { /* settle Rp here, once R is done */
    kiln_future_result(r, -1, NULL);
    on_render_done(r, c);
  }
out:
  if (r) kiln_future_release(r);
  kiln_future_release(rp);
  return 0;
}

/* ---- the driver --------------------------------------------------------------------------------- */

static void ctx_free(frame_ctx *c) {
  if (!c) return;
  if (c->writer) kiln_future_release(c->writer);
  if (c->render) kiln_future_release(c->render);
  release_own(c);
  kiln__frame_gt_free(&c->gt);
  kiln_job_frame_clear(&c->fr);
  free(c);
}

/* Issues frame c into the pipeline: c->writer is its last future. */
static int issue(kiln_batch *b, frame_ctx *c, char *msg, size_t msgcap) {
  if (c->writer) kiln_future_release(c->writer);
  if (c->render) kiln_future_release(c->render);
  c->writer = c->render = NULL;
  c->t_render = kiln__now();
  int rc;
  if (b->iso) { /* a worker process renders it, overrides and all */
    if ((rc = kiln__isolate_submit(b->iso, &c->fr, &c->render))) {
      kiln__say(msg, msgcap, "cannot queue the frame: %s", kiln_strerror(rc));
      return rc;
    }
  } else if (c->patched) {
    if ((rc = kiln_promise_create(&c->render))) return rc;
    kiln_future *p = NULL;
    if ((rc = kiln_submit(b->cfg.pool, prepare_task, c, &p))) {
      kiln_promise_reject(c->render, rc, "cannot submit: %s", kiln_strerror(rc));
      return rc;
    }
    kiln_future_release(p);
  } else {
    kiln_frame_config fc;
    kiln_frame_config_default(b->shared, &fc);
    fill_frame_config(b, &c->fr, &fc);
    double t0 = kiln__now();
    rc = kiln_renderer_submit(b->shared, &fc, &c->render);
    pthread_mutex_lock(&b->mu);
    b->prepare_s += kiln__now() - t0;
    pthread_mutex_unlock(&b->mu);
    if (rc) {
      kiln__say(msg, msgcap, "cannot submit the render: %s", kiln_strerror(rc));
      return rc;
    }
  }
  rc = writer_as_fiber(b)
           ? kiln_fiber_spawn(b->cfg.pool, writer_fiber, c, WRITER_STACK, &c->writer)
           : kiln_submit_after(b->cfg.pool, &c->render, 1, writer_task, c, &c->writer);
  if (rc) kiln__say(msg, msgcap, "cannot submit the writer: %s", kiln_strerror(rc));
  return rc;
}

static int write_contact_sheet(kiln_batch *b, char *msg, size_t msgcap) {
  size_t n = 0;
  const uint8_t **imgs = malloc((b->ncells ? b->ncells : 1) * sizeof *imgs);
  if (!imgs) return KILN_ENOMEM;
  for (size_t i = 0; i < b->ncells; i++)
    if (b->thumbs[i]) imgs[n++] = b->thumbs[i];
  int rc = 0;
  if (n == 0) {
    kiln__say(msg, msgcap, "contact sheet: no frame was written");
    rc = KILN_EINVAL;
  }
  uint8_t *sheet = NULL;
  int sw = 0, sh = 0;
  int thumb = b->thumb_w > b->thumb_h ? b->thumb_w : b->thumb_h;
  if (!rc) rc = kiln__contact_sheet(imgs, n, b->thumb_w, b->thumb_h, thumb, 0, &sheet, &sw, &sh);
  free(imgs);
  void *png = NULL;
  size_t len = 0;
  if (!rc) {
    kiln__raster r = {sw, sh, 3, KILN__PIX_U8, sheet, 0};
    rc = kiln__encode_png(&r, 0, &png, &len);
  }
  free(sheet);
  if (!rc) {
    char path[PATH_MAX];
    const char *cs = b->cfg.contact_sheet;
    if (snprintf(path, sizeof path, cs[0] == '/' ? "%s%s" : "%s/%s", cs[0] == '/' ? "" : b->out_dir,
                 cs) >= (int)sizeof path) {
      kiln__say(msg, msgcap, "contact sheet path too long");
      rc = KILN_EINVAL;
    } else {
      rc = kiln__write_atomic(path, png, len, b->cfg.durable, msg, msgcap);
    }
  }
  free(png);
  return rc;
}

/* Waits until nothing of frame c can run any more (its writer, else its render or prepare task),
 * then frees it. For frames that failed before or while entering the pipeline. */
static void settle_and_free(frame_ctx *c) {
  if (c->writer) kiln_future_result(c->writer, -1, NULL);
  if (c->render) kiln_future_result(c->render, -1, NULL);
  ctx_free(c);
}

/* The thumbnail of a frame skipped by --resume, from its colour file when that is a PNG, JPEG or
 * HDR (NULL otherwise: its cell stays empty). */
static uint8_t *thumbnail_of_file(const kiln_batch *b, const kiln_job_frame *fr) {
  char path[PATH_MAX];
  if (b->format == KILN_FORMAT_EXR || b->format == KILN_FORMAT_NPY ||
      b->format == KILN_FORMAT_EXR_MULTI || b->cfg.tar_frames ||
      kiln__batch_pass_path(b, fr, 0, path, sizeof path, NULL, 0))
    return NULL;
  kiln__texture t = {0};
  char m[256];
  bool hdr = b->format == KILN_FORMAT_HDR;
  if (kiln__texture_load(path, hdr, &t, m, sizeof m) != 0) return NULL;
  uint8_t *out = NULL;
  size_t n = (size_t)t.width * (size_t)t.height;
  uint8_t *full = t.width == b->width && t.height == b->height ? malloc(n * 3) : NULL;
  if (full && (out = malloc((size_t)b->thumb_w * (size_t)b->thumb_h * 3))) {
    /* 8-bit files hold sRGB already tone-mapped: back to 8-bit as they were; .hdr is linear */
    kiln__linear_to_srgb(t.rgb, n, hdr ? b->info.exposure : 0, hdr && b->info.filmic, KILN__PIX_U8,
                         full);
    kiln__box_downscale(full, b->width, b->height, b->thumb_f, out);
  }
  free(full);
  free(t.rgb);
  return out;
}

static uint64_t peak_rss(void) {
  struct rusage ru;
  return getrusage(RUSAGE_SELF, &ru) == 0 ? (uint64_t)ru.ru_maxrss * 1024u : 0;
}

/* Sweeps the folders frame fr's files go to (each once in a row: frames usually share one). */
static void sweep_for(kiln_batch *b, const kiln_job_frame *fr) {
  int files[NPASS], nf = kiln__frame_files(b->format, b->passes, files);
  if (b->cfg.tar_frames) files[0] = -1, nf = 1; /* the tars' folder */
  for (int i = 0; i < nf; i++) {
    int pi = files[i];
    char path[PATH_MAX];
    if (pi < 0 && snprintf(path, sizeof path, "%s/", b->out_dir) >= (int)sizeof path) return;
    if (pi >= 0 && kiln__batch_pass_path(b, fr, pi, path, sizeof path, NULL, 0)) return;
    char *slash = strrchr(path, '/');
    if (!slash) continue;
    *slash = 0;
    if (strcmp(path, b->swept) == 0) continue;
    snprintf(b->swept, sizeof b->swept, "%s", path);
    kiln__sweep_temporaries(path);
  }
}

/* ---- output names seen in this run: two frames must not write one file -------------------------- */

/* The paths themselves are kept (a set of copies compared with strcmp), so two different names
 * can never be taken for one, however their hashes fall. */
static size_t name_slot(const kiln_batch *b, char *const *t, size_t cap, const char *path) {
  size_t j = (size_t)b->hooks.name_hash(path) & (cap - 1);
  while (t[j] && strcmp(t[j], path) != 0) j = (j + 1) & (cap - 1);
  return j;
}

/* Adds path to the set: 0, KILN_EINVAL when it was there (another frame of this run), or
 * KILN_ENOMEM (the set is as it was). */
static int names_add(kiln_batch *b, const char *path) {
  if (2 * (b->nnames + 1) > b->names_cap) {
    size_t cap = b->names_cap ? 2 * b->names_cap : 1024;
    char **t = b->hooks.alloc(cap, sizeof *t);
    if (!t) return KILN_ENOMEM;
    for (size_t i = 0; i < b->names_cap; i++)
      if (b->names[i]) t[name_slot(b, t, cap, b->names[i])] = b->names[i];
    free(b->names);
    b->names = t, b->names_cap = cap;
  }
  size_t j = name_slot(b, b->names, b->names_cap, path), n = strlen(path) + 1;
  if (b->names[j]) return KILN_EINVAL;
  if (!(b->names[j] = b->hooks.alloc(n, 1))) return KILN_ENOMEM;
  memcpy(b->names[j], path, n);
  b->nnames++;
  return 0;
}

/* The name of frame fr's slot pi relative to out_dir: the template's, or in tar mode
 * <tar>/<member> (r: the frame's rank). */
static int file_name(const kiln_batch *b, const kiln_job_frame *fr, uint64_t r, int pi, char *rel,
                     size_t cap, char *msg, size_t msgcap) {
  if (!b->cfg.tar_frames) return kiln__batch_pass_name(b, fr, pi, rel, cap, msg, msgcap);
  char tar[64], member[KILN__PATH_CAP];
  kiln__tar_name(b->sel.shard, b->sel.shards, r / b->cfg.tar_frames, tar, sizeof tar);
  int rc = tar_member(b, fr, pi, member, sizeof member, msg, msgcap);
  if (!rc && snprintf(rel, cap, "%s/%s", tar, member) >= (int)cap) {
    kiln__say(msg, msgcap, "output name too long: %s/%s", tar, member);
    rc = KILN_EINVAL;
  }
  return rc;
}

/* Checks that frame fr's files are not those of an earlier frame of this run, and adds them. */
static int check_unique(kiln_batch *b, const kiln_job_frame *fr, uint64_t r, char *msg,
                        size_t msgcap) {
  int files[NPASS], nf = kiln__frame_files(b->format, b->passes, files);
  for (int i = 0; i < nf; i++) {
    int pi = files[i];
    char path[PATH_MAX];
    int rc = file_name(b, fr, r, pi, path, sizeof path, msg, msgcap);
    if (rc) return rc;
    rc = names_add(b, path);
    if (rc == KILN_EINVAL)
      kiln__say(msg, msgcap,
                "%s is also the output of an earlier frame (two images with one name?)", path);
    else if (rc == KILN_ENOMEM)
      kiln__say(msg, msgcap, "out of memory checking that %s is no other frame's output", path);
    if (rc) return rc;
  }
  return 0;
}

/* ---- a run: begin, issue and collect, finish ------------------------------------------------------ */

typedef struct run_state {
  kiln_batch *b;
  kiln_batch_summary *sum;
  kiln_error_detail *err; /* the call's error (an error that stops the run) */
  double t0;
  size_t window, inflight;
  frame_ctx **slots; /* window entries, NULL where free */
  kiln_completion *comp;
  uint64_t sel;           /* frames issued so far */
  bool exhausted;         /* the job has no more frames (or cannot be read on) */
  int walks;              /* walks over the job so far (claiming may need several) */
  int lock_fd;            /* <out_dir>/.kiln.lock, locked for the run; -1 when not held */
  kiln__chunks *chunks;   /* claiming: the chunks; else NULL */
  kiln__manifest *manifest; /* the manifest being written; NULL: none */
  char m[1400];           /* a frame's message */
} run_state;

/* Frame fr's files (written or found complete) into the manifest. */
static void manifest_add(run_state *st, const kiln_job_frame *fr, uint64_t pos,
                         const kiln__frame_gt *gt) {
  kiln_batch *b = st->b;
  char files[NPASS][KILN__PATH_CAP], m[256];
  int slots[NPASS], ns = kiln__frame_files(b->format, b->passes, slots);
  uint64_t r = b->cfg.tar_frames ? kiln__selection_rank(&b->sel, pos) : 0;
  size_t n = 0;
  for (int i = 0; i < ns; i++)
    if (file_name(b, fr, r, slots[i], files[n], sizeof files[n], m, sizeof m) == 0) n++;
  kiln__manifest_add_record(st->manifest, fr, pos, files, n, gt);
}

/* Reports frame fr (position pos in the selection; UINT64_MAX: none) with status. in_flight: the
 * frame was counted in its chunk's frames in flight (claiming). */
static void report_at(run_state *st, const kiln_job_frame *fr, uint64_t pos, bool in_flight,
                      int status, const char *message, const kiln__frame_gt *gt) {
  kiln_batch_summary *s = st->sum;
  /* a done marker that cannot be written leaves the claim to expire when this run ends; whoever
   * takes the chunk then finds its files complete */
  if (st->chunks && pos != UINT64_MAX && status != 2)
    (void)kiln__chunks_finished(st->chunks, pos, in_flight, status == 0 || status == 1, st->m,
                                sizeof st->m);
  if (status == 0) s->written++;
  else if (status == 1 || status == 2) s->skipped++;
  else s->failed++;
  if (status == 2) s->elsewhere++;
  if (st->manifest && (status == 0 || status == 1)) manifest_add(st, fr, pos, gt);
  if (!st->b->cfg.progress) return;
  kiln_batch_event ev = {fr,         status,   message ? message : "", s->written, s->failed,
                         s->skipped, s->total, kiln__now() - st->t0};
  st->b->cfg.progress(st->b->cfg.progress_arg, &ev);
}

/* Tar mode: the frame of rank r is settled; its tar is finished when it was the last. A tar that
 * cannot be finished is reported as the failure of its last frame. */
static int settle_tar(run_state *st, uint64_t r) {
  if (!st->b->tars) return 0;
  return kiln__tars_settle(st->b->tars, r, st->m, sizeof st->m);
}

static void report(run_state *st, const frame_ctx *c, int status, const char *message) {
  char m[sizeof st->m];
  snprintf(m, sizeof m, "%s", message ? message : "");
  int trc = settle_tar(st, c->rank);
  if (trc && (status == 0 || status == 1)) status = trc, snprintf(m, sizeof m, "%s", st->m);
  report_at(st, &c->fr, c->pos, c->chunked, status, m, c->has_gt ? &c->gt : NULL);
}

static bool stopping(const kiln_batch *b) {
  return atomic_load_explicit(&b->stop, memory_order_relaxed) != 0;
}

static int fail(run_state *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(run_state *st, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(st->err->message, sizeof st->err->message, fmt, ap);
  va_end(ap);
  return code;
}

/* The contact sheet's cells for total selected frames. */
static int sheet_cells(kiln_batch *b, uint64_t total) {
  b->sheet_every = (total + SHEET_CELLS - 1) / SHEET_CELLS;
  b->ncells = (size_t)((total + b->sheet_every - 1) / b->sheet_every);
  int thumb = b->cfg.contact_thumb > 0 ? b->cfg.contact_thumb : 128;
  int big = b->width > b->height ? b->width : b->height;
  b->thumb_f = (big + thumb - 1) / thumb;
  b->thumb_w = b->width / b->thumb_f > 0 ? b->width / b->thumb_f : 1;
  b->thumb_h = b->height / b->thumb_f > 0 ? b->height / b->thumb_f : 1;
  b->thumbs = calloc(b->ncells, sizeof *b->thumbs);
  return b->thumbs ? 0 : KILN_ENOMEM;
}

static void thumbs_free(kiln_batch *b) {
  if (b->thumbs)
    for (size_t i = 0; i < b->ncells; i++) free(b->thumbs[i]);
  free(b->thumbs);
  b->thumbs = NULL, b->ncells = 0;
}

/* The processes of a sharded or claiming job share the output folder (lock.c). */
static bool shares_folder(const kiln_batch *b) { return b->cfg.claim || b->cfg.shards > 1; }

/* The claim folder of this selection: <out_dir>/.kiln-claims/<key>, the key a hash of what
 * decides which frames a chunk holds and what their files are (the job file's name, the
 * selection, chunk size, template, passes, format, size and samples), so that runs that would
 * write other files never share claims. The job's name, not its path: hosts mount the shared
 * folder in different places. */
static int open_chunks(run_state *st, uint64_t selected) {
  kiln_batch *b = st->b;
  const kiln_batch_config *cfg = &b->cfg;
  uint64_t h = KILN__FNV1A_SEED;
  long nums[] = {cfg->first, cfg->last,   cfg->step,       (long)cfg->chunk, (long)b->passes,
                 (long)b->format, (long)selected, (long)b->width, (long)b->height, (long)cfg->spp};
  const char *slash = strrchr(b->job->path, '/'), *job_name = slash ? slash + 1 : b->job->path;
  h = kiln__fnv1a(h, nums, sizeof nums);
  h = kiln__fnv1a(h, b->tmpl, strlen(b->tmpl));
  h = kiln__fnv1a(h, job_name, strlen(job_name));
  char dir[PATH_MAX];
  if (snprintf(dir, sizeof dir, "%s/.kiln-claims/%016llx", b->out_dir, (unsigned long long)h) >=
      (int)sizeof dir)
    return fail(st, KILN_EINVAL, "output path too long: %s/.kiln-claims", b->out_dir);
  return kiln__chunks_open(dir, selected, cfg->chunk, cfg->claim_timeout_s, &st->chunks,
                           st->err->message, sizeof st->err->message);
}

static int open_manifest(run_state *st) {
  kiln_batch *b = st->b;
  char path[PATH_MAX];
  const char *m = b->cfg.manifest;
  int n = m[0] == '/' ? snprintf(path, sizeof path, "%s", m)
                      : snprintf(path, sizeof path, "%s/%s", b->out_dir, m);
  if (n < 0 || n >= (int)sizeof path) return fail(st, KILN_EINVAL, "manifest path too long: %s", m);
  return kiln__manifest_open(path, &st->manifest, st->err->message, sizeof st->err->message);
}

/* ids.json into the output folder (every process of a sharded job writes the same bytes, each
 * atomically), and the dataset writer. */
static int open_annotations(run_state *st) {
  kiln_batch *b = st->b;
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s/ids.json", b->out_dir) >= (int)sizeof path)
    return fail(st, KILN_EINVAL, "output path too long: %s/ids.json", b->out_dir);
  int rc = kiln__ids_write(&kiln_job_scene(b->job)->data, &b->job->camera, b->width, b->height,
                           path, b->cfg.durable, st->err->message, sizeof st->err->message);
  if (rc || b->cfg.writer == KILN_WRITER_NONE) return rc;
  return kiln__dataset_open(b->cfg.writer, b->out_dir, b->shard_tag, &kiln_job_scene(b->job)->data,
                            b->cfg.durable, &b->dataset, st->err->message, sizeof st->err->message);
}

/* isolate: a worker process per lane of every device, each given its lane's device (by UUID). */
static int start_workers(run_state *st, size_t lanes) {
  kiln_batch *b = st->b;
  kiln__iso_setup *setups = calloc(lanes, sizeof *setups);
  if (!setups) return fail(st, KILN_ENOMEM, "out of memory");
  /* the batch's threads, shared out between the workers (each also has the driver's own) */
  int threads = kiln_pool_threads(b->cfg.pool);
  kiln__iso_setup base = {
      .magic = KILN__ISO_MAGIC,
      .width = b->width,
      .height = b->height,
      .spp = b->cfg.spp,
      .passes = frame_planes(b),
                          .threads = (int)(((size_t)threads + lanes - 1) / (lanes ? lanes : 1))};
  char m[512];
  (void)kiln__iso_parse_faults(b->cfg.faults, &base, m, sizeof m); /* checked at create */
  int rc = 0;
  if (!realpath(b->job->path, base.job) || !realpath(b->job->scene_path, base.scene))
    rc = fail(st, KILN_EIO, "cannot resolve the job's path for the workers: %s", strerror(errno));
  size_t n = 0;
  for (size_t i = 0; i < b->cfg.ndevs && !rc; i++) {
    kiln_gpu_device_stats ds;
    kiln_gpu_device_info di;
    kiln_gpu_device_get_stats(b->cfg.devs[i], &ds);
    kiln_gpu_device_get_info(b->cfg.devs[i], &di);
    for (uint32_t l = 0; l < (ds.lanes ? ds.lanes : 1) && n < lanes; l++) {
      setups[n] = base;
      memcpy(setups[n].device_uuid, di.device_uuid, sizeof di.device_uuid);
      setups[n++].device_index = di.index;
    }
  }
  if (!rc && (rc = kiln__isolate_start(setups, n, b->cfg.frame_timeout_s, b->cfg.recycle, &b->stop,
                                      &b->iso, st->err->message, sizeof st->err->message)))
    b->iso = NULL;
  free(setups);
  return rc;
}

/* Before any frame: the output folder, the job from its first frame, the number of frames
 * selected (from the frame numbers the job noted at load: the job is not read for it), the
 * window, the contact sheet's cells. */
static int run_begin(run_state *st) {
  kiln_batch *b = st->b;
  int rc = kiln__make_dirs(b->out_dir, 0777);
  if (rc)
    return fail(st, KILN_EIO, "cannot create the output folder %s: %s", b->out_dir, strerror(rc));
  if ((rc = kiln__lock_out_dir(b->out_dir, shares_folder(b), &st->lock_fd, st->err->message,
                                sizeof st->err->message)))
    return rc;
  b->swept[0] = 0;
  names_clear(b);
  thumbs_free(b);
  if ((rc = kiln_job_rewind(b->job)))
    return fail(st, rc, "cannot read the job again: %s", kiln_strerror(rc));
  kiln_job_info ji;
  kiln_job_get_info(b->job, &ji);
  uint64_t selected = kiln__selection_count(&b->sel, b->job);
  st->sum->total = kiln__selection_shard_total(&b->sel);
  if (kiln__selection_by_number(&b->sel) && selected == 0 && !stopping(b))
    return fail(st, KILN_EINVAL, "the frame selection matches none of the job's %llu frames",
                (unsigned long long)ji.count);
  if (b->cfg.claim && (rc = open_chunks(st, selected))) return rc;
  if (b->cfg.tar_frames &&
      (rc = kiln__tars_open(b->out_dir, b->sel.shard, b->sel.shards, b->cfg.tar_frames,
                            st->sum->total, b->cfg.durable, &b->tars, st->err->message,
                            sizeof st->err->message)))
    return rc;
  if (b->cfg.manifest && (rc = open_manifest(st))) return rc;
  if (!b->out) {
    kiln__writer_config wc;
    if ((rc = kiln__writer_config_env(&wc, st->err->message, sizeof st->err->message)) ||
        (rc = kiln__writer_open(&wc, b->cfg.pool, &b->out, st->err->message,
                                sizeof st->err->message)))
      return rc;
  }
  if (b->annotate && (rc = open_annotations(st))) return rc;
  size_t lanes = 0;
  for (size_t i = 0; i < b->cfg.ndevs; i++) {
    kiln_gpu_device_stats ds;
    kiln_gpu_device_get_stats(b->cfg.devs[i], &ds);
    lanes += ds.lanes ? ds.lanes : 1;
  }
  st->window = b->cfg.in_flight ? b->cfg.in_flight : 2 * lanes;
  /* and by bytes: a frame in flight holds device and read-back memory for its colour and AOV
   * planes, and an image of the planes (frames.c); large frames get fewer at once */
  uint64_t aovs = (uint64_t)__builtin_popcount(kiln__aov_groups(frame_planes(b)));
  uint64_t frame_bytes = (uint64_t)b->width * (uint64_t)b->height * (2 * 16 * (1 + aovs) + 56);
  uint64_t budget = b->cfg.in_flight_bytes ? b->cfg.in_flight_bytes : 1ull << 30;
  if (frame_bytes && st->window > budget / frame_bytes) st->window = (size_t)(budget / frame_bytes);
  if (st->window < 1) st->window = 1;
  if (b->cfg.contact_sheet && st->sum->total > 0 && (rc = sheet_cells(b, st->sum->total)))
    return fail(st, rc, "out of memory");
  if (!(st->slots = calloc(st->window, sizeof *st->slots)) ||
      (rc = kiln_as_completed(NULL, 0, -1, &st->comp)))
    return fail(st, rc ? rc : KILN_ENOMEM, "out of memory");
  return b->cfg.isolate ? start_workers(st, lanes) : 0;
}

/* Before the first selected frame is issued: nothing is written when its outputs exist and
 * neither resume nor overwrite says what to do; then the shared renderer, the job's scene on
 * every device. */
static int first_frame(run_state *st, const kiln_job_frame *fr, uint64_t pos) {
  kiln_batch *b = st->b;
  int rc;
  if (!b->cfg.resume && !b->cfg.overwrite) {
    int n = 0;
    char first[PATH_MAX] = "";
    if ((rc = existing_outputs(b, fr, kiln__selection_rank(&b->sel, pos), &n, first, sizeof first,
                               st->err->message,
                               sizeof st->err->message)))
      return rc;
    if (n)
      return fail(st, KILN_EINVAL,
                  "%s exists (use --overwrite to replace outputs, --resume to keep them)", first);
  }
  if (b->shared || b->iso) return 0;
  double t0 = kiln__now();
  kiln_renderer_config rcfg;
  kiln_renderer_config_default(&rcfg);
  rcfg.pool = b->cfg.pool;
  rcfg.scene_variants = true; /* frames with overrides render variants of the job's scene */
  rc = (b->null_kernel ? kiln__renderer_create_null : kiln_renderer_create)(
      kiln_job_scene(b->job), b->cfg.devs, b->cfg.ndevs, &rcfg, &b->shared);
  b->prepare_s += kiln__now() - t0;
  if (rc)
    return fail(st, rc, "cannot prepare the scene on the device%s: %s", b->cfg.ndevs > 1 ? "s" : "",
                kiln_strerror(rc));
  return 0;
}

static void take_slot(run_state *st, frame_ctx *c) {
  for (size_t i = 0; i < st->window; i++)
    if (!st->slots[i]) {
      st->slots[i] = c;
      break;
    }
  st->inflight++;
}

static void free_slot(run_state *st, frame_ctx *c) {
  for (size_t i = 0; i < st->window; i++)
    if (st->slots[i] == c) st->slots[i] = NULL;
  st->inflight--;
}

/* Frame fr (selected; moved into the pipeline or cleared) of the run: skipped when its files
 * exist under resume, failed when they are an earlier frame's, exist, or it cannot be issued. */
static void issue_frame(run_state *st, kiln_job_frame *fr, uint64_t pos) {
  kiln_batch *b = st->b;
  uint64_t sel = st->sel++;
  frame_ctx *c = b->hooks.alloc(1, sizeof *c);
  if (!c) {
    report_at(st, fr, pos, false, KILN_ENOMEM, "out of memory: the frame cannot be issued", NULL);
    settle_tar(st, kiln__selection_rank(&b->sel, pos));
    kiln_job_frame_clear(fr);
    return;
  }
  c->b = b, c->fr = *fr, c->sel = sel, c->pos = pos, c->rank = kiln__selection_rank(&b->sel, pos);
  memset(fr, 0, sizeof *fr);
  c->patched = c->fr.scene_patch != NULL;
  if (b->cfg.resume) sweep_for(b, &c->fr);
  int nexist = 0;
  char first[PATH_MAX] = "";
  /* (a chunk taken back after another process lost it is issued a second time: its names are
   * in the set already) */
  int rc = st->walks == 0 ? check_unique(b, &c->fr, c->rank, st->m, sizeof st->m) : 0;
  if (!rc)
    rc = existing_outputs(b, &c->fr, c->rank, &nexist, first, sizeof first, st->m, sizeof st->m);
  if (!rc && nexist && b->cfg.resume && nexist == file_count(b)) {
    if (b->thumbs && c->sel % b->sheet_every == 0 && c->sel / b->sheet_every < b->ncells)
      b->thumbs[c->sel / b->sheet_every] = thumbnail_of_file(b, &c->fr);
    report(st, c, 1, "");
    ctx_free(c);
    return;
  }
  if (!rc && nexist && !b->cfg.resume && !b->cfg.overwrite) {
    snprintf(st->m, sizeof st->m, "%s exists (use --overwrite or --resume)", first);
    rc = KILN_EINVAL;
  }
  if (!rc) rc = issue(b, c, st->m, sizeof st->m);
  if (!rc) rc = kiln_completion_add(st->comp, c->writer);
  if (rc) {
    report(st, c, rc, st->m);
    settle_and_free(c);
    return;
  }
  if (st->chunks) kiln__chunks_issued(st->chunks, pos), c->chunked = true;
  take_slot(st, c);
}

/* Whether the selected frame fr at pos is issued: always, or when claiming, when its chunk is
 * this process's (a frame whose chunk another process finished is reported here). 0, or the
 * claim folder's error, which stops the run. */
static int take(run_state *st, kiln_job_frame *fr, uint64_t pos, bool *issue_it) {
  *issue_it = true;
  if (!st->chunks) return 0;
  kiln__take what;
  int rc = kiln__chunks_take(st->chunks, pos, &what, st->err->message, sizeof st->err->message);
  if (rc) return rc;
  *issue_it = what == KILN__TAKE_ISSUE;
  if (what == KILN__TAKE_ELSEWHERE) report_at(st, fr, pos, false, 2, "", NULL);
  return 0;
}

/* Expands and issues frames until the window is full, the job ends or the batch is stopped.
 * 0, or the error that stops the run before any frame (the first frame's checks). */
static int issue_more(run_state *st) {
  kiln_batch *b = st->b;
  while (!st->exhausted && st->inflight < st->window && !stopping(b)) {
    kiln_job_frame fr;
    kiln_error_detail jerr;
    int rc = kiln_job_next(b->job, &fr, &jerr);
    if (rc) {
      st->exhausted = true;
      if (rc != KILN_EEOF) { /* the job cannot be read on: report, issue no more */
        memset(&fr, 0, sizeof fr);
        kiln_error_detail_format(&jerr, st->m, sizeof st->m);
        snprintf(fr.where, sizeof fr.where, "%s", jerr.file[0] ? jerr.file : "the job");
        fr.frame = -1;
        report_at(st, &fr, UINT64_MAX, false, rc, st->m, NULL);
      }
      return 0;
    }
    uint64_t pos = UINT64_MAX;
    bool issue_it = false;
    if (kiln__selection_next(&b->sel, fr.frame, &pos) && !(rc = take(st, &fr, pos, &issue_it)) &&
        issue_it && st->sel == 0)
      rc = first_frame(st, &fr, pos);
    if (!rc && issue_it) issue_frame(st, &fr, pos);
    else kiln_job_frame_clear(&fr);
    if (!rc && st->chunks && pos != UINT64_MAX)
      (void)kiln__chunks_passed(st->chunks, pos, st->m, sizeof st->m); /* as in report_at */
    if (rc) return rc;
  }
  return 0;
}

/* Claiming, after a walk with nothing left in flight: waits for the chunks other processes hold,
 * and starts another walk when one of them must be taken over or reported. */
static int walk_again(run_state *st) {
  kiln_batch *b = st->b;
  if (!st->chunks || !st->exhausted || st->inflight || stopping(b)) return 0;
  if (!kiln__chunks_wait(st->chunks, &b->stop)) {
    if (stopping(b)) st->exhausted = false; /* stopped while other chunks were unfinished */
    return 0;
  }
  int rc = kiln_job_rewind(b->job);
  if (rc) return fail(st, rc, "cannot read the job again: %s", kiln_strerror(rc));
  kiln__selection_rewind(&b->sel);
  st->exhausted = false, st->walks++;
  /* a walk that takes over chunks sweeps their folders again: a process that died holding one
   * may have left temporaries, and no later run of that folder may come to remove them */
  b->swept[0] = 0;
  return 0;
}

/* The outcome of frame c, whose writer is done: its code and message (into st->m). */
static int outcome(run_state *st, frame_ctx *c) {
  const char *em = NULL;
  int frc = kiln_future_error(c->writer, 0, &em);
  snprintf(st->m, sizeof st->m, "%s", em ? em : "");
  if (frc == KILN_EDEPENDENCY || frc == KILN_ECANCELLED) { /* the render's own error */
    const char *rm = NULL;
    int rrc = kiln_future_error(c->render, 0, &rm);
    if (rrc) frc = rrc, snprintf(st->m, sizeof st->m, "%s", rm ? rm : kiln_strerror(rrc));
  }
  st->sum->files += c->files,
      st->sum->bytes += c->bytes; /* also those of a frame that failed later */
  c->files = c->bytes = 0;
  return frc;
}

/* Reports frame c (done) and frees it. */
static void retire(run_state *st, frame_ctx *c, int frc) {
  if (frc == 0 && st->sum->written == 0) st->sum->first_image_s = kiln__now() - st->t0;
  report(st, c, frc, st->m);
  free_slot(st, c);
  ctx_free(c);
}

/* Takes the next finished frame from the completion set: reports it, or issues it again on
 * another device when it was lost with its own. 0, or the completion set's error. */
static int collect_one(run_state *st) {
  kiln_batch *b = st->b;
  kiln_future *f = NULL;
  int rc = b->hooks.completion_next(st->comp, &f);
  if (rc) return fail(st, rc, "as_completed: %s", kiln_strerror(rc));
  frame_ctx *c = NULL;
  for (size_t i = 0; i < st->window; i++)
    if (st->slots[i] && st->slots[i]->writer == f) c = st->slots[i];
  kiln_future_release(f);
  if (!c) return 0;
  int frc = outcome(st, c);
  if (frc == KILN_EDEVICE_LOST && !b->iso && c->retries < MAX_RETRIES &&
      kiln_gpu_device_pick(b->cfg.devs, b->cfg.ndevs) >= 0) { /* again, on another device */
    c->retries++;
    release_own(c);
    char rm[512];
    int irc = issue(b, c, rm, sizeof rm);
    if (!irc) irc = kiln_completion_add(st->comp, c->writer);
    if (!irc) return 0;
    snprintf(st->m, sizeof st->m, "lost with its device, and cannot be issued again: %s", rm);
    report(st, c, irc, st->m);
    free_slot(st, c);
    settle_and_free(c);
    return 0;
  }
  retire(st, c, frc);
  return 0;
}

/* Waits for every frame still in flight and reports it (after an error of the completion set,
 * so that no writer task touches the batch once kiln_batch_run has returned). */
static void drain(run_state *st) {
  for (size_t i = 0; i < st->window; i++) {
    frame_ctx *c = st->slots[i];
    if (!c) continue;
    kiln_future_result(c->writer, -1, NULL);
    retire(st, c, outcome(st, c));
  }
}

/* keep: the run got as far as frames, so its manifest is written (else it is dropped). */
static void run_finish(run_state *st, bool stopped_early, bool keep) {
  kiln_batch *b = st->b;
  kiln_batch_summary *sum = st->sum;
  if (st->slots) drain(st);
  kiln__tars_close(b->tars); /* every frame is settled: only unfinished tars are left */
  b->tars = NULL;
  if (st->chunks) { /* gives back the chunks of a stopped run, for others to take at once */
    kiln__chunks_counts(st->chunks, &sum->chunks_claimed, &sum->chunks_taken_over);
    kiln__chunks_close(st->chunks);
    st->chunks = NULL;
  }
  sum->manifest_status = kiln__manifest_commit(st->manifest, b->cfg.durable, keep,
                                               sum->manifest_message,
                                               sizeof sum->manifest_message);
  st->manifest = NULL;
  sum->writer_status = kiln__dataset_commit(b->dataset, keep, sum->writer_message,
                                            sizeof sum->writer_message);
  b->dataset = NULL;
  if (!sum->writer_status) sum->writer_message[0] = 0;
  if (b->iso) { /* every frame is settled: the workers are idle */
    kiln__isolate_stop(b->iso, sum);
    b->iso = NULL;
  }
  kiln_completion_destroy(st->comp);
  free(st->slots);
  st->slots = NULL, st->comp = NULL;
  /* stopped: frames were left unissued because of kiln_batch_stop */
  sum->stopped = stopping(b) && stopped_early;
  if (b->cfg.contact_sheet && b->thumbs)
    sum->contact_sheet_status =
        write_contact_sheet(b, sum->contact_sheet_message, sizeof sum->contact_sheet_message);
  if (!sum->contact_sheet_status) sum->contact_sheet_message[0] = 0;
  else if (!sum->contact_sheet_message[0])
    snprintf(sum->contact_sheet_message, sizeof sum->contact_sheet_message, "%s",
             kiln_strerror(sum->contact_sheet_status));
  sum->wall_s = kiln__now() - st->t0;
  sum->images_per_s = sum->wall_s > 0 ? (double)sum->written / sum->wall_s : 0;
  pthread_mutex_lock(&b->mu);
  sum->prepare_s = b->prepare_s, sum->render_s = b->render_s, sum->readback_s = b->readback_s;
  sum->encode_s = b->encode_s, sum->write_s = b->write_s;
  pthread_mutex_unlock(&b->mu);
  sum->peak_rss_bytes = peak_rss();
}

int kiln_batch_run(kiln_batch *b, kiln_batch_summary *sum, kiln_error_detail *err) {
  kiln_error_detail dummy;
  if (!err) err = &dummy;
  memset(err, 0, sizeof *err);
  memset(sum, 0, sizeof *sum);
  run_state st = {.b = b, .sum = sum, .err = err, .t0 = kiln__now(), .lock_fd = -1};
  int rc = run_begin(&st);
  while (!rc) {
    while (!(rc = issue_more(&st)) && st.inflight > 0 && !(rc = collect_one(&st))) {}
    if (rc || !st.exhausted || (rc = walk_again(&st)) || st.exhausted) break;
  }
  bool before_any = rc && st.sel == 0 && st.inflight == 0;
  if (before_any) thumbs_free(b);   /* no contact sheet for a run that rendered nothing */
  else if (rc) st.exhausted = true; /* an error midway: issue no more */
  run_finish(&st, !st.exhausted, !before_any);
  /* after run_finish: no writer task of this run is left */
  kiln__unlock_out_dir(b->out_dir, shares_folder(b), &st.lock_fd);
  if (!rc) memset(err, 0, sizeof *err);
  err->code = rc;
  return rc;
}
