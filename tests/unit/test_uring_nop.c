/* SPDX-License-Identifier: MIT */
/*
 * NOP streams run on an nvring ring and on the host kernel's io_uring side
 * by side; everything visible must match: enter's return values, SQ head,
 * sq dropped, sq flags (CQ_OVERFLOW), cq overflow, and every CQE's
 * user_data/res/flags. The streams mix IO_LINK, IO_HARDLINK, IO_DRAIN,
 * CQE_SKIP_SUCCESS, ASYNC, FIXED_FILE (ignored by NOP), invalid flags,
 * invalid opcodes, ioprio and personality errors (which fail at submission
 * and end the batch) and bad SQ indices, in batches of many sizes.
 */
#include <stdlib.h>
#include <time.h>

#include "tests/unit/test_uring_util.h"

static struct tu_env env;

static uint64_t rng_state;
static uint32_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)rng_state;
}

struct cq_rec { uint64_t ud; int32_t res; uint32_t flags; };

static int rec_cmp(const void *a, const void *b)
{
	const struct cq_rec *x = a, *y = b;
	if (x->ud != y->ud)
		return x->ud < y->ud ? -1 : 1;
	return x->res - y->res;
}

static unsigned collect(struct tu_ring *r, struct cq_rec *out, unsigned max)
{
	unsigned n = 0;
	struct io_uring_cqe c;
	while (n < max && tu_cqe(r, &c)) {
		out[n].ud = c.user_data;
		out[n].res = c.res;
		out[n].flags = c.flags;
		n++;
	}
	return n;
}

/* Fill one random NOP-family SQE. @skip: CQE_SKIP_SUCCESS may appear
 * (which disables drains for the ring's life, as in the kernel). */
static void random_sqe(struct io_uring_sqe *s, uint64_t ud, bool skip)
{
	s->opcode = IORING_OP_NOP;
	s->user_data = ud;
	unsigned f = 0, x = rnd() % 100;
	if (x < 30)
		f |= IOSQE_IO_LINK;
	else if (x < 38)
		f |= IOSQE_IO_HARDLINK;
	if (rnd() % 100 < 12)
		f |= IOSQE_IO_DRAIN;
	if (skip && rnd() % 100 < 25)
		f |= IOSQE_CQE_SKIP_SUCCESS;
	if (rnd() % 100 < 5)
		f |= IOSQE_ASYNC;
	if (rnd() % 100 < 5)
		f |= IOSQE_FIXED_FILE;
	s->flags = (uint8_t)f;
	x = rnd() % 100;
	if (x < 4)
		s->opcode = 200;                 /* beyond any IORING_OP_LAST: -EINVAL */
	else if (x < 7)
		s->flags |= 0x80;                /* unknown SQE flag: -EINVAL */
	else if (x < 9)
		s->ioprio = 1;                   /* NOP takes no ioprio: -EINVAL */
	else if (x < 11)
		s->personality = 7;              /* none registered: -EINVAL */
}

static unsigned wait_kernel(struct tu_ring *k, struct cq_rec *out, unsigned have, unsigned want)
{
	/* The kernel may finish drained requests in a worker: give it time. */
	for (int i = 0; i < 2000 && have < want; i++) {
		k_enter(k->fd, 0, 0, IORING_ENTER_GETEVENTS, NULL, 0);
		have += collect(k, out + have, 4096 - have);
		if (have < want) {
			struct timespec ts = { 0, 500000 };
			nanosleep(&ts, NULL);
		}
	}
	return have;
}

static unsigned run_stream(uint64_t seed, bool skip, unsigned entries, unsigned rounds)
{
	struct tu_ring k, o;
	assert_true(tu_ring_init(&k, NULL, entries, NULL) >= 0);
	assert_true(tu_ring_init(&o, env.c, entries, NULL) >= 0);
	rng_state = seed;
	uint64_t ud = 1;
	unsigned compared = 0;
	static struct cq_rec kc[4096], oc[4096];
	for (unsigned round = 0; round < rounds; round++) {
		unsigned n = 1 + rnd() % entries;
		for (unsigned i = 0; i < n; i++) {
			struct io_uring_sqe *ks = tu_sqe(&k), *os = tu_sqe(&o);
			assert_non_null(ks);
			assert_non_null(os);
			uint64_t save = rng_state;
			random_sqe(ks, ud, skip);
			rng_state = save;
			random_sqe(os, ud, skip);
			ud++;
			if (rnd() % 100 < 2) {   /* an SQ index naming no SQE */
				unsigned slot = (k.sqe_tail - 1) & (entries - 1);
				k.sq_array[slot] = entries + 5;
				o.sq_array[slot] = entries + 5;
			}
		}
		tu_flush(&k);
		tu_flush(&o);
		/* submit until both consumed everything (failures end a batch) */
		for (int tries = 0; tries < 64; tries++) {
			unsigned kl = *k.sq_tail - *k.sq_head, ol = *o.sq_tail - *o.sq_head;
			assert_int_equal(kl, ol);
			if (!kl)
				break;
			unsigned sub = (rnd() % 4 == 0 && kl > 1) ? kl - 1 : kl;
			int kr = k_enter(k.fd, sub, 0, 0, NULL, 0);
			int or = nvr_uring_enter(o.fd, sub, 0, 0, NULL, 0);
			assert_int_equal(kr, or);
			assert_int_equal(*k.sq_head, *o.sq_head);
			assert_int_equal(*k.sq_dropped, *o.sq_dropped);
		}
		nvr_uring_enter(o.fd, 0, 0, IORING_ENTER_GETEVENTS, NULL, 0);
		unsigned on = collect(&o, oc, 4096);
		unsigned kn = wait_kernel(&k, kc, collect(&k, kc, 4096), on);
		assert_int_equal(kn, on);
		qsort(kc, kn, sizeof(kc[0]), rec_cmp);
		qsort(oc, on, sizeof(oc[0]), rec_cmp);
		for (unsigned i = 0; i < on; i++) {
			if (kc[i].ud != oc[i].ud || kc[i].res != oc[i].res || kc[i].flags != oc[i].flags)
				fail_msg("seed %llu round %u: cqe %u kernel {%llu,%d,%u} nvring {%llu,%d,%u}",
					 (unsigned long long)seed, round, i,
					 (unsigned long long)kc[i].ud, kc[i].res, kc[i].flags,
					 (unsigned long long)oc[i].ud, oc[i].res, oc[i].flags);
		}
		compared += n;
	}
	/* nothing late on the kernel side */
	struct timespec ts = { 0, 2000000 };
	nanosleep(&ts, NULL);
	k_enter(k.fd, 0, 0, IORING_ENTER_GETEVENTS, NULL, 0);
	assert_int_equal(collect(&k, kc, 4096), 0);
	assert_int_equal(*k.sq_flags & IORING_SQ_CQ_OVERFLOW, *o.sq_flags & IORING_SQ_CQ_OVERFLOW);
	tu_ring_exit(&k);
	tu_ring_exit(&o);
	return compared;
}

static void test_nop_streams_vs_kernel(void **state)
{
	(void)state;
	unsigned total = 0;
	const unsigned sizes[] = { 1, 2, 8, 32, 128 };
	for (uint64_t seed = 1; seed <= 10; seed++)
		for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
			total += run_stream(seed * 7919 + s, seed & 1, sizes[s], 40);
	printf("nop streams: %u SQEs compared with the host kernel, 0 mismatches\n", total);
	assert_true(total > 10000);
}

/* Overflow: CQEs beyond the CQ ring wait in the backlog (NODROP), the SQ
 * flags say IORING_SQ_CQ_OVERFLOW, GETEVENTS flushes them in order; no
 * counter moves (nothing is dropped); submission is never refused. */
static void test_overflow_vs_kernel(void **state)
{
	(void)state;
	struct tu_ring k, o;
	struct tu_ring *rs[2] = { &k, &o };
	assert_true(tu_ring_init(&k, NULL, 4, NULL) >= 0);
	assert_true(tu_ring_init(&o, env.c, 4, NULL) >= 0);
	assert_int_equal(o.p.cq_entries, 8);
	for (int round = 0; round < 5; round++) {
		int ret[2];
		for (int j = 0; j < 2; j++) {
			for (int i = 0; i < 4; i++) {
				struct io_uring_sqe *s = tu_sqe(rs[j]);
				s->opcode = IORING_OP_NOP;
				s->user_data = (uint64_t)round * 10 + (uint64_t)i;
				if (i == 1)
					s->flags = IOSQE_IO_LINK;   /* chains overflow too */
			}
			tu_flush(rs[j]);
			ret[j] = tu_enter(rs[j], 4, 0, 0, NULL, 0);
		}
		assert_int_equal(ret[0], 4);
		assert_int_equal(ret[1], 4);
		assert_int_equal(*k.cq_tail, *o.cq_tail);
		assert_int_equal(*k.sq_flags & IORING_SQ_CQ_OVERFLOW, *o.sq_flags & IORING_SQ_CQ_OVERFLOW);
		assert_int_equal(*k.cq_overflow, *o.cq_overflow);
	}
	assert_true(*o.sq_flags & IORING_SQ_CQ_OVERFLOW);
	/* GETEVENTS with a full CQ: returns 0 at once (min satisfied) */
	assert_int_equal(tu_enter(&k, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0), 0);
	assert_int_equal(tu_enter(&o, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0), 0);
	unsigned got = 0;
	for (;;) {
		struct io_uring_cqe kc, oc;
		bool kb = tu_cqe(&k, &kc), ob = tu_cqe(&o, &oc);
		assert_int_equal(kb, ob);
		if (!kb) {
			/* the CQ ring is empty: flush the backlog, if any */
			tu_enter(&k, 0, 0, IORING_ENTER_GETEVENTS, NULL, 0);
			tu_enter(&o, 0, 0, IORING_ENTER_GETEVENTS, NULL, 0);
			assert_int_equal(*k.cq_tail - *k.cq_head, *o.cq_tail - *o.cq_head);
			if (*k.cq_tail == *k.cq_head)
				break;
			continue;
		}
		assert_int_equal(kc.user_data, oc.user_data);
		assert_int_equal(kc.res, oc.res);
		got++;
	}
	assert_int_equal(got, 20);
	assert_int_equal(*o.sq_flags & IORING_SQ_CQ_OVERFLOW, 0);
	assert_int_equal(*k.cq_overflow, *o.cq_overflow);
	tu_ring_exit(&k);
	tu_ring_exit(&o);
}

/* EXT_ARG: a timed wait with nothing in flight ends with -ETIME; argsz
 * must be exact. */
static void test_ext_arg_timeout(void **state)
{
	(void)state;
	struct tu_ring k, o;
	struct tu_ring *rs[2] = { &k, &o };
	assert_true(tu_ring_init(&k, NULL, 4, NULL) >= 0);
	assert_true(tu_ring_init(&o, env.c, 4, NULL) >= 0);
	for (int j = 0; j < 2; j++) {
		struct __kernel_timespec ts = { 0, 2000000 };
		struct io_uring_getevents_arg a = { .ts = (uintptr_t)&ts };
		unsigned fl = IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG;
		assert_int_equal(tu_enter(rs[j], 0, 1, fl, &a, sizeof(a)), -ETIME);
		assert_int_equal(tu_enter(rs[j], 0, 1, fl, &a, sizeof(a) - 1), -EINVAL);
		assert_int_equal(tu_enter(rs[j], 0, 0, 1u << 30, NULL, 0), -EINVAL);
		/* one NOP, then a timed wait for it returns 0 */
		struct io_uring_sqe *s = tu_sqe(rs[j]);
		s->opcode = IORING_OP_NOP;
		tu_flush(rs[j]);
		assert_int_equal(tu_enter(rs[j], 1, 1, fl, &a, sizeof(a)), 1);
	}
	assert_int_equal(nvr_uring_enter(12345, 0, 0, 0, NULL, 0), k_enter(12345, 0, 0, 0, NULL, 0));
	assert_int_equal(nvr_uring_enter(0, 0, 0, 0, NULL, 0), -EOPNOTSUPP);
	tu_ring_exit(&k);
	tu_ring_exit(&o);
}

static bool own_op(unsigned i)
{
	return i == IORING_OP_NOP || i == IORING_OP_READV || i == IORING_OP_WRITEV ||
	       i == IORING_OP_FSYNC || i == IORING_OP_READ_FIXED ||
	       i == IORING_OP_WRITE_FIXED || i == IORING_OP_FALLOCATE ||
	       i == IORING_OP_READ || i == IORING_OP_WRITE ||
	       i == IORING_OP_TIMEOUT || i == IORING_OP_TIMEOUT_REMOVE ||
	       i == IORING_OP_LINK_TIMEOUT || i == IORING_OP_ASYNC_CANCEL;
}

/* PROBE: our opcodes plus what the hidden kernel ring takes for other
 * files (the host kernel's own probe); on an IOPOLL ring ours only; the
 * kernel's conventions. */
static void test_probe(void **state)
{
	(void)state;
	size_t sz = sizeof(struct io_uring_probe) + 256 * sizeof(struct io_uring_probe_op);
	struct tu_ring k;
	assert_true(tu_ring_init(&k, NULL, 4, NULL) >= 0);
	struct io_uring_probe *kp = calloc(1, sz);
	assert_int_equal(k_register(k.fd, IORING_REGISTER_PROBE, kp, 256), 0);
	tu_ring_exit(&k);
	for (int iopoll = 0; iopoll < 2; iopoll++) {
		struct tu_ring o;
		struct io_uring_params prm = { .flags = iopoll ? IORING_SETUP_IOPOLL : 0 };
		assert_true(tu_ring_init(&o, env.c, 4, &prm) >= 0);
		struct io_uring_probe *p = calloc(1, sz);
		assert_int_equal(nvr_uring_register(o.fd, IORING_REGISTER_PROBE, p, 256), 0);
		assert_int_equal(p->last_op, IORING_OP_LAST - 1);
		assert_int_equal(p->ops_len, IORING_OP_LAST);
		unsigned n = 0;
		for (unsigned i = 0; i < p->ops_len; i++) {
			bool kern = i < kp->ops_len && (kp->ops[i].flags & IO_URING_OP_SUPPORTED);
			bool want = own_op(i) || (!iopoll && kern);
			assert_int_equal(p->ops[i].op, i);
			assert_int_equal(!!(p->ops[i].flags & IO_URING_OP_SUPPORTED), want);
			n += own_op(i);
		}
		assert_int_equal(n, 13);
		/* non-zeroed probe memory: -EINVAL, as the kernel */
		assert_int_equal(nvr_uring_register(o.fd, IORING_REGISTER_PROBE, p, 4), -EINVAL);
		free(p);
		assert_int_equal(nvr_uring_register(o.fd, 250, NULL, 0), -EINVAL);
		assert_int_equal(nvr_uring_register(o.fd, IORING_UNREGISTER_BUFFERS, NULL, 0), -ENXIO);
		assert_int_equal(nvr_uring_register(o.fd, IORING_UNREGISTER_FILES, NULL, 0), -ENXIO);
		tu_ring_exit(&o);
	}
	free(kp);
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
		cmocka_unit_test(test_nop_streams_vs_kernel),
		cmocka_unit_test(test_overflow_vs_kernel),
		cmocka_unit_test(test_ext_arg_timeout),
		cmocka_unit_test(test_probe),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
