/* SPDX-License-Identifier: MIT */
/*
 * io_uring_setup(2): the parameters as the kernel computes them, the ring
 * layout as the kernel lays out struct io_rings, the memfd that carries it.
 *
 * Layout (Linux 6.1 io_uring/io_uring.c rings_size(), struct io_rings):
 *   sq.head 0, sq.tail 4, cq.head 8, cq.tail 12, sq_ring_mask 16,
 *   cq_ring_mask 20, sq_ring_entries 24, cq_ring_entries 28, sq_dropped 32,
 *   sq_flags 36, cq_flags 40, cq_overflow 44, cqes 64 (cache line),
 *   then the SQ index array at ALIGN(size, 64) where size is 64 + CQEs
 *   (doubled as a whole with CQE32, as the kernel does).
 * memfd: SQ ring at IORING_OFF_SQ_RING (0), CQ ring at IORING_OFF_CQ_RING,
 * SQEs at IORING_OFF_SQES; the holes are never touched (sparse).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "abi/ring.h"
#include "driver/ctrlr.h"

/* Offsets inside the rings object (the kernel's struct io_rings). */
enum {
	RO_SQ_HEAD = 0, RO_SQ_TAIL = 4, RO_CQ_HEAD = 8, RO_CQ_TAIL = 12,
	RO_SQ_MASK = 16, RO_CQ_MASK = 20, RO_SQ_ENTRIES = 24, RO_CQ_ENTRIES = 28,
	RO_SQ_DROPPED = 32, RO_SQ_FLAGS = 36, RO_CQ_FLAGS = 40, RO_CQ_OVERFLOW = 44,
	RO_CQES = 64,
};
#define CACHELINE 64u

static uint32_t roundup_pow2(uint32_t v)
{
	return v <= 1 ? 1 : 1u << (32 - __builtin_clz(v - 1));
}

/* The kernel's io_uring_setup() + io_uring_create() checks, in its order. */
static int ur_params_compute(unsigned entries, struct io_uring_params *p)
{
	for (unsigned i = 0; i < sizeof(p->resv) / sizeof(p->resv[0]); i++)
		if (p->resv[i])
			return -EINVAL;
	if (p->flags & ~UR_SETUP_OK)
		return -EINVAL;
	if (!entries)
		return -EINVAL;
	if (entries > UR_MAX_ENTRIES) {
		if (!(p->flags & IORING_SETUP_CLAMP))
			return -EINVAL;
		entries = UR_MAX_ENTRIES;
	}
	p->sq_entries = roundup_pow2(entries);
	if (p->flags & IORING_SETUP_CQSIZE) {
		if (!p->cq_entries)
			return -EINVAL;
		if (p->cq_entries > UR_MAX_CQ_ENTRIES) {
			if (!(p->flags & IORING_SETUP_CLAMP))
				return -EINVAL;
			p->cq_entries = UR_MAX_CQ_ENTRIES;
		}
		p->cq_entries = roundup_pow2(p->cq_entries);
		if (p->cq_entries < p->sq_entries)
			return -EINVAL;
	} else {
		p->cq_entries = 2 * p->sq_entries;
	}
	if (p->flags & IORING_SETUP_SQPOLL) {
		/* "IPI related flags don't make sense with SQPOLL" */
		if (p->flags & (IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
				IORING_SETUP_DEFER_TASKRUN))
			return -EINVAL;
	} else if (!(p->flags & IORING_SETUP_COOP_TASKRUN)) {
		if ((p->flags & IORING_SETUP_TASKRUN_FLAG) &&
		    !(p->flags & IORING_SETUP_DEFER_TASKRUN))
			return -EINVAL;
	}
	if ((p->flags & IORING_SETUP_DEFER_TASKRUN) && !(p->flags & IORING_SETUP_SINGLE_ISSUER))
		return -EINVAL;
	if (p->flags & IORING_SETUP_SQPOLL) {
		if (p->flags & IORING_SETUP_SQ_AFF) {
			if (p->sq_thread_cpu >= (unsigned)CPU_SETSIZE ||
			    (long)p->sq_thread_cpu >= sysconf(_SC_NPROCESSORS_ONLN))
				return -EINVAL;
		}
	} else if (p->flags & IORING_SETUP_SQ_AFF) {
		return -EINVAL;
	}
	return 0;
}

/* Size of the rings object and the SQ array's offset in it. */
static size_t ur_rings_size(uint32_t flags, uint32_t sq_entries, uint32_t cq_entries,
			    size_t *sq_array_off)
{
	size_t off = RO_CQES + (size_t)cq_entries * sizeof(struct io_uring_cqe);
	if (flags & IORING_SETUP_CQE32)
		off <<= 1;
	off = (off + CACHELINE - 1) & ~(size_t)(CACHELINE - 1);
	if (flags & IORING_SETUP_NO_SQARRAY) {
		*sq_array_off = 0;
		return off;
	}
	*sq_array_off = off;
	return off + (size_t)sq_entries * sizeof(uint32_t);
}

static size_t page_align(size_t v)
{
	return (v + UR_PAGE - 1) & ~(size_t)(UR_PAGE - 1);
}

static void ur_fill_offsets(struct io_uring_params *p, size_t sq_array_off)
{
	memset(&p->sq_off, 0, sizeof(p->sq_off));
	p->sq_off.head = RO_SQ_HEAD;
	p->sq_off.tail = RO_SQ_TAIL;
	p->sq_off.ring_mask = RO_SQ_MASK;
	p->sq_off.ring_entries = RO_SQ_ENTRIES;
	p->sq_off.flags = RO_SQ_FLAGS;
	p->sq_off.dropped = RO_SQ_DROPPED;
	p->sq_off.array = (uint32_t)sq_array_off;
	memset(&p->cq_off, 0, sizeof(p->cq_off));
	p->cq_off.head = RO_CQ_HEAD;
	p->cq_off.tail = RO_CQ_TAIL;
	p->cq_off.ring_mask = RO_CQ_MASK;
	p->cq_off.ring_entries = RO_CQ_ENTRIES;
	p->cq_off.overflow = RO_CQ_OVERFLOW;
	p->cq_off.cqes = RO_CQES;
	p->cq_off.flags = RO_CQ_FLAGS;
	p->features = UR_FEATURES;
}

/* The constant words, in both regions (the kernel has one object). */
static void ur_fill_constants(uint8_t *base, const struct ur_ring *r)
{
	*(uint32_t *)(base + RO_SQ_MASK) = r->sq_entries - 1;
	*(uint32_t *)(base + RO_CQ_MASK) = r->cq_entries - 1;
	*(uint32_t *)(base + RO_SQ_ENTRIES) = r->sq_entries;
	*(uint32_t *)(base + RO_CQ_ENTRIES) = r->cq_entries;
}

static void ur_ring_unmap(struct ur_ring *r)
{
	if (r->sq_ring && r->sq_ring != MAP_FAILED)
		munmap(r->sq_ring, r->sq_ring_sz);
	if (r->cq_ring && r->cq_ring != MAP_FAILED)
		munmap(r->cq_ring, r->cq_ring_sz);
	if (r->sqes && (void *)r->sqes != MAP_FAILED)
		munmap(r->sqes, r->sqes_sz);
	if (r->cstate)
		munmap(r->cstate, UR_STATE_BYTES);
	r->cstate = NULL;
}

static int ur_ring_map(struct ur_ring *r, int fd, size_t rings_sz, size_t sq_array_off)
{
	r->sq_ring_sz = r->cq_ring_sz = page_align(rings_sz);
	r->sqes_sz = page_align((size_t)r->sq_entries * (sizeof(struct io_uring_sqe) << r->sqe_shift));
	off_t size = (off_t)(IORING_OFF_SQES + r->sqes_sz);
	if (r->client)
		size = (off_t)(NVS_OFF_STATE + UR_STATE_BYTES);
	if (ftruncate(fd, size) < 0)
		return -errno;
	if (r->client) {
		/* The client must not shrink what we map (a SIGBUS here) nor
		 * grow it; its writes into the ring are its own business. */
		if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
			return -errno;
		void *st = mmap(NULL, UR_STATE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
				(off_t)NVS_OFF_STATE);
		if (st == MAP_FAILED)
			return -ENOMEM;
		r->cstate = st;
		r->cstate->magic = NVS_STATE_MAGIC;
		r->cstate->nslots = UR_STATE_SLOTS;
		r->cstate->cqe_size = (uint32_t)sizeof(struct io_uring_cqe) << r->cqe_shift;
	}
	r->sq_ring = mmap(NULL, r->sq_ring_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
			  fd, IORING_OFF_SQ_RING);
	r->cq_ring = mmap(NULL, r->cq_ring_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
			  fd, IORING_OFF_CQ_RING);
	r->sqes = mmap(NULL, r->sqes_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
		       fd, IORING_OFF_SQES);
	if (r->sq_ring == MAP_FAILED || r->cq_ring == MAP_FAILED || (void *)r->sqes == MAP_FAILED)
		return -ENOMEM;

	r->sq_khead = (_Atomic uint32_t *)(r->sq_ring + RO_SQ_HEAD);
	r->sq_ktail = (_Atomic uint32_t *)(r->sq_ring + RO_SQ_TAIL);
	r->sq_kflags = (_Atomic uint32_t *)(r->sq_ring + RO_SQ_FLAGS);
	r->sq_kdropped = (_Atomic uint32_t *)(r->sq_ring + RO_SQ_DROPPED);
	r->sq_array = (r->flags & IORING_SETUP_NO_SQARRAY) ? NULL
			: (uint32_t *)(r->sq_ring + sq_array_off);
	r->cq_khead = (_Atomic uint32_t *)(r->cq_ring + RO_CQ_HEAD);
	r->cq_ktail = (_Atomic uint32_t *)(r->cq_ring + RO_CQ_TAIL);
	r->cqes = (struct io_uring_cqe *)(r->cq_ring + RO_CQES);
	ur_fill_constants(r->sq_ring, r);
	ur_fill_constants(r->cq_ring, r);
	return 0;
}

/* Tear down in the order that keeps the device away from freed memory:
 * the queue pair first (deleting its SQ ends every command in it; their
 * callbacks run inside nvr_qpair_free()), then what the requests still
 * hold (namespace references, iovec arrays, bounce runs), then the bounce
 * pool and the registered buffers the device could have been sent to. */
static void ur_ring_free(struct ur_ring *r)
{
	ur_sqpoll_stop(r);
	if (r->qp)
		nvr_qpair_free(r->qp);
	r->qp = NULL;
	r->in_device = 0;
	ur_kring_close(r);
	ur_release_all_reqs(r);
	ur_unregister_all(r);
	ur_pool_fini(r);
	ur_reqs_free_all(r);
	ur_ring_unmap(r);
	if (r->obj.fd >= 0)
		close(r->obj.fd);
	if (r->client)
		ur_client_put(r->client);
	free(r);
}

/* Bounce pool pages per ring: 4 per queue slot (16 KiB requests at full
 * depth), at least 1 MiB and at most 8 MiB of pinned memory. A request
 * larger than the pool gets a DMA buffer of its own (abi/bounce.c). */
static uint32_t ur_pool_pages(uint32_t qdepth)
{
	uint64_t pages = (uint64_t)qdepth * 4;
	return pages < 256 ? 256 : pages > 2048 ? 2048 : (uint32_t)pages;
}

static int ur_setup(struct nvr_ctrlr *ctrlr, unsigned entries, struct io_uring_params *p,
		    struct ur_client *client);

int ur_setup_served(struct nvr_ctrlr *ctrlr, unsigned entries, struct io_uring_params *p,
		    struct ur_client *client)
{
	return ur_setup(ctrlr, entries, p, client);
}

NVR_API int nvr_uring_setup(struct nvr_ctrlr *ctrlr, unsigned entries, struct io_uring_params *p)
{
	if (ctrlr && nvr_ctrlr_is_remote(ctrlr))
	{
		ur_client_hook(ctrlr);
		return ur_client_setup(ctrlr, entries, p);   /* an owner serves it (client.c) */
	}
	return ur_setup(ctrlr, entries, p, NULL);
}

static int ur_setup(struct nvr_ctrlr *ctrlr, unsigned entries, struct io_uring_params *p,
		    struct ur_client *client)
{
	if (!p)
		return -EFAULT;
	int ret = ur_params_compute(entries, p);
	if (ret < 0)
		return ret;
	if (!ctrlr)
		return -EINVAL;

	struct ur_ring *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->obj.kind = UR_RING;
	r->obj.fd = -1;
	atomic_init(&r->obj.refs, 1);
	r->ctrlr = ctrlr;
	if (client) {
		atomic_fetch_add_explicit(&client->refs, 1, memory_order_relaxed);
		r->client = client;
	}
	r->flags = p->flags;
	r->sq_entries = p->sq_entries;
	r->cq_entries = p->cq_entries;
	r->sqe_shift = (p->flags & IORING_SETUP_SQE128) ? 1 : 0;
	r->cqe_shift = (p->flags & IORING_SETUP_CQE32) ? 1 : 0;
	r->sq_idle_ms = p->sq_thread_idle ? p->sq_thread_idle : 1000;  /* kernel: HZ */
	r->sq_cpu = (p->flags & IORING_SETUP_SQ_AFF) ? (int)p->sq_thread_cpu : -1;
	atomic_init(&r->disabled, (p->flags & IORING_SETUP_R_DISABLED) != 0);
	ur_lock_init(&r->lock);
	r->eventfd = -1;

	const struct nvr_ctrlr_info *ci = nvr_ctrlr_get_info(ctrlr);
	r->vwc = ci && ci->vwc;

	size_t sq_array_off;
	size_t rings_sz = ur_rings_size(p->flags, r->sq_entries, r->cq_entries, &sq_array_off);

	int fd = ur_memfd_flags("[io_uring]", client ? MFD_ALLOW_SEALING : 0);
	if (fd < 0) {
		if (client)
			ur_client_put(client);
		free(r);
		return fd;
	}
	r->obj.fd = fd;
	ret = ur_ring_map(r, fd, rings_sz, sq_array_off);
	if (ret < 0)
		goto fail;
	ret = ur_reqs_grow(r, r->sq_entries + r->cq_entries);
	if (ret < 0)
		goto fail;
	uint32_t depth = r->cq_entries;
	if (ci && ci->max_io_entries && depth > ci->max_io_entries)
		depth = ci->max_io_entries;
	ret = nvr_qpair_alloc(ctrlr, depth, &r->qp);
	if (ret < 0) {
		r->qp = NULL;
		goto fail;
	}
	r->qdepth = nvr_qpair_depth(r->qp);
	ret = ur_pool_init(r, ur_pool_pages(r->qdepth));
	if (ret < 0)
		goto fail;
	if (r->flags & IORING_SETUP_SQPOLL) {
		ret = ur_sqpoll_start(r);
		if (ret < 0)
			goto fail;
	}
	ret = ur_fdtab_put(&r->obj);
	if (ret < 0)
		goto fail;
	ur_fill_offsets(p, sq_array_off);
	return fd;
fail:
	ur_ring_free(r);
	return ret;
}

#define UR_CLOSE_WAIT_NS (5ull * 1000000000)

NVR_API int nvr_uring_close(int fd)
{
	int err;
	struct ur_ring *r = ur_ring_get(fd, &err);
	if (!r)
		return ur_remote_close(fd);   /* served by an owner, or -EBADF */
	ur_fdtab_del(fd);
	ur_sqpoll_stop(r);
	/* Let the commands in the device complete (the kernel, too, waits
	 * for a block request it cannot cancel); nothing new is started
	 * (links, drains and retries are dropped, as the kernel cancels
	 * them). After UR_CLOSE_WAIT_NS the rest is ended by deleting the
	 * queue, which is safe either way: see ur_ring_free(). */
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (r->in_device) {
		nvr_qpair_poll(r->qp, 0);
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((uint64_t)(t.tv_sec - t0.tv_sec) * 1000000000ull + (uint64_t)t.tv_nsec -
		    (uint64_t)t0.tv_nsec > UR_CLOSE_WAIT_NS)
			break;
	}
	ur_ring_free(r);
	return 0;
}
