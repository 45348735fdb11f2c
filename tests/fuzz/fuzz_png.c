/* fuzz_png.c: PNG albedo textures through kiln__texture_load_ex (engine/scene/texture.c), the
 * function the scene loader calls for every image it names (fz_texture, fuzz_util.c). */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_texture("fuzz.png", FZ_TEX_SRGB, false, data, size);
  fz_texture("fuzz.png", FZ_TEX_LINEAR, true, data, size); /* with its alpha plane (or tRNS) */
  return 0;
}
