/* SPDX-License-Identifier: MIT */
/* PRP construction (driver/prp.c) against NVMe 2.0 §4.1.1, by hand-worked
 * cases: every expected address below is computed from the inputs here,
 * not by the code under test. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "driver/prp.h"

#define PG 4096ull
#define LIST_IOVA 0xfee000ull     /* where the list page "lives" for the device */

static uint64_t list[512];

static void reset_list(void)
{
	memset(list, 0xa5, sizeof(list));   /* poison: unwritten entries show */
}

static int build(const struct nvr_seg *s, unsigned n, uint64_t off, uint32_t len,
		 uint64_t *p1, uint64_t *p2)
{
	reset_list();
	*p1 = *p2 = 0xdeadull;
	return nvr_prp_build(s, n, off, len, list, LIST_IOVA, p1, p2);
}

static void test_aligned_one_page(void **state)
{
	struct nvr_seg s = { 0x100000, 64 * 1024 };
	uint64_t p1, p2;

	assert_int_equal(build(&s, 1, 0, 4096, &p1, &p2), 0);
	assert_int_equal(p1, 0x100000);
	assert_int_equal(p2, 0);
	/* a sub-page transfer too */
	assert_int_equal(build(&s, 1, 0, 512, &p1, &p2), 0);
	assert_int_equal(p1, 0x100000);
	assert_int_equal(p2, 0);
}

static void test_unaligned_start_within_page(void **state)
{
	struct nvr_seg s = { 0x200000, 3 * PG };
	uint64_t p1, p2;

	/* 0x200200 + 3584 ends exactly at the page end: one page */
	assert_int_equal(build(&s, 1, 0x200, 4096 - 0x200, &p1, &p2), 0);
	assert_int_equal(p1, 0x200200);
	assert_int_equal(p2, 0);
}

static void test_crossing_into_second_page(void **state)
{
	struct nvr_seg s = { 0x200000, 3 * PG };
	uint64_t p1, p2;

	/* unaligned start, 4 KiB long: touches two pages → PRP2 direct */
	assert_int_equal(build(&s, 1, 0x200, 4096, &p1, &p2), 0);
	assert_int_equal(p1, 0x200200);
	assert_int_equal(p2, 0x201000);
	assert_int_equal(list[0], 0xa5a5a5a5a5a5a5a5ull);   /* no list used */
	/* aligned, exactly two pages */
	assert_int_equal(build(&s, 1, 0, 2 * PG, &p1, &p2), 0);
	assert_int_equal(p1, 0x200000);
	assert_int_equal(p2, 0x201000);
}

static void test_three_pages_list(void **state)
{
	struct nvr_seg s = { 0x300000, 8 * PG };
	uint64_t p1, p2;

	assert_int_equal(build(&s, 1, 0, 3 * PG, &p1, &p2), 0);
	assert_int_equal(p1, 0x300000);
	assert_int_equal(p2, LIST_IOVA);
	assert_int_equal(list[0], 0x301000);
	assert_int_equal(list[1], 0x302000);
	assert_int_equal(list[2], 0xa5a5a5a5a5a5a5a5ull);
	/* unaligned start, 2 pages + a bit → three entries */
	assert_int_equal(build(&s, 1, 0x800, 2 * PG, &p1, &p2), 0);
	assert_int_equal(p1, 0x300800);
	assert_int_equal(p2, LIST_IOVA);
	assert_int_equal(list[0], 0x301000);
	assert_int_equal(list[1], 0x302000);
	assert_int_equal(list[2], 0xa5a5a5a5a5a5a5a5ull);
}

static void test_long_list_to_max(void **state)
{
	/* 2 MiB + 1 page of room; the segment is page aligned */
	struct nvr_seg s = { 0x40000000, 514 * PG };
	uint64_t p1, p2;

	/* aligned 2 MiB = 512 pages: PRP1 + 511 list entries */
	assert_int_equal(build(&s, 1, 0, NVR_PRP_MAX_XFER, &p1, &p2), 0);
	assert_int_equal(p1, 0x40000000);
	assert_int_equal(p2, LIST_IOVA);
	for (unsigned i = 0; i < 511; i++)
		assert_int_equal(list[i], 0x40000000 + (i + 1) * PG);
	assert_int_equal(list[511], 0xa5a5a5a5a5a5a5a5ull);

	/* unaligned 2 MiB = 513 pages: PRP1 + all 512 list entries */
	assert_int_equal(build(&s, 1, 0x10, NVR_PRP_MAX_XFER, &p1, &p2), 0);
	assert_int_equal(p1, 0x40000010);
	for (unsigned i = 0; i < 512; i++)
		assert_int_equal(list[i], 0x40000000 + (i + 1) * PG);

	/* aligned 2 MiB + 1 page = 513 pages: still fits (512 entries) */
	assert_int_equal(build(&s, 1, 0, NVR_PRP_MAX_XFER + 4096, &p1, &p2), 0);
	assert_int_equal(list[511], 0x40000000 + 512 * PG);

	/* 514 pages would need a second list page: refused, not chained */
	assert_int_equal(build(&s, 1, 0, NVR_PRP_MAX_XFER + 8192, &p1, &p2), -EINVAL);
}

static void test_multi_segment(void **state)
{
	/* first segment ends on a page boundary, the others are whole pages */
	struct nvr_seg s[3] = {
		{ 0x500800, 0x800 },      /* half a page, ends at 0x501000 */
		{ 0x900000, 2 * PG },
		{ 0x700000, 4 * PG },
	};
	uint64_t p1, p2;

	assert_int_equal(build(s, 3, 0, 0x800 + 2 * PG + 0x400, &p1, &p2), 0);
	assert_int_equal(p1, 0x500800);
	assert_int_equal(p2, LIST_IOVA);
	assert_int_equal(list[0], 0x900000);
	assert_int_equal(list[1], 0x901000);
	assert_int_equal(list[2], 0x700000);
	assert_int_equal(list[3], 0xa5a5a5a5a5a5a5a5ull);

	/* offset into the middle: starts in segment 1's second page */
	assert_int_equal(build(s, 3, 0x800 + PG + 0x100, PG, &p1, &p2), 0);
	assert_int_equal(p1, 0x901100);
	assert_int_equal(p2, 0x700000);

	/* offset exactly at a segment boundary */
	assert_int_equal(build(s, 3, 0x800, PG, &p1, &p2), 0);
	assert_int_equal(p1, 0x900000);
	assert_int_equal(p2, 0);

	/* two one-page segments: PRP2 direct to the second segment */
	struct nvr_seg two[2] = { { 0xa000, PG }, { 0x3000, PG } };
	assert_int_equal(build(two, 2, 0, 2 * PG, &p1, &p2), 0);
	assert_int_equal(p1, 0xa000);
	assert_int_equal(p2, 0x3000);
}

static void test_misaligned_interior_boundary(void **state)
{
	uint64_t p1, p2;
	/* first segment ends mid-page */
	struct nvr_seg a[2] = { { 0x100000, 0x600 }, { 0x200000, PG } };
	assert_int_equal(build(a, 2, 0, 0x600 + 0x200, &p1, &p2), -EINVAL);
	/* second segment starts mid-page */
	struct nvr_seg b[2] = { { 0x100000, PG }, { 0x200200, PG } };
	assert_int_equal(build(b, 2, 0, PG + 0x200, &p1, &p2), -EINVAL);
	/* but a transfer that ends before the bad boundary is fine */
	assert_int_equal(build(b, 2, 0, PG, &p1, &p2), 0);
	assert_int_equal(p1, 0x100000);
	/* PRP1 must be dword aligned */
	struct nvr_seg c = { 0x100002, PG };
	assert_int_equal(build(&c, 1, 0, 512, &p1, &p2), -EINVAL);
}

static void test_zero_and_out_of_range(void **state)
{
	struct nvr_seg s = { 0x100000, 2 * PG };
	uint64_t p1, p2;

	assert_int_equal(build(&s, 1, 0, 0, &p1, &p2), -EINVAL);
	assert_int_equal(build(&s, 1, 2 * PG, 512, &p1, &p2), -EINVAL);   /* offset past end */
	assert_int_equal(build(&s, 1, PG, PG + 512, &p1, &p2), -EINVAL);  /* runs past end */
	assert_int_equal(build(&s, 0, 0, 512, &p1, &p2), -EINVAL);        /* no segments */
}

static void test_segs_check(void **state)
{
	struct nvr_seg ok[3] = { { 0x1200, 0xe00 }, { 0x5000, PG }, { 0x9000, 0x100 } };
	struct nvr_seg bad[2] = { { 0x1000, 0x800 }, { 0x5000, PG } };

	assert_int_equal(nvr_segs_check(ok, 3, 0xe00 + PG + 0x100), 3);
	assert_int_equal(nvr_segs_check(ok, 3, 0xe00 + 10), 2);   /* uses two */
	assert_int_equal(nvr_segs_check(ok, 3, 0x100), 1);
	assert_int_equal(nvr_segs_check(ok, 3, 0xe00 + PG + 0x101), -EINVAL);  /* too short */
	assert_int_equal(nvr_segs_check(bad, 2, 0x900), -EINVAL);
	assert_int_equal(nvr_segs_check(bad, 2, 0x800), 1);
	assert_int_equal(nvr_segs_check(ok, 3, 0), -EINVAL);
}

/* nvr_prp_contig() (the one-segment fast path) gives what nvr_prp_build()
 * gives for the same single segment: every dword offset class across a
 * page, lengths from one dword to 2 MiB, list entries included. */
static void test_contig_matches_build(void **state)
{
	(void)state;
	static uint64_t list2[512];
	static const uint32_t offs[] = { 0, 4, 512, 2048, 4092 };
	static const uint32_t lens[] = { 4, 512, 4096 - 4, 4096, 4096 + 4, 8192 - 512, 8192,
					 8192 + 4, 12288, 65536, 1u << 20, (1u << 21) - 4096,
					 1u << 21 };
	for (unsigned i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		for (unsigned j = 0; j < sizeof(lens) / sizeof(lens[0]); j++) {
			uint64_t iova = 0x40000000ull + offs[i];
			uint32_t len = lens[j];
			if (offs[i] && len == 1u << 21)
				len -= 4096;   /* 2 MiB from a page offset needs 514 pages */
			struct nvr_seg seg = { .iova = iova, .len = len };
			uint64_t p1 = 1, p2 = 1, q1 = 2, q2 = 2;
			memset(list, 0xaa, sizeof(list));
			memset(list2, 0xaa, sizeof(list2));
			assert_int_equal(nvr_prp_build(&seg, 1, 0, len, list, LIST_IOVA, &p1, &p2), 0);
			nvr_prp_contig(iova, len, list2, LIST_IOVA, &q1, &q2);
			assert_true(p1 == q1);
			assert_true(p2 == q2);
			assert_memory_equal(list, list2, sizeof(list));
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_aligned_one_page),
		cmocka_unit_test(test_unaligned_start_within_page),
		cmocka_unit_test(test_crossing_into_second_page),
		cmocka_unit_test(test_three_pages_list),
		cmocka_unit_test(test_long_list_to_max),
		cmocka_unit_test(test_multi_segment),
		cmocka_unit_test(test_misaligned_interior_boundary),
		cmocka_unit_test(test_zero_and_out_of_range),
		cmocka_unit_test(test_segs_check),
		cmocka_unit_test(test_contig_matches_build),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
