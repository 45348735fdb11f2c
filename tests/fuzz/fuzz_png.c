/* fuzz_png.c: PNG albedo textures through kiln__texture_load (engine/scene/texture.c), the
 * function the scene loader calls for every image it names (fz_texture, fuzz_util.c). */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_texture("fuzz.png", false, data, size);
  return 0;
}
