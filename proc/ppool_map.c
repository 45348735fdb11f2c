/* ppool_map.c: map, map_async, starmap and starmap_async on the process pool.
 *
 * The input is cut into chunk jobs of chunksize items (one message each to a worker); every chunk
 * writes its items' results and codes into one shared table (struct pmap) at their input
 * positions, so the order of results never depends on the order chunks finish in.
 *
 * map_async completes its promise as Pool's MapResult does: with the first item failure as soon
 * as it comes (the other chunks still run and their results are dropped), or, once every chunk is
 * done, with the n results. The blocking forms wait for every chunk and hand out every item's
 * result and code.
 *
 * Lifetime: the table is shared by its chunks and its waiter; refs counts them under m->mu and
 * the last one frees it. The async result array moves to the future (freed by its destructor). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ppool_internal.h"
#include "proc_internal.h"

typedef struct pmap {
  pthread_mutex_t mu;
  pthread_cond_t cv; /* left reached 0 */
  size_t refs;       /* chunks not finished, plus the caller (setting up, or waiting) */
  size_t n, left;    /* items; chunks not finished */
  kiln_bytes *res;   /* n results, behind one header element (see results_free) */
  int *codes;
  size_t fail_idx; /* the failure reported: first in time (async) or by index (blocking) */
  int fail_code;
  char *fail_msg;
  kiln_future *promise; /* async only */
  bool settled;         /* the promise has been (or is being) completed */
} pmap;

/* The async value is res: an array of n kiln_bytes preceded by one element whose len is n. */
static void results_free(void *v) {
  if (!v) return;
  kiln_bytes *hdr = (kiln_bytes *)v - 1;
  for (size_t i = 0; i < hdr->len; i++) free(((kiln_bytes *)v)[i].data);
  free(hdr);
}

static void pmap_unref(pmap *m) {
  pthread_mutex_lock(&m->mu);
  bool last = --m->refs == 0;
  pthread_mutex_unlock(&m->mu);
  if (!last) return;
  results_free(m->res);
  free(m->codes);
  free(m->fail_msg);
  if (m->promise) kiln_future_release(m->promise);
  pthread_mutex_destroy(&m->mu);
  pthread_cond_destroy(&m->cv);
  free(m);
}

static pmap *pmap_new(size_t n, size_t nchunks, bool async) {
  pmap *m = calloc(1, sizeof *m);
  kiln_bytes *hdr = calloc(n + 1, sizeof *hdr);
  int *codes = calloc(n ? n : 1, sizeof *codes);
  if (!m || !hdr || !codes || (async && kiln_promise_create(&m->promise) != 0)) {
    free(m), free(hdr), free(codes);
    return NULL;
  }
  hdr->len = n;
  m->res = hdr + 1;
  m->codes = codes;
  m->n = n;
  m->left = nchunks;
  m->refs = nchunks + 1; /* the chunks and the caller */
  m->fail_idx = SIZE_MAX;
  pthread_mutex_init(&m->mu, NULL);
  pthread_cond_init(&m->cv, NULL);
  return m;
}

/* Records item idx's failure (under m->mu). */
static void note_failure(pmap *m, size_t idx, int code, const char *msg, size_t msglen) {
  m->codes[idx] = code;
  bool first = m->fail_idx == SIZE_MAX || (!m->promise && idx < m->fail_idx);
  if (!first) return;
  char *s = msglen ? kiln__strdup_printf("item %zu: %.*s", idx, (int)msglen, msg)
                   : kiln__strdup_printf("item %zu: %s", idx, kiln_strerror(code));
  free(m->fail_msg);
  m->fail_msg = s;
  m->fail_idx = idx;
  m->fail_code = code;
}

/* Stores one chunk's outcome (under m->mu). */
static void store_chunk(pmap *m, kiln__pjob *j, const uint8_t *reply, size_t len, int code,
                        const char *msg) {
  size_t pos = 4;
  for (size_t k = 0; k < j->nitems; k++) {
    size_t idx = j->first + k;
    kiln__pitem it = {.code = code, .msg = msg, .msglen = msg ? strlen(msg) : 0};
    if (reply && (len < 4 || kiln__pitem_next(reply, len, &pos, &it) != 0))
      it = (kiln__pitem){.code = KILN_EIO, .msg = "malformed reply", .msglen = 15};
    if (it.code < 0)
      note_failure(m, idx, it.code, it.msg, it.msglen);
    else if (kiln__pitem_bytes(&it, &m->res[idx]) != 0)
      note_failure(m, idx, KILN_ENOMEM, "out of memory for the result", 28);
  }
}

static void chunk_finish(kiln__pjob *j, const uint8_t *reply, size_t len, int code,
                         const char *msg) {
  pmap *m = j->ctx;
  pthread_mutex_lock(&m->mu);
  store_chunk(m, j, reply, len, code, msg);
  bool done = --m->left == 0;
  int reject = 0;
  char *rmsg = NULL;
  void *value = NULL;
  if (m->promise && !m->settled && (m->fail_idx != SIZE_MAX || done)) {
    m->settled = true;
    if (m->fail_idx != SIZE_MAX) {
      reject = m->fail_code;
      rmsg = m->fail_msg;
    } else {
      value = m->res;
      m->res = NULL; /* moves to the future */
    }
  }
  if (done) pthread_cond_broadcast(&m->cv);
  pthread_mutex_unlock(&m->mu);
  /* settled is set: fail_msg and res are no longer written by anyone */
  if (reject)
    kiln_promise_reject(m->promise, reject, "%s", rmsg ? rmsg : kiln_strerror(reject));
  else if (value && kiln_promise_resolve_owned(m->promise, value, results_free) != 0)
    results_free(value); /* the caller cancelled the map: nobody reads it */
  pmap_unref(m);
}

/* A chunk of a map whose future was cancelled is dropped (completed as cancelled). */
static bool chunk_take(kiln__pjob *j) {
  pmap *m = j->ctx;
  return !m->promise || !kiln_future_cancelled(m->promise);
}

/* Builds the chunks and their table (refs: one per chunk, plus the caller's). */
static int build_map(uintptr_t fn, bool star, const kiln_bytes *args, size_t n, size_t nargs,
                     size_t chunksize, bool async, kiln__pjob **chunks, size_t *nchunks,
                     pmap **out_m) {
  *out_m = NULL;
  *chunks = NULL;
  *nchunks = 0;
  if (!fn || chunksize < 1 || nargs < 1 || nargs > 4096 || (n && !args)) return KILN_EINVAL;
  int rc = kiln__pjob_chunks(fn, star, args, n, nargs, chunksize, chunks, nchunks);
  if (rc) return rc;
  pmap *m = pmap_new(n, *nchunks, async);
  if (!m) {
    kiln__pjob_free_list(*chunks);
    return KILN_ENOMEM;
  }
  for (kiln__pjob *j = *chunks; j; j = j->next) {
    j->ctx = m;
    j->finish = chunk_finish;
    j->take = chunk_take;
  }
  *out_m = m;
  return 0;
}

/* Queues the chunks; on failure frees them and gives back their references. */
static int enqueue_map(kiln_ppool *p, kiln__pjob *chunks, size_t nchunks, pmap *m) {
  int rc = kiln__ppool_enqueue(p, chunks, nchunks);
  if (rc) {
    kiln__pjob_free_list(chunks);
    pthread_mutex_lock(&m->mu);
    m->refs -= nchunks;
    m->left = 0;
    pthread_mutex_unlock(&m->mu);
  }
  return rc;
}

static int map_async(kiln_ppool *p, uintptr_t fn, bool star, const kiln_bytes *args, size_t n,
                     size_t nargs, size_t chunksize, kiln_done_fn callback,
                     kiln_done_fn error_callback, void *cb_arg, kiln_future **out) {
  if (out) *out = NULL;
  if (!p) return KILN_EINVAL;
  kiln__pjob *chunks;
  size_t nchunks;
  pmap *m;
  int rc = build_map(fn, star, args, n, nargs, chunksize, true, &chunks, &nchunks, &m);
  if (rc) return rc;
  kiln_future *f = kiln_future_retain(m->promise);
  void *cbh;
  rc = kiln__ppool_on_outcome(f, callback, error_callback, cb_arg, &cbh);
  if (rc == 0) {
    rc = enqueue_map(p, chunks, nchunks, m);
  } else {
    kiln__pjob_free_list(chunks);
    m->refs -= nchunks; /* not shared yet: no lock needed */
  }
  if (rc == 0 && nchunks == 0) {
    /* an empty input succeeds at once (in this thread: the callback runs here) */
    m->settled = true;
    void *v = m->res;
    m->res = NULL;
    kiln_promise_resolve_owned(f, v, results_free);
  }
  pmap_unref(m);
  if (rc) {
    kiln__ppool_abandon(f, cbh);
    return rc;
  }
  if (out)
    *out = f;
  else
    kiln_future_release(f);
  return 0;
}

/* Waits for every chunk, then hands out the results and codes. */
static int map_wait(pmap *m, kiln_bytes *results, int *errors) {
  pthread_mutex_lock(&m->mu);
  while (m->left) pthread_cond_wait(&m->cv, &m->mu);
  pthread_mutex_unlock(&m->mu);
  for (size_t i = 0; i < m->n; i++) {
    if (errors) errors[i] = m->codes[i];
    if (results) {
      results[i] = m->res[i];
      m->res[i] = (kiln_bytes){0, NULL};
    }
  }
  int rc = m->fail_idx == SIZE_MAX ? 0 : m->fail_code;
  pmap_unref(m);
  return rc;
}

static int map_blocking(kiln_ppool *p, uintptr_t fn, bool star, const kiln_bytes *args, size_t n,
                        size_t nargs, size_t chunksize, kiln_bytes *results, int *errors) {
  for (size_t i = 0; i < n; i++) {
    if (results) results[i] = (kiln_bytes){0, NULL};
    if (errors) errors[i] = 0;
  }
  if (!p) return KILN_EINVAL;
  kiln__pjob *chunks;
  size_t nchunks;
  pmap *m;
  int rc = build_map(fn, star, args, n, nargs, chunksize, false, &chunks, &nchunks, &m);
  if (rc) return rc;
  rc = enqueue_map(p, chunks, nchunks, m);
  if (rc) {
    pmap_unref(m);
    return rc;
  }
  return map_wait(m, results, errors);
}

int kiln_ppool_map(kiln_ppool *p, kiln_ptask_fn fn, const kiln_bytes *args, size_t n,
                   size_t chunksize, kiln_bytes *results, int *errors) {
  return map_blocking(p, (uintptr_t)fn, false, args, n, 1, chunksize, results, errors);
}

int kiln_ppool_map_async(kiln_ppool *p, kiln_ptask_fn fn, const kiln_bytes *args, size_t n,
                         size_t chunksize, kiln_done_fn callback, kiln_done_fn error_callback,
                         void *cb_arg, kiln_future **out) {
  return map_async(p, (uintptr_t)fn, false, args, n, 1, chunksize, callback, error_callback, cb_arg,
                   out);
}

int kiln_ppool_starmap(kiln_ppool *p, kiln_pstar_fn fn, const kiln_bytes *args, size_t n,
                       size_t nargs, size_t chunksize, kiln_bytes *results, int *errors) {
  return map_blocking(p, (uintptr_t)fn, true, args, n, nargs, chunksize, results, errors);
}

int kiln_ppool_starmap_async(kiln_ppool *p, kiln_pstar_fn fn, const kiln_bytes *args, size_t n,
                             size_t nargs, size_t chunksize, kiln_done_fn callback,
                             kiln_done_fn error_callback, void *cb_arg, kiln_future **out) {
  return map_async(p, (uintptr_t)fn, true, args, n, nargs, chunksize, callback, error_callback,
                   cb_arg, out);
}
