/* test_ring_proc.c: a channel's shared-memory ring across processes: messages larger than the
 * ring, odd sizes wrapping it, end of stream only after the last writer's copy closes, a writer
 * killed in the middle of a message, a reader that dies while the writer waits for room, and the
 * socket stream fallback handed to a child. Both start methods where the method matters (the
 * fork server receives the ring's memfd; a forked child maps its own copy). */
// kt: timeout 60
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <unistd.h>

#include "kiln/proc.h"
#include "kiln/sync.h"
#include "kt.h"
#include "sync_internal.h"

enum { RING = 1 << 20, BIG = 16 << 20, NMSG = 40 };

static unsigned char rp_byte(size_t i, uint32_t k) {
  uint32_t x = (uint32_t)i * 2654435761u ^ (k + 1) * 40503u;
  x ^= x >> 13;
  return (unsigned char)(x * 2246822519u >> 24);
}

/* Odd sizes, empty ones and ones above the ring's capacity, wrapping it many times. */
static size_t rp_size(uint32_t k) {
  static const size_t sizes[] = {0, 1, 4093, RING + 7, 3, 0, 777777, 65536, RING - 4, 5};
  return k == 7 ? BIG : sizes[k % (sizeof sizes / sizeof sizes[0])];
}

static kiln_process *rp_start(kiln_start_method m, kiln_process_fn fn, kiln_channel *const *chs,
                              size_t n) {
  if (m == KILN_START_FORKSERVER) KT_CODE(kiln_forkserver_start(), 0);
  kiln_process_config cfg;
  kiln_process_config_default(&cfg);
  cfg.start = m;
  cfg.channels = chs;
  cfg.nchannels = n;
  kiln_process *p = NULL;
  KT_CODE(kiln_process_start(&cfg, fn, NULL, 0, &p), 0);
  return p;
}

static int rp_exitcode(kiln_process *p) {
  KT_CODE(kiln_process_join(p, 30), 0);
  int code = 12345;
  KT_CODE(kiln_process_exitcode(p, &code), 0);
  return code;
}

/* Sends NMSG messages of rp_size on channel 0, then returns (the end closes with the process). */
static int send_sizes(const void *arg, size_t len) {
  (void)arg, (void)len;
  kiln_channel *ch = kiln_process_channel(0);
  for (uint32_t k = 0; k < NMSG; k++) {
    size_t n = rp_size(k);
    unsigned char *m = malloc(n ? n : 1);
    if (!m) return 100;
    for (size_t i = 0; i < n; i++) m[i] = rp_byte(i, k);
    int rc = kiln_channel_send(ch, m, n, -1);
    free(m);
    if (rc) return 101;
  }
  return 0;
}

static void expect_sizes(kiln_channel *a) {
  for (uint32_t k = 0; k < NMSG; k++) {
    void *buf = NULL;
    size_t n = 0;
    KT_CODE(kiln_channel_recv(a, &buf, &n, 20), 0);
    KT_EQ(n, rp_size(k));
    size_t bad = n;
    for (size_t i = 0; i < n && bad == n; i++)
      if (((unsigned char *)buf)[i] != rp_byte(i, k)) bad = i;
    KT_EQ(bad, n);
    free(buf);
  }
}

/* Odd sizes and a 16 MiB message from a child, byte-exact, then end of stream; with the ring, and
 * with a socket-stream pair (the fallback) handed over the same way. */
static void check_stream(kiln_start_method m, bool ring) {
  kiln_channel *a, *b;
  KT_CODE(ring ? kiln_channel_pair(false, &a, &b) : kiln__channel_pair_socket(false, &a, &b), 0);
  KT_EQ(kiln__channel_has_ring(a), ring);
  kiln_process *p = rp_start(m, send_sizes, &b, 1);
  kiln_channel_destroy(b);
  expect_sizes(a);
  void *buf = NULL;
  size_t n = 0;
  KT_CODE(kiln_channel_recv(a, &buf, &n, 20), KILN_EEOF);
  KT_EQ(rp_exitcode(p), 0);
  kiln_process_destroy(p);
  kiln_channel_destroy(a);
}

TEST(RING_odd_sizes_and_16_mib_from_a_child_fork) { check_stream(KILN_START_FORK, true); }
TEST(RING_odd_sizes_and_16_mib_from_a_child_forkserver) {
  check_stream(KILN_START_FORKSERVER, true);
}
TEST(RING_socket_fallback_across_processes_fork) { check_stream(KILN_START_FORK, false); }
TEST(RING_socket_fallback_across_processes_forkserver) {
  check_stream(KILN_START_FORKSERVER, false);
}

/* The parent keeps its copy of the writer while the child writes and exits: the reader gets
 * every message, no end of stream while the parent's copy is open, and the end once it closes. */
static void check_last_writer(kiln_start_method m) {
  kiln_channel *a, *b;
  KT_CODE(kiln_channel_pair(false, &a, &b), 0);
  kiln_process *p = rp_start(m, send_sizes, &b, 1);
  expect_sizes(a);
  KT_EQ(rp_exitcode(p), 0);
  KT_EQ(kiln_channel_poll(a, 0.05), 0); /* our copy of b still open */
  kiln_channel_destroy(b);
  KT_EQ(kiln_channel_poll(a, 5), 1);
  void *buf = NULL;
  size_t n = 0;
  KT_CODE(kiln_channel_recv(a, &buf, &n, 5), KILN_EEOF);
  kiln_process_destroy(p);
  kiln_channel_destroy(a);
}

TEST(RING_eof_after_the_last_writer_copy_fork) { check_last_writer(KILN_START_FORK); }
TEST(RING_eof_after_the_last_writer_copy_forkserver) { check_last_writer(KILN_START_FORKSERVER); }

/* Says it is ready on channel 1, then sends 16 MiB on channel 0, which nobody reads: it blocks
 * in the middle of the message with the ring full. */
static int ready_then_big(const void *arg, size_t len) {
  (void)arg, (void)len;
  unsigned char *m = calloc(BIG, 1);
  if (!m || kiln_channel_send(kiln_process_channel(1), "r", 1, -1) != 0) return 100;
  return kiln_channel_send(kiln_process_channel(0), m, BIG, -1) ? 101 : 0;
}

/* A writer killed in the middle of a message: the reader gets KILN_EIO (a torn message), or end
 * of stream if it died before the first byte; never garbage, never a hang. */
static void check_writer_killed(kiln_start_method m) {
  kiln_channel *a, *b, *c, *d;
  KT_CODE(kiln_channel_pair(false, &a, &b), 0);
  KT_CODE(kiln_channel_pair(false, &c, &d), 0);
  kiln_channel *give[2] = {b, d};
  kiln_process *p = rp_start(m, ready_then_big, give, 2);
  kiln_channel_destroy(b);
  kiln_channel_destroy(d);
  void *buf = NULL;
  size_t n = 0;
  KT_CODE(kiln_channel_recv(c, &buf, &n, 20), 0);
  free(buf);
  KT_CODE(kiln_process_kill(p), 0);
  KT_EQ(rp_exitcode(p), -SIGKILL);
  buf = NULL;
  int rc = kiln_channel_recv(a, &buf, &n, 20);
  KT_TRUE(rc == KILN_EIO || rc == KILN_EEOF);
  KT_TRUE(buf == NULL);
  kiln_process_destroy(p);
  kiln_channel_destroy(a);
  kiln_channel_destroy(c);
}

TEST(RING_writer_killed_mid_message_fork) { check_writer_killed(KILN_START_FORK); }
TEST(RING_writer_killed_mid_message_forkserver) { check_writer_killed(KILN_START_FORKSERVER); }

/* Says it is ready on channel 1 and waits there; reads nothing from channel 0. */
static int hold_reader(const void *arg, size_t len) {
  (void)arg, (void)len;
  void *buf = NULL;
  size_t n;
  if (kiln_channel_send(kiln_process_channel(1), "r", 1, -1) != 0) return 100;
  kiln_channel_recv(kiln_process_channel(1), &buf, &n, -1);
  free(buf);
  return 0;
}

typedef struct {
  kiln_channel *ch;
  int rc;
} big_send;

static void *send_big(void *p) {
  big_send *s = p;
  unsigned char *m = calloc(BIG, 1);
  s->rc = m ? kiln_channel_send(s->ch, m, BIG, -1) : -1;
  free(m);
  return NULL;
}

/* The only reader dies while the writer waits for room in the full ring: the writer gets
 * KILN_EEOF instead of waiting forever. */
static void check_reader_dies(kiln_start_method m) {
  kiln_channel *a, *b, *c, *d;
  KT_CODE(kiln_channel_pair(false, &a, &b), 0);
  KT_CODE(kiln_channel_pair(true, &c, &d), 0);
  kiln_channel *give[2] = {a, d};
  kiln_process *p = rp_start(m, hold_reader, give, 2);
  kiln_channel_destroy(a);
  kiln_channel_destroy(d);
  void *buf = NULL;
  size_t n = 0;
  KT_CODE(kiln_channel_recv(c, &buf, &n, 20), 0);
  free(buf);
  big_send s = {b, 1};
  pthread_t t;
  KT_EQ(pthread_create(&t, NULL, send_big, &s), 0);
  KT_CODE(kiln_process_kill(p), 0); /* most often while the send waits for room */
  KT_EQ(pthread_join(t, NULL), 0);
  KT_CODE(s.rc, KILN_EEOF);
  KT_CODE(kiln_channel_send(b, "x", 1, 1), KILN_EEOF);
  KT_EQ(rp_exitcode(p), -SIGKILL);
  kiln_process_destroy(p);
  kiln_channel_destroy(b);
  kiln_channel_destroy(c);
}

TEST(RING_reader_dies_while_the_writer_waits_fork) { check_reader_dies(KILN_START_FORK); }
TEST(RING_reader_dies_while_the_writer_waits_forkserver) {
  check_reader_dies(KILN_START_FORKSERVER);
}

/* ---- several writer processes on copies of one end ---------------------------------------- */

enum { WRITERS = 4, PER_WRITER = 600 };

static size_t mw_size(uint32_t k) {
  static const size_t sizes[] = {8, 3000, 70000, 8, 513};
  return k % 150 == 149 ? RING + 100 : sizes[k % (sizeof sizes / sizeof sizes[0])];
}

/* Message k of writer w: w and k in its first 8 bytes, then a pattern of both. */
static void mw_fill(unsigned char *m, size_t n, uint32_t w, uint32_t k) {
  memcpy(m, &w, 4);
  memcpy(m + 4, &k, 4);
  for (size_t i = 8; i < n; i++) m[i] = rp_byte(i, w * 100000 + k);
}

static int mw_send(const void *arg, size_t len) {
  uint32_t w;
  if (len != sizeof w) return 100;
  memcpy(&w, arg, sizeof w);
  kiln_channel *ch = kiln_process_channel(0);
  unsigned char *m = malloc(RING + 100);
  if (!m) return 101;
  for (uint32_t k = 0; k < PER_WRITER; k++) {
    size_t n = mw_size(k);
    mw_fill(m, n, w, k);
    if (kiln_channel_send(ch, m, n, -1)) return 102;
  }
  free(m);
  return 0;
}

/* Children of both start methods send at once on copies of one end: every message arrives whole
 * (a ring has one writer at a time, as a socket takes each message whole), each writer's in its
 * order, then the end of the stream once the last copy is gone. */
TEST(RING_several_writer_processes_on_one_end) {
  KT_CODE(kiln_forkserver_start(), 0);
  kiln_channel *a, *b;
  KT_CODE(kiln_channel_pair(false, &a, &b), 0);
  KT_TRUE(kiln__channel_has_ring(a));
  kiln_process *p[WRITERS];
  for (uint32_t w = 0; w < WRITERS; w++) {
    kiln_process_config cfg;
    kiln_process_config_default(&cfg);
    cfg.start = w % 2 ? KILN_START_FORK : KILN_START_FORKSERVER;
    cfg.channels = &b;
    cfg.nchannels = 1;
    KT_CODE(kiln_process_start(&cfg, mw_send, &w, sizeof w, &p[w]), 0);
  }
  kiln_channel_destroy(b);
  uint32_t next[WRITERS] = {0};
  unsigned char *want = malloc(RING + 100);
  KT_TRUE(want != NULL);
  for (int got = 0; got < WRITERS * PER_WRITER; got++) {
    const void *v = NULL;
    size_t n = 0;
    KT_CODE(kiln_channel_recv_view(a, &v, &n, 20), 0);
    KT_TRUE(n >= 8);
    uint32_t w, k;
    memcpy(&w, v, 4);
    memcpy(&k, (const unsigned char *)v + 4, 4);
    KT_TRUE(w < WRITERS);
    KT_EQ(k, next[w]);
    KT_EQ(n, mw_size(k));
    mw_fill(want, n, w, k);
    KT_TRUE(memcmp(v, want, n) == 0);
    next[w]++;
    kiln_channel_release(a);
  }
  free(want);
  void *buf = NULL;
  size_t n = 0;
  KT_CODE(kiln_channel_recv(a, &buf, &n, 20), KILN_EEOF);
  for (int w = 0; w < WRITERS; w++) {
    KT_EQ(rp_exitcode(p[w]), 0);
    kiln_process_destroy(p[w]);
  }
  kiln_channel_destroy(a);
}
