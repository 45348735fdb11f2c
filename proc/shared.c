/* shared.c: Value and Array of C types in shared memory (multiprocessing.Value, Array,
 * RawValue, RawArray).
 *
 * One segment: a header, then (FRESH) an rlock, then the items, each part 64-byte aligned so
 * the lock and the data never share a cache line with the header. A GIVEN lock lives in its own
 * segment, whose name the header keeps so that another process attaching the Value attaches the
 * lock as well. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proc_internal.h"
#include "pshm_internal.h"

enum { LOCK_NAME_CAP = 208 };

typedef struct shared_state {
  kiln__phdr h;
  uint32_t type, lock_mode;
  uint64_t length;
  uint64_t lock_off, data_off; /* from the segment's start; lock_off 0: none here */
  char lock_name[LOCK_NAME_CAP]; /* GIVEN: the lock's segment */
} shared_state;

struct kiln_shared {
  kiln__pobj obj;
  kiln_prlock *lock;  /* borrowed (GIVEN in the creator) or owned (own_lock) */
  bool own_lock;
};

static shared_state *hst(const kiln_shared *s) { return s->obj.mem; }

size_t kiln_ctype_size(kiln_ctype t) {
  static const size_t sizes[] = {
      [KILN_CT_CHAR] = sizeof(char),         [KILN_CT_SHORT] = sizeof(short),
      [KILN_CT_INT] = sizeof(int),           [KILN_CT_LONG] = sizeof(long),
      [KILN_CT_LONGLONG] = sizeof(long long), [KILN_CT_UINT8] = 1,
      [KILN_CT_UINT16] = 2,                  [KILN_CT_UINT32] = 4,
      [KILN_CT_UINT64] = 8,                  [KILN_CT_FLOAT] = sizeof(float),
      [KILN_CT_DOUBLE] = sizeof(double),
  };
  return (unsigned)t <= KILN_CT_DOUBLE ? sizes[t] : 0;
}

void kiln_shared_config_default(kiln_shared_config *cfg) {
  *cfg = (kiln_shared_config){.type = KILN_CT_INT, .length = 1};
}

static int check_config(const kiln_shared_config *c) {
  if (kiln_ctype_size(c->type) == 0 || c->length == 0) return KILN_EINVAL;
  if (c->length > ((size_t)1 << 40) / kiln_ctype_size(c->type)) return KILN_EINVAL;
  switch (c->lock_mode) {
    case KILN_SHARED_LOCK_FRESH:
    case KILN_SHARED_LOCK_NONE: return c->lock ? KILN_EINVAL : 0;
    case KILN_SHARED_LOCK_GIVEN: {
      kiln_shm *ls = c->lock ? kiln_prlock_shm(c->lock) : NULL;
      return ls && strlen(kiln_shm_name(ls)) < LOCK_NAME_CAP ? 0 : KILN_EINVAL;
    }
    default: return KILN_EINVAL;
  }
}

static int shared_init_cb(void *mem, const void *arg) {
  const kiln_shared_config *c = arg;
  shared_state *s = mem;
  s->type = c->type;
  s->lock_mode = c->lock_mode;
  s->length = c->length;
  s->lock_off = c->lock_mode == KILN_SHARED_LOCK_FRESH ? kiln__pround(sizeof *s) : 0;
  s->data_off = kiln__pround(sizeof *s) + (s->lock_off ? kiln_prlock_size() : 0);
  if (c->lock_mode == KILN_SHARED_LOCK_GIVEN)
    snprintf(s->lock_name, sizeof s->lock_name, "%s", kiln_shm_name(kiln_prlock_shm(c->lock)));
  if (s->lock_off) {
    int rc = kiln_prlock_init((char *)mem + s->lock_off);
    if (rc != 0) return rc;
  }
  /* the segment is new, so already zero (SHM-04); only an initial value is copied */
  if (c->init) memcpy((char *)mem + s->data_off, c->init, c->length * kiln_ctype_size(c->type));
  kiln__pobj_publish(mem, KILN__PT_SHARED);
  return 0;
}

static size_t segment_size(const kiln_shared_config *c) {
  size_t lock = c->lock_mode == KILN_SHARED_LOCK_FRESH ? kiln_prlock_size() : 0;
  return kiln__pround(sizeof(shared_state)) + lock + c->length * kiln_ctype_size(c->type);
}

/* Gives h its lock handle: over the lock in its segment, or the GIVEN lock's segment. */
static int open_lock(kiln_shared *h) {
  shared_state *s = hst(h);
  int rc = 0;
  if (s->lock_off) rc = kiln_prlock_at((char *)s + s->lock_off, &h->lock);
  else if (s->lock_mode == KILN_SHARED_LOCK_GIVEN) rc = kiln_prlock_attach(s->lock_name, &h->lock);
  h->own_lock = h->lock != NULL;
  return rc;
}

int kiln_shared_create(const kiln_shared_config *cfg, kiln_shared **out) {
  *out = NULL;
  int rc = check_config(cfg);
  if (rc != 0) return rc;
  kiln_shared *h;
  rc = kiln__pobj_new(sizeof *h, cfg->name, segment_size(cfg), shared_init_cb, cfg, (void **)&h);
  if (rc != 0) return rc;
  if (cfg->lock_mode == KILN_SHARED_LOCK_GIVEN) h->lock = cfg->lock; /* as-is (SHM-02) */
  else rc = open_lock(h);
  if (rc != 0) {
    kiln_shared_destroy(h);
    return rc;
  }
  *out = h;
  return 0;
}

/* Whether the header's layout lies inside a segment of size bytes (one cut short would be used
 * past its end); compared without sums or products that could wrap. */
static bool layout_ok(const shared_state *s, size_t size) {
  size_t es = kiln_ctype_size(s->type), hdr = kiln__pround(sizeof *s);
  if (!es || s->data_off < hdr || s->data_off > size) return false;
  if (s->lock_off && (s->lock_off != hdr || s->data_off - hdr < kiln_prlock_size())) return false;
  if (s->lock_mode == KILN_SHARED_LOCK_GIVEN && !memchr(s->lock_name, 0, sizeof s->lock_name))
    return false;
  return s->length >= 1 && s->length <= (size - s->data_off) / es;
}

int kiln_shared_attach(const char *name, kiln_shared **out) {
  *out = NULL;
  kiln_shared *h;
  int rc = kiln__pobj_open(sizeof *h, name, KILN__PT_SHARED, kiln__pround(sizeof(shared_state)),
                           (void **)&h);
  if (rc != 0) return rc;
  rc = layout_ok(hst(h), kiln_shm_size(h->obj.shm)) ? open_lock(h) : KILN_EINVAL;
  if (rc != 0) {
    kiln_shared_destroy(h);
    return rc;
  }
  *out = h;
  return 0;
}

void kiln_shared_destroy(kiln_shared *s) {
  if (!s) return;
  if (s->own_lock) kiln_prlock_destroy(s->lock);
  kiln__pobj_free(s);
}

void *kiln_shared_data(const kiln_shared *s) { return (char *)s->obj.mem + hst(s)->data_off; }
size_t kiln_shared_length(const kiln_shared *s) { return hst(s)->length; }
kiln_ctype kiln_shared_type(const kiln_shared *s) { return (kiln_ctype)hst(s)->type; }
kiln_shm *kiln_shared_shm(const kiln_shared *s) { return s->obj.shm; }
kiln_prlock *kiln_shared_get_lock(const kiln_shared *s) { return s->lock; }

static int copy_slice(kiln_shared *s, size_t start, size_t n, void *dst, const void *src) {
  size_t len = kiln_shared_length(s), es = kiln_ctype_size(kiln_shared_type(s));
  if (start > len || n > len - start) return KILN_EINVAL;
  char *items = (char *)kiln_shared_data(s) + start * es;
  int rc = s->lock ? kiln_prlock_acquire(s->lock, -1) : 0;
  if (rc != 0 && rc != KILN_EOWNERDEAD) return rc;
  memcpy(dst ? dst : items, dst ? items : src, n * es);
  if (s->lock) kiln_prlock_release(s->lock);
  return rc; /* KILN_EOWNERDEAD: copied, but a writer may have died half-way */
}

int kiln_shared_read(kiln_shared *s, size_t start, size_t n, void *out) {
  return copy_slice(s, start, n, out, NULL);
}

int kiln_shared_write(kiln_shared *s, size_t start, size_t n, const void *in) {
  return copy_slice(s, start, n, NULL, in);
}
