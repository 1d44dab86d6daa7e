/* SPDX-License-Identifier: MIT */
/*
 * cat: print bytes [offset, offset + length) of an NVMe namespace to
 * stdout, written against the raw io_uring ABI as a program would write it
 * for the kernel: setup, three mmap()s at IORING_OFF_SQ_RING /
 * IORING_OFF_CQ_RING / IORING_OFF_SQES, SQ index array, explicit
 * acquire/release on the shared heads and tails. Only the three entry
 * points are nvring's (nvr_uring_setup/enter instead of the syscalls) and
 * the file is a namespace descriptor from nvr_ns_open().
 *
 *   cat BDF [NSID [OFFSET [LENGTH]]]     (defaults: 1, 0, 4096)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "nvring/nvring.h"
#include "nvring/uring.h"

#define QD     8
#define CHUNK  (64u * 1024)

struct ring {
	int fd;
	unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
	unsigned *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
};

static int ring_open(struct nvr_ctrlr *c, struct ring *r)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	r->fd = nvr_uring_setup(c, QD, &p);
	if (r->fd < 0)
		return r->fd;
	size_t sq_sz = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	size_t cq_sz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	uint8_t *sq = mmap(NULL, sq_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
			   r->fd, IORING_OFF_SQ_RING);
	uint8_t *cq = mmap(NULL, cq_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
			   r->fd, IORING_OFF_CQ_RING);
	r->sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || r->sqes == MAP_FAILED)
		return -errno;
	r->sq_head = (unsigned *)(sq + p.sq_off.head);
	r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
	r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
	r->sq_array = (unsigned *)(sq + p.sq_off.array);
	r->cq_head = (unsigned *)(cq + p.cq_off.head);
	r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
	r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s BDF [NSID [OFFSET [LENGTH]]]\n", argv[0]);
		return 2;
	}
	uint32_t nsid = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 0) : 1;
	uint64_t off = argc > 3 ? strtoull(argv[3], NULL, 0) : 0;
	uint64_t len = argc > 4 ? strtoull(argv[4], NULL, 0) : 4096;

	struct nvr_ctrlr *c;
	int ret = nvr_ctrlr_attach(argv[1], NULL, &c);
	if (ret < 0) {
		fprintf(stderr, "cat: attach %s: %s\n", argv[1], strerror(-ret));
		return 1;
	}
	struct nvr_ns_info ni;
	int nsfd = -1;
	struct ring r = { .fd = -1 };
	uint8_t *buf = NULL;
	if ((ret = nvr_ns_get_info(c, nsid, &ni)) < 0 || (nsfd = ret = nvr_ns_open(c, nsid)) < 0 ||
	    (ret = ring_open(c, &r)) < 0)
		goto out;
	/* O_DIRECT rules: read whole blocks, print the asked-for bytes */
	uint64_t lbs = ni.lba_size, start = off & ~(lbs - 1);
	uint64_t end = (off + len + lbs - 1) & ~(lbs - 1);
	buf = aligned_alloc(4096, QD * CHUNK);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	/* Windows of up to QD chunk reads: submit them in one enter, wait for
	 * all of them, print them in order. */
	int rc = 0;
	for (uint64_t win = start; win < end && !rc; win += (uint64_t)QD * CHUNK) {
		unsigned tail = *r.sq_tail, n = 0;
		for (uint64_t at = win; at < end && n < QD; at += CHUNK, n++) {
			unsigned idx = tail & *r.sq_mask;
			struct io_uring_sqe *s = &r.sqes[idx];
			memset(s, 0, sizeof(*s));
			s->opcode = IORING_OP_READ;
			s->fd = nsfd;
			s->off = at;
			s->len = (uint32_t)(end - at < CHUNK ? end - at : CHUNK);
			s->addr = (uintptr_t)(buf + (size_t)n * CHUNK);
			s->user_data = n;
			r.sq_array[idx] = idx;
			tail++;
		}
		/* release: the SQEs and array entries before the tail */
		__atomic_store_n(r.sq_tail, tail, __ATOMIC_RELEASE);
		ret = nvr_uring_enter(r.fd, n, n, IORING_ENTER_GETEVENTS, NULL, 0);
		if (ret < 0)
			goto out;
		/* acquire: the CQEs before the tail that published them */
		unsigned ctail = __atomic_load_n(r.cq_tail, __ATOMIC_ACQUIRE), head = *r.cq_head;
		for (; head != ctail; head++) {
			struct io_uring_cqe *cqe = &r.cqes[head & *r.cq_mask];
			if (cqe->res < 0) {
				fprintf(stderr, "cat: read of chunk %llu: %s\n",
					(unsigned long long)cqe->user_data, strerror(-cqe->res));
				rc = 1;
			}
		}
		/* release: our reads of the CQEs before the slots are reused */
		__atomic_store_n(r.cq_head, head, __ATOMIC_RELEASE);
		uint64_t wend = win + (uint64_t)n * CHUNK < end ? win + (uint64_t)n * CHUNK : end;
		uint64_t lo = win < off ? off : win, hi = wend < off + len ? wend : off + len;
		if (!rc && hi > lo)
			fwrite(buf + (lo - win), 1, hi - lo, stdout);
	}
	ret = rc ? -EIO : 0;
out:
	if (ret < 0)
		fprintf(stderr, "cat: %s\n", strerror(-ret));
	free(buf);
	if (nsfd >= 0)
		nvr_ns_close(nsfd);
	if (r.fd >= 0)
		nvr_uring_close(r.fd);
	nvr_ctrlr_detach(c);
	return ret < 0 ? 1 : 0;
}
