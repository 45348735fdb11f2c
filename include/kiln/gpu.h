/* kiln/gpu.h: kiln's Vulkan engine for embedders: headless devices, lanes (queues), device
 * buffers, compute kernels, and GPU work as ordinary kiln futures.
 *
 * Shape. A kiln_gpu is one Vulkan instance (libvulkan.so.1 is loaded at run time, so a machine
 * without Vulkan gets an error message, not a program that cannot start). It lists the physical
 * devices; kiln_gpu_device_open() opens one as a kiln_gpu_device (a VkDevice). The same physical
 * device may be opened several times: each open is an independent device with its own queues,
 * memory and completion thread. A few queues (4 by default) of one compute-capable queue family
 * of a device are its "lanes" (one family: kiln's buffers are never shared across families, so
 * they need no ownership transfers); work goes to the first free lane.
 *
 * GPU work is a job: a list of commands (dispatch, copy, upload, download) recorded into one
 * command buffer and submitted once. kiln_gpu_job_submit() returns a kiln_future (sched.h) that
 * completes when the GPU has finished the job, so GPU futures mix with CPU futures in
 * kiln_submit_after(), kiln_wait() and kiln_as_completed(). A job may depend on futures of any
 * kind: it is recorded and submitted when they have all succeeded, and fails with
 * KILN_EDEPENDENCY without running if one fails or is cancelled.
 *
 * Completion. Each submission signals a value of its lane's timeline semaphore. One completion
 * thread per device waits on all lanes at once and completes the futures; their done-callbacks
 * and dependents' launches run in that thread (keep callbacks short; kiln_submit_after()
 * dependents run on their pool).
 *
 * Cancellation. kiln_future_cancel() on a job's future succeeds while the job waits for its
 * dependencies (it is then never recorded); once submitted, the job runs to completion and
 * cancel returns false.
 *
 * Faults. A failed submission or wait (VK_ERROR_DEVICE_LOST or any other error) marks the device
 * lost: every job in flight on it fails with KILN_EDEVICE_LOST and a message naming the device and
 * the failing call; later jobs on it fail the same way. Other devices are unaffected.
 *
 * Errors and logging. Functions return 0 or a negative KILN_E* code (error.h). The library never
 * prints: explanations (which package to install, which Vulkan call failed at which source line,
 * validation-layer messages, "using the CPU device") go to the log callback of kiln_gpu_config.
 *
 * Getters. kiln_<object>_get_<what>: a description or a snapshot is copied into an OUT parameter
 * (kiln_gpu_get_device_info, kiln_gpu_device_get_info, kiln_gpu_device_get_stats); a number or a
 * borrowed handle is returned (kiln_gpu_get_device_count, kiln_gpu_buffer_get_size).
 *
 * Threads. Unless a function says otherwise, every function here may be called from any thread,
 * concurrently, including from inside kiln pool tasks. Handles must be destroyed by one thread,
 * after every other use has finished. */
#ifndef KILN_GPU_H
#define KILN_GPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/error.h"
#include "kiln/sched.h"
#include "kiln/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_gpu kiln_gpu;                   /* a Vulkan instance and its physical devices */
typedef struct kiln_gpu_device kiln_gpu_device;     /* one opened VkDevice with its lanes */
typedef struct kiln_gpu_buffer kiln_gpu_buffer;     /* a device-local storage buffer */
typedef struct kiln_gpu_kernel kiln_gpu_kernel;     /* a compute pipeline */
typedef struct kiln_gpu_job kiln_gpu_job;           /* commands recorded into one submission */
typedef struct kiln_gpu_readback kiln_gpu_readback; /* mapped host memory that downloads land in */

/* ---- logging ------------------------------------------------------------------------------- */

typedef enum {
  KILN_GPU_LOG_DEBUG,
  KILN_GPU_LOG_INFO,
  KILN_GPU_LOG_WARN,
  KILN_GPU_LOG_ERROR
} kiln_gpu_log_level;

/* Receives the engine's messages. Called from any thread (also the driver's and the validation
 * layer's threads), possibly concurrently: it must be thread-safe and must not call back into
 * this kiln_gpu. msg is borrowed for the call. */
typedef void (*kiln_gpu_log_fn)(void *arg, kiln_gpu_log_level level, const char *msg);

/* ---- the instance -------------------------------------------------------------------------- */

typedef struct kiln_gpu_config {
  kiln_gpu_log_fn log; /* NULL: messages are dropped */
  void *log_arg;
  kiln_gpu_log_level log_level; /* messages below this level are not delivered. Default INFO */
  bool validation;              /* enable VK_LAYER_KHRONOS_validation and count its messages
                               (kiln_gpu_get_validation_messages); KILN_EUNSUPPORTED if the layer is
                               not installed (package vulkan-validationlayers). Default false */
  const char *loader;           /* the Vulkan loader to dlopen. Default "libvulkan.so.1" */
  const char *app_name;         /* VkApplicationInfo.pApplicationName. Default "kiln" */
} kiln_gpu_config;

/* Fills *cfg with the defaults. */
KILN_API void kiln_gpu_config_default(kiln_gpu_config *cfg);

/* Loads Vulkan, creates a headless instance (no surface extensions) and lists the physical
 * devices. cfg NULL means the defaults. *out is NULL on failure.
 * KILN_EUNSUPPORTED: no Vulkan loader (the log says: install libvulkan1), no driver or no device
 * (install mesa-vulkan-drivers for the CPU device), instance below Vulkan 1.2, or validation asked
 * for and not installed. KILN_EVULKAN: another Vulkan failure (logged with call, file and line).
 * KILN_ENOMEM. Blocks while the driver starts (milliseconds); fine inside a pool task. */
KILN_API int kiln_gpu_create(const kiln_gpu_config *cfg, kiln_gpu **out);

/* Destroys the instance. Every device opened on it must be closed first. NULL is a no-op. */
KILN_API void kiln_gpu_destroy(kiln_gpu *gpu);

/* Number of warnings and errors the validation layer reported so far (0 when validation is off).
 * Tests assert that it is 0 before kiln_gpu_destroy. */
KILN_API uint64_t kiln_gpu_get_validation_messages(kiln_gpu *gpu);

/* ---- physical devices ---------------------------------------------------------------------- */

typedef enum {
  KILN_GPU_TYPE_OTHER,
  KILN_GPU_TYPE_INTEGRATED,
  KILN_GPU_TYPE_DISCRETE,
  KILN_GPU_TYPE_VIRTUAL,
  KILN_GPU_TYPE_CPU /* a software rasteriser: Mesa's lavapipe */
} kiln_gpu_type;

/* "other", "integrated", "discrete", "virtual", "cpu"; "unknown" otherwise. Static string. */
KILN_API const char *kiln_gpu_type_name(kiln_gpu_type type);

enum { KILN_GPU_MAX_FAMILIES = 16, KILN_GPU_MAX_HEAPS = 16 };

typedef struct kiln_gpu_queue_family {
  uint32_t queues; /* number of queues */
  bool compute, graphics, transfer;
} kiln_gpu_queue_family;

typedef struct kiln_gpu_heap {
  uint64_t size; /* bytes */
  bool device_local;
} kiln_gpu_heap;

typedef struct kiln_gpu_device_info {
  uint32_t index; /* position in the instance's list */
  char name[256]; /* VkPhysicalDeviceProperties.deviceName */
  kiln_gpu_type type;
  uint32_t vendor_id, device_id;
  uint32_t api_version;    /* VK_MAKE_API_VERSION encoding; see kiln_gpu_version_string */
  uint32_t driver_version; /* vendor-specific encoding */
  char driver_name[256];   /* VkPhysicalDeviceDriverProperties, e.g. "llvmpipe" */
  char driver_info[256];   /* e.g. "Mesa 22.3.6 (LLVM 15.0.6)" */
  uint8_t device_uuid[16]; /* VkPhysicalDeviceIDProperties.deviceUUID: for NVIDIA the GPU UUID
                              nvidia-smi prints (kiln_gpu_uuid_string); zero below Vulkan 1.1 */
  uint8_t driver_uuid[16];
  bool usable;               /* Vulkan >= 1.2, timeline semaphores, a compute queue and
                                VK_KHR_push_descriptor: kiln can open it */
  char unusable_reason[128]; /* why not, when !usable */
  uint32_t family_count;
  kiln_gpu_queue_family families[KILN_GPU_MAX_FAMILIES];
  uint32_t heap_count;
  kiln_gpu_heap heaps[KILN_GPU_MAX_HEAPS];
  uint32_t max_uniform_range; /* maxUniformBufferRange: the largest uniform-buffer binding */
  uint32_t max_texels;        /* maxTexelBufferElements: the longest texel-buffer binding */
  bool has_pci; /* the driver has VK_EXT_pci_bus_info (lavapipe has not): the address below is
                   valid, and orders GPU indices in visibility lists (kiln_gpu_visible) */
  uint32_t pci_domain, pci_bus, pci_device, pci_function; /* "DDDD:BB:DD.F" as lspci prints */
} kiln_gpu_device_info;

/* Number of physical devices the instance lists (unusable ones included). */
KILN_API uint32_t kiln_gpu_get_device_count(const kiln_gpu *gpu);

/* Copies the description of physical device `index` into *out (zeroed first). KILN_EINVAL if
 * index is out of range. */
KILN_API int kiln_gpu_get_device_info(const kiln_gpu *gpu, uint32_t index,
                                      kiln_gpu_device_info *out);

/* Writes "MAJOR.MINOR.PATCH" of a Vulkan API version into buf (always NUL-terminated); returns
 * buf. */
KILN_API char *kiln_gpu_version_string(uint32_t api_version, char *buf, size_t size);

/* Writes a device UUID as nvidia-smi prints a GPU's: "GPU-" and 8-4-4-4-12 lowercase hex digits,
 * into buf (always NUL-terminated; 41 bytes hold it all); returns buf. */
KILN_API char *kiln_gpu_uuid_string(const uint8_t uuid[16], char *buf, size_t size);

/* Chooses devices. spec is a comma-separated list of:
 *   NULL, "" or "auto"  the best usable device: discrete, then integrated, virtual, other, and
 *                       the CPU device only when there is nothing else (logged at INFO);
 *   "all"               every usable GPU; the CPU device only when there is no GPU;
 *   "gpu"               every usable GPU, never the CPU device (see kiln_gpu_select_visible);
 *   "discrete", "integrated", "virtual", "cpu", "other"   every usable device of that type;
 *   a number            that device index;
 *   any other word      every usable device whose name contains it (case-insensitive).
 * Writes up to cap distinct indices to indices[] in order of preference and their number to *n.
 * KILN_EINVAL when the spec is malformed or matches no usable device (logged at ERROR with the
 * list of devices), or when it matches more than cap. */
KILN_API int kiln_gpu_select(kiln_gpu *gpu, const char *spec, uint32_t *indices, size_t cap,
                             size_t *n);

/* The GPUs a scheduler's visibility list leaves to this process, for kiln_gpu_select_visible.
 * list is the value of one of the variables through which schedulers and container runtimes hand
 * out GPUs (CUDA_VISIBLE_DEVICES, which Slurm's gres sets; NVIDIA_VISIBLE_DEVICES;
 * ROCR_VISIBLE_DEVICES, HIP_VISIBLE_DEVICES; kiln's own KILN_VISIBLE_DEVICES): comma-separated
 * entries (spaces around them ignored), each
 *   an index     the index-th GPU: GPUs only (CPU devices such as lavapipe are not counted), of
 *                vendor vendor_id when it is not 0 (0x10de for the CUDA and NVIDIA variables,
 *                0x1002 for the ROCm and HIP ones: CUDA counts only NVIDIA's GPUs), unusable ones
 *                included, ordered by PCI address (domain, bus, device, function) as CUDA does with
 *                CUDA_DEVICE_ORDER=PCI_BUS_ID and nvidia-smi does; in Vulkan's order instead when
 *                a GPU counted has no PCI address (no VK_EXT_pci_bus_info);
 *   a UUID       the GPU whose device_uuid it is (any vendor), written as nvidia-smi prints it
 *                ("GPU-8a7f0c3e-...") or without "GPU-", hyphens anywhere or nowhere, any case;
 *                a prefix of at least one hex digit names the one GPU whose UUID begins with it.
 *                (ROCm's "GPU-" ids are not Vulkan UUIDs: name AMD GPUs by index.)
 * The whole list may also be "all" (every GPU, any vendor), or "", "none", "void" or
 * "NoDevFiles" (no GPU). As CUDA does, an entry that names no GPU here ends the list: it and the
 * entries after it are ignored, with a warning in the log (at INFO for a negative index: "-1" is
 * the usual way to hide every GPU). An entry names no GPU when it is an index past the GPUs
 * counted, a negative index, a UUID (prefix) that matches no GPU or more than one, a MIG instance
 * ("MIG-..."; Vulkan has no MIG devices), or empty. A GPU named twice counts once.
 * Writes the visible GPUs' device indices to indices[], in the order of the list (the order CUDA
 * numbers them in), and their number to *n. list NULL is "all".
 * KILN_EINVAL when the list is malformed (an entry that is neither an index nor a UUID, e.g.
 * "gpu0", or a UUID of more than 32 hex digits) or names more than cap GPUs; err (may be NULL)
 * then says why, quoting the list, with column the 1-based byte offset of the entry at fault;
 * it is zeroed on success. Reads only the descriptions taken at kiln_gpu_create. */
KILN_API int kiln_gpu_visible(const kiln_gpu *gpu, const char *list, uint32_t vendor_id,
                              uint32_t *indices, size_t cap, size_t *n, kiln_error_detail *err);

/* kiln_gpu_select within a visible set. visible[0..nvisible) are device indices (from
 * kiln_gpu_visible); visible NULL means every device, as kiln_gpu_select (a non-NULL visible with
 * nvisible 0 means no GPU is visible). GPUs not in visible[] are hidden from every word of spec;
 * CPU devices are never hidden (no scheduler hands them out), so "auto" and "all" still fall
 * back to lavapipe when no GPU is visible. With visible given, a number k in spec is the k-th
 * visible GPU (visible[k]), as CUDA renumbers the devices a list leaves, and ties in preference
 * go to the order of visible[]. One more word than kiln_gpu_select documents applies to both:
 *   "gpu"               every usable (visible) device that is not a CPU device: fails when there
 *                       is none, never falls back to lavapipe.
 * Returns 0; KILN_EINVAL when spec is malformed (a word that starts with a digit and is not a
 * number) or matches more than cap devices; KILN_EUNSUPPORTED when a word matches no usable
 * (visible) device, e.g. "gpu" where only lavapipe is present. On failure err (may be NULL) says
 * why, naming the word; nothing is logged at ERROR (kiln_gpu_select logs). The CPU-device note
 * is logged at INFO as by kiln_gpu_select. */
KILN_API int kiln_gpu_select_visible(kiln_gpu *gpu, const char *spec, const uint32_t *visible,
                                     size_t nvisible, uint32_t *indices, size_t cap, size_t *n,
                                     kiln_error_detail *err);

/* ---- devices ------------------------------------------------------------------------------- */

typedef struct kiln_gpu_device_config {
  uint32_t max_lanes;       /* use at most this many queues, all of one family: the compute
                                family with the most queues. 0: at most 4 */
  uint64_t block_size;      /* bytes of each VkDeviceMemory block the sub-allocator carves
                                buffers and staging from. Default 32 MiB */
  bool pipeline_cache;      /* load and save a VkPipelineCache under $XDG_CACHE_HOME/kiln (or
                                ~/.cache/kiln), keyed by device and driver UUID. Default true */
  const char *cache_dir;    /* overrides that folder (tests). Default NULL */
  uint64_t fail_submission; /* fault injection for tests: the Nth submission (1-based) of this
                                device reports VK_ERROR_DEVICE_LOST instead of being submitted.
                                0 (default): off */
} kiln_gpu_device_config;

/* Fills *cfg with the defaults. */
KILN_API void kiln_gpu_device_config_default(kiln_gpu_device_config *cfg);

/* Opens physical device `index` (see kiln_gpu_select) as a new VkDevice with up to
 * cfg->max_lanes queues of one compute family as lanes, and starts its completion thread. cfg NULL means the defaults. *out NULL on failure.
 * KILN_EINVAL: index out of range; KILN_EUNSUPPORTED: the device is not usable (logged);
 * KILN_EVULKAN, KILN_ENOMEM. Opening the CPU device logs a note at INFO. */
KILN_API int kiln_gpu_device_open(kiln_gpu *gpu, uint32_t index, const kiln_gpu_device_config *cfg,
                                  kiln_gpu_device **out);

/* Waits for every job of the device to finish (also jobs still waiting for dependencies: cancel
 * their futures first if those may never complete), stops the completion thread, saves the
 * pipeline cache and destroys the device. Buffers and kernels must be destroyed first (any left
 * are freed with a warning in the log). Must not be called from the device's own completion
 * thread (its done-callbacks). From inside a pool task it blocks the worker (it does not run
 * other tasks). NULL is a no-op. */
KILN_API void kiln_gpu_device_close(kiln_gpu_device *dev);

/* Copies the description of the device's physical device into *out. */
KILN_API void kiln_gpu_device_get_info(const kiln_gpu_device *dev, kiln_gpu_device_info *out);

/* True once the device is lost (see Faults above). */
KILN_API bool kiln_gpu_device_lost(kiln_gpu_device *dev);

typedef struct kiln_gpu_device_stats {
  uint32_t lanes;                 /* queues in use */
  uint64_t submitted;             /* submissions accepted by vkQueueSubmit */
  uint64_t completed;             /* jobs completed successfully */
  uint64_t failed;                /* jobs failed (device loss, dependency failure) */
  uint64_t in_flight;             /* submitted, not yet completed */
  uint64_t memory_allocations;    /* vkAllocateMemory calls so far */
  uint64_t memory_blocks;         /* VkDeviceMemory blocks alive now */
  uint64_t pipeline_cache_loaded; /* bytes of pipeline cache data loaded at open (0: none) */
  uint64_t pipelines_created;
  uint64_t pipeline_cache_hits; /* pipelines the driver reported as found in the cache
                                      (VK_EXT_pipeline_creation_feedback) */
  uint64_t buffer_bytes; /* bytes of the device buffers alive now (their sizes as created, not
                            the blocks that hold them); last, so the fields before keep their
                            offsets */
} kiln_gpu_device_stats;

/* Copies a snapshot of the device's counters into *out. */
KILN_API void kiln_gpu_device_get_stats(kiln_gpu_device *dev, kiln_gpu_device_stats *out);

/* Among devs[0..n) (any number, n <= INT_MAX), the index of the device that is not lost and has
 * the fewest jobs in flight (the first on ties), or -1 when all are lost. For spreading work over
 * several devices. */
KILN_API int kiln_gpu_device_pick(kiln_gpu_device *const *devs, size_t n);

/* ---- buffers ------------------------------------------------------------------------------- */

/* Creates a device-local buffer of size bytes (> 0), bindable as a storage, uniform or (when size
 * is a whole number of its texels, 16-byte RGBA32UI or 4-byte R32UI, at most
 * maxTexelBufferElements; each view is made by the first dispatch that needs it) uniform texel
 * buffer (kiln_gpu_kernel_config), sub-allocated from
 * the device's memory blocks (a new block is allocated only when none has room; a buffer larger
 * than a block gets its own). Its contents are undefined until written. KILN_EINVAL, KILN_ENOMEM,
 * KILN_ESHUTDOWN (device closing), KILN_EDEVICE_LOST, KILN_EVULKAN. */
KILN_API int kiln_gpu_buffer_create(kiln_gpu_device *dev, uint64_t size, kiln_gpu_buffer **out);

/* Frees the buffer. The caller must make sure no job that uses it is still pending (wait for
 * their futures). NULL is a no-op. */
KILN_API void kiln_gpu_buffer_destroy(kiln_gpu_buffer *buf);

/* The buffer's size in bytes, and the device it lives on (borrowed). */
KILN_API uint64_t kiln_gpu_buffer_get_size(const kiln_gpu_buffer *buf);
KILN_API kiln_gpu_device *kiln_gpu_buffer_get_device(const kiln_gpu_buffer *buf);

/* Creates size bytes (> 0) of host-visible memory on dev, mapped for as long as it lives, for
 * downloads that the host reads in place (kiln_gpu_job_download_into): nothing is copied when the
 * job completes, so the device's completion thread is not held up by read-backs, and whoever
 * waits for the job's future reads the bytes where the GPU put them. Host-cached memory where the
 * device has it. Sub-allocated from the device's staging blocks; keep one and reuse it for job
 * after job. KILN_EINVAL, KILN_ENOMEM, KILN_ESHUTDOWN (device closing), KILN_EDEVICE_LOST,
 * KILN_EVULKAN. */
KILN_API int kiln_gpu_readback_create(kiln_gpu_device *dev, uint64_t size, kiln_gpu_readback **out);

/* Frees it: no job that downloads into it may be pending, and it must go before its device is
 * closed. NULL is a no-op. */
KILN_API void kiln_gpu_readback_destroy(kiln_gpu_readback *rb);

/* Its bytes (borrowed: valid until kiln_gpu_readback_destroy): what a job downloaded into it is
 * there once that job's future is done, for any thread that has seen the future done (waited on
 * it, or runs after it as a dependent or done-callback). Its size in bytes. */
KILN_API const void *kiln_gpu_readback_data(const kiln_gpu_readback *rb);
KILN_API uint64_t kiln_gpu_readback_get_size(const kiln_gpu_readback *rb);

/* ---- kernels ------------------------------------------------------------------------------- */

typedef struct kiln_gpu_kernel_config {
  const char *builtin;      /* name of a shader embedded in the library (shaders/<name>.comp:
                                "hash", "iadd", "empty"), or NULL to use glsl or spirv below */
  const char *glsl;         /* GLSL compute shader source, compiled now with glslang (see
                                kiln_gpu_compile_glsl); compile errors: KILN_EPARSE, logged with
                                their lines. Borrowed for the call */
  const char *glsl_name;    /* the file name used in those messages. Default "shader" */
  const uint32_t *spirv;    /* SPIR-V words (borrowed for the call) */
  size_t spirv_size;        /* in bytes, a multiple of 4 */
  const char *entry;        /* entry point. Default "main" */
  uint32_t buffers;         /* buffers at set 0, bindings 0..buffers-1 (<= 32): storage buffers */
  uint32_t push_size;       /* bytes of push constants, a multiple of 4, <= 128 */
  uint32_t uniform_buffers; /* bit i set: binding i is a uniform buffer instead (a std140 block,
                                its buffer at most the device's maxUniformBufferRange bytes).
                                Default 0 */
  uint32_t texel_buffers;   /* bit i set: binding i is a uniform texel buffer of RGBA32_UINT
                                texels instead (GLSL usamplerBuffer, texelFetch): its buffer's
                                size a multiple of 16, at most the device's
                                maxTexelBufferElements texels. Default 0 */
  uint32_t word_texel_buffers; /* bit i set: binding i is a uniform texel buffer of R32_UINT
                                   texels (one 32-bit word each: usamplerBuffer, texelFetch(...).x)
                                   instead: its buffer's size a multiple of 4, at most
                                   maxTexelBufferElements words. Default 0 */
} kiln_gpu_kernel_config;

KILN_API void kiln_gpu_kernel_config_default(kiln_gpu_kernel_config *cfg);

/* Creates a compute pipeline on dev (through the device's pipeline cache). KILN_EINVAL for a bad
 * config or an unknown builtin name (logged), KILN_EVULKAN when the driver rejects the SPIR-V
 * (logged), KILN_ENOMEM, KILN_ESHUTDOWN, KILN_EDEVICE_LOST. Blocks while the driver compiles
 * (lavapipe: tens of milliseconds). */
KILN_API int kiln_gpu_kernel_create(kiln_gpu_device *dev, const kiln_gpu_kernel_config *cfg,
                                    kiln_gpu_kernel **out);

/* Frees the kernel; no pending job may use it. NULL is a no-op. */
KILN_API void kiln_gpu_kernel_destroy(kiln_gpu_kernel *k);

/* Compiles a GLSL compute shader to SPIR-V (Vulkan 1.2, SPIR-V 1.5) with glslang's C API.
 * name labels messages (NULL: "shader"). On success *words is malloc'd SPIR-V (free() it) and
 * *size its length in bytes. KILN_EPARSE when the source does not compile: *message then holds
 * one line per error, "<name>:<line>: error: <text>". On success *message holds the warnings, or
 * NULL. *message is malloc'd (free() it); message may be NULL. KILN_EINVAL (source NULL),
 * KILN_ENOMEM. Needs no kiln_gpu; any thread; blocks while compiling (milliseconds), fine inside
 * a pool task. */
KILN_API int kiln_gpu_compile_glsl(const char *source, const char *name, uint32_t **words,
                                   size_t *size, char **message);

/* Names of the embedded shaders: *n of them, static strings. */
KILN_API const char *const *kiln_gpu_builtin_names(size_t *n);

/* The SPIR-V of embedded shader `name`: *words (static, never freed) and *size in bytes.
 * KILN_EINVAL for an unknown name. */
KILN_API int kiln_gpu_builtin_spirv(const char *name, const uint32_t **words, size_t *size);

/* ---- jobs ---------------------------------------------------------------------------------- */

/* Starts an empty job on dev. The job is owned by the caller until kiln_gpu_job_submit() or
 * kiln_gpu_job_discard(). Commands run in the order added, each after the previous one has
 * finished writing (a full memory barrier between commands). A job is used by one thread at a
 * time. KILN_ESHUTDOWN (device closing), KILN_EDEVICE_LOST, KILN_ENOMEM. */
KILN_API int kiln_gpu_job_create(kiln_gpu_device *dev, kiln_gpu_job **out);

/* Adds a dispatch of k over groups_x * groups_y * groups_z workgroups with buffers[0..k's buffer
 * count) bound in order and k's push constants read from push (copied now; may be NULL when the
 * kernel has none). Buffers are borrowed: they must live until the job's future is done.
 * KILN_EINVAL: a buffer or the kernel belongs to another device, or a group count is 0. */
KILN_API int kiln_gpu_job_dispatch(kiln_gpu_job *job, kiln_gpu_kernel *k,
                                   kiln_gpu_buffer *const *buffers, const void *push,
                                   uint32_t groups_x, uint32_t groups_y, uint32_t groups_z);

/* Adds a copy of size bytes between buffers of the job's device. KILN_EINVAL out of range. */
KILN_API int kiln_gpu_job_copy(kiln_gpu_job *job, kiln_gpu_buffer *src, uint64_t src_offset,
                               kiln_gpu_buffer *dst, uint64_t dst_offset, uint64_t size);

/* Adds a write of data[0..size) into dst at offset. data is copied into host-visible staging
 * memory now, so the caller may reuse it at once. KILN_EINVAL out of range, KILN_ENOMEM. */
KILN_API int kiln_gpu_job_upload(kiln_gpu_job *job, kiln_gpu_buffer *dst, uint64_t offset,
                                 const void *data, uint64_t size);

/* Like kiln_gpu_job_upload, but data is read when the job is launched, after its dependencies
 * have succeeded (a CPU task that produces the data can be one of them). data is borrowed: it
 * must stay valid and unchanged from the job's launch until its future is done (or until the
 * future is cancelled or fails). */
KILN_API int kiln_gpu_job_upload_deferred(kiln_gpu_job *job, kiln_gpu_buffer *dst, uint64_t offset,
                                          const void *data, uint64_t size);

/* Adds a read of src[offset, offset+size). When the job completes, the bytes are copied to dst if
 * dst is not NULL (dst must stay valid until the future is done), else into memory the job's
 * future owns and returns as its value (kiln_future_result; freed with the future). At most one
 * download with dst NULL per job (else KILN_EINVAL). */
KILN_API int kiln_gpu_job_download(kiln_gpu_job *job, kiln_gpu_buffer *src, uint64_t offset,
                                   uint64_t size, void *dst);

/* Adds a copy of src[offset, offset+size) into dst[dst_offset, dst_offset+size), which the host
 * reads in place once the job's future is done (kiln_gpu_readback_data). dst is borrowed: it must
 * live until the future is done, and no other pending job may write the same bytes. KILN_EINVAL:
 * out of range, or src or dst on another device. */
KILN_API int kiln_gpu_job_download_into(kiln_gpu_job *job, kiln_gpu_buffer *src, uint64_t offset,
                                        uint64_t size, kiln_gpu_readback *dst, uint64_t dst_offset);

/* Submits the job once every future in deps[0..ndeps) has succeeded (at once when ndeps is 0).
 * The job is consumed, also on failure. *out: a future (one reference for the caller) that
 * completes when the GPU has finished; its value is the download buffer described above, or
 * NULL. It fails with KILN_EDEPENDENCY (a dependency failed or was cancelled; message names it),
 * KILN_EDEVICE_LOST, or the error of a command added earlier (commands that failed to be added
 * make the job fail here, with that code). The caller keeps its references to deps. Does not
 * wait for the GPU, except when this very submission finds the device lost: then it waits (at
 * most 10 s) until the device's queues have stopped, so that no failed future's work still runs.
 * Returns 0 once *out exists (every later failure is reported through the future), or
 * KILN_ENOMEM when no future could be made (the job is discarded). */
KILN_API int kiln_gpu_job_submit(kiln_gpu_job *job, kiln_future *const *deps, size_t ndeps,
                                 kiln_future **out);

/* Frees a job that will not be submitted. NULL is a no-op. */
KILN_API void kiln_gpu_job_discard(kiln_gpu_job *job);

/* ---- one-command conveniences: each is create + one command + submit --------------------- */

KILN_API int kiln_gpu_dispatch(kiln_gpu_kernel *k, kiln_gpu_buffer *const *buffers,
                               const void *push, uint32_t groups_x, uint32_t groups_y,
                               uint32_t groups_z, kiln_future *const *deps, size_t ndeps,
                               kiln_future **out);
KILN_API int kiln_gpu_upload(kiln_gpu_buffer *dst, uint64_t offset, const void *data, uint64_t size,
                             kiln_future *const *deps, size_t ndeps, kiln_future **out);
/* The future's value is the bytes read (owned by the future). */
KILN_API int kiln_gpu_download(kiln_gpu_buffer *src, uint64_t offset, uint64_t size,
                               kiln_future *const *deps, size_t ndeps, kiln_future **out);

#ifdef __cplusplus
}
#endif
#endif /* KILN_GPU_H */
