/* SPDX-License-Identifier: MIT */
/*
 * pci/vfio.c in the guest, below the driver: open the first controller of
 * $NVRING_BDFS through the pci seam, map BAR0, and prove DMA through the
 * IOMMU works by hand-driving one admin Identify (NVMe 2.0 §3.5.1 init,
 * §5.17 Identify) with queues from nvr_pci_dma_alloc() and the data buffer
 * from nvr_pci_dma_register(). Then reset, close, reopen, and the error
 * paths (second open of a group in use, functions not on vfio-pci).
 * Skips without $NVRING_BDFS.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "driver/nvme_spec.h"
#include "pci/noiommu.h"
#include "pci/pci.h"
#include "pci/sysfs.h"

static char bdf[16];

static int find_bdf(void **state)
{
	const char *list = getenv("NVRING_BDFS");

	bdf[0] = '\0';
	if (list && sscanf(list, "%15s", bdf) != 1)
		bdf[0] = '\0';
	return 0;
}

/* 32-bit MMIO only; 64-bit registers as low then high dword. */
static uint32_t rd32(volatile void *bar, uint32_t off)
{
	return *(volatile uint32_t *)((volatile uint8_t *)bar + off);
}

static void wr32(volatile void *bar, uint32_t off, uint32_t v)
{
	*(volatile uint32_t *)((volatile uint8_t *)bar + off) = v;
}

static void wr64(volatile void *bar, uint32_t off, uint64_t v)
{
	wr32(bar, off, (uint32_t)v);
	wr32(bar, off + 4, (uint32_t)(v >> 32));
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Wait until CSTS.RDY == @rdy, up to CAP.TO × 500 ms. */
static int wait_rdy(volatile void *bar, uint64_t cap, uint32_t rdy)
{
	double end = now() + (NVME_CAP_TO(cap) + 1) * 0.5;

	while (now() < end) {
		uint32_t csts = rd32(bar, NVME_REG_CSTS);

		if (csts == 0xffffffffu)
			return -ENODEV;
		if ((csts & NVME_CSTS_RDY) == rdy)
			return 0;
	}
	return -ETIMEDOUT;
}

static void test_open_identify_close(void **state)
{
	struct nvr_pci_dev *dev;
	volatile void *bar;
	size_t bar_len;
	struct nvme_sqe *sq;
	volatile struct nvme_cqe *cq;
	uint64_t sq_iova, cq_iova, id_iova, t, cap;
	struct nvr_pci_fn fn;
	uint8_t *id;

	if (!bdf[0])
		skip();
	assert_int_equal(nvr_pci_fn_info(bdf, &fn), 0);
	assert_int_equal(nvr_vfio_open(bdf, &dev), 0);
	assert_string_equal(dev->bdf, bdf);

	assert_int_equal(dev->ops->map_bar(dev, 0, &bar, &bar_len), 0);
	assert_true(bar_len >= 0x2000);
	cap = rd32(bar, NVME_REG_CAP) | (uint64_t)rd32(bar, NVME_REG_CAP + 4) << 32;
	assert_true(cap != ~0ull);
	assert_true(rd32(bar, NVME_REG_VS) >> 16 >= 1);
	assert_int_equal(NVME_CAP_DSTRD(cap), 0);   /* doorbells 4 bytes apart below */

	/* Disable, program the admin queues, enable (NVMe 2.0 §3.5.1). */
	wr32(bar, NVME_REG_CC, 0);
	assert_int_equal(wait_rdy(bar, cap, 0), 0);
	assert_int_equal(nvr_pci_dma_alloc(dev, 4096, (void **)&sq, &sq_iova), 0);
	assert_int_equal(nvr_pci_dma_alloc(dev, 4096, (void **)&cq, &cq_iova), 0);
	assert_true(sq_iova != 0 && cq_iova != 0 && sq_iova != cq_iova);
	wr32(bar, NVME_REG_AQA, (32 - 1) << 16 | (32 - 1));
	wr64(bar, NVME_REG_ASQ, sq_iova);
	wr64(bar, NVME_REG_ACQ, cq_iova);
	wr32(bar, NVME_REG_CC, NVME_CC_EN | NVME_CC_IOSQES(6) | NVME_CC_IOCQES(4));
	assert_int_equal(wait_rdy(bar, cap, NVME_CSTS_RDY), 0);

	/* The data buffer is application memory, registered. */
	id = aligned_alloc(4096, 4096);
	assert_non_null(id);
	memset(id, 0xa5, 4096);
	assert_int_equal(nvr_pci_dma_register(dev, id, 4096, &id_iova), 0);
	assert_int_equal(nvr_pci_dma_translate(dev, id + 100, 8, &t), 0);
	assert_int_equal(t, id_iova + 100);

	sq[0] = (struct nvme_sqe){ .opc = NVME_ADM_IDENTIFY, .cid = 7, .prp1 = id_iova,
				   .cdw10 = NVME_CNS_CTRLR };
	/* The SQE must be in memory before the doorbell tells the device. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	wr32(bar, NVME_REG_DBS, 1);                  /* SQ0 tail = 1 */

	double end = now() + 10;
	while ((cq[0].status & 1) == 0 && now() < end)
		;
	assert_int_equal(cq[0].status & 1, 1);       /* phase tag flipped: posted */
	/* Read the CQE's fields only after its phase tag. */
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	assert_int_equal(cq[0].cid, 7);
	assert_int_equal(cq[0].status >> 1, 0);
	wr32(bar, NVME_REG_DBS + 4, 1);              /* CQ0 head = 1 */

	const struct nvme_id_ctrl *ic = (const void *)id;
	const char *serials = getenv("NVRING_SERIALS");

	assert_int_equal(ic->vid, fn.vendor);        /* the device wrote our buffer */
	if (serials && *serials) {
		char want[21] = "";

		sscanf(serials, "%20s", want);
		assert_memory_equal(ic->sn, want, strlen(want));
	}

	wr32(bar, NVME_REG_CC, 0);
	assert_int_equal(wait_rdy(bar, cap, 0), 0);

	int rc = dev->ops->reset(dev);

	assert_true(rc == 0 || rc == -ENOTSUP);
	bool huge = false;

	for (unsigned i = 0; i < dev->nmaps; i++)
		huge |= dev->maps[i].owned && dev->maps[i].hugepage;
	print_message("reset: %s; DMA chunks from %s\n", rc ? "not offered" : "done",
		      huge ? "hugepages" : "4 KiB pages");
	if (rc == 0) {
		/* After a function-level reset the registers are back to theirs. */
		assert_int_equal(rd32(bar, NVME_REG_CC), 0);
		assert_true(rd32(bar, NVME_REG_VS) >> 16 >= 1);   /* MMIO still on */
	}

	assert_int_equal(nvr_pci_dma_unregister(dev, id), 0);
	assert_int_equal(nvr_pci_dma_free(dev, sq), 0);
	assert_int_equal(nvr_pci_dma_free(dev, (void *)cq), 0);
	free(id);
	dev->ops->close(dev);

	/* Everything was released: the group opens again. */
	assert_int_equal(nvr_vfio_open(bdf, &dev), 0);
	dev->ops->close(dev);
}

/* Is @bdf's group a no-IOMMU one? The same test the library makes. */
static bool noiommu_group(const char *b)
{
	struct nvr_pci_fn fn;
	char path[64];
	bool noiommu = false;

	return nvr_pci_fn_info(b, &fn) == 0 &&
	       nvr_vfio_group_node("/dev/vfio", fn.iommu_group, path, sizeof(path), &noiommu) == 0 &&
	       noiommu;
}

static void test_many_allocs_few_mappings(void **state)
{
	struct nvr_pci_dev *dev;
	void *va[600];
	uint64_t iova[600];
	size_t big = 64ul << 20;
	uint8_t *buf;
	uint64_t bi;

	if (!bdf[0])
		skip();
	assert_int_equal(nvr_vfio_open(bdf, &dev), 0);
	for (int i = 0; i < 600; i++) {
		assert_int_equal(nvr_pci_dma_alloc(dev, 4096, &va[i], &iova[i]), 0);
		assert_true(iova[i] >= 4096);
	}
	/* 600 pages in 2 MiB chunks: two mappings, not 600. */
	assert_int_equal(dev->nmaps, 2);
	if (noiommu_group(bdf)) {
		/* Physical addresses: only a hugepage is surely one range; its
		 * bus address is 2 MiB aligned because the page is. */
		big = 2ul << 20;
		buf = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
		assert_true(buf != MAP_FAILED);
	} else {
		buf = aligned_alloc(2ul << 20, big);
		assert_non_null(buf);
	}
	assert_int_equal(nvr_pci_dma_register(dev, buf, big, &bi), 0);
	assert_int_equal(bi % (2ul << 20), 0);       /* aligned for large IOMMU pages */
	/* close unmaps all of it (dma_fini) without our frees. */
	dev->ops->close(dev);
	if (noiommu_group(bdf))
		munmap(buf, big);
	else
		free(buf);
}

static void test_errors(void **state)
{
	struct nvr_pci_dev *dev, *dev2;
	struct nvr_pci_fn fns[16];
	int n;

	assert_int_equal(nvr_vfio_open("00:1f.7", &dev), -ENODEV);
	assert_int_equal(nvr_vfio_open("nonsense", &dev), -EINVAL);

	/* A function left on the kernel driver is refused with -ENXIO. */
	n = nvr_pci_list_nvme(fns, 16);
	for (int i = 0; i < n && i < 16; i++)
		if (strcmp(fns[i].driver, "vfio-pci"))
			assert_int_equal(nvr_vfio_open(fns[i].bdf, &dev), -ENXIO);

	if (!bdf[0])
		skip();
	/* The group is exclusive: a second open while the first holds it. */
	assert_int_equal(nvr_vfio_open(bdf, &dev), 0);
	assert_int_equal(nvr_vfio_open(bdf, &dev2), -EBUSY);
	dev->ops->close(dev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_identify_close),
		cmocka_unit_test(test_many_allocs_few_mappings),
		cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests(tests, find_bdf, NULL);
}
