/* tools/bench/bench_omp.c: the OpenMP-task side of kiln-bench-sched. */
#include <omp.h>

#include "bench.h"

int bench_omp_init(int threads) {
  omp_set_dynamic(0);
  omp_set_num_threads(threads);
  return 0;
}

/* fib with a task per call and no cut-off. */
static long long omp_fib(int n) {
  if (n < 2) return n;
  long long x, y;
#pragma omp task shared(x) firstprivate(n)
  x = omp_fib(n - 1);
#pragma omp task shared(y) firstprivate(n)
  y = omp_fib(n - 2);
#pragma omp taskwait
  return x + y;
}

int bench_omp_fib(int n, long long *result) {
  long long r = -1;
#pragma omp parallel shared(r)
#pragma omp single
  r = omp_fib(n);
  *result = r;
  return 0;
}

/* A worksharing loop with dynamic chunks of `grain`, not a taskloop: libgomp runs a taskloop of
 * more than 64 * nthreads tasks undeferred, i.e. serially in the encountering thread, so
 * taskloop grainsize(100) over 10^7 iterations would not be a parallel loop at all. */
int bench_omp_pfor(uint32_t *a, size_t n, size_t grain) {
  const long chunk = (long)grain;
#pragma omp parallel for schedule(dynamic, chunk)
  for (size_t i = 0; i < n; i++) a[i] = (uint32_t)i * 2u;
  return 0;
}

int bench_omp_wavefront(uint32_t *v, size_t n) {
  const size_t w = n + 1;
#pragma omp parallel
#pragma omp single
  {
    for (size_t i = 1; i <= n; i++) {
      for (size_t j = 1; j <= n; j++) {
#pragma omp task firstprivate(i, j) depend(in                                      \
                                           : v[(i - 1) * w + j], v[i * w + j - 1]) \
    depend(out                                                                     \
           : v[i * w + j])
        v[i * w + j] = bench_wf_cell(v[(i - 1) * w + j], v[i * w + j - 1]);
      }
    }
#pragma omp taskwait
  }
  return 0;
}

int bench_omp_chain(size_t n, size_t *counter) {
  size_t c = 0;
#pragma omp parallel shared(c)
#pragma omp single
  {
    for (size_t k = 0; k < n; k++) {
#pragma omp task firstprivate(k) shared(c) depend(inout : c)
      if (c == k) c = k + 1;
    }
#pragma omp taskwait
  }
  *counter = c;
  return 0;
}
