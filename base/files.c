/* files.c: whole-file reads, paths, mkdir -p, and atomic writes (temporary name, then rename) with
 * the sweep of the temporaries a killed process leaves (see base.h). */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"
#include "kiln/error.h"

/* ---- reading and naming -------------------------------------------------------------------- */

/* Opened without blocking and checked with fstat before anything is read: a FIFO would block
 * the open (or the read) forever, and a device such as /dev/zero would be read without end. The
 * size fstat gives is only a first guess of the buffer's size; the file is read to its end. */
int kiln__read_file(const char *path, char **buf, size_t *len, char *msg, size_t msgsz) {
  *buf = NULL, *len = 0;
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    snprintf(msg, msgsz, "cannot open: %s", strerror(errno));
    if (fd >= 0) close(fd);
    return KILN_EIO;
  }
  if (!S_ISREG(st.st_mode)) {
    snprintf(msg, msgsz, "%s",
             S_ISDIR(st.st_mode) ? "is a directory, not a file"
                                 : "not a regular file (a device, FIFO or socket)");
    close(fd);
    return KILN_EIO;
  }
  size_t cap = st.st_size > 0 && (uint64_t)st.st_size < SIZE_MAX - 1 ? (size_t)st.st_size + 1
                                                                      : (size_t)1 << 16,
         n = 0;
  char *b = malloc(cap);
  for (;;) {
    if (!b || cap < 2) {
      free(b);
      close(fd);
      snprintf(msg, msgsz, "out of memory reading it (%zu bytes)", cap);
      return KILN_ENOMEM;
    }
    ssize_t got = read(fd, b + n, cap - 1 - n);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      int e = errno;
      free(b);
      close(fd);
      snprintf(msg, msgsz, "cannot read: %s", strerror(e));
      return KILN_EIO;
    }
    if (got == 0) break;
    n += (size_t)got;
    if (n < cap - 1) continue;
    char *nb = cap <= SIZE_MAX / 2 ? realloc(b, cap * 2) : NULL;
    if (!nb) free(b);
    b = nb, cap = cap <= SIZE_MAX / 2 ? cap * 2 : cap;
  }
  close(fd);
  b[n] = '\0';
  *buf = b, *len = n;
  return 0;
}

char *kiln__dirname(const char *path) {
  const char *slash = strrchr(path, '/');
  size_t n = slash ? (size_t)(slash - path) + 1 : 0;
  char *d = malloc(n + 1);
  if (!d) return NULL;
  memcpy(d, path, n);
  d[n] = '\0';
  return d;
}

char *kiln__path_join(const char *dir, const char *name) {
  if (name[0] == '/' || !dir) dir = "";
  size_t a = strlen(dir), b = strlen(name);
  bool sep = a > 0 && dir[a - 1] != '/';
  char *p = malloc(a + sep + b + 1);
  if (!p) return NULL;
  memcpy(p, dir, a);
  if (sep) p[a] = '/';
  memcpy(p + a + sep, name, b + 1);
  return p;
}

/* ---- atomic writes ------------------------------------------------------------------------------- */

static void say(char *msg, size_t cap, const char *what, const char *path, int err) {
  if (msg && cap) snprintf(msg, cap, "cannot %s %s: %s", what, path, strerror(err));
}

void kiln__tmp_host(char *out, size_t cap) {
  char h[256] = "";
  if (gethostname(h, sizeof h - 1) != 0 || !h[0]) snprintf(h, sizeof h, "localhost");
  size_t n = 0;
  for (const char *p = h; *p && n + 1 < cap && n < 32; p++)
    out[n++] = (char)(isalnum((unsigned char)*p) ? *p : '_');
  out[n] = 0;
}

int kiln__tmp_name(const char *path, char *tmp, size_t cap) {
  static _Atomic unsigned long counter;
  const char *slash = strrchr(path, '/');
  size_t dirlen = slash ? (size_t)(slash - path) : 0;
  char host[40];
  kiln__tmp_host(host, sizeof host);
  int n = snprintf(tmp, cap, "%.*s%s.%s.tmp-%s-%ld-%lu", (int)dirlen, path, slash ? "/" : "",
                   slash ? slash + 1 : path, host, (long)getpid(),
                   atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed));
  return n < 0 || (size_t)n >= cap ? KILN_EINVAL : 0;
}

int kiln__write_atomic(const char *path, const void *data, size_t len, bool durable, char *msg,
                       size_t msgcap) {
  if (msg && msgcap) msg[0] = 0;
  const char *slash = strrchr(path, '/');
  size_t dirlen = slash ? (size_t)(slash - path) : 0;
  char tmp[4096];
  if (kiln__tmp_name(path, tmp, sizeof tmp)) {
    if (msg && msgcap) snprintf(msg, msgcap, "cannot write %s: the path is too long", path);
    return KILN_EINVAL;
  }
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) {
    say(msg, msgcap, "create", tmp, errno);
    return KILN_EIO;
  }
  const unsigned char *p = data;
  size_t left = len;
  int err = 0;
  while (left > 0 && !err) {
    ssize_t w = write(fd, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) err = w < 0 ? errno : EIO;
    else p += w, left -= (size_t)w;
  }
  if (!err && durable && fsync(fd) != 0) err = errno;
  if (close(fd) != 0 && !err) err = errno;
  if (!err && rename(tmp, path) != 0) err = errno;
  if (err) {
    say(msg, msgcap, "write", path, err);
    unlink(tmp);
    return KILN_EIO;
  }
  if (durable) { /* the rename itself survives power loss once the folder is synced */
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", dirlen ? (int)dirlen : 1, dirlen ? path : slash ? "/" : ".");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      fsync(dfd);
      close(dfd);
    }
  }
  return 0;
}

/* ---- folders and leftovers ------------------------------------------------------------------------------- */

int kiln__make_dirs(const char *path, mode_t mode) {
  char buf[PATH_MAX];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return ENAMETOOLONG;
  for (char *p = buf + 1;; p++) {
    if (*p == '/' || *p == 0) {
      char c = *p;
      *p = 0;
      if (mkdir(buf, mode) != 0 && errno != EEXIST) return errno;
      *p = c;
      if (!c) break;
    }
  }
  struct stat st;
  if (stat(buf, &st) != 0) return errno;
  return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

void kiln__sweep_temporaries(const char *dir) {
  char host[40];
  kiln__tmp_host(host, sizeof host);
  size_t hl = strlen(host);
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    const char *name = e->d_name, *t = NULL;
    if (name[0] != '.') continue;
    for (const char *q = strstr(name, ".tmp-"); q; q = strstr(q + 1, ".tmp-")) t = q;
    if (!t || t == name || strncmp(t + 5, host, hl) != 0 || t[5 + hl] != '-') continue;
    const char *p = t + 6 + hl;
    char *end;
    errno = 0;
    long pid = strtol(p, &end, 10);
    if (errno || end == p || *end != '-' || pid <= 0 || pid != (long)(pid_t)pid) continue;
    p = end + 1;
    strtoul(p, &end, 10);
    if (end == p || *end) continue;
    if (pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) < (int)sizeof path) unlink(path);
  }
  closedir(d);
}
