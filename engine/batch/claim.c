/* claim.c: chunks of a job's frames claimed through files in a folder that any number of
 * processes on any hosts share (docs/CLUSTER.md has the protocol and what it relies on).
 *
 * In the claim folder, for chunk 12:
 *   00000012.0, 00000012.1, ...  claims, generation 0 first; each made with O_CREAT | O_EXCL, so
 *                                of processes racing for one generation exactly one wins. The
 *                                file says "HOST PID"; its mtime is the heartbeat
 *   00000012.done                the chunk is finished (written atomically: temporary, rename)
 *   clock-HOST-PID-N             this process's clock: touched to read the folder's time, removed
 *                                when the run ends (or by the next run on HOST, once PID is gone)
 *
 * A claim is live while its heartbeat is younger than the timeout (its holder touches it every
 * timeout / 4). Taking over an expired generation g means creating g + 1, never removing or
 * rewriting g, so two processes that both find g expired cannot both win, and a holder that was
 * only stalled sees g + 1 at its next heartbeat and stops issuing the chunk's frames (frames it
 * already has in flight are written twice, harmlessly: images are a function of the frame, and
 * every file is renamed into place whole). Claims and done markers are only ever created, touched
 * or renamed into place, never deleted, so no process can mistake a removed claim for a free one.
 *
 * Ages are measured on the folder's own clock (the mtime a touch of this process's clock file
 * gets), not this host's, so hosts whose clocks disagree still agree on which claim expired: on
 * NFS a touch with UTIME_NOW sets the server's time. A holder on this host whose pid no longer
 * runs is expired at once, without waiting for the timeout.
 *
 * Lock order: c->mu only (the driver thread and the heartbeat thread share the list of held
 * claims). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "batch_internal.h"

enum { MAX_GENERATIONS = 10000 };

typedef struct held {
  uint64_t chunk;
  long gen;
  int fd;           /* the claim file, kept open to touch it */
  atomic_bool lost; /* generation gen + 1 exists: another process holds the chunk now */
  struct held *next;
} held;

struct kiln__claims {
  char dir[PATH_MAX];
  char host[40];
  double timeout_s;
  int clock_fd;
  char clock_path[PATH_MAX];
  double asked_at, folder_at; /* when (kiln__now) folder_now last asked the folder, its answer */
  pthread_mutex_t mu;         /* guards held, quit */
  pthread_cond_t cv;
  held *held;
  bool quit;
  pthread_t thread;
  bool thread_ok;
};

/* (kiln__claims_open keeps dir short enough for every name to fit) */
static void claim_name(const kiln__claims *c, uint64_t chunk, long gen, char *out, size_t cap) {
  int n = gen < 0 ? snprintf(out, cap, "%s/%08llu.done", c->dir, (unsigned long long)chunk)
                  : snprintf(out, cap, "%s/%08llu.%ld", c->dir, (unsigned long long)chunk, gen);
  if (n < 0 || (size_t)n >= cap) out[0] = 0;
}

static bool exists(const char *path) { return access(path, F_OK) == 0; }

static bool done_exists(const kiln__claims *c, uint64_t chunk) {
  char p[PATH_MAX];
  claim_name(c, chunk, -1, p, sizeof p);
  return exists(p);
}

static double ts_seconds(struct timespec t) { return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec; }

/* Now, on the folder's clock (this host's when the clock file cannot be touched). The folder is
 * asked at most twice a second; in between, this host's monotonic clock counts on from its last
 * answer (a run judging many claims at once touches its clock once). Called by the driver only. */
static double folder_now(kiln__claims *c) {
  double mono = kiln__now();
  if (c->asked_at > 0 && mono - c->asked_at < 0.5) return c->folder_at + (mono - c->asked_at);
  struct stat st;
  struct timespec t;
  if (c->clock_fd >= 0 && futimens(c->clock_fd, NULL) == 0 && fstat(c->clock_fd, &st) == 0)
    t = st.st_mtim;
  else clock_gettime(CLOCK_REALTIME, &t);
  c->asked_at = mono, c->folder_at = ts_seconds(t);
  return c->folder_at;
}

/* The newest generation of chunk's claims, -1 when it has none. */
static long newest(const kiln__claims *c, uint64_t chunk) {
  char p[PATH_MAX];
  long g = -1;
  for (;;) {
    claim_name(c, chunk, g + 1, p, sizeof p);
    if (g + 1 >= MAX_GENERATIONS || !exists(p)) return g;
    g++;
  }
}

/* Whether claim generation gen of chunk has expired: its heartbeat is older than the timeout, it
 * was given back (mtime 0), it is gone, or its holder ran on this host and runs no more. Opening
 * the file (not only stat) makes an NFS client fetch its attributes afresh (close-to-open). */
static bool expired(kiln__claims *c, uint64_t chunk, long gen) {
  char p[PATH_MAX], text[96] = "", host[40] = "";
  claim_name(c, chunk, gen, p, sizeof p);
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return true;
  struct stat st;
  bool ok = fstat(fd, &st) == 0;
  ssize_t n = pread(fd, text, sizeof text - 1, 0);
  close(fd);
  if (!ok) return false;
  text[n > 0 ? n : 0] = 0;
  long pid = 0;
  if (sscanf(text, "%39s %ld", host, &pid) == 2 && !strcmp(host, c->host) && pid > 0 &&
      pid != (long)getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH)
    return true;
  double age = folder_now(c) - ts_seconds(st.st_mtim);
  return st.st_mtim.tv_sec == 0 || age > c->timeout_s;
}

static void *heartbeat(void *arg) {
  kiln__claims *c = arg;
  pthread_mutex_lock(&c->mu);
  while (!c->quit) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    double t = ts_seconds(until) + c->timeout_s / 4;
    until.tv_sec = (time_t)t, until.tv_nsec = (long)((t - (double)(time_t)t) * 1e9);
    pthread_cond_timedwait(&c->cv, &c->mu, &until);
    if (c->quit) break;
    for (held *h = c->held; h; h = h->next) {
      (void)futimens(h->fd, NULL);
      char p[PATH_MAX];
      claim_name(c, h->chunk, h->gen + 1, p, sizeof p);
      if (exists(p)) atomic_store_explicit(&h->lost, true, memory_order_relaxed);
    }
  }
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

/* Removes the clock files that processes of this host which no longer run left (killed). */
static void sweep_clocks(const kiln__claims *c) {
  DIR *d = opendir(c->dir);
  if (!d) return;
  char prefix[64];
  int pl = snprintf(prefix, sizeof prefix, "clock-%s-", c->host);
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strncmp(e->d_name, prefix, (size_t)pl) != 0) continue;
    char *end;
    long pid = strtol(e->d_name + pl, &end, 10);
    if (pid <= 0 || *end != '-' || pid == (long)getpid()) continue;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s/%s", c->dir, e->d_name) < (int)sizeof p) unlink(p);
  }
  closedir(d);
}

/* timeout / 8 within [0.05 s, 5 s]: a claim that expires is seen within an eighth of its timeout,
 * and a run waiting at the end of a large job on many nodes does not flood the shared folder
 * (docs/CLUSTER.md counts it). */
double kiln__claims_poll_interval(const kiln__claims *c) {
  double t = c->timeout_s / 8;
  return t > 5.0 ? 5.0 : t < 0.05 ? 0.05 : t;
}

int kiln__claims_open(const char *dir, double timeout_s, kiln__claims **out, char *msg,
                      size_t msgcap) {
  *out = NULL;
  if (strlen(dir) > PATH_MAX - 100) {
    kiln__say(msg, msgcap, "the claim folder's path is too long: %s", dir);
    return KILN_EINVAL;
  }
  kiln__claims *c = calloc(1, sizeof *c);
  if (!c) {
    kiln__say(msg, msgcap, "out of memory");
    return KILN_ENOMEM;
  }
  snprintf(c->dir, sizeof c->dir, "%s", dir);
  kiln__tmp_host(c->host, sizeof c->host);
  c->timeout_s = timeout_s;
  c->clock_fd = -1;
  int e = kiln__make_dirs(dir, 0777);
  if (e) {
    kiln__say(msg, msgcap, "cannot create the claim folder %s: %s", dir, strerror(e));
    free(c);
    return KILN_EIO;
  }
  static atomic_ulong clocks; /* one clock file per claims object, also within one process */
  unsigned long k = atomic_fetch_add_explicit(&clocks, 1, memory_order_relaxed);
  if (snprintf(c->clock_path, sizeof c->clock_path, "%s/clock-%s-%ld-%lu", dir, c->host,
               (long)getpid(), k) < (int)sizeof c->clock_path)
    c->clock_fd = open(c->clock_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  sweep_clocks(c);
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, NULL);
  c->thread_ok = pthread_create(&c->thread, NULL, heartbeat, c) == 0;
  if (!c->thread_ok) {
    kiln__say(msg, msgcap, "cannot start the claims' heartbeat thread");
    kiln__claims_close(c);
    return KILN_ENOMEM;
  }
  *out = c;
  return 0;
}

/* Keeps fd as this process's claim of generation gen of chunk. */
static int hold(kiln__claims *c, uint64_t chunk, long gen, int fd) {
  held *h = calloc(1, sizeof *h);
  if (!h) return KILN_ENOMEM;
  h->chunk = chunk, h->gen = gen, h->fd = fd;
  atomic_init(&h->lost, false);
  pthread_mutex_lock(&c->mu);
  h->next = c->held, c->held = h;
  pthread_mutex_unlock(&c->mu);
  return 0;
}

/* Gives fd's claim back: an mtime of 0 is expired for every reader at once. */
static void give_back(int fd) {
  const struct timespec zero[2] = {{0, 0}, {0, 0}};
  (void)futimens(fd, zero);
  close(fd);
}

int kiln__claims_try(kiln__claims *c, uint64_t chunk, kiln__claim_result *res, char *msg,
                     size_t msgcap) {
  *res = KILN__CLAIM_BUSY;
  if (done_exists(c, chunk)) {
    *res = KILN__CLAIM_DONE;
    return 0;
  }
  long gen = newest(c, chunk);
  for (int tries = 0; tries < MAX_GENERATIONS; tries++) {
    if (gen >= 0 && !expired(c, chunk, gen)) return 0; /* busy */
    char p[PATH_MAX], text[96];
    claim_name(c, chunk, gen + 1, p, sizeof p);
    int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && errno == EEXIST) { /* another process won generation gen + 1: judge it */
      gen++;
      continue;
    }
    if (fd < 0) {
      kiln__say(msg, msgcap, "cannot create the claim %s: %s", p, strerror(errno));
      return KILN_EIO;
    }
    int n = snprintf(text, sizeof text, "%s %ld\n", c->host, (long)getpid());
    if (write(fd, text, (size_t)n) != n) { /* a claim that says nobody: give it back */
      int e = errno;
      give_back(fd);
      kiln__say(msg, msgcap, "cannot write the claim %s: %s", p, strerror(e ? e : EIO));
      return KILN_EIO;
    }
    if (done_exists(c, chunk)) { /* its holder finished it while we judged it */
      give_back(fd);
      *res = KILN__CLAIM_DONE;
      return 0;
    }
    if (hold(c, chunk, gen + 1, fd)) {
      give_back(fd);
      kiln__say(msg, msgcap, "out of memory");
      return KILN_ENOMEM;
    }
    *res = gen >= 0 ? KILN__CLAIM_TAKEN : KILN__CLAIM_MINE;
    return 0;
  }
  kiln__say(msg, msgcap, "chunk %llu has been claimed %d times", (unsigned long long)chunk,
            MAX_GENERATIONS);
  return KILN_EIO;
}

/* Unlinks the held claim of chunk from the list and returns it (NULL when not held). */
static held *unhold(kiln__claims *c, uint64_t chunk) {
  pthread_mutex_lock(&c->mu);
  held **pp = &c->held, *h = NULL;
  while (*pp && (*pp)->chunk != chunk) pp = &(*pp)->next;
  if ((h = *pp)) *pp = h->next;
  pthread_mutex_unlock(&c->mu);
  return h;
}

bool kiln__claims_lost(kiln__claims *c, uint64_t chunk) {
  bool lost = false;
  pthread_mutex_lock(&c->mu);
  for (held *h = c->held; h; h = h->next)
    if (h->chunk == chunk) lost = atomic_load_explicit(&h->lost, memory_order_relaxed);
  pthread_mutex_unlock(&c->mu);
  return lost;
}

bool kiln__claims_poll(kiln__claims *c, uint64_t chunk, bool *stale) {
  *stale = false;
  if (done_exists(c, chunk)) return true;
  long gen = newest(c, chunk);
  *stale = gen < 0 || expired(c, chunk, gen);
  return false;
}

int kiln__claims_finish(kiln__claims *c, uint64_t chunk, uint64_t written, uint64_t failed,
                        char *msg, size_t msgcap) {
  char p[PATH_MAX], text[160];
  claim_name(c, chunk, -1, p, sizeof p);
  int n = snprintf(text, sizeof text, "%s %ld written %llu failed %llu\n", c->host, (long)getpid(),
                   (unsigned long long)written, (unsigned long long)failed);
  int rc = kiln__write_atomic(p, text, (size_t)n, false, msg, msgcap);
  held *h = unhold(c, chunk);
  if (h) {
    close(h->fd); /* the claim stays: with the done marker beside it, it is never taken again */
    free(h);
  }
  return rc;
}

void kiln__claims_release(kiln__claims *c, uint64_t chunk) {
  held *h = unhold(c, chunk);
  if (!h) return;
  give_back(h->fd);
  free(h);
}

void kiln__claims_close(kiln__claims *c) {
  if (!c) return;
  if (c->thread_ok) {
    pthread_mutex_lock(&c->mu);
    c->quit = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
  }
  while (c->held) {
    held *h = c->held;
    c->held = h->next;
    give_back(h->fd);
    free(h);
  }
  if (c->clock_fd >= 0) {
    close(c->clock_fd);
    unlink(c->clock_path);
  }
  pthread_cond_destroy(&c->cv);
  pthread_mutex_destroy(&c->mu);
  free(c);
}
