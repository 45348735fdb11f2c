/* chunks.c: a claiming run's view of the job, chunk by chunk (the claim files are claim.c's).
 *
 * The selected frames are cut into chunks of `size` positions. The driver walks the job in passes;
 * at each selected frame it asks what to do (kiln__chunks_take): a chunk is tried when the walk
 * reaches it untried, and then its frames are issued (held), skipped (another live process holds
 * it), or reported as rendered elsewhere (done). When a held chunk has been walked past and its
 * last frame has finished, its done marker is written. After a pass, with nothing in flight,
 * kiln__chunks_wait looks at the chunks other processes hold until one of them expires (another
 * pass takes it over) or every chunk is finished (one last pass reports the frames rendered
 * elsewhere that no pass has reported yet). So a run ends only when the whole selection is done,
 * by whichever processes: a process killed mid-chunk delays the end by the claim timeout, it does
 * not lose frames. One thread (the driver's) calls everything here. */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch_internal.h"

enum {
  UNTRIED,   /* not tried in this run, or its claim expired: try it when the walk reaches it */
  BUSY,      /* a live claim of another process */
  HELD,      /* ours: its frames are issued */
  ENDED,     /* ours, walked past: finished when its last frame in flight is */
  LOST,      /* ours, taken over by another process: skipped, then waited for like BUSY */
  ELSEWHERE, /* done by another process: its frames are reported in this pass */
  CLOSED     /* finished, or reported: nothing more to do */
};

struct kiln__chunks {
  kiln__claims *claims;
  uint64_t size, n, total;
  uint8_t *state;
  uint32_t *pending;          /* held chunks: frames in flight */
  uint32_t *written, *failed; /* held chunks: frames finished, for the done marker */
  uint64_t claimed, taken;
};

int kiln__chunks_open(const char *dir, uint64_t total, uint64_t size, double timeout_s,
                      kiln__chunks **out, char *msg, size_t msgcap) {
  *out = NULL;
  kiln__chunks *k = calloc(1, sizeof *k);
  if (!k) goto nomem;
  k->size = size, k->total = total, k->n = (total + size - 1) / size;
  size_t n = k->n ? (size_t)k->n : 1;
  k->state = calloc(n, 1);
  k->pending = calloc(n, sizeof *k->pending);
  k->written = calloc(n, sizeof *k->written);
  k->failed = calloc(n, sizeof *k->failed);
  if (!k->state || !k->pending || !k->written || !k->failed) goto nomem;
  int rc = kiln__claims_open(dir, timeout_s, &k->claims, msg, msgcap);
  if (rc) {
    kiln__chunks_close(k);
    return rc;
  }
  *out = k;
  return 0;
nomem:
  kiln__chunks_close(k);
  kiln__say(msg, msgcap, "out of memory");
  return KILN_ENOMEM;
}

void kiln__chunks_close(kiln__chunks *k) {
  if (!k) return;
  kiln__claims_close(k->claims); /* gives back the chunks still held (a stopped run) */
  free(k->state), free(k->pending), free(k->written), free(k->failed);
  free(k);
}

void kiln__chunks_counts(const kiln__chunks *k, uint64_t *claimed, uint64_t *taken) {
  *claimed = k->claimed, *taken = k->taken;
}

/* The done marker of held chunk ch, once walked past with nothing in flight. */
static int finish(kiln__chunks *k, uint64_t ch, char *msg, size_t msgcap) {
  if (k->state[ch] != ENDED || k->pending[ch]) return 0;
  k->state[ch] = CLOSED;
  return kiln__claims_finish(k->claims, ch, k->written[ch], k->failed[ch], msg, msgcap);
}

int kiln__chunks_take(kiln__chunks *k, uint64_t pos, kiln__take *what, char *msg, size_t msgcap) {
  uint64_t ch = pos / k->size;
  *what = KILN__TAKE_SKIP;
  if (k->state[ch] == UNTRIED) {
    kiln__claim_result r;
    int rc = kiln__claims_try(k->claims, ch, &r, msg, msgcap);
    if (rc) return rc;
    k->state[ch] = r == KILN__CLAIM_DONE ? ELSEWHERE : r == KILN__CLAIM_BUSY ? BUSY : HELD;
    if (r == KILN__CLAIM_MINE || r == KILN__CLAIM_TAKEN) k->claimed++;
    if (r == KILN__CLAIM_TAKEN) k->taken++;
  }
  if (k->state[ch] == HELD && kiln__claims_lost(k->claims, ch)) k->state[ch] = LOST;
  if (k->state[ch] == HELD) *what = KILN__TAKE_ISSUE;
  else if (k->state[ch] == ELSEWHERE) *what = KILN__TAKE_ELSEWHERE;
  return 0;
}

void kiln__chunks_issued(kiln__chunks *k, uint64_t pos) { k->pending[pos / k->size]++; }

int kiln__chunks_finished(kiln__chunks *k, uint64_t pos, bool in_flight, bool ok, char *msg,
                          size_t msgcap) {
  uint64_t ch = pos / k->size;
  if (in_flight && k->pending[ch]) k->pending[ch]--;
  if (ok) k->written[ch]++;
  else k->failed[ch]++;
  return finish(k, ch, msg, msgcap);
}

int kiln__chunks_passed(kiln__chunks *k, uint64_t pos, char *msg, size_t msgcap) {
  uint64_t ch = pos / k->size;
  if (pos % k->size != k->size - 1 && pos != k->total - 1) return 0; /* not its last frame */
  if (k->state[ch] == ELSEWHERE) k->state[ch] = CLOSED;
  if (k->state[ch] != HELD) return 0;
  k->state[ch] = ENDED;
  return finish(k, ch, msg, msgcap);
}

/* Sleeps s seconds, or less when *stop becomes set. */
static void nap(double s, const atomic_int *stop) {
  for (double left = s; left > 0 && !atomic_load_explicit(stop, memory_order_relaxed);
       left -= 0.05) {
    struct timespec t = {0, (long)((left < 0.05 ? left : 0.05) * 1e9)};
    nanosleep(&t, NULL);
  }
}

bool kiln__chunks_wait(kiln__chunks *k, const atomic_int *stop) {
  /* Looks again after 25 ms per chunk held elsewhere (at least 50 ms), doubling up to the claims'
   * poll interval: the last chunks of a job are usually finished soon (and seen soon), a long wait
   * (a dead holder) costs few looks, and a waiting process makes at most about 240 operations a
   * second on the folder however many chunks it waits for (docs/CLUSTER.md). */
  double interval = 0, cap = kiln__claims_poll_interval(k->claims);
  for (;;) {
    bool waiting = false, unreported = false;
    uint64_t held_elsewhere = 0;
    for (uint64_t ch = 0; ch < k->n; ch++) {
      uint8_t s = k->state[ch];
      if (s == ELSEWHERE) unreported = true;
      if (s != BUSY && s != LOST) continue;
      bool stale;
      if (kiln__claims_poll(k->claims, ch, &stale)) k->state[ch] = ELSEWHERE, unreported = true;
      else if (stale) k->state[ch] = UNTRIED;
      else waiting = true, held_elsewhere++;
    }
    for (uint64_t ch = 0; ch < k->n; ch++)
      if (k->state[ch] == UNTRIED) return true; /* one to take over: walk again */
    if (!waiting) return unreported;            /* all done: one last walk reports them */
    if (atomic_load_explicit(stop, memory_order_relaxed)) return false;
    if (interval == 0)
      interval = 0.025 * (double)held_elsewhere < 0.05 ? 0.05 : 0.025 * (double)held_elsewhere;
    else interval *= 2;
    if (interval > cap) interval = cap;
    nap(interval, stop);
  }
}
