// SPDX-License-Identifier: MIT
/*
 * shim/static/patch.c — trampolines for the sites of a static program.
 *
 * A trampoline re-runs the window's instructions before the syscall (the
 * anchor that loads rax and the argument set-up after it; a rip-relative
 * operand gets its displacement moved), steps over the red zone with lea
 * (which leaves rflags alone), calls the stub through the pool's slot 0
 * (the stub lives in the loader's image, far beyond rel32 reach), steps
 * back, re-runs the instructions after the syscall that the window took to
 * make room for the 5-byte jmp (a relative branch among them becomes its
 * rel32 form), and jumps back to the window's end. The program's code keeps
 * its bytes after the jmp: no branch lands there (decode.c checked).
 */
#include <errno.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "shim/static/client.h"
#include "shim/static/patch.h"
#include "shim/static/sys.h"

#define POOL_SIZE (256u << 10)
#define REACH ((long)0x7fffffff - (long)POOL_SIZE - 4096)

static bool reaches(uintptr_t a, uintptr_t b)
{
	long d = (long)(a - b);
	return d > -REACH && d < REACH;
}

int st_pool_new(struct st_pool *pool, uintptr_t lo, uintptr_t hi)
{
	/* Above the segments first (the gap up to the heap of a static
	 * program is its own business only once it runs), then below, at
	 * doubling distances; MAP_FIXED_NOREPLACE never evicts a mapping. */
	for (unsigned long dist = 1ul << 24; dist < (1ul << 31); dist <<= 1) {
		for (int dir = 1; dir >= -1; dir -= 2) {
			uintptr_t hint = dir > 0 ? ((hi + 0xfff) & ~0xfffull) + dist
						 : (lo & ~0xfffull) - dist - POOL_SIZE;
			if (dir < 0 && (lo < dist + POOL_SIZE + 0x10000))
				continue;
			long r = sys6(__NR_mmap, (long)hint, POOL_SIZE, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
			if (sys_err(r))
				continue;
			if (!reaches((uintptr_t)r, lo) || !reaches((uintptr_t)r, hi)) {
				sys2(__NR_munmap, r, POOL_SIZE);
				continue;
			}
			pool->base = (uint8_t *)r;
			pool->size = POOL_SIZE;
			memset(pool->base, 0xcc, POOL_SIZE);   /* int3 between trampolines */
			const void *stub = st_stub;
			memcpy(pool->base, &stub, sizeof(stub));
			pool->used = 16;
			return 0;
		}
	}
	return -ENOMEM;
}

int st_pool_seal(struct st_pool *pool)
{
	long r = sys3(__NR_mprotect, pool->base, pool->size, PROT_READ | PROT_EXEC);
	return sys_err(r) ? (int)r : 0;
}

static void put32(uint8_t *p, int32_t v)
{
	memcpy(p, &v, 4);
}

static int32_t get32(const uint8_t *p)
{
	int32_t v;
	memcpy(&v, p, 4);
	return v;
}

/* A rel32 from the end of the instruction at code..code+len to target. */
static int rel32(uintptr_t insn_end, uintptr_t target, int32_t *out)
{
	long d = (long)(target - insn_end);
	if (d != (int32_t)d)
		return -ERANGE;
	*out = (int32_t)d;
	return 0;
}

/* Copy the instruction at orig (address from) to out (address to); a
 * relative branch is re-encoded in rel32 form. Returns bytes written. */
static int move_insn(const uint8_t *orig, uintptr_t from, const struct x86_insn *in,
		     uint8_t *out, uintptr_t to)
{
	int32_t r;
	if (in->rel_size) {
		long disp = in->rel_size == 1 ? (int8_t)orig[in->rel_off] : get32(orig + in->rel_off);
		uintptr_t target = from + in->len + (uintptr_t)disp;
		uint8_t op = orig[in->rel_off - 1];
		size_t n;
		if (in->rel_size == 1 && (op & 0xf0) == 0x70) {
			out[0] = 0x0f;
			out[1] = (uint8_t)(0x80 | (op & 0x0f));
			n = 6;
		} else if (in->rel_size == 1 && op == 0xeb) {
			out[0] = 0xe9;
			n = 5;
		} else if (in->rel_size == 4 && (op == 0xe8 || op == 0xe9)) {
			out[0] = op;
			n = 5;
		} else if (in->rel_size == 4) {
			out[0] = 0x0f;
			out[1] = op;
			n = 6;
		} else {
			return -ENOEXEC;   /* jrcxz: no rel32 form */
		}
		if (rel32(to + n, target, &r))
			return -ERANGE;
		put32(out + n - 4, r);
		return (int)n;
	}
	memcpy(out, orig, in->len);
	if (in->flags & X86_RIPREL) {
		long disp = get32(orig + in->disp_off) + (long)(from - to);
		if (disp != (int32_t)disp)
			return -ERANGE;
		put32(out + in->disp_off, (int32_t)disp);
	}
	return in->len;
}

int st_site_patch(struct st_pool *pool, uint8_t *seg, size_t len, const struct st_site *s)
{
	static const uint8_t lea_down[] = { 0x48, 0x8d, 0x64, 0x24, 0x80 };   /* lea -128(%rsp),%rsp */
	static const uint8_t lea_up[] = { 0x48, 0x8d, 0xa4, 0x24, 0x80, 0x00, 0x00, 0x00 };
	uint8_t code[160];
	size_t n = 0;
	uintptr_t tr = (uintptr_t)pool->base + pool->used;
	uintptr_t site = (uintptr_t)seg;
	bool falls = true;

	if (pool->used + sizeof(code) > pool->size)
		return -ENOSPC;
	for (size_t off = s->start; off < s->end;) {
		if (off == s->sys) {
			memcpy(code + n, lea_down, sizeof(lea_down));
			n += sizeof(lea_down);
			code[n++] = 0xff;   /* call *slot0(%rip) */
			code[n++] = 0x15;
			int32_t r;
			if (rel32(tr + n + 4, (uintptr_t)pool->base, &r))
				return -ERANGE;
			put32(code + n, r);
			n += 4;
			memcpy(code + n, lea_up, sizeof(lea_up));
			n += sizeof(lea_up);
			off += 2;
			continue;
		}
		struct x86_insn in;
		if (x86_decode(seg + off, len - off, &in) < 0 || n + 16 > sizeof(code) - 8)
			return -ENOEXEC;
		int w = move_insn(seg + off, site + off, &in, code + n, tr + n);
		if (w < 0)
			return w;
		n += (size_t)w;
		off += in.len;
		if (in.flags & (X86_RET | X86_JMP))
			falls = false;
	}
	if (falls) {
		int32_t r;
		if (rel32(tr + n + 5, site + s->end, &r))
			return -ERANGE;
		code[n++] = 0xe9;
		put32(code + n, r);
		n += 4;
	}
	uint8_t jmp[5] = { 0xe9 };
	int32_t r;
	if (rel32(site + s->start + 5, tr, &r))
		return -ERANGE;
	put32(jmp + 1, r);

	memcpy((void *)tr, code, n);
	memcpy(seg + s->start, jmp, 5);
	pool->used = (pool->used + n + 15) & ~(size_t)15;
	return 0;
}
