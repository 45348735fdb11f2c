/* test_cornell.c: examples/cornell/scene.json loads as the anchor describes it. */
#include <math.h>

#include "scene_test_util.h"

static kiln_scene *load_cornell(void) {
  char path[1200];
  snprintf(path, sizeof path, "%s/../../examples/cornell/scene.json", st_src_dir());
  kiln_error_detail e;
  kiln_scene *s = NULL;
  int rc = kiln_scene_load(path, &e, &s);
  char buf[2048];
  if (rc) KT_FAIL("%s: %s", kiln_err_name(rc), kiln_error_detail_format(&e, buf, sizeof buf));
  return s;
}

/* Counts: 36 triangles from the OBJ + 2 of the light; 7 OBJ objects + the light; 4 materials. */
TEST(cornell_counts) {
  kiln_scene *s = load_cornell();
  kiln_scene_info in;
  kiln_scene_get_info(s, &in);
  KT_EQ(in.ntriangles, 38);
  KT_EQ(in.nspheres, 0);
  KT_EQ(in.nobjects, 8);
  KT_EQ(in.nmaterials, 4);
  KT_EQ(in.nlight_triangles, 2);
  KT_EQ(in.width, 256);
  KT_EQ(in.height, 256);
  KT_EQ(in.spp, 16);
  KT_EQ(in.max_bounces, 4);
  KT_EQ(in.seed, 0);
  const char *names[] = {
      "floor",       "ceiling",    "back_wall", "left_wall_red", "right_wall_green",
      "short_block", "tall_block", "light"};
  for (uint32_t i = 0; i < 8; i++) KT_STR_EQ(kiln_scene_object_name(s, i + 1), names[i]);
  KT_TRUE(kiln_scene_object_name(s, 0) == NULL);
  KT_TRUE(kiln_scene_object_name(s, 9) == NULL);
  kiln_scene_destroy(s);
}

/* Materials: the anchor's albedos by object; the light's radiance; emission faces -y. */
TEST(cornell_materials_and_light) {
  kiln_scene *s = load_cornell();
  const kiln__scene *d = st_data(s);
  const float white[3] = {0.725f, 0.71f, 0.68f}, red[3] = {0.63f, 0.065f, 0.05f},
              green[3] = {0.14f, 0.45f, 0.091f};
  size_t lights = 0;
  for (size_t t = 0; t < d->ntris; t++) {
    const kiln__material *m = &d->materials[d->tri_material[t]];
    uint32_t o = d->tri_object[t];
    KT_TRUE(o >= 1 && o <= 8);
    KT_TRUE(d->tri_instance[t] >= 1);
    const float *want = o == 4 ? red : o == 5 ? green : white;
    if (o == 8) {
      KT_EQ(m->type, KILN__MAT_EMISSIVE);
      ST_NEAR(m->emission[0], 17, 0);
      ST_NEAR(m->emission[1], 12, 0);
      ST_NEAR(m->emission[2], 4, 0);
      const float *p = d->pos + 9 * t;
      float e1[3] = {p[3] - p[0], p[4] - p[1], p[5] - p[2]},
            e2[3] = {p[6] - p[0], p[7] - p[1], p[8] - p[2]};
      float ny = e1[2] * e2[0] - e1[0] * e2[2];
      KT_TRUE(ny < 0); /* front face (emitting side) towards -y */
      for (int k = 0; k < 3; k++) ST_NEAR(p[3 * k + 1], 0.5488, 1e-6);
      lights++;
      continue;
    }
    KT_EQ(m->type, KILN__MAT_DIFFUSE);
    for (int i = 0; i < 3; i++) ST_NEAR(m->albedo[i], want[i], 0);
  }
  KT_EQ(lights, 2);
  /* light area: 0.13 x 0.105 */
  double area = 0;
  for (size_t t = 0; t < d->ntris; t++) {
    if (d->tri_object[t] != 8) continue;
    const float *p = d->pos + 9 * t;
    double e1[3] = {p[3] - p[0], p[4] - p[1], p[5] - p[2]},
           e2[3] = {p[6] - p[0], p[7] - p[1], p[8] - p[2]};
    double c[3] = {e1[1] * e2[2] - e1[2] * e2[1], e1[2] * e2[0] - e1[0] * e2[2],
                   e1[0] * e2[1] - e1[1] * e2[0]};
    area += 0.5 * sqrt(c[0] * c[0] + c[1] * c[1] + c[2] * c[2]);
  }
  ST_NEAR(area, 0.01365, 1e-7);
  kiln_scene_destroy(s);
}

/* Camera and environment as the anchor; +x is on the image left: right = cross(forward, up) = -x. */
TEST(cornell_camera) {
  kiln_scene *s = load_cornell();
  const kiln__scene *d = st_data(s);
  const kiln__camera *c = &d->camera;
  KT_EQ(c->type, KILN__CAM_PINHOLE);
  ST_NEAR(c->position[0], 0.278, 1e-7);
  ST_NEAR(c->position[1], 0.273, 1e-7);
  ST_NEAR(c->position[2], -0.8, 1e-7);
  ST_NEAR(c->look_at[2], 0.2796, 1e-7);
  ST_NEAR(c->up[1], 1, 0);
  ST_NEAR(c->vfov_deg, 39.30764811610662, 1e-5);
  float f[3] = {c->look_at[0] - c->position[0], c->look_at[1] - c->position[1],
                c->look_at[2] - c->position[2]};
  float right_x = f[1] * c->up[2] - f[2] * c->up[1];
  KT_TRUE(right_x < 0);
  KT_EQ(d->env.type, KILN__ENV_CONSTANT);
  ST_NEAR(d->env.color[0] + d->env.color[1] + d->env.color[2], 0, 0);
  KT_EQ(d->env.texture, -1);
  KT_EQ(d->settings.tonemap, KILN__TONEMAP_NONE);
  ST_NEAR(d->settings.exposure, 0, 0);
  kiln_scene_destroy(s);
}
