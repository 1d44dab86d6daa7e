/* SPDX-License-Identifier: MIT */
/*
 * NVM command set I/O (NVM Command Set 1.0 §3): the public read/write/
 * flush/write zeroes/deallocate calls, argument checks, and how a request
 * is cut into commands:
 *  - Read/Write: at most max_xfer bytes (MDTS, capped at 2 MiB so one PRP
 *    list page suffices) and at most 65536 blocks (NLB is 16 bits);
 *  - Write Zeroes: at most 65536 blocks per command, fewer if the
 *    controller reports a Write Zeroes Size Limit (WZSL);
 *  - Dataset Management: up to 256 ranges per command (DMRL), each at most
 *    DMRSL blocks (else 2^32 - 1), at most DMSL blocks per command, the
 *    ranges written into the tracker's PRP page (256 × 16 B = 4 KiB);
 *  - Flush: one command.
 */
#include <errno.h>
#include <string.h>

#include "driver/ctrlr.h"
#include "driver/prp.h"
#include "driver/qpair.h"

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* Inlined into each public entry point: the I/O path's checks then run
 * in one frame instead of three calls with nine arguments each. */
#define NVR_HOT __attribute__((always_inline))

#define NVR_MAX_NLB_PER_CMD 65536u    /* CDW12 NLB, 0's based, 16 bits */
#define NVR_SEG_MAX_LEN     0x80000000u /* page-multiple cap of one nvr_seg */

/* Blocks per Read/Write command for a namespace with @lba_shift. */
static inline uint32_t rw_max_blocks(const struct nvr_qpair *qp, uint32_t lba_shift)
{
	uint32_t n = qp->ctrlr->info.max_xfer >> lba_shift;

	if (n > NVR_MAX_NLB_PER_CMD)
		n = NVR_MAX_NLB_PER_CMD;
	return n ? n : 1;
}

static inline void set_slba_nlb(struct nvme_sqe *cmd, uint64_t lba, uint32_t nlb)
{
	cmd->cdw10 = (uint32_t)lba;
	cmd->cdw11 = (uint32_t)(lba >> 32);
	cmd->cdw12 = nlb - 1;   /* 0's based */
}

/* Dataset Management, deallocate (NVM Cmd Set §3.2.3): as many ranges as
 * the limits allow; returns the blocks covered. */
static uint32_t build_dsm(const struct nvr_ctrlr *ctrlr, const struct nvr_req *req,
			  struct nvr_tracker *tr, struct nvme_sqe *cmd)
{
	struct nvme_dsm_range *r = (struct nvme_dsm_range *)tr->prp_list;
	uint32_t range_max = ctrlr->dsm_range_blocks ? ctrlr->dsm_range_blocks : UINT32_MAX;
	uint64_t cmd_left = ctrlr->dsm_cmd_blocks ? ctrlr->dsm_cmd_blocks : UINT64_MAX;
	uint64_t lba = req->lba;
	uint32_t left = req->left, k = 0;

	if (cmd_left < left)
		left = (uint32_t)cmd_left;
	while (left && k < ctrlr->dsm_ranges) {
		uint32_t n = left < range_max ? left : range_max;

		r[k].cattr = 0;
		r[k].nlb = n;   /* not 0's based */
		r[k].slba = lba;
		lba += n;
		left -= n;
		k++;
	}
	cmd->opc = NVME_CMD_DSM;
	cmd->prp1 = tr->prp_iova;     /* k × 16 bytes, inside one page */
	cmd->cdw10 = k - 1;           /* NR, 0's based */
	cmd->cdw11 = NVME_DSM_ATTR_DEALLOCATE;
	return (uint32_t)(lba - req->lba);
}

int nvr_req_build_cmd(const struct nvr_qpair *qp, struct nvr_req *req,
		      struct nvr_tracker *tr, struct nvme_sqe *cmd)
{
	uint32_t n = req->left;
	int rc;

	*cmd = (struct nvme_sqe){ .nsid = req->nsid };   /* inline stores, no memset call */
	switch (req->op) {
	case NVR_IO_READ:
	case NVR_IO_WRITE: {
		uint32_t max = rw_max_blocks(qp, req->lba_shift);
		if (n > max)
			n = max;
		uint32_t bytes = n << req->lba_shift;
		rc = nvr_prp_build(req->segs, req->nseg, req->off, bytes, tr->prp_list,
				   tr->prp_iova, &cmd->prp1, &cmd->prp2);
		if (unlikely(rc))
			return rc;
		cmd->opc = req->op == NVR_IO_READ ? NVME_CMD_READ : NVME_CMD_WRITE;
		set_slba_nlb(cmd, req->lba, n);
		req->off += bytes;
		break;
	}
	case NVR_IO_WRITE_ZEROES:
	case NVR_IO_WRITE_ZEROES_DEAC: {
		uint32_t max = NVR_MAX_NLB_PER_CMD, wz = qp->ctrlr->wz_max_bytes >> req->lba_shift;
		if (wz && wz < max)
			max = wz;
		if (n > max)
			n = max;
		cmd->opc = NVME_CMD_WRITE_ZEROES;
		set_slba_nlb(cmd, req->lba, n);
		if (req->op == NVR_IO_WRITE_ZEROES_DEAC)
			cmd->cdw12 |= NVME_WZ_DEAC;
		break;
	}
	case NVR_IO_DEALLOCATE:
		n = build_dsm(qp->ctrlr, req, tr, cmd);
		break;
	case NVR_IO_FLUSH:
		cmd->opc = NVME_CMD_FLUSH;
		break;
	default:
		return -EINVAL;
	}
	req->lba += n;
	req->left -= n;
	return 0;
}

/*
 * Checks common to every operation, then a request slot: -EIO/-ECANCELED
 * on a dead qpair, -EINVAL bad namespace / zero length / LBA overflow,
 * -EOPNOTSUPP unsupported by the controller or a namespace with metadata,
 * -EAGAIN no request slot.
 */
static inline NVR_HOT int req_start(struct nvr_qpair *qp, enum nvr_io_op op,
				    const struct nvr_ns *ns, uint64_t lba, uint32_t nlb,
				    nvr_cb cb, void *cb_arg, struct nvr_req **out)
{
	const struct nvr_ctrlr_info *info = &qp->ctrlr->info;
	struct nvr_req *req;

	if (unlikely(qp->fail_err))
		return qp->fail_err;
	if (unlikely(atomic_load_explicit(&qp->ctrlr->failed, memory_order_relaxed)))
		return qp->ctrlr->fail_errno == -ENODEV ? -ENODEV : -EIO;   /* failed controller: the next poll ends the rest */
	if (unlikely(!ns))
		return -EINVAL;
	if (unlikely(ns->io_refused))
		return -EOPNOTSUPP;   /* metadata format: see struct nvr_ns */
	if (op == NVR_IO_FLUSH) {
		lba = 0;
		nlb = 1;   /* one command; no blocks */
	} else if (unlikely(nlb == 0 || lba + nlb < lba)) {
		return -EINVAL;
	}
	if (unlikely((op == NVR_IO_WRITE_ZEROES || op == NVR_IO_WRITE_ZEROES_DEAC) &&
		     !info->write_zeroes))
		return -EOPNOTSUPP;
	if (unlikely(op == NVR_IO_DEALLOCATE && !info->dsm))
		return -EOPNOTSUPP;
	req = nvr_qpair_req_get(qp);
	if (unlikely(!req))
		return -EAGAIN;
	nvr_req_init(req, (uint8_t)op, ns->info.nsid, ns->lba_shift, lba, nlb, cb, cb_arg);
	*out = req;
	return 0;
}

/* Read/Write with the data in @segs; checked against the PRP rules now, so
 * that no later command of a split request can fail to build. */
static inline NVR_HOT int submit_rw(struct nvr_qpair *qp, enum nvr_io_op op,
				    const struct nvr_ns *ns, uint64_t lba, uint32_t nlb,
				    const struct nvr_seg *segs, unsigned nseg, nvr_cb cb, void *cb_arg)
{
	struct nvr_req *req;
	int used, rc;

	rc = req_start(qp, op, ns, lba, nlb, cb, cb_arg, &req);
	if (rc)
		return rc;
	uint64_t left = (uint64_t)nlb << ns->lba_shift;
	/* The common I/O: one command (<= MDTS), its data in the first
	 * segment. The checks below reduce to these two for it. */
	if (likely(nseg && left <= segs[0].len && nlb <= rw_max_blocks(qp, ns->lba_shift))) {
		uint64_t a = segs[0].iova;

		if (unlikely(a & 3)) {   /* nvr_segs_check(): PRP1 dword aligned */
			nvr_qpair_req_put(qp, req);
			return -EINVAL;
		}
		if (unlikely(a > UINT64_MAX - left ||
			     (a < qp->ctrlr->internal_iova_hi && a + left > qp->ctrlr->internal_iova_lo))) {
			nvr_qpair_req_put(qp, req);
			return -EFAULT;
		}
		return nvr_qpair_submit_contig(qp, req, a, (uint32_t)left);
	}
	used = nvr_segs_check(segs, nseg, left);
	if (unlikely(used < 0 || used > NVR_REQ_MAX_SEGS)) {
		nvr_qpair_req_put(qp, req);   /* unused: argument error */
		return -EINVAL;
	}
	/* Queues and PRP lists live in one IOVA window of their own: a
	 * segment reaching into it (or wrapping) is refused, so one bad
	 * nvr_io() cannot make the device overwrite a queue. */
	for (int i = 0; i < used; i++) {
		uint64_t a = segs[i].iova, n = segs[i].len < left ? segs[i].len : left;

		if (unlikely(a > UINT64_MAX - n ||
			     (a < qp->ctrlr->internal_iova_hi && a + n > qp->ctrlr->internal_iova_lo))) {
			nvr_qpair_req_put(qp, req);   /* unused: argument error */
			return -EFAULT;
		}
		left -= n;
	}
	memcpy(req->segs, segs, (size_t)used * sizeof(*segs));
	req->nseg = (uint16_t)used;
	return nvr_qpair_submit(qp, req);
}

NVR_API int nvr_io(struct nvr_qpair *qp, enum nvr_io_op op, uint32_t nsid, uint64_t lba,
		   uint32_t nlb, const struct nvr_seg *segs, unsigned nseg,
		   nvr_cb cb, void *cb_arg)
{
	if (unlikely(qp->remote)) {
		/* no bus addresses on a connected controller */
		if (nseg || segs)
			return -EOPNOTSUPP;
		return nvr_remote_qpair_io(qp, op, nsid, lba, nlb, NULL, 0, cb, cb_arg);
	}
	const struct nvr_ns *ns = nvr_ctrlr_find_ns(qp->ctrlr, nsid);
	struct nvr_req *req;
	int rc;

	switch (op) {
	case NVR_IO_READ:
	case NVR_IO_WRITE:
		if (unlikely(!segs))
			return -EINVAL;
		return submit_rw(qp, op, ns, lba, nlb, segs, nseg, cb, cb_arg);
	case NVR_IO_FLUSH:
	case NVR_IO_WRITE_ZEROES:
	case NVR_IO_WRITE_ZEROES_DEAC:
	case NVR_IO_DEALLOCATE:
		rc = req_start(qp, op, ns, lba, nlb, cb, cb_arg, &req);
		if (rc)
			return rc;
		return nvr_qpair_submit(qp, req);
	default:
		return -EINVAL;
	}
}

/* One virtually contiguous DMA buffer → segments of at most 2 GiB. */
static int buf_segs(struct nvr_qpair *qp, const void *buf, uint64_t bytes,
		    struct nvr_seg *segs, unsigned *nseg)
{
	uint64_t iova;
	unsigned n = 0;

	/* Lock-free while @buf lies in the mapping this qpair hit last. */
	if (unlikely(nvr_pci_dma_translate_cached(qp->ctrlr->dev, &qp->tcache, buf, bytes, &iova)))
		return -EFAULT;
	while (bytes) {
		uint32_t len = bytes > NVR_SEG_MAX_LEN ? NVR_SEG_MAX_LEN : (uint32_t)bytes;

		if (*nseg + n == NVR_REQ_MAX_SEGS)
			return -EINVAL;
		segs[*nseg + n].iova = iova;
		segs[*nseg + n].len = len;
		iova += len;
		bytes -= len;
		n++;
	}
	*nseg += n;
	return 0;
}

static int rw_buf(struct nvr_qpair *qp, enum nvr_io_op op, uint32_t nsid, const void *buf,
		  uint64_t lba, uint32_t nlb, nvr_cb cb, void *cb_arg)
{
	const struct nvr_ns *ns = nvr_ctrlr_find_ns(qp->ctrlr, nsid);
	struct nvr_seg segs[NVR_REQ_MAX_SEGS];
	unsigned nseg = 0;
	int rc;

	if (unlikely(!ns || nlb == 0))
		return -EINVAL;
	if (unlikely(qp->remote)) {
		struct iovec v = { (void *)buf, (size_t)nlb << ns->lba_shift };
		return nvr_remote_qpair_io(qp, op, nsid, lba, nlb, &v, 1, cb, cb_arg);
	}
	uint64_t bytes = (uint64_t)nlb << ns->lba_shift;
	if (likely(bytes <= NVR_SEG_MAX_LEN)) {
		/* one segment: what buf_segs() makes, without the array */
		struct nvr_seg seg = { .len = (uint32_t)bytes };

		if (unlikely(nvr_pci_dma_translate_cached(qp->ctrlr->dev, &qp->tcache, buf, bytes,
							  &seg.iova)))
			return -EFAULT;
		return submit_rw(qp, op, ns, lba, nlb, &seg, 1, cb, cb_arg);
	}
	rc = buf_segs(qp, buf, bytes, segs, &nseg);
	if (rc)
		return rc;
	return submit_rw(qp, op, ns, lba, nlb, segs, nseg, cb, cb_arg);
}

NVR_API int nvr_read(struct nvr_qpair *qp, uint32_t nsid, void *buf, uint64_t lba,
		     uint32_t nlb, nvr_cb cb, void *cb_arg)
{
	return rw_buf(qp, NVR_IO_READ, nsid, buf, lba, nlb, cb, cb_arg);
}

NVR_API int nvr_write(struct nvr_qpair *qp, uint32_t nsid, const void *buf, uint64_t lba,
		      uint32_t nlb, nvr_cb cb, void *cb_arg)
{
	return rw_buf(qp, NVR_IO_WRITE, nsid, buf, lba, nlb, cb, cb_arg);
}

/* Scattered: one or more segments per iovec element, in order. */
static int rw_vec(struct nvr_qpair *qp, enum nvr_io_op op, uint32_t nsid,
		  const struct iovec *iov, int iovcnt, uint64_t lba, nvr_cb cb, void *cb_arg)
{
	const struct nvr_ns *ns = nvr_ctrlr_find_ns(qp->ctrlr, nsid);
	struct nvr_seg segs[NVR_REQ_MAX_SEGS];
	unsigned nseg = 0;
	uint64_t total = 0;
	int rc;

	if (unlikely(!ns || !iov || iovcnt <= 0))
		return -EINVAL;
	if (unlikely(qp->remote)) {
		for (int i = 0; i < iovcnt; i++)
			total += iov[i].iov_len;
		if (!total || (total & ((1u << ns->lba_shift) - 1)))
			return -EINVAL;
		return nvr_remote_qpair_io(qp, op, nsid, lba, (uint32_t)(total >> ns->lba_shift), iov,
					   iovcnt, cb, cb_arg);
	}
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len == 0)
			continue;
		rc = buf_segs(qp, iov[i].iov_base, iov[i].iov_len, segs, &nseg);
		if (rc)
			return rc;
		total += iov[i].iov_len;
	}
	if (unlikely(total == 0 || (total & ((1u << ns->lba_shift) - 1)) ||
		     (total >> ns->lba_shift) > UINT32_MAX))
		return -EINVAL;
	return submit_rw(qp, op, ns, lba, (uint32_t)(total >> ns->lba_shift), segs, nseg,
			 cb, cb_arg);
}

NVR_API int nvr_readv(struct nvr_qpair *qp, uint32_t nsid, const struct iovec *iov, int iovcnt,
		      uint64_t lba, nvr_cb cb, void *cb_arg)
{
	return rw_vec(qp, NVR_IO_READ, nsid, iov, iovcnt, lba, cb, cb_arg);
}

NVR_API int nvr_writev(struct nvr_qpair *qp, uint32_t nsid, const struct iovec *iov, int iovcnt,
		       uint64_t lba, nvr_cb cb, void *cb_arg)
{
	return rw_vec(qp, NVR_IO_WRITE, nsid, iov, iovcnt, lba, cb, cb_arg);
}

NVR_API int nvr_flush(struct nvr_qpair *qp, uint32_t nsid, nvr_cb cb, void *cb_arg)
{
	return nvr_io(qp, NVR_IO_FLUSH, nsid, 0, 0, NULL, 0, cb, cb_arg);
}

NVR_API int nvr_write_zeroes(struct nvr_qpair *qp, uint32_t nsid, uint64_t lba, uint32_t nlb,
			     nvr_cb cb, void *cb_arg)
{
	return nvr_io(qp, NVR_IO_WRITE_ZEROES, nsid, lba, nlb, NULL, 0, cb, cb_arg);
}

NVR_API int nvr_deallocate(struct nvr_qpair *qp, uint32_t nsid, uint64_t lba, uint32_t nlb,
			   nvr_cb cb, void *cb_arg)
{
	return nvr_io(qp, NVR_IO_DEALLOCATE, nsid, lba, nlb, NULL, 0, cb, cb_arg);
}
