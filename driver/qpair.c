/* SPDX-License-Identifier: MIT */
/*
 * I/O queue pairs: creation and deletion (NVMe 2.0 §3.3, §5.4–5.7), the
 * submission path and the completion loop (§4.6). See qpair.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "driver/ctrlr.h"
#include "driver/mmio.h"
#include "driver/prp.h"
#include "driver/qpair.h"

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* Empty polls between CSTS.CFS checks (an MMIO read each). */
#define NVR_CFS_CHECK_INTERVAL 1024

/* ---- requests ---------------------------------------------------------- */

/* The request is done: release its slot first (the callback may submit
 * again), then call back once. */
static void req_finish(struct nvr_qpair *qp, struct nvr_req *req)
{
	struct nvr_cpl cpl = { .res = req->res, .status = req->status, .dw0 = req->dw0 };
	nvr_cb cb = req->cb;
	void *cb_arg = req->cb_arg;

	nvr_qpair_req_put(qp, req);
	if (cb)
		cb(cb_arg, &cpl);
}

static void pending_push(struct nvr_qpair *qp, struct nvr_req *req)
{
	req->next = NULL;
	req->queued = true;
	if (qp->pending_tail)
		qp->pending_tail->next = req;
	else
		qp->pending_head = req;
	qp->pending_tail = req;
}

static struct nvr_req *pending_pop(struct nvr_qpair *qp)
{
	struct nvr_req *req = qp->pending_head;

	qp->pending_head = req->next;
	if (!qp->pending_head)
		qp->pending_tail = NULL;
	req->queued = false;
	return req;
}

/* ---- submission ---------------------------------------------------------- */

/* Put as many of @req's commands into the SQ as there are free trackers.
 * The doorbell is rung later, once per batch (nvr_qpair_kick()). */
static void submit_cmds(struct nvr_qpair *qp, struct nvr_req *req)
{
	while (req->left && !req->res && qp->nfree_tr) {
		uint16_t cid = qp->free_tr[qp->nfree_tr - 1];
		struct nvr_tracker *tr = &qp->tr[cid];
		/* built in place: the slot past the tail is not the device's
		 * until the doorbell, so a command that fails to build leaves
		 * nothing behind */
		struct nvme_sqe *cmd = &qp->sq[qp->sq_tail];
		int rc = nvr_req_build_cmd(qp, req, tr, cmd);

		if (unlikely(rc)) {
			req->res = rc;
			break;
		}
		qp->nfree_tr--;
		tr->req = req;
		req->inflight++;
		cmd->cid = cid;
		/* trackers <= entries - 1, so the tail never catches the head */
		if (++qp->sq_tail == qp->entries)
			qp->sq_tail = 0;
	}
	if (req->res)
		req->left = 0;   /* after an error, send nothing more */
}

int nvr_qpair_submit(struct nvr_qpair *qp, struct nvr_req *req)
{
	/* Requests already waiting go first: FIFO, nobody starves. */
	if (unlikely(qp->pending_head)) {
		pending_push(qp, req);
		return 0;
	}
	submit_cmds(qp, req);
	if (unlikely(req->inflight == 0 && req->res)) {
		int rc = req->res;   /* nothing went out: fail synchronously */
		nvr_qpair_req_put(qp, req);
		return rc;
	}
	if (unlikely(req->left))
		pending_push(qp, req);
	return 0;
}

/* Continue pending requests in order while trackers last. */
static void resume_pending(struct nvr_qpair *qp)
{
	struct nvr_req *req;

	while ((req = qp->pending_head) != NULL) {
		submit_cmds(qp, req);
		if (req->left)
			return;   /* out of trackers; keep the order */
		pending_pop(qp);
		if (req->inflight == 0)
			req_finish(qp, req);
	}
}

NVR_API void nvr_qpair_kick(struct nvr_qpair *qp)
{
	/* A failed controller is disabled: its queues are gone. */
	if (qp->sq_tail == qp->sq_db_tail || qp->fail_err ||
	    unlikely(atomic_load_explicit(&qp->ctrlr->failed, memory_order_relaxed)))
		return;
	/* Consumed CQ entries are handed back lazily, here and not by the
	 * poll that consumed them, and only once half the CQ or the room
	 * below needs it: under emulation every doorbell is an exit that
	 * takes QEMU's big lock, and one right after a completion delays the
	 * next command. The CQ cannot fill (§3.3.1.2): the entries the device
	 * counts as used are at most those we consumed but did not report
	 * plus one per busy tracker; new commands become visible only below,
	 * after this check, and between kicks that sum does not grow
	 * (consuming an entry moves it from one term to the other). */
	/* both heads are in [0, entries): one wrap at most, no division */
	uint32_t unrung = qp->cq_head >= qp->cq_db_head
			  ? (uint32_t)(qp->cq_head - qp->cq_db_head)
			  : (uint32_t)(qp->cq_head + qp->entries - qp->cq_db_head);
	if (unrung && (unrung >= qp->entries / 2 ||
		       unrung + (qp->ntr - qp->nfree_tr) > qp->entries - 1)) {
		nvr_dma_release();   /* CQEs consumed before the device reuses them */
		nvr_mmio_doorbell(qp->cq_db, qp->cq_head);
		qp->cq_db_head = qp->cq_head;
	}
	nvr_dma_wmb();   /* SQEs in memory before the tail doorbell */
	nvr_mmio_doorbell(qp->sq_db, qp->sq_tail);
	qp->sq_db_tail = qp->sq_tail;
}

/* ---- completion ---------------------------------------------------------- */

static void tracker_release(struct nvr_qpair *qp, uint16_t cid)
{
	qp->tr[cid].req = NULL;
	qp->free_tr[qp->nfree_tr++] = cid;
}

static void complete_cmd(struct nvr_qpair *qp, uint16_t cid, uint16_t status, uint32_t dw0)
{
	struct nvr_req *req = qp->tr[cid].req;

	tracker_release(qp, cid);
	if (unlikely(status) && !req->res) {
		req->res = nvr_status_errno(status);
		req->status = status;
	}
	req->dw0 = dw0;
	if (--req->inflight == 0 && !req->queued)
		req_finish(qp, req);
}

/* End every command and request with @err (controller failed: -EIO,
 * teardown: -ECANCELED). Only once the device can no longer touch their
 * buffers: the SQ was deleted, or the controller was quiesced. The qpair
 * accepts nothing afterwards. */
static void fail_all(struct nvr_qpair *qp, int err)
{
	if (!qp->fail_err)
		qp->fail_err = err;
	for (uint32_t cid = 0; cid < qp->ntr; cid++) {
		struct nvr_req *req = qp->tr[cid].req;

		if (!req)
			continue;
		if (!req->res)
			req->res = err;
		req->left = 0;
		complete_cmd(qp, (uint16_t)cid, 0, 0);
	}
	while (qp->pending_head) {
		struct nvr_req *req = pending_pop(qp);

		if (!req->res)
			req->res = err;
		req->left = 0;
		if (req->inflight == 0)
			req_finish(qp, req);
	}
}

/* The CQEs the device posted, at most @max (0: all): their commands
 * complete. Out of line, so that an empty poll makes no call and saves
 * no registers. */
static __attribute__((noinline)) uint32_t reap_cqes(struct nvr_qpair *qp, uint32_t max)
{
	uint32_t n = 0;

	for (;;) {
		volatile struct nvme_cqe *cqe = &qp->cq[qp->cq_head];
		uint16_t st = cqe->status;

		if (NVME_CQE_PHASE(st) != qp->phase)
			break;
		nvr_dma_rmb();   /* CID, SQHD, DW0 after the phase tag */
		uint16_t cid = cqe->cid;
		uint16_t sqhd = cqe->sqhd;
		uint32_t dw0 = cqe->dw0;

		if (++qp->cq_head == qp->entries) {
			qp->cq_head = 0;
			qp->phase ^= 1;
		}
		if (likely(sqhd < qp->entries))
			qp->sq_head = sqhd;
		/* A device can lie: only CIDs we have in flight count. */
		if (unlikely(cid >= qp->ntr || !qp->tr[cid].req)) {
			qp->bad_cids++;
			continue;
		}
		complete_cmd(qp, cid, NVME_STATUS(st), dw0);
		if (++n == max)
			break;
	}
	return n;
}

/* nvr_qpair_poll() with something to do: a dead queue pair, SQEs to
 * ring, a CQE to reap or requests waiting for a tracker. Out of line, so
 * that the empty poll (most polls: the device is slower than the loop
 * asking it) pays for no frame of its own. */
static __attribute__((noinline)) int poll_work(struct nvr_qpair *qp, uint32_t max)
{
	struct nvr_ctrlr *ctrlr = qp->ctrlr;
	uint32_t n = 0;

	if (unlikely(qp->fail_err))
		return qp->fail_err;
	if (qp->sq_tail != qp->sq_db_tail)   /* nvr_qpair_kick()'s first test, without the call */
		nvr_qpair_kick(qp);
	/* the next entry's phase tag says whether there is anything to reap */
	if (NVME_CQE_PHASE(((volatile struct nvme_cqe *)&qp->cq[qp->cq_head])->status) == qp->phase)
		n = reap_cqes(qp, max);
	/* the CQ head doorbell goes with the next nvr_qpair_kick() */
	if (unlikely(qp->pending_head && qp->nfree_tr))
		resume_pending(qp);

	if (n == 0 && qp->nfree_tr < qp->ntr &&
	    unlikely(++qp->idle_polls % NVR_CFS_CHECK_INTERVAL == 0))
		nvr_ctrlr_check_fatal(ctrlr);
	if (unlikely(nvr_ctrlr_failed(ctrlr))) {
		fail_all(qp, -EIO);
		return -EIO;
	}
	return (int)n;
}

NVR_API int nvr_qpair_poll(struct nvr_qpair *qp, uint32_t max)
{
	struct nvr_ctrlr *ctrlr = qp->ctrlr;

	/* The empty poll, decided by one test: not failed, nothing unrung,
	 * no request waiting, and the next CQ entry's phase tag still old.
	 * What is left of poll_work() for it is the fatal-status watch. */
	if (unlikely(qp->fail_err || qp->sq_tail != qp->sq_db_tail || qp->pending_head ||
		     NVME_CQE_PHASE(((volatile struct nvme_cqe *)&qp->cq[qp->cq_head])->status) ==
			     qp->phase))
		return poll_work(qp, max);
	/* Controller fatal status: seen by another qpair, or checked here
	 * now and then while commands are outstanding and nothing comes. */
	if (qp->nfree_tr < qp->ntr && unlikely(++qp->idle_polls % NVR_CFS_CHECK_INTERVAL == 0))
		nvr_ctrlr_check_fatal(ctrlr);
	/* Acquire: "failed" is published after the controller was disabled,
	 * so the buffers handed back below are out of the device's reach. */
	if (unlikely(nvr_ctrlr_failed(ctrlr))) {
		fail_all(qp, -EIO);
		return -EIO;
	}
	return 0;
}

/* ---- allocation and teardown ---------------------------------------------- */

static void qpair_free_mem(struct nvr_qpair *qp)
{
	nvr_ctrlr_dma_free(qp->ctrlr, qp->sq);
	nvr_ctrlr_dma_free(qp->ctrlr, qp->cq);
	nvr_ctrlr_dma_free(qp->ctrlr, qp->prp_block);
	free(qp->tr);
	free(qp->free_tr);
	free(qp->reqs);
	free(qp);
}

static void qid_put(struct nvr_ctrlr *ctrlr, uint16_t qid)
{
	pthread_mutex_lock(&ctrlr->qid_lock);
	ctrlr->qpairs[qid] = NULL;
	ctrlr->free_qids[ctrlr->nfree_qids++] = qid;
	pthread_mutex_unlock(&ctrlr->qid_lock);
}

static int qpair_init_mem(struct nvr_qpair *qp)
{
	struct nvr_pci_dev *dev = qp->ctrlr->dev;
	void *sq, *cq;
	int rc;

	rc = nvr_pci_dma_alloc_internal(dev, qp->entries * sizeof(struct nvme_sqe), &sq,
					&qp->sq_iova);
	if (rc)
		return rc;
	qp->sq = sq;
	rc = nvr_pci_dma_alloc_internal(dev, qp->entries * sizeof(struct nvme_cqe), &cq,
					&qp->cq_iova);
	if (rc)
		return rc;
	qp->cq = cq;
	rc = nvr_pci_dma_alloc_internal(dev, (size_t)qp->ntr * NVR_PAGE_SIZE, &qp->prp_block,
					&qp->prp_block_iova);
	if (rc)
		return rc;

	qp->tr = calloc(qp->ntr, sizeof(*qp->tr));
	qp->free_tr = calloc(qp->ntr, sizeof(*qp->free_tr));
	qp->reqs = calloc(qp->ntr, sizeof(*qp->reqs));
	if (!qp->tr || !qp->free_tr || !qp->reqs)
		return -ENOMEM;
	for (uint32_t i = 0; i < qp->ntr; i++) {
		qp->tr[i].prp_list = (uint64_t *)((uint8_t *)qp->prp_block + (size_t)i * NVR_PAGE_SIZE);
		qp->tr[i].prp_iova = qp->prp_block_iova + (uint64_t)i * NVR_PAGE_SIZE;
		/* popped from the end: CID 0 goes out first */
		qp->free_tr[i] = (uint16_t)(qp->ntr - 1 - i);
		nvr_qpair_req_put(qp, &qp->reqs[qp->ntr - 1 - i]);
	}
	qp->nfree_tr = qp->ntr;
	return 0;
}

NVR_API int nvr_qpair_alloc(struct nvr_ctrlr *ctrlr, uint32_t entries, struct nvr_qpair **out)
{
	struct nvr_qpair *qp;
	uint16_t qid;
	int rc;

	if (!ctrlr || !out)
		return -EINVAL;
	*out = NULL;
	if (nvr_ctrlr_failed(ctrlr))
		return -EIO;
	if (entries == 0)
		entries = ctrlr->opts.io_entries;
	if (entries > ctrlr->info.max_io_entries)
		entries = ctrlr->info.max_io_entries;
	if (entries > 65536)
		entries = 65536;
	if (entries < 2)
		entries = 2;

	pthread_mutex_lock(&ctrlr->qid_lock);
	if (ctrlr->nfree_qids == 0) {
		pthread_mutex_unlock(&ctrlr->qid_lock);
		return -EBUSY;
	}
	qid = ctrlr->free_qids[--ctrlr->nfree_qids];
	pthread_mutex_unlock(&ctrlr->qid_lock);

	qp = calloc(1, sizeof(*qp));
	if (!qp) {
		qid_put(ctrlr, qid);
		return -ENOMEM;
	}
	qp->ctrlr = ctrlr;
	qp->qid = qid;
	qp->entries = entries;
	qp->ntr = entries - 1 < NVR_QPAIR_MAX_TRACKERS ? entries - 1 : NVR_QPAIR_MAX_TRACKERS;
	qp->phase = 1;
	qp->sq_db = (volatile uint32_t *)(ctrlr->bar + nvme_sq_tail_db(qid, ctrlr->dstrd));
	qp->cq_db = (volatile uint32_t *)(ctrlr->bar + nvme_cq_head_db(qid, ctrlr->dstrd));
	rc = qpair_init_mem(qp);
	if (rc)
		goto fail;

	/* The CQ must exist before an SQ can name it (§5.5). */
	rc = nvr_admin_create_cq(ctrlr, qid, entries, qp->cq_iova);
	if (rc) {
		rc = nvr_admin_errno(rc);
		goto fail;
	}
	qp->cq_created = true;
	rc = nvr_admin_create_sq(ctrlr, qid, entries, qp->sq_iova, qid);
	if (rc) {
		rc = nvr_admin_errno(rc);
		nvr_qpair_delete_cq(qp);
		goto fail;
	}
	qp->sq_created = true;

	pthread_mutex_lock(&ctrlr->qid_lock);
	ctrlr->qpairs[qid] = qp;
	pthread_mutex_unlock(&ctrlr->qid_lock);
	*out = qp;
	return 0;

fail:
	qpair_free_mem(qp);
	qid_put(ctrlr, qid);
	return rc;
}

int nvr_qpair_delete_sq(struct nvr_qpair *qp)
{
	int rc = 0;

	if (qp->sq_created && !nvr_ctrlr_failed(qp->ctrlr))
		rc = nvr_admin_errno(nvr_admin_delete_queue(qp->ctrlr, NVME_ADM_DELETE_SQ,
							    qp->qid));
	qp->sq_created = false;
	return rc;
}

int nvr_qpair_delete_cq(struct nvr_qpair *qp)
{
	int rc = 0;

	if (qp->cq_created && !nvr_ctrlr_failed(qp->ctrlr))
		rc = nvr_admin_errno(nvr_admin_delete_queue(qp->ctrlr, NVME_ADM_DELETE_CQ,
							    qp->qid));
	qp->cq_created = false;
	return rc;
}

void nvr_qpair_destroy(struct nvr_qpair *qp)
{
	struct nvr_ctrlr *ctrlr = qp->ctrlr;
	uint16_t qid = qp->qid;

	/* The SQ is gone (deleted, or the controller failed and was
	 * quiesced): nothing more can complete. Whatever is left ends,
	 * callbacks included, before the memory goes. */
	fail_all(qp, nvr_ctrlr_failed(ctrlr) ? -EIO : -ECANCELED);
	qpair_free_mem(qp);
	qid_put(ctrlr, qid);
}

NVR_API int nvr_qpair_free(struct nvr_qpair *qp)
{
	int rc, rc2;

	if (!qp)
		return -EINVAL;
	rc = nvr_qpair_delete_sq(qp);
	rc2 = nvr_qpair_delete_cq(qp);
	/* A refused deletion leaves the queues, and any command still in
	 * them, live in the controller: quiesce it (CC.EN=0) before the
	 * callbacks run and the queue memory is freed. */
	if (rc || rc2)
		nvr_ctrlr_fail(qp->ctrlr, "I/O queue deletion failed");
	nvr_qpair_destroy(qp);
	return rc ? rc : rc2;
}

NVR_API uint32_t nvr_qpair_depth(const struct nvr_qpair *qp)
{
	return qp->ntr;
}
