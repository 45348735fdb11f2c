/* test_batch.c: the batch pipeline through the library (kiln/batch.h): a device lost mid-batch
 * (its frames are issued again on the other device, and the files are what one device alone
 * writes), the progress callback and kiln_batch_stop, frames with scene overrides (their own scene,
 * BVH and upload), a frame whose override fails only when its scene loads, and one run per output
 * folder (a second one, in this process, another or kiln render, fails at once). */
// kt: timeout 300
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdatomic.h>

#include "batch_internal.h"
#include "cli_test_util.h"
#include "gpu/gpu_test_util.h"
#include "kiln/batch.h"
#include "kt.h"

static char *path_in(const char *dir, const char *name) { return fmt("%s/%s", dir, name); }

/* An animation of n frames of the Cornell box at 16x16, 2 spp. */
static char *anim_job(const char *dir, int n) {
  char *p = path_in(dir, "job.json");
  write_text(
      p,
      fmt("{\"scene\": \"%s/examples/cornell/scene.json\", \"width\": 16, \"height\": 16, "
          "\"spp\": 2, \"animation\": {\"frames\": {\"start\": 0, \"end\": %d}, \"camera\": "
          "{\"orbit\": {\"center\": [0.278, 0.273, 0.28], \"start_angle\": 170, \"degrees\": 20}}}}",
          KILN_SOURCE_DIR, n - 1));
  return p;
}

typedef struct counts {
  int written, failed, skipped, events;
  kiln_batch *stop_after_two;
  const kiln__batch_hooks *hooks; /* replaces the batch's, or NULL */
  int last_status;
  char last_error[1400];
} counts;

static void on_event(void *arg, const kiln_batch_event *ev) {
  counts *c = arg;
  c->events++;
  if (ev->status == 0) c->written++;
  else if (ev->status == 1 || ev->status == 2) c->skipped++;
  else
    c->failed++,
        snprintf(c->last_error, sizeof c->last_error, "%s: %s", ev->frame->where, ev->message);
  if (ev->status < 0) c->last_status = ev->status;
  if ((uint64_t)c->written != ev->done || (uint64_t)c->failed != ev->failed)
    KT_FAIL("event counts drift");
  if (c->stop_after_two && c->written == 2) kiln_batch_stop(c->stop_after_two);
}

static int run_batch(kiln_job *job, kiln_pool *pool, kiln_gpu_device **devs, size_t n,
                     const char *out, size_t in_flight, counts *c, kiln_batch_summary *sum) {
  kiln_batch_config bc;
  kiln_batch_config_default(&bc);
  bc.pool = pool, bc.devs = devs, bc.ndevs = n, bc.out_dir = out, bc.in_flight = in_flight;
  bc.passes = KILN_PASS_COLOR | KILN_PASS_DEPTH;
  bc.progress = on_event, bc.progress_arg = c;
  kiln_batch *b;
  kiln_error_detail err;
  int rc = kiln_batch_create(job, &bc, &b, &err);
  if (rc) KT_FAIL("kiln_batch_create: %s", err.message);
  if (c->stop_after_two) c->stop_after_two = b;
  if (c->hooks) kiln__batch_set_hooks(b, c->hooks);
  rc = kiln_batch_run(b, sum, &err);
  KT_EQ(err.code, rc);
  kiln_batch_destroy(b);
  return rc;
}

static int count_files(const char *dir) {
  DIR *d = opendir(dir);
  int n = 0;
  struct dirent *e;
  while (d && (e = readdir(d)))
    if (e->d_name[0] != '.') n++;
  if (d) closedir(d);
  return n;
}

/* Renders job's 8 frames on device 1 alone into DIR/one, then on devices 0 and 1 into DIR/two, where
 * device 0 is lost at its submission number fail_at: every frame is written both times, with the
 * same bytes (names[i] are the files to compare). Device 1 renders alone first, which also compiles
 * the kernel once before two devices run it at once (two lavapipe devices JIT-compiling together
 * race inside LLVM; see tests/render). */
static void lose_a_device(const char *dir, kiln_job *job, uint64_t fail_at, char names[][32],
                          int nnames) {
  char *a = path_in(dir, "two"), *b = path_in(dir, "one");
  kiln_pool *pool;
  KT_CODE(kiln_pool_create(NULL, &pool), KILN_OK);
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device_config lossy;
  kiln_gpu_device_config_default(&lossy);
  lossy.pipeline_cache = false;
  lossy.fail_submission = fail_at;
  kiln_gpu_device *devs[2] = {tg_device(gpu, &lossy), tg_device(gpu, NULL)};
  counts c1 = {0};
  kiln_batch_summary s1;
  KT_EQ(run_batch(job, pool, &devs[1], 1, b, 2, &c1, &s1), 0);
  KT_EQ(s1.written, 8);
  counts c2 = {0};
  kiln_batch_summary s2;
  int rc = run_batch(job, pool, devs, 2, a, 4, &c2, &s2);
  if (rc != 0)
    KT_FAIL("batch with a lost device: rc %d, %d failed, last: %s", rc, c2.failed, c2.last_error);
  KT_EQ(s2.written, 8);
  KT_EQ(s2.failed, 0);
  KT_EQ(c2.written, 8);
  KT_TRUE(kiln_gpu_device_lost(devs[0]));
  for (int i = 0; i < nnames; i++)
    if (!same_file(path_in(a, names[i]), path_in(b, names[i])))
      KT_FAIL("%s differs from the one-device batch", names[i]);
  kiln_gpu_device_close(devs[0]);
  kiln_gpu_device_close(devs[1]);
  kiln_gpu_destroy(gpu);
  kiln_pool_destroy(pool);
}

/* Device 0 is lost at its third submission (the scene upload is the first): the frames in flight
 * on it fail with KILN_EDEVICE_LOST and are issued again on device 1. */
TEST(device_loss_frames_retried_elsewhere) {
  char *d = tmpdir();
  kiln_job *job = load_job(anim_job(d, 8));
  char names[16][32];
  for (int f = 0; f < 8; f++)
    for (int p = 0; p < 2; p++)
      snprintf(names[2 * f + p], 32, "%05d_%s.png", f, p ? "depth" : "color");
  lose_a_device(d, job, 3, names, 16);
  KT_EQ(count_files(path_in(d, "two")), 16);
  kiln_job_destroy(job);
}

/* kiln_batch_stop from the progress callback: no frame is issued after it, the frames in flight
 * are written, the summary says stopped. Events arrive once per frame with running counts. */
TEST(stop_from_progress_callback) {
  char *d = tmpdir(), *job_path = anim_job(d, 40), *out = path_in(d, "out");
  kiln_job *job = load_job(job_path);
  kiln_pool *pool;
  KT_CODE(kiln_pool_create(NULL, &pool), KILN_OK);
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  counts c = {0};
  c.stop_after_two = (kiln_batch *)1; /* replaced by the batch in run_batch */
  kiln_batch_summary s;
  KT_EQ(run_batch(job, pool, &dev, 1, out, 3, &c, &s), 0);
  KT_TRUE(s.stopped);
  KT_EQ(s.total, 40);
  KT_TRUE(s.written >= 2 && s.written <= 2 + 3); /* at most the window was in flight */
  KT_EQ((int)s.written, c.written);
  KT_EQ(count_files(out), 2 * (int)s.written);
  KT_TRUE(s.wall_s > 0 && s.images_per_s > 0 && s.peak_rss_bytes > 0);
  kiln_job_destroy(job);
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
  kiln_pool_destroy(pool);
}

/* A list whose images override the scene: a moved sphere renders differently from the plain one
 * (its own scene and upload), and a sphere scaled non-uniformly, which only the scene loader can
 * refuse, fails that frame alone, naming its line. */
TEST(scene_overrides_per_frame) {
  char *d = tmpdir(), *out = path_in(d, "out");
  char *scene = path_in(d, "scene.json"), *list = path_in(d, "list.jsonl"),
       *job_path = path_in(d, "job.json");
  write_text(
      scene,
      "{\"settings\": {\"width\": 16, \"height\": 16, \"spp\": 2},\n"
      " \"camera\": {\"position\": [0, 0, -4], \"look_at\": [0, 0, 0], \"vfov\": 40},\n"
      " \"environment\": {\"type\": \"constant\", \"color\": [1, 1, 1]},\n"
      " \"objects\": [{\"type\": \"sphere\", \"name\": \"ball\", \"radius\": 0.8,\n"
      "               \"material\": {\"type\": \"diffuse\", \"albedo\": [0.5, 0.5, 0.5]}}]}\n");
  write_text(
      list,
      "{\"name\": \"plain\"}\n"
      "{\"name\": \"moved\", \"objects\": {\"ball\": {\"transform\": {\"translate\": [1, 0, 0]}}}}\n"
      "{\"name\": \"bad\", \"objects\": {\"ball\": {\"transform\": {\"scale\": [1, 2, 1]}}}}\n"
      "{\"name\": \"dark\", \"objects\": {\"ball\": {\"material\": {\"type\": \"diffuse\", \"albedo\": [0.05, 0.05, 0.05]}}}}\n");
  write_text(
      job_path,
      "{\"scene\": \"scene.json\", \"images\": \"list.jsonl\", \"output\": \"{name}_{pass}.{ext}\"}");
  kiln_error_detail err;
  kiln_job *job = NULL;
  int lrc = kiln_job_load(job_path, NULL, &err, &job);
  if (lrc) {
    char m[1400];
    KT_FAIL("kiln_job_load: %s", kiln_error_detail_format(&err, m, sizeof m));
  }
  kiln_pool *pool;
  KT_CODE(kiln_pool_create(NULL, &pool), KILN_OK);
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  counts c = {0};
  kiln_batch_summary s;
  KT_EQ(run_batch(job, pool, &dev, 1, out, 4, &c, &s), 0); /* a failed frame is in the summary */
  KT_EQ(s.written, 3);
  KT_EQ(s.failed, 1);
  KT_STR_CONTAINS(c.last_error, "list.jsonl:3");
  char *plain = path_in(out, "plain_depth.png"), *moved = path_in(out, "moved_depth.png");
  char *pc = path_in(out, "plain_color.png"), *dc = path_in(out, "dark_color.png");
  KT_TRUE(access(plain, F_OK) == 0 && access(moved, F_OK) == 0 && access(dc, F_OK) == 0);
  KT_TRUE(access(path_in(out, "bad_color.png"), F_OK) != 0);
  KT_FALSE(same_file(plain, moved)); /* the sphere moved */
  KT_FALSE(same_file(pc, dc));       /* its material changed */
  kiln_job_destroy(job);
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
  kiln_pool_destroy(pool);
}

/* Frames with overrides (each its own scene and upload on the least busy device) survive a device
 * lost under them too: issued again, on the other device. */
TEST(device_loss_with_overrides) {
  char *d = tmpdir(), *list = path_in(d, "list.jsonl"), *job_path = path_in(d, "job.json");
  char text[4096] = "";
  for (int i = 0; i < 8; i++) /* every image its own wall colour: every frame has a scene patch */
    snprintf(text + strlen(text), sizeof text - strlen(text),
             "{\"name\": \"i%d\", \"materials\": {\"red\": {\"albedo\": [0.%d, 0.1, 0.1]}}}\n", i,
             i + 1);
  write_text(list, text);
  write_text(job_path,
             fmt("{\"scene\": \"%s/examples/cornell/scene.json\", \"images\": \"list.jsonl\", "
                 "\"width\": 16, \"height\": 16, \"spp\": 1, \"output\": \"{name}_{pass}.{ext}\"}",
                 KILN_SOURCE_DIR));
  kiln_job *job = load_job(job_path);
  char names[8][32];
  for (int i = 0; i < 8; i++) snprintf(names[i], 32, "i%d_color.png", i);
  lose_a_device(d, job, 2, names, 8); /* its first frame: the upload at create is 1 */
  kiln_job_destroy(job);
}

/* ---- the driver's failure paths, through its test seams ----------------------------------------- */

static atomic_long g_alloc_calls, g_fail_at; /* the g_fail_at-th allocation fails (0: none) */

static void *counting_calloc(size_t n, size_t size) {
  long k = atomic_fetch_add(&g_alloc_calls, 1) + 1;
  return k == atomic_load(&g_fail_at) ? NULL : calloc(n, size);
}

static uint64_t fnv(const char *s) { return kiln__fnv1a(KILN__FNV1A_SEED, s, strlen(s)); }
static uint64_t same_hash(const char *s) { return (void)s, 42; }

static int next_fails(kiln_completion *c, kiln_future **f) {
  (void)c, (void)f;
  return KILN_ETIMEDOUT;
}

typedef struct rig {
  char *dir;
  kiln_job *job;
  kiln_pool *pool;
  kiln_gpu *gpu;
  kiln_gpu_device *dev;
} rig;

static void rig_open(rig *r, int frames) {
  r->dir = tmpdir();
  r->job = load_job(anim_job(r->dir, frames));
  KT_CODE(kiln_pool_create(NULL, &r->pool), KILN_OK);
  r->gpu = tg_gpu();
  r->dev = tg_device(r->gpu, NULL);
}

static void rig_close(rig *r) {
  kiln_job_destroy(r->job);
  kiln_gpu_device_close(r->dev);
  tg_finish(r->gpu);
  kiln_pool_destroy(r->pool);
}

/* A frame whose context cannot be allocated fails with KILN_ENOMEM, and the batch goes on: it
 * neither stops issuing nor reports success with frames missing (kiln render exits 1). */
TEST(frame_context_out_of_memory_fails_the_frame) {
  rig r;
  rig_open(&r, 4);
  kiln__batch_hooks h = {counting_calloc, fnv, kiln_completion_next};
  atomic_store(&g_alloc_calls, 0), atomic_store(&g_fail_at, 1); /* frame 0's context */
  counts c = {.hooks = &h};
  kiln_batch_summary s;
  KT_CODE(run_batch(r.job, r.pool, &r.dev, 1, path_in(r.dir, "out"), 2, &c, &s), KILN_OK);
  KT_EQ(s.total, 4);
  KT_EQ(s.failed, 1);
  KT_EQ(s.written, 3);
  KT_EQ(c.last_status, KILN_ENOMEM);
  KT_STR_CONTAINS(c.last_error, "frame 0");
  KT_EQ(count_files(path_in(r.dir, "out")), 6);
  rig_close(&r);
}

/* The set of output names keeps the names: names whose hashes collide are still told apart. */
TEST(output_names_with_colliding_hashes_are_told_apart) {
  rig r;
  rig_open(&r, 6);
  kiln__batch_hooks h = {calloc, same_hash, kiln_completion_next};
  counts c = {.hooks = &h};
  kiln_batch_summary s;
  KT_CODE(run_batch(r.job, r.pool, &r.dev, 1, path_in(r.dir, "out"), 3, &c, &s), KILN_OK);
  if (s.failed) KT_FAIL("%llu frames failed: %s", (unsigned long long)s.failed, c.last_error);
  KT_EQ(s.written, 6);
  KT_EQ(count_files(path_in(r.dir, "out")), 12);
  rig_close(&r);
}

/* Out of memory in the set of output names fails that frame (it is not silently unchecked). */
TEST(output_name_set_out_of_memory_fails_the_frame) {
  rig r;
  rig_open(&r, 3);
  kiln__batch_hooks h = {counting_calloc, fnv, kiln_completion_next};
  /* allocations: frame 0's context (1), the set (2), the copy of frame 0's colour name (3) */
  atomic_store(&g_alloc_calls, 0), atomic_store(&g_fail_at, 3);
  counts c = {.hooks = &h};
  kiln_batch_summary s;
  KT_CODE(run_batch(r.job, r.pool, &r.dev, 1, path_in(r.dir, "out"), 2, &c, &s), KILN_OK);
  KT_EQ(s.failed, 1);
  KT_EQ(s.written, 2);
  KT_EQ(c.last_status, KILN_ENOMEM);
  KT_STR_CONTAINS(c.last_error, "out of memory");
  rig_close(&r);
}

/* When the completion set fails, kiln_batch_run still waits for every frame in flight (and
 * reports it) before it returns the error: nothing of the batch runs after the return. */
TEST(completion_failure_waits_for_frames_in_flight) {
  rig r;
  rig_open(&r, 8);
  kiln__batch_hooks h = {calloc, fnv, next_fails};
  counts c = {.hooks = &h};
  kiln_batch_summary s;
  char *out = path_in(r.dir, "out");
  KT_CODE(run_batch(r.job, r.pool, &r.dev, 1, out, 3, &c, &s), KILN_ETIMEDOUT);
  KT_EQ(s.written + s.failed, 3); /* the window, issued before the first completion */
  KT_EQ(c.events, 3);
  KT_EQ(count_files(out), 2 * (int)s.written); /* every writer finished before the return */
  KT_FALSE(s.stopped);
  rig_close(&r);
}

/* ---- one run per output folder ------------------------------------------------------------------ */

/* A second batch, run from the first one's progress callback (so while the first holds the folder):
 * it must fail at once, before rendering anything. */
typedef struct nested_run {
  kiln_batch *second;
  int calls, rc;
  kiln_batch_summary sum;
  kiln_error_detail err;
} nested_run;

static void run_second(void *arg, const kiln_batch_event *ev) {
  nested_run *n = arg;
  (void)ev;
  if (n->calls++ == 0) n->rc = kiln_batch_run(n->second, &n->sum, &n->err);
}

static kiln_batch *make_batch(kiln_job *job, rig *r, const char *out, bool overwrite,
                              kiln_batch_progress_fn fn, void *arg) {
  kiln_batch_config bc;
  kiln_batch_config_default(&bc);
  bc.pool = r->pool, bc.devs = &r->dev, bc.ndevs = 1, bc.out_dir = out, bc.in_flight = 1;
  bc.overwrite = overwrite, bc.progress = fn, bc.progress_arg = arg;
  kiln_batch *b;
  kiln_error_detail err;
  if (kiln_batch_create(job, &bc, &b, &err)) KT_FAIL("kiln_batch_create: %s", err.message);
  return b;
}

/* Two batches of one process on one folder: the second fails with KILN_EBUSY naming this process
 * and writes nothing; once the first has returned, the folder is free again and holds no lock file. */
TEST(second_run_on_a_folder_in_use_fails_at_once) {
  rig r;
  rig_open(&r, 3);
  char *out = path_in(r.dir, "out");
  kiln_job *job2 = load_job(path_in(r.dir, "job.json"));
  nested_run n = {.second = NULL};
  n.second = make_batch(job2, &r, out, true, NULL, NULL);
  kiln_batch *first = make_batch(r.job, &r, out, false, run_second, &n);
  kiln_batch_summary s;
  kiln_error_detail err;
  KT_CODE(kiln_batch_run(first, &s, &err), KILN_OK);
  KT_EQ(s.written, 3);
  KT_EQ(n.calls, 3);
  KT_CODE(n.rc, KILN_EBUSY);
  KT_EQ(n.err.code, KILN_EBUSY);
  KT_STR_EQ(n.err.message,
            fmt("another kiln render (pid %ld) is writing to %s", (long)getpid(), out));
  KT_EQ(n.sum.written + n.sum.failed + n.sum.skipped, 0);
  KT_EQ(count_files(out), 3); /* the first batch's frames only (colour) */
  /* released at the return: the second batch now runs (and replaces the files) */
  KT_CODE(kiln_batch_run(n.second, &n.sum, &n.err), KILN_OK);
  KT_EQ(n.sum.written, 3);
  struct stat st; /* removed by the run that held it, at its end */
  KT_EQ(stat(path_in(out, ".kiln.lock"), &st), -1);
  kiln_batch_destroy(first);
  kiln_batch_destroy(n.second);
  kiln_job_destroy(job2);
  rig_close(&r);
}

/* Takes the folder's lock as another process would, saying "pid host" in the file. */
static int hold_lock(const char *out, const char *says) {
  KT_EQ(mkdir(out, 0777), 0);
  int fd = open(path_in(out, ".kiln.lock"), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  KT_TRUE(fd >= 0);
  KT_EQ(flock(fd, LOCK_EX | LOCK_NB), 0);
  KT_EQ(write(fd, says, strlen(says)), (ssize_t)strlen(says));
  return fd;
}

/* A lock held elsewhere (another process, another host of a shared folder) turns the run away,
 * naming the holder; a lock file nobody holds (left by a killed run) does not. */
TEST(folder_locked_elsewhere_or_left_unlocked) {
  rig r;
  rig_open(&r, 2);
  char host[40];
  kiln__tmp_host(host, sizeof host);
  const struct {
    const char *says, *want;
  } t[] = {{fmt("4242 %s\n", host), "(pid 4242) is writing to"},
           {"4243 farm17\n", "(pid 4243 on farm17) is writing to"},
           {"", "another kiln render is writing to"}};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    char *out = path_in(r.dir, fmt("out%zu", i));
    int fd = hold_lock(out, t[i].says);
    kiln_batch *b = make_batch(r.job, &r, out, false, NULL, NULL);
    kiln_batch_summary s;
    kiln_error_detail err;
    KT_CODE(kiln_batch_run(b, &s, &err), KILN_EBUSY);
    KT_STR_CONTAINS(err.message, t[i].want);
    KT_STR_CONTAINS(err.message, out);
    KT_EQ(count_files(out), 0);
    close(fd); /* the holder dies: its lock goes with it, its file stays, unlocked */
    KT_CODE(kiln_batch_run(b, &s, &err), KILN_OK);
    KT_EQ(s.written, 2);
    struct stat st;
    KT_EQ(stat(path_in(out, ".kiln.lock"), &st), -1);
    kiln_batch_destroy(b);
  }
  rig_close(&r);
}

/* kiln render on a folder another run holds: exit 2 and the message, and nothing written. */
TEST(cli_render_on_a_folder_in_use_exits_2) {
  char *d = tmpdir(), *job = anim_job(d, 2), *out = path_in(d, "out");
  int fd = hold_lock(out, fmt("%ld x\n", (long)getpid()));
  result r = run(d, ARGS("render", job, "-o", out, "--quiet"));
  KT_EQ(r.status, 2); /* an exit, not a signal */
  KT_STR_CONTAINS(r.err,
                  fmt("another kiln render (pid %ld on x) is writing to %s", (long)getpid(), out));
  KT_EQ(count_files(out), 0);
  close(fd);
}

/* ---- claiming ----------------------------------------------------------------------------------- */

typedef struct claimer {
  rig *r;
  kiln_job *job;
  const char *out, *manifest;
  counts c;
  kiln_batch_summary sum;
  int rc;
} claimer;

static void *claim_run(void *arg) {
  claimer *k = arg;
  kiln_batch_config bc;
  kiln_batch_config_default(&bc);
  bc.pool = k->r->pool, bc.devs = &k->r->dev, bc.ndevs = 1, bc.out_dir = k->out, bc.in_flight = 2;
  bc.claim = true, bc.chunk = 2, bc.manifest = k->manifest;
  bc.progress = on_event, bc.progress_arg = &k->c;
  kiln_batch *b;
  kiln_error_detail err;
  if (kiln_batch_create(k->job, &bc, &b, &err)) KT_FAIL("kiln_batch_create: %s", err.message);
  k->rc = kiln_batch_run(b, &k->sum, &err);
  kiln_batch_destroy(b);
  return NULL;
}

/* Two claiming batches (threads of one process, as two processes would) share one folder: between
 * them every frame is written once, each reports the other's frames as rendered elsewhere, and
 * every chunk ends with a done marker. */
TEST(two_claiming_batches_share_the_frames) {
  rig r;
  rig_open(&r, 12);
  char *out = path_in(r.dir, "out");
  claimer k[2];
  pthread_t th[2];
  for (int i = 0; i < 2; i++) {
    k[i] = (claimer){.r = &r, .job = load_job(path_in(r.dir, "job.json")), .out = out,
                     .manifest = fmt("m-%d.jsonl", i)};
    KT_EQ(pthread_create(&th[i], NULL, claim_run, &k[i]), 0);
  }
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 2; i++) {
    KT_CODE(k[i].rc, KILN_OK);
    KT_EQ(k[i].sum.total, 12);
    KT_EQ(k[i].sum.failed, 0);
    KT_EQ(k[i].sum.written + k[i].sum.skipped, 12);
    KT_EQ(k[i].sum.skipped, k[i].sum.elsewhere); /* nothing was there before */
    KT_EQ(k[i].sum.written, 2 * k[i].sum.chunks_claimed);
    KT_EQ(k[i].c.events, 12);
  }
  KT_EQ(k[0].sum.written + k[1].sum.written, 12);
  KT_EQ(count_files(out), 12 + 2); /* the frames (colour) and the two manifests */
  DIR *d = opendir(path_in(out, ".kiln-claims"));
  KT_TRUE(d != NULL);
  struct dirent *e;
  char *sub = NULL;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.') sub = path_in(path_in(out, ".kiln-claims"), e->d_name);
  closedir(d);
  KT_TRUE(sub != NULL);
  for (int ch = 0; ch < 6; ch++) {
    struct stat st;
    KT_EQ(stat(fmt("%s/%08d.done", sub, ch), &st), 0);
  }
  for (int i = 0; i < 2; i++) kiln_job_destroy(k[i].job);
  rig_close(&r);
}

static kiln_batch *make_shard(kiln_job *job, rig *r, const char *out, uint32_t k, uint32_t n,
                              kiln_batch_progress_fn fn, void *arg) {
  kiln_batch_config bc;
  kiln_batch_config_default(&bc);
  bc.pool = r->pool, bc.devs = &r->dev, bc.ndevs = 1, bc.out_dir = out, bc.in_flight = 1;
  bc.shard = k, bc.shards = n, bc.progress = fn, bc.progress_arg = arg;
  kiln_batch *b;
  kiln_error_detail err;
  if (kiln_batch_create(job, &bc, &b, &err)) KT_FAIL("kiln_batch_create: %s", err.message);
  return b;
}

/* The shards of one job share the folder's lock: a second shard runs while the first does, a
 * plain run is turned away while either does, and the last shard to leave removes the lock file. */
TEST(shards_share_the_folder_and_keep_a_plain_run_out) {
  rig r;
  rig_open(&r, 4);
  char *out = path_in(r.dir, "out");
  kiln_job *job2 = load_job(path_in(r.dir, "job.json")), *job3 = load_job(path_in(r.dir, "job.json"));
  nested_run plain = {.second = make_batch(job3, &r, out, true, NULL, NULL)};
  nested_run shard1 = {.second = make_shard(job2, &r, out, 1, 2, run_second, &plain)};
  kiln_batch *shard0 = make_shard(r.job, &r, out, 0, 2, run_second, &shard1);
  kiln_batch_summary s;
  kiln_error_detail err;
  KT_CODE(kiln_batch_run(shard0, &s, &err), KILN_OK);
  KT_EQ(s.written, 2);
  KT_CODE(shard1.rc, KILN_OK); /* ran inside shard 0's first event */
  KT_EQ(shard1.sum.written, 2);
  KT_CODE(plain.rc, KILN_EBUSY); /* inside shard 1's first event: both shards held the folder */
  KT_EQ(count_files(out), 4);
  struct stat st;
  KT_EQ(stat(path_in(out, ".kiln.lock"), &st), -1);
  KT_CODE(kiln_batch_run(plain.second, &plain.sum, &plain.err), KILN_OK); /* free again */
  KT_EQ(plain.sum.written, 4);
  kiln_batch_destroy(shard0);
  kiln_batch_destroy(shard1.second);
  kiln_batch_destroy(plain.second);
  kiln_job_destroy(job2);
  kiln_job_destroy(job3);
  rig_close(&r);
}
