/* pqueue.c: process queues (multiprocessing.Queue, JoinableQueue, SimpleQueue).
 *
 * One segment holds the state and a byte ring. A message is an 8-byte length and its bytes,
 * padded to 8, written at the ring's tail; since the ring size is a multiple of 8 the length word
 * never wraps, and the bytes are copied in at most two pieces. head and tail count bytes from the
 * start of time (the ring position is the count modulo cap), so used = tail - head.
 *
 * A put copies the message in and moves tail only after the copy: a process killed in the
 * middle leaves the message unpublished and the queue intact. Large messages are copied outside
 * the monitor (see queue_state.writing). Putters and getters
 * share the monitor's single futex word; every change wakes all sleepers, who re-check. */
#define _GNU_SOURCE
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "proc_internal.h"
#include "pshm_internal.h"

/* Messages above BIG_COPY bytes are copied outside the monitor (below it, the second monitor
 * round trip costs more than the overlap gains). */
enum { MSG_HDR = 8, DEFAULT_CAP = 1 << 20, BIG_COPY = 4096 };

typedef struct queue_state {
  kiln__phdr h;
  kiln__mon mon;
  uint32_t kind;
  uint64_t maxsize;
  uint64_t cap; /* bytes of the ring, a multiple of 8 */
  uint64_t head, tail;
  uint64_t count;
  uint64_t unfinished; /* JOINABLE: puts not yet task_done'd */
  /* A large message is copied outside the monitor, so that a putter and a getter copy at the
   * same time; meanwhile writing (reading) keeps other putters (getters) out, and tail (head)
   * does not move. writer / reader say who, for the dead-copier check. */
  uint32_t writing, reading;
  kiln__powner writer, reader;
} queue_state;

struct kiln_pqueue {
  kiln__pobj obj;
  /* Flags of this handle only, set by any of its threads. relaxed: they order nothing else. */
  atomic_bool closed;
  atomic_bool used; /* it put or got a message: empty() on it after close is KILN_ESTATE */
};

static queue_state *qst(const kiln_pqueue *q) { return q->obj.mem; }
static unsigned char *ring(queue_state *s) { return (unsigned char *)s + kiln__pround(sizeof *s); }
static uint64_t msg_room(uint64_t len) { return MSG_HDR + ((len + 7) & ~(uint64_t)7); }

void kiln_pqueue_config_default(kiln_pqueue_config *cfg) {
  *cfg = (kiln_pqueue_config){.kind = KILN_PQUEUE_QUEUE};
}

static int pqueue_init_cb(void *mem, const void *arg) {
  const kiln_pqueue_config *cfg = arg;
  queue_state *s = mem;
  int rc = kiln__mon_init(&s->mon);
  if (rc != 0) return rc;
  s->kind = cfg->kind;
  s->maxsize = cfg->kind == KILN_PQUEUE_SIMPLE ? 0 : cfg->maxsize;
  s->cap = cfg->capacity ? (cfg->capacity + 7) & ~(size_t)7 : DEFAULT_CAP;
  s->head = s->tail = s->count = s->unfinished = 0;
  s->writing = s->reading = 0;
  kiln__pobj_publish(mem, KILN__PT_QUEUE);
  return 0;
}

int kiln_pqueue_create(const kiln_pqueue_config *cfg, kiln_pqueue **out) {
  *out = NULL;
  kiln_pqueue_config def;
  if (!cfg) {
    kiln_pqueue_config_default(&def);
    cfg = &def;
  }
  if (cfg->kind > KILN_PQUEUE_SIMPLE || (cfg->capacity && cfg->capacity < 2 * MSG_HDR) ||
      cfg->capacity > ((size_t)1 << 40))
    return KILN_EINVAL;
  size_t cap = cfg->capacity ? (cfg->capacity + 7) & ~(size_t)7 : DEFAULT_CAP;
  return kiln__pobj_new(sizeof **out, cfg->name, kiln__pround(sizeof(queue_state)) + cap,
                        pqueue_init_cb, cfg, (void **)out);
}

int kiln_pqueue_attach(const char *name, kiln_pqueue **out) {
  size_t hdr = kiln__pround(sizeof(queue_state));
  int rc = kiln__pobj_open(sizeof **out, name, KILN__PT_QUEUE, hdr, (void **)out);
  if (rc != 0) return rc;
  /* the ring must lie inside the segment (one cut short would be used past its end), and be a
   * ring create could have made; compared without a sum that could wrap */
  uint64_t cap = qst(*out)->cap;
  if (cap < 2 * MSG_HDR || cap % 8 || cap > kiln_shm_size((*out)->obj.shm) - hdr) {
    kiln__pobj_free(*out);
    *out = NULL;
    rc = KILN_EINVAL;
  }
  return rc;
}

kiln_shm *kiln_pqueue_shm(const kiln_pqueue *q) { return q->obj.shm; }
void kiln_pqueue_destroy(kiln_pqueue *q) { kiln__pobj_free(q); }
size_t kiln_pqueue_max_message(const kiln_pqueue *q) { return qst(q)->cap - MSG_HDR; }

/* Copies n bytes between the ring at byte count pos and buf, in at most two pieces. */
static void ring_put(queue_state *s, uint64_t pos, const void *buf, size_t n) {
  size_t off = pos % s->cap, first = n < s->cap - off ? n : s->cap - off;
  memcpy(ring(s) + off, buf, first);
  memcpy(ring(s), (const unsigned char *)buf + first, n - first);
}

static void ring_get(queue_state *s, uint64_t pos, void *buf, size_t n) {
  size_t off = pos % s->cap, first = n < s->cap - off ? n : s->cap - off;
  memcpy(buf, ring(s) + off, first);
  memcpy((unsigned char *)buf + first, ring(s), n - first);
}

static bool has_room(const queue_state *s, uint64_t need) {
  if (s->maxsize && s->count >= s->maxsize) return false;
  return s->cap - (s->tail - s->head) >= need;
}

/* With the monitor held: whether a copy outside the monitor (flag, by who) is in the way. After a
 * quiet slice (no wake for 20 ms) a copier whose process died is forgotten: its message was never
 * published (a put) or never removed (a get), so dropping the flag is all it takes. */
static bool copy_busy(uint32_t *flag, const kiln__powner *who, bool quiet) {
  if (*flag && quiet && kiln__powner_dead(who)) *flag = 0;
  return *flag != 0;
}

/* With the monitor held: waits until this caller may write a message of need bytes. */
static int wait_room(queue_state *s, uint64_t need, double deadline) {
  bool quiet = false;
  while (copy_busy(&s->writing, &s->writer, quiet) || !has_room(s, need)) {
    if (kiln__now() >= deadline) {
      /* out of time (or never waiting: a poller with timeout 0 has no quiet slice): one look
       * at the copier in the way before giving up, so that a dead one never blocks for good */
      if (quiet || !s->writing) return KILN_EFULL;
      quiet = true;
      continue;
    }
    quiet = !kiln__mon_wait(&s->mon, deadline, s->writing != 0);
  }
  return 0;
}

int kiln_pqueue_put(kiln_pqueue *q, const void *buf, size_t len, double timeout) {
  double deadline;
  if (kiln__deadline(timeout, &deadline) != 0) return KILN_EINVAL;
  if (atomic_load_explicit(&q->closed, memory_order_relaxed)) return KILN_ESTATE;
  queue_state *s = qst(q);
  if (len > s->cap - MSG_HDR) return KILN_EINVAL; /* could never fit: MQ-04, nothing changed */
  uint64_t need = msg_room(len), len64 = len;
  bool big = len > BIG_COPY;
  kiln__mon_lock(&s->mon);
  int rc = wait_room(s, need, deadline);
  if (rc != 0) {
    kiln__mon_unlock(&s->mon);
    return rc;
  }
  uint64_t pos = s->tail; /* stays put while writing is set: other putters wait */
  if (big) {
    s->writing = 1;
    kiln__powner_self(&s->writer);
    kiln__mon_unlock(&s->mon);
  }
  ring_put(s, pos, &len64, MSG_HDR);
  if (len) ring_put(s, pos + MSG_HDR, buf, len);
  if (big) kiln__mon_lock(&s->mon);
  s->writing = 0;
  s->tail = pos + need; /* published only now, after the whole copy */
  s->count++;
  s->unfinished++;
  kiln__mon_wake(&s->mon);
  kiln__mon_unlock(&s->mon);
  atomic_store_explicit(&q->used, true, memory_order_relaxed);
  return 0;
}

/* With the monitor held: waits until a message is there and this caller may read it; 0 with its
 * length, KILN_EEMPTY, or KILN_EIO when the head message's length cannot be right. */
static int wait_message(queue_state *s, double deadline, uint64_t *len) {
  bool quiet = false;
  while (copy_busy(&s->reading, &s->reader, quiet) || s->count == 0) {
    if (kiln__now() >= deadline) {
      if (quiet || !s->reading) return KILN_EEMPTY; /* the same last look as in wait_room */
      quiet = true;
      continue;
    }
    quiet = !kiln__mon_wait(&s->mon, deadline, s->reading != 0);
  }
  ring_get(s, s->head, len, MSG_HDR);
  /* A process killed between two stores of an update can leave the length word and the indices
   * disagreeing: never let such a length send a copy past the ring. */
  if (*len > s->cap - MSG_HDR || msg_room(*len) > s->tail - s->head) return KILN_EIO;
  return 0;
}

/* With the monitor held: copies the head message's n bytes to buf (a large one outside the
 * monitor, getters kept out by reading) and drops it. */
static void take_message(queue_state *s, void *buf, uint64_t n) {
  uint64_t pos = s->head; /* stays put while reading is set */
  bool big = n > BIG_COPY;
  if (big) {
    s->reading = 1;
    kiln__powner_self(&s->reader);
    kiln__mon_unlock(&s->mon);
  }
  if (n) ring_get(s, pos + MSG_HDR, buf, n);
  if (big) kiln__mon_lock(&s->mon);
  s->reading = 0;
  s->head = pos + msg_room(n);
  s->count--;
  kiln__mon_wake(&s->mon);
}

static int get_common(kiln_pqueue *q, void **mbuf, void *buf, size_t cap, size_t *len,
                      double timeout) {
  double deadline;
  if (kiln__deadline(timeout, &deadline) != 0) return KILN_EINVAL;
  if (atomic_load_explicit(&q->closed, memory_order_relaxed)) return KILN_ESTATE;
  queue_state *s = qst(q);
  uint64_t n = 0;
  kiln__mon_lock(&s->mon);
  int rc = wait_message(s, deadline, &n);
  if (rc == 0 && mbuf) {
    buf = *mbuf = malloc(n ? n : 1);
    if (!buf) rc = KILN_ENOMEM;
  } else if (rc == 0 && n > cap) {
    rc = KILN_EINVAL;
  }
  if (rc == 0) take_message(s, buf, n);
  kiln__mon_unlock(&s->mon);
  if (rc == 0) atomic_store_explicit(&q->used, true, memory_order_relaxed);
  if (rc == 0 || rc == KILN_EINVAL) *len = n;
  return rc;
}

int kiln_pqueue_get(kiln_pqueue *q, void **buf, size_t *len, double timeout) {
  *buf = NULL;
  *len = 0;
  return get_common(q, buf, NULL, 0, len, timeout);
}

int kiln_pqueue_get_into(kiln_pqueue *q, void *buf, size_t cap, size_t *len, double timeout) {
  *len = 0;
  return get_common(q, NULL, buf, cap, len, timeout);
}

size_t kiln_pqueue_qsize(kiln_pqueue *q) {
  queue_state *s = qst(q);
  kiln__mon_lock(&s->mon);
  size_t n = s->count;
  kiln__mon_unlock(&s->mon);
  return n;
}

int kiln_pqueue_empty(kiln_pqueue *q) {
  if (atomic_load_explicit(&q->closed, memory_order_relaxed) &&
      (atomic_load_explicit(&q->used, memory_order_relaxed) || qst(q)->kind == KILN_PQUEUE_SIMPLE)) return KILN_ESTATE;
  return kiln_pqueue_qsize(q) == 0;
}

bool kiln_pqueue_full(kiln_pqueue *q) {
  queue_state *s = qst(q);
  kiln__mon_lock(&s->mon);
  bool r = s->maxsize && s->count >= s->maxsize;
  kiln__mon_unlock(&s->mon);
  return r;
}

int kiln_pqueue_task_done(kiln_pqueue *q) {
  queue_state *s = qst(q);
  if (s->kind != KILN_PQUEUE_JOINABLE) return KILN_EUNSUPPORTED;
  int rc = 0;
  kiln__mon_lock(&s->mon);
  if (s->unfinished == 0) rc = KILN_EINVAL;
  else if (--s->unfinished == 0) kiln__mon_wake(&s->mon);
  kiln__mon_unlock(&s->mon);
  return rc;
}

int kiln_pqueue_join(kiln_pqueue *q, double timeout) {
  double deadline;
  if (kiln__deadline(timeout, &deadline) != 0) return KILN_EINVAL;
  queue_state *s = qst(q);
  if (s->kind != KILN_PQUEUE_JOINABLE) return KILN_EUNSUPPORTED;
  int rc = 0;
  kiln__mon_lock(&s->mon);
  while (s->unfinished && rc == 0) {
    if (kiln__now() >= deadline) rc = KILN_ETIMEDOUT;
    else kiln__mon_wait(&s->mon, deadline, false);
  }
  kiln__mon_unlock(&s->mon);
  return rc;
}

void kiln_pqueue_close(kiln_pqueue *q) {
  atomic_store_explicit(&q->closed, true, memory_order_relaxed);
}
