/* cli_test_util.h: what the cli suite's tests share: temporary folders, files, strings.
 *
 * Every string and buffer these helpers allocate is kept until the test process ends (each test is
 * its own short process), so it stays reachable and LeakSanitizer reports only real leaks; the kiln
 * processes the tests run are checked by their own sanitizer runtime. */
#ifndef KILN_CLI_TEST_UTIL_H
#define KILN_CLI_TEST_UTIL_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#endif
