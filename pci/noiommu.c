/* SPDX-License-Identifier: MIT */
/* Group node choice and virtual-to-physical translation (pci/noiommu.h). */
#include "pci/noiommu.h"

#include <errno.h>
#include <stdio.h>
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
