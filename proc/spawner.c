/* spawner.c: forks the daemon children of KILN_START_FORK from one thread of kiln's that lives as
 * long as the program.
 *
 * A daemon child arms PR_SET_PDEATHSIG, which Linux fires when the parent *thread* ends, not the
 * parent process. Forked from the caller's thread, a daemon child would die as soon as that thread
 * ended (a pool worker at kiln_pool_destroy, any short-lived thread), or survive it, depending on
 * which came first, the thread's end or the child's prctl. Forked from this thread, which never
 * ends, it dies exactly when the program does. The child is the same copy of the program's memory
 * either way (fork copies every thread's memory, the caller's stack included, so the spec's
 * pointers stay valid); only the thread it continues on differs.
 *
 * One request at a time (call_mu); the caller waits on cv until the spawner has forked. The
 * thread starts, with every signal blocked, at the first request. In a child, the state is reset
 * by a pthread_atfork handler (the thread did not cross the fork, and a lock may have been held).
 * Lock order: call_mu, then mu. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>

#include "process_internal.h"

static struct {
  pthread_mutex_t call_mu; /* held by the one caller whose request is in flight */
  pthread_mutex_t mu;      /* guards everything below */
  pthread_cond_t cv;       /* a request came (the spawner waits), or it was served (the caller) */
  bool started;
  const kiln__child_spec *req; /* the request waiting for the spawner, or NULL */
  bool done;                   /* the request was served: pid and err */
  pid_t pid;
  int err;
} g_sp = {.call_mu = PTHREAD_MUTEX_INITIALIZER,
          .mu = PTHREAD_MUTEX_INITIALIZER,
          .cv = PTHREAD_COND_INITIALIZER};

static void *spawner_main(void *unused) {
  (void)unused;
  pthread_mutex_lock(&g_sp.mu);
  for (;;) {
    while (!g_sp.req) pthread_cond_wait(&g_sp.cv, &g_sp.mu);
    const kiln__child_spec *s = g_sp.req;
    g_sp.req = NULL;
    pthread_mutex_unlock(&g_sp.mu); /* not held across the fork */
    pid_t pid = fork();
    if (pid == 0) kiln__child_main(s);
    int e = errno;
    pthread_mutex_lock(&g_sp.mu);
    g_sp.pid = pid, g_sp.err = e, g_sp.done = true;
    pthread_cond_broadcast(&g_sp.cv);
  }
  return NULL;
}

static void spawner_forget(void) {
  g_sp.call_mu = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
  g_sp.mu = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
  g_sp.cv = (pthread_cond_t)PTHREAD_COND_INITIALIZER;
  g_sp.started = false, g_sp.req = NULL, g_sp.done = false;
}

static pthread_once_t g_sp_once = PTHREAD_ONCE_INIT;

static void spawner_init(void) { pthread_atfork(NULL, NULL, spawner_forget); }

pid_t kiln__spawn_daemon(const kiln__child_spec *s, int *err) {
  pthread_once(&g_sp_once, spawner_init);
  pthread_mutex_lock(&g_sp.call_mu);
  pthread_mutex_lock(&g_sp.mu);
  pid_t pid = -1;
  if (!g_sp.started) g_sp.started = kiln__start_quiet_thread(spawner_main);
  if (!g_sp.started) {
    *err = EAGAIN;
  } else {
    g_sp.req = s, g_sp.done = false;
    pthread_cond_broadcast(&g_sp.cv);
    while (!g_sp.done) pthread_cond_wait(&g_sp.cv, &g_sp.mu);
    pid = g_sp.pid, *err = g_sp.err;
  }
  pthread_mutex_unlock(&g_sp.mu);
  pthread_mutex_unlock(&g_sp.call_mu);
  return pid;
}
