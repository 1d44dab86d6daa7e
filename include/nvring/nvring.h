/* SPDX-License-Identifier: MIT */
/*
 * nvring — a polled userspace NVMe driver. The embedded API.
 *
 * Shape (SPDK-like): attach a controller by PCI address, look at its
 * namespaces, allocate one queue pair per thread, submit commands with a
 * completion callback, poll the queue pair for completions, detach.
 *
 * Conventions
 *  - Every function that can fail returns 0 (or a count) on success and a
 *    negative errno on failure. Nothing here exits or aborts.
 *  - A queue pair is not thread safe: use it from one thread at a time. A
 *    controller handle may be shared; queue pair allocation and DMA
 *    allocation are thread safe.
 *  - Data buffers must be DMA memory: from nvr_dma_alloc(), or application
 *    memory made visible with nvr_dma_register(). Anything else is -EFAULT:
 *    the device never sees memory it was not given.
 *  - Submission writes the command into the submission queue; the doorbell
 *    is rung once per batch, by nvr_qpair_poll() or nvr_qpair_kick().
 *  - Completion callbacks run inside nvr_qpair_poll() (or nvr_qpair_free()),
 *    on the polling thread. A callback may submit new commands, on the same
 *    queue pair or another (its own request slot is free again by then);
 *    it must not poll or free the queue pair it was called from.
 *  - Faults are handled as Linux's nvme driver handles them. A command
 *    that fails with a status the controller allows to retry (no DNR) is
 *    sent again, up to 5 times, after the delay the controller asks for
 *    (CRD). A command outstanding longer than the I/O timeout
 *    (nvr_ctrlr_opts.io_timeout_ms) is aborted; still there one timeout
 *    later, the controller is reset. A reset (also on CSTS.CFS, an admin
 *    timeout, or nvr_ctrlr_reset()) keeps every queue pair usable: each
 *    recreates its queues at its next poll and sends its commands again
 *    (each a retry; out of retries: -EIO). Timeouts and recovery happen
 *    inside nvr_qpair_poll(): a queue pair nobody polls does not recover.
 *  - A controller that cannot be recovered (a reset failed, 8 resets in a
 *    minute, a queue deletion refused) is disabled: every queue pair's
 *    outstanding commands complete with -EIO at its next poll, and later
 *    calls return -EIO. A device that is gone (registers read all ones,
 *    hot-removed) the same with -ENODEV.
 */
#ifndef NVRING_NVRING_H
#define NVRING_NVRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NVR_API __attribute__((visibility("default")))

struct nvr_ctrlr;
struct nvr_qpair;

/* Options for nvr_ctrlr_attach(); zero means "default". */
struct nvr_ctrlr_opts {
	uint32_t admin_entries;   /* admin queue depth (default 64, min 32) */
	uint32_t io_entries;      /* default I/O queue depth (default 256) */
	uint32_t max_io_qpairs;   /* I/O queue pairs to request (default 16) */
	uint32_t flags;           /* NVR_ATTACH_* */
	uint32_t io_timeout_ms;   /* I/O command timeout (default: NVRING_IO_TIMEOUT
				   * seconds, else 30 s as Linux's io_timeout) */
};
#define NVR_ATTACH_NO_HUGEPAGES 0x1  /* DMA memory from locked 4 KiB pages only */

/* What the controller said about itself. Strings are NUL-terminated with
 * trailing blanks removed. */
struct nvr_ctrlr_info {
	char     bdf[16];
	uint16_t vid, ssvid;
	char     sn[21];
	char     mn[41];
	char     fr[9];
	uint32_t version;         /* VS register: major << 16 | minor << 8 */
	uint64_t cap;             /* CAP register */
	uint32_t nn;              /* number of namespaces (NN) */
	uint32_t max_xfer;        /* bytes per command (from MDTS; split above) */
	uint32_t max_io_qpairs;   /* I/O queue pairs granted */
	uint32_t max_io_entries;  /* CAP.MQES + 1 */
	bool     vwc;             /* volatile write cache present: flush matters */
	bool     write_zeroes;    /* ONCS: Write Zeroes supported */
	bool     dsm;             /* ONCS: Dataset Management supported */
};

/* A namespace's geometry. */
struct nvr_ns_info {
	uint32_t nsid;
	uint32_t lba_size;        /* bytes per logical block */
	uint64_t nlba;            /* size in logical blocks (NSZE) */
	uint64_t ncap;
	uint64_t nuse;
	uint16_t ms;              /* metadata bytes per block (0: none) */
	uint16_t noiob;           /* optimal I/O boundary in blocks (0: none) */
	uint8_t  dlfeat;          /* DLFEAT: bits 2:0 what deallocated blocks read
				   * as (1: zeroes); bit 3: Write Zeroes with
				   * DEAC deallocates */
};

/* What a completion carries to its callback. */
struct nvr_cpl {
	int      res;      /* 0, or a negative errno (see nvr_status_errno()) */
	uint16_t status;   /* NVMe status as SCT << 8 | SC; 0 on success */
	uint32_t dw0;      /* command specific */
};
typedef void (*nvr_cb)(void *cb_arg, const struct nvr_cpl *cpl);

/* A segment of DMA memory by bus address, for the I/O calls that skip
 * translation (nvr_io()). */
struct nvr_seg {
	uint64_t iova;
	uint32_t len;
};

enum nvr_io_op {
	NVR_IO_READ,
	NVR_IO_WRITE,
	NVR_IO_FLUSH,
	NVR_IO_WRITE_ZEROES,
	NVR_IO_DEALLOCATE,
	NVR_IO_WRITE_ZEROES_DEAC,   /* Write Zeroes with DEAC: the controller may
				     * deallocate the blocks (NVM Cmd Set 1.0
				     * §3.2.8); Linux uses it for a punched hole
				     * when DLFEAT says they then read zeroes */
};

/**
 * nvr_ctrlr_attach() - bring up the NVMe controller at PCI address @bdf.
 * @bdf:  "0000:00:02.0" (domain optional); the function must be bound to
 *        vfio-pci (see `nvring bind`).
 * @opts: NULL for defaults.
 * @out:  the controller handle.
 *
 * Opens the VFIO group and device, resets and enables the controller
 * (NVMe 2.0 §3.5.1), identifies it and its namespaces and asks for I/O
 * queues. Errors: -EINVAL NULL argument; -ENODEV no such PCI function
 * (or it reads all ones: gone); -ENXIO not bound to vfio-pci; -EBUSY IOMMU
 * group not viable; -EACCES/-EPERM no permission on /dev/vfio (no-IOMMU
 * mode: not root); -ENOTSUP no usable IOMMU model (no type1 v2 backend, a
 * no-IOMMU group whose vfio lacks the mode); -ENOMEM memory or
 * RLIMIT_MEMLOCK too low (no-IOMMU mode: no hugepages); -EOPNOTSUPP the controller lacks the NVM
 * command set or its minimum memory page (CAP.MPSMIN) exceeds 4 KiB;
 * -ETIMEDOUT the controller did not become ready within CAP.TO, or an
 * admin command timed out; -EIO controller fatal status (CSTS.CFS); an
 * admin command the controller refused: its status through
 * nvr_status_errno(). A one-line reason is printed to stderr.
 */
NVR_API int nvr_ctrlr_attach(const char *bdf, const struct nvr_ctrlr_opts *opts,
			     struct nvr_ctrlr **out);

/**
 * nvr_ctrlr_connect() - use a controller that an owner process serves
 * (`nvring serve BDF`, listening on @path, normally /run/nvring/BDF.sock)
 * instead of attaching it: many processes may connect to one owner, each
 * isolated from the others (see the README's "Many processes").
 * On a connected controller the io_uring ABI works as on an attached one
 * (nvr_uring_setup() and the other nvr_uring_* calls, nvr_ns_open()),
 * every ring living in the owner, which builds every NVMe command from the
 * ring's SQEs and moves data between the device and this process's memory
 * itself, as the kernel does; nvr_ctrlr_get_info() (bdf, vwc, max_xfer,
 * nn) and nvr_ns_get_info() answer from what the owner reported. The
 * queue-pair and DMA calls (nvr_qpair_alloc(), nvr_dma_*()) need the
 * device in this process and return -EOPNOTSUPP; so do reset and log
 * pages. nvr_ctrlr_detach() ends the connection. Threads each get their
 * own connection on first use; a fork() child gets its own and keeps the
 * rings and namespace descriptors it inherited.
 * If the owner dies, every ring's commands in flight complete with -ENODEV
 * and so does everything after (once the owner process has fully exited:
 * no DMA of it is still to come).
 * Errors: -EINVAL NULL argument; -ENOENT/-ECONNREFUSED no owner listening
 * at @path; -EACCES the owner refuses this user (one line says why);
 * -EPROTO not an nvring owner of this version; -ENOMEM.
 */
NVR_API int nvr_ctrlr_connect(const char *path, struct nvr_ctrlr **out);

/** nvr_ctrlr_connect_bdf() - nvr_ctrlr_connect() to the owner serving @bdf,
 *  at RUN_DIR/BDF.sock (RUN_DIR: $NVRING_RUN_DIR or /run/nvring; or
 *  $NVRING_SOCKET). -ENOENT when no owner serves it. */
NVR_API int nvr_ctrlr_connect_bdf(const char *bdf, struct nvr_ctrlr **out);

/** nvr_ctrlr_open() - the owner's controller when one serves @bdf
 *  (nvr_ctrlr_connect_bdf()), else nvr_ctrlr_attach(@bdf, @opts): the same
 *  program works either way, as far as the connected controller's calls
 *  reach (see nvr_ctrlr_connect()). */
NVR_API int nvr_ctrlr_open(const char *bdf, const struct nvr_ctrlr_opts *opts,
			   struct nvr_ctrlr **out);

/**
 * nvr_ctrlr_detach() - shut the controller down (CC.SHN normal) and release
 * the device and all its DMA mappings. Free every queue pair (and close
 * every ring on this controller) first: while any queue pair is allocated
 * detach does nothing and returns -EBUSY (with a one-line message). Also
 * -ETIMEDOUT / -ENODEV if the shutdown did not complete (the device is
 * released anyway); -EINVAL for NULL.
 */
NVR_API int nvr_ctrlr_detach(struct nvr_ctrlr *ctrlr);

/**
 * nvr_ctrlr_reset() - reset the controller (CC.EN 1→0→1, NVMe 2.0 §3.7.2)
 * and bring it back: commands in flight are sent again by their queue
 * pairs' next polls (as retries; see the conventions above), admin commands
 * in flight fail. Returns 0; -EIO (or -ENODEV) if the controller could not
 * be brought back and is now failed; -EDEADLK when called from inside the
 * library (a completion callback of an admin path); -EINVAL for NULL.
 */
NVR_API int nvr_ctrlr_reset(struct nvr_ctrlr *ctrlr);

/** nvr_ctrlr_resets() - controller resets so far (any cause). */
NVR_API uint64_t nvr_ctrlr_resets(const struct nvr_ctrlr *ctrlr);

/** nvr_ctrlr_get_info() - the controller's identity and limits. */
NVR_API const struct nvr_ctrlr_info *nvr_ctrlr_get_info(const struct nvr_ctrlr *ctrlr);

/**
 * nvr_ctrlr_ns_list() - the active namespace IDs, ascending.
 * Fills up to @max entries of @nsids; returns the number of active
 * namespaces (which may exceed @max).
 */
NVR_API int nvr_ctrlr_ns_list(const struct nvr_ctrlr *ctrlr, uint32_t *nsids, uint32_t max);

/**
 * nvr_ctrlr_get_log_page() - read log page @lid (NVMe 2.0 §5.16, Get Log
 * Page) from the start into @buf.
 * @lid:  Log Page Identifier, e.g. 0x01 Error Information (64-byte entries,
 *        newest first), 0x02 SMART / Health Information (512 bytes).
 * @nsid: the namespace the page is about; 0xffffffff for the controller as
 *        a whole (what SMART / Health wants unless per-namespace data is
 *        supported); 0 where the page has no namespace (Error Information).
 * @len:  bytes to read: a multiple of 4, at most 4096. A page shorter than
 *        @len leaves what the controller does not transfer as zeroes.
 *
 * Synchronous: one admin command, polled. The bytes are as the controller
 * wrote them (little endian; layouts in NVMe 2.0 Figures 205 and 207).
 * Errors: -EINVAL NULL @ctrlr or @buf, @len 0, not a multiple of 4 or over
 * 4096; -ENOMEM no DMA memory; -ETIMEDOUT the command timed out; -EIO the
 * controller failed; a status the controller returned (e.g. Invalid Log
 * Page, Invalid Namespace) through nvr_status_errno(), typically -EINVAL
 * or -EOPNOTSUPP.
 */
NVR_API int nvr_ctrlr_get_log_page(struct nvr_ctrlr *ctrlr, uint8_t lid, uint32_t nsid,
				   void *buf, size_t len);

/**
 * nvr_ctrlr_error_log_entries() - how many entries the controller's Error
 * Information log page holds (Identify Controller ELPE + 1, 1..256).
 * Errors as nvr_ctrlr_get_log_page(), without the @len ones.
 */
NVR_API int nvr_ctrlr_error_log_entries(struct nvr_ctrlr *ctrlr);

/** nvr_ns_get_info() - geometry of namespace @nsid; -ENOENT if not active. */
NVR_API int nvr_ns_get_info(const struct nvr_ctrlr *ctrlr, uint32_t nsid,
			    struct nvr_ns_info *info);

/**
 * nvr_qpair_alloc() - create an I/O submission/completion queue pair.
 * @entries: queue depth, 0 for the controller default; clamped to
 *           CAP.MQES + 1, at least 2.
 * Errors: -EINVAL NULL argument; -EBUSY all granted queue pairs are in
 * use; -ENOMEM; the controller refused the Create I/O CQ/SQ command: its
 * status through nvr_status_errno() (usually -EIO); -ETIMEDOUT the command
 * timed out (the controller is then failed, see above); -EIO the
 * controller failed before.
 */
NVR_API int nvr_qpair_alloc(struct nvr_ctrlr *ctrlr, uint32_t entries, struct nvr_qpair **out);

/** nvr_qpair_free() - delete the queue pair (SQ then CQ). Outstanding
 *  commands complete with -ECANCELED (-EIO on a failed controller). The
 *  queue pair is freed even when a Delete command fails; that error is
 *  returned (mapped as nvr_qpair_alloc()'s); -EINVAL for NULL. */
NVR_API int nvr_qpair_free(struct nvr_qpair *qp);

/** nvr_qpair_depth() - requests (and commands) the queue pair can have
 *  outstanding: min(entries - 1, 1024). Every one pins a 4 KiB PRP list
 *  page, hence the cap; the submission queue itself may be larger. */
NVR_API uint32_t nvr_qpair_depth(const struct nvr_qpair *qp);

/**
 * nvr_qpair_poll() - ring the SQ doorbell for commands submitted since the
 * last kick, then reap up to @max completions (0: all available), calling
 * their callbacks. Returns the number of completions reaped, or -EIO when
 * the controller has failed (CSTS.CFS): its commands complete with -EIO.
 */
NVR_API int nvr_qpair_poll(struct nvr_qpair *qp, uint32_t max);

/** nvr_qpair_kick() - ring the SQ doorbell now without reaping. */

/* What a queue pair went through, since it was allocated. */
struct nvr_qpair_stats {
	uint64_t retries;     /* commands sent again (retryable status, or after a reset) */
	uint64_t timeouts;    /* command timeouts seen (each leads to an Abort or a reset) */
	uint64_t aborts;      /* Abort commands sent */
	uint64_t resets;      /* controller resets this queue pair recovered from */
	uint64_t bad_cids;    /* completions naming no live command (ignored) */
};

/** nvr_qpair_get_stats() - copy @qp's counters into @st; -EINVAL for NULL. */
NVR_API int nvr_qpair_get_stats(const struct nvr_qpair *qp, struct nvr_qpair_stats *st);
NVR_API void nvr_qpair_kick(struct nvr_qpair *qp);

/**
 * nvr_read(), nvr_write() - transfer @nlb logical blocks at @lba of @nsid
 * to/from @buf (DMA memory). Transfers above the controller's maximum are
 * split; the callback runs once, with the first error if any part failed.
 * Transfers above the controller's maximum (nvr_ctrlr_info.max_xfer, from
 * MDTS; and 65536 blocks) are split into several commands, which may go
 * out over several polls; the callback runs once, with the first error.
 * Errors at submission: -EINVAL bad namespace, zero length or LBA
 * overflow; -EFAULT @buf is not DMA memory; -EAGAIN no request slot left
 * (poll, then retry); -EOPNOTSUPP the namespace's format has metadata
 * (nvr_ns_info.ms != 0: listed but not usable); -EIO the controller
 * failed; -EIO/-ECANCELED the queue pair failed or is being freed.
 * Errors in the completion: the NVMe status mapped by nvr_status_errno();
 * -EIO if the controller failed meanwhile.
 */
NVR_API int nvr_read(struct nvr_qpair *qp, uint32_t nsid, void *buf, uint64_t lba,
		     uint32_t nlb, nvr_cb cb, void *cb_arg);
NVR_API int nvr_write(struct nvr_qpair *qp, uint32_t nsid, const void *buf, uint64_t lba,
		      uint32_t nlb, nvr_cb cb, void *cb_arg);

/** nvr_readv(), nvr_writev() - as nvr_read()/nvr_write(), scattered. Every
 *  element boundary inside the transfer must fall on a 4 KiB page boundary
 *  (the PRP rule, NVMe 2.0 §4.1.1); else -EINVAL. */
NVR_API int nvr_readv(struct nvr_qpair *qp, uint32_t nsid, const struct iovec *iov, int iovcnt,
		      uint64_t lba, nvr_cb cb, void *cb_arg);
NVR_API int nvr_writev(struct nvr_qpair *qp, uint32_t nsid, const struct iovec *iov, int iovcnt,
		       uint64_t lba, nvr_cb cb, void *cb_arg);

/** nvr_flush() - commit the volatile write cache of @nsid (NVMe Flush). */
NVR_API int nvr_flush(struct nvr_qpair *qp, uint32_t nsid, nvr_cb cb, void *cb_arg);

/** nvr_write_zeroes() - zero @nlb blocks at @lba (-EOPNOTSUPP if the
 *  controller lacks Write Zeroes); split at 65536 blocks (or WZSL). Other
 *  errors as nvr_read(). */
NVR_API int nvr_write_zeroes(struct nvr_qpair *qp, uint32_t nsid, uint64_t lba, uint32_t nlb,
			     nvr_cb cb, void *cb_arg);

/** nvr_deallocate() - Dataset Management with the deallocate attribute
 *  (-EOPNOTSUPP if the controller lacks DSM); split at the controller's
 *  DSM limits. Other errors as nvr_read(). */
NVR_API int nvr_deallocate(struct nvr_qpair *qp, uint32_t nsid, uint64_t lba, uint32_t nlb,
			   nvr_cb cb, void *cb_arg);

/**
 * nvr_io() - the general form: @op on @nlb blocks at @lba with the data in
 * @segs (bus addresses, e.g. from nvr_dma_iova(); ignored for FLUSH,
 * WRITE_ZEROES and DEALLOCATE). No translation happens here: this is the
 * path for buffers registered once. Split at max_xfer like nvr_read().
 * The segments follow nvr_readv()'s PRP rule (-EINVAL), at most 32 of them
 * may be used (-EINVAL), and a segment that reaches into the driver's own
 * DMA memory (queues, PRP lists) is refused with -EFAULT, so a bad bus
 * address cannot corrupt a queue. Other errors as nvr_read().
 */
NVR_API int nvr_io(struct nvr_qpair *qp, enum nvr_io_op op, uint32_t nsid, uint64_t lba,
		   uint32_t nlb, const struct nvr_seg *segs, unsigned nseg,
		   nvr_cb cb, void *cb_arg);

/**
 * nvr_dma_alloc() - @len bytes of zeroed, 4 KiB aligned DMA memory.
 * Errors: -EINVAL NULL or zero @len; -ENOMEM (including RLIMIT_MEMLOCK,
 * with a line naming the fix; or IOVA space); -ENOSPC VFIO's limit of
 * 65,535 mappings per container.
 */
NVR_API int nvr_dma_alloc(struct nvr_ctrlr *ctrlr, size_t len, void **buf);
/** nvr_dma_free() - free memory from nvr_dma_alloc(). -EINVAL if @buf is
 *  not the start of a live allocation; -EBUSY while it is held
 *  (nvr_dma_hold(), or an nvr_dma_register() inside it): nothing is freed. */
NVR_API int nvr_dma_free(struct nvr_ctrlr *ctrlr, void *buf);

/**
 * nvr_dma_register() - pin application memory [@va, @va + @len) (4 KiB
 * aligned) and map it for DMA until nvr_dma_unregister().
 *
 * Memory that is already DMA memory is not mapped twice: a range entirely
 * inside one registered mapping adds a registration to that mapping (it
 * stays mapped until its last registration is dropped), and a range
 * entirely inside one nvr_dma_alloc() allocation takes a hold on that
 * allocation (nvr_dma_free() of it is -EBUSY until the matching
 * nvr_dma_unregister()). So independent users may register the same
 * buffer, each unregistering its own registration.
 *
 * Errors: -EINVAL NULL, misaligned or empty; -EEXIST overlaps DMA memory
 * without lying inside one mapping or allocation; -ENOMEM memlock or IOVA
 * space; -ENOSPC VFIO's 65,535-mapping limit; -EFAULT the kernel could
 * not pin the pages (not memory of this process, e.g. unmapped or PROT_NONE;
 * in VFIO no-IOMMU mode also read-only memory, and a range that is not
 * physically contiguous: register hugepage memory there, see README).
 */
NVR_API int nvr_dma_register(struct nvr_ctrlr *ctrlr, void *va, size_t len);
/**
 * nvr_dma_unregister() - drop one registration made by nvr_dma_register()
 * (@va: any address inside it, normally the @va registered). The last
 * registration of a mapping unmaps it, unless the mapping is held
 * (nvr_dma_hold()): then -EBUSY and it stays. -EINVAL: no registration
 * there.
 */
NVR_API int nvr_dma_unregister(struct nvr_ctrlr *ctrlr, void *va);

/**
 * nvr_dma_hold() - keep the DMA memory behind [@va, @va + @len) mapped
 * while it is in use, e.g. by a ring's registered buffers: the range must
 * lie inside one nvr_dma_alloc() allocation or one registered mapping; a
 * hold count on it goes up and *@iova is the bus address of @va. While
 * held, nvr_dma_free() / the last nvr_dma_unregister() of it return
 * -EBUSY, so its IOVA is never reused under a user that still has it.
 * Errors: -EFAULT no single allocation/mapping holds the range (or it was
 * freed); -EINVAL NULL; -ENOMEM.
 */
NVR_API int nvr_dma_hold(struct nvr_ctrlr *ctrlr, const void *va, size_t len, uint64_t *iova);
/** nvr_dma_unhold() - drop one nvr_dma_hold() on the allocation or mapping
 *  containing @va (any address inside it). -EINVAL if nothing is held
 *  there. */
NVR_API int nvr_dma_unhold(struct nvr_ctrlr *ctrlr, const void *va);

/** nvr_dma_iova() - bus address of [@va, @va + @len), which must lie in
 *  one DMA mapping (@len 0 counts as 1); -EFAULT otherwise; -EINVAL for a
 *  NULL argument. The address is valid only while the memory stays
 *  allocated/registered: to rely on it over time, use nvr_dma_hold(). */
NVR_API int nvr_dma_iova(struct nvr_ctrlr *ctrlr, const void *va, size_t len, uint64_t *iova);

/**
 * nvr_status_errno() - the errno the Linux kernel's nvme driver reports
 * for NVMe status @status (SCT << 8 | SC), as a negative number; 0 for
 * success. The table is in driver/status.c.
 */
NVR_API int nvr_status_errno(uint16_t status);

/** nvr_status_str() - a short name for an NVMe status. */
NVR_API const char *nvr_status_str(uint16_t status);

/*
 * Logging. The library writes nothing to stderr on its own: what it has to
 * say (why an attach failed, a namespace it skipped, a controller it
 * disabled) goes, one line per message, to the hook the application
 * installs, or, without a hook, where the NVRING_LOG environment variable
 * says, or nowhere.
 *
 * NVRING_LOG=LEVEL[:FILE], LEVEL one of off, err, warn, info, debug: lines
 * "nvring: MESSAGE" at LEVEL and more severe go to stderr, or are appended
 * to FILE (opened once, O_APPEND; if it cannot be opened they are dropped).
 * Unset or not understood: nothing is written. The variable is read once,
 * at the first message or log call.
 */
enum nvr_log_level {
	NVR_LOG_OFF = 0,   /* as a threshold: deliver nothing */
	NVR_LOG_ERR,       /* an operation failed; the message says why */
	NVR_LOG_WARN,      /* something was skipped or degraded, work goes on */
	NVR_LOG_INFO,      /* a notable event (a controller attached) */
	NVR_LOG_DEBUG,     /* detail for debugging nvring itself */
};

/* @msg is one line without a trailing newline, valid only during the call. */
typedef void (*nvr_log_fn)(void *arg, int level, const char *msg);

/**
 * nvr_set_log_hook() - send the library's messages to @fn (called with
 * @arg, the message's level and the message), instead of the NVRING_LOG
 * destination; NULL restores that default. Process-wide. @fn may be called
 * from any thread that calls into the library, concurrently, and must not
 * call nvr_set_log_hook() itself; a message already being delivered when
 * the hook changes may still reach the previous one.
 */
NVR_API void nvr_set_log_hook(nvr_log_fn fn, void *arg);

/**
 * nvr_set_log_level() - deliver only messages at @level and more severe
 * (NVR_LOG_OFF: none), to the hook or to the default destination. The
 * threshold starts at the NVRING_LOG level, or NVR_LOG_WARN when NVRING_LOG
 * is unset. Returns the previous threshold, or -EINVAL for a @level
 * outside NVR_LOG_OFF..NVR_LOG_DEBUG.
 */
NVR_API int nvr_set_log_level(int level);

#ifdef __cplusplus
}
#endif
#endif
