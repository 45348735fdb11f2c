/* ppool.c: the process pool: a FIFO of jobs, and one slot per worker process, each served by its
 * own thread (fine for the tens of workers a machine runs).
 *
 * A slot thread takes a batch of jobs from the queue (up to a fair share of what is queued, at
 * most 64 jobs or 16 MiB, never past the worker's maxtasksperchild) and sends it as one message.
 * It keeps up to two batches in flight: once half of the older one is answered it sends the next,
 * so the worker never waits for the parent between batches. The worker answers each job with its
 * own message as soon as it is done; the slot reads them straight from the socket (read_reply),
 * many per system call, and completes the jobs in order. It also writes its batches to the socket
 * itself (send_batch), reading replies while the worker is not taking the batch, since a worker
 * reads its next batch only after it has sent every reply of the current one.
 *
 * End of stream on the connection, or the worker's end (its pidfd: a process it forked may still
 * hold the connection) once its replies are read, means the worker died: the oldest job in flight
 * is the one it died in. With break_on_worker_death the pool is then broken (every job not done
 * fails with KILN_EBROKEN, the other workers are killed); otherwise that job fails with
 * KILN_EKILLED / KILN_EEXITED, the jobs sent after it go back to the head of the queue, and the
 * slot starts a replacement before it reports the failure. A worker that has run
 * maxtasksperchild jobs exits by itself after its last reply and is replaced the same way.
 *
 * Shutdown: close lets the slots drain the queue, then each closes its connection (the worker
 * exits at end of stream) and joins its process. terminate cancels the queue and kills every
 * worker; each slot thread sees end of stream and fails the jobs in flight with KILN_ECANCELLED.
 *
 * Lock: one mutex, p->mu, guards the queue, the state and each slot's proc pointer (terminate
 * kills through it while the slot thread may be replacing it). Nothing is called under it that
 * could call back into the pool: jobs are finished (promises completed, callbacks run) outside
 * it. Everything else of a slot (conn, fd, the flight ring, the reply buffer) belongs to its
 * thread alone. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ppool_internal.h"
#include "proc_internal.h"
/* kiln__channel_share: the slot reads its end's socket itself (read_reply); proc/ does not see
 * sync/ otherwise */
#include "../sync/sync_internal.h"

enum { BATCH_MAX = 64, FLIGHT = 2 * BATCH_MAX, BATCH_BYTES = 16 << 20 };
typedef enum { P_RUNNING, P_CLOSED, P_TERMINATED } pstate;

typedef struct slot {
  kiln_ppool *pool;
  pthread_t thread;
  kiln_process *proc; /* under p->mu; NULL between a worker's end and its replacement */
  kiln_channel *conn;    /* slot thread only, as the rest below */
  uint32_t ntasks;       /* jobs sent to the current worker */
  kiln__pjob *flight[FLIGHT]; /* jobs sent and not answered yet, oldest at fhead */
  size_t fhead, fcount;
  int fd;            /* conn's socket, read directly (see read_reply) */
  bool send_failed;  /* a batch could not be sent: nothing more goes to this worker */
  uint8_t *in;       /* replies received: bytes [ihead, itail) not consumed yet */
  size_t ihead, itail, icap;
  uint8_t *out;       /* the batch message buffer */
  size_t outcap;
} slot;

struct kiln_ppool {
  pthread_mutex_t mu;
  pthread_cond_t cv; /* jobs queued, or the state changed */
  kiln__pjob *head, *tail;
  size_t queued;
  pstate state;
  bool broken;
  kiln_ppool_config cfg;
  uint8_t *wcfg; /* the workers' config bytes (ppool_internal.h) */
  size_t wcfg_len;
  int n;
  int nthreads; /* slot threads started */
  slot *slots;
  pthread_mutex_t join_mu; /* serialises join; taken before mu, never under it */
  bool joined;
};

void kiln_ppool_config_default(kiln_ppool_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->start = KILN_START_FORKSERVER;
}

/* ---- the queue -------------------------------------------------------------------------------- */

int kiln__ppool_enqueue(kiln_ppool *p, kiln__pjob *head, size_t n) {
  kiln__pjob *last = head;
  while (last && last->next) last = last->next;
  pthread_mutex_lock(&p->mu);
  int rc = p->broken ? KILN_EBROKEN : p->state != P_RUNNING ? KILN_ESHUTDOWN : 0;
  if (rc == 0 && n) {
    if (p->tail)
      p->tail->next = head;
    else
      p->head = head;
    p->tail = last;
    p->queued += n;
    if (n > 1)
      pthread_cond_broadcast(&p->cv);
    else
      pthread_cond_signal(&p->cv);
  }
  pthread_mutex_unlock(&p->mu);
  return rc;
}

/* Takes the whole queue (under p->mu). */
static kiln__pjob *steal_queue(kiln_ppool *p) {
  kiln__pjob *h = p->head;
  p->head = p->tail = NULL;
  p->queued = 0;
  return h;
}

/* Puts jobs[0..n) back at the head of the queue, in order (under p->mu). Their single tasks are
 * already marked running: take is not asked again. */
static void requeue(kiln_ppool *p, kiln__pjob **jobs, size_t n) {
  for (size_t i = n; i-- > 0;) {
    jobs[i]->take = NULL;
    jobs[i]->next = p->head;
    p->head = jobs[i];
    if (!p->tail) p->tail = jobs[i];
    p->queued++;
  }
  pthread_cond_broadcast(&p->cv);
}

static void finish_all(kiln__pjob *h, int code, const char *msg) {
  while (h) {
    kiln__pjob *next = h->next;
    h->finish(h, NULL, 0, code, msg);
    kiln__pjob_free(h);
    h = next;
  }
}

/* Kills every worker (under p->mu). */
static void kill_all(kiln_ppool *p) {
  for (int i = 0; i < p->n; i++)
    if (p->slots[i].proc) kiln_process_kill(p->slots[i].proc);
}

/* Marks the pool broken and returns the queue, to be failed with KILN_EBROKEN (under p->mu). */
static kiln__pjob *break_pool(kiln_ppool *p) {
  p->broken = true;
  kill_all(p);
  pthread_cond_broadcast(&p->cv);
  return steal_queue(p);
}

/* ---- workers ---------------------------------------------------------------------------------- */

/* Starts the slot's worker process. 0 or the code of kiln_channel_pair / kiln_process_start. */
static int start_worker(kiln_ppool *p, slot *s) {
  kiln_channel *mine, *theirs;
  /* a socket stream: the slot reads it itself (read_reply) */
  int rc = kiln__channel_pair_socket(true, &mine, &theirs);
  if (rc) return rc;
  kiln_process_config pc;
  kiln_process_config_default(&pc);
  pc.start = p->cfg.start;
  pc.daemon = true; /* as Pool's workers: they die with the program */
  pc.name = "kiln-ppool";
  pc.channels = &theirs;
  pc.nchannels = 1;
  kiln_process *proc;
  rc = kiln_process_start(&pc, kiln__ppool_worker_main, p->wcfg, p->wcfg_len, &proc);
  kiln_channel_destroy(theirs); /* so that the worker's death is end of stream here */
  if (rc) {
    kiln_channel_destroy(mine);
    return rc;
  }
  pthread_mutex_lock(&p->mu);
  s->proc = proc;
  /* terminated or broken while it started: it must not outlive the pool's other workers */
  if (p->state == P_TERMINATED || p->broken) kiln_process_kill(proc);
  pthread_mutex_unlock(&p->mu);
  bool can_send, can_recv;
  kiln__channel_share(mine, &s->fd, &can_send, &can_recv); /* open: cannot fail */
  s->conn = mine;
  s->ntasks = 0;
  s->send_failed = false;
  s->ihead = s->itail = 0;
  return 0;
}

/* Ends the slot's current worker: closes the connection (a live worker exits at end of stream),
 * waits for it (killing one that does not end within a second of that) and frees it. Its exit
 * code in *code (0 if unknown). */
static void reap_worker(kiln_ppool *p, slot *s, int *code) {
  *code = 0;
  kiln_channel_destroy(s->conn);
  s->conn = NULL;
  s->ntasks = 0;
  pthread_mutex_lock(&p->mu);
  kiln_process *proc = s->proc;
  pthread_mutex_unlock(&p->mu);
  if (!proc) return;
  if (kiln_process_join(proc, 1.0) == KILN_ETIMEDOUT) {
    kiln_process_kill(proc);
    kiln_process_join(proc, -1);
  }
  kiln_process_exitcode(proc, code);
  pthread_mutex_lock(&p->mu);
  s->proc = NULL;
  pthread_mutex_unlock(&p->mu);
  kiln_process_destroy(proc);
}

/* What a worker's exit code says, for the job it died in. */
static int death_code(int pid, int exitcode, char *msg, size_t cap) {
  if (exitcode < 0) {
    const char *abbrev = sigabbrev_np(-exitcode);
    snprintf(msg, cap, "worker %d killed by SIG%s (signal %d)", pid, abbrev ? abbrev : "?",
             -exitcode);
    return KILN_EKILLED;
  }
  snprintf(msg, cap, "worker %d exited with status %d", pid, exitcode);
  return KILN_EEXITED;
}

static void replace_worker(kiln_ppool *p, slot *s);

/* The worker of slot s died (or its connection failed) with jobs[0..n) not answered; jobs[0] is
 * the one it was running. Completes or requeues them and reaps the worker. */
static void worker_died(kiln_ppool *p, slot *s, kiln__pjob **jobs, size_t n) {
  int pid = kiln_process_pid(s->proc), exitcode;
  reap_worker(p, s, &exitcode);
  char why[160], msg[256];
  int code = death_code(pid, exitcode, why, sizeof why);
  kiln__pjob *rest = NULL;
  bool requeued = false;
  pthread_mutex_lock(&p->mu);
  if (p->state == P_TERMINATED) {
    code = KILN_ECANCELLED;
    snprintf(msg, sizeof msg, "the pool was terminated");
  } else if (p->broken || p->cfg.break_on_worker_death) {
    if (!p->broken) rest = break_pool(p);
    code = KILN_EBROKEN;
    snprintf(msg, sizeof msg, "a worker of the process pool died abruptly (%s): the pool is broken",
             why);
  } else {
    snprintf(msg, sizeof msg, "%s", why);
    requeue(p, jobs + 1, n - 1); /* they never started; only jobs[0] fails */
    requeued = true;
  }
  pthread_mutex_unlock(&p->mu);
  /* the replacement starts before the failure is reported: whoever sees it sees the full pool */
  if (requeued) replace_worker(p, s);
  for (size_t i = 0; i < (requeued ? 1 : n); i++) {
    jobs[i]->finish(jobs[i], NULL, 0, code, msg);
    kiln__pjob_free(jobs[i]);
  }
  finish_all(rest, KILN_EBROKEN, msg);
}

/* ---- slot threads ----------------------------------------------------------------------------- */

/* Takes a batch of at most cap jobs into jobs[]: its count, or 0 when there is none to take (with
 * wait: only once the slot is to stop: closed and drained, terminated, broken). Jobs whose owner
 * cancelled them are completed here, outside the lock, and not counted. */
static size_t take_batch(kiln_ppool *p, slot *s, kiln__pjob **jobs, size_t cap, bool wait) {
  for (;;) {
    pthread_mutex_lock(&p->mu);
    while (wait && p->state != P_TERMINATED && !p->broken && !p->queued && p->state != P_CLOSED)
      pthread_cond_wait(&p->cv, &p->mu);
    size_t k = (p->queued + (size_t)p->n - 1) / (size_t)p->n; /* a fair share */
    if (k > cap) k = cap;
    uint32_t max = p->cfg.maxtasksperchild;
    if (max && k > max - s->ntasks) k = max - s->ntasks;
    if (p->state == P_TERMINATED || p->broken || k == 0) {
      pthread_mutex_unlock(&p->mu);
      return 0;
    }
    size_t bytes = 0;
    for (size_t i = 0; i < k; i++) {
      /* a batch stays well under a channel message's 4 GiB: at least one job, then 16 MiB */
      if (i && bytes + p->head->wire_len > BATCH_BYTES) {
        k = i;
        break;
      }
      bytes += p->head->wire_len;
      jobs[i] = p->head;
      p->head = p->head->next;
      jobs[i]->next = NULL;
    }
    if (!p->head) p->tail = NULL;
    p->queued -= k;
    pthread_mutex_unlock(&p->mu);
    size_t kept = 0;
    for (size_t i = 0; i < k; i++) {
      if (!jobs[i]->take || jobs[i]->take(jobs[i])) {
        jobs[kept++] = jobs[i];
      } else {
        jobs[i]->finish(jobs[i], NULL, 0, KILN_ECANCELLED, "cancelled");
        kiln__pjob_free(jobs[i]);
      }
    }
    if (kept) return kept;
  }
}

/* Makes room for need bytes of a message at the buffer's start. 0 or -1 (no memory). */
static int in_room(slot *s, size_t need) {
  size_t avail = s->itail - s->ihead;
  if (s->ihead) memmove(s->in, s->in + s->ihead, avail);
  s->ihead = 0, s->itail = avail;
  if (need <= s->icap && s->icap - avail >= 4096) return 0;
  size_t cap = s->icap ? s->icap * 2 : 64 << 10;
  while (cap < need) cap *= 2;
  uint8_t *b = realloc(s->in, cap);
  if (!b) return -1;
  s->in = b, s->icap = cap;
  return 0;
}

/* Waits until the worker's socket has one of events, or the worker has ended (*ended): a process
 * the worker forked may keep its end of the connection open, so the worker's end shows in its
 * pidfd, not always as end of stream. Once it has ended, whatever it sent is in the socket. The
 * socket's revents, or -1 on a failure. */
static int wait_worker(slot *s, short events, bool *ended) {
  struct pollfd pf[2] = {{.fd = s->fd, .events = events},
                         {.fd = kiln_process_sentinel(s->proc), .events = POLLIN}};
  while (poll(pf, 2, -1) < 0)
    if (errno != EINTR) return -1;
  *ended = pf[1].revents != 0;
  return pf[0].revents;
}

/* Reads the replies waiting on the socket into the buffer, without blocking, to be completed
 * later by receive_one. 0, or -1 at end of stream or on a failure. */
static int absorb_replies(slot *s) {
  for (;;) {
    if (in_room(s, s->itail - s->ihead + 4096) != 0) return -1;
    ssize_t n = recv(s->fd, s->in + s->itail, s->icap - s->itail, MSG_DONTWAIT);
    if (n > 0) {
      s->itail += (size_t)n;
    } else if (n == 0 || errno != EINTR) {
      return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
    }
  }
}

/* Sends jobs[0..n) as one message, in the channel's framing (see read_reply), writing the socket
 * itself: while the worker does not take the batch (it is still sending a reply that fills the
 * socket's buffer, and reads its next batch only after that), the replies are read into the
 * buffer, so that neither side waits for the other forever. 0, KILN_ENOMEM, or KILN_EIO (the
 * worker is gone or its connection failed). */
static int send_batch(slot *s, kiln__pjob **jobs, size_t n) {
  size_t total = 8;
  for (size_t i = 0; i < n; i++) total += jobs[i]->wire_len;
  if (total > s->outcap) {
    uint8_t *b = realloc(s->out, total);
    if (!b) return KILN_ENOMEM;
    s->out = b, s->outcap = total;
  }
  size_t body = total - 4; /* under 4 GiB: a batch holds one job, or 16 MiB of them */
  uint8_t hdr[4] = {(uint8_t)(body >> 24), (uint8_t)(body >> 16), (uint8_t)(body >> 8),
                    (uint8_t)body};
  uint32_t nj = (uint32_t)n;
  memcpy(s->out, hdr, 4);
  memcpy(s->out + 4, &nj, 4);
  size_t at = 8;
  for (size_t i = 0; i < n; i++) {
    memcpy(s->out + at, jobs[i]->wire, jobs[i]->wire_len);
    at += jobs[i]->wire_len;
  }
  for (size_t done = 0; done < total;) {
    ssize_t w = send(s->fd, s->out + done, total - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w >= 0) {
      done += (size_t)w;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return KILN_EIO;
    bool ended;
    int ev = wait_worker(s, POLLIN | POLLOUT, &ended);
    if (ev < 0) return KILN_EIO;
    if ((ended || (ev & (POLLIN | POLLHUP | POLLERR))) && absorb_replies(s) != 0) return KILN_EIO;
    if (ended) return KILN_EIO; /* the batch can no longer be taken */
  }
  return 0;
}

/* Starts a worker for a slot that has none. false when that failed: the pool is then broken and
 * jobs[0..n) (and the queue) have been failed. */
static bool ensure_worker(kiln_ppool *p, slot *s, kiln__pjob **jobs, size_t n) {
  if (s->conn) return true;
  int rc = start_worker(p, s);
  if (rc == 0) return true;
  char msg[160];
  snprintf(msg, sizeof msg, "cannot start a worker process: %s", kiln_strerror(rc));
  pthread_mutex_lock(&p->mu);
  kiln__pjob *rest = break_pool(p);
  pthread_mutex_unlock(&p->mu);
  for (size_t i = 0; i < n; i++) {
    jobs[i]->finish(jobs[i], NULL, 0, KILN_EBROKEN, msg);
    kiln__pjob_free(jobs[i]);
  }
  finish_all(rest, KILN_EBROKEN, msg);
  return false;
}

/* Starts the replacement of a worker that has ended, at once, so that the pool keeps its size
 * (PPE-02); not when the pool is ending anyway. */
static void replace_worker(kiln_ppool *p, slot *s) {
  pthread_mutex_lock(&p->mu);
  bool more = !p->broken && (p->state == P_RUNNING || (p->state == P_CLOSED && p->queued));
  pthread_mutex_unlock(&p->mu);
  if (more) ensure_worker(p, s, NULL, 0);
}

/* The worker died with the jobs in flight unanswered: they go to worker_died in order. */
static void flight_died(kiln_ppool *p, slot *s) {
  kiln__pjob *jobs[FLIGHT];
  size_t n = s->fcount;
  for (size_t i = 0; i < n; i++) jobs[i] = s->flight[(s->fhead + i) % FLIGHT];
  s->fcount = 0;
  worker_died(p, s, jobs, n);
}

/* Takes a batch (waiting for one only with wait) and sends it to the slot's worker, starting one
 * first if it has none. false when nothing was sent. */
static bool dispatch(kiln_ppool *p, slot *s, bool wait) {
  kiln__pjob *jobs[BATCH_MAX];
  size_t cap = FLIGHT - s->fcount < BATCH_MAX ? FLIGHT - s->fcount : BATCH_MAX;
  size_t n = take_batch(p, s, jobs, cap, wait);
  if (n == 0) return false;
  /* a worker that died while idle (killed from outside) is replaced, not blamed */
  if (s->fcount == 0 && s->conn && !kiln_process_is_alive(s->proc)) reap_worker(p, s, &(int){0});
  if (!ensure_worker(p, s, jobs, n)) return false;
  for (size_t i = 0; i < n; i++) s->flight[(s->fhead + s->fcount++) % FLIGHT] = jobs[i];
  s->ntasks += (uint32_t)n;
  if (send_batch(s, jobs, n) != 0) {
    /* Not blamed here: replies the worker sent before it died may still wait unread, and the job
     * it died in is the first one without a reply. So nothing more is sent; the slot reads what
     * is left until end of stream (the kill makes sure it comes, whatever failed). */
    s->send_failed = true;
    pthread_mutex_lock(&p->mu);
    kiln_process_kill(s->proc);
    pthread_mutex_unlock(&p->mu);
  }
  return true;
}

/* The next reply from the worker, in the channel's framing (4-byte big-endian length, then the
 * bytes). The slot reads its end's socket itself, into one buffer, because replies come one per
 * job: a read takes every reply waiting, where kiln_channel_recv would make two system calls and
 * an allocation for each. 0 and *msg pointing into the buffer (valid until the next call), or -1
 * at end of stream, once the worker has ended and its replies are read, or on a failure (the
 * worker is then treated as dead). */
static int read_reply(slot *s, const uint8_t **msg, size_t *len) {
  bool ended = false;
  for (;;) {
    size_t avail = s->itail - s->ihead, need = 4;
    if (avail >= 4) {
      const uint8_t *h = s->in + s->ihead;
      size_t l = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
      if (avail >= 4 + l) {
        *msg = h + 4, *len = l;
        s->ihead += 4 + l;
        return 0;
      }
      need = 4 + l;
    }
    if (in_room(s, need) != 0) return -1;
    ssize_t n = recv(s->fd, s->in + s->itail, s->icap - s->itail, MSG_DONTWAIT);
    if (n > 0) {
      s->itail += (size_t)n;
    } else if (n == 0) {
      return -1;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      /* nothing more will come from a worker that has ended */
      if (ended || wait_worker(s, POLLIN, &ended) < 0) return -1;
    } else if (errno != EINTR) {
      return -1;
    }
  }
}

/* Receives the reply to the oldest job in flight and completes it. */
static void receive_one(kiln_ppool *p, slot *s) {
  const uint8_t *msg;
  size_t len;
  if (read_reply(s, &msg, &len) != 0) {
    flight_died(p, s);
    return;
  }
  kiln__pjob *j = s->flight[s->fhead];
  s->fhead = (s->fhead + 1) % FLIGHT;
  s->fcount--;
  j->finish(j, msg, len, 0, NULL);
  kiln__pjob_free(j);
  if (s->ihead == s->itail && s->icap > (4u << 20)) {
    /* a large reply passed: do not keep its buffer for the worker's life */
    free(s->in);
    s->in = NULL;
    s->ihead = s->itail = s->icap = 0;
  }
}

/* A slot's thread. Up to two batches are in flight, so the worker finds the next one waiting when
 * it finishes a batch: a new batch goes out once half of the older one is answered. */
static void *slot_main(void *arg) {
  slot *s = arg;
  kiln_ppool *p = s->pool;
  uint32_t max = p->cfg.maxtasksperchild;
  for (;;) {
    if (s->fcount == 0 && !dispatch(p, s, true)) {
      pthread_mutex_lock(&p->mu);
      bool stop = p->state == P_TERMINATED || p->broken || (p->state == P_CLOSED && !p->queued);
      pthread_mutex_unlock(&p->mu);
      if (stop) break;
      continue; /* every job taken was cancelled */
    }
    receive_one(p, s);
    if (s->conn && !s->send_failed && s->fcount <= BATCH_MAX / 2) dispatch(p, s, false);
    if (s->conn && s->fcount == 0 && max && s->ntasks >= max) {
      reap_worker(p, s, &(int){0}); /* it exits by itself after its last reply */
      replace_worker(p, s);
    }
  }
  if (s->conn) reap_worker(p, s, &(int){0});
  return NULL;
}

/* ---- create, shutdown ------------------------------------------------------------------------- */

static int check_config(const kiln_ppool_config *cfg) {
  if (cfg->processes < 0 || cfg->processes > 4096) return KILN_EINVAL;
  if (cfg->start != KILN_START_FORKSERVER && cfg->start != KILN_START_FORK) return KILN_EINVAL;
  if (cfg->initarg_len && !cfg->initarg) return KILN_EINVAL;
  if (cfg->start == KILN_START_FORKSERVER && !kiln_forkserver_running()) return KILN_ESTATE;
  return 0;
}

static int make_wcfg(kiln_ppool *p) {
  p->wcfg_len = KILN__PWORKER_CFG_HEAD + p->cfg.initarg_len;
  p->wcfg = malloc(p->wcfg_len);
  if (!p->wcfg) return KILN_ENOMEM;
  uint64_t init = (uintptr_t)p->cfg.initializer;
  uint32_t max = p->cfg.maxtasksperchild;
  memcpy(p->wcfg, &init, 8);
  memcpy(p->wcfg + 8, &max, 4);
  if (p->cfg.initarg_len) memcpy(p->wcfg + 12, p->cfg.initarg, p->cfg.initarg_len);
  p->cfg.initarg = NULL; /* the copy in wcfg is the one used */
  return 0;
}

static void free_pool(kiln_ppool *p) {
  for (int i = 0; i < p->n; i++) free(p->slots[i].out), free(p->slots[i].in);
  free(p->slots);
  free(p->wcfg);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->join_mu);
  free(p);
}

/* Starts every worker first (with KILN_START_FORK, before any slot thread exists), then the
 * threads. */
static int start_all(kiln_ppool *p) {
  int rc = 0;
  for (int i = 0; i < p->n && rc == 0; i++) rc = start_worker(p, &p->slots[i]);
  for (int i = 0; i < p->n && rc == 0; i++) {
    if (pthread_create(&p->slots[i].thread, NULL, slot_main, &p->slots[i]) != 0)
      rc = KILN_ENOMEM;
    else
      p->nthreads++;
  }
  return rc;
}

int kiln_ppool_create(const kiln_ppool_config *cfg, kiln_ppool **out) {
  *out = NULL;
  kiln_ppool_config def;
  if (!cfg) kiln_ppool_config_default(&def), cfg = &def;
  int rc = check_config(cfg);
  if (rc) return rc;
  kiln_ppool *p = calloc(1, sizeof *p);
  if (!p) return KILN_ENOMEM;
  p->cfg = *cfg;
  p->n = cfg->processes ? cfg->processes : (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (p->n < 1) p->n = 1;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  pthread_mutex_init(&p->join_mu, NULL);
  p->slots = calloc((size_t)p->n, sizeof *p->slots);
  rc = p->slots ? make_wcfg(p) : KILN_ENOMEM;
  if (rc) {
    free_pool(p);
    return rc;
  }
  for (int i = 0; i < p->n; i++) p->slots[i].pool = p;
  rc = start_all(p);
  if (rc) {
    kiln_ppool_terminate(p);
    for (int i = 0; i < p->n; i++) {
      slot *s = &p->slots[i];
      if (i < p->nthreads)
        pthread_join(s->thread, NULL);
      else if (s->conn)
        reap_worker(p, s, &(int){0});
    }
    free_pool(p);
    return rc;
  }
  *out = p;
  return 0;
}

int kiln_ppool_close(kiln_ppool *p) {
  pthread_mutex_lock(&p->mu);
  if (p->state == P_RUNNING) p->state = P_CLOSED;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  return 0;
}

int kiln_ppool_terminate(kiln_ppool *p) {
  pthread_mutex_lock(&p->mu);
  p->state = P_TERMINATED;
  kiln__pjob *q = steal_queue(p);
  kill_all(p);
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  finish_all(q, KILN_ECANCELLED, "the pool was terminated");
  return 0;
}

int kiln_ppool_join(kiln_ppool *p) {
  pthread_mutex_lock(&p->mu);
  bool running = p->state == P_RUNNING;
  pthread_mutex_unlock(&p->mu);
  if (running) return KILN_ESTATE;
  pthread_mutex_lock(&p->join_mu);
  if (!p->joined) {
    for (int i = 0; i < p->nthreads; i++) pthread_join(p->slots[i].thread, NULL);
    p->joined = true;
  }
  pthread_mutex_unlock(&p->join_mu);
  return 0;
}

void kiln_ppool_destroy(kiln_ppool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  bool running = p->state == P_RUNNING;
  pthread_mutex_unlock(&p->mu);
  if (running) kiln_ppool_terminate(p);
  kiln_ppool_join(p);
  free_pool(p);
}

size_t kiln_ppool_pids(kiln_ppool *p, int *pids, size_t cap) {
  size_t k = 0;
  pthread_mutex_lock(&p->mu);
  for (int i = 0; i < p->n && k < cap; i++)
    if (p->slots[i].proc) pids[k++] = kiln_process_pid(p->slots[i].proc);
  pthread_mutex_unlock(&p->mu);
  return k;
}
