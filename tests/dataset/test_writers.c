/* test_writers.c: the dataset writers (engine/batch/coco.c, bop.c, dataset.c) on hand-built ground
 * truth and instance passes, without a device.
 *
 * COCO: the RLE strings are pycocotools' (vectors worked by hand from its rleToString, and every
 * annotation decoded by a copy of its rleFrString back to exactly the pass's pixels of that
 * instance); area and bbox are those pixels'; ids, sorting and categories as documented; frames
 * added from several threads at once. BOP: every file of the layout, the JSON keys and fields, the
 * pose (cam_R_m2c, cam_t_m2c) mapping object points where the camera sees them, masks equal to the
 * instance pass and the unoccluded silhouette, depth in millimetres, the colour hard-linked. */
#define _GNU_SOURCE
#include <dirent.h>
#include <pthread.h>
#include <spng.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "batch_internal.h"
#include "cli/cli_test_util.h"
#include "dataset_test_util.h"
#include "image_internal.h"
#include "kiln/batch.h"
#include "kt.h"

enum { W = 8, H = 6 };

/* ---- a hand-built scene, frame and ground truth ------------------------------------------------ */

static char *names[] = {"ball", "box", "mug"};
static char *cat_names[] = {"toy", "kitchen"};
static uint32_t cat_ids[] = {1, 5};
static char *obj_cat[] = {"toy", NULL, "kitchen"};
static uint32_t obj_cat_id[] = {1, 0, 5};

/* Three objects, four instances (objects 1, 2, 3, 3); categories unless bare. */
static kiln__scene scene(bool bare) {
  kiln__scene s;
  memset(&s, 0, sizeof s);
  s.nobjects = 3, s.object_names = names;
  if (!bare) {
    s.ncategories = 2, s.category_names = cat_names, s.category_ids = cat_ids;
    s.object_category = obj_cat, s.object_category_id = obj_cat_id;
  }
  return s;
}

/* The instance pass (rows top first), column-major runs chosen to cover the cases: instance 1
 * runs from the bottom of column 2 into the top of column 3 (one run for pycocotools), instance 2
 * has no category, instance 3 holds the last pixel (no background after it), instance 4 is
 * hidden. */
static const uint32_t pass[H][W] = {
    {0, 0, 0, 1, 0, 0, 0, 0}, {0, 0, 0, 1, 0, 2, 2, 0}, {0, 0, 0, 0, 0, 2, 2, 0},
    {0, 0, 0, 0, 0, 0, 0, 0}, {0, 0, 1, 0, 0, 0, 3, 3}, {0, 0, 1, 0, 0, 0, 3, 3}};

static kiln_image *image(void) {
  kiln_image *img = kiln__image_new(W, H);
  KT_TRUE(img);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      size_t i = (size_t)y * W + (size_t)x;
      img->instance_id[i] = pass[y][x];
      img->object_id[i] = pass[y][x] == 4 ? 3 : pass[y][x];
      img->depth[i] = pass[y][x] ? 1.25f + 0.001f * (float)x : 0.0f;
      for (int c = 0; c < 3; c++) img->color[3 * i + (size_t)c] = 0.25f * (float)c;
    }
  img->depth[13] = 70.0f; /* beyond 16 bits of millimetres (a pixel of instance 2) */
  return img;
}

static const uint32_t inst_obj[4] = {1, 2, 3, 3};

/* The ground truth: camera at (1, 2, 3) turned 90 degrees about y, the instances placed apart. */
static kiln__frame_gt ground_truth(bool masks) {
  kiln__frame_gt g;
  memset(&g, 0, sizeof g);
  g.width = W, g.height = H, g.n = 4;
  const double K[9] = {10, 0, 3.5, 0, 10, 2.5, 0, 0, 1};
  memcpy(g.K, K, sizeof K);
  /* OpenCV axes: x right = world -z, y down = world -y, z forward = world -x */
  const double c2w[16] = {0, 0, -1, 1, 0, -1, 0, 2, -1, 0, 0, 3, 0, 0, 0, 1};
  memcpy(g.c2w_cv, c2w, sizeof c2w);
  g.inst = keep(calloc(4, sizeof *g.inst));
  for (uint32_t k = 0; k < 4; k++) {
    kiln__gt_instance *gi = &g.inst[k];
    gi->instance_id = k + 1, gi->object_id = inst_obj[k];
    gi->category_id = obj_cat_id[inst_obj[k] - 1];
    gi->name = names[inst_obj[k] - 1], gi->category = obj_cat[inst_obj[k] - 1];
    const double xf[16] = {0, -2, 0, -1.0 - k, 2, 0, 0, 2.5, 0, 0, 2, 3.25, 0, 0, 0, 1};
    memcpy(gi->xform, xf, sizeof xf);
  }
  /* unoccluded silhouettes over their boxes: 1 more than it shows, 2 as it shows, 3 a 3x3 block
   * of which 4 pixels show, 4 none (out of view) */
  static const struct {
    int32_t box[4];
    const char *m;
  } sil[4] = {{{2, 0, 4, 6}, "010101001111"}, {{5, 1, 7, 3}, "1111"},
              {{5, 3, 8, 6}, "111111111"},     {{0, 0, 0, 0}, ""}};
  for (uint32_t k = 0; k < 4; k++) {
    kiln__gt_instance *gi = &g.inst[k];
    memcpy(gi->box_all, sil[k].box, sizeof gi->box_all);
    size_t n = strlen(sil[k].m);
    if (masks && n) {
      gi->mask_all = keep(malloc(n));
      for (size_t i = 0; i < n; i++) gi->mask_all[i] = sil[k].m[i] == '1';
    }
    for (size_t i = 0; i < n; i++) gi->px_all += sil[k].m[i] == '1';
  }
  /* visible boxes and counts from the pass */
  for (uint32_t k = 0; k < 4; k++) {
    kiln__gt_instance *gi = &g.inst[k];
    int32_t x0 = W, y0 = H, x1 = 0, y1 = 0;
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++)
        if (pass[y][x] == k + 1) {
          gi->px_visib++;
          if (x < x0) x0 = x;
          if (y < y0) y0 = y;
          if (x + 1 > x1) x1 = x + 1;
          if (y + 1 > y1) y1 = y + 1;
        }
    if (gi->px_visib) gi->box_visib[0] = x0, gi->box_visib[1] = y0, gi->box_visib[2] = x1,
                      gi->box_visib[3] = y1;
    gi->visib_fract = gi->px_all ? (double)gi->px_visib / (double)gi->px_all : 0;
  }
  return g;
}

static kiln_job_frame frame(uint64_t index) {
  kiln_job_frame fr;
  memset(&fr, 0, sizeof fr);
  fr.index = index, fr.frame = (long)index * 10;
  snprintf(fr.name, sizeof fr.name, "%05llu", (unsigned long long)index);
  return fr;
}

/* ---- COCO --------------------------------------------------------------------------------- */

TEST(coco_rle_vectors) {
  /* worked by hand through pycocotools' rleToString: the fourth count on is a difference from
   * the count two before (2 - 3 = -1: 'O'), 100 needs two characters */
  const uint32_t a[] = {0, 3, 5, 2, 10}, b[] = {100}, c[] = {7, 1000000, 3, 999999, 5};
  char *s = keep(kiln__coco_rle_string(a, 5));
  KT_STR_EQ(s, "035O5");
  KT_STR_EQ(keep(kiln__coco_rle_string(b, 1)), "T3");
  s = keep(kiln__coco_rle_string(c, 5));
  uint32_t back[8];
  KT_EQ(rle_decode(s, back, 8), 5);
  for (int i = 0; i < 5; i++) KT_EQ(back[i], c[i]);
  KT_STR_EQ(keep(kiln__coco_rle_string(NULL, 0)), "");
}

static char *open_coco(const kiln__scene *s, const char *dir, const char *tag, kiln__coco **c) {
  char msg[512] = "";
  int rc = kiln__coco_open(dir, tag, s, false, c, msg, sizeof msg);
  if (rc) KT_FAIL("kiln__coco_open: %s", msg);
  return NULL;
}

static void add_coco(kiln__coco *c, uint64_t index, const kiln__frame_gt *g, const kiln_image *img) {
  kiln_job_frame fr = frame(index);
  char msg[512] = "", file[64];
  snprintf(file, sizeof file, "f/%05llu_color.png", (unsigned long long)index);
  int rc = kiln__coco_frame(c, &fr, file, g, img, msg, sizeof msg);
  if (rc) KT_FAIL("kiln__coco_frame: %s", msg);
}

static void commit_coco(kiln__coco *c) {
  char msg[512] = "";
  int rc = kiln__coco_commit(c, true, msg, sizeof msg);
  if (rc) KT_FAIL("kiln__coco_commit: %s", msg);
}

/* Every annotation of the file against the pass: its mask decodes to exactly the instance's
 * pixels, area and bbox are theirs, its category that of the instance's object. */
static void check_annotations(const cJSON *doc, bool bare) {
  const cJSON *anns = item(doc, "annotations"), *a;
  double id = 0, image = 0;
  cJSON_ArrayForEach(a, anns) {
    KT_EQ(num(a, "id"), ++id);
    KT_TRUE(num(a, "image_id") >= image); /* in image order */
    image = num(a, "image_id");
    KT_EQ(num(a, "iscrowd"), 0);
    uint32_t inst = (uint32_t)num(a, "instance_id");
    KT_TRUE(inst >= 1 && inst <= 3);
    KT_NE(inst, bare ? 0 : 2); /* instance 2's object has no category */
    KT_EQ(num(a, "category_id"), bare ? inst_obj[inst - 1] : obj_cat_id[inst_obj[inst - 1] - 1]);
    const cJSON *seg = item(a, "segmentation"), *size = item(seg, "size");
    KT_EQ(cJSON_GetArraySize(size), 2);
    KT_EQ(cJSON_GetArrayItem(size, 0)->valuedouble, H);
    KT_EQ(cJSON_GetArrayItem(size, 1)->valuedouble, W);
    const cJSON *counts = item(seg, "counts");
    KT_TRUE(cJSON_IsString(counts));
    uint8_t mask[W * H]; /* column-major, as RLE */
    rle_mask(counts->valuestring, W, H, mask);
    int px = 0, x0 = W, y0 = H, x1 = 0, y1 = 0;
    for (int x = 0; x < W; x++)
      for (int y = 0; y < H; y++) {
        KT_EQ(mask[x * H + y], pass[y][x] == inst);
        if (pass[y][x] != inst) continue;
        px++;
        x0 = x < x0 ? x : x0, y0 = y < y0 ? y : y0;
        x1 = x + 1 > x1 ? x + 1 : x1, y1 = y + 1 > y1 ? y + 1 : y1;
      }
    KT_EQ(num(a, "area"), px);
    const cJSON *bb = item(a, "bbox");
    KT_EQ(cJSON_GetArraySize(bb), 4);
    KT_EQ(cJSON_GetArrayItem(bb, 0)->valuedouble, x0);
    KT_EQ(cJSON_GetArrayItem(bb, 1)->valuedouble, y0);
    KT_EQ(cJSON_GetArrayItem(bb, 2)->valuedouble, x1 - x0);
    KT_EQ(cJSON_GetArrayItem(bb, 3)->valuedouble, y1 - y0);
  }
}

TEST(coco_file) {
  char *dir = tmpdir();
  kiln__scene s = scene(false);
  kiln__frame_gt g = ground_truth(false);
  kiln_image *img = image();
  kiln__coco *c = NULL;
  open_coco(&s, dir, "", &c);
  add_coco(c, 2, &g, img); /* out of order, and one twice: the later record counts */
  add_coco(c, 0, &g, img);
  add_coco(c, 2, &g, img);
  commit_coco(c);
  cJSON *doc = load_json(fmt("%s/coco.json", dir));
  KT_TRUE(cJSON_IsObject(item(doc, "info")));
  KT_TRUE(cJSON_IsArray(item(doc, "licenses")));
  const cJSON *images = item(doc, "images");
  KT_EQ(cJSON_GetArraySize(images), 2);
  const cJSON *i0 = cJSON_GetArrayItem(images, 0), *i1 = cJSON_GetArrayItem(images, 1);
  KT_EQ(num(i0, "id"), 1); /* the job index + 1, sorted */
  KT_EQ(num(i1, "id"), 3);
  KT_STR_EQ(item(i0, "file_name")->valuestring, "f/00000_color.png");
  KT_STR_EQ(item(i1, "file_name")->valuestring, "f/00002_color.png");
  KT_EQ(num(i1, "width"), W);
  KT_EQ(num(i1, "height"), H);
  KT_EQ(num(i1, "frame"), 20);
  /* instances 1 and 3 in each image: 2 has no category, 4 is hidden */
  KT_EQ(cJSON_GetArraySize(item(doc, "annotations")), 4);
  check_annotations(doc, false);
  const cJSON *cats = item(doc, "categories");
  KT_EQ(cJSON_GetArraySize(cats), 2);
  KT_EQ(num(cJSON_GetArrayItem(cats, 0), "id"), 1);
  KT_STR_EQ(item(cJSON_GetArrayItem(cats, 0), "name")->valuestring, "toy");
  KT_STR_EQ(item(cJSON_GetArrayItem(cats, 0), "supercategory")->valuestring, "toy");
  KT_EQ(num(cJSON_GetArrayItem(cats, 1), "id"), 5);
  KT_STR_EQ(item(cJSON_GetArrayItem(cats, 1), "name")->valuestring, "kitchen");
  cJSON_Delete(doc);
  /* nothing else is left in the folder: the spool was unlinked, the temporary renamed */
  DIR *d = opendir(dir);
  struct dirent *e;
  int files = 0;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
      files++;
      KT_STR_EQ(e->d_name, "coco.json");
    }
  closedir(d);
  KT_EQ(files, 1);
  kiln_image_destroy(img);
}

TEST(coco_without_categories) {
  /* a scene without categories: one per object, every visible instance annotated */
  char *dir = tmpdir();
  kiln__scene s = scene(true);
  kiln__frame_gt g = ground_truth(false);
  for (size_t k = 0; k < g.n; k++) g.inst[k].category_id = 0, g.inst[k].category = NULL;
  kiln_image *img = image();
  kiln__coco *c = NULL;
  open_coco(&s, dir, "3", &c); /* shard 3's file */
  add_coco(c, 7, &g, img);
  commit_coco(c);
  KT_TRUE(access(fmt("%s/coco.json", dir), F_OK) != 0);
  cJSON *doc = load_json(fmt("%s/coco_3.json", dir));
  const cJSON *cats = item(doc, "categories");
  KT_EQ(cJSON_GetArraySize(cats), 3);
  for (int k = 0; k < 3; k++) {
    KT_EQ(num(cJSON_GetArrayItem(cats, k), "id"), k + 1);
    KT_STR_EQ(item(cJSON_GetArrayItem(cats, k), "name")->valuestring, names[k]);
  }
  KT_EQ(cJSON_GetArraySize(item(doc, "annotations")), 3);
  check_annotations(doc, true);
  cJSON_Delete(doc);
  kiln_image_destroy(img);
}

TEST(coco_dropped) {
  /* a run that is not kept leaves no file and no temporary */
  char *dir = tmpdir();
  kiln__scene s = scene(false);
  kiln__frame_gt g = ground_truth(false);
  kiln_image *img = image();
  kiln__coco *c = NULL;
  open_coco(&s, dir, "", &c);
  add_coco(c, 0, &g, img);
  char msg[256] = "";
  KT_CODE(kiln__coco_commit(c, false, msg, sizeof msg), 0);
  DIR *d = opendir(dir);
  struct dirent *e;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) KT_FAIL("left: %s", e->d_name);
  closedir(d);
  kiln_image_destroy(img);
}

typedef struct adder {
  kiln__coco *c;
  const kiln__frame_gt *g;
  const kiln_image *img;
  uint64_t first;
} adder;

static void *add_many(void *arg) {
  adder *a = arg;
  for (uint64_t i = 0; i < 50; i++) add_coco(a->c, a->first + 4 * i, a->g, a->img);
  return NULL;
}

TEST(coco_threads) {
  /* writer tasks add frames at once: every image once, sorted, annotation ids 1..N */
  char *dir = tmpdir();
  kiln__scene s = scene(false);
  kiln__frame_gt g = ground_truth(false);
  kiln_image *img = image();
  kiln__coco *c = NULL;
  open_coco(&s, dir, "", &c);
  pthread_t t[4];
  adder a[4];
  for (int k = 0; k < 4; k++) {
    a[k] = (adder){c, &g, img, (uint64_t)k};
    KT_EQ(pthread_create(&t[k], NULL, add_many, &a[k]), 0);
  }
  for (int k = 0; k < 4; k++) pthread_join(t[k], NULL);
  commit_coco(c);
  cJSON *doc = load_json(fmt("%s/coco.json", dir));
  const cJSON *images = item(doc, "images"), *im;
  KT_EQ(cJSON_GetArraySize(images), 200);
  double id = 0;
  cJSON_ArrayForEach(im, images) KT_EQ(num(im, "id"), ++id);
  KT_EQ(cJSON_GetArraySize(item(doc, "annotations")), 400);
  check_annotations(doc, false);
  cJSON_Delete(doc);
  kiln_image_destroy(img);
}

/* ---- BOP ---------------------------------------------------------------------------------- */

static void check_mask(const char *path, const uint8_t *want /* W x H, 0/1 */) {
  const uint8_t *m = png_read(path, W, H, 8, 1);
  for (int i = 0; i < W * H; i++)
    if (m[i] != (want[i] ? 255 : 0)) KT_FAIL("%s: pixel %d is %u", path, i, m[i]);
}

/* x -> A x for a 4x4 row-major A and a point */
static void apply(const double A[16], const double p[3], double o[3]) {
  for (int r = 0; r < 3; r++) o[r] = A[4 * r] * p[0] + A[4 * r + 1] * p[1] + A[4 * r + 2] * p[2] + A[4 * r + 3];
}

TEST(bop_scene) {
  char *dir = tmpdir();
  kiln__scene s = scene(false);
  kiln__frame_gt g = ground_truth(true);
  kiln_image *img = image();
  /* the colour file of frame 4, as the batch writes it before the writer sees the frame */
  void *png = NULL;
  size_t len = 0;
  uint8_t rgb[W * H * 3] = {0};
  kiln__raster r = {W, H, 3, KILN__PIX_U8, rgb, 0};
  KT_EQ(kiln__encode_png(&r, 1, &png, &len), 0);
  KT_EQ(mkdir(fmt("%s/f", dir), 0777), 0);
  char msg[512] = "";
  KT_EQ(kiln__write_atomic(fmt("%s/f/c4.png", dir), png, len, false, msg, sizeof msg), 0);
  free(png);
  kiln__bop *b = NULL;
  int rc = kiln__bop_open(dir, "2", &s, false, &b, msg, sizeof msg);
  if (rc) KT_FAIL("kiln__bop_open: %s", msg);
  kiln_job_frame f4 = frame(4), f11 = frame(11);
  if ((rc = kiln__bop_frame(b, &f4, "f/c4.png", &g, img, msg, sizeof msg)))
    KT_FAIL("kiln__bop_frame: %s", msg);
  if ((rc = kiln__bop_frame(b, &f11, "f/c11.exr", &g, img, msg, sizeof msg)))
    KT_FAIL("kiln__bop_frame: %s", msg);
  if ((rc = kiln__bop_commit(b, true, msg, sizeof msg))) KT_FAIL("kiln__bop_commit: %s", msg);
  char *sc = fmt("%s/bop/000002", dir);

  /* rgb: frame 4's a hard link of its colour file; frame 11's (exr) a PNG made here */
  struct stat a, c;
  KT_EQ(stat(fmt("%s/f/c4.png", dir), &a), 0);
  KT_EQ(stat(fmt("%s/rgb/000004.png", sc), &c), 0);
  KT_EQ(a.st_ino, c.st_ino);
  png_read(fmt("%s/rgb/000011.png", sc), W, H, 8, 3);

  /* depth: millimetres, 0 for background and for what 16 bits cannot hold */
  const uint16_t *d = png_read(fmt("%s/depth/000004.png", sc), W, H, 16, 1);
  for (int i = 0; i < W * H; i++) {
    int want = pass[i / W][i % W] ? (int)lround(1000.0 * (1.25f + 0.001f * (float)(i % W))) : 0;
    if (i == 13) want = 0;
    KT_EQ(d[i], want);
  }

  cJSON *cam = load_json(fmt("%s/scene_camera.json", sc));
  cJSON *gt = load_json(fmt("%s/scene_gt.json", sc));
  cJSON *info = load_json(fmt("%s/scene_gt_info.json", sc));
  /* keys are image ids as strings, in order */
  KT_STR_EQ(cam->child->string, "4");
  KT_STR_EQ(cam->child->next->string, "11");
  KT_TRUE(!cam->child->next->next);
  const cJSON *c4 = item(cam, "4");
  for (int i = 0; i < 9; i++) KT_EQ(cJSON_GetArrayItem(item(c4, "cam_K"), i)->valuedouble, g.K[i]);
  KT_EQ(num(c4, "depth_scale"), 1);
  /* world to camera: the camera's position maps to 0, a point in front of it to +z (mm) */
  double Rw[9], tw[3];
  for (int i = 0; i < 9; i++) Rw[i] = cJSON_GetArrayItem(item(c4, "cam_R_w2c"), i)->valuedouble;
  for (int i = 0; i < 3; i++) tw[i] = cJSON_GetArrayItem(item(c4, "cam_t_w2c"), i)->valuedouble;
  const double pos[3] = {1, 2, 3}, ahead[3] = {0, 2, 3}; /* the camera looks along world -x */
  for (int r2 = 0; r2 < 3; r2++) {
    double p = 1000 * (Rw[3 * r2] * pos[0] + Rw[3 * r2 + 1] * pos[1] + Rw[3 * r2 + 2] * pos[2]) + tw[r2];
    double q = 1000 * (Rw[3 * r2] * ahead[0] + Rw[3 * r2 + 1] * ahead[1] + Rw[3 * r2 + 2] * ahead[2]) + tw[r2];
    KT_TRUE(fabs(p) < 1e-9);
    KT_TRUE(fabs(q - (r2 == 2 ? 1000 : 0)) < 1e-9);
  }

  /* ground truth: instances 1, 2, 3 (4 covers no pixel), obj_id their object's */
  const cJSON *g4 = item(gt, "4"), *i4 = item(info, "4");
  KT_EQ(cJSON_GetArraySize(g4), 3);
  KT_EQ(cJSON_GetArraySize(i4), 3);
  for (int k = 0; k < 3; k++) {
    const cJSON *e = cJSON_GetArrayItem(g4, k), *in = cJSON_GetArrayItem(i4, k);
    const kiln__gt_instance *gi = &g.inst[k];
    KT_EQ(num(e, "obj_id"), gi->object_id);
    /* the pose: an object point goes where the camera sees it (camera frame, mm) */
    double R[9], t[3];
    for (int i = 0; i < 9; i++) R[i] = cJSON_GetArrayItem(item(e, "cam_R_m2c"), i)->valuedouble;
    for (int i = 0; i < 3; i++) t[i] = cJSON_GetArrayItem(item(e, "cam_t_m2c"), i)->valuedouble;
    const double p[3] = {0.3, -0.7, 1.1};
    double pw[3], pc[3];
    apply(gi->xform, p, pw);
    for (int r2 = 0; r2 < 3; r2++) { /* c2w is [R c]: camera = R^T (world - c) */
      pc[r2] = 0;
      for (int k2 = 0; k2 < 3; k2++) pc[r2] += g.c2w_cv[4 * k2 + r2] * (pw[k2] - g.c2w_cv[4 * k2 + 3]);
      double got = R[3 * r2] * p[0] + R[3 * r2 + 1] * p[1] + R[3 * r2 + 2] * p[2] + t[r2] / 1000;
      if (fabs(got - pc[r2]) > 1e-9) KT_FAIL("instance %d axis %d: %g != %g", k + 1, r2, got, pc[r2]);
    }
    KT_EQ(num(in, "px_count_all"), gi->px_all);
    KT_EQ(num(in, "px_count_visib"), gi->px_visib);
    KT_TRUE(fabs(num(in, "visib_fract") - gi->visib_fract) < 1e-12);
    const cJSON *bo = item(in, "bbox_obj"), *bv = item(in, "bbox_visib");
    KT_EQ(cJSON_GetArrayItem(bo, 0)->valuedouble, gi->box_all[0]);
    KT_EQ(cJSON_GetArrayItem(bo, 2)->valuedouble, gi->box_all[2] - gi->box_all[0]);
    KT_EQ(cJSON_GetArrayItem(bv, 1)->valuedouble, gi->box_visib[1]);
    KT_EQ(cJSON_GetArrayItem(bv, 3)->valuedouble, gi->box_visib[3] - gi->box_visib[1]);

    /* masks: mask_visib is the pass; mask the unoccluded silhouette */
    uint8_t vis[W * H], all[W * H] = {0};
    for (int i = 0; i < W * H; i++) vis[i] = pass[i / W][i % W] == (uint32_t)k + 1;
    int32_t bw = gi->box_all[2] - gi->box_all[0];
    int valid = 0;
    for (int y = gi->box_all[1]; y < gi->box_all[3]; y++)
      for (int x = gi->box_all[0]; x < gi->box_all[2]; x++) {
        all[y * W + x] = gi->mask_all[(y - gi->box_all[1]) * bw + (x - gi->box_all[0])];
        valid += all[y * W + x] && d[y * W + x];
      }
    KT_EQ(num(in, "px_count_valid"), valid);
    check_mask(fmt("%s/mask_visib/000004_%06d.png", sc, k), vis);
    check_mask(fmt("%s/mask/000004_%06d.png", sc, k), all);
  }
  KT_TRUE(access(fmt("%s/mask/000004_000003.png", sc), F_OK) != 0);
  KT_EQ(num(cJSON_GetArrayItem(item(info, "11"), 1), "px_count_valid"), 3); /* pixel 13 has none */
  cJSON_Delete(cam);
  cJSON_Delete(gt);
  cJSON_Delete(info);
  kiln_image_destroy(img);
}

TEST(bop_needs_masks) {
  /* an annotation without the unoccluded masks fails the frame, with a message */
  char *dir = tmpdir();
  kiln__scene s = scene(false);
  kiln__frame_gt g = ground_truth(false);
  kiln_image *img = image();
  kiln__bop *b = NULL;
  char msg[512] = "";
  KT_EQ(kiln__bop_open(dir, "", &s, false, &b, msg, sizeof msg), 0);
  kiln_job_frame f = frame(0);
  KT_CODE(kiln__bop_frame(b, &f, "c.exr", &g, img, msg, sizeof msg), KILN_EINVAL);
  KT_STR_CONTAINS(msg, "mask");
  KT_EQ(kiln__bop_commit(b, true, msg, sizeof msg), 0);
  KT_EQ(access(fmt("%s/bop/000000/scene_gt.json", dir), F_OK), 0);
  KT_CODE(kiln__bop_open(dir, "x1", &s, false, &b, msg, sizeof msg), KILN_EINVAL);
  kiln_image_destroy(img);
}
