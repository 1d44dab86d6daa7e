/* SPDX-License-Identifier: MIT */
/*
 * The ring's bounce pool: DMA memory mapped once at setup, lent out in
 * runs of 4 KiB pages to non-fixed reads and writes (see abi/ops.c for why
 * we bounce). No malloc, no syscall, no lock (the pool belongs to the
 * ring's single issuer). A one-page request (the common 4 KiB I/O) pops
 * the page freed last from a stack: a few instructions, and the pages in
 * use stay the few the last requests used, warm in the CPU's (and under
 * TCG, QEMU's software) TLB and caches and in the vIOMMU's IOTLB, where
 * handing out every page of the pool in turn touched a cold one per I/O.
 * Longer runs are first fit over a bitmap from a moving hint. The bitmap
 * is the truth: a run may take pages that are also on the stack, so a pop
 * skips entries whose page is in use; the stack holds at most pool_pages
 * entries (a page put when it is full stays free in the bitmap only).
 *
 * No deadlock: a request takes its run only when it goes to the device
 * (ops.c checks for a free queue slot first) and gives it back when the
 * device is done with it, so every page lent out is on its way back and
 * the oldest waiter gets its run once enough of them are. Every request
 * fits: one larger than the whole pool (setup.c sizes it) uses the ring's
 * large extent, one at a time: DMA memory allocated when first needed,
 * grown (in MiB steps) when a larger request comes, and kept until close,
 * because allocating is far too slow to do per I/O -- measured in the
 * QEMU guest (TCG, intel-iommu): nvr_dma_alloc() of 1 MiB 13.7 ms, of
 * 4 MiB 33.6 ms (mmap, fault-in, pin, VFIO_IOMMU_MAP_DMA), against
 * 2.3 ms for a 4 MiB read from the device. Requests above UR_BIG_KEEP
 * are rare enough that their extent is freed after use rather than kept
 * pinned.
 *
 * The zero buffer: FALLOCATE ZERO_RANGE on a controller without Write
 * Zeroes writes zeroes from it, as Linux's blkdev_issue_zeroout() falls
 * back to writing ZERO_PAGE.
 */
#include <errno.h>
#include <stdlib.h>

#include "abi/ring.h"
#include "abi/uaccess.h"

/* DMA memory of the ring's controller and its bus address. */
static int dma_alloc_iova(struct ur_ring *r, size_t bytes, void **va, uint64_t *iova)
{
	int ret = nvr_dma_alloc(r->ctrlr, bytes, va);
	if (ret < 0)
		return ret;
	ret = nvr_dma_iova(r->ctrlr, *va, bytes, iova);
	if (ret < 0)
		nvr_dma_free(r->ctrlr, *va);
	return ret;
}

int ur_pool_init(struct ur_ring *r, uint32_t pages)
{
	void *va;
	int ret = dma_alloc_iova(r, (size_t)pages * UR_PAGE, &va, &r->pool_iova);
	if (ret < 0)
		return ret;
	r->pool_map = calloc((pages + 63) / 64, sizeof(uint64_t));
	r->pool_free = malloc((size_t)pages * sizeof(uint32_t));
	if (!r->pool_map || !r->pool_free) {
		free(r->pool_map);
		free(r->pool_free);
		r->pool_map = NULL;
		r->pool_free = NULL;
		nvr_dma_free(r->ctrlr, va);
		return -ENOMEM;
	}
	r->pool = va;
	r->pool_pages = pages;
	r->pool_hint = 0;
	/* every page free; page 0 on top */
	for (uint32_t i = 0; i < pages; i++)
		r->pool_free[i] = pages - 1 - i;
	r->pool_nfree = pages;
	/* The pool is what user memory is copied to and from: at each ring
	 * setup, every thread asks again whether the fault-fixup copy may
	 * serve it (a program may have installed a SIGSEGV handler since). */
	ur_fault_recheck();
	return 0;
}

void ur_pool_fini(struct ur_ring *r)
{
	if (r->big)
		nvr_dma_free(r->ctrlr, r->big);
	r->big = NULL;
	r->big_bytes = 0;
	if (r->zero_buf)
		nvr_dma_free(r->ctrlr, r->zero_buf);
	r->zero_buf = NULL;
	if (r->pool)
		nvr_dma_free(r->ctrlr, r->pool);
	free(r->pool_map);
	free(r->pool_free);
	r->pool = NULL;
	r->pool_map = NULL;
	r->pool_free = NULL;
	r->pool_nfree = 0;
}

static inline bool page_used(const struct ur_ring *r, uint32_t p)
{
	return r->pool_map[p / 64] >> (p % 64) & 1;
}

static void mark(struct ur_ring *r, uint32_t first, uint32_t n, bool used)
{
	for (uint32_t p = first; p < first + n; p++) {
		if (used)
			r->pool_map[p / 64] |= 1ull << (p % 64);
		else
			r->pool_map[p / 64] &= ~(1ull << (p % 64));
	}
}

/* First run of @n free pages at or after @from, else UINT32_MAX. */
static uint32_t find_run(const struct ur_ring *r, uint32_t from, uint32_t n)
{
	uint32_t run = 0;
	for (uint32_t p = from; p < r->pool_pages; p++) {
		/* skip whole used words quickly */
		if (!run && p % 64 == 0 && r->pool_map[p / 64] == ~0ull) {
			p += 63;
			continue;
		}
		if (page_used(r, p)) {
			run = 0;
			continue;
		}
		if (++run == n)
			return p + 1 - n;
	}
	return UINT32_MAX;
}

/* The large extent for a request of @n pages (see above). */
static int ur_big_get(struct ur_ring *r, struct ur_req *req, uint32_t n)
{
	size_t need = (size_t)n * UR_PAGE;
	if (r->big_busy)
		return -EAGAIN;   /* its user is in the device: it comes back */
	if (r->big_bytes < need) {
		size_t want = (need + (1u << 20) - 1) & ~(size_t)((1u << 20) - 1);
		void *va;
		uint64_t iova;
		if (r->big)
			nvr_dma_free(r->ctrlr, r->big);
		r->big = NULL;
		r->big_bytes = 0;
		int ret = dma_alloc_iova(r, want, &va, &iova);
		if (ret < 0)
			return ret == -ENOMEM && r->in_device ? -EAGAIN : ret;
		r->big = va;
		r->big_iova = iova;
		r->big_bytes = want;
	}
	r->big_busy = true;
	req->dma = r->big;
	req->dma_iova = r->big_iova;
	req->rflags |= UR_F_OWN_DMA;
	return 0;
}

int ur_pool_get(struct ur_ring *r, struct ur_req *req, uint32_t bytes)
{
	uint32_t n = (bytes + UR_PAGE - 1) / UR_PAGE;
	if (!n)
		n = 1;
	if (n > r->pool_pages)
		return ur_big_get(r, req, n);
	uint32_t first = UINT32_MAX;
	if (n == 1) {
		while (r->pool_nfree) {
			uint32_t p = r->pool_free[--r->pool_nfree];
			if (!page_used(r, p)) {
				first = p;
				r->pool_map[p / 64] |= 1ull << (p % 64);
				break;
			}
		}
	}
	if (first == UINT32_MAX) {
		first = find_run(r, r->pool_hint, n);
		if (first == UINT32_MAX && r->pool_hint)
			first = find_run(r, 0, n);
		if (first == UINT32_MAX)
			return -EAGAIN;   /* in-flight requests hold the pool: retry */
		r->pool_hint = first + n < r->pool_pages ? first + n : 0;
		mark(r, first, n, true);
	}
	req->dma = r->pool + (size_t)first * UR_PAGE;
	req->dma_iova = r->pool_iova + (uint64_t)first * UR_PAGE;
	req->dma_first = first;
	req->dma_pages = n;
	return 0;
}

void ur_pool_put(struct ur_ring *r, struct ur_req *req)
{
	if (req->rflags & UR_F_OWN_DMA) {
		r->big_busy = false;
		if (r->big_bytes > UR_BIG_KEEP) {
			nvr_dma_free(r->ctrlr, r->big);
			r->big = NULL;
			r->big_bytes = 0;
		}
	} else {
		uint32_t p = req->dma_first;
		if (req->dma_pages == 1) {
			r->pool_map[p / 64] &= ~(1ull << (p % 64));
			if (r->pool_nfree < r->pool_pages)
				r->pool_free[r->pool_nfree++] = p;
		} else {
			mark(r, p, req->dma_pages, false);
		}
	}
	req->dma = NULL;
	req->dma_pages = 0;
	req->rflags &= ~UR_F_OWN_DMA;
}

int ur_zero_buf_get(struct ur_ring *r)
{
	if (r->zero_buf)
		return 0;
	void *va;
	int ret = dma_alloc_iova(r, UR_ZERO_BYTES, &va, &r->zero_iova);   /* zeroed */
	if (ret < 0)
		return ret;
	r->zero_buf = va;
	return 0;
}
