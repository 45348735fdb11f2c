/* test_transform.c: transforms (translate / rotate / scale, Euler and axis-angle, matrix), instancing
 * and ids produce the right world-space geometry. */
#include <math.h>

#include "scene_test_util.h"

#define HEAD "{\"camera\": {\"position\": [0, 0, -5], \"look_at\": [0, 0, 0]},\n \"objects\": [\n"
#define MAT "\"material\": {\"type\": \"diffuse\"}"

static void vert(const kiln__scene *d, size_t t, int k, double x, double y, double z) {
  const float *p = d->pos + 9 * t + 3 * k;
  if (fabs(p[0] - x) > 1e-5 || fabs(p[1] - y) > 1e-5 || fabs(p[2] - z) > 1e-5)
    KT_FAIL("triangle %zu vertex %d: (%g, %g, %g), want (%g, %g, %g)", t, k, p[0], p[1], p[2], x, y,
            z);
}

static void face_normal(const kiln__scene *d, size_t t, double n[3]) {
  const float *p = d->pos + 9 * t;
  double e1[3] = {p[3] - p[0], p[4] - p[1], p[5] - p[2]},
         e2[3] = {p[6] - p[0], p[7] - p[1], p[8] - p[2]};
  n[0] = e1[1] * e2[2] - e1[2] * e2[1], n[1] = e1[2] * e2[0] - e1[0] * e2[2],
  n[2] = e1[0] * e2[1] - e1[1] * e2[0];
}

/* Scale, then rotate, then translate. */
TEST(trs_order) {
  kiln_scene *s = st_load_ok(
      HEAD
      "{\"type\": \"quad\", " MAT ", \"corner\": [0, 0, 0], \"u\": [1, 0, 0],"
      " \"v\": [0, 1, 0], \"transform\": {\"translate\": [1, 2, 3], \"rotate\": [0, 90, 0], \"scale\": 2}}]}",
      NULL);
  const kiln__scene *d = st_data(s);
  KT_EQ(d->ntris, 2);
  vert(d, 0, 0, 1, 2, 3);
  vert(d, 0, 1, 1, 2, 1);
  vert(d, 0, 2, 1, 4, 1);
  vert(d, 1, 2, 1, 4, 3);
  kiln_scene_destroy(s);
}

/* Euler angles apply about x first, then y, then z; axis-angle; a row-major matrix. */
TEST(rotations_and_matrix) {
  kiln_scene *s = st_load_ok(
      HEAD
      "{\"type\": \"quad\", " MAT ", \"corner\": [0, 1, 0], \"u\": [1, 0, 0], \"v\": [0, 0, 1],"
      " \"transform\": {\"rotate\": [90, 90, 0]}},\n"
      "{\"type\": \"quad\", " MAT ", \"corner\": [1, 0, 0], \"u\": [0, 1, 0], \"v\": [0, 0, 1],"
      " \"transform\": {\"rotate\": {\"axis\": [0, 0, 3], \"angle\": 90}}},\n"
      "{\"type\": \"quad\", " MAT ", \"corner\": [1, 2, 3], \"u\": [0, 1, 0], \"v\": [0, 0, 1],"
      " \"transform\": {\"matrix\": [1, 0, 0, 5,  0, 2, 0, 0,  0, 0, 1, -1,  0, 0, 0, 1]}}]}",
      NULL);
  const kiln__scene *d = st_data(s);
  KT_EQ(d->ntris, 6);
  vert(d, 0, 0, 1, 0, 0); /* (0,1,0): x 90 -> (0,0,1); y 90 -> (1,0,0) */
  vert(d, 2, 0, 0, 1, 0); /* (1,0,0) about +z by 90 -> (0,1,0) */
  vert(d, 4, 0, 6, 4, 2); /* matrix */
  vert(d, 4, 1, 6, 6, 2);
  kiln_scene_destroy(s);
}

/* instances: each is instances[k] * transform; one object id, one instance id each. */
TEST(instancing_ids) {
  kiln_scene *s = st_load_ok(
      HEAD
      "{\"type\": \"quad\", \"name\": \"tile\", " MAT
      ", \"corner\": [0, 0, 0], \"u\": [1, 0, 0], \"v\": [0, 1, 0],"
      " \"transform\": {\"translate\": [0, 0, 1]},\n"
      " \"instances\": [{\"translate\": [10, 0, 0]}, {\"scale\": 2}, {\"rotate\": {\"axis\": [0, 1, 0], \"angle\": 180}}]},\n"
      "{\"type\": \"sphere\", \"name\": \"ball\", " MAT ", \"center\": [1, 0, 0], \"radius\": 0.5,"
      " \"transform\": {\"scale\": 2, \"translate\": [0, 1, 0]}, \"instances\": [{}, {\"rotate\": [0, 0, 90]}]}]}",
      NULL);
  const kiln__scene *d = st_data(s);
  KT_EQ(d->ntris, 6);
  KT_EQ(d->nobjects, 2);
  KT_STR_EQ(kiln_scene_object_name(s, 1), "tile");
  KT_STR_EQ(kiln_scene_object_name(s, 2), "ball");
  for (size_t t = 0; t < 6; t++) {
    KT_EQ(d->tri_object[t], 1);
    KT_EQ(d->tri_instance[t], 1 + t / 2);
  }
  vert(d, 0, 1, 11, 0, 1);
  vert(d, 2, 2, 2, 2, 2);
  vert(d, 4, 1, -1, 0, -1);
  KT_EQ(d->nspheres, 2);
  ST_NEAR(d->spheres[0].center[0], 2, 1e-6);
  ST_NEAR(d->spheres[0].center[1], 1, 1e-6);
  ST_NEAR(d->spheres[0].radius, 1, 1e-6);
  ST_NEAR(d->spheres[1].center[0], -1, 1e-5);
  ST_NEAR(d->spheres[1].center[1], 2, 1e-5);
  KT_EQ(d->spheres[0].object_id, 2);
  KT_EQ(d->spheres[0].instance_id, 4);
  KT_EQ(d->spheres[1].instance_id, 5);
  kiln_scene_destroy(s);
}

/* A mirroring transform keeps the front face: cross(v1 - v0, v2 - v0) still follows the
 * transformed normal (here +z stays +z under x -> -x). */
TEST(mirror_keeps_front_face) {
  kiln_scene *s =
      st_load_ok(HEAD "{\"type\": \"quad\", " MAT ", \"corner\": [0, 0, 0], \"u\": [1, 0, 0],"
                      " \"v\": [0, 1, 0], \"transform\": {\"scale\": [-1, 1, 1]}}]}",
                 NULL);
  const kiln__scene *d = st_data(s);
  for (size_t t = 0; t < 2; t++) {
    double n[3];
    face_normal(d, t, n);
    KT_TRUE(n[2] > 0);
    for (int i = 0; i < 3; i++) KT_TRUE(d->pos[9 * t + 3 * i] <= 0);
  }
  kiln_scene_destroy(s);
}

/* A box: 12 triangles facing outwards, after a rotation too. */
TEST(box_faces_out) {
  kiln_scene *s =
      st_load_ok(HEAD "{\"type\": \"box\", " MAT ", \"min\": [0, 0, 0], \"max\": [1, 2, 3]},\n"
                      "{\"type\": \"box\", " MAT ", \"min\": [-1, -1, -1], \"max\": [1, 1, 1],"
                      " \"transform\": {\"rotate\": [30, 40, 50], \"translate\": [5, 0, 0]}}]}",
                 NULL);
  const kiln__scene *d = st_data(s);
  KT_EQ(d->ntris, 24);
  const double centre[2][3] = {{0.5, 1, 1.5}, {5, 0, 0}};
  for (size_t t = 0; t < 24; t++) {
    const float *p = d->pos + 9 * t;
    double n[3], c[3];
    face_normal(d, t, n);
    for (int i = 0; i < 3; i++) c[i] = (p[i] + p[3 + i] + p[6 + i]) / 3 - centre[t / 12][i];
    KT_TRUE(n[0] * c[0] + n[1] * c[1] + n[2] * c[2] > 0);
    KT_TRUE(n[0] * n[0] + n[1] * n[1] + n[2] * n[2] > 1e-6);
  }
  kiln_scene_destroy(s);
}

/* A mesh of two OBJ objects instanced twice: two object ids, four instance ids; normals follow
 * the inverse transpose of a non-uniform scale. */
/* A mesh placed once is copied into the world: its normals by the inverse transpose. */
TEST(mesh_transform_and_normals) {
  const char *dir = st_tmpdir();
  st_write(dir, "two.obj",
           "o a\nv 0 0 0\nv 1 0 0\nv 0 1 0\nvn 1 1 0\nf 1//1 2//1 3//1\n"
           "o b\nf 1 3 2\n",
           (size_t)-1);
  kiln_scene *s = st_load_ok(
      HEAD
      "{\"type\": \"mesh\", \"name\": \"thing\", \"file\": \"two.obj\", " MAT ","
      " \"transform\": {\"scale\": [2, 1, 1]}, \"instances\": [{\"translate\": [0, 0, 5]}]},\n"
      "{\"type\": \"sphere\", " MAT ", \"radius\": 1}]}",
      dir);
  const kiln__scene *d = st_data(s);
  KT_EQ(d->ntris, 2);
  KT_EQ(d->nplacements, 0);
  KT_EQ(d->nobjects, 3);
  KT_STR_EQ(kiln_scene_object_name(s, 1), "thing.a");
  KT_STR_EQ(kiln_scene_object_name(s, 2), "thing.b");
  KT_STR_EQ(kiln_scene_object_name(s, 3), "sphere");
  const uint32_t obj[2] = {1, 2}, inst[2] = {1, 2};
  for (int t = 0; t < 2; t++) {
    KT_EQ(d->tri_object[t], obj[t]);
    KT_EQ(d->tri_instance[t], inst[t]);
  }
  vert(d, 0, 1, 2, 0, 5);
  KT_EQ(d->spheres[0].object_id, 3);
  KT_EQ(d->spheres[0].instance_id, 3);
  KT_TRUE(d->nrm != NULL);
  const double want[3] = {0.5 / sqrt(1.25), 1 / sqrt(1.25), 0};
  for (int i = 0; i < 3; i++) ST_NEAR(d->nrm[i], want[i], 1e-6);
  /* the second group had no vn: its normals are the geometric ones (-z for the order 1 3 2) */
  ST_NEAR(d->nrm[9 + 2], -1, 1e-6);
  kiln_scene_destroy(s);
  st_tmp_cleanup();
}

/* A mesh placed twice is kept once, in object space: one shared mesh (its groups' objects, its
 * materials), two placements whose groups are consecutive instance ids of the instance table,
 * which holds each placement's transform; no world-space copy. */
TEST(mesh_instances_share_geometry) {
  const char *dir = st_tmpdir();
  st_write(dir, "two.obj",
           "o a\nv 0 0 0\nv 1 0 0\nv 0 1 0\nvn 1 1 0\nf 1//1 2//1 3//1\n"
           "o b\nf 1 3 2\n",
           (size_t)-1);
  kiln_scene *s = st_load_ok(
      HEAD
      "{\"type\": \"mesh\", \"name\": \"thing\", \"file\": \"two.obj\", " MAT ","
      " \"transform\": {\"scale\": [2, 1, 1]}, \"instances\": [{}, {\"translate\": [0, 0, 5]}]},\n"
      "{\"type\": \"sphere\", " MAT ", \"radius\": 1}]}",
      dir);
  const kiln__scene *d = st_data(s);
  KT_EQ(d->ntris, 0);
  KT_EQ(kiln__scene_triangles(d), 4);
  kiln_scene_info info;
  kiln_scene_get_info(s, &info);
  KT_EQ(info.ntriangles, 4);
  KT_EQ(d->nmeshes, 1);
  const kiln__shared_mesh *m = &d->meshes[0];
  KT_EQ(m->ntris, 2);
  KT_EQ(m->ngroups, 2);
  KT_EQ(kiln__shared_mesh_object(m, 0), 1);
  KT_EQ(kiln__shared_mesh_object(m, 1), 2);
  KT_EQ(m->tri_group[0], 0);
  KT_EQ(m->tri_group[1], 1);
  ST_NEAR(m->pos[3], 1, 0); /* object space: v 1 0 0, not scaled */
  KT_TRUE(m->nrm != NULL);
  ST_NEAR(m->nrm[0], 0.70710678, 1e-6); /* the file's normal made unit, not turned */
  ST_NEAR(m->nrm[1], 0.70710678, 1e-6);
  ST_NEAR(m->nrm[2], 0, 0);
  KT_EQ(d->nplacements, 2);
  KT_EQ(d->placements[0].mesh, 0);
  KT_EQ(d->placements[0].first_instance, 1);
  KT_EQ(d->placements[1].first_instance, 3);
  KT_EQ(d->ninstances, 5);
  KT_EQ(d->instances[3].object_id, 2);
  const float *x = kiln__placement_xform(d, &d->placements[1]);
  ST_NEAR(x[0], 2, 0);
  ST_NEAR(x[11], 5, 0);
  KT_EQ(d->spheres[0].instance_id, 5);
  kiln_scene_destroy(s);
  st_tmp_cleanup();
}
