/* SPDX-License-Identifier: MIT */
/*
 * The seam between the NVMe driver and whatever gives it a PCI function:
 * VFIO with the type1 IOMMU or in no-IOMMU mode (physical addresses;
 * pci/vfio.c) in production, the software controller model (tests/model/)
 * in host unit tests. The driver sees a device only through
 * struct nvr_pci_dev: a mapped BAR0, DMA memory with its bus addresses, a
 * reset. All address translation stays behind ops->dma_map/dma_unmap.
 *
 * Every function returns 0 or a negative errno.
 */
#ifndef NVRING_PCI_PCI_H
#define NVRING_PCI_PCI_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct nvr_pci_dev;

struct nvr_pci_ops {
	/* Map BAR @bar; *va and *len describe the mapping. */
	int  (*map_bar)(struct nvr_pci_dev *dev, int bar, volatile void **va, size_t *len);
	/* Make [va, va + len) reachable by the device's DMA; return the bus
	 * address (IOVA) in *iova. va and len are 4 KiB aligned. The memory
	 * is pinned for as long as it is mapped. */
	int  (*dma_map)(struct nvr_pci_dev *dev, void *va, size_t len, uint64_t *iova);
	/* Optional: as dma_map, but the IOVA comes from the backend's window
	 * for driver-internal memory (queues, PRP lists, Identify data),
	 * [internal_iova_lo, internal_iova_hi) of the device, which dma_map
	 * never hands out. NULL: internal memory is mapped with dma_map and
	 * the window is empty. */
	int  (*dma_map_internal)(struct nvr_pci_dev *dev, void *va, size_t len, uint64_t *iova);
	/* Optional: as dma_map_internal, the device allowed to read only
	 * (SQs, PRP lists); NULL: dma_map_internal is used. */
	int  (*dma_map_internal_ro)(struct nvr_pci_dev *dev, void *va, size_t len, uint64_t *iova);
	/* Optional: @size bytes (a multiple of 2 MiB) of hugepage memory that
	 * dma_map can take as one range (no-IOMMU: physically contiguous) in
	 * *va, or a negative errno. NULL: one MAP_HUGETLB mapping. */
	int  (*dma_mem_huge)(struct nvr_pci_dev *dev, size_t size, void **va);
	/* Undo one dma_map exactly (same va, len and the iova it returned). */
	int  (*dma_unmap)(struct nvr_pci_dev *dev, void *va, size_t len, uint64_t iova);
	/* Function-level reset if the backend offers one, else -ENOTSUP. */
	int  (*reset)(struct nvr_pci_dev *dev);
	/* Release everything (mappings, BARs, fds) and free dev. */
	void (*close)(struct nvr_pci_dev *dev);
	/* Optional (NULL: the backend has no such notice): true once the
	 * device has been asked to go away -- VFIO's device request, which
	 * the kernel sends before a hot-remove (QMP device_del, a surprise
	 * removal seen by pciehp) or an unbind, and repeats until the device
	 * is released. Sticky: stays true after the first time. Never blocks;
	 * cheap enough to poll (one non-blocking read of an eventfd until it
	 * fires). The device may still answer or already be gone. */
	bool (*removal_requested)(struct nvr_pci_dev *dev);
	/* Optional: give the function back to the kernel now (a hot-remove
	 * waits for it) while DMA memory stays the process's until close:
	 * the BAR mappings become plain memory reading all ones (so a
	 * late doorbell from another thread lands nowhere and every register
	 * says "gone"), the device fd is closed. Once the device is quiesced
	 * or gone; close() still releases the rest. */
	void (*release_device)(struct nvr_pci_dev *dev);
	/* Optional (NULL: no interrupts; the driver polls): the MSI-X table
	 * size of the function (VFIO_DEVICE_GET_IRQ_INFO's count for the
	 * MSI-X index), 0 if it has no MSI-X. */
	unsigned (*irq_vectors)(struct nvr_pci_dev *dev);
	/* Optional, with irq_vectors: enable MSI-X vectors 0..@n-1, each one
	 * signalling its own eventfd (VFIO_DEVICE_SET_IRQS, DATA_EVENTFD |
	 * ACTION_TRIGGER), returned in fds[0..n-1]: non-blocking, close-on-
	 * exec, owned by the backend (closed by irq_disable or close; a
	 * released device leaves them open and silent). Called at most once
	 * until irq_disable: VFIO before Linux 6.5 cannot grow an enabled
	 * MSI-X set, so every vector the driver will use is enabled here.
	 * An eventfd counts interrupts; a spurious count is harmless (the
	 * reader polls its queue anyway). -ENOTSUP, -EBUSY (enabled
	 * already), or the ioctl's error. */
	int  (*irq_enable)(struct nvr_pci_dev *dev, unsigned n, int *fds);
	/* Optional: undo irq_enable (vectors off, eventfds closed). */
	void (*irq_disable)(struct nvr_pci_dev *dev);
};

/* Most MSI-X vectors nvring enables: the admin queue's (0) and one per I/O
 * queue pair up to this many. */
#define NVR_PCI_MAX_IRQS 257u

/* pci/dma.c carves small allocations from chunks of this size, each mapped
 * once; allocations are 4 KiB aligned and a multiple of 4 KiB. */
#define NVR_DMA_CHUNK_SIZE (2u << 20)
#define NVR_DMA_PAGE_SIZE  4096u

/* One DMA-visible range known to the device: [va, va + len) ↔ [iova, ...). */
struct nvr_dma_map {
	uint8_t  *va;
	uint64_t  iova;
	size_t    len;
	unsigned  owned : 1;      /* memory allocated by pci/dma.c (else registered) */
	unsigned  hugepage : 1;   /* backed by 2 MiB hugepages */
	unsigned  internal : 1;   /* owned, for the driver only (dma_map_internal) */
	unsigned  revoked : 1;    /* unmapped from the IOMMU by nvr_pci_dma_revoke() */
	unsigned  ro : 1;         /* internal, device reads only (dma_map_internal_ro) */
	size_t    used;           /* arena bump offset for owned chunks */
	unsigned  live;           /* live sub-allocations in an owned chunk */
	/* Holds (nvr_pci_dma_hold()) on this mapping; for an owned chunk the
	 * sum over its allocations (per allocation: alloc_holds). A held
	 * allocation or mapping cannot be freed or unregistered (-EBUSY). */
	unsigned  holds;
	unsigned  regs;           /* registered: registrations it stands for */
	uint32_t *alloc_holds;    /* owned: holds by allocation start page, or NULL */
	/* Owned chunks: one bit per 4 KiB page where a live sub-allocation
	 * starts, so a free of anything else (or a double free) is refused;
	 * and where any allocation ever started (never cleared: the bump
	 * allocator does not reuse space), which gives allocation extents. */
	uint64_t  starts[NVR_DMA_CHUNK_SIZE / NVR_DMA_PAGE_SIZE / 64];
	uint64_t  bounds[NVR_DMA_CHUNK_SIZE / NVR_DMA_PAGE_SIZE / 64];
};

/* Common part of every backend's device; backends embed it first. */
struct nvr_pci_dev {
	const struct nvr_pci_ops *ops;
	char bdf[16];                 /* "0000:00:02.0", or a model's name */
	/* DMA map table (pci/dma.c): sorted by va, guarded by dma_lock. */
	pthread_rwlock_t dma_lock;
	struct nvr_dma_map *maps;
	unsigned nmaps, maps_cap;
	/* Bumped (release, under the write lock, before the IOMMU unmap) on
	 * every unmap, so translation caches (struct nvr_dma_tcache) know
	 * their entry may be stale. Mapping something new changes no existing
	 * translation and does not bump it. */
	_Atomic uint64_t dma_gen;
	int dma_flags;                /* NVR_DMA_* */
	/* IOVA window of driver-internal memory (ops->dma_map_internal),
	 * [lo, hi); lo == hi: none. Set by the backend at open. */
	uint64_t internal_iova_lo, internal_iova_hi;
};

#define NVR_DMA_NO_HUGEPAGES 0x1  /* never try hugetlb memory */
/* Set by a backend whose dma_map pins the pages itself (VFIO type1 does, and
 * charges them to RLIMIT_MEMLOCK): pci/dma.c then skips mlock(), which would
 * charge the same pages a second time. OR it in; don't assign dma_flags. */
#define NVR_DMA_BACKEND_PINS 0x2
/* Set by a backend whose bus addresses are physical (VFIO no-IOMMU): DMA
 * memory must be hugepages (physically contiguous 2 MiB, never swapped or
 * moved), never locked 4 KiB pages; without hugepages allocation fails
 * with -ENOMEM and one line saying so. */
#define NVR_DMA_NEED_HUGEPAGES 0x4

/* pci/vfio.c: open @bdf (bound to vfio-pci) with the type1 v2 IOMMU, or in
 * no-IOMMU mode when its group node is /dev/vfio/noiommu-N (one warning
 * line says so); enable memory space and bus mastering, disable INTx.
 * Errors: -ENODEV (no such function), -ENXIO (not bound to vfio-pci),
 * -EBUSY (group not viable: the message names the other devices),
 * -EPERM/-EACCES (no-IOMMU mode: not CAP_SYS_RAWIO and CAP_SYS_ADMIN),
 * -ENOTSUP (no usable IOMMU model), -ENOMEM (memlock). */
int nvr_vfio_open(const char *bdf, struct nvr_pci_dev **out);

/* pci/dma.c: initialise/tear down the DMA table of a backend's device. */
int  nvr_pci_dma_init(struct nvr_pci_dev *dev);
void nvr_pci_dma_fini(struct nvr_pci_dev *dev);   /* unmaps and frees all */

/* DMA memory: zeroed, 4 KiB aligned, carved from 2 MiB chunks (hugepages
 * when reserved, else locked 4 KiB pages) that are mapped once, so small
 * allocations do not each cost an IOMMU mapping. */
int  nvr_pci_dma_alloc(struct nvr_pci_dev *dev, size_t len, void **va, uint64_t *iova);
/* The same for memory only the driver hands to the device (queues, PRP
 * lists, Identify data): its own chunks, mapped in the internal IOVA window
 * when the backend has one, never translated, held, registered over or
 * freed by nvr_pci_dma_free() (those say -EFAULT / -EEXIST / -EINVAL).
 * Freed with nvr_pci_dma_free_internal(). */
int  nvr_pci_dma_alloc_internal(struct nvr_pci_dev *dev, size_t len, void **va, uint64_t *iova);
/* The same for memory the device only reads (SQs, PRP lists): mapped
 * read-only for it where the backend can (ops->dma_map_internal_ro), so a
 * device writing there faults instead of corrupting commands. Freed with
 * nvr_pci_dma_free_internal(). */
int  nvr_pci_dma_alloc_internal_ro(struct nvr_pci_dev *dev, size_t len, void **va, uint64_t *iova);
int  nvr_pci_dma_free(struct nvr_pci_dev *dev, void *va);
int  nvr_pci_dma_free_internal(struct nvr_pci_dev *dev, void *va);

/* Map application memory (4 KiB aligned range) for DMA until unregistered.
 * A range entirely inside one registered mapping adds a registration to it
 * (no IOMMU work; the mapping stays until its last registration goes); a
 * range inside one allocation of nvr_pci_dma_alloc() takes a hold on it.
 * -EEXIST for any other overlap. Unregister takes any address inside the
 * registration: it drops one registration (or that hold); dropping the
 * last one of a held mapping is refused with -EBUSY. */
int  nvr_pci_dma_register(struct nvr_pci_dev *dev, void *va, size_t len, uint64_t *iova);
int  nvr_pci_dma_unregister(struct nvr_pci_dev *dev, void *va);
/* The device could not be quiesced: take every mapping but the driver's
 * own (queues, PRP lists) out of the IOMMU now, so that no application
 * buffer handed back afterwards can still be written by the device. The
 * table stays (addresses still translate; later frees skip the unmap).
 * Returns the mappings that could not be unmapped (0: all revoked). */
int  nvr_pci_dma_revoke(struct nvr_pci_dev *dev);

/* Hold the allocation or registered mapping that contains all of
 * [va, va + len) (-EFAULT if none does) so that it cannot be freed or
 * unregistered (-EBUSY) until nvr_pci_dma_unhold(dev, any address in it);
 * *iova is the bus address of va. */
int  nvr_pci_dma_hold(struct nvr_pci_dev *dev, const void *va, size_t len, uint64_t *iova);
int  nvr_pci_dma_unhold(struct nvr_pci_dev *dev, const void *va);

/* IOVA of [va, va + len), which must lie inside one mapping: -EFAULT if not. */
int  nvr_pci_dma_translate(struct nvr_pci_dev *dev, const void *va, size_t len, uint64_t *iova);

/*
 * A one-entry translation cache for one thread (a queue pair): the last
 * mapping a lookup hit, valid while dev->dma_gen is unchanged. Zero it to
 * start empty.
 */
struct nvr_dma_tcache {
	uintptr_t va;      /* mapping start */
	size_t    len;     /* 0: empty */
	uint64_t  iova;
	uint64_t  gen;     /* dev->dma_gen when filled */
};

/* The locked lookup behind nvr_pci_dma_translate_cached(); refills @c. */
int  nvr_pci_dma_translate_fill(struct nvr_pci_dev *dev, struct nvr_dma_tcache *c,
				const void *va, size_t len, uint64_t *iova);

/* nvr_pci_dma_translate() without a lock when @c still holds the mapping
 * of [va, va + len): the I/O hot path. Same results. */
static inline int nvr_pci_dma_translate_cached(struct nvr_pci_dev *dev, struct nvr_dma_tcache *c,
					       const void *va, size_t len, uint64_t *iova)
{
	uintptr_t off = (uintptr_t)va - c->va;

	if (!len)
		len = 1;
	/* Acquire pairs with the release bump in pci/dma.c: once an unmap has
	 * returned, a translation after it sees the new generation and misses. */
	if (atomic_load_explicit(&dev->dma_gen, memory_order_acquire) == c->gen &&
	    off < c->len && len <= c->len - off) {
		*iova = c->iova + off;
		return 0;
	}
	return nvr_pci_dma_translate_fill(dev, c, va, len, iova);
}

/* pci/dma.c: check RLIMIT_MEMLOCK allows @bytes more locked
 * memory; on failure print one line naming the fix and return -ENOMEM. */
int  nvr_pci_memlock_check(size_t bytes);

#endif
