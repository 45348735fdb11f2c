/* test_select.c: device selection and the pick over many devices: kiln_gpu_select over an instance
 * describing more devices than any machine here has (a kiln_gpu filled in by hand: selection only
 * reads the descriptions), kiln_gpu_device_pick over devices built by hand, the renderer's pick
 * over more than 64 devices, and log messages longer than the logger's stack buffer. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/gpu_test_util.h"
#include "gpu_internal.h"
#include "kiln/render.h"
#include "kiln/scene.h"

enum { MANY = 100 };

/* An instance with MANY usable devices: even indices discrete ("Fake GPU n"), odd ones CPU
 * ("Fake CPU n"). Only what selection reads is filled in. */
static kiln_gpu *fake_gpu(void) {
  kiln_gpu *gpu = calloc(1, sizeof(*gpu));
  KT_TRUE(gpu != NULL);
  tg_config(&gpu->cfg);
  gpu->nphys = MANY;
  gpu->info = calloc(MANY, sizeof(*gpu->info));
  KT_TRUE(gpu->info != NULL);
  for (uint32_t i = 0; i < MANY; i++) {
    kiln_gpu_device_info *d = &gpu->info[i];
    d->index = i;
    d->usable = true;
    d->type = i % 2 ? KILN_GPU_TYPE_CPU : KILN_GPU_TYPE_DISCRETE;
    snprintf(d->name, sizeof(d->name), "Fake %s %u", i % 2 ? "CPU" : "GPU", i);
  }
  return gpu;
}

static void fake_gpu_free(kiln_gpu *gpu) {
  free(gpu->info);
  free(gpu);
}

/* Every one of many devices can be selected: none is dropped past some fixed count. */
TEST(select_many_devices) {
  kiln_gpu *gpu = fake_gpu();
  uint32_t idx[MANY];
  size_t n = 0;
  KT_CODE(kiln_gpu_select(gpu, "all", idx, MANY, &n), KILN_OK);
  KT_EQ(n, MANY / 2); /* every GPU, no CPU device */
  for (size_t i = 0; i < n; i++) KT_EQ(idx[i], 2 * i);
  KT_CODE(kiln_gpu_select(gpu, "cpu, discrete", idx, MANY, &n), KILN_OK);
  KT_EQ(n, MANY); /* in the order asked, each index once */
  for (size_t i = 0; i < n; i++) KT_EQ(idx[i], i < MANY / 2 ? 2 * i + 1 : 2 * (i - MANY / 2));
  KT_CODE(kiln_gpu_select(gpu, "auto", idx, 1, &n), KILN_OK);
  KT_EQ(n, 1);
  KT_EQ(idx[0], 0);
  /* a spec naming one device many times over is that device once */
  char spec[4 * MANY] = "";
  for (int i = 0; i < MANY; i++) strcat(spec, i ? ",97" : "97");
  KT_CODE(kiln_gpu_select(gpu, spec, idx, 1, &n), KILN_OK);
  KT_EQ(n, 1);
  KT_EQ(idx[0], 97);
  /* more matches than room: an error, never the first cap of them */
  n = 7;
  KT_CODE(kiln_gpu_select(gpu, "discrete,cpu", idx, 64, &n), KILN_EINVAL);
  KT_EQ(n, 0);
  KT_TRUE(tg_logged("matches more than 64 devices"));
  fake_gpu_free(gpu);
}

/* A message longer than the logger's 1 KiB stack buffer arrives whole: here a device name of
 * 3000 characters that matches nothing, which the error names in full. */
TEST(log_long_message) {
  kiln_gpu *gpu = fake_gpu();
  enum { LONG = 3000 };
  char *word = malloc(LONG + 1);
  KT_TRUE(word != NULL);
  for (int i = 0; i < LONG; i++) word[i] = (char)('a' + i % 26);
  word[LONG - 1] = 'Z';
  word[LONG] = '\0';
  char *expect = malloc(LONG + 64);
  KT_TRUE(expect != NULL);
  snprintf(expect, LONG + 64, "matches \"%s\"; devices:", word);
  uint32_t idx[4];
  size_t n;
  KT_CODE(kiln_gpu_select(gpu, word, idx, 4, &n), KILN_EINVAL);
  KT_TRUE(tg_logged(expect));
  free(expect);
  free(word);
  fake_gpu_free(gpu);
}

/* Devices built by hand for the pick: one lane each with `load` jobs in flight. */
typedef struct fake_dev {
  struct kiln_gpu_device dev;
  kiln__lane lane;
} fake_dev;

static void fake_dev_init(fake_dev *f, uint64_t load, bool lost) {
  memset(f, 0, sizeof(*f));
  f->dev.lanes = &f->lane;
  f->dev.nlanes = 1;
  atomic_init(&f->lane.in_flight, load);
  atomic_init(&f->dev.lost, lost);
}

/* The pick looks at every device it is given, however many. */
TEST(pick_many_devices) {
  enum { N = 200 };
  fake_dev *fd = calloc(N, sizeof(*fd));
  kiln_gpu_device **devs = calloc(N, sizeof(*devs));
  KT_TRUE(fd && devs);
  for (int i = 0; i < N; i++) {
    fake_dev_init(&fd[i], 5, false);
    devs[i] = &fd[i].dev;
  }
  KT_EQ(kiln_gpu_device_pick(devs, N), 0); /* ties: the first */
  atomic_store(&fd[150].lane.in_flight, 1);
  KT_EQ(kiln_gpu_device_pick(devs, N), 150);
  atomic_store(&fd[199].lane.in_flight, 0);
  KT_EQ(kiln_gpu_device_pick(devs, N), 199);
  atomic_store(&fd[199].dev.lost, true);
  KT_EQ(kiln_gpu_device_pick(devs, N), 150);
  for (int i = 0; i < N; i++) atomic_store(&fd[i].dev.lost, true);
  KT_EQ(kiln_gpu_device_pick(devs, N), -1);
  free(devs);
  free(fd);
}

/* The renderer spreads frames with kiln_gpu_device_pick over all its devices: with 65, the one
 * good device last and the 64 before it (one device, given 64 times) lost, a frame with no device
 * of its own goes to the last one and succeeds. */
TEST(render_pick_beyond_64) {
  enum { SLOTS = 65 };
  static const char json[] =
      "{\"camera\": {\"position\": [0, 0, -4], \"look_at\": [0, 0, 0]},"
      " \"settings\": {\"width\": 8, \"height\": 8, \"spp\": 1, \"max_bounces\": 1},"
      " \"objects\": [{\"type\": \"sphere\", \"center\": [0, 0, 0], \"radius\": 1,"
      " \"material\": {\"type\": \"diffuse\"}}]}";
  kiln_scene *scene = NULL;
  kiln_error_detail err;
  int rc = kiln_scene_load_string(json, NULL, "pick.json", &err, &scene);
  char why[512];
  if (rc) KT_FAIL("%s", kiln_error_detail_format(&err, why, sizeof why));
  /* 65 pipelines of the path tracer: without the validation layer, which checks each one's
   * SPIR-V again (seconds under the sanitizers); the rest of the suite runs under it. */
  kiln_gpu_config gc;
  tg_config(&gc);
  gc.validation = false;
  kiln_gpu *gpu = NULL;
  KT_CODE(kiln_gpu_create(&gc, &gpu), KILN_OK);
  kiln_gpu_device_config cfg;
  kiln_gpu_device_config_default(&cfg);
  cfg.pipeline_cache = false;
  cfg.block_size = 1u << 20;
  /* Creating the renderer submits one upload job for each of its devices: 64 on `bad`; its next
   * submission is the injected loss. */
  cfg.fail_submission = SLOTS;
  kiln_gpu_device *bad = tg_device(gpu, &cfg);
  kiln_gpu_device *good = tg_device(gpu, NULL);
  kiln_gpu_device *slots[SLOTS];
  for (int i = 0; i < SLOTS - 1; i++) slots[i] = bad;
  slots[SLOTS - 1] = good;
  kiln_renderer_config rcfg;
  kiln_renderer_config_default(&rcfg);
  rcfg.scene_memory = KILN_RENDERER_SCENE_STORAGE;
  kiln_renderer *r = NULL;
  KT_CODE(kiln_renderer_create(scene, slots, SLOTS, &rcfg, &r), KILN_OK);

  kiln_gpu_job *job;
  KT_CODE(kiln_gpu_job_create(bad, &job), KILN_OK);
  kiln_future *f;
  KT_CODE(kiln_gpu_job_submit(job, NULL, 0, &f), KILN_OK);
  KT_CODE(kiln_future_result(f, -1, NULL), KILN_EDEVICE_LOST);
  kiln_future_release(f);
  KT_TRUE(kiln_gpu_device_lost(bad));

  kiln_frame_config fc;
  kiln_frame_config_default(r, &fc);
  fc.device = -1;
  KT_CODE(kiln_renderer_submit(r, &fc, &f), KILN_OK);
  KT_CODE(kiln_future_result(f, -1, NULL), KILN_OK);
  kiln_future_release(f);
  kiln_gpu_device_stats st;
  kiln_gpu_device_get_stats(good, &st);
  KT_TRUE(st.completed >= 2); /* its upload and the frame */

  kiln_renderer_destroy(r);
  kiln_scene_destroy(scene);
  kiln_gpu_device_close(bad);
  kiln_gpu_device_close(good);
  kiln_gpu_destroy(gpu);
}
