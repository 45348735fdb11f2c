/* select.c: which frames of a job a run takes. Three filters, in job order:
 *
 *   --frames   by frame number: first..last, every step-th counted from first (or from the first
 *              frame in range when first is open); the frames that pass are the selection, and
 *              their positions in it (0, 1, ...) are what the other two filters cut
 *   shard      shard k of n parts: round-robin (p mod n == k) or contiguous ranges
 *   claim      chunks of positions taken through claim files (claim.c decides, per chunk)
 *
 * The position is a frame's place in the selection, not in the job, so shards and chunks stay the
 * same size whatever --frames picks, and a frame's position does not depend on the shard that
 * renders it: images are a function of scene, frame and seed only, which is why re-sharding with
 * another n and resuming is safe. Nothing here touches files. */
#include <limits.h>
#include <string.h>

#include "batch_internal.h"

bool kiln_shard_contains(uint64_t pos, uint64_t total, uint32_t shard, uint32_t shards,
                         kiln_shard_mode mode) {
  if (shards <= 1) return shard == 0;
  if (shard >= shards || pos >= total) return false;
  if (mode == KILN_SHARD_CONTIGUOUS) {
    uint64_t lo, hi;
    kiln__shard_range(total, shard, shards, &lo, &hi);
    return pos >= lo && pos < hi;
  }
  return pos % shards == shard;
}

/* floor(k total / n) without overflow: total = q n + r, so k total / n = k q + k r / n, and
 * k r < n^2 <= 2^64. */
static uint64_t cut(uint64_t total, uint64_t k, uint64_t n) {
  return k * (total / n) + k * (total % n) / n;
}

void kiln__shard_range(uint64_t total, uint32_t shard, uint32_t shards, uint64_t *lo,
                       uint64_t *hi) {
  if (shards <= 1) {
    *lo = 0, *hi = total;
    return;
  }
  *lo = cut(total, shard, shards), *hi = cut(total, (uint64_t)shard + 1, shards);
}

int kiln_shard_mode_parse(const char *name, kiln_shard_mode *mode) {
  if (!name || !mode) return KILN_EINVAL;
  if (!strcmp(name, "round-robin")) *mode = KILN_SHARD_ROUND_ROBIN;
  else if (!strcmp(name, "contiguous")) *mode = KILN_SHARD_CONTIGUOUS;
  else return KILN_EPARSE;
  return 0;
}

void kiln__selection_init(kiln__selection *s, const kiln_batch_config *cfg) {
  memset(s, 0, sizeof *s);
  s->first = cfg->first, s->last = cfg->last, s->step = cfg->step;
  s->shard = cfg->shards > 1 ? cfg->shard : 0;
  s->shards = cfg->shards > 1 ? cfg->shards : 1;
  s->mode = cfg->shard_mode;
}

bool kiln__selection_by_number(const kiln__selection *s) {
  return s->first != LONG_MIN || s->last != LONG_MAX || s->step != 1;
}

void kiln__selection_rewind(kiln__selection *s) { s->base_set = false, s->pos = 0; }

/* Whether frame passes --frames: in range, and a whole number of steps from the base, the lower
 * bound or, without one, the first frame in range (set by the first call after a rewind). A list
 * may number its images in any order, so a frame below the base counts too (steps backwards). */
static bool by_number(kiln__selection *s, long frame) {
  if (frame < s->first || frame > s->last) return false;
  if (!s->base_set) s->base = s->first != LONG_MIN ? s->first : frame, s->base_set = true;
  if (s->step == 1) return true;
  /* frame - base may not fit a long (LONG_MIN + 1 .. LONG_MAX - 1 both ways): in unsigned */
  unsigned long d = frame >= s->base ? (unsigned long)frame - (unsigned long)s->base
                                     : (unsigned long)s->base - (unsigned long)frame;
  return d % (unsigned long)s->step == 0;
}

static bool count_one(void *arg, long frame) { return by_number(arg, frame); }

uint64_t kiln__selection_count(kiln__selection *s, const kiln_job *job) {
  kiln_job_info ji;
  kiln_job_get_info(job, &ji);
  kiln__selection_rewind(s);
  s->total = kiln__selection_by_number(s) ? kiln__job_count_frames(job, count_one, s) : ji.count;
  kiln__selection_rewind(s);
  kiln__shard_range(s->total, s->shard, s->shards, &s->lo, &s->hi);
  return s->total;
}

uint64_t kiln__selection_shard_total(const kiln__selection *s) {
  if (s->shards <= 1) return s->total;
  if (s->mode == KILN_SHARD_CONTIGUOUS) return s->hi - s->lo;
  return s->shard < s->total ? (s->total - s->shard + s->shards - 1) / s->shards : 0;
}

uint64_t kiln__selection_rank(const kiln__selection *s, uint64_t pos) {
  if (s->shards <= 1) return pos;
  if (s->mode == KILN_SHARD_CONTIGUOUS) return pos - s->lo;
  return pos / s->shards; /* pos = shard + r shards */
}

bool kiln__selection_next(kiln__selection *s, long frame, uint64_t *pos) {
  if (!by_number(s, frame)) return false;
  uint64_t p = s->pos++;
  if (pos) *pos = p;
  return kiln_shard_contains(p, s->total, s->shard, s->shards, s->mode);
}
