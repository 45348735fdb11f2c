/* isolate_worker.c: the render worker process of an isolated batch (kiln render --isolate).
 *
 * The worker is a child of the program's fork server, so it starts clean: no threads, no Vulkan.
 * It opens its own Vulkan instance and the one device it was given (by UUID), loads the job and
 * its scene once, builds a renderer, and then answers frame requests on its connection until the
 * parent closes it or sends an empty message: one frame at a time, rendered, its planes sent back.
 * A frame with overrides gets its own scene, rendered as a variant of the job's by the worker's
 * one renderer, as in the parent's in-process path.
 *
 * The parent owns everything that lasts (files, progress, retries): a worker that crashes, hangs
 * or loses its device costs the frame it holds, never the batch. SIGINT and SIGTERM are ignored
 * here: a ^C or a scheduler's SIGTERM reaches the whole process group, and the parent, which
 * finishes the frames in flight before it exits, still needs its workers for them. */
#define _GNU_SOURCE
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch_internal.h"
#include "image_internal.h"
#include "kiln/proc.h"

typedef struct worker {
  const kiln__iso_setup *setup;
  kiln_channel *conn;
  kiln_pool *pool;
  kiln_gpu *gpu;
  kiln_gpu_device *dev;
  kiln_job *job;
  kiln_renderer *shared;
  char *buf; /* the reply being built */
  size_t cap;
} worker;

static int open_device(worker *w, char *msg, size_t cap) {
  kiln_gpu_config gc;
  kiln_gpu_config_default(&gc);
  int rc = kiln_gpu_create(&gc, &w->gpu);
  if (rc) return kiln__say(msg, cap, "no Vulkan in the worker: %s", kiln_strerror(rc)), rc;
  uint32_t n = kiln_gpu_get_device_count(w->gpu), pick = w->setup->device_index;
  static const uint8_t zero[16];
  if (memcmp(w->setup->device_uuid, zero, 16) != 0) /* the same device, whatever the order */
    for (uint32_t i = 0; i < n; i++) {
      kiln_gpu_device_info info;
      if (!kiln_gpu_get_device_info(w->gpu, i, &info) &&
          !memcmp(info.device_uuid, w->setup->device_uuid, 16)) {
        pick = i;
        break;
      }
    }
  if (pick >= n) return kiln__say(msg, cap, "the worker sees no device %u", pick), KILN_EINVAL;
  kiln_gpu_device_config dc;
  kiln_gpu_device_config_default(&dc);
  dc.max_lanes = 1; /* one worker per lane */
  rc = kiln_gpu_device_open(w->gpu, pick, &dc, &w->dev);
  if (rc) kiln__say(msg, cap, "the worker cannot open device %u: %s", pick, kiln_strerror(rc));
  return rc;
}

static int open_all(worker *w, char *msg, size_t cap) {
  kiln_pool_config pc;
  kiln_pool_config_default(&pc);
  if (w->setup->threads > 0) pc.threads = w->setup->threads;
  pc.name = "kiln-worker";
  int rc = kiln_pool_create(&pc, &w->pool);
  if (rc) return kiln__say(msg, cap, "cannot start threads: %s", kiln_strerror(rc)), rc;
  if ((rc = open_device(w, msg, cap))) return rc;
  kiln_error_detail err;
  kiln_job_options jo = {w->setup->scene, w->pool};
  if ((rc = kiln_job_load(w->setup->job, &jo, &err, &w->job))) {
    kiln_error_detail_format(&err, msg, cap);
    return rc;
  }
  kiln_renderer_config rcfg;
  kiln_renderer_config_default(&rcfg);
  rcfg.pool = w->pool;
  rcfg.scene_variants = true; /* frames with overrides render variants of the job's scene */
  rc = kiln_renderer_create(kiln_job_scene(w->job), &w->dev, 1, &rcfg, &w->shared);
  if (rc) kiln__say(msg, cap, "cannot prepare the scene in the worker: %s", kiln_strerror(rc));
  return rc;
}

static void close_all(worker *w) {
  kiln_renderer_destroy(w->shared);
  kiln_job_destroy(w->job);
  kiln_gpu_device_close(w->dev);
  kiln_gpu_destroy(w->gpu);
  kiln_pool_destroy(w->pool);
  free(w->buf);
}

/* The fault injected for this attempt at the frame, if any. */
static kiln__fault_kind fault_for(const kiln__iso_setup *s, const kiln__iso_request *rq) {
  for (uint32_t i = 0; i < s->nfaults && i < KILN__MAX_FAULTS; i++)
    if (s->faults[i].frame == rq->frame && (rq->attempt == 0 || s->faults[i].always))
      return s->faults[i].kind;
  return KILN__FAULT_NONE;
}

static void inject(kiln__fault_kind k) {
  if (k == KILN__FAULT_SEGV) raise(SIGSEGV);
  if (k == KILN__FAULT_EXIT) _exit(3);
  if (k == KILN__FAULT_HANG)
    for (;;) pause(); /* until the parent's SIGKILL */
}

/* Renders rq: *img (owned by *f, which the caller releases) or an error with msg. A frame with
 * overrides is its scene rendered as a variant of the job's by the worker's renderer. */
static int render(worker *w, const kiln__iso_request *rq, const char *patch, kiln_future **f,
                  char *msg, size_t cap) {
  kiln_renderer *r = w->shared;
  kiln_scene *scene = NULL;
  int rc;
  if (patch) {
    kiln_job_frame fr = {.frame = rq->frame, .camera = rq->camera, .seed = rq->seed};
    snprintf(fr.where, sizeof fr.where, "%s", rq->where);
    fr.scene_patch = (char *)patch; /* borrowed: fr is not cleared */
    kiln_error_detail err;
    if ((rc = kiln_job_frame_scene(w->job, &fr, &err, &scene))) {
      kiln_error_detail_format(&err, msg, cap);
      return rc;
    }
  }
  kiln_frame_config fc;
  kiln_frame_config_default(r, &fc);
  fc.camera = &rq->camera;
  fc.seed = rq->seed;
  fc.frame = (uint32_t)rq->frame;
  fc.width = w->setup->width, fc.height = w->setup->height, fc.spp = w->setup->spp;
  fc.planes = w->setup->passes; /* the planes it sends back, and no more */
  rc = scene ? kiln_renderer_submit_scene(r, scene, &fc, f) : kiln_renderer_submit(r, &fc, f);
  kiln_scene_destroy(scene);
  if (rc) return kiln__say(msg, cap, "cannot submit the render: %s", kiln_strerror(rc)), rc;
  const char *m = NULL;
  if ((rc = kiln_future_error(*f, -1, &m))) kiln__say(msg, cap, "%s", m ? m : kiln_strerror(rc));
  return rc;
}

/* The reply: header, then the planes asked for. */
static int reply(worker *w, kiln__iso_reply *h, const kiln_image *img) {
  unsigned passes = w->setup->passes;
  size_t len = sizeof *h, n = 0, per[KILN__NPLANE];
  void *planes[KILN__NPLANE];
  if (img && h->code == 0) {
    kiln__iso_planes(img, planes, per);
    h->width = img->width, h->height = img->height, h->spp = img->spp, h->passes = passes;
    n = (size_t)img->width * (size_t)img->height;
    len = kiln__iso_reply_size(passes, img->width, img->height);
  }
  if (len > UINT32_MAX) { /* one channel message carries at most 2^32 - 1 bytes */
    snprintf(h->message, sizeof h->message,
             "a frame of %zu bytes is too large to come back from a render worker (at most 4 GiB: "
             "fewer passes or a smaller size, or render without --isolate)", len);
    h->code = KILN_EINVAL, len = sizeof *h;
  }
  if (len > w->cap) {
    char *nb = realloc(w->buf, len);
    if (!nb) { /* the header alone goes back, from where it is */
      h->code = KILN_ENOMEM;
      snprintf(h->message, sizeof h->message, "out of memory in the worker");
      return kiln_channel_send(w->conn, h, sizeof *h, -1);
    }
    w->buf = nb, w->cap = len;
  }
  memcpy(w->buf, h, sizeof *h);
  size_t at = sizeof *h;
  for (int pi = 0; pi < KILN__NPLANE && h->code == 0; pi++)
    if (passes & (1u << pi)) memcpy(w->buf + at, planes[pi], n * per[pi]), at += n * per[pi];
  return kiln_channel_send(w->conn, w->buf, at, -1);
}

/* One request: 0 to go on, 1 when asked to exit, or a connection error. */
static int serve_one(worker *w) {
  void *msg = NULL;
  size_t len = 0;
  int rc = kiln_channel_recv(w->conn, &msg, &len, -1);
  if (rc == KILN_EEOF) return 1;
  if (rc) return rc;
  kiln__iso_request rq;
  if (len == 0 || len < sizeof rq) {
    free(msg);
    return len == 0 ? 1 : KILN_EINVAL;
  }
  memcpy(&rq, msg, sizeof rq);
  char *patch = NULL;
  if (rq.patch_len && (len != sizeof rq + rq.patch_len || !(patch = strndup(
                                                                 (char *)msg + sizeof rq,
                                                                 rq.patch_len)))) {
    free(msg);
    return KILN_EINVAL;
  }
  free(msg);
  kiln__iso_reply h = {.magic = KILN__ISO_MAGIC};
  kiln__fault_kind fault = fault_for(w->setup, &rq);
  inject(fault);
  kiln_future *f = NULL;
  double t0 = kiln__now();
  if (fault == KILN__FAULT_LOST) {
    h.code = KILN_EDEVICE_LOST;
    snprintf(h.message, sizeof h.message, "device lost (injected on frame %ld)", rq.frame);
  } else {
    h.code = render(w, &rq, patch, &f, h.message, sizeof h.message);
  }
  h.render_s = kiln__now() - t0;
  void *v = NULL;
  if (f && h.code == 0) kiln_future_result(f, 0, &v);
  rc = reply(w, &h, v);
  kiln_future_release(f);
  free(patch);
  return rc;
}

int kiln__iso_worker_main(const void *arg, size_t len) {
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  kiln__iso_setup setup;
  if (len != sizeof setup) return 2;
  memcpy(&setup, arg, sizeof setup);
  worker w = {.setup = &setup, .conn = kiln_process_channel(0)};
  if (!w.conn || setup.magic != KILN__ISO_MAGIC) return 2;
  kiln__iso_reply hello = {.magic = KILN__ISO_MAGIC};
  int rc = open_all(&w, hello.message, sizeof hello.message);
  hello.code = rc;
  int sent = kiln_channel_send(w.conn, &hello, sizeof hello, -1); /* ready, or why not */
  if (rc || sent) {
    close_all(&w);
    return 4;
  }
  while ((rc = serve_one(&w)) == 0) {}
  close_all(&w);
  return rc == 1 ? 0 : 5;
}

int kiln__iso_parse_faults(const char *spec, kiln__iso_setup *setup, char *msg, size_t cap) {
  static const char *names[] = {"", "segv", "hang", "exit", "lost"};
  setup->nfaults = 0;
  for (const char *p = spec; p && *p;) {
    const char *end = strchr(p, ',');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    const char *at = memchr(p, '@', n);
    size_t name_len = at ? (size_t)(at - p) : 0;
    bool always = name_len > 0 && p[name_len - 1] == '!';
    name_len -= always;
    kiln__fault_kind k = KILN__FAULT_NONE;
    for (int i = 1; i < 5 && at; i++)
      if (name_len == strlen(names[i]) && !strncmp(p, names[i], name_len)) k = (kiln__fault_kind)i;
    char *stop = NULL;
    long frame = at ? strtol(at + 1, &stop, 10) : 0;
    if (!k || stop != p + n || stop == at + 1 || setup->nfaults >= KILN__MAX_FAULTS) {
      kiln__say(msg, cap,
                "bad fault \"%.*s\" (segv@N, hang@N, exit@N or lost@N, with ! after the name for "
                "every attempt; at most %d)",
                (int)n, p, KILN__MAX_FAULTS);
      return KILN_EINVAL;
    }
    setup->faults[setup->nfaults++] = (kiln__fault){k, frame, always};
    p = end ? end + 1 : p + n;
  }
  return 0;
}
