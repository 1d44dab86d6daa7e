/* SPDX-License-Identifier: MIT */
/*
 * Layer (a): liburing's exported functions (Debian 12's liburing.so.2,
 * 2.3, and the newer ones a program may link). Their logic is liburing's
 * (what a caller of 2.3 sees); on our rings the system calls they would
 * make go to the driver directly, with no system call at all. On a ring
 * that is not ours each forwards to the real liburing behind us.
 *
 * struct io_uring is liburing 2.3's layout (liburing-dev); int_flags'
 * registered-ring bit is never set on our rings (REGISTER_RING_FDS is
 * refused, as liburing tolerates).
 */
#define LIBURING_INTERNAL   /* we define io_uring_get_sqe() ourselves */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include <liburing.h>

#include "nvring/uring.h"
#include "shim/shim.h"

#define EXPORT __attribute__((visibility("default")))

/* The library fd of a ring of ours (the program's or the shim's private
 * one), or -1. */
static int our_fd(int fd)
{
	struct shim_file *f = shim_fd_get(fd);
	if (f)
		return f->kind == SHIM_RING ? f->lib_fd : -1;
	return nvr_uring_is_ring(fd) ? fd : -1;
}

static inline int ring_lib_fd(const struct io_uring *ring)
{
	return our_fd(ring->ring_fd);
}

static void *real_fn(void **slot, const char *name)
{
	return shim_real_cached(slot, name);
}

/* Forward to the real liburing; -ENOSYS when the program has none. */
#define FORWARD(ret_t, name, ...)                                              \
	do {                                                                   \
		static void *slot_;                                            \
		__typeof__(&name) fn_ = (__typeof__(&name))real_fn(&slot_, #name); \
		if (!fn_)                                                      \
			return (ret_t)-ENOSYS;                                 \
		return fn_(__VA_ARGS__);                                       \
	} while (0)

static int enter(int lib_fd, unsigned submit, unsigned wait, unsigned flags, void *arg, size_t sz)
{
	return nvr_uring_enter(lib_fd, submit, wait, flags & ~IORING_ENTER_REGISTERED_RING, arg, sz);
}

/* ---- setup and teardown ---- */

EXPORT int io_uring_queue_mmap(int fd, struct io_uring_params *p, struct io_uring *ring)
{
	if (our_fd(fd) < 0)
		FORWARD(int, io_uring_queue_mmap, fd, p, ring);
	return nvr_uring_queue_mmap(fd, p, ring);
}

EXPORT int io_uring_queue_init_params(unsigned entries, struct io_uring *ring,
				      struct io_uring_params *p)
{
	if (!shim_cfg.on)
		FORWARD(int, io_uring_queue_init_params, entries, ring, p);
	long a[6] = { entries, (long)p }, fd;
	shim_dispatch(SYS_io_uring_setup, a, &fd);
	if (fd < 0)
		return (int)fd;
	int rc = nvr_uring_queue_mmap((int)fd, p, ring);
	if (rc < 0)
		shim_close((int)fd);
	return rc;
}

EXPORT int io_uring_queue_init(unsigned entries, struct io_uring *ring, unsigned flags)
{
	if (!shim_cfg.on)
		FORWARD(int, io_uring_queue_init, entries, ring, flags);
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	p.flags = flags;
	return io_uring_queue_init_params(entries, ring, &p);
}

EXPORT void io_uring_queue_exit(struct io_uring *ring)
{
	if (ring_lib_fd(ring) < 0) {
		static void *slot;
		void (*fn)(struct io_uring *) = real_fn(&slot, "io_uring_queue_exit");
		if (fn)
			fn(ring);
		return;
	}
	int fd = ring->ring_fd;
	nvr_uring_queue_unmap(ring);
	if (shim_close(fd) == 1)        /* the shim's private ring */
		nvr_uring_close(fd);
}

EXPORT int io_uring_ring_dontfork(struct io_uring *ring)
{
	if (ring_lib_fd(ring) < 0)
		FORWARD(int, io_uring_ring_dontfork, ring);
	if (!ring->sq.ring_ptr || !ring->sq.sqes || !ring->cq.ring_ptr)
		return -EINVAL;
	size_t sqes = (size_t)*ring->sq.kring_entries *
		      (sizeof(struct io_uring_sqe) << ((ring->flags & IORING_SETUP_SQE128) ? 1 : 0));
	if (madvise(ring->sq.sqes, sqes, MADV_DONTFORK) ||
	    madvise(ring->sq.ring_ptr, ring->sq.ring_sz, MADV_DONTFORK) ||
	    madvise(ring->cq.ring_ptr, ring->cq.ring_sz, MADV_DONTFORK))
		return -errno;
	return 0;
}

/* ---- submission and completion (liburing 2.3's rules) ---- */

static unsigned flush_sq(struct io_uring *ring)
{
	struct io_uring_sq *sq = &ring->sq;
	unsigned tail = sq->sqe_tail;
	if (sq->sqe_head != tail) {
		sq->sqe_head = tail;
		/* release: the SQEs before the tail that publishes them */
		__atomic_store_n(sq->ktail, tail, __ATOMIC_RELEASE);
	}
	/* acquire: under SQPOLL the poller moves the head */
	return tail - __atomic_load_n(sq->khead, __ATOMIC_ACQUIRE);
}

/* Must we enter for SQEs? Sets SQ_WAKEUP for a sleeping SQPOLL poller. */
static bool sq_needs_enter(struct io_uring *ring, unsigned submit, unsigned *flags)
{
	if (!submit)
		return false;
	if (!(ring->flags & IORING_SETUP_SQPOLL))
		return true;
	/* seq_cst: our tail store is visible before we read NEED_WAKEUP,
	 * pairing with the poller's flag store before its tail check */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(ring->sq.kflags, __ATOMIC_RELAXED) & IORING_SQ_NEED_WAKEUP) {
		*flags |= IORING_ENTER_SQ_WAKEUP;
		return true;
	}
	return false;
}

static bool cq_needs_flush(struct io_uring *ring)
{
	return __atomic_load_n(ring->sq.kflags, __ATOMIC_RELAXED) &
	       (IORING_SQ_CQ_OVERFLOW | IORING_SQ_TASKRUN);
}

static bool cq_needs_enter(struct io_uring *ring)
{
	return (ring->flags & IORING_SETUP_IOPOLL) || cq_needs_flush(ring);
}

static int do_submit(struct io_uring *ring, int lfd, unsigned submitted, unsigned wait_nr,
		     bool getevents)
{
	bool cq_enter = getevents || wait_nr || cq_needs_enter(ring);
	unsigned flags = 0;
	if (!sq_needs_enter(ring, submitted, &flags) && !cq_enter)
		return (int)submitted;
	if (cq_enter)
		flags |= IORING_ENTER_GETEVENTS;
	return enter(lfd, submitted, wait_nr, flags, NULL, 0);
}

EXPORT int io_uring_submit(struct io_uring *ring)
{
	int lfd = ring_lib_fd(ring);
	if (lfd < 0)
		FORWARD(int, io_uring_submit, ring);
	return do_submit(ring, lfd, flush_sq(ring), 0, false);
}

EXPORT int io_uring_submit_and_wait(struct io_uring *ring, unsigned wait_nr)
{
	int lfd = ring_lib_fd(ring);
	if (lfd < 0)
		FORWARD(int, io_uring_submit_and_wait, ring, wait_nr);
	return do_submit(ring, lfd, flush_sq(ring), wait_nr, false);
}

EXPORT int io_uring_submit_and_get_events(struct io_uring *ring)
{
	int lfd = ring_lib_fd(ring);
	if (lfd < 0)
		FORWARD(int, io_uring_submit_and_get_events, ring);
	return do_submit(ring, lfd, flush_sq(ring), 0, true);
}

EXPORT int io_uring_get_events(struct io_uring *ring)
{
	int lfd = ring_lib_fd(ring);
	if (lfd < 0)
		FORWARD(int, io_uring_get_events, ring);
	return enter(lfd, 0, 0, IORING_ENTER_GETEVENTS, NULL, 0);
}

EXPORT int __io_uring_sqring_wait(struct io_uring *ring)
{
	int lfd = ring_lib_fd(ring);
	if (lfd < 0)
		FORWARD(int, __io_uring_sqring_wait, ring);
	return enter(lfd, 0, 0, IORING_ENTER_SQ_WAIT, NULL, 0);
}

EXPORT struct io_uring_sqe *io_uring_get_sqe(struct io_uring *ring)
{
	return _io_uring_get_sqe(ring);   /* ring memory only: any ring */
}

/* The wait for CQEs behind __io_uring_get_cqe() and the timed waits. */
struct wait_req {
	unsigned submit, wait_nr, get_flags;
	size_t sz;
	bool has_ts;
	void *arg;
};

static int get_cqe(struct io_uring *ring, int lfd, struct io_uring_cqe **cqe_ptr,
		   struct wait_req *w)
{
	struct io_uring_cqe *cqe = NULL;
	bool looped = false;
	int err = 0;
	for (;;) {
		unsigned avail, flags = 0;
		bool need_enter = false;
		int ret = __io_uring_peek_cqe(ring, &cqe, &avail);
		if (ret) {
			if (!err)
				err = ret;
			break;
		}
		if (!cqe && !w->wait_nr && !w->submit) {
			/* nothing to wait for: one enter at most, to flush */
			if (looped || !cq_needs_enter(ring)) {
				if (!err)
					err = -EAGAIN;
				break;
			}
			need_enter = true;
		}
		if (w->wait_nr > avail || need_enter) {
			flags = IORING_ENTER_GETEVENTS | w->get_flags;
			need_enter = true;
		}
		if (sq_needs_enter(ring, w->submit, &flags))
			need_enter = true;
		if (!need_enter)
			break;
		if (looped && w->has_ts) {
			struct io_uring_getevents_arg *ga = w->arg;
			if (!cqe && ga->ts && !err)
				err = -ETIME;
			break;
		}
		ret = enter(lfd, w->submit, w->wait_nr, flags, w->arg, w->sz);
		if (ret < 0) {
			if (!err)
				err = ret;
			break;
		}
		w->submit -= (unsigned)ret;
		if (cqe)
			break;
		if (!looped) {
			looped = true;
			err = ret;
		}
	}
	*cqe_ptr = cqe;
	return err;
}

EXPORT int __io_uring_get_cqe(struct io_uring *ring, struct io_uring_cqe **cqe_ptr,
			      unsigned submit, unsigned wait_nr, sigset_t *sigmask)
{
	int lfd = ring_lib_fd(ring);
	if (lfd < 0)
		FORWARD(int, __io_uring_get_cqe, ring, cqe_ptr, submit, wait_nr, sigmask);
	struct wait_req w = { .submit = submit, .wait_nr = wait_nr, .sz = _NSIG / 8,
			      .arg = sigmask };
	return get_cqe(ring, lfd, cqe_ptr, &w);
}

static int wait_timed(struct io_uring *ring, int lfd, struct io_uring_cqe **cqe_ptr,
		      unsigned submit, unsigned wait_nr, struct __kernel_timespec *ts,
		      sigset_t *sigmask)
{
	/* we advertise IORING_FEAT_EXT_ARG: the timeout rides in enter */
	struct io_uring_getevents_arg ga = {
		.sigmask = (uint64_t)(uintptr_t)sigmask,
		.sigmask_sz = _NSIG / 8,
		.ts = (uint64_t)(uintptr_t)ts,
	};
	struct wait_req w = { .submit = submit, .wait_nr = wait_nr,
			      .get_flags = IORING_ENTER_EXT_ARG, .sz = sizeof(ga),
			      .has_ts = ts != NULL, .arg = &ga };
	return get_cqe(ring, lfd, cqe_ptr, &w);
}

EXPORT int io_uring_wait_cqes(struct io_uring *ring, struct io_uring_cqe **cqe_ptr,
			      unsigned wait_nr, struct __kernel_timespec *ts, sigset_t *sigmask)
{
	int lfd = ring_lib_fd(ring);
	if (lfd < 0)
		FORWARD(int, io_uring_wait_cqes, ring, cqe_ptr, wait_nr, ts, sigmask);
	if (ts)
		return wait_timed(ring, lfd, cqe_ptr, 0, wait_nr, ts, sigmask);
	struct wait_req w = { .wait_nr = wait_nr, .sz = _NSIG / 8, .arg = sigmask };
	return get_cqe(ring, lfd, cqe_ptr, &w);
}

EXPORT int io_uring_wait_cqe_timeout(struct io_uring *ring, struct io_uring_cqe **cqe_ptr,
				     struct __kernel_timespec *ts)
{
	int lfd = ring_lib_fd(ring);
	if (lfd < 0)
		FORWARD(int, io_uring_wait_cqe_timeout, ring, cqe_ptr, ts);
	return io_uring_wait_cqes(ring, cqe_ptr, 1, ts, NULL);
}

EXPORT int io_uring_submit_and_wait_timeout(struct io_uring *ring, struct io_uring_cqe **cqe_ptr,
					    unsigned wait_nr, struct __kernel_timespec *ts,
					    sigset_t *sigmask)
{
	int lfd = ring_lib_fd(ring);
	if (lfd < 0)
		FORWARD(int, io_uring_submit_and_wait_timeout, ring, cqe_ptr, wait_nr, ts, sigmask);
	unsigned submit = flush_sq(ring);
	if (ts)
		return wait_timed(ring, lfd, cqe_ptr, submit, wait_nr, ts, sigmask);
	struct wait_req w = { .submit = submit, .wait_nr = wait_nr, .sz = _NSIG / 8,
			      .arg = sigmask };
	return get_cqe(ring, lfd, cqe_ptr, &w);
}

EXPORT unsigned io_uring_peek_batch_cqe(struct io_uring *ring, struct io_uring_cqe **cqes,
					unsigned count)
{
	int lfd = ring_lib_fd(ring);
	if (lfd < 0)
		FORWARD(unsigned, io_uring_peek_batch_cqe, ring, cqes, count);
	unsigned shift = (ring->flags & IORING_SETUP_CQE32) ? 1 : 0;
	bool flushed = false;
	for (;;) {
		unsigned ready = io_uring_cq_ready(ring);
		if (ready) {
			unsigned head = *ring->cq.khead, mask = ring->cq.ring_mask;
			if (count > ready)
				count = ready;
			for (unsigned i = 0; i < count; i++)
				cqes[i] = &ring->cq.cqes[((head + i) & mask) << shift];
			return count;
		}
		if (flushed || !cq_needs_flush(ring))
			return 0;
		enter(lfd, 0, 0, IORING_ENTER_GETEVENTS, NULL, 0);
		flushed = true;
	}
}

/* ---- io_uring_setup/enter/register themselves ---- */

EXPORT int io_uring_setup(unsigned entries, struct io_uring_params *p)
{
	long a[6] = { entries, (long)p }, r;
	if (shim_dispatch(SYS_io_uring_setup, a, &r))
		return (int)r;
	FORWARD(int, io_uring_setup, entries, p);
}

EXPORT int io_uring_enter2(unsigned fd, unsigned to_submit, unsigned min_complete,
			   unsigned flags, sigset_t *sig, size_t sz)
{
	int lfd = our_fd((int)fd);
	if (lfd < 0)
		FORWARD(int, io_uring_enter2, fd, to_submit, min_complete, flags, sig, sz);
	return enter(lfd, to_submit, min_complete, flags, sig, sz);
}

EXPORT int io_uring_enter(unsigned fd, unsigned to_submit, unsigned min_complete,
			  unsigned flags, sigset_t *sig)
{
	int lfd = our_fd((int)fd);
	if (lfd < 0)
		FORWARD(int, io_uring_enter, fd, to_submit, min_complete, flags, sig);
	return enter(lfd, to_submit, min_complete, flags, sig, _NSIG / 8);
}

EXPORT int io_uring_register(unsigned fd, unsigned op, const void *arg, unsigned nr)
{
	int lfd = our_fd((int)fd);
	if (lfd < 0)
		FORWARD(int, io_uring_register, fd, op, arg, nr);
	return nvr_uring_register(lfd, op, (void *)arg, nr);
}

/* ---- the register family: liburing's argument shapes ---- */

static int reg(const struct io_uring *ring, unsigned op, const void *arg, unsigned nr)
{
	return nvr_uring_register(ring_lib_fd(ring), op, (void *)arg, nr);
}

#define OURS_OR_FORWARD(ret_t, name, ...)               \
	do {                                            \
		if (ring_lib_fd(ring) < 0)              \
			FORWARD(ret_t, name, __VA_ARGS__); \
	} while (0)

static int zero_or_err(int r) { return r < 0 ? r : 0; }

EXPORT int io_uring_register_buffers(struct io_uring *ring, const struct iovec *iov, unsigned nr)
{
	OURS_OR_FORWARD(int, io_uring_register_buffers, ring, iov, nr);
	return zero_or_err(reg(ring, IORING_REGISTER_BUFFERS, iov, nr));
}

EXPORT int io_uring_unregister_buffers(struct io_uring *ring)
{
	OURS_OR_FORWARD(int, io_uring_unregister_buffers, ring);
	return zero_or_err(reg(ring, IORING_UNREGISTER_BUFFERS, NULL, 0));
}

EXPORT int io_uring_register_buffers_tags(struct io_uring *ring, const struct iovec *iov,
					  const __u64 *tags, unsigned nr)
{
	OURS_OR_FORWARD(int, io_uring_register_buffers_tags, ring, iov, tags, nr);
	struct io_uring_rsrc_register r = { .nr = nr, .data = (uintptr_t)iov,
					    .tags = (uintptr_t)tags };
	return reg(ring, IORING_REGISTER_BUFFERS2, &r, sizeof(r));
}

EXPORT int io_uring_register_buffers_sparse(struct io_uring *ring, unsigned nr)
{
	OURS_OR_FORWARD(int, io_uring_register_buffers_sparse, ring, nr);
	struct io_uring_rsrc_register r = { .flags = IORING_RSRC_REGISTER_SPARSE, .nr = nr };
	return reg(ring, IORING_REGISTER_BUFFERS2, &r, sizeof(r));
}

EXPORT int io_uring_register_buffers_update_tag(struct io_uring *ring, unsigned off,
						const struct iovec *iov, const __u64 *tags,
						unsigned nr)
{
	OURS_OR_FORWARD(int, io_uring_register_buffers_update_tag, ring, off, iov, tags, nr);
	struct io_uring_rsrc_update2 u = { .offset = off, .data = (uintptr_t)iov,
					   .tags = (uintptr_t)tags, .nr = nr };
	return reg(ring, IORING_REGISTER_BUFFERS_UPDATE, &u, sizeof(u));
}

EXPORT int io_uring_register_files(struct io_uring *ring, const int *files, unsigned nr)
{
	OURS_OR_FORWARD(int, io_uring_register_files, ring, files, nr);
	return reg(ring, IORING_REGISTER_FILES, files, nr);
}

EXPORT int io_uring_unregister_files(struct io_uring *ring)
{
	OURS_OR_FORWARD(int, io_uring_unregister_files, ring);
	return zero_or_err(reg(ring, IORING_UNREGISTER_FILES, NULL, 0));
}

EXPORT int io_uring_register_files_tags(struct io_uring *ring, const int *files,
					const __u64 *tags, unsigned nr)
{
	OURS_OR_FORWARD(int, io_uring_register_files_tags, ring, files, tags, nr);
	struct io_uring_rsrc_register r = { .nr = nr, .data = (uintptr_t)files,
					    .tags = (uintptr_t)tags };
	return reg(ring, IORING_REGISTER_FILES2, &r, sizeof(r));
}

EXPORT int io_uring_register_files_sparse(struct io_uring *ring, unsigned nr)
{
	OURS_OR_FORWARD(int, io_uring_register_files_sparse, ring, nr);
	struct io_uring_rsrc_register r = { .flags = IORING_RSRC_REGISTER_SPARSE, .nr = nr };
	return reg(ring, IORING_REGISTER_FILES2, &r, sizeof(r));
}

EXPORT int io_uring_register_files_update(struct io_uring *ring, unsigned off, const int *files,
					  unsigned nr)
{
	OURS_OR_FORWARD(int, io_uring_register_files_update, ring, off, files, nr);
	struct io_uring_files_update u = { .offset = off, .fds = (uintptr_t)files };
	return reg(ring, IORING_REGISTER_FILES_UPDATE, &u, nr);
}

EXPORT int io_uring_register_files_update_tag(struct io_uring *ring, unsigned off,
					      const int *files, const __u64 *tags, unsigned nr)
{
	OURS_OR_FORWARD(int, io_uring_register_files_update_tag, ring, off, files, tags, nr);
	struct io_uring_rsrc_update2 u = { .offset = off, .data = (uintptr_t)files,
					   .tags = (uintptr_t)tags, .nr = nr };
	return reg(ring, IORING_REGISTER_FILES_UPDATE2, &u, sizeof(u));
}

EXPORT int io_uring_register_eventfd(struct io_uring *ring, int efd)
{
	OURS_OR_FORWARD(int, io_uring_register_eventfd, ring, efd);
	return zero_or_err(reg(ring, IORING_REGISTER_EVENTFD, &efd, 1));
}

EXPORT int io_uring_register_eventfd_async(struct io_uring *ring, int efd)
{
	OURS_OR_FORWARD(int, io_uring_register_eventfd_async, ring, efd);
	return zero_or_err(reg(ring, IORING_REGISTER_EVENTFD_ASYNC, &efd, 1));
}

EXPORT int io_uring_unregister_eventfd(struct io_uring *ring)
{
	OURS_OR_FORWARD(int, io_uring_unregister_eventfd, ring);
	return zero_or_err(reg(ring, IORING_UNREGISTER_EVENTFD, NULL, 0));
}

EXPORT int io_uring_register_probe(struct io_uring *ring, struct io_uring_probe *p, unsigned nr)
{
	OURS_OR_FORWARD(int, io_uring_register_probe, ring, p, nr);
	return zero_or_err(reg(ring, IORING_REGISTER_PROBE, p, nr));
}

EXPORT int io_uring_register_personality(struct io_uring *ring)
{
	OURS_OR_FORWARD(int, io_uring_register_personality, ring);
	return reg(ring, IORING_REGISTER_PERSONALITY, NULL, 0);
}

EXPORT int io_uring_unregister_personality(struct io_uring *ring, int id)
{
	OURS_OR_FORWARD(int, io_uring_unregister_personality, ring, id);
	return reg(ring, IORING_UNREGISTER_PERSONALITY, NULL, (unsigned)id);
}

EXPORT int io_uring_register_restrictions(struct io_uring *ring, struct io_uring_restriction *res,
					  unsigned nr)
{
	OURS_OR_FORWARD(int, io_uring_register_restrictions, ring, res, nr);
	return zero_or_err(reg(ring, IORING_REGISTER_RESTRICTIONS, res, nr));
}

EXPORT int io_uring_enable_rings(struct io_uring *ring)
{
	OURS_OR_FORWARD(int, io_uring_enable_rings, ring);
	return reg(ring, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
}

EXPORT int io_uring_register_iowq_aff(struct io_uring *ring, size_t cpusz, const cpu_set_t *mask)
{
	OURS_OR_FORWARD(int, io_uring_register_iowq_aff, ring, cpusz, mask);
	if (cpusz >= (1u << 31))
		return -EINVAL;
	return reg(ring, IORING_REGISTER_IOWQ_AFF, mask, (unsigned)cpusz);
}

EXPORT int io_uring_unregister_iowq_aff(struct io_uring *ring)
{
	OURS_OR_FORWARD(int, io_uring_unregister_iowq_aff, ring);
	return reg(ring, IORING_UNREGISTER_IOWQ_AFF, NULL, 0);
}

EXPORT int io_uring_register_iowq_max_workers(struct io_uring *ring, unsigned *val)
{
	OURS_OR_FORWARD(int, io_uring_register_iowq_max_workers, ring, val);
	return reg(ring, IORING_REGISTER_IOWQ_MAX_WORKERS, val, 2);
}

/* Registered ring fds save the kernel an fd lookup; ours have none to save.
 * Refusing is what liburing handles (it keeps using ring_fd). */
EXPORT int io_uring_register_ring_fd(struct io_uring *ring)
{
	OURS_OR_FORWARD(int, io_uring_register_ring_fd, ring);
	return -EINVAL;
}

EXPORT int io_uring_unregister_ring_fd(struct io_uring *ring)
{
	OURS_OR_FORWARD(int, io_uring_unregister_ring_fd, ring);
	return -EINVAL;
}

int io_uring_close_ring_fd(struct io_uring *ring);
EXPORT int io_uring_close_ring_fd(struct io_uring *ring)
{
	OURS_OR_FORWARD(int, io_uring_close_ring_fd, ring);
	return -EINVAL;     /* needs a registered ring fd, which ours never have */
}

EXPORT int io_uring_register_buf_ring(struct io_uring *ring, struct io_uring_buf_reg *r,
				      unsigned flags)
{
	OURS_OR_FORWARD(int, io_uring_register_buf_ring, ring, r, flags);
	return reg(ring, IORING_REGISTER_PBUF_RING, r, 1);
}

EXPORT int io_uring_unregister_buf_ring(struct io_uring *ring, int bgid)
{
	OURS_OR_FORWARD(int, io_uring_unregister_buf_ring, ring, bgid);
	struct io_uring_buf_reg r = { .bgid = (__u16)bgid };
	return reg(ring, IORING_UNREGISTER_PBUF_RING, &r, 1);
}

EXPORT int io_uring_register_sync_cancel(struct io_uring *ring, struct io_uring_sync_cancel_reg *r)
{
	OURS_OR_FORWARD(int, io_uring_register_sync_cancel, ring, r);
	return reg(ring, IORING_REGISTER_SYNC_CANCEL, r, 1);
}

EXPORT int io_uring_register_file_alloc_range(struct io_uring *ring, unsigned off, unsigned len)
{
	OURS_OR_FORWARD(int, io_uring_register_file_alloc_range, ring, off, len);
	struct io_uring_file_index_range r = { .off = off, .len = len };
	return reg(ring, IORING_REGISTER_FILE_ALLOC_RANGE, &r, 0);
}

/* ---- probes ---- */

EXPORT struct io_uring_probe *io_uring_get_probe_ring(struct io_uring *ring)
{
	if (ring_lib_fd(ring) < 0) {
		static void *slot;
		struct io_uring_probe *(*fn)(struct io_uring *) =
			real_fn(&slot, "io_uring_get_probe_ring");
		return fn ? fn(ring) : NULL;
	}
	size_t len = sizeof(struct io_uring_probe) + 256 * sizeof(struct io_uring_probe_op);
	struct io_uring_probe *p = calloc(1, len);
	if (p && reg(ring, IORING_REGISTER_PROBE, p, 256) < 0) {
		free(p);
		p = NULL;
	}
	return p;
}

EXPORT struct io_uring_probe *io_uring_get_probe(void)
{
	if (!shim_cfg.on) {
		static void *slot;
		struct io_uring_probe *(*fn)(void) = real_fn(&slot, "io_uring_get_probe");
		return fn ? fn() : NULL;
	}
	struct io_uring ring;
	if (io_uring_queue_init(2, &ring, 0) < 0)
		return NULL;
	struct io_uring_probe *p = io_uring_get_probe_ring(&ring);
	io_uring_queue_exit(&ring);
	return p;
}

EXPORT void io_uring_free_probe(struct io_uring_probe *p)
{
	free(p);    /* liburing's too: calloc() then free() */
}

/* Ring memory is not charged to RLIMIT_MEMLOCK here (the kernel's 5.12+
 * accounting is memcg's too): nothing to reserve. */
EXPORT ssize_t io_uring_mlock_size_params(unsigned entries, struct io_uring_params *p)
{
	if (!shim_cfg.on)
		FORWARD(ssize_t, io_uring_mlock_size_params, entries, p);
	return 0;
}

EXPORT ssize_t io_uring_mlock_size(unsigned entries, unsigned flags)
{
	if (!shim_cfg.on)
		FORWARD(ssize_t, io_uring_mlock_size, entries, flags);
	return 0;
}
