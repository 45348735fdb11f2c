/* fuzz_scene.c: the scene JSON reader (docs/SCENE.md) through kiln_scene_load_string, with the
 * files a scene may name (meshes, textures, maps) read from tests/fuzz/assets/. */
#include <stdlib.h>

#include "fuzz.h"
#include "kiln/scene.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = fz_cstr(data, size);
  kiln_error_detail err;
  kiln_scene *scene = NULL;
  char msg[2048] = "";
  int rc = kiln_scene_load_string(text, fz_assets_dir(), "fuzz.json", &err, &scene);
  if (rc == 0) {
    kiln_scene_info info;
    kiln_scene_get_info(scene, &info);
    for (size_t i = 1; i <= info.nobjects; i++) (void)kiln_scene_object_name(scene, (uint32_t)i);
    kiln_scene_destroy(scene);
  } else {
    (void)kiln_error_detail_format(&err, msg, sizeof msg);
  }
  fz_report("scene", rc, msg);
  free(text);
  return 0;
}
