/* SPDX-License-Identifier: MIT */
/*
 * abi/bounce.c's page pool on a ring of the software controller: one-page
 * requests get the page freed last (the stack), runs and single pages
 * never overlap (a run may take pages the stack still lists), a full pool
 * is -EAGAIN until a page comes back, and a random mix of sizes (fixed
 * seed) against a model of which pages are held.
 */
#include "tests/unit/test_uring_util.h"

#include "abi/ring.h"

#define PAGES 8u

static struct tu_env env;

static void pool_open(struct ur_ring *r, uint32_t pages)
{
	memset(r, 0, sizeof(*r));
	r->ctrlr = env.c;
	assert_int_equal(ur_pool_init(r, pages), 0);
}

/* Page index of a pool allocation. */
static uint32_t page_of(const struct ur_ring *r, const struct ur_req *q)
{
	assert_false(q->rflags & UR_F_OWN_DMA);
	size_t off = (size_t)((uint8_t *)q->dma - r->pool);
	assert_int_equal(off % UR_PAGE, 0);
	assert_int_equal(q->dma_iova, r->pool_iova + off);
	return (uint32_t)(off / UR_PAGE);
}

static void test_single_page_reuse(void **state)
{
	(void)state;
	struct ur_ring r;
	pool_open(&r, PAGES);
	struct ur_req a = { 0 }, b = { 0 }, c = { 0 };
	assert_int_equal(ur_pool_get(&r, &a, UR_PAGE), 0);
	assert_int_equal(ur_pool_get(&r, &b, 512), 0);
	uint32_t pa = page_of(&r, &a);
	assert_int_not_equal(pa, page_of(&r, &b));
	ur_pool_put(&r, &a);
	assert_null(a.dma);
	/* the page freed last comes back first, not the next one in the pool */
	assert_int_equal(ur_pool_get(&r, &c, UR_PAGE), 0);
	assert_int_equal(page_of(&r, &c), pa);
	ur_pool_put(&r, &b);
	ur_pool_put(&r, &c);
	ur_pool_fini(&r);
}

static void test_exhaustion(void **state)
{
	(void)state;
	struct ur_ring r;
	pool_open(&r, PAGES);
	struct ur_req q[PAGES + 1];
	memset(q, 0, sizeof(q));
	bool seen[PAGES] = { false };
	for (unsigned i = 0; i < PAGES; i++) {
		assert_int_equal(ur_pool_get(&r, &q[i], UR_PAGE), 0);
		uint32_t p = page_of(&r, &q[i]);
		assert_false(seen[p]);
		seen[p] = true;
	}
	assert_int_equal(ur_pool_get(&r, &q[PAGES], UR_PAGE), -EAGAIN);
	assert_int_equal(ur_pool_get(&r, &q[PAGES], 2 * UR_PAGE), -EAGAIN);
	uint32_t p3 = page_of(&r, &q[3]);
	ur_pool_put(&r, &q[3]);
	assert_int_equal(ur_pool_get(&r, &q[PAGES], UR_PAGE), 0);
	assert_int_equal(page_of(&r, &q[PAGES]), p3);
	ur_pool_put(&r, &q[PAGES]);
	for (unsigned i = 0; i < PAGES; i++)
		if (i != 3)
			ur_pool_put(&r, &q[i]);
	/* all back: the whole pool is one run again */
	assert_int_equal(ur_pool_get(&r, &q[0], PAGES * UR_PAGE), 0);
	ur_pool_put(&r, &q[0]);
	ur_pool_fini(&r);
}

static void test_run_takes_stacked_pages(void **state)
{
	(void)state;
	struct ur_ring r;
	pool_open(&r, PAGES);
	struct ur_req run = { 0 }, s[PAGES];
	memset(s, 0, sizeof(s));
	/* every page is on the stack; the run takes three of them */
	assert_int_equal(ur_pool_get(&r, &run, 3 * UR_PAGE), 0);
	uint32_t first = page_of(&r, &run);
	unsigned got = 0;
	while (ur_pool_get(&r, &s[got], UR_PAGE) == 0) {
		uint32_t p = page_of(&r, &s[got]);
		assert_true(p < first || p >= first + 3);
		for (unsigned j = 0; j < got; j++)
			assert_int_not_equal(p, page_of(&r, &s[j]));
		got++;
	}
	assert_int_equal(got, PAGES - 3);
	ur_pool_put(&r, &run);
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(ur_pool_get(&r, &s[got + i], UR_PAGE), 0);
		uint32_t p = page_of(&r, &s[got + i]);
		assert_true(p >= first && p < first + 3);
	}
	assert_int_equal(ur_pool_get(&r, &run, UR_PAGE), -EAGAIN);
	for (unsigned i = 0; i < PAGES; i++)
		ur_pool_put(&r, &s[i]);
	ur_pool_fini(&r);
}

/* Whether @n pages in a row are free in @held. */
static bool model_has_run(const bool *held, uint32_t pages, uint32_t n)
{
	for (uint32_t at = 0, run = 0; at < pages; at++) {
		run = held[at] ? 0 : run + 1;
		if (run == n)
			return true;
	}
	return false;
}

static void test_random_mix(void **state)
{
	(void)state;
	enum { NP = 64, NR = 24, STEPS = 20000 };
	struct ur_ring r;
	pool_open(&r, NP);
	struct ur_req q[NR];
	memset(q, 0, sizeof(q));
	bool held[NP] = { false };
	uint64_t x = 0x243f6a8885a308d3ull;
	for (unsigned step = 0; step < STEPS; step++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		unsigned i = (unsigned)(x % NR);
		if (q[i].dma) {
			for (uint32_t p = q[i].dma_first; p < q[i].dma_first + q[i].dma_pages; p++)
				held[p] = false;
			ur_pool_put(&r, &q[i]);
			continue;
		}
		/* mostly single pages, as 4 KiB I/O is */
		uint32_t n = (x >> 32) % 4 ? 1 : 1 + (uint32_t)((x >> 40) % 5);
		int ret = ur_pool_get(&r, &q[i], n * UR_PAGE - (uint32_t)((x >> 48) % 512));
		if (!model_has_run(held, NP, n)) {
			assert_int_equal(ret, -EAGAIN);
			continue;
		}
		assert_int_equal(ret, 0);
		uint32_t p0 = page_of(&r, &q[i]);
		assert_int_equal(q[i].dma_pages, n);
		assert_true(p0 + n <= NP);
		for (uint32_t p = p0; p < p0 + n; p++) {
			assert_false(held[p]);
			held[p] = true;
		}
	}
	for (unsigned i = 0; i < NR; i++)
		if (q[i].dma)
			ur_pool_put(&r, &q[i]);
	assert_int_equal(ur_pool_get(&r, &q[0], NP * UR_PAGE), 0);
	ur_pool_put(&r, &q[0]);
	ur_pool_fini(&r);
}

static int setup(void **state)
{
	(void)state;
	tu_attach(&env, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tu_detach(&env);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single_page_reuse),
		cmocka_unit_test(test_exhaustion),
		cmocka_unit_test(test_run_takes_stacked_pages),
		cmocka_unit_test(test_random_mix),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
