/* cli_test_util.h: what the cli suite's tests share (and the dataset suite's that run kiln):
 * temporary folders, files, strings; running the built kiln and collecting what it printed; waiting
 * for the files it renames into place; loading a job; stb_image's PNG reader (linked from Debian's
 * libstb, not compiled into kiln's library).
 *
 * Every string and buffer these helpers allocate is kept until the test process ends (each test is
 * its own short process), so it stays reachable and LeakSanitizer reports only real leaks; the kiln
 * processes the tests run are checked by their own sanitizer runtime. */
#ifndef KILN_CLI_TEST_UTIL_H
#define KILN_CLI_TEST_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stb_image.h>

#include "kiln/batch.h"
#include "kiln/error.h"
#include "kt.h"

static void *kept[8192];
static size_t nkept;
static inline void *keep(void *p) {
  if (p && nkept < sizeof kept / sizeof *kept) kept[nkept++] = p;
  return p;
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2), unused));
static char *fmt(const char *f, ...) {
  va_list ap;
  va_start(ap, f);
  char *s = NULL;
  if (vasprintf(&s, f, ap) < 0) KT_FAIL("out of memory");
  va_end(ap);
  return keep(s);
}

/* A new empty folder under /tmp. */
static inline char *tmpdir(void) {
  char *d = keep(strdup("/tmp/kiln-cli-XXXXXX"));
  if (!mkdtemp(d)) KT_FAIL("mkdtemp: %s", strerror(errno));
  return d;
}

static inline void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f) KT_FAIL("cannot write %s", path);
  fputs(text, f);
  fclose(f);
}

/* The whole file, NUL-terminated, or NULL when it cannot be opened. */
static inline unsigned char *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = keep(malloc((size_t)n + 1));
  if (fread(b, 1, (size_t)n, f) != (size_t)n) KT_FAIL("short read of %s", path);
  b[n] = 0;
  fclose(f);
  *len = (size_t)n;
  return b;
}

/* Both files exist and hold the same bytes. */
static inline bool same_file(const char *a, const char *b) {
  size_t la = 0, lb = 0;
  unsigned char *x = read_all(a, &la), *y = read_all(b, &lb);
  return x && y && la == lb && memcmp(x, y, la) == 0;
}

/* ---- running kiln ------------------------------------------------------------------------------ */

/* What a run of kiln left: its exit status and what it printed. */
typedef struct result {
  int status; /* exit code, or 128 + signal */
  char *out, *err;
} result;

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Starts kiln with args (NULL-terminated, argv[0] excluded); its stdout and stderr go to files in
 * dir (read by finish). It runs in the folder cwd (NULL: the test's own) with the variables env
 * ("NAME=value", NULL-terminated; NULL: none) set on top of the test's environment. */
static inline pid_t start_in(const char *dir, const char *cwd, const char *const *env,
                             const char *const *args) {
  const char *argv[64] = {KILN_CLI_PATH};
  int n = 1;
  for (; args[n - 1]; n++) {
    if (n == 63) KT_FAIL("too many arguments for kiln");
    argv[n] = args[n - 1];
  }
  argv[n] = NULL;
  char *o = fmt("%s/.stdout", dir), *e = fmt("%s/.stderr", dir);
  pid_t pid = fork();
  if (pid < 0) KT_FAIL("fork: %s", strerror(errno));
  if (pid == 0) {
    int fo = open(o, O_WRONLY | O_CREAT | O_TRUNC, 0644),
        fe = open(e, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fo, 1), dup2(fe, 2);
    if (cwd && chdir(cwd) != 0) _exit(126);
    for (; env && *env; env++) putenv((char *)*env);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  return pid;
}

/* start_in in the test's own folder, its environment as it is. */
static inline pid_t start(const char *dir, const char *const *args) {
  return start_in(dir, NULL, NULL, args);
}

/* Waits for the kiln that start began and collects its status and output (the files are removed,
 * so that they never count among the files a run wrote). */
static inline result finish(const char *dir, pid_t pid) {
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) KT_FAIL("waitpid: %s", strerror(errno));
  result r = {WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), NULL, NULL};
  size_t len;
  char *o = fmt("%s/.stdout", dir), *e = fmt("%s/.stderr", dir);
  r.out = (char *)read_all(o, &len);
  r.err = (char *)read_all(e, &len);
  unlink(o), unlink(e);
  if (!r.out) r.out = keep(strdup(""));
  if (!r.err) r.err = keep(strdup(""));
  return r;
}

/* Runs kiln with args to its end, in the test's own folder. */
static inline result run(const char *dir, const char *const *args) {
  return finish(dir, start(dir, args));
}

/* Runs kiln with args to its end with dir as its working folder (relative paths are dir's). */
#define RUN(dir, ...) finish(dir, start_in(dir, dir, NULL, ARGS(__VA_ARGS__)))

static inline void expect_status(const result *r, int status) {
  if (r->status != status)
    KT_FAIL("kiln exited %d, expected %d\n--- stdout\n%s--- stderr\n%s", r->status, status, r->out,
            r->err);
}

/* An inotify descriptor that reports files renamed into dir (kiln's final names arrive so). */
static inline int watch_renames(const char *dir) {
  int ifd = inotify_init1(IN_CLOEXEC);
  if (ifd < 0) KT_FAIL("inotify_init1: %s", strerror(errno));
  if (inotify_add_watch(ifd, dir, IN_MOVED_TO) < 0)
    KT_FAIL("inotify_add_watch %s: %s", dir, strerror(errno));
  return ifd;
}

/* Waits until count files have been renamed into the folder ifd watches: files called name, or
 * with name NULL any that is not hidden; fails at once if kiln (pid) ends first. The poll's
 * timeout only paces that check of the child. */
static inline void wait_for_renames(int ifd, const char *name, int count, pid_t pid) {
  int seen = 0;
  char buf[8192] __attribute__((aligned(8)));
  while (seen < count) {
    struct pollfd pfd = {.fd = ifd, .events = POLLIN};
    int ready = poll(&pfd, 1, 200);
    if (ready < 0 && errno != EINTR) KT_FAIL("poll: %s", strerror(errno));
    if (ready <= 0) {
      siginfo_t si = {0};
      if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid)
        KT_FAIL("kiln ended (%s %d) after %d of the %d files awaited (%s)",
                si.si_code == CLD_EXITED ? "exit code" : "signal", si.si_status, seen, count,
                name ? name : "any name");
      continue;
    }
    ssize_t n = read(ifd, buf, sizeof buf);
    if (n <= 0) KT_FAIL("inotify read: %s", strerror(errno));
    for (char *p = buf; p < buf + n;) {
      struct inotify_event *ev = (struct inotify_event *)p;
      if (ev->len && (name ? !strcmp(ev->name, name) : ev->name[0] != '.')) seen++;
      p += sizeof *ev + ev->len;
    }
  }
}

/* The job at path, or the test fails with kiln_job_load's located message. */
static inline kiln_job *load_job(const char *path) {
  kiln_error_detail err;
  kiln_job *job = NULL;
  int rc = kiln_job_load(path, NULL, &err, &job);
  if (rc) {
    char m[1400];
    KT_FAIL("kiln_job_load: %s", kiln_error_detail_format(&err, m, sizeof m));
  }
  return job;
}

#endif
