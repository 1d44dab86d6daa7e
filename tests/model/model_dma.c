/* SPDX-License-Identifier: MIT */
/*
 * The model's IOMMU: ops->dma_map/dma_unmap hand out IOVAs that differ from
 * the VA, and every device-side access resolves an IOVA through this table,
 * so a driver that puts a VA (or an IOVA it never mapped) into a command
 * fails. Then the PRP walker (NVMe 2.0 §4.1.1) built on it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tests/model/model_priv.h"

#define IOVA_BASE  0x100000000ull
#define IOVA_LIMIT (1ull << 46)      /* dma_map: [IOVA_BASE, IOVA_LIMIT) */
#define IOVA_INTERNAL_BASE IOVA_LIMIT /* dma_map_internal: [.., IOVA_INTERNAL_LIMIT) */
#define IOVA_INTERNAL_LIMIT (1ull << 47)
#define IOVA_GUARD NVME_MODEL_PAGE   /* unmapped hole after each mapping */

static struct nvme_model *dev_model(struct nvr_pci_dev *dev)
{
	return ((struct nvme_model_dev *)dev)->m;
}

void nvme_model_internal_window(uint64_t *lo, uint64_t *hi)
{
	*lo = IOVA_INTERNAL_BASE;
	*hi = IOVA_INTERNAL_LIMIT;
}

/* Map [va, va + len) at the lowest free IOVA in [lo, hi). */
static int map_in(struct nvr_pci_dev *dev, void *va, size_t len, uint64_t lo, uint64_t hi,
		  bool ro, uint64_t *iova)
{
	struct nvme_model *m = dev_model(dev);
	uint64_t at = lo;
	unsigned i;

	if (!va || !len || ((uintptr_t)va | len) & (NVME_MODEL_PAGE - 1))
		return -EINVAL;
	pthread_rwlock_wrlock(&m->map_lock);
	if (m->nmaps == m->maps_cap) {
		unsigned cap = m->maps_cap ? 2 * m->maps_cap : 16;
		struct nvme_model_map *n = realloc(m->maps, cap * sizeof(*n));

		if (!n) {
			pthread_rwlock_unlock(&m->map_lock);
			return -ENOMEM;
		}
		m->maps = n;
		m->maps_cap = cap;
	}
	/* First fit over the sorted table, keeping a guard hole after each
	 * mapping so an overrun lands on nothing; never IOVA == VA. */
	for (i = 0; i <= m->nmaps; i++) {
		uint64_t end = i < m->nmaps && m->maps[i].iova < hi ? m->maps[i].iova : hi;

		if (at == (uintptr_t)va)
			at += IOVA_GUARD;
		if (i < m->nmaps && m->maps[i].iova + m->maps[i].len + IOVA_GUARD <= at)
			continue;   /* below the window or the candidate */
		if (at + len + IOVA_GUARD <= end)
			break;
		if (i == m->nmaps || m->maps[i].iova >= hi) {
			i = m->nmaps + 1;   /* no room left in the window */
			break;
		}
		at = m->maps[i].iova + m->maps[i].len + IOVA_GUARD;
	}
	if (i > m->nmaps) {
		pthread_rwlock_unlock(&m->map_lock);
		return -ENOSPC;
	}
	memmove(&m->maps[i + 1], &m->maps[i], (m->nmaps - i) * sizeof(m->maps[0]));
	m->maps[i] = (struct nvme_model_map){ .va = va, .iova = at, .len = len, .ro = ro };
	m->nmaps++;
	pthread_rwlock_unlock(&m->map_lock);
	*iova = at;
	return 0;
}

int nvme_model_dma_map(struct nvr_pci_dev *dev, void *va, size_t len, uint64_t *iova)
{
	return map_in(dev, va, len, IOVA_BASE, IOVA_LIMIT, false, iova);
}

int nvme_model_dma_map_internal(struct nvr_pci_dev *dev, void *va, size_t len, uint64_t *iova)
{
	return map_in(dev, va, len, IOVA_INTERNAL_BASE, IOVA_INTERNAL_LIMIT, false, iova);
}

int nvme_model_dma_map_internal_ro(struct nvr_pci_dev *dev, void *va, size_t len, uint64_t *iova)
{
	return map_in(dev, va, len, IOVA_INTERNAL_BASE, IOVA_INTERNAL_LIMIT, true, iova);
}

int nvme_model_dma_unmap(struct nvr_pci_dev *dev, void *va, size_t len, uint64_t iova)
{
	struct nvme_model *m = dev_model(dev);
	unsigned i;

	pthread_rwlock_wrlock(&m->map_lock);
	for (i = 0; i < m->nmaps; i++) {
		struct nvme_model_map *e = &m->maps[i];

		if (e->iova == iova && e->va == va && e->len == len) {
			memmove(e, e + 1, (m->nmaps - i - 1) * sizeof(*e));
			m->nmaps--;
			pthread_rwlock_unlock(&m->map_lock);
			return 0;
		}
	}
	pthread_rwlock_unlock(&m->map_lock);
	atomic_fetch_add_explicit(&m->st.bad_unmaps, 1, memory_order_relaxed);
	return -ENOENT;
}

/* VA of [iova, iova + len) if that range lies inside one mapping, else
 * NULL. The pointer stays valid only while the host keeps the mapping. */
static void *iova_lookup(struct nvme_model *m, uint64_t iova, size_t len, bool write)
{
	void *va = NULL;
	unsigned lo = 0, hi;

	pthread_rwlock_rdlock(&m->map_lock);
	hi = m->nmaps;
	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		const struct nvme_model_map *e = &m->maps[mid];

		if (iova < e->iova) {
			hi = mid;
		} else if (iova >= e->iova + e->len) {
			lo = mid + 1;
		} else {
			if (len <= e->len - (iova - e->iova)) {
				if (write && e->ro)
					nvme_model_count(&m->st.ro_writes, 1);
				else
					va = e->va + (iova - e->iova);
			}
			break;
		}
	}
	pthread_rwlock_unlock(&m->map_lock);
	return va;
}

void *nvme_model_iova_va(struct nvme_model *m, uint64_t iova, size_t len)
{
	return iova_lookup(m, iova, len, false);
}

void *nvme_model_iova_va_w(struct nvme_model *m, uint64_t iova, size_t len)
{
	return iova_lookup(m, iova, len, true);
}

bool nvme_model_iova_read_only(struct nvme_model *m, uint64_t iova)
{
	bool ro = false;

	pthread_rwlock_rdlock(&m->map_lock);
	for (unsigned i = 0; i < m->nmaps; i++)
		if (iova >= m->maps[i].iova && iova - m->maps[i].iova < m->maps[i].len)
			ro = m->maps[i].ro;
	pthread_rwlock_unlock(&m->map_lock);
	return ro;
}

struct seg {
	uint8_t *va;
	size_t   len;
};

static uint16_t prp_fail(struct nvme_model *m, uint16_t sc)
{
	nvme_model_count(&m->st.prp_errors, 1);
	return NVME_MODEL_ST_GEN(sc);
}

static uint16_t add_seg(struct nvme_model *m, struct seg *segs, unsigned *n,
			uint64_t iova, size_t len, bool write)
{
	uint8_t *va = write ? nvme_model_iova_va_w(m, iova, len) : nvme_model_iova_va(m, iova, len);

	if (!va)
		return prp_fail(m, NVME_SC_DATA_XFER_ERROR);
	segs[(*n)++] = (struct seg){ va, len };
	return 0;
}

/* Resolve the PRP list chain that starts at @list for @len bytes (NVMe 2.0
 * §4.1.1: entries have offset 0; the last entry of a list page points to
 * the next list page when more entries follow). */
static uint16_t walk_list(struct nvme_model *m, uint64_t list, size_t len,
			  struct seg *segs, unsigned *n, bool write)
{
	const uint64_t pmask = NVME_MODEL_PAGE - 1;

	while (len) {
		uint64_t slot_end = (list | pmask) + 1;   /* end of this list page */
		const uint64_t *ent = nvme_model_iova_va(m, list, 8);
		uint64_t e;
		uint16_t st;

		if (!ent)
			return prp_fail(m, NVME_SC_DATA_XFER_ERROR);
		e = __atomic_load_n(ent, __ATOMIC_RELAXED);
		if (e & pmask)
			return prp_fail(m, NVME_SC_INVALID_PRP_OFFSET);
		if (list + 8 == slot_end && len > NVME_MODEL_PAGE) {
			list = e;   /* chain to the next list page */
			continue;
		}
		size_t chunk = len < NVME_MODEL_PAGE ? len : NVME_MODEL_PAGE;

		st = add_seg(m, segs, n, e, chunk, write);
		if (st)
			return st;
		len -= chunk;
		list += 8;
	}
	return 0;
}

/*
 * Move @len bytes between @buf and the host memory the command's PRP1/PRP2
 * describe (@to_host: buf → host). Every entry is checked and resolved
 * before any byte moves. PSDT must be 0 (PRPs) — the caller checks.
 */
uint16_t nvme_model_prp_xfer(struct nvme_model *m, const struct nvme_sqe *sqe,
			     void *buf, size_t len, bool to_host)
{
	const uint64_t pmask = NVME_MODEL_PAGE - 1;
	uint64_t prp1 = sqe->prp1, prp2 = sqe->prp2;
	struct seg *segs;
	unsigned n = 0;
	size_t first, rest, off = 0;
	uint16_t st;

	if (!len)
		return 0;
	if (prp1 & 3)   /* PRP1 offset must be dword aligned */
		return prp_fail(m, NVME_SC_INVALID_PRP_OFFSET);
	segs = calloc(len / NVME_MODEL_PAGE + 2, sizeof(*segs));
	if (!segs)
		return NVME_MODEL_ST_GEN(NVME_SC_INTERNAL);
	first = NVME_MODEL_PAGE - (prp1 & pmask);
	if (first > len)
		first = len;
	rest = len - first;
	st = add_seg(m, segs, &n, prp1, first, to_host);
	if (!st && rest && rest <= NVME_MODEL_PAGE) {
		/* PRP2 is the second data page. */
		st = (prp2 & pmask) ? prp_fail(m, NVME_SC_INVALID_PRP_OFFSET)
				    : add_seg(m, segs, &n, prp2, rest, to_host);
	} else if (!st && rest) {
		/* PRP2 points to a PRP list, qword aligned. */
		st = (prp2 & 7) ? prp_fail(m, NVME_SC_INVALID_PRP_OFFSET)
				: walk_list(m, prp2, rest, segs, &n, to_host);
	}
	for (unsigned i = 0; !st && i < n; i++) {
		if (to_host)
			memcpy(segs[i].va, (uint8_t *)buf + off, segs[i].len);
		else
			memcpy((uint8_t *)buf + off, segs[i].va, segs[i].len);
		off += segs[i].len;
	}
	free(segs);
	return st;
}
