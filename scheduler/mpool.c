/* mpool.c: multiprocessing.Pool's calls on kiln's pool: apply, apply_async and map_async.
 * (close, terminate and join need the pool's insides and live in pool.c.)
 *
 * map_async splits the input into chunk tasks and completes one promise: with the results in
 * input order once every chunk has run, or with the first item error as soon as it happens (the
 * other chunks still run, as in Python, and their results are dropped). Each chunk's done-callback
 * does the counting, so a chunk that is cancelled (terminate, or the caller cancelling the map)
 * counts like one that ran.
 *
 * Lifetime: struct masync is shared by the chunk callbacks and the promise's callback; refs counts
 * them, and the last one frees it. No lock: the state changes by atomics only. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- apply, apply_async ----------------------------------------------------------------------- */

int kiln_pool_apply(kiln_pool *p, kiln_task_fn fn, void *arg, void **result) {
  if (result) *result = NULL;
  kiln_future *f;
  int rc = kiln_submit(p, fn, arg, &f);
  if (rc) return rc;
  rc = kiln_future_result(f, -1, result);
  /* the value stays valid only while f is held; without a destructor it is the caller's */
  kiln_future_release(f);
  return rc;
}

struct split_cb {
  kiln_done_fn ok, err;
  void *arg;
};

/* Runs exactly one of ok / err, once: the future is done, so its outcome is final. */
static void split_done(kiln_future *f, void *arg) {
  struct split_cb *cb = arg;
  bool ok = !kiln_future_cancelled(f) && kiln_future_result(f, 0, NULL) == 0;
  kiln_done_fn fn = ok ? cb->ok : cb->err;
  if (fn) fn(f, cb->arg);
  free(cb);
}

/* Attaches callback / error_callback to f. 0 or KILN_ENOMEM (then neither will run). */
static int on_outcome(kiln_future *f, kiln_done_fn ok, kiln_done_fn err, void *arg) {
  if (!ok && !err) return 0;
  struct split_cb *cb = malloc(sizeof *cb);
  if (!cb) return KILN_ENOMEM;
  *cb = (struct split_cb){ok, err, arg};
  int rc = kiln_future_on_done(f, split_done, cb);
  if (rc) free(cb);
  return rc;
}

int kiln_pool_apply_async(kiln_pool *p, kiln_task_fn fn, void *arg, kiln_done_fn callback,
                          kiln_done_fn error_callback, void *cb_arg, kiln_future **out) {
  if (out) *out = NULL;
  kiln_future *f;
  int rc = kiln_submit(p, fn, arg, &f);
  if (rc) return rc;
  rc = on_outcome(f, callback, error_callback, cb_arg);
  if (out) *out = f;
  else kiln_future_release(f);
  return rc;
}

/* ---- map_async -------------------------------------------------------------------------------- */

struct masync;
struct mchunk {
  struct masync *m;
  size_t lo, hi;
  kiln_future *f; /* the chunk task; set before its done-callback is attached */
};

struct masync {
  _Atomic size_t refs; /* one per chunk callback still to run, one for the promise's */
  _Atomic size_t left; /* chunks not yet done */
  _Atomic bool failed; /* the promise was rejected (first error wins the exchange) */
  kiln_task_fn fn;
  void **args;
  void **results; /* handed to the promise on success */
  kiln_future *promise;
  size_t nchunks;
  struct mchunk *chunks;
};

static void masync_unref(struct masync *m) {
  /* acq_rel: the last owner sees every write made by the others before freeing */
  if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1) return;
  for (size_t k = 0; k < m->nchunks; k++) kiln_future_release(m->chunks[k].f);
  kiln_future_release(m->promise);
  free(m->args), free(m->results), free(m->chunks);
  free(m);
}

/* The first failure rejects the promise; later ones are dropped. */
static void masync_fail(struct masync *m, int code, size_t item, const char *msg) {
  if (atomic_exchange_explicit(&m->failed, true, memory_order_acq_rel)) return;
  kiln_promise_reject(m->promise, code, "item %zu: %s", item, msg);
}

static int mchunk_task(void *arg, void **result) {
  (void)result;
  struct mchunk *c = arg;
  struct masync *m = c->m;
  for (size_t i = c->lo; i < c->hi; i++) {
    void *v = NULL;
    int code = m->fn(m->args[i], &v);
    if (code == 0) {
      m->results[i] = v;
      continue;
    }
    /* fn may have recorded a message with kiln_task_fail: it belongs to this item */
    char *msg = kiln__self.fail_message;
    kiln__self.fail_message = NULL;
    masync_fail(m, code, i, msg ? msg : kiln_strerror(code));
    free(msg);
  }
  return 0;
}

static void mchunk_done(kiln_future *f, void *arg) {
  struct mchunk *c = arg;
  struct masync *m = c->m;
  if (kiln_future_cancelled(f)) masync_fail(m, KILN_ECANCELLED, c->lo, "cancelled");
  /* acq_rel: the last chunk sees every chunk's results before handing them over */
  if (atomic_fetch_sub_explicit(&m->left, 1, memory_order_acq_rel) == 1 &&
      !atomic_load_explicit(&m->failed, memory_order_acquire)) {
    void **results = m->results;
    m->results = NULL;
    if (kiln_promise_resolve_owned(m->promise, results, free) != 0)
      free(results); /* the caller cancelled the map meanwhile */
  }
  masync_unref(m);
}

/* The caller cancelled the map: cancel the chunks that have not started. */
static void masync_promise_done(kiln_future *f, void *arg) {
  struct masync *m = arg;
  if (kiln_future_cancelled(f))
    for (size_t k = 0; k < m->nchunks; k++)
      if (m->chunks[k].f) kiln_future_cancel(m->chunks[k].f);
  masync_unref(m);
}

static struct masync *masync_new(kiln_task_fn fn, void *const *args, size_t n, size_t nchunks) {
  struct masync *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->fn = fn;
  m->nchunks = nchunks;
  m->args = malloc((n ? n : 1) * sizeof *m->args);
  m->results = calloc(n ? n : 1, sizeof *m->results);
  m->chunks = calloc(nchunks ? nchunks : 1, sizeof *m->chunks);
  if (!m->args || !m->results || !m->chunks || kiln_promise_create(&m->promise) != 0) {
    free(m->args), free(m->results), free(m->chunks), free(m);
    return NULL;
  }
  if (n) memcpy(m->args, args, n * sizeof *args);
  return m;
}

/* Submits every chunk. Returns the first submit error; chunks not submitted then count as done
 * (with that error) so the promise still completes. */
static int masync_submit(kiln_pool *p, struct masync *m, size_t n, size_t chunksize) {
  int first = 0;
  for (size_t k = 0; k < m->nchunks; k++) {
    struct mchunk *c = &m->chunks[k];
    *c = (struct mchunk){m, k * chunksize, (k + 1) * chunksize < n ? (k + 1) * chunksize : n, NULL};
    int rc = kiln_submit(p, mchunk_task, c, &c->f);
    if (rc == 0) rc = kiln_future_on_done(c->f, mchunk_done, c);
    if (rc == 0) continue;
    if (!first) first = rc;
    if (c->f) { /* no memory for the callback: the chunk must not outlive m unseen */
      kiln_future_cancel(c->f);
      kiln_future_result(c->f, -1, NULL);
    }
    masync_fail(m, rc, c->lo, "could not be submitted");
    atomic_fetch_sub_explicit(&m->left, 1, memory_order_acq_rel);
    masync_unref(m);
  }
  return first;
}

int kiln_map_async(kiln_pool *p, kiln_task_fn fn, void *const *args, size_t n, size_t chunksize,
                   kiln_done_fn callback, kiln_done_fn error_callback, void *cb_arg,
                   kiln_future **out) {
  if (out) *out = NULL;
  if (chunksize < 1) return KILN_EINVAL;
  if (kiln__pool_accepting(p) != 0) return kiln__pool_accepting(p);
  size_t nchunks = n / chunksize + (n % chunksize != 0);
  struct masync *m = masync_new(fn, args, n, nchunks);
  if (!m) return KILN_ENOMEM;
  kiln_future *promise = kiln_future_retain(m->promise);
  atomic_init(&m->refs, nchunks + 2); /* + the promise callback, + this call until it returns */
  atomic_init(&m->left, nchunks);
  /* Ours first, then the caller's: if the caller's cannot be attached, ours is taken back and
   * nothing has run, so no user callback fires on an error return. */
  int rc = kiln_future_on_done(promise, masync_promise_done, m);
  if (rc == 0 && (rc = on_outcome(promise, callback, error_callback, cb_arg)) != 0)
    kiln__remove_callback(promise, masync_promise_done, m); /* pending: it comes back */
  if (rc) {                                                 /* nothing submitted yet: undo */
    kiln_future_release(promise);
    atomic_store(&m->refs, 1);
    masync_unref(m);
    return rc;
  }
  if (nchunks == 0) kiln_promise_resolve(promise, NULL); /* Python's []: no array at all */
  /* A shutdown racing with these submissions fails the chunks not yet submitted: the future then
   * fails with that code (sched.h says so), since earlier chunks may already run. */
  masync_submit(p, m, n, chunksize);
  masync_unref(m);
  if (out) *out = promise;
  else kiln_future_release(promise);
  return 0;
}
