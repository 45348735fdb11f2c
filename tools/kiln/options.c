/* options.c: what the commands after `kiln render` share to read their options and write their
 * files: numbers, frame ranges and sizes as render.c reads them, {shard} in file names, paths that
 * must stay inside the output folder, JSON strings, and files written atomically (a temporary
 * beside the file, then rename). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

bool kiln_cli_parse_long(const char *s, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi) return false;
  *out = v;
  return true;
}

bool kiln_cli_exr_compression(const char *s, kiln_exr_compression *out) {
  static const char *const names[] = {"none", "rle", "zips", "zip", "piz"};
  static const kiln_exr_compression codes[] = {KILN_EXR_NONE, KILN_EXR_RLE, KILN_EXR_ZIPS,
                                               KILN_EXR_ZIP, KILN_EXR_PIZ};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (!strcmp(s, names[i])) {
      *out = codes[i];
      return true;
    }
  return false;
}

bool kiln_cli_parse_size(const char *s, int32_t *w, int32_t *h) {
  char buf[64];
  if (snprintf(buf, sizeof buf, "%s", s) >= (int)sizeof buf) return false;
  char *x = strchr(buf, 'x');
  if (!x) return false;
  *x = 0;
  long a, b;
  if (!kiln_cli_parse_long(buf, 1, 16384, &a) || !kiln_cli_parse_long(x + 1, 1, 16384, &b))
    return false;
  *w = (int32_t)a, *h = (int32_t)b;
  return true;
}

bool kiln_cli_parse_frames(const char *s, long *first, long *last, long *step) {
  char buf[128];
  if (snprintf(buf, sizeof buf, "%s", s) >= (int)sizeof buf) return false;
  char *c1 = strchr(buf, ':');
  *step = 1;
  if (!c1) {
    if (!kiln_cli_parse_long(buf, LONG_MIN + 1, LONG_MAX - 1, first)) return false;
    *last = *first;
    return true;
  }
  *c1 = 0;
  char *b = c1 + 1, *c2 = strchr(b, ':');
  if (c2) {
    *c2 = 0;
    if (!kiln_cli_parse_long(c2 + 1, 1, LONG_MAX, step)) return false;
  }
  *first = LONG_MIN, *last = LONG_MAX;
  if (buf[0] && !kiln_cli_parse_long(buf, LONG_MIN + 1, LONG_MAX - 1, first)) return false;
  if (b[0] && !kiln_cli_parse_long(b, LONG_MIN + 1, LONG_MAX - 1, last)) return false;
  return *last >= *first;
}

const char *kiln_cli_with_shard(const char *name, const char *shard, char *buf, size_t cap) {
  size_t n = 0, sl = strlen(shard);
  for (const char *p = name; *p;) {
    bool field = !strncmp(p, "{shard}", 7);
    size_t len = field ? sl : 1;
    if (n + len >= cap) return NULL;
    memcpy(buf + n, field ? shard : p, len);
    n += len, p += field ? 7 : 1;
  }
  buf[n] = 0;
  return buf;
}

const char *kiln_cli_leaves_folder(const char *path) {
  if (!path[0]) return "it is empty";
  if (path[0] == '/') return "an absolute path is outside the output folder";
  for (const char *p = path; *p;) {
    size_t n = strcspn(p, "/");
    if (n == 2 && p[0] == '.' && p[1] == '.') return "'..' leads outside the output folder";
    p += n;
    if (*p) p++;
  }
  return NULL;
}

void kiln_cli_json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c < 0x20) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
  fputc('"', f);
}

FILE *kiln_cli_atomic_open(const char *path, char *tmp, size_t cap) {
  const char *slash = strrchr(path, '/');
  int dl = slash ? (int)(slash - path) + 1 : 0;
  if (snprintf(tmp, cap, "%.*s.%s.tmp-%ld", dl, path, path + dl, (long)getpid()) >= (int)cap) {
    errno = ENAMETOOLONG;
    return NULL;
  }
  return fopen(tmp, "w");
}

int kiln_cli_atomic_commit(FILE *f, const char *tmp, const char *path, bool keep) {
  int err = ferror(f) ? EIO : 0;
  if (fflush(f) != 0 && !err) err = errno;
  if (!err && keep && fsync(fileno(f)) != 0) err = errno;
  if (fclose(f) != 0 && !err) err = errno;
  if (!err && keep && rename(tmp, path) != 0) err = errno;
  if (err || !keep) unlink(tmp);
  return err;
}

int kiln_cli_usage_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "kiln %s: ", cmd);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n(kiln %s --help shows the options)\n", cmd);
  va_end(ap);
  return 2;
}
