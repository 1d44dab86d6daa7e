/* SPDX-License-Identifier: MIT */
/*
 * Rings on a controller an owner serves (nvr_ctrlr_connect(), driver/
 * remote.c): the client side of abi/serve_proto.h. nvr_uring_setup() on
 * such a controller asks the owner for a ring and gets its memfd back, so
 * the fd the program maps is the owner's ring memory itself; enter and
 * register go to the owner as they are (pointers as numbers: the owner
 * reads our memory itself); close tells it. The SQ and CQ rings are written
 * by the program and the owner directly, as with the kernel.
 *
 * The signal mask of an enter: the owner waits on our behalf, we wait for
 * its reply: so the mask applies here, around the call.
 *
 * The owner's death: every request it had taken from the SQ ring and not
 * completed is in the ring's crash state (serve_proto.h); once its process
 * has exited (nvr_remote_call() waits for that), we complete those with
 * -ENODEV ourselves, and every SQE after them at its enter. No wait hangs:
 * an enter that would wait for more CQEs than can still come returns
 * -ENODEV.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "abi/ring.h"
#include "abi/serve_proto.h"
#include "driver/ctrlr.h"

#define UR_KERNEL_SIGSET 8

struct ur_rring {
	struct ur_obj obj;        /* UR_RRING; obj.fd: the memfd, our ring fd */
	struct nvr_ctrlr *ctrlr;
	int id;                   /* the owner's ring id */
	struct io_uring_params p;
	pthread_mutex_t lock;     /* the completions after the owner's death */
	bool failed;
	uint8_t *sq, *cq;
	size_t sq_sz, cq_sz, sqes_sz, st_sz;
	struct io_uring_sqe *sqes;
	struct nvs_ring_state *st;
	uint64_t *backlog;        /* -ENODEV CQEs that did not fit yet */
	unsigned nbacklog, backlog_cap;
};

static void rring_unmap(struct ur_rring *rr)
{
	if (rr->sq)
		munmap(rr->sq, rr->sq_sz);
	if (rr->cq)
		munmap(rr->cq, rr->cq_sz);
	if (rr->sqes)
		munmap(rr->sqes, rr->sqes_sz);
	if (rr->st)
		munmap(rr->st, rr->st_sz);
	rr->sq = rr->cq = NULL;
	rr->sqes = NULL;
	rr->st = NULL;
}

static void rring_free(struct ur_rring *rr)
{
	rring_unmap(rr);
	free(rr->backlog);
	pthread_mutex_destroy(&rr->lock);
	free(rr);
}

/* Map the ring as the program does (its layout from the params). */
static int rring_map(struct ur_rring *rr)
{
	const struct io_uring_params *p = &rr->p;
	size_t cqe = sizeof(struct io_uring_cqe) << ((p->flags & IORING_SETUP_CQE32) ? 1 : 0);
	size_t sqe = sizeof(struct io_uring_sqe) << ((p->flags & IORING_SETUP_SQE128) ? 1 : 0);
	rr->sq_sz = p->sq_off.array + p->sq_entries * sizeof(uint32_t);
	if (rr->sq_sz < p->sq_off.flags + 4)
		rr->sq_sz = p->sq_off.flags + 4;
	rr->cq_sz = p->cq_off.cqes + p->cq_entries * cqe;
	rr->sqes_sz = p->sq_entries * sqe;
	rr->st_sz = sizeof(struct nvs_ring_state);
	int fd = rr->obj.fd;
	rr->sq = mmap(NULL, rr->sq_sz, PROT_READ | PROT_WRITE, MAP_SHARED, fd, IORING_OFF_SQ_RING);
	rr->cq = mmap(NULL, rr->cq_sz, PROT_READ | PROT_WRITE, MAP_SHARED, fd, IORING_OFF_CQ_RING);
	rr->sqes = mmap(NULL, rr->sqes_sz, PROT_READ | PROT_WRITE, MAP_SHARED, fd, IORING_OFF_SQES);
	struct nvs_ring_state *st = mmap(NULL, rr->st_sz, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
					 (off_t)NVS_OFF_STATE);
	if (rr->sq == MAP_FAILED)
		rr->sq = NULL;
	if (rr->cq == MAP_FAILED)
		rr->cq = NULL;
	if ((void *)rr->sqes == MAP_FAILED)
		rr->sqes = NULL;
	if (st != MAP_FAILED && st->magic == NVS_STATE_MAGIC && st->used <= st->nslots) {
		size_t full = sizeof(*st) + (size_t)st->used * sizeof(struct nvs_slot);
		munmap(st, rr->st_sz);
		rr->st_sz = full;
		st = mmap(NULL, full, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)NVS_OFF_STATE);
	} else if (st != MAP_FAILED) {
		munmap(st, rr->st_sz);
		st = MAP_FAILED;
	}
	rr->st = st == MAP_FAILED ? NULL : st;
	return rr->sq && rr->cq && rr->sqes ? 0 : -ENOMEM;
}

#define RW(base, off) ((_Atomic uint32_t *)((base) + (off)))

/* Post one CQE ourselves (the owner is gone), or keep it for later. */
static void rring_post(struct ur_rring *rr, uint64_t user_data)
{
	const struct io_uring_params *p = &rr->p;
	uint32_t head = atomic_load_explicit(RW(rr->cq, p->cq_off.head), memory_order_acquire);
	uint32_t tail = atomic_load_explicit(RW(rr->cq, p->cq_off.tail), memory_order_relaxed);
	if (tail - head >= p->cq_entries || rr->nbacklog) {
		if (rr->nbacklog == rr->backlog_cap) {
			unsigned cap = rr->backlog_cap ? 2 * rr->backlog_cap : 64;
			uint64_t *b = realloc(rr->backlog, cap * sizeof(*b));
			if (!b)
				return;   /* out of memory: this one is lost */
			rr->backlog = b;
			rr->backlog_cap = cap;
		}
		rr->backlog[rr->nbacklog++] = user_data;
		return;
	}
	unsigned shift = (p->flags & IORING_SETUP_CQE32) ? 1 : 0;
	struct io_uring_cqe *cqe = (struct io_uring_cqe *)(rr->cq + p->cq_off.cqes) +
				   ((tail & (p->cq_entries - 1)) << shift);
	memset(cqe, 0, sizeof(*cqe) << shift);
	cqe->user_data = user_data;
	cqe->res = -ENODEV;
	/* release: the CQE before the tail that hands it over */
	atomic_store_explicit(RW(rr->cq, p->cq_off.tail), tail + 1, memory_order_release);
}

static void rring_flush_backlog(struct ur_rring *rr)
{
	unsigned n = rr->nbacklog, done = 0;
	rr->nbacklog = 0;
	for (; done < n; done++) {
		const struct io_uring_params *p = &rr->p;
		uint32_t head = atomic_load_explicit(RW(rr->cq, p->cq_off.head), memory_order_acquire);
		uint32_t tail = atomic_load_explicit(RW(rr->cq, p->cq_off.tail), memory_order_relaxed);
		if (tail - head >= p->cq_entries)
			break;
		rring_post(rr, rr->backlog[done]);
	}
	memmove(rr->backlog, rr->backlog + done, (n - done) * sizeof(*rr->backlog));
	rr->nbacklog = n - done;
}

/* The owner died (its process has exited): complete what it had taken. */
static void rring_fail(struct ur_rring *rr)
{
	if (rr->failed)
		return;
	rr->failed = true;
	if (rring_map(rr) < 0)
		return;
	const struct io_uring_params *p = &rr->p;
	uint32_t tail = atomic_load_explicit(RW(rr->cq, p->cq_off.tail), memory_order_acquire);
	if (rr->st)
		for (uint32_t i = 0; i < rr->st->used; i++) {
			struct nvs_slot *s = &rr->st->slots[i];
			if (atomic_load_explicit((_Atomic uint32_t *)&s->state,
						 memory_order_relaxed) != NVS_SLOT_LIVE)
				continue;
			if (s->cq_pos && (int32_t)(s->cq_pos - 1 - tail) < 0)
				continue;   /* its CQE was published */
			rring_post(rr, s->user_data);
		}
}

/* An enter after the owner's death: SQEs complete with -ENODEV. */
static int rring_dead_enter(struct ur_rring *rr, unsigned to_submit, unsigned min_complete,
			    unsigned flags)
{
	pthread_mutex_lock(&rr->lock);
	rring_fail(rr);
	if (!rr->sq) {
		pthread_mutex_unlock(&rr->lock);
		return -ENODEV;
	}
	rring_flush_backlog(rr);
	const struct io_uring_params *p = &rr->p;
	bool sqpoll = p->flags & IORING_SETUP_SQPOLL;
	uint32_t head = atomic_load_explicit(RW(rr->sq, p->sq_off.head), memory_order_relaxed);
	uint32_t tail = atomic_load_explicit(RW(rr->sq, p->sq_off.tail), memory_order_acquire);
	unsigned n = 0, want = sqpoll ? UINT32_MAX : to_submit;
	unsigned sqe_shift = (p->flags & IORING_SETUP_SQE128) ? 1 : 0;
	while (head != tail && n < want) {
		uint32_t idx = head & (p->sq_entries - 1);
		if (!(p->flags & IORING_SETUP_NO_SQARRAY))
			idx = ((uint32_t *)(rr->sq + p->sq_off.array))[idx];
		head++;
		n++;
		if (idx >= p->sq_entries)
			continue;
		rring_post(rr, rr->sqes[idx << sqe_shift].user_data);
	}
	atomic_store_explicit(RW(rr->sq, p->sq_off.head), head, memory_order_release);
	uint32_t ready = atomic_load_explicit(RW(rr->cq, p->cq_off.tail), memory_order_relaxed) -
			 atomic_load_explicit(RW(rr->cq, p->cq_off.head), memory_order_acquire);
	pthread_mutex_unlock(&rr->lock);
	if (sqpoll)
		n = to_submit;
	/* nothing left to take although the program counts SQEs as not yet
	 * submitted (the owner took them in the call its death cut short):
	 * an error, not 0, or a program retrying "0 submitted" spins for ever
	 * (fio does); their CQEs, -ENODEV, are in the CQ ring */
	if (to_submit && !sqpoll)
		return n ? (int)n : -ENODEV;
	if ((flags & IORING_ENTER_GETEVENTS) && ready < min_complete)
		return -ENODEV;
	return sqpoll ? (int)n : 0;
}

static struct ur_rring *rring_get(int fd)
{
	struct ur_obj *o = ur_fdtab_get(fd);
	return o && o->kind == UR_RRING ? (struct ur_rring *)o : NULL;
}

int ur_client_setup(struct nvr_ctrlr *ctrlr, unsigned entries, struct io_uring_params *p)
{
	if (!p)
		return -EFAULT;
	struct nvs_msg m = { .op = NVS_SETUP, .a = { entries } };
	struct io_uring_params out;
	int memfd;
	int ret = nvr_remote_call(ctrlr, &m, p, sizeof(*p), &out, sizeof(out), -1, &memfd);
	if (ret < 0) {
		if (memfd >= 0)
			close(memfd);
		return ret;
	}
	if (memfd < 0 || m.len != sizeof(out))
		return -EPROTO;
	int fd = ur_fd_raise(memfd);
	if (fd < 0) {
		struct nvs_msg c = { .op = NVS_CLOSE, .a = { ret } };
		nvr_remote_call(ctrlr, &c, NULL, 0, NULL, 0, -1, NULL);
		return fd;
	}
	struct ur_rring *rr = calloc(1, sizeof(*rr));
	if (!rr) {
		close(fd);
		return -ENOMEM;
	}
	rr->obj.kind = UR_RRING;
	rr->obj.fd = fd;
	atomic_init(&rr->obj.refs, 1);
	rr->ctrlr = ctrlr;
	rr->id = ret;
	rr->p = out;
	pthread_mutex_init(&rr->lock, NULL);
	int rc = ur_fdtab_put(&rr->obj);
	if (rc < 0) {
		struct nvs_msg c = { .op = NVS_CLOSE, .a = { ret } };
		nvr_remote_call(ctrlr, &c, NULL, 0, NULL, 0, -1, NULL);
		close(fd);
		rring_free(rr);
		return rc;
	}
	*p = out;
	return fd;
}

/* The signal mask an enter waits with, read as the kernel reads it. */
static int enter_mask(unsigned flags, const void *arg, size_t argsz, sigset_t *mask, bool *has)
{
	*has = false;
	uint64_t umask = 0;
	if (!arg)
		return 0;
	if (flags & IORING_ENTER_EXT_ARG) {
		struct io_uring_getevents_arg ga;
		if (argsz != sizeof(ga))
			return 0;   /* the owner says -EINVAL */
		if (ur_copy_from_user(&ga, (uintptr_t)arg, sizeof(ga)))
			return 0;   /* the owner says -EFAULT */
		umask = ga.sigmask;
	} else {
		umask = (uintptr_t)arg;
	}
	if (!umask)
		return 0;
	sigemptyset(mask);
	if (ur_copy_from_user(mask, umask, UR_KERNEL_SIGSET))
		return 0;
	*has = true;
	return 0;
}

int ur_remote_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags,
		    const void *arg, size_t argsz, int err)
{
	struct ur_rring *rr = rring_get(fd);
	if (!rr)
		return err;
	if (rr->failed || nvr_remote_dead(rr->ctrlr))
		return rring_dead_enter(rr, to_submit, min_complete, flags);
	sigset_t mask, old;
	bool has = false;
	if (flags & IORING_ENTER_GETEVENTS)
		enter_mask(flags, arg, argsz, &mask, &has);
	if (has)
		pthread_sigmask(SIG_SETMASK, &mask, &old);
	struct nvs_msg m = { .op = NVS_ENTER,
			     .a = { rr->id, to_submit, min_complete, flags, (int64_t)(uintptr_t)arg,
				    (int64_t)argsz } };
	int ret = nvr_remote_call(rr->ctrlr, &m, NULL, 0, NULL, 0, -1, NULL);
	if (has)
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret == -ENODEV && nvr_remote_dead(rr->ctrlr))
		return rring_dead_enter(rr, to_submit, min_complete, flags);
	return ret;
}

int ur_remote_register(int fd, unsigned opcode, void *arg, unsigned nr_args, int err)
{
	struct ur_rring *rr = rring_get(fd);
	if (!rr)
		return err;
	if (rr->failed || nvr_remote_dead(rr->ctrlr))
		return -ENODEV;
	struct nvs_msg m = { .op = NVS_REGISTER,
			     .a = { rr->id, opcode, (int64_t)(uintptr_t)arg, nr_args } };
	return nvr_remote_call(rr->ctrlr, &m, NULL, 0, NULL, 0, -1, NULL);
}

int ur_remote_close(int fd)
{
	struct ur_rring *rr = rring_get(fd);
	if (!rr)
		return -EBADF;
	ur_fdtab_del(fd);
	if (!rr->failed && !nvr_remote_dead(rr->ctrlr)) {
		struct nvs_msg m = { .op = NVS_CLOSE, .a = { rr->id } };
		nvr_remote_call(rr->ctrlr, &m, NULL, 0, NULL, 0, -1, NULL);
	}
	close(fd);
	rring_free(rr);
	return 0;
}

int ur_remote_ns_bind(struct nvr_ctrlr *c, int fd, uint32_t nsid)
{
	struct nvs_msg m = { .op = NVS_NS_BIND, .a = { fd, nsid } };
	int ret = nvr_remote_call(c, &m, NULL, 0, NULL, 0, -1, NULL);
	return ret == -ENODEV && nvr_remote_dead(c) ? 0 : ret;   /* I/O on it fails later */
}

void ur_remote_ns_unbind(struct nvr_ctrlr *c, int fd)
{
	struct nvs_msg m = { .op = NVS_NS_UNBIND, .a = { fd } };
	nvr_remote_call(c, &m, NULL, 0, NULL, 0, -1, NULL);
}

/* A fork child's first connection: tell the owner what we inherited. */
static void new_process(struct nvr_ctrlr *c)
{
	for (unsigned pg = 0; pg < UR_FDTAB_PAGES; pg++) {
		ur_fdslot_t *page = atomic_load_explicit(&ur_fdtab[pg], memory_order_acquire);
		if (!page)
			continue;
		for (unsigned i = 0; i < UR_FDTAB_PAGE; i++) {
			struct ur_obj *o = atomic_load_explicit(&page[i], memory_order_acquire);
			if (!o)
				continue;
			if (o->kind == UR_NS && ((struct ur_ns *)o)->ctrlr == c) {
				ur_remote_ns_bind(c, o->fd, ((struct ur_ns *)o)->nsid);
			} else if (o->kind == UR_RRING && ((struct ur_rring *)o)->ctrlr == c) {
				struct ur_rring *rr = (struct ur_rring *)o;
				struct nvs_msg m = { .op = NVS_RING_ADOPT };
				int id = nvr_remote_call(c, &m, NULL, 0, NULL, 0, o->fd, NULL);
				if (id >= 0)
					rr->id = id;
			}
		}
	}
}

void ur_client_hook(struct nvr_ctrlr *c)
{
	nvr_remote_set_new_process(c, new_process);
}
