/* SPDX-License-Identifier: MIT */
/*
 * An IOVA (I/O virtual address) allocator: hands out device-visible address
 * ranges from the ranges the IOMMU accepts (VFIO reports them; they have
 * holes, e.g. the x86 MSI window 0xfee00000-0xfeefffff). First fit, page
 * granular, neighbours merge on free. IOVA 0 is never handed out: the first
 * page stays unused so a zero bus address always means a bug.
 *
 * Not thread safe: the caller serialises.
 */
#ifndef NVRING_PCI_IOVA_H
#define NVRING_PCI_IOVA_H

#include <stdint.h>

/* An inclusive range [start, end], as VFIO reports them. */
struct nvr_iova_range {
	uint64_t start, end;
};

struct nvr_iova {
	uint64_t page;                 /* granularity: a power of two >= 4 KiB */
	struct nvr_iova_range *usable; /* page-trimmed usable ranges, sorted */
	unsigned nusable;
	struct nvr_iova_range *free;   /* free ranges, sorted, never adjacent */
	unsigned nfree, free_cap;
};

/**
 * nvr_iova_init() - set up @a over @n ranges (any order, may overlap).
 * @page: granularity, a power of two; values below 4 KiB mean 4 KiB.
 * Ranges are trimmed inward to whole pages and the first page [0, page) is
 * removed. Errors: -EINVAL bad @page or nothing usable left; -ENOMEM.
 */
int  nvr_iova_init(struct nvr_iova *a, const struct nvr_iova_range *ranges, unsigned n,
		   uint64_t page);
void nvr_iova_fini(struct nvr_iova *a);

/**
 * nvr_iova_alloc() - reserve @len bytes (rounded up to the page) at an
 * address aligned to @align (a power of two; 0 or less than the page means
 * the page). First fit: the lowest address that fits.
 * Errors: -EINVAL zero length or bad @align; -ENOMEM no room.
 */
int  nvr_iova_alloc(struct nvr_iova *a, uint64_t len, uint64_t align, uint64_t *iova);

/**
 * nvr_iova_free() - give back [@iova, @iova + @len) (len rounded up to the
 * page), which must be wholly allocated. Errors: -EINVAL misaligned, outside
 * the usable ranges, or (partly) free already; -ENOMEM.
 */
int  nvr_iova_free(struct nvr_iova *a, uint64_t iova, uint64_t len);

/* Bytes currently free (for tests and diagnostics). */
uint64_t nvr_iova_free_bytes(const struct nvr_iova *a);

#endif
