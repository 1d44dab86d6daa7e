/* SPDX-License-Identifier: MIT */
/*
 * VFIO no-IOMMU mode's addressing (pci/noiommu.c) over fixtures: group
 * nodes in a tmpdir stand for /dev/vfio, a sparse file written with
 * chosen 64-bit entries stands for /proc/self/pagemap; and pci/dma.c's
 * refusal of 4 KiB pages when the backend needs hugepages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "nvring/nvring.h"
#include "pci/noiommu.h"
#include "pci/pci.h"

#define PG NVR_PAGEMAP_PAGE

/* ---- group node: which IOMMU model --------------------------------------- */

static char dir[64];

static void touch(const char *name)
{
	char p[128];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
}

static int dir_setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/nvr-noiommu.XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int dir_teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void fault_noiommu_group_node_picks_mode(void **state)
{
	char path[128], want[128];
	bool noiommu = true;

	/* Neither node: -ENOENT, and the path names the usual one. */
	assert_int_equal(nvr_vfio_group_node(dir, 7, path, sizeof(path), &noiommu), -ENOENT);
	snprintf(want, sizeof(want), "%s/7", dir);
	assert_string_equal(path, want);

	/* noiommu-7 alone: no-IOMMU mode (another group's node is ignored). */
	touch("noiommu-7");
	touch("3");
	assert_int_equal(nvr_vfio_group_node(dir, 7, path, sizeof(path), &noiommu), 0);
	assert_true(noiommu);
	snprintf(want, sizeof(want), "%s/noiommu-7", dir);
	assert_string_equal(path, want);

	/* "3": a real IOMMU group, type1. */
	assert_int_equal(nvr_vfio_group_node(dir, 3, path, sizeof(path), &noiommu), 0);
	assert_false(noiommu);
	snprintf(want, sizeof(want), "%s/3", dir);
	assert_string_equal(path, want);

	/* A path buffer too small is an error, not a truncated open. */
	assert_int_equal(nvr_vfio_group_node(dir, 3, path, 8, &noiommu), -ENAMETOOLONG);
}

/* ---- pagemap translation ------------------------------------------------- */

/* A pagemap fixture: entry i describes the page at virtual address i * 4 KiB. */
static int pm_fd;
#define VA0 0x10000000ull        /* the fixture's pages start here */

static void pm_put(uint64_t va, uint64_t entry)
{
	assert_int_equal(pwrite(pm_fd, &entry, sizeof(entry), (off_t)(va / PG * 8)), 8);
}

static uint64_t present(uint64_t pfn)
{
	return NVR_PAGEMAP_PRESENT | pfn;
}

static int pm_setup(void **state)
{
	char p[] = "/tmp/nvr-pagemap.XXXXXX";

	pm_fd = mkstemp(p);
	assert_true(pm_fd >= 0);
	unlink(p);
	return 0;
}

static int pm_teardown(void **state)
{
	close(pm_fd);
	return 0;
}

static void test_pagemap_contiguous(void **state)
{
	uint64_t pa = 0;
	size_t contig = 0;

	for (int i = 0; i < 3; i++)
		pm_put(VA0 + i * PG, present(0x12345 + i));
	/* Offset into the first page carries into the physical address. */
	assert_int_equal(nvr_pagemap_phys(pm_fd, VA0 + 100, 3 * PG - 100, &pa, &contig), 0);
	assert_int_equal(pa, 0x12345ull * PG + 100);
	assert_int_equal(contig, 3 * PG - 100);
	/* One byte of the last page. */
	assert_int_equal(nvr_pagemap_phys(pm_fd, VA0 + 2 * PG + 4095, 1, &pa, &contig), 0);
	assert_int_equal(pa, 0x12347ull * PG + 4095);
	assert_int_equal(contig, 1);
}

static void fault_noiommu_pagemap_not_contiguous(void **state)
{
	uint64_t pa = 0;
	size_t contig = 0;

	/* Pages 0, 1 adjacent; page 2 is elsewhere (even just below: PFNs
	 * must rise with the virtual address). */
	pm_put(VA0, present(0x500));
	pm_put(VA0 + PG, present(0x501));
	pm_put(VA0 + 2 * PG, present(0x4ff));
	assert_int_equal(nvr_pagemap_phys(pm_fd, VA0 + 8, 3 * PG - 8, &pa, &contig), 0);
	assert_int_equal(pa, 0x500ull * PG + 8);
	assert_int_equal(contig, 2 * PG - 8);
}

static void test_pagemap_across_batches(void **state)
{
	uint64_t pa = 0;
	size_t contig = 0;

	/* 600 pages: the first 520 contiguous, over the 512-entry read. */
	for (int i = 0; i < 600; i++)
		pm_put(VA0 + (uint64_t)i * PG, present(i < 520 ? 0x100000 + (uint64_t)i : 0x900000 + (uint64_t)i));
	assert_int_equal(nvr_pagemap_phys(pm_fd, VA0, 600 * PG, &pa, &contig), 0);
	assert_int_equal(pa, 0x100000ull * PG);
	assert_int_equal(contig, 520 * PG);
	assert_int_equal(nvr_pagemap_phys(pm_fd, VA0, 520 * PG, &pa, &contig), 0);
	assert_int_equal(contig, 520 * PG);
}

static void fault_noiommu_pagemap_bad_entries(void **state)
{
	uint64_t pa = 0;
	size_t contig = 0;

	pm_put(VA0, present(0x700));
	pm_put(VA0 + PG, 0);                                   /* never touched */
	assert_int_equal(nvr_pagemap_phys(pm_fd, VA0, 2 * PG, &pa, &contig), -EFAULT);
	pm_put(VA0 + PG, NVR_PAGEMAP_SWAPPED | NVR_PAGEMAP_PRESENT | 0x701);
	assert_int_equal(nvr_pagemap_phys(pm_fd, VA0, 2 * PG, &pa, &contig), -EFAULT);
	/* Present with PFN 0: what a process without CAP_SYS_ADMIN reads. */
	pm_put(VA0 + PG, NVR_PAGEMAP_PRESENT);
	assert_int_equal(nvr_pagemap_phys(pm_fd, VA0, 2 * PG, &pa, &contig), -EPERM);
	/* Past the end of the fixture: a short read. */
	assert_int_equal(nvr_pagemap_phys(pm_fd, VA0 + 1000 * PG, PG, &pa, &contig), -EIO);
	assert_int_equal(nvr_pagemap_phys(pm_fd, VA0, 0, &pa, &contig), -EINVAL);
}

/* ---- pinning: real memory, fixture addresses ------------------------------ */

/* The fixture file describes @mem's pages: contiguous unless @gap_page
 * (>= 1) starts a new run. */
static void pm_describe(const void *mem, unsigned npages, unsigned gap_page)
{
	for (unsigned i = 0; i < npages; i++)
		pm_put((uintptr_t)mem + (uint64_t)i * PG,
		       present(0x40000 + i + (gap_page && i >= gap_page ? 0x1000 : 0)));
}

static void test_pin_contiguous(void **state)
{
	uint8_t *mem = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t pa = 0;
	size_t contig = 0;

	assert_true(mem != MAP_FAILED);
	pm_describe(mem, 4, 0);
	assert_int_equal(nvr_noiommu_pin(pm_fd, mem, 4 * PG, &pa, &contig), 0);
	assert_int_equal(pa, 0x40000ull * PG);
	nvr_noiommu_unpin(mem, 4 * PG);
	assert_int_equal(nvr_noiommu_pin(pm_fd, mem + 1, PG, &pa, &contig), -EINVAL);
	munmap(mem, 4 * PG);
}

/* A registration that is not physically contiguous cannot be one bus
 * range: refused (the backend turns it into -EFAULT with a message). */
static void fault_noiommu_pin_not_contiguous(void **state)
{
	uint8_t *mem = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t pa = 0;
	size_t contig = 0;

	assert_true(mem != MAP_FAILED);
	pm_describe(mem, 4, 3);
	assert_int_equal(nvr_noiommu_pin(pm_fd, mem, 4 * PG, &pa, &contig), -ERANGE);
	assert_int_equal(contig, 3 * PG);
	/* The contiguous part alone is fine. */
	assert_int_equal(nvr_noiommu_pin(pm_fd, mem, 3 * PG, &pa, &contig), 0);
	nvr_noiommu_unpin(mem, 3 * PG);
	munmap(mem, 4 * PG);
}

/* What the IOMMU would fault on (type1 refuses to map it): memory the
 * process cannot write. Without an IOMMU the device would write it (or
 * the shared zero page behind an untouched read-only page), so refuse. */
static void fault_noiommu_pin_unwritable(void **state)
{
	uint8_t *mem = mmap(NULL, 2 * PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t pa = 0;
	size_t contig = 0;

	assert_true(mem != MAP_FAILED);
	pm_describe(mem, 2, 0);
	assert_int_equal(nvr_noiommu_pin(pm_fd, mem, 2 * PG, &pa, &contig), -EFAULT);
	assert_int_equal(mprotect(mem, 2 * PG, PROT_NONE), 0);
	assert_int_equal(nvr_noiommu_pin(pm_fd, mem, 2 * PG, &pa, &contig), -EFAULT);
	munmap(mem, 2 * PG);
	/* Unmapped now. */
	assert_int_equal(nvr_noiommu_pin(pm_fd, mem, 2 * PG, &pa, &contig), -EFAULT);
}

/* ---- pci/dma.c: hugepages or nothing --------------------------------------- */

static unsigned maps;

static int count_map(struct nvr_pci_dev *dev, void *va, size_t len, uint64_t *iova)
{
	maps++;
	*iova = (uintptr_t)va;
	return 0;
}

static int count_unmap(struct nvr_pci_dev *dev, void *va, size_t len, uint64_t iova)
{
	maps--;
	return 0;
}

static const struct nvr_pci_ops count_ops = { .dma_map = count_map, .dma_unmap = count_unmap };

static char last_msg[512];

static void hook(void *arg, int level, const char *msg)
{
	snprintf(last_msg, sizeof(last_msg), "%s", msg);
}

/* A backend that needs hugepages never gets locked 4 KiB pages; with
 * hugepages forbidden (as when none are reserved) allocation fails with
 * -ENOMEM and one line naming the fix. */
static void fault_noiommu_alloc_needs_hugepages(void **state)
{
	struct nvr_pci_dev dev = { .ops = &count_ops, .bdf = "fake" };
	void *va = NULL;
	uint64_t iova;

	assert_int_equal(nvr_pci_dma_init(&dev), 0);
	dev.dma_flags = NVR_DMA_NO_HUGEPAGES;
	assert_int_equal(nvr_pci_dma_alloc(&dev, PG, &va, &iova), 0);   /* without the flag: fine */
	assert_int_equal(maps, 1);
	assert_int_equal(nvr_pci_dma_free(&dev, va), 0);
	assert_int_equal(maps, 0);

	nvr_set_log_hook(hook, NULL);
	dev.dma_flags |= NVR_DMA_NEED_HUGEPAGES;
	last_msg[0] = '\0';
	assert_int_equal(nvr_pci_dma_alloc(&dev, PG, &va, &iova), -ENOMEM);
	assert_int_equal(nvr_pci_dma_alloc_internal(&dev, 3 << 20, &va, &iova), -ENOMEM);
	assert_int_equal(maps, 0);
	nvr_set_log_hook(NULL, NULL);
	assert_non_null(strstr(last_msg, "no-IOMMU mode needs hugepages"));
	assert_non_null(strstr(last_msg, "nr_hugepages"));
	nvr_pci_dma_fini(&dev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(fault_noiommu_group_node_picks_mode, dir_setup, dir_teardown),
#define PM(fn) cmocka_unit_test_setup_teardown(fn, pm_setup, pm_teardown)
		PM(test_pagemap_contiguous),
		PM(fault_noiommu_pagemap_not_contiguous),
		PM(test_pagemap_across_batches),
		PM(fault_noiommu_pagemap_bad_entries),
		PM(test_pin_contiguous),
		PM(fault_noiommu_pin_not_contiguous),
		PM(fault_noiommu_pin_unwritable),
		cmocka_unit_test(fault_noiommu_alloc_needs_hugepages),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
