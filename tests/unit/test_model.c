/* SPDX-License-Identifier: MIT */
/*
 * Tests of the software NVMe controller model (tests/model/) on its own,
 * without the driver: a minimal host (tests/model/model_host.h) maps BAR0,
 * enables the controller, runs admin and I/O commands through real queues
 * in DMA memory (pci/dma.c on the model's IOMMU) and checks what comes back.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "tests/model/model_host.h"

static const struct nvme_model_cfg two_ns = {
	.nns = 2, .ns_blocks = 4096, .vwc = true, .max_ioq = 4, .sn = "SN-TEST-42",
};

static int setup(void **state)
{
	struct host *h = host_new(&two_ns);

	enable(h);
	*state = h;
	return 0;
}

static int setup_io(void **state)
{
	struct host *h;

	setup(state);
	h = *state;
	io_queues(h, 64, 64);
	return 0;
}

static int teardown(void **state)
{
	host_free(*state);
	return 0;
}

/* ---- registers and bring-up ---- */

static void test_registers(void **state)
{
	struct host *h = host_new(NULL);
	uint64_t cap = (uint64_t)r32(h, NVME_REG_CAP) | (uint64_t)r32(h, NVME_REG_CAP + 4) << 32;
	struct nvme_model_stats st;

	assert_int_equal(NVME_CAP_MQES(cap), 255);
	assert_int_equal(NVME_CAP_CQR(cap), 1);
	assert_int_equal(NVME_CAP_DSTRD(cap), 0);
	assert_true(NVME_CAP_TO(cap) >= 1);
	assert_int_equal(NVME_CAP_CSS(cap) & NVME_CAP_CSS_NVM, NVME_CAP_CSS_NVM);
	assert_int_equal(NVME_CAP_MPSMIN(cap), 0);
	assert_int_equal(NVME_CAP_MPSMAX(cap), 0);
	assert_int_equal(r32(h, NVME_REG_VS), 0x00010400);
	assert_int_equal(r32(h, NVME_REG_CSTS), 0);
	enable(h);
	/* Shutdown (§3.6.1): SHST reaches "complete". */
	w32(h, NVME_REG_CC, r32(h, NVME_REG_CC) | NVME_CC_SHN_NORMAL);
	assert_true(wait_csts(h, NVME_CSTS_SHST_MASK, NVME_CSTS_SHST_DONE));
	disable(h);
	assert_int_equal(r32(h, NVME_REG_CSTS), 0);
	st = nvme_model_get_stats(h->m);
	assert_int_equal(st.enables, 1);
	assert_int_equal(st.disables, 1);
	assert_int_equal(st.shutdowns, 1);
	assert_int_equal(st.bad_dbs, 0);
	host_free(h);
}

static void test_enable_invalid(void **state)
{
	struct host *h = host_new(NULL);

	/* No admin queue addresses: the controller fails instead of readying. */
	w32(h, NVME_REG_AQA, (31u << 16) | 31u);
	w32(h, NVME_REG_CC, NVME_CC_EN);
	assert_true(wait_csts(h, NVME_CSTS_CFS, NVME_CSTS_CFS));
	assert_int_equal(r32(h, NVME_REG_CSTS) & NVME_CSTS_RDY, 0);
	disable(h);
	assert_int_equal(r32(h, NVME_REG_CSTS), 0);
	/* A VA instead of an IOVA for the admin SQ: not mapped, CFS again. */
	w64(h, NVME_REG_ASQ, (uintptr_t)h->aq.sq);
	w64(h, NVME_REG_ACQ, h->aq.cq_iova);
	w32(h, NVME_REG_CC, NVME_CC_EN);
	assert_true(wait_csts(h, NVME_CSTS_CFS, NVME_CSTS_CFS));
	assert_true(nvme_model_get_stats(h->m).prp_errors >= 1);
	disable(h);
	enable(h);   /* and a correct setup still works */
	host_free(h);
}

static void test_identify(void **state)
{
	struct host *h = *state;
	uint64_t iova;
	uint8_t *buf = dma(h, 4096, &iova);
	const struct nvme_id_ctrl *ic = (const void *)buf;
	const struct nvme_id_ns *ns = (const void *)buf;
	const uint32_t *list = (const void *)buf;

	assert_int_equal(identify(h, NVME_CNS_CTRLR, 0, iova), 0);
	assert_int_equal(ic->vid, 0x1b36);
	assert_memory_equal(ic->sn, "SN-TEST-42          ", 20);
	assert_int_equal(ic->mdts, 5);
	assert_int_equal(ic->nn, 2);
	assert_int_equal(ic->oncs & (NVME_ONCS_DSM | NVME_ONCS_WRITE_ZEROES),
			 NVME_ONCS_DSM | NVME_ONCS_WRITE_ZEROES);
	assert_int_equal(ic->vwc & NVME_VWC_PRESENT, NVME_VWC_PRESENT);
	assert_int_equal(ic->sqes, 0x66);
	assert_int_equal(ic->cqes, 0x44);

	assert_int_equal(identify(h, NVME_CNS_NS, 2, iova), 0);
	assert_int_equal(ns->nsze, 4096);
	assert_int_equal(ns->lbaf[ns->flbas & 0xf].lbads, 9);
	assert_int_equal(identify(h, NVME_CNS_NS, 3, iova), ST(0, NVME_SC_INVALID_NS));

	memset(buf, 0xff, 4096);
	assert_int_equal(identify(h, NVME_CNS_ACTIVE_NSL, 0, iova), 0);
	assert_int_equal(list[0], 1);
	assert_int_equal(list[1], 2);
	assert_int_equal(list[2], 0);
	assert_int_equal(identify(h, NVME_CNS_ACTIVE_NSL, 1, iova), 0);
	assert_int_equal(list[0], 2);
	assert_int_equal(list[1], 0);
	assert_int_equal(identify(h, 0x55, 0, iova), ST(0, NVME_SC_INVALID_FIELD));
	/* Identify into the VA: the model must not see it. */
	assert_int_equal(identify(h, NVME_CNS_CTRLR, 0, (uintptr_t)buf),
			 ST(0, NVME_SC_DATA_XFER_ERROR));
	assert_int_equal(nvme_model_get_stats(h->m).admin_cmds, 7);
}

static void test_features(void **state)
{
	struct host *h = *state;
	struct nvme_sqe s = { .opc = NVME_ADM_SET_FEATURES, .cdw10 = NVME_FEAT_NUM_QUEUES,
			      .cdw11 = 99u << 16 | 99u };

	assert_int_equal(admin(h, &s), 0);
	assert_int_equal(h->last.dw0, 3u << 16 | 3u);   /* max_ioq = 4 */
	s.cdw11 = 1u << 16 | 0;
	assert_int_equal(admin(h, &s), 0);
	assert_int_equal(h->last.dw0, 1u << 16 | 0);
	s.opc = NVME_ADM_GET_FEATURES;
	assert_int_equal(admin(h, &s), 0);
	assert_int_equal(h->last.dw0, 1u << 16 | 0);

	s = (struct nvme_sqe){ .opc = NVME_ADM_SET_FEATURES, .cdw10 = NVME_FEAT_VOLATILE_WC,
			       .cdw11 = 1 };
	assert_int_equal(admin(h, &s), 0);
	s.opc = NVME_ADM_GET_FEATURES;
	assert_int_equal(admin(h, &s), 0);
	assert_int_equal(h->last.dw0, 1);
	s.cdw10 = 0x42;
	assert_int_equal(admin(h, &s), ST(0, NVME_SC_INVALID_FIELD));

	/* One SQ and two CQs granted now. */
	uint64_t sqi, cqi;

	dma(h, 4096, &sqi);
	dma(h, 4096, &cqi);
	assert_int_equal(create_cq(h, 2, 16, cqi), 0);
	assert_int_equal(create_cq(h, 3, 16, cqi), ST(1, NVME_SC_QID_INVALID));
	assert_int_equal(create_sq(h, 2, 16, 2, sqi), ST(1, NVME_SC_QID_INVALID));
	assert_int_equal(create_sq(h, 1, 16, 2, sqi), 0);
	/* Number of Queues is fixed once I/O queues exist. */
	s = (struct nvme_sqe){ .opc = NVME_ADM_SET_FEATURES, .cdw10 = NVME_FEAT_NUM_QUEUES };
	assert_int_equal(admin(h, &s), ST(0, NVME_SC_CMD_SEQ_ERROR));
	s.opc = 0x7f;
	assert_int_equal(admin(h, &s), ST(0, NVME_SC_INVALID_OPCODE));
	s = (struct nvme_sqe){ .opc = NVME_ADM_ABORT, .cdw10 = 1 };
	assert_int_equal(admin(h, &s), 0);
	assert_int_equal(h->last.dw0 & 1, 1);
}

static void test_queue_errors(void **state)
{
	struct host *h = *state;
	uint64_t sqi, cqi;
	struct nvme_model_stats st;

	dma(h, 64 * 64, &sqi);
	dma(h, 64 * 16, &cqi);
	assert_int_equal(create_cq(h, 0, 16, cqi), ST(1, NVME_SC_QID_INVALID));
	assert_int_equal(create_cq(h, 5, 16, cqi), ST(1, NVME_SC_QID_INVALID));
	assert_int_equal(create_cq(h, 1, 257, cqi), ST(1, NVME_SC_QUEUE_SIZE));
	assert_int_equal(create_cq(h, 1, 1, cqi), ST(1, NVME_SC_QUEUE_SIZE));
	assert_int_equal(create_cq(h, 1, 16, cqi + 64), ST(0, NVME_SC_INVALID_PRP_OFFSET));
	assert_int_equal(create_cq(h, 1, 16, 0xdead0000), ST(0, NVME_SC_DATA_XFER_ERROR));
	assert_int_equal(create_sq(h, 1, 16, 1, sqi), ST(1, NVME_SC_CQ_INVALID));
	assert_int_equal(create_cq(h, 1, 16, cqi), 0);
	assert_int_equal(create_cq(h, 1, 16, cqi), ST(1, NVME_SC_QID_INVALID));
	assert_int_equal(create_sq(h, 1, 16, 2, sqi), ST(1, NVME_SC_CQ_INVALID));
	assert_int_equal(create_sq(h, 1, 16, 1, sqi), 0);
	st = nvme_model_get_stats(h->m);
	assert_int_equal(st.io_sqs, 1);
	assert_int_equal(st.io_cqs, 1);
	assert_int_equal(delete_q(h, NVME_ADM_DELETE_CQ, 1),
			 ST(1, NVME_MODEL_SC_INVALID_QUEUE_DELETION));
	assert_int_equal(delete_q(h, NVME_ADM_DELETE_SQ, 2), ST(1, NVME_SC_QID_INVALID));
	assert_int_equal(delete_q(h, NVME_ADM_DELETE_SQ, 0), ST(1, NVME_SC_QID_INVALID));
	assert_int_equal(delete_q(h, NVME_ADM_DELETE_SQ, 1), 0);
	assert_int_equal(delete_q(h, NVME_ADM_DELETE_CQ, 1), 0);
	assert_int_equal(delete_q(h, NVME_ADM_DELETE_CQ, 1), ST(1, NVME_SC_QID_INVALID));
	st = nvme_model_get_stats(h->m);
	assert_int_equal(st.io_sqs, 0);
	assert_int_equal(st.io_cqs, 0);
	assert_int_equal(st.bad_dbs, 0);
}

/* ---- I/O ---- */

static void fill(uint8_t *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 7 + seed + (i >> 9));
}

static void test_rw_prps(void **state)
{
	struct host *h = *state;
	uint64_t wi, ri, li;
	uint8_t *w = dma(h, 128 * 1024, &wi), *r = dma(h, 128 * 1024, &ri);
	uint64_t *list = dma(h, 4096, &li);
	uint8_t *ns1 = nvme_model_ns_data(h->m, 1), *ns2 = nvme_model_ns_data(h->m, 2);
	struct nvme_model_stats st;

	fill(w, 128 * 1024, 3);
	/* One block, PRP1 only, with a dword aligned offset. */
	assert_int_equal(rw(h, NVME_CMD_WRITE, 1, 10, 1, wi + 100, 0), 0);
	assert_memory_equal(ns1 + 10 * 512, w + 100, 512);
	assert_int_equal(rw(h, NVME_CMD_READ, 1, 10, 1, ri + 8, 0), 0);
	assert_memory_equal(r + 8, w + 100, 512);

	/* 8 KiB from an offset into page 0: PRP1 + PRP list of 2 entries. */
	list[0] = wi + 4096;
	list[1] = wi + 8192;
	assert_int_equal(rw(h, NVME_CMD_WRITE, 2, 100, 16, wi + 512, li), 0);
	assert_memory_equal(ns2 + 100 * 512, w + 512, 8192);
	/* 8 KiB page aligned: PRP2 is the second data page. */
	assert_int_equal(rw(h, NVME_CMD_READ, 2, 100, 16, ri, ri + 4096), 0);
	assert_memory_equal(r, w + 512, 8192);

	/* MDTS (128 KiB) in one command through a PRP list of 31 entries. */
	for (int i = 0; i < 31; i++)
		list[i] = wi + 4096u * (i + 1);
	assert_int_equal(rw(h, NVME_CMD_WRITE, 1, 1000, 256, wi, li), 0);
	assert_memory_equal(ns1 + 1000 * 512, w, 128 * 1024);
	for (int i = 0; i < 31; i++)
		list[i] = ri + 4096u * (i + 1);
	memset(r, 0, 128 * 1024);
	assert_int_equal(rw(h, NVME_CMD_READ, 1, 1000, 256, ri, li), 0);
	assert_memory_equal(r, w, 128 * 1024);

	/* A list chained across list pages: the list starts 16 bytes before
	 * its page's end, so its second slot points to the next list page. */
	uint64_t l2i;
	uint64_t *l2 = dma(h, 8192, &l2i);

	l2[510] = wi + 4096;
	l2[511] = l2i + 4096;
	l2[512] = wi + 8192;
	l2[513] = wi + 12288;
	l2[514] = wi + 16384;
	assert_int_equal(rw(h, NVME_CMD_WRITE, 1, 2000, 32, wi + 2048, l2i + 510 * 8), 0);
	assert_memory_equal(ns1 + 2000 * 512, w + 2048, 16384);

	st = nvme_model_get_stats(h->m);
	assert_int_equal(st.bytes_written, 512 + 8192 + 131072 + 16384);
	assert_int_equal(st.bytes_read, 512 + 8192 + 131072);
	assert_int_equal(st.io_cmds, 7);
	assert_int_equal(st.errors, 0);
	assert_int_equal(st.prp_errors, 0);
}

static void test_io_errors(void **state)
{
	struct host *h = *state;
	uint64_t bi, li;
	uint8_t *b = dma(h, 16384, &bi);
	uint64_t *list = dma(h, 4096, &li);
	uint8_t *ns1 = nvme_model_ns_data(h->m, 1);
	struct nvme_model_stats st;

	assert_int_equal(rw(h, NVME_CMD_READ, 1, 4096, 1, bi, 0), ST(0, NVME_SC_LBA_RANGE));
	assert_int_equal(NVME_CQE_DNR(h->last.status), 1);
	assert_int_equal(rw(h, NVME_CMD_READ, 1, 4095, 2, bi, 0), ST(0, NVME_SC_LBA_RANGE));
	assert_int_equal(rw(h, NVME_CMD_READ, 1, ~0ull, 1, bi, 0), ST(0, NVME_SC_LBA_RANGE));
	assert_int_equal(rw(h, 0x7e, 1, 0, 1, bi, 0), ST(0, NVME_SC_INVALID_OPCODE));
	assert_int_equal(rw(h, NVME_CMD_READ, 3, 0, 1, bi, 0), ST(0, NVME_SC_INVALID_NS));
	assert_int_equal(rw(h, NVME_CMD_READ, 0, 0, 1, bi, 0), ST(0, NVME_SC_INVALID_NS));
	/* Over MDTS (128 KiB). */
	assert_int_equal(rw(h, NVME_CMD_READ, 1, 0, 257, bi, li), ST(0, NVME_SC_INVALID_FIELD));
	st = nvme_model_get_stats(h->m);
	assert_int_equal(st.prp_errors, 0);

	/* A VA where an IOVA belongs, and an IOVA in the guard hole. */
	assert_int_equal(rw(h, NVME_CMD_READ, 1, 0, 1, (uintptr_t)b, 0),
			 ST(0, NVME_SC_DATA_XFER_ERROR));
	assert_int_equal(rw(h, NVME_CMD_READ, 1, 0, 1, 0x1000, 0), ST(0, NVME_SC_DATA_XFER_ERROR));
	/* A transfer that runs past the end of its mapping into the hole. */
	uint8_t *one = aligned_alloc(4096, 4096);
	uint64_t oi;

	assert_int_equal(h->dev->ops->dma_map(h->dev, one, 4096, &oi), 0);
	assert_int_equal(rw(h, NVME_CMD_READ, 1, 0, 1, oi + 3584, 0), 0);
	assert_int_equal(rw(h, NVME_CMD_READ, 1, 0, 2, oi + 3584, oi + 4096),
			 ST(0, NVME_SC_DATA_XFER_ERROR));
	assert_int_equal(h->dev->ops->dma_unmap(h->dev, one, 4096, oi), 0);
	free(one);
	/* PRP rules (§4.1.1). */
	assert_int_equal(rw(h, NVME_CMD_READ, 1, 0, 1, bi + 2, 0),
			 ST(0, NVME_SC_INVALID_PRP_OFFSET));
	assert_int_equal(rw(h, NVME_CMD_READ, 1, 0, 16, bi, bi + 4096 + 512),
			 ST(0, NVME_SC_INVALID_PRP_OFFSET));
	list[0] = bi + 4096;
	list[1] = bi + 8192 + 8;
	assert_int_equal(rw(h, NVME_CMD_READ, 1, 0, 24, bi, li),
			 ST(0, NVME_SC_INVALID_PRP_OFFSET));
	assert_int_equal(rw(h, NVME_CMD_READ, 1, 0, 24, bi, li + 4),
			 ST(0, NVME_SC_INVALID_PRP_OFFSET));
	list[1] = (uintptr_t)b + 8192;   /* a VA in the list, page aligned */
	memset(ns1, 0x5a, 512);
	memset(b, 0, 16384);
	assert_int_equal(rw(h, NVME_CMD_READ, 1, 0, 24, bi, li),
			 ST(0, NVME_SC_DATA_XFER_ERROR));
	assert_int_equal(b[0], 0);   /* nothing moved before the walk failed */
	/* Writes with a bad PRP leave the namespace untouched. */
	assert_int_equal(rw(h, NVME_CMD_WRITE, 1, 0, 24, bi, li), ST(0, NVME_SC_DATA_XFER_ERROR));
	assert_int_equal(ns1[0], 0x5a);
	/* SGLs are not offered. */
	struct nvme_sqe s = { .opc = NVME_CMD_READ, .nsid = 1, .fuse_psdt = 0x40, .prp1 = bi };

	assert_int_equal(cmd(h, &h->ioq, &s), ST(0, NVME_SC_INVALID_FIELD));

	st = nvme_model_get_stats(h->m);
	assert_int_equal(st.prp_errors, 9);
	assert_int_equal(st.errors, 17);
	assert_int_equal(st.bytes_read, 512);   /* the one good read */
	assert_int_equal(st.bytes_written, 0);
	assert_int_equal(st.bad_dbs, 0);
}

static void test_zeroes_dsm_flush(void **state)
{
	struct host *h = *state;
	uint64_t bi;
	uint8_t *b = dma(h, 4096, &bi);
	struct nvme_dsm_range *r = (void *)b;
	uint8_t *ns1 = nvme_model_ns_data(h->m, 1);
	uint8_t zero[4096] = { 0 };
	struct nvme_sqe s;

	memset(ns1, 0xab, 4096 * 512);
	s = (struct nvme_sqe){ .opc = NVME_CMD_WRITE_ZEROES, .nsid = 1, .cdw10 = 8, .cdw12 = 7 };
	assert_int_equal(cmd(h, &h->ioq, &s), 0);
	assert_memory_equal(ns1 + 8 * 512, zero, 4096);
	assert_int_equal(ns1[8 * 512 - 1], 0xab);
	assert_int_equal(ns1[16 * 512], 0xab);
	/* NLB is 0's based: 0xffff means 65536 blocks, beyond this namespace. */
	s.cdw10 = 0;
	s.cdw12 = 0xffff;
	assert_int_equal(cmd(h, &h->ioq, &s), ST(0, NVME_SC_LBA_RANGE));

	r[0] = (struct nvme_dsm_range){ .nlb = 2, .slba = 100 };
	r[1] = (struct nvme_dsm_range){ .nlb = 1, .slba = 4095 };
	s = (struct nvme_sqe){ .opc = NVME_CMD_DSM, .nsid = 1, .prp1 = bi, .cdw10 = 1,
			       .cdw11 = NVME_DSM_ATTR_DEALLOCATE };
	assert_int_equal(cmd(h, &h->ioq, &s), 0);
	assert_memory_equal(ns1 + 100 * 512, zero, 1024);
	assert_memory_equal(ns1 + 4095 * 512, zero, 512);
	assert_int_equal(ns1[102 * 512], 0xab);
	/* Deallocated blocks read back as zeroes through the queue too. */
	memset(b, 0xcc, 4096);
	assert_int_equal(rw(h, NVME_CMD_READ, 1, 100, 3, bi, 0), 0);
	assert_memory_equal(b, zero, 1024);
	assert_int_equal(b[1024], 0xab);
	r[0] = (struct nvme_dsm_range){ .nlb = 2, .slba = 4095 };
	assert_int_equal(cmd(h, &h->ioq, &s), ST(0, NVME_SC_LBA_RANGE));

	s = (struct nvme_sqe){ .opc = NVME_CMD_FLUSH, .nsid = 2 };
	assert_int_equal(cmd(h, &h->ioq, &s), 0);
	s.nsid = 0xffffffff;
	assert_int_equal(cmd(h, &h->ioq, &s), 0);
	s.nsid = 9;
	assert_int_equal(cmd(h, &h->ioq, &s), ST(0, NVME_SC_INVALID_NS));
}

/* Many more commands than entries: the phase tag flips at each wrap. */
static void test_phase_wrap(void **state)
{
	struct host *h = *state;
	struct hq *q = &h->ioq;
	struct nvme_model_stats st;
	unsigned flips = 0;

	assert_int_equal(delete_q(h, NVME_ADM_DELETE_SQ, 1), 0);
	assert_int_equal(delete_q(h, NVME_ADM_DELETE_CQ, 1), 0);
	io_queues(h, 4, 3);
	for (unsigned i = 0; i < 20; i++) {
		struct nvme_sqe s = { .opc = NVME_CMD_FLUSH, .nsid = 1 };
		uint8_t phase = q->phase;

		assert_int_equal(cmd(h, q, &s), 0);
		assert_int_equal(NVME_CQE_PHASE(h->last.status), phase);
		flips += q->phase != phase;
	}
	assert_int_equal(flips, 6);   /* 20 completions on a 3-entry CQ */
	assert_int_equal(q->phase, 1);
	/* Entries not yet consumed still carry the old phase. */
	assert_int_equal(NVME_CQE_PHASE(cqe_status(&q->cq[q->cq_head])), 0);
	st = nvme_model_get_stats(h->m);
	assert_int_equal(st.bad_dbs, 0);
	assert_int_equal(st.errors, 0);
}

/* A CQ of 2 entries holds one completion: the model must wait for the head
 * doorbell rather than overrun it. */
static void test_cq_full(void **state)
{
	struct host *h = *state;
	struct hq *q = &h->ioq;
	uint16_t i;

	assert_int_equal(delete_q(h, NVME_ADM_DELETE_SQ, 1), 0);
	assert_int_equal(delete_q(h, NVME_ADM_DELETE_CQ, 1), 0);
	io_queues(h, 8, 2);
	for (i = 0; i < 5; i++) {
		struct nvme_sqe s = { .opc = NVME_CMD_FLUSH, .nsid = 1 };

		submit(h, q, &s);
	}
	nap_us(20000);
	/* One entry posted, the next slot still empty (old phase). */
	assert_int_equal(NVME_CQE_PHASE(cqe_status(&q->cq[0])), 1);
	assert_int_equal(NVME_CQE_PHASE(cqe_status(&q->cq[1])), 0);
	assert_true(nvme_model_get_stats(h->m).cq_full_waits > 0);
	for (i = 0; i < 5; i++) {
		assert_int_equal(reap(h, q, WAIT_MS), 0);
		assert_int_equal(h->last.cid, i);
		assert_int_equal(NVME_STATUS(h->last.status), 0);
	}
	assert_int_equal(reap(h, q, 20), -ETIMEDOUT);
	assert_int_equal(nvme_model_get_stats(h->m).bad_dbs, 0);
}

static void wait_bad_dbs(struct host *h, uint64_t want)
{
	uint64_t end = now_ms() + WAIT_MS;

	while (nvme_model_get_stats(h->m).bad_dbs < want && now_ms() < end)
		nap_us(200);
	assert_int_equal(nvme_model_get_stats(h->m).bad_dbs, want);
}

static void test_bad_doorbells(void **state)
{
	struct host *h = *state;
	struct nvme_sqe s = { .opc = NVME_CMD_FLUSH, .nsid = 1 };

	w32(h, nvme_sq_tail_db(1, 0), 64);            /* SQ tail == size */
	wait_bad_dbs(h, 1);
	w32(h, nvme_cq_head_db(1, 0), 5);             /* head past what was posted */
	wait_bad_dbs(h, 2);
	w32(h, nvme_sq_tail_db(3, 0), 1);             /* no such queue */
	wait_bad_dbs(h, 3);
	w32(h, nvme_cq_head_db(200, 0), 1);           /* far beyond max_ioq */
	wait_bad_dbs(h, 4);
	/* The queue still works after the bogus doorbells were ignored. */
	w32(h, nvme_cq_head_db(1, 0), 0);
	assert_int_equal(cmd(h, &h->ioq, &s), 0);
	assert_int_equal(nvme_model_get_stats(h->m).bad_dbs, 4);
}

/* ---- fault hooks ---- */

static void test_fail_next(void **state)
{
	struct host *h = *state;
	uint64_t bi;
	uint8_t *ns1 = nvme_model_ns_data(h->m, 1);
	uint8_t *b = dma(h, 4096, &bi);

	memset(ns1, 0x11, 512);
	nvme_model_fail_next(h->m, NVME_MODEL_Q_IO, NVME_CMD_READ,
			     ST(NVME_SCT_MEDIA, NVME_SC_READ_ERROR) | NVME_MODEL_DNR, 2);
	/* Other opcodes and the admin queue pass. */
	assert_int_equal(rw(h, NVME_CMD_WRITE, 1, 1, 1, bi, 0), 0);
	assert_int_equal(identify(h, NVME_CNS_CTRLR, 0, bi), 0);
	for (int i = 0; i < 2; i++) {
		b[0] = 0;
		assert_int_equal(rw(h, NVME_CMD_READ, 1, 0, 1, bi, 0),
				 ST(NVME_SCT_MEDIA, NVME_SC_READ_ERROR));
		assert_int_equal(NVME_CQE_DNR(h->last.status), 1);
		assert_int_equal(b[0], 0);   /* not executed */
	}
	assert_int_equal(rw(h, NVME_CMD_READ, 1, 0, 1, bi, 0), 0);
	assert_int_equal(b[0], 0x11);

	nvme_model_fail_next(h->m, NVME_MODEL_Q_ADMIN, NVME_ADM_IDENTIFY,
			     ST(0, NVME_SC_INTERNAL), 1);
	assert_int_equal(identify(h, NVME_CNS_CTRLR, 0, bi), ST(0, NVME_SC_INTERNAL));
	assert_int_equal(NVME_CQE_DNR(h->last.status), 0);
	assert_int_equal(identify(h, NVME_CNS_CTRLR, 0, bi), 0);
	assert_int_equal(nvme_model_get_stats(h->m).injected, 3);
}

static void test_drop_delay(void **state)
{
	struct host *h = *state;
	struct hq *q = &h->ioq;
	struct nvme_sqe s = { .opc = NVME_CMD_FLUSH, .nsid = 1 };
	uint64_t t0;

	nvme_model_drop_next(h->m, NVME_MODEL_Q_IO, 1);
	submit(h, q, &s);
	assert_int_equal(reap(h, q, 50), -ETIMEDOUT);
	assert_int_equal(nvme_model_get_stats(h->m).dropped, 1);
	/* The next command completes; SQHD covers the lost one too. */
	submit(h, q, &s);
	assert_int_equal(reap(h, q, WAIT_MS), 0);
	assert_int_equal(h->last.cid, 1);
	assert_int_equal(h->last.sqhd, 2);
	/* Admin completions were not dropped. */
	nvme_model_drop_next(h->m, NVME_MODEL_Q_IO, 1);
	s.opc = NVME_ADM_ABORT;
	assert_int_equal(admin(h, &s), 0);
	nvme_model_drop_next(h->m, NVME_MODEL_Q_IO, 0);

	nvme_model_delay_cpl(h->m, 30000);
	s.opc = NVME_CMD_FLUSH;
	t0 = now_ms();
	submit(h, q, &s);
	assert_int_equal(reap(h, q, 10), -ETIMEDOUT);
	assert_int_equal(reap(h, q, WAIT_MS), 0);
	assert_true(now_ms() - t0 >= 29);
	nvme_model_delay_cpl(h->m, 0);
	t0 = now_ms();
	assert_int_equal(cmd(h, q, &s), 0);
	assert_true(now_ms() - t0 < 25);
}

static void test_cfs_and_reset(void **state)
{
	struct host *h = *state;
	struct hq *q = &h->ioq;
	struct nvme_sqe s = { .opc = NVME_CMD_FLUSH, .nsid = 1 };
	struct nvme_model_stats st;

	nvme_model_set_cfs(h->m);
	assert_true(wait_csts(h, NVME_CSTS_CFS, NVME_CSTS_CFS));
	submit(h, q, &s);
	assert_int_equal(reap(h, q, 20), -ETIMEDOUT);   /* a failed controller is silent */
	disable(h);
	assert_int_equal(r32(h, NVME_REG_CSTS), 0);
	enable(h);
	assert_int_equal(nvme_model_get_stats(h->m).io_sqs, 0);   /* reset dropped them */
	io_queues(h, 16, 16);
	assert_int_equal(cmd(h, q, &s), 0);

	/* Function level reset: registers back to reset values. */
	assert_int_equal(h->dev->ops->reset(h->dev), 0);
	assert_int_equal(r32(h, NVME_REG_CC), 0);
	assert_int_equal(r32(h, NVME_REG_CSTS), 0);
	assert_int_equal(r32(h, NVME_REG_VS), 0x00010400);
	enable(h);
	st = nvme_model_get_stats(h->m);
	assert_int_equal(st.resets, 1);
	assert_int_equal(st.enables, 3);
	assert_int_equal(st.io_sqs, 0);
	assert_int_equal(st.bad_dbs, 0);
}

/* ---- the IOMMU ---- */

static void test_dma_table(void **state)
{
	struct host *h = host_new(NULL);
	static uint8_t page[3 * 4096] __attribute__((aligned(4096)));
	uint64_t a, b;
	struct nvme_model_stats st;
	uint32_t base;

	base = nvme_model_get_stats(h->m).dma_maps;
	assert_int_equal(h->dev->ops->dma_map(h->dev, page, 4096, &a), 0);
	assert_int_equal(h->dev->ops->dma_map(h->dev, page + 4096, 8192, &b), 0);
	assert_true(a >= 0x100000000ull);
	assert_true(a != (uintptr_t)page);
	assert_true(b >= a + 8192);   /* a guard page after each mapping */
	assert_int_equal(h->dev->ops->dma_map(h->dev, page + 1, 4096, &a) , -EINVAL);
	assert_int_equal(h->dev->ops->dma_unmap(h->dev, page, 8192, a), -ENOENT);
	st = nvme_model_get_stats(h->m);
	assert_int_equal(st.dma_maps, base + 2);
	assert_int_equal(st.bad_unmaps, 1);
	assert_int_equal(h->dev->ops->dma_unmap(h->dev, page, 4096, a), 0);
	assert_int_equal(h->dev->ops->map_bar(h->dev, 2, &(volatile void *){ 0 },
					      &(size_t){ 0 }), -EINVAL);
	/* Close leaves the mapping nobody undid visible. */
	h->dev->ops->close(h->dev);
	assert_int_equal(nvme_model_get_stats(h->m).dma_maps, 1);
	nvme_model_destroy(h->m);
	free(h);
}

static void test_defaults_and_cfg(void **state)
{
	struct nvme_model *m;
	struct nvr_pci_dev *dev;
	struct nvme_model_cfg bad = { .lba_shift = 10 };
	struct nvme_model_cfg big = { .lba_shift = 12, .ns_blocks = 100,
				      .mdts = NVME_MODEL_MDTS_NONE };

	assert_int_equal(nvme_model_create(&bad, &m, &dev), -EINVAL);
	assert_int_equal(nvme_model_create(&big, &m, &dev), 0);
	assert_non_null(nvme_model_ns_data(m, 1));
	assert_null(nvme_model_ns_data(m, 2));
	assert_null(nvme_model_ns_data(m, 0));
	assert_ptr_equal(nvme_model_dev(m), dev);
	nvme_model_destroy(m);   /* without close: destroy closes */
}

/* 4 KiB blocks and no MDTS: a 1 MiB transfer with a 255-entry list. */
static void test_lba4k_no_mdts(void **state)
{
	struct nvme_model_cfg c = { .lba_shift = 12, .ns_blocks = 512,
				    .mdts = NVME_MODEL_MDTS_NONE };
	struct host *h = host_new(&c);
	uint64_t bi, li, *list;
	uint8_t *b, *id;

	enable(h);
	id = dma(h, 4096, &li);
	assert_int_equal(identify(h, NVME_CNS_CTRLR, 0, li), 0);
	assert_int_equal(((struct nvme_id_ctrl *)id)->mdts, 0);
	assert_int_equal(identify(h, NVME_CNS_NS, 1, li), 0);
	assert_int_equal(((struct nvme_id_ns *)id)->lbaf[0].lbads, 12);
	list = (uint64_t *)id;
	io_queues(h, 16, 16);
	b = dma(h, 1 << 20, &bi);
	fill(b, 1 << 20, 9);
	for (int i = 0; i < 255; i++)
		list[i] = bi + 4096u * (i + 1);
	assert_int_equal(rw(h, NVME_CMD_WRITE, 1, 256, 256, bi, li), 0);
	assert_memory_equal(nvme_model_ns_data(h->m, 1) + 256 * 4096, b, 1 << 20);
	assert_int_equal(rw(h, NVME_CMD_WRITE, 1, 257, 256, bi, li), ST(0, NVME_SC_LBA_RANGE));
	host_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_registers),
		cmocka_unit_test(test_enable_invalid),
		cmocka_unit_test(test_defaults_and_cfg),
		cmocka_unit_test(test_dma_table),
		cmocka_unit_test_setup_teardown(test_identify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_features, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rw_prps, setup_io, teardown),
		cmocka_unit_test_setup_teardown(test_io_errors, setup_io, teardown),
		cmocka_unit_test_setup_teardown(test_zeroes_dsm_flush, setup_io, teardown),
		cmocka_unit_test_setup_teardown(test_phase_wrap, setup_io, teardown),
		cmocka_unit_test_setup_teardown(test_cq_full, setup_io, teardown),
		cmocka_unit_test_setup_teardown(test_bad_doorbells, setup_io, teardown),
		cmocka_unit_test_setup_teardown(test_fail_next, setup_io, teardown),
		cmocka_unit_test_setup_teardown(test_drop_delay, setup_io, teardown),
		cmocka_unit_test_setup_teardown(test_cfs_and_reset, setup_io, teardown),
		cmocka_unit_test(test_lba4k_no_mdts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
