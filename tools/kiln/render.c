/* render.c: `kiln render`, the batch command (kiln/batch.h) with progress, summary, signals.
 *
 * Exit status: 0 when every selected frame was written (or skipped by --resume), 1 when some
 * failed (the others are written), 2 for a usage, job or scene error (nothing written), 3 when no
 * device matches --device, 128 + the signal when stopped by SIGINT (130) or SIGTERM (143) (frames
 * in flight are finished and written; the summary says how many). 2 is the one a scheduler must
 * not retry (docs/CLUSTER.md). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kiln/batch.h"
#include "kiln/proc.h"
#include "cli.h"

enum { MAX_DEVICES = 16, MAX_FAILURES_KEPT = 1000 };

static void render_usage(FILE *to) {
  fprintf(
      to,
      "usage: kiln render JOB [options]\n"
      "\n"
      "Renders every frame of JOB (a .json job or a .jsonl list of images; see docs/JOBS.md).\n"
      "\n"
      "options:\n"
      "  -o, --output-dir DIR    where files go (default: .)\n"
      "  --scene FILE            the scene of a .jsonl list (or instead of the job's)\n"
      "  --frames A:B[:STEP]     frames A to B inclusive, every STEP-th (A: and :B are open)\n"
      "  --size WxH              image size (default: the job's / scene's)\n"
      "  --spp N                 samples per pixel (default: the job's / scene's)\n"
      "  --device SPEC           auto (default), all, gpu (never the CPU driver), cpu, an index,\n"
      "                          or a name (kiln devices); within CUDA_VISIBLE_DEVICES and the\n"
      "                          like when set (docs/CLUSTER.md);\n"
      "                          a CPU device (lavapipe) is opened twice: two frames at once\n"
      "  --threads N             CPU worker threads (default: one per CPU)\n"
      "  --in-flight N           frames in the pipeline at once (default: 2 per GPU lane)\n"
      "  --passes LIST           extra passes: depth,normal,albedo,id,instance,uv,position,\n"
      "                          objcoord,nocs,category,flow_fwd,flow_bwd,\n"
      "                          motion_fwd,motion_bwd (colour always)\n"
      "  --format F              png, png16, jpg, exr, npy, hdr, or exr-multi (one multilayer\n"
      "                          EXR a frame with every pass) (default: the job's, or png)\n"
      "  --exr-half              EXR float channels as 16-bit half (ids stay exact)\n"
      "  --exr-compression C     none, rle, zips, zip (default) or piz\n"
      "  --tar N                 WebDataset shards: N frames a tar, DIR/shard-000000.tar, ...,\n"
      "                          members NAME.PASS.EXT (docs/JOBS.md, \"Output layouts\")\n"
      "  --template T            output names, inside DIR (default: the job's,\n"
      "                          {frame:05d}_{pass}.{ext})\n"
      "  --resume                skip frames whose files all exist\n"
      "  --overwrite             replace existing files\n"
      "  --durable               fsync every file (survives power loss, slower)\n"
      "  --json FILE             write the summary as JSON to FILE\n"
      "  --contact-sheet FILE    write a PNG grid of thumbnails (FILE inside the output folder)\n"
      "  --manifest FILE         write a JSON line per frame written or found complete (index,\n"
      "                          frame, name, seed, files) to FILE, inside the output folder\n"
      "  --annotations           each rendered frame's ground truth in its manifest line (the\n"
      "                          camera's K and pose; per instance: ids, name, category, pose,\n"
      "                          2D boxes, visible and unoccluded pixels, projected 3D box), and\n"
      "                          ids.json in DIR (docs/DATASETS.md); the manifest defaults to\n"
      "                          DIR/annotations.jsonl (annotations_{shard}.jsonl sharded)\n"
      "  --writer coco|bop       also write a dataset (implies --annotations): coco: DIR/coco.json\n"
      "                          (coco_K.json for shard K: kiln merge joins them); bop: the BOP\n"
      "                          scene DIR/bop/SSSSSS, S the shard (docs/DATASETS.md); not with --claim\n"
      "\n"
      "many processes, one job (docs/CLUSTER.md; {shard} in --json and --manifest becomes the\n"
      "shard number, or HOST-PID with --claim):\n"
      "  --shard K/N             render the K-th (0-based) of N disjoint parts of the frames\n"
      "  --shard auto            K and N from the launcher: Slurm array, Open MPI, PMI, srun,\n"
      "                          Kubernetes Indexed Job (JOB_COMPLETION_INDEX, with --shards)\n"
      "  --shards N              N for a Kubernetes Indexed Job (else KILN_SHARDS)\n"
      "  --shard-mode M          round-robin (default: frame K, K+N, ...) or contiguous\n"
      "  --claim                 take chunks of frames through claim files in DIR/.kiln-claims,\n"
      "                          with any number of processes on any hosts (implies --resume)\n"
      "  --chunk N               frames per claim (default 64)\n"
      "  --claim-timeout S       take over a claim without a heartbeat for S seconds (default\n"
      "                          120)\n"
      "  --allow-outside-output  let --template and --contact-sheet name absolute paths and\n"
      "                          '..' (a job's own template never may)\n"
      "\n"
      "render workers (docs/PROCESSES.md, \"Isolated rendering\"):\n"
      "  --isolate               render in worker processes, one per device lane: a worker that\n"
      "                          crashes, hangs or loses its device is replaced and its frame\n"
      "                          retried once on a fresh worker; the batch goes on\n"
      "  --frame-timeout S       with --isolate: kill a worker whose frame takes longer than S\n"
      "                          seconds (default: no limit)\n"
      "  --recycle N             with --isolate: replace each worker after N frames\n"
      "  (KILN_FAULT=segv@50,hang@120,exit@7,lost@9 in the environment makes --isolate's workers\n"
      "  fail on those frames' first attempt, or every attempt with segv!@50: for testing)\n"
      "\n"
      "  --quiet                 no progress and no summary; failures are still reported\n"
      "  -h, --help              this text\n"
      "\n"
      "exit status: 0 all frames written, 1 some frames failed (retrying may help),\n"
      "2 usage/job/scene error (retrying will not help), 3 no device as --device asks,\n"
      "130 stopped by SIGINT (Ctrl-C), 143 stopped by SIGTERM (frames in flight are finished\n"
      "and written; --resume goes on).\n");
}

/* ---- signals ------------------------------------------------------------------------------- */

/* SIGINT and SIGTERM are blocked in every thread from the start (threads inherit the mask) and
 * taken by one thread that waits for them with sigwait, so no code runs in a signal handler. The
 * first one stops the batch (frames in flight finish; exit 130), or ends the process at once while
 * the job is still loading (nothing written yet); a second one ends the process at once. SIGUSR2
 * tells the thread to quit when the batch is over. */
static _Atomic(kiln_batch *) g_batch;
static atomic_int g_signal;

static void *signal_thread(void *arg) {
  (void)arg;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR2);
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0 || sig == SIGUSR2) return NULL;
    kiln_batch *b = atomic_load(&g_batch);
    if (atomic_exchange(&g_signal, sig) != 0 || !b) { /* second signal, or nothing to stop */
      signal(sig, SIG_DFL);
      sigset_t one;
      sigemptyset(&one);
      sigaddset(&one, sig);
      pthread_sigmask(SIG_UNBLOCK, &one, NULL);
      raise(sig);
      _exit(128 + sig);
    }
    kiln_batch_stop(b);
  }
}

/* ---- progress ----------------------------------------------------------------------------- */

typedef struct failure {
  long frame;
  char where[600];
  char message[400];
} failure;

typedef struct progress {
  bool quiet, tty;
  double last_print;
  failure *fails;
  size_t nfails;
  uint64_t failed;
  bool bar_shown;
} progress;

static void fmt_duration(double s, char *buf, size_t cap) {
  if (!(s >= 0) || s > 360000) {
    snprintf(buf, cap, "--:--");
    return;
  }
  long t = (long)(s + 0.5);
  if (t >= 3600) snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  else snprintf(buf, cap, "%ld:%02ld", t / 60, t % 60);
}

static void on_progress(void *arg, const kiln_batch_event *ev) {
  progress *p = arg;
  if (ev->status < 0) {
    if (p->nfails < MAX_FAILURES_KEPT) {
      failure *f = &p->fails[p->nfails++];
      f->frame = ev->frame->frame;
      snprintf(f->where, sizeof f->where, "%s", ev->frame->where);
      snprintf(f->message, sizeof f->message, "%s", ev->message);
    }
    if (p->bar_shown) fputc('\n', stderr), p->bar_shown = false;
    fprintf(stderr, "kiln render: frame %ld (%s) failed: %s\n", ev->frame->frame, ev->frame->where,
            ev->message[0] ? ev->message : "unknown error");
  }
  if (p->quiet) return;
  uint64_t finished = ev->done + ev->failed + ev->skipped;
  bool last = finished >= ev->total;
  if (!last && ev->elapsed_s - p->last_print < (p->tty ? 0.1 : 1.0)) return;
  p->last_print = ev->elapsed_s;
  double rate = ev->elapsed_s > 0 ? (double)ev->done / ev->elapsed_s : 0;
  char eta[32];
  fmt_duration(rate > 0 ? (double)(ev->total - finished) / rate : -1, eta, sizeof eta);
  if (p->tty) {
    enum { W = 30 };
    int fill = ev->total ? (int)((double)finished / (double)ev->total * W) : W;
    char bar[W + 1];
    for (int i = 0; i < W; i++) bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
    bar[W] = 0;
    fprintf(stderr, "\r[%s] %llu/%llu  failed %llu  %.2f img/s  ETA %s ", bar,
            (unsigned long long)finished, (unsigned long long)ev->total,
            (unsigned long long)ev->failed, rate, eta);
    p->bar_shown = true;
    if (last) fputc('\n', stderr), p->bar_shown = false;
  } else {
    fprintf(stderr,
            "kiln render: %llu/%llu frames, %llu failed, %llu skipped, %.2f img/s, ETA %s\n",
            (unsigned long long)finished, (unsigned long long)ev->total,
            (unsigned long long)ev->failed, (unsigned long long)ev->skipped, rate, eta);
  }
  fflush(stderr);
}

/* ---- summary -------------------------------------------------------------------------------- */

/* Writes the summary as JSON to path atomically (temporary file, then rename). */
static int write_json(const char *path, const kiln_batch_summary *s, const progress *p, int code,
                      const char *job, const kiln_batch_config *sh, double setup_s) {
  const char *out_dir = sh->out_dir, *contact_sheet = sh->contact_sheet;
  char tmp[PATH_MAX];
  FILE *f = kiln_cli_atomic_open(path, tmp, sizeof tmp);
  if (!f) return errno;
  fprintf(f, "{\n  \"job\": ");
  kiln_cli_json_string(f, job);
  fprintf(f, ",\n  \"output_dir\": ");
  kiln_cli_json_string(f, out_dir);
  fprintf(f,
          ",\n  \"exit_code\": %d,\n  \"frames\": {\"selected\": %llu, \"written\": %llu, "
          "\"failed\": %llu, \"skipped\": %llu, \"elsewhere\": %llu},\n  \"files\": %llu,\n"
          "  \"bytes\": %llu,\n"
          "  \"stopped\": %s,\n  \"setup_s\": %.6f,\n  \"wall_s\": %.6f,\n"
          "  \"first_image_s\": %.6f,\n"
          "  \"images_per_s\": %.6f,\n  \"peak_rss_bytes\": %llu,\n"
          "  \"stages_s\": {\"prepare\": %.6f, \"render\": %.6f, \"convert\": %.6f, "
          "\"encode\": %.6f, \"write\": %.6f},\n",
          code, (unsigned long long)s->total, (unsigned long long)s->written,
          (unsigned long long)s->failed, (unsigned long long)s->skipped,
          (unsigned long long)s->elsewhere, (unsigned long long)s->files, (unsigned long long)s->bytes, s->stopped ? "true" : "false",
          setup_s, s->wall_s, s->written ? setup_s + s->first_image_s : 0, s->images_per_s,
          (unsigned long long)s->peak_rss_bytes, s->prepare_s, s->render_s, s->readback_s,
          s->encode_s, s->write_s);
  if (sh->shards > 1)
    fprintf(f, "  \"shard\": {\"index\": %u, \"count\": %u, \"mode\": \"%s\"},\n", sh->shard,
            sh->shards, sh->shard_mode == KILN_SHARD_CONTIGUOUS ? "contiguous" : "round-robin");
  else fprintf(f, "  \"shard\": null,\n");
  if (sh->claim)
    fprintf(f, "  \"claim\": {\"chunk\": %u, \"chunks_claimed\": %llu, \"taken_over\": %llu},\n",
            sh->chunk ? sh->chunk : 64, (unsigned long long)s->chunks_claimed,
            (unsigned long long)s->chunks_taken_over);
  else fprintf(f, "  \"claim\": null,\n");
  if (sh->isolate) {
    fprintf(f,
            "  \"isolate\": {\"worker_starts\": %llu, \"crashes\": %llu, \"hangs\": %llu, "
            "\"device_lost\": %llu, \"recycles\": %llu, \"frames_retried\": %llu, "
            "\"incidents\": [",
            (unsigned long long)s->worker_starts, (unsigned long long)s->worker_crashes,
            (unsigned long long)s->worker_hangs, (unsigned long long)s->worker_lost,
            (unsigned long long)s->worker_recycles, (unsigned long long)s->frames_retried);
    int n = 0, len;
    for (const char *l = s->incidents; *l; l += len + (l[len] == '\n')) {
      len = (int)strcspn(l, "\n");
      char line[512];
      snprintf(line, sizeof line, "%.*s", len, l);
      fputs(n++ ? ", " : "", f);
      kiln_cli_json_string(f, line);
    }
    fprintf(f, "], \"incidents_dropped\": %llu},\n", (unsigned long long)s->incidents_dropped);
  } else {
    fprintf(f, "  \"isolate\": null,\n");
  }
  fprintf(f, "  \"manifest\": ");
  if (sh->manifest && s->manifest_status == 0) kiln_cli_json_string(f, sh->manifest);
  else fputs("null", f);
  fprintf(f, ",\n  \"contact_sheet\": ");
  if (contact_sheet && s->contact_sheet_status == 0) kiln_cli_json_string(f, contact_sheet);
  else fputs("null", f);
  fprintf(f, ",\n  \"failures\": [");
  for (size_t i = 0; i < p->nfails; i++) {
    fprintf(f, "%s\n    {\"frame\": %ld, \"where\": ", i ? "," : "", p->fails[i].frame);
    kiln_cli_json_string(f, p->fails[i].where);
    fprintf(f, ", \"message\": ");
    kiln_cli_json_string(f, p->fails[i].message);
    fputc('}', f);
  }
  fprintf(f, "%s]\n}\n", p->nfails ? "\n  " : "");
  return kiln_cli_atomic_commit(f, tmp, path, true);
}

static void print_summary(const kiln_batch_summary *s, const progress *p, const char *out_dir,
                          double setup_s, bool isolate) {
  char wall[32];
  fmt_duration(s->wall_s, wall, sizeof wall);
  printf("kiln render: %s%llu of %llu frames written", s->stopped ? "stopped: " : "",
         (unsigned long long)s->written, (unsigned long long)s->total);
  if (s->skipped > s->elsewhere)
    printf(", %llu skipped (already there)", (unsigned long long)(s->skipped - s->elsewhere));
  if (s->elsewhere)
    printf(", %llu rendered by other processes", (unsigned long long)s->elsewhere);
  printf(", %llu failed, into %s\n", (unsigned long long)s->failed, out_dir);
  printf("  %.2f images/s, wall %s (%.2f s), first image %.2f s after start (loading and devices "
         "%.2f s), %llu files, %.1f MiB\n",
         s->images_per_s, wall, s->wall_s, s->written ? setup_s + s->first_image_s : 0, setup_s,
         (unsigned long long)s->files, (double)s->bytes / 1048576.0);
  printf("  peak memory %.1f MiB; stage time summed over frames: prepare %.2f s, render %.2f s, "
         "convert %.2f s, encode %.2f s, write %.2f s\n",
         (double)s->peak_rss_bytes / 1048576.0, s->prepare_s, s->render_s, s->readback_s,
         s->encode_s, s->write_s);
  if (s->chunks_claimed || s->elsewhere)
    printf("  claims: %llu chunks rendered here, %llu of them taken over from expired claims\n",
           (unsigned long long)s->chunks_claimed, (unsigned long long)s->chunks_taken_over);
  if (isolate) {
    printf("  render workers: %llu started, %llu crashed, %llu hung, %llu lost their device, %llu "
           "recycled; %llu frames retried\n",
           (unsigned long long)s->worker_starts, (unsigned long long)s->worker_crashes,
           (unsigned long long)s->worker_hangs, (unsigned long long)s->worker_lost,
           (unsigned long long)s->worker_recycles, (unsigned long long)s->frames_retried);
    int len;
    for (const char *l = s->incidents; *l; l += len + (l[len] == '\n')) {
      len = (int)strcspn(l, "\n");
      printf("  incident: %.*s\n", len, l);
    }
    if (s->incidents_dropped)
      printf("  ... and %llu more incidents\n", (unsigned long long)s->incidents_dropped);
  }
  for (size_t i = 0; i < p->nfails && i < 20; i++)
    printf("  failed: frame %ld (%s): %s\n", p->fails[i].frame, p->fails[i].where,
           p->fails[i].message);
  if (s->failed > 20)
    printf("  ... and %llu more failures\n", (unsigned long long)(s->failed - 20));
}

/* ---- options ---------------------------------------------------------------------------------- */

#define usage_error(...) kiln_cli_usage_error("render", __VA_ARGS__)

/* The error that ends a run with exit status 2, printed and kept for --json. */
static char g_error[2048];

static void setup_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void setup_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_error, sizeof g_error, fmt, ap);
  va_end(ap);
  size_t n = strlen(g_error);
  if (n && g_error[n - 1] == '\n') g_error[n - 1] = 0;
  fprintf(stderr, "kiln render: %s\n", g_error);
}

/* --json for a run that ended before rendering (exit 2 or 3): the error, atomically. */
static void write_error_json(const char *path, const char *job, int code) {
  char tmp[PATH_MAX];
  FILE *f = kiln_cli_atomic_open(path, tmp, sizeof tmp);
  if (!f) return;
  fprintf(f, "{\n  \"job\": ");
  kiln_cli_json_string(f, job);
  fprintf(f, ",\n  \"exit_code\": %d,\n  \"error\": ", code);
  kiln_cli_json_string(f, g_error);
  fprintf(f, "\n}\n");
  (void)kiln_cli_atomic_commit(f, tmp, path, true); /* a run that failed anyway: nothing to add */
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void on_gpu_log(void *arg, kiln_gpu_log_level level, const char *msg) {
  (void)arg;
  if (level >= KILN_GPU_LOG_WARN) fprintf(stderr, "kiln render: %s\n", msg);
}

int kiln_cli_render(int argc, char **argv) {
  double t_start = now_s();
  const char *job_path = NULL, *scene = NULL, *device = "auto", *json_path = NULL;
  long threads = 0, in_flight = 0;
  bool quiet = false, shard_auto = false;
  const char *manifest = NULL;
  uint32_t flag_shards = 0;
  kiln_batch_config bc;
  kiln_batch_config_default(&bc);
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE()                                   \
  do {                                                 \
    if (!v) return usage_error("%s needs a value", a); \
    i++;                                               \
  } while (0)
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      render_usage(stdout);
      return 0;
    } else if (!strcmp(a, "-o") || !strcmp(a, "--output-dir")) {
      NEED_VALUE();
      bc.out_dir = v;
    } else if (!strcmp(a, "--scene")) {
      NEED_VALUE();
      scene = v;
    } else if (!strcmp(a, "--frames")) {
      NEED_VALUE();
      if (!kiln_cli_parse_frames(v, &bc.first, &bc.last, &bc.step))
        return usage_error("--frames %s: expected A:B, A:B:STEP, A:, :B or N (A <= B, STEP >= 1)",
                           v);
    } else if (!strcmp(a, "--size")) {
      NEED_VALUE();
      if (!kiln_cli_parse_size(v, &bc.width, &bc.height))
        return usage_error("--size %s: expected WxH, e.g. 256x256 (1..16384)", v);
    } else if (!strcmp(a, "--spp")) {
      NEED_VALUE();
      long n;
      if (!kiln_cli_parse_long(v, 1, 1 << 20, &n)) return usage_error("--spp %s: expected 1..1048576", v);
      bc.spp = (int32_t)n;
    } else if (!strcmp(a, "--device")) {
      NEED_VALUE();
      device = v;
    } else if (!strcmp(a, "--threads")) {
      NEED_VALUE();
      if (!kiln_cli_parse_long(v, 1, 1024, &threads))
        return usage_error("--threads %s: expected 1..1024", v);
    } else if (!strcmp(a, "--in-flight")) {
      NEED_VALUE();
      if (!kiln_cli_parse_long(v, 1, 4096, &in_flight))
        return usage_error("--in-flight %s: expected 1..4096", v);
      bc.in_flight = (size_t)in_flight;
    } else if (!strcmp(a, "--passes")) {
      NEED_VALUE();
      kiln_error_detail pe;
      if (kiln_pass_parse(v, &bc.passes, &pe)) return usage_error("--passes %s: %s", v, pe.message);
    } else if (!strcmp(a, "--format")) {
      NEED_VALUE();
      kiln_format f;
      if (kiln_format_parse(v, &f))
        return usage_error("--format %s: expected png, png16, jpg, exr, npy, hdr or exr-multi",
                           v);
      bc.format = f;
    } else if (!strcmp(a, "--exr-half")) {
      bc.exr_half = true;
    } else if (!strcmp(a, "--exr-compression")) {
      NEED_VALUE();
      if (!kiln_cli_exr_compression(v, &bc.exr_compression))
        return usage_error("--exr-compression %s: expected none, rle, zips, zip or piz", v);
    } else if (!strcmp(a, "--tar")) {
      NEED_VALUE();
      long n;
      if (!kiln_cli_parse_long(v, 1, 1 << 24, &n))
        return usage_error("--tar %s: expected 1..16777216 frames a tar", v);
      bc.tar_frames = (uint32_t)n;
    } else if (!strcmp(a, "--template")) {
      NEED_VALUE();
      bc.output = v;
    } else if (!strcmp(a, "--resume")) {
      bc.resume = true;
    } else if (!strcmp(a, "--overwrite")) {
      bc.overwrite = true;
    } else if (!strcmp(a, "--annotations")) {
      bc.annotations = true;
    } else if (!strcmp(a, "--durable")) {
      bc.durable = true;
    } else if (!strcmp(a, "--json")) {
      NEED_VALUE();
      json_path = v;
    } else if (!strcmp(a, "--contact-sheet")) {
      NEED_VALUE();
      bc.contact_sheet = v;
    } else if (!strcmp(a, "--manifest")) {
      NEED_VALUE();
      manifest = v;
    } else if (!strcmp(a, "--writer")) {
      NEED_VALUE();
      if (!strcmp(v, "coco")) bc.writer = KILN_WRITER_COCO;
      else if (!strcmp(v, "bop")) bc.writer = KILN_WRITER_BOP;
      else return usage_error("--writer %s: expected coco or bop", v);
      bc.annotations = true; /* the writers work from each frame's ground truth */
    } else if (!strcmp(a, "--shard")) {
      NEED_VALUE();
      if (!strcmp(v, "auto")) shard_auto = true;
      else if (!kiln_cli_shard_parse(v, &bc.shard, &bc.shards))
        return usage_error("--shard %s: expected K/N with 0 <= K < N, or auto", v);
    } else if (!strcmp(a, "--shards")) {
      NEED_VALUE();
      long n;
      if (!kiln_cli_parse_long(v, 1, UINT32_MAX, &n)) return usage_error("--shards %s: expected 1..%u", v,
                                                                UINT32_MAX);
      flag_shards = (uint32_t)n;
    } else if (!strcmp(a, "--shard-mode")) {
      NEED_VALUE();
      if (kiln_shard_mode_parse(v, &bc.shard_mode))
        return usage_error("--shard-mode %s: expected round-robin or contiguous", v);
    } else if (!strcmp(a, "--claim")) {
      bc.claim = true;
    } else if (!strcmp(a, "--chunk")) {
      NEED_VALUE();
      long n;
      if (!kiln_cli_parse_long(v, 1, 1 << 24, &n)) return usage_error("--chunk %s: expected 1..16777216", v);
      bc.chunk = (uint32_t)n;
    } else if (!strcmp(a, "--claim-timeout")) {
      NEED_VALUE();
      char *end;
      errno = 0;
      double t = strtod(v, &end);
      if (errno || end == v || *end || !(t >= 0.2 && t <= 7 * 86400.0))
        return usage_error("--claim-timeout %s: expected seconds, 0.2 to 604800", v);
      bc.claim_timeout_s = t;
    } else if (!strcmp(a, "--allow-outside-output")) {
      bc.allow_outside_out_dir = true;
    } else if (!strcmp(a, "--isolate")) {
      bc.isolate = true;
    } else if (!strcmp(a, "--frame-timeout")) {
      NEED_VALUE();
      char *end;
      errno = 0;
      double t = strtod(v, &end);
      if (errno || end == v || *end || !(t > 0 && t <= 7 * 86400.0))
        return usage_error("--frame-timeout %s: expected seconds, above 0 and up to 604800", v);
      bc.frame_timeout_s = t;
    } else if (!strcmp(a, "--recycle")) {
      NEED_VALUE();
      long n;
      if (!kiln_cli_parse_long(v, 1, UINT32_MAX, &n))
        return usage_error("--recycle %s: expected 1..%u frames", v, UINT32_MAX);
      bc.recycle = (uint32_t)n;
    } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
      quiet = true;
    } else if (a[0] == '-' && a[1]) {
      return usage_error("unknown option %s", a);
    } else if (!job_path) {
      job_path = a;
    } else {
      return usage_error("one job at a time (got %s and %s)", job_path, a);
    }
#undef NEED_VALUE
  }
  if (!job_path) return usage_error("no job given");
  if (bc.claim && (shard_auto || bc.shards))
    return usage_error("--claim and --shard exclude each other (claiming shares out the frames)");
  if ((bc.chunk || bc.claim_timeout_s) && !bc.claim)
    return usage_error("--chunk and --claim-timeout go with --claim");
  if (flag_shards && !shard_auto) return usage_error("--shards goes with --shard auto");
  if (bc.claim && bc.contact_sheet)
    return usage_error("--contact-sheet needs every frame in one run: not with --claim");
  char shard_from[600] = "";
  if (shard_auto) {
    char why[512];
    if (kiln_cli_shard_auto(flag_shards, &bc.shard, &bc.shards, shard_from, sizeof shard_from, why,
                            sizeof why))
      return usage_error("--shard auto: %s", why);
  }
  /* {shard} in --json and --manifest: each process of a sharded or claiming run its own file */
  char shard_name[96], json_buf[PATH_MAX], manifest_buf[PATH_MAX];
  if (bc.claim) {
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    host[strcspn(host, ".")] = 0;
    snprintf(shard_name, sizeof shard_name, "%s-%ld", host, (long)getpid());
  } else {
    snprintf(shard_name, sizeof shard_name, "%u", bc.shard);
  }
  if (json_path && !(json_path = kiln_cli_with_shard(json_path, shard_name, json_buf, sizeof json_buf)))
    return usage_error("--json: the name is too long");
  if (bc.annotations && !manifest) /* the library's default, named here for the summary */
    manifest = bc.claim || bc.shards > 1 ? "annotations_{shard}.jsonl" : "annotations.jsonl";
  if (manifest &&
      !(bc.manifest = kiln_cli_with_shard(manifest, shard_name, manifest_buf, sizeof manifest_buf)))
    return usage_error("--manifest: the name is too long");
  if (bc.resume && bc.overwrite) return usage_error("--resume and --overwrite exclude each other");
  if ((bc.frame_timeout_s > 0 || bc.recycle) && !bc.isolate)
    return usage_error("--frame-timeout and --recycle go with --isolate");
  if (bc.isolate) {
    const char *faults = getenv("KILN_FAULT");
    if (faults && *faults) bc.faults = faults;
    /* the workers' fork server: started now, while this is the only thread and before Vulkan,
     * so that every worker starts from a clean, single-threaded copy of the program */
    int frc = kiln_forkserver_start();
    if (frc) {
      fprintf(stderr, "kiln render: cannot start the fork server for --isolate: %s\n",
              kiln_strerror(frc));
      return 2;
    }
  }
  if (!bc.out_dir) bc.out_dir = ".";
  const char *why;
  if (bc.output && !bc.allow_outside_out_dir && (why = kiln_cli_leaves_folder(bc.output)))
    return usage_error("--template %s: %s (--allow-outside-output allows it)", bc.output, why);
  if (bc.contact_sheet && !bc.allow_outside_out_dir && (why = kiln_cli_leaves_folder(bc.contact_sheet)))
    return usage_error("--contact-sheet %s: %s (--allow-outside-output allows it)",
                       bc.contact_sheet, why);
  if (bc.manifest && !bc.allow_outside_out_dir && (why = kiln_cli_leaves_folder(bc.manifest)))
    return usage_error("--manifest %s: %s (--allow-outside-output allows it)", bc.manifest, why);
  if (bc.shards > 1 && !quiet)
    fprintf(stderr, "kiln render: shard %u/%u (%s%s%s)\n", bc.shard, bc.shards,
            shard_from[0] ? "from " : "--shard", shard_from,
            bc.shard_mode == KILN_SHARD_CONTIGUOUS ? "; contiguous" : "; round-robin");

  int code = 2;
  kiln_pool *pool = NULL;
  kiln_gpu *gpu = NULL;
  kiln_gpu_device *devs[MAX_DEVICES] = {0};
  size_t ndevs = 0;
  kiln_job *job = NULL;
  kiln_batch *batch = NULL;
  progress prog = {.quiet = quiet, .tty = isatty(STDERR_FILENO) != 0};
  prog.fails = calloc(MAX_FAILURES_KEPT, sizeof *prog.fails);
  char msg[2048];

  kiln_pool_config pc;
  kiln_pool_config_default(&pc);
  if (threads) pc.threads = (int)threads;
  sigset_t stop_set, old_mask;
  sigemptyset(&stop_set);
  sigaddset(&stop_set, SIGINT);
  sigaddset(&stop_set, SIGTERM);
  sigaddset(&stop_set, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &stop_set, &old_mask); /* every thread made from here on too */
  pthread_t sig_thread;
  bool sig_thread_ok = pthread_create(&sig_thread, NULL, signal_thread, NULL) == 0;
  int rc = prog.fails ? kiln_pool_create(&pc, &pool) : KILN_ENOMEM;
  if (rc) {
    setup_error("cannot start the worker threads: %s\n", kiln_strerror(rc));
    goto out;
  }

  kiln_error_detail err;
  kiln_job_options jo = {scene, pool};
  rc = kiln_job_load(job_path, &jo, &err, &job);
  if (rc) {
    setup_error("%s\n", kiln_error_detail_format(&err, msg, sizeof msg));
    goto out;
  }
  /* what the scene's files ask for that kiln does not render (an MTL key, a glTF feature): shown
   * once, quiet or not; the frames' override loads repeat them and are not shown again */
  const kiln_scene *js = kiln_job_scene(job);
  for (size_t i = 0; js && i < kiln_scene_warning_count(js); i++)
    fprintf(stderr, "%s: warning: %s\n", scene ? scene : job_path, kiln_scene_warning(js, i));

  kiln_gpu_config gc;
  kiln_gpu_config_default(&gc);
  gc.log = on_gpu_log;
  rc = kiln_gpu_create(&gc, &gpu);
  if (rc) {
    setup_error("no Vulkan: %s (install a driver, e.g. mesa-vulkan-drivers)\n", kiln_strerror(rc));
    code = 3; /* this node cannot render: another may */
    goto out;
  }
  uint32_t idx[MAX_DEVICES];
  /* the devices the scheduler allocated (CUDA_VISIBLE_DEVICES and the like), then --device */
  rc = kiln_cli_pick_devices(gpu, "kiln render", device, idx, MAX_DEVICES, &ndevs, quiet, msg,
                             sizeof msg);
  if (rc) {
    setup_error("%s\n", msg);
    code = rc;
    ndevs = 0;
    goto out;
  }
  /* A CPU device (lavapipe) has one queue, and each dispatch ends with a core idle while the
   * other finishes the last workgroups: opened twice, two frames render at once and fill those
   * gaps (about 10% more images/s on two cores; docs/PERFORMANCE.md). */
  for (size_t i = 0, n = ndevs; i < n && ndevs < MAX_DEVICES; i++) {
    kiln_gpu_device_info info;
    if (!kiln_gpu_get_device_info(gpu, idx[i], &info) && info.type == KILN_GPU_TYPE_CPU)
      idx[ndevs++] = idx[i];
  }
  for (size_t i = 0; i < ndevs; i++) {
    rc = kiln_gpu_device_open(gpu, idx[i], NULL, &devs[i]);
    if (rc) {
      setup_error("cannot open device %u: %s\n", idx[i], kiln_strerror(rc));
      ndevs = i;
      goto out;
    }
  }

  bc.pool = pool;
  bc.devs = devs;
  bc.ndevs = ndevs;
  bc.progress = on_progress;
  bc.progress_arg = &prog;
  rc = kiln_batch_create(job, &bc, &batch, &err);
  if (rc) {
    if (bc.output && !strcmp(err.path, "output")) /* the error is in --template */
      setup_error("--template %s: %s\n", bc.output, err.message);
    else
      setup_error("%s\n", kiln_error_detail_format(&err, msg, sizeof msg));
    goto out;
  }
  if (!quiet) {
    kiln_job_info ji;
    kiln_job_get_info(job, &ji);
    fprintf(stderr, "kiln render: %s (%llu frames%s) into %s on", job_path,
            (unsigned long long)ji.count,
            bc.first != LONG_MIN || bc.last != LONG_MAX || bc.step != 1 ? ", --frames selects some"
                                                                        : "",
            bc.out_dir);
    for (size_t i = 0, shown = 0; i < ndevs; i++) {
      size_t times = 0, seen = 0;
      for (size_t j = 0; j < ndevs; j++)
        times += idx[j] == idx[i], seen += j < i && idx[j] == idx[i];
      if (seen) continue; /* a CPU device opened twice: named once, "x2" */
      kiln_gpu_device_info di;
      kiln_gpu_device_get_info(devs[i], &di);
      fprintf(stderr, "%s %s", shown++ ? "," : "", di.name);
      if (times > 1) fprintf(stderr, " x%zu", times);
    }
    fprintf(stderr, ", %d threads\n", kiln_pool_threads(pool));
  }

  atomic_store(&g_batch, batch);
  kiln_batch_summary sum;
  double setup_s = now_s() - t_start; /* job and scene loading, devices */
  rc = kiln_batch_run(batch, &sum, &err);
  if (rc) {
    setup_error("%s\n", err.message[0] ? err.message : kiln_strerror(rc));
    code = 2;
    goto out;
  }
  /* the run's outcome is in the summary: every frame written or skipped, some failed, or stopped */
  int sig = atomic_load(&g_signal);
  code = sum.stopped && sig ? 128 + sig : sum.failed ? 1 : 0;
  if (bc.manifest && sum.manifest_status) {
    fprintf(stderr, "kiln render: %s\n", sum.manifest_message);
    if (code == 0) code = 1;
  }
  if (bc.writer && sum.writer_status) {
    fprintf(stderr, "kiln render: dataset: %s\n", sum.writer_message);
    if (code == 0) code = 1;
  }
  if (bc.contact_sheet && sum.contact_sheet_status) {
    fprintf(stderr, "kiln render: contact sheet %s: %s\n", bc.contact_sheet,
            sum.contact_sheet_message);
    if (code == 0) code = 1;
  }
  if (!quiet) {
    print_summary(&sum, &prog, bc.out_dir, setup_s, bc.isolate);
    if (bc.contact_sheet && sum.contact_sheet_status == 0)
      printf("  contact sheet: %s%s%s\n", bc.contact_sheet[0] == '/' ? "" : bc.out_dir,
             bc.contact_sheet[0] == '/' ? "" : "/", bc.contact_sheet);
  }
  if (json_path) {
    int e =
        write_json(json_path, &sum, &prog, code, job_path, &bc, setup_s);
    if (e) {
      fprintf(stderr, "kiln render: cannot write %s: %s\n", json_path, strerror(e));
      if (code == 0) code = 1;
    }
  }

out:
  if (sig_thread_ok) { /* before the batch goes: the thread may be stopping it */
    pthread_kill(sig_thread, SIGUSR2);
    pthread_join(sig_thread, NULL);
  }
  atomic_store(&g_batch, NULL);
  pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
  if ((code == 2 || code == 3) && json_path) write_error_json(json_path, job_path, code);
  kiln_batch_destroy(batch);
  kiln_job_destroy(job);
  for (size_t i = 0; i < ndevs; i++) kiln_gpu_device_close(devs[i]);
  kiln_gpu_destroy(gpu);
  kiln_pool_destroy(pool);
  free(prog.fails);
  return code;
}
