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
/* CANCEL_FLAGS of the guest's 6.1 (Debian 6.1.192, io_uring/cancel.c: the
 * stable series took USERDATA and OP) */
#define UR_CANCEL_FLAGS  (IORING_ASYNC_CANCEL_ALL | IORING_ASYNC_CANCEL_FD | \
			  IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_FD_FIXED | \
			  IORING_ASYNC_CANCEL_USERDATA | IORING_ASYNC_CANCEL_OP)

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

/* A user timespec as nanoseconds, read as the prep functions read it
 * (get_timespec64(), then "tv_sec < 0 || tv_nsec < 0" is -EINVAL): a
 * tv_nsec of a second or more is no error, ktime_set() adds it as it is;
 * what does not fit saturates. -EFAULT / -EINVAL. */
static int tmo_read(uint64_t uts, uint64_t *ns)
{
	struct __kernel_timespec ts;
	if (ur_copy_from_user(&ts, uts, sizeof(ts)))
		return -EFAULT;
	if (ts.tv_sec < 0 || ts.tv_nsec < 0)
		return -EINVAL;
	uint64_t t = (uint64_t)ts.tv_sec > UINT64_MAX / 2000000000ull
		     ? UINT64_MAX / 2 : (uint64_t)ts.tv_sec * 1000000000ull;
	*ns = t + (uint64_t)ts.tv_nsec >= t ? t + (uint64_t)ts.tv_nsec : UINT64_MAX / 2;
	return 0;
}

/* Nanoseconds from tmo_read() (relative, or absolute on the clock @flags
 * name) as a monotonic deadline, never 0. */
static uint64_t tmo_at(uint64_t t, uint32_t flags)
{
	uint64_t mono = clock_ns(CLOCK_MONOTONIC), at;
	if (flags & IORING_TIMEOUT_ABS) {
		uint64_t now = clock_ns(tmo_clock(flags));
		t = t > now ? t - now : 0;
	}
	/* >=: a zero timespec is due now (an overflow is only a wrap) */
	at = mono + t >= mono ? mono + t : UINT64_MAX - 1;
	return at ? at : 1;
}

/* Submission: io_timeout_prep(), io_timeout_remove_prep(),
 * io_async_cancel_prep(). */
int ur_timeout_prep(struct ur_ring *r, struct ur_req *req, const struct io_uring_sqe *sqe)
{
	uint32_t flags = sqe->timeout_flags;
	switch (req->opcode) {
	case IORING_OP_TIMEOUT:
	case IORING_OP_LINK_TIMEOUT: {   /* __io_timeout_prep(), in its order */
		bool is_link = req->opcode == IORING_OP_LINK_TIMEOUT;
		if (sqe->addr3 || sqe->__pad2[0])
			return -EINVAL;
		if (sqe->buf_index || sqe->len != 1 || sqe->splice_fd_in)
			return -EINVAL;
		if ((uint32_t)sqe->off && is_link)   /* the kernel reads off as u32 */
			return -EINVAL;
		if (flags & ~UR_TIMEOUT_FLAGS)
			return -EINVAL;
		if (__builtin_popcount(flags & IORING_TIMEOUT_CLOCK_MASK) > 1)
			return -EINVAL;
		req->tmo_flags = flags;
		req->tmo_count = (uint32_t)sqe->off;
		/* the kernel reads the timespec here; it is armed at issue */
		uint64_t ns;
		int ret = tmo_read(sqe->addr, &ns);
		if (ret)
			return ret;
		req->tmo_ns = tmo_at(ns, flags);
		/* a link timeout needs a request before it in the link, and
		 * not another link timeout */
		if (is_link && (!r->link_head || r->link_last->opcode == IORING_OP_LINK_TIMEOUT))
			return -EINVAL;
		return 0;
	}
	case IORING_OP_TIMEOUT_REMOVE:   /* io_timeout_remove_prep() */
		if (req->sqe_flags & (IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT))
			return -EINVAL;
		if (sqe->addr3 || sqe->__pad2[0])
			return -EINVAL;
		if (sqe->buf_index || sqe->len || sqe->splice_fd_in)
			return -EINVAL;
		req->tmo_flags = flags;
		req->tmo_key = sqe->addr;
		if (flags & IORING_TIMEOUT_UPDATE_MASK) {
			/* (both update kinds at once: refused as before; 6.1.192
			 * takes it as a link timeout update, which is not done
			 * here) */
			if ((flags & IORING_TIMEOUT_UPDATE_MASK) == IORING_TIMEOUT_UPDATE_MASK)
				return -EINVAL;
			if (__builtin_popcount(flags & IORING_TIMEOUT_CLOCK_MASK) > 1)
				return -EINVAL;
			if (flags & ~(IORING_TIMEOUT_UPDATE_MASK | IORING_TIMEOUT_ABS))
				return -EINVAL;
			/* the new timespec is read here too; applied at issue */
			return tmo_read(sqe->addr2, &req->tmo_ns);
		}
		return flags ? -EINVAL : 0;
	case IORING_OP_ASYNC_CANCEL:     /* io_async_cancel_prep() */
		if (req->sqe_flags & IOSQE_BUFFER_SELECT)
			return -EINVAL;
		if (sqe->off || sqe->splice_fd_in)
			return -EINVAL;   /* len is CANCEL_OP's opcode, never refused */
		flags = sqe->cancel_flags;
		if (flags & ~UR_CANCEL_FLAGS)
			return -EINVAL;
		if ((flags & (IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_OP)) &&
		    (flags & IORING_ASYNC_CANCEL_ANY))
			return -EINVAL;
		req->len = sqe->len;
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

/* io_cancel_req_match() for cancel request @c against armed timeout @t:
 * ANY matches all; by fd nothing (timeouts have no file); OP the opcode
 * in c->len; the user_data unless only FD/OP was asked for. */
static bool tmo_cancel_match(const struct ur_req *c, const struct ur_req *t)
{
	uint32_t f = c->tmo_flags;
	bool by_ud = (f & IORING_ASYNC_CANCEL_USERDATA) ||
		     !(f & (IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_OP));
	if (f & IORING_ASYNC_CANCEL_ANY)
		return true;
	if (f & IORING_ASYNC_CANCEL_FD)
		return false;
	if ((f & IORING_ASYNC_CANCEL_OP) && t->opcode != c->len)
		return false;
	return !by_ud || t->user_data == c->tmo_key;
}

/* io_try_cancel() for what nvring can hold: an armed TIMEOUT that cancel
 * request @c matches. 0 canceled, -ENOENT. */
static int tmo_cancel_one(struct ur_ring *r, const struct ur_req *c)
{
	for (struct ur_req *t = r->timeouts; t; t = t->tmo_next) {
		if (t == c || t->opcode != IORING_OP_TIMEOUT || !tmo_cancel_match(c, t))
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
			/* the new mode, on the clock the timeout has (the
			 * update's flags may name none: see the prep) */
			t->tmo_ns = tmo_at(req->tmo_ns, (req->tmo_flags & IORING_TIMEOUT_ABS) |
							(t->tmo_flags & IORING_TIMEOUT_CLOCK_MASK));
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
		bool all = req->tmo_flags & (IORING_ASYNC_CANCEL_ALL | IORING_ASYNC_CANCEL_ANY);
		int n = 0;
		/* by fd: timeouts have none, nothing else is cancelable */
		if (req->tmo_flags & IORING_ASYNC_CANCEL_FD) {
			ur_complete(r, req, -ENOENT);
			return;
		}
		while (tmo_cancel_one(r, req) == 0) {
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
