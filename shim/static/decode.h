/* SPDX-License-Identifier: MIT */
/*
 * shim/static/decode.h — finding the system-call sites of a statically
 * linked program's text, for nvring-static-loader. Pure functions on a copy
 * of the bytes (no libc, no system calls), shared by the loader and its
 * unit tests.
 *
 * The x86-64 decoder knows the instructions compilers put around inline
 * `syscall`s (integer moves and ALU, lea, push/pop, SSE moves, branches);
 * anything else is "unknown" and ends a search, so a site is rewritten only
 * when every byte of its window decodes.
 */
#ifndef NVRING_STATIC_DECODE_H
#define NVRING_STATIC_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
	X86_BRANCH = 1 << 0,   /* changes rip: jcc/jmp/call/ret/loop (rel_off set if relative) */
	X86_RIPREL = 1 << 1,   /* a rip-relative memory operand at disp_off */
	X86_WRAX   = 1 << 2,   /* may write (part of) rax */
	X86_SETRAX = 1 << 3,   /* writes all of rax from an immediate or a register */
	X86_IMMNR  = 1 << 4,   /* ... from an immediate: imm is the value */
	X86_SYSCALL = 1 << 5,  /* 0f 05 */
	X86_RET    = 1 << 6,   /* ret: no fall-through */
	X86_JMP    = 1 << 7,   /* unconditional jmp: no fall-through */
	X86_CALL   = 1 << 8,
	X86_NOREL32 = 1 << 9,  /* jrcxz: a rel8 branch without a rel32 form */
};

struct x86_insn {
	uint8_t len;
	uint8_t disp_off;      /* offset of the rip-relative disp32 (X86_RIPREL) */
	uint8_t rel_off;       /* offset of the branch displacement (relative branches) */
	uint8_t rel_size;      /* 1 or 4; 0 for an indirect branch */
	uint32_t flags;
	int64_t imm;           /* X86_IMMNR */
};

/* Decode the instruction at p (avail bytes readable). 0, or -1 for an
 * instruction this decoder does not know. */
int x86_decode(const uint8_t *p, size_t avail, struct x86_insn *in);

/* The interesting calls: their sites are rewritten. */
bool st_nr_wanted(long nr);

/* A site: the bytes [start, end) of a segment are replaced by a jmp to a
 * trampoline that re-runs [start, sys) (the instructions that load rax and
 * the arguments), calls the stub in place of the syscall at sys, re-runs
 * [sys + 2, end) (the instructions after it, to make room for the 5-byte
 * jmp) and jumps back to end. */
struct st_site {
	size_t start, sys, end;
	long nr;               /* the number loaded into rax; -1 from a register */
};

enum st_site_why {
	ST_SITE_OK = 0,
	ST_SITE_UNWANTED,      /* a known number not among the wanted */
	ST_SITE_NO_ANCHOR,     /* no decodable chain from a write of rax to the syscall */
	ST_SITE_SHORT,         /* the window cannot be made 5 bytes long */
	ST_SITE_BRANCH_IN,     /* a direct branch lands inside the window */
};

/* Describe the syscall instruction at seg[sys] (seg: an executable segment,
 * len bytes): ST_SITE_OK and *s filled when it can be rewritten. */
enum st_site_why st_site_at(const uint8_t *seg, size_t len, size_t sys, struct st_site *s);
/* The same, given the instruction starts a linear decode of the functions
 * found (one bit per byte, st_targets_precise): a syscall among them takes
 * its anchor only at one of them (a guess inside another instruction,
 * `89 c8` in `4d 89 c8`, would load the wrong number). */
enum st_site_why st_site_at2(const uint8_t *seg, size_t len, size_t sys, const uint8_t *starts,
			     struct st_site *s);

/* Whether a direct branch decoded at any offset of seg targets [lo, hi). */
bool st_branch_into(const uint8_t *seg, size_t len, size_t lo, size_t hi);

/* Branch targets, one bit per byte of seg in map (len / 8 + 1 bytes,
 * zeroed by the caller; starts, if not NULL, gets the instruction starts
 * found): _precise decodes the instructions of [from, to)
 * linearly (a function's extent from the symbol table), falling back to
 * _any for the rest at an instruction it does not know; _any takes a branch
 * decoded at every offset of [from, to), real or not. */
void st_targets_precise(const uint8_t *seg, size_t len, size_t from, size_t to, uint8_t *map,
			uint8_t *starts);
void st_targets_any(const uint8_t *seg, size_t len, size_t from, size_t to, uint8_t *map);

/* Calls fn for every `0f 05` in seg (every offset is tried), with the
 * verdict of st_site_at() and of the branch check: against targets (a map
 * from st_targets_*) or, if NULL, st_branch_into(). Returns the number of
 * syscall byte pairs seen. */
size_t st_site_scan(const uint8_t *seg, size_t len, const uint8_t *targets, const uint8_t *starts,
		    void (*fn)(void *ctx, size_t sys, enum st_site_why why, const struct st_site *s),
		    void *ctx);

#endif
