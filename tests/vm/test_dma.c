/* SPDX-License-Identifier: MIT */
/*
 * VM test: DMA memory. Which backing is in use (2 MiB hugepages when the
 * guest reserved some, $NVRING_HUGEPAGES > 0, else 4 KiB pages), read from
 * the kernel's own account in /proc/self/smaps; NVR_ATTACH_NO_HUGEPAGES;
 * many allocations (aligned, zeroed, disjoint, consistent bus addresses);
 * an allocation larger than one 2 MiB chunk; application memory registered
 * with nvr_dma_register() used for I/O. In VFIO no-IOMMU mode (boot N) the
 * device gets physical addresses: registered memory must be physically
 * contiguous (hugepage memory), and DMA memory is hugepages or nothing
 * (the fault_noiommu_* cases).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tests/vm/vm_util.h"
#include "tests/vm/vm_io.h"

#define PAGE 4096u

/* KernelPageSize (kB) of the mapping holding @addr, from /proc/self/smaps;
 * -1 if not found. */
static long kernel_page_kb(const void *addr)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool inside = false;
	long kb = -1;
	uintptr_t a = (uintptr_t)addr;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			inside = a >= lo && a < hi;
			continue;
		}
		if (inside && sscanf(line, "KernelPageSize: %ld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return inside ? kb : -1;
}

/* The DMA path in use matches what the guest offers. */
static void test_dma_backing(void **state)
{
	struct vm_ctrlr *v = VM_CTRLR(0);
	long hugepages = vm_env_long("NVRING_HUGEPAGES", 0);
	void *buf;
	long kb;

	(void)state;
	assert_int_equal(nvr_dma_alloc(v->ctrlr, 64 * 1024, &buf), 0);
	kb = kernel_page_kb(buf);
	print_message("DMA path: %s (KernelPageSize %ld kB, $NVRING_HUGEPAGES=%ld)\n",
		      kb == 2048 ? "2 MiB hugepages" : kb == 4 ? "4 KiB pages" : "unknown", kb,
		      hugepages);
	assert_int_equal(nvr_dma_free(v->ctrlr, buf), 0);
	if (hugepages > 0)
		assert_int_equal(kb, 2048);
	else
		assert_int_equal(kb, 4);
}

/* Many allocations of mixed sizes: aligned, zeroed, disjoint, and each
 * one's bus address is contiguous across its pages. */
static void test_many_allocations(void **state)
{
	struct vm_ctrlr *v = VM_CTRLR(0);
	enum { N = 96 };
	void *bufs[N];
	size_t lens[N];
	uint64_t rng = vm_rng(51);

	(void)state;
	for (int i = 0; i < N; i++) {
		uint64_t iova, iova_last;

		lens[i] = (size_t)vm_rand_range(&rng, 1, 40000);
		assert_int_equal(nvr_dma_alloc(v->ctrlr, lens[i], &bufs[i]), 0);
		assert_int_equal((uintptr_t)bufs[i] & (PAGE - 1), 0);
		if (!vm_all_zero(bufs[i], lens[i]))
			fail_msg("allocation %d (%zu bytes) is not zeroed", i, lens[i]);
		memset(bufs[i], 0x40 + (i & 0x3f), lens[i]);
		assert_int_equal(nvr_dma_iova(v->ctrlr, bufs[i], lens[i], &iova), 0);
		assert_int_equal(nvr_dma_iova(v->ctrlr, (uint8_t *)bufs[i] + lens[i] - 1, 1, &iova_last), 0);
		assert_int_equal(iova_last - iova, lens[i] - 1);
		for (int k = 0; k < i; k++) {
			uintptr_t a = (uintptr_t)bufs[i], b = (uintptr_t)bufs[k];

			if (a < b + lens[k] && b < a + lens[i])
				fail_msg("allocations %d and %d overlap", i, k);
		}
	}
	/* Each still holds its own pattern. */
	for (int i = 0; i < N; i++)
		for (size_t k = 0; k < lens[i]; k++)
			if (((uint8_t *)bufs[i])[k] != 0x40 + (i & 0x3f))
				fail_msg("allocation %d byte %zu overwritten", i, k);
	for (int i = 0; i < N; i += 2)
		assert_int_equal(nvr_dma_free(v->ctrlr, bufs[i]), 0);
	/* Freed memory is handed out zeroed again. */
	for (int i = 0; i < N; i += 2) {
		assert_int_equal(nvr_dma_alloc(v->ctrlr, lens[i], &bufs[i]), 0);
		if (!vm_all_zero(bufs[i], lens[i]))
			fail_msg("reallocation %d (%zu bytes) is not zeroed", i, lens[i]);
	}
	for (int i = 0; i < N; i++)
		assert_int_equal(nvr_dma_free(v->ctrlr, bufs[i]), 0);
	/* Double free: -EINVAL, not a crash. */
	assert_int_equal(nvr_dma_free(v->ctrlr, bufs[0]), -EINVAL);
}

/* One allocation larger than a 2 MiB chunk, used for I/O at both ends. */
static void test_large_allocation(void **state)
{
	struct vm_ctrlr *v = VM_CTRLR(0);
	size_t len = 5u << 20;   /* 5 MiB */
	struct vm_io *io = vm_io_open(state, v, 0, len, 52);
	uint32_t nlb = (uint32_t)(64 * 1024 / v->ns.lba_size);
	uint64_t iova;

	assert_int_equal(nvr_dma_iova(v->ctrlr, io->wbuf, len, &iova), 0);
	for (size_t off = 0; off < len; off += len - 64 * 1024 - PAGE) {
		uint64_t lba = vm_rand_range(&io->rng, 0, v->ns.nlba - nlb);

		vm_io_roundtrip(io, off, lba, nlb);
	}
}

/* Application memory, registered, carries I/O; unregistered, it is not
 * DMA memory any more. */
static void test_register(void **state)
{
	struct vm_ctrlr *v = VM_CTRLR(0);
	size_t len = 64 * 1024;
	/* No-IOMMU mode: only physically contiguous memory is one bus range;
	 * a hugepage is (4 KiB pages are by chance only). */
	size_t maplen = vm_noiommu() ? 2u << 20 : len;
	uint8_t *mem = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS |
			    (vm_noiommu() ? MAP_HUGETLB : 0), -1, 0);
	struct vm_io *io = vm_io_open(state, v, 0, len, 53);
	uint32_t nlb = (uint32_t)(32 * 1024 / v->ns.lba_size);
	uint64_t lba = vm_rand_range(&io->rng, 0, v->ns.nlba - nlb);
	uint64_t iova;
	struct vm_wait w = { 0 };

	assert_true(mem != MAP_FAILED);
	assert_int_equal(nvr_dma_register(v->ctrlr, mem + 100, PAGE), -EINVAL);   /* misaligned */
	assert_int_equal(nvr_dma_register(v->ctrlr, mem, len), 0);
	/* Inside a registration: shared (the last unregister unmaps);
	 * straddling its end: refused. */
	assert_int_equal(nvr_dma_register(v->ctrlr, mem + PAGE, PAGE), 0);
	assert_int_equal(nvr_dma_register(v->ctrlr, mem + len - PAGE, 2 * PAGE), -EEXIST);
	assert_int_equal(nvr_dma_unregister(v->ctrlr, mem + PAGE), 0);
	assert_int_equal(nvr_dma_iova(v->ctrlr, mem, len, &iova), 0);

	/* Write from registered memory (offset 512), read into DMA memory. */
	vm_fill_random(&io->rng, mem, len);
	VM_OK(io->qp, NVR_IO_WRITE, v->nsid, mem + 512, lba, nlb);
	memset(io->rbuf, 0xa5, len);
	VM_OK(io->qp, NVR_IO_READ, v->nsid, io->rbuf, lba, nlb);
	VM_SAME(io->rbuf, mem + 512, (size_t)nlb * v->ns.lba_size, "write from registered memory");
	/* And the other way. */
	memset(mem, 0, len);
	VM_OK(io->qp, NVR_IO_READ, v->nsid, mem + PAGE, lba, nlb);
	VM_SAME(mem + PAGE, io->rbuf, (size_t)nlb * v->ns.lba_size, "read into registered memory");

	assert_int_equal(nvr_dma_unregister(v->ctrlr, mem), 0);
	assert_int_equal(nvr_read(io->qp, v->nsid, mem, lba, nlb, vm_wait_cb, &w), -EFAULT);
	assert_int_equal(nvr_dma_iova(v->ctrlr, mem, PAGE, &iova), -EFAULT);
	munmap(mem, maplen);
}

/* Physical address of the page at @va (root reads PFNs), 0 if unknown. */
static uint64_t phys_of(const void *va)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd >= 0 && pread(fd, &e, 8, (off_t)((uintptr_t)va / PAGE * 8)) != 8)
		e = 0;
	if (fd >= 0)
		close(fd);
	return (e >> 63) ? (e & ((1ull << 55) - 1)) * PAGE : 0;
}

/* No-IOMMU mode: nothing translates for the device, so two pages that are
 * not physically adjacent cannot be registered as one range (-EFAULT, as
 * for memory VFIO type1 cannot pin); each page alone can. The two pages
 * are put in descending physical order (swapped with mremap if they
 * happened to be adjacent), so the case is the same every run. */
static void fault_noiommu_register_not_contiguous(void **state)
{
	struct vm_ctrlr *v = VM_CTRLR(0);
	uint8_t *mem = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	uint64_t iova;

	if (!vm_noiommu())
		skip();          /* type1 maps any pages as one range */
	assert_true(mem != MAP_FAILED);
	memset(mem, 1, 3 * PAGE);
	if (phys_of(mem + PAGE) == phys_of(mem) + PAGE) {
		/* Page 0 -> spare slot 2, page 1 -> 0, old page 0 -> 1. */
		assert_true(mremap(mem, PAGE, PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, mem + 2 * PAGE) != MAP_FAILED);
		assert_true(mremap(mem + PAGE, PAGE, PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, mem) != MAP_FAILED);
		assert_true(mremap(mem + 2 * PAGE, PAGE, PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, mem + PAGE) != MAP_FAILED);
	}
	assert_true(phys_of(mem) != 0);
	assert_true(phys_of(mem + PAGE) != phys_of(mem) + PAGE);
	assert_int_equal(nvr_dma_register(v->ctrlr, mem, 2 * PAGE), -EFAULT);
	assert_int_equal(nvr_dma_iova(v->ctrlr, mem, PAGE, &iova), -EFAULT);
	assert_int_equal(nvr_dma_register(v->ctrlr, mem + PAGE, PAGE), 0);
	assert_int_equal(nvr_dma_iova(v->ctrlr, mem + PAGE, PAGE, &iova), 0);
	assert_int_equal(iova, phys_of(mem + PAGE));   /* the bus address is physical */
	assert_int_equal(nvr_dma_unregister(v->ctrlr, mem + PAGE), 0);
	munmap(mem, 3 * PAGE);
}

/* Memory the process cannot write is not DMA memory in either mode (type1
 * cannot pin it for writing; no-IOMMU refuses it rather than let the
 * device write a read-only page or the shared zero page). */
static void fault_noiommu_register_readonly(void **state)
{
	struct vm_ctrlr *v = VM_CTRLR(0);
	uint8_t *mem = mmap(NULL, 2 * PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(mem != MAP_FAILED);
	assert_int_equal(nvr_dma_register(v->ctrlr, mem, 2 * PAGE), -EFAULT);
	assert_int_equal(mprotect(mem, 2 * PAGE, PROT_NONE), 0);
	assert_int_equal(nvr_dma_register(v->ctrlr, mem, 2 * PAGE), -EFAULT);
	munmap(mem, 2 * PAGE);
}

/* No-IOMMU mode: an allocation over one hugepage is one bus range only
 * because its hugepages are physically adjacent, in order (pci/noiommu.c
 * gathers them): check every page's physical address against it. */
static void fault_noiommu_large_alloc_contiguous(void **state)
{
	struct vm_ctrlr *v = VM_CTRLR(0);
	size_t len = 6u << 20;
	uint8_t *buf;
	uint64_t iova;

	(void)state;
	if (!vm_noiommu())
		skip();          /* the IOMMU makes any pages one range */
	assert_int_equal(nvr_dma_alloc(v->ctrlr, len, (void **)&buf), 0);
	assert_int_equal(nvr_dma_iova(v->ctrlr, buf, len, &iova), 0);
	for (size_t off = 0; off < len; off += PAGE)
		if (phys_of(buf + off) != iova + off)
			fail_msg("page +%zu is at physical 0x%llx, bus address 0x%llx", off,
				 (unsigned long long)phys_of(buf + off), (unsigned long long)(iova + off));
	assert_int_equal(nvr_dma_free(v->ctrlr, buf), 0);
}

static unsigned noiommu_warnings;

static void count_warnings(void *arg, int level, const char *msg)
{
	if (level == NVR_LOG_WARN && strstr(msg, "VFIO no-IOMMU mode (unsafe)"))
		noiommu_warnings++;
}

/* NVR_ATTACH_NO_HUGEPAGES: 4 KiB pages whatever the guest offers. Runs
 * last: it re-attaches controller 0. */
static void test_no_hugepages_flag(void **state)
{
	struct vm_ctrlr *v = VM_CTRLR(0);
	struct nvr_ctrlr_opts opts = { .flags = NVR_ATTACH_NO_HUGEPAGES };
	struct nvr_ctrlr *c;
	void *buf;
	long kb;
	int rc;

	(void)state;
	if (vm_noiommu())
		skip();          /* fault_noiommu_no_hugepages_flag */
	assert_int_equal(nvr_ctrlr_detach(v->ctrlr), 0);
	v->ctrlr = NULL;
	v->attach_rc = -ENODEV;   /* until re-attached below */
	rc = nvr_ctrlr_attach(v->bdf, &opts, &c);
	if (rc < 0)
		fail_msg("attach %s with NVR_ATTACH_NO_HUGEPAGES: %s", v->bdf, strerror(-rc));
	assert_int_equal(nvr_dma_alloc(c, 64 * 1024, &buf), 0);
	kb = kernel_page_kb(buf);
	print_message("with NVR_ATTACH_NO_HUGEPAGES: KernelPageSize %ld kB\n", kb);
	assert_int_equal(nvr_dma_free(c, buf), 0);
	assert_int_equal(nvr_ctrlr_detach(c), 0);
	assert_int_equal(kb, 4);

	/* A detach + attach cycle leaves a working controller. */
	v->attach_rc = nvr_ctrlr_attach(v->bdf, NULL, &v->ctrlr);
	assert_int_equal(v->attach_rc, 0);
	v->info = nvr_ctrlr_get_info(v->ctrlr);
	assert_string_equal(v->info->bdf, v->bdf);
}

/* No-IOMMU mode: 4 KiB pages would be DMA'd by physical address with
 * nothing pinning them in place: NVR_ATTACH_NO_HUGEPAGES makes attach fail
 * (-ENOMEM, one line naming the fix) rather than fall back to them. Runs
 * last, re-attaching controller 0. */
static void fault_noiommu_no_hugepages_flag(void **state)
{
	struct vm_ctrlr *v = VM_CTRLR(0);
	struct nvr_ctrlr_opts opts = { .flags = NVR_ATTACH_NO_HUGEPAGES };
	struct nvr_ctrlr *c = NULL;

	(void)state;
	if (!vm_noiommu())
		skip();          /* test_no_hugepages_flag */
	assert_int_equal(nvr_ctrlr_detach(v->ctrlr), 0);
	v->ctrlr = NULL;
	v->attach_rc = -ENODEV;
	assert_int_equal(nvr_ctrlr_attach(v->bdf, &opts, &c), -ENOMEM);
	/* Nothing was left open: a plain attach works at once, and says in
	 * one warning line that the device is not confined. */
	noiommu_warnings = 0;
	nvr_set_log_hook(count_warnings, NULL);
	v->attach_rc = nvr_ctrlr_attach(v->bdf, NULL, &v->ctrlr);
	nvr_set_log_hook(NULL, NULL);
	assert_int_equal(v->attach_rc, 0);
	assert_int_equal(noiommu_warnings, 1);
	v->info = nvr_ctrlr_get_info(v->ctrlr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dma_backing),
		cmocka_unit_test(test_many_allocations),
		cmocka_unit_test_setup_teardown(test_large_allocation, vm_io_setup, vm_io_teardown),
		cmocka_unit_test_setup_teardown(test_register, vm_io_setup, vm_io_teardown),
		cmocka_unit_test(fault_noiommu_register_not_contiguous),
		cmocka_unit_test(fault_noiommu_register_readonly),
		cmocka_unit_test(fault_noiommu_large_alloc_contiguous),
		cmocka_unit_test(test_no_hugepages_flag),
		cmocka_unit_test(fault_noiommu_no_hugepages_flag),
	};

	return cmocka_run_group_tests_name("vm_dma", tests, vm_setup, vm_teardown);
}
