/* test_job_camera.c: cameras per frame as datasets give them (docs/JOBS.md): a list line's
 * camera-to-world matrix and intrinsics, the scene's intrinsics carried through lines, orbits and
 * keyframes (and replaced by their own vfov), and the errors of a line's camera, located. */
#include <math.h>

#include "batch_internal.h"
#include "kiln/batch.h"
#include "kiln/render.h"
#include "scene/scene_test_util.h"

static const char *scene_plain =
    "{\"settings\": {\"width\": 32, \"height\": 24},\n"
    " \"camera\": {\"position\": [0, 1, -4], \"look_at\": [0, 1, 0], \"vfov\": 40},\n"
    " \"objects\": [{\"type\": \"sphere\", \"name\": \"ball\", \"center\": [0, 1, 0], "
    "\"radius\": 0.5, \"material\": {\"type\": \"diffuse\"}}]}\n";

static const char *scene_k =
    "{\"settings\": {\"width\": 32, \"height\": 24},\n"
    " \"camera\": {\"position\": [0, 1, -4], \"look_at\": [0, 1, 0],\n"
    "            \"fx\": 30, \"fy\": 33, \"cx\": 12, \"cy\": 10.5},\n"
    " \"objects\": [{\"type\": \"sphere\", \"name\": \"ball\", \"center\": [0, 1, 0], "
    "\"radius\": 0.5, \"material\": {\"type\": \"diffuse\"}}]}\n";

static char dir[600];

/* Writes scene and the job file name (text), loads it; NULL and *e filled when it fails. */
static kiln_job *load(const char *scene, const char *name, const char *text, kiln_error_detail *e) {
  snprintf(dir, sizeof dir, "%s", st_tmpdir());
  st_write(dir, "scene.json", scene, (size_t)-1);
  char sp[700], jp[1024];
  snprintf(sp, sizeof sp, "%s/scene.json", dir);
  snprintf(jp, sizeof jp, "%s", st_write(dir, name, text, (size_t)-1));
  kiln_job_options opt = {.scene = strstr(name, ".jsonl") ? sp : NULL};
  kiln_job *job = NULL;
  int rc = kiln_job_load(jp, &opt, e, &job);
  KT_TRUE((rc == 0) == (job != NULL));
  return job;
}

static kiln_job *load_ok(const char *scene, const char *name, const char *text) {
  kiln_error_detail e;
  kiln_job *job = load(scene, name, text, &e);
  if (!job) {
    char buf[2048];
    KT_FAIL("load %s: %s", name, kiln_error_detail_format(&e, buf, sizeof buf));
  }
  return job;
}

static void next(kiln_job *job, kiln_job_frame *fr) {
  kiln_error_detail e;
  if (kiln_job_next(job, fr, &e)) {
    char buf[2048];
    KT_FAIL("next: %s", kiln_error_detail_format(&e, buf, sizeof buf));
  }
}

static void done(kiln_job *job) {
  kiln_job_destroy(job);
  st_tmp_cleanup();
}

/* A list line's matrix (OpenCV axes, a camera 800 mm away as BOP gives them) and K: the frame's
 * camera gives both back; the size defaults to the scene's. */
TEST(camera_list_line_matrix_and_k) {
  static const double M[16] = {0.6, 0, 0.8, -640, 0, 1, 0, 250, -0.8, 0, 0.6, 480, 0, 0, 0, 1};
  kiln_job *job = load_ok(
      scene_plain, "list.jsonl",
      "{\"camera\": {\"convention\": \"opencv\", \"matrix\": [0.6, 0, 0.8, -640, 0, 1, 0, 250, "
      "-0.8, 0, 0.6, 480, 0, 0, 0, 1], \"K\": [[40, 0, 16.5], [0, 41, 11], [0, 0, 1]]}}\n"
      "{\"camera\": {\"fx\": 20, \"intrinsics_size\": [64, 48]}}\n"
      "{\"name\": \"plain\"}\n");
  kiln_job_frame fr;
  next(job, &fr);
  double G[16], K[9];
  KT_CODE(kiln_camera_to_world(&fr.camera, KILN_CAMERA_CV, G), KILN_OK);
  for (int i = 0; i < 16; i++) ST_NEAR(G[i], M[i], i % 4 == 3 && i < 12 ? 1e-4 : 1e-6);
  KT_CODE(kiln_camera_intrinsics(&fr.camera, 32, 24, K), KILN_OK);
  const double want[9] = {40, 0, 16.5, 0, 41, 11, 0, 0, 1};
  for (int i = 0; i < 9; i++) ST_NEAR(K[i], want[i], 0);
  KT_EQ(fr.camera.k_width, 32);
  KT_EQ(fr.camera.k_height, 24);
  kiln_job_frame_clear(&fr);
  next(job, &fr); /* the scene's pose, intrinsics for another size */
  ST_NEAR(fr.camera.position[2], -4, 0);
  KT_CODE(kiln_camera_intrinsics(&fr.camera, 32, 24, K), KILN_OK);
  const double half[9] = {10, 0, 15.5, 0, 10, 11.5, 0, 0, 1};
  for (int i = 0; i < 9; i++) ST_NEAR(K[i], half[i], 0);
  kiln_job_frame_clear(&fr);
  next(job, &fr);
  KT_EQ(fr.camera.k_width, 0);
  ST_NEAR(fr.camera.vfov_deg, 40, 0);
  kiln_job_frame_clear(&fr);
  done(job);
}

/* The scene's intrinsics go with every line that keeps them; a line's vfov replaces them. */
TEST(camera_list_line_vfov_replaces_scene_intrinsics) {
  kiln_job *job = load_ok(scene_k, "list.jsonl",
                          "{\"camera\": {\"position\": [0, 1, -3]}}\n"
                          "{\"camera\": {\"vfov\": 30}}\n");
  kiln_job_frame fr;
  next(job, &fr);
  KT_EQ(fr.camera.k_width, 32);
  ST_NEAR(fr.camera.fx, 30, 0);
  ST_NEAR(fr.camera.cy, 10.5, 0);
  kiln_job_frame_clear(&fr);
  next(job, &fr);
  KT_EQ(fr.camera.k_width, 0);
  ST_NEAR(fr.camera.vfov_deg, 30, 0);
  kiln_job_frame_clear(&fr);
  done(job);
}

/* Orbits and keyframes keep the scene's intrinsics unless they give a vfov of their own. */
TEST(camera_anim_keeps_scene_intrinsics) {
  kiln_job *job = load_ok(scene_k, "job.json",
                          "{\"scene\": \"scene.json\", \"animation\": {\"frames\": 4,\n"
                          " \"camera\": {\"orbit\": {\"degrees\": 90}}}}");
  kiln_job_frame fr;
  next(job, &fr);
  KT_EQ(fr.camera.k_width, 32);
  ST_NEAR(fr.camera.fy, 33, 0);
  kiln_job_frame_clear(&fr);
  done(job);
  job = load_ok(scene_k, "job.json",
                "{\"scene\": \"scene.json\", \"animation\": {\"frames\": 4,\n"
                " \"camera\": {\"orbit\": {\"degrees\": 90, \"vfov\": 50}}}}");
  next(job, &fr);
  KT_EQ(fr.camera.k_width, 0);
  ST_NEAR(fr.camera.vfov_deg, 50, 0);
  kiln_job_frame_clear(&fr);
  done(job);
  /* keyframes: frame 0 keeps K; towards a key with its own vfov the field blends from K's */
  job = load_ok(scene_k, "job.json",
                "{\"scene\": \"scene.json\", \"animation\": {\"frames\": 3,\n"
                " \"camera\": {\"keyframes\": [{\"frame\": 0, \"position\": [0, 1, -4], "
                "\"look_at\": [0, 1, 0]}, {\"frame\": 2, \"position\": [0, 1, -4], "
                "\"look_at\": [0, 1, 0], \"vfov\": 60}]}}}");
  double kv = 2 * atan(12.0 / 33) * 180 / 3.14159265358979323846;
  next(job, &fr);
  KT_EQ(fr.camera.k_width, 32);
  kiln_job_frame_clear(&fr);
  next(job, &fr);
  KT_EQ(fr.camera.k_width, 0);
  ST_NEAR(fr.camera.vfov_deg, 0.5 * (kv + 60), 1e-4);
  kiln_job_frame_clear(&fr);
  next(job, &fr);
  ST_NEAR(fr.camera.vfov_deg, 60, 0);
  kiln_job_frame_clear(&fr);
  done(job);
}

typedef struct ecase {
  const char *line, *marker, *path, *fragment;
} ecase;

static const ecase cases[] = {
    {"{\"camera\": {\"position\": [0, 0, 1], \"matrix\": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, "
     "0, 0, 0, 1]}}",
     "[0, 0, 1]", "camera.position", "position and matrix both give the camera's pose"},
    {"{\"camera\": {\"matrix\": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 3, 0, 0, 0, 0, 1]}}", "[1, 0",
     "camera.matrix", "scaled"},
    {"{\"camera\": {\"vfov\": 20, \"fx\": 30}}", "20", "camera.vfov", "both give the field of view"},
    {"{\"camera\": {\"K\": [30, 0.2, 1, 0, 30, 1, 0, 0, 1]}}", "[30", "camera.K", "skew"},
    {"{\"camera\": {\"fx\": -1}}", "-1", "camera.fx", "fx must be > 0"},
    {"{\"camera\": {\"type\": \"thin_lens\", \"aperture\": 0.1, \"matrix\": [1, 0, 0, 0, 0, 1, 0, "
     "0, 0, 0, 1, 0, 0, 0, 0, 1]}}",
     "{\"type\"", "camera", "matrix needs focus_distance"},
};

TEST(camera_list_line_camera_errors) {
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char text[1024];
    snprintf(text, sizeof text, "{}\n%s\n", cases[i].line);
    kiln_error_detail e;
    kiln_job *job = load(scene_plain, "list.jsonl", text, &e);
    /* lines are read when the frame is reached, or all at load: either way, located */
    kiln_job_frame fr;
    int rc = job ? kiln_job_next(job, &fr, &e) : KILN_EPARSE;
    if (job && !rc) kiln_job_frame_clear(&fr), rc = kiln_job_next(job, &fr, &e);
    char buf[2048];
    kiln_error_detail_format(&e, buf, sizeof buf);
    if (rc != KILN_EPARSE) KT_FAIL("case %zu: %s: %s", i, kiln_err_name(rc), buf);
    const char *at = strstr(cases[i].line, cases[i].marker);
    int line = 2, col = 1;
    for (const char *p = cases[i].line; p < at; p++) {
      if (*p == '\n') line++, col = 1;
      else col++;
    }
    if (strcmp(e.path, cases[i].path) != 0)
      KT_FAIL("case %zu: path '%s', want '%s': %s", i, e.path, cases[i].path, buf);
    if (!strstr(e.message, cases[i].fragment))
      KT_FAIL("case %zu: message lacks '%s': %s", i, cases[i].fragment, buf);
    if (e.line != line || e.column != col)
      KT_FAIL("case %zu: at %d:%d, want %d:%d: %s", i, e.line, e.column, line, col, buf);
    kiln_job_destroy(job);
    st_tmp_cleanup();
  }
}
