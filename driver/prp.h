/* SPDX-License-Identifier: MIT */
/*
 * PRP construction (NVMe 2.0 §4.1.1). Pure functions: no device, no
 * allocation, so they are unit tested on their own (tests/unit/test_prp.c).
 *
 * Limits: the driver uses a 4 KiB memory page (CC.MPS = 0) and gives every
 * command at most one PRP list page (512 entries). With PRP1 covering the
 * first, possibly partial page, one list reaches 512 more pages, so any
 * transfer of at most NVR_PRP_MAX_XFER bytes (2 MiB) fits whatever its
 * start offset. The controller's max_xfer is capped at that value, so
 * PRP lists are never chained.
 */
#ifndef NVRING_DRIVER_PRP_H
#define NVRING_DRIVER_PRP_H

#include <stdint.h>

#include "nvring/nvring.h"

#define NVR_PAGE_SHIFT      12
#define NVR_PAGE_SIZE       (1u << NVR_PAGE_SHIFT)
#define NVR_PAGE_MASK       ((uint64_t)NVR_PAGE_SIZE - 1)
#define NVR_PRP_LIST_ENTRIES (NVR_PAGE_SIZE / 8)                 /* 512 */
#define NVR_PRP_MAX_XFER    (NVR_PRP_LIST_ENTRIES * NVR_PAGE_SIZE) /* 2 MiB */

/*
 * nvr_prp_build() - PRP1/PRP2 for @len bytes starting @off bytes into the
 * IOVA segments @segs[0..@nseg).
 * @list:      a 4 KiB PRP list page, CPU address (filled only if needed)
 * @list_iova: its bus address
 *
 * PRP1 may start anywhere dword aligned. Every segment boundary inside the
 * transfer must fall on a page boundary (the previous segment ends on
 * one, the next starts on one). One or two pages: PRP2 is 0 or the second
 * page. More: PRP2 = @list_iova and @list holds pages 2..n.
 *
 * Returns 0, or -EINVAL: @len is 0, the range runs past the segments, a
 * boundary is misaligned, PRP1 is not dword aligned, or more than one
 * list page would be needed (more than 513 pages touched).
 */
int nvr_prp_build(const struct nvr_seg *segs, unsigned nseg, uint64_t off, uint32_t len,
		  uint64_t *list, uint64_t list_iova, uint64_t *prp1, uint64_t *prp2);

/*
 * nvr_segs_check() - whether the first @len bytes of @segs obey the PRP
 * rules above (and end inside the segments), so that any sub-range of
 * them passed to nvr_prp_build() later with at most NVR_PRP_MAX_XFER bytes
 * succeeds. Used at submission so that a split request cannot fail
 * halfway. Returns the number of segments the transfer uses (≥ 1), or
 * -EINVAL (zero length, a zero-length segment, a misaligned boundary,
 * PRP1 not dword aligned, or segments shorter than @len).
 */
int nvr_segs_check(const struct nvr_seg *segs, unsigned nseg, uint64_t len);

/*
 * nvr_prp_contig() - nvr_prp_build() for the common case, one segment
 * holding the whole transfer: the same PRP1/PRP2 (and list entries)
 * without the segment walk. The caller guarantees what nvr_prp_build()
 * would check: @len > 0, @iova dword aligned, @len <= NVR_PRP_MAX_XFER
 * (so at most 512 list entries follow PRP1).
 */
static inline void nvr_prp_contig(uint64_t iova, uint32_t len, uint64_t *list, uint64_t list_iova,
				  uint64_t *prp1, uint64_t *prp2)
{
	uint32_t first = NVR_PAGE_SIZE - (uint32_t)(iova & NVR_PAGE_MASK);
	uint64_t next = (iova & ~NVR_PAGE_MASK) + NVR_PAGE_SIZE;

	*prp1 = iova;
	if (len <= first) {
		*prp2 = 0;                 /* one page */
	} else if (len - first <= NVR_PAGE_SIZE) {
		*prp2 = next;              /* two pages: PRP2 points at data */
	} else {
		uint32_t n = (len - first + NVR_PAGE_SIZE - 1) >> NVR_PAGE_SHIFT;

		for (uint32_t i = 0; i < n; i++)
			list[i] = next + ((uint64_t)i << NVR_PAGE_SHIFT);
		*prp2 = list_iova;
	}
}

#endif
