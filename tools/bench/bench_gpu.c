/* kiln-bench-gpu: what the future bridge costs.
 *
 * 1. Round-trip latency of an empty dispatch (shaders/empty.comp, one workgroup): through kiln
 *    (kiln_gpu_dispatch + kiln_future_result: job record, submit, completion thread, promise)
 *    against a raw loop on a VkDevice of its own (vkQueueSubmit of a pre-recorded command buffer
 *    + vkWaitForFences + vkResetFences). Medians over --reps runs of --iters round trips; the
 *    ratio kiln/raw is the figure of merit (target <= 1.2).
 * 2. Throughput of empty dispatches with 1, 8 and 64 futures in flight (kiln_as_completed keeps
 *    the window full).
 *
 * Usage: kiln-bench-gpu [--device SPEC] [--iters N] [--reps R] [--jobs M]
 * Exit status 1 when something fails. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vulkan/vulkan.h>

#include "kiln/gpu.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof(*v), cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#define CHECK(cond, ...)                   \
  do {                                     \
    if (!(cond)) {                         \
      fprintf(stderr, "kiln-bench-gpu: "); \
      fprintf(stderr, __VA_ARGS__);        \
      fprintf(stderr, "\n");               \
      exit(1);                             \
    }                                      \
  } while (0)

/* ---- the raw Vulkan loop ------------------------------------------------------------------ */

typedef struct raw {
  VkInstance inst;
  VkDevice dev;
  VkQueue queue;
  VkCommandPool pool;
  VkCommandBuffer cb;
  VkFence fence;
  VkPipelineLayout layout;
  VkPipeline pipe;
} raw;

static void raw_open(raw *r, uint32_t index) {
  VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                           .apiVersion = VK_API_VERSION_1_2};
  VkInstanceCreateInfo ici = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                              .pApplicationInfo = &app};
  CHECK(vkCreateInstance(&ici, NULL, &r->inst) == VK_SUCCESS, "vkCreateInstance");
  uint32_t n = 0;
  vkEnumeratePhysicalDevices(r->inst, &n, NULL);
  CHECK(index < n && n <= 16, "no physical device %u", index);
  VkPhysicalDevice pds[16];
  vkEnumeratePhysicalDevices(r->inst, &n, pds);
  uint32_t nf = 16, family = UINT32_MAX;
  VkQueueFamilyProperties qf[16];
  vkGetPhysicalDeviceQueueFamilyProperties(pds[index], &nf, qf);
  for (uint32_t f = 0; f < nf && family == UINT32_MAX; f++)
    if (qf[f].queueFlags & VK_QUEUE_COMPUTE_BIT) family = f;
  CHECK(family != UINT32_MAX, "no compute queue");
  float prio = 1.0f;
  VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                 .queueFamilyIndex = family,
                                 .queueCount = 1,
                                 .pQueuePriorities = &prio};
  VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                            .queueCreateInfoCount = 1,
                            .pQueueCreateInfos = &qci};
  CHECK(vkCreateDevice(pds[index], &dci, NULL, &r->dev) == VK_SUCCESS, "vkCreateDevice");
  vkGetDeviceQueue(r->dev, family, 0, &r->queue);
  VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                 .queueFamilyIndex = family};
  CHECK(vkCreateCommandPool(r->dev, &pci, NULL, &r->pool) == VK_SUCCESS, "pool");
  VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                    .commandPool = r->pool,
                                    .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                    .commandBufferCount = 1};
  CHECK(vkAllocateCommandBuffers(r->dev, &ai, &r->cb) == VK_SUCCESS, "cb");
  VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  CHECK(vkCreateFence(r->dev, &fci, NULL, &r->fence) == VK_SUCCESS, "fence");
  const uint32_t *words;
  size_t size;
  CHECK(kiln_gpu_builtin_spirv("empty", &words, &size) == 0, "no embedded empty shader");
  VkShaderModuleCreateInfo sci = {
      .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, .codeSize = size, .pCode = words};
  VkShaderModule mod;
  CHECK(vkCreateShaderModule(r->dev, &sci, NULL, &mod) == VK_SUCCESS, "module");
  VkPipelineLayoutCreateInfo lci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
  CHECK(vkCreatePipelineLayout(r->dev, &lci, NULL, &r->layout) == VK_SUCCESS, "layout");
  VkComputePipelineCreateInfo cci = {
      .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
      .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                .module = mod,
                .pName = "main"},
      .layout = r->layout};
  CHECK(vkCreateComputePipelines(r->dev, VK_NULL_HANDLE, 1, &cci, NULL, &r->pipe) == VK_SUCCESS,
        "pipeline");
  vkDestroyShaderModule(r->dev, mod, NULL);
  VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  vkBeginCommandBuffer(r->cb, &bi);
  vkCmdBindPipeline(r->cb, VK_PIPELINE_BIND_POINT_COMPUTE, r->pipe);
  vkCmdDispatch(r->cb, 1, 1, 1);
  CHECK(vkEndCommandBuffer(r->cb) == VK_SUCCESS, "record");
}

static double raw_roundtrips(raw *r, int iters) {
  VkSubmitInfo si = {
      .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &r->cb};
  double t0 = now();
  for (int i = 0; i < iters; i++) {
    CHECK(vkQueueSubmit(r->queue, 1, &si, r->fence) == VK_SUCCESS, "vkQueueSubmit");
    CHECK(vkWaitForFences(r->dev, 1, &r->fence, VK_TRUE, UINT64_MAX) == VK_SUCCESS, "wait");
    vkResetFences(r->dev, 1, &r->fence);
  }
  return (now() - t0) / iters;
}

static void raw_close(raw *r) {
  vkDeviceWaitIdle(r->dev);
  vkDestroyPipeline(r->dev, r->pipe, NULL);
  vkDestroyPipelineLayout(r->dev, r->layout, NULL);
  vkDestroyFence(r->dev, r->fence, NULL);
  vkDestroyCommandPool(r->dev, r->pool, NULL);
  vkDestroyDevice(r->dev, NULL);
  vkDestroyInstance(r->inst, NULL);
}

/* ---- kiln --------------------------------------------------------------------------------- */

static double kiln_roundtrips(kiln_gpu_kernel *k, int iters) {
  double t0 = now();
  for (int i = 0; i < iters; i++) {
    kiln_future *f;
    CHECK(kiln_gpu_dispatch(k, NULL, NULL, 1, 1, 1, NULL, 0, &f) == 0, "kiln_gpu_dispatch");
    CHECK(kiln_future_result(f, -1, NULL) == 0, "dispatch failed");
    kiln_future_release(f);
  }
  return (now() - t0) / iters;
}

/* Dispatches `total` empty jobs keeping `window` in flight; returns dispatches per second. */
static double kiln_throughput(kiln_gpu_kernel *k, int total, int window) {
  kiln_completion *c;
  CHECK(kiln_as_completed(NULL, 0, -1, &c) == 0, "as_completed");
  double t0 = now();
  int submitted = 0, done = 0;
  while (done < total) {
    while (submitted < total && submitted - done < window) {
      kiln_future *f;
      CHECK(kiln_gpu_dispatch(k, NULL, NULL, 1, 1, 1, NULL, 0, &f) == 0, "dispatch");
      CHECK(kiln_completion_add(c, f) == 0, "completion_add");
      kiln_future_release(f);
      submitted++;
    }
    kiln_future *f;
    CHECK(kiln_completion_next(c, &f) == 0, "completion_next");
    CHECK(kiln_future_result(f, 0, NULL) == 0, "dispatch failed");
    kiln_future_release(f);
    done++;
  }
  double dt = now() - t0;
  kiln_completion_destroy(c);
  return total / dt;
}

static void on_log(void *arg, kiln_gpu_log_level level, const char *msg) {
  (void)arg;
  if (level >= KILN_GPU_LOG_WARN) fprintf(stderr, "kiln: %s\n", msg);
}

int main(int argc, char **argv) {
  const char *spec = NULL;
  int iters = 200, reps = 5, jobs = 2000;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) spec = argv[++i];
    else if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc) iters = atoi(argv[++i]);
    else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
    else if (strcmp(argv[i], "--jobs") == 0 && i + 1 < argc) jobs = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: kiln-bench-gpu [--device SPEC] [--iters N] [--reps R] [--jobs M]\n");
      return 2;
    }
  }
  CHECK(iters > 0 && reps > 0 && reps <= 100 && jobs > 0, "bad arguments");
  kiln_gpu_config gc;
  kiln_gpu_config_default(&gc);
  gc.log = on_log;
  kiln_gpu *gpu;
  CHECK(kiln_gpu_create(&gc, &gpu) == 0, "kiln_gpu_create");
  uint32_t idx;
  size_t n;
  CHECK(kiln_gpu_select(gpu, spec, &idx, 1, &n) == 0, "no device matches");
  kiln_gpu_device_config dc;
  kiln_gpu_device_config_default(&dc);
  dc.pipeline_cache = false;
  dc.max_lanes = 1; /* the raw loop has one queue too */
  kiln_gpu_device *dev;
  CHECK(kiln_gpu_device_open(gpu, idx, &dc, &dev) == 0, "kiln_gpu_device_open");
  kiln_gpu_kernel_config kc;
  kiln_gpu_kernel_config_default(&kc);
  kc.builtin = "empty";
  kiln_gpu_kernel *k;
  CHECK(kiln_gpu_kernel_create(dev, &kc, &k) == 0, "kernel");
  raw r;
  raw_open(&r, idx);

  kiln_gpu_device_info di;
  kiln_gpu_device_get_info(dev, &di);
  printf("device %u: %s\n", idx, di.name);
  raw_roundtrips(&r, iters / 4 + 1); /* warm-up */
  kiln_roundtrips(k, iters / 4 + 1);
  double tk[100], tr[100];
  for (int i = 0; i < reps; i++) { /* interleaved, so both see the same machine load */
    tr[i] = raw_roundtrips(&r, iters);
    tk[i] = kiln_roundtrips(k, iters);
  }
  double mk = median(tk, reps), mr = median(tr, reps);
  printf("round trip of an empty dispatch (median of %d x %d):\n", reps, iters);
  printf("  raw vkQueueSubmit + vkWaitForFences  %8.1f us\n", mr * 1e6);
  printf("  kiln future (dispatch + result)      %8.1f us\n", mk * 1e6);
  printf("  ratio kiln/raw                       %8.2f\n", mk / mr);
  printf("throughput of empty dispatches (%d jobs):\n", jobs);
  static const int windows[] = {1, 8, 64};
  for (size_t w = 0; w < 3; w++) {
    double best = 0;
    for (int i = 0; i < reps; i++) {
      double t = kiln_throughput(k, jobs, windows[w]);
      if (t > best) best = t;
    }
    printf("  %2d in flight  %10.0f dispatches/s (best of %d)\n", windows[w], best, reps);
  }
  raw_close(&r);
  kiln_gpu_kernel_destroy(k);
  kiln_gpu_device_close(dev);
  kiln_gpu_destroy(gpu);
  return 0;
}
