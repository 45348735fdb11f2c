/* test_cli.c: `kiln render` end to end, on whatever Vulkan driver is installed (lavapipe in CI):
 * the files and their contents, determinism, exit codes, bad input, a failing frame, SIGINT,
 * SIGKILL + --resume, and a full disk. Each test runs the built `kiln` binary in a fresh temporary
 * folder; runs are synchronised on inotify events and process exits, never on sleeps. */
// kt: timeout 300
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kiln/version.h"
#include "kiln/error.h"
#include "cli_test_util.h"
#include "kt.h"

#define SCENE KILN_SOURCE_DIR "/examples/cornell/scene.json"

/* ---- helpers -------------------------------------------------------------------------------- */

/* Files in dir that are not hidden, sorted; returns how many. */
static int list_files(const char *dir, char names[][256], int cap) {
  struct dirent **ents;
  int n = scandir(dir, &ents, NULL, alphasort), k = 0;
  for (int i = 0; i < n; i++) {
    if (ents[i]->d_name[0] != '.' && k < cap) snprintf(names[k++], 256, "%s", ents[i]->d_name);
    free(ents[i]);
  }
  free(ents);
  return k;
}

/* Number of entries (hidden included, . and .. not) whose name contains needle. */
static int count_named(const char *dir, const char *needle) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strstr(e->d_name, needle)) n++;
  closedir(d);
  return n;
}

/* PNG header facts: width, height, bit depth, colour type (0 grey, 2 RGB). */
static void png_header(const char *path, int *w, int *h, int *depth, int *ctype) {
  size_t len;
  unsigned char *b = read_all(path, &len);
  if (!b) KT_FAIL("%s is missing", path);
  if (len < 33 || memcmp(b, "\x89PNG\r\n\x1a\n", 8) || memcmp(b + 12, "IHDR", 4))
    KT_FAIL("%s is not a PNG", path);
  *w = (b[16] << 24) | (b[17] << 16) | (b[18] << 8) | b[19];
  *h = (b[20] << 24) | (b[21] << 16) | (b[22] << 8) | b[23];
  *depth = b[24], *ctype = b[25];
  free(b);
}

/* Decodes a PNG fully (a truncated or corrupt file fails). 16-bit files come back 16-bit. */
static void *png_decode(const char *path, int *w, int *h, int *ch, bool *wide) {
  *wide = stbi_is_16_bit(path);
  void *p = *wide ? (void *)stbi_load_16(path, w, h, ch, 0) : (void *)stbi_load(path, w, h, ch, 0);
  if (!p) KT_FAIL("%s does not decode: %s", path, stbi_failure_reason());
  return p;
}


/* A job: an animation of `frames` frames of the Cornell box at 32x32, 2 spp, orbiting a little. */
static char *anim_job(const char *dir, int frames, const char *extra) {
  char *path = fmt("%s/job.json", dir);
  char *text =
      fmt("{\n  \"scene\": \"%s\",\n  \"width\": 32, \"height\": 32, \"spp\": 2,\n"
          "  \"animation\": {\n    \"frames\": {\"start\": 0, \"end\": %d},\n"
          "    \"camera\": {\"orbit\": {\"center\": [0.278, 0.273, 0.28], \"radius\": 1.08,"
          " \"start_angle\": 160, \"degrees\": 40}}\n  }%s%s\n}\n",
          SCENE, frames - 1, extra ? ",\n  " : "", extra ? extra : "");
  write_text(path, text);
  free(text);
  return path;
}

/* ---- tests ----------------------------------------------------------------------------------- */

TEST(version_and_help) {
  char *d = tmpdir();
  result r = run(d, ARGS("--version"));
  expect_status(&r, 0);
  KT_STR_CONTAINS(r.out, "kiln " KILN_VERSION_STRING "\n"); /* the library's kiln_version() */
  r = run(d, ARGS("render", "--help"));
  expect_status(&r, 0);
  KT_STR_CONTAINS(r.out, "--resume");
  KT_STR_CONTAINS(r.out, "--contact-sheet");
  r = run(d, ARGS("devices", "--help"));
  expect_status(&r, 0);
  r = run(d, ARGS("render"));
  expect_status(&r, 2);
  KT_STR_CONTAINS(r.err, "no job given");
  r = run(d, ARGS("render", "x.json", "--frobnicate"));
  expect_status(&r, 2);
  KT_STR_CONTAINS(r.err, "unknown option --frobnicate");
  r = run(d, ARGS("render", "x.json", "--frames", "9:3"));
  expect_status(&r, 2);
  KT_STR_CONTAINS(r.err, "--frames 9:3");
}

/* Every pass file exists with the right shape, and the values mean what docs/JOBS.md says. */
TEST(animation_writes_every_pass) {
  char *d = tmpdir(), *out = fmt("%s/out", d);
  char *job = anim_job(d, 3, NULL);
  char *json = fmt("%s/summary.json", d);
  result r = run(d, ARGS("render", job, "-o", out, "--passes", "depth,normal,albedo,id,instance",
                         "--json", json, "--contact-sheet", "sheet.png"));
  expect_status(&r, 0);
  KT_STR_CONTAINS(r.out, "3 of 3 frames written");
  KT_STR_CONTAINS(r.out, "sheet.png");
  char names[64][256];
  KT_EQ(list_files(out, names, 64), 3 * 6 + 1);
  static const struct {
    const char *pass;
    int depth, ctype;
  } want[] = {{"color", 8, 2},  {"depth", 16, 0}, {"normal", 8, 2},
              {"albedo", 8, 2}, {"id", 16, 0},    {"instance", 16, 0}};
  for (int f = 0; f < 3; f++)
    for (int p = 0; p < 6; p++) {
      char *path = fmt("%s/%05d_%s.png", out, f, want[p].pass);
      int w, h, bd, ct;
      png_header(path, &w, &h, &bd, &ct);
      KT_EQ(w, 32);
      KT_EQ(h, 32);
      KT_EQ(bd, want[p].depth);
      KT_EQ(ct, want[p].ctype);
      free(path);
    }
  /* frame 1 looks straight at the back wall (orbit angle 180: the front view); pixel (16, 9) sees
   * the wall between the top of the tall box and the ceiling */
  int w, h, ch;
  bool wide;
  char *p = fmt("%s/00001_depth.png", out);
  uint16_t *depth = png_decode(p, &w, &h, &ch, &wide);
  KT_TRUE(wide && ch == 1);
  /* camera at z = 0.28 - 1.08 = -0.80, back wall at z = 0.5592: 1359 mm along the camera axis for
   * every pixel that sees it (the wall is perpendicular to the axis) */
  int dmm = depth[9 * 32 + 16];
  if (dmm < 1354 || dmm > 1364) KT_FAIL("back-wall depth %d mm, expected 1359", dmm);
  free(p);
  p = fmt("%s/00001_normal.png", out);
  uint8_t *nrm = png_decode(p, &w, &h, &ch, &wide);
  /* the back wall faces the camera: normal (0, 0, -1) -> (128, 128, 0) */
  uint8_t *c = nrm + (9 * 32 + 16) * 3;
  if (abs(c[0] - 128) > 2 || abs(c[1] - 128) > 2 || c[2] > 2)
    KT_FAIL("back-wall normal %u,%u,%u, expected 128,128,0", c[0], c[1], c[2]);
  free(p);
  p = fmt("%s/00001_id.png", out);
  uint16_t *ids = png_decode(p, &w, &h, &ch, &wide);
  /* ids follow docs/SCENE.md: the OBJ's `o` blocks in order (floor 1, ceiling 2, back_wall 3,
   * red wall, green wall, short block, tall block: 7), then the light quad (8). The box fills most
   * of the view; the wall pixel is back_wall */
  int nonzero = 0;
  for (int i = 0; i < 32 * 32; i++) {
    if (ids[i] > 8) KT_FAIL("object id %u at pixel %d: the scene has 8 objects", ids[i], i);
    nonzero += ids[i] != 0;
  }
  KT_TRUE(nonzero > 32 * 32 * 3 / 4);
  KT_EQ(ids[9 * 32 + 16], 3);
  free(p);
  p = fmt("%s/00001_color.png", out);
  uint8_t *col = png_decode(p, &w, &h, &ch, &wide);
  long sum = 0;
  for (int i = 0; i < 32 * 32 * 3; i++) sum += col[i];
  KT_TRUE(sum > 32 * 32 * 3 * 20); /* lit, not black */
  free(p);
  stbi_image_free(depth), stbi_image_free(nrm), stbi_image_free(ids), stbi_image_free(col);
  size_t len;
  char *js = (char *)read_all(json, &len);
  KT_TRUE(js != NULL);
  KT_STR_CONTAINS(js, "\"written\": 3");
  KT_STR_CONTAINS(js, "\"failed\": 0");
  KT_STR_CONTAINS(js, "\"exit_code\": 0");
  KT_STR_CONTAINS(js, "\"images_per_s\"");
  int sw, sh, sd, sc;
  char *sheet = fmt("%s/sheet.png", out);
  png_header(sheet, &sw, &sh, &sd, &sc);
  KT_TRUE(sw > 32 && sh >= 32);
  KT_EQ(count_named(out, ".tmp-"), 0);
}

/* NPY and EXR outputs: the headers say the shape and type a loader needs. */
TEST(float_formats) {
  char *d = tmpdir(), *out = fmt("%s/out", d);
  char *job = anim_job(d, 1, NULL);
  result r =
      run(d, ARGS("render", job, "-o", out, "--passes", "depth,id", "--format", "npy", "--quiet"));
  expect_status(&r, 0);
  KT_STR_EQ(r.out, "");
  size_t len;
  char *p = fmt("%s/00000_color.npy", out);
  char *b = (char *)read_all(p, &len);
  KT_TRUE(b && memcmp(b, "\x93NUMPY", 6) == 0);
  KT_STR_CONTAINS(b + 10, "'descr': '<f4'");
  KT_STR_CONTAINS(b + 10, "'shape': (32, 32, 3)");
  size_t hdr = 10 + (size_t)(b[8] | b[9] << 8);
  KT_EQ(len, hdr + 32 * 32 * 3 * 4);
  p = fmt("%s/00000_depth.npy", out);
  b = (char *)read_all(p, &len);
  KT_STR_CONTAINS(b + 10, "'shape': (32, 32)");
  float z;
  memcpy(&z, b + 10 + (b[8] | b[9] << 8) + 4 * (16 * 32 + 16), 4);
  KT_TRUE(z > 1.2f && z < 1.5f);
  p = fmt("%s/00000_id.npy", out);
  b = (char *)read_all(p, &len);
  KT_STR_CONTAINS(b + 10, "'descr': '<u4'");
  r = run(d, ARGS("render", job, "-o", out, "--passes", "depth", "--format", "exr", "--quiet"));
  expect_status(&r, 0);
  p = fmt("%s/00000_depth.exr", out);
  b = (char *)read_all(p, &len);
  KT_TRUE(b && len > 4 && memcmp(b, "\x76\x2f\x31\x01", 4) == 0);
}

/* The same job with different threads and frames in flight gives byte-identical files. */
TEST(deterministic_across_threads_and_in_flight) {
  char *d = tmpdir(), *a = fmt("%s/a", d), *b = fmt("%s/b", d);
  char *job = anim_job(d, 4, "\"passes\": [\"depth\", \"normal\"]");
  result r = run(d, ARGS("render", job, "-o", a, "--threads", "1", "--in-flight", "1", "--quiet"));
  expect_status(&r, 0);
  r = run(d, ARGS("render", job, "-o", b, "--threads", "2", "--in-flight", "6", "--quiet"));
  expect_status(&r, 0);
  char na[64][256], nb[64][256];
  int n = list_files(a, na, 64);
  KT_EQ(n, 12);
  KT_EQ(list_files(b, nb, 64), n);
  for (int i = 0; i < n; i++) {
    KT_STR_EQ(na[i], nb[i]);
    char *pa = fmt("%s/%s", a, na[i]), *pb = fmt("%s/%s", b, nb[i]);
    if (!same_file(pa, pb)) KT_FAIL("%s and %s differ", pa, pb);
  }
}

/* A JSONL list: names, per-image overrides; a material override changes only its image. */
TEST(jsonl_list_with_overrides) {
  char *d = tmpdir(), *out = fmt("%s/out", d), *list = fmt("%s/list.jsonl", d);
  write_text(
      list,
      "{\"name\": \"plain\"}\n"
      "\n"
      "{\"name\": \"bluewall\", \"materials\": {\"red\": {\"albedo\": [0.05, 0.1, 0.7]}}}\n"
      "{\"name\": \"moved\", \"camera\": {\"position\": [0.278, 0.273, -0.5]}, \"seed\": 7}\n");
  result r = run(d, ARGS("render", list, "--scene", SCENE, "-o", out, "--size", "32x32", "--spp",
                         "2", "--template", "{name}.{ext}", "--quiet"));
  expect_status(&r, 0);
  char names[8][256];
  KT_EQ(list_files(out, names, 8), 3);
  KT_STR_EQ(names[0], "bluewall.png");
  KT_STR_EQ(names[1], "moved.png");
  KT_STR_EQ(names[2], "plain.png");
  int w, h, ch;
  bool wide;
  char *p0 = fmt("%s/plain.png", out), *p1 = fmt("%s/bluewall.png", out);
  uint8_t *a = png_decode(p0, &w, &h, &ch, &wide), *b = png_decode(p1, &w, &h, &ch, &wide);
  /* the left wall (red in the scene, +x appears on the image left) turned blue */
  long ar = 0, ab = 0, br = 0, bb = 0;
  for (int y = 8; y < 24; y++)
    for (int x = 1; x < 5; x++) {
      uint8_t *pa = a + (y * 32 + x) * 3, *pb = b + (y * 32 + x) * 3;
      ar += pa[0], ab += pa[2], br += pb[0], bb += pb[2];
    }
  KT_TRUE(ar > 2 * ab); /* red */
  KT_TRUE(bb > 2 * br); /* blue */
  stbi_image_free(a), stbi_image_free(b);
}

/* Bad jobs: a message naming the file and line, exit 2, nothing written. */
TEST(malformed_job_exits_2_and_writes_nothing) {
  char *d = tmpdir(), *out = fmt("%s/out", d);
  char *job = fmt("%s/bad.json", d);
  write_text(job, fmt("{\n  \"scene\": \"%s\",\n  \"animaton\": {}\n}\n", SCENE));
  result r = run(d, ARGS("render", job, "-o", out));
  expect_status(&r, 2);
  KT_STR_CONTAINS(r.err, "bad.json:3");
  KT_STR_CONTAINS(r.err, "animaton");
  KT_TRUE(access(out, F_OK) != 0);
  char *list = fmt("%s/bad.jsonl", d);
  write_text(list, "{\"name\": \"a\"}\n{\"name\": \"b\", \"camera\": {\"vfov\": \"wide\"}}\n");
  r = run(d, ARGS("render", list, "--scene", SCENE, "-o", out));
  expect_status(&r, 2);
  KT_STR_CONTAINS(r.err, "bad.jsonl:2");
  KT_TRUE(access(out, F_OK) != 0);
  char *scene = fmt("%s/scene.json", d);
  write_text(scene, "{ \"settings\": { \"width\": -4 } }\n");
  char *j2 = fmt("%s/j2.json", d);
  write_text(j2, fmt("{\"scene\": \"%s\", \"animation\": {\"frames\": {\"start\": 0, \"end\": 1}}}",
                     scene));
  r = run(d, ARGS("render", j2, "-o", out));
  expect_status(&r, 2);
  KT_STR_CONTAINS(r.err, "scene.json:1");
  KT_STR_CONTAINS(r.err, "settings.width");
  KT_TRUE(access(out, F_OK) != 0);
  r = run(d, ARGS("render", fmt("%s/missing.json", d), "-o", out));
  expect_status(&r, 2);
  KT_STR_CONTAINS(r.err, "missing.json");
}

/* Existing outputs: refused without a flag (exit 2, untouched), kept by --resume, replaced by
 * --overwrite. */
TEST(existing_outputs_resume_and_overwrite) {
  char *d = tmpdir(), *out = fmt("%s/out", d);
  char *job = anim_job(d, 3, NULL);
  result r = run(d, ARGS("render", job, "-o", out, "--quiet"));
  expect_status(&r, 0);
  char *f1 = fmt("%s/00001_color.png", out);
  struct stat st0;
  KT_EQ(stat(f1, &st0), 0);
  r = run(d, ARGS("render", job, "-o", out));
  expect_status(&r, 2);
  KT_STR_CONTAINS(r.err, "00000_color.png exists");
  unlink(f1);
  r = run(d, ARGS("render", job, "-o", out, "--resume"));
  expect_status(&r, 0);
  KT_STR_CONTAINS(r.out, "1 of 3 frames written, 2 skipped");
  KT_EQ(access(f1, F_OK), 0);
  r = run(d, ARGS("render", job, "-o", out, "--overwrite"));
  expect_status(&r, 0);
  KT_STR_CONTAINS(r.out, "3 of 3 frames written");
}

/* One frame cannot be written (its output name is taken by a folder): it is reported, the others
 * are written, exit 1, and the JSON summary names it. */
TEST(failing_frame_exits_1_others_written) {
  char *d = tmpdir(), *out = fmt("%s/out", d);
  char *job = anim_job(d, 4, NULL);
  KT_EQ(mkdir(out, 0777), 0);
  KT_EQ(mkdir(fmt("%s/00002_color.png", out), 0777), 0);
  KT_EQ(mkdir(fmt("%s/00002_color.png/keep", out), 0777), 0);
  char *json = fmt("%s/s.json", d);
  result r = run(d, ARGS("render", job, "-o", out, "--overwrite", "--json", json));
  expect_status(&r, 1);
  KT_STR_CONTAINS(r.err, "frame 2");
  KT_STR_CONTAINS(r.out, "3 of 4 frames written");
  for (int f = 0; f < 4; f++)
    if (f != 2) KT_EQ(access(fmt("%s/%05d_color.png", out, f), F_OK), 0);
  size_t len;
  char *js = (char *)read_all(json, &len);
  KT_STR_CONTAINS(js, "\"exit_code\": 1");
  KT_STR_CONTAINS(js, "\"frame\": 2");
  KT_EQ(count_named(out, ".tmp-"), 0);
}

/* Every visible PNG in dir decodes completely; no temporary is left. Returns how many. */
static int all_complete(const char *dir) {
  char names[256][256];
  int n = list_files(dir, names, 256);
  for (int i = 0; i < n; i++) {
    char *p = fmt("%s/%s", dir, names[i]);
    int w, h, ch;
    bool wide;
    if (strstr(p, ".png")) stbi_image_free(png_decode(p, &w, &h, &ch, &wide));
    free(p);
  }
  KT_EQ(count_named(dir, ".tmp-"), 0);
  return n;
}

/* Ctrl-C mid-run: no new frames, the ones in flight finish, a summary, exit 130, no partial file. */
TEST(sigint_stops_cleanly) {
  char *d = tmpdir(), *out = fmt("%s/out", d);
  char *job = anim_job(d, 200, NULL);
  KT_EQ(mkdir(out, 0777), 0);
  int ifd = watch_renames(out);
  pid_t pid = start(d, ARGS("render", job, "-o", out, "--in-flight", "2"));
  wait_for_renames(ifd, NULL, 2, pid);
  KT_EQ(kill(pid, SIGINT), 0);
  result r = finish(d, pid);
  expect_status(&r, 130);
  KT_STR_CONTAINS(r.out, "stopped");
  int n = all_complete(out);
  KT_TRUE(n >= 2 && n < 200);
  close(ifd);
}

/* SIGKILL mid-run, then --resume: the full set, each file identical to an uninterrupted run's. */
TEST(sigkill_then_resume_gives_the_full_set) {
  char *d = tmpdir(), *out = fmt("%s/out", d), *ref = fmt("%s/ref", d);
  char *job = anim_job(d, 12, "\"passes\": [\"depth\"]");
  KT_EQ(mkdir(out, 0777), 0);
  int ifd = watch_renames(out);
  pid_t pid = start(d, ARGS("render", job, "-o", out, "--in-flight", "3"));
  wait_for_renames(ifd, NULL, 5, pid);
  KT_EQ(kill(pid, SIGKILL), 0);
  result r = finish(d, pid);
  KT_EQ(r.status, 128 + SIGKILL);
  close(ifd);
  r = run(d, ARGS("render", job, "-o", out, "--resume"));
  expect_status(&r, 0);
  KT_STR_CONTAINS(r.out, "skipped");
  KT_EQ(all_complete(out), 24);
  r = run(d, ARGS("render", job, "-o", ref, "--quiet"));
  expect_status(&r, 0);
  char names[64][256];
  int n = list_files(ref, names, 64);
  KT_EQ(n, 24);
  for (int i = 0; i < n; i++)
    if (!same_file(fmt("%s/%s", out, names[i]), fmt("%s/%s", ref, names[i])))
      KT_FAIL("%s differs after resume", names[i]);
}

/* A full disk (a 48 KiB tmpfs in a private mount namespace): the frames that do not fit fail with
 * the reason, exit 1, and every file left is complete. */
TEST(full_disk_reported_no_corrupt_file) {
  if (system("unshare -rm true >/dev/null 2>&1") != 0)
    KT_SKIP("unshare -rm (user + mount namespaces) is not available for a private tmpfs");
  char *d = tmpdir(), *disk = fmt("%s/disk", d), *copy = fmt("%s/copy", d);
  char *job = anim_job(d, 16, "\"passes\": [\"depth\", \"normal\"]");
  KT_EQ(mkdir(disk, 0777), 0);
  KT_EQ(mkdir(copy, 0777), 0);
  /* the tmpfs exists only inside the namespace: render there, then copy everything out */
  char *cmd = fmt("unshare -rm sh -c 'mount -t tmpfs -o size=48k none %s && %s render %s -o %s "
                  "--json %s/s.json > %s/out.txt 2> %s/err.txt; echo $? > %s/rc; cp -a %s/. %s/'",
                  disk, KILN_CLI_PATH, job, disk, d, d, d, d, disk, copy);
  KT_EQ(system(cmd), 0);
  size_t len;
  char *rc = (char *)read_all(fmt("%s/rc", d), &len);
  char *err = (char *)read_all(fmt("%s/err.txt", d), &len);
  if (atoi(rc) != 1) KT_FAIL("exit %s, expected 1; stderr:\n%s", rc, err);
  KT_STR_CONTAINS(err, "No space left on device");
  int n = all_complete(copy);
  KT_TRUE(n < 48); /* not everything fitted */
  char *js = (char *)read_all(fmt("%s/s.json", d), &len);
  KT_STR_CONTAINS(js, "No space left on device");
}

/* Frame numbers may be negative; --frames selects by number, both ends included, with a step;
 * a selection that matches nothing is an error before anything is written. */
TEST(frame_selection) {
  char *d = tmpdir(), *out = fmt("%s/out", d), *job = fmt("%s/neg.json", d);
  write_text(job, fmt("{\"scene\": \"%s\", \"width\": 16, \"height\": 16, \"spp\": 1,\n"
                      " \"output\": \"f{frame}.{ext}\",\n"
                      " \"animation\": {\"frames\": {\"start\": -3, \"end\": 2}}}\n",
                      SCENE));
  result r = run(d, ARGS("render", job, "-o", out, "--quiet"));
  expect_status(&r, 0);
  char names[16][256];
  KT_EQ(list_files(out, names, 16), 6);
  KT_EQ(access(fmt("%s/f-3.png", out), F_OK), 0);
  char *o2 = fmt("%s/sel", d);
  r = run(d, ARGS("render", job, "-o", o2, "--frames", "-3:2:2", "--quiet"));
  expect_status(&r, 0);
  KT_EQ(list_files(o2, names, 16), 3); /* -3, -1, 1 */
  KT_STR_EQ(names[0], "f-1.png");
  KT_STR_EQ(names[1], "f-3.png");
  KT_STR_EQ(names[2], "f1.png");
  char *o3 = fmt("%s/none", d);
  r = run(d, ARGS("render", job, "-o", o3, "--frames", "500:600"));
  expect_status(&r, 2);
  KT_STR_CONTAINS(r.err, "matches none");
  KT_EQ(list_files(o3, names, 16), 0);
}

/* Two frames must never write one file: two list images with one name fail the second (the same
 * whatever --in-flight), and a template that merges passes is refused, escaped braces included. */
TEST(duplicate_outputs_refused) {
  char *d = tmpdir(), *list = fmt("%s/dup.jsonl", d);
  write_text(list, "{\"name\": \"a\"}\n{\"name\": \"b\"}\n{\"name\": \"a\", \"seed\": 9}\n");
  for (int k = 0; k < 2; k++) {
    char *out = fmt("%s/out%d", d, k);
    result r = run(d, ARGS("render", list, "--scene", SCENE, "-o", out, "--size", "16x16", "--spp",
                           "1", "--template", "{name}.{ext}", "--in-flight", k ? "1" : "4"));
    expect_status(&r, 1);
    KT_STR_CONTAINS(r.err, "a.png is also the output of an earlier frame");
    KT_STR_CONTAINS(r.out, "2 of 3 frames written");
  }
  char *job = anim_job(d, 2, NULL);
  result r = run(d, ARGS("render", job, "-o", fmt("%s/t", d), "--passes", "depth", "--template",
                         "x_{{pass}}_{frame}.{ext}"));
  expect_status(&r, 2);
  KT_STR_CONTAINS(r.err, "one file");
  r = run(
      d, ARGS("render", job, "-o", fmt("%s/t", d), "--format", "exr", "--template", "{frame}.png"));
  expect_status(&r, 2);
  KT_STR_CONTAINS(r.err, "written as .exr");
}

/* --resume removes only kiln's own stale temporaries, and its contact sheet shows every frame,
 * skipped ones included. */
TEST(resume_sweep_and_contact_sheet) {
  char *d = tmpdir(), *out = fmt("%s/out", d);
  char *job = anim_job(d, 4, NULL);
  result r = run(d, ARGS("render", job, "-o", out, "--contact-sheet", "sheet.png", "--quiet"));
  expect_status(&r, 0);
  size_t len = 0;
  unsigned char *sheet1 = read_all(fmt("%s/sheet.png", out), &len);
  size_t len1 = len;
  char host[256] = "";
  gethostname(host, sizeof host - 1);
  for (char *p = host; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
      *p = '_';
  host[32] = 0;
  /* a stale temporary of a dead kiln on this host (pid 2^22 + 1 is above Linux's pid_max default of
   * 2^22), one of another host, and a user's own dot-files that merely look alike */
  char *stale = fmt("%s/.00001_color.png.tmp-%s-4194305-0", out, host);
  char *other = fmt("%s/.00001_color.png.tmp-otherhost-4194305-0", out);
  char *notes = fmt("%s/.notes.tmp-backup", out);
  write_text(stale, "x"), write_text(other, "x"), write_text(notes, "x");
  unlink(fmt("%s/00002_color.png", out));
  r = run(d, ARGS("render", job, "-o", out, "--resume", "--contact-sheet", "sheet.png"));
  expect_status(&r, 0);
  KT_STR_CONTAINS(r.out, "1 of 4 frames written, 3 skipped");
  KT_TRUE(access(stale, F_OK) != 0);
  KT_EQ(access(other, F_OK), 0);
  KT_EQ(access(notes, F_OK), 0);
  int w1, h1, w2, h2, bd, ct;
  png_header(fmt("%s/sheet.png", out), &w2, &h2, &bd, &ct);
  char *s1 = fmt("%s/sheet1.png", d);
  FILE *f = fopen(s1, "wb");
  fwrite(sheet1, 1, len1, f);
  fclose(f);
  png_header(s1, &w1, &h1, &bd, &ct);
  KT_EQ(w2, w1); /* all four cells, not only the frame rendered again */
  KT_EQ(h2, h1);
  KT_TRUE(same_file(s1, fmt("%s/sheet.png", out))); /* and the same pixels: the same frames */
}

/* ---- many processes, one job ------------------------------------------------------------------ */

/* anim_job's animation at 16x16, 1 spp: cheap frames for tests of many processes. */
static char *small_job(const char *dir, int frames) {
  char *path = anim_job(dir, frames, NULL);
  size_t len;
  char *t = (char *)read_all(path, &len);
  char *w = strstr(t, "\"width\": 32, \"height\": 32, \"spp\": 2");
  KT_TRUE(w != NULL);
  write_text(path, fmt("%.*s\"width\": 16, \"height\": 16, \"spp\": 1%s", (int)(w - t), t,
                       w + strlen("\"width\": 32, \"height\": 32, \"spp\": 2")));
  return path;
}

/* The non-hidden files of a and b: the same names, the same bytes; returns how many. */
static int same_set(const char *a, const char *b) {
  char (*na)[256] = keep(calloc(256, 256)), (*nb)[256] = keep(calloc(256, 256));
  int n = list_files(a, na, 256), m = list_files(b, nb, 256);
  for (int i = 0; i < n; i++) /* manifests are not images */
    if (strstr(na[i], ".jsonl")) memmove(na[i], na[i + 1], (size_t)(n - i - 1) * 256), n--, i--;
  KT_EQ(n, m);
  for (int i = 0; i < n; i++) {
    KT_STR_EQ(na[i], nb[i]);
    if (!same_file(fmt("%s/%s", a, na[i]), fmt("%s/%s", b, nb[i])))
      KT_FAIL("%s/%s differs from %s/%s", a, na[i], b, nb[i]);
  }
  return n;
}

/* The indices of every line of the manifests m_0.jsonl .. m_{n-1}.jsonl in dir, counted. */
static void manifest_indices(const char *dir, int n, int *count, int cap) {
  memset(count, 0, sizeof *count * (size_t)cap);
  for (int k = 0; k < n; k++) {
    size_t len;
    char *t = (char *)read_all(fmt("%s/m_%d.jsonl", dir, k), &len);
    if (!t) KT_FAIL("%s/m_%d.jsonl is missing", dir, k);
    for (char *l = strstr(t, "{\"index\":"); l; l = strstr(l + 1, "{\"index\":")) {
      int i = atoi(l + 9);
      KT_TRUE(i >= 0 && i < cap);
      count[i]++;
    }
  }
}

/* Shards of a --frames selection, both modes: together every selected frame once, each file the
 * bytes a single run writes (images do not depend on the sharding). */
TEST(shards_cover_the_selection_once_with_the_same_images) {
  char *d = tmpdir(), *ref = fmt("%s/ref", d);
  char *job = small_job(d, 14);
  result r = run(d, ARGS("render", job, "-o", ref, "--frames", "1:13:2", "--quiet"));
  expect_status(&r, 0);
  const char *modes[] = {"round-robin", "contiguous"};
  for (int mi = 0; mi < 2; mi++) {
    char *out = fmt("%s/out-%s", d, modes[mi]);
    for (int k = 0; k < 3; k++) {
      r = run(d, ARGS("render", job, "-o", out, "--frames", "1:13:2", "--shard", fmt("%d/3", k),
                      "--shard-mode", modes[mi], "--manifest", "m_{shard}.jsonl"));
      expect_status(&r, 0);
      KT_STR_CONTAINS(r.err, fmt("shard %d/3", k));
      /* 7 frames in 3: round-robin 3, 2, 2; contiguous [0, 2), [2, 4), [4, 7) */
      bool three = mi ? k == 2 : k == 0;
      KT_STR_CONTAINS(r.out, three ? "3 of 3 frames" : "2 of 2 frames");
    }
    KT_EQ(same_set(out, ref), 7);
    int count[14];
    manifest_indices(out, 3, count, 14);
    for (int i = 0; i < 14; i++) KT_EQ(count[i], i % 2 == 1 ? 1 : 0);
  }
  r = run(d, ARGS("render", job, "-o", ref, "--shard", "3/3"));
  expect_status(&r, 2);
  KT_STR_CONTAINS(r.err, "--shard 3/3");
}

/* --shard auto reads the launcher's variables, says where they came from, and never guesses. */
TEST(shard_auto_from_the_launchers_environment) {
  char *d = tmpdir(), *out = fmt("%s/out", d);
  char *job = small_job(d, 8);
  struct {
    const char *env[6];
    int status;
    const char *says;
  } cases[] = {
      {{"SLURM_ARRAY_TASK_ID=5", "SLURM_ARRAY_TASK_MIN=1", "SLURM_ARRAY_TASK_STEP=2",
        "SLURM_ARRAY_TASK_COUNT=4"},
       0,
       "shard 2/4 (from the Slurm array"},
      {{"OMPI_COMM_WORLD_RANK=2", "OMPI_COMM_WORLD_SIZE=3"}, 0, "shard 2/3 (from Open MPI"},
      {{"PMI_RANK=1", "PMI_SIZE=2"}, 0, "shard 1/2 (from a PMI launcher"},
      {{"SLURM_PROCID=1", "SLURM_NTASKS=2", "SLURM_STEP_ID=0"}, 0, "shard 1/2 (from Slurm's tasks"},
      {{"JOB_COMPLETION_INDEX=3", "KILN_SHARDS=4"}, 0, "shard 3/4 (from a Kubernetes"},
      {{"SLURM_ARRAY_TASK_ID=1", "SLURM_ARRAY_TASK_MIN=0", "SLURM_ARRAY_TASK_COUNT=2",
        "OMPI_COMM_WORLD_RANK=1", "OMPI_COMM_WORLD_SIZE=3"},
       0,
       "shard 4/6 (from the Slurm array"},
      {{"JOB_COMPLETION_INDEX=3"}, 2, "number of shards is not"},
      {{"SLURM_PROCID=0", "SLURM_NTASKS=4"}, 2, "not one of srun's tasks"},
      {{"SLURM_ARRAY_TASK_ID=4", "SLURM_ARRAY_TASK_MIN=1", "SLURM_ARRAY_TASK_MAX=9",
        "SLURM_ARRAY_TASK_COUNT=3"},
       2,
       "not evenly stepped"},
      {{NULL}, 2, "no launcher's environment"},
  };
  const char *vars[] = {"SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX",
                        "SLURM_ARRAY_TASK_STEP", "SLURM_ARRAY_TASK_COUNT", "SLURM_PROCID",
                        "SLURM_NTASKS", "SLURM_STEP_ID", "SLURM_STEPID", "OMPI_COMM_WORLD_RANK",
                        "OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMI_SIZE", "JOB_COMPLETION_INDEX",
                        "KILN_SHARDS"};
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    for (size_t v = 0; v < sizeof vars / sizeof *vars; v++) unsetenv(vars[v]);
    for (int e = 0; cases[c].env[e]; e++) putenv((char *)cases[c].env[e]);
    result r = run(d, ARGS("render", job, "-o", out, "--shard", "auto", "--overwrite"));
    if (r.status != cases[c].status || !strstr(r.err, cases[c].says))
      KT_FAIL("case %zu: exit %d (expected %d), stderr:\n%s(expected \"%s\")", c, r.status,
              cases[c].status, r.err, cases[c].says);
  }
}

/* Three processes claim chunks of one job in one folder; one is killed mid-chunk. Its claim is
 * taken over (at once: it died on this host) and the others finish: every frame once, each file
 * what a single run writes, nothing half-written. */
TEST(claiming_processes_survive_one_killed) {
  char *d = tmpdir(), *out = fmt("%s/out", d), *ref = fmt("%s/ref", d);
  char *job = small_job(d, 24);
  KT_EQ(mkdir(out, 0777), 0);
  char *logs[3];
  pid_t pid[3];
  int ifd = watch_renames(out);
  for (int i = 0; i < 3; i++) {
    logs[i] = fmt("%s/log%d", d, i);
    KT_EQ(mkdir(logs[i], 0777), 0);
    pid[i] = start(logs[i], ARGS("render", job, "-o", out, "--claim", "--chunk", "3",
                                 "--claim-timeout", "2", "--threads", "1", "--in-flight", "1",
                                 "--json", fmt("%s/sum.json", logs[i])));
  }
  wait_for_renames(ifd, NULL, 2, pid[1]);
  KT_EQ(kill(pid[1], SIGKILL), 0);
  close(ifd);
  result killed = finish(logs[1], pid[1]);
  KT_EQ(killed.status, 128 + SIGKILL);
  long rendered_elsewhere = 0;
  for (int i = 0; i < 3; i += 2) {
    result r = finish(logs[i], pid[i]);
    expect_status(&r, 0);
    KT_STR_CONTAINS(r.out, "24 frames");
    size_t len;
    char *js = (char *)read_all(fmt("%s/sum.json", logs[i]), &len);
    KT_TRUE(js && strstr(js, "\"selected\": 24"));
    char *e = strstr(js, "\"elsewhere\": ");
    KT_TRUE(e != NULL);
    rendered_elsewhere += atol(e + 13);
  }
  KT_TRUE(rendered_elsewhere > 0); /* the two shared the work (the killed one's too) */
  KT_EQ(all_complete(out), 24);
  result r = run(d, ARGS("render", job, "-o", ref, "--quiet"));
  expect_status(&r, 0);
  KT_EQ(same_set(out, ref), 24);
  /* everything is done: another claiming run finds nothing to render */
  r = run(d, ARGS("render", job, "-o", out, "--claim", "--chunk", "3"));
  expect_status(&r, 0);
  KT_STR_CONTAINS(r.out, "0 of 24 frames written, 24 rendered by other processes");
}

/* SIGTERM (a scheduler's notice before the time limit): the frames in flight are written, exit
 * 143, and --resume completes the set. */
TEST(sigterm_exits_143_and_resume_completes) {
  char *d = tmpdir(), *out = fmt("%s/out", d);
  char *job = small_job(d, 60);
  KT_EQ(mkdir(out, 0777), 0);
  int ifd = watch_renames(out);
  pid_t pid = start(d, ARGS("render", job, "-o", out, "--in-flight", "2", "--threads", "1"));
  wait_for_renames(ifd, NULL, 2, pid);
  KT_EQ(kill(pid, SIGTERM), 0);
  result r = finish(d, pid);
  expect_status(&r, 143);
  close(ifd);
  int n = all_complete(out);
  KT_TRUE(n >= 2 && n < 60);
  r = run(d, ARGS("render", job, "-o", out, "--resume", "--quiet"));
  expect_status(&r, 0);
  KT_EQ(all_complete(out), 60);
}

/* --device gpu where only a CPU driver is present: exit 3 at once (a node problem, not the job's),
 * nothing written, and --json says so. (Skipped on a machine with a real GPU.) */
TEST(device_gpu_without_a_gpu_exits_3) {
  char *d = tmpdir(), *out = fmt("%s/out", d);
  char *job = small_job(d, 2);
  result r = run(d, ARGS("devices"));
  expect_status(&r, 0);
  for (char *l = r.out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
    if (l[0] >= '0' && l[0] <= '9' && strncmp(strchr(l, '\n') ? strchr(l, '\n') - 5 : l, "(cpu)", 5))
      KT_SKIP("this machine has a Vulkan device that is not a CPU driver");
  putenv((char *)"CUDA_VISIBLE_DEVICES=0");
  r = run(d, ARGS("render", job, "-o", out, "--device", "gpu", "--json", fmt("%s/s.json", d)));
  unsetenv("CUDA_VISIBLE_DEVICES");
  expect_status(&r, 3);
  KT_EQ(count_named(d, "out"), 0);
  size_t len;
  char *js = (char *)read_all(fmt("%s/s.json", d), &len);
  KT_TRUE(js && strstr(js, "\"exit_code\": 3"));
}

/* A list may number its images in any order: every image is rendered, and a step counts from the
 * first frame in range both ways. */
TEST(list_numbered_backwards_renders_every_image) {
  char *d = tmpdir(), *out = fmt("%s/out", d), *stepped = fmt("%s/stepped", d);
  char *list = fmt("%s/l.jsonl", d);
  write_text(list, "{\"frame\": 5}\n{\"frame\": 3}\n{\"frame\": 2}\n");
  result r = run(d, ARGS("render", list, "--scene", SCENE, "-o", out, "--size", "8x8", "--spp", "1"));
  expect_status(&r, 0);
  KT_STR_CONTAINS(r.out, "3 of 3 frames written");
  char names[8][256];
  KT_EQ(list_files(out, names, 8), 3);
  r = run(d, ARGS("render", list, "--scene", SCENE, "-o", stepped, "--size", "8x8", "--spp", "1",
                  "--frames", ":9:2"));
  expect_status(&r, 0);
  KT_EQ(list_files(stepped, names, 8), 2);
  KT_STR_EQ(names[0], "00003_color.png");
  KT_STR_EQ(names[1], "00005_color.png");
}

/* ---- isolated rendering: worker processes that crash, hang, exit or lose their device --------- */

/* Runs job into out with --isolate and faults (KILN_FAULT) and the extra arguments. */
static result run_isolated(const char *d, const char *faults, const char *const *args) {
  if (faults) setenv("KILN_FAULT", faults, 1);
  result r = run(d, args);
  unsetenv("KILN_FAULT");
  return r;
}

/* The number after `key` in the text (an unsigned count in the summary or the JSON). */
static long count_after(const char *text, const char *key) {
  const char *p = strstr(text, key);
  if (!p) KT_FAIL("no \"%s\" in:\n%s", key, text);
  return strtol(p + strlen(key), NULL, 10);
}

/* The promise of --isolate: 200 frames, a worker crash on frame 50 and a hang on frame 120; every
 * image is written, byte for byte what the in-process batch writes, exit 0, and the summary and
 * the JSON name both incidents. */
TEST(isolate_survives_a_crash_and_a_hang) {
  char *d = tmpdir(), *job = small_job(d, 200), *ref = fmt("%s/ref", d), *out = fmt("%s/out", d);
  char *json = fmt("%s/s.json", d);
  result r = run(d, ARGS("render", job, "-o", ref, "--quiet"));
  expect_status(&r, 0);
  r = run_isolated(d, "segv@50,hang@120",
                   ARGS("render", job, "-o", out, "--isolate", "--frame-timeout", "8", "--json",
                        json));
  expect_status(&r, 0);
  KT_EQ(same_set(ref, out), 200);
  KT_STR_CONTAINS(r.out, "200 of 200 frames written");
  KT_STR_CONTAINS(r.out, "killed by SIGSEGV");
  KT_STR_CONTAINS(r.out, "incident: frame 50: render worker");
  KT_STR_CONTAINS(r.out, "incident: frame 120: render worker");
  KT_STR_CONTAINS(r.out, "hung (no answer in 8 s); killed");
  KT_STR_CONTAINS(r.out, "1 crashed, 1 hung, 0 lost their device");
  KT_STR_CONTAINS(r.out, "2 frames retried");
  size_t len;
  char *js = (char *)read_all(json, &len);
  KT_TRUE(js != NULL);
  KT_EQ(count_after(js, "\"crashes\": "), 1);
  KT_EQ(count_after(js, "\"hangs\": "), 1);
  KT_EQ(count_after(js, "\"frames_retried\": "), 2);
  KT_STR_CONTAINS(js, "frame 50: render worker");
  /* the lanes' workers plus a replacement for each incident */
  KT_TRUE(count_after(js, "\"worker_starts\": ") >= 3);
  KT_EQ(count_named(out, ".tmp-"), 0);
}

/* A worker that exits, one that reports its device lost, and recycling: frames retried on fresh
 * workers, workers replaced every 3 frames, the images those of the in-process batch; a list
 * job's per-image overrides (colours, lights, cameras) render in the workers too. */
TEST(isolate_exit_lost_recycle_and_overrides) {
  char *d = tmpdir(), *job = small_job(d, 12), *ref = fmt("%s/ref", d), *out = fmt("%s/out", d);
  result r = run(d, ARGS("render", job, "-o", ref, "--quiet"));
  expect_status(&r, 0);
  r = run_isolated(d, "exit@3,lost@7",
                   ARGS("render", job, "-o", out, "--isolate", "--recycle", "3"));
  expect_status(&r, 0);
  KT_EQ(same_set(ref, out), 12);
  KT_STR_CONTAINS(r.out, "exited with status 3");
  KT_STR_CONTAINS(r.out, "lost its device");
  KT_STR_CONTAINS(r.out, "1 crashed, 0 hung, 1 lost their device");
  /* 12 frames, each worker replaced after 3 of its own: at least 2 recycles, whatever the split */
  KT_TRUE(count_after(r.out, "lost their device, ") >= 2);

  char *list = KILN_SOURCE_DIR "/examples/cornell/dataset.json";
  char *lref = fmt("%s/lref", d), *lout = fmt("%s/lout", d);
  r = run(d, ARGS("render", list, "-o", lref, "--size", "16x16", "--spp", "1", "--quiet"));
  expect_status(&r, 0);
  r = run(d, ARGS("render", list, "-o", lout, "--size", "16x16", "--spp", "1", "--isolate",
                  "--quiet"));
  expect_status(&r, 0);
  KT_EQ(same_set(lref, lout), 40); /* 8 images, 5 passes */
}

/* A list's cameras given as matrices and intrinsics reach the workers whole: --isolate writes
 * the images the in-process batch writes, and the principal point moves the image. */
TEST(isolate_matrix_and_intrinsics_cameras) {
  char *d = tmpdir(), *scene = fmt("%s/scene.json", d), *list = fmt("%s/list.jsonl", d);
  write_text(scene,
             "{\"settings\": {\"width\": 20, \"height\": 16, \"spp\": 1, \"max_bounces\": 1},\n"
             " \"camera\": {\"position\": [0, 0, -4], \"look_at\": [0, 0, 0]},\n"
             " \"objects\": [{\"type\": \"sphere\", \"center\": [0.3, 0.2, 0], \"radius\": 0.6,\n"
             "   \"material\": {\"type\": \"diffuse\", \"albedo\": [0.8, 0.3, 0.1]}}],\n"
             " \"environment\": {\"type\": \"constant\", \"color\": [0.5, 0.6, 0.9]}}\n");
#define CAM_M "\"convention\": \"opencv\", \"matrix\": [1, 0, 0, 0, 0, -1, 0, 0, 0, 0, -1, 4, 0, 0, 0, 1]"
  write_text(list, "{\"name\": \"a\", \"camera\": {" CAM_M ", \"fx\": 30, \"fy\": 26, \"cx\": 6, "
                   "\"cy\": 9}}\n"
                   "{\"name\": \"b\", \"camera\": {" CAM_M ", \"fx\": 30, \"fy\": 26, \"cx\": 13, "
                   "\"cy\": 9}}\n"
                   "{\"name\": \"c\", \"camera\": {\"K\": [24, 0, 9.5, 0, 24, 7.5, 0, 0, 1]}}\n");
#undef CAM_M
  char *ref = fmt("%s/ref", d), *out = fmt("%s/out", d);
  result r = run(d, ARGS("render", list, "--scene", scene, "-o", ref, "--quiet"));
  expect_status(&r, 0);
  r = run(d, ARGS("render", list, "--scene", scene, "-o", out, "--isolate", "--quiet"));
  expect_status(&r, 0);
  char names[8][256];
  KT_EQ(list_files(out, names, 8), 3);
  KT_EQ(same_set(ref, out), 3);
  KT_FALSE(same_file(fmt("%s/%s", out, names[0]), fmt("%s/%s", out, names[1])));
}

/* A frame whose worker dies on the retry too fails, naming what happened, and the batch goes on:
 * exit 1, every other frame written. */
TEST(isolate_frame_failing_twice_is_reported_and_the_batch_goes_on) {
  char *d = tmpdir(), *job = small_job(d, 10), *out = fmt("%s/out", d);
  char *json = fmt("%s/s.json", d);
  result r = run_isolated(d, "segv!@4", ARGS("render", job, "-o", out, "--isolate", "--json", json));
  expect_status(&r, 1);
  KT_STR_CONTAINS(r.out, "9 of 10 frames written");
  KT_STR_CONTAINS(r.out, "1 failed");
  KT_STR_CONTAINS(r.out, "killed by SIGSEGV (and again on a fresh worker)");
  char names[16][256];
  KT_EQ(list_files(out, names, 16), 9);
  for (int i = 0; i < 9; i++) KT_TRUE(strstr(names[i], "00004") == NULL);
  size_t len;
  char *js = (char *)read_all(json, &len);
  KT_STR_CONTAINS(js, "\"frame\": 4");
  KT_EQ(count_after(js, "\"crashes\": "), 2);
  KT_EQ(count_after(js, "\"frames_retried\": "), 1);
}

/* Bad fault lists and options that need --isolate are usage errors: exit 2, nothing written. */
TEST(isolate_bad_options) {
  char *d = tmpdir(), *job = small_job(d, 2), *out = fmt("%s/out", d);
  result r = run_isolated(d, "segv@x", ARGS("render", job, "-o", out, "--isolate"));
  expect_status(&r, 2);
  KT_STR_CONTAINS(r.err, "bad fault \"segv@x\"");
  r = run(d, ARGS("render", job, "-o", out, "--frame-timeout", "3"));
  expect_status(&r, 2);
  KT_STR_CONTAINS(r.err, "--frame-timeout and --recycle go with --isolate");
  r = run(d, ARGS("render", job, "-o", out, "--isolate", "--recycle", "0"));
  expect_status(&r, 2);
  KT_EQ(count_named(d, "out"), 0);
}

/* The pids of every descendant of pid (from /proc), into pids; returns how many. */
static int descendants(pid_t pid, pid_t *pids, int cap) {
  int n = 0;
  pids[n++] = pid;
  for (int i = 0; i < n; i++) { /* breadth first over /proc */
    DIR *dir = opendir("/proc");
    struct dirent *e;
    while (dir && (e = readdir(dir))) {
      char *end;
      long p = strtol(e->d_name, &end, 10);
      if (*end || p <= 0) continue;
      char path[64], buf[512];
      snprintf(path, sizeof path, "/proc/%ld/stat", p);
      FILE *f = fopen(path, "r");
      if (!f) continue;
      size_t got = fread(buf, 1, sizeof buf - 1, f);
      fclose(f);
      buf[got] = 0;
      char *rp = strrchr(buf, ')');
      int ppid = 0;
      char state;
      if (rp && sscanf(rp + 1, " %c %d", &state, &ppid) == 2 && ppid == pids[i] && n < cap)
        pids[n++] = (pid_t)p;
    }
    if (dir) closedir(dir);
  }
  return n - 1;
}

/* A parent killed with SIGKILL while its workers render leaves no process behind: the fork server
 * and the workers die with it (waited for through pidfds, not by sleeping). */
TEST(isolate_parent_killed_leaves_no_workers) {
  char *d = tmpdir(), *job = small_job(d, 2000), *out = fmt("%s/out", d);
  KT_EQ(mkdir(out, 0755), 0);
  int ifd = watch_renames(out);
  pid_t pid = start(d, ARGS("render", job, "-o", out, "--isolate", "--quiet"));
  wait_for_renames(ifd, NULL, 3, pid);
  pid_t pids[64];
  int n = descendants(pid, pids, 64);
  KT_TRUE(n >= 2); /* the fork server and at least one worker */
  int fds[64];
  for (int i = 0; i < n; i++) fds[i] = (int)syscall(SYS_pidfd_open, pids[i + 1], 0);
  kill(pid, SIGKILL);
  result r = finish(d, pid);
  KT_EQ(r.status, 128 + SIGKILL);
  for (int i = 0; i < n; i++) {
    if (fds[i] < 0) continue; /* already gone when we looked */
    struct pollfd pfd = {.fd = fds[i], .events = POLLIN};
    int ready;
    while ((ready = poll(&pfd, 1, 60000)) < 0 && errno == EINTR) {}
    if (ready != 1) KT_FAIL("process %d outlived its parent by a minute", (int)pids[i + 1]);
    close(fds[i]);
  }
  close(ifd);
}

/* The scene's warnings (an MTL key kiln does not render) are printed once on stderr, naming the
 * scene and the MTL line, even with --quiet and however many frames load the scene. */
TEST(render_prints_scene_warnings_once) {
  char *d = tmpdir(), *out = fmt("%s/out", d), *scene = fmt("%s/s.json", d);
  write_text(fmt("%s/m.mtl", d), "newmtl a\nKd 0.5 0.5 0.5\nPs 0.1\n");
  write_text(fmt("%s/m.obj", d), "mtllib m.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nusemtl a\nf 1 2 3\n");
  write_text(scene, "{\"camera\": {\"position\": [0.2, 0.2, -2], \"look_at\": [0.2, 0.2, 0]},\n"
                    " \"objects\": [{\"type\": \"mesh\", \"file\": \"m.obj\"},\n"
                    "             {\"type\": \"mesh\", \"file\": \"m.obj\"}]}\n");
  char *list = fmt("%s/list.jsonl", d);
  write_text(list, "{\"name\": \"a\"}\n{\"name\": \"b\", \"seed\": 3}\n");
  result r = run(d, ARGS("render", list, "--scene", scene, "-o", out, "--size", "8x8", "--spp", "1",
                         "--template", "{name}.{ext}", "--quiet"));
  expect_status(&r, 0);
  char *want = fmt("%s: warning: %s/m.mtl:3: Ps is not rendered by kiln: ignored\n", scene, d);
  const char *at = strstr(r.err, want);
  if (!at) KT_FAIL("stderr lacks '%s':\n%s", want, r.err);
  KT_TRUE(strstr(at + 1, want) == NULL);
}
