/* hash.c: FNV-1a, 64 bits (Fowler, Noll, Vo): checksums of cache files, keys of name sets. */
#include "base.h"

uint64_t kiln__fnv1a(uint64_t h, const void *data, size_t n) {
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}
