/* clock.c: the monotonic clock and deadlines, for every timeout in kiln (see base.h). */
#define _GNU_SOURCE
#include <math.h>
#include <time.h>

#include "base.h"
#include "kiln/error.h"

double kiln__now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int kiln__deadline(double timeout, double *deadline) {
  if (isnan(timeout)) return KILN_EINVAL;
  *deadline = timeout < 0 ? INFINITY : kiln__now() + timeout;
  return 0;
}

void kiln__abs_timespec(double deadline, struct timespec *ts) {
  if (deadline > 1e15) deadline = 1e15;
  double s = floor(deadline);
  ts->tv_sec = (time_t)s;
  ts->tv_nsec = (long)((deadline - s) * 1e9);
  if (ts->tv_nsec >= 1000000000L) ts->tv_nsec = 999999999L;
}
