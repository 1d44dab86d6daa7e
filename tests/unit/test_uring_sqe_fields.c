/* SPDX-License-Identifier: MIT */
/*
 * SQE fields an opcode does not use, and the values it does, checked as
 * the kernel's prep functions check them (Linux 6.1.192, the guest's:
 * io_uring/sync.c io_fsync_prep(), timeout.c __io_timeout_prep() and
 * io_timeout_remove_prep(), cancel.c io_async_cancel_prep()). Each case
 * runs the same SQEs on the host kernel's io_uring and on nvring; the
 * enter's result and the CQEs (user_data=res, sorted) must be equal. A
 * refusal at prep ends the enter there, so each case puts its refused SQE
 * last.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "tests/unit/test_uring_util.h"

static struct tu_env env;
static int nsfd, kfd;   /* the file each side's FSYNC names */

static int setup(void **state)
{
	(void)state;
	struct nvme_model_cfg cfg = { .ns_blocks = 2048 };
	tu_attach(&env, &cfg);
	nsfd = nvr_ns_open(env.c, 1);
	kfd = memfd_create("sqe-fields", 0);
	assert_true(nsfd >= 0 && kfd >= 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	close(kfd);
	nvr_ns_close(nsfd);
	tu_detach(&env);
	return 0;
}

static struct io_uring_sqe *put(struct tu_ring *r, uint8_t op, uint64_t ud, uint8_t flags)
{
	struct io_uring_sqe *s = tu_sqe(r);
	s->opcode = op;
	s->user_data = ud;
	s->flags = flags;
	return s;
}

static struct __kernel_timespec t5ms = { 0, 5000000 }, t2s = { 2, 0 };

static struct io_uring_sqe *tmo(struct tu_ring *r, uint8_t op, uint64_t ud,
				struct __kernel_timespec *ts, uint8_t flags)
{
	struct io_uring_sqe *s = put(r, op, ud, flags);
	s->addr = (uintptr_t)ts;
	s->len = 1;
	return s;
}

struct res { uint64_t ud; int res; };
static int cmp(const void *a, const void *b)
{
	const struct res *x = a, *y = b;
	return x->ud < y->ud ? -1 : x->ud > y->ud;
}

/* @build's SQEs on the kernel (@c NULL) or on nvring; "sub N: ud=res ..."
 * once @n CQEs came (3 s at most). */
static void run(struct nvr_ctrlr *c, void (*build)(struct tu_ring *, int), unsigned n,
		char *out, size_t len)
{
	struct tu_ring r;
	assert_true(tu_ring_init(&r, c, 16, NULL) >= 0);
	build(&r, c ? nsfd : kfd);
	tu_flush(&r);
	int sub = tu_enter(&r, r.sqe_tail - *r.sq_head, 0, 0, NULL, 0);
	struct res got[16];
	unsigned k = 0;
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (k < n) {
		struct __kernel_timespec w = { 0, 10000000 };
		struct io_uring_getevents_arg ea = { .ts = (uintptr_t)&w };
		tu_enter(&r, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &ea, sizeof(ea));
		struct io_uring_cqe cqe;
		while (k < 16 && tu_cqe(&r, &cqe))
			got[k++] = (struct res){ cqe.user_data, cqe.res };
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > 3)
			break;
	}
	qsort(got, k, sizeof(got[0]), cmp);
	size_t o = (size_t)snprintf(out, len, "sub %d:", sub);
	for (unsigned i = 0; i < k && o < len; i++)
		o += (size_t)snprintf(out + o, len - o, " %llu=%d", (unsigned long long)got[i].ud,
				      got[i].res);
	tu_ring_exit(&r);
}

static void compare(const char *name, void (*build)(struct tu_ring *, int), unsigned n,
		    const char *want)
{
	char k[256], o[256];
	run(NULL, build, n, k, sizeof(k));
	run(env.c, build, n, o, sizeof(o));
	printf("%s\n  kernel: %s\n  nvring: %s\n", name, k, o);
	assert_string_equal(o, k);
	/* and what the guest's 6.1 gives, read from its source */
	assert_string_equal(o, want);
}

/* ---- FSYNC: sqe->off is a loff_t, negative is -EINVAL ---- */

static void b_fsync_neg_off(struct tu_ring *r, int fd)
{
	put(r, IORING_OP_FSYNC, 1, 0)->fd = fd;
	struct io_uring_sqe *s = put(r, IORING_OP_FSYNC, 2, 0);
	s->fd = fd;
	s->off = (uint64_t)-512;
}

static void test_fsync_negative_offset_is_einval(void **state)
{
	(void)state;
	compare("FSYNC off -512", b_fsync_neg_off, 2, "sub 2: 1=0 2=-22");
}

/* ---- TIMEOUT / LINK_TIMEOUT ---- */

static void b_tmo_addr3(struct tu_ring *r, int fd)
{
	tmo(r, IORING_OP_TIMEOUT, 1, &t5ms, 0)->addr3 = 1;
}
static void b_tmo_pad2(struct tu_ring *r, int fd)
{
	tmo(r, IORING_OP_TIMEOUT, 1, &t5ms, 0)->__pad2[0] = 1;
}

static void test_timeout_addr3_and_pad2_are_einval(void **state)
{
	(void)state;
	compare("TIMEOUT addr3", b_tmo_addr3, 1, "sub 1: 1=-22");
	compare("TIMEOUT __pad2", b_tmo_pad2, 1, "sub 1: 1=-22");
}

static struct __kernel_timespec tneg_s = { -1, 0 }, tneg_ns = { 0, -1 },
			       tbig_ns = { 0, 1500000000 };

static void b_tmo_neg_s(struct tu_ring *r, int fd) { tmo(r, IORING_OP_TIMEOUT, 1, &tneg_s, 0); }
static void b_tmo_neg_ns(struct tu_ring *r, int fd) { tmo(r, IORING_OP_TIMEOUT, 1, &tneg_ns, 0); }
static void b_tmo_bad_ptr(struct tu_ring *r, int fd)
{
	tmo(r, IORING_OP_TIMEOUT, 1, (void *)8, 0);
}

static void test_timeout_negative_timespec_is_einval(void **state)
{
	(void)state;
	compare("TIMEOUT {-1, 0}", b_tmo_neg_s, 1, "sub 1: 1=-22");
	compare("TIMEOUT {0, -1}", b_tmo_neg_ns, 1, "sub 1: 1=-22");
	compare("TIMEOUT at address 8", b_tmo_bad_ptr, 1, "sub 1: 1=-14");
}

/* tv_nsec of a second and more is no error: a 1.5 s timer, here ended
 * at once by its completion count */
static void b_tmo_big_ns(struct tu_ring *r, int fd)
{
	tmo(r, IORING_OP_TIMEOUT, 1, &tbig_ns, 0)->off = 1;
	put(r, IORING_OP_NOP, 2, 0);
}

static void test_timeout_nsec_of_a_second_is_accepted(void **state)
{
	(void)state;
	compare("TIMEOUT {0, 1.5e9} count 1 + NOP", b_tmo_big_ns, 2, "sub 2: 1=0 2=0");
}

static void b_lt_after_lt(struct tu_ring *r, int fd)
{
	put(r, IORING_OP_NOP, 1, IOSQE_IO_LINK);
	tmo(r, IORING_OP_LINK_TIMEOUT, 2, &t2s, IOSQE_IO_LINK);
	tmo(r, IORING_OP_LINK_TIMEOUT, 3, &t2s, 0);
}

static void test_link_timeout_after_link_timeout_is_einval(void **state)
{
	(void)state;
	compare("NOP -> LINK_TIMEOUT -> LINK_TIMEOUT", b_lt_after_lt, 3,
		"sub 3: 1=-125 2=-125 3=-22");
}

/* the kernel reads sqe->off as u32 for the "count on a link timeout"
 * check: bits above 31 do not count */
static void b_lt_off_high(struct tu_ring *r, int fd)
{
	put(r, IORING_OP_NOP, 1, IOSQE_IO_LINK);
	tmo(r, IORING_OP_LINK_TIMEOUT, 2, &t2s, 0)->off = 1ull << 32;
}

static void test_link_timeout_count_is_32_bits(void **state)
{
	(void)state;
	compare("NOP -> LINK_TIMEOUT off 2^32", b_lt_off_high, 2, "sub 2: 1=0 2=-125");
}

/* ---- TIMEOUT_REMOVE ---- */

static struct io_uring_sqe *rm(struct tu_ring *r, uint64_t ud, uint64_t target, uint32_t tflags,
			       uint8_t flags)
{
	struct io_uring_sqe *s = put(r, IORING_OP_TIMEOUT_REMOVE, ud, flags);
	s->addr = target;
	s->timeout_flags = tflags;
	return s;
}

static void b_rm_fixed(struct tu_ring *r, int fd) { rm(r, 1, 9, 0, IOSQE_FIXED_FILE); }
static void b_rm_addr3(struct tu_ring *r, int fd) { rm(r, 1, 9, 0, 0)->addr3 = 1; }
static void b_rm_clock(struct tu_ring *r, int fd)
{
	rm(r, 1, 9, IORING_TIMEOUT_UPDATE | IORING_TIMEOUT_REALTIME, 0)->addr2 = (uintptr_t)&t5ms;
}
static void b_rm_bad_ts(struct tu_ring *r, int fd)
{
	put(r, IORING_OP_NOP, 1, 0);
	rm(r, 2, 9, IORING_TIMEOUT_UPDATE, 0)->addr2 = 8;
	put(r, IORING_OP_NOP, 3, 0);   /* not submitted: the refusal is at prep */
}
static void b_rm_neg_ts(struct tu_ring *r, int fd)
{
	rm(r, 1, 9, IORING_TIMEOUT_UPDATE, 0)->addr2 = (uintptr_t)&tneg_ns;
}

static void test_timeout_remove_fields_are_checked_at_prep(void **state)
{
	(void)state;
	compare("TIMEOUT_REMOVE with FIXED_FILE", b_rm_fixed, 1, "sub 1: 1=-22");
	compare("TIMEOUT_REMOVE addr3", b_rm_addr3, 1, "sub 1: 1=-22");
	compare("TIMEOUT_REMOVE update with a clock", b_rm_clock, 1, "sub 1: 1=-22");
	compare("TIMEOUT_REMOVE update, timespec at 8", b_rm_bad_ts, 2, "sub 2: 1=0 2=-14");
	compare("TIMEOUT_REMOVE update {0, -1}", b_rm_neg_ts, 1, "sub 1: 1=-22");
}

/* ---- ASYNC_CANCEL ---- */

static struct io_uring_sqe *cancel(struct tu_ring *r, uint64_t ud, uint64_t target,
				   uint32_t cflags)
{
	struct io_uring_sqe *s = put(r, IORING_OP_ASYNC_CANCEL, ud, 0);
	s->addr = target;
	s->cancel_flags = cflags;
	return s;
}

static void b_cancel_len(struct tu_ring *r, int fd) { cancel(r, 1, 99, 0)->len = 5; }
static void b_cancel_op(struct tu_ring *r, int fd)
{
	tmo(r, IORING_OP_TIMEOUT, 1, &t2s, 0);
	tmo(r, IORING_OP_TIMEOUT, 2, &t2s, 0);
	cancel(r, 3, 0, IORING_ASYNC_CANCEL_OP | IORING_ASYNC_CANCEL_ALL)->len = IORING_OP_TIMEOUT;
	cancel(r, 4, 0, IORING_ASYNC_CANCEL_OP)->len = IORING_OP_NOP;
}
static void b_cancel_op_ud(struct tu_ring *r, int fd)
{
	tmo(r, IORING_OP_TIMEOUT, 1, &t5ms, 0);
	tmo(r, IORING_OP_TIMEOUT, 2, &t2s, 0);
	cancel(r, 3, 2, IORING_ASYNC_CANCEL_OP | IORING_ASYNC_CANCEL_USERDATA)->len =
		IORING_OP_TIMEOUT;
}
static void b_cancel_op_any(struct tu_ring *r, int fd)
{
	cancel(r, 1, 0, IORING_ASYNC_CANCEL_OP | IORING_ASYNC_CANCEL_ANY);
}

static void test_async_cancel_len_and_op_flags(void **state)
{
	(void)state;
	compare("ASYNC_CANCEL with len 5", b_cancel_len, 1, "sub 1: 1=-2");
	compare("ASYNC_CANCEL OP|ALL TIMEOUT, OP NOP", b_cancel_op, 4,
		"sub 4: 1=-125 2=-125 3=2 4=-2");
	compare("ASYNC_CANCEL OP|USERDATA", b_cancel_op_ud, 3, "sub 3: 1=-62 2=-125 3=0");
	compare("ASYNC_CANCEL OP|ANY", b_cancel_op_any, 1, "sub 1: 1=-22");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fsync_negative_offset_is_einval),
		cmocka_unit_test(test_timeout_addr3_and_pad2_are_einval),
		cmocka_unit_test(test_timeout_negative_timespec_is_einval),
		cmocka_unit_test(test_timeout_nsec_of_a_second_is_accepted),
		cmocka_unit_test(test_link_timeout_after_link_timeout_is_einval),
		cmocka_unit_test(test_link_timeout_count_is_32_bits),
		cmocka_unit_test(test_timeout_remove_fields_are_checked_at_prep),
		cmocka_unit_test(test_async_cancel_len_and_op_flags),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
