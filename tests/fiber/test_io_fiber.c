/* test_io_fiber.c: the I/O engine's blocking calls inside pool fibers, on both backends: they
 * suspend the fiber and free its worker, and a fiber killed while it waits on I/O gets
 * KILN_ECANCELLED only once the op has ended (its buffer is never written afterwards). */
// kt: timeout 120
#define _GNU_SOURCE
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kiln/fiber.h"
#include "kiln/fiberio.h"
#include "kiln/sched.h"
#include "kt.h"

static kiln_io *mk(kiln_io_backend b) {
  kiln_io_config cfg;
  kiln_io_config_default(&cfg);
  cfg.backend = b;
  kiln_io *io = NULL;
  int rc = kiln_io_create(&cfg, &io);
  if (rc != 0 && b == KILN_IO_BACKEND_URING) KT_SKIP("io_uring unavailable: %s", kiln_err_name(rc));
  KT_CODE(rc, 0);
  return io;
}

static kiln_pool *one_worker(void) {
  kiln_pool_config cfg;
  kiln_pool_config_default(&cfg);
  cfg.threads = 1;
  kiln_pool *p = NULL;
  KT_EQ(kiln_pool_create(&cfg, &p), 0);
  return p;
}

/* ---- a read suspends its fiber: the one worker runs the writer meanwhile ---------------------- */

typedef struct pipe_job {
  kiln_io *io;
  int fds[2];
  char got[8];
  size_t n;
  atomic_int reader_in, writer_ran;
} pipe_job;

static int reader(void *arg, void **result) {
  (void)result;
  pipe_job *j = arg;
  atomic_store(&j->reader_in, 1);
  return kiln_io_read(j->io, j->fds[0], j->got, 5, &j->n); /* no timeout: the fibers' path */
}

static int writer(void *arg, void **result) {
  (void)result;
  pipe_job *j = arg;
  KT_TRUE(atomic_load(&j->reader_in)); /* the reader ran first and is suspended, not done */
  atomic_store(&j->writer_ran, 1);
  return kiln_io_write_all(j->io, j->fds[1], "hello", 5, NULL);
}

static void read_suspends(kiln_io_backend b) {
  static pipe_job j;
  memset(&j, 0, sizeof j);
  j.io = mk(b);
  KT_EQ(pipe(j.fds), 0);
  kiln_pool *p = one_worker();
  kiln_future *fs[2] = {NULL, NULL};
  KT_CODE(kiln_fiber_spawn(p, reader, &j, 0, &fs[0]), 0);
  KT_CODE(kiln_fiber_spawn(p, writer, &j, 0, &fs[1]), 0);
  size_t ndone = 0;
  int rc = kiln_wait(fs, 2, KILN_ALL_COMPLETED, 20.0, &ndone);
  if (rc == KILN_ETIMEDOUT) {
    KT_EQ(write(j.fds[1], "hello", 5), 5); /* unblocks a reader that held the worker */
    KT_FAIL("the reader blocked the pool's only worker");
  }
  KT_CODE(rc, 0);
  KT_CODE(kiln_future_result(fs[0], 0, NULL), 0);
  KT_CODE(kiln_future_result(fs[1], 0, NULL), 0);
  KT_EQ(j.n, 5);
  KT_TRUE(memcmp(j.got, "hello", 5) == 0);
  KT_TRUE(atomic_load(&j.writer_ran));
  kiln_future_release(fs[0]);
  kiln_future_release(fs[1]);
  kiln_pool_destroy(p);
  close(j.fds[0]);
  close(j.fds[1]);
  kiln_io_destroy(j.io);
}

TEST(read_suspends_the_fiber_uring) { read_suspends(KILN_IO_BACKEND_URING); }
TEST(read_suspends_the_fiber_poller) { read_suspends(KILN_IO_BACKEND_POLLER); }

/* ---- gevent's kill of a greenlet blocked in recv ------------------------------------------------ */

typedef struct recv_job {
  kiln_io *io;
  int sv[2];
  char buf[16]; /* the killed recv's buffer: never written */
  atomic_int started;
  int rc;
} recv_job;

static int blocked_recv(void *arg, void **result) {
  (void)result;
  recv_job *j = arg;
  atomic_store(&j->started, 1);
  size_t n = 0;
  j->rc = kiln_io_recv(j->io, j->sv[0], j->buf, sizeof j->buf, 0, -1, &n);
  return j->rc;
}

static void kill_in_recv(kiln_io_backend b) {
  static recv_job j;
  memset(&j, 0, sizeof j);
  memset(j.buf, 'x', sizeof j.buf);
  j.io = mk(b);
  KT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, j.sv), 0);
  kiln_pool *p = one_worker();
  kiln_future *f = NULL;
  KT_CODE(kiln_fiber_spawn(p, blocked_recv, &j, 0, &f), 0);
  while (!atomic_load(&j.started)) sched_yield();
  KT_CODE(kiln_fiber_kill(f, true, 20.0), 0);
  KT_CODE(j.rc, KILN_ECANCELLED);
  KT_TRUE(kiln_future_cancelled(f));
  /* the cancelled recv took nothing and writes nothing: the data goes to the next reader */
  KT_EQ(send(j.sv[1], "data", 4, 0), 4);
  char got[8] = {0};
  size_t n = 0;
  KT_CODE(kiln_io_recv(j.io, j.sv[0], got, sizeof got, 0, 10.0, &n), 0);
  KT_EQ(n, 4);
  KT_TRUE(memcmp(got, "data", 4) == 0);
  for (size_t i = 0; i < sizeof j.buf; i++) KT_EQ(j.buf[i], 'x');
  kiln_future_release(f);
  kiln_pool_destroy(p);
  close(j.sv[0]);
  close(j.sv[1]);
  kiln_io_destroy(j.io);
}

TEST(kill_fiber_blocked_in_recv_uring) { kill_in_recv(KILN_IO_BACKEND_URING); }
TEST(kill_fiber_blocked_in_recv_poller) { kill_in_recv(KILN_IO_BACKEND_POLLER); }

/* ---- a completion that arrives while the submitting worker sleeps ------------------------------ */

typedef struct idle_job {
  kiln_io *io;
  int sv[2];
  char got[8];
  size_t n;
  atomic_int tid; /* the worker that submitted the recv */
  int rc;
} idle_job;

static int idle_recv(void *arg, void **result) {
  (void)result;
  idle_job *j = arg;
  atomic_store(&j->tid, (int)gettid());
  j->rc = kiln_io_recv(j->io, j->sv[0], j->got, 4, 0, -1, &j->n);
  return j->rc;
}

/* Whether thread tid of this process is asleep (state S in its stat line). */
static bool thread_sleeps(int tid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
  FILE *fp = fopen(path, "r");
  if (!fp) return false;
  bool s = false;
  if (fgets(line, sizeof line, fp)) {
    const char *rp = strrchr(line, ')');
    s = rp && rp[1] == ' ' && rp[2] == 'S';
  }
  fclose(fp);
  return s;
}

/* The data comes from outside the pool once the only worker has gone to sleep with nothing to
 * run: the recv's completion must reach the fiber without that worker making a system call. */
static void completion_while_worker_sleeps(kiln_io_backend b) {
  static idle_job j;
  memset(&j, 0, sizeof j);
  j.io = mk(b);
  KT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, j.sv), 0);
  kiln_pool *p = one_worker();
  kiln_future *f = NULL;
  KT_CODE(kiln_fiber_spawn(p, idle_recv, &j, 0, &f), 0);
  while (!atomic_load(&j.tid)) sched_yield();
  /* a sleeping worker stays asleep: several looks in a row rule out a passing block */
  for (int seen = 0; seen < 50;) seen = thread_sleeps(atomic_load(&j.tid)) ? seen + 1 : 0;
  KT_EQ(send(j.sv[1], "data", 4, 0), 4);
  int rc = kiln_future_result(f, 10.0, NULL);
  if (rc == KILN_ETIMEDOUT) KT_FAIL("the recv's completion waited for its sleeping worker");
  KT_CODE(rc, 0);
  KT_EQ(j.n, 4);
  KT_TRUE(memcmp(j.got, "data", 4) == 0);
  kiln_future_release(f);
  kiln_pool_destroy(p);
  close(j.sv[0]);
  close(j.sv[1]);
  kiln_io_destroy(j.io);
}

TEST(completion_while_worker_sleeps_uring) {
  completion_while_worker_sleeps(KILN_IO_BACKEND_URING);
}
TEST(completion_while_worker_sleeps_poller) {
  completion_while_worker_sleeps(KILN_IO_BACKEND_POLLER);
}

/* ---- a kill that the I/O call takes but does not report --------------------------------------- */

typedef struct kept_job {
  kiln_io *io;
  int fds[2];
  char got[8];
  size_t n;
  atomic_int in, go;
  int rc_read, rc_sleep;
} kept_job;

static int killed_reader(void *arg, void **result) {
  (void)result;
  kept_job *j = arg;
  atomic_store(&j->in, 1);
  while (!atomic_load(&j->go)) {} /* no wait of its own: the kill stays pending */
  j->rc_read = kiln_io_read(j->io, j->fds[0], j->got, 4, &j->n);
  j->rc_sleep = kiln_sleep(INFINITY); /* only a kill ends it */
  return 0;
}

/* The fiber is killed just before a read whose data is already there. The read may report the
 * kill (KILN_ECANCELLED) or its bytes; if it reports the bytes, the kill must still reach the
 * fiber's next wait instead of being lost. */
static void kill_kept_by_io(kiln_io_backend b) {
  static kept_job j;
  memset(&j, 0, sizeof j);
  j.io = mk(b);
  KT_EQ(pipe(j.fds), 0);
  KT_EQ(write(j.fds[1], "data", 4), 4);
  kiln_pool *p = one_worker();
  kiln_future *f = NULL;
  KT_CODE(kiln_fiber_spawn(p, killed_reader, &j, 0, &f), 0);
  while (!atomic_load(&j.in)) sched_yield();
  KT_CODE(kiln_fiber_kill(f, false, 0), 0);
  atomic_store(&j.go, 1);
  int rc = kiln_future_result(f, 10.0, NULL);
  if (rc == KILN_ETIMEDOUT) KT_FAIL("the kill was lost: the fiber still sleeps");
  KT_CODE(rc, 0);
  if (j.rc_read != KILN_ECANCELLED) {
    KT_CODE(j.rc_read, 0);
    KT_EQ(j.n, 4);
    KT_TRUE(memcmp(j.got, "data", 4) == 0);
  }
  KT_CODE(j.rc_sleep, KILN_ECANCELLED);
  kiln_future_release(f);
  kiln_pool_destroy(p);
  close(j.fds[0]);
  close(j.fds[1]);
  kiln_io_destroy(j.io);
}

TEST(kill_not_lost_when_io_completes_first_uring) { kill_kept_by_io(KILN_IO_BACKEND_URING); }
TEST(kill_not_lost_when_io_completes_first_poller) { kill_kept_by_io(KILN_IO_BACKEND_POLLER); }
