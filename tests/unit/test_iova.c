/* SPDX-License-Identifier: MIT */
/* pci/iova.c: the IOVA allocator, through pci/iova.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pci/iova.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)

static void init_one(struct nvr_iova *a, uint64_t start, uint64_t end, uint64_t page)
{
	struct nvr_iova_range r = { start, end };

	assert_int_equal(nvr_iova_init(a, &r, 1, page), 0);
}

static void test_first_page_never_used(void **state)
{
	struct nvr_iova a;
	uint64_t iova;

	init_one(&a, 0, 1 * MiB - 1, 0);
	assert_int_equal(a.page, 4 * KiB);
	assert_int_equal(nvr_iova_free_bytes(&a), 1 * MiB - 4 * KiB);
	assert_int_equal(nvr_iova_alloc(&a, 1, 0, &iova), 0);
	assert_int_equal(iova, 4 * KiB);
	nvr_iova_fini(&a);
}

static void test_alloc_free_reuse(void **state)
{
	struct nvr_iova a;
	uint64_t x, y, z, w;

	init_one(&a, 0x10000, 0x10000 + 1 * MiB - 1, 4 * KiB);
	assert_int_equal(nvr_iova_alloc(&a, 8 * KiB, 0, &x), 0);
	assert_int_equal(nvr_iova_alloc(&a, 5000, 0, &y), 0);  /* rounds to 8 KiB */
	assert_int_equal(nvr_iova_alloc(&a, 4 * KiB, 0, &z), 0);
	assert_int_equal(x, 0x10000);
	assert_int_equal(y, 0x12000);
	assert_int_equal(z, 0x14000);
	assert_int_equal(nvr_iova_free_bytes(&a), 1 * MiB - 20 * KiB);

	/* First fit: the hole left by y is reused before the tail. */
	assert_int_equal(nvr_iova_free(&a, y, 5000), 0);
	assert_int_equal(nvr_iova_alloc(&a, 4 * KiB, 0, &w), 0);
	assert_int_equal(w, y);
	/* The remaining 4 KiB of the hole is still there. */
	assert_int_equal(nvr_iova_alloc(&a, 4 * KiB, 0, &w), 0);
	assert_int_equal(w, y + 4 * KiB);
	/* A request that does not fit any hole goes past z. */
	assert_int_equal(nvr_iova_free(&a, y, 4 * KiB), 0);
	assert_int_equal(nvr_iova_alloc(&a, 8 * KiB, 0, &w), 0);
	assert_int_equal(w, z + 4 * KiB);
	nvr_iova_fini(&a);
}

static void test_free_merges_neighbours(void **state)
{
	struct nvr_iova a;
	uint64_t x, y, z, big;

	init_one(&a, 4 * KiB, 64 * KiB - 1, 4 * KiB);           /* 15 pages */
	assert_int_equal(nvr_iova_alloc(&a, 4 * KiB, 0, &x), 0);
	assert_int_equal(nvr_iova_alloc(&a, 4 * KiB, 0, &y), 0);
	assert_int_equal(nvr_iova_alloc(&a, 4 * KiB, 0, &z), 0);
	assert_int_equal(a.nfree, 1);

	assert_int_equal(nvr_iova_free(&a, x, 4 * KiB), 0);      /* hole before y */
	assert_int_equal(a.nfree, 2);
	assert_int_equal(nvr_iova_free(&a, z, 4 * KiB), 0);      /* merges with the tail */
	assert_int_equal(a.nfree, 2);
	assert_int_equal(nvr_iova_free(&a, y, 4 * KiB), 0);      /* bridges both */
	assert_int_equal(a.nfree, 1);
	assert_int_equal(a.free[0].start, 4 * KiB);
	assert_int_equal(a.free[0].end, 64 * KiB - 1);

	/* Everything is one piece again: the whole space is allocatable. */
	assert_int_equal(nvr_iova_alloc(&a, 60 * KiB, 0, &big), 0);
	assert_int_equal(big, 4 * KiB);
	assert_int_equal(nvr_iova_free_bytes(&a), 0);
	nvr_iova_fini(&a);
}

static void test_alignment(void **state)
{
	struct nvr_iova a;
	uint64_t x, y, small;

	init_one(&a, 0, 16 * MiB - 1, 4 * KiB);
	assert_int_equal(nvr_iova_alloc(&a, 4 * KiB, 0, &x), 0);
	assert_int_equal(nvr_iova_alloc(&a, 2 * MiB, 2 * MiB, &y), 0);
	assert_int_equal(y % (2 * MiB), 0);
	assert_int_equal(y, 2 * MiB);
	/* The gap skipped for alignment stays available. */
	assert_int_equal(nvr_iova_alloc(&a, 4 * KiB, 0, &small), 0);
	assert_int_equal(small, x + 4 * KiB);
	assert_int_equal(nvr_iova_free_bytes(&a), 16 * MiB - 4 * KiB - 2 * 4 * KiB - 2 * MiB);

	assert_int_equal(nvr_iova_alloc(&a, 4 * KiB, 3 * 4 * KiB, &x), -EINVAL);
	assert_int_equal(nvr_iova_alloc(&a, 0, 0, &x), -EINVAL);
	/* No 8 MiB-aligned 12 MiB block fits below 16 MiB. */
	assert_int_equal(nvr_iova_alloc(&a, 12 * MiB, 8 * MiB, &x), -ENOMEM);
	nvr_iova_fini(&a);
}

static void test_msi_window_hole(void **state)
{
	/* What VFIO reports on x86: everything but the MSI window. */
	const struct nvr_iova_range r[] = {
		{ 0xfef00000, 0xff0fffff },  /* given out of order on purpose */
		{ 0xfe000000, 0xfedfffff },
	};
	struct nvr_iova a;
	uint64_t iova, got[32];
	int n = 0;

	assert_int_equal(nvr_iova_init(&a, r, 2, 4 * KiB), 0);
	assert_int_equal(a.nusable, 2);
	assert_int_equal(nvr_iova_free_bytes(&a), 14 * MiB + 2 * MiB);

	/* Larger than either piece but not than both: the hole is not bridged. */
	assert_int_equal(nvr_iova_alloc(&a, 15 * MiB, 0, &iova), -ENOMEM);

	while (n < 32 && nvr_iova_alloc(&a, 1 * MiB, 0, &iova) == 0) {
		assert_true(iova + 1 * MiB - 1 < 0xfee00000 || iova > 0xfeefffff);
		got[n++] = iova;
	}
	assert_int_equal(n, 16);
	assert_int_equal(got[0], 0xfe000000);
	assert_int_equal(got[14], 0xfef00000);

	/* Freeing into the hole or beyond the ranges is refused. */
	assert_int_equal(nvr_iova_free(&a, 0xfee00000, 4 * KiB), -EINVAL);
	assert_int_equal(nvr_iova_free(&a, 0xfed00000, 2 * MiB), -EINVAL);
	assert_int_equal(nvr_iova_free(&a, 0xff100000, 4 * KiB), -EINVAL);

	for (int i = 0; i < n; i++)
		assert_int_equal(nvr_iova_free(&a, got[i], 1 * MiB), 0);
	assert_int_equal(a.nfree, 2);    /* merged back, but never across the hole */
	nvr_iova_fini(&a);
}

static void test_exhaustion_and_reuse(void **state)
{
	struct nvr_iova a;
	uint64_t p[4], x;

	init_one(&a, 0, 5 * 4 * KiB - 1, 4 * KiB);      /* page 0 + 4 usable pages */
	for (int i = 0; i < 4; i++)
		assert_int_equal(nvr_iova_alloc(&a, 4 * KiB, 0, &p[i]), 0);
	assert_int_equal(nvr_iova_alloc(&a, 4 * KiB, 0, &x), -ENOMEM);
	assert_int_equal(a.nfree, 0);

	assert_int_equal(nvr_iova_free(&a, p[2], 4 * KiB), 0);
	assert_int_equal(nvr_iova_alloc(&a, 8 * KiB, 0, &x), -ENOMEM);
	assert_int_equal(nvr_iova_alloc(&a, 4 * KiB, 0, &x), 0);
	assert_int_equal(x, p[2]);
	nvr_iova_fini(&a);
}

static void test_bad_frees(void **state)
{
	struct nvr_iova a;
	uint64_t x, y;

	init_one(&a, 0, 1 * MiB - 1, 4 * KiB);
	assert_int_equal(nvr_iova_alloc(&a, 8 * KiB, 0, &x), 0);
	assert_int_equal(nvr_iova_alloc(&a, 8 * KiB, 0, &y), 0);

	assert_int_equal(nvr_iova_free(&a, x + 1, 4 * KiB), -EINVAL);    /* misaligned */
	assert_int_equal(nvr_iova_free(&a, x, 0), -EINVAL);
	assert_int_equal(nvr_iova_free(&a, 0, 4 * KiB), -EINVAL);        /* page 0 */
	assert_int_equal(nvr_iova_free(&a, x, 8 * KiB), 0);
	assert_int_equal(nvr_iova_free(&a, x, 8 * KiB), -EINVAL);        /* double */
	assert_int_equal(nvr_iova_free(&a, x + 4 * KiB, 8 * KiB), -EINVAL); /* half free */
	assert_int_equal(nvr_iova_free(&a, y + 4 * KiB, 8 * KiB), -EINVAL); /* into tail */
	assert_int_equal(nvr_iova_free(&a, UINT64_MAX & ~0xfffull, 8 * KiB), -EINVAL);
	assert_int_equal(nvr_iova_free_bytes(&a), 1 * MiB - 4 * KiB - 8 * KiB);
	nvr_iova_fini(&a);
}

static void test_init_trims_and_merges(void **state)
{
	struct nvr_iova a;
	const struct nvr_iova_range overlapping[] = {
		{ 0x200000, 0x2fffff },
		{ 0x100123, 0x200fff },     /* unaligned start, overlaps the first */
		{ 0x300000, 0x3fffff },     /* touches it */
	};
	const struct nvr_iova_range tiny[] = { { 0, 0xfff }, { 0x5001, 0x5fff } };
	const struct nvr_iova_range top = { 1ull << 63, UINT64_MAX };
	uint64_t x;

	assert_int_equal(nvr_iova_init(&a, overlapping, 3, 4 * KiB), 0);
	assert_int_equal(a.nusable, 1);
	assert_int_equal(a.usable[0].start, 0x101000);
	assert_int_equal(a.usable[0].end, 0x3fffff);
	nvr_iova_fini(&a);

	/* Nothing left once page 0 and partial pages are removed. */
	assert_int_equal(nvr_iova_init(&a, tiny, 2, 4 * KiB), -EINVAL);
	assert_int_equal(nvr_iova_init(&a, overlapping, 3, 3 * 4 * KiB), -EINVAL);
	assert_int_equal(nvr_iova_init(&a, overlapping, 0, 4 * KiB), -EINVAL);

	/* A range that ends at the very top of the address space. */
	assert_int_equal(nvr_iova_init(&a, &top, 1, 4 * KiB), 0);
	assert_int_equal(nvr_iova_alloc(&a, 1ull << 62, 1ull << 62, &x), 0);
	assert_int_equal(x, 1ull << 63);
	assert_int_equal(nvr_iova_alloc(&a, 1ull << 62, 0, &x), 0);
	assert_int_equal(x, (1ull << 63) + (1ull << 62));
	assert_int_equal(nvr_iova_free_bytes(&a), 0);
	assert_int_equal(nvr_iova_free(&a, x, 1ull << 62), 0);
	assert_int_equal(a.free[0].end, UINT64_MAX);
	nvr_iova_fini(&a);
}

static void test_large_page_granularity(void **state)
{
	struct nvr_iova a;
	uint64_t x, y;

	/* The IOMMU's smallest page is 64 KiB: everything rounds to it. */
	init_one(&a, 0, 1 * MiB - 1, 64 * KiB);
	assert_int_equal(nvr_iova_alloc(&a, 4 * KiB, 0, &x), 0);
	assert_int_equal(x, 64 * KiB);
	assert_int_equal(nvr_iova_alloc(&a, 4 * KiB, 0, &y), 0);
	assert_int_equal(y, 128 * KiB);
	assert_int_equal(nvr_iova_free(&a, x + 4 * KiB, 4 * KiB), -EINVAL);
	assert_int_equal(nvr_iova_free(&a, x, 1), 0);
	nvr_iova_fini(&a);
}

/* Random alloc/free against a page bitmap: no overlap, nothing lost. */
static void test_random_against_bitmap(void **state)
{
	enum { PAGES = 512, SLOTS = 64 };
	static unsigned char used[PAGES];
	struct { uint64_t iova, len; } live[SLOTS];
	const struct nvr_iova_range r[] = { { 0, 200 * 4096 - 1 }, { 300 * 4096, PAGES * 4096 - 1 } };
	uint64_t free_pages = 199 + (PAGES - 300);
	struct nvr_iova a;

	memset(used, 0, sizeof(used));
	memset(live, 0, sizeof(live));
	srand(12345);
	assert_int_equal(nvr_iova_init(&a, r, 2, 4096), 0);
	for (int step = 0; step < 20000; step++) {
		int s = rand() % SLOTS;

		if (live[s].len) {
			assert_int_equal(nvr_iova_free(&a, live[s].iova, live[s].len), 0);
			for (uint64_t p = live[s].iova / 4096; p < (live[s].iova + live[s].len) / 4096; p++)
				used[p] = 0;
			free_pages += live[s].len / 4096;
			live[s].len = 0;
		} else {
			uint64_t len = (uint64_t)(1 + rand() % 16) * 4096, iova;
			uint64_t align = 4096ull << (rand() % 4);
			int err = nvr_iova_alloc(&a, len, align, &iova);

			if (err) {
				assert_int_equal(err, -ENOMEM);
				continue;
			}
			assert_int_equal(iova % align, 0);
			assert_true(iova >= 4096 && iova + len <= PAGES * 4096);
			for (uint64_t p = iova / 4096; p < (iova + len) / 4096; p++) {
				assert_false(used[p]);
				assert_true(p < 200 || p >= 300);
				used[p] = 1;
			}
			free_pages -= len / 4096;
			live[s].iova = iova;
			live[s].len = len;
		}
		assert_int_equal(nvr_iova_free_bytes(&a), free_pages * 4096);
	}
	for (int s = 0; s < SLOTS; s++)
		if (live[s].len)
			assert_int_equal(nvr_iova_free(&a, live[s].iova, live[s].len), 0);
	assert_int_equal(a.nfree, 2);
	assert_int_equal(nvr_iova_free_bytes(&a), (199 + PAGES - 300) * 4096ull);
	nvr_iova_fini(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_page_never_used),
		cmocka_unit_test(test_alloc_free_reuse),
		cmocka_unit_test(test_free_merges_neighbours),
		cmocka_unit_test(test_alignment),
		cmocka_unit_test(test_msi_window_hole),
		cmocka_unit_test(test_exhaustion_and_reuse),
		cmocka_unit_test(test_bad_frees),
		cmocka_unit_test(test_init_trims_and_merges),
		cmocka_unit_test(test_large_page_granularity),
		cmocka_unit_test(test_random_against_bitmap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
