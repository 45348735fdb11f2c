/* gpu_internal.h: the private structures of engine/gpu/, shared by its files (never installed).
 *
 * Files, one object each:
 *   instance.c        dlopen of libvulkan, the instance, describing physical devices, logging,
 *                     vk_error
 *   select.c          device selection: visibility lists (kiln_gpu_visible), kiln_gpu_select
 *                     (ranking, specs), kiln_gpu_device_pick
 *   device.c          opening a VkDevice with its lanes, its statistics, closing it
 *   memory.c          the sub-allocator, device buffers, staging
 *   kernel.c          compute pipelines, the embedded shaders
 *   pipeline_cache.c  the VkPipelineCache on disk
 *   glsl.c            GLSL compiled at run time (glslang)
 *   gpu_job.c         jobs: commands, recording, dependencies; hands a launched job to the bridge
 *   bridge.c          submission to lanes, the completion thread, device loss
 * A job moves one way: gpu_job.c -> kiln__bridge_submit -> bridge.c, and comes back only
 * through its kiln__submission_ops (see bridge.c for the call graph).
 *
 * Lock order (never take an earlier lock while holding a later one):
 *   dev->mu  ->  lane->mu  ->  alloc->mu
 * No engine lock is held while a kiln promise is completed (that runs user callbacks, which may
 * submit more work to any device). */
#ifndef KILN_GPU_INTERNAL_H
#define KILN_GPU_INTERNAL_H

#define VK_NO_PROTOTYPES
#include <vulkan/vulkan.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base.h"

#include "kiln/gpu.h"

/* ---- Vulkan entry points (loaded at run time: no link dependency on the loader) ------------ */

#define KILN__VK_GLOBAL_FNS(X) \
  X(CreateInstance)            \
  X(EnumerateInstanceVersion)  \
  X(EnumerateInstanceLayerProperties)

#define KILN__VK_INSTANCE_FNS(X)            \
  X(DestroyInstance)                        \
  X(EnumeratePhysicalDevices)               \
  X(GetPhysicalDeviceProperties)            \
  X(GetPhysicalDeviceProperties2)           \
  X(GetPhysicalDeviceFeatures2)             \
  X(GetPhysicalDeviceQueueFamilyProperties) \
  X(GetPhysicalDeviceMemoryProperties)      \
  X(EnumerateDeviceExtensionProperties)     \
  X(CreateDevice)                           \
  X(GetDeviceProcAddr)

#define KILN__VK_DEBUG_FNS(X)     \
  X(CreateDebugUtilsMessengerEXT) \
  X(DestroyDebugUtilsMessengerEXT)

#define KILN__VK_DEVICE_FNS(X)   \
  X(DestroyDevice)               \
  X(GetDeviceQueue)              \
  X(DeviceWaitIdle)              \
  X(CreateCommandPool)           \
  X(DestroyCommandPool)          \
  X(AllocateCommandBuffers)      \
  X(FreeCommandBuffers)          \
  X(ResetCommandBuffer)          \
  X(BeginCommandBuffer)          \
  X(EndCommandBuffer)            \
  X(QueueSubmit)                 \
  X(CreateSemaphore)             \
  X(DestroySemaphore)            \
  X(WaitSemaphores)              \
  X(SignalSemaphore)             \
  X(GetSemaphoreCounterValue)    \
  X(AllocateMemory)              \
  X(FreeMemory)                  \
  X(MapMemory)                   \
  X(UnmapMemory)                 \
  X(CreateBuffer)                \
  X(DestroyBuffer)               \
  X(CreateBufferView)            \
  X(DestroyBufferView)           \
  X(BindBufferMemory)            \
  X(GetBufferMemoryRequirements) \
  X(CmdCopyBuffer)               \
  X(CmdPipelineBarrier)          \
  X(CmdBindPipeline)             \
  X(CmdPushConstants)            \
  X(CmdPushDescriptorSetKHR)     \
  X(CmdDispatch)                 \
  X(CreateShaderModule)          \
  X(DestroyShaderModule)         \
  X(CreateDescriptorSetLayout)   \
  X(DestroyDescriptorSetLayout)  \
  X(CreatePipelineLayout)        \
  X(DestroyPipelineLayout)       \
  X(CreateComputePipelines)      \
  X(DestroyPipeline)             \
  X(CreatePipelineCache)         \
  X(DestroyPipelineCache)        \
  X(GetPipelineCacheData)

#define KILN__VK_FIELD(name) PFN_vk##name name;
typedef struct kiln__vk_global {
  KILN__VK_GLOBAL_FNS(KILN__VK_FIELD)
} kiln__vk_global;
typedef struct kiln__vk_instance {
  KILN__VK_INSTANCE_FNS(KILN__VK_FIELD)
  KILN__VK_DEBUG_FNS(KILN__VK_FIELD)
} kiln__vk_instance;
typedef struct kiln__vk_device {
  KILN__VK_DEVICE_FNS(KILN__VK_FIELD)
} kiln__vk_device;
#undef KILN__VK_FIELD

/* ---- the instance (instance.c) --------------------------------------------------------------------------- */

struct kiln_gpu {
  kiln_gpu_config cfg; /* strings in it are not kept: loader/app_name cleared */
  void *lib;           /* dlopen handle of the loader */
  PFN_vkGetInstanceProcAddr gipa;
  kiln__vk_global vkg;
  kiln__vk_instance vk;
  VkInstance instance;
  uint32_t api_version; /* the instance's */
  VkDebugUtilsMessengerEXT messenger;
  _Atomic uint64_t validation_messages; /* relaxed: a counter read at teardown */
  uint32_t nphys;
  VkPhysicalDevice *phys;
  kiln_gpu_device_info *info;
};

/* Logs a formatted message through cfg.log (nothing when NULL or below cfg.log_level). */
void kiln__log(const kiln_gpu *gpu, kiln_gpu_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* "VK_ERROR_DEVICE_LOST" etc. Static string. */
const char *kiln__vk_result_name(VkResult r);

/* The KILN_E* code for a failed VkResult. */
int kiln__vk_code(VkResult r);

/* vk_error: logs "<file>:<line>: <call> failed: <VkResult>" at ERROR and returns the KILN_E* code
 * (KILN_EDEVICE_LOST, KILN_ENOMEM, KILN_EVULKAN). Every failing Vulkan call goes through it, so
 * the log names the exact call site (STYLE: Mesa's vk_error). */
#define vk_error(gpu, result, call) kiln__vk_fail((gpu), (result), (call), __FILE__, __LINE__)
int kiln__vk_fail(const kiln_gpu *gpu, VkResult r, const char *call, const char *file, int line);

/* ---- memory (memory.c) ----------------------------------------------------------------------- */

typedef struct kiln__range {
  VkDeviceSize offset, size;
  struct kiln__range *next;
} kiln__range;

/* A VkDeviceMemory block. Free ranges are kept sorted by offset and coalesced on free.
 * Staging blocks are host-visible, persistently mapped, and carry one VkBuffer over the whole
 * block, so a staging allocation is (block->buffer, offset). */
typedef struct kiln__block {
  VkDeviceMemory memory;
  VkDeviceSize size;
  uint32_t type;
  bool dedicated;  /* one allocation, freed with it */
  void *map;       /* staging only */
  VkBuffer buffer; /* staging only */
  kiln__range *free;
  VkDeviceSize used;
  struct kiln__block *next;
} kiln__block;

typedef struct kiln__suballoc {
  kiln__block *block;
  VkDeviceSize offset, size;
} kiln__suballoc;

typedef struct kiln__alloc {
  pthread_mutex_t mu; /* guards blocks and their free lists */
  kiln__block *blocks;
  VkDeviceSize block_size;
  bool staging;
  uint32_t type; /* staging: its memory type (found at open) */
} kiln__alloc;

int kiln__alloc_init(kiln_gpu_device *dev, kiln__alloc *a, bool staging);
void kiln__alloc_fini(kiln_gpu_device *dev, kiln__alloc *a);
/* Staging: size bytes, aligned for copies, mapped. KILN_ENOMEM / KILN_EVULKAN. */
int kiln__staging_get(kiln_gpu_device *dev, VkDeviceSize size, kiln__suballoc *out);
void kiln__staging_put(kiln_gpu_device *dev, kiln__suballoc *s);
/* Makes buf's texel view if it has none: RGBA32UI texels, or R32UI ones (words): 0, KILN_EINVAL
 * (size no whole number of texels, or beyond maxTexelBufferElements), or vkCreateBufferView's
 * error. Any thread. */
int kiln__buffer_texel_view(struct kiln_gpu_buffer *buf, bool words);
static inline void *kiln__staging_ptr(const kiln__suballoc *s) {
  return (char *)s->block->map + s->offset;
}

struct kiln_gpu_buffer {
  kiln_gpu_device *dev;
  VkBuffer buffer;
  uint64_t size;
  kiln__suballoc mem;
  VkBufferView view; /* RGBA32_UINT texels over the whole buffer, made by the first dispatch
                         that binds it as a uniform texel buffer (kiln__buffer_texel_view, under
                         dev->mu); VK_NULL_HANDLE until then */
  VkBufferView word_view; /* R32_UINT texels likewise (kiln__buffer_texel_view with words) */
  struct kiln_gpu_buffer *prev, *next; /* dev->buffers, under dev->mu */
};

struct kiln_gpu_readback {
  kiln_gpu_device *dev;
  uint64_t size;
  kiln__suballoc mem; /* staging: mapped, with the block's VkBuffer */
};

/* ---- kernels (kernel.c) and jobs (gpu_job.c) ------------------------------------------------- */

enum { KILN__MAX_BINDINGS = 32, KILN__MAX_PUSH = 128 };

struct kiln_gpu_kernel {
  kiln_gpu_device *dev;
  VkDescriptorSetLayout set_layout; /* push-descriptor layout of `buffers` buffers */
  VkPipelineLayout layout;
  VkPipeline pipeline;
  uint32_t buffers, push_size;
  uint32_t uniform; /* bit i: binding i is a uniform buffer */
  uint32_t texel;   /* bit i: binding i is a uniform texel buffer of RGBA32UI (else storage) */
  uint32_t word_texel; /* bit i: binding i is a uniform texel buffer of R32UI */
};

static inline VkDescriptorType kiln__binding_type(const struct kiln_gpu_kernel *k, uint32_t i) {
  return k->uniform >> i & 1u ? VK_DESCRIPTOR_TYPE_UNIFORM_BUFFER
         : (k->texel | k->word_texel) >> i & 1u ? VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER
                              : VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
}

typedef enum {
  KILN__CMD_DISPATCH,
  KILN__CMD_COPY,
  KILN__CMD_UPLOAD,
  KILN__CMD_DOWNLOAD
} kiln__cmd_kind;

typedef struct kiln__cmd {
  kiln__cmd_kind kind;
  kiln_gpu_kernel *kernel; /* dispatch */
  kiln_gpu_buffer *bufs[KILN__MAX_BINDINGS];
  uint8_t push[KILN__MAX_PUSH];
  uint32_t groups[3];
  kiln_gpu_buffer *src, *dst; /* copy, upload (dst), download (src) */
  uint64_t src_off, dst_off, size;
  kiln__suballoc staging;  /* upload, download (not into a readback) */
  void *host_dst;          /* download: caller's memory, or NULL: owned */
  kiln_gpu_readback *into; /* download into a readback (borrowed; staging unused), or NULL */
  const void *host_src;    /* deferred upload: copied at launch */
} kiln__cmd;

/* One dependency's done-callback argument. */
typedef struct kiln__dep_slot {
  struct kiln_gpu_job *job;
  size_t index;
} kiln__dep_slot;

/* ---- submissions: the one interface between gpu_job.c and bridge.c ---------------------------- */

typedef struct kiln__submission kiln__submission;

/* What the bridge may ask of the owner of a submission (gpu_job.c gives its jobs one table).
 * The bridge calls nothing else of gpu_job.c. */
typedef struct kiln__submission_ops {
  /* Records the owner's commands into cb (begin to end). Called inside kiln__bridge_submit with
   * the lane's lock held (the command pool is externally synchronised): it must not take
   * dev->mu nor complete a promise. 0, or a KILN_E* code that fails the submission. */
  int (*record)(kiln__submission *s, VkCommandBuffer cb);
  /* The end of a submitted submission, called once with no engine lock held: code 0, on the
   * completion thread, when the GPU has finished it (the owner takes it back for good: it gives
   * back its resources and the device's outstanding count); or KILN_EDEVICE_LOST with msg, on
   * whichever thread found the loss (the owner reports it; the bridge keeps the submission and its
   * resources, gives back the outstanding count, and calls discard at close). */
  void (*done)(kiln__submission *s, int code, const char *msg);
  /* A lost submission at close, after vkDeviceWaitIdle: give back its resources and let go. */
  void (*discard)(kiln__submission *s);
} kiln__submission_ops;

/* Embedded in its owner. The fields below ops are the bridge's: set by kiln__bridge_submit and
 * guarded by lane->mu until the completion thread (or the loss) collects the submission. */
struct kiln__submission {
  const kiln__submission_ops *ops;
  struct kiln__lane *lane;
  VkCommandBuffer cb;
  uint64_t value;         /* the lane's timeline value its completion signals */
  kiln__submission *next; /* the lane's list, then dev->graveyard after a loss */
};

/* A job. Ownership: the caller until submit; then the dependency side (the last dependency
 * callback, or submit itself with no dependencies) holds the "launch" reference, which moves to
 * the bridge on submission (job->sub) and comes back through sub.ops->done. While it waits
 * for dependencies, a done-callback on its own promise holds a second reference and gives back
 * the resources if the promise is cancelled. Exactly one of {launch, cancel watcher, loss} gives
 * back the resources (staging, outstanding count): kiln_promise_set_running() decides between
 * launch and cancel. */
struct kiln_gpu_job {
  kiln_gpu_device *dev; /* NULL once its resources are given back */
  kiln__cmd *cmds;
  size_t n, cap;
  int error; /* first failure while adding commands */
  bool has_owned_download;
  kiln_future *promise;
  _Atomic int refs;
  _Atomic size_t remaining; /* dependencies not yet done */
  _Atomic bool settled;     /* launch or dependency failure happened (first wins) */
  size_t ndeps;
  kiln__dep_slot *slots;
  kiln__submission sub; /* in flight: the bridge's */
};

/* ---- lanes and devices (device.c, bridge.c) ------------------------------------------------- */

/* A lane: one VkQueue with its command pool and timeline semaphore. Submissions on a queue signal
 * their semaphores in submission order, so the lane's timeline counts its submissions:
 * submission k signals value k, and every job with value <= the semaphore's value is done. */
typedef struct kiln__lane {
  pthread_mutex_t mu; /* guards the queue, pool, free cbs, next_value, pending */
  VkQueue queue;
  uint32_t family, index;
  VkCommandPool pool;
  VkCommandBuffer *free_cbs; /* reset lazily by the next user (under mu) */
  size_t nfree, capfree;
  VkSemaphore timeline;
  uint64_t next_value;           /* value the next submission signals */
  kiln__submission *head, *tail; /* submitted, not completed, in value order */
  _Atomic uint64_t in_flight;    /* relaxed: a load hint for picking lanes */
  uint64_t completed;            /* completion thread only */
} kiln__lane;

struct kiln_gpu_device {
  kiln_gpu *gpu;
  kiln_gpu_device_config cfg;
  kiln_gpu_device_info info;
  VkPhysicalDevice phys;
  VkDevice device;
  kiln__vk_device vk;
  VkPhysicalDeviceMemoryProperties memprops;
  VkDeviceSize copy_align;        /* alignment for staging offsets */
  VkDeviceSize max_uniform_range; /* maxUniformBufferRange: the largest buffer bound as uniform */
  uint32_t max_texels;            /* maxTexelBufferElements: the longest texel buffer view */
  bool creation_feedback;         /* VK_EXT_pipeline_creation_feedback usable */

  kiln__lane *lanes;
  uint32_t nlanes;

  /* The completion thread waits on every lane's next value (bridge.c). */
  pthread_t thread;
  bool thread_started;

  pthread_mutex_t mu;          /* guards the fields below, to `live_kernels` */
  pthread_cond_t idle;         /* signalled when outstanding drops to 0 */
  uint64_t outstanding;        /* jobs created and not yet finished/discarded */
  bool closing;                /* no new jobs */
  bool stop;                   /* completion thread: exit */
  char *lost_message;          /* set once, at loss */
  kiln__submission *graveyard; /* failed by a loss, resources held until close */
  kiln_gpu_buffer *buffers;    /* live buffers, for the leak check at close */
  uint64_t live_kernels;

  _Atomic bool lost;            /* release at loss, acquire by readers: pairs on lost_message */
  _Atomic uint64_t submissions; /* submission attempts (fault injection counts these) */
  _Atomic uint64_t submitted, completed, failed;  /* relaxed: statistics */
  _Atomic uint64_t mem_allocations, mem_blocks;   /* relaxed: statistics */
  _Atomic uint64_t buffer_bytes;                  /* relaxed: statistics */
  _Atomic uint64_t pipelines_created, cache_hits; /* relaxed: statistics */
  uint64_t cache_loaded;
  char *cache_path; /* NULL: no cache */
  VkPipelineCache cache;

  kiln__alloc device_mem;
  kiln__alloc staging;
};

/* device.c */
/* A job begins: outstanding++, or KILN_ESHUTDOWN (closing) / KILN_EDEVICE_LOST. */
int kiln__dev_job_begin(kiln_gpu_device *dev);
/* A job's resources are all given back: outstanding--, wakes close() at 0. */
void kiln__dev_job_end(kiln_gpu_device *dev);
/* Counts an object (buffer, kernel) created on dev, or KILN_ESHUTDOWN / KILN_EDEVICE_LOST. */
int kiln__dev_check_open(kiln_gpu_device *dev);

/* The queues a device opens (device.c), chosen from its families alone so that tests can give
 * made-up ones: one family, so that buffers created VK_SHARING_MODE_EXCLUSIVE (every buffer of
 * kiln's) are only ever used by queues of the family that owns them, as the Vulkan spec requires
 * ("Resources created with VK_SHARING_MODE_EXCLUSIVE must have their ownership explicitly
 * transferred from one queue family to another in order to access their content in a
 * well-defined manner on a queue in a different queue family"), without ownership transfers or
 * VK_SHARING_MODE_CONCURRENT; the compute-capable family with the most queues (the first on
 * ties: NVIDIA's universal family 0 of 16, AMD's compute family of 4 rather than its one
 * graphics queue, lavapipe's only queue); and at most max_lanes of its queues, 0 meaning
 * KILN__DEFAULT_LANES. Several queues let the GPU overlap one frame's read-back with another's
 * dispatches and keep it fed while the CPU finishes frames; beyond a few they share the same
 * hardware engines, and each one adds a command pool, a timeline semaphore and (in a batch) two
 * more frames in flight. Not measured on a GPU yet: the first GPU run is to confirm it.
 * 0 with *family and *count, or KILN_EUNSUPPORTED when no family computes. */
enum { KILN__DEFAULT_LANES = 4 };
int kiln__choose_queues(const kiln_gpu_queue_family *families, uint32_t nfamilies,
                        uint32_t max_lanes, uint32_t *family, uint32_t *count);
/* A malloc'd copy of the loss message, or NULL (not lost, or out of memory). Any thread. */
char *kiln__dev_lost_message(kiln_gpu_device *dev);

/* bridge.c */
/* Submits s (its ops set) to the least busy lane of dev: records it through s->ops->record and
 * queues it. 0: the bridge holds s until s->ops->done. Else a KILN_E* code and s is still the
 * caller's; a failed vkQueueSubmit has marked the device lost (kiln__dev_lost_message says why).
 * Any thread, no engine lock held. */
int kiln__bridge_submit(kiln_gpu_device *dev, kiln__submission *s);
int kiln__bridge_start(kiln_gpu_device *dev);
void kiln__bridge_stop(kiln_gpu_device *dev);           /* after outstanding reached 0 */
void kiln__bridge_free_graveyard(kiln_gpu_device *dev); /* after vkDeviceWaitIdle */

/* pipeline_cache.c: at open (after the VkDevice exists) and at close (before it goes). */
int kiln__cache_open(kiln_gpu_device *dev);
void kiln__cache_close(kiln_gpu_device *dev);

/* generated from the shaders/ folder (shaders_table.c) */
typedef struct kiln__builtin_shader {
  const char *name;
  const uint32_t *words;
  size_t size;
} kiln__builtin_shader;
const kiln__builtin_shader *kiln__builtin_shaders(size_t *n);
const char *const *kiln__builtin_shader_names(size_t *n);


#endif /* KILN_GPU_INTERNAL_H */
