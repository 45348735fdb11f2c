/* imap.c: Pool.imap and imap_unordered on kiln's pool (kiln_imap_*).
 *
 * kiln_imap_start submits the input in chunk tasks, as map_async does, but each chunk publishes
 * every item's outcome into its slot as soon as that item has run, so the consumer sees a result
 * without waiting for the rest of its chunk. A slot is written once, by the chunk that ran it (or,
 * for a chunk that never ran, by its done-callback) and then published: ordered iterators set the
 * item's done flag; unordered ones append its index to `order` and bump `published`. The consumer
 * waits on `waiter` for the next flag (ordered) or the next index (unordered), then reads the slot
 * without a lock: the release store that published it pairs with the consumer's acquire load.
 *
 * Lifetime: refs counts the caller's handle plus one per chunk whose done-callback has not run
 * yet (a chunk's task always runs before its callback, so that reference covers the task too).
 * kiln_imap_destroy sets `destroyed` under mu; a chunk publishing afterwards sees it under the same
 * lock and drops its result itself, so every result is freed exactly once, by whoever holds it.
 *
 * Lock order: mu alone, never held while user code (tasks, destructors) runs or while waking the
 * waiter. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* One input item's outcome. Written once by the thread that publishes it, then read (and its
 * value and message taken) only by the consumer. */
struct imap_item {
  void *value;
  void (*dtor)(void *); /* the task's kiln_task_set_result_free, for results never taken */
  char *message;        /* failed items: the item's message, malloc'd */
  int code;
};

struct imap_chunk {
  kiln_imap *it;
  size_t lo, hi;
};

struct kiln_imap {
  pthread_mutex_t mu; /* guards destroyed, and serialises publishing against it */
  kiln__waiter waiter;
  _Atomic size_t refs;
  kiln_task_fn fn;
  void **args; /* the caller's array, copied */
  size_t n;
  bool ordered;
  bool destroyed;
  struct imap_chunk *chunks;
  struct imap_item *items;
  _Atomic uint8_t *done;    /* per item: published */
  size_t *order;            /* unordered: indices in the order published (n of them) */
  _Atomic size_t published; /* unordered: entries of order written */
  size_t next;              /* consumer only: results taken so far */
  char *message;            /* consumer only: the last failed item's message, or NULL */
  int last_code;            /* consumer only: the last result's code */
};

static void drop_result(void *value, void (*dtor)(void *), char *message) {
  if (value && dtor) dtor(value);
  free(message);
}

static void imap_unref(kiln_imap *it) {
  /* acq_rel: the last owner sees every write made by the others before freeing */
  if (atomic_fetch_sub_explicit(&it->refs, 1, memory_order_acq_rel) != 1) return;
  kiln__waiter_fini(&it->waiter);
  pthread_mutex_destroy(&it->mu);
  free(it->args), free(it->chunks), free(it->items), free((void *)it->done), free(it->order);
  free(it);
}

/* Stores item i's outcome (taking value and message) and wakes the consumer, or drops the outcome
 * if the iterator was destroyed. Called once per item, by a holder of a reference. */
static void publish(kiln_imap *it, size_t i, int code, void *value, void (*dtor)(void *),
                    char *message) {
  pthread_mutex_lock(&it->mu);
  bool dropped = it->destroyed;
  if (!dropped) {
    it->items[i] = (struct imap_item){value, dtor, message, code};
    /* release: pairs with the acquire loads in ready (the consumer reads the slot unlocked) */
    atomic_store_explicit(&it->done[i], 1, memory_order_release);
    if (!it->ordered) {
      size_t k = atomic_load_explicit(&it->published, memory_order_relaxed); /* writers hold mu */
      it->order[k] = i;
      atomic_store_explicit(&it->published, k + 1, memory_order_release); /* pairs: ready */
    }
  }
  pthread_mutex_unlock(&it->mu);
  if (dropped) drop_result(value, dtor, message);
  else kiln__waiter_notify(&it->waiter);
}

static int imap_chunk_task(void *arg, void **result) {
  (void)result;
  struct imap_chunk *c = arg;
  kiln_imap *it = c->it;
  for (size_t i = c->lo; i < c->hi; i++) {
    /* each item gets its own message and destructor, not the chunk's (run_task reads these when
     * the chunk returns: they are left NULL, so the chunk's own future carries nothing) */
    kiln__self.fail_message = NULL;
    kiln__self.result_free = NULL;
    void *v = NULL;
    int code = it->fn(it->args[i], &v);
    void (*dtor)(void *) = kiln__self.result_free;
    char *msg = kiln__self.fail_message;
    kiln__self.fail_message = NULL;
    kiln__self.result_free = NULL;
    if (code == 0) {
      free(msg);
      msg = NULL;
    } else { /* a failed item's value is never seen: drop it like an untaken one */
      drop_result(v, dtor, NULL);
      v = NULL;
      dtor = NULL;
    }
    publish(it, i, code, v, dtor, msg);
  }
  return 0;
}

/* A chunk that never ran (cancelled, broken pool, not submitted): each of its items fails. */
static void fail_chunk(struct imap_chunk *c, int code, const char *why) {
  for (size_t i = c->lo; i < c->hi; i++)
    publish(c->it, i, code, NULL, NULL, kiln__format("%s", why));
}

static void imap_chunk_done(kiln_future *f, void *arg) {
  struct imap_chunk *c = arg;
  kiln_imap *it = c->it;
  const char *msg = NULL;
  if (kiln_future_cancelled(f)) fail_chunk(c, KILN_ECANCELLED, "cancelled before it ran");
  else {
    int code = kiln_future_error(f, 0, &msg); /* the chunk task itself always returns 0 */
    if (code) fail_chunk(c, code, msg ? msg : kiln_strerror(code));
  }
  imap_unref(it);
}

/* Submits chunk c; on failure its items fail with the submit's code. Consumes c's reference. */
static void submit_chunk(kiln_pool *p, struct imap_chunk *c) {
  kiln_future *f = NULL;
  int rc = kiln_submit(p, imap_chunk_task, c, &f);
  if (rc) {
    fail_chunk(c, rc, "could not be submitted: the pool takes no more work");
    imap_unref(c->it);
    return;
  }
  if (kiln_future_on_done(f, imap_chunk_done, c) != 0) {
    /* no memory for the callback: settle the chunk here, so that it cannot outlive the
     * iterator unseen: take it back, or wait for it (helping, inside a task) */
    if (kiln_future_cancel(f)) {
      fail_chunk(c, KILN_ENOMEM, "could not be submitted: out of memory");
      imap_unref(c->it);
    } else {
      kiln_future_result(f, -1, NULL);
      imap_chunk_done(f, c);
    }
  }
  kiln_future_release(f);
}

static kiln_imap *imap_new(kiln_task_fn fn, void *const *args, size_t n, size_t nchunks,
                           bool ordered) {
  kiln_imap *it = calloc(1, sizeof *it);
  if (!it) return NULL;
  it->fn = fn;
  it->n = n;
  it->ordered = ordered;
  it->args = malloc((n ? n : 1) * sizeof *it->args);
  it->chunks = calloc(nchunks ? nchunks : 1, sizeof *it->chunks);
  it->items = calloc(n ? n : 1, sizeof *it->items);
  it->done = calloc(n ? n : 1, sizeof *it->done); /* zero bytes are valid 0 atomics */
  it->order = ordered ? NULL : malloc((n ? n : 1) * sizeof *it->order);
  if (!it->args || !it->chunks || !it->items || !it->done || (!ordered && !it->order)) {
    free(it->args), free(it->chunks), free(it->items), free((void *)it->done), free(it->order);
    free(it);
    return NULL;
  }
  if (n) memcpy(it->args, args, n * sizeof *args);
  pthread_mutex_init(&it->mu, NULL);
  kiln__waiter_init(&it->waiter);
  atomic_init(&it->published, 0);
  return it;
}

int kiln_imap_start(kiln_pool *p, kiln_task_fn fn, void *const *args, size_t n, size_t chunksize,
                    bool ordered, kiln_imap **out) {
  *out = NULL;
  if (chunksize < 1) return KILN_EINVAL;
  int rc = kiln__pool_accepting(p);
  if (rc) return rc;
  size_t nchunks = n / chunksize + (n % chunksize != 0);
  kiln_imap *it = imap_new(fn, args, n, nchunks, ordered);
  if (!it) return KILN_ENOMEM;
  atomic_init(&it->refs, nchunks + 1); /* + the caller's handle */
  for (size_t k = 0; k < nchunks; k++) {
    struct imap_chunk *c = &it->chunks[k];
    size_t lo = k * chunksize, hi = n - lo > chunksize ? lo + chunksize : n;
    *c = (struct imap_chunk){it, lo, hi};
    submit_chunk(p, c);
  }
  *out = it;
  return 0;
}

/* The next result is published. Called by the consumer only, while next < n. */
static bool ready(void *arg) {
  kiln_imap *it = arg;
  /* acquire: pairs with the release stores in publish */
  if (it->ordered) return atomic_load_explicit(&it->done[it->next], memory_order_acquire) != 0;
  return atomic_load_explicit(&it->published, memory_order_acquire) > it->next;
}

int kiln_imap_next(kiln_imap *it, double timeout, void **value, size_t *index) {
  if (value) *value = NULL;
  if (index) *index = 0;
  double deadline;
  int rc = kiln__deadline(timeout, &deadline);
  if (rc) return rc;
  free(it->message);
  it->message = NULL;
  it->last_code = 0;
  if (it->next == it->n) return KILN_EEOF;
  if (!ready(it)) {
    rc = timeout == 0 ? KILN_ETIMEDOUT : kiln__wait(&it->waiter, ready, it, deadline);
    if (rc && !ready(it)) return rc;
  }
  size_t i = it->ordered ? it->next : it->order[it->next];
  it->next++;
  struct imap_item *item = &it->items[i];
  if (index) *index = i;
  if (item->code) {
    it->message = item->message; /* handed to the consumer's slot; freed on the next call */
    item->message = NULL;
    it->last_code = item->code;
    return item->code;
  }
  if (value) *value = item->value;
  else drop_result(item->value, item->dtor, NULL);
  item->value = NULL;
  return 0;
}

const char *kiln_imap_message(const kiln_imap *it) {
  if (it->message) return it->message;
  return it->last_code ? kiln_strerror(it->last_code) : "";
}

void kiln_imap_destroy(kiln_imap *it) {
  if (!it) return;
  pthread_mutex_lock(&it->mu);
  it->destroyed = true; /* from here on, chunks drop what they publish */
  pthread_mutex_unlock(&it->mu);
  /* What was published before is complete (mu ordered it before us); taken slots are empty. */
  for (size_t i = 0; i < it->n; i++) {
    if (!atomic_load_explicit(&it->done[i], memory_order_relaxed)) continue; /* mu orders it */
    struct imap_item *item = &it->items[i];
    drop_result(item->value, item->dtor, item->message);
    item->value = NULL;
    item->message = NULL;
  }
  free(it->message);
  it->message = NULL;
  imap_unref(it);
}
