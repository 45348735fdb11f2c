/* mclient.c: a manager's client and its proxies: every proxy call is one request and one reply
 * on the client's connection, under the client's mutex (so threads of one process may share a
 * client, one call at a time). A transport failure breaks the client for good: a reply half read
 * would leave the stream out of step, so no later call could trust what it reads. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "manager_internal.h"

struct kiln_mclient {
  pthread_mutex_t mu; /* one call at a time; guards everything below */
  int fd;
  int broken; /* 0, or the KILN_EEOF / KILN_EIO every later call returns */
  kiln__mbuf out;
};

enum { CONNECT_TIMEOUT = 10 };

int kiln_manager_connect(const char *address, const void *authkey, size_t keylen,
                         kiln_mclient **out) {
  *out = NULL;
  if (!address || !*address || !authkey || keylen == 0 || keylen > KILN__MGR_KEY_MAX)
    return KILN_EINVAL;
  double deadline = kiln__now() + CONNECT_TIMEOUT;
  int fd;
  int rc = kiln__mgr_connect(address, deadline, &fd);
  if (rc) return rc;
  rc = kiln__mgr_auth_client(fd, authkey, keylen, deadline);
  kiln_mclient *c = rc ? NULL : calloc(1, sizeof *c);
  if (!c) {
    close(fd);
    return rc == KILN_EEOF ? KILN_EAUTH : rc ? rc : KILN_ENOMEM;
  }
  pthread_mutex_init(&c->mu, NULL);
  c->fd = fd;
  *out = c;
  return 0;
}

void kiln_mclient_close(kiln_mclient *c) {
  if (!c) return;
  close(c->fd);
  kiln__mbuf_free(&c->out);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

void kiln_mbytes_free(kiln_bytes *a, size_t n) {
  if (!a) return;
  for (size_t i = 0; i < n; i++) free(a[i].data);
  free(a);
}

/* A reply: its frame and the message decoded from it (fields point into the frame). */
typedef struct mreply {
  uint8_t *frame;
  kiln__mmsg m;
} mreply;

static void reply_free(mreply *r) {
  free(r->frame);
  free(r->m.fields);
}

/* Sends a request and reads its reply under the mutex: the reply's code (0 or negative) with *r
 * filled (free it with reply_free, whatever the code). */
static int round_trip(kiln_mclient *c, kiln__mbuf *req, mreply *r) {
  size_t len;
  int rc = kiln__mbuf_send(c->fd, req);
  if (!rc) rc = kiln__mgr_recv_frame(c->fd, KILN_MANAGER_MAX_MESSAGE + 64, INFINITY, &r->frame, &len);
  if (!rc) rc = kiln__mgr_decode_reply(r->frame, len, &r->m) ? KILN_EIO : 0;
  if (rc) {
    c->broken = rc == KILN_EEOF ? KILN_EEOF : KILN_EIO;
    shutdown(c->fd, SHUT_RDWR);
    return c->broken;
  }
  return r->m.op;
}

/* One call: op on object name with num, timeout and the byte arguments args[0..nargs). */
static int call(kiln_mclient *c, int op, const char *name, int64_t num, double timeout,
                const kiln__mfield *args, size_t nargs, mreply *r) {
  *r = (mreply){0};
  size_t nlen = name ? strlen(name) : 0;
  if (op != KILN__OP_SHUTDOWN && (nlen == 0 || nlen > KILN__MGR_NAME_MAX)) return KILN_EINVAL;
  if (isnan(timeout) || nargs >= KILN__MGR_MAX_FIELDS) return KILN_EINVAL;
  pthread_mutex_lock(&c->mu);
  int rc = c->broken;
  if (!rc) {
    kiln__mbuf *b = &c->out;
    kiln__mbuf_start(b);
    uint8_t op8 = (uint8_t)op;
    kiln__mbuf_put(b, &op8, 1);
    kiln__mbuf_i64(b, num);
    kiln__mbuf_f64(b, timeout);
    kiln__mbuf_u32(b, (uint32_t)(nargs + (name != NULL)));
    if (name) kiln__mbuf_field(b, name, nlen);
    for (size_t i = 0; i < nargs; i++) kiln__mbuf_field(b, args[i].p, args[i].len);
    rc = b->err ? b->err : round_trip(c, b, r);
  }
  pthread_mutex_unlock(&c->mu);
  return rc;
}

/* Copies field i of the reply into *out: 0, KILN_ENOMEM, or KILN_EIO when it is missing. */
static int take_bytes(const mreply *r, uint32_t i, kiln_bytes *out) {
  if (i >= r->m.nfields) return KILN_EIO;
  size_t n = r->m.fields[i].len;
  out->data = n ? malloc(n) : NULL;
  if (n && !out->data) return KILN_ENOMEM;
  if (n) memcpy(out->data, r->m.fields[i].p, n);
  out->len = n;
  return 0;
}

/* The common shapes: a call whose reply is only a code; one that gives num; one that gives bytes. */
static int call0(kiln_mclient *c, int op, const char *name, int64_t num, double timeout,
                 const kiln__mfield *args, size_t nargs) {
  mreply r;
  int rc = call(c, op, name, num, timeout, args, nargs, &r);
  reply_free(&r);
  return rc;
}

static int call_num(kiln_mclient *c, int op, const char *name, const kiln__mfield *args,
                    size_t nargs, int64_t *num) {
  mreply r;
  int rc = call(c, op, name, 0, 0, args, nargs, &r);
  *num = rc ? 0 : r.m.num;
  reply_free(&r);
  return rc;
}

static int call_bytes(kiln_mclient *c, int op, const char *name, int64_t num, double timeout,
                      const kiln__mfield *args, size_t nargs, kiln_bytes *out) {
  kiln_bytes dummy;
  if (!out) out = &dummy;
  *out = (kiln_bytes){0};
  mreply r;
  int rc = call(c, op, name, num, timeout, args, nargs, &r);
  if (!rc) rc = take_bytes(&r, 0, out);
  reply_free(&r);
  if (out == &dummy) free(dummy.data);
  return rc;
}

static kiln__mfield F(const void *p, size_t n) { return (kiln__mfield){p, n}; }

int kiln_mclient_shutdown_server(kiln_mclient *c) {
  return call0(c, KILN__OP_SHUTDOWN, NULL, 0, 0, NULL, 0);
}

/* ---- dict ---- */

int kiln_mdict_set(kiln_mclient *c, const char *name, const void *key, size_t klen,
                   const void *val, size_t vlen) {
  kiln__mfield a[2] = {F(key, klen), F(val, vlen)};
  return call0(c, KILN__OP_DICT_SET, name, 0, 0, a, 2);
}

int kiln_mdict_get(kiln_mclient *c, const char *name, const void *key, size_t klen,
                   kiln_bytes *val) {
  kiln__mfield a[1] = {F(key, klen)};
  return call_bytes(c, KILN__OP_DICT_GET, name, 0, 0, a, 1, val);
}

int kiln_mdict_get_or(kiln_mclient *c, const char *name, const void *key, size_t klen,
                      const void *dflt, size_t dlen, kiln_bytes *val) {
  kiln__mfield a[2] = {F(key, klen), F(dflt, dlen)};
  return call_bytes(c, KILN__OP_DICT_GET_OR, name, 0, 0, a, 2, val);
}

int kiln_mdict_del(kiln_mclient *c, const char *name, const void *key, size_t klen) {
  kiln__mfield a[1] = {F(key, klen)};
  return call0(c, KILN__OP_DICT_DEL, name, 0, 0, a, 1);
}

int kiln_mdict_pop(kiln_mclient *c, const char *name, const void *key, size_t klen,
                   kiln_bytes *val) {
  kiln__mfield a[1] = {F(key, klen)};
  return call_bytes(c, KILN__OP_DICT_POP, name, 0, 0, a, 1, val);
}

int kiln_mdict_contains(kiln_mclient *c, const char *name, const void *key, size_t klen) {
  kiln__mfield a[1] = {F(key, klen)};
  int64_t n;
  int rc = call_num(c, KILN__OP_DICT_CONTAINS, name, a, 1, &n);
  return rc ? rc : n != 0;
}

int kiln_mdict_len(kiln_mclient *c, const char *name, size_t *len) {
  int64_t n;
  int rc = call_num(c, KILN__OP_DICT_LEN, name, NULL, 0, &n);
  *len = (size_t)n;
  return rc;
}

int kiln_mdict_keys(kiln_mclient *c, const char *name, kiln_bytes **keys, size_t *n) {
  *keys = NULL, *n = 0;
  mreply r;
  int rc = call(c, KILN__OP_DICT_KEYS, name, 0, 0, NULL, 0, &r);
  uint32_t nk = rc ? 0 : r.m.nfields;
  kiln_bytes *k = rc ? NULL : calloc(nk ? nk : 1, sizeof *k);
  if (!rc && !k) rc = KILN_ENOMEM;
  for (uint32_t i = 0; !rc && i < nk; i++) rc = take_bytes(&r, i, &k[i]);
  reply_free(&r);
  if (rc) {
    kiln_mbytes_free(k, nk);
    return rc;
  }
  *keys = k, *n = nk;
  return 0;
}

/* ---- list ---- */

int kiln_mlist_append(kiln_mclient *c, const char *name, const void *item, size_t len) {
  kiln__mfield a[1] = {F(item, len)};
  return call0(c, KILN__OP_LIST_APPEND, name, 0, 0, a, 1);
}

int kiln_mlist_extend(kiln_mclient *c, const char *name, const kiln_bytes *items, size_t n) {
  if (n && !items) return KILN_EINVAL;
  if (n >= KILN__MGR_MAX_FIELDS) return KILN_EINVAL;
  kiln__mfield *a = malloc((n ? n : 1) * sizeof *a);
  if (!a) return KILN_ENOMEM;
  for (size_t i = 0; i < n; i++) a[i] = F(items[i].data, items[i].len);
  int rc = call0(c, KILN__OP_LIST_EXTEND, name, 0, 0, a, n);
  free(a);
  return rc;
}

int kiln_mlist_get(kiln_mclient *c, const char *name, int64_t i, kiln_bytes *item) {
  return call_bytes(c, KILN__OP_LIST_GET, name, i, 0, NULL, 0, item);
}

int kiln_mlist_set(kiln_mclient *c, const char *name, int64_t i, const void *item, size_t len) {
  kiln__mfield a[1] = {F(item, len)};
  return call0(c, KILN__OP_LIST_SET, name, i, 0, a, 1);
}

int kiln_mlist_pop(kiln_mclient *c, const char *name, int64_t i, kiln_bytes *item) {
  return call_bytes(c, KILN__OP_LIST_POP, name, i, 0, NULL, 0, item);
}

int kiln_mlist_len(kiln_mclient *c, const char *name, size_t *len) {
  int64_t n;
  int rc = call_num(c, KILN__OP_LIST_LEN, name, NULL, 0, &n);
  *len = (size_t)n;
  return rc;
}

/* ---- namespace ---- */

static kiln__mfield attr_field(const char *attr) { return F(attr, attr ? strlen(attr) : 0); }

int kiln_mns_set(kiln_mclient *c, const char *name, const char *attr, const void *val,
                 size_t len) {
  if (!attr) return KILN_EINVAL;
  kiln__mfield a[2] = {attr_field(attr), F(val, len)};
  return call0(c, KILN__OP_NS_SET, name, 0, 0, a, 2);
}

int kiln_mns_get(kiln_mclient *c, const char *name, const char *attr, kiln_bytes *val) {
  if (!attr) return KILN_EINVAL;
  kiln__mfield a[1] = {attr_field(attr)};
  return call_bytes(c, KILN__OP_NS_GET, name, 0, 0, a, 1, val);
}

int kiln_mns_del(kiln_mclient *c, const char *name, const char *attr) {
  if (!attr) return KILN_EINVAL;
  kiln__mfield a[1] = {attr_field(attr)};
  return call0(c, KILN__OP_NS_DEL, name, 0, 0, a, 1);
}

/* ---- locks, event, semaphore ---- */

int kiln_mlock_acquire(kiln_mclient *c, const char *name, double timeout) {
  return call0(c, KILN__OP_LOCK_ACQUIRE, name, 0, timeout, NULL, 0);
}
int kiln_mlock_release(kiln_mclient *c, const char *name) {
  return call0(c, KILN__OP_LOCK_RELEASE, name, 0, 0, NULL, 0);
}
int kiln_mrlock_acquire(kiln_mclient *c, const char *name, double timeout) {
  return call0(c, KILN__OP_RLOCK_ACQUIRE, name, 0, timeout, NULL, 0);
}
int kiln_mrlock_release(kiln_mclient *c, const char *name) {
  return call0(c, KILN__OP_RLOCK_RELEASE, name, 0, 0, NULL, 0);
}

int kiln_mevent_set(kiln_mclient *c, const char *name) {
  return call0(c, KILN__OP_EVENT_SET, name, 0, 0, NULL, 0);
}
int kiln_mevent_clear(kiln_mclient *c, const char *name) {
  return call0(c, KILN__OP_EVENT_CLEAR, name, 0, 0, NULL, 0);
}
int kiln_mevent_is_set(kiln_mclient *c, const char *name) {
  int64_t n;
  int rc = call_num(c, KILN__OP_EVENT_IS_SET, name, NULL, 0, &n);
  return rc ? rc : n != 0;
}
int kiln_mevent_wait(kiln_mclient *c, const char *name, double timeout) {
  return call0(c, KILN__OP_EVENT_WAIT, name, 0, timeout, NULL, 0);
}

int kiln_msem_create(kiln_mclient *c, const char *name, uint32_t value) {
  return call0(c, KILN__OP_SEM_CREATE, name, value, 0, NULL, 0);
}
int kiln_msem_acquire(kiln_mclient *c, const char *name, double timeout) {
  return call0(c, KILN__OP_SEM_ACQUIRE, name, 0, timeout, NULL, 0);
}
int kiln_msem_release(kiln_mclient *c, const char *name) {
  return call0(c, KILN__OP_SEM_RELEASE, name, 0, 0, NULL, 0);
}

/* ---- queue ---- */

int kiln_mqueue_create(kiln_mclient *c, const char *name, size_t maxsize) {
  if (maxsize > INT64_MAX) return KILN_EINVAL;
  return call0(c, KILN__OP_QUEUE_CREATE, name, (int64_t)maxsize, 0, NULL, 0);
}
int kiln_mqueue_put(kiln_mclient *c, const char *name, const void *item, size_t len,
                    double timeout) {
  kiln__mfield a[1] = {F(item, len)};
  return call0(c, KILN__OP_QUEUE_PUT, name, 0, timeout, a, 1);
}
int kiln_mqueue_get(kiln_mclient *c, const char *name, kiln_bytes *item, double timeout) {
  return call_bytes(c, KILN__OP_QUEUE_GET, name, 0, timeout, NULL, 0, item);
}
int kiln_mqueue_qsize(kiln_mclient *c, const char *name, size_t *n) {
  int64_t v;
  int rc = call_num(c, KILN__OP_QUEUE_QSIZE, name, NULL, 0, &v);
  *n = (size_t)v;
  return rc;
}
