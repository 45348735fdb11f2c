/* fuzz_jpeg.c: JPEG albedo textures through kiln__texture_load_ex (engine/scene/texture.c), the
 * function the scene loader calls for every image it names (fz_texture, fuzz_util.c). */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_texture("fuzz.jpg", FZ_TEX_SRGB, false, data, size);
  fz_texture("fuzz.jpg", FZ_TEX_LINEAR, true, data, size); /* JPEG has no alpha: none comes back */
  return 0;
}
