/* test_ppool.c: the process pool (POOL-* and PPE-* of docs/CONFORMANCE.md): kiln_ppool_* and
 * kiln_pimap_*, with workers started through the fork server.
 *
 * Tasks are functions of this program: the workers are forks of it (through the fork server), so
 * their addresses are valid there. A worker keeps only the standard streams and its channel, so
 * tasks that must talk to the test in the middle of a task use named FIFOs in a temporary folder:
 * a gated task blocks reading one byte from "gate" until the test writes it, and a task that
 * announces its start writes its pid to "started", which the test reads. No test sleeps.
 *
 * Rules without a C form: POOL-07 (a failing input iterator: the input is an array here);
 * POOL-13 (scoped use, `with Pool() as p`): kiln_ppool_destroy is the scope's end and terminates a
 * pool not closed (pool_destroy_terminates); POOL-21 (AsyncResult): the results are kiln futures,
 * whose states the sched suite checks. POOL-09's unpicklable result has its C counterpart in a
 * result over 4 GiB (KILN_EINVAL for that task), not run here for its size. */
// kt: timeout 60
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kiln/proc.h"
#include "kt.h"

/* ---- tasks (run in the workers) --------------------------------------------------------------- */

static int t_square(const void *arg, size_t len, void **result, size_t *rlen) {
  if (len != sizeof(int64_t)) return kiln_ptask_fail(KILN_EINVAL, "bad length %zu", len);
  int64_t v;
  memcpy(&v, arg, sizeof v);
  v *= v;
  *result = malloc(sizeof v);
  memcpy(*result, &v, sizeof v);
  *rlen = sizeof v;
  return 0;
}

static int t_empty(const void *arg, size_t len, void **result, size_t *rlen) {
  (void)arg, (void)len, (void)result, (void)rlen;
  return 0;
}

static int t_pid(const void *arg, size_t len, void **result, size_t *rlen) {
  (void)arg, (void)len;
  int pid = getpid();
  *result = malloc(sizeof pid);
  memcpy(*result, &pid, sizeof pid);
  *rlen = sizeof pid;
  return 0;
}

/* Fails for odd inputs with a message naming the input. */
static int t_fail_odd(const void *arg, size_t len, void **result, size_t *rlen) {
  int64_t v;
  memcpy(&v, arg, sizeof v);
  if (v % 2) return kiln_ptask_fail(KILN_EIO, "odd input %lld", (long long)v);
  return t_square(arg, len, result, rlen);
}

static int t_kill_self(const void *arg, size_t len, void **result, size_t *rlen) {
  (void)arg, (void)len, (void)result, (void)rlen;
  raise(SIGKILL);
  return 0;
}

static int t_exit3(const void *arg, size_t len, void **result, size_t *rlen) {
  (void)arg, (void)len, (void)result, (void)rlen;
  _exit(3);
}

static kiln_bytes i64(int64_t *store, int64_t v) {
  *store = v;
  return (kiln_bytes){sizeof *store, store};
}

static int64_t get_i64(const kiln_bytes *b) {
  int64_t v = 0;
  if (b->len == sizeof v) memcpy(&v, b->data, sizeof v);
  return v;
}

static kiln_ppool *make_pool(int n, uint32_t maxtasks, bool brk) {
  KT_CODE(kiln_forkserver_start(), 0);
  kiln_ppool_config cfg;
  kiln_ppool_config_default(&cfg);
  cfg.processes = n;
  cfg.maxtasksperchild = maxtasks;
  cfg.break_on_worker_death = brk;
  kiln_ppool *p;
  KT_CODE(kiln_ppool_create(&cfg, &p), 0);
  return p;
}

/* POOL-01: processes < 0 is KILN_EINVAL; Pool(3) has exactly 3 workers. */
TEST(POOL_01_processes) {
  KT_CODE(kiln_forkserver_start(), 0);
  kiln_ppool_config cfg;
  kiln_ppool_config_default(&cfg);
  cfg.processes = -1;
  kiln_ppool *p = (kiln_ppool *)&cfg;
  KT_CODE(kiln_ppool_create(&cfg, &p), KILN_EINVAL);
  KT_TRUE(p == NULL);
  p = make_pool(3, 0, false);
  int pids[8];
  KT_EQ(kiln_ppool_pids(p, pids, 8), 3);
  KT_NE(pids[0], pids[1]);
  KT_NE(pids[1], pids[2]);
  kiln_ppool_destroy(p);
}

/* POOL-02: apply blocks and returns the task's result. */
TEST(POOL_02_apply) {
  kiln_ppool *p = make_pool(2, 0, false);
  int64_t a;
  kiln_bytes in = i64(&a, 12), out;
  KT_CODE(kiln_ppool_apply(p, t_square, in.data, in.len, &out), 0);
  KT_EQ(get_i64(&out), 144);
  free(out.data);
  kiln_ppool_destroy(p);
}

/* ---- FIFO handshakes -------------------------------------------------------------------------- */

static char g_dir[64];

static const char *fifo(const char *name) {
  static char path[2][128];
  static int k;
  k ^= 1;
  snprintf(path[k], sizeof path[k], "%s/%s", g_dir, name);
  return path[k];
}

static void fifos_make(void) {
  snprintf(g_dir, sizeof g_dir, "/tmp/kiln-ppool-XXXXXX");
  KT_TRUE(mkdtemp(g_dir) != NULL);
  KT_EQ(mkfifo(fifo("gate"), 0600), 0);
  KT_EQ(mkfifo(fifo("started"), 0600), 0);
}

static void fifos_remove(void) {
  unlink(fifo("gate"));
  unlink(fifo("started"));
  rmdir(g_dir);
}

/* Opens the gate for k gated tasks (blocks until one of them has the gate open). */
static void gate_open(int k) {
  int fd = open(fifo("gate"), O_WRONLY);
  KT_TRUE(fd >= 0);
  for (int i = 0; i < k; i++) KT_EQ(write(fd, "x", 1), 1);
  close(fd);
}

/* Reads the pids of k tasks that announced their start. */
static void started_read(int *pids, int k) {
  int fd = open(fifo("started"), O_RDONLY);
  KT_TRUE(fd >= 0);
  for (int i = 0; i < k; i++) {
    size_t got = 0;
    while (got < sizeof pids[i]) {
      ssize_t n = read(fd, (char *)&pids[i] + got, sizeof pids[i] - got);
      KT_TRUE(n > 0);
      got += (size_t)n;
    }
  }
  close(fd);
}

/* The task side: arg is the folder. Announces its pid on "started" when announce. */
static void task_announce(const char *dir) {
  char path[128];
  snprintf(path, sizeof path, "%s/started", dir);
  int fd = open(path, O_WRONLY);
  int pid = getpid();
  if (fd >= 0) {
    if (write(fd, &pid, sizeof pid) < 0) _exit(9);
    close(fd);
  }
}

static void task_gate(const char *dir) {
  char path[128], c;
  snprintf(path, sizeof path, "%s/gate", dir);
  int fd = open(path, O_RDONLY);
  if (fd >= 0) {
    if (read(fd, &c, 1) < 0) _exit(9);
    close(fd);
  }
}

/* arg: the folder name. Waits at the gate. */
static int t_gated(const void *arg, size_t len, void **result, size_t *rlen) {
  (void)result, (void)rlen;
  char dir[64];
  snprintf(dir, sizeof dir, "%.*s", (int)len, (const char *)arg);
  task_gate(dir);
  return 0;
}

/* arg: the folder name. Announces, then waits at the gate. */
static int t_announce_gated(const void *arg, size_t len, void **result, size_t *rlen) {
  (void)result, (void)rlen;
  char dir[64];
  snprintf(dir, sizeof dir, "%.*s", (int)len, (const char *)arg);
  task_announce(dir);
  task_gate(dir);
  return 0;
}

static void submit_ok(kiln_ppool *p, kiln_ptask_fn fn, const void *arg, size_t len,
                      kiln_future **f) {
  KT_CODE(kiln_ppool_submit(p, fn, arg, len, f), 0);
}

/* ---- errors ----------------------------------------------------------------------------------- */

/* POOL-03: a task's code and message reach the caller unwrapped (apply and future). */
TEST(POOL_03_error_reaches_caller) {
  kiln_ppool *p = make_pool(1, 0, false);
  int64_t a;
  kiln_bytes in = i64(&a, 7), out = {1, NULL};
  KT_CODE(kiln_ppool_apply(p, t_fail_odd, in.data, in.len, &out), KILN_EIO);
  KT_EQ(out.len, 0);
  kiln_future *f;
  submit_ok(p, t_fail_odd, in.data, in.len, &f);
  const char *msg = NULL;
  KT_CODE(kiln_future_error(f, -1, &msg), KILN_EIO);
  KT_STR_EQ(msg, "odd input 7");
  KT_CODE(kiln_future_result(f, 0, NULL), KILN_EIO);
  kiln_future_release(f);
  kiln_ppool_destroy(p);
}

/* A worker killed by SIGKILL in the middle of a task: that task fails with KILN_EKILLED naming the
 * signal, the pool starts a replacement and the next 20 tasks succeed. */
TEST(worker_sigkill_mid_task) {
  fifos_make();
  kiln_ppool *p = make_pool(1, 0, false);
  kiln_future *f;
  submit_ok(p, t_announce_gated, g_dir, strlen(g_dir), &f);
  int pid;
  started_read(&pid, 1);
  int pids[2];
  KT_EQ(kiln_ppool_pids(p, pids, 2), 1);
  KT_EQ(pids[0], pid);
  KT_EQ(kill(pid, SIGKILL), 0);
  const char *msg;
  KT_CODE(kiln_future_error(f, -1, &msg), KILN_EKILLED);
  KT_STR_CONTAINS(msg, "SIGKILL (signal 9)");
  char want[64];
  snprintf(want, sizeof want, "worker %d killed", pid);
  KT_STR_CONTAINS(msg, want);
  kiln_future_release(f);
  for (int i = 0; i < 20; i++) {
    kiln_bytes out;
    KT_CODE(kiln_ppool_apply(p, t_pid, NULL, 0, &out), 0);
    int wpid;
    memcpy(&wpid, out.data, sizeof wpid);
    KT_NE(wpid, pid);
    free(out.data);
  }
  kiln_ppool_destroy(p);
  fifos_remove();
}

/* A task that calls _exit(3): KILN_EEXITED with the status; the pool goes on. */
TEST(worker_exit_mid_task) {
  kiln_ppool *p = make_pool(1, 0, false);
  kiln_future *f;
  submit_ok(p, t_exit3, NULL, 0, &f);
  const char *msg;
  KT_CODE(kiln_future_error(f, -1, &msg), KILN_EEXITED);
  KT_STR_CONTAINS(msg, "exited with status 3");
  kiln_future_release(f);
  int64_t a;
  kiln_bytes in = i64(&a, 5), out;
  KT_CODE(kiln_ppool_apply(p, t_square, in.data, in.len, &out), 0);
  KT_EQ(get_i64(&out), 25);
  free(out.data);
  kiln_ppool_destroy(p);
}

/* A self-inflicted SIGKILL is the same: KILN_EKILLED. */
TEST(worker_raises_sigkill) {
  kiln_ppool *p = make_pool(2, 0, false);
  kiln_bytes out;
  KT_CODE(kiln_ppool_apply(p, t_kill_self, NULL, 0, &out), KILN_EKILLED);
  int pids[4];
  KT_CODE(kiln_ppool_apply(p, t_pid, NULL, 0, &out), 0);
  free(out.data);
  KT_EQ(kiln_ppool_pids(p, pids, 4), 2);
  kiln_ppool_destroy(p);
}

/* ---- map, starmap, imap ----------------------------------------------------------------------- */

enum { NMAP = 100 };

static void map_input(int64_t *store, kiln_bytes *args, size_t n) {
  for (size_t i = 0; i < n; i++) args[i] = i64(&store[i], (int64_t)i);
}

/* arg0 * 1000 + arg1 */
static int t_star(const kiln_bytes *args, size_t nargs, void **result, size_t *rlen) {
  if (nargs != 2) return kiln_ptask_fail(KILN_EINVAL, "nargs %zu", nargs);
  int64_t v = get_i64(&args[0]) * 1000 + get_i64(&args[1]);
  *result = malloc(sizeof v);
  memcpy(*result, &v, sizeof v);
  *rlen = sizeof v;
  return 0;
}

/* POOL-04: map, map_async, starmap and starmap_async keep input order for any chunksize. */
TEST(POOL_04_map_order_any_chunksize) {
  kiln_ppool *p = make_pool(2, 0, false);
  int64_t store[NMAP * 2];
  kiln_bytes args[NMAP * 2], res[NMAP];
  int errs[NMAP];
  map_input(store, args, NMAP);
  const size_t sizes[] = {1, 3, 7, 64, 100, 1000};
  for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
    KT_CODE(kiln_ppool_map(p, t_square, args, NMAP, sizes[s], res, errs), 0);
    for (int i = 0; i < NMAP; i++) {
      KT_EQ(errs[i], 0);
      KT_EQ(get_i64(&res[i]), (int64_t)i * i);
      free(res[i].data);
    }
    kiln_future *f;
    KT_CODE(kiln_ppool_map_async(p, t_square, args, NMAP, sizes[s], NULL, NULL, NULL, &f), 0);
    void *v;
    KT_CODE(kiln_future_result(f, -1, &v), 0);
    for (int i = 0; i < NMAP; i++) KT_EQ(get_i64(&((kiln_bytes *)v)[i]), (int64_t)i * i);
    kiln_future_release(f);
  }
  map_input(store, args, NMAP * 2); /* pairs (2i, 2i + 1) */
  KT_CODE(kiln_ppool_starmap(p, t_star, args, NMAP, 2, 7, res, NULL), 0);
  for (int i = 0; i < NMAP; i++) {
    KT_EQ(get_i64(&res[i]), 2000 * i + 2 * i + 1);
    free(res[i].data);
  }
  kiln_future *f;
  KT_CODE(kiln_ppool_starmap_async(p, t_star, args, NMAP, 2, 3, NULL, NULL, NULL, &f), 0);
  void *v;
  KT_CODE(kiln_future_result(f, -1, &v), 0);
  for (int i = 0; i < NMAP; i++) KT_EQ(get_i64(&((kiln_bytes *)v)[i]), 2000 * i + 2 * i + 1);
  kiln_future_release(f);
  kiln_ppool_destroy(p);
}

/* A failing item in map: its code at its position, the others' results, the first failure's
 * code returned; map_async fails with "item K: message". */
TEST(map_failing_items) {
  kiln_ppool *p = make_pool(2, 0, false);
  int64_t store[20];
  kiln_bytes args[20], res[20];
  int errs[20];
  map_input(store, args, 20);
  KT_CODE(kiln_ppool_map(p, t_fail_odd, args, 20, 3, res, errs), KILN_EIO);
  for (int i = 0; i < 20; i++) {
    KT_CODE(errs[i], i % 2 ? KILN_EIO : 0);
    if (i % 2 == 0) KT_EQ(get_i64(&res[i]), (int64_t)i * i);
    free(res[i].data);
  }
  kiln_future *f;
  KT_CODE(kiln_ppool_map_async(p, t_fail_odd, args + 3, 1, 1, NULL, NULL, NULL, &f), 0);
  const char *msg;
  KT_CODE(kiln_future_error(f, -1, &msg), KILN_EIO);
  KT_STR_EQ(msg, "item 0: odd input 3");
  kiln_future_release(f);
  kiln_ppool_destroy(p);
}

static atomic_int g_ok_calls, g_err_calls;
static kiln_event *g_cb_done;

static void cb_ok(kiln_future *f, void *arg) {
  (void)f;
  KT_PTR_EQ(arg, &g_ok_calls);
  atomic_fetch_add(&g_ok_calls, 1);
  kiln_event_set(g_cb_done);
}

static void cb_err(kiln_future *f, void *arg) {
  (void)arg;
  KT_TRUE(kiln_future_result(f, 0, NULL) < 0);
  atomic_fetch_add(&g_err_calls, 1);
  kiln_event_set(g_cb_done);
}

/* POOL-05: map_async runs callback once with the whole result on success, error_callback once on
 * a failure, never both. */
TEST(POOL_05_map_async_callbacks) {
  kiln_ppool *p = make_pool(2, 0, false);
  KT_CODE(kiln_event_create(&g_cb_done), 0);
  int64_t store[10];
  kiln_bytes args[10];
  map_input(store, args, 10);
  kiln_future *f;
  KT_CODE(kiln_ppool_map_async(p, t_square, args, 10, 2, cb_ok, cb_err, &g_ok_calls, &f), 0);
  KT_CODE(kiln_event_wait(g_cb_done, -1), 0);
  KT_CODE(kiln_future_result(f, -1, NULL), 0);
  kiln_future_release(f);
  kiln_event_clear(g_cb_done);
  KT_CODE(kiln_ppool_map_async(p, t_fail_odd, args, 10, 2, cb_ok, cb_err, &g_ok_calls, &f), 0);
  KT_CODE(kiln_event_wait(g_cb_done, -1), 0);
  KT_CODE(kiln_future_result(f, -1, NULL), KILN_EIO);
  kiln_future_release(f);
  kiln_ppool_close(p);
  kiln_ppool_join(p); /* every chunk has run: a late second callback would show now */
  KT_EQ(atomic_load(&g_ok_calls), 1);
  KT_EQ(atomic_load(&g_err_calls), 1);
  kiln_ppool_destroy(p);
  kiln_event_destroy(g_cb_done);
}

/* POOL-06: empty input: map, map_async (succeeds at once, callback runs), imap both orders; with
 * chunksize 1 too; nothing stalls. */
TEST(POOL_06_empty_input) {
  kiln_ppool *p = make_pool(1, 0, false);
  KT_CODE(kiln_event_create(&g_cb_done), 0);
  for (size_t cs = 1; cs <= 4; cs += 3) {
    KT_CODE(kiln_ppool_map(p, t_square, NULL, 0, cs, NULL, NULL), 0);
    kiln_future *f;
    KT_CODE(kiln_ppool_map_async(p, t_square, NULL, 0, cs, cb_ok, cb_err, &g_ok_calls, &f), 0);
    KT_TRUE(kiln_future_done(f));
    KT_CODE(kiln_future_result(f, 0, NULL), 0);
    kiln_future_release(f);
    for (int ord = 0; ord < 2; ord++) {
      kiln_pimap *it;
      KT_CODE(kiln_ppool_imap(p, t_square, NULL, 0, cs, ord, &it), 0);
      kiln_bytes r;
      size_t idx;
      KT_CODE(kiln_pimap_next(it, -1, &r, &idx), KILN_EEOF);
      kiln_pimap_destroy(it);
    }
  }
  KT_EQ(atomic_load(&g_ok_calls), 2);
  kiln_ppool_destroy(p);
  kiln_event_destroy(g_cb_done);
}

/* POOL-10: imap yields in order, then KILN_EEOF; chunksize 1 and 100 give the same sequence;
 * imap_unordered yields every item exactly once. A failing item is reported at its place and the
 * iteration goes on. */
TEST(POOL_10_imap) {
  kiln_ppool *p = make_pool(2, 0, false);
  int64_t store[NMAP];
  kiln_bytes args[NMAP];
  map_input(store, args, NMAP);
  const size_t sizes[] = {1, 100, 7};
  for (size_t s = 0; s < 3; s++) {
    for (int ord = 1; ord >= 0; ord--) {
      kiln_pimap *it;
      KT_CODE(kiln_ppool_imap(p, t_fail_odd, args, NMAP, sizes[s], ord, &it), 0);
      bool seen[NMAP] = {false};
      for (int i = 0; i < NMAP; i++) {
        kiln_bytes r;
        size_t idx;
        int rc = kiln_pimap_next(it, -1, &r, &idx);
        if (ord) KT_EQ(idx, i);
        KT_FALSE(seen[idx]);
        seen[idx] = true;
        if (idx % 2) {
          KT_CODE(rc, KILN_EIO);
          char want[32];
          snprintf(want, sizeof want, "odd input %zu", idx);
          KT_STR_EQ(kiln_pimap_message(it), want);
        } else {
          KT_CODE(rc, 0);
          KT_EQ(get_i64(&r), (int64_t)(idx * idx));
        }
        free(r.data);
      }
      kiln_bytes r;
      size_t idx;
      KT_CODE(kiln_pimap_next(it, 0, &r, &idx), KILN_EEOF);
      kiln_pimap_destroy(it);
    }
  }
  kiln_ppool_destroy(p);
}

/* arg: the folder name then an int64: waits at the gate when the number is 1. */
static int t_gate_if_one(const void *arg, size_t len, void **result, size_t *rlen) {
  int64_t v;
  memcpy(&v, (const char *)arg + len - sizeof v, sizeof v);
  if (v == 1) {
    char dir[64];
    snprintf(dir, sizeof dir, "%.*s", (int)(len - sizeof v), (const char *)arg);
    task_gate(dir);
  }
  *result = malloc(sizeof v);
  memcpy(*result, &v, sizeof v);
  *rlen = sizeof v;
  return 0;
}

/* POOL-10, lazily: next() returns a result as soon as it (and, ordered, its predecessors) is
 * there, while a later item still runs; ordered next waits for a slow predecessor. */
TEST(POOL_10_imap_lazy) {
  fifos_make();
  kiln_ppool *p = make_pool(2, 0, false);
  char buf[3][80];
  kiln_bytes args[3];
  for (int64_t i = 0; i < 3; i++) {
    size_t dl = strlen(g_dir);
    memcpy(buf[i], g_dir, dl);
    memcpy(buf[i] + dl, &i, sizeof i);
    args[i] = (kiln_bytes){dl + sizeof i, buf[i]};
  }
  kiln_pimap *it, *un;
  KT_CODE(kiln_ppool_imap(p, t_gate_if_one, args, 2, 1, true, &it), 0);
  kiln_bytes r;
  size_t idx;
  KT_CODE(kiln_pimap_next(it, -1, &r, &idx), 0);
  KT_EQ(idx, 0);
  free(r.data);
  double t0 = kt_now();
  KT_CODE(kiln_pimap_next(it, 0.1, &r, &idx), KILN_ETIMEDOUT); /* item 1 waits at the gate */
  KT_TIMED(kt_now() - t0, 0.1);
  gate_open(1);
  KT_CODE(kiln_pimap_next(it, -1, &r, &idx), 0);
  KT_EQ(idx, 1);
  free(r.data);
  KT_CODE(kiln_pimap_next(it, -1, &r, &idx), KILN_EEOF);
  kiln_pimap_destroy(it);
  /* unordered: item 2 comes out while item 1 still waits */
  KT_CODE(kiln_ppool_imap(p, t_gate_if_one, args + 1, 2, 1, false, &un), 0);
  KT_CODE(kiln_pimap_next(un, -1, &r, &idx), 0);
  KT_EQ(idx, 1); /* input position 1 of this call is item 2 */
  KT_EQ(get_i64(&r), 2);
  free(r.data);
  gate_open(1);
  KT_CODE(kiln_pimap_next(un, -1, &r, &idx), 0);
  KT_EQ(idx, 0);
  free(r.data);
  kiln_pimap_destroy(un);
  kiln_ppool_destroy(p);
  fifos_remove();
}

/* Dropping an iterator with results not taken loses nothing else: the items still run. */
TEST(imap_destroy_early) {
  kiln_ppool *p = make_pool(2, 0, false);
  int64_t store[NMAP];
  kiln_bytes args[NMAP];
  map_input(store, args, NMAP);
  kiln_pimap *it;
  KT_CODE(kiln_ppool_imap(p, t_square, args, NMAP, 3, true, &it), 0);
  kiln_bytes r;
  size_t idx;
  KT_CODE(kiln_pimap_next(it, -1, &r, &idx), 0);
  free(r.data);
  kiln_pimap_destroy(it);
  kiln_pimap_destroy(NULL);
  kiln_ppool_close(p);
  KT_CODE(kiln_ppool_join(p), 0);
  kiln_ppool_destroy(p);
}

/* ---- async results, callbacks, cancellation --------------------------------------------------- */

/* POOL-08: apply_async's future blocks until the task is done; a timed get gives KILN_ETIMEDOUT
 * after about the timeout while the task goes on running, and later returns its result. */
TEST(POOL_08_async_get_timeout) {
  fifos_make();
  kiln_ppool *p = make_pool(1, 0, false);
  kiln_future *f;
  KT_CODE(kiln_ppool_apply_async(p, t_gated, g_dir, strlen(g_dir), NULL, NULL, NULL, &f), 0);
  double t0 = kt_now();
  KT_CODE(kiln_future_result(f, 0.1, NULL), KILN_ETIMEDOUT);
  KT_TIMED(kt_now() - t0, 0.1);
  KT_FALSE(kiln_future_done(f));
  gate_open(1);
  KT_CODE(kiln_future_result(f, -1, NULL), 0);
  void *v;
  KT_CODE(kiln_future_result(f, 0, &v), 0);
  KT_EQ(((kiln_bytes *)v)->len, 0);
  kiln_future_release(f);
  kiln_ppool_destroy(p);
  fifos_remove();
}

/* POOL-09: a failing apply_async: error_callback gets the error (same code), get() returns it; 20
 * times, and the pool loses no worker. */
TEST(POOL_09_error_callback) {
  kiln_ppool *p = make_pool(2, 0, false);
  KT_CODE(kiln_event_create(&g_cb_done), 0);
  int64_t a;
  kiln_bytes in = i64(&a, 9);
  for (int i = 0; i < 20; i++) {
    kiln_event_clear(g_cb_done);
    kiln_future *f;
    KT_CODE(kiln_ppool_apply_async(p, t_fail_odd, in.data, in.len, cb_ok, cb_err, NULL, &f), 0);
    KT_CODE(kiln_event_wait(g_cb_done, -1), 0);
    KT_CODE(kiln_future_result(f, -1, NULL), KILN_EIO);
    kiln_future_release(f);
  }
  KT_EQ(atomic_load(&g_err_calls), 20);
  KT_EQ(atomic_load(&g_ok_calls), 0);
  int pids[4];
  KT_EQ(kiln_ppool_pids(p, pids, 4), 2);
  kiln_ppool_destroy(p);
  kiln_event_destroy(g_cb_done);
}

/* A future cancelled before a worker takes it is removed: its task never runs. */
TEST(cancel_before_taken) {
  fifos_make();
  kiln_ppool *p = make_pool(1, 0, false);
  kiln_future *a, *b;
  submit_ok(p, t_announce_gated, g_dir, strlen(g_dir), &a);
  int pid;
  started_read(&pid, 1); /* the worker is busy with a */
  submit_ok(p, t_announce_gated, g_dir, strlen(g_dir), &b);
  KT_TRUE(kiln_future_cancel(b));
  gate_open(1);
  KT_CODE(kiln_future_result(a, -1, NULL), 0);
  KT_CODE(kiln_future_result(b, -1, NULL), KILN_ECANCELLED);
  kiln_ppool_close(p);
  KT_CODE(kiln_ppool_join(p), 0); /* b would block at "started" forever had it run */
  kiln_future_release(a);
  kiln_future_release(b);
  kiln_ppool_destroy(p);
  fifos_remove();
}

static int th_task(void *arg, void **result) {
  *result = arg;
  return 0;
}

/* Process-pool futures are ordinary futures: kiln_wait and kiln_as_completed over a mix of them
 * and thread-pool futures. */
TEST(futures_mix_with_thread_pool) {
  kiln_ppool *p = make_pool(2, 0, false);
  kiln_pool *tp;
  kiln_pool_config tc;
  kiln_pool_config_default(&tc);
  tc.threads = 2;
  KT_CODE(kiln_pool_create(&tc, &tp), 0);
  enum { N = 8 };
  kiln_future *fs[2 * N];
  int64_t store[N];
  for (int i = 0; i < N; i++) {
    kiln_bytes a = i64(&store[i], i);
    submit_ok(p, t_square, a.data, a.len, &fs[i]);
    KT_CODE(kiln_submit(tp, th_task, &store[i], &fs[N + i]), 0);
  }
  size_t ndone;
  KT_CODE(kiln_wait(fs, 2 * N, KILN_ALL_COMPLETED, -1, &ndone), 0);
  KT_EQ(ndone, 2 * N);
  kiln_completion *c;
  KT_CODE(kiln_as_completed(fs, 2 * N, -1, &c), 0);
  int got = 0;
  kiln_future *f;
  while (kiln_completion_next(c, &f) == 0) {
    KT_CODE(kiln_future_result(f, 0, NULL), 0);
    kiln_future_release(f); /* the completion's reference, given to us */
    got++;
  }
  KT_EQ(got, 2 * N);
  kiln_completion_destroy(c);
  for (int i = 0; i < 2 * N; i++) kiln_future_release(fs[i]);
  kiln_pool_destroy(tp);
  kiln_ppool_destroy(p);
}

/* ---- close, terminate, join ------------------------------------------------------------------- */

/* POOL-15: join before close/terminate is KILN_ESTATE; apply, apply_async and map after close are
 * KILN_ESHUTDOWN. */
TEST(POOL_15_join_before_close_submit_after) {
  kiln_ppool *p = make_pool(1, 0, false);
  KT_CODE(kiln_ppool_join(p), KILN_ESTATE);
  KT_CODE(kiln_ppool_close(p), 0);
  kiln_future *f = (kiln_future *)p;
  KT_CODE(kiln_ppool_submit(p, t_empty, NULL, 0, &f), KILN_ESHUTDOWN);
  KT_TRUE(f == NULL);
  KT_CODE(kiln_ppool_apply_async(p, t_empty, NULL, 0, cb_ok, cb_err, NULL, NULL), KILN_ESHUTDOWN);
  KT_CODE(kiln_ppool_apply(p, t_empty, NULL, 0, NULL), KILN_ESHUTDOWN);
  int64_t a;
  kiln_bytes in = i64(&a, 1);
  KT_CODE(kiln_ppool_map(p, t_square, &in, 1, 1, NULL, NULL), KILN_ESHUTDOWN);
  KT_CODE(kiln_ppool_map_async(p, t_square, &in, 1, 1, cb_ok, cb_err, NULL, NULL), KILN_ESHUTDOWN);
  kiln_pimap *it;
  KT_CODE(kiln_ppool_imap(p, t_square, &in, 1, 1, true, &it), KILN_ESHUTDOWN);
  KT_CODE(kiln_ppool_join(p), 0);
  KT_CODE(kiln_ppool_join(p), 0);
  KT_EQ(atomic_load(&g_ok_calls) + atomic_load(&g_err_calls), 0); /* refused: no callback */
  kiln_ppool_destroy(p);
}

/* POOL-16: close: queued work still runs, then join returns. terminate: running tasks fail with
 * KILN_ECANCELLED, queued ones are cancelled. */
TEST(POOL_16_close_drains_terminate_stops) {
  kiln_ppool *p = make_pool(2, 0, false);
  enum { N = 200 };
  kiln_future *fs[N];
  int64_t store[N];
  for (int i = 0; i < N; i++) {
    kiln_bytes a = i64(&store[i], i);
    submit_ok(p, t_square, a.data, a.len, &fs[i]);
  }
  KT_CODE(kiln_ppool_close(p), 0);
  KT_CODE(kiln_ppool_join(p), 0);
  for (int i = 0; i < N; i++) {
    void *v;
    KT_CODE(kiln_future_result(fs[i], 0, &v), 0);
    KT_EQ(get_i64(v), (int64_t)i * i);
    kiln_future_release(fs[i]);
  }
  kiln_ppool_destroy(p);

  fifos_make();
  p = make_pool(1, 0, false);
  kiln_future *run, *queued;
  submit_ok(p, t_announce_gated, g_dir, strlen(g_dir), &run);
  int pid;
  started_read(&pid, 1);
  submit_ok(p, t_empty, NULL, 0, &queued);
  KT_CODE(kiln_ppool_terminate(p), 0);
  KT_CODE(kiln_ppool_join(p), 0);
  KT_CODE(kiln_future_result(run, -1, NULL), KILN_ECANCELLED);
  KT_CODE(kiln_future_result(queued, -1, NULL), KILN_ECANCELLED);
  KT_TRUE(kiln_future_cancelled(queued));
  KT_EQ(kill(pid, 0), -1); /* the worker is gone (and reaped) */
  kiln_future_release(run);
  kiln_future_release(queued);
  kiln_ppool_destroy(p);
  fifos_remove();
}

/* POOL-12: terminate with thousands of tasks pending returns quickly, and join after it. */
TEST(POOL_12_terminate_many_pending) {
  fifos_make();
  kiln_ppool *p = make_pool(2, 0, false);
  enum { N = 3000 };
  kiln_future **fs = malloc(N * sizeof *fs);
  for (int i = 0; i < N; i++) submit_ok(p, t_gated, g_dir, strlen(g_dir), &fs[i]);
  double t0 = kt_now();
  KT_CODE(kiln_ppool_terminate(p), 0);
  KT_CODE(kiln_ppool_join(p), 0);
  double took = kt_now() - t0;
  if (took > 2.0) KT_FAIL("terminate + join took %.3fs", took);
  for (int i = 0; i < N; i++) {
    KT_CODE(kiln_future_result(fs[i], 0, NULL), KILN_ECANCELLED);
    kiln_future_release(fs[i]);
  }
  free(fs);
  kiln_ppool_destroy(p);
  fifos_remove();
}

/* Destroying a pool that is still running terminates it (the end of Python's `with Pool()`). */
TEST(pool_destroy_terminates) {
  fifos_make();
  kiln_ppool *p = make_pool(1, 0, false);
  kiln_future *f;
  submit_ok(p, t_announce_gated, g_dir, strlen(g_dir), &f);
  int pid;
  started_read(&pid, 1);
  kiln_ppool_destroy(p);
  KT_CODE(kiln_future_result(f, -1, NULL), KILN_ECANCELLED);
  kiln_future_release(f);
  KT_EQ(kill(pid, 0), -1);
  kiln_ppool_destroy(NULL);
  fifos_remove();
}

/* ---- worker life ------------------------------------------------------------------------------ */

/* PPE-01: with break_on_worker_death, a worker dying breaks the pool: its task and every pending
 * one fail with KILN_EBROKEN, later submits are KILN_EBROKEN; also when the crash comes after
 * close, without deadlock. */
TEST(PPE_01_break_on_worker_death) {
  fifos_make();
  kiln_ppool *p = make_pool(2, 0, true);
  kiln_future *gated, *pend[10], *dies;
  submit_ok(p, t_announce_gated, g_dir, strlen(g_dir), &gated);
  int pid;
  started_read(&pid, 1);
  submit_ok(p, t_kill_self, NULL, 0, &dies);
  /* the other worker may die, and break the pool, before these are all in: a submit after that
   * is refused with KILN_EBROKEN */
  for (int i = 0; i < 10; i++) {
    int rc = kiln_ppool_submit(p, t_empty, NULL, 0, &pend[i]);
    if (rc != 0) KT_CODE(rc, KILN_EBROKEN);
  }
  const char *msg;
  KT_CODE(kiln_future_error(dies, -1, &msg), KILN_EBROKEN);
  KT_STR_CONTAINS(msg, "SIGKILL");
  KT_CODE(kiln_future_result(gated, -1, NULL), KILN_EBROKEN);
  for (int i = 0; i < 10 && pend[i]; i++) {
    int rc = kiln_future_result(pend[i], -1, NULL);
    /* those a worker finished before the crash succeeded; none is left hanging */
    if (rc != 0) KT_CODE(rc, KILN_EBROKEN);
    kiln_future_release(pend[i]);
  }
  kiln_future *later;
  KT_CODE(kiln_ppool_submit(p, t_empty, NULL, 0, &later), KILN_EBROKEN);
  kiln_future_release(gated);
  kiln_future_release(dies);
  kiln_ppool_destroy(p);

  /* the crash after close */
  p = make_pool(1, 0, true);
  submit_ok(p, t_announce_gated, g_dir, strlen(g_dir), &gated);
  started_read(&pid, 1);
  submit_ok(p, t_empty, NULL, 0, &pend[0]);
  KT_CODE(kiln_ppool_close(p), 0);
  KT_EQ(kill(pid, SIGKILL), 0);
  KT_CODE(kiln_ppool_join(p), 0);
  KT_CODE(kiln_future_result(gated, -1, NULL), KILN_EBROKEN);
  KT_CODE(kiln_future_result(pend[0], -1, NULL), KILN_EBROKEN);
  kiln_future_release(gated);
  kiln_future_release(pend[0]);
  kiln_ppool_destroy(p);
  fifos_remove();
}

/* PPE-02: maxtasksperchild N: a worker runs N tasks, then a new one (new pid) takes its place and
 * the pool keeps its size; closing early still completes every task. */
TEST(PPE_02_maxtasksperchild) {
  kiln_ppool *p = make_pool(1, 2, false);
  int seen[6];
  for (int i = 0; i < 6; i++) {
    kiln_bytes out;
    KT_CODE(kiln_ppool_apply(p, t_pid, NULL, 0, &out), 0);
    memcpy(&seen[i], out.data, sizeof seen[i]);
    free(out.data);
  }
  for (int i = 0; i < 6; i += 2) {
    KT_EQ(seen[i], seen[i + 1]);
    if (i) KT_NE(seen[i], seen[i - 1]);
  }
  kiln_ppool_destroy(p);

  p = make_pool(2, 1, false);
  enum { N = 30 };
  kiln_future *fs[N];
  for (int i = 0; i < N; i++) submit_ok(p, t_pid, NULL, 0, &fs[i]);
  KT_CODE(kiln_ppool_close(p), 0);
  KT_CODE(kiln_ppool_join(p), 0);
  for (int i = 0; i < N; i++) {
    KT_CODE(kiln_future_result(fs[i], 0, NULL), 0);
    kiln_future_release(fs[i]);
  }
  int pids[4];
  KT_EQ(kiln_ppool_pids(p, pids, 4), 0); /* joined: no worker left */
  kiln_ppool_destroy(p);
}

/* POOL-18: maxtasksperchild is an unsigned count; 0 means never replace (Python's None): the same
 * workers serve every task. */
TEST(POOL_18_maxtasksperchild_zero_unlimited) {
  kiln_ppool *p = make_pool(1, 0, false);
  int first = 0;
  for (int i = 0; i < 50; i++) {
    kiln_bytes out;
    KT_CODE(kiln_ppool_apply(p, t_pid, NULL, 0, &out), 0);
    int pid;
    memcpy(&pid, out.data, sizeof pid);
    free(out.data);
    if (i == 0) first = pid;
    KT_EQ(pid, first);
  }
  kiln_ppool_destroy(p);
}

/* The initializer appends the worker's pid to the file named by initarg. */
static void init_record(const void *arg, size_t len) {
  char path[128];
  snprintf(path, sizeof path, "%.*s", (int)len, (const char *)arg);
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0600);
  int pid = getpid();
  if (fd < 0 || write(fd, &pid, sizeof pid) != sizeof pid) _exit(7);
  close(fd);
}

static void check_initializer(int n) {
  char path[128];
  snprintf(path, sizeof path, "%s/init", g_dir);
  kiln_ppool_config cfg;
  kiln_ppool_config_default(&cfg);
  cfg.processes = n;
  cfg.initializer = init_record;
  cfg.initarg = path;
  cfg.initarg_len = strlen(path);
  kiln_ppool *p;
  KT_CODE(kiln_ppool_create(&cfg, &p), 0);
  int pids[4];
  KT_EQ(kiln_ppool_pids(p, pids, 4), n);
  for (int i = 0; i < 10 * n; i++) KT_CODE(kiln_ppool_apply(p, t_empty, NULL, 0, NULL), 0);
  kiln_ppool_close(p);
  KT_CODE(kiln_ppool_join(p), 0); /* every worker has ended: its initializer has run */
  kiln_ppool_destroy(p);
  int rec[8];
  int fd = open(path, O_RDONLY);
  KT_TRUE(fd >= 0);
  ssize_t got = read(fd, rec, sizeof rec);
  close(fd);
  unlink(path);
  KT_EQ(got, n * (ssize_t)sizeof(int));
  for (int i = 0; i < n; i++) {
    int hits = 0;
    for (int k = 0; k < n; k++) hits += rec[k] == pids[i];
    KT_EQ(hits, 1);
  }
}

/* POOL-19: the initializer runs once in each worker at start (one worker: one call). */
TEST(POOL_19_initializer_once_per_worker) {
  KT_CODE(kiln_forkserver_start(), 0);
  fifos_make();
  check_initializer(1);
  check_initializer(3);
  fifos_remove();
}

/* KILN_START_FORK: the workers are forks of this (still single-threaded) program. */
TEST(start_method_fork) {
  kiln_ppool_config cfg;
  kiln_ppool_config_default(&cfg);
  cfg.processes = 2;
  cfg.start = KILN_START_FORK;
  kiln_ppool *p;
  KT_CODE(kiln_ppool_create(&cfg, &p), 0);
  int64_t a;
  kiln_bytes in = i64(&a, 11), out;
  KT_CODE(kiln_ppool_apply(p, t_square, in.data, in.len, &out), 0);
  KT_EQ(get_i64(&out), 121);
  free(out.data);
  kiln_ppool_destroy(p);
}

/* KILN_START_FORKSERVER without a fork server: KILN_ESTATE. */
TEST(forkserver_required) {
  kiln_ppool_config cfg;
  kiln_ppool_config_default(&cfg);
  cfg.processes = 1;
  kiln_ppool *p;
  KT_CODE(kiln_ppool_create(&cfg, &p), KILN_ESTATE);
}

/* ---- leaks ------------------------------------------------------------------------------------ */

static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

/* 1000 tasks (and two worker deaths) leave no descriptor behind, nor does the pool once
 * destroyed; its workers are gone. */
TEST(no_fd_or_process_leak) {
  KT_CODE(kiln_forkserver_start(), 0);
  int before = count_fds();
  kiln_ppool *p = make_pool(2, 100, false);
  int during = count_fds();
  kiln_future *fs[100];
  for (int round = 0; round < 10; round++) {
    for (int i = 0; i < 100; i++) submit_ok(p, t_empty, NULL, 0, &fs[i]);
    for (int i = 0; i < 100; i++) {
      KT_CODE(kiln_future_result(fs[i], -1, NULL), 0);
      kiln_future_release(fs[i]);
    }
  }
  KT_CODE(kiln_ppool_apply(p, t_kill_self, NULL, 0, NULL), KILN_EKILLED);
  KT_CODE(kiln_ppool_apply(p, t_exit3, NULL, 0, NULL), KILN_EEXITED);
  KT_CODE(kiln_ppool_apply(p, t_empty, NULL, 0, NULL), 0);
  /* a worker that has just run its 100th task (or died) is replaced by its slot's thread after
   * the task's result is out: the counts may be off for that moment, the descriptors and the
   * workers alike (bounded wait, no leak lasts) */
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int pids[2], n, np;
  while ((n = count_fds()) != during || (np = kiln_ppool_pids(p, pids, 2)) != 2) {
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (t1.tv_sec - t0.tv_sec > 10) {
      KT_EQ(n, during);
      KT_EQ(kiln_ppool_pids(p, pids, 2), 2);
    }
    sched_yield();
  }
  KT_EQ(count_fds(), during);
  kiln_ppool_destroy(p);
  KT_EQ(count_fds(), before);
  for (int i = 0; i < 2; i++) KT_EQ(kill(pids[i], 0), -1);
}

/* ---- concurrency and deaths in the middle of a map -------------------------------------------- */

/* Squares, except that the worker kills itself on 5. */
static int t_square_die5(const void *arg, size_t len, void **result, size_t *rlen) {
  int64_t v;
  memcpy(&v, arg, sizeof v);
  if (v == 5) raise(SIGKILL);
  return t_square(arg, len, result, rlen);
}

/* A worker dying in the middle of a map with several chunks in flight: only the chunk it died in
 * fails (KILN_EKILLED, every item of it); the chunks sent to it but not started run on its
 * replacement. */
TEST(map_survives_worker_death) {
  kiln_ppool *p = make_pool(2, 0, false);
  enum { N = 200 };
  int64_t store[N];
  kiln_bytes args[N], res[N];
  int errs[N];
  map_input(store, args, N);
  for (size_t cs = 1; cs <= 4; cs += 3) {
    KT_CODE(kiln_ppool_map(p, t_square_die5, args, N, cs, res, errs), KILN_EKILLED);
    for (int i = 0; i < N; i++) {
      if ((size_t)i / cs == 5 / cs) { /* a chunk is one job: it fails whole */
        KT_CODE(errs[i], KILN_EKILLED);
      } else {
        KT_CODE(errs[i], 0);
        KT_EQ(get_i64(&res[i]), (int64_t)i * i);
      }
      free(res[i].data);
    }
  }
  int pids[4];
  KT_EQ(kiln_ppool_pids(p, pids, 4), 2);
  kiln_ppool_destroy(p);
}

static kiln_ppool *g_pool;

static void *submitter(void *arg) {
  (void)arg;
  enum { N = 300 };
  kiln_future *fs[N];
  int64_t store[N];
  for (int i = 0; i < N; i++) {
    kiln_bytes a = i64(&store[i], i);
    if (kiln_ppool_submit(g_pool, t_square, a.data, a.len, &fs[i]) != 0) return (void *)1;
  }
  intptr_t bad = 0;
  for (int i = 0; i < N; i++) {
    void *v;
    if (kiln_future_result(fs[i], -1, &v) != 0 || get_i64(v) != (int64_t)i * i) bad = 1;
    kiln_future_release(fs[i]);
  }
  return (void *)bad;
}

/* Submits from four threads at once: every result right. */
TEST(submit_from_threads) {
  g_pool = make_pool(2, 7, false);
  pthread_t th[4];
  for (int i = 0; i < 4; i++) KT_EQ(pthread_create(&th[i], NULL, submitter, NULL), 0);
  for (int i = 0; i < 4; i++) {
    void *bad;
    pthread_join(th[i], &bad);
    KT_TRUE(bad == NULL);
  }
  kiln_ppool_destroy(g_pool);
}

/* A worker killed from outside while idle is replaced when work comes; no task is blamed. */
TEST(idle_worker_death_blames_no_task) {
  kiln_ppool *p = make_pool(1, 0, false);
  kiln_bytes out;
  KT_CODE(kiln_ppool_apply(p, t_pid, NULL, 0, &out), 0);
  int pid;
  memcpy(&pid, out.data, sizeof pid);
  free(out.data);
  int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
  KT_TRUE(pfd >= 0);
  KT_EQ(kill(pid, SIGKILL), 0);
  struct pollfd pf = {.fd = pfd, .events = POLLIN};
  KT_EQ(poll(&pf, 1, -1), 1); /* it has ended */
  close(pfd);
  KT_CODE(kiln_ppool_apply(p, t_pid, NULL, 0, &out), 0);
  int again;
  memcpy(&again, out.data, sizeof again);
  free(out.data);
  KT_NE(again, pid);
  kiln_ppool_destroy(p);
}

/* arg: an int64 size: returns that many bytes, byte i = i * 7. */
static int t_bytes(const void *arg, size_t len, void **result, size_t *rlen) {
  (void)len;
  int64_t n;
  memcpy(&n, arg, sizeof n);
  uint8_t *b = malloc((size_t)n);
  for (int64_t i = 0; i < n; i++) b[i] = (uint8_t)(i * 7);
  *result = b;
  *rlen = (size_t)n;
  return 0;
}

/* Results of 0 bytes to 24 MiB, and arguments of 20 MiB, cross whole. */
TEST(large_arguments_and_results) {
  kiln_ppool *p = make_pool(2, 0, false);
  const int64_t sizes[] = {0, 1, 4095, 70000, 24 << 20, 3};
  kiln_future *fs[6];
  int64_t store[6];
  for (int i = 0; i < 6; i++) {
    kiln_bytes a = i64(&store[i], sizes[i]);
    submit_ok(p, t_bytes, a.data, a.len, &fs[i]);
  }
  for (int i = 0; i < 6; i++) {
    void *v;
    KT_CODE(kiln_future_result(fs[i], -1, &v), 0);
    kiln_bytes *b = v;
    KT_EQ(b->len, sizes[i]);
    for (int64_t k = 0; k < sizes[i]; k += 4093) KT_EQ(((uint8_t *)b->data)[k], (uint8_t)(k * 7));
    kiln_future_release(fs[i]);
  }
  size_t big = 20 << 20;
  uint8_t *arg = malloc(big);
  memset(arg, 0x5a, big);
  kiln_bytes out;
  KT_CODE(kiln_ppool_apply(p, t_pid, arg, big, &out), 0);
  free(out.data);
  free(arg);
  kiln_ppool_destroy(p);
}

/* ---- replies already sent when a worker dies ------------------------------------------------- */

static int g_gate[2], g_entered[2], g_dead_pidfd;

/* The first job's callback: tells the test it runs (so the slot thread is busy here), then waits
 * until the test has queued the next jobs, so they go out as one batch. */
static void cb_hold_slot(kiln_future *f, void *arg) {
  (void)f, (void)arg;
  char c = 1;
  KT_EQ(write(g_entered[1], &c, 1), 1);
  KT_EQ(read(g_gate[0], &c, 1), 1);
}

/* Runs on the slot thread between two replies: waits until the worker has died. */
static void cb_wait_worker_dead(kiln_future *f, void *arg) {
  (void)f, (void)arg;
  struct pollfd pf = {.fd = g_dead_pidfd, .events = POLLIN};
  KT_EQ(poll(&pf, 1, -1), 1);
}

/* A worker answers jobs, then dies in a later one of the same batch, while the slot is still
 * completing the earlier replies and then sends the next batch (which fails: the worker is gone).
 * The replies the worker sent before it died still count: only the job it died in fails, and the
 * jobs it answered are neither blamed nor run again. */
TEST(replies_before_death_survive_failed_send) {
  kiln_ppool *p = make_pool(1, 0, false);
  int pid;
  KT_EQ(kiln_ppool_pids(p, &pid, 1), 1);
  g_dead_pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  KT_TRUE(g_dead_pidfd >= 0);
  KT_EQ(pipe(g_gate), 0);
  KT_EQ(pipe(g_entered), 0);
  kiln_future *hold;
  KT_CODE(kiln_ppool_apply_async(p, t_empty, NULL, 0, cb_hold_slot, NULL, NULL, &hold), 0);
  char c;
  KT_EQ(read(g_entered[0], &c, 1), 1);
  /* 100 queued at once: the slot sends 64 of them, and the rest once 32 are answered, that is
   * right after job 31's callback */
  enum { N = 100, DIES = 39, WAITS = 31 };
  kiln_future *fs[N];
  int64_t store[N];
  for (int i = 0; i < N; i++) {
    kiln_bytes a = i64(&store[i], i);
    KT_CODE(kiln_ppool_apply_async(p, i == DIES ? t_kill_self : t_square, a.data, a.len,
                                   i == WAITS ? cb_wait_worker_dead : NULL, NULL, NULL, &fs[i]),
            0);
  }
  c = 1;
  KT_EQ(write(g_gate[1], &c, 1), 1);
  for (int i = 0; i < N; i++) {
    void *v;
    int rc = kiln_future_result(fs[i], -1, &v);
    if (i == DIES) {
      KT_CODE(rc, KILN_EKILLED);
    } else {
      KT_CODE(rc, 0);
      KT_EQ(get_i64(v), (int64_t)i * i);
    }
    kiln_future_release(fs[i]);
  }
  KT_CODE(kiln_future_result(hold, -1, NULL), 0);
  kiln_future_release(hold);
  kiln_ppool_destroy(p);
  close(g_dead_pidfd);
  close(g_gate[0]), close(g_gate[1]), close(g_entered[0]), close(g_entered[1]);
}

/* A worker sends a large result while the slot sends it a large next batch: neither side may
 * wait for the other to read first. */
TEST(large_result_while_large_batch_is_sent) {
  kiln_ppool *p = make_pool(1, 0, false);
  KT_EQ(pipe(g_gate), 0);
  KT_EQ(pipe(g_entered), 0);
  char c = 1;
  kiln_future *hold, *first, *big_result, *big_arg;
  KT_CODE(kiln_ppool_apply_async(p, t_empty, NULL, 0, cb_hold_slot, NULL, NULL, &hold), 0);
  KT_EQ(read(g_entered[0], &c, 1), 1);
  /* queued together: one batch of two, the second answering 8 MiB */
  int64_t n;
  kiln_bytes a = i64(&n, 8 << 20);
  KT_CODE(kiln_ppool_apply_async(p, t_empty, NULL, 0, cb_hold_slot, NULL, NULL, &first), 0);
  submit_ok(p, t_bytes, a.data, a.len, &big_result);
  KT_EQ(write(g_gate[1], &c, 1), 1);
  /* the slot completes the first job of that batch while the worker runs the second; the next
   * batch, with an 8 MiB argument, goes out while the worker sends its 8 MiB result */
  KT_EQ(read(g_entered[0], &c, 1), 1);
  size_t big = 8 << 20;
  uint8_t *arg = calloc(1, big);
  submit_ok(p, t_pid, arg, big, &big_arg);
  KT_EQ(write(g_gate[1], &c, 1), 1);
  void *v;
  KT_CODE(kiln_future_result(big_result, 20, &v), 0);
  KT_EQ(((kiln_bytes *)v)->len, (size_t)8 << 20);
  KT_CODE(kiln_future_result(big_arg, 20, &v), 0);
  KT_CODE(kiln_future_result(first, 20, NULL), 0);
  KT_CODE(kiln_future_result(hold, 20, NULL), 0);
  kiln_future_release(hold), kiln_future_release(first);
  kiln_future_release(big_result), kiln_future_release(big_arg);
  free(arg);
  kiln_ppool_destroy(p);
  close(g_gate[0]), close(g_gate[1]), close(g_entered[0]), close(g_entered[1]);
}

/* Returns 7 (neither 0 nor a KILN_E* code) after setting a result. */
static int t_positive(const void *arg, size_t len, void **result, size_t *rlen) {
  (void)arg, (void)len;
  *result = malloc(4);
  memcpy(*result, "abcd", 4);
  *rlen = 4;
  return 7;
}

/* A task returning a positive number has not succeeded (as a thread task's non-zero code): it
 * fails with KILN_EINVAL, whose message names the number; its result is dropped. */
TEST(task_returning_positive_fails) {
  kiln_ppool *p = make_pool(1, 0, false);
  kiln_future *f;
  submit_ok(p, t_positive, NULL, 0, &f);
  const char *msg;
  KT_CODE(kiln_future_error(f, -1, &msg), KILN_EINVAL);
  KT_STR_CONTAINS(msg, "returned 7");
  kiln_future_release(f);
  kiln_bytes out = {1, NULL};
  KT_CODE(kiln_ppool_apply(p, t_positive, NULL, 0, &out), KILN_EINVAL);
  KT_TRUE(out.data == NULL && out.len == 0);
  kiln_ppool_destroy(p);
}

/* arg: the folder name. Forks a child that keeps the worker's descriptors (its connection to the
 * pool among them) until the test opens the gate, then dies. */
static int t_fork_then_die(const void *arg, size_t len, void **result, size_t *rlen) {
  (void)result, (void)rlen;
  char dir[64];
  snprintf(dir, sizeof dir, "%.*s", (int)len, (const char *)arg);
  if (fork() == 0) {
    task_announce(dir);
    task_gate(dir);
    _exit(0);
  }
  raise(SIGKILL);
  return 0;
}

/* A worker's death is seen when the worker ends, even while a process it forked still holds its
 * end of the connection (so that no end of stream comes). */
TEST(worker_death_seen_while_its_child_holds_the_connection) {
  fifos_make();
  kiln_ppool *p = make_pool(1, 0, false);
  kiln_future *f;
  submit_ok(p, t_fork_then_die, g_dir, strlen(g_dir), &f);
  int gpid;
  started_read(&gpid, 1);
  int pfd = (int)syscall(SYS_pidfd_open, gpid, 0);
  KT_TRUE(pfd >= 0);
  const char *msg;
  int rc = kiln_future_error(f, 5, &msg);
  gate_open(1); /* the grandchild ends, whatever happened */
  struct pollfd pf = {.fd = pfd, .events = POLLIN};
  KT_EQ(poll(&pf, 1, -1), 1);
  close(pfd);
  KT_CODE(rc, KILN_EKILLED);
  KT_CODE(kiln_ppool_apply(p, t_empty, NULL, 0, NULL), 0);
  kiln_future_release(f);
  kiln_ppool_destroy(p);
  fifos_remove();
}

/* PPE-02 with break_on_worker_death: a worker that ends after maxtasksperchild tasks is replaced,
 * never taken for a crash (the pool stays whole), also when close comes early. */
TEST(PPE_02_maxtasksperchild_does_not_break) {
  kiln_ppool *p = make_pool(2, 2, true);
  enum { N = 40 };
  kiln_future *fs[N];
  for (int i = 0; i < N; i++) submit_ok(p, t_pid, NULL, 0, &fs[i]);
  int pids[N], distinct = 0;
  for (int i = 0; i < N; i++) {
    void *v;
    KT_CODE(kiln_future_result(fs[i], -1, &v), 0);
    memcpy(&pids[i], ((kiln_bytes *)v)->data, sizeof pids[i]);
    kiln_future_release(fs[i]);
    bool seen = false;
    for (int k = 0; k < i; k++) seen |= pids[k] == pids[i];
    distinct += !seen;
  }
  KT_TRUE(distinct >= N / 2);
  for (int i = 0; i < N; i++) submit_ok(p, t_empty, NULL, 0, &fs[i]);
  KT_CODE(kiln_ppool_close(p), 0);
  KT_CODE(kiln_ppool_join(p), 0);
  for (int i = 0; i < N; i++) {
    KT_CODE(kiln_future_result(fs[i], -1, NULL), 0);
    kiln_future_release(fs[i]);
  }
  kiln_ppool_destroy(p);
}

/* A replacement worker that cannot start (the fork server was stopped) breaks the pool: the job
 * the worker died in fails, later submits are refused, and nothing is left behind (descriptors,
 * processes). */
TEST(replacement_start_failure_breaks_without_leaks) {
  int before = count_fds();
  kiln_ppool *p = make_pool(2, 0, false);
  int pids[2];
  KT_EQ(kiln_ppool_pids(p, pids, 2), 2);
  kiln_forkserver_stop();
  KT_CODE(kiln_ppool_apply(p, t_kill_self, NULL, 0, NULL), KILN_EKILLED);
  kiln_future *f;
  KT_CODE(kiln_ppool_submit(p, t_empty, NULL, 0, &f), KILN_EBROKEN);
  kiln_ppool_destroy(p);
  /* the stopped fork server's pidfd stays with kiln until that server has ended (forkserver.c
   * sweeps it at a later start or stop) */
  KT_EQ(count_fds(), before + 1);
  for (int i = 0; i < 2; i++) KT_EQ(kill(pids[i], 0), -1);
}

/* POOL-15 for empty inputs: map, map_async, starmap and imap over no items are refused too once
 * the pool is closed (or broken), as Python checks the pool before looking at the input; no
 * callback runs. */
TEST(POOL_15_empty_input_after_close) {
  kiln_ppool *p = make_pool(1, 0, false);
  KT_CODE(kiln_ppool_close(p), 0);
  kiln_bytes none = {0, NULL};
  KT_CODE(kiln_ppool_map(p, t_square, &none, 0, 1, NULL, NULL), KILN_ESHUTDOWN);
  kiln_future *f = (kiln_future *)p;
  KT_CODE(kiln_ppool_map_async(p, t_square, &none, 0, 1, cb_ok, cb_err, NULL, &f), KILN_ESHUTDOWN);
  KT_TRUE(f == NULL);
  KT_CODE(kiln_ppool_starmap(p, t_star, &none, 0, 2, 1, NULL, NULL), KILN_ESHUTDOWN);
  kiln_pimap *it = (kiln_pimap *)p;
  KT_CODE(kiln_ppool_imap(p, t_square, &none, 0, 1, false, &it), KILN_ESHUTDOWN);
  KT_TRUE(it == NULL);
  KT_CODE(kiln_ppool_join(p), 0);
  KT_EQ(atomic_load(&g_ok_calls) + atomic_load(&g_err_calls), 0);
  kiln_ppool_destroy(p);
}

/* An argument with a length but no data is refused (KILN_EINVAL) by every form, never read. */
TEST(argument_without_data_is_einval) {
  kiln_ppool *p = make_pool(1, 0, false);
  int64_t a;
  kiln_bytes args[3] = {i64(&a, 2), {8, NULL}, i64(&a, 2)};
  KT_CODE(kiln_ppool_map(p, t_square, args, 3, 1, NULL, NULL), KILN_EINVAL);
  kiln_future *f = (kiln_future *)p;
  KT_CODE(kiln_ppool_map_async(p, t_square, args, 3, 2, cb_ok, cb_err, NULL, &f), KILN_EINVAL);
  KT_TRUE(f == NULL);
  KT_CODE(kiln_ppool_starmap(p, t_star, args, 1, 3, 1, NULL, NULL), KILN_EINVAL);
  kiln_pimap *it = (kiln_pimap *)p;
  KT_CODE(kiln_ppool_imap(p, t_square, args, 3, 3, true, &it), KILN_EINVAL);
  KT_TRUE(it == NULL);
  KT_EQ(atomic_load(&g_ok_calls) + atomic_load(&g_err_calls), 0);
  KT_CODE(kiln_ppool_map(p, t_square, args, 1, 1, NULL, NULL), 0); /* the pool goes on */
  kiln_ppool_destroy(p);
}
