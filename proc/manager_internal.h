/* manager_internal.h (internal): what the manager's files share: the wire format, the
 * handshake and the object store.
 *
 *   manager_auth.c    the framed wire format (reads with deadlines, requests and replies) and the
 *                     two-way HMAC challenge
 *   manager_addr.c    addresses: parsing, listening, connecting with a deadline
 *   manager.c         the server: listening, a thread per connection, stopping
 *   manager_proc.c    the server as a process of its own (kiln_manager_start)
 *   manager_store.c   the named objects and the operations on them (under the server's mutex)
 *   mclient.c         the client and the proxies
 *
 * Wire format. Every message is a frame: a 4-byte little-endian length, then that many bytes
 * (at most KILN_MANAGER_MAX_MESSAGE). A request is
 *   op u8 | num i64 | timeout f64 | nfields u32 | nfields x (len u32 | bytes)
 * where field 0 is the object's name for every op on an object. A reply is
 *   code i32 | num i64 | nfields u32 | nfields x (len u32 | bytes).
 * Integers are little-endian; every length is checked against what is left of the frame. */
#ifndef KILN_MANAGER_INTERNAL_H
#define KILN_MANAGER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/proc.h"
#include "proc_internal.h"

enum {
  KILN__MGR_NAME_MAX = 255,
  KILN__MGR_KEY_MAX = 1024,
  KILN__MGR_CHALLENGE = 40,     /* random bytes of a challenge */
  KILN__MGR_HANDSHAKE_MAX = 256, /* the largest frame during the handshake */
  KILN__MGR_MAX_CONNS = 1024      /* connections served at once; more are closed at accept */
};

typedef enum kiln__mgr_op {
  KILN__OP_SHUTDOWN = 1,
  KILN__OP_DICT_SET, KILN__OP_DICT_GET, KILN__OP_DICT_GET_OR, KILN__OP_DICT_DEL,
  KILN__OP_DICT_POP, KILN__OP_DICT_CONTAINS, KILN__OP_DICT_LEN, KILN__OP_DICT_KEYS,
  KILN__OP_LIST_APPEND, KILN__OP_LIST_EXTEND, KILN__OP_LIST_GET, KILN__OP_LIST_SET,
  KILN__OP_LIST_POP, KILN__OP_LIST_LEN,
  KILN__OP_NS_SET, KILN__OP_NS_GET, KILN__OP_NS_DEL,
  KILN__OP_LOCK_ACQUIRE, KILN__OP_LOCK_RELEASE, KILN__OP_RLOCK_ACQUIRE, KILN__OP_RLOCK_RELEASE,
  KILN__OP_EVENT_SET, KILN__OP_EVENT_CLEAR, KILN__OP_EVENT_IS_SET, KILN__OP_EVENT_WAIT,
  KILN__OP_SEM_CREATE, KILN__OP_SEM_ACQUIRE, KILN__OP_SEM_RELEASE,
  KILN__OP_QUEUE_CREATE, KILN__OP_QUEUE_PUT, KILN__OP_QUEUE_GET, KILN__OP_QUEUE_QSIZE,
  KILN__OP_COUNT
} kiln__mgr_op;

/* A byte string inside a received frame (borrowed from it). */
typedef struct kiln__mfield {
  const uint8_t *p;
  size_t len;
} kiln__mfield;

/* A decoded request or reply; fields point into the frame it was decoded from. */
enum { KILN__MGR_MAX_FIELDS = 1u << 20 };
typedef struct kiln__mmsg {
  int op;   /* request: the op; reply: the code */
  int64_t num;
  double timeout;
  uint32_t nfields;
  kiln__mfield *fields; /* malloc'd (NULL when nfields is 0) */
} kiln__mmsg;

/* A growable output frame (the 4-byte length is reserved at its start). */
typedef struct kiln__mbuf {
  uint8_t *p;
  size_t len, cap;
  int err; /* 0, KILN_ENOMEM, or KILN_EINVAL once over KILN_MANAGER_MAX_MESSAGE */
} kiln__mbuf;

/* ---- manager_auth.c ---- */

void kiln__mbuf_start(kiln__mbuf *b);
void kiln__mbuf_put(kiln__mbuf *b, const void *p, size_t n);
void kiln__mbuf_u32(kiln__mbuf *b, uint32_t v);
void kiln__mbuf_i64(kiln__mbuf *b, int64_t v);
void kiln__mbuf_f64(kiln__mbuf *b, double v);
void kiln__mbuf_field(kiln__mbuf *b, const void *p, size_t n);
/* Writes the frame's length and sends it: 0, KILN_ENOMEM, KILN_EINVAL (too large), KILN_EEOF
 * (the peer has gone), KILN_EIO. */
int kiln__mbuf_send(int fd, kiln__mbuf *b);
void kiln__mbuf_free(kiln__mbuf *b);

/* Reads one frame of at most max bytes before deadline (kiln__now() base, +inf: none): 0 with
 * *frame malloc'd (free it; non-NULL) and *len, KILN_EEOF (clean end before the frame),
 * KILN_ETIMEDOUT, KILN_EINVAL (a length over max), KILN_EIO, KILN_ENOMEM. */
int kiln__mgr_recv_frame(int fd, size_t max, double deadline, uint8_t **frame, size_t *len);

/* Decode a request / a reply frame into *m (free m->fields): 0 or KILN_EINVAL (malformed). */
int kiln__mgr_decode_request(const uint8_t *f, size_t len, kiln__mmsg *m);
int kiln__mgr_decode_reply(const uint8_t *f, size_t len, kiln__mmsg *m);

/* The handshake, both ways, before deadline. The server delivers its challenge first, then
 * answers the client's; the client does the reverse. 0, KILN_EAUTH (the peer's key differs),
 * KILN_ETIMEDOUT, KILN_EEOF, KILN_EINVAL (garbage), KILN_EIO, KILN_ENOMEM. */
int kiln__mgr_auth_server(int fd, const uint8_t *key, size_t klen, double deadline);
int kiln__mgr_auth_client(int fd, const uint8_t *key, size_t klen, double deadline);

/* Fills buf with n cryptographically random bytes: 0 or KILN_EIO. */
int kiln__mgr_random(uint8_t *buf, size_t n);

/* ---- manager_addr.c ---- */

/* Binds and listens at address (a Unix socket path: anything with a '/'; otherwise host:port or
 * [v6]:port, port 0 picking one). *lfd is the listening socket (close-on-exec), *bound the address
 * clients use (malloc'd; the real port), *sock_path the socket file to unlink (malloc'd) or NULL
 * for TCP. 0, KILN_EINVAL (unparsable, a path too long), KILN_EEXIST (in use), KILN_EIO,
 * KILN_ENOMEM. */
int kiln__mgr_listen(const char *address, int *lfd, char **bound, char **sock_path);

/* Connects to address before deadline: 0 and *fd (blocking, close-on-exec; TCP_NODELAY for TCP),
 * KILN_ENOENT (nobody listens), KILN_ETIMEDOUT, KILN_EINVAL, KILN_EIO. */
int kiln__mgr_connect(const char *address, double deadline, int *fd);

/* ---- manager.c ---- */

/* For tests: how many operations are blocked in the store's waits now. Any thread. */
size_t kiln__mgr_server_waiting(kiln_manager_server *s);

/* ---- manager_store.c ---- */

typedef struct kiln__mstore kiln__mstore;

/* The object store of one server. create: NULL when out of memory. destroy frees every object. */
kiln__mstore *kiln__mstore_create(void);
void kiln__mstore_destroy(kiln__mstore *s);

/* Runs request m for connection `who` (an identity for lock ownership; never dereferenced),
 * writing the reply (code, num, fields) into out, which has been started. Blocking ops wait on
 * the store's condition until their deadline, until the store is stopped, or until peer_fd
 * shows its peer has gone (then nothing is taken for it). Returns the op (for the caller to act on SHUTDOWN). Any
 * thread; the store serialises on its mutex. */
int kiln__mstore_run(kiln__mstore *s, const void *who, int peer_fd, const kiln__mmsg *m,
                     kiln__mbuf *out);

/* Connection `who` is gone: releases every lock and rlock it held and wakes the waiters. */
void kiln__mstore_drop_owner(kiln__mstore *s, const void *who);

/* Stopping: every waiter returns KILN_ESHUTDOWN and later blocking ops do too. */
void kiln__mstore_stop(kiln__mstore *s);

/* Wakes every waiter to look again (a client has hung up: its waiter must notice). */
void kiln__mstore_wake(kiln__mstore *s);

/* How many ops are blocked in a wait now. */
size_t kiln__mstore_waiting(kiln__mstore *s);

#endif /* KILN_MANAGER_INTERNAL_H */
