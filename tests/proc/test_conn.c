/* test_conn.c: channels between processes (PIPE-01, 02, 05, 10, 11 of docs/CONFORMANCE.md across
 * a process boundary; the same rules within one process are tests/channel's) and
 * kiln_process_wait over channels and process sentinels.
 *
 * Each rule runs with both start methods where the method matters. */
// kt: timeout 60
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#include "kiln/proc.h"
#include "kiln/sync.h"
#include "kt.h"

static kiln_process *start_with(kiln_start_method m, kiln_process_fn fn, const void *arg,
                                size_t len, kiln_channel *const *chs, size_t n) {
  if (m == KILN_START_FORKSERVER) KT_CODE(kiln_forkserver_start(), 0);
  kiln_process_config cfg;
  kiln_process_config_default(&cfg);
  cfg.start = m;
  cfg.channels = chs;
  cfg.nchannels = n;
  kiln_process *p = NULL;
  KT_CODE(kiln_process_start(&cfg, fn, arg, len, &p), 0);
  return p;
}

/* Starts fn with the far end of a new pair (duplex or one-way: the child gets the sending end)
 * and returns the near end; the parent's copy of the far end is closed at once, so end of stream
 * comes when the child dies. */
static kiln_process *start_paired(kiln_start_method m, kiln_process_fn fn, bool duplex,
                                  kiln_channel **mine) {
  kiln_channel *a, *b;
  KT_CODE(kiln_channel_pair(duplex, &a, &b), 0);
  kiln_process *p = start_with(m, fn, NULL, 0, &b, 1);
  kiln_channel_destroy(b);
  *mine = a;
  return p;
}

static int exitcode_of(kiln_process *p) {
  KT_CODE(kiln_process_join(p, -1), 0);
  int code = 12345;
  KT_CODE(kiln_process_exitcode(p, &code), 0);
  return code;
}

static void recv_expect(kiln_channel *ch, const void *want, size_t len) {
  void *buf = NULL;
  size_t n = 99;
  KT_CODE(kiln_channel_recv(ch, &buf, &n, 20), 0);
  KT_EQ(n, len);
  if (len) KT_TRUE(memcmp(buf, want, len) == 0);
  free(buf);
}

static const size_t g_sizes[] = {0, 1, 5, 0, 70000, 3};

static unsigned char *pattern(size_t n, unsigned seed) {
  unsigned char *p = malloc(n ? n : 1);
  KT_TRUE(p != NULL);
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 31 + seed);
  return p;
}

/* ---- PIPE-01, 02: messages keep their boundaries across processes -------------------------- */

/* Echoes every message back until end of stream; returns how many. */
static int echo_all(const void *arg, size_t len) {
  (void)arg, (void)len;
  kiln_channel *ch = kiln_process_channel(0);
  int count = 0;
  void *buf;
  size_t n;
  int rc;
  while ((rc = kiln_channel_recv(ch, &buf, &n, -1)) == 0) {
    if (kiln_channel_send(ch, buf, n, -1) != 0) return 200;
    free(buf);
    count++;
  }
  return rc == KILN_EEOF ? count : 201;
}

static void check_duplex(kiln_start_method m) {
  kiln_channel *a;
  kiln_process *p = start_paired(m, echo_all, true, &a);
  size_t k = sizeof g_sizes / sizeof *g_sizes;
  for (size_t i = 0; i < k; i++) { /* all sent before any is read back: boundaries must hold */
    unsigned char *msg = pattern(g_sizes[i], (unsigned)i);
    KT_CODE(kiln_channel_send(a, msg, g_sizes[i], -1), 0);
    free(msg);
  }
  for (size_t i = 0; i < k; i++) {
    unsigned char *msg = pattern(g_sizes[i], (unsigned)i);
    recv_expect(a, msg, g_sizes[i]);
    free(msg);
  }
  kiln_channel_close(a); /* the child sees end of stream and returns its count */
  KT_EQ(exitcode_of(p), k);
  kiln_process_destroy(p);
  kiln_channel_destroy(a);
}

TEST(PIPE_01_duplex_across_processes_fork) { check_duplex(KILN_START_FORK); }
TEST(PIPE_01_duplex_across_processes_forkserver) { check_duplex(KILN_START_FORKSERVER); }

/* The child has the sending end of a one-way pair: it cannot receive on it, sends the messages
 * and ends; the parent reads them, then end of stream. */
static int one_way_sender(const void *arg, size_t len) {
  (void)arg, (void)len;
  kiln_channel *w = kiln_process_channel(0);
  void *buf;
  size_t n;
  if (kiln_channel_recv(w, &buf, &n, 0) != KILN_ESTATE) return 100;
  if (kiln_channel_poll(w, 0) != KILN_ESTATE) return 101;
  if (kiln_process_channel(1) != NULL) return 102;
  for (size_t i = 0; i < sizeof g_sizes / sizeof *g_sizes; i++) {
    unsigned char *msg = malloc(g_sizes[i] ? g_sizes[i] : 1);
    for (size_t j = 0; j < g_sizes[i]; j++) msg[j] = (unsigned char)(j * 31 + i);
    if (kiln_channel_send(w, msg, g_sizes[i], -1) != 0) return 103;
    free(msg);
  }
  return 0;
}

static void check_one_way(kiln_start_method m) {
  kiln_channel *r;
  kiln_process *p = start_paired(m, one_way_sender, false, &r);
  KT_CODE(kiln_channel_send(r, "x", 1, 0), KILN_ESTATE);
  for (size_t i = 0; i < sizeof g_sizes / sizeof *g_sizes; i++) {
    unsigned char *msg = pattern(g_sizes[i], (unsigned)i);
    recv_expect(r, msg, g_sizes[i]);
    free(msg);
  }
  KT_EQ(exitcode_of(p), 0);
  void *buf = NULL;
  size_t n = 0;
  KT_CODE(kiln_channel_recv(r, &buf, &n, 20), KILN_EEOF);
  kiln_process_destroy(p);
  kiln_channel_destroy(r);
}

TEST(PIPE_02_one_way_across_processes_fork) { check_one_way(KILN_START_FORK); }
TEST(PIPE_02_one_way_across_processes_forkserver) { check_one_way(KILN_START_FORKSERVER); }

/* ---- PIPE-05, 11: 16 MiB both ways; a large send blocks until the reader drains it ---------- */

enum { BIG = 16 << 20 };

/* Receives one big message, checks it, sends it back. */
static int big_echo(const void *arg, size_t len) {
  (void)arg, (void)len;
  kiln_channel *ch = kiln_process_channel(0);
  void *buf;
  size_t n;
  if (kiln_channel_recv(ch, &buf, &n, -1) != 0 || n != BIG) return 100;
  for (size_t i = 0; i < n; i++)
    if (((unsigned char *)buf)[i] != (unsigned char)(i * 31 + 7)) return 101;
  int rc = kiln_channel_send(ch, buf, n, -1);
  free(buf);
  return rc == 0 ? 0 : 102;
}

static void check_big(kiln_start_method m) {
  kiln_channel *a;
  kiln_process *p = start_paired(m, big_echo, true, &a);
  unsigned char *msg = pattern(BIG, 7);
  /* far more than a socket buffer: returns only once the child has read most of it */
  KT_CODE(kiln_channel_send(a, msg, BIG, -1), 0);
  recv_expect(a, msg, BIG);
  free(msg);
  KT_EQ(exitcode_of(p), 0);
  kiln_process_destroy(p);
  kiln_channel_destroy(a);
}

TEST(PIPE_05_sixteen_mib_across_processes_fork) { check_big(KILN_START_FORK); }
TEST(PIPE_05_sixteen_mib_across_processes_forkserver) { check_big(KILN_START_FORKSERVER); }

/* ---- end of stream when the last holder of the far end dies --------------------------------- */

/* Holds its end open and waits on a second channel until told to die. */
static int hold_until_told(const void *arg, size_t len) {
  (void)arg, (void)len;
  void *buf;
  size_t n;
  kiln_channel *ctl = kiln_process_channel(1);
  if (kiln_channel_send(ctl, "up", 2, -1) != 0) return 100;
  if (kiln_channel_recv(ctl, &buf, &n, -1) == 0) free(buf);
  return 5;
}

static void check_eof_on_death(kiln_start_method m, bool kill_it) {
  kiln_channel *a, *b, *c, *d;
  KT_CODE(kiln_channel_pair(false, &a, &b), 0);
  KT_CODE(kiln_channel_pair(true, &c, &d), 0);
  kiln_channel *give[2] = {b, d};
  kiln_process *p = start_with(m, hold_until_told, NULL, 0, give, 2);
  kiln_channel_destroy(b); /* the child now holds the only writer */
  kiln_channel_destroy(d);
  recv_expect(c, "up", 2);
  KT_EQ(kiln_channel_poll(a, 0), 0); /* no end of stream while the child lives */
  if (kill_it) KT_CODE(kiln_process_kill(p), 0);
  else KT_CODE(kiln_channel_send(c, "die", 3, -1), 0);
  void *buf = NULL;
  size_t n = 0;
  KT_CODE(kiln_channel_recv(a, &buf, &n, 20), KILN_EEOF);
  KT_EQ(exitcode_of(p), kill_it ? -SIGKILL : 5);
  kiln_process_destroy(p);
  kiln_channel_destroy(a);
  kiln_channel_destroy(c);
}

TEST(PIPE_eof_when_the_child_holding_the_writer_ends_fork) {
  check_eof_on_death(KILN_START_FORK, false);
  check_eof_on_death(KILN_START_FORK, true);
}

TEST(PIPE_eof_when_the_child_holding_the_writer_ends_forkserver) {
  check_eof_on_death(KILN_START_FORKSERVER, false);
  check_eof_on_death(KILN_START_FORKSERVER, true);
}

/* A closed channel cannot be handed to a child. */
TEST(PIPE_09_closed_channel_is_not_handed_over) {
  kiln_channel *a, *b;
  KT_CODE(kiln_channel_pair(true, &a, &b), 0);
  kiln_channel_close(b);
  kiln_process_config cfg;
  kiln_process_config_default(&cfg);
  cfg.start = KILN_START_FORK;
  cfg.channels = &b;
  cfg.nchannels = 1;
  kiln_process *p = NULL;
  KT_CODE(kiln_process_start(&cfg, echo_all, NULL, 0, &p), KILN_EINVAL);
  KT_CODE(kiln_forkserver_start(), 0);
  cfg.start = KILN_START_FORKSERVER;
  KT_CODE(kiln_process_start(&cfg, echo_all, NULL, 0, &p), KILN_EINVAL);
  KT_TRUE(p == NULL);
  kiln_channel_destroy(a);
  kiln_channel_destroy(b);
}

/* ---- PIPE-10: wait over channels and process sentinels -------------------------------------- */

/* Sends "up" on channel 0, then one message per message received, until end of stream. */
static int speak_when_asked(const void *arg, size_t len) {
  (void)arg, (void)len;
  kiln_channel *ch = kiln_process_channel(0);
  void *buf;
  size_t n;
  if (kiln_channel_send(ch, "up", 2, -1) != 0) return 100;
  while (kiln_channel_recv(ch, &buf, &n, -1) == 0) {
    free(buf);
    if (kiln_channel_send(ch, "said", 4, -1) != 0) return 101;
  }
  return 0;
}

static void check_wait(kiln_start_method m) {
  kiln_channel *a, *idle_a;
  kiln_process *p = start_paired(m, speak_when_asked, true, &a);
  kiln_process *q = start_paired(m, speak_when_asked, true, &idle_a);
  recv_expect(a, "up", 2);
  recv_expect(idle_a, "up", 2);
  kiln_channel *chs[2] = {idle_a, a};
  kiln_process *procs[2] = {q, p};
  size_t nc = 9, np = 9;
  /* nothing ready: 0 returns at once, a timeout after about that long */
  KT_CODE(kiln_process_wait(chs, 2, procs, 2, 0, &nc, &np), 0);
  KT_EQ(nc, 0);
  KT_EQ(np, 0);
  double t0 = kt_now();
  KT_CODE(kiln_process_wait(chs, 2, procs, 2, 0.1, &nc, &np), 0);
  KT_TIMED(kt_now() - t0, 0.1);
  KT_EQ(nc + np, 0);
  /* a message: that channel first */
  KT_CODE(kiln_channel_send(a, "say", 3, -1), 0);
  KT_CODE(kiln_process_wait(chs, 2, procs, 2, 20, &nc, &np), 0);
  KT_EQ(nc, 1);
  KT_EQ(np, 0);
  KT_PTR_EQ(chs[0], a);
  recv_expect(a, "said", 4);
  /* a process ends: its sentinel (its channel's end of stream may come a little earlier: the
   * kernel closes a dying process's descriptors before it marks the process ended) */
  KT_CODE(kiln_process_kill(p), 0);
  KT_CODE(kiln_process_wait(NULL, 0, procs, 2, -1, &nc, &np), 0);
  KT_EQ(np, 1);
  KT_PTR_EQ(procs[0], p);
  struct pollfd pf = {.fd = kiln_process_sentinel(p), .events = POLLIN};
  KT_EQ(poll(&pf, 1, 0), 1);
  KT_EQ(exitcode_of(p), -SIGKILL);
  KT_CODE(kiln_process_wait(chs, 2, procs, 2, 20, &nc, &np), 0); /* still ready after join */
  KT_EQ(np, 1);
  KT_PTR_EQ(procs[0], p);
  /* wait with no processes, or no channels */
  KT_CODE(kiln_process_wait(NULL, 0, procs, 2, 20, &nc, &np), 0);
  KT_EQ(np, 1);
  KT_CODE(kiln_process_wait(chs, 2, NULL, 0, 20, &nc, &np), 0);
  KT_TRUE(nc >= 1);
  /* a closed channel is KILN_ESTATE, NaN KILN_EINVAL */
  kiln_channel_close(idle_a);
  chs[0] = idle_a;
  KT_CODE(kiln_process_wait(chs, 1, NULL, 0, 0, &nc, &np), KILN_ESTATE);
  KT_CODE(kiln_process_wait(NULL, 0, procs, 1, NAN, &nc, &np), KILN_EINVAL);
  KT_EQ(exitcode_of(q), 0); /* its channel closed: it returned */
  kiln_process_destroy(p);
  kiln_process_destroy(q);
  kiln_channel_destroy(a);
  kiln_channel_destroy(idle_a);
}

TEST(PIPE_10_wait_with_process_sentinels_fork) { check_wait(KILN_START_FORK); }
TEST(PIPE_10_wait_with_process_sentinels_forkserver) { check_wait(KILN_START_FORKSERVER); }

/* ---- PIPE-11: a receiver interrupted by signals gets the child's message whole -------------- */

static atomic_int g_signals;
static atomic_int g_done;
static kiln_channel *g_recv_end;
static int g_recv_rc;
static size_t g_recv_len;
static unsigned char *g_recv_buf;

static void on_usr1(int sig) {
  (void)sig;
  atomic_fetch_add(&g_signals, 1);
}

static void *receiver(void *arg) {
  (void)arg;
  void *buf = NULL;
  g_recv_rc = kiln_channel_recv(g_recv_end, &buf, &g_recv_len, -1);
  g_recv_buf = buf;
  atomic_store(&g_done, 1);
  return NULL;
}

/* Waits for "go", then sends one 4 MiB message. */
static int send_big_on_go(const void *arg, size_t len) {
  (void)arg, (void)len;
  kiln_channel *ch = kiln_process_channel(0);
  void *buf;
  size_t n;
  if (kiln_channel_recv(ch, &buf, &n, -1) != 0) return 100;
  free(buf);
  unsigned char *msg = malloc(4 << 20);
  for (size_t i = 0; i < (size_t)4 << 20; i++) msg[i] = (unsigned char)(i * 31 + 3);
  int rc = kiln_channel_send(ch, msg, (size_t)4 << 20, -1);
  free(msg);
  return rc == 0 ? 0 : 101;
}

static void check_eintr(kiln_start_method m) {
  struct sigaction sa = {.sa_handler = on_usr1};
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; /* no SA_RESTART: the blocked calls see EINTR */
  KT_EQ(sigaction(SIGUSR1, &sa, NULL), 0);
  atomic_store(&g_signals, 0);
  atomic_store(&g_done, 0);
  kiln_process *p = start_paired(m, send_big_on_go, true, &g_recv_end);
  pthread_t t;
  KT_EQ(pthread_create(&t, NULL, receiver, NULL), 0);
  for (int i = 0; i < 20; i++) pthread_kill(t, SIGUSR1); /* while it waits */
  KT_CODE(kiln_channel_send(g_recv_end, "go", 2, -1), 0);
  while (!atomic_load(&g_done)) { /* and while it reads */
    pthread_kill(t, SIGUSR1);
    sched_yield();
  }
  pthread_join(t, NULL);
  KT_TRUE(atomic_load(&g_signals) > 0);
  KT_CODE(g_recv_rc, 0);
  KT_EQ(g_recv_len, (size_t)4 << 20);
  unsigned char *want = pattern((size_t)4 << 20, 3);
  KT_TRUE(memcmp(g_recv_buf, want, g_recv_len) == 0);
  free(want);
  free(g_recv_buf);
  KT_EQ(exitcode_of(p), 0);
  kiln_process_destroy(p);
  kiln_channel_destroy(g_recv_end);
}

TEST(PIPE_11_signals_do_not_break_a_message_fork) { check_eintr(KILN_START_FORK); }
TEST(PIPE_11_signals_do_not_break_a_message_forkserver) { check_eintr(KILN_START_FORKSERVER); }

static int quick(const void *arg, size_t len) { return len == 1 ? *(const unsigned char *)arg : 1; }

/* More processes than the wait keeps on its stack: every one is reported once it has ended. */
TEST(PIPE_10_wait_for_many_processes) {
  enum { N = 40 };
  kiln_process *procs[N], *all[N];
  for (int i = 0; i < N; i++) {
    unsigned char code = (unsigned char)i;
    all[i] = procs[i] =
        start_with(i % 2 ? KILN_START_FORK : KILN_START_FORKSERVER, quick, &code, 1, NULL, 0);
  }
  size_t left = N;
  while (left) { /* take the ended ones out, wait for the rest */
    size_t nc = 9, np = 0;
    KT_CODE(kiln_process_wait(NULL, 0, procs, left, 20, &nc, &np), 0);
    KT_TRUE(np >= 1);
    KT_EQ(nc, 0);
    memmove(procs, procs + np, (left - np) * sizeof *procs);
    left -= np;
  }
  for (int i = 0; i < N; i++) {
    KT_EQ(exitcode_of(all[i]), i);
    kiln_process_destroy(all[i]);
  }
}
