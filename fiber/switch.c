/* switch.c: the context switch between fibers, in assembly for x86-64 (System V) and AArch64
 * (AAPCS64).
 *
 * A switch is a call: everything the ABI lets a callee clobber is already saved by the caller,
 * so kiln__fiber_swap saves only the callee-saved state on the current stack, swaps the stack
 * pointer and restores the same state from the other stack:
 *   x86-64:  rbp rbx r12-r15, the MXCSR (SSE rounding and exception masks) and the x87 control
 *            word, which System V makes callee-saved (reloaded only when the two fibers' differ:
 *            ldmxcsr and fldcw are slow, and fibers of a thread nearly always share them);
 *   AArch64: x19-x28, the frame pointer x29, the link register x30 and d8-d15.
 * No system call (ucontext's swapcontext makes one per switch to save the signal mask; fibers
 * share their thread's mask).
 *
 * A new fiber's stack starts with the frame a swap pops: zeroed registers, the creator's
 * floating-point control state on x86-64, and a return address that lands in
 * kiln__fiber_trampoline, which calls kiln__fiber_main(transfer) with the stack 16-byte aligned
 * and marks the end of the call chain for debuggers and unwinders.
 *
 * This file is built with -fcf-protection=none (CMakeLists.txt): its switch returns on another
 * stack than it was called on, which a CET shadow stack would refuse; the object's missing
 * shadow-stack mark keeps the kernel from enabling one for the program. It includes no libc
 * header, so that it can be cross-compiled for the other architecture without a sysroot:
 *   clang --target=aarch64-linux-gnu -ffreestanding -Iinclude -Ifiber -c fiber/switch.c */
#include <stdint.h>

#include "fiber_internal.h"

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
        "  cmpq (%rcx), %rax\n"
        "  je 1f\n"
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

#else
#error "kiln's fibers have a context switch for x86-64 and AArch64 only"
#endif
