/* camera_json.c: the keys of a camera object (docs/SCENE.md, "camera") that datasets bring: a
 * pose as a camera-to-world matrix ("matrix", "convention") and intrinsics in pixels ("fx", "fy",
 * "cx", "cy" or "K", for "intrinsics_size"). The scene loader and the job reader's list lines
 * share this reader. A matrix becomes position / look_at / up here, so that the renderer, the
 * jobs and kiln_camera_to_world keep one representation of a pose. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "scene_data.h"

/* How far an orthonormal matrix's columns may be from unit length and from perpendicular:
 * loose enough for matrices printed with 6 significant digits, tight enough that the basis the
 * renderer rebuilds from forward and up is the matrix's to within it. */
#define ROT_TOL 1e-4

/* Reads the 16 numbers of "matrix" (o's member m, at the current path) into M. */
static int read_matrix(kiln__sj_ctx *c, const cJSON *m, double M[16]) {
  kiln__sj_push_key(c, "matrix");
  if (!cJSON_IsArray(m) || cJSON_GetArraySize(m) != 16)
    return kiln__sj_fail(c, "matrix must be an array of 16 numbers (camera to world, row-major)");
  int i = 0;
  for (const cJSON *e = m->child; e; e = e->next, i++) {
    kiln__sj_push_index(c, i);
    if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble) || fabs(e->valuedouble) > 1e30)
      return kiln__sj_fail(c, "matrix[%d] must be a finite number", i);
    kiln__sj_pop(c);
    M[i] = e->valuedouble;
  }
  return 0; /* the path stays at "matrix" for the checks that follow */
}

static double col_dot(const double M[16], int a, int b) {
  return M[a] * M[b] + M[4 + a] * M[4 + b] + M[8 + a] * M[8 + b];
}

/* Checks that M (at the current path, "matrix") is a rotation and a translation. */
static int check_rigid(kiln__sj_ctx *c, const double M[16]) {
  if (M[12] != 0 || M[13] != 0 || M[14] != 0 || M[15] != 1)
    return kiln__sj_fail(c, "matrix: the last row must be 0 0 0 1");
  double det = M[0] * (M[5] * M[10] - M[6] * M[9]) - M[1] * (M[4] * M[10] - M[6] * M[8]) +
               M[2] * (M[4] * M[9] - M[5] * M[8]);
  if (fabs(det) < 1e-9)
    return kiln__sj_fail(c, "matrix is singular (its 3x3 part has determinant %g): a camera's "
                            "axes must be a rotation", det);
  if (det < 0)
    return kiln__sj_fail(c, "matrix is mirrored (its 3x3 part has determinant %g): a camera's "
                            "axes must be a rotation (determinant +1)", det);
  for (int k = 0; k < 3; k++) {
    double l = sqrt(col_dot(M, k, k));
    if (fabs(l - 1) > ROT_TOL)
      return kiln__sj_fail(c, "matrix is scaled (column %d of its 3x3 part has length %g, not 1):"
                              " a camera's axes must be a rotation", k, l);
  }
  for (int a = 0; a < 3; a++)
    for (int b = a + 1; b < 3; b++)
      if (fabs(col_dot(M, a, b)) > ROT_TOL)
        return kiln__sj_fail(c, "matrix is sheared (columns %d and %d of its 3x3 part have dot "
                                "product %g, not 0): a camera's axes must be a rotation", a, b,
                             col_dot(M, a, b));
  return 0;
}

static int parse_pose(kiln__sj_ctx *c, const cJSON *o, kiln__cam_extra *x) {
  static const char *const convs[] = {"opengl", "opencv", NULL};
  static const char *const pose_keys[] = {"position", "look_at", "up"};
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "matrix");
  int conv, rc;
  if (!m) {
    if (cJSON_GetObjectItemCaseSensitive(o, "convention"))
      return kiln__sj_fail_at(c, "convention", "convention is the axes of 'matrix', which is "
                                               "not given");
    return 0;
  }
  for (int k = 0; k < 3; k++)
    if (cJSON_GetObjectItemCaseSensitive(o, pose_keys[k]))
      return kiln__sj_fail_at(c, pose_keys[k], "%s and matrix both give the camera's pose: keep "
                                               "one", pose_keys[k]);
  if ((rc = kiln__sj_choice(c, o, "convention", "opengl", convs, &conv))) return rc;
  double M[16];
  if ((rc = read_matrix(c, m, M)) || (rc = check_rigid(c, M))) return rc;
  kiln__sj_pop(c);
  /* OpenGL: columns right, up, back; OpenCV: right, down, forward. */
  double s = conv ? -1 : 1, p[3], f[3], len = 0;
  for (int k = 0; k < 3; k++) {
    p[k] = M[4 * k + 3], f[k] = -s * M[4 * k + 2];
    len += p[k] * p[k];
  }
  /* look_at goes a distance ahead that keeps look_at - position as exact in floats as the
   * position is: at distance 1 from a position far from the origin, rounding both to floats
   * would turn the view axis by up to an ulp of the position. */
  double d = fmax(1, sqrt(len));
  for (int k = 0; k < 3; k++) {
    x->position[k] = (float)p[k];
    x->look_at[k] = (float)(p[k] + d * f[k]);
    x->up[k] = (float)(s * M[4 * k + 1]);
  }
  x->pose = true;
  return 0;
}

/* K's entry (i, j) (at the current path, "K"): 3 arrays of 3 numbers, or 9 numbers. */
static int k_entry(kiln__sj_ctx *c, const cJSON *K, int i, int j, double *out) {
  const cJSON *row = cJSON_GetArrayItem(K, i), *e;
  bool nested = cJSON_IsArray(row);
  e = nested ? cJSON_GetArrayItem(row, j) : cJSON_GetArrayItem(K, 3 * i + j);
  kiln__sj_push_index(c, nested ? i : 3 * i + j);
  if (nested) kiln__sj_push_index(c, j);
  if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble))
    return kiln__sj_fail(c, "K[%d][%d] must be a finite number", i, j);
  kiln__sj_pop(c);
  if (nested) kiln__sj_pop(c);
  *out = e->valuedouble;
  return 0;
}

static int parse_k(kiln__sj_ctx *c, const cJSON *K, kiln__cam_extra *x) {
  static const int must[][3] = {{0, 1, 0}, {1, 0, 0}, {2, 0, 0}, {2, 1, 0}, {2, 2, 1}};
  kiln__sj_push_key(c, "K");
  bool rows = cJSON_IsArray(K) && cJSON_GetArraySize(K) == 3;
  for (const cJSON *r = rows ? K->child : NULL; r; r = r->next)
    rows = rows && cJSON_IsArray(r) && cJSON_GetArraySize(r) == 3;
  if (!rows && !(cJSON_IsArray(K) && cJSON_GetArraySize(K) == 9))
    return kiln__sj_fail(c, "K must be 3 arrays of 3 numbers or 9 numbers (row-major)");
  double k[3][3];
  int rc;
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++)
      if ((rc = k_entry(c, K, i, j, &k[i][j]))) return rc;
  for (size_t n = 0; n < sizeof must / sizeof *must; n++) {
    int i = must[n][0], j = must[n][1];
    if (k[i][j] == must[n][2]) continue;
    if (i == 0)
      return kiln__sj_fail(c, "K has skew (K[0][1] = %g): kiln's pixels are not sheared, it "
                              "must be 0", k[0][1]);
    return kiln__sj_fail(c, "K[%d][%d] must be %d, not %g (K is [[fx, 0, cx], [0, fy, cy], "
                            "[0, 0, 1]])", i, j, must[n][2], k[i][j]);
  }
  if (!(k[0][0] > 0) || !(k[1][1] > 0))
    return kiln__sj_fail(c, "K's focal lengths must be > 0, not fx = %g, fy = %g", k[0][0],
                         k[1][1]);
  x->fx = (float)k[0][0], x->fy = (float)k[1][1], x->cx = (float)k[0][2], x->cy = (float)k[1][2];
  kiln__sj_pop(c);
  return 0;
}

static int parse_size(kiln__sj_ctx *c, const cJSON *o, int32_t w, int32_t h, kiln__cam_extra *x) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "intrinsics_size");
  x->k_width = w, x->k_height = h;
  if (!v) return 0;
  kiln__sj_push_key(c, "intrinsics_size");
  if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2)
    return kiln__sj_fail(c, "intrinsics_size must be [width, height] in pixels");
  int i = 0;
  for (const cJSON *e = v->child; e; e = e->next, i++) {
    double d = cJSON_IsNumber(e) ? e->valuedouble : NAN;
    if (!(d >= 1 && d <= 1 << 20) || d != floor(d))
      return kiln__sj_fail(c, "intrinsics_size must be [width, height], integers in [1, %d]",
                           1 << 20);
    if (i) x->k_height = (int32_t)d;
    else x->k_width = (int32_t)d;
  }
  kiln__sj_pop(c);
  return 0;
}

static int parse_intrinsics(kiln__sj_ctx *c, const cJSON *o, int32_t w, int32_t h,
                            kiln__cam_extra *x) {
  static const char *const fkeys[] = {"fx", "fy", "cx", "cy"};
  const char *fkey = NULL;
  for (int k = 0; k < 4 && !fkey; k++)
    if (cJSON_GetObjectItemCaseSensitive(o, fkeys[k])) fkey = fkeys[k];
  const cJSON *K = cJSON_GetObjectItemCaseSensitive(o, "K");
  if (!fkey && !K) {
    if (cJSON_GetObjectItemCaseSensitive(o, "intrinsics_size"))
      return kiln__sj_fail_at(c, "intrinsics_size", "intrinsics_size is the image size of "
                                                    "intrinsics (fx, fy, cx, cy or K), which "
                                                    "are not given");
    return 0;
  }
  if (fkey && K) return kiln__sj_fail_at(c, fkey, "%s and K both give the intrinsics: keep one",
                                         fkey);
  if (cJSON_GetObjectItemCaseSensitive(o, "vfov"))
    return kiln__sj_fail_at(c, "vfov", "vfov and the intrinsics (%s) both give the field of view: "
                                       "keep one", K ? "K" : fkey);
  int rc;
  if ((rc = parse_size(c, o, w, h, x))) return rc;
  if (K) {
    if ((rc = parse_k(c, K, x))) return rc;
  } else {
    double fx, fy, cx, cy;
    if ((rc = kiln__sj_num(c, o, "fx", true, 0, -1e30, 1e30, &fx))) return rc;
    if (!(fx > 0)) return kiln__sj_fail_at(c, "fx", "fx must be > 0, not %g", fx);
    if ((rc = kiln__sj_num(c, o, "fy", false, fx, -1e30, 1e30, &fy))) return rc;
    if (!(fy > 0)) return kiln__sj_fail_at(c, "fy", "fy must be > 0, not %g", fy);
    if ((rc = kiln__sj_num(c, o, "cx", false, 0.5 * (x->k_width - 1), -1e30, 1e30, &cx)) ||
        (rc = kiln__sj_num(c, o, "cy", false, 0.5 * (x->k_height - 1), -1e30, 1e30, &cy)))
      return rc;
    x->fx = (float)fx, x->fy = (float)fy, x->cx = (float)cx, x->cy = (float)cy;
  }
  x->vfov_deg = (float)(2 * atan(0.5 * x->k_height / x->fy) * (180 / 3.14159265358979323846));
  x->intrinsics = true;
  return 0;
}

int kiln__sj_camera_extra(kiln__sj_ctx *c, const cJSON *o, int32_t width, int32_t height,
                          kiln__cam_extra *out) {
  memset(out, 0, sizeof *out);
  int rc = parse_pose(c, o, out);
  return rc ? rc : parse_intrinsics(c, o, width, height, out);
}
