/* kiln-bench-load: loading documents with many names, whose duplicate checks and name lookups
 * must not grow with the square of the names. For each N:
 *
 *   scene     a scene of N materials and one sphere (kiln_scene_load)
 *   scene+obj a scene of N materials and N spheres, each naming its own material
 *   line      a job (of a one-sphere scene) whose list line overrides N keys of "objects", the last
 *             a repeat of an earlier one (kiln_job_load fails there, at the repeat)
 *   overrides a job whose list line overrides all N objects of the N-object scene by name, each
 *             with another material of the scene
 *
 * Each figure is the median wall time of --reps loads. The files go to a temporary folder.
 *
 *   kiln-bench-load [--reps N] [--sizes 15000,60000] */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_clock.h"
#include "kiln/batch.h"
#include "kiln/scene.h"

static char dir[64];

static void write_file(const char *name, const char *fmt, ...) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (!f) {
    fprintf(stderr, "cannot write %s\n", path);
    exit(1);
  }
  va_list ap;
  va_start(ap, fmt);
  vfprintf(f, fmt, ap);
  va_end(ap);
  fclose(f);
}

/* scene.json: n materials and objs spheres (sphere i uses material i). */
static void write_scene(const char *name, int n, int objs) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (!f) exit(1);
  fprintf(f, "{\"settings\": {\"width\": 8, \"height\": 8, \"spp\": 1},\n"
             " \"camera\": {\"position\": [0, 1, -4], \"look_at\": [0, 1, 0]},\n \"materials\": {");
  for (int i = 0; i < n; i++)
    fprintf(f, "%s\"m%d\": {\"type\": \"diffuse\", \"albedo\": [0.5, 0.5, 0.5]}", i ? ",\n" : "",
            i);
  fprintf(f, "},\n \"objects\": [");
  for (int i = 0; i < objs; i++)
    fprintf(f,
            "%s{\"type\": \"sphere\", \"name\": \"o%d\", \"center\": [0, 1, %d], \"radius\": 0.1, "
            "\"material\": \"m%d\"}",
            i ? ",\n" : "", i, i, i % n);
  fprintf(f, "]}\n");
  fclose(f);
}

/* list.jsonl: one line; objects: n keys k0..k(n-1) then k(n/2) again (repeat), or o0..o(n-1) each
 * with material m(i+1) (overrides). */
static void write_line(const char *name, int n, bool repeat) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (!f) exit(1);
  fprintf(f, "{\"name\": \"a\", \"objects\": {");
  for (int i = 0; i < n; i++)
    if (repeat) fprintf(f, "%s\"k%d\": {}", i ? ", " : "", i);
    else fprintf(f, "%s\"o%d\": {\"material\": \"m%d\"}", i ? ", " : "", i, (i + 1) % n);
  if (repeat) fprintf(f, ", \"k%d\": {}", n / 2);
  fprintf(f, "}}\n");
  fclose(f);
}

/* Median seconds of reps loads of name (a scene, or a job when job); want: the code expected. */
static double time_load(const char *name, bool job, int want, int reps) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  double t[64];
  for (int r = 0; r < reps; r++) {
    kiln_error_detail e;
    double t0 = now();
    int rc;
    if (job) {
      kiln_job *j = NULL;
      rc = kiln_job_load(path, NULL, &e, &j);
      kiln_job_destroy(j);
    } else {
      kiln_scene *s = NULL;
      rc = kiln_scene_load(path, &e, &s);
      kiln_scene_destroy(s);
    }
    t[r] = now() - t0;
    if (rc != want) {
      char m[1400];
      fprintf(stderr, "%s: %s\n", name, kiln_error_detail_format(&e, m, sizeof m));
      exit(1);
    }
  }
  qsort(t, (size_t)reps, sizeof t[0], cmp_double);
  return t[reps / 2];
}

int main(int argc, char **argv) {
  int reps = 3;
  const char *sizes = "15000,60000";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--sizes") && i + 1 < argc) sizes = argv[++i];
    else {
      fprintf(stderr, "usage: kiln-bench-load [--reps N] [--sizes N,N,...]\n");
      return 2;
    }
  }
  if (reps < 1) reps = 1;
  if (reps > 64) reps = 64;
  snprintf(dir, sizeof dir, "/tmp/kiln-bench-load-XXXXXX");
  if (!mkdtemp(dir)) return 1;
  printf("%8s %10s %10s %10s %10s   (median of %d, seconds)\n", "N", "scene", "scene+obj", "line",
         "overrides", reps);
  char *list = strdup(sizes);
  for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
    int n = atoi(tok);
    if (n < 2) continue;
    write_scene("mats.json", n, 1);
    write_scene("objs.json", n, n);
    write_scene("small.json", 1, 1);
    write_line("repeat.jsonl", n, true);
    write_line("over.jsonl", n, false);
    write_file("repeat.json", "{\"scene\": \"small.json\", \"images\": \"repeat.jsonl\"}\n");
    write_file("over.json", "{\"scene\": \"objs.json\", \"images\": \"over.jsonl\"}\n");
    double a = time_load("mats.json", false, 0, reps), b = time_load("objs.json", false, 0, reps);
    double c = time_load("repeat.json", true, KILN_EPARSE, reps);
    double d = time_load("over.json", true, 0, reps);
    printf("%8d %10.3f %10.3f %10.3f %10.3f\n", n, a, b, c, d);
    fflush(stdout);
  }
  free(list);
  const char *names[] = {"mats.json",  "objs.json",   "small.json", "repeat.jsonl",
                         "over.jsonl", "repeat.json", "over.json"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, names[i]);
    unlink(p);
  }
  rmdir(dir);
  return 0;
}
