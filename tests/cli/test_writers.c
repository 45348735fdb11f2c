/* test_writers.c: `kiln render --writer coco|bop` and `kiln merge` of COCO files end to end, on a
 * tiny scene with categories (two balls and a block; a floor without one) rendered by the built
 * kiln on whatever Vulkan driver is installed (lavapipe in CI).
 *
 * COCO: every field the format requires; each annotation's RLE decoded (pycocotools' rleFrString,
 * in dataset/dataset_test_util.h) equals the instance pass's pixels of its instance (the npy file
 * of the same run), with its area and bbox; every visible instance with a category annotated, the floor not.
 * Merge: the files of two shards, merged in either order, are byte for byte one unsharded run's;
 * categories that differ are refused. BOP: the layout's files, the JSON keys and fields, the poses
 * (cam_R_w2c from the camera's public matrix, cam_R_m2c / cam_t_m2c that composed with the
 * object's transform), mask_visib equal to the instance pass, depth in millimetres. */
// kt: timeout 300
#define _GNU_SOURCE
#include <dirent.h>
#include <spng.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli_test_util.h"
#include "dataset/dataset_test_util.h"
#include "kiln/render.h"
#include "kt.h"

enum { W = 16, H = 16 };

/* Box "c" is moved by its transform (a translation), so its object space is not the world's. */
static const char *scene_json =
    "{\"settings\": {\"width\": 16, \"height\": 16, \"spp\": 1},\n"
    " \"camera\": {\"position\": [0, 1, -4], \"look_at\": [0, 0.5, 0], \"vfov\": 40},\n"
    " \"categories\": [\"ball\", \"block\"],\n"
    " \"environment\": {\"type\": \"constant\", \"color\": [1, 1, 1]},\n"
    " \"objects\": [\n"
    "  {\"type\": \"sphere\", \"name\": \"a\", \"center\": [-0.6, 0.5, 0], \"radius\": 0.5,\n"
    "   \"material\": {\"type\": \"diffuse\"}, \"category\": \"ball\"},\n"
    "  {\"type\": \"sphere\", \"name\": \"b\", \"center\": [0.5, 0.4, -0.6], \"radius\": 0.4,\n"
    "   \"material\": {\"type\": \"diffuse\"}, \"category\": \"ball\"},\n"
    "  {\"type\": \"box\", \"name\": \"c\", \"min\": [-0.6, -0.6, -0.25], \"max\": [0.6, 0.6, 0.25],\n"
    "   \"transform\": {\"translate\": [0.3, 0.6, 0.75]},\n"
    "   \"material\": {\"type\": \"diffuse\"}, \"category\": \"block\"},\n"
    "  {\"type\": \"quad\", \"name\": \"floor\", \"corner\": [-5, 0, -5], \"u\": [0, 0, 10],\n"
    "   \"v\": [10, 0, 0], \"material\": {\"type\": \"diffuse\"}}]}\n";

/* Three frames around the scene (an orbit), or the scene's camera alone (fixed). */
static char *setup(bool fixed) {
  char *dir = tmpdir();
  write_text(fmt("%s/scene.json", dir), scene_json);
  write_text(fmt("%s/job.json", dir),
             fixed ? "{\"scene\": \"scene.json\", \"animation\": {\"frames\": {\"start\": 0, \"end\": 0}}}"
                   : "{\"scene\": \"scene.json\", \"animation\": {\"frames\": {\"start\": 0, "
                     "\"end\": 2}, \"camera\": {\"orbit\": {\"center\": [0, 0.5, 0], "
                     "\"start_angle\": 250, \"degrees\": 20}}}}");
  return dir;
}

/* kiln ARGS in dir: its exit status (stdout and stderr into dir/.out, dir/.err). */
static int kiln(const char *dir, const char *args) {
  int st = system(fmt("cd %s && %s %s >.out 2>.err", dir, KILN_CLI_PATH, args));
  if (st == -1 || !WIFEXITED(st)) KT_FAIL("kiln %s did not exit", args);
  return WEXITSTATUS(st);
}

static char *err_of(const char *dir) {
  size_t n;
  char *t = (char *)read_all(fmt("%s/.err", dir), &n);
  return t ? t : "";
}

/* An NPY file of uint32 (h, w), as kiln writes the instance pass. */
static const uint32_t *read_ids(const char *path) {
  size_t n = 0;
  unsigned char *b = read_all(path, &n);
  if (!b || n < 10 || memcmp(b, "\x93NUMPY", 6) != 0) KT_FAIL("%s is not NPY", path);
  size_t hl = (size_t)b[8] | (size_t)b[9] << 8;
  KT_TRUE(strstr((char *)b + 10, "'descr': '<u4'") != NULL);
  KT_TRUE(strstr((char *)b + 10, fmt("'shape': (%d, %d)", H, W)) != NULL);
  KT_EQ(n, 10 + hl + (size_t)W * H * 4);
  return (const uint32_t *)(b + 10 + hl);
}

/* ---- COCO --------------------------------------------------------------------------------- */

/* Checks every annotation of image im against the instance pass ids; returns how many. */
static int check_image(const cJSON *anns, double image_id, const uint32_t *ids) {
  int n = 0;
  bool annotated[8] = {false};
  const cJSON *a;
  cJSON_ArrayForEach(a, anns) {
    if (num(a, "image_id") != image_id) continue;
    n++;
    uint32_t inst = (uint32_t)num(a, "instance_id");
    KT_TRUE(inst >= 1 && inst <= 3); /* the floor (instance 4) has no category */
    annotated[inst] = true;
    KT_EQ(num(a, "category_id"), inst == 3 ? 2 : 1);
    KT_EQ(num(a, "iscrowd"), 0);
    KT_TRUE(num(a, "id") >= 1);
    const cJSON *seg = item(a, "segmentation"), *size = item(seg, "size");
    KT_EQ(at(size, 0), H);
    KT_EQ(at(size, 1), W);
    uint8_t mask[W * H];
    rle_mask(item(seg, "counts")->valuestring, W, H, mask);
    int px = 0, x0 = W, y0 = H, x1 = 0, y1 = 0;
    for (int p = 0; p < W * H; p++) {
      int x = p / H, y = p % H; /* column-major */
      bool in = ids[y * W + x] == inst;
      if (in != (bool)mask[p])
        KT_FAIL("image %.0f instance %u: pixel (%d, %d) differs", image_id, inst, x, y);
      if (!in) continue;
      px++;
      x0 = x < x0 ? x : x0, y0 = y < y0 ? y : y0;
      x1 = x + 1 > x1 ? x + 1 : x1, y1 = y + 1 > y1 ? y + 1 : y1;
    }
    KT_TRUE(px > 0);
    KT_EQ(num(a, "area"), px);
    const cJSON *bb = item(a, "bbox");
    KT_EQ(at(bb, 0), x0);
    KT_EQ(at(bb, 1), y0);
    KT_EQ(at(bb, 2), x1 - x0);
    KT_EQ(at(bb, 3), y1 - y0);
  }
  /* every visible instance with a category is annotated */
  for (int i = 0; i < W * H; i++)
    if (ids[i] >= 1 && ids[i] <= 3 && !annotated[ids[i]])
      KT_FAIL("image %.0f: instance %u is visible but not annotated", image_id, ids[i]);
  return n;
}

TEST(writer_coco_matches_instance_pass) {
  char *dir = setup(false);
  KT_EQ(kiln(dir, "render job.json -o out --writer coco --passes instance --format npy --quiet"), 0);
  cJSON *doc = load_json(fmt("%s/out/coco.json", dir));
  KT_TRUE(cJSON_IsObject(item(doc, "info")));
  const cJSON *images = item(doc, "images"), *anns = item(doc, "annotations"),
              *cats = item(doc, "categories"), *im;
  KT_EQ(cJSON_GetArraySize(cats), 2);
  KT_EQ(num(cJSON_GetArrayItem(cats, 0), "id"), 1);
  KT_STR_EQ(item(cJSON_GetArrayItem(cats, 0), "name")->valuestring, "ball");
  KT_TRUE(cJSON_IsString(item(cJSON_GetArrayItem(cats, 0), "supercategory")));
  KT_STR_EQ(item(cJSON_GetArrayItem(cats, 1), "name")->valuestring, "block");
  KT_EQ(cJSON_GetArraySize(images), 3);
  int total = 0;
  double want_id = 0;
  cJSON_ArrayForEach(im, images) {
    KT_EQ(num(im, "id"), ++want_id); /* the job index + 1 */
    KT_EQ(num(im, "width"), W);
    KT_EQ(num(im, "height"), H);
    const char *file = item(im, "file_name")->valuestring;
    KT_STR_EQ(file, fmt("%05.0f_color.npy", want_id - 1));
    KT_EQ(access(fmt("%s/out/%s", dir, file), F_OK), 0);
    const uint32_t *ids = read_ids(fmt("%s/out/%05.0f_instance.npy", dir, want_id - 1));
    total += check_image(anns, want_id, ids);
  }
  KT_EQ(cJSON_GetArraySize(anns), total);
  KT_TRUE(total >= 6);
  double id = 0;
  const cJSON *a;
  cJSON_ArrayForEach(a, anns) KT_EQ(num(a, "id"), ++id); /* 1..N */
  cJSON_Delete(doc);
}

TEST(writer_coco_shards_merge_to_one_run) {
  char *dir = setup(false);
  KT_EQ(kiln(dir, "render job.json -o one --writer coco --quiet"), 0);
  KT_EQ(kiln(dir, "render job.json -o sh --writer coco --shard 0/2 --quiet"), 0);
  KT_EQ(kiln(dir, "render job.json -o sh --writer coco --shard 1/2 --quiet"), 0);
  KT_TRUE(access(fmt("%s/sh/coco.json", dir), F_OK) != 0);
  KT_EQ(kiln(dir, "merge -o m10.json sh/coco_1.json sh/coco_0.json"), 0);
  KT_EQ(kiln(dir, "merge -o m01.json sh/coco_0.json sh/coco_1.json --quiet"), 0);
  KT_TRUE(same_file(fmt("%s/m10.json", dir), fmt("%s/one/coco.json", dir)));
  KT_TRUE(same_file(fmt("%s/m01.json", dir), fmt("%s/one/coco.json", dir)));
  /* a shard twice folds: the same bytes */
  KT_EQ(kiln(dir, "merge -o m2.json sh/coco_0.json sh/coco_1.json sh/coco_0.json --quiet"), 0);
  KT_TRUE(same_file(fmt("%s/m2.json", dir), fmt("%s/one/coco.json", dir)));
  /* categories that differ: refused, naming both files, nothing written */
  size_t n;
  char *t = (char *)read_all(fmt("%s/sh/coco_1.json", dir), &n);
  char *b = strstr(t, "\"name\":\"block\"");
  KT_TRUE(b != NULL);
  memcpy(b + 8, "brick", 5);
  write_text(fmt("%s/sh/other.json", dir), t);
  KT_EQ(kiln(dir, "merge -o bad.json sh/coco_0.json sh/other.json"), 2);
  KT_STR_CONTAINS(err_of(dir), "sh/coco_0.json");
  KT_STR_CONTAINS(err_of(dir), "sh/other.json");
  KT_TRUE(access(fmt("%s/bad.json", dir), F_OK) != 0);
}

TEST(writer_refuses_claim) {
  char *dir = setup(true);
  KT_EQ(kiln(dir, "render job.json -o out --writer coco --claim"), 2);
  KT_STR_CONTAINS(err_of(dir), "not claiming");
  KT_EQ(kiln(dir, "render job.json -o out --writer yolo"), 2);
}

/* ---- BOP ---------------------------------------------------------------------------------- */

TEST(writer_bop_scene) {
  char *dir = setup(true);
  KT_EQ(kiln(dir, "render job.json -o out --writer bop --passes instance,depth --format exr --quiet"), 0);
  char *sc = fmt("%s/out/bop/000000", dir);
  cJSON *cam = load_json(fmt("%s/scene_camera.json", sc)), *gt = load_json(fmt("%s/scene_gt.json", sc)),
        *info = load_json(fmt("%s/scene_gt_info.json", sc));
  const cJSON *c0 = item(cam, "0"), *g0 = item(gt, "0"), *i0 = item(info, "0");
  KT_TRUE(!cam->child->next); /* one image, key "0" */
  /* the camera: K of the public intrinsics, w2c the inverse of the public camera-to-world */
  kiln_camera kc = {0};
  const float pos[3] = {0, 1, -4}, look[3] = {0, 0.5f, 0}, up[3] = {0, 1, 0};
  memcpy(kc.position, pos, sizeof pos), memcpy(kc.look_at, look, sizeof look);
  memcpy(kc.up, up, sizeof up);
  kc.vfov_deg = 40;
  double K[9], c2w[16];
  KT_EQ(kiln_camera_intrinsics(&kc, W, H, K), 0);
  KT_EQ(kiln_camera_to_world(&kc, KILN_CAMERA_CV, c2w), 0);
  for (int i = 0; i < 9; i++) KT_TRUE(fabs(at(item(c0, "cam_K"), i) - K[i]) < 1e-6);
  double Rw[9], tw[3];
  for (int r = 0; r < 3; r++) {
    tw[r] = at(item(c0, "cam_t_w2c"), r);
    for (int c = 0; c < 3; c++) {
      Rw[3 * r + c] = at(item(c0, "cam_R_w2c"), 3 * r + c);
      KT_TRUE(fabs(Rw[3 * r + c] - c2w[4 * c + r]) < 1e-6); /* R_w2c = R_c2w^T */
    }
    double t = 0; /* t_w2c = -R^T c, in mm */
    for (int k = 0; k < 3; k++) t -= c2w[4 * k + r] * c2w[4 * k + 3];
    KT_TRUE(fabs(tw[r] - 1000 * t) < 1e-3);
  }
  KT_EQ(num(c0, "depth_scale"), 1);
  /* every instance in view, in instance order; obj_id = the object's id */
  KT_EQ(cJSON_GetArraySize(g0), 4);
  KT_EQ(cJSON_GetArraySize(i0), 4);
  const double translate[4][3] = {{0, 0, 0}, {0, 0, 0}, {0.3, 0.6, 0.75}, {0, 0, 0}};
  uint16_t *depth = png_read(fmt("%s/depth/000000.png", sc), W, H, 16, 1);
  uint32_t pass[W * H] = {0}; /* the instance pass as the masks give it */
  for (int k = 0; k < 4; k++) {
    const cJSON *g = cJSON_GetArrayItem(g0, k), *in = cJSON_GetArrayItem(i0, k);
    KT_EQ(num(g, "obj_id"), k + 1);
    /* m2c = w2c . xform, xform the object's translation (identity rotation) */
    for (int r = 0; r < 3; r++) {
      for (int c = 0; c < 3; c++)
        KT_TRUE(fabs(at(item(g, "cam_R_m2c"), 3 * r + c) - Rw[3 * r + c]) < 1e-6);
      double t = tw[r];
      for (int c = 0; c < 3; c++) t += 1000 * Rw[3 * r + c] * translate[k][c];
      KT_TRUE(fabs(at(item(g, "cam_t_m2c"), r) - t) < 1e-2);
    }
    double all = num(in, "px_count_all"), visib = num(in, "px_count_visib");
    KT_TRUE(all > 0 && visib <= all && num(in, "px_count_valid") <= all);
    KT_TRUE(fabs(num(in, "visib_fract") - visib / all) < 1e-9);
    KT_EQ(cJSON_GetArraySize(item(in, "bbox_obj")), 4);
    KT_EQ(cJSON_GetArraySize(item(in, "bbox_visib")), 4);
    const uint8_t *mv = png_read(fmt("%s/mask_visib/000000_%06d.png", sc, k), W, H, 8, 1);
    const uint8_t *ma = png_read(fmt("%s/mask/000000_%06d.png", sc, k), W, H, 8, 1);
    int nv = 0, na = 0;
    for (int i = 0; i < W * H; i++) {
      KT_TRUE(mv[i] == 0 || mv[i] == 255);
      KT_TRUE(ma[i] == 0 || ma[i] == 255);
      if (mv[i]) {
        nv++;
        KT_TRUE(ma[i] != 0); /* visible pixels are in the unoccluded silhouette */
        KT_EQ(pass[i], 0);   /* and no two instances share one */
        pass[i] = (uint32_t)k + 1;
      }
      na += ma[i] != 0;
    }
    KT_EQ(nv, visib);
    KT_EQ(na, all);
  }
  /* the visible masks partition what the depth sees (writer_bop_links_png_and_matches_pass
   * compares them with the instance pass itself) */
  for (int i = 0; i < W * H; i++) KT_EQ(depth[i] != 0, pass[i] != 0);
  /* rgb: encoded here (the colour is EXR) as 8-bit RGB */
  png_read(fmt("%s/rgb/000000.png", sc), W, H, 8, 3);
  cJSON_Delete(cam);
  cJSON_Delete(gt);
  cJSON_Delete(info);
}

TEST(writer_bop_links_png_and_matches_pass) {
  char *dir = setup(true);
  KT_EQ(kiln(dir, "render job.json -o out --writer bop --passes instance --quiet"), 0);
  char *sc = fmt("%s/out/bop/000000", dir);
  struct stat a, b;
  KT_EQ(stat(fmt("%s/out/00000_color.png", dir), &a), 0);
  KT_EQ(stat(fmt("%s/rgb/000000.png", sc), &b), 0);
  KT_EQ(a.st_ino, b.st_ino); /* a hard link of the colour file */
  const uint16_t *ids = png_read(fmt("%s/out/00000_instance.png", dir), W, H, 16, 1);
  for (int k = 0; k < 4; k++) {
    const uint8_t *mv = png_read(fmt("%s/mask_visib/000000_%06d.png", sc, k), W, H, 8, 1);
    for (int i = 0; i < W * H; i++) KT_EQ(mv[i] != 0, ids[i] == k + 1);
  }
}

TEST(merge_coco_bad_and_empty_inputs) {
  char *dir = tmpdir();
  /* no images at all: the layout with empty arrays */
  write_text(fmt("%s/empty.json", dir), "{\"images\": [], \"annotations\": [], \"categories\": []}");
  KT_EQ(kiln(dir, "merge -o m.json empty.json --quiet"), 0);
  size_t n;
  KT_STR_EQ((char *)read_all(fmt("%s/m.json", dir), &n),
            "{\"info\":{},\"licenses\":[],\"images\":[\n],\"annotations\":[\n],\"categories\":[\n]}\n");
  /* an annotation of no image, two images with one id, not COCO: exit 2, nothing written */
  write_text(fmt("%s/a.json", dir),
             "{\"images\": [], \"annotations\": [{\"id\": 1, \"image_id\": 5}], \"categories\": []}");
  KT_EQ(kiln(dir, "merge -o bad.json a.json"), 2);
  KT_STR_CONTAINS(err_of(dir), "names no image");
  write_text(fmt("%s/b.json", dir),
             "{\"images\": [{\"id\": 2}, {\"id\": 2}], \"annotations\": [], \"categories\": []}");
  KT_EQ(kiln(dir, "merge -o bad.json b.json"), 2);
  KT_STR_CONTAINS(err_of(dir), "two images with one id");
  write_text(fmt("%s/c.json", dir), "{\"images\": 3}");
  KT_EQ(kiln(dir, "merge -o bad.json c.json"), 2);
  KT_STR_CONTAINS(err_of(dir), "not a COCO file");
  KT_TRUE(access(fmt("%s/bad.json", dir), F_OK) != 0);
}

/* cam_t_m2c of object obj in image im of BOP scene folder sc (mm). */
static void t_m2c(const char *sc, const char *im, int obj, double t[3]) {
  cJSON *gt = load_json(fmt("%s/scene_gt.json", sc));
  const cJSON *e, *found = NULL;
  cJSON_ArrayForEach(e, item(gt, im)) if (num(e, "obj_id") == obj) found = e;
  if (!found) KT_FAIL("no obj_id %d in image %s", obj, im);
  for (int r = 0; r < 3; r++) t[r] = at(item(found, "cam_t_m2c"), r);
  cJSON_Delete(gt);
}

TEST(writer_bop_frames_with_overrides) {
  /* a frame that moves the block is annotated in its own scene, in the process or in a worker */
  char *dir = setup(true);
  write_text(fmt("%s/list.json", dir),
             "{\"scene\": \"scene.json\", \"images\": [{\"name\": \"a\"}, {\"name\": \"b\", "
             "\"objects\": {\"c\": {\"transform\": {\"translate\": [0.3, 0.9, 0.75]}}}}]}");
  KT_EQ(kiln(dir, "render list.json -o in --writer bop --quiet"), 0);
  KT_EQ(kiln(dir, "render list.json -o iso --writer bop --isolate --quiet"), 0);
  char *sc = fmt("%s/in/bop/000000", dir);
  KT_TRUE(same_file(fmt("%s/scene_gt.json", sc), fmt("%s/iso/bop/000000/scene_gt.json", dir)));
  cJSON *cam = load_json(fmt("%s/scene_camera.json", sc));
  double R[9], a[3], b[3];
  for (int i = 0; i < 9; i++) R[i] = at(item(item(cam, "0"), "cam_R_w2c"), i);
  cJSON_Delete(cam);
  t_m2c(sc, "0", 3, a);
  t_m2c(sc, "1", 3, b);
  for (int r = 0; r < 3; r++) /* moved 0.3 m up: R (0, 300, 0) mm */
    KT_TRUE(fabs(b[r] - a[r] - 300 * R[3 * r + 1]) < 1e-3);
  t_m2c(sc, "0", 1, a);
  t_m2c(sc, "1", 1, b);
  for (int r = 0; r < 3; r++) KT_TRUE(fabs(b[r] - a[r]) < 1e-9); /* the balls stay */
}
