/* SPDX-License-Identifier: MIT */
/* Group node choice and virtual-to-physical translation (pci/noiommu.h). */
#include "pci/noiommu.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int nvr_vfio_group_node(const char *dir, int group, char *path, size_t size, bool *noiommu)
{
	struct stat sb;
	int n;

	n = snprintf(path, size, "%s/%d", dir, group);
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	if (stat(path, &sb) == 0) {
		*noiommu = false;
		return 0;
	}
	/* vfio-pci names the group it made itself (no IOMMU behind the
	 * device) noiommu-N, so nobody opens it by mistake. */
	n = snprintf(path, size, "%s/noiommu-%d", dir, group);
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	if (stat(path, &sb) == 0) {
		*noiommu = true;
		return 0;
	}
	snprintf(path, size, "%s/%d", dir, group);   /* the usual name, for messages */
	return -ENOENT;
}

/* Entries read per pread(): 512 pages, one 2 MiB hugepage. */
#define BATCH 512u

int nvr_pagemap_phys(int fd, uintptr_t va, size_t len, uint64_t *pa, size_t *contig)
{
	uint64_t ent[BATCH], first_pfn = 0;
	uintptr_t page = va / NVR_PAGEMAP_PAGE;
	size_t npages, done = 0;

	if (!len || va > UINTPTR_MAX - (len - 1))
		return -EINVAL;
	npages = (va + (len - 1)) / NVR_PAGEMAP_PAGE - page + 1;
	while (done < npages) {
		size_t n = npages - done < BATCH ? npages - done : BATCH;
		ssize_t got = pread(fd, ent, n * sizeof(ent[0]), (off_t)((page + done) * sizeof(ent[0])));

		if (got < 0)
			return -errno;
		if ((size_t)got != n * sizeof(ent[0]))
			return -EIO;
		for (size_t i = 0; i < n; i++) {
			uint64_t pfn = ent[i] & NVR_PAGEMAP_PFN_MASK;

			if (!(ent[i] & NVR_PAGEMAP_PRESENT) || (ent[i] & NVR_PAGEMAP_SWAPPED))
				return -EFAULT;
			if (!pfn)
				return -EPERM;
			if (done + i == 0) {
				first_pfn = pfn;
				*pa = pfn * NVR_PAGEMAP_PAGE + va % NVR_PAGEMAP_PAGE;
			} else if (pfn != first_pfn + done + i) {
				/* Contiguous up to the start of this page. */
				*contig = (page + done + i) * NVR_PAGEMAP_PAGE - va;
				return 0;
			}
		}
		done += n;
	}
	*contig = len;
	return 0;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23   /* Linux 5.14 */
#endif

int nvr_noiommu_pin(int fd, void *va, size_t len, uint64_t *pa, size_t *contig)
{
	int err;

	if (!len || (((uintptr_t)va | len) & (NVR_PAGEMAP_PAGE - 1)))
		return -EINVAL;
	/* Write faults on every page, as type1's pinning for a writable
	 * mapping does. EINVAL: a mapping the process cannot write (or a
	 * kernel before 5.14, which lacks the advice and so no-IOMMU support
	 * here); ENOMEM: not mapped; EFAULT: populating failed. */
	if (madvise(va, len, MADV_POPULATE_WRITE) < 0)
		return errno == EINVAL || errno == ENOMEM ? -EFAULT : -errno;
	if (mlock(va, len) < 0)
		return errno == EPERM || errno == EAGAIN ? -ENOMEM : -errno;
	*contig = 0;
	err = nvr_pagemap_phys(fd, (uintptr_t)va, len, pa, contig);
	if (!err && *contig < len)
		err = -ERANGE;
	if (err)
		munlock(va, len);
	return err;
}

void nvr_noiommu_unpin(void *va, size_t len)
{
	/* The range may be unmapped already (ENOMEM): nothing is locked then. */
	munlock(va, len);
}

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << MAP_HUGE_SHIFT)
#endif

struct huge_page { uint8_t *va; uint64_t pa; };

static int by_pa(const void *a, const void *b)
{
	const struct huge_page *x = a, *y = b;

	return x->pa < y->pa ? -1 : x->pa > y->pa;
}

/* Index (in @pages sorted by physical address) of the first of @n
 * physically adjacent hugepages, or -1. */
static long find_run(const struct huge_page *pages, size_t npages, size_t n)
{
	size_t run = 1;

	for (size_t i = 1; i <= npages && n > 1; i++) {
		if (i < npages && pages[i].pa == pages[i - 1].pa + NVR_NOIOMMU_HUGE) {
			if (++run == n)
				return (long)(i + 1 - n);
		} else {
			run = 1;
		}
	}
	return n == 1 && npages ? 0 : -1;
}

/* Move the @n pages from @run into one 2 MiB aligned range. */
static int gather(struct huge_page *run, size_t n, void **va)
{
	size_t size = n * NVR_NOIOMMU_HUGE, slack = NVR_NOIOMMU_HUGE;
	uint8_t *res, *dst;

	/* A placeholder range to move into, 2 MiB aligned within it. */
	res = mmap(NULL, size + slack, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED)
		return -errno;
	dst = (uint8_t *)(((uintptr_t)res + slack - 1) & ~(uintptr_t)(slack - 1));
	for (size_t i = 0; i < n; i++) {
		void *p = mremap(run[i].va, NVR_NOIOMMU_HUGE, NVR_NOIOMMU_HUGE,
				 MREMAP_MAYMOVE | MREMAP_FIXED, dst + i * NVR_NOIOMMU_HUGE);

		if (p == MAP_FAILED) {
			int err = -errno;

			/* Pages moved so far live in the placeholder now. */
			munmap(res, size + slack);
			for (size_t j = i; j < n; j++)
				munmap(run[j].va, NVR_NOIOMMU_HUGE);
			return err;
		}
	}
	if (dst > res)
		munmap(res, (size_t)(dst - res));
	if (dst + size < res + size + slack)
		munmap(dst + size, (size_t)(res + size + slack - (dst + size)));
	*va = dst;
	return 0;
}

int nvr_noiommu_huge_contig(int fd, size_t size, void **va)
{
	size_t n = size / NVR_NOIOMMU_HUGE, npages = 0, cap = 0;
	struct huge_page *pages = NULL;   /* taken so far, by physical address */
	long at = -1;
	int err = 0;

	if (!n || size % NVR_NOIOMMU_HUGE)
		return -EINVAL;
	while (at < 0) {
		struct huge_page pg;
		size_t contig;

		/* MAP_HUGETLB reserves at mmap: ENOMEM when none is free. */
		pg.va = mmap(NULL, NVR_NOIOMMU_HUGE, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB | MAP_POPULATE, -1, 0);
		if (pg.va == MAP_FAILED) {
			err = -ENOMEM;   /* the pool ran out before a run turned up */
			break;
		}
		err = nvr_pagemap_phys(fd, (uintptr_t)pg.va, NVR_NOIOMMU_HUGE, &pg.pa, &contig);
		if (!err && contig < NVR_NOIOMMU_HUGE)
			err = -EIO;      /* a hugepage is one physical range */
		if (!err && npages == cap) {
			struct huge_page *p = realloc(pages, (cap ? cap * 2 : 16) * sizeof(*p));

			if (p) {
				pages = p;
				cap = cap ? cap * 2 : 16;
			} else {
				err = -ENOMEM;
			}
		}
		if (err) {
			munmap(pg.va, NVR_NOIOMMU_HUGE);
			break;
		}
		pages[npages++] = pg;
		qsort(pages, npages, sizeof(*pages), by_pa);
		at = find_run(pages, npages, n);
	}
	if (at >= 0)
		err = gather(pages + at, n, va);
	/* Give back every page but the run's (gather() consumed those:
	 * moved on success, unmapped on failure). */
	for (size_t i = 0; i < npages; i++)
		if (at < 0 || i < (size_t)at || i >= (size_t)at + n)
			munmap(pages[i].va, NVR_NOIOMMU_HUGE);
	free(pages);
	return err;
}
