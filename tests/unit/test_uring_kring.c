/* SPDX-License-Identifier: MIT */
/*
 * Mixed rings: SQEs on other files go to the hidden kernel ring and their
 * CQEs come back on the nvring ring. A pipe write and read (the same results
 * as the host kernel's ring), a chain namespace WRITE -> pipe WRITE ->
 * namespace READ run in order, a forwarded member failing (-EBADF) cancels
 * the rest, a pipe read that waits while namespace reads complete, a
 * regular file and an eventfd, a fixed file index -EBADF, and a ring closed
 * with a forwarded read still pending; a POLL_ADD on a pipe (as the host
 * kernel's) and an SQPOLL ring forwarding a pipe write -> read chain.
 */
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <stdlib.h>

#include "tests/unit/test_uring_util.h"

static struct tu_env env;
static int nsfd;

static int setup(void **state)
{
	(void)state;
	struct nvme_model_cfg cfg = { .ns_blocks = 2048 };
	tu_attach(&env, &cfg);
	nsfd = nvr_ns_open(env.c, 1);
	return nsfd < 0;
}

static int teardown(void **state)
{
	(void)state;
	nvr_ns_close(nsfd);
	tu_detach(&env);
	return 0;
}

static struct io_uring_sqe *rw(struct tu_ring *r, uint8_t op, int fd, void *buf, unsigned len,
			       uint64_t off, uint64_t ud, uint8_t flags)
{
	struct io_uring_sqe *s = tu_sqe(r);
	s->opcode = op;
	s->fd = fd;
	s->addr = (uintptr_t)buf;
	s->len = len;
	s->off = off;
	s->user_data = ud;
	s->flags = flags;
	return s;
}

/* wait for @n CQEs, results by user_data (0..15) */
static void reap(struct tu_ring *r, unsigned n, int *res)
{
	for (unsigned k = 0; k < n;) {
		int ret = tu_enter(r, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0);
		assert_int_equal(ret, 0);
		struct io_uring_cqe c;
		while (tu_cqe(r, &c)) {
			assert_true(c.user_data < 16);
			res[c.user_data] = c.res;
			k++;
		}
	}
}

static void pipe_round(struct nvr_ctrlr *c, int *res, char *got)
{
	struct tu_ring r;
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_true(tu_ring_init(&r, c, 8, NULL) >= 0);
	static char msg[] = "through the hidden ring";
	rw(&r, IORING_OP_WRITE, p[1], msg, sizeof(msg), 0, 1, IOSQE_IO_LINK);
	rw(&r, IORING_OP_READ, p[0], got, 64, 0, 2, 0);
	tu_flush(&r);
	assert_int_equal(tu_enter(&r, 2, 0, 0, NULL, 0), 2);
	reap(&r, 2, res);
	tu_ring_exit(&r);
	close(p[0]);
	close(p[1]);
}

static void test_pipe_as_the_kernel(void **state)
{
	(void)state;
	int kr[16] = { 0 }, nr[16] = { 0 };
	char kg[64] = "", ng[64] = "";
	pipe_round(NULL, kr, kg);
	pipe_round(env.c, nr, ng);
	assert_int_equal(nr[1], kr[1]);
	assert_int_equal(nr[2], kr[2]);
	assert_int_equal(nr[1], 24);
	assert_string_equal(ng, kg);
}

static void test_chain_across_sides(void **state)
{
	(void)state;
	struct tu_ring r;
	int p[2], res[16] = { 0 };
	assert_int_equal(pipe(p), 0);
	assert_true(tu_ring_init(&r, env.c, 8, NULL) >= 0);
	static uint8_t w[4096] __attribute__((aligned(4096))), rd[4096] __attribute__((aligned(4096)));
	for (int i = 0; i < 4096; i++)
		w[i] = (uint8_t)(i * 13 + 1);
	rw(&r, IORING_OP_WRITE, nsfd, w, 4096, 8192, 1, IOSQE_IO_LINK);
	rw(&r, IORING_OP_WRITE, p[1], w, 100, 0, 2, IOSQE_IO_LINK);
	rw(&r, IORING_OP_READ, nsfd, rd, 4096, 8192, 3, 0);
	/* a failing forwarded member cancels the rest of its chain */
	rw(&r, IORING_OP_READ, 1000, rd, 16, 0, 4, IOSQE_IO_LINK);
	rw(&r, IORING_OP_NOP, -1, NULL, 0, 0, 5, 0);
	/* a fixed file index names nvring's table, which holds no pipe */
	rw(&r, IORING_OP_WRITE, 0, w, 10, 0, 6, IOSQE_FIXED_FILE);
	tu_flush(&r);
	assert_int_equal(tu_enter(&r, 6, 0, 0, NULL, 0), 6);
	reap(&r, 6, res);
	assert_int_equal(res[1], 4096);
	assert_int_equal(res[2], 100);
	assert_int_equal(res[3], 4096);
	assert_memory_equal(rd, w, 4096);
	assert_int_equal(res[4], -EBADF);
	assert_int_equal(res[5], -ECANCELED);
	assert_int_equal(res[6], -EBADF);
	char back[100];
	assert_int_equal(read(p[0], back, 100), 100);
	assert_memory_equal(back, w, 100);
	tu_ring_exit(&r);
	close(p[0]);
	close(p[1]);
}

static void test_blocked_pipe_read_does_not_hold_the_ring(void **state)
{
	(void)state;
	struct tu_ring r;
	int p[2], res[16] = { 0 };
	assert_int_equal(pipe(p), 0);
	assert_true(tu_ring_init(&r, env.c, 8, NULL) >= 0);
	static char pbuf[64];
	static uint8_t rd[4][512] __attribute__((aligned(4096)));
	rw(&r, IORING_OP_READ, p[0], pbuf, sizeof(pbuf), 0, 1, 0);
	for (int i = 0; i < 4; i++)
		rw(&r, IORING_OP_READ, nsfd, rd[i], 512, (uint64_t)i * 512, 2 + (uint64_t)i, 0);
	tu_flush(&r);
	assert_int_equal(tu_enter(&r, 5, 4, IORING_ENTER_GETEVENTS, NULL, 0), 5);
	struct io_uring_cqe c;
	unsigned got = 0;
	while (tu_cqe(&r, &c)) {
		assert_true(c.user_data >= 2);   /* the pipe read still waits */
		assert_int_equal(c.res, 512);
		got++;
	}
	assert_int_equal(got, 4);
	/* an eventfd and a regular file on the same ring meanwhile */
	int efd = eventfd(5, 0);
	char tmpl[] = "/tmp/nvring-kring.XXXXXX";
	int ffd = mkstemp(tmpl);
	unlink(tmpl);
	static uint64_t ev;
	static char fbuf[] = "regular file";
	rw(&r, IORING_OP_READ, efd, &ev, 8, 0, 6, 0);
	rw(&r, IORING_OP_WRITE, ffd, fbuf, sizeof(fbuf), 100, 7, 0);
	tu_flush(&r);
	assert_int_equal(tu_enter(&r, 2, 0, 0, NULL, 0), 2);
	reap(&r, 2, res);
	assert_int_equal(res[6], 8);
	assert_int_equal(ev, 5);
	assert_int_equal(res[7], (int)sizeof(fbuf));
	char check[32];
	assert_int_equal(pread(ffd, check, sizeof(fbuf), 100), (ssize_t)sizeof(fbuf));
	assert_string_equal(check, fbuf);
	/* now the writer comes */
	assert_int_equal(write(p[1], "late", 4), 4);
	reap(&r, 1, res);
	assert_int_equal(res[1], 4);
	/* closing with a forwarded read pending returns and leaks nothing */
	rw(&r, IORING_OP_READ, p[0], pbuf, sizeof(pbuf), 0, 8, 0);
	tu_flush(&r);
	assert_int_equal(tu_enter(&r, 1, 0, 0, NULL, 0), 1);
	tu_ring_exit(&r);
	close(efd);
	close(ffd);
	close(p[0]);
	close(p[1]);
}

/* POLL_ADD on a pipe: pending until a write, then POLLIN as the kernel's */
static void poll_round(struct nvr_ctrlr *c, int *res)
{
	struct tu_ring r;
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_true(tu_ring_init(&r, c, 8, NULL) >= 0);
	struct io_uring_sqe *s = rw(&r, IORING_OP_POLL_ADD, p[0], NULL, 0, 0, 3, 0);
	s->poll32_events = POLLIN;
	tu_flush(&r);
	assert_int_equal(tu_enter(&r, 1, 0, 0, NULL, 0), 1);
	struct io_uring_cqe cq;
	assert_int_equal(tu_enter(&r, 0, 0, IORING_ENTER_GETEVENTS, NULL, 0), 0);
	assert_false(tu_cqe(&r, &cq));  /* nothing to read yet */
	assert_int_equal(write(p[1], "x", 1), 1);
	reap(&r, 1, res);
	tu_ring_exit(&r);
	close(p[0]);
	close(p[1]);
}

static void test_poll_add_on_a_pipe(void **state)
{
	(void)state;
	int kr[16] = { 0 }, nr[16] = { 0 };
	poll_round(NULL, kr);
	poll_round(env.c, nr);
	assert_int_equal(nr[3], kr[3]);
	assert_true(nr[3] & POLLIN);
}

/* an SQPOLL ring forwards too: the poller issues and reaps the kernel side */
static void test_sqpoll_forwards(void **state)
{
	(void)state;
	struct tu_ring r;
	int p[2], res[16] = { 0 };
	char got[16] = "";
	assert_int_equal(pipe(p), 0);
	struct io_uring_params prm = { .flags = IORING_SETUP_SQPOLL, .sq_thread_idle = 100 };
	assert_true(tu_ring_init(&r, env.c, 8, &prm) >= 0);
	static char msg[] = "sqpoll";
	rw(&r, IORING_OP_WRITE, p[1], msg, sizeof(msg), 0, 1, IOSQE_IO_LINK);
	rw(&r, IORING_OP_READ, p[0], got, sizeof(got), 0, 2, 0);
	tu_flush(&r);
	assert_true(tu_enter(&r, 2, 0, IORING_ENTER_SQ_WAKEUP, NULL, 0) >= 0);
	reap(&r, 2, res);
	assert_int_equal(res[1], (int)sizeof(msg));
	assert_int_equal(res[2], (int)sizeof(msg));
	assert_string_equal(got, msg);
	tu_ring_exit(&r);
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pipe_as_the_kernel),
		cmocka_unit_test(test_chain_across_sides),
		cmocka_unit_test(test_blocked_pipe_read_does_not_hold_the_ring),
		cmocka_unit_test(test_poll_add_on_a_pipe),
		cmocka_unit_test(test_sqpoll_forwards),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
