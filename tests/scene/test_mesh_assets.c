/* test_mesh_assets.c: what real-world OBJ, MTL and PLY files carry beyond geometry: vertex
 * colours (OBJ `v x y z r g b`, PLY red/green/blue), `\` continuations, MTL keys mapped to a
 * principled material as Blender 3.4's importer maps them, warnings (each once, naming the MTL
 * file and line), and PLY in big-endian with extra properties skipped. */
#include <math.h>
#include <stdint.h>

#include "st_images.h"

static int load(const char *dir, const char *file, bool override, kiln_error_detail *e,
                kiln_scene **s) {
  char json[1024];
  snprintf(json, sizeof json,
           "{\"camera\": {\"position\": [0, 0, -5], \"look_at\": [0, 0, 0]},\n"
           " \"objects\": [{\"type\": \"mesh\", \"file\": \"%s\"%s},\n"
           "              {\"type\": \"mesh\", \"file\": \"%s\"%s}]}",
           file, override ? ", \"material\": {\"type\": \"diffuse\"}" : "", file,
           override ? ", \"material\": {\"type\": \"diffuse\"}" : "");
  return kiln_scene_load_string(json, dir, "mesh.json", e, s);
}

static kiln_scene *load_ok(const char *dir, const char *file, bool override) {
  kiln_error_detail e;
  kiln_scene *s = NULL;
  char buf[2048];
  if (load(dir, file, override, &e, &s))
    KT_FAIL("%s", kiln_error_detail_format(&e, buf, sizeof buf));
  return s;
}

/* Expects dir/file (already written) to fail with KILN_EPARSE at file fail_file, line, message
 * containing frag. */
static void expect_fail(const char *dir, const char *file, const char *fail_file, int line,
                        const char *frag) {
  kiln_error_detail e;
  kiln_scene *s = NULL;
  char buf[2048], want[1024];
  int rc = load(dir, file, true, &e, &s);
  kiln_error_detail_format(&e, buf, sizeof buf);
  if (rc != KILN_EPARSE) KT_FAIL("%s: %s: %s", file, kiln_err_name(rc), buf);
  snprintf(want, sizeof want, "%s/%s", dir, fail_file);
  if (strcmp(e.file, want) != 0) KT_FAIL("%s: names '%s': %s", file, e.file, buf);
  if (e.line != line) KT_FAIL("%s: line %d, want %d: %s", file, e.line, line, buf);
  if (!strstr(e.message, frag)) KT_FAIL("%s: message lacks '%s': %s", file, frag, buf);
}

static float srgb(float x) {
  return x <= 0.04045f ? x / 12.92f : powf((x + 0.055f) / 1.055f, 2.4f);
}

/* OBJ colours: 6 numbers an sRGB colour, 7 one and an ignored alpha, 4 a weight; uncoloured
 * vertices white; the linear values reach the scene's per-corner colours exactly. */
TEST(obj_vertex_colours) {
  const char *dir = st_tmpdir();
  st_write(dir, "c.obj",
           "v 0 0 0 0.5 0.25 1\nv 1 0 0 0 1 0 0.5\nv 0 1 0 1\nv 1 1 0\n"
           "f 1 2 3\nf 2 4 3\n",
           (size_t)-1);
  kiln_scene *s = load_ok(dir, "c.obj", true);
  const kiln__scene *d = st_data(s);
  KT_EQ(d->ntris, 4); /* two objects */
  KT_TRUE(d->col != NULL);
  const float want[2][9] = {{srgb(0.5f), srgb(0.25f), 1, 0, 1, 0, 1, 1, 1},
                            {0, 1, 0, 1, 1, 1, 1, 1, 1}};
  for (int o = 0; o < 2; o++)
    for (int t = 0; t < 2; t++)
      for (int i = 0; i < 9; i++)
        if (d->col[9 * (2 * o + t) + i] != want[t][i])
          KT_FAIL("triangle %d col[%d] = %.9g, want %.9g", 2 * o + t, i,
                  (double)d->col[9 * (2 * o + t) + i], (double)want[t][i]);
  ST_NEAR(d->col[0], 0.214041144, 1e-7); /* sRGB 0.5 */
  kiln_scene_destroy(s);
  /* without colours, no colour array */
  st_write(dir, "w.obj", "v 0 0 0 1\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", (size_t)-1);
  s = load_ok(dir, "w.obj", true);
  KT_TRUE(st_data(s)->col == NULL);
  kiln_scene_destroy(s);
  /* errors: a colour outside [0, 1] (0..255 is not OBJ's), 5 numbers, 8 numbers */
  st_write(dir, "e1.obj", "v 0 0 0\nv 1 0 0 255 0 0\nv 0 1 0\nf 1 2 3\n", (size_t)-1);
  expect_fail(dir, "e1.obj", "e1.obj", 2, "colour component 1 is 255");
  st_write(dir, "e2.obj", "v 0 0 0 1 1\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", (size_t)-1);
  expect_fail(dir, "e2.obj", "e2.obj", 1, "5 numbers");
  st_write(dir, "e3.obj", "v 0 0 0 1 1 1 1 1\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", (size_t)-1);
  expect_fail(dir, "e3.obj", "e3.obj", 1, "too many numbers");
  st_tmp_cleanup();
}

/* `\` at the end of a line continues the statement (LF and CRLF, OBJ and MTL); messages name the
 * statement's first line and later lines keep their numbers. */
TEST(obj_continuations) {
  const char *dir = st_tmpdir();
  st_write(dir, "k.mtl", "newmtl a\nKd 0.25 \\\n 0.5 \\\r\n 0.75\n", (size_t)-1);
  st_write(dir, "k.obj",
           "mtllib k.mtl\nv 0 0 \\\n0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nusemtl a\nf 1 2 \\\r\n3 \\\n4\n"
           "# a comment \\\nf 1 2 3 4 5 6\n",
           (size_t)-1);
  kiln_scene *s = load_ok(dir, "k.obj", false);
  const kiln__scene *d = st_data(s);
  KT_EQ(d->ntris, 4); /* the quad, twice; the commented-out face is not there */
  const kiln__material *m = &d->materials[d->tri_material[0]];
  KT_EQ(m->type, KILN__MAT_DIFFUSE);
  ST_NEAR(m->albedo[0], 0.25, 0);
  ST_NEAR(m->albedo[1], 0.5, 0);
  ST_NEAR(m->albedo[2], 0.75, 0);
  ST_NEAR(d->pos[9 + 6], 1, 0); /* second triangle's last corner: v 1 1 0 */
  kiln_scene_destroy(s);
  st_write(dir, "l.obj", "v 0 0 \\\n0\nv 1 0 \\\n0\nv 0 1 0\nf 1 2 \\\n 3\nf 1 2 9\n", (size_t)-1);
  expect_fail(dir, "l.obj", "l.obj", 8, "out of range");
  st_write(dir, "m.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 \\\n 9\n", (size_t)-1);
  expect_fail(dir, "m.obj", "m.obj", 4, "out of range");
  st_tmp_cleanup();
}

static const kiln__material *mat_named(const kiln__scene *d, const char *name) {
  for (size_t i = 0; i < d->nmaterials; i++)
    if (d->materials[i].name && strcmp(d->materials[i].name, name) == 0) return &d->materials[i];
  KT_FAIL("no material '%s'", name);
  return NULL;
}

static void write_png(const char *dir, const char *name, int w, int h, int ch,
                      const unsigned char *px) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  if (!stbi_write_png(path, w, h, ch, px, w * ch)) KT_FAIL("stbi_write_png %s", path);
}

static const char mtl_text[] =
    "newmtl A\nKd 0.5 0.4 0.3\nKs 0.5 0.5 0.5\nNs 250\nd 1\nillum 2\nNi 1.45\n"
    "newmtl B\nKd 0.5 0.4 0.3\nKa 0.3 0.3 0.3\nillum 3\nPr 0.3\n"
    "newmtl C\nKd 0.2 0.3 0.4\nmap_Kd c.png\n"
    "newmtl H\nKd 0.2 0.3 0.4\nmap_Kd -s 2 2 c.png\n"
    "newmtl D\nKd 0 0 0\nKe 2 3 4\n"
    "newmtl F\nKa 0 0 0\nKd 0.1 0.2 0.3\nKs 0 0 0\nNi 1\nNs 0\nd 1\nillum 1\nKe 0 0 0\n"
    /* as Blender 3.4 exports a Principled BSDF (metallic 0.7, roughness 0.3, textured colour) */
    "newmtl G\nNs 490.000000\nKa 0.700000 0.700000 0.700000\nKs 0.500000 0.500000 0.500000\n"
    "Ke 0.000000 0.000000 0.000000\nNi 1.450000\nd 1.000000\nillum 3\nmap_Kd c.png\n"
    "newmtl E\nTr 0.75\nPm 0.6\nKs 1 1 1\nillum 2\n"
    "newmtl T\nKd 1 1 1\nmap_Kd -o 0.1 0.2 -s 2 3 c.png\nmap_Pr -o 0.1 0.2 -s 2 3 r.png\n"
    "map_Pm -s 2 3 -o 0.1 0.2 m.png\nmap_d -o 0.1 0.2 -s 2 3 1 a.png\n"
    "bump -bm 0.4 -o 0.1 0.2 0 -s 2 3 n.png\nmap_Ke -o 0.1 0.2 -s 2 3 c.png\n";

/* Each MTL key reaches the principled material's fields as Blender 3.4's importer sets its
 * Principled BSDF (numbers read off `blender -b` imports of these materials); Kd / Ke / map_Kd
 * alone stay diffuse / emissive. */
TEST(mtl_principled_mapping) {
  const char *dir = st_tmpdir();
  st_write(dir, "p.mtl", mtl_text, (size_t)-1);
  const unsigned char c[6] = {200, 100, 50, 10, 20, 30}, r[2] = {51, 204}, m[1] = {255},
                      n[3] = {128, 128, 255}, a[8] = {255, 0, 0, 64, 0, 0, 0, 192};
  write_png(dir, "c.png", 2, 1, 3, c);
  write_png(dir, "r.png", 2, 1, 1, r);
  write_png(dir, "m.png", 1, 1, 1, m);
  write_png(dir, "n.png", 1, 1, 3, n);
  write_png(dir, "a.png", 2, 1, 4, a);
  st_write(dir, "p.obj",
           "mtllib p.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nusemtl A\nf 1 2 3\nusemtl B\nf 1 2 3\n"
           "usemtl C\nf 1 2 3\nusemtl D\nf 1 2 3\nusemtl F\nf 1 2 3\nusemtl G\nf 1 2 3\n"
           "usemtl H\nf 1 2 3\nusemtl E\nf 1 2 3\nusemtl T\nf 1/1 2/1 3/1\n",
           (size_t)-1);
  kiln_scene *s = load_ok(dir, "p.obj", false);
  const kiln__scene *d = st_data(s);
  const float id[6] = {1, 0, 0, 0, 1, 0};
  /* A: Specular 0.5 (Ks) is F0 0.04, ior 1.5; Ns 250: roughness 1 - sqrt(0.25); Ni not used */
  const kiln__material *A = mat_named(d, "A");
  KT_EQ(A->type, KILN__MAT_PRINCIPLED);
  ST_NEAR(A->albedo[0], 0.5, 0);
  ST_NEAR(A->albedo[2], 0.3, 1e-7);
  ST_NEAR(A->ior, 1.5, 1e-5);
  ST_NEAR(A->roughness, 0.5, 1e-6);
  ST_NEAR(A->metallic, 0, 0);
  ST_NEAR(A->alpha, 1, 0);
  ST_NEAR(A->alpha_cutoff, 0, 0);
  KT_EQ(A->texture, -1);
  KT_EQ(A->mr_texture, -1);
  KT_EQ(A->normal_texture, -1);
  KT_EQ(A->emission_texture, -1);
  KT_EQ(A->alpha_texture, -1);
  for (int i = 0; i < 6; i++) ST_NEAR(A->uv_xform[i], id[i], 0);
  /* B: illum 3 takes metallic from Ka, Pr is the roughness, no Ks without illum 2: Specular 0 */
  const kiln__material *B = mat_named(d, "B");
  KT_EQ(B->type, KILN__MAT_PRINCIPLED);
  ST_NEAR(B->metallic, 0.3, 1e-6);
  ST_NEAR(B->roughness, 0.3, 1e-6);
  ST_NEAR(B->ior, 1, 0);
  /* C and D: as before this reader knew more keys */
  const kiln__material *C = mat_named(d, "C"), *D = mat_named(d, "D");
  KT_EQ(C->type, KILN__MAT_DIFFUSE);
  ST_NEAR(C->albedo[1], 0.3, 1e-7);
  KT_TRUE(C->texture >= 0);
  KT_EQ(D->type, KILN__MAT_EMISSIVE);
  ST_NEAR(D->emission[2], 4, 0);
  /* F (the Cornell box's form): no specular, metallic or cut-out, so diffuse, as before */
  const kiln__material *F = mat_named(d, "F");
  KT_EQ(F->type, KILN__MAT_DIFFUSE);
  ST_NEAR(F->albedo[2], 0.3, 1e-7);
  /* G: Blender's own export reads back as it was: metallic (Ka, illum 3), roughness (Ns 490),
   * specular 0.5; no Kd beside map_Kd: the texture alone */
  const kiln__material *G = mat_named(d, "G");
  KT_EQ(G->type, KILN__MAT_PRINCIPLED);
  ST_NEAR(G->metallic, 0.7, 1e-6);
  ST_NEAR(G->roughness, 0.3, 1e-6);
  ST_NEAR(G->ior, 1.5, 1e-5);
  for (int i = 0; i < 3; i++) ST_NEAR(G->albedo[i], 1, 0);
  /* the same image: decoded per texel for the diffuse C, kept encoded (decoded after filtering,
   * as Cycles does) for the principled G */
  KT_TRUE(G->texture != C->texture && d->textures[G->texture].srgb && !d->textures[C->texture].srgb);
  /* H: a map_Kd with -s needs the uv transform only principled materials have */
  const kiln__material *H = mat_named(d, "H");
  KT_EQ(H->type, KILN__MAT_PRINCIPLED);
  ST_NEAR(H->uv_xform[4], 2, 0);
  ST_NEAR(H->albedo[2], 0.4, 1e-7);
  ST_NEAR(H->metallic, 0, 0);
  ST_NEAR(H->ior, 1, 0); /* no specular: the diffuse lobe alone */
  /* E: Tr is 1 - d, a cut-out at 0.5; Pm; Ks 1 is Specular 1, F0 0.08; no Ns with illum 2: 0 */
  const kiln__material *E = mat_named(d, "E");
  ST_NEAR(E->alpha, 0.25, 0);
  ST_NEAR(E->alpha_cutoff, 0.5, 0);
  ST_NEAR(E->metallic, 0.6, 1e-6);
  ST_NEAR(E->roughness, 0, 0);
  ST_NEAR(E->ior, (1 + sqrt(0.08)) / (1 - sqrt(0.08)), 1e-5);
  ST_NEAR(E->albedo[0], 0.8, 1e-7); /* Kd's default */
  /* T: every map, the shared uv transform from -o / -s */
  const kiln__material *T = mat_named(d, "T");
  KT_EQ(T->type, KILN__MAT_PRINCIPLED);
  const float xf[6] = {2, 0, 0.1f, 0, 3, 0.2f};
  for (int i = 0; i < 6; i++) ST_NEAR(T->uv_xform[i], xf[i], 0);
  KT_TRUE(T->texture >= 0 && T->texture == G->texture); /* c.png kept encoded, loaded once */
  KT_EQ(T->emission_texture, T->texture);
  for (int i = 0; i < 3; i++) ST_NEAR(T->emission[i], 1, 0); /* the map replaces Ke */
  const kiln__texture *tc = &d->textures[T->texture];
  ST_NEAR(tc->rgb[0], 200 / 255.0f, 1e-6); /* decoded after filtering, in the shader */
  KT_TRUE(tc->srgb);
  ST_NEAR(T->normal_scale, 0.4, 1e-7);
  const kiln__texture *tn = &d->textures[T->normal_texture];
  ST_NEAR(tn->rgb[0], 128 / 255.0f, 1e-7); /* linear */
  ST_NEAR(tn->rgb[2], 1, 0);
  /* map_d: the image's alpha channel, a cut-out at 0.5 */
  ST_NEAR(T->alpha_cutoff, 0.5, 0);
  const kiln__texture *ta = &d->textures[T->alpha_texture];
  KT_EQ(ta->width, 2);
  ST_NEAR(ta->rgb[0], 64 / 255.0f, 1e-7);
  ST_NEAR(ta->rgb[3], 192 / 255.0f, 1e-7);
  /* map_Pr and map_Pm packed: G roughness (linear grey), B metallic on the roughness map's grid;
   * the maps replace the constants */
  ST_NEAR(T->roughness, 1, 0);
  ST_NEAR(T->metallic, 1, 0);
  const kiln__texture *mr = &d->textures[T->mr_texture];
  KT_EQ(mr->width, 2);
  KT_EQ(mr->height, 1);
  ST_NEAR(mr->rgb[1], 51 / 255.0f, 1e-6);
  ST_NEAR(mr->rgb[4], 204 / 255.0f, 1e-6);
  ST_NEAR(mr->rgb[2], 1, 1e-6);
  ST_NEAR(mr->rgb[5], 1, 1e-6);
  KT_EQ(kiln_scene_warning_count(s), 2); /* d 0.25 (from Tr) and map_d: no blending */
  kiln_scene_destroy(s);
  st_tmp_cleanup();
}

/* What kiln does not render is a warning naming the MTL file and line, each once however many
 * objects use the material; a material the scene overrides says nothing. */
TEST(mtl_warnings) {
  const char *dir = st_tmpdir();
  write_png(dir, "c.png", 1, 1, 3, (const unsigned char[]){1, 2, 3});
  st_write(dir, "w.mtl",
           "newmtl W\nKd 0.5 0.5 0.5\nmap_Ks s.png\nmap_Kd -clamp on -mm 0 1 -blendu off c.png\n"
           "Ps 0.2\nillum 7\nfoo 1 2\nmap_Kd -bm 2 -clamp off c.png\nmap_Ke -s 2 2 c.png\n",
           (size_t)-1);
  st_write(dir, "w.obj", "mtllib w.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nusemtl W\nf 1 2 3\n",
           (size_t)-1);
  kiln_scene *s = load_ok(dir, "w.obj", false);
  char mtl[1024];
  snprintf(mtl, sizeof mtl, "%s/w.mtl", dir);
  const char *want[] = {
      ":3: map_Ks is not rendered by kiln: ignored",
      ":4: map_Kd: -clamp on is not rendered (kiln's textures repeat and blend)",
      ":4: map_Kd: option -mm is not rendered: ignored",
      ":4: map_Kd: -blendu off is not rendered (kiln's textures repeat and blend)",
      ":5: Ps is not rendered by kiln: ignored",
      ":6: illum 7 (transparency, refraction): kiln renders it opaque",
      ":7: unknown statement 'foo': ignored",
      ":8: map_Kd: -bm applies to bump maps only: ignored",
      ":9: map_Ke: its -o / -s differ from another map's of 'W'"};
  size_t nw = sizeof want / sizeof want[0];
  if (kiln_scene_warning_count(s) != nw) {
    for (size_t i = 0; i < kiln_scene_warning_count(s); i++)
      fprintf(stderr, "  %s\n", kiln_scene_warning(s, i));
    KT_FAIL("%zu warnings, want %zu", kiln_scene_warning_count(s), nw);
  }
  for (size_t i = 0; i < nw; i++) {
    char w[1200];
    snprintf(w, sizeof w, "%s%s", mtl, want[i]);
    const char *got = kiln_scene_warning(s, i);
    if (strncmp(got, w, strlen(w)) != 0) KT_FAIL("warning %zu: '%s', want '%s...'", i, got, w);
  }
  KT_TRUE(kiln_scene_warning(s, nw) == NULL);
  const kiln__material *W = mat_named(st_data(s), "W");
  KT_EQ(W->type, KILN__MAT_PRINCIPLED); /* illum */
  ST_NEAR(W->uv_xform[0], 1, 0);        /* map_Kd's transform, the first map's */
  kiln_scene_destroy(s);
  s = load_ok(dir, "w.obj", true);
  KT_EQ(kiln_scene_warning_count(s), 0);
  kiln_scene_destroy(s);
  /* malformed keys are errors, at their line */
  st_write(dir, "x.mtl", "newmtl X\nKs 0.5 0.5\n", (size_t)-1);
  st_write(dir, "x.obj", "mtllib x.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", (size_t)-1);
  expect_fail(dir, "x.obj", "x.mtl", 2, "Ks: missing number 3");
  st_write(dir, "x.mtl", "newmtl X\nd 1.5\n", (size_t)-1);
  expect_fail(dir, "x.obj", "x.mtl", 2, "d must be in [0, 1], not 1.5");
  st_write(dir, "x.mtl", "newmtl X\nmap_Kd -o c.png\n", (size_t)-1);
  expect_fail(dir, "x.obj", "x.mtl", 2, "-o needs a number");
  st_write(dir, "x.mtl", "newmtl X\nillum 2.5\n", (size_t)-1);
  expect_fail(dir, "x.obj", "x.mtl", 2, "whole number");
  st_tmp_cleanup();
}

/* ---- PLY ---------------------------------------------------------------------------------- */

typedef struct wbuf {
  unsigned char b[2048];
  size_t n;
  int fmt; /* 0 ascii, 1 little-endian, 2 big-endian */
} wbuf;

static void put_bytes(wbuf *w, const unsigned char *le, size_t k) {
  for (size_t i = 0; i < k; i++) w->b[w->n + i] = le[w->fmt == 2 ? k - 1 - i : i];
  w->n += k;
}

static void put_int(wbuf *w, int64_t v, size_t k) {
  if (!w->fmt) {
    w->n += (size_t)snprintf((char *)w->b + w->n, sizeof w->b - w->n, "%lld ", (long long)v);
    return;
  }
  unsigned char le[8];
  for (size_t i = 0; i < k; i++) le[i] = (unsigned char)((uint64_t)v >> (8 * i));
  put_bytes(w, le, k);
}

static void put_f32(wbuf *w, float v) {
  if (!w->fmt) {
    w->n += (size_t)snprintf((char *)w->b + w->n, sizeof w->b - w->n, "%.9g ", (double)v);
    return;
  }
  uint32_t u;
  memcpy(&u, &v, 4);
  put_int(w, u, 4);
}

static void put_f64(wbuf *w, double v) {
  if (!w->fmt) {
    w->n += (size_t)snprintf((char *)w->b + w->n, sizeof w->b - w->n, "%.17g ", v);
    return;
  }
  uint64_t u;
  memcpy(&u, &v, 8);
  put_int(w, (int64_t)u, 8);
}

static void put_eol(wbuf *w) {
  if (!w->fmt) w->b[w->n++] = '\n';
}

static const char ply_header[] =
    "element vertex 4\nproperty float x\nproperty float y\nproperty float z\n"
    "property uchar red\nproperty uchar green\nproperty uchar blue\nproperty uchar alpha\n"
    "property list uchar float extra\nproperty double quality\n"
    "element face 2\nproperty uchar flags\nproperty list ushort short vertex_index\n"
    "property list uchar float texcoord\n"
    "element material 1\nproperty int a\nproperty list uchar int b\nend_header\n";

/* One mesh in PLY format fmt: four coloured vertices with extra scalar and list properties, a
 * quad and a triangle as `vertex_index` (ushort count, short indices), an extra element. */
static size_t write_ply(const char *dir, const char *name, int fmt) {
  static const char *const fmts[] = {"ascii", "binary_little_endian", "binary_big_endian"};
  wbuf w = {.fmt = fmt};
  w.n = (size_t)snprintf((char *)w.b, sizeof w.b, "ply\nformat %s 1.0\ncomment x\n%s", fmts[fmt],
                         ply_header);
  const float v[4][3] = {{0, 0, 0}, {1, 0, 0}, {1, 1, 0}, {0, 0.5f, 0.25f}};
  const int rgba[4][4] = {{255, 0, 128, 7}, {0, 255, 64, 8}, {10, 20, 30, 9}, {1, 2, 3, 4}};
  for (int i = 0; i < 4; i++) {
    for (int k = 0; k < 3; k++) put_f32(&w, v[i][k]);
    for (int k = 0; k < 4; k++) put_int(&w, rgba[i][k], 1);
    put_int(&w, i % 3, 1);
    for (int k = 0; k < i % 3; k++) put_f32(&w, 0.5f * (float)k);
    put_f64(&w, 0.125 * i);
    put_eol(&w);
  }
  put_int(&w, 3, 1), put_int(&w, 4, 2);
  for (int k = 0; k < 4; k++) put_int(&w, k, 2);
  put_int(&w, 2, 1), put_f32(&w, 0.5f), put_f32(&w, 0.25f), put_eol(&w);
  put_int(&w, 0, 1), put_int(&w, 3, 2), put_int(&w, 0, 2), put_int(&w, 2, 2), put_int(&w, 3, 2);
  put_int(&w, 0, 1), put_eol(&w);
  put_int(&w, -5, 4), put_int(&w, 1, 1), put_int(&w, 6, 4), put_eol(&w);
  st_write(dir, name, w.b, w.n);
  return w.n;
}

/* PLY colours (uchar / 255, sRGB-decoded as Blender's importer takes them) reach the scene's
 * colours; ascii, little- and big-endian give the same scene; extra properties and elements are
 * skipped. */
TEST(ply_colours_endianness) {
  const char *dir = st_tmpdir();
  const char *files[3] = {"a.ply", "le.ply", "be.ply"};
  kiln_scene *s[3];
  for (int f = 0; f < 3; f++) {
    write_ply(dir, files[f], f);
    s[f] = load_ok(dir, files[f], true);
  }
  const kiln__scene *d = st_data(s[0]);
  KT_EQ(d->ntris, 2 * 3);
  KT_TRUE(d->col != NULL);
  /* the triangle 0 2 3's colours */
  const float want[9] = {srgb(1),           srgb(0),           srgb(128 / 255.0f),
                         srgb(10 / 255.0f), srgb(20 / 255.0f), srgb(30 / 255.0f),
                         srgb(1 / 255.0f),  srgb(2 / 255.0f),  srgb(3 / 255.0f)};
  for (int i = 0; i < 9; i++)
    if (d->col[18 + i] != want[i])
      KT_FAIL("col[%d] = %.9g, want %.9g", 18 + i, (double)d->col[18 + i], (double)want[i]);
  ST_NEAR(d->pos[18 + 7], 0.5, 0); /* its third corner: vertex 3 */
  for (int f = 1; f < 3; f++) {
    const kiln__scene *e = st_data(s[f]);
    KT_EQ(e->ntris, d->ntris);
    KT_TRUE(memcmp(e->pos, d->pos, d->ntris * 9 * sizeof(float)) == 0);
    KT_TRUE(memcmp(e->col, d->col, d->ntris * 9 * sizeof(float)) == 0);
  }
  for (int f = 0; f < 3; f++) kiln_scene_destroy(s[f]);
  /* float colours are taken as they are, in [0, 1] */
  st_write(dir, "f.ply",
           "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
           "property float z\nproperty float red\nproperty float green\nproperty float blue\n"
           "element face 1\nproperty list uchar int vertex_indices\nend_header\n"
           "0 0 0 0.5 0.25 1\n1 0 0 0 1 0.04\n0 1 0 0.8 0.4 0.2\n3 0 1 2\n",
           (size_t)-1);
  kiln_scene *sf = load_ok(dir, "f.ply", true);
  ST_NEAR(st_data(sf)->col[0], srgb(0.5f), 0);
  ST_NEAR(st_data(sf)->col[5], srgb(0.04f), 0);
  kiln_scene_destroy(sf);
  st_tmp_cleanup();
}

/* Colour errors and truncations of the big-endian file: located, never a crash. */
TEST(ply_assets_malformed) {
  const char *dir = st_tmpdir();
  const char *hdr = "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
                    "property float z\nproperty %s red\nproperty %s green\nproperty %s blue\n"
                    "element face 1\nproperty list uchar int vertex_indices\nend_header\n"
                    "0 0 0 0.5 0.25 1\n1 0 0 0 1 %s\n0 1 0 0.8 0.4 0.2\n3 0 1 2\n";
  char text[1024];
  snprintf(text, sizeof text, hdr, "float", "float", "float", "1.5");
  st_write(dir, "a.ply", text, (size_t)-1);
  expect_fail(dir, "a.ply", "a.ply", 14, "colour component blue is 1.5");
  snprintf(text, sizeof text, hdr, "int", "int", "int", "1");
  st_write(dir, "b.ply", text, (size_t)-1);
  expect_fail(dir, "b.ply", "b.ply", 12, "a colour is uchar, ushort, float or double");
  size_t n = write_ply(dir, "be.ply", 2);
  char path[1024];
  snprintf(path, sizeof path, "%s/be.ply", dir);
  size_t len;
  char *be = st_read_file(path, &len);
  KT_EQ(len, n);
  size_t body = (size_t)(strstr(be, "end_header\n") - be) + strlen("end_header\n");
  for (size_t cut = body; cut < n; cut += 3) {
    st_write(dir, "cut.ply", be, cut);
    expect_fail(dir, "cut.ply", "cut.ply", 0, "");
  }
  /* a count that lies: more faces than the file holds */
  char *p = strstr(be, "element face 2");
  p[13] = '9';
  st_write(dir, "lie.ply", be, n);
  expect_fail(dir, "lie.ply", "lie.ply", 0, "");
  free(be);
  st_tmp_cleanup();
}
