/* SPDX-License-Identifier: MIT */
/*
 * uring_mixed DEVICE — one ring carrying a pipe, a timeout and namespace
 * reads: a read of an empty pipe stays pending while a 30 ms timeout
 * expires and four device reads complete; then a write to the pipe through
 * the same ring completes the pending read with the written bytes.
 */
#include "uring_prog.h"

#define TAG 0x6d78   /* "mx" */
#define OFF (14u << 20)
#define MSG "sixty-four bytes through a pipe, on the ring that reads blocks!!"

enum { PIPE_READ, TIMEOUT, DEV0, PIPE_WRITE = DEV0 + 4, NUD };

int main(int argc, char **argv)
{
	struct dev d;
	struct io_uring ring;
	int res[NUD] = { 0 };
	int rc = dev_open(argc, argv, &d);
	_Static_assert(sizeof(MSG) - 1 == 64, "the message is 64 bytes");

	if (rc)
		return rc;
	ring_init(&ring, 16, 0);
	int pfd[2];
	if (!check(pipe(pfd) == 0, "pipe"))
		return prog_exit();

	char *dev_w = buf_alloc(4 * BLOCK), *dev_r = buf_alloc(4 * BLOCK);
	pattern(dev_w, OFF, 4 * BLOCK, TAG);
	struct io_uring_sqe *sqe = sqe_get(&ring);
	io_uring_prep_write(sqe, d.fd, dev_w, 4 * BLOCK, d.base + OFF);
	sqe->user_data = DEV0;
	bool ok = submit_n(&ring, 1) && reap(&ring, 1, res, NUD, NULL);
	check(ok && res[DEV0] == 4 * BLOCK, "device write: res %d", res[DEV0]);

	char pbuf[64] = { 0 };
	sqe = sqe_get(&ring);
	io_uring_prep_read(sqe, pfd[0], pbuf, sizeof(pbuf), 0);
	sqe->user_data = PIPE_READ;
	struct __kernel_timespec t30 = { .tv_nsec = 30 * 1000000 };
	sqe = sqe_get(&ring);
	io_uring_prep_timeout(sqe, &t30, 0, 0);
	sqe->user_data = TIMEOUT;
	for (unsigned i = 0; i < 4; i++) {
		sqe = sqe_get(&ring);
		io_uring_prep_read(sqe, d.fd, dev_r + i * BLOCK, BLOCK, d.base + OFF + i * BLOCK);
		sqe->user_data = DEV0 + i;
	}
	res[PIPE_READ] = 1;
	ok = submit_n(&ring, 6) && reap(&ring, 5, res, NUD, NULL);
	check(ok, "6 SQEs submitted, 5 reaped");
	check(res[TIMEOUT] == -ETIME, "timeout 30 ms: res %d", res[TIMEOUT]);
	for (unsigned i = 0; i < 4; i++)
		check(res[DEV0 + i] == BLOCK && pattern_ok(dev_r + i * BLOCK, OFF + i * BLOCK, BLOCK, TAG),
		      "device read %u: res %d, data %016" PRIx64, i, res[DEV0 + i],
		      fnv64(dev_r + i * BLOCK, BLOCK, FNV_INIT));
	check(res[PIPE_READ] == 1 && io_uring_cq_ready(&ring) == 0, "the pipe read is still pending");

	sqe = sqe_get(&ring);
	io_uring_prep_write(sqe, pfd[1], MSG, 64, 0);
	sqe->user_data = PIPE_WRITE;
	ok = submit_n(&ring, 1) && reap(&ring, 2, res, NUD, NULL);
	check(ok && res[PIPE_WRITE] == 64, "pipe write through the ring: res %d", res[PIPE_WRITE]);
	check(res[PIPE_READ] == 64 && !memcmp(pbuf, MSG, 64), "pending pipe read: res %d, \"%.16s...\"",
	      res[PIPE_READ], pbuf);
	close(pfd[0]);
	close(pfd[1]);
	io_uring_queue_exit(&ring);
	return prog_exit();
}
