/* test_ring.c: the shared-memory ring under a kiln_channel pair, within one process: byte-exact
 * wrap-around, empty and large messages mixed, no readiness from a stale wake-up token, a
 * corrupted ring header, the socket stream fallback, and many threads on one pair (run under
 * TSan too). The same pair across processes: tests/proc/test_ring_proc.c. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdint.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kiln/sync.h"
#include "kt.h"
#include "sync_internal.h"

// kt: timeout 60

enum { RING = 1 << 20 }; /* one direction's capacity (channel_ring.c) */

/* The bytes of message k: a pattern that differs per message, so a shifted or torn stream shows. */
static unsigned char rb_byte(size_t i, uint32_t k) {
  uint32_t x = (uint32_t)i * 2654435761u ^ (k + 1) * 40503u;
  x ^= x >> 13;
  return (unsigned char)(x * 2246822519u >> 24);
}

static unsigned char *rb_make(size_t n, uint32_t k) {
  unsigned char *p = malloc(n ? n : 1);
  KT_TRUE(p != NULL);
  for (size_t i = 0; i < n; i++) p[i] = rb_byte(i, k);
  return p;
}

static bool rb_ok(const unsigned char *p, size_t n, uint32_t k) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != rb_byte(i, k)) return false;
  return true;
}

/* Odd sizes whose sum wraps the ring several times; sizes around and above the ring included. */
static size_t rb_size(uint32_t k) {
  static const size_t sizes[] = {0,        1,        7, 4093,   65537, 333331,        RING - 4,
                                 RING - 3, RING + 5, 3, 999983, 0,     2 * RING + 17, 4095,
                                 12345};
  return sizes[k % (sizeof sizes / sizeof sizes[0])];
}

typedef struct {
  kiln_channel *ch;
  uint32_t count;
  int rc;
} rb_job;

static void *rb_send_all(void *p) {
  rb_job *j = p;
  j->rc = 0;
  for (uint32_t k = 0; k < j->count && j->rc == 0; k++) {
    size_t n = rb_size(k);
    unsigned char *m = rb_make(n, k);
    j->rc = kiln_channel_send(j->ch, m, n, -1);
    free(m);
  }
  return NULL;
}

/* Receives count messages of rb_size and checks every byte, with recv, recv_into and recv_view
 * in turn (a view in place in the ring, or copied where the message wraps or is larger). */
static void rb_recv_all(kiln_channel *ch, uint32_t count) {
  size_t cap = 2 * RING + 64;
  unsigned char *into = malloc(cap);
  KT_TRUE(into != NULL);
  for (uint32_t k = 0; k < count; k++) {
    size_t n = 0;
    if (k % 3 == 2) {
      const void *v = NULL;
      KT_CODE(kiln_channel_recv_view(ch, &v, &n, 20), KILN_OK);
      KT_EQ(n, rb_size(k));
      KT_TRUE(rb_ok(v, n, k));
      kiln_channel_release(ch);
    } else if (k % 3 == 1) {
      KT_CODE(kiln_channel_recv_into(ch, into, cap, &n, 20), KILN_OK);
      KT_EQ(n, rb_size(k));
      KT_TRUE(rb_ok(into, n, k));
    } else {
      void *buf = NULL;
      KT_CODE(kiln_channel_recv(ch, &buf, &n, 20), KILN_OK);
      KT_EQ(n, rb_size(k));
      KT_TRUE(rb_ok(buf, n, k));
      free(buf);
    }
  }
  free(into);
}

static void rb_stream(bool ring) {
  kiln_channel *a, *b;
  KT_CODE(ring ? kiln_channel_pair(false, &a, &b) : kiln__channel_pair_socket(false, &a, &b), 0);
  KT_EQ(kiln__channel_has_ring(a), ring);
  rb_job j = {.ch = b, .count = 45};
  pthread_t t;
  KT_EQ(pthread_create(&t, NULL, rb_send_all, &j), 0);
  rb_recv_all(a, j.count);
  KT_EQ(pthread_join(t, NULL), 0);
  KT_CODE(j.rc, KILN_OK);
  KT_EQ(kiln_channel_poll(a, 0), 0);
  kiln_channel_destroy(b);
  void *buf = NULL;
  size_t n = 0;
  KT_CODE(kiln_channel_recv(a, &buf, &n, 20), KILN_EEOF);
  kiln_channel_destroy(a);
}

/* Messages of odd sizes, some larger than the ring, empty ones in between, wrap around the ring
 * many times and come out byte-exact, then the end of the stream. */
TEST(RING_wrap_around_odd_sizes_byte_exact) { rb_stream(true); }

/* The socket stream (the fallback where memfd or mmap is missing) keeps the same rules. */
TEST(RING_socket_fallback_same_stream) { rb_stream(false); }

/* A view reads the message where it lies in the ring: its room goes back to the sender only at
 * release, not before. Four quarter-ring messages fill the ring exactly. */
TEST(RING_view_in_place_until_release) {
  kiln_channel *a, *b;
  KT_CODE(kiln_channel_pair(false, &a, &b), 0);
  KT_TRUE(kiln__channel_has_ring(a));
  size_t n = RING / 4 - 4; /* + its 4-byte length: a quarter of the ring */
  for (uint32_t k = 0; k < 4; k++) {
    unsigned char *m = rb_make(n, k);
    KT_CODE(kiln_channel_send(b, m, n, 0), 0);
    free(m);
  }
  unsigned char *m4 = rb_make(n, 4);
  KT_CODE(kiln_channel_send(b, m4, n, 0), KILN_ETIMEDOUT);
  const void *v = NULL;
  size_t got = 0;
  KT_CODE(kiln_channel_recv_view(a, &v, &got, 0), 0);
  KT_EQ(got, n);
  KT_TRUE(rb_ok(v, got, 0));
  KT_CODE(kiln_channel_send(b, m4, n, 0), KILN_ETIMEDOUT); /* still held by the view */
  kiln_channel_release(a);
  KT_CODE(kiln_channel_send(b, m4, n, 0), 0);
  free(m4);
  for (uint32_t k = 1; k < 5; k++) {
    KT_CODE(kiln_channel_recv_view(a, &v, &got, 5), 0);
    KT_EQ(got, n);
    KT_TRUE(rb_ok(v, got, k));
    kiln_channel_release(a);
  }
  KT_CODE(kiln_channel_recv_view(a, &v, &got, 0.01), KILN_ETIMEDOUT);
  KT_TRUE(v == NULL);
  kiln_channel_destroy(b);
  KT_CODE(kiln_channel_recv_view(a, &v, &got, 5), KILN_EEOF);
  kiln_channel_destroy(a);
}

/* A socket-stream pair: duplex both ways, timeouts, closed peer. */
TEST(RING_socket_fallback_basics) {
  kiln_channel *a, *b;
  KT_CODE(kiln__channel_pair_socket(true, &a, &b), 0);
  KT_FALSE(kiln__channel_has_ring(a));
  void *buf = NULL;
  size_t n = 0;
  KT_CODE(kiln_channel_recv(a, &buf, &n, 0.01), KILN_ETIMEDOUT);
  KT_CODE(kiln_channel_send(a, "ping", 4, -1), 0);
  KT_EQ(kiln_channel_poll(b, 5), 1);
  KT_CODE(kiln_channel_recv(b, &buf, &n, -1), 0);
  KT_EQ(n, 4);
  free(buf);
  KT_CODE(kiln_channel_send(b, "", 0, -1), 0);
  KT_CODE(kiln_channel_recv(a, &buf, &n, -1), 0);
  KT_EQ(n, 0);
  kiln_channel_destroy(b);
  KT_CODE(kiln_channel_send(a, "x", 1, -1), KILN_EEOF);
  KT_CODE(kiln_channel_recv(a, &buf, &n, -1), KILN_EEOF);
  kiln_channel_destroy(a);
}

/* A wake-up token with nothing in the ring (as a writer leaves when its reader stopped waiting
 * just before) makes neither poll nor wait report the end ready. */
TEST(RING_stale_token_is_not_readiness) {
  kiln_channel *a, *b;
  KT_CODE(kiln_channel_pair(true, &a, &b), 0);
  KT_TRUE(kiln__channel_has_ring(a));
  kiln__channel_fds f;
  KT_CODE(kiln__channel_dup(b, &f), 0); /* b's socket: what its writer sends tokens on */
  KT_EQ(send(f.sock, "t", 1, MSG_DONTWAIT), 1);
  KT_EQ(kiln_channel_poll(a, 0.05), 0);
  KT_EQ(send(f.sock, "t", 1, MSG_DONTWAIT), 1);
  kiln_channel *set[2] = {b, a};
  size_t nready = 9;
  KT_CODE(kiln_channel_wait(set, 2, 0.05, &nready), 0);
  KT_EQ(nready, 0);
  /* and a real message still wakes it */
  KT_CODE(kiln_channel_send(b, "m", 1, -1), 0);
  KT_EQ(kiln_channel_poll(a, 5), 1);
  KT_CODE(kiln_channel_wait(set, 2, 5, &nready), 0);
  KT_EQ(nready, 1);
  KT_TRUE(set[0] == a);
  close(f.sock);
  close(f.mem);
  kiln_channel_destroy(a);
  kiln_channel_destroy(b);
}

/* Positions scribbled over in the shared header (as by a broken or hostile process) are
 * KILN_EIO for the receive, never a copy outside the mapping (ASan watches). */
TEST(RING_corrupt_header_is_eio) {
  static const uint32_t deltas[] = {RING + 1, 0x80000000u, 0xFFFFF000u, 3 * RING};
  for (size_t i = 0; i < sizeof deltas / sizeof deltas[0]; i++) {
    kiln_channel *a, *b;
    KT_CODE(kiln_channel_pair(true, &a, &b), 0);
    KT_CODE(kiln_channel_send(b, "hello", 5, -1), 0);
    KT_CODE(kiln__channel_scribble(a, deltas[i]), 0);
    void *buf = NULL;
    size_t n = 0;
    unsigned char small[16];
    KT_CODE(i % 2 ? kiln_channel_recv(a, &buf, &n, 1) : kiln_channel_recv_into(a, small, 16, &n, 1),
            KILN_EIO);
    KT_TRUE(buf == NULL);
    kiln_channel_destroy(a);
    kiln_channel_destroy(b);
  }
}

/* A memfd that is not a pair's rings (wrong size, or one its sender could still shrink under our
 * mapping) is refused when an end is adopted. */
TEST(RING_adopt_checks_the_memfd) {
  static const off_t sizes[] = {4096 + RING, 4096 + RING, 12345};
  for (int i = 0; i < 3; i++) {
    int sv[2];
    KT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    int mem = memfd_create("t", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    KT_TRUE(mem >= 0);
    KT_EQ(ftruncate(mem, sizes[i]), 0);
    if (i == 0) KT_EQ(fcntl(mem, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
    kiln__channel_fds f = {.sock = sv[0], .mem = mem, .flags = KILN__CH_RECV | KILN__CH_SEND};
    kiln_channel *ch = NULL;
    /* the size of a one-way pair's memfd lacks ring 1, which side a sends on */
    KT_CODE(kiln__channel_adopt(&f, &ch), KILN_EIO); /* took (closed) both descriptors */
    KT_TRUE(ch == NULL);
    close(sv[1]);
  }
}

/* A writer of a ring made corrupt on its side gets KILN_EIO too. */
TEST(RING_corrupt_header_fails_the_writer) {
  kiln_channel *a, *b;
  KT_CODE(kiln_channel_pair(false, &a, &b), 0);
  KT_CODE(kiln__channel_scribble(a, RING + 100), 0);
  KT_CODE(kiln_channel_send(b, "x", 1, 1), KILN_EIO);
  kiln_channel_destroy(a);
  kiln_channel_destroy(b);
}

/* ---- many threads on one pair -------------------------------------------------------------- */

enum { ST_SENDERS = 3, ST_RECEIVERS = 3, ST_PER = 40 };

/* A message: sender id, sequence number, length of the rest; the rest is rb_byte(i, tag). */
typedef struct {
  uint32_t sender, seq, tag;
} st_head;

static size_t st_size(uint32_t seq) { return seq % 10 == 9 ? RING - 8 + seq : seq * 37 % 300; }

typedef struct {
  kiln_channel *ch;
  uint32_t id;
  int rc;
  uint32_t got[ST_SENDERS]; /* receivers: messages seen per sender */
  bool bad;
} st_arg;

static void *st_send(void *p) {
  st_arg *s = p;
  for (uint32_t q = 0; q < ST_PER && s->rc == 0; q++) {
    size_t n = sizeof(st_head) + st_size(q);
    unsigned char *m = malloc(n);
    st_head h = {s->id, q, s->id * 1000 + q};
    memcpy(m, &h, sizeof h);
    for (size_t i = sizeof h; i < n; i++) m[i] = rb_byte(i, h.tag);
    s->rc = kiln_channel_send(s->ch, m, n, -1);
    free(m);
  }
  return NULL;
}

static void *st_recv(void *p) {
  st_arg *s = p;
  for (;;) {
    void *buf = NULL;
    size_t n = 0;
    int rc = kiln_channel_recv(s->ch, &buf, &n, 30);
    if (rc == KILN_EEOF) break;
    if (rc != 0 || n < sizeof(st_head)) {
      s->rc = rc ? rc : -1;
      free(buf);
      break;
    }
    st_head h;
    memcpy(&h, buf, sizeof h);
    if (h.sender >= ST_SENDERS || n != sizeof h + st_size(h.seq) ||
        h.tag != h.sender * 1000 + h.seq)
      s->bad = true;
    for (size_t i = sizeof h; i < n && !s->bad; i++)
      if (((unsigned char *)buf)[i] != rb_byte(i, h.tag)) s->bad = true;
    if (h.sender < ST_SENDERS) s->got[h.sender]++;
    free(buf);
  }
  return NULL;
}

/* Several threads send small and ring-sized messages on one end while several receive on the
 * other: every message arrives once, whole, and the receivers all see the end of the stream. */
TEST(RING_threads_share_both_ends) {
  kiln_channel *a, *b;
  KT_CODE(kiln_channel_pair(true, &a, &b), 0);
  st_arg snd[ST_SENDERS] = {0}, rcv[ST_RECEIVERS] = {0};
  pthread_t ts[ST_SENDERS], tr[ST_RECEIVERS];
  for (uint32_t i = 0; i < ST_RECEIVERS; i++) {
    rcv[i].ch = a;
    KT_EQ(pthread_create(&tr[i], NULL, st_recv, &rcv[i]), 0);
  }
  for (uint32_t i = 0; i < ST_SENDERS; i++) {
    snd[i].ch = b, snd[i].id = i;
    KT_EQ(pthread_create(&ts[i], NULL, st_send, &snd[i]), 0);
  }
  for (int i = 0; i < ST_SENDERS; i++) {
    KT_EQ(pthread_join(ts[i], NULL), 0);
    KT_CODE(snd[i].rc, 0);
  }
  kiln_channel_close(b); /* end of stream for every receiver, after the messages */
  uint32_t total[ST_SENDERS] = {0};
  for (int i = 0; i < ST_RECEIVERS; i++) {
    KT_EQ(pthread_join(tr[i], NULL), 0);
    KT_CODE(rcv[i].rc, 0);
    KT_FALSE(rcv[i].bad);
    for (int s = 0; s < ST_SENDERS; s++) total[s] += rcv[i].got[s];
  }
  for (int s = 0; s < ST_SENDERS; s++) KT_EQ(total[s], ST_PER);
  kiln_channel_destroy(a);
  kiln_channel_destroy(b);
}

typedef struct {
  kiln_channel *ch;
  uint32_t count;
} rb_recv_arg;

static void *rb_recv_thread(void *p) {
  rb_recv_arg *r = p;
  rb_recv_all(r->ch, r->count);
  return NULL;
}

/* A duplex end used by one sending and one receiving thread at once, both directions filling
 * their rings: a wake-up meant for an end's receiver is never taken by its sender, and nothing
 * hangs. */
TEST(RING_duplex_end_sends_and_receives_at_once) {
  kiln_channel *a, *b;
  KT_CODE(kiln_channel_pair(true, &a, &b), 0);
  rb_job ja = {.ch = a, .count = 30}, jb = {.ch = b, .count = 30};
  rb_recv_arg ra = {a, 30};
  pthread_t ta, tb, tra;
  KT_EQ(pthread_create(&tra, NULL, rb_recv_thread, &ra), 0);
  KT_EQ(pthread_create(&ta, NULL, rb_send_all, &ja), 0);
  KT_EQ(pthread_create(&tb, NULL, rb_send_all, &jb), 0);
  rb_recv_all(b, ja.count);
  KT_EQ(pthread_join(ta, NULL), 0);
  KT_EQ(pthread_join(tb, NULL), 0);
  KT_EQ(pthread_join(tra, NULL), 0);
  KT_CODE(ja.rc, 0);
  KT_CODE(jb.rc, 0);
  kiln_channel_destroy(a);
  kiln_channel_destroy(b);
}
