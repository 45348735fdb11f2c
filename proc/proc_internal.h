/* proc_internal.h (internal): what the files of proc/ share.
 *
 * proc/ is the runtime's process layer: processes and their start methods, connections between
 * processes, the process pool, shared memory and process-shared synchronisation, process queues
 * and the manager. It sees base/ and its own headers, and sync/'s channel internals
 * (sync_internal.h: an end adopted from, or shared as, a descriptor, for handing channels to
 * children); otherwise the scheduler and sync are used through their public headers.
 *
 * Besides this header, each subsystem has its own: process_internal.h (processes, the fork
 * server), ppool_internal.h (the process pool), pshm_internal.h (shared memory and what lives in
 * it), manager_internal.h (the manager). docs/ARCHITECTURE.md lists the files.
 *
 *   fdio.c     whole reads and writes on file descriptors (EINTR retried), waiting on one with a
 *              deadline */
#ifndef KILN_PROC_INTERNAL_H
#define KILN_PROC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "base.h"

/* ---- fdio.c ---- */

/* Writes all len bytes of buf to fd, retrying short writes and EINTR; MSG_NOSIGNAL semantics are
 * the caller's business (sockets: use kiln__send_full). 0 or the errno of the failure (EPIPE when
 * the reader is gone). Any thread. */
int kiln__write_full(int fd, const void *buf, size_t len);

/* send(2) with MSG_NOSIGNAL, so a closed peer is EPIPE and never SIGPIPE; otherwise as above. */
int kiln__send_full(int fd, const void *buf, size_t len);

/* Reads exactly len bytes into buf, retrying short reads and EINTR. 0, -1 when the stream ended
 * before the first byte (a clean end of stream), or the errno of the failure (EPROTO when it
 * ended in the middle). */
int kiln__read_full(int fd, void *buf, size_t len);

/* Waits until fd has one of events (POLLIN, POLLOUT) or POLLHUP/POLLERR, or until deadline
 * (kiln__now() base; +inf waits forever). 1 when ready, 0 when the deadline passed, or -errno.
 * EINTR restarts the wait with the time left. */
int kiln__poll_fd(int fd, short events, double deadline);

/* Marks fd close-on-exec (and, with nonblock, O_NONBLOCK). 0 or errno. */
int kiln__fd_flags(int fd, bool nonblock);

#endif /* KILN_PROC_INTERNAL_H */
