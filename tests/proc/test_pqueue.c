/* test_pqueue.c: process queues (MQ-01..MQ-05) with real processes.
 *
 * Children are children of the fork server or plain forks of this single-threaded process; both
 * attach the queue by name. */
// kt: timeout 60
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "pshm_test_util.h"

static kiln_pqueue *make(kiln_pqueue_kind kind, size_t maxsize, size_t capacity, const char *name) {
  kiln_pqueue_config cfg;
  kiln_pqueue_config_default(&cfg);
  cfg.kind = kind;
  cfg.maxsize = maxsize;
  cfg.capacity = capacity;
  cfg.name = name;
  kiln_pqueue *q = NULL;
  KT_CODE(kiln_pqueue_create(&cfg, &q), KILN_OK);
  return q;
}

static kiln_pqueue *open_q(const char *name) {
  kiln_pqueue *q = NULL;
  KT_CODE(kiln_pqueue_attach(name, &q), KILN_OK);
  return q;
}

static void put_int(kiln_pqueue *q, int v) { KT_CODE(kiln_pqueue_put(q, &v, sizeof v, -1), KILN_OK); }

static int get_int(kiln_pqueue *q) {
  int v = 0;
  size_t len = 0;
  KT_CODE(kiln_pqueue_get_into(q, &v, sizeof v, &len, -1), KILN_OK);
  KT_EQ(len, sizeof v);
  return v;
}

/* MQ-01: a put on a full queue fails at once when it may not block and after about its timeout
 * otherwise; the same for get on an empty one. */
TEST(MQ_01_full_and_empty_timeouts) {
  pt_leaks lk = pt_leaks_begin();
  kiln_pqueue *q = make(KILN_PQUEUE_QUEUE, 1, 0, NULL);
  put_int(q, 1);
  KT_TRUE(kiln_pqueue_full(q));
  double t0 = kt_now();
  KT_CODE(kiln_pqueue_put(q, "x", 1, 0), KILN_EFULL);
  KT_TRUE(kt_now() - t0 < 0.05);
  t0 = kt_now();
  KT_CODE(kiln_pqueue_put(q, "x", 1, 0.1), KILN_EFULL);
  KT_TIMED(kt_now() - t0, 0.1);
  KT_EQ(get_int(q), 1);
  void *buf = (void *)1;
  size_t len = 9;
  t0 = kt_now();
  KT_CODE(kiln_pqueue_get(q, &buf, &len, 0), KILN_EEMPTY);
  KT_TRUE(buf == NULL);
  KT_TRUE(kt_now() - t0 < 0.05);
  t0 = kt_now();
  KT_CODE(kiln_pqueue_get(q, &buf, &len, 0.1), KILN_EEMPTY);
  KT_TIMED(kt_now() - t0, 0.1);
  KT_CODE(kiln_pqueue_put(q, "", 0, 0), KILN_OK); /* an empty message is a message */
  KT_CODE(kiln_pqueue_get(q, &buf, &len, 0), KILN_OK);
  KT_TRUE(buf != NULL);
  KT_EQ(len, 0);
  free(buf);
  kiln_pqueue_destroy(q);
  pt_leaks_end(lk);
}

enum { ORDER_N = 5000 };

static void child_put_sequence(void *arg) {
  kiln_pqueue *q = open_q(arg);
  for (int i = 0; i < ORDER_N; i++) put_int(q, i);
  kiln_pqueue_destroy(q);
}

static void child_put_three(void *arg) {
  kiln_pqueue *q = open_q(arg);
  for (int i = 0; i < 3; i++) put_int(q, 10 + i);
  KT_TRUE(kiln_pqueue_full(q));
  kiln_pqueue_destroy(q);
}

PT_FS_WRAP(fs_child_put_sequence, child_put_sequence)

/* MQ-02: messages put by another process (a child of the fork server) arrive in order, through a
 * small bounded queue, so the putter blocks and resumes many times; qsize / empty / full agree
 * across processes (a plain fork). */
TEST(MQ_02_order_and_sizes_across_processes) {
  pt_fs_start();
  pt_leaks lk = pt_leaks_begin();
  kiln_pqueue *q = make(KILN_PQUEUE_QUEUE, 7, 0, pt_name("q"));
  kiln_process *p = pt_fs_run(fs_child_put_sequence, pt_name("q"));
  for (int i = 0; i < ORDER_N; i++) KT_EQ(get_int(q), i);
  pt_fs_wait(p);
  KT_EQ(kiln_pqueue_empty(q), 1);
  kiln_pqueue_destroy(q);

  q = make(KILN_PQUEUE_QUEUE, 3, 0, pt_name("q3"));
  KT_EQ(kiln_pqueue_qsize(q), 0);
  pt_wait(pt_fork(child_put_three, (void *)pt_name("q3")));
  KT_EQ(kiln_pqueue_qsize(q), 3);
  KT_TRUE(kiln_pqueue_full(q));
  KT_EQ(kiln_pqueue_empty(q), 0);
  for (int i = 0; i < 3; i++) KT_EQ(get_int(q), 10 + i);
  KT_FALSE(kiln_pqueue_full(q));
  kiln_pqueue_destroy(q);
  pt_leaks_end(lk);
  pt_fs_stop();
}

/* Messages of many sizes (so that they wrap around a small ring) keep their bytes. */
static void fill(unsigned char *b, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) b[i] = (unsigned char)(seed * 31u + i * 7u);
}

static void child_put_sizes(void *arg) {
  kiln_pqueue *q = open_q(arg);
  unsigned char buf[700];
  for (unsigned i = 0; i < 2000; i++) {
    size_t n = (i * 37u) % sizeof buf;
    fill(buf, n, i);
    KT_CODE(kiln_pqueue_put(q, buf, n, -1), KILN_OK);
  }
  kiln_pqueue_destroy(q);
}

TEST(MQ_02_message_bytes_wrap_around) {
  pt_leaks lk = pt_leaks_begin();
  kiln_pqueue *q = make(KILN_PQUEUE_QUEUE, 0, 1000, pt_name("wrap"));
  KT_EQ(kiln_pqueue_max_message(q), 1000 - 8);
  pid_t pid = pt_fork(child_put_sizes, (void *)pt_name("wrap"));
  unsigned char want[700];
  for (unsigned i = 0; i < 2000; i++) {
    void *buf;
    size_t len;
    KT_CODE(kiln_pqueue_get(q, &buf, &len, -1), KILN_OK);
    size_t n = (i * 37u) % sizeof want;
    KT_EQ(len, n);
    fill(want, n, i);
    KT_TRUE(memcmp(buf, want, n) == 0);
    free(buf);
  }
  pt_wait(pid);
  kiln_pqueue_destroy(q);
  pt_leaks_end(lk);
}

/* Large messages (copied outside the queue's monitor) from two putting processes, through a ring
 * that holds only a few, arrive whole and in each putter's order. */
enum { BIG_N = 300, BIG_MAX = 20000 };

static size_t big_len(unsigned i) { return 4000 + (i * 7919u) % (BIG_MAX - 4000); }

static void child_put_big(void *arg) {
  kiln_pqueue *q = open_q(arg);
  unsigned char *buf = malloc(BIG_MAX);
  for (unsigned i = 0; i < BIG_N; i++) {
    fill(buf, big_len(i), i);
    KT_CODE(kiln_pqueue_put(q, buf, big_len(i), -1), KILN_OK);
  }
  free(buf);
  kiln_pqueue_destroy(q);
}

TEST(MQ_02_large_messages_two_putters) {
  pt_leaks lk = pt_leaks_begin();
  kiln_pqueue *q = make(KILN_PQUEUE_QUEUE, 0, 3 * BIG_MAX, pt_name("big"));
  pid_t pid[2];
  for (int i = 0; i < 2; i++) pid[i] = pt_fork(child_put_big, (void *)pt_name("big"));
  unsigned char *want = malloc(BIG_MAX);
  unsigned next[2] = {0, 0}; /* each putter's messages arrive in its own order */
  for (unsigned k = 0; k < 2 * BIG_N; k++) {
    void *buf;
    size_t len;
    KT_CODE(kiln_pqueue_get(q, &buf, &len, -1), KILN_OK);
    int matched = 0;
    for (int p = 0; p < 2 && !matched; p++) {
      if (next[p] < BIG_N && len == big_len(next[p])) {
        fill(want, len, next[p]);
        if (memcmp(buf, want, len) == 0) next[p]++, matched = 1;
      }
    }
    if (!matched) KT_FAIL("message %u (%zu bytes) is not the next of either putter", k, len);
    free(buf);
  }
  for (int i = 0; i < 2; i++) pt_wait(pid[i]);
  KT_EQ(kiln_pqueue_qsize(q), 0);
  free(want);
  kiln_pqueue_destroy(q);
  pt_leaks_end(lk);
}

/* MQ-03: join waits until workers in other processes have called task_done once per message. */
enum { JOIN_ITEMS = 100 };

typedef struct worker_arg { /* by value: it crosses to the fork server's child as bytes */
  char qname[64], sumname[64];
} worker_arg;

static void child_worker(void *arg) {
  worker_arg *w = arg;
  kiln_pqueue *q = open_q(w->qname);
  kiln_shared *sum;
  KT_CODE(kiln_shared_attach(w->sumname, &sum), KILN_OK);
  for (;;) {
    int v = get_int(q);
    if (v < 0) break;
    kiln_prlock *l = kiln_shared_get_lock(sum);
    KT_CODE(kiln_prlock_acquire(l, -1), KILN_OK);
    *(long *)kiln_shared_data(sum) += v;
    KT_CODE(kiln_prlock_release(l), KILN_OK);
    KT_CODE(kiln_pqueue_task_done(q), KILN_OK);
  }
  KT_CODE(kiln_pqueue_task_done(q), KILN_OK); /* for the stop message */
  kiln_shared_destroy(sum);
  kiln_pqueue_destroy(q);
}

static int fs_child_worker(const void *arg, size_t len) {
  KT_EQ(len, sizeof(worker_arg));
  child_worker((void *)arg);
  return 0;
}

/* MQ-03 with two workers started through the fork server. */
TEST(MQ_03_joinable_task_done_across_processes) {
  pt_fs_start();
  pt_leaks lk = pt_leaks_begin();
  kiln_pqueue *q = make(KILN_PQUEUE_JOINABLE, 0, 0, pt_name("jq"));
  kiln_shared_config cfg;
  kiln_shared_config_default(&cfg);
  cfg.type = KILN_CT_LONG;
  cfg.name = pt_name("sum");
  kiln_shared *sum;
  KT_CODE(kiln_shared_create(&cfg, &sum), KILN_OK);
  KT_CODE(kiln_pqueue_task_done(q), KILN_EINVAL); /* nothing unfinished */
  KT_CODE(kiln_pqueue_join(q, 0), KILN_OK);
  worker_arg w;
  snprintf(w.qname, sizeof w.qname, "%s", pt_name("jq"));
  snprintf(w.sumname, sizeof w.sumname, "%s", pt_name("sum"));
  kiln_process *pid[2];
  kiln_process_config pc;
  pt_fs_config(&pc);
  for (int i = 0; i < 2; i++) KT_CODE(kiln_process_start(&pc, fs_child_worker, &w, sizeof w, &pid[i]), KILN_OK);
  for (int i = 0; i < JOIN_ITEMS; i++) put_int(q, i);
  KT_CODE(kiln_pqueue_join(q, -1), KILN_OK);
  KT_EQ(*(long *)kiln_shared_data(sum), JOIN_ITEMS * (JOIN_ITEMS - 1) / 2);
  put_int(q, -1);
  put_int(q, -1);
  for (int i = 0; i < 2; i++) pt_fs_wait(pid[i]);
  KT_CODE(kiln_pqueue_join(q, 0), KILN_OK);
  KT_CODE(kiln_pqueue_task_done(q), KILN_EINVAL);
  put_int(q, 5); /* reusable after join; a join with a message unfinished times out */
  KT_CODE(kiln_pqueue_join(q, 0.01), KILN_ETIMEDOUT);
  kiln_shared_destroy(sum);
  kiln_pqueue_destroy(q);
  kiln_pqueue *plain = make(KILN_PQUEUE_QUEUE, 0, 0, NULL);
  KT_CODE(kiln_pqueue_task_done(plain), KILN_EUNSUPPORTED);
  KT_CODE(kiln_pqueue_join(plain, 0), KILN_EUNSUPPORTED);
  kiln_pqueue_destroy(plain);
  pt_leaks_end(lk);
  pt_fs_stop();
}

/* MQ-04: a message that cannot go in (larger than the ring) is refused with KILN_EINVAL and
 * leaves the queue and its count intact: with maxsize 1, later messages still flow. A get_into
 * with too small a buffer keeps the message queued. */
TEST(MQ_04_too_large_message_keeps_queue) {
  pt_leaks lk = pt_leaks_begin();
  kiln_pqueue *q = make(KILN_PQUEUE_QUEUE, 1, 64, NULL);
  char big[100] = {0};
  KT_CODE(kiln_pqueue_put(q, big, sizeof big, -1), KILN_EINVAL);
  KT_EQ(kiln_pqueue_qsize(q), 0);
  for (int i = 0; i < 5; i++) {
    KT_CODE(kiln_pqueue_put(q, big, 56, 0), KILN_OK); /* exactly the largest */
    KT_CODE(kiln_pqueue_put(q, big, 57, 0), KILN_EINVAL);
    KT_EQ(kiln_pqueue_qsize(q), 1);
    char small[8];
    size_t len = 0;
    KT_CODE(kiln_pqueue_get_into(q, small, sizeof small, &len, 0), KILN_EINVAL);
    KT_EQ(len, 56);
    KT_EQ(kiln_pqueue_qsize(q), 1);
    KT_CODE(kiln_pqueue_get_into(q, big, sizeof big, &len, 0), KILN_OK);
    KT_EQ(len, 56);
  }
  kiln_pqueue_destroy(q);
  kiln_pqueue_config cfg;
  kiln_pqueue_config_default(&cfg);
  cfg.capacity = 8; /* too small for any message */
  KT_CODE(kiln_pqueue_create(&cfg, &q), KILN_EINVAL);
  KT_TRUE(q == NULL);
  pt_leaks_end(lk);
}

/* MQ-05: after close, put and get are KILN_ESTATE; empty on a closed handle that was never used
 * is 1, on one that was used KILN_ESTATE; a closed SimpleQueue's empty is KILN_ESTATE; close twice
 * is fine; other handles of the same queue go on. */
TEST(MQ_05_closed_queue) {
  pt_leaks lk = pt_leaks_begin();
  kiln_pqueue *q = make(KILN_PQUEUE_QUEUE, 0, 0, pt_name("cq"));
  kiln_pqueue *other = open_q(pt_name("cq"));
  kiln_pqueue_close(q);
  KT_EQ(kiln_pqueue_empty(q), 1); /* never used */
  KT_CODE(kiln_pqueue_put(q, "a", 1, 0), KILN_ESTATE);
  void *buf;
  size_t len;
  KT_CODE(kiln_pqueue_get(q, &buf, &len, 0), KILN_ESTATE);
  kiln_pqueue_close(q);
  put_int(other, 3); /* the other handle is open */
  KT_EQ(get_int(other), 3);
  kiln_pqueue_close(other);
  KT_CODE(kiln_pqueue_empty(other), KILN_ESTATE); /* used, then closed */
  kiln_pqueue_destroy(other);
  kiln_pqueue_destroy(q);

  kiln_pqueue *sq = make(KILN_PQUEUE_SIMPLE, 5, 0, NULL);
  for (int i = 0; i < 20; i++) put_int(sq, i); /* maxsize ignored: unbounded but for capacity */
  KT_FALSE(kiln_pqueue_full(sq));
  for (int i = 0; i < 20; i++) KT_EQ(get_int(sq), i);
  KT_EQ(kiln_pqueue_empty(sq), 1);
  kiln_pqueue_close(sq);
  kiln_pqueue_close(sq);
  KT_CODE(kiln_pqueue_empty(sq), KILN_ESTATE);
  kiln_pqueue_destroy(sq);
  kiln_pqueue_destroy(NULL);
  pt_leaks_end(lk);
}

/* A mapping whose every access faults: a file of size 0 mapped for len bytes (reading it is
 * SIGBUS) and without write access (writing it is SIGSEGV). Lets a child die inside a copy. */
static void *faulting_map(size_t len) {
  char path[] = "/tmp/kiln-test-pqueue-XXXXXX";
  int fd = mkstemp(path);
  KT_TRUE(fd >= 0);
  unlink(path);
  void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  KT_TRUE(m != MAP_FAILED);
  return m;
}

enum { DIE_LEN = 64 * 1024 };

enum { SMALL_LEN = 1000 }; /* copied under the queue's robust mutex */

static void child_dies_putting(void *arg) {
  kiln_pqueue *q = open_q(arg);
  kiln_pqueue_put(q, faulting_map(DIE_LEN), DIE_LEN, -1); /* dies reading its source */
  _exit(0);
}

static void child_dies_putting_small(void *arg) {
  kiln_pqueue *q = open_q(arg);
  kiln_pqueue_put(q, faulting_map(SMALL_LEN), SMALL_LEN, -1); /* dies holding the mutex */
  _exit(0);
}

static void child_dies_getting(void *arg) {
  kiln_pqueue *q = open_q(arg);
  size_t len;
  kiln_pqueue_get_into(q, faulting_map(DIE_LEN), DIE_LEN, &len, -1); /* dies writing its buffer */
  _exit(0);
}

static void expect_killed(pid_t pid) {
  int st = 0;
  KT_EQ(waitpid(pid, &st, 0), pid);
  KT_FALSE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* A process that dies in the middle of copying a large message, putting or getting, leaves the
 * queue usable: the half-put message never appears, the half-got one is still there, whole. One
 * that dies inside the queue's mutex (a small message) leaves it to the next caller. */
TEST(MQ_copier_dies_mid_message) {
  pt_leaks lk = pt_leaks_begin();
  kiln_pqueue *q = make(KILN_PQUEUE_QUEUE, 0, 4 * DIE_LEN, pt_name("die"));
  unsigned char *msg = malloc(DIE_LEN), *got = malloc(DIE_LEN);
  fill(msg, DIE_LEN, 77);
  expect_killed(pt_fork(child_dies_putting, (void *)pt_name("die")));
  KT_EQ(kiln_pqueue_qsize(q), 0);
  KT_CODE(kiln_pqueue_put(q, msg, DIE_LEN, 5), KILN_OK); /* takes over from the dead putter */
  expect_killed(pt_fork(child_dies_getting, (void *)pt_name("die")));
  KT_EQ(kiln_pqueue_qsize(q), 1);
  size_t len = 0;
  KT_CODE(kiln_pqueue_get_into(q, got, DIE_LEN, &len, 5), KILN_OK);
  KT_EQ(len, DIE_LEN);
  KT_TRUE(memcmp(got, msg, DIE_LEN) == 0);
  KT_EQ(kiln_pqueue_qsize(q), 0);
  /* a small message is copied under the monitor's robust mutex: its owner dies holding it */
  expect_killed(pt_fork(child_dies_putting_small, (void *)pt_name("die")));
  KT_EQ(kiln_pqueue_qsize(q), 0);
  KT_CODE(kiln_pqueue_put(q, msg, SMALL_LEN, 0), KILN_OK);
  KT_CODE(kiln_pqueue_get_into(q, got, DIE_LEN, &len, 0), KILN_OK);
  KT_EQ(len, SMALL_LEN);
  KT_TRUE(memcmp(got, msg, SMALL_LEN) == 0);
  free(msg);
  free(got);
  kiln_pqueue_destroy(q);
  pt_leaks_end(lk);
}

/* Attaching something that is not a queue, or a missing name, fails cleanly. */
TEST(MQ_attach_checks) {
  pt_leaks lk = pt_leaks_begin();
  kiln_pqueue *q = (kiln_pqueue *)1;
  KT_CODE(kiln_pqueue_attach(pt_name("none"), &q), KILN_ENOENT);
  KT_TRUE(q == NULL);
  kiln_pevent *e;
  KT_CODE(kiln_pevent_create(pt_name("notq"), &e), KILN_OK);
  KT_CODE(kiln_pqueue_attach(pt_name("notq"), &q), KILN_EINVAL);
  kiln_pevent_destroy(e);
  pt_leaks_end(lk);
}

/* Callers that never block (timeout 0, polling) get past a copier that died too: before giving
 * up they look once whether the copy in their way belongs to a dead process. */
TEST(MQ_copier_dies_then_nonblocking_calls) {
  pt_leaks lk = pt_leaks_begin();
  kiln_pqueue *q = make(KILN_PQUEUE_QUEUE, 0, 4 * DIE_LEN, pt_name("die0"));
  unsigned char *msg = malloc(DIE_LEN), *got = malloc(DIE_LEN);
  fill(msg, DIE_LEN, 78);
  expect_killed(pt_fork(child_dies_putting, (void *)pt_name("die0")));
  KT_CODE(kiln_pqueue_put(q, msg, DIE_LEN, 0), KILN_OK);
  expect_killed(pt_fork(child_dies_getting, (void *)pt_name("die0")));
  size_t len = 0;
  KT_CODE(kiln_pqueue_get_into(q, got, DIE_LEN, &len, 0), KILN_OK);
  KT_EQ(len, DIE_LEN);
  KT_TRUE(memcmp(got, msg, DIE_LEN) == 0);
  KT_EQ(kiln_pqueue_qsize(q), 0);
  free(msg);
  free(got);
  kiln_pqueue_destroy(q);
  pt_leaks_end(lk);
}

/* A length word that disagrees with the ring (as a process killed between two stores of an update
 * could leave it) is refused with KILN_EIO, never copied past the ring. The word is found as the
 * 8 bytes before the message's own bytes in the queue's segment. */
TEST(MQ_damaged_length_is_eio_not_a_wild_copy) {
  pt_leaks lk = pt_leaks_begin();
  kiln_pqueue *q = make(KILN_PQUEUE_QUEUE, 0, 4096, NULL);
  static const char msg[] = "kiln-pqueue-damaged-length";
  KT_CODE(kiln_pqueue_put(q, msg, sizeof msg, -1), KILN_OK);
  kiln_shm *seg = kiln_pqueue_shm(q);
  unsigned char *mem = kiln_shm_data(seg);
  size_t size = kiln_shm_size(seg);
  unsigned char *at = memmem(mem, size, msg, sizeof msg);
  KT_TRUE(at != NULL && at - mem >= 8);
  uint64_t len = 0;
  memcpy(&len, at - 8, sizeof len);
  KT_EQ(len, sizeof msg);
  static const uint64_t lies[] = {1ull << 40, 4096, sizeof msg + 64};
  for (size_t i = 0; i < sizeof lies / sizeof lies[0]; i++) {
    memcpy(at - 8, &lies[i], sizeof lies[i]);
    void *buf = NULL;
    size_t got = 0;
    KT_CODE(kiln_pqueue_get(q, &buf, &got, 0), KILN_EIO);
    KT_TRUE(buf == NULL);
    char small[64];
    KT_CODE(kiln_pqueue_get_into(q, small, sizeof small, &got, 0), KILN_EIO);
  }
  memcpy(at - 8, &len, sizeof len); /* repaired: the message comes out whole */
  void *buf = NULL;
  size_t got = 0;
  KT_CODE(kiln_pqueue_get(q, &buf, &got, 0), KILN_OK);
  KT_EQ(got, sizeof msg);
  KT_TRUE(memcmp(buf, msg, sizeof msg) == 0);
  free(buf);
  kiln_pqueue_destroy(q);
  pt_leaks_end(lk);
}
