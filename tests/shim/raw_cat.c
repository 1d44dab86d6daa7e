/* SPDX-License-Identifier: MIT */
/*
 * raw_cat DEVICE — io_uring without liburing, the way a hand-written program
 * (or a runtime with its own bindings) does it: syscall(__NR_io_uring_setup),
 * its own three mmaps at IORING_OFF_SQ_RING / IORING_OFF_CQ_RING /
 * IORING_OFF_SQES, the SQ index array, io_uring_enter by syscall(). Writes
 * 1 MiB in 64 KiB chunks, then reads it back like `cat` (up to 8 chunks in
 * flight) and prints each chunk's checksum and the whole range's.
 */
#include <linux/io_uring.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "shim_prog.h"

#define TAG 0x7263   /* "rc" */
#define OFF (13u << 20)
#define CHUNK (64u << 10)
#define NCHUNK 16u
#define ENTRIES 8u

struct raw_ring {
	int fd;
	unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
	unsigned sq_local_tail;
};

static int raw_setup(struct raw_ring *r)
{
	struct io_uring_params p = { 0 };

	r->fd = (int)syscall(__NR_io_uring_setup, ENTRIES, &p);
	if (r->fd < 0)
		return -errno;
	size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	char *sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQ_RING);
	char *cq = mmap(NULL, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_CQ_RING);
	void *sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED)
		return -errno;
	r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
	r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
	r->sq_array = (unsigned *)(sq + p.sq_off.array);
	r->cq_head = (unsigned *)(cq + p.cq_off.head);
	r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
	r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
	r->sqes = sqes;
	r->sq_local_tail = *r->sq_tail;
	return 0;
}

/* Queue one read or write; published by raw_submit(). */
static void raw_queue(struct raw_ring *r, int op, int fd, void *buf, unsigned len, uint64_t off, uint64_t ud)
{
	unsigned idx = r->sq_local_tail & *r->sq_mask;
	struct io_uring_sqe *sqe = &r->sqes[idx];

	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = (unsigned char)op;
	sqe->fd = fd;
	sqe->addr = (uint64_t)(uintptr_t)buf;
	sqe->len = len;
	sqe->off = off;
	sqe->user_data = ud;
	r->sq_array[idx] = idx;
	r->sq_local_tail++;
}

/* Publish the queued SQEs and enter: submit N, wait for WAIT completions. */
static int raw_submit(struct raw_ring *r, unsigned n, unsigned wait)
{
	/* release: the SQEs and array slots written above are visible to the
	 * consumer before it sees the new tail */
	atomic_store_explicit((_Atomic unsigned *)r->sq_tail, r->sq_local_tail, memory_order_release);
	long rc = syscall(__NR_io_uring_enter, r->fd, n, wait, wait ? IORING_ENTER_GETEVENTS : 0, NULL, 0);
	return rc < 0 ? -errno : (int)rc;
}

/* Take one CQE if there is one: true with *ud, *res set. */
static bool raw_reap(struct raw_ring *r, uint64_t *ud, int *res)
{
	unsigned head = *r->cq_head;
	/* acquire: the CQE's contents are read only after its tail is seen */
	unsigned tail = atomic_load_explicit((_Atomic unsigned *)r->cq_tail, memory_order_acquire);

	if (head == tail)
		return false;
	struct io_uring_cqe *cqe = &r->cqes[head & *r->cq_mask];
	*ud = cqe->user_data;
	*res = cqe->res;
	/* release: our reads of the CQE are done before the slot is given back */
	atomic_store_explicit((_Atomic unsigned *)r->cq_head, head + 1, memory_order_release);
	return true;
}

/* Run NCHUNK chunk I/Os of OP, up to ENTRIES in flight; res[] per chunk. */
static bool run_chunks(struct raw_ring *r, int op, const struct dev *d, char *buf, int *res)
{
	unsigned next = 0, done = 0, inflight = 0;

	while (done < NCHUNK) {
		unsigned queued = 0;
		while (next < NCHUNK && inflight + queued < ENTRIES) {
			raw_queue(r, op, d->fd, buf + (size_t)next * CHUNK, CHUNK, d->base + OFF + (uint64_t)next * CHUNK,
				  next);
			next++, queued++;
		}
		int rc = raw_submit(r, queued, 1);
		if (rc < 0 || (unsigned)rc != queued) {
			note("io_uring_enter(%u): %d\n", queued, rc);
			return false;
		}
		inflight += queued;
		uint64_t ud;
		int cres;
		while (raw_reap(r, &ud, &cres)) {
			if (ud >= NCHUNK) {
				note("CQE with user_data %" PRIu64 "\n", ud);
				return false;
			}
			res[ud] = cres;
			inflight--, done++;
		}
	}
	return true;
}

int main(int argc, char **argv)
{
	struct dev d;
	struct raw_ring r;
	int res[NCHUNK];
	int rc = dev_open(argc, argv, &d);

	if (rc)
		return rc;
	rc = raw_setup(&r);
	if (rc == -ENOSYS)
		return PROG_SKIP;
	if (!check(rc == 0, "io_uring_setup(%u) and its three mmaps: %d", ENTRIES, rc))
		return prog_exit();

	char *w = buf_alloc(NCHUNK * CHUNK), *rd = buf_alloc(NCHUNK * CHUNK);
	pattern(w, OFF, NCHUNK * CHUNK, TAG);
	bool ok = run_chunks(&r, IORING_OP_WRITE, &d, w, res);
	unsigned good = 0;
	for (unsigned i = 0; i < NCHUNK; i++)
		good += ok && res[i] == (int)CHUNK;
	check(good == NCHUNK, "write: %u of %u chunks of %u bytes", good, NCHUNK, CHUNK);

	memset(rd, 0, NCHUNK * CHUNK);
	ok = run_chunks(&r, IORING_OP_READ, &d, rd, res);
	for (unsigned i = 0; ok && i < NCHUNK; i++)
		check(res[i] == (int)CHUNK && pattern_ok(rd + (size_t)i * CHUNK, OFF + i * CHUNK, CHUNK, TAG),
		      "read chunk %u: res %d, data %016" PRIx64, i, res[i], fnv64(rd + (size_t)i * CHUNK, CHUNK, FNV_INIT));
	check(ok, "read: %u chunks reaped", NCHUNK);
	check(memcmp(w, rd, NCHUNK * CHUNK) == 0, "cat of %u bytes: %016" PRIx64, NCHUNK * CHUNK,
	      fnv64(rd, NCHUNK * CHUNK, FNV_INIT));
	close(r.fd);
	return prog_exit();
}
