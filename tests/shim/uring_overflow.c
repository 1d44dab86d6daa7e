/* SPDX-License-Identifier: MIT */
/*
 * uring_overflow DEVICE — a CQ smaller than the completions in flight (SQ 8,
 * CQ 16 via IORING_SETUP_CQSIZE): 24 NOPs leave 16 CQEs in the ring and
 * flag the rest as overflowed (io_uring_cq_has_overflow, no CQE dropped
 * under IORING_FEAT_NODROP); reaping brings all 24 back, in order. Then 24
 * reads submitted without reaping are all reaped with their data.
 */
#include "uring_prog.h"

#define TAG 0x6f76   /* "ov" */
#define OFF (8u << 20)
#define N 24

int main(int argc, char **argv)
{
	struct dev d;
	struct io_uring ring;
	struct io_uring_params p = { .flags = IORING_SETUP_CQSIZE, .cq_entries = 16 };
	int res[N] = { 0 };
	unsigned order[N] = { 0 };
	int rc = dev_open(argc, argv, &d);

	if (rc)
		return rc;
	rc = io_uring_queue_init_params(8, &ring, &p);
	if (rc == -ENOSYS)
		return PROG_SKIP;
	if (!check(rc == 0, "queue_init_params(8, CQSIZE 16): %d", rc))
		return prog_exit();
	check(p.sq_entries == 8 && p.cq_entries == 16, "sq_entries %u, cq_entries %u", p.sq_entries, p.cq_entries);
	bool nodrop = p.features & IORING_FEAT_NODROP;
	check(nodrop, "IORING_FEAT_NODROP: %s", nodrop ? "yes" : "no");

	/* 3 x 8 NOPs: they complete as they are submitted; 8 do not fit. */
	bool ok = true;
	for (unsigned b = 0; b < 3; b++) {
		for (unsigned i = 0; i < 8; i++) {
			struct io_uring_sqe *sqe = sqe_get(&ring);
			io_uring_prep_nop(sqe);
			sqe->user_data = b * 8 + i;
		}
		ok &= submit_n(&ring, 8);
	}
	check(ok, "24 NOPs submitted in 3 batches");
	unsigned ready = io_uring_cq_ready(&ring);
	check(ready == 16, "CQEs in the ring: %u", ready);
	check(io_uring_cq_has_overflow(&ring), "io_uring_cq_has_overflow: %d", io_uring_cq_has_overflow(&ring));
	check(*ring.cq.koverflow == 0, "cq overflow counter (dropped CQEs): %u", *ring.cq.koverflow);

	ok = reap(&ring, N, res, N, order);
	bool inorder = true, allzero = true;
	for (unsigned k = 0; k < N; k++) {
		inorder &= order[k] == k;
		allzero &= res[k] == 0;
	}
	check(ok && allzero, "all %d NOP CQEs reaped, res 0", N);
	check(inorder, "in submission order, the overflowed ones last");
	check(!io_uring_cq_has_overflow(&ring) && io_uring_cq_ready(&ring) == 0, "no overflow left, ring empty");

	/* 24 reads of 4 KiB, three batches submitted before reaping any. */
	char *w = buf_alloc(N * BLOCK), *r = buf_alloc(N * BLOCK);
	pattern(w, OFF, N * BLOCK, TAG);
	struct io_uring_sqe *sqe = sqe_get(&ring);
	io_uring_prep_write(sqe, d.fd, w, N * BLOCK, d.base + OFF);
	sqe->user_data = 0;
	ok = submit_n(&ring, 1) && reap(&ring, 1, res, 1, NULL);
	check(ok && res[0] == (int)(N * BLOCK), "write of %d blocks: res %d", N, res[0]);
	ok = true;
	for (unsigned b = 0; b < 3; b++) {
		for (unsigned i = 0; i < 8; i++) {
			unsigned k = b * 8 + i;
			sqe = sqe_get(&ring);
			io_uring_prep_read(sqe, d.fd, r + k * BLOCK, BLOCK, d.base + OFF + k * BLOCK);
			sqe->user_data = k;
		}
		ok &= submit_n(&ring, 8);
	}
	check(ok, "24 reads submitted in 3 batches");
	for (unsigned k = 0; k < N; k++)
		res[k] = -1;
	ok = reap(&ring, N, res, N, NULL);
	bool allread = true;
	for (unsigned k = 0; k < N; k++)
		allread &= res[k] == BLOCK;
	check(ok && allread && pattern_ok(r, OFF, N * BLOCK, TAG), "all %d reads reaped, res %d each, data %016" PRIx64,
	      N, BLOCK, fnv64(r, N * BLOCK, FNV_INIT));
	check(*ring.cq.koverflow == 0 && !io_uring_cq_has_overflow(&ring), "nothing dropped, no overflow left");
	io_uring_queue_exit(&ring);
	return prog_exit();
}
