/* test_concurrent.c: loads may run on any number of threads at once (scene.h): eight loads of the
 * Cornell box and of a textured scene on a pool of four workers give the same scenes as one load
 * alone. Run under TSan in CI. */
#include <math.h>

#include "kiln/sched.h"
#include "st_images.h"

typedef struct job {
  const char *path; /* scene file, or NULL: json + dir */
  const char *json, *dir;
} job;

static int load_task(void *arg, void **result) {
  const job *j = arg;
  kiln_error_detail e;
  kiln_scene *s = NULL;
  int rc = j->path ? kiln_scene_load(j->path, &e, &s)
                   : kiln_scene_load_string(j->json, j->dir, "t.json", &e, &s);
  *result = s;
  return rc;
}

static void same_scene(const kiln__scene *a, const kiln__scene *b) {
  KT_EQ(a->ntris, b->ntris);
  KT_EQ(a->nmaterials, b->nmaterials);
  KT_EQ(a->ntextures, b->ntextures);
  KT_EQ(a->nobjects, b->nobjects);
  if (a->ntris && a->ntris == b->ntris) { /* a scene of shared meshes only has none */
    KT_TRUE(memcmp(a->pos, b->pos, a->ntris * 9 * sizeof(float)) == 0);
    KT_TRUE(memcmp(a->tri_material, b->tri_material, a->ntris * sizeof(uint32_t)) == 0);
    KT_TRUE(memcmp(a->tri_instance, b->tri_instance, a->ntris * sizeof(uint32_t)) == 0);
  }
  KT_EQ(a->nmeshes, b->nmeshes);
  KT_EQ(a->nplacements, b->nplacements);
  for (size_t m = 0; m < a->nmeshes && m < b->nmeshes; m++) {
    KT_EQ(a->meshes[m].ntris, b->meshes[m].ntris);
    KT_TRUE(memcmp(a->meshes[m].pos, b->meshes[m].pos, a->meshes[m].ntris * 9 * sizeof(float)) ==
            0);
  }
  if (a->nplacements && a->nplacements == b->nplacements)
    KT_TRUE(memcmp(a->placements, b->placements, a->nplacements * sizeof *a->placements) == 0);
  for (size_t t = 0; t < a->ntextures; t++)
    KT_TRUE(memcmp(a->textures[t].rgb, b->textures[t].rgb,
                   (size_t)a->textures[t].width * (size_t)a->textures[t].height * 3 *
                       sizeof(float)) == 0);
}

TEST(parallel_loads) {
  char cornell[1200];
  snprintf(cornell, sizeof cornell, "%s/../../examples/cornell/scene.json", st_src_dir());
  const char *dir = st_tmpdir();
  st_write_png(dir, "t.png");
  st_write_hdr(dir, "sky.hdr");
  st_write(dir, "q.obj",
           "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\n"
           "f 1/1 2/2 3/3 4/4\n",
           (size_t)-1);
  const char *json =
      "{\"camera\": {\"position\": [0, 0, -5], \"look_at\": [0, 0, 0]},\n"
      " \"environment\": {\"type\": \"map\", \"file\": \"sky.hdr\"},\n"
      " \"objects\": [{\"type\": \"mesh\", \"file\": \"q.obj\", \"instances\": [{}, {\"scale\": 2}],\n"
      "   \"material\": {\"type\": \"diffuse\", \"texture\": \"t.png\"}}]}";
  job jobs[2] = {{cornell, NULL, NULL}, {NULL, json, dir}};
  enum { N = 8 };
  void *args[N], *res[N];
  int errs[N];
  for (int i = 0; i < N; i++) args[i] = &jobs[i % 2];
  kiln_pool_config cfg;
  kiln_pool_config_default(&cfg);
  cfg.threads = 4;
  kiln_pool *p = NULL;
  KT_CODE(kiln_pool_create(&cfg, &p), KILN_OK);
  KT_CODE(kiln_map(p, load_task, args, N, 1, -1, res, errs), KILN_OK);
  void *ref[2];
  for (int k = 0; k < 2; k++) KT_CODE(load_task(&jobs[k], &ref[k]), KILN_OK);
  for (int i = 0; i < N; i++) {
    KT_CODE(errs[i], KILN_OK);
    same_scene(st_data(res[i]), st_data(ref[i % 2]));
    kiln_scene_destroy(res[i]);
  }
  for (int k = 0; k < 2; k++) kiln_scene_destroy(ref[k]);
  kiln_pool_destroy(p);
  st_tmp_cleanup();
}

static void write_meshes(const char *dir) {
  char name[32], text[256];
  for (int i = 0; i < 4; i++) {
    snprintf(name, sizeof name, "m%d.obj", i);
    snprintf(text, sizeof text,
             "o part%d\nv 0 0 %d\nv 1 0 %d\nv 0 1 %d\nv 1 1 %d\nf 1 2 3\nf 2 4 3\n", i, i, i, i, i);
    st_write(dir, name, text, (size_t)-1);
  }
  st_write(dir, "p.ply",
           "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
           "property float z\nelement face 1\nproperty list uchar int vertex_indices\n"
           "end_header\n0 0 9\n1 0 9\n0 1 9\n3 0 1 2\n",
           (size_t)-1);
  st_write(dir, "bad.obj", "v 0 0 0\nv 1 0 0\nf 1 2 3\n", (size_t)-1);
}

#define MESHES_JSON(last)                                                                                                 \
  "{\"camera\": {\"position\": [0, 0, -5], \"look_at\": [0, 0, 0]},\n"                                                    \
  " \"materials\": {\"d\": {\"type\": \"diffuse\"}},\n \"objects\": [\n"                                                  \
  "  {\"type\": \"mesh\", \"file\": \"m0.obj\", \"material\": \"d\"},\n"                                                  \
  "  {\"type\": \"mesh\", \"file\": \"m1.obj\", \"material\": \"d\", \"instances\": [{}, {\"translate\": [0, 3, 0]}]},\n" \
  "  {\"type\": \"mesh\", \"file\": \"p.ply\", \"material\": \"d\"},\n"                                                   \
  "  {\"type\": \"mesh\", \"file\": \"m2.obj\", \"material\": \"d\"},\n"                                                  \
  "  {\"type\": \"mesh\", \"file\": \"m0.obj\", \"material\": \"d\", \"transform\": {\"scale\": 2}},\n"                   \
  "  {\"type\": \"mesh\", \"file\": \"" last "\", \"material\": \"d\"}]}"

typedef struct pool_job {
  kiln_pool *pool;
  const char *path;
} pool_job;

static int pool_load_task(void *arg, void **result) {
  const pool_job *j = arg;
  kiln_error_detail e;
  kiln_scene *s = NULL;
  int rc = kiln_scene_load_pool(j->pool, j->path, &e, &s);
  *result = s;
  return rc;
}

/* kiln_scene_load_pool: the same scene as kiln_scene_load, and the same first error (in scene
 * order, though the files load in parallel); also when called from tasks of the same pool. */
TEST(pool_loads_meshes) {
  const char *dir = st_tmpdir();
  write_meshes(dir);
  char good[1024], bad[1024];
  snprintf(good, sizeof good, "%s", st_write(dir, "good.json", MESHES_JSON("m3.obj"), (size_t)-1));
  snprintf(bad, sizeof bad, "%s", st_write(dir, "bad.json", MESHES_JSON("bad.obj"), (size_t)-1));
  kiln_pool_config cfg;
  kiln_pool_config_default(&cfg);
  cfg.threads = 3;
  kiln_pool *p = NULL;
  KT_CODE(kiln_pool_create(&cfg, &p), KILN_OK);
  kiln_error_detail e1, e2;
  kiln_scene *a = NULL, *b = NULL;
  KT_CODE(kiln_scene_load(good, &e1, &a), KILN_OK);
  KT_CODE(kiln_scene_load_pool(p, good, &e2, &b), KILN_OK);
  same_scene(st_data(a), st_data(b));
  KT_EQ(kiln__scene_triangles(st_data(a)), 2 + 4 + 1 + 2 + 2 + 2);
  KT_EQ(st_data(a)->nplacements, 2); /* m1.obj, placed twice, is kept once */
  KT_EQ(st_data(a)->nobjects, 6);
  kiln_scene *c = NULL;
  KT_CODE(kiln_scene_load(bad, &e1, &c), KILN_EPARSE);
  KT_CODE(kiln_scene_load_pool(p, bad, &e2, &c), KILN_EPARSE);
  KT_TRUE(c == NULL);
  KT_STR_EQ(e1.file, e2.file);
  KT_STR_EQ(e1.path, e2.path);
  KT_STR_EQ(e1.path, "objects[5].file");
  KT_EQ(e1.line, e2.line);
  KT_EQ(e1.line, 3);
  KT_STR_EQ(e1.message, e2.message);
  /* from inside tasks of the same pool */
  enum { N = 6 };
  pool_job jobs[N];
  void *args[N], *res[N];
  int errs[N];
  for (int i = 0; i < N; i++) jobs[i] = (pool_job){p, good}, args[i] = &jobs[i];
  KT_CODE(kiln_map(p, pool_load_task, args, N, 1, -1, res, errs), KILN_OK);
  for (int i = 0; i < N; i++) {
    same_scene(st_data(a), st_data(res[i]));
    kiln_scene_destroy(res[i]);
  }
  kiln_scene_destroy(a);
  kiln_scene_destroy(b);
  kiln_pool_destroy(p);
  st_tmp_cleanup();
}
