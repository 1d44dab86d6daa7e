/* SPDX-License-Identifier: MIT */
/* The public DMA memory calls: thin wrappers over pci/'s DMA table, which
 * does the locking and the IOMMU work. */
#include <errno.h>

#include "driver/ctrlr.h"

NVR_API int nvr_dma_alloc(struct nvr_ctrlr *ctrlr, size_t len, void **buf)
{
	if (ctrlr && ctrlr->remote)
		return -EOPNOTSUPP;   /* served by an owner: no device here */
	uint64_t iova;

	if (!ctrlr || !buf || len == 0)
		return -EINVAL;
	return nvr_pci_dma_alloc(ctrlr->dev, len, buf, &iova);
}

NVR_API int nvr_dma_free(struct nvr_ctrlr *ctrlr, void *buf)
{
	if (ctrlr && ctrlr->remote)
		return -EOPNOTSUPP;   /* served by an owner: no device here */
	if (!ctrlr || !buf)
		return -EINVAL;
	return nvr_pci_dma_free(ctrlr->dev, buf);
}

NVR_API int nvr_dma_register(struct nvr_ctrlr *ctrlr, void *va, size_t len)
{
	if (ctrlr && ctrlr->remote)
		return -EOPNOTSUPP;   /* served by an owner: no device here */
	uint64_t iova;

	if (!ctrlr || !va || len == 0)
		return -EINVAL;
	return nvr_pci_dma_register(ctrlr->dev, va, len, &iova);
}

NVR_API int nvr_dma_unregister(struct nvr_ctrlr *ctrlr, void *va)
{
	if (ctrlr && ctrlr->remote)
		return -EOPNOTSUPP;   /* served by an owner: no device here */
	if (!ctrlr || !va)
		return -EINVAL;
	return nvr_pci_dma_unregister(ctrlr->dev, va);
}

NVR_API int nvr_dma_iova(struct nvr_ctrlr *ctrlr, const void *va, size_t len, uint64_t *iova)
{
	if (ctrlr && ctrlr->remote)
		return -EOPNOTSUPP;   /* served by an owner: no device here */
	if (!ctrlr || !va || !iova)
		return -EINVAL;
	return nvr_pci_dma_translate(ctrlr->dev, va, len, iova);
}

NVR_API int nvr_dma_hold(struct nvr_ctrlr *ctrlr, const void *va, size_t len, uint64_t *iova)
{
	if (ctrlr && ctrlr->remote)
		return -EOPNOTSUPP;   /* served by an owner: no device here */
	if (!ctrlr || !va || !iova)
		return -EINVAL;
	return nvr_pci_dma_hold(ctrlr->dev, va, len, iova);
}

NVR_API int nvr_dma_unhold(struct nvr_ctrlr *ctrlr, const void *va)
{
	if (ctrlr && ctrlr->remote)
		return -EOPNOTSUPP;   /* served by an owner: no device here */
	if (!ctrlr || !va)
		return -EINVAL;
	return nvr_pci_dma_unhold(ctrlr->dev, va);
}
