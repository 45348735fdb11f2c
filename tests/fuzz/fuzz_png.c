/* fuzz_png.c: PNG albedo textures through kiln__texture_load (engine/scene/texture.c), the
 * function the scene loader calls for every image it names; the input is written as fuzz.png. */
#include <stdbool.h>
#include <stdlib.h>

#include "fuzz.h"
#include "scene_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fz_write("fuzz.png", data, size);
  kiln__texture t;
  char msg[512];
  int rc = kiln__texture_load(path, false, &t, msg, sizeof msg);
  if (rc == 0) free(t.rgb);
  fz_report("png", rc, msg);
  return 0;
}
