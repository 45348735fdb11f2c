/* manager_store.c: the manager's named objects and the operations on them.
 *
 * One mutex guards the whole store and one condition (on CLOCK_MONOTONIC) carries every change a
 * blocked operation may wait for: a manager's cost is the round trip, not this lock, and a single
 * condition cannot lose a wake-up between two objects. Every change that may unblock someone
 * broadcasts. Objects are a list searched by name (a server holds few, long-lived objects); a
 * dict is an insertion-ordered array of entries searched linearly, so it suits dicts of up to
 * some thousands of keys.
 *
 * Lock ownership is by connection: `who` is an identity the server gives each connection, never
 * dereferenced here. A waiter whose connection has gone (its peer closed: POLLRDHUP) takes nothing
 * when it wakes, so a dead client never swallows a queue item or a lock. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "manager_internal.h"

typedef enum kind { K_DICT = 1, K_LIST, K_NS, K_LOCK, K_RLOCK, K_EVENT, K_SEM, K_QUEUE } kind;

typedef struct blob {
  uint8_t *p; /* malloc'd, never NULL */
  size_t len;
} blob;

/* One named object. dict and ns: keys[i] -> vals[i], i < n, in insertion order; slots[0..nslots)
 * (a power of two, at least twice n) hold entry index + 1 or 0 (empty), probed linearly from the
 * key's hash. list: vals[0..n).
 * queue: a ring vals[(head + i) % cap], i < n, holding at most maxsize (0: no bound). lock and
 * rlock: held by owner count times (a lock: at most once). */
typedef struct mobj {
  struct mobj *next;
  char *name;
  kind kind;
  blob *keys, *vals;
  size_t n, cap, head, maxsize;
  size_t *slots, nslots;
  const void *owner;
  uint32_t count;
  bool set;
  uint64_t value;
} mobj;

struct kiln__mstore {
  pthread_mutex_t mu;
  pthread_cond_t cv; /* broadcast on every change a waiter may need */
  bool stopping;
  size_t waiting; /* ops inside a wait (for tests) */
  mobj *objs;
};

/* What an op replies: code, num, borrowed fields (valid under the mutex) and one owned blob. */
typedef struct reply {
  int code;
  int64_t num;
  const blob *fields;
  size_t nfields;
  blob own;
  bool has_own;
} reply;

kiln__mstore *kiln__mstore_create(void) {
  kiln__mstore *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, &ca);
  pthread_condattr_destroy(&ca);
  return s;
}

static void free_blobs(blob *b, size_t n) {
  for (size_t i = 0; i < n; i++) free(b[i].p);
}

static void obj_free(mobj *o) {
  if (o->kind == K_QUEUE) {
    for (size_t i = 0; i < o->n; i++) free(o->vals[(o->head + i) % o->cap].p);
  } else {
    free_blobs(o->vals, o->n);
    if (o->keys) free_blobs(o->keys, o->n);
  }
  free(o->keys);
  free(o->vals);
  free(o->slots);
  free(o->name);
  free(o);
}

void kiln__mstore_destroy(kiln__mstore *s) {
  if (!s) return;
  for (mobj *o = s->objs, *nx; o; o = nx) {
    nx = o->next;
    obj_free(o);
  }
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

void kiln__mstore_stop(kiln__mstore *s) {
  pthread_mutex_lock(&s->mu);
  s->stopping = true;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

void kiln__mstore_wake(kiln__mstore *s) {
  pthread_mutex_lock(&s->mu);
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

size_t kiln__mstore_waiting(kiln__mstore *s) {
  pthread_mutex_lock(&s->mu);
  size_t n = s->waiting;
  pthread_mutex_unlock(&s->mu);
  return n;
}

void kiln__mstore_drop_owner(kiln__mstore *s, const void *who) {
  pthread_mutex_lock(&s->mu);
  for (mobj *o = s->objs; o; o = o->next) {
    if ((o->kind == K_LOCK || o->kind == K_RLOCK) && o->count && o->owner == who) {
      o->count = 0, o->owner = NULL;
      pthread_cond_broadcast(&s->cv);
    }
  }
  pthread_mutex_unlock(&s->mu);
}

/* ---- helpers ---- */

static int blob_copy(blob *b, const kiln__mfield *f) {
  b->p = malloc(f->len ? f->len : 1);
  if (!b->p) return KILN_ENOMEM;
  if (f->len) memcpy(b->p, f->p, f->len);
  b->len = f->len;
  return 0;
}

static bool blob_is(const blob *b, const kiln__mfield *f) {
  return b->len == f->len && (f->len == 0 || memcmp(b->p, f->p, f->len) == 0);
}

/* Makes room for `more` entries in vals (and keys when with_keys). */
static int reserve(mobj *o, size_t more, bool with_keys) {
  if (o->n + more <= o->cap) return 0;
  size_t cap = o->cap ? o->cap : 8;
  while (cap < o->n + more) cap *= 2;
  blob *v = realloc(o->vals, cap * sizeof *v);
  if (!v) return KILN_ENOMEM;
  o->vals = v;
  if (with_keys) {
    blob *k = realloc(o->keys, cap * sizeof *k);
    if (!k) return KILN_ENOMEM;
    o->keys = k;
  }
  o->cap = cap;
  return 0;
}

/* The object called name, created (with the params of the op) when absent. *o is NULL with
 * KILN_EINVAL when the name is another kind. */
static int find_or_create(kiln__mstore *s, const kiln__mfield *name, kind k, mobj **out) {
  *out = NULL;
  for (mobj *o = s->objs; o; o = o->next) {
    if (strlen(o->name) == name->len && memcmp(o->name, name->p, name->len) == 0) {
      if (o->kind != k) return KILN_EINVAL;
      *out = o;
      return 0;
    }
  }
  mobj *o = calloc(1, sizeof *o);
  char *nm = malloc(name->len + 1);
  if (!o || !nm) {
    free(o), free(nm);
    return KILN_ENOMEM;
  }
  memcpy(nm, name->p, name->len);
  nm[name->len] = 0;
  o->name = nm, o->kind = k, o->value = 1;
  o->next = s->objs, s->objs = o;
  *out = o;
  return 1; /* created */
}

/* Whether the peer of fd has closed its end (a client that died while we waited for it). */
static bool peer_gone(int fd) {
  if (fd < 0) return false;
  struct pollfd p = {.fd = fd, .events = POLLRDHUP};
  return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* One wait of a blocking op: 0 (woken: check again), KILN_ETIMEDOUT, KILN_ESHUTDOWN, or KILN_EEOF
 * when the client has gone. */
static int wait_once(kiln__mstore *s, double deadline, int peer_fd) {
  if (s->stopping) return KILN_ESHUTDOWN;
  if (kiln__now() >= deadline) return KILN_ETIMEDOUT;
  s->waiting++;
  if (deadline == INFINITY) {
    pthread_cond_wait(&s->cv, &s->mu);
  } else {
    struct timespec ts;
    kiln__abs_timespec(deadline, &ts);
    pthread_cond_timedwait(&s->cv, &s->mu, &ts);
  }
  s->waiting--;
  if (s->stopping) return KILN_ESHUTDOWN;
  return peer_gone(peer_fd) ? KILN_EEOF : 0;
}

/* ---- operations: each runs under the mutex on its object and fills the reply ---- */

typedef struct op_ctx {
  kiln__mstore *s;
  const void *who;
  int peer_fd;
  const kiln__mmsg *m;
  double deadline;
  mobj *o;
  reply *r;
} op_ctx;

static size_t key_hash(const void *p, size_t n) {
  return (size_t)kiln__fnv1a(KILN__FNV1A_SEED, p, n);
}

/* Puts entry e into the index (which has room). */
static void index_put(mobj *o, size_t e) {
  size_t mask = o->nslots - 1, i = key_hash(o->keys[e].p, o->keys[e].len) & mask;
  while (o->slots[i]) i = (i + 1) & mask;
  o->slots[i] = e + 1;
}

/* Rebuilds the index with room for twice the entries: 0 or KILN_ENOMEM (the old one is kept). */
static int index_rebuild(mobj *o) {
  size_t nslots = 16;
  while (nslots < 2 * (o->n + 1)) nslots *= 2;
  size_t *slots = calloc(nslots, sizeof *slots);
  if (!slots) return KILN_ENOMEM;
  free(o->slots);
  o->slots = slots, o->nslots = nslots;
  for (size_t e = 0; e < o->n; e++) index_put(o, e);
  return 0;
}

static size_t dict_find(const mobj *o, const kiln__mfield *k) {
  if (!o->slots) return SIZE_MAX;
  size_t mask = o->nslots - 1;
  for (size_t i = key_hash(k->p, k->len) & mask; o->slots[i]; i = (i + 1) & mask)
    if (blob_is(&o->keys[o->slots[i] - 1], k)) return o->slots[i] - 1;
  return SIZE_MAX;
}

static int op_dict_set(op_ctx *c) {
  mobj *o = c->o;
  const kiln__mfield *k = &c->m->fields[1], *v = &c->m->fields[2];
  blob nv;
  if (blob_copy(&nv, v)) return KILN_ENOMEM;
  size_t i = dict_find(o, k);
  if (i != SIZE_MAX) {
    free(o->vals[i].p);
    o->vals[i] = nv;
    return 0;
  }
  blob nk;
  if (2 * (o->n + 1) > o->nslots && index_rebuild(o)) goto nomem;
  if (reserve(o, 1, true) || blob_copy(&nk, k)) goto nomem;
  o->keys[o->n] = nk, o->vals[o->n] = nv;
  index_put(o, o->n++);
  return 0;
nomem:
  free(nv.p);
  return KILN_ENOMEM;
}

/* get, get_or, contains, pop and del: all find the key first. */
static int op_dict_lookup(op_ctx *c) {
  mobj *o = c->o;
  int op = c->m->op;
  size_t i = dict_find(o, &c->m->fields[1]);
  if (op == KILN__OP_DICT_CONTAINS) {
    c->r->num = i != SIZE_MAX;
    return 0;
  }
  if (i == SIZE_MAX) {
    if (op != KILN__OP_DICT_GET_OR) return KILN_ENOENT;
    c->r->has_own = true;
    return blob_copy(&c->r->own, &c->m->fields[2]);
  }
  if (op == KILN__OP_DICT_GET || op == KILN__OP_DICT_GET_OR || op == KILN__OP_NS_GET) {
    c->r->fields = &o->vals[i], c->r->nfields = 1;
    return 0;
  }
  free(o->keys[i].p);
  if (op == KILN__OP_DICT_POP) c->r->own = o->vals[i], c->r->has_own = true;
  else free(o->vals[i].p);
  memmove(o->keys + i, o->keys + i + 1, (o->n - i - 1) * sizeof *o->keys);
  memmove(o->vals + i, o->vals + i + 1, (o->n - i - 1) * sizeof *o->vals);
  o->n--;
  /* the entries after i moved: re-index them in place (no allocation, so it cannot fail) */
  memset(o->slots, 0, o->nslots * sizeof *o->slots);
  for (size_t e = 0; e < o->n; e++) index_put(o, e);
  return 0;
}

/* Python's index rules: i < 0 counts from the end; *at is the position or the code is EINVAL. */
static int list_index(const mobj *o, int64_t i, size_t *at) {
  if (i < 0) i += (int64_t)o->n;
  if (i < 0 || (uint64_t)i >= o->n) return KILN_EINVAL;
  *at = (size_t)i;
  return 0;
}

static int op_list(op_ctx *c) {
  mobj *o = c->o;
  const kiln__mmsg *m = c->m;
  size_t at;
  switch (m->op) {
  case KILN__OP_LIST_APPEND:
  case KILN__OP_LIST_EXTEND: {
    size_t add = m->nfields - 1, done = 0;
    if (reserve(o, add, false)) return KILN_ENOMEM;
    for (; done < add; done++)
      if (blob_copy(&o->vals[o->n + done], &m->fields[1 + done])) break;
    if (done < add) { /* all or nothing */
      free_blobs(o->vals + o->n, done);
      return KILN_ENOMEM;
    }
    o->n += add;
    return 0;
  }
  case KILN__OP_LIST_LEN: c->r->num = (int64_t)o->n; return 0;
  case KILN__OP_LIST_POP:
    if (o->n == 0) return KILN_EEMPTY;
    if (list_index(o, m->num, &at)) return KILN_EINVAL;
    c->r->own = o->vals[at], c->r->has_own = true;
    memmove(o->vals + at, o->vals + at + 1, (o->n - at - 1) * sizeof *o->vals);
    o->n--;
    return 0;
  default: break;
  }
  if (list_index(o, m->num, &at)) return KILN_EINVAL;
  if (m->op == KILN__OP_LIST_GET) {
    c->r->fields = &o->vals[at], c->r->nfields = 1;
    return 0;
  }
  blob nv;
  if (blob_copy(&nv, &m->fields[1])) return KILN_ENOMEM;
  free(o->vals[at].p);
  o->vals[at] = nv;
  return 0;
}

/* Waits until ready(o, who) holds: 0, `timeout_code`, KILN_ESHUTDOWN or KILN_EEOF. */
static int wait_for(op_ctx *c, bool (*ready)(const mobj *, const void *), int timeout_code) {
  while (!ready(c->o, c->who)) {
    int rc = wait_once(c->s, c->deadline, c->peer_fd);
    if (rc) return rc == KILN_ETIMEDOUT ? timeout_code : rc;
  }
  return 0;
}

static bool lock_free(const mobj *o, const void *who) {
  return o->count == 0 || (o->kind == K_RLOCK && o->owner == who);
}
static bool event_set(const mobj *o, const void *who) { return (void)who, o->set; }
static bool sem_ready(const mobj *o, const void *who) { return (void)who, o->value > 0; }
static bool queue_room(const mobj *o, const void *who) {
  return (void)who, o->maxsize == 0 || o->n < o->maxsize;
}
static bool queue_item(const mobj *o, const void *who) { return (void)who, o->n > 0; }

static int op_lock(op_ctx *c) {
  mobj *o = c->o;
  if (c->m->op == KILN__OP_LOCK_ACQUIRE || c->m->op == KILN__OP_RLOCK_ACQUIRE) {
    int rc = wait_for(c, lock_free, KILN_ETIMEDOUT);
    if (rc) return rc;
    if (o->count == UINT32_MAX) return KILN_EINVAL;
    o->owner = c->who, o->count++;
    return 0;
  }
  if (o->count == 0 || (o->kind == K_RLOCK && o->owner != c->who)) return KILN_ESTATE;
  if (--o->count == 0) o->owner = NULL;
  pthread_cond_broadcast(&c->s->cv);
  return 0;
}

static int op_event(op_ctx *c) {
  switch (c->m->op) {
  case KILN__OP_EVENT_SET:
    c->o->set = true;
    pthread_cond_broadcast(&c->s->cv);
    return 0;
  case KILN__OP_EVENT_CLEAR: c->o->set = false; return 0;
  case KILN__OP_EVENT_IS_SET: c->r->num = c->o->set; return 0;
  default: return wait_for(c, event_set, KILN_ETIMEDOUT);
  }
}

static int op_sem(op_ctx *c) {
  if (c->m->op == KILN__OP_SEM_RELEASE) {
    if (c->o->value == UINT64_MAX) return KILN_EINVAL;
    c->o->value++;
    pthread_cond_broadcast(&c->s->cv);
    return 0;
  }
  int rc = wait_for(c, sem_ready, KILN_ETIMEDOUT);
  if (rc == 0) c->o->value--;
  return rc;
}

static int op_queue(op_ctx *c) {
  mobj *o = c->o;
  if (c->m->op == KILN__OP_QUEUE_QSIZE) {
    c->r->num = (int64_t)o->n;
    return 0;
  }
  int rc = wait_for(c, c->m->op == KILN__OP_QUEUE_PUT ? queue_room : queue_item,
                    c->m->op == KILN__OP_QUEUE_PUT ? KILN_EFULL : KILN_EEMPTY);
  if (rc) return rc;
  if (c->m->op == KILN__OP_QUEUE_GET) {
    c->r->own = o->vals[o->head], c->r->has_own = true;
    o->head = (o->head + 1) % o->cap, o->n--;
  } else {
    if (o->n == o->cap) { /* grow the ring, unrolled to start at 0 */
      size_t cap = o->cap ? 2 * o->cap : 8;
      blob *v = malloc(cap * sizeof *v);
      if (!v) return KILN_ENOMEM;
      for (size_t i = 0; i < o->n; i++) v[i] = o->vals[(o->head + i) % o->cap];
      free(o->vals);
      o->vals = v, o->cap = cap, o->head = 0;
    }
    if (blob_copy(&o->vals[(o->head + o->n) % o->cap], &c->m->fields[1])) return KILN_ENOMEM;
    o->n++;
  }
  pthread_cond_broadcast(&c->s->cv);
  return 0;
}

/* ---- dispatch ---- */

typedef struct op_def {
  kind kind;
  uint8_t nfields; /* name included; 0xff: 1 or more */
  int (*run)(op_ctx *);
} op_def;

static const op_def k_ops[KILN__OP_COUNT] = {
    [KILN__OP_DICT_SET] = {K_DICT, 3, op_dict_set},
    [KILN__OP_DICT_GET] = {K_DICT, 2, op_dict_lookup},
    [KILN__OP_DICT_GET_OR] = {K_DICT, 3, op_dict_lookup},
    [KILN__OP_DICT_DEL] = {K_DICT, 2, op_dict_lookup},
    [KILN__OP_DICT_POP] = {K_DICT, 2, op_dict_lookup},
    [KILN__OP_DICT_CONTAINS] = {K_DICT, 2, op_dict_lookup},
    [KILN__OP_DICT_LEN] = {K_DICT, 1, NULL},
    [KILN__OP_DICT_KEYS] = {K_DICT, 1, NULL},
    [KILN__OP_LIST_APPEND] = {K_LIST, 2, op_list},
    [KILN__OP_LIST_EXTEND] = {K_LIST, 0xff, op_list},
    [KILN__OP_LIST_GET] = {K_LIST, 1, op_list},
    [KILN__OP_LIST_SET] = {K_LIST, 2, op_list},
    [KILN__OP_LIST_POP] = {K_LIST, 1, op_list},
    [KILN__OP_LIST_LEN] = {K_LIST, 1, op_list},
    [KILN__OP_NS_SET] = {K_NS, 3, op_dict_set},
    [KILN__OP_NS_GET] = {K_NS, 2, op_dict_lookup},
    [KILN__OP_NS_DEL] = {K_NS, 2, op_dict_lookup},
    [KILN__OP_LOCK_ACQUIRE] = {K_LOCK, 1, op_lock},
    [KILN__OP_LOCK_RELEASE] = {K_LOCK, 1, op_lock},
    [KILN__OP_RLOCK_ACQUIRE] = {K_RLOCK, 1, op_lock},
    [KILN__OP_RLOCK_RELEASE] = {K_RLOCK, 1, op_lock},
    [KILN__OP_EVENT_SET] = {K_EVENT, 1, op_event},
    [KILN__OP_EVENT_CLEAR] = {K_EVENT, 1, op_event},
    [KILN__OP_EVENT_IS_SET] = {K_EVENT, 1, op_event},
    [KILN__OP_EVENT_WAIT] = {K_EVENT, 1, op_event},
    [KILN__OP_SEM_CREATE] = {K_SEM, 1, NULL},
    [KILN__OP_SEM_ACQUIRE] = {K_SEM, 1, op_sem},
    [KILN__OP_SEM_RELEASE] = {K_SEM, 1, op_sem},
    [KILN__OP_QUEUE_CREATE] = {K_QUEUE, 1, NULL},
    [KILN__OP_QUEUE_PUT] = {K_QUEUE, 2, op_queue},
    [KILN__OP_QUEUE_GET] = {K_QUEUE, 1, op_queue},
    [KILN__OP_QUEUE_QSIZE] = {K_QUEUE, 1, op_queue},
};

/* The ops without a handler of their own: dict len and keys, and the two creates. */
static int op_misc(op_ctx *c, int created) {
  mobj *o = c->o;
  switch (c->m->op) {
  case KILN__OP_DICT_LEN: c->r->num = (int64_t)o->n; return 0;
  case KILN__OP_DICT_KEYS: c->r->fields = o->keys, c->r->nfields = o->n; return 0;
  case KILN__OP_SEM_CREATE:
    if (!created) return KILN_EEXIST;
    if (c->m->num < 0) return KILN_EINVAL;
    o->value = (uint64_t)c->m->num;
    return 0;
  default: /* KILN__OP_QUEUE_CREATE */
    if (!created) return KILN_EEXIST;
    if (c->m->num < 0) return KILN_EINVAL;
    o->maxsize = (size_t)c->m->num;
    return 0;
  }
}

/* Checks the shape of m against its op: 0 or KILN_EINVAL. */
static int check_request(const kiln__mmsg *m, double *deadline) {
  if (m->op <= KILN__OP_SHUTDOWN || m->op >= KILN__OP_COUNT || !k_ops[m->op].kind)
    return KILN_EINVAL;
  const op_def *d = &k_ops[m->op];
  if (d->nfields == 0xff ? m->nfields < 1 : m->nfields != d->nfields) return KILN_EINVAL;
  const kiln__mfield *name = &m->fields[0];
  if (name->len == 0 || name->len > KILN__MGR_NAME_MAX || memchr(name->p, 0, name->len))
    return KILN_EINVAL;
  return kiln__deadline(m->timeout, deadline);
}

static void encode_reply(const reply *r, kiln__mbuf *out) {
  kiln__mbuf_u32(out, (uint32_t)r->code);
  kiln__mbuf_i64(out, r->num);
  kiln__mbuf_u32(out, (uint32_t)(r->nfields + r->has_own));
  for (size_t i = 0; i < r->nfields; i++) kiln__mbuf_field(out, r->fields[i].p, r->fields[i].len);
  if (r->has_own) kiln__mbuf_field(out, r->own.p, r->own.len);
}

int kiln__mstore_run(kiln__mstore *s, const void *who, int peer_fd, const kiln__mmsg *m,
                     kiln__mbuf *out) {
  reply r = {0};
  if (m->op == KILN__OP_SHUTDOWN) {
    encode_reply(&r, out);
    return m->op;
  }
  op_ctx c = {.s = s, .who = who, .peer_fd = peer_fd, .m = m, .r = &r};
  r.code = check_request(m, &c.deadline);
  pthread_mutex_lock(&s->mu);
  int created = r.code ? 0 : find_or_create(s, &m->fields[0], k_ops[m->op].kind, &c.o);
  if (created < 0) r.code = created;
  bool is_create = m->op == KILN__OP_SEM_CREATE || m->op == KILN__OP_QUEUE_CREATE;
  if (created == KILN_EINVAL && is_create) r.code = KILN_EEXIST; /* a name of another kind */
  if (!r.code) r.code = k_ops[m->op].run ? k_ops[m->op].run(&c) : op_misc(&c, created);
  if (r.code) {
    if (r.has_own) free(r.own.p);
    r = (reply){.code = r.code};
  }
  encode_reply(&r, out);
  pthread_mutex_unlock(&s->mu);
  if (r.has_own) free(r.own.p);
  return m->op;
}
