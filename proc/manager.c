/* manager.c: the manager's server: it listens, authenticates every connection and serves it on a
 * thread of its own, and stops on request.
 *
 * Stopping is a byte written to a pipe the accept loop polls (so kiln_manager_server_stop is
 * async-signal-safe). The loop then stops the store (every blocked op returns KILN_ESHUTDOWN),
 * shuts every connection down (its thread's read returns) and joins the threads. A connection's
 * descriptor is closed only after its thread is joined, so a shutdown(2) from the stopping thread
 * never reaches a reused descriptor.
 *
 * Lock order: srv->mu (the connection list) before the store's mutex; neither is held while
 * blocking on a socket. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "manager_internal.h"

typedef struct mconn {
  struct mconn *next;
  kiln_manager_server *srv;
  int fd;
  pthread_t th;
  atomic_bool done; /* set by the thread as it ends (release), read by the reaper (acquire) */
  bool hup_seen;    /* the serve loop saw its peer hang up (serve's thread only) */
} mconn;

struct kiln_manager_server {
  int lfd;
  int wake[2]; /* a byte in wake[0] stops serve */
  char *address, *sock_path, *tmp_dir;
  uint8_t key[KILN__MGR_KEY_MAX];
  size_t klen;
  double auth_timeout;
  kiln__mstore *store;
  pthread_mutex_t mu; /* guards conns and nconns */
  mconn *conns;
  size_t nconns;
  struct pollfd *pfds; /* serve's poll set: listener, wake pipe, KILN__MGR_MAX_CONNS connections */
  mconn **pconns;      /* the connection of each pfds entry from 2 on */
  bool served;
};

void kiln_manager_config_default(kiln_manager_config *cfg) {
  *cfg = (kiln_manager_config){.start = KILN_START_FORKSERVER, .auth_timeout = 5.0};
}

/* Replies to one request (or a malformed one with KILN_EINVAL); false when the connection broke. */
static bool serve_request(mconn *c, const uint8_t *frame, size_t len, kiln__mbuf *out) {
  kiln__mmsg m;
  kiln__mbuf_start(out);
  int op = 0;
  if (kiln__mgr_decode_request(frame, len, &m) == 0) {
    op = kiln__mstore_run(c->srv->store, c, c->fd, &m, out);
    free(m.fields);
  } else {
    kiln__mbuf_u32(out, (uint32_t)KILN_EINVAL), kiln__mbuf_i64(out, 0), kiln__mbuf_u32(out, 0);
  }
  if (out->err) { /* the reply itself failed (too large, no memory): send its code alone */
    int code = out->err;
    kiln__mbuf_start(out);
    kiln__mbuf_u32(out, (uint32_t)code), kiln__mbuf_i64(out, 0), kiln__mbuf_u32(out, 0);
  }
  if (kiln__mbuf_send(c->fd, out)) return false;
  if (op == KILN__OP_SHUTDOWN) kiln_manager_server_stop(c->srv);
  return true;
}

static void *conn_main(void *arg) {
  mconn *c = arg;
  kiln_manager_server *srv = c->srv;
  double deadline = srv->auth_timeout < 0 ? INFINITY : kiln__now() + srv->auth_timeout;
  if (kiln__mgr_auth_server(c->fd, srv->key, srv->klen, deadline) == 0) {
    kiln__mbuf out = {0};
    for (;;) {
      uint8_t *frame;
      size_t len;
      if (kiln__mgr_recv_frame(c->fd, KILN_MANAGER_MAX_MESSAGE, INFINITY, &frame, &len)) break;
      bool ok = serve_request(c, frame, len, &out);
      free(frame);
      if (!ok) break;
    }
    kiln__mbuf_free(&out);
    kiln__mstore_drop_owner(srv->store, c);
  }
  shutdown(c->fd, SHUT_RDWR); /* the client sees the end at once, not when we are reaped */
  atomic_store_explicit(&c->done, true, memory_order_release);
  return NULL;
}

/* Joins and frees the connections whose threads have ended (all of them with `all`). */
static void reap(kiln_manager_server *srv, bool all) {
  pthread_mutex_lock(&srv->mu);
  for (mconn **pp = &srv->conns; *pp;) {
    mconn *c = *pp;
    /* acquire: pairs with the release store at the end of conn_main */
    if (all || atomic_load_explicit(&c->done, memory_order_acquire)) {
      *pp = c->next;
      srv->nconns--;
      pthread_join(c->th, NULL);
      close(c->fd);
      free(c);
    } else {
      pp = &c->next;
    }
  }
  pthread_mutex_unlock(&srv->mu);
}

static void start_conn(kiln_manager_server *srv, int fd) {
  mconn *c = calloc(1, sizeof *c);
  if (!c) {
    close(fd);
    return;
  }
  if (!srv->sock_path) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  c->srv = srv, c->fd = fd;
  atomic_init(&c->done, false);
  pthread_mutex_lock(&srv->mu);
  /* a cap on threads: a flood of connections (authenticated or not) cannot exhaust the process */
  if (srv->nconns >= KILN__MGR_MAX_CONNS || pthread_create(&c->th, NULL, conn_main, c)) {
    pthread_mutex_unlock(&srv->mu);
    close(fd);
    free(c);
    return;
  }
  c->next = srv->conns, srv->conns = c;
  srv->nconns++;
  pthread_mutex_unlock(&srv->mu);
}

static void stop_all(kiln_manager_server *srv) {
  kiln__mstore_stop(srv->store);
  pthread_mutex_lock(&srv->mu);
  for (mconn *c = srv->conns; c; c = c->next) shutdown(c->fd, SHUT_RDWR);
  pthread_mutex_unlock(&srv->mu);
  reap(srv, true);
}

/* Fills s->pfds: the listener, the wake pipe, then every connection not yet seen to hang up
 * (POLLRDHUP only: requests are its thread's business). Its count. */
static nfds_t watch_set(kiln_manager_server *s) {
  s->pfds[0] = (struct pollfd){.fd = s->lfd, .events = POLLIN};
  s->pfds[1] = (struct pollfd){.fd = s->wake[0], .events = POLLIN};
  nfds_t n = 2;
  pthread_mutex_lock(&s->mu);
  for (mconn *c = s->conns; c; c = c->next) {
    if (c->hup_seen) continue;
    s->pconns[n] = c;
    s->pfds[n++] = (struct pollfd){.fd = c->fd, .events = POLLRDHUP};
  }
  pthread_mutex_unlock(&s->mu);
  return n;
}

/* The loop watches every connection for its peer hanging up because a connection's thread may be
 * blocked in a wait (a queue get) while its client dies: the store's condition is then woken so
 * that the thread sees the death, ends, and gives back the locks its client held. */
int kiln_manager_server_serve(kiln_manager_server *s) {
  if (s->served) return KILN_ESTATE;
  s->served = true;
  int rc = 0;
  for (;;) {
    nfds_t n = watch_set(s);
    if (poll(s->pfds, n, -1) < 0) {
      if (errno == EINTR) continue;
      rc = KILN_EIO;
      break;
    }
    if (s->pfds[1].revents) break;
    bool hup = false;
    for (nfds_t i = 2; i < n; i++)
      if (s->pfds[i].revents) s->pconns[i]->hup_seen = hup = true;
    if (hup) kiln__mstore_wake(s->store);
    reap(s, false);
    if (!s->pfds[0].revents) continue;
    int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0) start_conn(s, fd);
    else if (errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == ENOBUFS)
      poll(NULL, 0, 10); /* out of descriptors: give connections time to end, do not spin */
  }
  stop_all(s);
  return rc;
}

void kiln_manager_server_stop(kiln_manager_server *s) {
  char x = 1;
  ssize_t n;
  do n = write(s->wake[1], &x, 1);
  while (n < 0 && errno == EINTR); /* EAGAIN: a stop is already pending */
}

/* A private folder for the default socket: $TMPDIR (or /tmp)/kiln-mgr-XXXXXX, mode 0700. */
static int default_address(kiln_manager_server *s, char **path) {
  const char *tmp = getenv("TMPDIR");
  s->tmp_dir = kiln__strdup_printf("%s/kiln-mgr-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!s->tmp_dir) return KILN_ENOMEM;
  if (!mkdtemp(s->tmp_dir)) {
    free(s->tmp_dir), s->tmp_dir = NULL;
    return KILN_EIO;
  }
  *path = kiln__strdup_printf("%s/manager.sock", s->tmp_dir);
  return *path ? 0 : KILN_ENOMEM;
}

static int check_config(const kiln_manager_config *cfg) {
  if (cfg->authkey && (cfg->authkey_len == 0 || cfg->authkey_len > KILN__MGR_KEY_MAX))
    return KILN_EINVAL;
  if (isnan(cfg->auth_timeout) || cfg->auth_timeout == 0) return KILN_EINVAL;
  if (cfg->address && !*cfg->address) return KILN_EINVAL;
  return 0;
}

static int server_init(kiln_manager_server *s, const kiln_manager_config *cfg) {
  if (cfg->authkey) {
    memcpy(s->key, cfg->authkey, cfg->authkey_len);
    s->klen = cfg->authkey_len;
  } else {
    s->klen = 32;
    if (kiln__mgr_random(s->key, s->klen)) return KILN_EIO;
  }
  if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK)) return KILN_EIO;
  s->pfds = calloc(KILN__MGR_MAX_CONNS + 2, sizeof *s->pfds);
  s->pconns = calloc(KILN__MGR_MAX_CONNS + 2, sizeof *s->pconns);
  if (!s->pfds || !s->pconns || !(s->store = kiln__mstore_create())) return KILN_ENOMEM;
  char *path = NULL;
  int rc = cfg->address ? 0 : default_address(s, &path);
  if (!rc) rc = kiln__mgr_listen(path ? path : cfg->address, &s->lfd, &s->address, &s->sock_path);
  free(path);
  /* non-blocking: a connection reset between poll and accept must not block the loop */
  if (!rc && kiln__fd_flags(s->lfd, true)) rc = KILN_EIO;
  return rc;
}

int kiln_manager_server_create(const kiln_manager_config *cfg, kiln_manager_server **out) {
  *out = NULL;
  kiln_manager_config defaults;
  if (!cfg) kiln_manager_config_default(&defaults), cfg = &defaults;
  int rc = check_config(cfg);
  if (rc) return rc;
  kiln_manager_server *s = calloc(1, sizeof *s);
  if (!s) return KILN_ENOMEM;
  s->lfd = s->wake[0] = s->wake[1] = -1;
  s->auth_timeout = cfg->auth_timeout;
  pthread_mutex_init(&s->mu, NULL);
  rc = server_init(s, cfg);
  if (rc) {
    kiln_manager_server_destroy(s);
    return rc;
  }
  *out = s;
  return 0;
}

void kiln_manager_server_destroy(kiln_manager_server *s) {
  if (!s) return;
  reap(s, true); /* nothing, unless serve never ran to its end */
  if (s->lfd >= 0) close(s->lfd);
  if (s->sock_path) unlink(s->sock_path);
  if (s->tmp_dir) rmdir(s->tmp_dir);
  for (int i = 0; i < 2; i++)
    if (s->wake[i] >= 0) close(s->wake[i]);
  kiln__mstore_destroy(s->store);
  free(s->pfds), free(s->pconns);
  pthread_mutex_destroy(&s->mu);
  free(s->address), free(s->sock_path), free(s->tmp_dir);
  free(s);
}

const char *kiln_manager_server_address(const kiln_manager_server *s) { return s->address; }

const void *kiln_manager_server_authkey(const kiln_manager_server *s, size_t *len) {
  *len = s->klen;
  return s->key;
}

size_t kiln__mgr_server_waiting(kiln_manager_server *s) { return kiln__mstore_waiting(s->store); }
