/* SPDX-License-Identifier: MIT */
/*
 * The controller object shared by the driver's files (not public): what
 * bring-up learned, the admin queue, the namespaces and the queue pair IDs.
 */
#ifndef NVRING_DRIVER_CTRLR_H
#define NVRING_DRIVER_CTRLR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "driver/nvme_spec.h"
#include "driver/queue.h"
#include "nvring/nvring.h"
#include "pci/pci.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "NVMe structures are little endian; nvring writes them natively");

#define NVR_ADMIN_ENTRIES_DEFAULT 64
#define NVR_ADMIN_ENTRIES_MIN     32
#define NVR_ADMIN_ENTRIES_MAX     4096   /* AQA.ASQS/ACQS are 12 bits */
#define NVR_IO_ENTRIES_DEFAULT    256
#define NVR_IO_QPAIRS_DEFAULT     16
#define NVR_MAX_XFER_NO_MDTS      (1u << 20)  /* MDTS = 0 ("no limit"): 1 MiB */
#define NVR_ADMIN_TIMEOUT_MS_MIN  5000
#define NVR_IO_TIMEOUT_MS_DEFAULT 30000  /* Linux's nvme_core.io_timeout */
#define NVR_MAX_RETRIES           5      /* Linux's nvme_core.max_retries */
/* More resets than this within NVR_RESET_WINDOW_MS: the controller is
 * failed instead (a reset that does not help must not loop for ever). */
#define NVR_RESETS_PER_WINDOW     8
#define NVR_RESET_WINDOW_MS       60000

/* Someone waiting for an admin command: a synchronous caller (done NULL:
 * completed, st and dw0 are set) or an asynchronous one (done is called,
 * under the admin queue lock, and must not issue admin commands). */
struct nvr_admin_op {
	void   (*done)(struct nvr_admin_op *op, uint16_t st, uint32_t dw0);
	bool     completed;
	uint16_t st;        /* raw CQE status field */
	uint32_t dw0;
};

/* The admin queue (NVMe 2.0 §3.3.1): the queue engine under a lock. Any
 * thread may submit; whoever holds the lock reaps for everyone. */
struct nvr_adminq {
	pthread_mutex_t  lock;
	struct nvr_queue q;
};

/* One active namespace. */
struct nvr_ns {
	struct nvr_ns_info info;
	uint32_t lba_shift;
	/* The LBA format carries metadata (ms != 0): nvring builds no
	 * metadata pointer and sizes PRPs for data only, so the device would
	 * move more (extended LBA) or DMA to MPTR 0 (separate). Listed, but
	 * every I/O command is refused at submission, as Linux does. */
	bool io_refused;
};

struct nvr_qpair;

struct nvr_remote;

struct nvr_ctrlr {
	/* Connected to an owner process (driver/remote.c): no device, no
	 * queues; info and ns are what the owner reported. */
	struct nvr_remote    *remote;
	struct nvr_pci_dev   *dev;
	volatile uint8_t     *bar;
	size_t                bar_len;
	uint64_t              cap;
	uint32_t              dstrd;
	uint32_t              ready_timeout_ms;   /* CAP.TO × 500 ms */
	uint32_t              admin_timeout_ms;
	struct nvr_ctrlr_opts opts;
	struct nvr_ctrlr_info info;
	struct nvr_adminq     adminq;
	/* Controller failed (CSTS.CFS, an admin timeout): set with release
	 * order only after nvr_ctrlr_fail() quiesced the device, so whoever
	 * sees it (acquire) may hand buffers back and free queue memory. */
	atomic_bool           failed;
	int                   fail_errno;         /* what everything ends with then: -EIO, -ENODEV */
	pthread_mutex_t       fail_lock;          /* one quiesce at a time */
	/* Resets: reset_seq is odd while one is under way and moves on by 2
	 * with each; queue pairs compare it with the value their queues were
	 * created under and recreate them when it moved (qpair.c recover()).
	 * reset_lock: held for reading by everyone issuing admin commands
	 * (nvr_ctrlr_enter()), for writing by the reset. */
	_Atomic uint32_t      reset_seq;
	pthread_rwlock_t      reset_lock;
	atomic_bool           reset_wanted;       /* asked for where a reset could not run */
	uint64_t              reset_times[NVR_RESETS_PER_WINDOW];
	uint32_t              nresets;
	uint32_t              io_timeout_ms;      /* 0: none */
	uint32_t              crdt_ms[3];         /* Identify CRDT1..3, in ms */
	/* The quiesce failed (RDY stuck, reset refused): the device may still
	 * DMA, so DMA memory is never freed piecemeal (its IOVA could be
	 * reused); closing the device unmaps it all from the IOMMU. */
	bool                  dma_unsafe;
	bool                  released;           /* ops->release_device() done (fail_lock) */

	/* Limits of non-data commands (NVM Identify Controller, CNS 06h);
	 * 0 = the command format's own limit. */
	uint32_t              wz_max_bytes;       /* WZSL */
	uint32_t              dsm_range_blocks;   /* DMRSL */
	uint32_t              dsm_ranges;         /* DMRL, 1..256 */
	uint64_t              dsm_cmd_blocks;     /* DMSL */

	/* IOVA window of driver-internal DMA memory (dev->internal_iova_*):
	 * nvr_io() refuses segments that reach into it. */
	uint64_t              internal_iova_lo, internal_iova_hi;

	struct nvr_ns        *ns;                 /* sorted by nsid */
	uint32_t              nns;

	/* Queue pair IDs 1..info.max_io_qpairs; qpairs[qid]: the live ones
	 * (detach refuses while any is allocated). */
	pthread_mutex_t       qid_lock;
	uint16_t             *free_qids;
	uint32_t              nfree_qids;
	struct nvr_qpair    **qpairs;

	void                 *scratch;            /* 4 KiB for Identify data */
	uint64_t              scratch_iova;
};

/**
 * nvr_ctrlr_attach_dev() - bring up the controller behind @dev (any pci
 * seam backend: VFIO or the test model). Takes ownership of @dev: on
 * failure it is closed (dev->ops->close) before returning; on success it
 * is closed by nvr_ctrlr_detach(). Errors as nvr_ctrlr_attach().
 */
int nvr_ctrlr_attach_dev(struct nvr_pci_dev *dev, const struct nvr_ctrlr_opts *opts,
			 struct nvr_ctrlr **out);

/* The namespace @nsid, or NULL if it is not active. */
const struct nvr_ns *nvr_ctrlr_find_ns(const struct nvr_ctrlr *ctrlr, uint32_t nsid);

/* driver/remote.c: a controller an owner serves (abi/serve_proto.h). */
static inline bool nvr_ctrlr_is_remote(const struct nvr_ctrlr *c) { return c->remote != NULL; }
struct nvs_msg;
/* One request and its reply on this thread's connection: the reply's ret,
 * or -ENODEV once the owner is gone (after its process exited). @sendfd:
 * an fd to pass along (-1: none); *@rfd: the one the reply carried. */
int  nvr_remote_call(struct nvr_ctrlr *c, struct nvs_msg *m, const void *pl, size_t plen,
		     void *rpl, size_t rmax, int sendfd, int *rfd);
bool nvr_remote_dead(const struct nvr_ctrlr *c);
/* Called on the first connection of a new process (a fork child). */
void nvr_remote_set_new_process(struct nvr_ctrlr *c, void (*fn)(struct nvr_ctrlr *c));
int  nvr_remote_detach(struct nvr_ctrlr *c);
int  nvr_remote_socket_path(const char *bdf, char *out, size_t len);

/* CSTS check, one MMIO read (not for every poll): all ones (the device is
 * gone) fails the controller with -ENODEV; CSTS.CFS resets it (at once, or
 * when the caller's nvr_ctrlr_leave() runs). True if either happened: the
 * caller's commands in flight are lost. */
bool nvr_ctrlr_check_fatal(struct nvr_ctrlr *ctrlr);

/* The device asked to be released (hot-remove, unbind: ops->
 * removal_requested()): fail the controller with -ENODEV, then hand the
 * device back (ops->release_device()). True if so. */
bool nvr_ctrlr_check_removed(struct nvr_ctrlr *ctrlr);

/*
 * nvr_ctrlr_reset_for() - the controller reset (NVMe 2.0 §3.7.2): CC.EN = 0
 * and CSTS.RDY = 0 within CAP.TO, so nothing queued is fetched or moved any
 * more; admin commands in flight end as "host aborted"; the admin queue is
 * set up again and the controller enabled; then every queue pair recreates
 * its I/O queues at its next poll and sends its commands again (qpair.c).
 * A reset that cannot be done (RDY stuck, enable fails, too many resets in
 * a row) fails the controller instead. @why is logged. Not with
 * nvr_ctrlr_enter() held (a reset is only asked for then:
 * ctrlr->reset_wanted). 0 or the negative errno the controller failed with.
 */
int nvr_ctrlr_reset_for(struct nvr_ctrlr *ctrlr, const char *why);

/* Around anything that issues admin commands (and must not see a reset
 * midway, e.g. creating queues and noting reset_seq): no reset runs in
 * between. Nests per thread. A reset asked for meanwhile runs at the
 * outermost leave. */
void nvr_ctrlr_enter(struct nvr_ctrlr *ctrlr);
void nvr_ctrlr_leave(struct nvr_ctrlr *ctrlr);

/*
 * nvr_ctrlr_fail() - the one "controller failed" path (CSTS.CFS, an admin
 * command that timed out): print @why once, disable the controller (CC.EN
 * = 0, wait CSTS.RDY = 0 bounded by CAP.TO; a function reset if that does
 * not work) so that it stops fetching commands and doing DMA, and only then
 * publish ctrlr->failed. Every queue pair then fails its commands with -EIO
 * at its next poll, and every later call returns -EIO. Idempotent; other
 * callers block until the first one has quiesced the device.
 */
void nvr_ctrlr_fail(struct nvr_ctrlr *ctrlr, const char *why);
/* nvr_ctrlr_fail() with the errno everything then ends with (-ENODEV for a
 * device that is gone). */
void nvr_ctrlr_fail_err(struct nvr_ctrlr *ctrlr, const char *why, int err);

/* True once the controller failed (acquire: the quiesce is done). */
static inline bool nvr_ctrlr_failed(const struct nvr_ctrlr *ctrlr)
{
	return atomic_load_explicit(&ctrlr->failed, memory_order_acquire);
}

/* Free driver DMA memory unless the device may still reach it. */
void nvr_ctrlr_dma_free(struct nvr_ctrlr *ctrlr, void *va);

/* admin.c */
int  nvr_adminq_init(struct nvr_ctrlr *ctrlr, uint32_t entries);
void nvr_adminq_fini(struct nvr_ctrlr *ctrlr);
/* Submit @cmd (its CID is assigned here) and wait for its completion.
 * Returns 0; a positive NVMe status (SCT << 8 | SC) if the controller
 * failed the command; -ETIMEDOUT after the admin timeout (the controller
 * is then reset: the command can no longer complete or DMA once
 * nvr_admin_cmd() returned); -EIO on CSTS.CFS (reset) or a controller that
 * failed; -EBUSY no free admin slot. *dw0 gets CQE DW0. Takes
 * nvr_ctrlr_enter() itself. */
int  nvr_admin_cmd(struct nvr_ctrlr *ctrlr, struct nvme_sqe *cmd, uint32_t *dw0);
/* The same without nvr_ctrlr_enter(): for the reset itself. */
int  nvr_admin_exec(struct nvr_ctrlr *ctrlr, struct nvme_sqe *cmd, uint32_t *dw0);
/* Submit @cmd without waiting: @op->done is called when it completes (or
 * with "host aborted" when a reset ends it). 0, -EBUSY no free slot, -EIO
 * the controller failed. */
int  nvr_admin_submit(struct nvr_ctrlr *ctrlr, const struct nvme_sqe *cmd,
		      struct nvr_admin_op *op);
/* End every admin command in flight as "host aborted" and rewind the
 * queue: only while the controller is disabled (the reset). */
void nvr_adminq_cancel_all(struct nvr_ctrlr *ctrlr);
int  nvr_admin_identify(struct nvr_ctrlr *ctrlr, uint8_t cns, uint8_t csi, uint32_t nsid,
			uint64_t iova);
int  nvr_admin_set_features(struct nvr_ctrlr *ctrlr, uint8_t fid, uint32_t cdw11,
			    uint32_t *dw0);
int  nvr_admin_create_cq(struct nvr_ctrlr *ctrlr, uint16_t qid, uint32_t entries,
			 uint64_t iova);
int  nvr_admin_create_sq(struct nvr_ctrlr *ctrlr, uint16_t qid, uint32_t entries,
			 uint64_t iova, uint16_t cqid);
int  nvr_admin_delete_queue(struct nvr_ctrlr *ctrlr, uint8_t opc, uint16_t qid);

/* An nvr_admin_cmd() result as a negative errno: a controller status goes
 * through nvr_status_errno() like any I/O status. */
static inline int nvr_admin_errno(int rc)
{
	return rc > 0 ? nvr_status_errno((uint16_t)rc) : rc;
}

/* Milliseconds on CLOCK_MONOTONIC, for bounded waits. */
uint64_t nvr_now_ms(void);

#endif
