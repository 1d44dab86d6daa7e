/* SPDX-License-Identifier: MIT */
/*
 * The queue engine (internal): one submission queue, its completion queue
 * and the trackers of the commands in flight, for the admin queue and the
 * I/O queues alike (NVMe 2.0 §3.3, §4.1, §4.2, §4.6). Phase tags, wraps,
 * doorbells, command IDs and the reap loop live here once; what a
 * completed command means (a user request, an admin waiter) is the
 * caller's, through the completion function given to nvr_queue_reap().
 *
 * Command IDs are the tracker index in the low 10 bits and a generation in
 * the high 6 that changes every time the tracker is reused, and free
 * trackers are reused oldest first: a late or duplicate completion of a
 * command that already ended names a CID no live command has, so it is
 * counted and dropped instead of completing a newer command.
 *
 * Every command sent is kept in its tracker (tr->cmd), so it can be sent
 * again unchanged: a retry after a retryable status, or after a controller
 * reset, when the queues are recreated empty.
 *
 * Not thread safe: the owner of the queue (one thread, or whoever holds
 * the admin queue lock) calls everything here.
 */
#ifndef NVRING_DRIVER_QUEUE_H
#define NVRING_DRIVER_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

#include "driver/mmio.h"
#include "driver/nvme_spec.h"
#include "pci/pci.h"

#define NVR_CID_IDX_BITS 10u
#define NVR_CID_IDX_MASK ((1u << NVR_CID_IDX_BITS) - 1)
#define NVR_CID_GENS     63u   /* generations 0..62: CID FFFFh never used */

/* Trackers per queue at most: the CID index field. */
#define NVR_QUEUE_MAX_TRACKERS (1u << NVR_CID_IDX_BITS)

struct nvr_req;
struct nvr_admin_op;

/* One command slot. Its PRP list page doubles as the DSM range buffer. */
struct nvr_tracker {
	union {                    /* who waits for the command; NULL when free */
		struct nvr_req      *req;   /* I/O queues */
		struct nvr_admin_op *aop;   /* the admin queue */
	};
	uint16_t        cid;       /* CID of the command it holds now */
	uint8_t         retries;   /* times this command was sent again */
	bool            aborted;   /* an Abort was sent for it */
	bool            resend;    /* to be posted again (after a reset) */
	uint64_t        seen_ms;   /* first seen in flight by the timeout scan, 0: not yet */
	uint64_t       *prp_list;  /* 4 KiB of DMA memory */
	uint64_t        prp_iova;
	struct nvme_sqe cmd;       /* the command as sent (retry, resubmission) */
};

struct nvr_queue {
	uint16_t           qid;
	uint16_t           sq_tail, sq_db_tail; /* written / last rung */
	uint16_t           sq_head;             /* from CQE.SQHD */
	uint16_t           cq_head, cq_db_head;
	uint8_t            phase;
	uint32_t           entries;
	struct nvme_sqe   *sq;
	struct nvme_cqe   *cq;
	uint64_t           sq_iova, cq_iova;
	volatile uint32_t *sq_db, *cq_db;

	uint32_t           ntr;                 /* min(entries - 1, MAX_TRACKERS) */
	struct nvr_tracker *tr;
	uint16_t          *free_tr;             /* ring of free tracker indices, oldest first */
	uint32_t           free_head, nfree_tr;
	void              *prp_block;           /* ntr pages, one DMA block (0 pages: none) */
	uint64_t           prp_block_iova;

	uint64_t           bad_cids;            /* completions naming no live command */
};

/* Allocate @q's queues, trackers and (@prp: one page per tracker) PRP
 * pages in driver DMA memory of @dev; @ntr at most entries - 1 and
 * NVR_QUEUE_MAX_TRACKERS. Doorbells are set by the caller. 0 or -ENOMEM
 * (what is allocated stays for nvr_queue_free_mem()). */
int  nvr_queue_alloc_mem(struct nvr_queue *q, struct nvr_pci_dev *dev, uint16_t qid,
			 uint32_t entries, uint32_t ntr, bool prp);

/* Free what nvr_queue_alloc_mem() allocated; @dma_unsafe: the device may
 * still reach the DMA memory, so it stays mapped (until the device is
 * closed). */
void nvr_queue_free_mem(struct nvr_queue *q, struct nvr_pci_dev *dev, bool dma_unsafe);

/* The queues as a controller that has just (re)created them sees them:
 * empty, CQ phase 1. Trackers are untouched. Only while the device cannot
 * use the queues (disabled, or not created yet). */
void nvr_queue_rewind(struct nvr_queue *q);

/* @cid with the next generation: differs from every earlier CID of its
 * tracker but the last 62. */
static inline uint16_t nvr_cid_next(uint16_t cid)
{
	uint32_t gen = (uint32_t)(cid >> NVR_CID_IDX_BITS) + 1;

	if (gen == NVR_CID_GENS)
		gen = 0;
	return (uint16_t)(gen << NVR_CID_IDX_BITS | (cid & NVR_CID_IDX_MASK));
}

/* The oldest free tracker, or NULL. Its command is the caller's to fill
 * (tr->cmd, CID aside) before nvr_queue_post(). */
static inline struct nvr_tracker *nvr_queue_tracker_get(struct nvr_queue *q)
{
	if (__builtin_expect(!q->nfree_tr, 0))
		return NULL;
	uint16_t idx = q->free_tr[q->free_head];

	if (++q->free_head == q->ntr)
		q->free_head = 0;
	q->nfree_tr--;
	struct nvr_tracker *tr = &q->tr[idx];

	tr->cid = nvr_cid_next(tr->cid);
	tr->retries = 0;
	tr->aborted = false;
	tr->resend = false;
	tr->seen_ms = 0;
	return tr;
}

/* Give @tr back (its command ended). */
static inline void nvr_queue_tracker_put(struct nvr_queue *q, struct nvr_tracker *tr)
{
	uint32_t pos = q->free_head + q->nfree_tr;

	if (pos >= q->ntr)
		pos -= q->ntr;
	tr->req = NULL;
	q->free_tr[pos] = (uint16_t)(tr->cid & NVR_CID_IDX_MASK);
	q->nfree_tr++;
}

/* Copy @tr's command, with its CID, into the SQ slot at the tail. The
 * doorbell comes later (nvr_queue_ring()). Trackers are fewer than SQ
 * entries, so the tail never catches the head. */
static inline void nvr_queue_post(struct nvr_queue *q, struct nvr_tracker *tr)
{
	tr->cmd.cid = tr->cid;
	q->sq[q->sq_tail] = tr->cmd;
	if (++q->sq_tail == q->entries)
		q->sq_tail = 0;
}

/* Send @tr's command again under a new CID (a retry): a late completion
 * of the old one cannot then be taken for the new one. */
static inline void nvr_queue_repost(struct nvr_queue *q, struct nvr_tracker *tr)
{
	tr->cid = nvr_cid_next(tr->cid);
	tr->seen_ms = 0;
	tr->aborted = false;
	nvr_queue_post(q, tr);
}

/* Ring the SQ tail doorbell for what was posted since the last ring, and
 * hand consumed CQ entries back when they are needed (see queue.c). */
void nvr_queue_ring(struct nvr_queue *q);

/* The CQ head doorbell now, for everything consumed (admin queue, and
 * before a queue is deleted). */
static inline void nvr_queue_ring_cq(struct nvr_queue *q)
{
	if (q->cq_head != q->cq_db_head) {
		nvr_dma_release();   /* CQEs consumed before the device reuses them */
		nvr_mmio_doorbell(q->cq_db, q->cq_head);
		q->cq_db_head = q->cq_head;
	}
}

/* True if the device posted the next CQ entry (its phase tag is new). */
static inline bool nvr_queue_cqe_ready(const struct nvr_queue *q)
{
	return NVME_CQE_PHASE(((const volatile struct nvme_cqe *)&q->cq[q->cq_head])->status) ==
	       q->phase;
}

/* What a completion function gets: the tracker of the command (still
 * taken: the function puts it back or sends it again), the raw CQE status
 * field (phase bit included) and DW0. */
typedef void (*nvr_queue_cpl_fn)(void *arg, struct nvr_tracker *tr, uint16_t status,
				 uint32_t dw0);

/*
 * Reap the CQEs the device posted, at most @max (0: all), calling @fn for
 * each that names a live command. Inline with @fn a constant, so the I/O
 * queue's loop calls its completion directly. A device can lie: a CID
 * that names no live command (unknown, stale generation, duplicate) or an
 * SQ head out of range is counted and skipped.
 */
static inline __attribute__((always_inline)) uint32_t
nvr_queue_reap(struct nvr_queue *q, uint32_t max, nvr_queue_cpl_fn fn, void *arg)
{
	uint32_t n = 0;

	for (;;) {
		volatile struct nvme_cqe *cqe = &q->cq[q->cq_head];
		uint16_t st = cqe->status;

		if (NVME_CQE_PHASE(st) != q->phase)
			break;
		nvr_dma_rmb();   /* CID, SQHD, DW0 after the phase tag */
		uint16_t cid = cqe->cid;
		uint16_t sqhd = cqe->sqhd;
		uint32_t dw0 = cqe->dw0;

		if (++q->cq_head == q->entries) {
			q->cq_head = 0;
			q->phase ^= 1;
		}
		if (__builtin_expect(sqhd < q->entries, 1))
			q->sq_head = sqhd;
		uint32_t idx = cid & NVR_CID_IDX_MASK;
		if (__builtin_expect(idx >= q->ntr || !q->tr[idx].req || q->tr[idx].cid != cid, 0)) {
			q->bad_cids++;
			continue;
		}
		fn(arg, &q->tr[idx], st, dw0);
		if (++n == max)
			break;
	}
	return n;
}

#endif
