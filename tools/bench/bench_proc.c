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
 *
 * Python runs as `python3 -c` through popen and prints its own timing, so its interpreter start
 * is not counted. Rounds alternate kiln and Python; the median and the spread (min..max) of each
 * are printed, and the ratio of the medians.
 *
 * Usage: kiln-bench-proc [rounds] [python]   (defaults: 5 rounds, python3) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kiln/proc.h"

enum { TASKS = 20000, WARM = TASKS / 10, SMALL = 64, BIG = 64 << 10, SMALL_MSGS = 200000, BIG_MSGS = 20000 };
enum { MAX_ROUNDS = 32 };

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Runs a Python snippet that prints one number (seconds); -1 on failure. */
static double run_python(const char *python, const char *code, long arg) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "%s -c '%s' %ld", python, code, arg);
  FILE *f = popen(cmd, "r");
  if (!f) return -1;
  double t = -1;
  if (fscanf(f, "%lf", &t) != 1) t = -1;
  if (pclose(f) != 0) t = -1;
  return t;
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

/* The child: receives count messages (arg), then answers one. */
static int pipe_child(const void *arg, size_t len) {
  long count;
  if (len != sizeof count) return 2;
  memcpy(&count, arg, sizeof count);
  kiln_channel *ch = kiln_process_channel(0);
  for (long i = 0; i < count; i++) {
    void *m;
    size_t ml;
    if (kiln_channel_recv(ch, &m, &ml, -1) != 0) return 3;
    free(m);
  }
  return kiln_channel_send(ch, "k", 1, -1) ? 4 : 0;
}

static double kiln_pipe_round(size_t size, long count) {
  kiln_channel *mine, *theirs;
  if (kiln_channel_pair(true, &mine, &theirs) != 0) return -1;
  kiln_process_config pc;
  kiln_process_config_default(&pc);
  pc.channels = &theirs;
  pc.nchannels = 1;
  kiln_process *child;
  int rc = kiln_process_start(&pc, pipe_child, &count, sizeof count, &child);
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
    "def child(c, n):\n"
    "    for _ in range(n):\n"
    "        c.recv_bytes()\n"
    "    c.send_bytes(b\"k\")\n"
    "if __name__ == \"__main__\":\n"
    "    size, n = divmod(int(sys.argv[1]), 10**9)\n"
    "    a, b = mp.Pipe()\n"
    "    p = mp.Process(target=child, args=(b, n))\n"
    "    p.start()\n"
    "    buf = bytes(size)\n"
    "    t = time.perf_counter()\n"
    "    for _ in range(n):\n"
    "        a.send_bytes(buf)\n"
    "    a.recv_bytes()\n"
    "    print(time.perf_counter() - t)\n"
    "    p.join()\n";

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
  double km = median(s->k, s->n), pm = median(s->py, s->n);
  printf("%-22s kiln %10.0f %s/s (%.0f..%.0f)   python %10.0f %s/s (%.0f..%.0f)   ratio %.1fx\n",
         name, work / km, unit, work / kmax, work / kmin, work / pm, unit, work / pmax, work / pmin,
         pm / km);
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 5;
  const char *python = argc > 2 ? argv[2] : "python3";
  if (rounds < 1 || rounds > MAX_ROUNDS) rounds = 5;
  if (kiln_forkserver_start() != 0) {
    fprintf(stderr, "kiln-bench-proc: cannot start the fork server\n");
    return 1;
  }
  series pool = {0}, small = {0}, big = {0};
  for (int r = 0; r < rounds; r++) {
    double k = kiln_pool_round(), py = run_python(python, PY_POOL, TASKS);
    if (k > 0 && py > 0) pool.k[pool.n] = k, pool.py[pool.n++] = py;
    k = kiln_pipe_round(SMALL, SMALL_MSGS);
    py = run_python(python, PY_PIPE, (long)SMALL * 1000000000L + SMALL_MSGS);
    if (k > 0 && py > 0) small.k[small.n] = k, small.py[small.n++] = py;
    k = kiln_pipe_round(BIG, BIG_MSGS);
    py = run_python(python, PY_PIPE, (long)BIG * 1000000000L + BIG_MSGS);
    if (k > 0 && py > 0) big.k[big.n] = k, big.py[big.n++] = py;
  }
  printf("kiln-bench-proc: %d rounds, median (spread min..max), kiln / python\n", rounds);
  report("pool apply_async", &pool, TASKS, "tasks");
  report("pipe 64 B", &small, SMALL_MSGS, "msgs");
  report("pipe 64 KiB", &big, BIG_MSGS, "msgs");
  kiln_forkserver_stop();
  return 0;
}
