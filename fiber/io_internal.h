/* io_internal.h: what the files of fiber/'s I/O engine share (io.c: the handle, the registry of
 * ops in flight, the public calls; io_uring.c: the io_uring backend; io_poller.c: the epoll
 * poller and its helper threads). Nothing here is public.
 *
 * An op's life: io.c allocates it with a promise, registers it (the registry maps the future to
 * the op so that kiln_io_cancel can find it) and hands it to the backend; the backend completes
 * it exactly once with kiln__io_complete, which takes it out of the registry, resolves the
 * promise and drops the backend's reference. The op is freed when its last reference goes
 * (the poller's cancel requests hold one while they are queued).
 *
 * Lock order: io->reg_mu, then the backend's lock (ring->mu, or the poller's mu). The backend's
 * cancel runs under reg_mu, so the op cannot complete (and be freed) under it; completion never
 * holds a backend lock while it takes reg_mu. */
#ifndef KILN_IO_INTERNAL_H
#define KILN_IO_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "kiln/fiberio.h"

enum kiln__io_kind {
  KILN__IO_READ,
  KILN__IO_WRITE,
  KILN__IO_PREAD,
  KILN__IO_PWRITE,
  KILN__IO_OPEN,
  KILN__IO_FSYNC,
  KILN__IO_CLOSE,
  KILN__IO_ACCEPT,
  KILN__IO_CONNECT,
  KILN__IO_RECV,
  KILN__IO_SEND,
  KILN__IO_CREATE_FILE, /* open, write all, fsync (durable), close; unlink on failure */
};

/* The steps of a KILN__IO_CREATE_FILE op, in order (also the tag of each step's io_uring entry:
 * an op's address with the step in its low bits; ops are calloc'd, so those bits are free). */
enum kiln__io_step {
  KILN__STEP_NONE = 0,
  KILN__STEP_OPEN,
  KILN__STEP_WRITE,
  KILN__STEP_FSYNC,
  KILN__STEP_CLOSE,
  KILN__STEP_UNLINK,
};

typedef struct kiln__io_op kiln__io_op;
struct kiln__io_op {
  kiln_io *io;
  kiln_future *f; /* the op's own reference to its promise, dropped at completion */
  _Atomic int refs;
  int kind;
  int fd;
  void *buf; /* const for writes; never written then */
  size_t len;
  int64_t off;
  int flags; /* open flags, MSG_* flags, or 1 for fdatasync */
  unsigned mode;
  struct sockaddr *addr; /* accept's OUT address, the caller's */
  socklen_t *addrlen;
  struct sockaddr_storage caddr; /* connect's address, copied */
  socklen_t caddrlen;
  char *path;     /* open's path, copied */
  int *errno_out; /* a blocking call's errno slot (it waits for completion, so it outlives the op's
                      use of it); NULL for async callers */
  kiln__io_op *hnext; /* registry chain, under reg_mu */
  /* poller backend state, under its mu (pstate) or owned by the poller thread (links) */
  kiln__io_op *pnext, *pprev;
  kiln__io_op *cnext; /* on the cancel list */
  int pstate;
  bool fd_nonblock, fd_socket;
  int res;         /* poller: a result held between the attempt and the completion */
  bool cancel_req; /* kiln_io_cancel asked for it (poller: under its mu; an io_uring create-file
                    * op: under ring->mu) */
  /* KILN__IO_CREATE_FILE (fd is the dirfd, path the file, buf/len the bytes, flags 1: fsync):
   * where it stands. io_uring: under ring->mu; the poller's helper owns them while it runs. */
  bool durable;
  int file_fd;                          /* the created file's descriptor; -1: not open */
  size_t done;                          /* bytes written */
  int err;                              /* the first failure, -errno; 0: none */
  int err_step;                         /* the step that failed (kiln__io_step) */
  int pending;                          /* io_uring: entries of the current round not yet reaped */
  int round_res[KILN__STEP_UNLINK + 1]; /* io_uring: this round's results, by step */
  bool round_has[KILN__STEP_UNLINK + 1];
};

/* Backend state lives behind these pointers; each backend file defines its struct. */
typedef struct kiln__io_ring kiln__io_ring;
typedef struct kiln__io_poller kiln__io_poller;

struct kiln_io {
  kiln_io_config cfg;
  kiln_io_backend backend;
  char reason[160];
  kiln__io_ring *ring;
  kiln__io_poller *poller;
  /* the registry: ops in flight, keyed by their future; under reg_mu */
  pthread_mutex_t reg_mu;
  pthread_cond_t reg_empty; /* signalled when count drops to 0 while destroy waits */
  kiln__io_op **buckets;
  size_t nbuckets, count;
  bool closing; /* destroy has begun: no new ops */
};

/* Completes op with a syscall-style result: >= 0 success (bytes, descriptor, 0), < 0 -errno. Any
 * thread; never with a backend lock held. Resolves op->f after op leaves the registry. */
void kiln__io_complete(kiln__io_op *op, int res);

/* Drops a reference; the last frees the op. */
void kiln__io_op_put(kiln__io_op *op);

/* io_uring backend: 0 or -errno from io_uring_queue_init (init); 0 or a KILN_E* code (submit);
 * cancel runs under reg_mu; fini after every op completed. Without liburing, init returns
 * -ENOSYS. */
int kiln__io_ring_init(kiln_io *io);
int kiln__io_ring_submit(kiln_io *io, kiln__io_op *op);
void kiln__io_ring_cancel(kiln_io *io, kiln__io_op *op);
void kiln__io_ring_fini(kiln_io *io);

/* Poller backend: same contracts. */
int kiln__io_poller_init(kiln_io *io);
int kiln__io_poller_submit(kiln_io *io, kiln__io_op *op);
void kiln__io_poller_cancel(kiln_io *io, kiln__io_op *op);
void kiln__io_poller_fini(kiln_io *io);

/* Runs op as one plain blocking syscall (EINTR retried): the result or -errno. Touches only the
 * op's arguments; for the helper threads and the blocking calls outside fibers. */
int kiln__io_op_run(const kiln__io_op *op);

/* Runs a KILN__IO_CREATE_FILE op's steps one after the other as blocking syscalls (the poller's
 * helpers): 0, or the first failure's -errno with op->err_step set, the file removed if this op
 * created it. */
int kiln__io_file_run(kiln__io_op *op);

/* Whether a read-like op (read, pread, recv) of len > 0 returning 0 is end of file. */
static inline bool kiln__io_reads(int kind) {
  return kind == KILN__IO_READ || kind == KILN__IO_PREAD || kind == KILN__IO_RECV;
}

#endif /* KILN_IO_INTERNAL_H */
