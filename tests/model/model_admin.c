/* SPDX-License-Identifier: MIT */
/*
 * The model's admin command set (NVMe 2.0 §5): Identify, Set/Get Features,
 * Create/Delete I/O Completion and Submission Queues, Abort; Get Log Page
 * is in model_log.c. Runs on the
 * service thread only.
 */
#include <stdio.h>
#include <string.h>

#include "tests/model/model_priv.h"

#define NVME_MODEL_VID   0x1b36   /* the id QEMU's emulated controller uses */
#define NVME_MODEL_SSVID 0x1af4

/* Identify strings are space padded, not NUL terminated (§5.17.2.1). */
static void pad_copy(char *dst, size_t n, const char *src)
{
	size_t l = strlen(src);

	memset(dst, ' ', n);
	memcpy(dst, src, l < n ? l : n);
}

static void id_ctrl(const struct nvme_model *m, struct nvme_id_ctrl *id)
{
	id->vid = NVME_MODEL_VID;
	id->ssvid = NVME_MODEL_SSVID;
	pad_copy(id->sn, sizeof(id->sn), m->cfg.sn);
	pad_copy(id->mn, sizeof(id->mn), m->cfg.mn);
	pad_copy(id->fr, sizeof(id->fr), "NVRM1.0");
	id->mdts = m->cfg.mdts == NVME_MODEL_MDTS_NONE ? 0 : m->cfg.mdts;
	id->cntlid = 1;
	id->ver = 0x00010400;
	id->sqes = 6 << 4 | 6;   /* 64-byte SQEs, required and maximum */
	id->cqes = 4 << 4 | 4;   /* 16-byte CQEs */
	id->nn = m->cfg.nns;
	id->oncs = NVME_ONCS_DSM | NVME_ONCS_WRITE_ZEROES;
	id->vwc = m->cfg.vwc ? NVME_VWC_PRESENT : 0;
	id->elpe = NVME_MODEL_ELPE;
}

/* NVM Command Set 1.0 §4.1.5.1, Figure 97. */
static void id_ns(const struct nvme_model *m, struct nvme_id_ns *id)
{
	id->nsze = id->ncap = id->nuse = m->cfg.ns_blocks;
	id->nlbaf = 0;
	id->flbas = m->cfg.meta_ext ? 0x10 : 0;   /* bit 4: extended LBA */
	id->dlfeat = 0x9;   /* deallocated blocks read as zeroes; Write
			     * Zeroes with DEAC deallocates */
	id->lbaf[0].lbads = (uint8_t)m->cfg.lba_shift;
	id->lbaf[0].ms = m->cfg.ms;
}

static uint16_t identify(struct nvme_model *m, const struct nvme_sqe *sqe)
{
	uint8_t buf[4096] = { 0 };
	uint32_t cns = sqe->cdw10 & 0xff, nsid = sqe->nsid;

	switch (cns) {
	case NVME_CNS_CTRLR:
		id_ctrl(m, (struct nvme_id_ctrl *)buf);
		break;
	case NVME_CNS_NS:
		if (!nsid || nsid > m->cfg.nns)
			return NVME_MODEL_ST_GEN(NVME_SC_INVALID_NS);
		id_ns(m, (struct nvme_id_ns *)buf);
		break;
	case NVME_CNS_ACTIVE_NSL: {
		/* Active NSIDs greater than NSID, ascending (§5.17.2.2). */
		uint32_t *list = (uint32_t *)buf, n = 0;

		if (nsid >= 0xfffffffe)
			return NVME_MODEL_ST_GEN(NVME_SC_INVALID_NS);
		for (uint32_t id = nsid + 1; id <= m->cfg.nns && n < 1024; id++)
			list[n++] = id;
		break;
	}
	default:
		return NVME_MODEL_ST_GEN(NVME_SC_INVALID_FIELD);
	}
	return nvme_model_prp_xfer(m, sqe, buf, sizeof(buf), true);
}

static uint32_t nq_dw0(const struct nvme_model *m)
{
	return (uint32_t)(m->ncqa - 1) << 16 | (uint32_t)(m->nsqa - 1);
}

static bool any_io_queue(const struct nvme_model *m)
{
	return atomic_load_explicit(&m->st.io_sqs, memory_order_relaxed) ||
	       atomic_load_explicit(&m->st.io_cqs, memory_order_relaxed);
}

/* Set Features (§5.27): Number of Queues (§5.27.1.5), Volatile Write Cache. */
static uint16_t set_features(struct nvme_model *m, const struct nvme_sqe *sqe, uint32_t *dw0)
{
	uint32_t fid = sqe->cdw10 & 0xff;

	switch (fid) {
	case NVME_FEAT_NUM_QUEUES: {
		uint32_t nsqr = sqe->cdw11 & 0xffff, ncqr = sqe->cdw11 >> 16;

		if (nsqr == 0xffff || ncqr == 0xffff)
			return NVME_MODEL_ST_GEN(NVME_SC_INVALID_FIELD);
		if (any_io_queue(m))
			return NVME_MODEL_ST_GEN(NVME_SC_CMD_SEQ_ERROR);
		m->nsqa = (uint16_t)(nsqr + 1 < m->cfg.max_ioq ? nsqr + 1 : m->cfg.max_ioq);
		m->ncqa = (uint16_t)(ncqr + 1 < m->cfg.max_ioq ? ncqr + 1 : m->cfg.max_ioq);
		m->nq_set = true;
		*dw0 = nq_dw0(m);
		return 0;
	}
	case NVME_FEAT_VOLATILE_WC:
		if (!m->cfg.vwc)
			return NVME_MODEL_ST_GEN(NVME_SC_INVALID_FIELD);
		m->wce = sqe->cdw11 & 1;
		return 0;
	default:
		return NVME_MODEL_ST_GEN(NVME_SC_INVALID_FIELD);
	}
}

/* Get Features (§5.15): the current value whatever SEL asks. */
static uint16_t get_features(struct nvme_model *m, const struct nvme_sqe *sqe, uint32_t *dw0)
{
	switch (sqe->cdw10 & 0xff) {
	case NVME_FEAT_NUM_QUEUES:
		*dw0 = nq_dw0(m);
		return 0;
	case NVME_FEAT_VOLATILE_WC:
		if (!m->cfg.vwc)
			return NVME_MODEL_ST_GEN(NVME_SC_INVALID_FIELD);
		*dw0 = m->wce;
		return 0;
	default:
		return NVME_MODEL_ST_GEN(NVME_SC_INVALID_FIELD);
	}
}

/* Checks common to Create I/O CQ and SQ: size, contiguity, base address. */
static uint16_t check_new_queue(struct nvme_model *m, const struct nvme_sqe *sqe,
				uint32_t qsize, size_t entry)
{
	if (qsize < 1 || qsize > m->cfg.mqes)   /* 0's based: at least 2 entries */
		return NVME_MODEL_ST_CMD(NVME_SC_QUEUE_SIZE);
	if (sqe->prp1 & (NVME_MODEL_PAGE - 1))
		return NVME_MODEL_ST_GEN(NVME_SC_INVALID_PRP_OFFSET);
	if (!(sqe->cdw11 & NVME_QUEUE_PHYS_CONTIG))   /* CAP.CQR = 1 */
		return NVME_MODEL_ST_GEN(NVME_SC_INVALID_FIELD);
	if (!nvme_model_iova_va(m, sqe->prp1, (size_t)(qsize + 1) * entry)) {
		nvme_model_count(&m->st.prp_errors, 1);
		return NVME_MODEL_ST_GEN(NVME_SC_DATA_XFER_ERROR);
	}
	return 0;
}

/* Create I/O Completion Queue (§5.4). */
static uint16_t create_cq(struct nvme_model *m, const struct nvme_sqe *sqe)
{
	uint16_t qid = sqe->cdw10 & 0xffff, st;
	uint32_t qsize = sqe->cdw10 >> 16;
	uint32_t cc = nvme_model_rd32(m, NVME_REG_CC);

	if (!qid || qid > m->ncqa || m->cq[qid].live)
		return NVME_MODEL_ST_CMD(NVME_SC_QID_INVALID);
	st = check_new_queue(m, sqe, qsize, 16);
	if (st)
		return st;
	if (((cc >> 20) & 0xf) != 4)   /* CC.IOCQES must say 16 bytes */
		return NVME_MODEL_ST_GEN(NVME_SC_INVALID_FIELD);
	bool ien = sqe->cdw11 & NVME_CQ_IRQ_ENABLED;
	uint16_t iv = (uint16_t)(sqe->cdw11 >> 16);
	/* §5.4: an IV the controller does not support (beyond the MSI-X
	 * table) is Invalid Interrupt Vector; with IEN clear IV is ignored */
	if (ien && iv >= nvme_model_msix(m))
		return NVME_MODEL_ST_CMD(NVME_MODEL_SC_INVALID_IRQ_VECTOR);
	m->cq[qid] = (struct nvme_model_cq){ .live = true, .size = qsize + 1,
					     .iova = sqe->prp1, .phase = 1,
					     .ien = ien, .iv = ien ? iv : 0 };
	nvme_model_queue_db_reset(m, qid, NVME_MODEL_DB_CQ);
	atomic_fetch_add_explicit(&m->st.io_cqs, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->queue_gen, 1, memory_order_relaxed);
	return 0;
}

/* Create I/O Submission Queue (§5.5). */
static uint16_t create_sq(struct nvme_model *m, const struct nvme_sqe *sqe)
{
	uint16_t qid = sqe->cdw10 & 0xffff, cqid = sqe->cdw11 >> 16, st;
	uint32_t qsize = sqe->cdw10 >> 16;
	uint32_t cc = nvme_model_rd32(m, NVME_REG_CC);

	if (!qid || qid > m->nsqa || m->sq[qid].live)
		return NVME_MODEL_ST_CMD(NVME_SC_QID_INVALID);
	if (!cqid || cqid > m->cfg.max_ioq || !m->cq[cqid].live)
		return NVME_MODEL_ST_CMD(NVME_SC_CQ_INVALID);
	st = check_new_queue(m, sqe, qsize, 64);
	if (st)
		return st;
	if (((cc >> 16) & 0xf) != 6)   /* CC.IOSQES must say 64 bytes */
		return NVME_MODEL_ST_GEN(NVME_SC_INVALID_FIELD);
	m->sq[qid] = (struct nvme_model_sq){ .live = true, .size = qsize + 1,
					     .iova = sqe->prp1, .cqid = cqid };
	m->cq[cqid].nsq++;
	nvme_model_queue_db_reset(m, qid, NVME_MODEL_DB_SQ);
	atomic_fetch_add_explicit(&m->st.io_sqs, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->queue_gen, 1, memory_order_relaxed);
	return 0;
}

/* Delete I/O Submission Queue (§5.7). Entries not fetched yet are dropped
 * silently; completions still owed (delayed) are discarded. */
static uint16_t delete_sq(struct nvme_model *m, const struct nvme_sqe *sqe)
{
	uint16_t qid = sqe->cdw10 & 0xffff;

	if (!qid || qid > m->cfg.max_ioq || !m->sq[qid].live)
		return NVME_MODEL_ST_CMD(NVME_SC_QID_INVALID);
	nvme_model_drop_pending_sq(m, qid);
	m->cq[m->sq[qid].cqid].nsq--;
	m->sq[qid] = (struct nvme_model_sq){ 0 };
	nvme_model_queue_db_reset(m, qid, NVME_MODEL_DB_SQ);
	atomic_fetch_sub_explicit(&m->st.io_sqs, 1, memory_order_relaxed);
	return 0;
}

/* Delete I/O Completion Queue (§5.6): refused while an SQ still uses it. */
static uint16_t delete_cq(struct nvme_model *m, const struct nvme_sqe *sqe)
{
	uint16_t qid = sqe->cdw10 & 0xffff;

	if (!qid || qid > m->cfg.max_ioq || !m->cq[qid].live)
		return NVME_MODEL_ST_CMD(NVME_SC_QID_INVALID);
	if (m->cq[qid].nsq)
		return NVME_MODEL_ST_CMD(NVME_MODEL_SC_INVALID_QUEUE_DELETION);
	m->cq[qid] = (struct nvme_model_cq){ 0 };
	nvme_model_queue_db_reset(m, qid, NVME_MODEL_DB_CQ);
	atomic_fetch_sub_explicit(&m->st.io_cqs, 1, memory_order_relaxed);
	return 0;
}

uint16_t nvme_model_admin_exec(struct nvme_model *m, const struct nvme_sqe *sqe, uint32_t *dw0)
{
	switch (sqe->opc) {
	case NVME_ADM_IDENTIFY:
		return identify(m, sqe);
	case NVME_ADM_SET_FEATURES:
		return set_features(m, sqe, dw0);
	case NVME_ADM_GET_FEATURES:
		return get_features(m, sqe, dw0);
	case NVME_ADM_CREATE_CQ:
		return create_cq(m, sqe);
	case NVME_ADM_CREATE_SQ:
		return create_sq(m, sqe);
	case NVME_ADM_DELETE_SQ:
		return delete_sq(m, sqe);
	case NVME_ADM_DELETE_CQ:
		return delete_cq(m, sqe);
	case NVME_ADM_GET_LOG_PAGE:
		return nvme_model_get_log_page(m, sqe);
	case NVME_ADM_ABORT:
		*dw0 = 1;   /* §5.1: bit 0 set = command not aborted */
		return 0;
	default:
		return NVME_MODEL_ST_GEN(NVME_SC_INVALID_OPCODE);
	}
}
