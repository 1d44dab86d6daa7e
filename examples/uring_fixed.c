/* SPDX-License-Identifier: MIT */
/*
 * uring_fixed: liburing's inline helpers on a ring built by nvring.
 *
 * nvr_uring_queue_init() fills liburing's struct io_uring (liburing 2.3's
 * layout) over an nvring ring; from there the program is ordinary liburing
 * code: io_uring_get_sqe, io_uring_prep_write_fixed/read_fixed with a
 * registered buffer and a registered file, IOSQE_IO_LINK so the read runs
 * after the write, io_uring_for_each_cqe and io_uring_cq_advance.
 *
 * Only liburing's inline helpers are used, and the program does not link
 * liburing.so: every liburing function that is not inline enters the
 * kernel with io_uring_enter(2)/io_uring_register(2) on the ring fd, which
 * the kernel does not know (it is nvring's). That covers io_uring_submit*,
 * io_uring_register_*, and also io_uring_wait_cqe and io_uring_peek_cqe:
 * they are inline, but when the CQ ring is empty they fall back to
 * __io_uring_get_cqe(), exported by liburing.so, so merely calling them
 * makes the program need liburing.so. Until the shim redirects those calls,
 * their nvring counterparts stand in: nvr_uring_submit_and_wait() (submit
 * and wait for N completions), nvr_uring_register(). After the wait the
 * CQEs are in the ring, and reaping them needs only inline helpers.
 *
 *   uring_fixed BDF [NSID [OFFSET]]
 *
 * writes 4 KiB at OFFSET (default: 8 KiB before the end of the namespace),
 * reads them back into the other buffer and compares; exits 0 if equal.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "nvring/nvring.h"
#include "nvring/uring.h"
#include <liburing.h>

#define BS 4096u

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s BDF [NSID [OFFSET]]\n", argv[0]);
		return 2;
	}
	uint32_t nsid = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 0) : 1;
	struct nvr_ctrlr *c;
	int ret = nvr_ctrlr_attach(argv[1], NULL, &c);
	if (ret < 0) {
		fprintf(stderr, "uring_fixed: attach %s: %s\n", argv[1], strerror(-ret));
		return 1;
	}
	struct nvr_ns_info ni;
	struct io_uring ring;
	bool ring_up = false;
	int nsfd = -1, bad = 0;
	uint8_t *mem = MAP_FAILED;
	if ((ret = nvr_ns_get_info(c, nsid, &ni)) < 0)
		goto out;
	uint64_t bytes = ni.nlba * ni.lba_size;
	uint64_t off = argc > 3 ? strtoull(argv[3], NULL, 0) : bytes - 2 * BS;
	if ((nsfd = ret = nvr_ns_open(c, nsid)) < 0)
		goto out;
	if ((ret = nvr_uring_queue_init(c, 8, &ring, NULL)) < 0)
		goto out;
	ring_up = true;

	/* two 4 KiB buffers, registered once: pinned and IOMMU-mapped now */
	mem = mmap(NULL, 2 * BS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		ret = -errno;
		goto out;
	}
	struct iovec iov[2] = { { mem, BS }, { mem + BS, BS } };
	if ((ret = nvr_uring_register(ring.ring_fd, IORING_REGISTER_BUFFERS, iov, 2)) < 0 ||
	    (ret = nvr_uring_register(ring.ring_fd, IORING_REGISTER_FILES, &nsfd, 1)) < 0)
		goto out;

	for (unsigned i = 0; i < BS; i++)
		mem[i] = (uint8_t)(i * 7 + 3);
	memset(mem + BS, 0, BS);

	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
	io_uring_prep_write_fixed(sqe, 0 /* registered file 0 */, mem, BS, off, 0 /* buf 0 */);
	sqe->flags |= IOSQE_FIXED_FILE | IOSQE_IO_LINK;
	sqe->user_data = 1;
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_read_fixed(sqe, 0, mem + BS, BS, off, 1 /* buf 1 */);
	sqe->flags |= IOSQE_FIXED_FILE;
	sqe->user_data = 2;

	/* io_uring_submit_and_wait(&ring, 2), without entering the kernel */
	ret = nvr_uring_submit_and_wait(&ring, 2);
	if (ret < 0)
		goto out;
	unsigned head, seen = 0;
	struct io_uring_cqe *cqe;
	io_uring_for_each_cqe(&ring, head, cqe) {   /* acquires the CQ tail */
		printf("cqe user_data %llu res %d\n", (unsigned long long)cqe->user_data, cqe->res);
		if (cqe->user_data != seen + 1 || cqe->res != (int)BS)
			bad = 1;   /* linked: the write completes before the read */
		seen++;
	}
	io_uring_cq_advance(&ring, seen);   /* releases the CQ head */
	if (seen != 2)
		bad = 1;
	if (!bad && memcmp(mem, mem + BS, BS) != 0)
		bad = 1;
	printf("uring_fixed: wrote and read back %u bytes at %llu: %s\n", BS,
	       (unsigned long long)off, bad ? "MISMATCH" : "ok");
	ret = 0;
out:
	if (ret < 0)
		fprintf(stderr, "uring_fixed: %s\n", strerror(-ret));
	if (ring_up)
		nvr_uring_queue_exit(&ring);   /* also unregisters the buffers */
	if (mem != MAP_FAILED)
		munmap(mem, 2 * BS);
	if (nsfd >= 0)
		nvr_ns_close(nsfd);
	nvr_ctrlr_detach(c);
	return ret < 0 || bad ? 1 : 0;
}
