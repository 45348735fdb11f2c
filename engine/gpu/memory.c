/* memory.c: the device's sub-allocator, device buffers, and host-visible staging.
 *
 * Vulkan allocations are few and large: each kiln__alloc carves VkDeviceMemory blocks
 * (cfg.block_size, 32 MiB by default) into ranges with a first-fit free list (sorted by offset,
 * coalesced on free), so a batch of frames does not call vkAllocateMemory per frame. A request
 * larger than a block gets a dedicated block of its own, freed with it. Other blocks are kept
 * until the device closes (a batch reuses them frame after frame).
 *
 * Staging blocks are host-visible and coherent, mapped once, and carry one VkBuffer over the
 * whole block, so an upload or read-back is a copy between (staging buffer, offset) and a device
 * buffer.
 *
 * Lock order: dev->mu -> alloc->mu (dev->mu only for the buffer list, never around Vulkan
 * allocation calls). */
#include <stdlib.h>
#include <string.h>

#include "gpu_internal.h"

static VkDeviceSize align_up(VkDeviceSize v, VkDeviceSize a) { return (v + a - 1) / a * a; }

/* The first memory type in `bits` with all of `want`, preferring one that also has `prefer`. */
static int find_type(kiln_gpu_device *dev, uint32_t bits, VkMemoryPropertyFlags want,
                     VkMemoryPropertyFlags prefer, uint32_t *out) {
  const VkPhysicalDeviceMemoryProperties *mp = &dev->memprops;
  for (int pass = 0; pass < 2; pass++) {
    VkMemoryPropertyFlags need = pass == 0 ? want | prefer : want;
    for (uint32_t i = 0; i < mp->memoryTypeCount; i++)
      if ((bits & (1u << i)) && (mp->memoryTypes[i].propertyFlags & need) == need) {
        *out = i;
        return 0;
      }
  }
  kiln__log(dev->gpu, KILN_GPU_LOG_ERROR, "device %s has no memory type with flags 0x%x",
            dev->info.name, (unsigned)want);
  return KILN_EUNSUPPORTED;
}

int kiln__alloc_init(kiln_gpu_device *dev, kiln__alloc *a, bool staging) {
  memset(a, 0, sizeof(*a));
  pthread_mutex_init(&a->mu, NULL);
  a->block_size = dev->cfg.block_size;
  a->staging = staging;
  return 0;
}

static void block_free(kiln_gpu_device *dev, kiln__block *b) {
  if (b->buffer) dev->vk.DestroyBuffer(dev->device, b->buffer, NULL);
  if (b->map) dev->vk.UnmapMemory(dev->device, b->memory);
  if (b->memory) {
    dev->vk.FreeMemory(dev->device, b->memory, NULL);
    atomic_fetch_sub_explicit(&dev->mem_blocks, 1, memory_order_relaxed);
  }
  for (kiln__range *r = b->free, *next; r; r = next) {
    next = r->next;
    free(r);
  }
  free(b);
}

void kiln__alloc_fini(kiln_gpu_device *dev, kiln__alloc *a) {
  if (!a->block_size) return; /* never initialised */
  for (kiln__block *b = a->blocks, *next; b; b = next) {
    next = b->next;
    block_free(dev, b);
  }
  a->blocks = NULL;
  pthread_mutex_destroy(&a->mu);
  a->block_size = 0;
}

/* Allocates a new block of `size` bytes (memory type `type`; staging: found from its buffer). */
static int block_new(kiln_gpu_device *dev, kiln__alloc *a, VkDeviceSize size, uint32_t type,
                     bool dedicated, kiln__block **out) {
  kiln__block *b = calloc(1, sizeof(*b));
  kiln__range *r = calloc(1, sizeof(*r));
  if (!b || !r) {
    free(b);
    free(r);
    return KILN_ENOMEM;
  }
  b->size = size;
  b->dedicated = dedicated;
  b->free = r;
  r->size = size;
  VkResult vr;
  int rc = 0;
  if (a->staging) {
    VkBufferCreateInfo bci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                              .size = size,
                              .usage = VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                       VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                              .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    vr = dev->vk.CreateBuffer(dev->device, &bci, NULL, &b->buffer);
    if (vr != VK_SUCCESS) {
      rc = vk_error(dev->gpu, vr, "vkCreateBuffer(staging)");
      goto fail;
    }
    VkMemoryRequirements req;
    dev->vk.GetBufferMemoryRequirements(dev->device, b->buffer, &req);
    rc = find_type(dev, req.memoryTypeBits,
                   VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
                   VK_MEMORY_PROPERTY_HOST_CACHED_BIT, &type);
    if (rc) goto fail;
    size = req.size;
  }
  b->type = type;
  VkMemoryAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                             .allocationSize = size,
                             .memoryTypeIndex = type};
  vr = dev->vk.AllocateMemory(dev->device, &ai, NULL, &b->memory);
  if (vr != VK_SUCCESS) {
    b->memory = VK_NULL_HANDLE;
    rc = vk_error(dev->gpu, vr, "vkAllocateMemory");
    goto fail;
  }
  atomic_fetch_add_explicit(&dev->mem_allocations, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&dev->mem_blocks, 1, memory_order_relaxed);
  if (a->staging) {
    vr = dev->vk.BindBufferMemory(dev->device, b->buffer, b->memory, 0);
    if (vr == VK_SUCCESS)
      vr = dev->vk.MapMemory(dev->device, b->memory, 0, VK_WHOLE_SIZE, 0, &b->map);
    if (vr != VK_SUCCESS) {
      b->map = NULL;
      rc = vk_error(dev->gpu, vr, "vkBindBufferMemory/vkMapMemory(staging)");
      goto fail;
    }
  }
  *out = b;
  return 0;
fail:
  block_free(dev, b);
  return rc;
}

/* First fit in b's free list; splits the range. */
static bool block_take(kiln__block *b, VkDeviceSize size, VkDeviceSize align, VkDeviceSize *off) {
  for (kiln__range **pp = &b->free; *pp; pp = &(*pp)->next) {
    kiln__range *r = *pp;
    VkDeviceSize start = align_up(r->offset, align), end = r->offset + r->size;
    if (start + size > end) continue;
    if (start + size < end) {
      kiln__range *tail = malloc(sizeof(*tail));
      if (!tail) return false;
      tail->offset = start + size;
      tail->size = end - tail->offset;
      tail->next = r->next;
      r->next = tail;
    }
    if (start > r->offset) {
      r->size = start - r->offset; /* the aligned-away head stays free */
    } else {
      *pp = r->next;
      free(r);
    }
    b->used += size;
    *off = start;
    return true;
  }
  return false;
}

/* Gives [off, off+size) back to b, coalescing with neighbours. Only fails (leaks the range) when
 * out of memory for a list node. */
static void block_give(kiln__block *b, VkDeviceSize off, VkDeviceSize size) {
  b->used -= size;
  kiln__range *prev = NULL, *next = b->free;
  while (next && next->offset < off) prev = next, next = next->next;
  bool joins_prev = prev && prev->offset + prev->size == off;
  bool joins_next = next && off + size == next->offset;
  if (joins_prev && joins_next) {
    prev->size += size + next->size;
    prev->next = next->next;
    free(next);
  } else if (joins_prev) {
    prev->size += size;
  } else if (joins_next) {
    next->offset = off;
    next->size += size;
  } else {
    kiln__range *r = malloc(sizeof(*r));
    if (!r) return;
    r->offset = off;
    r->size = size;
    r->next = next;
    if (prev) prev->next = r;
    else b->free = r;
  }
}

static int alloc_take(kiln_gpu_device *dev, kiln__alloc *a, VkDeviceSize size, VkDeviceSize align,
                      uint32_t type, kiln__suballoc *out) {
  memset(out, 0, sizeof(*out));
  if (align < 1) align = 1;
  size = align_up(size, dev->copy_align);
  pthread_mutex_lock(&a->mu);
  int rc = 0;
  kiln__block *b = NULL;
  VkDeviceSize off = 0;
  if (size <= a->block_size) {
    for (b = a->blocks; b; b = b->next)
      if (!b->dedicated && (a->staging || b->type == type) && block_take(b, size, align, &off))
        break;
  }
  if (!b) {
    bool dedicated = size > a->block_size;
    rc = block_new(dev, a, dedicated ? size : a->block_size, type, dedicated, &b);
    if (!rc && !block_take(b, size, align, &off)) {
      block_free(dev, b);
      rc = KILN_ENOMEM;
    }
    if (!rc) {
      b->next = a->blocks;
      a->blocks = b;
    }
  }
  if (!rc) *out = (kiln__suballoc){.block = b, .offset = off, .size = size};
  pthread_mutex_unlock(&a->mu);
  return rc;
}

static void alloc_give(kiln_gpu_device *dev, kiln__alloc *a, kiln__suballoc *s) {
  if (!s->block) return;
  pthread_mutex_lock(&a->mu);
  kiln__block *b = s->block;
  block_give(b, s->offset, s->size);
  if (b->dedicated) {
    for (kiln__block **pp = &a->blocks; *pp; pp = &(*pp)->next)
      if (*pp == b) {
        *pp = b->next;
        break;
      }
    block_free(dev, b);
  }
  pthread_mutex_unlock(&a->mu);
  memset(s, 0, sizeof(*s));
}

int kiln__staging_get(kiln_gpu_device *dev, VkDeviceSize size, kiln__suballoc *out) {
  return alloc_take(dev, &dev->staging, size, dev->copy_align, 0, out);
}

void kiln__staging_put(kiln_gpu_device *dev, kiln__suballoc *s) {
  alloc_give(dev, &dev->staging, s);
}

/* ---- readbacks ---------------------------------------------------------------------------- */

int kiln_gpu_readback_create(kiln_gpu_device *dev, uint64_t size, kiln_gpu_readback **out) {
  *out = NULL;
  if (size == 0) return KILN_EINVAL;
  int rc = kiln__dev_check_open(dev);
  if (rc) return rc;
  kiln_gpu_readback *rb = calloc(1, sizeof(*rb));
  if (!rb) return KILN_ENOMEM;
  if ((rc = kiln__staging_get(dev, size, &rb->mem))) {
    free(rb);
    return rc;
  }
  rb->dev = dev, rb->size = size;
  *out = rb;
  return 0;
}

void kiln_gpu_readback_destroy(kiln_gpu_readback *rb) {
  if (!rb) return;
  kiln__staging_put(rb->dev, &rb->mem);
  free(rb);
}

const void *kiln_gpu_readback_data(const kiln_gpu_readback *rb) {
  return kiln__staging_ptr(&rb->mem);
}

uint64_t kiln_gpu_readback_get_size(const kiln_gpu_readback *rb) { return rb->size; }

/* ---- buffers ------------------------------------------------------------------------------ */

int kiln_gpu_buffer_create(kiln_gpu_device *dev, uint64_t size, kiln_gpu_buffer **out) {
  *out = NULL;
  if (size == 0) return KILN_EINVAL;
  int rc = kiln__dev_check_open(dev);
  if (rc) return rc;
  kiln_gpu_buffer *buf = calloc(1, sizeof(*buf));
  if (!buf) return KILN_ENOMEM;
  buf->dev = dev;
  buf->size = size;
  VkBufferCreateInfo bci = {
      .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
      .size = size,
      .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_UNIFORM_BUFFER_BIT |
               VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
               VK_BUFFER_USAGE_TRANSFER_DST_BIT,
      .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
  VkResult r = dev->vk.CreateBuffer(dev->device, &bci, NULL, &buf->buffer);
  if (r != VK_SUCCESS) {
    free(buf);
    return vk_error(dev->gpu, r, "vkCreateBuffer");
  }
  VkMemoryRequirements req;
  dev->vk.GetBufferMemoryRequirements(dev->device, buf->buffer, &req);
  uint32_t type;
  rc = find_type(dev, req.memoryTypeBits, 0, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, &type);
  if (!rc) rc = alloc_take(dev, &dev->device_mem, req.size, req.alignment, type, &buf->mem);
  if (!rc) {
    r = dev->vk.BindBufferMemory(dev->device, buf->buffer, buf->mem.block->memory, buf->mem.offset);
    if (r != VK_SUCCESS) rc = vk_error(dev->gpu, r, "vkBindBufferMemory");
  }
  if (rc) {
    alloc_give(dev, &dev->device_mem, &buf->mem);
    dev->vk.DestroyBuffer(dev->device, buf->buffer, NULL);
    free(buf);
    return rc;
  }
  pthread_mutex_lock(&dev->mu);
  buf->next = dev->buffers;
  if (dev->buffers) dev->buffers->prev = buf;
  dev->buffers = buf;
  pthread_mutex_unlock(&dev->mu);
  atomic_fetch_add_explicit(&dev->buffer_bytes, size, memory_order_relaxed);
  *out = buf;
  return 0;
}

void kiln_gpu_buffer_destroy(kiln_gpu_buffer *buf) {
  if (!buf) return;
  kiln_gpu_device *dev = buf->dev;
  pthread_mutex_lock(&dev->mu);
  if (buf->prev) buf->prev->next = buf->next;
  else dev->buffers = buf->next;
  if (buf->next) buf->next->prev = buf->prev;
  pthread_mutex_unlock(&dev->mu);
  if (buf->view) dev->vk.DestroyBufferView(dev->device, buf->view, NULL);
  if (buf->word_view) dev->vk.DestroyBufferView(dev->device, buf->word_view, NULL);
  dev->vk.DestroyBuffer(dev->device, buf->buffer, NULL);
  alloc_give(dev, &dev->device_mem, &buf->mem);
  atomic_fetch_sub_explicit(&dev->buffer_bytes, buf->size, memory_order_relaxed);
  free(buf);
}

int kiln__buffer_texel_view(kiln_gpu_buffer *buf, bool words) {
  kiln_gpu_device *dev = buf->dev;
  uint64_t texel = words ? 4 : 16;
  if (buf->size % texel || buf->size / texel > dev->max_texels) return KILN_EINVAL;
  int rc = 0;
  pthread_mutex_lock(&dev->mu);
  VkBufferView *view = words ? &buf->word_view : &buf->view;
  if (!*view) {
    /* R32G32B32A32_UINT and R32_UINT must support uniform texel buffers on every device
     * (Vulkan's required format features) */
    VkBufferViewCreateInfo vci = {.sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO,
                                  .buffer = buf->buffer,
                                  .format =
                                      words ? VK_FORMAT_R32_UINT : VK_FORMAT_R32G32B32A32_UINT,
                                  .range = VK_WHOLE_SIZE};
    VkBufferView v = VK_NULL_HANDLE;
    VkResult r = dev->vk.CreateBufferView(dev->device, &vci, NULL, &v);
    if (r == VK_SUCCESS) *view = v;
    else rc = vk_error(dev->gpu, r, "vkCreateBufferView");
  }
  pthread_mutex_unlock(&dev->mu);
  return rc;
}

uint64_t kiln_gpu_buffer_get_size(const kiln_gpu_buffer *buf) { return buf->size; }

kiln_gpu_device *kiln_gpu_buffer_get_device(const kiln_gpu_buffer *buf) { return buf->dev; }
