/* SPDX-License-Identifier: MIT */
/*
 * uring_drain DEVICE — IOSQE_IO_DRAIN: six writes, then a drained read of
 * all of them (it must start after every earlier SQE completed, so it sees
 * all six), then two SQEs after the drain (held until it was issued).
 * Checks the completion order around the drain and the data.
 */
#include "uring_prog.h"

#define TAG 0x6472   /* "dr" */
#define OFF (6u << 20)
#define NW 6
#define SPAN (32u << 10)   /* bytes per write */

int main(int argc, char **argv)
{
	struct dev d;
	struct io_uring ring;
	int res[NW + 3] = { 0 };
	unsigned order[NW + 3] = { 0 };
	int rc = dev_open(argc, argv, &d);

	if (rc)
		return rc;
	ring_init(&ring, 16, 0);
	char *w = buf_alloc(NW * SPAN), *r = buf_alloc(NW * SPAN), *after = buf_alloc(BLOCK);

	/* First zero the range, so that a read that ran early would see zeroes. */
	memset(w, 0, NW * SPAN);
	struct io_uring_sqe *sqe = sqe_get(&ring);
	io_uring_prep_write(sqe, d.fd, w, NW * SPAN, d.base + OFF);
	sqe->user_data = 0;
	bool ok = submit_n(&ring, 1) && reap(&ring, 1, res, 1, NULL);
	check(ok && res[0] == (int)(NW * SPAN), "zeroing write: res %d", res[0]);

	pattern(w, OFF, NW * SPAN, TAG);
	for (unsigned i = 0; i < NW; i++) {
		sqe = sqe_get(&ring);
		io_uring_prep_write(sqe, d.fd, w + i * SPAN, SPAN, d.base + OFF + i * SPAN);
		sqe->user_data = i;
	}
	sqe = sqe_get(&ring);
	io_uring_prep_read(sqe, d.fd, r, NW * SPAN, d.base + OFF);
	sqe->flags |= IOSQE_IO_DRAIN;
	sqe->user_data = NW;
	sqe = sqe_get(&ring);
	io_uring_prep_nop(sqe);
	sqe->user_data = NW + 1;
	sqe = sqe_get(&ring);
	io_uring_prep_read(sqe, d.fd, after, BLOCK, d.base + OFF);
	sqe->user_data = NW + 2;

	ok = submit_n(&ring, NW + 3) && reap(&ring, NW + 3, res, NW + 3, order);
	check(ok, "%d SQEs submitted and reaped", NW + 3);
	for (unsigned i = 0; i < NW; i++)
		check(res[i] == (int)SPAN, "write %u: res %d", i, res[i]);

	/* The drained read's CQE comes after all six writes'; the two SQEs
	 * behind it are held until it was issued, so they too complete after
	 * the writes (the kernel issues them right after the drained one: their
	 * order against it is not defined, and not checked). */
	unsigned drain_at = 0, last_write = 0, first_after = NW + 3;
	for (unsigned k = 0; k < NW + 3; k++) {
		if (order[k] == NW)
			drain_at = k;
		else if (order[k] < NW)
			last_write = k;
		else if (first_after == NW + 3)
			first_after = k;
	}
	check(ok && drain_at > last_write, "the drained read completed after the %d writes", NW);
	check(ok && first_after > last_write, "the nop and the read behind the drain completed after the writes");
	check(res[NW] == (int)(NW * SPAN) && pattern_ok(r, OFF, NW * SPAN, TAG),
	      "drained read: res %d, data %016" PRIx64, res[NW], fnv64(r, NW * SPAN, FNV_INIT));
	check(res[NW + 1] == 0, "nop after the drain: res %d", res[NW + 1]);
	check(res[NW + 2] == BLOCK && pattern_ok(after, OFF, BLOCK, TAG), "read after the drain: res %d, data %016" PRIx64,
	      res[NW + 2], fnv64(after, BLOCK, FNV_INIT));
	io_uring_queue_exit(&ring);
	return prog_exit();
}
