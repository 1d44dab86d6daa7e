// SPDX-License-Identifier: MIT
/*
 * shim/static/stub.c — the stub behind every rewritten site of a static
 * program. A trampoline (patch.c) enters it by `call` with eax = the
 * syscall number and the arguments in rdi rsi rdx r10 r8 r9, rsp already
 * moved below the caller's 128-byte red zone. To the program the detour
 * must look like the `syscall` it replaces: every register but rax (the
 * result), rcx and r11 comes back unchanged, rflags too. The vector and x87
 * state needs no saving here, unlike the dynamic shim's stub: the loader's
 * code is compiled with -mgeneral-regs-only, so nothing it runs touches an
 * xmm/ymm/zmm or x87 register (the dynamic shim runs libc, which does).
 */
#include "shim/static/client.h"
#include "shim/static/sys.h"

long st_stub_call(long nr, const long a[6])
{
	long ret;
	if (!st_client_call(nr, a, &ret))
		ret = sys6(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
	return ret;
}

/* Frame, from rbp: +8 rflags, +16 return into the trampoline; -8..-48 the
 * arguments r9 r8 r10 rdx rsi rdi (so rbp-48 is a[0..5] in syscall order),
 * -56 nr; then a 16-byte aligned rsp for the call into C. rbx, rbp and
 * r12-r15 are kept by the C code itself (callee-saved). */
__asm__(
	"    .text\n"
	"    .globl st_stub\n"
	"    .hidden st_stub\n"
	"    .type st_stub, @function\n"
	"    .p2align 4\n"
	"st_stub:\n"
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
	"    cld\n"                          /* the C ABI wants DF clear */
	"    and $-16, %rsp\n"
	"    mov -56(%rbp), %rdi\n"
	"    lea -48(%rbp), %rsi\n"
	"    call st_stub_call\n"
	"    mov -48(%rbp), %rdi\n"
	"    mov -40(%rbp), %rsi\n"
	"    mov -32(%rbp), %rdx\n"
	"    mov -24(%rbp), %r10\n"
	"    mov -16(%rbp), %r8\n"
	"    mov -8(%rbp), %r9\n"
	"    leave\n"
	"    popfq\n"
	"    ret\n"
	"    .size st_stub, . - st_stub\n");
