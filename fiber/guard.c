/* guard.c: the opt-in report of a fiber stack overflow (kiln_fiber_guard_handler_install).
 *
 * A fiber that overflows its stack faults in the PROT_NONE guard page below it. The handler
 * runs on an alternate signal stack (the faulting stack has no room left), looks at the
 * faulting thread's current fiber, and if the address lies in that fiber's guard page writes one
 * line with write(2) and aborts. Anything else goes to the handler installed before, or to the
 * default action. The compilers' stack-clash protection (gcc -fstack-clash-protection, the
 * Debian default) probes every page of a large frame, so a big frame also lands on the guard
 * page rather than jumping over it.
 *
 * Everything the handler calls is async-signal-safe: it reads the thread's state (already set up,
 * since the thread runs a fiber), formats numbers itself, and calls write, sigaction and abort. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, sigaltstack, SA_ONSTACK */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fiber_internal.h"

enum { ALTSTACK_SIZE = 64 * 1024 };

static atomic_bool installed;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static struct sigaction previous;
static int install_rc;

/* Appends "0x..." (hex) or a decimal number to buf at *n. */
static void put_hex(char *buf, size_t *n, uintptr_t v) {
  char tmp[2 + 2 * sizeof v];
  int len = 0;
  do {
    tmp[len++] = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v);
  buf[(*n)++] = '0';
  buf[(*n)++] = 'x';
  while (len) buf[(*n)++] = tmp[--len];
}

static void put_dec(char *buf, size_t *n, size_t v) {
  char tmp[24];
  int len = 0;
  do {
    tmp[len++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (len) buf[(*n)++] = tmp[--len];
}

static void put_str(char *buf, size_t *n, const char *s) {
  size_t len = strlen(s);
  memcpy(buf + *n, s, len);
  *n += len;
}

static void report(const kiln_fiber *f, uintptr_t addr) {
  char buf[256];
  size_t n = 0;
  size_t page = kiln__page_size();
  put_str(buf, &n, "kiln: fiber stack overflow: fault at ");
  put_hex(buf, &n, addr);
  put_str(buf, &n, " in the guard page of fiber ");
  put_hex(buf, &n, (uintptr_t)f);
  put_str(buf, &n, " (stack ");
  put_hex(buf, &n, (uintptr_t)(f->stack.map + page));
  put_str(buf, &n, "-");
  put_hex(buf, &n, (uintptr_t)(f->stack.map + f->stack.map_size));
  put_str(buf, &n, ", ");
  put_dec(buf, &n, f->stack_size);
  put_str(buf, &n, " bytes); aborting\n");
  ssize_t w = write(STDERR_FILENO, buf, n);
  (void)w;
}

static void on_segv(int sig, siginfo_t *si, void *uc) {
  kiln__fiber_thread *t = kiln__fiber_thread_peek();
  const kiln_fiber *f = t ? t->current : NULL;
  uintptr_t addr = (uintptr_t)si->si_addr;
  if (f && f->stack.map && addr >= (uintptr_t)f->stack.map &&
      addr < (uintptr_t)f->stack.map + kiln__page_size()) {
    report(f, addr);
    abort();
  }
  if ((previous.sa_flags & SA_SIGINFO) && previous.sa_sigaction) {
    previous.sa_sigaction(sig, si, uc);
  } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
    previous.sa_handler(sig);
  } else {
    /* Back to the default action: returning re-runs the faulting access, which now ends the
     * process with SIGSEGV as if no handler had been there. */
    signal(sig, SIG_DFL);
  }
}

static void install(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSEGV, &sa, &previous) != 0) {
    install_rc = KILN_EINVAL;
    return;
  }
  atomic_store_explicit(&installed, true, memory_order_release); /* pairs with the acquire in
                                                                  * kiln__guard_thread_init */
}

int kiln_fiber_guard_handler_install(void) {
  pthread_once(&install_once, install);
  if (install_rc < 0) return install_rc;
  kiln__fiber_thread *t = kiln__fiber_thread_self();
  kiln__guard_thread_init(t);
  return t->altstack || t->altstack_size ? 0 : KILN_ENOMEM;
}

/* A signal stack for the calling thread, unless it has one already (ASan gives its threads
 * one); altstack_size records that the thread is covered either way. */
void kiln__guard_thread_init(kiln__fiber_thread *t) {
  if (t->altstack_size || !atomic_load_explicit(&installed, memory_order_acquire)) return;
  stack_t old;
  if (sigaltstack(NULL, &old) == 0 && !(old.ss_flags & SS_DISABLE)) {
    t->altstack_size = old.ss_size;
    return;
  }
  void *mem = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return;
  stack_t ss = {.ss_sp = mem, .ss_size = ALTSTACK_SIZE, .ss_flags = 0};
  if (sigaltstack(&ss, NULL) != 0) {
    munmap(mem, ALTSTACK_SIZE);
    return;
  }
  t->altstack = mem;
  t->altstack_size = ALTSTACK_SIZE;
}

void kiln__guard_thread_fini(kiln__fiber_thread *t) {
  if (!t->altstack) return;
  stack_t ss = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
  if (sigaltstack(&ss, NULL) == 0) munmap(t->altstack, t->altstack_size);
  t->altstack = NULL;
  t->altstack_size = 0;
}
