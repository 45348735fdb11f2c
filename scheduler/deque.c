/* deque.c: Chase-Lev work-stealing deque (see internal.h for the algorithm and who may call what).
 * The orders follow Lê et al. 2013, Fig. 1, with one change for ThreadSanitizer, which does not
 * model standalone fences: push publishes with a release store of bottom instead of
 * fence(release) + relaxed store (same or stronger ordering). */
#include <stdlib.h>

#include "internal.h"

static kiln__deque_array *array_new(int64_t size, kiln__deque_array *prev) {
  kiln__deque_array *a = malloc(sizeof(*a) + (size_t)size * sizeof(a->buf[0]));
  if (!a) return NULL;
  a->size = size;
  a->prev = prev;
  for (int64_t i = 0; i < size; i++) atomic_init(&a->buf[i], NULL);
  return a;
}

int kiln__deque_init(kiln__deque *d, int64_t capacity) {
  int64_t size = 16;
  while (size < capacity) size *= 2;
  kiln__deque_array *a = array_new(size, NULL);
  if (!a) return KILN_ENOMEM;
  atomic_init(&d->top, 0);
  atomic_init(&d->bottom, 0);
  atomic_init(&d->array, a);
  return 0;
}

void kiln__deque_fini(kiln__deque *d) {
  kiln__deque_array *a = atomic_load_explicit(&d->array, memory_order_relaxed);
  while (a) {
    kiln__deque_array *prev = a->prev;
    free(a);
    a = prev;
  }
}

/* Owner only. The old array stays reachable through prev: a thief may still read it. */
static kiln__deque_array *grow(kiln__deque *d, kiln__deque_array *a, int64_t t, int64_t b) {
  kiln__deque_array *n = array_new(a->size * 2, a);
  if (!n) return NULL;
  for (int64_t i = t; i < b; i++) {
    void *x = atomic_load_explicit(&a->buf[i & (a->size - 1)], memory_order_relaxed);
    atomic_store_explicit(&n->buf[i & (n->size - 1)], x, memory_order_relaxed);
  }
  /* release: pairs with the acquire load of array in steal, so a thief sees the copied items */
  atomic_store_explicit(&d->array, n, memory_order_release);
  return n;
}

int kiln__deque_push(kiln__deque *d, void *item) {
  int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
  /* acquire: pairs with the CAS on top in steal/pop, so the slot a thief took is free again */
  int64_t t = atomic_load_explicit(&d->top, memory_order_acquire);
  kiln__deque_array *a = atomic_load_explicit(&d->array, memory_order_relaxed);
  if (b - t > a->size - 1) {
    a = grow(d, a, t, b);
    if (!a) return KILN_ENOMEM;
  }
  atomic_store_explicit(&a->buf[b & (a->size - 1)], item, memory_order_relaxed);
  /* release: pairs with the acquire load of bottom in steal; publishes the item and its task */
  atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
  return 0;
}

void *kiln__deque_pop(kiln__deque *d) {
  int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed) - 1;
  kiln__deque_array *a = atomic_load_explicit(&d->array, memory_order_relaxed);
  atomic_store_explicit(&d->bottom, b, memory_order_relaxed);
  /* seq_cst fence: orders the bottom store before the top load (Dekker with steal's fence) */
  atomic_thread_fence(memory_order_seq_cst);
  int64_t t = atomic_load_explicit(&d->top, memory_order_relaxed);
  void *x = KILN__DEQUE_EMPTY;
  if (t <= b) {
    x = atomic_load_explicit(&a->buf[b & (a->size - 1)], memory_order_relaxed);
    if (t == b) {
      /* last item: race thieves for it through top */
      if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1, memory_order_seq_cst,
                                                   memory_order_relaxed))
        x = KILN__DEQUE_EMPTY;
      atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
    }
  } else {
    atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
  }
  return x;
}

void *kiln__deque_steal(kiln__deque *d) {
  /* acquire: pairs with the CAS on top by other thieves and the owner */
  int64_t t = atomic_load_explicit(&d->top, memory_order_acquire);
  atomic_thread_fence(memory_order_seq_cst); /* Dekker with pop's fence */
  /* acquire: pairs with the release store of bottom in push */
  int64_t b = atomic_load_explicit(&d->bottom, memory_order_acquire);
  if (t >= b) return KILN__DEQUE_EMPTY;
  /* acquire (for consume): pairs with the release store in grow */
  kiln__deque_array *a = atomic_load_explicit(&d->array, memory_order_acquire);
  void *x = atomic_load_explicit(&a->buf[t & (a->size - 1)], memory_order_relaxed);
  if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1, memory_order_seq_cst,
                                               memory_order_relaxed))
    return KILN__DEQUE_ABORT;
  return x;
}
