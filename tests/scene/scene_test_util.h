/* scene_test_util.h: helpers for the scene suite: a private temporary folder per test, writing
 * small files into it, and loading scenes from strings with the error checked field by field. */
#ifndef KILN_SCENE_TEST_UTIL_H
#define KILN_SCENE_TEST_UTIL_H

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kiln/error.h"
#include "kiln/scene.h"
#include "kt.h"
#include "scene_data.h"

/* The whole file at path, NUL-terminated (malloc'd); *len (may be NULL) its size. Fails the test
 * if it cannot be read. */
static inline char *st_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) KT_FAIL("cannot open %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)n + 1);
  if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) KT_FAIL("cannot read %s", path);
  b[n] = '\0';
  fclose(f);
  if (len) *len = (size_t)n;
  return b;
}

/* This file's folder (CMake compiles with absolute paths), for tests/scene/data and examples/. */
static inline const char *st_src_dir(void) {
  static char dir[1024];
  if (!dir[0]) {
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *s = strrchr(dir, '/');
    if (s) *s = '\0';
    else snprintf(dir, sizeof dir, ".");
  }
  return dir;
}

/* A fresh folder under TMPDIR (or /tmp), removed by st_tmp_cleanup. */
static char st_tmp[512];
static inline const char *st_tmpdir(void) {
  const char *base = getenv("TMPDIR");
  snprintf(st_tmp, sizeof st_tmp, "%s/kiln-scene-XXXXXX", base && base[0] ? base : "/tmp");
  if (!mkdtemp(st_tmp)) KT_FAIL("mkdtemp failed");
  return st_tmp;
}

/* Writes n bytes (n == (size_t)-1: strlen) to dir/name; returns the path (static buffer). */
static inline const char *st_write(const char *dir, const char *name, const void *data, size_t n) {
  static char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f) KT_FAIL("cannot write %s", path);
  if (n == (size_t)-1) n = strlen(data);
  if (fwrite(data, 1, n, f) != n) KT_FAIL("short write %s", path);
  fclose(f);
  return path;
}

static inline void st_tmp_cleanup(void) {
  if (!st_tmp[0]) return;
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", st_tmp);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", st_tmp);
  st_tmp[0] = '\0';
}

/* Loads json (base dir dir) and expects success. */
static inline kiln_scene *st_load_ok(const char *json, const char *dir) {
  kiln_error_detail e;
  kiln_scene *s = NULL;
  int rc = kiln_scene_load_string(json, dir, "test.json", &e, &s);
  if (rc) {
    char buf[2048];
    KT_FAIL("load failed: %s: %s", kiln_err_name(rc),
            kiln_error_detail_format(&e, buf, sizeof buf));
  }
  KT_TRUE(s != NULL);
  return s;
}

static inline const kiln__scene *st_data(const kiln_scene *s) {
  return &((const struct kiln_scene *)s)->data;
}

#define ST_NEAR(a, b, tol)                                                                    \
  do {                                                                                        \
    double st_a = (a), st_b = (b);                                                            \
    if (!(fabs(st_a - st_b) <= (tol))) KT_FAIL("%s ~= %s: %.9g != %.9g", #a, #b, st_a, st_b); \
  } while (0)

/* Loads json (named "bad.json") and expects KILN_EPARSE with err.path == path, at the line and
 * column of marker's first occurrence in json, with fragment in the message and the file name in
 * the formatted error; no scene. i names the case in failures. */
static inline void st_expect_located(size_t i, const char *json, const char *path,
                                     const char *marker, const char *fragment) {
  kiln_error_detail e;
  kiln_scene *s = NULL;
  int rc = kiln_scene_load_string(json, NULL, "bad.json", &e, &s);
  char buf[2048];
  kiln_error_detail_format(&e, buf, sizeof buf);
  if (rc != KILN_EPARSE) KT_FAIL("case %zu: %s, want KILN_EPARSE: %s", i, kiln_err_name(rc), buf);
  KT_TRUE(s == NULL);
  const char *at = strstr(json, marker);
  if (!at) KT_FAIL("case %zu: marker not in json", i);
  int line = 1, col = 1;
  for (const char *p = json; p < at; p++) {
    if (*p == '\n') line++, col = 1;
    else col++;
  }
  if (strcmp(e.path, path) != 0) KT_FAIL("case %zu: path '%s', want '%s': %s", i, e.path, path, buf);
  if (!strstr(e.message, fragment)) KT_FAIL("case %zu: message lacks '%s': %s", i, fragment, buf);
  if (e.line != line || e.column != col)
    KT_FAIL("case %zu: at %d:%d, want %d:%d: %s", i, e.line, e.column, line, col, buf);
  KT_STR_CONTAINS(buf, "bad.json:");
}

#endif
