/* test_gltf.c: glTF 2.0 files (engine/scene/gltf.cpp), as whole scenes and as objects of a JSON
 * scene: geometry (hierarchy, instancing, interleaving, normalised and sparse accessors, the uv
 * flip, colours, tangents), materials, camera and lights; and every malformed file giving a
 * located error (file, JSON path, line) and no scene. The files are written by
 * data/gltf/make.py (committed with what it wrote). */
#include <math.h>
#include <stdio.h>

#include "kiln/batch.h"
#include "scene_test_util.h"

static const char *data_path(const char *name) {
  static char p[2200];
  snprintf(p, sizeof p, "%s/data/gltf/%s", st_src_dir(), name);
  return p;
}

static kiln_scene *load_ok(const char *name) {
  kiln_error_detail e;
  kiln_scene *s = NULL;
  char buf[2048];
  int rc = kiln_scene_load(data_path(name), &e, &s);
  if (rc) KT_FAIL("%s: %s", name, kiln_error_detail_format(&e, buf, sizeof buf));
  return s;
}

static void vec_near(const float *got, double x, double y, double z, double tol) {
  ST_NEAR(got[0], x, tol);
  ST_NEAR(got[1], y, tol);
  ST_NEAR(got[2], z, tol);
}

static bool has_warning(const kiln_scene *s, const char *frag) {
  for (size_t i = 0; i < kiln_scene_warning_count(s); i++)
    if (strstr(kiln_scene_warning(s, i), frag)) return true;
  return false;
}

/* The hierarchy (TRS and matrix), one object per mesh node, the sparse and interleaved mesh. */
TEST(gltf_geometry) {
  kiln_scene *s = load_ok("scene.gltf");
  const kiln__scene *d = st_data(s);
  KT_EQ(d->ntris, 2 + 2 + 1); /* a and b share the quad; t is one triangle; "unused" is not in
                                 the default scene */
  KT_EQ(d->nobjects, 6);      /* a, b, t, then the three lights */
  KT_STR_EQ(d->object_names[0], "a");
  KT_STR_EQ(d->object_names[1], "b");
  KT_STR_EQ(d->object_names[2], "t");
  KT_STR_EQ(d->object_names[3], "lamp");
  /* a: root's translate (10, 0, 0) times its scale 2 */
  vec_near(d->pos + 0, 10, 0, 0, 1e-6);
  vec_near(d->pos + 3, 12, 0, 0, 1e-6);
  vec_near(d->pos + 6, 12, 2, 0, 1e-6);
  KT_EQ(d->tri_object[0], 1);
  /* b: root's translate times its column-major matrix translate (0, 0, 5) */
  vec_near(d->pos + 18 + 3, 11, 0, 5, 1e-6);
  KT_EQ(d->tri_object[2], 2);
  /* t: 90 degrees about z; its POSITION is interleaved with NORMAL (stride 24) and sparse
   * (vertex 2 moved to (0, 2, 0), then turned to (-2, 0, 0)) */
  vec_near(d->pos + 36 + 3, 0, 1, 0, 1e-6);
  vec_near(d->pos + 36 + 6, -2, 0, 0, 1e-6);
  vec_near(d->nrm + 36, 0, 0, 1, 1e-6);
  KT_EQ(d->tri_object[4], 3);
  /* the instance table: one instance per mesh node, object space the mesh's */
  KT_EQ(d->ninstances, 3);
  KT_EQ(d->instances[0].object_id, 1);
  ST_NEAR(d->instances[0].xform[0], 2, 1e-6);
  ST_NEAR(d->instances[0].xform[3], 10, 1e-6);
  vec_near(d->instances[0].bbox_max, 1, 1, 0, 0);
  vec_near(d->instances[2].bbox_max, 1, 2, 0, 0); /* the sparse vertex counts */
  kiln_scene_destroy(s);
}

/* uv (glTF's v down, kiln's up), normalised u16 uv, vertex colours, tangents. */
TEST(gltf_attributes) {
  kiln_scene *s = load_ok("scene.gltf");
  const kiln__scene *d = st_data(s);
  KT_TRUE(d->uv && d->col && d->tan);
  /* quad vertices 0, 1, 2 have glTF uv (0, 0), (1, 0), (1, 1): v flipped */
  ST_NEAR(d->uv[0], 0, 0);
  ST_NEAR(d->uv[1], 1, 0);
  ST_NEAR(d->uv[2], 1, 0);
  ST_NEAR(d->uv[3], 1, 0);
  ST_NEAR(d->uv[4], 1, 0);
  ST_NEAR(d->uv[5], 0, 0);
  /* t's uv: normalised u16 (0, 0), (1, 0), (0, 1) */
  ST_NEAR(d->uv[24 + 1], 1, 0);
  ST_NEAR(d->uv[24 + 2], 1, 0);
  ST_NEAR(d->uv[24 + 5], 0, 0);
  /* COLOR_0, normalised bytes: red, green, blue; t has none (white) */
  vec_near(d->col + 0, 1, 0, 0, 0);
  vec_near(d->col + 3, 0, 1, 0, 0);
  vec_near(d->col + 6, 0, 0, 1, 0);
  vec_near(d->col + 36, 1, 1, 1, 0);
  /* TANGENT (1, 0, 0, +1), through a's scale 2: still unit */
  vec_near(d->tan + 0, 1, 0, 0, 1e-6);
  ST_NEAR(d->tan[3], 1, 0);
  kiln_scene_destroy(s);
}

/* The first camera node of the scene; lights converted as Blender's importer does. */
TEST(gltf_camera_lights) {
  kiln_scene *s = load_ok("scene.gltf");
  const kiln__scene *d = st_data(s);
  vec_near(d->camera.position, 0, 0, 10, 1e-6);
  vec_near(d->camera.look_at, 0, 0, 9, 1e-6);
  vec_near(d->camera.up, 0, 1, 0, 1e-6);
  ST_NEAR(d->camera.vfov_deg, 30, 1e-4);
  KT_EQ(d->settings.width, 256); /* the defaults: aspectRatio is not used */
  KT_EQ(d->nplights, 3);
  const kiln__plight *p = &d->plights[0], *sp = &d->plights[1], *sun = &d->plights[2];
  /* 100 cd -> 100 * 4 pi / 683 W -> W / (4 pi^2) */
  const double k = 100 / (683 * 3.14159265358979);
  KT_EQ(p->type, KILN__LIGHT_POINT);
  vec_near(p->position, 0, 5, 0, 1e-6);
  vec_near(p->color, k, k * 0.5, k * 0.25, 1e-6);
  KT_EQ(p->object_id, 4);
  KT_EQ(sp->type, KILN__LIGHT_SPOT);
  vec_near(sp->direction, 0, -1, 0, 1e-6);
  ST_NEAR(sp->cos_inner, cos(0.25), 1e-6);
  ST_NEAR(sp->cos_outer, cos(0.5), 1e-6);
  ST_NEAR(sp->color[0], k / 2, 1e-6);
  KT_EQ(sun->type, KILN__LIGHT_SUN);
  vec_near(sun->direction, 0, 0, -1, 1e-6);
  vec_near(sun->color, 1, 1, 1, 1e-6); /* 683 lux */
  /* lights given: the environment is left black */
  vec_near(d->env.color, 0, 0, 0, 0);
  kiln_scene_destroy(s);
}

/* The same file as .glb and with an external buffer gives the same scene. */
TEST(gltf_glb_and_external_buffer) {
  kiln_scene *a = load_ok("scene.gltf"), *b = load_ok("scene.glb"), *c = load_ok("external.gltf");
  const kiln__scene *da = st_data(a), *db = st_data(b), *dc = st_data(c);
  KT_EQ(db->ntris, da->ntris);
  KT_EQ(dc->ntris, da->ntris);
  KT_TRUE(memcmp(da->pos, db->pos, da->ntris * 9 * sizeof(float)) == 0);
  KT_TRUE(memcmp(da->pos, dc->pos, da->ntris * 9 * sizeof(float)) == 0);
  KT_TRUE(memcmp(da->uv, db->uv, da->ntris * 6 * sizeof(float)) == 0);
  KT_EQ(db->nplights, 3);
  kiln_scene_destroy(a), kiln_scene_destroy(b), kiln_scene_destroy(c);
}

static float texel(const kiln__texture *t, int x, int y, int c) {
  return t->rgb[((size_t)y * (size_t)t->width + (size_t)x) * 3 + (size_t)c];
}

/* Every metallic-roughness field, its textures (decoded sRGB or linear), the texture transform
 * in kiln's uv, the default material, and the warnings for what is ignored. */
TEST(gltf_materials) {
  kiln_scene *s = load_ok("material.gltf");
  const kiln__scene *d = st_data(s);
  KT_EQ(d->ntris, 8);
  KT_EQ(d->nmaterials, 4);
  const kiln__material *m = &d->materials[d->tri_material[0]];
  KT_EQ(m->type, KILN__MAT_PRINCIPLED);
  KT_STR_EQ(m->name, "everything");
  vec_near(m->albedo, 0.5, 0.6, 0.7, 1e-6);
  ST_NEAR(m->alpha, 0.8, 1e-6);
  ST_NEAR(m->metallic, 0.25, 1e-6);
  ST_NEAR(m->roughness, 0.75, 1e-6);
  ST_NEAR(m->normal_scale, 0.5, 1e-6);
  vec_near(m->emission, 4, 2, 1, 1e-6); /* emissiveFactor x emissiveStrength 4 */
  ST_NEAR(m->ior, 1.33, 1e-6);
  ST_NEAR(m->alpha_cutoff, 0.3, 1e-6);
  /* offset (0.5, 0), scale 2 in glTF's uv is u' = 2u + 0.5, v' = 2v - 1 in kiln's */
  const float xf[6] = {2, 0, 0.5f, 0, 2, -1};
  for (int i = 0; i < 6; i++) ST_NEAR(m->uv_xform[i], xf[i], 1e-6);
  KT_TRUE(m->texture >= 0 && m->alpha_texture >= 0 && m->mr_texture >= 0 && m->normal_texture >= 0);
  KT_EQ(m->emission_texture, m->texture); /* the same image, decoded once */
  const kiln__texture *bc = &d->textures[m->texture], *al = &d->textures[m->alpha_texture],
                      *mr = &d->textures[m->mr_texture];
  KT_EQ(bc->width, 2);
  ST_NEAR(texel(bc, 0, 0, 0), 1, 0); /* top left red */
  ST_NEAR(texel(bc, 1, 0, 1), 1, 0); /* top right green */
  ST_NEAR(texel(al, 1, 0, 0), 128 / 255.0, 1e-6);
  ST_NEAR(texel(al, 0, 1, 0), 0, 0);
  ST_NEAR(texel(mr, 0, 0, 1), 128 / 255.0, 1e-6); /* linear, not sRGB-decoded */
  /* no material: glTF's default */
  const kiln__material *def = &d->materials[d->tri_material[2]];
  KT_EQ(def->type, KILN__MAT_PRINCIPLED);
  vec_near(def->albedo, 1, 1, 1, 0);
  ST_NEAR(def->metallic, 1, 0);
  ST_NEAR(def->roughness, 1, 0);
  KT_EQ(def->texture, -1);
  ST_NEAR(def->alpha_cutoff, 0, 0);
  /* BLEND: a cut-out at 0.5, said so */
  ST_NEAR(d->materials[d->tri_material[4]].alpha_cutoff, 0.5, 0);
  KT_TRUE(has_warning(s, "BLEND"));
  /* a rotated transform maps kiln's uv (v up, Blender's too) as Blender's importer does: a
   * Mapping node (out = T + R(rotation) S in, R counter-clockwise) with offset
   * (ox + sy sin r, 1 - oy - sy cos r) (io_scene_gltf2, texture_transform_gltf_to_blender) */
  const kiln__material *rot = &d->materials[d->tri_material[6]];
  const double r = 0.3, c = cos(r), sn = sin(r), sx = 1.5, sy = 0.5, ox = 0.1, oy = 0.2;
  const double pts[3][2] = {{0, 0}, {1, 0.25}, {0.3, 0.9}};
  for (int i = 0; i < 3; i++) {
    double u = pts[i][0], v = pts[i][1];
    double bu = c * sx * u - sn * sy * v + ox + sy * sn,
           bv = sn * sx * u + c * sy * v + 1 - oy - sy * c;
    const float *x = rot->uv_xform;
    ST_NEAR(x[0] * u + x[1] * v + x[2], bu, 1e-6);
    ST_NEAR(x[3] * u + x[4] * v + x[5], bv, 1e-6);
  }
  KT_TRUE(has_warning(s, "texCoord other than 0"));
  KT_TRUE(has_warning(s, "materials[0].occlusionTexture"));
  KT_TRUE(has_warning(s, "samplers[0]"));
  KT_TRUE(has_warning(s, "EXT_unknown_thing"));
  /* no camera: one on +z framing the quads; no lights: a white environment */
  vec_near(d->camera.look_at, 0.5, 0.5, 0, 1e-6);
  KT_TRUE(d->camera.position[2] > 1);
  vec_near(d->env.color, 1, 1, 1, 0);
  kiln_scene_destroy(s);
}

/* A glTF object in a JSON scene: its transform and instances, the object name as a prefix, the
 * material override, the category, and the lights only when asked. */
TEST(gltf_object_in_scene) {
  char json[2048];
  snprintf(json, sizeof json,
           "{\"camera\": {\"position\": [0, 0, -5], \"look_at\": [0, 0, 0]},\n"
           " \"materials\": {\"grey\": {\"type\": \"diffuse\"}},\n"
           " \"objects\": [\n"
           "  {\"type\": \"sphere\", \"radius\": 1, \"material\": \"grey\"},\n"
           "  {\"type\": \"gltf\", \"file\": \"%s\", \"name\": \"g\", \"category\": \"thing\",\n"
           "   \"transform\": {\"translate\": [0, 1, 0]},\n"
           "   \"instances\": [{}, {\"translate\": [100, 0, 0]}]},\n"
           "  {\"type\": \"gltf\", \"file\": \"%s\", \"material\": \"grey\", \"lights\": true}]}",
           data_path("scene.gltf"), data_path("scene.glb"));
  kiln_scene *s = st_load_ok(json, "/");
  const kiln__scene *d = st_data(s);
  KT_EQ(d->nobjects, 1 + 3 + 3 + 3);
  KT_STR_EQ(d->object_names[1], "g.a");
  KT_STR_EQ(d->object_names[3], "g.t");
  KT_STR_EQ(d->object_names[4], "a");
  KT_STR_EQ(d->object_category[1], "thing");
  KT_STR_EQ(d->object_category[3], "thing");
  KT_TRUE(d->object_category[4] == NULL);
  KT_EQ(d->ntris, 5 * 2 + 5);
  /* instance 2 of g, first vertex of a: (10, 0, 0) + (0, 1, 0) + (100, 0, 0) */
  vec_near(d->pos + 9 * 5, 110, 1, 0, 1e-5);
  KT_EQ(d->ninstances, 1 + 6 + 3);
  KT_EQ(d->instances[1].object_id, 2);
  KT_EQ(d->instances[4].object_id, 2); /* the second instance block starts again at g.a */
  /* the override: every triangle of the last object is grey */
  KT_EQ(d->materials[d->tri_material[d->ntris - 1]].type, KILN__MAT_DIFFUSE);
  KT_EQ(d->nplights, 3);                     /* only the last object's */
  vec_near(d->camera.position, 0, 0, -5, 0); /* the scene's camera, not the file's */
  kiln_scene_destroy(s);
}

/* A malformed file: code, the file, the JSON path in it, a line for .gltf, and no scene, whether
 * loaded as the scene or as an object (then the path is the object's "file" and the glTF's path
 * leads the message). */
static void expect_bad(const char *name, const char *path, const char *frag) {
  kiln_error_detail e;
  kiln_scene *s = NULL;
  char buf[2048];
  int rc = kiln_scene_load(data_path(name), &e, &s);
  kiln_error_detail_format(&e, buf, sizeof buf);
  if (rc != KILN_EPARSE) KT_FAIL("%s: %s: %s", name, kiln_err_name(rc), buf);
  KT_TRUE(s == NULL);
  KT_STR_EQ(e.file, data_path(name));
  if (strcmp(e.path, path) != 0) KT_FAIL("%s: path '%s', want '%s': %s", name, e.path, path, buf);
  if (!strstr(e.message, frag)) KT_FAIL("%s: message lacks '%s': %s", name, frag, buf);
  if (strstr(name, ".gltf") && path[0] && e.line <= 1) KT_FAIL("%s: no line: %s", name, buf);

  char json[2048];
  snprintf(json, sizeof json,
           "{\"camera\": {\"position\": [0, 0, -5], \"look_at\": [0, 0, 0]},\n"
           " \"objects\": [{\"type\": \"gltf\", \"file\": \"%s\"}]}",
           data_path(name));
  rc = kiln_scene_load_string(json, "/", "x.json", &e, &s);
  kiln_error_detail_format(&e, buf, sizeof buf);
  if (rc != KILN_EPARSE) KT_FAIL("%s in a scene: %s: %s", name, kiln_err_name(rc), buf);
  KT_TRUE(s == NULL);
  KT_STR_EQ(e.file, data_path(name));
  KT_STR_EQ(e.path, "objects[0].file");
  if (strncmp(e.message, path, strlen(path)) != 0 || !strstr(e.message, frag))
    KT_FAIL("%s in a scene: message '%s'", name, e.message);
}

TEST(gltf_errors_located) {
  expect_bad("bad_mode.gltf", "meshes[0].primitives[0].mode", "TRIANGLE_STRIP");
  expect_bad("bad_index.gltf", "meshes[0].primitives[0].indices", "index 7");
  expect_bad("bad_view.gltf", "accessors[0].bufferView", "past the end of its buffer view");
  expect_bad("bad_buffer.gltf", "buffers[0].uri", "missing buffer");
  expect_bad("bad_ext.gltf", "extensionsRequired[0]", "KHR_draco_mesh_compression");
  expect_bad("bad_length.gltf", "buffers[0].byteLength", "byteLength");
  expect_bad("bad_length.glb", "buffers[0].byteLength", "BIN chunk");
  expect_bad("bad_cycle.gltf", "nodes[0]", "reached twice");
}

/* Truncated and lying .glb containers. */
TEST(gltf_glb_truncated) {
  const char *dir = st_tmpdir();
  size_t n;
  char *glb = st_read_file(data_path("scene.glb"), &n);
  static const struct {
    size_t keep;
    const char *frag;
  } cuts[] = {{10, "less than its header"}, {100, "truncated .glb: its header says"}};
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
    const char *p = st_write(dir, "cut.glb", glb, cuts[i].keep);
    kiln_error_detail e;
    kiln_scene *s = NULL;
    KT_CODE(kiln_scene_load(p, &e, &s), KILN_EPARSE);
    KT_TRUE(s == NULL);
    KT_STR_CONTAINS(e.message, cuts[i].frag);
  }
  /* the header's total made to match a file cut inside its BIN chunk */
  size_t keep = n - 16;
  uint32_t total = (uint32_t)keep;
  memcpy(glb + 8, &total, 4);
  const char *p = st_write(dir, "cut.glb", glb, keep);
  kiln_error_detail e;
  kiln_scene *s = NULL;
  KT_CODE(kiln_scene_load(p, &e, &s), KILN_EPARSE);
  KT_STR_CONTAINS(e.message, "BIN chunk");
  free(glb);
  st_tmp_cleanup();
}

/* A non-triangle mode deep in a file: nothing of the file's earlier meshes is left behind. */
TEST(gltf_nothing_half_loaded) {
  const char *dir = st_tmpdir();
  size_t n;
  char *text = st_read_file(data_path("scene.gltf"), &n);
  /* the scene's second mesh gets mode 1 (LINES) */
  char *tri = strstr(text, "\"name\": \"tri\"");
  KT_TRUE(tri != NULL);
  char *attrs = strstr(tri, "\"attributes\"");
  KT_TRUE(attrs != NULL);
  size_t off = (size_t)(attrs - text);
  char *out = malloc(n + 32);
  memcpy(out, text, off);
  int k = sprintf(out + off, "\"mode\": 1, ");
  memcpy(out + off + (size_t)k, text + off, n - off + 1);
  st_write(dir, "scene.gltf", out, (size_t)-1);
  char path[1100];
  snprintf(path, sizeof path, "%s/scene.gltf", dir);
  kiln_error_detail e;
  kiln_scene *s = NULL;
  KT_CODE(kiln_scene_load(path, &e, &s), KILN_EPARSE);
  KT_TRUE(s == NULL);
  KT_STR_EQ(e.path, "meshes[1].primitives[0].mode");
  KT_STR_CONTAINS(e.message, "LINES");
  free(text), free(out);
  st_tmp_cleanup();
}

/* JSON nested past any glTF's depth (in "extras", which the parser copies recursively) is refused
 * before it is parsed. */
TEST(gltf_deep_json) {
  const char *dir = st_tmpdir();
  char text[1200] = "{\"asset\": {\"version\": \"2.0\"}, \"extras\": ";
  size_t n = strlen(text);
  for (int i = 0; i < 500; i++) text[n++] = '[';
  for (int i = 0; i < 500; i++) text[n++] = ']';
  text[n++] = '}', text[n] = '\0';
  const char *p = st_write(dir, "deep.gltf", text, (size_t)-1);
  kiln_error_detail e;
  kiln_scene *s = NULL;
  KT_CODE(kiln_scene_load(p, &e, &s), KILN_EPARSE);
  KT_TRUE(s == NULL);
  KT_STR_CONTAINS(e.message, "nests deeper");
  st_tmp_cleanup();
}

/* A .glb as a job's scene: a frame's overrides (here the environment) patch the file's JSON
 * equivalent, which keeps its objects, lights and camera. */
TEST(gltf_job_scene) {
  const char *dir = st_tmpdir();
  char job[2048];
  snprintf(
      job, sizeof job,
      "{\"scene\": \"%s\", \"images\": [{\"name\": \"plain\"},\n"
      " {\"name\": \"grey\", \"environment\": {\"type\": \"constant\", \"color\": [0.2, 0.2, 0.2]}}]}",
      data_path("scene.glb"));
  const char *path = st_write(dir, "job.json", job, (size_t)-1);
  kiln_job *j = NULL;
  kiln_error_detail e;
  char buf[2048];
  if (kiln_job_load(path, NULL, &e, &j))
    KT_FAIL("%s", kiln_error_detail_format(&e, buf, sizeof buf));
  const kiln__scene *base = st_data(kiln_job_scene(j));
  kiln_job_frame fr;
  KT_CODE(kiln_job_next(j, &fr, &e), 0);
  vec_near(fr.camera.position, 0, 0, 10, 1e-6); /* the file's camera */
  kiln_job_frame_clear(&fr);
  KT_CODE(kiln_job_next(j, &fr, &e), 0);
  kiln_scene *s = NULL;
  if (kiln_job_frame_scene(j, &fr, &e, &s))
    KT_FAIL("%s", kiln_error_detail_format(&e, buf, sizeof buf));
  KT_TRUE(s != NULL);
  const kiln__scene *d = st_data(s);
  KT_EQ(d->ntris, base->ntris);
  KT_EQ(d->nobjects, base->nobjects);
  KT_EQ(d->nplights, 3);
  vec_near(d->env.color, 0.2, 0.2, 0.2, 1e-6);
  KT_TRUE(memcmp(d->pos, base->pos, d->ntris * 9 * sizeof(float)) == 0);
  KT_STR_EQ(d->object_names[2], "t");
  kiln_scene_destroy(s);
  kiln_job_frame_clear(&fr);
  kiln_job_destroy(j);
  st_tmp_cleanup();
}

/* data/gltf/blender_import.txt: where Blender 3.4's glTF importer puts scene.gltf's vertices,
 * camera and lights (data/gltf/blender_import.py, in glTF's axes): kiln agrees on every vertex of
 * the default scene's meshes, the camera, the lights' positions and directions, and their power
 * (Blender watts / (4 pi^2) for point and spot lights, the sun's strength as its irradiance). */
TEST(gltf_agrees_with_blender) {
  kiln_scene *s = load_ok("scene.gltf");
  const kiln__scene *d = st_data(s);
  char *text = st_read_file(data_path("blender_import.txt"), NULL);
  int checked = 0;
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    char kind[16], name[64];
    int off = 0;
    if (sscanf(line, "%15s %63s %n", kind, name, &off) != 2) KT_FAIL("bad line '%s'", line);
    const char *p = line + off;
    uint32_t id = 0;
    for (size_t i = 0; i < d->nobjects; i++)
      if (strcmp(d->object_names[i], name) == 0) id = (uint32_t)i + 1;
    if (strcmp(kind, "mesh") == 0) {
      if (!id) continue; /* not in the default scene */
      float v[3];
      int n;
      while (sscanf(p, " (%f, %f, %f)%n", &v[0], &v[1], &v[2], &n) == 3) {
        bool found = false;
        for (size_t t = 0; t < d->ntris && !found; t++)
          for (int k = 0; k < 3 && d->tri_object[t] == id; k++) {
            const float *q = d->pos + 9 * t + 3 * k;
            found = found || (fabsf(q[0] - v[0]) < 1e-4f && fabsf(q[1] - v[1]) < 1e-4f &&
                              fabsf(q[2] - v[2]) < 1e-4f);
          }
        if (!found)
          KT_FAIL("%s: Blender's vertex (%g, %g, %g) is not kiln's", name, v[0], v[1], v[2]);
        p += n, checked++;
      }
      continue;
    }
    float pos[3], dir[3], watts = 0;
    char type[16] = "";
    int got = sscanf(p, "position (%f, %f, %f) direction (%f, %f, %f) %15s watts %f", &pos[0],
                     &pos[1], &pos[2], &dir[0], &dir[1], &dir[2], type, &watts);
    if (strcmp(kind, "camera") == 0) {
      KT_TRUE(got >= 6);
      vec_near(d->camera.position, pos[0], pos[1], pos[2], 1e-4);
      float f[3] = {d->camera.look_at[0] - d->camera.position[0],
                    d->camera.look_at[1] - d->camera.position[1],
                    d->camera.look_at[2] - d->camera.position[2]};
      vec_near(f, dir[0], dir[1], dir[2], 1e-4);
      checked++;
      continue;
    }
    KT_EQ(got, 8);
    KT_TRUE(id != 0);
    const kiln__plight *l = NULL;
    for (size_t i = 0; i < d->nplights; i++)
      if (d->plights[i].object_id == id) l = &d->plights[i];
    KT_TRUE(l != NULL);
    if (l->type != KILN__LIGHT_SUN) vec_near(l->position, pos[0], pos[1], pos[2], 1e-4);
    if (l->type != KILN__LIGHT_POINT) vec_near(l->direction, dir[0], dir[1], dir[2], 1e-4);
    const double pi = 3.14159265358979;
    ST_NEAR(l->color[0], l->type == KILN__LIGHT_SUN ? watts : watts / (4 * pi * pi), 1e-5);
    checked++;
  }
  KT_EQ(checked, 4 + 4 + 3 + 1 + 3);
  free(text);
  kiln_scene_destroy(s);
}
