/* SPDX-License-Identifier: MIT */
/*
 * A minimal NVMe host for tests of the model on its own (tests/unit/
 * test_model.c): registers, one admin queue and one I/O queue pair in DMA
 * memory, submit/reap with phase tracking. Static functions using cmocka's
 * asserts: include it after <cmocka.h>, from test files only.
 */
#ifndef NVRING_TESTS_MODEL_HOST_H
#define NVRING_TESTS_MODEL_HOST_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "driver/nvme_spec.h"
#include "pci/pci.h"
#include "tests/model/nvme_model.h"

#define ST(sct, sc) ((uint16_t)((sct) << 8 | (sc)))
#define WAIT_MS 2000

struct hq {
	struct nvme_sqe *sq;
	struct nvme_cqe *cq;
	uint64_t sq_iova, cq_iova;
	uint16_t qid, sq_size, cq_size, sq_tail, cq_head, cid;
	uint8_t phase;
};

struct host {
	struct nvme_model *m;
	struct nvr_pci_dev *dev;
	volatile uint8_t *bar;
	struct hq aq, ioq;
	struct nvme_cqe last;   /* last completion reaped */
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void nap_us(unsigned us)
{
	struct timespec ts = { 0, (long)us * 1000 };

	nanosleep(&ts, NULL);
}

static uint32_t r32(struct host *h, uint32_t off)
{
	return __atomic_load_n((const uint32_t *)(h->bar + off), __ATOMIC_ACQUIRE);
}

/* Register writes; doorbells are release stores so the SQ entry written
 * before is visible to the model's acquire load of the doorbell. */
static void w32(struct host *h, uint32_t off, uint32_t v)
{
	__atomic_store_n((uint32_t *)(h->bar + off), v, __ATOMIC_RELEASE);
}

static void w64(struct host *h, uint32_t off, uint64_t v)
{
	w32(h, off, (uint32_t)v);
	w32(h, off + 4, (uint32_t)(v >> 32));
}

static void *dma(struct host *h, size_t len, uint64_t *iova)
{
	void *va = NULL;

	assert_int_equal(nvr_pci_dma_alloc(h->dev, len, &va, iova), 0);
	return va;
}

static bool wait_csts(struct host *h, uint32_t mask, uint32_t want)
{
	uint64_t end = now_ms() + WAIT_MS;

	while ((r32(h, NVME_REG_CSTS) & mask) != want) {
		if (now_ms() > end)
			return false;
		nap_us(100);
	}
	return true;
}

static uint16_t cqe_status(const struct nvme_cqe *c)
{
	return __atomic_load_n(&c->status, __ATOMIC_ACQUIRE);
}

static void submit(struct host *h, struct hq *q, struct nvme_sqe *sqe)
{
	sqe->cid = q->cid++;
	memcpy(&q->sq[q->sq_tail], sqe, sizeof(*sqe));
	q->sq_tail = (q->sq_tail + 1) % q->sq_size;
	w32(h, nvme_sq_tail_db(q->qid, 0), q->sq_tail);
}

/* Reap one completion within @ms; 0 or -ETIMEDOUT. */
static int reap(struct host *h, struct hq *q, unsigned ms)
{
	uint64_t end = now_ms() + ms;
	struct nvme_cqe *c = &q->cq[q->cq_head];

	/* The acquire load of the phase orders the reads of the entry after it. */
	while (NVME_CQE_PHASE(cqe_status(c)) != q->phase) {
		if (now_ms() > end)
			return -ETIMEDOUT;
		nap_us(20);
	}
	h->last = *c;
	if (++q->cq_head == q->cq_size) {
		q->cq_head = 0;
		q->phase ^= 1;
	}
	w32(h, nvme_cq_head_db(q->qid, 0), q->cq_head);
	return 0;
}

/* Submit and wait; the NVMe status (SCT << 8 | SC), or 0xffff on timeout. */
static uint16_t cmd(struct host *h, struct hq *q, struct nvme_sqe *sqe)
{
	uint16_t cid = q->cid;

	submit(h, q, sqe);
	if (reap(h, q, WAIT_MS))
		return 0xffff;
	assert_int_equal(h->last.cid, cid);
	assert_int_equal(h->last.sqid, q->qid);
	assert_int_equal(h->last.sqhd, q->sq_tail);
	return (uint16_t)NVME_STATUS(h->last.status);
}

static uint16_t admin(struct host *h, struct nvme_sqe *sqe)
{
	return cmd(h, &h->aq, sqe);
}

static uint16_t identify(struct host *h, uint32_t cns, uint32_t nsid, uint64_t iova)
{
	struct nvme_sqe s = { .opc = NVME_ADM_IDENTIFY, .nsid = nsid, .prp1 = iova,
			      .prp2 = iova + 4096 - (iova & 4095), .cdw10 = cns };
	return admin(h, &s);
}

static uint16_t create_cq(struct host *h, uint16_t qid, uint16_t size, uint64_t iova)
{
	struct nvme_sqe s = { .opc = NVME_ADM_CREATE_CQ, .prp1 = iova,
			      .cdw10 = (uint32_t)(size - 1) << 16 | qid,
			      .cdw11 = NVME_QUEUE_PHYS_CONTIG };
	return admin(h, &s);
}

static uint16_t create_sq(struct host *h, uint16_t qid, uint16_t size, uint16_t cqid,
			  uint64_t iova)
{
	struct nvme_sqe s = { .opc = NVME_ADM_CREATE_SQ, .prp1 = iova,
			      .cdw10 = (uint32_t)(size - 1) << 16 | qid,
			      .cdw11 = (uint32_t)cqid << 16 | NVME_QUEUE_PHYS_CONTIG };
	return admin(h, &s);
}

static uint16_t delete_q(struct host *h, uint8_t opc, uint16_t qid)
{
	struct nvme_sqe s = { .opc = opc, .cdw10 = qid };
	return admin(h, &s);
}

/* Admin queue of 32 entries, CC for 4 KiB pages and 64/16-byte entries. */
static void enable(struct host *h)
{
	struct hq *q = &h->aq;

	memset(q->sq, 0, 32 * 64);
	memset(q->cq, 0, 32 * 16);
	q->qid = 0;
	q->sq_size = q->cq_size = 32;
	q->sq_tail = q->cq_head = 0;
	q->phase = 1;
	w32(h, NVME_REG_AQA, (31u << 16) | 31u);
	w64(h, NVME_REG_ASQ, q->sq_iova);
	w64(h, NVME_REG_ACQ, q->cq_iova);
	w32(h, NVME_REG_CC, NVME_CC_EN | NVME_CC_IOSQES(6) | NVME_CC_IOCQES(4));
	assert_true(wait_csts(h, NVME_CSTS_RDY, NVME_CSTS_RDY));
}

static void disable(struct host *h)
{
	/* This model clears CFS on reset, as it clears RDY. */
	w32(h, NVME_REG_CC, 0);
	assert_true(wait_csts(h, NVME_CSTS_RDY | NVME_CSTS_CFS, 0));
}

/* An I/O queue pair with qid 1, @size entries each. */
static void io_queues(struct host *h, uint16_t sq_size, uint16_t cq_size)
{
	struct hq *q = &h->ioq;

	q->sq = dma(h, (size_t)sq_size * 64, &q->sq_iova);
	q->cq = dma(h, (size_t)cq_size * 16, &q->cq_iova);
	q->qid = 1;
	q->sq_size = sq_size;
	q->cq_size = cq_size;
	q->sq_tail = q->cq_head = 0;
	q->phase = 1;
	assert_int_equal(create_cq(h, 1, cq_size, q->cq_iova), 0);
	assert_int_equal(create_sq(h, 1, sq_size, 1, q->sq_iova), 0);
}

static uint16_t rw(struct host *h, uint8_t opc, uint32_t nsid, uint64_t slba, uint32_t nlb,
		   uint64_t prp1, uint64_t prp2)
{
	struct nvme_sqe s = { .opc = opc, .nsid = nsid, .prp1 = prp1, .prp2 = prp2,
			      .cdw10 = (uint32_t)slba, .cdw11 = (uint32_t)(slba >> 32),
			      .cdw12 = nlb - 1 };
	return cmd(h, &h->ioq, &s);
}

static struct host *host_new(const struct nvme_model_cfg *cfg)
{
	struct host *h = calloc(1, sizeof(*h));
	volatile void *bar;
	size_t len;

	assert_non_null(h);
	assert_int_equal(nvme_model_create(cfg, &h->m, &h->dev), 0);
	assert_int_equal(h->dev->ops->map_bar(h->dev, 0, &bar, &len), 0);
	assert_int_equal(len, 0x4000);
	h->bar = bar;
	h->aq.sq = dma(h, 32 * 64, &h->aq.sq_iova);
	h->aq.cq = dma(h, 32 * 16, &h->aq.cq_iova);
	return h;
}

static void host_free(struct host *h)
{
	h->dev->ops->close(h->dev);
	assert_null(nvme_model_dev(h->m));
	nvme_model_destroy(h->m);
	free(h);
}

#endif
