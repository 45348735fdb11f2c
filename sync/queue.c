/* queue.c: kiln_queue, Python's queue.Queue / LifoQueue / PriorityQueue (3.13, with shutdown).
 *
 * One mutex guards everything; threads sleep on three condition variables (CLOCK_MONOTONIC), as in
 * CPython's Lib/queue.py: getters on not_empty, putters on not_full, joiners on all_done. A put
 * wakes one getter, a get one putter; a change that may free many (shutdown, a larger maxsize, the
 * last task_done) wakes them all. A woken thread re-checks its condition under the mutex before it
 * gives up on a timeout, so a wake-up is never spent without the item or slot being used.
 *
 * Unlike CPython, each condvar's sleepers are counted (struct sleepers), and so are the wake-ups
 * sent that no sleeper has yet returned from (owed): a put signals only when some sleeper has no
 * wake-up on its way. A producer that outruns a sleeping consumer thus signals once, not once per
 * item. Why no wake-up is lost: let U be the sleepers still blocked and unsignalled, W those
 * counted but unblocked (signalled, timed out, or spuriously woken, not yet back under the mutex).
 * owed <= W always: a signal raises owed by one and, when U > 0, W by one too (POSIX: a signal
 * unblocks a blocked thread); with U == 0 it is sent only if n = W > owed; a return lowers W by
 * one and owed by one (not below 0); a broadcast sets owed = n = W. So a skipped signal
 * (n <= owed) means U == 0, and a thread only starts to sleep after seeing the queue empty (full).
 *
 * Storage (struct store): FIFO is a power-of-two ring of void * that doubles when full; LIFO uses
 * the same array as a stack; PRIORITY is a binary min-heap of (item, seq) entries, where seq is a
 * put counter that breaks ties so that equal items come out in put order. Arrays double when full
 * and halve when an eighth full, down to SHRINK_FLOOR: a burst does not pin memory forever, and
 * the gap between the two thresholds spares a size that swings back and forth a copy per swing.
 *
 * User code: compare runs under the mutex (it must not call the queue); item_free runs without
 * it, on items detached from the queue first.
 *
 * Lock order: q->mu is a leaf; no other kiln lock is taken while holding it. */
#define _GNU_SOURCE
#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "sync_internal.h"

enum { INITIAL_CAP = 16, SHRINK_FLOOR = 1024 };

typedef struct entry {
  void *item;
  uint64_t seq;
} entry;

/* Items in queue order. FIFO: slots[(head + i) & (cap - 1)] for i < count, cap a power of two.
 * LIFO: slots[0..count), top at count - 1 (head stays 0). PRIORITY: heap[0..count) with
 * before(heap[(i - 1) / 2], heap[i]) false for every i > 0 (the parent never comes after). */
struct store {
  void **slots;
  entry *heap;
  size_t cap, head, count;
};

/* The threads that sleep on one condition variable; n and owed are guarded by the queue's mu. */
struct sleepers {
  pthread_cond_t cv;
  size_t n;    /* counted from before the wait until back under the mutex */
  size_t owed; /* wake-ups sent that no counted thread has returned from yet; owed <= n */
};

struct kiln_queue {
  pthread_mutex_t mu;
  struct sleepers getters; /* not_empty: a put wakes one */
  struct sleepers putters; /* not_full: a get wakes one */
  struct sleepers joiners; /* all_done: the last task_done or an immediate shutdown wakes all */
  /* constant after create */
  kiln_queue_kind kind;
  int (*compare)(const void *, const void *, void *);
  void *compare_ctx;
  void (*item_free)(void *);
  /* guarded by mu */
  struct store s;
  size_t maxsize;    /* 0: unbounded */
  uint64_t seq;      /* puts so far (PRIORITY tie-breaker) */
  size_t unfinished; /* puts not yet task_done'd nor dropped by an immediate shutdown */
  bool shut;
};

/* ---- storage --------------------------------------------------------------------------------- */

static bool before(const kiln_queue *q, const entry *a, const entry *b) {
  int c = q->compare(a->item, b->item, q->compare_ctx);
  return c < 0 || (c == 0 && a->seq < b->seq);
}

/* Gives the store room for newcap (>= count) entries. A FIFO ring that grows is realloc'ed (big
 * blocks move without a copy) and its wrapped-around prefix moved behind the old end; one that
 * shrinks is unwrapped into a fresh array. */
static int store_resize(kiln_queue *q, size_t newcap) {
  struct store *s = &q->s;
  assert(newcap >= s->count);
  if (q->kind == KILN_QUEUE_PRIORITY) {
    entry *h = realloc(s->heap, newcap * sizeof *h);
    if (!h) return KILN_ENOMEM;
    s->heap = h;
  } else if (q->kind == KILN_QUEUE_LIFO || (newcap > s->cap && s->head + s->count <= s->cap)) {
    void **a = realloc(s->slots, newcap * sizeof *a); /* LIFO, or a ring that does not wrap */
    if (!a) return KILN_ENOMEM;
    s->slots = a;
  } else if (newcap > s->cap) {
    assert(newcap >= 2 * s->cap); /* room for the prefix behind the old end */
    void **a = realloc(s->slots, newcap * sizeof *a);
    if (!a) return KILN_ENOMEM;
    memcpy(a + s->cap, a, (s->head + s->count - s->cap) * sizeof *a);
    s->slots = a;
  } else {
    void **a = malloc(newcap * sizeof *a);
    if (!a) return KILN_ENOMEM;
    for (size_t i = 0; i < s->count; i++) a[i] = s->slots[(s->head + i) & (s->cap - 1)];
    free(s->slots);
    s->slots = a;
    s->head = 0;
  }
  s->cap = newcap;
  return 0;
}

static void heap_push(kiln_queue *q, entry e) {
  entry *h = q->s.heap;
  size_t i = q->s.count++;
  while (i > 0 && before(q, &e, &h[(i - 1) / 2])) {
    h[i] = h[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  h[i] = e;
}

static void *heap_pop(kiln_queue *q) {
  entry *h = q->s.heap;
  void *top = h[0].item;
  entry last = h[--q->s.count];
  size_t n = q->s.count, i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && before(q, &h[c + 1], &h[c])) c++;
    if (!before(q, &h[c], &last)) break;
    h[i] = h[c];
    i = c;
  }
  if (n > 0) h[i] = last;
  return top;
}

static int store_push(kiln_queue *q, void *item) {
  struct store *s = &q->s;
  if (s->count == s->cap) {
    if (s->cap > SIZE_MAX / 2 / sizeof(entry)) return KILN_ENOMEM;
    int rc = store_resize(q, s->cap ? 2 * s->cap : INITIAL_CAP);
    if (rc) return rc;
  }
  if (q->kind == KILN_QUEUE_PRIORITY) heap_push(q, (entry){item, q->seq});
  else if (q->kind == KILN_QUEUE_LIFO) s->slots[s->count++] = item;
  else s->slots[(s->head + s->count++) & (s->cap - 1)] = item;
  q->seq++;
  return 0;
}

static void *store_pop(kiln_queue *q) {
  struct store *s = &q->s;
  assert(s->count > 0);
  void *item;
  if (q->kind == KILN_QUEUE_PRIORITY) {
    item = heap_pop(q);
  } else if (q->kind == KILN_QUEUE_LIFO) {
    item = s->slots[--s->count];
  } else {
    item = s->slots[s->head];
    s->head = (s->head + 1) & (s->cap - 1);
    s->count--;
  }
  if (s->cap > SHRINK_FLOOR && s->count <= s->cap / 8) (void)store_resize(q, s->cap / 2);
  return item;
}

/* Frees a store detached from its queue, handing each item to item_free (if set). */
static void store_drop(kiln_queue_kind kind, struct store *s, void (*item_free)(void *)) {
  if (item_free) {
    for (size_t i = 0; i < s->count; i++) {
      if (kind == KILN_QUEUE_PRIORITY) item_free(s->heap[i].item);
      else if (kind == KILN_QUEUE_LIFO) item_free(s->slots[i]);
      else item_free(s->slots[(s->head + i) & (s->cap - 1)]);
    }
  }
  free(s->slots);
  free(s->heap);
  memset(s, 0, sizeof *s);
}

/* ---- create / destroy ------------------------------------------------------------------------ */

void kiln_queue_config_default(kiln_queue_config *cfg) {
  assert(cfg);
  memset(cfg, 0, sizeof *cfg);
  cfg->kind = KILN_QUEUE_FIFO;
}

static void sleepers_init(struct sleepers *sl) {
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&sl->cv, &ca);
  pthread_condattr_destroy(&ca);
  sl->n = sl->owed = 0;
}

int kiln_queue_create(const kiln_queue_config *cfg, kiln_queue **out) {
  assert(out);
  *out = NULL;
  kiln_queue_config def;
  if (!cfg) {
    kiln_queue_config_default(&def);
    cfg = &def;
  }
  if (cfg->kind != KILN_QUEUE_FIFO && cfg->kind != KILN_QUEUE_LIFO &&
      cfg->kind != KILN_QUEUE_PRIORITY)
    return KILN_EINVAL;
  if (cfg->kind == KILN_QUEUE_PRIORITY && !cfg->compare) return KILN_EINVAL;
  kiln_queue *q = calloc(1, sizeof *q);
  if (!q) return KILN_ENOMEM;
  pthread_mutex_init(&q->mu, NULL);
  sleepers_init(&q->getters);
  sleepers_init(&q->putters);
  sleepers_init(&q->joiners);
  q->kind = cfg->kind;
  q->compare = cfg->compare;
  q->compare_ctx = cfg->compare_ctx;
  q->item_free = cfg->item_free;
  q->maxsize = cfg->maxsize;
  *out = q;
  return 0;
}

void kiln_queue_destroy(kiln_queue *q) {
  if (!q) return;
  assert(q->getters.n == 0 && q->putters.n == 0 && q->joiners.n == 0); /* nobody blocked on it */
  store_drop(q->kind, &q->s, q->item_free);
  pthread_cond_destroy(&q->joiners.cv);
  pthread_cond_destroy(&q->putters.cv);
  pthread_cond_destroy(&q->getters.cv);
  pthread_mutex_destroy(&q->mu);
  free(q);
}

/* ---- waiting --------------------------------------------------------------------------------- */

/* One sleep in sl (q->mu held). False, without sleeping, once the deadline has passed; the caller
 * re-checks its condition after every true return (the wake-up may be spurious, or stale). */
static bool sleep_on(kiln_queue *q, struct sleepers *sl, double deadline) {
  if (deadline == INFINITY) {
    sl->n++;
    pthread_cond_wait(&sl->cv, &q->mu);
  } else {
    if (kiln__now() >= deadline) return false;
    struct timespec ts;
    kiln__abs_timespec(deadline, &ts);
    sl->n++;
    pthread_cond_timedwait(&sl->cv, &q->mu, &ts);
  }
  sl->n--;
  if (sl->owed > 0) sl->owed--; /* claims a wake-up, ours or (after a timeout) another's */
  return true;
}

/* Wakes one sleeper of sl unless every one already has a wake-up on its way (q->mu held). */
static void wake_one(struct sleepers *sl) {
  if (sl->n > sl->owed) {
    sl->owed++;
    pthread_cond_signal(&sl->cv);
  }
}

static void wake_all(struct sleepers *sl) {
  if (sl->n > sl->owed) {
    sl->owed = sl->n;
    pthread_cond_broadcast(&sl->cv);
  }
}

static bool has_room(const kiln_queue *q) { return q->maxsize == 0 || q->s.count < q->maxsize; }

/* Waits (q->mu held) until a put may go ahead: 0, KILN_ESHUTDOWN or KILN_EFULL. */
static int wait_room(kiln_queue *q, bool try_only, double deadline) {
  for (;;) {
    if (q->shut) return KILN_ESHUTDOWN;
    if (has_room(q)) return 0;
    if (try_only || !sleep_on(q, &q->putters, deadline)) return KILN_EFULL;
  }
}

/* Waits (q->mu held) until there is an item: 0, KILN_ESHUTDOWN or KILN_EEMPTY. */
static int wait_item(kiln_queue *q, bool try_only, double deadline) {
  for (;;) {
    if (q->s.count > 0) return 0;
    if (q->shut) return KILN_ESHUTDOWN;
    if (try_only || !sleep_on(q, &q->getters, deadline)) return KILN_EEMPTY;
  }
}

/* ---- put / get ------------------------------------------------------------------------------- */

int kiln_queue_put(kiln_queue *q, void *item, double timeout) {
  assert(q);
  double deadline;
  int rc = kiln__deadline(timeout, &deadline);
  if (rc) return rc;
  pthread_mutex_lock(&q->mu);
  rc = wait_room(q, timeout == 0, deadline);
  if (rc == 0) rc = store_push(q, item);
  if (rc == 0) {
    q->unfinished++;
    wake_one(&q->getters);
  } else if (rc == KILN_ENOMEM) {
    wake_one(&q->putters); /* pass on the slot this thread may have been woken for */
  }
  pthread_mutex_unlock(&q->mu);
  return rc;
}

int kiln_queue_get(kiln_queue *q, void **item, double timeout) {
  assert(q && item);
  *item = NULL;
  double deadline;
  int rc = kiln__deadline(timeout, &deadline);
  if (rc) return rc;
  pthread_mutex_lock(&q->mu);
  rc = wait_item(q, timeout == 0, deadline);
  if (rc == 0) {
    *item = store_pop(q);
    if (has_room(q)) wake_one(&q->putters);
  }
  pthread_mutex_unlock(&q->mu);
  return rc;
}

/* ---- size ------------------------------------------------------------------------------------ */

size_t kiln_queue_qsize(kiln_queue *q) {
  assert(q);
  pthread_mutex_lock(&q->mu);
  size_t n = q->s.count;
  pthread_mutex_unlock(&q->mu);
  return n;
}

bool kiln_queue_empty(kiln_queue *q) { return kiln_queue_qsize(q) == 0; }

bool kiln_queue_full(kiln_queue *q) {
  assert(q);
  pthread_mutex_lock(&q->mu);
  bool full = q->maxsize > 0 && q->s.count >= q->maxsize;
  pthread_mutex_unlock(&q->mu);
  return full;
}

size_t kiln_queue_maxsize(kiln_queue *q) {
  assert(q);
  pthread_mutex_lock(&q->mu);
  size_t m = q->maxsize;
  pthread_mutex_unlock(&q->mu);
  return m;
}

void kiln_queue_set_maxsize(kiln_queue *q, size_t maxsize) {
  assert(q);
  pthread_mutex_lock(&q->mu);
  bool grows = maxsize == 0 || (q->maxsize != 0 && maxsize > q->maxsize);
  q->maxsize = maxsize;
  if (grows) wake_all(&q->putters);
  pthread_mutex_unlock(&q->mu);
}

/* ---- task_done / join ------------------------------------------------------------------------ */

int kiln_queue_task_done(kiln_queue *q) {
  assert(q);
  int rc = 0;
  pthread_mutex_lock(&q->mu);
  if (q->unfinished == 0) rc = KILN_EINVAL;
  else if (--q->unfinished == 0) wake_all(&q->joiners);
  pthread_mutex_unlock(&q->mu);
  return rc;
}

int kiln_queue_join(kiln_queue *q, double timeout) {
  assert(q);
  double deadline;
  int rc = kiln__deadline(timeout, &deadline);
  if (rc) return rc;
  pthread_mutex_lock(&q->mu);
  while (q->unfinished > 0) {
    if (timeout == 0 || !sleep_on(q, &q->joiners, deadline)) {
      rc = KILN_ETIMEDOUT;
      break;
    }
  }
  pthread_mutex_unlock(&q->mu);
  return rc;
}

/* ---- shutdown -------------------------------------------------------------------------------- */

void kiln_queue_shutdown(kiln_queue *q, bool immediate) {
  assert(q);
  struct store dropped = {0};
  pthread_mutex_lock(&q->mu);
  q->shut = true;
  if (immediate) {
    /* CPython drops the items one by one, decrementing unfinished_tasks while it is > 0. */
    dropped = q->s;
    memset(&q->s, 0, sizeof q->s);
    q->unfinished = q->unfinished > dropped.count ? q->unfinished - dropped.count : 0;
    wake_all(&q->joiners);
  }
  wake_all(&q->getters);
  wake_all(&q->putters);
  pthread_mutex_unlock(&q->mu);
  store_drop(q->kind, &dropped, q->item_free);
}

bool kiln_queue_is_shutdown(kiln_queue *q) {
  assert(q);
  pthread_mutex_lock(&q->mu);
  bool shut = q->shut;
  pthread_mutex_unlock(&q->mu);
  return shut;
}

void kiln__queue_waiting(kiln_queue *q, size_t *getters, size_t *putters, size_t *joiners) {
  assert(q);
  pthread_mutex_lock(&q->mu);
  if (getters) *getters = q->getters.n;
  if (putters) *putters = q->putters.n;
  if (joiners) *joiners = q->joiners.n;
  pthread_mutex_unlock(&q->mu);
}
