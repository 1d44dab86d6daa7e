/* SPDX-License-Identifier: MIT */
/*
 * The driver (driver/) end to end against the software controller model
 * (tests/model/): bring-up through nvr_ctrlr_attach_dev(), then I/O checked
 * byte for byte against the model's namespace RAM.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "driver/ctrlr.h"
#include "driver/qpair.h"
#include "nvring/nvring.h"
#include "tests/model/nvme_model.h"
#include "tests/unit/driver_env.h"

/* ---- bring-up ----------------------------------------------------------- */

static void test_bringup(void **state)
{
	struct nvme_model_cfg cfg = { .nns = 3, .ns_blocks = 4096, .lba_shift = 12,
				      .vwc = true, .sn = "SN-TEST-42" };
	struct env e;
	uint32_t ids[8];
	struct nvr_ns_info ni;

	attach(&e, &cfg, NULL);
	const struct nvr_ctrlr_info *info = nvr_ctrlr_get_info(e.c);
	assert_string_equal(info->sn, "SN-TEST-42");
	assert_string_equal(info->mn, "nvring model controller");
	assert_int_equal(info->nn, 3);
	assert_int_equal(info->max_xfer, 128 * 1024);     /* MDTS 5 × 4 KiB */
	assert_int_equal(info->max_io_qpairs, 8);         /* model grants 8 of our 16 */
	assert_int_equal(info->max_io_entries, 256);      /* MQES 255 */
	assert_true(info->vwc);
	assert_int_equal(info->version, 0x00010400);

	assert_int_equal(nvr_ctrlr_ns_list(e.c, ids, 8), 3);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[2], 3);
	assert_int_equal(nvr_ctrlr_ns_list(e.c, ids, 1), 3);
	assert_int_equal(nvr_ns_get_info(e.c, 2, &ni), 0);
	assert_int_equal(ni.lba_size, 4096);
	assert_int_equal(ni.nlba, 4096);
	assert_int_equal(nvr_ns_get_info(e.c, 4, &ni), -ENOENT);
	assert_int_equal(nvr_ns_get_info(e.c, 0, &ni), -ENOENT);

	/* all granted qpairs, then -EBUSY, then one back */
	struct nvr_qpair *qps[9];
	for (int i = 0; i < 8; i++)
		assert_int_equal(nvr_qpair_alloc(e.c, 8, &qps[i]), 0);
	assert_int_equal(nvr_qpair_alloc(e.c, 8, &qps[8]), -EBUSY);
	assert_int_equal(nvr_qpair_free(qps[3]), 0);
	assert_int_equal(nvr_qpair_alloc(e.c, 8, &qps[3]), 0);
	assert_int_equal(nvme_model_get_stats(e.m).io_sqs, 8);
	/* depth clamps: 0 → default 256 → 255 trackers; huge → MQES+1 */
	nvr_qpair_free(qps[0]);
	assert_int_equal(nvr_qpair_alloc(e.c, 0, &qps[0]), 0);
	assert_int_equal(nvr_qpair_depth(qps[0]), 255);
	nvr_qpair_free(qps[1]);
	assert_int_equal(nvr_qpair_alloc(e.c, 100000, &qps[1]), 0);
	assert_int_equal(nvr_qpair_depth(qps[1]), 255);
	nvr_qpair_free(qps[2]);
	assert_int_equal(nvr_qpair_alloc(e.c, 1, &qps[2]), 0);
	assert_int_equal(nvr_qpair_depth(qps[2]), 1);
	/* detach refuses while queue pairs exist; they are the caller's */
	assert_int_equal(nvr_ctrlr_detach(e.c), -EBUSY);
	for (int i = 0; i < 8; i++)
		assert_int_equal(nvr_qpair_free(qps[i]), 0);
	detach(&e);
}

/* CSTS.CFS while enabling: attach fails with -EIO and releases the
 * device. (The model keeps CFS until CC.EN goes 1→0; it is disabled here.) */
static void test_bringup_cfs(void **state)
{
	struct nvme_model *m;
	struct nvr_pci_dev *dev;
	struct nvr_ctrlr *c = (struct nvr_ctrlr *)0x1;

	assert_int_equal(nvme_model_create(NULL, &m, &dev), 0);
	nvme_model_set_cfs(m);
	assert_int_equal(nvr_ctrlr_attach_dev(dev, NULL, &c), -EIO);
	assert_null(c);
	assert_null(nvme_model_dev(m));   /* closed by the driver */
	assert_int_equal(nvme_model_get_stats(m).dma_maps, 0);
	nvme_model_destroy(m);
}

/* ---- data path ------------------------------------------------------------ */

#define BUF_SIZE (1u << 20)

static void test_rw_random(void **state)
{
	struct nvme_model_cfg cfg = { .ns_blocks = 16384, .lba_shift = 9 };
	struct env e;
	struct nvr_qpair *qp;
	uint8_t *wbuf, *rbuf;
	unsigned seed = 12345;
	struct done d = { 0 };

	attach(&e, &cfg, NULL);
	assert_int_equal(nvr_qpair_alloc(e.c, 64, &qp), 0);
	assert_int_equal(nvr_dma_alloc(e.c, BUF_SIZE, (void **)&wbuf), 0);
	assert_int_equal(nvr_dma_alloc(e.c, BUF_SIZE, (void **)&rbuf), 0);
	uint8_t *ns = nvme_model_ns_data(e.m, 1);
	assert_non_null(ns);

	for (int it = 0; it < 200; it++) {
		/* sizes up to 1 MiB - 4 KiB: up to 8 commands at MDTS 128 KiB;
		 * buffer offsets in 512-byte steps: unaligned PRP1s */
		uint32_t nlb = 1 + (uint32_t)rand_r(&seed) % 2040;
		uint32_t boff = ((uint32_t)rand_r(&seed) % 8) * 512;
		uint64_t lba = (uint64_t)rand_r(&seed) % (16384 - nlb);
		size_t bytes = (size_t)nlb * 512;

		fill_random(wbuf + boff, bytes, &seed);
		d.n = 0;
		assert_int_equal(nvr_write(qp, 1, wbuf + boff, lba, nlb, on_done, &d), 0);
		assert_int_equal(wait_for(qp, &d, 1), 0);
		assert_int_equal(d.res, 0);
		assert_memory_equal(ns + lba * 512, wbuf + boff, bytes);

		uint32_t roff = ((uint32_t)rand_r(&seed) % 8) * 512;
		memset(rbuf, 0, BUF_SIZE);
		d.n = 0;
		assert_int_equal(nvr_read(qp, 1, rbuf + roff, lba, nlb, on_done, &d), 0);
		assert_int_equal(wait_for(qp, &d, 1), 0);
		assert_int_equal(d.res, 0);
		assert_memory_equal(rbuf + roff, wbuf + boff, bytes);
		assert_int_equal(d.n, 1);   /* one callback per request */
	}
	assert_int_equal(qp->q.bad_cids, 0);
	nvr_dma_free(e.c, wbuf);
	nvr_dma_free(e.c, rbuf);
	check_clean(&e);
	nvr_qpair_free(qp);
	detach(&e);
}

/* A small MDTS: the request becomes ceil(bytes / 8 KiB) commands, and
 * without MDTS the cap is 1 MiB. */
static void test_mdts_split(void **state)
{
	struct nvme_model_cfg cfg = { .ns_blocks = 8192, .lba_shift = 9, .mdts = 1 };
	struct env e;
	struct nvr_qpair *qp;
	uint8_t *buf;
	struct done d = { 0 };
	unsigned seed = 7;

	attach(&e, &cfg, NULL);
	assert_int_equal(nvr_ctrlr_get_info(e.c)->max_xfer, 8192);
	assert_int_equal(nvr_qpair_alloc(e.c, 16, &qp), 0);
	assert_int_equal(nvr_dma_alloc(e.c, 256 * 1024, (void **)&buf), 0);
	fill_random(buf, 256 * 1024, &seed);

	uint64_t before = nvme_model_get_stats(e.m).io_cmds;
	/* 200 KiB from an unaligned start: 25 commands, > 15 trackers, so
	 * it also continues from poll */
	assert_int_equal(nvr_write(qp, 1, buf + 512, 100, 400, on_done, &d), 0);
	assert_int_equal(wait_for(qp, &d, 1), 0);
	assert_int_equal(d.res, 0);
	assert_int_equal(d.n, 1);
	assert_int_equal(nvme_model_get_stats(e.m).io_cmds - before, 25);
	assert_memory_equal(nvme_model_ns_data(e.m, 1) + 100 * 512, buf + 512, 400 * 512);
	check_clean(&e);
	nvr_qpair_free(qp);
	nvr_dma_free(e.c, buf);
	detach(&e);

	struct nvme_model_cfg cfg2 = { .mdts = NVME_MODEL_MDTS_NONE };
	attach(&e, &cfg2, NULL);
	assert_int_equal(nvr_ctrlr_get_info(e.c)->max_xfer, 1u << 20);
	detach(&e);
}

static void test_flush_zeroes_deallocate(void **state)
{
	struct nvme_model_cfg cfg = { .ns_blocks = 140000, .lba_shift = 9, .vwc = true };
	struct env e;
	struct nvr_qpair *qp;
	struct done d = { 0 };

	attach(&e, &cfg, NULL);
	const struct nvr_ctrlr_info *info = nvr_ctrlr_get_info(e.c);
	assert_true(info->write_zeroes);
	assert_true(info->dsm);
	assert_int_equal(nvr_qpair_alloc(e.c, 16, &qp), 0);
	uint8_t *ns = nvme_model_ns_data(e.m, 1);
	memset(ns, 0xab, 140000 * 512);

	assert_int_equal(nvr_flush(qp, 1, on_done, &d), 0);
	assert_int_equal(wait_for(qp, &d, 1), 0);
	assert_int_equal(d.res, 0);

	/* 131073 blocks: 65536 + 65536 + 1 → three commands */
	uint64_t before = nvme_model_get_stats(e.m).io_cmds;
	d.n = 0;
	assert_int_equal(nvr_write_zeroes(qp, 1, 10, 131073, on_done, &d), 0);
	assert_int_equal(wait_for(qp, &d, 1), 0);
	assert_int_equal(d.res, 0);
	assert_int_equal(nvme_model_get_stats(e.m).io_cmds - before, 3);
	assert_int_equal(ns[10 * 512 - 1], 0xab);
	for (size_t i = 10 * 512; i < (10 + 131073) * 512ull; i += 509)
		assert_int_equal(ns[i], 0);
	assert_int_equal(ns[(10 + 131073) * 512], 0xab);

	/* deallocate reads back as zeroes in the model */
	memset(ns, 0xcd, 4096);
	uint8_t *buf;
	assert_int_equal(nvr_dma_alloc(e.c, 4096, (void **)&buf), 0);
	d.n = 0;
	assert_int_equal(nvr_deallocate(qp, 1, 0, 8, on_done, &d), 0);
	assert_int_equal(wait_for(qp, &d, 1), 0);
	assert_int_equal(d.res, 0);
	memset(buf, 0xee, 4096);
	d.n = 0;
	assert_int_equal(nvr_read(qp, 1, buf, 0, 8, on_done, &d), 0);
	assert_int_equal(wait_for(qp, &d, 1), 0);
	for (int i = 0; i < 4096; i++)
		assert_int_equal(buf[i], 0);
	nvr_dma_free(e.c, buf);
	check_clean(&e);
	nvr_qpair_free(qp);
	detach(&e);
}

/* A 4-entry queue (3 trackers) wrapped well over 100 times: the phase
 * tag flips on every pass. */
static void test_small_queue_wrap(void **state)
{
	struct nvme_model_cfg cfg = { .ns_blocks = 2048, .lba_shift = 9 };
	struct env e;
	struct nvr_qpair *qp;
	uint8_t *buf;
	struct done d = { 0 };

	attach(&e, &cfg, NULL);
	assert_int_equal(nvr_qpair_alloc(e.c, 4, &qp), 0);
	assert_int_equal(nvr_qpair_depth(qp), 3);
	assert_int_equal(nvr_dma_alloc(e.c, 3 * 4096, (void **)&buf), 0);
	uint8_t *ns = nvme_model_ns_data(e.m, 1);

	for (int pass = 0; pass < 160; pass++) {
		for (int k = 0; k < 3; k++) {
			memset(buf + k * 4096, (pass * 3 + k) & 0xff, 4096);
			assert_int_equal(nvr_write(qp, 1, buf + k * 4096, (uint64_t)k * 8, 8,
						   on_done, &d), 0);
		}
		/* no slot left: a fourth request waits */
		assert_int_equal(nvr_write(qp, 1, buf, 100, 8, on_done, &d), -EAGAIN);
		assert_int_equal(wait_for(qp, &d, (pass + 1) * 3), 0);
		assert_int_equal(d.res, 0);
		for (int k = 0; k < 3; k++)
			assert_int_equal(ns[k * 4096 + 17], (pass * 3 + k) & 0xff);
	}
	/* 480 commands through 4 slots = 120 passes over the queue */
	assert_int_equal(qp->q.bad_cids, 0);
	nvr_dma_free(e.c, buf);
	check_clean(&e);
	nvr_qpair_free(qp);
	detach(&e);
}

/* -EAGAIN only when no request slot is left; a request bigger than the
 * free trackers is continued from poll, in FIFO order. */
static void test_eagain_and_continuation(void **state)
{
	struct nvme_model_cfg cfg = { .ns_blocks = 8192, .lba_shift = 9 };
	struct env e;
	struct nvr_qpair *qp;
	uint8_t *buf;
	struct done d = { 0 };
	struct tagged t[3] = { { &d, 0 }, { &d, 1 }, { &d, 2 } };
	unsigned seed = 99;
	uint8_t *rbuf;

	attach(&e, &cfg, NULL);
	assert_int_equal(nvr_qpair_alloc(e.c, 4, &qp), 0);   /* 3 trackers, 3 requests */
	assert_int_equal(nvr_dma_alloc(e.c, 1 << 20, (void **)&buf), 0);
	assert_int_equal(nvr_dma_alloc(e.c, 4096, (void **)&rbuf), 0);
	fill_random(buf, 1 << 20, &seed);

	/* 1 MiB at 128 KiB per command: 8 commands, 3 go out now */
	assert_int_equal(nvr_write(qp, 1, buf, 0, 2048, on_tagged, &t[0]), 0);
	assert_ptr_not_equal(qp->pending_head, NULL);
	/* these queue behind it */
	assert_int_equal(nvr_write(qp, 1, buf, 4096, 8, on_tagged, &t[1]), 0);
	assert_int_equal(nvr_read(qp, 1, rbuf, 0, 8, on_tagged, &t[2]), 0);
	assert_int_equal(nvr_write(qp, 1, buf, 5000, 8, on_done, &d), -EAGAIN);
	assert_int_equal(wait_for(qp, &d, 3), 0);
	assert_int_equal(d.res, 0);
	assert_int_equal(d.order[0], 0);   /* FIFO: the big one finishes first */
	assert_null(qp->pending_head);
	assert_int_equal(qp->q.nfree_tr, 3);
	/* the big write landed whole (the read of blocks 0..7 came after it) */
	assert_memory_equal(nvme_model_ns_data(e.m, 1), buf, 1 << 20);
	nvr_dma_free(e.c, buf);
	nvr_dma_free(e.c, rbuf);
	check_clean(&e);
	nvr_qpair_free(qp);
	detach(&e);
}

static void test_readv_writev_and_nvr_io(void **state)
{
	struct nvme_model_cfg cfg = { .ns_blocks = 4096, .lba_shift = 9 };
	struct env e;
	struct nvr_qpair *qp;
	uint8_t *a, *b;
	struct done d = { 0 };
	unsigned seed = 5;

	attach(&e, &cfg, NULL);
	assert_int_equal(nvr_qpair_alloc(e.c, 32, &qp), 0);
	assert_int_equal(nvr_dma_alloc(e.c, 64 * 1024, (void **)&a), 0);
	assert_int_equal(nvr_dma_alloc(e.c, 64 * 1024, (void **)&b), 0);
	fill_random(a, 64 * 1024, &seed);

	/* 0.5 page (ending on a page boundary) + 3 pages + 1.5 pages */
	struct iovec w[3] = {
		{ a + 0x800, 0x800 }, { b + 0x4000, 3 * 4096 }, { a + 0x8000, 0x1800 },
	};
	uint8_t *ns = nvme_model_ns_data(e.m, 1);
	assert_int_equal(nvr_writev(qp, 1, w, 3, 64, on_done, &d), 0);
	assert_int_equal(wait_for(qp, &d, 1), 0);
	assert_int_equal(d.res, 0);
	assert_memory_equal(ns + 64 * 512, a + 0x800, 0x800);
	assert_memory_equal(ns + 64 * 512 + 0x800, b + 0x4000, 3 * 4096);
	assert_memory_equal(ns + 64 * 512 + 0x800 + 3 * 4096, a + 0x8000, 0x1800);

	/* read it back through nvr_io with bus addresses */
	uint64_t iova;
	uint8_t *r;
	assert_int_equal(nvr_dma_alloc(e.c, 32 * 1024, (void **)&r), 0);
	assert_int_equal(nvr_dma_iova(e.c, r, 32 * 1024, &iova), 0);
	struct nvr_seg seg = { iova, 0x800 + 3 * 4096 + 0x1800 };
	d.n = 0;
	assert_int_equal(nvr_io(qp, NVR_IO_READ, 1, 64, seg.len / 512, &seg, 1, on_done, &d), 0);
	assert_int_equal(wait_for(qp, &d, 1), 0);
	assert_memory_equal(r, ns + 64 * 512, seg.len);

	/* misaligned interior boundary → -EINVAL, nothing submitted */
	struct iovec bad[2] = { { a, 0x600 }, { b, 0x200 } };
	assert_int_equal(nvr_readv(qp, 1, bad, 2, 0, on_done, &d), -EINVAL);
	/* not a whole number of blocks */
	struct iovec odd[1] = { { a, 700 } };
	assert_int_equal(nvr_readv(qp, 1, odd, 1, 0, on_done, &d), -EINVAL);
	/* nvr_io segments too short for nlb */
	assert_int_equal(nvr_io(qp, NVR_IO_READ, 1, 0, 100, &seg, 1, on_done, &d), -EINVAL);
	assert_int_equal(nvr_qpair_poll(qp, 0), 0);
	assert_int_equal(qp->q.nfree_tr, 31);
	nvr_dma_free(e.c, r);
	nvr_dma_free(e.c, a);
	nvr_dma_free(e.c, b);
	check_clean(&e);
	nvr_qpair_free(qp);
	detach(&e);
}

static void test_argument_errors(void **state)
{
	struct env e;
	struct nvr_qpair *qp;
	uint8_t *buf;
	struct done d = { 0 };

	attach(&e, NULL, NULL);
	assert_int_equal(nvr_qpair_alloc(e.c, 8, &qp), 0);
	assert_int_equal(nvr_dma_alloc(e.c, 8192, (void **)&buf), 0);
	assert_int_equal(nvr_read(qp, 2, buf, 0, 1, on_done, &d), -EINVAL);   /* no ns 2 */
	assert_int_equal(nvr_read(qp, 1, buf, 0, 0, on_done, &d), -EINVAL);   /* nlb 0 */
	assert_int_equal(nvr_write_zeroes(qp, 1, UINT64_MAX - 2, 8, on_done, &d), -EINVAL);
	assert_int_equal(nvr_flush(qp, 9, on_done, &d), -EINVAL);
	uint8_t *heap = aligned_alloc(4096, 8192);
	assert_int_equal(nvr_read(qp, 1, heap, 0, 1, on_done, &d), -EFAULT);
	free(heap);
	assert_int_equal(d.n, 0);
	assert_int_equal(qp->q.nfree_tr, 7);
	nvr_dma_free(e.c, buf);
	check_clean(&e);
	nvr_qpair_free(qp);
	detach(&e);
}

/* Device errors map through the status table; a failing part of a split
 * request fails the whole request once. */
static void test_device_errors(void **state)
{
	struct nvme_model_cfg cfg = { .ns_blocks = 4096, .lba_shift = 9 };
	struct env e;
	struct nvr_qpair *qp;
	uint8_t *buf;
	struct done d = { 0 };

	attach(&e, &cfg, NULL);
	assert_int_equal(nvr_qpair_alloc(e.c, 8, &qp), 0);
	assert_int_equal(nvr_dma_alloc(e.c, 1 << 20, (void **)&buf), 0);

	nvme_model_fail_next(e.m, NVME_MODEL_Q_IO, NVME_CMD_READ, 0x281 | NVME_MODEL_DNR, 1);
	assert_int_equal(nvr_read(qp, 1, buf, 0, 8, on_done, &d), 0);
	assert_int_equal(wait_for(qp, &d, 1), 0);
	assert_int_equal(d.res, -ENODATA);
	assert_int_equal(d.status, 0x281);

	/* LBA out of range, from the device */
	memset(&d, 0, sizeof(d));
	assert_int_equal(nvr_read(qp, 1, buf, 4095, 2, on_done, &d), 0);
	assert_int_equal(wait_for(qp, &d, 1), 0);
	assert_int_equal(d.res, -EREMOTEIO);
	assert_int_equal(d.status, 0x080);

	/* a status without DNR is retried (Linux's nvme_max_retries, 5): one
	 * failure, then success */
	struct nvr_qpair_stats qs;
	memset(&d, 0, sizeof(d));
	nvme_model_fail_next(e.m, NVME_MODEL_Q_IO, NVME_CMD_READ, 0x281, 1);
	assert_int_equal(nvr_read(qp, 1, buf, 0, 8, on_done, &d), 0);
	assert_int_equal(wait_for(qp, &d, 1), 0);
	assert_int_equal(d.res, 0);
	assert_int_equal(nvr_qpair_get_stats(qp, &qs), 0);
	assert_int_equal(qs.retries, 1);

	/* a command failing all 6 times it is sent: the error, after 5 retries */
	memset(&d, 0, sizeof(d));
	nvme_model_fail_next(e.m, NVME_MODEL_Q_IO, NVME_CMD_WRITE, 0x004, 6);
	assert_int_equal(nvr_write(qp, 1, buf, 0, 8, on_done, &d), 0);
	assert_int_equal(wait_for(qp, &d, 1), 0);
	assert_int_equal(d.res, -EIO);
	assert_int_equal(d.status, 0x004);
	assert_int_equal(nvr_qpair_get_stats(qp, &qs), 0);
	assert_int_equal(qs.retries, 1 + 5);
	assert_int_equal(nvme_model_get_stats(e.m).injected, 1 + 1 + 6);

	/* one bad part (DNR: not retried) in an 8-command write: one
	 * callback, the error */
	memset(&d, 0, sizeof(d));
	nvme_model_fail_next(e.m, NVME_MODEL_Q_IO, NVME_CMD_WRITE, 0x004 | NVME_MODEL_DNR, 1);
	assert_int_equal(nvr_write(qp, 1, buf, 0, 2048, on_done, &d), 0);
	assert_int_equal(wait_for(qp, &d, 1), 0);
	for (int i = 0; i < 50; i++)
		nvr_qpair_poll(qp, 0);
	assert_int_equal(d.n, 1);
	assert_int_equal(d.res, -EIO);
	assert_int_equal(d.status, 0x004);
	assert_int_equal(qp->q.nfree_tr, 7);
	assert_int_equal(nvr_qpair_get_stats(qp, &qs), 0);
	assert_int_equal(qs.retries, 1 + 5);

	/* the queue still works */
	memset(&d, 0, sizeof(d));
	assert_int_equal(nvr_read(qp, 1, buf, 0, 8, on_done, &d), 0);
	assert_int_equal(wait_for(qp, &d, 1), 0);
	assert_int_equal(d.res, 0);
	nvr_dma_free(e.c, buf);
	check_clean(&e);
	nvr_qpair_free(qp);
	detach(&e);
}

/* Commands the device never completes are cancelled by nvr_qpair_free(). */
static void test_cancel_on_free(void **state)
{
	struct env e;
	struct nvr_qpair *qp;
	uint8_t *buf;
	struct done d = { 0 };

	attach(&e, NULL, NULL);
	assert_int_equal(nvr_qpair_alloc(e.c, 8, &qp), 0);
	assert_int_equal(nvr_dma_alloc(e.c, 8192, (void **)&buf), 0);
	nvme_model_drop_next(e.m, NVME_MODEL_Q_IO, 2);
	assert_int_equal(nvr_read(qp, 1, buf, 0, 1, on_done, &d), 0);
	assert_int_equal(nvr_read(qp, 1, buf + 4096, 1, 1, on_done, &d), 0);
	uint64_t deadline = now_ms() + 10000;
	while (nvme_model_get_stats(e.m).dropped < 2 && now_ms() < deadline)
		nvr_qpair_poll(qp, 0);
	assert_int_equal(nvme_model_get_stats(e.m).dropped, 2);
	assert_int_equal(d.n, 0);
	assert_int_equal(nvr_qpair_free(qp), 0);
	assert_int_equal(d.n, 2);
	assert_int_equal(d.res, -ECANCELED);
	nvr_dma_free(e.c, buf);
	detach(&e);
}

/* CSTS.CFS: the controller is reset; the command the device had lost is
 * sent again after it and completes, and the queue pair goes on. */
static void test_fatal_status(void **state)
{
	struct env e;
	struct nvr_qpair *qp;
	uint8_t *buf;
	struct done d = { 0 };

	attach(&e, NULL, NULL);
	assert_int_equal(nvr_qpair_alloc(e.c, 8, &qp), 0);
	assert_int_equal(nvr_dma_alloc(e.c, 8192, (void **)&buf), 0);
	nvme_model_drop_next(e.m, NVME_MODEL_Q_IO, 1);
	assert_int_equal(nvr_read(qp, 1, buf, 0, 1, on_done, &d), 0);
	nvr_qpair_kick(qp);
	uint64_t deadline = now_ms() + 10000;
	while (nvme_model_get_stats(e.m).dropped < 1 && now_ms() < deadline)
		;
	nvme_model_set_cfs(e.m);
	while (d.n == 0 && now_ms() < deadline)
		assert_true(nvr_qpair_poll(qp, 0) >= 0);
	assert_int_equal(d.n, 1);
	assert_int_equal(d.res, 0);
	assert_int_equal(nvr_ctrlr_resets(e.c), 1);
	struct nvr_qpair_stats qs;
	assert_int_equal(nvr_qpair_get_stats(qp, &qs), 0);
	assert_int_equal(qs.resets, 1);
	assert_int_equal(qs.retries, 1);
	memset(&d, 0, sizeof(d));
	assert_int_equal(nvr_read(qp, 1, buf, 0, 1, on_done, &d), 0);
	assert_int_equal(wait_for(qp, &d, 1), 0);
	assert_int_equal(d.res, 0);
	assert_int_equal(nvr_qpair_free(qp), 0);
	nvr_dma_free(e.c, buf);
	assert_int_equal(nvr_ctrlr_detach(e.c), 0);
	assert_int_equal(nvme_model_get_stats(e.m).bad_dbs, 0);
	nvme_model_destroy(e.m);
}

/* A device can lie: completions whose CID is out of range or not in
 * flight are counted and ignored. The model never lies, so the lies are
 * written into the CQ by hand while the queue is idle, and the queue's
 * view is put back afterwards (the model ignores our head doorbell past its
 * tail, counting it as a bad doorbell: expected here). */
static void test_bad_cid(void **state)
{
	struct env e;
	struct nvr_qpair *qp;
	uint8_t *buf;
	struct done d = { 0 };

	attach(&e, NULL, NULL);
	assert_int_equal(nvr_qpair_alloc(e.c, 8, &qp), 0);
	assert_int_equal(nvr_dma_alloc(e.c, 4096, (void **)&buf), 0);
	assert_int_equal(nvr_read(qp, 1, buf, 0, 8, on_done, &d), 0);
	assert_int_equal(wait_for(qp, &d, 1), 0);

	const uint16_t lies[2] = { 999, 3 };   /* out of range; in range but idle */
	for (int i = 0; i < 2; i++) {
		uint16_t head = qp->q.cq_head;
		uint8_t phase = qp->q.phase;
		volatile struct nvme_cqe *cqe = &qp->q.cq[head];

		cqe->cid = lies[i];
		cqe->sqhd = qp->q.sq_tail;
		cqe->dw0 = 0;
		__atomic_store_n(&cqe->status, (uint16_t)phase, __ATOMIC_RELEASE);
		assert_int_equal(nvr_qpair_poll(qp, 0), 0);   /* nothing reaped */
		assert_int_equal(qp->q.bad_cids, (uint64_t)i + 1);
		assert_int_equal(d.n, 1);
		/* undo: the slot goes back to "old phase", the head back */
		__atomic_store_n(&cqe->status, (uint16_t)!phase, __ATOMIC_RELEASE);
		qp->q.cq_head = head;
		qp->q.cq_db_head = head;
		qp->q.phase = phase;
		e.cq_rewound = true;   /* the model sees the head doorbell go back */
	}
	/* the queue still works, and nothing was lost */
	assert_int_equal(nvr_read(qp, 1, buf, 0, 8, on_done, &d), 0);
	assert_int_equal(wait_for(qp, &d, 2), 0);
	assert_int_equal(d.res, 0);
	assert_int_equal(qp->q.nfree_tr, 7);
	nvr_dma_free(e.c, buf);
	nvr_qpair_free(qp);
	detach(&e);
}

/* ---- two threads, two queue pairs ------------------------------------------ */

struct worker {
	struct nvr_ctrlr *c;
	struct nvme_model *m;
	pthread_barrier_t *bar;
	uint8_t *ns;
	uint64_t base;
	int errors;
	uint64_t bad_dbs;   /* model's count once both threads are done */
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct nvr_qpair *qp;
	uint8_t *buf;
	unsigned seed = (unsigned)w->base + 1;
	struct done d = { 0 };

	if (nvr_qpair_alloc(w->c, 16, &qp) || nvr_dma_alloc(w->c, 64 * 1024, (void **)&buf))
		abort();   /* the barrier below needs both threads */
	for (int it = 0; it < 200; it++) {
		uint32_t nlb = 1 + (uint32_t)rand_r(&seed) % 128;
		uint64_t lba = w->base + (uint64_t)rand_r(&seed) % (1024 - nlb);
		fill_random(buf, nlb * 512, &seed);
		int target = d.n + 1;
		if (nvr_write(qp, 1, buf, lba, nlb, on_done, &d)) {
			w->errors++;
			break;
		}
		while (d.n < target)
			if (nvr_qpair_poll(qp, 0) < 0)
				break;
		if (d.res || memcmp(w->ns + lba * 512, buf, nlb * 512))
			w->errors++;
	}
	pthread_barrier_wait(w->bar);
	w->bad_dbs = nvme_model_get_stats(w->m).bad_dbs + nvme_model_get_stats(w->m).prp_errors;
	pthread_barrier_wait(w->bar);
	nvr_dma_free(w->c, buf);
	nvr_qpair_free(qp);
	return NULL;
}

static void test_two_threads(void **state)
{
	struct nvme_model_cfg cfg = { .ns_blocks = 2048, .lba_shift = 9 };
	struct env e;
	pthread_t th[2];
	struct worker w[2];

	pthread_barrier_t bar;

	pthread_barrier_init(&bar, NULL, 2);
	attach(&e, &cfg, NULL);
	for (int i = 0; i < 2; i++) {
		w[i] = (struct worker){ e.c, e.m, &bar, nvme_model_ns_data(e.m, 1),
					(uint64_t)i * 1024, 0, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&bar);
	assert_int_equal(w[0].errors, 0);
	assert_int_equal(w[1].errors, 0);
	assert_int_equal(w[0].bad_dbs, 0);
	assert_int_equal(w[1].bad_dbs, 0);
	detach(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bringup),
		cmocka_unit_test(test_bringup_cfs),
		cmocka_unit_test(test_rw_random),
		cmocka_unit_test(test_mdts_split),
		cmocka_unit_test(test_flush_zeroes_deallocate),
		cmocka_unit_test(test_small_queue_wrap),
		cmocka_unit_test(test_eagain_and_continuation),
		cmocka_unit_test(test_readv_writev_and_nvr_io),
		cmocka_unit_test(test_argument_errors),
		cmocka_unit_test(test_device_errors),
		cmocka_unit_test(test_cancel_on_free),
		cmocka_unit_test(test_fatal_status),
		cmocka_unit_test(test_bad_cid),
		cmocka_unit_test(test_two_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
