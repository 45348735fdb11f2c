/* bench_fiber.c: kiln-bench-fiber, kiln's fibers against Python's greenlet (python3-greenlet
 * from Debian), measured in the same run.
 *
 * 1. Switches: SWITCHES switches between the main fiber and one other, which hands back every
 *    value it is sent (kiln_fiber_switch both ways against greenlet.switch both ways; each
 *    direction counts as one switch).
 * 2. Create + run + destroy: CREATES fibers, each created, switched to once, ended by returning
 *    and destroyed before the next (kiln_fiber_create + kiln_fiber_switch + kiln_fiber_destroy
 *    against greenlet(f).switch() with the greenlet dropped at once). Default stack size.
 *    Python's rounds create PY_CREATES greenlets (each costs tens of microseconds here); rates
 *    are compared.
 *
 * Both sides time the process's CPU seconds (getrusage here, time.process_time in Python), not
 * wall seconds: each side runs on one thread, and on a shared machine the wall clock mostly
 * measures the other programs. Python runs as `python3 -c` through popen and prints its own
 * timing, so its interpreter start is not counted. Rounds alternate kiln and Python; the median and the spread (min..max) of each
 * are printed, the ratio of the medians, and the median and spread of the rounds' own ratios.
 *
 * Usage: kiln-bench-fiber [rounds] [python]   (defaults: 7 rounds, /usr/bin/python3: Debian's,
 * where python3-greenlet is installed, rather than whatever python3 comes first on PATH). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_clock.h"
#include "kiln/fiber.h"

enum { SWITCHES = 2000000, CREATES = 200000, PY_CREATES = 20000, MAX_ROUNDS = 32 };

static double run_python(const char *python, const char *code, long arg) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "%s -c '%s' %ld", python, code, arg);
  FILE *f = popen(cmd, "r");
  if (!f) return -1;
  double t = -1;
  int bad = fscanf(f, "%lf", &t) != 1;
  bad |= pclose(f) != 0;
  return bad ? -1 : t;
}

/* ---- switches ------------------------------------------------------------------------------- */

static int bounce(void *arg, void *value, void **result) {
  (void)arg;
  (void)result;
  kiln_fiber *parent = kiln_fiber_parent(kiln_fiber_current());
  for (;;)
    if (kiln_fiber_switch(parent, value, &value) != 0) return 0;
}

static double kiln_switch_round(void) {
  kiln_fiber *f = NULL;
  if (kiln_fiber_create(bounce, NULL, 0, NULL, &f) != 0) return -1;
  void *v = NULL;
  kiln_fiber_switch(f, v, &v); /* started: off the clock */
  double t0 = cpu_now();
  for (intptr_t i = 0; i < SWITCHES / 2; i++) kiln_fiber_switch(f, (void *)i, &v);
  double t = cpu_now() - t0;
  if ((intptr_t)v != SWITCHES / 2 - 1) t = -1;
  kiln_fiber_destroy(f); /* throws KILN_ECANCELLED into it: bounce returns */
  return t;
}

static const char *PY_SWITCH =
    "import sys, time\n"
    "from greenlet import greenlet, getcurrent\n"
    "n = int(sys.argv[1])\n"
    "main = getcurrent()\n"
    "def bounce(v):\n"
    "    while True:\n"
    "        v = main.switch(v)\n"
    "g = greenlet(bounce)\n"
    "g.switch(0)\n"
    "sw = g.switch\n"
    "t0 = time.process_time()\n"
    "for i in range(n // 2):\n"
    "    v = sw(i)\n"
    "t = time.process_time() - t0\n"
    "assert v == n // 2 - 1\n"
    "print(t)\n";

/* ---- create + run + destroy ----------------------------------------------------------------- */

static int ret_value(void *arg, void *value, void **result) {
  (void)arg;
  *result = value;
  return 0;
}

static double kiln_create_round(void) {
  double t0 = cpu_now();
  for (intptr_t i = 0; i < CREATES; i++) {
    kiln_fiber *f = NULL;
    void *v = NULL;
    if (kiln_fiber_create(ret_value, NULL, 0, NULL, &f) != 0) return -1;
    if (kiln_fiber_switch(f, (void *)i, &v) != 0 || (intptr_t)v != i) return -1;
    kiln_fiber_destroy(f);
  }
  return cpu_now() - t0;
}

static const char *PY_CREATE =
    "import sys, time\n"
    "from greenlet import greenlet\n"
    "n = int(sys.argv[1])\n"
    "def f(v):\n"
    "    return v\n"
    "t0 = time.process_time()\n"
    "for i in range(n):\n"
    "    greenlet(f).switch(i)\n"
    "print(time.process_time() - t0)\n";

/* ---- report --------------------------------------------------------------------------------- */

typedef struct series {
  double k[MAX_ROUNDS], py[MAX_ROUNDS];
  int n;
} series;

static void add(series *s, const char *name, double k, double py) {
  if (k > 0 && py > 0)
    s->k[s->n] = k, s->py[s->n++] = py;
  else
    fprintf(stderr, "kiln-bench-fiber: %s: a round failed (kiln %g, python %g)\n", name, k, py);
}

/* kwork and pwork: the work of one kiln round and of one Python round (greenlet's creation is
 * slow enough that its rounds create fewer). Rates are compared, not times. */
static void report(const char *name, series *s, double kwork, double pwork, const char *unit) {
  if (s->n == 0) {
    printf("%-20s failed\n", name);
    return;
  }
  double kmin = s->k[0], kmax = s->k[0], pmin = s->py[0], pmax = s->py[0];
  for (int i = 0; i < s->n; i++) {
    kmin = s->k[i] < kmin ? s->k[i] : kmin, kmax = s->k[i] > kmax ? s->k[i] : kmax;
    pmin = s->py[i] < pmin ? s->py[i] : pmin, pmax = s->py[i] > pmax ? s->py[i] : pmax;
  }
  /* Each round's own ratio too: its kiln and Python halves ran back to back under the same load. */
  double ratio[MAX_ROUNDS];
  for (int i = 0; i < s->n; i++) ratio[i] = (kwork / s->k[i]) / (pwork / s->py[i]);
  double rm = median(ratio, s->n);
  double km = median(s->k, s->n), pm = median(s->py, s->n);
  printf("%-20s kiln %11.0f %s/s (%.0f..%.0f)   greenlet %9.0f %s/s (%.0f..%.0f)   ratio %.1fx"
         "   per round %.1fx (%.1f..%.1f)   each: kiln %.2f ns, greenlet %.1f ns\n",
         name, kwork / km, unit, kwork / kmax, kwork / kmin, pwork / pm, unit, pwork / pmax,
         pwork / pmin, (kwork / km) / (pwork / pm), rm, ratio[0], ratio[s->n - 1],
         km / kwork * 1e9, pm / pwork * 1e9);
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 7;
  const char *python = argc > 2 ? argv[2] : "/usr/bin/python3";
  if (rounds < 1 || rounds > MAX_ROUNDS) rounds = 7;
  static series sw, cr;
  for (int i = 0; i < rounds; i++) {
    add(&sw, "switch", kiln_switch_round(), run_python(python, PY_SWITCH, SWITCHES));
    add(&cr, "create", kiln_create_round(), run_python(python, PY_CREATE, PY_CREATES));
  }
  printf("kiln-bench-fiber: %d rounds, median (spread min..max), kiln / greenlet\n", rounds);
  report("switch", &sw, SWITCHES, SWITCHES, "switches");
  report("create+run+destroy", &cr, CREATES, PY_CREATES, "fibers");
  return 0;
}
