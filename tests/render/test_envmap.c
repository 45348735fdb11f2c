/* test_envmap.c: equirectangular environment maps against Blender: the orientation and the
 * rotation's sense checked against Cycles' renders of the same scene (numbers committed by
 * tools/validation/env_orientation/cycles_env.py, which says how they were made), the .hdr
 * half step against Blender's own decoding of two texels, and .exr maps rendering exactly as
 * the same values in .hdr. On lavapipe under the validation layer. */
// kt: timeout 300
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <unistd.h>

#include "render_test_util.h"

#include "kt_exr_write.h"

#define VAL_DIR "tools/validation/env_orientation/"

static cJSON *cycles_numbers(void) {
  char *p = repo_path(VAL_DIR "cycles.json"), *text = slurp_text(p);
  cJSON *j = cJSON_Parse(text);
  KT_TRUE(j != NULL);
  free(text), free(p);
  return j;
}

/* The committed scene with "rotation": rot, loaded with its folder as the base. */
static kiln_scene *load_val_scene(int rot, int spp) {
  char *p = repo_path(VAL_DIR "scene.json"), *text = slurp_text(p);
  cJSON *j = cJSON_Parse(text);
  KT_TRUE(j != NULL);
  cJSON *env = cJSON_GetObjectItem(j, "environment"), *set = cJSON_GetObjectItem(j, "settings");
  cJSON_ReplaceItemInObject(env, "rotation", cJSON_CreateNumber(rot));
  cJSON_ReplaceItemInObject(set, "spp", cJSON_CreateNumber(spp));
  char *json = cJSON_PrintUnformatted(j);
  char *dir = repo_path(VAL_DIR);
  kiln_error_detail err;
  kiln_scene *s = NULL;
  if (kiln_scene_load_string(json, dir, "scene.json", &err, &s)) {
    char b[1024];
    KT_FAIL("load: %s", kiln_error_detail_format(&err, b, sizeof b));
  }
  cJSON_Delete(j), free(json), free(text), free(p), free(dir);
  return s;
}

static ctx open_scene(kiln_scene *scene) {
  ctx c = {0};
  c.gpu = tg_gpu();
  c.dev = tg_device(c.gpu, NULL);
  c.scene = scene;
  KT_CODE(kiln_renderer_create(scene, &c.dev, 1, NULL, &c.r), KILN_OK);
  return c;
}

/* Quadrant q (0 tl, 1 tr, 2 bl, 3 br; rows from the top) mean of channel k. */
static double quadrant(const kiln_image *img, int q, int k) {
  kiln_image_info in = info_of(img);
  int w = in.width, h = in.height;
  double s = 0;
  for (int y = (q / 2) * h / 2; y < (q / 2 + 1) * h / 2; y++)
    for (int x = (q % 2) * w / 2; x < (q % 2 + 1) * w / 2; x++)
      s += in.color[3 * ((size_t)y * (size_t)w + (size_t)x) + (size_t)k];
  return s / ((w / 2) * (h / 2));
}

/* A diffuse sphere on a diffuse floor under a map with one sun, seen from above (the scene of
 * cycles_env.py): each quadrant of kiln's image is within 3% of Cycles' in every channel, for
 * the map as it is and turned by 90 degrees. The quadrants differ 7-fold between the sunny and
 * the shadowed one, so a map turned by half a revolution, mirrored, or rotated the other way
 * (as it was before kiln followed Blender) fails by far. */
TEST(cycles_orientation) {
  cJSON *j = cycles_numbers();
  static const char *const names[4] = {"tl", "tr", "bl", "br"};
  cJSON *r;
  int checked = 0;
  cJSON_ArrayForEach(r, cJSON_GetObjectItem(j, "renders")) {
    int rot = cJSON_GetObjectItem(r, "rotation")->valueint;
    cJSON *qs = cJSON_GetObjectItem(r, "quadrants");
    ctx c = open_scene(load_val_scene(rot, 32));
    kiln_frame_config fc;
    kiln_frame_config_default(c.r, &fc);
    kiln_future *f;
    const kiln_image *img = render(&c, &fc, &f);
    double lo = 1e30, hi = 0;
    for (int q = 0; q < 4; q++) {
      cJSON *want = cJSON_GetObjectItem(qs, names[q]);
      for (int k = 0; k < 3; k++) {
        double got = quadrant(img, q, k), w = cJSON_GetArrayItem(want, k)->valuedouble;
        fprintf(stderr, "rotation %d, quadrant %s, channel %d: kiln %.4f, Cycles %.4f (%+.2f%%)\n",
                rot, names[q], k, got, w, 100 * (got / w - 1));
        if (fabs(got / w - 1) > 0.03)
          KT_FAIL("rotation %d, quadrant %s, channel %d: kiln %g, Cycles %g", rot, names[q], k,
                  got, w);
        if (k == 0) lo = fmin(lo, w), hi = fmax(hi, w);
      }
    }
    KT_TRUE(hi > 5 * lo); /* the numbers tell the sides apart */
    kiln_future_release(f);
    close_ctx(&c);
    checked++;
  }
  KT_EQ(checked, 2);
  cJSON_Delete(j);
}

/* .hdr texels decode as (m + 0.5) * 2^(e - 136), as Radiance's reader and Blender's do: the two
 * texels cycles_env.py read through bpy.data.images.load (a sky texel of mantissa 245, exponent
 * 123, and a sun texel) come out of kiln's reader as Blender gave them, exactly. */
TEST(hdr_half_step_matches_blender) {
  cJSON *j = cycles_numbers();
  char *p = repo_path(VAL_DIR "sun.hdr");
  kiln__texture t;
  char msg[256];
  KT_CODE(kiln__texture_load(p, true, &t, msg, sizeof msg), KILN_OK);
  cJSON *e;
  int n = 0;
  cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "texels")) {
    int x = cJSON_GetObjectItem(e, "x")->valueint, y = cJSON_GetObjectItem(e, "y")->valueint;
    cJSON *rgbe = cJSON_GetObjectItem(e, "rgbe"), *b = cJSON_GetObjectItem(e, "blender");
    int ex = cJSON_GetArrayItem(rgbe, 3)->valueint;
    for (int k = 0; k < 3; k++) {
      float got = t.rgb[3 * ((size_t)y * (size_t)t.width + (size_t)x) + (size_t)k];
      double want = cJSON_GetArrayItem(b, k)->valuedouble;
      double m = cJSON_GetArrayItem(rgbe, k)->valueint;
      if ((double)got != want) KT_FAIL("texel (%d, %d) channel %d: kiln %.9g, Blender %.9g", x, y, k, got, want);
      KT_TRUE(want == ldexp(m + 0.5, ex - 136)); /* and Blender's is the half step */
      n++;
    }
  }
  KT_EQ(n, 6);
  free(t.rgb), free(p);
  cJSON_Delete(j);
}

/* sun.hdr as Blender saved it in OpenEXR (OpenEXR's own writer: FLOAT ZIP and HALF PIZ) reads
 * back texel for texel as the .hdr does (its values, (m + 0.5) 2^k, are HALF-exact); Blender's
 * DWAA, a compression tinyexr does not read, is refused by name. */
TEST(blender_exr_maps) {
  char *p = repo_path(VAL_DIR "sun.hdr");
  kiln__texture ref, t;
  char msg[256];
  KT_CODE(kiln__texture_load(p, true, &ref, msg, sizeof msg), KILN_OK);
  free(p);
  static const char *const ok[] = {VAL_DIR "sun_zip_float.exr", VAL_DIR "sun_piz_half.exr"};
  for (int i = 0; i < 2; i++) {
    p = repo_path(ok[i]);
    if (kiln__texture_load(p, true, &t, msg, sizeof msg)) KT_FAIL("%s: %s", ok[i], msg);
    KT_EQ(t.width, ref.width);
    KT_EQ(t.height, ref.height);
    for (size_t k = 0; k < (size_t)t.width * (size_t)t.height * 3; k++)
      if (t.rgb[k] != ref.rgb[k])
        KT_FAIL("%s: texel %zu channel %zu: %.9g, the .hdr %.9g", ok[i], k / 3, k % 3, t.rgb[k],
                ref.rgb[k]);
    free(t.rgb), free(p);
  }
  p = repo_path(VAL_DIR "sun_dwaa_half.exr");
  KT_CODE(kiln__texture_load(p, true, &t, msg, sizeof msg), KILN_EPARSE);
  KT_STR_CONTAINS(msg, "the EXR's compression is DWAA");
  free(p), free(ref.rgb);
}

/* The same map as .hdr and as .exr (HALF, tiled, PIZ; the other layouts decode to the same
 * texels, tests/scene/test_exr.c), with texel values that RGBE and HALF both hold exactly
 * ((m + 0.5) 2^k, m < 256): the renders are the same bits. */
TEST(exr_renders_as_hdr) {
  enum { MW = 32, MH = 16 };
  char dir[] = "/tmp/kiln_envexr_XXXXXX";
  KT_TRUE(mkdtemp(dir) != NULL);
  float px[MW * MH * 3];
  for (int i = 0; i < MW * MH * 3; i++) px[i] = ldexpf((float)(128 + (i * 37) % 128) + 0.5f, -8 + i % 5);
  for (int k = 0; k < 3; k++) px[3 * (4 * MW + 20) + k] = ldexpf(200.5f, 3); /* a bright texel */
  /* the .hdr: RGBE of exactly these values (each texel's channels share the exponent of its
   * largest, so the values are rounded into that first) */
  char p[256];
  snprintf(p, sizeof p, "%s/sky.hdr", dir);
  FILE *f = fopen(p, "wb");
  KT_TRUE(f != NULL);
  fprintf(f, "#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y %d +X %d\n", MH, MW);
  for (int i = 0; i < MW * MH; i++) {
    float *v = px + 3 * i, m = fmaxf(v[0], fmaxf(v[1], v[2]));
    int e;
    frexpf(m, &e);
    unsigned char b[4];
    for (int k = 0; k < 3; k++) {
      b[k] = (unsigned char)floorf(ldexpf(v[k], 8 - e));
      v[k] = ldexpf((float)b[k] + 0.5f, e - 8);
    }
    b[3] = (unsigned char)(e + 128);
    fwrite(b, 1, 4, f);
  }
  fclose(f);
  static const char *const bgr[] = {"B", "G", "R"};
  float planar[MW * MH * 3];
  for (int i = 0; i < MW * MH; i++)
    for (int k = 0; k < 3; k++) planar[3 * i + k] = px[3 * i + 2 - k];
  static const struct {
    const char *name;
    kt_exr_opts o;
  } exrs[] = {{"half_piz_tiled.exr", {1, TINYEXR_COMPRESSIONTYPE_PIZ, 8, 0}}};
  for (int i = 0; i < 1; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, exrs[i].name);
    KT_TRUE(kt_exr_write(p, MW, MH, 3, bgr, planar, exrs[i].o, 0) == 0);
  }
  static const char *const files[2] = {"sky.hdr", "half_piz_tiled.exr"};
  float *first = NULL;
  const size_t n = 24 * 24 * 3;
  for (int i = 0; i < 2; i++) {
    char json[1024];
    snprintf(json, sizeof json,
             "{\"camera\": {\"position\": [0, 0, -4], \"look_at\": [0, 0, 0], \"vfov\": 50},\n"
             " \"settings\": {\"width\": 24, \"height\": 24, \"spp\": 4, \"max_bounces\": 2},\n"
             " \"environment\": {\"type\": \"map\", \"file\": \"%s\", \"rotation\": 30},\n"
             " \"objects\": [{\"type\": \"sphere\", \"radius\": 1,\n"
             "   \"material\": {\"type\": \"diffuse\", \"albedo\": [0.5, 0.6, 0.7]}}]}\n",
             files[i]);
    kiln_error_detail err;
    kiln_scene *s = NULL;
    if (kiln_scene_load_string(json, dir, "scene.json", &err, &s)) {
      char b[1024];
      KT_FAIL("%s: %s", files[i], kiln_error_detail_format(&err, b, sizeof b));
    }
    ctx c = open_scene(s);
    kiln_frame_config fc;
    kiln_frame_config_default(c.r, &fc);
    kiln_future *fu;
    const kiln_image *img = render(&c, &fc, &fu);
    if (!first) {
      first = malloc(n * sizeof *first);
      memcpy(first, info_of(img).color, n * sizeof *first);
    } else if (memcmp(first, info_of(img).color, n * sizeof *first) != 0) {
      KT_FAIL("%s renders differently from sky.hdr", files[i]);
    }
    kiln_future_release(fu);
    close_ctx(&c);
  }
  free(first);
  for (int i = 0; i < 2; i++) snprintf(p, sizeof p, "%s/%s", dir, files[i]), remove(p);
  rmdir(dir);
}
