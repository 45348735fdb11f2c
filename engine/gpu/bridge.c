/* bridge.c: from GPU completion to kiln futures. Submission to lanes, the per-device completion
 * thread, and device loss. It carries kiln__submissions (embedded in jobs) and knows nothing else
 * of a job: it reaches the job's side only through the submission's ops.
 *
 * Call graph (-> is a direct call; ~> a call through kiln__submission_ops):
 *
 *   gpu_job.c  launch ---------------> kiln__bridge_submit (any thread)
 *                                        lane_lock, lane_cb
 *              sub_record  <~~~~~~~~~~~~ ops->record (lane->mu held)
 *                                        vkQueueSubmit; on failure lose(), return the code:
 *              fail_unsubmitted <------- (the caller fails its own job)
 *
 *   device.c   open -------------------> kiln__bridge_start -> completion_main (its thread)
 *                                        vkWaitSemaphores(any lane's next value) -> complete_lane
 *              sub_done(0) <~~~~~~~~~~~~ ops->done(s, 0, NULL)
 *                                        lose() (a failed submit, wait or counter read):
 *              sub_done(LOST) <~~~~~~~~~ ops->done(s, KILN_EDEVICE_LOST, msg), then dev->graveyard
 *   device.c   close ------------------> kiln__bridge_stop -> wake -> join
 *              close ------------------> kiln__bridge_free_graveyard
 *              sub_discard <~~~~~~~~~~~~ ops->discard(s)
 *
 * Each lane has a timeline semaphore; its k-th submission signals value k (a queue signals its
 * semaphores in submission order), and the lane keeps its submissions in value order. The
 * device's one completion thread waits, with VK_SEMAPHORE_WAIT_ANY_BIT, for every lane's next
 * value (completed + 1) at once. Waiting for a value nobody has submitted yet is allowed for
 * timeline semaphores (wait-before-signal), so new work needs no wake-up: the wait set is rebuilt
 * after every return and always names the next value of every lane. To make the thread look at
 * its state (at close and at loss) the host signals lane 0's next value itself (wake), when no
 * submission on it is pending. No polling, no thread per submission.
 *
 * Why no separate "wake" semaphore: Mesa's common runtime (lavapipe among others) implements a
 * wait-any over several semaphores whose sync type cannot wait on many by spinning on the CPU.
 * With lavapipe's single queue, waiting on lane 0 alone is one real (sleeping) wait; an extra
 * wake semaphore made the idle completion thread burn a whole core.
 *
 * Loss: the first failing vkQueueSubmit / vkWaitSemaphores / vkGetSemaphoreCounterValue (or the
 * injected Nth submission) marks the device lost. The submissions in flight are failed with
 * KILN_EDEVICE_LOST once their lane has stopped (at once on a really lost device; after the
 * running work on a device whose loss was only reported or injected) and parked in
 * dev->graveyard, whose command buffers and staging are freed at close after vkDeviceWaitIdle.
 *
 * Lock order: dev->mu -> lane->mu. ops->done runs with no engine lock held. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_internal.h"

/* ---- lanes -------------------------------------------------------------------------------- */

/* Locks and returns the first lane with nothing in flight, else the least loaded one. */
static kiln__lane *lane_lock(kiln_gpu_device *dev) {
  for (uint32_t l = 0; l < dev->nlanes; l++) {
    kiln__lane *lane = &dev->lanes[l];
    if (atomic_load_explicit(&lane->in_flight, memory_order_relaxed) == 0 &&
        pthread_mutex_trylock(&lane->mu) == 0)
      return lane;
  }
  kiln__lane *best = &dev->lanes[0];
  for (uint32_t l = 1; l < dev->nlanes; l++)
    if (atomic_load_explicit(&dev->lanes[l].in_flight, memory_order_relaxed) <
        atomic_load_explicit(&best->in_flight, memory_order_relaxed))
      best = &dev->lanes[l];
  pthread_mutex_lock(&best->mu);
  return best;
}

/* A reset command buffer of the lane (lane->mu held). */
static int lane_cb(kiln_gpu_device *dev, kiln__lane *lane, VkCommandBuffer *out) {
  if (lane->nfree) {
    *out = lane->free_cbs[--lane->nfree];
    VkResult r = dev->vk.ResetCommandBuffer(*out, 0);
    if (r == VK_SUCCESS) return 0;
    dev->vk.FreeCommandBuffers(dev->device, lane->pool, 1, out);
    return vk_error(dev->gpu, r, "vkResetCommandBuffer");
  }
  VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                    .commandPool = lane->pool,
                                    .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                    .commandBufferCount = 1};
  VkResult r = dev->vk.AllocateCommandBuffers(dev->device, &ai, out);
  return r == VK_SUCCESS ? 0 : vk_error(dev->gpu, r, "vkAllocateCommandBuffers");
}

/* Gives a command buffer back to the lane's free list (lane->mu held). */
static void lane_cb_put(kiln_gpu_device *dev, kiln__lane *lane, VkCommandBuffer cb) {
  if (lane->nfree == lane->capfree) {
    size_t cap = lane->capfree ? 2 * lane->capfree : 8;
    VkCommandBuffer *p = realloc(lane->free_cbs, cap * sizeof(*p));
    if (!p) {
      dev->vk.FreeCommandBuffers(dev->device, lane->pool, 1, &cb);
      return;
    }
    lane->free_cbs = p;
    lane->capfree = cap;
  }
  lane->free_cbs[lane->nfree++] = cb;
}

/* Wakes the completion thread by signalling lane 0's timeline from the host (its next value).
 * Only valid while lane 0 has no submission whose signal is still pending: at close (nothing
 * outstanding) and at loss (after the lanes have stopped). The value is taken like a
 * submission's, under lane->mu, so values stay strictly increasing and the completion thread
 * simply sees one more (empty) completion on lane 0. */
static void wake(kiln_gpu_device *dev) {
  kiln__lane *lane = &dev->lanes[0];
  pthread_mutex_lock(&lane->mu);
  VkSemaphoreSignalInfo si = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_SIGNAL_INFO,
                              .semaphore = lane->timeline,
                              .value = lane->next_value++};
  VkResult r = dev->vk.SignalSemaphore(dev->device, &si);
  pthread_mutex_unlock(&lane->mu);
  /* A really lost device may refuse; its completion thread has failed its wait already. */
  if (r != VK_SUCCESS && !kiln_gpu_device_lost(dev)) vk_error(dev->gpu, r, "vkSignalSemaphore");
}

/* ---- loss --------------------------------------------------------------------------------- */

/* Fails a submission lost with its device: its owner reports the loss, then it is parked with
 * its resources until close, and its outstanding count is given back. */
static void bury(kiln_gpu_device *dev, kiln__submission *s, const char *msg) {
  atomic_fetch_add_explicit(&dev->failed, 1, memory_order_relaxed);
  s->ops->done(s, KILN_EDEVICE_LOST, msg);
  pthread_mutex_lock(&dev->mu);
  s->next = dev->graveyard;
  dev->graveyard = s;
  if (--dev->outstanding == 0) pthread_cond_broadcast(&dev->idle);
  pthread_mutex_unlock(&dev->mu);
}

/* Marks dev lost (the first caller wins) with a message and fails the submissions in flight.
 * Any thread, no engine lock held. */
static void lose(kiln_gpu_device *dev, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void lose(kiln_gpu_device *dev, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char what[512];
  vsnprintf(what, sizeof(what), fmt, ap);
  va_end(ap);
  pthread_mutex_lock(&dev->mu);
  /* relaxed: `lost` is only stored under dev->mu, which orders it here (lost_message may be NULL
   * after a failed allocation, so it cannot say who came first) */
  if (atomic_load_explicit(&dev->lost, memory_order_relaxed)) {
    pthread_mutex_unlock(&dev->mu);
    return;
  }
  dev->lost_message =
      kiln__strdup_printf("device %u (%s) lost: %s", dev->info.index, dev->info.name, what);
  /* release: pairs with the acquire in kiln_gpu_device_lost; lost_message is set before */
  atomic_store_explicit(&dev->lost, true, memory_order_release);
  pthread_mutex_unlock(&dev->mu);
  const char *msg = dev->lost_message ? dev->lost_message : "device lost";
  kiln__log(dev->gpu, KILN_GPU_LOG_ERROR, "%s", msg);

  /* Every lane's in-flight submissions. Submitters check `lost` under lane->mu before adding,
   * so nothing is added to a lane after it has been emptied here. */
  for (uint32_t l = 0; l < dev->nlanes; l++) {
    kiln__lane *lane = &dev->lanes[l];
    pthread_mutex_lock(&lane->mu);
    kiln__submission *list = lane->head;
    lane->head = lane->tail = NULL;
    uint64_t last = lane->next_value - 1;
    atomic_store_explicit(&lane->in_flight, 0, memory_order_relaxed);
    pthread_mutex_unlock(&lane->mu);
    /* A lost device runs nothing more, and the futures say so: when the loss was only reported
     * (one failed call, or the injected one) the lane may still be executing. Wait until it
     * stops, so that callers who free buffers after these futures fail free nothing in use. A
     * really lost device fails this wait at once. */
    if (list) {
      VkSemaphoreWaitInfo wi = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_WAIT_INFO,
                                .semaphoreCount = 1,
                                .pSemaphores = &lane->timeline,
                                .pValues = &last};
      (void)dev->vk.WaitSemaphores(dev->device, &wi, 10ull * 1000 * 1000 * 1000);
    }
    while (list) {
      kiln__submission *next = list->next;
      bury(dev, list, msg);
      list = next;
    }
  }
  wake(dev);
}

void kiln__bridge_free_graveyard(kiln_gpu_device *dev) {
  kiln__submission *s = dev->graveyard;
  dev->graveyard = NULL;
  while (s) {
    kiln__submission *next = s->next;
    s->ops->discard(s); /* command buffers go with their pools (destroy_lanes) */
    s = next;
  }
}

/* ---- submission --------------------------------------------------------------------------- */

/* Queues s on the lane (lane->mu held) after vkQueueSubmit accepted it. */
static void lane_append(kiln_gpu_device *dev, kiln__lane *lane, kiln__submission *s,
                        VkCommandBuffer cb) {
  s->lane = lane;
  s->cb = cb;
  s->value = lane->next_value++;
  s->next = NULL;
  if (lane->tail) lane->tail->next = s;
  else lane->head = s;
  lane->tail = s;
  atomic_fetch_add_explicit(&lane->in_flight, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&dev->submitted, 1, memory_order_relaxed);
}

/* vkQueueSubmit of cb signalling the lane's next value, or the injected loss. */
static VkResult queue_submit(kiln_gpu_device *dev, kiln__lane *lane, VkCommandBuffer cb) {
  uint64_t n = atomic_fetch_add_explicit(&dev->submissions, 1, memory_order_relaxed) + 1;
  if (dev->cfg.fail_submission && n == dev->cfg.fail_submission)
    return VK_ERROR_DEVICE_LOST; /* injected: reported as if the driver had said so */
  VkTimelineSemaphoreSubmitInfo ts = {.sType = VK_STRUCTURE_TYPE_TIMELINE_SEMAPHORE_SUBMIT_INFO,
                                      .signalSemaphoreValueCount = 1,
                                      .pSignalSemaphoreValues = &lane->next_value};
  VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
                     .pNext = &ts,
                     .commandBufferCount = 1,
                     .pCommandBuffers = &cb,
                     .signalSemaphoreCount = 1,
                     .pSignalSemaphores = &lane->timeline};
  return dev->vk.QueueSubmit(lane->queue, 1, &si, VK_NULL_HANDLE);
}

int kiln__bridge_submit(kiln_gpu_device *dev, kiln__submission *s) {
  kiln__lane *lane = lane_lock(dev);
  VkCommandBuffer cb = VK_NULL_HANDLE;
  int rc = kiln_gpu_device_lost(dev) ? KILN_EDEVICE_LOST : lane_cb(dev, lane, &cb);
  if (!rc) rc = s->ops->record(s, cb);
  VkResult r = rc ? VK_SUCCESS : queue_submit(dev, lane, cb);
  if (!rc && r == VK_SUCCESS) {
    lane_append(dev, lane, s, cb);
    pthread_mutex_unlock(&lane->mu);
    return 0; /* s is the lane's until ops->done */
  }
  if (r != VK_SUCCESS) rc = vk_error(dev->gpu, r, "vkQueueSubmit");
  if (cb) lane_cb_put(dev, lane, cb);
  pthread_mutex_unlock(&lane->mu);
  if (r != VK_SUCCESS)
    lose(dev, "vkQueueSubmit returned %s (submission %llu)%s", kiln__vk_result_name(r),
         (unsigned long long)atomic_load_explicit(&dev->submissions, memory_order_relaxed),
         dev->cfg.fail_submission ? " [injected]" : "");
  return rc;
}

/* ---- the completion thread ---------------------------------------------------------------- */

/* Completes the submissions of a lane whose value the semaphore has reached. */
static void complete_lane(kiln_gpu_device *dev, kiln__lane *lane, uint64_t value) {
  pthread_mutex_lock(&lane->mu);
  kiln__submission *done = NULL, **tail = &done;
  while (lane->head && lane->head->value <= value) {
    kiln__submission *s = lane->head;
    lane->head = s->next;
    s->next = NULL;
    *tail = s;
    tail = &s->next;
    lane_cb_put(dev, lane, s->cb); /* reset by its next user */
    atomic_fetch_sub_explicit(&lane->in_flight, 1, memory_order_relaxed);
  }
  if (!lane->head) lane->tail = NULL;
  pthread_mutex_unlock(&lane->mu);
  lane->completed = value;
  while (done) {
    kiln__submission *next = done->next;
    atomic_fetch_add_explicit(&dev->completed, 1, memory_order_relaxed);
    done->ops->done(done, 0, NULL);
    done = next;
  }
}

/* After a loss nothing is left to collect (lose() took every submission): sleep until close. */
static void park_until_stop(kiln_gpu_device *dev) {
  pthread_mutex_lock(&dev->mu);
  while (!dev->stop) pthread_cond_wait(&dev->idle, &dev->mu);
  pthread_mutex_unlock(&dev->mu);
}

static void *completion_main(void *arg) {
  kiln_gpu_device *dev = arg;
  uint32_t n = dev->nlanes;
  VkSemaphore *sems = calloc(n, sizeof(*sems));
  uint64_t *values = calloc(n, sizeof(*values));
  if (!sems || !values) lose(dev, "out of memory starting the completion thread");
  for (;;) {
    if (kiln_gpu_device_lost(dev)) {
      park_until_stop(dev);
      break;
    }
    for (uint32_t l = 0; l < n; l++) {
      sems[l] = dev->lanes[l].timeline;
      values[l] = dev->lanes[l].completed + 1;
    }
    VkSemaphoreWaitInfo wi = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_WAIT_INFO,
                              .flags = VK_SEMAPHORE_WAIT_ANY_BIT,
                              .semaphoreCount = n,
                              .pSemaphores = sems,
                              .pValues = values};
    VkResult r = dev->vk.WaitSemaphores(dev->device, &wi, UINT64_MAX);
    if (r != VK_SUCCESS && r != VK_TIMEOUT) {
      if (!kiln_gpu_device_lost(dev)) {
        vk_error(dev->gpu, r, "vkWaitSemaphores");
        lose(dev, "vkWaitSemaphores returned %s", kiln__vk_result_name(r));
      }
      continue;
    }
    for (uint32_t l = 0; l < n; l++) {
      uint64_t v = 0;
      r = dev->vk.GetSemaphoreCounterValue(dev->device, dev->lanes[l].timeline, &v);
      if (r != VK_SUCCESS) {
        if (!kiln_gpu_device_lost(dev)) {
          vk_error(dev->gpu, r, "vkGetSemaphoreCounterValue");
          lose(dev, "vkGetSemaphoreCounterValue returned %s", kiln__vk_result_name(r));
        }
        break;
      }
      if (v > dev->lanes[l].completed) complete_lane(dev, &dev->lanes[l], v);
    }
    pthread_mutex_lock(&dev->mu);
    bool stop = dev->stop;
    pthread_mutex_unlock(&dev->mu);
    if (stop) break;
  }
  free(sems);
  free(values);
  return NULL;
}

int kiln__bridge_start(kiln_gpu_device *dev) {
  int e = pthread_create(&dev->thread, NULL, completion_main, dev);
  if (e) {
    kiln__log(dev->gpu, KILN_GPU_LOG_ERROR, "cannot start the completion thread: %s", strerror(e));
    return KILN_ENOMEM;
  }
  dev->thread_started = true;
  return 0;
}

void kiln__bridge_stop(kiln_gpu_device *dev) {
  pthread_mutex_lock(&dev->mu);
  dev->stop = true;
  pthread_cond_broadcast(&dev->idle); /* a thread parked after a real loss */
  pthread_mutex_unlock(&dev->mu);
  wake(dev);
  pthread_join(dev->thread, NULL);
  dev->thread_started = false;
}
