/* test_malformed.c: a bounded corpus of malformed jobs (tests/cli/malformed/) and of command lines
 * that would write outside the output folder, each run through the built `kiln render`: every one
 * must exit 2 with a located message (the job's file:line:column, the file at fault, or the
 * option's name) and write no file anywhere, in -o or outside it. */
// kt: timeout 300
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_test_util.h"
#include "kt.h"

#define CORPUS KILN_SOURCE_DIR "/tests/cli/malformed/"
#define SCENE KILN_SOURCE_DIR "/examples/cornell/scene.json"
#define ARGS_(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Runs kiln with args (NULL-terminated) in dir; its exit status, stderr into *err. */
static int run_kiln(const char *dir, const char *const *args, char **err) {
  const char *argv[32] = {KILN_CLI_PATH};
  int n = 1;
  for (; args[n - 1] && n < 31; n++) argv[n] = args[n - 1];
  argv[n] = NULL;
  char *ep = fmt("%s/.stderr", dir);
  pid_t pid = fork();
  if (pid < 0) KT_FAIL("fork: %s", strerror(errno));
  if (pid == 0) {
    int fe = open(ep, O_WRONLY | O_CREAT | O_TRUNC, 0644), fo = open("/dev/null", O_WRONLY);
    dup2(fo, 1), dup2(fe, 2);
    if (chdir(dir) != 0) _exit(126);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) KT_FAIL("waitpid: %s", strerror(errno));
  size_t len;
  *err = (char *)read_all(ep, &len);
  if (!*err) *err = keep(strdup(""));
  unlink(ep);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int g_files;
static char g_first[1024];

static int count_file(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
  (void)sb, (void)ftw;
  const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
  if (type == FTW_F && strcmp(base, "job.json") != 0) {
    if (!g_files++) snprintf(g_first, sizeof g_first, "%s", path);
  }
  return 0;
}

/* Regular files under dir, the job written there aside. */
static int files_under(const char *dir) {
  g_files = 0;
  nftw(dir, count_file, 16, FTW_PHYS);
  return g_files;
}

/* "line:column" of the first occurrence of marker in the file at path. */
static char *position_of(const char *path, const char *marker) {
  size_t len;
  char *text = (char *)read_all(path, &len), *at = text ? strstr(text, marker) : NULL;
  if (!at) KT_FAIL("marker %s is not in %s", marker, path);
  int line = 1, col = 1;
  for (const char *p = text; p < at; p++) *p == '\n' ? (line++, col = 1) : col++;
  return fmt("%d:%d", line, col);
}

/* One malformed job of the corpus: where the error must point (marker: the first occurrence of it
 * in the job; else the file named by at) and a fragment of the reason. */
typedef struct mcase {
  const char *job;
  const char *marker, *at;
  const char *fragment;
} mcase;

static const mcase corpus[] = {
    {"output_dotdot.json", "\"../{frame}", NULL,
     "'..' component would write outside the output folder"},
    {"output_absolute.json", "\"/tmp", NULL, "absolute path would write outside the output folder"},
    {"output_nested_dotdot.json", "\"a/", NULL, "outside the output folder"},
    {"output_width_overflow.json", "\"{frame", NULL, "bad format"},
    {"output_unknown_field.json", "\"{frme}", NULL, "unknown field {frme}"},
    {"output_long_template.json", "\"d/", NULL, "unknown field {frme}"},
    /* template errors found after the job is read, once the passes and format are known */
    {"output_wrong_extension.json", "\"{frame}.jpg", NULL, "written as .png"},
    {"output_one_file_for_all.json", "\"same.png", NULL, "every frame would write the same file"},
    {"nul_in_description.json", "\\u0000", NULL, "\\u0000 in a string"},
    {"nul_in_image_name.json", "\\u0000", NULL, "\\u0000 in a string"},
    {"nul_in_line.jsonl", "\\u0000", NULL, "\\u0000 in a string"},
    {"image_name_dotdot.json", "\"..\"", NULL, "must not be '..'"},
    {"image_name_slash.json", "\"../../escape\"", NULL, "not a safe file name"},
    {"syntax_error.json", "}\n", NULL, "JSON syntax error"},
    {"unknown_key.json", "\"pases\"", NULL, "did you mean 'passes'"},
    {"frames_step_zero.json", "0}}}", NULL, "step must be in [1"},
    {"frames_huge.json", "1e300", NULL, "frame count"},
    {"frame_huge.json", "1e300", NULL, "frame must be in"},
    {"list_frame_huge.jsonl", "99999999999999999999", NULL, "frame must be in"},
    {"width_huge.json", "1e300", NULL, "width must be in [1, 16384]"},
    {"seed_negative.json", "-1", NULL, "seed must be an integer"},
    {"list_missing.json", "\"no-such-list.jsonl\"", NULL, "cannot open"},
    {"scene_missing.json", NULL, "no-such-scene.json: ", "cannot open"},
    {"scene_is_a_folder.json", NULL, "malformed/.: ", "is a directory"},
};

/* Exit 2, the message located, nothing written: in -o (a folder below the run's) or above it. */
static void expect_refused(const char *d, const char *what, int status, const char *err,
                           const char *where, const char *fragment) {
  if (status != 2) KT_FAIL("%s: kiln exited %d, expected 2\n%s", what, status, err);
  if (!strstr(err, where)) KT_FAIL("%s: the message does not say '%s':\n%s", what, where, err);
  if (!strstr(err, fragment)) KT_FAIL("%s: the message lacks '%s':\n%s", what, fragment, err);
  if (files_under(d)) KT_FAIL("%s: %s was written", what, g_first);
  if (access("/tmp/kiln-malformed-escape-0.png", F_OK) == 0)
    KT_FAIL("%s: /tmp/kiln-malformed-escape-0.png was written", what);
}

TEST(malformed_jobs_are_refused) {
  for (size_t i = 0; i < sizeof corpus / sizeof *corpus; i++) {
    const mcase *c = &corpus[i];
    char *d = tmpdir(), *out = fmt("%s/a/out", d), *job = fmt(CORPUS "%s", c->job), *err;
    bool list = strstr(c->job, ".jsonl") != NULL;
    int st = list ? run_kiln(d, ARGS_("render", job, "--scene", SCENE, "-o", out), &err)
                  : run_kiln(d, ARGS_("render", job, "-o", out), &err);
    const char *where =
        c->marker ? fmt("%s:%s: ", job, position_of(job, c->marker)) : c->at;
    expect_refused(d, c->job, st, err, where, c->fragment);
  }
}

/* Command-line options that would write outside -o are refused, naming the option, unless
 * --allow-outside-output says the user means it; numbers in options are bounded. */
TEST(options_that_escape_the_output_folder_are_refused) {
  static const struct {
    const char *opt, *value, *fragment;
  } t[] = {
      {"--template", "../{frame}.png", "'..' leads outside the output folder"},
      {"--template", "x/../../{frame}.png", "'..' leads outside the output folder"},
      {"--template", "/tmp/kiln-malformed-escape-{frame}.png", "absolute path"},
      {"--contact-sheet", "../../sheet.png", "'..' leads outside the output folder"},
      {"--contact-sheet", "/tmp/kiln-malformed-escape-0.png", "absolute path"},
      {"--template", "{frame:04294967301d}.png", "bad format"},
      {"--template", "same.png", "every frame would write the same file"},
      {"--size", "4294967297x4294967297", "expected WxH"},
  };
  for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
    char *d = tmpdir(), *out = fmt("%s/a/out", d), *job = fmt("%s/job.json", d), *err;
    write_text(job, fmt("{\"scene\": \"%s\", \"width\": 8, \"height\": 8, \"spp\": 1,\n"
                        " \"animation\": {\"frames\": 2}}\n",
                        SCENE));
    int st = run_kiln(d, ARGS_("render", job, "-o", out, t[i].opt, t[i].value), &err);
    expect_refused(d, fmt("%s %s", t[i].opt, t[i].value), st, err,
                   fmt("kiln render: %s %s: ", t[i].opt, t[i].value), t[i].fragment);
  }
}

/* With --allow-outside-output, the user's own --contact-sheet may name a path above -o. */
TEST(allow_outside_output_is_explicit) {
  char *d = tmpdir(), *out = fmt("%s/a/out", d), *job = fmt("%s/job.json", d), *err;
  write_text(job, fmt("{\"scene\": \"%s\", \"width\": 8, \"height\": 8, \"spp\": 1,\n"
                      " \"animation\": {\"frames\": 2}}\n",
                      SCENE));
  int st = run_kiln(d, ARGS_("render", job, "-o", out, "--contact-sheet", "../sheet.png",
                             "--allow-outside-output", "--quiet"),
                    &err);
  if (st != 0) KT_FAIL("kiln exited %d:\n%s", st, err);
  KT_EQ(access(fmt("%s/a/sheet.png", d), F_OK), 0);
  KT_EQ(access(fmt("%s/00000_color.png", out), F_OK), 0);
}
