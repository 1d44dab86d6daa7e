/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: SQE → NVMe translation. The input becomes a ring
 * (setup flags, sizes, registered files and buffers) and a sequence of
 * SQEs with every field chosen by it (all opcodes, invalid ones too, SQE
 * flags, links, fixed files and buffers, iovecs into a fuzzer-owned arena
 * and past it into unmapped guard pages), submitted in batches through
 * nvr_uring_enter() on a controller of the software model (tests/model).
 *
 * Invariants (abort() on violation, which libFuzzer reports):
 *  - every CQE's user_data is one of a consumed SQE, none twice;
 *  - after draining (the ring idle: nothing active, deferred or in
 *    overflow), every consumed SQE has exactly one CQE, unless a member of
 *    its link chain (or itself) had IOSQE_CQE_SKIP_SUCCESS, which allows
 *    none; an SQ entry naming no SQE (index out of range) has none and is
 *    counted in sq.dropped;
 *  - res is 0, a negative errno (-1..-133), or for reads and writes a
 *    whole number of blocks no larger than asked; cqe flags 0;
 *  - the model saw no PRP or DMA error and no invalid doorbell;
 *  - nvr_uring_enter() returns a count or a negative errno, close 0.
 *
 * Safety of the host: SQEs on other files and opcodes that are not block
 * I/O go to the library's hidden kernel ring; here its system calls are
 * replaced by one that refuses all (-ENOSYS), so nothing a fuzzer invents
 * reaches the host kernel. Data addresses are only ever inside the arena,
 * its guard pages, or never-mapped addresses (NULL page, non-canonical,
 * kernel half), so reads land nowhere else. Timeouts use short timespecs
 * written by the harness.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "abi/ring.h"
#include "driver/ctrlr.h"
#include "nvring/nvring.h"
#include "nvring/uring.h"
#include "tests/fuzz/fuzz_input.h"
#include "tests/model/nvme_model.h"

#define NS_BLOCKS  2048u              /* 512-byte blocks: 1 MiB namespace */
#define NS_BYTES   (NS_BLOCKS * 512u)
#define CTRL_BYTES (16u * 1024)       /* iovec arrays, timespecs */
#define GUARD      (64u * 1024)
#define DATA_BYTES (1u << 20)
#define MAX_IDS    1024u
#define MAX_STEPS  256u
#define NTS        8u                 /* timespec slots in the control area */
#define DRAIN_MS   5000u

static struct nvme_model *model;
static struct nvr_ctrlr *ctrlr;
static int nsfd, nsfd2;
/* [ctrl][guard][data][guard]: the guards are PROT_NONE */
static uint8_t *arena, *ctrl, *data;

/* Per consumed SQE. */
struct id {
	bool used;          /* an SQE with this user_data was consumed */
	bool loose;         /* its chain has CQE_SKIP_SUCCESS: 0 or 1 CQE */
	uint8_t opcode;
	uint32_t cqes;
	uint64_t max_res;   /* largest positive res allowed */
};
static struct id ids[MAX_IDS];
static bool trace;   /* FUZZ_TRACE set: print each SQE and enter */

/* What the harness wrote at each SQ position (position = index in the
 * ring's unbounded head/tail count, mod 2^32). */
struct pos {
	int32_t id;         /* -1: the array entry names no SQE */
	uint8_t flags;      /* sqe->flags as written */
};

struct ring {
	int fd;
	struct io_uring_params p;
	uint8_t *sq, *cq;
	size_t sq_sz, cq_sz, sqes_sz;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
	unsigned *sq_head, *sq_tail, *sq_dropped, *sq_array;
	unsigned *cq_head, *cq_tail;
	unsigned tail;      /* next position to fill */
	struct pos pos[256];   /* by position mod 256 (>= sq_entries) */
	uint32_t dropped;   /* invalid array entries consumed */
	uint32_t nids;
};

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "fuzz_sqe: invariant broken: " __VA_ARGS__); \
			fprintf(stderr, " (%s:%d)\n", __FILE__, __LINE__); \
			abort();                                           \
		}                                                          \
	} while (0)

static long no_kernel(long nr, long a0, long a1, long a2, long a3, long a4, long a5)
{
	return -ENOSYS;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct nvme_model_cfg cfg = { .ns_blocks = NS_BLOCKS, .vwc = true, .nns = 2 };
	struct nvr_pci_dev *dev;

	setenv("NVRING_LOG", "none", 0);
	trace = getenv("FUZZ_TRACE") != NULL;
	nvr_uring_set_kernel_syscall(no_kernel);
	if (nvme_model_create(&cfg, &model, &dev) || nvr_ctrlr_attach_dev(dev, NULL, &ctrlr)) {
		fprintf(stderr, "fuzz_sqe: cannot set up the model controller\n");
		abort();
	}
	nsfd = nvr_ns_open(ctrlr, 1);
	nsfd2 = nvr_ns_open(ctrlr, 2);
	size_t total = CTRL_BYTES + GUARD + DATA_BYTES + GUARD;
	arena = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (nsfd < 0 || nsfd2 < 0 || arena == MAP_FAILED) {
		fprintf(stderr, "fuzz_sqe: no namespace fd or arena\n");
		abort();
	}
	ctrl = arena;
	data = arena + CTRL_BYTES + GUARD;
	mprotect(arena + CTRL_BYTES, GUARD, PROT_NONE);
	mprotect(data + DATA_BYTES, GUARD, PROT_NONE);
	return 0;
}

static int ring_map(struct ring *r)
{
	struct io_uring_params *p = &r->p;
	size_t cqe = sizeof(struct io_uring_cqe) << ((p->flags & IORING_SETUP_CQE32) ? 1 : 0);
	size_t sqe = sizeof(struct io_uring_sqe) << ((p->flags & IORING_SETUP_SQE128) ? 1 : 0);

	r->sq_sz = (p->flags & IORING_SETUP_NO_SQARRAY) ? p->sq_off.dropped + 4
		   : p->sq_off.array + p->sq_entries * sizeof(unsigned);
	r->cq_sz = p->cq_off.cqes + p->cq_entries * cqe;
	r->sqes_sz = p->sq_entries * sqe;
	r->sq = mmap(NULL, r->sq_sz, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, IORING_OFF_SQ_RING);
	r->cq = mmap(NULL, r->cq_sz, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, IORING_OFF_CQ_RING);
	r->sqes = mmap(NULL, r->sqes_sz, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd,
		       IORING_OFF_SQES);
	if (r->sq == MAP_FAILED || r->cq == MAP_FAILED || r->sqes == MAP_FAILED)
		return -ENOMEM;
	r->sq_head = (unsigned *)(r->sq + p->sq_off.head);
	r->sq_tail = (unsigned *)(r->sq + p->sq_off.tail);
	r->sq_dropped = (unsigned *)(r->sq + p->sq_off.dropped);
	r->sq_array = (p->flags & IORING_SETUP_NO_SQARRAY) ? NULL
		      : (unsigned *)(r->sq + p->sq_off.array);
	r->cq_head = (unsigned *)(r->cq + p->cq_off.head);
	r->cq_tail = (unsigned *)(r->cq + p->cq_off.tail);
	r->cqes = (struct io_uring_cqe *)(r->cq + p->cq_off.cqes);
	r->tail = *r->sq_tail;
	return 0;
}

/* An address that faults: a guard page, the NULL page, never mapped. For
 * pointers to what the ring reads as structures (iovec arrays,
 * timespecs): data-area bytes there could name any address. */
static uint64_t gen_bad_addr(struct fz *in)
{
	uint8_t mode = fz_u8(in);

	switch (mode % 4) {
	case 0:
		return (uint64_t)(uintptr_t)arena + CTRL_BYTES + (mode / 4) * 64;
	case 1:
		return (uint64_t)(uintptr_t)data + DATA_BYTES + (mode / 4) * 8;
	case 2:
		return mode / 4;
	default:
		return 0xffff800000000000ull + mode;
	}
}

/* A data address: inside the data area, running off its end into the
 * guard, in a guard, or never mapped. */
static uint64_t gen_addr(struct fz *in)
{
	uint8_t mode = fz_u8(in);
	uint32_t off = fz_u32(in);

	switch (mode % 8) {
	case 0: case 1: case 2:
		return (uint64_t)(uintptr_t)data + (off % DATA_BYTES & ~511u);
	case 3:
		return (uint64_t)(uintptr_t)data + off % DATA_BYTES;
	case 4:
		return (uint64_t)(uintptr_t)data + DATA_BYTES - (off % 8192);
	case 5:
		return (uint64_t)(uintptr_t)arena + CTRL_BYTES + off % GUARD;
	case 6:
		return off % 4096;   /* the NULL page */
	default: {
		static const uint64_t far[] = { 0x0000800000000000ull, 0xffff800000000000ull,
						0xfffffffffffff000ull, 0x00007ffffffff000ull };
		return far[off % 4];
	}
	}
}

static uint32_t gen_len(struct fz *in)
{
	uint8_t mode = fz_u8(in);

	switch (mode % 4) {
	case 0: case 1:
		return 512u * (1 + fz_u8(in) % 64);
	case 2:
		return fz_u16(in);
	default:
		return fz_u32(in);
	}
}

/* READV/WRITEV: an iovec array in the control area (slot @k), or a bad
 * pointer. Returns the address for sqe->addr; *sum the bytes it names. */
static uint64_t gen_iovs(struct fz *in, unsigned k, uint32_t n, uint64_t *sum)
{
	uint8_t mode = fz_u8(in);
	struct iovec *iov = (struct iovec *)(ctrl + (k % 8) * 2048);
	unsigned max = 2048 / sizeof(*iov);

	*sum = 0;
	if (mode % 8 == 7)
		return gen_bad_addr(in);   /* the array itself faults */
	for (uint32_t i = 0; i < n && i < max; i++) {
		iov[i].iov_base = (void *)(uintptr_t)gen_addr(in);
		iov[i].iov_len = fz_u8(in) < 200 ? 512u * (fz_u8(in) % 16) : fz_u32(in);
		*sum += iov[i].iov_len;
	}
	if (n > max)
		*sum = UINT32_MAX;
	return (uint64_t)(uintptr_t)iov;
}

/* A timespec for TIMEOUT/LINK_TIMEOUT/TIMEOUT_REMOVE's update: short,
 * invalid, or a bad pointer. */
static uint64_t gen_ts(struct fz *in)
{
	uint8_t mode = fz_u8(in);
	struct __kernel_timespec *ts = (struct __kernel_timespec *)(ctrl + 16384 - NTS * 16);
	unsigned k = mode % NTS;

	if (mode >= 240)
		return gen_bad_addr(in);
	ts[k].tv_sec = 0;
	/* under 2 ms, or invalid (a negative field) */
	ts[k].tv_nsec = mode >= 220 ? -1ll - fz_u8(in) : (long long)(fz_u8(in) % 200) * 10000;
	if (mode >= 230)
		ts[k].tv_sec = -1;
	return (uint64_t)(uintptr_t)&ts[k];
}

static const uint8_t common_ops[] = {
	IORING_OP_NOP, IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC,
	IORING_OP_READ_FIXED, IORING_OP_WRITE_FIXED, IORING_OP_TIMEOUT,
	IORING_OP_TIMEOUT_REMOVE, IORING_OP_ASYNC_CANCEL, IORING_OP_LINK_TIMEOUT,
	IORING_OP_FALLOCATE, IORING_OP_READ, IORING_OP_WRITE,
};

/* Fill the next SQ slot from the input. */
static void add_sqe(struct ring *r, struct fz *in)
{
	unsigned head = __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);

	if (r->tail - head >= r->p.sq_entries || r->nids >= MAX_IDS)
		return;
	unsigned slot = r->tail & (r->p.sq_entries - 1);
	size_t one = (r->p.flags & IORING_SETUP_SQE128) ? 2 : 1;
	struct io_uring_sqe *s = &r->sqes[slot * one];
	struct pos *ps = &r->pos[r->tail % 256];
	uint8_t pick = fz_u8(in), chaos = fz_u8(in);
	uint32_t id = r->nids++;

	memset(s, 0, sizeof(*s) * one);
	s->opcode = pick < 208 ? common_ops[pick % sizeof(common_ops)] : fz_u8(in);
	s->user_data = id;
	uint8_t fl = fz_u8(in);
	s->flags = fl < 128 ? fl & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK | IOSQE_CQE_SKIP_SUCCESS |
				    IOSQE_FIXED_FILE | IOSQE_IO_DRAIN | IOSQE_ASYNC)
			    : fl;
	uint8_t fsel = fz_u8(in);
	/* a namespace, a fixed-file index, stdio (another file), nothing,
	 * the ring itself */
	int fds[] = { nsfd, 0, 1, 2, 3, -1, 1 << 20, r->fd, nsfd2, nsfd };
	s->fd = fsel < 250 ? fds[fsel % 10] : (int32_t)fz_u32(in);
	s->off = fz_u8(in) < 200 ? 512ull * (fz_u16(in) % (NS_BLOCKS + 16)) : fz_u64(in);
	s->len = gen_len(in);
	s->addr = gen_addr(in);
	s->buf_index = fz_u8(in) % 4;

	uint64_t maxres = 0;
	switch (s->opcode) {
	case IORING_OP_READV:
	case IORING_OP_WRITEV:
		s->len = fz_u8(in) < 240 ? fz_u8(in) % 12 : fz_u32(in);
		s->addr = gen_iovs(in, id, s->len, &maxres);
		break;
	case IORING_OP_READ:
	case IORING_OP_WRITE:
		maxres = s->len;
		break;
	case IORING_OP_READ_FIXED:
	case IORING_OP_WRITE_FIXED:
		if (fz_u8(in) < 200)
			s->addr = (uint64_t)(uintptr_t)data +
				  (s->buf_index % 2 ? 128u * 1024 : 0) + 512u * (fz_u8(in) % 512);
		maxres = s->len;
		break;
	case IORING_OP_TIMEOUT:
	case IORING_OP_LINK_TIMEOUT:
		s->addr = gen_ts(in);
		s->len = fz_u8(in) < 240 ? 1 : fz_u8(in);
		s->off = fz_u8(in) % 4;   /* completion count */
		s->timeout_flags = fz_u8(in) < 200 ? fz_u8(in) & 0x1f : fz_u32(in);
		s->buf_index = 0;
		break;
	case IORING_OP_TIMEOUT_REMOVE:
	case IORING_OP_ASYNC_CANCEL:
		s->addr = fz_u8(in) % (r->nids + 2);   /* a user_data, maybe ours */
		s->len = 0;
		s->buf_index = 0;
		s->timeout_flags = fz_u8(in) < 200 ? fz_u8(in) & 0x3f : fz_u32(in);
		/* TIMEOUT_UPDATE reads its new timespec from addr2 */
		s->off = gen_ts(in);
		maxres = MAX_IDS;   /* CANCEL_ALL counts */
		break;
	case IORING_OP_FSYNC:
	case IORING_OP_NOP:
		if (fz_u8(in) < 200) {
			s->addr = 0;
			s->len = 0;
			s->buf_index = 0;
			s->off = 0;
		}
		s->rw_flags = fz_u8(in) < 220 ? 0 : fz_u32(in);
		break;
	default:
		break;
	}
	/* the fields most opcodes must leave zero, set now and then */
	if (chaos & 1)
		s->ioprio = fz_u16(in);
	if (chaos & 2)
		s->rw_flags = fz_u32(in);
	if (chaos & 4)
		s->personality = fz_u16(in);
	if (chaos & 8)
		s->splice_fd_in = (int32_t)fz_u32(in);
	if (chaos & 16)
		s->addr3 = fz_u64(in);
	if (chaos & 32)
		s->__pad2[0] = fz_u64(in);
	if (chaos & 64)
		s->buf_index = fz_u16(in);
	if (chaos & 128) {
		bool structs = s->opcode == IORING_OP_READV || s->opcode == IORING_OP_WRITEV ||
			       s->opcode == IORING_OP_TIMEOUT || s->opcode == IORING_OP_LINK_TIMEOUT;
		s->addr = structs ? gen_bad_addr(in) : gen_addr(in);
	}

	ps->id = (int32_t)id;
	ps->flags = s->flags;
	if (trace)
		fprintf(stderr, "sqe %u: op %u flags 0x%x fd %d off 0x%llx addr 0x%llx len %u "
			"rw_flags 0x%x buf_index %u ioprio 0x%x personality %u splice_fd_in %d\n",
			id, s->opcode, s->flags, s->fd, (unsigned long long)s->off,
			(unsigned long long)s->addr, s->len, s->rw_flags, s->buf_index, s->ioprio,
			s->personality, s->splice_fd_in);
	ids[id] = (struct id){ .used = false, .opcode = s->opcode, .max_res = maxres };
	if (r->sq_array) {
		bool drop = fz_u8(in) >= 250;
		r->sq_array[slot] = drop ? r->p.sq_entries + fz_u8(in) : slot;
		if (drop)
			ps->id = -1;
	}
	r->tail++;
}

static bool valid_errno(int res)
{
	return res < 0 && res >= -133;
}

static void check_cqe(const struct io_uring_cqe *c)
{
	CHECK(c->user_data < MAX_IDS && ids[c->user_data].used, "CQE for user_data %llu, "
	      "which no consumed SQE had", (unsigned long long)c->user_data);
	struct id *d = &ids[c->user_data];

	if (trace)
		fprintf(stderr, "cqe %llu: res %d flags 0x%x\n", (unsigned long long)c->user_data,
			c->res, c->flags);
	CHECK(d->cqes == 0, "second CQE for user_data %llu (op %u, res %d)",
	      (unsigned long long)c->user_data, d->opcode, c->res);
	d->cqes++;
	CHECK(c->flags == 0, "CQE flags 0x%x (op %u)", c->flags, d->opcode);
	if (c->res >= 0) {
		CHECK((uint64_t)c->res <= d->max_res, "op %u res %d > %llu", d->opcode, c->res,
		      (unsigned long long)d->max_res);
		if (ur_op_is_rw(d->opcode))
			CHECK(c->res % 512 == 0, "op %u res %d: not whole blocks", d->opcode, c->res);
	} else {
		CHECK(valid_errno(c->res), "op %u res %d: not an errno", d->opcode, c->res);
	}
}

static unsigned reap(struct ring *r, unsigned max)
{
	unsigned n = 0, head = *r->cq_head;
	size_t one = (r->p.flags & IORING_SETUP_CQE32) ? 2 : 1;

	while (n < max && head != __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE)) {
		check_cqe(&r->cqes[(head & (r->p.cq_entries - 1)) * one]);
		head++;
		n++;
	}
	__atomic_store_n(r->cq_head, head, __ATOMIC_RELEASE);
	return n;
}

/* Chain [start, end) complete: with CQE_SKIP_SUCCESS on any member, each
 * may post none (its own success, or canceled behind a skipping failure). */
static void chain_done(struct ring *r, unsigned start, unsigned end)
{
	bool skip = false;

	for (unsigned q = start; q != end; q++)
		skip |= r->pos[q % 256].id >= 0 && (r->pos[q % 256].flags & IOSQE_CQE_SKIP_SUCCESS);
	for (unsigned q = start; q != end; q++)
		if (r->pos[q % 256].id >= 0)
			ids[r->pos[q % 256].id].loose = skip;
}

/* After an enter: the SQ positions it consumed form its batch; link
 * chains are cut at the batch's end, as the ring cuts them. */
static void account_batch(struct ring *r, unsigned from, unsigned to)
{
	unsigned start = from;   /* first position of the chain being built */

	for (unsigned p = from; p != to; p++) {
		struct pos *ps = &r->pos[p % 256];

		if (ps->id < 0) {
			r->dropped++;
			continue;
		}
		ids[ps->id].used = true;
		if (!(ps->flags & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK))) {
			chain_done(r, start, p + 1);
			start = p + 1;
		}
	}
	if (start != to)
		chain_done(r, start, to);
}

static void enter(struct ring *r, unsigned to_submit, unsigned min, unsigned flags)
{
	struct __kernel_timespec ts = { 0, 1000000 };
	struct io_uring_getevents_arg arg = { .ts = (uint64_t)(uintptr_t)&ts };
	unsigned from = *r->sq_head;
	int ret;

	__atomic_store_n(r->sq_tail, r->tail, __ATOMIC_RELEASE);
	if (flags & IORING_ENTER_GETEVENTS)
		flags |= IORING_ENTER_EXT_ARG;
	ret = nvr_uring_enter(r->fd, to_submit, min, flags,
			      (flags & IORING_ENTER_EXT_ARG) ? &arg : NULL,
			      (flags & IORING_ENTER_EXT_ARG) ? sizeof(arg) : 0);
	unsigned to = __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);
	if (trace)
		fprintf(stderr, "enter(%u, %u, 0x%x) = %d, consumed %u\n", to_submit, min, flags,
			ret, to - from);
	/* an SQ entry naming no SQE is consumed (sq.dropped) but not counted,
	 * and it ends the batch (io_submit_sqes()) */
	unsigned dropped = 0;
	for (unsigned p = from; p != to; p++)
		dropped += r->pos[p % 256].id < 0;
	CHECK(ret >= 0 ? (unsigned)ret == to - from - dropped : valid_errno(ret),
	      "enter returned %d, consumed %u (%u dropped)", ret, to - from, dropped);
	CHECK(dropped <= 1 && (!dropped || r->pos[(to - 1) % 256].id < 0),
	      "a dropped SQ entry did not end the batch");
	CHECK(to - from <= to_submit, "consumed %u of %u", to - from, to_submit);
	account_batch(r, from, to);
}

static bool ring_idle(struct ring *r)
{
	int err;
	struct ur_ring *ur = ur_ring_get(r->fd, &err);

	return !ur->active && !ur->defer.head && !ur->overflow.head && !ur->done.head &&
	       !ur->retry.head && !ur->in_device;
}

static uint64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t size)
{
	struct fz in = { buf, size };
	struct ring r;
	uint8_t setup = fz_u8(&in);
	struct nvme_model_stats st0 = nvme_model_get_stats(model);

	memset(&r, 0, sizeof(r));
	memset(ids, 0, sizeof(ids));
	r.p.flags = 0;
	if (setup & 1)
		r.p.flags |= IORING_SETUP_IOPOLL;
	if (setup & 2)
		r.p.flags |= IORING_SETUP_SQE128;
	if (setup & 4)
		r.p.flags |= IORING_SETUP_CQE32;
	if (setup & 8) {
		r.p.flags |= IORING_SETUP_CQSIZE;
		r.p.cq_entries = 1u << (fz_u8(&in) % 4);
	}
	if (setup & 16)
		r.p.flags |= IORING_SETUP_SUBMIT_ALL;
	if (setup & 32)
		r.p.flags |= IORING_SETUP_NO_SQARRAY;
	unsigned entries = 1u << (fz_u8(&in) % 6);
	r.fd = nvr_uring_setup(ctrlr, entries, &r.p);
	if (trace)
		fprintf(stderr, "setup(%u, flags 0x%x, cq %u) = %d\n", entries, r.p.flags,
			r.p.cq_entries, r.fd);
	if (r.fd < 0) {
		CHECK(valid_errno(r.fd), "setup returned %d", r.fd);
		return 0;
	}
	CHECK(ring_map(&r) == 0, "cannot map the ring");
	if (setup & 64) {
		int files[4] = { nsfd, -1, nsfd, -1 };
		CHECK(nvr_uring_register(r.fd, IORING_REGISTER_FILES, files, 4) == 0,
		      "REGISTER_FILES");
	}
	if (setup & 128) {
		struct iovec bufs[2] = { { data, 64u * 1024 }, { data + 128u * 1024, 256u * 1024 } };
		CHECK(nvr_uring_register(r.fd, IORING_REGISTER_BUFFERS, bufs, 2) == 0,
		      "REGISTER_BUFFERS");
	}

	for (unsigned step = 0; step < MAX_STEPS && fz_left(&in); step++) {
		uint8_t op = fz_u8(&in);

		switch (op % 8) {
		case 0: case 1: case 2: case 3:
			add_sqe(&r, &in);
			break;
		case 4: case 5: {
			unsigned to_submit = fz_u8(&in) < 200 ? r.p.sq_entries : fz_u8(&in) % 8;
			unsigned min = fz_u8(&in) % 3;
			enter(&r, to_submit, min, fz_u8(&in) & 1 ? IORING_ENTER_GETEVENTS : 0);
			break;
		}
		case 6:
			reap(&r, fz_u8(&in) % 8);
			break;
		default:   /* wait a little (timeouts, the device) */
			enter(&r, 0, 0, IORING_ENTER_GETEVENTS);
			break;
		}
	}

	/* Submit what is left, then drain until the ring is idle. */
	uint64_t deadline = now_ms() + DRAIN_MS;
	while (*r.sq_head != r.tail || !ring_idle(&r)) {
		if (now_ms() >= deadline) {
			int err;
			struct ur_ring *ur = ur_ring_get(r.fd, &err);
			struct nvme_model_stats ms = nvme_model_get_stats(model);
			fprintf(stderr, "fuzz_sqe: model: %llu I/O commands, %llu SQ doorbells, "
				"%llu errors, %llu prp errors, %llu bad dbs\n", (unsigned long long)ms.io_cmds,
				(unsigned long long)ms.sq_doorbells, (unsigned long long)ms.errors, (unsigned long long)ms.prp_errors, (unsigned long long)ms.bad_dbs);
			CHECK(0, "ring not idle after %u ms (sq %u/%u; active %u, in device %u, "
			      "deferred %d, retry %d, overflow %d, timeouts %u)", DRAIN_MS,
			      *r.sq_head, r.tail, ur->active, ur->in_device, !!ur->defer.head,
			      !!ur->retry.head, !!ur->overflow.head, ur->ntimeouts);
		}
		/* exactly what is pending: an enter that submits fewer than
		 * asked returns without waiting (the kernel's rule) */
		if (*r.sq_head != r.tail)
			enter(&r, r.tail - *r.sq_head, 0, 0);
		enter(&r, 0, 0, IORING_ENTER_GETEVENTS);
		reap(&r, UINT32_MAX);
	}
	reap(&r, UINT32_MAX);
	if (r.sq_array)
		CHECK(*r.sq_dropped == r.dropped, "sq dropped %u, expected %u", *r.sq_dropped,
		      r.dropped);
	for (uint32_t i = 0; i < r.nids; i++) {
		if (!ids[i].used)
			CHECK(ids[i].cqes == 0, "CQE for SQE %u, never consumed", i);
		else if (ids[i].loose)
			CHECK(ids[i].cqes <= 1, "SQE %u: %u CQEs", i, ids[i].cqes);
		else
			CHECK(ids[i].cqes == 1, "SQE %u (op %u): %u CQEs, expected 1", i,
			      ids[i].opcode, ids[i].cqes);
	}
	munmap(r.sq, r.sq_sz);
	munmap(r.cq, r.cq_sz);
	munmap(r.sqes, r.sqes_sz);
	CHECK(nvr_uring_close(r.fd) == 0, "close");
	struct nvme_model_stats st = nvme_model_get_stats(model);
	CHECK(st.prp_errors == st0.prp_errors, "the model saw %llu bad PRPs or DMA addresses",
	      (unsigned long long)(st.prp_errors - st0.prp_errors));
	CHECK(st.bad_dbs == st0.bad_dbs, "the model saw %llu invalid doorbell writes",
	      (unsigned long long)(st.bad_dbs - st0.bad_dbs));
	return 0;
}
