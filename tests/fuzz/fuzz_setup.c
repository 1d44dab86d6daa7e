/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: what the ring reads from the caller besides SQEs.
 * The input is an io_uring_params (every field, reserved ones included)
 * and entry count for nvr_uring_setup(), then a sequence of
 * nvr_uring_register() calls with any opcode, nr_args and an argument
 * that is NULL, a bad pointer, or a buffer the input fills (iovec arrays
 * naming an arena and its guard pages, fd tables, probe space, an eventfd
 * number), then enters that only look (no SQEs), then close.
 *
 * Invariants (abort() on violation): no crash, no ASan/UBSan report;
 * every call returns 0, a count or fd, or a negative errno (-1..-133);
 * a ring that was set up reports what it was given (sq_entries a power of
 * two not below the request, cq_entries at least sq_entries, the offsets
 * inside what was mapped) and maps; close returns 0; the model saw no
 * DMA error and no invalid doorbell.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "driver/ctrlr.h"
#include "nvring/nvring.h"
#include "nvring/uring.h"
#include "tests/fuzz/fuzz_input.h"
#include "tests/model/nvme_model.h"

#define ARENA   (256u * 1024)
#define GUARD   (64u * 1024)
#define ARGBUF_BYTES 4096u
#define MAX_OPS 32u

static struct nvme_model *model;
static struct nvr_ctrlr *ctrlr;
static int nsfd, efd;
static uint8_t *arena;              /* [arena][guard]; the guard PROT_NONE */
static _Alignas(16) uint8_t argbuf[ARGBUF_BYTES];

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "fuzz_setup: invariant broken: " __VA_ARGS__); \
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
	struct nvme_model_cfg cfg = { .ns_blocks = 256 };
	struct nvr_pci_dev *dev;

	setenv("NVRING_LOG", "none", 0);
	nvr_uring_set_kernel_syscall(no_kernel);
	if (nvme_model_create(&cfg, &model, &dev) || nvr_ctrlr_attach_dev(dev, NULL, &ctrlr)) {
		fprintf(stderr, "fuzz_setup: cannot set up the model controller\n");
		abort();
	}
	nsfd = nvr_ns_open(ctrlr, 1);
	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	arena = mmap(NULL, ARENA + GUARD, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		     -1, 0);
	if (nsfd < 0 || efd < 0 || arena == MAP_FAILED) {
		fprintf(stderr, "fuzz_setup: no namespace fd, eventfd or arena\n");
		abort();
	}
	mprotect(arena + ARENA, GUARD, PROT_NONE);
	return 0;
}

static bool valid_errno(int res)
{
	return res < 0 && res >= -133;
}

/* An address for a buffer the ring registers: the arena, its guard, the
 * NULL page or never mapped; 4 KiB aligned mostly. */
static uint64_t buf_addr(struct fz *in)
{
	uint8_t mode = fz_u8(in);
	uint32_t off = fz_u32(in);

	switch (mode % 6) {
	case 0: case 1: case 2:
		return (uint64_t)(uintptr_t)arena + (off % ARENA & ~4095u);
	case 3:
		return (uint64_t)(uintptr_t)arena + off % (ARENA + GUARD);
	case 4:
		return off % 8192;
	default:
		return 0xffff800000000000ull + off;
	}
}

/* The register argument: NULL, a bad pointer, or argbuf filled as
 * @opcode reads it. */
static void *gen_arg(struct fz *in, unsigned opcode, unsigned nr)
{
	uint8_t mode = fz_u8(in);

	if (mode < 16)
		return NULL;
	if (mode < 32)
		return (void *)(uintptr_t)(mode < 24 ? 8 : (uintptr_t)arena + ARENA);
	memset(argbuf, 0, sizeof(argbuf));
	switch (opcode) {
	case IORING_REGISTER_BUFFERS: {
		struct iovec *iov = (struct iovec *)argbuf;
		for (unsigned i = 0; i < nr && i < ARGBUF_BYTES / sizeof(*iov); i++) {
			iov[i].iov_base = (void *)(uintptr_t)buf_addr(in);
			uint8_t l = fz_u8(in);
			iov[i].iov_len = l < 200 ? 4096u * (l % 16) : fz_u32(in);
		}
		break;
	}
	case IORING_REGISTER_FILES: {
		int32_t *fds = (int32_t *)argbuf;
		for (unsigned i = 0; i < nr && i < ARGBUF_BYTES / sizeof(*fds); i++) {
			uint8_t k = fz_u8(in);
			fds[i] = k < 128 ? nsfd : k < 192 ? -1 : k < 224 ? (int32_t)(k % 8)
								 : (int32_t)fz_u32(in);
		}
		break;
	}
	case IORING_REGISTER_EVENTFD:
	case IORING_REGISTER_EVENTFD_ASYNC: {
		uint8_t k = fz_u8(in);
		*(int32_t *)argbuf = k < 200 ? efd : k < 220 ? nsfd : (int32_t)fz_u32(in);
		break;
	}
	default:   /* probe space, or bytes */
		fz_bytes(in, argbuf, fz_u8(in));
		break;
	}
	return argbuf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz in = { data, size };
	struct io_uring_params p;
	struct nvme_model_stats st0 = nvme_model_get_stats(model);

	fz_bytes(&in, &p, sizeof(p));
	/* SQPOLL starts a thread per ring: now and then only */
	if ((p.flags & IORING_SETUP_SQPOLL) && fz_u8(&in) < 224)
		p.flags &= ~IORING_SETUP_SQPOLL;
	uint8_t e = fz_u8(&in);
	unsigned entries = e < 240 ? 1u + e % 64 : fz_u32(&in);
	unsigned want_cq = p.cq_entries;
	int fd = nvr_uring_setup(ctrlr, entries, &p);

	if (fd < 0) {
		CHECK(valid_errno(fd), "setup returned %d", fd);
		return 0;
	}
	/* what a program relies on */
	CHECK(p.sq_entries && !(p.sq_entries & (p.sq_entries - 1)) && p.sq_entries >= 1,
	      "sq_entries %u", p.sq_entries);
	CHECK(p.cq_entries >= p.sq_entries && !(p.cq_entries & (p.cq_entries - 1)),
	      "cq_entries %u (sq %u)", p.cq_entries, p.sq_entries);
	if ((p.flags & IORING_SETUP_CQSIZE) && !(p.flags & IORING_SETUP_CLAMP))
		CHECK(p.cq_entries >= want_cq, "cq_entries %u < %u asked", p.cq_entries, want_cq);
	size_t cqe = sizeof(struct io_uring_cqe) << ((p.flags & IORING_SETUP_CQE32) ? 1 : 0);
	size_t sq_sz = (p.flags & IORING_SETUP_NO_SQARRAY) ? p.sq_off.dropped + 4
			: p.sq_off.array + p.sq_entries * sizeof(unsigned);
	size_t cq_sz = p.cq_off.cqes + p.cq_entries * cqe;
	void *sq = mmap(NULL, sq_sz, PROT_READ | PROT_WRITE, MAP_SHARED, fd, IORING_OFF_SQ_RING);
	void *cq = mmap(NULL, cq_sz, PROT_READ | PROT_WRITE, MAP_SHARED, fd, IORING_OFF_CQ_RING);
	CHECK(sq != MAP_FAILED && cq != MAP_FAILED, "the ring does not map");
	CHECK(*(unsigned *)((uint8_t *)sq + p.sq_off.ring_entries) == p.sq_entries &&
	      *(unsigned *)((uint8_t *)cq + p.cq_off.ring_entries) == p.cq_entries,
	      "ring_entries in the ring differ from the params");

	for (unsigned i = 0; i < MAX_OPS && fz_left(&in); i++) {
		uint8_t k = fz_u8(&in);
		unsigned op = k < 200 ? k % (IORING_REGISTER_LAST + 2) : fz_u32(&in);
		unsigned nr = fz_u8(&in) < 220 ? fz_u8(&in) % 16 : fz_u32(&in);
		if ((k & 7) == 7) {
			/* an enter that only looks: flags and argument fuzzed */
			unsigned flags = fz_u8(&in) < 200 ? (fz_u8(&in) & 0x1f) : fz_u32(&in);
			struct __kernel_timespec ts = { 0, 1000 };
			struct io_uring_getevents_arg ea = { .ts = (uint64_t)(uintptr_t)&ts };
			uint8_t m = fz_u8(&in);
			const void *arg = m < 128 ? NULL : m < 192 ? (void *)&ea : (void *)8;
			size_t argsz = m < 128 ? 0 : m < 240 ? sizeof(ea) : fz_u8(&in);
			if (flags & IORING_ENTER_GETEVENTS) {
				flags |= IORING_ENTER_EXT_ARG;   /* bounded wait: 1 µs */
				if (m < 128) {
					arg = &ea;
					argsz = sizeof(ea);
				}
			}
			int ret = nvr_uring_enter(fd, 0, fz_u8(&in) % 2, flags, arg, argsz);
			CHECK(ret >= 0 || valid_errno(ret), "enter returned %d", ret);
			continue;
		}
		void *arg = gen_arg(&in, op, nr);
		int ret = nvr_uring_register(fd, op, arg, nr);
		CHECK(ret >= 0 || valid_errno(ret), "register(%u, nr %u) returned %d", op, nr, ret);
	}
	munmap(sq, sq_sz);
	munmap(cq, cq_sz);
	CHECK(nvr_uring_close(fd) == 0, "close");
	struct nvme_model_stats st = nvme_model_get_stats(model);
	CHECK(st.prp_errors == st0.prp_errors && st.bad_dbs == st0.bad_dbs,
	      "the model saw DMA errors or bad doorbells");
	return 0;
}
