// tools/bench/bench_tbb.cpp: the oneTBB side of kiln-bench-sched, exposed as extern "C" calls.
#include <deque>
#include <memory>
#include <new>

#include <tbb/blocked_range.h>
#include <tbb/flow_graph.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>
#include <tbb/task_group.h>

#include "bench.h"

namespace {

std::unique_ptr<tbb::global_control> g_control;

// fib with a task_group per call and no cut-off.
long long tbb_fib(int n) {
  if (n < 2) return n;
  long long x = 0, y = 0;
  tbb::task_group g;
  g.run([&] { x = tbb_fib(n - 1); });
  g.run([&] { y = tbb_fib(n - 2); });
  g.wait();
  return x + y;
}

using cnode = tbb::flow::continue_node<tbb::flow::continue_msg>;

} // namespace

extern "C" int bench_tbb_init(int threads) {
  try {
    g_control = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                      static_cast<size_t>(threads));
  } catch (...) {
    return 1;
  }
  return 0;
}

extern "C" void bench_tbb_fini(void) { g_control.reset(); }

extern "C" int bench_tbb_fib(int n, long long *result) {
  try {
    *result = tbb_fib(n);
  } catch (...) {
    return 1;
  }
  return 0;
}

extern "C" int bench_tbb_pfor(uint32_t *a, size_t n, size_t grain) {
  try {
    tbb::parallel_for(
        tbb::blocked_range<size_t>(0, n, grain),
        [a](const tbb::blocked_range<size_t> &r) { bench_pfor_body(a, r.begin(), r.end()); },
        tbb::simple_partitioner());
  } catch (...) {
    return 1;
  }
  return 0;
}

// One continue_node per cell, edges from (i-1,j) and (i,j-1); the graph is built, run and torn
// down inside the timed call (kiln's submissions are timed too).
extern "C" int bench_tbb_wavefront(uint32_t *v, size_t n) {
  try {
    const size_t w = n + 1;
    tbb::flow::graph g;
    std::deque<cnode> nodes; // cell (i,j), 1-based, is nodes[(i-1)*n + (j-1)]
    for (size_t i = 1; i <= n; i++) {
      for (size_t j = 1; j <= n; j++) {
        nodes.emplace_back(g, [v, w, i, j](const tbb::flow::continue_msg &) {
          v[i * w + j] = bench_wf_cell(v[(i - 1) * w + j], v[i * w + j - 1]);
          return tbb::flow::continue_msg();
        });
        cnode &self = nodes.back();
        if (i > 1) tbb::flow::make_edge(nodes[(i - 2) * n + (j - 1)], self);
        if (j > 1) tbb::flow::make_edge(nodes[(i - 1) * n + (j - 2)], self);
      }
    }
    nodes.front().try_put(tbb::flow::continue_msg());
    g.wait_for_all();
  } catch (...) {
    return 1;
  }
  return 0;
}

// The same graph, kept: built and run in the timed call, torn down (nodes and graph destroyed) by
// bench_tbb_wavefront_kept_free outside it, as kiln's wavefront-kept releases its handles.
namespace {
struct kept_graph {
  tbb::flow::graph g;
  std::deque<cnode> nodes;
};
std::unique_ptr<kept_graph> g_kept;
} // namespace

extern "C" int bench_tbb_wavefront_kept(uint32_t *v, size_t n) {
  try {
    const size_t w = n + 1;
    g_kept = std::make_unique<kept_graph>();
    tbb::flow::graph &g = g_kept->g;
    std::deque<cnode> &nodes = g_kept->nodes;
    for (size_t i = 1; i <= n; i++) {
      for (size_t j = 1; j <= n; j++) {
        nodes.emplace_back(g, [v, w, i, j](const tbb::flow::continue_msg &) {
          v[i * w + j] = bench_wf_cell(v[(i - 1) * w + j], v[i * w + j - 1]);
          return tbb::flow::continue_msg();
        });
        cnode &self = nodes.back();
        if (i > 1) tbb::flow::make_edge(nodes[(i - 2) * n + (j - 1)], self);
        if (j > 1) tbb::flow::make_edge(nodes[(i - 1) * n + (j - 2)], self);
      }
    }
    nodes.front().try_put(tbb::flow::continue_msg());
    g.wait_for_all();
  } catch (...) {
    return 1;
  }
  return 0;
}

extern "C" void bench_tbb_wavefront_kept_free(void) {
  if (g_kept) g_kept->nodes.clear(); // nodes before their graph
  g_kept.reset();
}

extern "C" int bench_tbb_chain(size_t n, size_t *counter) {
  try {
    size_t c = 0;
    tbb::flow::graph g;
    std::deque<cnode> nodes;
    for (size_t k = 0; k < n; k++) {
      nodes.emplace_back(g, [&c, k](const tbb::flow::continue_msg &) {
        if (c == k) c = k + 1;
        return tbb::flow::continue_msg();
      });
      if (k > 0) tbb::flow::make_edge(nodes[k - 1], nodes[k]);
    }
    if (n > 0) nodes.front().try_put(tbb::flow::continue_msg());
    g.wait_for_all();
    *counter = c;
  } catch (...) {
    return 1;
  }
  return 0;
}
