/* map.c: kiln_map (ordered results, chunks, one deadline) and kiln_parallel_for (recursive
 * splitting: a task splits off its upper half when its worker has nothing left for thieves, so
 * idle workers steal big halves first). */
#define _GNU_SOURCE
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- map --------------------------------------------------------------------------------------- */

/* Shared by the caller and the chunks. refs: the caller, plus each chunk still running when the
 * deadline passed (its done-callback drops it), so late chunks never write freed memory. */
struct map_state {
  _Atomic size_t refs;
  kiln_task_fn fn;
  void **args;
  void **results;
  int *errors;
  struct map_chunk {
    struct map_state *st;
    size_t lo, hi;
  } * chunks;
};

static void map_unref(struct map_state *st) {
  if (atomic_fetch_sub_explicit(&st->refs, 1, memory_order_acq_rel) != 1) return;
  free(st->args), free(st->results), free(st->errors), free(st->chunks);
  free(st);
}

static void map_unref_cb(kiln_future *f, void *arg) {
  (void)f;
  map_unref(arg);
}

static int map_chunk_task(void *arg, void **result) {
  (void)result;
  struct map_chunk *c = arg;
  struct map_state *st = c->st;
  for (size_t i = c->lo; i < c->hi; i++) {
    void *v = NULL;
    st->errors[i] = st->fn(st->args[i], &v);
    st->results[i] = st->errors[i] == 0 ? v : NULL;
  }
  return 0;
}

static struct map_state *map_state_new(kiln_task_fn fn, void *const *args, size_t n,
                                       size_t nchunks) {
  struct map_state *st = calloc(1, sizeof *st);
  if (!st) return NULL;
  atomic_init(&st->refs, 1);
  st->fn = fn;
  st->args = malloc((n ? n : 1) * sizeof *st->args);
  st->results = calloc(n ? n : 1, sizeof *st->results);
  st->errors = calloc(n ? n : 1, sizeof *st->errors);
  st->chunks = calloc(nchunks ? nchunks : 1, sizeof *st->chunks);
  if (!st->args || !st->results || !st->errors || !st->chunks) {
    map_unref(st);
    return NULL;
  }
  if (n) memcpy(st->args, args, n * sizeof *args);
  return st;
}

/* Copies out one chunk's outcome; a chunk still running gets code `late` and keeps a ref. */
static void map_collect(struct map_state *st, kiln_future *f, struct map_chunk *c, void **results,
                        int *errors) {
  int code = 0;
  if (!kiln_future_done(f) && !kiln_future_cancel(f)) {
    code = KILN_ETIMEDOUT;
    atomic_fetch_add_explicit(&st->refs, 1, memory_order_relaxed);
    if (kiln_future_on_done(f, map_unref_cb, st)) map_unref(st); /* leaks nothing, may race */
  } else if (kiln_future_cancelled(f)) {
    code = KILN_ECANCELLED;
  }
  for (size_t i = c->lo; i < c->hi; i++) {
    if (results) results[i] = code ? NULL : st->results[i];
    if (errors) errors[i] = code ? code : st->errors[i];
  }
}

int kiln_map(kiln_pool *p, kiln_task_fn fn, void *const *args, size_t n, size_t chunksize,
             double timeout, void **results, int *errors) {
  double deadline;
  int rc = kiln__deadline(timeout, &deadline);
  if (rc) return rc;
  if (chunksize < 1) return KILN_EINVAL;
  size_t nchunks = n / chunksize + (n % chunksize != 0);
  struct map_state *st = map_state_new(fn, args, n, nchunks);
  kiln_future **fs = calloc(nchunks ? nchunks : 1, sizeof *fs);
  if (!st || !fs) {
    if (st) map_unref(st);
    free(fs);
    return KILN_ENOMEM;
  }
  for (size_t k = 0; k < nchunks && rc == 0; k++) {
    st->chunks[k] =
        (struct map_chunk){st, k * chunksize, (k + 1) * chunksize < n ? (k + 1) * chunksize : n};
    rc = kiln_submit(p, map_chunk_task, &st->chunks[k], &fs[k]);
  }
  if (rc) { /* nothing was returned: cancel what was queued and wait for what started */
    for (size_t k = 0; k < nchunks && fs[k]; k++) kiln_future_cancel(fs[k]);
    for (size_t k = 0; k < nchunks && fs[k]; k++) {
      kiln_future_result(fs[k], -1, NULL);
      kiln_future_release(fs[k]);
    }
    free(fs);
    map_unref(st);
    return rc;
  }
  /* one deadline for all: waiting on each chunk in turn allocates nothing (kiln_wait would) */
  for (size_t k = 0; k < nchunks && rc == 0; k++) {
    rc = kiln_future_result(fs[k], isinf(deadline) ? -1 : fmax(0, deadline - kiln__now()), NULL);
    if (rc != KILN_ETIMEDOUT) rc = 0; /* done, whatever its outcome (chunks always return 0) */
  }
  bool late = rc != 0;
  for (size_t k = 0; k < nchunks; k++) {
    map_collect(st, fs[k], &st->chunks[k], results, errors);
    kiln_future_release(fs[k]);
  }
  free(fs);
  if (!late) {
    for (size_t i = 0; i < n; i++)
      if (st->errors[i]) {
        rc = st->errors[i];
        break;
      }
  }
  map_unref(st);
  return late ? KILN_ETIMEDOUT : rc;
}

/* ---- parallel_for ------------------------------------------------------------------------------ */

struct pfor {
  void (*body)(void *ctx, size_t lo, size_t hi);
  void *ctx;
  size_t grain;
  kiln_pool *pool;
  _Atomic size_t remaining; /* iterations not yet run */
  kiln_future *done;        /* promise resolved by the last range */
};

struct pfor_range {
  struct pfor *pf;
  size_t lo, hi;
};

static int pfor_task(void *arg, void **result);

/* Lazy binary splitting (Tzannes, Caragea, Barua, Vishkin, PPoPP 2010): the range runs grain by
 * grain, and its upper half is split off as a new task only when this worker's deque is empty,
 * i.e. when an idle thief would otherwise find nothing. So a loop makes O(threads x log n) tasks
 * instead of n / grain, and a busy pool splits nothing. Every body call still gets at most grain
 * iterations. */
static void pfor_run(struct pfor *pf, size_t lo, size_t hi) {
  size_t ran = 0;
  while (hi - lo > pf->grain) {
    if (kiln__deque_drained()) {
      size_t mid = lo + (hi - lo) / 2;
      struct pfor_range *r = malloc(sizeof *r);
      if (r) {
        *r = (struct pfor_range){pf, mid, hi};
        if (kiln__submit_internal(pf->pool, NULL, 0, pfor_task, r, true, NULL) == 0) {
          hi = mid;
          continue;
        }
        free(r); /* run it here instead */
      }
    }
    pf->body(pf->ctx, lo, lo + pf->grain);
    ran += pf->grain;
    lo += pf->grain;
  }
  pf->body(pf->ctx, lo, hi);
  ran += hi - lo;
  /* acq_rel: the last range sees every body's writes before resolving */
  if (atomic_fetch_sub_explicit(&pf->remaining, ran, memory_order_acq_rel) == ran) {
    kiln_future *d = kiln_future_retain(pf->done); /* pf dies once the caller wakes */
    kiln_promise_resolve(d, NULL);
    kiln_future_release(d);
  }
}

static int pfor_task(void *arg, void **result) {
  (void)result;
  struct pfor_range r = *(struct pfor_range *)arg;
  free(arg);
  pfor_run(r.pf, r.lo, r.hi);
  return 0;
}

int kiln_parallel_for(kiln_pool *p, size_t begin, size_t end, size_t grain,
                      void (*body)(void *ctx, size_t lo, size_t hi), void *ctx) {
  if (end <= begin) return 0;
  struct pfor pf = {body, ctx, grain ? grain : 1, p, 0, NULL};
  atomic_init(&pf.remaining, end - begin);
  int rc = kiln_promise_create(&pf.done);
  if (rc) return rc;
  struct pfor_range *r = malloc(sizeof *r);
  if (!r) {
    kiln_future_release(pf.done);
    return KILN_ENOMEM;
  }
  *r = (struct pfor_range){&pf, begin, end};
  rc = kiln__submit_internal(p, NULL, 0, pfor_task, r, false, NULL);
  if (rc) {
    free(r);
    kiln_future_release(pf.done);
    return rc;
  }
  rc = kiln_future_result(pf.done, -1, NULL);
  kiln_future_release(pf.done);
  return rc;
}
