/* instance.c: loads Vulkan at run time, creates the headless instance, describes the physical
 * devices, and turns Vulkan failures into KILN_E* codes and log lines (choosing among the devices
 * is select.c's).
 *
 * libvulkan.so.1 is opened with dlopen (volk's approach) so that a machine without Vulkan gets
 * "install libvulkan1" from kiln_gpu_create() instead of a program that cannot start. Every entry
 * point lives in a table in the handle: no global state.
 *
 * Lock order: this file takes no locks. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_internal.h"

/* ---- logging and errors ------------------------------------------------------------------- */

/* A message of any length (the validation layer's run to several KiB): formatted on the stack
 * when it fits, else into a buffer of its size; cut to the stack's only when that allocation
 * fails, and then said so at its end. */
void kiln__log(const kiln_gpu *gpu, kiln_gpu_log_level level, const char *fmt, ...) {
  if (!gpu->cfg.log || level < gpu->cfg.log_level) return;
  char buf[1024], *msg = buf;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  if (n >= (int)sizeof(buf)) {
    char *big = malloc((size_t)n + 1);
    if (big) {
      va_start(ap, fmt);
      vsnprintf(big, (size_t)n + 1, fmt, ap);
      va_end(ap);
      msg = big;
    } else {
      memcpy(buf + sizeof(buf) - 16, " [cut: no mem]", 15);
    }
  }
  gpu->cfg.log(gpu->cfg.log_arg, level, msg);
  if (msg != buf) free(msg);
}

const char *kiln__vk_result_name(VkResult r) {
  switch (r) {
#define R(x) \
  case x: return #x;
    R(VK_SUCCESS)
    R(VK_NOT_READY) R(VK_TIMEOUT) R(VK_INCOMPLETE) R(VK_ERROR_OUT_OF_HOST_MEMORY)
        R(VK_ERROR_OUT_OF_DEVICE_MEMORY) R(VK_ERROR_INITIALIZATION_FAILED) R(VK_ERROR_DEVICE_LOST)
            R(VK_ERROR_MEMORY_MAP_FAILED) R(VK_ERROR_LAYER_NOT_PRESENT)
                R(VK_ERROR_EXTENSION_NOT_PRESENT) R(VK_ERROR_FEATURE_NOT_PRESENT)
                    R(VK_ERROR_INCOMPATIBLE_DRIVER) R(VK_ERROR_TOO_MANY_OBJECTS)
                        R(VK_ERROR_FORMAT_NOT_SUPPORTED) R(VK_ERROR_FRAGMENTED_POOL)
                            R(VK_ERROR_UNKNOWN) R(VK_ERROR_OUT_OF_POOL_MEMORY)
                                R(VK_ERROR_INVALID_EXTERNAL_HANDLE) R(VK_ERROR_FRAGMENTATION)
                                    R(VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS)
                                        R(VK_PIPELINE_COMPILE_REQUIRED)
                                            R(VK_ERROR_INVALID_SHADER_NV)
#undef R
                                                default : return "VkResult(unknown)";
  }
}

int kiln__vk_code(VkResult r) {
  switch (r) {
    case VK_SUCCESS: return 0;
    case VK_ERROR_DEVICE_LOST: return KILN_EDEVICE_LOST;
    case VK_ERROR_OUT_OF_HOST_MEMORY:
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return KILN_ENOMEM;
    case VK_ERROR_LAYER_NOT_PRESENT:
    case VK_ERROR_EXTENSION_NOT_PRESENT:
    case VK_ERROR_FEATURE_NOT_PRESENT:
    case VK_ERROR_INCOMPATIBLE_DRIVER: return KILN_EUNSUPPORTED;
    default: return KILN_EVULKAN;
  }
}

int kiln__vk_fail(const kiln_gpu *gpu, VkResult r, const char *call, const char *file, int line) {
  const char *base = strrchr(file, '/');
  kiln__log(gpu, KILN_GPU_LOG_ERROR, "%s:%d: %s failed: %s", base ? base + 1 : file, line, call,
            kiln__vk_result_name(r));
  return kiln__vk_code(r);
}

/* ---- small public helpers ----------------------------------------------------------------- */

const char *kiln_gpu_type_name(kiln_gpu_type type) {
  switch (type) {
    case KILN_GPU_TYPE_OTHER: return "other";
    case KILN_GPU_TYPE_INTEGRATED: return "integrated";
    case KILN_GPU_TYPE_DISCRETE: return "discrete";
    case KILN_GPU_TYPE_VIRTUAL: return "virtual";
    case KILN_GPU_TYPE_CPU: return "cpu";
  }
  return "unknown";
}

char *kiln_gpu_version_string(uint32_t v, char *buf, size_t size) {
  if (size)
    snprintf(buf, size, "%u.%u.%u", VK_API_VERSION_MAJOR(v), VK_API_VERSION_MINOR(v),
             VK_API_VERSION_PATCH(v));
  return buf;
}

void kiln_gpu_config_default(kiln_gpu_config *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->log_level = KILN_GPU_LOG_INFO;
  cfg->loader = "libvulkan.so.1";
  cfg->app_name = "kiln";
}

uint64_t kiln_gpu_get_validation_messages(kiln_gpu *gpu) {
  return atomic_load_explicit(&gpu->validation_messages, memory_order_relaxed);
}

uint32_t kiln_gpu_get_device_count(const kiln_gpu *gpu) { return gpu->nphys; }

int kiln_gpu_get_device_info(const kiln_gpu *gpu, uint32_t index, kiln_gpu_device_info *out) {
  memset(out, 0, sizeof(*out));
  if (index >= gpu->nphys) return KILN_EINVAL;
  *out = gpu->info[index];
  return 0;
}

/* ---- the validation layer's messages ------------------------------------------------------ */

static VKAPI_ATTR VkBool32 VKAPI_CALL on_debug_message(
    VkDebugUtilsMessageSeverityFlagBitsEXT severity, VkDebugUtilsMessageTypeFlagsEXT types,
    const VkDebugUtilsMessengerCallbackDataEXT *data, void *arg) {
  kiln_gpu *gpu = arg;
  kiln_gpu_log_level level = KILN_GPU_LOG_DEBUG;
  if (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) level = KILN_GPU_LOG_ERROR;
  else if (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) level = KILN_GPU_LOG_WARN;
  else if (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_INFO_BIT_EXT) level = KILN_GPU_LOG_INFO;
  /* Validation and performance findings at warning or error count; the loader's general chatter
   * (which drivers it skipped) is only logged. */
  bool counts =
      level >= KILN_GPU_LOG_WARN && (types & (VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                                              VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT));
  if (counts) atomic_fetch_add_explicit(&gpu->validation_messages, 1, memory_order_relaxed);
  kiln__log(gpu, level, "vulkan%s: %s", counts ? " validation" : "",
            data && data->pMessage ? data->pMessage : "(no message)");
  return VK_FALSE;
}

static void messenger_info(kiln_gpu *gpu, VkDebugUtilsMessengerCreateInfoEXT *ci) {
  memset(ci, 0, sizeof(*ci));
  ci->sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT;
  ci->messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                        VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
  ci->messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                    VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                    VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
  ci->pfnUserCallback = on_debug_message;
  ci->pUserData = gpu;
}

/* ---- loading ------------------------------------------------------------------------------ */

static int load_loader(kiln_gpu *gpu, const char *path) {
  gpu->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!gpu->lib) {
    kiln__log(gpu, KILN_GPU_LOG_ERROR,
              "cannot load the Vulkan loader %s (%s): install it with "
              "`apt-get install libvulkan1 mesa-vulkan-drivers` (Debian/Ubuntu)",
              path, dlerror());
    return KILN_EUNSUPPORTED;
  }
  /* POSIX allows this cast (dlsym returns function addresses as void *). */
  *(void **)&gpu->gipa = dlsym(gpu->lib, "vkGetInstanceProcAddr");
  if (!gpu->gipa) {
    kiln__log(gpu, KILN_GPU_LOG_ERROR, "%s has no vkGetInstanceProcAddr: not a Vulkan loader",
              path);
    return KILN_EUNSUPPORTED;
  }
#define LOAD(name) gpu->vkg.name = (PFN_vk##name)gpu->gipa(VK_NULL_HANDLE, "vk" #name);
  KILN__VK_GLOBAL_FNS(LOAD)
#undef LOAD
  if (!gpu->vkg.CreateInstance || !gpu->vkg.EnumerateInstanceVersion) {
    kiln__log(gpu, KILN_GPU_LOG_ERROR,
              "the Vulkan loader %s is older than Vulkan 1.1: install a newer libvulkan1", path);
    return KILN_EUNSUPPORTED;
  }
  return 0;
}

static bool has_layer(kiln_gpu *gpu, const char *name) {
  uint32_t n = 0;
  if (gpu->vkg.EnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || n == 0) return false;
  VkLayerProperties *props = calloc(n, sizeof(*props));
  if (!props) return false;
  bool found = false;
  if (gpu->vkg.EnumerateInstanceLayerProperties(&n, props) == VK_SUCCESS)
    for (uint32_t i = 0; i < n && !found; i++) found = strcmp(props[i].layerName, name) == 0;
  free(props);
  return found;
}

static int create_instance(kiln_gpu *gpu, const char *app_name) {
  uint32_t version = 0;
  VkResult r = gpu->vkg.EnumerateInstanceVersion(&version);
  if (r != VK_SUCCESS) return vk_error(gpu, r, "vkEnumerateInstanceVersion");
  if (version < VK_API_VERSION_1_2) {
    char v[32];
    kiln__log(gpu, KILN_GPU_LOG_ERROR,
              "the Vulkan loader supports Vulkan %s; kiln needs 1.2 (timeline semaphores): "
              "install a newer libvulkan1",
              kiln_gpu_version_string(version, v, sizeof(v)));
    return KILN_EUNSUPPORTED;
  }
  gpu->api_version = version >= VK_API_VERSION_1_3 ? VK_API_VERSION_1_3 : VK_API_VERSION_1_2;

  const char *layers[1], *exts[1];
  uint32_t nlayers = 0, nexts = 0;
  VkDebugUtilsMessengerCreateInfoEXT mci;
  messenger_info(gpu, &mci);
  if (gpu->cfg.validation) {
    if (!has_layer(gpu, "VK_LAYER_KHRONOS_validation")) {
      kiln__log(gpu, KILN_GPU_LOG_ERROR,
                "validation asked for, but VK_LAYER_KHRONOS_validation is not installed: "
                "`apt-get install vulkan-validationlayers`");
      return KILN_EUNSUPPORTED;
    }
    layers[nlayers++] = "VK_LAYER_KHRONOS_validation";
    exts[nexts++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
  }
  VkApplicationInfo app = {
      .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
      .pApplicationName = app_name,
      .pEngineName = "kiln",
      .engineVersion = VK_MAKE_API_VERSION(0, 0, 1, 0),
      .apiVersion = gpu->api_version,
  };
  VkInstanceCreateInfo ci = {
      .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
      .pNext = gpu->cfg.validation ? &mci : NULL, /* also reports create/destroy itself */
      .pApplicationInfo = &app,
      .enabledLayerCount = nlayers,
      .ppEnabledLayerNames = layers,
      .enabledExtensionCount = nexts,
      .ppEnabledExtensionNames = exts,
  };
  r = gpu->vkg.CreateInstance(&ci, NULL, &gpu->instance);
  if (r == VK_ERROR_INCOMPATIBLE_DRIVER) {
    kiln__log(gpu, KILN_GPU_LOG_ERROR,
              "no Vulkan driver found: install one (`apt-get install mesa-vulkan-drivers` gives "
              "the CPU device, lavapipe)");
    return KILN_EUNSUPPORTED;
  }
  if (r != VK_SUCCESS) return vk_error(gpu, r, "vkCreateInstance");

#define LOAD(name) gpu->vk.name = (PFN_vk##name)gpu->gipa(gpu->instance, "vk" #name);
  KILN__VK_INSTANCE_FNS(LOAD)
  if (gpu->cfg.validation) {
    KILN__VK_DEBUG_FNS(LOAD)
  }
#undef LOAD
  if (gpu->cfg.validation) {
    if (!gpu->vk.CreateDebugUtilsMessengerEXT) return KILN_EUNSUPPORTED;
    r = gpu->vk.CreateDebugUtilsMessengerEXT(gpu->instance, &mci, NULL, &gpu->messenger);
    if (r != VK_SUCCESS) return vk_error(gpu, r, "vkCreateDebugUtilsMessengerEXT");
  }
  return 0;
}

/* ---- describing physical devices ---------------------------------------------------------- */

static kiln_gpu_type type_of(VkPhysicalDeviceType t) {
  switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return KILN_GPU_TYPE_INTEGRATED;
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return KILN_GPU_TYPE_DISCRETE;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return KILN_GPU_TYPE_VIRTUAL;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return KILN_GPU_TYPE_CPU;
    default: return KILN_GPU_TYPE_OTHER;
  }
}

static bool has_device_ext(kiln_gpu *gpu, VkPhysicalDevice pd, const char *name) {
  uint32_t n = 0;
  if (gpu->vk.EnumerateDeviceExtensionProperties(pd, NULL, &n, NULL) != VK_SUCCESS) return false;
  VkExtensionProperties *props = calloc(n ? n : 1, sizeof(*props));
  if (!props) return false;
  bool found = false;
  if (gpu->vk.EnumerateDeviceExtensionProperties(pd, NULL, &n, props) == VK_SUCCESS)
    for (uint32_t i = 0; i < n && !found; i++) found = strcmp(props[i].extensionName, name) == 0;
  free(props);
  return found;
}

/* The identities a scheduler's visibility list names a GPU by: the device UUID (core in 1.1; for
 * NVIDIA the UUID nvidia-smi prints) and, where the driver has VK_EXT_pci_bus_info (lavapipe has
 * not), the PCI address that orders GPU indices as CUDA_DEVICE_ORDER=PCI_BUS_ID does. Asked of
 * every device of 1.1 or later, usable or not: an unusable GPU still holds its place in the count
 * of indices. */
static void describe_ids(kiln_gpu *gpu, VkPhysicalDevice pd, uint32_t api,
                         kiln_gpu_device_info *d) {
  if (api < VK_API_VERSION_1_1) return;
  VkPhysicalDevicePCIBusInfoPropertiesEXT pci = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PCI_BUS_INFO_PROPERTIES_EXT};
  VkPhysicalDeviceIDProperties ids = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ID_PROPERTIES};
  d->has_pci = has_device_ext(gpu, pd, VK_EXT_PCI_BUS_INFO_EXTENSION_NAME);
  if (d->has_pci) ids.pNext = &pci; /* chained only where supported: the validation layer checks */
  VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
                                    .pNext = &ids};
  gpu->vk.GetPhysicalDeviceProperties2(pd, &p2);
  memcpy(d->device_uuid, ids.deviceUUID, 16);
  memcpy(d->driver_uuid, ids.driverUUID, 16);
  if (d->has_pci) {
    d->pci_domain = pci.pciDomain;
    d->pci_bus = pci.pciBus;
    d->pci_device = pci.pciDevice;
    d->pci_function = pci.pciFunction;
  }
}

static void describe(kiln_gpu *gpu, uint32_t index, kiln_gpu_device_info *d) {
  VkPhysicalDevice pd = gpu->phys[index];
  VkPhysicalDeviceProperties p;
  gpu->vk.GetPhysicalDeviceProperties(pd, &p);
  memset(d, 0, sizeof(*d));
  d->index = index;
  snprintf(d->name, sizeof(d->name), "%s", p.deviceName);
  d->type = type_of(p.deviceType);
  d->vendor_id = p.vendorID;
  d->device_id = p.deviceID;
  d->api_version = p.apiVersion;
  d->driver_version = p.driverVersion;
  d->max_uniform_range = p.limits.maxUniformBufferRange;
  d->max_texels = p.limits.maxTexelBufferElements;

  uint32_t nf = 0;
  gpu->vk.GetPhysicalDeviceQueueFamilyProperties(pd, &nf, NULL);
  VkQueueFamilyProperties qf[KILN_GPU_MAX_FAMILIES];
  if (nf > KILN_GPU_MAX_FAMILIES) {
    /* kiln_gpu_device_info holds KILN_GPU_MAX_FAMILIES; no driver known to us has more */
    kiln__log(gpu, KILN_GPU_LOG_WARN,
              "device %u (%s) has %u queue families; kiln describes and uses the first %d", index,
              p.deviceName, nf, KILN_GPU_MAX_FAMILIES);
    nf = KILN_GPU_MAX_FAMILIES;
  }
  gpu->vk.GetPhysicalDeviceQueueFamilyProperties(pd, &nf, qf);
  bool compute = false;
  d->family_count = nf;
  for (uint32_t i = 0; i < nf; i++) {
    d->families[i].queues = qf[i].queueCount;
    d->families[i].compute = qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT;
    d->families[i].graphics = qf[i].queueFlags & VK_QUEUE_GRAPHICS_BIT;
    d->families[i].transfer = qf[i].queueFlags & VK_QUEUE_TRANSFER_BIT;
    compute = compute || (d->families[i].compute && qf[i].queueCount > 0);
  }
  VkPhysicalDeviceMemoryProperties mp;
  gpu->vk.GetPhysicalDeviceMemoryProperties(pd, &mp);
  _Static_assert(KILN_GPU_MAX_HEAPS >= VK_MAX_MEMORY_HEAPS, "every heap fits the description");
  d->heap_count = mp.memoryHeapCount < KILN_GPU_MAX_HEAPS ? mp.memoryHeapCount : KILN_GPU_MAX_HEAPS;
  for (uint32_t i = 0; i < d->heap_count; i++) {
    d->heaps[i].size = mp.memoryHeaps[i].size;
    d->heaps[i].device_local = mp.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT;
  }

  describe_ids(gpu, pd, p.apiVersion, d);
  if (p.apiVersion < VK_API_VERSION_1_2) {
    snprintf(d->unusable_reason, sizeof(d->unusable_reason), "Vulkan %u.%u < 1.2",
             VK_API_VERSION_MAJOR(p.apiVersion), VK_API_VERSION_MINOR(p.apiVersion));
    return;
  }
  /* 1.2 structures may be chained only now that the device is known to be 1.2. */
  VkPhysicalDeviceDriverProperties drv = {.sType =
                                              VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
  VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
                                    .pNext = &drv};
  gpu->vk.GetPhysicalDeviceProperties2(pd, &p2);
  snprintf(d->driver_name, sizeof(d->driver_name), "%s", drv.driverName);
  snprintf(d->driver_info, sizeof(d->driver_info), "%s", drv.driverInfo);

  VkPhysicalDeviceVulkan12Features f12 = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
  VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                  .pNext = &f12};
  gpu->vk.GetPhysicalDeviceFeatures2(pd, &f2);
  if (!f12.timelineSemaphore)
    snprintf(d->unusable_reason, sizeof(d->unusable_reason), "no timeline semaphores");
  else if (!compute) snprintf(d->unusable_reason, sizeof(d->unusable_reason), "no compute queue");
  else if (!has_device_ext(gpu, pd, VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME))
    snprintf(d->unusable_reason, sizeof(d->unusable_reason), "no VK_KHR_push_descriptor");
  else d->usable = true;
}

static int list_devices(kiln_gpu *gpu) {
  uint32_t n = 0;
  VkResult r = gpu->vk.EnumeratePhysicalDevices(gpu->instance, &n, NULL);
  if (r != VK_SUCCESS) return vk_error(gpu, r, "vkEnumeratePhysicalDevices");
  if (n == 0) {
    kiln__log(gpu, KILN_GPU_LOG_ERROR,
              "Vulkan lists no device: install a driver (`apt-get install mesa-vulkan-drivers` "
              "gives the CPU device, lavapipe)");
    return KILN_EUNSUPPORTED;
  }
  gpu->phys = calloc(n, sizeof(*gpu->phys));
  gpu->info = calloc(n, sizeof(*gpu->info));
  if (!gpu->phys || !gpu->info) return KILN_ENOMEM;
  r = gpu->vk.EnumeratePhysicalDevices(gpu->instance, &n, gpu->phys);
  if (r != VK_SUCCESS && r != VK_INCOMPLETE) return vk_error(gpu, r, "vkEnumeratePhysicalDevices");
  gpu->nphys = n;
  for (uint32_t i = 0; i < n; i++) {
    describe(gpu, i, &gpu->info[i]);
    kiln__log(gpu, KILN_GPU_LOG_DEBUG, "device %u: %s (%s)%s%s", i, gpu->info[i].name,
              kiln_gpu_type_name(gpu->info[i].type),
              gpu->info[i].usable ? "" : ": unusable: ", gpu->info[i].unusable_reason);
  }
  return 0;
}

int kiln_gpu_create(const kiln_gpu_config *cfg, kiln_gpu **out) {
  *out = NULL;
  kiln_gpu_config defaults;
  kiln_gpu_config_default(&defaults);
  if (!cfg) cfg = &defaults;
  kiln_gpu *gpu = calloc(1, sizeof(*gpu));
  if (!gpu) return KILN_ENOMEM;
  gpu->cfg = *cfg;
  const char *loader = cfg->loader ? cfg->loader : defaults.loader;
  const char *app = cfg->app_name ? cfg->app_name : defaults.app_name;
  gpu->cfg.loader = gpu->cfg.app_name = NULL; /* borrowed for this call only */
  atomic_init(&gpu->validation_messages, 0);
  int rc = load_loader(gpu, loader);
  if (!rc) rc = create_instance(gpu, app);
  if (!rc) rc = list_devices(gpu);
  if (rc) {
    kiln_gpu_destroy(gpu);
    return rc;
  }
  *out = gpu;
  return 0;
}

void kiln_gpu_destroy(kiln_gpu *gpu) {
  if (!gpu) return;
  if (gpu->messenger) gpu->vk.DestroyDebugUtilsMessengerEXT(gpu->instance, gpu->messenger, NULL);
  if (gpu->instance) gpu->vk.DestroyInstance(gpu->instance, NULL);
  if (gpu->lib) dlclose(gpu->lib);
  free(gpu->phys);
  free(gpu->info);
  free(gpu);
}
