/* fuzz_png.c: PNG albedo textures through kiln__texture_load (engine/scene/texture.c), the
 * function the scene loader calls for every image it names; the input is written as fuzz.png. */
#include <float.h>
#include <stdbool.h>
#include <stdlib.h>

#include "fuzz.h"
#include "scene_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fz_write("fuzz.png", data, size);
  kiln__texture t;
  char msg[512];
  int rc = kiln__texture_load(path, false, &t, msg, sizeof msg);
  /* scene_data.h: a texture has width * height * 3 floats, linear, finite and non-negative */
  if (rc == 0 && (t.width < 1 || t.height < 1 || !t.rgb))
    fz_fail("a texture of %d x %d texels (rgb %p) loaded without error", (int)t.width,
            (int)t.height, (void *)t.rgb);
  for (size_t i = 0; rc == 0 && i < (size_t)t.width * (size_t)t.height * 3; i++)
    if (!(t.rgb[i] >= 0 && t.rgb[i] <= FLT_MAX)) fz_fail("texel value %g at %zu", t.rgb[i], i / 3);
  if (rc == 0) free(t.rgb);
  fz_report("png", rc, msg);
  return 0;
}
