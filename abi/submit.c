/* SPDX-License-Identifier: MIT */
/*
 * Submission: consuming the SQ ring, checking each SQE as the kernel's
 * io_init_req() does (Linux 6.1 io_uring/io_uring.c), assembling link
 * chains, IOSQE_IO_DRAIN.
 *
 * NVMe does not order commands, so ordering is ours: the members of a
 * chain go to the device one after another (the next when the previous
 * completes), and a drained request starts only when everything submitted
 * before it has completed; what is submitted after it waits behind it.
 */
#include <errno.h>
#include <fcntl.h>

#include "abi/ring.h"

#define UR_SQE_COMMON (IOSQE_FIXED_FILE | IOSQE_IO_LINK | IOSQE_IO_HARDLINK | IOSQE_ASYNC)

/* The kernel's per-opcode properties that io_init_req() consults. */
struct ur_opdef {
	bool supported, needs_file, ioprio, iopoll, buffer_select;
};

static const struct ur_opdef ur_opdefs[IORING_OP_LAST] = {
	[IORING_OP_NOP]         = { .supported = 1, .iopoll = 1 },
	[IORING_OP_READV]       = { 1, 1, 1, 1, 1 },
	[IORING_OP_WRITEV]      = { 1, 1, 1, 1, 0 },
	[IORING_OP_READ_FIXED]  = { 1, 1, 1, 1, 0 },
	[IORING_OP_WRITE_FIXED] = { 1, 1, 1, 1, 0 },
	[IORING_OP_READ]        = { 1, 1, 1, 1, 1 },
	[IORING_OP_WRITE]       = { 1, 1, 1, 1, 0 },
	[IORING_OP_FSYNC]       = { .supported = 1, .needs_file = 1 },
	[IORING_OP_FALLOCATE]   = { .supported = 1, .needs_file = 1 },
	/* the ring's own timers (timeout.c) */
	[IORING_OP_TIMEOUT]        = { .supported = 1 },
	[IORING_OP_TIMEOUT_REMOVE] = { .supported = 1 },
	[IORING_OP_LINK_TIMEOUT]   = { .supported = 1 },
	[IORING_OP_ASYNC_CANCEL]   = { .supported = 1 },
};

bool ur_op_supported(unsigned op)
{
	return op < IORING_OP_LAST && ur_opdefs[op].supported;
}

/* ioprio_check_cap() (block/ioprio.c): class in bits 15..13, level in
 * bits 2..0; bits 12..3 are hints, not checked. Measured in the guest,
 * Linux 6.1 (Debian 6.1.0-56): class BE with data 9 is accepted (level 1),
 * so the level is 3 bits there too, not the whole 13-bit data field. */
static int ur_ioprio_check(uint16_t ioprio)
{
	unsigned cls = ioprio >> 13, level = ioprio & 7;
	switch (cls) {
	case 1: /* RT: we run as root; CAP_SYS_ADMIN */
	case 2: /* BE */
	case 3: /* IDLE */
		return 0;
	case 0: /* NONE */
		return level ? -EINVAL : 0;
	default:
		return -EINVAL;
	}
}

static int ur_prep(struct ur_ring *r, struct ur_req *req, const struct io_uring_sqe *sqe)
{
	switch (req->opcode) {
	case IORING_OP_NOP:
		/* io_nop_prep(): measured in the guest, Linux 6.1 (Debian
		 * 6.1.0-56): NOP with non-zero rw_flags is -EINVAL */
		if (sqe->rw_flags)
			return -EINVAL;
		return 0;
	case IORING_OP_READ:
	case IORING_OP_WRITE:
	case IORING_OP_READV:
	case IORING_OP_WRITEV:
	case IORING_OP_READ_FIXED:
	case IORING_OP_WRITE_FIXED: {   /* io_prep_rw() */
		req->off = sqe->off;
		req->buf_index = sqe->buf_index;
		if (ur_op_is_fixed(req->opcode) && req->buf_index >= r->nbufs)
			return -EFAULT;
		if (sqe->ioprio) {
			int ret = ur_ioprio_check(sqe->ioprio);
			if (ret)
				return ret;
		}
		req->addr = sqe->addr;
		req->len = sqe->len;
		req->rw_flags = sqe->rw_flags;
		if (req->opcode == IORING_OP_READV && (req->sqe_flags & IOSQE_BUFFER_SELECT)) {
			/* io_iov_buffer_select_prep(): measured in the guest,
			 * Linux 6.1: READV with BUFFER_SELECT and len 2 fails at
			 * submission with -EINVAL (the enter stops there) */
			if (req->len != 1)
				return -EINVAL;
			struct iovec uiov;
			if (ur_copy_from_user(&uiov, req->addr, sizeof(uiov)))
				return -EFAULT;
			req->len = (uint32_t)uiov.iov_len;
		}
		return 0;
	}
	case IORING_OP_FSYNC:           /* io_fsync_prep() */
		if (sqe->addr || sqe->buf_index || sqe->splice_fd_in)
			return -EINVAL;
		if (sqe->fsync_flags & ~IORING_FSYNC_DATASYNC)
			return -EINVAL;
		if ((int64_t)sqe->off < 0)   /* loff_t: Linux 6.1.192's check */
			return -EINVAL;
		req->off = sqe->off;
		req->len = sqe->len;
		return 0;
	case IORING_OP_FALLOCATE:       /* io_fallocate_prep() */
		if (sqe->buf_index || sqe->rw_flags || sqe->splice_fd_in)
			return -EINVAL;
		req->off = sqe->off;
		req->addr = sqe->addr;    /* length */
		req->len = sqe->len;      /* mode */
		return 0;
	}
	if (ur_op_is_timeout(req->opcode))
		return ur_timeout_prep(r, req, sqe);
	return -EOPNOTSUPP;
}

/* io_init_req(): the checks every SQE goes through, in the kernel's order. */
static int ur_init_req(struct ur_ring *r, struct ur_req *req, const struct io_uring_sqe *sqe)
{
	uint8_t op = sqe->opcode, fl = sqe->flags;
	req->opcode = op;
	req->sqe_flags = fl;
	req->user_data = sqe->user_data;
	req->fd = -1;
	/* REQ_F_* mirror the IOSQE_* bits, set before any check */
	if (fl & IOSQE_CQE_SKIP_SUCCESS)
		req->rflags |= UR_F_CQE_SKIP;
	if (fl & IOSQE_IO_DRAIN)
		req->rflags |= UR_F_DRAIN;

	if (op >= IORING_OP_LAST)
		return -EINVAL;
	const struct ur_opdef *def = &ur_opdefs[op];
	if (fl & ~UR_SQE_COMMON) {
		if (fl & ~UR_SQE_VALID)
			return -EINVAL;
		if (fl & IOSQE_BUFFER_SELECT) {
			if (!def->buffer_select)
				return -EOPNOTSUPP;
		}
		if (fl & IOSQE_CQE_SKIP_SUCCESS)
			r->drain_disabled = true;
		if (fl & IOSQE_IO_DRAIN) {
			if (r->drain_disabled)
				return -EOPNOTSUPP;
			/* io_init_req_drain(): a drain inside a link drains the
			 * whole link and the request after it */
			if (r->link_head) {
				r->link_head->rflags |= UR_F_DRAIN;
				r->drain_next = true;
			}
		}
	}
	if (r->drain_next && !r->link_head) {
		r->drain_next = false;
		req->rflags |= UR_F_DRAIN;
	}
	/* another file, or an opcode that is not block I/O: the hidden
	 * kernel ring's (kring.c) */
	bool iopoll_ring = r->flags & IORING_SETUP_IOPOLL;
	if (!def->supported) {
		if (iopoll_ring)
			return -EOPNOTSUPP;   /* the kernel's IOPOLL takes block I/O only */
		if (sqe->personality)
			return -EINVAL;
		return ur_kring_prep(r, req, sqe);
	}
	/* one of our opcodes on another open file (a descriptor that is not
	 * open stays ours: -EBADF at issue, as the kernel's): checked here as
	 * the kernel checks it, then run by the kernel ring. Fixed buffers are
	 * nvring's registration, not the kernel ring's: not forwarded. */
	bool other_file = def->needs_file && !iopoll_ring && !(fl & IOSQE_FIXED_FILE) &&
			  !r->client &&   /* served: the client's fds are not ours */
			  !ur_op_is_fixed(op) && !nvr_uring_is_ns(sqe->fd) && sqe->fd >= 0 &&
			  fcntl(sqe->fd, F_GETFD) >= 0;
	if (!def->ioprio && sqe->ioprio)
		return -EINVAL;
	if (!def->iopoll && iopoll_ring)
		return -EINVAL;
	if (def->needs_file)
		req->fd = sqe->fd;
	if (sqe->personality)
		return -EINVAL;       /* no personalities are registered */
	int ret = ur_prep(r, req, sqe);
	if (ret)
		return ret;
	if (other_file)
		return ur_kring_prep(r, req, sqe);
	/* IOSQE_BUFFER_SELECT: no provided buffers exist; ur_import() fails
	 * the selection as the kernel does */
	return 0;
}

static unsigned ur_chain_len(const struct ur_req *h)
{
	unsigned n = 0;
	for (; h; h = h->link)
		n++;
	return n;
}

/* Queue a complete chain (or a lone request). */
static void ur_queue(struct ur_ring *r, struct ur_req *head)
{
	if (head->rflags & UR_F_FAIL) {
		/* failed at submission: complete at once, drain or not */
		r->active += ur_chain_len(head);
		ur_fail_chain_init(r, head);
		return;
	}
	if ((head->rflags & UR_F_DRAIN) || r->defer.head) {
		ur_q_push(&r->defer, head);
		ur_release_deferred(r);
		return;
	}
	r->active += ur_chain_len(head);
	ur_issue(r, head);
}

void ur_release_deferred(struct ur_ring *r)
{
	struct ur_req *h;
	while ((h = r->defer.head)) {
		if ((h->rflags & UR_F_DRAIN) && r->active)
			return;
		ur_q_pop(&r->defer);
		r->active += ur_chain_len(h);
		ur_issue(r, h);
	}
}

/* io_submit_fail_init(): returns the error when the batch must stop. */
static int ur_fail_init(struct ur_ring *r, struct ur_req *req, int err)
{
	struct ur_req *head = r->link_head;
	req->res = err;
	ur_set_fail(req);
	if (head && !(head->rflags & UR_F_FAIL)) {
		head->res = -ECANCELED;
		ur_set_fail(head);
	}
	if (!(req->sqe_flags & UR_SQE_LINK)) {
		if (head) {
			r->link_last->link = req;
			r->link_head = NULL;
			req = head;
		}
		ur_queue(r, req);
		return err;
	}
	if (head)
		r->link_last->link = req;
	else
		r->link_head = req;
	r->link_last = req;
	return 0;
}

static int ur_submit_sqe(struct ur_ring *r, struct ur_req *req, const struct io_uring_sqe *sqe)
{
	int ret = ur_init_req(r, req, sqe);
	if (ret)
		return ur_fail_init(r, req, ret);
	if (r->link_head) {
		/* io_req_prep_async(): members after the head import now, but
		 * only the opcodes with a prep_async hook: READV and WRITEV
		 * (they copy the iovec array). Measured in the guest, Linux
		 * 6.1: a WRITE_FIXED member whose address lies outside its
		 * registered buffer does not end the enter early; it fails
		 * with -EFAULT when issued. */
		bool vec = req->opcode == IORING_OP_READV || req->opcode == IORING_OP_WRITEV;
		if (vec && !(req->rflags & (UR_F_HAS_ERR | UR_F_KRING))) {
			ret = ur_import(r, req);
			if (ret)
				return ur_fail_init(r, req, ret);
		}
		r->link_last->link = req;
		r->link_last = req;
		if (req->sqe_flags & UR_SQE_LINK)
			return 0;
		req = r->link_head;
		r->link_head = NULL;
	} else if (req->sqe_flags & UR_SQE_LINK) {
		r->link_head = r->link_last = req;
		return 0;
	}
	/* SUBMIT_STABLE: the data description is copied now, not at issue.
	 * @req may now be a chain's head: decide by its own opcode (a
	 * FALLOCATE head must not be imported as if it were a READV) */
	if (ur_op_is_rw(req->opcode) && !req->iov &&
	    !(req->rflags & (UR_F_HAS_ERR | UR_F_FAIL | UR_F_KRING))) {
		ret = ur_import(r, req);
		if (ret) {
			req->rflags |= UR_F_HAS_ERR;
			req->err = ret;
		}
	}
	ur_queue(r, req);
	return 0;
}

/* The SQE at the next SQ slot, or NULL (counted in sq dropped) when the
 * index array names no SQE (io_get_sqe()). */
static const struct io_uring_sqe *ur_next_sqe(struct ur_ring *r)
{
	uint32_t mask = r->sq_entries - 1;
	uint32_t idx = r->sq_head++ & mask;
	if (r->sq_array) {
		idx = __atomic_load_n(&r->sq_array[idx], __ATOMIC_RELAXED);
		if (idx >= r->sq_entries) {
			uint32_t d = atomic_load_explicit(r->sq_kdropped, memory_order_relaxed);
			atomic_store_explicit(r->sq_kdropped, d + 1, memory_order_relaxed);
			return NULL;
		}
	}
	return &r->sqes[idx << r->sqe_shift];
}

/* io_submit_sqes(): returns the number of SQEs consumed. */
int ur_submit(struct ur_ring *r, unsigned to_submit)
{
	/* served: a request about to take a new SQE may be one whose CQE is
	 * written but not yet published; publish first, so that its slot
	 * (overwritten now) is not needed for a crash any more */
	if (__builtin_expect(r->cstate != NULL, 0) &&
	    atomic_load_explicit(r->cq_ktail, memory_order_relaxed) != r->cq_tail)
		ur_cq_tail_release(r);
	uint32_t avail = ur_sq_tail_acquire(r) - r->sq_head;
	if (avail > r->sq_entries)
		avail = r->sq_entries;
	if (!avail)
		return 0;
	unsigned nr = to_submit < avail ? to_submit : avail;
	unsigned left = nr;
	while (left) {
		struct ur_req *req = ur_req_alloc(r);
		if (!req)
			break;
		const struct io_uring_sqe *sqe = ur_next_sqe(r);
		if (!sqe) {
			ur_req_free(r, req);
			break;
		}
		ur_slot_take(r, req, sqe->user_data);
		if (ur_submit_fixed(r, req, sqe)) {   /* the common SQE (ops.c) */
			left--;
			continue;
		}
		if (ur_submit_sqe(r, req, sqe) && !(r->flags & IORING_SETUP_SUBMIT_ALL)) {
			left--;
			break;
		}
		left--;
	}
	/* io_submit_state_end(): a chain left open at the end of the batch
	 * goes as it is */
	if (r->link_head) {
		struct ur_req *h = r->link_head;
		r->link_head = NULL;
		ur_queue(r, h);
	}
	ur_sq_head_release(r);
	return (int)(nr - left);
}
