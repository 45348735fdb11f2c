/* test_categories.c: object categories (docs/SCENE.md, docs/JOBS.md "Categories"): declared by
 * the scene (an array or {name: id}) or free, named by objects and lights, the ids of undeclared
 * names, errors located with a did you mean; a job's own declaration and object -> category map,
 * applied to its scene and kept by frames with overrides; OBJ groups as objects of one
 * transform in the instance table. */
#include <math.h>

#include "batch_internal.h"
#include "kiln/batch.h"
#include "scene/scene_test_util.h"

#define MAT "\"material\": {\"type\": \"diffuse\"}"
#define SPHERE(name, extra) \
  "{\"type\": \"sphere\", \"name\": \"" name "\", \"radius\": 1, " MAT extra "}"
#define SCENE(cats, objs)                                                                        \
  "{\"camera\": {\"position\": [0, 0, -5], \"look_at\": [0, 0, 0]}," cats " \"objects\": [" objs \
  "]}"

static kiln_scene *load_ok(const char *json) { return st_load_ok(json, "."); }

/* Loads json, which must fail: the error's line, path and message. */
static kiln_error_detail load_bad(const char *json) {
  kiln_error_detail e;
  kiln_scene *s = NULL;
  KT_CODE(kiln_scene_load_string(json, ".", "scene.json", &e, &s), KILN_EPARSE);
  KT_TRUE(s == NULL);
  return e;
}

TEST(declared_array_and_category_id_alone) {
  kiln_scene *s = load_ok(SCENE(" \"categories\": [\"ball\", \"crate\"],",
                                SPHERE("a", ", \"category\": \"crate\"") "," SPHERE(
                                    "b", ", \"category_id\": 1") "," SPHERE("c", "")));
  const kiln__scene *d = st_data(s);
  KT_EQ(d->ncategories, 2);
  KT_STR_EQ(d->category_names[0], "ball");
  KT_EQ(d->category_ids[1], 2);
  KT_STR_EQ(d->object_category[0], "crate");
  KT_EQ(d->object_category_id[0], 2);
  KT_STR_EQ(d->object_category[1], "ball");
  KT_EQ(d->object_category_id[1], 1);
  KT_TRUE(d->object_category[2] == NULL);
  KT_EQ(d->object_category_id[2], 0);
  kiln_scene_destroy(s);
}

TEST(declared_object_ids_and_lights) {
  kiln_scene *s = load_ok(
      "{\"camera\": {\"position\": [0, 0, -5], \"look_at\": [0, 0, 0]},"
      " \"categories\": {\"lamp\": 7, \"ball\": 3},"
      " \"objects\": [" SPHERE(
          "a",
          ", \"category\": \"ball\", \"category_id\": 3") "],"
                                                          " \"lights\": [{\"type\": \"quad\", \"corner\": [0, 3, 0], \"u\": [1, 0, 0], \"v\": [0, 0, 1],"
                                                          " \"radiance\": [1, 1, 1], \"category\": \"lamp\"}]}");
  const kiln__scene *d = st_data(s);
  KT_EQ(d->object_category_id[0], 3);
  KT_EQ(d->object_category_id[1], 7);
  KT_STR_EQ(d->object_category[1], "lamp");
  KT_EQ(d->category_ids[0], 7); /* declaration order */
  kiln_scene_destroy(s);
}

TEST(unknown_category_is_located_with_did_you_mean) {
  kiln_error_detail e = load_bad(SCENE("\n \"categories\": [\"ball\", \"crate\"],\n",
                                       SPHERE("a", ",\n \"category\": \"bal\"")));
  KT_STR_EQ(e.path, "objects[0].category");
  KT_EQ(e.line, 4);
  KT_STR_CONTAINS(e.message, "unknown category 'bal' (did you mean 'ball'?)");
  e = load_bad(SCENE(" \"categories\": [\"ball\"],",
                     SPHERE("a", ", \"category\": \"ball\", \"category_id\": 2")));
  KT_STR_EQ(e.path, "objects[0].category_id");
  KT_STR_CONTAINS(e.message, "declared with id 1, not 2");
  e = load_bad(SCENE(" \"categories\": [\"ball\", \"ball\"],", SPHERE("a", "")));
  KT_STR_EQ(e.path, "categories[1]");
  e = load_bad(SCENE(" \"categories\": {\"ball\": 0},", SPHERE("a", "")));
  KT_STR_EQ(e.path, "categories.ball");
  e = load_bad(SCENE(" \"categories\": [\"ball\"],", SPHERE("a", ", \"category_id\": 4")));
  KT_STR_CONTAINS(e.message, "no declared category has id 4");
  e = load_bad(SCENE("", SPHERE("a", ", \"categry\": \"x\"")));
  KT_STR_CONTAINS(e.message, "did you mean 'category'");
}

/* Without a declaration: explicit ids are kept, the other names get the smallest free ids in
 * order of first appearance, whatever comes later in the file. */
TEST(undeclared_names_get_free_ids_in_order) {
  kiln_scene *s = load_ok(SCENE(
      "",
      SPHERE("a", ", \"category\": \"dog\"") "," SPHERE("b", ", \"category\": \"cat\", \"category_id\": 1") "," SPHERE(
          "c", ", \"category\": \"dog\"") "," SPHERE("d", ", \"category\": \"emu\"")));
  const kiln__scene *d = st_data(s);
  KT_EQ(d->ncategories, 3);
  KT_STR_EQ(d->category_names[0], "dog");
  KT_EQ(d->object_category_id[0], 2);
  KT_EQ(d->object_category_id[1], 1);
  KT_EQ(d->object_category_id[2], 2);
  KT_EQ(d->object_category_id[3], 3);
  kiln_scene_destroy(s);
  kiln_error_detail e = load_bad(SCENE("", SPHERE("a", ", \"category_id\": 2")));
  KT_STR_CONTAINS(e.message, "needs the scene's top-level");
  e = load_bad(SCENE("", SPHERE("a", ", \"category\": \"x\", \"category_id\": 2") "," SPHERE(
                             "b", ", \"category\": \"y\", \"category_id\": 2")));
  KT_STR_EQ(e.path, "objects[1].category_id");
  KT_STR_CONTAINS(e.message, "category 'x' already");
}

/* The groups of an OBJ (`o`) are objects of their own sharing the mesh object's transform and
 * category; each instance of the mesh gives every group an instance. */
TEST(obj_groups_are_objects_sharing_a_transform) {
  const char *dir = st_tmpdir();
  st_write(
      dir, "two.obj",
      "o left\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\no right\nv 5 0 0\nv 6 0 2\nv 5 1 0\nf 4 5 6\n",
      (size_t)-1);
  kiln_scene *s = st_load_ok(
      "{\"camera\": {\"position\": [0, 0, -5], \"look_at\": [0, 0, 0]},"
      " \"objects\": [{\"type\": \"mesh\", \"name\": \"pair\", \"file\": \"two.obj\", " MAT ","
      " \"category\": \"thing\", \"transform\": {\"translate\": [0, 0, 3]},"
      " \"instances\": [{}, {\"translate\": [10, 0, 0]}]}]}",
      dir);
  const kiln__scene *d = st_data(s);
  KT_EQ(d->nobjects, 2);
  KT_STR_EQ(d->object_names[0], "pair.left");
  KT_STR_EQ(d->object_category[1], "thing");
  KT_EQ(d->ninstances, 4);
  KT_EQ(d->instances[0].object_id, 1);
  KT_EQ(d->instances[1].object_id, 2);
  KT_EQ(d->instances[3].object_id, 2);
  KT_TRUE(d->instances[1].xform[11] == 3 && d->instances[0].xform[11] == 3);
  KT_TRUE(d->instances[3].xform[3] == 10);
  KT_TRUE(d->instances[1].bbox_min[0] == 5 && d->instances[1].bbox_max[2] == 2);
  KT_TRUE(d->instances[0].bbox_max[0] == 1 && d->instances[0].bbox_max[2] == 0);
  kiln_scene_destroy(s);
  st_tmp_cleanup();
}

/* ---- jobs ------------------------------------------------------------------------------------- */

static const char *job_scene = SCENE(
    "", SPHERE("ball", ", \"category\": \"toy\"") "," SPHERE("crate", "") "," SPHERE("crate2", ""));

static kiln_job *job_load(const char *dir, const char *job_text, kiln_error_detail *e, int want) {
  st_write(dir, "scene.json", job_scene, (size_t)-1);
  st_write(dir, "job.json", job_text, (size_t)-1);
  char path[1024];
  snprintf(path, sizeof path, "%s/job.json", dir);
  kiln_job *job = NULL;
  int rc = kiln_job_load(path, NULL, e, &job);
  if (rc != want) {
    char buf[2048];
    KT_FAIL("load: %s: %s", kiln_err_name(rc), kiln_error_detail_format(e, buf, sizeof buf));
  }
  return job;
}

#define IMAGES \
  "\"images\": [{\"name\": \"a\"}, {\"name\": \"b\", \"objects\": {\"crate\": {\"transform\": {\"translate\": [1, 0, 0]}}}}]"

TEST(job_maps_objects_to_categories_and_frames_keep_them) {
  const char *dir = st_tmpdir();
  kiln_error_detail e;
  kiln_job *job = job_load(dir,
                           "{\"scene\": \"scene.json\", \"categories\": {\"box\": 5, \"toy\": 9},\n"
                           " \"object_categories\": {\"crate\": \"box\"}, " IMAGES "}",
                           &e, 0);
  const kiln__scene *d = &kiln_job_scene(job)->data;
  KT_EQ(d->ncategories, 2);
  KT_EQ(d->object_category_id[0], 9); /* the scene's name, the job's id */
  KT_EQ(d->object_category_id[1], 5);
  KT_STR_EQ(d->object_category[1], "box");
  KT_TRUE(d->object_category[2] == NULL); /* "crate" is not "crate2" */
  kiln_job_frame fr;
  KT_CODE(kiln_job_next(job, &fr, &e), 0);
  kiln_job_frame_clear(&fr);
  KT_CODE(kiln_job_next(job, &fr, &e), 0);
  KT_TRUE(fr.scene_patch != NULL);
  kiln_scene *fs = NULL;
  KT_CODE(kiln_job_frame_scene(job, &fr, &e, &fs), 0);
  KT_EQ(fs->data.object_category_id[1], 5);
  KT_EQ(fs->data.object_category_id[0], 9);
  KT_EQ(fs->data.ncategories, 2);
  kiln_scene_destroy(fs);
  kiln_job_frame_clear(&fr);
  kiln_job_destroy(job);
  /* without any declaration a new name gets the next free id */
  job = job_load(
      dir, "{\"scene\": \"scene.json\", \"object_categories\": {\"crate2\": \"box\"}, " IMAGES "}",
      &e, 0);
  d = &kiln_job_scene(job)->data;
  KT_EQ(d->object_category_id[2], 2);
  KT_EQ(d->ncategories, 2);
  kiln_job_destroy(job);
  st_tmp_cleanup();
}

TEST(job_unknown_object_or_category_is_located) {
  const char *dir = st_tmpdir();
  kiln_error_detail e;
  job_load(dir,
           "{\"scene\": \"scene.json\",\n \"categories\": [\"box\", \"toy\"],\n"
           " \"object_categories\": {\"crat\": \"box\"}, " IMAGES "}",
           &e, KILN_EPARSE);
  KT_STR_EQ(e.path, "object_categories.crat");
  KT_EQ(e.line, 3);
  KT_STR_CONTAINS(e.message, "no object named 'crat' (did you mean 'crate'?)");
  job_load(dir,
           "{\"scene\": \"scene.json\", \"categories\": [\"box\", \"toy\"],\n"
           " \"object_categories\": {\"crate\": \"bx\"}, " IMAGES "}",
           &e, KILN_EPARSE);
  KT_STR_EQ(e.path, "object_categories.crate");
  KT_EQ(e.line, 2);
  KT_STR_CONTAINS(e.message, "unknown category 'bx' (did you mean 'box'?)");
  /* the scene's own "toy" must be in the job's declaration when the job declares */
  job_load(dir, "{\"scene\": \"scene.json\", \"categories\": [\"box\"], " IMAGES "}", &e,
           KILN_EPARSE);
  KT_STR_EQ(e.path, "categories");
  KT_STR_CONTAINS(e.message, "object 'ball' has category 'toy'");
  /* unless the job maps that object to one of its own */
  kiln_job *job = job_load(dir,
                           "{\"scene\": \"scene.json\", \"categories\": [\"box\"],"
                           " \"object_categories\": {\"ball\": \"box\"}, " IMAGES "}",
                           &e, 0);
  KT_EQ(kiln_job_scene(job)->data.object_category_id[0], 1);
  kiln_job_destroy(job);
  st_tmp_cleanup();
}
