/* fuzz_exr.c: OpenEXR environment maps through kiln__texture_load_ex (engine/scene/texture.c,
 * decoded by tinyexr after kiln's own checks of the header and the offset table), the function
 * the scene loader calls for every map it names (fz_texture, fuzz_util.c). */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_texture("fuzz.exr", FZ_TEX_HDR, false, data, size);
  return 0;
}
