/* bench_proc.c: kiln-bench-proc, the process pool and channels between processes against
 * Python's multiprocessing, measured in the same run.
 *
 * 1. Pool round trips: TASKS empty tasks through apply_async on a pool of 2 worker processes, all
 *    submitted, then all waited for (kiln_ppool_apply_async + kiln_future_result against
 *    multiprocessing.Pool(2).apply_async(f) + .get()). Pool start-up is outside the clock on both
 *    sides: each round starts a pool, runs a tenth as many tasks the same way to warm it, then
 *    starts the clock.
 * 2. Messages through a pipe to a child process: MSGS messages of 64 B, then of 64 KiB, sent by
 *    the parent and received by the child, which answers one message at the end (kiln_channel
 *    handed to a kiln process against multiprocessing.Pipe() with send_bytes / recv_bytes).
 *    Then the same without a new buffer per message on either side: the child reads each message
 *    in place with kiln_channel_recv_view + kiln_channel_release, against recv_bytes_into a
 *    bytearray made once ("in place" rows).
 *
 * 3. Process start + join: STARTS children that return at once, each started and joined before
 *    the next, with the fork server and with fork (kiln_process_start + kiln_process_join +
 *    kiln_process_destroy against multiprocessing's Process.start() + join() in a 'forkserver'
 *    and a 'fork' context). A tenth as many starts run first, off the clock, on both sides: they
 *    start Python's fork server (kiln's runs from the beginning of main). Python's child runs
 *    `int` (a target `python3 -c` can hand its fork server: a function of __main__ cannot be
 *    found there, as that __main__ has no file to import).
 * 4. The manager, one client over the default Unix socket: MGR_OPS round trips on a dict (a set
 *    then a get of the same key, over 100 keys, 16 B values), then MGR_OPS on a queue (a put then
 *    a get of 16 B), against proxies of multiprocessing.Manager().dict() and .Queue() holding the
 *    same bytes objects; then CONNECTS connections, each opened, authenticated both ways, used for
 *    one request and closed (kiln_manager_connect + kiln_mdict_len + kiln_mclient_close against
 *    BaseManager(address, authkey).connect(), which sends its 'dummy' request and drops the
 *    connection). Server start-up and a twentieth of the round trips run first, off the clock.
 *
 * Python runs as `python3 -c` through popen and prints its own timing, so its interpreter start
 * is not counted. Rounds alternate kiln and Python; the median and the spread (min..max) of each
 * are printed, the ratio of the medians, and the median and spread of the rounds' own ratios.
 *
 * Usage: kiln-bench-proc [--only=SECTION,...] [rounds] [python]   (defaults: every section, 5
 * rounds, python3); the sections are pool, pipe, start and manager. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_clock.h"
#include "kiln/proc.h"

enum { TASKS = 20000, WARM = TASKS / 10, SMALL = 64, BIG = 64 << 10, SMALL_MSGS = 200000, BIG_MSGS = 20000 };
enum { STARTS = 200, MGR_OPS = 20000, CONNECTS = 200, MGR_KEYS = 100, MGR_VAL = 16 };
enum { MAX_ROUNDS = 32 };

/* Runs a Python snippet that prints n numbers (seconds) into t[0..n): 0, or -1 on failure. */
static int run_python_n(const char *python, const char *code, long arg, double *t, int n) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "%s -c '%s' %ld", python, code, arg);
  FILE *f = popen(cmd, "r");
  if (!f) return -1;
  int bad = 0;
  for (int i = 0; i < n; i++) bad |= fscanf(f, "%lf", &t[i]) != 1;
  bad |= pclose(f) != 0;
  return bad ? -1 : 0;
}

/* Runs a Python snippet that prints one number (seconds); -1 on failure. */
static double run_python(const char *python, const char *code, long arg) {
  double t;
  return run_python_n(python, code, arg, &t, 1) ? -1 : t;
}

/* ---- pool round trips ------------------------------------------------------------------------- */

static int t_empty(const void *arg, size_t len, void **result, size_t *rlen) {
  (void)arg, (void)len, (void)result, (void)rlen;
  return 0;
}

static double kiln_pool_round(void) {
  kiln_ppool_config cfg;
  kiln_ppool_config_default(&cfg);
  cfg.processes = 2;
  kiln_ppool *p;
  if (kiln_ppool_create(&cfg, &p) != 0) return -1;
  kiln_future **fs = malloc(TASKS * sizeof *fs);
  double t = -1, t0 = 0;
  int bad = !fs;
  for (int pass = 0; pass < 2 && !bad; pass++) {
    int n = pass ? TASKS : WARM; /* a warm-up pass first, off the clock, as Python's */
    t0 = now();
    for (int i = 0; i < n; i++)
      bad |= kiln_ppool_apply_async(p, t_empty, NULL, 0, NULL, NULL, NULL, &fs[i]);
    for (int i = 0; i < n && !bad; i++) {
      bad |= kiln_future_result(fs[i], -1, NULL);
      kiln_future_release(fs[i]);
    }
  }
  if (!bad) t = now() - t0;
  free(fs);
  kiln_ppool_destroy(p);
  return t;
}

static const char *PY_POOL =
    "import multiprocessing as mp, sys, time\n"
    "def f():\n"
    "    return None\n"
    "if __name__ == \"__main__\":\n"
    "    n = int(sys.argv[1])\n"
    "    with mp.Pool(2) as p:\n"
    "        for r in [p.apply_async(f) for _ in range(n // 10)]:\n"
    "            r.get()\n"
    "        t = time.perf_counter()\n"
    "        rs = [p.apply_async(f) for _ in range(n)]\n"
    "        for r in rs:\n"
    "            r.get()\n"
    "        print(time.perf_counter() - t)\n";

/* ---- messages through a pipe ------------------------------------------------------------------ */

/* What the pipe child is told: how many messages, and whether to read them in place. */
typedef struct pipe_arg {
  long count;
  int view;
} pipe_arg;

/* The child: receives count messages, each into a new buffer or in place, then answers one. */
static int pipe_child(const void *arg, size_t len) {
  pipe_arg a;
  if (len != sizeof a) return 2;
  memcpy(&a, arg, sizeof a);
  kiln_channel *ch = kiln_process_channel(0);
  for (long i = 0; i < a.count; i++) {
    if (a.view) {
      const void *m;
      size_t ml;
      if (kiln_channel_recv_view(ch, &m, &ml, -1) != 0) return 3;
      kiln_channel_release(ch);
    } else {
      void *m;
      size_t ml;
      if (kiln_channel_recv(ch, &m, &ml, -1) != 0) return 3;
      free(m);
    }
  }
  return kiln_channel_send(ch, "k", 1, -1) ? 4 : 0;
}

static double kiln_pipe_round(size_t size, long count, int view) {
  pipe_arg arg = {count, view};
  kiln_channel *mine, *theirs;
  if (kiln_channel_pair(true, &mine, &theirs) != 0) return -1;
  kiln_process_config pc;
  kiln_process_config_default(&pc);
  pc.channels = &theirs;
  pc.nchannels = 1;
  kiln_process *child;
  int rc = kiln_process_start(&pc, pipe_child, &arg, sizeof arg, &child);
  kiln_channel_destroy(theirs);
  if (rc) {
    kiln_channel_destroy(mine);
    return -1;
  }
  char *buf = calloc(1, size);
  double t0 = now();
  for (long i = 0; i < count && rc == 0; i++) rc = kiln_channel_send(mine, buf, size, -1);
  void *ack = NULL;
  size_t al;
  if (rc == 0) rc = kiln_channel_recv(mine, &ack, &al, -1);
  double t = rc ? -1 : now() - t0;
  free(ack);
  free(buf);
  kiln_channel_destroy(mine);
  kiln_process_join(child, -1);
  kiln_process_destroy(child);
  return t;
}

static const char *PY_PIPE =
    "import multiprocessing as mp, sys, time\n"
    "def child(c, n, view, size):\n"
    "    if view:\n"
    "        buf = bytearray(size)\n"
    "        for _ in range(n):\n"
    "            c.recv_bytes_into(buf)\n"
    "    else:\n"
    "        for _ in range(n):\n"
    "            c.recv_bytes()\n"
    "    c.send_bytes(b\"k\")\n"
    "if __name__ == \"__main__\":\n"
    "    arg = int(sys.argv[1])\n"
    "    view, arg = divmod(arg, 10**15)\n"
    "    size, n = divmod(arg, 10**9)\n"
    "    a, b = mp.Pipe()\n"
    "    p = mp.Process(target=child, args=(b, n, view, size))\n"
    "    p.start()\n"
    "    buf = bytes(size)\n"
    "    t = time.perf_counter()\n"
    "    for _ in range(n):\n"
    "        a.send_bytes(buf)\n"
    "    a.recv_bytes()\n"
    "    print(time.perf_counter() - t)\n"
    "    p.join()\n";

/* Python's argument for PY_PIPE: in place or not, the message size and the count. */
static long py_pipe_arg(int view, long size, long count) {
  return view * 1000000000000000L + size * 1000000000L + count;
}

/* ---- process start + join --------------------------------------------------------------------- */

static int child_return(const void *arg, size_t len) {
  (void)arg, (void)len;
  return 0;
}

/* Starts and joins n children one after the other: 0, or -1 when one failed or exited non-zero. */
static int start_join(const kiln_process_config *pc, int n) {
  for (int i = 0; i < n; i++) {
    kiln_process *p;
    int code = -1;
    if (kiln_process_start(pc, child_return, NULL, 0, &p) != 0) return -1;
    int rc = kiln_process_join(p, -1);
    if (rc == 0) rc = kiln_process_exitcode(p, &code);
    kiln_process_destroy(p);
    if (rc || code != 0) return -1;
  }
  return 0;
}

static double kiln_start_round(kiln_start_method how) {
  kiln_process_config pc;
  kiln_process_config_default(&pc);
  pc.start = how;
  if (start_join(&pc, STARTS / 10) != 0) return -1; /* warm-up, off the clock, as Python's */
  double t0 = now();
  return start_join(&pc, STARTS) ? -1 : now() - t0;
}

/* argv[1] is starts * 10 + method (0 forkserver, 1 fork). */
static const char *PY_START =
    "import multiprocessing as mp, sys, time\n"
    "def start_join(ctx, n):\n"
    "    for _ in range(n):\n"
    "        p = ctx.Process(target=int)\n"
    "        p.start()\n"
    "        p.join()\n"
    "        assert p.exitcode == 0\n"
    "if __name__ == \"__main__\":\n"
    "    n, m = divmod(int(sys.argv[1]), 10)\n"
    "    ctx = mp.get_context((\"forkserver\", \"fork\")[m])\n"
    "    start_join(ctx, n // 10)\n"
    "    t = time.perf_counter()\n"
    "    start_join(ctx, n)\n"
    "    print(time.perf_counter() - t)\n";

/* ---- manager ---------------------------------------------------------------------------------- */

typedef struct mgr_keys {
  char k[MGR_KEYS][8];
  size_t len[MGR_KEYS];
} mgr_keys;

/* n / 2 rounds of set + get on the dict "d": 0 or -1. */
static int mgr_dict(kiln_mclient *c, const mgr_keys *keys, int n) {
  static const char val[MGR_VAL];
  for (int i = 0; i < n / 2; i++) {
    const char *k = keys->k[i % MGR_KEYS];
    size_t kl = keys->len[i % MGR_KEYS];
    kiln_bytes v;
    if (kiln_mdict_set(c, "d", k, kl, val, sizeof val) || kiln_mdict_get(c, "d", k, kl, &v))
      return -1;
    free(v.data);
    if (v.len != sizeof val) return -1;
  }
  return 0;
}

/* n / 2 rounds of put + get on the queue "q": 0 or -1. */
static int mgr_queue(kiln_mclient *c, int n) {
  static const char val[MGR_VAL];
  for (int i = 0; i < n / 2; i++) {
    kiln_bytes v;
    if (kiln_mqueue_put(c, "q", val, sizeof val, -1) || kiln_mqueue_get(c, "q", &v, -1)) return -1;
    free(v.data);
    if (v.len != sizeof val) return -1;
  }
  return 0;
}

/* n connections, each authenticated, used for one request and closed: 0 or -1. */
static int mgr_connects(kiln_manager *m, int n) {
  size_t klen, len;
  const void *key = kiln_manager_authkey(m, &klen);
  for (int i = 0; i < n; i++) {
    kiln_mclient *c;
    if (kiln_manager_connect(kiln_manager_address(m), key, klen, &c)) return -1;
    int rc = kiln_mdict_len(c, "d", &len);
    kiln_mclient_close(c);
    if (rc) return -1;
  }
  return 0;
}

/* One round: t[0] dict, t[1] queue, t[2] connects (seconds): 0 or -1. */
static int kiln_manager_round(double t[3]) {
  mgr_keys keys;
  for (int i = 0; i < MGR_KEYS; i++) keys.len[i] = (size_t)snprintf(keys.k[i], 8, "k%d", i);
  kiln_manager_config cfg;
  kiln_manager_config_default(&cfg); /* a Unix socket in a private folder, the fork server */
  kiln_manager *m;
  kiln_mclient *c;
  if (kiln_manager_start(&cfg, &m) != 0) return -1;
  size_t klen;
  const void *key = kiln_manager_authkey(m, &klen);
  int bad = kiln_manager_connect(kiln_manager_address(m), key, klen, &c) != 0;
  if (!bad) {
    bad |= mgr_dict(c, &keys, MGR_OPS / 20) || mgr_queue(c, MGR_OPS / 20); /* warm-up */
    double t0 = now();
    bad |= mgr_dict(c, &keys, MGR_OPS);
    double t1 = now();
    bad |= mgr_queue(c, MGR_OPS);
    double t2 = now();
    bad |= mgr_connects(m, CONNECTS);
    t[0] = t1 - t0, t[1] = t2 - t1, t[2] = now() - t2;
    kiln_mclient_close(c);
  }
  kiln_manager_shutdown(m);
  return bad ? -1 : 0;
}

/* argv[1] is ops * 10**6 + connects; prints the dict, queue and connect times. */
static const char *PY_MANAGER =
    "import multiprocessing as mp, multiprocessing.managers as mm, sys, time\n"
    "def dict_ops(d, keys, v, n):\n"
    "    for i in range(n // 2):\n"
    "        d[keys[i % len(keys)]] = v\n"
    "        assert len(d[keys[i % len(keys)]]) == len(v)\n"
    "def queue_ops(q, v, n):\n"
    "    for i in range(n // 2):\n"
    "        q.put(v)\n"
    "        assert len(q.get()) == len(v)\n"
    "if __name__ == \"__main__\":\n"
    "    n, c = divmod(int(sys.argv[1]), 10**6)\n"
    "    keys, v = [b\"k%d\" % i for i in range(100)], bytes(16)\n"
    "    with mp.Manager() as m:\n"
    "        d, q = m.dict(), m.Queue()\n"
    "        dict_ops(d, keys, v, n // 20)\n"
    "        queue_ops(q, v, n // 20)\n"
    "        t0 = time.perf_counter()\n"
    "        dict_ops(d, keys, v, n)\n"
    "        t1 = time.perf_counter()\n"
    "        queue_ops(q, v, n)\n"
    "        t2 = time.perf_counter()\n"
    "        key = bytes(mp.current_process().authkey)\n"
    "        for _ in range(c):\n"
    "            mm.BaseManager(address=m.address, authkey=key).connect()\n"
    "        print(t1 - t0, t2 - t1, time.perf_counter() - t2)\n";

/* ---- driver ----------------------------------------------------------------------------------- */

typedef struct series {
  double k[MAX_ROUNDS], py[MAX_ROUNDS];
  int n;
} series;

static void report(const char *name, series *s, double work, const char *unit) {
  if (s->n == 0) {
    printf("%-22s failed\n", name);
    return;
  }
  double kmin = s->k[0], kmax = s->k[0], pmin = s->py[0], pmax = s->py[0];
  for (int i = 0; i < s->n; i++) {
    kmin = s->k[i] < kmin ? s->k[i] : kmin, kmax = s->k[i] > kmax ? s->k[i] : kmax;
    pmin = s->py[i] < pmin ? s->py[i] : pmin, pmax = s->py[i] > pmax ? s->py[i] : pmax;
  }
  /* Each round's own ratio too: its kiln and Python halves ran back to back under the same load,
   * so their ratio moves less than either side when the machine is shared. */
  double ratio[MAX_ROUNDS];
  for (int i = 0; i < s->n; i++) ratio[i] = s->py[i] / s->k[i];
  double rm = median(ratio, s->n);
  double km = median(s->k, s->n), pm = median(s->py, s->n);
  printf("%-22s kiln %10.0f %s/s (%.0f..%.0f)   python %10.0f %s/s (%.0f..%.0f)   ratio %.1fx"
         "   per round %.1fx (%.1f..%.1f)\n",
         name, work / km, unit, work / kmax, work / kmin, work / pm, unit, work / pmax, work / pmin,
         pm / km, rm, ratio[0], ratio[s->n - 1]);
}

enum { SEC_POOL = 1, SEC_PIPE = 2, SEC_START = 4, SEC_MANAGER = 8, SEC_ALL = 15 };

typedef struct results {
  series pool, small, big, small_view, big_view, fsrv, fork, mdict, mqueue, mconn;
} results;

static void add(series *s, const char *name, double k, double py) {
  if (k > 0 && py > 0)
    s->k[s->n] = k, s->py[s->n++] = py;
  else
    fprintf(stderr, "kiln-bench-proc: %s: a round failed (kiln %g, python %g)\n", name, k, py);
}

static void run_round(int sections, const char *python, results *r) {
  if (sections & SEC_POOL) add(&r->pool, "pool", kiln_pool_round(), run_python(python, PY_POOL, TASKS));
  if (sections & SEC_PIPE) {
    double k = kiln_pipe_round(SMALL, SMALL_MSGS, 0);
    add(&r->small, "pipe 64 B", k, run_python(python, PY_PIPE, py_pipe_arg(0, SMALL, SMALL_MSGS)));
    k = kiln_pipe_round(BIG, BIG_MSGS, 0);
    add(&r->big, "pipe 64 KiB", k, run_python(python, PY_PIPE, py_pipe_arg(0, BIG, BIG_MSGS)));
    k = kiln_pipe_round(SMALL, SMALL_MSGS, 1);
    add(&r->small_view, "pipe 64 B in place", k,
        run_python(python, PY_PIPE, py_pipe_arg(1, SMALL, SMALL_MSGS)));
    k = kiln_pipe_round(BIG, BIG_MSGS, 1);
    add(&r->big_view, "pipe 64 KiB in place", k,
        run_python(python, PY_PIPE, py_pipe_arg(1, BIG, BIG_MSGS)));
  }
  if (sections & SEC_START) {
    double k = kiln_start_round(KILN_START_FORKSERVER);
    add(&r->fsrv, "start forkserver", k, run_python(python, PY_START, STARTS * 10L + 0));
    k = kiln_start_round(KILN_START_FORK);
    add(&r->fork, "start fork", k, run_python(python, PY_START, STARTS * 10L + 1));
  }
  if (sections & SEC_MANAGER) {
    double k[3] = {-1, -1, -1}, py[3] = {-1, -1, -1};
    if (kiln_manager_round(k)) k[0] = k[1] = k[2] = -1;
    if (run_python_n(python, PY_MANAGER, MGR_OPS * 1000000L + CONNECTS, py, 3))
      py[0] = py[1] = py[2] = -1;
    add(&r->mdict, "manager dict", k[0], py[0]);
    add(&r->mqueue, "manager queue", k[1], py[1]);
    add(&r->mconn, "manager connect", k[2], py[2]);
  }
}

/* "pool,start" and so on: a mask of SEC_*, or 0 when a name is unknown. */
static int parse_sections(const char *list) {
  static const char *names[] = {"pool", "pipe", "start", "manager"};
  int mask = 0;
  while (*list) {
    size_t n = strcspn(list, ",");
    int bit = 0;
    for (int i = 0; i < 4; i++)
      if (strlen(names[i]) == n && strncmp(list, names[i], n) == 0) bit = 1 << i;
    if (!bit) return 0;
    mask |= bit;
    list += n + (list[n] == ',');
  }
  return mask;
}

int main(int argc, char **argv) {
  int sections = SEC_ALL, rounds = 5, npos = 0;
  const char *python = "python3";
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--only=", 7) == 0 && (sections = parse_sections(argv[i] + 7)) == 0) {
      fprintf(stderr, "usage: kiln-bench-proc [--only=pool,pipe,start,manager] [rounds] [python]\n");
      return 2;
    } else if (strncmp(argv[i], "--only=", 7) != 0) {
      if (npos++ == 0) rounds = atoi(argv[i]);
      else python = argv[i];
    }
  }
  if (rounds < 1 || rounds > MAX_ROUNDS) rounds = 5;
  if (kiln_forkserver_start() != 0) {
    fprintf(stderr, "kiln-bench-proc: cannot start the fork server\n");
    return 1;
  }
  static results r;
  for (int i = 0; i < rounds; i++) run_round(sections, python, &r);
  printf("kiln-bench-proc: %d rounds, median (spread min..max), kiln / python\n", rounds);
  if (sections & SEC_POOL) report("pool apply_async", &r.pool, TASKS, "tasks");
  if (sections & SEC_PIPE) report("pipe 64 B", &r.small, SMALL_MSGS, "msgs");
  if (sections & SEC_PIPE) report("pipe 64 KiB", &r.big, BIG_MSGS, "msgs");
  if (sections & SEC_PIPE) report("pipe 64 B in place", &r.small_view, SMALL_MSGS, "msgs");
  if (sections & SEC_PIPE) report("pipe 64 KiB in place", &r.big_view, BIG_MSGS, "msgs");
  if (sections & SEC_START) report("start+join forkserver", &r.fsrv, STARTS, "procs");
  if (sections & SEC_START) report("start+join fork", &r.fork, STARTS, "procs");
  if (sections & SEC_MANAGER) report("manager dict set/get", &r.mdict, MGR_OPS, "ops");
  if (sections & SEC_MANAGER) report("manager queue put/get", &r.mqueue, MGR_OPS, "ops");
  if (sections & SEC_MANAGER) report("manager connect", &r.mconn, CONNECTS, "conns");
  kiln_forkserver_stop();
  return 0;
}
