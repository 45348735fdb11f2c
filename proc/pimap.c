/* pimap.c: imap and imap_unordered on the process pool.
 *
 * The input is cut into chunk jobs as map does; each chunk, when its reply comes, marks its items
 * ready in the iterator's table and wakes the consumer. Ordered iteration hands out item `cursor`
 * once it is ready (a result waits for the ones before it); unordered iteration hands them out in
 * the order they became ready, through a FIFO of indices. A failed item is handed out with its
 * code and message like any other, and the iteration goes on past it.
 *
 * Lifetime: the iterator is shared by its chunks and its owner; refs counts them under it->mu and
 * the last one frees it. After kiln_pimap_destroy the chunks still run and their results are
 * dropped as they come. */
#define _GNU_SOURCE
#include <pthread.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "ppool_internal.h"
#include "proc_internal.h"

typedef struct pitem {
  bool ready;
  int code;
  char *msg; /* failed items: malloc'd message, or NULL */
  kiln_bytes data;
} pitem;

struct kiln_pimap {
  pthread_mutex_t mu;
  pthread_cond_t cv; /* an item became ready */
  size_t refs;       /* chunks not finished, plus the owner */
  size_t n;
  bool ordered, dropped;
  pitem *items;
  size_t *fifo; /* unordered: indices in the order they became ready */
  size_t fhead, ftail;
  size_t cursor; /* ordered: the next index to hand out */
  size_t taken;
  char *msg; /* the message of the last failed item handed out */
};

static void item_clear(pitem *x) {
  free(x->msg);
  free(x->data.data);
  x->msg = NULL;
  x->data = (kiln_bytes){0, NULL};
}

static void pimap_unref(kiln_pimap *it) {
  pthread_mutex_lock(&it->mu);
  bool last = --it->refs == 0;
  pthread_mutex_unlock(&it->mu);
  if (!last) return;
  for (size_t i = 0; i < it->n; i++) item_clear(&it->items[i]);
  free(it->items);
  free(it->fifo);
  free(it->msg);
  pthread_mutex_destroy(&it->mu);
  pthread_cond_destroy(&it->cv);
  free(it);
}

/* Fills item idx from a reply item (or a whole-chunk failure) (under it->mu). */
static void item_set(kiln_pimap *it, size_t idx, const kiln__pitem *r) {
  pitem *x = &it->items[idx];
  x->code = r->code;
  if (r->code < 0) {
    x->msg = r->msglen ? kiln__strdup_printf("%.*s", (int)r->msglen, r->msg) : NULL;
  } else if (kiln__pitem_bytes(r, &x->data) != 0) {
    x->code = KILN_ENOMEM;
    x->msg = kiln__strdup_printf("out of memory for the result");
  }
  if (it->dropped) item_clear(x);
  x->ready = true;
  if (!it->ordered) it->fifo[it->ftail++] = idx;
}

static void chunk_finish(kiln__pjob *j, const uint8_t *reply, size_t len, int code,
                         const char *msg) {
  kiln_pimap *it = j->ctx;
  pthread_mutex_lock(&it->mu);
  size_t pos = 4;
  for (size_t k = 0; k < j->nitems; k++) {
    kiln__pitem r = {.code = code, .msg = msg, .msglen = msg ? strlen(msg) : 0};
    if (reply && (len < 4 || kiln__pitem_next(reply, len, &pos, &r) != 0))
      r = (kiln__pitem){.code = KILN_EIO, .msg = "malformed reply", .msglen = 15};
    item_set(it, j->first + k, &r);
  }
  pthread_cond_broadcast(&it->cv);
  pthread_mutex_unlock(&it->mu);
  pimap_unref(it);
}

int kiln_ppool_imap(kiln_ppool *p, kiln_ptask_fn fn, const kiln_bytes *args, size_t n,
                    size_t chunksize, bool ordered, kiln_pimap **out) {
  *out = NULL;
  if (!p || !fn || chunksize < 1 || (n && !args)) return KILN_EINVAL;
  kiln__pjob *chunks;
  size_t nchunks;
  int rc = kiln__pjob_chunks((uintptr_t)fn, false, args, n, 1, chunksize, &chunks, &nchunks);
  if (rc) return rc;
  kiln_pimap *it = calloc(1, sizeof *it);
  pitem *items = calloc(n ? n : 1, sizeof *items);
  size_t *fifo = ordered ? NULL : calloc(n ? n : 1, sizeof *fifo);
  if (!it || !items || (!ordered && !fifo)) {
    free(it), free(items), free(fifo);
    kiln__pjob_free_list(chunks);
    return KILN_ENOMEM;
  }
  pthread_mutex_init(&it->mu, NULL);
  pthread_condattr_t ca; /* timed waits are on kiln__now()'s clock */
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&it->cv, &ca);
  pthread_condattr_destroy(&ca);
  it->refs = nchunks + 1;
  it->n = n;
  it->ordered = ordered;
  it->items = items;
  it->fifo = fifo;
  for (kiln__pjob *j = chunks; j; j = j->next) j->ctx = it, j->finish = chunk_finish;
  rc = kiln__ppool_enqueue(p, chunks, nchunks);
  if (rc) {
    kiln__pjob_free_list(chunks);
    it->refs = 1;
    pimap_unref(it);
    return rc;
  }
  *out = it;
  return 0;
}

/* The index of the next item to hand out, once ready (under it->mu): true, or false when none is
 * ready yet. */
static bool next_ready(kiln_pimap *it, size_t *idx) {
  if (it->ordered) {
    if (!it->items[it->cursor].ready) return false;
    *idx = it->cursor++;
    return true;
  }
  if (it->fhead == it->ftail) return false;
  *idx = it->fifo[it->fhead++];
  return true;
}

int kiln_pimap_next(kiln_pimap *it, double timeout, kiln_bytes *result, size_t *index) {
  if (result) *result = (kiln_bytes){0, NULL};
  if (index) *index = 0;
  double deadline;
  if (kiln__deadline(timeout, &deadline) != 0) return KILN_EINVAL;
  pthread_mutex_lock(&it->mu);
  if (it->taken == it->n) {
    pthread_mutex_unlock(&it->mu);
    return KILN_EEOF;
  }
  size_t idx;
  int rc = 0;
  while (rc == 0 && !next_ready(it, &idx)) {
    struct timespec ts;
    kiln__abs_timespec(deadline, &ts);
    if (timeout == 0 || pthread_cond_timedwait(&it->cv, &it->mu, &ts) != 0)
      if (kiln__now() >= deadline) rc = KILN_ETIMEDOUT;
  }
  if (rc == 0) {
    pitem *x = &it->items[idx];
    it->taken++;
    rc = x->code < 0 ? x->code : 0;
    free(it->msg);
    it->msg = x->msg;
    x->msg = NULL;
    if (result) result->len = x->data.len, result->data = x->data.data;
    else free(x->data.data);
    x->data = (kiln_bytes){0, NULL};
    if (index) *index = idx;
  }
  pthread_mutex_unlock(&it->mu);
  return rc;
}

const char *kiln_pimap_message(const kiln_pimap *it) { return it->msg ? it->msg : ""; }

void kiln_pimap_destroy(kiln_pimap *it) {
  if (!it) return;
  pthread_mutex_lock(&it->mu);
  it->dropped = true;
  for (size_t i = 0; i < it->n; i++) item_clear(&it->items[i]);
  pthread_mutex_unlock(&it->mu);
  pimap_unref(it);
}
