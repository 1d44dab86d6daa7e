// SPDX-License-Identifier: MIT
/*
 * shim/static/decode.c — the site finder of nvring-static-loader (decode.h).
 *
 * A site is found from its `syscall`: the anchor is the nearest instruction
 * before it that sets all of rax, found by trying each start offset up to 48
 * bytes back and keeping the first whose linear decode lands exactly on the
 * syscall with nothing in between writing rax or branching. (Offsets inside
 * other instructions decode too, as partial writes of rax that would hide
 * the real anchor, so only full setters count.) An anchor that
 * sets rax from an immediate names the call (liburing's inline
 * `mov $0x1aa,%eax ... syscall`, glibc's `mov $0x3,%eax; syscall`); one that
 * copies a register (glibc's syscall(), liburing's mmap calls through a
 * hoisted number) leaves it to the stub at run time.
 *
 * The window rewritten starts at the anchor, so the instructions that set up
 * the arguments after it are re-run in the trampoline. When anchor + syscall
 * are fewer than the 5 bytes of a jmp, the instructions after the syscall
 * join the window (their start is known: the syscall's end), never those
 * before the anchor (a backward decode cannot know where they start).
 *
 * A direct branch into the window would run the original bytes after the
 * rewrite, half of a jmp; every offset of the segment is decoded for branch
 * targets, which errs towards refusing a site.
 */
#include "shim/static/decode.h"

#define NR_WANTED_MAX 16

static const long wanted[] = {
	425, 426, 427,          /* io_uring_setup, io_uring_enter, io_uring_register */
	3,                      /* close: a ring or namespace descriptor goes away */
	2, 257,                 /* open, openat: the namespace path */
	32, 33, 292, 72,        /* dup, dup2, dup3, fcntl (F_DUPFD) */
	4, 5, 6, 262, 332,      /* stat, fstat, lstat, newfstatat, statx: a block device */
	16,                     /* ioctl: BLKGETSIZE64, BLKSSZGET, ... */
};

bool st_nr_wanted(long nr)
{
	for (unsigned i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++)
		if (wanted[i] == nr)
			return true;
	return false;
}

static int32_t rd32(const uint8_t *p)
{
	return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
			 (uint32_t)p[3] << 24);
}

/* Which operand a ModRM instruction writes. */
enum dst { D_NONE, D_RM, D_REG, D_BOTH, D_RAX };

int x86_decode(const uint8_t *p, size_t avail, struct x86_insn *in)
{
	size_t i = 0;
	bool p66 = false, prep = false;
	unsigned rex = 0;

	*in = (struct x86_insn){ 0 };
	for (; i < avail && i < 4; i++) {
		uint8_t b = p[i];
		if (b == 0x66)
			p66 = true;
		else if (b == 0xf2 || b == 0xf3)
			prep = true;
		else if (b == 0x64 || b == 0x65 || b == 0x2e || b == 0x3e)
			;   /* fs/gs segment, branch hints */
		else
			break;
	}
	if (i < avail && (p[i] & 0xf0) == 0x40)
		rex = p[i++];
	if (i >= avail)
		return -1;

	uint8_t op = p[i++];
	bool two = false, modrm = false, byteop = false;
	unsigned imm = 0;          /* immediate bytes */
	enum dst dst = D_NONE;
	unsigned grp_ok = 0xff;    /* ModRM.reg values allowed (group opcodes) */
	uint32_t fl = 0;

	if (op == 0x0f) {
		if (i >= avail)
			return -1;
		two = true;
		op = p[i++];
	}
	if (!two) {
		if (op < 0x40 && (op & 7) < 6 && op != 0x26 && op != 0x2e && op != 0x36 &&
		    op != 0x3e) {
			/* ALU: add or adc sbb and sub xor cmp */
			bool cmp = (op & 0xf8) == 0x38;
			switch (op & 7) {
			case 0: byteop = true; /* fallthrough */
			case 1: modrm = true; dst = cmp ? D_NONE : D_RM; break;
			case 2: byteop = true; /* fallthrough */
			case 3: modrm = true; dst = cmp ? D_NONE : D_REG; break;
			case 4: imm = 1; dst = cmp ? D_NONE : D_RAX; break;
			case 5: imm = p66 ? 2 : 4; dst = cmp ? D_NONE : D_RAX; break;
			}
		} else if (op >= 0x50 && op <= 0x57) {
			;   /* push */
		} else if (op >= 0x58 && op <= 0x5f) {
			if ((op & 7) == 0 && !(rex & 1))
				fl |= X86_WRAX;   /* pop %rax */
		} else if (op == 0x63) {
			modrm = true; dst = D_REG;
		} else if (op == 0x68) {
			imm = 4;
		} else if (op == 0x6a) {
			imm = 1;
		} else if (op == 0x69 || op == 0x6b) {
			modrm = true; dst = D_REG; imm = op == 0x6b ? 1 : p66 ? 2 : 4;
		} else if (op >= 0x70 && op <= 0x7f) {
			fl |= X86_BRANCH; imm = 1; in->rel_size = 1;
		} else if (op >= 0x80 && op <= 0x83 && op != 0x82) {
			modrm = true; dst = D_RM; byteop = op == 0x80;
			imm = op == 0x81 ? (p66 ? 2 : 4) : 1;
		} else if (op == 0x84 || op == 0x85) {
			modrm = true; byteop = op == 0x84;
		} else if (op == 0x86 || op == 0x87) {
			modrm = true; dst = D_BOTH; byteop = op == 0x86;
		} else if (op >= 0x88 && op <= 0x8b) {
			modrm = true; byteop = !(op & 1); dst = op < 0x8a ? D_RM : D_REG;
		} else if (op == 0x8d) {
			modrm = true; dst = D_REG;
		} else if (op == 0x90 && !(rex & 1)) {
			;   /* nop (pause with f3) */
		} else if (op >= 0x90 && op <= 0x97) {
			fl |= X86_WRAX;   /* xchg reg,%rax */
		} else if (op == 0x98) {
			fl |= X86_WRAX;   /* cltq */
		} else if (op == 0x99) {
			;   /* cltd/cqto: writes rdx */
		} else if (op == 0xa8) {
			imm = 1;
		} else if (op == 0xa9) {
			imm = p66 ? 2 : 4;
		} else if (op >= 0xb0 && op <= 0xb7) {
			imm = 1;
			if ((op & 7) == 0 && !(rex & 1))
				fl |= X86_WRAX;
			if ((op & 7) == 4 && !rex)
				fl |= X86_WRAX;   /* %ah */
		} else if (op >= 0xb8 && op <= 0xbf) {
			imm = (rex & 8) ? 8 : p66 ? 2 : 4;
			if ((op & 7) == 0 && !(rex & 1)) {
				fl |= X86_WRAX;
				if (!p66) {
					fl |= X86_SETRAX | X86_IMMNR;
					in->imm = imm == 8 ? (int64_t)((uint64_t)(uint32_t)rd32(p + i) |
								       (uint64_t)(uint32_t)rd32(p + i + 4) << 32)
							   : (int64_t)(uint32_t)rd32(p + i);
					if (i + imm > avail)
						return -1;
				}
			}
		} else if (op == 0xc0 || op == 0xc1) {
			modrm = true; dst = D_RM; imm = 1; byteop = op == 0xc0; grp_ok = 0xbf;
		} else if (op >= 0xd0 && op <= 0xd3) {
			modrm = true; dst = D_RM; byteop = !(op & 1); grp_ok = 0xbf;
		} else if (op == 0xc2 || op == 0xc3) {
			fl |= X86_BRANCH | X86_RET; imm = op == 0xc2 ? 2 : 0;
		} else if (op == 0xc6 || op == 0xc7) {
			modrm = true; dst = D_RM; byteop = op == 0xc6; grp_ok = 0x01;
			imm = op == 0xc6 ? 1 : p66 ? 2 : 4;
		} else if (op == 0xe8 || op == 0xe9) {
			fl |= X86_BRANCH | (op == 0xe8 ? X86_CALL : X86_JMP);
			imm = 4; in->rel_size = 4;
		} else if (op == 0xeb) {
			fl |= X86_BRANCH | X86_JMP; imm = 1; in->rel_size = 1;
		} else if (op == 0xe3) {
			fl |= X86_BRANCH | X86_NOREL32; imm = 1; in->rel_size = 1;
		} else if (op == 0xf6 || op == 0xf7) {
			modrm = true; byteop = op == 0xf6; grp_ok = 0xfd;
			/* /0 test imm; /2 not, /3 neg; /4-/7 mul div: rax */
		} else if (op == 0xfe) {
			modrm = true; dst = D_RM; byteop = true; grp_ok = 0x03;
		} else if (op == 0xff) {
			modrm = true; grp_ok = 0x5f;   /* inc dec call jmp push; not far forms */
		} else {
			return -1;
		}
	} else {
		if (op == 0x05) {
			fl |= X86_SYSCALL | X86_WRAX;
		} else if (op == 0x1f) {
			modrm = true;   /* nopl */
		} else if ((op >= 0x10 && op <= 0x17) || (op >= 0x28 && op <= 0x2b) ||
			   op == 0x2e || op == 0x2f || (op >= 0x51 && op <= 0x6f) ||
			   (op >= 0x74 && op <= 0x76) || op == 0x7f || (op >= 0xd1 && op <= 0xfe &&
			   op != 0xd7)) {
			modrm = true;   /* SSE: xmm destinations only */
		} else if (op == 0x2c || op == 0x2d || op == 0x50 || op == 0xd7) {
			modrm = true; dst = D_REG;   /* cvtt*2si, movmsk, pmovmskb: a GPR */
		} else if (op == 0x7e) {
			modrm = true; dst = prep ? D_NONE : D_RM;   /* movd/movq xmm -> r/m */
		} else if (op == 0x70 || op == 0xc2 || op == 0xc6 || (op >= 0x71 && op <= 0x73)) {
			modrm = true; imm = 1;
		} else if (op == 0xc5) {
			modrm = true; imm = 1; dst = D_REG;
		} else if (op >= 0x40 && op <= 0x4f) {
			modrm = true; dst = D_REG;   /* cmov */
		} else if (op >= 0x80 && op <= 0x8f) {
			fl |= X86_BRANCH; imm = 4; in->rel_size = 4;
		} else if (op >= 0x90 && op <= 0x9f) {
			modrm = true; dst = D_RM; byteop = true;   /* setcc */
		} else if (op == 0xa3) {
			modrm = true;   /* bt */
		} else if (op == 0xab || op == 0xb3 || op == 0xbb || op == 0xa5 || op == 0xad) {
			modrm = true; dst = D_RM;
		} else if (op == 0xa4 || op == 0xac) {
			modrm = true; dst = D_RM; imm = 1;
		} else if (op == 0xba) {
			modrm = true; dst = D_RM; imm = 1;
		} else if (op == 0xaf || op == 0xb6 || op == 0xb7 || op == 0xbe || op == 0xbf ||
			   op == 0xbc || op == 0xbd) {
			modrm = true; dst = D_REG;
		} else if (op == 0xb1 || op == 0xb0) {
			modrm = true; dst = D_RM; fl |= X86_WRAX;   /* cmpxchg */
		} else if (op == 0xc1) {
			modrm = true; dst = D_BOTH;   /* xadd */
		} else if (op >= 0xc8 && op <= 0xcf) {
			if ((op & 7) == 0 && !(rex & 1))
				fl |= X86_WRAX;   /* bswap */
		} else {
			return -1;
		}
	}

	if (modrm) {
		if (i >= avail)
			return -1;
		uint8_t m = p[i++];
		unsigned mod = m >> 6, regf = (m >> 3) & 7, rm = m & 7;
		if (!(grp_ok & (1u << regf)))
			return -1;
		if (mod != 3) {
			if (rm == 4) {
				if (i >= avail)
					return -1;
				uint8_t sib = p[i++];
				if (mod == 0 && (sib & 7) == 5)
					i += 4;
			} else if (mod == 0 && rm == 5) {
				fl |= X86_RIPREL;
				in->disp_off = (uint8_t)i;
				i += 4;
			}
			if (mod == 1)
				i += 1;
			else if (mod == 2)
				i += 4;
		}
		unsigned reg = regf | (rex & 4 ? 8 : 0), rmr = rm | (rex & 1 ? 8 : 0);
		/* byte registers without REX: 4 is %ah */
		bool reg_ax = reg == 0 || (byteop && !rex && reg == 4);
		bool rm_ax = mod == 3 && (rmr == 0 || (byteop && !rex && rmr == 4));
		if (!two && (op == 0xf6 || op == 0xf7)) {
			if (regf >= 4)
				fl |= X86_WRAX;
			else if (regf >= 2)
				dst = D_RM;
			else
				imm = op == 0xf6 ? 1 : p66 ? 2 : 4;
		}
		if (!two && op == 0xff) {
			if (regf == 2 || regf == 4) {
				fl |= X86_BRANCH | (regf == 4 ? X86_JMP : X86_CALL);
			} else if (regf < 2) {
				dst = D_RM;
			}
		}
		if (((dst == D_RM || dst == D_BOTH) && rm_ax) ||
		    ((dst == D_REG || dst == D_BOTH) && reg_ax))
			fl |= X86_WRAX;
		/* mov reg -> eax/rax (89 /r, mod 3, rm 0; 8b /r reg 0) and
		 * mov mem -> eax: rax from a register or memory, run time */
		if (!two && !p66 && ((op == 0x89 && mod == 3 && rmr == 0) || (op == 0x8b && reg == 0)))
			fl |= X86_SETRAX;
		/* xor %eax,%eax */
		if (!two && (op == 0x31 || op == 0x33) && mod == 3 && rmr == 0 && reg == 0) {
			fl |= X86_SETRAX | X86_IMMNR;
			in->imm = 0;
		}
		/* mov $imm32,%rax (c7 c0) */
		if (!two && op == 0xc7 && !p66 && mod == 3 && rmr == 0) {
			if (i + 4 > avail)
				return -1;
			fl |= X86_SETRAX | X86_IMMNR;
			in->imm = rd32(p + i);
		}
	}
	if (dst == D_RAX)
		fl |= X86_WRAX;
	if (in->rel_size)
		in->rel_off = (uint8_t)i;
	i += imm;
	if (i > avail || i > 15)
		return -1;
	in->len = (uint8_t)i;
	in->flags = fl;
	return 0;
}

bool st_branch_into(const uint8_t *seg, size_t len, size_t lo, size_t hi)
{
	for (size_t p = 0; p + 2 <= len; p++) {
		uint8_t b = seg[p];
		long t;
		if ((b & 0xf0) == 0x70 || b == 0xe3 || b == 0xeb)
			t = (long)p + 2 + (int8_t)seg[p + 1];
		else if ((b == 0xe8 || b == 0xe9) && p + 5 <= len)
			t = (long)p + 5 + rd32(seg + p + 1);
		else if (b == 0x0f && (seg[p + 1] & 0xf0) == 0x80 && p + 6 <= len)
			t = (long)p + 6 + rd32(seg + p + 2);
		else
			continue;
		if (t >= (long)lo && t < (long)hi)
			return true;
	}
	return false;
}

/* Whether the instructions from seg[from] reach seg[to] exactly, none of
 * them a branch or a write of rax. */
static bool chain_ok(const uint8_t *seg, size_t len, size_t from, size_t to)
{
	while (from < to) {
		struct x86_insn in;
		if (x86_decode(seg + from, len - from, &in) < 0 ||
		    (in.flags & (X86_BRANCH | X86_WRAX | X86_SYSCALL)))
			return false;
		from += in.len;
	}
	return from == to;
}

static bool bit(const uint8_t *m, size_t t)
{
	return m[t >> 3] & (1u << (t & 7));
}

enum st_site_why st_site_at2(const uint8_t *seg, size_t len, size_t sys, const uint8_t *starts,
			     struct st_site *s)
{
	/* a syscall the function's linear decode reached: anchors only at
	 * instruction starts that decode found */
	if (starts && !bit(starts, sys))
		starts = NULL;
	size_t lo = sys > 48 ? sys - 48 : 0;
	size_t anchor = (size_t)-1;
	struct x86_insn a = { 0 };

	for (size_t d = sys; d-- > lo;) {
		struct x86_insn in;
		if ((starts && !bit(starts, d)) ||
		    x86_decode(seg + d, len - d, &in) < 0 || !(in.flags & X86_SETRAX) ||
		    (in.flags & (X86_BRANCH | X86_SYSCALL)) || d + in.len > sys)
			continue;
		if (chain_ok(seg, len, d + in.len, sys)) {
			anchor = d;
			a = in;
			break;
		}
	}
	if (anchor == (size_t)-1)
		return ST_SITE_NO_ANCHOR;
	/* `48 89 f8` holds `89 f8`: the first decode found may be a REX
	 * instruction's tail; its REX form is the real one */
	if (!starts && anchor > lo && (seg[anchor - 1] & 0xf0) == 0x40) {
		struct x86_insn in;
		if (x86_decode(seg + anchor - 1, len - anchor + 1, &in) == 0 &&
		    in.len == a.len + 1 && (in.flags & X86_SETRAX)) {
			anchor--;
			a = in;
		}
	}
	s->start = anchor;
	s->sys = sys;
	s->nr = (a.flags & X86_IMMNR) ? a.imm : -1;
	if (s->nr >= 0 && !st_nr_wanted(s->nr))
		return ST_SITE_UNWANTED;
	size_t end = sys + 2;
	while (end - anchor < 5) {
		struct x86_insn in;
		if (end >= len || x86_decode(seg + end, len - end, &in) < 0 ||
		    (in.flags & (X86_SYSCALL | X86_CALL)) ||
		    ((in.flags & X86_BRANCH) && !(in.flags & X86_RET) && !in.rel_size) ||
		    (in.flags & X86_NOREL32))
			return ST_SITE_SHORT;
		end += in.len;
		if (in.flags & (X86_RET | X86_JMP))
			break;   /* nothing falls through: the window may end here */
	}
	if (end - anchor < 5)
		return ST_SITE_SHORT;
	s->end = end;
	return ST_SITE_OK;
}

/* The target of a direct branch decoded at seg[p], or -1. */
static long branch_target(const uint8_t *seg, size_t len, size_t p)
{
	uint8_t b = seg[p];
	if (p + 2 > len)
		return -1;
	if ((b & 0xf0) == 0x70 || b == 0xe3 || b == 0xeb)
		return (long)p + 2 + (int8_t)seg[p + 1];
	if ((b == 0xe8 || b == 0xe9) && p + 5 <= len)
		return (long)p + 5 + rd32(seg + p + 1);
	if (b == 0x0f && (seg[p + 1] & 0xf0) == 0x80 && p + 6 <= len)
		return (long)p + 6 + rd32(seg + p + 2);
	return -1;
}

static void mark(uint8_t *map, size_t len, long t)
{
	if (t >= 0 && (size_t)t < len)
		map[t >> 3] |= (uint8_t)(1u << (t & 7));
}

void st_targets_precise(const uint8_t *seg, size_t len, size_t from, size_t to, uint8_t *map,
			uint8_t *starts)
{
	while (from < to && from < len) {
		struct x86_insn in;
		if (x86_decode(seg + from, len - from, &in) < 0) {
			st_targets_any(seg, len, from, to, map);
			return;
		}
		if (starts)
			mark(starts, len, (long)from);
		if (in.rel_size == 1)
			mark(map, len, (long)(from + in.len) + (int8_t)seg[from + in.rel_off]);
		else if (in.rel_size == 4)
			mark(map, len, (long)(from + in.len) + rd32(seg + from + in.rel_off));
		from += in.len;
	}
}

void st_targets_any(const uint8_t *seg, size_t len, size_t from, size_t to, uint8_t *map)
{
	for (size_t p = from; p < to && p + 2 <= len; p++)
		mark(map, len, branch_target(seg, len, p));
}

enum st_site_why st_site_at(const uint8_t *seg, size_t len, size_t sys, struct st_site *s)
{
	return st_site_at2(seg, len, sys, NULL, s);
}

static bool map_any(const uint8_t *map, size_t lo, size_t hi)
{
	for (size_t t = lo; t < hi; t++)
		if (map[t >> 3] & (1u << (t & 7)))
			return true;
	return false;
}

size_t st_site_scan(const uint8_t *seg, size_t len, const uint8_t *targets,
		    const uint8_t *starts, void (*fn)(void *ctx, size_t sys, enum st_site_why why, const struct st_site *s),
		    void *ctx)
{
	size_t n = 0;
	for (size_t off = 0; off + 2 <= len; off++) {
		if (seg[off] != 0x0f || seg[off + 1] != 0x05)
			continue;
		n++;
		struct st_site s = { 0 };
		enum st_site_why why = st_site_at2(seg, len, off, starts, &s);
		if (why == ST_SITE_OK && (targets ? map_any(targets, s.start + 1, s.end)
						  : st_branch_into(seg, len, s.start + 1, s.end)))
			why = ST_SITE_BRANCH_IN;
		fn(ctx, off, why, &s);
	}
	return n;
}
