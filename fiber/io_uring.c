/* io_uring.c: the io_uring backend of the I/O engine (io.c).
 *
 * One ring per kiln_io. Submitters fill a submission entry under ring->mu (liburing's submission
 * side is not thread-safe) whose user_data is the op. If the completion thread is awake it will
 * submit the entry itself before it next sleeps, so under load one io_uring_enter carries many
 * entries; otherwise the submitter calls io_uring_submit before it lets go of the lock. The
 * completion thread alone touches the completion queue: it waits for a completion, reaps every
 * one that is there, and completes their ops (kiln__io_complete resolves the promises, so
 * done-callbacks run on this thread). The ring is set up with NODROP semantics (kernel >= 5.5),
 * so completions beyond the queue's size wait in the kernel rather than being lost.
 *
 * Cancellation (under the registry's lock, io.c) pushes IORING_OP_ASYNC_CANCEL for the op's
 * user_data and submits it at once: the kernel looks the op up during that io_uring_enter, while
 * the registry's lock keeps the op from being reaped and freed, so the cancel can never hit an
 * op that reused the address. Entries with user_data NULL (cancels, the wake-up NOP of fini) are
 * ignored when reaped.
 *
 * Lock order: io->reg_mu, then ring->mu. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h" /* kiln__wake_batch_* */
#include "io_internal.h"

#ifdef KILN_HAVE_LIBURING
#include <liburing.h>

struct kiln__io_ring {
  struct io_uring ring;
  pthread_mutex_t mu;
  bool reaper_awake; /* under mu: the completion thread will submit before it sleeps */
  _Atomic bool stop; /* set by fini once every op has completed */
  pthread_t thread;
};

enum { REAP_BATCH = 64 };

static void *reaper_main(void *arg) {
  kiln_io *io = arg;
  kiln__io_ring *r = io->ring;
  for (;;) {
    pthread_mutex_lock(&r->mu);
    r->reaper_awake = false;
    io_uring_submit(&r->ring);
    pthread_mutex_unlock(&r->mu);
    struct io_uring_cqe *cqe = NULL;
    int rc = io_uring_wait_cqe(&r->ring, &cqe);
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -ETIME) break; /* ring unusable */
    pthread_mutex_lock(&r->mu);
    r->reaper_awake = true;
    pthread_mutex_unlock(&r->mu);
    struct io_uring_cqe *cqes[REAP_BATCH];
    unsigned got;
    kiln__wake_batch_begin(); /* the fibers these completions wake are queued together */
    while ((got = io_uring_peek_batch_cqe(&r->ring, cqes, REAP_BATCH)) > 0) {
      void *ops[REAP_BATCH];
      int res[REAP_BATCH];
      for (unsigned i = 0; i < got; i++) {
        ops[i] = io_uring_cqe_get_data(cqes[i]);
        res[i] = cqes[i]->res;
      }
      io_uring_cq_advance(&r->ring, got); /* before completing: frees queue room early */
      for (unsigned i = 0; i < got; i++)
        if (ops[i]) kiln__io_complete(ops[i], res[i]);
      kiln__wake_batch_flush(); /* each reap's wakes go at once: a long burst delays none */
    }
    kiln__wake_batch_end();
    /* acquire: pairs with fini's release store, made before the NOP whose completion woke this
     * loop (fini sets stop only once every op has completed) */
    if (atomic_load_explicit(&r->stop, memory_order_acquire)) break;
  }
  return NULL;
}

int kiln__io_ring_init(kiln_io *io) {
  kiln__io_ring *r = calloc(1, sizeof *r);
  if (!r) return -ENOMEM;
  struct io_uring_params p = {0};
  /* An op that waits on a socket completes as task work of the thread that submitted it: a
   * worker, usually running. By default the kernel interrupts that thread at once to run it (an
   * inter-processor interrupt, a VM exit under virtualisation, on every such completion);
   * cooperative task running leaves it for the thread's next system call, which a worker makes
   * soon (I/O, or waiting for work), and the completion thread's own waits run it too. Kernels
   * before 5.19 refuse the flag: then the ring is set up without it. */
  p.flags = IORING_SETUP_COOP_TASKRUN;
  int rc = io_uring_queue_init_params(io->cfg.entries, &r->ring, &p);
  if (rc == -EINVAL) {
    memset(&p, 0, sizeof p);
    rc = io_uring_queue_init_params(io->cfg.entries, &r->ring, &p);
  }
  if (rc < 0) {
    free(r);
    return rc;
  }
  if (!(p.features & IORING_FEAT_NODROP)) { /* pre-5.5 kernels: completions could be lost */
    io_uring_queue_exit(&r->ring);
    free(r);
    return -ENOSYS;
  }
  pthread_mutex_init(&r->mu, NULL);
  atomic_init(&r->stop, false);
  io->ring = r;
  if (pthread_create(&r->thread, NULL, reaper_main, io) != 0) {
    io->ring = NULL;
    pthread_mutex_destroy(&r->mu);
    io_uring_queue_exit(&r->ring);
    free(r);
    return -EAGAIN;
  }
  return 0;
}

/* Under r->mu: a free entry, submitting what is queued to make room when needed. */
static struct io_uring_sqe *get_sqe(kiln__io_ring *r) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
  if (!sqe) {
    io_uring_submit(&r->ring);
    sqe = io_uring_get_sqe(&r->ring);
  }
  return sqe;
}

static void prep(struct io_uring_sqe *sqe, kiln__io_op *op) {
  unsigned len = op->len > (size_t)INT_MAX ? (unsigned)INT_MAX : (unsigned)op->len;
  switch (op->kind) {
    case KILN__IO_READ: io_uring_prep_read(sqe, op->fd, op->buf, len, (__u64)-1); break;
    case KILN__IO_WRITE: io_uring_prep_write(sqe, op->fd, op->buf, len, (__u64)-1); break;
    case KILN__IO_PREAD: io_uring_prep_read(sqe, op->fd, op->buf, len, (__u64)op->off); break;
    case KILN__IO_PWRITE: io_uring_prep_write(sqe, op->fd, op->buf, len, (__u64)op->off); break;
    case KILN__IO_OPEN: io_uring_prep_openat(sqe, op->fd, op->path, op->flags, op->mode); break;
    case KILN__IO_FSYNC:
      io_uring_prep_fsync(sqe, op->fd, op->flags ? IORING_FSYNC_DATASYNC : 0);
      break;
    case KILN__IO_CLOSE: io_uring_prep_close(sqe, op->fd); break;
    case KILN__IO_ACCEPT:
      io_uring_prep_accept(sqe, op->fd, op->addr, op->addrlen, SOCK_CLOEXEC);
      break;
    case KILN__IO_CONNECT:
      io_uring_prep_connect(sqe, op->fd, (struct sockaddr *)&op->caddr, op->caddrlen);
      break;
    case KILN__IO_RECV: io_uring_prep_recv(sqe, op->fd, op->buf, len, op->flags); break;
    case KILN__IO_SEND:
      io_uring_prep_send(sqe, op->fd, op->buf, len, op->flags | MSG_NOSIGNAL);
      break;
    default: io_uring_prep_nop(sqe); break;
  }
  io_uring_sqe_set_data(sqe, op);
}

int kiln__io_ring_submit(kiln_io *io, kiln__io_op *op) {
  kiln__io_ring *r = io->ring;
  pthread_mutex_lock(&r->mu);
  struct io_uring_sqe *sqe = get_sqe(r);
  if (!sqe) {
    pthread_mutex_unlock(&r->mu);
    return KILN_EFULL;
  }
  prep(sqe, op);
  /* An error here (EBUSY, EAGAIN) leaves the entry queued for the next submit, which the
   * completion thread makes before it sleeps. */
  if (!r->reaper_awake) io_uring_submit(&r->ring);
  pthread_mutex_unlock(&r->mu);
  return 0;
}

void kiln__io_ring_cancel(kiln_io *io, kiln__io_op *op) {
  kiln__io_ring *r = io->ring;
  pthread_mutex_lock(&r->mu);
  struct io_uring_sqe *sqe = get_sqe(r);
  if (sqe) {
    io_uring_prep_cancel(sqe, op, 0);
    io_uring_sqe_set_data(sqe, NULL);
    io_uring_submit(&r->ring);
  }
  pthread_mutex_unlock(&r->mu);
}

void kiln__io_ring_fini(kiln_io *io) {
  kiln__io_ring *r = io->ring;
  /* release: pairs with the completion thread's acquire load after the NOP's wake-up */
  atomic_store_explicit(&r->stop, true, memory_order_release);
  pthread_mutex_lock(&r->mu);
  struct io_uring_sqe *sqe = get_sqe(r);
  if (sqe) {
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data(sqe, NULL);
  }
  io_uring_submit(&r->ring);
  pthread_mutex_unlock(&r->mu);
  pthread_join(r->thread, NULL);
  io_uring_queue_exit(&r->ring);
  pthread_mutex_destroy(&r->mu);
  free(r);
  io->ring = NULL;
}

#else /* no liburing at build time: io.c falls back to the poller */

int kiln__io_ring_init(kiln_io *io) {
  (void)io;
  return -ENOSYS;
}
int kiln__io_ring_submit(kiln_io *io, kiln__io_op *op) {
  (void)io;
  (void)op;
  return KILN_EUNSUPPORTED;
}
void kiln__io_ring_cancel(kiln_io *io, kiln__io_op *op) {
  (void)io;
  (void)op;
}
void kiln__io_ring_fini(kiln_io *io) { (void)io; }

#endif
