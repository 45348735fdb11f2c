/* switch.c: the context switch between fibers, in assembly for x86-64 (System V) and AArch64
 * (AAPCS64).
 *
 * A switch is a call: everything the ABI lets a callee clobber is already saved by the caller,
 * so a switch saves only the callee-saved state, swaps the stack pointer and restores the same
 * state of the other fiber:
 *   x86-64:  rbx rbp r12-r15, the MXCSR (SSE rounding and exception masks) and the x87 control
 *            word, whose control bits System V makes callee-saved. They are reloaded only when
 *            the two fibers' control bits differ (ldmxcsr and fldcw are slow, and fibers of a
 *            thread nearly always share them), and then the MXCSR's status flags (bits 0-5) are
 *            kept: they belong to the thread, like the x87 status word. Comparing them too would
 *            reload on every switch between fibers whose sticky flags differ (one has done an
 *            inexact division, the other not), and by switching them keep them different;
 *   AArch64: x19-x28, the frame pointer x29, the link register x30, d8-d15 and (fiber.c's
 *            switch) the FPCR, whose rounding mode and trap enables are callee-saved likewise.
 * No system call (ucontext's swapcontext makes one per switch to save the signal mask; fibers
 * share their thread's mask).
 *
 * Two switches live here. kiln__fiber_swap keeps the state on the stack it leaves, and a new
 * stack starts with the frame it pops (kiln__fiber_init_stack): zeroed registers, the creator's
 * floating-point control state on x86-64, and a return address that lands in
 * kiln__fiber_trampoline, which calls kiln__fiber_main(transfer) with the stack 16-byte aligned
 * and marks the end of the call chain for debuggers and unwinders.
 *
 * fiber.c's switch (kiln__fiber_jump, and kiln_fiber_switch itself outside sanitizer builds) is
 * built for speed: a switch back and forth between two fibers is one dependent chain, the next
 * switch's target being a register that this one restores. Its context lives in the fiber's
 * record (ctx), so the restoring loads need only the target's address, which the caller had in
 * a register all along, rather than the stack pointer, itself loaded first: one load on the
 * chain instead of two. It resumes the target by an indirect jump to its return address (left
 * on its stack by the call) rather than a ret: the return-stack buffer holds this call's own
 * return address, which a ret to another fiber's caller mispredicts every time, while the
 * indirect predictor learns the alternation from the path history. Measured on the bench's
 * ping-pong (docs/PERFORMANCE.md): ret instead of the jump makes a switch 4 times slower.
 *
 * This file is built with -fcf-protection=none (CMakeLists.txt): its switches return on another
 * stack than they were called on, which a CET shadow stack would refuse; the object's missing
 * shadow-stack mark keeps the kernel from enabling one for the program. It includes no libc
 * header, so that it can be cross-compiled for the other architecture without a sysroot:
 *   clang --target=aarch64-linux-gnu -ffreestanding -Iinclude -Ifiber -c fiber/switch.c */
#include <stddef.h>
#include <stdint.h>

#include "fiber_internal.h"

/* The assembly reaches into the records by these offsets. */
_Static_assert(offsetof(kiln_fiber, sp) == KILN__FIBER_SP, "fiber sp");
_Static_assert(offsetof(kiln_fiber, thread) == KILN__FIBER_THREAD, "fiber thread");
_Static_assert(offsetof(kiln_fiber, out) == KILN__FIBER_OUT, "fiber out");
_Static_assert(offsetof(kiln_fiber, state) == KILN__FIBER_STATE, "fiber state");
_Static_assert(sizeof(((kiln_fiber *)0)->state) == 1, "fiber state is a byte");
_Static_assert(offsetof(kiln_fiber, ctx) == KILN__FIBER_CTX, "fiber ctx");
_Static_assert(KILN__FIBER_STARTED == KILN__FIBER_STARTED_VALUE, "started");
_Static_assert(offsetof(kiln__fiber_thread, tp) == KILN__THREAD_TP, "thread tp");
_Static_assert(offsetof(kiln__fiber_thread, current) == KILN__THREAD_CURRENT, "thread current");

#define STR2(x) #x
#define STR(x) STR2(x)
/* A field's offset as assembly text, plus a constant: OFF(FIBER_CTX, 8) is "32+8". */
#define OFF(field, plus) STR(KILN__##field) "+" #plus

#if defined(__x86_64__)

__asm__(".text\n"
        ".globl kiln__fiber_swap\n"
        ".hidden kiln__fiber_swap\n"
        ".type kiln__fiber_swap,@function\n"
        ".p2align 4\n"
        "kiln__fiber_swap:\n" /* rdi = void **save_sp, rsi = new sp, rdx = transfer */
        "  pushq %rbp\n"
        "  pushq %rbx\n"
        "  pushq %r12\n"
        "  pushq %r13\n"
        "  pushq %r14\n"
        "  pushq %r15\n"
        "  pushq $0\n"
        "  stmxcsr (%rsp)\n"
        "  fnstcw 4(%rsp)\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsp, %rcx\n"
        "  movq %rsi, %rsp\n"
        "  movq (%rsp), %rax\n" /* reloading costs more than comparing: only when they differ */
        "  xorq (%rcx), %rax\n"
        "  testq $-64, %rax\n" /* MXCSR bits 0-5 are status flags: the thread's, kept */
        "  jz 1f\n"
        "  movl (%rsp), %eax\n"
        "  andl $-64, %eax\n"
        "  movl (%rcx), %r8d\n"
        "  andl $63, %r8d\n"
        "  orl %r8d, %eax\n"
        "  movl %eax, (%rsp)\n"
        "  ldmxcsr (%rsp)\n"
        "  fldcw 4(%rsp)\n"
        "1:\n"
        "  addq $8, %rsp\n"
        "  popq %r15\n"
        "  popq %r14\n"
        "  popq %r13\n"
        "  popq %r12\n"
        "  popq %rbx\n"
        "  popq %rbp\n"
        "  movq %rdx, %rax\n"
        "  ret\n"
        ".size kiln__fiber_swap, .-kiln__fiber_swap\n"
        ".globl kiln__fiber_trampoline\n"
        ".hidden kiln__fiber_trampoline\n"
        ".type kiln__fiber_trampoline,@function\n"
        ".p2align 4\n"
        "kiln__fiber_trampoline:\n"
        "  .cfi_startproc\n"
        "  .cfi_undefined rip\n"
        "  movq %rax, %rdi\n"
        "  call kiln__fiber_main\n"
        "  ud2\n"
        "  .cfi_endproc\n"
        ".size kiln__fiber_trampoline, .-kiln__fiber_trampoline\n");

void kiln__fiber_trampoline(void);

/* The frame kiln__fiber_swap pops, lowest address first: 8 bytes of MXCSR, x87 control word and
 * two zero bytes (compared as one word), r15 r14 r13 r12 rbx rbp, the return address. After its ret the stack pointer is top (16-byte
 * aligned), as the trampoline's call needs. */
void *kiln__fiber_init_stack(char *top) {
  uint64_t *sp = (uint64_t *)(void *)top - 8;
  uint32_t mxcsr;
  uint16_t fcw;
  __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
  __asm__ volatile("fnstcw %0" : "=m"(fcw));
  sp[0] = mxcsr | (uint64_t)fcw << 32; /* little-endian: MXCSR at 0, control word at 4 */
  for (int i = 1; i < 7; i++) sp[i] = 0;
  sp[7] = (uint64_t)(uintptr_t)kiln__fiber_trampoline;
  return sp;
}


/* fiber.c's switch, from the registers: r9 = the fiber leaving (its out already set), rdi = the
 * target, rsi = the value for it, ecx = the code its pending call returns. ctx: rbx rbp r12-r15,
 * then the MXCSR and the x87 control word (compared in two parts: a load spanning both narrow
 * stores would not be forwarded from them); the return address stays on the stack. */
// clang-format off
#define JUMP_X86(ret)                                                                              \
  "  leaq 8(%rsp), %rax\n"                                                                         \
  "  movq %rax, " OFF(FIBER_SP, 0) "(%r9)\n"                                                       \
  "  movq %rbx, " OFF(FIBER_CTX, 0) "(%r9)\n"                                                      \
  "  movq %rbp, " OFF(FIBER_CTX, 8) "(%r9)\n"                                                      \
  "  movq %r12, " OFF(FIBER_CTX, 16) "(%r9)\n"                                                     \
  "  movq %r13, " OFF(FIBER_CTX, 24) "(%r9)\n"                                                     \
  "  movq %r14, " OFF(FIBER_CTX, 32) "(%r9)\n"                                                     \
  "  movq %r15, " OFF(FIBER_CTX, 40) "(%r9)\n"                                                     \
  "  stmxcsr " OFF(FIBER_CTX, 48) "(%r9)\n"                                                        \
  "  fnstcw " OFF(FIBER_CTX, 52) "(%r9)\n"                                                         \
  "  movq " OFF(FIBER_OUT, 0) "(%rdi), %rax\n"                                                     \
  "  testq %rax, %rax\n"                                                                           \
  "  jz 3f\n"                                                                                      \
  "  movq %rsi, (%rax)\n"                                                                          \
  "3:\n"                                                                                           \
  "  movl " OFF(FIBER_CTX, 48) "(%r9), %r10d\n"                                                    \
  "  movzwl " OFF(FIBER_CTX, 52) "(%r9), %r11d\n"                                                  \
  "  movl " OFF(FIBER_CTX, 48) "(%rdi), %eax\n"                                                    \
  "  xorl %r10d, %eax\n"                                                                           \
  "  testl $-64, %eax\n" /* MXCSR bits 0-5 are status flags */                                     \
  "  jne 2f\n"                                                                                     \
  "  cmpw " OFF(FIBER_CTX, 52) "(%rdi), %r11w\n"                                                   \
  "  jne 2f\n"                                                                                     \
  "1:\n"                                                                                           \
  "  movq " OFF(FIBER_CTX, 0) "(%rdi), %rbx\n"                                                     \
  "  movq " OFF(FIBER_CTX, 8) "(%rdi), %rbp\n"                                                     \
  "  movq " OFF(FIBER_CTX, 16) "(%rdi), %r12\n"                                                    \
  "  movq " OFF(FIBER_CTX, 24) "(%rdi), %r13\n"                                                    \
  "  movq " OFF(FIBER_CTX, 32) "(%rdi), %r14\n"                                                    \
  "  movq " OFF(FIBER_CTX, 40) "(%rdi), %r15\n"                                                    \
  "  movq " OFF(FIBER_SP, 0) "(%rdi), %rsp\n"                                                      \
  "  .cfi_def_cfa_offset 0\n" /* the target's return address is below its stack pointer */         \
  ret                                                                                              \
  "  jmpq *-8(%rsp)\n"                                                                             \
  "  .cfi_def_cfa_offset 8\n"                                                                      \
  "2:\n" /* the control bits differ (rare): the target's, with the thread's status flags */        \
  "  movl " OFF(FIBER_CTX, 48) "(%rdi), %eax\n"                                                    \
  "  andl $-64, %eax\n"                                                                            \
  "  andl $63, %r10d\n"                                                                            \
  "  orl %r10d, %eax\n"                                                                            \
  "  movl %eax, " OFF(FIBER_CTX, 48) "(%rdi)\n"                                                    \
  "  ldmxcsr " OFF(FIBER_CTX, 48) "(%rdi)\n"                                                       \
  "  fldcw " OFF(FIBER_CTX, 52) "(%rdi)\n"                                                         \
  "  jmp 1b\n"

__asm__(".text\n"
        ".globl kiln__fiber_jump\n"
        ".hidden kiln__fiber_jump\n"
        ".type kiln__fiber_jump,@function\n"
        ".p2align 4\n"
        "kiln__fiber_jump:\n" /* rdi = self, rsi = target, rdx = value, ecx = code */
        "  .cfi_startproc\n"
        "  movq %rdi, %r9\n"
        "  movq %rsi, %rdi\n"
        "  movq %rdx, %rsi\n"
        JUMP_X86("  movl %ecx, %eax\n")
        "  .cfi_endproc\n"
        ".size kiln__fiber_jump, .-kiln__fiber_jump\n");

#ifdef KILN__FIBER_FAST
/* kiln_fiber_switch(f, value, value_out): the checks of fiber.c's transfer() that let a switch
 * skip it (f not NULL, of this thread, started and alive: no landing to look for, no start, no
 * error), then current = f, self->out = value_out, and the jump with code 0. A switch to the current fiber needs no check: it saves its context and resumes it at once,
 * with its own value. Anything else goes on to kiln__fiber_switch_slow, arguments untouched. */
__asm__(".text\n"
        ".globl kiln_fiber_switch\n"
        ".type kiln_fiber_switch,@function\n"
        ".p2align 4\n"
        "kiln_fiber_switch:\n" /* rdi = f, rsi = value, rdx = value_out */
        "  .cfi_startproc\n"
        "  testq %rdi, %rdi\n"
        "  jz 9f\n"
        "  movq " OFF(FIBER_THREAD, 0) "(%rdi), %r8\n"
        "  movq %fs:0, %rax\n"
        "  cmpq %rax, " OFF(THREAD_TP, 0) "(%r8)\n"
        "  jne 9f\n"
        "  cmpb $" STR(KILN__FIBER_STARTED_VALUE) ", " OFF(FIBER_STATE, 0) "(%rdi)\n"
        "  jne 9f\n"
        "  movq " OFF(THREAD_CURRENT, 0) "(%r8), %r9\n"
        "  movq %rdx, " OFF(FIBER_OUT, 0) "(%r9)\n"
        "  movq %rdi, " OFF(THREAD_CURRENT, 0) "(%r8)\n"
        JUMP_X86("  xorl %eax, %eax\n")
        "9:\n"
        "  jmp kiln__fiber_switch_slow\n"
        "  .cfi_endproc\n"
        ".size kiln_fiber_switch, .-kiln_fiber_switch\n");
#endif
// clang-format on

/* A new fiber's context for fiber.c's switch: zeroed registers, the creator's control words,
 * and on the stack the return address that lands in kiln__fiber_trampoline; after the jump
 * pops it the stack pointer is top (16-byte aligned), as the trampoline's call needs. */
void kiln__fiber_init_context(kiln_fiber *f, char *top) {
  ((uint64_t *)(void *)top)[-1] = (uint64_t)(uintptr_t)kiln__fiber_trampoline;
  f->sp = top;
  for (int i = 0; i < KILN__FIBER_CTX_WORDS; i++) f->ctx[i] = 0;
  unsigned char *fp = (unsigned char *)&f->ctx[6];
  __asm__ volatile("stmxcsr %0" : "=m"(*(uint32_t *)(void *)fp));
  __asm__ volatile("fnstcw %0" : "=m"(*(uint16_t *)(void *)(fp + 4)));
}

#elif defined(__aarch64__)

__asm__(".text\n"
        ".globl kiln__fiber_swap\n"
        ".hidden kiln__fiber_swap\n"
        ".type kiln__fiber_swap,%function\n"
        ".p2align 4\n"
        "kiln__fiber_swap:\n" /* x0 = void **save_sp, x1 = new sp, x2 = transfer */
        "  sub sp, sp, #160\n"
        "  stp x19, x20, [sp, #0]\n"
        "  stp x21, x22, [sp, #16]\n"
        "  stp x23, x24, [sp, #32]\n"
        "  stp x25, x26, [sp, #48]\n"
        "  stp x27, x28, [sp, #64]\n"
        "  stp x29, x30, [sp, #80]\n"
        "  stp d8, d9, [sp, #96]\n"
        "  stp d10, d11, [sp, #112]\n"
        "  stp d12, d13, [sp, #128]\n"
        "  stp d14, d15, [sp, #144]\n"
        "  mov x9, sp\n"
        "  str x9, [x0]\n"
        "  mov sp, x1\n"
        "  ldp x19, x20, [sp, #0]\n"
        "  ldp x21, x22, [sp, #16]\n"
        "  ldp x23, x24, [sp, #32]\n"
        "  ldp x25, x26, [sp, #48]\n"
        "  ldp x27, x28, [sp, #64]\n"
        "  ldp x29, x30, [sp, #80]\n"
        "  ldp d8, d9, [sp, #96]\n"
        "  ldp d10, d11, [sp, #112]\n"
        "  ldp d12, d13, [sp, #128]\n"
        "  ldp d14, d15, [sp, #144]\n"
        "  add sp, sp, #160\n"
        "  mov x0, x2\n"
        "  ret\n"
        ".size kiln__fiber_swap, .-kiln__fiber_swap\n"
        ".globl kiln__fiber_trampoline\n"
        ".hidden kiln__fiber_trampoline\n"
        ".type kiln__fiber_trampoline,%function\n"
        ".p2align 4\n"
        "kiln__fiber_trampoline:\n"
        "  .cfi_startproc\n"
        "  .cfi_undefined x30\n"
        "  bl kiln__fiber_main\n"
        "  brk #0\n"
        "  .cfi_endproc\n"
        ".size kiln__fiber_trampoline, .-kiln__fiber_trampoline\n");

void kiln__fiber_trampoline(void);

/* The frame kiln__fiber_swap pops, 160 bytes: x19-x28, x29 (0: the end of the frame chain),
 * x30 (the trampoline), d8-d15. After it the stack pointer is top, 16-byte aligned. */
void *kiln__fiber_init_stack(char *top) {
  uint64_t *sp = (uint64_t *)(void *)top - 20;
  for (int i = 0; i < 20; i++) sp[i] = 0;
  sp[11] = (uint64_t)(uintptr_t)kiln__fiber_trampoline;
  return sp;
}


/* fiber.c's switch, as on x86-64: x9 = the fiber leaving (its out already set), x0 = the target,
 * x1 = the value for it, w3 = the code its pending call returns. ctx: x19-x28, x29, x30 (the
 * return address: the target resumes by br to it, not ret, for the same reason as there),
 * d8-d15, then the FPCR (written back only when the two fibers' differ). */
// clang-format off
#define JUMP_A64(ret)                                                                              \
  "  mov x10, sp\n"                                                                                \
  "  str x10, [x9, #" OFF(FIBER_SP, 0) "]\n"                                                       \
  "  add x11, x9, #" OFF(FIBER_CTX, 0) "\n"                                                        \
  "  stp x19, x20, [x11, #0]\n"                                                                    \
  "  stp x21, x22, [x11, #16]\n"                                                                   \
  "  stp x23, x24, [x11, #32]\n"                                                                   \
  "  stp x25, x26, [x11, #48]\n"                                                                   \
  "  stp x27, x28, [x11, #64]\n"                                                                   \
  "  stp x29, x30, [x11, #80]\n"                                                                   \
  "  stp d8, d9, [x11, #96]\n"                                                                     \
  "  stp d10, d11, [x11, #112]\n"                                                                  \
  "  stp d12, d13, [x11, #128]\n"                                                                  \
  "  stp d14, d15, [x11, #144]\n"                                                                  \
  "  mrs x12, fpcr\n"                                                                              \
  "  str x12, [x11, #160]\n"                                                                       \
  "  ldr x10, [x0, #" OFF(FIBER_OUT, 0) "]\n"                                                      \
  "  cbz x10, 3f\n"                                                                                \
  "  str x1, [x10]\n"                                                                              \
  "3:\n"                                                                                           \
  "  add x11, x0, #" OFF(FIBER_CTX, 0) "\n"                                                        \
  "  ldr x13, [x11, #160]\n"                                                                       \
  "  cmp x12, x13\n"                                                                               \
  "  b.eq 1f\n"                                                                                    \
  "  msr fpcr, x13\n"                                                                              \
  "1:\n"                                                                                           \
  "  ldp x19, x20, [x11, #0]\n"                                                                    \
  "  ldp x21, x22, [x11, #16]\n"                                                                   \
  "  ldp x23, x24, [x11, #32]\n"                                                                   \
  "  ldp x25, x26, [x11, #48]\n"                                                                   \
  "  ldp x27, x28, [x11, #64]\n"                                                                   \
  "  ldp x29, x30, [x11, #80]\n"                                                                   \
  "  ldp d8, d9, [x11, #96]\n"                                                                     \
  "  ldp d10, d11, [x11, #112]\n"                                                                  \
  "  ldp d12, d13, [x11, #128]\n"                                                                  \
  "  ldp d14, d15, [x11, #144]\n"                                                                  \
  "  ldr x10, [x0, #" OFF(FIBER_SP, 0) "]\n"                                                       \
  "  mov sp, x10\n"                                                                                \
  ret                                                                                              \
  "  br x30\n"

__asm__(".text\n"
        ".globl kiln__fiber_jump\n"
        ".hidden kiln__fiber_jump\n"
        ".type kiln__fiber_jump,%function\n"
        ".p2align 4\n"
        "kiln__fiber_jump:\n" /* x0 = self, x1 = target, x2 = value, w3 = code */
        "  .cfi_startproc\n"
        "  mov x9, x0\n"
        "  mov x0, x1\n"
        "  mov x1, x2\n"
        JUMP_A64("  mov w0, w3\n")
        "  .cfi_endproc\n"
        ".size kiln__fiber_jump, .-kiln__fiber_jump\n");

#ifdef KILN__FIBER_FAST
/* kiln_fiber_switch: the same checks and steps as on x86-64. */
__asm__(".text\n"
        ".globl kiln_fiber_switch\n"
        ".type kiln_fiber_switch,%function\n"
        ".p2align 4\n"
        "kiln_fiber_switch:\n" /* x0 = f, x1 = value, x2 = value_out */
        "  .cfi_startproc\n"
        "  cbz x0, 9f\n"
        "  ldr x8, [x0, #" OFF(FIBER_THREAD, 0) "]\n"
        "  mrs x9, tpidr_el0\n"
        "  ldr x10, [x8, #" OFF(THREAD_TP, 0) "]\n"
        "  cmp x9, x10\n"
        "  b.ne 9f\n"
        "  ldrb w9, [x0, #" OFF(FIBER_STATE, 0) "]\n"
        "  cmp w9, #" STR(KILN__FIBER_STARTED_VALUE) "\n"
        "  b.ne 9f\n"
        "  ldr x9, [x8, #" OFF(THREAD_CURRENT, 0) "]\n"
        "  str x2, [x9, #" OFF(FIBER_OUT, 0) "]\n"
        "  str x0, [x8, #" OFF(THREAD_CURRENT, 0) "]\n"
        JUMP_A64("  mov w0, #0\n")
        "9:\n"
        "  b kiln__fiber_switch_slow\n"
        "  .cfi_endproc\n"
        ".size kiln_fiber_switch, .-kiln_fiber_switch\n");
#endif
// clang-format on

/* A new fiber's context for fiber.c's switch: zeroed registers (x29 0 ends the frame chain),
 * x30 the trampoline, the creator's FPCR, and the stack pointer at top (16-byte aligned). */
void kiln__fiber_init_context(kiln_fiber *f, char *top) {
  f->sp = top;
  for (int i = 0; i < KILN__FIBER_CTX_WORDS; i++) f->ctx[i] = 0;
  f->ctx[11] = (uint64_t)(uintptr_t)kiln__fiber_trampoline;
  uint64_t fpcr;
  __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
  f->ctx[20] = fpcr;
}

#else
#error "kiln's fibers have a context switch for x86-64 and AArch64 only"
#endif
