/* ppool_worker.c: the loop a process pool worker runs, and kiln_ptask_fail.
 *
 * A worker is a kiln process with one duplex connection to its slot thread in the parent. It runs
 * the initializer once, then receives batches of jobs (ppool_internal.h has the wire) and answers
 * each job with one message as soon as it is done, so that the parent can tell after a crash which
 * job the worker died in. It is single-threaded: nothing here locks. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ppool_internal.h"

/* The message of the failing task, recorded by kiln_ptask_fail. Thread-local so that a call by
 * mistake in the parent (from several threads) is harmless. */
static _Thread_local char t_msg[1024];
static _Thread_local bool t_msg_set;

int kiln_ptask_fail(int code, const char *fmt, ...) {
  t_msg[0] = 0;
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t_msg, sizeof t_msg, fmt, ap);
    va_end(ap);
  }
  t_msg_set = true;
  return code;
}

/* A growable output buffer; on allocation failure it stays failed (ok false). */
typedef struct obuf {
  uint8_t *b;
  size_t len, cap;
  bool ok;
} obuf;

static void ob_put(obuf *o, const void *p, size_t n) {
  if (!o->ok) return;
  if (o->len + n > o->cap) {
    size_t cap = o->cap ? o->cap : 256;
    while (cap < o->len + n) cap *= 2;
    uint8_t *nb = realloc(o->b, cap);
    if (!nb) {
      o->ok = false;
      return;
    }
    o->b = nb, o->cap = cap;
  }
  if (n) memcpy(o->b + o->len, p, n);
  o->len += n;
}

static void put_item(obuf *o, int code, const char *msg, const void *data, size_t len) {
  int32_t c = code;
  uint32_t ml = msg ? (uint32_t)strlen(msg) : 0;
  uint64_t rl = len;
  ob_put(o, &c, 4);
  ob_put(o, &ml, 4);
  ob_put(o, &rl, 8);
  ob_put(o, msg, ml);
  ob_put(o, data, len);
}

/* A cursor over the received batch. */
typedef struct icur {
  const uint8_t *p, *end;
} icur;

static bool take(icur *c, void *dst, size_t n) {
  if ((size_t)(c->end - c->p) < n) return false;
  memcpy(dst, c->p, n);
  c->p += n;
  return true;
}

static bool take_arg(icur *c, kiln_bytes *a) {
  uint64_t l;
  if (!take(c, &l, 8) || (uint64_t)(c->end - c->p) < l) return false;
  a->len = (size_t)l;
  a->data = (void *)c->p;
  c->p += l;
  return true;
}

/* Runs one item and appends its reply. */
static void run_item(obuf *o, uintptr_t fn, bool star, const kiln_bytes *args, uint32_t nargs) {
  void *res = NULL;
  size_t rlen = 0;
  t_msg_set = false;
  int code;
  if (star)
    code = ((kiln_pstar_fn)fn)(args, nargs, &res, &rlen);
  else
    code = ((kiln_ptask_fn)fn)(args[0].len ? args[0].data : NULL, args[0].len, &res, &rlen);
  if (code > 0) {
    /* not a success (a thread task's non-zero code is not one either), and a future cannot fail
     * with a positive code: the task is told apart from one that returned 0 */
    free(res);
    snprintf(t_msg, sizeof t_msg, "task returned %d (not 0 or a negative KILN_E* code)", code);
    put_item(o, KILN_EINVAL, t_msg, NULL, 0);
  } else if (code < 0) {
    free(res);
    put_item(o, code, t_msg_set ? t_msg : NULL, NULL, 0);
  } else {
    put_item(o, 0, NULL, res, res ? rlen : 0);
    free(res);
  }
}

/* Runs one job of the batch and sends its reply. 0, or -1 when the batch is malformed or the
 * parent is gone (the worker then exits). */
static int run_job(icur *c, kiln_channel *conn, obuf *o) {
  uint64_t fn;
  uint32_t star, nitems, nargs;
  if (!take(c, &fn, 8) || !take(c, &star, 4) || !take(c, &nitems, 4) || !take(c, &nargs, 4))
    return -1;
  if (nargs == 0 || nargs > 4096) return -1;
  kiln_bytes stack[8], *args = nargs <= 8 ? stack : malloc(nargs * sizeof *args);
  if (!args) return -1;
  o->len = 0;
  o->ok = true;
  ob_put(o, &nitems, 4);
  int rc = 0;
  for (uint32_t i = 0; i < nitems && rc == 0; i++) {
    for (uint32_t a = 0; a < nargs && rc == 0; a++)
      if (!take_arg(c, &args[a])) rc = -1;
    if (rc == 0) run_item(o, (uintptr_t)fn, star != 0, args, nargs);
  }
  if (args != stack) free(args);
  if (rc == 0 && (!o->ok || o->len > UINT32_MAX)) {
    /* no memory for the reply, or more than a channel message holds: every item fails, so the
     * parent still gets one reply per job */
    int code = o->ok ? KILN_EINVAL : KILN_ENOMEM;
    const char *why = o->ok ? "results larger than a channel message (4 GiB)"
                            : "worker out of memory for the results";
    o->len = 0, o->ok = true;
    ob_put(o, &nitems, 4);
    for (uint32_t i = 0; i < nitems; i++) put_item(o, code, why, NULL, 0);
  }
  if (rc == 0 && (!o->ok || kiln_channel_send(conn, o->b, o->len, -1) != 0)) rc = -1;
  return rc;
}

int kiln__ppool_worker_main(const void *arg, size_t len) {
  if (len < KILN__PWORKER_CFG_HEAD) return 2;
  uint64_t init;
  uint32_t maxtasks;
  memcpy(&init, arg, 8);
  memcpy(&maxtasks, (const uint8_t *)arg + 8, 4);
  kiln_channel *conn = kiln_process_channel(0);
  if (!conn) return 2;
  if (init) {
    size_t il = len - KILN__PWORKER_CFG_HEAD;
    ((void (*)(const void *, size_t))(uintptr_t)init)(
        il ? (const uint8_t *)arg + KILN__PWORKER_CFG_HEAD : NULL, il);
  }
  obuf o = {.ok = true};
  uint64_t done = 0;
  int status = 0;
  for (;;) {
    void *msg;
    size_t mlen;
    if (kiln_channel_recv(conn, &msg, &mlen, -1) != 0) break; /* end of stream: the pool closed */
    icur c = {msg, (const uint8_t *)msg + mlen};
    uint32_t njobs = 0;
    int rc = take(&c, &njobs, 4) ? 0 : -1;
    for (uint32_t i = 0; i < njobs && rc == 0; i++, done++) rc = run_job(&c, conn, &o);
    free(msg);
    if (rc) {
      status = 3;
      break;
    }
    if (maxtasks && done >= maxtasks) break;
  }
  free(o.b);
  return status;
}
