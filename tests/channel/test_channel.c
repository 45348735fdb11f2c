/* test_channel.c: kiln_channel, multiprocessing.Pipe between threads (PIPE-01..PIPE-11 of
 * docs/CONFORMANCE.md).
 *
 * Not applicable in C: there are no rules PIPE-03 and PIPE-08 (object pickling); PIPE-10's
 * process sentinels wait for the process pool. Python's poll(-1) / wait(objs, -1) return at once;
 * in kiln a negative timeout waits forever (Python's None), so those cases are tested as blocking
 * calls woken by another thread. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#include "kiln/sync.h"
#include "kt.h"

// kt: timeout 60

/* ---- helpers ------------------------------------------------------------------------------- */

static void tp_pair(bool duplex, kiln_channel **a, kiln_channel **b) {
  KT_CODE(kiln_channel_pair(duplex, a, b), KILN_OK);
  KT_TRUE(*a && *b);
}

static unsigned char tp_byte(size_t i, uint32_t seed) {
  uint32_t x = (uint32_t)i * 2654435761u + seed * 40503u;
  x ^= x >> 15;
  x *= 2246822519u;
  return (unsigned char)(x >> 13);
}

static unsigned char *tp_pattern(size_t len, uint32_t seed) {
  unsigned char *p = malloc(len ? len : 1);
  KT_TRUE(p);
  for (size_t i = 0; i < len; i++) p[i] = tp_byte(i, seed);
  return p;
}

static bool tp_check(const unsigned char *p, size_t len, uint32_t seed) {
  for (size_t i = 0; i < len; i++)
    if (p[i] != tp_byte(i, seed)) return false;
  return true;
}

static void tp_send_str(kiln_channel *ch, const char *s) {
  KT_CODE(kiln_channel_send(ch, s, strlen(s), -1), KILN_OK);
}

static void tp_recv_str(kiln_channel *ch, const char *want) {
  void *buf = NULL;
  size_t len = 0;
  KT_CODE(kiln_channel_recv(ch, &buf, &len, -1), KILN_OK);
  KT_EQ(len, strlen(want));
  KT_TRUE(len == 0 ? buf == NULL : memcmp(buf, want, len) == 0);
  free(buf);
}

/* A thread that sends one message (blocking) and records the result. */
typedef struct {
  kiln_channel *ch;
  const void *buf;
  size_t len;
  int rc;
  pthread_t thr;
} tp_sender;

static void *tp_sender_main(void *p) {
  tp_sender *s = p;
  s->rc = kiln_channel_send(s->ch, s->buf, s->len, -1);
  return NULL;
}

static void tp_sender_start(tp_sender *s, kiln_channel *ch, const void *buf, size_t len) {
  *s = (tp_sender){.ch = ch, .buf = buf, .len = len, .rc = 1};
  KT_EQ(pthread_create(&s->thr, NULL, tp_sender_main, s), 0);
}

static int tp_sender_join(tp_sender *s) {
  KT_EQ(pthread_join(s->thr, NULL), 0);
  return s->rc;
}

/* A thread that makes one blocking receive-side call; `started` is set just before it. */
typedef struct {
  kiln_channel *ch;
  int op; /* 0 recv, 1 poll(-1) */
  atomic_int started;
  int rc;
  void *buf;
  size_t len;
  pthread_t thr;
} tp_receiver;

static void *tp_receiver_main(void *p) {
  tp_receiver *r = p;
  atomic_store(&r->started, 1);
  r->rc =
      r->op == 0 ? kiln_channel_recv(r->ch, &r->buf, &r->len, -1) : kiln_channel_poll(r->ch, -1);
  return NULL;
}

static void tp_receiver_start(tp_receiver *r, kiln_channel *ch, int op) {
  r->ch = ch;
  r->op = op;
  atomic_init(&r->started, 0);
  r->rc = 1;
  r->buf = NULL;
  r->len = 0;
  KT_EQ(pthread_create(&r->thr, NULL, tp_receiver_main, r), 0);
  while (!atomic_load(&r->started)) sched_yield();
}

static int tp_receiver_join(tp_receiver *r) {
  KT_EQ(pthread_join(r->thr, NULL), 0);
  return r->rc;
}

/* ---- PIPE rules ---------------------------------------------------------------------------- */

/* PIPE-01: a duplex pair sends both ways; send returns 0. */
TEST(duplex_pair_sends_both_ways) {
  kiln_channel *a, *b;
  tp_pair(true, &a, &b);
  KT_FALSE(kiln_channel_closed(a));
  KT_FALSE(kiln_channel_closed(b));
  tp_send_str(a, "ping");
  tp_send_str(b, "pong");
  tp_send_str(a, "second");
  tp_recv_str(b, "ping");
  tp_recv_str(b, "second");
  tp_recv_str(a, "pong");
  KT_EQ(kiln_channel_poll(a, 0), 0);
  KT_EQ(kiln_channel_poll(b, 0), 0);
  kiln_channel_destroy(a);
  kiln_channel_destroy(b);
}

/* PIPE-02: a one-way pair is (reader, writer); the wrong direction is KILN_ESTATE. */
TEST(one_way_pair_wrong_direction_is_estate) {
  kiln_channel *r, *w;
  tp_pair(false, &r, &w);
  char buf[8];
  size_t len = 99;
  void *p = &len;
  KT_CODE(kiln_channel_send(r, "x", 1, -1), KILN_ESTATE);
  KT_CODE(kiln_channel_recv(w, &p, &len, -1), KILN_ESTATE);
  KT_PTR_EQ(p, NULL);
  KT_EQ(len, 0);
  KT_CODE(kiln_channel_recv_into(w, buf, sizeof buf, &len, -1), KILN_ESTATE);
  KT_CODE(kiln_channel_poll(w, -1), KILN_ESTATE);
  kiln_channel *set[2] = {r, w};
  size_t nready = 7;
  KT_CODE(kiln_channel_wait(set, 2, -1, &nready), KILN_ESTATE);
  KT_EQ(nready, 0);
  KT_FALSE(kiln_channel_closed(r));
  KT_FALSE(kiln_channel_closed(w));
  tp_send_str(w, "one way");
  KT_EQ(kiln_channel_poll(r, 0), 1);
  tp_recv_str(r, "one way");
  kiln_channel_destroy(w);
  KT_CODE(kiln_channel_recv(r, &p, &len, -1), KILN_EEOF);
  kiln_channel_destroy(r);
}

/* PIPE-04: poll(0) never blocks; poll(t) returns 0 after about t; once data is there poll returns
 * 1 at once, and a poll blocked with no timeout wakes up when data comes. */
TEST(poll_reports_data_at_once_or_after_timeout) {
  kiln_channel *a, *b;
  tp_pair(true, &a, &b);
  KT_EQ(kiln_channel_poll(a, 0), 0);
  double t0 = kt_now();
  KT_EQ(kiln_channel_poll(a, 0.1), 0);
  KT_TIMED(kt_now() - t0, 0.1);
  KT_CODE(kiln_channel_poll(a, NAN), KILN_EINVAL);
  tp_send_str(b, "x");
  KT_EQ(kiln_channel_poll(a, 0), 1);
  KT_EQ(kiln_channel_poll(a, -1), 1);
  t0 = kt_now();
  KT_EQ(kiln_channel_poll(a, 10), 1);
  KT_TRUE(kt_now() - t0 < 1.0);
  KT_EQ(kiln_channel_poll(a, 0), 1); /* poll consumes nothing */
  tp_recv_str(a, "x");
  KT_EQ(kiln_channel_poll(a, 0), 0);

  tp_receiver r;
  tp_receiver_start(&r, a, 1);
  tp_send_str(b, "wake");
  KT_EQ(tp_receiver_join(&r), 1);
  tp_recv_str(a, "wake");
  kiln_channel_destroy(a);
  kiln_channel_destroy(b);
}

/* PIPE-05: a 16 MiB message round-trips intact, both ways, into a new buffer and into the
 * caller's. The send blocks until the reader drains it, so it runs in another thread. */
TEST(sixteen_mib_message_round_trips) {
  enum { N = 16 << 20 };
  kiln_channel *a, *b;
  tp_pair(true, &a, &b);
  unsigned char *msg = tp_pattern(N, 5);
  tp_sender s;
  tp_sender_start(&s, b, msg, N);
  void *got = NULL;
  size_t len = 0;
  KT_CODE(kiln_channel_recv(a, &got, &len, -1), KILN_OK);
  KT_CODE(tp_sender_join(&s), KILN_OK);
  KT_EQ(len, N);
  KT_TRUE(memcmp(got, msg, N) == 0);

  tp_sender_start(&s, a, msg, N);
  memset(got, 0, N);
  KT_CODE(kiln_channel_recv_into(b, got, N, &len, -1), KILN_OK);
  KT_CODE(tp_sender_join(&s), KILN_OK);
  KT_EQ(len, N);
  KT_TRUE(memcmp(got, msg, N) == 0);
  free(got);
  free(msg);
  kiln_channel_destroy(a);
  kiln_channel_destroy(b);
}

/* PIPE-06: the C form of send_bytes(buf, offset, size) is a pointer and a length: a slice is sent
 * as is, a zero length (at the end of a buffer, or NULL) is an empty message. A length over
 * 2^32-1 or a NULL buffer with a length is KILN_EINVAL (Python's ValueError) and sends nothing. */
TEST(send_slice_or_empty_message) {
  kiln_channel *a, *b;
  tp_pair(true, &a, &b);
  const char data[] = "0123456789";
  KT_CODE(kiln_channel_send(b, data + 3, 4, -1), KILN_OK);
  KT_CODE(kiln_channel_send(b, data + 10, 0, -1), KILN_OK);
  KT_CODE(kiln_channel_send(b, NULL, 0, 0), KILN_OK);
  KT_CODE(kiln_channel_send(b, data, 10, 0), KILN_OK);
  KT_CODE(kiln_channel_send(b, NULL, 5, -1), KILN_EINVAL);
  KT_CODE(kiln_channel_send(b, data, 1, NAN), KILN_EINVAL);
#if SIZE_MAX > UINT32_MAX
  KT_CODE(kiln_channel_send(b, data, (size_t)UINT32_MAX + 1, -1), KILN_EINVAL);
#endif
  tp_recv_str(a, "3456");
  void *p = &p;
  size_t len = 99;
  KT_CODE(kiln_channel_recv(a, &p, &len, -1), KILN_OK);
  KT_PTR_EQ(p, NULL);
  KT_EQ(len, 0);
  char buf[16];
  len = 99;
  KT_CODE(kiln_channel_recv_into(a, buf, 0, &len, -1), KILN_OK);
  KT_EQ(len, 0);
  KT_CODE(kiln_channel_recv_into(a, buf, sizeof buf, &len, -1), KILN_OK);
  KT_EQ(len, 10);
  KT_TRUE(memcmp(buf, data, 10) == 0);
  KT_EQ(kiln_channel_poll(a, 0), 0); /* the rejected sends sent nothing */
  KT_CODE(kiln_channel_recv_into(a, NULL, 4, &len, 0), KILN_EINVAL);
  kiln_channel_destroy(a);
  kiln_channel_destroy(b);
}

/* PIPE-07: recv_into writes the message where asked (an offset is a pointer into the buffer) and
 * returns its length. Too short: KILN_EINVAL, *len the size needed, and the message stays queued
 * (Python's BufferTooShort carries it instead); also for a big message still being sent. */
TEST(recv_into_too_short_keeps_the_message) {
  kiln_channel *a, *b;
  tp_pair(true, &a, &b);
  char buf[32];
  memset(buf, '.', sizeof buf);
  size_t len = 0;
  tp_send_str(b, "hello world");
  KT_CODE(kiln_channel_recv_into(a, buf + 5, sizeof buf - 5, &len, -1), KILN_OK);
  KT_EQ(len, 11);
  KT_TRUE(memcmp(buf, ".....hello world.", 17) == 0);

  tp_send_str(b, "hello world");
  tp_send_str(b, "next");
  KT_CODE(kiln_channel_recv_into(a, buf, 4, &len, -1), KILN_EINVAL);
  KT_EQ(len, 11);
  KT_EQ(kiln_channel_poll(a, 0), 1);
  size_t nready = 0;
  kiln_channel *set[1] = {a};
  KT_CODE(kiln_channel_wait(set, 1, 0, &nready), KILN_OK);
  KT_EQ(nready, 1);
  KT_CODE(kiln_channel_recv_into(a, buf, 10, &len, 0), KILN_EINVAL);
  KT_EQ(len, 11);
  KT_CODE(kiln_channel_recv_into(a, buf, 11, &len, 0), KILN_OK); /* exactly fits */
  KT_EQ(len, 11);
  KT_TRUE(memcmp(buf, "hello world", 11) == 0);
  KT_CODE(kiln_channel_recv_into(a, buf, 3, &len, 0), KILN_EINVAL);
  KT_EQ(len, 4);
  tp_recv_str(a, "next"); /* the allocating receive takes the kept message too */

  enum { N = 1 << 20 };
  unsigned char *msg = tp_pattern(N, 7);
  tp_sender s;
  tp_sender_start(&s, b, msg, N);
  KT_CODE(kiln_channel_recv_into(a, buf, sizeof buf, &len, -1), KILN_EINVAL);
  KT_EQ(len, N);
  unsigned char *big = malloc(N);
  KT_TRUE(big);
  KT_CODE(kiln_channel_recv_into(a, big, N, &len, -1), KILN_OK);
  KT_EQ(len, N);
  KT_TRUE(memcmp(big, msg, N) == 0);
  KT_CODE(tp_sender_join(&s), KILN_OK);
  free(big);
  free(msg);
  kiln_channel_destroy(a);
  kiln_channel_destroy(b);
}

/* PIPE-09: after close, closed() is true and every call on that end is KILN_ESTATE; closing again
 * is fine; the peer sees end of stream, and its sends fail with KILN_EEOF. */
TEST(closed_end_is_estate_peer_sees_eof) {
  kiln_channel *a, *b;
  tp_pair(true, &a, &b);
  kiln_channel_close(a);
  KT_TRUE(kiln_channel_closed(a));
  KT_FALSE(kiln_channel_closed(b));
  void *p = NULL;
  size_t len = 0;
  char buf[4];
  KT_CODE(kiln_channel_recv(a, &p, &len, -1), KILN_ESTATE);
  KT_CODE(kiln_channel_recv_into(a, buf, sizeof buf, &len, -1), KILN_ESTATE);
  KT_CODE(kiln_channel_send(a, "x", 1, -1), KILN_ESTATE);
  KT_CODE(kiln_channel_poll(a, -1), KILN_ESTATE);
  size_t nready = 0;
  kiln_channel *set[2] = {b, a};
  KT_CODE(kiln_channel_wait(set, 2, -1, &nready), KILN_ESTATE);
  kiln_channel_close(a);
  KT_TRUE(kiln_channel_closed(a));
  KT_EQ(kiln_channel_poll(b, 0), 1); /* end of stream counts as ready */
  KT_CODE(kiln_channel_recv(b, &p, &len, -1), KILN_EEOF);
  KT_CODE(kiln_channel_send(b, "x", 1, -1), KILN_EEOF);
  kiln_channel_destroy(a);
  kiln_channel_destroy(b);
  kiln_channel_destroy(NULL);
}

/* PIPE-10: wait returns the ready ones (data or end of stream) first and how many; nothing after
 * the timeout; at once with timeout 0; a wait with no timeout wakes when one becomes ready; more
 * channels than fit on the stack. */
TEST(wait_returns_the_ready_channels_first) {
  enum { N = 20 };
  kiln_channel *a[N], *b[N], *set[N];
  for (int i = 0; i < N; i++) tp_pair(true, &a[i], &b[i]);
  size_t nready = 9;
  double t0 = kt_now();
  KT_CODE(kiln_channel_wait(a, 3, 0.1, &nready), KILN_OK);
  KT_TIMED(kt_now() - t0, 0.1);
  KT_EQ(nready, 0);
  KT_CODE(kiln_channel_wait(a, 3, 0, &nready), KILN_OK);
  KT_EQ(nready, 0);
  KT_CODE(kiln_channel_wait(a, 0, 0, &nready), KILN_OK);
  KT_EQ(nready, 0);
  KT_CODE(kiln_channel_wait(a, 3, NAN, &nready), KILN_EINVAL);

  tp_send_str(b[2], "two");
  kiln_channel_close(b[0]);
  memcpy(set, a, 3 * sizeof *set);
  KT_CODE(kiln_channel_wait(set, 3, 5, &nready), KILN_OK);
  KT_EQ(nready, 2);
  KT_PTR_EQ(set[0], a[0]);
  KT_PTR_EQ(set[1], a[2]);
  KT_PTR_EQ(set[2], a[1]);

  /* a blocked wait (on the channels not ready yet) wakes up on a send */
  memcpy(set, a + 3, (N - 3) * sizeof *set);
  tp_sender s;
  tp_sender_start(&s, b[N - 2], "late", 4);
  KT_CODE(kiln_channel_wait(set, N - 3, -1, &nready), KILN_OK);
  KT_CODE(tp_sender_join(&s), KILN_OK);
  KT_EQ(nready, 1);
  KT_PTR_EQ(set[0], a[N - 2]);
  for (int i = 1; i < N - 3; i++) KT_TRUE(set[i] != a[N - 2]);
  tp_recv_str(a[N - 2], "late");

  for (int i = 0; i < N; i++) {
    kiln_channel_destroy(a[i]);
    kiln_channel_destroy(b[i]);
  }
}

/* PIPE-11: signals do not break send and recv. A no-op SIGUSR1 handler without SA_RESTART is
 * installed and sent again and again to the blocked receiver and to the sender while an 8 MiB
 * message flows; it arrives intact. A timed receive under the same signals still waits its full
 * timeout. (That a large send blocks until the reader drains it: sixteen_mib_message_round_trips,
 * and eof_after_close, where a sender blocked mid-message gets KILN_EEOF when the reader
 * closes.) */
static atomic_int g_sigs;
static void tp_on_signal(int sig) {
  (void)sig;
  atomic_fetch_add_explicit(&g_sigs, 1, memory_order_relaxed);
}

static void tp_install_handler(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = tp_on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; /* no SA_RESTART: blocking calls see EINTR */
  KT_EQ(sigaction(SIGUSR1, &sa, NULL), 0);
}

typedef struct {
  pthread_t targets[2];
  int ntargets;
  atomic_int stop;
  atomic_int phase1_done;
  pthread_t thr;
} tp_signaller;

/* Sends SIGUSR1 to t and waits until the handler ran (or we are told to stop). The signal is
 * sent again every 10 ms until then: ThreadSanitizer defers a handler to the thread's next
 * intercepted call, so a signal that lands just before the thread blocks in poll() runs no handler
 * and interrupts nothing until another one arrives. */
static void tp_kill_wait(tp_signaller *s, pthread_t t) {
  int before = atomic_load(&g_sigs);
  double sent = kt_now();
  pthread_kill(t, SIGUSR1);
  while (atomic_load(&g_sigs) == before && !atomic_load(&s->stop)) {
    sched_yield();
    if (kt_now() - sent > 0.01) {
      sent = kt_now();
      pthread_kill(t, SIGUSR1);
    }
  }
}

static void *tp_signaller_main(void *p) {
  tp_signaller *s = p;
  for (int i = 0; i < 20 && !atomic_load(&s->stop); i++) tp_kill_wait(s, s->targets[0]);
  atomic_store(&s->phase1_done, 1);
  while (!atomic_load(&s->stop))
    for (int i = 0; i < s->ntargets; i++) tp_kill_wait(s, s->targets[i]);
  return NULL;
}

static void tp_signaller_start(tp_signaller *s, pthread_t t0, pthread_t t1, int ntargets) {
  s->targets[0] = t0;
  s->targets[1] = t1;
  s->ntargets = ntargets;
  atomic_init(&s->stop, 0);
  atomic_init(&s->phase1_done, 0);
  KT_EQ(pthread_create(&s->thr, NULL, tp_signaller_main, s), 0);
}

/* PIPE-11: an 8 MiB message under a stream of signals to both threads arrives intact. */
TEST(signals_do_not_break_send_and_recv) {
  enum { N = 8 << 20 };
  tp_install_handler();
  kiln_channel *a, *b;
  tp_pair(false, &a, &b);
  unsigned char *msg = tp_pattern(N, 11);
  tp_receiver r;
  tp_receiver_start(&r, a, 0); /* blocks: nothing sent yet */
  tp_signaller s;
  tp_signaller_start(&s, r.thr, pthread_self(), 2);
  while (!atomic_load(&s.phase1_done)) sched_yield(); /* 20 signals hit the waiting receiver */
  KT_CODE(kiln_channel_send(b, msg, N, -1), KILN_OK); /* interrupted too */
  atomic_store(&s.stop, 1); /* before the receiver may end: no signal to a thread joined */
  KT_EQ(pthread_join(s.thr, NULL), 0);
  KT_CODE(tp_receiver_join(&r), KILN_OK);
  KT_TRUE(atomic_load(&g_sigs) >= 20);
  KT_EQ(r.len, N);
  KT_TRUE(memcmp(r.buf, msg, N) == 0);
  free(r.buf);
  free(msg);
  kiln_channel_destroy(a);
  kiln_channel_destroy(b);
}

static void *tp_timed_recv_main(void *p) {
  kiln_channel *ch = p;
  void *buf = NULL;
  size_t len = 0;
  double t0 = kt_now();
  KT_CODE(kiln_channel_recv(ch, &buf, &len, 0.2), KILN_ETIMEDOUT);
  KT_TIMED(kt_now() - t0, 0.2);
  t0 = kt_now();
  KT_EQ(kiln_channel_poll(ch, 0.1), 0);
  KT_TIMED(kt_now() - t0, 0.1);
  return NULL;
}

/* PIPE-11: a timed receive under the same signals still waits its whole timeout. */
TEST(signals_do_not_shorten_a_timed_recv) {
  tp_install_handler();
  kiln_channel *a, *b;
  tp_pair(true, &a, &b);
  pthread_t t;
  KT_EQ(pthread_create(&t, NULL, tp_timed_recv_main, a), 0);
  tp_signaller s;
  tp_signaller_start(&s, t, t, 1);
  KT_EQ(pthread_join(t, NULL), 0);
  atomic_store(&s.stop, 1);
  KT_EQ(pthread_join(s.thr, NULL), 0);
  KT_TRUE(atomic_load(&g_sigs) >= 1);
  kiln_channel_destroy(a);
  kiln_channel_destroy(b);
}

/* ---- beyond the conformance rules ------------------------------------------------------------ */

/* Messages sent before close are all delivered, then KILN_EEOF, every time; a receiver blocked
 * when the peer closes wakes with KILN_EEOF; a sender blocked mid-message when the reader closes
 * gets KILN_EEOF. */
TEST(eof_after_close) {
  kiln_channel *a, *b;
  tp_pair(false, &a, &b);
  tp_send_str(b, "one");
  KT_CODE(kiln_channel_send(b, NULL, 0, -1), KILN_OK);
  tp_send_str(b, "three");
  kiln_channel_destroy(b);
  KT_EQ(kiln_channel_poll(a, 0), 1);
  tp_recv_str(a, "one");
  tp_recv_str(a, "");
  tp_recv_str(a, "three");
  void *p = NULL;
  size_t len = 0;
  char buf[8];
  KT_EQ(kiln_channel_poll(a, 0), 1);
  KT_CODE(kiln_channel_recv(a, &p, &len, -1), KILN_EEOF);
  KT_CODE(kiln_channel_recv(a, &p, &len, 0), KILN_EEOF);
  KT_CODE(kiln_channel_recv_into(a, buf, sizeof buf, &len, -1), KILN_EEOF);
  kiln_channel_destroy(a);

  tp_pair(true, &a, &b);
  tp_receiver r;
  tp_receiver_start(&r, a, 0);
  kiln_channel_close(b);
  KT_CODE(tp_receiver_join(&r), KILN_EEOF);
  kiln_channel_destroy(a);
  kiln_channel_destroy(b);

  enum { N = 4 << 20 };
  unsigned char *msg = tp_pattern(N, 3);
  tp_pair(false, &a, &b);
  tp_sender s;
  tp_sender_start(&s, b, msg, N); /* more than the socket holds: blocks until closed */
  kiln_channel_close(a);
  KT_CODE(tp_sender_join(&s), KILN_EEOF);
  free(msg);
  kiln_channel_destroy(a);
  kiln_channel_destroy(b);
}

/* Closing an end wakes the calls blocked on that same end, which return KILN_ESTATE. */
TEST(close_wakes_own_end) {
  kiln_channel *a, *b;
  tp_pair(true, &a, &b);
  tp_receiver r, q;
  tp_receiver_start(&r, a, 0);
  tp_receiver_start(&q, a, 1);
  kiln_channel_close(a);
  KT_CODE(tp_receiver_join(&r), KILN_ESTATE);
  KT_CODE(tp_receiver_join(&q), KILN_ESTATE);
  void *p = NULL;
  size_t len = 0;
  KT_CODE(kiln_channel_recv(b, &p, &len, -1), KILN_EEOF);
  kiln_channel_destroy(a);
  kiln_channel_destroy(b);
}

/* Timeouts: recv on an empty channel; send on a full one (nothing of that message is sent, and
 * every message sent before is received whole). */
TEST(timeouts) {
  kiln_channel *a, *b;
  tp_pair(true, &a, &b);
  void *p = NULL;
  size_t len = 0;
  char buf[1024];
  KT_CODE(kiln_channel_recv(a, &p, &len, 0), KILN_ETIMEDOUT);
  double t0 = kt_now();
  KT_CODE(kiln_channel_recv(a, &p, &len, 0.1), KILN_ETIMEDOUT);
  KT_TIMED(kt_now() - t0, 0.1);
  t0 = kt_now();
  KT_CODE(kiln_channel_recv_into(a, buf, sizeof buf, &len, 0.1), KILN_ETIMEDOUT);
  KT_TIMED(kt_now() - t0, 0.1);

  /* 1 KiB messages go into the socket whole or not at all, so filling it never blocks. */
  int sent = 0;
  for (;; sent++) {
    memset(buf, sent & 0xff, sizeof buf);
    int rc = kiln_channel_send(b, buf, sizeof buf, 0);
    if (rc == KILN_ETIMEDOUT) break;
    KT_CODE(rc, KILN_OK);
    KT_TRUE(sent < 100000);
  }
  KT_TRUE(sent > 0);
  t0 = kt_now();
  KT_CODE(kiln_channel_send(b, buf, sizeof buf, 0.1), KILN_ETIMEDOUT);
  KT_TIMED(kt_now() - t0, 0.1);
  for (int i = 0; i < sent; i++) {
    KT_CODE(kiln_channel_recv_into(a, buf, sizeof buf, &len, 0), KILN_OK);
    KT_EQ(len, sizeof buf);
    KT_EQ((unsigned char)buf[0], i & 0xff);
    KT_EQ((unsigned char)buf[sizeof buf - 1], i & 0xff);
  }
  KT_EQ(kiln_channel_poll(a, 0), 0);
  kiln_channel_destroy(a);
  kiln_channel_destroy(b);
}

/* A message read in pieces across receives that time out (timeout 0, while the sender is still
 * writing it) comes out whole, whichever receive call finishes it; a too-short recv_into in the
 * middle reports the size and loses nothing. */
static const size_t tp_sizes[] = {0, 1, 3, 100, 70000, 1 << 20, 300000, 0, 5, 2 << 20, 4096, 65536};
enum { TP_NSIZES = sizeof tp_sizes / sizeof tp_sizes[0], TP_ROUNDS = 3 };

static void *tp_partial_sender(void *p) {
  kiln_channel *ch = p;
  for (int k = 0; k < TP_ROUNDS * TP_NSIZES; k++) {
    size_t n = tp_sizes[k % TP_NSIZES];
    unsigned char *m = tp_pattern(n, (uint32_t)k);
    KT_CODE(kiln_channel_send(ch, m, n, -1), KILN_OK);
    free(m);
  }
  return NULL;
}

TEST(partial_across_timeouts) {
  kiln_channel *a, *b;
  tp_pair(false, &a, &b);
  pthread_t t;
  KT_EQ(pthread_create(&t, NULL, tp_partial_sender, b), 0);
  unsigned char *big = malloc(2 << 20);
  unsigned char small[8];
  KT_TRUE(big);
  int attempt = 0;
  for (int k = 0; k < TP_ROUNDS * TP_NSIZES; attempt++) {
    size_t want = tp_sizes[k % TP_NSIZES], len = 0;
    void *p = NULL;
    int rc;
    switch (attempt % 3) {
      case 0: rc = kiln_channel_recv(a, &p, &len, 0); break;
      case 1:
        rc = kiln_channel_recv_into(a, big, 2 << 20, &len, 0);
        p = big;
        break;
      default:
        rc = kiln_channel_recv_into(a, small, sizeof small, &len, 0);
        p = small;
        if (rc == KILN_EINVAL) {
          KT_EQ(len, want);
          continue;
        }
    }
    if (rc == KILN_ETIMEDOUT) {
      KT_EQ(kiln_channel_poll(a, -1), 1);
      continue;
    }
    KT_CODE(rc, KILN_OK);
    KT_EQ(len, want);
    KT_TRUE(tp_check(p, len, (uint32_t)k));
    if (attempt % 3 == 0) free(p);
    k++;
  }
  KT_EQ(pthread_join(t, NULL), 0);
  KT_EQ(kiln_channel_poll(a, 0), 0);
  free(big);
  kiln_channel_destroy(a);
  kiln_channel_destroy(b);
}

/* Destroying an end that holds part of a message frees it (checked by ASan). */
TEST(destroy_partial) {
  enum { N = 1 << 20 };
  kiln_channel *a, *b;
  tp_pair(false, &a, &b);
  unsigned char *msg = tp_pattern(N, 1);
  tp_sender s;
  tp_sender_start(&s, b, msg, N);
  char buf[4];
  size_t len = 0;
  KT_CODE(kiln_channel_recv_into(a, buf, sizeof buf, &len, -1), KILN_EINVAL);
  KT_EQ(len, N);
  void *p = NULL;
  int rc = kiln_channel_recv(a, &p, &len, 0);
  KT_TRUE(rc == KILN_OK || rc == KILN_ETIMEDOUT);
  free(p);
  kiln_channel_destroy(a);
  rc = tp_sender_join(&s);
  KT_TRUE(rc == KILN_OK || rc == KILN_EEOF);
  free(msg);
  kiln_channel_destroy(b);
}

/* Several senders and several receivers on one pair of ends: every message arrives once, whole,
 * and each receiver sees each sender's messages in the order they were sent. */
enum { MS_SENDERS = 3, MS_RECEIVERS = 2, MS_MSGS = 300, MS_BIG = 200 * 1024 };

static size_t ms_size(int s, int i) {
  return i % 60 == 59 ? MS_BIG + (size_t)s : 8 + (size_t)((i * 37 + s * 11) % 200);
}

typedef struct {
  kiln_channel *ch;
  int id;
  atomic_int *seen; /* [MS_SENDERS * MS_MSGS] */
} ms_arg;

static void *ms_sender(void *p) {
  ms_arg *a = p;
  for (int i = 0; i < MS_MSGS; i++) {
    size_t n = ms_size(a->id, i);
    unsigned char *m = tp_pattern(n, (uint32_t)(a->id * MS_MSGS + i));
    m[0] = (unsigned char)a->id;
    m[1] = (unsigned char)(i >> 8);
    m[2] = (unsigned char)i;
    KT_CODE(kiln_channel_send(a->ch, m, n, -1), KILN_OK);
    free(m);
  }
  return NULL;
}

static void ms_check(ms_arg *a, const unsigned char *m, size_t n, int *last) {
  KT_TRUE(n >= 8);
  int s = m[0], i = m[1] << 8 | m[2];
  KT_TRUE(s < MS_SENDERS && i < MS_MSGS);
  KT_EQ(n, ms_size(s, i));
  unsigned char *want = tp_pattern(n, (uint32_t)(s * MS_MSGS + i));
  KT_TRUE(memcmp(m + 3, want + 3, n - 3) == 0);
  free(want);
  KT_TRUE(i > last[s]);
  last[s] = i;
  atomic_fetch_add(&a->seen[s * MS_MSGS + i], 1);
}

static void *ms_receiver(void *p) {
  ms_arg *a = p;
  int last[MS_SENDERS] = {-1, -1, -1};
  unsigned char *buf = malloc(MS_BIG + 64);
  KT_TRUE(buf);
  for (;;) {
    void *m = NULL;
    size_t n = 0;
    int rc = a->id == 0 ? kiln_channel_recv(a->ch, &m, &n, -1)
                        : kiln_channel_recv_into(a->ch, buf, MS_BIG + 64, &n, -1);
    if (rc == KILN_EEOF) break;
    KT_CODE(rc, KILN_OK);
    ms_check(a, a->id == 0 ? m : buf, n, last);
    free(m);
  }
  free(buf);
  return NULL;
}

TEST(many_senders_receivers) {
  kiln_channel *a, *b;
  tp_pair(false, &a, &b);
  static atomic_int seen[MS_SENDERS * MS_MSGS];
  pthread_t st[MS_SENDERS], rt[MS_RECEIVERS];
  ms_arg sa[MS_SENDERS], ra[MS_RECEIVERS];
  for (int i = 0; i < MS_RECEIVERS; i++) {
    ra[i] = (ms_arg){a, i, seen};
    KT_EQ(pthread_create(&rt[i], NULL, ms_receiver, &ra[i]), 0);
  }
  for (int i = 0; i < MS_SENDERS; i++) {
    sa[i] = (ms_arg){b, i, seen};
    KT_EQ(pthread_create(&st[i], NULL, ms_sender, &sa[i]), 0);
  }
  for (int i = 0; i < MS_SENDERS; i++) KT_EQ(pthread_join(st[i], NULL), 0);
  kiln_channel_close(b);
  for (int i = 0; i < MS_RECEIVERS; i++) KT_EQ(pthread_join(rt[i], NULL), 0);
  for (int i = 0; i < MS_SENDERS * MS_MSGS; i++) KT_EQ(atomic_load(&seen[i]), 1);
  kiln_channel_destroy(a);
  kiln_channel_destroy(b);
}

/* A duplex ping-pong between two threads: each reply is the request plus one. */
enum { PP_ROUNDS = 1000 };

static void *pp_echo(void *p) {
  kiln_channel *ch = p;
  for (;;) {
    uint32_t v = 0;
    size_t len = 0;
    int rc = kiln_channel_recv_into(ch, &v, sizeof v, &len, -1);
    if (rc == KILN_EEOF) break;
    KT_CODE(rc, KILN_OK);
    KT_EQ(len, sizeof v);
    v++;
    KT_CODE(kiln_channel_send(ch, &v, sizeof v, -1), KILN_OK);
  }
  return NULL;
}

TEST(ping_pong) {
  kiln_channel *a, *b;
  tp_pair(true, &a, &b);
  pthread_t t;
  KT_EQ(pthread_create(&t, NULL, pp_echo, b), 0);
  for (uint32_t i = 0; i < PP_ROUNDS; i++) {
    KT_CODE(kiln_channel_send(a, &i, sizeof i, -1), KILN_OK);
    void *p = NULL;
    size_t len = 0;
    KT_CODE(kiln_channel_recv(a, &p, &len, 5), KILN_OK);
    KT_EQ(len, sizeof i);
    uint32_t v;
    memcpy(&v, p, sizeof v);
    free(p);
    KT_EQ(v, i + 1);
  }
  kiln_channel_close(a);
  KT_EQ(pthread_join(t, NULL), 0);
  kiln_channel_destroy(a);
  kiln_channel_destroy(b);
}

/* A timed receive keeps its timeout while another thread's receive without a timeout is blocked
 * on the same end (and holds the end's receive lock): a try (timeout 0) returns at once, a
 * timeout of 0.1 s after about 0.1 s. Repeated, so that most probes meet the lock held. */
TEST(timeout_behind_blocked_receiver) {
  kiln_channel *a = NULL, *b = NULL;
  KT_CODE(kiln_channel_pair(true, &a, &b), KILN_OK);
  tp_receiver r;
  tp_receiver_start(&r, b, 0);
  for (int i = 0; i < 20; i++) {
    void *buf = NULL;
    size_t len = 0;
    double t0 = kt_now();
    KT_CODE(kiln_channel_recv(b, &buf, &len, 0), KILN_ETIMEDOUT);
    KT_TRUE(kt_now() - t0 < 1.0);
    sched_yield();
  }
  for (int i = 0; i < 3; i++) {
    void *buf = NULL;
    size_t len = 0;
    double t0 = kt_now();
    KT_CODE(kiln_channel_recv(b, &buf, &len, 0.1), KILN_ETIMEDOUT);
    KT_TIMED(kt_now() - t0, 0.1);
  }
  KT_CODE(kiln_channel_send(a, "x", 1, -1), KILN_OK);
  KT_CODE(tp_receiver_join(&r), KILN_OK);
  KT_EQ(r.len, 1);
  free(r.buf);
  kiln_channel_destroy(a);
  kiln_channel_destroy(b);
}

/* A huge finite timeout (1e300 s) is as good as none while another thread's receive holds the
 * end: the second receive waits for its message rather than failing at once (the time left
 * must not overflow when turned into the lock's deadline). */
typedef struct {
  kiln_channel *ch;
  atomic_int *go;
  int rc;
} race_arg;

static void *huge_recv(void *p) {
  race_arg *r = p;
  void *buf = NULL;
  size_t len = 0;
  atomic_store(r->go, 1);
  r->rc = kiln_channel_recv(r->ch, &buf, &len, 1e300);
  free(buf);
  return NULL;
}

TEST(huge_timeout_behind_blocked_receiver) {
  kiln_channel *a, *b;
  tp_pair(true, &a, &b);
  tp_receiver r;
  tp_receiver_start(&r, b, 0);
  for (int i = 0; i < 100; i++) sched_yield(); /* most often r now holds the receive lock */
  atomic_int go;
  atomic_init(&go, 0);
  race_arg h = {b, &go, 9};
  pthread_t t;
  KT_EQ(pthread_create(&t, NULL, huge_recv, &h), 0);
  while (!atomic_load(&go)) sched_yield();
  for (int i = 0; i < 100; i++) sched_yield();
  tp_send_str(a, "one");
  tp_send_str(a, "two");
  KT_CODE(tp_receiver_join(&r), KILN_OK);
  free(r.buf);
  KT_EQ(pthread_join(t, NULL), 0);
  KT_CODE(h.rc, KILN_OK);
  kiln_channel_destroy(a);
  kiln_channel_destroy(b);
}
