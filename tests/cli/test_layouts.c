/* test_layouts.c: output layouts end to end with the built `kiln`: templates that bucket frames
 * into folders ({frame//N}, {index//N}) and their located errors; the multilayer EXR (exr-multi),
 * read back with tinyexr and compared with the single-pass EXR files of the same frames; tar
 * shards (--tar N), listed and extracted with Debian's tar and compared with a loose run's files,
 * checked by kiln verify, and left whole by a run killed midway. Small renders: 32x32, 1 spp. */
// kt: timeout 300
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tinyexr.h>

#include "cli_test_util.h"
#include "kt.h"

#define SCENE KILN_SOURCE_DIR "/examples/cornell/scene.json"

/* An animation of n frames of the Cornell box at 32x32, 1 spp; extra: more members of the job. */
static char *job_of(const char *dir, int n, const char *extra) {
  char *path = fmt("%s/job.json", dir);
  write_text(path, fmt("{\n  \"scene\": \"%s\",\n  \"width\": 32, \"height\": 32, \"spp\": 1,\n"
                       "  \"animation\": {\"frames\": {\"start\": 0, \"end\": %d}}%s%s\n}\n",
                       SCENE, n - 1, extra ? ",\n  " : "", extra ? extra : ""));
  return path;
}

/* Runs a shell command; its exit status. */
static int sh(const char *cmd) {
  int st = system(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* ---- bucketed folders ------------------------------------------------------------------------- */

/* {frame//2:03d}/ puts frames two a folder; verify finds them; a killed write's temporary in a
 * sub-folder is listed by verify and swept by --resume, which renders a file deleted there. */
TEST(bucketed_template_writes_folders_and_verifies) {
  char *d = tmpdir(), *out = fmt("%s/out", d);
  char *job = job_of(d, 5, "\"passes\": [\"depth\"]");
  const char *tmpl = "{frame//2:03d}/{frame:06d}_{pass}.{ext}";
  result r = RUN(d, "render", job, "-o", out, "--template", tmpl, "--quiet");
  expect_status(&r, 0);
  for (int f = 0; f < 5; f++)
    for (int p = 0; p < 2; p++)
      if (access(fmt("%s/%03d/%06d_%s.png", out, f / 2, f, p ? "depth" : "color"), F_OK))
        KT_FAIL("frame %d's %s file is not in folder %03d", f, p ? "depth" : "color", f / 2);
  r = RUN(d, "verify", job, "-o", out, "--template", tmpl);
  expect_status(&r, 0);
  KT_STR_CONTAINS(r.out, "5 of 5 frames complete");
  /* a temporary of a process that no longer runs (pid above any pid_max), in folder 001 */
  char host[64] = "";
  gethostname(host, sizeof host - 1);
  for (char *p = host; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
      *p = '_';
  char *stray = fmt("%s/001/.000002_color.png.tmp-%.32s-999999999-0", out, host);
  write_text(stray, "partial");
  KT_EQ(unlink(fmt("%s/001/000003_depth.png", out)), 0);
  r = RUN(d, "verify", job, "-o", out, "--template", tmpl);
  expect_status(&r, 1);
  KT_STR_CONTAINS(r.out, "000003_depth.png");
  KT_STR_CONTAINS(r.out, ".000002_color.png.tmp-");
  r = RUN(d, "render", job, "-o", out, "--template", tmpl, "--resume", "--quiet");
  expect_status(&r, 0);
  KT_EQ(access(stray, F_OK), -1);
  KT_EQ(access(fmt("%s/001/000003_depth.png", out), F_OK), 0);
  r = RUN(d, "verify", job, "-o", out, "--template", tmpl);
  expect_status(&r, 0);
}

/* {index//N} buckets by position in the job, whatever the frame numbers. */
TEST(index_buckets_by_position) {
  char *d = tmpdir(), *out = fmt("%s/out", d);
  char *path = fmt("%s/job.json", d);
  write_text(path, fmt("{\"scene\": \"%s\", \"width\": 32, \"height\": 32, \"spp\": 1,\n"
                       " \"animation\": {\"frames\": {\"start\": 10, \"end\": 40, \"step\": 10}},\n"
                       " \"output\": \"{index//3}/{index:02d}_f{frame}_{pass}.{ext}\"}\n",
                       SCENE));
  result r = RUN(d, "render", path, "-o", out, "--quiet");
  expect_status(&r, 0);
  KT_EQ(access(fmt("%s/0/00_f10_color.png", out), F_OK), 0);
  KT_EQ(access(fmt("%s/0/02_f30_color.png", out), F_OK), 0);
  KT_EQ(access(fmt("%s/1/03_f40_color.png", out), F_OK), 0);
  r = RUN(d, "verify", path, "-o", out);
  expect_status(&r, 0);
}

/* A bad bucket in the job's own template is an error located in the job file (line 5, the
 * "output" member); one that would put two frames in one file is refused, naming them. */
TEST(bucket_errors_are_located) {
  static const struct {
    const char *tmpl, *want;
  } cases[] = {
      {"{frame//0}/{frame}_{pass}.{ext}", "bad division"},
      {"{frame//x}/{frame}_{pass}.{ext}", "bad division"},
      {"{frame/2}/{frame}_{pass}.{ext}", "bad division"},
      {"{name//2}/{frame}_{pass}.{ext}", "only {frame} and {index} divide"},
      {"{frame//10000000000000000}/{frame}_{pass}.{ext}", "bad division"},
      {"{frame//2:3d}/{frame}_{pass}.{ext}", "bad format"},
      {"{frame//1000}/x_{pass}.{ext}", "would write one file"},
      {"{frame//2}_{index//2}_{pass}.{ext}", "would write one file"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *d = tmpdir();
    char *job = job_of(d, 3, fmt("\n  \"output\": \"%s\"", cases[i].tmpl));
    result r = RUN(d, "render", job, "-o", fmt("%s/out", d), "--quiet");
    if (r.status != 2 || !strstr(r.err, cases[i].want) || !strstr(r.err, "job.json:6:"))
      KT_FAIL("template %s: exit %d, stderr:\n%s(want exit 2, job.json:6:, \"%s\")",
              cases[i].tmpl, r.status, r.err, cases[i].want);
    KT_EQ(access(fmt("%s/out", d), F_OK), -1); /* nothing written */
  }
  /* the same through --template: the option is named */
  char *d = tmpdir();
  char *job = job_of(d, 3, NULL);
  result r = RUN(d, "render", job, "-o", fmt("%s/out", d), "--template", "{frame//5}_{pass}.{ext}");
  expect_status(&r, 2);
  KT_STR_CONTAINS(r.err, "--template");
  KT_STR_CONTAINS(r.err, "frames 0 and 1 would write one file");
}

/* ---- multilayer EXR --------------------------------------------------------------------------- */

typedef struct exr {
  EXRHeader h;
  EXRImage img;
} exr;

static void exr_load(const char *path, exr *e) {
  size_t len;
  unsigned char *b = read_all(path, &len);
  if (!b) KT_FAIL("%s is missing", path);
  EXRVersion v;
  const char *err = NULL;
  KT_EQ(ParseEXRVersionFromMemory(&v, b, len), TINYEXR_SUCCESS);
  InitEXRHeader(&e->h);
  if (ParseEXRHeaderFromMemory(&e->h, &v, b, len, &err) != TINYEXR_SUCCESS)
    KT_FAIL("%s: %s", path, err);
  /* every channel as stored (HALF stays HALF), so the test sees the file's own types */
  InitEXRImage(&e->img);
  if (LoadEXRImageFromMemory(&e->img, &e->h, b, len, &err) != TINYEXR_SUCCESS)
    KT_FAIL("%s: %s", path, err);
}

static void exr_free(exr *e) {
  FreeEXRImage(&e->img);
  FreeEXRHeader(&e->h);
}

static int channel(const exr *e, const char *name) {
  for (int c = 0; c < e->h.num_channels; c++)
    if (!strcmp(e->h.channels[c].name, name)) return c;
  KT_FAIL("no channel %s", name);
}

/* Value i of channel name as a double (UINT or FLOAT). */
static double value(const exr *e, const char *name, size_t i) {
  int c = channel(e, name);
  if (e->h.pixel_types[c] == TINYEXR_PIXELTYPE_UINT) return ((const uint32_t *)e->img.images[c])[i];
  return ((const float *)e->img.images[c])[i];
}

/* Every pass in one EXR a frame, channels named and typed by convention, each value equal to the
 * single-pass EXR files of the same frame; verify decodes it; --exr-half gives HALF channels and
 * UINT ids still. */
TEST(multilayer_exr_matches_single_pass_files) {
  char *d = tmpdir(), *multi = fmt("%s/multi", d), *single = fmt("%s/single", d);
  char *job = job_of(d, 2, "\"passes\": [\"depth\", \"normal\", \"albedo\", \"id\", \"instance\"]");
  result r = RUN(d, "render", job, "-o", multi, "--format", "exr-multi", "--quiet");
  expect_status(&r, 0);
  r = RUN(d, "render", job, "-o", single, "--format", "exr", "--quiet");
  expect_status(&r, 0);
  r = RUN(d, "verify", job, "-o", multi, "--format", "exr-multi");
  expect_status(&r, 0);
  KT_STR_CONTAINS(r.out, "2 files: 2 ok");
  /* --resume: the one file is the frame's files */
  char *keep1 = fmt("%s/keep.exr", d);
  KT_EQ(rename(fmt("%s/00001_layers.exr", multi), keep1), 0);
  r = RUN(d, "render", job, "-o", multi, "--format", "exr-multi", "--resume");
  expect_status(&r, 0);
  KT_STR_CONTAINS(r.out, "1 of 2 frames written, 1 skipped");
  KT_TRUE(same_file(keep1, fmt("%s/00001_layers.exr", multi))); /* deterministic, too */
  static const char *const want[] = {"B",   "G",   "N.X", "N.Y",      "N.Z",     "R",
                                     "Z",   "albedo.B", "albedo.G", "albedo.R", "id",
                                     "instance"};
  static const struct {
    const char *pass, *ch[3];
  } map[] = {{"color", {"B", "G", "R"}},
             {"depth", {"Z"}},
             {"normal", {"N.Z", "N.Y", "N.X"}}, /* single files hold B G R = z y x */
             {"albedo", {"albedo.B", "albedo.G", "albedo.R"}},
             {"id", {"id"}},
             {"instance", {"instance"}}};
  for (int f = 0; f < 2; f++) {
    exr m;
    exr_load(fmt("%s/%05d_layers.exr", multi, f), &m);
    KT_EQ(m.h.num_channels, 12);
    for (int c = 0; c < 12; c++) {
      KT_STR_EQ(m.h.channels[c].name, want[c]);
      bool ids = !strcmp(want[c], "id") || !strcmp(want[c], "instance");
      KT_EQ(m.h.pixel_types[c], ids ? TINYEXR_PIXELTYPE_UINT : TINYEXR_PIXELTYPE_FLOAT);
    }
    for (size_t p = 0; p < sizeof map / sizeof map[0]; p++) {
      exr s;
      exr_load(fmt("%s/%05d_%s.exr", single, f, map[p].pass), &s);
      int n = s.h.num_channels;
      for (int c = 0; c < n; c++)
        for (size_t i = 0; i < 32 * 32; i++) {
          double a = value(&m, map[p].ch[c], i), b = ((const float *)s.img.images[c])[i];
          if (a != b)
            KT_FAIL("frame %d %s channel %s pixel %zu: %g in the multilayer file, %g alone", f,
                    map[p].pass, map[p].ch[c], i, a, b);
        }
      exr_free(&s);
    }
    exr_free(&m);
  }
  char *half = fmt("%s/half", d);
  r = RUN(d, "render", job, "-o", half, "--format", "exr-multi", "--exr-half", "--exr-compression",
          "piz", "--quiet");
  expect_status(&r, 0);
  exr m;
  exr_load(fmt("%s/00001_layers.exr", half), &m);
  KT_EQ(m.h.compression_type, TINYEXR_COMPRESSIONTYPE_PIZ);
  KT_EQ(m.h.pixel_types[channel(&m, "R")], TINYEXR_PIXELTYPE_HALF);
  KT_EQ(m.h.pixel_types[channel(&m, "id")], TINYEXR_PIXELTYPE_UINT);
  exr_free(&m);
  r = RUN(d, "verify", job, "-o", half, "--format", "exr-multi");
  expect_status(&r, 0);
  /* the options hold for single-pass EXR files too; their ids stay FLOAT (exact) */
  char *one = fmt("%s/one", d);
  r = RUN(d, "render", job, "-o", one, "--format", "exr", "--exr-half", "--exr-compression", "rle",
          "--frames", "0", "--quiet");
  expect_status(&r, 0);
  exr_load(fmt("%s/00000_color.exr", one), &m);
  KT_EQ(m.h.compression_type, TINYEXR_COMPRESSIONTYPE_RLE);
  KT_EQ(m.h.pixel_types[channel(&m, "R")], TINYEXR_PIXELTYPE_HALF);
  exr_free(&m);
  exr_load(fmt("%s/00000_instance.exr", one), &m);
  KT_EQ(m.h.pixel_types[0], TINYEXR_PIXELTYPE_FLOAT);
  exr_free(&m);
  r = RUN(d, "verify", job, "-o", one, "--format", "exr", "--frames", "0");
  expect_status(&r, 0);
  /* a multilayer file of other passes is not what this run writes */
  r = RUN(d, "verify", job, "-o", half, "--format", "exr-multi", "--passes", "depth");
  expect_status(&r, 1);
  KT_STR_CONTAINS(r.out, "channels");
}

/* ---- tar shards --------------------------------------------------------------------------------- */

/* 5 frames two a tar: three tars (the last one frame), members NAME.PASS.EXT as Debian's tar
 * lists them, each byte-equal to the file a loose run writes; verify checks them, and finds a
 * truncated tar corrupt and a member missing from it. */
TEST(tar_shards_hold_the_loose_files) {
  char *d = tmpdir(), *out = fmt("%s/out", d), *loose = fmt("%s/loose", d), *x = fmt("%s/x", d);
  char *job = job_of(d, 5, "\"passes\": [\"depth\", \"id\"]");
  result r = RUN(d, "render", job, "-o", out, "--tar", "2", "--quiet");
  expect_status(&r, 0);
  r = RUN(d, "render", job, "-o", loose, "--template", "{name}.{pass}.{ext}", "--quiet");
  expect_status(&r, 0);
  char *list = fmt("%s/list.txt", d);
  /* frames in the order they finished, each frame's members together (WebDataset's grouping) */
  KT_EQ(sh(fmt("tar -tf %s/shard-000000.tar > %s", out, list)), 0);
  size_t len;
  char *got = (char *)read_all(list, &len);
  const char *f0 = "00000.color.png\n00000.depth.png\n00000.id.png\n",
             *f1 = "00001.color.png\n00001.depth.png\n00001.id.png\n";
  if (strcmp(got, fmt("%s%s", f0, f1)) && strcmp(got, fmt("%s%s", f1, f0)))
    KT_FAIL("frames' members are not together:\n%s", got);
  KT_EQ(sh(fmt("tar -tf %s/shard-000000.tar | sort > %s", out, list)), 0);
  KT_STR_EQ((char *)read_all(list, &len),
            "00000.color.png\n00000.depth.png\n00000.id.png\n"
            "00001.color.png\n00001.depth.png\n00001.id.png\n");
  KT_EQ(sh(fmt("tar -tf %s/shard-000002.tar > %s", out, list)), 0);
  KT_STR_EQ((char *)read_all(list, &len), "00004.color.png\n00004.depth.png\n00004.id.png\n");
  KT_EQ(access(fmt("%s/shard-000003.tar", out), F_OK), -1);
  KT_EQ(mkdir(x, 0777), 0);
  for (int k = 0; k < 3; k++)
    KT_EQ(sh(fmt("tar -xf %s/shard-%06d.tar -C %s", out, k, x)), 0);
  static const char *const passes[] = {"color", "depth", "id"};
  for (int f = 0; f < 5; f++)
    for (int p = 0; p < 3; p++) {
      char *name = fmt("%05d.%s.png", f, passes[p]);
      if (!same_file(fmt("%s/%s", x, name), fmt("%s/%s", loose, name)))
        KT_FAIL("%s from the tar differs from the loose run's", name);
    }
  r = RUN(d, "verify", job, "-o", out, "--tar", "2", "--passes", "depth,id");
  expect_status(&r, 0);
  KT_STR_CONTAINS(r.out, "5 of 5 frames complete; 15 files: 15 ok");
  /* a tar cut short is corrupt (its frames); one without frame 4's id member misses it */
  KT_EQ(truncate(fmt("%s/shard-000000.tar", out), 3000), 0);
  KT_EQ(sh(fmt("tar --delete -f %s/shard-000002.tar 00004.id.png", out)), 0);
  r = RUN(d, "verify", job, "-o", out, "--tar", "2", "--passes", "depth,id");
  expect_status(&r, 1);
  KT_STR_CONTAINS(r.out, "2 of 5 frames complete"); /* 0 and 1 cut off, 4 short */
  KT_STR_CONTAINS(r.out, "truncated");
  KT_STR_CONTAINS(r.out, "shard-000002.tar/00004.id.png");
}

/* A name with a dot cannot be a WebDataset key: that frame fails (its tar is short of it), the
 * others are written; a member name past ustar's 100 bytes lists whole (a pax record). */
TEST(tar_refuses_a_name_with_a_dot) {
  char *d = tmpdir(), *out = fmt("%s/out", d);
  char *path = fmt("%s/job.json", d), longname[121];
  memset(longname, 'x', 120), longname[120] = 0;
  write_text(path, fmt("{\"scene\": \"%s\", \"width\": 32, \"height\": 32, \"spp\": 1,\n"
                       " \"images\": [{\"name\": \"a\"}, {\"name\": \"b.c\"},\n"
                       "   {\"name\": \"%s\"}]}\n",
                       SCENE, longname));
  result r = RUN(d, "render", path, "-o", out, "--tar", "4");
  expect_status(&r, 1);
  KT_STR_CONTAINS(r.err, "holds a '.'");
  char *list = fmt("%s/list.txt", d);
  KT_EQ(sh(fmt("tar -tf %s/shard-000000.tar | sort > %s", out, list)), 0);
  size_t len;
  KT_STR_EQ((char *)read_all(list, &len), fmt("a.color.png\n%s.color.png\n", longname));
  r = RUN(d, "verify", path, "-o", out, "--tar", "4");
  expect_status(&r, 1);
  KT_STR_CONTAINS(r.out, "2 of 3 frames complete");
}

/* The job's "tar", "format" and "exr" set the layout (verify reads them too); a bad "exr" is an
 * error located in the job. */
TEST(job_keys_set_the_layout) {
  char *d = tmpdir(), *out = fmt("%s/out", d);
  char *job = job_of(d, 3,
                     "\"passes\": [\"id\"], \"format\": \"exr-multi\", \"tar\": 2,\n"
                     "  \"exr\": {\"half\": true, \"compression\": \"zips\"}");
  result r = RUN(d, "render", job, "-o", out, "--quiet");
  expect_status(&r, 0);
  char *list = fmt("%s/list.txt", d);
  KT_EQ(sh(fmt("tar -tf %s/shard-000001.tar > %s", out, list)), 0);
  size_t len;
  KT_STR_EQ((char *)read_all(list, &len), "00002.layers.exr\n");
  KT_EQ(sh(fmt("cd %s && tar -xf %s/shard-000000.tar", d, out)), 0);
  exr m;
  exr_load(fmt("%s/00001.layers.exr", d), &m);
  KT_EQ(m.h.compression_type, TINYEXR_COMPRESSIONTYPE_ZIPS);
  KT_EQ(m.h.pixel_types[channel(&m, "G")], TINYEXR_PIXELTYPE_HALF);
  KT_EQ(m.h.pixel_types[channel(&m, "id")], TINYEXR_PIXELTYPE_UINT);
  exr_free(&m);
  r = RUN(d, "verify", job, "-o", out);
  expect_status(&r, 0);
  KT_STR_CONTAINS(r.out, "3 of 3 frames complete");

  char *d2 = tmpdir();
  job = job_of(d2, 2, "\"exr\": {\"compression\": \"dwaa\"}");
  r = RUN(d2, "render", job, "-o", fmt("%s/out", d2));
  expect_status(&r, 2);
  KT_STR_CONTAINS(r.err, "job.json:5:");
  KT_STR_CONTAINS(r.err, "exr.compression");
  job = job_of(d2, 2, "\"tar\": 0");
  r = RUN(d2, "render", job, "-o", fmt("%s/out", d2));
  expect_status(&r, 2);
  KT_STR_CONTAINS(r.err, "tar");
}

/* Every tar in dir lists completely and holds per frames' colour files (the last, rest); returns
 * how many tars there are. */
static int tars_whole(const char *d, const char *dir, int per, int frames) {
  int n = 0;
  for (int k = 0;; k++, n++) {
    char *tar = fmt("%s/shard-%06d.tar", dir, k);
    if (access(tar, F_OK)) break;
    char *cnt = fmt("%s/count.txt", d);
    if (sh(fmt("tar -tf %s | wc -l > %s", tar, cnt)))
      KT_FAIL("%s does not list", tar);
    size_t len;
    int members = atoi((char *)read_all(cnt, &len));
    int want = frames - k * per < per ? frames - k * per : per;
    if (members != want) KT_FAIL("%s holds %d members, not %d", tar, members, want);
  }
  return n;
}

/* SIGINT: the tar being filled is not left under its final name (nor as a temporary); SIGKILL:
 * only a temporary is left, and --resume then makes every tar, each as an uninterrupted run's. */
TEST(interrupted_run_leaves_no_partial_tar) {
  char *d = tmpdir(), *out = fmt("%s/out", d);
  char *job = job_of(d, 40, NULL);
  KT_EQ(mkdir(out, 0777), 0);
  int ifd = watch_renames(out);
  pid_t pid =
      start_in(d, d, NULL, ARGS("render", job, "-o", out, "--tar", "3", "--in-flight", "2"));
  wait_for_renames(ifd, "shard-000000.tar", 1, pid);
  KT_EQ(kill(pid, SIGINT), 0);
  result r = finish(d, pid);
  expect_status(&r, 130);
  int n = tars_whole(d, out, 3, 40);
  KT_TRUE(n >= 1 && n < 14);
  DIR *dir = opendir(out);
  for (struct dirent *e; (e = readdir(dir));)
    if (strstr(e->d_name, ".tmp-")) KT_FAIL("a temporary is left: %s", e->d_name);
  closedir(dir);

  char *out2 = fmt("%s/out2", d);
  KT_EQ(mkdir(out2, 0777), 0);
  KT_TRUE(inotify_add_watch(ifd, out2, IN_MOVED_TO) >= 0);
  pid = start_in(d, d, NULL, ARGS("render", job, "-o", out2, "--tar", "3", "--in-flight", "2"));
  wait_for_renames(ifd, "shard-000001.tar", 1, pid);
  KT_EQ(kill(pid, SIGKILL), 0);
  r = finish(d, pid);
  KT_EQ(r.status, 128 + SIGKILL);
  close(ifd);
  tars_whole(d, out2, 3, 40);
  r = RUN(d, "render", job, "-o", out2, "--tar", "3", "--resume", "--quiet");
  expect_status(&r, 0);
  KT_EQ(tars_whole(d, out2, 3, 40), 14);
  r = RUN(d, "verify", job, "-o", out2, "--tar", "3");
  expect_status(&r, 0);
  KT_STR_CONTAINS(r.out, "40 of 40 frames complete");
  KT_STR_CONTAINS(r.out, "0 stray");
}
