/* channel_ring.c: the shared-memory byte rings of a kiln_channel pair (see channel_ring.h).
 *
 * Layout of the memfd: nrings times [a 4 KiB header page | RING_CAP bytes of data]. A header
 * holds the writer's position (tail) and the reader's (head) on separate cache lines, and two
 * wait counters: readers asleep on the pair's socket (a writer that publishes bytes while one is
 * counted sends a token byte on its socket) and writers asleep on the futex of head (a reader
 * that consumes bytes while one is counted wakes the futex). Both handshakes are Dekker's: each
 * side stores (its position or its counter) then loads the other's word, all seq_cst, so at
 * least one of the two sees the other and no wake-up is lost.
 *
 * Positions are free-running uint32_t; the fill level is tail - head (mod 2^32), which is at most
 * RING_CAP for an intact ring. Another process may scribble on the header or die half-way through
 * an update, so every position read is masked before it indexes the data, and a fill level above
 * the capacity is KILN_EIO. The memfd is sealed against shrinking before it is handed to anyone,
 * and an end adopted from another process checks the seal, so no mapping can lose its pages. */
#define _GNU_SOURCE
#include "channel_ring.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "kiln/sync.h"

/* 1 MiB per direction: large enough that a 64 KiB message never waits for a reader that is one
 * message behind; pages are touched only as the ring fills. */
/* kiln__ring.cap of every ring */
enum { RING_PAGE = 4096, RING_CAP = 1 << 20, RING_STRIDE = RING_PAGE + RING_CAP, LINE = 64 };

struct kiln__ring_hdr {
  _Atomic uint32_t tail; /* written by the writer only */
  _Atomic uint32_t readers_waiting;
  char pad0[LINE - 2 * sizeof(uint32_t)];
  _Atomic uint32_t head; /* written by the reader only; the futex word of writers waiting */
  _Atomic uint32_t writers_waiting;
  /* the room a waiting writer asks to be woken for: the reader does not wake it for less, so a
   * writer blocked on a full ring sleeps once per batch of messages, not once per message */
  _Atomic uint32_t room_wanted;
  char pad1[LINE - 3 * sizeof(uint32_t)];
  /* Held by a writer for a whole message: copies of the writing end in several processes (a
   * program and the children it handed the end to) may send at the same time, and each message
   * goes in whole, as on a socket. Process-shared and robust: a writer that dies holding it
   * passes it on (its message, if it was larger than the ring and partly in, is torn: the reader
   * reports KILN_EIO). */
  pthread_mutex_t wlock;
};

struct kiln__ring_map {
  _Atomic int refs;
  int fd;
  int nrings;
  unsigned char *base;
  size_t size;
};

/* Maps fd, which becomes the map's on success (the caller's still on failure). */
static int map_fd(int fd, int nrings, kiln__ring_map **out) {
  size_t size = (size_t)nrings * RING_STRIDE;
  kiln__ring_map *m = calloc(1, sizeof *m);
  if (!m) return KILN_ENOMEM;
  void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    free(m);
    return errno == ENOMEM ? KILN_ENOMEM : KILN_EIO;
  }
  atomic_init(&m->refs, 1);
  m->fd = fd, m->nrings = nrings, m->base = base, m->size = size;
  *out = m;
  return 0;
}

int kiln__ring_map_create(int nrings, kiln__ring_map **out) {
  *out = NULL;
  int fd = memfd_create("kiln-channel", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return errno == ENOMEM ? KILN_ENOMEM : KILN_EIO;
  /* zero-filled: every position and counter starts at 0. Sealed at that size, so that no
   * process holding it can shrink it under another's mapping (a SIGBUS there) */
  if (ftruncate(fd, (off_t)nrings * RING_STRIDE) != 0 ||
      fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    close(fd);
    return KILN_EIO;
  }
  int rc = map_fd(fd, nrings, out);
  if (rc) {
    close(fd);
    return rc;
  }
  pthread_mutexattr_t a;
  if (pthread_mutexattr_init(&a) != 0) {
    rc = KILN_EIO;
  } else {
    if (pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED) != 0 ||
        pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST) != 0)
      rc = KILN_EIO;
    for (int i = 0; rc == 0 && i < nrings; i++) {
      kiln__ring r;
      kiln__ring_get(*out, i, &r);
      if (pthread_mutex_init(&r.h->wlock, &a) != 0) rc = KILN_EIO;
    }
    pthread_mutexattr_destroy(&a);
  }
  if (rc) {
    kiln__ring_map_unref(*out); /* closes fd */
    *out = NULL;
  }
  return rc;
}

int kiln__mutex_lock_until(pthread_mutex_t *m, double deadline) {
  int e = pthread_mutex_trylock(m);
  if (e != EBUSY) return e;
  if (isinf(deadline)) return pthread_mutex_lock(m);
  double left = deadline - kiln__now();
  if (left <= 0) return ETIMEDOUT;
  if (left > 1e9) left = 1e9; /* about 31 years: a huge timeout must not overflow time_t */
  struct timespec ts;         /* pthread_mutex_timedlock counts in CLOCK_REALTIME */
  clock_gettime(CLOCK_REALTIME, &ts);
  double sec = floor(left);
  ts.tv_sec += (time_t)sec;
  ts.tv_nsec += (long)((left - sec) * 1e9);
  if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
  while ((e = pthread_mutex_timedlock(m, &ts)) == EINTR) {}
  return e;
}

int kiln__ring_writer_lock(const kiln__ring *r, double deadline) {
  int e = kiln__mutex_lock_until(&r->h->wlock, deadline);
  if (e == ETIMEDOUT) return KILN_ETIMEDOUT;
  /* a writer died holding it: the positions are whole (each is one store), so the ring goes on */
  if (e == EOWNERDEAD) e = pthread_mutex_consistent(&r->h->wlock);
  return e == 0 ? 0 : KILN_EIO;
}

void kiln__ring_writer_unlock(const kiln__ring *r) { pthread_mutex_unlock(&r->h->wlock); }

int kiln__ring_map_open(int memfd, kiln__ring_map **out) {
  *out = NULL;
  struct stat st;
  int seals = fcntl(memfd, F_GET_SEALS);
  if (fstat(memfd, &st) != 0 || seals < 0 || !(seals & F_SEAL_SHRINK) ||
      (st.st_size != RING_STRIDE && st.st_size != 2 * (off_t)RING_STRIDE))
    return KILN_EIO;
  return map_fd(memfd, (int)(st.st_size / RING_STRIDE), out);
}

void kiln__ring_map_ref(kiln__ring_map *m) {
  atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed); /* the caller holds one already */
}

void kiln__ring_map_unref(kiln__ring_map *m) {
  if (!m) return;
  /* acq_rel: the last owner's unmap comes after every other owner's use */
  if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1) return;
  munmap(m->base, m->size);
  close(m->fd);
  free(m);
}

int kiln__ring_map_fd(const kiln__ring_map *m) { return m->fd; }
int kiln__ring_map_nrings(const kiln__ring_map *m) { return m->nrings; }

void kiln__ring_get(kiln__ring_map *m, int idx, kiln__ring *r) {
  unsigned char *p = m->base + (size_t)idx * RING_STRIDE;
  r->h = (struct kiln__ring_hdr *)(void *)p;
  r->data = p + RING_PAGE;
  r->cap = RING_CAP;
  /* no look yet: the reader's shows an empty ring, the writer's a full one, so both read the ring
   * at their first use (relaxed: before the end is shared with other threads) */
  uint32_t head = atomic_load_explicit(&r->h->head, memory_order_relaxed);
  uint32_t tail = atomic_load_explicit(&r->h->tail, memory_order_relaxed);
  atomic_init(&r->tail_seen, head);
  atomic_init(&r->head_seen, tail - RING_CAP);
  atomic_init(&r->head_mine, head);
  atomic_init(&r->tail_mine, tail);
}

/* ---- bytes --------------------------------------------------------------------------------- */

/* The reader's fill, from its last look at tail when that shows at least `need` bytes, else from
 * the ring (KILN_EIO when corrupt). */
static int64_t avail_min(const kiln__ring *r, size_t need) {
  kiln__ring *rw = (kiln__ring *)r; /* the look-aside fields only: never a const object */
  uint32_t head = atomic_load_explicit(&r->h->head, memory_order_relaxed); /* the reader's own */
  /* acquire: pairs with the release below (this or another thread of this end) */
  uint32_t seen = atomic_load_explicit(&rw->tail_seen, memory_order_acquire);
  uint32_t fill = seen - head;
  /* the look counts only while head is where this end left it: a copy of the end in another
   * process may have read on since, up to and past that tail (positions wrap at 4 GiB) */
  if (head == atomic_load_explicit(&rw->head_mine, memory_order_relaxed) && fill <= r->cap &&
      fill >= need && fill != 0)
    return fill;
  /* acquire: pairs with the writer's store of tail, so the bytes before it are visible */
  uint32_t tail = atomic_load_explicit(&r->h->tail, memory_order_acquire);
  fill = tail - head;
  if (fill > r->cap) return KILN_EIO;
  atomic_store_explicit(&rw->head_mine, head, memory_order_relaxed);
  /* release: see the field. Only over the value loaded above, so that a thread that stalled
   * here never puts back an older look than another thread's */
  atomic_compare_exchange_strong_explicit(&rw->tail_seen, &seen, tail, memory_order_release,
                                          memory_order_relaxed);
  return (int64_t)fill;
}

int64_t kiln__ring_avail(const kiln__ring *r) { return avail_min(r, 1); }

int kiln__ring_read(const kiln__ring *r, void *dst, size_t want, size_t *n) {
  *n = 0;
  int64_t fill = avail_min(r, want);
  if (fill < 0) return (int)fill;
  uint32_t head = atomic_load_explicit(&r->h->head, memory_order_relaxed);
  size_t k = want < (size_t)fill ? want : (size_t)fill;
  if (k == 0) return 0;
  size_t at = head & (r->cap - 1), first = r->cap - at < k ? r->cap - at : k;
  memcpy(dst, r->data + at, first);
  memcpy((unsigned char *)dst + first, r->data, k - first);
  kiln__ring_consume(r, k);
  *n = k;
  return 0;
}

const void *kiln__ring_peek(const kiln__ring *r, size_t n) {
  int64_t fill = avail_min(r, n);
  if (fill < 0 || (uint64_t)fill < n) return NULL;
  size_t at = atomic_load_explicit(&r->h->head, memory_order_relaxed) & (r->cap - 1);
  return n <= r->cap - at ? r->data + at : NULL;
}

void kiln__ring_consume(const kiln__ring *r, size_t k) {
  uint32_t head = atomic_load_explicit(&r->h->head, memory_order_relaxed);
  /* seq_cst: releases the bytes just read to the writer (pairs with its acquire load of head),
   * and orders this store before the load of writers_waiting (Dekker, see the file comment) */
  atomic_store_explicit(&r->h->head, head + (uint32_t)k, memory_order_seq_cst);
  /* relaxed: read by this end's threads only as a check of the header */
  atomic_store_explicit(&((kiln__ring *)r)->head_mine, head + (uint32_t)k, memory_order_relaxed);
  if (atomic_load_explicit(&r->h->writers_waiting, memory_order_seq_cst) != 0) {
    /* relaxed: a hint; a writer never relies on it alone (it re-checks between sleep slices) */
    uint32_t wanted = atomic_load_explicit(&r->h->room_wanted, memory_order_relaxed);
    uint32_t left = atomic_load_explicit(&r->h->tail, memory_order_relaxed) - (head + (uint32_t)k);
    if (left > r->cap || r->cap - left >= (wanted < r->cap ? wanted : r->cap))
      kiln__ring_room_wake(r);
  }
}

/* Copies src[0..len) into the ring at position pos (no bounds beyond the mask needed: len <= cap). */
static void put_at(const kiln__ring *r, uint32_t pos, const void *src, size_t len) {
  size_t at = pos & (r->cap - 1), first = r->cap - at < len ? r->cap - at : len;
  memcpy(r->data + at, src, first);
  memcpy(r->data, (const unsigned char *)src + first, len - first);
}

/* The writer's room, from its last look at head when that leaves at least `need` bytes, else
 * from the ring (KILN_EIO when corrupt). */
static int64_t room_min(const kiln__ring *r, size_t need) {
  kiln__ring *rw = (kiln__ring *)r; /* the look-aside fields only: never a const object */
  uint32_t tail = atomic_load_explicit(&r->h->tail, memory_order_relaxed); /* the writer's own */
  /* relaxed: written and read under the end's send lock */
  uint32_t fill = tail - atomic_load_explicit(&rw->head_seen, memory_order_relaxed);
  /* the look counts only while tail is where this end left it (as in avail_min) */
  if (tail == atomic_load_explicit(&rw->tail_mine, memory_order_relaxed) && fill <= r->cap &&
      r->cap - fill >= need)
    return r->cap - fill;
  /* acquire: pairs with the reader's store of head: it has finished reading what we overwrite */
  uint32_t head = atomic_load_explicit(&r->h->head, memory_order_acquire);
  fill = tail - head;
  if (fill > r->cap) return KILN_EIO;
  atomic_store_explicit(&rw->head_seen, head, memory_order_relaxed);
  atomic_store_explicit(&rw->tail_mine, tail, memory_order_relaxed);
  return (int64_t)(r->cap - fill);
}

int kiln__ring_write2(const kiln__ring *r, const void *a, size_t alen, const void *b, size_t blen,
                      size_t *n) {
  *n = 0;
  if (alen + blen == 0) return 0;
  uint32_t tail = atomic_load_explicit(&r->h->tail, memory_order_relaxed); /* the writer's own */
  int64_t got = room_min(r, alen + blen);
  if (got < 0) return (int)got;
  size_t room = (size_t)got;
  size_t ka = alen < room ? alen : room, kb = blen < room - ka ? blen : room - ka;
  if (ka + kb == 0) return 0;
  if (ka) put_at(r, tail, a, ka);
  if (kb) put_at(r, tail + (uint32_t)ka, b, kb);
  /* seq_cst: publishes the bytes (pairs with the reader's acquire load of tail) and comes before
   * the writer's load of readers_waiting (Dekker) */
  atomic_store_explicit(&r->h->tail, tail + (uint32_t)(ka + kb), memory_order_seq_cst);
  /* relaxed: under the end's send lock */
  atomic_store_explicit(&((kiln__ring *)r)->tail_mine, tail + (uint32_t)(ka + kb),
                        memory_order_relaxed);
  *n = ka + kb;
  return 0;
}

/* ---- waiting ------------------------------------------------------------------------------- */

bool kiln__ring_reader_waiting(const kiln__ring *r) {
  return atomic_load_explicit(&r->h->readers_waiting, memory_order_seq_cst) != 0;
}

void kiln__ring_reader_wait(const kiln__ring *r, int delta) {
  atomic_fetch_add_explicit(&r->h->readers_waiting, (uint32_t)delta, memory_order_seq_cst);
  /* the reader's re-check of tail that follows is an acquire load, which C11 does not order
   * after this add: the fence makes the Dekker pair with the writer (its store of tail, then its
   * load of readers_waiting) hold on every CPU */
  atomic_thread_fence(memory_order_seq_cst);
}

void kiln__ring_writer_wait(const kiln__ring *r, int delta, size_t want) {
  if (delta > 0) {
    /* relaxed: ordered before the readers' load by the seq_cst add below */
    uint32_t w = want > r->cap / 4 ? (uint32_t)(want < r->cap ? want : r->cap) : r->cap / 4;
    atomic_store_explicit(&r->h->room_wanted, w, memory_order_relaxed);
  }
  atomic_fetch_add_explicit(&r->h->writers_waiting, (uint32_t)delta, memory_order_seq_cst);
}

uint32_t kiln__ring_room_seen(const kiln__ring *r) {
  return atomic_load_explicit(&r->h->head, memory_order_seq_cst);
}

/* The futex word is a plain uint32_t to the kernel; the mapping is shared between processes, so
 * the futex is not FUTEX_PRIVATE. */
static long futex(const kiln__ring *r, int op, uint32_t val, const struct timespec *ts) {
  return syscall(SYS_futex, (uint32_t *)(void *)&r->h->head, op, val, ts, NULL, 0);
}

void kiln__ring_room_wait(const kiln__ring *r, uint32_t seen, double seconds) {
  if (seconds <= 0) return;
  struct timespec ts = {.tv_sec = (time_t)seconds};
  ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
  futex(r, FUTEX_WAIT, seen, &ts); /* EAGAIN (moved already), EINTR, ETIMEDOUT: the caller loops */
}

void kiln__ring_room_wake(const kiln__ring *r) { futex(r, FUTEX_WAKE, INT32_MAX, NULL); }

void kiln__ring_scribble(const kiln__ring *r, uint32_t delta) {
  atomic_fetch_add_explicit(&r->h->tail, delta, memory_order_seq_cst);
}

bool kiln__ring_has_room(const kiln__ring *r, size_t need) {
  int64_t room = room_min(r, need);
  return room < 0 || (size_t)room >= need; /* corrupt: the write reports it */
}
