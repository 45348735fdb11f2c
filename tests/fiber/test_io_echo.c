/* test_io_echo.c: a loopback echo server through the I/O engine, on both backends.
 *
 * The connection bodies (echo_serve_conn, echo_client) use only the blocking kiln_io calls, so
 * that pool fibers can run them unchanged once fibers run on the pool (then 10,000 concurrent
 * client fibers); today each runs on a thread of its own, with route_all set so that every call
 * takes the fibers' path (an async op and a wait on its future). A second test drives many
 * connections from one thread with async futures alone, waiting on them with kiln_wait. */
// kt: timeout 120
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kiln/fiberio.h"
#include "kiln/sched.h"
#include "kt.h"

enum { MSG = 64 };

/* Echoes what arrives until the peer's EOF. 0, or the code that stopped it. */
static int echo_serve_conn(kiln_io *io, int fd) {
  char buf[4096];
  for (;;) {
    size_t n = 0;
    int rc = kiln_io_recv(io, fd, buf, sizeof buf, 0, -1, &n);
    if (rc == KILN_EEOF) return 0;
    if (rc) return rc;
    rc = kiln_io_send_all(io, fd, buf, n, 0, -1, NULL);
    if (rc) return rc;
  }
}

/* Connects, makes `rounds` round trips of MSG bytes (each checked), closes. 0 or a code. */
static int echo_client(kiln_io *io, const struct sockaddr_in *addr, int id, int rounds) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return KILN_EIO;
  int rc = kiln_io_connect(io, fd, (const struct sockaddr *)addr, sizeof *addr, 10.0);
  char out[MSG], in[MSG];
  for (int r = 0; r < rounds && rc == 0; r++) {
    for (int i = 0; i < MSG; i++) out[i] = (char)(id * 31 + r * 7 + i);
    rc = kiln_io_send_all(io, fd, out, MSG, 0, 10.0, NULL);
    size_t got = 0;
    while (rc == 0 && got < MSG) {
      size_t n = 0;
      rc = kiln_io_recv(io, fd, in + got, MSG - got, 0, 10.0, &n);
      got += n;
    }
    if (rc == 0 && memcmp(in, out, MSG) != 0) rc = KILN_EPARSE;
  }
  int crc = kiln_io_close(io, fd);
  return rc ? rc : crc;
}

/* ---- threads running the bodies ---------------------------------------------------------------- */

typedef struct server {
  kiln_io *io;
  int ls;
  int nconn;
  _Atomic int fails;
} server;

typedef struct conn {
  server *s;
  int fd;
} conn;

static void *conn_main(void *arg) {
  conn *c = arg;
  if (echo_serve_conn(c->s->io, c->fd) != 0) c->s->fails++;
  kiln_io_close(c->s->io, c->fd);
  return NULL;
}

/* Accepts nconn connections, one thread each, and joins them. */
static void *acceptor_main(void *arg) {
  server *s = arg;
  pthread_t *th = calloc((size_t)s->nconn, sizeof *th);
  conn *cs = calloc((size_t)s->nconn, sizeof *cs);
  int started = 0;
  for (; started < s->nconn; started++) {
    int fd = -1;
    if (kiln_io_accept(s->io, s->ls, NULL, NULL, 30.0, &fd) != 0) {
      s->fails++;
      break;
    }
    cs[started] = (conn){s, fd};
    if (pthread_create(&th[started], NULL, conn_main, &cs[started]) != 0) {
      s->fails++;
      close(fd);
      break;
    }
  }
  for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
  free(th);
  free(cs);
  return NULL;
}

typedef struct client {
  kiln_io *io;
  const struct sockaddr_in *addr;
  int id, rounds, rc;
} client;

static void *client_main(void *arg) {
  client *c = arg;
  c->rc = echo_client(c->io, c->addr, c->id, c->rounds);
  return NULL;
}

static int listener(struct sockaddr_in *addr) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  KT_TRUE(s >= 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  memset(addr, 0, sizeof *addr);
  addr->sin_family = AF_INET;
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  KT_EQ(bind(s, (struct sockaddr *)addr, sizeof *addr), 0);
  socklen_t len = sizeof *addr;
  KT_EQ(getsockname(s, (struct sockaddr *)addr, &len), 0);
  KT_EQ(listen(s, 4096), 0);
  return s;
}

static kiln_io *mk(kiln_io_backend b) {
  kiln_io_config cfg;
  kiln_io_config_default(&cfg);
  cfg.backend = b;
  cfg.route_all = true;
  kiln_io *io = NULL;
  int rc = kiln_io_create(&cfg, &io);
  if (rc != 0 && b == KILN_IO_BACKEND_URING) KT_SKIP("io_uring unavailable: %s", kiln_err_name(rc));
  KT_CODE(rc, 0);
  return io;
}

static void echo_threads(kiln_io_backend b) {
  enum { CLIENTS = 32, ROUNDS = 100 };
  kiln_io *io = mk(b);
  struct sockaddr_in addr;
  server s = {io, listener(&addr), CLIENTS, 0};
  pthread_t acc;
  KT_EQ(pthread_create(&acc, NULL, acceptor_main, &s), 0);
  pthread_t th[CLIENTS];
  client cl[CLIENTS];
  for (int i = 0; i < CLIENTS; i++) {
    cl[i] = (client){io, &addr, i, ROUNDS, -1};
    KT_EQ(pthread_create(&th[i], NULL, client_main, &cl[i]), 0);
  }
  for (int i = 0; i < CLIENTS; i++) {
    pthread_join(th[i], NULL);
    KT_CODE(cl[i].rc, 0);
  }
  pthread_join(acc, NULL);
  KT_EQ(s.fails, 0);
  close(s.ls);
  kiln_io_destroy(io);
}

TEST(echo_threads_uring) { echo_threads(KILN_IO_BACKEND_URING); }
TEST(echo_threads_poller) { echo_threads(KILN_IO_BACKEND_POLLER); }

/* ---- one thread, many connections, async futures and kiln_wait ---------------------------------- */

enum { CONNS = 256, AROUNDS = 20 };

typedef struct aconn {
  int cfd, sfd; /* client end, server end */
  char out[MSG], back[MSG], sbuf[MSG];
  size_t got; /* bytes of the echo received this round */
  int round;
  kiln_future *srv; /* the server end's pending recv */
  kiln_future *cli; /* the client end's pending recv */
} aconn;

/* The server side of a readiness: echo what arrived and re-arm the recv. */
static void serve_done(kiln_io *io, aconn *c) {
  size_t n = 0;
  KT_CODE(kiln_io_result(c->srv, 0, &n), 0);
  kiln_future_release(c->srv);
  c->srv = NULL;
  kiln_future *sf = NULL;
  KT_CODE(kiln_io_send_async(io, c->sfd, c->sbuf, n, 0, &sf), 0);
  size_t sent = 0;
  KT_CODE(kiln_io_result(sf, -1, &sent), 0); /* loopback, 64 bytes: never short */
  KT_EQ(sent, n);
  kiln_future_release(sf);
  KT_CODE(kiln_io_recv_async(io, c->sfd, c->sbuf, sizeof c->sbuf, 0, &c->srv), 0);
}

/* The client side: account the echoed bytes; a whole round checks and starts the next. */
static bool client_done(kiln_io *io, aconn *c, int id) {
  size_t n = 0;
  KT_CODE(kiln_io_result(c->cli, 0, &n), 0);
  kiln_future_release(c->cli);
  c->cli = NULL;
  c->got += n;
  if (c->got == MSG) {
    KT_TRUE(memcmp(c->back, c->out, MSG) == 0);
    if (++c->round == AROUNDS) return true;
    c->got = 0;
    for (int i = 0; i < MSG; i++) c->out[i] = (char)(id + c->round * 3 + i);
    KT_CODE(kiln_io_send_all(io, c->cfd, c->out, MSG, 0, -1, NULL), 0);
  }
  KT_CODE(kiln_io_recv_async(io, c->cfd, c->back + c->got, MSG - c->got, 0, &c->cli), 0);
  return false;
}

static void echo_async(kiln_io_backend b) {
  kiln_io *io = mk(b);
  struct sockaddr_in addr;
  int ls = listener(&addr);
  static aconn cs[CONNS];
  for (int i = 0; i < CONNS; i++) {
    aconn *c = &cs[i];
    memset(c, 0, sizeof *c);
    c->cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    kiln_future *af = NULL;
    KT_CODE(kiln_io_accept_async(io, ls, NULL, NULL, &af), 0);
    KT_CODE(kiln_io_connect(io, c->cfd, (struct sockaddr *)&addr, sizeof addr, 10.0), 0);
    size_t fd = 0;
    KT_CODE(kiln_io_result(af, 10.0, &fd), 0);
    kiln_future_release(af);
    c->sfd = (int)fd;
    KT_CODE(kiln_io_recv_async(io, c->sfd, c->sbuf, sizeof c->sbuf, 0, &c->srv), 0);
    for (int k = 0; k < MSG; k++) c->out[k] = (char)(i + k);
    KT_CODE(kiln_io_send_all(io, c->cfd, c->out, MSG, 0, -1, NULL), 0);
    KT_CODE(kiln_io_recv_async(io, c->cfd, c->back, MSG, 0, &c->cli), 0);
  }
  int finished = 0;
  static kiln_future *fs[2 * CONNS];
  static int who[2 * CONNS];
  while (finished < CONNS) {
    size_t n = 0;
    for (int i = 0; i < CONNS; i++) {
      if (cs[i].srv) fs[n] = cs[i].srv, who[n++] = i;
      if (cs[i].cli) fs[n] = cs[i].cli, who[n++] = CONNS + i;
    }
    kiln_future *orig[2 * CONNS];
    memcpy(orig, fs, n * sizeof *fs);
    size_t ndone = 0;
    KT_CODE(kiln_wait(fs, n, KILN_FIRST_COMPLETED, 30.0, &ndone), 0);
    KT_TRUE(ndone >= 1);
    for (size_t k = 0; k < n; k++) {
      if (!kiln_future_done(orig[k])) continue;
      int w = who[k];
      if (w < CONNS) serve_done(io, &cs[w]);
      else if (client_done(io, &cs[w - CONNS], w - CONNS)) finished++;
    }
  }
  for (int i = 0; i < CONNS; i++) {
    KT_EQ(cs[i].round, AROUNDS);
    close(cs[i].cfd); /* the server end's recv sees EOF */
    KT_CODE(kiln_io_result(cs[i].srv, 10.0, NULL), KILN_EEOF);
    kiln_future_release(cs[i].srv);
    close(cs[i].sfd);
  }
  close(ls);
  kiln_io_destroy(io);
}

TEST(echo_async_uring) { echo_async(KILN_IO_BACKEND_URING); }
TEST(echo_async_poller) { echo_async(KILN_IO_BACKEND_POLLER); }
