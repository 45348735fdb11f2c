/* test_io_echo.c: a loopback echo server through the I/O engine, on both backends.
 *
 * The connection bodies (echo_serve_conn, echo_client) use only the blocking kiln_io calls. They
 * run as pool fibers (10,000 concurrent clients against a fiber per connection on the server),
 * and on a thread each with route_all set, so that every call takes the fibers' path (an async
 * op and a wait on its future) without a fiber. A third test drives many connections from one
 * thread with async futures alone, waiting on them with kiln_wait. */
// kt: timeout 240
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kiln/fiber.h"
#include "kiln/fiberio.h"
#include "kiln/sched.h"
#include "kt.h"

enum { MSG = 64 };

/* The clients connected so far, and how many make the gate open. */
static atomic_int gate_count;
static int gate_total;

/* Counts this client in and waits (in a fiber: suspended) until all are connected. */
static int gate_pass(kiln_future *gate) {
  if (atomic_fetch_add(&gate_count, 1) + 1 == gate_total) kiln_promise_resolve(gate, NULL);
  return kiln_await(gate, 120.0, NULL);
}

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

/* Connects, waits for gate (if not NULL: a future done once every client is connected), makes
 * `rounds` round trips of MSG bytes (each checked), closes. 0 or a code. */
static int echo_client(kiln_io *io, const struct sockaddr_in *addr, int id, int rounds,
                       kiln_future *gate) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return KILN_EIO;
  int rc = kiln_io_connect(io, fd, (const struct sockaddr *)addr, sizeof *addr, 60.0);
  if (rc == 0 && gate) rc = gate_pass(gate);
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
  c->rc = echo_client(c->io, c->addr, c->id, c->rounds, NULL);
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

static kiln_io *mk_routed(kiln_io_backend b, bool route_all) {
  kiln_io_config cfg;
  kiln_io_config_default(&cfg);
  cfg.backend = b;
  cfg.route_all = route_all;
  kiln_io *io = NULL;
  int rc = kiln_io_create(&cfg, &io);
  if (rc != 0 && b == KILN_IO_BACKEND_URING) KT_SKIP("io_uring unavailable: %s", kiln_err_name(rc));
  KT_CODE(rc, 0);
  return io;
}

static kiln_io *mk(kiln_io_backend b) { return mk_routed(b, true); }

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

/* ---- pool fibers: 10,000 concurrent clients, a fiber per connection on the server ----------- */

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

/* The server runs in a child process: 10,000 connections are 20,000 descriptors on one side
 * each, which one process may not be allowed (a hard RLIMIT_NOFILE of 20,000 is common); two
 * processes need 10,000 and a few each. */
enum {
  FIBER_CLIENTS = SANITIZED ? 1000 : 10000,
  FIBER_ROUNDS = 5,
  FIBER_STACK = SANITIZED ? 64 * 1024 : 32 * 1024,
  SPARE_FDS = 64 /* standard streams, the listener, the engine's and the pool's own */
};

static kiln_pool *mk_pool(int threads) {
  kiln_pool_config cfg;
  kiln_pool_config_default(&cfg);
  cfg.threads = threads;
  kiln_pool *p = NULL;
  KT_EQ(kiln_pool_create(&cfg, &p), 0);
  return p;
}

typedef struct fserver {
  kiln_io *io;
  kiln_pool *pool;
  int ls, nconn;
} fserver;

typedef struct fconn {
  fserver *s;
  int fd;
} fconn;

static int fconn_main(void *arg, void **result) {
  (void)result;
  fconn *c = arg;
  int rc = echo_serve_conn(c->s->io, c->fd);
  int crc = kiln_io_close(c->s->io, c->fd);
  return rc ? rc : crc;
}

/* Accepts nconn connections with a fiber for each, then joins them all: 0 or the first code. */
static int facceptor_main(void *arg, void **result) {
  (void)result;
  fserver *s = arg;
  fconn *cs = calloc((size_t)s->nconn, sizeof *cs);
  kiln_future **fs = calloc((size_t)s->nconn, sizeof *fs);
  if (!cs || !fs) return KILN_ENOMEM;
  int n = 0, rc = 0;
  for (; n < s->nconn; n++) {
    int fd = -1;
    if ((rc = kiln_io_accept(s->io, s->ls, NULL, NULL, 120.0, &fd)) != 0) break;
    cs[n] = (fconn){s, fd};
    if ((rc = kiln_fiber_spawn(s->pool, fconn_main, &cs[n], FIBER_STACK, &fs[n])) != 0) {
      close(fd);
      break;
    }
  }
  size_t ndone = 0;
  if (n > 0) { /* joinall from a fiber: suspends it */
    int wrc = kiln_wait(fs, (size_t)n, KILN_ALL_COMPLETED, 120.0, &ndone);
    if (!rc) rc = wrc;
  }
  for (int i = 0; i < n; i++) {
    int crc = kiln_future_error(fs[i], 0, NULL);
    if (!rc) rc = crc;
    kiln_future_release(fs[i]);
  }
  free(fs);
  free(cs);
  return rc;
}

/* The child: serves nconn connections on ls, exits 0 if every one echoed to its end. */
_Noreturn static void serve_child(kiln_io_backend b, int ls, int nconn) {
  (void)prctl(PR_SET_PDEATHSIG, SIGKILL); /* the parent failing ends the server too */
  if (getppid() == 1) _exit(2);
  kiln_io *io = mk_routed(b, false);
  fserver s = {io, mk_pool(2), ls, nconn};
  kiln_future *acc = NULL;
  KT_CODE(kiln_fiber_spawn(s.pool, facceptor_main, &s, FIBER_STACK, &acc), 0);
  const char *msg = NULL;
  int rc = kiln_future_error(acc, 150.0, &msg);
  if (rc) fprintf(stderr, "server: %s: %s\n", kiln_err_name(rc), msg ? msg : "");
  kiln_future_release(acc);
  kiln_pool_destroy(s.pool);
  kiln_io_destroy(io);
  close(ls);
  _exit(rc ? 1 : 0);
}

typedef struct fclient {
  kiln_io *io;
  const struct sockaddr_in *addr;
  kiln_future *gate;
  int id;
} fclient;

static int fclient_main(void *arg, void **result) {
  (void)result;
  fclient *c = arg;
  return echo_client(c->io, c->addr, c->id, FIBER_ROUNDS, c->gate);
}

static void echo_fibers(kiln_io_backend b) {
  const rlim_t need = FIBER_CLIENTS + SPARE_FDS;
  struct rlimit rl;
  KT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
    KT_SKIP("RLIMIT_NOFILE's hard limit is %llu; %llu descriptors per process are needed",
            (unsigned long long)rl.rlim_max, (unsigned long long)need);
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
    rl.rlim_cur = need;
    KT_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
  }
  struct sockaddr_in addr;
  int ls = listener(&addr);
  fflush(NULL);
  pid_t pid = fork(); /* before any thread of this process starts */
  KT_TRUE(pid >= 0);
  if (pid == 0) serve_child(b, ls, FIBER_CLIENTS);
  close(ls);

  double t0 = kt_now();
  kiln_io *io = mk_routed(b, false); /* no route_all: the fibers alone take the engine's path */
  kiln_pool *p = mk_pool(2);
  kiln_future *gate = NULL;
  KT_EQ(kiln_promise_create(&gate), 0);
  atomic_store(&gate_count, 0);
  gate_total = FIBER_CLIENTS;
  fclient *cl = calloc(FIBER_CLIENTS, sizeof *cl);
  kiln_future **fs = calloc(FIBER_CLIENTS, sizeof *fs);
  KT_TRUE(cl && fs);
  for (int i = 0; i < FIBER_CLIENTS; i++) {
    cl[i] = (fclient){io, &addr, gate, i};
    KT_CODE(kiln_fiber_spawn(p, fclient_main, &cl[i], FIBER_STACK, &fs[i]), 0);
  }
  size_t ndone = 0;
  KT_CODE(kiln_wait(fs, FIBER_CLIENTS, KILN_ALL_COMPLETED, 180.0, &ndone), 0);
  for (int i = 0; i < FIBER_CLIENTS; i++) {
    const char *msg = NULL;
    int rc = kiln_future_error(fs[i], 0, &msg);
    if (rc) KT_FAIL("client %d: %s: %s", i, kiln_err_name(rc), msg ? msg : "");
    kiln_future_release(fs[i]);
  }
  KT_TRUE(kiln_future_done(gate)); /* all were connected at once before any round trip */
  kiln_future_release(gate);
  int st = 0;
  KT_EQ(waitpid(pid, &st, 0), pid);
  KT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  fprintf(stderr, "%d client fibers x %d round trips, %s: %.2f s\n", FIBER_CLIENTS, FIBER_ROUNDS,
          kiln_io_backend_get(io) == KILN_IO_BACKEND_URING ? "io_uring" : "poller", kt_now() - t0);
  kiln_pool_destroy(p);
  kiln_io_destroy(io);
  free(fs);
  free(cl);
}

TEST(echo_fibers_uring) { echo_fibers(KILN_IO_BACKEND_URING); }
TEST(echo_fibers_poller) { echo_fibers(KILN_IO_BACKEND_POLLER); }

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
