/* SPDX-License-Identifier: MIT */
/*
 * nvring — the io_uring ABI over the embedded driver.
 *
 * A ring made here is byte-for-byte what io_uring_setup(2) makes: the same
 * struct io_uring_params (<linux/io_uring.h>), the same offsets, masks and
 * entry counts, and a file descriptor that the application mmap()s itself
 * at IORING_OFF_SQ_RING, IORING_OFF_CQ_RING and IORING_OFF_SQES. The fd is
 * a memfd (a sparse file covering IORING_OFF_SQES + the SQE array), so the
 * application's own mmap() calls work unmodified. The three entry points
 * below take the arguments of the three syscalls and return what the
 * kernel returns (a count, or a negative errno); the shim is a thin layer.
 *
 * What differs from the kernel, on purpose:
 *  - The SQ ring and the CQ ring are two regions of the memfd, not one
 *    object: IORING_FEAT_SINGLE_MMAP is not advertised, so programs map
 *    both (liburing and fio do). Each field lives in the region its
 *    sq_off/cq_off names; the constant fields (masks, entry counts) are
 *    written in both.
 *  - The block devices are NVMe namespaces opened with nvr_ns_open(). Opcodes
 *    on a namespace: NOP, READ, WRITE, READV, WRITEV, READ_FIXED,
 *    WRITE_FIXED, FSYNC, FALLOCATE; on the ring itself: TIMEOUT,
 *    TIMEOUT_REMOVE, LINK_TIMEOUT, ASYNC_CANCEL. SQEs on other files
 *    (pipes, sockets, regular files, eventfds) and the kernel's other
 *    opcodes go to a hidden kernel io_uring behind the ring (not on IOPOLL
 *    rings) and their CQEs come back here; links and drains across both
 *    are kept. IORING_REGISTER_PROBE says exactly this. Results follow the kernel's for the same SQE on
 *    the namespace opened as a block device with O_DIRECT (Linux 6.1).
 *    Timers fire when the ring is polled: in nvr_uring_enter()'s wait, or
 *    by the SQPOLL poller.
 *  - Nothing completes in the background except under IORING_SETUP_SQPOLL:
 *    a plain or IOPOLL ring reaps the device inside nvr_uring_enter().
 *
 * Threads, as the kernel allows: one thread may submit while others wait
 * in enter(GETEVENTS) or reap CQEs, and another registers; the ring's lock
 * (the kernel's uring_lock) orders them, held per submission and per reap
 * pass. Filling SQEs is the application's (one producer at a time, as on
 * the kernel). Under SQPOLL the ring's poller thread owns the device queue
 * and the application threads only wait, wake and register.
 */
#ifndef NVRING_URING_H
#define NVRING_URING_H

#include <linux/io_uring.h>
#include <stddef.h>
#include <stdint.h>

#include "nvring/nvring.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Linux 6.6 added this; the 6.1 uapi header lacks it. */
#ifndef IORING_SETUP_NO_SQARRAY
#define IORING_SETUP_NO_SQARRAY (1U << 16)
#endif

/**
 * nvr_uring_setup() - io_uring_setup(2) on controller @ctrlr.
 * @entries: SQ entries; rounded up to a power of two (max 32768, more
 *           needs IORING_SETUP_CLAMP).
 * @p:       in: flags, cq_entries (with IORING_SETUP_CQSIZE),
 *           sq_thread_idle (ms, SQPOLL), sq_thread_cpu (SQ_AFF); the rest
 *           must be zero. Out: as the kernel fills it (sq_entries,
 *           cq_entries, features, sq_off, cq_off).
 *
 * Accepted flags: IOPOLL, SQPOLL, SQ_AFF, CQSIZE, CLAMP, SUBMIT_ALL,
 * COOP_TASKRUN, TASKRUN_FLAG, SQE128, CQE32, SINGLE_ISSUER, DEFER_TASKRUN,
 * R_DISABLED, NO_SQARRAY. Features: NODROP, SUBMIT_STABLE, RW_CUR_POS,
 * SQPOLL_NONFIXED, EXT_ARG, CQE_SKIP.
 *
 * The ring gets its own I/O queue pair on @ctrlr (sized min(cq_entries,
 * controller maximum)), freed by nvr_uring_close().
 *
 * Returns the ring fd, or: -EINVAL bad entries/flags/params (the kernel's
 * rules); -EFAULT @p is NULL; -EBUSY no I/O queue pair left; -ENOMEM;
 * -EMFILE no fd; errors of nvr_qpair_alloc().
 */
NVR_API int nvr_uring_setup(struct nvr_ctrlr *ctrlr, unsigned entries,
			    struct io_uring_params *p);

/**
 * nvr_uring_enter() - io_uring_enter(2) on ring @fd.
 *
 * Consumes up to @to_submit SQEs (the kernel's rules: a bad SQ index is
 * dropped and counted in sq dropped; an SQE that fails before it is
 * queued ends the batch unless IORING_SETUP_SUBMIT_ALL), then with
 * IORING_ENTER_GETEVENTS flushes the CQ overflow backlog and polls the
 * device until @min_complete CQEs are in the CQ ring. @arg/@argsz: a
 * sigset (8 bytes, the kernel's) or, with IORING_ENTER_EXT_ARG, a struct
 * io_uring_getevents_arg whose ts is a relative timeout (one too long to
 * represent, such as {LONG_MAX, 0}, waits without end) and whose sigmask
 * is a sigset. The thread waits with that signal mask, as the kernel's
 * does; a signal it lets through runs its handler and the wait goes on
 * (the kernel would end it with -EINTR).
 *
 * Returns the number of SQEs consumed (under SQPOLL: @to_submit), else
 * the wait's result: 0, -ETIME (timeout with the CQ ring empty). Errors:
 * -EBADF unknown fd; -EOPNOTSUPP @fd is not a ring; -EINVAL bad flags or
 * arg size; -EBADFD ring disabled (R_DISABLED); -EFAULT bad @arg. Never
 * -EAGAIN or -EINTR.
 */
NVR_API int nvr_uring_enter(int fd, unsigned to_submit, unsigned min_complete,
			    unsigned flags, const void *arg, size_t argsz);

/**
 * nvr_uring_register() - io_uring_register(2) on ring @fd.
 * Opcodes: IORING_REGISTER_BUFFERS / IORING_UNREGISTER_BUFFERS (buffers
 * are pinned and mapped for DMA here, or -- when already DMA memory --
 * registered inside their mapping; each is held with nvr_dma_hold() until
 * unregistered, so nvr_dma_free()/nvr_dma_unregister() of memory a ring
 * uses is -EBUSY; I/O on them needs no mapping),
 * IORING_REGISTER_FILES / IORING_UNREGISTER_FILES (namespace fds from
 * nvr_ns_open(); -1 leaves a slot empty; unregistering waits until no
 * request of the ring is in flight, as the kernel's quiesce does), IORING_REGISTER_PROBE,
 * IORING_REGISTER_ENABLE_RINGS, IORING_REGISTER_EVENTFD(_ASYNC) /
 * IORING_UNREGISTER_EVENTFD (1 is written to the eventfd whenever CQEs are
 * published, unless IORING_CQ_EVENTFD_DISABLED is set in the CQ flags; an
 * _ASYNC eventfd is never signalled, as the kernel signals none for inline
 * completions). Anything else: -EINVAL.
 * Errors as the kernel's: -EBUSY already registered, -ENXIO nothing to
 * unregister, -EINVAL bad counts or arguments, -EFAULT bad buffer, -EBADF
 * bad fd in a file table, -EMFILE too many files, -ENOMEM.
 */
NVR_API int nvr_uring_register(int fd, unsigned opcode, void *arg, unsigned nr_args);

/**
 * nvr_uring_close() - close ring @fd. The SQPOLL thread is stopped;
 * requests not yet sent to the device (linked, drained, waiting for room)
 * are dropped, as the kernel cancels them; commands already in the device
 * are given up to 5 s to complete (their CQEs are discarded), then the
 * queue pair is deleted, which ends any that remain. Only then are the
 * bounce pool and the registered buffers released, and the memfd closed;
 * every namespace reference the ring's requests held is dropped. The
 * application's own mappings of the fd stay valid until it unmaps them.
 * -EBADF if @fd is not a ring.
 */
NVR_API int nvr_uring_close(int fd);

/**
 * nvr_ns_open() - a file descriptor standing for namespace @nsid of
 * @ctrlr, usable in sqe->fd and in IORING_REGISTER_FILES of rings on the
 * same controller. It is a real fd (a memfd as large as the namespace), so
 * its number never clashes with other files. Errors: -ENOENT no such
 * active namespace; -EMFILE; -ENOMEM.
 */
NVR_API int nvr_ns_open(struct nvr_ctrlr *ctrlr, uint32_t nsid);

/**
 * nvr_ns_bind() - make the caller's open descriptor @fd stand for namespace
 * @nsid of @ctrlr, as nvr_ns_open() does for its own memfd (the shim's
 * block-device path: the program's fd is the shim's, it outlives the
 * controller attachment). nvr_ns_close(@fd) undoes it without closing @fd.
 * Errors: -EBADF @fd not open; -EEXIST @fd already a ring or namespace;
 * -ENOENT no such namespace; -ENOMEM.
 */
NVR_API int nvr_ns_bind(struct nvr_ctrlr *ctrlr, uint32_t nsid, int fd);

/**
 * nvr_uring_set_fd_floor() - place every later ring and namespace memfd at
 * the lowest free number >= @floor (F_DUPFD_CLOEXEC), 0 = anywhere. The
 * shim keeps its descriptors in a high range this way, so a seccomp filter
 * can tell them by number and a program's next open() never gets the
 * number of one it closed behind our back. -EINVAL if @floor < 0.
 */
NVR_API int nvr_uring_set_fd_floor(int floor);

/**
 * nvr_uring_set_kernel_syscall() - how the library makes its own io_uring
 * system calls (the hidden kernel ring behind each ring, which serves SQEs
 * on other files and opcodes that are not block I/O): @fn(nr, a0..a5)
 * returning the raw result (-errno). NULL restores libc's syscall(). The
 * shim sets its untrapped syscall here, so that these calls are not taken
 * for the program's own.
 */
NVR_API void nvr_uring_set_kernel_syscall(long (*fn)(long nr, long a0, long a1, long a2, long a3,
						     long a4, long a5));

/** nvr_ns_close() - close a descriptor from nvr_ns_open(). Rings whose
 *  registered file tables name it keep it until they unregister them.
 *  -EBADF if @fd is not a namespace descriptor. For nvr_ns_bind(), the
 *  binding ends and @fd stays open. */
NVR_API int nvr_ns_close(int fd);

/** nvr_uring_is_ring(), nvr_uring_is_ns() - whether @fd is a ring from
 *  nvr_uring_setup() / a descriptor from nvr_ns_open() (for the shim). */
NVR_API int nvr_uring_is_ring(int fd);
NVR_API int nvr_uring_is_ns(int fd);

struct io_uring;  /* liburing's, from <liburing.h> */

/**
 * nvr_uring_queue_init() - io_uring_queue_init_params() for a ring on
 * @ctrlr: nvr_uring_setup(), the three mmap()s, and liburing's struct
 * io_uring filled as liburing's io_uring_queue_mmap() fills it, so that
 * liburing.h's inline helpers (io_uring_get_sqe, io_uring_prep_*,
 * io_uring_peek_cqe, io_uring_cqe_seen, ...) work on it unchanged. The
 * layout of struct io_uring filled here is liburing 2.3's (Debian 12); the
 * helpers that enter (io_uring_submit, io_uring_wait_cqe, ...) call the
 * kernel and need the shim, or use nvr_uring_submit_and_wait(). Note that
 * io_uring_peek_cqe() is inline but, when no CQE is ready, calls
 * liburing's exported __io_uring_get_cqe() (so the program links
 * liburing), which enters the kernel on IOPOLL rings or when the CQ
 * overflow flag is set: without the shim that enter fails (-EOPNOTSUPP,
 * our fd is not a kernel io_uring). io_uring_for_each_cqe() and
 * io_uring_cq_ready() never call out.
 * @p may be NULL (all defaults). Returns 0 or a negative errno.
 */
NVR_API int nvr_uring_queue_init(struct nvr_ctrlr *ctrlr, unsigned entries,
				 struct io_uring *ring, struct io_uring_params *p);

/** nvr_uring_queue_mmap() - liburing's io_uring_queue_mmap() for ring @fd
 *  (set up with @p): map it and fill @ring. -ENOMEM if a mapping fails.
 *  nvr_uring_queue_unmap() undoes the mappings only (the fd stays). */
NVR_API int nvr_uring_queue_mmap(int fd, struct io_uring_params *p, struct io_uring *ring);
NVR_API void nvr_uring_queue_unmap(struct io_uring *ring);

/** nvr_uring_submit_and_wait() - liburing's io_uring_submit_and_wait() for
 *  a ring from nvr_uring_queue_init(): publish the SQEs prepared with
 *  io_uring_get_sqe(), enter, wait for @wait_nr CQEs. Returns SQEs
 *  submitted or a negative errno. */
NVR_API int nvr_uring_submit_and_wait(struct io_uring *ring, unsigned wait_nr);

/** nvr_uring_queue_exit() - unmap and close a ring from
 *  nvr_uring_queue_init(). */
NVR_API void nvr_uring_queue_exit(struct io_uring *ring);

/**
 * nvr_serve_conn() - the owner side: serve the client on the connected
 * unix SOCK_SEQPACKET socket @sock (accepted by the caller, who has already
 * decided that its peer may use @ctrlr) until it disconnects; @bdf is
 * what the client is told it reached. Every ring the client makes is a
 * ring of this process on @ctrlr with its own I/O queue pair, run on the
 * client's behalf: data move between the device and the client's memory
 * through this process's DMA memory (process_vm_readv/writev on the
 * client's pid), so the device never touches client memory and a client
 * reaches only its own memory, rings and namespace descriptors. When the
 * client's last connection closes (it exited or was killed), its rings are
 * closed as nvr_uring_close() closes one, and one line is logged.
 * Blocks; one thread per connection. Returns 0 when the client went away,
 * -EPROTO for a client that does not speak the protocol, -EINVAL.
 */
NVR_API int nvr_serve_conn(struct nvr_ctrlr *ctrlr, int sock, const char *bdf);

/** nvr_serve_refuse() - tell the client on @sock that it may not connect:
 *  its nvr_ctrlr_connect() fails with -EACCES after printing @why. */
NVR_API int nvr_serve_refuse(int sock, const char *why);

#ifdef __cplusplus
}
#endif
#endif
