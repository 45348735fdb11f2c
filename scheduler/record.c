/* record.c: allocation of task and future records, through a cache per thread, so that neither a
 * spawn, nor a submission from a thread outside the pool, nor the completion that drops a record
 * calls malloc or free once a program runs in a steady state.
 *
 * Every thread that allocates a record gets a cache on its first allocation (workers and threads
 * outside any pool alike), ended by a pthread key destructor when the thread exits. A record
 * remembers the cache it came from, its owner. Freed on the owner's thread, it goes onto the
 * owner's local list. Freed on any other thread, it is pushed onto the owner's `remote` stack,
 * which the owner takes whole, with one exchange, when its local list runs dry. So the records of
 * a chain that a thread outside the pool submits while workers run it go back to that thread,
 * instead of piling up in a worker's list while the submitter mallocs new ones (the thread-free
 * lists of mimalloc: Leijen, Zorn, de Moura, "Mimalloc: free list sharding in action", APLAS
 * 2019). The remote stack is only ever pushed one record at a time (a CAS on its head) and emptied
 * whole (an exchange): nothing is popped singly, so there is no ABA problem.
 *
 * Lifetime: a cache lives as long as its thread or any of its records, whichever is longer.
 * `records` counts the cache's records (in use or cached) plus one for its thread; whoever brings
 * it to 0 frees the cache. A thread that ends frees its cached records and swaps `remote` for
 * CACHE_DEAD; a later remote free finds CACHE_DEAD in its CAS and frees the record itself. A
 * record keeps its owner alive, so a remote free may touch the cache until the record is gone.
 *
 * How many records a thread keeps follows its demand: at least CACHE_MIN, and as many as the
 * thread has once had at the same time (allocated and not yet back), up to CACHE_MAX; beyond its
 * limit, records are freed. A thread outside the pool that builds a graph of 10^5 tasks, keeps
 * every future and releases them after the last result, builds the next graph of that size
 * without calling malloc, instead of freeing and re-allocating all but CACHE_MIN of them each
 * time; a burst larger than CACHE_MAX still gives the rest back. The limit never shrinks: a
 * thread keeps up to its largest burst's records (CACHE_MAX at most) until it exits, as an
 * allocator's free lists would keep them in the process. The base is generous because a
 * submitter that a busy machine lets run ahead of the workers by a time slice has thousands of
 * records in flight (with 4096, the chain benchmark freed and re-allocated them each round).
 *
 * The key is the one piece of process-wide state in the scheduler: created once (pthread_once),
 * never changed, it only lets each thread's cache be freed at that thread's exit. Without a key
 * (pthread_key_create failed) every record is a plain malloc and free. Its destructor lives in
 * this library, so a libkiln.so that has allocated records must not be dlclose'd while threads
 * that used it still run. */
#include <stdint.h>
#include <stdlib.h>

#include "internal.h"

/* records of 256 bytes: 4 MiB kept by any thread, up to 64 MiB by one that has needed them */
enum { CACHE_MIN = 16384, CACHE_MAX = 262144 };

struct kiln__cache {
  kiln_future *local; /* owner thread only */
  int nlocal;         /* owner thread only */
  int limit;          /* owner thread only: records kept at most, CACHE_MIN..CACHE_MAX */
  /* records freed by other threads; CACHE_DEAD once the owner has exited. Its own cache line:
   * other threads write it while the owner works on its local list. */
  _Alignas(64) _Atomic(kiln_future *) remote;
  _Atomic size_t records; /* records of this cache, plus one while the owner thread lives */
};

static char dead_tag; /* only its address is used */
#define CACHE_DEAD ((kiln_future *)(void *)&dead_tag)

static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t cache_key;
static bool key_ok; /* written once, inside pthread_once, which orders it before every reader */

static void cache_unref(kiln__cache *c) {
  /* acq_rel: the last drop sees every other thread's last use of c (remote pushes) before free */
  if (atomic_fetch_sub_explicit(&c->records, 1, memory_order_acq_rel) == 1) free(c);
}

/* Frees a record for good; the caller then drops the record's count on its cache. */
static void record_destroy(kiln_future *f) {
  pthread_mutex_destroy(&f->mu);
  free(f);
}

static void destroy_list(kiln__cache *c, kiln_future *l) {
  while (l) {
    kiln_future *next = l->next;
    record_destroy(l);
    cache_unref(c); /* never the last: the owner thread's count is dropped after this */
    l = next;
  }
}

/* The owner thread exits: pthread key destructor. */
static void cache_leave(void *arg) {
  kiln__cache *c = arg;
  kiln__self.cache = NULL;
  destroy_list(c, c->local);
  c->local = NULL;
  /* acquire: pairs with the release CAS of remote frees, whose records are freed here */
  destroy_list(c, atomic_exchange_explicit(&c->remote, CACHE_DEAD, memory_order_acquire));
  cache_unref(c);
}

static void key_create(void) { key_ok = pthread_key_create(&cache_key, cache_leave) == 0; }

/* The calling thread's cache, created on first use; NULL without memory or a key. */
static kiln__cache *thread_cache(void) {
  if (kiln__self.cache) return kiln__self.cache;
  pthread_once(&key_once, key_create);
  if (!key_ok) return NULL;
  kiln__cache *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  atomic_init(&c->remote, NULL);
  atomic_init(&c->records, 1);
  c->limit = CACHE_MIN;
  if (pthread_setspecific(cache_key, c) != 0) {
    free(c);
    return NULL;
  }
  kiln__self.cache = c;
  return c;
}

/* The local list is empty: take the records other threads have freed, keeping at most
 * c->limit. */
static void take_remote(kiln__cache *c) {
  /* relaxed: a peek; the exchange below is what synchronises */
  if (!atomic_load_explicit(&c->remote, memory_order_relaxed)) return;
  /* acquire: pairs with the release CAS in kiln__future_free, so every use of those records
   * by the threads that freed them happens before their reuse here */
  kiln_future *l = atomic_exchange_explicit(&c->remote, NULL, memory_order_acquire);
  int n = 0;
  kiln_future *last = NULL;
  for (kiln_future *f = l; f && n < c->limit; f = f->next) last = f, n++;
  if (last) {
    destroy_list(c, last->next);
    last->next = NULL;
  }
  c->local = l;
  c->nlocal = n;
}

static kiln_future *record_get(void) {
  kiln__cache *c = thread_cache();
  if (c) {
    if (!c->local) take_remote(c);
    kiln_future *f = c->local;
    if (f) {
      c->local = f->next;
      c->nlocal--;
      return f;
    }
  }
  kiln_future *f = malloc(sizeof *f);
  if (!f) return NULL;
  pthread_mutex_init(&f->mu, NULL);
  f->cache = c;
  if (c) {
    /* relaxed: the owner thread's own count keeps c alive; nothing is published through it.
     * The count (less the thread's own) is how many records this thread has out at once, give
     * or take those that other threads are freeing: the demand the limit follows. */
    size_t had = atomic_fetch_add_explicit(&c->records, 1, memory_order_relaxed);
    if (had > (size_t)c->limit) c->limit = had > CACHE_MAX ? CACHE_MAX : (int)had;
  }
  return f;
}

kiln_future *kiln__future_alloc(void) {
  kiln_future *f = record_get();
  if (!f) return NULL;
  atomic_init(&f->state, KILN__PENDING);
  atomic_init(&f->refs, 0);
  atomic_init(&f->deps_left, 0);
  f->code = 0;
  f->value = NULL;
  f->value_free = NULL;
  f->message = NULL;
  f->fn = NULL;
  f->arg = NULL;
  f->pool = NULL;
  f->fiber = false;
  f->ndeps = 0;
  f->dep_nodes = NULL;
  f->head = f->tail = NULL;
  f->next = f->cascade = NULL;
  return f;
}

/* Any thread, once the record's last reference is gone. */
void kiln__future_free(kiln_future *f) {
  kiln__cache *c = f->cache;
  if (!c) {
    record_destroy(f);
    return;
  }
  if (c == kiln__self.cache) { /* the owner's thread: c is alive and only this thread uses local */
    if (c->nlocal < c->limit) {
      f->next = c->local;
      c->local = f;
      c->nlocal++;
      return;
    }
    record_destroy(f);
    cache_unref(c);
    return;
  }
  /* relaxed: only a first guess at the head; the CAS below checks it */
  kiln_future *head = atomic_load_explicit(&c->remote, memory_order_relaxed);
  do {
    if (head == CACHE_DEAD) { /* the owner has exited: f's count is what keeps c alive */
      record_destroy(f);
      cache_unref(c);
      return;
    }
    f->next = head;
    /* release: pairs with the owner's acquire exchange in take_remote or cache_leave */
  } while (!atomic_compare_exchange_weak_explicit(&c->remote, &head, f, memory_order_release,
                                                  memory_order_relaxed));
}
