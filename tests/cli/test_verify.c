/* test_verify.c: `kiln verify` and `kiln merge` end to end. Small jobs (16x16, 1 spp) are rendered
 * with the built `kiln`, then checked: a complete run verifies (without any Vulkan driver), a
 * deleted file is missing, a truncated file of every format and pass is corrupt, a stray temporary
 * is listed without failing, a shard is checked alone; per-shard manifests merge into one sorted by
 * index whatever the order of the inputs, duplicates fold, and a bad line stops the merge with its
 * FILE:LINE. */
// kt: timeout 300
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_test_util.h"
#include "kiln/batch.h"
#include "kt.h"

/* Runs kiln with args (NULL-terminated) in dir; with no_vulkan, no Vulkan driver can be found. */
static result run_in(const char *dir, bool no_vulkan, const char *const *args) {
  static const char *const no_driver[] = {"VK_ICD_FILENAMES=/nonexistent/icd.json",
                                          "VK_DRIVER_FILES=/nonexistent/icd.json", NULL};
  return finish(dir, start_in(dir, dir, no_vulkan ? no_driver : NULL, args));
}

/* An animation of n frames of the Cornell box at 16x16, 1 spp. */
static char *job_of(const char *dir, int n) {
  char *path = fmt("%s/job.json", dir);
  write_text(path, fmt("{\"scene\": \"%s/examples/cornell/scene.json\", \"width\": 16, "
                       "\"height\": 16, \"spp\": 1, \"animation\": {\"frames\": {\"start\": 0, "
                       "\"end\": %d}}}\n",
                       KILN_SOURCE_DIR, n - 1));
  return path;
}

static void copy_file(const char *from, const char *to) {
  size_t len;
  unsigned char *b = read_all(from, &len);
  if (!b) KT_FAIL("cannot read %s", from);
  FILE *f = fopen(to, "wb");
  if (!f || fwrite(b, 1, len, f) != len) KT_FAIL("cannot write %s", to);
  fclose(f);
}

static off_t size_of(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) KT_FAIL("%s: %s", path, strerror(errno));
  return st.st_size;
}

/* ---- kiln verify --------------------------------------------------------------------------- */

TEST(verify_complete_missing_corrupt_and_stray) {
  char *d = tmpdir(), *job = job_of(d, 4);
  result r = RUN(d, "render", job, "-o", "out", "--quiet");
  expect_status(&r, 0);
  /* no Vulkan driver at all: verify needs none */
  r = run_in(d, true, ARGS("verify", job, "-o", "out"));
  expect_status(&r, 0);
  KT_STR_CONTAINS(r.out, "4 of 4 frames complete; 4 files: 4 ok, 0 missing, 0 corrupt");
  /* a missing file is named */
  char *gone = fmt("%s/out/00002_color.png", d), *cut = fmt("%s/out/00001_color.png", d);
  KT_EQ(unlink(gone), 0);
  r = RUN(d, "verify", job, "-o", "out");
  expect_status(&r, 1);
  KT_STR_CONTAINS(r.out, "missing: out/00002_color.png (frame 2");
  KT_STR_CONTAINS(r.out, "3 of 4 frames complete; 4 files: 3 ok, 1 missing, 0 corrupt");
  r = RUN(d, "render", job, "-o", "out", "--resume", "--quiet");
  expect_status(&r, 0);
  /* a truncated PNG is corrupt */
  KT_EQ(truncate(cut, size_of(cut) - 20), 0);
  r = RUN(d, "verify", job, "-o", "out", "--json", "v.json");
  expect_status(&r, 1);
  KT_STR_CONTAINS(r.out, "corrupt: out/00001_color.png (frame 1");
  KT_STR_CONTAINS(r.out, "(truncated)");
  size_t len;
  char *js = (char *)read_all(fmt("%s/v.json", d), &len);
  KT_TRUE(js != NULL);
  KT_STR_CONTAINS(js, "\"exit_code\": 1");
  KT_STR_CONTAINS(js, "\"corrupt\": 1");
  KT_STR_CONTAINS(js, "{\"kind\": \"corrupt\", \"frame\": 1, \"index\": 1, \"pass\": \"color\", "
                      "\"path\": \"out/00001_color.png\"");
  KT_EQ(unlink(cut), 0);
  r = RUN(d, "render", job, "-o", "out", "--resume", "--quiet");
  expect_status(&r, 0);
  /* a stray temporary is listed, and does not fail the check; a PNG of another size does */
  write_text(fmt("%s/out/.00003_color.png.tmp-otherhost-123-0", d), "partial");
  write_text(fmt("%s/out/.00003_color.png.tmp-nothex", d), "not a temporary of kiln's");
  r = RUN(d, "verify", job, "-o", "out");
  expect_status(&r, 0);
  KT_STR_CONTAINS(r.out, "stray: out/.00003_color.png.tmp-otherhost-123-0 (frame 3");
  KT_TRUE(strstr(r.out, "tmp-nothex") == NULL);
  KT_STR_CONTAINS(r.out, "1 stray temporary");
  r = RUN(d, "verify", job, "-o", "out", "--size", "8x8", "--frames", "0:1");
  expect_status(&r, 1);
  KT_STR_CONTAINS(r.out, "16x16 pixels; the run writes 8x8");
  KT_STR_CONTAINS(r.out, "0 of 2 frames complete");
  /* the passes asked for decide the files: depth was never written */
  r = RUN(d, "verify", job, "-o", "out", "--passes", "depth", "--quiet");
  expect_status(&r, 1);
  KT_STR_CONTAINS(r.out, "missing: out/00000_depth.png");
  KT_TRUE(strstr(r.out, "frames complete") == NULL); /* --quiet: no summary */
}

TEST(verify_usage_and_job_errors) {
  char *d = tmpdir(), *job = job_of(d, 2);
  result r = RUN(d, "verify");
  expect_status(&r, 2);
  KT_STR_CONTAINS(r.err, "no job given");
  r = RUN(d, "verify", job, "--bogus");
  expect_status(&r, 2);
  KT_STR_CONTAINS(r.err, "unknown option --bogus");
  r = RUN(d, "verify", job, "--shard", "3/3");
  expect_status(&r, 2);
  r = RUN(d, "verify", "nope.json", "-o", "out", "--json", "e.json");
  expect_status(&r, 2);
  KT_STR_CONTAINS(r.err, "nope.json");
  size_t len;
  char *js = (char *)read_all(fmt("%s/e.json", d), &len);
  KT_TRUE(js != NULL);
  KT_STR_CONTAINS(js, "\"exit_code\": 2");
  r = RUN(d, "verify", job, "-o", "out", "--frames", "50:60");
  expect_status(&r, 2);
  KT_STR_CONTAINS(r.err, "matches none");
  r = RUN(d, "verify", job, "--template", "../x_{frame}.{ext}");
  expect_status(&r, 2);
  r = RUN(d, "verify", "--help");
  expect_status(&r, 0);
  KT_STR_CONTAINS(r.out, "--shard");
}

/* Every format with depth and normal passes verifies; a file of each cut by one byte, or to half,
 * is caught and named. */
TEST(verify_every_format_and_truncations) {
  static const char *const formats[] = {"png", "png16", "jpg", "exr", "npy", "hdr"};
  static const char *const ext[][3] = {{"png", "png", "png"}, {"png", "png", "png"},
                                       {"jpg", "png", "png"}, {"exr", "exr", "exr"},
                                       {"npy", "npy", "npy"}, {"hdr", "exr", "exr"}};
  static const char *const pass[] = {"color", "depth", "normal"};
  char *d = tmpdir(), *job = job_of(d, 2);
  for (int f = 0; f < 6; f++) {
    char *out = fmt("out_%s", formats[f]);
    result r = RUN(d, "render", job, "-o", out, "--format", formats[f], "--passes", "depth,normal",
                   "--quiet");
    expect_status(&r, 0);
    r = RUN(d, "verify", job, "-o", out, "--format", formats[f], "--passes", "depth,normal");
    expect_status(&r, 0);
    KT_STR_CONTAINS(r.out, "2 of 2 frames complete; 6 files: 6 ok");
    for (int p = 0; p < 3; p++) {
      char *rel = fmt("%s/00001_%s.%s", out, pass[p], ext[f][p]);
      char *file = fmt("%s/%s", d, rel), *save = fmt("%s/save", d);
      copy_file(file, save);
      off_t n = size_of(file);
      off_t cuts[2] = {n - 1, n / 2};
      for (int c = 0; c < 2; c++) {
        KT_EQ(truncate(file, cuts[c]), 0);
        r = RUN(d, "verify", job, "-o", out, "--format", formats[f], "--passes", "depth,normal");
        if (r.status != 1 || !strstr(r.out, fmt("corrupt: %s (frame 1", rel)))
          KT_FAIL("%s cut to %lld of %lld bytes: exit %d\n%s%s", rel, (long long)cuts[c],
                  (long long)n, r.status, r.out, r.err);
        copy_file(save, file);
      }
    }
    /* the file of another format under the right name is corrupt too */
    if (f > 0) {
      char *colour = fmt("%s/%s/00000_color.%s", d, out, ext[f][0]);
      copy_file(fmt("%s/out_png/00000_color.png", d), colour);
      r = RUN(d, "verify", job, "-o", out, "--format", formats[f], "--passes", "depth,normal");
      expect_status(&r, 1);
      KT_STR_CONTAINS(r.out, "corrupt: ");
    }
  }
}

/* The passes derived from the first hit verify in every form they take: PNG (nocs 8-bit, the
 * flows KITTI's 16-bit RGB, uv, position and objcoord as EXR beside them), and NPY; a truncated
 * file of each is named. */
TEST(verify_new_passes) {
  static const char *const formats[] = {"png", "npy"};
  static const char *const pass[] = {"uv", "position", "objcoord", "nocs", "category",
                                     "flow_fwd", "flow_bwd"};
  static const char *const png_ext[] = {"exr", "exr", "exr", "png", "png", "png", "png"};
  const char *list = "uv,position,objcoord,nocs,category,flow_fwd,flow_bwd";
  char *d = tmpdir(), *job = job_of(d, 2);
  for (int f = 0; f < 2; f++) {
    char *out = fmt("out_%s", formats[f]);
    result r = RUN(d, "render", job, "-o", out, "--format", formats[f], "--passes", list,
                   "--quiet");
    expect_status(&r, 0);
    r = RUN(d, "verify", job, "-o", out, "--format", formats[f], "--passes", list);
    expect_status(&r, 0);
    KT_STR_CONTAINS(r.out, "2 of 2 frames complete; 16 files: 16 ok");
    for (int p = 0; p < 7; p++) {
      char *rel = fmt("%s/00001_%s.%s", out, pass[p], f ? "npy" : png_ext[p]);
      char *file = fmt("%s/%s", d, rel), *save = fmt("%s/save", d);
      copy_file(file, save);
      KT_EQ(truncate(file, size_of(file) - 1), 0);
      r = RUN(d, "verify", job, "-o", out, "--format", formats[f], "--passes", list);
      if (r.status != 1 || !strstr(r.out, fmt("corrupt: %s (frame 1", rel)))
        KT_FAIL("%s cut by a byte: exit %d\n%s%s", rel, r.status, r.out, r.err);
      copy_file(save, file);
    }
  }
}

/* Frames rendered in worker processes ship the planes the derived passes need (uv among them),
 * and the parent derives the same files. */
TEST(isolate_writes_the_same_new_passes) {
  const char *list = "uv,position,nocs,category,flow_fwd,flow_bwd";
  static const char *const pass[] = {"uv", "position", "nocs", "category", "flow_fwd", "flow_bwd"};
  char *d = tmpdir(), *job = job_of(d, 2);
  result r = RUN(d, "render", job, "-o", "plain", "--format", "npy", "--passes", list, "--quiet");
  expect_status(&r, 0);
  r = RUN(d, "render", job, "-o", "iso", "--format", "npy", "--passes", list, "--isolate",
          "--quiet");
  expect_status(&r, 0);
  for (int f = 0; f < 2; f++)
    for (int p = 0; p < 6; p++) {
      char *a = fmt("%s/plain/%05d_%s.npy", d, f, pass[p]),
           *b = fmt("%s/iso/%05d_%s.npy", d, f, pass[p]);
      if (!same_file(a, b)) KT_FAIL("%s and %s differ", a, b);
    }
}

TEST(verify_a_shard_checks_only_that_shard) {
  char *d = tmpdir(), *job = job_of(d, 7);
  result r = RUN(d, "render", job, "-o", "out", "--shard", "1/3", "--quiet");
  expect_status(&r, 0);
  r = RUN(d, "verify", job, "-o", "out", "--shard", "1/3");
  expect_status(&r, 0);
  KT_STR_CONTAINS(r.out, "2 of 2 frames complete"); /* frames 1 and 4 */
  KT_STR_CONTAINS(r.err, "shard 1/3");
  r = RUN(d, "verify", job, "-o", "out", "--shard", "0/3");
  expect_status(&r, 1);
  KT_STR_CONTAINS(r.out, "missing: out/00000_color.png");
  KT_STR_CONTAINS(r.out, "0 of 3 frames complete");
  r = RUN(d, "verify", job, "-o", "out", "--shard", "1/3", "--shard-mode", "contiguous");
  expect_status(&r, 1); /* contiguous shard 1 of 7 frames is frames 2 and 3: never rendered */
  KT_STR_CONTAINS(r.out, "missing: out/00002_color.png");
  r = RUN(d, "verify", job, "-o", "out");
  expect_status(&r, 1);
  KT_STR_CONTAINS(r.out, "2 of 7 frames complete");
  /* --shard auto, as an array task would see it */
  r = run_in(d, false,
             ARGS("verify", job, "-o", "out", "--shard", "auto", "--shards", "3", "--json",
                  "v_{shard}.json"));
  expect_status(&r, 2); /* no launcher in the environment: an error, never a guess */
  KT_STR_CONTAINS(r.err, "--shard auto");
}

/* ---- kiln merge ---------------------------------------------------------------------------- */

/* The "index" of every line of the file, in order; returns how many. */
static int indices_of(const char *path, long *idx, int cap) {
  size_t len;
  char *t = (char *)read_all(path, &len);
  if (!t) KT_FAIL("%s is missing", path);
  int n = 0;
  for (char *p = t; (p = strstr(p, "\"index\":")) && n < cap; p++) idx[n++] = atol(p + 8);
  return n;
}

TEST(merge_shard_manifests) {
  char *d = tmpdir(), *job = job_of(d, 10);
  for (int k = 0; k < 3; k++) {
    result r = RUN(d, "render", job, "-o", "out", "--shard", fmt("%d/3", k), "--manifest",
                   "m_{shard}.jsonl", "--quiet");
    expect_status(&r, 0);
  }
  result r = RUN(d, "merge", "-o", "all.jsonl", "out/m_0.jsonl", "out/m_1.jsonl", "out/m_2.jsonl",
                 "--job", job);
  expect_status(&r, 0);
  KT_STR_CONTAINS(r.out, "10 records from 3 manifests");
  long idx[32];
  KT_EQ(indices_of(fmt("%s/all.jsonl", d), idx, 32), 10);
  for (int i = 0; i < 10; i++) KT_EQ(idx[i], i);
  /* any order of the inputs: the same bytes */
  r = RUN(d, "merge", "-o", "all2.jsonl", "out/m_2.jsonl", "out/m_0.jsonl", "out/m_1.jsonl");
  expect_status(&r, 0);
  KT_TRUE(same_file(fmt("%s/all.jsonl", d), fmt("%s/all2.jsonl", d)));
  r = RUN(d, "merge", "-o", "all3.jsonl", "out/m_1.jsonl", "out/m_2.jsonl", "out/m_0.jsonl");
  expect_status(&r, 0);
  KT_TRUE(same_file(fmt("%s/all.jsonl", d), fmt("%s/all3.jsonl", d)));
  /* a manifest given twice folds silently; the merged output merged again is itself */
  r = RUN(d, "merge", "-o", "again.jsonl", "all.jsonl", "out/m_1.jsonl", "all.jsonl");
  expect_status(&r, 0);
  KT_TRUE(strstr(r.err, "warning") == NULL);
  KT_TRUE(same_file(fmt("%s/all.jsonl", d), fmt("%s/again.jsonl", d)));
  /* a missing shard: --job lists what is missing */
  r = RUN(d, "merge", "-o", "part.jsonl", "out/m_0.jsonl", "out/m_2.jsonl", "--job", job);
  expect_status(&r, 1);
  KT_STR_CONTAINS(r.err, "missing: index 1 (frame 1");
  KT_STR_CONTAINS(r.err, "3 of the 10 frames");
  /* records that differ: the one with more files is kept, and a warning names both */
  write_text(fmt("%s/x.jsonl", d),
             "{\"index\": 4, \"frame\": 4, \"files\": []}\n"
             "\n"
             "{\"index\": 11, \"frame\": 11, \"files\": [\"a.png\"]}\n");
  r = RUN(d, "merge", "-o", "x_all.jsonl", "x.jsonl", "out/m_1.jsonl");
  expect_status(&r, 0);
  KT_STR_CONTAINS(r.err, "warning: index 4 differs between out/m_1.jsonl:");
  KT_STR_CONTAINS(r.err, "and x.jsonl:1; kept out/m_1.jsonl:");
  KT_EQ(indices_of(fmt("%s/x_all.jsonl", d), idx, 32), 4); /* 1, 4, 7, 11 */
  KT_EQ(idx[0], 1);
  KT_EQ(idx[1], 4);
  KT_EQ(idx[2], 7);
  KT_EQ(idx[3], 11);
  size_t len;
  KT_STR_CONTAINS((char *)read_all(fmt("%s/x_all.jsonl", d), &len), "00004_color.png");
}

TEST(merge_bad_lines_write_nothing) {
  char *d = tmpdir();
  write_text(fmt("%s/a.jsonl", d), "{\"index\": 0, \"files\": [\"a.png\"]}\n");
  static const struct {
    const char *line, *why;
  } bad[] = {{"{\"index\": 1, \"files\": [\"b.png\"]", "not JSON"},
             {"[1, 2]", "not a JSON object"},
             {"{\"files\": []}", "no \"index\" number"},
             {"{\"index\": -1, \"files\": []}", "\"index\" is not a whole number"},
             {"{\"index\": 1.5, \"files\": []}", "\"index\" is not a whole number"},
             {"{\"index\": 1}", "no \"files\" array"},
             {"{\"index\": 1, \"files\": [3]}", "\"files\" holds something other"},
             {"{\"index\": 1, \"files\": []} x", "text after"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    write_text(fmt("%s/b.jsonl", d), fmt("{\"index\": 2, \"files\": []}\n%s\n", bad[i].line));
    result r = RUN(d, "merge", "-o", "m.jsonl", "a.jsonl", "b.jsonl");
    expect_status(&r, 2);
    KT_STR_CONTAINS(r.err, fmt("b.jsonl:2: %s", bad[i].why));
    KT_TRUE(access(fmt("%s/m.jsonl", d), F_OK) != 0);
  }
  result r = RUN(d, "merge", "-o", "m.jsonl", "a.jsonl", "none.jsonl");
  expect_status(&r, 2);
  KT_STR_CONTAINS(r.err, "cannot open none.jsonl");
  r = RUN(d, "merge", "a.jsonl");
  expect_status(&r, 2);
  KT_STR_CONTAINS(r.err, "no output given");
  r = RUN(d, "merge", "-o", "m.jsonl");
  expect_status(&r, 2);
  KT_STR_CONTAINS(r.err, "no input manifests");
  DIR *dir = opendir(d);
  struct dirent *e;
  while ((e = readdir(dir)))
    if (strstr(e->d_name, ".tmp-")) KT_FAIL("a temporary was left: %s", e->d_name);
  closedir(dir);
}

/* ---- the library call -------------------------------------------------------------------------- */

typedef struct problems {
  char text[64][512];
  int n;
} problems;

static void on_problem(void *arg, const kiln_verify_problem *p) {
  problems *ps = arg;
  if (ps->n < 64)
    snprintf(ps->text[ps->n++], 512, "%d %ld %s %s %s", (int)p->kind, p->frame->frame, p->pass,
             p->path, p->reason);
}

/* Serially and on a pool: the same problems, in job order, and the same sums. */
TEST(library_verify_serial_and_pooled_agree) {
  char *d = tmpdir(), *job_path = job_of(d, 12);
  result r = RUN(d, "render", job_path, "-o", "out", "--passes", "depth", "--quiet");
  expect_status(&r, 0);
  for (int f = 11; f >= 1; f -= 3) KT_EQ(unlink(fmt("%s/out/%05d_depth.png", d, f)), 0);
  char *cut = fmt("%s/out/00004_color.png", d);
  KT_EQ(truncate(cut, size_of(cut) / 2), 0);
  write_text(fmt("%s/out/.00006_depth.png.tmp-h-1-2", d), "");
  kiln_job *job = NULL;
  kiln_error_detail err;
  KT_CODE(kiln_job_load(job_path, NULL, &err, &job), 0);
  kiln_batch_config cfg;
  kiln_batch_config_default(&cfg);
  cfg.out_dir = fmt("%s/out", d);
  cfg.passes = KILN_PASS_DEPTH;
  static problems serial, pooled;
  kiln_batch_verify_summary s1, s2;
  KT_CODE(kiln_batch_verify(job, &cfg, on_problem, &serial, &s1, &err), 0);
  kiln_pool_config pc;
  kiln_pool_config_default(&pc);
  pc.threads = 3;
  kiln_pool *pool = NULL;
  KT_CODE(kiln_pool_create(&pc, &pool), 0);
  cfg.pool = pool;
  KT_CODE(kiln_batch_verify(job, &cfg, on_problem, &pooled, &s2, &err), 0);
  KT_EQ(serial.n, 6); /* 4 missing, 1 corrupt, 1 stray */
  KT_EQ(pooled.n, serial.n);
  for (int i = 0; i < serial.n; i++) KT_STR_EQ(pooled.text[i], serial.text[i]);
  /* frames 2, 5, 8, 11 lack depth; 4's colour is cut; 6 has a stray temporary */
  KT_STR_CONTAINS(serial.text[0], fmt("1 2 depth %s/out/00002_depth.png", d));
  KT_STR_CONTAINS(serial.text[1], "2 4 color");
  KT_STR_CONTAINS(serial.text[2], "1 5 depth");
  KT_STR_CONTAINS(serial.text[3], fmt("3 6 depth %s/out/.00006_depth.png.tmp-h-1-2", d));
  KT_STR_CONTAINS(serial.text[5], "1 11 depth");
  KT_EQ(s1.frames, 12);
  KT_EQ(s1.complete, 7);
  KT_EQ(s1.files, 24);
  KT_EQ(s1.ok, 19);
  KT_EQ(s1.missing, 4);
  KT_EQ(s1.corrupt, 1);
  KT_EQ(s1.strays, 1);
  KT_EQ(s2.complete, s1.complete);
  KT_EQ(s2.ok, s1.ok);
  KT_EQ(s2.bytes, s1.bytes);
  /* claiming is ignored: every frame is checked */
  cfg.claim = true;
  KT_CODE(kiln_batch_verify(job, &cfg, NULL, NULL, &s2, &err), 0);
  KT_EQ(s2.frames, 12);
  kiln_pool_destroy(pool);
  kiln_job_destroy(job);
}
