/* test_shard.c: shards of a selection (kiln_shard_contains, select.c) as invariants: for any
 * number of shards, totals and both modes, every position is in exactly one shard; contiguous
 * shards are ranges in order; round-robin shards differ in size by at most one. Then walks over
 * real jobs (an animation with a step, a list with unordered and repeated frame numbers) with
 * --frames selections, open bounds included: the union of the shards (kiln_batch_walk) is the
 * unsharded selection, each frame once, in job order. */
#include <limits.h>
#include <stdarg.h>

#include "batch_internal.h"
#include "kiln/batch.h"
#include "scene/scene_test_util.h"

static const char *scene_json =
    "{\"settings\": {\"width\": 8, \"height\": 8, \"spp\": 1},\n"
    " \"camera\": {\"position\": [0, 1, -4], \"look_at\": [0, 1, 0], \"vfov\": 40},\n"
    " \"objects\": [{\"type\": \"sphere\", \"center\": [0, 1, 0], \"radius\": 0.5,\n"
    "               \"material\": {\"type\": \"diffuse\"}}]}\n";

static void check_partition(uint64_t total, uint32_t n, kiln_shard_mode mode) {
  uint64_t size[17] = {0}, prev_shard = 0;
  for (uint64_t p = 0; p < total; p++) {
    int owners = 0;
    uint32_t owner = 0;
    for (uint32_t k = 0; k < n; k++)
      if (kiln_shard_contains(p, total, k, n, mode)) owners++, owner = k;
    if (owners != 1)
      KT_FAIL("position %llu of %llu, %u shards (%s): in %d shards", (unsigned long long)p,
              (unsigned long long)total, n, mode ? "contiguous" : "round-robin", owners);
    size[owner]++;
    if (mode == KILN_SHARD_CONTIGUOUS) { /* ranges in order: the owner never goes down */
      if (owner < prev_shard)
        KT_FAIL("contiguous: position %llu in shard %u after shard %llu", (unsigned long long)p,
                owner, (unsigned long long)prev_shard);
      prev_shard = owner;
    } else if (owner != p % n) {
      KT_FAIL("round-robin: position %llu in shard %u of %u", (unsigned long long)p, owner, n);
    }
  }
  uint64_t lo = UINT64_MAX, hi = 0;
  for (uint32_t k = 0; k < n; k++) lo = size[k] < lo ? size[k] : lo, hi = size[k] > hi ? size[k] : hi;
  if (hi - lo > 1)
    KT_FAIL("%llu positions in %u shards (%s): sizes from %llu to %llu", (unsigned long long)total,
            n, mode ? "contiguous" : "round-robin", (unsigned long long)lo, (unsigned long long)hi);
  /* (positions are < total by contract; with one shard, shard 0 takes any) */
  for (uint32_t k = 0; n > 1 && k < n; k++) KT_FALSE(kiln_shard_contains(total, total, k, n, mode));
  KT_FALSE(kiln_shard_contains(0, total + 1, n, n, mode)); /* no shard past the last */
}

TEST(every_position_in_exactly_one_shard) {
  for (int m = 0; m < 2; m++)
    for (uint32_t n = 1; n <= 17; n++)
      for (uint64_t total = 0; total <= 100; total++) check_partition(total, n, (kiln_shard_mode)m);
  check_partition(100003, 7, KILN_SHARD_ROUND_ROBIN);
  check_partition(100003, 17, KILN_SHARD_CONTIGUOUS);
}

/* A large total: the contiguous cut does not overflow, and the ranges tile it. */
TEST(contiguous_ranges_of_a_huge_total) {
  uint64_t total = UINT64_MAX - 5;
  for (uint32_t n = 1; n <= 17; n++) {
    uint64_t expect_lo = 0;
    for (uint32_t k = 0; k < n; k++) {
      uint64_t lo, hi;
      kiln__shard_range(total, k, n, &lo, &hi);
      KT_EQ(lo, expect_lo);
      KT_TRUE(hi >= lo && hi - lo <= total / n + 1 && hi - lo >= total / n);
      KT_TRUE(kiln_shard_contains(lo, total, k, n, KILN_SHARD_CONTIGUOUS) || hi == lo);
      if (hi > lo) KT_TRUE(kiln_shard_contains(hi - 1, total, k, n, KILN_SHARD_CONTIGUOUS));
      expect_lo = hi;
    }
    KT_EQ(expect_lo, total);
  }
  /* shards 0 and 1 both mean "everything" */
  KT_TRUE(kiln_shard_contains(5, 10, 0, 0, KILN_SHARD_ROUND_ROBIN));
  KT_TRUE(kiln_shard_contains(5, 10, 0, 1, KILN_SHARD_CONTIGUOUS));
}

/* ---- walks over real jobs --------------------------------------------------------------------- */

typedef struct seen {
  uint64_t index[4096], pos[4096];
  size_t n;
} seen;

static void on_frame(void *arg, const kiln_job_frame *fr, uint64_t pos) {
  seen *s = arg;
  if (s->n == 4096) KT_FAIL("too many frames");
  s->index[s->n] = fr->index, s->pos[s->n++] = pos;
}

static kiln_job *load(const char *dir, const char *name, const char *text) {
  st_write(dir, name, text, (size_t)-1);
  char path[1024], scene[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  snprintf(scene, sizeof scene, "%s/scene.json", dir);
  kiln_job_options opt = {.scene = strstr(name, ".jsonl") ? scene : NULL};
  kiln_error_detail e;
  kiln_job *job = NULL;
  int rc = kiln_job_load(path, &opt, &e, &job);
  if (rc) KT_FAIL("load %s: %s", name, e.message);
  return job;
}

/* The union of the shards of (first, last, step) over n shards is the unsharded walk, each
 * frame once; returns how many frames it selects. */
static size_t check_union(kiln_job *job, long first, long last, long step, uint32_t n,
                          kiln_shard_mode mode) {
  kiln_batch_config cfg;
  kiln_batch_config_default(&cfg);
  cfg.first = first, cfg.last = last, cfg.step = step;
  static seen all, part;
  all.n = 0;
  kiln_error_detail e;
  KT_CODE(kiln_batch_walk(job, &cfg, on_frame, &all, &e), 0);
  for (size_t i = 0; i < all.n; i++) KT_EQ(all.pos[i], i); /* positions 0.. in job order */
  static int owner[4096];
  for (size_t i = 0; i < all.n; i++) owner[i] = -1;
  cfg.shards = n, cfg.shard_mode = mode;
  for (uint32_t k = 0; k < n; k++) {
    cfg.shard = k, part.n = 0;
    KT_CODE(kiln_batch_walk(job, &cfg, on_frame, &part, &e), 0);
    for (size_t i = 0; i < part.n; i++) {
      uint64_t p = part.pos[i];
      if (p >= all.n) KT_FAIL("shard %u: position %llu past the selection", k, (unsigned long long)p);
      KT_EQ(part.index[i], all.index[p]); /* the same frame at the same position */
      if (owner[p] >= 0) KT_FAIL("position %llu in shards %d and %u", (unsigned long long)p, owner[p], k);
      owner[p] = (int)k;
      if (i) KT_TRUE(part.pos[i] > part.pos[i - 1]); /* job order */
    }
  }
  for (size_t i = 0; i < all.n; i++)
    if (owner[i] < 0)
      KT_FAIL("frames %ld:%ld:%ld, %u shards: position %zu in none", first, last, step, n, i);
  return all.n;
}

static void check_selections(kiln_job *job) {
  static const long sel[][3] = {{LONG_MIN, LONG_MAX, 1}, {LONG_MIN, LONG_MAX, 3},
                                {LONG_MIN, 20, 2},       {5, LONG_MAX, 4},
                                {-3, 17, 5},             {7, 7, 1},
                                {LONG_MIN, 9, 7},        {2, 40, 1}};
  for (size_t i = 0; i < sizeof sel / sizeof sel[0]; i++)
    for (uint32_t n = 1; n <= 6; n++)
      for (int m = 0; m < 2; m++) check_union(job, sel[i][0], sel[i][1], sel[i][2], n, m);
}

TEST(union_of_shards_is_the_selection_animation) {
  const char *dir = st_tmpdir();
  st_write(dir, "scene.json", scene_json, (size_t)-1);
  kiln_job *job = load(dir, "a.json",
                       "{\"scene\": \"scene.json\", \"animation\": {\"frames\": {\"start\": 1, "
                       "\"end\": 61, \"step\": 2}}}");
  check_selections(job);
  /* open lower bound: the step counts from the first frame in range (1, 7, 13, 19) */
  KT_EQ(check_union(job, LONG_MIN, 20, 6, 3, KILN_SHARD_ROUND_ROBIN), 4);
  kiln_job_destroy(job);
  st_tmp_cleanup();
}

TEST(union_of_shards_is_the_selection_list) {
  const char *dir = st_tmpdir();
  st_write(dir, "scene.json", scene_json, (size_t)-1);
  /* frame numbers out of order and repeated; lines without one are numbered by position */
  kiln_job *job = load(dir, "l.jsonl",
                       "{\"frame\": 9}\n{\"frame\": 3}\n{}\n{\"frame\": 30}\n{\"frame\": 3}\n{}\n"
                       "{\"frame\": -2}\n{}\n{\"frame\": 12}\n{}\n{}\n{\"frame\": 5}\n");
  check_selections(job);
  KT_EQ(check_union(job, 3, 3, 1, 4, KILN_SHARD_CONTIGUOUS), 2); /* both lines of frame 3 */
  kiln_job_destroy(job);
  st_tmp_cleanup();
}

TEST(walk_refuses_what_a_run_refuses) {
  const char *dir = st_tmpdir();
  st_write(dir, "scene.json", scene_json, (size_t)-1);
  kiln_job *job = load(dir, "a.json",
                       "{\"scene\": \"scene.json\", \"animation\": {\"frames\": {\"start\": 0, "
                       "\"end\": 9}}}");
  kiln_batch_config cfg;
  kiln_batch_config_default(&cfg);
  seen *s = calloc(1, sizeof *s);
  kiln_error_detail e;
  cfg.first = 50, cfg.last = 60;
  KT_CODE(kiln_batch_walk(job, &cfg, on_frame, s, &e), KILN_EINVAL);
  KT_STR_CONTAINS(e.message, "matches none of the job's 10 frames");
  kiln_batch_config_default(&cfg);
  cfg.shard = 3, cfg.shards = 3;
  KT_CODE(kiln_batch_walk(job, &cfg, on_frame, s, &e), KILN_EINVAL);
  KT_STR_CONTAINS(e.message, "shard 3 of 3");
  /* claiming is ignored by a walk: every frame */
  kiln_batch_config_default(&cfg);
  cfg.claim = true;
  s->n = 0;
  KT_CODE(kiln_batch_walk(job, &cfg, on_frame, s, &e), 0);
  KT_EQ(s->n, 10);
  free(s);
  kiln_job_destroy(job);
  st_tmp_cleanup();
}
