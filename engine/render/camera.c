/* camera.c: a camera's intrinsics and pose as matrices, in the conventions datasets use
 * (kiln/render.h). The renderer builds the same basis in single precision; these give the
 * double-precision numbers that annotations and dataset writers record. */
#define _GNU_SOURCE
#include <math.h>
#include <string.h>

#include "kiln/error.h"
#include "kiln/render.h"

static double norm3(double v[3]) {
  double l = sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
  if (!(l > 0) || !isfinite(l)) return 0;
  for (int k = 0; k < 3; k++) v[k] /= l;
  return l;
}

static void cross(const double a[3], const double b[3], double o[3]) {
  o[0] = a[1] * b[2] - a[2] * b[1];
  o[1] = a[2] * b[0] - a[0] * b[2];
  o[2] = a[0] * b[1] - a[1] * b[0];
}

int kiln_camera_intrinsics(const kiln_camera *cam, int32_t width, int32_t height, double K[9]) {
  if (!cam || !K || width <= 0 || height <= 0) return KILN_EINVAL;
  double fx, fy, cx, cy;
  if (cam->k_width > 0) {
    if (cam->k_height <= 0 || !(cam->fx > 0) || !(cam->fy > 0)) return KILN_EINVAL;
    /* Scale in the continuous frame, where pixel u's centre is at u + 0.5. */
    double sx = (double)width / cam->k_width, sy = (double)height / cam->k_height;
    fx = cam->fx * sx, fy = cam->fy * sy;
    cx = (cam->cx + 0.5) * sx - 0.5, cy = (cam->cy + 0.5) * sy - 0.5;
  } else {
    if (!(cam->vfov_deg > 0 && cam->vfov_deg < 180)) return KILN_EINVAL;
    fy = 0.5 * height / tan(cam->vfov_deg * 0.5 * M_PI / 180.0);
    fx = fy; /* square pixels: the horizontal field follows the aspect ratio */
    cx = 0.5 * (width - 1), cy = 0.5 * (height - 1);
  }
  const double k[9] = {fx, 0, cx, 0, fy, cy, 0, 0, 1};
  memcpy(K, k, sizeof k);
  return 0;
}

int kiln_camera_to_world(const kiln_camera *cam, kiln_camera_convention conv, double M[16]) {
  if (!cam || !M || (conv != KILN_CAMERA_GL && conv != KILN_CAMERA_CV)) return KILN_EINVAL;
  double w[3], up[3], r[3], v[3];
  for (int k = 0; k < 3; k++) w[k] = (double)cam->look_at[k] - cam->position[k], up[k] = cam->up[k];
  if (norm3(w) == 0) return KILN_EINVAL;
  cross(w, up, r);
  if (norm3(r) == 0) return KILN_EINVAL;
  cross(r, w, v);
  double s = conv == KILN_CAMERA_GL ? 1 : -1; /* GL: y up, z back; CV: y down, z forward */
  for (int k = 0; k < 3; k++) {
    M[4 * k + 0] = r[k];
    M[4 * k + 1] = s * v[k];
    M[4 * k + 2] = -s * w[k];
    M[4 * k + 3] = cam->position[k];
  }
  M[12] = M[13] = M[14] = 0, M[15] = 1;
  return 0;
}
