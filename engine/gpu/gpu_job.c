/* gpu_job.c: jobs: building the command list, recording it into a command buffer, holding a job
 * back until its dependencies (kiln futures of any kind) have succeeded, and handing it, once
 * launched, to the bridge (kiln__bridge_submit), which gives it back through job_ops.
 *
 * A job with dependencies registers a done-callback on each. The last one to fire launches the
 * job if none failed; the first failure rejects it with KILN_EDEPENDENCY at once. Cancelling the
 * job's future while it waits works because launching first calls kiln_promise_set_running(),
 * which fails on a cancelled promise; the cancel watcher (a done-callback on the job's own
 * promise) then gives back the resources. See struct kiln_gpu_job in gpu_internal.h for who owns
 * what.
 *
 * Lock order: this file takes dev->mu only through device.c's counters, never while recording
 * (which runs under the bridge's lane->mu). */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_internal.h"

/* ---- building ----------------------------------------------------------------------------- */

int kiln_gpu_job_create(kiln_gpu_device *dev, kiln_gpu_job **out) {
  *out = NULL;
  kiln_gpu_job *job = calloc(1, sizeof(*job));
  if (!job) return KILN_ENOMEM;
  int rc = kiln__dev_job_begin(dev);
  if (rc) {
    free(job);
    return rc;
  }
  job->dev = dev;
  atomic_init(&job->refs, 1);
  atomic_init(&job->remaining, 0);
  atomic_init(&job->settled, false);
  *out = job;
  return 0;
}

/* A new command slot, or NULL (and job->error set) when out of memory. */
static kiln__cmd *push_cmd(kiln_gpu_job *job, kiln__cmd_kind kind) {
  if (job->n == job->cap) {
    size_t cap = job->cap ? 2 * job->cap : 4;
    kiln__cmd *c = realloc(job->cmds, cap * sizeof(*c));
    if (!c) {
      if (!job->error) job->error = KILN_ENOMEM;
      return NULL;
    }
    job->cmds = c;
    job->cap = cap;
  }
  kiln__cmd *c = &job->cmds[job->n++];
  memset(c, 0, sizeof(*c));
  c->kind = kind;
  return c;
}

/* Records the first error of a job (it then fails at submit) and returns it. */
static int job_error(kiln_gpu_job *job, int code) {
  if (!job->error) job->error = code;
  return code;
}

static bool in_range(const kiln_gpu_buffer *b, uint64_t off, uint64_t size) {
  return size > 0 && off <= b->size && size <= b->size - off;
}

int kiln_gpu_job_dispatch(kiln_gpu_job *job, kiln_gpu_kernel *k, kiln_gpu_buffer *const *buffers,
                          const void *push, uint32_t gx, uint32_t gy, uint32_t gz) {
  if (!k || k->dev != job->dev || gx == 0 || gy == 0 || gz == 0 || (k->buffers && !buffers) ||
      (k->push_size && !push))
    return job_error(job, KILN_EINVAL);
  for (uint32_t i = 0; i < k->buffers; i++)
    if (!buffers[i] || buffers[i]->dev != job->dev ||
        ((k->uniform >> i & 1u) && buffers[i]->size > job->dev->max_uniform_range))
      return job_error(job, KILN_EINVAL);
  for (uint32_t i = 0; i < k->buffers; i++) {
    int rc = k->texel >> i & 1u        ? kiln__buffer_texel_view(buffers[i], false)
             : k->word_texel >> i & 1u ? kiln__buffer_texel_view(buffers[i], true)
                                       : 0;
    if (rc) return job_error(job, rc);
  }
  kiln__cmd *c = push_cmd(job, KILN__CMD_DISPATCH);
  if (!c) return KILN_ENOMEM;
  c->kernel = k;
  for (uint32_t i = 0; i < k->buffers; i++) c->bufs[i] = buffers[i];
  if (k->push_size) memcpy(c->push, push, k->push_size);
  c->groups[0] = gx, c->groups[1] = gy, c->groups[2] = gz;
  return 0;
}

int kiln_gpu_job_copy(kiln_gpu_job *job, kiln_gpu_buffer *src, uint64_t src_offset,
                      kiln_gpu_buffer *dst, uint64_t dst_offset, uint64_t size) {
  if (!src || !dst || src->dev != job->dev || dst->dev != job->dev ||
      !in_range(src, src_offset, size) || !in_range(dst, dst_offset, size))
    return job_error(job, KILN_EINVAL);
  kiln__cmd *c = push_cmd(job, KILN__CMD_COPY);
  if (!c) return KILN_ENOMEM;
  c->src = src, c->src_off = src_offset;
  c->dst = dst, c->dst_off = dst_offset;
  c->size = size;
  return 0;
}

/* Both uploads: staging memory now; the bytes are copied in now (deferred: at launch). */
static int upload(kiln_gpu_job *job, kiln_gpu_buffer *dst, uint64_t offset, const void *data,
                  uint64_t size, bool deferred) {
  if (!dst || !data || dst->dev != job->dev || !in_range(dst, offset, size))
    return job_error(job, KILN_EINVAL);
  kiln__cmd *c = push_cmd(job, KILN__CMD_UPLOAD);
  if (!c) return KILN_ENOMEM;
  int rc = kiln__staging_get(job->dev, size, &c->staging);
  if (rc) {
    job->n--;
    return job_error(job, rc);
  }
  if (deferred) c->host_src = data;
  else memcpy(kiln__staging_ptr(&c->staging), data, size);
  c->dst = dst, c->dst_off = offset, c->size = size;
  return 0;
}

int kiln_gpu_job_upload(kiln_gpu_job *job, kiln_gpu_buffer *dst, uint64_t offset, const void *data,
                        uint64_t size) {
  return upload(job, dst, offset, data, size, false);
}

int kiln_gpu_job_upload_deferred(kiln_gpu_job *job, kiln_gpu_buffer *dst, uint64_t offset,
                                 const void *data, uint64_t size) {
  return upload(job, dst, offset, data, size, true);
}

/* At launch: copies deferred uploads into their staging (host writes before vkQueueSubmit are
 * visible to it). */
static void copy_deferred(kiln_gpu_job *job) {
  for (size_t i = 0; i < job->n; i++) {
    kiln__cmd *c = &job->cmds[i];
    if (c->kind == KILN__CMD_UPLOAD && c->host_src)
      memcpy(kiln__staging_ptr(&c->staging), c->host_src, c->size);
  }
}

int kiln_gpu_job_download(kiln_gpu_job *job, kiln_gpu_buffer *src, uint64_t offset, uint64_t size,
                          void *dst) {
  if (!src || src->dev != job->dev || !in_range(src, offset, size) ||
      (!dst && job->has_owned_download))
    return job_error(job, KILN_EINVAL);
  kiln__cmd *c = push_cmd(job, KILN__CMD_DOWNLOAD);
  if (!c) return KILN_ENOMEM;
  int rc = kiln__staging_get(job->dev, size, &c->staging);
  if (rc) {
    job->n--;
    return job_error(job, rc);
  }
  c->src = src, c->src_off = offset, c->size = size, c->host_dst = dst;
  if (!dst) job->has_owned_download = true;
  return 0;
}

int kiln_gpu_job_download_into(kiln_gpu_job *job, kiln_gpu_buffer *src, uint64_t offset,
                               uint64_t size, kiln_gpu_readback *dst, uint64_t dst_offset) {
  if (!src || !dst || src->dev != job->dev || dst->dev != job->dev ||
      !in_range(src, offset, size) || dst_offset > dst->size || size > dst->size - dst_offset)
    return job_error(job, KILN_EINVAL);
  kiln__cmd *c = push_cmd(job, KILN__CMD_DOWNLOAD);
  if (!c) return KILN_ENOMEM;
  c->src = src, c->src_off = offset, c->size = size;
  c->into = dst, c->dst_off = dst_offset;
  return 0;
}

/* ---- lifetime ----------------------------------------------------------------------------- */

/* Gives back staging memory and the device's outstanding count. After this the job must not
 * touch job->dev (a waiting close() may free it). */
static void job_release(kiln_gpu_job *job) {
  kiln_gpu_device *dev = job->dev;
  if (!dev) return;
  for (size_t i = 0; i < job->n; i++)
    if (job->cmds[i].staging.block) kiln__staging_put(dev, &job->cmds[i].staging);
  job->dev = NULL;
  kiln__dev_job_end(dev);
}

static void job_unref(kiln_gpu_job *job) {
  /* acq_rel: the last owner sees every write the others made before dropping theirs */
  if (atomic_fetch_sub_explicit(&job->refs, 1, memory_order_acq_rel) != 1) return;
  kiln_future_release(job->promise);
  free(job->cmds);
  free(job->slots);
  free(job);
}

void kiln_gpu_job_discard(kiln_gpu_job *job) {
  if (!job) return;
  job_release(job);
  job_unref(job);
}

/* ---- recording (under the bridge's lane->mu: the command pool is externally synchronised) */

/* Makes every earlier write (previous commands, and earlier jobs whose completion the host has
 * observed) visible to the next command. */
static void barrier(kiln_gpu_device *dev, VkCommandBuffer cb, VkPipelineStageFlags dst_stage,
                    VkAccessFlags dst_access) {
  VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                        .srcAccessMask = VK_ACCESS_MEMORY_WRITE_BIT,
                        .dstAccessMask = dst_access};
  dev->vk.CmdPipelineBarrier(cb, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, dst_stage, 0, 1, &mb, 0, NULL,
                             0, NULL);
}

static void record_dispatch(kiln_gpu_device *dev, VkCommandBuffer cb, const kiln__cmd *c) {
  const kiln_gpu_kernel *k = c->kernel;
  VkDescriptorBufferInfo info[KILN__MAX_BINDINGS];
  VkWriteDescriptorSet w[KILN__MAX_BINDINGS];
  for (uint32_t i = 0; i < k->buffers; i++) {
    info[i] = (VkDescriptorBufferInfo){.buffer = c->bufs[i]->buffer, .range = VK_WHOLE_SIZE};
    const VkBufferView *view = k->word_texel >> i & 1u ? &c->bufs[i]->word_view : &c->bufs[i]->view;
    w[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                                  .dstBinding = i,
                                  .descriptorCount = 1,
                                  .descriptorType = kiln__binding_type(k, i),
                                  .pBufferInfo = &info[i],
                                  .pTexelBufferView = view};
  }
  dev->vk.CmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, k->pipeline);
  if (k->buffers)
    dev->vk.CmdPushDescriptorSetKHR(cb, VK_PIPELINE_BIND_POINT_COMPUTE, k->layout, 0, k->buffers,
                                    w);
  if (k->push_size)
    dev->vk.CmdPushConstants(cb, k->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, k->push_size, c->push);
  dev->vk.CmdDispatch(cb, c->groups[0], c->groups[1], c->groups[2]);
}

static int record(kiln_gpu_job *job, VkCommandBuffer cb) {
  kiln_gpu_device *dev = job->dev;
  VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                 .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
  VkResult r = dev->vk.BeginCommandBuffer(cb, &bi);
  if (r != VK_SUCCESS) return vk_error(dev->gpu, r, "vkBeginCommandBuffer");
  bool downloads = false;
  for (size_t i = 0; i < job->n; i++) {
    const kiln__cmd *c = &job->cmds[i];
    barrier(dev, cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
            VK_ACCESS_MEMORY_READ_BIT | VK_ACCESS_MEMORY_WRITE_BIT);
    VkBufferCopy region = {.size = c->size};
    switch (c->kind) {
      case KILN__CMD_DISPATCH: record_dispatch(dev, cb, c); break;
      case KILN__CMD_COPY:
        region.srcOffset = c->src_off, region.dstOffset = c->dst_off;
        dev->vk.CmdCopyBuffer(cb, c->src->buffer, c->dst->buffer, 1, &region);
        break;
      case KILN__CMD_UPLOAD:
        region.srcOffset = c->staging.offset, region.dstOffset = c->dst_off;
        dev->vk.CmdCopyBuffer(cb, c->staging.block->buffer, c->dst->buffer, 1, &region);
        break;
      case KILN__CMD_DOWNLOAD: {
        const kiln__suballoc *to = c->into ? &c->into->mem : &c->staging;
        region.srcOffset = c->src_off, region.dstOffset = to->offset + c->dst_off;
        dev->vk.CmdCopyBuffer(cb, c->src->buffer, to->block->buffer, 1, &region);
        downloads = true;
        break;
      }
    }
  }
  /* Read-backs: make the copies visible to the host reads after the semaphore wait. */
  if (downloads) barrier(dev, cb, VK_PIPELINE_STAGE_HOST_BIT, VK_ACCESS_HOST_READ_BIT);
  r = dev->vk.EndCommandBuffer(cb);
  if (r != VK_SUCCESS) return vk_error(dev->gpu, r, "vkEndCommandBuffer");
  return 0;
}

/* Copies read-backs out; returns the owned download (or NULL). */
static void *finish_downloads(kiln_gpu_job *job) {
  void *owned = NULL;
  for (size_t i = 0; i < job->n; i++) {
    kiln__cmd *c = &job->cmds[i];
    if (c->kind != KILN__CMD_DOWNLOAD || c->into) continue; /* a readback is read in place */
    void *dst = c->host_dst;
    if (!dst) dst = owned = malloc(c->size);
    if (dst) memcpy(dst, kiln__staging_ptr(&c->staging), c->size);
  }
  return owned;
}

/* ---- what the bridge calls back: job_ops ------------------------------------------------- */

static kiln_gpu_job *job_of(kiln__submission *s) {
  return (kiln_gpu_job *)((char *)s - offsetof(kiln_gpu_job, sub));
}

static int sub_record(kiln__submission *s, VkCommandBuffer cb) { return record(job_of(s), cb); }

static void sub_done(kiln__submission *s, int code, const char *msg) {
  kiln_gpu_job *job = job_of(s);
  if (code) { /* lost: the bridge keeps the job and its staging until sub_discard */
    kiln_promise_reject(job->promise, code, "%s", msg ? msg : kiln_strerror(code));
    return;
  }
  void *owned = finish_downloads(job);
  job_release(job);
  kiln_promise_resolve_owned(job->promise, owned, owned ? free : NULL);
  job_unref(job); /* the launch reference */
}

static void sub_discard(kiln__submission *s) {
  kiln_gpu_job *job = job_of(s);
  for (size_t i = 0; i < job->n; i++)
    if (job->cmds[i].staging.block) kiln__staging_put(job->dev, &job->cmds[i].staging);
  job->dev = NULL; /* its outstanding count was given back when it was lost */
  job_unref(job);
}

static const kiln__submission_ops job_ops = {sub_record, sub_done, sub_discard};

/* ---- dependencies and submission ---------------------------------------------------------- */

/* Fails a job that has not been submitted: resources back, promise rejected, reference gone. */
static void fail_unsubmitted(kiln_gpu_job *job, int code, const char *msg) {
  kiln_gpu_device *dev = job->dev;
  if (dev) atomic_fetch_add_explicit(&dev->failed, 1, memory_order_relaxed);
  job_release(job);
  kiln_promise_reject(job->promise, code, "%s", msg ? msg : kiln_strerror(code));
  job_unref(job);
}

/* The launch reference: hand the job to the bridge, or, if the promise was cancelled meanwhile,
 * just let go (the cancel watcher gave the resources back). */
static void launch(kiln_gpu_job *job) {
  if (!kiln_promise_set_running(job->promise)) {
    job_unref(job);
    return;
  }
  copy_deferred(job);
  job->sub.ops = &job_ops;
  int rc = kiln__bridge_submit(job->dev, &job->sub);
  if (rc) {
    char *msg = rc == KILN_EDEVICE_LOST ? kiln__dev_lost_message(job->dev) : NULL;
    fail_unsubmitted(job, rc, msg);
    free(msg);
  }
}

/* The done-callback on the job's own promise while it waits for dependencies. */
static void on_self_done(kiln_future *f, void *arg) {
  kiln_gpu_job *job = arg;
  if (kiln_future_cancelled(f)) job_release(job);
  job_unref(job);
}

static void on_dep_done(kiln_future *f, void *arg) {
  kiln__dep_slot *slot = arg;
  kiln_gpu_job *job = slot->job;
  const char *msg = NULL;
  int code = kiln_future_cancelled(f) ? KILN_ECANCELLED : kiln_future_error(f, 0, &msg);
  if (code != 0 && !atomic_exchange_explicit(&job->settled, true, memory_order_acq_rel)) {
    if (kiln_promise_set_running(job->promise)) {
      char *m = code == KILN_ECANCELLED
                    ? kiln__strdup_printf("dependency %zu of %zu was cancelled", slot->index + 1,
                                          job->ndeps)
                    : kiln__strdup_printf("dependency %zu of %zu failed: %s: %.160s",
                                          slot->index + 1, job->ndeps, kiln_err_name(code),
                                          msg ? msg : kiln_strerror(code));
      atomic_fetch_add_explicit(&job->dev->failed, 1, memory_order_relaxed);
      job_release(job);
      kiln_promise_reject(job->promise, KILN_EDEPENDENCY, "%s", m ? m : "a dependency failed");
      free(m);
    }
  }
  /* acq_rel: the last callback sees the others' effects (settled, rejection) */
  if (atomic_fetch_sub_explicit(&job->remaining, 1, memory_order_acq_rel) != 1) return;
  if (!atomic_exchange_explicit(&job->settled, true, memory_order_acq_rel)) launch(job);
  else job_unref(job); /* the launch reference */
}

int kiln_gpu_job_submit(kiln_gpu_job *job, kiln_future *const *deps, size_t ndeps,
                        kiln_future **out) {
  *out = NULL;
  int rc = kiln_promise_create(&job->promise);
  if (rc) {
    kiln_gpu_job_discard(job);
    return rc;
  }
  *out = kiln_future_retain(job->promise);
  if (job->error) {
    fail_unsubmitted(job, job->error, "a command of this job was rejected when it was added");
    return 0;
  }
  if (ndeps == 0) {
    launch(job);
    return 0;
  }
  job->slots = calloc(ndeps, sizeof(*job->slots));
  if (!job->slots) {
    fail_unsubmitted(job, KILN_ENOMEM, NULL);
    return 0;
  }
  job->ndeps = ndeps;
  atomic_store_explicit(&job->remaining, ndeps, memory_order_relaxed);
  atomic_fetch_add_explicit(&job->refs, 1, memory_order_relaxed); /* the cancel watcher's */
  if (kiln_future_on_done(job->promise, on_self_done, job) != 0) {
    job_unref(job); /* the watcher's, never registered */
    fail_unsubmitted(job, KILN_ENOMEM, NULL);
    return 0;
  }
  for (size_t i = 0; i < ndeps; i++) {
    job->slots[i] = (kiln__dep_slot){.job = job, .index = i};
    if (kiln_future_on_done(deps[i], on_dep_done, &job->slots[i]) != 0) {
      /* Out of memory for the callback node: count it as a failed dependency. */
      if (!atomic_exchange_explicit(&job->settled, true, memory_order_acq_rel) &&
          kiln_promise_set_running(job->promise)) {
        job_release(job);
        kiln_promise_reject(job->promise, KILN_ENOMEM, "out of memory adding a dependency");
      }
      if (atomic_fetch_sub_explicit(&job->remaining, 1, memory_order_acq_rel) == 1) job_unref(job);
    }
  }
  return 0;
}

/* ---- one-command conveniences ------------------------------------------------------------- */

int kiln_gpu_dispatch(kiln_gpu_kernel *k, kiln_gpu_buffer *const *buffers, const void *push,
                      uint32_t gx, uint32_t gy, uint32_t gz, kiln_future *const *deps, size_t ndeps,
                      kiln_future **out) {
  *out = NULL;
  kiln_gpu_job *job;
  int rc = kiln_gpu_job_create(k->dev, &job);
  if (rc) return rc;
  kiln_gpu_job_dispatch(job, k, buffers, push, gx, gy, gz); /* an error fails the future */
  return kiln_gpu_job_submit(job, deps, ndeps, out);
}

int kiln_gpu_upload(kiln_gpu_buffer *dst, uint64_t offset, const void *data, uint64_t size,
                    kiln_future *const *deps, size_t ndeps, kiln_future **out) {
  *out = NULL;
  kiln_gpu_job *job;
  int rc = kiln_gpu_job_create(dst->dev, &job);
  if (rc) return rc;
  kiln_gpu_job_upload(job, dst, offset, data, size);
  return kiln_gpu_job_submit(job, deps, ndeps, out);
}

int kiln_gpu_download(kiln_gpu_buffer *src, uint64_t offset, uint64_t size,
                      kiln_future *const *deps, size_t ndeps, kiln_future **out) {
  *out = NULL;
  kiln_gpu_job *job;
  int rc = kiln_gpu_job_create(src->dev, &job);
  if (rc) return rc;
  kiln_gpu_job_download(job, src, offset, size, NULL);
  return kiln_gpu_job_submit(job, deps, ndeps, out);
}
