/* SPDX-License-Identifier: MIT */
/*
 * uring_timeout DEVICE — timeouts: io_uring_wait_cqe_timeout with nothing
 * pending returns -ETIME; an IORING_OP_TIMEOUT with count 2 completes (res
 * 0) once two other requests did, long before its time; a pure timeout
 * expires (-ETIME); a read with a linked timeout completes and cancels the
 * timeout (-ECANCELED); a timeout with a linked shorter timeout is canceled
 * by it. No timing is printed: the times are far apart, so only the order
 * of events matters.
 */
#include "uring_prog.h"

#define TAG 0x746d   /* "tm" */
#define OFF (10u << 20)

static struct __kernel_timespec ms(long n)
{
	return (struct __kernel_timespec){ .tv_sec = n / 1000, .tv_nsec = (n % 1000) * 1000000 };
}

int main(int argc, char **argv)
{
	struct dev d;
	struct io_uring ring;
	struct io_uring_cqe *cqe;
	int res[4] = { 0 };
	unsigned order[4] = { 0 };
	int rc = dev_open(argc, argv, &d);

	if (rc)
		return rc;
	ring_init(&ring, 8, 0);

	/* Nothing in flight: the wait times out. */
	struct __kernel_timespec t = ms(20);
	rc = io_uring_wait_cqe_timeout(&ring, &cqe, &t);
	check(rc == -ETIME, "wait_cqe_timeout(20 ms), nothing pending: %d", rc);

	/* A 10 s timeout that counts 2 completions: the two NOPs end it. */
	struct __kernel_timespec t10 = ms(10000);
	struct io_uring_sqe *sqe = sqe_get(&ring);
	io_uring_prep_timeout(sqe, &t10, 2, 0);
	sqe->user_data = 0;
	for (unsigned i = 1; i <= 2; i++) {
		sqe = sqe_get(&ring);
		io_uring_prep_nop(sqe);
		sqe->user_data = i;
	}
	bool ok = submit_n(&ring, 3) && reap(&ring, 3, res, 3, order);
	check(ok && res[0] == 0 && res[1] == 0 && res[2] == 0, "timeout count 2 + 2 NOPs: timeout res %d, nops %d %d",
	      res[0], res[1], res[2]);
	check(order[2] == 0, "the timeout completed after the two NOPs");

	/* A pure 30 ms timeout expires. */
	struct __kernel_timespec t30 = ms(30);
	sqe = sqe_get(&ring);
	io_uring_prep_timeout(sqe, &t30, 0, 0);
	sqe->user_data = 0;
	res[0] = 1;
	ok = submit_n(&ring, 1) && reap(&ring, 1, res, 1, NULL);
	check(ok && res[0] == -ETIME, "timeout 30 ms, count 0: res %d", res[0]);

	/* A read with a linked 10 s timeout: the read wins. */
	char *buf = buf_alloc(BLOCK);
	pattern(buf, OFF, BLOCK, TAG);
	sqe = sqe_get(&ring);
	io_uring_prep_write(sqe, d.fd, buf, BLOCK, d.base + OFF);
	sqe->user_data = 0;
	ok = submit_n(&ring, 1) && reap(&ring, 1, res, 1, NULL);
	check(ok && res[0] == BLOCK, "write: res %d", res[0]);
	memset(buf, 0, BLOCK);
	sqe = sqe_get(&ring);
	io_uring_prep_read(sqe, d.fd, buf, BLOCK, d.base + OFF);
	sqe->flags |= IOSQE_IO_LINK;
	sqe->user_data = 0;
	sqe = sqe_get(&ring);
	io_uring_prep_link_timeout(sqe, &t10, 0);
	sqe->user_data = 1;
	ok = submit_n(&ring, 2) && reap(&ring, 2, res, 2, NULL);
	check(ok && res[0] == BLOCK && pattern_ok(buf, OFF, BLOCK, TAG),
	      "read + link timeout 10 s: read res %d, data %016" PRIx64, res[0], fnv64(buf, BLOCK, FNV_INIT));
	check(res[1] == -ECANCELED, "the linked timeout: res %d", res[1]);

	/* A 10 s timeout with a linked 30 ms timeout: the link timeout fires
	 * (-ETIME) and cancels the timeout (-ECANCELED). */
	sqe = sqe_get(&ring);
	io_uring_prep_timeout(sqe, &t10, 0, 0);
	sqe->flags |= IOSQE_IO_LINK;
	sqe->user_data = 0;
	sqe = sqe_get(&ring);
	io_uring_prep_link_timeout(sqe, &t30, 0);
	sqe->user_data = 1;
	ok = submit_n(&ring, 2) && reap(&ring, 2, res, 2, NULL);
	check(ok && res[0] == -ECANCELED && res[1] == -ETIME,
	      "timeout 10 s + link timeout 30 ms: timeout res %d, link timeout res %d", res[0], res[1]);
	io_uring_queue_exit(&ring);
	return prog_exit();
}
