/* pipeline_cache.c: the device's VkPipelineCache, loaded from disk at open and saved at close.
 *
 * The cache file is <dir>/<device UUID>-<driver UUID>.bin, where <dir> is cfg.cache_dir,
 * $XDG_CACHE_HOME/kiln or ~/.cache/kiln. It holds kiln's own header (magic, length, FNV-1a of the
 * data) before the driver's blob, and the driver's blob must start with a
 * VkPipelineCacheHeaderVersionOne naming this device: a file that fails any check is ignored with
 * a warning (drivers are not required to survive arbitrary bytes). It is written at close to a
 * temporary file in the same folder, then renamed over the old one, so a reader never sees half a
 * file. Nothing is written when every pipeline of this open came from the cache.
 *
 * Lock order: no locks (open and close run before and after every other use of the device). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_internal.h"

static const char cache_magic[8] = {'K', 'I', 'L', 'N', 'P', 'C', '0', '1'};
enum { CACHE_HEADER = 24 }; /* magic, u64 length, u64 FNV-1a of the data */

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
  char *text = NULL, msg[256];
  /* No file is the usual first run; any other failure only costs the compile time it saves. */
  if (dev->cache_path && kiln__read_file(dev->cache_path, &text, &n, msg, sizeof msg) != 0) {
    kiln__log(dev->gpu, KILN_GPU_LOG_DEBUG, "no pipeline cache read from %s: %s", dev->cache_path,
              msg);
    n = 0;
  }
  const uint8_t *buf = (const uint8_t *)text;
  const char *why = buf ? cache_check(dev, buf, n) : NULL;
  if (why) {
    kiln__log(dev->gpu, KILN_GPU_LOG_WARN, "ignoring pipeline cache %s: %s", dev->cache_path, why);
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
