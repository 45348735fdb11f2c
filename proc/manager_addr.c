/* manager_addr.c: a manager's addresses: "/path" for a Unix socket, "host:port" or "[v6]:port"
 * for TCP (resolved with getaddrinfo), listening on them and connecting to them with a deadline.
 * TCP sockets get TCP_NODELAY: every manager call is a small request answered by a small reply,
 * which Nagle's algorithm would hold back. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "manager_internal.h"

static bool is_unix(const char *address) { return strchr(address, '/') != NULL; }

static int unix_sockaddr(const char *path, struct sockaddr_un *sa) {
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  if (strlen(path) >= sizeof sa->sun_path) return KILN_EINVAL;
  strcpy(sa->sun_path, path);
  return 0;
}

/* Splits "host:port" / "[v6]:port" and resolves it: 0 with *res (freeaddrinfo it). */
static int resolve(const char *address, bool passive, struct addrinfo **res) {
  char host[256];
  const char *port;
  if (address[0] == '[') {
    const char *end = strchr(address, ']');
    if (!end || end[1] != ':' || (size_t)(end - address - 1) >= sizeof host) return KILN_EINVAL;
    memcpy(host, address + 1, (size_t)(end - address - 1));
    host[end - address - 1] = 0;
    port = end + 2;
  } else {
    const char *colon = strrchr(address, ':');
    if (!colon || (size_t)(colon - address) >= sizeof host) return KILN_EINVAL;
    memcpy(host, address, (size_t)(colon - address));
    host[colon - address] = 0;
    port = colon + 1;
  }
  if (!*port || strspn(port, "0123456789") != strlen(port) || strlen(port) > 5) return KILN_EINVAL;
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0)};
  return getaddrinfo(host[0] ? host : NULL, port, &hints, res) ? KILN_EINVAL : 0;
}

static void nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* The address a TCP listener is reachable at, with its real port. */
static char *tcp_bound(int fd) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  char host[INET6_ADDRSTRLEN];
  if (getsockname(fd, (struct sockaddr *)&ss, &sl)) return NULL;
  if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    return kiln__strdup_printf("[%s]:%u", host, (unsigned)ntohs(a->sin6_port));
  }
  struct sockaddr_in *a = (struct sockaddr_in *)&ss;
  inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
  return kiln__strdup_printf("%s:%u", host, (unsigned)ntohs(a->sin_port));
}

static int bind_listen(int fd, const struct sockaddr *sa, socklen_t len) {
  if (bind(fd, sa, len) == 0 && listen(fd, 128) == 0) return 0;
  return errno == EADDRINUSE ? KILN_EEXIST : errno == EACCES ? KILN_EINVAL : KILN_EIO;
}

static int listen_unix(const char *path, int *lfd, char **bound, char **sock_path) {
  struct sockaddr_un sa;
  if (unix_sockaddr(path, &sa)) return KILN_EINVAL;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return KILN_EIO;
  int rc = bind_listen(fd, (struct sockaddr *)&sa, sizeof sa);
  if (!rc && (!(*bound = strdup(path)) || !(*sock_path = strdup(path)))) {
    unlink(path);
    rc = KILN_ENOMEM;
  }
  if (rc) {
    free(*bound), *bound = NULL;
    close(fd);
    return rc;
  }
  *lfd = fd;
  return 0;
}

int kiln__mgr_listen(const char *address, int *lfd, char **bound, char **sock_path) {
  *lfd = -1, *bound = NULL, *sock_path = NULL;
  if (is_unix(address)) return listen_unix(address, lfd, bound, sock_path);
  struct addrinfo *res;
  int rc = resolve(address, true, &res);
  if (rc) return rc;
  rc = KILN_EIO;
  for (struct addrinfo *a = res; a; a = a->ai_next) {
    int fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    rc = bind_listen(fd, a->ai_addr, a->ai_addrlen);
    if (!rc) rc = (*bound = tcp_bound(fd)) ? 0 : KILN_ENOMEM;
    if (!rc) {
      *lfd = fd;
      break;
    }
    close(fd);
  }
  freeaddrinfo(res);
  return rc;
}

/* A non-blocking connect finished before deadline: 0 or a code. */
static int connect_one(const struct sockaddr *sa, socklen_t len, double deadline, int *out) {
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return KILN_EIO;
  int err = connect(fd, sa, len) ? errno : 0;
  if (err == EINPROGRESS || err == EAGAIN) {
    int r = kiln__poll_fd(fd, POLLOUT, deadline);
    socklen_t el = sizeof err;
    if (r <= 0) err = r == 0 ? ETIMEDOUT : -r;
    else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el)) err = errno;
  }
  if (!err && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)) err = errno;
  if (err) {
    close(fd);
    return err == ETIMEDOUT ? KILN_ETIMEDOUT
           : (err == ENOENT || err == ECONNREFUSED) ? KILN_ENOENT
                                                    : KILN_EIO;
  }
  if (sa->sa_family != AF_UNIX) nodelay(fd);
  *out = fd;
  return 0;
}

int kiln__mgr_connect(const char *address, double deadline, int *fd) {
  *fd = -1;
  if (is_unix(address)) {
    struct sockaddr_un sa;
    if (unix_sockaddr(address, &sa)) return KILN_EINVAL;
    return connect_one((struct sockaddr *)&sa, sizeof sa, deadline, fd);
  }
  struct addrinfo *res;
  int rc = resolve(address, false, &res);
  if (rc) return rc;
  rc = KILN_ENOENT;
  for (struct addrinfo *a = res; a && rc; a = a->ai_next)
    rc = connect_one(a->ai_addr, a->ai_addrlen, deadline, fd);
  freeaddrinfo(res);
  return rc;
}
