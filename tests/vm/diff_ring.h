/* SPDX-License-Identifier: MIT */
/*
 * tests/vm/difftest.c's view of a ring as a raw-ABI program sees it (the
 * three mmaps of the fd, the SQ index array, the shared head/tail words),
 * the same for the guest kernel's io_uring (raw syscalls, no liburing) and
 * for an nvring ring (nvr_uring_*), so one stream drives both.
 */
#ifndef NVRING_TESTS_VM_DIFF_RING_H
#define NVRING_TESTS_VM_DIFF_RING_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <nvring/uring.h>

struct dr_ring {
	int fd;
	bool ours;                  /* nvring, else the kernel */
	struct io_uring_params p;
	uint8_t *sq, *cq;
	size_t sq_sz, cq_sz, sqes_sz;
	uint8_t *sqes, *cqes;       /* strides: sqe_sz, cqe_sz */
	size_t sqe_sz, cqe_sz;      /* 64 or 128 (SQE128), 16 or 32 (CQE32) */
	unsigned *sq_head, *sq_tail, *sq_flags, *sq_dropped, *sq_array;
	unsigned *cq_head, *cq_tail, *cq_overflow;
	unsigned sqe_tail;          /* next SQE slot to fill */
};

/* The kernel's syscalls, negative errno style. */
static inline int dr_k_setup(unsigned entries, struct io_uring_params *p)
{
	long r = syscall(__NR_io_uring_setup, entries, p);
	return r < 0 ? -errno : (int)r;
}

static inline int dr_enter(struct dr_ring *r, unsigned sub, unsigned min, unsigned flags,
			   const void *arg, size_t argsz)
{
	if (r->ours)
		return nvr_uring_enter(r->fd, sub, min, flags, arg, argsz);
	long ret = syscall(__NR_io_uring_enter, r->fd, sub, min, flags, arg, argsz);
	return ret < 0 ? -errno : (int)ret;
}

static inline int dr_register(struct dr_ring *r, unsigned op, void *arg, unsigned nr)
{
	if (r->ours)
		return nvr_uring_register(r->fd, op, arg, nr);
	long ret = syscall(__NR_io_uring_register, r->fd, op, arg, nr);
	return ret < 0 ? -errno : (int)ret;
}

/* Set up (on @c, or the kernel when NULL) and map; returns fd or -errno. */
static inline int dr_init(struct dr_ring *r, struct nvr_ctrlr *c, unsigned entries,
			  const struct io_uring_params *p)
{
	memset(r, 0, sizeof(*r));
	if (p)
		r->p = *p;
	r->ours = c != NULL;
	r->fd = c ? nvr_uring_setup(c, entries, &r->p) : dr_k_setup(entries, &r->p);
	if (r->fd < 0)
		return r->fd;
	struct io_uring_params *q = &r->p;
	r->sq_sz = q->sq_off.array + q->sq_entries * sizeof(unsigned);
	r->sqe_sz = sizeof(struct io_uring_sqe) * (q->flags & IORING_SETUP_SQE128 ? 2 : 1);
	r->cqe_sz = sizeof(struct io_uring_cqe) * (q->flags & IORING_SETUP_CQE32 ? 2 : 1);
	r->cq_sz = q->cq_off.cqes + q->cq_entries * r->cqe_sz;
	r->sqes_sz = q->sq_entries * r->sqe_sz;
	r->sq = mmap(NULL, r->sq_sz, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, IORING_OFF_SQ_RING);
	r->cq = mmap(NULL, r->cq_sz, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, IORING_OFF_CQ_RING);
	r->sqes = mmap(NULL, r->sqes_sz, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, IORING_OFF_SQES);
	if (r->sq == MAP_FAILED || r->cq == MAP_FAILED || r->sqes == MAP_FAILED)
		return -ENOMEM;
	r->sq_head = (unsigned *)(r->sq + q->sq_off.head);
	r->sq_tail = (unsigned *)(r->sq + q->sq_off.tail);
	r->sq_flags = (unsigned *)(r->sq + q->sq_off.flags);
	r->sq_dropped = (unsigned *)(r->sq + q->sq_off.dropped);
	r->sq_array = (unsigned *)(r->sq + q->sq_off.array);
	r->cq_head = (unsigned *)(r->cq + q->cq_off.head);
	r->cq_tail = (unsigned *)(r->cq + q->cq_off.tail);
	r->cq_overflow = (unsigned *)(r->cq + q->cq_off.overflow);
	r->cqes = r->cq + q->cq_off.cqes;
	r->sqe_tail = *r->sq_tail;
	return r->fd;
}

static inline void dr_exit(struct dr_ring *r)
{
	munmap(r->sq, r->sq_sz);
	munmap(r->cq, r->cq_sz);
	munmap(r->sqes, r->sqes_sz);
	if (r->ours)
		nvr_uring_close(r->fd);
	else
		close(r->fd);
}

/* Next SQE (zeroed) wired into the SQ array, or NULL when the SQ is full;
 * published by dr_flush(). */
static inline struct io_uring_sqe *dr_sqe(struct dr_ring *r)
{
	unsigned mask = r->p.sq_entries - 1;
	unsigned head = __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);
	if (r->sqe_tail - head >= r->p.sq_entries)
		return NULL;
	unsigned idx = r->sqe_tail & mask;
	struct io_uring_sqe *s = (struct io_uring_sqe *)(r->sqes + idx * r->sqe_sz);
	memset(s, 0, r->sqe_sz);
	r->sq_array[idx] = idx;
	r->sqe_tail++;
	return s;
}

static inline void dr_flush(struct dr_ring *r)
{
	/* release: the SQE contents and array entries before the tail */
	__atomic_store_n(r->sq_tail, r->sqe_tail, __ATOMIC_RELEASE);
}

static inline unsigned dr_sq_pending(const struct dr_ring *r)
{
	return __atomic_load_n(r->sq_tail, __ATOMIC_RELAXED) -
	       __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);
}

/* Pop one CQE if there is one; @big (CQE32 rings, else zeroes): its
 * second 16 bytes. */
static inline bool dr_cqe32(struct dr_ring *r, struct io_uring_cqe *out, uint64_t big[2])
{
	unsigned head = *r->cq_head;
	/* acquire: the CQE contents after the tail that published them */
	if (head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE))
		return false;
	const uint8_t *c = r->cqes + (head & (r->p.cq_entries - 1)) * r->cqe_sz;
	memcpy(out, c, sizeof(*out));
	if (big) {
		big[0] = big[1] = 0;
		if (r->cqe_sz > sizeof(*out))
			memcpy(big, c + sizeof(*out), 16);
	}
	/* release: done reading the slot before handing it back */
	__atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
	return true;
}

static inline bool dr_cqe(struct dr_ring *r, struct io_uring_cqe *out)
{
	return dr_cqe32(r, out, NULL);
}

#endif
