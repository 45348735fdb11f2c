/* fdio.c: whole reads and writes on file descriptors, and waiting on one with a deadline.
 *
 * Every byte stream of proc/ (a connection, the fork server's socket, a manager's socket) goes
 * through these so that EINTR and short transfers are handled once: a signal delivered to the
 * process never breaks a message (PIPE-11). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proc_internal.h"

/* Writes all of buf with write(2), or send(2) with MSG_NOSIGNAL on a socket. */
static int put_full(int fd, const void *buf, size_t len, bool sock) {
  const char *p = buf;
  while (len) {
    ssize_t n = sock ? send(fd, p, len, MSG_NOSIGNAL) : write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        int r = kiln__poll_fd(fd, POLLOUT, INFINITY);
        if (r < 0) return -r;
        continue;
      }
      return errno;
    }
    p += n, len -= (size_t)n;
  }
  return 0;
}

int kiln__write_full(int fd, const void *buf, size_t len) { return put_full(fd, buf, len, false); }

int kiln__send_full(int fd, const void *buf, size_t len) { return put_full(fd, buf, len, true); }

int kiln__read_full(int fd, void *buf, size_t len) {
  char *p = buf;
  size_t got = 0;
  while (got < len) {
    ssize_t n = read(fd, p + got, len - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        int r = kiln__poll_fd(fd, POLLIN, INFINITY);
        if (r < 0) return -r;
        continue;
      }
      return errno;
    }
    if (n == 0) return got ? EPROTO : -1;
    got += (size_t)n;
  }
  return 0;
}

int kiln__poll_fd(int fd, short events, double deadline) {
  for (;;) {
    int ms = -1;
    if (deadline < INFINITY) {
      double left = deadline - kiln__now();
      if (left < 0) left = 0;
      /* round up, so a wait never ends before its deadline */
      ms = left > 2e6 ? 2000000000 : (int)ceil(left * 1000.0);
    }
    struct pollfd p = {.fd = fd, .events = events};
    int n = poll(&p, 1, ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n > 0) return 1;
    if (deadline < INFINITY && kiln__now() >= deadline) return 0;
  }
}

int kiln__fd_flags(int fd, bool nonblock) {
  int fl = fcntl(fd, F_GETFD);
  if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0) return errno;
  if (nonblock) {
    fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return errno;
  }
  return 0;
}
