/* SPDX-License-Identifier: MIT */
/*
 * The ring's timers beside the host kernel's io_uring, same SQEs: each
 * scenario runs on both and the CQEs (user_data, res), sorted by user_data,
 * must be equal. TIMEOUT relative/absolute/counted/ETIME_SUCCESS,
 * TIMEOUT_REMOVE and UPDATE, LINK_TIMEOUT firing and disarmed, linked
 * chains failed by a timeout, ASYNC_CANCEL (found, not found, ALL), and
 * the argument checks.
 */
#include <stdlib.h>
#include <time.h>

#include "tests/unit/test_uring_util.h"

static struct tu_env env;

static int setup(void **state)
{
	(void)state;
	struct nvme_model_cfg cfg = { .ns_blocks = 2048 };
	tu_attach(&env, &cfg);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tu_detach(&env);
	return 0;
}

static struct __kernel_timespec ts_ms(long ms)
{
	return (struct __kernel_timespec){ .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };
}

static struct io_uring_sqe *put(struct tu_ring *r, uint8_t op, uint64_t ud, uint8_t flags)
{
	struct io_uring_sqe *s = tu_sqe(r);
	s->opcode = op;
	s->user_data = ud;
	s->flags = flags;
	return s;
}

static struct io_uring_sqe *tmo(struct tu_ring *r, uint64_t ud, struct __kernel_timespec *ts,
				uint64_t count, uint32_t tflags, uint8_t flags)
{
	struct io_uring_sqe *s = put(r, IORING_OP_TIMEOUT, ud, flags);
	s->addr = (uintptr_t)ts;
	s->len = 1;
	s->off = count;
	s->timeout_flags = tflags;
	return s;
}

struct res { uint64_t ud; int res; };
static int cmp(const void *a, const void *b)
{
	const struct res *x = a, *y = b;
	return x->ud < y->ud ? -1 : x->ud > y->ud;
}

/* Submit what @build put in, wait for @n CQEs (2 s at most), print them. */
static int run(struct nvr_ctrlr *c, void (*build)(struct tu_ring *), unsigned n, int *sub,
	       char *out, size_t len)
{
	struct tu_ring r;
	assert_true(tu_ring_init(&r, c, 16, NULL) >= 0);
	build(&r);
	tu_flush(&r);
	*sub = tu_enter(&r, r.sqe_tail - *r.sq_head, 0, 0, NULL, 0);
	struct res got[32];
	unsigned k = 0;
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (k < n) {
		struct __kernel_timespec w = ts_ms(10);
		struct io_uring_getevents_arg ea = { .ts = (uintptr_t)&w };
		tu_enter(&r, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &ea, sizeof(ea));
		struct io_uring_cqe cqe;
		while (k < 32 && tu_cqe(&r, &cqe))
			got[k++] = (struct res){ cqe.user_data, cqe.res };
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > 2)
			break;
	}
	qsort(got, k, sizeof(got[0]), cmp);
	size_t o = (size_t)snprintf(out, len, "sub %d:", *sub);
	for (unsigned i = 0; i < k && o < len; i++)
		o += (size_t)snprintf(out + o, len - o, " %llu=%d", (unsigned long long)got[i].ud,
				      got[i].res);
	tu_ring_exit(&r);
	return (int)k;
}

static void compare(const char *name, void (*build)(struct tu_ring *), unsigned n)
{
	char k[512], o[512];
	int ks, os;
	run(NULL, build, n, &ks, k, sizeof(k));
	run(env.c, build, n, &os, o, sizeof(o));
	printf("%s\n  kernel: %s\n  nvring: %s\n", name, k, o);
	assert_string_equal(o, k);
}

static struct __kernel_timespec t5, t20, t50, t2s, tabs, tbad = { .tv_sec = -1 };

static void b_count(struct tu_ring *r)
{
	tmo(r, 1, &t2s, 2, 0, 0);
	put(r, IORING_OP_NOP, 2, 0);
	put(r, IORING_OP_NOP, 3, 0);
}
static void b_timer(struct tu_ring *r) { tmo(r, 1, &t5, 0, 0, 0); }
static void b_etime_ok(struct tu_ring *r)
{
	tmo(r, 1, &t5, 0, IORING_TIMEOUT_ETIME_SUCCESS, IOSQE_IO_LINK);
	put(r, IORING_OP_NOP, 2, 0);
}
static void b_fail_link(struct tu_ring *r)
{
	tmo(r, 1, &t5, 0, 0, IOSQE_IO_LINK);
	put(r, IORING_OP_NOP, 2, 0);
}
static void b_abs(struct tu_ring *r)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	tabs = (struct __kernel_timespec){ now.tv_sec, now.tv_nsec + 5000000 };
	if (tabs.tv_nsec >= 1000000000) {
		tabs.tv_sec++;
		tabs.tv_nsec -= 1000000000;
	}
	tmo(r, 1, &tabs, 0, IORING_TIMEOUT_ABS, 0);
}
static void b_remove(struct tu_ring *r)
{
	tmo(r, 1, &t2s, 0, 0, 0);
	struct io_uring_sqe *s = put(r, IORING_OP_TIMEOUT_REMOVE, 2, 0);
	s->addr = 1;
	s = put(r, IORING_OP_TIMEOUT_REMOVE, 3, 0);
	s->addr = 99;
}
static void b_update(struct tu_ring *r)
{
	tmo(r, 1, &t2s, 0, 0, 0);
	struct io_uring_sqe *s = put(r, IORING_OP_TIMEOUT_REMOVE, 2, 0);
	s->addr = 1;
	s->addr2 = (uintptr_t)&t5;
	s->timeout_flags = IORING_TIMEOUT_UPDATE;
}
static void b_link_fires(struct tu_ring *r)
{
	tmo(r, 1, &t2s, 0, 0, IOSQE_IO_LINK);
	struct io_uring_sqe *s = put(r, IORING_OP_LINK_TIMEOUT, 2, 0);
	s->addr = (uintptr_t)&t20;
	s->len = 1;
}
static void b_link_disarmed(struct tu_ring *r)
{
	put(r, IORING_OP_NOP, 1, IOSQE_IO_LINK);
	struct io_uring_sqe *s = put(r, IORING_OP_LINK_TIMEOUT, 2, IOSQE_IO_LINK);
	s->addr = (uintptr_t)&t2s;
	s->len = 1;
	put(r, IORING_OP_NOP, 3, 0);
}
static void b_link_timer_first(struct tu_ring *r)
{
	tmo(r, 1, &t5, 0, 0, IOSQE_IO_LINK);
	struct io_uring_sqe *s = put(r, IORING_OP_LINK_TIMEOUT, 2, IOSQE_IO_LINK);
	s->addr = (uintptr_t)&t50;
	s->len = 1;
	put(r, IORING_OP_NOP, 3, 0);
}
static void b_cancel(struct tu_ring *r)
{
	tmo(r, 1, &t2s, 0, 0, 0);
	tmo(r, 2, &t2s, 0, 0, 0);
	struct io_uring_sqe *s = put(r, IORING_OP_ASYNC_CANCEL, 3, 0);
	s->addr = 1;
	s = put(r, IORING_OP_ASYNC_CANCEL, 4, 0);
	s->addr = 77;
	s = put(r, IORING_OP_ASYNC_CANCEL, 5, 0);
	s->cancel_flags = IORING_ASYNC_CANCEL_ANY;
}
static void b_cancel_all(struct tu_ring *r)
{
	tmo(r, 7, &t2s, 0, 0, 0);
	tmo(r, 7, &t2s, 0, 0, 0);
	struct io_uring_sqe *s = put(r, IORING_OP_ASYNC_CANCEL, 3, 0);
	s->addr = 7;
	s->cancel_flags = IORING_ASYNC_CANCEL_ALL;
}
static void b_bad_args(struct tu_ring *r)
{
	struct io_uring_sqe *s = tmo(r, 1, &t5, 0, 0, 0);
	s->len = 2;
	tmo(r, 2, &tbad, 0, 0, 0);
	tmo(r, 3, (void *)8, 0, 0, 0);
	tmo(r, 4, &t5, 0, IORING_TIMEOUT_BOOTTIME | IORING_TIMEOUT_REALTIME, 0);
	tmo(r, 5, &t5, 0, 1u << 7, 0);
	s = put(r, IORING_OP_LINK_TIMEOUT, 6, 0);    /* nothing before it */
	s->addr = (uintptr_t)&t5;
	s->len = 1;
}

static void test_timeouts_as_the_kernel(void **state)
{
	(void)state;
	t5 = ts_ms(5);
	t20 = ts_ms(20);
	t50 = ts_ms(50);
	t2s = ts_ms(2000);
	compare("count 2 + 2 NOPs", b_count, 3);
	compare("timer 5 ms", b_timer, 1);
	compare("ETIME_SUCCESS keeps the link", b_etime_ok, 2);
	compare("a firing timeout fails its link", b_fail_link, 2);
	compare("absolute", b_abs, 1);
	compare("remove found / not found", b_remove, 3);
	compare("update to 5 ms", b_update, 2);
	compare("link timeout fires on a 2 s timeout", b_link_fires, 2);
	compare("link timeout disarmed by a NOP", b_link_disarmed, 3);
	compare("the guarded timeout fires first", b_link_timer_first, 3);
	compare("cancel found / not found / any", b_cancel, 5);
	compare("cancel all", b_cancel_all, 3);
	compare("bad arguments", b_bad_args, 1);
}

/* A zero timespec is a timer already due, relative or absolute (fuzz_sqe
 * found nvring's relative one never firing: now + 0 was taken for an
 * overflow). */
static struct __kernel_timespec tzero;
static void b_zero(struct tu_ring *r)
{
	tmo(r, 1, &tzero, 0, 0, 0);
	tmo(r, 2, &tzero, 0, IORING_TIMEOUT_ABS, 0);
	tmo(r, 3, &tzero, 1, 0, 0);
}

static void test_zero_timeout_fires_at_once(void **state)
{
	(void)state;
	compare("zero timeouts", b_zero, 3);
}

/* io_should_wake(): a waiter for more CQEs than will come wakes when a
 * timeout fires (liburing's pre-EXT_ARG timed wait relies on it). */
static void wake_side(struct nvr_ctrlr *c, int *ret, unsigned *ready)
{
	struct tu_ring r;
	assert_true(tu_ring_init(&r, c, 8, NULL) >= 0);
	tmo(&r, 1, &t5, 0, 0, 0);
	tu_flush(&r);
	*ret = tu_enter(&r, 1, 2, IORING_ENTER_GETEVENTS, NULL, 0);
	*ready = *r.cq_tail - *r.cq_head;
	tu_ring_exit(&r);
}

static void test_fired_timeout_ends_the_wait(void **state)
{
	(void)state;
	t5 = ts_ms(5);
	int kret, oret;
	unsigned kready, oready;
	wake_side(NULL, &kret, &kready);
	wake_side(env.c, &oret, &oready);
	assert_int_equal(oret, kret);
	assert_int_equal(oready, kready);
	assert_int_equal(oready, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timeouts_as_the_kernel),
		cmocka_unit_test(test_fired_timeout_ends_the_wait),
		cmocka_unit_test(test_zero_timeout_fires_at_once),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
