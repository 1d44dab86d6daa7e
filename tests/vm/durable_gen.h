/* SPDX-License-Identifier: MIT */
/*
 * The write stream of the durability tests (tests/vm/fault_durability.c),
 * shared by the guest that writes it and the host that checks the image.
 *
 * Generation g (1, 2, 3, ...) is the g-th write submitted. Where it goes
 * depends on the seed and g alone (dur_write_of()), so the host can replay
 * which writes covered each block without being told. Every logical block
 * a write puts down is self-describing: a header (magic, seed, LBA,
 * generation) and a body derived from those, so a block read back names
 * the write it came from, or is zero (never written, or the write lost),
 * or is garbage (torn or misdirected: always a failure).
 *
 * Blocks, not writes, are the unit of the check: NVMe makes only single
 * blocks atomic (AWUPF 0 means one block), so a write cut short by the
 * kill may leave some of its blocks new and some old; each block on its
 * own must hold what it held, or newer.
 */
#ifndef NVRING_TESTS_VM_DURABLE_GEN_H
#define NVRING_TESTS_VM_DURABLE_GEN_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define DUR_MAGIC      0x315255444e52564eull   /* "NVRNDUR1" in memory (little endian) */
#define DUR_REGION     8192u   /* blocks written: the first 4 MiB at 512 B */
#define DUR_MAX_NLB    16u     /* blocks per write, 1..16 */
#define DUR_HDR        32u     /* magic, seed, lba, gen */

static inline uint64_t dur_mix(uint64_t x)
{
	/* splitmix64's finaliser: every input bit reaches every output bit */
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

struct dur_write {
	uint64_t lba;
	uint32_t nlb;
};

/* Where generation @gen of stream @seed writes, inside [0, @region). */
static inline struct dur_write dur_write_of(uint64_t seed, uint64_t gen, uint64_t region)
{
	uint64_t h = dur_mix(seed ^ dur_mix(gen));
	struct dur_write w;

	w.nlb = 1 + (uint32_t)(h % DUR_MAX_NLB);
	w.lba = (h >> 8) % (region - w.nlb + 1);
	return w;
}

/* The content of block @lba as written by generation @gen. */
static inline void dur_fill_block(void *blk, uint32_t lba_size, uint64_t seed, uint64_t lba,
				  uint64_t gen)
{
	uint64_t hdr[4] = { DUR_MAGIC, seed, lba, gen };
	uint64_t s = dur_mix(seed ^ dur_mix(lba ^ dur_mix(gen))) | 1;
	uint8_t *p = blk;

	memcpy(p, hdr, DUR_HDR);
	for (uint32_t i = DUR_HDR; i < lba_size; i += 8) {
		s ^= s >> 12;
		s ^= s << 25;
		s ^= s >> 27;
		uint64_t v = s * 0x2545f4914f6cdd1dull;
		memcpy(p + i, &v, lba_size - i < 8 ? lba_size - i : 8);
	}
}

/*
 * What block @lba holds: the generation that wrote it (> 0), 0 if it is
 * all zeroes, -1 if it is neither (torn, foreign, misdirected). @scratch
 * is @lba_size bytes.
 */
static inline int64_t dur_decode_block(const void *blk, void *scratch, uint32_t lba_size,
				       uint64_t seed, uint64_t lba)
{
	const uint8_t *p = blk;
	uint64_t hdr[4];
	bool zero = true;

	for (uint32_t i = 0; i < lba_size && zero; i++)
		zero = p[i] == 0;
	if (zero)
		return 0;
	memcpy(hdr, p, DUR_HDR);
	if (hdr[0] != DUR_MAGIC || hdr[1] != seed || hdr[2] != lba || hdr[3] == 0 ||
	    hdr[3] > INT64_MAX)
		return -1;
	dur_fill_block(scratch, lba_size, seed, lba, hdr[3]);
	return memcmp(scratch, blk, lba_size) ? -1 : (int64_t)hdr[3];
}

/* Whether generation @gen of @seed covers @lba. */
static inline bool dur_covers(uint64_t seed, uint64_t gen, uint64_t region, uint64_t lba)
{
	struct dur_write w = dur_write_of(seed, gen, region);

	return lba >= w.lba && lba < w.lba + w.nlb;
}

#endif
