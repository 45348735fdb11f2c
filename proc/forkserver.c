/* forkserver.c: the fork server, a process forked by kiln_forkserver_start() while the program is
 * still single-threaded, which forks every KILN_START_FORKSERVER child on request. Its children
 * therefore start from a clean single-threaded image, whatever threads the program runs by then.
 *
 * Protocol, over a SOCK_STREAM socket pair between the program and the server:
 *   request  (program -> server): a fs_req header, sent with SCM_RIGHTS carrying the server's end
 *            of a fresh "status" socket pair and the channels' descriptors, then len argument
 *            bytes.
 *            Requests are serialised by g_fs.mu, so threads may start children at once.
 *   response (server -> program, on the status socket): an int32, the child's pid with its pidfd
 *            in SCM_RIGHTS, or -errno when fork failed; later, when the server has reaped the
 *            child, its int32 wait status; then the server closes the socket.
 * The server never runs the program's code (only its children do), ignores SIGINT and SIGTERM,
 * and dies with the program (PR_SET_PDEATHSIG), taking its daemon children with it. When the
 * program closes its socket (kiln_forkserver_stop) it serves no new request, reports on the
 * children it has, and exits once they have all ended; the program's reaper reaps it. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "process_internal.h"

typedef struct fs_req {
  uint64_t fn; /* the address of the kiln_process_fn: the server is a fork of the program */
  uint64_t len;
  uint32_t daemon;
  uint32_t nchannels;
  char name[16];
  uint8_t dirs[KILN__MAX_CHANNELS]; /* bit 0: can receive, bit 1: can send */
} fs_req;

static struct {
  pthread_mutex_t mu; /* serialises start, stop and the sending of requests */
  pid_t owner;        /* the process that started the server; its children must not use it */
  pid_t pid;
  int pidfd;
  int sock; /* -1 when not running */
} g_fs = {.mu = PTHREAD_MUTEX_INITIALIZER, .pidfd = -1, .sock = -1};

/* ---- the server ----------------------------------------------------------------------------- */

typedef struct fs_child {
  pid_t pid;
  int pidfd;  /* the server's own: readable when the child has ended */
  int statfd; /* the server's end of the child's status socket */
} fs_child;

/* Receives exactly len bytes of header with the descriptors that came with it (fds, capacity
 * cap, count in *nfds). 0, -1 at a clean end of stream, or an errno. */
static int recv_with_fds(int sock, void *buf, size_t len, int *fds, size_t cap, size_t *nfds) {
  union {
    char b[CMSG_SPACE((KILN__MAX_CHANNELS + 1) * sizeof(int))];
    struct cmsghdr align;
  } cm;
  struct iovec iov = {.iov_base = buf, .iov_len = len};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b,
                     .msg_controllen = CMSG_SPACE(cap * sizeof(int))};
  ssize_t n;
  while ((n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
  }
  if (n <= 0) return n == 0 ? -1 : errno;
  *nfds = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < k; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (*nfds < cap) fds[(*nfds)++] = fd;
      else close(fd);
    }
  }
  if ((size_t)n < len) {
    int e = kiln__read_full(sock, (char *)buf + n, len - (size_t)n);
    if (e) return e == -1 ? EPROTO : e;
  }
  return 0;
}

/* Sends an int32 with at most one descriptor. 0 or errno. */
static int send_with_fd(int sock, int32_t v, const int *fds, size_t nfds) {
  union {
    char b[CMSG_SPACE((KILN__MAX_CHANNELS + 1) * sizeof(int))];
    struct cmsghdr align;
  } cm;
  memset(&cm, 0, sizeof cm);
  struct iovec iov = {.iov_base = &v, .iov_len = sizeof v};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
  if (nfds) {
    m.msg_control = cm.b;
    m.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET, c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
    memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
  }
  ssize_t n;
  while ((n = sendmsg(sock, &m, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
  }
  return n == (ssize_t)sizeof v ? 0 : n < 0 ? errno : EPROTO;
}

/* In the server's child: wraps the received descriptors as channels and runs the child. */
static _Noreturn void serve_child(const fs_req *rq, const int *fds, const void *arg, pid_t server) {
  kiln_channel *chs[KILN__MAX_CHANNELS];
  int keep[KILN__MAX_CHANNELS];
  for (uint32_t i = 0; i < rq->nchannels; i++) {
    if (kiln__channel_adopt(fds[i], rq->dirs[i] & 2, rq->dirs[i] & 1, &chs[i]) != 0) _exit(255);
    keep[i] = fds[i];
  }
  kiln__sort_fds(keep, rq->nchannels);
  kiln__child_spec s = {.fn = (kiln_process_fn)(uintptr_t)rq->fn, .arg = arg, .len = rq->len,
                        .daemon = rq->daemon != 0, .parent = server, .name = rq->name,
                        .channels = chs, .nchannels = rq->nchannels, .keep = keep,
                        .nkeep = rq->nchannels};
  kiln__child_main(&s);
}

/* Forks the child of one request and answers on its status socket. Adds it to kids (capacity
 * checked by the caller) on success. */
static void spawn_child(const fs_req *rq, int statfd, const int *fds, const void *arg,
                        fs_child *kids, size_t *nkids) {
  pid_t server = getpid();
  pid_t pid = fork();
  if (pid == 0) serve_child(rq, fds, arg, server);
  if (pid < 0) {
    send_with_fd(statfd, -errno, NULL, 0);
    close(statfd);
    return;
  }
  int pidfd = kiln__pidfd_open(pid);
  if (pidfd < 0 || send_with_fd(statfd, pid, &pidfd, 1) != 0) {
    /* nobody can hold this child: undo it */
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    if (pidfd >= 0) close(pidfd);
    close(statfd);
    return;
  }
  kids[(*nkids)++] = (fs_child){pid, pidfd, statfd};
}

/* Reads and serves one request. -1 when the program has closed the socket (or broke the
 * protocol): no more requests then. */
static int serve_request(int sock, fs_child *kids, size_t *nkids) {
  fs_req rq;
  int fds[KILN__MAX_CHANNELS + 1];
  size_t nfds = 0;
  if (recv_with_fds(sock, &rq, sizeof rq, fds, KILN__MAX_CHANNELS + 1, &nfds) != 0) {
    for (size_t i = 0; i < nfds; i++) close(fds[i]);
    return -1;
  }
  int rc = 0;
  void *arg = malloc(rq.len ? (size_t)rq.len : 1);
  if (nfds != rq.nchannels + 1 || rq.nchannels > KILN__MAX_CHANNELS || !arg ||
      (rq.len && kiln__read_full(sock, arg, (size_t)rq.len) != 0)) {
    rc = -1; /* out of step with the program: stop serving, the waiting caller sees EIO */
  } else {
    rq.name[sizeof rq.name - 1] = 0;
    spawn_child(&rq, fds[0], fds + 1, arg, kids, nkids);
    nfds--, memmove(fds, fds + 1, nfds * sizeof *fds); /* statfd now belongs to kids */
  }
  free(arg);
  for (size_t i = 0; i < nfds; i++) close(fds[i]);
  return rc;
}

/* Reaps the children whose pidfd is readable and reports their status. */
static void reap_children(const struct pollfd *pf, fs_child *kids, size_t *nkids) {
  size_t n = *nkids;
  for (size_t i = n; i-- > 0;) {
    if (!pf[i].revents) continue;
    int st = 0;
    while (waitpid(kids[i].pid, &st, 0) < 0 && errno == EINTR) {
    }
    send_with_fd(kids[i].statfd, st, NULL, 0); /* the program may have gone: MSG_NOSIGNAL */
    close(kids[i].statfd);
    close(kids[i].pidfd);
    kids[i] = kids[--*nkids];
  }
}

static _Noreturn void server_loop(int sock) {
  size_t cap = 64, nkids = 0;
  fs_child *kids = malloc(cap * sizeof *kids);
  struct pollfd *pf = malloc((cap + 1) * sizeof *pf);
  if (!kids || !pf) _exit(1);
  for (;;) {
    if (sock < 0 && nkids == 0) _exit(0);
    if (nkids == cap) {
      fs_child *k = realloc(kids, 2 * cap * sizeof *kids);
      if (k) kids = k;
      struct pollfd *p = realloc(pf, (2 * cap + 1) * sizeof *pf);
      if (p) pf = p;
      if (k && p) cap *= 2;
    }
    for (size_t i = 0; i < nkids; i++)
      pf[i] = (struct pollfd){.fd = kids[i].pidfd, .events = POLLIN};
    /* at capacity (out of memory) requests wait until a child ends */
    pf[nkids] = (struct pollfd){.fd = nkids < cap ? sock : -1, .events = POLLIN};
    if (poll(pf, nkids + 1, -1) < 0) continue; /* EINTR */
    bool request = pf[nkids].revents != 0;
    reap_children(pf, kids, &nkids); /* before the request, which appends to kids */
    if (request && serve_request(sock, kids, &nkids) < 0) {
      close(sock);
      sock = -1;
    }
  }
}

static _Noreturn void server_main(int sock, pid_t parent) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(0);
  kiln__reset_signals(); /* no handler of the program may run here */
  struct sigaction ign = {.sa_handler = SIG_IGN};
  sigemptyset(&ign.sa_mask);
  sigaction(SIGINT, &ign, NULL);
  sigaction(SIGTERM, &ign, NULL);
  prctl(PR_SET_NAME, "kiln-forkserver");
  /* Hold nothing of the program's but the standard streams: a descriptor it opened before
   * (a conn end, a file) kept open here would, e.g., keep a peer from ever seeing end of stream. */
  if (sock != 3) {
    if (dup2(sock, 3) < 0) _exit(1);
    sock = 3;
  }
  if (syscall(SYS_close_range, 4u, ~0u, 0) < 0)
    for (int fd = 4; fd < 65536; fd++) close(fd);
  kiln__fd_flags(sock, false);
  server_loop(sock);
}

/* ---- the program's side --------------------------------------------------------------------- */

static void forget_server(void) { g_fs.owner = 0, g_fs.pid = 0, g_fs.pidfd = -1, g_fs.sock = -1; }

void kiln__forkserver_forget(void) {
  /* in a child: another thread of a FORK parent may have held the lock at the fork */
  g_fs.mu = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
  forget_server();
}

/* Whether this process's server is up. Called with g_fs.mu held. */
static bool running_locked(void) {
  if (g_fs.sock < 0 || g_fs.owner != getpid()) return false;
  /* its pidfd turns readable if it died (killed by hand, say) */
  struct pollfd p = {.fd = g_fs.pidfd, .events = POLLIN};
  return poll(&p, 1, 0) == 0;
}

int kiln_forkserver_start(void) {
  pthread_mutex_lock(&g_fs.mu);
  int rc = 0;
  if (running_locked()) goto out;
  if (g_fs.owner == getpid() && g_fs.sock >= 0) { /* died: clear up after it */
    close(g_fs.sock);
    kiln__reap_later(g_fs.pid, g_fs.pidfd);
  }
  forget_server();
  int sv[2];
  rc = KILN_EIO;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) goto out;
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) server_main(sv[1], parent);
  close(sv[1]);
  int pidfd = pid > 0 ? kiln__pidfd_open(pid) : -1;
  if (pidfd < 0) {
    close(sv[0]);
    if (pid > 0) { /* closing sv[0] made it exit */
      while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
      }
    }
    goto out;
  }
  g_fs.owner = parent, g_fs.pid = pid, g_fs.pidfd = pidfd, g_fs.sock = sv[0];
  rc = 0;
out:
  pthread_mutex_unlock(&g_fs.mu);
  return rc;
}

bool kiln_forkserver_running(void) {
  pthread_mutex_lock(&g_fs.mu);
  bool r = running_locked();
  pthread_mutex_unlock(&g_fs.mu);
  return r;
}

void kiln_forkserver_stop(void) {
  pthread_mutex_lock(&g_fs.mu);
  if (g_fs.sock >= 0 && g_fs.owner == getpid()) {
    close(g_fs.sock); /* the server ends once its last child has */
    kiln__reap_later(g_fs.pid, g_fs.pidfd);
    forget_server();
  }
  pthread_mutex_unlock(&g_fs.mu);
}

/* Sends one request: fds[0] is the server's end of the status socket, fds[1..] the channels'.
 * Called with g_fs.mu held. 0 or errno. */
static int send_request(const fs_req *rq, const int *fds, const void *arg) {
  union {
    char b[CMSG_SPACE((KILN__MAX_CHANNELS + 1) * sizeof(int))];
    struct cmsghdr align;
  } cm;
  memset(&cm, 0, sizeof cm);
  size_t nfds = rq->nchannels + 1;
  struct iovec iov = {.iov_base = (void *)(uintptr_t)rq, .iov_len = sizeof *rq};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b,
                     .msg_controllen = CMSG_SPACE(nfds * sizeof(int))};
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET, c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
  memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
  ssize_t n;
  while ((n = sendmsg(g_fs.sock, &m, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
  }
  if (n < 0) return errno;
  /* the descriptors went with the first byte: the rest of the header and the argument follow */
  int e = kiln__send_full(g_fs.sock, (const char *)rq + n, sizeof *rq - (size_t)n);
  return e ? e : kiln__send_full(g_fs.sock, arg, (size_t)rq->len);
}

/* Reads the server's answer on the status socket: the pid and its pidfd. */
static int read_response(int statfd, pid_t *pid, int *pidfd) {
  int32_t v = 0;
  int fds[KILN__MAX_CHANNELS + 1];
  size_t nfds = 0;
  int e = recv_with_fds(statfd, &v, sizeof v, fds, 1, &nfds);
  if (e == 0 && v > 0 && nfds == 1) {
    *pid = v, *pidfd = fds[0];
    return 0;
  }
  for (size_t i = 0; i < nfds; i++) close(fds[i]);
  return e == 0 && v == -ENOMEM ? KILN_ENOMEM : KILN_EIO;
}

/* Fills the request's header and its descriptors (fds[1..]) from the config. KILN_EINVAL for a
 * closed channel. */
static int make_request(const kiln_process_config *cfg, kiln_process_fn fn, size_t len, fs_req *rq,
                        int *fds) {
  memset(rq, 0, sizeof *rq);
  rq->fn = (uint64_t)(uintptr_t)fn, rq->len = len, rq->daemon = cfg->daemon;
  rq->nchannels = (uint32_t)cfg->nchannels;
  strncpy(rq->name, cfg->name ? cfg->name : "kiln-proc", sizeof rq->name - 1);
  for (size_t i = 0; i < cfg->nchannels; i++) {
    bool cs, cr;
    if (kiln__channel_share(cfg->channels[i], &fds[i + 1], &cs, &cr)) return KILN_EINVAL;
    rq->dirs[i] = (uint8_t)((cr ? 1 : 0) | (cs ? 2 : 0));
  }
  return 0;
}

int kiln__forkserver_spawn(const kiln_process_config *cfg, kiln_process_fn fn, const void *arg,
                           size_t len, pid_t *pid, int *pidfd, int *statfd) {
  fs_req rq;
  int fds[KILN__MAX_CHANNELS + 1];
  int rc = make_request(cfg, fn, len, &rq, fds);
  if (rc) return rc;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return KILN_EIO;
  fds[0] = sv[1];
  pthread_mutex_lock(&g_fs.mu);
  rc = !running_locked() ? KILN_ESTATE : send_request(&rq, fds, arg) ? KILN_EIO : 0;
  pthread_mutex_unlock(&g_fs.mu);
  close(sv[1]);
  /* the answer comes on this request's own socket: no need to hold the lock for it */
  if (rc == 0) rc = read_response(sv[0], pid, pidfd);
  if (rc) {
    close(sv[0]);
    return rc;
  }
  *statfd = sv[0];
  return 0;
}
