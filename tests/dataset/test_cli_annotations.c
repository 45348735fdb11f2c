/* test_cli_annotations.c: `kiln render --annotations` end to end: the manifest's lines parse as
 * JSON with every field, agree with the instance pass the run wrote, and are the same rendered in
 * worker processes (--isolate, where the parent loads a frame's own scene); ids.json; the default
 * manifest's name when sharded. */
// kt: timeout 300
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <math.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli_test_util.h"

/* Runs kiln with args (NULL-terminated) in the test's folder; it must exit 0. */
static void run_ok(const char *dir, const char *const *args) {
  result r = run(dir, args);
  expect_status(&r, 0);
}

static const char *scene =
    "{\"settings\": {\"width\": 48, \"height\": 32, \"spp\": 1},\n"
    " \"camera\": {\"position\": [0, 0, -5], \"look_at\": [0, 0, 0], \"vfov\": 40},\n"
    " \"categories\": [\"ball\", \"card\"],\n"
    " \"objects\": [\n"
    "  {\"type\": \"sphere\", \"name\": \"a\", \"center\": [0, 0, 0], \"radius\": 0.8,"
    " \"material\": {\"type\": \"diffuse\"}, \"category\": \"ball\"},\n"
    "  {\"type\": \"quad\", \"name\": \"c\", \"corner\": [-0.1, -0.5, -2], \"u\": [1, 0, 0],"
    " \"v\": [0, 1, 0], \"material\": {\"type\": \"diffuse\"}, \"category\": \"card\"}],\n"
    " \"lights\": [{\"type\": \"quad\", \"corner\": [-1, 3, -1], \"u\": [2, 0, 0], \"v\": [0, 0, 2],"
    " \"radiance\": [5, 5, 5]}]}\n";

static const char *job =
    "{\"scene\": \"scene.json\", \"passes\": [\"instance\"], \"images\": [{\"name\": \"a\"},"
    " {\"name\": \"b\", \"objects\": {\"c\": {\"transform\": {\"translate\": [0.5, 0, 0]}}}}]}\n";

static char *setup(void) {
  char *d = tmpdir();
  write_text(fmt("%s/scene.json", d), scene);
  write_text(fmt("%s/job.json", d), job);
  return d;
}

/* The manifest's lines, parsed, by index (n of them). */
static int read_records(const char *path, cJSON **by_index, int cap) {
  size_t len;
  char *text = (char *)read_all(path, &len);
  if (!text) KT_FAIL("%s is missing", path);
  int n = 0;
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"), n++) {
    cJSON *o = cJSON_Parse(line);
    if (!o) KT_FAIL("%s: a line that is not JSON: %.200s", path, line);
    int i = cJSON_GetObjectItem(o, "index")->valueint;
    KT_TRUE(i >= 0 && i < cap);
    by_index[i] = o;
  }
  return n;
}

static const cJSON *get(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!v) KT_FAIL("no key '%s' in %s", key, cJSON_PrintUnformatted(o));
  return v;
}

/* Every field of a record, and px_visib against the instance pass the run wrote. */
static void check_record(const char *out, const cJSON *r) {
  KT_EQ(get(r, "width")->valueint, 48);
  KT_EQ(get(r, "height")->valueint, 32);
  const cJSON *cam = get(r, "camera");
  KT_EQ(cJSON_GetArraySize(get(cam, "K")), 3);
  KT_EQ(cJSON_GetArraySize(get(cam, "cam2world_opengl")), 4);
  KT_EQ(cJSON_GetArraySize(get(cam, "cam2world_opencv")), 4);
  const cJSON *insts = get(r, "instances");
  KT_EQ(cJSON_GetArraySize(insts), 3); /* sphere, card, light */
  const cJSON *files = get(r, "files");
  const char *ipass = NULL;
  for (const cJSON *f = files->child; f; f = f->next)
    if (strstr(f->valuestring, "instance")) ipass = f->valuestring;
  KT_TRUE(ipass != NULL);
  int w, h, ch;
  unsigned short *ids = stbi_load_16(fmt("%s/%s", out, ipass), &w, &h, &ch, 1);
  KT_TRUE(ids != NULL);
  for (const cJSON *g = insts->child; g; g = g->next) {
    int id = get(g, "instance_id")->valueint;
    long count = 0;
    for (int p = 0; p < w * h; p++) count += ids[p] == id;
    KT_EQ((long)get(g, "px_visib")->valuedouble, count);
    get(g, "object_id"), get(g, "name"), get(g, "category"), get(g, "category_id");
    KT_EQ(cJSON_GetArraySize(get(g, "object_to_world")), 4);
    const cJSON *b = get(g, "bbox_visib");
    KT_TRUE(count ? cJSON_GetArraySize(b) == 4 : cJSON_IsNull(b));
    double fr = get(g, "visib_fract")->valuedouble, all = get(g, "px_all")->valuedouble;
    KT_TRUE(fr >= 0 && fr <= 1);
    KT_TRUE(all == 0 || fabs(fr - fmin(1, (double)count / all)) < 1e-9);
    const cJSON *b3 = get(g, "bbox3d");
    KT_EQ(cJSON_GetArraySize(get(b3, "corners_2d")), 8);
    KT_EQ(cJSON_GetArraySize(get(b3, "min")), 3);
    KT_EQ(cJSON_GetArraySize(get(g, "center_2d")), 3);
  }
  const cJSON *card = insts->child->next;
  KT_STR_EQ(get(card, "category")->valuestring, "card");
  KT_EQ(get(card, "category_id")->valueint, 2);
  KT_TRUE(get(card, "px_visib")->valuedouble > 50);
  double fb = get(insts->child, "visib_fract")->valuedouble;
  /* the card hides much of the ball in frame a; moved aside (an override) in frame b, little */
  KT_TRUE(get(r, "index")->valueint == 0 ? fb < 0.6 : fb > 0.9);
  stbi_image_free(ids);
}

TEST(annotations_through_the_cli) {
  char *d = setup(), *out = fmt("%s/out", d), *iso = fmt("%s/iso", d);
  run_ok(d, ARGS("render", fmt("%s/job.json", d), "-o", out, "--annotations", "--quiet"));
  cJSON *recs[2] = {0}, *isorecs[2] = {0};
  KT_EQ(read_records(fmt("%s/annotations.jsonl", out), recs, 2), 2);
  for (int i = 0; i < 2; i++) check_record(out, recs[i]);
  size_t len;
  char *ids_text = (char *)read_all(fmt("%s/ids.json", out), &len);
  KT_TRUE(ids_text != NULL);
  cJSON *ids = cJSON_Parse(ids_text);
  KT_TRUE(ids != NULL);
  KT_EQ(cJSON_GetArraySize(get(ids, "instances")), 3);
  KT_EQ(cJSON_GetArraySize(get(ids, "objects")), 3);
  const cJSON *cats = get(ids, "categories");
  KT_EQ(cJSON_GetArraySize(cats), 2);
  KT_STR_EQ(get(cats->child, "name")->valuestring, "ball");
  get(get(ids, "conventions"), "K");
  /* the job's camera model at the run's size: the frames' own K (neither frame moves the lens) */
  const cJSON *model = get(ids, "camera");
  KT_STR_EQ(get(model, "model")->valuestring, "pinhole");
  KT_EQ(get(model, "width")->valueint, 48);
  KT_EQ(get(model, "height")->valueint, 32);
  char *mk = cJSON_PrintUnformatted(get(model, "K")),
       *rk = cJSON_PrintUnformatted(get(get(recs[0], "camera"), "K"));
  KT_STR_EQ(mk, rk);
  free(mk), free(rk);
  /* in worker processes: the same records */
  run_ok(d,
         ARGS("render", fmt("%s/job.json", d), "-o", iso, "--annotations", "--quiet", "--isolate"));
  KT_EQ(read_records(fmt("%s/annotations.jsonl", iso), isorecs, 2), 2);
  for (int i = 0; i < 2; i++) {
    char *a = cJSON_PrintUnformatted(get(recs[i], "instances")),
         *b = cJSON_PrintUnformatted(get(isorecs[i], "instances"));
    KT_STR_EQ(a, b);
    free(a), free(b);
    cJSON_Delete(recs[i]), cJSON_Delete(isorecs[i]);
  }
  cJSON_Delete(ids);
}

/* A shard's annotations go to annotations_K.jsonl, beside the others'; --manifest still names the
 * file when given. */
TEST(annotations_manifest_names) {
  char *d = setup(), *out = fmt("%s/out", d);
  run_ok(d, ARGS("render", fmt("%s/job.json", d), "-o", out, "--annotations", "--quiet", "--shard",
                 "1/2"));
  cJSON *recs[2] = {0};
  KT_EQ(read_records(fmt("%s/annotations_1.jsonl", out), recs, 2), 1);
  KT_TRUE(recs[1] != NULL);
  check_record(out, recs[1]);
  cJSON_Delete(recs[1]);
  run_ok(d, ARGS("render", fmt("%s/job.json", d), "-o", out, "--annotations", "--quiet",
                 "--overwrite", "--manifest", "m.jsonl"));
  cJSON *r2[2] = {0};
  KT_EQ(read_records(fmt("%s/m.jsonl", out), r2, 2), 2);
  check_record(out, r2[0]);
  cJSON_Delete(r2[0]), cJSON_Delete(r2[1]);
}
