/* SPDX-License-Identifier: MIT */
/*
 * tests/unit/static/refuse.S — a static program with an io_uring_enter site
 * nvring-static-loader must refuse: a branch lands on its `syscall`, so
 * the rewritten window would be entered half-way. The loader must stop
 * before the program runs, with one line naming the site (this program,
 * run, would exit 3 after the call fails). No libc: -nostdlib -static.
 */
	.text
	.globl _start
_start:
	xor %edi, %edi
	test %edi, %edi
	jz 1f
	mov $0x1aa, %eax
1:	syscall                 /* io_uring_enter(0, ...) or, from the jz, read(0) */
	mov $3, %edi
	mov $231, %eax          /* exit_group(3) */
	syscall
	.section .note.GNU-stack, "", @progbits
