/* test_base.c: base/ — the clock and deadlines, files (whole reads, paths, mkdir -p, atomic writes
 * and the sweep of their leftovers), strings, FNV-1a, and kiln_version. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"
#include "kiln/error.h"
#include "kiln/version.h"
#include "kt.h"

static char *temp_dir(void) {
  const char *t = getenv("TMPDIR");
  char *d = kiln__strdup_printf("%s/kiln-base-XXXXXX", t && *t ? t : "/tmp");
  KT_TRUE(d && mkdtemp(d));
  return d;
}

static void put(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  KT_TRUE(f);
  fputs(text, f);
  KT_EQ(fclose(f), 0);
}

/* The names in dir, sorted, joined by spaces (hidden ones included). */
static void listing(const char *dir, char *out, size_t cap) {
  struct dirent **names;
  int n = scandir(dir, &names, NULL, alphasort);
  KT_TRUE(n >= 0);
  out[0] = 0;
  for (int i = 0; i < n; i++) {
    if (strcmp(names[i]->d_name, ".") && strcmp(names[i]->d_name, "..")) {
      if (out[0]) strncat(out, " ", cap - strlen(out) - 1);
      strncat(out, names[i]->d_name, cap - strlen(out) - 1);
    }
    free(names[i]);
  }
  free(names);
}

TEST(version_matches_the_headers) {
  const char *s = NULL;
  KT_EQ(kiln_version(&s), KILN_VERSION_NUMBER);
  KT_STR_EQ(s, KILN_VERSION_STRING);
  char want[32];
  snprintf(want, sizeof want, "%d.%d.%d", KILN_VERSION_MAJOR, KILN_VERSION_MINOR,
           KILN_VERSION_PATCH);
  KT_STR_EQ(s, want);
  KT_EQ(kiln_version(NULL), KILN_VERSION_NUMBER);
}

TEST(deadlines_from_timeouts) {
  double d = 0;
  KT_CODE(kiln__deadline(NAN, &d), KILN_EINVAL);
  KT_CODE(kiln__deadline(-1, &d), KILN_OK);
  KT_TRUE(isinf(d) && d > 0);
  double before = kiln__now();
  KT_CODE(kiln__deadline(2.5, &d), KILN_OK);
  KT_TRUE(d >= before + 2.5 && d <= kiln__now() + 2.5);
  struct timespec ts;
  kiln__abs_timespec(INFINITY, &ts);
  KT_TRUE(ts.tv_sec > 0 && ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000L);
  kiln__abs_timespec(12.75, &ts);
  KT_EQ(ts.tv_sec, 12);
  KT_EQ(ts.tv_nsec, 750000000L);
}

TEST(read_file_whole_or_located_error) {
  char *dir = temp_dir();
  char *path = kiln__path_join(dir, "a.txt");
  put(path, "line one\nline two\n");
  char *buf = NULL, msg[128] = "";
  size_t len = 0;
  KT_CODE(kiln__read_file(path, &buf, &len, msg, sizeof msg), KILN_OK);
  KT_EQ(len, 18);
  KT_STR_EQ(buf, "line one\nline two\n");
  free(buf);
  unlink(path);
  KT_CODE(kiln__read_file(path, &buf, &len, msg, sizeof msg), KILN_EIO);
  KT_PTR_EQ(buf, NULL);
  KT_STR_CONTAINS(msg, "cannot open");
  free(path);
  rmdir(dir);
  free(dir);
}

TEST(dirname_and_path_join) {
  struct {
    const char *path, *dir;
  } d[] = {{"a/b.obj", "a/"}, {"b.obj", ""}, {"/x/y/z.png", "/x/y/"}, {"/z", "/"}};
  for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
    char *got = kiln__dirname(d[i].path);
    KT_STR_EQ(got, d[i].dir);
    free(got);
  }
  struct {
    const char *dir, *name, *want;
  } j[] = {{"a", "b", "a/b"}, {"a/", "b", "a/b"}, {"", "b", "b"}, {NULL, "b", "b"},
           {"a", "/abs/b", "/abs/b"}};
  for (size_t i = 0; i < sizeof j / sizeof j[0]; i++) {
    char *got = kiln__path_join(j[i].dir, j[i].name);
    KT_STR_EQ(got, j[i].want);
    free(got);
  }
}

TEST(make_dirs_nested_and_refuses_a_file) {
  char *dir = temp_dir();
  char *deep = kiln__strdup_printf("%s/a/b/c", dir);
  KT_EQ(kiln__make_dirs(deep, 0777), 0);
  struct stat st;
  KT_EQ(stat(deep, &st), 0);
  KT_TRUE(S_ISDIR(st.st_mode));
  KT_EQ(kiln__make_dirs(deep, 0777), 0); /* exists: fine */
  char *file = kiln__strdup_printf("%s/f", dir);
  put(file, "x");
  char *under = kiln__strdup_printf("%s/f/g", dir);
  KT_EQ(kiln__make_dirs(file, 0777), ENOTDIR);
  KT_EQ(kiln__make_dirs(under, 0777), ENOTDIR);
  unlink(file);
  char *mid = kiln__strdup_printf("%s/a/b", dir), *top = kiln__strdup_printf("%s/a", dir);
  rmdir(deep), rmdir(mid), rmdir(top), rmdir(dir);
  free(deep), free(file), free(under), free(mid), free(top), free(dir);
}

TEST(write_atomic_replaces_and_leaves_no_temporary) {
  char *dir = temp_dir();
  char *path = kiln__path_join(dir, "out.bin");
  char msg[256];
  KT_CODE(kiln__write_atomic(path, "first", 5, false, msg, sizeof msg), KILN_OK);
  KT_CODE(kiln__write_atomic(path, "second!", 7, true, msg, sizeof msg), KILN_OK);
  char *buf = NULL;
  size_t len = 0;
  KT_CODE(kiln__read_file(path, &buf, &len, msg, sizeof msg), KILN_OK);
  KT_STR_EQ(buf, "second!");
  free(buf);
  char names[512];
  listing(dir, names, sizeof names);
  KT_STR_EQ(names, "out.bin");
  /* a folder that does not exist: an error naming the file, nothing written */
  char *bad = kiln__strdup_printf("%s/missing/out.bin", dir);
  KT_CODE(kiln__write_atomic(bad, "x", 1, false, msg, sizeof msg), KILN_EIO);
  KT_STR_CONTAINS(msg, "missing");
  listing(dir, names, sizeof names);
  KT_STR_EQ(names, "out.bin");
  unlink(path);
  rmdir(dir);
  free(bad), free(path), free(dir);
}

TEST(sweep_removes_only_dead_processes_temporaries) {
  char *dir = temp_dir();
  char host[40];
  kiln__tmp_host(host, sizeof host);
  KT_TRUE(host[0] && !strchr(host, '-'));
  /* pid 2^31-2 is above any pid_max: that process cannot be running */
  char *dead = kiln__strdup_printf("%s/.a.png.tmp-%s-2147483646-3", dir, host);
  char *mine = kiln__strdup_printf("%s/.b.png.tmp-%s-%ld-4", dir, host, (long)getpid());
  char *other = kiln__strdup_printf("%s/.c.png.tmp-otherhost-2147483646-5", dir);
  char *plain = kiln__strdup_printf("%s/d.png", dir);
  put(dead, "x"), put(mine, "x"), put(other, "x"), put(plain, "x");
  kiln__sweep_temporaries(dir);
  char names[1024], want[1024];
  listing(dir, names, sizeof names);
  snprintf(want, sizeof want, ".b.png.tmp-%s-%ld-4 .c.png.tmp-otherhost-2147483646-5 d.png", host,
           (long)getpid());
  KT_STR_EQ(names, want);
  unlink(mine), unlink(other), unlink(plain), rmdir(dir);
  free(dead), free(mine), free(other), free(plain), free(dir);
}

TEST(strings_formatted) {
  char *s = kiln__strdup_printf("%s-%03d", "frame", 7);
  KT_STR_EQ(s, "frame-007");
  free(s);
  char buf[8] = "unset";
  kiln__say(buf, sizeof buf, "%d words", 12345);
  KT_STR_EQ(buf, "12345 w"); /* cut to the buffer, always terminated */
  kiln__say(NULL, 0, "%s", "ignored");
}

TEST(fnv1a_known_values) {
  KT_EQ(kiln__fnv1a(KILN__FNV1A_SEED, "", 0), (long long)0xcbf29ce484222325ull);
  KT_EQ(kiln__fnv1a(KILN__FNV1A_SEED, "a", 1), (long long)0xaf63dc4c8601ec8cull);
  KT_EQ(kiln__fnv1a(KILN__FNV1A_SEED, "foobar", 6), (long long)0x85944171f73967e8ull);
  /* continuing from a prefix's hash gives the whole string's */
  uint64_t h = kiln__fnv1a(KILN__FNV1A_SEED, "foo", 3);
  KT_EQ(kiln__fnv1a(h, "bar", 3), (long long)0x85944171f73967e8ull);
}
