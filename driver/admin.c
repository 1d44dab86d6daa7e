/* SPDX-License-Identifier: MIT */
/*
 * The admin queue (NVMe 2.0 §3.3.1) on the queue engine, and the admin
 * commands the driver needs. Synchronous callers submit and then poll the
 * queue until their command is done, reaping for everyone; asynchronous
 * ones (an Abort) get a callback. Admin traffic is rare (bring-up, queue
 * creation, recovery): one lock, and simplicity over throughput.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "driver/ctrlr.h"
#include "driver/mmio.h"
#include "pci/log.h"

uint64_t nvr_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Where a synchronous waiter's command goes when the waiter gave up (a
 * timeout, a fatal status): its CQE, if it ever comes, ends here. */
static void orphan_done(struct nvr_admin_op *op, uint16_t st, uint32_t dw0)
{
	(void)op;
	(void)st;
	(void)dw0;
}
static struct nvr_admin_op orphan_op = { .done = orphan_done };

int nvr_adminq_init(struct nvr_ctrlr *ctrlr, uint32_t entries)
{
	struct nvr_adminq *aq = &ctrlr->adminq;
	int rc;

	rc = nvr_queue_alloc_mem(&aq->q, ctrlr->dev, 0, entries, entries - 1, false);
	if (rc) {
		nvr_queue_free_mem(&aq->q, ctrlr->dev, false);
		return rc;
	}
	aq->q.sq_db = (volatile uint32_t *)(ctrlr->bar + nvme_sq_tail_db(0, ctrlr->dstrd));
	aq->q.cq_db = (volatile uint32_t *)(ctrlr->bar + nvme_cq_head_db(0, ctrlr->dstrd));
	pthread_mutex_init(&aq->lock, NULL);
	return 0;
}

void nvr_adminq_fini(struct nvr_ctrlr *ctrlr)
{
	struct nvr_adminq *aq = &ctrlr->adminq;

	nvr_queue_free_mem(&aq->q, ctrlr->dev, ctrlr->dma_unsafe);
	pthread_mutex_destroy(&aq->lock);
}

static void admin_cpl(void *arg, struct nvr_tracker *tr, uint16_t st, uint32_t dw0)
{
	struct nvr_adminq *aq = arg;
	struct nvr_admin_op *op = tr->aop;

	nvr_queue_tracker_put(&aq->q, tr);
	if (op->done) {
		op->done(op, st, dw0);
	} else {
		op->st = st;
		op->dw0 = dw0;
		op->completed = true;
	}
}

/* Under aq->lock. */
static void adminq_reap(struct nvr_adminq *aq)
{
	if (nvr_queue_cqe_ready(&aq->q) && nvr_queue_reap(&aq->q, 0, admin_cpl, aq))
		nvr_queue_ring_cq(&aq->q);   /* entries are few: hand them back at once */
}

void nvr_adminq_cancel_all(struct nvr_ctrlr *ctrlr)
{
	struct nvr_adminq *aq = &ctrlr->adminq;

	pthread_mutex_lock(&aq->lock);
	for (uint32_t i = 0; i < aq->q.ntr; i++) {
		struct nvr_tracker *tr = &aq->q.tr[i];

		if (tr->aop)
			admin_cpl(aq, tr, NVME_CQE_STATUS(NVME_SC_HOST_ABORTED), 0);
	}
	nvr_queue_rewind(&aq->q);
	pthread_mutex_unlock(&aq->lock);
}

/* Under aq->lock: post @cmd for @op and ring. */
static struct nvr_tracker *admin_post(struct nvr_ctrlr *ctrlr, const struct nvme_sqe *cmd,
				      struct nvr_admin_op *op, int *rc)
{
	struct nvr_adminq *aq = &ctrlr->adminq;
	struct nvr_tracker *tr;

	if (nvr_ctrlr_failed(ctrlr)) {
		*rc = ctrlr->fail_errno;
		return NULL;
	}
	adminq_reap(aq);   /* room for ours */
	tr = nvr_queue_tracker_get(&aq->q);
	if (!tr) {
		/* Only with many asynchronous commands (Aborts) unanswered. */
		*rc = -EBUSY;
		return NULL;
	}
	tr->cmd = *cmd;
	tr->aop = op;
	nvr_queue_post(&aq->q, tr);
	nvr_queue_ring(&aq->q);
	*rc = 0;
	return tr;
}

int nvr_admin_submit(struct nvr_ctrlr *ctrlr, const struct nvme_sqe *cmd, struct nvr_admin_op *op)
{
	int rc;

	nvr_ctrlr_enter(ctrlr);
	pthread_mutex_lock(&ctrlr->adminq.lock);
	admin_post(ctrlr, cmd, op, &rc);
	pthread_mutex_unlock(&ctrlr->adminq.lock);
	nvr_ctrlr_leave(ctrlr);
	return rc;
}

/* Under aq->lock: @op gives up on its command, which may still be live
 * in the controller (its CQE then goes to orphan_op). */
static void admin_abandon(struct nvr_tracker *tr, struct nvr_admin_op *op)
{
	if (tr->aop == op)
		tr->aop = &orphan_op;
}

int nvr_admin_exec(struct nvr_ctrlr *ctrlr, struct nvme_sqe *cmd, uint32_t *dw0)
{
	struct nvr_adminq *aq = &ctrlr->adminq;
	struct nvr_admin_op op = { 0 };
	struct nvr_tracker *tr;
	uint64_t deadline;
	unsigned spins = 0;
	int rc;

	pthread_mutex_lock(&aq->lock);
	tr = admin_post(ctrlr, cmd, &op, &rc);
	if (tr)
		cmd->cid = tr->cid;
	pthread_mutex_unlock(&aq->lock);
	if (!tr)
		return rc;

	deadline = nvr_now_ms() + ctrlr->admin_timeout_ms;
	for (;;) {
		pthread_mutex_lock(&aq->lock);
		if (!op.completed && !nvr_ctrlr_failed(ctrlr))
			adminq_reap(aq);
		bool done = op.completed;
		if (!done && nvr_ctrlr_failed(ctrlr)) {
			admin_abandon(tr, &op);
			pthread_mutex_unlock(&aq->lock);
			return ctrlr->fail_errno;
		}
		pthread_mutex_unlock(&aq->lock);
		if (done)
			break;
		if (++spins < 1000) {
			sched_yield();
			continue;
		}
		bool fatal = nvr_ctrlr_check_fatal(ctrlr);
		bool late = nvr_now_ms() > deadline;
		if (fatal || late) {
			pthread_mutex_lock(&aq->lock);
			done = op.completed;   /* it may have made it after all */
			if (!done)
				admin_abandon(tr, &op);
			pthread_mutex_unlock(&aq->lock);
			if (done)
				break;
			if (fatal)
				return nvr_ctrlr_failed(ctrlr) ? ctrlr->fail_errno : -EIO;
			/* Linux resets the controller on an admin timeout: the
			 * command is then dead, its memory safe to reuse once
			 * the reset has run (at the caller's leave, or now). */
			nvr_log(NVR_LOG_ERR, "%s: admin command 0x%02x timed out after %u ms",
				ctrlr->info.bdf, cmd->opc, ctrlr->admin_timeout_ms);
			atomic_store(&ctrlr->reset_wanted, true);
			return -ETIMEDOUT;
		}
		struct timespec ts = { .tv_sec = 0, .tv_nsec = 50000 };
		nanosleep(&ts, NULL);
	}
	if (dw0)
		*dw0 = op.dw0;
	return (int)NVME_STATUS(op.st);
}

int nvr_admin_cmd(struct nvr_ctrlr *ctrlr, struct nvme_sqe *cmd, uint32_t *dw0)
{
	int rc;

	nvr_ctrlr_enter(ctrlr);
	rc = nvr_admin_exec(ctrlr, cmd, dw0);
	nvr_ctrlr_leave(ctrlr);
	return rc;
}

/* Identify (NVMe 2.0 §5.17): 4 KiB into the page at @iova. @csi selects
 * the command set for the CNS values that need one (CDW11 bits 31:24). */
int nvr_admin_identify(struct nvr_ctrlr *ctrlr, uint8_t cns, uint8_t csi, uint32_t nsid,
		       uint64_t iova)
{
	struct nvme_sqe c = { .opc = NVME_ADM_IDENTIFY, .nsid = nsid, .prp1 = iova,
			      .cdw10 = cns, .cdw11 = (uint32_t)csi << NVME_IDENTIFY_CSI_SHIFT };

	return nvr_admin_cmd(ctrlr, &c, NULL);
}

/* Set Features (NVMe 2.0 §5.27). */
int nvr_admin_set_features(struct nvr_ctrlr *ctrlr, uint8_t fid, uint32_t cdw11, uint32_t *dw0)
{
	struct nvme_sqe c = { .opc = NVME_ADM_SET_FEATURES, .cdw10 = fid, .cdw11 = cdw11 };

	return nvr_admin_cmd(ctrlr, &c, dw0);
}

/* Create I/O Completion Queue (NVMe 2.0 §5.4): physically contiguous,
 * interrupts on with MSI-X vector @iv, or off (@iv < 0: the queue is only
 * polled). */
int nvr_admin_create_cq(struct nvr_ctrlr *ctrlr, uint16_t qid, uint32_t entries, uint64_t iova,
			int iv)
{
	/* CDW11: IV in bits 31:16, IEN bit 1, PC bit 0 (§5.4) */
	struct nvme_sqe c = {
		.opc = NVME_ADM_CREATE_CQ, .prp1 = iova,
		.cdw10 = (entries - 1) << 16 | qid,
		.cdw11 = NVME_QUEUE_PHYS_CONTIG |
			 (iv >= 0 ? (uint32_t)iv << 16 | NVME_CQ_IRQ_ENABLED : 0),
	};

	return nvr_admin_cmd(ctrlr, &c, NULL);
}

/* Create I/O Submission Queue (NVMe 2.0 §5.5): bound to CQ @cqid,
 * physically contiguous, priority ignored (round robin arbitration). */
int nvr_admin_create_sq(struct nvr_ctrlr *ctrlr, uint16_t qid, uint32_t entries, uint64_t iova,
			uint16_t cqid)
{
	struct nvme_sqe c = {
		.opc = NVME_ADM_CREATE_SQ, .prp1 = iova,
		.cdw10 = (entries - 1) << 16 | qid,
		.cdw11 = (uint32_t)cqid << 16 | NVME_QUEUE_PHYS_CONTIG,
	};

	return nvr_admin_cmd(ctrlr, &c, NULL);
}

/* Delete I/O SQ / CQ (NVMe 2.0 §5.6, §5.7). */
int nvr_admin_delete_queue(struct nvr_ctrlr *ctrlr, uint8_t opc, uint16_t qid)
{
	struct nvme_sqe c = { .opc = opc, .cdw10 = qid };

	return nvr_admin_cmd(ctrlr, &c, NULL);
}
