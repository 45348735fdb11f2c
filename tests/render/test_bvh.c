/* test_bvh.c: the BVH builder: structure, determinism across pools, and ray queries against
 * brute force. */
// kt: timeout 120
#include <stdlib.h>

#include "render_internal.h"
#include "kiln/sched.h"
#include "kt.h"

static uint32_t rng_state = 12345;
static float frand(void) {
  rng_state = rng_state * 1664525u + 1013904223u;
  return (float)(rng_state >> 8) / 16777216.0f;
}

/* n random small triangles and m spheres in the unit cube. */
static kiln__scene random_scene(size_t n, size_t m) {
  kiln__scene s = {0};
  s.ntris = n;
  s.pos = malloc(9 * n * sizeof(float));
  for (size_t i = 0; i < n; i++) {
    float c[3] = {frand(), frand(), frand()};
    for (int v = 0; v < 3; v++)
      for (int k = 0; k < 3; k++) s.pos[9 * i + 3 * v + k] = c[k] + 0.1f * (frand() - 0.5f);
  }
  s.nspheres = m;
  s.spheres = calloc(m ? m : 1, sizeof *s.spheres);
  for (size_t i = 0; i < m; i++) {
    for (int k = 0; k < 3; k++) s.spheres[i].center[k] = frand();
    s.spheres[i].radius = 0.02f + 0.05f * frand();
  }
  return s;
}

static void check_structure(const kiln__bvh *b, size_t nprim) {
  KT_EQ(b->nprims, nprim);
  char *seen = calloc(nprim ? nprim : 1, 1);
  size_t reached = 0;
  for (size_t i = 0; i < b->nnodes; i++) {
    const kiln__bvh_node *n = &b->nodes[i];
    if (n->count) {
      KT_TRUE(n->a + n->count <= nprim);
      for (uint32_t j = 0; j < n->count; j++) {
        uint32_t p = b->prims[n->a + j];
        KT_TRUE(p < nprim);
        if (seen[p]) KT_FAIL("primitive %u in two leaves", p);
        seen[p] = 1;
        reached++;
      }
    } else {
      KT_TRUE(n->a < b->nnodes && i + 1 < b->nnodes);
      const kiln__bvh_node *c[2] = {&b->nodes[i + 1], &b->nodes[n->a]};
      for (int q = 0; q < 2; q++)
        for (int k = 0; k < 3; k++) {
          KT_TRUE(c[q]->bmin[k] >= n->bmin[k]);
          KT_TRUE(c[q]->bmax[k] <= n->bmax[k]);
        }
    }
  }
  KT_EQ(reached, nprim);
  free(seen);
}

TEST(structure_and_queries) {
  kiln__scene s = random_scene(3000, 200);
  kiln__bvh b;
  KT_CODE(kiln__bvh_build(NULL, &s, &b), KILN_OK);
  check_structure(&b, 3200);
  KT_TRUE(b.nnodes > 100);
  int hits = 0;
  for (int r = 0; r < 2000; r++) {
    float o[3] = {frand() * 3 - 1, frand() * 3 - 1, frand() * 3 - 1};
    float target[3] = {frand(), frand(), frand()}, d[3];
    for (int k = 0; k < 3; k++) d[k] = target[k] - o[k];
    float t1 = INFINITY, t2 = INFINITY;
    uint32_t p1 = ~0u, p2 = ~0u;
    bool h1 = kiln__bvh_intersect(&b, &s, o, d, 0, &t1, &p1);
    bool h2 = kiln__brute_intersect(&s, o, d, 0, &t2, &p2);
    KT_EQ(h1, h2);
    if (h1) {
      hits++;
      KT_EQ(p1, p2);
      KT_TRUE(t1 == t2);
    }
  }
  KT_TRUE(hits > 500);
  kiln__bvh_free(&b);
  kiln__scene_free(&s);
}

/* Large enough for parallel binning; the tree is the same with 1 and 2 threads and serial. */
TEST(deterministic_across_threads) {
  kiln__scene s = random_scene(150000, 10);
  kiln__bvh ref, b;
  KT_CODE(kiln__bvh_build(NULL, &s, &ref), KILN_OK);
  check_structure(&ref, 150010);
  for (int threads = 1; threads <= 2; threads++) {
    kiln_pool_config pc;
    kiln_pool_config_default(&pc);
    pc.threads = threads;
    kiln_pool *pool;
    KT_CODE(kiln_pool_create(&pc, &pool), KILN_OK);
    KT_CODE(kiln__bvh_build(pool, &s, &b), KILN_OK);
    KT_EQ(b.nnodes, ref.nnodes);
    KT_TRUE(memcmp(b.nodes, ref.nodes, b.nnodes * sizeof *b.nodes) == 0);
    KT_TRUE(memcmp(b.prims, ref.prims, b.nprims * sizeof *b.prims) == 0);
    kiln__bvh_free(&b);
    kiln_pool_destroy(pool);
  }
  kiln__bvh_free(&ref);
  kiln__scene_free(&s);
}

TEST(empty_scene) {
  kiln__scene s = {0};
  kiln__bvh b;
  KT_CODE(kiln__bvh_build(NULL, &s, &b), KILN_OK);
  KT_EQ(b.nnodes, 1);
  float o[3] = {0, 0, 0}, d[3] = {1, 0, 0}, t = INFINITY;
  uint32_t p;
  KT_FALSE(kiln__bvh_intersect(&b, &s, o, d, 0, &t, &p));
  kiln__bvh_free(&b);
}
