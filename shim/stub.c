// SPDX-License-Identifier: MIT
/*
 * shim/stub.c — the common stub behind every patched site (patch.c).
 *
 * A trampoline enters it by `call` with eax = the syscall number and the
 * arguments in rdi rsi rdx r10 r8 r9, having already stepped rsp over the
 * caller's 128-byte red zone. To the program the whole detour must look like
 * the `syscall` instruction it replaces: every register but rax (the result),
 * rcx and r11 comes back unchanged, rflags too, and so does the whole vector
 * and x87 state, because the C code it runs (shim_dispatch, libc's memcpy)
 * freely uses xmm/ymm/zmm registers that the program may hold live across
 * its asm statement. XSAVE covers every user state component the OS enabled
 * (XCR0); without OSXSAVE, FXSAVE covers x87, MXCSR and xmm0-15.
 */
#include <cpuid.h>
#include <errno.h>

#include "shim/patch.h"
#include "shim/shim.h"

/* Read by the asm below; set once by shim_stub_init() before any site is
 * patched. The defaults (FXSAVE) are safe on any x86-64. */
unsigned long shim_xsave_mask;
unsigned long shim_xsave_size = 576;   /* legacy area + XSAVE header */
unsigned char shim_xsave_use;   /* 0 FXSAVE, 1 XSAVE, 2 XSAVEOPT */
/* The C ABI's MXCSR at process start: all exceptions masked, round to
 * nearest, no FTZ/DAZ — the program's own MXCSR may unmask exceptions. */
const unsigned int shim_mxcsr_default = 0x1f80;

/* XCR0 bits 17-18 (AMX TILECFG/TILEDATA): left out because XRSTOR of a
 * component the kernel keeps disabled through XFD raises #NM (SIGILL for a
 * thread without the permission), and nothing the stub runs touches tiles,
 * so they survive untouched anyway. */
#define XFEATURE_AMX_MASK ((1ul << 17) | (1ul << 18))

void shim_stub_init(void)
{
    unsigned int eax, ebx, ecx, edx;

    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & bit_OSXSAVE))
        return;   /* FXSAVE path */
    if (__get_cpuid_max(0, 0) < 0xd)
        return;
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    unsigned long mask = ((unsigned long)hi << 32 | lo) & ~XFEATURE_AMX_MASK;

    /* The standard (non-compacted) layout: component i at offset EBX of
     * CPUID.(0xD, i), EAX bytes long; 0 and 1 live in the legacy area. */
    unsigned long size = 576;
    for (unsigned int i = 2; i < 63; i++) {
        if (!(mask & (1ul << i)))
            continue;
        __cpuid_count(0xd, i, eax, ebx, ecx, edx);
        if ((unsigned long)ebx + eax > size)
            size = (unsigned long)ebx + eax;
    }
    shim_xsave_mask = mask;
    shim_xsave_size = (size + 63) & ~63ul;
    __cpuid_count(0xd, 1, eax, ebx, ecx, edx);
    shim_xsave_use = (eax & 1) ? 2 : 1;   /* XSAVEOPT */
}

long shim_stub_call(long nr, const long a[6])
{
    /* The program sees a bare instruction, which never writes errno; the
     * dispatcher's libc calls might. */
    int saved = errno;
    long ret;

    if (!shim_dispatch(nr, a, &ret))
        ret = shim_raw_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    errno = saved;
    return ret;
}

/* Frame, from rbp: +8 rflags, +16 return into the trampoline; -8..-48 the
 * arguments r9 r8 r10 rdx rsi rdi (so rbp-48 is a[0..5] in syscall order),
 * -56 nr then the result, -64 rbx; below that the 64-byte aligned save
 * area, then a 16-byte aligned rsp for the call into C. */
__asm__(
    "    .text\n"
    "    .globl shim_patch_stub\n"
    "    .hidden shim_patch_stub\n"
    "    .type shim_patch_stub, @function\n"
    "    .p2align 4\n"
    "shim_patch_stub:\n"
    "    pushfq\n"
    "    push %rbp\n"
    "    mov %rsp, %rbp\n"
    "    push %r9\n"
    "    push %r8\n"
    "    push %r10\n"
    "    push %rdx\n"
    "    push %rsi\n"
    "    push %rdi\n"
    "    push %rax\n"
    "    push %rbx\n"
    "    cld\n"                                 /* the C ABI wants DF clear */
    "    mov shim_xsave_size(%rip), %rbx\n"
    "    sub %rbx, %rsp\n"
    "    and $-64, %rsp\n"
    /* XSAVE writes only XSTATE_BV of the 64-byte header and XRSTOR faults
     * on garbage in the rest, so the header starts zeroed. */
    "    xor %eax, %eax\n"
    "    mov %rax, 512(%rsp)\n"
    "    mov %rax, 520(%rsp)\n"
    "    mov %rax, 528(%rsp)\n"
    "    mov %rax, 536(%rsp)\n"
    "    mov %rax, 544(%rsp)\n"
    "    mov %rax, 552(%rsp)\n"
    "    mov %rax, 560(%rsp)\n"
    "    mov %rax, 568(%rsp)\n"
    "    cmpb $0, shim_xsave_use(%rip)\n"
    "    je 1f\n"
    "    mov shim_xsave_mask(%rip), %eax\n"
    "    mov shim_xsave_mask+4(%rip), %edx\n"
    "    cmpb $2, shim_xsave_use(%rip)\n"
    "    je 5f\n"
    "    xsave64 (%rsp)\n"
    "    jmp 2f\n"
    /* XSAVEOPT writes only components out of their initial state (AVX-512's
     * are, most of the time): XRSTOR initialises the others from XSTATE_BV. */
    "5:  xsaveopt64 (%rsp)\n"
    "    jmp 2f\n"
    "1:  fxsave64 (%rsp)\n"
    /* The program may run with unmasked FP exceptions or a non-default x87
     * stack; C code gets the ABI's initial state, the program its own
     * back from the restore. */
    "2:  fninit\n"
    "    ldmxcsr shim_mxcsr_default(%rip)\n"
    "    mov -56(%rbp), %rdi\n"
    "    lea -48(%rbp), %rsi\n"
    "    call shim_stub_call\n"
    "    mov %rax, -56(%rbp)\n"
    "    cmpb $0, shim_xsave_use(%rip)\n"
    "    je 3f\n"
    "    mov shim_xsave_mask(%rip), %eax\n"
    "    mov shim_xsave_mask+4(%rip), %edx\n"
    "    xrstor64 (%rsp)\n"
    "    jmp 4f\n"
    "3:  fxrstor64 (%rsp)\n"
    "4:  mov -64(%rbp), %rbx\n"
    "    mov -56(%rbp), %rax\n"
    "    mov -48(%rbp), %rdi\n"
    "    mov -40(%rbp), %rsi\n"
    "    mov -32(%rbp), %rdx\n"
    "    mov -24(%rbp), %r10\n"
    "    mov -16(%rbp), %r8\n"
    "    mov -8(%rbp), %r9\n"
    "    leave\n"
    "    popfq\n"
    "    ret\n"
    "    .size shim_patch_stub, . - shim_patch_stub\n");
