/* ppool_job.c: the process pool's jobs: their wire bytes and replies (ppool_internal.h has the
 * layout), and the single-task forms submit, apply and apply_async.
 *
 * A single task's job carries a promise (one reference held by the job). Taking it marks the
 * promise running, so a future cancelled while queued is dropped, never run; its finish resolves
 * the promise with a kiln_bytes the future owns, or rejects it with the task's code and message.
 * Callbacks are attached before the job is queued, so they run on the slot thread that completes
 * the future (or in the thread that cancels it). */
#include <stdlib.h>
#include <string.h>

#include "ppool_internal.h"

void kiln__pjob_free(kiln__pjob *j) {
  if (!j) return;
  free(j->wire);
  free(j);
}

void kiln__pjob_free_list(kiln__pjob *head) {
  while (head) {
    kiln__pjob *n = head->next;
    kiln__pjob_free(head);
    head = n;
  }
}

static void put(uint8_t **p, const void *src, size_t n) {
  if (n) memcpy(*p, src, n);
  *p += n;
}

int kiln__pjob_encode(kiln__pjob *j, uintptr_t fn, bool star, const kiln_bytes *args,
                      size_t nitems, size_t nargs) {
  size_t total = 8 + 4 + 4 + 4;
  for (size_t i = 0; i < nitems * nargs; i++) {
    if (args[i].len && !args[i].data) return KILN_EINVAL; /* bytes that cannot be read */
    total += 8 + args[i].len;
  }
  /* a batch travels as one channel message, whose length is 32 bits */
  if (total > UINT32_MAX - 4) return KILN_EINVAL;
  uint8_t *w = malloc(total), *p = w;
  if (!w) return KILN_ENOMEM;
  uint64_t f = fn;
  uint32_t s = star, ni = (uint32_t)nitems, na = (uint32_t)nargs;
  put(&p, &f, 8);
  put(&p, &s, 4);
  put(&p, &ni, 4);
  put(&p, &na, 4);
  for (size_t i = 0; i < nitems * nargs; i++) {
    uint64_t l = args[i].len;
    put(&p, &l, 8);
    put(&p, args[i].data, args[i].len);
  }
  j->wire = w;
  j->wire_len = total;
  j->nitems = (uint32_t)nitems;
  return 0;
}

int kiln__pjob_chunks(uintptr_t fn, bool star, const kiln_bytes *args, size_t n, size_t nargs,
                      size_t chunksize, kiln__pjob **out, size_t *out_n) {
  *out = NULL;
  *out_n = 0;
  kiln__pjob *head = NULL, **tail = &head;
  size_t count = 0;
  for (size_t lo = 0; lo < n; lo += chunksize) {
    size_t k = n - lo < chunksize ? n - lo : chunksize;
    kiln__pjob *j = calloc(1, sizeof *j);
    int rc = j ? kiln__pjob_encode(j, fn, star, args + lo * nargs, k, nargs) : KILN_ENOMEM;
    if (rc) {
      free(j);
      kiln__pjob_free_list(head);
      return rc;
    }
    j->first = lo;
    *tail = j;
    tail = &j->next;
    count++;
  }
  *out = head;
  *out_n = count;
  return 0;
}

int kiln__pitem_next(const uint8_t *reply, size_t len, size_t *pos, kiln__pitem *it) {
  size_t at = *pos;
  if (len - at < 16) return KILN_EIO;
  int32_t code;
  uint32_t ml;
  uint64_t rl;
  memcpy(&code, reply + at, 4);
  memcpy(&ml, reply + at + 4, 4);
  memcpy(&rl, reply + at + 8, 8);
  at += 16;
  if (len - at < ml || len - at - ml < rl) return KILN_EIO;
  it->code = code;
  it->msg = (const char *)reply + at;
  it->msglen = ml;
  it->data = reply + at + ml;
  it->len = (size_t)rl;
  *pos = at + ml + (size_t)rl;
  return 0;
}

int kiln__pitem_bytes(const kiln__pitem *it, kiln_bytes *out) {
  out->len = 0;
  out->data = NULL;
  if (!it->len) return 0;
  out->data = malloc(it->len);
  if (!out->data) return KILN_ENOMEM;
  memcpy(out->data, it->data, it->len);
  out->len = it->len;
  return 0;
}

/* ---- single tasks ----------------------------------------------------------------------------- */

static void bytes_free(void *v) {
  kiln_bytes *b = v;
  if (b) free(b->data);
  free(b);
}

static bool single_take(kiln__pjob *j) { return kiln_promise_set_running(j->ctx); }

/* The outcome of a single task's reply: its only item. */
static void single_reply(kiln_future *f, const uint8_t *reply, size_t len) {
  size_t pos = 4;
  kiln__pitem it;
  if (len < 4 || kiln__pitem_next(reply, len, &pos, &it) != 0) {
    kiln_promise_reject(f, KILN_EIO, "malformed reply from a worker");
    return;
  }
  if (it.code < 0) {
    if (it.msglen)
      kiln_promise_reject(f, it.code, "%.*s", (int)it.msglen, it.msg);
    else
      kiln_promise_reject(f, it.code, NULL);
    return;
  }
  kiln_bytes *b = malloc(sizeof *b);
  if (!b || kiln__pitem_bytes(&it, b) != 0) {
    free(b);
    kiln_promise_reject(f, KILN_ENOMEM, "out of memory for a task's result");
    return;
  }
  kiln_promise_resolve_owned(f, b, bytes_free);
}

static void single_finish(kiln__pjob *j, const uint8_t *reply, size_t len, int code,
                          const char *msg) {
  kiln_future *f = j->ctx;
  if (reply)
    single_reply(f, reply, len);
  else if (!(code == KILN_ECANCELLED && kiln_future_cancel(f)))
    kiln_promise_reject(f, code, "%s", msg ? msg : kiln_strerror(code));
  kiln_future_release(f);
}

struct split_cb {
  kiln_done_fn ok, err;
  void *arg;
  bool disarmed; /* set before the future is cancelled on a failed submit: nothing runs */
};

/* Runs exactly one of ok / err, once: the future is done, so its outcome is final. */
static void split_done(kiln_future *f, void *arg) {
  struct split_cb *cb = arg;
  bool ok = !kiln_future_cancelled(f) && kiln_future_result(f, 0, NULL) == 0;
  kiln_done_fn fn = ok ? cb->ok : cb->err;
  if (fn && !cb->disarmed) fn(f, cb->arg);
  free(cb);
}

int kiln__ppool_on_outcome(kiln_future *f, kiln_done_fn ok, kiln_done_fn err, void *arg,
                           void **handle) {
  *handle = NULL;
  if (!ok && !err) return 0;
  struct split_cb *cb = malloc(sizeof *cb);
  if (!cb) return KILN_ENOMEM;
  *cb = (struct split_cb){ok, err, arg, false};
  int rc = kiln_future_on_done(f, split_done, cb);
  if (rc) free(cb);
  else *handle = cb;
  return rc;
}

void kiln__ppool_abandon(kiln_future *f, void *handle) {
  if (handle) ((struct split_cb *)handle)->disarmed = true;
  kiln_future_cancel(f); /* runs split_done, which frees the record */
  kiln_future_release(f);
}

int kiln_ppool_apply_async(kiln_ppool *p, kiln_ptask_fn fn, const void *arg, size_t len,
                           kiln_done_fn callback, kiln_done_fn error_callback, void *cb_arg,
                           kiln_future **out) {
  if (out) *out = NULL;
  if (!p || !fn || (len && !arg)) return KILN_EINVAL;
  kiln__pjob *j = calloc(1, sizeof *j);
  kiln_future *f = NULL;
  void *cbh = NULL;
  kiln_bytes a = {len, (void *)arg};
  int rc = j ? kiln__pjob_encode(j, (uintptr_t)fn, false, &a, 1, 1) : KILN_ENOMEM;
  if (rc == 0) rc = kiln_promise_create(&f);
  if (rc == 0) rc = kiln__ppool_on_outcome(f, callback, error_callback, cb_arg, &cbh);
  if (rc == 0) {
    j->ctx = kiln_future_retain(f);
    j->finish = single_finish;
    j->take = single_take;
    rc = kiln__ppool_enqueue(p, j, 1);
    if (rc) kiln_future_release(f); /* the job's reference */
  }
  if (rc) {
    kiln__pjob_free(j);
    if (f) kiln__ppool_abandon(f, cbh);
    return rc;
  }
  if (out)
    *out = f;
  else
    kiln_future_release(f);
  return 0;
}

int kiln_ppool_submit(kiln_ppool *p, kiln_ptask_fn fn, const void *arg, size_t len,
                      kiln_future **out) {
  if (!out) return KILN_EINVAL;
  return kiln_ppool_apply_async(p, fn, arg, len, NULL, NULL, NULL, out);
}

int kiln_ppool_apply(kiln_ppool *p, kiln_ptask_fn fn, const void *arg, size_t len,
                     kiln_bytes *result) {
  if (result) *result = (kiln_bytes){0, NULL};
  kiln_future *f;
  int rc = kiln_ppool_submit(p, fn, arg, len, &f);
  if (rc) return rc;
  void *v = NULL;
  rc = kiln_future_result(f, -1, &v);
  if (rc == 0 && result && v) {
    /* the only reference is ours: the bytes move to the caller */
    kiln_bytes *b = v;
    *result = *b;
    b->data = NULL;
    b->len = 0;
  }
  kiln_future_release(f);
  return rc;
}
