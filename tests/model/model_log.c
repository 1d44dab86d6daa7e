/* SPDX-License-Identifier: MIT */
/*
 * The model's log pages (NVMe 2.0 §5.16): Error Information and SMART /
 * Health Information, and the per-command bookkeeping behind them. Runs
 * on the service thread only.
 */
#include <string.h>

#include "tests/model/model_priv.h"

#define NVME_MODEL_TEMP_K       313   /* 40 C */
#define NVME_MODEL_SPARE_THRESH 10
#define NVME_MODEL_SC_INVALID_LOG_PAGE 0x09   /* SCT 1 (Figure 103) */

static void put_u128(uint8_t dst[16], uint64_t v)
{
	memset(dst, 0, 16);
	for (int i = 0; i < 8; i++)
		dst[i] = (uint8_t)(v >> (8 * i));
}

void nvme_model_log_cpl(struct nvme_model *m, uint16_t sqid, const struct nvme_sqe *sqe,
			uint16_t status)
{
	struct nvme_model_log *l = &m->log;
	uint16_t st = status & 0x7ff;   /* SCT and SC, DNR apart */

	if (!sqid)
		return;   /* admin commands are not logged */
	if (!st) {
		if (sqe->opc == NVME_CMD_READ)
			l->host_reads++;
		else if (sqe->opc == NVME_CMD_WRITE)
			l->host_writes++;
		return;
	}
	if (st >> 8 == NVME_SCT_MEDIA)
		l->media_errors++;
	l->head = (l->head + 1) % (NVME_MODEL_ELPE + 1);
	l->ring[l->head] = (struct nvme_error_log){
		.error_count = ++l->error_count,
		.sqid = sqid,
		.cid = sqe->cid,
		/* The completion's status field, phase tag (bit 0) clear. */
		.status = (uint16_t)((st & 0xff) << 1 | (st >> 8 & 7) << 9 |
				     ((status & NVME_MODEL_DNR) ? 0x8000 : 0)),
		.param_error_loc = 0xffff,   /* not reported */
		.lba = (uint64_t)sqe->cdw11 << 32 | sqe->cdw10,
		.nsid = sqe->nsid,
	};
}

static size_t error_page(const struct nvme_model *m, uint8_t *buf)
{
	const struct nvme_model_log *l = &m->log;
	struct nvme_error_log *e = (struct nvme_error_log *)buf;
	unsigned n = NVME_MODEL_ELPE + 1;

	/* Newest first (§5.16.1.2); slots never written stay empty (count 0). */
	for (unsigned i = 0; i < n; i++)
		e[i] = l->ring[(l->head + n - i) % n];
	return n * sizeof(*e);
}

static size_t smart_page(const struct nvme_model *m, uint8_t *buf)
{
	const struct nvme_model_log *l = &m->log;
	struct nvme_smart_log *s = (struct nvme_smart_log *)buf;
	uint64_t rd = atomic_load_explicit(&m->st.bytes_read, memory_order_relaxed);
	uint64_t wr = atomic_load_explicit(&m->st.bytes_written, memory_order_relaxed);

	s->temperature[0] = NVME_MODEL_TEMP_K & 0xff;
	s->temperature[1] = NVME_MODEL_TEMP_K >> 8;
	s->avail_spare = 100;
	s->spare_thresh = NVME_MODEL_SPARE_THRESH;
	/* Data units: thousands of 512-byte units, rounded up (Figure 207). */
	put_u128(s->data_units_read, (rd / 512 + 999) / 1000);
	put_u128(s->data_units_written, (wr / 512 + 999) / 1000);
	put_u128(s->host_reads, l->host_reads);
	put_u128(s->host_writes, l->host_writes);
	put_u128(s->power_cycles, 1);
	put_u128(s->media_errors, l->media_errors);
	put_u128(s->num_err_log_entries, l->error_count);
	return sizeof(*s);
}

uint16_t nvme_model_get_log_page(struct nvme_model *m, const struct nvme_sqe *sqe)
{
	uint8_t buf[4096] = { 0 };
	uint32_t lid = sqe->cdw10 & 0xff, nsid = sqe->nsid;
	uint64_t numd = (sqe->cdw10 >> 16 | (uint64_t)(sqe->cdw11 & 0xffff) << 16) + 1;
	size_t len = numd * 4 > sizeof(buf) ? sizeof(buf) : (size_t)numd * 4, size;

	if (sqe->cdw12 || sqe->cdw13)   /* Log Page Offset: only 0 */
		return NVME_MODEL_ST_GEN(NVME_SC_INVALID_FIELD);
	switch (lid) {
	case NVME_LOG_ERROR:
		size = error_page(m, buf);
		break;
	case NVME_LOG_SMART:
		if (nsid && nsid != 0xffffffff && nsid > m->cfg.nns)
			return NVME_MODEL_ST_GEN(NVME_SC_INVALID_NS);
		size = smart_page(m, buf);
		break;
	default:
		return NVME_MODEL_ST_CMD(NVME_MODEL_SC_INVALID_LOG_PAGE);
	}
	/* A request longer than the page gets the page; the rest of the
	 * host's buffer is not written. */
	return nvme_model_prp_xfer(m, sqe, buf, len < size ? len : size, true);
}
