/* fuzz_ply.c: PLY meshes (ASCII and binary) through kiln__ply_load (engine/scene/ply.c). */
#include "fuzz.h"
#include "scene_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fz_write("fuzz.ply", data, size);
  kiln__mesh m;
  kiln__mesh_error err;
  int rc = kiln__ply_load(path, &m, &err);
  if (rc == 0) kiln__mesh_free(&m);
  fz_report("ply", rc, err.message);
  return 0;
}
