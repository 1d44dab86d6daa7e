/* SPDX-License-Identifier: MIT */
/*
 * I/O queue pairs: creation and deletion (NVMe 2.0 §3.3, §5.4–5.7), the
 * submission path, the completion loop (§4.6) and what happens when a
 * command does not end well: a retry of a retryable status, the command
 * timeout (Abort, then a controller reset), the queue pair's own recovery
 * after a reset. See qpair.h; the queue mechanics are driver/queue.h's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver/ctrlr.h"
#include "driver/mmio.h"
#include "driver/prp.h"
#include "driver/qpair.h"
#include "pci/log.h"

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* Polls between the periodic checks (CSTS.CFS, a removed device, command
 * timeouts): an MMIO read or a clock read each, too dear for every poll. */
#define NVR_CHECK_INTERVAL 1024
/* ... and, with nothing outstanding, for a removal only (a read() each). */
#define NVR_IDLE_CHECK_INTERVAL 65536


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
	while (req->left && !req->res && qp->q.nfree_tr) {
		struct nvr_tracker *tr = nvr_queue_tracker_get(&qp->q);
		int rc = nvr_req_build_cmd(qp, req, tr, &tr->cmd);

		if (unlikely(rc)) {
			nvr_queue_tracker_put(&qp->q, tr);
			req->res = rc;
			break;
		}
		tr->req = req;
		req->inflight++;
		nvr_queue_post(&qp->q, tr);
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

/* The doorbell may be rung: the controller is live and this queue pair
 * has its queues in it (not failed, no reset since it last recreated
 * them). */
static inline bool qp_may_ring(struct nvr_qpair *qp)
{
	return !qp->fail_err &&
	       atomic_load_explicit(&qp->ctrlr->reset_seq, memory_order_relaxed) == qp->reset_seq &&
	       !atomic_load_explicit(&qp->ctrlr->failed, memory_order_relaxed);
}

NVR_API void nvr_qpair_kick(struct nvr_qpair *qp)
{
	if (qp->q.sq_tail == qp->q.sq_db_tail || unlikely(!qp_may_ring(qp)))
		return;
	nvr_queue_ring(&qp->q);
}

/* ---- completion ---------------------------------------------------------- */

static void end_cmd(struct nvr_qpair *qp, struct nvr_tracker *tr, int res, uint16_t status,
		    uint32_t dw0)
{
	struct nvr_req *req = tr->req;

	nvr_queue_tracker_put(&qp->q, tr);
	if (unlikely(res) && !req->res) {
		req->res = res;
		req->status = status;
	}
	req->dw0 = dw0;
	if (--req->inflight == 0 && !req->queued)
		req_finish(qp, req);
}

/*
 * Linux's nvme_decide_disposition(): a failed command is sent again
 * unless the controller said Do Not Retry or it was sent
 * NVR_MAX_RETRIES times more already (nvme_max_retries, 5). The delay the
 * controller asks for (CRD, an index into Identify's CRDT, 100 ms units)
 * is waited out first.
 */
static __attribute__((noinline)) void cmd_failed(struct nvr_qpair *qp, struct nvr_tracker *tr,
						 uint16_t st, uint32_t dw0)
{
	struct nvr_ctrlr *ctrlr = qp->ctrlr;

	if (!NVME_CQE_DNR(st) && tr->retries < NVR_MAX_RETRIES && !qp->fail_err) {
		unsigned crd = NVME_CQE_CRD(st);
		uint32_t delay = crd ? ctrlr->crdt_ms[crd - 1] : 0;

		tr->retries++;
		qp->stats.retries++;
		if (delay) {
			tr->resend = true;
			tr->seen_ms = nvr_now_ms() + delay;   /* resend at */
			qp->ndelayed++;
		} else {
			nvr_queue_repost(&qp->q, tr);
		}
		return;
	}
	uint16_t status = (uint16_t)NVME_STATUS(st);
	end_cmd(qp, tr, nvr_status_errno(status), status, dw0);
}

/* The completion function of the I/O queue (inlined into the reap loop). */
static inline __attribute__((always_inline)) void io_cpl(void *arg, struct nvr_tracker *tr,
							 uint16_t st, uint32_t dw0)
{
	struct nvr_qpair *qp = arg;

	if (unlikely(NVME_STATUS(st))) {
		cmd_failed(qp, tr, st, dw0);
		return;
	}
	end_cmd(qp, tr, 0, 0, dw0);
}

/* Retries whose delay has passed go out again. */
static void resend_delayed(struct nvr_qpair *qp)
{
	uint64_t now = nvr_now_ms();

	for (uint32_t i = 0; i < qp->q.ntr && qp->ndelayed; i++) {
		struct nvr_tracker *tr = &qp->q.tr[i];

		if (tr->req && tr->resend && now >= tr->seen_ms) {
			tr->resend = false;
			qp->ndelayed--;
			nvr_queue_repost(&qp->q, tr);
		}
	}
}

/* End every command and request with @err (controller failed: -EIO, a
 * removed device: -ENODEV, teardown: -ECANCELED). Only once the device can
 * no longer touch their buffers: the SQ was deleted, or the controller was
 * quiesced. The qpair accepts nothing afterwards. */
static void fail_all(struct nvr_qpair *qp, int err)
{
	if (!qp->fail_err)
		qp->fail_err = err;
	for (uint32_t i = 0; i < qp->q.ntr; i++) {
		struct nvr_tracker *tr = &qp->q.tr[i];
		struct nvr_req *req = tr->req;

		if (!req)
			continue;
		if (tr->resend) {
			tr->resend = false;
			qp->ndelayed--;
		}
		req->left = 0;
		end_cmd(qp, tr, err, 0, 0);
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

/* ---- timeouts and recovery ---------------------------------------------- */

/* Abort completions are not waited for: if the command ends, it ends
 * through its own CQE; if not, the next expiry resets the controller. */
static void abort_sent(struct nvr_admin_op *op, uint16_t st, uint32_t dw0)
{
	(void)op;
	(void)st;
	(void)dw0;
}
static struct nvr_admin_op abort_op = { .done = abort_sent };

/*
 * The command timeout, as Linux's nvme_timeout(): a command in flight
 * longer than the controller's I/O timeout gets an Abort; if it is still
 * there one timeout later, the controller is reset (and the command sent
 * again after it, as a retry). A command's clock starts when a scan first
 * sees it, so no command expires early; scans are at most a quarter of
 * the timeout (and 1 s) apart.
 */
static void timeout_scan(struct nvr_qpair *qp)
{
	struct nvr_ctrlr *ctrlr = qp->ctrlr;
	uint64_t now = nvr_now_ms();
	uint32_t tmo = ctrlr->io_timeout_ms;

	if (now < qp->next_scan_ms || !tmo)
		return;
	qp->next_scan_ms = now + (tmo / 4 < 1000 ? tmo / 4 : 1000);
	for (uint32_t i = 0; i < qp->q.ntr; i++) {
		struct nvr_tracker *tr = &qp->q.tr[i];

		if (!tr->req || tr->resend)
			continue;
		if (!tr->seen_ms) {
			tr->seen_ms = now;
			continue;
		}
		if (now - tr->seen_ms < tmo)
			continue;
		qp->stats.timeouts++;
		if (!tr->aborted) {
			nvr_log(NVR_LOG_WARN, "%s: I/O command 0x%02x CID %u QID %u timed out after "
				"%u ms: aborting", ctrlr->info.bdf, tr->cmd.opc, tr->cid, qp->qid, tmo);
			tr->aborted = true;
			tr->seen_ms = now;
			struct nvme_sqe abort = { .opc = NVME_ADM_ABORT,
						  .cdw10 = (uint32_t)tr->cid << 16 | qp->qid };
			if (nvr_admin_submit(ctrlr, &abort, &abort_op) == 0)
				qp->stats.aborts++;
			continue;
		}
		char why[96];
		snprintf(why, sizeof(why), "I/O command 0x%02x CID %u QID %u timed out again "
			 "after an Abort", tr->cmd.opc, tr->cid, qp->qid);
		nvr_ctrlr_reset_for(ctrlr, why);
		return;   /* the queue pair recovers at its next poll */
	}
}

/* Every NVR_CHECK_INTERVAL polls while commands are outstanding: the
 * controller's fatal status, a removal, the command timeout. */
static __attribute__((noinline)) void periodic_check(struct nvr_qpair *qp)
{
	if (nvr_ctrlr_check_fatal(qp->ctrlr))
		return;
	timeout_scan(qp);
}

/* Every so many polls: while commands are outstanding, periodic_check();
 * idle, only whether a removal waits for us to let the device go. */
static inline void poll_tick(struct nvr_qpair *qp)
{
	uint32_t n = ++qp->polls;

	if (qp->q.nfree_tr < qp->q.ntr) {
		if (unlikely(n % NVR_CHECK_INTERVAL == 0))
			periodic_check(qp);
	} else if (unlikely(n % NVR_IDLE_CHECK_INTERVAL == 0)) {
		nvr_ctrlr_check_removed(qp->ctrlr);
	}
}

/*
 * After a controller reset (ctrlr->reset_seq moved on): the controller has
 * no I/O queues any more and did nothing with the commands that were in
 * them. Recreate this queue pair's queues, empty, and send its commands
 * again, each as one more retry (Linux cancels them with "host aborted"
 * and retries them the same way); a command out of retries ends with
 * -EIO. Runs on the queue pair's own thread, from its poll: nothing else
 * touches the queue pair.
 */
static void recover(struct nvr_qpair *qp, uint32_t seq)
{
	struct nvr_ctrlr *ctrlr = qp->ctrlr;
	int rc;

	nvr_queue_rewind(&qp->q);
	qp->sq_created = qp->cq_created = false;
	/* no other reset between this one and the queues' creation: else
	 * they would be created in a controller about to lose them */
	nvr_ctrlr_enter(ctrlr);
	if (atomic_load_explicit(&ctrlr->reset_seq, memory_order_acquire) != seq) {
		nvr_ctrlr_leave(ctrlr);
		return;   /* another reset came: the next poll recovers from it */
	}
	rc = nvr_admin_create_cq(ctrlr, qp->qid, qp->q.entries, qp->q.cq_iova);
	if (rc == 0) {
		qp->cq_created = true;
		rc = nvr_admin_create_sq(ctrlr, qp->qid, qp->q.entries, qp->q.sq_iova, qp->qid);
	}
	if (rc == 0)
		qp->reset_seq = seq;
	nvr_ctrlr_leave(ctrlr);
	if (rc) {
		nvr_log(NVR_LOG_ERR, "%s: cannot recreate I/O queue %u after the reset (%d): "
			"its commands fail with EIO", ctrlr->info.bdf, qp->qid, rc);
		fail_all(qp, -EIO);
		return;
	}
	qp->sq_created = true;
	qp->stats.resets++;
	for (uint32_t i = 0; i < qp->q.ntr; i++) {
		struct nvr_tracker *tr = &qp->q.tr[i];

		if (!tr->req || tr->resend)
			continue;   /* free, or waiting for its delay anyway */
		if (tr->retries >= NVR_MAX_RETRIES) {
			end_cmd(qp, tr, -EIO, NVME_SC_HOST_ABORTED, 0);
			continue;
		}
		tr->retries++;
		qp->stats.retries++;
		nvr_queue_repost(&qp->q, tr);
	}
}

/* nvr_qpair_poll() with something to do: a dead queue pair, SQEs to
 * ring, a CQE to reap, requests waiting for a tracker, retries waiting,
 * a reset to recover from. Out of line, so that the empty poll (most
 * polls: the device is slower than the loop asking it) pays for no frame
 * of its own. */
static __attribute__((noinline)) int poll_work(struct nvr_qpair *qp, uint32_t max, uint32_t seq)
{
	struct nvr_ctrlr *ctrlr = qp->ctrlr;
	uint32_t n = 0;

	if (unlikely(qp->fail_err))
		return qp->fail_err;
	if (unlikely(nvr_ctrlr_failed(ctrlr))) {
		fail_all(qp, ctrlr->fail_errno);
		return qp->fail_err;
	}
	if (unlikely(seq != qp->reset_seq)) {
		if (seq & 1)
			return 0;   /* a reset is under way: wait for it */
		recover(qp, seq);
		if (qp->fail_err)
			return qp->fail_err;
	}
	if (unlikely(qp->ndelayed))
		resend_delayed(qp);
	if (qp->q.sq_tail != qp->q.sq_db_tail)
		nvr_queue_ring(&qp->q);
	if (nvr_queue_cqe_ready(&qp->q))
		n = nvr_queue_reap(&qp->q, max, io_cpl, qp);
	/* the CQ head doorbell goes with the next ring */
	if (unlikely(qp->pending_head && qp->q.nfree_tr))
		resume_pending(qp);
	poll_tick(qp);
	if (unlikely(nvr_ctrlr_failed(ctrlr))) {
		fail_all(qp, ctrlr->fail_errno);
		return qp->fail_err;
	}
	return (int)n;
}

NVR_API int nvr_qpair_poll(struct nvr_qpair *qp, uint32_t max)
{
	struct nvr_ctrlr *ctrlr = qp->ctrlr;
	/* Acquire: a reset's end (or "failed") is published after the
	 * controller was brought back (or quiesced), so what this queue pair
	 * does next sees that done. */
	uint32_t seq = atomic_load_explicit(&ctrlr->reset_seq, memory_order_acquire);

	/* The empty poll, decided by one test: nothing to attend to, no
	 * reset, nothing unrung, no request waiting, and the next CQ entry's
	 * phase tag still old. What is left of poll_work() for it is the
	 * periodic check. */
	if (unlikely(qp->fail_err || qp->ndelayed || seq != qp->reset_seq ||
		     qp->q.sq_tail != qp->q.sq_db_tail || qp->pending_head ||
		     nvr_queue_cqe_ready(&qp->q) || nvr_ctrlr_failed(ctrlr)))
		return poll_work(qp, max, seq);
	poll_tick(qp);   /* what it finds (a reset, a failure) the next poll acts on */
	return 0;
}

NVR_API int nvr_qpair_get_stats(const struct nvr_qpair *qp, struct nvr_qpair_stats *st)
{
	if (!qp || !st)
		return -EINVAL;
	*st = qp->stats;
	st->bad_cids = qp->q.bad_cids;
	return 0;
}

/* ---- allocation and teardown ---------------------------------------------- */

static void qpair_free_mem(struct nvr_qpair *qp)
{
	nvr_queue_free_mem(&qp->q, qp->ctrlr->dev, qp->ctrlr->dma_unsafe);
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

static int qpair_init_mem(struct nvr_qpair *qp, uint32_t entries)
{
	uint32_t ntr = entries - 1 < NVR_QPAIR_MAX_TRACKERS ? entries - 1 : NVR_QPAIR_MAX_TRACKERS;
	int rc = nvr_queue_alloc_mem(&qp->q, qp->ctrlr->dev, qp->qid, entries, ntr, true);

	if (rc)
		return rc;
	qp->reqs = calloc(ntr, sizeof(*qp->reqs));
	if (!qp->reqs)
		return -ENOMEM;
	for (uint32_t i = 0; i < ntr; i++)
		nvr_qpair_req_put(qp, &qp->reqs[ntr - 1 - i]);
	return 0;
}

NVR_API int nvr_qpair_alloc(struct nvr_ctrlr *ctrlr, uint32_t entries, struct nvr_qpair **out)
{
	if (ctrlr && ctrlr->remote)
		return -EOPNOTSUPP;   /* served by an owner: no device here */
	struct nvr_qpair *qp;
	uint16_t qid;
	int rc;

	if (!ctrlr || !out)
		return -EINVAL;
	*out = NULL;
	if (nvr_ctrlr_failed(ctrlr))
		return ctrlr->fail_errno;
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
	rc = qpair_init_mem(qp, entries);
	if (rc)
		goto fail;
	qp->q.sq_db = (volatile uint32_t *)(ctrlr->bar + nvme_sq_tail_db(qid, ctrlr->dstrd));
	qp->q.cq_db = (volatile uint32_t *)(ctrlr->bar + nvme_cq_head_db(qid, ctrlr->dstrd));

	/* The queues belong to the controller incarnation they were created
	 * in: no reset may run between reading reset_seq and creating them. */
	nvr_ctrlr_enter(ctrlr);
	qp->reset_seq = atomic_load_explicit(&ctrlr->reset_seq, memory_order_acquire);
	/* The CQ must exist before an SQ can name it (§5.5). */
	rc = nvr_admin_create_cq(ctrlr, qid, entries, qp->q.cq_iova);
	if (rc) {
		nvr_ctrlr_leave(ctrlr);
		rc = nvr_admin_errno(rc);
		goto fail;
	}
	qp->cq_created = true;
	rc = nvr_admin_create_sq(ctrlr, qid, entries, qp->q.sq_iova, qid);
	if (rc) {
		rc = nvr_admin_errno(rc);
		nvr_qpair_delete_cq(qp);
		nvr_ctrlr_leave(ctrlr);
		goto fail;
	}
	qp->sq_created = true;
	nvr_ctrlr_leave(ctrlr);

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

/* Queues of an older controller incarnation (a reset since) are gone
 * already: nothing to delete. */
static bool qp_queues_live(struct nvr_qpair *qp)
{
	return !nvr_ctrlr_failed(qp->ctrlr) &&
	       atomic_load_explicit(&qp->ctrlr->reset_seq, memory_order_acquire) == qp->reset_seq;
}

int nvr_qpair_delete_sq(struct nvr_qpair *qp)
{
	int rc = 0;

	if (qp->sq_created && qp_queues_live(qp))
		rc = nvr_admin_errno(nvr_admin_delete_queue(qp->ctrlr, NVME_ADM_DELETE_SQ,
							    qp->qid));
	qp->sq_created = false;
	return rc;
}

int nvr_qpair_delete_cq(struct nvr_qpair *qp)
{
	int rc = 0;

	if (qp->cq_created && qp_queues_live(qp))
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
	 * quiesced, or reset): nothing more can complete. Whatever is left
	 * ends, callbacks included, before the memory goes. */
	fail_all(qp, nvr_ctrlr_failed(ctrlr) ? ctrlr->fail_errno : -ECANCELED);
	qpair_free_mem(qp);
	qid_put(ctrlr, qid);
}

NVR_API int nvr_qpair_free(struct nvr_qpair *qp)
{
	int rc, rc2;

	if (!qp)
		return -EINVAL;
	nvr_ctrlr_enter(qp->ctrlr);   /* a reset midway would make the deletions miss */
	rc = nvr_qpair_delete_sq(qp);
	rc2 = nvr_qpair_delete_cq(qp);
	nvr_ctrlr_leave(qp->ctrlr);
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
	return qp->q.ntr;
}
