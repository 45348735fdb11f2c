/* forkserver.c: the fork server, a process forked by kiln_forkserver_start() while the program is
 * still single-threaded, which forks every KILN_START_FORKSERVER child on request. Its children
 * therefore start from a clean single-threaded image, whatever threads the program runs by then.
 * This file is the program's side; forkserver_main.c is the server.
 *
 * Protocol, over a SOCK_STREAM socket pair between the program and the server:
 *   request  (program -> server): a kiln__fs_req header, sent with SCM_RIGHTS carrying the
 *            server's end of a fresh "status" socket pair and the channels' descriptors (each
 *            its socket, then its rings' memfd where dirs says it has one), then len argument
 *            bytes. Requests are serialised by g_fs.mu, so threads may start children
 *            at once.
 *   response (server -> program, on the status socket): an int32, the child's pid with its pidfd
 *            in SCM_RIGHTS, or -errno when fork failed; later, when the server has reaped the
 *            child, its int32 wait status; then the server closes the socket.
 * The server never runs the program's code (only its children do), ignores SIGINT and SIGTERM,
 * and dies with the program (it polls the program's pidfd), taking its daemon children with it.
 * When the program closes its socket (kiln_forkserver_stop) it serves no new request, reports on
 * the children it has, and exits once they have all ended (see sweep_stopped for its reaping). */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "process_internal.h"

/* A stopped server lives on while it has children; it is reaped here, by the next start, stop
 * or running call that finds it ended (no thread is started for it, so that stop followed by
 * start in a single-threaded program still forks the new server from a single-threaded one). */
enum { STOPPED_MAX = 8 };

static struct {
  pthread_mutex_t mu; /* guards everything below; serialises the sending of requests */
  pid_t owner;        /* the process that started the server; its children must not use it */
  pid_t pid;
  int pidfd;
  int sock; /* -1 when not running */
  struct {
    pid_t pid;
    int pidfd;
  } stopped[STOPPED_MAX];
  size_t nstopped;
} g_fs = {.mu = PTHREAD_MUTEX_INITIALIZER, .pidfd = -1, .sock = -1};

static void forget_server(void) { g_fs.owner = 0, g_fs.pid = 0, g_fs.pidfd = -1, g_fs.sock = -1; }

void kiln__forkserver_forget(void) {
  /* in a child: another thread of a FORK parent may have held the lock at the fork; the stopped
   * servers are not its children */
  g_fs.mu = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
  forget_server();
  g_fs.nstopped = 0;
}

/* In a process forked by the program itself (not by kiln): the state is its parent's. Its copies
 * of the descriptors are released; the parent's server goes on serving the parent. Called with
 * g_fs.mu held. */
static void drop_inherited(void) {
  close(g_fs.sock);
  close(g_fs.pidfd);
  for (size_t i = 0; i < g_fs.nstopped; i++) close(g_fs.stopped[i].pidfd);
  g_fs.nstopped = 0;
  forget_server();
}

/* Reaps the stopped servers that have ended (and forgets those that are not this process's
 * children: copies inherited through a fork of the program's own). Called with g_fs.mu held. */
static void sweep_stopped(void) {
  for (size_t i = g_fs.nstopped; i-- > 0;) {
    siginfo_t si = {0};
    int r = waitid(P_PIDFD, (id_t)g_fs.stopped[i].pidfd, &si, WEXITED | WNOHANG);
    if (r == 0 && si.si_pid == 0) continue; /* still serving */
    close(g_fs.stopped[i].pidfd);
    g_fs.stopped[i] = g_fs.stopped[--g_fs.nstopped];
  }
}

/* Closes the server's socket (it ends once its last child has) and keeps it for sweep_stopped.
 * Called with g_fs.mu held, by its owner. */
static void retire_server(void) {
  close(g_fs.sock);
  sweep_stopped();
  if (g_fs.nstopped < STOPPED_MAX) {
    g_fs.stopped[g_fs.nstopped].pid = g_fs.pid;
    g_fs.stopped[g_fs.nstopped++].pidfd = g_fs.pidfd;
  } else {
    kiln__reap_later(g_fs.pid, g_fs.pidfd); /* many stopped servers at once: the reaper thread */
  }
  forget_server();
}

/* Whether this process's server is up. Called with g_fs.mu held. */
static bool running_locked(void) {
  if (g_fs.sock < 0 || g_fs.owner != getpid()) return false;
  /* its pidfd turns readable if it died (killed by hand, say); our socket if it stopped serving
   * (it never writes there) */
  struct pollfd p[2] = {{.fd = g_fs.pidfd, .events = POLLIN}, {.fd = g_fs.sock, .events = POLLIN}};
  return poll(p, 2, 0) == 0;
}

int kiln_forkserver_start(void) {
  pthread_mutex_lock(&g_fs.mu);
  int rc = 0;
  if (running_locked()) goto out;
  if (g_fs.owner == getpid() && g_fs.sock >= 0) retire_server(); /* it died: clear up after it */
  else if (g_fs.owner != 0 && g_fs.owner != getpid()) drop_inherited();
  sweep_stopped();
  int sv[2];
  rc = KILN_EIO;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) goto out;
  pid_t parent = getpid();
  fflush(stdout); /* or every child of the server would print it again when it ends */
  fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) kiln__forkserver_main(sv[1], parent);
  close(sv[1]);
  int pidfd = pid > 0 ? kiln__pidfd_open(pid) : -1;
  if (pidfd < 0) {
    close(sv[0]);
    if (pid > 0) { /* closing sv[0] made it exit */
      while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
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
  sweep_stopped();
  pthread_mutex_unlock(&g_fs.mu);
  return r;
}

void kiln_forkserver_stop(void) {
  pthread_mutex_lock(&g_fs.mu);
  if (g_fs.sock >= 0 && g_fs.owner == getpid()) retire_server();
  else sweep_stopped();
  pthread_mutex_unlock(&g_fs.mu);
}

/* Sends one request: fds[0] is the server's end of the status socket, fds[1..] the channels'.
 * Called with g_fs.mu held. 0 or errno. */
static int send_request(const kiln__fs_req *rq, const int *fds, size_t nfds, const void *arg) {
  int e = kiln__send_fds(g_fs.sock, rq, sizeof *rq, fds, nfds);
  return e ? e : kiln__send_full(g_fs.sock, arg, (size_t)rq->len);
}

static void close_all(const int *fds, size_t n) {
  for (size_t i = 0; i < n; i++) close(fds[i]);
}

/* The longest a start waits for the server's answer: it only has to read the requests before
 * this one and fork, so a server that takes longer is stuck (at capacity without memory). */
#define KILN__ANSWER_TIMEOUT 60.0

/* Reads the server's answer on the status socket: the pid and its pidfd. */
static int read_response(int statfd, pid_t *pid, int *pidfd) {
  if (kiln__poll_fd(statfd, POLLIN, kiln__now() + KILN__ANSWER_TIMEOUT) != 1) return KILN_EIO;
  int32_t v = 0;
  int fds[1];
  size_t nfds = 0;
  int e = kiln__recv_fds(statfd, &v, sizeof v, fds, 1, &nfds);
  if (e == 0 && v > 0 && nfds == 1) {
    *pid = v, *pidfd = fds[0];
    return 0;
  }
  close_all(fds, nfds);
  return e == 0 && v == -ENOMEM ? KILN_ENOMEM : KILN_EIO;
}

/* Fills the request's header and its descriptors (fds[1..*nfds): duplicates, owned by the
 * caller; each channel's socket, then its memfd if it has one) from the config. KILN_EINVAL for a
 * closed channel, KILN_EIO. */
static int make_request(const kiln_process_config *cfg, kiln_process_fn fn, size_t len,
                        kiln__fs_req *rq, int *fds, size_t *nfds) {
  memset(rq, 0, sizeof *rq);
  rq->fn = (uint64_t)(uintptr_t)fn, rq->len = len, rq->daemon = cfg->daemon;
  rq->nchannels = (uint32_t)cfg->nchannels;
  strncpy(rq->name, cfg->name ? cfg->name : "kiln-proc", sizeof rq->name - 1);
  *nfds = 1;
  for (size_t i = 0; i < cfg->nchannels; i++) {
    kiln__channel_fds f;
    int rc = kiln__channel_dup(cfg->channels[i], &f);
    if (rc) {
      close_all(fds + 1, *nfds - 1);
      return rc == KILN_ESTATE ? KILN_EINVAL : rc;
    }
    fds[(*nfds)++] = f.sock;
    if (f.mem >= 0) fds[(*nfds)++] = f.mem;
    rq->dirs[i] = (uint8_t)(f.flags | (f.mem >= 0 ? KILN__CH_MEM : 0));
  }
  return 0;
}

int kiln__forkserver_spawn(const kiln_process_config *cfg, kiln_process_fn fn, const void *arg,
                           size_t len, pid_t *pid, int *pidfd, int *statfd) {
  kiln__fs_req rq;
  int fds[KILN__MAX_REQUEST_FDS];
  size_t nfds;
  int rc = make_request(cfg, fn, len, &rq, fds, &nfds);
  if (rc) return rc;
  int sv[2] = {-1, -1};
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
    rc = KILN_EIO;
  } else {
    fds[0] = sv[1];
    pthread_mutex_lock(&g_fs.mu);
    rc = !running_locked() ? KILN_ESTATE : send_request(&rq, fds, nfds, arg) ? KILN_EIO : 0;
    pthread_mutex_unlock(&g_fs.mu);
    close(sv[1]);
  }
  close_all(fds + 1, nfds - 1); /* the server has its own copies now */
  /* the answer comes on this request's own socket: no need to hold the lock for it */
  if (rc == 0) rc = read_response(sv[0], pid, pidfd);
  if (rc) {
    if (sv[0] >= 0) close(sv[0]);
    return rc;
  }
  *statfd = sv[0];
  return 0;
}
