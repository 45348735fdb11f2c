/* texture.c: images for scenes, through stb_image (compiled here, and only here).
 *
 * Albedo textures (PNG, JPEG, anything stb_image reads as 8-bit) are decoded to RGB and converted
 * from sRGB to linear with the exact piecewise curve (IEC 61966-2-1); environment maps (.hdr,
 * Radiance RGBE) are linear already and kept as floats. Rows are kept in file order, row 0 at the
 * top (v = 1), as scene_data.h says. stb_image's failure reason is thread-local in this version
 * (STBI_THREAD_LOCAL), so loads may run on any number of threads; no global stb setting is
 * touched. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/error.h"
#include "scene_internal.h"

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_NO_STDIO /* files are read by kiln__read_file: one error path for I/O */
#define STBI_FAILURE_USERMSG
#if defined(__GNUC__)
/* stays off for the whole file: stb declares static functions it never defines, which is
 * reported at the end of the translation unit */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#endif
#include <stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

static float srgb_to_linear(unsigned char c) {
  float x = c / 255.0f;
  return x <= 0.04045f ? x / 12.92f : powf((x + 0.055f) / 1.055f, 2.4f);
}

int kiln__texture_load(const char *path, bool is_hdr, kiln__texture *t, char *msg, size_t msgsz) {
  memset(t, 0, sizeof *t);
  char *buf;
  size_t len;
  int rc = kiln__read_file(path, &buf, &len, msg, msgsz);
  if (rc) return rc;
  if (len > 0x7fffffff) {
    free(buf);
    snprintf(msg, msgsz, "image file too large");
    return KILN_EPARSE;
  }
  int w = 0, h = 0, comp = 0;
  const stbi_uc *bytes = (const stbi_uc *)buf;
  if (is_hdr && !stbi_is_hdr_from_memory(bytes, (int)len)) {
    free(buf);
    snprintf(msg, msgsz, "not a Radiance .hdr image");
    return KILN_EPARSE;
  }
  float *f = NULL;
  stbi_uc *c = NULL;
  if (is_hdr) f = stbi_loadf_from_memory(bytes, (int)len, &w, &h, &comp, 3);
  else c = stbi_load_from_memory(bytes, (int)len, &w, &h, &comp, 3);
  free(buf);
  if (!f && !c) {
    const char *why = stbi_failure_reason();
    snprintf(msg, msgsz, "cannot decode image: %s", why ? why : "unknown format");
    return strstr(why ? why : "", "memory") ? KILN_ENOMEM : KILN_EPARSE;
  }
  size_t n = (size_t)w * (size_t)h * 3;
  if (c) {
    f = malloc(n * sizeof(float));
    if (!f) {
      stbi_image_free(c);
      return KILN_ENOMEM;
    }
    float lut[256];
    for (int i = 0; i < 256; i++) lut[i] = srgb_to_linear((unsigned char)i);
    for (size_t i = 0; i < n; i++) f[i] = lut[c[i]];
    stbi_image_free(c);
  } else {
    /* kept as stb returned it: STBI_MALLOC is not overridden here, so stb allocated it with
     * malloc and kiln__scene_free's free() matches */
    for (size_t i = 0; i < n; i++)
      if (!isfinite(f[i]) || f[i] < 0) {
        stbi_image_free(f);
        snprintf(msg, msgsz, "pixel %zu is not a finite non-negative value", i / 3);
        return KILN_EPARSE;
      }
  }
  t->width = w, t->height = h, t->rgb = f;
  return 0;
}
