/* ppool_internal.h (internal): what the process pool's files share.
 *
 *   ppool.c         the pool: its job queue, one thread per worker slot, dispatch, worker death,
 *                   replacement, close/terminate/join; submit and apply
 *   ppool_map.c     map, map_async, starmap: chunk jobs completing one shared result table
 *   pimap.c         imap / imap_unordered: chunk jobs feeding an iterator
 *   ppool_worker.c  the loop a worker process runs, and kiln_ptask_fail
 *
 * The wire (inside kiln_channel messages, native byte order: both ends are the same program):
 *   parent -> worker, one message per batch:  u32 njobs, then per job
 *       u64 fn address, u32 star (0: kiln_ptask_fn, 1: kiln_pstar_fn), u32 nitems, u32 nargs,
 *       then nitems * nargs arguments, each u64 len + bytes
 *   worker -> parent, one message per job, sent when the job is done (so after a worker dies,
 *   the first job without a reply is the one it died in):
 *       u32 nitems, then per item: i32 code, u32 msglen, u64 rlen, msg bytes, result bytes
 *   A worker exits (status 0) at end of stream on its connection, or after maxtasksperchild jobs
 *   (the parent never sends it more than that). */
#ifndef KILN_PPOOL_INTERNAL_H
#define KILN_PPOOL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/proc.h"

/* One unit of dispatch: a single task, or one chunk of a map. Owned by the pool's queue, then by
 * the slot that runs it, until finish() has run (exactly once per job, on every path). */
typedef struct kiln__pjob kiln__pjob;
struct kiln__pjob {
  kiln__pjob *next;
  uint8_t *wire; /* this job's bytes of the batch message (header and arguments), malloc'd */
  size_t wire_len;
  uint32_t nitems;
  size_t first; /* index of the chunk's first item in its map */
  /* Completes the job: with the worker's reply (reply != NULL: nitems items as on the wire), or
   * with code < 0 and msg for every item (worker death, cancellation, broken pool). Runs on a
   * slot thread or in close/terminate's caller, never under the pool's lock; frees nothing of
   * the job (the pool frees it afterwards). */
  void (*finish)(kiln__pjob *j, const uint8_t *reply, size_t len, int code, const char *msg);
  /* Whether the job's owner no longer wants it (a cancelled future): checked when a slot takes
   * it; true drops it with finish(KILN_ECANCELLED). NULL: never. Marks a single task running. */
  bool (*take)(kiln__pjob *j);
  void *ctx;
};

/* Builds a job's wire bytes for nitems items of nargs arguments each (args[nitems * nargs]). 0,
 * KILN_EINVAL (an argument with a length and no data, or more than a message holds) or
 * KILN_ENOMEM. */
int kiln__pjob_encode(kiln__pjob *j, uintptr_t fn, bool star, const kiln_bytes *args,
                      size_t nitems, size_t nargs);

/* Queues jobs (a list linked by next, count n) at the tail, all or none: KILN_ESHUTDOWN after
 * close/terminate, KILN_EBROKEN on a broken pool; on failure the jobs stay the caller's. n 0
 * (head NULL) only checks that the pool takes work, as an empty map must. Any thread. */
int kiln__ppool_enqueue(kiln_ppool *p, kiln__pjob *head, size_t n);

/* Frees a job's own memory (not its ctx). */
void kiln__pjob_free(kiln__pjob *j);

/* Reads one reply item at *pos of reply[0..len), advancing *pos: 0, or KILN_EIO when malformed. */
typedef struct kiln__pitem {
  int code;
  const char *msg; /* not NUL-terminated: msglen bytes */
  size_t msglen;
  const void *data;
  size_t len;
} kiln__pitem;
int kiln__pitem_next(const uint8_t *reply, size_t len, size_t *pos, kiln__pitem *it);

/* The chunks of a map over n items in chunks of chunksize: built, encoded and linked; each
 * chunk's finish/ctx set by the caller afterwards. *out_n the number of chunks. 0, or the code of
 * kiln__pjob_encode (nothing allocated then). */
int kiln__pjob_chunks(uintptr_t fn, bool star, const kiln_bytes *args, size_t n, size_t nargs,
                      size_t chunksize, kiln__pjob **out, size_t *out_n);
void kiln__pjob_free_list(kiln__pjob *head);

/* A malloc'd copy of it->data as a kiln_bytes (data NULL when empty). 0 or KILN_ENOMEM. */
int kiln__pitem_bytes(const kiln__pitem *it, kiln_bytes *out);

/* Attaches callback ok (success) / err (failure or cancellation) to f, exactly one of them to run
 * once; *handle identifies the attachment for kiln__ppool_abandon. 0 or KILN_ENOMEM. */
int kiln__ppool_on_outcome(kiln_future *f, kiln_done_fn ok, kiln_done_fn err, void *arg,
                           void **handle);
/* Drops a future whose work was never queued: its callbacks (handle, may be NULL) never run; it
 * is cancelled and the caller's reference released. */
void kiln__ppool_abandon(kiln_future *f, void *handle);

/* The worker process's main (kiln_process_fn): arg is the worker config written by the pool. */
int kiln__ppool_worker_main(const void *arg, size_t len);

/* The worker config: u64 initializer address, u32 maxtasks, then the initarg bytes. */
enum { KILN__PWORKER_CFG_HEAD = 12 };

#endif /* KILN_PPOOL_INTERNAL_H */
