/* plights.c: the punctual entries of a JSON scene's `lights` (docs/SCENE.md, "Lights"): point,
 * spot and sun lamps, in Blender's units (a point or spot lamp's power in watts, a sun's
 * irradiance in W/m^2), into kiln__plight (radiant intensity, irradiance) through the builder.
 * They are not objects: nothing sees them (no pixels in the id passes), so they take no object or
 * instance id, and `category` is refused. A transform moves the position and turns the direction
 * (its 3x3, then normalised); radius and power are not scaled. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "scene_internal.h"

static const double PI_D = 3.14159265358979323846;

/* The light's direction of travel (unit, in x's frame) from "direction", or for a spot from
 * "look_at" (the point it aims at) instead. */
static int parse_direction(kiln__sj_ctx *c, const cJSON *o, bool allow_look_at, const float pos[3],
                           const kiln__xform *x, float dir[3]) {
  const bool has_dir = cJSON_GetObjectItemCaseSensitive(o, "direction") != NULL;
  const bool has_at = allow_look_at && cJSON_GetObjectItemCaseSensitive(o, "look_at");
  float d[3];
  int rc;
  if (has_dir && has_at)
    return kiln__sj_fail_at(c, "look_at", "give direction or look_at, not both");
  if (has_at) {
    float at[3];
    if ((rc = kiln__sj_vec3(c, o, "look_at", NULL, -1e30, 1e30, at))) return rc;
    for (int i = 0; i < 3; i++) d[i] = at[i] - pos[i];
    if (!(kiln__len3(d) > 1e-12))
      return kiln__sj_fail_at(c, "look_at", "look_at equals position: no direction");
  } else {
    if (!has_dir && allow_look_at)
      return kiln__sj_fail(c, "missing required key 'direction' (or 'look_at')");
    if ((rc = kiln__sj_vec3(c, o, "direction", NULL, -1e30, 1e30, d))) return rc;
    if (!(kiln__len3(d) > 1e-12))
      return kiln__sj_fail_at(c, "direction", "direction has zero length");
  }
  double w[3], l = 0;
  for (int i = 0; i < 3; i++) {
    w[i] = x->m[i][0] * d[0] + x->m[i][1] * d[1] + x->m[i][2] * d[2];
    l += w[i] * w[i];
  }
  l = sqrt(l);
  if (!(l > 0) || !isfinite(l))
    return kiln__sj_fail(c, "the transformed direction is zero or not finite");
  for (int i = 0; i < 3; i++) dir[i] = (float)(w[i] / l);
  return 0;
}

/* color x strength into out (what the renderer reads), refusing a light that sends nothing. */
static int emission(kiln__sj_ctx *c, const cJSON *o, const char *key, double scale, float out[3]) {
  static const float white[3] = {1, 1, 1};
  float col[3];
  double v;
  int rc;
  if ((rc = kiln__sj_vec3(c, o, "color", white, 0, 1e9, col)) ||
      (rc = kiln__sj_num(c, o, key, true, 0, 0, 1e12, &v)))
    return rc;
  if (col[0] + col[1] + col[2] <= 0)
    return kiln__sj_fail_at(c, "color", "color is black: the light emits nothing");
  if (v <= 0) return kiln__sj_fail_at(c, key, "%s must be > 0: the light emits nothing", key);
  for (int i = 0; i < 3; i++) out[i] = (float)(col[i] * v * scale);
  return 0;
}

/* The cones of a spot (degrees, half-angles from its axis as glTF's innerConeAngle and
 * outerConeAngle) as cosines. */
static int parse_cones(kiln__sj_ctx *c, const cJSON *o, kiln__plight *l) {
  double in, out;
  int rc;
  if ((rc = kiln__sj_num(c, o, "outer_cone", false, 45, 0, 90, &out)) ||
      (rc = kiln__sj_num(c, o, "inner_cone", false, 0, 0, 90, &in)))
    return rc;
  if (out <= 0) return kiln__sj_fail_at(c, "outer_cone", "outer_cone must be > 0 degrees");
  if (in > out)
    return kiln__sj_fail_at(c, "inner_cone", "inner_cone (%g) must not exceed outer_cone (%g)", in,
                            out);
  l->cos_inner = (float)cos(in * PI_D / 180), l->cos_outer = (float)cos(out * PI_D / 180);
  return 0;
}

static const char *const k_point[] = {"type",  "name",   "position",  "power",
                                      "color", "radius", "transform", NULL};
static const char *const k_spot[] = {"type",       "name",       "position",  "direction",
                                     "look_at",    "power",      "color",     "radius",
                                     "inner_cone", "outer_cone", "transform", NULL};
static const char *const k_sun[] = {"type",  "name",  "direction", "irradiance",
                                    "color", "angle", "transform", NULL};
static const char *const *const keys[] = {k_point, k_spot, k_sun};

const char *const *kiln__plight_keys(const char *type) {
  static const char *const names[] = {"point", "spot", "sun"};
  for (int i = 0; i < 3; i++)
    if (type && strcmp(type, names[i]) == 0) return keys[i];
  return NULL;
}

int kiln__sj_parse_plight(kiln__sj_ctx *c, const cJSON *o, kiln__light_type type) {
  kiln__plight l = {.type = type};
  const char *name;
  int rc;
  if ((rc = kiln__sj_check_keys(c, o, keys[type])) ||
      (cJSON_GetObjectItemCaseSensitive(o, "name") &&
       (rc = kiln__sj_string(c, o, "name", NULL, &name))))
    return rc;
  kiln__xform x;
  if ((rc = kiln__sj_member_xform(c, o, &x))) return rc;
  if (type == KILN__LIGHT_SUN) {
    double angle;
    if ((rc = parse_direction(c, o, false, NULL, &x, l.direction)) ||
        (rc = emission(c, o, "irradiance", 1, l.color)) ||
        (rc = kiln__sj_num(c, o, "angle", false, 0, 0, 180, &angle)))
      return rc;
    l.radius = (float)(angle * PI_D / 360); /* the disc's angular radius */
  } else {
    float pos[3];
    double r;
    /* Blender's watts: radiant intensity power / 4 pi, in every direction (a spot's cone masks
     * a point lamp of that power) */
    if ((rc = kiln__sj_vec3(c, o, "position", NULL, -1e30, 1e30, pos)) ||
        (type == KILN__LIGHT_SPOT && (rc = parse_direction(c, o, true, pos, &x, l.direction))) ||
        (type == KILN__LIGHT_SPOT && (rc = parse_cones(c, o, &l))) ||
        (rc = emission(c, o, "power", 1 / (4 * PI_D), l.color)) ||
        (rc = kiln__sj_num(c, o, "radius", false, 0, 0, 1e30, &r)))
      return rc;
    kiln__xform_point(&x, pos, l.position);
    if (!isfinite(l.position[0]) || !isfinite(l.position[1]) || !isfinite(l.position[2]))
      return kiln__sj_fail(c, "the transformed position is not finite: the values are too large");
    l.radius = (float)r;
  }
  if (kiln__sb_plight(&c->ld->b, &l)) return kiln__sj_nomem(c);
  return 0;
}
