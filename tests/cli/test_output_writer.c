/* test_output_writer.c: the batch's file writer (engine/batch/writer.c). Through the kiln_io engine
 * it writes the same bytes as kiln__write_atomic; a write that fails half way (the fault hook)
 * leaves no partial file under a final name, the old file where there was one, and no temporary;
 * fibers writing with the slow-storage hook overlap their waits instead of holding the workers;
 * and kiln render writes identical files either way, failing only the frame whose write fails. */
// kt: timeout 300
#define _GNU_SOURCE
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli_test_util.h"
#include "kiln/fiber.h"
#include "kiln/sched.h"
#include "kt.h"
#include "writer.h"

static void *pattern(size_t n, uint32_t seed) {
  unsigned char *p = keep(malloc(n ? n : 1));
  if (!p) KT_FAIL("out of memory");
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    p[i] = (unsigned char)(seed >> 24);
  }
  return p;
}

static bool holds(const char *path, const void *data, size_t len) {
  size_t got;
  unsigned char *b = read_all(path, &got);
  return b && got == len && memcmp(b, data, len) == 0;
}

/* The names in dir that start with '.' (temporaries are ".NAME.tmp-..."). */
static int hidden_files(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) KT_FAIL("opendir %s", dir);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(d);
  return n;
}

static kiln__writer *writer(bool sync, double delay_s, uint64_t fault_at, kiln_pool *pool) {
  kiln__writer_config c = {sync, false, delay_s, fault_at};
  kiln__writer *w;
  char m[256];
  if (kiln__writer_open(&c, pool, &w, m, sizeof m)) KT_FAIL("writer: %s", m);
  return w;
}

TEST(output_writer_engine_and_sync_write_the_same_bytes) {
  static const size_t sizes[] = {0, 1, 4097, 3u << 20, 65536};
  enum { N = sizeof sizes / sizeof sizes[0] };
  for (int durable = 0; durable < 2; durable++)
    for (int sync = 0; sync < 2; sync++) {
      char *dir = tmpdir();
      kiln__wfile f[N];
      for (int i = 0; i < N; i++)
        f[i] =
            (kiln__wfile){fmt("%s/f%d.bin", dir, i), pattern(sizes[i], (uint32_t)i + 1), sizes[i]};
      kiln__writer *w = writer(sync, 0, 0, NULL);
      KT_EQ(kiln__writer_async(w), !sync);
      char m[512];
      KT_CODE(kiln__writer_write(w, f, N, durable, m, sizeof m), KILN_OK);
      for (int i = 0; i < N; i++) KT_TRUE(holds(f[i].path, f[i].data, f[i].len));
      KT_EQ(hidden_files(dir), 0);
      /* again over the files: replaced whole */
      for (int i = 0; i < N; i++) f[i].data = pattern(sizes[i], (uint32_t)i + 100);
      KT_CODE(kiln__writer_write(w, f, N, durable, m, sizeof m), KILN_OK);
      for (int i = 0; i < N; i++) KT_TRUE(holds(f[i].path, f[i].data, f[i].len));
      kiln__writer_close(w);
    }
}

/* backend: KILN_IO_BACKEND for the writer's engine ("auto" or "poller"; read when it opens) */
static void fault_half_way(const char *backend) {
  setenv("KILN_IO_BACKEND", backend, 1);
  char *dir = tmpdir();
  kiln__wfile f[3] = {{fmt("%s/a.png", dir), pattern(1u << 20, 1), 1u << 20},
                      {fmt("%s/b.png", dir), pattern(1u << 20, 2), 1u << 20},
                      {fmt("%s/c.png", dir), pattern(300, 3), 300}};
  write_text(f[1].path, "the old b"); /* an earlier run's file, under the name that fails */
  kiln__writer *w = writer(false, 0, 2, NULL); /* the second file fails after half its bytes */
  char m[512];
  KT_CODE(kiln__writer_write(w, f, 3, false, m, sizeof m), KILN_EIO);
  KT_STR_CONTAINS(m, f[1].path);
  KT_STR_CONTAINS(m, "after 524288 of 1048576 bytes");
  /* none of the frame's files is renamed: the others' writes completed, yet stay out */
  KT_EQ(access(f[0].path, F_OK), -1);
  KT_EQ(access(f[2].path, F_OK), -1);
  KT_TRUE(holds(f[1].path, "the old b", 9));
  KT_EQ(hidden_files(dir), 0); /* the temporaries, half-written one included, are gone */
  /* the next write (the fourth file and on) succeeds: the writer is usable after a failure */
  KT_CODE(kiln__writer_write(w, f, 3, false, m, sizeof m), KILN_OK);
  for (int i = 0; i < 3; i++) KT_TRUE(holds(f[i].path, f[i].data, f[i].len));
  kiln__writer_close(w);
  unsetenv("KILN_IO_BACKEND");
}

TEST(output_writer_fault_half_way_leaves_no_partial_file) { fault_half_way("auto"); }
TEST(output_writer_fault_half_way_poller) { fault_half_way("poller"); }

TEST(output_writer_create_failure_names_the_file) {
  char *dir = tmpdir();
  kiln__wfile f[2] = {{fmt("%s/ok.png", dir), "x", 1}, {fmt("%s/no/such/b.png", dir), "y", 1}};
  kiln__writer *w = writer(false, 0, 0, NULL);
  char m[512];
  KT_CODE(kiln__writer_write(w, f, 2, true, m, sizeof m), KILN_EIO);
  KT_STR_CONTAINS(m, fmt("cannot write %s: open(%s/no/such/.b.png.tmp-", f[1].path, dir));
  KT_EQ(access(f[0].path, F_OK), -1);
  KT_EQ(hidden_files(dir), 0);
  kiln__writer_close(w);
}

/* ---- fibers on 2 workers, every write delayed --------------------------------------------- */

enum { FIBERS = 48, FILES = 3 };
static const double DELAY = 0.1;

typedef struct job {
  kiln__writer *w;
  kiln__wfile f[FILES];
} job;

static int write_fiber(void *arg, void **res) {
  job *j = arg;
  *res = NULL;
  char m[512];
  int rc = kiln__writer_write(j->w, j->f, FILES, false, m, sizeof m);
  return rc ? kiln_task_fail(rc, "%s", m) : 0;
}

TEST(output_writer_delayed_writes_overlap_in_fibers) {
  kiln_pool_config pc;
  kiln_pool_config_default(&pc);
  pc.threads = 2;
  kiln_pool *pool;
  KT_CODE(kiln_pool_create(&pc, &pool), KILN_OK);
  char *dir = tmpdir();
  kiln__writer *w = writer(false, DELAY, 0, pool);
  static job jobs[FIBERS];
  kiln_future *fs[FIBERS];
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < FIBERS; i++) {
    jobs[i].w = w;
    for (int k = 0; k < FILES; k++)
      jobs[i].f[k] = (kiln__wfile){fmt("%s/%d_%d.png", dir, i, k),
                                   pattern(5000, (uint32_t)(i * FILES + k)), 5000};
    KT_CODE(kiln_fiber_spawn(pool, write_fiber, &jobs[i], 0, &fs[i]), KILN_OK);
  }
  size_t nd;
  KT_CODE(kiln_wait(fs, FIBERS, KILN_ALL_COMPLETED, -1, &nd), KILN_OK);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
  for (int i = 0; i < FIBERS; i++) {
    KT_CODE(kiln_future_result(fs[i], 0, NULL), KILN_OK);
    kiln_future_release(fs[i]);
    for (int k = 0; k < FILES; k++)
      KT_TRUE(holds(jobs[i].f[k].path, jobs[i].f[k].data, jobs[i].f[k].len));
  }
  /* writes that held their worker would take FIBERS * FILES * DELAY / 2 workers = 7.2 s; the
   * fibers' delays overlap (about DELAY in all); half the held figure leaves room for a loaded
   * machine and still fails if the waits hold the workers */
  double held = FIBERS * FILES * DELAY / 2;
  if (s >= held / 2) KT_FAIL("%.2f s for %d fibers: the delayed writes did not overlap", s, FIBERS);
  KT_TRUE(s >= DELAY); /* and the hook did delay them */
  kiln__writer_close(w);
  kiln_pool_destroy(pool);
}

TEST(output_writer_sync_mode_holds_the_worker_for_each_file) {
  char *dir = tmpdir();
  kiln__writer *w = writer(true, DELAY, 0, NULL);
  kiln__wfile f[FILES];
  for (int k = 0; k < FILES; k++) f[k] = (kiln__wfile){fmt("%s/%d.png", dir, k), "z", 1};
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  char m[256];
  KT_CODE(kiln__writer_write(w, f, FILES, false, m, sizeof m), KILN_OK);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
  KT_TRUE(s >= FILES * DELAY);
  kiln__writer_close(w);
}

/* ---- kiln render: the same files either way; a failed write fails its frame only ----------- */

enum { FRAMES = 4 };
static const char *const PASSES[] = {"color", "depth", "normal"};

static char *orbit_job(const char *dir) {
  char *p = fmt("%s/job.json", dir);
  write_text(p, fmt("{\"scene\": \"%s/examples/cornell/scene.json\", \"width\": 16, \"height\": 16,"
                    " \"spp\": 1, \"passes\": [\"depth\", \"normal\"], \"animation\": "
                    "{\"frames\": {\"start\": 0, \"end\": %d}, \"camera\": {\"orbit\": "
                    "{\"center\": [0.278, 0.273, 0.28], \"start_angle\": 170, "
                    "\"degrees_per_frame\": 15}}}}",
                    KILN_SOURCE_DIR, FRAMES - 1));
  return p;
}

static result render(const char *dir, const char *out, const char *env) {
  const char *const envs[] = {env, NULL};
  return finish(
      dir, start_in(dir, dir, env ? envs : NULL, ARGS("render", "job.json", "-o", out, "--quiet")));
}

static char *pass_file(const char *dir, const char *out, int frame, const char *pass) {
  return fmt("%s/%s/%05d_%s.png", dir, out, frame, pass);
}

TEST(output_writer_render_sync_and_engine_files_identical) {
  char *dir = tmpdir();
  orbit_job(dir);
  result a = render(dir, "sync", "KILN_BATCH_WRITES=sync");
  expect_status(&a, 0);
  result b = render(dir, "engine", NULL);
  expect_status(&b, 0);
  for (int fr = 0; fr < FRAMES; fr++)
    for (int p = 0; p < 3; p++)
      KT_TRUE(same_file(pass_file(dir, "sync", fr, PASSES[p]),
                        pass_file(dir, "engine", fr, PASSES[p])));
  result c = render(dir, "delayed", "KILN_TEST_WRITE_DELAY_US=20000");
  expect_status(&c, 0);
  result d = render(dir, "tasks", "KILN_BATCH_WRITES=async-task");
  expect_status(&d, 0);
  for (int fr = 0; fr < FRAMES; fr++)
    for (int p = 0; p < 3; p++) {
      KT_TRUE(same_file(pass_file(dir, "sync", fr, PASSES[p]),
                        pass_file(dir, "delayed", fr, PASSES[p])));
      KT_TRUE(
          same_file(pass_file(dir, "sync", fr, PASSES[p]), pass_file(dir, "tasks", fr, PASSES[p])));
    }
  result bad = render(dir, "bad", "KILN_BATCH_WRITES=fast");
  KT_NE(bad.status, 0);
  KT_STR_CONTAINS(bad.err, "KILN_BATCH_WRITES");
}

TEST(output_writer_render_failed_write_fails_one_frame) {
  char *dir = tmpdir();
  orbit_job(dir);
  result a = render(dir, "good", NULL);
  expect_status(&a, 0);
  result r = render(dir, "out", "KILN_TEST_WRITE_FAULT=5"); /* a file of the second frame written */
  KT_NE(r.status, 0);
  KT_STR_CONTAINS(r.err, "injected fault");
  int failed = 0;
  for (int fr = 0; fr < FRAMES; fr++) {
    int present = 0;
    for (int p = 0; p < 3; p++)
      if (access(pass_file(dir, "out", fr, PASSES[p]), F_OK) == 0) {
        present++;
        KT_TRUE(
            same_file(pass_file(dir, "good", fr, PASSES[p]), pass_file(dir, "out", fr, PASSES[p])));
      }
    if (present != 3 && present != 0) KT_FAIL("frame %d: %d of its 3 files", fr, present);
    failed += present == 0;
  }
  KT_EQ(failed, 1);
  DIR *d = opendir(fmt("%s/out", dir));
  KT_TRUE(d != NULL);
  struct dirent *e;
  while ((e = readdir(d)))
    if (strstr(e->d_name, ".tmp-")) KT_FAIL("a temporary is left: %s", e->d_name);
  closedir(d);
}
