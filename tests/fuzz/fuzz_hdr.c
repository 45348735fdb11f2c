/* fuzz_hdr.c: Radiance .hdr environment maps through kiln__texture_load_ex (engine/scene/texture.c), the
 * function the scene loader calls for every image it names (fz_texture, fuzz_util.c). */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_texture("fuzz.hdr", FZ_TEX_HDR, false, data, size);
  return 0;
}
