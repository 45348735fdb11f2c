/* frames.c: the memory of frames in flight, reused, and the image built from what a frame reads
 * back (render_internal.h).
 *
 * A frame needs a colour-sum buffer, an AOV buffer of the planes asked for, and host-visible
 * memory that both are downloaded into (a kiln_gpu_readback). Made and freed per frame they cost
 * allocator calls, page faults on fresh host memory, and at large sizes a vkAllocateMemory each
 * (48 MiB of AOVs at 1024x1024 is more than a 32 MiB block). The pool keeps the sets of frames
 * that are done, keyed by their size (pixels and AOV planes), and hands them to the next frame of
 * that size; the least recently returned sets beyond the pool's byte budget are freed, so a job
 * that changes size does not keep every size it has seen.
 *
 * The image is built straight from the mapped read-back memory by whichever pool task finishes
 * the frame, not copied out in the device's completion thread first.
 *
 * Lock order: pool->mu is a leaf (no other lock and no Vulkan call is taken under it; sets are
 * made and freed outside it). */
#include <stdlib.h>
#include <string.h>

#include "image_internal.h"
#include "render_internal.h"

static uint64_t set_bytes(const kiln__frame_bufs *s) {
  return 2 * (uint64_t)s->npix * 16 * (1 + (uint64_t)s->naov); /* device + host */
}

void kiln__frame_pool_init(kiln__frame_pool *p, uint64_t budget) {
  memset(p, 0, sizeof *p);
  pthread_mutex_init(&p->mu, NULL);
  p->budget = budget;
}

void kiln__frame_bufs_free(kiln__frame_bufs *s) {
  if (!s) return;
  kiln_gpu_buffer_destroy(s->accum);
  kiln_gpu_buffer_destroy(s->aov);
  kiln_gpu_readback_destroy(s->rb);
  free(s);
}

void kiln__frame_pool_fini(kiln__frame_pool *p) {
  for (kiln__frame_bufs *s = p->idle, *next; s; s = next) {
    next = s->next;
    kiln__frame_bufs_free(s);
  }
  p->idle = NULL;
  pthread_mutex_destroy(&p->mu);
}

int kiln__frame_pool_get(kiln__frame_pool *p, kiln_gpu_device *dev, size_t npix, uint32_t naov,
                         kiln__frame_bufs **out) {
  *out = NULL;
  pthread_mutex_lock(&p->mu);
  for (kiln__frame_bufs **pp = &p->idle; *pp; pp = &(*pp)->next)
    if ((*pp)->npix == npix && (*pp)->naov == naov) {
      *out = *pp;
      *pp = (*pp)->next;
      p->idle_bytes -= set_bytes(*out);
      p->reused++;
      break;
    }
  if (!*out) p->made++;
  pthread_mutex_unlock(&p->mu);
  if (*out) return 0;
  kiln__frame_bufs *s = calloc(1, sizeof *s);
  if (!s) return KILN_ENOMEM;
  s->npix = npix, s->naov = naov;
  int rc = kiln_gpu_buffer_create(dev, npix * 16, &s->accum);
  if (!rc && naov) rc = kiln_gpu_buffer_create(dev, npix * 16 * naov, &s->aov);
  if (!rc) rc = kiln_gpu_readback_create(dev, npix * 16 * (1 + (uint64_t)naov), &s->rb);
  if (rc) {
    kiln__frame_bufs_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

void kiln__frame_pool_put(kiln__frame_pool *p, kiln__frame_bufs *s) {
  if (!s) return;
  kiln__frame_bufs *drop = NULL;
  pthread_mutex_lock(&p->mu);
  s->next = p->idle; /* most recent first */
  p->idle = s;
  p->idle_bytes += set_bytes(s);
  if (p->idle_bytes > p->budget) { /* the least recent go, though never the one just returned */
    kiln__frame_bufs **pp = &p->idle->next;
    uint64_t keep = set_bytes(s);
    while (*pp && keep + set_bytes(*pp) <= p->budget) keep += set_bytes(*pp), pp = &(*pp)->next;
    drop = *pp;
    *pp = NULL;
    p->idle_bytes = keep;
  }
  pthread_mutex_unlock(&p->mu);
  while (drop) {
    kiln__frame_bufs *next = drop->next;
    kiln__frame_bufs_free(drop);
    drop = next;
  }
}

void kiln__frame_pool_counts(kiln__frame_pool *p, uint64_t *made, uint64_t *reused) {
  pthread_mutex_lock(&p->mu);
  *made = p->made, *reused = p->reused;
  pthread_mutex_unlock(&p->mu);
}

uint32_t kiln__aov_groups(unsigned planes) {
  uint32_t g = 0;
  if (planes & (KILN_PLANE_DEPTH | KILN_PLANE_NORMAL)) g |= PT_AOV_DEPTH_NORMAL;
  if (planes & (KILN_PLANE_ALBEDO | KILN_PLANE_ID)) g |= PT_AOV_ALBEDO_ID;
  if (planes & (KILN_PLANE_INSTANCE | KILN_PLANE_UV)) g |= PT_AOV_INSTANCE_UV;
  return g;
}

/* The AOV planes' unpacking: each plane is a vec4 a pixel (layout.h, PT_BIND_AOV). */
static void unpack_aovs(kiln_image *img, const float *aov, uint32_t groups, size_t n) {
  const float *a = aov;
  if (groups & PT_AOV_DEPTH_NORMAL) {
    for (size_t i = 0; i < n && img->depth; i++) img->depth[i] = a[4 * i];
    for (size_t i = 0; i < n && img->normal; i++) memcpy(img->normal + 3 * i, a + 4 * i + 1, 12);
    a += 4 * n;
  }
  if (groups & PT_AOV_ALBEDO_ID) {
    for (size_t i = 0; i < n && img->albedo; i++) memcpy(img->albedo + 3 * i, a + 4 * i, 12);
    for (size_t i = 0; i < n && img->object_id; i++) memcpy(&img->object_id[i], a + 4 * i + 3, 4);
    a += 4 * n;
  }
  if (groups & PT_AOV_INSTANCE_UV) {
    for (size_t i = 0; i < n && img->instance_id; i++) memcpy(&img->instance_id[i], a + 4 * i, 4);
    for (size_t i = 0; i < n && img->uv; i++) memcpy(img->uv + 2 * i, a + 4 * i + 1, 8);
  }
}

kiln_image *kiln__frame_image(const kiln__frame_bufs *s, int32_t w, int32_t h, uint32_t spp,
                              unsigned planes) {
  kiln_image *img = kiln__image_new_planes(w, h, planes);
  if (!img) return NULL;
  img->spp = spp;
  size_t n = (size_t)w * (size_t)h;
  const float *accum = kiln_gpu_readback_data(s->rb);
  float inv = 1.0f / (float)spp, *color = img->color;
  for (size_t i = 0; i < n; i++) {
    color[3 * i] = accum[4 * i] * inv;
    color[3 * i + 1] = accum[4 * i + 1] * inv;
    color[3 * i + 2] = accum[4 * i + 2] * inv;
  }
  unpack_aovs(img, accum + 4 * n, kiln__aov_groups(planes), n);
  return img;
}
