/* io_poller.c: the I/O engine's fallback where io_uring is unavailable (io.c picks it).
 *
 * Two kinds of descriptors:
 *   - pollable ones (sockets, pipes, FIFOs, terminals): submit first tries the op at once without
 *     blocking (recv/send with MSG_DONTWAIT, which works on any socket; on a non-blocking
 *     descriptor the plain call; on a blocking pipe a zero-timeout poll first, and a write of at
 *     most PIPE_BUF bytes, which a writable pipe takes without blocking). If it would block, the
 *     op goes to the poller thread, which keeps, per descriptor, the list of ops waiting on it and
 *     one level-triggered epoll registration for the union of their events; when the descriptor
 *     is ready it retries the ops the same non-blocking way. An op never makes the poller thread
 *     block, except accept on a blocking listening socket that another thread drains between the
 *     readiness check and the accept (the header says to make such sockets non-blocking).
 *   - the rest (regular files, block devices, directories) and the calls that cannot be polled
 *     (pread, pwrite, open, fsync, close, connect on a blocking socket, and a create-file op,
 *     whose steps one helper runs in a row): a fixed set of helper threads runs them as plain
 *     blocking syscalls, in submission order.
 *
 * Cancellation marks the op (cancel_req) and, when it is queued for a helper or waiting in the
 * poller, hands it to the poller thread, which completes it with ECANCELED; the cancel request
 * holds a reference, so an op that completed meanwhile is never touched after its free. An op
 * that a helper is running finishes first.
 *
 * Threads and ownership: pstate, cancel_req, the incoming list, the cancel list and the helper
 * queue are under p->mu; the per-descriptor lists (fds[]) and the epoll set belong to the poller
 * thread alone. Lock order: io->reg_mu, then p->mu. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h" /* kiln__wake_batch_* */
#include "io_internal.h"

enum { P_NEW, P_INCOMING, P_WAITING, P_HELPERQ, P_RUNNING, P_CANCELLED, P_DONE };

typedef struct fdrec {
  kiln__io_op *head; /* ops waiting on this descriptor (pnext/pprev) */
  uint32_t mask;     /* events registered with epoll; 0 = not registered */
} fdrec;

struct kiln__io_poller {
  int epfd, evfd;
  pthread_t thread;
  pthread_t *helpers;
  int nhelpers;
  pthread_mutex_t mu;
  pthread_cond_t helper_cv;
  kiln__io_op *in_head, *in_tail; /* submitted, for the poller thread (pnext) */
  kiln__io_op *cancels;           /* cancel requests, each holding a reference (cnext) */
  kiln__io_op *hq_head, *hq_tail; /* for the helpers (pnext/pprev) */
  bool stop;
  fdrec *fds; /* poller thread only */
  size_t nfds;
};

static void wake(kiln__io_poller *p) {
  uint64_t one = 1;
  ssize_t w = write(p->evfd, &one, sizeof one);
  (void)w; /* EAGAIN: the counter is already non-zero, the poller will wake anyway */
}

/* Marks op done and completes it with res; the caller holds no lock. */
static void finish(kiln__io_poller *p, kiln__io_op *op, int res) {
  pthread_mutex_lock(&p->mu);
  op->pstate = P_DONE;
  pthread_mutex_unlock(&p->mu);
  kiln__io_complete(op, res);
}

static uint32_t events_of(const kiln__io_op *op) {
  switch (op->kind) {
    case KILN__IO_READ:
    case KILN__IO_RECV:
    case KILN__IO_ACCEPT: return EPOLLIN;
    default: return EPOLLOUT;
  }
}

/* Whether fd is ready for ev right now (a hang-up or error counts: the call will report it). */
static bool ready_now(int fd, short ev) {
  struct pollfd pfd = {.fd = fd, .events = ev};
  return poll(&pfd, 1, 0) > 0;
}

/* One non-blocking attempt: the result, -errno, or -EAGAIN if it would block. */
static int try_io(const kiln__io_op *op) {
  size_t len = op->len > (size_t)INT_MAX ? (size_t)INT_MAX : op->len;
  ssize_t r;
  do {
    switch (op->kind) {
      case KILN__IO_READ:
      case KILN__IO_RECV:
        if (op->fd_socket) {
          r = recv(op->fd, op->buf, len,
                   (op->kind == KILN__IO_RECV ? op->flags : 0) | MSG_DONTWAIT);
        } else {
          if (!op->fd_nonblock && !ready_now(op->fd, POLLIN)) return -EAGAIN;
          r = read(op->fd, op->buf, len);
        }
        break;
      case KILN__IO_WRITE:
      case KILN__IO_SEND:
        if (op->fd_socket) {
          int fl = (op->kind == KILN__IO_SEND ? op->flags : 0) | MSG_DONTWAIT | MSG_NOSIGNAL;
          r = send(op->fd, op->buf, len, fl);
        } else {
          if (!op->fd_nonblock && !ready_now(op->fd, POLLOUT)) return -EAGAIN;
          r = write(op->fd, op->buf, op->fd_nonblock || len < PIPE_BUF ? len : PIPE_BUF);
        }
        break;
      case KILN__IO_ACCEPT:
        if (!op->fd_nonblock && !ready_now(op->fd, POLLIN)) return -EAGAIN;
        r = accept4(op->fd, op->addr, op->addrlen, SOCK_CLOEXEC);
        break;
      case KILN__IO_CONNECT: { /* a non-blocking connect under way: ready means it ended */
        int err = 0;
        socklen_t el = sizeof err;
        if (getsockopt(op->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0) return -errno;
        return err ? -err : 0;
      }
      default: return -EINVAL;
    }
  } while (r < 0 && errno == EINTR);
  if (r < 0) return errno == EWOULDBLOCK ? -EAGAIN : -errno;
  return (int)r;
}

/* Queues op for the helpers, or completes it if a cancel came first. */
static void to_helpers(kiln__io_poller *p, kiln__io_op *op) {
  pthread_mutex_lock(&p->mu);
  if (op->cancel_req) {
    pthread_mutex_unlock(&p->mu);
    finish(p, op, -ECANCELED);
    return;
  }
  op->pstate = P_HELPERQ;
  op->pnext = NULL;
  op->pprev = p->hq_tail;
  if (p->hq_tail) p->hq_tail->pnext = op;
  else p->hq_head = op;
  p->hq_tail = op;
  pthread_cond_signal(&p->helper_cv);
  pthread_mutex_unlock(&p->mu);
}

/* Under p->mu. */
static void hq_unlink(kiln__io_poller *p, kiln__io_op *op) {
  if (op->pprev) op->pprev->pnext = op->pnext;
  else p->hq_head = op->pnext;
  if (op->pnext) op->pnext->pprev = op->pprev;
  else p->hq_tail = op->pprev;
}

static void *helper_main(void *arg) {
  kiln__io_poller *p = arg;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->hq_head && !p->stop) pthread_cond_wait(&p->helper_cv, &p->mu);
    if (!p->hq_head) break;
    kiln__io_op *op = p->hq_head;
    hq_unlink(p, op);
    op->pstate = P_RUNNING;
    pthread_mutex_unlock(&p->mu);
    int res = op->kind == KILN__IO_CREATE_FILE ? kiln__io_file_run(op) : kiln__io_op_run(op);
    finish(p, op, res);
    pthread_mutex_lock(&p->mu);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

/* ---- the poller thread's descriptor table ---------------------------------------------------- */

/* Registers the union of the waiting ops' events with epoll. 0 or -errno. */
static int fd_update(kiln__io_poller *p, int fd) {
  fdrec *r = &p->fds[fd];
  uint32_t mask = 0;
  for (kiln__io_op *op = r->head; op; op = op->pnext) mask |= events_of(op);
  if (mask == r->mask) return 0;
  struct epoll_event ev = {.events = mask, .data.fd = fd};
  int rc;
  if (!mask) rc = epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, NULL);
  else rc = epoll_ctl(p->epfd, r->mask ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev);
  if (rc < 0 && mask) return -errno;
  r->mask = mask; /* a failed DEL: the descriptor is gone, and epoll forgot it with it */
  return 0;
}

static void fd_unlink(kiln__io_poller *p, kiln__io_op *op) {
  fdrec *r = &p->fds[op->fd];
  if (op->pprev) op->pprev->pnext = op->pnext;
  else r->head = op->pnext;
  if (op->pnext) op->pnext->pprev = op->pprev;
  op->pnext = op->pprev = NULL;
}

/* An op from the incoming list: waits on its descriptor, or goes to the helpers if epoll
 * refuses the descriptor (EPERM: a regular file or a device without poll). */
static void add_waiting(kiln__io_poller *p, kiln__io_op *op) {
  pthread_mutex_lock(&p->mu);
  bool cancelled = op->cancel_req;
  op->pstate = cancelled ? P_DONE : P_WAITING;
  pthread_mutex_unlock(&p->mu);
  if (cancelled) {
    kiln__io_complete(op, -ECANCELED);
    return;
  }
  size_t fd = (size_t)op->fd;
  if (fd >= p->nfds) {
    size_t n = p->nfds ? p->nfds : 64;
    while (n <= fd) n *= 2;
    fdrec *nf = realloc(p->fds, n * sizeof *nf);
    if (!nf) {
      finish(p, op, -ENOMEM);
      return;
    }
    memset(nf + p->nfds, 0, (n - p->nfds) * sizeof *nf);
    p->fds = nf;
    p->nfds = n;
  }
  fdrec *r = &p->fds[fd];
  op->pprev = NULL;
  op->pnext = r->head;
  if (r->head) r->head->pprev = op;
  r->head = op;
  int rc = fd_update(p, op->fd);
  if (rc == 0) return;
  fd_unlink(p, op);
  if (rc == -EPERM) to_helpers(p, op);
  else finish(p, op, rc);
}

/* Retries the ops waiting on fd. The epoll registration is brought up to date before any op
 * completes: once its future is done the caller may close the descriptor, and its number may be
 * reused by then. */
static void on_ready(kiln__io_poller *p, int fd, uint32_t events) {
  if ((size_t)fd >= p->nfds) return;
  kiln__io_op *done = NULL;
  for (kiln__io_op *op = p->fds[fd].head, *next; op; op = next) {
    next = op->pnext;
    if (!(events & (events_of(op) | EPOLLERR | EPOLLHUP))) continue;
    int res = try_io(op);
    if (res == -EAGAIN) continue;
    fd_unlink(p, op);
    op->res = res;
    op->pnext = done;
    done = op;
  }
  fd_update(p, fd);
  while (done) {
    kiln__io_op *next = done->pnext;
    finish(p, done, done->res);
    done = next;
  }
}

static void on_cancel(kiln__io_poller *p, kiln__io_op *op) {
  pthread_mutex_lock(&p->mu);
  int st = op->pstate;
  if (st == P_CANCELLED || st == P_WAITING) op->pstate = P_DONE;
  pthread_mutex_unlock(&p->mu);
  if (st == P_WAITING) {
    int fd = op->fd;
    fd_unlink(p, op);
    fd_update(p, fd);
  }
  if (st == P_CANCELLED || st == P_WAITING) kiln__io_complete(op, -ECANCELED);
  kiln__io_op_put(op); /* the cancel request's reference */
}

static void *poller_main(void *arg) {
  kiln__io_poller *p = arg;
  struct epoll_event evs[64];
  for (;;) {
    int n = epoll_wait(p->epfd, evs, 64, -1);
    kiln__wake_batch_begin(); /* the fibers these completions wake are queued together */
    for (int i = 0; i < n; i++) {
      if (evs[i].data.fd == p->evfd) {
        uint64_t v;
        ssize_t rd = read(p->evfd, &v, sizeof v);
        (void)rd;
      } else {
        on_ready(p, evs[i].data.fd, evs[i].events);
      }
    }
    kiln__wake_batch_end();
    pthread_mutex_lock(&p->mu);
    kiln__io_op *in = p->in_head, *cancels = p->cancels;
    p->in_head = p->in_tail = NULL;
    p->cancels = NULL;
    bool stop = p->stop;
    pthread_mutex_unlock(&p->mu);
    while (in) {
      kiln__io_op *next = in->pnext;
      add_waiting(p, in);
      in = next;
    }
    while (cancels) {
      kiln__io_op *next = cancels->cnext;
      on_cancel(p, cancels);
      cancels = next;
    }
    if (stop) break;
  }
  return NULL;
}

/* ---- the backend's entry points -------------------------------------------------------------- */

int kiln__io_poller_submit(kiln_io *io, kiln__io_op *op) {
  kiln__io_poller *p = io->poller;
  int k = op->kind;
  if (k == KILN__IO_PREAD || k == KILN__IO_PWRITE || k == KILN__IO_OPEN || k == KILN__IO_FSYNC ||
      k == KILN__IO_CLOSE || k == KILN__IO_CREATE_FILE) {
    to_helpers(p, op);
    return 0;
  }
  struct stat st;
  int fl = fcntl(op->fd, F_GETFL);
  if (fl < 0 || fstat(op->fd, &st) < 0) {
    finish(p, op, -errno);
    return 0;
  }
  op->fd_nonblock = (fl & O_NONBLOCK) != 0;
  op->fd_socket = S_ISSOCK(st.st_mode);
  if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) || S_ISBLK(st.st_mode) ||
      (k == KILN__IO_CONNECT && !op->fd_nonblock)) {
    to_helpers(p, op);
    return 0;
  }
  int res;
  if (k == KILN__IO_CONNECT) {
    res = connect(op->fd, (const struct sockaddr *)&op->caddr, op->caddrlen) == 0 ? 0 : -errno;
    if (res == -EINPROGRESS || res == -EINTR) res = -EAGAIN; /* wait for writability */
  } else {
    res = try_io(op);
  }
  if (res != -EAGAIN) {
    finish(p, op, res);
    return 0;
  }
  pthread_mutex_lock(&p->mu);
  if (op->cancel_req) {
    pthread_mutex_unlock(&p->mu);
    finish(p, op, -ECANCELED);
    return 0;
  }
  op->pstate = P_INCOMING;
  op->pnext = NULL;
  if (p->in_tail) p->in_tail->pnext = op;
  else p->in_head = op;
  p->in_tail = op;
  pthread_mutex_unlock(&p->mu);
  wake(p);
  return 0;
}

void kiln__io_poller_cancel(kiln_io *io, kiln__io_op *op) {
  kiln__io_poller *p = io->poller;
  pthread_mutex_lock(&p->mu);
  op->cancel_req = true;
  bool hand_over = false;
  if (op->pstate == P_HELPERQ) {
    hq_unlink(p, op);
    op->pstate = P_CANCELLED;
    hand_over = true;
  } else if (op->pstate == P_INCOMING || op->pstate == P_WAITING) {
    hand_over = true;
  }
  if (hand_over) {
    /* relaxed: the reference is taken under p->mu, which the poller takes before it drops it */
    atomic_fetch_add_explicit(&op->refs, 1, memory_order_relaxed);
    op->cnext = p->cancels;
    p->cancels = op;
  }
  pthread_mutex_unlock(&p->mu);
  if (hand_over) wake(p);
}

int kiln__io_poller_init(kiln_io *io) {
  kiln__io_poller *p = calloc(1, sizeof *p);
  if (!p) return KILN_ENOMEM;
  p->helpers = calloc((size_t)io->cfg.helper_threads, sizeof *p->helpers);
  p->epfd = epoll_create1(EPOLL_CLOEXEC);
  p->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = p->evfd};
  if (!p->helpers || p->epfd < 0 || p->evfd < 0 ||
      epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->evfd, &ev) < 0)
    goto fail;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->helper_cv, NULL);
  io->poller = p;
  if (pthread_create(&p->thread, NULL, poller_main, p) != 0) goto fail_sync;
  for (; p->nhelpers < io->cfg.helper_threads; p->nhelpers++) {
    if (pthread_create(&p->helpers[p->nhelpers], NULL, helper_main, p) != 0) {
      if (p->nhelpers > 0) break; /* fewer helpers than asked: still correct */
      kiln__io_poller_fini(io);
      return KILN_ENOMEM;
    }
  }
  return 0;
fail_sync:
  pthread_cond_destroy(&p->helper_cv);
  pthread_mutex_destroy(&p->mu);
  io->poller = NULL;
fail:
  if (p->epfd >= 0) close(p->epfd);
  if (p->evfd >= 0) close(p->evfd);
  free(p->helpers);
  free(p);
  return KILN_ENOMEM;
}

void kiln__io_poller_fini(kiln_io *io) {
  kiln__io_poller *p = io->poller;
  pthread_mutex_lock(&p->mu);
  p->stop = true;
  pthread_cond_broadcast(&p->helper_cv);
  pthread_mutex_unlock(&p->mu);
  wake(p);
  pthread_join(p->thread, NULL);
  for (int i = 0; i < p->nhelpers; i++) pthread_join(p->helpers[i], NULL);
  close(p->epfd);
  close(p->evfd);
  pthread_cond_destroy(&p->helper_cv);
  pthread_mutex_destroy(&p->mu);
  free(p->fds);
  free(p->helpers);
  free(p);
  io->poller = NULL;
}
