/* device.c: opens a physical device as a kiln_gpu_device (a VkDevice with a few queues of one
 * compute family as its lanes: kiln__choose_queues), and closes it. The same physical device may be opened any number of times; each open is
 * independent (its own queues, memory, completion thread), which is how tests run multi-device
 * code on lavapipe's single queue.
 *
 * Which device to open is select.c's; submitting to the lanes and completing is bridge.c's.
 *
 * Lock order: dev->mu -> lane->mu (see gpu_internal.h). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_internal.h"

void kiln_gpu_device_config_default(kiln_gpu_device_config *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->block_size = 32u << 20;
  cfg->pipeline_cache = true;
}

void kiln_gpu_device_get_info(const kiln_gpu_device *dev, kiln_gpu_device_info *out) {
  *out = dev->info;
}

bool kiln_gpu_device_lost(kiln_gpu_device *dev) {
  /* acquire: pairs with the release store in bridge.c's lose(), so lost_message is readable */
  return atomic_load_explicit(&dev->lost, memory_order_acquire);
}

int kiln__dev_check_open(kiln_gpu_device *dev) {
  if (kiln_gpu_device_lost(dev)) return KILN_EDEVICE_LOST;
  pthread_mutex_lock(&dev->mu);
  bool closing = dev->closing;
  pthread_mutex_unlock(&dev->mu);
  return closing ? KILN_ESHUTDOWN : 0;
}

int kiln__dev_job_begin(kiln_gpu_device *dev) {
  if (kiln_gpu_device_lost(dev)) return KILN_EDEVICE_LOST;
  pthread_mutex_lock(&dev->mu);
  int rc = dev->closing ? KILN_ESHUTDOWN : 0;
  if (!rc) dev->outstanding++;
  pthread_mutex_unlock(&dev->mu);
  return rc;
}

void kiln__dev_job_end(kiln_gpu_device *dev) {
  pthread_mutex_lock(&dev->mu);
  if (--dev->outstanding == 0) pthread_cond_broadcast(&dev->idle);
  pthread_mutex_unlock(&dev->mu);
}

char *kiln__dev_lost_message(kiln_gpu_device *dev) {
  pthread_mutex_lock(&dev->mu);
  char *msg = dev->lost_message ? strdup(dev->lost_message) : NULL;
  pthread_mutex_unlock(&dev->mu);
  return msg;
}

void kiln_gpu_device_get_stats(kiln_gpu_device *dev, kiln_gpu_device_stats *out) {
  memset(out, 0, sizeof(*out));
  out->lanes = dev->nlanes;
  out->submitted = atomic_load_explicit(&dev->submitted, memory_order_relaxed);
  out->completed = atomic_load_explicit(&dev->completed, memory_order_relaxed);
  out->failed = atomic_load_explicit(&dev->failed, memory_order_relaxed);
  for (uint32_t i = 0; i < dev->nlanes; i++)
    out->in_flight += atomic_load_explicit(&dev->lanes[i].in_flight, memory_order_relaxed);
  out->memory_allocations = atomic_load_explicit(&dev->mem_allocations, memory_order_relaxed);
  out->memory_blocks = atomic_load_explicit(&dev->mem_blocks, memory_order_relaxed);
  out->buffer_bytes = atomic_load_explicit(&dev->buffer_bytes, memory_order_relaxed);
  out->pipeline_cache_loaded = dev->cache_loaded;
  out->pipelines_created = atomic_load_explicit(&dev->pipelines_created, memory_order_relaxed);
  out->pipeline_cache_hits = atomic_load_explicit(&dev->cache_hits, memory_order_relaxed);
}

/* ---- opening ------------------------------------------------------------------------------ */

static bool device_has_ext(kiln_gpu *gpu, VkPhysicalDevice pd, const char *name) {
  uint32_t n = 0;
  if (gpu->vk.EnumerateDeviceExtensionProperties(pd, NULL, &n, NULL) != VK_SUCCESS) return false;
  VkExtensionProperties *p = calloc(n ? n : 1, sizeof(*p));
  bool found = false;
  if (p && gpu->vk.EnumerateDeviceExtensionProperties(pd, NULL, &n, p) == VK_SUCCESS)
    for (uint32_t i = 0; i < n && !found; i++) found = strcmp(p[i].extensionName, name) == 0;
  free(p);
  return found;
}

static int create_timeline(kiln_gpu_device *dev, VkSemaphore *out) {
  VkSemaphoreTypeCreateInfo tci = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_TYPE_CREATE_INFO,
                                   .semaphoreType = VK_SEMAPHORE_TYPE_TIMELINE,
                                   .initialValue = 0};
  VkSemaphoreCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO, .pNext = &tci};
  VkResult r = dev->vk.CreateSemaphore(dev->device, &ci, NULL, out);
  return r == VK_SUCCESS ? 0 : vk_error(dev->gpu, r, "vkCreateSemaphore(timeline)");
}

int kiln__choose_queues(const kiln_gpu_queue_family *families, uint32_t nfamilies,
                        uint32_t max_lanes, uint32_t *family, uint32_t *count) {
  *family = *count = 0;
  uint32_t best = UINT32_MAX;
  for (uint32_t f = 0; f < nfamilies; f++)
    if (families[f].compute && families[f].queues > 0 &&
        (best == UINT32_MAX || families[f].queues > families[best].queues))
      best = f;
  if (best == UINT32_MAX) return KILN_EUNSUPPORTED;
  uint32_t limit = max_lanes ? max_lanes : KILN__DEFAULT_LANES;
  *family = best;
  *count = families[best].queues < limit ? families[best].queues : limit;
  return 0;
}

/* Creates the VkDevice with the queues kiln__choose_queues picks (its reasons are there) and
 * loads its entry points. Lanes are described in dev->lanes (queue handles filled in by
 * init_lanes). */
static int create_device(kiln_gpu_device *dev) {
  kiln_gpu *gpu = dev->gpu;
  uint32_t family, lanes;
  int rc = kiln__choose_queues(dev->info.families, dev->info.family_count, dev->cfg.max_lanes,
                               &family, &lanes);
  if (rc) return rc;
  float *prio = calloc(lanes, sizeof(*prio)); /* every queue the same (0.0 is valid) priority */
  if (!prio) return KILN_ENOMEM;
  VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                 .queueFamilyIndex = family,
                                 .queueCount = lanes,
                                 .pQueuePriorities = prio};
  dev->lanes = calloc(lanes, sizeof(*dev->lanes));
  if (!dev->lanes) {
    free(prio);
    return KILN_ENOMEM;
  }
  for (uint32_t l = 0; l < lanes; l++) dev->lanes[l].family = family, dev->lanes[l].index = l;

  uint32_t api =
      dev->info.api_version < gpu->api_version ? dev->info.api_version : gpu->api_version;
  const char *exts[2] = {VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME};
  uint32_t next = 1;
  if (api >= VK_API_VERSION_1_3) {
    dev->creation_feedback = true; /* core in 1.3 */
  } else if (device_has_ext(gpu, dev->phys, VK_EXT_PIPELINE_CREATION_FEEDBACK_EXTENSION_NAME)) {
    exts[next++] = VK_EXT_PIPELINE_CREATION_FEEDBACK_EXTENSION_NAME;
    dev->creation_feedback = true;
  }
  VkPhysicalDeviceVulkan12Features f12 = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES, .timelineSemaphore = VK_TRUE};
  VkDeviceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                           .pNext = &f12,
                           .queueCreateInfoCount = 1,
                           .pQueueCreateInfos = &qci,
                           .enabledExtensionCount = next,
                           .ppEnabledExtensionNames = exts};
  VkResult r = gpu->vk.CreateDevice(dev->phys, &ci, NULL, &dev->device);
  free(prio);
  if (r != VK_SUCCESS) return vk_error(gpu, r, "vkCreateDevice");
  dev->nlanes = lanes;
#define LOAD(name) dev->vk.name = (PFN_vk##name)gpu->vk.GetDeviceProcAddr(dev->device, "vk" #name);
  KILN__VK_DEVICE_FNS(LOAD)
#undef LOAD
  return 0;
}

static int init_lanes(kiln_gpu_device *dev) {
  for (uint32_t l = 0; l < dev->nlanes; l++) {
    kiln__lane *lane = &dev->lanes[l];
    pthread_mutex_init(&lane->mu, NULL);
    lane->next_value = 1;
    atomic_init(&lane->in_flight, 0);
    dev->vk.GetDeviceQueue(dev->device, lane->family, lane->index, &lane->queue);
    VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT |
                                            VK_COMMAND_POOL_CREATE_TRANSIENT_BIT,
                                   .queueFamilyIndex = lane->family};
    VkResult r = dev->vk.CreateCommandPool(dev->device, &pci, NULL, &lane->pool);
    if (r != VK_SUCCESS) return vk_error(dev->gpu, r, "vkCreateCommandPool");
    int rc = create_timeline(dev, &lane->timeline);
    if (rc) return rc;
  }
  return 0;
}

static void destroy_lanes(kiln_gpu_device *dev) {
  if (!dev->lanes) return;
  for (uint32_t l = 0; l < dev->nlanes; l++) {
    kiln__lane *lane = &dev->lanes[l];
    if (lane->pool) dev->vk.DestroyCommandPool(dev->device, lane->pool, NULL); /* frees cbs */
    if (lane->timeline) dev->vk.DestroySemaphore(dev->device, lane->timeline, NULL);
    free(lane->free_cbs);
    pthread_mutex_destroy(&lane->mu);
  }
  free(dev->lanes);
  dev->lanes = NULL;
}

int kiln_gpu_device_open(kiln_gpu *gpu, uint32_t index, const kiln_gpu_device_config *cfg,
                         kiln_gpu_device **out) {
  *out = NULL;
  if (index >= gpu->nphys) {
    kiln__log(gpu, KILN_GPU_LOG_ERROR, "device %u does not exist (%u devices)", index, gpu->nphys);
    return KILN_EINVAL;
  }
  if (!gpu->info[index].usable) {
    kiln__log(gpu, KILN_GPU_LOG_ERROR, "device %u (%s) cannot be used: %s", index,
              gpu->info[index].name, gpu->info[index].unusable_reason);
    return KILN_EUNSUPPORTED;
  }
  kiln_gpu_device *dev = calloc(1, sizeof(*dev));
  if (!dev) return KILN_ENOMEM;
  kiln_gpu_device_config_default(&dev->cfg);
  if (cfg) dev->cfg = *cfg;
  if (dev->cfg.block_size < (1u << 16)) dev->cfg.block_size = 1u << 16;
  dev->cfg.cache_dir = NULL; /* borrowed for this call: kiln__cache_open copies what it needs */
  dev->gpu = gpu;
  dev->info = gpu->info[index];
  dev->phys = gpu->phys[index];
  pthread_mutex_init(&dev->mu, NULL);
  pthread_cond_init(&dev->idle, NULL);
  gpu->vk.GetPhysicalDeviceMemoryProperties(dev->phys, &dev->memprops);
  VkPhysicalDeviceProperties p;
  gpu->vk.GetPhysicalDeviceProperties(dev->phys, &p);
  dev->copy_align = 16;
  dev->max_uniform_range = p.limits.maxUniformBufferRange;
  dev->max_texels = p.limits.maxTexelBufferElements;
  if (p.limits.nonCoherentAtomSize > dev->copy_align)
    dev->copy_align = p.limits.nonCoherentAtomSize;
  if (p.limits.optimalBufferCopyOffsetAlignment > dev->copy_align)
    dev->copy_align = p.limits.optimalBufferCopyOffsetAlignment;

  int rc = create_device(dev);
  if (!rc) rc = init_lanes(dev);
  if (!rc) rc = kiln__alloc_init(dev, &dev->device_mem, false);
  if (!rc) rc = kiln__alloc_init(dev, &dev->staging, true);
  if (!rc && dev->cfg.pipeline_cache) {
    dev->cfg.cache_dir = cfg ? cfg->cache_dir : NULL; /* the caller's, for this call only */
    rc = kiln__cache_open(dev);
    dev->cfg.cache_dir = NULL;
  }
  if (!rc) rc = kiln__bridge_start(dev);
  if (rc) {
    kiln_gpu_device_close(dev);
    return rc;
  }
  if (dev->info.type == KILN_GPU_TYPE_CPU)
    kiln__log(gpu, KILN_GPU_LOG_INFO,
              "opened device %u, %s, the CPU Vulkan driver (lavapipe): GPU work runs on the CPU",
              index, dev->info.name);
  kiln__log(gpu, KILN_GPU_LOG_DEBUG, "device %u (%s): %u lane(s)", index, dev->info.name,
            dev->nlanes);
  *out = dev;
  return 0;
}

/* ---- closing ------------------------------------------------------------------------------ */

void kiln_gpu_device_close(kiln_gpu_device *dev) {
  if (!dev) return;
  pthread_mutex_lock(&dev->mu);
  dev->closing = true;
  while (dev->outstanding > 0) pthread_cond_wait(&dev->idle, &dev->mu);
  pthread_mutex_unlock(&dev->mu);
  if (dev->thread_started) kiln__bridge_stop(dev);
  if (dev->device) {
    /* After a loss this returns VK_ERROR_DEVICE_LOST at once; after an injected loss the work
     * really still runs, and must finish before its memory goes. */
    (void)dev->vk.DeviceWaitIdle(dev->device);
    kiln__bridge_free_graveyard(dev);
    size_t leaked = 0;
    while (dev->buffers) {
      leaked++;
      kiln_gpu_buffer_destroy(dev->buffers);
    }
    if (leaked || dev->live_kernels)
      kiln__log(dev->gpu, KILN_GPU_LOG_WARN,
                "device %s closed with %zu buffer(s) and %llu kernel(s) not destroyed",
                dev->info.name, leaked, (unsigned long long)dev->live_kernels);
    kiln__cache_close(dev);
    kiln__alloc_fini(dev, &dev->staging);
    kiln__alloc_fini(dev, &dev->device_mem);
    destroy_lanes(dev);
    dev->vk.DestroyDevice(dev->device, NULL);
  } else {
    free(dev->lanes);
  }
  free(dev->lost_message);
  free(dev->cache_path);
  pthread_cond_destroy(&dev->idle);
  pthread_mutex_destroy(&dev->mu);
  free(dev);
}
