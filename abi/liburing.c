/* SPDX-License-Identifier: MIT */
/*
 * liburing's struct io_uring over an nvring ring, so that liburing.h's
 * inline helpers (io_uring_get_sqe, io_uring_prep_*, io_uring_peek_cqe,
 * io_uring_cqe_seen, ...) work unchanged. Filled as liburing 2.3's
 * io_uring_queue_mmap() and io_uring_queue_init_params() fill it (Debian
 * 12's liburing-dev); a different liburing may lay the struct out
 * differently.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "nvring/uring.h"
#include <liburing.h>

static size_t sqes_size(const struct io_uring_params *p)
{
	size_t one = sizeof(struct io_uring_sqe) << ((p->flags & IORING_SETUP_SQE128) ? 1 : 0);
	return (size_t)p->sq_entries * one;
}

static size_t cqes_size(const struct io_uring_params *p)
{
	size_t one = sizeof(struct io_uring_cqe) << ((p->flags & IORING_SETUP_CQE32) ? 1 : 0);
	return (size_t)p->cq_entries * one;
}

NVR_API int nvr_uring_queue_mmap(int fd, struct io_uring_params *p, struct io_uring *ring)
{
	memset(ring, 0, sizeof(*ring));
	struct io_uring_sq *sq = &ring->sq;
	struct io_uring_cq *cq = &ring->cq;
	sq->ring_sz = p->sq_off.array + p->sq_entries * sizeof(unsigned);
	if (p->flags & IORING_SETUP_NO_SQARRAY)
		sq->ring_sz = p->cq_off.cqes + cqes_size(p);
	cq->ring_sz = p->cq_off.cqes + cqes_size(p);
	sq->ring_ptr = mmap(NULL, sq->ring_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
			    fd, IORING_OFF_SQ_RING);
	cq->ring_ptr = mmap(NULL, cq->ring_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
			    fd, IORING_OFF_CQ_RING);
	sq->sqes = mmap(NULL, sqes_size(p), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
			fd, IORING_OFF_SQES);
	if (sq->ring_ptr == MAP_FAILED || cq->ring_ptr == MAP_FAILED || sq->sqes == MAP_FAILED) {
		if (sq->ring_ptr != MAP_FAILED)
			munmap(sq->ring_ptr, sq->ring_sz);
		if (cq->ring_ptr != MAP_FAILED)
			munmap(cq->ring_ptr, cq->ring_sz);
		if (sq->sqes != MAP_FAILED)
			munmap(sq->sqes, sqes_size(p));
		memset(ring, 0, sizeof(*ring));
		return -ENOMEM;
	}
	uint8_t *s = sq->ring_ptr, *c = cq->ring_ptr;
	sq->khead = (unsigned *)(s + p->sq_off.head);
	sq->ktail = (unsigned *)(s + p->sq_off.tail);
	sq->kring_mask = (unsigned *)(s + p->sq_off.ring_mask);
	sq->kring_entries = (unsigned *)(s + p->sq_off.ring_entries);
	sq->kflags = (unsigned *)(s + p->sq_off.flags);
	sq->kdropped = (unsigned *)(s + p->sq_off.dropped);
	if (!(p->flags & IORING_SETUP_NO_SQARRAY))
		sq->array = (unsigned *)(s + p->sq_off.array);
	sq->ring_mask = *sq->kring_mask;
	sq->ring_entries = *sq->kring_entries;
	cq->khead = (unsigned *)(c + p->cq_off.head);
	cq->ktail = (unsigned *)(c + p->cq_off.tail);
	cq->kring_mask = (unsigned *)(c + p->cq_off.ring_mask);
	cq->kring_entries = (unsigned *)(c + p->cq_off.ring_entries);
	cq->koverflow = (unsigned *)(c + p->cq_off.overflow);
	cq->cqes = (struct io_uring_cqe *)(c + p->cq_off.cqes);
	if (p->cq_off.flags)
		cq->kflags = (unsigned *)(c + p->cq_off.flags);
	cq->ring_mask = *cq->kring_mask;
	cq->ring_entries = *cq->kring_entries;
	ring->flags = p->flags;
	ring->ring_fd = ring->enter_ring_fd = fd;
	ring->features = p->features;
	/* liburing 2.3: SQ slot i names SQE i */
	if (sq->array)
		for (unsigned i = 0; i < sq->ring_entries; i++)
			sq->array[i] = i;
	return 0;
}

NVR_API int nvr_uring_queue_init(struct nvr_ctrlr *ctrlr, unsigned entries,
				 struct io_uring *ring, struct io_uring_params *params)
{
	struct io_uring_params pdef;
	struct io_uring_params *p = params;
	if (!p) {
		memset(&pdef, 0, sizeof(pdef));
		p = &pdef;
	}
	int fd = nvr_uring_setup(ctrlr, entries, p);
	if (fd < 0)
		return fd;
	int rc = nvr_uring_queue_mmap(fd, p, ring);
	if (rc < 0)
		nvr_uring_close(fd);
	return rc;
}

NVR_API int nvr_uring_submit_and_wait(struct io_uring *ring, unsigned wait_nr)
{
	struct io_uring_sq *sq = &ring->sq;
	unsigned tail = sq->sqe_tail;
	if (sq->sqe_head != tail) {
		sq->sqe_head = tail;
		/* release: the SQEs before the tail that publishes them */
		__atomic_store_n(sq->ktail, tail, __ATOMIC_RELEASE);
	}
	unsigned submitted = tail - __atomic_load_n(sq->khead, __ATOMIC_ACQUIRE);
	unsigned flags = 0;
	if (ring->flags & IORING_SETUP_SQPOLL) {
		/* seq_cst: our tail store before the NEED_WAKEUP load */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (__atomic_load_n(sq->kflags, __ATOMIC_RELAXED) & IORING_SQ_NEED_WAKEUP)
			flags |= IORING_ENTER_SQ_WAKEUP;
		else if (!wait_nr)
			return (int)submitted;
	}
	if (wait_nr || (ring->flags & IORING_SETUP_IOPOLL))
		flags |= IORING_ENTER_GETEVENTS;
	return nvr_uring_enter(ring->ring_fd, submitted, wait_nr, flags, NULL, 0);
}

NVR_API void nvr_uring_queue_unmap(struct io_uring *ring)
{
	size_t sqes = (size_t)ring->sq.ring_entries *
		      (sizeof(struct io_uring_sqe) << ((ring->flags & IORING_SETUP_SQE128) ? 1 : 0));
	munmap(ring->sq.sqes, sqes);
	munmap(ring->sq.ring_ptr, ring->sq.ring_sz);
	munmap(ring->cq.ring_ptr, ring->cq.ring_sz);
}

NVR_API void nvr_uring_queue_exit(struct io_uring *ring)
{
	nvr_uring_queue_unmap(ring);
	nvr_uring_close(ring->ring_fd);
}
