/* SPDX-License-Identifier: MIT */
/*
 * The queue engine: memory, rewind after a reset, and the doorbells. See
 * queue.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "driver/prp.h"
#include "driver/queue.h"

int nvr_queue_alloc_mem(struct nvr_queue *q, struct nvr_pci_dev *dev, uint16_t qid,
			uint32_t entries, uint32_t ntr, bool prp)
{
	void *sq, *cq;
	int rc;

	q->qid = qid;
	q->entries = entries;
	q->ntr = ntr;
	/* the device only reads SQs and PRP lists (and DSM ranges, which
	 * live in the PRP pages): read-only for it */
	rc = nvr_pci_dma_alloc_internal_ro(dev, entries * sizeof(struct nvme_sqe), &sq,
					   &q->sq_iova);
	if (rc)
		return rc;
	q->sq = sq;
	rc = nvr_pci_dma_alloc_internal(dev, entries * sizeof(struct nvme_cqe), &cq, &q->cq_iova);
	if (rc)
		return rc;
	q->cq = cq;
	if (prp) {
		rc = nvr_pci_dma_alloc_internal_ro(dev, (size_t)ntr * NVR_PAGE_SIZE, &q->prp_block,
						   &q->prp_block_iova);
		if (rc)
			return rc;
	}
	q->tr = calloc(ntr, sizeof(*q->tr));
	q->free_tr = calloc(ntr, sizeof(*q->free_tr));
	if (!q->tr || !q->free_tr)
		return -ENOMEM;
	for (uint32_t i = 0; i < ntr; i++) {
		if (prp) {
			q->tr[i].prp_list = (uint64_t *)((uint8_t *)q->prp_block +
							 (size_t)i * NVR_PAGE_SIZE);
			q->tr[i].prp_iova = q->prp_block_iova + (uint64_t)i * NVR_PAGE_SIZE;
		}
		/* generation NVR_CID_GENS - 1: the first use is generation 0,
		 * so the first commands carry CIDs 0, 1, 2, ... */
		q->tr[i].cid = (uint16_t)((NVR_CID_GENS - 1) << NVR_CID_IDX_BITS | i);
		q->free_tr[i] = (uint16_t)i;
	}
	q->free_head = 0;
	q->nfree_tr = ntr;
	nvr_queue_rewind(q);
	return 0;
}

void nvr_queue_free_mem(struct nvr_queue *q, struct nvr_pci_dev *dev, bool dma_unsafe)
{
	if (!dma_unsafe) {
		if (q->sq)
			nvr_pci_dma_free_internal(dev, q->sq);
		if (q->cq)
			nvr_pci_dma_free_internal(dev, q->cq);
		if (q->prp_block)
			nvr_pci_dma_free_internal(dev, q->prp_block);
	}
	q->sq = NULL;
	q->cq = NULL;
	q->prp_block = NULL;
	free(q->tr);
	free(q->free_tr);
	q->tr = NULL;
	q->free_tr = NULL;
}

void nvr_queue_rewind(struct nvr_queue *q)
{
	/* a new CQ's entries all carry phase 0: the device's first pass
	 * writes 1 (§4.6) */
	memset(q->cq, 0, q->entries * sizeof(struct nvme_cqe));
	q->sq_tail = q->sq_db_tail = q->sq_head = 0;
	q->cq_head = q->cq_db_head = 0;
	q->phase = 1;
}

void nvr_queue_ring(struct nvr_queue *q)
{
	if (q->sq_tail == q->sq_db_tail)
		return;
	/* Consumed CQ entries are handed back lazily, here and not by the
	 * poll that consumed them, and only once half the CQ or the room
	 * below needs it: under emulation every doorbell is an exit that
	 * takes QEMU's big lock, and one right after a completion delays the
	 * next command. The CQ cannot fill (§3.3.1.2): the entries the device
	 * counts as used are at most those we consumed but did not report
	 * plus one per busy tracker; new commands become visible only below,
	 * after this check, and between rings that sum does not grow
	 * (consuming an entry moves it from one term to the other). */
	/* both heads are in [0, entries): one wrap at most, no division */
	uint32_t unrung = q->cq_head >= q->cq_db_head
			  ? (uint32_t)(q->cq_head - q->cq_db_head)
			  : (uint32_t)(q->cq_head + q->entries - q->cq_db_head);
	if (unrung && (unrung >= q->entries / 2 ||
		       unrung + (q->ntr - q->nfree_tr) > q->entries - 1))
		nvr_queue_ring_cq(q);
	nvr_dma_wmb();   /* SQEs in memory before the tail doorbell */
	nvr_mmio_doorbell(q->sq_db, q->sq_tail);
	q->sq_db_tail = q->sq_tail;
}
