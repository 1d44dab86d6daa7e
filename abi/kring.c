/* SPDX-License-Identifier: MIT */
/*
 * The hidden kernel ring behind an nvring ring: SQEs on other files
 * (pipes, sockets, regular files, eventfds) and opcodes that are not block
 * I/O go to a kernel io_uring made on first need, and their CQEs come back
 * on the program's ring with the same user_data and result.
 *
 * A forwarded SQE is an ordinary nvring request whose "device" is the
 * kernel ring: nvring's link and drain machinery decides when it starts
 * (so a chain may have members on both sides, run one after another), it
 * goes to the kernel alone (link, drain and skip-success flags stay here)
 * with the request's address as user_data, and it completes when its CQE
 * is reaped from the kernel ring, wherever nvring polls its device.
 *
 * Not forwarded: IOSQE_FIXED_FILE (nvring's file table holds namespaces
 * only: -EBADF), READ_FIXED/WRITE_FIXED (buffers registered with nvring are
 * not the kernel ring's: -EFAULT, as the kernel for an unregistered index).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "abi/ring.h"

#define KRING_ENTRIES 128u

struct ur_kring {
	int fd;
	struct io_uring_params p;
	uint8_t *sq, *cq;
	size_t sq_sz, cq_sz, sqes_sz;
	struct io_uring_sqe *sqes;
	_Atomic uint32_t *sq_head, *sq_tail, *cq_head, *cq_tail;
	uint32_t *sq_array;
	struct io_uring_cqe *cqes;
	uint32_t sqe_tail;
	uint32_t shift;           /* SQE128 */
};

static long default_syscall(long nr, long a0, long a1, long a2, long a3, long a4, long a5)
{
	long r = syscall(nr, a0, a1, a2, a3, a4, a5);
	return r < 0 ? -errno : r;
}

/* The shim routes io_uring calls to us; ours to the kernel must not. */
static long (*kcall)(long, long, long, long, long, long, long) = default_syscall;

NVR_API void nvr_uring_set_kernel_syscall(long (*fn)(long nr, long a0, long a1, long a2, long a3,
						     long a4, long a5))
{
	kcall = fn ? fn : default_syscall;
}

static void kring_free(struct ur_kring *k)
{
	if (k->sq && k->sq != MAP_FAILED)
		munmap(k->sq, k->sq_sz);
	if (k->cq && k->cq != MAP_FAILED)
		munmap(k->cq, k->cq_sz);
	if (k->sqes && (void *)k->sqes != MAP_FAILED)
		munmap(k->sqes, k->sqes_sz);
	if (k->fd >= 0)
		close(k->fd);
	free(k);
}

static struct ur_kring *kring_get(struct ur_ring *r)
{
	if (r->kring)
		return r->kring;
	struct ur_kring *k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	k->fd = -1;
	k->p.flags = IORING_SETUP_CQSIZE | (r->flags & IORING_SETUP_SQE128);
	k->p.cq_entries = 2 * KRING_ENTRIES;
	k->shift = (r->flags & IORING_SETUP_SQE128) ? 1 : 0;
	long fd = kcall(__NR_io_uring_setup, KRING_ENTRIES, (long)&k->p, 0, 0, 0, 0);
	if (fd < 0) {
		free(k);
		return NULL;
	}
	k->fd = (int)fd;
	struct io_uring_params *p = &k->p;
	k->sq_sz = p->sq_off.array + p->sq_entries * sizeof(uint32_t);
	k->cq_sz = p->cq_off.cqes + p->cq_entries * sizeof(struct io_uring_cqe);
	k->sqes_sz = (size_t)p->sq_entries * (sizeof(struct io_uring_sqe) << k->shift);
	k->sq = mmap(NULL, k->sq_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, k->fd,
		     IORING_OFF_SQ_RING);
	k->cq = mmap(NULL, k->cq_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, k->fd,
		     IORING_OFF_CQ_RING);
	k->sqes = mmap(NULL, k->sqes_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, k->fd,
		       IORING_OFF_SQES);
	if (k->sq == MAP_FAILED || k->cq == MAP_FAILED || (void *)k->sqes == MAP_FAILED) {
		kring_free(k);
		return NULL;
	}
	k->sq_head = (_Atomic uint32_t *)(k->sq + p->sq_off.head);
	k->sq_tail = (_Atomic uint32_t *)(k->sq + p->sq_off.tail);
	k->sq_array = (uint32_t *)(k->sq + p->sq_off.array);
	k->cq_head = (_Atomic uint32_t *)(k->cq + p->cq_off.head);
	k->cq_tail = (_Atomic uint32_t *)(k->cq + p->cq_off.tail);
	k->cqes = (struct io_uring_cqe *)(k->cq + p->cq_off.cqes);
	k->sqe_tail = atomic_load_explicit(k->sq_tail, memory_order_relaxed);
	r->kring = k;
	return k;
}

/* Submission: this SQE goes to the kernel ring (kept whole in the
 * request's inline iovec space, which a forwarded request never uses). */
int ur_kring_prep(struct ur_ring *r, struct ur_req *req, const struct io_uring_sqe *sqe)
{
	_Static_assert(sizeof(((struct ur_req *)0)->iov_inline) >= 2 * sizeof(struct io_uring_sqe),
		       "a forwarded SQE128 fits the inline iovecs");
	if (r->client) {
		/* served (abi/served.h): our kernel ring would act on our own
		 * files and memory, not the client's */
		req->rflags |= UR_F_KRING | UR_F_HAS_ERR;
		req->err = -EOPNOTSUPP;
		return 0;
	}
	memcpy(req->iov_inline, sqe, sizeof(*sqe) << r->sqe_shift);
	req->rflags |= UR_F_KRING;
	req->fd = sqe->fd;
	if (sqe->opcode == IORING_OP_READ || sqe->opcode == IORING_OP_WRITE)
		req->want = sqe->len;      /* a short transfer fails the link */
	if ((sqe->flags & IOSQE_FIXED_FILE) || sqe->opcode == IORING_OP_READ_FIXED ||
	    sqe->opcode == IORING_OP_WRITE_FIXED) {
		req->rflags |= UR_F_HAS_ERR;
		req->err = (sqe->flags & IOSQE_FIXED_FILE) ? -EBADF : -EFAULT;
	}
	return 0;
}

void ur_kring_issue(struct ur_ring *r, struct ur_req *req)
{
	if (req->rflags & UR_F_HAS_ERR) {
		ur_complete(r, req, req->err);
		return;
	}
	struct ur_kring *k = kring_get(r);
	if (!k) {
		ur_complete(r, req, -ENOMEM);
		return;
	}
	uint32_t head = atomic_load_explicit(k->sq_head, memory_order_acquire);
	if (k->sqe_tail - head >= k->p.sq_entries || r->kring_inflight >= k->p.cq_entries) {
		ur_complete(r, req, -EBUSY);     /* 128 forwarded at once: enough */
		return;
	}
	uint32_t idx = k->sqe_tail & (k->p.sq_entries - 1);
	struct io_uring_sqe *ks = &k->sqes[idx << k->shift];
	memcpy(ks, req->iov_inline, sizeof(*ks) << k->shift);
	/* the order is nvring's; the kernel sees it alone */
	ks->flags &= (uint8_t)~(IOSQE_IO_LINK | IOSQE_IO_HARDLINK | IOSQE_IO_DRAIN |
				IOSQE_CQE_SKIP_SUCCESS);
	ks->user_data = (uint64_t)(uintptr_t)req;
	k->sq_array[idx] = idx;
	k->sqe_tail++;
	/* release: the SQE before the tail the kernel reads */
	atomic_store_explicit(k->sq_tail, k->sqe_tail, memory_order_release);
	long ret = kcall(__NR_io_uring_enter, k->fd, 1, 0, 0, 0, 0);
	if (ret < 0) {
		/* not taken: the slot goes back */
		k->sqe_tail--;
		atomic_store_explicit(k->sq_tail, k->sqe_tail, memory_order_release);
		ur_complete(r, req, (int)ret);
		return;
	}
	r->kring_inflight++;
}

/* Completions of forwarded requests: one acquire load when there are none. */
void ur_kring_reap(struct ur_ring *r)
{
	struct ur_kring *k = r->kring;
	uint32_t head = atomic_load_explicit(k->cq_head, memory_order_relaxed);
	/* acquire: the CQEs before the tail the kernel published */
	uint32_t tail = atomic_load_explicit(k->cq_tail, memory_order_acquire);
	if (head == tail)
		return;
	for (; head != tail; head++) {
		struct io_uring_cqe *c = &k->cqes[head & (k->p.cq_entries - 1)];
		struct ur_req *req = (struct ur_req *)(uintptr_t)c->user_data;
		r->kring_inflight--;
		ur_complete(r, req, c->res);
	}
	/* release: we are done with those CQEs */
	atomic_store_explicit(k->cq_head, head, memory_order_release);
}

/* What the kernel's io_uring supports, asked once per process (probe of a
 * hidden ring): those opcodes work on an nvring ring too, forwarded. */
static _Atomic int kprobe_state;           /* 0 not asked, 1 known, -1 none */
static uint8_t kprobe_ops[IORING_OP_LAST];

bool ur_kring_op_supported(struct ur_ring *r, unsigned op)
{
	if (op >= IORING_OP_LAST || (r->flags & IORING_SETUP_IOPOLL) || r->client)
		return false;
	int st = atomic_load_explicit(&kprobe_state, memory_order_acquire);
	if (!st) {
		struct ur_kring *k = kring_get(r);
		_Alignas(struct io_uring_probe) uint8_t buf[sizeof(struct io_uring_probe) +
							     IORING_OP_LAST *
							     sizeof(struct io_uring_probe_op)];
		memset(buf, 0, sizeof(buf));
		struct io_uring_probe *p = (struct io_uring_probe *)buf;
		st = -1;
		if (k && kcall(__NR_io_uring_register, k->fd, IORING_REGISTER_PROBE, (long)p,
			       IORING_OP_LAST, 0, 0) == 0) {
			for (unsigned i = 0; i < p->ops_len && i < IORING_OP_LAST; i++)
				kprobe_ops[i] = p->ops[i].flags & IO_URING_OP_SUPPORTED;
			st = 1;
		}
		/* release: the table before the state that says it is there */
		atomic_store_explicit(&kprobe_state, st, memory_order_release);
	}
	return st == 1 && kprobe_ops[op];
}

void ur_kring_close(struct ur_ring *r)
{
	if (!r->kring)
		return;
	kring_free(r->kring);   /* the kernel cancels what is left */
	r->kring = NULL;
	r->kring_inflight = 0;
}
