/* test_queues.c: which queues a device opens (kiln__choose_queues), from made-up family lists as
 * drivers report them: one compute family (kiln's buffers are exclusive to one family), the one
 * with the most queues, at most 4 of them unless max_lanes says otherwise. */
#include "gpu_internal.h"
#include "kt.h"

typedef kiln_gpu_queue_family fam;

static void choose(const fam *f, uint32_t n, uint32_t max_lanes, uint32_t want_family,
                   uint32_t want_count) {
  uint32_t family = 99, count = 99;
  KT_CODE(kiln__choose_queues(f, n, max_lanes, &family, &count), KILN_OK);
  KT_EQ(family, want_family);
  KT_EQ(count, want_count);
}

/* lavapipe: one family of one queue that does everything */
TEST(lavapipe_one_queue) {
  const fam f[] = {{1, true, true, true}};
  choose(f, 1, 0, 0, 1);
  choose(f, 1, 8, 0, 1);
}

/* NVIDIA: 16 universal queues, 2 transfer-only, 8 compute: 4 of the 16, never a mix of families,
 * even when more lanes are asked for than one family has */
TEST(nvidia_universal_family_capped) {
  const fam f[] = {{16, true, true, true}, {2, false, false, true}, {8, true, false, true}};
  choose(f, 3, 0, 0, KILN__DEFAULT_LANES);
  choose(f, 3, 1, 0, 1);
  choose(f, 3, 24, 0, 16);
}

/* AMD: one graphics queue, 4 compute queues, 2 transfer: the compute family */
TEST(amd_compute_family) {
  const fam f[] = {{1, true, true, true}, {4, true, false, true}, {2, false, false, true}};
  choose(f, 3, 0, 1, 4);
  choose(f, 3, 2, 1, 2);
}

/* ties go to the first; families without queues or without compute are never chosen */
TEST(ties_and_empty_families) {
  const fam f[] = {{0, true, false, false},
                   {3, false, true, true},
                   {2, true, false, false},
                   {2, true, true, true}};
  choose(f, 4, 0, 2, 2);
  const fam none[] = {{4, false, true, true}, {0, true, false, false}};
  uint32_t family = 99, count = 99;
  KT_CODE(kiln__choose_queues(none, 2, 0, &family, &count), KILN_EUNSUPPORTED);
  KT_EQ(count, 0);
  KT_CODE(kiln__choose_queues(none, 0, 0, &family, &count), KILN_EUNSUPPORTED);
}
