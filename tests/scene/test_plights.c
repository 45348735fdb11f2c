/* test_plights.c: the punctual entries of `lights` (point, spot, sun; docs/SCENE.md, "Punctual
 * lights"): what each key becomes in the scene (Blender's watts to radiant intensity, cones to
 * cosines, a sun's angle to its angular radius), transforms, and each mistake's located error. */
#include <math.h>

#include "scene_test_util.h"

static const double PI = 3.14159265358979323846;

#define CAM "\"camera\": {\"position\": [0, 0, -1], \"look_at\": [0, 0, 0]},\n"

static const kiln__plight *only_light(const kiln_scene *s) {
  const kiln__scene *d = st_data(s);
  KT_EQ(d->nplights, 1);
  return &d->plights[0];
}

TEST(point_in_blender_watts) {
  kiln_scene *s = st_load_ok("{" CAM "\"lights\": [{\"type\": \"point\", \"name\": \"bulb\", "
                             "\"position\": [1, 2, 3], \"power\": 100, \"color\": [1, 0.5, 0]}]}",
                             NULL);
  const kiln__plight *l = only_light(s);
  KT_EQ(l->type, KILN__LIGHT_POINT);
  ST_NEAR(l->position[0], 1, 0);
  ST_NEAR(l->position[1], 2, 0);
  ST_NEAR(l->position[2], 3, 0);
  /* 100 W: 100 / (4 pi) W/sr, times the colour */
  ST_NEAR(l->color[0], 100 / (4 * PI), 1e-5);
  ST_NEAR(l->color[1], 50 / (4 * PI), 1e-5);
  ST_NEAR(l->color[2], 0, 0);
  ST_NEAR(l->radius, 0, 0);
  /* not an object: no id, nothing in the id passes */
  KT_EQ(st_data(s)->nobjects, 0);
  KT_EQ(l->object_id, 0);
  kiln_scene_destroy(s);
}

TEST(spot_cones_and_look_at) {
  kiln_scene *s = st_load_ok(
      "{" CAM "\"lights\": [{\"type\": \"spot\", \"position\": [0, 2, 0], \"look_at\": [0, 0, 0], "
      "\"power\": 40, \"inner_cone\": 20, \"outer_cone\": 30, \"radius\": 0.1}]}",
      NULL);
  const kiln__plight *l = only_light(s);
  KT_EQ(l->type, KILN__LIGHT_SPOT);
  ST_NEAR(l->direction[0], 0, 0);
  ST_NEAR(l->direction[1], -1, 1e-7);
  ST_NEAR(l->direction[2], 0, 0);
  ST_NEAR(l->cos_inner, cos(20 * PI / 180), 1e-7);
  ST_NEAR(l->cos_outer, cos(30 * PI / 180), 1e-7);
  ST_NEAR(l->color[0], 40 / (4 * PI), 1e-6);
  ST_NEAR(l->radius, 0.1, 1e-7);
  kiln_scene_destroy(s);
  /* glTF's defaults: 0 and 45 degrees; a direction of any length is made unit */
  s = st_load_ok("{" CAM "\"lights\": [{\"type\": \"spot\", \"position\": [0, 0, 0], "
                 "\"direction\": [3, 0, 4], \"power\": 1}]}",
                 NULL);
  l = only_light(s);
  ST_NEAR(l->cos_inner, 1, 0);
  ST_NEAR(l->cos_outer, cos(PI / 4), 1e-7);
  ST_NEAR(l->direction[0], 0.6, 1e-7);
  ST_NEAR(l->direction[2], 0.8, 1e-7);
  kiln_scene_destroy(s);
}

TEST(sun_irradiance_and_angle) {
  kiln_scene *s = st_load_ok("{" CAM "\"lights\": [{\"type\": \"sun\", \"direction\": [0, -2, 0], "
                             "\"irradiance\": 3, \"angle\": 10, \"color\": [1, 1, 0.5]}]}",
                             NULL);
  const kiln__plight *l = only_light(s);
  KT_EQ(l->type, KILN__LIGHT_SUN);
  ST_NEAR(l->direction[1], -1, 0);
  ST_NEAR(l->color[0], 3, 0);
  ST_NEAR(l->color[2], 1.5, 0);
  ST_NEAR(l->radius, 5 * PI / 180, 1e-7); /* the disc's angular radius: half the diameter */
  kiln_scene_destroy(s);
}

/* A transform moves the position (a point) and turns the direction (a vector, made unit again);
 * it scales neither the radius nor the power. */
TEST(transform_moves_and_turns) {
  kiln_scene *s = st_load_ok(
      "{" CAM
      "\"lights\": [{\"type\": \"spot\", \"position\": [1, 0, 0], \"direction\": [1, 0, 0], "
      "\"power\": 8, \"radius\": 0.5, \"transform\": {\"rotate\": [0, 0, 90], \"scale\": 2, "
      "\"translate\": [0, 0, 5]}}]}",
      NULL);
  const kiln__plight *l = only_light(s);
  ST_NEAR(l->position[0], 0, 1e-6);
  ST_NEAR(l->position[1], 2, 1e-6);
  ST_NEAR(l->position[2], 5, 1e-6);
  ST_NEAR(l->direction[0], 0, 1e-6);
  ST_NEAR(l->direction[1], 1, 1e-6);
  ST_NEAR(l->radius, 0.5, 0);
  ST_NEAR(l->color[0], 8 / (4 * PI), 1e-6);
  kiln_scene_destroy(s);
}

/* Punctual lights beside quads: the quads stay objects in order, the punctual ones are kept in
 * the order written. */
TEST(beside_quads) {
  kiln_scene *s = st_load_ok(
      "{" CAM "\"lights\": [{\"type\": \"sun\", \"direction\": [0, -1, 0], \"irradiance\": 1},\n"
      "{\"type\": \"quad\", \"name\": \"panel\", \"corner\": [0, 1, 0], \"u\": [0, 0, 1], "
      "\"v\": [1, 0, 0], \"radiance\": [1, 1, 1]},\n"
      "{\"type\": \"point\", \"position\": [0, 1, 0], \"power\": 1}]}",
      NULL);
  const kiln__scene *d = st_data(s);
  KT_EQ(d->nplights, 2);
  KT_EQ(d->plights[0].type, KILN__LIGHT_SUN);
  KT_EQ(d->plights[1].type, KILN__LIGHT_POINT);
  KT_EQ(d->nobjects, 1);
  KT_STR_EQ(kiln_scene_object_name(s, 1), "panel");
  KT_EQ(d->ntris, 2);
  kiln_scene_destroy(s);
}

typedef struct ecase {
  const char *json;
  const char *path;     /* expected err.path */
  const char *marker;   /* expected line:column = first occurrence of this in json */
  const char *fragment; /* in err.message */
} ecase;

#define L(body) "{\n" CAM "\"lights\": [\n " body "]}"

static const ecase cases[] = {
    {L("{\"type\": \"pont\", \"position\": [0, 0, 0], \"power\": 1}"), "lights[0].type", "\"pont\"",
     "did you mean 'point'"},
    {L("{\"type\": \"point\", \"position\": [0, 0, 0], \"powr\": 1}"), "lights[0].powr", "\"powr\"",
     "did you mean 'power'"},
    {L("{\"type\": \"point\", \"position\": [0, 0, 0]}"), "lights[0]", "{\"type\": \"point\"",
     "missing required key 'power'"},
    {L("{\"type\": \"point\", \"power\": 1}"), "lights[0]", "{\"type\": \"point\"",
     "missing required key 'position'"},
    {L("{\"type\": \"point\", \"position\": [0, 0, 0], \"power\": 0}"), "lights[0].power", "0}",
     "power must be > 0"},
    {L("{\"type\": \"point\", \"position\": [0, 0, 0], \"power\": -5}"), "lights[0].power", "-5",
     "in [0, "},
    {L("{\"type\": \"point\", \"position\": [0, 0, 0], \"power\": 1, \"color\": [0, 0, 0]}"),
     "lights[0].color", "[0, 0, 0]}]", "color is black"},
    {L("{\"type\": \"point\", \"position\": [0, 0, 0], \"power\": 1, \"radius\": -1}"),
     "lights[0].radius", "-1}", "in [0, "},
    {L("{\"type\": \"point\", \"position\": [0, 0, 0], \"power\": 1, \"direction\": [0, 1, 0]}"),
     "lights[0].direction", "\"direction\"", "unknown key 'direction'"},
    {L("{\"type\": \"spot\", \"position\": [0, 0, 0], \"power\": 1}"), "lights[0]",
     "{\"type\": \"spot\"", "missing required key 'direction' (or 'look_at')"},
    {L("{\"type\": \"spot\", \"position\": [0, 0, 0], \"power\": 1, \"direction\": [0, 0, 0]}"),
     "lights[0].direction", "[0, 0, 0]}]", "direction has zero length"},
    {L("{\"type\": \"spot\", \"position\": [1, 1, 1], \"power\": 1, \"look_at\": [1, 1, 1]}"),
     "lights[0].look_at", "[1, 1, 1]}", "look_at equals position"},
    {L("{\"type\": \"spot\", \"position\": [0, 0, 0], \"power\": 1, \"direction\": [0, 1, 0],"
       " \"look_at\": [0, 1, 0]}"),
     "lights[0].look_at", "[0, 1, 0]}", "not both"},
    {L("{\"type\": \"spot\", \"position\": [0, 0, 0], \"power\": 1, \"direction\": [0, 1, 0],"
       " \"inner_cone\": 40, \"outer_cone\": 30}"),
     "lights[0].inner_cone", "40", "must not exceed outer_cone"},
    {L("{\"type\": \"spot\", \"position\": [0, 0, 0], \"power\": 1, \"direction\": [0, 1, 0],"
       " \"outer_cone\": 100}"),
     "lights[0].outer_cone", "100", "in [0, 90]"},
    {L("{\"type\": \"spot\", \"position\": [0, 0, 0], \"power\": 1, \"direction\": [0, 1, 0],"
       " \"outer_cone\": 0}"),
     "lights[0].outer_cone", "0}", "outer_cone must be > 0"},
    {L("{\"type\": \"spot\", \"position\": [0, 0, 0], \"power\": 1, \"direction\": [0, 1, 0],"
       " \"outer_cone\": 30, \"inner_cone\": 10, \"innercone\": 10}"),
     "lights[0].innercone", "\"innercone\"", "did you mean 'inner_cone'"},
    {L("{\"type\": \"sun\", \"irradiance\": 1}"), "lights[0]", "{\"type\": \"sun\"",
     "missing required key 'direction'"},
    {L("{\"type\": \"sun\", \"direction\": [0, -1, 0], \"irradiance\": 1, \"look_at\": [0, 0, 0]}"),
     "lights[0].look_at", "\"look_at\": [0, 0, 0]}]", "unknown key 'look_at'"},
    {L("{\"type\": \"sun\", \"direction\": [0, -1, 0], \"power\": 1}"), "lights[0].power",
     "\"power\"", "unknown key 'power'"},
    {L("{\"type\": \"sun\", \"direction\": [0, -1, 0], \"irradiance\": 1, \"angle\": 200}"),
     "lights[0].angle", "200", "in [0, 180]"},
    {L("{\"type\": \"sun\", \"direction\": [0, -1, 0], \"irradiance\": 1, \"category\": \"x\"}"),
     "lights[0].category", "\"category\"", "unknown key 'category'"},
    {L("{\"type\": \"point\", \"position\": [0, 0, 0], \"power\": 1}, {\"type\": \"sun\", "
       "\"direction\": [0, -1, 0], \"irradiance\": 1, \"transform\": {\"scale\": 0}}"),
     "lights[1].transform.scale", "0}}", "scale must not be zero"},
};

/* Each case fails with KILN_EPARSE, at its path and marker, saying what it should. */
TEST(errors_are_located) {
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    st_expect_located(i, cases[i].json, cases[i].path, cases[i].marker, cases[i].fragment);
}
