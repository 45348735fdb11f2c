/* fuzz_util.c: the temporary folder and files of the fuzz targets, and the texture check that
 * the image targets share (fuzz.h). */
#include "fuzz.h"

#include <dirent.h>
#include <float.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scene_internal.h"

#ifndef KILN_FUZZ_ASSETS
#error "KILN_FUZZ_ASSETS must name tests/fuzz/assets (tests/fuzz/CMakeLists.txt)"
#endif

static char tmpdir[64];

static void die(const char *what, const char *path) {
  fprintf(stderr, "fuzz: %s %s\n", what, path);
  abort();
}

/* Only files are made in the folder, so one level is enough. */
static void remove_tmpdir(void) {
  DIR *d = opendir(tmpdir);
  if (!d) return;
  struct dirent *e;
  char path[512];
  while ((e = readdir(d)) != NULL) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
    unlink(path);
  }
  closedir(d);
  rmdir(tmpdir);
}

const char *fz_tmpdir(void) {
  if (tmpdir[0]) return tmpdir;
  const char *base = getenv("TMPDIR");
  if (!base || !*base || strlen(base) > 40) base = "/tmp";
  snprintf(tmpdir, sizeof tmpdir, "%s/kiln-fuzz-XXXXXX", base);
  if (!mkdtemp(tmpdir)) die("cannot make a folder like", tmpdir);
  atexit(remove_tmpdir);
  return tmpdir;
}

const char *fz_write(const char *name, const uint8_t *data, size_t size) {
  static char path[512];
  snprintf(path, sizeof path, "%s/%s", fz_tmpdir(), name);
  FILE *f = fopen(path, "wb");
  if (!f) die("cannot write", path);
  if ((size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) die("cannot write", path);
  return path;
}

const char *fz_assets_dir(void) { return KILN_FUZZ_ASSETS; }

void fz_asset(const char *name) {
  char src[1024], dst[512];
  snprintf(src, sizeof src, "%s/%s", KILN_FUZZ_ASSETS, name);
  snprintf(dst, sizeof dst, "%s/%s", fz_tmpdir(), name);
  if (access(dst, F_OK) == 0) return;
  FILE *in = fopen(src, "rb");
  if (!in) die("cannot read", src);
  FILE *out = fopen(dst, "wb");
  if (!out) die("cannot write", dst);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, in)) > 0)
    if (fwrite(buf, 1, n, out) != n) die("cannot write", dst);
  if (ferror(in) || fclose(out) != 0) die("cannot copy", src);
  fclose(in);
}

void fz_report(const char *what, int rc, const char *msg) {
  static int verbose = -1;
  if (verbose < 0) verbose = getenv("KILN_FUZZ_VERBOSE") && atoi(getenv("KILN_FUZZ_VERBOSE")) > 0;
  if (verbose) fprintf(stderr, "fuzz: %s: %s\n", what, rc ? msg : "ok");
}

void fz_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "fuzz: broken promise: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  abort();
}

char *fz_cstr(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (!s) die("out of memory copying an input of", "some size");
  if (size) memcpy(s, data, size);
  s[size] = '\0';
  return s;
}

_Static_assert((int)FZ_TEX_SRGB == (int)KILN__TEX_SRGB && (int)FZ_TEX_LINEAR == (int)KILN__TEX_LINEAR &&
                   (int)FZ_TEX_HDR == (int)KILN__TEX_HDR,
               "fuzz.h's texture modes are kiln__tex_mode's");

/* t's texels are finite and within [lo, hi]; else fz_fail naming what. */
static void check_texels(const kiln__texture *t, float lo, float hi, const char *what) {
  if (t->width < 1 || t->height < 1 || !t->rgb)
    fz_fail("%s of %d x %d texels (rgb %p) loaded without error", what, (int)t->width,
            (int)t->height, (void *)t->rgb);
  for (size_t i = 0; i < (size_t)t->width * (size_t)t->height * 3; i++)
    if (!(t->rgb[i] >= lo && t->rgb[i] <= hi))
      fz_fail("%s: value %g at texel %zu", what, t->rgb[i], i / 3);
}

void fz_texture(const char *name, int mode, bool alpha, const uint8_t *data, size_t size) {
  const char *path = fz_write(name, data, size);
  kiln__texture t, a;
  char msg[512];
  int rc = kiln__texture_load_ex(path, (kiln__tex_mode)mode, &t, alpha ? &a : NULL, msg, sizeof msg);
  /* scene_data.h: a texture has width * height * 3 floats, linear, finite and non-negative; an
   * alpha plane is the same size, its coverage in [0, 1] */
  if (rc == 0) {
    check_texels(&t, 0, FLT_MAX, "a texture");
    if (alpha && a.rgb) {
      if (a.width != t.width || a.height != t.height)
        fz_fail("an alpha plane of %d x %d for a texture of %d x %d", (int)a.width,
                (int)a.height, (int)t.width, (int)t.height);
      check_texels(&a, 0, 1, "an alpha plane");
    }
    free(t.rgb);
    if (alpha) free(a.rgb);
  }
  fz_report(strrchr(name, '.') + 1, rc, msg);
}
