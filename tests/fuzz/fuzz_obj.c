/* fuzz_obj.c: Wavefront OBJ meshes and their MTL files through kiln__obj_load (engine/scene/obj.c).
 * The input is an OBJ, optionally followed by the line "#%mtl" and an MTL: the OBJ part is
 * written as fuzz.obj and the MTL part as fuzz.mtl beside it (the seeds say `mtllib fuzz.mtl`). */
#include <string.h>

#include "fuzz.h"
#include "scene_internal.h"

static const char sep[] = "\n#%mtl\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t obj_len = size;
  for (size_t i = 0; i + sizeof sep - 1 <= size; i++)
    if (memcmp(data + i, sep, sizeof sep - 1) == 0) {
      obj_len = i + 1; /* keep the OBJ's last newline */
      break;
    }
  size_t mtl_at = obj_len < size ? obj_len + sizeof sep - 2 : size;
  fz_write("fuzz.mtl", data + mtl_at, size - mtl_at);
  const char *path = fz_write("fuzz.obj", data, obj_len);
  kiln__mesh m;
  kiln__mesh_error err;
  int rc = kiln__obj_load(path, &m, &err);
  if (rc == 0) kiln__mesh_free(&m);
  fz_report("obj", rc, err.message);
  return 0;
}
