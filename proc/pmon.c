/* pmon.c: the monitor under every process-shared object, holder identities, and objects that
 * live in a segment of their own.
 *
 * The monitor is a robust, process-shared pthread mutex plus a futex word. Sleeping on a raw
 * futex instead of a process-shared pthread condition variable matters for robustness: glibc's
 * condition variable keeps per-waiter bookkeeping in the shared object, and a waiter process that
 * dies can swallow a signal meant for a live one; a futex wake only ever reaches live sleepers.
 *
 * Locks that a process holds for a long time (plock, prlock, a condition's lock) are not the
 * pthread mutex itself, which only its owning thread may unlock (a multiprocessing Lock may be
 * released by anyone): they are a count and a holder identity under the monitor. A waiter for
 * such a lock sleeps in slices of 20 ms and, after a slice with no wake, checks whether the
 * holder's process is still alive (/proc/PID/stat: gone, zombie, or a different start time).
 *
 * Lock order: an object's monitor is the only lock taken inside its calls; no call holds two. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "proc_internal.h"
#include "pshm_internal.h"

static const double POLL_SLICE = 0.02;

int kiln__mon_init(kiln__mon *m) {
  pthread_mutexattr_t a;
  if (pthread_mutexattr_init(&a) != 0) return KILN_EIO;
  int rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  if (rc == 0) rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  if (rc == 0) rc = pthread_mutex_init(&m->mu, &a);
  pthread_mutexattr_destroy(&a);
  atomic_init(&m->seq, 0);
  atomic_init(&m->nsleep, 0);
  return rc == 0 ? 0 : KILN_EIO;
}

static atomic_int g_ncpu; /* online CPUs, 0 until first asked */

/* Whether spinning can help: not on a single CPU, where the holder or the peer cannot run while
 * this thread spins. */
static bool may_spin(void) {
  /* relaxed: every thread computes the same value; a race only repeats the sysconf */
  int ncpu = atomic_load_explicit(&g_ncpu, memory_order_relaxed);
  if (ncpu == 0) {
    ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
    atomic_store_explicit(&g_ncpu, ncpu > 0 ? ncpu : 1, memory_order_relaxed);
  }
  return ncpu > 1;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

void kiln__mon_lock(kiln__mon *m) {
  /* The monitor is held for a few stores at a time: a short spin on trylock usually gets it
   * without the futex sleep and wake-up a contended robust mutex costs both sides. */
  int rc = pthread_mutex_trylock(&m->mu);
  if (rc == EBUSY && may_spin()) {
    for (int i = 0; i < 200 && rc == EBUSY; i++) {
      cpu_relax();
      rc = pthread_mutex_trylock(&m->mu);
    }
  }
  if (rc == EBUSY) rc = pthread_mutex_lock(&m->mu);
  /* A process died inside a critical section. Those only store whole fields, so the state is
   * usable as it is; the object's own rules (dead holder of a lock) report what matters. */
  if (rc == EOWNERDEAD) pthread_mutex_consistent(&m->mu);
}

void kiln__mon_unlock(kiln__mon *m) { pthread_mutex_unlock(&m->mu); }

static long futex(_Atomic uint32_t *w, int op, uint32_t val, const struct timespec *ts) {
  /* The kernel reads the word as a plain uint32_t; the atomic type is only for the C side. */
  return syscall(SYS_futex, (uint32_t *)w, op, val, ts, NULL, FUTEX_BITSET_MATCH_ANY);
}

/* Before sleeping, watches seq for a while: a queue's peer usually answers within that (a 64 KiB
 * message is a few microseconds of copying on each side), and a wake caught here costs neither side
 * a system call or a context switch. */
static bool spin_for_wake(kiln__mon *m, uint32_t seen, double until) {
  static const double SPIN = 50e-6;
  if (!may_spin()) return false;
  double end = kiln__now() + SPIN;
  if (end > until) end = until;
  do {
    for (int i = 0; i < 64; i++) {
      /* relaxed: a change is only a hint; the caller re-reads the state under mu */
      if (atomic_load_explicit(&m->seq, memory_order_relaxed) != seen) return true;
      cpu_relax();
    }
  } while (kiln__now() < end);
  return false;
}

bool kiln__mon_wait(kiln__mon *m, double deadline, bool poll) {
  /* relaxed: seq is only ever changed under mu, which this thread holds */
  uint32_t seen = atomic_load_explicit(&m->seq, memory_order_relaxed);
  double until = deadline;
  if (poll) {
    double slice = kiln__now() + POLL_SLICE;
    if (slice < until) until = slice;
  }
  kiln__mon_unlock(m);
  bool woken = spin_for_wake(m, seen, until);
  if (!woken) {
    /* Only a thread about to sleep counts in nsleep, so that wakers skip the system call while
     * their peer merely spins. seq_cst on both sides (this increment, then the kernel's read of
     * seq; the waker's increment of seq, then its read of nsleep): either the waker sees this
     * sleeper and wakes it, or the futex sees seq moved and returns at once. */
    atomic_fetch_add_explicit(&m->nsleep, 1, memory_order_seq_cst);
    atomic_thread_fence(memory_order_seq_cst);
    struct timespec ts;
    kiln__abs_timespec(until, &ts);
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline; not FUTEX_PRIVATE, so it
     * works between processes. It returns at once when seq has moved since it was read. */
    futex(&m->seq, FUTEX_WAIT_BITSET, seen, until < INFINITY ? &ts : NULL);
    atomic_fetch_sub_explicit(&m->nsleep, 1, memory_order_relaxed);
  }
  kiln__mon_lock(m);
  return woken || atomic_load_explicit(&m->seq, memory_order_relaxed) != seen;
}

void kiln__mon_wake(kiln__mon *m) {
  /* seq_cst: pairs with the sleeper's increment of nsleep (see kiln__mon_wait) */
  atomic_fetch_add_explicit(&m->seq, 1, memory_order_seq_cst);
  if (atomic_load_explicit(&m->nsleep, memory_order_seq_cst))
    futex(&m->seq, FUTEX_WAKE, INT_MAX, NULL);
}

/* ---- holder identities ---- */

/* Field 22 of /proc/PID/stat (start time in clock ticks since boot) and the state letter. */
static bool read_stat(int pid, char *state, uint64_t *start) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return false;
  buf[n] = 0;
  char *p = strrchr(buf, ')'); /* the command name may hold spaces and ')' */
  if (!p) return false;
  unsigned long long st = 0;
  /* after ") ": state, then fields 4..21, then starttime */
  if (sscanf(p + 2, "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
             state, &st) != 2)
    return false;
  *start = st;
  return true;
}

/* Per thread: this process's pid, the thread's tid and the process's start time, so that the
 * hot paths (a queue's large copy records its copier) make no system call. A forked child
 * inherits the variables and must not use its parent's values: a fork handler moves g_forks on
 * in the child, and a thread whose t_forks differs reads them again. (kiln forks only through
 * fork(), which runs the handlers.) The start time is remembered only once known: when /proc
 * cannot be read (out of descriptors, say) it stays 0, unknown, and the next call tries again;
 * recording 0 as if known would make every other process see this one as dead. */
static atomic_uint g_forks;
static _Thread_local unsigned t_forks = UINT_MAX;
static _Thread_local int t_pid, t_tid;
static _Thread_local uint64_t t_start;
static pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;

/* relaxed: only the forking thread exists in the child when it runs */
static void on_fork_child(void) { atomic_fetch_add_explicit(&g_forks, 1, memory_order_relaxed); }
static void install_atfork(void) { pthread_atfork(NULL, NULL, on_fork_child); }

static void self_refresh(void) {
  pthread_once(&g_atfork_once, install_atfork);
  unsigned forks = atomic_load_explicit(&g_forks, memory_order_relaxed);
  if (t_forks == forks) return;
  t_pid = (int)getpid();
  t_tid = (int)syscall(SYS_gettid);
  t_start = 0;
  t_forks = forks;
}

static int self_pid(void) {
  self_refresh();
  return t_pid;
}

static uint64_t self_start(void) {
  self_refresh();
  if (t_start == 0) {
    char st;
    uint64_t start = 0;
    if (read_stat(t_pid, &st, &start)) t_start = start;
  }
  return t_start;
}

void kiln__powner_self(kiln__powner *o) {
  o->start = self_start();
  o->pid = (int32_t)t_pid;
  o->tid = (int32_t)t_tid;
}

/* Whether o may be this process: its pid, and its start time or an unknown one on either side.
 * The same pid with another start time is an earlier process that had this pid, and died. */
static bool same_process(const kiln__powner *o) {
  if (o->pid != (int32_t)self_pid()) return false;
  uint64_t me = self_start();
  return o->start == 0 || me == 0 || o->start == me;
}

/* With pid's main thread a zombie: whether other threads of it still run. A main thread that
 * ended with pthread_exit shows the whole process as Z in /proc/PID/stat while the others go
 * on, and one of them may hold the lock. Unsure (no descriptor free) counts as running. */
static bool zombie_has_threads(int pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task", pid);
  DIR *d = opendir(path);
  if (!d) return errno != ENOENT && errno != ESRCH;
  bool others = false;
  struct dirent *e;
  while (!others && (e = readdir(d)))
    others = e->d_name[0] != '.' && atoi(e->d_name) != pid;
  closedir(d);
  return others;
}

bool kiln__powner_dead(const kiln__powner *o) {
  if (o->pid == (int32_t)self_pid()) return !same_process(o);
  char st;
  uint64_t start;
  /* Without a readable /proc (not mounted, or hidden), only a pid that no longer exists counts
   * as dead: never take a lock from a holder that may be alive. The same goes for a holder whose
   * start time is unknown: a live process with its pid may be it. */
  if (!read_stat(o->pid, &st, &start)) return kill(o->pid, 0) != 0 && errno == ESRCH;
  if (o->start != 0 && start != o->start) return true; /* the pid was reused */
  return (st == 'Z' || st == 'X') && !zombie_has_threads(o->pid);
}

bool kiln__powner_is_me(const kiln__powner *o) {
  return same_process(o) && o->tid == (int32_t)t_tid; /* same_process refreshed t_tid */
}

/* ---- the lock core ---- */

int kiln__plk_acquire(kiln__mon *m, kiln__plk *l, double deadline) {
  if (l->count && l->recursive && kiln__powner_is_me(&l->owner)) {
    if (l->count == UINT32_MAX) return KILN_EINVAL;
    l->count++;
    return 0;
  }
  int rc = 0;
  bool check = true; /* check the holder at once, then after every quiet slice */
  while (l->count) {
    if (check && kiln__powner_dead(&l->owner)) {
      rc = KILN_EOWNERDEAD;
      break;
    }
    if (kiln__now() >= deadline) return KILN_ETIMEDOUT;
    check = !kiln__mon_wait(m, deadline, true);
  }
  l->count = 1;
  kiln__powner_self(&l->owner);
  return rc;
}

int kiln__plk_release(kiln__mon *m, kiln__plk *l) {
  if (!l->count || (l->recursive && !kiln__powner_is_me(&l->owner))) return KILN_ESTATE;
  if (l->recursive && --l->count) return 0;
  l->count = 0;
  kiln__mon_wake(m);
  return 0;
}

/* ---- objects in a segment of their own ---- */

int kiln__pobj_create(kiln__pobj *o, const char *name, size_t size) {
  memset(o, 0, sizeof *o);
  int rc = kiln_shm_create(name, size, &o->shm);
  if (rc != 0) return rc;
  o->creator = (int)getpid();
  o->mem = kiln_shm_data(o->shm);
  return 0;
}

int kiln__pobj_check(const void *mem, uint32_t type) {
  const kiln__phdr *h = mem;
  /* acquire: pairs with the release in kiln__pobj_publish, so the rest of the object is seen
   * initialised */
  if (atomic_load_explicit(&h->magic, memory_order_acquire) != KILN__PMAGIC) return KILN_EINVAL;
  return h->type == type ? 0 : KILN_EINVAL;
}

void kiln__pobj_publish(void *mem, uint32_t type) {
  kiln__phdr *h = mem;
  h->type = type;
  atomic_store_explicit(&h->magic, KILN__PMAGIC, memory_order_release);
}

int kiln__pobj_attach(kiln__pobj *o, const char *name, uint32_t type, size_t size) {
  memset(o, 0, sizeof *o);
  int rc = kiln_shm_attach(name, &o->shm);
  if (rc != 0) return rc;
  o->mem = kiln_shm_data(o->shm);
  if (size < sizeof(kiln__phdr)) size = sizeof(kiln__phdr);
  if (kiln_shm_size(o->shm) < size || kiln__pobj_check(o->mem, type) != 0) {
    kiln_shm_close(o->shm);
    o->shm = NULL;
    return KILN_EINVAL;
  }
  return 0;
}

void kiln__pobj_fini(kiln__pobj *o) {
  if (!o->shm) return;
  if (o->creator == (int)getpid()) kiln_shm_unlink(o->shm);
  kiln_shm_close(o->shm);
  o->shm = NULL;
}

int kiln__pobj_new(size_t hsize, const char *name, size_t size,
                   int (*init)(void *mem, const void *arg), const void *arg, void **out) {
  *out = NULL;
  kiln__pobj *h = calloc(1, hsize);
  if (!h) return KILN_ENOMEM;
  int rc = kiln__pobj_create(h, name, size);
  if (rc == 0) rc = init(h->mem, arg);
  if (rc != 0) {
    kiln__pobj_fini(h);
    free(h);
    return rc;
  }
  *out = h;
  return 0;
}

int kiln__pobj_open(size_t hsize, const char *name, uint32_t type, size_t size, void **out) {
  *out = NULL;
  kiln__pobj *h = calloc(1, hsize);
  if (!h) return KILN_ENOMEM;
  int rc = kiln__pobj_attach(h, name, type, size);
  if (rc != 0) {
    free(h);
    return rc;
  }
  *out = h;
  return 0;
}

int kiln__pobj_at(size_t hsize, void *mem, uint32_t type, void **out) {
  *out = NULL;
  int rc = kiln__pobj_check(mem, type);
  if (rc != 0) return rc;
  kiln__pobj *h = calloc(1, hsize);
  if (!h) return KILN_ENOMEM;
  h->mem = mem;
  *out = h;
  return 0;
}

void kiln__pobj_free(void *h) {
  if (!h) return;
  kiln__pobj_fini(h);
  free(h);
}
