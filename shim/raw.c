// SPDX-License-Identifier: MIT
/*
 * shim/raw.c — the shim's one real `syscall` instruction.
 *
 * Everything the shim passes through to the kernel goes through here, so the
 * seccomp filter (trap.c) can let exactly this instruction by and trap the
 * same system call anywhere else. Written as top-level asm rather than C with
 * an asm statement so that the compiler can neither inline it (which would
 * put the instruction outside [shim_raw_begin, shim_raw_end)) nor duplicate
 * it. It touches neither errno nor any state but the registers the syscall
 * ABI clobbers, so it is safe from a signal handler and from the patch stub.
 *
 * shim_raw_begin labels the `syscall` instruction, shim_raw_end the byte
 * after it. seccomp reports the address after the instruction
 * (seccomp_data.instruction_pointer, si_call_addr), which is shim_raw_end.
 */
#include "shim/shim.h"

/* SysV C ABI in: nr=rdi a0=rsi a1=rdx a2=rcx a3=r8 a4=r9 a5=8(%rsp).
 * Kernel ABI: nr=rax, args rdi rsi rdx r10 r8 r9; rcx and r11 clobbered. */
__asm__(
    "    .text\n"
    "    .globl shim_raw_syscall\n"
    "    .hidden shim_raw_syscall\n"
    "    .type shim_raw_syscall, @function\n"
    "    .p2align 4\n"
    "shim_raw_syscall:\n"
    "    .cfi_startproc\n"
    "    mov %rdi, %rax\n"
    "    mov %rsi, %rdi\n"
    "    mov %rdx, %rsi\n"
    "    mov %rcx, %rdx\n"
    "    mov %r8, %r10\n"
    "    mov %r9, %r8\n"
    "    mov 8(%rsp), %r9\n"
    "    .globl shim_raw_begin\n"
    "    .hidden shim_raw_begin\n"
    "shim_raw_begin:\n"
    "    syscall\n"
    "    .globl shim_raw_end\n"
    "    .hidden shim_raw_end\n"
    "shim_raw_end:\n"
    "    ret\n"
    "    .cfi_endproc\n"
    "    .size shim_raw_syscall, . - shim_raw_syscall\n");
