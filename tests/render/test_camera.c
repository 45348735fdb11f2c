/* test_camera.c: the renderer's camera rays agree with the camera's matrices. A small sphere at
 * a known point, projected through the K and pose that kiln_camera_intrinsics and
 * kiln_camera_to_world give, is found at that pixel of the instance pass (the pixel-centre ray)
 * and its pixels' centroid is within a pixel of the projection: for a look_at camera, for the
 * same pose given as a matrix in either convention, and for intrinsics with an off-centre
 * principal point and fx != fy, at the size they were given for and scaled. And every
 * pixel-centre ray to well under half a pixel: the depths of a tilted plane. */
// kt: timeout 120
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "render_test_util.h"

static const double P[3] = {0.35, -0.2, 0.4}; /* the sphere's centre */

/* A scene of one sphere (instance 1) at P, as JSON, with camera cam (a JSON object). */
static kiln_scene *load(const char *cam) {
  char json[2048];
  snprintf(json, sizeof json,
           "{\"settings\": {\"width\": 48, \"height\": 36, \"spp\": 1, \"max_bounces\": 0},\n"
           " \"camera\": %s,\n"
           " \"objects\": [{\"type\": \"sphere\", \"center\": [%.17g, %.17g, %.17g], "
           "\"radius\": 0.12, \"material\": {\"type\": \"diffuse\"}}]}",
           cam, P[0], P[1], P[2]);
  kiln_error_detail e;
  kiln_scene *s = NULL;
  int rc = kiln_scene_load_string(json, NULL, "camera.json", &e, &s);
  if (rc) {
    char buf[2048];
    KT_FAIL("load: %s: %s", kiln_err_name(rc), kiln_error_detail_format(&e, buf, sizeof buf));
  }
  return s;
}

/* The scene's camera as a kiln_camera. */
static kiln_camera public_camera(const kiln_scene *s) {
  const kiln__camera *c = &((const struct kiln_scene *)s)->data.camera;
  kiln_camera k = {.vfov_deg = c->vfov_deg, .fx = c->fx, .fy = c->fy, .cx = c->cx, .cy = c->cy,
                   .k_width = c->k_width, .k_height = c->k_height};
  memcpy(k.position, c->position, 12), memcpy(k.look_at, c->look_at, 12), memcpy(k.up, c->up, 12);
  return k;
}

/* P's pixel coordinates (OpenCV: pixel centres at whole numbers) through cam at w x h. */
static void project(const kiln_camera *cam, int w, int h, double uv[2]) {
  double K[9], M[16], d[3], X[3];
  KT_CODE(kiln_camera_intrinsics(cam, w, h, K), KILN_OK);
  KT_CODE(kiln_camera_to_world(cam, KILN_CAMERA_CV, M), KILN_OK);
  for (int k = 0; k < 3; k++) d[k] = P[k] - M[4 * k + 3];
  for (int j = 0; j < 3; j++) X[j] = M[j] * d[0] + M[4 + j] * d[1] + M[8 + j] * d[2]; /* R^T d */
  KT_TRUE(X[2] > 0);
  uv[0] = K[0] * X[0] / X[2] + K[2];
  uv[1] = K[4] * X[1] / X[2] + K[5];
}

/* Renders s with camera cam (NULL: the scene's) at w x h (0: the scene's); checks that the
 * sphere is at P's projection; the instance pass (malloc'd) to *ids. */
static void check(kiln_scene *s, const kiln_camera *cam, int w, int h, uint32_t **ids) {
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  kiln_renderer *r;
  KT_CODE(kiln_renderer_create(s, &dev, 1, NULL, &r), KILN_OK);
  kiln_frame_config fc;
  kiln_frame_config_default(r, &fc);
  fc.camera = cam, fc.width = w, fc.height = h;
  kiln_future *f;
  ctx c = {.r = r};
  const kiln_image *img = render(&c, &fc, &f);
  kiln_image_info in = info_of(img);
  kiln_camera sc = cam ? *cam : public_camera(s);
  double uv[2], sx = 0, sy = 0;
  project(&sc, in.width, in.height, uv);
  long n = 0;
  for (int y = 0; y < in.height; y++)
    for (int x = 0; x < in.width; x++)
      if (in.instance_id[y * in.width + x] == 1) sx += x, sy += y, n++;
  KT_TRUE(n >= 8);
  int px = (int)floor(uv[0] + 0.5), py = (int)floor(uv[1] + 0.5);
  KT_TRUE(px >= 0 && py >= 0 && px < in.width && py < in.height);
  if (in.instance_id[py * in.width + px] != 1)
    KT_FAIL("P projects to (%.3f, %.3f), pixel (%d, %d), which does not see the sphere", uv[0],
            uv[1], px, py);
  if (!(fabs(sx / (double)n - uv[0]) < 1 && fabs(sy / (double)n - uv[1]) < 1))
    KT_FAIL("the sphere's %ld pixels centre on (%.3f, %.3f), P projects to (%.3f, %.3f)", n,
            sx / (double)n, sy / (double)n, uv[0], uv[1]);
  size_t bytes = (size_t)in.width * (size_t)in.height * 4;
  *ids = malloc(bytes);
  memcpy(*ids, in.instance_id, bytes);
  kiln_future_release(f);
  kiln_renderer_destroy(r);
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
}

static void matrix_camera(const kiln_camera *pose, kiln_camera_convention conv, char *out,
                          size_t cap) {
  double M[16];
  KT_CODE(kiln_camera_to_world(pose, conv, M), KILN_OK);
  int n = snprintf(out, cap, "{\"convention\": \"%s\", \"matrix\": [",
                   conv == KILN_CAMERA_CV ? "opencv" : "opengl");
  for (int i = 0; i < 16; i++) n += snprintf(out + n, cap - (size_t)n, "%s%.17g", i ? ", " : "", M[i]);
  snprintf(out + n, cap - (size_t)n, "]}");
}

#define LOOK "\"position\": [0.6, 0.45, -3], \"look_at\": [0.1, 0, 0.2], \"up\": [0.1, 1, 0]"

/* One pose, three ways: look_at, and a matrix in each convention; the same instance pass. */
TEST(camera_pose_forms_agree) {
  kiln_scene *a = load("{" LOOK ", \"vfov\": 35}");
  kiln_camera pose = public_camera(a);
  uint32_t *ids_a, *ids_gl, *ids_cv;
  check(a, NULL, 0, 0, &ids_a);
  char cam[1024], with_fov[1100];
  matrix_camera(&pose, KILN_CAMERA_GL, cam, sizeof cam);
  snprintf(with_fov, sizeof with_fov, "%.*s, \"vfov\": 35}", (int)strlen(cam) - 1, cam);
  kiln_scene *gl = load(with_fov);
  check(gl, NULL, 0, 0, &ids_gl);
  matrix_camera(&pose, KILN_CAMERA_CV, cam, sizeof cam);
  snprintf(with_fov, sizeof with_fov, "%.*s, \"vfov\": 35}", (int)strlen(cam) - 1, cam);
  kiln_scene *cv = load(with_fov);
  check(cv, NULL, 0, 0, &ids_cv);
  size_t n = 48 * 36, diff_gl = 0, diff_cv = 0;
  for (size_t i = 0; i < n; i++) diff_gl += ids_a[i] != ids_gl[i], diff_cv += ids_gl[i] != ids_cv[i];
  KT_EQ(diff_cv, 0); /* the two conventions give the very same floats */
  KT_EQ(diff_gl, 0);
  free(ids_a), free(ids_gl), free(ids_cv);
  kiln_scene_destroy(a), kiln_scene_destroy(gl), kiln_scene_destroy(cv);
}

/* Off-centre principal point, fx != fy, from the scene (K) and rendered twice the size. */
TEST(camera_intrinsics_from_scene) {
  kiln_scene *s = load("{" LOOK ", \"K\": [[52, 0, 15.25], [0, 38, 24.5], [0, 0, 1]]}");
  uint32_t *ids;
  check(s, NULL, 0, 0, &ids);
  free(ids);
  check(s, NULL, 96, 72, &ids); /* K scales with the image */
  free(ids);
  kiln_scene_destroy(s);
}

/* A frame's own camera with intrinsics (and no vfov) renders: the principal point far off, even
 * outside the image it was given for. */
TEST(camera_intrinsics_per_frame) {
  kiln_scene *s = load("{" LOOK "}");
  kiln_camera cam = public_camera(s);
  cam.vfov_deg = 0;
  cam.fx = 70, cam.fy = 95, cam.cx = 20.5, cam.cy = 14, cam.k_width = 48, cam.k_height = 36;
  uint32_t *ids;
  check(s, &cam, 0, 0, &ids);
  free(ids);
  cam.cx = 50.5, cam.cy = 6; /* the principal point outside the image */
  check(s, &cam, 0, 0, &ids);
  free(ids);
  kiln_scene_destroy(s);
}

/* Every pixel-centre ray, to the half pixel: a tilted plane fills the view, and each pixel's
 * depth is the one the pinhole ray through (i, j) = K (x / z, y / z) meets it at,
 * n . (Q - C) / n . (R K^-1 (i, j, 1)) (the depth along the view axis is the ray's parameter
 * when its forward component is 1). A half-pixel slip moves the depth by far more than the
 * tolerance; for a vfov camera, and for intrinsics rendered at their size and scaled. */
static void check_depths(const kiln_camera *cam, int w, int h) {
  static const double Q[3] = {0.2, -0.1, 1.5};
  double n[3] = {0.35, -0.25, -1}, e1[3], e2[3], ln = sqrt(0.35 * 0.35 + 0.25 * 0.25 + 1);
  for (int k = 0; k < 3; k++) n[k] /= ln;
  e1[0] = -n[2], e1[1] = 0, e1[2] = n[0]; /* perpendicular to n */
  e2[0] = n[1] * e1[2] - n[2] * e1[1], e2[1] = n[2] * e1[0] - n[0] * e1[2],
  e2[2] = n[0] * e1[1] - n[1] * e1[0];
  float v[4][3];
  const int sg[4][2] = {{-1, -1}, {1, -1}, {1, 1}, {-1, 1}};
  for (int c = 0; c < 4; c++)
    for (int k = 0; k < 3; k++) v[c][k] = (float)(Q[k] + 40 * (sg[c][0] * e1[k] + sg[c][1] * e2[k]));
  kiln__scene s = base_scene();
  add_material(&s, (kiln__material){.type = KILN__MAT_DIFFUSE, .albedo = {0.5f, 0.5f, 0.5f}});
  add_quad(&s, v, 0, 1);
  s.settings.spp = 1, s.settings.max_bounces = 0;
  ctx c = open_ctx(&s, NULL);
  kiln_frame_config fc;
  kiln_frame_config_default(c.r, &fc);
  fc.camera = cam, fc.width = w, fc.height = h;
  kiln_future *f;
  const kiln_image *img = render(&c, &fc, &f);
  double K[9], M[16];
  KT_CODE(kiln_camera_intrinsics(cam, w, h, K), KILN_OK);
  KT_CODE(kiln_camera_to_world(cam, KILN_CAMERA_CV, M), KILN_OK);
  double num = 0;
  for (int k = 0; k < 3; k++) num += n[k] * (Q[k] - M[4 * k + 3]);
  double worst = 0;
  for (int j = 0; j < h; j++)
    for (int i = 0; i < w; i++) {
      double d[3] = {(i - K[2]) / K[0], (j - K[5]) / K[4], 1}, den = 0;
      for (int k = 0; k < 3; k++) den += n[k] * (M[4 * k] * d[0] + M[4 * k + 1] * d[1] + M[4 * k + 2]);
      double want = num / den, got = info_of(img).depth[j * w + i];
      KT_TRUE(info_of(img).instance_id[j * w + i] == 1);
      worst = fmax(worst, fabs(got - want) / want);
    }
  if (!(worst < 1e-4)) KT_FAIL("depths off by up to %.3g (relative) at %d x %d", worst, w, h);
  kiln_future_release(f);
  close_ctx(&c);
}

TEST(camera_every_pixel_ray) {
  kiln_camera cam = {.position = {0.6f, 0.45f, -3}, .look_at = {0.1f, 0, 0.2f}, .up = {0.1f, 1, 0},
                     .vfov_deg = 38};
  check_depths(&cam, 20, 14);
  cam.vfov_deg = 0;
  cam.fx = 23, cam.fy = 31, cam.cx = 6.25, cam.cy = 9, cam.k_width = 20, cam.k_height = 14;
  check_depths(&cam, 20, 14);
  check_depths(&cam, 30, 21); /* K scaled by 3/2 */
}
