/* test_job.c: the job loader (include/kiln/batch.h, docs/JOBS.md): animations (frame ranges,
 * seeds, orbits, camera and object keyframes), lists (JSONL files and inline "images") with their
 * overrides, lazy iteration, every class of malformed input with its exact file, line, column
 * and JSON path, and frame scenes (patches applied, from several pool tasks at once). Every test
 * writes its files into a fresh temporary folder. */
#include <math.h>
#include <stdarg.h>

#include <cjson/cJSON.h>

#include "batch_internal.h"
#include "kiln/batch.h"
#include "scene/scene_test_util.h"

/* A scene with named objects, materials and a light. */
static const char *scene_json =
    "{\n"
    "  \"settings\": {\"width\": 32, \"height\": 24, \"spp\": 4, \"seed\": 7},\n"
    "  \"camera\": {\"position\": [0, 1, -4], \"look_at\": [0, 1, 0], \"vfov\": 40},\n"
    "  \"materials\": {\"red\": {\"type\": \"diffuse\", \"albedo\": [0.8, 0.1, 0.1]},\n"
    "                \"metal\": {\"type\": \"conductor\", \"roughness\": 0.2}},\n"
    "  \"objects\": [\n"
    "    {\"type\": \"sphere\", \"name\": \"ball\", \"center\": [0, 1, 0], \"radius\": 0.5, \"material\": \"red\"},\n"
    "    {\"type\": \"box\", \"name\": \"crate\", \"min\": [1, 0, 0], \"max\": [2, 1, 1], \"material\": \"metal\"},\n"
    "    {\"type\": \"quad\", \"corner\": [-5, 0, -5], \"u\": [0, 0, 10], \"v\": [10, 0, 0],\n"
    "     \"material\": {\"type\": \"diffuse\"}}\n"
    "  ],\n"
    "  \"lights\": [{\"type\": \"quad\", \"name\": \"key\", \"corner\": [-0.5, 3, -0.5], \"u\": [1, 0, 0],\n"
    "              \"v\": [0, 0, 1], \"radiance\": [5, 5, 5]}],\n"
    "  \"environment\": {\"type\": \"constant\", \"color\": [0.1, 0.1, 0.1]}\n"
    "}\n";

static kiln_job_info info_of(const kiln_job *job) {
  kiln_job_info info;
  kiln_job_get_info(job, &info);
  return info;
}

static char jt_dir[600];

static const char *jt_setup(void) {
  snprintf(jt_dir, sizeof jt_dir, "%s", st_tmpdir());
  st_write(jt_dir, "scene.json", scene_json, (size_t)-1);
  return jt_dir;
}

static const char *jt_path(const char *name) {
  static char p[2][1024];
  static int k;
  k ^= 1;
  snprintf(p[k], sizeof p[k], "%s/%s", jt_dir, name);
  return p[k];
}

/* Loads name (written from text first when text is not NULL); a .jsonl gets scene.json. */
static kiln_job *jt_load(const char *name, const char *text) {
  if (text) st_write(jt_dir, name, text, (size_t)-1);
  kiln_job_options opt = {.scene = strstr(name, ".jsonl") ? jt_path("scene.json") : NULL};
  kiln_error_detail e;
  kiln_job *job = NULL;
  int rc = kiln_job_load(jt_path(name), &opt, &e, &job);
  if (rc) {
    char buf[2048];
    KT_FAIL("load %s: %s: %s", name, kiln_err_name(rc),
            kiln_error_detail_format(&e, buf, sizeof buf));
  }
  return job;
}

static void jt_next(kiln_job *job, kiln_job_frame *fr) {
  kiln_error_detail e;
  int rc = kiln_job_next(job, fr, &e);
  if (rc) {
    char buf[2048];
    KT_FAIL("next: %s: %s", kiln_err_name(rc), kiln_error_detail_format(&e, buf, sizeof buf));
  }
}

/* The frame of index i (rewinding first). */
static void jt_frame(kiln_job *job, uint64_t i, kiln_job_frame *fr) {
  KT_CODE(kiln_job_rewind(job), 0);
  for (uint64_t k = 0; k <= i; k++) {
    if (k) kiln_job_frame_clear(fr);
    jt_next(job, fr);
  }
}

#define KT_NEAR(a, b, tol)                                                                    \
  do {                                                                                        \
    double kt_x = (a), kt_y = (b);                                                            \
    if (!(fabs(kt_x - kt_y) <= (tol))) KT_FAIL("%s == %s: %.9g != %.9g", #a, #b, kt_x, kt_y); \
  } while (0)

static void near3(const float v[3], double x, double y, double z, double tol) {
  KT_NEAR(v[0], x, tol);
  KT_NEAR(v[1], y, tol);
  KT_NEAR(v[2], z, tol);
}

#define KT_PI 3.14159265358979323846

#define ANIM(a) "{\"scene\": \"scene.json\",\n \"animation\": " a "}\n"

/* ---- animation ------------------------------------------------------------------------------ */

TEST(anim_frames_step_and_count) {
  jt_setup();
  kiln_job *job =
      jt_load("job.json", ANIM("{\"frames\": {\"start\": 10, \"end\": 20, \"step\": 3}}"));
  KT_EQ(info_of(job).count, 4);
  kiln_job_frame fr;
  long want[] = {10, 13, 16, 19};
  for (int i = 0; i < 4; i++) {
    jt_next(job, &fr);
    KT_EQ(fr.index, i);
    KT_EQ(fr.frame, want[i]);
    KT_EQ(fr.seed, 7);
    KT_TRUE(fr.scene_patch == NULL);
    char name[16];
    snprintf(name, sizeof name, "%05ld", want[i]);
    KT_STR_EQ(fr.name, name);
    near3(fr.camera.position, 0, 1, -4, 0); /* no camera animation: the scene's */
    kiln_job_frame_clear(&fr);
  }
  KT_STR_CONTAINS(fr.where, "");
  KT_CODE(kiln_job_next(job, &fr, NULL), KILN_EEOF);
  kiln_job_destroy(job);
  job = jt_load("job.json", ANIM("{\"frames\": 120}"));
  KT_EQ(info_of(job).count, 120);
  jt_frame(job, 119, &fr);
  KT_EQ(fr.frame, 119);
  KT_STR_CONTAINS(fr.where, "job.json: frame 119");
  kiln_job_frame_clear(&fr);
  kiln_job_destroy(job);
  job = jt_load("job.json", ANIM("{\"frames\": {\"start\": 5, \"end\": 5}}"));
  KT_EQ(info_of(job).count, 1);
  kiln_job_destroy(job);
  st_tmp_cleanup();
}

TEST(anim_seed_rules) {
  jt_setup();
  kiln_job_frame fr;
  kiln_job *job =
      jt_load("job.json", ANIM("{\"frames\": {\"start\": 3, \"end\": 4}, \"seed\": \"frame\"}"));
  jt_frame(job, 1, &fr);
  KT_EQ(fr.seed, 7 + 4);
  kiln_job_frame_clear(&fr);
  kiln_job_destroy(job);
  job = jt_load("job.json", ANIM("{\"frames\": 2, \"seed\": 42}"));
  jt_frame(job, 1, &fr);
  KT_EQ(fr.seed, 42);
  kiln_job_frame_clear(&fr);
  kiln_job_destroy(job);
  job = jt_load("job.json", ANIM("{\"frames\": 2, \"seed\": \"scene\"}"));
  jt_frame(job, 1, &fr);
  KT_EQ(fr.seed, 7);
  kiln_job_frame_clear(&fr);
  kiln_job_destroy(job);
  st_tmp_cleanup();
}

TEST(orbit_positions_analytic) {
  jt_setup();
  kiln_job *job = jt_load(
      "job.json",
      ANIM(
          "{\"frames\": 5, \"camera\": {\"orbit\": {\"center\": [0, 1, 0], \"radius\": 2, \"height\": 0.5,\n"
          " \"start_angle\": 0, \"degrees_per_frame\": 90, \"vfov\": 30}}}"));
  kiln_job_frame fr;
  /* angle a: center + 2 (cos a * +z + sin a * +x) + 0.5 y */
  const double want[5][3] = {{0, 1.5, 2}, {2, 1.5, 0}, {0, 1.5, -2}, {-2, 1.5, 0}, {0, 1.5, 2}};
  for (int i = 0; i < 5; i++) {
    jt_next(job, &fr);
    near3(fr.camera.position, want[i][0], want[i][1], want[i][2], 1e-5);
    near3(fr.camera.look_at, 0, 1, 0, 0);
    near3(fr.camera.up, 0, 1, 0, 0);
    KT_NEAR(fr.camera.vfov_deg, 30, 1e-6);
    kiln_job_frame_clear(&fr);
  }
  kiln_job_destroy(job);
  /* "degrees": the sweep from the first to the last frame; elevation on a sphere of radius 2 */
  job = jt_load(
      "job.json",
      ANIM(
          "{\"frames\": {\"start\": 0, \"end\": 8, \"step\": 2}, \"camera\": {\"orbit\": {\"center\": [0, 0, 0],\n"
          " \"radius\": 2, \"elevation\": 30, \"start_angle\": -90, \"degrees\": 180}}}"));
  KT_EQ(info_of(job).count, 5);
  jt_frame(job, 2, &fr); /* frame 4: angle 0 */
  near3(fr.camera.position, 0, 1, sqrt(3), 1e-5);
  KT_NEAR(fr.camera.vfov_deg, 40, 1e-6);
  kiln_job_frame_clear(&fr);
  jt_frame(job, 4, &fr); /* frame 8: angle 90 */
  near3(fr.camera.position, sqrt(3), 1, 0, 1e-5);
  kiln_job_frame_clear(&fr);
  kiln_job_destroy(job);
  st_tmp_cleanup();
}

TEST(orbit_defaults_start_at_the_scene_camera) {
  jt_setup();
  kiln_job *job = jt_load(
      "job.json", ANIM("{\"frames\": 3, \"camera\": {\"orbit\": {\"degrees_per_frame\": -90}}}"));
  kiln_job_frame fr;
  jt_next(job, &fr);
  near3(fr.camera.position, 0, 1, -4, 1e-5); /* around look_at, at the camera's radius and angle */
  kiln_job_frame_clear(&fr);
  jt_next(job, &fr);
  near3(fr.camera.position, 4, 1, 0, 1e-5); /* 180 - 90 degrees: +x */
  near3(fr.camera.look_at, 0, 1, 0, 0);
  kiln_job_frame_clear(&fr);
  kiln_job_destroy(job);
  st_tmp_cleanup();
}

TEST(camera_keyframes_linear_exact_midway_and_hold) {
  jt_setup();
  kiln_job *job = jt_load(
      "job.json",
      ANIM(
          "{\"frames\": {\"start\": -10, \"end\": 30, \"step\": 5}, \"camera\": {\"keyframes\": [\n"
          " {\"frame\": 0, \"position\": [0, 1, -4], \"look_at\": [0, 1, 0], \"vfov\": 40},\n"
          " {\"frame\": 10, \"position\": [2, 3, -2], \"look_at\": [0, 0, 0], \"vfov\": 60},\n"
          " {\"frame\": 20, \"position\": [4, 1, 0], \"look_at\": [1, 0, 0], \"up\": [0, 0, 1]}]}}"));
  kiln_job_frame fr;
  jt_frame(job, 0, &fr); /* frame -10: holds the first key */
  near3(fr.camera.position, 0, 1, -4, 0);
  KT_NEAR(fr.camera.vfov_deg, 40, 0);
  kiln_job_frame_clear(&fr);
  jt_frame(job, 2, &fr); /* frame 0: exactly the first key */
  near3(fr.camera.position, 0, 1, -4, 0);
  near3(fr.camera.look_at, 0, 1, 0, 0);
  kiln_job_frame_clear(&fr);
  jt_frame(job, 3, &fr); /* frame 5: midway */
  near3(fr.camera.position, 1, 2, -3, 1e-6);
  near3(fr.camera.look_at, 0, 0.5, 0, 1e-6);
  KT_NEAR(fr.camera.vfov_deg, 50, 1e-5);
  kiln_job_frame_clear(&fr);
  jt_frame(job, 4, &fr); /* frame 10: exactly the second key */
  near3(fr.camera.position, 2, 3, -2, 0);
  KT_NEAR(fr.camera.vfov_deg, 60, 0);
  kiln_job_frame_clear(&fr);
  jt_frame(job, 5, &fr); /* frame 15: up interpolated and normalised; vfov 60 -> the scene's 40 */
  near3(fr.camera.up, 0, 1 / sqrt(2), 1 / sqrt(2), 1e-6);
  KT_NEAR(fr.camera.vfov_deg, 50, 1e-5);
  kiln_job_frame_clear(&fr);
  jt_frame(job, 8, &fr); /* frame 30: holds the last key */
  near3(fr.camera.position, 4, 1, 0, 0);
  near3(fr.camera.up, 0, 0, 1, 0);
  kiln_job_frame_clear(&fr);
  kiln_job_destroy(job);
  st_tmp_cleanup();
}

TEST(camera_keyframes_spherical) {
  jt_setup();
  kiln_job *job = jt_load(
      "job.json",
      ANIM("{\"frames\": 11, \"camera\": {\"interpolation\": \"spherical\", \"keyframes\": [\n"
           " {\"frame\": 0, \"position\": [0, 0, -2], \"look_at\": [0, 0, 0]},\n"
           " {\"frame\": 10, \"position\": [4, 0, 0], \"look_at\": [0, 0, 0]}]}}"));
  kiln_job_frame fr;
  jt_frame(job, 5, &fr); /* 45 degrees round, distance midway between 2 and 4 */
  near3(fr.camera.position, 3 * sin(KT_PI / 4), 0, -3 * cos(KT_PI / 4), 1e-5);
  kiln_job_frame_clear(&fr);
  jt_frame(job, 10, &fr);
  near3(fr.camera.position, 4, 0, 0, 1e-6);
  kiln_job_frame_clear(&fr);
  kiln_job_destroy(job);
  st_tmp_cleanup();
}

TEST(camera_keyframes_thin_lens) {
  jt_setup();
  kiln_job *job = jt_load(
      "job.json",
      ANIM(
          "{\"frames\": 3, \"camera\": {\"keyframes\": [\n"
          " {\"frame\": 0, \"position\": [0, 1, -4], \"look_at\": [0, 1, 0], \"aperture\": 0.1},\n"
          " {\"frame\": 2, \"position\": [0, 1, -4], \"look_at\": [0, 1, 0], \"aperture\": 0.3, \"focus_distance\": 6}]}}"));
  kiln_job_frame fr;
  jt_frame(job, 1, &fr);
  KT_TRUE(fr.camera.thin_lens);
  KT_NEAR(fr.camera.aperture, 0.2, 1e-6);
  KT_NEAR(fr.camera.focus_distance, 5, 1e-5); /* 4 (the distance to look_at) -> 6 */
  kiln_job_frame_clear(&fr);
  kiln_job_destroy(job);
  st_tmp_cleanup();
}

/* The matrix of object name in a frame's patch. */
static void patch_matrix(const kiln_job_frame *fr, const char *name, double m[16]) {
  KT_TRUE(fr->scene_patch != NULL);
  cJSON *p = cJSON_Parse(fr->scene_patch);
  KT_TRUE(p != NULL);
  cJSON *objs = cJSON_GetObjectItemCaseSensitive(p, "objects");
  cJSON *mat = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(objs, name), "transform"),
      "matrix");
  KT_EQ(cJSON_GetArraySize(mat), 16);
  for (int i = 0; i < 16; i++) m[i] = cJSON_GetArrayItem(mat, i)->valuedouble;
  cJSON_Delete(p);
}

TEST(object_keyframes_slerp_and_hold) {
  jt_setup();
  kiln_job *job = jt_load(
      "job.json",
      ANIM(
          "{\"frames\": {\"start\": 0, \"end\": 20, \"step\": 5}, \"objects\": {\"crate\": {\"keyframes\": [\n"
          " {\"frame\": 0},\n"
          " {\"frame\": 10, \"translate\": [2, 0, 0], \"rotate\": [0, 90, 0], \"scale\": 3}]}}}"));
  kiln_job_frame fr;
  double m[16];
  jt_frame(job, 0, &fr);
  patch_matrix(&fr, "crate", m);
  const double id[16] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
  for (int i = 0; i < 16; i++) KT_NEAR(m[i], id[i], 1e-12);
  kiln_job_frame_clear(&fr);
  jt_frame(job, 1, &fr); /* frame 5: 45 degrees about y, scale 2, translate 1 */
  patch_matrix(&fr, "crate", m);
  double c = cos(KT_PI / 4) * 2, s = sin(KT_PI / 4) * 2;
  const double half[16] = {c, 0, s, 1, 0, 2, 0, 0, -s, 0, c, 0, 0, 0, 0, 1};
  for (int i = 0; i < 16; i++) KT_NEAR(m[i], half[i], 1e-9);
  kiln_job_frame_clear(&fr);
  const double end[16] = {0, 0, 3, 2, 0, 3, 0, 0, -3, 0, 0, 0, 0, 0, 0, 1};
  for (int k = 2; k <= 4; k++) { /* frames 10 (the key), 15 and 20 (held) */
    jt_frame(job, (uint64_t)k, &fr);
    patch_matrix(&fr, "crate", m);
    for (int i = 0; i < 16; i++) KT_NEAR(m[i], end[i], 1e-9);
    kiln_job_frame_clear(&fr);
  }
  kiln_job_destroy(job);
  st_tmp_cleanup();
}

/* The crate's triangles in scene s. */
static const float *crate_tris(const kiln_scene *s, size_t *n) {
  const kiln__scene *d = &s->data;
  for (size_t t = 0; t < d->ntris; t++)
    if (strcmp(d->object_names[d->tri_object[t] - 1], "crate") == 0) {
      *n = 12;
      return d->pos + 9 * t;
    }
  KT_FAIL("no crate");
  return NULL;
}

/* A keyframe's rotation (Euler and axis-angle) places the object as the scene format's transform. */
TEST(object_keyframes_match_scene_transforms) {
  jt_setup();
  kiln_job *job = jt_load(
      "job.json",
      ANIM(
          "{\"frames\": 2, \"objects\": {\"crate\": {\"keyframes\": [\n"
          " {\"frame\": 0, \"translate\": [0.5, -1, 2], \"rotate\": [10, 20, 30], \"scale\": [1, 2, 0.5]},\n"
          " {\"frame\": 1, \"rotate\": {\"axis\": [1, 1, 0], \"angle\": 70}}]}}}"));
  const char *xf[2] = {
      "{\"translate\": [0.5, -1, 2], \"rotate\": [10, 20, 30], \"scale\": [1, 2, 0.5]}",
      "{\"rotate\": {\"axis\": [1, 1, 0], \"angle\": 70}}"};
  for (int k = 0; k < 2; k++) {
    kiln_job_frame fr;
    jt_frame(job, (uint64_t)k, &fr);
    kiln_scene *got;
    kiln_error_detail e;
    KT_CODE(kiln_job_frame_scene(job, &fr, &e, &got), 0);
    char text[4096];
    snprintf(
        text, sizeof text,
        "{\"camera\": {\"position\": [0, 1, -4], \"look_at\": [0, 1, 0]},\n"
        "\"objects\": [{\"type\": \"box\", \"name\": \"crate\", \"min\": [1, 0, 0], \"max\": [2, 1, 1],\n"
        "\"material\": {\"type\": \"diffuse\"}, \"transform\": %s}]}",
        xf[k]);
    kiln_scene *want = st_load_ok(text, jt_dir);
    size_t n1, n2;
    const float *a = crate_tris(got, &n1), *b = crate_tris(want, &n2);
    for (size_t i = 0; i < 9 * n1; i++) KT_NEAR(a[i], b[i], 1e-5);
    kiln_scene_destroy(got), kiln_scene_destroy(want);
    kiln_job_frame_clear(&fr);
  }
  kiln_job_destroy(job);
  st_tmp_cleanup();
}

/* ---- lists -------------------------------------------------------------------------------- */

static const char *list_text =
    "{\"name\": \"first\", \"camera\": {\"position\": [0.5, 1, -4]}}\n"
    "\n"
    "  \t\n"
    "{\"frame\": 40, \"seed\": 9, \"camera\": {\"vfov\": 25, \"type\": \"thin_lens\", \"aperture\": 0.05}}\n"
    "{\"materials\": {\"red\": {\"albedo\": [0.1, 0.9, 0.1]}}, \"objects\": {\"ball\": {\"transform\": "
    "{\"translate\": [1, 0, 0]}}}}\n";

TEST(list_lines_and_overrides) {
  jt_setup();
  kiln_job *job = jt_load("list.jsonl", list_text);
  KT_EQ(info_of(job).count, 3);
  kiln_job_frame fr;
  jt_next(job, &fr);
  KT_STR_EQ(fr.name, "first");
  KT_EQ(fr.frame, 0);
  KT_EQ(fr.seed, 7);
  near3(fr.camera.position, 0.5, 1, -4, 0); /* partial: the rest is the scene's */
  near3(fr.camera.look_at, 0, 1, 0, 0);
  KT_NEAR(fr.camera.vfov_deg, 40, 0);
  KT_TRUE(fr.scene_patch == NULL);
  KT_STR_CONTAINS(fr.where, "list.jsonl:1");
  kiln_job_frame_clear(&fr);
  jt_next(job, &fr);
  KT_EQ(fr.index, 1);
  KT_EQ(fr.frame, 40);
  KT_STR_EQ(fr.name, "00040");
  KT_EQ(fr.seed, 9);
  KT_TRUE(fr.camera.thin_lens);
  KT_NEAR(fr.camera.aperture, 0.05, 1e-7);
  KT_NEAR(fr.camera.focus_distance, 4, 1e-6);
  KT_NEAR(fr.camera.vfov_deg, 25, 0);
  KT_STR_CONTAINS(fr.where, "list.jsonl:4"); /* blank lines count */
  kiln_job_frame_clear(&fr);
  jt_next(job, &fr);
  KT_EQ(fr.frame, 2); /* the index */
  KT_TRUE(fr.scene_patch != NULL);
  KT_STR_CONTAINS(fr.scene_patch, "\"red\"");
  KT_STR_CONTAINS(fr.where, "list.jsonl:5");
  kiln_job_frame_clear(&fr);
  KT_CODE(kiln_job_next(job, &fr, NULL), KILN_EEOF);
  kiln_job_destroy(job);
  st_tmp_cleanup();
}

TEST(list_next_is_lazy_and_rewinds) {
  jt_setup();
  /* a long list: frames are read one at a time from the file */
  size_t n = 5000, cap = n * 64;
  char *text = malloc(cap), *p = text;
  for (size_t i = 0; i < n; i++)
    p += snprintf(p, cap - (size_t)(p - text), "{\"name\": \"img%zu\", \"seed\": %zu}\n", i, i);
  kiln_job *job = jt_load("big.jsonl", text);
  free(text);
  KT_EQ(info_of(job).count, n);
  kiln_job_frame fr;
  for (size_t i = 0; i < 3; i++) {
    jt_next(job, &fr);
    KT_EQ(fr.seed, i);
    kiln_job_frame_clear(&fr);
  }
  /* the file changes after the load: next reads what is there now */
  st_write(jt_dir, "big.jsonl", "{\"name\": \"changed\"}\n{\"name\": \"second\"}\n", (size_t)-1);
  KT_CODE(kiln_job_rewind(job), 0);
  jt_next(job, &fr);
  KT_STR_EQ(fr.name, "changed");
  kiln_job_frame_clear(&fr);
  jt_next(job, &fr);
  KT_STR_EQ(fr.name, "second");
  KT_EQ(fr.index, 1);
  kiln_job_frame_clear(&fr);
  KT_CODE(kiln_job_next(job, &fr, NULL), KILN_EEOF);
  KT_CODE(kiln_job_rewind(job), 0);
  jt_next(job, &fr);
  KT_EQ(fr.index, 0);
  KT_STR_EQ(fr.name, "changed");
  kiln_job_frame_clear(&fr);
  kiln_job_destroy(job);
  st_tmp_cleanup();
}

TEST(json_job_with_list_file_and_inline_images) {
  jt_setup();
  st_write(jt_dir, "list.jsonl", list_text, (size_t)-1);
  kiln_job *job = jt_load(
      "job.json",
      "{\"scene\": \"scene.json\", \"output\": \"{name}_{pass}.{ext}\", \"passes\": [\"depth\", \"id\"],\n"
      " \"format\": \"exr\", \"images\": \"list.jsonl\"}");
  KT_EQ(info_of(job).count, 3);
  KT_STR_EQ(info_of(job).output, "{name}_{pass}.{ext}");
  KT_EQ(info_of(job).passes, KILN_PASS_COLOR | KILN_PASS_DEPTH | KILN_PASS_ID);
  KT_EQ(info_of(job).format, KILN_FORMAT_EXR);
  kiln_job_frame fr;
  jt_frame(job, 2, &fr);
  KT_STR_CONTAINS(fr.where, "list.jsonl:5");
  kiln_job_frame_clear(&fr);
  kiln_job_destroy(job);
  job = jt_load(
      "job.json",
      "{\"scene\": \"scene.json\", \"images\": [\n"
      "  {\"name\": \"a\"},\n"
      "  {\"name\": \"b\", \"lights\": {\"key\": {\"radiance\": [9, 9, 9]}}, \"frame\": 3}\n]}");
  KT_EQ(info_of(job).count, 2);
  KT_STR_EQ(info_of(job).output, "{frame:05d}_{pass}.{ext}");
  KT_EQ(info_of(job).passes, KILN_PASS_COLOR);
  KT_EQ(info_of(job).format, KILN_FORMAT_PNG);
  jt_frame(job, 1, &fr);
  KT_STR_EQ(fr.name, "b");
  KT_EQ(fr.frame, 3);
  KT_STR_CONTAINS(fr.where, "job.json: images[1]");
  KT_STR_CONTAINS(fr.scene_patch, "\"key\"");
  kiln_job_frame_clear(&fr);
  kiln_job_destroy(job);
  st_tmp_cleanup();
}

TEST(job_settings_override_the_scene) {
  jt_setup();
  kiln_job *job = jt_load(
      "job.json",
      "{\"scene\": \"scene.json\", \"width\": 64, \"height\": 48, \"spp\": 2, \"images\": [\n"
      "  {\"materials\": {\"red\": {\"albedo\": [0, 0, 1]}}}]}");
  kiln_scene_info info;
  kiln_scene_get_info(kiln_job_scene(job), &info);
  KT_EQ(info.width, 64);
  KT_EQ(info.height, 48);
  KT_EQ(info.spp, 2);
  kiln_job_frame fr;
  jt_next(job, &fr);
  kiln_scene *s;
  KT_CODE(kiln_job_frame_scene(job, &fr, NULL, &s), 0);
  kiln_scene_get_info(s, &info);
  KT_EQ(info.width, 64);
  KT_EQ(info.spp, 2);
  kiln_scene_destroy(s);
  kiln_job_frame_clear(&fr);
  kiln_job_destroy(job);
  job = jt_load("job.json", "{\"scene\": \"scene.json\", \"images\": [{}]}");
  kiln_scene_get_info(kiln_job_scene(job), &info);
  KT_EQ(info.width, 32);
  KT_EQ(info.spp, 4);
  kiln_job_destroy(job);
  st_tmp_cleanup();
}

/* ---- frame scenes ------------------------------------------------------------------------- */

static const kiln__material *material(const kiln_scene *s, const char *name) {
  for (size_t i = 0; i < s->data.nmaterials; i++)
    if (s->data.materials[i].name && strcmp(s->data.materials[i].name, name) == 0)
      return &s->data.materials[i];
  KT_FAIL("no material %s", name);
  return NULL;
}

TEST(frame_scene_applies_the_patch) {
  jt_setup();
  kiln_job *job = jt_load(
      "list.jsonl",
      "{\"name\": \"plain\"}\n"
      "{\"materials\": {\"red\": {\"albedo\": [0.1, 0.9, 0.2]}, \"metal\": {\"type\": \"dielectric\", \"ior\": 1.3}}, "
      "\"objects\": {\"ball\": {\"transform\": {\"translate\": [1, 0, 0], \"scale\": 2}}}, "
      "\"lights\": {\"key\": {\"radiance\": [1, 2, 3]}}, "
      "\"environment\": {\"type\": \"gradient\", \"bottom\": [0, 0, 0], \"top\": [1, 1, 1]}}\n");
  kiln_job_frame fr;
  kiln_scene *s = (kiln_scene *)1;
  jt_next(job, &fr);
  KT_CODE(kiln_job_frame_scene(job, &fr, NULL, &s), 0);
  KT_TRUE(s == NULL); /* no patch: the job's scene serves */
  kiln_job_frame_clear(&fr);
  jt_next(job, &fr);
  kiln_error_detail e;
  KT_CODE(kiln_job_frame_scene(job, &fr, &e, &s), 0);
  const kiln_scene *base = kiln_job_scene(job);
  /* the material: albedo replaced; the metal became glass */
  near3(material(base, "red")->albedo, 0.8, 0.1, 0.1, 1e-7);
  near3(material(s, "red")->albedo, 0.1, 0.9, 0.2, 1e-7);
  KT_EQ(material(base, "metal")->type, KILN__MAT_CONDUCTOR);
  KT_EQ(material(s, "metal")->type, KILN__MAT_DIELECTRIC);
  KT_NEAR(material(s, "metal")->ior, 1.3, 1e-6);
  /* the ball: transform replaced (scale 2 then translate), the rest of it kept */
  KT_EQ(s->data.nspheres, 1);
  near3(base->data.spheres[0].center, 0, 1, 0, 0);
  near3(s->data.spheres[0].center, 1, 2, 0, 1e-6);
  KT_NEAR(s->data.spheres[0].radius, 1, 1e-6);
  /* the light's radiance, the environment replaced (another type) */
  KT_EQ(s->data.nmaterials, base->data.nmaterials);
  near3(material(s, "key")->emission, 1, 2, 3, 0);
  KT_EQ(s->data.env.type, KILN__ENV_GRADIENT);
  near3(s->data.env.top, 1, 1, 1, 0);
  KT_EQ(base->data.env.type, KILN__ENV_CONSTANT);
  /* everything else as it was */
  KT_EQ(s->data.ntris, base->data.ntris);
  KT_EQ(memcmp(s->data.pos, base->data.pos, 9 * sizeof(float) * s->data.ntris), 0);
  kiln_scene_destroy(s);
  kiln_job_frame_clear(&fr);
  kiln_job_destroy(job);
  st_tmp_cleanup();
}

/* A point light's override: its own keys (not a quad's), applied when the frame's scene loads,
 * and its values checked there, with the path. */
TEST(frame_scene_overrides_a_point_light) {
  jt_setup();
  st_write(jt_dir, "scene.json",
           "{\"settings\": {\"width\": 8, \"height\": 8},\n"
           " \"camera\": {\"position\": [0, 1, -4], \"look_at\": [0, 0, 0]},\n"
           " \"objects\": [{\"type\": \"sphere\", \"center\": [0, 0, 0], \"radius\": 1,\n"
           "   \"material\": {\"type\": \"diffuse\"}}],\n"
           " \"lights\": [{\"type\": \"point\", \"name\": \"bulb\", \"position\": [0, 3, 0],\n"
           "   \"power\": 10}]}\n",
           (size_t)-1);
  kiln_job *job = jt_load("list.jsonl",
                          "{\"lights\": {\"bulb\": {\"power\": 40, \"position\": [1, 3, 0]}}}\n"
                          "{\"lights\": {\"bulb\": {\"power\": -1}}}\n");
  kiln_job_frame fr;
  kiln_scene *s;
  kiln_error_detail e;
  jt_next(job, &fr);
  KT_CODE(kiln_job_frame_scene(job, &fr, &e, &s), 0);
  const kiln__plight *b = &kiln_job_scene(job)->data.plights[0], *l = &s->data.plights[0];
  KT_EQ(s->data.nplights, 1);
  near3(l->position, 1, 3, 0, 0);
  KT_NEAR(l->color[0], 4 * b->color[0], 1e-6);
  kiln_scene_destroy(s);
  kiln_job_frame_clear(&fr);
  jt_next(job, &fr);
  KT_CODE(kiln_job_frame_scene(job, &fr, &e, &s), KILN_EPARSE);
  KT_TRUE(strstr(e.path, "lights.bulb.power") != NULL || strstr(e.message, "power") != NULL);
  kiln_job_frame_clear(&fr);
  kiln_job_destroy(job);
  /* a quad's key on a point light is refused when the list loads, with did-you-mean */
  st_write(jt_dir, "bad.jsonl", "{\"lights\": {\"bulb\": {\"radiance\": [1, 1, 1]}}}\n", (size_t)-1);
  kiln_job_options opt = {.scene = jt_path("scene.json")};
  kiln_job *bad = NULL;
  KT_CODE(kiln_job_load(jt_path("bad.jsonl"), &opt, &e, &bad), KILN_EPARSE);
  KT_TRUE(strstr(e.message, "radiance") != NULL);
  st_tmp_cleanup();
}

/* A value only the scene loader refuses (a sphere scaled unevenly) fails that frame alone, and the
 * error names the frame and the override's path. */
TEST(frame_scene_error_names_the_frame) {
  jt_setup();
  kiln_job *job = jt_load(
      "list.jsonl",
      "{\"name\": \"ok\", \"objects\": {\"crate\": {\"transform\": {\"scale\": [1, 2, 1]}}}}\n"
      "{\"name\": \"bad\", \"objects\": {\"ball\": {\"transform\": {\"scale\": [1, 2, 1]}}}}\n");
  kiln_job_frame fr;
  kiln_scene *s;
  kiln_error_detail e;
  jt_next(job, &fr);
  KT_CODE(kiln_job_frame_scene(job, &fr, &e, &s), 0);
  kiln_scene_destroy(s);
  kiln_job_frame_clear(&fr);
  jt_next(job, &fr);
  KT_CODE(kiln_job_frame_scene(job, &fr, &e, &s), KILN_EPARSE);
  KT_TRUE(s == NULL);
  KT_STR_EQ(e.file, fr.where);
  KT_STR_CONTAINS(e.file, "list.jsonl:2");
  KT_EQ(e.line, 0);
  KT_STR_CONTAINS(e.path, "objects.ball");
  KT_STR_CONTAINS(e.message, "uniformly");
  kiln_job_frame_clear(&fr);
  kiln_job_destroy(job);
  st_tmp_cleanup();
}

/* kiln_job_frame_scene checks its arguments at run time (with NDEBUG an assert would not), and
 * every call that fills a kiln_error_detail sets its code to what it returns. */
TEST(frame_scene_null_arguments_are_einval) {
  jt_setup();
  kiln_job *job = jt_load(
      "list.jsonl",
      "{\"name\": \"ok\", \"objects\": {\"crate\": {\"transform\": {\"scale\": [1, 2, 1]}}}}\n");
  kiln_job_frame fr;
  kiln_scene *s = (kiln_scene *)1;
  kiln_error_detail e;
  jt_next(job, &fr);
  KT_CODE(kiln_job_frame_scene(NULL, &fr, &e, &s), KILN_EINVAL);
  KT_EQ(e.code, KILN_EINVAL);
  KT_TRUE(s == NULL);
  KT_CODE(kiln_job_frame_scene(job, NULL, &e, &s), KILN_EINVAL);
  KT_CODE(kiln_job_frame_scene(job, &fr, NULL, NULL), KILN_EINVAL);
  KT_CODE(kiln_job_frame_scene(job, &fr, &e, &s), 0);
  KT_EQ(e.code, 0);
  KT_STR_EQ(e.message, "");
  kiln_scene_destroy(s);
  kiln_job_frame_clear(&fr);
  kiln_job_destroy(job);
  st_tmp_cleanup();
}

TEST(error_detail_code_is_the_code_returned) {
  jt_setup();
  kiln_error_detail e;
  kiln_job *job = NULL;
  st_write(jt_dir, "bad.json",
           "{\"scene\": \"scene.json\", \"animation\": {\"frames\": {\"end\": -1}}}", (size_t)-1);
  int rc = kiln_job_load(jt_path("bad.json"), NULL, &e, &job);
  KT_TRUE(rc < 0);
  KT_EQ(e.code, rc);
  KT_TRUE(job == NULL);
  unsigned passes = 0;
  KT_CODE(kiln_pass_parse("depth,bogus", &passes, &e), KILN_EPARSE);
  KT_EQ(e.code, KILN_EPARSE);
  KT_STR_CONTAINS(e.message, "unknown pass \"bogus\"");
  KT_STR_EQ(e.file, "");
  KT_CODE(kiln_pass_parse("depth,object_id", &passes, &e), 0);
  KT_EQ(e.code, 0);
  KT_EQ(passes, KILN_PASS_COLOR | KILN_PASS_DEPTH | KILN_PASS_ID);
  KT_CODE(kiln_pass_parse("depth", &passes, NULL), 0);
  char buf[64];
  kiln_error_detail d = {KILN_EPARSE, "f.json", 3, 7, "a.b", "bad"};
  KT_STR_EQ(kiln_error_detail_format(&d, buf, sizeof buf), "f.json:3:7: a.b: bad");
  st_tmp_cleanup();
}

/* Every format name maps to the format whose name it is, derived from the one table ("jpeg" is
 * JPEG wherever it sits in the table), and a format's name parses back to it. */
TEST(format_names_come_from_the_table) {
  for (int i = 0; kiln__format_names[i]; i++) {
    kiln_format f;
    KT_CODE(kiln_format_parse(kiln__format_names[i], &f), 0);
    KT_EQ(f, kiln__format_of(i));
    KT_TRUE(f != KILN_FORMAT_DEFAULT);
    kiln_format g;
    KT_CODE(kiln_format_parse(kiln_format_name(f), &g), 0);
    KT_EQ(g, f);
  }
  kiln_format f;
  KT_CODE(kiln_format_parse("jpeg", &f), 0);
  KT_EQ(f, KILN_FORMAT_JPEG);
  KT_STR_EQ(kiln_format_name(KILN_FORMAT_JPEG), "jpg");
  KT_STR_EQ(kiln_format_name(KILN_FORMAT_PNG16), "png16");
  KT_STR_EQ(kiln_format_name(KILN_FORMAT_DEFAULT), "default");
  KT_STR_EQ(kiln_format_name((kiln_format)99), "?");
  KT_CODE(kiln_format_parse("default", &f), KILN_EPARSE);
}

static bool count_even(void *arg, long frame) {
  (*(int *)arg)++;
  return frame % 2 == 0;
}

/* The frame numbers the job notes at load (what the batch counts its selection from, without
 * reading the list again) are those kiln_job_next gives, in order. */
TEST(job_frame_numbers_noted_at_load) {
  jt_setup();
  kiln_job *job = jt_load(
      "list.jsonl",
      "{\"frame\": 7}\n{\"frame\": 8}\n\n{\"frame\": 9}\n{\"frame\": 3}\n{\"frame\": 100}\n{\"frame\": 4}\n"
      "{\"frame\": 8}\n{}\n{}\n");
  int calls = 0;
  KT_EQ(kiln__job_count_frames(job, count_even, &calls), 5); /* 8, 100, 4, 8, and 8 (line 9) */
  KT_EQ(calls, 9);
  long want[] = {7, 8, 9, 3, 100, 4, 8, 7, 8};
  kiln_job_frame fr;
  for (int i = 0; i < 9; i++) {
    jt_next(job, &fr);
    KT_EQ(fr.frame, want[i]);
    kiln_job_frame_clear(&fr);
  }
  kiln_job_destroy(job);
  st_tmp_cleanup();
}

typedef struct fs_arg {
  const kiln_job *job;
  kiln_job_frame fr;
  kiln_scene *s;
} fs_arg;

static int frame_scene_task(void *arg, void **result) {
  fs_arg *a = arg;
  *result = NULL;
  return kiln_job_frame_scene(a->job, &a->fr, NULL, &a->s);
}

TEST(frame_scene_from_many_tasks_at_once) {
  jt_setup();
  enum { N = 24 };
  char text[N * 200], *p = text;
  for (int i = 0; i < N; i++)
    p += snprintf(p, sizeof text - (size_t)(p - text),
                  "{\"materials\": {\"red\": {\"albedo\": [%g, 0, 0]}}, \"objects\": {\"ball\": "
                  "{\"transform\": {\"translate\": [%d, 0, 0]}}}}\n",
                  i / 32.0, i);
  kiln_job *job = jt_load("list.jsonl", text);
  fs_arg args[N];
  for (int i = 0; i < N; i++) {
    args[i].job = job, args[i].s = NULL;
    jt_next(job, &args[i].fr);
  }
  kiln_pool_config cfg;
  kiln_pool_config_default(&cfg);
  cfg.threads = 4;
  kiln_pool *pool;
  KT_CODE(kiln_pool_create(&cfg, &pool), 0);
  kiln_future *f[N];
  for (int i = 0; i < N; i++) KT_CODE(kiln_submit(pool, frame_scene_task, &args[i], &f[i]), 0);
  for (int i = 0; i < N; i++) {
    KT_CODE(kiln_future_result(f[i], -1, NULL), 0);
    kiln_future_release(f[i]);
  }
  kiln_pool_destroy(pool);
  for (int i = 0; i < N; i++) {
    near3(args[i].s->data.spheres[0].center, i, 1, 0, 1e-6);
    KT_NEAR(material(args[i].s, "red")->albedo[0], i / 32.0, 1e-7);
    kiln_scene_destroy(args[i].s);
    kiln_job_frame_clear(&args[i].fr);
  }
  kiln_job_destroy(job);
  st_tmp_cleanup();
}

/* ---- errors ------------------------------------------------------------------------------- */

/* One malformed input: the files written, the one loaded, and where the error must point: the
 * first occurrence of marker in the text of the file named (line and column), the JSON path, and
 * a fragment of the message. */
typedef struct jcase {
  const char *job, *list; /* job.json, list.jsonl texts (NULL: not written) */
  const char *load;       /* the file loaded */
  int code;
  const char *file;   /* err.file ends with this */
  const char *marker; /* NULL: line and column 0 */
  const char *path, *fragment;
} jcase;

#define J(text) text, NULL, "job.json"
#define L(text) NULL, text, "list.jsonl"
#define JF "job.json"
#define LF "list.jsonl"
#define CAM_KEYS(k) ANIM("{\"frames\": 10, \"camera\": {\"keyframes\": [" k "]}}")

static const jcase cases[] = {
    /* the job */
    {J("{\"scene\": \"scene.json\",\n \"pases\": [\"depth\"], \"images\": []}"), KILN_EPARSE, JF,
     "\"pases\"", "pases", "did you mean 'passes'"},
    {J("{\"scene\": \"scene.json\",\n \"images\": [}"), KILN_EPARSE, JF, "}", "",
     "JSON syntax error"},
    {J("{\"scene\": \"scene.json\", \"passes\": [\"depth\",\n \"nromal\"], \"images\": []}"),
     KILN_EPARSE, JF, "\"nromal\"", "passes[1]", "did you mean 'normal'"},
    {J("{\"scene\": \"scene.json\", \"format\": \"tiff\", \"images\": []}"), KILN_EPARSE, JF,
     "\"tiff\"", "format", "unknown format 'tiff'"},
    {J("{\"scene\": \"scene.json\", \"output\": \"{frme}.png\", \"images\": []}"), KILN_EPARSE, JF,
     "\"{frme}", "output", "frme"},
    /* templates that leave the output folder, or overflow a width */
    {J("{\"scene\": \"scene.json\",\n \"output\": \"../{frame}.png\", \"images\": []}"),
     KILN_EPARSE, JF, "\"../", "output", "'..' component would write outside the output folder"},
    {J("{\"scene\": \"scene.json\",\n \"output\": \"/tmp/{frame}.png\", \"images\": []}"),
     KILN_EPARSE, JF, "\"/tmp", "output", "absolute path would write outside the output folder"},
    {J("{\"scene\": \"scene.json\", \"output\": \"a/{name}/../../../{frame}.png\",\n"
       " \"images\": []}"),
     KILN_EPARSE, JF, "\"a/", "output", "outside the output folder"},
    {J("{\"scene\": \"scene.json\", \"output\": \"{frame:04294967301d}.png\", \"images\": []}"),
     KILN_EPARSE, JF, "\"{frame", "output", "bad format"},
    /* \u0000 would cut the string short */
    {J("{\"scene\": \"scene.json\",\n \"description\": \"a\\u0000b\", \"images\": []}"),
     KILN_EPARSE, JF, "\\u0000", "", "\\u0000 in a string"},
    {L("{\"name\": \"a\"}\n{\"name\": \"a\\u0000b\"}\n"), KILN_EPARSE, LF, "\\u0000b", "",
     "\\u0000 in a string"},
    {J("{\"scene\": \"scene.json\", \"images\": [{\"name\": \"x\\u0000/../../y\"}]}"), KILN_EPARSE,
     JF, "\\u0000", "", "\\u0000 in a string"},
    {J("{\"scene\": \"scene.json\", \"width\": 0, \"images\": []}"), KILN_EPARSE, JF, "0,", "width",
     "width must be in [1, 16384]"},
    {J("{\"images\": []}"), KILN_EPARSE, JF, "{", "", "missing required key 'scene'"},
    {J("{\"scene\": \"scene.json\"}"), KILN_EPARSE, JF, "{", "", "needs 'animation' or 'images'"},
    {J("{\"scene\": \"scene.json\", \"animation\": {\"frames\": 1}, \"images\": []}"), KILN_EPARSE,
     JF, "[]", "images", "not both"},
    {J("{\"scene\": \"nowhere.json\", \"images\": []}"), KILN_EIO, "nowhere.json", NULL, "",
     "cannot open"},
    {J("{\"scene\": \"scene.json\", \"images\": \"missing.jsonl\"}"), KILN_EIO, JF,
     "\"missing.jsonl\"", "images", "cannot open"},
    /* animations */
    {J(ANIM("{\"frames\": {\"start\": 5, \"end\": 2}}")), KILN_EPARSE, JF, "2}",
     "animation.frames.end", "before start"},
    {J(ANIM("{\"frames\": {\"start\": 0, \"end\": 9, \"step\": 0}}")), KILN_EPARSE, JF, "0}}",
     "animation.frames.step", "step must be in [1"},
    {J(ANIM("{\"frames\": 2.5}")), KILN_EPARSE, JF, "2.5", "animation.frames", "frame count"},
    {J(ANIM("{\"frames\": 3, \"sed\": 1}")), KILN_EPARSE, JF, "\"sed\"", "animation.sed",
     "did you mean 'seed'"},
    {J(ANIM("{\"frames\": 3, \"seed\": \"random\"}")), KILN_EPARSE, JF, "\"random\"",
     "animation.seed", "\"scene\", \"frame\" or a number"},
    {J(ANIM("{\"frames\": 3, \"camera\": {\"orbit\": {\"radius\": 2}}}")), KILN_EPARSE, JF,
     "{\"radius\"", "animation.camera.orbit", "missing required key 'degrees'"},
    {J(ANIM("{\"frames\": 3, \"camera\": {\"orbit\": {\"degrees\": 9, \"radius\": -1}}}")),
     KILN_EPARSE, JF, "-1", "animation.camera.orbit.radius", "radius must be in [0"},
    {J(ANIM(
         "{\"frames\": 3, \"camera\": {\"orbit\": {\"degrees\": 9, \"height\": 1, \"elevation\": 5}}}")),
     KILN_EPARSE, JF, "5}", "animation.camera.orbit.elevation", "not both"},
    {J(ANIM("{\"frames\": 3, \"camera\": {\"orbit\": {\"degrees\": 9}, \"keyframes\": []}}")),
     KILN_EPARSE, JF, "[]", "animation.camera.keyframes", "not both"},
    {J(CAM_KEYS("{\"frame\": 4, \"position\": [0, 0, 1], \"look_at\": [0, 0, 0]},\n"
                " {\"frame\": 4, \"position\": [0, 0, 2], \"look_at\": [0, 0, 0]}")),
     KILN_EPARSE, JF, "4, \"position\": [0, 0, 2]", "animation.camera.keyframes[1].frame",
     "increasing frame order"},
    {J(CAM_KEYS("{\"frame\": 0, \"position\": [0, 0, 1], \"look_at\": [0, 0, 1]}")), KILN_EPARSE,
     JF, "{\"frame\": 0", "animation.camera.keyframes[0]", "look_at equals position"},
    {J(CAM_KEYS("{\"frame\": 0, \"look_at\": [0, 0, 1]}")), KILN_EPARSE, JF, "{\"frame\": 0",
     "animation.camera.keyframes[0]", "missing required key 'position'"},
    /* the path between two valid keys passes through look_at */
    {J(CAM_KEYS("{\"frame\": 0, \"position\": [0, 0, -1], \"look_at\": [0, 0, 0]},\n"
                " {\"frame\": 8, \"position\": [0, 0, 1], \"look_at\": [0, 0, 0]}")),
     KILN_EPARSE, JF, "{\"frame\": 8", "animation.camera.keyframes[1]", "frame 4, interpolated"},
    {J(ANIM("{\"frames\": 3, \"camera\": {\"interpolation\": \"spherical\", \"keyframes\": [\n"
            " {\"frame\": 0, \"position\": [0, 0, -1], \"look_at\": [0, 0, 0]},\n"
            " {\"frame\": 2, \"position\": [0, 0, 1], \"look_at\": [0, 0, 0]}]}}")),
     KILN_EPARSE, JF, "[0, 0, 1]", "animation.camera.keyframes[1].position", "ambiguous"},
    {J(ANIM("{\"frames\": 3, \"objects\": {\"bal\": {\"keyframes\": [{\"frame\": 0}]}}}")),
     KILN_EPARSE, JF, "{\"keyframes\"", "animation.objects.bal",
     "no object named 'bal' (did you mean 'ball'?)"},
    {J(ANIM(
         "{\"frames\": 3, \"objects\": {\"ball\": {\"keyframes\": [{\"frame\": 0, \"scale\": 1},\n"
         " {\"frame\": 2, \"scale\": [1, -1, 1]}]}}}")),
     KILN_EPARSE, JF, "[1, -1, 1]", "animation.objects.ball.keyframes[1].scale", "changes sign"},
    {J(ANIM(
         "{\"frames\": 3, \"objects\": {\"ball\": {\"keyframes\": [{\"frame\": 0, \"rotate\": [0, 1]}]}}}")),
     KILN_EPARSE, JF, "[0, 1]", "animation.objects.ball.keyframes[0].rotate", "Euler angles"},
    {J(ANIM(
         "{\"frames\": 3, \"objects\": {\"ball\": {\"keyframes\": [{\"frame\": 0, \"translte\": [0, 1, 0]}]}}}")),
     KILN_EPARSE, JF, "\"translte\"", "animation.objects.ball.keyframes[0].translte",
     "did you mean 'translate'"},
    /* the first key repeated in document order, at its second occurrence */
    {J(ANIM("{\"frames\": 3, \"objects\": {\"crate\": {\"keyframes\": [{\"frame\": 0}]},\n"
            " \"ball\": {\"keyframes\": [{\"frame\": 0}]},\n"
            " \"ball\" : {\"keyframes\": [{\"frame\": 1}]},\n"
            " \"crate\" : {\"keyframes\": [{\"frame\": 1}]}}}")),
     KILN_EPARSE, JF, "\"ball\" :", "animation.objects.ball", "duplicate key 'ball'"},
    /* list lines: file, line and column in the .jsonl */
    {L("{\"name\": \"a\"}\n{\"name\": \"b\",, }\n"), KILN_EPARSE, LF, " }", "",
     "JSON syntax error"},
    {L("{\"name\": \"a\"}\n\n{\"nme\": \"b\"}\n"), KILN_EPARSE, LF, "\"nme\"", "nme",
     "did you mean 'name'"},
    {L("{\"name\": \"a\"}\n# a comment\n"), KILN_EPARSE, LF, "# a", "", "comments are not allowed"},
    {L("[1, 2]\n"), KILN_EPARSE, LF, "[1, 2]", "", "must be a JSON object"},
    {L("{\"name\": \"../escape\"}\n"), KILN_EPARSE, LF, "\"../escape\"", "name",
     "not a safe file name"},
    {L("{\"name\": \"..\"}\n"), KILN_EPARSE, LF, "\"..\"", "name", "must not be '..'"},
    {L("{\"name\": \"\"}\n"), KILN_EPARSE, LF, "\"\"", "name", "non-empty string"},
    {L("{\"frame\": 1.5}\n"), KILN_EPARSE, LF, "1.5", "frame", "integer"},
    {L("{\"seed\": -1}\n"), KILN_EPARSE, LF, "-1", "seed",
     "seed must be in [0, 4.29497e+09], not -1"},
    {L("{\"camera\": {\"positon\": [0, 0, 0]}}\n"), KILN_EPARSE, LF, "\"positon\"",
     "camera.positon", "did you mean 'position'"},
    {L("{\"camera\": {\"position\": [0, 1, 0]}}\n"), KILN_EPARSE, LF, "{\"position\"", "camera",
     "look_at equals position"},
    {L("{\"camera\": {\"look_at\": [0, 1, 1]}, \"name\": \"x\"}\n{\"camera\": {\"position\": [0, 1, 2, 3]}}\n"),
     KILN_EPARSE, LF, "[0, 1, 2, 3]", "camera.position", "array of 3 numbers"},
    {L("{\"camera\": {\"type\": \"thin_lens\"}}\n"), KILN_EPARSE, LF, "{\"type\"", "camera",
     "missing required key 'aperture'"},
    {L("{\"camera\": {\"aperture\": 0.1}}\n"), KILN_EPARSE, LF, "\"aperture\"", "camera.aperture",
     "unknown key"},
    {L("{\"materials\": {\"redd\": {\"albedo\": [1, 0, 0]}}}\n"), KILN_EPARSE, LF, "{\"albedo\"",
     "materials.redd", "did you mean 'red'"},
    {L("{\"materials\": {\"metal\": {\"roughness\": 7}}}\n"), KILN_EPARSE, LF, "7}",
     "materials.metal.roughness", "roughness must be in [0, 1]"},
    {L("{\"materials\": {\"red\": {\"roughness\": 0.5}}}\n"), KILN_EPARSE, LF, "\"roughness\"",
     "materials.red.roughness", "unknown key"},
    {L("{\"materials\": {\"red\": {\"type\": \"emissive\"}}}\n"), KILN_EPARSE, LF, "{\"type\"",
     "materials.red", "missing required key 'emission'"},
    {L("{\"materials\": {\"red\": {}, \"red\": {}}}\n"), KILN_EPARSE, LF, "\"red\": {}}",
     "materials.red", "duplicate key"},
    {L("{\"objects\": {\"ball\": {}, \"crate\": {}, \"crate\" : {}, \"ball\" : {}}}\n"),
     KILN_EPARSE, LF, "\"crate\" :", "objects.crate", "duplicate key 'crate'"},
    {L("{\"lights\": {\"key\": {}, \"fill\": {}, \"key\" : {}, \"fill\" : {}}}\n"), KILN_EPARSE, LF,
     "\"key\" :", "lights.key", "duplicate key 'key'"},
    {L("{\"objects\": {\"box\": {\"transform\": {}}}}\n"), KILN_EPARSE, LF, "{\"transform\"",
     "objects.box", "no object named 'box'"},
    {L("{\"objects\": {\"ball\": {\"transform\": {\"matrix\": [1, 0]}}}}\n"), KILN_EPARSE, LF,
     "[1, 0]", "objects.ball.transform.matrix", "16 numbers"},
    {L("{\"objects\": {\"ball\": {\"material\": \"gold\"}}}\n"), KILN_EPARSE, LF, "\"gold\"",
     "objects.ball.material", "no material (in its 'materials') named 'gold'"},
    {L("{\"objects\": {\"ball\": {\"radius\": 2}}}\n"), KILN_EPARSE, LF, "\"radius\"",
     "objects.ball.radius", "unknown key"},
    {L("{\"lights\": {\"fill\": {\"radiance\": [1, 1, 1]}}}\n"), KILN_EPARSE, LF, "{\"radiance\"",
     "lights.fill", "no light named 'fill'"},
    {L("{\"lights\": {\"key\": {\"radiance\": [0, 0, 0]}}}\n"), KILN_EPARSE, LF, "[0, 0, 0]",
     "lights.key.radiance", "black"},
    {L("{\"lights\": {\"key\": {\"u\": [0, 0, 2]}}}\n"), KILN_EPARSE, LF, "{\"u\"", "lights.key",
     "zero area"},
    {L("{\"environment\": {\"type\": \"map\"}}\n"), KILN_EPARSE, LF, "{\"type\"", "environment",
     "missing required key 'file'"},
    {L("{\"environment\": {\"colour\": [1, 1, 1]}}\n"), KILN_EPARSE, LF, "\"colour\"",
     "environment.colour", "did you mean 'color'"},
    /* inline images: located in the job */
    {J("{\"scene\": \"scene.json\", \"images\": [\n {},\n {\"seed\": \"x\"}]}"), KILN_EPARSE, JF,
     "\"x\"", "images[1].seed", "seed must be a number"},
};

static void text_position(const char *text, const char *at, int *line, int *col) {
  *line = 1, *col = 1;
  for (const char *p = text; p < at; p++) {
    if (*p == '\n') (*line)++, *col = 1;
    else (*col)++;
  }
}

TEST(malformed_inputs_are_located) {
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const jcase *k = &cases[i];
    jt_setup();
    if (k->job) st_write(jt_dir, "job.json", k->job, (size_t)-1);
    if (k->list) st_write(jt_dir, "list.jsonl", k->list, (size_t)-1);
    kiln_job_options opt = {.scene = k->list ? jt_path("scene.json") : NULL};
    kiln_error_detail e;
    kiln_job *job = (kiln_job *)1;
    int rc = kiln_job_load(jt_path(k->load), &opt, &e, &job);
    char buf[2048];
    kiln_error_detail_format(&e, buf, sizeof buf);
    if (rc != k->code)
      KT_FAIL("case %zu: %s, expected %s: %s", i, kiln_err_name(rc), kiln_err_name(k->code), buf);
    KT_TRUE(job == NULL);
    size_t fl = strlen(e.file), wl = strlen(k->file);
    if (fl < wl || strcmp(e.file + fl - wl, k->file) != 0)
      KT_FAIL("case %zu: file %s, expected %s", i, e.file, k->file);
    int line = 0, col = 0;
    if (k->marker) {
      const char *text = strcmp(k->file, LF) == 0 ? k->list : k->job, *at = strstr(text, k->marker);
      if (!at) KT_FAIL("case %zu: marker %s not in the text", i, k->marker);
      text_position(text, at, &line, &col);
    }
    if (e.line != line || e.column != col)
      KT_FAIL("case %zu: at %d:%d, expected %d:%d: %s", i, e.line, e.column, line, col, buf);
    if (strcmp(e.path, k->path) != 0)
      KT_FAIL("case %zu: path '%s', expected '%s': %s", i, e.path, k->path, buf);
    if (!strstr(e.message, k->fragment))
      KT_FAIL("case %zu: message lacks '%s': %s", i, k->fragment, buf);
    st_tmp_cleanup();
  }
}

/* A template error found after loading (by kiln_batch_create, which needs the passes and the
 * format) is located at the job's "output" all the same. */
TEST(output_template_is_located_after_loading) {
  jt_setup();
  kiln_job *job = jt_load("job.json",
                          "{\"scene\": \"scene.json\",\n  \"output\": \"{frame}.jpg\",\n"
                          " \"animation\": {\"frames\": 2}}");
  kiln_error_detail e;
  memset(&e, 0, sizeof e);
  snprintf(e.message, sizeof e.message, "the reason");
  kiln__job_locate_output(job, &e);
  KT_STR_CONTAINS(e.file, "job.json");
  KT_EQ(e.line, 2);
  KT_EQ(e.column, 13);
  KT_STR_EQ(e.path, "output");
  KT_STR_EQ(e.message, "the reason");
  kiln_job_destroy(job);
  /* a job without its own template: nothing to point at */
  job = jt_load("job2.json", "{\"scene\": \"scene.json\", \"animation\": {\"frames\": 2}}");
  memset(&e, 0, sizeof e);
  kiln__job_locate_output(job, &e);
  KT_STR_EQ(e.file, "");
  KT_EQ(e.line, 0);
  kiln_job_destroy(job);
  st_tmp_cleanup();
}

/* A folder given as the job, or as its scene, says so. */
TEST(a_folder_is_not_a_file) {
  jt_setup();
  kiln_error_detail e;
  kiln_job *job = NULL;
  KT_CODE(kiln_job_load(jt_dir, NULL, &e, &job), KILN_EIO);
  KT_STR_CONTAINS(e.message, "is a directory");
  st_write(jt_dir, "job.json", "{\"scene\": \".\", \"images\": []}", (size_t)-1);
  KT_CODE(kiln_job_load(jt_path("job.json"), NULL, &e, &job), KILN_EIO);
  KT_STR_CONTAINS(e.message, "is a directory");
  KT_TRUE(job == NULL);
  st_tmp_cleanup();
}

/* ---- names at scale ---------------------------------------------------------------------------- */

/* A growing text, for documents of tens of thousands of names. */
typedef struct jt_text {
  char *p;
  size_t n, cap;
} jt_text;

static void jt_add(jt_text *t, const char *fmt, ...) KILN__PRINTF(2, 3);
static void jt_add(jt_text *t, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(t->p ? t->p + t->n : NULL, t->p ? t->cap - t->n : 0, fmt, ap);
    va_end(ap);
    KT_TRUE(w >= 0);
    if (t->p && t->n + (size_t)w < t->cap) {
      t->n += (size_t)w;
      return;
    }
    t->cap = (t->cap + (size_t)w + 1) * 2;
    KT_TRUE((t->p = realloc(t->p, t->cap)) != NULL);
  }
}

/* The first repeat in document order and lookups, against a direct search, on random names drawn
 * from a small set (so that repeats are many and runs long). */
TEST(name_index_matches_a_direct_search) {
  enum { N = 300 };
  char names[N][24];
  kiln__name_ref refs[N];
  srand(7);
  for (int trial = 0; trial < 200; trial++) {
    size_t n = (size_t)(rand() % N), alphabet = 1 + (size_t)(rand() % (2 * N));
    for (size_t i = 0; i < n; i++) {
      snprintf(names[i], sizeof names[i], "n%zu", (size_t)rand() % alphabet);
      refs[i] = (kiln__name_ref){names[i], i};
    }
    size_t want = SIZE_MAX;
    for (size_t i = 0; i < n && want == SIZE_MAX; i++)
      for (size_t j = 0; j < i; j++)
        if (strcmp(names[j], names[i]) == 0) want = i;
    kiln__names_sort(refs, n);
    KT_EQ(kiln__names_first_repeat(refs, n), want);
    for (size_t a = 0; a < alphabet + 1; a++) {
      char q[24];
      snprintf(q, sizeof q, "n%zu", a);
      size_t count = 0, first = SIZE_MAX;
      for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], q) == 0) first = first == SIZE_MAX ? i : first, count++;
      size_t got_count;
      const kiln__name_ref *r = kiln__names_find(refs, n, q, &got_count);
      KT_EQ(got_count, count);
      KT_EQ(r ? r->index : SIZE_MAX, first);
    }
  }
}

/* A list line of 60,000 distinct object names, and then one repeated: the repeat is found and
 * located at its second occurrence, the last key of the line. */
TEST(list_line_of_60000_keys_repeat_at_the_end_is_located) {
  jt_setup();
  jt_text t = {0};
  jt_add(&t, "{\"name\": \"many\", \"objects\": {");
  for (int i = 0; i < 60000; i++) jt_add(&t, "\"k%d\": {}, ", i);
  size_t at = t.n;
  jt_add(&t, "\"k31415\": {}}}\n");
  st_write(jt_dir, "list.jsonl", t.p, t.n);
  kiln_job_options opt = {.scene = jt_path("scene.json")};
  kiln_error_detail e;
  kiln_job *job;
  KT_CODE(kiln_job_load(jt_path("list.jsonl"), &opt, &e, &job), KILN_EPARSE);
  KT_STR_EQ(e.message, "duplicate key 'k31415'");
  KT_STR_EQ(e.path, "objects.k31415");
  KT_EQ(e.line, 1);
  KT_EQ(e.column, (int)at + 1);
  free(t.p);
  st_tmp_cleanup();
}

/* A scene of 20,000 named objects and materials, and a list line overriding objects and materials
 * across it by name: each override lands on the entry of its name. */
TEST(overrides_by_name_in_a_scene_of_20000_names) {
  enum { N = 20000 };
  jt_setup();
  jt_text t = {0};
  jt_add(&t, "{\"settings\": {\"width\": 8, \"height\": 8, \"spp\": 1},\n"
             " \"camera\": {\"position\": [0, 1, -4], \"look_at\": [0, 1, 0]},\n"
             " \"materials\": {");
  for (int i = 0; i < N; i++)
    jt_add(&t, "%s\"m%d\": {\"type\": \"diffuse\", \"albedo\": [%g, 0, 0]}", i ? ", " : "", i,
           i / (double)N);
  jt_add(&t, "},\n \"objects\": [");
  for (int i = 0; i < N; i++)
    jt_add(&t,
           "%s{\"type\": \"sphere\", \"name\": \"o%d\", \"center\": [0, 0, %d], \"radius\": 0.1, "
           "\"material\": \"m%d\"}",
           i ? ", " : "", i, i, i);
  jt_add(&t, "]}\n");
  st_write(jt_dir, "scene.json", t.p, t.n);
  kiln_job *job = jt_load(
      "list.jsonl", "{\"objects\": {\"o19999\": {\"material\": \"m0\"}, \"o1\": {\"material\": "
                    "\"m10000\"}, \"o10\": {\"material\": \"m1\"}}, "
                    "\"materials\": {\"m19999\": {\"albedo\": [0, 1, 0]}}}\n");
  kiln_job_frame fr;
  kiln_scene *s;
  kiln_error_detail e;
  jt_next(job, &fr);
  KT_CODE(kiln_job_frame_scene(job, &fr, &e, &s), 0);
  KT_EQ(s->data.nspheres, N);
  const struct {
    int object;
    const char *mat;
  } want[] = {{19999, "m0"}, {1, "m10000"}, {10, "m1"},
              {0, "m0"},     {100, "m100"}, {19998, "m19998"}};
  for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
    const kiln__sphere *sp = NULL;
    for (size_t i = 0; i < s->data.nspheres && !sp; i++)
      if (s->data.spheres[i].center[2] == (float)want[k].object) sp = &s->data.spheres[i];
    KT_TRUE(sp != NULL);
    KT_STR_EQ(s->data.materials[sp->material].name, want[k].mat);
  }
  near3(material(s, "m19999")->albedo, 0, 1, 0, 0);
  near3(material(s, "m0")->albedo, 0, 0, 0, 0);
  kiln_scene_destroy(s);
  kiln_job_frame_clear(&fr);
  kiln_job_destroy(job);
  free(t.p);
  st_tmp_cleanup();
}

TEST(scene_errors_are_located_in_the_scene) {
  jt_setup();
  st_write(jt_dir, "bad.json",
           "{\"camera\": {\"position\": [0, 0, 0],\n \"look_at\": [0, 0, 1], \"vfov\": 200}}",
           (size_t)-1);
  st_write(jt_dir, "job.json", "{\"scene\": \"bad.json\", \"images\": []}", (size_t)-1);
  kiln_error_detail e;
  kiln_job *job;
  KT_CODE(kiln_job_load(jt_path("job.json"), NULL, &e, &job), KILN_EPARSE);
  KT_STR_CONTAINS(e.file, "bad.json");
  KT_EQ(e.line, 2);
  KT_STR_EQ(e.path, "camera.vfov");
  /* a bare list needs a scene */
  st_write(jt_dir, "list.jsonl", "{}\n", (size_t)-1);
  KT_CODE(kiln_job_load(jt_path("list.jsonl"), NULL, &e, &job), KILN_EINVAL);
  KT_STR_CONTAINS(e.message, "names no scene");
  /* kiln_job_options.scene replaces the job's */
  kiln_job_options opt = {.scene = jt_path("scene.json")};
  KT_CODE(kiln_job_load(jt_path("job.json"), &opt, &e, &job), 0);
  KT_EQ(info_of(job).count, 0);
  kiln_job_destroy(job);
  KT_CODE(kiln_job_load(NULL, NULL, &e, &job), KILN_EINVAL);
  kiln_job_destroy(NULL);
  st_tmp_cleanup();
}

/* ---- the examples ---------------------------------------------------------------------------- */

static kiln_job *load_example(const char *name) {
  char path[1200];
  snprintf(path, sizeof path, "%s/../../examples/cornell/%s", st_src_dir(), name);
  kiln_error_detail e;
  kiln_job *job = NULL;
  int rc = kiln_job_load(path, NULL, &e, &job);
  char buf[2048];
  if (rc)
    KT_FAIL("%s: %s: %s", name, kiln_err_name(rc), kiln_error_detail_format(&e, buf, sizeof buf));
  return job;
}

TEST(cornell_examples_load) {
  kiln_job *job = load_example("orbit.json");
  KT_EQ(info_of(job).count, 120);
  KT_EQ(info_of(job).passes, KILN_PASS_COLOR | KILN_PASS_DEPTH | KILN_PASS_NORMAL);
  KT_EQ(info_of(job).format, KILN_FORMAT_PNG);
  kiln_scene_info info;
  kiln_scene_get_info(kiln_job_scene(job), &info);
  KT_EQ(info.width, 256);
  KT_EQ(info.height, 256);
  KT_EQ(info.spp, 16);
  kiln_job_frame fr;
  uint64_t n = 0;
  kiln_error_detail e;
  while (kiln_job_next(job, &fr, &e) == 0) {
    KT_EQ(fr.frame, (long)n);
    /* the camera stays in front of the open side of the box (z < 0), looking into it */
    KT_TRUE(fr.camera.position[2] < -0.5f);
    kiln_job_frame_clear(&fr);
    n++;
  }
  KT_EQ(n, 120);
  kiln_job_destroy(job);
  job = load_example("dataset.json");
  KT_TRUE(info_of(job).count >= 4);
  kiln_scene *s;
  while (kiln_job_next(job, &fr, &e) == 0) {
    KT_TRUE(fr.name[0] != '\0');
    KT_CODE(kiln_job_frame_scene(job, &fr, &e, &s), 0);
    kiln_scene_destroy(s);
    kiln_job_frame_clear(&fr);
  }
  kiln_job_destroy(job);
}

/* Every ```json block of docs/JOBS.md is a job that loads (with the ```json scene block as
 * scene.json and the last ```jsonl block as list.jsonl), every ```jsonl block a list that loads,
 * and every frame of each expands and its scene loads. */
static int expand_all(kiln_job *job, const char *what) {
  kiln_job_frame fr;
  kiln_error_detail e;
  char buf[2048];
  int n = 0, rc;
  while ((rc = kiln_job_next(job, &fr, &e)) == 0) {
    kiln_scene *s = NULL;
    if ((rc = kiln_job_frame_scene(job, &fr, &e, &s)))
      KT_FAIL("%s: %s: %s", what, fr.where, kiln_error_detail_format(&e, buf, sizeof buf));
    kiln_scene_destroy(s);
    kiln_job_frame_clear(&fr);
    n++;
  }
  KT_CODE(rc, KILN_EEOF);
  KT_EQ((uint64_t)n, info_of(job).count);
  return n;
}

TEST(every_documented_example_loads) {
  char path[1200];
  snprintf(path, sizeof path, "%s/../../docs/JOBS.md", st_src_dir());
  char *md = st_read_file(path, NULL);
  jt_setup();
  int jobs = 0, lists = 0, scenes = 0, line = 1;
  for (char *p = md; (p = strstr(p, "\n```")) != NULL;) {
    char *info = p + 4, *eol = strchr(info, '\n');
    if (!eol) break;
    line = 1;
    for (char *q = md; q <= p; q++) line += *q == '\n';
    char *body = eol + 1, *close = strstr(body, "\n```");
    if (!close) KT_FAIL("JOBS.md: unterminated block at line %d", line);
    *close = '\0';
    *eol = '\0';
    char what[64];
    snprintf(what, sizeof what, "JOBS.md block at line %d", line);
    if (strcmp(info, "json scene") == 0) {
      st_write(jt_dir, "scene.json", body, (size_t)-1);
      scenes++;
    } else if (strcmp(info, "jsonl") == 0) {
      kiln_job *job = jt_load("list.jsonl", body);
      KT_TRUE(expand_all(job, what) > 0);
      kiln_job_destroy(job);
      lists++;
    } else if (strcmp(info, "json") == 0) {
      kiln_job *job = jt_load("job.json", body);
      KT_TRUE(expand_all(job, what) > 0);
      kiln_job_destroy(job);
      jobs++;
    }
    p = close + 1;
    if (*p == '`') p += 3; /* past the closing fence */
  }
  KT_EQ(scenes, 1);
  KT_EQ(jobs, 13); /* the number of ```json blocks in JOBS.md: update with it */
  KT_EQ(lists, 2);
  free(md);
  st_tmp_cleanup();
}
