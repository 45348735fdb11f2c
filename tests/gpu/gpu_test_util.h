/* gpu_test_util.h: helpers for the gpu suite. Every test opens its kiln_gpu with the Khronos
 * validation layer and a log that records every message; tg_finish() fails the test if the layer
 * reported any warning or error. Sizes are small: lavapipe runs on two busy CPU cores. */
#ifndef KILN_GPU_TEST_UTIL_H
#define KILN_GPU_TEST_UTIL_H

#include "kiln/gpu.h" /* first: it must compile on its own */
#include "kiln/sched.h"

#include <pthread.h>
#include <stdint.h>

#include "kt.h"

typedef struct tg_log {
  pthread_mutex_t mu;
  char text[65536];
  size_t len;
  int warnings; /* WARN or ERROR messages */
} tg_log;

static tg_log tg_the_log = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void tg_on_log(void *arg, kiln_gpu_log_level level, const char *msg) {
  tg_log *l = arg;
  static const char *names[] = {"debug", "info", "warn", "error"};
  pthread_mutex_lock(&l->mu);
  if (level >= KILN_GPU_LOG_WARN) {
    l->warnings++;
    fprintf(stderr, "[kiln %s] %s\n", names[level], msg);
  }
  int n = snprintf(l->text + l->len, sizeof(l->text) - l->len, "%s: %s\n", names[level], msg);
  if (n > 0 && l->len + (size_t)n < sizeof(l->text)) l->len += (size_t)n;
  pthread_mutex_unlock(&l->mu);
}

/* True if the log holds `needle`; clears nothing. */
static inline bool tg_logged(const char *needle) {
  pthread_mutex_lock(&tg_the_log.mu);
  bool found = strstr(tg_the_log.text, needle) != NULL;
  pthread_mutex_unlock(&tg_the_log.mu);
  return found;
}

static inline void tg_config(kiln_gpu_config *cfg) {
  kiln_gpu_config_default(cfg);
  cfg->validation = true;
  cfg->log = tg_on_log;
  cfg->log_arg = &tg_the_log;
  cfg->log_level = KILN_GPU_LOG_DEBUG;
}

static inline kiln_gpu *tg_gpu(void) {
  kiln_gpu_config cfg;
  tg_config(&cfg);
  kiln_gpu *gpu = NULL;
  int rc = kiln_gpu_create(&cfg, &gpu);
  if (rc) KT_FAIL("kiln_gpu_create: %s; log:\n%s", kiln_err_name(rc), tg_the_log.text);
  return gpu;
}

/* Opens the preferred device (lavapipe here) with cfg (NULL: defaults, no disk cache). */
static inline kiln_gpu_device *tg_device(kiln_gpu *gpu, const kiln_gpu_device_config *cfg) {
  uint32_t idx;
  size_t n;
  KT_CODE(kiln_gpu_select(gpu, "auto", &idx, 1, &n), KILN_OK);
  KT_EQ(n, 1);
  kiln_gpu_device_config def;
  kiln_gpu_device_config_default(&def);
  def.pipeline_cache = false;
  def.block_size = 1u << 20;
  kiln_gpu_device *dev = NULL;
  int rc = kiln_gpu_device_open(gpu, idx, cfg ? cfg : &def, &dev);
  if (rc) KT_FAIL("kiln_gpu_device_open: %s; log:\n%s", kiln_err_name(rc), tg_the_log.text);
  return dev;
}

/* Destroys gpu; fails if the validation layer said anything. */
static inline void tg_finish(kiln_gpu *gpu) {
  uint64_t v = kiln_gpu_get_validation_messages(gpu);
  kiln_gpu_destroy(gpu);
  if (v != 0)
    KT_FAIL("%llu validation message(s); log:\n%s", (unsigned long long)v, tg_the_log.text);
}

static inline kiln_gpu_kernel *tg_kernel(kiln_gpu_device *dev, const char *name, uint32_t buffers,
                                         uint32_t push) {
  kiln_gpu_kernel_config kc;
  kiln_gpu_kernel_config_default(&kc);
  kc.builtin = name;
  kc.buffers = buffers;
  kc.push_size = push;
  kiln_gpu_kernel *k = NULL;
  KT_CODE(kiln_gpu_kernel_create(dev, &kc, &k), KILN_OK);
  return k;
}

/* The CPU reference of shaders/hash.comp. */
static inline uint32_t tg_pcg(uint32_t v) {
  uint32_t state = v * 747796405u + 2891336453u;
  uint32_t word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

/* Waits for f and returns its code, printing its message on failure when `expect_ok`. */
static inline int tg_result(kiln_future *f, void **value) {
  int rc = kiln_future_result(f, 60.0, value);
  return rc;
}

static inline const char *tg_msg(kiln_future *f) {
  const char *m = NULL;
  kiln_future_error(f, 0, &m);
  return m ? m : "";
}

#define TG_OK(f, valuep)                                                               \
  do {                                                                                 \
    int tg_rc = tg_result((f), (valuep));                                              \
    if (tg_rc != 0) KT_FAIL("future failed: %s: %s", kiln_err_name(tg_rc), tg_msg(f)); \
  } while (0)

static inline kiln_pool *tg_pool(int threads) {
  kiln_pool_config pc;
  kiln_pool_config_default(&pc);
  pc.threads = threads;
  kiln_pool *p = NULL;
  KT_CODE(kiln_pool_create(&pc, &p), KILN_OK);
  return p;
}

#endif /* KILN_GPU_TEST_UTIL_H */
