/* SPDX-License-Identifier: MIT */
/*
 * The ring's bounce pool: DMA memory mapped once at setup, lent out in
 * runs of 4 KiB pages to non-fixed reads and writes (see abi/ops.c for why
 * we bounce). First fit over a bitmap from a moving hint: no malloc, no
 * syscall, no lock (the pool belongs to the ring's single issuer). A
 * transfer larger than the whole pool gets its own DMA buffer (slow path).
 */
#include <errno.h>
#include <stdlib.h>

#include "abi/ring.h"

int ur_pool_init(struct ur_ring *r, uint32_t pages)
{
	void *va;
	int ret = nvr_dma_alloc(r->ctrlr, (size_t)pages * UR_PAGE, &va);
	if (ret < 0)
		return ret;
	ret = nvr_dma_iova(r->ctrlr, va, (size_t)pages * UR_PAGE, &r->pool_iova);
	if (ret < 0) {
		nvr_dma_free(r->ctrlr, va);
		return ret;
	}
	r->pool_map = calloc((pages + 63) / 64, sizeof(uint64_t));
	if (!r->pool_map) {
		nvr_dma_free(r->ctrlr, va);
		return -ENOMEM;
	}
	r->pool = va;
	r->pool_pages = pages;
	r->pool_hint = 0;
	return 0;
}

void ur_pool_fini(struct ur_ring *r)
{
	if (r->pool)
		nvr_dma_free(r->ctrlr, r->pool);
	free(r->pool_map);
	r->pool = NULL;
	r->pool_map = NULL;
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

int ur_pool_get(struct ur_ring *r, struct ur_req *req, uint32_t bytes)
{
	uint32_t n = (bytes + UR_PAGE - 1) / UR_PAGE;
	if (!n)
		n = 1;
	if (n > r->pool_pages) {
		void *va;
		int ret = nvr_dma_alloc(r->ctrlr, (size_t)n * UR_PAGE, &va);
		if (ret < 0)
			return ret == -ENOMEM && r->in_device ? -EAGAIN : ret;
		ret = nvr_dma_iova(r->ctrlr, va, (size_t)n * UR_PAGE, &req->dma_iova);
		if (ret < 0) {
			nvr_dma_free(r->ctrlr, va);
			return ret;
		}
		req->dma = va;
		req->rflags |= UR_F_OWN_DMA;
		return 0;
	}
	uint32_t first = find_run(r, r->pool_hint, n);
	if (first == UINT32_MAX && r->pool_hint)
		first = find_run(r, 0, n);
	if (first == UINT32_MAX)
		return -EAGAIN;   /* in-flight requests hold the pool: retry */
	mark(r, first, n, true);
	r->pool_hint = first + n < r->pool_pages ? first + n : 0;
	req->dma = r->pool + (size_t)first * UR_PAGE;
	req->dma_iova = r->pool_iova + (uint64_t)first * UR_PAGE;
	req->dma_first = first;
	req->dma_pages = n;
	return 0;
}

void ur_pool_put(struct ur_ring *r, struct ur_req *req)
{
	if (req->rflags & UR_F_OWN_DMA)
		nvr_dma_free(r->ctrlr, req->dma);
	else
		mark(r, req->dma_first, req->dma_pages, false);
	req->dma = NULL;
	req->dma_pages = 0;
	req->rflags &= ~UR_F_OWN_DMA;
}
