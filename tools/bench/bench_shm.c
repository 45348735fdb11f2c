/* bench_shm.c: kiln-bench-shm, process queues and shared arrays against Python's
 * multiprocessing, measured in the same run.
 *
 * 1. Queue throughput: one producer process puts N messages of S bytes into a kiln_pqueue, the
 *    parent takes them; messages per second from the fork of the producer to the last get.
 *    Python: the same with multiprocessing.Queue and a Process (fork start method). S = 64 B and
 *    64 KiB; Python gets fewer messages (it is slower; rates are per message).
 * 2. Shared array: 2 processes each update their half of a shared array of doubles,
 *    x = x * 1.5 + 1, over several passes; ns per element-update, process starts included.
 *    kiln: a raw kiln_shared of 10^7 doubles, 5 passes. Python: multiprocessing.Array('d', n)
 *    through its ctypes object in a Python loop, n = 10^6 and 1 pass (a full-size run would take
 *    minutes); both are normalised per element-update. Neither side takes the lock: the halves
 *    do not overlap.
 * Rounds alternate kiln and Python; medians and the spread (min..max) are printed, with the ratio
 * of the medians.
 *
 * Usage: kiln-bench-shm [rounds]   (default 5) */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_clock.h"
#include "kiln/proc.h"

static int reap(pid_t pid) {
  int st = 0;
  if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) return -1;
  return 0;
}

/* ---- kiln ---- */

static double kiln_queue_rate(size_t size, long n) {
  kiln_pqueue_config cfg;
  kiln_pqueue_config_default(&cfg);
  cfg.capacity = 4u << 20;
  kiln_pqueue *q;
  if (kiln_pqueue_create(&cfg, &q) != 0) return -1;
  char *msg = calloc(1, size), *in = malloc(size);
  double t0 = now();
  pid_t pid = fork();
  if (pid == 0) {
    for (long i = 0; i < n; i++)
      if (kiln_pqueue_put(q, msg, size, -1) != 0) _exit(1);
    _exit(0);
  }
  size_t len;
  int bad = 0;
  for (long i = 0; i < n && !bad; i++)
    bad = kiln_pqueue_get_into(q, in, size, &len, -1) != 0 || len != size;
  double t = now() - t0;
  if (bad) kill(pid, SIGKILL); /* never leave the producer blocked on a full queue */
  bad |= reap(pid);
  free(msg);
  free(in);
  kiln_pqueue_destroy(q);
  return bad ? -1 : (double)n / t;
}

static double kiln_array_ns(size_t n, int passes) {
  kiln_shared_config cfg;
  kiln_shared_config_default(&cfg);
  cfg.type = KILN_CT_DOUBLE;
  cfg.length = n;
  cfg.lock_mode = KILN_SHARED_LOCK_NONE;
  kiln_shared *a;
  if (kiln_shared_create(&cfg, &a) != 0) return -1;
  double t0 = now();
  pid_t pid[2];
  for (int k = 0; k < 2; k++) {
    pid[k] = fork();
    if (pid[k] == 0) {
      double *x = kiln_shared_data(a);
      size_t lo = k * n / 2, hi = (k + 1) * n / 2;
      for (int p = 0; p < passes; p++)
        for (size_t i = lo; i < hi; i++) x[i] = x[i] * 1.5 + 1.0;
      _exit(0);
    }
  }
  int bad = reap(pid[0]) | reap(pid[1]);
  double t = now() - t0;
  double *x = kiln_shared_data(a), want = 0;
  for (int p = 0; p < passes; p++) want = want * 1.5 + 1.0;
  if (x[0] != want || x[n - 1] != want) bad = -1;
  kiln_shared_destroy(a);
  return bad ? -1 : t / ((double)n * passes) * 1e9;
}

/* ---- Python ---- */

static const char *PY_QUEUE =
    "import multiprocessing as mp, sys, time\n"
    "def prod(q, n, size):\n"
    "    b = b'x' * size\n"
    "    for _ in range(n): q.put(b)\n"
    "if __name__ == '__main__':\n"
    "    size, n = int(sys.argv[1]), int(sys.argv[2])\n"
    "    q = mp.Queue()\n"
    "    t0 = time.perf_counter()\n"
    "    p = mp.Process(target=prod, args=(q, n, size)); p.start()\n"
    "    for _ in range(n): q.get()\n"
    "    t = time.perf_counter() - t0\n"
    "    p.join()\n"
    "    print(n / t)\n";

static const char *PY_ARRAY =
    "import multiprocessing as mp, sys, time\n"
    "def work(a, lo, hi, passes):\n"
    "    x = a.get_obj()\n"
    "    for _ in range(passes):\n"
    "        for i in range(lo, hi): x[i] = x[i] * 1.5 + 1.0\n"
    "if __name__ == '__main__':\n"
    "    n, passes = int(sys.argv[1]), int(sys.argv[2])\n"
    "    a = mp.Array('d', n)\n"
    "    t0 = time.perf_counter()\n"
    "    ps = [mp.Process(target=work, args=(a, k * n // 2, (k + 1) * n // 2, passes))\n"
    "          for k in range(2)]\n"
    "    for p in ps: p.start()\n"
    "    for p in ps: p.join()\n"
    "    t = time.perf_counter() - t0\n"
    "    print(t / (n * passes) * 1e9)\n";

/* Writes script to a temporary file, runs python3 on it with args, returns the number it prints
 * (-1 on failure). */
static double run_python(const char *script, const char *args) {
  char path[] = "/tmp/kiln-bench-shm-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return -1;
  size_t len = strlen(script);
  int ok = write(fd, script, len) == (ssize_t)len;
  close(fd);
  double v = -1;
  if (ok) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "python3 %s %s", path, args);
    FILE *f = popen(cmd, "r");
    if (f) {
      if (fscanf(f, "%lf", &v) != 1) v = -1;
      if (pclose(f) != 0) v = -1;
    }
  }
  unlink(path);
  return v;
}

/* ---- driver ---- */

enum { MAX_ROUNDS = 32 };

static void report(const char *what, const char *unit, double *k, double *p, int rounds,
                   bool higher_better) {
  double kmin = k[0], kmax = k[0], pmin = p[0], pmax = p[0];
  for (int i = 1; i < rounds; i++) {
    kmin = k[i] < kmin ? k[i] : kmin, kmax = k[i] > kmax ? k[i] : kmax;
    pmin = p[i] < pmin ? p[i] : pmin, pmax = p[i] > pmax ? p[i] : pmax;
  }
  double km = median(k, rounds), pm = median(p, rounds);
  printf("%-26s kiln %12.1f %s (%.1f..%.1f)   python %10.1f %s (%.1f..%.1f)   kiln/python %.1fx\n",
         what, km, unit, kmin, kmax, pm, unit, pmin, pmax, higher_better ? km / pm : pm / km);
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 5;
  if (rounds < 1 || rounds > MAX_ROUNDS) rounds = 5;
  static const struct {
    const char *name;
    size_t size;
    long kiln_n, py_n;
  } qs[] = {{"queue 64 B msgs/s", 64, 400000, 50000}, {"queue 64 KiB msgs/s", 65536, 20000, 4000}};
  for (size_t c = 0; c < 2; c++) {
    double k[MAX_ROUNDS], p[MAX_ROUNDS];
    char args[64];
    snprintf(args, sizeof args, "%zu %ld", qs[c].size, qs[c].py_n);
    for (int r = 0; r < rounds; r++) {
      k[r] = kiln_queue_rate(qs[c].size, qs[c].kiln_n);
      p[r] = run_python(PY_QUEUE, args);
      if (k[r] < 0 || p[r] < 0) return fprintf(stderr, "queue round failed\n"), 1;
    }
    report(qs[c].name, "", k, p, rounds, true);
  }
  double k[MAX_ROUNDS], p[MAX_ROUNDS];
  for (int r = 0; r < rounds; r++) {
    p[r] = run_python(PY_ARRAY, "1000000 1");
    k[r] = kiln_array_ns(10000000, 5);
    if (k[r] < 0 || p[r] < 0) return fprintf(stderr, "array round failed\n"), 1;
  }
  report("array ns/element-update", "", k, p, rounds, false);
  printf("(kiln array: 10^7 doubles x 5 passes; python: 10^6 x 1 pass; 2 processes each; "
         "queue: kiln %ld/%ld msgs, python %ld/%ld per round)\n",
         qs[0].kiln_n, qs[1].kiln_n, qs[0].py_n, qs[1].py_n);
  return 0;
}
