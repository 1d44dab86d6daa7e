/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the tests/unit/test_uring_*.c programs: a controller
 * on the software model, the host kernel's own io_uring for comparison,
 * and a minimal raw-ABI ring view (the three mmaps) used on both.
 */
#ifndef NVRING_TEST_URING_UTIL_H
#define NVRING_TEST_URING_UTIL_H

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cmocka.h>

#include "driver/ctrlr.h"
#include "nvring/uring.h"
#include "tests/model/nvme_model.h"

struct tu_env {
	struct nvme_model *m;
	struct nvr_ctrlr *c;
};

static inline void tu_attach(struct tu_env *e, const struct nvme_model_cfg *cfg)
{
	struct nvr_pci_dev *dev;
	assert_int_equal(nvme_model_create(cfg, &e->m, &dev), 0);
	assert_int_equal(nvr_ctrlr_attach_dev(dev, NULL, &e->c), 0);
}

static inline void tu_detach(struct tu_env *e)
{
	assert_int_equal(nvr_ctrlr_detach(e->c), 0);
	nvme_model_destroy(e->m);
}

/* The host kernel's syscalls, negative errno style. */
static inline int k_setup(unsigned entries, struct io_uring_params *p)
{
	long r = syscall(__NR_io_uring_setup, entries, p);
	return r < 0 ? -errno : (int)r;
}
static inline int k_enter(int fd, unsigned sub, unsigned min, unsigned flags, const void *arg,
			  size_t argsz)
{
	long r = syscall(__NR_io_uring_enter, fd, sub, min, flags, arg, argsz);
	return r < 0 ? -errno : (int)r;
}
static inline int k_register(int fd, unsigned op, void *arg, unsigned nr)
{
	long r = syscall(__NR_io_uring_register, fd, op, arg, nr);
	return r < 0 ? -errno : (int)r;
}

/* A ring as a raw-ABI program sees it: the three mmaps of the fd. */
struct tu_ring {
	int fd;
	bool ours;                  /* nvring (else the host kernel) */
	struct io_uring_params p;
	uint8_t *sq, *cq;
	size_t sq_sz, cq_sz, sqes_sz;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
	unsigned *sq_head, *sq_tail, *sq_flags, *sq_dropped, *sq_array;
	unsigned *cq_head, *cq_tail, *cq_overflow;
	unsigned sqe_tail;          /* next SQE slot to fill */
};

static inline int tu_ring_map(struct tu_ring *r)
{
	struct io_uring_params *p = &r->p;
	size_t cqe = sizeof(struct io_uring_cqe) << ((p->flags & IORING_SETUP_CQE32) ? 1 : 0);
	size_t sqe = sizeof(struct io_uring_sqe) << ((p->flags & IORING_SETUP_SQE128) ? 1 : 0);
	r->sq_sz = (p->flags & IORING_SETUP_NO_SQARRAY) ? p->cq_off.cqes + p->cq_entries * cqe
		   : p->sq_off.array + p->sq_entries * sizeof(unsigned);
	r->cq_sz = p->cq_off.cqes + p->cq_entries * cqe;
	r->sqes_sz = p->sq_entries * sqe;
	r->sq = mmap(NULL, r->sq_sz, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, IORING_OFF_SQ_RING);
	r->cq = mmap(NULL, r->cq_sz, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, IORING_OFF_CQ_RING);
	r->sqes = mmap(NULL, r->sqes_sz, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, IORING_OFF_SQES);
	if (r->sq == MAP_FAILED || r->cq == MAP_FAILED || r->sqes == MAP_FAILED)
		return -ENOMEM;
	r->sq_head = (unsigned *)(r->sq + p->sq_off.head);
	r->sq_tail = (unsigned *)(r->sq + p->sq_off.tail);
	r->sq_flags = (unsigned *)(r->sq + p->sq_off.flags);
	r->sq_dropped = (unsigned *)(r->sq + p->sq_off.dropped);
	r->sq_array = (p->flags & IORING_SETUP_NO_SQARRAY) ? NULL
		      : (unsigned *)(r->sq + p->sq_off.array);
	r->cq_head = (unsigned *)(r->cq + p->cq_off.head);
	r->cq_tail = (unsigned *)(r->cq + p->cq_off.tail);
	r->cq_overflow = (unsigned *)(r->cq + p->cq_off.overflow);
	r->cqes = (struct io_uring_cqe *)(r->cq + p->cq_off.cqes);
	r->sqe_tail = *r->sq_tail;
	return 0;
}

/* Set up either kind with the same params; returns fd or -errno. */
static inline int tu_ring_init(struct tu_ring *r, struct nvr_ctrlr *c, unsigned entries,
			       const struct io_uring_params *p)
{
	memset(r, 0, sizeof(*r));
	if (p)
		r->p = *p;
	r->ours = c != NULL;
	r->fd = c ? nvr_uring_setup(c, entries, &r->p) : k_setup(entries, &r->p);
	if (r->fd < 0)
		return r->fd;
	int ret = tu_ring_map(r);
	return ret < 0 ? ret : r->fd;
}

static inline void tu_ring_exit(struct tu_ring *r)
{
	munmap(r->sq, r->sq_sz);
	munmap(r->cq, r->cq_sz);
	munmap(r->sqes, r->sqes_sz);
	if (r->ours)
		nvr_uring_close(r->fd);
	else
		close(r->fd);
}

static inline int tu_enter(struct tu_ring *r, unsigned sub, unsigned min, unsigned flags,
			   const void *arg, size_t argsz)
{
	return r->ours ? nvr_uring_enter(r->fd, sub, min, flags, arg, argsz)
		       : k_enter(r->fd, sub, min, flags, arg, argsz);
}

static inline int tu_register(struct tu_ring *r, unsigned op, void *arg, unsigned nr)
{
	return r->ours ? nvr_uring_register(r->fd, op, arg, nr) : k_register(r->fd, op, arg, nr);
}

/* Next SQE (zeroed), wired into the SQ array; publish with tu_flush(). */
static inline struct io_uring_sqe *tu_sqe(struct tu_ring *r)
{
	unsigned mask = r->p.sq_entries - 1;
	unsigned head = __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);
	if (r->sqe_tail - head >= r->p.sq_entries)
		return NULL;
	unsigned idx = r->sqe_tail & mask;
	size_t one = (r->p.flags & IORING_SETUP_SQE128) ? 2 : 1;
	struct io_uring_sqe *s = &r->sqes[idx * one];
	memset(s, 0, sizeof(*s) * one);
	if (r->sq_array)
		r->sq_array[idx] = idx;
	r->sqe_tail++;
	return s;
}

static inline void tu_flush(struct tu_ring *r)
{
	/* release: SQE contents before the tail */
	__atomic_store_n(r->sq_tail, r->sqe_tail, __ATOMIC_RELEASE);
}

/* Pop one CQE if present. */
static inline bool tu_cqe(struct tu_ring *r, struct io_uring_cqe *out)
{
	unsigned head = *r->cq_head;
	if (head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE))
		return false;
	size_t one = (r->p.flags & IORING_SETUP_CQE32) ? 2 : 1;
	*out = r->cqes[(head & (r->p.cq_entries - 1)) * one];
	__atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
	return true;
}

#endif
