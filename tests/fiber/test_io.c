/* test_io.c: the cooperative I/O engine (include/kiln/fiberio.h) on both backends, io_uring and
 * the epoll poller (forced through the config): every call on files, pipes and loopback TCP,
 * errors with their codes and errno, EOF, peer reset, timeouts and cancellation, many ops
 * completing out of order, kiln_wait over I/O futures, and teardown with ops in flight.
 * The blocking calls are run through the engine (route_all: the path a fiber takes) and as plain
 * syscalls (io NULL). */
// kt: timeout 60
#define _GNU_SOURCE /* accept4, pipe2, mkdtemp; does not clash with kt.h's _POSIX_C_SOURCE */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kiln/fiberio.h"
#include "kiln/sched.h"
#include "kt.h"

/* An engine of backend b; route_all makes the blocking calls take the fibers' path. Skips the
 * test where the kernel refuses io_uring (the poller tests still run there). */
static kiln_io *mk(kiln_io_backend b, bool route_all) {
  kiln_io_config cfg;
  kiln_io_config_default(&cfg);
  cfg.backend = b;
  cfg.route_all = route_all;
  kiln_io *io = NULL;
  int rc = kiln_io_create(&cfg, &io);
  if (rc != 0 && b == KILN_IO_BACKEND_URING) KT_SKIP("io_uring unavailable: %s", kiln_err_name(rc));
  KT_CODE(rc, 0);
  KT_EQ(kiln_io_backend_get(io), b);
  return io;
}

static char tmpdir[64];

static void mktmp(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/kiln-io-XXXXXX");
  KT_TRUE(mkdtemp(tmpdir) != NULL);
}

static void rmtmp(const char *const *names, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char p[128];
    snprintf(p, sizeof p, "%s/%s", tmpdir, names[i]);
    unlink(p);
  }
  rmdir(tmpdir);
}

/* ---- files --------------------------------------------------------------------------------- */

static void files(kiln_io *io) {
  mktmp();
  int dfd = open(tmpdir, O_RDONLY | O_DIRECTORY);
  KT_TRUE(dfd >= 0);
  int fd = -1;
  KT_CODE(kiln_io_open(io, dfd, "a.bin", O_RDWR | O_CREAT | O_EXCL, 0600, &fd), 0);
  KT_TRUE(fd >= 0);
  KT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
  size_t n = 99;
  KT_CODE(kiln_io_write(io, fd, "hello ", 6, &n), 0);
  KT_EQ(n, 6);
  KT_CODE(kiln_io_write(io, fd, "world", 5, &n), 0); /* at the file position: appends */
  KT_EQ(n, 5);
  KT_CODE(kiln_io_pwrite(io, fd, "W", 1, 6, &n), 0);
  KT_EQ(n, 1);
  KT_CODE(kiln_io_fsync(io, fd, false), 0);
  KT_CODE(kiln_io_fsync(io, fd, true), 0);
  char buf[32] = {0};
  KT_CODE(kiln_io_pread(io, fd, buf, sizeof buf, 0, &n), 0);
  KT_EQ(n, 11);
  KT_TRUE(memcmp(buf, "hello World", 11) == 0);
  KT_CODE(kiln_io_pread(io, fd, buf, sizeof buf, 11, &n), KILN_EEOF); /* at the end */
  KT_EQ(n, 0);
  KT_CODE(kiln_io_pread(io, fd, buf, 0, 0, &n), 0); /* len 0 is not EOF */
  KT_CODE(kiln_io_pread(io, fd, buf, 4, -1, &n), KILN_EINVAL);
  KT_EQ(lseek(fd, 0, SEEK_SET), 0);
  KT_CODE(kiln_io_read(io, fd, buf, 5, &n), 0);
  KT_EQ(n, 5);
  KT_CODE(kiln_io_read(io, fd, buf, sizeof buf, &n), 0); /* short: the rest */
  KT_EQ(n, 6);
  KT_CODE(kiln_io_read(io, fd, buf, sizeof buf, &n), KILN_EEOF);
  KT_CODE(kiln_io_close(io, fd), 0);

  /* errors keep their errno */
  int fd2 = 123;
  errno = 0;
  KT_CODE(kiln_io_open(io, dfd, "missing", O_RDONLY, 0, &fd2), KILN_ENOENT);
  KT_EQ(errno, ENOENT);
  KT_EQ(fd2, -1);
  errno = 0;
  KT_CODE(kiln_io_open(io, dfd, "a.bin", O_RDWR | O_CREAT | O_EXCL, 0600, &fd2), KILN_EEXIST);
  KT_EQ(errno, EEXIST);
  KT_CODE(kiln_io_open(io, dfd, "a.bin", O_RDONLY, 0, &fd2), 0);
  errno = 0;
  KT_CODE(kiln_io_write(io, fd2, "x", 1, &n), KILN_EINVAL); /* opened read-only: EBADF */
  KT_EQ(errno, EBADF);
  KT_CODE(kiln_io_close(io, fd2), 0);
  errno = 0;
  KT_CODE(kiln_io_read(io, fd2, buf, 4, &n), KILN_EINVAL); /* closed */
  KT_EQ(errno, EBADF);
  KT_CODE(kiln_io_fsync(io, fd2, false), KILN_EINVAL);
  KT_CODE(kiln_io_close(io, fd2), KILN_EINVAL);
  close(dfd);
  const char *names[] = {"a.bin"};
  rmtmp(names, 1);
}

TEST(files_uring) {
  kiln_io *io = mk(KILN_IO_BACKEND_URING, true);
  files(io);
  kiln_io_destroy(io);
}
TEST(files_poller) {
  kiln_io *io = mk(KILN_IO_BACKEND_POLLER, true);
  files(io);
  kiln_io_destroy(io);
}
TEST(files_plain) { files(NULL); }

/* Many async pwrites of one file at distinct offsets, then async preads; futures carry counts,
 * and a failed op's message names the call and the errno. */
static void files_async(kiln_io_backend b) {
  kiln_io *io = mk(b, false);
  mktmp();
  char path[128];
  snprintf(path, sizeof path, "%s/b.bin", tmpdir);
  kiln_future *of = NULL;
  KT_CODE(kiln_io_open_async(io, AT_FDCWD, path, O_RDWR | O_CREAT | O_TRUNC, 0600, &of), 0);
  size_t fdn = 0;
  KT_CODE(kiln_io_result(of, -1, &fdn), 0);
  kiln_future_release(of);
  int fd = (int)fdn;
  enum { N = 256, B = 64 };
  static char out[N][B], in[N][B];
  kiln_future *fs[N];
  for (int i = 0; i < N; i++) {
    memset(out[i], 'a' + i % 26, B);
    KT_CODE(kiln_io_pwrite_async(io, fd, out[i], B, (int64_t)i * B, &fs[i]), 0);
  }
  size_t ndone = 0;
  KT_CODE(kiln_wait(fs, N, KILN_ALL_COMPLETED, -1, &ndone), 0);
  KT_EQ(ndone, N);
  for (int i = 0; i < N; i++) {
    size_t n = 0;
    KT_CODE(kiln_io_result(fs[i], 0, &n), 0);
    KT_EQ(n, B);
    kiln_future_release(fs[i]);
  }
  for (int i = 0; i < N; i++)
    KT_CODE(kiln_io_pread_async(io, fd, in[i], B, (int64_t)i * B, &fs[i]), 0);
  for (int i = 0; i < N; i++) {
    size_t n = 0;
    KT_CODE(kiln_io_wait(io, fs[i], -1, &n), 0);
    KT_EQ(n, B);
    KT_TRUE(memcmp(in[i], out[i], B) == 0);
    kiln_future_release(fs[i]);
  }
  kiln_future *ff = NULL, *cf = NULL;
  KT_CODE(kiln_io_fsync_async(io, fd, true, &ff), 0);
  KT_CODE(kiln_io_result(ff, -1, NULL), 0);
  KT_CODE(kiln_io_close_async(io, fd, &cf), 0);
  KT_CODE(kiln_io_result(cf, -1, NULL), 0);
  kiln_future_release(ff);
  kiln_future_release(cf);

  kiln_future *bad = NULL;
  KT_CODE(kiln_io_open_async(io, AT_FDCWD, "/nonexistent/kiln/x", O_RDONLY, 0, &bad), 0);
  const char *msg = NULL;
  KT_CODE(kiln_future_error(bad, -1, &msg), KILN_ENOENT);
  KT_STR_CONTAINS(msg, "open(/nonexistent/kiln/x)");
  KT_STR_CONTAINS(msg, "[errno 2]");
  kiln_future_release(bad);
  KT_CODE(kiln_io_pread_async(io, fd, in[0], 1, 0, &bad), 0); /* fd closed */
  KT_CODE(kiln_future_error(bad, -1, &msg), KILN_EINVAL);
  KT_STR_CONTAINS(msg, "pread(fd ");
  kiln_future_release(bad);
  KT_CODE(kiln_io_pread_async(io, fd, in[0], 1, -5, &bad), KILN_EINVAL);
  KT_TRUE(bad == NULL);
  kiln_io_destroy(io);
  const char *names[] = {"b.bin"};
  rmtmp(names, 1);
}

TEST(files_async_uring) { files_async(KILN_IO_BACKEND_URING); }
TEST(files_async_poller) { files_async(KILN_IO_BACKEND_POLLER); }

/* ---- a whole file as one op (kiln_io_create_file_async) ---------------------------------------- */

static unsigned char *bytes_of(size_t n, unsigned seed) {
  unsigned char *p = malloc(n ? n : 1);
  KT_TRUE(p != NULL);
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)((seed += 2654435761u) >> 24);
  return p;
}

/* Whether path holds exactly buf[0..n). */
static bool file_is(const char *path, const void *buf, size_t n) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st;
  bool ok = fstat(fd, &st) == 0 && (size_t)st.st_size == n;
  unsigned char *got = malloc(n ? n : 1);
  size_t at = 0;
  while (ok && at < n) {
    ssize_t r = read(fd, got + at, n - at);
    if (r <= 0) ok = false;
    else at += (size_t)r;
  }
  ok = ok && memcmp(got, buf, n) == 0;
  free(got);
  close(fd);
  return ok;
}

static void create_file(kiln_io_backend b) {
  kiln_io *io = mk(b, false);
  mktmp();
  static const size_t sizes[] = {0, 1, 4097, 3u << 20};
  enum { N = sizeof sizes / sizeof sizes[0] };
  const char *names[2 * N + 1];
  char paths[2 * N][128];
  unsigned char *data[N];
  kiln_future *fs[2 * N];
  for (int i = 0; i < 2 * N; i++) {
    snprintf(paths[i], sizeof paths[i], "%s/f%d", tmpdir, i);
    names[i] = paths[i] + strlen(tmpdir) + 1;
    if (i < N) data[i] = bytes_of(sizes[i], (unsigned)i + 1);
    /* all at once, durable and not */
    KT_CODE(kiln_io_create_file_async(io, AT_FDCWD, paths[i], 0640, data[i % N], sizes[i % N],
                                      i >= N, &fs[i]),
            0);
  }
  for (int i = 0; i < 2 * N; i++) {
    size_t n = 99;
    KT_CODE(kiln_io_result(fs[i], -1, &n), 0);
    KT_EQ(n, sizes[i % N]);
    kiln_future_release(fs[i]);
    KT_TRUE(file_is(paths[i], data[i % N], sizes[i % N]));
    struct stat st;
    KT_EQ(stat(paths[i], &st), 0);
    KT_EQ(st.st_mode & 0707, 0600); /* the mode asked for (group bits left to the umask) */
  }
  /* the name exists: EEXIST from the open, and the file there is left as it was */
  kiln_future *f = NULL;
  const char *msg = NULL;
  KT_CODE(kiln_io_create_file_async(io, AT_FDCWD, paths[1], 0600, "zz", 2, false, &f), 0);
  KT_CODE(kiln_future_error(f, -1, &msg), KILN_EEXIST);
  char want[256];
  snprintf(want, sizeof want, "open(%s): File exists", paths[1]);
  KT_STR_CONTAINS(msg, want);
  kiln_future_release(f);
  KT_TRUE(file_is(paths[1], data[1], 1));
  /* no such folder: ENOENT, naming the path */
  KT_CODE(kiln_io_create_file_async(io, AT_FDCWD, "/nonexistent/kiln/x", 0600, "a", 1, true, &f),
          0);
  KT_CODE(kiln_future_error(f, -1, &msg), KILN_ENOENT);
  KT_STR_CONTAINS(msg, "open(/nonexistent/kiln/x)");
  KT_STR_CONTAINS(msg, "[errno 2]");
  kiln_future_release(f);
  KT_CODE(kiln_io_create_file_async(io, AT_FDCWD, NULL, 0600, "a", 1, false, &f), KILN_EINVAL);
  KT_TRUE(f == NULL);
  KT_CODE(kiln_io_create_file_async(io, AT_FDCWD, paths[0], 0600, NULL, 1, false, &f), KILN_EINVAL);
  kiln_io_destroy(io);
  for (int i = 0; i < N; i++) free(data[i]);
  rmtmp(names, 2 * N);
}

TEST(create_file_uring) { create_file(KILN_IO_BACKEND_URING); }
TEST(create_file_poller) { create_file(KILN_IO_BACKEND_POLLER); }

/* A write that stops half way: a file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored) makes the first
 * write short (it stops at the limit; through io_uring that breaks the chain, and the rest goes
 * as another round) and the next one fail with EFBIG. The op fails naming the write and the
 * path, and the half-written file is gone. In a child: the limit is the process's. */
static void create_file_write_fails(kiln_io_backend b) {
  kiln_io *probe = mk(b, false); /* skips where io_uring is refused */
  kiln_io_destroy(probe);
  mktmp();
  char path[128];
  snprintf(path, sizeof path, "%s/big", tmpdir);
  enum { LIMIT = 100000, LEN = 300000 };
  pid_t pid = fork();
  KT_TRUE(pid >= 0);
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {LIMIT, LIMIT};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(10);
    kiln_io_config cfg;
    kiln_io_config_default(&cfg);
    cfg.backend = b;
    kiln_io *io = NULL;
    if (kiln_io_create(&cfg, &io) != 0) _exit(11);
    unsigned char *data = bytes_of(LEN, 7);
    for (int durable = 0; durable < 2; durable++) {
      kiln_future *f = NULL;
      const char *msg = NULL;
      if (kiln_io_create_file_async(io, AT_FDCWD, path, 0600, data, LEN, durable, &f) != 0)
        _exit(12);
      if (kiln_future_error(f, -1, &msg) != KILN_EIO) _exit(13);
      char want[256];
      snprintf(want, sizeof want, "write(%s): File too large [errno %d]", path, EFBIG);
      if (!msg || !strstr(msg, want)) _exit(14);
      kiln_future_release(f);
      if (access(path, F_OK) == 0) _exit(15); /* the half-written file was removed */
    }
    /* a file within the limit still goes: the engine is usable after the failure */
    kiln_future *f = NULL;
    size_t n = 0;
    if (kiln_io_create_file_async(io, AT_FDCWD, path, 0600, data, LIMIT, true, &f) != 0 ||
        kiln_io_result(f, -1, &n) != 0 || n != LIMIT || !file_is(path, data, LIMIT))
      _exit(16);
    kiln_future_release(f);
    kiln_io_destroy(io);
    free(data);
    _exit(0);
  }
  int st = 0;
  KT_EQ(waitpid(pid, &st, 0), pid);
  KT_TRUE(WIFEXITED(st));
  KT_EQ(WEXITSTATUS(st), 0);
  const char *names[] = {"big"};
  rmtmp(names, 1);
}

TEST(create_file_write_fails_half_way_uring) { create_file_write_fails(KILN_IO_BACKEND_URING); }
TEST(create_file_write_fails_half_way_poller) { create_file_write_fails(KILN_IO_BACKEND_POLLER); }

/* Cancelled at once, or the engine destroyed with them in flight: each op either completed (the
 * whole file there) or failed with KILN_ECANCELLED and left nothing; never a partial file. */
static void create_file_cancel(kiln_io_backend b, bool destroy) {
  kiln_io *io = mk(b, false);
  mktmp();
  enum { K = 32, LEN = 1u << 20 };
  unsigned char *data = bytes_of(LEN, 3);
  char paths[K][128];
  const char *names[K];
  kiln_future *fs[K];
  for (int i = 0; i < K; i++) {
    snprintf(paths[i], sizeof paths[i], "%s/c%d", tmpdir, i);
    names[i] = paths[i] + strlen(tmpdir) + 1;
    KT_CODE(kiln_io_create_file_async(io, AT_FDCWD, paths[i], 0600, data, LEN, i % 2, &fs[i]), 0);
    if (!destroy) kiln_io_cancel(io, fs[i]);
  }
  if (destroy) kiln_io_destroy(io);
  for (int i = 0; i < K; i++) {
    size_t n = 0;
    int rc = kiln_io_result(fs[i], -1, &n);
    KT_TRUE(kiln_future_done(fs[i]));
    if (rc == 0) {
      KT_EQ(n, LEN);
      KT_TRUE(file_is(paths[i], data, LEN));
    } else {
      KT_CODE(rc, KILN_ECANCELLED);
      KT_EQ(access(paths[i], F_OK), -1);
    }
    kiln_future_release(fs[i]);
  }
  if (!destroy) kiln_io_destroy(io);
  free(data);
  rmtmp(names, K);
}

TEST(create_file_cancel_uring) { create_file_cancel(KILN_IO_BACKEND_URING, false); }
TEST(create_file_cancel_poller) { create_file_cancel(KILN_IO_BACKEND_POLLER, false); }
TEST(create_file_teardown_uring) { create_file_cancel(KILN_IO_BACKEND_URING, true); }
TEST(create_file_teardown_poller) { create_file_cancel(KILN_IO_BACKEND_POLLER, true); }

/* ---- pipes ---------------------------------------------------------------------------------- */

typedef struct writer_arg {
  int fd;
  const char *data;
  size_t len;
} writer_arg;

static void *pipe_writer(void *arg) {
  writer_arg *w = arg;
  size_t off = 0;
  while (off < w->len) {
    ssize_t k = write(w->fd, w->data + off, w->len - off);
    if (k > 0) {
      off += (size_t)k;
    } else if (k < 0 && errno == EAGAIN) { /* a non-blocking pipe: wait until there is room */
      struct pollfd pfd = {.fd = w->fd, .events = POLLOUT};
      poll(&pfd, 1, -1);
    } else if (k < 0 && errno != EINTR) {
      break;
    }
  }
  close(w->fd);
  return NULL;
}

typedef struct reader_arg {
  int fd;
  char *dst;
  size_t cap, got;
} reader_arg;

/* Reads to EOF with poll + read, so that it works on blocking and non-blocking pipes alike. */
static void *pipe_reader(void *arg) {
  reader_arg *r = arg;
  for (;;) {
    struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
    poll(&pfd, 1, -1);
    ssize_t k = read(r->fd, r->dst + r->got, r->cap - r->got);
    if (k == 0) break;
    if (k > 0) r->got += (size_t)k;
    else if (errno != EAGAIN && errno != EINTR) break;
  }
  return NULL;
}

static void pipes(kiln_io *io, bool nonblock) {
  int p[2];
  KT_EQ(pipe2(p, O_CLOEXEC | (nonblock ? O_NONBLOCK : 0)), 0);
  char buf[16];
  size_t n = 0;
  if (io) {
    /* a read that must wait completes when the writer writes */
    kiln_future *rf = NULL;
    KT_CODE(kiln_io_read_async(io, p[0], buf, sizeof buf, &rf), 0);
    KT_CODE(kiln_io_result(rf, 0.02, &n), KILN_ETIMEDOUT); /* nothing there: still pending */
    KT_EQ(write(p[1], "ping", 4), 4);
    KT_CODE(kiln_io_result(rf, -1, &n), 0);
    KT_EQ(n, 4);
    KT_TRUE(memcmp(buf, "ping", 4) == 0);
    kiln_future_release(rf);
  }
  /* a large transfer, short writes included, against a reader thread */
  enum { BIG = 1 << 20 };
  char *data = malloc(BIG), *got = malloc(BIG);
  for (size_t i = 0; i < BIG; i++) data[i] = (char)(i * 7 + i / 4096);
  int q[2];
  KT_EQ(pipe2(q, O_CLOEXEC | (nonblock ? O_NONBLOCK : 0)), 0);
  pthread_t th;
  writer_arg w = {q[1], data, BIG};
  KT_EQ(pthread_create(&th, NULL, pipe_writer, &w), 0);
  size_t off = 0;
  int rc = 0;
  while (off < BIG && (rc = kiln_io_read(io, q[0], got + off, BIG - off, &n)) == 0) off += n;
  KT_EQ(off, BIG);
  char extra;
  KT_CODE(kiln_io_read(io, q[0], &extra, 1, &n), KILN_EEOF); /* the writer closed */
  KT_TRUE(memcmp(got, data, BIG) == 0);
  pthread_join(th, NULL);
  close(q[0]);
  /* write_all into a pipe that a reader thread drains */
  KT_EQ(pipe2(q, O_CLOEXEC | (nonblock ? O_NONBLOCK : 0)), 0);
  reader_arg ra = {q[0], got, BIG, 0};
  memset(got, 0, BIG);
  KT_EQ(pthread_create(&th, NULL, pipe_reader, &ra), 0);
  KT_CODE(kiln_io_write_all(io, q[1], data, BIG, &n), 0);
  KT_EQ(n, BIG);
  close(q[1]);
  pthread_join(th, NULL);
  KT_EQ(ra.got, BIG);
  KT_TRUE(memcmp(got, data, BIG) == 0);
  close(q[0]);
  free(data);
  free(got);
  close(p[0]);
  close(p[1]);
}

TEST(pipes_uring) {
  kiln_io *io = mk(KILN_IO_BACKEND_URING, true);
  pipes(io, false);
  pipes(io, true);
  kiln_io_destroy(io);
}
TEST(pipes_poller) {
  kiln_io *io = mk(KILN_IO_BACKEND_POLLER, true);
  pipes(io, false);
  pipes(io, true);
  kiln_io_destroy(io);
}
TEST(pipes_plain) { pipes(NULL, false); }

/* ---- loopback TCP ------------------------------------------------------------------------------ */

/* A listening socket on 127.0.0.1, port chosen by the kernel; *addr is where to connect. */
static int listener(struct sockaddr_in *addr, bool nonblock) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
  KT_TRUE(s >= 0);
  memset(addr, 0, sizeof *addr);
  addr->sin_family = AF_INET;
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  KT_EQ(bind(s, (struct sockaddr *)addr, sizeof *addr), 0);
  socklen_t len = sizeof *addr;
  KT_EQ(getsockname(s, (struct sockaddr *)addr, &len), 0);
  KT_EQ(listen(s, 1024), 0);
  return s;
}

static int tcp_socket(bool nonblock) {
  int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
  KT_TRUE(c >= 0);
  return c;
}

static void tcp(kiln_io *io, bool nonblock) {
  struct sockaddr_in addr;
  int ls = listener(&addr, nonblock);
  int c = tcp_socket(nonblock);
  int a = -1;
  if (io) {
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    kiln_future *af = NULL;
    KT_CODE(kiln_io_accept_async(io, ls, (struct sockaddr *)&peer, &plen, &af), 0);
    KT_CODE(kiln_io_connect(io, c, (struct sockaddr *)&addr, sizeof addr, 5.0), 0);
    size_t fdn = 0;
    KT_CODE(kiln_io_result(af, -1, &fdn), 0);
    kiln_future_release(af);
    a = (int)fdn;
    KT_EQ(plen, sizeof peer);
    KT_EQ(peer.sin_family, AF_INET);
  } else {
    KT_CODE(kiln_io_connect(NULL, c, (struct sockaddr *)&addr, sizeof addr, -1), 0);
    KT_CODE(kiln_io_accept(NULL, ls, NULL, NULL, -1, &a), 0);
  }
  KT_TRUE(a >= 0);
  KT_TRUE(fcntl(a, F_GETFD) & FD_CLOEXEC);
  char buf[64];
  size_t n = 0;
  KT_CODE(kiln_io_send(io, c, "abc", 3, 0, -1, &n), 0);
  KT_EQ(n, 3);
  KT_CODE(kiln_io_recv(io, a, buf, sizeof buf, 0, -1, &n), 0);
  KT_EQ(n, 3);
  KT_TRUE(memcmp(buf, "abc", 3) == 0);
  KT_CODE(kiln_io_write(io, a, "xy", 2, &n), 0); /* read/write work on sockets too */
  KT_CODE(kiln_io_read(io, c, buf, sizeof buf, &n), 0);
  KT_EQ(n, 2);
  if (io) {
    /* a recv that times out consumes nothing: what comes later is still there */
    double t0 = kt_now();
    KT_CODE(kiln_io_recv(io, a, buf, sizeof buf, 0, 0.05, &n), KILN_ETIMEDOUT);
    KT_TIMED(kt_now() - t0, 0.05);
    KT_EQ(n, 0);
    KT_CODE(kiln_io_send(io, c, "later", 5, 0, 1.0, &n), 0);
    KT_CODE(kiln_io_recv(io, a, buf, sizeof buf, 0, 1.0, &n), 0);
    KT_EQ(n, 5);
    KT_TRUE(memcmp(buf, "later", 5) == 0);
    /* an accept that times out is cancelled: a later connection is there for the next accept */
    int a2 = 5;
    KT_CODE(kiln_io_accept(io, ls, NULL, NULL, 0.03, &a2), KILN_ETIMEDOUT);
    KT_EQ(a2, -1);
    int c3 = tcp_socket(false);
    KT_EQ(connect(c3, (struct sockaddr *)&addr, sizeof addr), 0);
    KT_CODE(kiln_io_accept(io, ls, NULL, NULL, 5.0, &a2), 0);
    KT_TRUE(a2 >= 0);
    close(a2);
    close(c3);
  } else {
    KT_CODE(kiln_io_recv(NULL, a, buf, sizeof buf, 0, 0.05, &n), KILN_EINVAL);
  }
  /* EOF: the peer shuts its side down */
  KT_EQ(shutdown(c, SHUT_WR), 0);
  KT_CODE(kiln_io_recv(io, a, buf, sizeof buf, 0, -1, &n), KILN_EEOF);
  KT_EQ(n, 0);
  close(c);
  close(a);
  /* reset: the peer closes with SO_LINGER 0 */
  c = tcp_socket(nonblock);
  KT_CODE(kiln_io_connect(io, c, (struct sockaddr *)&addr, sizeof addr, io ? 5.0 : -1), 0);
  KT_CODE(kiln_io_accept(io, ls, NULL, NULL, io ? 5.0 : -1, &a), 0);
  struct linger lg = {1, 0};
  KT_EQ(setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
  close(c);
  errno = 0;
  int rc = kiln_io_recv(io, a, buf, sizeof buf, 0, -1, &n);
  KT_CODE(rc, KILN_EIO);
  KT_EQ(errno, ECONNRESET);
  errno = 0;
  rc = kiln_io_send(io, a, "z", 1, 0, -1, &n); /* MSG_NOSIGNAL: an error, never SIGPIPE */
  KT_CODE(rc, KILN_EIO);
  KT_TRUE(errno == EPIPE || errno == ECONNRESET);
  close(a);
  /* refused: nothing listens there any more */
  close(ls);
  int c2 = tcp_socket(nonblock);
  errno = 0;
  KT_CODE(kiln_io_connect(io, c2, (struct sockaddr *)&addr, sizeof addr, io ? 5.0 : -1), KILN_EIO);
  KT_EQ(errno, ECONNREFUSED);
  close(c2);
  KT_CODE(kiln_io_send(io, 0x7ffffff, "z", 1, 0, -1, &n), KILN_EINVAL); /* not a descriptor */
}

TEST(tcp_uring) {
  kiln_io *io = mk(KILN_IO_BACKEND_URING, true);
  tcp(io, false);
  tcp(io, true);
  kiln_io_destroy(io);
}
TEST(tcp_poller) {
  kiln_io *io = mk(KILN_IO_BACKEND_POLLER, true);
  tcp(io, false);
  tcp(io, true);
  kiln_io_destroy(io);
}
TEST(tcp_plain) { tcp(NULL, false); }

/* ---- cancellation ------------------------------------------------------------------------------ */

static void cancel(kiln_io_backend b) {
  kiln_io *io = mk(b, false);
  int sp[2];
  KT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
  char buf[8] = {0};
  kiln_future *f = NULL;
  KT_CODE(kiln_io_recv_async(io, sp[0], buf, sizeof buf, 0, &f), 0);
  KT_FALSE(kiln_future_cancel(f)); /* kernel work: kiln_future_cancel cannot take it back */
  kiln_io_cancel(io, f);
  const char *msg = NULL;
  KT_CODE(kiln_future_error(f, -1, &msg), KILN_ECANCELLED);
  KT_STR_CONTAINS(msg, "recv(fd ");
  kiln_io_cancel(io, f); /* done: nothing happens */
  kiln_future_release(f);
  /* the cancelled recv took nothing */
  KT_EQ(write(sp[1], "data", 4), 4);
  size_t n = 0;
  KT_CODE(kiln_io_recv_async(io, sp[0], buf, sizeof buf, 0, &f), 0);
  KT_CODE(kiln_io_wait(io, f, 5.0, &n), 0);
  KT_EQ(n, 4);
  kiln_io_cancel(io, f);
  KT_CODE(kiln_io_result(f, 0, &n), 0); /* a done op stays as it was */
  kiln_future_release(f);
  /* kiln_io_wait with a timeout cancels and reports the timeout */
  KT_CODE(kiln_io_recv_async(io, sp[0], buf, sizeof buf, 0, &f), 0);
  double t0 = kt_now();
  KT_CODE(kiln_io_wait(io, f, 0.05, &n), KILN_ETIMEDOUT);
  KT_TIMED(kt_now() - t0, 0.05);
  KT_TRUE(kiln_future_done(f));
  KT_CODE(kiln_io_result(f, 0, &n), KILN_ECANCELLED);
  kiln_future_release(f);
  close(sp[0]);
  close(sp[1]);
  kiln_io_destroy(io);
}

TEST(cancel_uring) { cancel(KILN_IO_BACKEND_URING); }
TEST(cancel_poller) { cancel(KILN_IO_BACKEND_POLLER); }

/* ---- many ops, completed out of order ----------------------------------------------------------- */

enum { PAIRS = 200 };

typedef struct many_ctx {
  int sp[PAIRS][2];
  int order[PAIRS];
} many_ctx;

/* Writes one byte, the index, to each pair in a shuffled order. */
static void *many_writer(void *arg) {
  many_ctx *m = arg;
  for (int k = 0; k < PAIRS; k++) {
    int i = m->order[k];
    unsigned char v = (unsigned char)i;
    if (write(m->sp[i][1], &v, 1) != 1) return (void *)1;
  }
  return NULL;
}

static void many(kiln_io_backend b) {
  kiln_io *io = mk(b, false);
  static many_ctx m;
  static unsigned char bufs[PAIRS][4];
  kiln_future *fs[PAIRS];
  srand(7);
  for (int i = 0; i < PAIRS; i++) {
    KT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, m.sp[i]), 0);
    m.order[i] = i;
  }
  for (int i = PAIRS - 1; i > 0; i--) {
    int j = rand() % (i + 1), t = m.order[i];
    m.order[i] = m.order[j];
    m.order[j] = t;
  }
  for (int i = 0; i < PAIRS; i++) {
    memset(bufs[i], 0xEE, sizeof bufs[i]);
    KT_CODE(kiln_io_recv_async(io, m.sp[i][0], bufs[i], sizeof bufs[i], 0, &fs[i]), 0);
  }
  size_t ndone = 99;
  KT_CODE(kiln_wait(fs, PAIRS, KILN_FIRST_COMPLETED, 0, &ndone), KILN_ETIMEDOUT);
  KT_EQ(ndone, 0);
  pthread_t th;
  KT_EQ(pthread_create(&th, NULL, many_writer, &m), 0);
  /* completion order, through kiln_as_completed: every op once, each with its own byte */
  kiln_completion *c = NULL;
  KT_CODE(kiln_as_completed(fs, PAIRS, 30.0, &c), 0);
  static bool seen[PAIRS];
  int count = 0;
  kiln_future *f;
  while (kiln_completion_next(c, &f) == 0) {
    int i = -1;
    for (int k = 0; k < PAIRS; k++)
      if (fs[k] == f) i = k;
    KT_TRUE(i >= 0);
    KT_FALSE(seen[i]);
    seen[i] = true;
    size_t n = 0;
    KT_CODE(kiln_io_result(f, 0, &n), 0);
    KT_EQ(n, 1);
    KT_EQ(bufs[i][0], i);
    KT_EQ(bufs[i][1], 0xEE);
    kiln_future_release(f);
    count++;
  }
  KT_EQ(count, PAIRS);
  kiln_completion_destroy(c);
  void *ret = NULL;
  pthread_join(th, &ret);
  KT_TRUE(ret == NULL);
  for (int i = 0; i < PAIRS; i++) {
    kiln_future_release(fs[i]);
    close(m.sp[i][0]);
    close(m.sp[i][1]);
  }
  kiln_io_destroy(io);
}

TEST(many_out_of_order_uring) { many(KILN_IO_BACKEND_URING); }
TEST(many_out_of_order_poller) { many(KILN_IO_BACKEND_POLLER); }

/* Many threads submitting at once to one engine (the submission lock, batching). */
typedef struct storm_arg {
  kiln_io *io;
  int fd;
  int id;
  int fails;
} storm_arg;

static void *storm(void *arg) {
  storm_arg *s = arg;
  char buf[16];
  for (int k = 0; k < 300; k++) {
    kiln_future *fs[4];
    for (int j = 0; j < 4; j++) {
      if (kiln_io_pread_async(s->io, s->fd, buf + 4 * j, 4, (s->id * 4 + j) % 64 * 4, &fs[j]))
        s->fails++;
    }
    for (int j = 0; j < 4; j++) {
      size_t n = 0;
      if (kiln_io_result(fs[j], -1, &n) || n != 4) s->fails++;
      kiln_future_release(fs[j]);
    }
  }
  return NULL;
}

static void threads(kiln_io_backend b) {
  kiln_io *io = mk(b, false);
  FILE *tf = tmpfile();
  KT_TRUE(tf != NULL);
  int fd = fileno(tf);
  char block[256];
  memset(block, 'q', sizeof block);
  KT_EQ(write(fd, block, sizeof block), (ssize_t)sizeof block);
  enum { T = 8 };
  pthread_t th[T];
  storm_arg args[T];
  for (int i = 0; i < T; i++) {
    args[i] = (storm_arg){io, fd, i, 0};
    KT_EQ(pthread_create(&th[i], NULL, storm, &args[i]), 0);
  }
  for (int i = 0; i < T; i++) {
    pthread_join(th[i], NULL);
    KT_EQ(args[i].fails, 0);
  }
  fclose(tf);
  kiln_io_destroy(io);
}

TEST(threads_uring) { threads(KILN_IO_BACKEND_URING); }
TEST(threads_poller) { threads(KILN_IO_BACKEND_POLLER); }

/* ---- teardown with ops in flight ---------------------------------------------------------------- */

static void teardown(kiln_io_backend b) {
  kiln_io *io = mk(b, false);
  enum { K = 64 };
  int sp[K][2];
  static char bufs[K][8];
  kiln_future *fs[K + 1];
  for (int i = 0; i < K; i++) {
    KT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp[i]), 0);
    KT_CODE(kiln_io_recv_async(io, sp[i][0], bufs[i], sizeof bufs[i], 0, &fs[i]), 0);
  }
  int p[2];
  KT_EQ(pipe2(p, O_CLOEXEC), 0);
  char pb[4];
  KT_CODE(kiln_io_read_async(io, p[0], pb, sizeof pb, &fs[K]), 0);
  kiln_io_destroy(io); /* cancels them all and waits for the kernel to let go of the buffers */
  for (int i = 0; i <= K; i++) {
    KT_TRUE(kiln_future_done(fs[i]));
    KT_CODE(kiln_io_result(fs[i], 0, NULL), KILN_ECANCELLED);
    kiln_future_release(fs[i]);
  }
  /* nothing reads from the sockets any more: a byte written now stays there */
  for (int i = 0; i < K; i++) {
    KT_EQ(write(sp[i][1], "x", 1), 1);
    char c = 0;
    KT_EQ(recv(sp[i][0], &c, 1, MSG_DONTWAIT), 1);
    KT_EQ(c, 'x');
    close(sp[i][0]);
    close(sp[i][1]);
  }
  close(p[0]);
  close(p[1]);
}

TEST(teardown_in_flight_uring) { teardown(KILN_IO_BACKEND_URING); }
TEST(teardown_in_flight_poller) { teardown(KILN_IO_BACKEND_POLLER); }

/* ---- backend selection and arguments ------------------------------------------------------------ */

TEST(backend_selection) {
  kiln_io_config cfg;
  kiln_io_config_default(&cfg);
  KT_EQ(cfg.backend, KILN_IO_BACKEND_AUTO);
  KT_EQ(cfg.entries, 256);
  KT_EQ(cfg.helper_threads, 4);
  KT_FALSE(cfg.route_all);
  kiln_io *io = NULL;
  cfg.backend = KILN_IO_BACKEND_POLLER;
  KT_CODE(kiln_io_create(&cfg, &io), 0);
  KT_STR_EQ(kiln_io_backend_reason(io), "poller: asked for");
  kiln_io_destroy(io);
  KT_EQ(setenv("KILN_IO_BACKEND", "poller", 1), 0);
  KT_CODE(kiln_io_create(NULL, &io), 0);
  KT_EQ(kiln_io_backend_get(io), KILN_IO_BACKEND_POLLER);
  kiln_io_destroy(io);
  KT_EQ(setenv("KILN_IO_BACKEND", "sideways", 1), 0);
  KT_CODE(kiln_io_create(NULL, &io), KILN_EINVAL);
  KT_TRUE(io == NULL);
  KT_EQ(setenv("KILN_IO_BACKEND", "uring", 1), 0);
  int rc = kiln_io_create(NULL, &io);
  if (rc == 0) {
    KT_EQ(kiln_io_backend_get(io), KILN_IO_BACKEND_URING);
    KT_STR_EQ(kiln_io_backend_reason(io), "io_uring");
    kiln_io_destroy(io);
  }
  unsetenv("KILN_IO_BACKEND");
  KT_CODE(kiln_io_create(NULL, &io), 0); /* AUTO: io_uring where it works, else the poller */
  KT_EQ(kiln_io_backend_get(io), rc == 0 ? KILN_IO_BACKEND_URING : KILN_IO_BACKEND_POLLER);
  kiln_io_destroy(io);
  cfg.helper_threads = 0;
  KT_CODE(kiln_io_create(&cfg, &io), KILN_EINVAL);
  kiln_io_config_default(&cfg);
  cfg.backend = (kiln_io_backend)7;
  KT_CODE(kiln_io_create(&cfg, &io), KILN_EINVAL);
  kiln_io_destroy(NULL);
  KT_CODE(kiln_io_errno_code(ECONNRESET), KILN_EIO);
  KT_CODE(kiln_io_errno_code(ENOENT), KILN_ENOENT);
  KT_CODE(kiln_io_errno_code(EBADF), KILN_EINVAL);
  KT_CODE(kiln_io_errno_code(ENOSYS), KILN_EUNSUPPORTED);
  KT_CODE(kiln_io_errno_code(0), 0);
  kiln_future *f = (kiln_future *)&f;
  KT_CODE(kiln_io_read_async(NULL, 0, NULL, 0, &f), KILN_EINVAL);
  KT_TRUE(f == NULL);
  size_t n = 5;
  KT_CODE(kiln_io_recv(NULL, 0, NULL, 0, 0, 1.0, &n), KILN_EINVAL);
  KT_EQ(n, 0);
}

/* A descriptor epoll refuses (/dev/zero) goes to the poller's helpers; io_uring reads it
 * directly. */
static void unpollable(kiln_io_backend b) {
  kiln_io *io = mk(b, true);
  int fd = -1;
  KT_CODE(kiln_io_open(io, AT_FDCWD, "/dev/zero", O_RDONLY, 0, &fd), 0);
  char buf[100];
  memset(buf, 1, sizeof buf);
  size_t n = 0;
  KT_CODE(kiln_io_read(io, fd, buf, sizeof buf, &n), 0);
  KT_EQ(n, sizeof buf);
  KT_EQ(buf[0] | buf[99], 0);
  KT_CODE(kiln_io_close(io, fd), 0);
  kiln_io_destroy(io);
}

TEST(unpollable_uring) { unpollable(KILN_IO_BACKEND_URING); }
TEST(unpollable_poller) { unpollable(KILN_IO_BACKEND_POLLER); }

/* The detection itself: in a child whose seccomp filter makes io_uring_setup fail with EPERM (as
 * Docker's default profile or io_uring_disabled do), AUTO falls back to the poller and says why,
 * URING fails, and the poller works. */
static int child_without_uring(void) {
  struct sock_filter prog[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog fp = {sizeof prog / sizeof *prog, prog};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fp))
    return 10;
  kiln_io_config cfg;
  kiln_io_config_default(&cfg);
  cfg.backend = KILN_IO_BACKEND_URING;
  kiln_io *io = NULL;
  if (kiln_io_create(&cfg, &io) != KILN_EIO || io) return 11;
  if (kiln_io_create(NULL, &io) != 0) return 12;
  if (kiln_io_backend_get(io) != KILN_IO_BACKEND_POLLER) return 13;
  if (!strstr(kiln_io_backend_reason(io), "io_uring_queue_init: Operation not permitted"))
    return 14;
  int p[2];
  char c = 0;
  size_t n = 0;
  if (pipe(p) || write(p[1], "k", 1) != 1) return 15;
  kiln_future *f = NULL;
  if (kiln_io_read_async(io, p[0], &c, 1, &f) || kiln_io_result(f, 10, &n) || n != 1 || c != 'k')
    return 16;
  kiln_future_release(f);
  kiln_io_destroy(io);
  return 0;
}

TEST(fallback_detected_under_seccomp) {
  unsetenv("KILN_IO_BACKEND");
  pid_t pid = fork();
  KT_TRUE(pid >= 0);
  if (pid == 0) _exit(child_without_uring());
  int st = 0;
  KT_EQ(waitpid(pid, &st, 0), pid);
  KT_TRUE(WIFEXITED(st));
  KT_EQ(WEXITSTATUS(st), 0);
}

/* Ops that a backend is already running: opening a FIFO for reading blocks until a writer comes
 * (in a helper thread of the poller). With the poller's one helper
 * busy, a queued pread is cancelled at once; the running open cannot be (poller) or is
 * interrupted (io_uring), and either way its future ends once a writer opens the FIFO. */
static void cancel_running(kiln_io_backend b) {
  kiln_io_config cfg;
  kiln_io_config_default(&cfg);
  cfg.backend = b;
  cfg.helper_threads = 1;
  kiln_io *io = NULL;
  int rc = kiln_io_create(&cfg, &io);
  if (rc && b == KILN_IO_BACKEND_URING) KT_SKIP("io_uring unavailable");
  KT_CODE(rc, 0);
  mktmp();
  char fifo[128], file[128];
  snprintf(fifo, sizeof fifo, "%s/fifo", tmpdir);
  snprintf(file, sizeof file, "%s/file", tmpdir);
  KT_EQ(mkfifo(fifo, 0600), 0);
  int fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  KT_EQ(write(fd, "abcd", 4), 4);
  kiln_future *of = NULL, *pf = NULL;
  KT_CODE(kiln_io_open_async(io, AT_FDCWD, fifo, O_RDONLY, 0, &of), 0);
  char buf[4];
  KT_CODE(kiln_io_pread_async(io, fd, buf, 4, 0, &pf), 0);
  size_t n = 0;
  if (b == KILN_IO_BACKEND_POLLER) {
    KT_CODE(kiln_io_result(pf, 0.02, &n), KILN_ETIMEDOUT); /* queued behind the open */
    kiln_io_cancel(io, pf);
    KT_CODE(kiln_io_result(pf, 5.0, &n), KILN_ECANCELLED);
  } else {
    KT_CODE(kiln_io_result(pf, 5.0, &n), 0); /* io_uring does not queue it behind */
    KT_EQ(n, 4);
  }
  kiln_future_release(pf);
  kiln_io_cancel(io, of);
  /* poller: a running open finishes first; one the helper had not picked up yet ends at once */
  bool ended_at_once = kiln_future_done(of);
  int w = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC); /* ENXIO if the reader already gave up */
  size_t rfd = 0;
  rc = kiln_io_result(of, 5.0, &rfd);
  if (rc == 0) {
    KT_TRUE(w >= 0);
    /* io_uring tries the open non-blocking first, which opens a FIFO without waiting for a
     * writer: there the open may have ended before anything else happened */
    KT_FALSE(ended_at_once && b == KILN_IO_BACKEND_POLLER);
    close((int)rfd);
  } else if (b == KILN_IO_BACKEND_POLLER) {
    KT_CODE(rc, KILN_ECANCELLED);
    KT_TRUE(ended_at_once);
  } else {
    KT_TRUE(rc == KILN_ECANCELLED || rc == KILN_EIO); /* cancelled, or interrupted (EINTR) */
  }
  if (w >= 0) close(w);
  kiln_future_release(of);
  close(fd);
  kiln_io_destroy(io);
  const char *names[] = {"fifo", "file"};
  rmtmp(names, 2);
}

TEST(cancel_running_uring) { cancel_running(KILN_IO_BACKEND_URING); }
TEST(cancel_running_poller) { cancel_running(KILN_IO_BACKEND_POLLER); }
