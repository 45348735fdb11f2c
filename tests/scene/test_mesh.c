/* test_mesh.c: OBJ (+MTL) and PLY meshes: what is read, and malformed files (truncated, bad
 * indices, garbage) giving KILN_EPARSE that names the mesh file and line, never a crash. */
#include <math.h>

#include "scene_test_util.h"

/* A scene with one mesh object (file, and an optional material override). */
static int load_mesh(const char *dir, const char *file, bool override, kiln_error_detail *e,
                     kiln_scene **s) {
  char json[1024];
  snprintf(json, sizeof json,
           "{\"camera\": {\"position\": [0, 0, -5], \"look_at\": [0, 0, 0]},\n"
           " \"materials\": {\"m\": {\"type\": \"diffuse\"}},\n"
           " \"objects\": [{\"type\": \"mesh\", \"file\": \"%s\"%s}]}",
           file, override ? ", \"material\": \"m\"" : "");
  return kiln_scene_load_string(json, dir, "mesh.json", e, s);
}

/* Expects file in dir to fail with code at mesh line `line`, message containing frag. */
static void expect_bad(const char *dir, const char *file, const void *text, size_t n, int code,
                       int line, const char *frag) {
  st_write(dir, file, text, n);
  kiln_error_detail e;
  kiln_scene *s = NULL;
  int rc = load_mesh(dir, file, true, &e, &s);
  char buf[2048];
  kiln_error_detail_format(&e, buf, sizeof buf);
  if (rc != code) KT_FAIL("%s: %s, want %s: %s", file, kiln_err_name(rc), kiln_err_name(code), buf);
  KT_TRUE(s == NULL);
  char want[1024];
  snprintf(want, sizeof want, "%s/%s", dir, file);
  if (strcmp(e.file, want) != 0) KT_FAIL("%s: error names '%s': %s", file, e.file, buf);
  if (e.line != line) KT_FAIL("%s: line %d, want %d: %s", file, e.line, line, buf);
  KT_STR_EQ(e.path, "objects[0].file");
  if (!strstr(e.message, frag)) KT_FAIL("%s: message lacks '%s': %s", file, frag, buf);
}

/* OBJ: quads and polygons fan-triangulated, negative indices, v/vt/vn forms, o groups, MTL. */
TEST(obj_read) {
  const char *dir = st_tmpdir();
  st_write(dir, "m.mtl", "newmtl red\nKd 0.5 0.1 0.1\nnewmtl lamp\nKd 0 0 0\nKe 4 4 4\n",
           (size_t)-1);
  st_write(dir, "m.obj",
           "# test\nmtllib m.mtl\no quad\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nvt 1 0\n"
           "vt 1 1\nvt 0 1\nvn 0 0 1\nusemtl red\nf 1/1/1 2/2/1 3/3/1 4/4/1\n"
           "o pent\nv 0 0 1\nv 1 0 1\nv 2 1 1\nv 1 2 1\nv 0 1 1\nusemtl lamp\nf -5 -4 -3 -2 -1\n"
           "o tri\nf 1//1 2//1 3//1\n",
           (size_t)-1);
  kiln_error_detail e;
  kiln_scene *s = NULL;
  int rc = load_mesh(dir, "m.obj", false, &e, &s);
  char buf[2048];
  if (rc) KT_FAIL("%s", kiln_error_detail_format(&e, buf, sizeof buf));
  const kiln__scene *d = st_data(s);
  KT_EQ(d->ntris, 2 + 3 + 1);
  KT_EQ(d->nobjects, 3);
  KT_STR_EQ(d->object_names[0], "quad");
  KT_STR_EQ(d->object_names[1], "pent");
  KT_STR_EQ(d->object_names[2], "tri");
  /* fan: (0,1,2), (0,2,3) of the quad */
  const float want[18] = {0, 0, 0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0};
  for (int i = 0; i < 18; i++) ST_NEAR(d->pos[i], want[i], 0);
  KT_TRUE(d->uv != NULL && d->nrm != NULL);
  ST_NEAR(d->uv[2 * 2 + 0], 1, 0);
  ST_NEAR(d->uv[2 * 2 + 1], 1, 0);
  /* the pentagon: negative indices resolve to its own five vertices, z = 1 */
  for (int t = 2; t < 5; t++)
    for (int k = 0; k < 3; k++) ST_NEAR(d->pos[9 * t + 3 * k + 2], 1, 0);
  ST_NEAR(d->pos[9 * 4 + 6], 0, 0);
  ST_NEAR(d->pos[9 * 4 + 7], 1, 0); /* last fan corner: v 0 1 1 */
  const kiln__material *red = &d->materials[d->tri_material[0]];
  KT_EQ(red->type, KILN__MAT_DIFFUSE);
  ST_NEAR(red->albedo[0], 0.5, 1e-7);
  const kiln__material *lamp = &d->materials[d->tri_material[2]];
  KT_EQ(lamp->type, KILN__MAT_EMISSIVE);
  ST_NEAR(lamp->emission[1], 4, 0);
  /* the last face has no usemtl of its own: it keeps the current one (lamp) */
  KT_EQ(d->tri_material[5], d->tri_material[2]);
  for (size_t t = 0; t < d->ntris; t++) KT_EQ(d->tri_instance[t], d->tri_object[t]);
  kiln_scene_destroy(s);
  st_tmp_cleanup();
}

/* Malformed OBJ files: each a KILN_EPARSE naming the file and line. */
TEST(obj_malformed) {
  const char *dir = st_tmpdir();
  const char *tri = "v 0 0 0\nv 1 0 0\nv 0 1 0\n";
  char text[512];
  snprintf(text, sizeof text, "%sf 1 2 4\n", tri);
  expect_bad(dir, "a.obj", text, (size_t)-1, KILN_EPARSE, 4, "out of range");
  snprintf(text, sizeof text, "%sf -4 -2 -1\n", tri);
  expect_bad(dir, "b.obj", text, (size_t)-1, KILN_EPARSE, 4, "out of range");
  snprintf(text, sizeof text, "%sf 0 1 2\n", tri);
  expect_bad(dir, "c.obj", text, (size_t)-1, KILN_EPARSE, 4, "out of range");
  snprintf(text, sizeof text, "%sf 1 2\n", tri);
  expect_bad(dir, "d.obj", text, (size_t)-1, KILN_EPARSE, 4, "at least 3");
  expect_bad(dir, "e.obj", "v 0 0 0\nv 1 x 0\n", (size_t)-1, KILN_EPARSE, 2, "bad number 2");
  expect_bad(dir, "f.obj", "v 0 0\n", (size_t)-1, KILN_EPARSE, 1, "missing number 3");
  snprintf(text, sizeof text, "%sf 1/9 2 3\n", tri);
  expect_bad(dir, "g.obj", text, (size_t)-1, KILN_EPARSE, 4, "texture index");
  snprintf(text, sizeof text, "%sf 1//1 2 3\n", tri);
  expect_bad(dir, "h.obj", text, (size_t)-1, KILN_EPARSE, 4, "normal index");
  snprintf(text, sizeof text, "%sf 1/1/1/1 2 3\n", tri);
  expect_bad(dir, "i.obj", text, (size_t)-1, KILN_EPARSE, 4, "");
  snprintf(text, sizeof text, "%sf 1 2 99999999999999999999999\n", tri);
  expect_bad(dir, "j.obj", text, (size_t)-1, KILN_EPARSE, 4, "out of range");
  expect_bad(dir, "k.obj", "", 0, KILN_EPARSE, 0, "no faces");
  expect_bad(dir, "l.obj", "v 1 2 3\nv 1 2 3\nv 1e50 0 0\n", (size_t)-1, KILN_EPARSE, 3,
             "bad number 1");
  expect_bad(dir, "m.obj", "\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16, KILN_EPARSE, 3, "NUL byte");
  expect_bad(dir, "n.obj", "hello world\n", (size_t)-1, KILN_EPARSE, 1,
             "unknown statement 'hello'");
  /* truncated in the middle of a face line */
  snprintf(text, sizeof text, "%sf 1 2 3\nf 1 2", tri);
  expect_bad(dir, "o.obj", text, (size_t)-1, KILN_EPARSE, 5, "at least 3");
  /* MTL: missing file (KILN_EIO naming the MTL), a bad line in it, an undefined usemtl */
  snprintf(text, sizeof text, "mtllib nope.mtl\n%sf 1 2 3\n", tri);
  st_write(dir, "p.obj", text, (size_t)-1);
  kiln_error_detail e;
  kiln_scene *s = NULL;
  KT_CODE(load_mesh(dir, "p.obj", true, &e, &s), KILN_EIO);
  KT_STR_CONTAINS(e.file, "nope.mtl");
  st_write(dir, "q.mtl", "newmtl a\nKd 1 zz 1\n", (size_t)-1);
  snprintf(text, sizeof text, "mtllib q.mtl\n%sf 1 2 3\n", tri);
  st_write(dir, "q.obj", text, (size_t)-1);
  KT_CODE(load_mesh(dir, "q.obj", true, &e, &s), KILN_EPARSE);
  KT_STR_CONTAINS(e.file, "q.mtl");
  KT_EQ(e.line, 2);
  snprintf(text, sizeof text, "%susemtl ghost\nf 1 2 3\n", tri);
  st_write(dir, "r.obj", text, (size_t)-1);
  KT_CODE(load_mesh(dir, "r.obj", false, &e, &s), KILN_EPARSE);
  KT_STR_CONTAINS(e.message, "'ghost'");
  KT_STR_CONTAINS(e.file, "r.obj");
  snprintf(text, sizeof text, "%sf 1 2 3\n", tri); /* no usemtl, no override */
  st_write(dir, "s.obj", text, (size_t)-1);
  KT_CODE(load_mesh(dir, "s.obj", false, &e, &s), KILN_EPARSE);
  KT_STR_CONTAINS(e.message, "without a material");
  KT_CODE(load_mesh(dir, "s.obj", true, &e, &s), KILN_OK);
  KT_STR_EQ(kiln_scene_object_name(s, 1), "s.obj"); /* no `o`, no name: the file's name */
  kiln_scene_destroy(s);
  st_tmp_cleanup();
}

/* Every prefix of a valid OBJ file loads or fails cleanly (run under ASan in CI). */
TEST(obj_truncations) {
  const char *dir = st_tmpdir();
  const char *full = "mtllib t.mtl\no a\nv 0 0 0\nv 1 0 0\nv 1 1 0\nvt 0 0\nvn 0 0 1\nusemtl x\n"
                     "f 1/1/1 2/1/1 3/1/1\nf -1 -2 -3\n";
  st_write(dir, "t.mtl", "newmtl x\nKd 0.5 0.5 0.5\nmap_Kd -bm 1 tex.png\n", (size_t)-1);
  size_t n = strlen(full);
  for (size_t k = 0; k <= n; k++) {
    st_write(dir, "t.obj", full, k);
    kiln_error_detail e;
    kiln_scene *s = NULL;
    int rc = load_mesh(dir, "t.obj", true, &e, &s);
    /* a cut inside "mtllib t.mtl" names a missing file: KILN_EIO */
    if (rc != KILN_OK && rc != KILN_EPARSE && rc != KILN_EIO)
      KT_FAIL("prefix %zu: %s: %s", k, kiln_err_name(rc), e.message);
    if (rc == KILN_OK) {
      KT_TRUE(s != NULL);
      kiln_scene_destroy(s);
    } else {
      KT_STR_CONTAINS(e.file, rc == KILN_EIO ? "/t" : "t.obj");
    }
  }
  st_tmp_cleanup();
}

static const char ply_ascii[] =
    "ply\nformat ascii 1.0\ncomment a quad and a triangle\nelement vertex 5\nproperty float x\n"
    "property float y\nproperty float z\nproperty float nx\nproperty float ny\nproperty float nz\n"
    "element face 2\nproperty list uchar int vertex_indices\nend_header\n"
    "0 0 0 0 0 1\n1 0 0 0 0 1\n1 1 0 0 0 1\n0 1 0 0 0 1\n0 0 2 0 0 1\n4 0 1 2 3\n3 0 1 4\n";

/* PLY ascii and binary little-endian give the same triangles. */
TEST(ply_read) {
  const char *dir = st_tmpdir();
  st_write(dir, "a.ply", ply_ascii, (size_t)-1);
  /* the same mesh in binary, with an extra uchar property and an extra element to skip */
  unsigned char bin[1024];
  const char *hdr = "ply\nformat binary_little_endian 1.0\nelement vertex 5\nproperty float x\n"
                    "property float y\nproperty float z\nproperty uchar red\nelement face 2\n"
                    "property list uchar uint vertex_index\nelement edge 1\nproperty int a\n"
                    "property int b\nend_header\n";
  size_t n = strlen(hdr);
  memcpy(bin, hdr, n);
  const float v[5][3] = {{0, 0, 0}, {1, 0, 0}, {1, 1, 0}, {0, 1, 0}, {0, 0, 2}};
  for (int i = 0; i < 5; i++) {
    memcpy(bin + n, v[i], 12), n += 12;
    bin[n++] = 200;
  }
  const uint32_t f0[4] = {0, 1, 2, 3}, f1[3] = {0, 1, 4};
  bin[n++] = 4, memcpy(bin + n, f0, 16), n += 16;
  bin[n++] = 3, memcpy(bin + n, f1, 12), n += 12;
  const int32_t edge[2] = {0, 1};
  memcpy(bin + n, edge, 8), n += 8;
  st_write(dir, "b.ply", bin, n);
  const kiln__scene *d[2];
  kiln_scene *s[2];
  const char *files[2] = {"a.ply", "b.ply"};
  for (int k = 0; k < 2; k++) {
    kiln_error_detail e;
    char buf[2048];
    if (load_mesh(dir, files[k], true, &e, &s[k]))
      KT_FAIL("%s", kiln_error_detail_format(&e, buf, sizeof buf));
    d[k] = st_data(s[k]);
    KT_EQ(d[k]->ntris, 3);
    KT_EQ(d[k]->nobjects, 1);
    KT_STR_EQ(d[k]->object_names[0], files[k]);
  }
  for (int i = 0; i < 27; i++) ST_NEAR(d[0]->pos[i], d[1]->pos[i], 0);
  ST_NEAR(d[0]->pos[9 * 2 + 8], 2, 0);
  KT_TRUE(d[0]->nrm != NULL); /* the ascii file has normals */
  for (int k = 0; k < 2; k++) kiln_scene_destroy(s[k]);
  st_tmp_cleanup();
}

TEST(ply_malformed) {
  const char *dir = st_tmpdir();
  char text[2048];
  /* index out of range: the second face line (line 20) */
  snprintf(text, sizeof text, "%s", ply_ascii);
  char *p = strstr(text, "3 0 1 4");
  p[6] = '5';
  expect_bad(dir, "a.ply", text, (size_t)-1, KILN_EPARSE, 20, "out of range");
  snprintf(text, sizeof text, "%s", ply_ascii);
  p = strstr(text, "3 0 1 4");
  memcpy(p, "3 0 1 -1", 8);
  expect_bad(dir, "b.ply", text, (size_t)-1, KILN_EPARSE, 20, "bad vertex index");
  /* truncated: the last face line missing */
  size_t n = strlen(ply_ascii) - strlen("3 0 1 4\n");
  expect_bad(dir, "c.ply", ply_ascii, n, KILN_EPARSE, 19, "truncated");
  expect_bad(dir, "d.ply", "ply\nformat binary_middle_endian 1.0\nend_header\n", (size_t)-1,
             KILN_EPARSE, 2, "unsupported");
  expect_bad(dir, "e.ply", "plx\n", (size_t)-1, KILN_EPARSE, 1, "not a PLY");
  expect_bad(dir, "f.ply", "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\n",
             (size_t)-1, KILN_EPARSE, 4, "no end_header");
  expect_bad(
      dir, "g.ply",
      "ply\nformat ascii 1.0\nelement vertex 99999999\nproperty float x\nproperty float y\nproperty float z\nend_header\n0 0 0\n",
      (size_t)-1, KILN_EPARSE, 7, "more than the file can hold");
  expect_bad(dir, "h.ply", "ply\nformat ascii 1.0\nelement vertex 1\nproperty quux x\nend_header\n",
             (size_t)-1, KILN_EPARSE, 4, "bad property");
  snprintf(text, sizeof text, "%s", ply_ascii);
  p = strstr(text, "3 0 1 4");
  memcpy(p, "2 0 1  ", 7);
  expect_bad(dir, "i.ply", text, (size_t)-1, KILN_EPARSE, 20, "at least 3");
  snprintf(text, sizeof text, "%s", ply_ascii);
  p = strstr(text, "1 1 0 0 0 1");
  p[2] = 'q';
  expect_bad(dir, "j.ply", text, (size_t)-1, KILN_EPARSE, 16, "bad number");
  /* binary truncated inside the data: line 0, the message says so */
  const char *hdr = "ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\n"
                    "property float y\nproperty float z\nelement face 1\n"
                    "property list uchar int vertex_indices\nend_header\n";
  unsigned char bin[256];
  size_t h = strlen(hdr);
  memcpy(bin, hdr, h);
  memset(bin + h, 0, 36);
  bin[h + 36] = 3;
  int32_t idx[3] = {0, 1, 7};
  memcpy(bin + h + 37, idx, 12);
  expect_bad(dir, "k.ply", bin, h + 37 + 12, KILN_EPARSE, 0, "out of range");
  for (size_t cut = h; cut < h + 37 + 12; cut += 5)
    expect_bad(dir, "l.ply", bin, cut, KILN_EPARSE, 0, "");
  /* garbage: random bytes after a valid-looking start */
  unsigned char junk[600];
  uint32_t x = 12345;
  memcpy(junk, "ply\n", 4);
  for (size_t i = 4; i < sizeof junk; i++)
    x = x * 1103515245u + 12345u, junk[i] = (unsigned char)(x >> 16);
  st_write(dir, "m.ply", junk, sizeof junk);
  kiln_error_detail e;
  kiln_scene *s = NULL;
  KT_CODE(load_mesh(dir, "m.ply", true, &e, &s), KILN_EPARSE);
  KT_STR_CONTAINS(e.file, "m.ply");
  st_tmp_cleanup();
}

/* Random byte mutations of valid OBJ and PLY (ascii and binary) files: each loads or fails with
 * KILN_EPARSE / KILN_EIO naming a file; none crashes (ASan/UBSan in CI). */
TEST(fuzz_meshes) {
  const char *dir = st_tmpdir();
  const char *obj =
      "mtllib z.mtl\no a\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nvt 1 1\nvn 0 0 1\n"
      "usemtl m\nf 1/1/1 2/2/1 3/1/1 4/2/1\nf -1 -2 -3\no b\nf 1//1 3//1 4//1\n";
  st_write(dir, "z.mtl", "newmtl m\nKd 0.5 0.5 0.5\n", (size_t)-1);
  unsigned char bin[512];
  const char *hdr = "ply\nformat binary_little_endian 1.0\nelement vertex 4\nproperty float x\n"
                    "property float y\nproperty float z\nelement face 2\n"
                    "property list uchar int vertex_indices\nend_header\n";
  size_t h = strlen(hdr), nb = h;
  memcpy(bin, hdr, h);
  const float v[12] = {0, 0, 0, 1, 0, 0, 1, 1, 0, 0, 1, 0};
  memcpy(bin + nb, v, sizeof v), nb += sizeof v;
  const int32_t f[6] = {0, 1, 2, 0, 2, 3};
  bin[nb++] = 3, memcpy(bin + nb, f, 12), nb += 12;
  bin[nb++] = 3, memcpy(bin + nb, f + 3, 12), nb += 12;
  const struct {
    const char *name;
    const unsigned char *data;
    size_t n;
  } files[3] = {{"z.obj", (const unsigned char *)obj, strlen(obj)},
                {"z.ply", (const unsigned char *)ply_ascii, strlen(ply_ascii)},
                {"y.ply", bin, nb}};
  static const char alphabet[] = "0123456789-/ .\nfvnte\xff";
  uint32_t x = 88172645u;
  unsigned char buf[1024];
  for (int k = 0; k < 3; k++) {
    for (int iter = 0; iter < 400; iter++) {
      memcpy(buf, files[k].data, files[k].n);
      for (int m = 0; m < 1 + iter % 4; m++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        buf[x % files[k].n] = k == 2 && (x & 1)
                                  ? (unsigned char)(x >> 8)
                                  : (unsigned char)alphabet[(x >> 16) % (sizeof alphabet - 1)];
      }
      st_write(dir, files[k].name, buf, files[k].n);
      kiln_error_detail e;
      kiln_scene *s = NULL;
      int rc = load_mesh(dir, files[k].name, k > 0, &e, &s);
      if (rc == KILN_OK) {
        kiln_scene_destroy(s);
        continue;
      }
      if (rc != KILN_EPARSE && rc != KILN_EIO)
        KT_FAIL("%s mutation %d: %s", files[k].name, iter, kiln_err_name(rc));
      KT_STR_CONTAINS(e.file, dir);
    }
  }
  st_tmp_cleanup();
}
