/* SPDX-License-Identifier: MIT */
/*
 * The ring layout, compared at run time with what the host kernel's own
 * io_uring_setup(2) returns for the same entries and flags: return value
 * (or errno), sq_entries, cq_entries, every sq_off/cq_off field, the mask
 * and entry words read through the application's own mmap()s, and
 * features (ours must be a subset of the kernel's, without SINGLE_MMAP).
 */
#include "tests/unit/test_uring_util.h"

static struct tu_env env;

struct layout_case {
	unsigned entries;
	unsigned flags;
	unsigned cq_entries;
	unsigned resv0;
};

static const struct layout_case cases[] = {
	{ 1, 0, 0, 0 }, { 2, 0, 0, 0 }, { 3, 0, 0, 0 }, { 8, 0, 0, 0 }, { 100, 0, 0, 0 },
	{ 128, 0, 0, 0 }, { 1000, 0, 0, 0 }, { 4096, 0, 0, 0 }, { 32768, 0, 0, 0 },
	{ 0, 0, 0, 0 },                                      /* -EINVAL */
	{ 32769, 0, 0, 0 },                                  /* -EINVAL */
	{ 32769, IORING_SETUP_CLAMP, 0, 0 },                 /* clamped */
	{ 100000, IORING_SETUP_CLAMP, 0, 0 },
	{ 8, IORING_SETUP_CQSIZE, 16, 0 },
	{ 8, IORING_SETUP_CQSIZE, 100, 0 },
	{ 8, IORING_SETUP_CQSIZE, 8, 0 },
	{ 8, IORING_SETUP_CQSIZE, 4, 0 },                    /* cq < sq: -EINVAL */
	{ 8, IORING_SETUP_CQSIZE, 0, 0 },                    /* -EINVAL */
	{ 8, IORING_SETUP_CQSIZE, 65536, 0 },
	{ 8, IORING_SETUP_CQSIZE, 65537, 0 },                /* -EINVAL */
	{ 8, IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP, 70000, 0 },
	{ 64, IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP, 40, 0 }, /* -EINVAL */
	{ 8, IORING_SETUP_IOPOLL, 0, 0 },
	{ 16, IORING_SETUP_SQPOLL, 0, 0 },
	{ 16, IORING_SETUP_SQ_AFF, 0, 0 },                   /* without SQPOLL: -EINVAL */
	{ 16, IORING_SETUP_SQPOLL | IORING_SETUP_COOP_TASKRUN, 0, 0 }, /* -EINVAL */
	{ 8, IORING_SETUP_SUBMIT_ALL, 0, 0 },
	{ 8, IORING_SETUP_COOP_TASKRUN, 0, 0 },
	{ 8, IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG, 0, 0 },
	{ 8, IORING_SETUP_TASKRUN_FLAG, 0, 0 },              /* -EINVAL */
	{ 8, IORING_SETUP_DEFER_TASKRUN, 0, 0 },             /* -EINVAL */
	{ 8, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, 0, 0 },
	{ 8, IORING_SETUP_SQE128, 0, 0 },
	{ 8, IORING_SETUP_CQE32, 0, 0 },
	{ 64, IORING_SETUP_CQE32 | IORING_SETUP_CQSIZE, 128, 0 },
	{ 8, IORING_SETUP_NO_SQARRAY, 0, 0 },
	{ 32, IORING_SETUP_NO_SQARRAY | IORING_SETUP_CQE32, 0, 0 },
	{ 8, IORING_SETUP_R_DISABLED, 0, 0 },
	{ 8, IORING_SETUP_IOPOLL | IORING_SETUP_SQPOLL, 0, 0 },
	{ 8, 0, 0, 1 },                                      /* resv: -EINVAL */
	{ 8, 1u << 31, 0, 0 },                               /* unknown flag */
};

static void check_words(const struct tu_ring *r, const char *what)
{
	const struct io_uring_params *p = &r->p;
	/* the constant words, through the SQ and the CQ mapping alike */
	assert_int_equal(*(unsigned *)(r->sq + p->sq_off.ring_mask), p->sq_entries - 1);
	assert_int_equal(*(unsigned *)(r->sq + p->sq_off.ring_entries), p->sq_entries);
	assert_int_equal(*(unsigned *)(r->cq + p->cq_off.ring_mask), p->cq_entries - 1);
	assert_int_equal(*(unsigned *)(r->cq + p->cq_off.ring_entries), p->cq_entries);
	assert_int_equal(*r->sq_head, 0);
	assert_int_equal(*r->sq_tail, 0);
	assert_int_equal(*r->cq_head, 0);
	assert_int_equal(*r->cq_tail, 0);
	assert_int_equal(*r->sq_dropped, 0);
	assert_int_equal(*r->cq_overflow, 0);
	(void)what;
}

static void test_layout_vs_kernel(void **state)
{
	(void)state;
	unsigned compared = 0, errors = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct layout_case *c = &cases[i];
		struct io_uring_params in = { 0 };
		in.flags = c->flags;
		in.cq_entries = c->cq_entries;
		in.resv[0] = c->resv0;
		struct tu_ring k, o;
		int kfd = tu_ring_init(&k, NULL, c->entries, &in);
		int ofd = tu_ring_init(&o, env.c, c->entries, &in);
		printf("case %2zu: entries %6u flags %#6x cq %6u -> kernel %d, nvring %d\n", i,
		       c->entries, c->flags, c->cq_entries, kfd < 0 ? kfd : 0, ofd < 0 ? ofd : 0);
		if (kfd < 0 || ofd < 0) {
			assert_int_equal(kfd < 0 ? kfd : 0, ofd < 0 ? ofd : 0);
			errors++;
			if (kfd >= 0)
				tu_ring_exit(&k);
			if (ofd >= 0)
				tu_ring_exit(&o);
			continue;
		}
		const struct io_uring_params *kp = &k.p, *op = &o.p;
		assert_int_equal(op->sq_entries, kp->sq_entries);
		assert_int_equal(op->cq_entries, kp->cq_entries);
		assert_int_equal(op->flags, kp->flags);
		assert_int_equal(op->sq_off.head, kp->sq_off.head);
		assert_int_equal(op->sq_off.tail, kp->sq_off.tail);
		assert_int_equal(op->sq_off.ring_mask, kp->sq_off.ring_mask);
		assert_int_equal(op->sq_off.ring_entries, kp->sq_off.ring_entries);
		assert_int_equal(op->sq_off.flags, kp->sq_off.flags);
		assert_int_equal(op->sq_off.dropped, kp->sq_off.dropped);
		assert_int_equal(op->sq_off.array, kp->sq_off.array);
		assert_int_equal(op->cq_off.head, kp->cq_off.head);
		assert_int_equal(op->cq_off.tail, kp->cq_off.tail);
		assert_int_equal(op->cq_off.ring_mask, kp->cq_off.ring_mask);
		assert_int_equal(op->cq_off.ring_entries, kp->cq_off.ring_entries);
		assert_int_equal(op->cq_off.overflow, kp->cq_off.overflow);
		assert_int_equal(op->cq_off.cqes, kp->cq_off.cqes);
		assert_int_equal(op->cq_off.flags, kp->cq_off.flags);
		/* features: a subset of the kernel's, never SINGLE_MMAP */
		assert_int_equal(op->features & ~kp->features, 0);
		assert_int_equal(op->features & IORING_FEAT_SINGLE_MMAP, 0);
		assert_true(op->features & IORING_FEAT_NODROP);
		assert_true(op->features & IORING_FEAT_EXT_ARG);
		check_words(&k, "kernel");
		check_words(&o, "nvring");
		compared++;
		tu_ring_exit(&k);
		tu_ring_exit(&o);
	}
	printf("layout: %u configurations compared field by field, %u rejections matched\n",
	       compared, errors);
	assert_true(compared >= 25);
}

/* The memfd: sparse, large enough for IORING_OFF_SQES + SQEs, and the SQ
 * array is honoured (a reversed index array still finds the SQEs). */
static void test_memfd_and_sq_array(void **state)
{
	(void)state;
	struct tu_ring o;
	assert_true(tu_ring_init(&o, env.c, 8, NULL) >= 0);
	off_t end = lseek(o.fd, 0, SEEK_END);
	assert_true((uint64_t)end >= IORING_OFF_SQES + o.sqes_sz);
	for (unsigned i = 0; i < 8; i++) {
		struct io_uring_sqe *s = &o.sqes[i];
		memset(s, 0, sizeof(*s));
		s->opcode = IORING_OP_NOP;
		s->user_data = 100 + i;
		o.sq_array[i] = 7 - i;
	}
	o.sqe_tail = 8;
	tu_flush(&o);
	assert_int_equal(tu_enter(&o, 8, 8, IORING_ENTER_GETEVENTS, NULL, 0), 8);
	for (unsigned i = 0; i < 8; i++) {
		struct io_uring_cqe cqe;
		assert_true(tu_cqe(&o, &cqe));
		assert_int_equal(cqe.user_data, 100 + 7 - i);
		assert_int_equal(cqe.res, 0);
	}
	tu_ring_exit(&o);
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
		cmocka_unit_test(test_layout_vs_kernel),
		cmocka_unit_test(test_memfd_and_sq_array),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
