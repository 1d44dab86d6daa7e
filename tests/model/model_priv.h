/* SPDX-License-Identifier: MIT */
/*
 * Internals of the software NVMe controller (tests/model/): shared between
 * the controller core (model_ctrl.c), the IOVA table and PRP walker
 * (model_dma.c), the admin command set (model_admin.c) and the NVM command
 * set (model_io.c). Everything non-static is prefixed nvme_model_ so the
 * model links next to libnvring without clashes.
 */
#ifndef NVRING_TESTS_MODEL_PRIV_H
#define NVRING_TESTS_MODEL_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "driver/nvme_spec.h"
#include "tests/model/nvme_model.h"

#define NVME_MODEL_BAR_SIZE   0x4000u
#define NVME_MODEL_PAGE       4096u         /* CC.MPS = 0 is the only page size */
#define NVME_MODEL_NDB        ((NVME_MODEL_BAR_SIZE - NVME_REG_DBS) / 8u) /* doorbell pairs */
#define NVME_MODEL_MAX_NS     1024u

/* A status as handlers return it: SCT << 8 | SC, plus NVME_MODEL_DNR. */
#define NVME_MODEL_ST(sct, sc) ((uint16_t)(NVME_MODEL_DNR | ((sct) << 8) | (sc)))
#define NVME_MODEL_ST_GEN(sc)  NVME_MODEL_ST(NVME_SCT_GENERIC, sc)
#define NVME_MODEL_ST_CMD(sc)  NVME_MODEL_ST(NVME_SCT_CMD_SPECIFIC, sc)

/* One IOVA mapping made through ops->dma_map. */
struct nvme_model_map {
	uint8_t  *va;
	uint64_t  iova;
	size_t    len;
	bool      ro;        /* dma_map_internal_ro: the device may only read it */
};

struct nvme_model_sq {
	bool     live;
	uint32_t size;        /* entries (1's based) */
	uint64_t iova;        /* base, page aligned, physically contiguous */
	uint32_t head, tail;  /* head: next to fetch; tail: last doorbell value */
	uint32_t db_last;     /* doorbell value last seen (valid or not) */
	uint16_t cqid;
};

struct nvme_model_cq {
	bool     live;
	uint32_t size;
	uint64_t iova;
	uint32_t head, tail;  /* head: host's doorbell; tail: next slot to post */
	uint32_t db_last;
	uint8_t  phase;       /* phase tag of the entries being posted now */
	uint32_t pending;     /* completions owed to this CQ, not yet posted */
	uint32_t nsq;         /* SQs bound to it */
	bool     ien;         /* created with interrupts enabled */
	uint16_t iv;          /* its MSI-X vector */
};

/* A completion waiting for its due time (nvme_model_delay_cpl). */
struct nvme_model_pcpl {
	uint64_t due_ns;
	uint32_t dw0;
	uint16_t sqid, cqid, cid, status, sqhd;
};

enum nvme_model_state {
	NVME_MODEL_DISABLED,
	NVME_MODEL_ENABLING,  /* CC.EN = 1 seen, CSTS.RDY after ready_at */
	NVME_MODEL_READY,
	NVME_MODEL_SHUTDOWN,  /* CSTS.SHST complete: no more fetching */
	NVME_MODEL_FAILED,    /* CSTS.CFS */
};

struct nvme_model_faults {
	pthread_mutex_t lock;
	enum nvme_model_qsel fail_q;
	uint8_t  fail_opc;
	uint16_t fail_status;
	unsigned fail_count;
	enum nvme_model_qsel drop_q;
	unsigned drop_count;
	unsigned delay_us;
};

struct nvme_model_counters {
	_Atomic uint64_t cmds, admin_cmds, io_cmds, errors, sq_doorbells, cq_doorbells,
		bad_dbs, prp_errors, injected, dropped, bytes_read, bytes_written,
		enables, disables, shutdowns, resets, cq_full_waits, reserved_cids,
		wz_deac, ro_writes, irqs;
	_Atomic uint32_t io_sqs, io_cqs, bad_unmaps;
};

/* What the SMART / Health and Error Information log pages report. */
#define NVME_MODEL_ELPE 3                 /* Identify ELPE: 4 error log entries */
struct nvme_model_log {
	uint64_t host_reads, host_writes;  /* successful Read / Write commands */
	uint64_t media_errors;             /* completions with SCT 2 (media) */
	uint64_t error_count;              /* errors logged so far (entry ids) */
	struct nvme_error_log ring[NVME_MODEL_ELPE + 1];   /* newest at [head] */
	unsigned head;
};

struct nvme_model_dev;

struct nvme_model {
	struct nvme_model_cfg cfg;        /* defaults filled in */
	char sn[21], mn[41];
	uint8_t *bar;                      /* BAR0, 16 KiB */
	uint8_t **ns;                      /* ns[0..nns-1]: namespace nsid = i + 1 */
	size_t ns_bytes;

	struct nvme_model_dev *dev;        /* NULL once closed */
	pthread_t thread;
	bool thread_running;
	atomic_bool stop;
	atomic_bool reset_req;             /* ops->reset asks, the thread does it */
	atomic_bool cfs_req;
	atomic_bool wedged;                /* nvme_model_wedge(): no reset works */
	/* nvme_model_set_io_passive(): the I/O queues are left to the test
	 * (a hostile device, tests/fuzz/fuzz_cpl.c); queue_gen counts I/O
	 * queue creations and controller resets, so it knows when its view
	 * of the queues is stale. */
	atomic_bool io_passive;
	_Atomic uint32_t queue_gen;

	/* Service thread only from here on (no lock needed). */
	enum nvme_model_state state;
	uint64_t ready_at_ns;
	uint32_t cc_last;
	struct nvme_model_sq *sq;          /* [0..max_ioq], 0 = admin */
	struct nvme_model_cq *cq;
	uint32_t stray_db[NVME_MODEL_NDB][2]; /* last value of absent queues' doorbells */
	struct nvme_model_pcpl *pend;
	unsigned npend, pend_cap;
	uint16_t nsqa, ncqa;               /* granted by Number of Queues */
	bool nq_set;
	bool wce;

	/* IOVA table, sorted by iova; written by host threads. */
	pthread_rwlock_t map_lock;
	struct nvme_model_map *maps;
	unsigned nmaps, maps_cap;

	struct nvme_model_faults faults;
	struct nvme_model_counters st;

	/* Log pages (model_log.c); service thread only. */
	struct nvme_model_log log;
	atomic_bool removal_req;           /* nvme_model_request_removal() */

	/* MSI-X: cfg.msix entries (0: none); irq_fds[v] the eventfd vector v
	 * signals, -1 while not enabled. Written by the host (irq_enable,
	 * before any CQ names the vector), read by the service thread. */
	_Atomic int *irq_fds;
	_Atomic uint32_t nirq;
};

struct nvme_model_dev {
	struct nvr_pci_dev pci;            /* first: the seam casts */
	struct nvme_model *m;
};

/* model_dma.c */
int  nvme_model_dma_map(struct nvr_pci_dev *dev, void *va, size_t len, uint64_t *iova);
int  nvme_model_dma_map_internal(struct nvr_pci_dev *dev, void *va, size_t len, uint64_t *iova);
int  nvme_model_dma_map_internal_ro(struct nvr_pci_dev *dev, void *va, size_t len, uint64_t *iova);
void nvme_model_internal_window(uint64_t *lo, uint64_t *hi);
int  nvme_model_dma_unmap(struct nvr_pci_dev *dev, void *va, size_t len, uint64_t iova);
void *nvme_model_iova_va(struct nvme_model *m, uint64_t iova, size_t len);
/* The same for a device write: NULL (and stats.ro_writes++) if the range
 * is mapped read-only. */
void *nvme_model_iova_va_w(struct nvme_model *m, uint64_t iova, size_t len);
uint16_t nvme_model_prp_xfer(struct nvme_model *m, const struct nvme_sqe *sqe,
			     void *buf, size_t len, bool to_host);

/* model_admin.c, model_io.c: execute one command, return its status. */
uint16_t nvme_model_admin_exec(struct nvme_model *m, const struct nvme_sqe *sqe, uint32_t *dw0);
uint16_t nvme_model_io_exec(struct nvme_model *m, const struct nvme_sqe *sqe, uint32_t *dw0);

/* model_log.c: Get Log Page, and the bookkeeping behind it for one
 * completed command (status as handlers return it). */
uint16_t nvme_model_get_log_page(struct nvme_model *m, const struct nvme_sqe *sqe);
void nvme_model_log_cpl(struct nvme_model *m, uint16_t sqid, const struct nvme_sqe *sqe,
			uint16_t status);

/* model_ctrl.c: queue bookkeeping for the admin commands. */
/* Zero one doorbell of @qid: the SQ tail when that SQ is created or
 * deleted, the CQ head for its CQ. Only that queue's own doorbell: an SQ
 * going away must not rewind the head of a CQ that lives on. */
enum { NVME_MODEL_DB_SQ = 0, NVME_MODEL_DB_CQ = 1 };
void nvme_model_queue_db_reset(struct nvme_model *m, uint16_t qid, int which);
void nvme_model_drop_pending_sq(struct nvme_model *m, uint16_t sqid);
/* The MSI-X table size (0: no MSI-X). */
static inline unsigned nvme_model_msix(const struct nvme_model *m)
{
	return m->cfg.msix == NVME_MODEL_MSIX_NONE ? 0 : m->cfg.msix;
}

static inline void nvme_model_count(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* BAR0 access. The host writes with volatile MMIO stores; the model reads
 * with acquire loads so that SQ entries written before a doorbell are
 * visible once the doorbell is. */
static inline uint32_t nvme_model_rd32(const struct nvme_model *m, uint32_t off)
{
	return __atomic_load_n((const uint32_t *)(m->bar + off), __ATOMIC_ACQUIRE);
}
static inline uint64_t nvme_model_rd64(const struct nvme_model *m, uint32_t off)
{
	return (uint64_t)nvme_model_rd32(m, off) | (uint64_t)nvme_model_rd32(m, off + 4) << 32;
}
static inline void nvme_model_wr32(struct nvme_model *m, uint32_t off, uint32_t v)
{
	__atomic_store_n((uint32_t *)(m->bar + off), v, __ATOMIC_RELEASE);
}

#endif
