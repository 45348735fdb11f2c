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
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
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

enum { REAP_BATCH = 64, STEP_MASK = 7 };

static bool file_reaped(kiln_io *io, kiln__io_op *op, int step, int res, int *end);

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
      for (unsigned i = 0; i < got; i++) {
        uintptr_t u = (uintptr_t)ops[i];
        int step = (int)(u & STEP_MASK), end = 0;
        kiln__io_op *op = (kiln__io_op *)(u & ~(uintptr_t)STEP_MASK);
        if (!op) continue;
        if (step == KILN__STEP_NONE) kiln__io_complete(op, res[i]);
        else if (file_reaped(io, op, step, res[i], &end)) kiln__io_complete(op, end);
      }
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

/* ---- create-file ops: open, then one linked chain -------------------------------------------
 *
 * The open goes alone (its descriptor is not known before it completes); when it is reaped, the
 * rest goes as one chain, write -> fsync (durable) -> close, linked (IOSQE_IO_LINK), which the
 * completion thread submits with everything else it queued before it next waits. Each entry's
 * user_data is the op with the step in its low bits; op->pending counts the round's entries not
 * yet reaped, and when the last one is in the round is judged as a whole. A short write breaks
 * the link (the kernel cancels the entries after it): the next round writes the rest. A failure
 * anywhere after the open ends in a cleanup round, close (if still open) hard-linked to unlinkat,
 * so that a failed op leaves no file behind. All of it under r->mu, which kiln__io_ring_cancel
 * also holds. */

static void *tagged(kiln__io_op *op, int step) { return (void *)((uintptr_t)op | (uintptr_t)step); }

static void round_begin(kiln__io_op *op, int entries) {
  memset(op->round_has, 0, sizeof op->round_has);
  op->pending = entries;
}

static void note_err(kiln__io_op *op, int step, int res) {
  if (res < 0 && !op->err) op->err = res, op->err_step = step;
}

/* Under r->mu: n free entries at once (a chain must not straddle two submissions), submitting
 * what is queued to make room when needed. */
static bool room_for(kiln__io_ring *r, unsigned n) {
  if (io_uring_sq_space_left(&r->ring) < n) io_uring_submit(&r->ring);
  return io_uring_sq_space_left(&r->ring) >= n;
}

/* Under r->mu: queues the cleanup round, or, if the queue has no room, runs it here. Returns
 * false when the op still has a round in flight. */
static bool file_cleanup(kiln__io_ring *r, kiln__io_op *op) {
  bool open = op->file_fd >= 0;
  if (!room_for(r, open ? 2 : 1)) {
    if (open && close(op->file_fd) != 0 && errno != EINTR) note_err(op, KILN__STEP_CLOSE, -errno);
    op->file_fd = -1;
    (void)unlinkat(op->fd, op->path, 0);
    return true;
  }
  round_begin(op, open ? 2 : 1);
  if (open) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    io_uring_prep_close(sqe, op->file_fd);
    io_uring_sqe_set_flags(sqe, IOSQE_IO_HARDLINK); /* the unlink runs even if the close fails */
    io_uring_sqe_set_data(sqe, tagged(op, KILN__STEP_CLOSE));
    op->file_fd = -1; /* given up whatever the close reports */
  }
  struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
  io_uring_prep_unlinkat(sqe, op->fd, op->path, 0);
  io_uring_sqe_set_data(sqe, tagged(op, KILN__STEP_UNLINK));
  return false;
}

/* Under r->mu: queues write (the rest, at most INT_MAX bytes) -> fsync -> close; fsync and close
 * only when this write covers the rest. */
static bool file_chain(kiln__io_ring *r, kiln__io_op *op) {
  size_t want = op->len - op->done;
  bool last = want <= (size_t)INT_MAX;
  unsigned n = want ? 1u : 0u;
  if (last) n += (op->durable ? 1u : 0u) + 1u;
  if (!room_for(r, n)) {
    note_err(op, KILN__STEP_WRITE, -EBUSY);
    return file_cleanup(r, op);
  }
  round_begin(op, (int)n);
  struct io_uring_sqe *sqe;
  if (want) {
    sqe = io_uring_get_sqe(&r->ring);
    io_uring_prep_write(sqe, op->file_fd, (const char *)op->buf + op->done,
                        last ? (unsigned)want : (unsigned)INT_MAX, (__u64)op->done);
    if (last) io_uring_sqe_set_flags(sqe, IOSQE_IO_LINK);
    io_uring_sqe_set_data(sqe, tagged(op, KILN__STEP_WRITE));
  }
  if (!last) return false;
  if (op->durable) {
    sqe = io_uring_get_sqe(&r->ring);
    io_uring_prep_fsync(sqe, op->file_fd, 0);
    io_uring_sqe_set_flags(sqe, IOSQE_IO_LINK);
    io_uring_sqe_set_data(sqe, tagged(op, KILN__STEP_FSYNC));
  }
  sqe = io_uring_get_sqe(&r->ring);
  io_uring_prep_close(sqe, op->file_fd);
  io_uring_sqe_set_data(sqe, tagged(op, KILN__STEP_CLOSE));
  return false;
}

/* Under r->mu, the round's last entry reaped: what comes next. true: the op is done, *end its
 * result (0 or -errno). */
static bool file_judge(kiln__io_ring *r, kiln__io_op *op, int *end) {
  const int *res = op->round_res;
  const bool *has = op->round_has;
  if (has[KILN__STEP_UNLINK]) { /* the cleanup round: the close's failure only adds a reason */
    if (has[KILN__STEP_CLOSE]) note_err(op, KILN__STEP_CLOSE, res[KILN__STEP_CLOSE]);
    *end = op->err;
    return true;
  }
  if (has[KILN__STEP_OPEN]) {
    if (res[KILN__STEP_OPEN] < 0) { /* nothing created */
      note_err(op, KILN__STEP_OPEN, res[KILN__STEP_OPEN]);
      *end = op->err;
      return true;
    }
    op->file_fd = res[KILN__STEP_OPEN];
  } else {
    /* a chain round. An entry cancelled (ECANCELED) after a short write was cut off by the link,
     * and is not a failure; after kiln_io_cancel it is one */
    if (has[KILN__STEP_WRITE]) {
      int w = res[KILN__STEP_WRITE];
      if (w == 0) note_err(op, KILN__STEP_WRITE, -EIO); /* no progress: never loop on it */
      else if (w < 0) note_err(op, KILN__STEP_WRITE, w);
      else op->done += (size_t)w;
    }
    for (int step = KILN__STEP_FSYNC; step <= KILN__STEP_CLOSE; step++) {
      if (!has[step]) continue;
      int v = res[step];
      if (step == KILN__STEP_CLOSE && v != -ECANCELED) op->file_fd = -1; /* the kernel took it */
      if (v < 0 && (v != -ECANCELED || op->cancel_req)) note_err(op, step, v);
    }
  }
  if (op->cancel_req) note_err(op, op->done ? KILN__STEP_WRITE : KILN__STEP_OPEN, -ECANCELED);
  if (op->err) return file_cleanup(r, op);
  if (op->done < op->len || op->file_fd >= 0) return file_chain(r, op);
  *end = 0;
  return true;
}

/* The completion thread, one reaped entry of a create-file op: true when the op is done. */
static bool file_reaped(kiln_io *io, kiln__io_op *op, int step, int res, int *end) {
  kiln__io_ring *r = io->ring;
  bool done = false;
  pthread_mutex_lock(&r->mu);
  op->round_res[step] = res;
  op->round_has[step] = true;
  if (--op->pending == 0) done = file_judge(r, op, end);
  pthread_mutex_unlock(&r->mu);
  return done;
}

int kiln__io_ring_submit(kiln_io *io, kiln__io_op *op) {
  kiln__io_ring *r = io->ring;
  pthread_mutex_lock(&r->mu);
  struct io_uring_sqe *sqe = get_sqe(r);
  if (!sqe) {
    pthread_mutex_unlock(&r->mu);
    return KILN_EFULL;
  }
  if (op->kind == KILN__IO_CREATE_FILE) {
    round_begin(op, 1);
    io_uring_prep_openat(sqe, op->fd, op->path, op->flags, op->mode);
    io_uring_sqe_set_data(sqe, tagged(op, KILN__STEP_OPEN));
  } else {
    prep(sqe, op);
  }
  /* An error here (EBUSY, EAGAIN) leaves the entry queued for the next submit, which the
   * completion thread makes before it sleeps. */
  if (!r->reaper_awake) io_uring_submit(&r->ring);
  pthread_mutex_unlock(&r->mu);
  return 0;
}

void kiln__io_ring_cancel(kiln_io *io, kiln__io_op *op) {
  kiln__io_ring *r = io->ring;
  pthread_mutex_lock(&r->mu);
  if (op->kind == KILN__IO_CREATE_FILE) {
    /* the steps that may be in flight and can end early; the judge turns any later round into
     * the cleanup, which is never cancelled (nothing half-written stays) */
    op->cancel_req = true;
    for (int step = KILN__STEP_OPEN; step <= KILN__STEP_FSYNC; step++) {
      struct io_uring_sqe *sqe = get_sqe(r);
      if (!sqe) break;
      io_uring_prep_cancel(sqe, tagged(op, step), 0);
      io_uring_sqe_set_data(sqe, NULL);
    }
    io_uring_submit(&r->ring);
    pthread_mutex_unlock(&r->mu);
    return;
  }
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
