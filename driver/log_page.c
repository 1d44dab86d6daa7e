/* SPDX-License-Identifier: MIT */
/*
 * Get Log Page (NVMe 2.0 §5.16) into driver DMA memory, copied out to the
 * caller: the Error Information and SMART / Health pages behind
 * `nvring log`, and the Error Information log's size from Identify.
 *
 * Each call has its own DMA page rather than the controller's Identify
 * scratch, so it needs no lock beyond the admin queue's.
 */
#include <errno.h>
#include <string.h>

#include "driver/ctrlr.h"

/* A 4 KiB driver-internal page: PRP1 alone describes it. */
static int log_dma_get(struct nvr_ctrlr *ctrlr, void **va, uint64_t *iova)
{
	return nvr_pci_dma_alloc_internal(ctrlr->dev, NVR_DMA_PAGE_SIZE, va, iova);
}

NVR_API int nvr_ctrlr_get_log_page(struct nvr_ctrlr *ctrlr, uint8_t lid, uint32_t nsid,
				   void *buf, size_t len)
{
	if (ctrlr && ctrlr->remote)
		return -EOPNOTSUPP;   /* served by an owner: no device here */
	struct nvme_sqe c = { .opc = NVME_ADM_GET_LOG_PAGE, .nsid = nsid };
	uint64_t iova;
	uint32_t numd;
	void *page;
	int rc;

	if (!ctrlr || !buf || !len || len % 4 || len > NVR_DMA_PAGE_SIZE)
		return -EINVAL;
	rc = log_dma_get(ctrlr, &page, &iova);
	if (rc)
		return rc;
	numd = (uint32_t)(len / 4 - 1);   /* 0's based */
	c.prp1 = iova;
	c.cdw10 = NVME_LOG_CDW10(lid, numd);
	c.cdw11 = NVME_LOG_CDW11(numd);
	rc = nvr_admin_errno(nvr_admin_cmd(ctrlr, &c, NULL));
	if (!rc)
		memcpy(buf, page, len);
	/* After a timeout the controller may still write the page: it is
	 * then kept, not freed (nvr_ctrlr_dma_free). */
	nvr_ctrlr_dma_free(ctrlr, page);
	return rc;
}

NVR_API int nvr_ctrlr_error_log_entries(struct nvr_ctrlr *ctrlr)
{
	if (ctrlr && ctrlr->remote)
		return -EOPNOTSUPP;   /* served by an owner: no device here */
	const struct nvme_id_ctrl *id;
	uint64_t iova;
	void *page;
	int rc;

	if (!ctrlr)
		return -EINVAL;
	rc = log_dma_get(ctrlr, &page, &iova);
	if (rc)
		return rc;
	rc = nvr_admin_errno(nvr_admin_identify(ctrlr, NVME_CNS_CTRLR, 0, 0, iova));
	id = page;
	if (!rc)
		rc = id->elpe + 1;   /* ELPE is 0's based (Figure 275) */
	nvr_ctrlr_dma_free(ctrlr, page);
	return rc;
}
