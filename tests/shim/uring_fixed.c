/* SPDX-License-Identifier: MIT */
/*
 * uring_fixed DEVICE — registered buffers: io_uring_register_buffers with two
 * buffers, WRITE_FIXED / READ_FIXED from the start and from inside each, a
 * buffer index that is not registered and an address outside the buffer
 * (both -EFAULT), then unregister and register again.
 */
#include <sys/uio.h>

#include "uring_prog.h"

#define TAG 0x6678   /* "fx" */
#define A_LEN (128u << 10)
#define B_LEN (64u << 10)

/* One fixed-buffer SQE, waited for; returns its result. */
static int fixed_io(struct io_uring *ring, bool write, int fd, void *buf, unsigned len, uint64_t off,
		    int idx)
{
	struct io_uring_sqe *sqe = sqe_get(ring);
	int res = -1;

	if (write)
		io_uring_prep_write_fixed(sqe, fd, buf, len, off, idx);
	else
		io_uring_prep_read_fixed(sqe, fd, buf, len, off, idx);
	sqe->user_data = 0;
	if (!submit_n(ring, 1) || !reap(ring, 1, &res, 1, NULL))
		return -10000;
	return res;
}

int main(int argc, char **argv)
{
	struct dev d;
	struct io_uring ring;
	int rc = dev_open(argc, argv, &d);

	if (rc)
		return rc;
	ring_init(&ring, 4, 0);
	char *a = buf_alloc(A_LEN), *b = buf_alloc(B_LEN);
	struct iovec iov[2] = { { a, A_LEN }, { b, B_LEN } };

	rc = io_uring_register_buffers(&ring, iov, 2);
	check(rc == 0, "register_buffers(2): %d", rc);

	/* All of A to +0; 32 KiB from inside B (at B + 8 KiB) to +256 KiB. */
	pattern(a, 0, A_LEN, TAG);
	rc = fixed_io(&ring, true, d.fd, a, A_LEN, d.base, 0);
	check(rc == (int)A_LEN, "write_fixed buf 0, all of it, to +0: res %d", rc);
	pattern(b + 8192, 256 << 10, 32 << 10, TAG);
	rc = fixed_io(&ring, true, d.fd, b + 8192, 32 << 10, d.base + (256 << 10), 1);
	check(rc == 32 << 10, "write_fixed buf 1 at +8192, 32 KiB, to +262144: res %d", rc);

	/* Read them back through the other buffer. */
	memset(b, 0, B_LEN);
	rc = fixed_io(&ring, false, d.fd, b, B_LEN, d.base + (64 << 10), 1);
	check(rc == (int)B_LEN && pattern_ok(b, 64 << 10, B_LEN, TAG),
	      "read_fixed +65536 64 KiB into buf 1: res %d, data %016" PRIx64, rc, fnv64(b, B_LEN, FNV_INIT));
	memset(a, 0, A_LEN);
	rc = fixed_io(&ring, false, d.fd, a + 4096, 32 << 10, d.base + (256 << 10), 0);
	check(rc == 32 << 10 && pattern_ok(a + 4096, 256 << 10, 32 << 10, TAG),
	      "read_fixed +262144 32 KiB into buf 0 at +4096: res %d, data %016" PRIx64, rc,
	      fnv64(a + 4096, 32 << 10, FNV_INIT));

	/* Out of the registration: an index not registered, a range past B. */
	rc = fixed_io(&ring, false, d.fd, b, BLOCK, d.base, 2);
	check(rc == -EFAULT, "read_fixed buf index 2 (not registered): res %d", rc);
	rc = fixed_io(&ring, false, d.fd, b + B_LEN - BLOCK, 2 * BLOCK, d.base, 1);
	check(rc == -EFAULT, "read_fixed past the end of buf 1: res %d", rc);

	rc = io_uring_unregister_buffers(&ring);
	check(rc == 0, "unregister_buffers: %d", rc);
	rc = fixed_io(&ring, false, d.fd, b, BLOCK, d.base, 0);
	check(rc == -EFAULT, "read_fixed after unregister: res %d", rc);
	rc = io_uring_register_buffers(&ring, iov + 1, 1);
	check(rc == 0, "register_buffers(1) again: %d", rc);
	memset(b, 0, B_LEN);
	rc = fixed_io(&ring, false, d.fd, b, BLOCK, d.base, 0);
	check(rc == BLOCK && pattern_ok(b, 0, BLOCK, TAG), "read_fixed +0 into buf 1, now index 0: res %d, data %016" PRIx64,
	      rc, fnv64(b, BLOCK, FNV_INIT));
	io_uring_queue_exit(&ring);
	return prog_exit();
}
