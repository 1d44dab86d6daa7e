/* SPDX-License-Identifier: MIT */
/*
 * Controller bring-up, identification and shutdown (NVMe 2.0 §3.5.1,
 * §3.6), and the controller-level public calls.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "driver/ctrlr.h"
#include "driver/mmio.h"
#include "driver/prp.h"
#include "driver/qpair.h"
#include "pci/log.h"

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Admin-issuing sections this thread is inside (nvr_ctrlr_enter()). */
static __thread unsigned enter_depth;

void nvr_ctrlr_enter(struct nvr_ctrlr *ctrlr)
{
	if (enter_depth++ == 0)
		pthread_rwlock_rdlock(&ctrlr->reset_lock);
}

void nvr_ctrlr_leave(struct nvr_ctrlr *ctrlr)
{
	if (--enter_depth)
		return;
	pthread_rwlock_unlock(&ctrlr->reset_lock);
	if (atomic_exchange(&ctrlr->reset_wanted, false))
		nvr_ctrlr_reset_for(ctrlr, "admin command timeout or fatal status");
}

bool nvr_ctrlr_check_removed(struct nvr_ctrlr *ctrlr)
{
	const struct nvr_pci_ops *ops = ctrlr->dev->ops;

	if (!ops->removal_requested || !ops->removal_requested(ctrlr->dev))
		return false;
	/* Quiesced first (while the BAR still answers), then handed back so
	 * the kernel's removal can finish; the process's memory stays. */
	nvr_ctrlr_fail_err(ctrlr, "the device is being removed (VFIO device request)", -ENODEV);
	pthread_mutex_lock(&ctrlr->fail_lock);
	if (!ctrlr->released && ops->release_device) {
		ops->release_device(ctrlr->dev);
		ctrlr->released = true;
	}
	pthread_mutex_unlock(&ctrlr->fail_lock);
	return true;
}

bool nvr_ctrlr_check_fatal(struct nvr_ctrlr *ctrlr)
{
	if (nvr_ctrlr_failed(ctrlr))
		return true;
	if (nvr_ctrlr_check_removed(ctrlr))
		return true;
	uint32_t csts = nvr_mmio_read32(ctrlr->bar, NVME_REG_CSTS);
	char why[64];

	/* All ones: the function is gone (surprise removal). */
	if (csts == UINT32_MAX) {
		nvr_ctrlr_fail_err(ctrlr, "the device is gone (CSTS reads all ones)", -ENODEV);
		return true;
	}
	if (!(csts & NVME_CSTS_CFS))
		return false;
	snprintf(why, sizeof(why), "controller fatal status (CSTS=0x%08x)", csts);
	if (enter_depth)
		atomic_store(&ctrlr->reset_wanted, true);
	else
		nvr_ctrlr_reset_for(ctrlr, why);
	return true;
}

/*
 * Wait until CSTS.RDY == @rdy, bounded by CAP.TO (§3.5.1). With
 * @cfs_fatal, CSTS.CFS ends the wait with -EIO; while disabling it is
 * ignored, since the reset (CC.EN 1→0) is the way out of it.
 */
static int wait_ready(struct nvr_ctrlr *ctrlr, bool rdy, bool cfs_fatal)
{
	uint64_t deadline = nvr_now_ms() + ctrlr->ready_timeout_ms;

	for (;;) {
		uint32_t csts = nvr_mmio_read32(ctrlr->bar, NVME_REG_CSTS);

		if (csts == UINT32_MAX) {
			nvr_log(NVR_LOG_ERR, "%s: CSTS reads all ones: device gone",
				ctrlr->info.bdf);
			return -ENODEV;
		}
		if (cfs_fatal && (csts & NVME_CSTS_CFS)) {
			nvr_log(NVR_LOG_ERR, "%s: controller fatal status while enabling (CSTS=0x%08x)",
				ctrlr->info.bdf, csts);
			return -EIO;
		}
		if (!!(csts & NVME_CSTS_RDY) == rdy)
			return 0;
		if (nvr_now_ms() > deadline) {
			nvr_log(NVR_LOG_ERR, "%s: CSTS.RDY did not become %d within CAP.TO (%u ms)",
				ctrlr->info.bdf, rdy, ctrlr->ready_timeout_ms);
			return -ETIMEDOUT;
		}
		sleep_ms(1);
	}
}

/* §3.5.1 steps 1–2: disable and wait for CSTS.RDY = 0. */
static int ctrlr_disable(struct nvr_ctrlr *ctrlr)
{
	uint32_t cc = nvr_mmio_read32(ctrlr->bar, NVME_REG_CC);
	uint32_t csts = nvr_mmio_read32(ctrlr->bar, NVME_REG_CSTS);
	int rc;

	/* Enabling still in progress: let it finish first, since clearing
	 * EN while RDY is 0 and EN is 1 is undefined on some controllers
	 * (§3.1.3.5: EN 1→0 while RDY 0 is implementation specific). */
	if ((cc & NVME_CC_EN) && !(csts & NVME_CSTS_RDY) && !(csts & NVME_CSTS_CFS)) {
		rc = wait_ready(ctrlr, true, false);
		if (rc)
			return rc;
	}
	if (cc & NVME_CC_EN)
		nvr_mmio_write32(ctrlr->bar, NVME_REG_CC, cc & ~NVME_CC_EN);
	return wait_ready(ctrlr, false, false);
}

void nvr_ctrlr_fail(struct nvr_ctrlr *ctrlr, const char *why)
{
	nvr_ctrlr_fail_err(ctrlr, why, -EIO);
}

void nvr_ctrlr_fail_err(struct nvr_ctrlr *ctrlr, const char *why, int err)
{
	pthread_mutex_lock(&ctrlr->fail_lock);
	if (atomic_load_explicit(&ctrlr->failed, memory_order_relaxed)) {
		pthread_mutex_unlock(&ctrlr->fail_lock);
		return;
	}
	nvr_log(NVR_LOG_ERR, "%s: %s: disabling the controller; its commands fail with %s",
		ctrlr->info.bdf, why, err == -ENODEV ? "ENODEV" : "EIO");
	ctrlr->fail_errno = err;
	/* CC.EN 1→0 is the controller reset (§3.7.2): every queue is deleted
	 * and, once CSTS.RDY reads 0, nothing is fetched or transferred any
	 * more. CFS does not stop it (wait_ready without cfs_fatal). */
	uint32_t cc = nvr_mmio_read32(ctrlr->bar, NVME_REG_CC);
	int rc = 0;
	if (cc != UINT32_MAX) {
		nvr_mmio_write32(ctrlr->bar, NVME_REG_CC, cc & ~NVME_CC_EN);
		rc = wait_ready(ctrlr, false, false);
	}
	if (rc && rc != -ENODEV) {
		rc = ctrlr->dev->ops->reset ? ctrlr->dev->ops->reset(ctrlr->dev) : -ENOTSUP;
		if (rc) {
			/* The device may still move data: its commands' buffers
			 * leave the IOMMU before they are handed back failed
			 * (a late write then faults instead of landing); the
			 * driver's own queues stay mapped, never reused. */
			int left = nvr_pci_dma_revoke(ctrlr->dev);
			nvr_log(NVR_LOG_ERR, "%s: cannot quiesce the controller (%d): application "
				"buffers %s; the driver's DMA memory stays mapped until detach",
				ctrlr->info.bdf, rc,
				left ? "NOT all unmapped from the IOMMU (no-IOMMU mode, or an unmap "
				"failed): the device may still write them" : "unmapped from the IOMMU");
			ctrlr->dma_unsafe = true;
		}
	}
	/* Release: the quiesce above happens before anyone acts on "failed". */
	atomic_store_explicit(&ctrlr->failed, true, memory_order_release);
	pthread_mutex_unlock(&ctrlr->fail_lock);
}

void nvr_ctrlr_dma_free(struct nvr_ctrlr *ctrlr, void *va)
{
	if (va && !ctrlr->dma_unsafe)
		nvr_pci_dma_free_internal(ctrlr->dev, va);
}

/* §3.5.1 steps 3–6: admin queue registers, CC, enable, wait ready. */
static int ctrlr_enable(struct nvr_ctrlr *ctrlr)
{
	struct nvr_adminq *aq = &ctrlr->adminq;
	uint32_t cc;

	nvr_mmio_write32(ctrlr->bar, NVME_REG_AQA,
			 (uint32_t)(aq->q.entries - 1) << 16 | (uint32_t)(aq->q.entries - 1));
	nvr_mmio_write64(ctrlr->bar, NVME_REG_ASQ, aq->q.sq_iova);
	nvr_mmio_write64(ctrlr->bar, NVME_REG_ACQ, aq->q.cq_iova);

	/* 4 KiB pages (MPS 0), NVM command set, round robin, 64-byte SQEs
	 * and 16-byte CQEs; EN in a second write, after the fields. */
	cc = NVME_CC_CSS_NVM | NVME_CC_MPS(0) | NVME_CC_AMS_RR | NVME_CC_IOSQES(6) |
	     NVME_CC_IOCQES(4);
	nvr_mmio_write32(ctrlr->bar, NVME_REG_CC, cc);
	nvr_mmio_write32(ctrlr->bar, NVME_REG_CC, cc | NVME_CC_EN);
	return wait_ready(ctrlr, true, true);
}

/* Copy an Identify string, dropping trailing blanks and NULs. */
static void copy_id_string(char *dst, const char *src, size_t n)
{
	memcpy(dst, src, n);
	dst[n] = '\0';
	while (n > 0 && (dst[n - 1] == ' ' || dst[n - 1] == '\0'))
		dst[--n] = '\0';
}

static int identify_ctrlr(struct nvr_ctrlr *ctrlr)
{
	const struct nvme_id_ctrl *id = ctrlr->scratch;
	struct nvr_ctrlr_info *info = &ctrlr->info;
	uint32_t mpsmin_shift = NVR_PAGE_SHIFT + NVME_CAP_MPSMIN(ctrlr->cap);
	int rc;

	rc = nvr_admin_identify(ctrlr, NVME_CNS_CTRLR, 0, 0, ctrlr->scratch_iova);
	if (rc) {
		nvr_log(NVR_LOG_ERR, "%s: Identify Controller failed (%d)", info->bdf, rc);
		return nvr_admin_errno(rc);
	}
	info->vid = id->vid;
	info->ssvid = id->ssvid;
	copy_id_string(info->sn, id->sn, sizeof(id->sn));
	copy_id_string(info->mn, id->mn, sizeof(id->mn));
	copy_id_string(info->fr, id->fr, sizeof(id->fr));
	info->nn = id->nn;
	info->vwc = id->vwc & NVME_VWC_PRESENT;
	info->write_zeroes = id->oncs & NVME_ONCS_WRITE_ZEROES;
	info->dsm = id->oncs & NVME_ONCS_DSM;
	for (int i = 0; i < 3; i++)
		ctrlr->crdt_ms[i] = id->crdt[i] * 100u;

	/* MDTS is 2^n units of CAP.MPSMIN (§5.17.2.1); 0 means no limit.
	 * Capped so that one PRP list page always suffices (prp.h). */
	uint64_t max_xfer = NVR_MAX_XFER_NO_MDTS;
	if (id->mdts && id->mdts + mpsmin_shift < 32)
		max_xfer = (uint64_t)1 << (id->mdts + mpsmin_shift);
	if (max_xfer > NVR_PRP_MAX_XFER)
		max_xfer = NVR_PRP_MAX_XFER;
	info->max_xfer = (uint32_t)max_xfer;
	return 0;
}

/* The NVM command set's limits on Write Zeroes and DSM (CNS 06h, NVMe
 * 2.0 §5.17.2.6). Controllers before 2.0 may not know CNS 06h: then there
 * are no limits beyond the command formats. */
static int identify_ctrlr_nvm(struct nvr_ctrlr *ctrlr)
{
	const struct nvme_id_ctrl_nvm *id = ctrlr->scratch;
	uint32_t page_shift = NVR_PAGE_SHIFT + NVME_CAP_MPSMIN(ctrlr->cap);
	int rc;

	ctrlr->dsm_ranges = NVME_DSM_MAX_RANGES;
	rc = nvr_admin_identify(ctrlr, NVME_CNS_CS_CTRLR, NVME_CSI_NVM, 0, ctrlr->scratch_iova);
	if (rc > 0)
		return 0;   /* not supported: no limits reported */
	if (rc < 0)
		return rc;
	if (id->wzsl && id->wzsl + page_shift < 32)
		ctrlr->wz_max_bytes = 1u << (id->wzsl + page_shift);
	ctrlr->dsm_range_blocks = id->dmrsl;
	if (id->dmrl)   /* at most 255, below the format's 256 */
		ctrlr->dsm_ranges = id->dmrl;
	ctrlr->dsm_cmd_blocks = id->dmsl;
	return 0;
}

/* Room for one more namespace in ctrlr->ns. */
static int ns_reserve(struct nvr_ctrlr *ctrlr, uint32_t *cap)
{
	if (ctrlr->nns < *cap)
		return 0;
	uint32_t ncap = *cap ? *cap * 2 : 16;
	struct nvr_ns *bigger = realloc(ctrlr->ns, ncap * sizeof(*bigger));
	if (!bigger)
		return -ENOMEM;
	ctrlr->ns = bigger;
	*cap = ncap;
	return 0;
}

/* Identify Namespace for @nsid and append it to ctrlr->ns; inactive
 * (NSZE 0) namespaces and unusable LBA sizes are skipped; formats with
 * metadata are kept with io_refused set. */
static int identify_ns(struct nvr_ctrlr *ctrlr, uint32_t nsid, uint32_t *cap)
{
	const struct nvme_id_ns *id = ctrlr->scratch;
	int rc;

	rc = nvr_admin_identify(ctrlr, NVME_CNS_NS, 0, nsid, ctrlr->scratch_iova);
	if (rc) {
		nvr_log(NVR_LOG_ERR, "%s: Identify Namespace %u failed (%d)",
			ctrlr->info.bdf, nsid, rc);
		return nvr_admin_errno(rc);
	}
	if (id->nsze == 0)
		return 0;
	/* FLBAS bits 3:0 plus, past 16 formats, bits 6:5 (NVM Cmd Set Fig 97). */
	unsigned fmt = (id->flbas & 0xf) | ((unsigned)(id->flbas >> 5) & 3) << 4;
	unsigned lbads = id->lbaf[fmt].lbads;
	if (lbads < 9 || lbads > 16) {
		nvr_log(NVR_LOG_WARN, "%s: namespace %u: LBA size 2^%u unsupported, skipped",
			ctrlr->info.bdf, nsid, lbads);
		return 0;
	}
	rc = ns_reserve(ctrlr, cap);
	if (rc)
		return rc;
	struct nvr_ns *ns = &ctrlr->ns[ctrlr->nns++];
	memset(ns, 0, sizeof(*ns));
	ns->info.nsid = nsid;
	ns->info.lba_size = 1u << lbads;
	ns->info.nlba = id->nsze;
	ns->info.ncap = id->ncap;
	ns->info.nuse = id->nuse;
	ns->info.ms = id->lbaf[fmt].ms;
	ns->info.noiob = id->noiob;
	ns->info.dlfeat = id->dlfeat;
	ns->lba_shift = lbads;
	if (ns->info.ms) {
		ns->io_refused = true;
		nvr_log(NVR_LOG_WARN, "%s: namespace %u: %u bytes of %s metadata per block "
			"unsupported: listed, I/O refused", ctrlr->info.bdf, nsid, ns->info.ms,
			id->flbas & NVME_FLBAS_META_EXT ? "extended-LBA" : "separate");
	}
	return 0;
}

/* The active namespace list (CNS 2, §5.17.2.2): ascending IDs greater
 * than the NSID given, 1024 per page, zero-terminated. */
static int identify_namespaces(struct nvr_ctrlr *ctrlr)
{
	uint32_t ids[1024];
	uint32_t prev = 0, cap = 0;
	int rc;

	for (;;) {
		rc = nvr_admin_identify(ctrlr, NVME_CNS_ACTIVE_NSL, 0, prev, ctrlr->scratch_iova);
		if (rc == (NVME_SCT_GENERIC << 8 | NVME_SC_INVALID_FIELD) && prev == 0)
			goto scan;   /* pre-1.1 controller: no CNS 2 */
		if (rc)
			return nvr_admin_errno(rc);
		memcpy(ids, ctrlr->scratch, sizeof(ids));   /* scratch is reused below */
		unsigned n = 0;
		while (n < 1024 && ids[n] != 0 && ids[n] > prev &&
		       (n == 0 || ids[n] > ids[n - 1]))
			n++;
		for (unsigned i = 0; i < n; i++) {
			rc = identify_ns(ctrlr, ids[i], &cap);
			if (rc)
				return rc;
		}
		if (n < 1024)
			return 0;
		prev = ids[n - 1];
	}
scan:
	for (uint32_t nsid = 1; nsid <= ctrlr->info.nn && nsid <= 1024; nsid++) {
		rc = identify_ns(ctrlr, nsid, &cap);
		if (rc)
			return rc;
	}
	return 0;
}

/* Set Features Number of Queues (§5.27.1.5): counts are 0's based; the
 * controller answers with what it allocated. */
static int negotiate_queues(struct nvr_ctrlr *ctrlr)
{
	uint32_t want = ctrlr->opts.max_io_qpairs, dw0 = 0, nsq, ncq, got;
	int rc;

	if (want > 65535)
		want = 65535;
	/* nvr_admin_exec(): this runs inside the reset too (and at attach
	 * nobody else has the controller yet) */
	struct nvme_sqe c = { .opc = NVME_ADM_SET_FEATURES, .cdw10 = NVME_FEAT_NUM_QUEUES,
			      .cdw11 = (want - 1) << 16 | (want - 1) };
	rc = nvr_admin_exec(ctrlr, &c, &dw0);
	if (rc) {
		nvr_log(NVR_LOG_ERR, "%s: Set Features Number of Queues failed (status 0x%x)",
			ctrlr->info.bdf, rc);
		return nvr_admin_errno(rc);
	}
	nsq = (dw0 & 0xffff) + 1;
	ncq = (dw0 >> 16) + 1;
	got = nsq < ncq ? nsq : ncq;
	if (got > want)
		got = want;
	/* The doorbells of every granted queue must lie inside BAR0. */
	while (got > 0 && nvme_cq_head_db((uint16_t)got, ctrlr->dstrd) + 4 > ctrlr->bar_len)
		got--;
	if (ctrlr->qpairs) {
		/* after a reset: the queue pairs in use keep their IDs */
		if (got < ctrlr->info.max_io_qpairs)
			nvr_log(NVR_LOG_WARN, "%s: %u I/O queue pairs granted after the reset, %u before",
				ctrlr->info.bdf, got, ctrlr->info.max_io_qpairs);
		return 0;
	}
	ctrlr->info.max_io_qpairs = got;

	ctrlr->free_qids = calloc(got + 1, sizeof(*ctrlr->free_qids));
	ctrlr->qpairs = calloc(got + 1, sizeof(*ctrlr->qpairs));
	if (!ctrlr->free_qids || !ctrlr->qpairs)
		return -ENOMEM;
	/* Popped from the end: hand out qid 1 first. */
	for (uint32_t i = 0; i < got; i++)
		ctrlr->free_qids[i] = (uint16_t)(got - i);
	ctrlr->nfree_qids = got;
	return 0;
}

static void opts_defaults(struct nvr_ctrlr_opts *o, const struct nvr_ctrlr_opts *in)
{
	if (in)
		*o = *in;
	else
		memset(o, 0, sizeof(*o));
	if (o->admin_entries == 0)
		o->admin_entries = NVR_ADMIN_ENTRIES_DEFAULT;
	if (o->admin_entries < NVR_ADMIN_ENTRIES_MIN)
		o->admin_entries = NVR_ADMIN_ENTRIES_MIN;
	if (o->admin_entries > NVR_ADMIN_ENTRIES_MAX)
		o->admin_entries = NVR_ADMIN_ENTRIES_MAX;
	if (o->io_entries == 0)
		o->io_entries = NVR_IO_ENTRIES_DEFAULT;
	if (o->max_io_qpairs == 0)
		o->max_io_qpairs = NVR_IO_QPAIRS_DEFAULT;
	if (o->io_timeout_ms == 0) {
		/* NVRING_IO_TIMEOUT: seconds, fractions allowed (0.5) */
		const char *env = getenv("NVRING_IO_TIMEOUT");
		char *end;
		double sec = env ? strtod(env, &end) : 0;
		if (env && end != env && *end == '\0' && sec > 0 && sec < 4e6)
			o->io_timeout_ms = sec * 1000 < 1 ? 1 : (uint32_t)(sec * 1000);
		else
			o->io_timeout_ms = NVR_IO_TIMEOUT_MS_DEFAULT;
	}
}

/* Free what attach built; the device is closed last. */
static void ctrlr_release(struct nvr_ctrlr *ctrlr)
{
	nvr_adminq_fini(ctrlr);
	nvr_ctrlr_dma_free(ctrlr, ctrlr->scratch);
	free(ctrlr->ns);
	free(ctrlr->free_qids);
	free(ctrlr->qpairs);
	pthread_mutex_destroy(&ctrlr->qid_lock);
	pthread_mutex_destroy(&ctrlr->fail_lock);
	pthread_rwlock_destroy(&ctrlr->reset_lock);
	ctrlr->dev->ops->close(ctrlr->dev);
	free(ctrlr);
}

int nvr_ctrlr_attach_dev(struct nvr_pci_dev *dev, const struct nvr_ctrlr_opts *opts,
			 struct nvr_ctrlr **out)
{
	struct nvr_ctrlr *ctrlr;
	volatile void *bar;
	int rc;

	*out = NULL;
	ctrlr = calloc(1, sizeof(*ctrlr));
	if (!ctrlr) {
		dev->ops->close(dev);
		return -ENOMEM;
	}
	ctrlr->dev = dev;
	ctrlr->internal_iova_lo = dev->internal_iova_lo;
	ctrlr->internal_iova_hi = dev->internal_iova_hi;
	pthread_mutex_init(&ctrlr->qid_lock, NULL);
	pthread_mutex_init(&ctrlr->fail_lock, NULL);
	atomic_init(&ctrlr->failed, false);
	ctrlr->fail_errno = -EIO;
	pthread_rwlock_init(&ctrlr->reset_lock, NULL);
	atomic_init(&ctrlr->reset_seq, 0);
	atomic_init(&ctrlr->reset_wanted, false);
	opts_defaults(&ctrlr->opts, opts);
	ctrlr->io_timeout_ms = ctrlr->opts.io_timeout_ms;
	snprintf(ctrlr->info.bdf, sizeof(ctrlr->info.bdf), "%s", dev->bdf);
	if (ctrlr->opts.flags & NVR_ATTACH_NO_HUGEPAGES)
		dev->dma_flags |= NVR_DMA_NO_HUGEPAGES;

	rc = dev->ops->map_bar(dev, 0, &bar, &ctrlr->bar_len);
	if (rc) {
		nvr_log(NVR_LOG_ERR, "%s: cannot map BAR0 (%d)", ctrlr->info.bdf, rc);
		goto fail;
	}
	ctrlr->bar = (volatile uint8_t *)bar;
	if (ctrlr->bar_len < NVME_REG_DBS + 8) {
		nvr_log(NVR_LOG_ERR, "%s: BAR0 too small (%zu bytes)", ctrlr->info.bdf,
			ctrlr->bar_len);
		rc = -ENODEV;
		goto fail;
	}

	ctrlr->cap = nvr_mmio_read64(ctrlr->bar, NVME_REG_CAP);
	ctrlr->info.cap = ctrlr->cap;
	ctrlr->info.version = nvr_mmio_read32(ctrlr->bar, NVME_REG_VS);
	ctrlr->info.max_io_entries = NVME_CAP_MQES(ctrlr->cap) + 1;
	ctrlr->dstrd = NVME_CAP_DSTRD(ctrlr->cap);
	ctrlr->ready_timeout_ms = NVME_CAP_TO(ctrlr->cap) * 500u;
	if (ctrlr->ready_timeout_ms == 0)
		ctrlr->ready_timeout_ms = 500;
	ctrlr->admin_timeout_ms = ctrlr->ready_timeout_ms > NVR_ADMIN_TIMEOUT_MS_MIN ?
				  ctrlr->ready_timeout_ms : NVR_ADMIN_TIMEOUT_MS_MIN;
	if (ctrlr->cap == UINT64_MAX) {
		nvr_log(NVR_LOG_ERR, "%s: CAP reads all ones: device gone", ctrlr->info.bdf);
		rc = -ENODEV;
		goto fail;
	}
	if (!(NVME_CAP_CSS(ctrlr->cap) & NVME_CAP_CSS_NVM)) {
		nvr_log(NVR_LOG_ERR, "%s: controller lacks the NVM command set",
			ctrlr->info.bdf);
		rc = -EOPNOTSUPP;
		goto fail;
	}
	/* nvring uses 4 KiB memory pages: MPSMIN must allow them. */
	if (NVME_CAP_MPSMIN(ctrlr->cap) > 0) {
		nvr_log(NVR_LOG_ERR, "%s: minimum memory page 2^%u exceeds 4 KiB",
			ctrlr->info.bdf, 12 + NVME_CAP_MPSMIN(ctrlr->cap));
		rc = -EOPNOTSUPP;
		goto fail;
	}

	rc = ctrlr_disable(ctrlr);
	if (rc)
		goto fail;
	uint32_t aentries = ctrlr->opts.admin_entries;
	if (aentries > ctrlr->info.max_io_entries)   /* MQES bounds the admin queue too */
		aentries = ctrlr->info.max_io_entries;
	rc = nvr_adminq_init(ctrlr, aentries);
	if (rc)
		goto fail;
	rc = nvr_pci_dma_alloc_internal(dev, NVR_PAGE_SIZE, &ctrlr->scratch, &ctrlr->scratch_iova);
	if (rc)
		goto fail;
	rc = ctrlr_enable(ctrlr);
	if (rc)
		goto fail;
	rc = identify_ctrlr(ctrlr);
	if (rc)
		goto fail;
	rc = identify_ctrlr_nvm(ctrlr);
	if (rc)
		goto fail;
	rc = negotiate_queues(ctrlr);
	if (rc)
		goto fail;
	rc = identify_namespaces(ctrlr);
	if (rc)
		goto fail;
	*out = ctrlr;
	return 0;

fail:
	/* Leave the controller disabled: it may hold our queue addresses. */
	if (ctrlr->bar && !atomic_load(&ctrlr->failed) && rc != -ENODEV) {
		uint32_t cc = nvr_mmio_read32(ctrlr->bar, NVME_REG_CC);
		if (cc & NVME_CC_EN) {
			nvr_mmio_write32(ctrlr->bar, NVME_REG_CC, cc & ~NVME_CC_EN);
			wait_ready(ctrlr, false, false);
		}
	}
	ctrlr_release(ctrlr);
	return rc;
}

int nvr_ctrlr_reset_for(struct nvr_ctrlr *ctrlr, const char *why)
{
	uint64_t now = nvr_now_ms();
	int rc;

	if (nvr_ctrlr_failed(ctrlr))
		return ctrlr->fail_errno;
	pthread_rwlock_wrlock(&ctrlr->reset_lock);
	if (nvr_ctrlr_failed(ctrlr)) {
		pthread_rwlock_unlock(&ctrlr->reset_lock);
		return ctrlr->fail_errno;
	}
	/* A reset that keeps being needed does not help: give up. */
	uint32_t slot = ctrlr->nresets % NVR_RESETS_PER_WINDOW;
	if (ctrlr->nresets >= NVR_RESETS_PER_WINDOW &&
	    now - ctrlr->reset_times[slot] < NVR_RESET_WINDOW_MS) {
		pthread_rwlock_unlock(&ctrlr->reset_lock);
		char msg[160];
		snprintf(msg, sizeof(msg), "%s; %u resets within %u s did not help", why,
			 NVR_RESETS_PER_WINDOW, NVR_RESET_WINDOW_MS / 1000);
		nvr_ctrlr_fail(ctrlr, msg);
		return ctrlr->fail_errno;
	}
	ctrlr->reset_times[slot] = now;
	ctrlr->nresets++;
	/* odd: queue pairs stop ringing doorbells and wait */
	atomic_fetch_add_explicit(&ctrlr->reset_seq, 1, memory_order_acq_rel);
	nvr_log(NVR_LOG_WARN, "%s: %s: resetting the controller", ctrlr->info.bdf, why);

	rc = ctrlr_disable(ctrlr);
	if (rc && rc != -ENODEV && ctrlr->dev->ops->reset)
		rc = ctrlr->dev->ops->reset(ctrlr->dev) ? rc : ctrlr_disable(ctrlr);
	if (rc == 0) {
		/* disabled: nothing queued is fetched or moved any more */
		nvr_adminq_cancel_all(ctrlr);
		rc = ctrlr_enable(ctrlr);
	}
	if (rc == 0)
		rc = negotiate_queues(ctrlr);
	if (rc) {
		pthread_rwlock_unlock(&ctrlr->reset_lock);
		nvr_ctrlr_fail_err(ctrlr, "the controller reset failed", rc == -ENODEV ? -ENODEV : -EIO);
		return ctrlr->fail_errno;
	}
	/* even again, release: the controller is back before any queue pair
	 * (acquire in nvr_qpair_poll()) recreates its queues in it */
	atomic_fetch_add_explicit(&ctrlr->reset_seq, 1, memory_order_release);
	pthread_rwlock_unlock(&ctrlr->reset_lock);
	nvr_log(NVR_LOG_INFO, "%s: controller reset done", ctrlr->info.bdf);
	return 0;
}

NVR_API int nvr_ctrlr_reset(struct nvr_ctrlr *ctrlr)
{
	if (ctrlr && ctrlr->remote)
		return -EOPNOTSUPP;   /* served by an owner: no device here */
	if (!ctrlr)
		return -EINVAL;
	if (enter_depth)
		return -EDEADLK;
	return nvr_ctrlr_reset_for(ctrlr, "reset requested");
}

NVR_API uint64_t nvr_ctrlr_resets(const struct nvr_ctrlr *ctrlr)
{
	return ctrlr ? ctrlr->nresets : 0;
}

/* Normal shutdown (§3.6.1): CC.SHN = 01b, wait for CSTS.SHST = 10b. */
static int ctrlr_shutdown(struct nvr_ctrlr *ctrlr)
{
	uint32_t cc = nvr_mmio_read32(ctrlr->bar, NVME_REG_CC);
	uint64_t deadline = nvr_now_ms() +
			    (ctrlr->ready_timeout_ms > 10000 ? ctrlr->ready_timeout_ms : 10000);

	nvr_mmio_write32(ctrlr->bar, NVME_REG_CC, (cc & ~NVME_CC_SHN_MASK) | NVME_CC_SHN_NORMAL);
	for (;;) {
		uint32_t csts = nvr_mmio_read32(ctrlr->bar, NVME_REG_CSTS);

		if (csts == UINT32_MAX)
			return -ENODEV;
		if ((csts & NVME_CSTS_SHST_MASK) == NVME_CSTS_SHST_DONE)
			return 0;
		if (nvr_now_ms() > deadline) {
			nvr_log(NVR_LOG_WARN, "%s: shutdown did not complete", ctrlr->info.bdf);
			return -ETIMEDOUT;
		}
		sleep_ms(1);
	}
}

NVR_API int nvr_ctrlr_detach(struct nvr_ctrlr *ctrlr)
{
	uint32_t live;
	int rc = 0;

	if (!ctrlr)
		return -EINVAL;
	if (ctrlr->remote)
		return nvr_remote_detach(ctrlr);
	/* Queue pairs belong to their users (rings among them): freeing
	 * them here would leave those users with dangling pointers. */
	pthread_mutex_lock(&ctrlr->qid_lock);
	live = ctrlr->info.max_io_qpairs - ctrlr->nfree_qids;
	pthread_mutex_unlock(&ctrlr->qid_lock);
	if (live) {
		nvr_log(NVR_LOG_ERR, "%s: detach refused: %u queue pair(s) still allocated "
			"(free them, and close rings, first)", ctrlr->info.bdf, live);
		return -EBUSY;
	}
	if (!nvr_ctrlr_check_fatal(ctrlr))
		rc = ctrlr_shutdown(ctrlr);
	ctrlr_release(ctrlr);
	return rc;
}

NVR_API const struct nvr_ctrlr_info *nvr_ctrlr_get_info(const struct nvr_ctrlr *ctrlr)
{
	return &ctrlr->info;
}

NVR_API int nvr_ctrlr_ns_list(const struct nvr_ctrlr *ctrlr, uint32_t *nsids, uint32_t max)
{
	for (uint32_t i = 0; i < ctrlr->nns && i < max; i++)
		nsids[i] = ctrlr->ns[i].info.nsid;
	return (int)ctrlr->nns;
}

const struct nvr_ns *nvr_ctrlr_find_ns(const struct nvr_ctrlr *ctrlr, uint32_t nsid)
{
	uint32_t lo = 0, hi = ctrlr->nns;

	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;

		if (ctrlr->ns[mid].info.nsid == nsid)
			return &ctrlr->ns[mid];
		if (ctrlr->ns[mid].info.nsid < nsid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

NVR_API int nvr_ns_get_info(const struct nvr_ctrlr *ctrlr, uint32_t nsid,
			    struct nvr_ns_info *info)
{
	const struct nvr_ns *ns = nvr_ctrlr_find_ns(ctrlr, nsid);

	if (!ns)
		return -ENOENT;
	*info = ns->info;
	return 0;
}
