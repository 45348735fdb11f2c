/* manager_auth.c: the manager's wire format (frames, requests, replies) and its handshake.
 *
 * The handshake is Python's multiprocessing.connection deliver_challenge/answer_challenge with
 * HMAC-SHA256: the server sends "#CHALLENGE#" and random bytes, the client answers with the HMAC
 * of the whole message under the shared key, the server replies "#WELCOME#" or "#FAILURE#"; then
 * the roles swap, so a client never talks to a server that does not know the key either. Digests
 * are compared in constant time (CRYPTO_memcmp). Every handshake read has a small size cap and the
 * caller's deadline, so a silent or garbage-sending peer costs one thread for a bounded time. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "manager_internal.h"

static const char k_challenge[] = "#CHALLENGE#";
static const char k_welcome[] = "#WELCOME#";
static const char k_failure[] = "#FAILURE#";

/* ---- output frames ---- */

void kiln__mbuf_start(kiln__mbuf *b) {
  b->len = 0;
  b->err = 0;
  uint8_t room[4] = {0};
  kiln__mbuf_put(b, room, 4);
}

void kiln__mbuf_put(kiln__mbuf *b, const void *p, size_t n) {
  if (b->err) return;
  if (n > (size_t)KILN_MANAGER_MAX_MESSAGE + 4 - b->len) {
    b->err = KILN_EINVAL;
    return;
  }
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    uint8_t *q = realloc(b->p, cap);
    if (!q) {
      b->err = KILN_ENOMEM;
      return;
    }
    b->p = q, b->cap = cap;
  }
  if (n) memcpy(b->p + b->len, p, n);
  b->len += n;
}

void kiln__mbuf_u32(kiln__mbuf *b, uint32_t v) {
  uint8_t x[4];
  for (int i = 0; i < 4; i++) x[i] = (uint8_t)(v >> (8 * i));
  kiln__mbuf_put(b, x, 4);
}

void kiln__mbuf_i64(kiln__mbuf *b, int64_t v) {
  uint8_t x[8];
  uint64_t u = (uint64_t)v;
  for (int i = 0; i < 8; i++) x[i] = (uint8_t)(u >> (8 * i));
  kiln__mbuf_put(b, x, 8);
}

void kiln__mbuf_f64(kiln__mbuf *b, double v) {
  int64_t u;
  memcpy(&u, &v, 8);
  kiln__mbuf_i64(b, u);
}

void kiln__mbuf_field(kiln__mbuf *b, const void *p, size_t n) {
  if (n > KILN_MANAGER_MAX_MESSAGE) {
    b->err = KILN_EINVAL;
    return;
  }
  kiln__mbuf_u32(b, (uint32_t)n);
  kiln__mbuf_put(b, p, n);
}

int kiln__mbuf_send(int fd, kiln__mbuf *b) {
  if (b->err) return b->err;
  uint32_t n = (uint32_t)(b->len - 4);
  for (int i = 0; i < 4; i++) b->p[i] = (uint8_t)(n >> (8 * i));
  int e = kiln__send_full(fd, b->p, b->len);
  return e == 0 ? 0 : (e == EPIPE || e == ECONNRESET) ? KILN_EEOF : KILN_EIO;
}

void kiln__mbuf_free(kiln__mbuf *b) {
  free(b->p);
  *b = (kiln__mbuf){0};
}

/* ---- input frames ---- */

/* Reads len bytes before deadline: 0, -1 (clean end before any byte), or a KILN_E* code. */
static int read_deadline(int fd, uint8_t *buf, size_t len, double deadline) {
  size_t got = 0;
  while (got < len) {
    if (deadline < INFINITY) {
      int r = kiln__poll_fd(fd, POLLIN, deadline);
      if (r == 0) return KILN_ETIMEDOUT;
      if (r < 0) return KILN_EIO;
    }
    ssize_t n = recv(fd, buf + got, len - got, deadline < INFINITY ? MSG_DONTWAIT : 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      return errno == ECONNRESET && got == 0 ? -1 : KILN_EIO;
    }
    if (n == 0) return got ? KILN_EIO : -1;
    got += (size_t)n;
  }
  return 0;
}

int kiln__mgr_recv_frame(int fd, size_t max, double deadline, uint8_t **frame, size_t *len) {
  *frame = NULL, *len = 0;
  uint8_t h[4];
  int rc = read_deadline(fd, h, 4, deadline);
  if (rc) return rc == -1 ? KILN_EEOF : rc;
  size_t n = (size_t)h[0] | (size_t)h[1] << 8 | (size_t)h[2] << 16 | (size_t)h[3] << 24;
  if (n > max) return KILN_EINVAL;
  uint8_t *p = malloc(n ? n : 1);
  if (!p) return KILN_ENOMEM;
  rc = read_deadline(fd, p, n, deadline);
  if (rc) {
    free(p);
    return rc == -1 ? KILN_EIO : rc;
  }
  *frame = p, *len = n;
  return 0;
}

/* A bounds-checked reader over a received frame. */
typedef struct rd {
  const uint8_t *p;
  size_t left;
} rd;

static bool rd_bytes(rd *r, size_t n, const uint8_t **out) {
  if (n > r->left) return false;
  *out = r->p;
  r->p += n, r->left -= n;
  return true;
}

static bool rd_u64(rd *r, int nbytes, uint64_t *v) {
  const uint8_t *x;
  if (!rd_bytes(r, (size_t)nbytes, &x)) return false;
  *v = 0;
  for (int i = 0; i < nbytes; i++) *v |= (uint64_t)x[i] << (8 * i);
  return true;
}

/* nfields and the fields, which must end the frame exactly. */
static int decode_fields(rd *r, kiln__mmsg *m) {
  uint64_t n;
  /* each field takes at least 4 bytes, so a count over left / 4 is a lie */
  if (!rd_u64(r, 4, &n) || n > r->left / 4 || n > KILN__MGR_MAX_FIELDS) return KILN_EINVAL;
  m->nfields = (uint32_t)n;
  m->fields = n ? calloc(n, sizeof *m->fields) : NULL;
  if (n && !m->fields) return KILN_ENOMEM;
  for (uint32_t i = 0; i < n; i++) {
    uint64_t flen;
    if (!rd_u64(r, 4, &flen) || !rd_bytes(r, flen, &m->fields[i].p)) return KILN_EINVAL;
    m->fields[i].len = flen;
  }
  return r->left ? KILN_EINVAL : 0;
}

static int finish_decode(int rc, kiln__mmsg *m) {
  if (rc) {
    free(m->fields);
    m->fields = NULL, m->nfields = 0;
  }
  return rc;
}

int kiln__mgr_decode_request(const uint8_t *f, size_t len, kiln__mmsg *m) {
  *m = (kiln__mmsg){0};
  rd r = {f, len};
  uint64_t op, num, t;
  if (!rd_u64(&r, 1, &op) || !rd_u64(&r, 8, &num) || !rd_u64(&r, 8, &t)) return KILN_EINVAL;
  m->op = (int)op;
  m->num = (int64_t)num;
  memcpy(&m->timeout, &t, 8);
  return finish_decode(decode_fields(&r, m), m);
}

int kiln__mgr_decode_reply(const uint8_t *f, size_t len, kiln__mmsg *m) {
  *m = (kiln__mmsg){0};
  rd r = {f, len};
  uint64_t code, num;
  if (!rd_u64(&r, 4, &code) || !rd_u64(&r, 8, &num)) return KILN_EINVAL;
  m->op = (int)(int32_t)(uint32_t)code;
  m->num = (int64_t)num;
  return finish_decode(decode_fields(&r, m), m);
}

/* ---- the handshake ---- */

int kiln__mgr_random(uint8_t *buf, size_t n) {
  return RAND_bytes(buf, (int)n) == 1 ? 0 : KILN_EIO;
}

static int send_raw(int fd, const void *p, size_t n) {
  kiln__mbuf b = {0};
  kiln__mbuf_start(&b);
  kiln__mbuf_put(&b, p, n);
  int rc = kiln__mbuf_send(fd, &b);
  kiln__mbuf_free(&b);
  return rc;
}

static bool digest(const uint8_t *key, size_t klen, const uint8_t *msg, size_t n,
                   uint8_t out[32]) {
  unsigned int dlen = 0;
  return HMAC(EVP_sha256(), key, (int)klen, msg, n, out, &dlen) && dlen == 32;
}

static int deliver(int fd, const uint8_t *key, size_t klen, double deadline) {
  uint8_t msg[sizeof k_challenge - 1 + KILN__MGR_CHALLENGE];
  memcpy(msg, k_challenge, sizeof k_challenge - 1);
  if (kiln__mgr_random(msg + sizeof k_challenge - 1, KILN__MGR_CHALLENGE)) return KILN_EIO;
  int rc = send_raw(fd, msg, sizeof msg);
  if (rc) return rc;
  uint8_t *ans;
  size_t alen;
  rc = kiln__mgr_recv_frame(fd, KILN__MGR_HANDSHAKE_MAX, deadline, &ans, &alen);
  if (rc) return rc;
  uint8_t want[32];
  bool ok = digest(key, klen, msg, sizeof msg, want) && alen == 32 &&
            CRYPTO_memcmp(ans, want, 32) == 0;
  free(ans);
  rc = send_raw(fd, ok ? k_welcome : k_failure, sizeof k_welcome - 1);
  return ok ? rc : KILN_EAUTH;
}

static int answer(int fd, const uint8_t *key, size_t klen, double deadline) {
  uint8_t *msg;
  size_t n;
  int rc = kiln__mgr_recv_frame(fd, KILN__MGR_HANDSHAKE_MAX, deadline, &msg, &n);
  if (rc) return rc;
  uint8_t d[32];
  bool ok = n >= sizeof k_challenge - 1 + 32 && memcmp(msg, k_challenge, sizeof k_challenge - 1) == 0 &&
            digest(key, klen, msg, n, d);
  free(msg);
  if (!ok) return KILN_EINVAL;
  if ((rc = send_raw(fd, d, 32))) return rc;
  rc = kiln__mgr_recv_frame(fd, KILN__MGR_HANDSHAKE_MAX, deadline, &msg, &n);
  if (rc) return rc == KILN_EEOF ? KILN_EAUTH : rc;
  ok = n == sizeof k_welcome - 1 && memcmp(msg, k_welcome, n) == 0;
  free(msg);
  return ok ? 0 : KILN_EAUTH;
}

int kiln__mgr_auth_server(int fd, const uint8_t *key, size_t klen, double deadline) {
  int rc = deliver(fd, key, klen, deadline);
  return rc ? rc : answer(fd, key, klen, deadline);
}

int kiln__mgr_auth_client(int fd, const uint8_t *key, size_t klen, double deadline) {
  int rc = answer(fd, key, klen, deadline);
  return rc ? rc : deliver(fd, key, klen, deadline);
}
