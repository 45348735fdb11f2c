/* channel.c: kiln_channel, Python's multiprocessing.Pipe between threads and processes.
 *
 * A pair is a Unix stream socket pair (non-blocking, close-on-exec) plus, where memfd_create and
 * mmap work, a shared-memory byte ring per direction (channel_ring.c) in one memfd mapped by
 * every end. A message is a 4-byte big-endian length (as Python's Connection writes it) followed
 * by that many bytes, so empty and 16 MiB messages both work and boundaries are kept. The byte
 * stream is the ring when there is one, else the socket (the fallback, and the pairs whose socket
 * a caller reads itself: kiln__channel_pair_socket).
 *
 * With a ring the socket carries no data, only two things: wake-up tokens and the end of the
 * stream. A reader that finds its ring empty spins for a few microseconds (on more than one CPU),
 * then counts itself as waiting in the ring header, re-checks the ring and polls its socket; a
 * writer that publishes bytes while a reader is counted sends one token byte on its own socket
 * (MSG_DONTWAIT: a full socket buffer already holds a pending wake). The woken reader drains the
 * tokens and re-checks, so a stale token never makes an end look ready. A writer waiting for room
 * sleeps on a futex on the ring's read position (so a token meant for this end's reader is never
 * taken by its writer), in slices of WRITER_SLICE, checking between them that the peer's socket
 * is not hung up (peer closed or dead: KILN_EEOF). End of stream is still the socket's: EOF (recv
 * returns 0) means every copy of the peer is closed; the reader then drains what is left in the
 * ring before it reports KILN_EEOF (or KILN_EIO, for a message cut short). A writer learns that
 * its reader is gone from the token send (EPIPE), when the ring is full (hang-up), or at once for
 * a reader closed in its own process (its close counts it as waiting forever, so every send
 * probes the socket). Every wait is poll(2) or a futex against a deadline; EINTR is retried
 * everywhere, with the time left recomputed. Sends use MSG_NOSIGNAL, so a closed peer is an error
 * code (KILN_EEOF), never SIGPIPE.
 *
 * A ring has one writer and one reader: threads of one process are serialised by send_mu and
 * recv_mu, but two processes sending (or receiving) on copies of the same end at the same time
 * would interleave their bytes, as they may in Python. The ring is not trusted: a corrupt header
 * is KILN_EIO, never a read or write outside the mapping.
 *
 * Partial messages: a receive that times out after reading part of a message keeps what it read
 * in the end's `in` state (header bytes, then the body), and the next receive continues from
 * there, so no byte is lost and the stream never desynchronises. A receive that completes a
 * message always returns it, except recv_into with a too-short buffer, which stops right after the
 * header (the body stays in the stream, or in `in` if part of it was read). So a complete message
 * never sits in `in`, and an end is ready to receive exactly when its stream has bytes (or its
 * end).
 *
 * Sends: concurrent senders are serialised by send_mu, each message is written whole before the
 * next starts. The timeout only covers the wait for room for the first byte; once some of the
 * message is in the socket the rest is written whatever it takes, as a half-written message would
 * corrupt the stream.
 *
 * Closing: close() marks the end closed and shutdown(2)s its socket, which wakes every thread
 * polling either end (ours then return KILN_ESTATE, the peer's reach EOF after the data already
 * queued). The descriptor itself is closed only once no call is using it (`users`), so a close
 * racing with a blocked call never lets the fd number be reused under it.
 *
 * Ends shared with other processes (handed to a child, or adopted in one: kiln__channel_share,
 * kiln__channel_dup, kiln__channel_adopt) are closed without shutdown(2): shutdown acts on the
 * socket, which the other process's copy is too, so it would end the stream for the process that
 * still holds it. Closing such an end does not wake this process's own threads blocked on it.
 *
 * Lock order (outer first): send_mu or recv_mu (never both) -> mu. mu is only held briefly and
 * never across a blocking system call. */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "channel_ring.h"
#include "sync_internal.h"

enum { HDR = 4, WAIT_STACK = 16 };
/* How long a reader or writer spins on the ring before it sleeps, and the longest sleep of a
 * writer waiting for room between checks that its peer is still there. */
static const double SPIN_SECONDS = 30e-6, WRITER_SLICE = 0.05;

/* The receive state of an end, guarded by recv_mu. Invariants: hdr_got in 0..4; len is valid
 * only when hdr_got == 4; body is NULL or a len-byte buffer holding got bytes of the body; with
 * hdr_got < 4, body is NULL and got is 0. */
struct channel_in {
  unsigned char hdr[HDR];
  size_t hdr_got;
  uint32_t len;
  unsigned char *body;
  size_t got;
  /* A view handed out by kiln_channel_recv_view, until kiln_channel_release: view_ring bytes to
   * drop from the ring, or view_buf to free (the message copied out, when it was not in one
   * piece in the ring). recv_mu stays held meanwhile. */
  bool viewing;
  size_t view_ring;
  unsigned char *view_buf;
};

struct kiln_channel {
  bool can_send, can_recv; /* fixed at creation */
  pthread_mutex_t send_mu; /* held for a whole send: one message at a time */
  pthread_mutex_t recv_mu; /* held for a whole receive; guards `in` */
  struct channel_in in;
  pthread_mutex_t mu; /* guards fd, closed, users */
  int fd;             /* -1 once closed and no longer used */
  bool closed;
  bool shared; /* another process may hold a copy of fd: close without shutdown */
  int users;   /* calls between end_enter and end_leave */
  /* The rings (NULL: the socket is the stream). Fixed at creation; freed by destroy only. */
  kiln__ring_map *map;
  bool side_b;     /* the end that reads ring 1 and writes ring 0 */
  kiln__ring rin;  /* valid when map && can_recv */
  kiln__ring rout; /* valid when map && can_send */
  /* The socket has reported end of stream (it stays so). relaxed: a hint re-derived from the
   * socket, read by wait without recv_mu */
  _Atomic bool eof;
};

/* ---- lifetime ------------------------------------------------------------------------------ */

static int channel_new(int fd, bool can_send, bool can_recv, kiln_channel **out) {
  kiln_channel *ch = calloc(1, sizeof *ch);
  if (!ch) return KILN_ENOMEM;
  ch->fd = fd;
  ch->can_send = can_send;
  ch->can_recv = can_recv;
  pthread_mutex_init(&ch->send_mu, NULL);
  pthread_mutex_init(&ch->recv_mu, NULL);
  pthread_mutex_init(&ch->mu, NULL);
  *out = ch;
  return 0;
}

/* Puts ch on the rings of m (one reference taken): side a reads ring 0 and writes ring 1, side b
 * the other way round (a one-way pair has only ring 0: b writes, a reads). KILN_EIO when m lacks
 * a ring this end uses (a descriptor from a confused or hostile sender). */
static int attach_rings(kiln_channel *ch, kiln__ring_map *m, bool side_b) {
  int in = side_b ? 1 : 0, out = side_b ? 0 : 1, n = kiln__ring_map_nrings(m);
  if ((ch->can_recv && in >= n) || (ch->can_send && out >= n)) return KILN_EIO;
  if (ch->can_recv) kiln__ring_get(m, in, &ch->rin);
  if (ch->can_send) kiln__ring_get(m, out, &ch->rout);
  kiln__ring_map_ref(m);
  ch->map = m;
  ch->side_b = side_b;
  return 0;
}

static int pair_make(bool duplex, bool ring, kiln_channel **a, kiln_channel **b) {
  assert(a && b);
  *a = *b = NULL;
  kiln__ring_map *m = NULL;
  /* no memfd or mmap here (old kernel, seccomp): the socket stream still works */
  if (ring && kiln__ring_map_create(duplex ? 2 : 1, &m) == KILN_ENOMEM) return KILN_ENOMEM;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0) {
    kiln__ring_map_unref(m);
    return errno == ENOMEM || errno == ENOBUFS ? KILN_ENOMEM : KILN_EIO;
  }
  kiln_channel *ca = NULL, *cb = NULL;
  if (channel_new(sv[0], duplex, true, &ca) != 0 || channel_new(sv[1], true, duplex, &cb) != 0) {
    if (ca) kiln_channel_destroy(ca); /* closes sv[0] */
    else close(sv[0]);
    close(sv[1]);
    kiln__ring_map_unref(m);
    return KILN_ENOMEM;
  }
  if (m) {
    attach_rings(ca, m, false); /* cannot fail: m has the rings a pair of this kind uses */
    attach_rings(cb, m, true);
    kiln__ring_map_unref(m); /* the ends hold it now */
  }
  *a = ca;
  *b = cb;
  return 0;
}

int kiln_channel_pair(bool duplex, kiln_channel **a, kiln_channel **b) {
  return pair_make(duplex, true, a, b);
}

int kiln__channel_pair_socket(bool duplex, kiln_channel **a, kiln_channel **b) {
  return pair_make(duplex, false, a, b);
}

int kiln__channel_adopt(const kiln__channel_fds *f, kiln_channel **out) {
  assert(f && out);
  *out = NULL;
  kiln__ring_map *m = NULL;
  int rc = f->mem >= 0 ? kiln__ring_map_open(f->mem, &m) : 0;
  if (rc && f->mem >= 0) close(f->mem);
  kiln_channel *ch = NULL;
  if (rc == 0) rc = channel_new(f->sock, f->flags & KILN__CH_SEND, f->flags & KILN__CH_RECV, &ch);
  if (rc == 0 && m) rc = attach_rings(ch, m, f->flags & KILN__CH_SIDE_B);
  kiln__ring_map_unref(m); /* ch holds its own reference */
  if (rc) {
    if (ch) kiln_channel_destroy(ch); /* closes f->sock */
    else close(f->sock);
    return rc;
  }
  ch->shared = true;
  *out = ch;
  return 0;
}

/* Marks ch shared and gives its descriptors, or (dup) close-on-exec duplicates (>= 3) made under
 * mu, so that a close racing with this cannot free a number before it is duplicated. */
static int share_end(kiln_channel *ch, bool dup, kiln__channel_fds *f) {
  assert(ch && f);
  *f = (kiln__channel_fds){.sock = -1, .mem = -1};
  int rc = KILN_ESTATE;
  pthread_mutex_lock(&ch->mu);
  if (!ch->closed) {
    f->sock = dup ? fcntl(ch->fd, F_DUPFD_CLOEXEC, 3) : ch->fd;
    if (ch->map && f->sock >= 0)
      f->mem =
          dup ? fcntl(kiln__ring_map_fd(ch->map), F_DUPFD_CLOEXEC, 3) : kiln__ring_map_fd(ch->map);
    rc = f->sock < 0 || (ch->map && f->mem < 0) ? KILN_EIO : 0;
    if (rc && dup && f->sock >= 0) close(f->sock);
    if (rc) f->sock = f->mem = -1;
  }
  if (rc == 0) {
    ch->shared = true;
    f->flags = (uint8_t)((ch->can_send ? KILN__CH_SEND : 0) | (ch->can_recv ? KILN__CH_RECV : 0) |
                         (ch->side_b ? KILN__CH_SIDE_B : 0));
  }
  pthread_mutex_unlock(&ch->mu);
  return rc;
}

int kiln__channel_share(kiln_channel *ch, int *fd, bool *can_send, bool *can_recv) {
  assert(fd && can_send && can_recv && !ch->map); /* only a socket stream is read by others */
  kiln__channel_fds f;
  int rc = share_end(ch, false, &f);
  *fd = f.sock, *can_send = f.flags & KILN__CH_SEND, *can_recv = f.flags & KILN__CH_RECV;
  return rc;
}

int kiln__channel_dup(kiln_channel *ch, kiln__channel_fds *f) { return share_end(ch, true, f); }

void kiln_channel_close(kiln_channel *ch) {
  assert(ch);
  pthread_mutex_lock(&ch->mu);
  if (!ch->closed) {
    ch->closed = true;
    /* wakes pollers of both ends; cannot fail on a valid socket */
    if (!ch->shared) shutdown(ch->fd, SHUT_RDWR);
    if (!ch->shared && ch->map) {
      /* this reader is gone for good: counted as waiting forever, every send to it probes the
       * socket and gets EPIPE */
      if (ch->can_recv) kiln__ring_reader_wait(&ch->rin, 1);
      /* writers asleep on room, ours (they return KILN_ESTATE) and the peer's (KILN_EEOF) */
      if (ch->can_recv) kiln__ring_room_wake(&ch->rin);
      if (ch->can_send) kiln__ring_room_wake(&ch->rout);
    }
    if (ch->users == 0) {
      close(ch->fd);
      ch->fd = -1;
    }
  }
  pthread_mutex_unlock(&ch->mu);
}

void kiln_channel_destroy(kiln_channel *ch) {
  if (!ch) return;
  kiln_channel_close(ch);
  assert(ch->users == 0 && ch->fd == -1); /* no call may still be blocked on it */
  free(ch->in.body);
  kiln__ring_map_unref(ch->map);
  pthread_mutex_destroy(&ch->send_mu);
  pthread_mutex_destroy(&ch->recv_mu);
  pthread_mutex_destroy(&ch->mu);
  free(ch);
}

bool kiln_channel_closed(kiln_channel *ch) {
  assert(ch);
  pthread_mutex_lock(&ch->mu);
  bool closed = ch->closed;
  pthread_mutex_unlock(&ch->mu);
  return closed;
}

/* Starts a call on an open end that may use the direction asked for; KILN_ESTATE otherwise. Until
 * end_leave, ch->fd stays valid (close defers closing it). */
static int end_enter(kiln_channel *ch, bool send) {
  int rc = KILN_ESTATE;
  pthread_mutex_lock(&ch->mu);
  if (!ch->closed && (send ? ch->can_send : ch->can_recv)) {
    ch->users++;
    rc = 0;
  }
  pthread_mutex_unlock(&ch->mu);
  return rc;
}

static void end_leave(kiln_channel *ch) {
  pthread_mutex_lock(&ch->mu);
  if (--ch->users == 0 && ch->closed && ch->fd >= 0) {
    close(ch->fd);
    ch->fd = -1;
  }
  pthread_mutex_unlock(&ch->mu);
}

/* ---- waiting ------------------------------------------------------------------------------- */

/* poll(2)'s timeout for the time left until deadline: rounded up, so that a wait never ends
 * early; -1 for no deadline. */
static int poll_ms(double deadline) {
  if (isinf(deadline)) return -1;
  double left = deadline - kiln__now();
  if (left <= 0) return 0;
  double ms = ceil(left * 1000.0);
  return ms >= (double)INT_MAX ? INT_MAX : (int)ms;
}

/* Polls fds until one is ready (returns how many), the deadline passes (0) or poll fails
 * (KILN_EIO). Signals do not cut the wait short. Error and hang-up conditions count as ready: the
 * call that follows reads them. */
static int wait_fds(struct pollfd *fds, nfds_t n, double deadline) {
  for (;;) {
    int ms = poll_ms(deadline);
    int r = poll(fds, n, ms);
    if (r > 0) return r;
    if (r == 0 && (ms == 0 || kiln__now() >= deadline)) return 0;
    if (r < 0 && errno != EINTR && errno != EAGAIN) return KILN_EIO;
  }
}

static int wait_fd(kiln_channel *ch, short events, double deadline) {
  struct pollfd p = {.fd = ch->fd, .events = events};
  int r = wait_fds(&p, 1, deadline);
  return r > 0 ? 0 : r == 0 ? KILN_ETIMEDOUT : r;
}

/* ---- send ---------------------------------------------------------------------------------- */

/* The code for a socket whose peer is gone (EPIPE, ECONNRESET, or EOF while reading): our own end
 * closed under us is KILN_ESTATE; otherwise KILN_EEOF, or KILN_EIO for a message cut short. */
static int gone_code(kiln_channel *ch, bool mid_message) {
  if (kiln_channel_closed(ch)) return KILN_ESTATE;
  return mid_message ? KILN_EIO : KILN_EEOF;
}

/* Writes header and body to the socket stream; see the file comment for the timeout rule. Caller
 * holds send_mu. */
static int send_socket(kiln_channel *ch, const void *buf, size_t len, double deadline) {
  unsigned char hdr[HDR] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
                            (unsigned char)(len >> 8), (unsigned char)len};
  size_t total = HDR + len, done = 0;
  while (done < total) {
    struct iovec iov[2];
    int niov = 0;
    if (done < HDR) iov[niov++] = (struct iovec){hdr + done, HDR - done};
    size_t off = done < HDR ? 0 : done - HDR;
    if (len > off) iov[niov++] = (struct iovec){(unsigned char *)buf + off, len - off};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)niov};
    ssize_t n = sendmsg(ch->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
      done += (size_t)n;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      int rc = wait_fd(ch, POLLOUT, done == 0 ? deadline : INFINITY);
      if (rc) return rc; /* only KILN_ETIMEDOUT before the first byte, or KILN_EIO */
    } else if (errno == EPIPE || errno == ECONNRESET) {
      return gone_code(ch, false);
    } else if (errno != EINTR) {
      return KILN_EIO;
    }
  }
  return 0;
}

/* Whether the peer's every copy is gone: our socket hung up (or failed). */
static bool peer_hung_up(kiln_channel *ch) {
  struct pollfd p = {.fd = ch->fd};
  return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR));
}

/* Spins for SPIN_SECONDS, or until the deadline if sooner (not on a single CPU, where the peer
 * cannot run meanwhile), until ready(r, arg) returns true. */
static bool spin_until(bool (*ready)(const kiln__ring *, size_t), const kiln__ring *r, size_t arg,
                       double deadline) {
  static _Atomic int ncpu; /* 0: not known yet. relaxed: a cached sysconf, any thread may fill it */
  int n = atomic_load_explicit(&ncpu, memory_order_relaxed);
  if (n == 0) {
    n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    atomic_store_explicit(&ncpu, n > 0 ? n : 1, memory_order_relaxed);
  }
  if (n <= 1) return ready(r, arg);
  double end = kiln__now() + SPIN_SECONDS;
  if (deadline < end) end = deadline;
  for (;;) {
    for (int i = 0; i < 64; i++)
      if (ready(r, arg)) return true;
    if (kiln__now() >= end) return false;
  }
}

/* Waits until the outgoing ring has room for need bytes: 0, KILN_ETIMEDOUT, KILN_ESTATE (our end
 * closed), KILN_EEOF (the peer is gone). */
static int wait_room(kiln_channel *ch, size_t need, double deadline) {
  if (spin_until(kiln__ring_has_room, &ch->rout, need, deadline)) return 0;
  kiln__ring_writer_wait(&ch->rout, 1, need);
  int rc = 0;
  for (;;) {
    uint32_t seen = kiln__ring_room_seen(&ch->rout);
    if (kiln__ring_has_room(&ch->rout, need)) break;
    if (kiln_channel_closed(ch)) {
      rc = KILN_ESTATE;
      break;
    }
    if (peer_hung_up(ch)) {
      rc = KILN_EEOF;
      break;
    }
    double left = deadline - kiln__now();
    if (left <= 0) {
      rc = KILN_ETIMEDOUT;
      break;
    }
    kiln__ring_room_wait(&ch->rout, seen, left < WRITER_SLICE ? left : WRITER_SLICE);
  }
  kiln__ring_writer_wait(&ch->rout, -1, 0);
  return rc;
}

/* Tells a reader asleep on the peer's socket that bytes came. */
static int send_token(kiln_channel *ch) {
  for (;;) {
    if (send(ch->fd, "", 1, MSG_NOSIGNAL | MSG_DONTWAIT) >= 0) return 0;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0; /* a wake is pending already */
    if (errno == EPIPE || errno == ECONNRESET) return gone_code(ch, false);
    if (errno != EINTR) return KILN_EIO;
  }
}

/* Writes header and body into the ring. A message that fits in the ring is started only once
 * there is room for all of it, so the timeout covers the whole of it (as a socket takes a small
 * message whole or not at all), and it goes in with one publication (at most one token). A
 * larger one streams through as the reader drains. Caller holds send_mu. */
static int send_ring(kiln_channel *ch, const void *buf, size_t len, double deadline) {
  unsigned char hdr[HDR] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
                            (unsigned char)(len >> 8), (unsigned char)len};
  const unsigned char *src = buf;
  size_t total = HDR + len, done = 0;
  int rc = wait_room(ch, total <= ch->rout.cap ? total : 1, deadline);
  if (rc) return rc;
  while (done < total) {
    size_t n = 0, h = done < HDR ? HDR - done : 0, off = done < HDR ? 0 : done - HDR;
    rc = kiln__ring_write2(&ch->rout, hdr + (HDR - h), h, src ? src + off : NULL, len - off, &n);
    if (rc) return rc;
    done += n;
    if (n && kiln__ring_reader_waiting(&ch->rout) && (rc = send_token(ch)) != 0) return rc;
    if (n == 0 && (rc = wait_room(ch, 1, INFINITY)) != 0) return rc;
  }
  return 0;
}

static int send_locked(kiln_channel *ch, const void *buf, size_t len, double deadline) {
  if (!ch->map) return send_socket(ch, buf, len, deadline);
  int rc = kiln__ring_writer_lock(&ch->rout, deadline);
  if (rc) return rc;
  rc = send_ring(ch, buf, len, deadline);
  kiln__ring_writer_unlock(&ch->rout);
  return rc;
}

/* Takes a send or receive mutex, which another caller may hold across a whole blocking call,
 * within the caller's deadline: 0 or KILN_ETIMEDOUT (a try when the deadline has passed). */
static int lock_until(pthread_mutex_t *m, double deadline) {
  return kiln__mutex_lock_until(m, deadline) == 0 ? 0 : KILN_ETIMEDOUT;
}

int kiln_channel_send(kiln_channel *ch, const void *buf, size_t len, double timeout) {
  assert(ch);
  double deadline;
  if (kiln__deadline(timeout, &deadline) || len > UINT32_MAX || (!buf && len > 0))
    return KILN_EINVAL;
  int rc = end_enter(ch, true);
  if (rc) return rc;
  rc = lock_until(&ch->send_mu, deadline);
  if (rc == 0) {
    rc = send_locked(ch, buf, len, deadline);
    pthread_mutex_unlock(&ch->send_mu);
  }
  end_leave(ch);
  return rc;
}

/* ---- receive ------------------------------------------------------------------------------- */

/* Reads dst[*got..want) from the socket stream, adding to *got as bytes come, until full (0) or the
 * deadline (KILN_ETIMEDOUT, *got kept) or EOF / an error. at_start: nothing of the current
 * message has been read yet, so EOF here is a clean end of stream. */
static int read_socket(kiln_channel *ch, unsigned char *dst, size_t want, size_t *got,
                       double deadline, bool at_start) {
  while (*got < want) {
    ssize_t n = recv(ch->fd, dst + *got, want - *got, MSG_DONTWAIT);
    if (n > 0) {
      *got += (size_t)n;
    } else if (n == 0 || errno == ECONNRESET) {
      return gone_code(ch, !at_start || *got > 0);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      int rc = wait_fd(ch, POLLIN, deadline);
      if (rc) return rc;
    } else if (errno != EINTR) {
      return KILN_EIO;
    }
  }
  return 0;
}

/* Takes the wake-up tokens off an end's socket. 1 when the socket has reached end of stream
 * (remembered in eof), 0 when drained, KILN_EIO. Caller holds recv_mu (or is the only reader). */
static int drain_tokens(kiln_channel *ch) {
  unsigned char sink[64];
  for (;;) {
    ssize_t n = recv(ch->fd, sink, sizeof sink, MSG_DONTWAIT);
    /* a short read took every token there was; one that comes after it only costs a wake-up */
    if (n > 0 && (size_t)n < sizeof sink) return 0;
    if (n > 0) continue;
    if (n == 0 || errno == ECONNRESET) {
      atomic_store_explicit(&ch->eof, true, memory_order_relaxed); /* see the field */
      return 1;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    if (errno != EINTR) return KILN_EIO;
  }
}

static bool ring_has_bytes(const kiln__ring *r, size_t unused) {
  (void)unused;
  return kiln__ring_avail(r) != 0;
}

/* Waits until the incoming ring has bytes (0; also for a corrupt ring, which the read reports),
 * the deadline (KILN_ETIMEDOUT), or the end of the stream with the ring empty (1). */
static int wait_bytes(kiln_channel *ch, double deadline) {
  if (spin_until(ring_has_bytes, &ch->rin, 0, deadline)) return 0;
  for (;;) {
    if (atomic_load_explicit(&ch->eof, memory_order_relaxed)) /* see the field */
      return kiln__ring_avail(&ch->rin) == 0 ? 1 : 0;
    kiln__ring_reader_wait(&ch->rin, 1);
    int rc = kiln__ring_avail(&ch->rin) != 0 ? 0 : wait_fd(ch, POLLIN, deadline);
    kiln__ring_reader_wait(&ch->rin, -1);
    if (rc) return rc;
    if (kiln__ring_avail(&ch->rin) != 0) return 0;
    if ((rc = drain_tokens(ch)) < 0) return rc;
    /* the writer publishes before it closes: bytes seen after EOF are still its last ones */
    if (kiln__ring_avail(&ch->rin) != 0) return 0;
    if (rc == 1) return 1;
  }
}

/* read_socket for the ring. */
static int read_ring(kiln_channel *ch, unsigned char *dst, size_t want, size_t *got,
                     double deadline, bool at_start) {
  while (*got < want) {
    size_t n;
    int rc = kiln__ring_read(&ch->rin, dst + *got, want - *got, &n);
    if (rc) return rc;
    *got += n;
    if (n) continue;
    rc = wait_bytes(ch, deadline);
    if (rc == 1) return gone_code(ch, !at_start || *got > 0);
    if (rc) return rc;
  }
  return 0;
}

static int read_full(kiln_channel *ch, unsigned char *dst, size_t want, size_t *got,
                     double deadline, bool at_start) {
  return ch->map ? read_ring(ch, dst, want, got, deadline, at_start)
                 : read_socket(ch, dst, want, got, deadline, at_start);
}

static void in_reset(struct channel_in *in) { *in = (struct channel_in){0}; }

/* Makes sure the current message's header is in, and returns its length in *len. */
static int read_header(kiln_channel *ch, double deadline, uint32_t *len) {
  struct channel_in *in = &ch->in;
  if (in->hdr_got < HDR) {
    int rc = read_full(ch, in->hdr, HDR, &in->hdr_got, deadline, true);
    if (rc) return rc;
    in->len = (uint32_t)in->hdr[0] << 24 | (uint32_t)in->hdr[1] << 16 | (uint32_t)in->hdr[2] << 8 |
              (uint32_t)in->hdr[3];
  }
  *len = in->len;
  return 0;
}

/* kiln_channel_recv with recv_mu held: the body is read into in.body, which then goes to the
 * caller. */
static int recv_locked(kiln_channel *ch, void **buf, size_t *len, double deadline) {
  struct channel_in *in = &ch->in;
  uint32_t n;
  int rc = read_header(ch, deadline, &n);
  if (rc) return rc;
  if (n > 0 && !in->body && !(in->body = malloc(n))) return KILN_ENOMEM; /* header kept */
  rc = read_full(ch, in->body, n, &in->got, deadline, false);
  if (rc) return rc;
  *buf = in->body;
  *len = n;
  in_reset(in);
  return 0;
}

/* kiln_channel_recv_into with recv_mu held. A body not yet started is read straight into the
 * caller's buffer; if that times out half-way, what was read moves to in.body for the next call.
 * Should that copy fail for lack of memory, the read goes on past the timeout instead (the bytes
 * must not be lost). */
static int recv_into_locked(kiln_channel *ch, unsigned char *buf, size_t cap, size_t *len,
                            double deadline) {
  struct channel_in *in = &ch->in;
  uint32_t n;
  int rc = read_header(ch, deadline, &n);
  if (rc) return rc;
  *len = n;
  if (n > cap) return KILN_EINVAL; /* the message stays queued */
  if (in->body) {
    rc = read_full(ch, in->body, n, &in->got, deadline, false);
    if (rc == 0) memcpy(buf, in->body, n);
  } else {
    size_t got = 0;
    rc = read_full(ch, buf, n, &got, deadline, false);
    if (rc == KILN_ETIMEDOUT && got > 0) {
      if ((in->body = malloc(n)) != NULL) {
        memcpy(in->body, buf, got);
        in->got = got;
        return rc;
      }
      rc = read_full(ch, buf, n, &got, INFINITY, false);
    }
  }
  if (rc == 0) {
    free(in->body);
    in_reset(in);
  }
  return rc;
}

/* kiln_channel_recv_view with recv_mu held: the message in place in the ring when it is there
 * whole and in one piece (its header already read), else read into in.body as recv does. */
static int view_locked(kiln_channel *ch, const void **data, size_t *len, double deadline) {
  struct channel_in *in = &ch->in;
  uint32_t n;
  int rc = read_header(ch, deadline, &n);
  if (rc) return rc;
  if (ch->map && !in->body && n > 0) {
    /* a message that fits in the ring is published with its header in one piece, so it is
     * all there once the header is; one that wraps or streams through is copied below */
    const void *p = kiln__ring_peek(&ch->rin, n);
    if (p) {
      *data = p;
      *len = n;
      in_reset(in);
      in->viewing = true;
      in->view_ring = n;
      return 0;
    }
  }
  void *buf;
  size_t got;
  rc = recv_locked(ch, &buf, &got, deadline);
  if (rc) return rc;
  *data = buf;
  *len = got;
  in->viewing = true;
  in->view_buf = buf;
  return 0;
}

int kiln_channel_recv_view(kiln_channel *ch, const void **data, size_t *len, double timeout) {
  assert(ch && data && len);
  *data = NULL;
  *len = 0;
  double deadline;
  if (kiln__deadline(timeout, &deadline)) return KILN_EINVAL;
  int rc = end_enter(ch, false);
  if (rc) return rc;
  rc = lock_until(&ch->recv_mu, deadline);
  if (rc == 0) {
    rc = view_locked(ch, data, len, deadline);
    if (rc == 0) return 0; /* recv_mu and the end stay held until kiln_channel_release */
    pthread_mutex_unlock(&ch->recv_mu);
  }
  end_leave(ch);
  return rc;
}

void kiln_channel_release(kiln_channel *ch) {
  assert(ch && ch->in.viewing);
  struct channel_in *in = &ch->in;
  if (in->view_ring) kiln__ring_consume(&ch->rin, in->view_ring);
  free(in->view_buf);
  in->viewing = false;
  in->view_ring = 0;
  in->view_buf = NULL;
  pthread_mutex_unlock(&ch->recv_mu);
  end_leave(ch);
}

int kiln_channel_recv(kiln_channel *ch, void **buf, size_t *len, double timeout) {
  assert(ch && buf && len);
  *buf = NULL;
  *len = 0;
  double deadline;
  if (kiln__deadline(timeout, &deadline)) return KILN_EINVAL;
  int rc = end_enter(ch, false);
  if (rc) return rc;
  rc = lock_until(&ch->recv_mu, deadline);
  if (rc == 0) {
    rc = recv_locked(ch, buf, len, deadline);
    pthread_mutex_unlock(&ch->recv_mu);
  }
  end_leave(ch);
  return rc;
}

int kiln_channel_recv_into(kiln_channel *ch, void *buf, size_t cap, size_t *len, double timeout) {
  assert(ch && len);
  *len = 0;
  double deadline;
  if (kiln__deadline(timeout, &deadline) || (!buf && cap > 0)) return KILN_EINVAL;
  int rc = end_enter(ch, false);
  if (rc) return rc;
  rc = lock_until(&ch->recv_mu, deadline);
  if (rc == 0) {
    rc = recv_into_locked(ch, buf, cap, len, deadline);
    pthread_mutex_unlock(&ch->recv_mu);
  }
  end_leave(ch);
  if (rc && rc != KILN_EINVAL) *len = 0;
  return rc;
}

/* ---- readiness ----------------------------------------------------------------------------- */

/* Moves the ready channels (revents set) to the front of chs, keeping the order within both
 * groups; tmp has room for n pointers. Returns how many are ready. */
static size_t partition_ready(kiln_channel **chs, const struct pollfd *fds, size_t n,
                              kiln_channel **tmp) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (fds[i].revents) tmp[k++] = chs[i];
  size_t ready = k;
  for (size_t i = 0; i < n; i++)
    if (!fds[i].revents) tmp[k++] = chs[i];
  memcpy(chs, tmp, n * sizeof *chs);
  return ready;
}

/* Whether a ring end can be received from now: bytes, or the end of the stream. */
static bool ring_ready(kiln_channel *ch) {
  return kiln__ring_avail(&ch->rin) != 0 || atomic_load_explicit(&ch->eof, memory_order_relaxed);
}

/* After poll found a ring end's socket readable: takes the tokens and says whether the end is
 * ready, so that a stale token does not count. A receive of this process under way (recv_mu
 * taken) is about to take what came, and drains the tokens itself: the end then counts as
 * ready. */
static bool ring_settle(kiln_channel *ch) {
  /* ready already: the token stays for the receive, and for any other thread polling this end,
   * which would otherwise sleep on past the message it was woken for */
  if (ring_ready(ch)) return true;
  if (pthread_mutex_trylock(&ch->recv_mu) != 0) return true;
  int rc = drain_tokens(ch);
  pthread_mutex_unlock(&ch->recv_mu);
  return rc != 0 || ring_ready(ch);
}

/* Waits for the channels (fds[0..n)) and the extra descriptors after them, which come back with
 * their revents. A ring end counts itself as a waiting reader around the poll (see the file
 * comment); one ready before the poll makes it a check that does not block. */
static int wait_entered(kiln_channel **chs, size_t n, struct pollfd *extra, size_t nextra,
                        double deadline, size_t *nready, struct pollfd *fds, kiln_channel **tmp) {
  for (;;) {
    bool any = false;
    for (size_t i = 0; i < n; i++) {
      fds[i] = (struct pollfd){.fd = chs[i]->fd, .events = POLLIN};
      if (!chs[i]->map) continue;
      kiln__ring_reader_wait(&chs[i]->rin, 1);
      any = any || ring_ready(chs[i]);
    }
    for (size_t i = 0; i < nextra; i++) fds[n + i] = extra[i];
    int r = wait_fds(fds, (nfds_t)(n + nextra), any ? kiln__now() : deadline);
    for (size_t i = 0; i < n; i++)
      if (chs[i]->map) kiln__ring_reader_wait(&chs[i]->rin, -1);
    if (r < 0) return r;
    size_t ready = 0, extras = 0;
    for (size_t i = 0; i < n; i++) {
      kiln_channel *ch = chs[i];
      bool yes = fds[i].revents && (!ch->map || ring_settle(ch));
      yes = yes || (ch->map && ring_ready(ch));
      fds[i].revents = yes ? POLLIN : 0;
      ready += yes;
    }
    for (size_t i = 0; i < nextra; i++) extras += r > 0 && fds[n + i].revents;
    if (ready == 0 && extras == 0 && kiln__now() < deadline) continue; /* stale tokens only */
    for (size_t i = 0; i < nextra; i++) extra[i].revents = r > 0 ? fds[n + i].revents : 0;
    if (ready) *nready = partition_ready(chs, fds, n, tmp);
    return 0;
  }
}

int kiln_channel_poll(kiln_channel *ch, double timeout) {
  assert(ch);
  double deadline;
  if (kiln__deadline(timeout, &deadline)) return KILN_EINVAL;
  int rc = end_enter(ch, false);
  if (rc) return rc;
  kiln_channel *one[1] = {ch}, *tmp[1];
  struct pollfd fd[1];
  size_t nready = 0;
  rc = wait_entered(one, 1, NULL, 0, deadline, &nready, fd, tmp);
  end_leave(ch);
  if (rc) return rc;
  if (nready && kiln_channel_closed(ch)) return KILN_ESTATE; /* woken by our own close */
  return nready ? 1 : 0;
}

int kiln_channel_wait(kiln_channel **chs, size_t n, double timeout, size_t *nready) {
  double deadline;
  if (kiln__deadline(timeout, &deadline)) return KILN_EINVAL;
  return kiln__channel_wait_extra(chs, n, NULL, 0, deadline, nready);
}

int kiln__channel_wait_extra(kiln_channel **chs, size_t n, struct pollfd *extra, size_t nextra,
                             double deadline, size_t *nready) {
  assert(nready && (chs || n == 0) && (extra || nextra == 0));
  *nready = 0;
  struct pollfd fds_stack[WAIT_STACK];
  kiln_channel *tmp_stack[WAIT_STACK];
  struct pollfd *fds = fds_stack;
  kiln_channel **tmp = tmp_stack;
  bool heap = n + nextra > WAIT_STACK;
  if (heap) {
    fds = malloc((n + nextra) * sizeof *fds);
    tmp = malloc((n + 1) * sizeof *tmp);
    if (!fds || !tmp) {
      free(fds);
      free(tmp);
      return KILN_ENOMEM;
    }
  }
  size_t entered = 0;
  int rc = 0;
  for (; entered < n && rc == 0; entered++) {
    assert(chs[entered]);
    rc = end_enter(chs[entered], false);
  }
  if (rc) entered--; /* the last one failed and was not entered */
  if (rc == 0) rc = wait_entered(chs, n, extra, nextra, deadline, nready, fds, tmp);
  /* chs may be reordered now, but it still holds exactly the entered channels when rc == 0 */
  for (size_t i = 0; i < entered; i++) end_leave(chs[i]);
  if (heap) {
    free(fds);
    free(tmp);
  }
  return rc;
}

/* ---- probes -------------------------------------------------------------------------------- */

bool kiln__channel_has_ring(kiln_channel *ch) { return ch->map != NULL; }

int kiln__channel_scribble(kiln_channel *ch, uint32_t delta) {
  if (!ch->map || !ch->can_recv) return KILN_ESTATE;
  kiln__ring_scribble(&ch->rin, delta);
  return 0;
}
