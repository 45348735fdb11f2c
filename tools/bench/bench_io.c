/* bench_io.c: kiln-bench-io, the fiber I/O engine (include/kiln/fiberio.h) against plain
 * blocking syscalls and against gevent's StreamServer (python3-gevent from Debian), in one run.
 *
 * 1. Small files: FILES files of 4 KiB each created, written and closed in a fresh folder
 *    beside the program (the build tree's file system), by a serial loop of plain syscalls
 *    against the engine with WINDOW files in flight (each file an open -> write -> close chain
 *    of async ops, driven from their done-callbacks). Then the same with an fdatasync before
 *    each close (SYNC_FILES files), where ops in flight let the disk's flushes overlap. Every run
 *    writes into a folder of its own; all are removed at the end, off the clock (clean_all).
 * 2. Loopback echo: CONNS concurrent TCP connections on 127.0.0.1, each making ROUNDS round
 *    trips of 64 bytes: the engine driving every connection's client and server ends from
 *    done-callbacks (no thread per connection; what fibers will do with one stack each), against
 *    a thread per end with blocking send/recv (2 x CONNS threads), against gevent: a StreamServer
 *    echo handler and CONNS client greenlets in one Python process. And the same with pool
 *    fibers (gevent's shape in C): a fiber per client and a fiber per server end, each running
 *    a plain loop of blocking kiln_io_send_all / kiln_io_recv calls that suspend it, on a pool
 *    of FIBER_WORKERS workers. And the floor: the same workload on one thread with no kiln code,
 *    io_uring (one submit-and-wait per batch) or epoll with plain non-blocking recv/send, the
 *    least any design pays this kernel for loopback TCP.
 * Each backend of the engine is measured (io_uring, and the poller forced).
 *
 * Timing: wall seconds and the process's CPU seconds (every thread's; Python reports its own
 * with time.process_time, and its interpreter start is not counted). The machine is shared: CPU
 * seconds are the fairer measure there, wall seconds show what latency hiding buys. Rounds are
 * interleaved; medians and spreads (min..max) are printed.
 *
 * Usage: kiln-bench-io [rounds] [python] [echo | echo-fibers | echo-floor]   (defaults: 5
 * rounds, /usr/bin/python3; "echo" runs the echo rows only, "echo-fibers" only fibers on io_uring,
 * "echo-floor" only the floor rows). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef KILN_HAVE_LIBURING
#include <liburing.h>
#endif

#include "bench_clock.h"
#include "kiln/fiber.h"
#include "kiln/fiberio.h"
#include "kiln/sched.h"

enum { FILES = 2000, SYNC_FILES = 200, FILE_SIZE = 4096, WINDOW = 64 };
enum { CONNS = 1000, ROUNDS = 20, MSG = 64, MAX_ROUNDS = 16 };
enum { FIBER_WORKERS = 2, FIBER_STACK = 32 * 1024 };

typedef struct timing {
  double wall, cpu;
} timing;

static char dir[256];
static char payload[FILE_SIZE];

static char files_dir[300]; /* a fresh folder for every run: no run reuses another's names */
static int runs;

static void fresh_dir(void) {
  snprintf(files_dir, sizeof files_dir, "%s/run%03d", dir, runs++);
  mkdir(files_dir, 0755);
}

/* Removes every run's files, at the end: ext4 makes creating files slow for a while after many
 * were deleted (it avoids reusing recently freed inodes), which would charge one run for the
 * previous run's clean-up. */
static void clean_all(void) {
  for (int r = 0; r < runs; r++) {
    char d[320];
    snprintf(d, sizeof d, "%s/run%03d", dir, r);
    for (int i = 0; i < FILES; i++) {
      char p[340];
      snprintf(p, sizeof p, "%s/f%05d", d, i);
      unlink(p);
    }
    rmdir(d);
  }
}

/* ---- small files ------------------------------------------------------------------------------ */

static timing files_plain(int n, bool sync) {
  fresh_dir();
  double w0 = now(), c0 = cpu_now();
  for (int i = 0; i < n; i++) {
    char p[320];
    snprintf(p, sizeof p, "%s/f%05d", files_dir, i);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, payload, FILE_SIZE) != FILE_SIZE) return (timing){-1, -1};
    if (sync) fdatasync(fd);
    close(fd);
  }
  return (timing){now() - w0, cpu_now() - c0};
}

/* One file's chain: open -> write -> (fdatasync) -> close, each started from the previous op's
 * done-callback; the last file to finish resolves `all`. */
typedef struct fjob {
  struct fset *set;
  int index, stage, fd;
} fjob;

typedef struct fset {
  kiln_io *io;
  bool sync;
  int n;
  _Atomic int next;     /* the next file to start */
  _Atomic int finished; /* files done */
  _Atomic int errors;
  kiln_future *all;
  fjob jobs[FILES];
} fset;

static void fjob_start(fset *s);

static void fjob_step(kiln_future *f, void *arg) {
  fjob *j = arg;
  fset *s = j->set;
  size_t v = 0;
  if (kiln_io_result(f, 0, &v) != 0) atomic_fetch_add(&s->errors, 1);
  kiln_future_release(f);
  kiln_future *nf = NULL;
  int rc = 0;
  switch (j->stage++) {
    case 0:
      j->fd = (int)v;
      rc = kiln_io_write_async(s->io, j->fd, payload, FILE_SIZE, &nf);
      break;
    case 1:
      if (s->sync) {
        rc = kiln_io_fsync_async(s->io, j->fd, true, &nf);
        break;
      }
      j->stage++;
      /* fall through */
    case 2: rc = kiln_io_close_async(s->io, j->fd, &nf); break;
    default:
      if (atomic_fetch_add(&s->finished, 1) + 1 == s->n) kiln_promise_resolve(s->all, NULL);
      fjob_start(s);
      return;
  }
  if (rc || kiln_future_on_done(nf, fjob_step, j)) atomic_fetch_add(&s->errors, 1);
}

static void fjob_start(fset *s) {
  int i = atomic_fetch_add(&s->next, 1);
  if (i >= s->n) return;
  fjob *j = &s->jobs[i];
  *j = (fjob){s, i, 0, -1};
  char p[320];
  snprintf(p, sizeof p, "%s/f%05d", files_dir, i);
  kiln_future *f = NULL;
  if (kiln_io_open_async(s->io, AT_FDCWD, p, O_WRONLY | O_CREAT | O_TRUNC, 0644, &f) ||
      kiln_future_on_done(f, fjob_step, j))
    atomic_fetch_add(&s->errors, 1);
}

static timing files_engine(kiln_io *io, int n, bool sync) {
  fresh_dir();
  static fset s;
  memset(&s, 0, sizeof s);
  s.io = io;
  s.sync = sync;
  s.n = n;
  kiln_promise_create(&s.all);
  double w0 = now(), c0 = cpu_now();
  for (int k = 0; k < WINDOW; k++) fjob_start(&s);
  kiln_future_result(s.all, -1, NULL);
  timing t = {now() - w0, cpu_now() - c0};
  kiln_future_release(s.all);
  return atomic_load(&s.errors) ? (timing){-1, -1} : t;
}

/* ---- loopback echo ---------------------------------------------------------------------------- */

static int listener(struct sockaddr_in *addr) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  memset(addr, 0, sizeof *addr);
  addr->sin_family = AF_INET;
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof *addr;
  if (s < 0 || bind(s, (struct sockaddr *)addr, sizeof *addr) ||
      getsockname(s, (struct sockaddr *)addr, &len) || listen(s, 4096))
    return -1;
  return s;
}

/* CONNS connected pairs: cfd[i] the client end, sfd[i] the server end. */
static int connect_all(int *cfd, int *sfd) {
  struct sockaddr_in addr;
  int ls = listener(&addr);
  if (ls < 0) return -1;
  for (int i = 0; i < CONNS; i++) {
    cfd[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (cfd[i] < 0 || connect(cfd[i], (struct sockaddr *)&addr, sizeof addr)) return -1;
    sfd[i] = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
    if (sfd[i] < 0) return -1;
  }
  close(ls);
  return 0;
}

static void close_all(int *cfd, int *sfd) {
  for (int i = 0; i < CONNS; i++) {
    close(cfd[i]);
    close(sfd[i]);
  }
}

/* Engine: each end is a state machine stepped by its ops' done-callbacks. */
typedef struct end {
  struct echo *e;
  int fd;
  bool server;
  int round;
  size_t got;
  char buf[MSG];
} end;

typedef struct echo {
  kiln_io *io;
  _Atomic int finished, errors, closed;
  kiln_future *all, *ended;
  end ends[2 * CONNS];
} echo;

static void end_step(kiln_future *f, void *arg);

static void end_issue(end *d, bool send) {
  kiln_future *f = NULL;
  int rc = send ? kiln_io_send_async(d->e->io, d->fd, d->buf, MSG, 0, &f)
                : kiln_io_recv_async(d->e->io, d->fd, d->buf + d->got, MSG - d->got, 0, &f);
  /* the op's kind travels in the low bit of the argument: ends are aligned */
  if (rc || kiln_future_on_done(f, end_step, (void *)((uintptr_t)d | (send ? 1u : 0u))))
    atomic_fetch_add(&d->e->errors, 1);
}

static void end_step(kiln_future *f, void *arg) {
  end *d = (end *)((uintptr_t)arg & ~(uintptr_t)1);
  bool was_send = (uintptr_t)arg & 1;
  size_t n = 0;
  int rc = kiln_io_result(f, 0, &n);
  kiln_future_release(f);
  if (rc == KILN_EEOF && d->server) { /* the client is done */
    if (atomic_fetch_add(&d->e->closed, 1) + 1 == CONNS) kiln_promise_resolve(d->e->ended, NULL);
    return;
  }
  if (rc || (was_send && n != MSG)) {
    atomic_fetch_add(&d->e->errors, 1);
    return;
  }
  if (was_send) { /* a server echoed, or a client sent: both wait for the next message now */
    d->got = 0;
    end_issue(d, false);
    return;
  }
  d->got += n;
  if (d->got < MSG) {
    end_issue(d, false);
    return;
  }
  if (!d->server && ++d->round == ROUNDS) {
    if (atomic_fetch_add(&d->e->finished, 1) + 1 == CONNS) kiln_promise_resolve(d->e->all, NULL);
    return;
  }
  end_issue(d, true);
}

static timing echo_engine(kiln_io *io) {
  static int cfd[CONNS], sfd[CONNS];
  static echo e;
  if (connect_all(cfd, sfd)) return (timing){-1, -1};
  memset(&e, 0, sizeof e);
  e.io = io;
  kiln_promise_create(&e.all);
  kiln_promise_create(&e.ended);
  double w0 = now(), c0 = cpu_now();
  for (int i = 0; i < CONNS; i++) {
    end *s = &e.ends[2 * i], *c = &e.ends[2 * i + 1];
    *s = (end){.e = &e, .fd = sfd[i], .server = true};
    *c = (end){.e = &e, .fd = cfd[i], .server = false};
    memset(c->buf, 'a' + i % 26, MSG);
    end_issue(s, false);
    end_issue(c, true);
  }
  kiln_future_result(e.all, -1, NULL);
  timing t = {now() - w0, cpu_now() - c0};
  kiln_future_release(e.all);
  for (int i = 0; i < CONNS; i++) shutdown(cfd[i], SHUT_WR); /* the servers' recvs end (EOF) */
  kiln_future_result(e.ended, -1, NULL); /* every server end saw EOF: no op left on the fds */
  kiln_future_release(e.ended);
  close_all(cfd, sfd);
  return atomic_load(&e.errors) ? (timing){-1, -1} : t;
}

/* Blocking: a thread per end. */
static void *plain_server(void *arg) {
  int fd = (int)(intptr_t)arg;
  char buf[MSG];
  for (;;) {
    ssize_t k = recv(fd, buf, sizeof buf, 0);
    if (k <= 0 || send(fd, buf, (size_t)k, MSG_NOSIGNAL) != k) return NULL;
  }
}

static void *plain_client(void *arg) {
  int fd = (int)(intptr_t)arg;
  char buf[MSG];
  memset(buf, 'x', sizeof buf);
  for (int r = 0; r < ROUNDS; r++) {
    if (send(fd, buf, MSG, MSG_NOSIGNAL) != MSG) return (void *)1;
    for (size_t got = 0; got < MSG;) {
      ssize_t k = recv(fd, buf + got, MSG - got, 0);
      if (k <= 0) return (void *)1;
      got += (size_t)k;
    }
  }
  shutdown(fd, SHUT_WR);
  return NULL;
}

static timing echo_plain(void) {
  static int cfd[CONNS], sfd[CONNS];
  static pthread_t st[CONNS], ct[CONNS];
  if (connect_all(cfd, sfd)) return (timing){-1, -1};
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setstacksize(&at, 64 * 1024);
  double w0 = now(), c0 = cpu_now();
  int bad = 0;
  for (int i = 0; i < CONNS; i++) {
    bad |= pthread_create(&st[i], &at, plain_server, (void *)(intptr_t)sfd[i]);
    bad |= pthread_create(&ct[i], &at, plain_client, (void *)(intptr_t)cfd[i]);
  }
  for (int i = 0; i < CONNS; i++) {
    void *r = NULL;
    pthread_join(ct[i], &r);
    bad |= r != NULL;
    pthread_join(st[i], NULL);
  }
  timing t = {now() - w0, cpu_now() - c0};
  pthread_attr_destroy(&at);
  close_all(cfd, sfd);
  return bad ? (timing){-1, -1} : t;
}

/* Pool fibers: the bodies a user writes, blocking calls that suspend the fiber. */
typedef struct fend {
  kiln_io *io;
  int fd;
} fend;

static int fiber_server(void *arg, void **result) {
  (void)result;
  fend *e = arg;
  char buf[MSG];
  for (;;) {
    size_t n = 0;
    int rc = kiln_io_recv(e->io, e->fd, buf, sizeof buf, 0, -1, &n);
    if (rc == KILN_EEOF) return 0;
    if (rc || (rc = kiln_io_send_all(e->io, e->fd, buf, n, 0, -1, NULL)) != 0) return rc;
  }
}

static int fiber_client(void *arg, void **result) {
  (void)result;
  fend *e = arg;
  char buf[MSG];
  memset(buf, 'x', sizeof buf);
  for (int r = 0; r < ROUNDS; r++) {
    int rc = kiln_io_send_all(e->io, e->fd, buf, MSG, 0, -1, NULL);
    for (size_t got = 0; rc == 0 && got < MSG;) {
      size_t n = 0;
      rc = kiln_io_recv(e->io, e->fd, buf + got, MSG - got, 0, -1, &n);
      got += n;
    }
    if (rc) return rc;
  }
  return 0;
}

static timing echo_fibers(kiln_io *io, kiln_pool *p) {
  static int cfd[CONNS], sfd[CONNS];
  static fend se[CONNS], ce[CONNS];
  static kiln_future *sf[CONNS], *cf[CONNS];
  if (connect_all(cfd, sfd)) return (timing){-1, -1};
  double w0 = now(), c0 = cpu_now();
  int bad = 0;
  for (int i = 0; i < CONNS; i++) {
    se[i] = (fend){io, sfd[i]};
    ce[i] = (fend){io, cfd[i]};
    bad |= kiln_fiber_spawn(p, fiber_server, &se[i], FIBER_STACK, &sf[i]);
    bad |= kiln_fiber_spawn(p, fiber_client, &ce[i], FIBER_STACK, &cf[i]);
  }
  size_t nd = 0;
  bad |= kiln_wait(cf, CONNS, KILN_ALL_COMPLETED, -1, &nd);
  timing t = {now() - w0, cpu_now() - c0};
  for (int i = 0; i < CONNS; i++) {
    bad |= kiln_future_error(cf[i], 0, NULL);
    shutdown(cfd[i], SHUT_WR); /* the server fiber's recv ends (EOF) */
  }
  bad |= kiln_wait(sf, CONNS, KILN_ALL_COMPLETED, -1, &nd);
  for (int i = 0; i < CONNS; i++) {
    bad |= kiln_future_error(sf[i], 0, NULL);
    kiln_future_release(sf[i]);
    kiln_future_release(cf[i]);
  }
  close_all(cfd, sfd);
  return bad ? (timing){-1, -1} : t;
}

/* The floor: the cheapest single-threaded designs, no kiln code, to show what this kernel's
 * loopback TCP costs by itself. An end's index i < CONNS is a server end, i >= CONNS a client. */
typedef struct fl_end {
  int fd, round;
  size_t got;
  char buf[MSG];
} fl_end;

static fl_end fl[2 * CONNS];

static void fl_init(const int *cfd, const int *sfd) {
  for (int i = 0; i < CONNS; i++) {
    fl[i] = (fl_end){.fd = sfd[i]};
    fl[CONNS + i] = (fl_end){.fd = cfd[i]};
    memset(fl[CONNS + i].buf, 'f', MSG);
  }
}

#ifdef KILN_HAVE_LIBURING
/* io_uring: one op in flight per end (user_data: end index * 2 + 1 for a send); every reap's
 * new ops go in with the next io_uring_submit_and_wait, one syscall per batch. */
static void flu_op(struct io_uring *r, int i, bool send) {
  struct io_uring_sqe *q = io_uring_get_sqe(r);
  fl_end *d = &fl[i];
  if (send) io_uring_prep_send(q, d->fd, d->buf, i < CONNS ? d->got : MSG, MSG_NOSIGNAL);
  else io_uring_prep_recv(q, d->fd, d->buf + d->got, MSG - d->got, 0);
  io_uring_sqe_set_data64(q, (uint64_t)i * 2 + send);
}

static timing echo_floor_uring(void) {
  static int cfd[CONNS], sfd[CONNS];
  struct io_uring r;
  struct io_uring_params pa = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
                                        IORING_SETUP_CQSIZE,
                               .cq_entries = 4 * CONNS};
  if (connect_all(cfd, sfd)) return (timing){-1, -1};
  if (io_uring_queue_init_params(2 * CONNS, &r, &pa)) {
    pa.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_CQSIZE; /* an older kernel */
    if (io_uring_queue_init_params(2 * CONNS, &r, &pa)) return (timing){-1, -1};
  }
  fl_init(cfd, sfd);
  int finished = 0, eofs = 0, bad = 0;
  timing t = {-1, -1};
  double w0 = now(), c0 = cpu_now();
  for (int i = 0; i < CONNS; i++) flu_op(&r, i, false), flu_op(&r, CONNS + i, true);
  while (eofs < CONNS && !bad) {
    if (io_uring_submit_and_wait(&r, 1) < 0) bad = 1;
    struct io_uring_cqe *c;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&r, head, c) {
      seen++;
      int i = (int)(c->user_data >> 1), res = c->res;
      bool was_send = c->user_data & 1;
      fl_end *d = &fl[i];
      if (res == 0 && !was_send && i < CONNS) { /* the client shut down: after the clock */
        eofs++;
        continue;
      }
      if (res <= 0 || (was_send && res != (i < CONNS ? (int)d->got : MSG))) {
        bad = 1;
        break;
      }
      if (was_send) { /* both ends wait for the next message */
        d->got = 0;
        flu_op(&r, i, false);
      } else if (i < CONNS) { /* the server echoes what it got */
        d->got = (size_t)res;
        flu_op(&r, i, true);
      } else if ((d->got += (size_t)res) < MSG) {
        flu_op(&r, i, false);
      } else if (++d->round < ROUNDS) {
        flu_op(&r, i, true);
      } else if (++finished == CONNS) {
        t = (timing){now() - w0, cpu_now() - c0};
        for (int k = 0; k < CONNS; k++) shutdown(cfd[k], SHUT_WR);
      }
    }
    io_uring_cq_advance(&r, seen);
  }
  io_uring_queue_exit(&r); /* before the fds close: no op of the ring is left on them */
  close_all(cfd, sfd);
  return bad ? (timing){-1, -1} : t;
}
#endif

/* epoll: every fd non-blocking and level-triggered; a ready end is served by plain recv/send
 * (a 64-byte send to an idle loopback socket never blocks). */
static timing echo_floor_epoll(void) {
  static int cfd[CONNS], sfd[CONNS];
  static struct epoll_event ev[256];
  if (connect_all(cfd, sfd)) return (timing){-1, -1};
  int ep = epoll_create1(EPOLL_CLOEXEC), bad = ep < 0, finished = 0;
  fl_init(cfd, sfd);
  for (int i = 0; i < 2 * CONNS && !bad; i++) {
    struct epoll_event e = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    bad = fcntl(fl[i].fd, F_SETFL, O_NONBLOCK) || epoll_ctl(ep, EPOLL_CTL_ADD, fl[i].fd, &e);
  }
  double w0 = now(), c0 = cpu_now();
  for (int i = CONNS; i < 2 * CONNS && !bad; i++)
    bad = send(fl[i].fd, fl[i].buf, MSG, MSG_NOSIGNAL) != MSG;
  while (finished < CONNS && !bad) {
    int n = epoll_wait(ep, ev, 256, -1);
    for (int k = 0; k < n && !bad; k++) {
      int i = (int)ev[k].data.u32;
      fl_end *d = &fl[i];
      ssize_t got = recv(d->fd, d->buf + d->got, MSG - d->got, 0);
      if (got < 0 && errno == EAGAIN) continue;
      if (got <= 0) bad = 1;
      else if (i < CONNS) bad = send(d->fd, d->buf, (size_t)got, MSG_NOSIGNAL) != got;
      else if ((d->got += (size_t)got) < MSG) continue;
      else if ((d->got = 0, ++d->round) < ROUNDS)
        bad = send(d->fd, d->buf, MSG, MSG_NOSIGNAL) != MSG;
      else finished++, bad = epoll_ctl(ep, EPOLL_CTL_DEL, d->fd, NULL) != 0;
    }
    if (n < 0 && errno != EINTR) bad = 1;
  }
  timing t = {now() - w0, cpu_now() - c0};
  if (ep >= 0) close(ep);
  close_all(cfd, sfd);
  return bad ? (timing){-1, -1} : t;
}

/* gevent: StreamServer echo and CONNS client greenlets; prints "wall cpu". */
static const char *PY_ECHO =
    "import sys, time\n"
    "from gevent import monkey; monkey.patch_all()\n"
    "import gevent, socket\n"
    "from gevent.server import StreamServer\n"
    "C, R, M = int(sys.argv[1]), int(sys.argv[2]), 64\n"
    "def handle(s, a):\n"
    "    while True:\n"
    "        d = s.recv(4096)\n"
    "        if not d: break\n"
    "        s.sendall(d)\n"
    "srv = StreamServer((\"127.0.0.1\", 0), handle, backlog=4096); srv.start()\n"
    "port = srv.server_port\n"
    "socks = [socket.create_connection((\"127.0.0.1\", port)) for _ in range(C)]\n"
    "def client(s):\n"
    "    m = b\"x\" * M\n"
    "    for _ in range(R):\n"
    "        s.sendall(m); got = 0\n"
    "        while got < M:\n"
    "            d = s.recv(M - got)\n"
    "            if not d: raise SystemExit(1)\n"
    "            got += len(d)\n"
    "gevent.sleep(0.1)\n"
    "w0, c0 = time.monotonic(), time.process_time()\n"
    "gevent.joinall([gevent.spawn(client, s) for s in socks], raise_error=True)\n"
    "print(time.monotonic() - w0, time.process_time() - c0)\n"
    "for s in socks: s.close()\n"
    "srv.stop()\n";

static timing echo_gevent(const char *python) {
  char path[300];
  snprintf(path, sizeof path, "%s/echo.py", dir);
  FILE *pf = fopen(path, "w");
  if (!pf) return (timing){-1, -1};
  fputs(PY_ECHO, pf);
  fclose(pf);
  char cmd[700];
  snprintf(cmd, sizeof cmd, "%s %s %d %d", python, path, CONNS, ROUNDS);
  FILE *f = popen(cmd, "r");
  timing t = {-1, -1};
  if (!f) return t;
  if (fscanf(f, "%lf %lf", &t.wall, &t.cpu) != 2) t = (timing){-1, -1};
  if (pclose(f) != 0) t = (timing){-1, -1};
  unlink(path);
  return t;
}

/* ---- report ----------------------------------------------------------------------------------- */

typedef struct series {
  const char *name;
  double per; /* work units per round (files, round trips) */
  double wall[MAX_ROUNDS], cpu[MAX_ROUNDS];
  int n, failed;
} series;

static void add(series *s, timing t) {
  if (t.wall < 0) {
    s->failed++;
    return;
  }
  s->wall[s->n] = t.wall;
  s->cpu[s->n] = t.cpu;
  s->n++;
}

static void report(series *s, const char *unit) {
  if (!s->n && !s->failed) return; /* not run */
  if (!s->n) {
    printf("  %-34s failed\n", s->name);
    return;
  }
  double w[MAX_ROUNDS], c[MAX_ROUNDS];
  memcpy(w, s->wall, sizeof w);
  memcpy(c, s->cpu, sizeof c);
  double wm = median(w, s->n), cm = median(c, s->n);
  printf("  %-34s %10.0f %s/s wall (%.0f..%.0f)  %10.0f %s/CPU-s (%.0f..%.0f)%s\n", s->name,
         s->per / wm, unit, s->per / w[s->n - 1], s->per / w[0], s->per / cm, unit,
         s->per / c[s->n - 1], s->per / c[0], s->failed ? "  [some rounds failed]" : "");
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 5;
  const char *python = argc > 2 ? argv[2] : "/usr/bin/python3";
  bool echo_only = argc > 3 && strncmp(argv[3], "echo", 4) == 0;
  bool fibers_only = argc > 3 && strcmp(argv[3], "echo-fibers") == 0; /* for profiling */
  bool floor_only = argc > 3 && strcmp(argv[3], "echo-floor") == 0;
  if (rounds < 1 || rounds > MAX_ROUNDS) rounds = 5;
  char exe[200];
  ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
  exe[el > 0 ? el : 0] = 0;
  char *slash = strrchr(exe, '/');
  if (slash) *slash = 0;
  snprintf(dir, sizeof dir, "%s/kiln-bench-io-XXXXXX", slash ? exe : ".");
  if (!mkdtemp(dir)) {
    perror("kiln-bench-io: mkdtemp");
    return 1;
  }
  memset(payload, 'p', sizeof payload);
  kiln_io_config cfg;
  kiln_io_config_default(&cfg);
  cfg.backend = KILN_IO_BACKEND_URING;
  kiln_io *uring = NULL, *poller = NULL;
  if (kiln_io_create(&cfg, &uring) != 0) fprintf(stderr, "kiln-bench-io: no io_uring here\n");
  cfg.backend = KILN_IO_BACKEND_POLLER;
  if (kiln_io_create(&cfg, &poller) != 0) return 1;
  kiln_pool_config pcfg;
  kiln_pool_config_default(&pcfg);
  pcfg.threads = FIBER_WORKERS;
  kiln_pool *pool = NULL;
  if (kiln_pool_create(&pcfg, &pool) != 0) return 1;

  series fp = {"files: plain serial", FILES, {0}, {0}, 0, 0};
  series fu = {"files: engine io_uring", FILES, {0}, {0}, 0, 0};
  series fq = {"files: engine poller", FILES, {0}, {0}, 0, 0};
  series sp = {"files+fdatasync: plain serial", SYNC_FILES, {0}, {0}, 0, 0};
  series su = {"files+fdatasync: engine io_uring", SYNC_FILES, {0}, {0}, 0, 0};
  series sq = {"files+fdatasync: engine poller", SYNC_FILES, {0}, {0}, 0, 0};
  series ep = {"echo: thread per end, blocking", (double)CONNS * ROUNDS, {0}, {0}, 0, 0};
  series eu = {"echo: engine io_uring, callbacks", (double)CONNS * ROUNDS, {0}, {0}, 0, 0};
  series eq = {"echo: engine poller, callbacks", (double)CONNS * ROUNDS, {0}, {0}, 0, 0};
  series eg = {"echo: gevent StreamServer", (double)CONNS * ROUNDS, {0}, {0}, 0, 0};
  series efu = {"echo: fibers, io_uring", (double)CONNS * ROUNDS, {0}, {0}, 0, 0};
  series efq = {"echo: fibers, poller", (double)CONNS * ROUNDS, {0}, {0}, 0, 0};
  series eflu = {"echo: floor, 1 thread io_uring", (double)CONNS * ROUNDS, {0}, {0}, 0, 0};
  series efle = {"echo: floor, 1 thread epoll", (double)CONNS * ROUNDS, {0}, {0}, 0, 0};
  for (int r = 0; r < rounds; r++) {
    if (floor_only) {
#ifdef KILN_HAVE_LIBURING
      add(&eflu, echo_floor_uring());
#endif
      add(&efle, echo_floor_epoll());
      continue;
    }
    if (uring) add(&efu, echo_fibers(uring, pool));
    if (fibers_only) continue;
    add(&efq, echo_fibers(poller, pool));
#ifdef KILN_HAVE_LIBURING
    add(&eflu, echo_floor_uring());
#endif
    add(&efle, echo_floor_epoll());
    add(&eg, echo_gevent(python));
    add(&ep, echo_plain());
    if (uring) add(&eu, echo_engine(uring));
    add(&eq, echo_engine(poller));
    if (echo_only) continue;
    add(&fp, files_plain(FILES, false));
    if (uring) add(&fu, files_engine(uring, FILES, false));
    add(&fq, files_engine(poller, FILES, false));
    add(&sp, files_plain(SYNC_FILES, true));
    if (uring) add(&su, files_engine(uring, SYNC_FILES, true));
    add(&sq, files_engine(poller, SYNC_FILES, true));
  }
  kiln_pool_destroy(pool);
  kiln_io_destroy(uring);
  kiln_io_destroy(poller);
  clean_all();
  rmdir(dir);
  printf("kiln-bench-io: %d rounds, median (spread min..max); %d files of %d B (%d with fdatasync),"
         " window %d; echo %d connections x %d round trips of %d B\n",
         rounds, FILES, FILE_SIZE, SYNC_FILES, WINDOW, CONNS, ROUNDS, MSG);
  series *all[] = {&fp, &fu, &fq, &sp, &su, &sq};
  for (size_t i = 0; !echo_only && i < sizeof all / sizeof *all; i++) report(all[i], "files");
  series *echoes[] = {&ep, &eu, &eq, &efu, &efq, &eflu, &efle, &eg};
  for (size_t i = 0; i < sizeof echoes / sizeof *echoes; i++) report(echoes[i], "rt");
  if (eg.n && efu.n)
    printf("  fibers io_uring / gevent: %.1fx wall, %.1fx CPU (medians)\n",
           median(eg.wall, eg.n) / median(efu.wall, efu.n),
           median(eg.cpu, eg.n) / median(efu.cpu, efu.n));
  if (eg.n && eflu.n)
    printf("  floor io_uring / gevent: %.1fx wall, %.1fx CPU (medians)\n",
           median(eg.wall, eg.n) / median(eflu.wall, eflu.n),
           median(eg.cpu, eg.n) / median(eflu.cpu, eflu.n));
  if (eg.n && efle.n)
    printf("  floor epoll / gevent: %.1fx wall, %.1fx CPU (medians)\n",
           median(eg.wall, eg.n) / median(efle.wall, efle.n),
           median(eg.cpu, eg.n) / median(efle.cpu, efle.n));
  return 0;
}
