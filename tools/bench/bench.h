/* tools/bench/bench.h: the oneTBB and OpenMP sides of kiln-bench-sched, as plain C calls.
 *
 * Every workload function runs its workload once and returns 0, or non-zero when the runtime
 * reported an error. Results are checked by the caller (bench_sched.c). */
#ifndef KILN_BENCH_H
#define KILN_BENCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Wavefront cell: v[i][j] = f(v[i-1][j], v[i][j-1]) on an (n+1)x(n+1) row-major matrix whose
 * row 0 and column 0 are a fixed zero border; cells 1..n x 1..n are computed. */
static inline uint32_t bench_wf_cell(uint32_t up, uint32_t left) { return up * 3u + left + 1u; }

/* Parallel-for body: a[i] = i * 2 (mod 2^32). */
static inline void bench_pfor_body(uint32_t *a, size_t lo, size_t hi) {
  for (size_t i = lo; i < hi; i++) a[i] = (uint32_t)i * 2u;
}

/* oneTBB (bench_tbb.cpp). init limits TBB to `threads` threads (global_control). */
int bench_tbb_init(int threads);
void bench_tbb_fini(void);
int bench_tbb_fib(int n, long long *result);
int bench_tbb_pfor(uint32_t *a, size_t n, size_t grain);
int bench_tbb_wavefront(uint32_t *v, size_t n);
int bench_tbb_chain(size_t n, size_t *counter);
/* The wavefront graph built and run, then kept (not destroyed) until ..._kept_free. */
int bench_tbb_wavefront_kept(uint32_t *v, size_t n);
void bench_tbb_wavefront_kept_free(void);

/* OpenMP tasks (bench_omp.c). */
int bench_omp_init(int threads);
int bench_omp_fib(int n, long long *result);
int bench_omp_pfor(uint32_t *a, size_t n, size_t grain);
int bench_omp_wavefront(uint32_t *v, size_t n);
int bench_omp_chain(size_t n, size_t *counter);

#ifdef __cplusplus
}
#endif
#endif /* KILN_BENCH_H */
