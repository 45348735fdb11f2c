/* batch.c: the batch pipeline of kiln/batch.h.
 *
 * One driver thread (the caller of kiln_batch_run) expands frames lazily from the job and keeps
 * at most `in_flight` of them in the pipeline:
 *
 *   frame without scene overrides:  kiln_renderer_submit on the shared renderer ─► R (GPU future)
 *   frame with overrides:           prepare task P (load the patched scene, build its renderer on
 *                                   the least busy device, submit) ─► promise Rp, resolved with R
 *   then:                           writer task W after R or Rp: convert, encode and write every
 *                                   pass atomically, make the contact-sheet thumbnail
 *
 * W's futures go into one kiln_as_completed set that the driver feeds as it issues frames; each
 * completion frees a slot. A frame's failure (its own, its scene's, the GPU's, the disk's) is
 * reported through the progress callback and the batch goes on; a frame lost with its device is
 * issued again on another one. What each pass becomes on disk, and the output folders, are in
 * batch_out.c. Nothing here prints. */
#define _GNU_SOURCE
#include "kiln/batch.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "output.h"
#include "image_internal.h"
#include "names.h"
#include "scene_data.h"
#include "scene_internal.h"

enum { NPASS = KILN__NPASS, MAX_RETRIES = 2, SHEET_CELLS = 100 };

/* ---- the batch ------------------------------------------------------------------------------ */

static int check_template(const struct kiln_batch *b, char *msg, size_t msgcap);

struct kiln_batch {
  kiln_job *job;
  kiln_batch_config cfg;
  const char *tmpl;
  unsigned passes;
  kiln_format format;
  char out_dir[PATH_MAX];
  atomic_int stop;
  kiln_renderer *shared; /* the job's scene on every device, made by kiln_batch_run */
  kiln_scene_info info;
  int32_t width, height; /* of every frame */

  pthread_mutex_t mu; /* guards the sums below, written by writer tasks */
  double prepare_s, render_s, readback_s, encode_s, write_s;

  /* contact sheet: the thumbnail of every sheet_every-th selected frame */
  uint8_t **thumbs;
  size_t ncells;
  uint64_t sheet_every;
  int thumb_w, thumb_h, thumb_f;

  /* the driver's own state */
  long base;           /* the frame the step counts from */
  bool base_set;
  char swept[PATH_MAX]; /* the last folder swept of temporaries (--resume) */
  uint64_t *names;     /* hashes of the output paths issued in this run (open addressing) */
  size_t nnames, names_cap;
};

typedef struct frame_ctx {
  kiln_batch *b;
  kiln_job_frame fr;
  uint64_t sel;          /* position among the selected frames */
  kiln_future *render;   /* R, or the promise Rp of a frame with overrides */
  kiln_future *writer;   /* W */
  kiln_renderer *own;    /* the frame's own renderer (frames with overrides) */
  bool patched;
  int retries;
  double t_render; /* when its render was submitted */
  /* written by W, read by the driver after W completes */
  uint64_t files, bytes;
} frame_ctx;

void kiln_batch_config_default(kiln_batch_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->format = -1;
  cfg->first = LONG_MIN, cfg->last = LONG_MAX, cfg->step = 1;
}

int kiln_batch_create(kiln_job *job, const kiln_batch_config *cfg, kiln_batch **out, char *msg,
                      size_t msgcap) {
  *out = NULL;
  if (!job || !cfg) return KILN_EINVAL;
  if (!cfg->pool || !cfg->devs || cfg->ndevs == 0) {
    kiln__say(msg, msgcap, "a batch needs a pool and at least one device");
    return KILN_EINVAL;
  }
  if (cfg->step < 1) {
    kiln__say(msg, msgcap, "frame step %ld: must be at least 1", cfg->step);
    return KILN_EINVAL;
  }
  if (cfg->width < 0 || cfg->height < 0 || cfg->spp < 0 || (cfg->width > 0) != (cfg->height > 0)) {
    kiln__say(msg, msgcap, "size %dx%d, spp %d: must be positive", cfg->width, cfg->height, cfg->spp);
    return KILN_EINVAL;
  }
  if (cfg->format < -1 || cfg->format > KILN_FORMAT_HDR) {
    kiln__say(msg, msgcap, "unknown format %d", cfg->format);
    return KILN_EINVAL;
  }
  kiln_batch *b = calloc(1, sizeof *b);
  if (!b) return KILN_ENOMEM;
  b->job = job;
  b->cfg = *cfg;
  b->tmpl = cfg->output ? cfg->output : kiln_job_output(job);
  b->passes = (cfg->passes ? cfg->passes : kiln_job_passes(job)) | KILN_PASS_COLOR;
  b->format = cfg->format >= 0 ? (kiln_format)cfg->format : kiln_job_format(job);
  snprintf(b->out_dir, sizeof b->out_dir, "%s", cfg->out_dir && *cfg->out_dir ? cfg->out_dir : ".");
  kiln_scene_get_info(kiln_job_scene(job), &b->info);
  b->width = cfg->width ? cfg->width : b->info.width;
  b->height = cfg->height ? cfg->height : b->info.height;
  char m[1024];
  int rc;
  if (kiln__outname_check(b->tmpl, m, sizeof m) != 0) {
    kiln__say(msg, msgcap, "%s", m);
    free(b);
    return KILN_EINVAL;
  }
  if ((rc = check_template(b, m, sizeof m))) {
    kiln__say(msg, msgcap, "%s", m);
    free(b);
    return rc;
  }
  pthread_mutex_init(&b->mu, NULL);
  atomic_init(&b->stop, 0);
  *out = b;
  return 0;
}

void kiln_batch_stop(kiln_batch *b) { atomic_store_explicit(&b->stop, 1, memory_order_relaxed); }

void kiln_batch_destroy(kiln_batch *b) {
  if (!b) return;
  kiln_renderer_destroy(b->shared);
  if (b->thumbs)
    for (size_t i = 0; i < b->ncells; i++) free(b->thumbs[i]);
  free(b->thumbs);
  free(b->names);
  pthread_mutex_destroy(&b->mu);
  free(b);
}

/* ---- output names ----------------------------------------------------------------------------- */

/* The path of pass pi of frame fr into out. 0, or an error with msg. */
static int pass_path(const kiln_batch *b, const kiln_job_frame *fr, int pi, char *out, size_t cap,
                     char *msg, size_t msgcap) {
  kiln__outname_vars v = {fr->frame, fr->name, kiln__pass_names[pi], kiln__pass_ext(b->format, pi)};
  char rel[PATH_MAX];
  int rc = kiln__outname_expand(b->tmpl, &v, rel, sizeof rel, msg, msgcap);
  if (rc) return rc;
  int n = rel[0] == '/' ? snprintf(out, cap, "%s", rel) : snprintf(out, cap, "%s/%s", b->out_dir, rel);
  if (n < 0 || (size_t)n >= cap) {
    kiln__say(msg, msgcap, "output path too long: %s/%s", b->out_dir, rel);
    return KILN_EINVAL;
  }
  return 0;
}

/* How many of frame fr's output files exist (and the first that does, into first). */
static int existing_outputs(const kiln_batch *b, const kiln_job_frame *fr, int *n, char *first,
                            size_t cap, char *msg, size_t msgcap) {
  *n = 0;
  for (int pi = 0; pi < NPASS; pi++) {
    if (!(b->passes & (1u << pi))) continue;
    char path[PATH_MAX];
    int rc = pass_path(b, fr, pi, path, sizeof path, msg, msgcap);
    if (rc) return rc;
    if (access(path, F_OK) == 0) {
      if (*n == 0) snprintf(first, cap, "%s", path);
      (*n)++;
    }
  }
  return 0;
}

/* The template must give every pass of a frame its own file, every frame its own files (when the job
 * has several), and each file the extension of what it holds when the template does not use {ext}:
 * checked by expanding it, so escaped braces ({{pass}}) cannot fool the check. */
static int check_template(const struct kiln_batch *b, char *msg, size_t msgcap) {
  char x[PATH_MAX], y[PATH_MAX];
  int last = -1;
  for (int pi = 0; pi < NPASS; pi++) {
    if (!(b->passes & (1u << pi))) continue;
    kiln__outname_vars v = {0, "a", kiln__pass_names[pi], kiln__pass_ext(b->format, pi)};
    int rc = kiln__outname_expand(b->tmpl, &v, x, sizeof x, msg, msgcap);
    if (rc) return rc;
    const char *dot = strrchr(x, '.'), *ext = kiln__pass_ext(b->format, pi);
    if (!strstr(b->tmpl, "{ext}") && (!dot || strcmp(dot + 1, ext) != 0)) {
      kiln__say(msg, msgcap, "output template \"%s\" names the %s pass \"%s\", but it is written as .%s "
          "(use {ext})", b->tmpl, kiln__pass_names[pi], x, ext);
      return KILN_EINVAL;
    }
    if (last >= 0) {
      kiln__outname_vars u = {0, "a", kiln__pass_names[last], kiln__pass_ext(b->format, last)};
      if ((rc = kiln__outname_expand(b->tmpl, &u, y, sizeof y, msg, msgcap))) return rc;
      if (strcmp(x, y) == 0) {
        kiln__say(msg, msgcap, "output template \"%s\" gives the %s and %s passes one file (use {pass})",
            b->tmpl, kiln__pass_names[last], kiln__pass_names[pi]);
        return KILN_EINVAL;
      }
    }
    last = pi;
  }
  if (kiln_job_count(b->job) > 1) {
    kiln__outname_vars u = {0, "a", "color", kiln__pass_ext(b->format, 0)}, w = {1, "b", "color", kiln__pass_ext(b->format, 0)};
    int rc = kiln__outname_expand(b->tmpl, &u, x, sizeof x, msg, msgcap);
    if (!rc) rc = kiln__outname_expand(b->tmpl, &w, y, sizeof y, msg, msgcap);
    if (rc) return rc;
    if (strcmp(x, y) == 0) {
      kiln__say(msg, msgcap, "output template \"%s\" has neither {frame} nor {name}: every frame would "
          "write the same file", b->tmpl);
      return KILN_EINVAL;
    }
  }
  return 0;
}

static int count_passes(unsigned passes) {
  int n = 0;
  for (int i = 0; i < NPASS; i++) n += (passes >> i) & 1;
  return n;
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
  if (c->own) {
    kiln_renderer_destroy(c->own);
    c->own = NULL;
  }
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
  if (c->patched) { /* Rp's value is the frame's render future R */
    v = NULL;
    kiln_future_result((kiln_future *)img, 0, &v);
    img = v;
  }
  int rc = 0;
  char msg[1024] = "";
  c->files = c->bytes = 0;
  for (int pi = 0; pi < NPASS && !rc; pi++) {
    if (!(b->passes & (1u << pi))) continue;
    char path[PATH_MAX];
    rc = pass_path(b, &c->fr, pi, path, sizeof path, msg, sizeof msg);
    if (rc) break;
    char *slash = strrchr(path, '/');
    if (slash && slash != path) { /* templates may name sub-folders */
      *slash = 0;
      int e = kiln__make_dirs(path, 0777);
      *slash = '/';
      if (e) {
        kiln__say(msg, sizeof msg, "cannot create the folder of %s: %s", path, strerror(e));
        rc = KILN_EIO;
        break;
      }
    }
    void *data = NULL;
    size_t len = 0;
    double te = kiln__now(), tc = conv_s;
    rc = kiln__encode_pass(b->format, b->info.exposure, b->info.filmic, img, pi, &data, &len, &conv_s, msg, sizeof msg);
    enc_s += kiln__now() - te - (conv_s - tc);
    if (rc) break;
    double tw = kiln__now();
    rc = kiln__write_atomic(path, data, len, b->cfg.durable, msg, sizeof msg);
    write_s += kiln__now() - tw;
    free(data);
    if (!rc) c->files++, c->bytes += len;
  }
  if (!rc && b->thumbs && c->sel % b->sheet_every == 0 && c->sel / b->sheet_every < b->ncells)
    b->thumbs[c->sel / b->sheet_every] = thumbnail(b, img);
  release_own(c);
  pthread_mutex_lock(&b->mu);
  b->render_s += render_s, b->readback_s += conv_s, b->encode_s += enc_s, b->write_s += write_s;
  pthread_mutex_unlock(&b->mu);
  if (rc) return kiln_task_fail(rc, "%s", msg[0] ? msg : kiln_strerror(rc));
  return 0;
}

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

static void fill_frame_config(const kiln_batch *b, const kiln_job_frame *fr, kiln_frame_config *fc) {
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
  kiln_scene_error err;
  kiln_scene *scene = NULL;
  kiln_future *r = NULL;
  int rc = kiln_job_frame_scene(b->job, &c->fr, &err, &scene);
  if (rc) {
    char m[1200];
    kiln_promise_reject(rp, rc, "%s", kiln_scene_error_format(&err, m, sizeof m));
    goto out;
  }
  int di = kiln_gpu_device_pick(b->cfg.devs, b->cfg.ndevs);
  if (di < 0) {
    kiln_scene_destroy(scene);
    kiln_promise_reject(rp, KILN_EDEVICE_LOST, "every device is lost");
    goto out;
  }
  kiln_renderer_config rcfg;
  kiln_renderer_config_default(&rcfg);
  rcfg.pool = b->cfg.pool;
  rc = kiln_renderer_create(scene, &b->cfg.devs[di], 1, &rcfg, &c->own);
  kiln_scene_destroy(scene);
  if (!rc) {
    kiln_frame_config fc;
    kiln_frame_config_default(c->own, &fc);
    fill_frame_config(b, &c->fr, &fc);
    c->t_render = kiln__now();
    rc = kiln_renderer_submit(c->own, &fc, &r);
  }
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
  if (c->patched) {
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
  rc = kiln_submit_after(b->cfg.pool, &c->render, 1, writer_task, c, &c->writer);
  if (rc) kiln__say(msg, msgcap, "cannot submit the writer: %s", kiln_strerror(rc));
  return rc;
}

/* Whether frame is selected. Without a lower bound the step counts from the first frame in range
 * (b->base, set by the first call after selection_reset). */
static bool selected(kiln_batch *b, long frame) {
  if (frame < b->cfg.first || frame > b->cfg.last) return false;
  if (!b->base_set) b->base = b->cfg.first != LONG_MIN ? b->cfg.first : frame, b->base_set = true;
  if (frame < b->base) return false;
  return (frame - b->base) % b->cfg.step == 0;
}

static void selection_reset(kiln_batch *b) { b->base_set = false; }

static bool has_selection(const kiln_batch *b) {
  return b->cfg.first != LONG_MIN || b->cfg.last != LONG_MAX || b->cfg.step != 1;
}

static uint64_t peak_rss(void) {
  struct rusage ru;
  return getrusage(RUSAGE_SELF, &ru) == 0 ? (uint64_t)ru.ru_maxrss * 1024u : 0;
}

/* Sweeps the folders frame fr's files go to (each once in a row: frames usually share one). */
static void sweep_for(kiln_batch *b, const kiln_job_frame *fr) {
  for (int pi = 0; pi < NPASS; pi++) {
    if (!(b->passes & (1u << pi))) continue;
    char path[PATH_MAX];
    if (pass_path(b, fr, pi, path, sizeof path, NULL, 0)) return;
    char *slash = strrchr(path, '/');
    if (!slash) continue;
    *slash = 0;
    if (strcmp(path, b->swept) == 0) continue;
    snprintf(b->swept, sizeof b->swept, "%s", path);
    kiln__sweep_temporaries(path);
  }
}

/* ---- output names seen in this run: two frames must not write one file -------------------------- */

static uint64_t fnv1a(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h ? h : 1;
}

/* Adds the hash of path to the set; false when it was there (another frame of this run). */
static bool names_add(kiln_batch *b, const char *path) {
  if (2 * (b->nnames + 1) > b->names_cap) {
    size_t cap = b->names_cap ? 2 * b->names_cap : 1024;
    uint64_t *t = calloc(cap, sizeof *t);
    if (!t) return true; /* without memory, no check */
    for (size_t i = 0; i < b->names_cap; i++)
      if (b->names[i])
        for (size_t j = b->names[i] & (cap - 1);; j = (j + 1) & (cap - 1))
          if (!t[j]) {
            t[j] = b->names[i];
            break;
          }
    free(b->names);
    b->names = t, b->names_cap = cap;
  }
  uint64_t h = fnv1a(path);
  for (size_t j = h & (b->names_cap - 1);; j = (j + 1) & (b->names_cap - 1)) {
    if (b->names[j] == h) return false;
    if (!b->names[j]) {
      b->names[j] = h;
      b->nnames++;
      return true;
    }
  }
}

/* Checks that frame fr's files are not those of an earlier frame of this run. */
static int check_unique(kiln_batch *b, const kiln_job_frame *fr, char *msg, size_t msgcap) {
  for (int pi = 0; pi < NPASS; pi++) {
    if (!(b->passes & (1u << pi))) continue;
    char path[PATH_MAX];
    int rc = pass_path(b, fr, pi, path, sizeof path, msg, msgcap);
    if (rc) return rc;
    if (!names_add(b, path)) {
      kiln__say(msg, msgcap, "%s is also the output of an earlier frame (two images with one name?)", path);
      return KILN_EINVAL;
    }
  }
  return 0;
}

typedef struct run_state {
  kiln_batch *b;
  kiln_batch_summary *sum;
  double t0;
} run_state;

static void report(run_state *st, const kiln_job_frame *fr, int status, const char *message) {
  kiln_batch_summary *s = st->sum;
  if (status == 0) s->written++;
  else if (status == 1) s->skipped++;
  else s->failed++;
  if (!st->b->cfg.progress) return;
  kiln_batch_event ev = {fr, status, message ? message : "", s->written, s->failed, s->skipped,
                         s->total, kiln__now() - st->t0};
  st->b->cfg.progress(st->b->cfg.progress_arg, &ev);
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
      pass_path(b, fr, 0, path, sizeof path, NULL, 0))
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
    kiln__linear_to_srgb(t.rgb, n, hdr ? b->info.exposure : 0, hdr && b->info.filmic, KILN__PIX_U8, full);
    kiln__box_downscale(full, b->width, b->height, b->thumb_f, out);
  }
  free(full);
  free(t.rgb);
  return out;
}

int kiln_batch_run(kiln_batch *b, kiln_batch_summary *sum, char *msg, size_t msgcap) {
  memset(sum, 0, sizeof *sum);
  if (msg && msgcap) msg[0] = 0;
  run_state st = {b, sum, kiln__now()};
  int rc = kiln__make_dirs(b->out_dir, 0777);
  if (rc) {
    kiln__say(msg, msgcap, "cannot create the output folder %s: %s", b->out_dir, strerror(rc));
    return KILN_EIO;
  }
  b->swept[0] = 0;
  b->nnames = 0;
  if (b->names) memset(b->names, 0, b->names_cap * sizeof *b->names);

  /* how many frames are selected (a pass over the job only when a selection is given) */
  kiln_job_frame fr;
  memset(&fr, 0, sizeof fr);
  kiln_scene_error err;
  if ((rc = kiln_job_rewind(b->job))) return rc;
  selection_reset(b);
  if (has_selection(b)) {
    while ((rc = kiln_job_next(b->job, &fr, &err)) == 0) {
      sum->total += selected(b, fr.frame);
      kiln_job_frame_clear(&fr);
      if (atomic_load_explicit(&b->stop, memory_order_relaxed)) break;
    }
    if (rc != KILN_EEOF && rc != 0) {
      kiln_scene_error_format(&err, msg, msgcap);
      return rc;
    }
    if ((rc = kiln_job_rewind(b->job))) return rc;
    selection_reset(b);
    if (sum->total == 0 && !atomic_load_explicit(&b->stop, memory_order_relaxed)) {
      kiln__say(msg, msgcap, "the frame selection matches none of the job's %llu frames",
          (unsigned long long)kiln_job_count(b->job));
      return KILN_EINVAL;
    }
  } else {
    sum->total = kiln_job_count(b->job);
  }

  /* nothing is written when the first frame's outputs exist and neither flag says what to do */
  if (!b->cfg.resume && !b->cfg.overwrite) {
    while ((rc = kiln_job_next(b->job, &fr, &err)) == 0 && !selected(b, fr.frame))
      kiln_job_frame_clear(&fr);
    if (rc == 0) {
      int n = 0;
      char first[PATH_MAX] = "";
      rc = existing_outputs(b, &fr, &n, first, sizeof first, msg, msgcap);
      kiln_job_frame_clear(&fr);
      if (rc) return rc;
      if (n) {
        kiln__say(msg, msgcap, "%s exists (use --overwrite to replace outputs, --resume to keep them)", first);
        return KILN_EINVAL;
      }
    }
    if ((rc = kiln_job_rewind(b->job))) return rc;
    selection_reset(b);
  }

  /* the shared renderer: the job's scene on every device */
  if (!b->shared && !atomic_load_explicit(&b->stop, memory_order_relaxed)) {
    double t0 = kiln__now();
    kiln_renderer_config rcfg;
    kiln_renderer_config_default(&rcfg);
    rcfg.pool = b->cfg.pool;
    rc = kiln_renderer_create(kiln_job_scene(b->job), b->cfg.devs, b->cfg.ndevs, &rcfg, &b->shared);
    b->prepare_s += kiln__now() - t0;
    if (rc) {
      kiln__say(msg, msgcap, "cannot prepare the scene on the device%s: %s", b->cfg.ndevs > 1 ? "s" : "",
          kiln_strerror(rc));
      return rc;
    }
  }

  size_t lanes = 0;
  for (size_t i = 0; i < b->cfg.ndevs; i++) {
    kiln_gpu_device_stats ds;
    kiln_gpu_device_stats_get(b->cfg.devs[i], &ds);
    lanes += ds.lanes ? ds.lanes : 1;
  }
  size_t window = b->cfg.in_flight ? b->cfg.in_flight : 2 * lanes;
  if (window < 1) window = 1;

  if (b->cfg.contact_sheet && sum->total > 0) {
    b->sheet_every = (sum->total + SHEET_CELLS - 1) / SHEET_CELLS;
    b->ncells = (size_t)((sum->total + b->sheet_every - 1) / b->sheet_every);
    int thumb = b->cfg.contact_thumb > 0 ? b->cfg.contact_thumb : 128;
    int big = b->width > b->height ? b->width : b->height;
    b->thumb_f = (big + thumb - 1) / thumb;
    b->thumb_w = b->width / b->thumb_f > 0 ? b->width / b->thumb_f : 1;
    b->thumb_h = b->height / b->thumb_f > 0 ? b->height / b->thumb_f : 1;
    if (b->thumbs)
      for (size_t i = 0; i < b->ncells; i++) free(b->thumbs[i]);
    free(b->thumbs);
    b->thumbs = calloc(b->ncells, sizeof *b->thumbs);
    if (!b->thumbs) return KILN_ENOMEM;
  }

  frame_ctx **slots = calloc(window, sizeof *slots);
  kiln_completion *comp = NULL;
  if (!slots || (rc = kiln_as_completed(NULL, 0, -1, &comp))) {
    free(slots);
    return rc ? rc : KILN_ENOMEM;
  }
  size_t inflight = 0;
  uint64_t sel = 0;
  bool exhausted = false;
  char m[1400];
  for (;;) {
    while (!exhausted && inflight < window &&
           !atomic_load_explicit(&b->stop, memory_order_relaxed)) {
      frame_ctx *c = calloc(1, sizeof *c);
      if (!c) {
        kiln__say(msg, msgcap, "out of memory");
        exhausted = true;
        break;
      }
      c->b = b;
      rc = kiln_job_next(b->job, &c->fr, &err);
      if (rc) {
        if (rc != KILN_EEOF) { /* the job cannot be read on: report, issue no more */
          kiln_scene_error_format(&err, m, sizeof m);
          snprintf(c->fr.where, sizeof c->fr.where, "%s", err.file[0] ? err.file : "the job");
          c->fr.frame = -1;
          report(&st, &c->fr, rc, m);
        }
        exhausted = true;
        ctx_free(c);
        break;
      }
      if (!selected(b, c->fr.frame)) {
        ctx_free(c);
        continue;
      }
      c->sel = sel++;
      c->patched = c->fr.scene_patch != NULL;
      if (b->cfg.resume) sweep_for(b, &c->fr);
      int nexist = 0;
      char first[PATH_MAX] = "";
      rc = check_unique(b, &c->fr, m, sizeof m);
      if (!rc) rc = existing_outputs(b, &c->fr, &nexist, first, sizeof first, m, sizeof m);
      if (!rc && nexist && b->cfg.resume && nexist == count_passes(b->passes)) {
        if (b->thumbs && c->sel % b->sheet_every == 0 && c->sel / b->sheet_every < b->ncells)
          b->thumbs[c->sel / b->sheet_every] = thumbnail_of_file(b, &c->fr);
        report(&st, &c->fr, 1, "");
        ctx_free(c);
        continue;
      }
      if (!rc && nexist && !b->cfg.resume && !b->cfg.overwrite) {
        snprintf(m, sizeof m, "%s exists (use --overwrite or --resume)", first);
        rc = KILN_EINVAL;
      }
      if (!rc) rc = issue(b, c, m, sizeof m);
      if (!rc) rc = kiln_completion_add(comp, c->writer);
      if (rc) {
        report(&st, &c->fr, rc, m);
        settle_and_free(c);
        continue;
      }
      for (size_t i = 0; i < window; i++)
        if (!slots[i]) {
          slots[i] = c;
          break;
        }
      inflight++;
    }
    if (inflight == 0) break;
    kiln_future *f = NULL;
    rc = kiln_completion_next(comp, &f);
    if (rc) { /* cannot happen with no deadline; do not spin */
      kiln__say(msg, msgcap, "as_completed: %s", kiln_strerror(rc));
      break;
    }
    frame_ctx *c = NULL;
    size_t slot = 0;
    for (size_t i = 0; i < window; i++)
      if (slots[i] && slots[i]->writer == f) c = slots[i], slot = i;
    kiln_future_release(f);
    if (!c) continue;
    const char *em = NULL;
    int frc = kiln_future_error(c->writer, 0, &em);
    snprintf(m, sizeof m, "%s", em ? em : "");
    if (frc == KILN_EDEPENDENCY || frc == KILN_ECANCELLED) { /* the render's own error */
      const char *rm = NULL;
      int rrc = kiln_future_error(c->render, 0, &rm);
      if (rrc) frc = rrc, snprintf(m, sizeof m, "%s", rm ? rm : kiln_strerror(rrc));
    }
    sum->files += c->files, sum->bytes += c->bytes; /* also those of a frame that failed later */
    c->files = c->bytes = 0;
    if (frc == KILN_EDEVICE_LOST && c->retries < MAX_RETRIES &&
        kiln_gpu_device_pick(b->cfg.devs, b->cfg.ndevs) >= 0) { /* again, on another device */
      c->retries++;
      release_own(c);
      char rm[512];
      int irc = issue(b, c, rm, sizeof rm);
      if (!irc) irc = kiln_completion_add(comp, c->writer);
      if (!irc) continue;
      snprintf(m, sizeof m, "lost with its device, and cannot be issued again: %s", rm);
      frc = irc;
      report(&st, &c->fr, frc, m);
      slots[slot] = NULL;
      inflight--;
      settle_and_free(c);
      continue;
    }
    if (frc == 0 && sum->written == 0) sum->first_image_s = kiln__now() - st.t0;
    report(&st, &c->fr, frc, m);
    slots[slot] = NULL;
    inflight--;
    ctx_free(c);
  }
  kiln_completion_destroy(comp);
  free(slots);

  /* stopped: frames were left unissued because of kiln_batch_stop */
  sum->stopped = atomic_load_explicit(&b->stop, memory_order_relaxed) != 0 && !exhausted;
  if (b->cfg.contact_sheet && b->thumbs)
    sum->contact_sheet_status = write_contact_sheet(b, m, sizeof m);
  sum->wall_s = kiln__now() - st.t0;
  sum->images_per_s = sum->wall_s > 0 ? (double)sum->written / sum->wall_s : 0;
  pthread_mutex_lock(&b->mu);
  sum->prepare_s = b->prepare_s, sum->render_s = b->render_s, sum->readback_s = b->readback_s;
  sum->encode_s = b->encode_s, sum->write_s = b->write_s;
  pthread_mutex_unlock(&b->mu);
  sum->peak_rss_bytes = peak_rss();
  if (sum->contact_sheet_status && msg && msgcap && !msg[0]) kiln__say(msg, msgcap, "%s", m);
  return sum->failed ? 1 : 0;
}
