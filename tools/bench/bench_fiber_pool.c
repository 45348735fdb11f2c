/* bench_fiber_pool.c: kiln-bench-gevent, kiln's pool fibers against gevent (python3-gevent from
 * Debian), measured in the same run.
 *
 * 1. Spawn + join: N fibers, each awaiting a future that is already done, spawned and then
 *    joined (kiln_fiber_spawn + kiln_await inside + kiln_wait over all of them, against
 *    gevent.spawn + AsyncResult.get inside + gevent.joinall). kiln spawns from the main thread
 *    (through the pool's injection queue) on pools of 1 and 2 workers, and from inside a fiber
 *    on 1 worker (the spawns go onto that worker's own deque, as gevent's spawns from its main
 *    greenlet go onto its loop). Timed in process CPU seconds (getrusage; time.process_time in
 *    Python): the machine is shared, and gevent runs on one thread.
 * 2. Memory per waiting fiber: N fibers spawned and all suspended at once on a future that is
 *    not done (kiln: default 256 KiB stacks, of which only touched pages are resident; gevent:
 *    AsyncResult.get), resident size (VmRSS) after they are all waiting minus before spawning,
 *    divided by N; then the future is completed and all are joined.
 *
 * Rounds alternate kiln and Python; medians and spreads (min..max) are printed, and the ratio
 * of the medians. Python runs as `python3 -c` through popen and prints its own figures, so its
 * interpreter start is not counted.
 *
 * Usage: kiln-bench-gevent [rounds] [python]   (defaults: 5 rounds, /usr/bin/python3: Debian's,
 * where python3-gevent is installed). */
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_clock.h"
#include "kiln/fiber.h"
#include "kiln/sched.h"

enum { N = 100000, MAX_ROUNDS = 32 };

static const char *PY = "import sys, time, gevent\n"
                        "from gevent.event import AsyncResult\n"
                        "n = int(sys.argv[1])\n"
                        "def rss():\n"
                        "    with open(\"/proc/self/statm\") as f:\n"
                        "        return int(f.read().split()[1]) * 4096\n"
                        "started = [0]\n"
                        "def f(ar):\n"
                        "    started[0] += 1\n"
                        "    return ar.get()\n"
                        "done = AsyncResult()\n"
                        "done.set(1)\n"
                        "t0 = time.process_time()\n"
                        "gs = [gevent.spawn(f, done) for _ in range(n)]\n"
                        "gevent.joinall(gs)\n"
                        "t = time.process_time() - t0\n"
                        "assert all(g.value == 1 for g in gs)\n"
                        "del gs\n"
                        "started[0] = 0\n"
                        "pending = AsyncResult()\n"
                        "r0 = rss()\n"
                        "gs = [gevent.spawn(f, pending) for _ in range(n)]\n"
                        "while started[0] < n:\n"
                        "    gevent.sleep(0)\n"
                        "r1 = rss()\n"
                        "pending.set(2)\n"
                        "gevent.joinall(gs)\n"
                        "assert all(g.value == 2 for g in gs)\n"
                        "print(t, (r1 - r0) / n)\n";

static int run_python(const char *python, double *t, double *mem) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "%s -c '%s' %d", python, PY, N);
  FILE *f = popen(cmd, "r");
  if (!f) return -1;
  int bad = fscanf(f, "%lf %lf", t, mem) != 2;
  bad |= pclose(f) != 0;
  return bad ? -1 : 0;
}

static long rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0, rss = 0;
  if (f) {
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
    fclose(f);
  }
  return rss * sysconf(_SC_PAGESIZE);
}

static atomic_long started;

static int await_it(void *arg, void **result) {
  atomic_fetch_add_explicit(&started, 1, memory_order_relaxed);
  return kiln_await(arg, -1, result);
}

static kiln_pool *make_pool(int threads) {
  kiln_pool_config cfg;
  kiln_pool_config_default(&cfg);
  cfg.threads = threads;
  kiln_pool *p = NULL;
  return kiln_pool_create(&cfg, &p) == 0 ? p : NULL;
}

/* Spawns N fibers awaiting f into fs, joins them; 0 when every one returned want. */
static int spawn_join(kiln_pool *p, kiln_future *f, kiln_future **fs, intptr_t want) {
  for (int i = 0; i < N; i++)
    if (kiln_fiber_spawn(p, await_it, f, 0, &fs[i]) != 0) return -1;
  size_t nd = 0;
  int rc = kiln_wait(fs, N, KILN_ALL_COMPLETED, -1, &nd);
  for (int i = 0; i < N; i++) {
    void *v = NULL;
    if (kiln_future_result(fs[i], 0, &v) != 0 || (intptr_t)v != want) rc = -1;
    kiln_future_release(fs[i]);
  }
  return rc;
}

struct inside {
  kiln_future *done;
  kiln_future **fs;
};

static int spawn_inside(void *arg, void **result) {
  (void)result;
  struct inside *in = arg;
  return spawn_join(kiln_pool_current(), in->done, in->fs, 1);
}

/* Seconds of CPU for one spawn + join round; inside: from a fiber of the pool. */
static double kiln_round(int threads, bool inside, kiln_future *done, kiln_future **fs) {
  kiln_pool *p = make_pool(threads);
  if (!p) return -1;
  double t0 = cpu_now(), t;
  if (inside) {
    struct inside in = {done, fs};
    kiln_future *f = NULL;
    int rc = kiln_fiber_spawn(p, spawn_inside, &in, 0, &f);
    rc = rc ? rc : kiln_future_result(f, -1, NULL);
    t = rc ? -1 : cpu_now() - t0;
    kiln_future_release(f);
  } else {
    t = spawn_join(p, done, fs, 1) ? -1 : cpu_now() - t0;
  }
  kiln_pool_destroy(p);
  return t;
}

/* Bytes per fiber with N suspended at once. */
static double kiln_memory(kiln_future **fs) {
  kiln_pool *p = make_pool(2);
  kiln_future *pending = NULL;
  if (!p || kiln_promise_create(&pending) != 0) return -1;
  atomic_store(&started, 0);
  long r0 = rss_bytes();
  int rc = 0;
  for (int i = 0; i < N && !rc; i++) rc = kiln_fiber_spawn(p, await_it, pending, 0, &fs[i]);
  while (!rc && atomic_load(&started) < N) sched_yield();
  long r1 = rss_bytes();
  kiln_promise_resolve(pending, (void *)2);
  size_t nd = 0;
  rc = rc ? rc : kiln_wait(fs, N, KILN_ALL_COMPLETED, -1, &nd);
  for (int i = 0; i < N; i++) kiln_future_release(fs[i]);
  kiln_future_release(pending);
  kiln_pool_destroy(p);
  return rc ? -1 : (double)(r1 - r0) / N;
}

static void spread(const char *name, double *v, int n, double scale, const char *unit) {
  double lo = v[0], hi = v[0];
  for (int i = 0; i < n; i++) lo = v[i] < lo ? v[i] : lo, hi = v[i] > hi ? v[i] : hi;
  double m = median(v, n);
  printf("  %-34s %10.1f %s (%.1f..%.1f)\n", name, m * scale, unit, lo * scale, hi * scale);
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 5;
  const char *python = argc > 2 ? argv[2] : "/usr/bin/python3";
  if (rounds < 1 || rounds > MAX_ROUNDS) rounds = 5;
  kiln_future **fs = calloc(N, sizeof *fs);
  kiln_future *done = NULL;
  if (!fs || kiln_promise_create(&done) != 0) return 1;
  kiln_promise_resolve(done, (void *)1);
  double k1[MAX_ROUNDS], k2[MAX_ROUNDS], ki[MAX_ROUNDS], km[MAX_ROUNDS];
  double pt[MAX_ROUNDS], pm[MAX_ROUNDS];
  int n = 0;
  for (int r = 0; r < rounds; r++) {
    double a = kiln_round(1, false, done, fs), b = kiln_round(2, false, done, fs);
    double c = kiln_round(1, true, done, fs), m = kiln_memory(fs);
    double t = 0, mem = 0;
    if (run_python(python, &t, &mem) != 0 || a < 0 || b < 0 || c < 0 || m < 0) {
      fprintf(stderr, "kiln-bench-gevent: round %d failed (%g %g %g %g)\n", r, a, b, c, m);
      continue;
    }
    k1[n] = a, k2[n] = b, ki[n] = c, km[n] = m, pt[n] = t, pm[n] = mem;
    n++;
  }
  if (n == 0) return 1;
  printf("kiln-bench-gevent: %d fibers, %d rounds, median (min..max)\n", N, n);
  printf(" spawn + join, each awaiting a done future: CPU microseconds per fiber\n");
  double m1 = median(k1, n), mi = median(ki, n), mp = median(pt, n);
  spread("kiln, spawned outside, 1 worker", k1, n, 1e6 / N, "us");
  spread("kiln, spawned outside, 2 workers", k2, n, 1e6 / N, "us");
  spread("kiln, spawned in a fiber, 1 worker", ki, n, 1e6 / N, "us");
  spread("gevent", pt, n, 1e6 / N, "us");
  printf("  gevent / kiln: %.1fx (outside, 1 worker), %.1fx (in a fiber)\n", mp / m1, mp / mi);
  printf(" resident memory per fiber, %d waiting at once\n", N);
  double mk = median(km, n), mg = median(pm, n);
  spread("kiln (2 workers, 256 KiB stacks)", km, n, 1.0 / 1024, "KiB");
  spread("gevent", pm, n, 1.0 / 1024, "KiB");
  printf("  kiln / gevent: %.2fx\n", mk / mg);
  kiln_future_release(done);
  free(fs);
  return 0;
}
