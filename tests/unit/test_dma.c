/* SPDX-License-Identifier: MIT */
/*
 * pci/dma.c through pci/pci.h, over a fake backend defined here: its
 * dma_map records each call and hands out IOVAs far from the VAs, its
 * dma_unmap checks it is undoing exactly one earlier map.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <linux/capability.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pci/pci.h"

#define KiB (1ul << 10)
#define MiB (1ul << 20)
#define FAKE_IOVA_BASE 0x40000000000ull   /* nowhere near user VAs' low bits */

struct fake_map { void *va; size_t len; uint64_t iova; };

struct fake_dev {
	struct nvr_pci_dev pci;              /* first: the ops cast back */
	struct fake_map live[64];
	unsigned nlive;
	unsigned map_calls, unmap_calls, bad_unmaps;
	uint64_t next_iova;
	int fail_next_map;                   /* errno to return once, 0 = none */
	pthread_mutex_t lock;                /* the table lock covers callers, not us */
};

static int fake_dma_map(struct nvr_pci_dev *dev, void *va, size_t len, uint64_t *iova)
{
	struct fake_dev *f = (struct fake_dev *)dev;
	int err = 0;

	pthread_mutex_lock(&f->lock);
	if (((uintptr_t)va | len) & 0xfff) {
		err = -EINVAL;       /* the seam promises 4 KiB aligned arguments */
	} else if (f->fail_next_map) {
		err = -f->fail_next_map;
		f->fail_next_map = 0;
	} else if (f->nlive == 64) {
		err = -ENOSPC;
	} else {
		*iova = f->next_iova;
		f->next_iova += len + 64 * KiB;       /* gaps catch off-by-one users */
		f->live[f->nlive++] = (struct fake_map){ va, len, *iova };
		f->map_calls++;      /* successful maps only */
	}
	pthread_mutex_unlock(&f->lock);
	return err;
}

static int fake_dma_unmap(struct nvr_pci_dev *dev, void *va, size_t len, uint64_t iova)
{
	struct fake_dev *f = (struct fake_dev *)dev;
	int err = -ENOENT;

	pthread_mutex_lock(&f->lock);
	f->unmap_calls++;
	for (unsigned i = 0; i < f->nlive; i++) {
		if (f->live[i].va == va && f->live[i].len == len && f->live[i].iova == iova) {
			f->live[i] = f->live[--f->nlive];
			err = 0;
			break;
		}
	}
	if (err)
		f->bad_unmaps++;
	pthread_mutex_unlock(&f->lock);
	return err;
}

static const struct nvr_pci_ops fake_ops = {
	.dma_map = fake_dma_map,
	.dma_unmap = fake_dma_unmap,
};

static int setup(void **state)
{
	struct fake_dev *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->pci.ops = &fake_ops;
	f->pci.dma_flags = NVR_DMA_NO_HUGEPAGES;    /* deterministic unless a test says */
	f->next_iova = FAKE_IOVA_BASE;
	pthread_mutex_init(&f->lock, NULL);
	assert_int_equal(nvr_pci_dma_init(&f->pci), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fake_dev *f = *state;

	nvr_pci_dma_fini(&f->pci);
	/* fini must undo every mapping exactly once. */
	assert_int_equal(f->nlive, 0);
	assert_int_equal(f->bad_unmaps, 0);
	assert_int_equal(f->map_calls, f->unmap_calls);
	pthread_mutex_destroy(&f->lock);
	free(f);
	return 0;
}

static bool all_zero(const void *p, size_t len)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < len; i++)
		if (c[i])
			return false;
	return true;
}

static void test_small_allocs_share_one_mapping(void **state)
{
	struct fake_dev *f = *state;
	enum { N = 100 };
	void *va[N];
	uint64_t iova[N], t;
	size_t len[N], total = 0;

	for (int i = 0; i < N; i++) {
		len[i] = (size_t)(1 + i % 4) * 4 * KiB - (i % 3);   /* not all page multiples */
		assert_int_equal(nvr_pci_dma_alloc(&f->pci, len[i], &va[i], &iova[i]), 0);
		assert_int_equal((uintptr_t)va[i] % (4 * KiB), 0);
		assert_int_equal(iova[i] % (4 * KiB), 0);
		assert_true(all_zero(va[i], len[i]));
		memset(va[i], i + 1, len[i]);
		total += (len[i] + 4 * KiB - 1) & ~(4 * KiB - 1);
	}
	assert_true(total <= 2 * MiB);
	assert_int_equal(f->map_calls, 1);
	assert_int_equal(f->pci.nmaps, 1);
	assert_int_equal(f->pci.maps[0].live, N);
	assert_false(f->pci.maps[0].hugepage);

	/* Distinct, non-overlapping, and the IOVA is the chunk's plus offset. */
	for (int i = 0; i < N; i++) {
		const unsigned char *c = va[i];

		assert_int_equal(c[0], (unsigned char)(i + 1));
		assert_int_equal(c[len[i] - 1], (unsigned char)(i + 1));
		assert_int_equal(nvr_pci_dma_translate(&f->pci, va[i], len[i], &t), 0);
		assert_int_equal(t, iova[i]);
		assert_int_equal(iova[i] - f->live[0].iova, (uint8_t *)va[i] - (uint8_t *)f->live[0].va);
		assert_true(iova[i] != (uintptr_t)va[i]);
	}
	for (int i = 0; i < N; i++)
		assert_int_equal(nvr_pci_dma_free(&f->pci, va[i]), 0);
	assert_int_equal(f->unmap_calls, 1);
	assert_int_equal(f->pci.nmaps, 0);
}

static void test_second_chunk_when_full(void **state)
{
	struct fake_dev *f = *state;
	void *a, *b, *c;
	uint64_t ia, ib, ic;

	assert_int_equal(nvr_pci_dma_alloc(&f->pci, 1536 * KiB, &a, &ia), 0);
	assert_int_equal(nvr_pci_dma_alloc(&f->pci, 1024 * KiB, &b, &ib), 0);  /* no room left */
	assert_int_equal(f->map_calls, 2);
	/* Both chunks have room for 512 KiB at their bump pointers: no new map. */
	assert_int_equal(nvr_pci_dma_alloc(&f->pci, 512 * KiB, &c, &ic), 0);
	assert_int_equal(f->map_calls, 2);
	bool in_a = (uint8_t *)c == (uint8_t *)a + 1536 * KiB;
	bool in_b = (uint8_t *)c == (uint8_t *)b + 1024 * KiB;

	assert_true(in_a || in_b);
	assert_int_equal(ic, in_a ? ia + 1536 * KiB : ib + 1024 * KiB);

	/* Freeing a and b releases only the chunk c does not live in. */
	assert_int_equal(nvr_pci_dma_free(&f->pci, a), 0);
	assert_int_equal(f->unmap_calls, in_a ? 0 : 1);
	assert_int_equal(nvr_pci_dma_free(&f->pci, b), 0);
	assert_int_equal(f->unmap_calls, 1);
	assert_int_equal(f->pci.nmaps, 1);
	assert_int_equal(nvr_pci_dma_translate(&f->pci, c, 512 * KiB, &ic), 0);
	assert_int_equal(nvr_pci_dma_free(&f->pci, c), 0);
	assert_int_equal(f->unmap_calls, 2);
	assert_int_equal(f->pci.nmaps, 0);
	assert_int_equal(f->bad_unmaps, 0);
}

static void test_free_errors(void **state)
{
	struct fake_dev *f = *state;
	void *a, *b;
	uint64_t ia, ib;
	static char not_dma[64];

	assert_int_equal(nvr_pci_dma_alloc(&f->pci, 8 * KiB, &a, &ia), 0);
	assert_int_equal(nvr_pci_dma_alloc(&f->pci, 4 * KiB, &b, &ib), 0);

	assert_int_equal(nvr_pci_dma_free(&f->pci, (uint8_t *)a + 4 * KiB), -EINVAL); /* inside a */
	assert_int_equal(nvr_pci_dma_free(&f->pci, (uint8_t *)a + 1), -EINVAL);
	assert_int_equal(nvr_pci_dma_free(&f->pci, (uint8_t *)b + 4 * KiB), -EINVAL); /* never given */
	assert_int_equal(nvr_pci_dma_free(&f->pci, not_dma), -EINVAL);
	assert_int_equal(nvr_pci_dma_free(&f->pci, NULL), -EINVAL);
	assert_int_equal(nvr_pci_dma_alloc(&f->pci, 0, &a, &ia), -EINVAL);

	assert_int_equal(nvr_pci_dma_free(&f->pci, a), 0);
	assert_int_equal(nvr_pci_dma_free(&f->pci, a), -EINVAL);    /* double free */
	assert_int_equal(f->pci.maps[0].live, 1);                  /* b still counted */
	assert_int_equal(f->unmap_calls, 0);
	assert_int_equal(nvr_pci_dma_free(&f->pci, b), 0);
	assert_int_equal(f->unmap_calls, 1);
}

static void test_large_alloc_own_chunk(void **state)
{
	struct fake_dev *f = *state;
	void *small, *big;
	uint64_t is, ib, t;

	assert_int_equal(nvr_pci_dma_alloc(&f->pci, 4 * KiB, &small, &is), 0);
	assert_int_equal(nvr_pci_dma_alloc(&f->pci, 3 * MiB + 5, &big, &ib), 0);
	assert_int_equal(f->map_calls, 2);
	/* Rounded up to 2 MiB: the mapping is 4 MiB. */
	for (unsigned i = 0; i < f->nlive; i++)
		if (f->live[i].va == big)
			assert_int_equal(f->live[i].len, 4 * MiB);
	assert_true(all_zero(big, 3 * MiB + 5));
	assert_int_equal(nvr_pci_dma_translate(&f->pci, (uint8_t *)big + 3 * MiB, 5, &t), 0);
	assert_int_equal(t, ib + 3 * MiB);

	/* Nothing else is carved from a large allocation's chunk. */
	void *next;
	uint64_t in;

	assert_int_equal(nvr_pci_dma_alloc(&f->pci, 4 * KiB, &next, &in), 0);
	assert_int_equal(f->map_calls, 2);
	assert_ptr_equal((uint8_t *)next, (uint8_t *)small + 4 * KiB);
	assert_int_equal(nvr_pci_dma_free(&f->pci, (uint8_t *)big + 2 * MiB), -EINVAL);
	assert_int_equal(nvr_pci_dma_free(&f->pci, big), 0);
	assert_int_equal(f->unmap_calls, 1);
	assert_int_equal(nvr_pci_dma_translate(&f->pci, big, 1, &t), -EFAULT);
	assert_int_equal(nvr_pci_dma_free(&f->pci, small), 0);
	assert_int_equal(nvr_pci_dma_free(&f->pci, next), 0);
}

static void test_map_failure_leaves_nothing(void **state)
{
	struct fake_dev *f = *state;
	void *a;
	uint64_t ia;

	f->fail_next_map = ENOMEM;
	assert_int_equal(nvr_pci_dma_alloc(&f->pci, 4 * KiB, &a, &ia), -ENOMEM);
	assert_int_equal(f->pci.nmaps, 0);
	assert_int_equal(nvr_pci_dma_alloc(&f->pci, 4 * KiB, &a, &ia), 0);
	assert_int_equal(f->pci.nmaps, 1);
	assert_int_equal(nvr_pci_dma_free(&f->pci, a), 0);
}

static void test_register_unregister(void **state)
{
	struct fake_dev *f = *state;
	uint8_t *buf = aligned_alloc(4 * KiB, 64 * KiB);
	uint64_t iova, t, dummy;
	void *dma;

	assert_non_null(buf);
	assert_int_equal(nvr_pci_dma_register(&f->pci, buf + 16 * KiB, 32 * KiB, &iova), 0);
	assert_int_equal(f->map_calls, 1);
	assert_false(f->pci.maps[0].owned);
	assert_int_equal(nvr_pci_dma_translate(&f->pci, buf + 20 * KiB + 7, 100, &t), 0);
	assert_int_equal(t, iova + 4 * KiB + 7);

	/* Overlaps from the left, the right, around: all refused. */
	assert_int_equal(nvr_pci_dma_register(&f->pci, buf, 20 * KiB, &dummy), -EEXIST);
	assert_int_equal(nvr_pci_dma_register(&f->pci, buf + 44 * KiB, 8 * KiB, &dummy), -EEXIST);
	assert_int_equal(nvr_pci_dma_register(&f->pci, buf, 64 * KiB, &dummy), -EEXIST);
	/* Touching is not overlapping. */
	assert_int_equal(nvr_pci_dma_register(&f->pci, buf, 16 * KiB, &dummy), 0);
	assert_int_equal(nvr_pci_dma_register(&f->pci, buf + 48 * KiB, 16 * KiB, &dummy), 0);
	assert_int_equal(f->map_calls, 3);

	/* Misaligned address or length; empty; wraps. */
	assert_int_equal(nvr_pci_dma_register(&f->pci, buf + 1, 4 * KiB, &dummy), -EINVAL);
	assert_int_equal(nvr_pci_dma_register(&f->pci, buf, 4 * KiB + 1, &dummy), -EINVAL);
	assert_int_equal(nvr_pci_dma_register(&f->pci, buf, 0, &dummy), -EINVAL);
	assert_int_equal(nvr_pci_dma_register(&f->pci, (void *)(UINTPTR_MAX & ~0xfffull),
					      8 * KiB, &dummy), -EINVAL);
	assert_int_equal(f->map_calls, 3);

	/* Registered memory is not nvr_pci_dma_free()'s, nor the reverse. */
	assert_int_equal(nvr_pci_dma_free(&f->pci, buf + 16 * KiB), -EINVAL);
	assert_int_equal(nvr_pci_dma_alloc(&f->pci, 4 * KiB, &dma, &dummy), 0);
	assert_int_equal(nvr_pci_dma_unregister(&f->pci, dma), -EINVAL);
	assert_int_equal(nvr_pci_dma_free(&f->pci, dma), 0);

	/* Outside every registration: refused. */
	assert_int_equal(nvr_pci_dma_unregister(&f->pci, buf + 64 * KiB), -EINVAL);
	assert_int_equal(nvr_pci_dma_unregister(&f->pci, buf + 16 * KiB), 0);
	assert_int_equal(nvr_pci_dma_unregister(&f->pci, buf + 16 * KiB), -EINVAL);
	assert_int_equal(nvr_pci_dma_translate(&f->pci, buf + 20 * KiB, 1, &t), -EFAULT);
	assert_int_equal(nvr_pci_dma_unregister(&f->pci, buf), 0);
	assert_int_equal(nvr_pci_dma_unregister(&f->pci, buf + 48 * KiB), 0);
	assert_int_equal(f->bad_unmaps, 0);
	assert_int_equal(f->pci.nmaps, 0);
	free(buf);
}

static void test_translate(void **state)
{
	struct fake_dev *f = *state;
	uint8_t *buf = aligned_alloc(4 * KiB, 32 * KiB);
	uint64_t i1, i2, t;

	assert_non_null(buf);
	/* Two touching mappings with unrelated IOVAs. */
	assert_int_equal(nvr_pci_dma_register(&f->pci, buf + 8 * KiB, 8 * KiB, &i1), 0);
	assert_int_equal(nvr_pci_dma_register(&f->pci, buf + 16 * KiB, 8 * KiB, &i2), 0);
	assert_true(i2 != i1 + 8 * KiB);

	assert_int_equal(nvr_pci_dma_translate(&f->pci, buf + 8 * KiB, 8 * KiB, &t), 0);
	assert_int_equal(t, i1);
	assert_int_equal(nvr_pci_dma_translate(&f->pci, buf + 16 * KiB - 1, 1, &t), 0);
	assert_int_equal(t, i1 + 8 * KiB - 1);
	assert_int_equal(nvr_pci_dma_translate(&f->pci, buf + 16 * KiB, 1, &t), 0);
	assert_int_equal(t, i2);
	assert_int_equal(nvr_pci_dma_translate(&f->pci, buf + 20 * KiB, 0, &t), 0);
	assert_int_equal(t, i2 + 4 * KiB);

	t = 0xdead;
	/* Misses: before, after, and straddling (even two mapped neighbours). */
	assert_int_equal(nvr_pci_dma_translate(&f->pci, buf + 8 * KiB - 1, 1, &t), -EFAULT);
	assert_int_equal(nvr_pci_dma_translate(&f->pci, buf + 8 * KiB - 1, 2, &t), -EFAULT);
	assert_int_equal(nvr_pci_dma_translate(&f->pci, buf + 24 * KiB, 1, &t), -EFAULT);
	assert_int_equal(nvr_pci_dma_translate(&f->pci, buf + 23 * KiB, 2 * KiB, &t), -EFAULT);
	assert_int_equal(nvr_pci_dma_translate(&f->pci, buf + 15 * KiB, 2 * KiB, &t), -EFAULT);
	assert_int_equal(nvr_pci_dma_translate(&f->pci, NULL, 1, &t), -EFAULT);
	assert_int_equal(nvr_pci_dma_translate(&f->pci, (void *)UINTPTR_MAX, 2, &t), -EFAULT);
	assert_int_equal(t, 0xdead);

	assert_int_equal(nvr_pci_dma_unregister(&f->pci, buf + 8 * KiB), 0);
	assert_int_equal(nvr_pci_dma_unregister(&f->pci, buf + 16 * KiB), 0);
	free(buf);
}

/* Two users register the same buffer (two rings, say): one mapping, and
 * the first unregister leaves it mapped for the other; a range inside a
 * registration is one more registration of it. */
static void test_register_shared(void **state)
{
	struct fake_dev *f = *state;
	uint8_t *buf = aligned_alloc(4 * KiB, 64 * KiB);
	uint64_t a, b, c, t;

	assert_non_null(buf);
	assert_int_equal(nvr_pci_dma_register(&f->pci, buf, 64 * KiB, &a), 0);
	assert_int_equal(nvr_pci_dma_register(&f->pci, buf, 64 * KiB, &b), 0);
	assert_int_equal(nvr_pci_dma_register(&f->pci, buf + 8 * KiB, 4 * KiB, &c), 0);
	assert_int_equal(b, a);
	assert_int_equal(c, a + 8 * KiB);
	assert_int_equal(f->map_calls, 1);
	assert_int_equal(nvr_pci_dma_unregister(&f->pci, buf), 0);       /* user A */
	assert_int_equal(f->unmap_calls, 0);
	assert_int_equal(nvr_pci_dma_translate(&f->pci, buf, 64 * KiB, &t), 0);
	assert_int_equal(t, a);
	assert_int_equal(nvr_pci_dma_unregister(&f->pci, buf + 8 * KiB), 0);
	assert_int_equal(f->unmap_calls, 0);
	assert_int_equal(nvr_pci_dma_unregister(&f->pci, buf), 0);       /* user B: last */
	assert_int_equal(f->unmap_calls, 1);
	assert_int_equal(nvr_pci_dma_translate(&f->pci, buf, 1, &t), -EFAULT);
	assert_int_equal(nvr_pci_dma_unregister(&f->pci, buf), -EINVAL);
	free(buf);
}

/* Holds: a held allocation or mapping is not freed or unmapped (-EBUSY), so
 * first fit cannot hand its IOVA to someone else while a user (a ring's
 * registered buffer) may still send the device there. */
static void test_hold(void **state)
{
	struct fake_dev *f = *state;
	uint8_t *buf = aligned_alloc(4 * KiB, 32 * KiB);
	void *a, *b, *c;
	uint64_t ia, ib, ic, t, h;

	assert_non_null(buf);
	assert_int_equal(nvr_pci_dma_alloc(&f->pci, 8 * KiB, &a, &ia), 0);
	assert_int_equal(nvr_pci_dma_alloc(&f->pci, 8 * KiB, &b, &ib), 0);
	assert_int_equal(nvr_pci_dma_alloc(&f->pci, 4 * KiB, &c, &ic), 0);

	/* inside one allocation: held; across two, or past the bump: no */
	assert_int_equal(nvr_pci_dma_hold(&f->pci, (uint8_t *)b + 100, 4 * KiB, &h), 0);
	assert_int_equal(h, ib + 100);
	assert_int_equal(nvr_pci_dma_hold(&f->pci, (uint8_t *)a + 4 * KiB, 8 * KiB, &h), -EFAULT);
	assert_int_equal(nvr_pci_dma_hold(&f->pci, (uint8_t *)c + 4 * KiB, 1, &h), -EFAULT);
	assert_int_equal(nvr_pci_dma_hold(&f->pci, buf, 4 * KiB, &h), -EFAULT);   /* not DMA */
	assert_int_equal(nvr_pci_dma_free(&f->pci, b), -EBUSY);
	assert_int_equal(nvr_pci_dma_free(&f->pci, a), 0);    /* neighbours are not held */
	assert_int_equal(nvr_pci_dma_free(&f->pci, c), 0);
	assert_int_equal(nvr_pci_dma_translate(&f->pci, b, 8 * KiB, &t), 0);
	assert_int_equal(t, ib);
	/* a freed allocation cannot be held */
	assert_int_equal(nvr_pci_dma_hold(&f->pci, a, 4 * KiB, &h), -EFAULT);
	/* a registration inside an allocation is a hold too */
	assert_int_equal(nvr_pci_dma_register(&f->pci, b, 8 * KiB, &h), 0);
	assert_int_equal(h, ib);
	assert_int_equal(nvr_pci_dma_unhold(&f->pci, b), 0);
	assert_int_equal(nvr_pci_dma_free(&f->pci, b), -EBUSY);
	assert_int_equal(nvr_pci_dma_unregister(&f->pci, (uint8_t *)b + 4 * KiB), 0);
	assert_int_equal(nvr_pci_dma_unhold(&f->pci, b), -EINVAL);   /* none left */
	assert_int_equal(f->unmap_calls, 0);
	assert_int_equal(nvr_pci_dma_free(&f->pci, b), 0);
	assert_int_equal(f->unmap_calls, 1);                           /* chunk empty */

	/* registered memory: the last unregister waits for the holds */
	assert_int_equal(nvr_pci_dma_register(&f->pci, buf, 32 * KiB, &ia), 0);
	assert_int_equal(nvr_pci_dma_hold(&f->pci, buf + 28 * KiB, 4 * KiB, &h), 0);
	assert_int_equal(h, ia + 28 * KiB);
	assert_int_equal(nvr_pci_dma_hold(&f->pci, buf + 28 * KiB, 8 * KiB, &h), -EFAULT);
	assert_int_equal(nvr_pci_dma_unregister(&f->pci, buf), -EBUSY);
	assert_int_equal(nvr_pci_dma_translate(&f->pci, buf, 32 * KiB, &t), 0);
	assert_int_equal(nvr_pci_dma_unhold(&f->pci, buf + 5), 0);
	assert_int_equal(nvr_pci_dma_unregister(&f->pci, buf), 0);
	assert_int_equal(f->unmap_calls, 2);
	assert_int_equal(nvr_pci_dma_unhold(&f->pci, buf), -EINVAL);
	free(buf);
}

/* Holds on a large allocation (a chunk of its own). */
static void test_hold_large(void **state)
{
	struct fake_dev *f = *state;
	void *big;
	uint64_t ib, h;

	assert_int_equal(nvr_pci_dma_alloc(&f->pci, 3 * MiB, &big, &ib), 0);
	assert_int_equal(nvr_pci_dma_hold(&f->pci, (uint8_t *)big + 2 * MiB, MiB, &h), 0);
	assert_int_equal(h, ib + 2 * MiB);
	assert_int_equal(nvr_pci_dma_free(&f->pci, big), -EBUSY);
	assert_int_equal(nvr_pci_dma_unhold(&f->pci, (uint8_t *)big + 3 * MiB - 1), 0);
	assert_int_equal(nvr_pci_dma_free(&f->pci, big), 0);
	assert_int_equal(nvr_pci_dma_hold(&f->pci, big, 1, &h), -EFAULT);
}

/* Driver-internal allocations: chunks of their own (never shared with user
 * allocations), invisible to translate/hold/register/free. */
static void test_internal_allocs(void **state)
{
	struct fake_dev *f = *state;
	void *in, *user;
	uint64_t iin, iuser, t;

	assert_int_equal(nvr_pci_dma_alloc_internal(&f->pci, 4 * KiB, &in, &iin), 0);
	assert_int_equal(nvr_pci_dma_alloc(&f->pci, 4 * KiB, &user, &iuser), 0);
	assert_int_equal(f->map_calls, 2);   /* not carved from the same chunk */
	assert_int_equal(nvr_pci_dma_translate(&f->pci, in, 4 * KiB, &t), -EFAULT);
	assert_int_equal(nvr_pci_dma_hold(&f->pci, in, 4 * KiB, &t), -EFAULT);
	assert_int_equal(nvr_pci_dma_register(&f->pci, in, 4 * KiB, &t), -EEXIST);
	assert_int_equal(nvr_pci_dma_free(&f->pci, in), -EINVAL);
	assert_int_equal(nvr_pci_dma_free_internal(&f->pci, user), -EINVAL);
	assert_int_equal(nvr_pci_dma_translate(&f->pci, user, 4 * KiB, &t), 0);
	assert_int_equal(nvr_pci_dma_free_internal(&f->pci, in), 0);
	assert_int_equal(nvr_pci_dma_free(&f->pci, user), 0);
	assert_int_equal(f->unmap_calls, 2);
}

/* The per-thread translation cache: hits without the lock, and every
 * unmap (unregister, a chunk's last free, fini) invalidates it. */
static void test_translate_cache(void **state)
{
	struct fake_dev *f = *state;
	struct nvr_dma_tcache c = { 0 };
	uint8_t *buf = aligned_alloc(4 * KiB, 64 * KiB);
	uint64_t i1, i2, t;
	void *a;

	assert_non_null(buf);
	assert_int_equal(nvr_pci_dma_translate_cached(&f->pci, &c, buf, 1, &t), -EFAULT);
	assert_int_equal(c.len, 0);
	assert_int_equal(nvr_pci_dma_register(&f->pci, buf, 64 * KiB, &i1), 0);
	assert_int_equal(nvr_pci_dma_translate_cached(&f->pci, &c, buf + 100, 200, &t), 0);
	assert_int_equal(t, i1 + 100);
	assert_int_equal(c.len, 64 * KiB);

	/* a hit does not take the lock: it works while a writer holds it */
	pthread_rwlock_wrlock(&f->pci.dma_lock);
	t = 0;
	int rc = nvr_pci_dma_translate_cached(&f->pci, &c, buf + 60 * KiB, 4 * KiB, &t);
	pthread_rwlock_unlock(&f->pci.dma_lock);
	assert_int_equal(rc, 0);
	assert_int_equal(t, i1 + 60 * KiB);
	/* past the mapping: a miss, and still -EFAULT */
	assert_int_equal(nvr_pci_dma_translate_cached(&f->pci, &c, buf + 60 * KiB, 8 * KiB, &t),
			 -EFAULT);

	/* unregister, then the same VA again with another IOVA: never the old one */
	assert_int_equal(nvr_pci_dma_translate_cached(&f->pci, &c, buf, 1, &t), 0);
	assert_int_equal(nvr_pci_dma_unregister(&f->pci, buf), 0);
	assert_int_equal(nvr_pci_dma_translate_cached(&f->pci, &c, buf, 1, &t), -EFAULT);
	assert_int_equal(nvr_pci_dma_register(&f->pci, buf, 64 * KiB, &i2), 0);
	assert_true(i2 != i1);
	assert_int_equal(nvr_pci_dma_translate_cached(&f->pci, &c, buf + 8, 8, &t), 0);
	assert_int_equal(t, i2 + 8);
	/* a new mapping elsewhere does not disturb the cached one */
	assert_int_equal(nvr_pci_dma_alloc(&f->pci, 4 * KiB, &a, &i1), 0);
	uint64_t gen = c.gen;
	assert_int_equal(nvr_pci_dma_translate_cached(&f->pci, &c, buf + 16, 8, &t), 0);
	assert_int_equal(c.gen, gen);
	/* a chunk released by its last free invalidates too */
	assert_int_equal(nvr_pci_dma_translate_cached(&f->pci, &c, a, 4 * KiB, &t), 0);
	assert_int_equal(t, i1);
	assert_int_equal(nvr_pci_dma_free(&f->pci, a), 0);
	assert_int_equal(nvr_pci_dma_translate_cached(&f->pci, &c, a, 1, &t), -EFAULT);
	assert_int_equal(nvr_pci_dma_unregister(&f->pci, buf), 0);
	free(buf);
}

/* VmLck of this process, in bytes. */
static unsigned long long vm_locked(void)
{
	char line[256];
	unsigned long long kb = 0;
	FILE *fp = fopen("/proc/self/status", "r");

	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp))
		if (sscanf(line, "VmLck: %llu kB", &kb) == 1)
			break;
	fclose(fp);
	return kb * 1024;
}

static void test_no_hugepages_locks_small_pages(void **state)
{
	struct fake_dev *f = *state;
	unsigned long long before = vm_locked();
	void *a;
	uint64_t ia;
	int err;

	/* ASan's mlock() interceptor does nothing: VmLck cannot show it. */
	void *probe = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(probe != MAP_FAILED);
	bool mlock_counts = mlock(probe, 4096) == 0 && vm_locked() == before + 4096;

	munmap(probe, 4096);
	if (!mlock_counts)
		skip();
	err = nvr_pci_dma_alloc(&f->pci, 4 * KiB, &a, &ia);
	if (err == -ENOMEM)
		skip();       /* RLIMIT_MEMLOCK below 2 MiB here: the message said why */
	assert_int_equal(err, 0);
	assert_false(f->pci.maps[0].hugepage);
	/* The whole chunk is locked: this backend does not pin. */
	assert_int_equal(vm_locked() - before, 2 * MiB);
	assert_int_equal(nvr_pci_dma_free(&f->pci, a), 0);
	assert_int_equal(vm_locked(), before);
}

static void test_backend_pins_skips_mlock(void **state)
{
	struct fake_dev *f = *state;
	unsigned long long before = vm_locked();
	void *a;
	uint64_t ia;

	f->pci.dma_flags |= NVR_DMA_BACKEND_PINS;
	assert_int_equal(nvr_pci_dma_alloc(&f->pci, 4 * KiB, &a, &ia), 0);
	assert_int_equal(vm_locked(), before);
	assert_int_equal(nvr_pci_dma_free(&f->pci, a), 0);
}

static long free_hugepages(void)
{
	FILE *fp = fopen("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "r");
	long n = 0;

	if (!fp)
		return 0;
	if (fscanf(fp, "%ld", &n) != 1)
		n = 0;
	fclose(fp);
	return n;
}

static void test_hugepage_chunks(void **state)
{
	struct fake_dev *f = *state;
	void *a, *big;
	uint64_t ia, ib;

	if (free_hugepages() < 3)
		skip();       /* none reserved: echo 8 > /proc/sys/vm/nr_hugepages */
	f->pci.dma_flags &= ~NVR_DMA_NO_HUGEPAGES;
	assert_int_equal(nvr_pci_dma_alloc(&f->pci, 4 * KiB, &a, &ia), 0);
	assert_true(f->pci.maps[0].hugepage);
	assert_int_equal((uintptr_t)a % (2 * MiB), 0);
	assert_int_equal(nvr_pci_dma_alloc(&f->pci, 4 * MiB - 4 * KiB, &big, &ib), 0);
	assert_int_equal((uintptr_t)big % (2 * MiB), 0);
	assert_true(all_zero(big, 4 * MiB - 4 * KiB));
	for (unsigned i = 0; i < f->pci.nmaps; i++)
		assert_true(f->pci.maps[i].hugepage);
	assert_int_equal(nvr_pci_dma_free(&f->pci, a), 0);
	assert_int_equal(nvr_pci_dma_free(&f->pci, big), 0);
}

static void test_hugepage_fallback(void **state)
{
	struct fake_dev *f = *state;
	void *a;
	uint64_t ia;

	if (free_hugepages() > 0)
		skip();       /* hugepages are reserved: no fallback to see */
	f->pci.dma_flags = NVR_DMA_BACKEND_PINS;      /* hugepages allowed */
	assert_int_equal(nvr_pci_dma_alloc(&f->pci, 4 * KiB, &a, &ia), 0);
	assert_false(f->pci.maps[0].hugepage);
	assert_int_equal(nvr_pci_dma_free(&f->pci, a), 0);
}

static void test_fini_unmaps_everything(void **state)
{
	struct fake_dev *f = *state;
	uint8_t *buf = aligned_alloc(4 * KiB, 8 * KiB);
	void *a, *b;
	uint64_t i;

	assert_int_equal(nvr_pci_dma_alloc(&f->pci, 4 * KiB, &a, &i), 0);
	assert_int_equal(nvr_pci_dma_alloc(&f->pci, 5 * MiB, &b, &i), 0);
	assert_int_equal(nvr_pci_dma_register(&f->pci, buf, 8 * KiB, &i), 0);
	assert_int_equal(f->nlive, 3);
	/* teardown() runs fini and checks every map was undone exactly once. */
	nvr_pci_dma_fini(&f->pci);
	assert_int_equal(f->nlive, 0);
	assert_int_equal(f->unmap_calls, 3);
	assert_int_equal(nvr_pci_dma_init(&f->pci), 0);
	free(buf);
}

/* Translation under the read lock while other threads allocate and free. */
struct churn { struct fake_dev *f; void *va; uint64_t iova; int errors; };

static void *churn_thread(void *arg)
{
	struct churn *c = arg;

	for (int i = 0; i < 2000; i++) {
		void *va;
		uint64_t iova, t;

		if (nvr_pci_dma_alloc(&c->f->pci, (size_t)(1 + i % 8) * 4 * KiB, &va, &iova) ||
		    nvr_pci_dma_translate(&c->f->pci, va, 4 * KiB, &t) || t != iova ||
		    nvr_pci_dma_translate(&c->f->pci, c->va, 4 * KiB, &t) || t != c->iova ||
		    nvr_pci_dma_free(&c->f->pci, va))
			c->errors++;
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct fake_dev *f = *state;
	struct churn c[3];
	pthread_t th[3];
	void *pinned;
	uint64_t ip;

	f->pci.dma_flags |= NVR_DMA_BACKEND_PINS;
	assert_int_equal(nvr_pci_dma_alloc(&f->pci, 4 * KiB, &pinned, &ip), 0);
	for (int i = 0; i < 3; i++) {
		c[i] = (struct churn){ f, pinned, ip, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, churn_thread, &c[i]), 0);
	}
	for (int i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(c[i].errors, 0);
	}
	assert_int_equal(nvr_pci_dma_free(&f->pci, pinned), 0);
	assert_int_equal(f->pci.nmaps, 0);
	assert_int_equal(f->bad_unmaps, 0);
}

/* Drop CAP_IPC_LOCK from the effective set (the limit then applies). */
static int drop_ipc_lock(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data))
		return -1;
	data[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
	return (int)syscall(SYS_capset, &hdr, data);
}

static void test_memlock_check(void **state)
{
	struct rlimit rl;
	pid_t pid;
	int status;

	assert_int_equal(getrlimit(RLIMIT_MEMLOCK, &rl), 0);
	if (rl.rlim_cur == RLIM_INFINITY)
		assert_int_equal(nvr_pci_memlock_check((size_t)1 << 40), 0);

	/* In a child: no CAP_IPC_LOCK, a 64 KiB limit; 1 MiB must be refused
	 * (with the message on stderr) and 16 KiB allowed. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit small = { 64 * KiB, rl.rlim_max };

		if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < small.rlim_cur)
			small.rlim_max = small.rlim_cur = rl.rlim_max;
		if (drop_ipc_lock() || setrlimit(RLIMIT_MEMLOCK, &small))
			_exit(2);
		if (nvr_pci_memlock_check(1 * MiB) != -ENOMEM)
			_exit(3);
		if (nvr_pci_memlock_check(small.rlim_cur / 4) != 0)
			_exit(4);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_small_allocs_share_one_mapping),
		T(test_second_chunk_when_full),
		T(test_free_errors),
		T(test_large_alloc_own_chunk),
		T(test_map_failure_leaves_nothing),
		T(test_register_unregister),
		T(test_translate),
		T(test_register_shared),
		T(test_hold),
		T(test_hold_large),
		T(test_internal_allocs),
		T(test_translate_cache),
		T(test_no_hugepages_locks_small_pages),
		T(test_backend_pins_skips_mlock),
		T(test_hugepage_chunks),
		T(test_hugepage_fallback),
		T(test_fini_unmaps_everything),
		T(test_threads),
		cmocka_unit_test(test_memlock_check),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
