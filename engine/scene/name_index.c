/* name_index.c: finding repeated names and looking names up in O(n log n), for documents with
 * tens of thousands of names (materials of a scene, keys of one list line, objects of a job).
 *
 * The names are sorted with their document positions, so that every name's occurrences become
 * neighbours, ordered by position. The first repeat in document order is then the smallest
 * position that is not the first of its run, and a lookup is a binary search. Sorting is chosen
 * over a hash table because the inputs may be hostile: a comparison sort has no bad case an input
 * can aim at, where an unkeyed hash (FNV-1a) can be flooded with colliding names. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "scene_data.h"

static int ref_cmp(const void *pa, const void *pb) {
  const kiln__name_ref *a = pa, *b = pb;
  int c = strcmp(a->name, b->name);
  if (c) return c;
  return (a->index > b->index) - (a->index < b->index);
}

void kiln__names_sort(kiln__name_ref *refs, size_t n) {
  if (n > 1) qsort(refs, n, sizeof *refs, ref_cmp);
}

size_t kiln__names_first_repeat(const kiln__name_ref *sorted, size_t n) {
  size_t first = SIZE_MAX;
  for (size_t i = 1; i < n; i++)
    if (sorted[i].index < first && strcmp(sorted[i - 1].name, sorted[i].name) == 0)
      first = sorted[i].index;
  return first;
}

/* The first ref not ordered before name (n when none). */
static size_t lower_bound(const kiln__name_ref *sorted, size_t n, const char *name) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (strcmp(sorted[mid].name, name) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

const kiln__name_ref *kiln__names_find(const kiln__name_ref *sorted, size_t n, const char *name,
                                       size_t *count) {
  size_t i = lower_bound(sorted, n, name), k = i;
  while (k < n && strcmp(sorted[k].name, name) == 0) k++;
  if (count) *count = k - i;
  return k > i ? &sorted[i] : NULL;
}

int kiln__json_first_repeat(const cJSON *o, const cJSON **repeat) {
  *repeat = NULL;
  size_t n = 0;
  for (const cJSON *m = o->child; m; m = m->next) n++;
  if (n < 2) return 0;
  kiln__name_ref *refs = malloc(n * sizeof *refs);
  if (!refs) return KILN_ENOMEM;
  size_t i = 0;
  for (const cJSON *m = o->child; m; m = m->next, i++) refs[i] = (kiln__name_ref){m->string, i};
  kiln__names_sort(refs, n);
  size_t r = kiln__names_first_repeat(refs, n);
  free(refs);
  if (r == SIZE_MAX) return 0;
  const cJSON *m = o->child;
  for (i = 0; i < r; i++) m = m->next;
  *repeat = m;
  return 0;
}
