/* SPDX-License-Identifier: MIT */
/*
 * I/O queue pairs (internal). A queue pair owns an SQ and a CQ in DMA
 * memory, a fixed set of trackers (one per command that may be in flight,
 * CID = tracker index) and a fixed set of requests (one per user call).
 * A request larger than one command is split; its commands go out as
 * trackers allow and the rest waits in the qpair's FIFO of pending
 * requests, continued from nvr_qpair_poll(). Nothing here allocates,
 * locks or makes a system call after nvr_qpair_alloc().
 */
#ifndef NVRING_DRIVER_QPAIR_H
#define NVRING_DRIVER_QPAIR_H

#include <stdbool.h>
#include <stdint.h>

#include "driver/ctrlr.h"
#include "driver/nvme_spec.h"
#include "driver/prp.h"
#include "driver/queue.h"
#include "nvring/nvring.h"
#include "pci/pci.h"

struct nvr_ctrlr;

/* Trackers (commands in flight) per queue pair at most. Each pins a 4 KiB
 * PRP list page, so depth is capped here whatever the SQ size: 4 MiB of
 * PRP pages per queue pair at most. A larger SQ is still fine (fewer
 * trackers than entries keeps the queue from ever filling). */
#define NVR_QPAIR_MAX_TRACKERS NVR_QUEUE_MAX_TRACKERS

/* Segments a request keeps for its later commands: the cap on iovcnt and
 * on nvr_io()'s nseg (only the segments the transfer uses count). */
#define NVR_REQ_MAX_SEGS 32

/* One user call (read, write, flush, ...), possibly several commands. */
struct nvr_req {
	struct nvr_req *next;      /* free list or pending FIFO */
	nvr_cb          cb;
	void           *cb_arg;
	uint32_t        nsid;
	uint8_t         op;        /* enum nvr_io_op */
	uint8_t         lba_shift;
	bool            queued;    /* in the pending FIFO */
	uint32_t        inflight;  /* commands submitted, not completed */
	uint64_t        lba;       /* first block of the next command */
	uint32_t        left;      /* blocks not yet submitted (FLUSH: 1) */
	uint64_t        off;       /* byte offset into segs of the next command */
	int             res;       /* first error */
	uint16_t        status;    /* its NVMe status */
	uint32_t        dw0;       /* DW0 of the last completion */
	uint16_t        nseg;
	struct nvr_seg  segs[NVR_REQ_MAX_SEGS];
};

struct nvr_qpair {
	/* on a connected controller: an SQPOLL ring in the owner
	 * (driver/remote_qpair.c); nothing below is used then */
	struct nvr_rqp    *remote;
	struct nvr_queue   q;                   /* SQ, CQ, trackers: the engine */
	struct nvr_ctrlr  *ctrlr;
	uint16_t           qid;
	bool               sq_created, cq_created;
	uint32_t           reset_seq;           /* ctrlr->reset_seq acted on */

	struct nvr_req    *reqs;
	struct nvr_req    *free_reqs;
	struct nvr_req    *pending_head, *pending_tail;

	struct nvr_dma_tcache tcache;           /* last DMA mapping nvr_read() & co. hit */

	int                fail_err;            /* 0, or the errno everything ends with */
	uint32_t           polls;               /* for the periodic checks */
	uint64_t           next_scan_ms;        /* timeout scan not before */
	uint32_t           ndelayed;            /* trackers whose retry waits (CRD) */
	/* Interrupts: the CQ's MSI-X vector (ctrlr->irq_fds[iv] its eventfd),
	 * kept across resets (recover() creates the CQ with it again); -1
	 * with irq_fd -1: polled only. */
	int                iv;
	int                irq_fd;
	uint64_t           next_check_ms;       /* nvr_qpair_irq_arm()'s health checks */
	uint32_t           arms;                /* nvr_qpair_irq_arm() calls */
	struct nvr_qpair_stats stats;
};

/* The free request slot, or NULL (the caller returns -EAGAIN). */
static inline struct nvr_req *nvr_qpair_req_get(struct nvr_qpair *qp)
{
	struct nvr_req *req = qp->free_reqs;

	if (req)
		qp->free_reqs = req->next;
	return req;
}

/* Give a request slot back to the free list. */
static inline void nvr_qpair_req_put(struct nvr_qpair *qp, struct nvr_req *req)
{
	req->next = qp->free_reqs;
	qp->free_reqs = req;
}

/* The request fields every I/O starts from (req_start() in ns_cmd.c and
 * nvr_io_ring_rw() below): one command's worth of state, nothing done. */
static inline void nvr_req_init(struct nvr_req *req, uint8_t op, uint32_t nsid,
				uint32_t lba_shift, uint64_t lba, uint32_t nlb,
				nvr_cb cb, void *cb_arg)
{
	req->cb = cb;
	req->cb_arg = cb_arg;
	req->nsid = nsid;
	req->op = op;
	req->lba_shift = (uint8_t)lba_shift;
	req->queued = false;
	req->inflight = 0;
	req->lba = lba;
	req->left = nlb;
	req->off = 0;
	req->res = 0;
	req->status = 0;
	req->dw0 = 0;
	req->nseg = 0;
}

/* Start (or queue) a filled-in request. 0, or a negative errno when the
 * first command could not be built (the request is released). */
int nvr_qpair_submit(struct nvr_qpair *qp, struct nvr_req *req);

/* nvr_qpair_submit() for a filled-in Read/Write request (op, nsid, lba,
 * left = nlb; segments not needed) that is one command with its data in
 * one IOVA-contiguous range of @bytes, already checked as submit_rw()
 * checks segments: the command is built straight into the SQ slot when
 * nothing waits and a tracker is free, else it goes the general way.
 * Inline: it is the hot path of nvr_read()/nvr_write() and nvr_io(). */
static inline int nvr_qpair_submit_contig(struct nvr_qpair *qp, struct nvr_req *req,
					  uint64_t iova, uint32_t bytes)
{
	if (__builtin_expect(!!(qp->pending_head || !qp->q.nfree_tr), 0)) {
		req->segs[0] = (struct nvr_seg){ .iova = iova, .len = bytes };
		req->nseg = 1;
		return nvr_qpair_submit(qp, req);
	}
	/* What submit_cmds() and nvr_req_build_cmd() do for this request,
	 * without the segment walk, the switch on the opcode and a command
	 * built on the stack and copied. */
	struct nvr_tracker *tr = nvr_queue_tracker_get(&qp->q);
	uint32_t nlb = req->left;
	uint64_t prp1, prp2;

	nvr_prp_contig(iova, bytes, tr->prp_list, tr->prp_iova, &prp1, &prp2);
	tr->cmd = (struct nvme_sqe){
		.opc = req->op == NVR_IO_READ ? NVME_CMD_READ : NVME_CMD_WRITE,
		.nsid = req->nsid,
		.prp1 = prp1,
		.prp2 = prp2,
		.cdw10 = (uint32_t)req->lba,
		.cdw11 = (uint32_t)(req->lba >> 32),
		.cdw12 = nlb - 1,   /* 0's based */
	};
	nvr_queue_post(&qp->q, tr);
	tr->req = req;
	req->inflight = 1;
	req->lba += nlb;
	req->left = 0;
	req->off = bytes;
	return 0;
}


/*
 * nvr_io() for the io_uring ring's common SQE (abi/ops.c,
 * ur_submit_fixed()): a Read (@is_read) or Write of @bytes = nlb blocks,
 * nlb > 0, at @lba inside @ns (qp's controller's namespace, looked up
 * once when the file was opened: ctrlr->ns does not change after
 * nvr_ctrlr_init()), the data IOVA-contiguous at @iova. The ring has
 * checked all that already, so the namespace lookup, the opcode switch,
 * the zero/wrapping length test and the segment array go. Anything else
 * nvr_io() would refuse or do differently (a dead queue pair or
 * controller, a namespace with metadata, more than one command, an
 * address it refuses, no free request) is handed to nvr_io() itself: the
 * result is always what nvr_io() would return.
 */
static inline int nvr_io_ring_rw(struct nvr_qpair *qp, const struct nvr_ns *ns, bool is_read,
				 uint64_t lba, uint32_t bytes, uint64_t iova,
				 nvr_cb cb, void *cb_arg)
{
	const struct nvr_ctrlr *c = qp->ctrlr;
	uint32_t shift = ns->lba_shift, nlb = bytes >> shift;
	uint32_t max = c->info.max_xfer >> shift;   /* ns_cmd.c rw_max_blocks() */
	struct nvr_req *req = qp->free_reqs;

	if (__builtin_expect(!!(qp->fail_err ||
				atomic_load_explicit(&c->failed, memory_order_relaxed) ||
				ns->io_refused || !req || nlb > max || nlb > 65536u ||
				(iova & 3) || iova > UINT64_MAX - bytes ||
				(iova < c->internal_iova_hi && iova + bytes > c->internal_iova_lo)), 0)) {
		struct nvr_seg seg = { .iova = iova, .len = bytes };
		return nvr_io(qp, is_read ? NVR_IO_READ : NVR_IO_WRITE, ns->info.nsid, lba, nlb,
			      &seg, 1, cb, cb_arg);
	}
	qp->free_reqs = req->next;   /* nvr_qpair_req_get() */
	nvr_req_init(req, is_read ? NVR_IO_READ : NVR_IO_WRITE, ns->info.nsid, shift, lba, nlb,
		     cb, cb_arg);
	return nvr_qpair_submit_contig(qp, req, iova, bytes);
}

/* ns_cmd.c: the next command of @req into @cmd (CID left to the engine),
 * using @tr's PRP page; advances @req. 0 or a negative errno. */
int nvr_req_build_cmd(const struct nvr_qpair *qp, struct nvr_req *req,
		      struct nvr_tracker *tr, struct nvme_sqe *cmd);

/* Teardown (nvr_qpair_free()): the SQ, then the CQ, then
 * nvr_qpair_destroy() (end what is left with -ECANCELED, or -EIO on a
 * failed controller, and free). */
int  nvr_qpair_delete_sq(struct nvr_qpair *qp);
int  nvr_qpair_delete_cq(struct nvr_qpair *qp);
void nvr_qpair_destroy(struct nvr_qpair *qp);

#endif
