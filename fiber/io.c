/* io.c: the cooperative I/O engine's handle and public calls (include/kiln/fiberio.h).
 *
 * Every async call allocates an op and a kiln promise, records the op in the registry (a hash
 * from future to op, so that kiln_io_cancel can find the op of a future the caller holds) and
 * hands it to the backend (io_uring.c or io_poller.c). The backend completes it once through
 * kiln__io_complete, which maps the result to a value or a KILN_E* code and resolves the
 * promise. The blocking calls are the plain syscall (kiln__io_op_run) outside a fiber, and an
 * async op plus io_wait (kiln_await) inside a pool fiber, which suspends the fiber.
 *
 * Lock order: reg_mu, then a backend's lock (io_internal.h). */
#define _GNU_SOURCE /* strerror_r's GNU form, accept4, O_CLOEXEC */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io_internal.h"
#include "internal.h" /* kiln__ftask_suspendable */
#include "kiln/fiber.h"
#include "kiln/fiberio.h"

/* ---- where pool fibers plug in -------------------------------------------------------------- */

/* A pool fiber whose code may suspend (not pinned by greenlets, not a task helping on a pinned
 * fiber's stack): its blocking calls go through the engine and suspend it. */
static bool in_fiber(void) { return kiln__ftask_suspendable(); }

/* kiln_future_result's contract; in such a fiber it suspends the fiber instead of its worker. */
static inline int io_wait(kiln_future *f, double timeout, void **value) {
  return kiln_await(f, timeout, value);
}

/* ---- errors -------------------------------------------------------------------------------- */

int kiln_io_errno_code(int err) {
  switch (err) {
    case 0: return KILN_OK;
    case ENOENT: return KILN_ENOENT;
    case EEXIST: return KILN_EEXIST;
    case ENOMEM:
    case ENOBUFS: return KILN_ENOMEM;
    case EINVAL:
    case EBADF:
    case EFAULT:
    case ENOTSOCK:
    case ENOTDIR:
    case EISDIR:
    case ENAMETOOLONG: return KILN_EINVAL;
    case ETIMEDOUT: return KILN_ETIMEDOUT;
    case ECANCELED: return KILN_ECANCELLED;
    case ENOSYS:
    case EOPNOTSUPP:
    case EAFNOSUPPORT: return KILN_EUNSUPPORTED;
    case EBUSY: return KILN_EBUSY;
    default: return KILN_EIO;
  }
}

static const char *const kind_names[] = {"read",  "write",  "pread",   "pwrite", "open", "fsync",
                                         "close", "accept", "connect", "recv",   "send", "create"};

/* A create-file op's failed step, as its message names it. */
static const char *const step_names[] = {"create", "open", "write", "fsync", "close", "unlink"};

/* ---- ops and the registry ------------------------------------------------------------------ */

static size_t bucket_of(const kiln_io *io, const kiln_future *f) {
  uintptr_t h = (uintptr_t)f;
  h ^= h >> 17;
  h *= (uintptr_t)0x9E3779B97F4A7C15ull;
  return (size_t)(h >> 7) & (io->nbuckets - 1);
}

/* Under reg_mu. Doubles the table past two ops a bucket; a failed grow only lengthens chains. */
static void registry_grow(kiln_io *io) {
  size_t nb = io->nbuckets * 2;
  kiln__io_op **b = calloc(nb, sizeof *b);
  if (!b) return;
  kiln__io_op **old = io->buckets;
  size_t on = io->nbuckets;
  io->buckets = b;
  io->nbuckets = nb;
  for (size_t i = 0; i < on; i++) {
    for (kiln__io_op *op = old[i], *next; op; op = next) {
      next = op->hnext;
      size_t k = bucket_of(io, op->f);
      op->hnext = b[k];
      b[k] = op;
    }
  }
  free(old);
}

/* Under reg_mu: the op of f, or NULL. */
static kiln__io_op **registry_slot(kiln_io *io, const kiln_future *f) {
  kiln__io_op **p = &io->buckets[bucket_of(io, f)];
  while (*p && (*p)->f != f) p = &(*p)->hnext;
  return p;
}

void kiln__io_op_put(kiln__io_op *op) {
  /* acq_rel: the last put sees every earlier user's writes before it frees */
  if (atomic_fetch_sub_explicit(&op->refs, 1, memory_order_acq_rel) != 1) return;
  free(op->path);
  free(op);
}

void kiln__io_complete(kiln__io_op *op, int res) {
  kiln_io *io = op->io;
  pthread_mutex_lock(&io->reg_mu);
  kiln__io_op **slot = registry_slot(io, op->f);
  if (*slot == op) *slot = op->hnext;
  if (--io->count == 0 && io->closing) pthread_cond_broadcast(&io->reg_empty);
  pthread_mutex_unlock(&io->reg_mu);

  bool eof = res == 0 && kiln__io_reads(op->kind) && op->len > 0;
  if (op->errno_out) *op->errno_out = res < 0 ? -res : 0;
  kiln_future *f = op->f;
  if (eof) {
    kiln_promise_reject(f, KILN_EEOF, "%s(fd %d): end of file", kind_names[op->kind], op->fd);
  } else if (res >= 0) {
    kiln_promise_resolve(
        f, (void *)(uintptr_t)(op->kind == KILN__IO_CREATE_FILE ? op->len : (size_t)res));
  } else {
    char buf[128];
    const char *msg = strerror_r(-res, buf, sizeof buf);
    if (op->kind == KILN__IO_OPEN)
      kiln_promise_reject(f, kiln_io_errno_code(-res), "open(%s): %s [errno %d]", op->path, msg,
                          -res);
    else if (op->kind == KILN__IO_CREATE_FILE)
      kiln_promise_reject(f, kiln_io_errno_code(-res), "%s(%s): %s [errno %d]",
                          step_names[op->err_step], op->path, msg, -res);
    else
      kiln_promise_reject(f, kiln_io_errno_code(-res), "%s(fd %d): %s [errno %d]",
                          kind_names[op->kind], op->fd, msg, -res);
  }
  kiln_future_release(f);
  kiln__io_op_put(op);
}

static kiln__io_op *op_new(kiln_io *io, int kind, int fd) {
  kiln__io_op *op = calloc(1, sizeof *op);
  if (!op) return NULL;
  op->io = io;
  atomic_init(&op->refs, 1);
  op->kind = kind;
  op->fd = fd;
  return op;
}

/* Starts op (which the call owns until here): registers it and submits it. On success *out gets
 * the caller's reference; on failure op is freed and *out stays NULL. */
static int op_start(kiln__io_op *op, kiln_future **out) {
  kiln_io *io = op->io;
  kiln_future *f = NULL;
  int rc = kiln_promise_create(&f);
  if (rc) goto fail;
  kiln_promise_set_running(f); /* kernel work is not cancelled by kiln_future_cancel */
  op->f = kiln_future_retain(f);
  pthread_mutex_lock(&io->reg_mu);
  if (io->closing) {
    pthread_mutex_unlock(&io->reg_mu);
    rc = KILN_ESHUTDOWN;
    goto fail;
  }
  if (io->count >= io->nbuckets * 2) registry_grow(io);
  kiln__io_op **slot = &io->buckets[bucket_of(io, f)];
  op->hnext = *slot;
  *slot = op;
  io->count++;
  pthread_mutex_unlock(&io->reg_mu);
  *out = f; /* before submit: an inline completion only drops the op's reference */
  rc = io->backend == KILN_IO_BACKEND_URING ? kiln__io_ring_submit(io, op)
                                            : kiln__io_poller_submit(io, op);
  if (rc == 0) return 0;
  *out = NULL;
  /* never reached the backend: complete it here so the registry and the future stay right */
  op->errno_out = NULL;
  kiln__io_complete(op, -ECANCELED);
  kiln_future_release(f);
  return rc;
fail:
  if (f) {
    kiln_promise_reject(f, rc, NULL);
    kiln_future_release(op->f);
    kiln_future_release(f);
  }
  kiln__io_op_put(op);
  return rc;
}

/* ---- the handle ---------------------------------------------------------------------------- */

void kiln_io_config_default(kiln_io_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->backend = KILN_IO_BACKEND_AUTO;
  cfg->entries = 256;
  cfg->helper_threads = 4;
}

static int pick_backend(const kiln_io_config *cfg, kiln_io_backend *out) {
  *out = cfg->backend;
  if (cfg->backend != KILN_IO_BACKEND_AUTO) return 0;
  const char *env = getenv("KILN_IO_BACKEND");
  if (!env || !*env) return 0;
  if (strcmp(env, "uring") == 0) *out = KILN_IO_BACKEND_URING;
  else if (strcmp(env, "poller") == 0) *out = KILN_IO_BACKEND_POLLER;
  else if (strcmp(env, "auto") != 0) return KILN_EINVAL;
  return 0;
}

static int io_start_backend(kiln_io *io, kiln_io_backend want) {
  if (want != KILN_IO_BACKEND_POLLER) {
    int err = kiln__io_ring_init(io);
    if (err == 0) {
      io->backend = KILN_IO_BACKEND_URING;
      snprintf(io->reason, sizeof io->reason, "io_uring");
      return 0;
    }
    if (want == KILN_IO_BACKEND_URING)
      return err == -ENOSYS ? KILN_EUNSUPPORTED : kiln_io_errno_code(-err);
    char buf[96];
    snprintf(io->reason, sizeof io->reason, "poller: io_uring_queue_init: %s",
             strerror_r(-err, buf, sizeof buf));
  } else {
    snprintf(io->reason, sizeof io->reason, "poller: asked for");
  }
  io->backend = KILN_IO_BACKEND_POLLER;
  return kiln__io_poller_init(io);
}

int kiln_io_create(const kiln_io_config *cfg, kiln_io **out) {
  if (!out) return KILN_EINVAL;
  *out = NULL;
  kiln_io_config def;
  if (!cfg) {
    kiln_io_config_default(&def);
    cfg = &def;
  }
  kiln_io_backend want;
  if (cfg->helper_threads < 1 || cfg->entries < 1 || cfg->entries > 32768 ||
      (unsigned)cfg->backend > KILN_IO_BACKEND_POLLER || pick_backend(cfg, &want))
    return KILN_EINVAL;
  kiln_io *io = calloc(1, sizeof *io);
  if (!io) return KILN_ENOMEM;
  io->cfg = *cfg;
  io->nbuckets = 64;
  io->buckets = calloc(io->nbuckets, sizeof *io->buckets);
  if (!io->buckets) {
    free(io);
    return KILN_ENOMEM;
  }
  pthread_mutex_init(&io->reg_mu, NULL);
  pthread_cond_init(&io->reg_empty, NULL);
  int rc = io_start_backend(io, want);
  if (rc) {
    pthread_cond_destroy(&io->reg_empty);
    pthread_mutex_destroy(&io->reg_mu);
    free(io->buckets);
    free(io);
    return rc;
  }
  *out = io;
  return 0;
}

void kiln_io_destroy(kiln_io *io) {
  if (!io) return;
  pthread_mutex_lock(&io->reg_mu);
  io->closing = true;
  for (size_t i = 0; i < io->nbuckets; i++) {
    for (kiln__io_op *op = io->buckets[i]; op; op = op->hnext) {
      if (io->backend == KILN_IO_BACKEND_URING) kiln__io_ring_cancel(io, op);
      else kiln__io_poller_cancel(io, op);
    }
  }
  while (io->count > 0) pthread_cond_wait(&io->reg_empty, &io->reg_mu);
  pthread_mutex_unlock(&io->reg_mu);
  if (io->backend == KILN_IO_BACKEND_URING) kiln__io_ring_fini(io);
  else kiln__io_poller_fini(io);
  pthread_cond_destroy(&io->reg_empty);
  pthread_mutex_destroy(&io->reg_mu);
  free(io->buckets);
  free(io);
}

kiln_io_backend kiln_io_backend_get(const kiln_io *io) { return io->backend; }

const char *kiln_io_backend_reason(const kiln_io *io) { return io->reason; }

void kiln_io_cancel(kiln_io *io, kiln_future *f) {
  if (!io || !f) return;
  pthread_mutex_lock(&io->reg_mu);
  kiln__io_op *op = *registry_slot(io, f);
  if (op) {
    if (io->backend == KILN_IO_BACKEND_URING) kiln__io_ring_cancel(io, op);
    else kiln__io_poller_cancel(io, op);
  }
  pthread_mutex_unlock(&io->reg_mu);
}

/* ---- async calls --------------------------------------------------------------------------- */

#define IO_START(io, out, kind, fd, op)         \
  if (!(out)) return KILN_EINVAL;               \
  *(out) = NULL;                                \
  if (!(io)) return KILN_EINVAL;                \
  kiln__io_op *op = op_new((io), (kind), (fd)); \
  if (!op) return KILN_ENOMEM

int kiln_io_read_async(kiln_io *io, int fd, void *buf, size_t len, kiln_future **out) {
  IO_START(io, out, KILN__IO_READ, fd, op);
  op->buf = buf;
  op->len = len;
  return op_start(op, out);
}

int kiln_io_write_async(kiln_io *io, int fd, const void *buf, size_t len, kiln_future **out) {
  IO_START(io, out, KILN__IO_WRITE, fd, op);
  op->buf = (void *)buf;
  op->len = len;
  return op_start(op, out);
}

int kiln_io_pread_async(kiln_io *io, int fd, void *buf, size_t len, int64_t offset,
                        kiln_future **out) {
  if (offset < 0) return out ? (*out = NULL, KILN_EINVAL) : KILN_EINVAL;
  IO_START(io, out, KILN__IO_PREAD, fd, op);
  op->buf = buf;
  op->len = len;
  op->off = offset;
  return op_start(op, out);
}

int kiln_io_pwrite_async(kiln_io *io, int fd, const void *buf, size_t len, int64_t offset,
                         kiln_future **out) {
  if (offset < 0) return out ? (*out = NULL, KILN_EINVAL) : KILN_EINVAL;
  IO_START(io, out, KILN__IO_PWRITE, fd, op);
  op->buf = (void *)buf;
  op->len = len;
  op->off = offset;
  return op_start(op, out);
}

int kiln_io_open_async(kiln_io *io, int dirfd, const char *path, int flags, unsigned mode,
                       kiln_future **out) {
  if (!path) return out ? (*out = NULL, KILN_EINVAL) : KILN_EINVAL;
  IO_START(io, out, KILN__IO_OPEN, dirfd, op);
  op->path = strdup(path);
  if (!op->path) {
    kiln__io_op_put(op);
    return KILN_ENOMEM;
  }
  op->flags = flags | O_CLOEXEC;
  op->mode = mode;
  return op_start(op, out);
}

int kiln_io_fsync_async(kiln_io *io, int fd, bool datasync, kiln_future **out) {
  IO_START(io, out, KILN__IO_FSYNC, fd, op);
  op->flags = datasync ? 1 : 0;
  return op_start(op, out);
}

int kiln_io_close_async(kiln_io *io, int fd, kiln_future **out) {
  IO_START(io, out, KILN__IO_CLOSE, fd, op);
  return op_start(op, out);
}

int kiln_io_accept_async(kiln_io *io, int fd, struct sockaddr *addr, socklen_t *addrlen,
                         kiln_future **out) {
  IO_START(io, out, KILN__IO_ACCEPT, fd, op);
  op->addr = addrlen ? addr : NULL;
  op->addrlen = addr ? addrlen : NULL;
  return op_start(op, out);
}

int kiln_io_connect_async(kiln_io *io, int fd, const struct sockaddr *addr, socklen_t addrlen,
                          kiln_future **out) {
  if (!addr || addrlen > sizeof(struct sockaddr_storage))
    return out ? (*out = NULL, KILN_EINVAL) : KILN_EINVAL;
  IO_START(io, out, KILN__IO_CONNECT, fd, op);
  memcpy(&op->caddr, addr, addrlen);
  op->caddrlen = addrlen;
  return op_start(op, out);
}

int kiln_io_recv_async(kiln_io *io, int fd, void *buf, size_t len, int flags, kiln_future **out) {
  IO_START(io, out, KILN__IO_RECV, fd, op);
  op->buf = buf;
  op->len = len;
  op->flags = flags;
  return op_start(op, out);
}

int kiln_io_send_async(kiln_io *io, int fd, const void *buf, size_t len, int flags,
                       kiln_future **out) {
  IO_START(io, out, KILN__IO_SEND, fd, op);
  op->buf = (void *)buf;
  op->len = len;
  op->flags = flags;
  return op_start(op, out);
}

int kiln_io_create_file_async(kiln_io *io, int dirfd, const char *path, unsigned mode,
                              const void *buf, size_t len, bool durable, kiln_future **out) {
  if (!path || (len && !buf)) return out ? (*out = NULL, KILN_EINVAL) : KILN_EINVAL;
  IO_START(io, out, KILN__IO_CREATE_FILE, dirfd, op);
  op->path = strdup(path);
  if (!op->path) {
    kiln__io_op_put(op);
    return KILN_ENOMEM;
  }
  op->flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC;
  op->mode = mode;
  op->buf = (void *)buf;
  op->len = len;
  op->durable = durable;
  op->file_fd = -1;
  return op_start(op, out);
}

/* ---- waiting ------------------------------------------------------------------------------- */

int kiln_io_result(kiln_future *f, double timeout, size_t *n) {
  if (n) *n = 0;
  void *v = NULL;
  int rc = kiln_future_result(f, timeout, &v);
  if (rc == 0 && n) *n = (size_t)(uintptr_t)v;
  return rc;
}

/* The call reports end, the op's own result. If the wait took a kill (KILN_ECANCELLED while the
 * op's result is something else), that kill was not reported: the fiber gets it at its next
 * await or sleep, as kiln_fiber_kill promises, instead of losing it. */
static int keep_kill(int waited, int end) {
  if (waited == KILN_ECANCELLED && end != KILN_ECANCELLED) kiln__ftask_keep_kill();
  return end;
}

int kiln_io_wait(kiln_io *io, kiln_future *f, double timeout, size_t *n) {
  if (n) *n = 0;
  if (timeout != timeout) return KILN_EINVAL;
  void *v = NULL;
  int rc = io_wait(f, timeout, &v);
  if (!kiln_future_done(f)) {
    /* The wait was cut short (timeout, or the fiber killed): end the op before the caller's
     * buffers can go away. The loop rides out a wait that keeps returning early (a killed
     * fiber). */
    kiln_io_cancel(io, f);
    while (!kiln_future_done(f)) io_wait(f, -1.0, NULL);
    int end = kiln_future_result(f, 0, &v);
    if (end == 0) {
      if (n) *n = (size_t)(uintptr_t)v;
      return keep_kill(rc, 0);
    }
    return end == KILN_ECANCELLED ? rc : keep_kill(rc, end);
  }
  int end = kiln_future_result(f, 0, &v);
  if (end == 0 && n) *n = (size_t)(uintptr_t)v;
  return keep_kill(rc, end);
}

/* ---- blocking calls ------------------------------------------------------------------------ */

static ssize_t run_rw(const kiln__io_op *op) {
  size_t len = op->len > (size_t)INT_MAX ? (size_t)INT_MAX : op->len;
  switch (op->kind) {
    case KILN__IO_READ: return read(op->fd, op->buf, len);
    case KILN__IO_WRITE: return write(op->fd, op->buf, len);
    case KILN__IO_PREAD: return pread(op->fd, op->buf, len, (off_t)op->off);
    case KILN__IO_PWRITE: return pwrite(op->fd, op->buf, len, (off_t)op->off);
    case KILN__IO_RECV: return recv(op->fd, op->buf, len, op->flags);
    case KILN__IO_SEND: return send(op->fd, op->buf, len, op->flags | MSG_NOSIGNAL);
    default: return -1;
  }
}

int kiln__io_op_run(const kiln__io_op *op) {
  ssize_t r;
  do {
    switch (op->kind) {
      case KILN__IO_OPEN: r = openat(op->fd, op->path, op->flags, (mode_t)op->mode); break;
      case KILN__IO_FSYNC: r = op->flags ? fdatasync(op->fd) : fsync(op->fd); break;
      case KILN__IO_CLOSE:
        /* Linux frees the descriptor even when close fails with EINTR: never retried */
        return close(op->fd) == 0 || errno == EINTR ? 0 : -errno;
      case KILN__IO_ACCEPT: r = accept4(op->fd, op->addr, op->addrlen, SOCK_CLOEXEC); break;
      case KILN__IO_CONNECT:
        r = connect(op->fd, (const struct sockaddr *)&op->caddr, op->caddrlen);
        /* an interrupted connect goes on in the background; its end is reported as EALREADY */
        if (r < 0 && errno == EINTR) return -EINPROGRESS;
        break;
      default: r = run_rw(op); break;
    }
  } while (r < 0 && errno == EINTR);
  return r < 0 ? -errno : (int)r;
}

/* The step's syscall, EINTR retried (close never: Linux frees the descriptor even then). */
static int file_step(kiln__io_op *op, int step) {
  ssize_t r;
  do {
    switch (step) {
      case KILN__STEP_OPEN: r = openat(op->fd, op->path, op->flags, (mode_t)op->mode); break;
      case KILN__STEP_WRITE: {
        size_t want = op->len - op->done;
        r = pwrite(op->file_fd, (const char *)op->buf + op->done,
                   want > (size_t)INT_MAX ? (size_t)INT_MAX : want, (off_t)op->done);
        if (r == 0) return -EIO; /* a regular file that takes nothing: never loop on it */
        break;
      }
      case KILN__STEP_FSYNC: r = fsync(op->file_fd); break;
      case KILN__STEP_CLOSE: return close(op->file_fd) == 0 || errno == EINTR ? 0 : -errno;
      default: r = unlinkat(op->fd, op->path, 0); break;
    }
  } while (r < 0 && errno == EINTR);
  return r < 0 ? -errno : (int)r;
}

int kiln__io_file_run(kiln__io_op *op) {
  int r = file_step(op, KILN__STEP_OPEN);
  if (r < 0) {
    op->err_step = KILN__STEP_OPEN;
    return r;
  }
  op->file_fd = r;
  while (op->done < op->len && !op->err) {
    r = file_step(op, KILN__STEP_WRITE);
    if (r < 0) op->err = r, op->err_step = KILN__STEP_WRITE;
    else op->done += (size_t)r;
  }
  if (op->durable && !op->err && (r = file_step(op, KILN__STEP_FSYNC)) < 0)
    op->err = r, op->err_step = KILN__STEP_FSYNC;
  r = file_step(op, KILN__STEP_CLOSE);
  op->file_fd = -1;
  if (r < 0 && !op->err) op->err = r, op->err_step = KILN__STEP_CLOSE;
  if (op->err) (void)file_step(op, KILN__STEP_UNLINK); /* nothing half-written stays */
  return op->err;
}

/* Whether a blocking call goes through the engine. */
static bool via_engine(const kiln_io *io, double timeout) {
  return io && (in_fiber() || io->cfg.route_all || timeout >= 0);
}

/* A syscall's result (res: a count or -errno) as the blocking calls report it. */
static int inline_result(const kiln__io_op *tmpl, int res, size_t *n) {
  if (res == 0 && kiln__io_reads(tmpl->kind) && tmpl->len > 0) return KILN_EEOF;
  if (res < 0) {
    errno = -res;
    return kiln_io_errno_code(-res);
  }
  if (n) *n = (size_t)res;
  return 0;
}

/* The blocking form of any op: op is a stack template filled by the caller. */
static int run_blocking(kiln_io *io, kiln__io_op *tmpl, double timeout, size_t *n) {
  if (n) *n = 0;
  if (timeout != timeout) return KILN_EINVAL;
  if (!via_engine(io, timeout)) {
    if (timeout >= 0) return KILN_EINVAL; /* io NULL: no way to bound a blocking syscall */
    return inline_result(tmpl, kiln__io_op_run(tmpl), n);
  }
  if (tmpl->kind == KILN__IO_RECV || tmpl->kind == KILN__IO_SEND) {
    /* gevent's order: try the socket call without blocking first, and take an op, a future and a
     * suspension only when it would block. A send nearly always goes at once, and a recv finds
     * data already there whenever the peer was quicker than this fiber: on a busy server, most
     * calls never reach the engine. The result is the one the op would have had. */
    kiln__io_op now = *tmpl;
    now.flags |= MSG_DONTWAIT;
    int res = kiln__io_op_run(&now);
    if (res != -EAGAIN && res != -EWOULDBLOCK) return inline_result(tmpl, res, n);
  }
  kiln__io_op *op = op_new(io, tmpl->kind, tmpl->fd);
  if (!op) return KILN_ENOMEM;
  int err = 0;
  op->buf = tmpl->buf;
  op->len = tmpl->len;
  op->off = tmpl->off;
  op->flags = tmpl->flags;
  op->mode = tmpl->mode;
  op->addr = tmpl->addr;
  op->addrlen = tmpl->addrlen;
  op->caddr = tmpl->caddr;
  op->caddrlen = tmpl->caddrlen;
  op->errno_out = &err; /* lives until the op completes: kiln_io_wait waits for that */
  if (tmpl->path && !(op->path = strdup(tmpl->path))) {
    kiln__io_op_put(op);
    return KILN_ENOMEM;
  }
  kiln_future *f = NULL;
  int rc = op_start(op, &f);
  if (rc) return rc;
  rc = kiln_io_wait(io, f, timeout, n);
  kiln_future_release(f);
  if (rc && err) errno = err;
  return rc;
}

static kiln__io_op tmpl_of(int kind, int fd, void *buf, size_t len) {
  kiln__io_op t;
  memset(&t, 0, sizeof t);
  t.kind = kind;
  t.fd = fd;
  t.buf = buf;
  t.len = len;
  return t;
}

int kiln_io_read(kiln_io *io, int fd, void *buf, size_t len, size_t *n) {
  kiln__io_op t = tmpl_of(KILN__IO_READ, fd, buf, len);
  return run_blocking(io, &t, -1.0, n);
}

int kiln_io_write(kiln_io *io, int fd, const void *buf, size_t len, size_t *n) {
  kiln__io_op t = tmpl_of(KILN__IO_WRITE, fd, (void *)buf, len);
  return run_blocking(io, &t, -1.0, n);
}

int kiln_io_pread(kiln_io *io, int fd, void *buf, size_t len, int64_t offset, size_t *n) {
  if (n) *n = 0;
  if (offset < 0) return KILN_EINVAL;
  kiln__io_op t = tmpl_of(KILN__IO_PREAD, fd, buf, len);
  t.off = offset;
  return run_blocking(io, &t, -1.0, n);
}

int kiln_io_pwrite(kiln_io *io, int fd, const void *buf, size_t len, int64_t offset, size_t *n) {
  if (n) *n = 0;
  if (offset < 0) return KILN_EINVAL;
  kiln__io_op t = tmpl_of(KILN__IO_PWRITE, fd, (void *)buf, len);
  t.off = offset;
  return run_blocking(io, &t, -1.0, n);
}

int kiln_io_open(kiln_io *io, int dirfd, const char *path, int flags, unsigned mode, int *fd_out) {
  if (!fd_out) return KILN_EINVAL;
  *fd_out = -1;
  if (!path) return KILN_EINVAL;
  kiln__io_op t = tmpl_of(KILN__IO_OPEN, dirfd, NULL, 0);
  t.path = (char *)path;
  t.flags = flags | O_CLOEXEC;
  t.mode = mode;
  size_t n = 0;
  int rc = run_blocking(io, &t, -1.0, &n);
  if (rc == 0) *fd_out = (int)n;
  return rc;
}

int kiln_io_fsync(kiln_io *io, int fd, bool datasync) {
  kiln__io_op t = tmpl_of(KILN__IO_FSYNC, fd, NULL, 0);
  t.flags = datasync ? 1 : 0;
  return run_blocking(io, &t, -1.0, NULL);
}

int kiln_io_close(kiln_io *io, int fd) {
  kiln__io_op t = tmpl_of(KILN__IO_CLOSE, fd, NULL, 0);
  return run_blocking(io, &t, -1.0, NULL);
}

int kiln_io_accept(kiln_io *io, int fd, struct sockaddr *addr, socklen_t *addrlen, double timeout,
                   int *fd_out) {
  if (!fd_out) return KILN_EINVAL;
  *fd_out = -1;
  kiln__io_op t = tmpl_of(KILN__IO_ACCEPT, fd, NULL, 0);
  t.addr = addrlen ? addr : NULL;
  t.addrlen = addr ? addrlen : NULL;
  size_t n = 0;
  int rc = run_blocking(io, &t, timeout, &n);
  if (rc == 0) *fd_out = (int)n;
  return rc;
}

int kiln_io_connect(kiln_io *io, int fd, const struct sockaddr *addr, socklen_t addrlen,
                    double timeout) {
  if (!addr || addrlen > sizeof(struct sockaddr_storage)) return KILN_EINVAL;
  kiln__io_op t = tmpl_of(KILN__IO_CONNECT, fd, NULL, 0);
  memcpy(&t.caddr, addr, addrlen);
  t.caddrlen = addrlen;
  return run_blocking(io, &t, timeout, NULL);
}

int kiln_io_recv(kiln_io *io, int fd, void *buf, size_t len, int flags, double timeout, size_t *n) {
  kiln__io_op t = tmpl_of(KILN__IO_RECV, fd, buf, len);
  t.flags = flags;
  return run_blocking(io, &t, timeout, n);
}

int kiln_io_send(kiln_io *io, int fd, const void *buf, size_t len, int flags, double timeout,
                 size_t *n) {
  kiln__io_op t = tmpl_of(KILN__IO_SEND, fd, (void *)buf, len);
  t.flags = flags;
  return run_blocking(io, &t, timeout, n);
}

int kiln_io_write_all(kiln_io *io, int fd, const void *buf, size_t len, size_t *n) {
  size_t done = 0;
  int rc = 0;
  while (done < len && rc == 0) {
    size_t k = 0;
    rc = kiln_io_write(io, fd, (const char *)buf + done, len - done, &k);
    done += k;
  }
  if (n) *n = done;
  return rc;
}

int kiln_io_send_all(kiln_io *io, int fd, const void *buf, size_t len, int flags, double timeout,
                     size_t *n) {
  size_t done = 0;
  int rc = 0;
  while (done < len && rc == 0) {
    size_t k = 0;
    rc = kiln_io_send(io, fd, (const char *)buf + done, len - done, flags, timeout, &k);
    done += k;
  }
  if (n) *n = done;
  return rc;
}
