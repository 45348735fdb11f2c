/* mgr_test_util.h: helpers of the manager's tests (not a test file): a server served by a thread
 * of the test, children forked while the test is still single-threaded, raw sockets. */
#ifndef KILN_MGR_TEST_UTIL_H
#define KILN_MGR_TEST_UTIL_H

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kiln/proc.h"
#include "kt.h"

#define MT_OK(x) KT_CODE((x), 0)

typedef struct mt_server {
  kiln_manager_server *s;
  pthread_t th;
  bool running;
  int rc;
} mt_server;

static void *mt_serve_main(void *arg) {
  mt_server *m = arg;
  m->rc = kiln_manager_server_serve(m->s);
  return NULL;
}

/* Creates (listens at once) a server at address (NULL: the default) with auth_timeout t. */
static inline void mt_create(mt_server *m, const char *address, double t) {
  kiln_manager_config cfg;
  kiln_manager_config_default(&cfg);
  cfg.address = address;
  if (t > 0) cfg.auth_timeout = t;
  *m = (mt_server){0};
  MT_OK(kiln_manager_server_create(&cfg, &m->s));
}

/* Serves on a new thread: call it after forking the children. */
static inline void mt_run(mt_server *m) {
  KT_EQ(pthread_create(&m->th, NULL, mt_serve_main, m), 0);
  m->running = true;
}

static inline void mt_stop(mt_server *m) {
  if (m->running) {
    kiln_manager_server_stop(m->s);
    KT_EQ(pthread_join(m->th, NULL), 0);
    MT_OK(m->rc);
  }
  kiln_manager_server_destroy(m->s);
  m->s = NULL;
}

static inline kiln_mclient *mt_connect(const mt_server *m) {
  size_t klen;
  const void *key = kiln_manager_server_authkey(m->s, &klen);
  kiln_mclient *c = NULL;
  MT_OK(kiln_manager_connect(kiln_manager_server_address(m->s), key, klen, &c));
  return c;
}

/* Forks a child running fn(arg) and exiting with its result (0..255) by _exit. */
static inline pid_t mt_fork(int (*fn)(void *), void *arg) {
  fflush(NULL);
  pid_t pid = fork();
  KT_TRUE(pid >= 0);
  if (pid == 0) _exit(fn(arg));
  return pid;
}

/* Waits for the child; its exit status, or 1000 + N when signal N killed it. */
static inline int mt_wait(pid_t pid) {
  int st;
  KT_EQ(waitpid(pid, &st, 0), pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 1000 + WTERMSIG(st);
}

/* The number of open descriptors of this process. */
static inline int mt_nfds(void) {
  DIR *d = opendir("/proc/self/fd");
  KT_TRUE(d != NULL);
  int n = 0;
  while (readdir(d)) n++;
  closedir(d);
  return n - 3; /* ".", ".." and the DIR's own */
}

#endif
