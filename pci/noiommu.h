/* SPDX-License-Identifier: MIT */
/*
 * The addressing side of VFIO's no-IOMMU mode (pci/vfio.c uses it): which
 * IOMMU model a group node selects, and the physical address of memory,
 * which is what the device is given when nothing translates its DMA
 * (Documentation/admin-guide/mm/pagemap.rst). Both take their inputs as
 * arguments (a directory, an fd) so unit tests can use fixtures.
 *
 * Every function returns 0 or a negative errno; nothing is printed.
 */
#ifndef NVRING_PCI_NOIOMMU_H
#define NVRING_PCI_NOIOMMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One 64-bit entry per 4 KiB page of the address space in /proc/PID/pagemap. */
#define NVR_PAGEMAP_PRESENT  (1ull << 63)
#define NVR_PAGEMAP_SWAPPED  (1ull << 62)
#define NVR_PAGEMAP_PFN_MASK ((1ull << 55) - 1)
#define NVR_PAGEMAP_PAGE     4096u

/*
 * The group node of IOMMU group @group under @dir ("/dev/vfio"): "@dir/N"
 * (a real IOMMU: *noiommu false) if it exists, else "@dir/noiommu-N"
 * (*noiommu true). @path gets the one found. -ENOENT if neither exists.
 */
int nvr_vfio_group_node(const char *dir, int group, char *path, size_t size, bool *noiommu);

/*
 * Physical address of @va in *pa, and in *contig how many bytes from @va
 * on (at most @len, len >= 1) are physically contiguous, from the pagemap
 * open at @fd. Errors: -EFAULT a page of the range is not in memory
 * (never touched, or swapped out: lock it first); -EPERM the PFNs read as
 * zero (the kernel hides them without CAP_SYS_ADMIN); -EIO a short read.
 */
int nvr_pagemap_phys(int fd, uintptr_t va, size_t len, uint64_t *pa, size_t *contig);

/*
 * Make [va, va + len) (4 KiB aligned) reachable by a device given its
 * physical address, as VFIO type1's pinning would: present, writable
 * (private pages unshared: the device must not write a copy-on-write page
 * or the shared zero page) and locked; *pa is its physical address from
 * the pagemap at @fd (needs Linux 5.14: MADV_POPULATE_WRITE). Errors:
 * -EINVAL misaligned or empty; -EFAULT not writable memory (read-only,
 * PROT_NONE, unmapped); -ERANGE not physically
 * contiguous (*contig bytes are); -ENOMEM cannot lock (RLIMIT_MEMLOCK);
 * what nvr_pagemap_phys() says. On failure nothing is left locked.
 */
int nvr_noiommu_pin(int fd, void *va, size_t len, uint64_t *pa, size_t *contig);
/*
 * @size bytes (a multiple of 2 MiB) of hugepage memory that is physically
 * contiguous, 2 MiB aligned, in *va (munmap() it). One hugepage is; for
 * more, hugepages are taken one at a time (each a mapping of its own,
 * its physical address from the pagemap at @fd) until @size / 2 MiB of
 * them are physically adjacent, those are moved (mremap, Linux 5.16) side
 * by side in physical order into one range, and the others are given
 * back. -ENOMEM: no such run among the free hugepages.
 */
int nvr_noiommu_huge_contig(int fd, size_t size, void **va);
#define NVR_NOIOMMU_HUGE (2u << 20)

/* Undo nvr_noiommu_pin(). mlock() does not nest: a lock the application
 * took itself on these pages goes too. */
void nvr_noiommu_unpin(void *va, size_t len);

#endif
