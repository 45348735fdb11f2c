/* fiber.c: fibers with greenlet's model (include/kiln/fiber.h lists the rules kept): create,
 * switch, throw, parents, death and destruction, on the calling thread's state.
 *
 * A switch marks the target current, records where the value for the leaving fiber's own
 * pending switch is to go (its out) and jumps (switch.c): the value travels by a store to the
 * target's out, the code in a register. The common switch, to a started live fiber of the same
 * thread, never reaches this file: switch.c's kiln_fiber_switch does it in assembly, and comes
 * here (kiln__fiber_switch_slow) for everything else. A fiber whose fn returns is marked dead,
 * becomes its thread's zombie and jumps away for good; since no code can free the stack it runs
 * on, and the fiber it resumes may return straight into user code, the zombie's stack goes back
 * to the pool at the thread's next create, destroy or fiber end.
 *
 * ASan and TSan follow every swap: ASan through __sanitizer_start_switch_fiber before it and
 * __sanitizer_finish_switch_fiber after it (a dying fiber passes NULL so that its fake stack is
 * freed; the main fiber's bounds are learned from the first finish), TSan through its fiber
 * API, with the default synchronising switch so that the fibers of one thread are ordered. */
#include <assert.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "fiber_internal.h"

#include <string.h>

#ifdef KILN__FIBER_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define POISON(p, n) __asan_poison_memory_region(p, n)
#define UNPOISON(p, n) __asan_unpoison_memory_region(p, n)
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif
#ifdef KILN__FIBER_TSAN
#include <sanitizer/tsan_interface.h>
#endif

enum { MIN_STACK = 16 * 1024 };

static _Thread_local kiln__fiber_thread tl_state;
static _Thread_local kiln__fiber_thread *tl_self;
static pthread_key_t thread_key;
static pthread_once_t thread_key_once = PTHREAD_ONCE_INIT;

static void reap(kiln__fiber_thread *t);

/* Thread exit: the pooled stacks and the signal stack go. Fibers still alive on the thread are
 * leaked (they can never run again). */
static void thread_exit(void *arg) {
  kiln__fiber_thread *t = arg;
  while (t->free_fibers) {
    kiln_fiber *f = t->free_fibers;
    UNPOISON(f, sizeof *f);
    t->free_fibers = f->sp;
    free(f);
  }
  t->nfree = 0;
  reap(t);
  kiln__stack_drain(t);
  kiln__guard_thread_fini(t);
}

static void make_key(void) {
  /* Without the key, pooled stacks outlive their thread: memory, not correctness. */
  (void)pthread_key_create(&thread_key, thread_exit);
}

kiln__fiber_thread *kiln__fiber_thread_peek(void) { return tl_self; }

kiln__fiber_thread *kiln__fiber_thread_self(void) {
  kiln__fiber_thread *t = tl_self;
  if (t) return t;
  t = &tl_state;
  t->tp = kiln__thread_pointer();
  t->main.thread = t;
  t->main.is_main = true;
  t->main.state = KILN__FIBER_STARTED;
#ifdef KILN__FIBER_TSAN
  t->main.tsan = __tsan_get_current_fiber();
#endif
  t->current = &t->main;
  pthread_once(&thread_key_once, make_key);
  (void)pthread_setspecific(thread_key, t);
  tl_self = t;
  return t;
}

/* Fiber records are recycled per thread like their stacks: a create/destroy loop then does no
 * malloc, and the memory it uses stays flat (under ASan too, whose quarantine would otherwise
 * hold every freed record). */
static kiln_fiber *fiber_alloc(kiln__fiber_thread *t) {
  kiln_fiber *f = t->free_fibers;
  if (!f) return calloc(1, sizeof *f);
  UNPOISON(f, sizeof *f);
  t->free_fibers = f->sp;
  t->nfree--;
  memset(f, 0, sizeof *f);
  return f;
}

static void fiber_free(kiln_fiber *f) {
  kiln__fiber_thread *t = f->thread;
  if (t->nfree == KILN__FIBER_FREE_MAX) {
    free(f);
    return;
  }
  f->sp = t->free_fibers;
  t->free_fibers = f;
  t->nfree++;
  /* The link (sp, the first field) stays readable: LeakSanitizer does not follow pointers kept
   * in poisoned memory, and would report the rest of the list as leaked. */
  POISON((char *)f + sizeof f->sp, sizeof *f - sizeof f->sp);
}

static void ref(kiln_fiber *f) {
  if (!f->is_main) f->refs++;
}

static void unref(kiln_fiber *f) {
  while (f && !f->is_main && --f->refs == 0) {
    assert(f->released && f->state == KILN__FIBER_DEAD && !f->stack.map);
    kiln_fiber *parent = f->parent;
    fiber_free(f);
    f = parent;
  }
}

/* A dead fiber's stack, once nothing runs on it. */
static void retire(kiln__fiber_thread *t, kiln_fiber *f, bool abandoned) {
  kiln__stack_put(t, &f->stack, abandoned);
#ifdef KILN__FIBER_TSAN
  /* Not kept for reuse with the record: the frames a fiber never leaves (kiln__fiber_main, the
   * final switch) stay on its TSan fiber's shadow call stack, which would overflow. */
  if (f->tsan) __tsan_destroy_fiber(f->tsan);
  f->tsan = NULL;
#endif
}

/* The zombie's stack goes back: it ended and was left, so nothing runs on it. */
static void reap(kiln__fiber_thread *t) {
  kiln_fiber *z = t->zombie;
  if (!z) return;
  t->zombie = NULL;
  retire(t, z, false);
}

/* Runs on the fiber that resumes, first thing after a jump from fiber.c. */
static void after_swap(kiln__fiber_thread *t, kiln_fiber *self) {
#ifdef KILN__FIBER_ASAN
  __sanitizer_finish_switch_fiber(self->asan_fake, &t->from->asan_bottom, &t->from->asan_size);
#else
  (void)t;
  (void)self;
#endif
}

/* Leaves self for target (started or not, alive), handing it value and code; returns the code
 * that the fiber resuming self passes, its value having gone to *in (NULL: dropped). */
static int swap(kiln__fiber_thread *t, kiln_fiber *self, kiln_fiber *target, void *value, int code,
                void **in, bool dying) {
  if (target->state == KILN__FIBER_UNSTARTED) target->state = KILN__FIBER_STARTED;
  t->current = target;
  self->out = in;
#if defined(KILN__FIBER_ASAN) || defined(KILN__FIBER_TSAN)
  t->from = self;
#endif
#ifdef KILN__FIBER_ASAN
  __sanitizer_start_switch_fiber(dying ? NULL : &self->asan_fake, target->asan_bottom,
                                 target->asan_size);
#else
  (void)dying;
#endif
#ifdef KILN__FIBER_TSAN
  __tsan_switch_to_fiber(target->tsan, 0);
#endif
  code = kiln__fiber_jump(self, target, value, code);
  after_swap(t, self);
  return code;
}

/* Where a switch to f with code lands: f itself if alive, else its nearest live ancestor. An
 * error reaching a fiber that has not started kills it unrun and goes on up (greenlet's throw
 * into an unstarted greenlet). */
static kiln_fiber *landing(kiln__fiber_thread *t, kiln_fiber *f, int code) {
  for (;;) {
    if (f->state == KILN__FIBER_UNSTARTED && code < 0) {
      f->state = KILN__FIBER_DEAD;
      retire(t, f, false);
    }
    if (f->state != KILN__FIBER_DEAD) return f;
    f = f->parent; /* a main fiber never dies, so this ends */
  }
}

/* The switch or throw of the current fiber to f. */
static int transfer(kiln_fiber *f, void *value, int code, void **value_out) {
  if (value_out) *value_out = NULL;
  kiln__fiber_thread *t = kiln__fiber_thread_self();
  assert(f);
  if (f->thread != t) return KILN_ESTATE; /* greenlet: "cannot switch to a different thread" */
  kiln_fiber *self = t->current;
  kiln_fiber *target = landing(t, f, code);
  void *in = value;
  if (target != self) code = swap(t, self, target, code < 0 ? NULL : value, code, &in, false);
  if (code < 0) return code;
  if (value_out) *value_out = in;
  return 0;
}

/* kiln_fiber_switch's way when switch.c's assembly does not take it, and its whole body in the
 * sanitizer builds. */
int kiln__fiber_switch_slow(kiln_fiber *f, void *value, void **value_out) {
  return transfer(f, value, 0, value_out);
}

#ifndef KILN__FIBER_FAST
int kiln_fiber_switch(kiln_fiber *f, void *value, void **value_out) {
  return transfer(f, value, 0, value_out);
}
#endif

int kiln_fiber_throw(kiln_fiber *f, int code, void **value_out) {
  if (value_out) *value_out = NULL;
  if (code >= 0) return KILN_EINVAL;
  return transfer(f, NULL, code, value_out);
}

/* A fiber's life, entered from kiln__fiber_trampoline on its own stack by the first switch (the
 * transfer, the code 0, means nothing here). */
_Noreturn void kiln__fiber_main(void *transfer_arg) {
  (void)transfer_arg;
  kiln__fiber_thread *t = kiln__fiber_thread_peek();
  kiln_fiber *self = t->current;
  after_swap(t, self);
  void *result = NULL;
  int rc = self->fn(self->arg, t->value, &result);
  assert(rc <= 0);
  self->state = KILN__FIBER_DEAD;
  reap(t); /* the previous zombie: only one waits at a time */
  t->zombie = self;
  (void)swap(t, self, landing(t, self->parent, rc), rc < 0 ? NULL : result, rc, NULL, true);
  abort(); /* unreachable: nothing switches to a dead fiber */
}

int kiln_fiber_create(kiln_fiber_fn fn, void *arg, size_t stack_size, kiln_fiber *parent,
                      kiln_fiber **out) {
  *out = NULL;
  if (!fn) return KILN_EINVAL;
  kiln__fiber_thread *t = kiln__fiber_thread_self();
  if (!parent) parent = t->current;
  if (parent->thread != t) return KILN_ESTATE;
  reap(t); /* before taking a stack: a create/run/destroy loop reuses the same one */
  if (stack_size == 0) stack_size = KILN_FIBER_STACK_DEFAULT;
  if (stack_size < MIN_STACK) stack_size = MIN_STACK;
  if (stack_size > SIZE_MAX / 2) return KILN_EINVAL;
  kiln_fiber *f = fiber_alloc(t);
  if (!f) return KILN_ENOMEM;
  f->thread = t;
  int rc = kiln__stack_get(t, stack_size, &f->stack);
  if (rc < 0) {
    fiber_free(f);
    return rc;
  }
#ifdef KILN__FIBER_TSAN
  f->tsan = __tsan_create_fiber(0);
#endif
  kiln__guard_thread_init(t);
  size_t page = kiln__page_size();
  f->stack_size = f->stack.map_size - page;
  f->fn = fn;
  f->arg = arg;
  f->refs = 1;
  f->out = &t->value; /* kiln__fiber_main reads the first value there */
  f->parent = parent;
  ref(parent);
  kiln__fiber_init_context(f, f->stack.map + f->stack.map_size);
#ifdef KILN__FIBER_ASAN
  f->asan_bottom = f->stack.map + page;
  f->asan_size = f->stack_size;
#endif
  *out = f;
  return 0;
}

static bool is_ancestor(const kiln_fiber *a, const kiln_fiber *f) {
  for (; f; f = f->parent)
    if (f == a) return true;
  return false;
}

void kiln_fiber_destroy(kiln_fiber *f) {
  if (!f) return;
  kiln__fiber_thread *t = kiln__fiber_thread_self();
  assert(f->thread == t && !f->is_main && f != t->current && !f->released);
  if (f->state == KILN__FIBER_STARTED) {
    /* greenlet's collection of a suspended greenlet: unwind it with an error, and come back. */
    if (!is_ancestor(f, t->current)) kiln_fiber_set_parent(f, t->current);
    (void)kiln_fiber_throw(f, KILN_ECANCELLED, NULL);
    if (f->state != KILN__FIBER_DEAD) {
      f->state = KILN__FIBER_DEAD;
      retire(t, f, true);
    }
  } else if (f->state == KILN__FIBER_UNSTARTED) {
    f->state = KILN__FIBER_DEAD;
    retire(t, f, false);
  }
  reap(t); /* f itself, if it has just ended */
  f->released = true;
  unref(f);
}

kiln_fiber *kiln_fiber_current(void) { return kiln__fiber_thread_self()->current; }

kiln_fiber *kiln_fiber_parent(const kiln_fiber *f) { return f->parent; }

int kiln_fiber_set_parent(kiln_fiber *f, kiln_fiber *parent) {
  kiln__fiber_thread *t = kiln__fiber_thread_self();
  if (!f || !parent || f->is_main) return KILN_EINVAL;
  if (f->thread != t || parent->thread != t) return KILN_ESTATE;
  if (is_ancestor(f, parent)) return KILN_EINVAL; /* greenlet: "cyclic parent chain" */
  ref(parent);
  kiln_fiber *old = f->parent;
  f->parent = parent;
  unref(old);
  return 0;
}

bool kiln_fiber_dead(const kiln_fiber *f) { return f->state == KILN__FIBER_DEAD; }

bool kiln_fiber_started(const kiln_fiber *f) { return f->state != KILN__FIBER_UNSTARTED; }

bool kiln_fiber_is_main(const kiln_fiber *f) { return f->is_main; }

size_t kiln_fiber_stack_size(const kiln_fiber *f) { return f->stack_size; }
