/* test_device.c: instance, physical devices, selection, opening, and the errors of a machine
 * without Vulkan. */
// kt: timeout 120
#define _GNU_SOURCE
#include <stdlib.h>

#include "gpu_test_util.h"

TEST(enumerate) {
  kiln_gpu *gpu = tg_gpu();
  uint32_t n = kiln_gpu_get_device_count(gpu);
  KT_TRUE(n >= 1);
  bool any_usable = false;
  for (uint32_t i = 0; i < n; i++) {
    kiln_gpu_device_info d;
    KT_CODE(kiln_gpu_get_device_info(gpu, i, &d), KILN_OK);
    KT_EQ(d.index, i);
    KT_TRUE(d.name[0] != '\0');
    KT_TRUE(d.family_count >= 1);
    KT_TRUE(d.heap_count >= 1);
    KT_TRUE(d.heaps[0].size > 0);
    if (d.usable) {
      any_usable = true;
      KT_TRUE(d.api_version >= ((1u << 22) | (2u << 12))); /* >= 1.2 */
      KT_TRUE(d.driver_name[0] != '\0');
      bool compute = false;
      for (uint32_t f = 0; f < d.family_count; f++) compute = compute || d.families[f].compute;
      KT_TRUE(compute);
    } else {
      KT_TRUE(d.unusable_reason[0] != '\0');
    }
  }
  KT_TRUE(any_usable);
  kiln_gpu_device_info d;
  KT_CODE(kiln_gpu_get_device_info(gpu, n, &d), KILN_EINVAL);
  char v[32];
  KT_STR_EQ(kiln_gpu_version_string((1u << 22) | (3u << 12) | 239u, v, sizeof(v)), "1.3.239");
  KT_STR_EQ(kiln_gpu_type_name(KILN_GPU_TYPE_CPU), "cpu");
  KT_STR_EQ(kiln_gpu_type_name(KILN_GPU_TYPE_DISCRETE), "discrete");
  tg_finish(gpu);
}

/* Selection by default, type, index, name and list; bad specs are KILN_EINVAL with a message. */
TEST(select) {
  kiln_gpu *gpu = tg_gpu();
  uint32_t idx[8];
  size_t n;
  KT_CODE(kiln_gpu_select(gpu, NULL, idx, 8, &n), KILN_OK);
  KT_EQ(n, 1);
  kiln_gpu_device_info best;
  kiln_gpu_get_device_info(gpu, idx[0], &best);
  KT_TRUE(best.usable);
  /* The preferred device is never the CPU one while a usable GPU exists. */
  bool gpu_exists = false;
  for (uint32_t i = 0; i < kiln_gpu_get_device_count(gpu); i++) {
    kiln_gpu_device_info d;
    kiln_gpu_get_device_info(gpu, i, &d);
    gpu_exists = gpu_exists || (d.usable && d.type != KILN_GPU_TYPE_CPU);
  }
  if (gpu_exists) KT_NE(best.type, KILN_GPU_TYPE_CPU);
  if (best.type == KILN_GPU_TYPE_CPU) KT_TRUE(tg_logged("lavapipe"));

  uint32_t first = idx[0];
  char spec[64];
  snprintf(spec, sizeof(spec), "%u", first);
  KT_CODE(kiln_gpu_select(gpu, spec, idx, 8, &n), KILN_OK);
  KT_EQ(n, 1);
  KT_EQ(idx[0], first);
  KT_CODE(kiln_gpu_select(gpu, kiln_gpu_type_name(best.type), idx, 8, &n), KILN_OK);
  KT_TRUE(n >= 1);
  KT_CODE(kiln_gpu_select(gpu, "all", idx, 8, &n), KILN_OK);
  KT_TRUE(n >= 1);
  /* A name matches case-insensitively; a list keeps distinct indices. */
  char word[16];
  snprintf(word, sizeof(word), "%.5s", best.name);
  for (char *c = word; *c; c++) *c = (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
  snprintf(spec, sizeof(spec), "%s, %u", word, first);
  KT_CODE(kiln_gpu_select(gpu, spec, idx, 8, &n), KILN_OK);
  KT_TRUE(n >= 1);
  KT_EQ(idx[0], first);

  KT_CODE(kiln_gpu_select(gpu, "no-such-device-xyz", idx, 8, &n), KILN_EINVAL);
  KT_EQ(n, 0);
  KT_TRUE(tg_logged("no usable Vulkan device matches \"no-such-device-xyz\""));
  KT_CODE(kiln_gpu_select(gpu, "99", idx, 8, &n), KILN_EINVAL);
  KT_TRUE(tg_logged("device 99 does not exist"));
  KT_CODE(kiln_gpu_select(gpu, "1x", idx, 8, &n), KILN_EINVAL);
  KT_CODE(kiln_gpu_select(gpu, "all", idx, 0, &n), KILN_EINVAL);

  kiln_gpu_device *dev = NULL;
  KT_CODE(kiln_gpu_device_open(gpu, 99, NULL, &dev), KILN_EINVAL);
  KT_PTR_EQ(dev, NULL);
  tg_finish(gpu);
}

/* Two VkDevices on one physical device work side by side, each with its lanes. */
TEST(open_twice) {
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *a = tg_device(gpu, NULL), *b = tg_device(gpu, NULL);
  KT_TRUE(a != b);
  kiln_gpu_device_stats sa, sb;
  kiln_gpu_device_get_stats(a, &sa);
  kiln_gpu_device_get_stats(b, &sb);
  KT_TRUE(sa.lanes >= 1);
  KT_EQ(sa.lanes, sb.lanes);
  kiln_gpu_device_info ia, ib;
  kiln_gpu_device_get_info(a, &ia);
  kiln_gpu_device_get_info(b, &ib);
  KT_STR_EQ(ia.name, ib.name);
  KT_EQ(ia.index, ib.index);
  KT_FALSE(kiln_gpu_device_lost(a));
  kiln_gpu_device *devs[2] = {a, b};
  KT_EQ(kiln_gpu_device_pick(devs, 2), 0);
  /* max_lanes limits the queues used. */
  kiln_gpu_device_config cfg;
  kiln_gpu_device_config_default(&cfg);
  cfg.pipeline_cache = false;
  cfg.max_lanes = 1;
  kiln_gpu_device *c = tg_device(gpu, &cfg);
  kiln_gpu_device_stats sc;
  kiln_gpu_device_get_stats(c, &sc);
  KT_EQ(sc.lanes, 1);
  kiln_gpu_device_close(c);
  kiln_gpu_device_close(b);
  kiln_gpu_device_close(a);
  kiln_gpu_device_close(NULL);
  kiln_gpu_destroy(NULL);
  tg_finish(gpu);
}

/* No loader: KILN_EUNSUPPORTED and a message naming the package. */
TEST(no_loader) {
  kiln_gpu_config cfg;
  tg_config(&cfg);
  cfg.loader = "libkiln-test-no-such-vulkan.so.1";
  kiln_gpu *gpu = (kiln_gpu *)&cfg;
  KT_CODE(kiln_gpu_create(&cfg, &gpu), KILN_EUNSUPPORTED);
  KT_PTR_EQ(gpu, NULL);
  KT_TRUE(tg_logged("libvulkan1"));
}

/* A loader with no driver: KILN_EUNSUPPORTED and a message naming mesa-vulkan-drivers. */
TEST(no_driver) {
  setenv("VK_DRIVER_FILES", "/nonexistent/kiln-no-driver.json", 1);
  setenv("VK_ICD_FILENAMES", "/nonexistent/kiln-no-driver.json", 1);
  kiln_gpu_config cfg;
  tg_config(&cfg);
  cfg.validation = false; /* the layer is not the point here */
  kiln_gpu *gpu = NULL;
  KT_CODE(kiln_gpu_create(&cfg, &gpu), KILN_EUNSUPPORTED);
  KT_PTR_EQ(gpu, NULL);
  KT_TRUE(tg_logged("mesa-vulkan-drivers"));
}

/* The validation harness itself: a pipeline layout that lacks the shader's push constants is a
 * validation error, and it is counted (so tg_finish() in the other tests can fail). */
TEST(validation_counts) {
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  KT_EQ(kiln_gpu_get_validation_messages(gpu), 0);
  kiln_gpu_kernel_config kc;
  kiln_gpu_kernel_config_default(&kc);
  kc.builtin = "iadd";
  kc.buffers = 1;
  kc.push_size = 0; /* iadd.comp reads 8 bytes of push constants */
  kiln_gpu_kernel *k = NULL;
  int rc = kiln_gpu_kernel_create(dev, &kc, &k);
  KT_TRUE(kiln_gpu_get_validation_messages(gpu) > 0);
  KT_TRUE(tg_logged("vulkan validation"));
  if (rc == 0) kiln_gpu_kernel_destroy(k);
  kiln_gpu_device_close(dev);
  kiln_gpu_destroy(gpu);
}
