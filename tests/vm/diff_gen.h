/* SPDX-License-Identifier: MIT */
/*
 * tests/vm/difftest.c's stream generator: seeded random SQEs, valid and
 * invalid, described side-independently (struct gop: buffers as offsets
 * into a per-side arena, the file as a kind), so the same stream can be
 * written into the kernel's ring and into nvring's.
 *
 * Determinism: NVMe and the kernel both run unordered requests in any
 * order, so within a batch (everything submitted before the test waits) a
 * write never overlaps another request's blocks unless both are in the
 * same link chain (chains run one member at a time on both sides). Drains
 * are not counted as ordering (a drain fails once CQE_SKIP_SUCCESS was
 * seen). Each request has its own arena memory. CQE_SKIP_SUCCESS is only
 * put where its request's end is observable: on a chain member followed by
 * another member, or on a NOP outside any chain -- so when the kernel has
 * posted every CQE nvring posted, its requests have all finished.
 *
 * What is deliberately not generated (the two sides could not agree, by
 * design or by nondeterminism):
 *  - RWF_NOWAIT: the kernel may return -EAGAIN when its queue is busy.
 *  - offset -1 (the file position): the kernel's f_pos and nvring's start
 *    at byte 0 of the namespace, outside the test region.
 *  - opcodes the 6.1 kernel knows but nvring does not implement (SEND,
 *    URING_CMD, ... on a block device): the kernel fails them at issue
 *    (-ENOTSOCK, -EOPNOTSUPP, ... in the CQE) while nvring fails them at
 *    submission with -EOPNOTSUPP, which also ends the enter early; nvring's
 *    IORING_REGISTER_PROBE says they are unsupported. Opcodes beyond
 *    IORING_OP_LAST are generated (-EINVAL on both).
 *  - fds that are real files but not block devices.
 *  - an SQE that fails at submission after a drained request in the same
 *    batch (on a ring where drains work): Linux 6.1 posts the failure's CQE
 *    at once, ahead of the drained request, and its drain test
 *    (req_need_defer(): sequence + cq_extra != cached_cq_tail) then never
 *    holds again -- the drained request and everything queued behind it
 *    never complete (seen in the guest). nvring does not copy that hang.
 *    Rings whose streams use CQE_SKIP_SUCCESS start with a skipped NOP, so
 *    every drain on them fails (-EOPNOTSUPP) and nothing is ever held.
 *  - on IOPOLL rings (Linux 6.1 against its poll queues; see dg_op() and
 *    dg_rw()): drains (a drained request and everything after it never
 *    completed), links, ASYNC and CQE_SKIP_SUCCESS on reads and writes
 *    (the kernel's IOPOLL result path fails a link or not, and posts a
 *    skipped error or not, by how the request was issued), partial faults
 *    (the PROT_NONE hole: the rest is retried through io-wq), and valid
 *    requests the block layer would split (a split polled bio fails with
 *    -EAGAIN and io-wq retries it for ever). Big transfers are therefore
 *    not on IOPOLL rings either.
 */
#ifndef NVRING_TESTS_VM_DIFF_GEN_H
#define NVRING_TESTS_VM_DIFF_GEN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/io_uring.h>
#include <sys/uio.h>

#define DG_ARENA     (32u << 20)    /* data buffers per side */
#define DG_BUF1_OFF  (DG_ARENA / 2 + 100)  /* registered buffer 1: not page aligned */
#define DG_MAX_OPS   512            /* per batch */
#define DG_MAX_SEGS  16384          /* iovecs per batch */
#define DG_BIG_MAX   (6u << 20)     /* the largest transfer of a big stream */
#define DG_UIO_MAXIOV 1024          /* the kernel's iovec count limit (UIO_MAXIOV) */
#define DG_NBUFS     3              /* registered: arena half 0, half 1, an empty slot */
#define DG_NFILES    3              /* registered: dev, empty, dev */
#define DG_BAD_KADDR 0xffff888000000000ull   /* non-canonical for user space */
#define DG_UNMAPPED  0x0000100000000000ull   /* canonical, checked unmapped at start */
/* Each side's hole: page 0 readable and writable (compared like the
 * arena), pages 1 and 2 PROT_NONE. Buffers, segments and iovec arrays
 * placed so that they run from page 0 into page 1 give short transfers
 * or -EFAULT (the kernel is the reference). One request per batch uses
 * the hole, so its page 0 bytes are deterministic. */
#define DG_HOLE_SZ   (3u * 4096)

enum dg_fd { FD_DEV, FD_FIX0, FD_FIX2, FD_FIX_EMPTY, FD_FIX_OOR, FD_BAD, FD_UNOPENED };
enum dg_addr { A_ABS, A_ARENA, A_IOV, A_HOLE };

struct gseg { uint8_t kind; uint64_t base, len; };  /* A_ABS, A_ARENA or A_HOLE */

struct gop {
	uint64_t ud;
	uint8_t  opcode, flags, fdk, addrk;
	uint16_t ioprio, buf_index, personality;
	uint64_t addr;        /* A_ABS: value; A_ARENA: arena offset; A_IOV: first gseg;
	                         A_HOLE: offset in the hole */
	uint32_t hole_iov;    /* an iovec array in the hole (vectored, A_HOLE): its
	                         entries are gsegs [hole_iov, +len), written there */
	uint32_t len;
	uint64_t off;
	uint32_t rw_flags;
	uint32_t splice_fd_in;
	int      chain;
	bool     reads_mem;   /* the arena bytes at [addr, +len) are a read target */
	bool     may_short;   /* may transfer less than asked: no link flag (dg_op()) */
	const char *what;     /* the generator's intent, for reports */
};

struct dg_range { uint64_t lo, hi; int chain; bool w; };

struct dgen {
	uint64_t rng;                    /* the generator's stream: see dg_rand() */
	uint64_t dev_bytes, region_lo;  /* the test region: [region_lo, dev_bytes) */
	uint32_t lbs;
	bool     skip_ok;                /* CQE_SKIP_SUCCESS allowed in this stream */
	bool     big;                    /* transfers up to DG_BIG_MAX, iovecs up to UIO_MAXIOV */
	bool     iopoll;                 /* an IOPOLL ring: no request the block layer must split */
	bool     calm;                   /* a drain was queued: nothing may fail at submission */
	bool     hole_used;              /* a request of this batch uses the hole */
	uint64_t next_ud;
	/* per batch */
	struct gop ops[DG_MAX_OPS];
	unsigned nops;
	struct gseg segs[DG_MAX_SEGS];
	unsigned nsegs;
	struct dg_range ranges[DG_MAX_OPS];
	unsigned nranges;
	uint64_t bump;                   /* arena bytes handed out */
	uint8_t *fill;                   /* side 0's arena: write sources filled here */
	/* per stream (dg_stream_next()) */
	unsigned entries;                /* the ring's SQ size: batch pieces */
	unsigned sqes, batches;          /* generated so far */
	unsigned quota;                  /* SQEs to generate (dg_stream_cfg.sqes or the default) */
	uint64_t digest;                 /* of everything generated so far */
};

/* xorshift64*: one draw from the state @s (never 0). */
static inline uint64_t dg_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}
/* Only the generator draws from g->rng, and only while it builds a batch:
 * then the SQE stream is a function of the seed alone. */
static inline uint64_t dg_rand(struct dgen *g) { return dg_next(&g->rng); }
static inline unsigned dg_pct(struct dgen *g) { return (unsigned)(dg_rand(g) % 100); }
static inline uint64_t dg_range_rand(struct dgen *g, uint64_t lo, uint64_t hi)
{
	return lo + dg_rand(g) % (hi - lo + 1);
}

/* Arena memory for one buffer: @len bytes at @mis past a page boundary.
 * Write sources get random bytes, read targets a poison pattern (both the
 * same on the two sides: side 1's arena is copied from side 0's). */
static inline bool dg_alloc(struct dgen *g, uint64_t len, uint32_t mis, bool src, uint64_t *out)
{
	uint64_t p = ((g->bump + 4095) & ~4095ull) + mis;
	if (p + len + 64 > DG_ARENA)
		return false;
	*out = p;
	g->bump = p + len;
	uint8_t *b = g->fill + p;
	if (src) {
		for (uint64_t i = 0; i < len; i += 8) {
			uint64_t v = dg_rand(g);
			memcpy(b + i, &v, len - i < 8 ? len - i : 8);
		}
	} else {
		memset(b, 0xa5, len);
	}
	return true;
}

/* Byte offset of the buffer inside its page: mostly aligned, sometimes
 * dword or block aligned, rarely misaligned (-EINVAL on both). */
static inline uint32_t dg_mis(struct dgen *g)
{
	unsigned x = dg_pct(g);
	if (x < 65) return 0;
	if (x < 78) return 512u * (uint32_t)dg_range_rand(g, 1, 7);
	if (x < 92) return 4u * (uint32_t)dg_range_rand(g, 1, 1023);
	return (uint32_t)dg_range_rand(g, 1, 3) + 4u * (uint32_t)dg_range_rand(g, 0, 100);
}

/* Would [lo, hi) (@w: written) race with an unordered request? */
static inline bool dg_conflicts(const struct dgen *g, uint64_t lo, uint64_t hi, bool w, int chain)
{
	for (unsigned i = 0; i < g->nranges; i++) {
		const struct dg_range *r = &g->ranges[i];
		if (r->chain != chain && (w || r->w) && lo < r->hi && r->lo < hi)
			return true;
	}
	return false;
}

/* The device bytes a request at @off for @len could touch (none if it
 * starts outside the namespace). */
static inline void dg_touch(const struct dgen *g, uint64_t off, uint64_t len, uint64_t *lo,
			    uint64_t *hi)
{
	*lo = *hi = 0;
	if ((int64_t)off < 0 || off >= g->dev_bytes || !len)
		return;
	*lo = off & ~(uint64_t)(g->lbs - 1);
	uint64_t end = len > g->dev_bytes - off ? g->dev_bytes : off + len;
	*hi = (end + g->lbs - 1) & ~(uint64_t)(g->lbs - 1);
}

/* An aligned offset inside the region where @len bytes fit. */
static inline uint64_t dg_region_off(struct dgen *g, uint64_t len)
{
	uint64_t blocks = (g->dev_bytes - g->region_lo - len) / g->lbs;
	return g->region_lo + dg_range_rand(g, 0, blocks) * g->lbs;
}

/* Offset and length for a data request; @huge_ok: lengths beyond the
 * buffer (only where the namespace end truncates them). Sets @mem: bytes
 * the buffer needs. */
static inline void dg_shape(struct dgen *g, struct gop *o, bool huge_ok, uint64_t *mem)
{
	uint32_t lbs = g->lbs;
	uint32_t nblk = (uint32_t)(dg_pct(g) < 80 ? dg_range_rand(g, 1, 8) : dg_range_rand(g, 9, 64));
	if (g->big && dg_pct(g) < 30) {
		/* past MDTS (split into several NVMe commands), past the
		 * bounce pool's extents: 64 KiB to DG_BIG_MAX */
		nblk = (uint32_t)dg_range_rand(g, (64u << 10) / lbs, DG_BIG_MAX / lbs);
		o->len = nblk * lbs;
		o->off = dg_region_off(g, o->len);
		*mem = o->len;
		o->what = "big";
		if (dg_pct(g) < 15) {
			o->off = g->dev_bytes - (uint64_t)lbs * dg_range_rand(g, 1, nblk - 1);
			o->what = "big, crossing the end", o->may_short = true;
		}
		return;
	}
	o->len = nblk * lbs;
	o->off = dg_region_off(g, o->len);
	*mem = o->len;
	unsigned x = dg_pct(g);
	if (x < 62) {
		o->what = "in range";
	} else if (x < 66) {
		static const uint32_t d[] = { 1, 511, 513, 256, 4 };
		o->off += d[dg_rand(g) % 5];
		o->what = "misaligned offset";
	} else if (x < 70) {
		static const int d[] = { 1, -1, 256, -100 };
		o->len = (uint32_t)((int)o->len + d[dg_rand(g) % 4]);
		*mem = o->len;
		o->what = "misaligned length";
	} else if (x < 77) {
		uint32_t k = (uint32_t)dg_range_rand(g, 1, 8);
		o->off = g->dev_bytes - (uint64_t)k * lbs;
		o->len = (k + (uint32_t)dg_range_rand(g, 1, 8)) * lbs;
		*mem = o->len;
		o->what = "crossing the end", o->may_short = true;
	} else if (x < 81) {
		o->off = g->dev_bytes + (dg_pct(g) < 20 ? 1 : dg_range_rand(g, 0, 3) * lbs);
		o->what = "beyond the end";
	} else if (x < 83) {
		o->off = dg_pct(g) < 50 ? 1ull << 63 : (uint64_t)-(int64_t)lbs;
		o->what = "negative offset";
	} else if (x < 86 && huge_ok) {
		uint32_t k = (uint32_t)dg_range_rand(g, 1, 8);
		o->off = g->dev_bytes - (uint64_t)k * lbs;
		o->len = dg_pct(g) < 50 ? 0x7fffffffu : 0xfffffe00u;
		*mem = (uint64_t)k * lbs;
		o->what = "huge length, truncated at the end", o->may_short = true;
	} else if (x < 88) {
		o->len = 0;
		*mem = 0;
		o->what = "zero length";
	} else {
		o->what = "in range";
	}
}

/* An offset in the hole for @len bytes: mostly ending past page 0 (some
 * whole blocks readable, then the PROT_NONE page), sometimes starting in
 * it; dword or block aligned. */
static inline uint64_t dg_hole_off(struct dgen *g, uint64_t len)
{
	unsigned x = dg_pct(g);
	if (x < 20)
		return 4096 + 512 * dg_range_rand(g, 0, 7);             /* all bad */
	uint64_t in = len < 4096 ? len : 4096;
	uint64_t keep = dg_range_rand(g, 0, in / g->lbs) * g->lbs;  /* bytes before the fault */
	if (x < 45 && keep >= 8)
		keep -= 4 * dg_range_rand(g, 1, keep / 8);              /* dword aligned */
	return 4096 - keep;
}

static inline uint8_t dg_fdk(struct dgen *g)
{
	unsigned x = dg_pct(g);
	if (x < 70) return FD_DEV;
	if (x < 82) return FD_FIX0;
	if (x < 92) return FD_FIX2;
	if (x < 94) return FD_FIX_EMPTY;
	if (x < 96) return FD_FIX_OOR;
	if (x < 98) return FD_BAD;
	return FD_UNOPENED;
}

static inline uint32_t dg_rw_flags(struct dgen *g)
{
	unsigned x = dg_pct(g);
	if (x < 88) return 0;
	if (x < 92) return RWF_DSYNC;
	if (x < 94) return RWF_SYNC;
	if (x < 96) return RWF_HIPRI;
	if (x < 98) return RWF_APPEND;
	return 0x100;       /* unknown */
}

static inline uint16_t dg_ioprio(struct dgen *g)
{
	static const uint16_t v[] = {
		2 << 13 | 4,    /* BE, level 4: fine */
		3 << 13,        /* IDLE: fine */
		2 << 13 | 9,    /* BE level 9: -EINVAL */
		5 << 13,        /* no such class: -EINVAL */
		1,              /* class NONE with data: -EINVAL */
	};
	return v[dg_rand(g) % 5];
}

/* Fill the data fields of a READ/WRITE/READV/WRITEV/READ_FIXED/WRITE_FIXED. */
static inline bool dg_rw(struct dgen *g, struct gop *o)
{
	bool wr = o->opcode == IORING_OP_WRITE || o->opcode == IORING_OP_WRITEV ||
		  o->opcode == IORING_OP_WRITE_FIXED;
	bool vec = o->opcode == IORING_OP_READV || o->opcode == IORING_OP_WRITEV;
	bool fixed = o->opcode == IORING_OP_READ_FIXED || o->opcode == IORING_OP_WRITE_FIXED;
	uint64_t mem;
	dg_shape(g, o, !vec, &mem);
	o->fdk = dg_fdk(g);
	o->rw_flags = dg_rw_flags(g);
	if (dg_pct(g) < 3)
		o->ioprio = g->calm ? 2 << 13 | 4 : dg_ioprio(g);
	o->reads_mem = !wr;
	uint64_t cap = mem > 256 * 1024 && !g->big ? 256 * 1024 : mem > DG_BIG_MAX ? DG_BIG_MAX : mem;
	if (!vec) {
		unsigned x = dg_pct(g);
		o->addrk = A_ARENA;
		if (x < 2 && !fixed) {
			o->addrk = A_ABS, o->addr = 0, o->what = "NULL buffer";
			return true;
		}
		if (x < 4) {
			o->addrk = A_ABS, o->addr = DG_BAD_KADDR, o->what = "kernel-space buffer";
			return true;
		}
		if (x < 5 && !fixed) {
			o->addrk = A_ABS, o->addr = DG_UNMAPPED, o->what = "unmapped buffer";
			return true;
		}
		if (x < 9 && !fixed && !g->hole_used && !g->calm) {
			g->hole_used = true;
			o->addrk = A_HOLE, o->addr = dg_hole_off(g, mem), o->what = "buffer into a PROT_NONE page";
			o->may_short = true;
			return true;
		}
		if (!dg_alloc(g, cap, dg_mis(g), wr, &o->addr))
			return false;
		if (fixed) {
			uint64_t end = o->addr + cap;
			o->buf_index = end <= DG_ARENA / 2 ? 0 : o->addr >= DG_BUF1_OFF ? 1 : 0;
			x = dg_pct(g);
			if (x < 3)
				o->buf_index = 2, o->what = "empty buffer slot";
			else if (x < 5)
				o->buf_index = (uint16_t)(o->buf_index ^ 1), o->what = "other buffer";
			else if (x < 7 && !g->calm)
				o->buf_index = dg_pct(g) < 50 ? DG_NBUFS : 0xffff, o->what = "buf_index out of range";
		}
		return true;
	}
	/* vectored: the iovec array is in the side's iov area */
	o->addrk = A_IOV;
	o->addr = g->nsegs;
	unsigned x = g->calm ? 99 : dg_pct(g);
	if (x < 6 && o->fdk >= FD_FIX_EMPTY)
		o->fdk = FD_DEV;   /* one error at a time: see dg_op() */
	if (x < 2) {
		o->len = 0, o->what = "no iovecs";
		return true;
	}
	if (x < 3) {
		o->len = 1025, o->what = "iovcnt > UIO_MAXIOV";
		return true;
	}
	if (x < 5) {
		o->addrk = A_ABS, o->addr = dg_pct(g) < 50 ? 0 : DG_BAD_KADDR, o->len = 1;
		o->what = "bad iovec array";
		return true;
	}
	if (x < 6 && !g->hole_used) {
		/* the array itself runs into the PROT_NONE page; its entries
		 * are copied from the side's iov area (difftest.c) */
		g->hole_used = true;
		o->addrk = A_HOLE;
		o->len = (unsigned)dg_range_rand(g, 1, 4);
		o->addr = 4096 - 16 * dg_range_rand(g, 0, o->len - 1);
		o->what = "iovec array into a PROT_NONE page";
		/* real entries for the readable part (difftest.c writes them
		 * into the hole's page 0), so what the kernel reads before the
		 * fault is a valid array */
		if (g->nsegs + o->len > DG_MAX_SEGS)
			return false;
		o->hole_iov = g->nsegs;
		for (unsigned i = 0; i < o->len; i++) {
			struct gseg *s = &g->segs[g->nsegs++];
			s->kind = A_ARENA;
			s->len = (uint64_t)g->lbs * dg_range_rand(g, 1, 4);
			if (!dg_alloc(g, s->len, dg_pct(g) < 80 ? 0 : 512, wr, &s->base))
				return false;
		}
		return true;
	}
	unsigned n = (unsigned)dg_range_rand(g, 1, 6);
	if (g->big && dg_pct(g) < 25) {
		/* many segments, up to the kernel's limit: each a few blocks
		 * (sometimes dword-sized pieces), at most DG_BIG_MAX in all */
		n = dg_pct(g) < 20 ? DG_UIO_MAXIOV : (unsigned)dg_range_rand(g, 7, DG_UIO_MAXIOV);
		if (g->nsegs + n + 1 > DG_MAX_SEGS)
			return false;
		uint64_t total = 0;
		for (unsigned i = 0; i < n; i++) {
			struct gseg *s = &g->segs[g->nsegs++];
			uint64_t len = (uint64_t)g->lbs * dg_range_rand(g, 0, 8);
			if (dg_pct(g) < 3 && len > 4)
				len -= 4 * dg_range_rand(g, 1, len / 4 - 1), o->what = "many segments, odd";
			else if (!o->what || strcmp(o->what, "many segments, odd"))
				o->what = "many segments";
			if (total + len > DG_BIG_MAX)
				len = 0;
			total += len;
			s->kind = A_ARENA;
			s->len = len;
			if (!dg_alloc(g, len, dg_pct(g) < 90 ? 0 : 4 * (uint32_t)dg_range_rand(g, 1, 1023), wr, &s->base))
				return false;
		}
		/* where the sum fits: dg_shape() placed the request for o->len */
		o->off = total < g->dev_bytes - g->region_lo ? dg_region_off(g, total ? total : g->lbs) : g->region_lo;
		o->len = n;
		return true;
	}
	if (g->nsegs + n + 1 > DG_MAX_SEGS)
		return false;
	uint64_t left = cap;
	/* IOPOLL: the segments of a valid request are whole pages but the
	 * last, each page aligned, so the kernel's bio needs no split.
	 * Linux 6.1 marks a polled bio REQ_NOWAIT (bio_set_polled()), and
	 * splitting one fails it with -EAGAIN, which io-wq retries for ever
	 * on an IOPOLL ring: the request never completes (seen here: a READV
	 * of 512 + 1536 + 512 bytes). nvring completes it; no result to
	 * compare. */
	bool whole = g->iopoll && n > 1;
	if (whole)
		left = cap = (uint64_t)4096 * dg_range_rand(g, n - 1, 2 * n);
	for (unsigned i = 0; i < n; i++) {
		struct gseg *s = &g->segs[g->nsegs++];
		uint64_t len = i + 1 == n ? left : (left / g->lbs) ? dg_range_rand(g, 0, left / g->lbs) * g->lbs : 0;
		if (whole && i + 1 < n)
			len = left / 4096 > n - 1 - i ? 4096 * dg_range_rand(g, 1, left / 4096 - (n - 1 - i)) : 4096;
		if (dg_pct(g) < 4 && len > 4 && !(whole && i + 1 < n))
			len -= 4 * dg_range_rand(g, 1, len / 4 - 1 ? len / 4 - 1 : 1), o->what = "odd segment";
		if (len > left)
			len = left;
		left -= len;
		s->kind = A_ARENA;
		s->len = len;
		uint32_t mis = whole ? 0 : dg_mis(g);
		if (!len && dg_pct(g) < 30 && !whole)
			mis = 2;     /* a misaligned empty segment */
		if (!dg_alloc(g, len, mis, wr, &s->base))
			return false;
		if (dg_pct(g) < 1)
			s->kind = A_ABS, s->base = 0, o->what = "NULL segment";
		else if (len && dg_pct(g) < 2 && !g->hole_used && !g->calm) {
			g->hole_used = true;
			s->kind = A_HOLE, s->base = dg_hole_off(g, len), o->what = "segment into a PROT_NONE page";
			o->may_short = true;
		} else if (len && dg_pct(g) < 1 && !g->calm)
			s->kind = A_ABS, s->base = DG_UNMAPPED, o->what = "unmapped segment";
	}
	if (dg_pct(g) < 2 && !g->calm) {
		struct gseg *s = &g->segs[g->nsegs - 1];
		s->len = 1ull << 63;       /* negative ssize_t: -EINVAL */
		o->what = "negative segment length";
		if (o->fdk >= FD_FIX_EMPTY)
			o->fdk = FD_DEV;   /* one error at a time: see dg_op() */
	}
	o->len = n;
	return true;
}

static inline void dg_falloc(struct dgen *g, struct gop *o)
{
	static const uint32_t modes[] = {
		FALLOC_FL_ZERO_RANGE, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
		FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		FALLOC_FL_ZERO_RANGE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE,
		FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
		FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE, FALLOC_FL_UNSHARE_RANGE,
		FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE | FALLOC_FL_NO_HIDE_STALE,
		FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_KEEP_SIZE, 0x80,
	};
	unsigned nm = sizeof(modes) / sizeof(modes[0]);
	o->len = dg_pct(g) < 70 ? modes[dg_rand(g) % 5] : modes[dg_rand(g) % nm];
	uint64_t len = (uint64_t)g->lbs * dg_range_rand(g, 1, dg_pct(g) < 90 ? 32 : 2048);
	o->off = dg_region_off(g, len);
	o->addr = len;
	o->addrk = A_ABS;
	o->fdk = dg_fdk(g);
	o->what = "fallocate";
	unsigned x = dg_pct(g);
	if (x < 6)
		o->off += dg_range_rand(g, 1, g->lbs - 1), o->what = "fallocate misaligned";
	else if (x < 10)
		o->addr += dg_range_rand(g, 1, g->lbs - 1), o->what = "fallocate odd length";
	else if (x < 18)
		o->off = g->dev_bytes - g->lbs * dg_range_rand(g, 1, 8), o->what = "fallocate at the end";
	else if (x < 21)
		o->off = g->dev_bytes + g->lbs * dg_range_rand(g, 0, 2), o->what = "fallocate beyond";
	else if (x < 23)
		o->addr = 0, o->what = "fallocate zero length";
	else if (x < 24)
		o->off = 1ull << 63, o->what = "fallocate negative";
	else if (x < 25)
		o->addr = (uint64_t)INT64_MAX, o->what = "fallocate overflow";
	else if (x < 27 && !g->calm)
		o->rw_flags = 1, o->what = "fallocate rw_flags";
	else if (x < 28 && !g->calm)
		o->buf_index = 1, o->what = "fallocate buf_index";
}

static inline void dg_fsync(struct dgen *g, struct gop *o)
{
	o->fdk = dg_fdk(g);
	o->addrk = A_ABS;
	o->rw_flags = dg_pct(g) < 50 ? IORING_FSYNC_DATASYNC : 0;
	o->off = dg_pct(g) < 80 ? 0 : g->region_lo;
	o->len = dg_pct(g) < 80 ? 0 : 4096;
	o->what = "fsync";
	unsigned x = g->calm ? 99 : dg_pct(g);
	if (x < 4)
		o->rw_flags = 2, o->what = "fsync bad flags";
	else if (x < 7)
		o->addr = 4096, o->what = "fsync addr";
	else if (x < 9)
		o->splice_fd_in = 1, o->what = "fsync splice_fd_in";
}

/* One request of chain @chain; @piece_end: the last of its enter piece (a
 * link flag there ends the chain: the kernel submits a chain left open at
 * the end of a submission as it is). */
static inline void dg_op(struct dgen *g, struct gop *o, int chain, bool piece_end)
{
	memset(o, 0, sizeof(*o));
	o->ud = g->next_ud++;
	o->chain = chain;
	unsigned x = dg_pct(g);
	static const uint8_t rwops[] = { IORING_OP_READ, IORING_OP_READ, IORING_OP_WRITE,
		IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_READ_FIXED, IORING_OP_WRITE_FIXED,
		IORING_OP_WRITE };
	bool ok = true;
	if (x < 10) {
		o->opcode = IORING_OP_NOP, o->what = "nop";
		if (dg_pct(g) < 5 && !g->calm)
			o->rw_flags = (uint32_t)dg_rand(g), o->what = "nop with rw_flags";
	} else if (x < 80) {
		o->opcode = rwops[dg_rand(g) % 8];
		ok = dg_rw(g, o);
	} else if (x < 86) {
		o->opcode = IORING_OP_FSYNC;
		dg_fsync(g, o);
	} else if (x < 96) {
		o->opcode = IORING_OP_FALLOCATE;
		dg_falloc(g, o);
	} else if (g->calm) {
		o->opcode = IORING_OP_NOP, o->what = "nop";
	} else {
		static const uint8_t bad[] = { IORING_OP_LAST, 200, 255 };
		o->opcode = bad[dg_rand(g) % 3];
		o->what = "opcode beyond IORING_OP_LAST";
	}
	if (!ok) {
		memset(o, 0, sizeof(*o));
		o->ud = g->next_ud - 1, o->chain = chain, o->opcode = IORING_OP_NOP, o->what = "nop (arena full)";
	}
	/* flags */
	unsigned f = 0;
	x = dg_pct(g);
	if (x < 25)
		f |= IOSQE_IO_LINK;
	else if (x < 32)
		f |= IOSQE_IO_HARDLINK;
	/* (IOPOLL: none. On Linux 6.1's IOPOLL ring a drained request
	 * and everything after it were seen never to complete -- the
	 * deferred list is flushed on posting paths the poll loop does not
	 * take. nvring runs them.) */
	if (dg_pct(g) < 5 && !g->iopoll)
		f |= IOSQE_IO_DRAIN;
	if (dg_pct(g) < 5)
		f |= IOSQE_ASYNC;
	/* IOPOLL: a read or write stands alone and posts its CQE. What Linux
	 * 6.1 does with an I/O-stage result (a misaligned buffer, a fault, a
	 * short transfer) inside a link on an IOPOLL ring is not one rule:
	 * seen here, a misaligned WRITE with CQE_SKIP_SUCCESS posted nothing
	 * and its link went on (io_complete_rw_iopoll() records the result
	 * without req_set_fail()), while a misaligned READ_FIXED cancelled
	 * the rest of its link; a WRITEV cut short by a PROT_NONE segment
	 * came back -ECANCELED alone (its rest retried through io-wq). Links
	 * of the other opcodes are generated as on every ring. */
	bool rw = o->opcode == IORING_OP_READ || o->opcode == IORING_OP_WRITE ||
		  o->opcode == IORING_OP_READV || o->opcode == IORING_OP_WRITEV ||
		  o->opcode == IORING_OP_READ_FIXED || o->opcode == IORING_OP_WRITE_FIXED;
	if (g->iopoll && rw)
		f &= ~(unsigned)(IOSQE_IO_LINK | IOSQE_IO_HARDLINK | IOSQE_ASYNC);
	/* A transfer that may come back short (the namespace's end, the
	 * PROT_NONE page) ends its chain, on every ring: whether Linux 6.1
	 * fails the rest of the link after a short read depends on how the
	 * read was issued. Seen with seed 1795365787 stream 3 batch 10 on a
	 * loaded host: a linked READV short at the device's end, and the
	 * next member ran (3072) where unloaded runs cancel it (-ECANCELED,
	 * as nvring always does); seed 1796156731 found the same shape.
	 * (An I/O-stage failure with no bytes -- a misaligned offset --
	 * still fails a link the same way on both; that stays.) */
	if (o->may_short)
		f &= ~(unsigned)(IOSQE_IO_LINK | IOSQE_IO_HARDLINK);
	bool in_chain = (f & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK)) && !piece_end;
	bool standalone = !in_chain && (!g->nops || g->ops[g->nops - 1].chain != chain);
	if (g->skip_ok && (in_chain || (o->opcode == IORING_OP_NOP && standalone)) && dg_pct(g) < 30 &&
	    !(g->iopoll && rw))
		f |= IOSQE_CQE_SKIP_SUCCESS;
	x = g->calm ? 99 : dg_pct(g);
	if (x < 2)
		f |= 0x80, o->what = "unknown sqe flag";
	else if (x < 3)
		f |= IOSQE_BUFFER_SELECT, o->what = "buffer select without buffers";
	/* A READV/WRITEV whose iovec import fails and whose file is bad:
	 * Linux 6.1 reports the import error when the request takes the
	 * io_queue_sqe_fallback() path (IOSQE_ASYNC, drains, a chain left
	 * open at the end of a submission), which prepares it before the
	 * file lookup, and -EBADF otherwise -- and whether a drain is still
	 * active depends on timing. Not generated: one error at a time. */
	if ((f & IOSQE_BUFFER_SELECT) && o->opcode == IORING_OP_READV && o->fdk >= FD_FIX_EMPTY)
		o->fdk = FD_DEV;
	if (o->fdk >= FD_FIX0 && o->fdk <= FD_FIX_OOR)
		f |= IOSQE_FIXED_FILE;
	o->flags = (uint8_t)f;
	if ((f & IOSQE_IO_DRAIN) && !g->skip_ok)
		g->calm = true;
	x = g->calm ? 99 : dg_pct(g);
	if (x < 1)
		o->personality = 3, o->what = "personality";
	else if (x < 2 && o->opcode == IORING_OP_NOP)
		o->ioprio = 1, o->what = "nop with ioprio";
}

/* Keep @o away from unordered requests on the same blocks: move it inside
 * the region, else make it a NOP. Then record its blocks. */
static inline void dg_settle(struct dgen *g, struct gop *o)
{
	bool w, data = true;
	uint64_t len;
	switch (o->opcode) {
	case IORING_OP_READ: case IORING_OP_READV: case IORING_OP_READ_FIXED:
	case IORING_OP_WRITE: case IORING_OP_WRITEV: case IORING_OP_WRITE_FIXED:
		w = !o->reads_mem;
		len = o->len;
		if (o->opcode == IORING_OP_READV || o->opcode == IORING_OP_WRITEV) {
			len = 0;
			if (o->addrk == A_IOV)
				for (uint32_t i = 0; i < o->len && o->addr + i < g->nsegs; i++)
					len += g->segs[o->addr + i].len;
			if (len > 1u << 30)
				len = 1u << 30;
		}
		break;
	case IORING_OP_FALLOCATE:
		w = true;
		len = o->addr;
		break;
	default:
		data = false;
		w = false;
		len = 0;
	}
	if (!data)
		return;
	uint64_t lo, hi;
	dg_touch(g, o->off, len, &lo, &hi);
	if (lo == hi)
		return;
	for (int tries = 0; dg_conflicts(g, lo, hi, w, o->chain); tries++) {
		/* huge lengths stay where the end truncates them */
		if (tries == 16 || hi - lo > g->dev_bytes - g->region_lo ||
		    (o->opcode != IORING_OP_FALLOCATE && len > DG_BIG_MAX)) {
			uint64_t ud = o->ud;
			int chain = o->chain;
			uint8_t fl = o->flags & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK);
			memset(o, 0, sizeof(*o));
			o->ud = ud, o->chain = chain, o->flags = fl, o->opcode = IORING_OP_NOP;
			o->what = "nop (blocks busy)";
			return;
		}
		uint64_t delta = o->off - lo;
		o->off = dg_region_off(g, hi - lo) + delta;
		dg_touch(g, o->off, len, &lo, &hi);
	}
	g->ranges[g->nranges++] = (struct dg_range){ lo, hi, o->chain, w };
}

/* A batch: @npieces enter pieces of @pieces[i] requests each (all
 * submitted before the test waits for completions). */
static inline void dg_batch(struct dgen *g, const unsigned *pieces, unsigned npieces)
{
	g->nops = g->nsegs = g->nranges = 0;
	g->bump = 0;
	g->calm = false;
	g->hole_used = g->iopoll;   /* IOPOLL: no partial faults (see dg_op()) */
	int chain = 0;
	for (unsigned p = 0; p < npieces; p++) {
		for (unsigned i = 0; i < pieces[p] && g->nops < DG_MAX_OPS; i++) {
			bool end = i + 1 == pieces[p];
			struct gop *o = &g->ops[g->nops];
			dg_op(g, o, chain, end);
			dg_settle(g, o);
			g->nops++;
			if (end || !(o->flags & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK)))
				chain++;
		}
	}
}

/* ---- streams ----------------------------------------------------------- */

#define DG_REGION          (12u << 20)  /* the test region: the namespace's last 12 MiB */
#define DG_SQES_PER_STREAM 1000

/* The ring configurations difftest runs, one stream each (the SQ size
 * bounds the batch pieces; @skip: CQE_SKIP_SUCCESS is generated). */
struct dg_stream_cfg { unsigned entries; uint32_t flags; unsigned cq; bool skip, big; unsigned sqes; };

#define DG_IOPOLL IORING_SETUP_IOPOLL
#define DG_SQPOLL IORING_SETUP_SQPOLL
static const struct dg_stream_cfg dg_streams[] = {
	{ 1, 0, 0, false, false, 0 }, { 2, 0, 0, true, false, 0 }, { 4, 0, 0, false, false, 0 }, { 8, IORING_SETUP_SUBMIT_ALL, 0, true, false, 0 },
	{ 16, 0, 0, false, false, 0 }, { 32, IORING_SETUP_CQSIZE, 32, true, false, 0 }, { 64, 0, 0, false, false, 0 },
	{ 8, IORING_SETUP_CQSIZE, 8, false, false, 0 }, { 128, IORING_SETUP_SUBMIT_ALL, 0, true, false, 0 },
	{ 32, 0, 0, false, false, 0 }, { 16, 0, 0, true, false, 0 }, { 64, IORING_SETUP_SUBMIT_ALL, 0, false, false, 0 },
	/* polled rings, against the kernel's IOPOLL (its poll queues) */
	{ 4, DG_IOPOLL, 0, false, false, 0 }, { 32, DG_IOPOLL | IORING_SETUP_SUBMIT_ALL, 0, true, false, 0 },
	{ 16, DG_IOPOLL | IORING_SETUP_CQSIZE, 16, false, false, 0 },
	/* SQPOLL against the kernel's SQ thread (compared per batch as sets) */
	{ 8, DG_SQPOLL, 0, false, false, 0 }, { 64, DG_SQPOLL, 0, true, false, 0 }, { 16, DG_SQPOLL | DG_IOPOLL, 0, false, false, 0 },
	/* 128-byte SQEs, 32-byte CQEs */
	{ 16, IORING_SETUP_SQE128, 0, false, false, 0 }, { 32, IORING_SETUP_CQE32, 0, true, false, 0 },
	{ 8, IORING_SETUP_SQE128 | IORING_SETUP_CQE32 | DG_IOPOLL, 0, false, false, 0 },
	/* big transfers and many-segment iovecs, in each ring mode */
	/* (not IOPOLL: the kernel splits what is past its max_sectors, and
	 * never completes a split polled bio -- see dg_rw()) */
	{ 8, 0, 0, false, true, 300 }, { 16, 0, 0, true, true, 300 },
	{ 8, DG_SQPOLL, 0, false, true, 200 },
};
#define DG_NSTREAMS (sizeof(dg_streams) / sizeof(dg_streams[0]))

/* One word into a running 64-bit digest (multiply-xorshift: every bit of
 * @v reaches every bit of the state). */
static inline void dg_mix(uint64_t *h, uint64_t v)
{
	*h = (*h ^ v) * 0x9e3779b97f4a7c15ull;
	*h ^= *h >> 29;
}

/* The batch just generated, into g->digest: its split into enter pieces,
 * every SQE field, every iovec segment, and the generator's state after it
 * (which covers the write-source bytes drawn into the arena). */
static inline void dg_digest_batch(struct dgen *g, const unsigned *pieces, unsigned npieces)
{
	uint64_t *h = &g->digest;
	dg_mix(h, npieces);
	for (unsigned i = 0; i < npieces; i++)
		dg_mix(h, pieces[i]);
	dg_mix(h, g->nops);
	for (unsigned i = 0; i < g->nops; i++) {
		const struct gop *o = &g->ops[i];
		dg_mix(h, o->ud);
		dg_mix(h, (uint64_t)o->opcode | (uint64_t)o->flags << 8 | (uint64_t)o->fdk << 16 |
			  (uint64_t)o->addrk << 24 | (uint64_t)o->reads_mem << 32);
		dg_mix(h, (uint64_t)o->ioprio | (uint64_t)o->buf_index << 16 | (uint64_t)o->personality << 32);
		dg_mix(h, o->addr);
		dg_mix(h, (uint64_t)o->len | (uint64_t)o->rw_flags << 32);
		dg_mix(h, o->off);
		dg_mix(h, (uint64_t)o->splice_fd_in | (uint64_t)(uint32_t)o->chain << 32);
		dg_mix(h, o->hole_iov);
	}
	dg_mix(h, g->nsegs);
	for (unsigned i = 0; i < g->nsegs; i++) {
		dg_mix(h, g->segs[i].kind);
		dg_mix(h, g->segs[i].base);
		dg_mix(h, g->segs[i].len);
	}
	dg_mix(h, g->bump);
	dg_mix(h, g->rng);
}

/* Start stream @idx of @seed on a namespace of @dev_bytes in @lbs blocks;
 * @fill: DG_ARENA bytes where write sources are generated. */
static inline void dg_stream_init(struct dgen *g, uint64_t seed, unsigned idx, uint64_t dev_bytes,
				  uint32_t lbs, uint8_t *fill)
{
	memset(g, 0, sizeof(*g));
	g->rng = seed * 0x9e3779b97f4a7c15ull + idx + 1;
	if (!g->rng)
		g->rng = 1;    /* xorshift's one fixed point */
	g->dev_bytes = dev_bytes;
	g->region_lo = dev_bytes - DG_REGION;
	g->lbs = lbs;
	g->skip_ok = dg_streams[idx].skip;
	g->big = dg_streams[idx].big;
	g->iopoll = dg_streams[idx].flags & IORING_SETUP_IOPOLL;
	g->quota = dg_streams[idx].sqes ? dg_streams[idx].sqes : DG_SQES_PER_STREAM;
	g->entries = dg_streams[idx].entries;
	g->next_ud = (uint64_t)idx << 32 | 1;
	g->fill = fill;
	g->digest = seed ^ idx;
}

/* The stream's next batch into g->ops/g->segs and its split into
 * @pieces[@*npieces]; false once the stream has its DG_SQES_PER_STREAM. */
static inline bool dg_stream_next(struct dgen *g, unsigned pieces[3], unsigned *npieces)
{
	if (g->sqes >= g->quota)
		return false;
	unsigned np = dg_pct(g) < 80 ? 1 : (unsigned)dg_range_rand(g, 2, 3), n = 0;
	for (unsigned i = 0; i < np; i++) {
		pieces[i] = dg_pct(g) < 25 ? g->entries : (unsigned)dg_range_rand(g, 1, g->entries);
		if (n + pieces[i] > DG_MAX_OPS)
			pieces[i] = DG_MAX_OPS - n;
		n += pieces[i];
	}
	dg_batch(g, pieces, np);
	dg_digest_batch(g, pieces, np);
	*npieces = np;
	g->sqes += g->nops;
	g->batches++;
	return true;
}

/* The state for run-time choices (how many SQEs each enter asks to
 * submit, ...) while batch @batch of stream @stream runs: its own stream,
 * derived from the three numbers alone. The number of enters a batch takes
 * depends on results (a submission error ends an enter early), so drawing
 * these from g->rng would make every later batch depend on how earlier
 * ones ran. */
static inline uint64_t dg_run_rng(uint64_t seed, unsigned stream, unsigned batch)
{
	uint64_t s = seed ^ 0x52554e54494d45ull;   /* "RUNTIME" */
	dg_mix(&s, stream);
	dg_mix(&s, batch);
	return s ? s : 1;
}

/* ---- one side's memory ------------------------------------------------- */

/* Where a gop's kinds and offsets point on one side (the kernel's, nvring's):
 * the device's fd, the arena, the hole (DG_HOLE_SZ) and the iovec area
 * (DG_MAX_SEGS entries). */
struct dg_mem { int devfd; uint8_t *arena, *hole; struct iovec *iov; };

/* @o into the zeroed SQE @q, for the side @m. */
static inline void dg_put_sqe(struct io_uring_sqe *q, const struct gop *o, const struct dg_mem *m)
{
	q->opcode = o->opcode;
	q->flags = o->flags;
	q->ioprio = o->ioprio;
	q->user_data = o->ud;
	q->len = o->len;
	q->off = o->off;
	q->rw_flags = o->rw_flags;
	q->buf_index = o->buf_index;
	q->personality = o->personality;
	q->splice_fd_in = (int32_t)o->splice_fd_in;
	switch (o->fdk) {
	case FD_DEV:       q->fd = m->devfd; break;
	case FD_FIX0:      q->fd = 0; break;
	case FD_FIX2:      q->fd = 2; break;
	case FD_FIX_EMPTY: q->fd = 1; break;
	case FD_FIX_OOR:   q->fd = DG_NFILES; break;
	case FD_BAD:       q->fd = -1; break;
	default:           q->fd = 987; break;   /* not open */
	}
	switch (o->addrk) {
	case A_ARENA: q->addr = (uintptr_t)(m->arena + o->addr); break;
	case A_IOV:   q->addr = (uintptr_t)&m->iov[o->addr]; break;
	case A_HOLE:  q->addr = (uintptr_t)(m->hole + o->addr); break;
	default:      q->addr = o->addr; break;
	}
}

/* Before batch @batch of @g runs on the side @m: the hole's readable page
 * gets a pattern (the same on every side: write sources, or poison for
 * reads), an iovec array that runs from it into the PROT_NONE page its
 * real entries (segments in this side's arena, so what the kernel reads
 * before the fault is a valid array), and the iovec area the batch's
 * segments. Returns how many bytes of the hole's page to compare after
 * the batch (an array holds each side's own addresses). */
static inline unsigned dg_mem_prepare(const struct dgen *g, const struct dg_mem *m, unsigned batch)
{
	unsigned cmp = 4096;
	for (unsigned i = 0; i < 4096; i++)
		m->hole[i] = (uint8_t)(i * 7 + batch);
	for (unsigned i = 0; i < g->nops; i++) {
		const struct gop *o = &g->ops[i];
		if (o->addrk != A_HOLE || (o->opcode != IORING_OP_READV && o->opcode != IORING_OP_WRITEV))
			continue;
		for (uint32_t k = 0; k < o->len && o->addr + 16 * (uint64_t)k + 16 <= 4096; k++) {
			const struct gseg *s = &g->segs[o->hole_iov + k];
			struct iovec v = { m->arena + s->base, s->len };
			memcpy(m->hole + o->addr + 16 * k, &v, sizeof(v));
		}
		cmp = o->addr < 4096 ? (unsigned)o->addr : 4096;
	}
	for (unsigned i = 0; i < g->nsegs; i++) {
		const struct gseg *s = &g->segs[i];
		m->iov[i].iov_base = s->kind == A_ARENA ? m->arena + s->base :
				     s->kind == A_HOLE ? m->hole + s->base : (void *)(uintptr_t)s->base;
		m->iov[i].iov_len = s->len;
	}
	return cmp;
}

static inline void dg_describe(const struct gop *o, char *buf, size_t n)
{
	snprintf(buf, n, "ud %llu op %u flags 0x%x fd %u addr%s 0x%llx len %u off 0x%llx rw_flags 0x%x "
		 "buf_index %u ioprio 0x%x chain %d (%s)",
		 (unsigned long long)o->ud, o->opcode, o->flags, o->fdk,
		 o->addrk == A_ARENA ? "(arena)" : o->addrk == A_IOV ? "(iov#)" :
		 o->addrk == A_HOLE ? "(hole)" : "",
		 (unsigned long long)o->addr, o->len, (unsigned long long)o->off, o->rw_flags,
		 o->buf_index, o->ioprio, o->chain, o->what ? o->what : "");
}

#endif
