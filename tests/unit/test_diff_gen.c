/* SPDX-License-Identifier: MIT */
/*
 * tests/vm/diff_gen.h on the host: difftest's SQE streams are a function of
 * the seed alone. The same seed generates the same streams (SQE count and
 * digest) twice, whatever the run-time choices drawn in between; different
 * seeds and different streams of one seed generate different streams.
 * Geometry: the VM's twin namespaces (64 MiB of 512 B blocks), so the
 * digests printed here are the ones difftest prints in the guest.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "tests/vm/diff_gen.h"

#define DEV_BYTES (64ull << 20)
#define LBS       512u

static struct dgen G;
static uint8_t *arena;

struct sum { unsigned long sqes, batches; uint64_t digest; };

/* Stream @idx of @seed as difftest generates it; @run_draws: how many
 * run-time draws (dg_run_rng()) to take after each batch, from @jitter
 * (0: none), standing in for enters whose number depends on results. */
static struct sum gen_stream(uint64_t seed, unsigned idx, uint64_t *jitter)
{
	dg_stream_init(&G, seed, idx, DEV_BYTES, LBS, arena);
	unsigned pieces[3], np;
	while (dg_stream_next(&G, pieces, &np)) {
		assert_true(np >= 1 && np <= 3);
		assert_true(G.nops >= 1 && G.nops <= DG_MAX_OPS);
		if (jitter) {
			uint64_t run = dg_run_rng(seed, idx, G.batches - 1);
			for (uint64_t k = dg_next(jitter) % 8; k; k--)
				(void)dg_next(&run);
		}
	}
	assert_true(G.sqes >= G.quota && G.quota > 0);
	return (struct sum){ G.sqes, G.batches, G.digest };
}

/* Every stream of @seed, combined as difftest's run_seed() does. */
static struct sum gen_seed(uint64_t seed, uint64_t *jitter)
{
	struct sum t = { 0, 0, seed };
	for (unsigned i = 0; i < DG_NSTREAMS; i++) {
		struct sum s = gen_stream(seed, i, jitter);
		t.sqes += s.sqes;
		t.batches += s.batches;
		dg_mix(&t.digest, i);
		dg_mix(&t.digest, s.digest);
	}
	return t;
}

static int setup(void **state)
{
	(void)state;
	arena = malloc(DG_ARENA);
	return arena ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	free(arena);
	return 0;
}

static void test_same_seed_same_stream(void **state)
{
	(void)state;
	/* 1796156731 is in tests/vm/difftest.seeds */
	struct sum a = gen_seed(1796156731, NULL), b = gen_seed(1796156731, NULL);
	print_message("seed 1796156731: %lu SQEs in %lu batches, digest %016llx\n", a.sqes, a.batches,
		      (unsigned long long)a.digest);
	assert_int_equal(a.sqes, b.sqes);
	assert_int_equal(a.batches, b.batches);
	assert_int_equal(a.digest, b.digest);
	unsigned long quota = 0;
	for (unsigned i = 0; i < DG_NSTREAMS; i++)
		quota += dg_streams[i].sqes ? dg_streams[i].sqes : DG_SQES_PER_STREAM;
	assert_true(a.sqes >= quota);
}

/* Run-time choices come from dg_run_rng(), never from the generator: a
 * different number of them per batch leaves the stream as it was. */
static void test_run_time_draws_leave_the_stream(void **state)
{
	(void)state;
	uint64_t j1 = 12345, j2 = 987654321;
	for (unsigned i = 0; i < DG_NSTREAMS; i += 5) {
		struct sum plain = gen_stream(42, i, NULL);
		struct sum a = gen_stream(42, i, &j1), b = gen_stream(42, i, &j2);
		assert_int_equal(plain.digest, a.digest);
		assert_int_equal(plain.digest, b.digest);
		assert_int_equal(plain.sqes, a.sqes);
		assert_int_equal(plain.batches, b.batches);
	}
	/* the check can fail: what difftest once did, drawing the submit
	 * counts from the generator itself, changes the stream */
	dg_stream_init(&G, 42, 0, DEV_BYTES, LBS, arena);
	unsigned pieces[3], np;
	while (dg_stream_next(&G, pieces, &np))
		for (uint64_t k = dg_next(&j1) % 8; k; k--)
			(void)dg_rand(&G);
	assert_true(G.digest != gen_stream(42, 0, NULL).digest);
	/* and the run-time stream itself differs per batch and stream */
	uint64_t r0 = dg_run_rng(42, 0, 0), r1 = dg_run_rng(42, 0, 1), r2 = dg_run_rng(42, 1, 0);
	assert_true(r0 != r1 && r0 != r2 && r1 != r2);
	assert_true(dg_run_rng(42, 0, 0) == r0);
}

static void test_seeds_and_streams_differ(void **state)
{
	(void)state;
	static const uint64_t seeds[] = { 1, 2, 1795365787, 1795366702 };
	uint64_t d[4];
	for (unsigned i = 0; i < 4; i++) {
		d[i] = gen_stream(seeds[i], 3, NULL).digest;
		for (unsigned j = 0; j < i; j++)
			assert_true(d[i] != d[j]);
	}
	/* two streams of one seed */
	assert_true(gen_stream(7, 2, NULL).digest != gen_stream(7, 4, NULL).digest);
}

/* The digest sees a one-bit change in any generated SQE field. */
static void test_digest_covers_the_batch(void **state)
{
	(void)state;
	dg_stream_init(&G, 99, 6, DEV_BYTES, LBS, arena);
	unsigned pieces[3], np;
	assert_true(dg_stream_next(&G, pieces, &np));
	uint64_t rng = G.rng;
	/* the batch's digest from 0, with one bit of one field flipped */
	struct gop saved = G.ops[0];
	uint64_t *fields[] = { &G.ops[0].addr, &G.ops[0].off, &G.ops[0].ud };
	for (unsigned f = 0; f < 3; f++) {
		*fields[f] ^= 1;
		G.digest = 0, G.rng = rng;
		dg_digest_batch(&G, pieces, np);
		uint64_t changed = G.digest;
		G.ops[0] = saved;
		G.digest = 0, G.rng = rng;
		dg_digest_batch(&G, pieces, np);
		assert_true(changed != G.digest);
	}
	pieces[0] ^= 1;
	G.digest = 0;
	dg_digest_batch(&G, pieces, np);
	uint64_t split = G.digest;
	pieces[0] ^= 1;
	G.digest = 0;
	dg_digest_batch(&G, pieces, np);
	assert_true(split != G.digest);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_seed_same_stream),
		cmocka_unit_test(test_run_time_draws_leave_the_stream),
		cmocka_unit_test(test_seeds_and_streams_differ),
		cmocka_unit_test(test_digest_covers_the_batch),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
