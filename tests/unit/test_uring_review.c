/* SPDX-License-Identifier: MIT */
/*
 * Regression tests for the abi/ review findings, on the software model:
 * bounce pool progress, one device request per ring request, registered
 * buffers' DMA holds and range merging, SUBMIT_STABLE for chain heads, bad
 * user pointers (-EFAULT / short transfers, as the kernel), namespace
 * references (fixed files take none; close releases everything), and
 * FALLOCATE ZERO_RANGE without Write Zeroes.
 */
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>

#include "tests/unit/test_uring_util.h"
#include "abi/ring.h"   /* ur_fdtab_get(): namespace reference counts */

static struct tu_env env;
static int nsfd;

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static struct io_uring_sqe *sqe_rw(struct tu_ring *r, uint8_t op, uint64_t ud, int fd,
				   const void *addr, uint32_t len, uint64_t off)
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

/* Wait (at most 5 s) for @n CQEs; their results by user_data 1..n. */
static void wait_cqes(struct tu_ring *r, unsigned n, int *res)
{
	struct __kernel_timespec ts = { .tv_sec = 5 };
	struct io_uring_getevents_arg ea = { .ts = (uintptr_t)&ts };
	for (unsigned got = 0; got < n;) {
		struct io_uring_cqe c;
		if (tu_cqe(r, &c)) {
			assert_true(c.user_data >= 1 && c.user_data <= n);
			res[c.user_data - 1] = c.res;
			got++;
			continue;
		}
		int ret = tu_enter(r, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &ea, sizeof(ea));
		if (ret == -ETIME)
			fail_msg("only %u of %u CQEs within 5 s", got, n);
		assert_int_equal(ret, 0);
	}
}

static int ns_refs(void)
{
	struct ur_obj *o = ur_fdtab_get(nsfd);
	assert_non_null(o);
	return atomic_load(&o->refs);
}

/* #1: a 1 MiB bounced read and a 4 KiB one in one batch (the first used
 * to take the whole pool chunk by chunk while the second waited for it);
 * and reads larger than the pool alongside. */
static void test_bounce_pool_progress(void **state)
{
	(void)state;
	struct tu_ring r;
	assert_true(tu_ring_init(&r, env.c, 32, NULL) >= 0);
	uint8_t *ns = nvme_model_ns_data(env.m, 1);
	for (unsigned i = 0; i < (4u << 20); i += 4)
		*(uint32_t *)(ns + i) = i * 2654435761u;
	uint8_t *big = aligned_alloc(4096, 3 << 20), *small = aligned_alloc(4096, 4096);
	sqe_rw(&r, IORING_OP_READ, 1, nsfd, big, 1 << 20, 0);
	sqe_rw(&r, IORING_OP_READ, 2, nsfd, small, 4096, 1 << 20);
	tu_flush(&r);
	assert_int_equal(tu_enter(&r, 2, 0, 0, NULL, 0), 2);
	int res[8];
	wait_cqes(&r, 2, res);
	assert_int_equal(res[0], 1 << 20);
	assert_int_equal(res[1], 4096);
	assert_memory_equal(big, ns, 1 << 20);
	assert_memory_equal(small, ns + (1 << 20), 4096);

	/* larger than the pool (own DMA buffer) between pool users */
	memset(big, 0, 3 << 20);
	sqe_rw(&r, IORING_OP_READ, 1, nsfd, small, 4096, 8192);
	sqe_rw(&r, IORING_OP_READ, 2, nsfd, big, 3 << 20, 0);
	sqe_rw(&r, IORING_OP_WRITE, 3, nsfd, small, 4096, 3 << 20);
	tu_flush(&r);
	assert_int_equal(tu_enter(&r, 3, 0, 0, NULL, 0), 3);
	wait_cqes(&r, 3, res);
	assert_int_equal(res[0], 4096);
	assert_int_equal(res[1], 3 << 20);
	assert_int_equal(res[2], 4096);
	assert_memory_equal(big, ns, 3 << 20);

	/* two larger than the pool at once: they take the ring's large
	 * extent in turn */
	uint8_t *big2 = aligned_alloc(4096, 2 << 20);
	memset(big, 0, 2 << 20);
	sqe_rw(&r, IORING_OP_READ, 1, nsfd, big, 2 << 20, 0);
	sqe_rw(&r, IORING_OP_READ, 2, nsfd, big2, 2 << 20, 2 << 20);
	tu_flush(&r);
	assert_int_equal(tu_enter(&r, 2, 0, 0, NULL, 0), 2);
	wait_cqes(&r, 2, res);
	assert_int_equal(res[0], 2 << 20);
	assert_int_equal(res[1], 2 << 20);
	assert_memory_equal(big, ns, 2 << 20);
	assert_memory_equal(big2, ns + (2 << 20), 2 << 20);
	free(big2);
	free(big);
	free(small);
	tu_ring_exit(&r);
}

/* #2: a 1 MiB READ_FIXED at MDTS 128 KiB is one nvr_io(): its eight
 * commands are in the device together, not one after another. */
static void test_one_device_request(void **state)
{
	(void)state;
	struct tu_ring r;
	assert_true(tu_ring_init(&r, env.c, 8, NULL) >= 0);
	void *buf;
	assert_int_equal(nvr_dma_alloc(env.c, 1 << 20, &buf), 0);
	struct iovec iov = { buf, 1 << 20 };
	assert_int_equal(tu_register(&r, IORING_REGISTER_BUFFERS, &iov, 1), 0);
	nvme_model_delay_cpl(env.m, 10000);   /* 10 ms per completion */
	sqe_rw(&r, IORING_OP_READ_FIXED, 1, nsfd, buf, 1 << 20, 0);
	tu_flush(&r);
	double t0 = now_ms();
	assert_int_equal(tu_enter(&r, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0), 1);
	int res[1];
	wait_cqes(&r, 1, res);
	double ms = now_ms() - t0;
	nvme_model_delay_cpl(env.m, 0);
	assert_int_equal(res[0], 1 << 20);
	/* one command at a time would take 8 x 10 ms */
	if (ms > 60)
		fail_msg("1 MiB READ_FIXED took %.1f ms: its commands ran one at a time", ms);
	assert_int_equal(tu_register(&r, IORING_UNREGISTER_BUFFERS, NULL, 0), 0);
	tu_ring_exit(&r);
	assert_int_equal(nvr_dma_free(env.c, buf), 0);
}

/* #3: registered buffers hold their DMA memory; two rings share a plain
 * buffer; a DMA buffer and an adjacent plain one register together. */
static void test_registered_buffer_holds(void **state)
{
	(void)state;
	struct tu_ring a, b;
	assert_true(tu_ring_init(&a, env.c, 8, NULL) >= 0);
	assert_true(tu_ring_init(&b, env.c, 8, NULL) >= 0);
	uint8_t *plain = aligned_alloc(4096, 65536);
	struct iovec iov = { plain, 65536 };
	assert_int_equal(tu_register(&a, IORING_REGISTER_BUFFERS, &iov, 1), 0);
	assert_int_equal(tu_register(&b, IORING_REGISTER_BUFFERS, &iov, 1), 0);
	assert_int_equal(tu_register(&a, IORING_UNREGISTER_BUFFERS, NULL, 0), 0);
	uint64_t iova;
	assert_int_equal(nvr_dma_iova(env.c, plain, 65536, &iova), 0);   /* still B's */
	memcpy(plain, "0123456789abcdef", 16);
	sqe_rw(&b, IORING_OP_WRITE_FIXED, 1, nsfd, plain, 4096, 0);
	tu_flush(&b);
	int res[1];
	assert_int_equal(tu_enter(&b, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0), 1);
	wait_cqes(&b, 1, res);
	assert_int_equal(res[0], 4096);
	assert_memory_equal(nvme_model_ns_data(env.m, 1), "0123456789abcdef", 16);
	assert_int_equal(tu_register(&b, IORING_UNREGISTER_BUFFERS, NULL, 0), 0);
	assert_int_equal(nvr_dma_iova(env.c, plain, 4096, &iova), -EFAULT);   /* unmapped */

	/* an allocation is held while registered: freeing it is -EBUSY */
	void *d;
	assert_int_equal(nvr_dma_alloc(env.c, 4 << 20, &d), 0);
	uint8_t *m = mmap((uint8_t *)d - 65536, 65536, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	struct iovec two[2] = { { d, 4096 }, { m, 65536 } };
	bool adjacent = m != MAP_FAILED && m + 65536 == (uint8_t *)d;
	if (!adjacent)
		two[1].iov_base = plain;   /* still the mixed case, if not adjacent */
	assert_int_equal(tu_register(&a, IORING_REGISTER_BUFFERS, two, 2), 0);
	assert_int_equal(nvr_dma_free(env.c, d), -EBUSY);
	assert_int_equal(tu_register(&a, IORING_UNREGISTER_BUFFERS, NULL, 0), 0);
	assert_int_equal(nvr_dma_free(env.c, d), 0);
	if (m != MAP_FAILED)
		munmap(m, 65536);
	free(plain);
	tu_ring_exit(&a);
	tu_ring_exit(&b);
}

/* #4: a READV chain head (DRAIN | LINK) deferred behind a busy READ reads
 * the iovec the application had when it entered. */
static void test_stable_chain_head(void **state)
{
	(void)state;
	struct tu_ring r;
	assert_true(tu_ring_init(&r, env.c, 8, NULL) >= 0);
	memset(nvme_model_ns_data(env.m, 1), 0xab, 4096);
	uint8_t *b0 = aligned_alloc(4096, 4096), *b1 = aligned_alloc(4096, 4096),
		*b2 = aligned_alloc(4096, 4096);
	memset(b1, 0, 4096);
	memset(b2, 0, 4096);
	nvme_model_delay_cpl(env.m, 20000);
	struct iovec *iov = malloc(sizeof(*iov));
	*iov = (struct iovec){ b1, 4096 };
	sqe_rw(&r, IORING_OP_READ, 1, nsfd, b0, 4096, 8192);
	sqe_rw(&r, IORING_OP_READV, 2, nsfd, iov, 1, 0)->flags = IOSQE_IO_DRAIN | IOSQE_IO_LINK;
	sqe_rw(&r, IORING_OP_NOP, 3, 0, NULL, 0, 0);
	tu_flush(&r);
	assert_int_equal(tu_enter(&r, 3, 0, 0, NULL, 0), 3);
	iov->iov_base = b2;
	int res[3];
	wait_cqes(&r, 3, res);
	nvme_model_delay_cpl(env.m, 0);
	assert_int_equal(res[1], 4096);
	assert_int_equal(b1[0], 0xab);
	assert_int_equal(b2[0], 0);
	free(iov);
	free(b0);
	free(b1);
	free(b2);
	tu_ring_exit(&r);
}

/* #5: bad user pointers are -EFAULT or short transfers, not SIGSEGV. */
static void test_bad_user_pointers(void **state)
{
	(void)state;
	struct tu_ring r;
	assert_true(tu_ring_init(&r, env.c, 16, NULL) >= 0);
	/* four pages: data, PROT_NONE, data, PROT_NONE */
	uint8_t *p = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(p != MAP_FAILED);
	memset(p, 0x77, 4 * 4096);
	assert_int_equal(mprotect(p + 4096, 4096, PROT_NONE), 0);
	assert_int_equal(mprotect(p + 3 * 4096, 4096, PROT_NONE), 0);
	uint8_t *ns = nvme_model_ns_data(env.m, 1);
	memset(ns, 0x11, 16384);
	struct iovec bad_iov = { p + 4096, 512 };
	struct iovec two[2] = { { p, 512 }, { p + 4096, 512 } };
	sqe_rw(&r, IORING_OP_READV, 1, nsfd, p + 4096, 1, 0);            /* iovec array unreadable */
	sqe_rw(&r, IORING_OP_READV, 2, nsfd, &bad_iov, 1, 0);            /* segment unreadable */
	sqe_rw(&r, IORING_OP_READ, 3, nsfd, p + 4096, 4096, 0);          /* buffer PROT_NONE */
	sqe_rw(&r, IORING_OP_READ, 4, nsfd, p, 8192, 0);                 /* second page bad: short */
	sqe_rw(&r, IORING_OP_WRITE, 5, nsfd, p, 8192, 65536);            /* short write */
	sqe_rw(&r, IORING_OP_WRITEV, 6, nsfd, two, 2, 131072);           /* short at segment 2 */
	sqe_rw(&r, IORING_OP_READ, 7, nsfd, p + 3 * 4096 - 1028, 2048, 0);   /* misaligned: 1024 */
	tu_flush(&r);
	assert_int_equal(tu_enter(&r, 7, 0, 0, NULL, 0), 7);
	int res[7];
	wait_cqes(&r, 7, res);
	assert_int_equal(res[0], -EFAULT);
	assert_int_equal(res[1], -EFAULT);
	assert_int_equal(res[2], -EFAULT);
	assert_int_equal(res[3], 4096);
	assert_int_equal(res[4], 4096);
	assert_int_equal(res[5], 512);
	assert_int_equal(res[6], 1024);
	/* the misaligned read wrote its two whole blocks and not the 4 bytes
	 * of the third that lie before the bad page */
	assert_int_equal(p[3 * 4096 - 1028 + 1023], 0x11);
	assert_int_equal(p[3 * 4096 - 4], 0x77);

	/* enter's EXT_ARG and its timespec, register's arrays, the probe */
	struct io_uring_getevents_arg ea = { .ts = (uintptr_t)(p + 4096) };
	assert_int_equal(tu_enter(&r, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
				  p + 4096, sizeof(ea)), -EFAULT);
	assert_int_equal(tu_enter(&r, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
				  &ea, sizeof(ea)), -EFAULT);
	assert_int_equal(tu_register(&r, IORING_REGISTER_PROBE, p + 4096, 8), -EFAULT);
	assert_int_equal(tu_register(&r, IORING_REGISTER_FILES, p + 4096, 2), -EFAULT);
	assert_int_equal(tu_register(&r, IORING_REGISTER_BUFFERS, p + 4096, 2), -EFAULT);
	/* a probe straddling into the bad page: the kernel reads only
	 * IORING_OP_LAST entries */
	struct io_uring_probe *probe = (void *)(p + 4096 - sizeof(*probe) -
						IORING_OP_LAST * sizeof(probe->ops[0]));
	memset(probe, 0, sizeof(*probe) + IORING_OP_LAST * sizeof(probe->ops[0]));
	assert_int_equal(tu_register(&r, IORING_REGISTER_PROBE, probe, 256), 0);
	assert_int_equal(probe->ops_len, IORING_OP_LAST);
	munmap(p, 4 * 4096);
	tu_ring_exit(&r);
}

/* #5 under SQPOLL: the poller thread reads the bad iovec array. */
static void test_bad_user_pointers_sqpoll(void **state)
{
	(void)state;
	struct io_uring_params p = { .flags = IORING_SETUP_SQPOLL, .sq_thread_idle = 50 };
	struct tu_ring r;
	assert_true(tu_ring_init(&r, env.c, 8, &p) >= 0);
	uint8_t *hole = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(hole != MAP_FAILED);
	sqe_rw(&r, IORING_OP_READV, 1, nsfd, hole, 1, 0);
	sqe_rw(&r, IORING_OP_READ, 2, nsfd, hole, 512, 0);
	tu_flush(&r);
	assert_int_equal(tu_enter(&r, 2, 0, IORING_ENTER_SQ_WAKEUP, NULL, 0), 2);
	int res[2];
	wait_cqes(&r, 2, res);
	assert_int_equal(res[0], -EFAULT);
	assert_int_equal(res[1], -EFAULT);
	munmap(hole, 4096);
	tu_ring_exit(&r);
}

/* ENABLE_RINGS on a disabled SQPOLL ring wakes a poller that fell asleep
 * while the ring was disabled: an SQE published right after is consumed
 * with no enter call (second review: the register path bumped the wake
 * count without the futex wake, so it slept on until an SQ_WAKEUP). */
static void test_enable_rings_wakes_sqpoll(void **state)
{
	(void)state;
	struct io_uring_params p = { .flags = IORING_SETUP_SQPOLL | IORING_SETUP_R_DISABLED,
				     .sq_thread_idle = 300 };
	struct tu_ring r;
	assert_true(tu_ring_init(&r, env.c, 8, &p) >= 0);
	for (int i = 0; i < 3000 && !(__atomic_load_n(r.sq_flags, __ATOMIC_ACQUIRE) &
				      IORING_SQ_NEED_WAKEUP); i++)
		usleep(1000);
	assert_true(__atomic_load_n(r.sq_flags, __ATOMIC_ACQUIRE) & IORING_SQ_NEED_WAKEUP);
	usleep(20000);   /* past the flag: the poller is in its futex wait */
	assert_int_equal(tu_register(&r, IORING_REGISTER_ENABLE_RINGS, NULL, 0), 0);
	struct io_uring_sqe *s = tu_sqe(&r);
	assert_non_null(s);
	s->opcode = IORING_OP_NOP;
	s->user_data = 7;
	tu_flush(&r);
	struct io_uring_cqe c;
	bool got = false;
	for (int i = 0; i < 250 && !(got = tu_cqe(&r, &c)); i++)
		usleep(1000);   /* well inside the poller's 300 ms busy window */
	assert_true(got);
	assert_int_equal(c.user_data, 7);
	assert_int_equal(c.res, 0);
	tu_ring_exit(&r);
}

/* #5 in a sandbox that refuses process_vm_readv/writev (seccomp, EPERM):
 * non-fixed I/O still works (memcpy fallback). In a child process. */
static void test_pvm_refused_fallback(void **state)
{
	(void)state;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		struct sock_filter f[] = {
			BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_process_vm_readv, 2, 0),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_process_vm_writev, 1, 0),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		};
		struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
			_exit(77);
		struct tu_env e;
		tu_attach(&e, NULL);
		int fd = nvr_ns_open(e.c, 1);
		struct tu_ring r;
		if (tu_ring_init(&r, e.c, 8, NULL) < 0)
			_exit(2);
		uint8_t *out = aligned_alloc(4096, 4096), *in = aligned_alloc(4096, 4096);
		memset(out, 0x3e, 4096);
		memset(in, 0, 4096);
		sqe_rw(&r, IORING_OP_WRITE, 1, fd, out, 4096, 0)->flags = IOSQE_IO_LINK;
		sqe_rw(&r, IORING_OP_READ, 2, fd, in, 4096, 0);
		tu_flush(&r);
		if (tu_enter(&r, 2, 2, IORING_ENTER_GETEVENTS, NULL, 0) != 2)
			_exit(3);
		struct io_uring_cqe c;
		for (int i = 0; i < 2; i++)
			if (!tu_cqe(&r, &c) || c.res != 4096)
				_exit(4);
		int ret = memcmp(in, out, 4096) ? 5 : 0;
		tu_ring_exit(&r);
		nvr_ns_close(fd);
		tu_detach(&e);
		free(in);
		free(out);
		_exit(ret);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) == 77)
		skip();
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* #7, #8: fixed files take no namespace reference, UNREGISTER_FILES
 * waits for the requests using them, and closing a ring releases the
 * references of requests that never ran. */
static void test_ns_references(void **state)
{
	(void)state;
	struct tu_ring r;
	assert_true(tu_ring_init(&r, env.c, 8, NULL) >= 0);
	int base = ns_refs();
	int files[1] = { nsfd };
	assert_int_equal(tu_register(&r, IORING_REGISTER_FILES, files, 1), 0);
	assert_int_equal(ns_refs(), base + 1);
	uint8_t *buf = aligned_alloc(4096, 4096);
	nvme_model_delay_cpl(env.m, 20000);
	sqe_rw(&r, IORING_OP_READ, 1, 0, buf, 4096, 0)->flags = IOSQE_FIXED_FILE;
	tu_flush(&r);
	assert_int_equal(tu_enter(&r, 1, 0, 0, NULL, 0), 1);
	assert_int_equal(ns_refs(), base + 1);       /* none for the request */
	assert_int_equal(tu_register(&r, IORING_UNREGISTER_FILES, NULL, 0), 0);
	assert_int_equal(ns_refs(), base);
	int res[3];
	wait_cqes(&r, 1, res);                       /* completed while waiting */
	assert_int_equal(res[0], 4096);

	/* non-fixed: one reference each while in flight; a drained chain
	 * behind a busy read never runs, and close releases it */
	sqe_rw(&r, IORING_OP_READ, 1, nsfd, buf, 4096, 0);
	sqe_rw(&r, IORING_OP_READ, 2, nsfd, buf, 4096, 0)->flags = IOSQE_IO_DRAIN | IOSQE_IO_LINK;
	struct iovec *many = calloc(16, sizeof(*many));
	for (int i = 0; i < 16; i++)
		many[i] = (struct iovec){ buf, 256 };
	sqe_rw(&r, IORING_OP_READV, 3, nsfd, many, 16, 0);   /* a heap iovec copy */
	tu_flush(&r);
	assert_int_equal(tu_enter(&r, 3, 0, 0, NULL, 0), 3);
	assert_int_equal(ns_refs(), base + 1);
	tu_ring_exit(&r);          /* valgrind: the 16-entry copy is freed */
	nvme_model_delay_cpl(env.m, 0);
	assert_int_equal(ns_refs(), base);
	free(many);
	free(buf);
}

/* #6: namespace lookups racing with nvr_ns_close() (ASan/valgrind see a
 * use after free if the reference is taken outside the table lock). */
static _Atomic int race_fd = -1;
static _Atomic bool race_stop;
static void *race_lookup(void *arg)
{
	(void)arg;
	while (!atomic_load(&race_stop)) {
		struct ur_ns *ns = ur_ns_get(atomic_load(&race_fd));
		if (ns) {
			assert_int_equal(ns->nsid, 1);
			ur_ns_put(ns);
		}
		sched_yield();   /* let the closer in (valgrind runs one thread at a time) */
	}
	return NULL;
}

static void test_ns_close_race(void **state)
{
	(void)state;
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, race_lookup, NULL), 0);
	double t0 = now_ms();
	for (int i = 0; i < 2000 && now_ms() - t0 < 2000; i++) {
		int fd = nvr_ns_open(env.c, 1);
		assert_true(fd >= 0);
		atomic_store(&race_fd, fd);
		assert_int_equal(nvr_ns_close(fd), 0);
	}
	atomic_store(&race_stop, true);
	pthread_join(t, NULL);
}

/* #9: ZERO_RANGE without Write Zeroes writes zeroes (Linux's fallback to
 * zero pages); PUNCH_HOLE does not fall back. */
static void test_zero_range_fallback(void **state)
{
	(void)state;
	struct nvr_ctrlr_info *info = (struct nvr_ctrlr_info *)nvr_ctrlr_get_info(env.c);
	bool had = info->write_zeroes;
	info->write_zeroes = false;   /* as a controller without ONCS bit 3 */
	struct tu_ring r;
	assert_true(tu_ring_init(&r, env.c, 8, NULL) >= 0);
	uint8_t *ns = nvme_model_ns_data(env.m, 1);
	memset(ns, 0x5c, 1 << 20);
	sqe_rw(&r, IORING_OP_FALLOCATE, 1, nsfd, (void *)(uintptr_t)(600 * 1024), 0x10, 4096);
	sqe_rw(&r, IORING_OP_FALLOCATE, 2, nsfd, (void *)4096, 0x03, 0);
	tu_flush(&r);
	assert_int_equal(tu_enter(&r, 2, 0, 0, NULL, 0), 2);
	int res[2];
	wait_cqes(&r, 2, res);
	info->write_zeroes = had;
	assert_int_equal(res[0], 0);
	assert_int_equal(res[1], -EOPNOTSUPP);
	uint8_t *zero = calloc(1, 600 * 1024);
	assert_memory_equal(ns + 4096, zero, 600 * 1024);
	assert_int_equal(ns[4095], 0x5c);
	assert_int_equal(ns[4096 + 600 * 1024], 0x5c);
	free(zero);
	tu_ring_exit(&r);
}

static int setup(void **state)
{
	(void)state;
	struct nvme_model_cfg cfg = { .ns_blocks = 16384 };   /* 8 MiB */
	tu_attach(&env, &cfg);
	nsfd = nvr_ns_open(env.c, 1);
	assert_true(nsfd >= 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	assert_int_equal(nvr_ns_close(nsfd), 0);
	assert_int_equal(nvme_model_get_stats(env.m).prp_errors, 0);
	tu_detach(&env);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bounce_pool_progress),
		cmocka_unit_test(test_one_device_request),
		cmocka_unit_test(test_registered_buffer_holds),
		cmocka_unit_test(test_stable_chain_head),
		cmocka_unit_test(test_bad_user_pointers),
		cmocka_unit_test(test_bad_user_pointers_sqpoll),
		cmocka_unit_test(test_pvm_refused_fallback),
		cmocka_unit_test(test_ns_references),
		cmocka_unit_test(test_ns_close_race),
		cmocka_unit_test(test_zero_range_fallback),
		cmocka_unit_test(test_enable_rings_wakes_sqpoll),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
