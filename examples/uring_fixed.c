/* SPDX-License-Identifier: MIT */
/*
 * uring_fixed: liburing's inline helpers on a ring built by nvring.
 *
 * nvr_uring_queue_init() fills liburing's struct io_uring (liburing 2.3's
 * layout) over an nvring ring; from there the program is ordinary liburing
 * code: io_uring_get_sqe, io_uring_prep_write_fixed/read_fixed with a
 * registered buffer and a registered file, IOSQE_IO_LINK so the read runs
 * after the write, io_uring_wait_cqe, io_uring_cqe_seen. The submit and
 * register calls are nvring's (liburing's would make syscalls on a fd the
 * kernel does not know; the shim redirects those).
 *
 *   uring_fixed BDF [NSID [OFFSET]]   (default: the namespace's last 8 KiB;
 *                                      that range is overwritten)
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

/*
 * liburing's io_uring_wait_cqe() is inline but falls back to
 * __io_uring_get_cqe(), liburing's one exported waiting function, when no
 * CQE is ready yet. This program does not link liburing: it provides that
 * function over nvr_uring_enter() instead (same contract: wait for
 * @wait_nr CQEs after submitting @submit, return the first).
 */
int __io_uring_get_cqe(struct io_uring *ring, struct io_uring_cqe **cqe_ptr, unsigned submit,
		       unsigned wait_nr, sigset_t *sigmask)
{
	(void)sigmask;
	for (;;) {
		unsigned head = *ring->cq.khead;
		unsigned tail = __atomic_load_n(ring->cq.ktail, __ATOMIC_ACQUIRE);
		if (head != tail) {
			*cqe_ptr = &ring->cq.cqes[head & ring->cq.ring_mask];
			return 0;
		}
		if (!wait_nr && !submit) {
			*cqe_ptr = NULL;
			return -EAGAIN;
		}
		int ret = nvr_uring_enter(ring->ring_fd, submit, wait_nr ? wait_nr : 1,
					  IORING_ENTER_GETEVENTS, NULL, 0);
		if (ret < 0)
			return ret;
		submit = 0;
	}
}

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

	ret = nvr_uring_submit_and_wait(&ring, 2);
	if (ret < 0)
		goto out;
	for (int i = 0; i < 2; i++) {
		struct io_uring_cqe *cqe;
		if ((ret = io_uring_wait_cqe(&ring, &cqe)) < 0)
			goto out;
		printf("cqe user_data %llu res %d\n", (unsigned long long)cqe->user_data, cqe->res);
		if (cqe->res != (int)BS)
			bad = 1;
		io_uring_cqe_seen(&ring, cqe);
	}
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
