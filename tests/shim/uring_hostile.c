/* SPDX-License-Identifier: MIT */
/*
 * uring_hostile DEVICE — a hostile client: after writing a known pattern, it
 * sends SQEs that name memory that is not its own (NULL, an unmapped page, a
 * kernel address, an address of some other process's layout), read-only
 * memory as a read target, garbage opcodes and flags, an unregistered fixed
 * buffer, a closed fd, a garbage iovec pointer, too many iovecs, offsets
 * past the end and misaligned; one SQE per submission, each result printed.
 * Then the pattern is read back: nothing it did changed the device or the
 * ring. On the kernel device and through nvring (in-process or through the
 * owner) the output must be the same.
 */
#include <sys/mman.h>

#include "uring_prog.h"

#define TAG 0x6873   /* "hs" */
#define LEN (64u << 10)

static int one(struct io_uring *ring, struct io_uring_sqe *sqe)
{
	(void)sqe;
	sqe->user_data = 0;
	int res = 0;
	submit_n(ring, 1);
	reap(ring, 1, &res, 1, NULL);
	return res;
}

int main(int argc, char **argv)
{
	struct dev d;
	struct io_uring ring;
	int rc = dev_open(argc, argv, &d);
	if (rc)
		return rc;
	ring_init(&ring, 8, 0);
	char *w = buf_alloc(LEN), *r = buf_alloc(LEN);
	pattern(w, 0, LEN, TAG);
	struct io_uring_sqe *sqe = sqe_get(&ring);
	io_uring_prep_write(sqe, d.fd, w, LEN, d.base);
	check(one(&ring, sqe) == (int)LEN, "pattern written");

	void *none = mmap(NULL, BLOCK, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	void *ro = mmap(NULL, BLOCK, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (none == MAP_FAILED || ro == MAP_FAILED)
		ring_fatal("mmap");
	/* an address where another process would have its heap or stack:
	 * not mapped here (checked), so it is nobody's to this process */
	void *foreign = (void *)0x7e5a00000000ull;
	if (msync(foreign, BLOCK, MS_ASYNC) == 0)
		ring_fatal("%p is mapped here", foreign);
	struct iovec many[2] = { { r, BLOCK }, { r + BLOCK, BLOCK } };

	sqe = sqe_get(&ring);
	io_uring_prep_read(sqe, d.fd, NULL, BLOCK, d.base);
	check(1, "read into NULL: res %d", one(&ring, sqe));
	sqe = sqe_get(&ring);
	io_uring_prep_read(sqe, d.fd, none, BLOCK, d.base);
	check(1, "read into a PROT_NONE page: res %d", one(&ring, sqe));
	sqe = sqe_get(&ring);
	io_uring_prep_read(sqe, d.fd, ro, BLOCK, d.base);
	check(1, "read into a read-only page: res %d", one(&ring, sqe));
	sqe = sqe_get(&ring);
	io_uring_prep_write(sqe, d.fd, (void *)0xffff888000000000ull, BLOCK, d.base);
	check(1, "write from a kernel address: res %d", one(&ring, sqe));
	sqe = sqe_get(&ring);
	io_uring_prep_write(sqe, d.fd, foreign, BLOCK, d.base);
	check(1, "write from another process's kind of address: res %d", one(&ring, sqe));
	sqe = sqe_get(&ring);
	io_uring_prep_read(sqe, d.fd, foreign, BLOCK, d.base);
	check(1, "read into another process's kind of address: res %d", one(&ring, sqe));
	sqe = sqe_get(&ring);
	io_uring_prep_nop(sqe);
	sqe->opcode = 200;
	check(1, "opcode 200: res %d", one(&ring, sqe));
	sqe = sqe_get(&ring);
	io_uring_prep_read(sqe, d.fd, r, BLOCK, d.base);
	sqe->flags = 0x80;
	check(1, "sqe flags 0x80: res %d", one(&ring, sqe));
	sqe = sqe_get(&ring);
	io_uring_prep_read_fixed(sqe, d.fd, r, BLOCK, d.base, 7);
	check(1, "read_fixed of buffer 7, none registered: res %d", one(&ring, sqe));
	sqe = sqe_get(&ring);
	io_uring_prep_read(sqe, 987, r, BLOCK, 0);
	check(1, "read on a closed fd: res %d", one(&ring, sqe));
	sqe = sqe_get(&ring);
	io_uring_prep_readv(sqe, d.fd, (struct iovec *)16, 2, d.base);
	check(1, "readv with iovecs at address 16: res %d", one(&ring, sqe));
	sqe = sqe_get(&ring);
	io_uring_prep_readv(sqe, d.fd, many, 5000, d.base);
	check(1, "readv of 5000 iovecs: res %d", one(&ring, sqe));
	sqe = sqe_get(&ring);
	io_uring_prep_write(sqe, d.fd, w, BLOCK, d.bytes + BLOCK);
	check(1, "write past the end: res %d", one(&ring, sqe));
	sqe = sqe_get(&ring);
	io_uring_prep_read(sqe, d.fd, r, BLOCK, d.base + 1);
	check(1, "read at a misaligned offset: res %d", one(&ring, sqe));
	sqe = sqe_get(&ring);
	io_uring_prep_read(sqe, d.fd, r + 1, BLOCK, d.base);
	check(1, "read into a misaligned buffer: res %d", one(&ring, sqe));

	memset(r, 0, LEN);
	sqe = sqe_get(&ring);
	io_uring_prep_read(sqe, d.fd, r, LEN, d.base);
	int res = one(&ring, sqe);
	check(res == (int)LEN && pattern_ok(r, 0, LEN, TAG), "the pattern is intact: res %d", res);
	io_uring_queue_exit(&ring);
	free(w);
	free(r);
	return prog_exit();
}
