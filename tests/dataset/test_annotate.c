/* test_annotate.c: a frame's ground truth (engine/batch/annotate.c) against analytic values and
 * against the renderer's own instance pass: spheres at known places (pixel counts, boxes,
 * centroids), an occluded sphere's visible fraction against two renders, projected box corners
 * against kiln_camera_intrinsics and kiln_camera_to_world, a floor reaching behind the camera
 * (clipped, not wrapped), a shared mesh's instances against copies of it, the instance table and
 * categories of a loaded scene, and the cost on a large mesh. Small images, one sample a pixel: the ids do not depend on samples. */
// kt: timeout 120
#define _GNU_SOURCE
#include <math.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "batch_internal.h"
#include "gpu/gpu_test_util.h"
#include "kiln/render.h"
#include "kiln/scene.h"
#include "scene_data.h"

#define NEAR_OK(a, b, tol)                                                                       \
  do {                                                                                           \
    double na = (a), nb = (b), nt = (tol);                                                       \
    if (!(fabs(na - nb) <= nt)) KT_FAIL("%s ~ %s: %g vs %g (tolerance %g)", #a, #b, na, nb, nt); \
  } while (0)

enum { W = 96, H = 72 };

static kiln_scene *load(const char *json) {
  kiln_error_detail e;
  kiln_scene *s = NULL;
  char buf[1500];
  int rc = kiln_scene_load_string(json, ".", "test", &e, &s);
  if (rc) KT_FAIL("%s", kiln_error_detail_format(&e, buf, sizeof buf));
  return s;
}

static kiln_camera camera_of(const kiln_scene *s) {
  const kiln__camera *c = &s->data.camera;
  kiln_camera cam = {.vfov_deg = c->vfov_deg};
  memcpy(cam.position, c->position, sizeof cam.position);
  memcpy(cam.look_at, c->look_at, sizeof cam.look_at);
  memcpy(cam.up, c->up, sizeof cam.up);
  return cam;
}

/* Renders s once (W x H, 1 spp) and annotates it: *ids gets a copy of the instance pass. */
static kiln__frame_gt render_gt(kiln_scene *s, bool masks, uint32_t **ids) {
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  kiln_renderer_config rc;
  kiln_renderer_config_default(&rc);
  kiln_renderer *r = NULL;
  KT_CODE(kiln_renderer_create(s, &dev, 1, &rc, &r), KILN_OK);
  kiln_frame_config fc;
  kiln_frame_config_default(r, &fc);
  fc.width = W, fc.height = H, fc.spp = 1, fc.max_bounces = 0;
  kiln_future *f = NULL;
  KT_CODE(kiln_renderer_submit(r, &fc, &f), KILN_OK);
  void *v = NULL;
  KT_CODE(kiln_future_result(f, -1, &v), KILN_OK);
  kiln_image_info ii;
  kiln_image_get_info(v, &ii);
  KT_EQ(ii.width, W);
  *ids = malloc((size_t)W * H * sizeof **ids);
  memcpy(*ids, ii.instance_id, (size_t)W * H * sizeof **ids);
  kiln_camera cam = camera_of(s);
  kiln__frame_gt gt;
  char msg[256];
  KT_CODE(kiln__annotate(&s->data, &cam, W, H, *ids, masks, &gt, msg, sizeof msg), KILN_OK);
  kiln_future_release(f);
  kiln_renderer_destroy(r);
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
  return gt;
}

/* Camera at z = -5 looking along +z: world +x is image left, world +y image up. */
#define CAMERA "\"camera\": {\"position\": [0, 0, -5], \"look_at\": [0, 0, 0], \"vfov\": 40},"

static const char *two_spheres =
    "{\"settings\": {\"width\": 96, \"height\": 72},\n" CAMERA
    " \"categories\": [\"ball\", \"block\"],\n"
    " \"objects\": [\n"
    "  {\"type\": \"sphere\", \"name\": \"a\", \"center\": [0, 0, 0], \"radius\": 0.5,\n"
    "   \"material\": {\"type\": \"diffuse\"}, \"category\": \"ball\"},\n"
    "  {\"type\": \"sphere\", \"name\": \"b\", \"center\": [0, 0, 0], \"radius\": 0.3,\n"
    "   \"material\": {\"type\": \"diffuse\"}, \"transform\": {\"translate\": [-1.2, 0.6, 1]},\n"
    "   \"category_id\": 1}]}\n";

/* The analytic disc of a sphere (camera-space centre c, radius r) seen on or near the axis:
 * its projected centre and radius in pixels (f r / sqrt(d^2 - r^2) along the axis). */
static void disc(const double K[9], const double c[3], double r, double *u, double *v, double *R) {
  double d = sqrt(c[0] * c[0] + c[1] * c[1] + c[2] * c[2]);
  *u = K[0] * c[0] / c[2] + K[2], *v = K[4] * c[1] / c[2] + K[5];
  *R = K[4] * r / sqrt(d * d - r * r) * (d / c[2]); /* grows off axis as 1 / cos */
}

static void centroid(const kiln__gt_instance *g, double *u, double *v) {
  int32_t w = g->box_all[2] - g->box_all[0], h = g->box_all[3] - g->box_all[1];
  double su = 0, sv = 0, n = 0;
  for (int32_t y = 0; y < h; y++)
    for (int32_t x = 0; x < w; x++)
      if (g->mask_all[(size_t)y * (size_t)w + (size_t)x])
        su += x + g->box_all[0], sv += y + g->box_all[1], n++;
  KT_EQ((uint64_t)n, g->px_all);
  *u = su / n, *v = sv / n;
}

TEST(spheres_match_analytic_values) {
  kiln_scene *s = load(two_spheres);
  uint32_t *ids;
  kiln__frame_gt gt = render_gt(s, true, &ids);
  KT_EQ(gt.n, 2);
  const double world[2][4] = {{0, 0, 0, 0.5}, {-1.2, 0.6, 1, 0.3}};
  for (int k = 0; k < 2; k++) {
    kiln__gt_instance *g = &gt.inst[k];
    KT_EQ(g->instance_id, k + 1);
    KT_EQ(g->object_id, k + 1);
    KT_STR_EQ(g->category, "ball");
    KT_EQ(g->category_id, 1);
    /* camera space (OpenCV): x = -world x, y = -world y, z = world z + 5 */
    double c[3] = {-world[k][0], -world[k][1], world[k][2] + 5}, u, v, R;
    disc(gt.K, c, world[k][3], &u, &v, &R);
    double area = M_PI * R * R, perim = 2 * M_PI * R;
    NEAR_OK((double)g->px_all, area, perim / 2);
    NEAR_OK(g->box_all[0], u - R, 1);
    NEAR_OK(g->box_all[2], u + R + 1, 1);
    NEAR_OK(g->box_all[1], v - R, 1);
    NEAR_OK(g->box_all[3], v + R + 1, 1);
    double cu, cv;
    centroid(g, &cu, &cv);
    NEAR_OK(cu, u, 0.5);
    NEAR_OK(cv, v, 0.5);
    NEAR_OK(g->center[0], u, 1e-6);
    NEAR_OK(g->center[1], v, 1e-6);
    NEAR_OK(g->center[2], c[2], 1e-6);
    /* unoccluded: the renderer's own pass agrees up to pixels its float rays decide otherwise */
    NEAR_OK((double)g->px_visib, (double)g->px_all, 2 + perim * 0.02);
    NEAR_OK(g->visib_fract, 1, 0.03);
    for (int i = 0; i < 4; i++) NEAR_OK(g->box_visib[i], g->box_all[i], 1);
  }
  free(ids);
  kiln__frame_gt_free(&gt);
  kiln_scene_destroy(s);
}

/* Each corner of the object-space box, through the instance's transform, K and the camera pose
 * as the public calls give them. */
TEST(box_corners_project_through_the_public_camera) {
  kiln_scene *s = load(two_spheres);
  uint32_t *ids;
  kiln__frame_gt gt = render_gt(s, false, &ids);
  kiln_camera cam = camera_of(s);
  double K[9], M[16];
  KT_CODE(kiln_camera_intrinsics(&cam, W, H, K), KILN_OK);
  KT_CODE(kiln_camera_to_world(&cam, KILN_CAMERA_CV, M), KILN_OK);
  for (int i = 0; i < 9; i++) NEAR_OK(gt.K[i], K[i], 0);
  kiln__gt_instance *g = &gt.inst[1];
  /* the sphere's own numbers: centre 0, radius 0.3, placed by its transform */
  NEAR_OK(g->bbox_min[0], -0.3, 1e-6);
  NEAR_OK(g->bbox_max[2], 0.3, 1e-6);
  NEAR_OK(g->xform[3], -1.2, 1e-6);
  NEAR_OK(g->xform[7], 0.6, 1e-6);
  for (int c = 0; c < 8; c++) {
    double p[3] = {(c & 1 ? 0.3 : -0.3) - 1.2, (c & 2 ? 0.3 : -0.3) + 0.6,
                   (c & 4 ? 0.3 : -0.3) + 1};
    double d[3] = {p[0] - M[3], p[1] - M[7], p[2] - M[11]}, q[3];
    for (int k = 0; k < 3; k++) q[k] = M[k] * d[0] + M[4 + k] * d[1] + M[8 + k] * d[2];
    NEAR_OK(g->corners[c][0], K[0] * q[0] / q[2] + K[2], 1e-4); /* the table keeps floats */
    NEAR_OK(g->corners[c][1], K[4] * q[1] / q[2] + K[5], 1e-4);
    NEAR_OK(g->corners[c][2], q[2], 1e-5);
  }
  /* by hand: corner (-0.9, 0.9, 1.3) is 6.3 ahead, right of and above the centre of the image */
  NEAR_OK(g->corners[3][2], 5 + 0.7, 1e-5);
  NEAR_OK(g->corners[7][0], K[0] * 0.9 / 6.3 + K[2], 1e-4);
  NEAR_OK(g->corners[7][1], K[4] * -0.9 / 6.3 + K[5], 1e-4);
  free(ids);
  kiln__frame_gt_free(&gt);
  kiln_scene_destroy(s);
}

static const char *occluded_fmt =
    "{\"settings\": {\"width\": 96, \"height\": 72},\n" CAMERA " \"objects\": [\n"
    "  {\"type\": \"sphere\", \"name\": \"target\", \"center\": [0, 0, 0], \"radius\": 0.8,\n"
    "   \"material\": {\"type\": \"diffuse\"}}%s]}\n";
static const char *occluder =
    ",\n  {\"type\": \"quad\", \"name\": \"card\", \"corner\": [-0.1, -0.5, -2], \"u\": [1, 0, 0],"
    " \"v\": [0, 1, 0], \"material\": {\"type\": \"diffuse\"}}";

/* The occluded sphere's visible fraction is what its two renders, with and without the card in
 * front, say; its unoccluded silhouette is what the render without the card shows. */
TEST(occluded_fraction_matches_two_renders) {
  char with[1200], without[1200];
  snprintf(with, sizeof with, occluded_fmt, occluder);
  snprintf(without, sizeof without, occluded_fmt, "");
  kiln_scene *sw = load(with), *so = load(without);
  uint32_t *iw, *io;
  kiln__frame_gt gw = render_gt(sw, false, &iw), go = render_gt(so, false, &io);
  kiln__gt_instance *t = &gw.inst[0], *alone = &go.inst[0], *card = &gw.inst[1];
  double perim = 2 * M_PI * sqrt((double)alone->px_visib / M_PI);
  KT_TRUE(t->px_visib < alone->px_visib * 0.9); /* the card hides a good part */
  KT_TRUE(t->px_visib > alone->px_visib * 0.3);
  NEAR_OK((double)t->px_all, (double)alone->px_visib, 2 + perim * 0.02);
  NEAR_OK(t->visib_fract, (double)t->px_visib / (double)alone->px_visib, 0.02);
  /* the card, in front of everything, is all visible: triangles rasterised as the rays see them */
  NEAR_OK((double)card->px_visib, (double)card->px_all, 4);
  NEAR_OK(card->visib_fract, 1, 0.02);
  for (int i = 0; i < 4; i++) NEAR_OK(card->box_visib[i], card->box_all[i], 1);
  free(iw), free(io);
  kiln__frame_gt_free(&gw), kiln__frame_gt_free(&go);
  kiln_scene_destroy(sw), kiln_scene_destroy(so);
}

/* A floor from far behind the camera to far ahead: clipped at the camera, it fills the lower half
 * of the image, and nothing of it wraps around into the upper half. */
TEST(floor_behind_the_camera_is_clipped) {
  kiln_scene *s =
      load("{\"settings\": {\"width\": 96, \"height\": 72},\n" CAMERA
           " \"objects\": [{\"type\": \"quad\", \"name\": \"floor\", \"corner\": [-50, -1, -60],"
           " \"u\": [0, 0, 120], \"v\": [100, 0, 0], \"material\": {\"type\": \"diffuse\"}}]}");
  uint32_t *ids;
  kiln__frame_gt gt = render_gt(s, false, &ids);
  kiln__gt_instance *g = &gt.inst[0];
  KT_TRUE(g->px_all > 0);
  KT_TRUE(g->box_all[1] >= H / 2); /* below the horizon only */
  KT_EQ(g->box_all[3], H);
  NEAR_OK((double)g->px_visib, (double)g->px_all, W / 8.0);
  free(ids);
  kiln__frame_gt_free(&gt);
  kiln_scene_destroy(s);
}

/* Checks that ga (shared placements) has gb's (baked copies') instances, each with a silhouette
 * of over 20 pixels, the same pixel counts and box; returns gb's occluded pixels, all together. */
static uint64_t gt_matches_copy(const kiln__frame_gt *ga, const kiln__frame_gt *gb) {
  KT_EQ(ga->n, gb->n);
  uint64_t occluded = 0;
  for (size_t k = 0; k < gb->n; k++) {
    const kiln__gt_instance *x = &ga->inst[k], *y = &gb->inst[k];
    KT_EQ(x->instance_id, y->instance_id);
    KT_TRUE(y->px_all > 20);
    /* the same triangles, placed by float arithmetic in another order: an edge pixel at most */
    NEAR_OK((double)x->px_all, (double)y->px_all, 2);
    NEAR_OK((double)x->px_visib, (double)y->px_visib, 2);
    for (int i = 0; i < 4; i++) NEAR_OK(x->box_all[i], y->box_all[i], 1);
    occluded += y->px_all - y->px_visib;
  }
  return occluded;
}

/* A mesh placed twice is shared (one mesh, two placements): its instances' silhouettes, visible
 * pixels and boxes are those of the same mesh copied into the world twice (two objects), each
 * group of each placement its own instance; the placements overlap, so one occludes the other. */
TEST(shared_mesh_ground_truth_matches_copies) {
  char dir[] = "/tmp/kiln-annot-XXXXXX";
  KT_TRUE(mkdtemp(dir) != NULL);
  char obj[600];
  snprintf(obj, sizeof obj, "%s/tet.obj", dir);
  FILE *f = fopen(obj, "w");
  KT_TRUE(f != NULL);
  fputs("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\no one\nf 1 3 2\nf 1 2 4\n"
        "o two\nf 1 4 3\nf 2 3 4\n",
        f);
  fclose(f);
#define T0 "{\"translate\": [-0.6, -0.4, 0], \"rotate\": [10, 30, 0]}"
#define T1 "{\"translate\": [-0.2, -0.3, 0.8], \"scale\": [1.2, 0.8, 1], \"rotate\": [0, -20, 15]}"
  char shared_json[2000], baked_json[2000];
  snprintf(shared_json, sizeof shared_json,
           "{\"settings\": {\"width\": 96, \"height\": 72},\n" CAMERA
           " \"objects\": [{\"type\": \"mesh\", \"name\": \"t\", \"file\": \"%s\","
           " \"material\": {\"type\": \"diffuse\"}, \"instances\": [" T0 ", " T1 "]}]}",
           obj);
  snprintf(baked_json, sizeof baked_json,
           "{\"settings\": {\"width\": 96, \"height\": 72},\n" CAMERA
           " \"objects\": [{\"type\": \"mesh\", \"name\": \"t\", \"file\": \"%s\","
           " \"material\": {\"type\": \"diffuse\"}, \"transform\": " T0 "},"
           " {\"type\": \"mesh\", \"name\": \"u\", \"file\": \"%s\","
           " \"material\": {\"type\": \"diffuse\"}, \"transform\": " T1 "}]}",
           obj, obj);
#undef T0
#undef T1
  kiln_scene *a = load(shared_json), *b = load(baked_json);
  KT_EQ(a->data.nplacements, 2);
  KT_EQ(b->data.nplacements, 0);
  uint32_t *ia, *ib;
  kiln__frame_gt ga = render_gt(a, true, &ia), gb = render_gt(b, true, &ib);
  KT_EQ(ga.n, 4);
  KT_EQ(gb.n, 4);
  KT_TRUE(gt_matches_copy(&ga, &gb) > 10);
  kiln__frame_gt_free(&ga), kiln__frame_gt_free(&gb);
  free(ia), free(ib);
  kiln_scene_destroy(a), kiln_scene_destroy(b);
  remove(obj), rmdir(dir);
}

/* A mesh placed once with "share": true is shared (one mesh, one placement): its groups'
 * silhouettes, visible pixels and boxes are those of its copy baked into the world (the same
 * object without "share"); a small box in front occludes part of it. */
TEST(mesh_placed_once_and_shared_ground_truth_matches_a_copy) {
  char dir[] = "/tmp/kiln-annot-XXXXXX";
  KT_TRUE(mkdtemp(dir) != NULL);
  char obj[600];
  snprintf(obj, sizeof obj, "%s/grid.obj", dir);
  FILE *f = fopen(obj, "w");
  KT_TRUE(f != NULL);
  int q = 24; /* 1152 triangles */
  for (int j = 0; j <= q; j++)
    for (int i = 0; i <= q; i++)
      fprintf(f, "v %g %g %g\n", 2.0 * i / q - 1, 1.5 * j / q - 0.75, 0.1 * sin(0.3 * i));
  for (int j = 0; j < q; j++) {
    if (j == 0 || j == q / 2) fprintf(f, "o %s\n", j ? "hi" : "lo");
    for (int i = 0; i < q; i++) {
      int a = j * (q + 1) + i + 1, b = a + 1, c = a + q + 1, d = c + 1;
      fprintf(f, "f %d %d %d\nf %d %d %d\n", a, c, b, b, c, d);
    }
  }
  fclose(f);
  char json[2][2000];
  for (int k = 0; k < 2; k++)
    snprintf(json[k], sizeof json[k],
             "{\"settings\": {\"width\": 96, \"height\": 72},\n" CAMERA
             " \"objects\": [{\"type\": \"mesh\", \"name\": \"g\", \"file\": \"%s\",%s"
             " \"material\": {\"type\": \"diffuse\"}, \"transform\": {\"translate\": [0.1, 0, 0.5],"
             " \"rotate\": [10, 25, 5], \"scale\": [0.9, 1, 1]}},"
             " {\"type\": \"box\", \"name\": \"b\", \"min\": [-0.3, -0.3, -0.6],"
             " \"max\": [0.1, 0.1, -0.4], \"material\": {\"type\": \"diffuse\"}}]}",
             obj, k ? "" : " \"share\": true,");
  kiln_scene *a = load(json[0]), *b = load(json[1]);
  KT_EQ(a->data.nplacements, 1);
  KT_EQ(b->data.nplacements, 0);
  uint32_t *ia, *ib;
  kiln__frame_gt ga = render_gt(a, true, &ia), gb = render_gt(b, true, &ib);
  KT_EQ(ga.n, 3);
  KT_EQ(gb.n, 3);
  gt_matches_copy(&ga, &gb);
  KT_TRUE(gb.inst[0].px_all - gb.inst[0].px_visib > 10); /* the box hides part of "lo" */
  kiln__frame_gt_free(&ga), kiln__frame_gt_free(&gb);
  free(ia), free(ib);
  kiln_scene_destroy(a), kiln_scene_destroy(b);
  remove(obj), rmdir(dir);
}

/* The instance table of a loaded scene: object transforms and instances, OBJ-like groups are not
 * needed here; primitives and lights each get one. */
TEST(instance_table_of_a_scene) {
  kiln_scene *s = load(
      "{" CAMERA " \"objects\": [\n"
      "  {\"type\": \"box\", \"name\": \"crate\", \"min\": [0, 0, 0], \"max\": [1, 2, 3],\n"
      "   \"material\": {\"type\": \"diffuse\"}, \"transform\": {\"translate\": [1, 0, 0]},\n"
      "   \"instances\": [{}, {\"translate\": [0, 5, 0]}]},\n"
      "  {\"type\": \"sphere\", \"center\": [1, 2, 3], \"radius\": 2, \"material\": {\"type\": \"diffuse\"}}],\n"
      " \"lights\": [{\"type\": \"quad\", \"name\": \"key\", \"corner\": [0, 3, 0], \"u\": [1, 0, 0],"
      " \"v\": [0, 0, 2], \"radiance\": [1, 1, 1]}]}");
  const kiln__scene *d = &s->data;
  KT_EQ(d->ninstances, 4);
  KT_EQ(d->instances[0].object_id, 1);
  KT_EQ(d->instances[1].object_id, 1);
  KT_EQ(d->instances[2].object_id, 2);
  KT_EQ(d->instances[3].object_id, 3);
  NEAR_OK(d->instances[0].xform[3], 1, 0);
  NEAR_OK(d->instances[1].xform[7], 5, 0);
  NEAR_OK(d->instances[1].xform[3], 1, 0);
  NEAR_OK(d->instances[0].bbox_max[2], 3, 0);
  NEAR_OK(d->instances[2].bbox_min[0], -1, 0);
  NEAR_OK(d->instances[2].bbox_max[2], 5, 0);
  NEAR_OK(d->instances[3].bbox_max[2], 2, 0);
  NEAR_OK(d->instances[3].bbox_min[1], 3, 0);
  /* every triangle's and sphere's instance id is in the table */
  for (size_t t = 0; t < d->ntris; t++) KT_TRUE(d->tri_instance[t] >= 1 && d->tri_instance[t] <= 4);
  KT_EQ(d->object_category, NULL);
  kiln_scene_destroy(s);
}

/* A mesh of a million small triangles is annotated in well under a second (a render of it takes
 * far longer): the silhouettes cost the triangles and the pixels they cover. */
TEST(large_mesh_is_cheap) {
  enum { N = 1000 }; /* N x N cells, two triangles each, in front of the camera */
  kiln__scene sc = {0};
  sc.ntris = 2 * (size_t)N * N;
  sc.pos = malloc(sc.ntris * 9 * sizeof(float));
  sc.tri_instance = malloc(sc.ntris * sizeof(uint32_t));
  size_t t = 0;
  for (int y = 0; y < N; y++)
    for (int x = 0; x < N; x++) {
      float x0 = -1 + 2.0f * x / N, x1 = -1 + 2.0f * (x + 1) / N;
      float y0 = -1 + 2.0f * y / N, y1 = -1 + 2.0f * (y + 1) / N;
      const float q[2][9] = {{x0, y0, 0, x1, y0, 0, x1, y1, 0}, {x0, y0, 0, x1, y1, 0, x0, y1, 0}};
      for (int k = 0; k < 2; k++, t++) {
        memcpy(sc.pos + 9 * t, q[k], sizeof q[k]);
        sc.tri_instance[t] = 1 + (uint32_t)(t & 1); /* two interleaved instances */
      }
    }
  kiln__instance inst[2] = {{.object_id = 1}, {.object_id = 1}};
  for (int k = 0; k < 2; k++)
    inst[k].xform[0] = inst[k].xform[5] = inst[k].xform[10] = inst[k].xform[15] = 1;
  sc.ninstances = 2, sc.instances = inst;
  char *name = "grid";
  sc.nobjects = 1, sc.object_names = &name;
  kiln_camera cam = {.position = {0, 0, -3}, .look_at = {0, 0, 0}, .up = {0, 1, 0}, .vfov_deg = 40};
  enum { BW = 640, BH = 480 };
  uint32_t *ids = calloc((size_t)BW * BH, sizeof *ids);
  kiln__frame_gt gt;
  char msg[256];
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  KT_CODE(kiln__annotate(&sc, &cam, BW, BH, ids, false, &gt, msg, sizeof msg), KILN_OK);
  clock_gettime(CLOCK_MONOTONIC, &b);
  double s = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
  fprintf(stderr, "annotate: %zu triangles at %dx%d in %.3f s\n", sc.ntris, BW, BH, s);
  KT_TRUE(s < 3.0); /* ~0.1 s optimised; sanitizers slow it several times */
  /* the square [-1, 1]^2 at distance 3: side 2 f / 3 pixels, covered by both instances */
  double side = 2 * gt.K[4] / 3;
  NEAR_OK((double)gt.inst[0].px_all, side * side / 2, 4 * side); /* each takes half a cell */
  NEAR_OK((double)gt.inst[1].px_all, side * side / 2, 4 * side);
  NEAR_OK((double)(gt.inst[0].px_all + gt.inst[1].px_all), side * side, 4 * side);
  KT_EQ(gt.inst[0].px_visib, 0);
  kiln__frame_gt_free(&gt);
  free(ids), free(sc.pos), free(sc.tri_instance);
}

/* A closed, rotated box: its front and back faces overlap on screen and count once, and its
 * silhouette is what the renderer's rays see of it. */
TEST(closed_box_counts_each_pixel_once) {
  kiln_scene *s = load("{\"settings\": {\"width\": 96, \"height\": 72},\n" CAMERA
                       " \"objects\": [{\"type\": \"box\", \"name\": \"crate\", \"min\": [-0.7, "
                       "-0.7, -0.7], \"max\": [0.7, 0.7, 0.7], \"material\": {\"type\": "
                       "\"diffuse\"}, \"transform\": {\"rotate\": [30, 40, 10]}}]}");
  uint32_t *ids;
  kiln__frame_gt gt = render_gt(s, true, &ids);
  kiln__gt_instance *g = &gt.inst[0];
  KT_TRUE(g->px_all > 500);
  double perim = 4 * sqrt((double)g->px_all);
  NEAR_OK((double)g->px_visib, (double)g->px_all, 2 + perim * 0.05);
  int32_t w = g->box_all[2] - g->box_all[0], h = g->box_all[3] - g->box_all[1];
  uint64_t ones = 0;
  for (size_t p = 0; p < (size_t)w * (size_t)h; p++) ones += g->mask_all[p];
  KT_EQ(ones, g->px_all);
  free(ids);
  kiln__frame_gt_free(&gt);
  kiln_scene_destroy(s);
}
