/* kiln/fiberio.h: cooperative I/O for fibers (gevent's monkey-patched sockets and files, made
 * explicit for C): read, write, pread, pwrite, open, fsync, close, accept, connect, recv and send
 * that complete through one I/O engine instead of blocking a thread, and a whole file's creation
 * (kiln_io_create_file_async) as one op.
 *
 * The engine is a handle, kiln_io, created by the program (or, later, owned by a pool's config)
 * and passed to every call: nothing here is process-global, and a fiber finds its engine the way
 * any C code finds its context, through the argument the caller passes. Two backends:
 *   - io_uring (liburing): one ring; submissions are pushed under the ring's lock and submitted
 *     at once, or left to the completion thread when it is awake (it submits every waiting entry
 *     in one io_uring_enter before it sleeps, so submissions batch under load); the completion
 *     thread reaps completions and resolves the ops' futures.
 *   - the poller: used when io_uring_queue_init fails (ENOSYS on kernels without io_uring, EPERM
 *     when /proc/sys/kernel/io_uring_disabled or a seccomp filter forbids it, ENOMEM when the
 *     locked-memory limit is too low), when liburing was not found at build time, or when asked
 *     for (config.backend, or KILN_IO_BACKEND=poller in the environment with backend AUTO). One
 *     thread waits with epoll for sockets, pipes and other pollable descriptors and does their
 *     I/O non-blocking once they are ready; a few helper threads run the calls that cannot be
 *     polled (regular files, open, fsync, close, connect on a blocking socket) as plain blocking
 *     syscalls. kiln_io_backend says which one a handle got, kiln_io_backend_reason why.
 *
 * Three ways to call:
 *   - kiln_io_<op>_async: starts the op and returns a future (a kiln promise) that completes when
 *     the kernel is done with the buffers. Its value is the result as (void *)(uintptr_t): bytes
 *     transferred, or the new descriptor for open and accept, or 0. Such futures mix with every
 *     other future (kiln_wait, kiln_as_completed, kiln_submit_after); kiln_io_result reads one.
 *   - kiln_io_<op>: inside a pool fiber (kiln_fiber_spawn, kiln/fiber.h), starts the op
 *     asynchronously and suspends the fiber until it completes (the worker runs other fibers
 *     meanwhile); outside a fiber it is the plain blocking syscall, with no trip through the
 *     engine, unless a timeout >= 0 is given or the handle's config says route_all. io may be
 *     NULL: then it is always the plain syscall. Through the engine, recv and send first try the
 *     socket without blocking (MSG_DONTWAIT, as gevent does) and take an op only if that would
 *     block. A pool fiber pinned by greenlets (kiln/fiber.h) blocks its worker instead of
 *     suspending, as in a task; a kill (kiln_fiber_kill) of a fiber waiting in a call cancels
 *     the op, waits for it to end and makes the call return KILN_ECANCELLED (or its result, if
 *     the op completed first).
 *   - kiln_io_wait: waits for an async op with a timeout and, if the timeout passes, cancels it.
 *
 * Results: 0, or a negative KILN_E* code mapped from errno by kiln_io_errno_code (ENOENT ->
 * KILN_ENOENT, EEXIST -> KILN_EEXIST, ENOMEM/ENOBUFS -> KILN_ENOMEM, EINVAL/EBADF/EFAULT/
 * ENOTSOCK/ENOTDIR/EISDIR/ENAMETOOLONG -> KILN_EINVAL, ETIMEDOUT -> KILN_ETIMEDOUT, ECANCELED ->
 * KILN_ECANCELLED, ENOSYS/EOPNOTSUPP/EAFNOSUPPORT -> KILN_EUNSUPPORTED, EBUSY -> KILN_EBUSY,
 * anything else (EACCES, ECONNREFUSED, ECONNRESET, EPIPE, ENOSPC, EIO, ...) -> KILN_EIO). The
 * blocking calls leave the system's code in errno when they fail (errno is the calling thread's;
 * a fiber reads it right after the call, before it next waits); a failed future's message names
 * the call, the descriptor and the system error ("recv(fd 7): Connection reset by peer [errno
 * 104]").
 * Counts go through the OUT size_t (zeroed first). A read, pread or recv of len > 0 that reaches
 * end of file (the syscall returns 0) returns KILN_EEOF with *n 0. Short transfers are not
 * errors: every call is one syscall (or one io_uring op) and returns what it transferred, which
 * for sockets and pipes may be less than len (with the poller, a write to a blocking pipe moves
 * at most PIPE_BUF bytes per call, so that the poller thread never blocks); loop until done, or
 * use kiln_io_write_all / kiln_io_send_all.
 *
 * Buffers and cancellation: the buffers (and addr/addrlen of accept) belong to the kernel until
 * the op's future is done; the future never completes before the kernel has finished with them,
 * even when the op is cancelled. kiln_io_cancel asks for the op to end early
 * (IORING_OP_ASYNC_CANCEL; with the poller, ops still waiting for readiness or queued for a
 * helper end at once); the future then fails with KILN_ECANCELLED, or succeeds if the op
 * completed first. A blocking call whose wait is cut short (its timeout, or its fiber killed)
 * cancels the op and waits for its completion before it returns, so a buffer on the caller's
 * stack is never written after the call returns. Ops that the kernel cannot interrupt (a regular
 * file's read already under way; with the poller, anything running in a helper thread) finish
 * first.
 *
 * Descriptors: not owned by the engine (except what open/accept return, which the caller owns
 * and closes). Closing a descriptor while an op on it is in flight is the caller's bug, as with
 * threads. */
#ifndef KILN_FIBERIO_H
#define KILN_FIBERIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "kiln/error.h"
#include "kiln/sched.h"
#include "kiln/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_io kiln_io;

typedef enum kiln_io_backend {
  KILN_IO_BACKEND_AUTO = 0, /* io_uring if it can be set up, else the poller */
  KILN_IO_BACKEND_URING,    /* io_uring or nothing: create fails with its error */
  KILN_IO_BACKEND_POLLER    /* the epoll poller and helper threads, even where io_uring works */
} kiln_io_backend;

typedef struct kiln_io_config {
  kiln_io_backend backend; /* default AUTO. With AUTO, the environment variable KILN_IO_BACKEND
                              ("uring" or "poller"), read once by create, picks one instead */
  unsigned entries;        /* io_uring submission queue size, 1..32768 (rounded up to a power of
                              two by the kernel); default 256. Completions never drop (NODROP) */
  int helper_threads;      /* poller backend: threads for the calls that cannot be polled;
                              default 4; >= 1 */
  bool route_all;          /* blocking calls go through the engine even outside a fiber (the path
                              fibers take; for tests, or a thread that wants cancellable waits) */
} kiln_io_config;

/* Fills *cfg with the defaults. */
KILN_API void kiln_io_config_default(kiln_io_config *cfg);

/* Creates an engine: the ring and its completion thread, or the poller thread and its helpers.
 * cfg NULL means the defaults. KILN_EINVAL for a bad config (or an unknown KILN_IO_BACKEND
 * value), KILN_ENOMEM. With backend URING, a ring that cannot be set up is an error:
 * KILN_EUNSUPPORTED for ENOSYS (no io_uring in the kernel, or kiln built without liburing), else
 * kiln_io_errno_code of io_uring_queue_init's error (KILN_EIO for EPERM). *out NULL on failure.
 * Any thread. */
KILN_API int kiln_io_create(const kiln_io_config *cfg, kiln_io **out);

/* Cancels every op still in flight, waits until the kernel (or the helpers) has finished with
 * all of them (their futures are all done when it returns: cancelled, or completed), stops the
 * threads and frees the engine. Futures the caller holds stay valid. No call on io may run
 * concurrently or follow. NULL is a no-op. Not from a fiber whose ops run on io (it would wait for
 * itself) nor from inside a done-callback of one of io's futures. */
KILN_API void kiln_io_destroy(kiln_io *io);

/* KILN_IO_BACKEND_URING or KILN_IO_BACKEND_POLLER: which one the handle runs. */
KILN_API kiln_io_backend kiln_io_backend_get(const kiln_io *io);

/* Why the handle runs the backend it runs: "io_uring", "poller: asked for", or "poller:
 * io_uring_queue_init: Operation not permitted" and the like. Borrowed: lives as long as io. */
KILN_API const char *kiln_io_backend_reason(const kiln_io *io);

/* The KILN_E* code for a positive errno value (see the top of this file). */
KILN_API int kiln_io_errno_code(int err);

/* ---- asynchronous ops: each returns 0 and *out (one reference, the caller's to release), or
 * KILN_EINVAL / KILN_ENOMEM / KILN_ESHUTDOWN (io being destroyed) / KILN_EFULL (io_uring's
 * submission queue stays full: the kernel refuses entries while its completion backlog drains)
 * with *out NULL. A failure of the op itself fails the future, not the call. A future's
 * done-callbacks run on the engine's completion thread (io_uring), on the poller or a helper
 * thread, or in the calling thread when the op completes at once (the poller tries sockets and
 * pipes before it waits): they may start more async ops, but must not wait for one (the
 * completion thread would wait for itself) nor destroy io. Any thread,
 * concurrently; also from inside pool tasks and done-callbacks (never blocks). --------------- */

KILN_API int kiln_io_read_async(kiln_io *io, int fd, void *buf, size_t len, kiln_future **out);
KILN_API int kiln_io_write_async(kiln_io *io, int fd, const void *buf, size_t len,
                                 kiln_future **out);
KILN_API int kiln_io_pread_async(kiln_io *io, int fd, void *buf, size_t len, int64_t offset,
                                 kiln_future **out);
KILN_API int kiln_io_pwrite_async(kiln_io *io, int fd, const void *buf, size_t len, int64_t offset,
                                  kiln_future **out);
/* openat(dirfd, path, flags | O_CLOEXEC, mode); path is copied. The value is the new descriptor,
 * which the caller owns (if the future is released unread, the descriptor leaks: read it).
 * Through io_uring, opening a FIFO does not wait for its other end as open(2) does (the kernel
 * tries the open non-blocking first). */
KILN_API int kiln_io_open_async(kiln_io *io, int dirfd, const char *path, int flags, unsigned mode,
                                kiln_future **out);
/* fsync(fd), or fdatasync(fd) when datasync. */
KILN_API int kiln_io_fsync_async(kiln_io *io, int fd, bool datasync, kiln_future **out);
/* close(fd): fd is given up when the call returns 0, whatever the future says later. */
KILN_API int kiln_io_close_async(kiln_io *io, int fd, kiln_future **out);
/* accept4(fd, addr, addrlen, SOCK_CLOEXEC); addr and addrlen may be NULL; both stay the kernel's
 * until the future is done. The value is the connection's descriptor (the caller's). */
KILN_API int kiln_io_accept_async(kiln_io *io, int fd, struct sockaddr *addr, socklen_t *addrlen,
                                  kiln_future **out);
/* connect(fd, addr, addrlen); addr is copied. */
KILN_API int kiln_io_connect_async(kiln_io *io, int fd, const struct sockaddr *addr,
                                   socklen_t addrlen, kiln_future **out);
/* recv / send with MSG_* flags (send adds MSG_NOSIGNAL: a closed peer is KILN_EIO with EPIPE,
 * never SIGPIPE). */
KILN_API int kiln_io_recv_async(kiln_io *io, int fd, void *buf, size_t len, int flags,
                                kiln_future **out);
KILN_API int kiln_io_send_async(kiln_io *io, int fd, const void *buf, size_t len, int flags,
                                kiln_future **out);

/* Creates a file and writes it whole, as one op: openat(dirfd, path, O_WRONLY | O_CREAT | O_EXCL
 * | O_CLOEXEC, mode), the len bytes of buf from offset 0 (again after short writes), fsync when
 * durable, close. One future and one wait where the separate calls take one each, step after
 * step: through io_uring the open goes first and the rest as one linked chain submitted by the
 * completion thread; with the poller one helper runs the steps in a row. The value is len. A
 * failure fails the future with the first failed step's code and a message naming the step and
 * the path ("write(out/.a.png.tmp): No space left on device [errno 28]"); a file the op created
 * is closed and removed before the future completes, so a failed op leaves nothing at path (an
 * open that fails, EEXIST included, touched nothing). A cancel (kiln_io_cancel) ends the op as
 * such a failure, KILN_ECANCELLED, unless it completed first. path is copied; buf is the
 * kernel's until the future is done. KILN_EINVAL for path NULL, or buf NULL with len > 0. */
KILN_API int kiln_io_create_file_async(kiln_io *io, int dirfd, const char *path, unsigned mode,
                                       const void *buf, size_t len, bool durable,
                                       kiln_future **out);

/* Asks the op behind f (a future from this io) to end early; returns at once. The future then
 * completes as the top of this file says. Harmless on a done future or one of another io (does
 * nothing). Any thread. */
KILN_API void kiln_io_cancel(kiln_io *io, kiln_future *f);

/* Reads an I/O future: waits up to timeout (as kiln_future_result; the op goes on after a
 * timeout), then 0 with *n its value (bytes or descriptor), or its error code. n may be NULL. */
KILN_API int kiln_io_result(kiln_future *f, double timeout, size_t *n);

/* Like kiln_io_result, but if timeout passes first the op is cancelled and waited for: returns
 * KILN_ETIMEDOUT once the kernel is done with the buffers (or 0 and *n if the op completed
 * during the cancellation: the data moved, and is reported). Inside a pool fiber it suspends the
 * fiber instead of blocking the worker. */
KILN_API int kiln_io_wait(kiln_io *io, kiln_future *f, double timeout, size_t *n);

/* ---- blocking (fiber-suspending) ops: see the top of this file. OUT *n zeroed first; n may be
 * NULL where noted. timeout (socket calls) as in sched.h: negative waits forever, 0 and more
 * bounds the wait (then the op goes through the engine even outside a fiber; with io NULL a
 * timeout >= 0 is KILN_EINVAL); on expiry the op is cancelled and KILN_ETIMEDOUT returned. Any
 * thread; inside a pool fiber they suspend the fiber, elsewhere they block the thread (in a pool
 * task, the worker: use the async forms there). --------------------------------------------- */

KILN_API int kiln_io_read(kiln_io *io, int fd, void *buf, size_t len, size_t *n);
KILN_API int kiln_io_write(kiln_io *io, int fd, const void *buf, size_t len, size_t *n);
KILN_API int kiln_io_pread(kiln_io *io, int fd, void *buf, size_t len, int64_t offset, size_t *n);
KILN_API int kiln_io_pwrite(kiln_io *io, int fd, const void *buf, size_t len, int64_t offset,
                            size_t *n);
/* *fd_out is the new descriptor (-1 on failure). */
KILN_API int kiln_io_open(kiln_io *io, int dirfd, const char *path, int flags, unsigned mode,
                          int *fd_out);
KILN_API int kiln_io_fsync(kiln_io *io, int fd, bool datasync);
KILN_API int kiln_io_close(kiln_io *io, int fd);
/* *fd_out is the connection (-1 on failure); addr/addrlen may be NULL. */
KILN_API int kiln_io_accept(kiln_io *io, int fd, struct sockaddr *addr, socklen_t *addrlen,
                            double timeout, int *fd_out);
KILN_API int kiln_io_connect(kiln_io *io, int fd, const struct sockaddr *addr, socklen_t addrlen,
                             double timeout);
KILN_API int kiln_io_recv(kiln_io *io, int fd, void *buf, size_t len, int flags, double timeout,
                          size_t *n);
KILN_API int kiln_io_send(kiln_io *io, int fd, const void *buf, size_t len, int flags,
                          double timeout, size_t *n);

/* Write / send all len bytes, one call after another; *n (may be NULL) is what was written when
 * an error stops it. timeout (send_all) bounds each send, not the whole. */
KILN_API int kiln_io_write_all(kiln_io *io, int fd, const void *buf, size_t len, size_t *n);
KILN_API int kiln_io_send_all(kiln_io *io, int fd, const void *buf, size_t len, int flags,
                              double timeout, size_t *n);

#ifdef __cplusplus
}
#endif

#endif /* KILN_FIBERIO_H */
