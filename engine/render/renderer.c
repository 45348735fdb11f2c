/* renderer.c: the renderer (kiln/render.h): scene upload per device, frames as GPU jobs of
 * tile x pass dispatches of shaders/pathtrace/pathtrace.comp, and the read-back into a kiln_image.
 *
 * A frame: one job on the chosen device (every dispatch of every tile and pass in sample order,
 * then the downloads of the colour and of the AOV planes asked for, into the frame's mapped
 * read-back memory); its future's done-callback queues a finishing task on the config's pool (or
 * the renderer's own one-thread pool without one), which builds the image straight from that
 * memory, gives the frame's memory back to its device's pool (frames.c) and resolves the frame's
 * promise. Frames share the per-device memory pools (a leaf mutex each, frames.c), the counters
 * (relaxed atomics), the list of parked frames (a lock-free stack, see park) and the kernels made
 * for scene variants (one mutex, taken to find or make one); the rest of a renderer is immutable
 * after create. The scene's buffers (their layout is the shader's: shaders/pathtrace/layout.h)
 * are built by pack.c.
 *
 * A frame of a scene variant (kiln_renderer_submit_scene, variant.c) binds the scene's buffers
 * where the variant's bytes are the same, and its own (uploaded by the frame's job, before its
 * dispatches, freed with the frame) where they differ; its kernel is specialised for the
 * variant exactly as a renderer of the variant alone would specialise it, so its pixels are
 * that renderer's. */
#include "kiln/render.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_internal.h"
#include "kiln/scene.h"
#include "render_internal.h"

enum { NBUF = PT_BIND_COUNT };

typedef struct dev_slot {
  kiln_gpu_device *dev;
  kiln_gpu_kernel *kernel;
  kiln_gpu_buffer *buf[NBUF]; /* the scene's, by binding; NULL at ACCUM, AOV (per frame) and the
                                 texel bindings T* (NODES, PRIMS... or SCENE again, bound at each
                                 submit) */
  uint32_t tile, pass;        /* the config's tile_size and pass_spp, or this device's defaults */
  uint32_t features;          /* its kernel's KILN__RF_* */
  uint32_t uniform_vec4s;     /* its kernel's PT_SC_UNIFORM_VEC4S (0: SCENE not read) */
  /* kernels made for scene variants whose features or SCENE length differ from the scene's
   * (kiln_renderer_submit_scene): made on first use, kept for the renderer's life; under r->mu */
  struct variant_kernel *vkernels;
  size_t nvkernels;
  kiln__frame_pool pool; /* its frames' memory, reused */
  bool pool_ready;       /* pool initialised (destroy's test) */
} dev_slot;

/* The idle frame memory a device keeps (device and host bytes together): a few frames at 1024^2
 * with every plane, hundreds at 256^2. */
enum { FRAME_POOL_BYTES = 512u << 20 };

typedef struct variant_kernel {
  uint32_t features, uniform_vec4s;
  kiln_gpu_kernel *kernel;
} variant_kernel;

typedef struct frame frame;

struct kiln_renderer {
  dev_slot *devs;
  size_t ndevs;
  kiln_pool *finisher; /* finishes frames: cfg.pool, else own_pool */
  kiln_pool *own_pool; /* one thread, without cfg.pool; NULL with it */
  kiln_renderer_config cfg;
  kiln__camera camera;
  kiln__settings settings;
  _Atomic(frame *) parked; /* frames whose job runs unwatched (see park); freed by destroy */
  atomic_int fail_on_done; /* test seam: kiln__renderer_fail_on_done */
  /* counters (kiln__renderer_get_stats); relaxed: ordered with nothing else */
  atomic_uint_fast64_t frames, aov_planes, bytes_read_back;
  /* cfg.scene_variants: the scene as uploaded (its BVH, packed buffers and geometry), what
   * variants are compared with; read-only after create */
  kiln__variant_base *base;
  pthread_mutex_t mu; /* guards each dev_slot's vkernels (taken only to find or make one) */
};

struct frame {
  kiln_renderer *r;
  dev_slot *d;
  kiln__frame_bufs *bufs; /* from d->pool; back to it when the job is done */
  int32_t w, h;
  uint32_t spp;
  unsigned planes;              /* KILN_PLANE_*, colour always, uv with object_id */
  kiln_gpu_buffer *scene[NBUF]; /* a variant's buffers that differ from the scene's (owned) */
  kiln_future *job, *promise;
  frame *next_parked;
};

void kiln_renderer_config_default(kiln_renderer_config *cfg) { memset(cfg, 0, sizeof *cfg); }

/* Tile and pass sizes when the config leaves them 0. On a CPU device (lavapipe) they make no
 * measurable difference (docs/PERFORMANCE.md) and a small tile keeps one dispatch short; on a GPU a
 * 64x64 tile is 64 workgroups, a sliver of a device with tens of multiprocessors, and every
 * dispatch of a frame waits for the previous one: a whole frame up to 1024x1024 a dispatch, 8
 * samples a pass (chosen, not yet measured on a GPU). */
static void device_tiles(const kiln_renderer_config *cfg, kiln_gpu_device *dev, dev_slot *d) {
  kiln_gpu_device_info di;
  kiln_gpu_device_get_info(dev, &di);
  bool cpu = di.type == KILN_GPU_TYPE_CPU;
  d->tile = cfg->tile_size ? cfg->tile_size : cpu ? 64 : 1024;
  d->pass = cfg->pass_spp ? cfg->pass_spp : cpu ? 4 : 8;
}

/* ---- create / destroy ------------------------------------------------------------------- */

/* A copy of the embedded pathtrace SPIR-V (malloc'd, the caller frees it) whose boolean
 * specialization constants have the defaults of features (SpecId k: bit k) and whose integer
 * ones have the values in ints (by SpecId; the others are booleans): their
 * OpSpecConstantTrue / OpSpecConstantFalse opcodes and OpSpecConstant values rewritten, the same
 * as specializing them at pipeline creation. 0, KILN_EINVAL (no such shader, or one without the
 * constants that features and ints set), KILN_ENOMEM. */
static int specialised_spirv(uint32_t features, const uint32_t ints[PT_SC_COUNT], uint32_t **out,
                             size_t *size) {
  enum { OP_SPEC_TRUE = 48, OP_SPEC_FALSE = 49, OP_SPEC = 50, OP_DECORATE = 71, DECO_SPEC_ID = 1 };
  const uint32_t *src;
  *out = NULL;
  int rc = kiln_gpu_builtin_spirv("pathtrace", &src, size);
  if (rc) return rc;
  size_t n = *size / 4;
  uint32_t *w = malloc(*size);
  if (!w) return KILN_ENOMEM;
  memcpy(w, src, *size);
  uint32_t ids[PT_SC_COUNT] = {0}; /* result id of each SpecId; 0: none */
  for (size_t pass = 0; pass < 2; pass++) {
    for (size_t i = 5, len; i < n; i += len) { /* after the 5-word header */
      len = w[i] >> 16;
      uint32_t op = w[i] & 0xffff;
      if (len == 0 || i + len > n) break; /* malformed: leave the rest as it is */
      if (pass == 0 && op == OP_DECORATE && len == 4 && w[i + 2] == DECO_SPEC_ID &&
          w[i + 3] < PT_SC_COUNT)
        ids[w[i + 3]] = w[i + 1];
      for (uint32_t k = 0; pass == 1 && k < PT_SC_COUNT; k++) {
        if (!ids[k]) continue;
        if (op == OP_SPEC && len == 4 && ids[k] == w[i + 2] && ints[k]) w[i + 3] = ints[k];
        if ((op == OP_SPEC_TRUE || op == OP_SPEC_FALSE) && len == 3 && ids[k] == w[i + 2])
          w[i] = (len << 16) | ((features >> k & 1) ? OP_SPEC_TRUE : OP_SPEC_FALSE);
      }
    }
  }
  bool missing = (features & KILN__RF_TEXEL) && !ids[PT_SC_SCENE_TEXEL];
  for (uint32_t k = 0; k < PT_SC_COUNT; k++) missing |= ints[k] && !ids[k];
  if (missing) { /* a shader without them */
    free(w);
    return KILN_EINVAL;
  }
  *out = w;
  return 0;
}

/* render_internal.h's KILN__TEXEL_BINDINGS as a table */
#define TEXEL_ENTRY(t, o, w) {.texel = (t), .of = (o), .words = (w)},
static const struct {
  int texel, of;
  bool words;
} texel_bindings[] = {KILN__TEXEL_BINDINGS(TEXEL_ENTRY)};

/* The features of a device's kernel: the pack's, with where the scene is read from, by the
 * config, the device's type and what fits: the shared copy PT_SHARED_VEC4S, the uniform
 * buffer PT_UNIFORM_VEC4S_MAX and the device's maxUniformBufferRange, texel buffers the device's
 * maxTexelBufferElements. AUTO: texel fetches (with the uniform buffer where it fits) on a CPU
 * device; elsewhere the shared copy where it fits; else the storage buffers. */
static uint32_t scene_memory(const kiln__render_buffers *p, kiln_renderer_scene_memory m,
                             kiln_gpu_device *dev) {
  kiln_gpu_device_info di;
  kiln_gpu_device_get_info(dev, &di);
  const kiln_gpu_device_info *info = &di;
  /* the shared copy and the uniform block hold the flat geometry only (pack.c) */
  bool inst = p->features & KILN__RF_INSTANCES;
  bool shared = p->scene_vec4s <= PT_SHARED_VEC4S && !inst;
  bool uniform = p->scene_vec4s <= PT_UNIFORM_VEC4S_MAX &&
                 p->scene_vec4s * 16 <= info->max_uniform_range && !inst;
  bool texel = true;
  for (size_t i = 0; i < sizeof texel_bindings / sizeof texel_bindings[0]; i++)
    texel = texel &&
            p->size[texel_bindings[i].of] / (texel_bindings[i].words ? 4 : 16) <= info->max_texels;
  if (m == KILN_RENDERER_SCENE_AUTO)
    m = info->type == KILN_GPU_TYPE_CPU ? KILN_RENDERER_SCENE_TEXEL : KILN_RENDERER_SCENE_SHARED;
  uint32_t u = uniform ? KILN__RF_SHARED | KILN__RF_UNIFORM : 0;
  /* CPU devices: workgroups spread over their tile (groups.glsl, spread_cell) */
  uint32_t f = p->features | (info->type == KILN_GPU_TYPE_CPU ? KILN__RF_SPREAD : 0);
  if (m == KILN_RENDERER_SCENE_UNIFORM) return f | u;
  if (m == KILN_RENDERER_SCENE_SHARED && shared) return f | KILN__RF_SHARED;
  if (m == KILN_RENDERER_SCENE_TEXEL) return f | u | (texel ? KILN__RF_TEXEL : 0);
  return f;
}

/* The bindings and push constants every kernel of the renderer has (pathtrace's layout). */
static void kernel_config(kiln_gpu_kernel_config *kc) {
  kiln_gpu_kernel_config_default(kc);
  kc->buffers = NBUF;
  kc->uniform_buffers = 1u << PT_BIND_SCENE;
  for (size_t i = 0; i < sizeof texel_bindings / sizeof texel_bindings[0]; i++) {
    uint32_t bit = 1u << texel_bindings[i].texel;
    if (texel_bindings[i].words) kc->word_texel_buffers |= bit;
    else kc->texel_buffers |= bit;
  }
  kc->push_size = sizeof(pt_push);
}

static void frame_free(frame *f);

void kiln_renderer_destroy(kiln_renderer *r) {
  if (!r) return;
  /* acquire: pairs with park's release, so that each parked frame's fields are seen whole */
  frame *f = atomic_exchange_explicit(&r->parked, NULL, memory_order_acquire);
  while (f) {
    frame *next = f->next_parked;
    kiln_future_result(f->job, -1, NULL); /* its buffers are in use until the job is done */
    frame_free(f);
    f = next;
  }
  if (r->own_pool) kiln_pool_destroy(r->own_pool);
  for (size_t i = 0; i < r->ndevs; i++) {
    dev_slot *d = &r->devs[i];
    if (d->pool_ready) kiln__frame_pool_fini(&d->pool);
    for (int k = 0; k < NBUF; k++) kiln_gpu_buffer_destroy(d->buf[k]);
    kiln_gpu_kernel_destroy(d->kernel);
    for (size_t j = 0; j < d->nvkernels; j++) kiln_gpu_kernel_destroy(d->vkernels[j].kernel);
    free(d->vkernels);
  }
  kiln__variant_base_free(r->base);
  pthread_mutex_destroy(&r->mu);
  free(r->devs);
  free(r);
}

/* The pathtrace kernel for dev specialised for features, reading a SCENE uniform block of
 * uniform_vec4s uvec4s (0: none). The same arguments give the same SPIR-V, so a scene variant's
 * kernel is the one a renderer made for that variant alone would have. */
static int make_kernel(kiln_gpu_device *dev, uint32_t features, uint32_t uniform_vec4s,
                       kiln_gpu_kernel **out) {
  bool uniform = features & KILN__RF_UNIFORM, shared = (features & KILN__RF_SHARED) && !uniform;
  /* the arrays the kernel does not use keep their length 1, the shader's default */
  uint32_t ints[PT_SC_COUNT] = {[PT_SC_UNIFORM_VEC4S] = uniform ? uniform_vec4s : 0,
                                [PT_SC_SHARED_VEC4S] = shared ? PT_SHARED_VEC4S : 0};
  uint32_t *spirv;
  size_t spirv_size;
  int rc = specialised_spirv(features, ints, &spirv, &spirv_size);
  if (rc) return rc;
  kiln_gpu_kernel_config kc;
  kernel_config(&kc);
  kc.spirv = spirv;
  kc.spirv_size = spirv_size;
  rc = kiln_gpu_kernel_create(dev, &kc, out);
  free(spirv);
  return rc;
}

/* What binding k of packed scene p holds on a device whose kernel has features: SCENE is read
 * only where the kernel reads the uniform buffer; elsewhere 16 zero bytes (its block is then one
 * uvec4), within any device's maxUniformBufferRange. */
static const void *bound_data(const kiln__render_buffers *p, int k, uint32_t features,
                              size_t *size) {
  static const uint8_t zeros[16];
  bool dummy = k == PT_BIND_SCENE && !(features & KILN__RF_UNIFORM);
  *size = dummy ? sizeof zeros : p->size[k];
  return dummy ? zeros : p->data[k];
}

/* pathtrace_null for dev (kiln__renderer_null_kernel), with one dispatch a frame: tiles and
 * passes only spread the tracing's cost. */
static int make_null_kernel(dev_slot *d, kiln_gpu_kernel **out) {
  kiln_gpu_kernel_config kc;
  kernel_config(&kc);
  kc.builtin = "pathtrace_null";
  int rc = kiln_gpu_kernel_create(d->dev, &kc, out);
  if (!rc) d->tile = 1u << 16, d->pass = 1u << 30;
  return rc;
}

/* Makes device slot d's kernel for p (pathtrace_null if null_kernel) and uploads p's buffers into
 * d->buf; waits for the upload. */
static int upload_scene(const kiln_renderer_config *cfg, const kiln__render_buffers *p,
                        bool null_kernel, dev_slot *d) {
  device_tiles(cfg, d->dev, d);
  d->features = scene_memory(p, cfg->scene_memory, d->dev);
  d->uniform_vec4s = d->features & KILN__RF_UNIFORM ? (uint32_t)p->scene_vec4s : 0;
  int rc = null_kernel ? make_null_kernel(d, &d->kernel)
                       : make_kernel(d->dev, d->features, d->uniform_vec4s, &d->kernel);
  kiln_gpu_job *job;
  if (rc || (rc = kiln_gpu_job_create(d->dev, &job))) return rc;
  for (int k = 0; k < NBUF && !rc; k++) {
    if (!p->data[k]) continue; /* per-frame buffers; the texel bindings, bound at submit */
    size_t size;
    const void *data = bound_data(p, k, d->features, &size);
    rc = kiln_gpu_buffer_create(d->dev, size, &d->buf[k]);
    if (!rc) rc = kiln_gpu_job_upload(job, d->buf[k], 0, data, size);
  }
  if (rc) {
    kiln_gpu_job_discard(job);
    return rc;
  }
  kiln_future *f;
  if ((rc = kiln_gpu_job_submit(job, NULL, 0, &f))) return rc;
  rc = kiln_future_result(f, -1, NULL);
  kiln_future_release(f);
  return rc;
}

static int renderer_create(const kiln_scene *scene, kiln_gpu_device *const *devs, size_t ndevs,
                           const kiln_renderer_config *cfg, bool null_kernel, kiln_renderer **out) {
  *out = NULL;
  kiln_renderer_config def;
  kiln_renderer_config_default(&def);
  if (!cfg) cfg = &def;
  if (!scene || !devs || ndevs == 0 || cfg->scene_memory < KILN_RENDERER_SCENE_AUTO ||
      cfg->scene_memory > KILN_RENDERER_SCENE_TEXEL)
    return KILN_EINVAL;
  const kiln__scene *s = &scene->data;
  kiln_renderer *r = calloc(1, sizeof *r);
  if (!r) return KILN_ENOMEM;
  if (pthread_mutex_init(&r->mu, NULL)) {
    free(r);
    return KILN_ENOMEM;
  }
  atomic_init(&r->parked, NULL);
  atomic_init(&r->fail_on_done, 0);
  atomic_init(&r->frames, 0);
  atomic_init(&r->aov_planes, 0);
  atomic_init(&r->bytes_read_back, 0);
  r->cfg = *cfg;
  r->camera = s->camera;
  r->settings = s->settings;
  int rc = KILN_ENOMEM;
  r->devs = calloc(ndevs, sizeof *r->devs);
  if (!r->devs) goto fail;
  r->ndevs = ndevs;
  for (size_t i = 0; i < ndevs; i++) {
    kiln__frame_pool_init(&r->devs[i].pool, FRAME_POOL_BYTES);
    r->devs[i].pool_ready = true;
  }
  if (cfg->pool) {
    r->finisher = cfg->pool;
  } else {
    kiln_pool_config pc;
    kiln_pool_config_default(&pc);
    pc.threads = 1;
    pc.name = "kiln_render";
    if ((rc = kiln_pool_create(&pc, &r->own_pool))) goto fail;
    r->finisher = r->own_pool;
  }

  kiln__bvh bvh;
  if ((rc = kiln__bvh_build(cfg->pool, s, &bvh))) goto fail;
  kiln__render_buffers p;
  if ((rc = kiln__render_pack(s, &bvh, &p))) {
    kiln__bvh_free(&bvh);
    goto fail;
  }
  for (size_t i = 0; i < ndevs && !rc; i++) {
    r->devs[i].dev = devs[i];
    rc = upload_scene(cfg, &p, null_kernel, &r->devs[i]);
  }
  if (!rc && cfg->scene_variants) {
    rc = kiln__variant_base_create(s, &bvh, &p, &r->base); /* takes bvh and p */
  } else {
    kiln__bvh_free(&bvh);
    kiln__render_pack_free(&p);
  }
  if (rc) goto fail;
  *out = r;
  return 0;
fail:
  kiln_renderer_destroy(r);
  return rc;
}

int kiln_renderer_create(const kiln_scene *scene, kiln_gpu_device *const *devs, size_t ndevs,
                         const kiln_renderer_config *cfg, kiln_renderer **out) {
  return renderer_create(scene, devs, ndevs, cfg, false, out);
}

int kiln__renderer_create_null(const kiln_scene *scene, kiln_gpu_device *const *devs, size_t ndevs,
                               const kiln_renderer_config *cfg, kiln_renderer **out) {
  return renderer_create(scene, devs, ndevs, cfg, true, out);
}

int kiln__renderer_null_kernel(kiln_renderer *r) {
  for (size_t i = 0; i < r->ndevs; i++) {
    kiln_gpu_kernel *k;
    int rc = make_null_kernel(&r->devs[i], &k);
    if (rc) return rc;
    kiln_gpu_kernel_destroy(r->devs[i].kernel);
    r->devs[i].kernel = k;
  }
  return 0;
}

void kiln__renderer_get_stats(kiln_renderer *r, kiln__renderer_stats *out) {
  memset(out, 0, sizeof *out);
  /* relaxed: counters, as where they are added to */
  out->frames = atomic_load_explicit(&r->frames, memory_order_relaxed);
  out->aov_planes = atomic_load_explicit(&r->aov_planes, memory_order_relaxed);
  out->bytes_read_back = atomic_load_explicit(&r->bytes_read_back, memory_order_relaxed);
  for (size_t i = 0; i < r->ndevs; i++) {
    uint64_t made, reused;
    kiln__frame_pool_counts(&r->devs[i].pool, &made, &reused);
    out->bufs_made += made, out->bufs_reused += reused;
  }
}

uint32_t kiln__renderer_device_features(const kiln_renderer *r, size_t dev) {
  return dev < r->ndevs ? r->devs[dev].features : 0;
}

void kiln_frame_config_default(const kiln_renderer *r, kiln_frame_config *fc) {
  memset(fc, 0, sizeof *fc);
  fc->seed = r->settings.seed;
  fc->max_bounces = -1;
  fc->device = -1;
}

/* ---- frames ----------------------------------------------------------------------------- */

/* Frees f, whose job is done or never ran; its memory goes back to its device's pool (or is
 * freed: a lost device's is worth nothing). */
static void frame_free(frame *f) {
  for (int k = 0; k < NBUF; k++) kiln_gpu_buffer_destroy(f->scene[k]);
  if (f->bufs && !kiln_gpu_device_lost(f->d->dev)) kiln__frame_pool_put(&f->d->pool, f->bufs);
  else kiln__frame_bufs_free(f->bufs);
  if (f->job) kiln_future_release(f->job);
  free(f);
}

static void image_free(void *v) { kiln_image_destroy(v); }

/* Builds f's image and settles its promise. Everything of the renderer that f uses (its
 * device's pool) is done with before the promise settles: once it has, the caller may destroy
 * the renderer while this task still runs on a pool that is not the renderer's. */
static int finish_task(void *arg, void **result) {
  frame *f = arg;
  *result = NULL;
  const char *msg = NULL;
  char why[512] = "";
  kiln_image *img = NULL;
  int rc = kiln_future_result(f->job, 0, NULL);
  if (rc) {
    kiln_future_error(f->job, 0, &msg);
    snprintf(why, sizeof why, "render job: %s", msg ? msg : kiln_err_name(rc));
  } else if (!(img = kiln__frame_image(f->bufs, f->w, f->h, f->spp, f->planes))) {
    rc = KILN_ENOMEM;
    snprintf(why, sizeof why, "out of memory for the image");
  }
  kiln_future *p = f->promise;
  frame_free(f);
  if (img) kiln_promise_resolve_owned(p, img, image_free);
  else kiln_promise_reject(p, rc, "%s", why);
  kiln_future_release(p);
  return 0;
}

static void on_job_done(kiln_future *jf, void *arg) {
  (void)jf;
  frame *f = arg;
  kiln_future *t = NULL;
  if (kiln_submit(f->r->finisher, finish_task, f, &t) == 0) {
    kiln_future_release(t);
  } else {
    /* The finisher refuses work only after kiln_renderer_destroy, which the contract forbids
     * while frames are pending; finish here rather than leak. */
    void *unused;
    finish_task(f, &unused);
  }
}

/* Has on_job_done called when f's job is done. KILN_ENOMEM (or as the test seam says). */
static int watch(frame *f) {
  /* relaxed: a counter for tests, ordered with nothing else */
  if (atomic_load_explicit(&f->r->fail_on_done, memory_order_relaxed) > 0 &&
      atomic_fetch_sub_explicit(&f->r->fail_on_done, 1, memory_order_relaxed) > 0)
    return KILN_ENOMEM;
  return kiln_future_on_done(f->job, on_job_done, f);
}

/* Leaves frame f, whose job runs with no callback, to kiln_renderer_destroy, which waits for the
 * job and frees f. A Treiber stack: frames are pushed by any number of submits at once and only
 * taken all together (an exchange), so a pop never races a push for one node (no ABA). */
static void park(kiln_renderer *r, frame *f) {
  f->next_parked = atomic_load_explicit(&r->parked, memory_order_relaxed);
  /* release: pairs with destroy's acquire exchange, publishing f's fields */
  while (!atomic_compare_exchange_weak_explicit(&r->parked, &f->next_parked, f,
                                                memory_order_release, memory_order_relaxed)) {}
}

void kiln__renderer_fail_on_done(kiln_renderer *r, int n) {
  atomic_store_explicit(&r->fail_on_done, n, memory_order_relaxed); /* as in watch */
}

static void normalize3(float *v) {
  float l = sqrtf(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
  if (l > 0) v[0] /= l, v[1] /= l, v[2] /= l;
}
static void cross3(const float *a, const float *b, float *o) {
  o[0] = a[1] * b[2] - a[2] * b[1];
  o[1] = a[2] * b[0] - a[0] * b[2];
  o[2] = a[0] * b[1] - a[1] * b[0];
}

/* The kernel of device slot d for features and a SCENE block of uniform_vec4s: d's own, or one
 * made for variants (on first use, under r->mu; creating a pipeline blocks, once per kind). */
static int kernel_for(kiln_renderer *r, dev_slot *d, uint32_t features, uint32_t uniform_vec4s,
                      kiln_gpu_kernel **out) {
  if (features == d->features && uniform_vec4s == d->uniform_vec4s) return *out = d->kernel, 0;
  int rc = 0;
  pthread_mutex_lock(&r->mu);
  size_t j = 0;
  while (j < d->nvkernels &&
         (d->vkernels[j].features != features || d->vkernels[j].uniform_vec4s != uniform_vec4s))
    j++;
  if (j == d->nvkernels) {
    variant_kernel *a = realloc(d->vkernels, (j + 1) * sizeof *a);
    if (!a) rc = KILN_ENOMEM;
    else d->vkernels = a;
    if (!rc && !(rc = make_kernel(d->dev, features, uniform_vec4s, &a[j].kernel))) {
      a[j].features = features, a[j].uniform_vec4s = uniform_vec4s;
      d->nvkernels++;
    }
  }
  if (!rc) *out = d->vkernels[j].kernel;
  pthread_mutex_unlock(&r->mu);
  return rc;
}

/* Binds variant vp on device slot d for one frame: its kernel, and its buffers, each the
 * scene's own where the bytes are the same, else a new buffer in own[] uploaded by job (before
 * its dispatches). */
static int bind_variant(kiln_renderer *r, dev_slot *d, const kiln__render_buffers *vp,
                        kiln_gpu_job *job, kiln_gpu_buffer **own, kiln_gpu_buffer **binds,
                        kiln_gpu_kernel **kernel, uint32_t *features) {
  uint32_t fe = scene_memory(vp, r->cfg.scene_memory, d->dev);
  uint32_t uv = fe & KILN__RF_UNIFORM ? (uint32_t)vp->scene_vec4s : 0;
  int rc = kernel_for(r, d, fe, uv, kernel);
  *features = fe;
  const kiln__render_buffers *base = kiln__variant_base_pack(r->base);
  for (int k = 0; k < NBUF && !rc; k++) {
    if (!vp->data[k]) continue;
    size_t size, bsize;
    const void *data = bound_data(vp, k, fe, &size);
    const void *bdata = bound_data(base, k, d->features, &bsize);
    /* the same pointer: a buffer the variant borrowed from the scene's pack (variant.c) */
    if (size == bsize && (data == bdata || memcmp(data, bdata, size) == 0)) continue;
    if (!(rc = kiln_gpu_buffer_create(d->dev, size, &own[k])))
      rc = kiln_gpu_job_upload(job, own[k], 0, data, size);
    binds[k] = own[k];
    kiln__variant_base_count_upload(r->base, size);
  }
  return rc;
}

/* A frame of scene variant vp (NULL: the renderer's scene), whose camera and settings are cam0
 * and st unless fc says otherwise. */
static int submit(kiln_renderer *r, const kiln__camera *cam0, const kiln__settings *st,
                  const kiln__render_buffers *vp, const kiln_frame_config *fc, kiln_future **out) {
  *out = NULL;
  kiln__camera cam = *cam0;
  if (fc->camera) {
    const kiln_camera *c = fc->camera;
    cam.type = c->thin_lens ? KILN__CAM_THIN_LENS : KILN__CAM_PINHOLE;
    memcpy(cam.position, c->position, 12);
    memcpy(cam.look_at, c->look_at, 12);
    memcpy(cam.up, c->up, 12);
    cam.vfov_deg = c->vfov_deg;
    cam.aperture = c->aperture;
    cam.focus_distance = c->focus_distance;
    cam.fx = c->fx, cam.fy = c->fy, cam.cx = c->cx, cam.cy = c->cy;
    cam.k_width = c->k_width, cam.k_height = c->k_height;
  }
  int32_t w = fc->width ? fc->width : st->width;
  int32_t h = fc->height ? fc->height : st->height;
  int32_t spp = fc->spp ? fc->spp : st->spp;
  int32_t mb = fc->max_bounces >= 0 ? fc->max_bounces : st->max_bounces;
  if (w <= 0 || h <= 0 || spp <= 0 || mb < 0 || fc->spp < 0 || fc->device >= (int)r->ndevs ||
      (cam.k_width <= 0 && !(cam.vfov_deg > 0 && cam.vfov_deg < 180)))
    return KILN_EINVAL;
  /* The image plane at distance 1: U spans half the width, V half the height, and (ox, oy) is
   * the principal point's offset from the image's centre in those halves. Without intrinsics
   * these are the numbers kiln always used (bit for bit: ox = oy = 0). */
  float th, tw, ox = 0, oy = 0;
  if (cam.k_width > 0) {
    const kiln_camera kc = {.fx = cam.fx, .fy = cam.fy, .cx = cam.cx, .cy = cam.cy,
                            .k_width = cam.k_width, .k_height = cam.k_height};
    double K[9];
    if (kiln_camera_intrinsics(&kc, w, h, K)) return KILN_EINVAL;
    tw = (float)(w / (2 * K[0])), th = (float)(h / (2 * K[4]));
    ox = (float)((2 * K[2] + 1 - w) / w), oy = (float)((2 * K[5] + 1 - h) / h);
  } else {
    th = tanf(cam.vfov_deg * 0.5f * 3.14159265358979f / 180.0f);
    tw = th * (float)w / (float)h;
  }
  size_t di;
  if (fc->device >= 0) {
    di = (size_t)fc->device;
  } else {
    kiln_gpu_device **dl = malloc(r->ndevs * sizeof *dl); /* every device, however many */
    if (!dl) return KILN_ENOMEM;
    for (size_t i = 0; i < r->ndevs; i++) dl[i] = r->devs[i].dev;
    int pick = kiln_gpu_device_pick(dl, r->ndevs);
    free(dl);
    di = pick >= 0 ? (size_t)pick : 0;
  }
  dev_slot *d = &r->devs[di];
  uint32_t tile = fc->tile_size ? fc->tile_size : d->tile;
  uint32_t pass = fc->pass_spp ? fc->pass_spp : d->pass;
  /* A tile larger than the image is the image (the same dispatches), and keeps the tile loops'
   * int32 steps positive and their sums in range. */
  uint32_t side = (uint32_t)(w > h ? w : h);
  if (tile > side) tile = side;

  /* Camera basis: W forward, U right, V up; U and V scaled to the image plane at distance 1. */
  float W[3], U[3], V[3];
  for (int k = 0; k < 3; k++) W[k] = cam.look_at[k] - cam.position[k];
  normalize3(W);
  cross3(W, cam.up, U);
  normalize3(U);
  cross3(U, W, V);
  bool lens = cam.type == KILN__CAM_THIN_LENS && cam.aperture > 0;
  const float *P = cam.position;
  pt_push push = {.cam_pos = {P[0], P[1], P[2], lens ? cam.aperture : 0},
                  .cam_u = {U[0] * tw, U[1] * tw, U[2] * tw, cam.focus_distance},
                  .cam_v = {V[0] * th, V[1] * th, V[2] * th, ox},
                  .cam_w = {W[0], W[1], W[2], oy},
                  .image = {w, h, 0, 0},
                  .frame = {fc->seed, fc->frame, (uint32_t)mb, 0}};
  unsigned planes = (fc->planes ? fc->planes & KILN_PLANE_ALL : KILN_PLANE_ALL) | KILN_PLANE_COLOR;
  if (planes & KILN_PLANE_UV) planes |= KILN_PLANE_ID; /* tells background from uv (0, 0) */
  uint32_t groups = kiln__aov_groups(planes), naov = (uint32_t)__builtin_popcount(groups);
  push.frame.w = groups;

  size_t n = (size_t)w * (size_t)h;
  /* the frame's largest size in bytes, n * 16 * (1 + naov), must not wrap */
  if ((uint64_t)n > UINT64_MAX / 16 / (1 + (uint64_t)naov) || (uint64_t)n > SIZE_MAX / 64)
    return KILN_EINVAL;
  frame *f = calloc(1, sizeof *f);
  if (!f) return KILN_ENOMEM;
  f->r = r, f->d = d, f->w = w, f->h = h, f->spp = (uint32_t)spp, f->planes = planes;
  int rc = kiln__frame_pool_get(&d->pool, d->dev, n, naov, &f->bufs);
  if (rc) goto fail;
  kiln_gpu_job *job;
  if ((rc = kiln_gpu_job_create(d->dev, &job))) goto fail;
  kiln_gpu_buffer *binds[NBUF];
  for (int k = 0; k < NBUF; k++) binds[k] = d->buf[k];
  kiln_gpu_kernel *kernel = d->kernel;
  uint32_t features = d->features;
  if (vp && (rc = bind_variant(r, d, vp, job, f->scene, binds, &kernel, &features))) {
    kiln_gpu_job_discard(job);
    goto fail;
  }
  /* without AOV planes the shader never touches AOV: the colour buffer stands in */
  binds[PT_BIND_ACCUM] = f->bufs->accum;
  binds[PT_BIND_AOV] = f->bufs->aov ? f->bufs->aov : f->bufs->accum;
  bool texel = features & KILN__RF_TEXEL; /* else SCENE's buffer (a view too) stands in */
  for (size_t i = 0; i < sizeof texel_bindings / sizeof texel_bindings[0]; i++)
    binds[texel_bindings[i].texel] = binds[texel ? texel_bindings[i].of : PT_BIND_SCENE];
  /* Passes outermost: every tile gets samples [s, s + pass) before any gets later ones. */
  for (uint32_t s0 = 0; s0 < (uint32_t)spp && !rc; s0 += pass) {
    for (int32_t y = 0; y < h && !rc; y += (int32_t)tile) {
      for (int32_t x = 0; x < w && !rc; x += (int32_t)tile) {
        uint32_t tw_ = (uint32_t)(w - x) < tile ? (uint32_t)(w - x) : tile;
        uint32_t th_ = (uint32_t)(h - y) < tile ? (uint32_t)(h - y) : tile;
        push.image.z = x, push.image.w = y;
        push.pass.x = tw_, push.pass.y = th_, push.pass.z = s0;
        push.pass.w = (uint32_t)spp - s0 < pass ? (uint32_t)spp - s0 : pass;
        rc = kiln_gpu_job_dispatch(job, kernel, binds, &push, (tw_ + 7) / 8, (th_ + 7) / 8, 1);
      }
    }
  }
  if (!rc) rc = kiln_gpu_job_download_into(job, f->bufs->accum, 0, n * 16, f->bufs->rb, 0);
  if (!rc && naov)
    rc = kiln_gpu_job_download_into(job, f->bufs->aov, 0, n * 16 * naov, f->bufs->rb, n * 16);
  if (rc) {
    kiln_gpu_job_discard(job);
    goto fail;
  }
  if ((rc = kiln_promise_create(&f->promise))) {
    kiln_gpu_job_discard(job);
    goto fail;
  }
  kiln_future *result = kiln_future_retain(f->promise);
  if ((rc = kiln_gpu_job_submit(job, NULL, 0, &f->job))) {
    kiln_future_release(result);
    kiln_future_release(f->promise);
    f->promise = NULL;
    goto fail;
  }
  if ((rc = watch(f))) {
    /* Nobody will be told when the job ends, and waiting for it here would block: the frame
     * fails now, and its buffers stay with the renderer until the job is done. */
    kiln_promise_reject(f->promise, rc, "out of memory for the frame's completion callback");
    kiln_future_release(f->promise);
    f->promise = NULL;
    kiln_future_release(result);
    park(r, f);
    return rc;
  }
  /* relaxed: counters (kiln__renderer_get_stats) */
  atomic_fetch_add_explicit(&r->frames, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&r->aov_planes, naov, memory_order_relaxed);
  atomic_fetch_add_explicit(&r->bytes_read_back, n * 16 * (1 + (uint64_t)naov),
                            memory_order_relaxed);
  *out = result;
  return 0;
fail:
  frame_free(f);
  return rc;
}

int kiln_renderer_submit(kiln_renderer *r, const kiln_frame_config *fc, kiln_future **out) {
  return submit(r, &r->camera, &r->settings, NULL, fc, out);
}

int kiln_renderer_submit_scene(kiln_renderer *r, const kiln_scene *scene,
                               const kiln_frame_config *fc, kiln_future **out) {
  *out = NULL;
  if (!r->base || !scene) return KILN_EINVAL;
  kiln__render_buffers p;
  int rc = kiln__variant_pack(r->base, r->cfg.pool, &scene->data, &p);
  if (rc) return rc;
  rc = submit(r, &scene->data.camera, &scene->data.settings, &p, fc, out);
  kiln__render_pack_free(&p);
  return rc;
}

void kiln__renderer_variant_stats(kiln_renderer *r, kiln__variant_stats *out) {
  memset(out, 0, sizeof *out);
  if (r->base) kiln__variant_base_stats(r->base, out);
  pthread_mutex_lock(&r->mu);
  for (size_t i = 0; i < r->ndevs; i++) out->kernels += r->devs[i].nvkernels;
  pthread_mutex_unlock(&r->mu);
}
