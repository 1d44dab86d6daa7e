/* SPDX-License-Identifier: MIT */
/*
 * IOVA allocator: a sorted array of free inclusive ranges. Allocation scans
 * it first fit; a free is placed by binary search and merged with the
 * neighbours it touches. Usable ranges never touch each other (init merges
 * them), so a free range never bridges a hole the IOMMU excluded.
 *
 * All arithmetic is on inclusive ends so a range may end at UINT64_MAX.
 */
#include "pci/iova.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define IOVA_MIN_PAGE 4096u

static bool is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

static int cmp_range(const void *pa, const void *pb)
{
	const struct nvr_iova_range *a = pa, *b = pb;

	return a->start < b->start ? -1 : a->start > b->start;
}

/* Trim [r.start, r.end] inward to whole pages, above page 0. False if empty. */
static bool trim_range(struct nvr_iova_range *r, uint64_t page)
{
	uint64_t mask = page - 1, s, e;

	if (r->start > r->end || r->start > UINT64_MAX - mask)
		return false;
	s = (r->start + mask) & ~mask;
	if (s < page)
		s = page;     /* never hand out IOVA 0: keep the first page unused */
	if ((r->end & mask) == mask) {
		e = r->end;
	} else {
		if ((r->end & ~mask) == 0)
			return false;
		e = (r->end & ~mask) - 1;
	}
	if (s > e)
		return false;
	r->start = s;
	r->end = e;
	return true;
}

/* Make room for one more free range. */
static int free_reserve(struct nvr_iova *a)
{
	struct nvr_iova_range *p;
	unsigned cap;

	if (a->nfree < a->free_cap)
		return 0;
	cap = a->free_cap ? a->free_cap * 2 : 8;
	p = realloc(a->free, cap * sizeof(*p));
	if (!p)
		return -ENOMEM;
	a->free = p;
	a->free_cap = cap;
	return 0;
}

static void free_insert(struct nvr_iova *a, unsigned at, uint64_t start, uint64_t end)
{
	memmove(&a->free[at + 1], &a->free[at], (a->nfree - at) * sizeof(a->free[0]));
	a->free[at] = (struct nvr_iova_range){ start, end };
	a->nfree++;
}

static void free_remove(struct nvr_iova *a, unsigned at)
{
	memmove(&a->free[at], &a->free[at + 1], (a->nfree - at - 1) * sizeof(a->free[0]));
	a->nfree--;
}

int nvr_iova_init(struct nvr_iova *a, const struct nvr_iova_range *ranges, unsigned n,
		  uint64_t page)
{
	struct nvr_iova_range *r;
	unsigned m = 0;

	memset(a, 0, sizeof(*a));
	if (page < IOVA_MIN_PAGE)
		page = IOVA_MIN_PAGE;
	if (!is_pow2(page) || !ranges || !n)
		return -EINVAL;

	r = malloc(n * sizeof(*r));
	if (!r)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		r[m] = ranges[i];
		if (trim_range(&r[m], page))
			m++;
	}
	if (!m) {
		free(r);
		return -EINVAL;
	}
	qsort(r, m, sizeof(*r), cmp_range);

	/* Merge overlapping and touching ranges. */
	unsigned k = 0;
	for (unsigned i = 1; i < m; i++) {
		if (r[k].end == UINT64_MAX || r[i].start <= r[k].end + 1) {
			if (r[i].end > r[k].end)
				r[k].end = r[i].end;
		} else {
			r[++k] = r[i];
		}
	}
	m = k + 1;

	a->page = page;
	a->usable = r;
	a->nusable = m;
	a->free = malloc(m * sizeof(*r));
	if (!a->free) {
		nvr_iova_fini(a);
		return -ENOMEM;
	}
	memcpy(a->free, r, m * sizeof(*r));
	a->nfree = a->free_cap = m;
	return 0;
}

void nvr_iova_fini(struct nvr_iova *a)
{
	free(a->usable);
	free(a->free);
	memset(a, 0, sizeof(*a));
}

int nvr_iova_alloc(struct nvr_iova *a, uint64_t len, uint64_t align, uint64_t *iova)
{
	uint64_t mask = a->page - 1;

	if (!len)
		return -EINVAL;
	if (align < a->page)
		align = a->page;
	if (!is_pow2(align))
		return -EINVAL;
	if (len > UINT64_MAX - mask)
		return -ENOMEM;
	len = (len + mask) & ~mask;

	for (unsigned i = 0; i < a->nfree; i++) {
		struct nvr_iova_range *f = &a->free[i];
		uint64_t s, e;

		if (f->start > UINT64_MAX - (align - 1))
			break;      /* sorted: no later range can be aligned either */
		s = (f->start + align - 1) & ~(align - 1);
		if (s > f->end || len - 1 > f->end - s)
			continue;
		e = s + (len - 1);

		bool head = s > f->start, tail = e < f->end;

		if (head && tail) {
			int err = free_reserve(a);

			if (err)
				return err;
			f = &a->free[i];    /* the array may have moved */
			free_insert(a, i + 1, e + 1, f->end);
			f->end = s - 1;
		} else if (head) {
			f->end = s - 1;
		} else if (tail) {
			f->start = e + 1;
		} else {
			free_remove(a, i);
		}
		*iova = s;
		return 0;
	}
	return -ENOMEM;
}

/* Index of the first free range starting above @addr (nfree if none). */
static unsigned free_upper_bound(const struct nvr_iova *a, uint64_t addr)
{
	unsigned lo = 0, hi = a->nfree;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (a->free[mid].start > addr)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

int nvr_iova_free(struct nvr_iova *a, uint64_t iova, uint64_t len)
{
	uint64_t mask = a->page - 1, e;
	bool inside = false, left, right;
	unsigned j;

	if (!len || (iova & mask) || len > UINT64_MAX - mask)
		return -EINVAL;
	len = (len + mask) & ~mask;
	if (iova > UINT64_MAX - (len - 1))
		return -EINVAL;
	e = iova + (len - 1);

	for (unsigned i = 0; i < a->nusable && !inside; i++)
		inside = a->usable[i].start <= iova && e <= a->usable[i].end;
	if (!inside)
		return -EINVAL;

	j = free_upper_bound(a, iova);
	if (j > 0 && a->free[j - 1].end >= iova)
		return -EINVAL;     /* double free: overlaps the free range before */
	if (j < a->nfree && a->free[j].start <= e)
		return -EINVAL;     /* ... or the one after */

	left = j > 0 && a->free[j - 1].end + 1 == iova;
	right = j < a->nfree && e + 1 == a->free[j].start;
	if (left && right) {
		a->free[j - 1].end = a->free[j].end;
		free_remove(a, j);
	} else if (left) {
		a->free[j - 1].end = e;
	} else if (right) {
		a->free[j].start = iova;
	} else {
		int err = free_reserve(a);

		if (err)
			return err;
		free_insert(a, j, iova, e);
	}
	return 0;
}

uint64_t nvr_iova_free_bytes(const struct nvr_iova *a)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < a->nfree; i++)
		sum += a->free[i].end - a->free[i].start + 1;
	return sum;
}
