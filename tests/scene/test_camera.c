/* test_camera.c: the scene camera as datasets give it: a camera-to-world matrix in either
 * convention (read back the same through kiln_camera_to_world), intrinsics as fx/fy/cx/cy or K
 * (read back through kiln_camera_intrinsics, scaled with the image), and every way to get them
 * wrong as a located error. */
#define _GNU_SOURCE
#include <math.h>

#include "kiln/render.h"
#include "scene_test_util.h"

/* The scene camera as a kiln_camera (what the job reader and the renderer copy). */
static kiln_camera public_camera(const kiln_scene *s) {
  const kiln__camera *c = &st_data(s)->camera;
  kiln_camera k = {.thin_lens = c->type == KILN__CAM_THIN_LENS,
                   .vfov_deg = c->vfov_deg,
                   .aperture = c->aperture,
                   .focus_distance = c->focus_distance,
                   .fx = c->fx,
                   .fy = c->fy,
                   .cx = c->cx,
                   .cy = c->cy,
                   .k_width = c->k_width,
                   .k_height = c->k_height};
  memcpy(k.position, c->position, 12), memcpy(k.look_at, c->look_at, 12), memcpy(k.up, c->up, 12);
  return k;
}

static void matrix_json(char *out, size_t cap, const double M[16], const char *conv) {
  int n = snprintf(out, cap, "{\"camera\": {\"convention\": \"%s\", \"matrix\": [", conv);
  for (int i = 0; i < 16; i++) n += snprintf(out + n, cap - (size_t)n, "%s%.17g", i ? ", " : "", M[i]);
  snprintf(out + n, cap - (size_t)n, "]}}");
}

/* A rotation about a unit axis by a (radians) into the 3x3 part of M, and translation t. */
static void rigid(double M[16], const double ax[3], double a, const double t[3]) {
  double c = cos(a), s = sin(a), C = 1 - c, x = ax[0], y = ax[1], z = ax[2];
  const double R[9] = {c + x * x * C,     x * y * C - z * s, x * z * C + y * s,
                       y * x * C + z * s, c + y * y * C,     y * z * C - x * s,
                       z * x * C - y * s, z * y * C + x * s, c + z * z * C};
  for (int i = 0; i < 3; i++) {
    for (int j = 0; j < 3; j++) M[4 * i + j] = R[3 * i + j];
    M[4 * i + 3] = t[i];
  }
  M[12] = M[13] = M[14] = 0, M[15] = 1;
}

/* A matrix camera, loaded, gives its matrix back in its own convention and the other's (which
 * differs by flipping the y and z axes). */
TEST(camera_matrix_round_trip) {
  const double axis[3] = {0.48, -0.6, 0.64}; /* unit */
  const double t[3] = {1.5, -2.25, 7.0};
  const char *convs[] = {"opengl", "opencv"};
  for (int ci = 0; ci < 2; ci++) {
    for (int k = 0; k < 4; k++) {
      double M[16], G[16];
      rigid(M, axis, 0.3 + 1.4 * k, t);
      char json[1024];
      matrix_json(json, sizeof json, M, convs[ci]);
      kiln_scene *s = st_load_ok(json, NULL);
      kiln_camera cam = public_camera(s);
      KT_CODE(kiln_camera_to_world(&cam, ci ? KILN_CAMERA_CV : KILN_CAMERA_GL, G), KILN_OK);
      for (int i = 0; i < 16; i++) ST_NEAR(G[i], M[i], 1e-6);
      KT_CODE(kiln_camera_to_world(&cam, ci ? KILN_CAMERA_GL : KILN_CAMERA_CV, G), KILN_OK);
      for (int i = 0; i < 16; i++) {
        double flip = (i % 4 == 1 || i % 4 == 2) && i < 12 ? -1 : 1;
        ST_NEAR(G[i], flip * M[i], 1e-6);
      }
      kiln_scene_destroy(s);
    }
  }
}

/* A camera far from the origin (millimetres, as BOP writes them) keeps its rotation. */
TEST(camera_matrix_far_from_origin) {
  const double axis[3] = {0, 0.6, 0.8};
  double M[16], G[16];
  rigid(M, axis, 2.0, (const double[3]){812.5, -403.25, 1290.0});
  char json[1024];
  matrix_json(json, sizeof json, M, "opencv");
  kiln_scene *s = st_load_ok(json, NULL);
  kiln_camera cam = public_camera(s);
  KT_CODE(kiln_camera_to_world(&cam, KILN_CAMERA_CV, G), KILN_OK);
  for (int i = 0; i < 12; i++) ST_NEAR(G[i], M[i], i % 4 == 3 ? 1e-4 : 1e-6);
  kiln_scene_destroy(s);
}

/* The identity in OpenGL's convention looks down -z with +y up; in OpenCV's, down +z with -y
 * up: the same as the look_at cameras written out. */
TEST(camera_matrix_axes) {
  kiln_scene *gl = st_load_ok("{\"camera\": {\"matrix\": [1, 0, 0, 1, 0, 1, 0, 2, 0, 0, 1, 3, "
                              "0, 0, 0, 1]}}", NULL);
  kiln_scene *cv = st_load_ok("{\"camera\": {\"convention\": \"opencv\", \"matrix\": [1, 0, 0, "
                              "1, 0, 1, 0, 2, 0, 0, 1, 3, 0, 0, 0, 1]}}", NULL);
  const kiln__camera *g = &st_data(gl)->camera, *c = &st_data(cv)->camera;
  const float pos[3] = {1, 2, 3};
  for (int k = 0; k < 3; k++) {
    ST_NEAR(g->position[k], pos[k], 0);
    ST_NEAR(c->position[k], pos[k], 0);
    ST_NEAR(g->up[k], k == 1 ? 1 : 0, 0);
    ST_NEAR(c->up[k], k == 1 ? -1 : 0, 0);
  }
  KT_TRUE(g->look_at[2] < 3 && g->look_at[0] == 1 && g->look_at[1] == 2);
  KT_TRUE(c->look_at[2] > 3 && c->look_at[0] == 1 && c->look_at[1] == 2);
  ST_NEAR(g->vfov_deg, 40, 0); /* the default field of view still applies */
  KT_TRUE(g->k_width == 0);
  kiln_scene_destroy(gl), kiln_scene_destroy(cv);
}

/* fx/fy/cx/cy and K say the same; the size defaults to the settings'; K scales with the image
 * in the continuous frame (pixel centres at i + 0.5). */
TEST(camera_intrinsics) {
  kiln_scene *a = st_load_ok(
      "{\"settings\": {\"width\": 64, \"height\": 48},\n"
      " \"camera\": {\"position\": [0, 0, -4], \"look_at\": [0, 0, 0], \"fx\": 80, \"fy\": 90,\n"
      "  \"cx\": 20.5, \"cy\": 30}}", NULL);
  kiln_scene *b = st_load_ok(
      "{\"camera\": {\"position\": [0, 0, -4], \"look_at\": [0, 0, 0],\n"
      "  \"K\": [[80, 0, 20.5], [0, 90, 30], [0, 0, 1]], \"intrinsics_size\": [64, 48]}}", NULL);
  kiln_scene *f = st_load_ok(
      "{\"camera\": {\"position\": [0, 0, -4], \"look_at\": [0, 0, 0],\n"
      "  \"K\": [80, 0, 20.5, 0, 90, 30, 0, 0, 1], \"intrinsics_size\": [64, 48]}}", NULL);
  kiln_scene *d = st_load_ok(
      "{\"settings\": {\"width\": 64, \"height\": 48},\n"
      " \"camera\": {\"position\": [0, 0, -4], \"look_at\": [0, 0, 0], \"fx\": 80}}", NULL);
  kiln_camera ca = public_camera(a), cb = public_camera(b), cf = public_camera(f);
  kiln_camera cd = public_camera(d);
  double Ka[9], Kb[9], Kf[9], K2[9], Kd[9];
  KT_CODE(kiln_camera_intrinsics(&ca, 64, 48, Ka), KILN_OK);
  KT_CODE(kiln_camera_intrinsics(&cb, 64, 48, Kb), KILN_OK);
  KT_CODE(kiln_camera_intrinsics(&cf, 64, 48, Kf), KILN_OK);
  const double want[9] = {80, 0, 20.5, 0, 90, 30, 0, 0, 1};
  for (int i = 0; i < 9; i++) {
    ST_NEAR(Ka[i], want[i], 0);
    ST_NEAR(Kb[i], want[i], 0);
    ST_NEAR(Kf[i], want[i], 0);
  }
  KT_CODE(kiln_camera_intrinsics(&ca, 128, 96, K2), KILN_OK);
  const double twice[9] = {160, 0, 41.5, 0, 180, 60.5, 0, 0, 1};
  for (int i = 0; i < 9; i++) ST_NEAR(K2[i], twice[i], 1e-9);
  /* fy defaults to fx, the principal point to the centre */
  KT_CODE(kiln_camera_intrinsics(&cd, 64, 48, Kd), KILN_OK);
  const double centred[9] = {80, 0, 31.5, 0, 80, 23.5, 0, 0, 1};
  for (int i = 0; i < 9; i++) ST_NEAR(Kd[i], centred[i], 0);
  /* the vertical field of view the intrinsics stand for */
  ST_NEAR(st_data(a)->camera.vfov_deg, 2 * atan(24.0 / 90) * 180 / M_PI, 1e-4);
  kiln_scene_destroy(a), kiln_scene_destroy(b), kiln_scene_destroy(f), kiln_scene_destroy(d);
}

/* A vfov camera's K is the one the renderer always used: square pixels, centred. */
TEST(camera_vfov_intrinsics) {
  kiln_scene *s = st_load_ok(
      "{\"camera\": {\"position\": [0, 0, -4], \"look_at\": [0, 0, 0], \"vfov\": 90}}", NULL);
  kiln_camera c = public_camera(s);
  double K[9];
  KT_CODE(kiln_camera_intrinsics(&c, 40, 20, K), KILN_OK);
  ST_NEAR(K[0], 10, 1e-6);
  ST_NEAR(K[4], 10, 1e-6);
  ST_NEAR(K[2], 19.5, 0);
  ST_NEAR(K[5], 9.5, 0);
  kiln_scene_destroy(s);
}

/* Thin lens with a matrix: the focus distance must be given (there is no point looked at). */
TEST(camera_thin_lens_matrix) {
  kiln_scene *s = st_load_ok("{\"camera\": {\"type\": \"thin_lens\", \"aperture\": 0.1,\n"
                             " \"focus_distance\": 3, \"fx\": 100, \"matrix\": [1, 0, 0, 0, 0, "
                             "1, 0, 0, 0, 0, 1, 5, 0, 0, 0, 1]}}", NULL);
  ST_NEAR(st_data(s)->camera.focus_distance, 3, 0);
  KT_TRUE(st_data(s)->camera.type == KILN__CAM_THIN_LENS);
  ST_NEAR(st_data(s)->camera.fx, 100, 0);
  kiln_scene_destroy(s);
}

/* ---- errors: each at the value at fault ------------------------------------------------------ */

typedef struct ecase {
  const char *json;
  const char *path;     /* expected err.path */
  const char *marker;   /* expected line:column = first occurrence of this in json */
  const char *fragment; /* in err.message */
} ecase;

#define POSE "\"position\": [0, 0, -1], \"look_at\": [0, 0, 0]"
#define ID_ROW3 ", 0, 0, 0, 1]"

static const ecase cases[] = {
    {"{\"camera\": {\"matrix\":\n [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0" ID_ROW3 "}}",
     "camera.matrix", "[0, 0, 0, 0", "singular"},
    {"{\"camera\": {\"matrix\":\n [2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2, 0" ID_ROW3 "}}",
     "camera.matrix", "[2, 0", "scaled"},
    {"{\"camera\": {\"matrix\":\n [-1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0" ID_ROW3 "}}",
     "camera.matrix", "[-1, 0", "mirrored"},
    {"{\"camera\": {\"matrix\":\n [1, 0.5, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0" ID_ROW3 "}}",
     "camera.matrix", "[1, 0.5", "scaled"},
    {"{\"camera\": {\"matrix\":\n [1, 0.1, 0, 0, 0, 0.995, 0, 0, 0, 0, 1, 0" ID_ROW3 "}}",
     "camera.matrix", "[1, 0.1", "sheared"},
    {"{\"camera\": {\"matrix\":\n [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1]}}",
     "camera.matrix", "[1, 0, 0", "last row must be 0 0 0 1"},
    {"{\"camera\": {\"matrix\":\n [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]}}", "camera.matrix",
     "[1, 0, 0", "16 numbers"},
    {"{\"camera\": {\"matrix\": [1, 0, 0, 0, 0, 1, 0, \"x\", 0, 0, 1, 0" ID_ROW3 "}}",
     "camera.matrix[7]", "\"x\"", "finite number"},
    {"{\"camera\": {\"matrix\": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0" ID_ROW3 ",\n"
     " \"look_at\": [0, 0, 1]}}",
     "camera.look_at", "[0, 0, 1]}", "look_at and matrix both give the camera's pose"},
    {"{\"camera\": {" POSE ", \"convention\": \"opencv\"}}", "camera.convention", "\"opencv\"",
     "not given"},
    {"{\"camera\": {\"matrix\": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0" ID_ROW3 ",\n"
     " \"convention\": \"cv\"}}",
     "camera.convention", "\"cv\"", "unknown"},
    {"{\"camera\": {" POSE ",\n \"fx\": 0, \"fy\": 10}}", "camera.fx", "0, \"fy\"",
     "fx must be > 0"},
    {"{\"camera\": {" POSE ",\n \"fx\": 10, \"fy\": -3}}", "camera.fy", "-3", "fy must be > 0"},
    {"{\"camera\": {" POSE ",\n \"cx\": 10}}", "camera", "{" POSE, "missing required key 'fx'"},
    {"{\"camera\": {" POSE ", \"vfov\": 30,\n \"fx\": 10}}", "camera.vfov", "30,",
     "vfov and the intrinsics (fx) both give the field of view"},
    {"{\"camera\": {" POSE ", \"vfov\": 30,\n \"K\": [10, 0, 5, 0, 10, 5, 0, 0, 1]}}",
     "camera.vfov", "30,", "vfov and the intrinsics (K)"},
    {"{\"camera\": {" POSE ",\n \"K\": [[10, 0.5, 5], [0, 10, 5], [0, 0, 1]]}}", "camera.K",
     "[[10", "skew"},
    {"{\"camera\": {" POSE ",\n \"K\": [10, 0, 5, 0, 10, 5, 0, 0, 2]}}", "camera.K", "[10",
     "K[2][2] must be 1"},
    {"{\"camera\": {" POSE ",\n \"K\": [[-10, 0, 5], [0, 10, 5], [0, 0, 1]]}}", "camera.K",
     "[[-10", "focal lengths must be > 0"},
    {"{\"camera\": {" POSE ",\n \"K\": [[10, 0, 5], [0, 10], [0, 0, 1]]}}", "camera.K", "[[10",
     "3 arrays of 3 numbers"},
    {"{\"camera\": {" POSE ",\n \"K\": [[10, 0, 5], [0, 10, null], [0, 0, 1]]}}",
     "camera.K[1][2]", "null", "finite number"},
    {"{\"camera\": {" POSE ", \"fx\": 10,\n \"K\": [10, 0, 5, 0, 10, 5, 0, 0, 1]}}", "camera.fx",
     "10,\n", "fx and K both give the intrinsics"},
    {"{\"camera\": {" POSE ",\n \"intrinsics_size\": [64, 48]}}", "camera.intrinsics_size",
     "[64, 48]", "not given"},
    {"{\"camera\": {" POSE ", \"fx\": 10,\n \"intrinsics_size\": [64, 0]}}",
     "camera.intrinsics_size", "[64, 0]", "integers in [1"},
    {"{\"camera\": {\"type\": \"thin_lens\", \"aperture\": 0.1,\n \"matrix\": [1, 0, 0, 0, 0, 1, 0, "
     "0, 0, 0, 1, 0" ID_ROW3 "}}",
     "camera", "{\"type\"", "matrix needs focus_distance"},
    {"{\"camera\": {" POSE ", \"fxx\": 10}}", "camera.fxx", "\"fxx\"", "did you mean 'fx'"},
};

TEST(camera_errors) {
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    st_expect_located(i, cases[i].json, cases[i].path, cases[i].marker, cases[i].fragment);
}
