/* process.c: process handles (multiprocessing.Process): starting a child by either method,
 * joining it, its exit code, signals, waiting on processes and channels together; what every child
 * runs first.
 *
 * A handle holds the child's pidfd, so signals never reach a reused pid (pidfd_send_signal) and
 * "has it ended" is a poll(2) on a descriptor (which kiln_process_wait also uses). How the exit
 * status is collected depends on who the parent is:
 *   - KILN_START_FORK: the program is the parent; the first thread that sees the pidfd readable
 *     reaps it with waitid(P_PIDFD) under the handle's mutex. (A daemon FORK child is forked by
 *     spawner.c's thread, still a thread of the program.)
 *   - KILN_START_FORKSERVER: the fork server is the parent and reaps it; it writes the wait status
 *     (4 bytes) to the handle's status socket and closes it. Should the server die first, the
 *     status is lost: the pidfd still says when the child has ended, and the exit code is then
 *     255 (as for a FORK child reaped behind kiln's back).
 *
 * Lock order: a handle's mu, then the reaper's (kiln_process_destroy hands a pidfd over). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "process_internal.h"

/* The exit status recorded when the real one cannot be known (see the top of the file). */
#define KILN__STATUS_UNKNOWN (255 << 8)

struct kiln_process {
  pthread_mutex_t mu; /* guards ended, status and lost; held while collecting the status */
  pid_t pid;
  int pidfd;
  int statfd; /* FORKSERVER: the status socket; FORK: -1 */
  bool lost;  /* the fork server's status socket ended without a status */
  bool ended; /* the status is known */
  int status; /* the wait status, once ended */
};

int kiln__pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

int kiln__pidfd_signal(int pidfd, int sig) {
  return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

void kiln_process_config_default(kiln_process_config *cfg) {
  *cfg = (kiln_process_config){.start = KILN_START_FORKSERVER};
}

/* ---- the child's side ----------------------------------------------------------------------- */

static kiln_channel *const *g_child_channels; /* set in a child only, before fn runs */
static size_t g_child_nchannels;

kiln_channel *kiln_process_channel(size_t i) {
  return i < g_child_nchannels ? g_child_channels[i] : NULL;
}

void kiln__sort_fds(int *fds, size_t n) {
  for (size_t i = 1; i < n; i++)
    for (size_t j = i; j > 0 && fds[j - 1] > fds[j]; j--) {
      int t = fds[j];
      fds[j] = fds[j - 1], fds[j - 1] = t;
    }
}

static void close_fds(unsigned lo, unsigned hi) {
  if (lo > hi || syscall(SYS_close_range, lo, hi, 0) == 0) return;
  /* kernels before 5.9: one by one, up to the descriptor limit */
  struct rlimit rl;
  unsigned lim = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 1u << 20
                     ? (unsigned)rl.rlim_cur
                     : 1u << 16;
  for (unsigned fd = lo; fd <= hi && fd < lim; fd++) close((int)fd);
}

/* Closes every descriptor above 2 except keep[0..n) (sorted). */
static void close_others(const int *keep, size_t n) {
  unsigned lo = 3;
  for (size_t i = 0; i < n; i++) {
    if (keep[i] < 0 || (unsigned)keep[i] < lo) continue;
    if ((unsigned)keep[i] > lo) close_fds(lo, (unsigned)keep[i] - 1);
    lo = (unsigned)keep[i] + 1;
  }
  close_fds(lo, ~0u);
}

void kiln__tame_std_streams(void) {
  for (int fd = 0; fd < 3; fd++) {
    int fl = fcntl(fd, F_GETFD);
    if (fl < 0 || !(fl & FD_CLOEXEC)) continue; /* closed, or a real standard stream */
    int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (nul >= 0 && nul != fd) {
      dup2(nul, fd); /* dup2 leaves the new descriptor without close-on-exec */
      close(nul);
    }
  }
}

/* Default dispositions and an empty mask: a child must not inherit the fork server's ignored
 * SIGINT/SIGTERM, nor handlers of the program that would run in a process they were not
 * written for. */
void kiln__reset_signals(void) {
  struct sigaction sa = {.sa_handler = SIG_DFL};
  sigemptyset(&sa.sa_mask);
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &sa, NULL); /* EINVAL for libc's own */
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
}

_Noreturn void kiln__child_main(const kiln__child_spec *s) {
  kiln__reset_signals();
  if (s->daemon) {
    /* armed, then checked: a parent that died before prctl would otherwise go unnoticed */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != s->parent) kill(getpid(), SIGKILL);
  }
  prctl(PR_SET_NAME, s->name ? s->name : "kiln-proc");
  close_others(s->keep, s->nkeep);
  kiln__tame_std_streams();
  kiln__forkserver_forget();
  g_child_channels = s->channels;
  g_child_nchannels = s->nchannels;
  int code = s->fn(s->len ? s->arg : NULL, s->len);
  /* Only the standard streams: fflush(NULL) would also write out the parent's unflushed
   * buffers of its other files, whose descriptors are closed here or, worse, reused by a
   * channel. (The parent flushes its standard streams before forking, so they hold only what fn
   * wrote.) */
  fflush(stdout);
  fflush(stderr);
  _exit(code & 0xff);
}

/* ---- starting ------------------------------------------------------------------------------- */

/* The child's own copies of the channels: fresh ends on duplicates of their descriptors, so that
 * the child never uses a channel's locks as another thread of the parent held them at the fork.
 * Allocated (and their rings mapped) before the fork (malloc is not safe after it in a threaded
 * program); the parent destroys its copies of them (ends marked shared: no shutdown) once the
 * child has started. keep gets the copies' descriptors, sorted, and *nkeep their count. */
static int copy_channels(const kiln_process_config *cfg, kiln_channel **copies, int *keep,
                         size_t *nkeep) {
  *nkeep = 0;
  for (size_t i = 0; i < cfg->nchannels; i++) {
    kiln__channel_fds f;
    int rc = kiln__channel_dup(cfg->channels[i], &f);
    if (rc == KILN_ESTATE) rc = KILN_EINVAL;
    if (rc == 0) rc = kiln__channel_adopt(&f, &copies[i]); /* closes f's on failure */
    if (rc) {
      for (size_t j = 0; j < i; j++) kiln_channel_destroy(copies[j]);
      return rc;
    }
    keep[(*nkeep)++] = f.sock;
    if (f.mem >= 0) keep[(*nkeep)++] = f.mem;
  }
  kiln__sort_fds(keep, *nkeep);
  return 0;
}

static int start_fork(const kiln_process_config *cfg, kiln_process_fn fn, const void *arg,
                      size_t len, kiln_process *p) {
  kiln_channel *copies[KILN__MAX_CHANNELS];
  int keep[KILN__MAX_REQUEST_FDS];
  size_t nkeep;
  int rc = copy_channels(cfg, copies, keep, &nkeep);
  if (rc) return rc;
  kiln__child_spec s = {.fn = fn,
                        .arg = arg,
                        .len = len,
                        .daemon = cfg->daemon,
                        .parent = getpid(),
                        .name = cfg->name,
                        .channels = copies,
                        .nchannels = cfg->nchannels,
                        .keep = keep,
                        .nkeep = nkeep};
  fflush(stdout); /* or the child would print what the parent has buffered a second time */
  fflush(stderr);
  int e = 0;
  pid_t pid = cfg->daemon ? kiln__spawn_daemon(&s, &e) : fork();
  if (pid == 0) kiln__child_main(&s);
  if (pid < 0 && !cfg->daemon) e = errno;
  for (size_t i = 0; i < cfg->nchannels; i++) kiln_channel_destroy(copies[i]);
  if (pid < 0) return e == ENOMEM ? KILN_ENOMEM : KILN_EIO;
  int pidfd = kiln__pidfd_open(pid);
  if (pidfd < 0) {
    /* Without a pidfd the handle cannot be used safely: undo the start. ESRCH: it has already
     * ended and was reaped behind kiln's back (SIGCHLD ignored), and its pid may be reused. */
    if (errno != ESRCH) {
      kill(pid, SIGKILL);
      while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
    }
    return KILN_EIO;
  }
  p->pid = pid, p->pidfd = pidfd, p->statfd = -1;
  return 0;
}

static int check_config(const kiln_process_config *cfg, kiln_process_fn fn, const void *arg,
                        size_t len) {
  if (!cfg || !fn || (len && !arg)) return KILN_EINVAL;
  if (cfg->start != KILN_START_FORK && cfg->start != KILN_START_FORKSERVER) return KILN_EINVAL;
  if (cfg->nchannels > KILN__MAX_CHANNELS || (cfg->nchannels && !cfg->channels)) return KILN_EINVAL;
  for (size_t i = 0; i < cfg->nchannels; i++)
    if (!cfg->channels[i]) return KILN_EINVAL;
  return 0;
}

int kiln_process_start(const kiln_process_config *cfg, kiln_process_fn fn, const void *arg,
                       size_t len, kiln_process **out) {
  if (!out) return KILN_EINVAL;
  *out = NULL;
  int rc = check_config(cfg, fn, arg, len);
  if (rc) return rc;
  kiln_process *p = calloc(1, sizeof *p);
  if (!p) return KILN_ENOMEM;
  if (pthread_mutex_init(&p->mu, NULL)) {
    free(p);
    return KILN_ENOMEM;
  }
  if (cfg->start == KILN_START_FORK) rc = start_fork(cfg, fn, arg, len, p);
  else rc = kiln__forkserver_spawn(cfg, fn, arg, len, &p->pid, &p->pidfd, &p->statfd);
  if (rc) {
    pthread_mutex_destroy(&p->mu);
    free(p);
    return rc;
  }
  *out = p;
  return 0;
}

/* ---- waiting -------------------------------------------------------------------------------- */

/* Collects the status once the descriptor join polled is readable. Called with p->mu held. */
static void collect(kiln_process *p) {
  if (p->statfd >= 0 && !p->lost) {
    int32_t st;
    if (kiln__read_full(p->statfd, &st, sizeof st) == 0) {
      p->status = st, p->ended = true;
    } else {
      p->lost = true; /* the server died: wait on the pidfd instead */
    }
    return;
  }
  if (p->statfd >= 0) { /* lost: the pidfd says it has ended; its status is gone */
    p->status = KILN__STATUS_UNKNOWN, p->ended = true;
    return;
  }
  /* waitid on the pidfd names exactly this child: waitpid(pid) could wait for, and steal the
   * status of, another child that took over the pid after a reap behind kiln's back */
  siginfo_t si = {0};
  int r;
  while ((r = waitid(P_PIDFD, (id_t)p->pidfd, &si, WEXITED)) < 0 && errno == EINTR) {}
  if (r < 0) p->status = KILN__STATUS_UNKNOWN; /* ECHILD: reaped behind kiln's back */
  else if (si.si_code == CLD_EXITED) p->status = (si.si_status & 0xff) << 8;
  else p->status = si.si_status & 0x7f; /* killed or dumped: the signal, as a wait status */
  p->ended = true;
}

int kiln_process_join(kiln_process *p, double timeout) {
  double deadline;
  if (!p || kiln__deadline(timeout, &deadline)) return KILN_EINVAL;
  for (;;) {
    pthread_mutex_lock(&p->mu);
    bool ended = p->ended;
    int fd = p->statfd >= 0 && !p->lost ? p->statfd : p->pidfd;
    pthread_mutex_unlock(&p->mu);
    if (ended) return 0;
    /* the descriptors stay open until destroy, so several threads may poll them at once */
    int r = kiln__poll_fd(fd, POLLIN, deadline);
    if (r == 0) return KILN_ETIMEDOUT;
    if (r < 0) return KILN_EIO;
    pthread_mutex_lock(&p->mu);
    if (!p->ended) collect(p);
    pthread_mutex_unlock(&p->mu);
  }
}

bool kiln_process_is_alive(kiln_process *p) {
  if (kiln_process_join(p, 0) == 0) return false;
  /* A fork-server child may have ended with its status still on the way from the server: the
   * pidfd already says so. Not waiting for the status keeps is_alive from ever blocking. */
  return kiln__poll_fd(p->pidfd, POLLIN, 0) != 1;
}

int kiln_process_exitcode(kiln_process *p, int *code) {
  if (!p || !code) return KILN_EINVAL;
  *code = 0;
  /* ended by the pidfd: its status is on its way from the server (or at hand), so wait for it */
  if (!kiln_process_is_alive(p)) kiln_process_join(p, -1);
  pthread_mutex_lock(&p->mu);
  bool ended = p->ended;
  int st = p->status;
  pthread_mutex_unlock(&p->mu);
  if (!ended) return KILN_ESTATE;
  *code = WIFSIGNALED(st) ? -WTERMSIG(st) : WEXITSTATUS(st);
  return 0;
}

int kiln_process_pid(const kiln_process *p) { return p ? p->pid : -1; }

int kiln_process_sentinel(const kiln_process *p) { return p ? p->pidfd : -1; }

static int send_signal(kiln_process *p, int sig) {
  if (!p) return KILN_EINVAL;
  /* the pidfd names this process and no other, even once its pid is reused */
  if (kiln__pidfd_signal(p->pidfd, sig) == 0 || errno == ESRCH) return 0;
  return KILN_EIO;
}

int kiln_process_terminate(kiln_process *p) { return send_signal(p, SIGTERM); }

int kiln_process_kill(kiln_process *p) { return send_signal(p, SIGKILL); }

void kiln_process_destroy(kiln_process *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  if (p->statfd >= 0) {
    close(p->statfd); /* the fork server reaps its children itself */
    close(p->pidfd);
  } else if (!p->ended) {
    kiln__reap_later(p->pid, p->pidfd);
  } else {
    close(p->pidfd);
  }
  pthread_mutex_unlock(&p->mu);
  pthread_mutex_destroy(&p->mu);
  free(p);
}

/* Moves the ended processes (revents set) to the front of procs, keeping the order within both
 * groups. Returns how many ended. */
static size_t partition_ended(kiln_process **procs, const struct pollfd *fds, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (fds[i].revents) {
      kiln_process *t = procs[i];
      memmove(procs + k + 1, procs + k, (i - k) * sizeof *procs);
      procs[k++] = t;
    }
  return k;
}

int kiln_process_wait(kiln_channel **chs, size_t n, kiln_process **procs, size_t nprocs,
                      double timeout, size_t *nready_chs, size_t *nready_procs) {
  if (!nready_chs || !nready_procs || (n && !chs) || (nprocs && !procs)) return KILN_EINVAL;
  *nready_chs = *nready_procs = 0;
  double deadline;
  if (kiln__deadline(timeout, &deadline)) return KILN_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (!chs[i]) return KILN_EINVAL;
  for (size_t i = 0; i < nprocs; i++)
    if (!procs[i]) return KILN_EINVAL;
  struct pollfd *fds = malloc((nprocs + 1) * sizeof *fds);
  if (!fds) return KILN_ENOMEM;
  for (size_t i = 0; i < nprocs; i++)
    fds[i] = (struct pollfd){.fd = procs[i]->pidfd, .events = POLLIN};
  int rc = kiln__channel_wait_extra(chs, n, fds, nprocs, deadline, nready_chs);
  if (rc == 0) *nready_procs = partition_ended(procs, fds, nprocs);
  free(fds);
  return rc;
}
