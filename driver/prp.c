/* SPDX-License-Identifier: MIT */
/* PRP lists, NVMe 2.0 §4.1.1 (see prp.h for the rules and limits). */
#include <errno.h>

#include "driver/prp.h"

int nvr_prp_build(const struct nvr_seg *segs, unsigned nseg, uint64_t off, uint32_t len,
		  uint64_t *list, uint64_t list_iova, uint64_t *prp1, uint64_t *prp2)
{
	unsigned i = 0;
	uint32_t left = len;
	unsigned npages = 0;   /* entries after PRP1 produced so far */

	if (len == 0)
		return -EINVAL;
	/* Find the segment holding byte @off. */
	while (i < nseg && off >= segs[i].len)
		off -= segs[i++].len;
	if (i == nseg)
		return -EINVAL;

	uint64_t addr = segs[i].iova + off;
	uint32_t seg_left = segs[i].len - (uint32_t)off;

	/* PRP1: the first page, any dword-aligned offset (§4.1.1). */
	if (addr & 3)
		return -EINVAL;
	*prp1 = addr;
	*prp2 = 0;

	for (;;) {
		uint32_t in_page = NVR_PAGE_SIZE - (uint32_t)(addr & NVR_PAGE_MASK);
		uint32_t chunk = in_page;

		if (chunk > seg_left)
			chunk = seg_left;
		if (chunk >= left)
			return 0;          /* the transfer ends in this page */
		left -= chunk;
		seg_left -= chunk;
		if (seg_left == 0) {
			/* A segment boundary inside the transfer: the segment
			 * must end on a page boundary, the next start on one. */
			if (chunk != in_page || ++i == nseg)
				return -EINVAL;
			addr = segs[i].iova;
			seg_left = segs[i].len;
			if ((addr & NVR_PAGE_MASK) || seg_left == 0)
				return -EINVAL;
		} else {
			addr += chunk;     /* next page of the same segment */
		}

		/* addr is entry npages + 1 (entry 0 is PRP1); in a list it
		 * sits at index npages. */
		if (npages == 0) {
			*prp2 = addr;      /* two pages: PRP2 points at data */
		} else {
			if (npages >= NVR_PRP_LIST_ENTRIES)
				return -EINVAL;  /* would need a second list page */
			if (npages == 1)
				list[0] = *prp2; /* three or more: move to a list */
			list[npages] = addr;
			*prp2 = list_iova;
		}
		npages++;
	}
}

int nvr_segs_check(const struct nvr_seg *segs, unsigned nseg, uint64_t len)
{
	uint64_t left = len;

	if (len == 0 || nseg == 0 || (segs[0].iova & 3))
		return -EINVAL;
	for (unsigned i = 0; i < nseg; i++) {
		if (segs[i].len == 0)
			return -EINVAL;
		if (i > 0 && (segs[i].iova & NVR_PAGE_MASK))
			return -EINVAL;
		if (segs[i].len >= left)
			return (int)i + 1;
		left -= segs[i].len;
		if ((segs[i].iova + segs[i].len) & NVR_PAGE_MASK)
			return -EINVAL;
	}
	return -EINVAL;   /* segments shorter than len */
}
