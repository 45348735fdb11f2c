/* forkserver_main.c: the fork server process itself (forkserver.c has the protocol and the
 * program's side). It waits in poll(2) on its socket to the program and on the pidfds of its
 * children: a request is read whole and answered with a fork; a child's pidfd turning readable
 * means it has ended, and the server reaps it and writes its wait status to the child's status
 * socket. It runs nothing of the program's but the children it forks (kiln__child_main), takes
 * no signal handler of the program's, and holds no descriptor of the program's but the
 * standard streams. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "process_internal.h"

typedef struct fs_child {
  pid_t pid;
  int pidfd;  /* the server's own: readable when the child has ended */
  int statfd; /* the server's end of the child's status socket */
} fs_child;

/* In the server's child: wraps the received descriptors as channels and runs the child. */
static _Noreturn void serve_child(const kiln__fs_req *rq, const int *fds, const void *arg,
                                  pid_t server) {
  kiln_channel *chs[KILN__MAX_CHANNELS];
  int keep[KILN__MAX_REQUEST_FDS];
  size_t nkeep = 0;
  for (uint32_t i = 0; i < rq->nchannels; i++) {
    kiln__channel_fds f = {.sock = fds[nkeep], .mem = -1, .flags = rq->dirs[i] & ~KILN__CH_MEM};
    keep[nkeep++] = f.sock;
    if (rq->dirs[i] & KILN__CH_MEM) {
      f.mem = fds[nkeep];
      keep[nkeep++] = f.mem;
    }
    if (kiln__channel_adopt(&f, &chs[i]) != 0) _exit(255);
  }
  kiln__sort_fds(keep, nkeep);
  kiln__child_spec s = {.fn = (kiln_process_fn)(uintptr_t)rq->fn,
                        .arg = arg,
                        .len = rq->len,
                        .daemon = rq->daemon != 0,
                        .parent = server,
                        .name = rq->name,
                        .channels = chs,
                        .nchannels = rq->nchannels,
                        .keep = keep,
                        .nkeep = nkeep};
  kiln__child_main(&s);
}

/* Forks the child of one request and answers on its status socket. Adds it to kids (capacity
 * checked by the caller) on success. */
static void spawn_child(const kiln__fs_req *rq, int statfd, const int *fds, const void *arg,
                        fs_child *kids, size_t *nkids) {
  pid_t server = getpid();
  pid_t pid = fork();
  if (pid == 0) serve_child(rq, fds, arg, server);
  if (pid < 0) {
    int32_t e = -errno;
    kiln__send_fds(statfd, &e, sizeof e, NULL, 0);
    close(statfd);
    return;
  }
  int pidfd = kiln__pidfd_open(pid);
  int32_t v = pid;
  if (pidfd < 0 || kiln__send_fds(statfd, &v, sizeof v, &pidfd, 1) != 0) {
    /* nobody can hold this child: undo it */
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
    if (pidfd >= 0) close(pidfd);
    close(statfd);
    return;
  }
  kids[(*nkids)++] = (fs_child){pid, pidfd, statfd};
}

/* Reads and drops n bytes of the stream (an argument there was no memory for). 0 or -1. */
static int drain(int sock, uint64_t n) {
  char tmp[4096];
  while (n) {
    size_t k = n < sizeof tmp ? (size_t)n : sizeof tmp;
    if (kiln__read_full(sock, tmp, k) != 0) return -1;
    n -= k;
  }
  return 0;
}

/* The descriptors a request carries: its status socket, then per channel a socket and maybe a
 * memfd. */
static size_t request_fds(const kiln__fs_req *rq) {
  size_t n = 1;
  for (uint32_t i = 0; i < rq->nchannels; i++) n += rq->dirs[i] & KILN__CH_MEM ? 2 : 1;
  return n;
}

/* Reads and serves one request. -1 when the program has closed the socket (or broke the
 * protocol): no more requests then. */
static int serve_request(int sock, fs_child *kids, size_t *nkids) {
  kiln__fs_req rq;
  int fds[KILN__MAX_REQUEST_FDS];
  size_t nfds = 0;
  int rc = kiln__recv_fds(sock, &rq, sizeof rq, fds, KILN__MAX_REQUEST_FDS, &nfds) ? -1 : 0;
  if (rc == 0 && (rq.nchannels > KILN__MAX_CHANNELS || nfds != request_fds(&rq)))
    rc = -1; /* out of step with the program: stop serving, the waiting caller sees EIO */
  void *arg = rc ? NULL : malloc(rq.len ? (size_t)rq.len : 1);
  if (rc == 0 && !arg) { /* keep in step, and say why */
    rc = drain(sock, rq.len);
    if (rc == 0) kiln__send_fds(fds[0], &(int32_t){-ENOMEM}, sizeof(int32_t), NULL, 0);
  } else if (rc == 0 && rq.len && kiln__read_full(sock, arg, (size_t)rq.len) != 0) {
    rc = -1;
  } else if (rc == 0) {
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
    while (waitpid(kids[i].pid, &st, 0) < 0 && errno == EINTR) {}
    int32_t v = st; /* the program may have gone: MSG_NOSIGNAL */
    kiln__send_fds(kids[i].statfd, &v, sizeof v, NULL, 0);
    close(kids[i].statfd);
    close(kids[i].pidfd);
    kids[i] = kids[--*nkids];
  }
}

/* ppfd: the program's pidfd, readable once the whole program has ended. */
static _Noreturn void server_loop(int sock, int ppfd) {
  size_t cap = 64, nkids = 0;
  fs_child *kids = malloc(cap * sizeof *kids);
  struct pollfd *pf = malloc((cap + 2) * sizeof *pf);
  if (!kids || !pf) _exit(1);
  for (;;) {
    if (sock < 0 && nkids == 0) _exit(0);
    if (nkids == cap) {
      fs_child *k = realloc(kids, 2 * cap * sizeof *kids);
      if (k) kids = k;
      struct pollfd *p = realloc(pf, (2 * cap + 2) * sizeof *pf);
      if (p) pf = p;
      if (k && p) cap *= 2;
    }
    for (size_t i = 0; i < nkids; i++)
      pf[i] = (struct pollfd){.fd = kids[i].pidfd, .events = POLLIN};
    /* at capacity (out of memory) requests wait until a child ends */
    pf[nkids] = (struct pollfd){.fd = nkids < cap ? sock : -1, .events = POLLIN};
    pf[nkids + 1] = (struct pollfd){.fd = ppfd, .events = POLLIN};
    if (poll(pf, nkids + 2, -1) < 0) {
      if (errno == EINTR) continue;
      _exit(1); /* cannot wait any more: rather end than spin (the children are re-parented) */
    }
    /* the program has ended: so does the server, and its daemon children with it */
    if (pf[nkids + 1].revents) _exit(0);
    bool request = pf[nkids].revents != 0;
    reap_children(pf, kids, &nkids); /* before the request, which appends to kids */
    if (request && serve_request(sock, kids, &nkids) < 0) {
      close(sock);
      sock = -1;
    }
  }
}

/* The server dies with the program, the whole process: it polls the program's pidfd, which turns
 * readable once every thread of the program has ended. (PR_SET_PDEATHSIG would follow the thread
 * that forked the server, which need not live as long as the program.) Its own children, daemon
 * or not, are forked by its one thread, so their PR_SET_PDEATHSIG follows the server. */
_Noreturn void kiln__forkserver_main(int sock, pid_t parent) {
  kiln__reset_signals(); /* no handler of the program may run here */
  struct sigaction ign = {.sa_handler = SIG_IGN};
  sigemptyset(&ign.sa_mask);
  sigaction(SIGINT, &ign, NULL);
  sigaction(SIGTERM, &ign, NULL);
  prctl(PR_SET_NAME, "kiln-forkserver");
  /* Hold nothing of the program's but the standard streams: a descriptor it opened before (a
   * channel end, a file) kept open here would, e.g., keep a peer from ever seeing end of stream. */
  if (sock != 3) {
    if (dup2(sock, 3) < 0) _exit(1);
    sock = 3;
  }
  kiln__tame_std_streams(); /* e.g. the program's end of the socket, should it sit at 0..2 */
  if (syscall(SYS_close_range, 4u, ~0u, 0) < 0)
    for (int fd = 4; fd < 65536; fd++) close(fd);
  kiln__fd_flags(sock, false);
  int ppfd = kiln__pidfd_open(parent);
  /* opened, then checked: a program that ended before the open has re-parented the server */
  if (ppfd < 0 || getppid() != parent) _exit(0);
  server_loop(sock, ppfd);
}
