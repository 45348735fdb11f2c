/* test_process.c: kiln_process_* and the fork server (multiprocessing.Process): start, join,
 * exit codes, signals, is_alive, daemons and orphans, descriptors, many threads at once.
 *
 * Every test that uses the fork server starts it first, while the test process is still
 * single-threaded. Children hand-shake over channels; nothing sleeps to synchronise. */
// kt: timeout 60
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kiln/sched.h"
#include "kiln/proc.h"
#include "kiln/sync.h"
#include "kt.h"

/* ---- helpers -------------------------------------------------------------------------------- */

static kiln_process *start_with(kiln_start_method m, kiln_process_fn fn, const void *arg,
                                size_t len, kiln_channel *const *chs, size_t n, bool daemon) {
  kiln_process_config cfg;
  kiln_process_config_default(&cfg);
  cfg.start = m;
  cfg.daemon = daemon;
  cfg.channels = chs;
  cfg.nchannels = n;
  kiln_process *p = NULL;
  KT_CODE(kiln_process_start(&cfg, fn, arg, len, &p), 0);
  KT_TRUE(p != NULL);
  return p;
}

static kiln_process *start(kiln_start_method m, kiln_process_fn fn) {
  return start_with(m, fn, NULL, 0, NULL, 0, false);
}

static int exitcode_of(kiln_process *p) {
  KT_CODE(kiln_process_join(p, -1), 0);
  int code = 12345;
  KT_CODE(kiln_process_exitcode(p, &code), 0);
  return code;
}

static void fs_start(void) {
  KT_CODE(kiln_forkserver_start(), 0);
  KT_TRUE(kiln_forkserver_running());
}

/* A pidfd of any process, to wait for it without being its parent. */
static int pidfd_of(int pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

/* Waits (bounded) until the process behind pidfd has ended. */
static void wait_gone(int pidfd) {
  struct pollfd p = {.fd = pidfd, .events = POLLIN};
  KT_EQ(poll(&p, 1, 20000), 1);
}

static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  KT_TRUE(d != NULL);
  int n = 0;
  while (readdir(d)) n++;
  closedir(d);
  return n;
}

/* ---- child functions ------------------------------------------------------------------------ */

static int ret3(const void *arg, size_t len) {
  (void)arg;
  return len == 0 && arg == NULL ? 3 : 1;
}

static int check_arg(const void *arg, size_t len) {
  return len == 6 && memcmp(arg, "hello", 6) == 0 ? 7 : 1;
}

static int segv(const void *arg, size_t len) {
  (void)arg, (void)len;
  raise(SIGSEGV);
  return 0;
}

static int calls_exit(const void *arg, size_t len) {
  (void)arg, (void)len;
  exit(9);
}

/* Says "ready" on channel 0, then blocks until the channel ends. */
static int ready_then_block(const void *arg, size_t len) {
  (void)arg, (void)len;
  kiln_channel *ch = kiln_process_channel(0);
  if (!ch || kiln_channel_send(ch, "ready", 5, -1) != 0) return 100;
  void *buf;
  size_t n;
  while (kiln_channel_recv(ch, &buf, &n, -1) == 0) free(buf);
  return 0;
}

/* A child blocked until killed: the parent's end of its channel, and the handle. */
typedef struct blocked {
  kiln_process *p;
  kiln_channel *mine;
} blocked;

static blocked start_blocked(kiln_start_method m) {
  kiln_channel *a, *b;
  KT_CODE(kiln_channel_pair(true, &a, &b), 0);
  blocked r = {start_with(m, ready_then_block, NULL, 0, &b, 1, false), a};
  kiln_channel_destroy(b);
  void *buf = NULL;
  size_t n = 0;
  KT_CODE(kiln_channel_recv(a, &buf, &n, 20), 0);
  KT_EQ(n, 5);
  free(buf);
  return r;
}

/* ---- start, join, exit codes ---------------------------------------------------------------- */

static void check_exit_codes(kiln_start_method m) {
  kiln_process *p = start(m, ret3);
  KT_TRUE(kiln_process_pid(p) > 0);
  KT_EQ(exitcode_of(p), 3);
  KT_FALSE(kiln_process_is_alive(p));
  KT_CODE(kiln_process_join(p, 0), 0); /* joining again is fine */
  kiln_process_destroy(p);

  p = start_with(m, check_arg, "hello", 6, NULL, 0, false);
  KT_EQ(exitcode_of(p), 7);
  kiln_process_destroy(p);

  p = start(m, segv);
  KT_EQ(exitcode_of(p), -SIGSEGV);
  kiln_process_destroy(p);

  p = start(m, calls_exit);
  KT_EQ(exitcode_of(p), 9);
  kiln_process_destroy(p);
  kiln_process_destroy(NULL);
}

TEST(PROC_exit_codes_fork) { check_exit_codes(KILN_START_FORK); }

TEST(PROC_exit_codes_forkserver) {
  fs_start();
  check_exit_codes(KILN_START_FORKSERVER);
  kiln_forkserver_stop();
  KT_FALSE(kiln_forkserver_running());
  kiln_forkserver_stop(); /* idempotent */
}

static void check_signals(kiln_start_method m) {
  blocked b = start_blocked(m);
  KT_TRUE(kiln_process_is_alive(b.p));
  int code = 0;
  KT_CODE(kiln_process_exitcode(b.p, &code), KILN_ESTATE);
  double t0 = kt_now();
  KT_CODE(kiln_process_join(b.p, 0.1), KILN_ETIMEDOUT);
  KT_TIMED(kt_now() - t0, 0.1);
  KT_CODE(kiln_process_kill(b.p), 0);
  KT_EQ(exitcode_of(b.p), -SIGKILL);
  KT_CODE(kiln_process_kill(b.p), 0); /* no effect once ended */
  KT_CODE(kiln_process_terminate(b.p), 0);
  kiln_process_destroy(b.p);
  kiln_channel_destroy(b.mine);

  b = start_blocked(m);
  KT_CODE(kiln_process_terminate(b.p), 0);
  KT_EQ(exitcode_of(b.p), -SIGTERM);
  kiln_process_destroy(b.p);
  kiln_channel_destroy(b.mine);
}

TEST(PROC_kill_terminate_join_timeout_fork) { check_signals(KILN_START_FORK); }

TEST(PROC_kill_terminate_join_timeout_forkserver) {
  fs_start();
  check_signals(KILN_START_FORKSERVER);
}

/* The child's channel ends when the parent closes its end: the child returns 0. */
static void check_eof_ends_child(kiln_start_method m) {
  blocked b = start_blocked(m);
  kiln_channel_destroy(b.mine);
  KT_EQ(exitcode_of(b.p), 0);
  kiln_process_destroy(b.p);
}

TEST(PROC_child_sees_eof_fork) { check_eof_ends_child(KILN_START_FORK); }

TEST(PROC_child_sees_eof_forkserver) {
  fs_start();
  check_eof_ends_child(KILN_START_FORKSERVER);
}

TEST(PROC_forkserver_not_running_is_estate) {
  KT_FALSE(kiln_forkserver_running());
  kiln_process_config cfg;
  kiln_process_config_default(&cfg);
  KT_EQ(cfg.start, KILN_START_FORKSERVER);
  kiln_process *p = (kiln_process *)&cfg;
  KT_CODE(kiln_process_start(&cfg, ret3, NULL, 0, &p), KILN_ESTATE);
  KT_TRUE(p == NULL);
  KT_CODE(kiln_process_start(NULL, ret3, NULL, 0, &p), KILN_EINVAL);
  KT_CODE(kiln_process_start(&cfg, NULL, NULL, 0, &p), KILN_EINVAL);
  fs_start();
  KT_CODE(kiln_forkserver_start(), 0); /* idempotent */
  p = start(KILN_START_FORKSERVER, ret3);
  KT_EQ(exitcode_of(p), 3);
  kiln_process_destroy(p);
}

/* ---- daemons and orphans -------------------------------------------------------------------- */

/* Reports its pid on channel 0, then blocks until killed (it holds no end the test closes). */
static int report_and_block(const void *arg, size_t len) {
  (void)arg, (void)len;
  int pid = getpid();
  if (kiln_channel_send(kiln_process_channel(0), &pid, sizeof pid, -1) != 0) return 100;
  for (;;) pause();
}

/* The "middle" program: starts the fork server and three children of each method that report
 * their pids on channel 0 (arg: daemon or not), then says "done!" and blocks until killed. */
static int middle(const void *arg, size_t len) {
  (void)len;
  bool daemon = *(const bool *)arg;
  kiln_channel *out = kiln_process_channel(0);
  if (kiln_forkserver_start() != 0) return 101;
  for (int i = 0; i < 6; i++) {
    kiln_process_config cfg;
    kiln_process_config_default(&cfg);
    cfg.start = i % 2 ? KILN_START_FORK : KILN_START_FORKSERVER;
    cfg.daemon = daemon;
    cfg.channels = &out;
    cfg.nchannels = 1;
    kiln_process *p;
    if (kiln_process_start(&cfg, report_and_block, NULL, 0, &p) != 0) return 102;
    kiln_process_destroy(p); /* it runs on */
  }
  if (kiln_channel_send(out, "done!", 5, -1) != 0) return 103;
  for (;;) pause();
}

/* Starts a middle program, collects the pids of its six children (pidfds), kills the middle. */
static void run_middle(bool daemon, int *pidfds) {
  kiln_channel *a, *b;
  KT_CODE(kiln_channel_pair(false, &a, &b), 0);
  kiln_process *mid = start_with(KILN_START_FORK, middle, &daemon, sizeof daemon, &b, 1, false);
  kiln_channel_destroy(b);
  /* six pids and "done!", in any order: the children report while the middle goes on */
  for (int got = 0, done = 0; got < 6 || !done;) {
    void *buf = NULL;
    size_t n = 0;
    KT_CODE(kiln_channel_recv(a, &buf, &n, 20), 0);
    if (n == 5) {
      done = 1;
    } else {
      KT_EQ(n, sizeof(int));
      int pid;
      memcpy(&pid, buf, sizeof pid);
      pidfds[got] = pidfd_of(pid);
      if (pidfds[got] < 0) KT_FAIL("pidfd_open(%d): %s", pid, strerror(errno));
      got++;
    }
    free(buf);
  }
  kiln_channel_destroy(a);
  KT_CODE(kiln_process_kill(mid), 0);
  KT_EQ(exitcode_of(mid), -SIGKILL);
  kiln_process_destroy(mid);
}

/* Daemon children die with the program that started them, whichever the start method: no
 * orphans are left once it is killed. */
TEST(PROC_daemon_children_die_with_their_program) {
  int pidfds[6];
  run_middle(true, pidfds);
  for (int i = 0; i < 6; i++) {
    wait_gone(pidfds[i]);
    close(pidfds[i]);
  }
}

/* Non-daemon children outlive the program that started them (as in Python); the test kills
 * them itself. */
TEST(PROC_non_daemon_children_outlive_their_program) {
  int pidfds[6];
  run_middle(false, pidfds);
  for (int i = 0; i < 6; i++) {
    struct pollfd p = {.fd = pidfds[i], .events = POLLIN};
    KT_EQ(poll(&p, 1, 0), 0); /* still running */
    KT_EQ(syscall(SYS_pidfd_send_signal, pidfds[i], SIGKILL, NULL, 0), 0);
    wait_gone(pidfds[i]);
    close(pidfds[i]);
  }
}

/* ---- descriptors, threads, the server's signals --------------------------------------------- */

static int echo_once(const void *arg, size_t len) {
  (void)arg, (void)len;
  kiln_channel *ch = kiln_process_channel(0);
  void *buf;
  size_t n;
  if (kiln_channel_recv(ch, &buf, &n, -1) != 0) return 100;
  int rc = kiln_channel_send(ch, buf, n, -1);
  free(buf);
  return rc == 0 ? (int)n : 101;
}

static void round_trip(kiln_start_method m, int i) {
  kiln_channel *a, *b;
  KT_CODE(kiln_channel_pair(true, &a, &b), 0);
  kiln_process *p = start_with(m, echo_once, NULL, 0, &b, 1, i % 2 == 0);
  kiln_channel_destroy(b);
  char msg[64];
  int len = snprintf(msg, sizeof msg, "message %d", i);
  KT_CODE(kiln_channel_send(a, msg, (size_t)len, -1), 0);
  void *buf = NULL;
  size_t n = 0;
  KT_CODE(kiln_channel_recv(a, &buf, &n, 20), 0);
  KT_EQ(n, len);
  KT_TRUE(memcmp(buf, msg, n) == 0);
  free(buf);
  KT_EQ(exitcode_of(p), len);
  kiln_process_destroy(p);
  kiln_channel_destroy(a);
}

/* Starting and joining 200 children with channels leaves no descriptor behind. */
TEST(PROC_no_descriptor_leaks) {
  fs_start();
  int before = count_fds();
  for (int i = 0; i < 200; i++) round_trip(i % 2 ? KILN_START_FORK : KILN_START_FORKSERVER, i);
  KT_EQ(count_fds(), before);
}

enum { THREADS = 8, PER_THREAD = 12 };
static int g_pids[THREADS * PER_THREAD];

static int ret_arg(const void *arg, size_t len) {
  return len == 1 ? *(const unsigned char *)arg : 1;
}

static void *starter(void *arg) {
  int t = (int)(intptr_t)arg;
  for (int i = 0; i < PER_THREAD; i++) {
    unsigned char code = (unsigned char)(t * PER_THREAD + i);
    kiln_process *p = start_with(KILN_START_FORKSERVER, ret_arg, &code, 1, NULL, 0, false);
    g_pids[t * PER_THREAD + i] = kiln_process_pid(p);
    KT_EQ(exitcode_of(p), code);
    kiln_process_destroy(p);
  }
  return NULL;
}

/* Children started through the fork server from 8 threads at once: distinct pids, right codes. */
TEST(PROC_forkserver_many_threads) {
  fs_start();
  pthread_t th[THREADS];
  for (int t = 0; t < THREADS; t++)
    KT_EQ(pthread_create(&th[t], NULL, starter, (void *)(intptr_t)t), 0);
  for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
  for (int i = 0; i < THREADS * PER_THREAD; i++)
    for (int j = 0; j < i; j++) KT_NE(g_pids[i], g_pids[j]);
}

static int send_ppid(const void *arg, size_t len) {
  (void)arg, (void)len;
  int ppid = getppid();
  return kiln_channel_send(kiln_process_channel(0), &ppid, sizeof ppid, -1) == 0 ? 0 : 100;
}

/* The fork server ignores SIGINT and SIGTERM (a Ctrl-C to the process group is the program's
 * business) and goes on serving; its children do not inherit the ignoring. */
TEST(PROC_forkserver_ignores_sigint) {
  fs_start();
  kiln_channel *a, *b;
  KT_CODE(kiln_channel_pair(false, &a, &b), 0);
  kiln_process *p = start_with(KILN_START_FORKSERVER, send_ppid, NULL, 0, &b, 1, false);
  void *buf = NULL;
  size_t n = 0;
  KT_CODE(kiln_channel_recv(a, &buf, &n, 20), 0);
  int server;
  memcpy(&server, buf, sizeof server);
  free(buf);
  KT_EQ(exitcode_of(p), 0);
  kiln_process_destroy(p);
  KT_NE(server, getpid());
  KT_EQ(kill(server, SIGINT), 0);
  KT_EQ(kill(server, SIGTERM), 0);
  KT_TRUE(kiln_forkserver_running());
  p = start_with(KILN_START_FORKSERVER, send_ppid, NULL, 0, &b, 1, false);
  KT_CODE(kiln_channel_recv(a, &buf, &n, 20), 0);
  int again;
  memcpy(&again, buf, sizeof again);
  free(buf);
  KT_EQ(again, server);
  KT_EQ(exitcode_of(p), 0);
  kiln_process_destroy(p);
  /* children get the default SIGTERM back */
  blocked bl = start_blocked(KILN_START_FORKSERVER);
  KT_EQ(kill(kiln_process_pid(bl.p), SIGTERM), 0);
  KT_EQ(exitcode_of(bl.p), -SIGTERM);
  kiln_process_destroy(bl.p);
  kiln_channel_destroy(bl.mine);
  kiln_channel_destroy(a);
  kiln_channel_destroy(b);
}

/* A running FORK child whose handle is destroyed goes on, and kiln reaps it once it ends. */
TEST(PROC_destroyed_running_child_is_reaped) {
  blocked b = start_blocked(KILN_START_FORK);
  int pidfd = pidfd_of(kiln_process_pid(b.p));
  KT_TRUE(pidfd >= 0);
  kiln_process_destroy(b.p);
  struct pollfd pf = {.fd = pidfd, .events = POLLIN};
  KT_EQ(poll(&pf, 1, 0), 0);    /* still running */
  kiln_channel_destroy(b.mine); /* its channel ends: it returns */
  wait_gone(pidfd);
  /* ended; now reaped by kiln's reaper: only the moment between the two is left to a loop */
  siginfo_t si;
  double t0 = kt_now();
  while (waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG | WNOWAIT) == 0) {
    if (kt_now() - t0 > 20) KT_FAIL("the child was not reaped");
    sched_yield();
  }
  KT_EQ(errno, ECHILD);
  close(pidfd);
}


/* ---- what a child sees ---------------------------------------------------------------------- */

typedef struct fd_probe {
  int closed_fd; /* a descriptor the parent holds without close-on-exec */
  char name[16]; /* the name the child should have */
} fd_probe;

/* 0 when the child does not have the parent's descriptor, has its standard streams and is
 * named as asked; a code saying what is wrong otherwise. */
static int probe_child(const void *arg, size_t len) {
  if (len != sizeof(fd_probe)) return 100;
  const fd_probe *pr = arg;
  if (fcntl(pr->closed_fd, F_GETFD) != -1 || errno != EBADF) return 101;
  for (int fd = 0; fd < 3; fd++)
    if (fcntl(fd, F_GETFD) == -1) return 102;
  FILE *f = fopen("/proc/self/comm", "r");
  char comm[32] = {0};
  if (!f || !fgets(comm, sizeof comm, f)) return 104;
  fclose(f);
  comm[strcspn(comm, "\n")] = 0;
  return strcmp(comm, pr->name) == 0 ? 0 : 105;
}

static void check_child_view(kiln_start_method m) {
  int p[2];
  KT_EQ(pipe(p), 0); /* no close-on-exec: only kiln's closing keeps it from the child */
  fd_probe pr = {.closed_fd = p[1]};
  kiln_process_config cfg;
  kiln_process_config_default(&cfg);
  cfg.start = m;
  for (int named = 0; named < 2; named++) {
    snprintf(pr.name, sizeof pr.name, "%s", named ? "kiln-test-name" : "kiln-proc");
    cfg.name = named ? "kiln-test-name" : NULL;
    kiln_process *c = NULL;
    KT_CODE(kiln_process_start(&cfg, probe_child, &pr, sizeof pr, &c), 0);
    KT_EQ(exitcode_of(c), 0);
    kiln_process_destroy(c);
  }
  close(p[0]);
  close(p[1]);
}

TEST(PROC_child_sees_only_its_channels_and_its_name_fork) { check_child_view(KILN_START_FORK); }

TEST(PROC_child_sees_only_its_channels_and_its_name_forkserver) {
  fs_start();
  check_child_view(KILN_START_FORKSERVER);
}

enum { BIG_ARG = 3 << 20 };

static int check_big_arg(const void *arg, size_t len) {
  if (len != BIG_ARG) return 100;
  for (size_t i = 0; i < len; i++)
    if (((const unsigned char *)arg)[i] != (unsigned char)(i * 7 + 1)) return 101;
  return 8;
}

/* The argument bytes arrive whole, however many (they cross the fork server's socket). */
TEST(PROC_big_argument) {
  fs_start();
  unsigned char *arg = malloc(BIG_ARG);
  KT_TRUE(arg != NULL);
  for (size_t i = 0; i < BIG_ARG; i++) arg[i] = (unsigned char)(i * 7 + 1);
  for (int m = 0; m < 2; m++) {
    kiln_process *p = start_with(m ? KILN_START_FORK : KILN_START_FORKSERVER, check_big_arg, arg,
                                 BIG_ARG, NULL, 0, false);
    KT_EQ(exitcode_of(p), 8);
    kiln_process_destroy(p);
  }
  free(arg);
}

/* Sends its parent's pid (the fork server's) as the hand-shake, then blocks until its channel
 * ends. */
static int ppid_then_block(const void *arg, size_t len) {
  (void)arg, (void)len;
  kiln_channel *ch = kiln_process_channel(0);
  int ppid = getppid();
  if (kiln_channel_send(ch, &ppid, sizeof ppid, -1) != 0) return 100;
  void *buf;
  size_t n;
  while (kiln_channel_recv(ch, &buf, &n, -1) == 0) free(buf);
  return 0;
}

static blocked start_ppid_child(bool daemon, int *server) {
  kiln_channel *a, *b;
  KT_CODE(kiln_channel_pair(true, &a, &b), 0);
  blocked r = {start_with(KILN_START_FORKSERVER, ppid_then_block, NULL, 0, &b, 1, daemon), a};
  kiln_channel_destroy(b);
  void *buf = NULL;
  size_t n = 0;
  KT_CODE(kiln_channel_recv(a, &buf, &n, 20), 0);
  KT_EQ(n, sizeof(int));
  memcpy(server, buf, sizeof *server);
  free(buf);
  return r;
}

/* The fork server killed by hand: its daemon children die with it, the others run on; their
 * handles still join (with the exit status lost: 255), and a new server can be started. */
TEST(PROC_forkserver_killed) {
  fs_start();
  int server, again;
  blocked d = start_ppid_child(true, &server);
  blocked n = start_ppid_child(false, &again);
  KT_EQ(again, server);
  int sfd = pidfd_of(server);
  KT_TRUE(sfd >= 0);
  KT_EQ(kill(server, SIGKILL), 0);
  wait_gone(sfd);
  close(sfd);
  KT_FALSE(kiln_forkserver_running());
  kiln_process_config cfg;
  kiln_process_config_default(&cfg);
  kiln_process *p = NULL;
  KT_CODE(kiln_process_start(&cfg, ret3, NULL, 0, &p), KILN_ESTATE);
  KT_EQ(exitcode_of(d.p), 255);
  KT_TRUE(kiln_process_is_alive(n.p));
  kiln_channel_destroy(n.mine);
  KT_EQ(exitcode_of(n.p), 255);
  kiln_process_destroy(d.p);
  kiln_process_destroy(n.p);
  kiln_channel_destroy(d.mine);
  fs_start();
  p = start(KILN_START_FORKSERVER, ret3);
  KT_EQ(exitcode_of(p), 3);
  kiln_process_destroy(p);
}

/* ---- several threads on one handle ---------------------------------------------------------- */

static kiln_process *g_shared;
static atomic_int g_joined;

static void *joiner(void *arg) {
  (void)arg;
  if (kiln_process_join(g_shared, -1) == 0) atomic_fetch_add(&g_joined, 1);
  int code = 0;
  if (kiln_process_exitcode(g_shared, &code) != 0 || code != -SIGKILL)
    atomic_fetch_add(&g_joined, 100);
  return NULL;
}

static void *prober(void *arg) {
  (void)arg;
  while (kiln_process_is_alive(g_shared)) sched_yield();
  atomic_fetch_add(&g_joined, 1);
  return NULL;
}

/* Several threads join and probe one process at once: every one sees it end, with its code. */
static void check_many_joiners(kiln_start_method m) {
  enum { J = 4 };
  blocked b = start_blocked(m);
  g_shared = b.p;
  atomic_store(&g_joined, 0);
  pthread_t th[2 * J];
  for (int i = 0; i < 2 * J; i++)
    KT_EQ(pthread_create(&th[i], NULL, i < J ? joiner : prober, NULL), 0);
  KT_CODE(kiln_process_kill(b.p), 0);
  for (int i = 0; i < 2 * J; i++) pthread_join(th[i], NULL);
  KT_EQ(atomic_load(&g_joined), 2 * J);
  kiln_process_destroy(b.p);
  kiln_channel_destroy(b.mine);
}

TEST(PROC_many_joiners_fork) { check_many_joiners(KILN_START_FORK); }

TEST(PROC_many_joiners_forkserver) {
  fs_start();
  check_many_joiners(KILN_START_FORKSERVER);
}

/* ---- a child started from inside a pool task ------------------------------------------------ */

static int not_a_worker(const void *arg, size_t len) {
  (void)arg, (void)len;
  return kiln_pool_current() == NULL ? 0 : 42;
}

static int task_starts_child(void *arg, void **result) {
  kiln_process_config cfg;
  kiln_process_config_default(&cfg);
  cfg.start = (kiln_start_method)(intptr_t)arg;
  kiln_process *p;
  int rc = kiln_process_start(&cfg, not_a_worker, NULL, 0, &p);
  if (rc) return rc;
  int code = -1;
  kiln_process_join(p, -1);
  kiln_process_exitcode(p, &code);
  kiln_process_destroy(p);
  *result = (void *)(intptr_t)code;
  return 0;
}

/* A child forked from inside a task (FORK) is not a worker of its parent's pool. */
TEST(PROC_child_of_a_task_is_no_worker) {
  fs_start();
  kiln_pool_config pc;
  kiln_pool_config_default(&pc);
  pc.threads = 2;
  kiln_pool *pool;
  KT_CODE(kiln_pool_create(&pc, &pool), 0);
  for (int m = 0; m < 2; m++) {
    void *result = (void *)(intptr_t)99;
    KT_CODE(kiln_pool_apply(pool, task_starts_child, (void *)(intptr_t)m, &result), 0);
    KT_EQ((intptr_t)result, 0);
  }
  kiln_pool_destroy(pool);
}

/* ---- output and threads --------------------------------------------------------------------- */

static int prints(const void *arg, size_t len) {
  (void)arg, (void)len;
  printf("child\n");
  return 0;
}

/* What the program printed (unflushed) before a fork is written once, not again by every child:
 * stdout is a fully buffered pipe here, as under a pipeline or CI. */
TEST(PROC_output_is_written_once) {
  static char buf[4096];
  setvbuf(stdout, buf, _IOFBF, sizeof buf);
  int p[2];
  KT_EQ(pipe(p), 0);
  int saved = dup(1);
  KT_EQ(dup2(p[1], 1), 1);
  printf("before\n");
  KT_CODE(kiln_forkserver_start(), 0); /* the server takes a copy of the buffer */
  printf("between\n");
  for (int m = 0; m < 2; m++) {
    kiln_process *c = start(m ? KILN_START_FORK : KILN_START_FORKSERVER, prints);
    KT_EQ(exitcode_of(c), 0);
    kiln_process_destroy(c);
  }
  fflush(stdout);
  KT_EQ(dup2(saved, 1), 1);
  close(saved);
  close(p[1]);
  /* the server still holds the pipe as its stdout: read what is there, without waiting for EOF */
  KT_EQ(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
  char out[256] = {0};
  ssize_t n = read(p[0], out, sizeof out - 1);
  KT_TRUE(n > 0);
  close(p[0]);
  setvbuf(stdout, NULL, _IOLBF, 0);
  /* "between" waits in the buffer until the FORK start flushes it */
  KT_STR_EQ(out, "before\nchild\nbetween\nchild\n");
}

static blocked g_from_thread;

static void *start_daemon_then_exit(void *arg) {
  (void)arg;
  kiln_channel *a, *b;
  KT_CODE(kiln_channel_pair(true, &a, &b), 0);
  g_from_thread.p = start_with(KILN_START_FORKSERVER, ready_then_block, NULL, 0, &b, 1, true);
  g_from_thread.mine = a;
  kiln_channel_destroy(b);
  void *buf = NULL;
  size_t n = 0;
  KT_CODE(kiln_channel_recv(a, &buf, &n, 20), 0); /* it has armed its death signal */
  free(buf);
  return NULL;
}

/* A daemon fork-server child started from a thread that then ends lives on: its parent is the
 * server, which lives as long as the program. */
TEST(PROC_daemon_outlives_the_thread_that_started_it) {
  fs_start();
  pthread_t t;
  KT_EQ(pthread_create(&t, NULL, start_daemon_then_exit, NULL), 0);
  KT_EQ(pthread_join(t, NULL), 0);
  KT_CODE(kiln_process_join(g_from_thread.p, 0.05), KILN_ETIMEDOUT);
  KT_TRUE(kiln_process_is_alive(g_from_thread.p));
  KT_CODE(kiln_process_kill(g_from_thread.p), 0);
  KT_EQ(exitcode_of(g_from_thread.p), -SIGKILL);
  kiln_process_destroy(g_from_thread.p);
  kiln_channel_destroy(g_from_thread.mine);
}

/* ---- argument checks; a program without standard input -------------------------------------- */

TEST(PROC_bad_arguments) {
  fs_start();
  kiln_process_config cfg;
  kiln_process_config_default(&cfg);
  kiln_process *p = NULL;
  KT_CODE(kiln_process_start(&cfg, ret3, NULL, 1, &p), KILN_EINVAL); /* bytes without a pointer */
  KT_CODE(kiln_process_start(&cfg, ret3, NULL, 0, NULL), KILN_EINVAL);
  cfg.start = (kiln_start_method)7;
  KT_CODE(kiln_process_start(&cfg, ret3, NULL, 0, &p), KILN_EINVAL);
  enum { MANY = 65 }; /* one more than a child may be given */
  kiln_channel *chs[MANY], *peers[MANY];
  for (int i = 0; i < MANY; i++) KT_CODE(kiln_channel_pair(true, &chs[i], &peers[i]), 0);
  cfg.channels = chs;
  cfg.nchannels = MANY;
  for (int m = 0; m < 2; m++) {
    cfg.start = m ? KILN_START_FORK : KILN_START_FORKSERVER;
    KT_CODE(kiln_process_start(&cfg, ret3, NULL, 0, &p), KILN_EINVAL);
    cfg.nchannels = MANY - 1; /* the most: fine */
    p = start_with(cfg.start, ret3, NULL, 0, chs, MANY - 1, false);
    KT_EQ(exitcode_of(p), 3);
    kiln_process_destroy(p);
    cfg.nchannels = MANY;
  }
  cfg.channels = NULL;
  KT_CODE(kiln_process_start(&cfg, ret3, NULL, 0, &p), KILN_EINVAL);
  for (int i = 0; i < MANY; i++) {
    kiln_channel_destroy(chs[i]);
    kiln_channel_destroy(peers[i]);
  }
  int code;
  KT_CODE(kiln_process_join(NULL, 0), KILN_EINVAL);
  KT_CODE(kiln_process_exitcode(NULL, &code), KILN_EINVAL);
  KT_EQ(kiln_process_pid(NULL), -1);
  KT_EQ(kiln_process_sentinel(NULL), -1);
}

/* 0 when fd 0 is not a socket (the fork server's must not show through as a standard stream). */
static int stdin_not_a_socket(const void *arg, size_t len) {
  (void)arg, (void)len;
  struct stat st;
  if (fstat(0, &st) != 0) return 0; /* closed is fine too */
  return S_ISSOCK(st.st_mode) ? 1 : 0;
}

/* A program that closed its standard input starts the fork server (whose socket could then take
 * fd 0) and a child: the child's fd 0 is not the server's socket. */
static int no_stdin_program(const void *arg, size_t len) {
  (void)arg, (void)len;
  close(0);
  if (kiln_forkserver_start() != 0) return 100;
  kiln_process_config cfg;
  kiln_process_config_default(&cfg);
  kiln_process *p;
  if (kiln_process_start(&cfg, stdin_not_a_socket, NULL, 0, &p) != 0) return 101;
  int code = -1;
  kiln_process_join(p, -1);
  kiln_process_exitcode(p, &code);
  kiln_process_destroy(p);
  kiln_forkserver_stop();
  return code;
}

TEST(PROC_forkserver_with_stdin_closed) {
  kiln_process *p = start(KILN_START_FORK, no_stdin_program);
  KT_EQ(exitcode_of(p), 0);
  kiln_process_destroy(p);
}

static void *start_fork_daemon_then_exit(void *arg) {
  (void)arg;
  kiln_channel *a, *b;
  KT_CODE(kiln_channel_pair(true, &a, &b), 0);
  g_from_thread.p = start_with(KILN_START_FORK, ready_then_block, NULL, 0, &b, 1, true);
  g_from_thread.mine = a;
  kiln_channel_destroy(b);
  void *buf = NULL;
  size_t n = 0;
  KT_CODE(kiln_channel_recv(a, &buf, &n, 20), 0); /* it has armed its death signal */
  free(buf);
  return NULL;
}

/* The same for a daemon FORK child: kiln forks it from a thread of its own that lives as long as
 * the program, so the end of the thread that asked does not kill it. */
TEST(PROC_fork_daemon_outlives_the_thread_that_started_it) {
  pthread_t t;
  KT_EQ(pthread_create(&t, NULL, start_fork_daemon_then_exit, NULL), 0);
  KT_EQ(pthread_join(t, NULL), 0);
  KT_CODE(kiln_process_join(g_from_thread.p, 0.05), KILN_ETIMEDOUT);
  KT_TRUE(kiln_process_is_alive(g_from_thread.p));
  KT_CODE(kiln_process_kill(g_from_thread.p), 0);
  KT_EQ(exitcode_of(g_from_thread.p), -SIGKILL);
  kiln_process_destroy(g_from_thread.p);
  kiln_channel_destroy(g_from_thread.mine);
}

/* Starts the server and has it serve one child (so the server is well past its set-up, whatever
 * watch it keeps on its parent), then ends. */
static void *start_server_in_thread(void *arg) {
  *(int *)arg = kiln_forkserver_start();
  kiln_process *p = start(KILN_START_FORKSERVER, ret3);
  KT_EQ(exitcode_of(p), 3);
  kiln_process_destroy(p);
  return NULL;
}

/* The fork server lives as long as the program, not as long as the thread that started it. */
TEST(PROC_forkserver_outlives_the_thread_that_started_it) {
  int rc = 12345;
  pthread_t t;
  KT_EQ(pthread_create(&t, NULL, start_server_in_thread, &rc), 0);
  KT_EQ(pthread_join(t, NULL), 0);
  KT_CODE(rc, 0);
  KT_TRUE(kiln_forkserver_running());
  kiln_process *p = start(KILN_START_FORKSERVER, ret3);
  KT_EQ(exitcode_of(p), 3);
  kiln_process_destroy(p);
  KT_TRUE(kiln_forkserver_running());
}

/* kiln_forkserver_stop leaves running children alone: the old server reports their end, then
 * exits, and kiln reaps it; a new server can be started meanwhile. */
TEST(PROC_forkserver_stop_leaves_children) {
  fs_start();
  int server;
  blocked b = start_ppid_child(false, &server);
  int sfd = pidfd_of(server);
  KT_TRUE(sfd >= 0);
  kiln_forkserver_stop();
  KT_FALSE(kiln_forkserver_running());
  KT_TRUE(kiln_process_is_alive(b.p));
  fs_start(); /* a new one, while the old one still serves its child */
  kiln_process *p = start(KILN_START_FORKSERVER, ret3);
  KT_EQ(exitcode_of(p), 3);
  kiln_process_destroy(p);
  kiln_channel_destroy(b.mine);
  KT_EQ(exitcode_of(b.p), 0); /* reported by the old server, which then ends */
  kiln_process_destroy(b.p);
  wait_gone(sfd);
  KT_TRUE(kiln_forkserver_running()); /* the new one; this call reaps the old one */
  siginfo_t si;
  KT_EQ(waitid(P_PIDFD, (id_t)sfd, &si, WEXITED | WNOHANG | WNOWAIT), -1);
  KT_EQ(errno, ECHILD);
  close(sfd);
}
