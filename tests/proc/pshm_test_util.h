/* pshm_test_util.h: helpers for the tests of shared memory, process-shared synchronisation and
 * process queues (not a test file).
 *
 * Children are plain forks of the single-threaded test process (pt_fork) or children of the fork
 * server; either way a child reports through its exit status (0: all its checks passed; a failed
 * KT_* check exits 1). Handshakes go through the objects under test or pipes, never sleeps. Each
 * test checks that it leaves no /dev/shm entry of its own (names made by this process: "p<pid>-"
 * from kiln_shm_create's generator, "t<pid>-" from pt_name) and no open descriptor behind. */
#ifndef KILN_PSHM_TEST_UTIL_H
#define KILN_PSHM_TEST_UTIL_H

#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kiln/proc.h"
#include "kt.h"
#include "pshm_internal.h"

#if defined(__SANITIZE_THREAD__)
#define PT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PT_TSAN 1
#endif
#endif

/* Yields until cond holds; fails after 30 s (a hang, not a timing assumption). */
#define PT_UNTIL(cond)                                                        \
  do {                                                                        \
    double pt_t0 = kt_now();                                                  \
    while (!(cond)) {                                                         \
      if (kt_now() - pt_t0 > 30.0) KT_FAIL("gave up waiting for: %s", #cond); \
      sched_yield();                                                          \
    }                                                                         \
  } while (0)

/* A name private to this test process: "t<pid>-<what>". */
static inline const char *pt_name(const char *what) {
  static char buf[8][64];
  static int i;
  char *b = buf[i++ % 8];
  snprintf(b, 64, "t%d-%s", (int)getpid(), what);
  return b;
}

/* /dev/shm entries kiln made for this test process. */
static inline int pt_shm_count(void) {
  char p1[32], p2[32];
  snprintf(p1, sizeof p1, "kiln-p%d-", (int)getpid());
  snprintf(p2, sizeof p2, "kiln-t%d-", (int)getpid());
  DIR *d = opendir("/dev/shm");
  KT_TRUE(d != NULL);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strncmp(e->d_name, p1, strlen(p1)) == 0 || strncmp(e->d_name, p2, strlen(p2)) == 0) n++;
  closedir(d);
  return n;
}

static inline int pt_fd_count(void) {
  DIR *d = opendir("/proc/self/fd");
  KT_TRUE(d != NULL);
  int n = 0;
  while (readdir(d)) n++;
  closedir(d);
  return n;
}

/* Removes this process's entries from /dev/shm: at exit, so that a test that fails half-way
 * (KT_* exits) leaves none behind. A no-op after a test that passed. */
static inline void pt_shm_sweep(void) {
  char p1[32], p2[32], path[300];
  snprintf(p1, sizeof p1, "kiln-p%d-", (int)getpid());
  snprintf(p2, sizeof p2, "kiln-t%d-", (int)getpid());
  DIR *d = opendir("/dev/shm");
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strncmp(e->d_name, p1, strlen(p1)) != 0 && strncmp(e->d_name, p2, strlen(p2)) != 0)
      continue;
    snprintf(path, sizeof path, "/dev/shm/%s", e->d_name);
    unlink(path);
  }
  closedir(d);
}

/* Before and after a test body: nothing of ours in /dev/shm, no descriptor more. */
typedef struct pt_leaks {
  int fds;
} pt_leaks;
static inline pt_leaks pt_leaks_begin(void) {
  static int swept;
  if (!swept++) atexit(pt_shm_sweep);
  KT_EQ(pt_shm_count(), 0);
  return (pt_leaks){pt_fd_count()};
}
static inline void pt_leaks_end(pt_leaks l) {
  KT_EQ(pt_shm_count(), 0);
  KT_EQ(pt_fd_count(), l.fds);
}

/* Forks a child that runs fn(arg) and exits 0 (fn's failed checks exit 1). The child dies with
 * this process (PR_SET_PDEATHSIG), so a failed check here never leaves it behind blocked. */
static inline pid_t pt_fork(void (*fn)(void *), void *arg) {
  fflush(NULL);
  pid_t parent = getpid();
  pid_t pid = fork();
  KT_TRUE(pid >= 0);
  if (pid == 0) {
    /* the second check closes the race with a parent that died before prctl */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(99);
    fn(arg);
    _exit(0);
  }
  return pid;
}

/* Reaps pid and checks it exited with status code. */
static inline void pt_wait_code(pid_t pid, int code) {
  int st = 0;
  KT_EQ(waitpid(pid, &st, 0), pid);
  if (!WIFEXITED(st)) KT_FAIL("child %d did not exit (status 0x%x)", (int)pid, st);
  KT_EQ(WEXITSTATUS(st), code);
}
static inline void pt_wait(pid_t pid) { pt_wait_code(pid, 0); }

/* Kills pid with SIGKILL and reaps it. */
static inline void pt_kill(pid_t pid) {
  KT_EQ(kill(pid, SIGKILL), 0);
  int st = 0;
  KT_EQ(waitpid(pid, &st, 0), pid);
  KT_TRUE(WIFSIGNALED(st));
}

/* ---- children of the fork server ----
 * Start the server first thing in the test (before pt_leaks_begin: its socket stays open until
 * pt_fs_stop), then create the objects: its children see none of them and attach by name. */
static inline void pt_fs_start(void) { KT_CODE(kiln_forkserver_start(), KILN_OK); }
static inline void pt_fs_stop(void) { kiln_forkserver_stop(); }

/* The config of the tests' fork server children: daemons, so that they die with this process
 * when a failed check ends it early. */
static inline void pt_fs_config(kiln_process_config *cfg) {
  kiln_process_config_default(cfg);
  KT_EQ(cfg->start, KILN_START_FORKSERVER);
  cfg->daemon = true;
}

/* Starts fn(name) through the fork server: the NUL-terminated name is the argument. */
static inline kiln_process *pt_fs_run(kiln_process_fn fn, const char *name) {
  kiln_process_config cfg;
  pt_fs_config(&cfg);
  kiln_process *p = NULL;
  KT_CODE(kiln_process_start(&cfg, fn, name, strlen(name) + 1, &p), KILN_OK);
  return p;
}

/* Defines wrapper, a kiln_process_fn that runs void fn(void *name) and exits 0. */
#define PT_FS_WRAP(wrapper, fn)                            \
  static int wrapper(const void *arg, size_t len) {        \
    (void)len;                                             \
    fn((void *)arg);                                       \
    return 0;                                              \
  }

/* Joins p, checks it exited with code, frees it. */
static inline void pt_fs_wait_code(kiln_process *p, int code) {
  KT_CODE(kiln_process_join(p, -1), KILN_OK);
  int got = -1000;
  KT_CODE(kiln_process_exitcode(p, &got), KILN_OK);
  KT_EQ(got, code);
  kiln_process_destroy(p);
}
static inline void pt_fs_wait(kiln_process *p) { pt_fs_wait_code(p, 0); }

/* A one-byte handshake over a pipe: the child tells the parent it got somewhere. */
typedef struct pt_pipe {
  int r, w;
} pt_pipe;
static inline pt_pipe pt_pipe_new(void) {
  int fd[2];
  KT_EQ(pipe(fd), 0);
  return (pt_pipe){fd[0], fd[1]};
}
static inline void pt_signal(pt_pipe p) { KT_EQ(write(p.w, "x", 1), 1); }
static inline void pt_await(pt_pipe p) {
  char c;
  KT_EQ(read(p.r, &c, 1), 1);
}
static inline void pt_pipe_close(pt_pipe p) {
  close(p.r);
  close(p.w);
}

#endif
