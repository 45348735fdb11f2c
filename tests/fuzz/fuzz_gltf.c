/* fuzz_gltf.c: glTF 2.0 (.gltf JSON or .glb, told apart by the first bytes) through kiln__gltf_add
 * (engine/scene/gltf.cpp), which reads the file with tinygltf and checks every accessor, buffer
 * view, index and node reference itself; with its lights and camera, as when a .gltf is the whole
 * scene. The input is written as fuzz.gltf; external buffers and images it names are looked up
 * beside it (the temporary folder, where nothing else is). A success must leave a scene whose
 * triangles all have finite positions. */
#include <math.h>
#include <string.h>

#include "fuzz.h"
#include "scene_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fz_write("fuzz.gltf", data, size);
  kiln__scene_builder b = {.next_instance = 1};
  kiln__xform x;
  kiln__xform_identity(&x);
  kiln__gltf_opts o = {.xs = &x, .nx = 1, .lights = true, .camera = true};
  kiln__gltf_error err;
  uint32_t first, n;
  int rc = kiln__gltf_add(&b, path, &o, &first, &n, &err);
  if (rc == 0) {
    for (size_t i = 0; i < 9 * b.s.ntris; i++)
      if (!isfinite(b.s.pos[i])) fz_fail("gltf: a non-finite position was accepted");
    if (n && first + n - 1 > b.s.nobjects) fz_fail("gltf: object ids past the scene's objects");
  }
  kiln__sb_finish(&b);
  kiln__scene_free(&b.s);
  fz_report("gltf", rc, err.message);
  return 0;
}
