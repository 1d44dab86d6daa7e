/* SPDX-License-Identifier: MIT */
/*
 * The embedded API on a controller an owner serves (nvr_ctrlr_connect()):
 * a queue pair here is an SQPOLL ring in the owner (abi/serve_proto.h),
 * whose poller takes our SQEs and posts their CQEs while we only write and
 * read shared memory -- no system call per I/O, as with a queue pair of
 * our own. nvr_read()/nvr_write() become READ/WRITE SQEs on a descriptor
 * bound to the namespace (NVS_NS_BIND), readv/writev READV/WRITEV, flush
 * FSYNC, write zeroes FALLOCATE(ZERO_RANGE), deallocate
 * FALLOCATE(PUNCH_HOLE); nvr_qpair_poll() reaps CQEs and calls the
 * callbacks, and wakes the poller when it went to sleep (NEED_WAKEUP).
 * The owner copies the data between its DMA memory and ours, so "DMA
 * memory" here (nvr_dma_alloc()) is ordinary page-aligned memory: there is
 * no bus address on this side (nvr_io(), nvr_dma_iova(): -EOPNOTSUPP).
 * Completions carry the errno in cpl->res; cpl->status is 0 (the owner
 * reports errnos, as the kernel does).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "abi/serve_proto.h"
#include "driver/ctrlr.h"
#include "driver/qpair.h"

/* linux/falloc.h */
#define RQ_FL_KEEP_SIZE  0x01
#define RQ_FL_PUNCH_HOLE 0x02
#define RQ_FL_ZERO_RANGE 0x10

struct rq_slot {
	nvr_cb cb;
	void *arg;
	uint64_t want;            /* bytes a full transfer returns */
	struct iovec *iov;        /* readv/writev: our copy, read by the owner */
	uint32_t next_free;
	bool live;
};

struct nvr_rqp {
	struct nvr_ctrlr *c;
	int id, memfd;
	struct io_uring_params p;
	uint8_t *sq, *cq;
	size_t sq_sz, cq_sz, sqes_sz;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
	_Atomic uint32_t *sq_head, *sq_tail, *sq_flags, *cq_head, *cq_tail;
	uint32_t *sq_array;
	uint32_t sqe_tail;        /* next SQE slot (published at the next kick) */
	uint32_t depth, inflight;
	struct rq_slot *slots;
	uint32_t free_head;
	uint32_t idle_polls;      /* polls that found nothing while commands were out */
};

#define RQ_NONE UINT32_MAX

static int rq_map(struct nvr_rqp *q)
{
	const struct io_uring_params *p = &q->p;
	q->sq_sz = p->sq_off.array + p->sq_entries * sizeof(uint32_t);
	q->cq_sz = p->cq_off.cqes + p->cq_entries * sizeof(struct io_uring_cqe);
	q->sqes_sz = p->sq_entries * sizeof(struct io_uring_sqe);
	q->sq = mmap(NULL, q->sq_sz, PROT_READ | PROT_WRITE, MAP_SHARED, q->memfd, IORING_OFF_SQ_RING);
	q->cq = mmap(NULL, q->cq_sz, PROT_READ | PROT_WRITE, MAP_SHARED, q->memfd, IORING_OFF_CQ_RING);
	q->sqes = mmap(NULL, q->sqes_sz, PROT_READ | PROT_WRITE, MAP_SHARED, q->memfd, IORING_OFF_SQES);
	if (q->sq == MAP_FAILED || q->cq == MAP_FAILED || (void *)q->sqes == MAP_FAILED)
		return -ENOMEM;
	q->sq_head = (_Atomic uint32_t *)(q->sq + p->sq_off.head);
	q->sq_tail = (_Atomic uint32_t *)(q->sq + p->sq_off.tail);
	q->sq_flags = (_Atomic uint32_t *)(q->sq + p->sq_off.flags);
	q->sq_array = (uint32_t *)(q->sq + p->sq_off.array);
	q->cq_head = (_Atomic uint32_t *)(q->cq + p->cq_off.head);
	q->cq_tail = (_Atomic uint32_t *)(q->cq + p->cq_off.tail);
	q->cqes = (struct io_uring_cqe *)(q->cq + p->cq_off.cqes);
	return 0;
}

static void rq_unmap(struct nvr_rqp *q)
{
	if (q->sq && q->sq != MAP_FAILED)
		munmap(q->sq, q->sq_sz);
	if (q->cq && q->cq != MAP_FAILED)
		munmap(q->cq, q->cq_sz);
	if (q->sqes && (void *)q->sqes != MAP_FAILED)
		munmap(q->sqes, q->sqes_sz);
}

int nvr_remote_qpair_alloc(struct nvr_ctrlr *c, uint32_t entries, struct nvr_qpair **out)
{
	if (!out)
		return -EINVAL;
	if (entries < 2)
		entries = 2;
	if (entries > 4096)
		entries = 4096;
	struct nvr_qpair *qp = calloc(1, sizeof(*qp));
	struct nvr_rqp *q = calloc(1, sizeof(*q));
	if (!qp || !q) {
		free(qp);
		free(q);
		return -ENOMEM;
	}
	q->c = c;
	q->memfd = -1;
	q->id = -1;
	struct io_uring_params p = { .flags = IORING_SETUP_SQPOLL, .sq_thread_idle = 1000 };
	struct nvs_msg m = { .op = NVS_SETUP, .a = { entries } };
	int rc = nvr_remote_call(c, &m, &p, sizeof(p), &q->p, sizeof(q->p), -1, &q->memfd);
	if (rc >= 0 && q->memfd < 0)
		rc = -EPROTO;
	if (rc < 0)
		goto fail;
	q->id = rc;
	rc = rq_map(q);
	if (rc < 0)
		goto fail;
	q->depth = q->p.sq_entries - 1 < 1024 ? q->p.sq_entries - 1 : 1024;
	q->slots = calloc(q->depth, sizeof(*q->slots));
	if (!q->slots) {
		rc = -ENOMEM;
		goto fail;
	}
	for (uint32_t i = 0; i < q->depth; i++)
		q->slots[i].next_free = i + 1 < q->depth ? i + 1 : RQ_NONE;
	q->free_head = 0;
	q->sqe_tail = atomic_load_explicit(q->sq_tail, memory_order_relaxed);
	qp->remote = q;
	qp->ctrlr = c;
	*out = qp;
	return 0;
fail:
	if (q->id >= 0) {
		struct nvs_msg cm = { .op = NVS_CLOSE, .a = { q->id } };
		nvr_remote_call(c, &cm, NULL, 0, NULL, 0, -1, NULL);
	}
	rq_unmap(q);
	if (q->memfd >= 0)
		close(q->memfd);
	free(q->slots);
	free(q);
	free(qp);
	return rc;
}

/* Publish what was queued; wake the poller if it sleeps. */
static void rq_kick(struct nvr_rqp *q)
{
	if (atomic_load_explicit(q->sq_tail, memory_order_relaxed) != q->sqe_tail)
		/* release: the SQEs before the tail that hands them over */
		atomic_store_explicit(q->sq_tail, q->sqe_tail, memory_order_release);
	/* the flag after the tail (the poller sets it, then looks at the
	 * tail once more): a full fence between our store and our load */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(q->sq_flags, memory_order_relaxed) & IORING_SQ_NEED_WAKEUP) {
		struct nvs_msg m = { .op = NVS_ENTER, .a = { q->id, 0, 0, IORING_ENTER_SQ_WAKEUP } };
		nvr_remote_call(q->c, &m, NULL, 0, NULL, 0, -1, NULL);
	}
}

static int rq_reap(struct nvr_qpair *qp, uint32_t max)
{
	struct nvr_rqp *q = qp->remote;
	uint32_t head = atomic_load_explicit(q->cq_head, memory_order_relaxed), n = 0;
	/* acquire: the CQEs before the tail that hands them over */
	uint32_t tail = atomic_load_explicit(q->cq_tail, memory_order_acquire);
	while (head != tail && (!max || n < max)) {
		struct io_uring_cqe cqe = q->cqes[head & (q->p.cq_entries - 1)];
		head++;
		/* release: our read of the CQE before the slot goes back */
		atomic_store_explicit(q->cq_head, head, memory_order_release);
		if (cqe.user_data >= q->depth)
			continue;   /* not ours: ignore */
		struct rq_slot *s = &q->slots[cqe.user_data];
		if (!s->live)
			continue;   /* a hostile or confused owner: ignore */
		s->live = false;
		struct nvr_cpl cpl = { .res = cqe.res < 0 ? cqe.res :
				       (uint64_t)cqe.res == s->want ? 0 : -EIO };
		nvr_cb cb = s->cb;
		void *arg = s->arg;
		free(s->iov);
		s->iov = NULL;
		s->next_free = q->free_head;
		q->free_head = (uint32_t)cqe.user_data;
		q->inflight--;
		n++;
		if (cb)
			cb(arg, &cpl);
	}
	return (int)n;
}

/* The owner died (its process has exited): what it published is reaped,
 * every other command in flight ends with -ENODEV. */
static int rq_fail_all(struct nvr_qpair *qp)
{
	struct nvr_rqp *q = qp->remote;
	int n = rq_reap(qp, 0);
	for (uint32_t i = 0; i < q->depth; i++) {
		struct rq_slot *s = &q->slots[i];
		if (!s->live)
			continue;
		s->live = false;
		free(s->iov);
		s->iov = NULL;
		s->next_free = q->free_head;
		q->free_head = i;
		q->inflight--;
		n++;
		struct nvr_cpl cpl = { .res = -ENODEV };
		if (s->cb)
			s->cb(s->arg, &cpl);
	}
	return n;
}

int nvr_remote_qpair_poll(struct nvr_qpair *qp, uint32_t max)
{
	struct nvr_rqp *q = qp->remote;
	if (nvr_remote_dead(q->c))
		return q->inflight ? rq_fail_all(qp) : -ENODEV;
	rq_kick(q);
	int n = rq_reap(qp, max);
	if (n || !q->inflight) {
		q->idle_polls = 0;
		return n;
	}
	/* No system call while the owner's poller keeps up: whether it is
	 * still alive is asked only every so many empty polls. */
	if (++q->idle_polls % 4096 == 0 && nvr_remote_check_owner(q->c))
		return rq_fail_all(qp);
	return n;
}

void nvr_remote_qpair_kick(struct nvr_qpair *qp)
{
	rq_kick(qp->remote);
}

uint32_t nvr_remote_qpair_depth(const struct nvr_qpair *qp)
{
	return qp->remote->depth;
}

int nvr_remote_qpair_free(struct nvr_qpair *qp)
{
	struct nvr_rqp *q = qp->remote;
	/* what is in flight completes first (bounded: the owner's own
	 * timeouts end it, or its death) */
	for (int i = 0; q->inflight && i < 500000; i++) {
		nvr_remote_qpair_poll(qp, 0);
		if (q->inflight)
			usleep(10);
	}
	struct nvs_msg m = { .op = NVS_CLOSE, .a = { q->id } };
	nvr_remote_call(q->c, &m, NULL, 0, NULL, 0, -1, NULL);
	rq_unmap(q);
	close(q->memfd);
	for (uint32_t i = 0; i < q->depth; i++)
		free(q->slots[i].iov);
	free(q->slots);
	free(q);
	free(qp);
	return 0;
}

/* One SQE for slot @s: the common part. */
static struct io_uring_sqe *rq_sqe(struct nvr_rqp *q, uint32_t *slot)
{
	if (q->free_head == RQ_NONE || nvr_remote_dead(q->c))
		return NULL;
	uint32_t head = atomic_load_explicit(q->sq_head, memory_order_acquire);
	if (q->sqe_tail - head >= q->p.sq_entries)
		return NULL;
	*slot = q->free_head;
	uint32_t idx = q->sqe_tail & (q->p.sq_entries - 1);
	struct io_uring_sqe *sqe = &q->sqes[idx];
	memset(sqe, 0, sizeof(*sqe));
	q->sq_array[idx] = idx;
	return sqe;
}

static void rq_commit(struct nvr_rqp *q, uint32_t slot, nvr_cb cb, void *arg, uint64_t want)
{
	struct rq_slot *s = &q->slots[slot];
	q->free_head = s->next_free;
	s->cb = cb;
	s->arg = arg;
	s->want = want;
	s->live = true;
	q->sqe_tail++;
	q->inflight++;
}

int nvr_remote_qpair_io(struct nvr_qpair *qp, enum nvr_io_op op, uint32_t nsid, uint64_t lba,
			uint32_t nlb, const struct iovec *iov, int iovcnt, nvr_cb cb, void *cb_arg)
{
	struct nvr_rqp *q = qp->remote;
	const struct nvr_ns *ns = nvr_ctrlr_find_ns(q->c, nsid);
	if (!ns)
		return -EINVAL;
	if (nvr_remote_dead(q->c))
		return -ENODEV;
	int fd = nvr_remote_ns_fd(q->c, nsid);
	if (fd < 0)
		return fd;
	uint64_t off = lba << ns->lba_shift, bytes = (uint64_t)nlb << ns->lba_shift;
	uint32_t slot;
	struct io_uring_sqe *sqe = rq_sqe(q, &slot);
	if (!sqe)
		return nvr_remote_dead(q->c) ? -ENODEV : -EAGAIN;
	sqe->fd = fd;
	sqe->off = off;
	sqe->user_data = slot;
	uint64_t want = 0;
	switch (op) {
	case NVR_IO_READ:
	case NVR_IO_WRITE:
		if (iovcnt == 1) {
			sqe->opcode = op == NVR_IO_READ ? IORING_OP_READ : IORING_OP_WRITE;
			sqe->addr = (uintptr_t)iov[0].iov_base;
			sqe->len = (uint32_t)iov[0].iov_len;
			want = iov[0].iov_len;
		} else {
			struct iovec *copy = malloc((size_t)iovcnt * sizeof(*copy));
			if (!copy)
				return -ENOMEM;
			memcpy(copy, iov, (size_t)iovcnt * sizeof(*copy));
			for (int i = 0; i < iovcnt; i++)
				want += iov[i].iov_len;
			q->slots[slot].iov = copy;
			sqe->opcode = op == NVR_IO_READ ? IORING_OP_READV : IORING_OP_WRITEV;
			sqe->addr = (uintptr_t)copy;
			sqe->len = (uint32_t)iovcnt;
		}
		break;
	case NVR_IO_FLUSH:
		sqe->opcode = IORING_OP_FSYNC;
		sqe->off = 0;
		break;
	case NVR_IO_WRITE_ZEROES:
	case NVR_IO_WRITE_ZEROES_DEAC:
	case NVR_IO_DEALLOCATE:
		if (!nlb)
			return -EINVAL;
		sqe->opcode = IORING_OP_FALLOCATE;
		sqe->addr = bytes;     /* fallocate's length */
		sqe->len = RQ_FL_KEEP_SIZE |
			   (op == NVR_IO_WRITE_ZEROES ? RQ_FL_ZERO_RANGE : RQ_FL_PUNCH_HOLE);
		break;
	default:
		return -EINVAL;
	}
	rq_commit(q, slot, cb, cb_arg, want);
	return 0;
}
