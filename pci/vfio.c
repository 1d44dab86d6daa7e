/* SPDX-License-Identifier: MIT */
/*
 * The VFIO backend (Documentation/driver-api/vfio.rst): a PCI function bound
 * to vfio-pci, its IOMMU group attached to a container, DMA through the
 * type1 v2 IOMMU with IOVAs from our own allocator (pci/iova.c) inside the
 * ranges the kernel reports.
 *
 * Layout: the generic VFIO part (group, device, BARs, config space, reset,
 * close) is shared; each IOMMU model is one section and one ops struct:
 * type1_* (the IOMMU translates IOVAs we allocate) and noiommu_* (VFIO's
 * unsafe no-IOMMU mode: nothing translates, the device is given physical
 * addresses of pinned hugepages from /proc/self/pagemap). The group node's
 * name chooses: /dev/vfio/N is type1, /dev/vfio/noiommu-N no-IOMMU.
 *
 * Every failure logs one line (nvr_log(), pci/log.h) saying what to do.
 */
#include "pci/pci.h"
#include "pci/holder.h"
#include "pci/iova.h"
#include "pci/log.h"
#include "pci/noiommu.h"
#include "pci/sysfs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define VFIO_DEV_DIR        "/dev/vfio"
#define VFIO_CONTAINER_PATH VFIO_DEV_DIR "/vfio"
#define NVR_VFIO_NBARS      (VFIO_PCI_BAR5_REGION_INDEX + 1)

struct nvr_vfio_dev {
	struct nvr_pci_dev pci;        /* first: the ops cast back */
	int container, group, device;  /* fds, -1 when closed */
	int group_id;
	int holder_fd;                 /* pci/holder.h lock, -1 if none */
	uint32_t device_flags;         /* VFIO_DEVICE_FLAGS_* */
	uint64_t config_offset;        /* config space region in the device fd */
	pthread_mutex_t bar_lock;
	struct { volatile void *va; size_t len; } bars[NVR_VFIO_NBARS];
	/* Device request (VFIO_PCI_REQ_IRQ_INDEX): an eventfd the kernel
	 * signals when it wants the device back; -1 if not registered. */
	int req_fd;
	atomic_bool removal;
	/* MSI-X (VFIO_PCI_MSIX_IRQ_INDEX): one eventfd per enabled vector,
	 * vector i signals irq_fds[i]; nirq 0 when not enabled. */
	int *irq_fds;
	unsigned nirq;

	/* type1 IOMMU state */
	pthread_mutex_t iova_lock;     /* dma_map may run outside dma_lock */
	struct nvr_iova iova;
	/* Driver-internal memory: a window at the top of the highest usable
	 * range (pci.internal_iova_lo/hi), or none (has_internal false). */
	struct nvr_iova iova_internal;
	bool has_internal;
	uint64_t iova_pgsizes;         /* bitmap of IOMMU page sizes */

	/* no-IOMMU state */
	bool noiommu;                  /* the group is /dev/vfio/noiommu-N */
	int pagemap;                   /* /proc/self/pagemap, -1 when closed */
};

static struct nvr_vfio_dev *to_vfio(struct nvr_pci_dev *dev)
{
	return (struct nvr_vfio_dev *)dev;
}

/* ---- the type1 IOMMU model ---------------------------------------------- */

/* Find capability @id in a VFIO info buffer of @argsz bytes whose chain
 * starts at @off (offsets are from the start of the buffer). */
static const struct vfio_info_cap_header *find_cap(const void *buf, uint32_t argsz,
						   uint32_t off, uint16_t id, size_t min_size)
{
	/* A chain longer than this is a corrupt buffer, not a real one. */
	for (int hops = 0; off && hops < 64; hops++) {
		const struct vfio_info_cap_header *h;

		if (off > argsz || argsz - off < sizeof(*h))
			return NULL;
		h = (const struct vfio_info_cap_header *)((const uint8_t *)buf + off);
		if (h->id == id)
			return argsz - off >= min_size ? h : NULL;
		off = h->next;
	}
	return NULL;
}

#define INTERNAL_WINDOW_MAX   (4ull << 30)   /* queues and PRP lists need far less */
#define INTERNAL_WINDOW_MIN   (64ull << 20)
#define INTERNAL_WINDOW_ALIGN (2ull << 20)

/*
 * Take a window for driver-internal memory (queues, PRP lists, Identify
 * data) from the top of the highest usable IOVA range, out of the main
 * allocator: a quarter of that range, at most 4 GiB, 2 MiB aligned. One
 * window lets nvr_io() refuse a segment reaching into it with two compares.
 * A range too small for it leaves no window (internal memory is then
 * mapped like any other).
 */
static int type1_split_internal(struct nvr_vfio_dev *vd, uint64_t page)
{
	const struct nvr_iova_range top = vd->iova.usable[vd->iova.nusable - 1];
	uint64_t size = top.end - top.start, w = size / 4, hi, lo;
	struct nvr_iova_range *ranges, win;
	unsigned n = vd->iova.nusable;
	int err;

	if (w > INTERNAL_WINDOW_MAX)
		w = INTERNAL_WINDOW_MAX;
	w &= ~(INTERNAL_WINDOW_ALIGN - 1);
	hi = (top.end - (INTERNAL_WINDOW_ALIGN - 1)) & ~(INTERNAL_WINDOW_ALIGN - 1);
	if (w < INTERNAL_WINDOW_MIN || hi < top.start + w + INTERNAL_WINDOW_ALIGN)
		return 0;
	lo = hi - w;
	ranges = calloc(n, sizeof(*ranges));
	if (!ranges)
		return -ENOMEM;
	memcpy(ranges, vd->iova.usable, n * sizeof(*ranges));
	ranges[n - 1].end = lo - 1;
	win = (struct nvr_iova_range){ lo, hi - 1 };
	nvr_iova_fini(&vd->iova);
	err = nvr_iova_init(&vd->iova, ranges, n, page);
	if (!err) {
		err = nvr_iova_init(&vd->iova_internal, &win, 1, page);
		if (err)
			nvr_iova_fini(&vd->iova);
	}
	free(ranges);
	if (err) {
		nvr_log(NVR_LOG_ERR, "cannot set up the IOVA allocators (%s)", strerror(-err));
		return err;
	}
	vd->has_internal = true;
	vd->pci.internal_iova_lo = lo;
	vd->pci.internal_iova_hi = hi;
	return 0;
}

/* VFIO_IOMMU_GET_INFO with its capability chain: the page sizes and the
 * usable IOVA ranges, which set up the IOVA allocator. */
static int type1_setup_iova(struct nvr_vfio_dev *vd)
{
	struct vfio_iommu_type1_info *info;
	const struct vfio_iommu_type1_info_cap_iova_range *cap = NULL;
	struct nvr_iova_range *ranges = NULL;
	uint32_t argsz = sizeof(*info), n = 0;
	uint64_t page;
	bool have_ranges;
	int err;

	for (;;) {
		info = calloc(1, argsz);
		if (!info)
			return -ENOMEM;
		info->argsz = argsz;
		if (ioctl(vd->container, VFIO_IOMMU_GET_INFO, info) < 0) {
			err = -errno;
			nvr_log(NVR_LOG_ERR, "VFIO_IOMMU_GET_INFO failed: %s", strerror(-err));
			free(info);
			return err;
		}
		/* The kernel raises argsz when the capabilities did not fit. */
		if (info->argsz <= argsz)
			break;
		argsz = info->argsz;
		free(info);
	}

	if (!(info->flags & VFIO_IOMMU_INFO_PGSIZES) || !info->iova_pgsizes) {
		nvr_log(NVR_LOG_ERR, "VFIO type1 IOMMU reports no page sizes");
		free(info);
		return -ENOTSUP;
	}
	vd->iova_pgsizes = info->iova_pgsizes;
	page = info->iova_pgsizes & -info->iova_pgsizes;   /* smallest page size */

	if ((info->flags & VFIO_IOMMU_INFO_CAPS) && info->cap_offset)
		cap = (const void *)find_cap(info, argsz, info->cap_offset,
					     VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, sizeof(*cap));
	if (cap) {
		const uint8_t *end = (const uint8_t *)info + argsz;
		const uint8_t *first = (const uint8_t *)cap->iova_ranges;

		n = cap->nr_iovas;
		if (n == 0 || (size_t)(end - first) / sizeof(cap->iova_ranges[0]) < n) {
			nvr_log(NVR_LOG_ERR, "VFIO reported a garbled IOVA range capability");
			free(info);
			return -EIO;
		}
		ranges = calloc(n, sizeof(*ranges));
		if (!ranges) {
			free(info);
			return -ENOMEM;
		}
		for (uint32_t i = 0; i < n; i++)
			ranges[i] = (struct nvr_iova_range){ cap->iova_ranges[i].start,
							     cap->iova_ranges[i].end };
	}
	have_ranges = cap != NULL;
	free(info);

	if (!have_ranges) {
		/* Kernels before 5.4 lack the capability. 39 bits is the
		 * narrowest address width common IOMMUs have (VT-d with 3-level
		 * tables, QEMU's intel-iommu default), and the x86 MSI window is
		 * left out by hand: DMA writes there are taken as interrupts, not
		 * translated (harmless to skip elsewhere). */
		static const struct nvr_iova_range fallback[] = {
			{ 1ull << 12, 0xfedfffffull },
			{ 0xfef00000ull, (1ull << 39) - 1 },
		};

		err = nvr_iova_init(&vd->iova, fallback, 2, page);
	} else {
		err = nvr_iova_init(&vd->iova, ranges, n, page);
	}
	free(ranges);
	if (err) {
		nvr_log(NVR_LOG_ERR, "no usable IOVA range reported by VFIO (%s)", strerror(-err));
		return err;
	}
	return type1_split_internal(vd, page);
}

/* Attach the group's container to the type1 v2 IOMMU. */
static int type1_setup(struct nvr_vfio_dev *vd)
{
	int err;

	if (ioctl(vd->container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) <= 0) {
		nvr_log(NVR_LOG_ERR, "this kernel's VFIO lacks the type1 v2 IOMMU: load vfio_iommu_type1");
		return -ENOTSUP;
	}
	if (ioctl(vd->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0) {
		err = -errno;
		if (err == -EPERM)
			nvr_log(NVR_LOG_ERR, "VFIO_SET_IOMMU refused (EPERM): the IOMMU has no interrupt remapping; "
				"enable it (e.g. QEMU intel-iommu,intremap=on) or load vfio_iommu_type1 "
				"with allow_unsafe_interrupts=1");
		else
			nvr_log(NVR_LOG_ERR, "VFIO_SET_IOMMU(type1v2) failed: %s", strerror(-err));
		return err;
	}
	return type1_setup_iova(vd);
}

/* IOVA alignment for a mapping of @len bytes: the largest IOMMU page size
 * that fits in it, so the IOMMU can use large pages where the memory is. */
static uint64_t type1_align(const struct nvr_vfio_dev *vd, size_t len)
{
	uint64_t align = vd->iova.page;

	for (uint64_t ps = vd->iova_pgsizes; ps; ps &= ps - 1) {
		uint64_t bit = ps & -ps;

		if (bit <= len && bit > align)
			align = bit;
	}
	return align;
}

/* The allocator that owns @iova: the internal window's or the main one. */
static struct nvr_iova *type1_alloc_of(struct nvr_vfio_dev *vd, uint64_t iova)
{
	if (vd->has_internal && iova >= vd->pci.internal_iova_lo && iova < vd->pci.internal_iova_hi)
		return &vd->iova_internal;
	return &vd->iova;
}

static int type1_map_from(struct nvr_vfio_dev *vd, struct nvr_iova *alloc, void *va, size_t len,
			  bool ro, uint64_t *iova)
{
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		/* READ: the device may read the memory; WRITE: write it */
		.flags = VFIO_DMA_MAP_FLAG_READ | (ro ? 0 : VFIO_DMA_MAP_FLAG_WRITE),
		.vaddr = (uintptr_t)va,
		.size = len,
	};
	uint64_t at;
	int err;

	if (!len || (((uintptr_t)va | len) & (vd->iova.page - 1)))
		return -EINVAL;
	pthread_mutex_lock(&vd->iova_lock);
	err = nvr_iova_alloc(alloc, len, type1_align(vd, len), &at);
	pthread_mutex_unlock(&vd->iova_lock);
	if (err) {
		nvr_log(NVR_LOG_ERR, "out of IOVA space for a %zu-byte DMA mapping", len);
		return err;
	}
	map.iova = at;

	if (ioctl(vd->container, VFIO_IOMMU_MAP_DMA, &map) < 0) {
		err = -errno;
		pthread_mutex_lock(&vd->iova_lock);
		nvr_iova_free(alloc, map.iova, len);
		pthread_mutex_unlock(&vd->iova_lock);
		/* Pinned pages count against RLIMIT_MEMLOCK: name the fix if
		 * that is the cause; ENOSPC is the 65,535-mapping limit. */
		if (err != -ENOMEM || nvr_pci_memlock_check(len) == 0)
			nvr_log(NVR_LOG_ERR, "VFIO_IOMMU_MAP_DMA of %zu bytes failed: %s", len, strerror(-err));
		return err;
	}
	*iova = map.iova;
	return 0;
}

static int type1_dma_map(struct nvr_pci_dev *dev, void *va, size_t len, uint64_t *iova)
{
	return type1_map_from(to_vfio(dev), &to_vfio(dev)->iova, va, len, false, iova);
}

static int type1_dma_map_internal(struct nvr_pci_dev *dev, void *va, size_t len, uint64_t *iova)
{
	struct nvr_vfio_dev *vd = to_vfio(dev);

	return type1_map_from(vd, vd->has_internal ? &vd->iova_internal : &vd->iova, va, len,
			      false, iova);
}

static int type1_dma_map_internal_ro(struct nvr_pci_dev *dev, void *va, size_t len,
				     uint64_t *iova)
{
	struct nvr_vfio_dev *vd = to_vfio(dev);

	return type1_map_from(vd, vd->has_internal ? &vd->iova_internal : &vd->iova, va, len,
			      true, iova);
}

static int type1_dma_unmap(struct nvr_pci_dev *dev, void *va, size_t len, uint64_t iova)
{
	struct nvr_vfio_dev *vd = to_vfio(dev);
	struct vfio_iommu_type1_dma_unmap unmap = {
		.argsz = sizeof(unmap),
		.iova = iova,
		.size = len,
	};
	int err;

	if (ioctl(vd->container, VFIO_IOMMU_UNMAP_DMA, &unmap) < 0) {
		err = -errno;
		nvr_log(NVR_LOG_ERR, "VFIO_IOMMU_UNMAP_DMA of %zu bytes at IOVA 0x%" PRIx64 " failed: %s",
			len, iova, strerror(-err));
		return err;
	}
	/* The kernel reports how much it unmapped: anything else means the
	 * mapping was not the one we made, so keep its IOVA reserved. */
	if (unmap.size != len) {
		nvr_log(NVR_LOG_ERR, "VFIO_IOMMU_UNMAP_DMA at IOVA 0x%" PRIx64 " unmapped %llu bytes, not %zu",
			iova, (unsigned long long)unmap.size, len);
		return -EIO;
	}
	pthread_mutex_lock(&vd->iova_lock);
	err = nvr_iova_free(type1_alloc_of(vd, iova), iova, len);
	pthread_mutex_unlock(&vd->iova_lock);
	return err;
}

static void type1_fini(struct nvr_vfio_dev *vd)
{
	nvr_iova_fini(&vd->iova);
	if (vd->has_internal)
		nvr_iova_fini(&vd->iova_internal);
}

/* ---- the no-IOMMU model --------------------------------------------------
 *
 * Nothing translates or confines the device's DMA: its bus addresses are
 * physical addresses, which only CAP_SYS_ADMIN may read from
 * /proc/self/pagemap, and VFIO_SET_IOMMU(VFIO_NOIOMMU_IOMMU) itself needs
 * CAP_SYS_RAWIO. Nothing pins pages either, so a mapping is made present,
 * writable (private pages unshared: a copy-on-write page must not be the
 * one the device writes) and locked here, and must be physically
 * contiguous to be one bus range. pci/dma.c takes its DMA memory from
 * hugepages only in this mode (NVR_DMA_NEED_HUGEPAGES): a 2 MiB hugepage
 * is physically contiguous, and hugetlb pages are neither swapped nor
 * moved by compaction, which mlock() alone does not rule out for 4 KiB
 * pages.
 */

static int noiommu_setup(struct nvr_vfio_dev *vd)
{
	volatile char probe = 0;   /* a page surely in memory: this stack */
	uint64_t pa;
	size_t contig;
	int err;

	if (ioctl(vd->container, VFIO_CHECK_EXTENSION, VFIO_NOIOMMU_IOMMU) <= 0) {
		nvr_log(NVR_LOG_ERR, "%s: its IOMMU group is a no-IOMMU group but the container offers no "
			"no-IOMMU model: load vfio with enable_unsafe_noiommu_mode=1", vd->pci.bdf);
		return -ENOTSUP;
	}
	if (ioctl(vd->container, VFIO_SET_IOMMU, VFIO_NOIOMMU_IOMMU) < 0) {
		err = -errno;
		nvr_log(NVR_LOG_ERR, "VFIO_SET_IOMMU(no-IOMMU) failed: %s%s", strerror(-err),
			err == -EPERM ? ": no-IOMMU mode needs CAP_SYS_RAWIO (run as root)" : "");
		return err;
	}
	vd->pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (vd->pagemap < 0) {
		err = -errno;
		nvr_log(NVR_LOG_ERR, "no-IOMMU mode: cannot open /proc/self/pagemap: %s", strerror(-err));
		return err;
	}
	err = nvr_pagemap_phys(vd->pagemap, (uintptr_t)&probe, 1, &pa, &contig);
	(void)probe;
	if (err) {
		nvr_log(NVR_LOG_ERR, "no-IOMMU mode gives the device physical addresses, but "
			"/proc/self/pagemap %s: %s", err == -EPERM ? "shows them only to CAP_SYS_ADMIN"
			: "cannot be read", err == -EPERM ? "run as root" : strerror(-err));
		return err;
	}
	return 0;
}

static int noiommu_dma_map(struct nvr_pci_dev *dev, void *va, size_t len, uint64_t *iova)
{
	struct nvr_vfio_dev *vd = to_vfio(dev);
	size_t contig = 0;
	int err = nvr_noiommu_pin(vd->pagemap, va, len, iova, &contig);

	switch (err) {
	case 0:
	case -EINVAL:
		return err;
	case -EFAULT:
		/* What VFIO_IOMMU_MAP_DMA says of such memory. */
		nvr_log(NVR_LOG_ERR, "%s: no-IOMMU mode: %zu bytes at %p are not writable memory",
			dev->bdf, len, va);
		return err;
	case -ERANGE:
		nvr_log(NVR_LOG_ERR, "%s: no-IOMMU mode: %zu bytes at %p are not physically contiguous "
			"(the page at +%zu is elsewhere) and nothing translates for the device: one DMA "
			"range must lie in one hugepage (MAP_HUGETLB, 2 MiB aligned)", dev->bdf, len, va,
			contig);
		return -EFAULT;
	case -ENOMEM:
		nvr_pci_memlock_check(len);   /* names the fix if the limit is why */
		return err;
	default:
		nvr_log(NVR_LOG_ERR, "%s: no-IOMMU mode: no physical address for %zu bytes at %p: %s",
			dev->bdf, len, va, strerror(-err));
		return err;
	}
}

static int noiommu_dma_unmap(struct nvr_pci_dev *dev, void *va, size_t len, uint64_t iova)
{
	nvr_noiommu_unpin(va, len);   /* nothing to tell the kernel */
	return 0;
}

/* Several hugepages are one bus range only if physically adjacent. */
static int noiommu_mem_huge(struct nvr_pci_dev *dev, size_t size, void **va)
{
	int err = nvr_noiommu_huge_contig(to_vfio(dev)->pagemap, size, va);

	if (err && size > NVR_NOIOMMU_HUGE)
		nvr_log(NVR_LOG_ERR, "%s: no-IOMMU mode: no %zu physically adjacent free hugepages for a "
			"%zu MiB DMA allocation (%s): reserve more, or use smaller queues and buffers",
			dev->bdf, size / NVR_NOIOMMU_HUGE, size >> 20, strerror(-err));
	return err;
}

static const struct nvr_pci_ops vfio_noiommu_ops;

/* ---- generic VFIO device --------------------------------------------- */

static int region_info(struct nvr_vfio_dev *vd, uint32_t index, struct vfio_region_info *ri)
{
	*ri = (struct vfio_region_info){ .argsz = sizeof(*ri), .index = index };
	if (ioctl(vd->device, VFIO_DEVICE_GET_REGION_INFO, ri) < 0)
		return -errno;
	return 0;
}

static int vfio_map_bar(struct nvr_pci_dev *dev, int bar, volatile void **va, size_t *len)
{
	struct nvr_vfio_dev *vd = to_vfio(dev);
	struct vfio_region_info ri;
	void *p;
	int err = 0;

	if (bar < 0 || bar >= NVR_VFIO_NBARS)
		return -EINVAL;
	pthread_mutex_lock(&vd->bar_lock);
	if (vd->bars[bar].va)
		goto done;                 /* mapped already: the same mapping */
	err = region_info(vd, VFIO_PCI_BAR0_REGION_INDEX + (uint32_t)bar, &ri);
	if (err) {
		nvr_log(NVR_LOG_ERR, "%s: BAR%d region info failed: %s", dev->bdf, bar, strerror(-err));
		goto done;
	}
	if (!ri.size || !(ri.flags & VFIO_REGION_INFO_FLAG_MMAP)) {
		nvr_log(NVR_LOG_ERR, "%s: BAR%d is %s", dev->bdf, bar,
			ri.size ? "not mappable" : "not implemented");
		err = ri.size ? -ENOTSUP : -ENOENT;
		goto done;
	}
	p = mmap(NULL, ri.size, PROT_READ | PROT_WRITE, MAP_SHARED, vd->device, (off_t)ri.offset);
	if (p == MAP_FAILED) {
		err = -errno;
		nvr_log(NVR_LOG_ERR, "%s: mmap of BAR%d (%llu bytes) failed: %s", dev->bdf, bar,
			(unsigned long long)ri.size, strerror(-err));
		goto done;
	}
	vd->bars[bar].va = p;
	vd->bars[bar].len = ri.size;
done:
	if (!err) {
		*va = vd->bars[bar].va;
		*len = vd->bars[bar].len;
	}
	pthread_mutex_unlock(&vd->bar_lock);
	return err;
}

/* Memory space on (BAR0 answers), bus mastering on (the device may DMA),
 * INTx off (we poll; no stray legacy interrupts). */
static int vfio_enable_command(struct nvr_vfio_dev *vd)
{
	off_t at = (off_t)(vd->config_offset + PCI_COMMAND);
	uint16_t cmd;
	ssize_t n;

	n = pread(vd->device, &cmd, sizeof(cmd), at);
	if (n == (ssize_t)sizeof(cmd)) {
		cmd |= PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE;
		n = pwrite(vd->device, &cmd, sizeof(cmd), at);
		if (n == (ssize_t)sizeof(cmd))
			return 0;
	}
	int err = n < 0 ? -errno : -EIO;

	nvr_log(NVR_LOG_ERR, "%s: cannot update the PCI command register: %s", vd->pci.bdf,
		strerror(-err));
	return err;
}

static int vfio_reset(struct nvr_pci_dev *dev)
{
	struct nvr_vfio_dev *vd = to_vfio(dev);

	if (!(vd->device_flags & VFIO_DEVICE_FLAGS_RESET))
		return -ENOTSUP;
	if (ioctl(vd->device, VFIO_DEVICE_RESET) < 0) {
		int err = -errno;

		nvr_log(NVR_LOG_ERR, "%s: VFIO_DEVICE_RESET failed: %s", dev->bdf, strerror(-err));
		return err;
	}
	/* A function-level reset clears the command register; the kernel
	 * restores saved state, but make sure DMA and MMIO are on again. */
	return vfio_enable_command(vd);
}

static void irq_fds_close(struct nvr_vfio_dev *vd);

/* Release everything @vd holds; fds at -1 and NULL BARs are skipped. */
static void vfio_release(struct nvr_vfio_dev *vd, bool dma_inited, bool iommu_inited)
{
	if (dma_inited)
		nvr_pci_dma_fini(&vd->pci);   /* unmaps while the container is open */
	for (int i = 0; i < NVR_VFIO_NBARS; i++)
		if (vd->bars[i].va)
			munmap((void *)vd->bars[i].va, vd->bars[i].len);
	if (iommu_inited && !vd->noiommu)
		type1_fini(vd);
	if (vd->pagemap >= 0)
		close(vd->pagemap);
	if (vd->device >= 0)
		close(vd->device);
	if (vd->req_fd >= 0)
		close(vd->req_fd);       /* after the device: that tears the trigger down */
	irq_fds_close(vd);               /* so are the MSI-X triggers */
	if (vd->group >= 0)
		close(vd->group);        /* detaches the group from the container */
	if (vd->container >= 0)
		close(vd->container);
	nvr_holder_release(vd->holder_fd);   /* last: the device is free now */
	pthread_mutex_destroy(&vd->bar_lock);
	pthread_mutex_destroy(&vd->iova_lock);
	free(vd);
}

static void vfio_close(struct nvr_pci_dev *dev)
{
	vfio_release(to_vfio(dev), true, true);
}

/*
 * Register an eventfd as the device request trigger. A hot-remove or an
 * unbind waits in the kernel until the process releases the device either
 * way; with the trigger the kernel tells the process (and tells it again
 * every 10 s while it waits), without it it only logs "No device request
 * channel registered, blocked until released by user". Best effort: a
 * kernel or device without the index leaves removal_requested() false.
 */
static void vfio_req_register(struct nvr_vfio_dev *vd)
{
	struct vfio_irq_info info = { .argsz = sizeof(info), .index = VFIO_PCI_REQ_IRQ_INDEX };
	/* struct vfio_irq_set ends in a flexible array: the eventfd follows */
	union {
		struct vfio_irq_set set;
		uint8_t bytes[sizeof(struct vfio_irq_set) + sizeof(int32_t)];
	} req;
	int fd;

	if (ioctl(vd->device, VFIO_DEVICE_GET_IRQ_INFO, &info) < 0 || info.count < 1) {
		nvr_log(NVR_LOG_INFO, "%s: no VFIO device request interrupt: a hot-remove "
			"will not be announced", vd->pci.bdf);
		return;
	}
	fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fd < 0)
		return;
	req.set = (struct vfio_irq_set){
		.argsz = sizeof(req),
		.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
		.index = VFIO_PCI_REQ_IRQ_INDEX, .start = 0, .count = 1,
	};
	memcpy(req.set.data, &fd, sizeof(fd));
	if (ioctl(vd->device, VFIO_DEVICE_SET_IRQS, &req) < 0) {
		nvr_log(NVR_LOG_WARN, "%s: cannot register the VFIO device request eventfd: %s",
			vd->pci.bdf, strerror(errno));
		close(fd);
		return;
	}
	vd->req_fd = fd;
}

static bool vfio_removal_requested(struct nvr_pci_dev *dev)
{
	struct nvr_vfio_dev *vd = to_vfio(dev);
	uint64_t n;

	/* Acquire/release pair so a caller that sees true also sees it from
	 * any thread; the eventfd read itself is the kernel's business. */
	if (atomic_load_explicit(&vd->removal, memory_order_acquire))
		return true;
	if (vd->req_fd >= 0 && read(vd->req_fd, &n, sizeof(n)) == (ssize_t)sizeof(n) && n) {
		atomic_store_explicit(&vd->removal, true, memory_order_release);
		return true;
	}
	return false;
}

static void vfio_release_device(struct nvr_pci_dev *dev)
{
	struct nvr_vfio_dev *vd = to_vfio(dev);

	pthread_mutex_lock(&vd->bar_lock);
	for (int i = 0; i < NVR_VFIO_NBARS; i++) {
		void *va = (void *)vd->bars[i].va;

		if (!va)
			continue;
		/* in place, so pointers into the BAR stay valid */
		if (mmap(va, vd->bars[i].len, PROT_READ | PROT_WRITE,
			 MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == va)
			memset(va, 0xff, vd->bars[i].len);
	}
	pthread_mutex_unlock(&vd->bar_lock);
	if (vd->device >= 0) {
		close(vd->device);
		vd->device = -1;
	}
	if (vd->req_fd >= 0) {
		close(vd->req_fd);
		vd->req_fd = -1;
	}
	nvr_log(NVR_LOG_INFO, "%s: device released to the kernel", dev->bdf);
}

/* ---- MSI-X to eventfds ---------------------------------------------------
 *
 * Each vector the driver uses is routed to an eventfd: the kernel's
 * vfio-pci interrupt handler signals it (eventfd_signal()), so a thread
 * may sleep in poll() until its completion queue has news. Both IOMMU
 * models take the same ioctls: no-IOMMU mode delivers MSI-X as type1
 * does (interrupt remapping is a type1 matter, checked at VFIO_SET_IOMMU).
 */

static void irq_fds_close(struct nvr_vfio_dev *vd)
{
	for (unsigned i = 0; i < vd->nirq; i++)
		if (vd->irq_fds[i] >= 0)
			close(vd->irq_fds[i]);
	free(vd->irq_fds);
	vd->irq_fds = NULL;
	vd->nirq = 0;
}

static unsigned vfio_irq_vectors(struct nvr_pci_dev *dev)
{
	struct nvr_vfio_dev *vd = to_vfio(dev);
	struct vfio_irq_info info = { .argsz = sizeof(info), .index = VFIO_PCI_MSIX_IRQ_INDEX };

	if (vd->device < 0 || ioctl(vd->device, VFIO_DEVICE_GET_IRQ_INFO, &info) < 0 ||
	    !(info.flags & VFIO_IRQ_INFO_EVENTFD))
		return 0;
	return info.count;
}

static int vfio_irq_enable(struct nvr_pci_dev *dev, unsigned n, int *fds)
{
	struct nvr_vfio_dev *vd = to_vfio(dev);
	struct vfio_irq_set *set;
	size_t argsz = sizeof(*set) + (size_t)n * sizeof(int32_t);
	int err = 0;

	if (vd->nirq)
		return -EBUSY;
	if (!n || n > NVR_PCI_MAX_IRQS || vd->device < 0)
		return -EINVAL;
	vd->irq_fds = calloc(n, sizeof(*vd->irq_fds));
	set = calloc(1, argsz);   /* the eventfds follow the header (flexible array) */
	if (!vd->irq_fds || !set) {
		free(vd->irq_fds);
		vd->irq_fds = NULL;
		free(set);
		return -ENOMEM;
	}
	vd->nirq = n;
	for (unsigned i = 0; i < n; i++)
		vd->irq_fds[i] = -1;
	for (unsigned i = 0; i < n && !err; i++) {
		vd->irq_fds[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (vd->irq_fds[i] < 0)
			err = -errno;
	}
	if (!err) {
		*set = (struct vfio_irq_set){
			.argsz = (uint32_t)argsz,
			.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
			.index = VFIO_PCI_MSIX_IRQ_INDEX, .start = 0, .count = n,
		};
		memcpy(set->data, vd->irq_fds, (size_t)n * sizeof(int32_t));
		if (ioctl(vd->device, VFIO_DEVICE_SET_IRQS, set) < 0) {
			err = -errno;
			nvr_log(NVR_LOG_WARN, "%s: cannot route %u MSI-X vectors to eventfds (%s): "
				"its queues are polled", dev->bdf, n, strerror(-err));
		}
	}
	free(set);
	if (err) {
		irq_fds_close(vd);
		return err;
	}
	memcpy(fds, vd->irq_fds, (size_t)n * sizeof(*fds));
	return 0;
}

static void vfio_irq_disable(struct nvr_pci_dev *dev)
{
	struct nvr_vfio_dev *vd = to_vfio(dev);
	struct vfio_irq_set set = {
		.argsz = sizeof(set),
		.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
		.index = VFIO_PCI_MSIX_IRQ_INDEX, .start = 0, .count = 0,   /* count 0: all off */
	};

	if (!vd->nirq)
		return;
	if (vd->device >= 0)
		ioctl(vd->device, VFIO_DEVICE_SET_IRQS, &set);
	irq_fds_close(vd);
}

static const struct nvr_pci_ops vfio_type1_ops = {
	.map_bar = vfio_map_bar,
	.dma_map = type1_dma_map,
	.dma_map_internal = type1_dma_map_internal,
	.dma_map_internal_ro = type1_dma_map_internal_ro,
	.dma_unmap = type1_dma_unmap,
	.reset = vfio_reset,
	.close = vfio_close,
	.removal_requested = vfio_removal_requested,
	.release_device = vfio_release_device,
	.irq_vectors = vfio_irq_vectors,
	.irq_enable = vfio_irq_enable,
	.irq_disable = vfio_irq_disable,
};

/* No internal window: every bus address is physical, nothing to carve. */
static const struct nvr_pci_ops vfio_noiommu_ops = {
	.map_bar = vfio_map_bar,
	.dma_map = noiommu_dma_map,
	.dma_unmap = noiommu_dma_unmap,
	.dma_mem_huge = noiommu_mem_huge,
	.reset = vfio_reset,
	.close = vfio_close,
	.removal_requested = vfio_removal_requested,
	.release_device = vfio_release_device,
	.irq_vectors = vfio_irq_vectors,
	.irq_enable = vfio_irq_enable,
	.irq_disable = vfio_irq_disable,
};

/* Open the group node and attach it to the container with the IOMMU model
 * its name selects: "N" is a real IOMMU group, "noiommu-N" has none. */
static int vfio_open_group(struct nvr_vfio_dev *vd)
{
	struct vfio_group_status st = { .argsz = sizeof(st) };
	char path[64];
	int err, version;

	err = nvr_vfio_group_node(VFIO_DEV_DIR, vd->group_id, path, sizeof(path), &vd->noiommu);
	if (err) {
		nvr_log(NVR_LOG_ERR, "%s is bound to vfio-pci but %s is missing (%s): is devtmpfs mounted "
			"on /dev?", vd->pci.bdf, path, strerror(-err));
		return err;
	}

	vd->container = open(VFIO_CONTAINER_PATH, O_RDWR | O_CLOEXEC);
	if (vd->container < 0) {
		err = -errno;
		nvr_log(NVR_LOG_ERR, "cannot open %s: %s%s", VFIO_CONTAINER_PATH, strerror(-err),
			err == -ENOENT ? ": load the vfio module" : "");
		return err;
	}
	version = ioctl(vd->container, VFIO_GET_API_VERSION);
	if (version != VFIO_API_VERSION) {
		nvr_log(NVR_LOG_ERR, "%s speaks VFIO API %d, nvring needs %d", VFIO_CONTAINER_PATH, version,
			VFIO_API_VERSION);
		return -ENOTSUP;
	}

	vd->group = open(path, O_RDWR | O_CLOEXEC);
	if (vd->group < 0) {
		err = -errno;
		if (err == -EACCES || err == -EPERM)
			nvr_log(NVR_LOG_ERR, "cannot open %s: %s: run as root, or give your user that node "
				"(chown) and enough memlock", path, strerror(-err));
		else if (err == -EBUSY)
			nvr_log(NVR_LOG_ERR, "cannot open %s: the IOMMU group of %s is already open (by another "
				"process, or by this one): detach the other handle or stop its process first",
				path, vd->pci.bdf);
		else
			nvr_log(NVR_LOG_ERR, "cannot open %s: %s", path, strerror(-err));
		return err;
	}
	if (ioctl(vd->group, VFIO_GROUP_GET_STATUS, &st) < 0) {
		err = -errno;
		nvr_log(NVR_LOG_ERR, "VFIO_GROUP_GET_STATUS on %s failed: %s", path, strerror(-err));
		return err;
	}
	if (!(st.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		char msg[512];

		nvr_pci_explain_not_viable(vd->pci.bdf, vd->group_id, msg, sizeof(msg));
		nvr_log(NVR_LOG_ERR, "%s", msg);
		return -EBUSY;
	}
	if (ioctl(vd->group, VFIO_GROUP_SET_CONTAINER, &vd->container) < 0) {
		err = -errno;
		nvr_log(NVR_LOG_ERR, "VFIO_GROUP_SET_CONTAINER on %s failed: %s", path, strerror(-err));
		return err;
	}
	return 0;
}

/* The device fd, its flags, config space and BAR0's presence. */
static int vfio_open_device(struct nvr_vfio_dev *vd)
{
	struct vfio_device_info info = { .argsz = sizeof(info) };
	struct vfio_region_info ri;
	int err;

	vd->device = ioctl(vd->group, VFIO_GROUP_GET_DEVICE_FD, vd->pci.bdf);
	if (vd->device < 0) {
		err = -errno;
		nvr_log(NVR_LOG_ERR, "%s: VFIO_GROUP_GET_DEVICE_FD failed: %s", vd->pci.bdf, strerror(-err));
		return err;
	}
	if (ioctl(vd->device, VFIO_DEVICE_GET_INFO, &info) < 0) {
		err = -errno;
		nvr_log(NVR_LOG_ERR, "%s: VFIO_DEVICE_GET_INFO failed: %s", vd->pci.bdf, strerror(-err));
		return err;
	}
	if (!(info.flags & VFIO_DEVICE_FLAGS_PCI) ||
	    info.num_regions <= VFIO_PCI_CONFIG_REGION_INDEX) {
		nvr_log(NVR_LOG_ERR, "%s: VFIO does not present it as a PCI device", vd->pci.bdf);
		return -ENODEV;
	}
	vd->device_flags = info.flags;

	err = region_info(vd, VFIO_PCI_CONFIG_REGION_INDEX, &ri);
	if (err || ri.size < PCI_STD_HEADER_SIZEOF) {
		nvr_log(NVR_LOG_ERR, "%s: no usable config space region", vd->pci.bdf);
		return err ? err : -EIO;
	}
	vd->config_offset = ri.offset;

	/* The NVMe registers live in BAR0 (NVMe 2.0 §3.1): fail here, not in
	 * the driver, if it cannot be mapped. */
	err = region_info(vd, VFIO_PCI_BAR0_REGION_INDEX, &ri);
	if (err || !ri.size || !(ri.flags & VFIO_REGION_INFO_FLAG_MMAP)) {
		nvr_log(NVR_LOG_ERR, "%s: BAR0 is missing or cannot be mmap()ed", vd->pci.bdf);
		return err ? err : -ENOTSUP;
	}
	return vfio_enable_command(vd);
}

int nvr_vfio_open(const char *bdf_in, struct nvr_pci_dev **out)
{
	struct nvr_vfio_dev *vd;
	struct nvr_pci_fn fn;
	char bdf[16];
	bool iommu_inited = false;
	int err;

	if (nvr_pci_parse_bdf(bdf_in, bdf)) {
		nvr_log(NVR_LOG_ERR, "'%s' is not a PCI address (want DDDD:BB:DD.F or BB:DD.F)",
			bdf_in ? bdf_in : "(null)");
		return -EINVAL;
	}
	err = nvr_pci_fn_info(bdf, &fn);
	if (err == -ENODEV) {
		nvr_log(NVR_LOG_ERR, "no PCI function %s (`nvring list` shows the NVMe controllers)", bdf);
		return err;
	}
	if (err) {
		nvr_log(NVR_LOG_ERR, "%s: cannot read its sysfs attributes: %s", bdf, strerror(-err));
		return err;
	}
	if (strcmp(fn.driver, "vfio-pci") != 0) {
		if (fn.driver[0])
			nvr_log(NVR_LOG_ERR, "%s is bound to %s, not vfio-pci: run `nvring bind %s`",
				bdf, fn.driver, bdf);
		else
			nvr_log(NVR_LOG_ERR, "%s is not bound to vfio-pci: run `nvring bind %s`", bdf, bdf);
		return -ENXIO;
	}
	if (fn.iommu_group < 0) {
		nvr_log(NVR_LOG_ERR, "%s has no IOMMU group: enable the IOMMU "
		"(intel_iommu=on / amd_iommu=on)", bdf);
		return -ENOTSUP;
	}
	/* Find out now, with the fix spelled out, rather than at the first
	 * mapping: at least one 2 MiB chunk of DMA memory will be pinned. */
	err = nvr_pci_memlock_check(NVR_DMA_CHUNK_SIZE);
	if (err)
		return err;
	/* Another process on it: name it (VFIO's EBUSY would not). */
	int holder_fd;

	err = nvr_holder_claim(bdf, &holder_fd);
	if (err)
		return err;

	vd = calloc(1, sizeof(*vd));
	if (!vd) {
		nvr_holder_release(holder_fd);
		return -ENOMEM;
	}
	vd->holder_fd = holder_fd;
	vd->container = vd->group = vd->device = vd->req_fd = vd->pagemap = -1;
	vd->group_id = fn.iommu_group;
	memcpy(vd->pci.bdf, bdf, sizeof(vd->pci.bdf));
	vd->pci.ops = &vfio_type1_ops;
	pthread_mutex_init(&vd->bar_lock, NULL);
	pthread_mutex_init(&vd->iova_lock, NULL);

	err = vfio_open_group(vd);
	if (err)
		goto fail;
	if (vd->noiommu) {
		vd->pci.ops = &vfio_noiommu_ops;
		err = noiommu_setup(vd);
	} else {
		err = type1_setup(vd);
	}
	if (err)
		goto fail;
	iommu_inited = true;
	err = vfio_open_device(vd);
	if (err)
		goto fail;
	vfio_req_register(vd);
	err = nvr_pci_dma_init(&vd->pci);
	if (err)
		goto fail;
	if (vd->noiommu) {
		vd->pci.dma_flags |= NVR_DMA_NEED_HUGEPAGES;
		nvr_log(NVR_LOG_WARN, "%s: VFIO no-IOMMU mode (unsafe): no IOMMU confines the device, which "
			"can DMA anywhere in memory; DMA memory must be hugepages", bdf);
	} else {
		/* type1 pins what it maps and charges it to RLIMIT_MEMLOCK. */
		vd->pci.dma_flags |= NVR_DMA_BACKEND_PINS;
	}
	*out = &vd->pci;
	return 0;
fail:
	vfio_release(vd, false, iommu_inited);
	return err;
}
