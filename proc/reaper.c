/* reaper.c: reaps the children nobody will join: FORK children whose handle was destroyed while
 * they ran (and stopped fork servers beyond the few forkserver.c keeps). One thread does it,
 * started when the first is handed over and ending when none is left (so a program that never
 * destroys a running child never gets the thread). It polls their pidfds and an eventfd that
 * kiln__reap_later writes to when the set grows. Lock order: g_reaper.mu is a leaf. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "process_internal.h"

typedef struct orphan {
  pid_t pid;
  int pidfd;
} orphan;

static struct {
  pthread_mutex_t mu; /* guards everything below */
  orphan *v;
  size_t n, cap;
  bool running; /* a reaper thread exists */
  int wake;     /* eventfd, -1 until first needed */
} g_reaper = {.mu = PTHREAD_MUTEX_INITIALIZER, .wake = -1};

/* pthread_atfork's child handler, registered by the first kiln__reap_later: in a child the
 * orphans are not its children, and the thread did not cross the fork. (The lock is re-made
 * rather than taken in a prepare handler, so that a fork never waits for the reaper.) */
static void reaper_forget(void) {
  g_reaper.mu = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
  g_reaper.v = NULL;
  g_reaper.n = g_reaper.cap = 0;
  g_reaper.running = false;
  g_reaper.wake = -1;
}

/* Reaps the orphans whose pidfd poll found readable (revents set), called without the lock. */
static void reap_ready(const struct pollfd *fds, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (!fds[i].revents) continue;
    pid_t pid = 0;
    pthread_mutex_lock(&g_reaper.mu);
    for (size_t j = 0; j < g_reaper.n; j++)
      if (g_reaper.v[j].pidfd == fds[i].fd) {
        pid = g_reaper.v[j].pid;
        g_reaper.v[j] = g_reaper.v[--g_reaper.n];
        break;
      }
    pthread_mutex_unlock(&g_reaper.mu);
    if (!pid) continue;
    siginfo_t si; /* the pidfd names exactly this child, whatever became of its pid */
    while (waitid(P_PIDFD, (id_t)fds[i].fd, &si, WEXITED) < 0 && errno == EINTR) {}
    close(fds[i].fd);
  }
}

static void reap_first(void) {
  pthread_mutex_lock(&g_reaper.mu);
  orphan o = g_reaper.n ? g_reaper.v[0] : (orphan){0, -1};
  if (g_reaper.n) g_reaper.v[0] = g_reaper.v[--g_reaper.n];
  pthread_mutex_unlock(&g_reaper.mu);
  if (o.pidfd < 0) return;
  siginfo_t si;
  while (waitid(P_PIDFD, (id_t)o.pidfd, &si, WEXITED) < 0 && errno == EINTR) {}
  close(o.pidfd);
}

static void *reaper_main(void *unused) {
  (void)unused;
  struct pollfd *fds = NULL;
  for (;;) {
    pthread_mutex_lock(&g_reaper.mu);
    size_t n = g_reaper.n;
    struct pollfd *nf = n ? realloc(fds, (n + 1) * sizeof *fds) : NULL;
    if (!n || !nf) {
      g_reaper.running = false; /* a later kiln__reap_later starts a new thread */
      pthread_mutex_unlock(&g_reaper.mu);
      free(nf ? nf : fds);
      return NULL;
    }
    fds = nf;
    for (size_t i = 0; i < n; i++)
      fds[i] = (struct pollfd){.fd = g_reaper.v[i].pidfd, .events = POLLIN};
    fds[n] = (struct pollfd){.fd = g_reaper.wake, .events = POLLIN};
    pthread_mutex_unlock(&g_reaper.mu);
    if (poll(fds, n + 1, -1) < 0) {
      /* EINTR: again; anything else (no memory): wait for the first orphan alone rather than
       * spin */
      if (errno != EINTR) reap_first();
      continue;
    }
    if (fds[n].revents) {
      uint64_t v;
      ssize_t r = read(g_reaper.wake, &v, sizeof v);
      (void)r;
    }
    reap_ready(fds, n);
  }
}

bool kiln__start_quiet_thread(void *(*fn)(void *)) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t t;
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  bool ok = pthread_create(&t, &a, fn, NULL) == 0;
  pthread_attr_destroy(&a);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return ok;
}

static pthread_once_t g_reaper_once = PTHREAD_ONCE_INIT;

static void reaper_init(void) { pthread_atfork(NULL, NULL, reaper_forget); }

void kiln__reap_later(pid_t pid, int pidfd) {
  pthread_once(&g_reaper_once, reaper_init);
  pthread_mutex_lock(&g_reaper.mu);
  if (g_reaper.wake < 0) g_reaper.wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (g_reaper.n == g_reaper.cap) {
    size_t cap = g_reaper.cap ? 2 * g_reaper.cap : 8;
    orphan *v = realloc(g_reaper.v, cap * sizeof *v);
    if (v) g_reaper.v = v, g_reaper.cap = cap;
  }
  if (g_reaper.n == g_reaper.cap || g_reaper.wake < 0) {
    close(pidfd); /* out of memory: it stays a zombie until the program ends */
  } else {
    g_reaper.v[g_reaper.n++] = (orphan){pid, pidfd};
    if (!g_reaper.running) {
      g_reaper.running = kiln__start_quiet_thread(reaper_main);
    } else {
      uint64_t one = 1;
      ssize_t r = write(g_reaper.wake, &one, sizeof one);
      (void)r;
    }
  }
  pthread_mutex_unlock(&g_reaper.mu);
}
