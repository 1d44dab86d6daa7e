/* SPDX-License-Identifier: MIT */
/*
 * The DMA table of a device and the DMA memory allocator (pci/pci.h).
 *
 * The table lists every range the device may reach, sorted by virtual
 * address, so translation is a binary search under the read lock. Mutators
 * (alloc of a new chunk, free, register, unregister) hold the write lock
 * across the backend's dma_map/dma_unmap: mapping is rare (a chunk is 2 MiB)
 * and this keeps the overlap checks and the table consistent.
 *
 * DMA memory comes in chunks mapped once each: VFIO type1 allows only 65,535
 * mappings per container, and an IOMMU mapping is costly. Small allocations
 * bump-allocate inside a 2 MiB chunk; the chunk is unmapped and released
 * when its last sub-allocation is freed. Larger allocations get a chunk of
 * their own, rounded up to 2 MiB.
 */
#include "pci/pci.h"
#include "pci/log.h"

#include <errno.h>
#include <limits.h>
#include <linux/capability.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << MAP_HUGE_SHIFT)   /* log2(2 MiB) in the size field */
#endif

#define PAGE_MASK ((uintptr_t)NVR_DMA_PAGE_SIZE - 1)
/* dma_flags bit of this file: the no-hugepages line was logged. */
#define DMA_SAID_NO_HUGEPAGES 0x40000000

int nvr_pci_dma_init(struct nvr_pci_dev *dev)
{
	int err = pthread_rwlock_init(&dev->dma_lock, NULL);

	if (err)
		return -err;
	dev->maps = NULL;
	dev->nmaps = dev->maps_cap = 0;
	atomic_init(&dev->dma_gen, 1);   /* an empty cache (gen 0) never matches */
	return 0;
}

/* Before every IOMMU unmap, under the write lock: invalidate every
 * translation cache. Release pairs with the acquire load in
 * nvr_pci_dma_translate_cached(). */
static void gen_bump(struct nvr_pci_dev *dev)
{
	atomic_fetch_add_explicit(&dev->dma_gen, 1, memory_order_release);
}

/* Index of the last mapping starting at or below @va, or -1. */
static int table_find(const struct nvr_pci_dev *dev, uintptr_t va)
{
	unsigned lo = 0, hi = dev->nmaps;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if ((uintptr_t)dev->maps[mid].va <= va)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (int)lo - 1;
}

/* True if [va, va + len) overlaps a mapping (len > 0, no wrap). */
static bool table_overlaps(const struct nvr_pci_dev *dev, uintptr_t va, size_t len)
{
	int i = table_find(dev, va + len - 1);

	/* Mappings are disjoint: only the last one starting at or below the
	 * range's last byte can reach into it. */
	return i >= 0 && (uintptr_t)dev->maps[i].va + dev->maps[i].len > va;
}

/* Room for one more entry, so an insert after a dma_map cannot fail. */
static int table_reserve(struct nvr_pci_dev *dev)
{
	struct nvr_dma_map *p;
	unsigned cap;

	if (dev->nmaps < dev->maps_cap)
		return 0;
	cap = dev->maps_cap ? dev->maps_cap * 2 : 16;
	p = realloc(dev->maps, cap * sizeof(*p));
	if (!p)
		return -ENOMEM;
	dev->maps = p;
	dev->maps_cap = cap;
	return 0;
}

static struct nvr_dma_map *table_insert(struct nvr_pci_dev *dev, const struct nvr_dma_map *m)
{
	unsigned at = (unsigned)(table_find(dev, (uintptr_t)m->va) + 1);

	memmove(&dev->maps[at + 1], &dev->maps[at], (dev->nmaps - at) * sizeof(*m));
	dev->maps[at] = *m;
	dev->nmaps++;
	return &dev->maps[at];
}

static void table_remove(struct nvr_pci_dev *dev, unsigned at)
{
	memmove(&dev->maps[at], &dev->maps[at + 1], (dev->nmaps - at - 1) * sizeof(dev->maps[0]));
	dev->nmaps--;
}

/* Hugetlb memory: 2 MiB pages, already unswappable. NULL if none are
 * reserved (mmap fails with ENOMEM then) or the flag forbids them. */
static void *chunk_mmap_huge(struct nvr_pci_dev *dev, size_t size)
{
	void *p;

	if (dev->dma_flags & NVR_DMA_NO_HUGEPAGES)
		return NULL;
	if (dev->ops->dma_mem_huge)
		return dev->ops->dma_mem_huge(dev, size, &p) ? NULL : p;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

/* Ordinary 4 KiB pages, locked unless the backend pins them itself. */
static int chunk_mmap_small(const struct nvr_pci_dev *dev, size_t size, void **out)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	if (!(dev->dma_flags & NVR_DMA_BACKEND_PINS) && mlock(p, size) < 0) {
		int err = errno;

		munmap(p, size);
		if (err == ENOMEM || err == EPERM || err == EAGAIN) {
			/* Prints the limit and the fix when the limit is the cause. */
			nvr_pci_memlock_check(size);
			return -ENOMEM;
		}
		return -err;
	}
	*out = p;
	return 0;
}

/* A new chunk of @size bytes (a multiple of 2 MiB), mapped for DMA and put
 * in the table. Caller holds the write lock. */
static int chunk_new(struct nvr_pci_dev *dev, size_t size, bool internal, bool ro,
		     struct nvr_dma_map **out)
{
	struct nvr_dma_map m = { .len = size, .owned = 1, .internal = internal, .ro = ro };
	void *p;
	int err;

	err = table_reserve(dev);
	if (err)
		return err;
	p = chunk_mmap_huge(dev, size);
	m.hugepage = p != NULL;
	if (!p && (dev->dma_flags & NVR_DMA_NEED_HUGEPAGES)) {
		nvr_log(NVR_LOG_ERR, "%s: no-IOMMU mode needs hugepages for DMA memory (%zu MiB more) and "
			"%s: reserve some (echo 64 > /proc/sys/vm/nr_hugepages)", dev->bdf, size >> 20,
			dev->dma_flags & NVR_DMA_NO_HUGEPAGES ? "NVR_ATTACH_NO_HUGEPAGES forbids them"
			: "none are free");
		return -ENOMEM;
	}
	if (!p && !(dev->dma_flags & (NVR_DMA_NO_HUGEPAGES | DMA_SAID_NO_HUGEPAGES))) {
		dev->dma_flags |= DMA_SAID_NO_HUGEPAGES;   /* once per device */
		nvr_log(NVR_LOG_INFO, "%s: no free 2 MiB hugepages: DMA memory comes from locked "
			"4 KiB pages instead (more IOMMU work); reserve some with "
			"`echo 64 > /proc/sys/vm/nr_hugepages`", dev->bdf);
	}
	if (!p && (err = chunk_mmap_small(dev, size, &p)))
		return err;
	/* A fork() must not give the parent copy-on-write copies of pages the
	 * device writes to: the device would keep writing the old ones. */
	if (madvise(p, size, MADV_DONTFORK) < 0) {
		err = -errno;
		munmap(p, size);
		return err;
	}
	if (ro && dev->ops->dma_map_internal_ro)
		err = dev->ops->dma_map_internal_ro(dev, p, size, &m.iova);
	else if (internal && dev->ops->dma_map_internal)
		err = dev->ops->dma_map_internal(dev, p, size, &m.iova);
	else
		err = dev->ops->dma_map(dev, p, size, &m.iova);
	if (err) {
		munmap(p, size);
		return err;
	}
	m.va = p;
	*out = table_insert(dev, &m);
	return 0;
}

/* Unmap and release the empty chunk at table index @at. */
static int chunk_release(struct nvr_pci_dev *dev, unsigned at)
{
	struct nvr_dma_map m = dev->maps[at];
	int err;

	gen_bump(dev);
	err = m.revoked ? 0 : dev->ops->dma_unmap(dev, m.va, m.len, m.iova);

	/* Still mapped: keep it listed (fini retries) rather than free pages
	 * the device can reach. */
	if (err)
		return err;
	table_remove(dev, at);
	munmap(m.va, m.len);
	free(m.alloc_holds);
	return 0;
}

static void starts_set(struct nvr_dma_map *m, size_t off, bool on)
{
	size_t page = off / NVR_DMA_PAGE_SIZE;
	uint64_t bit = 1ull << (page % 64);

	if (on)
		m->starts[page / 64] |= bit;
	else
		m->starts[page / 64] &= ~bit;
}

static bool starts_test(const struct nvr_dma_map *m, size_t off)
{
	size_t page = off / NVR_DMA_PAGE_SIZE;

	return m->starts[page / 64] >> (page % 64) & 1;
}

static bool bit_test(const uint64_t *bits, size_t page)
{
	return bits[page / 64] >> (page % 64) & 1;
}

/*
 * The allocation of an owned chunk that contains byte @off: its start and
 * end offsets. -EFAULT if @off is past the bump pointer or in an
 * allocation that was freed. Registered mappings are one piece.
 */
static int alloc_extent(const struct nvr_dma_map *m, size_t off, size_t *start, size_t *end)
{
	size_t page, npages = NVR_DMA_CHUNK_SIZE / NVR_DMA_PAGE_SIZE;

	if (off >= m->len)
		return -EFAULT;
	if (!m->owned || m->len > NVR_DMA_CHUNK_SIZE) {
		*start = 0;
		*end = m->len;
		return m->owned && !starts_test(m, 0) ? -EFAULT : 0;
	}
	if (off >= m->used)
		return -EFAULT;
	page = off / NVR_DMA_PAGE_SIZE;
	while (!bit_test(m->bounds, page))   /* page 0 always starts one */
		page--;
	if (!starts_test(m, page * NVR_DMA_PAGE_SIZE))
		return -EFAULT;
	*start = page * NVR_DMA_PAGE_SIZE;
	for (page = off / NVR_DMA_PAGE_SIZE + 1; page < npages; page++)
		if (bit_test(m->bounds, page))
			break;
	*end = page * NVR_DMA_PAGE_SIZE < m->used ? page * NVR_DMA_PAGE_SIZE : m->used;
	return 0;
}

/* The mapping containing all of [va, va + len) (len >= 1), or -1.
 * Driver-internal chunks are nobody else's business: -1 for them too. */
static int table_find_range(const struct nvr_pci_dev *dev, uintptr_t va, size_t len)
{
	int i = table_find(dev, va);

	if (i < 0 || dev->maps[i].internal || va - (uintptr_t)dev->maps[i].va >= dev->maps[i].len ||
	    len > dev->maps[i].len - (va - (uintptr_t)dev->maps[i].va))
		return -1;
	return i;
}

/* Add (+1) or drop (-1) a hold on the allocation / mapping of map @m that
 * starts at offset @start. Caller holds the write lock. */
static int hold_adjust(struct nvr_dma_map *m, size_t start, int delta)
{
	uint32_t *h = NULL;

	if (m->owned) {
		if (!m->alloc_holds) {
			if (delta < 0)
				return -EINVAL;
			m->alloc_holds = calloc(NVR_DMA_CHUNK_SIZE / NVR_DMA_PAGE_SIZE,
						sizeof(*m->alloc_holds));
			if (!m->alloc_holds)
				return -ENOMEM;
		}
		h = &m->alloc_holds[start / NVR_DMA_PAGE_SIZE];
	}
	if (delta < 0) {
		if (!m->holds || (h && !*h))
			return -EINVAL;   /* nothing held here */
		m->holds--;
		if (h)
			(*h)--;
	} else {
		if (m->holds == UINT32_MAX)
			return -EOVERFLOW;
		m->holds++;
		if (h)
			(*h)++;
	}
	return 0;
}

/* Hold the allocation or mapping holding [va, va + len). Write lock held. */
static int hold_locked(struct nvr_pci_dev *dev, uintptr_t va, size_t len, uint64_t *iova)
{
	int i = table_find_range(dev, va, len);
	size_t start, end, off;
	int err;

	if (i < 0)
		return -EFAULT;
	struct nvr_dma_map *m = &dev->maps[i];
	off = va - (uintptr_t)m->va;
	err = alloc_extent(m, off, &start, &end);
	if (err || len > end - off)
		return -EFAULT;   /* freed, or runs into the next allocation */
	err = hold_adjust(m, start, +1);
	if (!err)
		*iova = m->iova + off;
	return err;
}

static int dma_alloc(struct nvr_pci_dev *dev, size_t len, bool internal, bool ro, void **va,
		     uint64_t *iova)
{
	struct nvr_dma_map *m = NULL;
	size_t off;
	int err = 0;

	if (!len || len > SIZE_MAX - (NVR_DMA_CHUNK_SIZE - 1))
		return len ? -ENOMEM : -EINVAL;
	len = (len + PAGE_MASK) & ~PAGE_MASK;

	pthread_rwlock_wrlock(&dev->dma_lock);
	if (len <= NVR_DMA_CHUNK_SIZE) {
		/* First chunk with room at its bump pointer. */
		for (unsigned i = 0; i < dev->nmaps; i++) {
			struct nvr_dma_map *c = &dev->maps[i];

			if (c->owned && c->internal == internal && c->ro == ro &&
			    c->len == NVR_DMA_CHUNK_SIZE &&
			    c->len - c->used >= len) {
				m = c;
				break;
			}
		}
		if (!m)
			err = chunk_new(dev, NVR_DMA_CHUNK_SIZE, internal, ro, &m);
	} else {
		size_t size = (len + NVR_DMA_CHUNK_SIZE - 1) & ~((size_t)NVR_DMA_CHUNK_SIZE - 1);

		err = chunk_new(dev, size, internal, ro, &m);
	}
	if (!err) {
		if (m->len > NVR_DMA_CHUNK_SIZE) {
			off = 0;
			m->used = m->len;     /* a chunk of its own: nothing else fits */
		} else {
			off = m->used;
			m->used += len;
		}
		m->live++;
		starts_set(m, off, true);
		m->bounds[off / NVR_DMA_PAGE_SIZE / 64] |= 1ull << (off / NVR_DMA_PAGE_SIZE % 64);
		*va = m->va + off;
		*iova = m->iova + off;
		/* Zero without a memset: chunks come from anonymous mmap
		 * (zero-filled) and the bump allocator never hands out the same
		 * bytes twice (a freed range is not reused). Zeroing them
		 * again cost a ring's setup as much as ~2,000 I/Os (its 1 MiB+
		 * bounce pool); an allocator that reuses space must zero the
		 * reused part (tests/unit/test_dma checks allocations are 0). */
	}
	pthread_rwlock_unlock(&dev->dma_lock);
	return err;
}

int nvr_pci_dma_alloc(struct nvr_pci_dev *dev, size_t len, void **va, uint64_t *iova)
{
	return dma_alloc(dev, len, false, false, va, iova);
}

int nvr_pci_dma_alloc_internal(struct nvr_pci_dev *dev, size_t len, void **va, uint64_t *iova)
{
	return dma_alloc(dev, len, true, false, va, iova);
}

int nvr_pci_dma_alloc_internal_ro(struct nvr_pci_dev *dev, size_t len, void **va, uint64_t *iova)
{
	return dma_alloc(dev, len, true, true, va, iova);
}

static int dma_free(struct nvr_pci_dev *dev, void *va, bool internal)
{
	struct nvr_dma_map *m;
	size_t off;
	int i, err = 0;

	pthread_rwlock_wrlock(&dev->dma_lock);
	i = table_find(dev, (uintptr_t)va);
	m = i >= 0 ? &dev->maps[i] : NULL;
	if (!m || !m->owned || m->internal != internal || (uint8_t *)va >= m->va + m->len) {
		err = -EINVAL;
		goto out;
	}
	off = (size_t)((uint8_t *)va - m->va);
	if ((off & PAGE_MASK) || (m->len > NVR_DMA_CHUNK_SIZE && off) || !starts_test(m, off)) {
		err = -EINVAL;        /* not the start of a live allocation */
		goto out;
	}
	if (m->alloc_holds && m->alloc_holds[off / NVR_DMA_PAGE_SIZE]) {
		err = -EBUSY;         /* someone (a ring) still hands it to the device */
		goto out;
	}
	starts_set(m, off, false);
	if (--m->live == 0)
		err = chunk_release(dev, (unsigned)i);
out:
	pthread_rwlock_unlock(&dev->dma_lock);
	return err;
}

int nvr_pci_dma_free(struct nvr_pci_dev *dev, void *va)
{
	return dma_free(dev, va, false);
}

int nvr_pci_dma_free_internal(struct nvr_pci_dev *dev, void *va)
{
	return dma_free(dev, va, true);
}

int nvr_pci_dma_register(struct nvr_pci_dev *dev, void *va, size_t len, uint64_t *iova)
{
	struct nvr_dma_map m = { .va = va, .len = len, .regs = 1 };
	int i, err;

	if (!va || !len || ((uintptr_t)va & PAGE_MASK) || (len & PAGE_MASK) ||
	    (uintptr_t)va > UINTPTR_MAX - len)
		return -EINVAL;

	pthread_rwlock_wrlock(&dev->dma_lock);
	i = table_find_range(dev, (uintptr_t)va, len);
	if (i >= 0 && !dev->maps[i].owned) {
		/* Already mapped whole: one more registration of it. */
		struct nvr_dma_map *r = &dev->maps[i];

		if (r->regs == UINT32_MAX) {
			err = -EOVERFLOW;
		} else {
			r->regs++;
			*iova = r->iova + (uint64_t)((uint8_t *)va - r->va);
			err = 0;
		}
	} else if (i >= 0) {
		/* Inside DMA memory from nvr_pci_dma_alloc(): keep it alive. */
		err = hold_locked(dev, (uintptr_t)va, len, iova);
		if (err == -EFAULT)
			err = -EEXIST;    /* spans allocations, or freed space */
	} else if (table_overlaps(dev, (uintptr_t)va, len)) {
		err = -EEXIST;
	} else if (!(err = table_reserve(dev)) && !(err = dev->ops->dma_map(dev, va, len, &m.iova))) {
		table_insert(dev, &m);
		*iova = m.iova;
	}
	pthread_rwlock_unlock(&dev->dma_lock);
	return err;
}

int nvr_pci_dma_unregister(struct nvr_pci_dev *dev, void *va)
{
	int i, err;

	pthread_rwlock_wrlock(&dev->dma_lock);
	i = table_find_range(dev, (uintptr_t)va, 1);
	if (i < 0) {
		err = -EINVAL;
	} else if (dev->maps[i].owned) {
		/* A registration inside allocated memory was a hold. */
		size_t start, end;

		err = alloc_extent(&dev->maps[i], (size_t)((uint8_t *)va - dev->maps[i].va),
				   &start, &end);
		err = err ? -EINVAL : hold_adjust(&dev->maps[i], start, -1);
	} else if (dev->maps[i].regs > 1) {
		dev->maps[i].regs--;
		err = 0;
	} else if (dev->maps[i].holds) {
		err = -EBUSY;             /* held: the device may still be sent there */
	} else {
		struct nvr_dma_map *m = &dev->maps[i];

		gen_bump(dev);
		err = m->revoked ? 0 : dev->ops->dma_unmap(dev, m->va, m->len, m->iova);
		if (!err)
			table_remove(dev, (unsigned)i);
	}
	pthread_rwlock_unlock(&dev->dma_lock);
	return err;
}

int nvr_pci_dma_hold(struct nvr_pci_dev *dev, const void *va, size_t len, uint64_t *iova)
{
	int err;

	if (!len)
		len = 1;
	if (!va || (uintptr_t)va > UINTPTR_MAX - len)
		return -EFAULT;
	pthread_rwlock_wrlock(&dev->dma_lock);
	err = hold_locked(dev, (uintptr_t)va, len, iova);
	pthread_rwlock_unlock(&dev->dma_lock);
	return err;
}

int nvr_pci_dma_unhold(struct nvr_pci_dev *dev, const void *va)
{
	size_t start, end;
	int i, err = -EINVAL;

	pthread_rwlock_wrlock(&dev->dma_lock);
	i = table_find_range(dev, (uintptr_t)va, 1);
	if (i >= 0 && !alloc_extent(&dev->maps[i], (size_t)((const uint8_t *)va - dev->maps[i].va),
				    &start, &end))
		err = hold_adjust(&dev->maps[i], start, -1);
	pthread_rwlock_unlock(&dev->dma_lock);
	return err;
}

/* The lookup behind both translate calls: [va, va + len) inside one
 * non-internal mapping gives its IOVA and, when @c is given, refills the
 * caller's one-entry cache with that mapping. */
static int translate(struct nvr_pci_dev *dev, struct nvr_dma_tcache *c,
		     const void *va, size_t len, uint64_t *iova)
{
	uintptr_t a = (uintptr_t)va;
	int i, err = -EFAULT;

	if (!len)
		len = 1;      /* an empty range still has to point somewhere mapped */
	if (a > UINTPTR_MAX - len)
		return -EFAULT;
	pthread_rwlock_rdlock(&dev->dma_lock);
	i = table_find_range(dev, a, len);
	if (i >= 0) {
		const struct nvr_dma_map *m = &dev->maps[i];

		*iova = m->iova + (a - (uintptr_t)m->va);
		/* Bumps happen under the write lock: the value read here
		 * matches the table just searched. */
		if (c)
			*c = (struct nvr_dma_tcache){
				.va = (uintptr_t)m->va, .len = m->len, .iova = m->iova,
				.gen = atomic_load_explicit(&dev->dma_gen, memory_order_relaxed),
			};
		err = 0;
	}
	pthread_rwlock_unlock(&dev->dma_lock);
	return err;
}

int nvr_pci_dma_translate(struct nvr_pci_dev *dev, const void *va, size_t len, uint64_t *iova)
{
	return translate(dev, NULL, va, len, iova);
}

int nvr_pci_dma_translate_fill(struct nvr_pci_dev *dev, struct nvr_dma_tcache *c,
				const void *va, size_t len, uint64_t *iova)
{
	return translate(dev, c, va, len, iova);
}

void nvr_pci_dma_fini(struct nvr_pci_dev *dev)
{
	pthread_rwlock_wrlock(&dev->dma_lock);
	gen_bump(dev);
	for (unsigned i = dev->nmaps; i-- > 0;) {
		struct nvr_dma_map *m = &dev->maps[i];
		int err = m->revoked ? 0 : dev->ops->dma_unmap(dev, m->va, m->len, m->iova);

		/* Memory the device may still reach is leaked, not reused. */
		if (m->owned && !err)
			munmap(m->va, m->len);
		free(m->alloc_holds);
	}
	free(dev->maps);
	dev->maps = NULL;
	dev->nmaps = dev->maps_cap = 0;
	pthread_rwlock_unlock(&dev->dma_lock);
	pthread_rwlock_destroy(&dev->dma_lock);
}

int nvr_pci_dma_revoke(struct nvr_pci_dev *dev)
{
	int left = 0;

	/* Bus addresses are physical (no-IOMMU mode): nothing stands between
	 * the device and memory, so nothing can be revoked. */
	if (dev->dma_flags & NVR_DMA_NEED_HUGEPAGES)
		return (int)dev->nmaps;
	pthread_rwlock_wrlock(&dev->dma_lock);
	gen_bump(dev);
	for (unsigned i = 0; i < dev->nmaps; i++) {
		struct nvr_dma_map *m = &dev->maps[i];

		if (m->internal || m->revoked)
			continue;
		if (dev->ops->dma_unmap(dev, m->va, m->len, m->iova) == 0)
			m->revoked = 1;
		else
			left++;
	}
	pthread_rwlock_unlock(&dev->dma_lock);
	return left;
}

/* CAP_IPC_LOCK in the effective set and VmLck (locked bytes), from
 * /proc/self/status; zeros if it cannot be read. */
static void proc_status(bool *ipc_lock, unsigned long long *locked)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "re");

	*ipc_lock = false;
	*locked = 0;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long v;

		if (sscanf(line, "CapEff: %llx", &v) == 1)
			*ipc_lock = v >> CAP_IPC_LOCK & 1;
		else if (sscanf(line, "VmLck: %llu kB", &v) == 1)
			*locked = v * 1024;
	}
	fclose(f);
}

int nvr_pci_memlock_check(size_t bytes)
{
	unsigned long long locked;
	struct rlimit rl;
	bool ipc_lock;

	if (getrlimit(RLIMIT_MEMLOCK, &rl) < 0)
		return -errno;
	if (rl.rlim_cur == RLIM_INFINITY)
		return 0;
	proc_status(&ipc_lock, &locked);
	if (ipc_lock)
		return 0;     /* CAP_IPC_LOCK: the limit does not apply */
	if (locked <= rl.rlim_cur && bytes <= rl.rlim_cur - locked)
		return 0;
	nvr_log(NVR_LOG_ERR, "DMA memory needs %zu KiB more locked memory (%llu KiB locked "
		"already) but RLIMIT_MEMLOCK is %llu KiB: run `ulimit -l unlimited` or raise "
		"memlock in /etc/security/limits.conf",
		bytes >> 10, locked >> 10, (unsigned long long)rl.rlim_cur >> 10);
	return -ENOMEM;
}
