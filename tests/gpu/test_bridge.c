/* test_bridge.c: GPU work as kiln futures: many in flight over two devices, dependency chains
 * between CPU and GPU, kiln_wait modes over a mix, cancellation, and device loss. */
// kt: timeout 180
#define _GNU_SOURCE
#include <stdlib.h>

#include "gpu_test_util.h"

/* A job that writes `value` at slot `i` of buf and reads it back (the future's value). */
static kiln_future *roundtrip(kiln_gpu_buffer *buf, uint32_t i, uint32_t value,
                              kiln_future *const *deps, size_t ndeps) {
  kiln_gpu_job *job;
  KT_CODE(kiln_gpu_job_create(kiln_gpu_buffer_get_device(buf), &job), KILN_OK);
  KT_CODE(kiln_gpu_job_upload(job, buf, 4ull * i, &value, 4), KILN_OK);
  KT_CODE(kiln_gpu_job_download(job, buf, 4ull * i, 4, NULL), KILN_OK);
  kiln_future *f;
  KT_CODE(kiln_gpu_job_submit(job, deps, ndeps, &f), KILN_OK);
  return f;
}

/* 1000 submissions in flight over two VkDevices; as_completed yields each exactly once, and each
 * carries its own value. */
TEST(thousand_in_flight) {
  enum { JOBS = 1000 };
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *devs[2] = {tg_device(gpu, NULL), tg_device(gpu, NULL)};
  kiln_gpu_buffer *bufs[2];
  for (int d = 0; d < 2; d++) KT_CODE(kiln_gpu_buffer_create(devs[d], JOBS * 4, &bufs[d]), KILN_OK);
  kiln_future **fs = calloc(JOBS, sizeof(*fs));
  int *seen = calloc(JOBS, sizeof(*seen));
  int per_dev[2] = {0, 0};
  for (uint32_t i = 0; i < JOBS; i++) {
    int d = kiln_gpu_device_pick(devs, 2);
    KT_TRUE(d == 0 || d == 1);
    per_dev[d]++;
    fs[i] = roundtrip(bufs[d], i, 0x1000000u + i, NULL, 0);
  }
  kiln_completion *c;
  KT_CODE(kiln_as_completed(fs, JOBS, 120.0, &c), KILN_OK);
  size_t yielded = 0;
  kiln_future *f;
  int rc;
  while ((rc = kiln_completion_next(c, &f)) == 0) {
    size_t i = 0;
    while (i < JOBS && fs[i] != f) i++;
    KT_TRUE(i < JOBS);
    seen[i]++;
    void *v;
    TG_OK(f, &v);
    KT_EQ(*(uint32_t *)v, 0x1000000u + i);
    kiln_future_release(f);
    yielded++;
  }
  KT_CODE(rc, KILN_EEOF);
  KT_EQ(yielded, JOBS);
  for (int i = 0; i < JOBS; i++)
    if (seen[i] != 1) KT_FAIL("future %d yielded %d times", i, seen[i]);
  kiln_completion_destroy(c);
  /* Both devices took work, and their counters add up. */
  KT_TRUE(per_dev[0] > 0 && per_dev[1] > 0);
  for (int d = 0; d < 2; d++) {
    kiln_gpu_device_stats st;
    kiln_gpu_device_get_stats(devs[d], &st);
    KT_EQ(st.completed, per_dev[d]);
    KT_EQ(st.submitted, per_dev[d]);
    KT_EQ(st.in_flight, 0);
  }
  for (int i = 0; i < JOBS; i++) kiln_future_release(fs[i]);
  free(fs);
  free(seen);
  for (int d = 0; d < 2; d++) {
    kiln_gpu_buffer_destroy(bufs[d]);
    kiln_gpu_device_close(devs[d]);
  }
  tg_finish(gpu);
}

/* ---- CPU -> GPU -> CPU ------------------------------------------------------------------ */

enum { CN = 256 };
typedef struct chain {
  uint32_t input[CN];
  kiln_future *gpu_f;
  uint64_t sum;
} chain;

static int produce(void *arg, void **result) {
  chain *c = arg;
  for (uint32_t i = 0; i < CN; i++) c->input[i] = 3 * i;
  *result = c;
  return 0;
}

static int produce_fail(void *arg, void **result) {
  (void)arg, (void)result;
  return kiln_task_fail(KILN_EIO, "the producer could not read its input");
}

static int consume(void *arg, void **result) {
  chain *c = arg;
  void *v;
  int rc = kiln_future_result(c->gpu_f, 0, &v); /* done: this task depends on it */
  if (rc) return rc;
  const uint32_t *out = v;
  c->sum = 0;
  for (uint32_t i = 0; i < CN; i++) {
    if (out[i] != 3 * i + 7) return kiln_task_fail(KILN_EINVAL, "out[%u] = %u", i, out[i]);
    c->sum += out[i];
  }
  *result = c;
  return 0;
}

static kiln_future *gpu_step(kiln_gpu_kernel *k, kiln_gpu_buffer *buf, chain *c, kiln_future *dep) {
  kiln_gpu_job *job;
  KT_CODE(kiln_gpu_job_create(kiln_gpu_buffer_get_device(buf), &job), KILN_OK);
  KT_CODE(kiln_gpu_job_upload_deferred(job, buf, 0, c->input, sizeof(c->input)), KILN_OK);
  uint32_t push[2] = {CN, 7};
  KT_CODE(kiln_gpu_job_dispatch(job, k, &buf, push, CN / 64, 1, 1), KILN_OK);
  KT_CODE(kiln_gpu_job_download(job, buf, 0, sizeof(c->input), NULL), KILN_OK);
  kiln_future *f;
  KT_CODE(kiln_gpu_job_submit(job, &dep, 1, &f), KILN_OK);
  return f;
}

TEST(cpu_gpu_cpu_chain) {
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  kiln_gpu_kernel *k = tg_kernel(dev, "iadd", 1, 8);
  kiln_gpu_buffer *buf;
  KT_CODE(kiln_gpu_buffer_create(dev, CN * 4, &buf), KILN_OK);
  kiln_pool *pool = tg_pool(2);

  /* A gate holds the producer back, so the GPU job is certainly waiting when it is submitted. */
  kiln_future *gate;
  KT_CODE(kiln_promise_create(&gate), KILN_OK);
  chain c = {0};
  kiln_future *cpu1, *cpu2;
  KT_CODE(kiln_submit_after(pool, &gate, 1, produce, &c, &cpu1), KILN_OK);
  c.gpu_f = gpu_step(k, buf, &c, cpu1);
  KT_CODE(kiln_submit_after(pool, &c.gpu_f, 1, consume, &c, &cpu2), KILN_OK);
  KT_FALSE(kiln_future_done(c.gpu_f));
  kiln_gpu_device_stats st;
  kiln_gpu_device_get_stats(dev, &st);
  KT_EQ(st.submitted, 0);
  KT_CODE(kiln_promise_resolve(gate, NULL), KILN_OK);
  TG_OK(cpu2, NULL);
  uint64_t want = 0;
  for (uint32_t i = 0; i < CN; i++) want += 3 * i + 7;
  KT_EQ(c.sum, want);
  kiln_future_release(cpu1);
  kiln_future_release(cpu2);
  kiln_future_release(c.gpu_f);
  kiln_future_release(gate);

  /* The producer fails: the GPU job fails with KILN_EDEPENDENCY naming the cause, without being
   * submitted, and so does the consumer. */
  chain c2 = {0};
  KT_CODE(kiln_submit(pool, produce_fail, &c2, &cpu1), KILN_OK);
  c2.gpu_f = gpu_step(k, buf, &c2, cpu1);
  KT_CODE(kiln_submit_after(pool, &c2.gpu_f, 1, consume, &c2, &cpu2), KILN_OK);
  KT_CODE(kiln_future_result(cpu2, 60, NULL), KILN_EDEPENDENCY);
  const char *msg;
  KT_CODE(kiln_future_error(c2.gpu_f, 0, &msg), KILN_EDEPENDENCY);
  KT_STR_CONTAINS(msg, "dependency 1 of 1 failed: KILN_EIO: the producer could not read");
  kiln_gpu_device_get_stats(dev, &st);
  KT_EQ(st.submitted, 1);
  KT_EQ(st.failed, 1);
  kiln_future_release(cpu1);
  kiln_future_release(cpu2);
  kiln_future_release(c2.gpu_f);

  kiln_pool_destroy(pool);
  kiln_gpu_buffer_destroy(buf);
  kiln_gpu_kernel_destroy(k);
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
}

/* ---- kiln_wait over CPU and GPU futures ------------------------------------------------- */

static int quick(void *arg, void **result) {
  *result = arg;
  return 0;
}

TEST(wait_modes) {
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  kiln_gpu_buffer *buf;
  KT_CODE(kiln_gpu_buffer_create(dev, 64, &buf), KILN_OK);
  kiln_pool *pool = tg_pool(2);
  kiln_future *gate;
  KT_CODE(kiln_promise_create(&gate), KILN_OK);

  /* [0] CPU done soon, [1] GPU now, [2] GPU held by the gate, [3] CPU held by the gate */
  kiln_future *fs[4];
  KT_CODE(kiln_submit(pool, quick, NULL, &fs[0]), KILN_OK);
  fs[1] = roundtrip(buf, 1, 11, NULL, 0);
  fs[2] = roundtrip(buf, 2, 22, &gate, 1);
  KT_CODE(kiln_submit_after(pool, &gate, 1, quick, NULL, &fs[3]), KILN_OK);
  kiln_future *held[2] = {fs[2], fs[3]};

  size_t ndone;
  KT_CODE(kiln_wait(fs, 4, KILN_FIRST_COMPLETED, 60, &ndone), KILN_OK);
  KT_TRUE(ndone >= 1);
  for (size_t i = 0; i < ndone; i++) KT_TRUE(fs[i] != held[0] && fs[i] != held[1]);
  /* ALL_COMPLETED times out while the gate is closed: the held ones are still pending. */
  double t0 = kt_now();
  KT_CODE(kiln_wait(fs, 4, KILN_ALL_COMPLETED, 0.2, &ndone), KILN_ETIMEDOUT);
  KT_TIMED(kt_now() - t0, 0.2);
  KT_EQ(ndone, 2);
  KT_FALSE(kiln_future_done(held[0]));
  /* FIRST_EXCEPTION returns at a failing GPU job even though others are pending. */
  kiln_gpu_job *bad;
  KT_CODE(kiln_gpu_job_create(dev, &bad), KILN_OK);
  kiln_gpu_job_download(bad, buf, 60, 8, NULL); /* out of range: the job fails */
  kiln_future *fail_f;
  KT_CODE(kiln_gpu_job_submit(bad, NULL, 0, &fail_f), KILN_OK);
  kiln_future *mix[3] = {held[0], fail_f, held[1]};
  KT_CODE(kiln_wait(mix, 3, KILN_FIRST_EXCEPTION, 60, &ndone), KILN_OK);
  KT_EQ(ndone, 1);
  KT_PTR_EQ(mix[0], fail_f);
  /* Open the gate: ALL_COMPLETED over all of them. */
  KT_CODE(kiln_promise_resolve(gate, NULL), KILN_OK);
  KT_CODE(kiln_wait(fs, 4, KILN_ALL_COMPLETED, 60, &ndone), KILN_OK);
  KT_EQ(ndone, 4);
  void *v;
  TG_OK(held[0], &v);
  KT_EQ(*(uint32_t *)v, 22);

  for (int i = 0; i < 4; i++) kiln_future_release(fs[i]);
  kiln_future_release(fail_f);
  kiln_future_release(gate);
  kiln_pool_destroy(pool);
  kiln_gpu_buffer_destroy(buf);
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
}

/* ---- cancellation ----------------------------------------------------------------------- */

TEST(cancel_unsubmitted) {
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  kiln_gpu_buffer *buf;
  KT_CODE(kiln_gpu_buffer_create(dev, 64, &buf), KILN_OK);
  kiln_future *gate;
  KT_CODE(kiln_promise_create(&gate), KILN_OK);

  kiln_future *waiting = roundtrip(buf, 0, 5, &gate, 1);
  kiln_future *after = roundtrip(buf, 1, 6, &waiting, 1); /* depends on the cancelled one */
  KT_TRUE(kiln_future_cancel(waiting));
  KT_TRUE(kiln_future_cancelled(waiting));
  KT_CODE(kiln_future_result(waiting, 0, NULL), KILN_ECANCELLED);
  const char *msg;
  KT_CODE(kiln_future_error(after, 60, &msg), KILN_EDEPENDENCY);
  KT_STR_CONTAINS(msg, "was cancelled");
  KT_CODE(kiln_promise_resolve(gate, NULL), KILN_OK); /* the cancelled job never runs */

  /* A submitted job cannot be cancelled and completes. */
  kiln_future *running = roundtrip(buf, 2, 7, NULL, 0);
  KT_FALSE(kiln_future_cancel(running));
  void *v;
  TG_OK(running, &v);
  KT_EQ(*(uint32_t *)v, 7);
  KT_FALSE(kiln_future_cancelled(running));

  kiln_gpu_device_stats st;
  kiln_gpu_device_get_stats(dev, &st);
  KT_EQ(st.submitted, 1);
  kiln_future_release(waiting);
  kiln_future_release(after);
  kiln_future_release(running);
  kiln_future_release(gate);
  kiln_gpu_buffer_destroy(buf);
  kiln_gpu_device_close(dev); /* returns: the cancelled jobs gave their resources back */
  tg_finish(gpu);
}

/* ---- device loss ------------------------------------------------------------------------ */

/* A done-callback that parks the completion thread of job 1's device until released, so that
 * jobs 2..4 are certainly still in flight (not collected) when job 5's submission loses the
 * device: the test does not depend on timing. */
typedef struct parker {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool entered, released;
} parker;

static void park(kiln_future *f, void *arg) {
  (void)f;
  parker *p = arg;
  pthread_mutex_lock(&p->mu);
  p->entered = true;
  pthread_cond_broadcast(&p->cv);
  while (!p->released) pthread_cond_wait(&p->cv, &p->mu);
  pthread_mutex_unlock(&p->mu);
}

static void parker_set(parker *p, bool *flag) {
  pthread_mutex_lock(&p->mu);
  *flag = true;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

static void parker_wait_entered(parker *p) {
  pthread_mutex_lock(&p->mu);
  while (!p->entered) pthread_cond_wait(&p->cv, &p->mu);
  pthread_mutex_unlock(&p->mu);
}

/* Device A's 5th submission reports VK_ERROR_DEVICE_LOST. Exactly the futures of A that had not
 * completed fail with KILN_EDEVICE_LOST and a message naming the device (the three in flight and
 * the 5th); A's completed job keeps its value; A's jobs still waiting for a dependency fail when
 * they launch; new work on A is refused; device B, busy at the same time, finishes everything. */
TEST(device_loss) {
  enum { PER = 40 };
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device_config cfg;
  kiln_gpu_device_config_default(&cfg);
  cfg.pipeline_cache = false;
  cfg.fail_submission = 5;
  kiln_gpu_device *a = tg_device(gpu, &cfg), *b = tg_device(gpu, NULL);
  kiln_gpu_buffer *ba, *bb;
  KT_CODE(kiln_gpu_buffer_create(a, PER * 4, &ba), KILN_OK);
  KT_CODE(kiln_gpu_buffer_create(b, PER * 4, &bb), KILN_OK);
  kiln_future *gate, *gate1;
  KT_CODE(kiln_promise_create(&gate), KILN_OK);
  KT_CODE(kiln_promise_create(&gate1), KILN_OK);
  parker pk = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

  kiln_future *held[4], *fa[6], *fb[PER];
  for (int i = 0; i < 4; i++) held[i] = roundtrip(ba, 10u + (uint32_t)i, 900, &gate, 1);
  fa[1] = roundtrip(ba, 1, 101, &gate1, 1);
  KT_CODE(kiln_future_on_done(fa[1], park, &pk), KILN_OK);
  KT_CODE(kiln_promise_resolve(gate1, NULL), KILN_OK); /* submission 1 */
  parker_wait_entered(&pk); /* job 1 is complete; A's completion thread is parked */
  for (uint32_t i = 0; i < PER; i++) fb[i] = roundtrip(bb, i, 200 + i, NULL, 0);
  for (uint32_t i = 2; i <= 4; i++) fa[i] = roundtrip(ba, i, 100 + i, NULL, 0);
  KT_FALSE(kiln_gpu_device_lost(a));
  fa[5] = roundtrip(ba, 5, 105, NULL, 0); /* submission 5: the loss, in this thread */
  KT_TRUE(kiln_gpu_device_lost(a));
  for (int i = 2; i <= 5; i++) {
    /* Failed already (timeout 0), though their GPU work may well have finished. */
    KT_CODE(kiln_future_result(fa[i], 0, NULL), KILN_EDEVICE_LOST);
    const char *msg;
    kiln_future_error(fa[i], 0, &msg);
    KT_STR_CONTAINS(msg, "lost");
    kiln_gpu_device_info ia;
    kiln_gpu_device_get_info(a, &ia);
    KT_STR_CONTAINS(msg, ia.name);
    KT_STR_CONTAINS(msg, "VK_ERROR_DEVICE_LOST");
    KT_STR_CONTAINS(msg, "[injected]");
  }
  void *v;
  TG_OK(fa[1], &v);
  KT_EQ(*(uint32_t *)v, 101);
  kiln_gpu_job *job;
  KT_CODE(kiln_gpu_job_create(a, &job), KILN_EDEVICE_LOST);
  parker_set(&pk, &pk.released);

  for (uint32_t i = 0; i < PER; i++) {
    TG_OK(fb[i], &v);
    KT_EQ(*(uint32_t *)v, 200 + i);
  }
  KT_FALSE(kiln_gpu_device_lost(b));
  /* The held jobs launch after the loss and fail the same way. */
  KT_CODE(kiln_promise_resolve(gate, NULL), KILN_OK);
  for (int i = 0; i < 4; i++) KT_CODE(kiln_future_result(held[i], 60, NULL), KILN_EDEVICE_LOST);
  kiln_gpu_device *devs[2] = {a, b};
  KT_EQ(kiln_gpu_device_pick(devs, 2), 1);
  kiln_future *again = roundtrip(bb, 0, 4242, NULL, 0);
  TG_OK(again, &v);
  KT_EQ(*(uint32_t *)v, 4242);

  kiln_gpu_device_stats sa, sb;
  kiln_gpu_device_get_stats(a, &sa);
  kiln_gpu_device_get_stats(b, &sb);
  KT_EQ(sa.submitted, 4);
  KT_EQ(sa.completed, 1);
  KT_EQ(sa.failed, 4 + 4);
  KT_EQ(sa.in_flight, 0);
  KT_EQ(sb.completed, PER + 1);
  KT_EQ(sb.failed, 0);

  for (int i = 1; i <= 5; i++) kiln_future_release(fa[i]);
  for (uint32_t i = 0; i < PER; i++) kiln_future_release(fb[i]);
  for (int i = 0; i < 4; i++) kiln_future_release(held[i]);
  kiln_future_release(again);
  kiln_future_release(gate);
  kiln_future_release(gate1);
  kiln_gpu_buffer_destroy(ba);
  kiln_gpu_buffer_destroy(bb);
  kiln_gpu_device_close(a); /* waits for the really running work of the injected loss */
  kiln_gpu_device_close(b);
  tg_finish(gpu);
}
