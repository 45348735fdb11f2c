/* stack.c: fiber stacks. Each is one anonymous private mapping: a PROT_NONE guard page at the
 * bottom (a guard region where the kernel has them), then the usable stack, rounded up to
 * whole pages. Only touched pages become resident.
 *
 * Freed stacks go to a per-thread LIFO pool of at most KILN__STACK_POOL_MAX, so that a thread
 * creating and destroying fibers maps memory only for its peak number of live fibers. The first
 * KILN__STACK_POOL_HOT stacks in the pool keep their pages (a create/destroy loop reuses a warm
 * stack without a system call); every further one is given back to the kernel with
 * MADV_DONTNEED as it enters, so that after a burst of fibers the resident size comes back down
 * (MADV_FREE would leave it counted until memory runs short). A stack that finds the pool full is
 * unmapped. The pool is unmapped when its thread exits.
 *
 * Stacks also cross threads: a pool fiber takes its stack on the worker that starts it and gives
 * it back on the worker where it ends, often the other one (a fiber woken by an I/O completion
 * resumes on whichever worker is free). Per-thread pools alone then leave one thread mapping a
 * fresh stack for every fiber (mmap, a guard, page faults) while the other gives every stack
 * back to the kernel (madvise: a TLB shootdown on every core). So between the two sits one
 * process-wide overflow of at most KILN__STACK_SHARED_MAX warm stacks, under a mutex: a stack
 * that finds its thread's hot part full goes there first, and a thread whose pool has no stack
 * of the size looks there before it maps one. It lives as long as the process. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, MAP_NORESERVE, MADV_DONTNEED */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fiber_internal.h"

#ifdef MADV_GUARD_INSTALL
#define GUARD_INSTALL MADV_GUARD_INSTALL
#else
#define GUARD_INSTALL 102 /* the value in linux/mman.h since 6.13 */
#endif

#ifdef KILN__FIBER_ASAN
#include <sanitizer/asan_interface.h>
#endif

size_t kiln__page_size(void) {
  /* Relaxed: every thread that finds 0 stores the same value, and nothing else is published
   * with it. */
  static _Atomic size_t page;
  size_t p = atomic_load_explicit(&page, memory_order_relaxed);
  if (!p) {
    p = (size_t)sysconf(_SC_PAGESIZE);
    atomic_store_explicit(&page, p, memory_order_relaxed);
  }
  return p;
}

/* The frames live on a stack when its fiber leaves it for good keep ASan's redzone marks: a
 * reused stack must start clean. A fiber that ended normally leaves only kiln__fiber_main's and
 * the final switch's frames, near the top; one abandoned by kiln_fiber_destroy may leave any.
 * Clearing ASan's marks writes its shadow memory (an eighth of the range), so only as much as
 * needed is cleared, or every pooled stack would commit shadow pages. */
enum { ENDED_FRAMES = 8 * 1024 };

static void unpoison(kiln__fiber_stack *s, bool whole) {
#ifdef KILN__FIBER_ASAN
  size_t page = kiln__page_size();
  size_t len = s->map_size - page;
  if (!whole && len > ENDED_FRAMES) len = ENDED_FRAMES;
  __asan_unpoison_memory_region(s->map + s->map_size - len, len);
#else
  (void)s;
  (void)whole;
#endif
}

static pthread_mutex_t shared_mu = PTHREAD_MUTEX_INITIALIZER;
static kiln__fiber_stack shared[KILN__STACK_SHARED_MAX]; /* under shared_mu */
static int nshared;                                      /* under shared_mu */
static _Atomic int shared_hint; /* nshared, read without the lock to skip it when empty */

/* A warm stack of map_size from the overflow, if it has one. */
static bool shared_take(size_t map_size, kiln__fiber_stack *out) {
  if (atomic_load_explicit(&shared_hint, memory_order_relaxed) == 0) return false;
  bool got = false;
  pthread_mutex_lock(&shared_mu);
  for (int i = nshared - 1; i >= 0 && !got; i--) {
    if (shared[i].map_size != map_size) continue;
    *out = shared[i];
    shared[i] = shared[--nshared];
    got = true;
  }
  atomic_store_explicit(&shared_hint, nshared, memory_order_relaxed);
  pthread_mutex_unlock(&shared_mu);
  return got;
}

/* Puts s into the overflow, warm; false when it is full. */
static bool shared_give(const kiln__fiber_stack *s) {
  bool kept = false;
  pthread_mutex_lock(&shared_mu);
  if (nshared < KILN__STACK_SHARED_MAX) shared[nshared++] = *s, kept = true;
  atomic_store_explicit(&shared_hint, nshared, memory_order_relaxed);
  pthread_mutex_unlock(&shared_mu);
  return kept;
}

int kiln__stack_get(kiln__fiber_thread *t, size_t size, kiln__fiber_stack *out) {
  size_t page = kiln__page_size();
  size_t map_size = (size + page - 1) / page * page + page;
  for (int i = t->npool - 1; i >= 0; i--) {
    if (t->pool[i].map_size == map_size) {
      *out = t->pool[i];
      t->pool[i] = t->pool[--t->npool];
      return 0;
    }
  }
  if (shared_take(map_size, out)) return 0;
  char *map = mmap(NULL, map_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (map == MAP_FAILED) return KILN_ENOMEM;
  /* A guard region (MADV_GUARD_INSTALL, Linux 6.13) where the kernel has them: unlike
   * mprotect it makes no mapping of its own, so adjacent stacks merge into one mapping and
   * 10^5 live stacks stay far below vm.max_map_count (65530 by default; two mappings a stack
   * with mprotect). Older kernels refuse the advice (EINVAL) and get mprotect. */
  if (madvise(map, page, GUARD_INSTALL) != 0 && mprotect(map, page, PROT_NONE) != 0) {
    munmap(map, map_size);
    return KILN_ENOMEM;
  }
  *out = (kiln__fiber_stack){map, map_size};
  return 0;
}

void kiln__stack_put(kiln__fiber_thread *t, kiln__fiber_stack *s, bool abandoned) {
  if (!s->map) return;
  unpoison(s, abandoned);
  if (t->npool == KILN__STACK_POOL_MAX) {
    munmap(s->map, s->map_size);
  } else {
    if (t->npool >= KILN__STACK_POOL_HOT) {
      if (shared_give(s)) {
        *s = (kiln__fiber_stack){0};
        return;
      }
      size_t page = kiln__page_size();
      madvise(s->map + page, s->map_size - page, MADV_DONTNEED);
    }
    t->pool[t->npool++] = *s;
  }
  *s = (kiln__fiber_stack){0};
}

void kiln__stack_drain(kiln__fiber_thread *t) {
  for (int i = 0; i < t->npool; i++) munmap(t->pool[i].map, t->pool[i].map_size);
  t->npool = 0;
}
