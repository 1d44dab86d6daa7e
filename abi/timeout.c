/* SPDX-License-Identifier: MIT */
/*
 * The ring's own timers, as Linux 6.1's io_uring/timeout.c and cancel.c
 * give them: IORING_OP_TIMEOUT (relative or IORING_TIMEOUT_ABS on the
 * monotonic, boot or real-time clock; with a completion count in sqe->off;
 * IORING_TIMEOUT_ETIME_SUCCESS), IORING_OP_TIMEOUT_REMOVE (and
 * IORING_TIMEOUT_UPDATE), IORING_OP_LINK_TIMEOUT and IORING_OP_ASYNC_CANCEL.
 *
 * There are no kernel timers here: armed timeouts sit on r->timeouts and
 * fire when the ring is polled (ur_reap(): enter's wait loop, the SQPOLL
 * poller), as completions only ever appear then. Counted timeouts follow
 * the kernel's sequence: CQEs posted minus timeouts completed, checked
 * after each batch of completions (io_flush_timeouts()).
 *
 * What can be canceled is what the kernel can cancel for a block device:
 * timeouts. A read or write sent to the device (the kernel's, too, once
 * issued inline) and requests waiting behind a link or drain are not
 * found: -ENOENT.
 */
#include <errno.h>
#include <time.h>

#include "abi/ring.h"

#define UR_TIMEOUT_FLAGS (IORING_TIMEOUT_ABS | IORING_TIMEOUT_CLOCK_MASK | \
			  IORING_TIMEOUT_ETIME_SUCCESS)
/* 6.1's CANCEL_FLAGS */
#define UR_CANCEL_FLAGS  (IORING_ASYNC_CANCEL_ALL | IORING_ASYNC_CANCEL_FD | \
			  IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_FD_FIXED)

static uint64_t clock_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static clockid_t tmo_clock(uint32_t flags)
{
	if (flags & IORING_TIMEOUT_BOOTTIME)
		return CLOCK_BOOTTIME;
	if (flags & IORING_TIMEOUT_REALTIME)
		return CLOCK_REALTIME;
	return CLOCK_MONOTONIC;
}

/* A user timespec into a monotonic deadline; -EFAULT / -EINVAL. */
static int tmo_deadline(uint64_t uts, uint32_t flags, uint64_t *out)
{
	struct __kernel_timespec ts;
	if (ur_copy_from_user(&ts, uts, sizeof(ts)))
		return -EFAULT;
	if (ts.tv_sec < 0 || ts.tv_nsec < 0 || ts.tv_nsec >= 1000000000)
		return -EINVAL;
	uint64_t t = (uint64_t)ts.tv_sec > UINT64_MAX / 2000000000ull
		     ? UINT64_MAX / 2 : (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	uint64_t mono = clock_ns(CLOCK_MONOTONIC);
	if (flags & IORING_TIMEOUT_ABS) {
		uint64_t now = clock_ns(tmo_clock(flags));
		t = t > now ? t - now : 0;
	}
	/* >=: a zero timespec is due now (an overflow is only a wrap) */
	*out = mono + t >= mono ? mono + t : UINT64_MAX - 1;
	if (!*out)
		*out = 1;
	return 0;
}

/* Submission: io_timeout_prep(), io_timeout_remove_prep(),
 * io_async_cancel_prep(). */
int ur_timeout_prep(struct ur_ring *r, struct ur_req *req, const struct io_uring_sqe *sqe)
{
	uint32_t flags = sqe->timeout_flags;
	switch (req->opcode) {
	case IORING_OP_TIMEOUT:
	case IORING_OP_LINK_TIMEOUT: {
		bool is_link = req->opcode == IORING_OP_LINK_TIMEOUT;
		if (sqe->buf_index || sqe->len != 1 || sqe->splice_fd_in)
			return -EINVAL;
		if (sqe->off && is_link)
			return -EINVAL;
		if (flags & ~UR_TIMEOUT_FLAGS)
			return -EINVAL;
		if (__builtin_popcount(flags & IORING_TIMEOUT_CLOCK_MASK) > 1)
			return -EINVAL;
		/* a link timeout needs a request before it in the link */
		if (is_link && !r->link_head)
			return -EINVAL;
		req->tmo_flags = flags;
		req->tmo_count = (uint32_t)sqe->off;
		/* the kernel reads the timespec here; it is armed at issue */
		return tmo_deadline(sqe->addr, flags, &req->tmo_ns) < 0 ? -EFAULT : 0;
	}
	case IORING_OP_TIMEOUT_REMOVE:
		if (sqe->buf_index || sqe->len || sqe->splice_fd_in)
			return -EINVAL;
		req->tmo_flags = flags;
		req->tmo_key = sqe->addr;
		if (flags & IORING_TIMEOUT_UPDATE_MASK) {
			if ((flags & IORING_TIMEOUT_UPDATE_MASK) == IORING_TIMEOUT_UPDATE_MASK)
				return -EINVAL;
			if (flags & ~(UR_TIMEOUT_FLAGS | IORING_TIMEOUT_UPDATE_MASK))
				return -EINVAL;
			req->addr = sqe->addr2;      /* the new timespec, read at issue */
			return 0;
		}
		return flags ? -EINVAL : 0;
	case IORING_OP_ASYNC_CANCEL:
		if (req->sqe_flags & IOSQE_BUFFER_SELECT)
			return -EINVAL;
		if (sqe->off || sqe->len || sqe->splice_fd_in)
			return -EINVAL;
		flags = sqe->cancel_flags;
		if (flags & ~UR_CANCEL_FLAGS)
			return -EINVAL;
		if ((flags & IORING_ASYNC_CANCEL_FD) && (flags & IORING_ASYNC_CANCEL_ANY))
			return -EINVAL;
		req->tmo_flags = flags;
		req->tmo_key = sqe->addr;
		req->fd = sqe->fd;
		return 0;
	}
	return -EOPNOTSUPP;
}

static void tmo_add(struct ur_ring *r, struct ur_req *t)
{
	t->tmo_next = r->timeouts;
	r->timeouts = t;
	r->ntimeouts++;
}

static bool tmo_del(struct ur_ring *r, struct ur_req *t)
{
	for (struct ur_req **p = &r->timeouts; *p; p = &(*p)->tmo_next)
		if (*p == t) {
			*p = t->tmo_next;
			t->tmo_next = NULL;
			r->ntimeouts--;
			return true;
		}
	return false;
}

static uint32_t tmo_seq(const struct ur_ring *r)
{
	return r->cq_seq - r->cq_timeouts;
}

/* A TIMEOUT completes. Only one that fired or met its count is one of
 * cq_timeouts (io_timeout_fn(), io_kill_timeout()); a removed or canceled
 * one posts a CQE that counts toward the others, as in the kernel. */
static void tmo_complete(struct ur_ring *r, struct ur_req *t, int res, bool fail)
{
	if (res != -ECANCELED)
		__atomic_store_n(&r->cq_timeouts, r->cq_timeouts + 1, __ATOMIC_RELAXED);
	if (!fail)
		t->rflags |= UR_F_NO_FAIL;
	ur_complete(r, t, res);
}

/* io_try_cancel() for what nvring can hold: an armed TIMEOUT whose
 * user_data (or anything, with ANY) matches. 0 canceled, -ENOENT. */
static int tmo_cancel_one(struct ur_ring *r, uint64_t key, bool any, struct ur_req *self)
{
	for (struct ur_req *t = r->timeouts; t; t = t->tmo_next) {
		if (t == self || t->opcode != IORING_OP_TIMEOUT)
			continue;
		if (!any && t->user_data != key)
			continue;
		tmo_del(r, t);
		tmo_complete(r, t, -ECANCELED, true);
		return 0;
	}
	return -ENOENT;
}

void ur_timeout_issue(struct ur_ring *r, struct ur_req *req)
{
	switch (req->opcode) {
	case IORING_OP_TIMEOUT:
		/* io_timeout(): the target counts from now */
		req->tmo_target = tmo_seq(r) + req->tmo_count;
		tmo_add(r, req);
		return;
	case IORING_OP_LINK_TIMEOUT:
		/* armed by the request before it (ur_link_timeout_arm()); one
		 * issued on its own has nothing to guard */
		ur_complete(r, req, -ECANCELED);
		return;
	case IORING_OP_TIMEOUT_REMOVE: {
		struct ur_req *t = r->timeouts;
		while (t && !(t->opcode == IORING_OP_TIMEOUT && t->user_data == req->tmo_key))
			t = t->tmo_next;
		int ret = 0;
		if (!t) {
			ret = -ENOENT;
		} else if (req->tmo_flags & IORING_TIMEOUT_UPDATE) {
			uint64_t d;
			ret = tmo_deadline(req->addr, req->tmo_flags, &d);
			if (!ret)
				t->tmo_ns = d;
		} else {
			tmo_del(r, t);
			tmo_complete(r, t, -ECANCELED, true);
		}
		ur_complete(r, req, ret);
		return;
	}
	case IORING_OP_ASYNC_CANCEL: {
		/* __io_async_cancel(): ALL and ANY cancel every match and
		 * return how many; else the first match, 0 */
		bool any = req->tmo_flags & IORING_ASYNC_CANCEL_ANY;
		bool all = req->tmo_flags & (IORING_ASYNC_CANCEL_ALL | IORING_ASYNC_CANCEL_ANY);
		int n = 0;
		/* by fd: timeouts have none, nothing else is cancelable */
		if (req->tmo_flags & IORING_ASYNC_CANCEL_FD) {
			ur_complete(r, req, -ENOENT);
			return;
		}
		while (tmo_cancel_one(r, req->tmo_key, any, req) == 0) {
			n++;
			if (!all)
				break;
		}
		ur_complete(r, req, n ? (all ? n : 0) : -ENOENT);
		return;
	}
	}
}

/* @req is being issued and a LINK_TIMEOUT follows it in its chain: take the
 * link timeout out of the chain and start its timer (io_prep_linked_timeout
 * and io_queue_linked_timeout()). */
void ur_link_timeout_arm(struct ur_ring *r, struct ur_req *req)
{
	struct ur_req *lt = req->link;
	req->link = lt->link;
	lt->link = NULL;
	lt->lt_prev = req;
	req->lt = lt;
	tmo_add(r, lt);
}

/* @req completed first: its link timeout ends with -ECANCELED. */
void ur_link_timeout_disarm(struct ur_ring *r, struct ur_req *req)
{
	struct ur_req *lt = req->lt;
	req->lt = NULL;
	lt->lt_prev = NULL;
	tmo_del(r, lt);
	ur_complete(r, lt, -ECANCELED);
}

/* Fire what is due, earliest deadline first (a poll may come late, after
 * several deadlines passed: the kernel's timers would have fired in
 * deadline order, and a link timeout that fires first cancels its target). */
void ur_timeouts_expire(struct ur_ring *r)
{
	uint64_t now = clock_ns(CLOCK_MONOTONIC);
	for (;;) {
		struct ur_req *t = NULL;
		for (struct ur_req *c = r->timeouts; c; c = c->tmo_next)
			if (c->tmo_ns && c->tmo_ns <= now && (!t || c->tmo_ns < t->tmo_ns))
				t = c;
		if (!t)
			return;
		tmo_del(r, t);
		if (t->opcode == IORING_OP_TIMEOUT) {
			/* io_timeout_fn(): -ETIME, failing the link unless
			 * ETIME_SUCCESS */
			tmo_complete(r, t, -ETIME, !(t->tmo_flags & IORING_TIMEOUT_ETIME_SUCCESS));
			continue;
		}
		/* a link timeout fired first: try to cancel what it guards
		 * (io_req_task_link_timeout()); only a timeout can be */
		struct ur_req *prev = t->lt_prev;
		int ret = -ENOENT;
		if (prev) {
			prev->lt = NULL;
			t->lt_prev = NULL;
			if (prev->opcode == IORING_OP_TIMEOUT && tmo_del(r, prev)) {
				tmo_complete(r, prev, -ECANCELED, true);
				ret = 0;
			}
		}
		ur_complete(r, t, ret ? ret : -ETIME);
	}
}

/* io_flush_timeouts(): counted timeouts whose completions have come. */
void ur_timeouts_flush(struct ur_ring *r)
{
	uint32_t seq = tmo_seq(r), last = r->cq_last_flush;
	struct ur_req **p = &r->timeouts;
	while (*p) {
		struct ur_req *t = *p;
		if (t->opcode != IORING_OP_TIMEOUT || !t->tmo_count ||
		    seq - last < t->tmo_target - last) {
			p = &t->tmo_next;
			continue;
		}
		*p = t->tmo_next;
		t->tmo_next = NULL;
		r->ntimeouts--;
		tmo_complete(r, t, 0, true);
	}
	r->cq_last_flush = seq;
}
