/* SPDX-License-Identifier: MIT */
/*
 * abi/uaccess through rings: non-fixed reads and writes whose buffers run
 * into PROT_NONE and read-only pages, on a plain ring (copies in the
 * submitting thread) and an SQPOLL ring (copies in the poller thread),
 * once with the process_vm path and once with the exception-table path:
 * the same CQEs (the kernel's short counts and -EFAULTs) and the same
 * bytes in the buffers.
 */
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#include "tests/unit/test_uring_util.h"

#include "abi/ring.h"
#include "abi/uaccess.h"

#define PG 4096u

static struct tu_env env;
static int nsfd;

static struct io_uring_sqe *rw(struct tu_ring *r, uint8_t op, uint64_t ud, const void *addr,
			       uint32_t len, uint64_t off)
{
	struct io_uring_sqe *s = tu_sqe(r);
	assert_non_null(s);
	s->opcode = op;
	s->user_data = ud;
	s->fd = nsfd;
	s->addr = (uintptr_t)addr;
	s->len = len;
	s->off = off;
	return s;
}

#define NOPS 8

/* Pages: 0, 1 read-write, 2 PROT_NONE, 3 read-only; 4 pages of results
 * in @res by user_data, the two read-write pages copied to @bytes. */
static void run(bool sqpoll, enum ur_ua_path path, int *res, uint8_t *bytes)
{
	assert_int_equal(ur_uaccess_set_path(path), 0);
	uint8_t *m = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(m != MAP_FAILED);
	memset(m, 0xa5, 4 * PG);
	assert_int_equal(mprotect(m + 2 * PG, PG, PROT_NONE), 0);
	assert_int_equal(mprotect(m + 3 * PG, PG, PROT_READ), 0);
	struct tu_ring r;
	struct io_uring_params p = { .flags = sqpoll ? IORING_SETUP_SQPOLL : 0, .sq_thread_idle = 20 };
	assert_true(tu_ring_init(&r, env.c, 16, &p) >= 0);
	/* a setup asks again: the path asked for is the one in use */
	assert_true(ur_fault_usable() == (path == UR_UA_FAULT));
	static struct iovec v5[2], v6[2];
	v5[0] = (struct iovec){ m, 1024 };
	v5[1] = (struct iovec){ m + 2 * PG, 512 };
	v6[0] = (struct iovec){ m + PG, PG };
	v6[1] = (struct iovec){ m + 3 * PG, 512 };
	rw(&r, IORING_OP_WRITE, 0, m, 3 * PG, 0);             /* stops at page 2 */
	rw(&r, IORING_OP_WRITEV, 1, v6, 2, 65536);             /* read-only is readable */
	rw(&r, IORING_OP_READ, 2, m, 3 * PG, 4096);            /* short: page 2 */
	rw(&r, IORING_OP_READ, 3, m + 2 * PG, PG, 0);          /* nothing */
	rw(&r, IORING_OP_READ, 4, m + 3 * PG, PG, 0);          /* read-only */
	rw(&r, IORING_OP_READV, 5, v5, 2, 0);
	rw(&r, IORING_OP_READ, 6, m + 2 * PG - 512, 1024, 8192);   /* one block */
	rw(&r, IORING_OP_READ, 7, m + 2 * PG - 508, 1024, 8192);   /* less than one: probed */
	tu_flush(&r);
	if (sqpoll) {
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (__atomic_load_n(r.sq_flags, __ATOMIC_RELAXED) & IORING_SQ_NEED_WAKEUP)
			tu_enter(&r, 0, 0, IORING_ENTER_SQ_WAKEUP, NULL, 0);
	} else {
		assert_int_equal(tu_enter(&r, NOPS, 0, 0, NULL, 0), NOPS);
	}
	unsigned seen = 0;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		struct io_uring_cqe c;
		while (tu_cqe(&r, &c)) {
			assert_true(c.user_data < NOPS);
			res[c.user_data] = c.res;
			seen++;
		}
		if (!sqpoll && seen < NOPS)
			tu_enter(&r, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0);
		clock_gettime(CLOCK_MONOTONIC, &t1);
	} while (seen < NOPS && t1.tv_sec - t0.tv_sec < 5);
	assert_int_equal(seen, NOPS);
	tu_ring_exit(&r);
	memcpy(bytes, m, 2 * PG);
	munmap(m, 4 * PG);
	ur_uaccess_set_path(UR_UA_AUTO);
}

static void both_paths(bool sqpoll)
{
	/* the namespace's first blocks: a known pattern */
	uint8_t *pat = malloc(16 * PG);
	assert_non_null(pat);
	for (unsigned i = 0; i < 16 * PG; i++)
		pat[i] = (uint8_t)(i * 13 + (i >> 9));
	struct tu_ring w;
	assert_true(tu_ring_init(&w, env.c, 4, NULL) >= 0);
	rw(&w, IORING_OP_WRITE, 99, pat, 16 * PG, 0);
	tu_flush(&w);
	assert_int_equal(tu_enter(&w, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0), 1);
	struct io_uring_cqe c;
	assert_true(tu_cqe(&w, &c));
	assert_int_equal(c.res, 16 * PG);
	tu_ring_exit(&w);

	int rp[NOPS], rf[NOPS];
	uint8_t *bp = malloc(2 * PG), *bf = malloc(2 * PG);
	assert_true(bp && bf);
	bool have_fault = ur_uaccess_set_path(UR_UA_FAULT) == 0;
	run(sqpoll, UR_UA_PVM, rp, bp);
	if (have_fault) {
		run(sqpoll, UR_UA_FAULT, rf, bf);
	} else {
		print_message("no exception-table copy here (valgrind or not x86-64): process_vm only\n");
		memcpy(rf, rp, sizeof(rf));
		memcpy(bf, bp, 2 * PG);
	}
	/* what Linux 6.1 returns for these on an O_DIRECT block device
	 * (pinning stops at the first page that faults, whole blocks
	 * before it go to the device) */
	static const int want[NOPS] = { 2 * PG, PG + 512, 2 * PG, -EFAULT, -EFAULT, 1024, 512,
					-EFAULT };
	for (int i = 0; i < NOPS; i++) {
		if (rp[i] != want[i] || rf[i] != want[i])
			fail_msg("op %d: process_vm %d, fault path %d, expected %d", i, rp[i], rf[i],
				 want[i]);
	}
	assert_memory_equal(bp, bf, 2 * PG);
	free(bp);
	free(bf);
	free(pat);
}

static void test_plain_ring(void **state)
{
	(void)state;
	both_paths(false);
}

static void test_sqpoll_ring(void **state)
{
	(void)state;
	both_paths(true);
}

static int setup(void **state)
{
	(void)state;
	tu_attach(&env, NULL);
	nsfd = nvr_ns_open(env.c, 1);
	assert_true(nsfd >= 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	assert_int_equal(nvr_ns_close(nsfd), 0);
	tu_detach(&env);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_ring),
		cmocka_unit_test(test_sqpoll_ring),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
