/* SPDX-License-Identifier: MIT */
/*
 * The model's NVM command set (NVM Command Set 1.0 §3): Read, Write,
 * Flush, Write Zeroes, Dataset Management, on namespaces held in RAM.
 * Runs on the service thread only.
 */
#include <string.h>

#include "tests/model/model_priv.h"

/* The LBA range [slba, slba + nlb) must lie inside the namespace. */
static bool lba_ok(const struct nvme_model *m, uint64_t slba, uint64_t nlb)
{
	return slba < m->cfg.ns_blocks && nlb <= m->cfg.ns_blocks - slba;
}

static uint64_t sqe_slba(const struct nvme_sqe *sqe)
{
	return (uint64_t)sqe->cdw11 << 32 | sqe->cdw10;
}

/* Read / Write (§3.2.4, §3.2.6): NLB in CDW12 15:0 is 0's based. */
static uint16_t read_write(struct nvme_model *m, uint8_t *ns, const struct nvme_sqe *sqe,
			   bool read)
{
	uint64_t slba = sqe_slba(sqe), nlb = (sqe->cdw12 & 0xffff) + 1ull;
	size_t bytes = (size_t)nlb << m->cfg.lba_shift;
	uint16_t st;

	/* MDTS is in units of CAP.MPSMIN = 4 KiB (NVMe 2.0 Figure 275). */
	if (m->cfg.mdts != NVME_MODEL_MDTS_NONE && bytes > (size_t)NVME_MODEL_PAGE << m->cfg.mdts)
		return NVME_MODEL_ST_GEN(NVME_SC_INVALID_FIELD);
	if (!lba_ok(m, slba, nlb))
		return NVME_MODEL_ST_GEN(NVME_SC_LBA_RANGE);
	st = nvme_model_prp_xfer(m, sqe, ns + (slba << m->cfg.lba_shift), bytes, read);
	if (!st)
		nvme_model_count(read ? &m->st.bytes_read : &m->st.bytes_written, bytes);
	return st;
}

/* Write Zeroes (§3.2.8): up to 65536 blocks, no data pointer. */
static uint16_t write_zeroes(struct nvme_model *m, uint8_t *ns, const struct nvme_sqe *sqe)
{
	uint64_t slba = sqe_slba(sqe), nlb = (sqe->cdw12 & 0xffff) + 1ull;

	if (!lba_ok(m, slba, nlb))
		return NVME_MODEL_ST_GEN(NVME_SC_LBA_RANGE);
	if (sqe->cdw12 & NVME_WZ_DEAC)   /* deallocated: reads zeroes (DLFEAT) */
		nvme_model_count(&m->st.wz_deac, 1);
	memset(ns + (slba << m->cfg.lba_shift), 0, nlb << m->cfg.lba_shift);
	return 0;
}

/* Dataset Management (§3.2.3): NR+1 ranges in the data buffer. With the
 * deallocate attribute the blocks are zeroed (DLFEAT says they read as
 * zeroes); without it the hints are accepted and ignored. */
static uint16_t dsm(struct nvme_model *m, uint8_t *ns, const struct nvme_sqe *sqe)
{
	struct nvme_dsm_range r[256];
	unsigned nr = (sqe->cdw10 & 0xff) + 1;
	uint16_t st;

	st = nvme_model_prp_xfer(m, sqe, r, nr * sizeof(r[0]), false);
	if (st)
		return st;
	for (unsigned i = 0; i < nr; i++)
		if (!lba_ok(m, r[i].slba, r[i].nlb))
			return NVME_MODEL_ST_GEN(NVME_SC_LBA_RANGE);
	if (!(sqe->cdw11 & NVME_DSM_ATTR_DEALLOCATE))
		return 0;
	for (unsigned i = 0; i < nr; i++)
		memset(ns + (r[i].slba << m->cfg.lba_shift), 0,
		       (size_t)r[i].nlb << m->cfg.lba_shift);
	return 0;
}

uint16_t nvme_model_io_exec(struct nvme_model *m, const struct nvme_sqe *sqe, uint32_t *dw0)
{
	uint8_t *ns;

	switch (sqe->opc) {
	case NVME_CMD_FLUSH:
		/* NSID FFFFFFFFh: flush every namespace (§3.2.2). */
		if (sqe->nsid == 0xffffffff)
			return 0;
		break;
	case NVME_CMD_READ:
	case NVME_CMD_WRITE:
	case NVME_CMD_WRITE_ZEROES:
	case NVME_CMD_DSM:
		break;
	default:
		return NVME_MODEL_ST_GEN(NVME_SC_INVALID_OPCODE);
	}
	ns = nvme_model_ns_data(m, sqe->nsid);
	if (!ns)
		return NVME_MODEL_ST_GEN(NVME_SC_INVALID_NS);
	switch (sqe->opc) {
	case NVME_CMD_READ:
		return read_write(m, ns, sqe, true);
	case NVME_CMD_WRITE:
		return read_write(m, ns, sqe, false);
	case NVME_CMD_WRITE_ZEROES:
		return write_zeroes(m, ns, sqe);
	case NVME_CMD_DSM:
		return dsm(m, ns, sqe);
	default:   /* Flush: RAM is always stable */
		return 0;
	}
}
