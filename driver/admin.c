/* SPDX-License-Identifier: MIT */
/*
 * The admin queue (NVMe 2.0 §3.3.1) and the admin commands the driver
 * needs. Commands run synchronously, one at a time under adminq.lock, with
 * a bounded poll: admin traffic is rare (bring-up, queue creation), so
 * simplicity wins over throughput here.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "driver/ctrlr.h"
#include "driver/mmio.h"

uint64_t nvr_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int nvr_adminq_init(struct nvr_ctrlr *ctrlr, uint32_t entries)
{
	struct nvr_adminq *aq = &ctrlr->adminq;
	void *sq, *cq;
	int rc;

	rc = nvr_pci_dma_alloc_internal(ctrlr->dev, entries * sizeof(struct nvme_sqe), &sq,
					&aq->sq_iova);
	if (rc)
		return rc;
	rc = nvr_pci_dma_alloc_internal(ctrlr->dev, entries * sizeof(struct nvme_cqe), &cq,
					&aq->cq_iova);
	if (rc) {
		nvr_pci_dma_free_internal(ctrlr->dev, sq);
		return rc;
	}
	aq->sq = sq;
	aq->cq = cq;
	aq->entries = (uint16_t)entries;  /* ≤ 4096 */
	aq->sq_tail = aq->sq_head = aq->cq_head = 0;
	aq->phase = 1;
	aq->next_cid = 0;
	aq->sq_db = (volatile uint32_t *)(ctrlr->bar + nvme_sq_tail_db(0, ctrlr->dstrd));
	aq->cq_db = (volatile uint32_t *)(ctrlr->bar + nvme_cq_head_db(0, ctrlr->dstrd));
	pthread_mutex_init(&aq->lock, NULL);
	return 0;
}

void nvr_adminq_fini(struct nvr_ctrlr *ctrlr)
{
	struct nvr_adminq *aq = &ctrlr->adminq;

	nvr_ctrlr_dma_free(ctrlr, aq->sq);
	nvr_ctrlr_dma_free(ctrlr, aq->cq);
	aq->sq = NULL;
	aq->cq = NULL;
	pthread_mutex_destroy(&aq->lock);
}

/* Reap one admin CQE if the controller has posted one. */
static bool adminq_reap(struct nvr_adminq *aq, struct nvme_cqe *out)
{
	volatile struct nvme_cqe *cqe = &aq->cq[aq->cq_head];
	uint16_t st = cqe->status;

	if (NVME_CQE_PHASE(st) != aq->phase)
		return false;
	nvr_dma_rmb();   /* the rest of the CQE after its phase tag */
	out->dw0 = cqe->dw0;
	out->sqhd = cqe->sqhd;
	out->cid = cqe->cid;
	out->status = st;
	if (++aq->cq_head == aq->entries) {
		aq->cq_head = 0;
		aq->phase ^= 1;
	}
	if (out->sqhd < aq->entries)
		aq->sq_head = out->sqhd;
	nvr_dma_release();   /* CQE read before the device may reuse its slot */
	nvr_mmio_doorbell(aq->cq_db, aq->cq_head);
	return true;
}

int nvr_admin_cmd(struct nvr_ctrlr *ctrlr, struct nvme_sqe *cmd, uint32_t *dw0)
{
	struct nvr_adminq *aq = &ctrlr->adminq;
	struct nvme_cqe cpl;
	uint64_t deadline;
	unsigned spins = 0;
	int rc;

	if (nvr_ctrlr_failed(ctrlr))
		return -EIO;
	pthread_mutex_lock(&aq->lock);
	if (nvr_ctrlr_failed(ctrlr)) {   /* failed while we waited for the lock */
		pthread_mutex_unlock(&aq->lock);
		return -EIO;
	}
	uint16_t next_tail = (uint16_t)((aq->sq_tail + 1) % aq->entries);
	if (next_tail == aq->sq_head) {
		/* Only possible after timed-out commands the controller
		 * never fetched. */
		pthread_mutex_unlock(&aq->lock);
		return -EBUSY;
	}
	cmd->cid = aq->next_cid++;
	if (aq->next_cid == 0xffff)   /* FFFFh is reserved (NVMe 2.0 §4.2, Error Information log) */
		aq->next_cid = 0;
	aq->sq[aq->sq_tail] = *cmd;
	aq->sq_tail = next_tail;
	nvr_dma_wmb();   /* SQE in memory before the doorbell announces it */
	nvr_mmio_doorbell(aq->sq_db, aq->sq_tail);

	deadline = nvr_now_ms() + ctrlr->admin_timeout_ms;
	for (;;) {
		if (adminq_reap(aq, &cpl)) {
			if (cpl.cid != cmd->cid)
				continue;   /* late completion of a timed-out command */
			if (dw0)
				*dw0 = cpl.dw0;
			rc = NVME_STATUS(cpl.status);
			break;
		}
		if (++spins < 1000) {
			sched_yield();
			continue;
		}
		if (nvr_ctrlr_check_fatal(ctrlr)) {
			rc = -EIO;
			break;
		}
		if (nvr_now_ms() > deadline) {
			/* The command is still live in the controller: a late
			 * Create CQ/SQ would build a queue on memory the caller
			 * frees next, a late Identify would overwrite reused
			 * scratch. Quiesce the controller before returning. */
			char why[64];
			snprintf(why, sizeof(why), "admin command 0x%02x timed out after %u ms",
				 cmd->opc, ctrlr->admin_timeout_ms);
			nvr_ctrlr_fail(ctrlr, why);
			rc = -ETIMEDOUT;
			break;
		}
		struct timespec ts = { .tv_sec = 0, .tv_nsec = 50000 };
		nanosleep(&ts, NULL);
	}
	pthread_mutex_unlock(&aq->lock);
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
 * interrupts off — nvring polls. */
int nvr_admin_create_cq(struct nvr_ctrlr *ctrlr, uint16_t qid, uint32_t entries, uint64_t iova)
{
	struct nvme_sqe c = {
		.opc = NVME_ADM_CREATE_CQ, .prp1 = iova,
		.cdw10 = (entries - 1) << 16 | qid,
		.cdw11 = NVME_QUEUE_PHYS_CONTIG,
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
