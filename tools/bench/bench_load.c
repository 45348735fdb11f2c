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
 * and, with --mesh T (triangles, e.g. 1000000), one mesh of T triangles (a grid with normals and
 * uvs, indexed) loaded as a scene object from each of:
 *
 *   glb       a binary glTF ("type": "gltf")
 *   ply       the same vertices and faces as binary little-endian PLY ("type": "mesh")
 *
 * Each figure is the median wall time of --reps loads. The files go to a temporary folder, removed
 * at the end unless --keep (then its path is printed: tools/bench/blender/import_gltf.py times
 * Blender's importer on the same grid.glb).
 *
 *   kiln-bench-load [--reps N] [--sizes 15000,60000] [--mesh T [--keep]] */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
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

/* Median seconds of reps loads of name (a scene, or a job when job); want: the code expected.
 * *cpu (when not NULL): the median CPU seconds of the process (what a loaded machine inflates
 * less than the wall time). */
static double time_load_cpu(const char *name, bool job, int want, int reps, double *cpu) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  double t[64], c[64];
  for (int r = 0; r < reps; r++) {
    kiln_error_detail e;
    double t0 = now(), c0 = cpu_now();
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
    t[r] = now() - t0, c[r] = cpu_now() - c0;
    if (rc != want) {
      char m[1400];
      fprintf(stderr, "%s: %s\n", name, kiln_error_detail_format(&e, m, sizeof m));
      exit(1);
    }
  }
  qsort(t, (size_t)reps, sizeof t[0], cmp_double);
  qsort(c, (size_t)reps, sizeof c[0], cmp_double);
  if (cpu) *cpu = c[reps / 2];
  return t[reps / 2];
}

static double time_load(const char *name, bool job, int want, int reps) {
  return time_load_cpu(name, job, want, reps, NULL);
}

/* grid.glb and grid.ply: a side x side grid of vertices in z = 0 (normal +z, uv over [0, 1]^2),
 * 2 (side - 1)^2 triangles, u32 indices. */
static void write_grid(int side) {
  size_t nv = (size_t)side * (size_t)side, nt = 2 * (size_t)(side - 1) * (size_t)(side - 1);
  float *v = malloc(nv * 8 * sizeof(float));
  uint32_t *ix = malloc(nt * 3 * sizeof(uint32_t));
  if (!v || !ix) exit(1);
  for (int y = 0; y < side; y++)
    for (int x = 0; x < side; x++) {
      float *p = v + 8 * ((size_t)y * (size_t)side + (size_t)x);
      float u = (float)x / (float)(side - 1), w = (float)y / (float)(side - 1);
      p[0] = u, p[1] = w, p[2] = 0, p[3] = 0, p[4] = 0, p[5] = 1, p[6] = u, p[7] = w;
    }
  size_t k = 0;
  for (int y = 0; y + 1 < side; y++)
    for (int x = 0; x + 1 < side; x++) {
      uint32_t a = (uint32_t)(y * side + x), b = a + 1, c = a + (uint32_t)side + 1,
               d = a + (uint32_t)side;
      uint32_t q[6] = {a, b, c, a, c, d};
      memcpy(ix + k, q, sizeof q), k += 6;
    }
  char path[256];
  /* PLY: x y z nx ny nz s t, then faces as uchar count + 3 uint */
  snprintf(path, sizeof path, "%s/grid.ply", dir);
  FILE *f = fopen(path, "wb");
  if (!f) exit(1);
  fprintf(f,
          "ply\nformat binary_little_endian 1.0\nelement vertex %zu\nproperty float x\n"
          "property float y\nproperty float z\nproperty float nx\nproperty float ny\n"
          "property float nz\nproperty float s\nproperty float t\nelement face %zu\n"
          "property list uchar uint vertex_indices\nend_header\n",
          nv, nt);
  fwrite(v, sizeof(float), nv * 8, f);
  for (size_t t = 0; t < nt; t++) {
    unsigned char three = 3;
    fwrite(&three, 1, 1, f);
    fwrite(ix + 3 * t, sizeof(uint32_t), 3, f);
  }
  fclose(f);
  /* GLB: one interleaved vertex view (stride 32) and one index view */
  size_t vbytes = nv * 32, ibytes = nt * 12;
  char json[2048];
  int jn = snprintf(
      json, sizeof json,
      "{\"asset\": {\"version\": \"2.0\"}, \"scene\": 0, \"scenes\": [{\"nodes\": [0]}],"
      " \"nodes\": [{\"name\": \"grid\", \"mesh\": 0}],"
      " \"meshes\": [{\"primitives\": [{\"attributes\": {\"POSITION\": 0, \"NORMAL\": 1,"
      " \"TEXCOORD_0\": 2}, \"indices\": 3}]}],"
      " \"buffers\": [{\"byteLength\": %zu}],"
      " \"bufferViews\": [{\"buffer\": 0, \"byteLength\": %zu, \"byteStride\": 32},"
      " {\"buffer\": 0, \"byteOffset\": %zu, \"byteLength\": %zu}],"
      " \"accessors\": ["
      "{\"bufferView\": 0, \"componentType\": 5126, \"count\": %zu, \"type\": \"VEC3\","
      " \"min\": [0, 0, 0], \"max\": [1, 1, 0]},"
      " {\"bufferView\": 0, \"byteOffset\": 12, \"componentType\": 5126, \"count\": %zu,"
      " \"type\": \"VEC3\"},"
      " {\"bufferView\": 0, \"byteOffset\": 24, \"componentType\": 5126, \"count\": %zu,"
      " \"type\": \"VEC2\"},"
      " {\"bufferView\": 1, \"componentType\": 5125, \"count\": %zu, \"type\": \"SCALAR\"}]}",
      vbytes + ibytes, vbytes, vbytes, ibytes, nv, nv, nv, nt * 3);
  while (jn % 4) json[jn++] = ' ';
  uint32_t hdr[5] = {0x46546C67u, 2, (uint32_t)(12 + 8 + (size_t)jn + 8 + vbytes + ibytes),
                     (uint32_t)jn, 0x4E4F534Au};
  uint32_t bin[2] = {(uint32_t)(vbytes + ibytes), 0x004E4942u};
  snprintf(path, sizeof path, "%s/grid.glb", dir);
  if (!(f = fopen(path, "wb"))) exit(1);
  fwrite(hdr, 4, 5, f), fwrite(json, 1, (size_t)jn, f), fwrite(bin, 4, 2, f);
  fwrite(v, 1, vbytes, f), fwrite(ix, 1, ibytes, f);
  fclose(f);
  free(v), free(ix);
  const char *cam = "\"camera\": {\"position\": [0.5, 0.5, 2], \"look_at\": [0.5, 0.5, 0]}";
  write_file("glb.json", "{%s, \"objects\": [{\"type\": \"gltf\", \"file\": \"grid.glb\"}]}\n",
             cam);
  write_file("ply.json",
             "{%s, \"materials\": {\"m\": {\"type\": \"diffuse\"}}, \"objects\": [{\"type\":"
             " \"mesh\", \"file\": \"grid.ply\", \"material\": \"m\"}]}\n",
             cam);
}

int main(int argc, char **argv) {
  int reps = 3;
  long mesh = 0;
  bool keep = false;
  const char *sizes = "15000,60000";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--sizes") && i + 1 < argc) sizes = argv[++i];
    else if (!strcmp(argv[i], "--mesh") && i + 1 < argc) mesh = atol(argv[++i]);
    else if (!strcmp(argv[i], "--keep")) keep = true;
    else {
      fprintf(stderr, "usage: kiln-bench-load [--reps N] [--sizes N,N,...] [--mesh T [--keep]]\n");
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
  if (mesh > 0) {
    int side = 2;
    while (2L * (side - 1) * (side - 1) < mesh) side++;
    write_grid(side);
    double gc, pc, g = time_load_cpu("glb.json", false, 0, reps, &gc),
                   p = time_load_cpu("ply.json", false, 0, reps, &pc);
    printf("\n%10s %10s %10s %10s %10s   (median of %d, seconds)\n", "triangles", "glb", "ply",
           "glb cpu", "ply cpu", reps);
    printf("%10ld %10.3f %10.3f %10.3f %10.3f\n", 2L * (side - 1) * (side - 1), g, p, gc, pc);
    if (keep) {
      printf("kept: %s/grid.glb, %s/grid.ply\n", dir, dir);
      return 0;
    }
    const char *mnames[] = {"grid.glb", "grid.ply", "glb.json", "ply.json"};
    for (size_t i = 0; i < 4; i++) {
      char p2[256];
      snprintf(p2, sizeof p2, "%s/%s", dir, mnames[i]);
      unlink(p2);
    }
  }
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
