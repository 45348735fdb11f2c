/* test_manager.c: the manager (kiln_manager_*, kiln_mclient, the proxies): every kind of object
 * from this process and from children, authentication over TCP, hostile handshakes, locks freed
 * by a client that dies, blocking calls that do not hold up other clients, and stopping.
 *
 * The server here is served by a thread of the test (kiln_manager_server_serve); children are
 * forked before that thread exists, so they start single-threaded. test_manager_proc.c covers
 * the server in a process of its own (kiln_manager_start). */
// kt: timeout 60
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>

#include "manager_internal.h"
#include "mgr_test_util.h"

static bool bytes_are(const kiln_bytes *b, const char *s) {
  return b->len == strlen(s) && (b->len == 0 || memcmp(b->data, s, b->len) == 0);
}

#define KT_BYTES(b, s)                                                                  \
  do {                                                                                  \
    if (!bytes_are(&(b), (s)))                                                          \
      KT_FAIL("%s == \"%s\": got \"%.*s\"", #b, (s), (int)(b).len, (const char *)(b).data); \
  } while (0)

TEST(dict_set_get_del_pop_keys) {
  int fds = mt_nfds();
  mt_server m;
  mt_create(&m, NULL, 0);
  mt_run(&m);
  kiln_mclient *c = mt_connect(&m);
  kiln_bytes v;
  KT_CODE(kiln_mdict_get(c, "d", "a", 1, &v), KILN_ENOENT);
  KT_TRUE(v.data == NULL && v.len == 0);
  MT_OK(kiln_mdict_set(c, "d", "b", 1, "one", 3));
  MT_OK(kiln_mdict_set(c, "d", "a", 1, "two", 3));
  MT_OK(kiln_mdict_set(c, "d", "", 0, "", 0)); /* empty key and value are fine */
  MT_OK(kiln_mdict_set(c, "d", "b", 1, "three", 5)); /* replaces, keeps its place */
  MT_OK(kiln_mdict_get(c, "d", "b", 1, &v));
  KT_BYTES(v, "three");
  free(v.data);
  MT_OK(kiln_mdict_get_or(c, "d", "zz", 2, "dflt", 4, &v));
  KT_BYTES(v, "dflt");
  free(v.data);
  size_t n;
  MT_OK(kiln_mdict_len(c, "d", &n));
  KT_EQ(n, 3);
  kiln_bytes *keys;
  MT_OK(kiln_mdict_keys(c, "d", &keys, &n));
  KT_EQ(n, 3);
  KT_BYTES(keys[0], "b");
  KT_BYTES(keys[1], "a");
  KT_BYTES(keys[2], "");
  kiln_mbytes_free(keys, n);
  KT_EQ(kiln_mdict_contains(c, "d", "a", 1), 1);
  KT_EQ(kiln_mdict_contains(c, "d", "q", 1), 0);
  MT_OK(kiln_mdict_pop(c, "d", "a", 1, &v));
  KT_BYTES(v, "two");
  free(v.data);
  KT_CODE(kiln_mdict_pop(c, "d", "a", 1, NULL), KILN_ENOENT);
  MT_OK(kiln_mdict_del(c, "d", "b", 1));
  KT_CODE(kiln_mdict_del(c, "d", "b", 1), KILN_ENOENT);
  MT_OK(kiln_mdict_len(c, "d", &n));
  KT_EQ(n, 1);
  /* a name belongs to one kind; bad names are refused */
  KT_CODE(kiln_mlist_append(c, "d", "x", 1), KILN_EINVAL);
  KT_CODE(kiln_mdict_len(c, "", &n), KILN_EINVAL);
  KT_CODE(kiln_mdict_len(c, NULL, &n), KILN_EINVAL);
  KT_CODE(kiln_mlock_acquire(c, "l", NAN), KILN_EINVAL);
  kiln_mclient_close(c);
  mt_stop(&m);
  KT_EQ(mt_nfds(), fds);
}

/* Many keys: the index grows, survives deletes, and keys stay in insertion order. */
TEST(dict_many_keys) {
  enum { N = 3000 };
  mt_server m;
  mt_create(&m, NULL, 0);
  mt_run(&m);
  kiln_mclient *c = mt_connect(&m);
  char k[16], v[16];
  for (int i = 0; i < N; i++) {
    int kl = snprintf(k, sizeof k, "k%d", i), vl = snprintf(v, sizeof v, "v%d", i);
    MT_OK(kiln_mdict_set(c, "d", k, (size_t)kl, v, (size_t)vl));
  }
  for (int i = 0; i < N; i += 3) {
    int kl = snprintf(k, sizeof k, "k%d", i);
    MT_OK(kiln_mdict_del(c, "d", k, (size_t)kl));
  }
  for (int i = 0; i < N; i++) {
    int kl = snprintf(k, sizeof k, "k%d", i);
    kiln_bytes b;
    int rc = kiln_mdict_get(c, "d", k, (size_t)kl, &b);
    if (i % 3 == 0) {
      KT_CODE(rc, KILN_ENOENT);
      continue;
    }
    MT_OK(rc);
    snprintf(v, sizeof v, "v%d", i);
    KT_BYTES(b, v);
    free(b.data);
  }
  kiln_bytes *keys;
  size_t n;
  MT_OK(kiln_mdict_keys(c, "d", &keys, &n));
  KT_EQ(n, N - (N + 2) / 3);
  KT_BYTES(keys[0], "k1");
  KT_BYTES(keys[n - 1], "k2999");
  kiln_mbytes_free(keys, n);
  kiln_mclient_close(c);
  mt_stop(&m);
}

TEST(list_append_extend_index_pop) {
  mt_server m;
  mt_create(&m, NULL, 0);
  mt_run(&m);
  kiln_mclient *c = mt_connect(&m);
  kiln_bytes v;
  KT_CODE(kiln_mlist_pop(c, "l", -1, &v), KILN_EEMPTY);
  MT_OK(kiln_mlist_append(c, "l", "a", 1));
  kiln_bytes more[3] = {{1, "b"}, {0, NULL}, {1, "d"}};
  MT_OK(kiln_mlist_extend(c, "l", more, 3));
  MT_OK(kiln_mlist_extend(c, "l", NULL, 0));
  size_t n;
  MT_OK(kiln_mlist_len(c, "l", &n));
  KT_EQ(n, 4);
  MT_OK(kiln_mlist_get(c, "l", 0, &v));
  KT_BYTES(v, "a");
  free(v.data);
  MT_OK(kiln_mlist_get(c, "l", -1, &v));
  KT_BYTES(v, "d");
  free(v.data);
  MT_OK(kiln_mlist_get(c, "l", 2, &v));
  KT_BYTES(v, "");
  free(v.data);
  KT_CODE(kiln_mlist_get(c, "l", 4, &v), KILN_EINVAL);
  KT_CODE(kiln_mlist_get(c, "l", -5, &v), KILN_EINVAL);
  KT_CODE(kiln_mlist_set(c, "l", 9, "x", 1), KILN_EINVAL);
  MT_OK(kiln_mlist_set(c, "l", -3, "B", 1));
  MT_OK(kiln_mlist_pop(c, "l", 1, &v));
  KT_BYTES(v, "B");
  free(v.data);
  MT_OK(kiln_mlist_pop(c, "l", -1, &v));
  KT_BYTES(v, "d");
  free(v.data);
  KT_CODE(kiln_mlist_pop(c, "l", 5, &v), KILN_EINVAL);
  MT_OK(kiln_mlist_len(c, "l", &n));
  KT_EQ(n, 2);
  kiln_mclient_close(c);
  mt_stop(&m);
}

TEST(namespace_attributes) {
  mt_server m;
  mt_create(&m, NULL, 0);
  mt_run(&m);
  kiln_mclient *c = mt_connect(&m);
  kiln_bytes v;
  KT_CODE(kiln_mns_get(c, "ns", "x", &v), KILN_ENOENT);
  MT_OK(kiln_mns_set(c, "ns", "x", "1", 1));
  MT_OK(kiln_mns_set(c, "ns", "y", "2", 1));
  MT_OK(kiln_mns_get(c, "ns", "x", &v));
  KT_BYTES(v, "1");
  free(v.data);
  MT_OK(kiln_mns_del(c, "ns", "x"));
  KT_CODE(kiln_mns_del(c, "ns", "x"), KILN_ENOENT);
  KT_CODE(kiln_mns_get(c, "ns", "x", &v), KILN_ENOENT);
  KT_CODE(kiln_mns_get(c, "ns", NULL, &v), KILN_EINVAL);
  kiln_mclient_close(c);
  mt_stop(&m);
}

/* LOCK-01, LOCK-04, LOCK-05 through the manager; RLock ownership is the client's. */
TEST(LOCK_01_lock_and_rlock_per_client) {
  mt_server m;
  mt_create(&m, NULL, 0);
  mt_run(&m);
  kiln_mclient *a = mt_connect(&m), *b = mt_connect(&m);
  KT_CODE(kiln_mlock_release(a, "l"), KILN_ESTATE);
  MT_OK(kiln_mlock_acquire(a, "l", -1));
  KT_CODE(kiln_mlock_acquire(a, "l", 0), KILN_ETIMEDOUT); /* not reentrant */
  KT_CODE(kiln_mlock_acquire(b, "l", 0), KILN_ETIMEDOUT);
  double t0 = kt_now();
  KT_CODE(kiln_mlock_acquire(b, "l", 0.1), KILN_ETIMEDOUT);
  KT_TIMED(kt_now() - t0, 0.1);
  MT_OK(kiln_mlock_release(b, "l")); /* any client may release a Lock */
  MT_OK(kiln_mlock_acquire(b, "l", 0));
  MT_OK(kiln_mlock_release(a, "l"));

  MT_OK(kiln_mrlock_acquire(a, "r", -1));
  MT_OK(kiln_mrlock_acquire(a, "r", 0));
  KT_CODE(kiln_mrlock_acquire(b, "r", 0), KILN_ETIMEDOUT);
  KT_CODE(kiln_mrlock_release(b, "r"), KILN_ESTATE);
  MT_OK(kiln_mrlock_release(a, "r"));
  KT_CODE(kiln_mrlock_acquire(b, "r", 0), KILN_ETIMEDOUT);
  MT_OK(kiln_mrlock_release(a, "r"));
  KT_CODE(kiln_mrlock_release(a, "r"), KILN_ESTATE);
  MT_OK(kiln_mrlock_acquire(b, "r", 0));
  MT_OK(kiln_mrlock_release(b, "r"));
  kiln_mclient_close(a);
  kiln_mclient_close(b);
  mt_stop(&m);
}

TEST(event_and_semaphore) {
  mt_server m;
  mt_create(&m, NULL, 0);
  mt_run(&m);
  kiln_mclient *c = mt_connect(&m);
  KT_EQ(kiln_mevent_is_set(c, "e"), 0);
  double t0 = kt_now();
  KT_CODE(kiln_mevent_wait(c, "e", 0.1), KILN_ETIMEDOUT);
  KT_TIMED(kt_now() - t0, 0.1);
  MT_OK(kiln_mevent_set(c, "e"));
  KT_EQ(kiln_mevent_is_set(c, "e"), 1);
  MT_OK(kiln_mevent_wait(c, "e", -1));
  MT_OK(kiln_mevent_clear(c, "e"));
  KT_CODE(kiln_mevent_wait(c, "e", 0), KILN_ETIMEDOUT);

  MT_OK(kiln_msem_create(c, "s", 2));
  KT_CODE(kiln_msem_create(c, "s", 5), KILN_EEXIST);
  KT_CODE(kiln_msem_create(c, "e", 5), KILN_EEXIST);
  MT_OK(kiln_msem_acquire(c, "s", 0));
  MT_OK(kiln_msem_acquire(c, "s", 0));
  KT_CODE(kiln_msem_acquire(c, "s", 0), KILN_ETIMEDOUT);
  MT_OK(kiln_msem_release(c, "s"));
  MT_OK(kiln_msem_acquire(c, "s", -1));
  MT_OK(kiln_msem_acquire(c, "s1", 0)); /* created by first use with value 1 */
  KT_CODE(kiln_msem_acquire(c, "s1", 0), KILN_ETIMEDOUT);
  kiln_mclient_close(c);
  mt_stop(&m);
}

/* MQ-01 through the manager: a full queue's put and an empty queue's get, at once and timed. */
TEST(MQ_01_queue_put_get_full_empty) {
  mt_server m;
  mt_create(&m, NULL, 0);
  mt_run(&m);
  kiln_mclient *c = mt_connect(&m);
  MT_OK(kiln_mqueue_create(c, "q", 2));
  KT_CODE(kiln_mqueue_create(c, "q", 2), KILN_EEXIST);
  kiln_bytes v;
  KT_CODE(kiln_mqueue_get(c, "q", &v, 0), KILN_EEMPTY);
  double t0 = kt_now();
  KT_CODE(kiln_mqueue_get(c, "q", &v, 0.1), KILN_EEMPTY);
  KT_TIMED(kt_now() - t0, 0.1);
  MT_OK(kiln_mqueue_put(c, "q", "1", 1, 0));
  MT_OK(kiln_mqueue_put(c, "q", "22", 2, -1));
  KT_CODE(kiln_mqueue_put(c, "q", "3", 1, 0), KILN_EFULL);
  t0 = kt_now();
  KT_CODE(kiln_mqueue_put(c, "q", "3", 1, 0.1), KILN_EFULL);
  KT_TIMED(kt_now() - t0, 0.1);
  size_t n;
  MT_OK(kiln_mqueue_qsize(c, "q", &n));
  KT_EQ(n, 2);
  MT_OK(kiln_mqueue_get(c, "q", &v, 0));
  KT_BYTES(v, "1");
  free(v.data);
  /* the ring wraps and grows on an unbounded queue */
  for (int i = 0; i < 50; i++) {
    char b[8];
    int len = snprintf(b, sizeof b, "%d", i);
    MT_OK(kiln_mqueue_put(c, "u", b, (size_t)len, 0));
    if (i % 3 == 0) {
      MT_OK(kiln_mqueue_get(c, "u", &v, 0));
      free(v.data);
    }
  }
  MT_OK(kiln_mqueue_qsize(c, "u", &n));
  KT_EQ(n, 33);
  MT_OK(kiln_mqueue_get(c, "u", &v, 0));
  KT_BYTES(v, "17");
  free(v.data);
  kiln_mclient_close(c);
  mt_stop(&m);
}

/* ---- from other processes ---- */

static mt_server g_m;
enum { NCHILD = 4, NINC = 100 };

/* A child's body: NINC increments of d["n"] under the manager lock "l". */
static int incrementer(void *arg) {
  (void)arg;
  kiln_mclient *c = mt_connect(&g_m);
  for (int i = 0; i < NINC; i++) {
    if (kiln_mlock_acquire(c, "l", -1)) return 2;
    kiln_bytes v;
    if (kiln_mdict_get_or(c, "d", "n", 1, "0", 1, &v)) return 3;
    char old[32], b[32];
    size_t k = v.len < sizeof old - 1 ? v.len : sizeof old - 1;
    memcpy(old, v.data, k);
    old[k] = 0;
    free(v.data);
    int len = snprintf(b, sizeof b, "%ld", atol(old) + 1);
    if (kiln_mdict_set(c, "d", "n", 1, b, (size_t)len)) return 4;
    if (kiln_mlock_release(c, "l")) return 5;
  }
  /* every kind of object from a child too */
  if (kiln_mlist_append(c, "from_children", "x", 1)) return 6;
  if (kiln_mqueue_put(c, "q", "done", 4, -1)) return 7;
  if (kiln_mns_set(c, "ns", "last", "child", 5)) return 8;
  kiln_mclient_close(c);
  return 0;
}

/* Several children increment one counter in a dict under a manager lock: the total is exact. */
TEST(children_count_under_a_manager_lock) {
  mt_create(&g_m, NULL, 0);
  pid_t pids[NCHILD];
  for (int i = 0; i < NCHILD; i++) pids[i] = mt_fork(incrementer, NULL);
  mt_run(&g_m);
  kiln_mclient *c = mt_connect(&g_m);
  for (int i = 0; i < NCHILD; i++) {
    kiln_bytes v;
    MT_OK(kiln_mqueue_get(c, "q", &v, 30));
    KT_BYTES(v, "done");
    free(v.data);
  }
  for (int i = 0; i < NCHILD; i++) KT_EQ(mt_wait(pids[i]), 0);
  kiln_bytes v;
  MT_OK(kiln_mdict_get(c, "d", "n", 1, &v));
  char want[16];
  snprintf(want, sizeof want, "%d", NCHILD * NINC);
  KT_BYTES(v, want);
  free(v.data);
  size_t n;
  MT_OK(kiln_mlist_len(c, "from_children", &n));
  KT_EQ(n, NCHILD);
  MT_OK(kiln_mns_get(c, "ns", "last", &v));
  KT_BYTES(v, "child");
  free(v.data);
  kiln_mclient_close(c);
  mt_stop(&g_m);
}

static int g_pipe[2];

/* Takes the lock and the rlock, tells the parent, then dies without releasing them. */
static int die_holding(void *arg) {
  (void)arg;
  close(g_pipe[0]);
  kiln_mclient *c = mt_connect(&g_m);
  if (kiln_mlock_acquire(c, "l", -1) || kiln_mrlock_acquire(c, "r", -1) ||
      kiln_mrlock_acquire(c, "r", -1))
    return 2;
  char x = 1;
  if (write(g_pipe[1], &x, 1) != 1) return 3;
  raise(SIGKILL);
  return 4;
}

/* A client that dies holding a lock releases it: a waiter blocked on it gets it. */
TEST(dead_client_releases_its_locks) {
  mt_create(&g_m, NULL, 0);
  KT_EQ(pipe(g_pipe), 0);
  pid_t pid = mt_fork(die_holding, NULL);
  close(g_pipe[1]);
  mt_run(&g_m);
  char x;
  KT_EQ(read(g_pipe[0], &x, 1), 1);
  close(g_pipe[0]);
  kiln_mclient *c = mt_connect(&g_m);
  MT_OK(kiln_mlock_acquire(c, "l", 30)); /* the child never released it: its death did */
  MT_OK(kiln_mrlock_acquire(c, "r", 30));
  KT_EQ(mt_wait(pid), 1000 + SIGKILL);
  kiln_mclient_close(c);
  mt_stop(&g_m);
}

/* Takes the lock, then blocks forever in a get: it dies there. */
static int die_blocked(void *arg) {
  (void)arg;
  kiln_mclient *c = mt_connect(&g_m);
  if (kiln_mlock_acquire(c, "l", -1)) return 2;
  kiln_bytes v;
  kiln_mqueue_get(c, "never", &v, -1);
  return 3;
}

/* A client killed while blocked in another call still gives its locks back, and its pending get
 * takes nothing: the server watches every connection for a hang-up. */
TEST(client_killed_while_blocked_releases_its_locks) {
  mt_create(&g_m, NULL, 0);
  pid_t pid = mt_fork(die_blocked, NULL);
  mt_run(&g_m);
  double t0 = kt_now();
  while (kiln__mgr_server_waiting(g_m.s) != 1) {
    if (kt_now() - t0 > 30) KT_FAIL("the child never blocked");
    sched_yield();
  }
  kiln_mclient *c = mt_connect(&g_m);
  KT_CODE(kiln_mlock_acquire(c, "l", 0), KILN_ETIMEDOUT);
  KT_EQ(kill(pid, SIGKILL), 0);
  MT_OK(kiln_mlock_acquire(c, "l", 30));
  KT_EQ(mt_wait(pid), 1000 + SIGKILL);
  MT_OK(kiln_mqueue_put(c, "never", "x", 1, 0));
  size_t n;
  MT_OK(kiln_mqueue_qsize(c, "never", &n));
  KT_EQ(n, 1);
  KT_EQ(kiln__mgr_server_waiting(g_m.s), 0);
  kiln_mclient_close(c);
  mt_stop(&g_m);
}

/* ---- blocking calls and other clients ---- */

static atomic_int g_got;

static void *blocking_getter(void *arg) {
  kiln_mclient *c = arg;
  kiln_bytes v;
  int rc = kiln_mqueue_get(c, "q", &v, -1);
  if (rc == 0 && bytes_are(&v, "item")) atomic_store(&g_got, 1);
  else atomic_store(&g_got, rc ? rc : -1000);
  free(v.data);
  return NULL;
}

/* A client blocked in a queue get does not hold up another client, which then feeds it. */
TEST(blocked_get_does_not_block_other_clients) {
  mt_server m;
  mt_create(&m, NULL, 0);
  mt_run(&m);
  kiln_mclient *a = mt_connect(&m), *b = mt_connect(&m);
  MT_OK(kiln_mqueue_create(a, "q", 0));
  pthread_t th;
  KT_EQ(pthread_create(&th, NULL, blocking_getter, a), 0);
  for (int i = 0; i < 20; i++) MT_OK(kiln_mdict_set(b, "d", "k", 1, "v", 1));
  MT_OK(kiln_mlock_acquire(b, "l", 0));
  MT_OK(kiln_mlock_release(b, "l"));
  KT_EQ(atomic_load(&g_got), 0);
  MT_OK(kiln_mqueue_put(b, "q", "item", 4, -1));
  KT_EQ(pthread_join(th, NULL), 0);
  KT_EQ(atomic_load(&g_got), 1);
  kiln_mclient_close(a);
  kiln_mclient_close(b);
  mt_stop(&m);
}

static void *blocked_on_lock(void *arg) {
  kiln_mclient *c = arg;
  atomic_store(&g_got, kiln_mlock_acquire(c, "l", -1));
  return NULL;
}

/* Stopping the server ends a call blocked forever, and the client sees the end. */
TEST(stop_ends_blocked_calls) {
  mt_server m;
  mt_create(&m, NULL, 0);
  mt_run(&m);
  kiln_mclient *a = mt_connect(&m), *b = mt_connect(&m);
  MT_OK(kiln_mlock_acquire(a, "l", -1));
  atomic_store(&g_got, 1);
  pthread_t th;
  KT_EQ(pthread_create(&th, NULL, blocked_on_lock, b), 0);
  mt_stop(&m);
  KT_EQ(pthread_join(th, NULL), 0);
  int rc = atomic_load(&g_got);
  KT_TRUE(rc == KILN_ESHUTDOWN || rc == KILN_EEOF);
  KT_CODE(kiln_mdict_set(a, "d", "k", 1, "v", 1), KILN_EEOF);
  KT_CODE(kiln_mdict_set(a, "d", "k", 1, "v", 1), KILN_EEOF);
  kiln_mclient_close(a);
  kiln_mclient_close(b);
}

static void *appender(void *arg) {
  for (int i = 0; i < 200; i++)
    if (kiln_mlist_append(arg, "l", "x", 1)) atomic_fetch_add(&g_got, 1);
  return NULL;
}

/* Threads of one process may share a client: calls are serialised, none is lost or mixed up. */
TEST(one_client_shared_by_threads) {
  mt_server m;
  mt_create(&m, NULL, 0);
  mt_run(&m);
  kiln_mclient *c = mt_connect(&m);
  atomic_store(&g_got, 0);
  pthread_t th[4];
  for (int i = 0; i < 4; i++) KT_EQ(pthread_create(&th[i], NULL, appender, c), 0);
  for (int i = 0; i < 4; i++) KT_EQ(pthread_join(th[i], NULL), 0);
  KT_EQ(atomic_load(&g_got), 0);
  size_t n;
  MT_OK(kiln_mlist_len(c, "l", &n));
  KT_EQ(n, 800);
  kiln_mclient_close(c);
  mt_stop(&m);
}

/* ---- addresses, keys, hostile peers ---- */

/* TCP on 127.0.0.1 with port 0: the right key works, a wrong one is KILN_EAUTH, and the server
 * goes on serving the right clients. */
TEST(tcp_right_key_and_wrong_key) {
  int fds = mt_nfds();
  mt_server m;
  mt_create(&m, "127.0.0.1:0", 0);
  const char *addr = kiln_manager_server_address(m.s);
  KT_TRUE(strncmp(addr, "127.0.0.1:", 10) == 0 && strcmp(addr, "127.0.0.1:0") != 0);
  mt_run(&m);
  kiln_mclient *c = mt_connect(&m), *bad = NULL;
  MT_OK(kiln_mdict_set(c, "d", "k", 1, "v", 1));
  KT_CODE(kiln_manager_connect(addr, "wrong key", 9, &bad), KILN_EAUTH);
  KT_TRUE(bad == NULL);
  size_t klen;
  const unsigned char *key = kiln_manager_server_authkey(m.s, &klen);
  KT_EQ(klen, 32);
  unsigned char almost[32];
  memcpy(almost, key, 32);
  almost[31] ^= 1;
  KT_CODE(kiln_manager_connect(addr, almost, 32, &bad), KILN_EAUTH);
  KT_CODE(kiln_manager_connect(addr, key, 31, &bad), KILN_EAUTH);
  kiln_mclient *c2 = mt_connect(&m);
  kiln_bytes v;
  MT_OK(kiln_mdict_get(c2, "d", "k", 1, &v));
  KT_BYTES(v, "v");
  free(v.data);
  MT_OK(kiln_mdict_len(c, "d", &klen));
  kiln_mclient_close(c);
  kiln_mclient_close(c2);
  mt_stop(&m);
  KT_EQ(mt_nfds(), fds);
}

/* Host names resolve, and IPv6 addresses are written [addr]:port (where the machine has IPv6). */
TEST(tcp_host_names_and_ipv6) {
  const char *addrs[] = {"localhost:0", "[::1]:0"};
  for (int i = 0; i < 2; i++) {
    kiln_manager_config cfg;
    kiln_manager_config_default(&cfg);
    cfg.address = addrs[i];
    mt_server m = {0};
    int rc = kiln_manager_server_create(&cfg, &m.s);
    if (i == 1 && rc == KILN_EIO) continue; /* no IPv6 loopback here */
    MT_OK(rc);
    const char *bound = kiln_manager_server_address(m.s);
    KT_TRUE(strstr(bound, ":0") != bound + strlen(bound) - 2);
    if (i == 1) KT_TRUE(strncmp(bound, "[::1]:", 6) == 0);
    mt_run(&m);
    kiln_mclient *c = mt_connect(&m);
    MT_OK(kiln_mevent_set(c, "e"));
    KT_EQ(kiln_mevent_is_set(c, "e"), 1);
    kiln_mclient_close(c);
    mt_stop(&m);
  }
}

/* A client that knows the key refuses a server that does not: here a fake server that accepts
 * any answer and answers the client's challenge with garbage. */
static int fake_server(void *arg) {
  int lfd = *(int *)arg;
  int fd = accept(lfd, NULL, NULL);
  if (fd < 0) return 2;
  unsigned char ch[4 + 11 + 40] = {51, 0, 0, 0, '#', 'C', 'H', 'A', 'L', 'L', 'E', 'N', 'G', 'E', '#'};
  if (write(fd, ch, sizeof ch) != (ssize_t)sizeof ch) return 3;
  unsigned char ans[36];
  if (recv(fd, ans, sizeof ans, MSG_WAITALL) != 36) return 4;
  const unsigned char welcome[13] = {9, 0, 0, 0, '#', 'W', 'E', 'L', 'C', 'O', 'M', 'E', '#'};
  if (write(fd, welcome, 13) != 13) return 5;
  unsigned char theirs[55];
  if (recv(fd, theirs, sizeof theirs, MSG_WAITALL) != 55) return 6;
  unsigned char wrong[36] = {32, 0, 0, 0};
  if (write(fd, wrong, 36) != 36) return 7;
  char buf[64];
  while (read(fd, buf, sizeof buf) > 0) {
  }
  close(fd);
  return 0;
}

TEST(client_refuses_a_server_without_the_key) {
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  KT_EQ(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
  KT_EQ(listen(lfd, 4), 0);
  socklen_t sl = sizeof sa;
  KT_EQ(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
  pid_t pid = mt_fork(fake_server, &lfd);
  close(lfd);
  kiln_mclient *c = NULL;
  KT_CODE(kiln_manager_connect(addr, "key", 3, &c), KILN_EAUTH);
  KT_EQ(mt_wait(pid), 0);
}

/* A raw connection to the server: no handshake done. */
static int raw_connect(const mt_server *m) {
  int fd;
  MT_OK(kiln__mgr_connect(kiln_manager_server_address(m->s), kiln__now() + 10, &fd));
  return fd;
}

/* Reads until the server closes fd; fails after 10 s. Returns the seconds it took. */
static double until_closed(int fd) {
  double t0 = kt_now();
  char buf[256];
  for (;;) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    KT_EQ(poll(&p, 1, 10000), 1);
    ssize_t n = read(fd, buf, sizeof buf);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) break;
    KT_TRUE(n > 0);
  }
  close(fd);
  return kt_now() - t0;
}

/* Truncated, garbage or silent handshakes: the server drops each (a silent one after its
 * auth_timeout), never crashes, and serves a good client meanwhile. */
TEST(garbage_and_truncated_handshakes) {
  mt_server m;
  mt_create(&m, NULL, 0.3);
  mt_run(&m);
  double t0 = kt_now();
  int silent = raw_connect(&m);
  int truncated = raw_connect(&m);
  const unsigned char part[7] = {32, 0, 0, 0, 1, 2, 3}; /* says 32 bytes, sends 3 */
  KT_EQ(write(truncated, part, sizeof part), (ssize_t)sizeof part);
  int huge = raw_connect(&m);
  const unsigned char big[8] = {0xff, 0xff, 0xff, 0x7f, 'x', 'x', 'x', 'x'};
  KT_EQ(write(huge, big, sizeof big), (ssize_t)sizeof big);
  int wrong_size = raw_connect(&m);
  const unsigned char w[9] = {5, 0, 0, 0, 'h', 'e', 'l', 'l', 'o'};
  KT_EQ(write(wrong_size, w, sizeof w), (ssize_t)sizeof w);
  close(raw_connect(&m)); /* connects and leaves at once */
  kiln_mclient *c = mt_connect(&m);
  MT_OK(kiln_mdict_set(c, "d", "k", 1, "v", 1));
  KT_TRUE(until_closed(huge) < 5);
  KT_TRUE(until_closed(wrong_size) < 5);
  until_closed(silent);
  until_closed(truncated);
  double took = kt_now() - t0; /* both were given the 0.3 s auth_timeout, no more */
  if (took < 0.6 * 0.3 || took > 5) KT_FAIL("silent peers dropped after %.3fs", took);
  size_t n;
  MT_OK(kiln_mdict_len(c, "d", &n));
  KT_EQ(n, 1);
  kiln_mclient_close(c);
  mt_stop(&m);
}

/* Sends a raw frame of len bytes and reads the reply's code. */
static int raw_request(int fd, const void *frame, size_t len) {
  unsigned char h[4] = {(unsigned char)len, (unsigned char)(len >> 8), (unsigned char)(len >> 16),
                        (unsigned char)(len >> 24)};
  KT_EQ(write(fd, h, 4), 4);
  if (len) KT_EQ(write(fd, frame, len), (ssize_t)len);
  uint8_t *rep;
  size_t rlen;
  MT_OK(kiln__mgr_recv_frame(fd, 1 << 20, kiln__now() + 10, &rep, &rlen));
  kiln__mmsg msg;
  MT_OK(kiln__mgr_decode_reply(rep, rlen, &msg));
  free(msg.fields);
  free(rep);
  return msg.op;
}

/* Malformed requests after a good handshake get KILN_EINVAL and the connection goes on; a frame
 * over the size cap ends the connection; nothing crashes the server. */
TEST(malformed_requests_are_refused) {
  mt_server m;
  mt_create(&m, NULL, 0);
  mt_run(&m);
  size_t klen;
  const void *key = kiln_manager_server_authkey(m.s, &klen);
  int fd = raw_connect(&m);
  MT_OK(kiln__mgr_auth_client(fd, key, klen, kiln__now() + 10));
  KT_CODE(raw_request(fd, NULL, 0), KILN_EINVAL);
  unsigned char r[64] = {0};
  r[0] = 200; /* unknown op, no fields */
  KT_CODE(raw_request(fd, r, 21), KILN_EINVAL);
  r[0] = KILN__OP_DICT_LEN;
  r[17] = 0xff, r[18] = 0xff; /* nfields larger than the frame can hold */
  KT_CODE(raw_request(fd, r, 21), KILN_EINVAL);
  r[17] = 1, r[18] = 0, r[21] = 40; /* one field of 40 bytes, 1 there */
  KT_CODE(raw_request(fd, r, 26), KILN_EINVAL);
  r[21] = 2, r[25] = 'a', r[26] = 0; /* a name with a NUL in it */
  KT_CODE(raw_request(fd, r, 27), KILN_EINVAL);
  r[26] = 'b'; /* a good DICT_LEN of "ab" */
  KT_CODE(raw_request(fd, r, 27), 0);
  KT_CODE(raw_request(fd, r, 28), KILN_EINVAL); /* a trailing byte */
  r[0] = KILN__OP_DICT_SET; /* the right shape for another op */
  KT_CODE(raw_request(fd, r, 27), KILN_EINVAL);
  const unsigned char over[4] = {0xff, 0xff, 0xff, 0xff};
  KT_EQ(write(fd, over, 4), 4);
  KT_TRUE(until_closed(fd) < 5);
  kiln_mclient *c = mt_connect(&m);
  size_t n;
  MT_OK(kiln_mdict_len(c, "ab", &n));
  KT_EQ(n, 0);
  kiln_mclient_close(c);
  mt_stop(&m);
}

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
  g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
  return g_rng;
}

/* A letter per kind of object, so that random names seldom clash across kinds. */
static unsigned char kind_letter(int op) {
  return op <= KILN__OP_DICT_KEYS      ? 'D'
         : op <= KILN__OP_LIST_LEN     ? 'L'
         : op <= KILN__OP_NS_DEL       ? 'N'
         : op <= KILN__OP_RLOCK_RELEASE ? (op <= KILN__OP_LOCK_RELEASE ? 'K' : 'R')
         : op <= KILN__OP_EVENT_WAIT   ? 'E'
         : op <= KILN__OP_SEM_RELEASE  ? 'S'
                                       : 'Q';
}

/* A random request into r: mostly well formed (a few names, fields of a few bytes, any op but
 * shutdown, timeout 0 so nothing blocks), sometimes bytes at random. Its length. */
static size_t random_request(unsigned char *r, size_t cap) {
  for (size_t j = 0; j < cap; j++) r[j] = (unsigned char)rnd();
  r[0] = (unsigned char)(2 + rnd() % (KILN__OP_COUNT + 1)); /* never KILN__OP_SHUTDOWN */
  int64_t num = (int64_t)(rnd() % 9) - 4;
  memcpy(r + 1, &num, 8);
  memset(r + 9, 0, 8); /* timeout 0 */
  if (rnd() % 4 == 0) return 17 + (size_t)(rnd() % (cap - 17));
  uint32_t nf = (uint32_t)(1 + rnd() % 3);
  memcpy(r + 17, &nf, 4);
  size_t at = 21;
  for (uint32_t f = 0; f < nf; f++) {
    uint32_t len = (uint32_t)(rnd() % 3);
    if (f == 0) len += 1;
    memcpy(r + at, &len, 4);
    at += 4;
    if (f == 0) r[at] = kind_letter(r[0]); /* objects of the op's kind, few of them */
    for (uint32_t b = 1; f == 0 && b < len; b++) r[at + b] = (unsigned char)('a' + rnd() % 2);
    at += len;
  }
  return at - (rnd() % 8 == 0 && at > 17 ? 1 : 0); /* now and then one byte short */
}

/* Random requests: each gets a reply and the server stays sound (under ASan+UBSan, a small
 * fuzzer of the request decoder and of every op). */
TEST(random_requests_never_crash) {
  mt_server m;
  mt_create(&m, NULL, 0);
  mt_run(&m);
  size_t klen;
  const void *key = kiln_manager_server_authkey(m.s, &klen);
  int fd = raw_connect(&m);
  MT_OK(kiln__mgr_auth_client(fd, key, klen, kiln__now() + 10));
  int good = 0;
  for (int i = 0; i < 3000; i++) {
    unsigned char r[64];
    size_t len = random_request(r, sizeof r);
    int code = raw_request(fd, r, len);
    KT_TRUE(code <= 0);
    good += code == 0;
  }
  KT_TRUE(good > 300); /* the fuzzer reaches the ops, not only the decoder */
  close(fd);
  kiln_mclient *c = mt_connect(&m);
  MT_OK(kiln_mdict_set(c, "d", "k", 1, "v", 1));
  kiln_mclient_close(c);
  mt_stop(&m);
}

/* A client's shutdown request ends serve; the default socket and its folder are removed. */
TEST(client_shutdown_and_no_socket_left) {
  int fds = mt_nfds();
  mt_server m;
  mt_create(&m, NULL, 0);
  char path[256], dir[256];
  snprintf(path, sizeof path, "%s", kiln_manager_server_address(m.s));
  snprintf(dir, sizeof dir, "%s", path);
  *strrchr(dir, '/') = 0;
  struct stat st;
  KT_EQ(stat(path, &st), 0);
  KT_TRUE(S_ISSOCK(st.st_mode));
  KT_EQ(stat(dir, &st), 0);
  KT_EQ(st.st_mode & 0777, 0700);
  mt_run(&m);
  kiln_mclient *c = mt_connect(&m);
  MT_OK(kiln_mclient_shutdown_server(c));
  KT_EQ(pthread_join(m.th, NULL), 0);
  MT_OK(m.rc);
  m.running = false;
  KT_CODE(kiln_mdict_set(c, "d", "k", 1, "v", 1), KILN_EEOF);
  kiln_mclient_close(c);
  kiln_manager_server_destroy(m.s);
  KT_EQ(stat(path, &st), -1);
  KT_EQ(stat(dir, &st), -1);
  KT_CODE(kiln_manager_connect(path, "k", 1, &c), KILN_ENOENT);
  KT_EQ(mt_nfds(), fds);
}

/* Explicit Unix paths: in use is KILN_EEXIST; bad addresses are KILN_EINVAL; stop before serve. */
TEST(addresses) {
  mt_server m;
  mt_create(&m, NULL, 0);
  kiln_manager_config cfg;
  kiln_manager_config_default(&cfg);
  kiln_manager_server *s = NULL;
  cfg.address = kiln_manager_server_address(m.s);
  KT_CODE(kiln_manager_server_create(&cfg, &s), KILN_EEXIST);
  const char *bad[] = {"", "nohostport", "127.0.0.1:", "127.0.0.1:x1", "[::1:5", "h:123456"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    cfg.address = bad[i];
    KT_CODE(kiln_manager_server_create(&cfg, &s), KILN_EINVAL);
  }
  cfg.address = NULL;
  cfg.authkey = "k", cfg.authkey_len = 0;
  KT_CODE(kiln_manager_server_create(&cfg, &s), KILN_EINVAL);
  cfg.authkey = NULL, cfg.auth_timeout = NAN;
  KT_CODE(kiln_manager_server_create(&cfg, &s), KILN_EINVAL);
  kiln_manager_server_stop(m.s); /* before serve: serve returns at once */
  MT_OK(kiln_manager_server_serve(m.s));
  KT_CODE(kiln_manager_server_serve(m.s), KILN_ESTATE);
  kiln_manager_server_destroy(m.s);
  kiln_manager_server_destroy(NULL);
  kiln_mclient_close(NULL);
}
