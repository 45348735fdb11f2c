/* fdpass.c: bytes with descriptors over a Unix stream socket (SCM_RIGHTS), for the fork server's
 * requests and answers. The descriptors travel with the first bytes of a send; the receiver
 * takes them with the first bytes it reads, then reads the rest of the header as a plain stream.
 * Received descriptors are close-on-exec. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "process_internal.h"

/* The control buffer for up to KILN__MAX_REQUEST_FDS descriptors, aligned for cmsghdr. */
typedef union fd_cmsg {
  char b[CMSG_SPACE(KILN__MAX_REQUEST_FDS * sizeof(int))];
  struct cmsghdr align;
} fd_cmsg;

int kiln__send_fds(int sock, const void *buf, size_t len, const int *fds, size_t nfds) {
  fd_cmsg cm;
  memset(&cm, 0, sizeof cm);
  struct iovec iov = {.iov_base = (void *)(uintptr_t)buf, .iov_len = len};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
  if (nfds) {
    m.msg_control = cm.b;
    m.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET, c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
    memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
  }
  ssize_t n;
  while ((n = sendmsg(sock, &m, MSG_NOSIGNAL)) < 0 && errno == EINTR) {}
  if (n < 0) return errno;
  /* the descriptors went with the first bytes: the rest follows as a plain stream */
  return kiln__send_full(sock, (const char *)buf + n, len - (size_t)n);
}

int kiln__recv_fds(int sock, void *buf, size_t len, int *fds, size_t cap, size_t *nfds) {
  fd_cmsg cm;
  struct iovec iov = {.iov_base = buf, .iov_len = len};
  struct msghdr m = {.msg_iov = &iov,
                     .msg_iovlen = 1,
                     .msg_control = cm.b,
                     .msg_controllen = CMSG_SPACE(cap * sizeof(int))};
  ssize_t n;
  while ((n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {}
  if (n <= 0) return n == 0 ? -1 : errno;
  *nfds = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < k; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (*nfds < cap) fds[(*nfds)++] = fd;
      else close(fd);
    }
  }
  if ((size_t)n < len) {
    int e = kiln__read_full(sock, (char *)buf + n, len - (size_t)n);
    if (e) return e == -1 ? EPROTO : e;
  }
  return 0;
}
