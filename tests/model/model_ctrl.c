/* SPDX-License-Identifier: MIT */
/*
 * The controller core of the software NVMe model: BAR0 registers, the
 * CC/CSTS state machine (NVMe 2.0 §3.5), doorbells, fetching SQ entries
 * and posting CQ entries (§4.2, §4.6), fault hooks, and the pci seam ops.
 * One service thread does all the device side work.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "tests/model/model_priv.h"

#define READY_DELAY_NS   1000000ull  /* CC.EN 0→1 to CSTS.RDY */
#define IDLE_SPINS       64          /* idle passes before sleeping */
/* Sleep per idle pass after that: short while a test is likely still busy,
 * longer once it has gone quiet, so an idle model costs ~1% of a core. */
#define IDLE_SLEEP_NS    50000
#define IDLE_SLEEP2_NS   250000
#define IDLE_LONG_NS     100000000ull /* idle this long: the longer sleep */
#define SQ_BUDGET        16          /* commands per SQ per pass (round robin) */
#define CAP_TO           2           /* CAP.TO in 500 ms units */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void wr64(struct nvme_model *m, uint32_t off, uint64_t v)
{
	nvme_model_wr32(m, off, (uint32_t)v);
	nvme_model_wr32(m, off + 4, (uint32_t)(v >> 32));
}

/* CAP (NVMe 2.0 §3.1.3.1): MQES, CQR=1, TO, DSTRD=0, CSS=NVM, MPSMIN=MPSMAX=0. */
static void regs_reset(struct nvme_model *m)
{
	uint64_t cap = (uint64_t)m->cfg.mqes | 1ull << 16 | (uint64_t)CAP_TO << 24 |
		       (uint64_t)NVME_CAP_CSS_NVM << 37;

	memset(m->bar, 0, NVME_MODEL_BAR_SIZE);
	wr64(m, NVME_REG_CAP, cap);
	nvme_model_wr32(m, NVME_REG_VS, 0x00010400);
}

/* Doorbells of a queue that was just created or deleted read as 0, like a
 * register after reset (BAR0 is memory: the model must clear them). */
void nvme_model_queue_db_reset(struct nvme_model *m, uint16_t qid, int which)
{
	if (which == NVME_MODEL_DB_SQ)
		nvme_model_wr32(m, nvme_sq_tail_db(qid, 0), 0);
	else
		nvme_model_wr32(m, nvme_cq_head_db(qid, 0), 0);
	m->stray_db[qid][which] = 0;
}

void nvme_model_drop_pending_sq(struct nvme_model *m, uint16_t sqid)
{
	unsigned i, j = 0;

	for (i = 0; i < m->npend; i++) {
		if (m->pend[i].sqid == sqid)
			m->cq[m->pend[i].cqid].pending--;
		else
			m->pend[j++] = m->pend[i];
	}
	m->npend = j;
}

/* Controller reset (CC.EN 1→0, or ops->reset): every queue goes away. */
static void queues_reset(struct nvme_model *m)
{
	unsigned q;

	for (q = 0; q <= m->cfg.max_ioq; q++) {
		m->sq[q] = (struct nvme_model_sq){ 0 };
		m->cq[q] = (struct nvme_model_cq){ 0 };
		nvme_model_queue_db_reset(m, q, NVME_MODEL_DB_SQ);
		nvme_model_queue_db_reset(m, q, NVME_MODEL_DB_CQ);
	}
	m->npend = 0;
	m->nq_set = false;
	m->nsqa = m->ncqa = m->cfg.max_ioq;
	m->wce = m->cfg.vwc;
	atomic_store_explicit(&m->st.io_sqs, 0, memory_order_relaxed);
	atomic_store_explicit(&m->st.io_cqs, 0, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->queue_gen, 1, memory_order_relaxed);
}

static void set_csts(struct nvme_model *m, uint32_t csts)
{
	nvme_model_wr32(m, NVME_REG_CSTS, csts);
}

static void fail_controller(struct nvme_model *m)
{
	set_csts(m, nvme_model_rd32(m, NVME_REG_CSTS) | NVME_CSTS_CFS);
	m->state = NVME_MODEL_FAILED;
}

/* Admin queue setup at CC.EN 0→1 (NVMe 2.0 §3.5.1, §3.1.3.8-10). */
static bool admin_queues_valid(struct nvme_model *m, uint32_t cc)
{
	uint32_t aqa = nvme_model_rd32(m, NVME_REG_AQA);
	uint64_t asq = nvme_model_rd64(m, NVME_REG_ASQ), acq = nvme_model_rd64(m, NVME_REG_ACQ);
	uint32_t sqs = (aqa & 0xfff) + 1, cqs = ((aqa >> 16) & 0xfff) + 1;

	if (((cc >> 7) & 0xf) != 0 || ((cc >> 4) & 0x7) != 0)  /* MPS, CSS */
		return false;
	if (sqs < 2 || cqs < 2 || !asq || !acq ||
	    (asq | acq) & (NVME_MODEL_PAGE - 1))
		return false;
	if (!nvme_model_iova_va(m, asq, (size_t)sqs * 64) ||
	    !nvme_model_iova_va(m, acq, (size_t)cqs * 16)) {
		nvme_model_count(&m->st.prp_errors, 1);
		return false;
	}
	m->sq[0] = (struct nvme_model_sq){ .live = true, .size = sqs, .iova = asq };
	m->cq[0] = (struct nvme_model_cq){ .live = true, .size = cqs, .iova = acq,
					   .phase = 1, .nsq = 1 };
	return true;
}

/* Follow CC (and the CFS hook); returns true if anything changed. */
static bool handle_cc(struct nvme_model *m)
{
	uint32_t cc = nvme_model_rd32(m, NVME_REG_CC);
	bool en = cc & NVME_CC_EN, was_en = m->cc_last & NVME_CC_EN;
	bool changed = cc != m->cc_last;

	m->cc_last = cc;
	if (atomic_exchange(&m->cfs_req, false)) {
		fail_controller(m);
		changed = true;
	}
	if (was_en && !en && !atomic_load(&m->wedged)) {
		queues_reset(m);
		set_csts(m, 0);
		m->state = NVME_MODEL_DISABLED;
		nvme_model_count(&m->st.disables, 1);
		return true;
	}
	switch (m->state) {
	case NVME_MODEL_DISABLED:
		if (en && !was_en) {
			if (admin_queues_valid(m, cc)) {
				m->state = NVME_MODEL_ENABLING;
				m->ready_at_ns = now_ns() + READY_DELAY_NS;
			} else {
				fail_controller(m);
			}
		}
		break;
	case NVME_MODEL_ENABLING:
		if (now_ns() >= m->ready_at_ns) {
			set_csts(m, NVME_CSTS_RDY);
			m->state = NVME_MODEL_READY;
			nvme_model_count(&m->st.enables, 1);
			changed = true;
		}
		break;
	case NVME_MODEL_READY:
		if (cc & NVME_CC_SHN_MASK) {
			/* Nothing volatile to flush: shutdown completes at once. */
			set_csts(m, NVME_CSTS_RDY | NVME_CSTS_SHST_DONE);
			m->state = NVME_MODEL_SHUTDOWN;
			nvme_model_count(&m->st.shutdowns, 1);
		}
		break;
	default:
		break;
	}
	return changed;
}

/* CQ head doorbells (§3.1.3.23): the new head must lie within the entries
 * posted and not yet consumed. */
static bool scan_cq_doorbells(struct nvme_model *m)
{
	bool work = false;

	bool passive = atomic_load_explicit(&m->io_passive, memory_order_relaxed);

	for (unsigned q = 0; q <= (passive ? 0 : m->cfg.max_ioq); q++) {
		struct nvme_model_cq *cq = &m->cq[q];
		uint32_t db;

		if (!cq->live)
			continue;
		db = nvme_model_rd32(m, nvme_cq_head_db(q, 0));
		if (db == cq->db_last)
			continue;
		cq->db_last = db;
		work = true;
		if (db >= cq->size ||
		    (db + cq->size - cq->head) % cq->size > (cq->tail + cq->size - cq->head) % cq->size) {
			nvme_model_count(&m->st.bad_dbs, 1);
			continue;
		}
		cq->head = db;
		nvme_model_count(&m->st.cq_doorbells, 1);
	}
	return work;
}

/* Doorbells of queues that do not exist must never change. */
static void scan_stray_doorbells(struct nvme_model *m)
{
	for (unsigned q = 0; q < NVME_MODEL_NDB; q++) {
		bool sq_live = q <= m->cfg.max_ioq && m->sq[q].live;
		bool cq_live = q <= m->cfg.max_ioq && m->cq[q].live;

		for (unsigned k = 0; k < 2; k++) {
			uint32_t off = k ? nvme_cq_head_db(q, 0) : nvme_sq_tail_db(q, 0);
			uint32_t v;

			if (k ? cq_live : sq_live)
				continue;
			v = nvme_model_rd32(m, off);
			if (v != m->stray_db[q][k]) {
				m->stray_db[q][k] = v;
				nvme_model_count(&m->st.bad_dbs, 1);
			}
		}
	}
}

static uint32_t cq_used(const struct nvme_model_cq *cq)
{
	return (cq->tail + cq->size - cq->head) % cq->size + cq->pending;
}

/* Write one CQE: body first, then the status word with the new phase tag
 * as a release store, so the host that sees the phase flip (acquire) sees
 * the whole entry. */
static void post_cqe(struct nvme_model *m, const struct nvme_model_pcpl *p)
{
	struct nvme_model_cq *cq = &m->cq[p->cqid];
	struct nvme_cqe *cqe = nvme_model_iova_va_w(m, cq->iova + (uint64_t)cq->tail * 16, 16);
	uint16_t st = p->status;
	uint16_t wire = (uint16_t)(((st & 0xff) << 1) | (((st >> 8) & 0x7) << 9) |
				   ((st & NVME_MODEL_DNR) ? 0x8000 : 0) |
				   (((st >> 11) & 0x3) << 12) | cq->phase);

	if (!cqe) {   /* the host unmapped its CQ under the controller */
		nvme_model_count(&m->st.prp_errors, 1);
		fail_controller(m);
		return;
	}
	cqe->dw0 = p->dw0;
	cqe->dw1 = 0;
	cqe->sqhd = p->sqhd;
	cqe->sqid = p->sqid;
	cqe->cid = p->cid;
	__atomic_store_n(&cqe->status, wire, __ATOMIC_RELEASE);
	if (++cq->tail == cq->size) {
		cq->tail = 0;
		cq->phase ^= 1;
	}
	/* MSI-X: the interrupt message after the entry, as PCIe orders a
	 * posted MSI write behind the CQE's write (the eventfd write is a
	 * system call: the entry is visible to whoever it wakes). */
	if (cq->ien && cq->iv < atomic_load_explicit(&m->nirq, memory_order_acquire)) {
		int fd = atomic_load_explicit(&m->irq_fds[cq->iv], memory_order_relaxed);
		uint64_t one = 1;

		/* counted first: whoever the write wakes sees it counted */
		if (fd >= 0) {
			nvme_model_count(&m->st.irqs, 1);
			if (write(fd, &one, sizeof(one)) < 0) {
				/* the count is at its maximum: the reader wakes anyway */
			}
		}
	}
	if (st & 0x7ff)
		nvme_model_count(&m->st.errors, 1);
}

static bool post_due(struct nvme_model *m)
{
	uint64_t now;
	unsigned i, j = 0;
	bool work = false;

	if (!m->npend)
		return false;
	now = now_ns();
	for (i = 0; i < m->npend; i++) {
		struct nvme_model_pcpl *p = &m->pend[i];

		if (p->due_ns <= now) {
			m->cq[p->cqid].pending--;
			post_cqe(m, p);
			work = true;
		} else {
			m->pend[j++] = *p;
		}
	}
	m->npend = j;
	return work;
}

static bool qsel_match(enum nvme_model_qsel sel, uint16_t sqid)
{
	return sel == NVME_MODEL_Q_ANY || (sel == NVME_MODEL_Q_ADMIN) == (sqid == 0);
}

/* Queue a completion owed by CQ @p->cqid; a CQ slot was reserved by the
 * caller (cq->pending). */
static void complete(struct nvme_model *m, struct nvme_model_pcpl *p, unsigned delay_us)
{
	if (m->npend == m->pend_cap) {
		unsigned cap = m->pend_cap ? 2 * m->pend_cap : 64;
		struct nvme_model_pcpl *n = realloc(m->pend, cap * sizeof(*n));

		if (!n) {
			fail_controller(m);
			return;
		}
		m->pend = n;
		m->pend_cap = cap;
	}
	p->due_ns = delay_us ? now_ns() + (uint64_t)delay_us * 1000 : 0;
	m->pend[m->npend++] = *p;
}

/* Fetch and execute one SQ entry (§4.2) if its CQ has room. */
static bool serve_one(struct nvme_model *m, uint16_t qid)
{
	struct nvme_model_sq *sq = &m->sq[qid];
	struct nvme_model_cq *cq = &m->cq[sq->cqid];
	struct nvme_model_faults *f = &m->faults;
	struct nvme_model_pcpl p = { .sqid = qid, .cqid = sq->cqid };
	const struct nvme_sqe *ent;
	struct nvme_sqe sqe;
	bool fail = false, drop = false;
	unsigned delay;

	if (cq_used(cq) + 1 >= cq->size) {   /* full CQ: head == tail + 1 */
		nvme_model_count(&m->st.cq_full_waits, 1);
		return false;
	}
	ent = nvme_model_iova_va(m, sq->iova + (uint64_t)sq->head * 64, 64);
	if (!ent) {
		nvme_model_count(&m->st.prp_errors, 1);
		fail_controller(m);
		return false;
	}
	memcpy(&sqe, ent, sizeof(sqe));
	sq->head = (sq->head + 1) % sq->size;
	nvme_model_count(&m->st.cmds, 1);
	nvme_model_count(qid ? &m->st.io_cmds : &m->st.admin_cmds, 1);
	if (sqe.cid == 0xffff)
		nvme_model_count(&m->st.reserved_cids, 1);

	pthread_mutex_lock(&f->lock);
	if (f->fail_count && f->fail_opc == sqe.opc && qsel_match(f->fail_q, qid)) {
		f->fail_count--;
		fail = true;
	}
	if (f->drop_count && qsel_match(f->drop_q, qid)) {
		f->drop_count--;
		drop = true;
	}
	delay = f->delay_us;
	pthread_mutex_unlock(&f->lock);

	p.cid = sqe.cid;
	if (fail) {
		p.status = f->fail_status;
		nvme_model_count(&m->st.injected, 1);
	} else if (sqe.fuse_psdt) {   /* fused ops and SGLs are not modelled */
		p.status = NVME_MODEL_ST_GEN(NVME_SC_INVALID_FIELD);
	} else {
		p.status = qid ? nvme_model_io_exec(m, &sqe, &p.dw0)
			       : nvme_model_admin_exec(m, &sqe, &p.dw0);
	}
	nvme_model_log_cpl(m, qid, &sqe, p.status);
	if (drop) {
		nvme_model_count(&m->st.dropped, 1);
		return true;
	}
	/* SQHD after this fetch; a Delete SQ may have removed this very queue. */
	p.sqhd = (uint16_t)sq->head;
	if (!m->cq[p.cqid].live)
		return true;
	m->cq[p.cqid].pending++;
	complete(m, &p, delay);
	return true;
}

static bool serve_sqs(struct nvme_model *m)
{
	bool work = false;
	bool passive = atomic_load_explicit(&m->io_passive, memory_order_relaxed);

	for (unsigned q = 0; q <= (passive ? 0 : m->cfg.max_ioq) && m->state == NVME_MODEL_READY;
	     q++) {
		struct nvme_model_sq *sq = &m->sq[q];
		uint32_t db;

		if (!sq->live)
			continue;
		db = nvme_model_rd32(m, nvme_sq_tail_db(q, 0));
		if (db != sq->db_last) {
			sq->db_last = db;
			if (db >= sq->size) {   /* §3.1.3.22: beyond the queue */
				nvme_model_count(&m->st.bad_dbs, 1);
			} else {
				sq->tail = db;
				nvme_model_count(&m->st.sq_doorbells, 1);
			}
		}
		for (unsigned n = 0; n < SQ_BUDGET && sq->live && sq->head != sq->tail &&
				     m->state == NVME_MODEL_READY; n++) {
			if (!serve_one(m, q))
				break;
			work = true;
		}
	}
	return work;
}

static void do_reset(struct nvme_model *m)
{
	queues_reset(m);
	regs_reset(m);
	m->cc_last = 0;
	m->state = NVME_MODEL_DISABLED;
	atomic_store(&m->cfs_req, false);
	nvme_model_count(&m->st.resets, 1);
}

static void *service(void *arg)
{
	struct nvme_model *m = arg;
	unsigned idle = 0, pass = 0;
	uint64_t idle_since = 0;

	while (!atomic_load_explicit(&m->stop, memory_order_acquire)) {
		bool work = false;

		if (atomic_load(&m->reset_req)) {
			do_reset(m);
			atomic_store(&m->reset_req, false);
			work = true;
		}
		work |= handle_cc(m);
		if (m->state == NVME_MODEL_READY || m->state == NVME_MODEL_SHUTDOWN) {
			work |= scan_cq_doorbells(m);
			work |= post_due(m);
			work |= serve_sqs(m);
		}
		if ((++pass & 63) == 0)
			scan_stray_doorbells(m);
		if (work) {
			idle = 0;
		} else if (++idle == IDLE_SPINS) {
			idle_since = now_ns();
		} else if (idle > IDLE_SPINS) {
			bool quiet = now_ns() - idle_since > IDLE_LONG_NS;
			struct timespec ts = { 0, quiet ? IDLE_SLEEP2_NS : IDLE_SLEEP_NS };

			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

/* ---- pci seam ops ---- */

static struct nvme_model *dev_model(struct nvr_pci_dev *dev)
{
	return ((struct nvme_model_dev *)dev)->m;
}

static int model_map_bar(struct nvr_pci_dev *dev, int bar, volatile void **va, size_t *len)
{
	if (bar != 0)
		return -EINVAL;
	*va = dev_model(dev)->bar;
	*len = NVME_MODEL_BAR_SIZE;
	return 0;
}

/* Function level reset: registers to their reset values, queues gone. */
static int model_reset(struct nvr_pci_dev *dev)
{
	struct nvme_model *m = dev_model(dev);
	struct timespec ts = { 0, 100000 };

	if (atomic_load(&m->wedged))
		return -EIO;
	atomic_store(&m->reset_req, true);
	for (int i = 0; i < 10000 && atomic_load(&m->reset_req); i++)
		nanosleep(&ts, NULL);
	return atomic_load(&m->reset_req) ? -ETIMEDOUT : 0;
}

static void model_irq_close(struct nvme_model *m);

static void stop_thread(struct nvme_model *m)
{
	if (m->thread_running) {
		atomic_store_explicit(&m->stop, true, memory_order_release);
		pthread_join(m->thread, NULL);
		m->thread_running = false;
	}
}

static void model_close(struct nvr_pci_dev *dev)
{
	struct nvme_model *m = dev_model(dev);

	stop_thread(m);
	model_irq_close(m);
	nvr_pci_dma_fini(dev);
	m->dev = NULL;
	free(dev);
}

static unsigned model_irq_vectors(struct nvr_pci_dev *dev)
{
	return nvme_model_msix(dev_model(dev));
}

static void model_irq_close(struct nvme_model *m)
{
	unsigned n = atomic_exchange_explicit(&m->nirq, 0, memory_order_acq_rel);

	for (unsigned i = 0; i < n; i++) {
		int fd = atomic_exchange_explicit(&m->irq_fds[i], -1, memory_order_relaxed);

		if (fd >= 0)
			close(fd);
	}
}

/* What VFIO_DEVICE_SET_IRQS does for the MSI-X index: vectors 0..n-1 on,
 * each writing its own eventfd. */
static int model_irq_enable(struct nvr_pci_dev *dev, unsigned n, int *fds)
{
	struct nvme_model *m = dev_model(dev);

	if (!n || n > nvme_model_msix(m))
		return -EINVAL;
	if (atomic_load(&m->nirq))
		return -EBUSY;
	for (unsigned i = 0; i < n; i++) {
		int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

		if (fd < 0) {
			int err = -errno;

			for (unsigned j = 0; j < i; j++) {
				atomic_store_explicit(&m->irq_fds[j], -1, memory_order_relaxed);
				close(fds[j]);
			}
			return err;
		}
		fds[i] = fd;
		atomic_store_explicit(&m->irq_fds[i], fd, memory_order_relaxed);
	}
	/* release: the fds are in place before the service thread sees n */
	atomic_store_explicit(&m->nirq, n, memory_order_release);
	return 0;
}

/* The service thread may be posting: it reads nirq first, so a vector
 * goes dark before its fd is closed (a write to a closed or reused fd
 * number could still race in a real program; tests disable only at
 * close, with the thread stopped). */
static void model_irq_disable(struct nvr_pci_dev *dev)
{
	model_irq_close(dev_model(dev));
}

/* Sticky, like a VFIO device request: once asked, the answer stays yes. */
static bool model_removal_requested(struct nvr_pci_dev *dev)
{
	return atomic_load_explicit(&dev_model(dev)->removal_req, memory_order_acquire);
}

static const struct nvr_pci_ops model_ops = {
	.map_bar   = model_map_bar,
	.dma_map   = nvme_model_dma_map,
	.dma_map_internal = nvme_model_dma_map_internal,
	.dma_map_internal_ro = nvme_model_dma_map_internal_ro,
	.dma_unmap = nvme_model_dma_unmap,
	.reset     = model_reset,
	.close     = model_close,
	.removal_requested = model_removal_requested,
	.irq_vectors = model_irq_vectors,
	.irq_enable = model_irq_enable,
	.irq_disable = model_irq_disable,
};

/* ---- public API ---- */

static int cfg_fill(struct nvme_model *m, const struct nvme_model_cfg *in)
{
	struct nvme_model_cfg c = in ? *in : (struct nvme_model_cfg){ 0 };

	if (!c.nns)
		c.nns = 1;
	if (!c.ns_blocks)
		c.ns_blocks = 2048;
	if (!c.lba_shift)
		c.lba_shift = 9;
	if (!c.mdts)
		c.mdts = 5;
	if (!c.mqes)
		c.mqes = 255;
	if (!c.max_ioq)
		c.max_ioq = 8;
	if (!c.msix)
		c.msix = (uint16_t)(c.max_ioq + 1);
	if (c.msix != NVME_MODEL_MSIX_NONE && c.msix > 2048)   /* PCI's MSI-X limit */
		return -EINVAL;
	if ((c.lba_shift != 9 && c.lba_shift != 12) || c.nns > NVME_MODEL_MAX_NS ||
	    c.max_ioq >= NVME_MODEL_NDB || c.ns_blocks > (1ull << 40) >> c.lba_shift)
		return -EINVAL;
	snprintf(m->sn, sizeof(m->sn), "%s", c.sn ? c.sn : "NVRMODEL0001");
	snprintf(m->mn, sizeof(m->mn), "%s", c.mn ? c.mn : "nvring model controller");
	c.sn = m->sn;
	c.mn = m->mn;
	m->cfg = c;
	return 0;
}

int nvme_model_create(const struct nvme_model_cfg *cfg, struct nvme_model **model,
		      struct nvr_pci_dev **devp)
{
	struct nvme_model *m = calloc(1, sizeof(*m));
	struct nvme_model_dev *d = calloc(1, sizeof(*d));
	int ret = -ENOMEM;

	if (!m || !d)
		goto err;
	pthread_rwlock_init(&m->map_lock, NULL);
	pthread_mutex_init(&m->faults.lock, NULL);
	ret = cfg_fill(m, cfg);
	if (ret)
		goto err;
	ret = -ENOMEM;
	m->ns_bytes = (size_t)m->cfg.ns_blocks << m->cfg.lba_shift;
	m->bar = aligned_alloc(NVME_MODEL_PAGE, NVME_MODEL_BAR_SIZE);
	m->ns = calloc(m->cfg.nns, sizeof(*m->ns));
	m->sq = calloc(m->cfg.max_ioq + 1u, sizeof(*m->sq));
	m->cq = calloc(m->cfg.max_ioq + 1u, sizeof(*m->cq));
	m->irq_fds = calloc(nvme_model_msix(m) + 1u, sizeof(*m->irq_fds));
	if (!m->bar || !m->ns || !m->sq || !m->cq || !m->irq_fds)
		goto err;
	for (unsigned i = 0; i < nvme_model_msix(m); i++)
		atomic_init(&m->irq_fds[i], -1);
	for (unsigned i = 0; i < m->cfg.nns; i++) {
		m->ns[i] = calloc(1, m->ns_bytes);
		if (!m->ns[i])
			goto err;
	}
	regs_reset(m);
	queues_reset(m);

	d->m = m;
	d->pci.ops = &model_ops;
	snprintf(d->pci.bdf, sizeof(d->pci.bdf), "model");
	nvme_model_internal_window(&d->pci.internal_iova_lo, &d->pci.internal_iova_hi);
	m->dev = d;
	ret = nvr_pci_dma_init(&d->pci);
	if (ret) {
		m->dev = NULL;
		goto err;
	}
#ifdef NVR_DMA_BACKEND_PINS
	/* Nothing to pin for a device in the same process: spare the tests'
	 * RLIMIT_MEMLOCK. */
	d->pci.dma_flags |= NVR_DMA_BACKEND_PINS;
#endif
	ret = -pthread_create(&m->thread, NULL, service, m);
	if (ret) {
		nvr_pci_dma_fini(&d->pci);
		m->dev = NULL;
		goto err;
	}
	m->thread_running = true;
	*model = m;
	*devp = &d->pci;
	return 0;
err:
	free(d);
	nvme_model_destroy(m);
	return ret;
}

void nvme_model_destroy(struct nvme_model *m)
{
	if (!m)
		return;
	if (m->dev)
		model_close(&m->dev->pci);
	stop_thread(m);
	for (unsigned i = 0; m->ns && i < m->cfg.nns; i++)
		free(m->ns[i]);
	free(m->ns);
	free(m->sq);
	free(m->cq);
	if (m->irq_fds)
		model_irq_close(m);
	free((void *)m->irq_fds);
	free(m->pend);
	free(m->maps);
	free(m->bar);
	pthread_rwlock_destroy(&m->map_lock);
	pthread_mutex_destroy(&m->faults.lock);
	free(m);
}

uint8_t *nvme_model_ns_data(struct nvme_model *m, uint32_t nsid)
{
	return nsid >= 1 && nsid <= m->cfg.nns ? m->ns[nsid - 1] : NULL;
}

struct nvr_pci_dev *nvme_model_dev(struct nvme_model *m)
{
	return m->dev ? &m->dev->pci : NULL;
}

void nvme_model_fail_next(struct nvme_model *m, enum nvme_model_qsel q, uint8_t opc,
			  uint16_t status, unsigned count)
{
	pthread_mutex_lock(&m->faults.lock);
	m->faults.fail_q = q;
	m->faults.fail_opc = opc;
	m->faults.fail_status = status;
	m->faults.fail_count = count;
	pthread_mutex_unlock(&m->faults.lock);
}

void nvme_model_wedge(struct nvme_model *m, bool on)
{
	atomic_store(&m->wedged, on);
}

void nvme_model_drop_next(struct nvme_model *m, enum nvme_model_qsel q, unsigned count)
{
	pthread_mutex_lock(&m->faults.lock);
	m->faults.drop_q = q;
	m->faults.drop_count = count;
	pthread_mutex_unlock(&m->faults.lock);
}

void nvme_model_delay_cpl(struct nvme_model *m, unsigned usec)
{
	pthread_mutex_lock(&m->faults.lock);
	m->faults.delay_us = usec;
	pthread_mutex_unlock(&m->faults.lock);
}

void nvme_model_request_removal(struct nvme_model *m)
{
	atomic_store_explicit(&m->removal_req, true, memory_order_release);
}

void nvme_model_set_cfs(struct nvme_model *m)
{
	atomic_store(&m->cfs_req, true);
}

void nvme_model_set_io_passive(struct nvme_model *m, bool on)
{
	atomic_store_explicit(&m->io_passive, on, memory_order_relaxed);
}

uint32_t nvme_model_queue_gen(struct nvme_model *m)
{
	return atomic_load_explicit(&m->queue_gen, memory_order_relaxed);
}

int nvme_model_io_queue(struct nvme_model *m, uint16_t qid, struct nvme_model_ioq *q)
{
	const struct nvme_model_sq *sq;
	const struct nvme_model_cq *cq;

	if (!qid || qid > m->cfg.max_ioq || !m->sq[qid].live)
		return -ENOENT;
	sq = &m->sq[qid];
	cq = &m->cq[sq->cqid];
	if (!cq->live)
		return -ENOENT;
	*q = (struct nvme_model_ioq){
		.sq = nvme_model_iova_va(m, sq->iova, (size_t)sq->size * 64),
		.cq = nvme_model_iova_va(m, cq->iova, (size_t)cq->size * 16),
		.sq_size = sq->size,
		.cq_size = cq->size,
		.sqid = qid,
		.sq_tail_db = (volatile uint32_t *)(m->bar + nvme_sq_tail_db(qid, 0)),
		.cq_head_db = (volatile uint32_t *)(m->bar + nvme_cq_head_db(sq->cqid, 0)),
		.gen = nvme_model_queue_gen(m),
	};
	return q->sq && q->cq ? 0 : -EFAULT;
}

uint16_t nvme_model_io_execute(struct nvme_model *m, const struct nvme_sqe *sqe, uint32_t *dw0)
{
	if (sqe->fuse_psdt)
		return NVME_MODEL_ST_GEN(NVME_SC_INVALID_FIELD);
	return nvme_model_io_exec(m, sqe, dw0);
}

struct nvme_model_stats nvme_model_get_stats(struct nvme_model *m)
{
	const struct nvme_model_counters *c = &m->st;
	struct nvme_model_stats s = {
#define LD(x) .x = atomic_load_explicit(&c->x, memory_order_relaxed)
		LD(cmds), LD(admin_cmds), LD(io_cmds), LD(errors), LD(sq_doorbells),
		LD(cq_doorbells), LD(bad_dbs), LD(prp_errors), LD(injected), LD(dropped),
		LD(bytes_read), LD(bytes_written), LD(enables), LD(disables),
		LD(shutdowns), LD(resets), LD(cq_full_waits), LD(io_sqs), LD(io_cqs),
		LD(bad_unmaps), LD(reserved_cids), LD(wz_deac), LD(ro_writes), LD(irqs),
#undef LD
	};

	s.irq_vectors = atomic_load_explicit(&m->nirq, memory_order_relaxed);

	pthread_rwlock_rdlock(&m->map_lock);
	s.dma_maps = m->nmaps;
	pthread_rwlock_unlock(&m->map_lock);
	return s;
}
