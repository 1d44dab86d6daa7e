/* SPDX-License-Identifier: MIT */
/*
 * io_uring_enter(2): submission, waiting for completions (plain, IOPOLL,
 * EXT_ARG timeouts) and the SQPOLL poller thread.
 *
 * Without SQPOLL nothing runs in the background: the device is reaped here,
 * in the caller's thread. Threads: as the kernel allows, one thread may
 * submit while others wait in GETEVENTS or register; the ring's lock
 * (r->lock, the kernel's uring_lock) is held for each submission and each
 * reap pass, never across a backoff, so a waiter never holds up a
 * submitter for longer than one pass. Waiting spins on the queue pair while commands
 * are in the device (they complete in microseconds) and backs off to short
 * sleeps when nothing is in flight (then only a timeout can end the wait,
 * as in the kernel).
 */
#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "abi/ring.h"

#define UR_ENTER_FLAGS (IORING_ENTER_GETEVENTS | IORING_ENTER_SQ_WAKEUP | IORING_ENTER_SQ_WAIT | \
			IORING_ENTER_EXT_ARG | IORING_ENTER_REGISTERED_RING)
#define UR_RINGFD_REG_MAX 16      /* IO_RINGFD_REG_MAX */
#define UR_KERNEL_SIGSET  8       /* sizeof(sigset_t) in the kernel */

/* ur_lock() found the lock held (@seen 1 or 2): mark it contended (2)
 * and sleep until a release finds the mark and wakes one of us. Whoever
 * takes it here leaves it at 2, so its release wakes the next sleeper
 * (at worst one wakeup too many, never one too few). */
void ur_lock_slow(struct ur_lock *l, uint32_t seen)
{
	uint32_t c = seen;
	if (c != 2)
		c = atomic_exchange_explicit(&l->v, 2, memory_order_acquire);
	while (c != 0) {
		syscall(SYS_futex, &l->v, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
		c = atomic_exchange_explicit(&l->v, 2, memory_order_acquire);
	}
}

void ur_unlock_wake(struct ur_lock *l)
{
	syscall(SYS_futex, &l->v, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);   /* vDSO: no syscall */
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ur_reap() after the poll: timers, the kernel ring, what completed,
 * what waits for room. */
static __attribute__((noinline)) void ur_reap_rest(struct ur_ring *r)
{
	if (r->timeouts)
		ur_timeouts_expire(r);
	if (r->kring_inflight)
		ur_kring_reap(r);
	if (r->done.head || r->defer.head)
		ur_finish_done(r);
	if (r->retry.head) {
		ur_retry_issue(r);
		if (r->done.head)
			ur_finish_done(r);
	}
}

/* Poll the device once and finish what completed. Returns what
 * nvr_qpair_poll() returned. */
int ur_reap(struct ur_ring *r)
{
	int n = 0;
	if (r->in_device) {
		uint32_t before = r->cq_tail;
		n = nvr_qpair_poll(r->qp, 0);
		if (r->cq_tail != before)
			ur_cq_tail_release(r);   /* CQEs ur_complete_io() posted */
	}
	/* the rest is rare on the fast path (ur_complete_io() posts most
	 * CQEs inside the poll): one test for all of it */
	if (__builtin_expect(r->timeouts || r->kring_inflight || r->done.head || r->defer.head ||
			     r->retry.head, 0))
		ur_reap_rest(r);
	return n;
}

static inline uint32_t ur_cq_ready(struct ur_ring *r)
{
	/* acquire on the tail: another thread (SQPOLL) may be its writer */
	return atomic_load_explicit(r->cq_ktail, memory_order_acquire) - ur_cq_head_acquire(r);
}

static void ur_backoff(unsigned *idle)
{
	if (++*idle < 64) {
		ur_cpu_relax();
	} else if (*idle < 256) {
		sched_yield();
	} else {
		struct timespec ts = { 0, 20000 };
		nanosleep(&ts, NULL);
	}
}

/* io_cqring_wait(): wait until @min CQEs are ready or @deadline passes. */
static int ur_wait(struct ur_ring *r, unsigned min, uint64_t deadline)
{
	bool sqpoll = r->flags & IORING_SETUP_SQPOLL;
	unsigned idle = 0;
	int ret = 0;
	/* io_should_wake(): a timeout that fires ends the wait too */
	uint32_t timeouts = __atomic_load_n(&r->cq_timeouts, __ATOMIC_RELAXED);
	/* The kernel posts completions that interrupts delivered (task work)
	 * on every syscall, so even min_complete 0 shows what the device has
	 * finished: reap once before looking. */
	if (!sqpoll) {
		ur_lock(&r->lock);
		if (r->in_device || r->retry.head || r->done.head || r->kring_inflight ||
		    r->timeouts)
			ur_reap(r);
		ur_unlock(&r->lock);
	}
	for (;;) {
		if (atomic_load_explicit(&r->has_overflow, memory_order_relaxed)) {
			ur_lock(&r->lock);
			ur_cq_flush_overflow(r);
			ur_unlock(&r->lock);
		}
		if (ur_cq_ready(r) >= min ||
		    __atomic_load_n(&r->cq_timeouts, __ATOMIC_RELAXED) != timeouts)
			return 0;
		if (deadline && now_ns() >= deadline) {
			ret = -ETIME;
			break;
		}
		if (!sqpoll) {
			ur_lock(&r->lock);
			uint32_t before = r->cq_tail;
			ur_reap(r);
			bool progress = r->cq_tail != before || r->in_device;
			ur_unlock(&r->lock);
			if (progress) {
				idle = 0;
				continue;
			}
		}
		/* served: a client killed while we wait for it is noticed
		 * (its pidfd), so that its rings can be closed */
		if (__builtin_expect(r->client != NULL, 0) && !(idle & 255) && ur_tls_client &&
		    ur_client_gone(ur_tls_client)) {
			ret = -ENODEV;
			break;
		}
		ur_backoff(&idle);
	}
	return ur_cq_ready(r) ? 0 : ret;
}

/* io_iopoll_check(): return at once if CQEs are ready; else reap until
 * @min completions were found or nothing is left in flight. */
static int ur_iopoll_check(struct ur_ring *r, unsigned min)
{
	/* the flag first: no lock round trip when there is no backlog */
	if (atomic_load_explicit(&r->has_overflow, memory_order_relaxed)) {
		ur_lock(&r->lock);
		ur_cq_flush_overflow(r);
		ur_unlock(&r->lock);
	}
	if (ur_cq_ready(r))
		return 0;
	unsigned found = 0;
	for (;;) {
		ur_lock(&r->lock);   /* per pass: a submitter gets in */
		uint32_t before = r->cq_tail;
		ur_reap(r);
		found += r->cq_tail - before;
		bool idle = !r->in_device && !r->retry.head && !r->done.head;
		ur_unlock(&r->lock);
		if (idle || found >= min)
			break;
	}
	return 0;
}

/* The wait's arguments: the deadline (0: none) and the signal mask to wait
 * with (*has_mask), read as the kernel reads them. */
static int ur_get_ext_arg(unsigned flags, const void *arg, size_t argsz, uint64_t *deadline,
			  sigset_t *mask, bool *has_mask)
{
	*deadline = 0;
	*has_mask = false;
	uint64_t umask = 0;
	if (!(flags & IORING_ENTER_EXT_ARG)) {
		if (arg && argsz != UR_KERNEL_SIGSET)
			return -EINVAL;
		umask = (uintptr_t)arg;
	} else {
		if (argsz != sizeof(struct io_uring_getevents_arg))
			return -EINVAL;
		struct io_uring_getevents_arg ea;
		if (ur_copy_from_user(&ea, (uintptr_t)arg, sizeof(ea)))
			return -EFAULT;
		if (ea.sigmask && ea.sigmask_sz != UR_KERNEL_SIGSET)
			return -EINVAL;
		umask = ea.sigmask;
		if (ea.ts) {
			struct __kernel_timespec ts;
			if (ur_copy_from_user(&ts, ea.ts, sizeof(ts)))
				return -EFAULT;
			if (ts.tv_sec < 0 || ts.tv_nsec < 0 || ts.tv_nsec >= 1000000000)
				return -EINVAL;
			/* the kernel's timespec64_to_ktime() saturates at KTIME_MAX:
			 * a timeout too long to represent ({LONG_MAX, 0}) is a wait
			 * without end, never an overflow into the past */
			uint64_t now = now_ns(), max_s = (UINT64_MAX - now) / 1000000000ull - 1;
			if ((uint64_t)ts.tv_sec < max_s)
				*deadline = now + (uint64_t)ts.tv_sec * 1000000000ull +
					    (uint64_t)ts.tv_nsec;
		}
	}
	if (umask) {
		/* set_user_sigmask(): the kernel's sigset is 8 bytes, glibc's
		 * larger; only the first 8 bytes are the mask */
		sigemptyset(mask);
		if (ur_copy_from_user(mask, umask, UR_KERNEL_SIGSET))
			return -EFAULT;
		*has_mask = true;
	}
	return 0;
}

static int ur_sq_wait_space(struct ur_ring *r)
{
	unsigned idle = 0;
	/* io_sqpoll_wait_sq(): until the poller has consumed something */
	while (ur_sq_tail_acquire(r) - atomic_load_explicit(r->sq_khead, memory_order_acquire) >=
	       r->sq_entries) {
		if (!r->sq_thread_running)
			return -EOWNERDEAD;
		ur_backoff(&idle);
	}
	return 0;
}

void ur_sq_wakeup(struct ur_ring *r)
{
	atomic_fetch_add_explicit(&r->sq_wake, 1, memory_order_release);
	syscall(SYS_futex, &r->sq_wake, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* The parts of an enter besides the bare poll, out of line so that the
 * enters that only poll (an application spinning without GETEVENTS, or
 * between GETEVENTS) run in a small frame. */

/* SQPOLL: the poller owns the queues; only this flag is read here. */
static __attribute__((noinline)) int ur_enter_sqpoll(struct ur_ring *r, unsigned flags)
{
	if (atomic_load_explicit(&r->has_overflow, memory_order_relaxed)) {
		ur_lock(&r->lock);
		ur_cq_flush_overflow(r);
		ur_unlock(&r->lock);
	}
	if (!r->sq_thread_running)
		return -EOWNERDEAD;
	if (flags & IORING_ENTER_SQ_WAKEUP)
		ur_sq_wakeup(r);
	if (flags & IORING_ENTER_SQ_WAIT)
		return ur_sq_wait_space(r);
	return 0;
}

/* Submission, one doorbell for the batch; without GETEVENTS also the
 * progress pass in the same lock hold (*reaped). */
static __attribute__((noinline)) int ur_enter_submit(struct ur_ring *r, unsigned to_submit,
						     unsigned flags, bool *reaped)
{
	ur_lock(&r->lock);
	int ret = ur_submit(r, to_submit);
	if (r->done.head || r->retry.head)
		ur_reap(r);
	nvr_qpair_kick(r->qp);   /* one doorbell for the batch */
	*reaped = !(flags & IORING_ENTER_GETEVENTS) && r->in_device && (unsigned)ret == to_submit;
	if (*reaped)
		ur_reap(r);
	ur_unlock(&r->lock);
	return ret;
}

static int ur_enter_wait(struct ur_ring *r, unsigned min_complete, unsigned flags,
			 const void *arg, size_t argsz);

NVR_API int nvr_uring_enter(int fd, unsigned to_submit, unsigned min_complete,
			    unsigned flags, const void *arg, size_t argsz)
{
	if (flags & ~UR_ENTER_FLAGS)
		return -EINVAL;
	if (flags & IORING_ENTER_REGISTERED_RING)   /* no ring fds are registered */
		return (unsigned)fd >= UR_RINGFD_REG_MAX ? -EINVAL : -EBADF;
	int err;
	struct ur_ring *r = ur_ring_get(fd, &err);
	if (!r)   /* or a ring an owner serves (client.c) */
		return ur_remote_enter(fd, to_submit, min_complete, flags, arg, argsz, err);
	if (atomic_load_explicit(&r->disabled, memory_order_acquire))
		return -EBADFD;

	int ret = 0;
	if (r->flags & IORING_SETUP_SQPOLL) {
		ret = ur_enter_sqpoll(r, flags);
		if (ret)
			return ret;
		ret = (int)to_submit;
	} else if (to_submit) {
		bool reaped;
		ret = ur_enter_submit(r, to_submit, flags, &reaped);
		if ((unsigned)ret != to_submit || reaped)
			return ret;
	}
	if (flags & IORING_ENTER_GETEVENTS) {
		int ret2 = ur_enter_wait(r, min_complete, flags, arg, argsz);
		if (!ret)
			ret = ret2;
	} else if (!(r->flags & IORING_SETUP_SQPOLL) && r->in_device) {
		/* no wait asked: still make progress, as interrupts would */
		ur_lock(&r->lock);
		ur_reap(r);
		ur_unlock(&r->lock);
	}
	return ret;
}

/* GETEVENTS: the wait, with its arguments and signal mask. Out of line:
 * its two sigsets and the wait's state would otherwise make every enter's
 * frame large, the many that only submit or reap once included. */
static __attribute__((noinline)) int ur_enter_wait(struct ur_ring *r, unsigned min_complete,
						   unsigned flags, const void *arg, size_t argsz)
{
	int ret2;
	uint64_t deadline;
	if (min_complete > r->cq_entries)
		min_complete = r->cq_entries;
	bool iopoll = (r->flags & (IORING_SETUP_IOPOLL | IORING_SETUP_SQPOLL)) ==
		      IORING_SETUP_IOPOLL;
	sigset_t mask, saved;
	bool has_mask;
	ret2 = ur_get_ext_arg(flags, arg, argsz, &deadline, &mask, &has_mask);
	if (!ret2) {
		/* the wait runs with the caller's mask, as the kernel's
		 * does; a signal it lets through runs its handler, but the
		 * wait goes on (no -EINTR: fio's inline enter would read a
		 * stale errno) */
		if (has_mask)
			pthread_sigmask(SIG_SETMASK, &mask, &saved);
		ret2 = iopoll ? ur_iopoll_check(r, min_complete)
			      : ur_wait(r, min_complete, deadline);
		if (has_mask)
			pthread_sigmask(SIG_SETMASK, &saved, NULL);
	}
	return ret2;
}

/* ---- SQPOLL ---- */

static void *ur_sq_thread(void *arg)
{
	struct ur_ring *r = arg;
	uint64_t last_busy = now_ns();
	unsigned idle = 0;
	ur_tls_client = r->client;   /* served: the memory is the creator's */
	if (r->sq_cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(r->sq_cpu, &set);
		pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	}
	while (!atomic_load_explicit(&r->sq_stop, memory_order_acquire)) {
		bool busy = false;
		ur_lock(&r->lock);
		if (!atomic_load_explicit(&r->disabled, memory_order_acquire)) {
			uint32_t before = r->cq_tail;
			int n = ur_submit(r, r->sq_entries);
			ur_reap(r);
			nvr_qpair_kick(r->qp);
			busy = n > 0 || r->cq_tail != before;
		}
		bool pending = r->in_device || r->retry.head || r->defer.head || r->timeouts ||
			       r->kring_inflight;
		ur_unlock(&r->lock);
		if (busy || pending) {
			if (busy)
				last_busy = now_ns();
			idle = 0;
			continue;
		}
		if (now_ns() - last_busy < (uint64_t)r->sq_idle_ms * 1000000ull) {
			ur_backoff(&idle);
			continue;
		}
		/* Idle: ask for a wakeup, then look once more so that an SQE
		 * published before the flag was visible is not missed. */
		uint32_t seq = atomic_load_explicit(&r->sq_wake, memory_order_acquire);
		ur_sq_flags_set(r, IORING_SQ_NEED_WAKEUP);
		atomic_thread_fence(memory_order_seq_cst);  /* flag store before tail load */
		if (ur_sq_tail_acquire(r) == r->sq_head &&
		    !atomic_load_explicit(&r->sq_stop, memory_order_acquire))
			syscall(SYS_futex, &r->sq_wake, FUTEX_WAIT_PRIVATE, seq, NULL, NULL, 0);
		ur_sq_flags_clear(r, IORING_SQ_NEED_WAKEUP);
		last_busy = now_ns();
		idle = 0;
	}
	return NULL;
}

int ur_sqpoll_start(struct ur_ring *r)
{
	atomic_store(&r->sq_stop, false);
	int ret = pthread_create(&r->sq_thread, NULL, ur_sq_thread, r);
	if (ret)
		return -ret;
	r->sq_thread_running = true;
	return 0;
}

void ur_sqpoll_stop(struct ur_ring *r)
{
	if (!r->sq_thread_running)
		return;
	atomic_store_explicit(&r->sq_stop, true, memory_order_release);
	ur_sq_wakeup(r);
	pthread_join(r->sq_thread, NULL);
	r->sq_thread_running = false;
}
