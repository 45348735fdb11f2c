/* test_docs.c: every ```json block of docs/SCENE.md is a complete scene that loads, next to the
 * files the examples name (written here into a temporary folder). */
#include <math.h>
#include <sys/stat.h>

#include "st_images.h"

static void write_assets(const char *dir) {
  char glb_path[1200];
  size_t glb_len;
  snprintf(glb_path, sizeof glb_path, "%s/data/gltf/scene.glb", st_src_dir());
  char *glb = st_read_file(glb_path, &glb_len);
  st_write(dir, "chair.glb", glb, glb_len);
  free(glb);
  st_write_png(dir, "wood.png");
  st_write_hdr(dir, "sky.hdr");
  st_write(dir, "chair.mtl",
           "newmtl seat\nKd 0.5 0.4 0.3\nmap_Kd wood.png\nnewmtl legs\nKd 0.2 0.2 0.2\n",
           (size_t)-1);
  st_write(
      dir, "chair.obj",
      "mtllib chair.mtl\no seat\nv 0 0.5 0\nv 1 0.5 0\nv 1 0.5 1\nv 0 0.5 1\nvt 0 0\nvt 1 0\nvt 1 1\n"
      "vt 0 1\nusemtl seat\nf 1/1 2/2 3/3 4/4\no leg\nv 0 0 0\nv 0.1 0 0\nusemtl legs\nf 1 5 6\n",
      (size_t)-1);
  st_write(
      dir, "bunny.ply",
      "ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\n"
      "element face 2\nproperty list uchar int vertex_indices\nend_header\n"
      "0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 1 2\n3 0 2 3\n",
      (size_t)-1);
}

TEST(every_example_loads) {
  char path[1200];
  snprintf(path, sizeof path, "%s/../../docs/SCENE.md", st_src_dir());
  char *md = st_read_file(path, NULL);
  const char *dir = st_tmpdir();
  write_assets(dir);
  int n = 0, line = 1;
  for (char *p = md; *p;) {
    char *open = strstr(p, "\n```json\n");
    if (!open) break;
    for (char *q = p; q < open; q++) line += *q == '\n';
    char *body = open + 9, *close = strstr(body, "\n```");
    if (!close) KT_FAIL("SCENE.md: unterminated block at line %d", line);
    *close = '\0';
    kiln_error_detail e;
    kiln_scene *s = NULL;
    char name[64];
    snprintf(name, sizeof name, "SCENE.md block at line %d", line + 1);
    int rc = kiln_scene_load_string(body, dir, name, &e, &s);
    char buf[2048];
    if (rc) KT_FAIL("%s: %s", kiln_err_name(rc), kiln_error_detail_format(&e, buf, sizeof buf));
    kiln_scene_destroy(s);
    n++;
    for (char *q = open; q < close; q++) line += *q == '\n';
    p = close + 1;
  }
  KT_EQ(n, 21); /* the number of ```json blocks in SCENE.md: update with it */
  free(md);
  st_tmp_cleanup();
}

/* Spot checks of what the documented examples mean. */
TEST(documented_meanings) {
  const char *dir = st_tmpdir();
  write_assets(dir);
  kiln_scene *s = st_load_ok(
      "{\"camera\": {\"position\": [0, 1, -4], \"look_at\": [0, 1, 0]},\n"
      " \"materials\": {\"seat\": {\"type\": \"diffuse\", \"albedo\": [0.6, 0.3, 0.1]}},\n"
      " \"objects\": [{\"type\": \"mesh\", \"name\": \"chair\", \"file\": \"chair.obj\"}]}",
      dir);
  const kiln__scene *d = st_data(s);
  /* 'seat' in materials wins over the MTL's; 'legs' comes from the MTL */
  KT_EQ(d->ntris, 3);
  KT_EQ(d->nobjects, 2);
  KT_STR_EQ(kiln_scene_object_name(s, 1), "chair.seat");
  KT_STR_EQ(kiln_scene_object_name(s, 2), "chair.leg");
  ST_NEAR(d->materials[d->tri_material[0]].albedo[0], 0.6, 1e-7);
  const kiln__material *legs = &d->materials[d->tri_material[2]];
  ST_NEAR(legs->albedo[0], 0.2, 1e-7);
  KT_EQ(legs->texture, -1);
  KT_TRUE(d->uv != NULL);
  ST_NEAR(d->uv[4], 1, 0); /* the seat's third corner: vt 1 1 */
  kiln_scene_destroy(s);
  /* the MTL's map_Kd is loaded relative to the MTL, which mtllib names relative to the OBJ */
  char sub[600];
  snprintf(sub, sizeof sub, "%s/sub", dir);
  KT_TRUE(mkdir(sub, 0700) == 0);
  st_write_png(sub, "bark.png");
  st_write(sub, "tree.mtl", "newmtl bark\nmap_Kd bark.png\n", (size_t)-1);
  st_write(dir, "tree.obj",
           "mtllib sub/tree.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nusemtl bark\nf 1 2 3\n", (size_t)-1);
  s = st_load_ok("{\"camera\": {\"position\": [0, 1, -4], \"look_at\": [0, 1, 0]},\n"
                 " \"objects\": [{\"type\": \"mesh\", \"file\": \"tree.obj\"}]}",
                 dir);
  KT_EQ(st_data(s)->ntextures, 1);
  kiln_scene_destroy(s);
  s = st_load_ok("{\"camera\": {\"position\": [0, 1, -4], \"look_at\": [0, 1, 0]},\n"
                 " \"objects\": [{\"type\": \"mesh\", \"file\": \"chair.obj\"}]}",
                 dir);
  d = st_data(s);
  KT_EQ(d->ntextures, 1);
  KT_EQ(d->materials[d->tri_material[0]].texture, 0);
  KT_EQ(d->materials[d->tri_material[0]].type, KILN__MAT_DIFFUSE);
  kiln_scene_destroy(s);
  st_tmp_cleanup();
}
