/* channel_ring.h (internal to sync/): the shared-memory byte rings under a kiln_channel pair.
 *
 * A pair's rings live in one memfd, mapped MAP_SHARED by every end in every process. Ring 0
 * carries b -> a, ring 1 (duplex pairs only) a -> b. Each ring is one writer, one reader: a
 * single-producer single-consumer byte queue with free-running 32-bit positions (Lamport's
 * queue, with C11 acquire/release on the positions as in Concurrency Kit's ck_ring). Nothing read
 * from the mapping is trusted beyond bounds: positions are masked, and a fill level above the
 * capacity is reported as corruption (KILN_EIO). */
#ifndef KILN_CHANNEL_RING_H
#define KILN_CHANNEL_RING_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A mapping of a pair's rings, shared by the ends of this process that use it (refs). */
typedef struct kiln__ring_map kiln__ring_map;

/* One direction: views into a mapping (borrowed from it). */
typedef struct kiln__ring {
  struct kiln__ring_hdr *h;
  unsigned char *data;
  uint32_t cap; /* a power of two */
  /* This end's last look at the peer's position, so that a message does not cost a read of the
   * cache line the peer has just written: the reader's tail (stored with release after an acquire
   * load of the ring's tail, so a thread that loads it with acquire sees those bytes; poll and
   * receive threads share it), the writer's head (under the end's send lock). Either may lag the
   * ring, which only makes the ring look fuller (writer) or emptier (reader) than it is; a value
   * that cannot be (the fill above the capacity) is read again from the ring, and so is the look
   * of an end whose own position in the header (head for the reader, tail for the writer) is no
   * longer the one it last stored itself (head_mine / tail_mine): a copy of the end in another
   * process has moved it since. */
  _Atomic uint32_t tail_seen, head_seen, head_mine, tail_mine;
} kiln__ring;

/* A new memfd with nrings (1 or 2) rings, mapped; refs 1. KILN_ENOMEM, or KILN_EIO where memfd
 * or mmap is not available (the caller falls back to the socket stream). */
int kiln__ring_map_create(int nrings, kiln__ring_map **out);
/* Maps memfd (the map's from now on; still the caller's on failure) received from another end.
 * KILN_EIO for a descriptor that is not a ring mapping of a valid size, sealed against
 * shrinking. */
int kiln__ring_map_open(int memfd, kiln__ring_map **out);
void kiln__ring_map_ref(kiln__ring_map *m);
/* Drops a reference; the last one unmaps and closes the memfd. NULL is a no-op. */
void kiln__ring_map_unref(kiln__ring_map *m);
/* The memfd (borrowed) and the number of rings. */
int kiln__ring_map_fd(const kiln__ring_map *m);
int kiln__ring_map_nrings(const kiln__ring_map *m);
/* Fills *r with ring idx (< nrings). */
void kiln__ring_get(kiln__ring_map *m, int idx, kiln__ring *r);

/* Reader side: copies up to want bytes into dst, *n of them (0 if empty). 0 or KILN_EIO. */
int kiln__ring_read(const kiln__ring *r, void *dst, size_t want, size_t *n);
/* Reader side, in place: the address of the next n bytes when all of them are in the ring and
 * lie in one piece (no wrap), else NULL; they stay there until kiln__ring_consume drops them. */
const void *kiln__ring_peek(const kiln__ring *r, size_t n);
/* Reader side: drops the next k bytes (k <= what is there), waking a writer waiting for room. */
void kiln__ring_consume(const kiln__ring *r, size_t k);
/* Bytes ready to read: 0 or more, KILN_EIO (as a negative int64) when corrupt. */
int64_t kiln__ring_avail(const kiln__ring *r);
/* Writer side: copies up to alen + blen bytes, a's then b's, *n of them (0 when full), and
 * publishes them at once. 0 or KILN_EIO. */
int kiln__ring_write2(const kiln__ring *r, const void *a, size_t alen, const void *b, size_t blen,
                      size_t *n);
/* Whether the writer could write `need` bytes now (true for a corrupt ring: the write reports
 * it). */
bool kiln__ring_has_room(const kiln__ring *r, size_t need);
/* Whether a reader is (about to be) asleep on the pair's socket, so a writer that has just
 * published bytes must send it a token byte. Also true forever after its end was closed. */
bool kiln__ring_reader_waiting(const kiln__ring *r);
/* A reader announces (+1) or withdraws (-1) its sleep; seq_cst, so that either the writer sees
 * the announcement or the reader's re-check of the ring sees the writer's bytes. */
void kiln__ring_reader_wait(const kiln__ring *r, int delta);

/* Locks m, waiting at most until deadline (kiln__now base; infinite: no limit): pthread's code,
 * 0, ETIMEDOUT, or EOWNERDEAD for a robust mutex whose holder died. */
int kiln__mutex_lock_until(pthread_mutex_t *m, double deadline);
/* The ring's writer lock, held for a whole message (copies of the writing end in several
 * processes may send at once): 0, KILN_ETIMEDOUT after the deadline (kiln__now base), KILN_EIO. */
int kiln__ring_writer_lock(const kiln__ring *r, double deadline);
void kiln__ring_writer_unlock(const kiln__ring *r);
/* Writer side, waiting for room: announce (+1) or withdraw (-1) the wait first, so that the
 * reader wakes it after consuming (seq_cst, the same handshake as kiln__ring_reader_wait) once
 * there is room for max(want, a quarter of the ring), at most the ring; then
 * read the reader's position (kiln__ring_room_seen), re-check the room, and sleep at most
 * `seconds` while the position is still `seen` (a futex on the shared mapping, so a reader in
 * another process wakes it too). */
void kiln__ring_writer_wait(const kiln__ring *r, int delta, size_t want);
uint32_t kiln__ring_room_seen(const kiln__ring *r);
void kiln__ring_room_wait(const kiln__ring *r, uint32_t seen, double seconds);
/* Wakes every thread (any process) in kiln__ring_room_wait on r. */
void kiln__ring_room_wake(const kiln__ring *r);

/* For tests: adds delta to the ring's write position, as a scribbling process would. */
void kiln__ring_scribble(const kiln__ring *r, uint32_t delta);

#endif /* KILN_CHANNEL_RING_H */
