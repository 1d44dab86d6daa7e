/* SPDX-License-Identifier: MIT */
/*
 * Data opcodes on a namespace of the software controller model, checked
 * against what Linux returns for the same SQE on a block device opened
 * with O_DIRECT: byte counts, short reads at the end, -ENOSPC past it,
 * alignment errors, fixed buffers and files, FSYNC, FALLOCATE, links
 * broken by short or failed members; and the bytes themselves, in the
 * model's namespace memory. Also IOPOLL and SQPOLL rings.
 */
#include <stdlib.h>
#include <time.h>

#include "tests/unit/test_uring_util.h"

static struct tu_env env;
static int nsfd;
static uint64_t ns_bytes;      /* 2048 blocks of 512 B */

struct exp { uint64_t ud; int res; };

/* Submit what is queued, wait for @n CQEs, check them by user_data. */
static void run_expect(struct tu_ring *r, const struct exp *e, unsigned n)
{
	tu_flush(r);
	unsigned sub = *r->sq_tail - *r->sq_head;
	int ret = tu_enter(r, sub, n, IORING_ENTER_GETEVENTS, NULL, 0);
	assert_int_equal(ret, (int)sub);
	bool seen[64] = { 0 };
	for (unsigned got = 0; got < n;) {
		struct io_uring_cqe c;
		if (!tu_cqe(r, &c)) {
			assert_int_equal(tu_enter(r, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0), 0);
			continue;
		}
		unsigned i;
		for (i = 0; i < n; i++)
			if (e[i].ud == c.user_data && !seen[i])
				break;
		if (i == n)
			fail_msg("unexpected cqe user_data %llu res %d", (unsigned long long)c.user_data, c.res);
		if (c.res != e[i].res)
			fail_msg("user_data %llu: res %d, expected %d", (unsigned long long)c.user_data,
				 c.res, e[i].res);
		seen[i] = true;
		got++;
	}
	struct io_uring_cqe c;
	assert_false(tu_cqe(r, &c));
}

static struct io_uring_sqe *rw(struct tu_ring *r, uint8_t op, uint64_t ud, int fd, void *addr,
			       uint32_t len, uint64_t off)
{
	struct io_uring_sqe *s = tu_sqe(r);
	assert_non_null(s);
	s->opcode = op;
	s->user_data = ud;
	s->fd = fd;
	s->addr = (uintptr_t)addr;
	s->len = len;
	s->off = off;
	return s;
}

static uint8_t *nsdata(void)
{
	return nvme_model_ns_data(env.m, 1);
}

static void test_read_write_rules(void **state)
{
	(void)state;
	struct tu_ring r;
	assert_true(tu_ring_init(&r, env.c, 32, NULL) >= 0);
	uint8_t *buf = aligned_alloc(4096, 65536);
	for (unsigned i = 0; i < 65536; i++)
		buf[i] = (uint8_t)(i * 13 + 1);

	/* plain write, then the bytes are in the namespace */
	rw(&r, IORING_OP_WRITE, 1, nsfd, buf, 8192, 4096);
	run_expect(&r, (struct exp[]){ { 1, 8192 } }, 1);
	assert_memory_equal(nsdata() + 4096, buf, 8192);

	/* read back into an address that is only dword aligned (NVMe's DMA
	 * alignment): accepted, as by the kernel's nvme driver */
	uint8_t *in = aligned_alloc(4096, 65536);
	memset(in, 0, 65536);
	rw(&r, IORING_OP_READ, 2, nsfd, in + 4, 8192, 4096);
	run_expect(&r, (struct exp[]){ { 2, 8192 } }, 1);
	assert_memory_equal(in + 4, buf, 8192);

	/* alignment: offset, length, address (2 bytes) -> -EINVAL */
	rw(&r, IORING_OP_READ, 3, nsfd, in, 4096, 100);
	rw(&r, IORING_OP_READ, 4, nsfd, in, 1000, 0);
	rw(&r, IORING_OP_READ, 5, nsfd, in + 2, 512, 0);
	rw(&r, IORING_OP_WRITE, 6, nsfd, buf, 4096, 1);
	run_expect(&r, (struct exp[]){ { 3, -EINVAL }, { 4, -EINVAL }, { 5, -EINVAL }, { 6, -EINVAL } }, 4);

	/* the end of the device: short read, 0 at/after the end (even when
	 * misaligned), -ENOSPC for writes at/after it, truncated writes */
	rw(&r, IORING_OP_READ, 7, nsfd, in, 4096, ns_bytes - 512);
	rw(&r, IORING_OP_READ, 8, nsfd, in, 4096, ns_bytes);
	rw(&r, IORING_OP_READ, 9, nsfd, in, 100, ns_bytes + 3);
	rw(&r, IORING_OP_WRITE, 10, nsfd, buf, 4096, ns_bytes);
	rw(&r, IORING_OP_WRITE, 11, nsfd, buf, 4096, ns_bytes - 1024);
	rw(&r, IORING_OP_WRITE, 12, nsfd, buf, 0, ns_bytes + 512);   /* empty: 0 */
	rw(&r, IORING_OP_READ, 13, nsfd, in, 512, (uint64_t)-4096);  /* negative: -EINVAL */
	run_expect(&r, (struct exp[]){ { 7, 512 }, { 8, 0 }, { 9, 0 }, { 10, -ENOSPC }, { 11, 1024 },
				       { 12, 0 }, { 13, -EINVAL } }, 7);
	assert_memory_equal(nsdata() + ns_bytes - 1024, buf, 1024);

	/* bad fds, bad rw_flags, NULL buffer */
	rw(&r, IORING_OP_READ, 14, 9999, in, 512, 0);
	rw(&r, IORING_OP_READ, 15, nsfd, in, 512, 0)->rw_flags = 1u << 30;
	rw(&r, IORING_OP_READ, 16, nsfd, NULL, 512, 0);
	rw(&r, IORING_OP_READ, 17, nsfd, (void *)0xffff800000000000ull, 512, 0);
	run_expect(&r, (struct exp[]){ { 14, -EBADF }, { 15, -EOPNOTSUPP }, { 16, -EFAULT },
				       { 17, -EFAULT } }, 4);

	/* vectored: three segments, one write then one read */
	memset(in, 0, 65536);
	struct iovec wv[3] = { { buf, 512 }, { buf + 4096, 1024 }, { buf + 8192, 2560 } };
	struct iovec rv[3] = { { in, 2048 }, { in + 8192, 512 }, { in + 16384, 1536 } };
	rw(&r, IORING_OP_WRITEV, 18, nsfd, wv, 3, 65536);
	rw(&r, IORING_OP_READV, 19, nsfd, rv, 3, 65536)->flags = 0;
	r.sqes[(r.sqe_tail - 2) & 31].flags = IOSQE_IO_LINK;   /* read after write */
	run_expect(&r, (struct exp[]){ { 18, 4096 }, { 19, 4096 } }, 2);
	uint8_t want[4096];
	memcpy(want, buf, 512);
	memcpy(want + 512, buf + 4096, 1024);
	memcpy(want + 1536, buf + 8192, 2560);
	assert_memory_equal(nsdata() + 65536, want, 4096);
	assert_memory_equal(in, want, 2048);
	assert_memory_equal(in + 8192, want + 2048, 512);
	assert_memory_equal(in + 16384, want + 2560, 1536);
	struct iovec badv[2] = { { in, 512 }, { in + 4096, 100 } };
	rw(&r, IORING_OP_READV, 20, nsfd, badv, 2, 0);
	run_expect(&r, (struct exp[]){ { 20, -EINVAL } }, 1);

	/* a large write (above the pool and MDTS: split and own DMA buffer) */
	uint8_t *big = aligned_alloc(4096, 2 << 20);
	for (unsigned i = 0; i < (2u << 20) / 4; i++)
		((uint32_t *)big)[i] = i * 2654435761u;
	rw(&r, IORING_OP_WRITE, 21, nsfd, big, 1 << 20, 0);
	run_expect(&r, (struct exp[]){ { 21, 1 << 20 } }, 1);
	assert_memory_equal(nsdata(), big, 1 << 20);

	free(big);
	free(buf);
	free(in);
	tu_ring_exit(&r);
}

static void test_links_and_fixed(void **state)
{
	(void)state;
	struct tu_ring r;
	assert_true(tu_ring_init(&r, env.c, 32, NULL) >= 0);
	uint8_t *mem = aligned_alloc(4096, 4 * 4096);
	memset(mem, 0x5a, 4 * 4096);
	struct iovec bufs[2] = { { mem, 8192 }, { mem + 8192, 8192 } };
	assert_int_equal(nvr_uring_register(r.fd, IORING_REGISTER_BUFFERS, bufs, 2), 0);
	assert_int_equal(nvr_uring_register(r.fd, IORING_REGISTER_BUFFERS, bufs, 2), -EBUSY);
	int files[3] = { -1, nsfd, -1 };
	assert_int_equal(nvr_uring_register(r.fd, IORING_REGISTER_FILES, files, 3), 0);

	/* WRITE_FIXED -> READ_FIXED through registered file 1 */
	struct io_uring_sqe *s = rw(&r, IORING_OP_WRITE_FIXED, 1, 1, mem, 8192, 512 * 100);
	s->flags = IOSQE_FIXED_FILE | IOSQE_IO_LINK;
	s->buf_index = 0;
	/* the buffer's pages are the kernel's bio_vecs: 3584 + 512 bytes */
	s = rw(&r, IORING_OP_READ_FIXED, 2, 1, mem + 8192 + 512, 4096, 512 * 100);
	s->flags = IOSQE_FIXED_FILE;
	s->buf_index = 1;
	run_expect(&r, (struct exp[]){ { 1, 8192 }, { 2, 4096 } }, 2);
	assert_memory_equal(nsdata() + 512 * 100, mem, 8192);
	assert_memory_equal(mem + 8192 + 512, mem, 4096);

	/* fixed-buffer errors: index (at submission), range (at issue),
	 * a page-crossing piece not a block multiple; empty file slot */
	s = rw(&r, IORING_OP_READ_FIXED, 3, nsfd, mem, 512, 0);
	s->buf_index = 2;
	s = rw(&r, IORING_OP_READ_FIXED, 4, nsfd, mem + 8192 - 512, 1024, 0);
	s->buf_index = 0;
	s = rw(&r, IORING_OP_READ_FIXED, 5, nsfd, mem + 4096 - 4, 1024, 0);
	s->buf_index = 0;
	s = rw(&r, IORING_OP_READ, 6, 0, mem, 512, 0);
	s->flags = IOSQE_FIXED_FILE;
	/* io_submit_sqes() stops after the -EFAULT at submission: 1 consumed */
	tu_flush(&r);
	assert_int_equal(tu_enter(&r, 4, 1, IORING_ENTER_GETEVENTS, NULL, 0), 1);
	struct io_uring_cqe c;
	assert_true(tu_cqe(&r, &c));
	assert_int_equal(c.user_data, 3);
	assert_int_equal(c.res, -EFAULT);
	r.sqe_tail = *r.sq_tail;
	run_expect(&r, (struct exp[]){ { 4, -EFAULT }, { 5, -EINVAL }, { 6, -EBADF } }, 3);

	/* a short read breaks its link; a hard link does not */
	uint8_t *in = aligned_alloc(4096, 8192);
	rw(&r, IORING_OP_READ, 7, nsfd, in, 4096, ns_bytes - 512)->flags = IOSQE_IO_LINK;
	rw(&r, IORING_OP_READ, 8, nsfd, in, 512, 0)->flags = IOSQE_IO_LINK;
	rw(&r, IORING_OP_NOP, 9, 0, NULL, 0, 0);
	rw(&r, IORING_OP_READ, 10, nsfd, in, 100, 0)->flags = IOSQE_IO_HARDLINK;
	rw(&r, IORING_OP_READ, 11, nsfd, in, 512, 0);
	run_expect(&r, (struct exp[]){ { 7, 512 }, { 8, -ECANCELED }, { 9, -ECANCELED },
				       { 10, -EINVAL }, { 11, 512 } }, 5);

	/* FSYNC (no volatile cache: at once), its field checks, FALLOCATE */
	rw(&r, IORING_OP_FSYNC, 12, nsfd, NULL, 0, 0);
	rw(&r, IORING_OP_FSYNC, 13, nsfd, NULL, 0, 0)->fsync_flags = IORING_FSYNC_DATASYNC;
	run_expect(&r, (struct exp[]){ { 12, 0 }, { 13, 0 } }, 2);
	/* prep errors fail at submission (and end a batch): one at a time */
	rw(&r, IORING_OP_FSYNC, 14, nsfd, NULL, 0, 0)->fsync_flags = 2;
	run_expect(&r, (struct exp[]){ { 14, -EINVAL } }, 1);
	rw(&r, IORING_OP_FSYNC, 15, nsfd, (void *)8, 0, 0);
	run_expect(&r, (struct exp[]){ { 15, -EINVAL } }, 1);
	assert_true(nsdata()[512 * 100] == 0x5a);
	/* fallocate: addr = length, len = mode */
	uint64_t deac0 = nvme_model_get_stats(env.m).wz_deac;
	rw(&r, IORING_OP_FALLOCATE, 16, nsfd, (void *)8192, 0x10 /* ZERO_RANGE */, 512 * 100);
	rw(&r, IORING_OP_FALLOCATE, 17, nsfd, (void *)4096, 0x02 /* PUNCH w/o KEEP */, 0);
	rw(&r, IORING_OP_FALLOCATE, 18, nsfd, (void *)4096, 0, 0);     /* plain: unsupported */
	rw(&r, IORING_OP_FALLOCATE, 19, nsfd, (void *)4096, 0x03, ns_bytes);  /* past end */
	rw(&r, IORING_OP_FALLOCATE, 20, nsfd, (void *)100, 0x03, 0);   /* misaligned */
	rw(&r, IORING_OP_FALLOCATE, 21, nsfd, (void *)8192, 0x03, ns_bytes - 512); /* clipped */
	run_expect(&r, (struct exp[]){ { 16, 0 }, { 17, -EOPNOTSUPP }, { 18, -EOPNOTSUPP },
				       { 19, -EINVAL }, { 20, -EINVAL }, { 21, 0 } }, 6);
	uint8_t zero[8192] = { 0 };
	assert_memory_equal(nsdata() + 512 * 100, zero, 8192);
	/* The punched hole (#21, one block) went out as Write Zeroes with
	 * DEAC, as Linux sends it when DLFEAT (0x9 on the model) says
	 * deallocated blocks read as zeroes; ZERO_RANGE (#16) without. */
	assert_int_equal(nvme_model_get_stats(env.m).wz_deac - deac0, 1);

	assert_int_equal(nvr_uring_register(r.fd, IORING_UNREGISTER_BUFFERS, NULL, 0), 0);
	s = rw(&r, IORING_OP_READ_FIXED, 22, nsfd, mem, 512, 0);
	run_expect(&r, (struct exp[]){ { 22, -EFAULT } }, 1);
	assert_int_equal(nvr_uring_register(r.fd, IORING_UNREGISTER_FILES, NULL, 0), 0);
	free(in);
	tu_ring_exit(&r);
	free(mem);
}

static void test_iopoll_and_sqpoll(void **state)
{
	(void)state;
	uint8_t *in = aligned_alloc(4096, 4096);
	struct io_uring_params p = { .flags = IORING_SETUP_IOPOLL };
	struct tu_ring r;
	assert_true(tu_ring_init(&r, env.c, 8, &p) >= 0);
	rw(&r, IORING_OP_READ, 1, nsfd, in, 4096, 0);
	rw(&r, IORING_OP_FSYNC, 2, nsfd, NULL, 0, 0);   /* not pollable: -EINVAL, batch stops */
	tu_flush(&r);
	assert_int_equal(tu_enter(&r, 2, 2, IORING_ENTER_GETEVENTS, NULL, 0), 2);
	struct io_uring_cqe c;
	int seen = 0;
	struct timespec t0, t1;
	/* bounded by time, not passes: a loaded host may not run the model's
	 * thread for a while */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		while (tu_cqe(&r, &c)) {
			assert_int_equal(c.res, c.user_data == 1 ? 4096 : -EINVAL);
			seen++;
		}
		if (seen < 2)
			tu_enter(&r, 0, 0, IORING_ENTER_GETEVENTS, NULL, 0);   /* IOPOLL reaps here */
		clock_gettime(CLOCK_MONOTONIC, &t1);
	} while (seen < 2 && t1.tv_sec - t0.tv_sec < 5);
	assert_int_equal(seen, 2);
	tu_ring_exit(&r);

	/* SQPOLL: no enter at all for submission or completion */
	struct io_uring_params sp = { .flags = IORING_SETUP_SQPOLL, .sq_thread_idle = 20 };
	assert_true(tu_ring_init(&r, env.c, 8, &sp) >= 0);
	for (int i = 0; i < 4; i++)
		rw(&r, IORING_OP_READ, 10 + (uint64_t)i, nsfd, in, 512, 512 * (uint64_t)i);
	tu_flush(&r);
	/* as liburing does: wake the poller only if it asked for it */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(r.sq_flags, __ATOMIC_RELAXED) & IORING_SQ_NEED_WAKEUP)
		assert_int_equal(tu_enter(&r, 4, 0, IORING_ENTER_SQ_WAKEUP, NULL, 0), 4);
	seen = 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		while (tu_cqe(&r, &c)) {
			assert_int_equal(c.res, 512);
			seen++;
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
	} while (seen < 4 && t1.tv_sec - t0.tv_sec < 5);
	assert_int_equal(seen, 4);
	/* idle: the thread asks for a wakeup */
	struct timespec ts = { 0, 100 * 1000000 };
	nanosleep(&ts, NULL);
	assert_true(__atomic_load_n(r.sq_flags, __ATOMIC_ACQUIRE) & IORING_SQ_NEED_WAKEUP);
	rw(&r, IORING_OP_NOP, 20, 0, NULL, 0, 0);
	tu_flush(&r);
	assert_int_equal(tu_enter(&r, 1, 1, IORING_ENTER_SQ_WAKEUP | IORING_ENTER_GETEVENTS, NULL, 0), 1);
	assert_true(tu_cqe(&r, &c));
	assert_int_equal(c.user_data, 20);
	tu_ring_exit(&r);
	free(in);
}

/* Facts tests/vm/difftest measured against the guest's Linux 6.1 (see the
 * comments in abi/ where each is implemented). */
static void test_guest_kernel_facts(void **state)
{
	(void)state;
	struct tu_ring r;
	assert_true(tu_ring_init(&r, env.c, 16, NULL) >= 0);
	uint8_t *mem = aligned_alloc(4096, 8192);
	memset(mem, 0x3c, 8192);
	struct iovec buf = { mem, 4096 };
	assert_int_equal(nvr_uring_register(r.fd, IORING_REGISTER_BUFFERS, &buf, 1), 0);

	/* FALLOCATE's own errors do not break its link; the chain's head is
	 * a FALLOCATE and its last member a READ (once imported as READV) */
	rw(&r, IORING_OP_FALLOCATE, 1, nsfd, (void *)4096, 0, 0)->flags = IOSQE_IO_LINK;
	rw(&r, IORING_OP_FALLOCATE, 2, nsfd, (void *)100, 0x03, 0)->flags = IOSQE_IO_LINK;
	rw(&r, IORING_OP_READ, 3, nsfd, mem + 4096, 512, 0);
	run_expect(&r, (struct exp[]){ { 1, -EOPNOTSUPP }, { 2, -EINVAL }, { 3, 512 } }, 3);
	/* ... a bad file does */
	rw(&r, IORING_OP_FALLOCATE, 4, 987, (void *)4096, 0x10, 0)->flags = IOSQE_IO_LINK;
	rw(&r, IORING_OP_NOP, 5, 0, NULL, 0, 0);
	run_expect(&r, (struct exp[]){ { 4, -EBADF }, { 5, -ECANCELED } }, 2);
	/* a WRITE_FIXED member outside its buffer fails when issued, not
	 * at submission: the enter consumes all three */
	rw(&r, IORING_OP_NOP, 6, 0, NULL, 0, 0)->flags = IOSQE_IO_HARDLINK;
	rw(&r, IORING_OP_WRITE_FIXED, 7, nsfd, mem + 4096, 512, 0)->flags = IOSQE_IO_HARDLINK;
	rw(&r, IORING_OP_NOP, 8, 0, NULL, 0, 0);
	run_expect(&r, (struct exp[]){ { 6, 0 }, { 7, -EFAULT }, { 8, 0 } }, 3);
	/* NOP with rw_flags, RWF_HIPRI without IOPOLL, READV + BUFFER_SELECT
	 * with len != 1 (the first at submission, so one at a time) */
	rw(&r, IORING_OP_NOP, 9, 0, NULL, 0, 0)->rw_flags = 1;
	run_expect(&r, (struct exp[]){ { 9, -EINVAL } }, 1);
	rw(&r, IORING_OP_READ, 10, nsfd, mem, 512, 0)->rw_flags = 1 /* RWF_HIPRI */;
	run_expect(&r, (struct exp[]){ { 10, -EINVAL } }, 1);
	struct iovec iov[2] = { { mem, 512 }, { mem + 512, 512 } };
	rw(&r, IORING_OP_READV, 11, nsfd, iov, 2, 0)->flags = IOSQE_BUFFER_SELECT;
	run_expect(&r, (struct exp[]){ { 11, -EINVAL } }, 1);
	rw(&r, IORING_OP_READV, 12, nsfd, iov, 1, 0)->flags = IOSQE_BUFFER_SELECT;
	run_expect(&r, (struct exp[]){ { 12, -ENOBUFS } }, 1);
	/* ioprio: BE with data 9 is level 1 (fine); NONE with a level is not */
	rw(&r, IORING_OP_READ, 13, nsfd, mem, 512, 0)->ioprio = 2 << 13 | 9;
	run_expect(&r, (struct exp[]){ { 13, 512 } }, 1);
	rw(&r, IORING_OP_READ, 14, nsfd, mem, 512, 0)->ioprio = 1;
	run_expect(&r, (struct exp[]){ { 14, -EINVAL } }, 1);
	/* an empty misaligned iovec before the data; a faulting segment
	 * after some data: a short transfer */
	struct iovec v3[3] = { { mem, 512 }, { mem + 1026, 0 }, { mem + 1024, 512 } };
	struct iovec v2[2] = { { mem, 512 }, { NULL, 512 } };
	rw(&r, IORING_OP_READV, 15, nsfd, v3, 3, 0);
	rw(&r, IORING_OP_WRITEV, 16, nsfd, v2, 2, 0);
	run_expect(&r, (struct exp[]){ { 15, -EINVAL }, { 16, 512 } }, 2);

	tu_ring_exit(&r);
	free(mem);
}

/* A fault in a transfer whose iovecs span more than 256 pages (Linux's
 * multi-bio __blkdev_direct_IO()): the bytes before the fault move and the
 * result is -EIO; at 256 pages or fewer the same fault gives a short
 * transfer. Segments of 512 B, one per page. */
static void test_multi_bio_faults(void **state)
{
	(void)state;
	enum { MANY = 300, FEW = 200 };
	struct tu_ring r;
	assert_true(tu_ring_init(&r, env.c, 8, NULL) >= 0);
	uint8_t *mem = aligned_alloc(4096, (size_t)MANY * 4096);
	assert_non_null(mem);
	struct iovec *v = calloc(MANY, sizeof(*v));
	for (unsigned i = 0; i < MANY; i++) {
		memset(mem + (size_t)i * 4096, (int)(i & 0xff) | 1, 512);
		v[i] = (struct iovec){ mem + (size_t)i * 4096, 512 };
	}
	memset(nsdata(), 0, (size_t)MANY * 512);
	v[FEW - 1].iov_base = NULL;     /* the last of FEW */
	rw(&r, IORING_OP_WRITEV, 1, nsfd, v, FEW, 0);
	run_expect(&r, (struct exp[]){ { 1, (FEW - 1) * 512 } }, 1);
	v[FEW - 1].iov_base = mem + (size_t)(FEW - 1) * 4096;
	v[MANY - 1].iov_base = NULL;    /* the last of MANY */
	memset(nsdata(), 0, (size_t)MANY * 512);
	rw(&r, IORING_OP_WRITEV, 2, nsfd, v, MANY, 0);
	run_expect(&r, (struct exp[]){ { 2, -EIO } }, 1);
	for (unsigned i = 0; i < MANY - 1; i++)     /* the prefix was written */
		assert_memory_equal(nsdata() + (size_t)i * 512, mem + (size_t)i * 4096, 512);
	uint8_t zero[512] = { 0 };
	assert_memory_equal(nsdata() + (size_t)(MANY - 1) * 512, zero, 512);
	v[0].iov_base = NULL;           /* nothing before the fault */
	rw(&r, IORING_OP_WRITEV, 3, nsfd, v, MANY, 0);
	rw(&r, IORING_OP_WRITEV, 4, nsfd, v, FEW, 0);
	run_expect(&r, (struct exp[]){ { 3, -EIO }, { 4, -EFAULT } }, 2);
	v[0].iov_base = mem;
	/* reads: a NULL segment half-way */
	v[MANY - 1].iov_base = mem + (size_t)(MANY - 1) * 4096;
	v[MANY / 2].iov_base = NULL;
	for (unsigned i = 0; i < MANY; i++)
		memset(mem + (size_t)i * 4096, 0xee, 512);
	rw(&r, IORING_OP_READV, 5, nsfd, v, MANY, 0);
	run_expect(&r, (struct exp[]){ { 5, -EIO } }, 1);
	for (unsigned i = 0; i < MANY / 2; i++)
		assert_memory_equal(mem + (size_t)i * 4096, nsdata() + (size_t)i * 512, 512);
	tu_ring_exit(&r);
	free(v);
	free(mem);
}

/* One fixed-buffer SQE on @r (buffers and files registered), waited for;
 * returns its result. */
static int fixed_one(struct tu_ring *r, uint8_t op, uint8_t flags, uint16_t bi, int fd,
		     uint64_t addr, uint32_t len, uint64_t off)
{
	struct io_uring_sqe *s = rw(r, op, 77, fd, (void *)(uintptr_t)addr, len, off);
	s->flags = flags;
	s->buf_index = bi;
	tu_flush(r);
	assert_int_equal(tu_enter(r, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0), 1);
	struct io_uring_cqe c;
	while (!tu_cqe(r, &c))
		assert_int_equal(tu_enter(r, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0), 0);
	assert_int_equal(c.user_data, 77);
	return c.res;
}

/* READ_FIXED/WRITE_FIXED with only IOSQE_FIXED_FILE take a short path
 * (ur_submit_fixed(), ur_complete_io()); IOSQE_ASYNC, which changes
 * nothing else, sends the same SQE the general way. Both must give the
 * same result and move the same bytes, on plain and IOPOLL rings, for
 * SQEs inside and at every edge of what the short path takes: seeded
 * random buffers, offsets, lengths (1 to 3 pages: PRP2 and a PRP list),
 * misaligned addresses and offsets, the device's end, bad buffer and
 * file indexes. */
static void test_fixed_fast_path_same_as_general(void **state)
{
	(void)state;
	uint8_t *mem = aligned_alloc(4096, 6 * 4096);
	uint8_t *save = malloc(ns_bytes), *after = malloc(ns_bytes), *got = malloc(6 * 4096);
	uint64_t base = (uintptr_t)mem;
	struct iovec bufs[3] = { { mem, 8192 }, { mem + 8192, 12288 }, { mem + 20480, 4096 } };
	uint64_t rng = 0x9e3779b97f4a7c15ull;   /* fixed seed: xorshift64 */
	for (int ring = 0; ring < 2; ring++) {
		struct io_uring_params p = { .flags = ring ? IORING_SETUP_IOPOLL : 0 };
		struct tu_ring r;
		assert_true(tu_ring_init(&r, env.c, 8, &p) >= 0);
		assert_int_equal(nvr_uring_register(r.fd, IORING_REGISTER_BUFFERS, bufs, 3), 0);
		int files[2] = { nsfd, -1 };
		assert_int_equal(nvr_uring_register(r.fd, IORING_REGISTER_FILES, files, 2), 0);
		for (int i = 0; i < 400; i++) {
			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			uint64_t x = rng;
			uint8_t op = (x & 1) ? IORING_OP_WRITE_FIXED : IORING_OP_READ_FIXED;
			uint16_t bi = (x >> 1) % 16 ? (uint16_t)((x >> 5) % 3) : 3;   /* 3: none */
			int fd = (x >> 7) % 16 ? 0 : (int)((x >> 11) % 3);             /* 1, 2: bad */
			uint64_t a = (uintptr_t)bufs[bi < 3 ? bi : 0].iov_base;
			uint32_t len = 512u * (1 + (x >> 13) % 24);                    /* 512 B .. 12 KiB */
			uint64_t off = 512ull * ((x >> 18) % 2048);
			switch ((x >> 29) & 15) {
			case 0: a += 4; break;                  /* dword, not block, aligned */
			case 1: off += 8; break;                /* misaligned offset */
			case 2: off = ns_bytes - 512; break;    /* crosses the end */
			case 3: a += 512 * ((x >> 33) % 8); break;
			case 4: off = ns_bytes; break;          /* at the end */
			case 5: a = (uintptr_t)bufs[bi < 3 ? bi : 0].iov_base - 512; break;
			default: break;
			}
			for (int k = 0; k < 6 * 4096; k++)
				mem[k] = (uint8_t)(k * 7 + i);
			for (uint64_t k = 0; k < ns_bytes; k++)
				nsdata()[k] = (uint8_t)(k * 3 + i);
			memcpy(save, nsdata(), ns_bytes);
			int fast = fixed_one(&r, op, IOSQE_FIXED_FILE, bi, fd, a, len, off);
			memcpy(after, nsdata(), ns_bytes);
			memcpy(got, mem, 6 * 4096);
			memcpy(nsdata(), save, ns_bytes);
			for (int k = 0; k < 6 * 4096; k++)
				mem[k] = (uint8_t)(k * 7 + i);
			int slow = fixed_one(&r, op, IOSQE_FIXED_FILE | IOSQE_ASYNC, bi, fd, a, len, off);
			if (fast != slow)
				fail_msg("case %d: op %u buf %u fd %d addr +%llu len %u off %llu: %d vs %d",
					 i, op, bi, fd, (unsigned long long)(a - base), len,
					 (unsigned long long)off, fast, slow);
			assert_memory_equal(after, nsdata(), ns_bytes);
			assert_memory_equal(got, mem, 6 * 4096);
		}
		tu_ring_exit(&r);
	}
	free(mem);
	free(save);
	free(after);
	free(got);
}

/* A fixed-buffer SQE the ring's short path takes (ur_submit_fixed())
 * but the driver's one-command entry (nvr_io_ring_rw()) must not: more
 * blocks than one command carries (MDTS 8 KiB here). It goes through
 * nvr_io(), which splits it; built as one command the device would fail
 * it. Both directions, on an IOPOLL ring, the bytes compared. */
static void test_fixed_past_mdts(void **state)
{
	(void)state;
	struct nvme_model_cfg cfg = { .ns_blocks = 2048, .lba_shift = 9, .mdts = 1 };
	struct tu_env e2;
	tu_attach(&e2, &cfg);
	int fd2 = nvr_ns_open(e2.c, 1);
	assert_true(fd2 >= 0);
	uint8_t *mem = aligned_alloc(4096, 8 * 4096);
	struct iovec buf = { mem, 8 * 4096 };
	struct io_uring_params p = { .flags = IORING_SETUP_IOPOLL };
	struct tu_ring r;
	assert_true(tu_ring_init(&r, e2.c, 8, &p) >= 0);
	assert_int_equal(nvr_uring_register(r.fd, IORING_REGISTER_BUFFERS, &buf, 1), 0);
	int files[1] = { fd2 };
	assert_int_equal(nvr_uring_register(r.fd, IORING_REGISTER_FILES, files, 1), 0);
	for (int k = 0; k < 4 * 4096; k++)
		mem[k] = (uint8_t)(k * 5 + 1);
	memset(mem + 4 * 4096, 0, 4 * 4096);
	uint64_t a = (uintptr_t)mem;
	/* 16 KiB, two commands' worth, from the buffer's start and back into
	 * its second half */
	assert_int_equal(fixed_one(&r, IORING_OP_WRITE_FIXED, IOSQE_FIXED_FILE, 0, 0, a, 16384,
				   8192), 16384);
	assert_int_equal(fixed_one(&r, IORING_OP_READ_FIXED, IOSQE_FIXED_FILE, 0, 0,
				   a + 4 * 4096, 16384, 8192), 16384);
	assert_memory_equal(mem, mem + 4 * 4096, 16384);
	tu_ring_exit(&r);
	free(mem);
	assert_int_equal(nvr_ns_close(fd2), 0);
	struct nvme_model_stats st = nvme_model_get_stats(e2.m);
	assert_int_equal(st.prp_errors, 0);
	tu_detach(&e2);
}

static int setup(void **state)
{
	(void)state;
	tu_attach(&env, NULL);
	nsfd = nvr_ns_open(env.c, 1);
	assert_true(nsfd >= 0);
	struct nvr_ns_info ni;
	assert_int_equal(nvr_ns_get_info(env.c, 1, &ni), 0);
	ns_bytes = ni.nlba * ni.lba_size;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	assert_int_equal(nvr_ns_close(nsfd), 0);
	struct nvme_model_stats st = nvme_model_get_stats(env.m);
	assert_int_equal(st.prp_errors, 0);
	tu_detach(&env);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_write_rules),
		cmocka_unit_test(test_links_and_fixed),
		cmocka_unit_test(test_guest_kernel_facts),
		cmocka_unit_test(test_iopoll_and_sqpoll),
		cmocka_unit_test(test_multi_bio_faults),
		cmocka_unit_test(test_fixed_fast_path_same_as_general),
		cmocka_unit_test(test_fixed_past_mdts),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
