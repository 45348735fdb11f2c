/* isolate.c: rendering a batch's frames in worker processes (kiln render --isolate).
 *
 * The parent keeps the pipeline (frames, files, progress, retries); each device lane gets a worker
 * process, started through the fork server (so it begins clean: no threads, no Vulkan) and
 * running kiln__iso_worker_main (isolate_worker.c). A runner thread per worker takes frames from
 * one queue, sends each to its worker over a connection and waits for the planes, which become
 * the kiln_image that the frame's render future resolves to: the rest of the batch cannot tell an
 * isolated frame from an in-process one.
 *
 * A worker that dies (a signal, or an exit), does not answer within the frame timeout (killed with
 * SIGKILL), or reports its device lost costs the frame it held one retry: the runner starts a
 * fresh worker and sends the frame again (attempt 1). A second failure fails the frame
 * (KILN_EKILLED, KILN_EEXITED, KILN_ETIMEDOUT or KILN_EDEVICE_LOST, the message naming the worker
 * and what happened to it); the batch goes on. Every such event is an incident, counted and
 * described in the summary. A frame the worker itself rejects (a bad override) fails at once, as
 * in-process. With recycle N, a worker is stopped and replaced after N frames (leaks and driver
 * state go with it).
 *
 * Start-up: kiln__isolate_start starts every worker at once and waits for each to say it is ready
 * (job and scene loaded, device open, renderer built): a worker that cannot is an error of the
 * run, reported before any frame, with the worker's own message. The frame timeout starts when a
 * frame is sent to a ready worker, so start-up (and pipeline compilation) never counts as a hang.
 *
 * Lock order: iso->mu is a leaf (counters and the incident text). */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch_internal.h"
#include "image_internal.h"
#include "kiln/proc.h"
#include "kiln/sync.h"

/* How long a worker may take to start (load the job, open its device, build the renderer), and
 * to exit when asked to. */
#define ISO_START_TIMEOUT_S 300.0
#define ISO_STOP_TIMEOUT_S 10.0

typedef struct iso_item {
  kiln_future *promise; /* the frame's render future: resolved with its kiln_image */
  kiln__iso_request rq;
  char *patch; /* the frame's overrides (owned), or NULL */
} iso_item;

typedef struct iso_worker {
  kiln_process *proc;
  kiln_channel *conn; /* the parent's end */
  int pid;
  uint32_t frames; /* rendered since it started (recycling) */
} iso_worker;

typedef struct iso_runner {
  kiln__isolate *iso;
  size_t index;
  kiln__iso_setup setup; /* this worker's: its device */
  iso_worker w;
  pthread_t thread;
  bool started;
} iso_runner;

struct kiln__isolate {
  size_t n;
  const atomic_int *stop; /* the batch's: once set, a failed frame is not retried */
  double frame_timeout_s; /* 0: none */
  uint32_t recycle;       /* 0: never */
  kiln_queue *q;          /* iso_item*, FIFO */
  iso_runner *runners;

  pthread_mutex_t mu; /* guards what follows */
  uint64_t starts, crashes, hangs, lost, recycles, retried;
  char incidents[sizeof ((kiln_batch_summary *)0)->incidents];
  size_t incidents_len, incidents_dropped;
};

static void incident(kiln__isolate *iso, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void incident(kiln__isolate *iso, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  pthread_mutex_lock(&iso->mu);
  size_t len = strlen(line), room = sizeof iso->incidents - iso->incidents_len;
  if (len + 2 <= room) { /* whole lines only */
    memcpy(iso->incidents + iso->incidents_len, line, len);
    iso->incidents_len += len;
    iso->incidents[iso->incidents_len++] = '\n';
    iso->incidents[iso->incidents_len] = 0;
  } else {
    iso->incidents_dropped++;
  }
  pthread_mutex_unlock(&iso->mu);
}

static void count(kiln__isolate *iso, uint64_t *field) {
  pthread_mutex_lock(&iso->mu);
  (*field)++;
  pthread_mutex_unlock(&iso->mu);
}

static void item_free(void *v) {
  iso_item *it = v;
  if (!it) return;
  if (it->promise) {
    kiln_promise_reject(it->promise, KILN_ECANCELLED, "the isolated batch stopped");
    kiln_future_release(it->promise);
  }
  free(it->patch);
  free(it);
}

/* ---- one worker ------------------------------------------------------------------------------- */

/* Forgets w: kills its process if it still runs (a worker being given up on), joins it, and
 * frees the handles. */
static void worker_reap(iso_worker *w) {
  if (w->proc) {
    kiln_process_kill(w->proc); /* no effect once it has ended */
    kiln_process_join(w->proc, -1);
    kiln_process_destroy(w->proc);
  }
  kiln_channel_destroy(w->conn);
  memset(w, 0, sizeof *w);
}

/* How worker w ended, in words ("killed by SIGSEGV", "exited with status 3"), and the code a
 * frame it held fails with. w's process must have ended. */
static int worker_death(iso_worker *w, char *how, size_t cap) {
  int code = 0;
  kiln_process_join(w->proc, -1);
  if (kiln_process_exitcode(w->proc, &code) != 0) {
    snprintf(how, cap, "ended");
    return KILN_EEXITED;
  }
  if (code < 0) {
    const char *name = sigabbrev_np(-code);
    snprintf(how, cap, "killed by SIG%s", name ? name : "?");
    return KILN_EKILLED;
  }
  snprintf(how, cap, "exited with status %d", code);
  return KILN_EEXITED;
}

/* Starts r's worker; does not wait for it to be ready. */
static int worker_spawn(iso_runner *r, char *msg, size_t cap) {
  kiln_channel *mine = NULL, *theirs = NULL;
  int rc = kiln_channel_pair(true, &mine, &theirs);
  if (rc) return kiln__say(msg, cap, "cannot make a connection: %s", kiln_strerror(rc)), rc;
  kiln_process_config pc;
  kiln_process_config_default(&pc);
  pc.start = KILN_START_FORKSERVER;
  pc.daemon = true; /* dies with the parent */
  pc.name = "kiln-render-worker";
  pc.channels = &theirs;
  pc.nchannels = 1;
  rc = kiln_process_start(&pc, kiln__iso_worker_main, &r->setup, sizeof r->setup, &r->w.proc);
  kiln_channel_destroy(theirs); /* the child has its own copy: EOF reaches us when it dies */
  if (rc) {
    kiln_channel_destroy(mine);
    return kiln__say(msg, cap, "cannot start a render worker: %s%s", kiln_strerror(rc),
                     rc == KILN_ESTATE ? " (the fork server is not running)" : ""),
           rc;
  }
  r->w.conn = mine;
  r->w.pid = kiln_process_pid(r->w.proc);
  r->w.frames = 0;
  count(r->iso, &r->iso->starts);
  return 0;
}

/* Waits for the ready message of r's worker (its start-up error, if any, into msg). */
static int worker_ready(iso_runner *r, char *msg, size_t cap) {
  void *m = NULL;
  size_t len = 0;
  int rc = kiln_channel_poll(r->w.conn, ISO_START_TIMEOUT_S);
  if (rc == 0) {
    kiln_process_kill(r->w.proc);
    worker_reap(&r->w);
    return kiln__say(msg, cap, "a render worker did not start within %.0f s", ISO_START_TIMEOUT_S),
           KILN_ETIMEDOUT;
  }
  if (rc > 0) rc = kiln_channel_recv(r->w.conn, &m, &len, -1);
  if (rc == KILN_EEOF || (rc == 0 && len != sizeof(kiln__iso_reply))) {
    char how[128];
    int code = worker_death(&r->w, how, sizeof how);
    kiln__say(msg, cap, "render worker %d %s while starting", r->w.pid, how);
    free(m);
    worker_reap(&r->w);
    return code;
  }
  if (rc) {
    worker_reap(&r->w);
    return kiln__say(msg, cap, "render worker: %s", kiln_strerror(rc)), rc;
  }
  kiln__iso_reply h;
  memcpy(&h, m, sizeof h);
  free(m);
  h.message[sizeof h.message - 1] = 0;
  if (h.magic != KILN__ISO_MAGIC) h.code = KILN_EINVAL, snprintf(h.message, sizeof h.message, "bad reply");
  if (h.code) {
    kiln__say(msg, cap, "%s", h.message);
    kiln_channel_send(r->w.conn, "", 0, -1); /* asks it to exit */
    kiln_process_join(r->w.proc, ISO_STOP_TIMEOUT_S);
    worker_reap(&r->w);
  }
  return h.code;
}

/* Asks r's worker to exit, and kills it if it does not within ISO_STOP_TIMEOUT_S. */
static void worker_stop(iso_runner *r) {
  if (!r->w.proc) return;
  kiln_channel_send(r->w.conn, "", 0, -1);
  if (kiln_process_join(r->w.proc, ISO_STOP_TIMEOUT_S) != 0) kiln_process_kill(r->w.proc);
  worker_reap(&r->w);
}

/* ---- one frame --------------------------------------------------------------------------------- */

/* Bytes a pixel of each plane, as kiln_image holds it: RGB floats, a float, uint32 ids, uv. */
static const size_t pass_bytes[KILN__NPLANE] = {12, 4, 12, 12, 4, 4, 8};

void kiln__iso_planes(const kiln_image *img, void *planes[KILN__NPLANE], size_t per[KILN__NPLANE]) {
  void *const all[KILN__NPLANE] = {img->color,     img->depth,       img->normal, img->albedo,
                                   img->object_id, img->instance_id, img->uv};
  for (int pi = 0; pi < KILN__NPLANE; pi++) planes[pi] = all[pi], per[pi] = pass_bytes[pi];
}

size_t kiln__iso_reply_size(unsigned passes, int32_t w, int32_t h) {
  size_t n = (size_t)w * (size_t)h, len = sizeof(kiln__iso_reply);
  for (int pi = 0; pi < KILN__NPLANE; pi++)
    if (passes & (1u << pi)) len += n * pass_bytes[pi];
  return len;
}

/* The image of reply m (len bytes: the header and the planes it names), which must be of the
 * size and passes the worker was set up for. */
static int image_of(const kiln__iso_reply *h, const char *m, size_t len,
                    const kiln__iso_setup *setup, kiln_image **out) {
  *out = NULL;
  unsigned passes = setup->passes;
  if (h->width != setup->width || h->height != setup->height || h->passes != passes ||
      len != kiln__iso_reply_size(passes, h->width, h->height))
    return KILN_EINVAL;
  kiln_image *img = kiln__image_new(h->width, h->height);
  if (!img) return KILN_ENOMEM;
  img->spp = h->spp;
  void *planes[KILN__NPLANE];
  size_t per[KILN__NPLANE], n = (size_t)h->width * (size_t)h->height;
  kiln__iso_planes(img, planes, per);
  const char *at = m + sizeof *h;
  for (int pi = 0; pi < KILN__NPLANE; pi++) {
    if (passes & (1u << pi)) {
      memcpy(planes[pi], at, n * per[pi]);
      at += n * per[pi];
    } else {
      memset(planes[pi], 0, n * per[pi]); /* never written, but never garbage either */
    }
  }
  *out = img;
  return 0;
}

static void image_free(void *img) { kiln_image_destroy(img); }

typedef enum { TRY_DONE, TRY_RETRY } try_result;

/* Sends it to r's worker (starting one if none runs) and settles it, or says why the worker failed
 * (*code, why) and leaves it unsettled. */
static try_result try_frame(iso_runner *r, iso_item *it, int *code, char *why, size_t cap) {
  kiln__isolate *iso = r->iso;
  char msg[1024];
  int rc;
  if (!r->w.proc && ((rc = worker_spawn(r, msg, sizeof msg)) || (rc = worker_ready(r, msg, sizeof msg)))) {
    kiln_promise_reject(it->promise, rc, "%s", msg);
    return TRY_DONE; /* a worker that cannot start now will not on a retry either */
  }
  size_t plen = it->rq.patch_len, len = sizeof it->rq + plen;
  char *req = malloc(len);
  if (!req) {
    kiln_promise_reject(it->promise, KILN_ENOMEM, "out of memory");
    return TRY_DONE;
  }
  memcpy(req, &it->rq, sizeof it->rq);
  if (plen) memcpy(req + sizeof it->rq, it->patch, plen);
  rc = kiln_channel_send(r->w.conn, req, len, -1);
  free(req);
  if (!rc) {
    double t = iso->frame_timeout_s > 0 ? iso->frame_timeout_s : -1;
    rc = kiln_channel_poll(r->w.conn, t);
    if (rc == 0) { /* hung: SIGKILL, then it is an ordinary death */
      kiln_process_kill(r->w.proc);
      count(iso, &iso->hangs);
      incident(iso, "frame %ld: render worker %d hung (no answer in %g s); killed", it->rq.frame,
               r->w.pid, iso->frame_timeout_s);
      *code = KILN_ETIMEDOUT;
      snprintf(why, cap, "render worker %d hung (no answer in %g s)", r->w.pid, iso->frame_timeout_s);
      worker_reap(&r->w);
      return TRY_RETRY;
    }
    if (rc > 0) rc = 0;
  }
  void *m = NULL;
  size_t mlen = 0;
  if (!rc) rc = kiln_channel_recv(r->w.conn, &m, &mlen, -1);
  if (rc) {
    free(m);
    char how[128];
    if (rc == KILN_EEOF) { /* the worker died (or a send found no reader) */
      *code = worker_death(&r->w, how, sizeof how);
      count(iso, &iso->crashes);
    } else { /* it lives, but its answer cannot be had (no memory for it): given up on */
      snprintf(how, sizeof how, "could not be read from (%s); killed", kiln_strerror(rc));
      *code = rc;
    }
    incident(iso, "frame %ld: render worker %d %s", it->rq.frame, r->w.pid, how);
    snprintf(why, cap, "render worker %d %s", r->w.pid, how);
    worker_reap(&r->w);
    return TRY_RETRY;
  }
  kiln__iso_reply h;
  if (mlen < sizeof h) memset(&h, 0, sizeof h);
  else memcpy(&h, m, sizeof h);
  h.message[sizeof h.message - 1] = 0;
  if (h.magic != KILN__ISO_MAGIC) h.code = KILN_EINVAL, snprintf(h.message, sizeof h.message, "a malformed reply");
  if (h.code == KILN_EDEVICE_LOST) { /* a worker whose device is lost is of no more use */
    free(m);
    count(iso, &iso->lost);
    incident(iso, "frame %ld: render worker %d lost its device (%s); replaced", it->rq.frame,
             r->w.pid, h.message);
    *code = KILN_EDEVICE_LOST;
    snprintf(why, cap, "render worker %d lost its device: %.400s", r->w.pid, h.message);
    worker_stop(r);
    return TRY_RETRY;
  }
  kiln_image *img = NULL;
  if (h.code == 0 && (h.code = image_of(&h, m, mlen, &r->setup, &img)) != 0)
    snprintf(h.message, sizeof h.message,
             h.code == KILN_ENOMEM ? "out of memory" : "a malformed reply from render worker");
  free(m);
  if (h.code) {
    kiln_promise_reject(it->promise, h.code, "%s", h.message);
  } else {
    kiln_promise_resolve_owned(it->promise, img, image_free);
    if (iso->recycle && ++r->w.frames >= iso->recycle) {
      worker_stop(r);
      count(iso, &iso->recycles);
    }
  }
  return TRY_DONE;
}

static void run_item(iso_runner *r, iso_item *it) {
  int code = 0;
  char why[512] = "";
  for (uint32_t attempt = 0; attempt < 2; attempt++) {
    it->rq.attempt = attempt;
    if (try_frame(r, it, &code, why, sizeof why) == TRY_DONE) return;
    if (r->iso->stop && atomic_load_explicit(r->iso->stop, memory_order_relaxed)) {
      kiln_promise_reject(it->promise, code, "%s (not retried: the batch is stopping)", why);
      return;
    }
    if (attempt == 0) count(r->iso, &r->iso->retried);
  }
  kiln_promise_reject(it->promise, code, "%s (and again on a fresh worker)", why);
  incident(r->iso, "frame %ld failed: %s twice", it->rq.frame, why);
}

static void *runner_main(void *arg) {
  iso_runner *r = arg;
  void *v = NULL;
  while (kiln_queue_get(r->iso->q, &v, -1) == 0) {
    iso_item *it = v;
    run_item(r, it);
    kiln_future_release(it->promise);
    it->promise = NULL;
    item_free(it);
  }
  worker_stop(r);
  return NULL;
}

/* ---- the set of workers ----------------------------------------------------------------------- */

int kiln__isolate_start(const kiln__iso_setup *setups, size_t n, double frame_timeout_s,
                        uint32_t recycle, const atomic_int *stop, kiln__isolate **out, char *msg,
                        size_t cap) {
  *out = NULL;
  kiln__isolate *iso = calloc(1, sizeof *iso);
  if (!iso || !(iso->runners = calloc(n, sizeof *iso->runners))) {
    free(iso);
    return kiln__say(msg, cap, "out of memory"), KILN_ENOMEM;
  }
  iso->n = n, iso->frame_timeout_s = frame_timeout_s, iso->recycle = recycle, iso->stop = stop;
  pthread_mutex_init(&iso->mu, NULL);
  kiln_queue_config qc;
  kiln_queue_config_default(&qc);
  qc.item_free = item_free;
  int rc = kiln_queue_create(&qc, &iso->q);
  if (rc) {
    kiln__say(msg, cap, "out of memory");
    kiln__isolate_stop(iso, NULL);
    return rc;
  }
  for (size_t i = 0; i < n; i++) {
    iso->runners[i] = (iso_runner){.iso = iso, .index = i, .setup = setups[i]};
  }
  /* all at once: they load the job and build their pipelines in parallel */
  for (size_t i = 0; i < n && !rc; i++) rc = worker_spawn(&iso->runners[i], msg, cap);
  for (size_t i = 0; i < n && !rc; i++) rc = worker_ready(&iso->runners[i], msg, cap);
  for (size_t i = 0; i < n && !rc; i++) {
    if ((rc = -pthread_create(&iso->runners[i].thread, NULL, runner_main, &iso->runners[i]))) {
      kiln__say(msg, cap, "cannot start a thread");
      rc = KILN_ENOMEM;
    } else {
      iso->runners[i].started = true;
    }
  }
  if (rc) {
    kiln__isolate_stop(iso, NULL);
    return rc;
  }
  *out = iso;
  return 0;
}

int kiln__isolate_submit(kiln__isolate *iso, const kiln_job_frame *fr, kiln_future **render) {
  *render = NULL;
  iso_item *it = calloc(1, sizeof *it);
  if (!it) return KILN_ENOMEM;
  it->rq = (kiln__iso_request){.magic = KILN__ISO_MAGIC, .frame = fr->frame, .seed = fr->seed,
                               .camera = fr->camera};
  snprintf(it->rq.where, sizeof it->rq.where, "%s", fr->where);
  if (fr->scene_patch) {
    size_t plen = strlen(fr->scene_patch);
    if (plen > UINT32_MAX - sizeof it->rq) { /* one channel message: at most 2^32 - 1 bytes */
      free(it);
      return KILN_EINVAL;
    }
    if (!(it->patch = strdup(fr->scene_patch))) {
      free(it);
      return KILN_ENOMEM;
    }
    it->rq.patch_len = (uint32_t)plen;
  }
  int rc = kiln_promise_create(render);
  if (rc) {
    free(it->patch);
    free(it);
    return rc;
  }
  it->promise = kiln_future_retain(*render);
  if ((rc = kiln_queue_put(iso->q, it, -1)) != 0) {
    item_free(it); /* rejects the promise */
    kiln_future_release(*render);
    *render = NULL;
  }
  return rc;
}

void kiln__isolate_stop(kiln__isolate *iso, kiln_batch_summary *sum) {
  if (!iso) return;
  if (iso->q) kiln_queue_shutdown(iso->q, false); /* runners finish what was queued, then exit */
  for (size_t i = 0; i < iso->n; i++) {
    iso_runner *r = &iso->runners[i];
    if (r->started) pthread_join(r->thread, NULL);
    else worker_stop(r);
  }
  if (sum) { /* the runners are gone: the counts are final */
    sum->worker_starts = iso->starts, sum->worker_crashes = iso->crashes;
    sum->worker_hangs = iso->hangs, sum->worker_lost = iso->lost;
    sum->worker_recycles = iso->recycles, sum->frames_retried = iso->retried;
    snprintf(sum->incidents, sizeof sum->incidents, "%s", iso->incidents);
    sum->incidents_dropped = iso->incidents_dropped;
  }
  kiln_queue_destroy(iso->q);
  pthread_mutex_destroy(&iso->mu);
  free(iso->runners);
  free(iso);
}
