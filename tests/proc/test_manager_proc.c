/* test_manager_proc.c: the manager's server as a process of its own (kiln_manager_start): with
 * the fork server and with fork, Unix and TCP addresses, children started by kiln as clients,
 * shutdown from the parent and from a client, and a server whose program dies.
 *
 * Every test starts the fork server first, while the test process is still single-threaded. */
// kt: timeout 60
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "mgr_test_util.h"

typedef struct where {
  char address[256];
  unsigned char key[64];
  size_t klen;
} where;

static kiln_manager *start_manager(kiln_start_method how, const char *address, where *w) {
  kiln_manager_config cfg;
  kiln_manager_config_default(&cfg);
  cfg.start = how;
  cfg.address = address;
  kiln_manager *m = NULL;
  MT_OK(kiln_manager_start(&cfg, &m));
  snprintf(w->address, sizeof w->address, "%s", kiln_manager_address(m));
  const void *key = kiln_manager_authkey(m, &w->klen);
  KT_TRUE(w->klen <= sizeof w->key);
  memcpy(w->key, key, w->klen);
  return m;
}

static kiln_mclient *connect_to(const where *w) {
  kiln_mclient *c = NULL;
  MT_OK(kiln_manager_connect(w->address, w->key, w->klen, &c));
  return c;
}

enum { NCHILD = 3, NINC = 50 };

/* A child started by kiln: NINC increments of d["n"] under the lock, then "done" on the queue. */
static int counter_child(const void *arg, size_t len) {
  if (len != sizeof(where)) return 10;
  const where *w = arg;
  kiln_mclient *c;
  if (kiln_manager_connect(w->address, w->key, w->klen, &c)) return 11;
  for (int i = 0; i < NINC; i++) {
    kiln_bytes v;
    if (kiln_mlock_acquire(c, "l", -1) || kiln_mdict_get_or(c, "d", "n", 1, "0", 1, &v)) return 12;
    char old[32], b[32];
    size_t k = v.len < sizeof old - 1 ? v.len : sizeof old - 1;
    memcpy(old, v.data, k);
    old[k] = 0;
    free(v.data);
    int bl = snprintf(b, sizeof b, "%ld", atol(old) + 1);
    if (kiln_mdict_set(c, "d", "n", 1, b, (size_t)bl) || kiln_mlock_release(c, "l")) return 13;
  }
  if (kiln_mqueue_put(c, "done", "1", 1, -1)) return 14;
  kiln_mclient_close(c);
  return 0;
}

static void count_from_children(const where *w, kiln_start_method how) {
  kiln_process *p[NCHILD];
  for (int i = 0; i < NCHILD; i++) {
    kiln_process_config pc;
    kiln_process_config_default(&pc);
    pc.start = how;
    MT_OK(kiln_process_start(&pc, counter_child, w, sizeof *w, &p[i]));
  }
  for (int i = 0; i < NCHILD; i++) {
    MT_OK(kiln_process_join(p[i], -1));
    int code = -1;
    MT_OK(kiln_process_exitcode(p[i], &code));
    KT_EQ(code, 0);
    kiln_process_destroy(p[i]);
  }
  kiln_mclient *c = connect_to(w);
  size_t n;
  MT_OK(kiln_mqueue_qsize(c, "done", &n));
  KT_EQ(n, NCHILD);
  kiln_bytes v;
  MT_OK(kiln_mdict_get(c, "d", "n", 1, &v));
  char want[16];
  snprintf(want, sizeof want, "%d", NCHILD * NINC);
  KT_TRUE(v.len == strlen(want) && memcmp(v.data, want, v.len) == 0);
  free(v.data);
  kiln_mclient_close(c);
}

/* Whether the process is gone, waiting up to 20 s (a pidfd: it need not be our child). */
static bool gone_within(int pid) {
  int fd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) return errno == ESRCH;
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int r = poll(&p, 1, 20000);
  close(fd);
  return r == 1;
}

TEST(start_forkserver_unix_children_count_then_nothing_left) {
  MT_OK(kiln_forkserver_start());
  int fds = mt_nfds();
  where w;
  kiln_manager *m = start_manager(KILN_START_FORKSERVER, NULL, &w);
  KT_EQ(w.klen, 32);
  struct stat st;
  KT_EQ(stat(w.address, &st), 0);
  KT_TRUE(S_ISSOCK(st.st_mode));
  int pid = kiln_manager_pid(m);
  KT_TRUE(pid > 0);
  count_from_children(&w, KILN_START_FORKSERVER);
  kiln_mclient *c = connect_to(&w);
  MT_OK(kiln_manager_shutdown(m));
  KT_CODE(kiln_mdict_len(c, "d", &(size_t){0}), KILN_EEOF);
  kiln_mclient_close(c);
  KT_EQ(stat(w.address, &st), -1);
  *strrchr(w.address, '/') = 0;
  KT_EQ(stat(w.address, &st), -1); /* the private folder too */
  KT_TRUE(gone_within(pid));
  KT_EQ(mt_nfds(), fds);
  kiln_manager_shutdown(NULL);
  kiln_forkserver_stop();
}

TEST(start_fork_tcp_keys) {
  MT_OK(kiln_forkserver_start());
  kiln_manager_config cfg;
  kiln_manager_config_default(&cfg);
  cfg.start = KILN_START_FORK;
  cfg.address = "127.0.0.1:0";
  cfg.authkey = "the key", cfg.authkey_len = 7;
  kiln_manager *m = NULL;
  MT_OK(kiln_manager_start(&cfg, &m));
  const char *addr = kiln_manager_address(m);
  KT_TRUE(strncmp(addr, "127.0.0.1:", 10) == 0 && strcmp(addr, "127.0.0.1:0") != 0);
  kiln_mclient *c = NULL;
  KT_CODE(kiln_manager_connect(addr, "the kex", 7, &c), KILN_EAUTH);
  MT_OK(kiln_manager_connect(addr, "the key", 7, &c));
  MT_OK(kiln_mns_set(c, "ns", "a", "b", 1));
  where w = {.klen = 7};
  snprintf(w.address, sizeof w.address, "%s", addr);
  memcpy(w.key, "the key", 7);
  count_from_children(&w, KILN_START_FORK);
  /* the address is in use while it runs */
  kiln_manager *m2 = NULL;
  cfg.address = addr;
  KT_CODE(kiln_manager_start(&cfg, &m2), KILN_EEXIST);
  kiln_mclient_close(c);
  MT_OK(kiln_manager_shutdown(m));
  kiln_forkserver_stop();
}

/* A client's shutdown request ends the server process; kiln_manager_shutdown then only reaps. */
TEST(client_stops_the_manager_process) {
  MT_OK(kiln_forkserver_start());
  where w;
  kiln_manager *m = start_manager(KILN_START_FORKSERVER, NULL, &w);
  int pid = kiln_manager_pid(m);
  kiln_mclient *c = connect_to(&w);
  MT_OK(kiln_mclient_shutdown_server(c));
  KT_TRUE(gone_within(pid));
  struct stat st;
  KT_EQ(stat(w.address, &st), -1);
  kiln_mclient_close(c);
  MT_OK(kiln_manager_shutdown(m));
  kiln_forkserver_stop();
}

static int g_pipe[2];

/* Starts a manager and ends without shutting it down, telling the test its pid and address. */
static int abandon(void *arg) {
  (void)arg;
  kiln_manager_config cfg;
  kiln_manager_config_default(&cfg);
  cfg.start = KILN_START_FORK;
  kiln_manager *m;
  if (kiln_manager_start(&cfg, &m)) return 2;
  char msg[300];
  int n = snprintf(msg, sizeof msg, "%d %s", kiln_manager_pid(m), kiln_manager_address(m));
  if (write(g_pipe[1], msg, (size_t)n + 1) != n + 1) return 3;
  return 0;
}

/* The server does not outlive the program that started it, and still removes its socket. */
TEST(manager_ends_with_its_program) {
  KT_EQ(pipe(g_pipe), 0);
  pid_t child = mt_fork(abandon, NULL);
  close(g_pipe[1]);
  char msg[300] = {0};
  KT_TRUE(read(g_pipe[0], msg, sizeof msg - 1) > 0);
  close(g_pipe[0]);
  KT_EQ(mt_wait(child), 0);
  int pid = atoi(msg);
  const char *path = strchr(msg, ' ') + 1;
  KT_TRUE(pid > 0);
  KT_TRUE(gone_within(pid));
  struct stat st;
  KT_EQ(stat(path, &st), -1);
}

/* A NULL config means the defaults (the fork server, a private Unix socket, a random key), for the
 * process form and the in-process server alike. */
TEST(null_config_means_defaults) {
  MT_OK(kiln_forkserver_start());
  kiln_manager *m = NULL;
  MT_OK(kiln_manager_start(NULL, &m));
  where w;
  snprintf(w.address, sizeof w.address, "%s", kiln_manager_address(m));
  const void *key = kiln_manager_authkey(m, &w.klen);
  KT_EQ(w.klen, 32);
  memcpy(w.key, key, w.klen);
  kiln_mclient *c = connect_to(&w);
  MT_OK(kiln_mdict_set(c, "d", "k", 1, "v", 1));
  kiln_mclient_close(c);
  MT_OK(kiln_manager_shutdown(m));
  kiln_manager_server *s = NULL;
  MT_OK(kiln_manager_server_create(NULL, &s));
  KT_TRUE(kiln_manager_server_address(s) != NULL);
  kiln_manager_server_destroy(s);
  kiln_forkserver_stop();
}
