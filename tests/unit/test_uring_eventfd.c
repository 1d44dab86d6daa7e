/* SPDX-License-Identifier: MIT */
/*
 * IORING_REGISTER_EVENTFD(_ASYNC) / UNREGISTER_EVENTFD, nvring beside the
 * host kernel's own io_uring with the same calls: the errors (-EBUSY,
 * -ENXIO, -EINVAL for a file that is no eventfd, -EBADF), the counter after
 * NOPs, IORING_CQ_EVENTFD_DISABLED, the _ASYNC variant (not signalled for
 * inline completions), and a namespace read on nvring signalling.
 */
#include <sys/eventfd.h>

#include "tests/unit/test_uring_util.h"

static struct tu_env env;

static int setup(void **state)
{
	(void)state;
	struct nvme_model_cfg cfg = { .ns_blocks = 2048 };
	tu_attach(&env, &cfg);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tu_detach(&env);
	return 0;
}

static uint64_t drain(int efd)
{
	uint64_t v = 0;
	if (read(efd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

static void nops(struct tu_ring *r, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct io_uring_sqe *sqe = tu_sqe(r);
		sqe->opcode = IORING_OP_NOP;
		sqe->user_data = i;
	}
	tu_flush(r);
	assert_int_equal(tu_enter(r, n, n, IORING_ENTER_GETEVENTS, NULL, 0), (int)n);
	struct io_uring_cqe c;
	while (tu_cqe(r, &c))
		;
}

/* What one side does, as a string of results compared between sides. */
static void run_side(struct nvr_ctrlr *c, char *out, size_t n)
{
	struct tu_ring r;
	assert_true(tu_ring_init(&r, c, 8, NULL) >= 0);
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	int notev = eventfd(0, EFD_CLOEXEC), pipefd[2];
	assert_int_equal(pipe(pipefd), 0);
	int bad = 1000;
	int r1 = tu_register(&r, IORING_UNREGISTER_EVENTFD, NULL, 0);
	int r2 = tu_register(&r, IORING_REGISTER_EVENTFD, &pipefd[0], 1);
	int r3 = tu_register(&r, IORING_REGISTER_EVENTFD, &bad, 1);
	int r4 = tu_register(&r, IORING_REGISTER_EVENTFD, &efd, 2);
	int r5 = tu_register(&r, IORING_REGISTER_EVENTFD, &efd, 1);
	int r6 = tu_register(&r, IORING_REGISTER_EVENTFD, &notev, 1);
	nops(&r, 3);
	uint64_t v1 = drain(efd) > 0;   /* signalled (the count per batch may differ) */
	/* the application switches signalling off in the CQ ring's flags */
	unsigned *cqf = (unsigned *)(r.cq + r.p.cq_off.flags);
	__atomic_store_n(cqf, IORING_CQ_EVENTFD_DISABLED, __ATOMIC_RELEASE);
	nops(&r, 2);
	uint64_t v2 = drain(efd);
	__atomic_store_n(cqf, 0, __ATOMIC_RELEASE);
	int r7 = tu_register(&r, IORING_UNREGISTER_EVENTFD, NULL, 0);
	int r8 = tu_register(&r, IORING_UNREGISTER_EVENTFD, NULL, 0);
	nops(&r, 1);
	uint64_t v3 = drain(efd);
	int r9 = tu_register(&r, IORING_REGISTER_EVENTFD_ASYNC, &efd, 1);
	nops(&r, 2);
	uint64_t v4 = drain(efd);
	tu_register(&r, IORING_UNREGISTER_EVENTFD, NULL, 0);
	snprintf(out, n, "%d %d %d %d %d %d %d %d %d v %llu %llu %llu %llu", r1, r2, r3, r4, r5,
		 r6, r7, r8, r9, (unsigned long long)v1, (unsigned long long)v2,
		 (unsigned long long)v3, (unsigned long long)v4);
	tu_ring_exit(&r);
	close(efd);
	close(notev);
	close(pipefd[0]);
	close(pipefd[1]);
}

static void test_eventfd_as_the_kernel(void **state)
{
	(void)state;
	char k[256], o[256];
	run_side(NULL, k, sizeof(k));
	run_side(env.c, o, sizeof(o));
	printf("kernel: %s\nnvring: %s\n", k, o);
	assert_string_equal(o, k);
	/* and the values themselves, so that a kernel change shows */
	assert_string_equal(o, "-6 -22 -9 -22 0 -16 0 -6 0 v 1 0 0 0");
}

static void test_eventfd_signals_device_completion(void **state)
{
	(void)state;
	struct tu_ring r;
	assert_true(tu_ring_init(&r, env.c, 8, NULL) >= 0);
	int ns = nvr_ns_open(env.c, 1);
	int efd = eventfd(0, EFD_CLOEXEC);
	assert_int_equal(tu_register(&r, IORING_REGISTER_EVENTFD, &efd, 1), 0);
	static uint8_t buf[4096] __attribute__((aligned(4096)));
	struct io_uring_sqe *sqe = tu_sqe(&r);
	sqe->opcode = IORING_OP_READ;
	sqe->fd = ns;
	sqe->addr = (uintptr_t)buf;
	sqe->len = 4096;
	tu_flush(&r);
	assert_int_equal(tu_enter(&r, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0), 1);
	uint64_t v = 0;
	assert_int_equal(read(efd, &v, 8), 8);      /* blocking: must be there */
	assert_true(v >= 1);
	close(efd);                                  /* the ring keeps its own */
	nvr_ns_close(ns);
	tu_ring_exit(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_eventfd_as_the_kernel),
		cmocka_unit_test(test_eventfd_signals_device_completion),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
