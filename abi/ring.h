/* SPDX-License-Identifier: MIT */
/*
 * The emulated io_uring instance (internal to abi/): the ring memory shared
 * with the application, the requests between SQE and CQE, and the
 * acquire/release accessors for the shared head/tail words.
 *
 * Who writes what (the kernel's split, io_uring(7)):
 *   SQ tail, SQ array, SQEs, CQ head: the application  -> we load-acquire
 *   SQ head, SQ flags, SQ dropped, CQ tail, CQEs:      us -> we store-release
 */
#ifndef NVRING_ABI_RING_H
#define NVRING_ABI_RING_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "abi/served.h"
#include "nvring/nvring.h"
#include "nvring/uring.h"

/* The kernel's limits (io_uring/io_uring.c, rsrc.c, Linux 6.1). */
#define UR_MAX_ENTRIES      32768u
#define UR_MAX_CQ_ENTRIES   (2u * UR_MAX_ENTRIES)
#define UR_MAX_REG_BUFFERS  (1u << 14)
#define UR_MAX_FIXED_FILES  (1u << 20)
#define UR_MAX_BUF_LEN      (1ul << 30)            /* SZ_1G per registered buffer */
#define UR_UIO_MAXIOV       1024
#define UR_MAX_RW_COUNT     (0x7fffffffu & ~4095u) /* INT_MAX & PAGE_MASK */
#define UR_TASK_SIZE_MAX    0x00007ffffffff000ull  /* x86-64 access_ok() limit */
#define UR_PAGE             4096u
#define UR_ZERO_BYTES       (256u * 1024)          /* the zero buffer (bounce.c) */
#define UR_BIG_KEEP         (64u << 20)            /* large extent kept up to this */
#define UR_NVR_MAX_SEGS     32u                    /* nvr_io()'s segment limit */

/* sqe->flags the kernel knows (SQE_VALID_FLAGS) and the link flags. */
#define UR_SQE_VALID (IOSQE_FIXED_FILE | IOSQE_IO_DRAIN | IOSQE_IO_LINK | IOSQE_IO_HARDLINK | \
		      IOSQE_ASYNC | IOSQE_BUFFER_SELECT | IOSQE_CQE_SKIP_SUCCESS)
#define UR_SQE_LINK  (IOSQE_IO_LINK | IOSQE_IO_HARDLINK)

/* Setup flags we accept (see uring.h). */
#define UR_SETUP_OK (IORING_SETUP_IOPOLL | IORING_SETUP_SQPOLL | IORING_SETUP_SQ_AFF | \
		     IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | IORING_SETUP_SUBMIT_ALL | \
		     IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | \
		     IORING_SETUP_SQE128 | IORING_SETUP_CQE32 | IORING_SETUP_SINGLE_ISSUER | \
		     IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED | \
		     IORING_SETUP_NO_SQARRAY)

/* What we truly implement. Not SINGLE_MMAP: the SQ and CQ rings are two
 * regions of the memfd. */
#define UR_FEATURES (IORING_FEAT_NODROP | IORING_FEAT_SUBMIT_STABLE | IORING_FEAT_RW_CUR_POS | \
		     IORING_FEAT_SQPOLL_NONFIXED | IORING_FEAT_EXT_ARG | IORING_FEAT_CQE_SKIP)

/* ---- the fd table: rings and namespace descriptors by fd number ---- */

enum ur_kind { UR_RING = 1, UR_NS = 2, UR_RRING = 3 /* served by an owner: client.c */ };

struct ur_obj {
	enum ur_kind kind;
	int fd;
	_Atomic int refs;          /* the fd table holds one; file tables one each */
};

struct ur_ns {
	struct ur_obj obj;
	struct nvr_ctrlr *ctrlr;
	const struct nvr_ns *dns;  /* the driver's namespace of nsid (fixed after
				    * nvr_ctrlr_init()): the ring's I/O skips the lookup */
	uint32_t nsid;
	uint32_t lba_size, lba_shift;
	uint64_t bytes;            /* namespace size: the block device's size */
	uint8_t dlfeat;            /* nvr_ns_info.dlfeat: may PUNCH_HOLE use DEAC */
	_Atomic uint64_t fpos;     /* the file position, for offset -1 (RW_CUR_POS) */
	bool own_fd;               /* nvr_ns_open()'s memfd (closed by nvr_ns_close) */
};

int  ur_fdtab_put(struct ur_obj *o);            /* publish o at o->fd */

/* The table itself (fdtab.c), two levels of FDTAB_PAGE slots, so that the
 * lookup every enter starts with is inlined. */
#define UR_FDTAB_PAGE   1024u
#define UR_FDTAB_PAGES  1024u      /* fds below 1 M */
typedef _Atomic(struct ur_obj *) ur_fdslot_t;
extern _Atomic(ur_fdslot_t *) ur_fdtab[UR_FDTAB_PAGES];

/* Lock-free lookup, NULL if none. */
static inline struct ur_obj *ur_fdtab_get(int fd)
{
	if (fd < 0 || (unsigned)fd >= UR_FDTAB_PAGE * UR_FDTAB_PAGES)
		return NULL;
	/* acquire: pairs with the release stores in ur_fdtab_put() */
	ur_fdslot_t *page = atomic_load_explicit(&ur_fdtab[(unsigned)fd / UR_FDTAB_PAGE],
						 memory_order_acquire);
	if (!page)
		return NULL;
	return atomic_load_explicit(&page[(unsigned)fd % UR_FDTAB_PAGE], memory_order_acquire);
}
void ur_fdtab_del(int fd);
struct ur_ns *ur_ns_get(int fd);                /* +1 ref, NULL if not a namespace */
void ur_ns_put(struct ur_ns *ns);               /* -1 ref, frees at 0 */
int  ur_ns_make(struct nvr_ctrlr *ctrlr, uint32_t nsid, struct ur_ns **out);  /* unpublished, 1 ref */
int  ur_memfd(const char *name);                /* memfd_create at the fd floor */
int  ur_memfd_flags(const char *name, unsigned flags);   /* ... with MFD_* @flags */
int  ur_fd_raise(int fd);                       /* @fd moved to the fd floor (closed on error) */

/* client.c: rings on a controller an owner serves (nvr_ctrlr_connect()).
 * The ur_remote_* take the error their caller found for an fd that is not
 * one of our own rings and return it when it is not a served one either. */
int  ur_client_setup(struct nvr_ctrlr *ctrlr, unsigned entries, struct io_uring_params *p);
void ur_client_hook(struct nvr_ctrlr *c);
int  ur_remote_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags,
		     const void *arg, size_t argsz, int err);
int  ur_remote_register(int fd, unsigned opcode, void *arg, unsigned nr_args, int err);
int  ur_remote_close(int fd);
int  ur_remote_ns_bind(struct nvr_ctrlr *c, int fd, uint32_t nsid);
void ur_remote_ns_unbind(struct nvr_ctrlr *c, int fd);

/* ---- requests ---- */

/* req->rflags: the kernel's REQ_F_* that matter here, and our own. */
#define UR_F_FAIL        0x01  /* failed: cancels the rest of a non-hard link */
#define UR_F_CQE_SKIP    0x02  /* post no CQE */
#define UR_F_SKIP_LINK   0x04  /* failed with CQE_SKIP_SUCCESS: canceled links post none */
#define UR_F_DRAIN       0x08  /* wait for everything submitted before it */
#define UR_F_CUR_POS     0x10  /* offset -1: use and advance the file position */
#define UR_F_HAS_ERR     0x20  /* import failed at submission: complete with err at issue */
#define UR_F_OWN_DMA     0x40  /* bounce memory: the ring's large extent, not the pool */
#define UR_F_NO_FAIL     0x80  /* FSYNC/FALLOCATE past file lookup: an error
				* result does not fail the request (links go on) */
#define UR_F_NS_REF      0x100 /* req->ns is referenced (a non-fixed file) */
#define UR_F_ZERO_FILL   0x200 /* Write Zeroes emulated by writes of the zero buffer */
#define UR_F_KRING       0x400 /* forwarded to the hidden kernel ring (kring.c) */
#define UR_F_FAULT_EIO   0x800 /* cut short by a fault in a multi-bio transfer:
				* the prefix moves, the result is -EIO (ops.c) */

struct ur_req {
	struct ur_req *next;      /* free list, defer/retry/done/overflow queues */
	struct ur_req *link;      /* next member of the chain */
	struct ur_ring *ring;
	uint64_t user_data;
	int32_t  res;
	uint32_t want;            /* the byte count a full transfer returns: a
				   * read/write completing with fewer bytes fails */
	uint8_t  opcode;
	uint8_t  sqe_flags;
	uint16_t rflags;
	int32_t  err;             /* with UR_F_HAS_ERR */

	/* The operation, decoded at submission (SUBMIT_STABLE). */
	struct ur_ns *ns;         /* the file; referenced with UR_F_NS_REF */
	uint64_t off;
	uint64_t addr;
	uint32_t len;
	uint32_t rw_flags;
	uint16_t buf_index;
	int32_t  fd;

	/* Timeouts (abi/timeout.c): TIMEOUT, LINK_TIMEOUT, TIMEOUT_REMOVE,
	 * ASYNC_CANCEL. */
	uint64_t tmo_ns;          /* deadline, CLOCK_MONOTONIC ns (0: none) */
	uint32_t tmo_target;      /* completions to wait for (sequence) */
	uint32_t tmo_count;       /* TIMEOUT's off: 0 = timer only */
	uint32_t tmo_flags;       /* IORING_TIMEOUT_* / cancel flags */
	uint64_t tmo_key;         /* REMOVE/CANCEL: the user_data to find */
	struct ur_req *tmo_next;  /* r->timeouts list */
	struct ur_req *lt;        /* the armed LINK_TIMEOUT guarding this request */
	struct ur_req *lt_prev;   /* a LINK_TIMEOUT: the request it guards */

	/* Data: the user's iovecs (copied at submission) and the DMA side.
	 * ur_req_alloc() clears the fields above this line only: the ones
	 * below are set before use (iov/dma are NULLed when released). */
	struct iovec *iov;        /* iov_inline or heap for > 8 */
	int      iovcnt;
	void    *dma;             /* bounce memory (or NULL for fixed buffers) */
	uint64_t dma_iova;
	uint32_t dma_first, dma_pages;  /* pool pages held */
	uint64_t pos;             /* resolved byte offset */
	uint32_t xfer;            /* bytes the transfer moves */

	/* Device progress. A read/write is one nvr_io() (the driver splits
	 * it at max_xfer); Write Zeroes/Deallocate ranges beyond 2^32 - 1
	 * blocks and emulated zeroing go out one nvr_io() after another
	 * from the retry queue, as does the flush after an RWF_DSYNC write. */
	uint8_t  dev_op;          /* enum nvr_io_op */
	bool     flush_after;     /* RWF_DSYNC/SYNC write on a VWC device */
	bool     is_read;
	bool     live;            /* allocated (not on the free list) */
	uint32_t slot;            /* served rings: its crash-state slot, or UINT32_MAX */
	uint64_t lba;             /* next block to move */
	uint64_t nlb_left;        /* blocks not yet moved */
	uint32_t chunk;           /* blocks in the nvr_io() in flight */


	struct iovec iov_inline[8];
};
#define UR_REQ_CLEAR_END offsetof(struct ur_req, iov)

/* ---- the ring ---- */

struct ur_fixed_buf {
	uint64_t base, len;       /* user range; len 0 = empty slot */
	uint64_t iova;            /* bus address of base (held: nvr_dma_hold()) */
};

struct ur_queue { struct ur_req *head, *tail; };

static inline void ur_q_push(struct ur_queue *q, struct ur_req *r)
{
	r->next = NULL;
	if (q->tail)
		q->tail->next = r;
	else
		q->head = r;
	q->tail = r;
}

static inline struct ur_req *ur_q_pop(struct ur_queue *q)
{
	struct ur_req *r = q->head;
	if (r) {
		q->head = r->next;
		if (!q->head)
			q->tail = NULL;
	}
	return r;
}

/*
 * The ring's lock (the kernel's uring_lock). A futex mutex with three
 * states (0 free, 1 held, 2 held with waiters; the "mutex 3" of Drepper's
 * "Futexes Are Tricky"): taking and releasing it uncontended is one
 * atomic read-modify-write each, inlined. glibc's pthread_mutex_lock()
 * and unlock() cost ~57 instructions per pair, and every enter, every
 * IOPOLL pass and every SQPOLL pass takes it once: at QD1 that was a
 * tenth of an I/O's instructions. Waiters sleep in the kernel as with
 * a pthread mutex; no recursion, no robustness (neither was used).
 */
struct ur_lock { _Atomic uint32_t v; };

void ur_lock_slow(struct ur_lock *l, uint32_t seen);   /* enter.c */
void ur_unlock_wake(struct ur_lock *l);

static inline void ur_lock_init(struct ur_lock *l)
{
	atomic_init(&l->v, 0);
}

static inline void ur_lock(struct ur_lock *l)
{
	uint32_t c = 0;
	/* acquire: what the previous holder wrote is visible to us */
	if (!atomic_compare_exchange_strong_explicit(&l->v, &c, 1, memory_order_acquire,
						     memory_order_relaxed))
		ur_lock_slow(l, c);
}

static inline void ur_unlock(struct ur_lock *l)
{
	/* release: our writes before the next holder's acquire */
	if (atomic_exchange_explicit(&l->v, 0, memory_order_release) == 2)
		ur_unlock_wake(l);
}

struct ur_ring {
	struct ur_obj obj;
	struct nvr_ctrlr *ctrlr;
	/* Served to another process (abi/served.h): its creator, and the
	 * crash state in the memfd. NULL for our own rings. */
	struct ur_client *client;
	struct nvs_ring_state *cstate;
	uint32_t nreqs;           /* requests made (slot numbers handed out) */
	struct nvr_qpair *qp;
	uint32_t flags;           /* setup flags */
	uint32_t sq_entries, cq_entries;
	uint32_t sqe_shift;       /* 0, or 1 for SQE128 (index doubles) */
	uint32_t cqe_shift;       /* 0, or 1 for CQE32 */
	bool     vwc;             /* the controller has a volatile write cache */
	_Atomic bool disabled;    /* R_DISABLED until REGISTER_ENABLE_RINGS */

	/* Shared memory: our own mappings of the memfd. */
	uint8_t *sq_ring, *cq_ring;
	size_t   sq_ring_sz, cq_ring_sz, sqes_sz;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
	_Atomic uint32_t *sq_khead, *sq_ktail, *sq_kflags, *sq_kdropped;
	_Atomic uint32_t *cq_khead, *cq_ktail;
	uint32_t *sq_array;       /* NULL with NO_SQARRAY */

	/* Consumer/producer copies (only this side writes them). */
	uint32_t sq_head;         /* next SQ slot to consume */
	uint32_t cq_tail;         /* next CQE slot to fill */

	/* Submission state: the link being assembled, drain. */
	struct ur_req *link_head, *link_last;
	bool drain_next, drain_disabled;
	struct ur_queue defer;    /* waiting behind a drain */
	uint32_t active;          /* released, not yet completed */

	/* Device side. */
	struct ur_queue retry;    /* issue got -EAGAIN (queue or pool full) */
	struct ur_queue done;     /* completed by callbacks, to finish */
	struct ur_queue overflow; /* CQEs waiting for room (NODROP) */
	_Atomic bool has_overflow; /* overflow.head != NULL, for SQPOLL's
				    * other threads (which read no queue) */
	uint32_t in_device;       /* commands in the queue pair */

	/* Request pool: chunks never freed until close; no malloc per I/O. */
	struct ur_req *free_reqs;
	void **chunks;
	unsigned *chunk_sizes;    /* requests in each chunk */
	unsigned nchunks;

	/* Bounce pool for non-fixed buffers (abi/bounce.c). */
	uint8_t *pool;
	uint64_t pool_iova;
	uint32_t pool_pages;
	uint64_t *pool_map;       /* 1 bit per page, set = in use */
	uint32_t pool_hint;
	uint32_t *pool_free;      /* stack of free single pages, most recently
				   * freed on top (entries may be stale: a run
				   * took the page; pop checks pool_map) */
	uint32_t pool_nfree;
	void    *big;             /* the large extent (bounce.c), or NULL */
	uint64_t big_iova;
	size_t   big_bytes;
	bool     big_busy;
	void    *zero_buf;        /* UR_ZERO_BYTES of zeroes (FALLOCATE without
				   * Write Zeroes), allocated when first needed */
	uint64_t zero_iova;
	uint32_t qdepth;          /* nvr_qpair_depth(): nvr_io() calls in flight */

	/* Registration. */
	struct ur_fixed_buf *bufs;
	unsigned nbufs;
	void   **buf_maps;        /* ranges we registered with nvr_dma_register */
	unsigned nbuf_maps;
	int      eventfd;         /* IORING_REGISTER_EVENTFD: our dup, or -1 */
	bool     eventfd_async;   /* _ASYNC: only io-wq completions (none here) */
	uint32_t eventfd_tail;    /* cq_tail when last signalled */
	struct ur_ns **files;     /* NULL = empty slot */
	unsigned nfiles;
	bool     files_registered, bufs_registered;

	/* Timeouts (abi/timeout.c), the kernel's sequence: CQEs posted minus
	 * timeouts completed (cached_cq_tail - cq_timeouts). */
	struct ur_req *timeouts;  /* armed TIMEOUTs and LINK_TIMEOUTs */
	uint32_t ntimeouts;       /* on that list (not waited for by quiesce) */
	uint32_t cq_seq, cq_timeouts, cq_last_flush;

	/* The hidden kernel ring (kring.c) for other files and opcodes. */
	struct ur_kring *kring;
	uint32_t kring_inflight;

	/* SQPOLL. */
	pthread_t sq_thread;
	bool      sq_thread_running;
	_Atomic bool sq_stop;
	_Atomic uint32_t sq_wake;  /* futex word: bumped by SQ_WAKEUP */
	uint32_t  sq_idle_ms;
	int       sq_cpu;
	struct ur_lock lock;       /* the kernel's uring_lock: submission, each reap
				    * pass, register; SQPOLL: the poller per pass, and
				    * register/flush callers from other threads */
};

/* The client whose memory and files a call on @r reaches: the caller's
 * (a forked child that adopted its parent's ring acts on its own memory,
 * as the kernel resolves addresses in the submitting task), else the
 * ring's creator (the SQPOLL poller). NULL: the ring is our own. */
static inline struct ur_client *ur_ring_client(const struct ur_ring *r)
{
	if (__builtin_expect(!r->client, 1))
		return NULL;
	return ur_tls_client ? ur_tls_client : r->client;
}

/* Crash state (serve_proto.h): the request took an SQE... */
static inline void ur_slot_take(struct ur_ring *r, struct ur_req *req, uint64_t user_data)
{
	if (__builtin_expect(!r->cstate, 1) || req->slot == UINT32_MAX)
		return;
	struct nvs_slot *s = &r->cstate->slots[req->slot];
	s->user_data = user_data;
	s->cq_pos = 0;
	/* ordered before the SQ head that shows the SQE consumed (release) */
	atomic_store_explicit((_Atomic uint32_t *)&s->state, NVS_SLOT_LIVE, memory_order_relaxed);
}
/* ...its CQE went to CQ index r->cq_tail - 1 (before the tail's release)... */
static inline void ur_slot_posted(struct ur_ring *r, struct ur_req *req)
{
	if (__builtin_expect(!r->cstate, 1) || req->slot == UINT32_MAX)
		return;
	r->cstate->slots[req->slot].cq_pos = r->cq_tail;
}
/* ...it is gone: a slot whose CQE was written stays LIVE with its cq_pos
 * (the client tells by the CQ tail whether the CQE was published) until
 * the request takes the next SQE; one that ends without a CQE is freed. */
static inline void ur_slot_end(struct ur_ring *r, struct ur_req *req)
{
	if (__builtin_expect(!r->cstate, 1) || req->slot == UINT32_MAX)
		return;
	struct nvs_slot *s = &r->cstate->slots[req->slot];
	if (!s->cq_pos)
		atomic_store_explicit((_Atomic uint32_t *)&s->state, NVS_SLOT_FREE,
				      memory_order_relaxed);
}

/* Shared-word accessors. Each names what it orders. */

/* App's SQ tail: acquire, so the SQEs and SQ array entries it wrote before
 * publishing the tail are visible before we read them. */
static inline uint32_t ur_sq_tail_acquire(struct ur_ring *r)
{
	return atomic_load_explicit(r->sq_ktail, memory_order_acquire);
}

/* Our SQ head: release, so our reads of the consumed SQEs complete before
 * the application may reuse those slots. */
static inline void ur_sq_head_release(struct ur_ring *r)
{
	atomic_store_explicit(r->sq_khead, r->sq_head, memory_order_release);
}

/* App's CQ head: acquire, so its reads of consumed CQEs are done before we
 * overwrite those slots. */
static inline uint32_t ur_cq_head_acquire(struct ur_ring *r)
{
	return atomic_load_explicit(r->cq_khead, memory_order_acquire);
}

/* Our CQ tail: release, so the CQE contents are visible before the tail
 * that makes them the application's. */
void ur_eventfd_signal(struct ur_ring *r);      /* register.c */
static inline void ur_cq_tail_release(struct ur_ring *r)
{
	atomic_store_explicit(r->cq_ktail, r->cq_tail, memory_order_release);
	if (r->eventfd >= 0 && r->cq_tail != r->eventfd_tail)
		ur_eventfd_signal(r);
}

/* SQ flags are read by the application at any time and also changed by the
 * SQPOLL thread: atomic RMW; release orders the CQ/SQ state it describes. */
static inline void ur_sq_flags_set(struct ur_ring *r, uint32_t f)
{
	atomic_fetch_or_explicit(r->sq_kflags, f, memory_order_release);
}
static inline void ur_sq_flags_clear(struct ur_ring *r, uint32_t f)
{
	atomic_fetch_and_explicit(r->sq_kflags, ~f, memory_order_release);
}

/* lookup + kind check; the error for a miss in ur_ring_get_fail() */
struct ur_ring *ur_ring_get_fail(int fd, const struct ur_obj *o, int *err);   /* fdtab.c */
static inline struct ur_ring *ur_ring_get(int fd, int *err)
{
	struct ur_obj *o = ur_fdtab_get(fd);
	if (__builtin_expect(o && o->kind == UR_RING, 1))
		return (struct ur_ring *)o;
	return ur_ring_get_fail(fd, o, err);
}

/* A spin-wait hint for the CPU (x86 PAUSE, arm64 YIELD). */
static inline void ur_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* The kernel's req_set_fail(): a failed request with CQE_SKIP_SUCCESS
 * posts its CQE after all, and its canceled links post none. */
static inline void ur_set_fail(struct ur_req *req)
{
	req->rflags |= UR_F_FAIL;
	if (req->rflags & UR_F_CQE_SKIP) {
		req->rflags &= ~UR_F_CQE_SKIP;
		req->rflags |= UR_F_SKIP_LINK;
	}
}

/* submit.c */
int  ur_submit(struct ur_ring *r, unsigned to_submit);
bool ur_op_supported(unsigned op);
void ur_release_deferred(struct ur_ring *r);

/* ops.c */
void ur_issue(struct ur_ring *r, struct ur_req *req);
int  ur_import(struct ur_ring *r, struct ur_req *req);
void ur_retry_issue(struct ur_ring *r);
bool ur_submit_fixed(struct ur_ring *r, struct ur_req *req, const struct io_uring_sqe *sqe);

/* complete.c */
struct ur_req *ur_req_alloc(struct ur_ring *r);
void ur_req_free(struct ur_ring *r, struct ur_req *req);
void ur_complete(struct ur_ring *r, struct ur_req *req, int res);
void ur_complete_io(struct ur_ring *r, struct ur_req *req, int res);   /* device callback */
void ur_finish_done(struct ur_ring *r);
void ur_cq_flush_overflow(struct ur_ring *r);
void ur_post_cqe(struct ur_ring *r, struct ur_req *req);
void ur_fail_chain_init(struct ur_ring *r, struct ur_req *head);
int  ur_reqs_grow(struct ur_ring *r, unsigned n);
void ur_reqs_free_all(struct ur_ring *r);

/* bounce.c */
int  ur_pool_init(struct ur_ring *r, uint32_t pages);
void ur_pool_fini(struct ur_ring *r);
int  ur_pool_get(struct ur_ring *r, struct ur_req *req, uint32_t bytes);
void ur_pool_put(struct ur_ring *r, struct ur_req *req);
int  ur_zero_buf_get(struct ur_ring *r);          /* allocate r->zero_buf once */

/* uaccess.c: user memory as copy_from_user()/copy_to_user() reach it, so
 * a bad pointer is -EFAULT (or a short count) instead of SIGSEGV: an
 * exception-table copy (uaccess_fault.c), else process_vm_readv/writev. */
int     ur_copy_from_user(void *dst, uint64_t src, size_t len);   /* 0 / -EFAULT */
int     ur_copy_to_user(uint64_t dst, const void *src, size_t len);
ssize_t ur_gather_user(void *dst, const struct iovec *iov, int iovcnt, size_t len);
ssize_t ur_scatter_user(const struct iovec *iov, int iovcnt, const void *src, size_t len);
size_t  ur_user_prefix(const struct iovec *iov, int iovcnt, size_t len);

/* enter.c */
int  ur_reap(struct ur_ring *r);                 /* poll the device once, finish */
int  ur_sqpoll_start(struct ur_ring *r);
void ur_sq_wakeup(struct ur_ring *r);            /* bump sq_wake, wake the SQPOLL poller */
void ur_sqpoll_stop(struct ur_ring *r);

/* timeout.c */
int  ur_timeout_prep(struct ur_ring *r, struct ur_req *req, const struct io_uring_sqe *sqe);
void ur_timeout_issue(struct ur_ring *r, struct ur_req *req);
void ur_link_timeout_arm(struct ur_ring *r, struct ur_req *req);  /* req->link is one */
void ur_link_timeout_disarm(struct ur_ring *r, struct ur_req *req);
void ur_timeouts_expire(struct ur_ring *r);      /* fire what is due */
void ur_timeouts_flush(struct ur_ring *r);       /* complete what the count reached */
static inline bool ur_op_is_timeout(uint8_t op)
{
	return op == IORING_OP_TIMEOUT || op == IORING_OP_TIMEOUT_REMOVE ||
	       op == IORING_OP_LINK_TIMEOUT || op == IORING_OP_ASYNC_CANCEL;
}

/* kring.c */
int  ur_kring_prep(struct ur_ring *r, struct ur_req *req, const struct io_uring_sqe *sqe);
void ur_kring_issue(struct ur_ring *r, struct ur_req *req);
void ur_kring_reap(struct ur_ring *r);
void ur_kring_close(struct ur_ring *r);
bool ur_kring_op_supported(struct ur_ring *r, unsigned op);   /* forwarded: the kernel's probe */

/* register.c */
void ur_unregister_all(struct ur_ring *r);
void ur_quiesce(struct ur_ring *r);

/* setup.c: requests that hold nothing in the device and release what
 * every allocated request still holds (close). */
void ur_release_all_reqs(struct ur_ring *r);
/* setup.c: a ring served to @client (abi/served.h): as nvr_uring_setup(),
 * its memfd sealed against resizing and carrying the crash state; the
 * ring holds a reference on @client. Returns our fd of it. */
int  ur_setup_served(struct nvr_ctrlr *ctrlr, unsigned entries, struct io_uring_params *p,
		     struct ur_client *client);
/* close of a ring: nvr_uring_close() of our fd; served.c drops the
 * client reference */
void ur_client_put(struct ur_client *c);

/* Opcode classes used across submission, issue and completion. */
static inline bool ur_op_is_fixed(uint8_t op)
{
	return op == IORING_OP_READ_FIXED || op == IORING_OP_WRITE_FIXED;
}

static inline bool ur_op_is_rw(uint8_t op)
{
	return op == IORING_OP_READ || op == IORING_OP_WRITE || op == IORING_OP_READV ||
	       op == IORING_OP_WRITEV || ur_op_is_fixed(op);
}

#endif
