/* SPDX-License-Identifier: MIT */
/*
 * uring_rw DEVICE — IORING_OP_WRITE then IORING_OP_READ with plain buffers:
 * five ranges of 4 KiB to 1 MiB (the largest beyond QEMU's MDTS, so it is
 * split), all in flight at once; then reads across and past the end of the
 * device (short read, then 0).
 */
#include "uring_prog.h"

static const struct { uint64_t off; size_t len; } ranges[] = {
	{ 0, 4096 }, { 4096, 65536 }, { 1 << 20, 131072 }, { 3 << 20, 12288 }, { 14 << 20, 1 << 20 },
};
#define NR (sizeof(ranges) / sizeof(ranges[0]))
#define TAG 0x7277   /* "rw" */

int main(int argc, char **argv)
{
	struct dev d;
	struct io_uring ring;
	void *wbuf[NR], *rbuf[NR];
	int res[NR];
	int rc = dev_open(argc, argv, &d);

	if (rc)
		return rc;
	ring_init(&ring, 8, 0);

	for (unsigned i = 0; i < NR; i++) {
		wbuf[i] = buf_alloc(ranges[i].len);
		rbuf[i] = buf_alloc(ranges[i].len);
		pattern(wbuf[i], ranges[i].off, ranges[i].len, TAG);
		struct io_uring_sqe *sqe = sqe_get(&ring);
		io_uring_prep_write(sqe, d.fd, wbuf[i], ranges[i].len, d.base + ranges[i].off);
		sqe->user_data = i;
	}
	check(submit_n(&ring, NR) && reap(&ring, NR, res, NR, NULL), "write: %zu SQEs submitted and reaped", NR);
	for (unsigned i = 0; i < NR; i++)
		check(res[i] == (int)ranges[i].len, "write +%" PRIu64 " len %zu: res %d", ranges[i].off,
		      ranges[i].len, res[i]);

	for (unsigned i = 0; i < NR; i++) {
		struct io_uring_sqe *sqe = sqe_get(&ring);
		io_uring_prep_read(sqe, d.fd, rbuf[i], ranges[i].len, d.base + ranges[i].off);
		sqe->user_data = i;
	}
	check(submit_n(&ring, NR) && reap(&ring, NR, res, NR, NULL), "read: %zu SQEs submitted and reaped", NR);
	for (unsigned i = 0; i < NR; i++)
		check(res[i] == (int)ranges[i].len && pattern_ok(rbuf[i], ranges[i].off, ranges[i].len, TAG),
		      "read +%" PRIu64 " len %zu: res %d, data %016" PRIx64, ranges[i].off, ranges[i].len,
		      res[i], fnv64(rbuf[i], ranges[i].len, FNV_INIT));

	/* The last block of the device: written, then a read of two blocks from
	 * there stops at the end (short read), and a read at the end returns 0. */
	void *b = buf_alloc(2 * BLOCK), *z = buf_alloc(BLOCK);
	uint64_t last = REGION_BYTES - BLOCK;
	int r[3] = { -1, -1, -1 };

	pattern(b, last, BLOCK, TAG);
	struct io_uring_sqe *sqe = sqe_get(&ring);
	io_uring_prep_write(sqe, d.fd, b, BLOCK, d.base + last);
	sqe->user_data = 0;
	bool ok = submit_n(&ring, 1) && reap(&ring, 1, r, 1, NULL);
	check(ok && r[0] == BLOCK, "write of the last block: res %d", r[0]);
	memset(b, 0, 2 * BLOCK);
	sqe = sqe_get(&ring);
	io_uring_prep_read(sqe, d.fd, b, 2 * BLOCK, d.base + last);
	sqe->user_data = 1;
	sqe = sqe_get(&ring);
	io_uring_prep_read(sqe, d.fd, z, BLOCK, d.bytes);
	sqe->user_data = 2;
	check(submit_n(&ring, 2) && reap(&ring, 2, r, 3, NULL), "reads at the end: submitted and reaped");
	check(r[1] == BLOCK && pattern_ok(b, last, BLOCK, TAG),
	      "read of 2 blocks from the last one: res %d (short), data %016" PRIx64, r[1],
	      fnv64(b, BLOCK, FNV_INIT));
	check(r[2] == 0, "read at the end of the device: res %d", r[2]);
	io_uring_queue_exit(&ring);
	return prog_exit();
}
