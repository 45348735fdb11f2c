/* test_passes.c: the derived passes as a batch writes them (kiln/batch.h): the position file
 * projects back through the frame's camera onto its pixel centres and lies at its depth; the
 * flows of an orbiting camera carry each point onto the place the next frame sees it, and are
 * invalid where a frame has no neighbour; the motions are the flows without the visibility test;
 * category is the object's; a .jsonl list cannot give
 * flows (its lines are not read by index). */
// kt: timeout 300
#define _GNU_SOURCE
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "batch_internal.h"
#include "cli_test_util.h"
#include "gpu/gpu_test_util.h"
#include "kiln/batch.h"
#include "kt.h"

enum { S = 24, NF = 3 };

/* An orbit of NF frames of the Cornell box at S x S, 1 spp: the camera turns 15 degrees a frame. */
static char *orbit_job(const char *dir) {
  char *p = fmt("%s/job.json", dir);
  write_text(
      p,
      fmt("{\"scene\": \"%s/examples/cornell/scene.json\", \"width\": %d, \"height\": "
          "%d, \"spp\": 1, \"format\": \"npy\", \"passes\": [\"depth\", \"instance\", \"normal\", "
          "\"position\", \"category\", \"flow_fwd\", \"flow_bwd\"], \"animation\": "
          "{\"frames\": {\"start\": 0, \"end\": %d}, \"camera\": {\"orbit\": "
          "{\"center\": [0.278, 0.273, 0.28], \"start_angle\": 170, "
          "\"degrees_per_frame\": 15}}}}",
          KILN_SOURCE_DIR, S, S, NF - 1));
  return p;
}

/* The data of an NPY file of n elements of 4 bytes (after its header). */
static const void *npy_data(const char *path, size_t n) {
  size_t len;
  const unsigned char *b = read_all(path, &len);
  if (!b) KT_FAIL("cannot read %s", path);
  KT_TRUE(len > 10 && memcmp(b, "\x93NUMPY", 6) == 0);
  size_t hl = (size_t)b[8] | (size_t)b[9] << 8;
  if (len != 10 + hl + 4 * n) KT_FAIL("%s: %zu bytes, want %zu", path, len, 10 + hl + 4 * n);
  return b + 10 + hl;
}

static const float *plane(const char *dir, int frame, const char *pass, int ch) {
  return npy_data(fmt("%s/%05d_%s.npy", dir, frame, pass), (size_t)S * S * ch);
}

/* Where a flow lands, at (qx, qy) in the next frame: true when the four pixels around it show
 * instance inst with the normal n0 (one plane of it, not an edge), and none of them is on the
 * border; then *z is the depth there (1/depth is what is linear across the plane's pixels). */
static bool landing_depth(double qx, double qy, uint32_t inst, const float n0[3],
                          const uint32_t *I1, const float *N1, const float *Z1, double *z) {
  int x0 = (int)floor(qx), y0 = (int)floor(qy);
  if (x0 < 0 || y0 < 0 || x0 + 1 >= S || y0 + 1 >= S) return false;
  int js[4] = {y0 * S + x0, y0 * S + x0 + 1, (y0 + 1) * S + x0, (y0 + 1) * S + x0 + 1};
  for (int k = 0; k < 4; k++) {
    if (I1[js[k]] != inst) return false;
    for (int c = 0; c < 3; c++)
      if (!(fabsf(N1[3 * js[k] + c] - n0[c]) < 1e-4f)) return false;
  }
  double fx = qx - x0, fy = qy - y0, inv = 0;
  double wt[4] = {(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy};
  for (int k = 0; k < 4; k++) inv += wt[k] / Z1[js[k]];
  *z = 1 / inv;
  return true;
}

/* The job's first two frames, from its start. */
static void first_two(kiln_job *job, kiln_job_frame *f0, kiln_job_frame *f1) {
  KT_CODE(kiln_job_rewind(job), KILN_OK);
  KT_CODE(kiln_job_next(job, f0, NULL), KILN_OK);
  KT_CODE(kiln_job_next(job, f1, NULL), KILN_OK);
}

static void render_job(kiln_job *job, const char *out, uint64_t frames) {
  kiln_pool *pool;
  KT_CODE(kiln_pool_create(NULL, &pool), KILN_OK);
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  kiln_batch_config bc;
  kiln_batch_config_default(&bc);
  bc.pool = pool, bc.devs = &dev, bc.ndevs = 1, bc.out_dir = out;
  kiln_batch *b;
  kiln_error_detail err;
  int rc = kiln_batch_create(job, &bc, &b, &err);
  if (rc) KT_FAIL("kiln_batch_create: %s", err.message);
  kiln_batch_summary sum;
  KT_CODE(kiln_batch_run(b, &sum, &err), KILN_OK);
  KT_EQ(sum.written, frames);
  KT_EQ(sum.failed, 0);
  kiln_batch_destroy(b);
  kiln_gpu_device_close(dev);
  kiln_gpu_destroy(gpu);
  kiln_pool_destroy(pool);
}

/* Projects world point p through camera cam (at S x S) into pixel coordinates. */
static void project(const kiln_camera *cam, const float p[3], double *u, double *v, double *z) {
  double K[9], M[16];
  KT_CODE(kiln_camera_intrinsics(cam, S, S, K), KILN_OK);
  KT_CODE(kiln_camera_to_world(cam, KILN_CAMERA_CV, M), KILN_OK);
  double d[3] = {p[0] - M[3], p[1] - M[7], p[2] - M[11]}, c[3];
  for (int r = 0; r < 3; r++) c[r] = M[r] * d[0] + M[4 + r] * d[1] + M[8 + r] * d[2];
  *u = K[0] * c[0] / c[2] + K[2], *v = K[4] * c[1] / c[2] + K[5], *z = c[2];
}

TEST(position_projects_to_its_pixel) {
  char *d = tmpdir(), *out = fmt("%s/out", d);
  kiln_job *job = load_job(orbit_job(d));
  render_job(job, out, NF);
  kiln_job_frame fr;
  KT_CODE(kiln_job_rewind(job), KILN_OK);
  for (int f = 0; f < NF; f++) {
    KT_CODE(kiln_job_next(job, &fr, NULL), KILN_OK);
    const float *P = plane(out, f, "position", 3), *Z = plane(out, f, "depth", 1);
    const uint32_t *cat = (const uint32_t *)plane(out, f, "category", 1);
    int hits = 0;
    for (int i = 0; i < S * S; i++) {
      KT_EQ(cat[i], 0u); /* the Cornell box declares no categories */
      if (Z[i] == 0) {
        KT_TRUE(isnan(P[3 * i]));
        continue;
      }
      hits++;
      double u, v, z;
      project(&fr.camera, P + 3 * i, &u, &v, &z);
      if (fabs(u - i % S) > 1e-3 || fabs(v - i / S) > 1e-3 || fabs(z - Z[i]) > 1e-5 * Z[i])
        KT_FAIL("frame %d pixel %d: position projects to %.5f, %.5f at depth %.7g (depth %.7g)", f,
                i, u, v, z, Z[i]);
    }
    KT_TRUE(hits > S * S / 2);
    kiln_job_frame_clear(&fr);
  }
  kiln_job_destroy(job);
}

/* The scene stands still, so where the forward flow of a pixel of frame t lands in frame t + 1,
 * t + 1 sees its point: between 4 pixels of t + 1 on the pixel's own plane (same instance, same
 * normal), 1 / depth, which is affine across a plane in the image, interpolates to the depth of
 * the pixel's position in t + 1's camera. The backward flow of t + 1 comes back. The first frame
 * has no backward flow, the last no forward. */
TEST(flow_of_an_orbit) {
  char *d = tmpdir(), *out = fmt("%s/out", d);
  kiln_job *job = load_job(orbit_job(d));
  render_job(job, out, NF);
  for (int f = 0; f < NF; f++) {
    const float *fw = plane(out, f, "flow_fwd", 3), *bw = plane(out, f, "flow_bwd", 3);
    for (int i = 0; i < S * S; i++) {
      if (f == 0) KT_TRUE(bw[3 * i + 2] == 0);
      if (f == NF - 1) KT_TRUE(fw[3 * i + 2] == 0);
    }
  }
  kiln_job_frame f0, f1;
  first_two(job, &f0, &f1);
  const float *fw = plane(out, 0, "flow_fwd", 3), *P0 = plane(out, 0, "position", 3),
              *Z1 = plane(out, 1, "depth", 1), *bw1 = plane(out, 1, "flow_bwd", 3),
              *N0 = plane(out, 0, "normal", 3), *N1 = plane(out, 1, "normal", 3);
  const uint32_t *I0 = (const uint32_t *)plane(out, 0, "instance", 1),
                 *I1 = (const uint32_t *)plane(out, 1, "instance", 1);
  int valid = 0, checked = 0, same = 0, back = 0;
  double motion = 0;
  for (int i = 0; i < S * S; i++) {
    if (fw[3 * i + 2] == 0) continue;
    valid++;
    motion += hypot(fw[3 * i], fw[3 * i + 1]);
    double qx = i % S + fw[3 * i], qy = i / S + fw[3 * i + 1];
    double zl, u, v, z;
    if (!landing_depth(qx, qy, I0[i], N0 + 3 * i, I1, N1, Z1, &zl)) continue;
    checked++;
    project(&f1.camera, P0 + 3 * i, &u, &v, &z);
    KT_TRUE(fabs(u - qx) < 1e-3 && fabs(v - qy) < 1e-3);
    if (fabs(zl - z) < 1e-4 * z) same++;
    /* and back: the backward flow at the nearest pixel points near where it came from */
    int j = (int)lround(qy) * S + (int)lround(qx);
    if (bw1[3 * j + 2] > 0 &&
        hypot(lround(qx) + bw1[3 * j] - i % S, lround(qy) + bw1[3 * j + 1] - i / S) < 1.5)
      back++;
  }
  if (checked < valid / 2 || same < checked * 98 / 100 || back < checked * 9 / 10)
    KT_FAIL("%d valid, %d land on their own plane, %d at their own depth, %d come back", valid,
            checked, same, back);
  if (motion / valid < 1) KT_FAIL("mean motion %.3g px: too little to test", motion / valid);
  kiln_job_frame_clear(&f0), kiln_job_frame_clear(&f1);
  kiln_job_destroy(job);
}

TEST(flow_of_a_jsonl_list_refused) {
  char *d = tmpdir(), *list = fmt("%s/list.jsonl", d);
  write_text(list, "{\"name\": \"a\"}\n{\"name\": \"b\"}\n");
  kiln_job_options o = {.scene = fmt("%s/examples/cornell/scene.json", KILN_SOURCE_DIR)};
  kiln_error_detail err;
  kiln_job *job = NULL;
  KT_CODE(kiln_job_load(list, &o, &err, &job), KILN_OK);
  kiln_pool *pool;
  KT_CODE(kiln_pool_create(NULL, &pool), KILN_OK);
  kiln_batch_config bc;
  kiln_batch_config_default(&bc);
  kiln_gpu_device *none = NULL;
  bc.pool = pool, bc.devs = &none, bc.ndevs = 1, bc.out_dir = d, bc.passes = KILN_PASS_FLOW_BWD;
  kiln_batch *b = NULL;
  KT_CODE(kiln_batch_create(job, &bc, &b, &err), KILN_EUNSUPPORTED);
  KT_STR_CONTAINS(err.message, "not a .jsonl list");
  KT_TRUE(b == NULL);
  bc.passes = KILN_PASS_POSITION | KILN_PASS_NOCS; /* those need no neighbour */
  KT_CODE(kiln_batch_create(job, &bc, &b, &err), KILN_OK);
  kiln_batch_destroy(b);
  kiln_pool_destroy(pool);
  kiln_job_destroy(job);
}

/* A crate (a box primitive, category "crate" = 5) before a wall; object keyframes slide it 0.3 to
 * the side between frames 0 and 1 (rotated alike in both, so its faces keep their normals). */
static char *crate_job(const char *dir) {
  write_text(fmt("%s/scene.json", dir),
             "{\"settings\": {\"width\": 24, \"height\": 24, \"spp\": 1},\n"
             " \"camera\": {\"position\": [0, 1.5, -4], \"look_at\": [0, 0.5, 0]},\n"
             " \"environment\": {\"type\": \"constant\", \"color\": [1, 1, 1]},\n"
             " \"categories\": {\"crate\": 5},\n"
             " \"objects\": [\n"
             "  {\"type\": \"box\", \"name\": \"crate\", \"min\": [-0.5, 0, -0.5], \"max\": [0.5, "
             "1, 0.5], \"category\": \"crate\", \"material\": {\"type\": \"diffuse\"}},\n"
             "  {\"type\": \"quad\", \"name\": \"wall\", \"corner\": [-4, -2, 1.5], \"u\": [8, 0, "
             "0], \"v\": [0, 6, 0], \"material\": {\"type\": \"diffuse\"}}]}\n");
  char *p = fmt("%s/job.json", dir);
  write_text(p, "{\"scene\": \"scene.json\", \"format\": \"npy\", \"passes\": [\"depth\", "
                "\"instance\", \"normal\", \"position\", \"objcoord\", \"nocs\", \"category\", "
                "\"flow_fwd\", \"flow_bwd\", \"motion_fwd\", \"motion_bwd\"], \"animation\": "
                "{\"frames\": 2, \"objects\": "
                "{\"crate\": {\"keyframes\": [{\"frame\": 0, \"rotate\": [0, 30, 0]}, "
                "{\"frame\": 1, \"translate\": [0.3, 0, 0], \"rotate\": [0, 30, 0]}]}}}}");
  return p;
}

/* Through the loader's instance table: objcoord of the crate lies on its box's faces, nocs in the
 * unit cube, category is the crate's; the forward flow carries each crate point by the keyframes'
 * 0.3 and lands where frame 1 sees it; wall points the crate moves in front of are hidden. */
TEST(moving_object_through_a_job) {
  char *d = tmpdir(), *out = fmt("%s/out", d);
  kiln_job *job = load_job(crate_job(d));
  render_job(job, out, 2);
  kiln_job_frame f0, f1;
  first_two(job, &f0, &f1);
  const float *O = plane(out, 0, "objcoord", 3), *N = plane(out, 0, "nocs", 3),
              *P0 = plane(out, 0, "position", 3), *fw = plane(out, 0, "flow_fwd", 3),
              *Z1 = plane(out, 1, "depth", 1), *N0 = plane(out, 0, "normal", 3),
              *N1 = plane(out, 1, "normal", 3), *mv = plane(out, 0, "motion_fwd", 3),
              *mb1 = plane(out, 1, "motion_bwd", 3), *fb1 = plane(out, 1, "flow_bwd", 3);
  const uint32_t *I0 = (const uint32_t *)plane(out, 0, "instance", 1),
                 *I1 = (const uint32_t *)plane(out, 1, "instance", 1),
                 *cat = (const uint32_t *)plane(out, 0, "category", 1);
  const float lo[3] = {-0.5f, 0, -0.5f}, hi[3] = {0.5f, 1, 0.5f};
  int crate = 0, checked = 0, same = 0, covered = 0, covered_valid = 0, covered_still = 0;
  double motion = 0;
  for (int i = 0; i < S * S; i++) {
    KT_EQ(cat[i], I0[i] == 1 ? 5u : 0u);
    if (I0[i] == 2 && I1[i] == 1) { /* the wall stands still: its pixel now shows the crate */
      covered++;
      covered_valid += fw[3 * i + 2] > 0;
      /* its motion is still defined (hidden is not moved): the camera and the wall stand still */
      covered_still += mv[3 * i + 2] > 0 && fabsf(mv[3 * i]) < 1e-3f && fabsf(mv[3 * i + 1]) < 1e-3f;
    }
    /* the motion is the flow wherever the flow is valid, and defined wherever something is hit */
    if (fw[3 * i + 2] > 0)
      for (int k = 0; k < 3; k++) KT_TRUE(mv[3 * i + k] == fw[3 * i + k]);
    if (fb1[3 * i + 2] > 0)
      for (int k = 0; k < 3; k++) KT_TRUE(mb1[3 * i + k] == fb1[3 * i + k]);
    KT_TRUE((mv[3 * i + 2] > 0) == (I0[i] != 0));
    if (I0[i] != 1) continue;
    crate++;
    float edge = 1;
    for (int k = 0; k < 3; k++) {
      float o = O[3 * i + k];
      KT_TRUE(o >= lo[k] - 1e-4f && o <= hi[k] + 1e-4f);
      KT_TRUE(N[3 * i + k] >= 0 && N[3 * i + k] <= 1);
      edge = fminf(edge, fminf(fabsf(o - lo[k]), fabsf(o - hi[k])));
    }
    KT_TRUE(edge < 1e-4f); /* on a face */
    if (fw[3 * i + 2] == 0) continue;
    motion += hypot(fw[3 * i], fw[3 * i + 1]);
    float moved[3] = {P0[3 * i] + 0.3f, P0[3 * i + 1], P0[3 * i + 2]};
    double u, v, z, qx = i % S + fw[3 * i], qy = i / S + fw[3 * i + 1];
    project(&f1.camera, moved, &u, &v, &z);
    if (fabs(u - qx) > 1e-3 || fabs(v - qy) > 1e-3)
      KT_FAIL("pixel %d: the flow lands at %.4f, %.4f; the keyframes move it to %.4f, %.4f", i, qx,
              qy, u, v);
    double zl;
    if (!landing_depth(qx, qy, 1, N0 + 3 * i, I1, N1, Z1, &zl)) continue;
    checked++;
    if (fabs(zl - z) < 1e-4 * z) same++;
  }
  KT_TRUE(crate > 40);
  if (checked < crate / 3 || same < checked * 98 / 100)
    KT_FAIL("%d crate pixels, %d land on one face of it, %d at their own depth", crate, checked,
            same);
  if (motion / crate < 2) KT_FAIL("mean motion %.3g px: too little to test", motion / crate);
  KT_TRUE(covered > 5);
  KT_EQ(covered_valid, 0);
  KT_EQ(covered_still, covered);
  kiln_job_frame_clear(&f0), kiln_job_frame_clear(&f1);
  kiln_job_destroy(job);
}
