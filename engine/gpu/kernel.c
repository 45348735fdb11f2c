/* kernel.c: compute kernels (a pipeline with a push-descriptor layout of N storage, uniform or
 * uniform texel buffers and a push-constant range), created through the device's pipeline cache
 * (pipeline_cache.c), and the shaders embedded in the library.
 *
 * Lock order: dev->mu only, for the kernel count. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

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
  VkShaderModuleCreateInfo sci = {
      .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, .codeSize = size, .pCode = words};
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
      cfg->texel_buffers >> cfg->buffers || cfg->word_texel_buffers >> cfg->buffers ||
      (cfg->uniform_buffers & cfg->texel_buffers) ||
      (cfg->uniform_buffers & cfg->word_texel_buffers) ||
      (cfg->texel_buffers & cfg->word_texel_buffers)) {
    kiln__log(dev->gpu, KILN_GPU_LOG_ERROR,
              "kernel: at most %d buffers and %d bytes of push constants (a multiple of 4); "
              "uniform_buffers, texel_buffers and word_texel_buffers name distinct bindings "
              "below buffers",
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
  k->word_texel = cfg->word_texel_buffers;
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
              : cfg->glsl  ? (cfg->glsl_name ? cfg->glsl_name : "shader")
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
