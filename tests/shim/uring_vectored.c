/* SPDX-License-Identifier: MIT */
/*
 * uring_vectored DEVICE — IORING_OP_WRITEV / READV with several segments:
 * a 5-segment writev of 188 KiB, read back by readvs cut differently (7
 * segments, then one), and a 1-segment writev; every result and checksum.
 */
#include <sys/uio.h>

#include "uring_prog.h"

#define TAG 0x7663   /* "vc" */
#define OFF (2u << 20)

static int one(struct io_uring *ring, bool write, int fd, const struct iovec *iov, unsigned n, uint64_t off)
{
	struct io_uring_sqe *sqe = sqe_get(ring);
	int res = -1;

	if (write)
		io_uring_prep_writev(sqe, fd, iov, n, off);
	else
		io_uring_prep_readv(sqe, fd, iov, n, off);
	sqe->user_data = 0;
	if (!submit_n(ring, 1) || !reap(ring, 1, &res, 1, NULL))
		return -10000;
	return res;
}

/* Segment lengths (KiB) of the writes and reads of [OFF, OFF + 188 KiB). */
static const unsigned wsegs[] = { 4, 64, 8, 100, 12 };
static const unsigned rsegs[] = { 16, 4, 4, 128, 8, 12, 16 };

int main(int argc, char **argv)
{
	struct dev d;
	struct io_uring ring;
	struct iovec iov[8];
	const unsigned total = 188u << 10;
	int rc = dev_open(argc, argv, &d);

	if (rc)
		return rc;
	ring_init(&ring, 4, 0);

	/* Each segment its own buffer: a driver that took them as contiguous
	 * memory would move the wrong bytes. */
	uint64_t at = 0;
	for (unsigned i = 0; i < 5; i++) {
		iov[i].iov_len = wsegs[i] << 10;
		iov[i].iov_base = buf_alloc(iov[i].iov_len);
		pattern(iov[i].iov_base, OFF + at, iov[i].iov_len, TAG);
		at += iov[i].iov_len;
	}
	rc = one(&ring, true, d.fd, iov, 5, d.base + OFF);
	check(rc == (int)total, "writev 5 segments (4+64+8+100+12 KiB) to +%u: res %d", OFF, rc);

	at = 0;
	uint64_t h = FNV_INIT;
	bool same = true;
	for (unsigned i = 0; i < 7; i++) {
		iov[i].iov_len = rsegs[i] << 10;
		iov[i].iov_base = buf_alloc(iov[i].iov_len);
	}
	rc = one(&ring, false, d.fd, iov, 7, d.base + OFF);
	for (unsigned i = 0; i < 7; i++) {
		same &= pattern_ok(iov[i].iov_base, OFF + at, iov[i].iov_len, TAG);
		h = fnv64(iov[i].iov_base, iov[i].iov_len, h);
		at += iov[i].iov_len;
	}
	check(rc == (int)total && same, "readv 7 segments (16+4+4+128+8+12+16 KiB): res %d, data %016" PRIx64, rc, h);

	struct iovec whole = { buf_alloc(total), total };
	rc = one(&ring, false, d.fd, &whole, 1, d.base + OFF);
	check(rc == (int)total && pattern_ok(whole.iov_base, OFF, total, TAG),
	      "readv 1 segment of 188 KiB: res %d, data %016" PRIx64, rc, fnv64(whole.iov_base, total, FNV_INIT));

	/* A 1-segment writev over the middle, read back with 2 segments. */
	struct iovec w1 = { buf_alloc(8192), 8192 };
	pattern(w1.iov_base, OFF + 65536, 8192, TAG ^ 1);
	rc = one(&ring, true, d.fd, &w1, 1, d.base + OFF + 65536);
	check(rc == 8192, "writev 1 segment of 8 KiB to +%u: res %d", OFF + 65536, rc);
	struct iovec r2[2] = { { buf_alloc(4096), 4096 }, { buf_alloc(8192), 8192 } };
	rc = one(&ring, false, d.fd, r2, 2, d.base + OFF + 61440);
	check(rc == 12288 && pattern_ok(r2[0].iov_base, OFF + 61440, 4096, TAG) &&
	      pattern_ok(r2[1].iov_base, OFF + 65536, 8192, TAG ^ 1),
	      "readv 2 segments across old and new data: res %d, data %016" PRIx64, rc,
	      fnv64(r2[1].iov_base, 8192, fnv64(r2[0].iov_base, 4096, FNV_INIT)));
	io_uring_queue_exit(&ring);
	return prog_exit();
}
