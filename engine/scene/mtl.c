/* mtl.c: an MTL material that uses more than Kd, Ke and map_Kd, as a PRINCIPLED material.
 *
 * The mapping is Blender 3.4's OBJ importer's (its Principled BSDF inputs, checked with
 * `blender -b`; docs/SCENE.md, Meshes, has the table): illum 2 turns the highlight on, 3 to 9
 * the reflection; Blender's Specular input is the mean of Ks (without Ks: 1 with illum 2, else 0),
 * which kiln turns into the ior giving the same F0 = 0.08 specular; roughness is Pr, else
 * 1 - sqrt(Ns / 1000) (Ns clamped to [0, 1000]), else 0 with illum 2 and 1 without; metallic is
 * Pm, else with illum 3 to 9 the mean of Ka (1 without Ka), else 0. A roughness, metallic or
 * emission map replaces its constant (Blender links the image to the input); map_Kd multiplies
 * Kd as it does for kiln's diffuse MTL materials (the MTL specification's rule). kiln packs map_Pr
 * (or map_Ns) and map_Pm into one texture in glTF's layout (G roughness, B metallic), sampled at
 * the roughness map's texels. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "scene_internal.h"

/* Blender's colour-to-float conversion (luminance with Rec. 709 weights, its default). */
static float grey(const float *rgb) {
  return 0.2126f * rgb[0] + 0.7152f * rgb[1] + 0.0722f * rgb[2];
}

static int load_linear(kiln__sj_ctx *c, const char *path, kiln__texture *t) {
  char msg[300];
  int rc = kiln__sj_texture_file(c, path, KILN__TEX_LINEAR, t, NULL, msg, sizeof msg);
  return rc ? kiln__sj_file_fail(c, rc, path, 0, msg) : 0;
}

/* One texture, G the roughness map's grey value and B the metallic map's (either may be absent:
 * 1 there), on the roughness map's grid (else the metallic map's), the other sampled nearest. */
static int pack_mr(kiln__sj_ctx *c, const char *rough, const char *metal, int32_t *out) {
  kiln__texture r = {0}, m = {0};
  int rc = 0;
  if (rough) rc = load_linear(c, rough, &r);
  if (!rc && metal) rc = load_linear(c, metal, &m);
  const kiln__texture *g = rough ? &r : &m;
  kiln__texture p = {.width = g->width, .height = g->height};
  size_t n = (size_t)p.width * (size_t)p.height;
  if (!rc && !(p.rgb = malloc(n * 3 * sizeof(float)))) rc = kiln__sj_nomem(c);
  for (size_t i = 0; !rc && i < n; i++) {
    size_t x = i % (size_t)p.width, y = i / (size_t)p.width;
    p.rgb[3 * i] = 0;
    p.rgb[3 * i + 1] = rough ? grey(r.rgb + 3 * i) : 1;
    if (metal) { /* nearest texel centre of the metallic map */
      size_t mx = (2 * x + 1) * (size_t)m.width / (2 * (size_t)p.width);
      size_t my = (2 * y + 1) * (size_t)m.height / (2 * (size_t)p.height);
      p.rgb[3 * i + 2] = grey(m.rgb + 3 * (my * (size_t)m.width + mx));
    } else {
      p.rgb[3 * i + 2] = 1;
    }
  }
  kiln__texture_release(&r), kiln__texture_release(&m);
  uint32_t idx;
  if (!rc && kiln__sb_texture(&c->ld->b, &p, &idx)) rc = kiln__sj_nomem(c);
  free(p.rgb); /* NULL once the builder took it */
  if (!rc) *out = (int32_t)idx;
  return rc;
}

static float mean3(const float *v) { return (v[0] + v[1] + v[2]) / 3; }

/* Blender's Specular, Metallic and Alpha inputs for d (before its maps). */
static void constants(const kiln__mtl *d, float *spec, float *metal, float *alpha) {
  const bool highlight = d->illum == 2, reflection = d->illum >= 3 && d->illum <= 9;
  *spec = d->ks[0] >= 0 ? mean3(d->ks) : highlight ? 1.0f : 0.0f;
  *metal = d->pm >= 0 ? d->pm : reflection ? (d->ka[0] >= 0 ? mean3(d->ka) : 1) : 0;
  *alpha = d->d >= 0 ? d->d : 1;
}

/* Roughness alone changes nothing without a specular or metallic lobe: such a material (e.g. the
 * Cornell box's: Ks 0, Ns 0, d 1, illum 1) stays Lambertian, its images as they were, unless its
 * map_Kd has -o / -s. */
bool kiln__mtl_is_principled(const kiln__mtl *d) {
  static const float id[6] = {1, 0, 0, 0, 1, 0};
  float spec, metal, alpha;
  constants(d, &spec, &metal, &alpha);
  for (int k = 0; k < KILN__MTL_NMAPS; k++) /* only principled materials have a uv transform */
    if (d->maps[k].path && (k != KILN__MTL_MAP_KD || memcmp(d->maps[k].uv_xform, id, sizeof id)))
      return true;
  return spec > 0 || metal > 0 || alpha < 1;
}

int kiln__sj_mtl_principled(kiln__sj_ctx *c, const kiln__mtl *d, kiln__material *mt) {
  const kiln__mtl_map *maps = d->maps;
  float spec;
  constants(d, &spec, &mt->metallic, &mt->alpha);
  mt->type = KILN__MAT_PRINCIPLED;
  mt->texture = mt->mr_texture = mt->normal_texture = mt->emission_texture = mt->alpha_texture = -1;
  const float f0 = sqrtf(fminf(0.08f * spec, 0.99f));
  mt->ior = (1 + f0) / (1 - f0);
  mt->roughness = d->pr >= 0      ? d->pr
                  : d->ns >= 0    ? 1 - sqrtf(fminf(d->ns, 1000) / 1000)
                  : d->illum == 2 ? 0.0f
                                  : 1.0f;
  /* kiln has no blending: partial coverage is a cut-out at 0.5 (a warning said so) */
  mt->alpha_cutoff = mt->alpha < 1 || maps[KILN__MTL_MAP_D].path ? 0.5f : 0;
  mt->normal_scale = 1;
  const float id[6] = {1, 0, 0, 0, 1, 0};
  memcpy(mt->uv_xform, id, sizeof id);
  for (int k = KILN__MTL_NMAPS - 1; k >= 0; k--) /* the first map's transform (obj.c warned) */
    if (maps[k].path) memcpy(mt->uv_xform, maps[k].uv_xform, sizeof id);
  int rc = 0;
  if (maps[KILN__MTL_MAP_KD].path && !d->kd_given) /* Blender's export of a textured colour */
    mt->albedo[0] = mt->albedo[1] = mt->albedo[2] = 1;
  if (maps[KILN__MTL_MAP_KD].path)
    rc =
        kiln__sj_texture_ex(c, "", maps[KILN__MTL_MAP_KD].path, KILN__TEX_SRGB_FILTERED, NULL,
                            &mt->texture);
  if (!rc && maps[KILN__MTL_MAP_KE].path) {
    mt->emission[0] = mt->emission[1] = mt->emission[2] = 1;
    rc = kiln__sj_texture_ex(c, "", maps[KILN__MTL_MAP_KE].path, KILN__TEX_SRGB_FILTERED, NULL,
                             &mt->emission_texture);
  }
  if (!rc && maps[KILN__MTL_MAP_BUMP].path) {
    mt->normal_scale = maps[KILN__MTL_MAP_BUMP].bm;
    rc = kiln__sj_texture_ex(c, "", maps[KILN__MTL_MAP_BUMP].path, KILN__TEX_LINEAR, NULL,
                             &mt->normal_texture);
  }
  if (!rc && maps[KILN__MTL_MAP_D].path) { /* the alpha channel, else the image's R */
    int32_t rgb, a;
    rc = kiln__sj_texture_ex(c, "", maps[KILN__MTL_MAP_D].path, KILN__TEX_LINEAR, &a, &rgb);
    mt->alpha_texture = a >= 0 ? a : rgb;
  }
  const char *rough =
      maps[KILN__MTL_MAP_PR].path ? maps[KILN__MTL_MAP_PR].path : maps[KILN__MTL_MAP_NS].path;
  const char *metal = maps[KILN__MTL_MAP_PM].path;
  if (!rc && (rough || metal)) {
    if (rough) mt->roughness = 1;
    if (metal) mt->metallic = 1;
    rc = pack_mr(c, rough, metal, &mt->mr_texture);
  }
  return rc;
}
