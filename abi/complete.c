/* SPDX-License-Identifier: MIT */
/*
 * Completion: finishing requests, link chains, CQ posting with the NODROP
 * overflow backlog, CQE_SKIP_SUCCESS, and the request pool.
 *
 * Completions are never finished where they happen (a device callback, or
 * a synchronous result at issue): they are queued on ring->done and
 * finished by ur_finish_done(), iteratively, so a chain of a thousand
 * synchronous NOPs does not recurse and no callback re-enters the queue
 * pair.
 *
 * Link failure follows the kernel (io_uring/io_uring.c io_fail_links(),
 * req_set_fail()): a failed member without IOSQE_IO_HARDLINK cancels the
 * rest of its chain with -ECANCELED (members that failed at submission keep
 * their own error); the canceled members post CQEs even if they asked for
 * CQE_SKIP_SUCCESS, unless the failed member itself had CQE_SKIP_SUCCESS,
 * in which case its CQE is posted and theirs are not.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "abi/ring.h"

int ur_reqs_grow(struct ur_ring *r, unsigned n)
{
	void **chunks = realloc(r->chunks, (r->nchunks + 1) * sizeof(*chunks));
	if (!chunks)
		return -ENOMEM;
	r->chunks = chunks;
	unsigned *sizes = realloc(r->chunk_sizes, (r->nchunks + 1) * sizeof(*sizes));
	if (!sizes)
		return -ENOMEM;
	r->chunk_sizes = sizes;
	struct ur_req *reqs = calloc(n, sizeof(*reqs));
	if (!reqs)
		return -ENOMEM;
	sizes[r->nchunks] = n;
	chunks[r->nchunks++] = reqs;
	for (unsigned i = 0; i < n; i++) {
		reqs[i].slot = r->nreqs < UR_STATE_SLOTS ? r->nreqs : UINT32_MAX;
		r->nreqs++;
		if (r->cstate)
			r->cstate->used = r->nreqs < UR_STATE_SLOTS ? r->nreqs : UR_STATE_SLOTS;
		reqs[i].next = r->free_reqs;
		r->free_reqs = &reqs[i];
	}
	return 0;
}

void ur_reqs_free_all(struct ur_ring *r)
{
	for (unsigned i = 0; i < r->nchunks; i++)
		free(r->chunks[i]);
	free(r->chunks);
	free(r->chunk_sizes);
	r->chunks = NULL;
	r->chunk_sizes = NULL;
	r->nchunks = 0;
	r->free_reqs = NULL;
}

struct ur_req *ur_req_alloc(struct ur_ring *r)
{
	if (__builtin_expect(!r->free_reqs, 0)) {
		/* Slow path: more requests in flight than ever before. */
		if (ur_reqs_grow(r, r->sq_entries < 64 ? 64 : r->sq_entries) < 0)
			return NULL;
	}
	struct ur_req *req = r->free_reqs;
	r->free_reqs = req->next;
	/* Clear the decoded SQE fields; the data side below them is set
	 * before use (iov, dma are NULL on the free list) */
	memset(req, 0, UR_REQ_CLEAR_END);
	req->ring = r;
	req->live = true;
	return req;
}

/* Give back what the request holds in the device world. */
static void ur_req_release(struct ur_ring *r, struct ur_req *req)
{
	if (req->dma)
		ur_pool_put(r, req);
	if (req->iov && req->iov != req->iov_inline)
		free(req->iov);
	req->iov = NULL;
	if (req->rflags & UR_F_NS_REF)
		ur_ns_put(req->ns);
	req->rflags &= (uint16_t)~UR_F_NS_REF;
	req->ns = NULL;
}

static inline void ur_req_put_free(struct ur_ring *r, struct ur_req *req)
{
	ur_slot_end(r, req);
	req->live = false;
	req->next = r->free_reqs;
	r->free_reqs = req;
}

void ur_req_free(struct ur_ring *r, struct ur_req *req)
{
	ur_req_release(r, req);
	ur_req_put_free(r, req);
}

/* Close: release what every allocated request holds (the queue pair is
 * gone, so none is in the device) and put them all back. */
void ur_release_all_reqs(struct ur_ring *r)
{
	unsigned per = 0;
	for (unsigned c = 0; c < r->nchunks; c++) {
		struct ur_req *reqs = r->chunks[c];
		per = r->chunk_sizes[c];
		for (unsigned i = 0; i < per; i++)
			if (reqs[i].live)
				ur_req_free(r, &reqs[i]);
	}
	r->retry = r->done = r->defer = r->overflow = (struct ur_queue){ NULL, NULL };
	r->link_head = r->link_last = NULL;
}

static bool ur_cq_write(struct ur_ring *r, uint64_t user_data, int32_t res, uint32_t flags)
{
	if (r->cq_tail - ur_cq_head_acquire(r) >= r->cq_entries)
		return false;
	struct io_uring_cqe *cqe = &r->cqes[(r->cq_tail & (r->cq_entries - 1)) << r->cqe_shift];
	cqe->user_data = user_data;
	cqe->res = res;
	cqe->flags = flags;
	if (r->cqe_shift) {
		cqe->big_cqe[0] = 0;
		cqe->big_cqe[1] = 0;
	}
	r->cq_tail++;
	return true;
}

/* Post req's CQE, or keep req on the backlog until there is room. While
 * the backlog is non-empty new CQEs queue behind it (kernel: posting past
 * overflowed CQEs would reorder them). */
void ur_post_cqe(struct ur_ring *r, struct ur_req *req)
{
	r->cq_seq++;     /* the kernel's cached_cq_tail, overflow included */
	if (!r->overflow.head && ur_cq_write(r, req->user_data, req->res, 0)) {
		ur_slot_posted(r, req);
		ur_req_free(r, req);
		return;
	}
	ur_req_release(r, req);
	if (!r->overflow.head) {
		ur_sq_flags_set(r, IORING_SQ_CQ_OVERFLOW);
		atomic_store_explicit(&r->has_overflow, true, memory_order_relaxed);
	}
	ur_q_push(&r->overflow, req);
}

void ur_cq_flush_overflow(struct ur_ring *r)
{
	struct ur_req *req;
	while ((req = r->overflow.head)) {
		if (!ur_cq_write(r, req->user_data, req->res, 0))
			break;
		ur_slot_posted(r, req);
		ur_q_pop(&r->overflow);
		ur_req_put_free(r, req);
	}
	ur_cq_tail_release(r);
	if (!r->overflow.head) {
		ur_sq_flags_clear(r, IORING_SQ_CQ_OVERFLOW);
		atomic_store_explicit(&r->has_overflow, false, memory_order_relaxed);
	}
}

void ur_complete(struct ur_ring *r, struct ur_req *req, int res)
{
	req->res = res;
	ur_q_push(&r->done, req);
}

/* A device completion (ur_io_done(), inside nvr_qpair_poll()). When
 * ur_finish_one() would only post the CQE and free the request (a lone
 * request that moved every byte, no timeout, position or skip flag) and
 * nothing queued must be finished before it, that is done here: the same
 * CQE in the same order, without the round trip through r->done.
 * ur_reap() publishes the tail after the poll. */
void ur_complete_io(struct ur_ring *r, struct ur_req *req, int res)
{
	if (res >= 0 && (uint32_t)res == req->want && !req->link && !req->lt &&
	    !(req->rflags & (UR_F_FAIL | UR_F_CQE_SKIP | UR_F_CUR_POS)) &&
	    !r->done.head && !r->defer.head && !r->overflow.head && !r->ntimeouts &&
	    ur_cq_write(r, req->user_data, res, 0)) {
		r->cq_seq++;   /* as ur_post_cqe() */
		r->active--;
		ur_slot_posted(r, req);
		ur_req_free(r, req);
		return;
	}
	ur_complete(r, req, res);
}

/* Cancel the members after @req (the kernel's io_fail_links()). */
static void ur_cancel_links(struct ur_ring *r, struct ur_req *req)
{
	bool ignore = req->rflags & UR_F_SKIP_LINK;
	struct ur_req *m = req->link;
	req->link = NULL;
	while (m) {
		struct ur_req *next = m->link;
		if (!(m->rflags & UR_F_FAIL))
			m->res = -ECANCELED;
		if (ignore)
			m->rflags |= UR_F_CQE_SKIP;
		else
			m->rflags &= ~UR_F_CQE_SKIP;
		r->active--;
		if (m->rflags & UR_F_CQE_SKIP)
			ur_req_free(r, m);
		else
			ur_post_cqe(r, m);
		m = next;
	}
}

static void ur_finish_one(struct ur_ring *r, struct ur_req *req)
{
	int res = req->res;
	if (req->lt)     /* done before its link timeout fired */
		ur_link_timeout_disarm(r, req);
	/* Linux 6.1's io_fsync() and io_fallocate() post vfs's result
	 * without req_set_fail(): measured in the guest, a FALLOCATE failing
	 * with -EINVAL or -EOPNOTSUPP does not cancel the rest of its link,
	 * and with CQE_SKIP_SUCCESS it posts no CQE at all. Only failing
	 * before the opcode runs (a bad file: -EBADF) fails the request. */
	/* want: the bytes a full transfer returns (set by ur_import() and,
	 * for forwarded READ/WRITE, by ur_kring_prep(); 0 for the rest) */
	bool short_rw = req->want && (uint32_t)res != req->want;
	if ((res < 0 && !(req->rflags & UR_F_NO_FAIL)) || (res >= 0 && short_rw))
		ur_set_fail(req);
	if (res > 0 && (req->rflags & UR_F_CUR_POS) && req->ns)
		atomic_store_explicit(&req->ns->fpos, req->pos + (uint64_t)res, memory_order_relaxed);

	struct ur_req *next = req->link;
	if (next && (req->rflags & UR_F_FAIL) && !(req->sqe_flags & IOSQE_IO_HARDLINK)) {
		/* post ours first, as the kernel does, then the canceled ones */
		req->link = NULL;
		struct ur_req tmp_head = { .link = next, .rflags = req->rflags };
		r->active--;
		if (req->rflags & UR_F_CQE_SKIP)
			ur_req_free(r, req);
		else
			ur_post_cqe(r, req);
		ur_cancel_links(r, &tmp_head);
		return;
	}
	req->link = NULL;
	r->active--;
	if (req->rflags & UR_F_CQE_SKIP)
		ur_req_free(r, req);
	else
		ur_post_cqe(r, req);
	if (next)
		ur_issue(r, next);
}

/* A chain whose member failed at submission: the head completes with its
 * own result (-ECANCELED unless it is the one that failed) and the rest as
 * io_fail_links() does. Called for chains never issued. */
void ur_fail_chain_init(struct ur_ring *r, struct ur_req *head)
{
	(void)r;
	head->sqe_flags &= (uint8_t)~IOSQE_IO_HARDLINK;
	ur_complete(r, head, head->res);
}

void ur_finish_done(struct ur_ring *r)
{
	struct ur_req *req;
	do {
		while ((req = ur_q_pop(&r->done)))
			ur_finish_one(r, req);
		/* completions may have satisfied a drain; its release may
		 * complete more at once */
		if (r->defer.head)
			ur_release_deferred(r);
		if (r->ntimeouts)
			ur_timeouts_flush(r);    /* counted timeouts the CQEs satisfied */
	} while (r->done.head);
	ur_cq_tail_release(r);
}
