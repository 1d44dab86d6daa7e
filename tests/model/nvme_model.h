/* SPDX-License-Identifier: MIT */
/*
 * A software NVMe controller for host unit tests (test code, never in
 * libnvring). It stands behind the pci seam (pci/pci.h) where VFIO stands in
 * production:
 *
 *   struct nvme_model *m;  struct nvr_pci_dev *dev;
 *   nvme_model_create(NULL, &m, &dev);   // defaults; dev->ops->map_bar, ...
 *   ... hand dev to the driver, drive I/O ...
 *   dev->ops->close(dev);                // the driver does this on detach
 *   nvme_model_destroy(m);               // namespaces live until here
 *
 * What it models (NVMe Base 2.0, NVM Command Set 1.0):
 *  - BAR0: 16 KiB of plain memory. CAP (MQES per cfg, CQR=1, TO=2 (1 s),
 *    DSTRD=0, CSS=NVM, MPSMIN=MPSMAX=0: 4 KiB pages only), VS 1.4.
 *    CC.EN 0→1 with valid AQA/ASQ/ACQ/CC sets CSTS.RDY after ~1 ms; invalid
 *    ones (zero/unaligned/unmapped admin queues, CC.MPS != 0, CC.CSS != 0)
 *    set CSTS.CFS instead. CC.EN 1→0 drops every queue and clears CSTS.
 *    CC.SHN sets CSTS.SHST to complete; the controller then stops fetching
 *    commands until it is reset.
 *  - One service thread serves the admin queue and every I/O queue round
 *    robin. It spins briefly when idle, then sleeps 50 µs per pass.
 *  - Doorbells (§3.1.3.22/23): an SQ tail >= the queue size, a CQ head
 *    outside the posted-but-unconsumed window, or any write to the doorbell
 *    of a queue that does not exist counts in stats.bad_dbs and is ignored.
 *    A full CQ is never overrun: the controller waits for the head doorbell.
 *  - Admin: Identify (CNS 0, 1, 2), Set/Get Features (Number of Queues,
 *    Volatile Write Cache), Create/Delete I/O CQ/SQ with the spec's checks,
 *    Abort (always "not aborted", dw0 bit 0 = 1), Get Log Page (below).
 *    Anything else: Invalid Opcode.
 *  - Get Log Page (§5.16), offset 0 only: Error Information (ELPE 3: four
 *    entries, newest first; every I/O completion with a non-zero status is
 *    logged: SQID, CID, status, LBA = CDW11:CDW10, NSID) and SMART / Health
 *    (NSID 0, FFFFFFFFh or an active one; temperature 313 K, spare 100%,
 *    threshold 10%, data units and host commands from successful Reads and
 *    Writes, media errors = completions with SCT 2, error log entries).
 *    Other LIDs: Invalid Log Page.
 *  - I/O: Read, Write, Flush, Write Zeroes, Dataset Management (deallocated
 *    blocks read back as zeroes). PRPs only (PSDT != 0 → Invalid Field).
 *  - DMA: dma_map hands out IOVAs from 0x1_0000_0000 up to 2^46 that never
 *    equal the VA, with a 4 KiB unmapped hole after every mapping;
 *    dma_map_internal the same from [2^46, 2^47), the device's
 *    internal_iova_lo/hi window for the driver's own memory; every PRP, queue
 *    and data access is resolved through the model's own table. An IOVA
 *    range not inside one mapping → Data Transfer Error, stats.prp_errors++.
 *
 * Status codes the model itself generates (all with DNR set):
 *   Invalid Opcode, Invalid Field (MDTS exceeded, PSDT/FUSE set, bad CNS,
 *   bad FID, PC=0 queue, ...), Invalid Namespace, LBA Out of Range,
 *   Data Transfer Error (unmapped IOVA), Invalid PRP Offset (PRP1 not dword
 *   aligned, PRP data/list entry not page aligned, PRP2 list pointer not
 *   qword aligned), Command Sequence Error (Number of Queues set after an
 *   I/O queue exists), and SCT 1: Completion Queue Invalid, Invalid Queue
 *   Identifier, Invalid Queue Size, Invalid Queue Deletion.
 *
 *  - MSI-X (cfg.msix vectors; default max_ioq + 1): the seam's irq_vectors
 *    reports the table size, irq_enable routes vectors to eventfds; an I/O
 *    CQ created with IEN (CDW11 bit 1) and IV (bits 31:16) gets 1 written
 *    to its vector's eventfd after every CQE posted to it (stats.irqs).
 *    An IV at or beyond the table size: Invalid Interrupt Vector. No
 *    interrupts for the admin CQ (the driver polls it), no coalescing.
 *
 * Gaps (on purpose): no INTx/MSI, no SGLs, no metadata transfer (a
 * metadata LBA format can be reported, cfg.ms), no Async Event Requests, one controller per model.
 */
#ifndef NVRING_TESTS_MODEL_NVME_MODEL_H
#define NVRING_TESTS_MODEL_NVME_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "pci/pci.h"

struct nvme_model;

/* Zero in any field means its default; cfg == NULL means all defaults. */
struct nvme_model_cfg {
	uint32_t nns;            /* active namespaces 1..nns (default 1) */
	uint64_t ns_blocks;      /* blocks per namespace (default 2048) */
	uint32_t lba_shift;      /* 9 or 12 (default 9) */
	uint8_t  mdts;           /* Identify MDTS: 2^n × 4 KiB per command
				  * (default 5 = 128 KiB); NVME_MODEL_MDTS_NONE
				  * reports 0 = no limit */
	uint16_t mqes;           /* CAP.MQES, 0's based (default 255) */
	bool     vwc;            /* volatile write cache present (default no) */
	uint16_t max_ioq;        /* I/O SQs and CQs granted at most (default 8) */
	uint16_t ms;             /* metadata bytes per block in the namespaces'
				  * LBA format (default 0). Reported only: the
				  * model moves no metadata, so I/O to such a
				  * namespace moves data only */
	bool     meta_ext;       /* FLBAS bit 4: metadata at the end of each
				  * block (extended LBA) rather than separate */
	uint16_t msix;           /* MSI-X table size (default max_ioq + 1);
				  * NVME_MODEL_MSIX_NONE: no MSI-X at all */
	const char *sn, *mn;     /* Identify SN/MN (defaults "NVRMODEL0001",
				  * "nvring model controller") */
};
#define NVME_MODEL_MDTS_NONE 0xff
#define NVME_MODEL_MSIX_NONE 0xffff

/* Model-local status codes nvme_spec.h does not carry (SCT 1). */
#define NVME_MODEL_SC_INVALID_QUEUE_DELETION 0x0c
#define NVME_MODEL_SC_INVALID_IRQ_VECTOR     0x08

/* Counters since create. Read with nvme_model_get_stats(). */
struct nvme_model_stats {
	uint64_t cmds;           /* commands fetched, all queues */
	uint64_t admin_cmds;     /* ... of which from the admin SQ */
	uint64_t io_cmds;        /* ... of which from I/O SQs */
	uint64_t errors;         /* completions posted with a non-zero status */
	uint64_t sq_doorbells;   /* SQ tail doorbell changes seen */
	uint64_t cq_doorbells;   /* CQ head doorbell changes seen */
	uint64_t bad_dbs;        /* invalid doorbell writes (see above) */
	uint64_t prp_errors;     /* IOVAs not inside a mapping, bad PRP offsets */
	uint64_t injected;       /* completions altered by nvme_model_fail_next */
	uint64_t dropped;        /* completions swallowed by nvme_model_drop_next */
	uint64_t bytes_read;     /* data moved namespace → host */
	uint64_t bytes_written;  /* data moved host → namespace */
	uint64_t enables;        /* CC.EN 0→1 that reached CSTS.RDY */
	uint64_t disables;       /* CC.EN 1→0 */
	uint64_t shutdowns;      /* CC.SHN requests completed */
	uint64_t resets;         /* ops->reset calls */
	uint64_t cq_full_waits;  /* passes where a command waited for CQ space */
	uint32_t io_sqs, io_cqs; /* I/O queues that exist now */
	uint32_t dma_maps;       /* live mappings in the model's IOVA table;
				  * after ops->close, the ones nobody unmapped */
	uint32_t bad_unmaps;     /* dma_unmap calls that matched no mapping */
	uint64_t ro_writes;      /* device writes refused: the range is mapped
				  * read-only (dma_map_internal_ro) */
	uint64_t wz_deac;        /* Write Zeroes commands with DEAC set */
	uint64_t irqs;           /* MSI-X interrupts signalled (eventfd writes) */
	uint32_t irq_vectors;    /* vectors enabled by irq_enable (0: none) */
	uint64_t reserved_cids;  /* commands fetched with CID FFFFh, which the
				  * host should not use (NVMe 2.0 §4.2: the
				  * Error Information log means "no command") */
};

/* Which queues a fault hook applies to. */
enum nvme_model_qsel {
	NVME_MODEL_Q_ANY,
	NVME_MODEL_Q_ADMIN,
	NVME_MODEL_Q_IO,
};

/* OR into the status of nvme_model_fail_next() to set Do Not Retry. */
#define NVME_MODEL_DNR 0x8000
/* ... or to ask for a Command Retry Delay: CRD @n (1..3, an index into
 * Identify's CRDT). */
#define NVME_MODEL_CRD(n) ((uint16_t)((n) << 11))

/**
 * nvme_model_create() - a new controller with its namespaces (zeroed) and
 * a running service thread. *dev is its pci seam device (ops: map_bar for
 * BAR 0 only, dma_map, dma_unmap, reset, close); its DMA table is already
 * initialised with nvr_pci_dma_init(), and dma_flags has
 * NVR_DMA_BACKEND_PINS (nothing needs pinning for an in-process device, so
 * pci/dma.c skips mlock and tests don't hit RLIMIT_MEMLOCK). Errors: -EINVAL bad cfg (lba_shift
 * not 9/12, mqes < 1, nns > 1024), -ENOMEM, or pthread_create's error.
 */
int nvme_model_create(const struct nvme_model_cfg *cfg, struct nvme_model **model,
		      struct nvr_pci_dev **dev);

/** nvme_model_destroy() - free the model. If its device was not closed yet,
 *  it is closed first (service thread stopped, DMA table torn down). */
void nvme_model_destroy(struct nvme_model *m);

/** nvme_model_ns_data() - the RAM behind namespace @nsid (ns_blocks <<
 *  lba_shift bytes), for tests to seed and inspect; NULL if not active. */
uint8_t *nvme_model_ns_data(struct nvme_model *m, uint32_t nsid);

/** nvme_model_dev() - the model's pci device, NULL once closed. */
struct nvr_pci_dev *nvme_model_dev(struct nvme_model *m);

/**
 * nvme_model_fail_next() - the next @count commands with opcode @opc on the
 * queues @q select are not executed and complete with @status
 * (SCT << 8 | SC, optionally | NVME_MODEL_DNR). A new call replaces the
 * previous one; @count 0 cancels.
 */
void nvme_model_fail_next(struct nvme_model *m, enum nvme_model_qsel q, uint8_t opc,
			  uint16_t status, unsigned count);

/** nvme_model_drop_next() - the next @count commands on queues @q execute
 *  but post no completion (as if lost). @count 0 cancels. */
void nvme_model_drop_next(struct nvme_model *m, enum nvme_model_qsel q, unsigned count);

/** nvme_model_delay_cpl() - from now on every completion is posted no
 *  earlier than @usec after its command was fetched (0: at once). The data
 *  moves at fetch time; only the CQE is late. */
void nvme_model_delay_cpl(struct nvme_model *m, unsigned usec);

/** nvme_model_set_cfs() - controller fatal status: CSTS.CFS = 1 and the
 *  controller stops processing until CC.EN 1→0 or ops->reset. */
void nvme_model_set_cfs(struct nvme_model *m);

/** nvme_model_wedge() - while @on, CC.EN 1→0 is ignored (CSTS.RDY stays
 *  1, queues stay) and ops->reset fails: a controller that cannot be
 *  quiesced. */
void nvme_model_wedge(struct nvme_model *m, bool on);

/** nvme_model_request_removal() - the device asks to be released, as a
 *  VFIO device request does before a hot-remove: from now on the seam's
 *  ops->removal_requested() answers true. The device keeps working. */
void nvme_model_request_removal(struct nvme_model *m);

/*
 * Hostile-device hooks (tests/fuzz/fuzz_cpl.c): with passive mode on, the
 * service thread leaves every I/O queue alone (no fetching, no CQ
 * doorbell checks; the admin queue is served as before), and the test
 * plays the device on them from its own thread: it reads the SQ tail
 * doorbell, fetches SQEs, runs them with nvme_model_io_execute() and
 * writes whatever CQEs it likes. Read the queues with
 * nvme_model_io_queue() only between driver calls: an admin command that
 * changes them completes (CQE release, driver acquire) before the call
 * that sent it returns.
 */
struct nvme_model_ioq {
	struct nvme_sqe *sq;            /* the host's SQ memory, sq_size entries */
	struct nvme_cqe *cq;            /* the CQ it posts to, cq_size entries */
	uint32_t sq_size, cq_size;
	uint16_t sqid;
	volatile uint32_t *sq_tail_db;  /* in BAR0, as the host writes them */
	volatile uint32_t *cq_head_db;
	uint32_t gen;                   /* nvme_model_queue_gen() when read */
};
struct nvme_sqe;
void nvme_model_set_io_passive(struct nvme_model *m, bool on);
/** nvme_model_queue_gen() - bumped by every I/O queue creation and by every
 *  controller reset (CC.EN 1→0, ops->reset): a changed value means the
 *  queues a test looked at may be gone. */
uint32_t nvme_model_queue_gen(struct nvme_model *m);
/** nvme_model_io_queue() - I/O SQ @qid and its CQ; -ENOENT if absent,
 *  -EFAULT if their memory is not mapped. */
int nvme_model_io_queue(struct nvme_model *m, uint16_t qid, struct nvme_model_ioq *q);
/** nvme_model_io_execute() - run one I/O command as the controller would
 *  (data moves, PRPs checked: stats.prp_errors); its status (SCT << 8 |
 *  SC | NVME_MODEL_DNR), *dw0 its DW0. */
uint16_t nvme_model_io_execute(struct nvme_model *m, const struct nvme_sqe *sqe, uint32_t *dw0);

/** nvme_model_iova_read_only() - true if @iova lies in a mapping the host
 *  made read-only for the device (dma_map_internal_ro). */
bool nvme_model_iova_read_only(struct nvme_model *m, uint64_t iova);

/** nvme_model_get_stats() - a snapshot of the counters. */
struct nvme_model_stats nvme_model_get_stats(struct nvme_model *m);

#endif
