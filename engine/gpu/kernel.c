/* kernel.c: compute kernels (a pipeline with a push-descriptor layout of N storage or uniform
 * buffers and a push-constant range) and the device's VkPipelineCache on disk.
 *
 * The cache file is <dir>/<device UUID>-<driver UUID>.bin, where <dir> is cfg.cache_dir,
 * $XDG_CACHE_HOME/kiln or ~/.cache/kiln. It holds kiln's own header (magic, length, FNV-1a of the
 * data) before the driver's blob, and the driver's blob must start with a
 * VkPipelineCacheHeaderVersionOne naming this device: a file that fails any check is ignored with
 * a warning (drivers are not required to survive arbitrary bytes). It is written at close to a
 * temporary file in the same folder, then renamed over the old one, so a reader never sees half a
 * file.
 *
 * Lock order: dev->mu only, for the kernel count. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpu_internal.h"

/* ---- embedded shaders --------------------------------------------------------------------- */

const char *const *kiln_gpu_builtin_names(size_t *n) { return kiln__builtin_shader_names(n); }

int kiln_gpu_builtin_spirv(const char *name, const uint32_t **words, size_t *size) {
  *words = NULL;
  *size = 0;
  size_t n;
  const kiln__builtin_shader *t = kiln__builtin_shaders(&n);
  for (size_t i = 0; name && i < n; i++)
    if (strcmp(t[i].name, name) == 0) {
      *words = t[i].words;
      *size = t[i].size;
      return 0;
    }
  return KILN_EINVAL;
}

/* ---- kernels ------------------------------------------------------------------------------ */

void kiln_gpu_kernel_config_default(kiln_gpu_kernel_config *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->entry = "main";
}

/* The SPIR-V of a kernel config; *owned is set when the words were compiled here (free them). */
static int kernel_code(kiln_gpu_device *dev, const kiln_gpu_kernel_config *cfg,
                       const uint32_t **words, size_t *size, uint32_t **owned) {
  *owned = NULL;
  if (cfg->builtin) {
    if (kiln_gpu_builtin_spirv(cfg->builtin, words, size) == 0) return 0;
    kiln__log(dev->gpu, KILN_GPU_LOG_ERROR, "no embedded shader named \"%s\"", cfg->builtin);
    return KILN_EINVAL;
  }
  if (cfg->glsl) {
    char *msg = NULL;
    int rc = kiln_gpu_compile_glsl(cfg->glsl, cfg->glsl_name, owned, size, &msg);
    if (msg) kiln__log(dev->gpu, rc ? KILN_GPU_LOG_ERROR : KILN_GPU_LOG_WARN, "%s", msg);
    free(msg);
    *words = *owned;
    return rc;
  }
  if (!cfg->spirv || cfg->spirv_size < 20 || cfg->spirv_size % 4 || cfg->spirv[0] != 0x07230203) {
    kiln__log(dev->gpu, KILN_GPU_LOG_ERROR,
              "kernel: spirv is not SPIR-V (NULL, shorter than its header, not a multiple of 4 "
              "bytes, or without the magic number 0x07230203)");
    return KILN_EINVAL;
  }
  *words = cfg->spirv;
  *size = cfg->spirv_size;
  return 0;
}

static int make_layouts(kiln_gpu_device *dev, kiln_gpu_kernel *k) {
  VkDescriptorSetLayoutBinding b[KILN__MAX_BINDINGS];
  for (uint32_t i = 0; i < k->buffers; i++)
    b[i] = (VkDescriptorSetLayoutBinding){.binding = i,
                                          .descriptorType = kiln__binding_type(k, i),
                                          .descriptorCount = 1,
                                          .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
  VkDescriptorSetLayoutCreateInfo dci = {
      .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
      .flags = VK_DESCRIPTOR_SET_LAYOUT_CREATE_PUSH_DESCRIPTOR_BIT_KHR,
      .bindingCount = k->buffers,
      .pBindings = b};
  VkResult r = dev->vk.CreateDescriptorSetLayout(dev->device, &dci, NULL, &k->set_layout);
  if (r != VK_SUCCESS) return vk_error(dev->gpu, r, "vkCreateDescriptorSetLayout");
  VkPushConstantRange pr = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .size = k->push_size};
  VkPipelineLayoutCreateInfo lci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                    .setLayoutCount = 1,
                                    .pSetLayouts = &k->set_layout,
                                    .pushConstantRangeCount = k->push_size ? 1 : 0,
                                    .pPushConstantRanges = &pr};
  r = dev->vk.CreatePipelineLayout(dev->device, &lci, NULL, &k->layout);
  if (r != VK_SUCCESS) return vk_error(dev->gpu, r, "vkCreatePipelineLayout");
  return 0;
}

static int make_pipeline(kiln_gpu_device *dev, kiln_gpu_kernel *k, const uint32_t *words,
                         size_t size, const char *entry) {
  VkShaderModuleCreateInfo sci = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                  .codeSize = size,
                                  .pCode = words};
  VkShaderModule mod;
  VkResult r = dev->vk.CreateShaderModule(dev->device, &sci, NULL, &mod);
  if (r != VK_SUCCESS) return vk_error(dev->gpu, r, "vkCreateShaderModule");
  VkPipelineCreationFeedback fb = {0}, stage_fb = {0};
  VkPipelineCreationFeedbackCreateInfo fci = {
      .sType = VK_STRUCTURE_TYPE_PIPELINE_CREATION_FEEDBACK_CREATE_INFO,
      .pPipelineCreationFeedback = &fb,
      .pipelineStageCreationFeedbackCount = 1,
      .pPipelineStageCreationFeedbacks = &stage_fb};
  VkComputePipelineCreateInfo ci = {
      .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
      .pNext = dev->creation_feedback ? &fci : NULL,
      .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                .module = mod,
                .pName = entry},
      .layout = k->layout};
  r = dev->vk.CreateComputePipelines(dev->device, dev->cache, 1, &ci, NULL, &k->pipeline);
  dev->vk.DestroyShaderModule(dev->device, mod, NULL);
  if (r != VK_SUCCESS) {
    k->pipeline = VK_NULL_HANDLE;
    return vk_error(dev->gpu, r, "vkCreateComputePipelines");
  }
  atomic_fetch_add_explicit(&dev->pipelines_created, 1, memory_order_relaxed);
  if ((fb.flags & VK_PIPELINE_CREATION_FEEDBACK_VALID_BIT) &&
      (fb.flags & VK_PIPELINE_CREATION_FEEDBACK_APPLICATION_PIPELINE_CACHE_HIT_BIT))
    atomic_fetch_add_explicit(&dev->cache_hits, 1, memory_order_relaxed);
  return 0;
}

int kiln_gpu_kernel_create(kiln_gpu_device *dev, const kiln_gpu_kernel_config *cfg,
                           kiln_gpu_kernel **out) {
  *out = NULL;
  if (!cfg || cfg->buffers > KILN__MAX_BINDINGS || cfg->push_size > KILN__MAX_PUSH ||
      cfg->push_size % 4 || cfg->uniform_buffers >> cfg->buffers ||
      cfg->texel_buffers >> cfg->buffers || (cfg->uniform_buffers & cfg->texel_buffers)) {
    kiln__log(dev->gpu, KILN_GPU_LOG_ERROR,
              "kernel: at most %d buffers and %d bytes of push constants (a multiple of 4); "
              "uniform_buffers and texel_buffers name distinct bindings below buffers",
              KILN__MAX_BINDINGS, KILN__MAX_PUSH);
    return KILN_EINVAL;
  }
  const uint32_t *words;
  uint32_t *owned;
  size_t size;
  int rc = kernel_code(dev, cfg, &words, &size, &owned);
  if (!rc) rc = kiln__dev_check_open(dev);
  kiln_gpu_kernel *k = rc ? NULL : calloc(1, sizeof(*k));
  if (!rc && !k) rc = KILN_ENOMEM;
  if (rc) {
    free(owned);
    return rc;
  }
  k->dev = dev;
  k->buffers = cfg->buffers;
  k->uniform = cfg->uniform_buffers;
  k->texel = cfg->texel_buffers;
  k->push_size = cfg->push_size;
  rc = make_layouts(dev, k);
  if (!rc) rc = make_pipeline(dev, k, words, size, cfg->entry ? cfg->entry : "main");
  free(owned);
  pthread_mutex_lock(&dev->mu);
  dev->live_kernels++;
  pthread_mutex_unlock(&dev->mu);
  if (rc) {
    kiln__log(dev->gpu, KILN_GPU_LOG_ERROR, "kernel %s: the driver rejected it",
              cfg->builtin ? cfg->builtin
                           : cfg->glsl ? (cfg->glsl_name ? cfg->glsl_name : "shader")
                                       : "(user SPIR-V)");
    kiln_gpu_kernel_destroy(k);
    return rc;
  }
  *out = k;
  return 0;
}

void kiln_gpu_kernel_destroy(kiln_gpu_kernel *k) {
  if (!k) return;
  kiln_gpu_device *dev = k->dev;
  if (k->pipeline) dev->vk.DestroyPipeline(dev->device, k->pipeline, NULL);
  if (k->layout) dev->vk.DestroyPipelineLayout(dev->device, k->layout, NULL);
  if (k->set_layout) dev->vk.DestroyDescriptorSetLayout(dev->device, k->set_layout, NULL);
  pthread_mutex_lock(&dev->mu);
  dev->live_kernels--;
  pthread_mutex_unlock(&dev->mu);
  free(k);
}

/* ---- the pipeline cache on disk ----------------------------------------------------------- */

static const char cache_magic[8] = {'K', 'I', 'L', 'N', 'P', 'C', '0', '1'};
enum { CACHE_HEADER = 24 };  /* magic, u64 length, u64 FNV-1a of the data */

static void hex(char *out, const uint8_t *id) {
  for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", id[i]);
}

/* The folder: cfg.cache_dir, $XDG_CACHE_HOME/kiln, or $HOME/.cache/kiln; NULL if none. */
static char *cache_folder(const char *given) {
  if (given && *given) return strdup(given);
  const char *xdg = getenv("XDG_CACHE_HOME");
  if (xdg && *xdg == '/') return kiln__strdup_printf("%s/kiln", xdg);
  const char *home = getenv("HOME");
  if (home && *home) return kiln__strdup_printf("%s/.cache/kiln", home);
  return NULL;
}

/* Why the file is not a usable cache for this device, or NULL if it is. */
static const char *cache_check(kiln_gpu_device *dev, const uint8_t *buf, size_t n) {
  if (n < CACHE_HEADER || memcmp(buf, cache_magic, 8) != 0) return "not a kiln pipeline cache";
  uint64_t len, sum;
  memcpy(&len, buf + 8, 8);
  memcpy(&sum, buf + 16, 8);
  if (len != n - CACHE_HEADER) return "truncated or extended";
  if (kiln__fnv1a(KILN__FNV1A_SEED, buf + CACHE_HEADER, len) != sum) return "checksum mismatch";
  VkPipelineCacheHeaderVersionOne h;
  if (len < sizeof(h)) return "no Vulkan header";
  memcpy(&h, buf + CACHE_HEADER, sizeof(h));
  VkPhysicalDeviceProperties p;
  dev->gpu->vk.GetPhysicalDeviceProperties(dev->phys, &p);
  if (h.headerVersion != VK_PIPELINE_CACHE_HEADER_VERSION_ONE || h.vendorID != p.vendorID ||
      h.deviceID != p.deviceID || memcmp(h.pipelineCacheUUID, p.pipelineCacheUUID, 16) != 0)
    return "written by another device or driver";
  return NULL;
}

int kiln__cache_open(kiln_gpu_device *dev) {
  char *dir = cache_folder(dev->cfg.cache_dir);
  if (dir) {
    char dev_id[33], drv_id[33];
    hex(dev_id, dev->info.device_uuid);
    hex(drv_id, dev->info.driver_uuid);
    dev->cache_path = kiln__strdup_printf("%s/%s-%s.bin", dir, dev_id, drv_id);
    free(dir);
  }
  size_t n = 0;
  char *text = NULL, msg[8];
  if (dev->cache_path && kiln__read_file(dev->cache_path, &text, &n, msg, sizeof msg) != 0) n = 0;
  const uint8_t *buf = (const uint8_t *)text;
  const char *why = buf ? cache_check(dev, buf, n) : NULL;
  if (why) {
    kiln__log(dev->gpu, KILN_GPU_LOG_WARN, "ignoring pipeline cache %s: %s", dev->cache_path,
              why);
  }
  VkPipelineCacheCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
  if (buf && !why) {
    ci.initialDataSize = n - CACHE_HEADER;
    ci.pInitialData = buf + CACHE_HEADER;
  }
  VkResult r = dev->vk.CreatePipelineCache(dev->device, &ci, NULL, &dev->cache);
  if (r != VK_SUCCESS && ci.initialDataSize) {
    kiln__log(dev->gpu, KILN_GPU_LOG_WARN, "the driver refused pipeline cache %s; starting empty",
              dev->cache_path);
    ci.initialDataSize = 0;
    ci.pInitialData = NULL;
    r = dev->vk.CreatePipelineCache(dev->device, &ci, NULL, &dev->cache);
  }
  dev->cache_loaded = ci.initialDataSize;
  free(text);
  if (r != VK_SUCCESS) {
    dev->cache = VK_NULL_HANDLE;
    return vk_error(dev->gpu, r, "vkCreatePipelineCache");
  }
  return 0;
}

/* The cache file: header (magic, length, checksum) and the driver's data, written atomically and
 * durably (a torn cache would only be ignored, but fsync keeps it from being lost at the next boot
 * with the rename done and the data not). 0 or KILN_E*. */
static int write_cache(const char *path, const uint8_t *data, size_t n, char *msg, size_t cap) {
  uint8_t *file = malloc(CACHE_HEADER + n);
  if (!file) {
    kiln__say(msg, cap, "out of memory");
    return KILN_ENOMEM;
  }
  uint64_t len = n, sum = kiln__fnv1a(KILN__FNV1A_SEED, data, n);
  memcpy(file, cache_magic, 8);
  memcpy(file + 8, &len, 8);
  memcpy(file + 16, &sum, 8);
  memcpy(file + CACHE_HEADER, data, n);
  int rc = kiln__write_atomic(path, file, CACHE_HEADER + n, true, msg, cap);
  free(file);
  return rc;
}

void kiln__cache_close(kiln_gpu_device *dev) {
  if (!dev->cache) return;
  size_t n = 0;
  uint8_t *data = NULL;
  bool changed = atomic_load_explicit(&dev->pipelines_created, memory_order_relaxed) >
                 atomic_load_explicit(&dev->cache_hits, memory_order_relaxed);
  if (dev->cache_path && changed &&
      dev->vk.GetPipelineCacheData(dev->device, dev->cache, &n, NULL) == VK_SUCCESS && n &&
      (data = malloc(n)) &&
      dev->vk.GetPipelineCacheData(dev->device, dev->cache, &n, data) == VK_SUCCESS) {
    char msg[512] = "out of memory";
    char *dir = kiln__dirname(dev->cache_path);
    int err = dir && dir[0] ? kiln__make_dirs(dir, 0700) : 0;
    if (err) kiln__say(msg, sizeof msg, "cannot create %s: %s", dir, strerror(err));
    if (!dir || err || write_cache(dev->cache_path, data, n, msg, sizeof msg) != 0)
      kiln__log(dev->gpu, KILN_GPU_LOG_WARN, "cannot write pipeline cache %s: %s", dev->cache_path,
                msg);
    free(dir);
  }
  free(data);
  dev->vk.DestroyPipelineCache(dev->device, dev->cache, NULL);
  dev->cache = VK_NULL_HANDLE;
}
