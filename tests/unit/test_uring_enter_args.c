/* SPDX-License-Identifier: MIT */
/*
 * io_uring_enter's wait arguments as the kernel reads them: an EXT_ARG
 * timeout too long to represent ({LONG_MAX, 0}) waits instead of timing out
 * at once; the sigmask (plain and in EXT_ARG) is the thread's mask while it
 * waits and the old one afterwards.
 */
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

#include "tests/unit/test_uring_util.h"

static struct tu_env env;
static struct tu_ring ring;
static int nsfd;
static uint8_t buf[4096] __attribute__((aligned(4096)));

static int setup(void **state)
{
	(void)state;
	struct nvme_model_cfg cfg = { .ns_blocks = 2048 };
	tu_attach(&env, &cfg);
	if (tu_ring_init(&ring, env.c, 8, NULL) < 0)
		return -1;
	nsfd = nvr_ns_open(env.c, 1);
	return nsfd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	nvr_ns_close(nsfd);
	tu_ring_exit(&ring);
	tu_detach(&env);
	return 0;
}

static void prep_read(void)
{
	struct io_uring_sqe *sqe = tu_sqe(&ring);
	sqe->opcode = IORING_OP_READ;
	sqe->fd = nsfd;
	sqe->addr = (uintptr_t)buf;
	sqe->len = 4096;
	sqe->user_data = 7;
	tu_flush(&ring);
}

static void test_huge_timeout_waits(void **state)
{
	(void)state;
	for (int i = 0; i < 20; i++) {
		prep_read();
		struct __kernel_timespec ts = { .tv_sec = LONG_MAX, .tv_nsec = 0 };
		struct io_uring_getevents_arg ea = { .ts = (uintptr_t)&ts };
		int ret = tu_enter(&ring, 1, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &ea,
				   sizeof(ea));
		assert_int_equal(ret, 1);
		struct io_uring_cqe c;
		assert_true(tu_cqe(&ring, &c));     /* waited for it, no -ETIME */
		assert_int_equal(c.res, 4096);
	}
	/* nothing in flight, a short timeout still times out */
	struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 1000000 };
	struct io_uring_getevents_arg ea = { .ts = (uintptr_t)&ts };
	assert_int_equal(tu_enter(&ring, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &ea,
				  sizeof(ea)), -ETIME);
}

static volatile sig_atomic_t ran;
static struct timespec t_start, t_ran;
static void on_usr1(int sig)
{
	(void)sig;
	ran++;
	clock_gettime(CLOCK_MONOTONIC, &t_ran);
}

static long ms_between(const struct timespec *a, const struct timespec *b)
{
	return (b->tv_sec - a->tv_sec) * 1000 + (b->tv_nsec - a->tv_nsec) / 1000000;
}

struct kicker { pthread_t target; };
static void *kick(void *arg)
{
	struct kicker *k = arg;
	struct timespec d = { 0, 20 * 1000000 };
	nanosleep(&d, NULL);
	pthread_kill(k->target, SIGUSR1);
	return NULL;
}

static void wait_with_mask(bool ext)
{
	ran = 0;
	sigset_t block;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	struct kicker k = { pthread_self() };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, kick, &k), 0);
	struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 100 * 1000000 };
	struct io_uring_getevents_arg ea = { .sigmask = (uintptr_t)&block, .sigmask_sz = 8,
					     .ts = (uintptr_t)&ts };
	clock_gettime(CLOCK_MONOTONIC, &t_start);
	int ret;
	if (ext)
		ret = tu_enter(&ring, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &ea,
			       sizeof(ea));
	else   /* min 0: returns at once, the mask must be back afterwards */
		ret = tu_enter(&ring, 0, 0, IORING_ENTER_GETEVENTS, &block, 8);
	pthread_join(t, NULL);
	if (ext)
		assert_int_equal(ret, -ETIME);
	else
		assert_int_equal(ret, 0);
	/* kicked at 20 ms into a 100 ms wait: blocked while waiting, run
	 * once the old mask is back at its end */
	if (ext) {
		assert_int_equal(ran, 1);
		assert_true(ms_between(&t_start, &t_ran) >= 95);
	}
	sigset_t now;
	pthread_sigmask(SIG_SETMASK, NULL, &now);
	assert_false(sigismember(&now, SIGUSR1));
}

static void test_sigmask_applies_while_waiting(void **state)
{
	(void)state;
	struct sigaction sa = { .sa_handler = on_usr1 };
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGUSR1, &sa, NULL), 0);
	wait_with_mask(true);
	/* plain sigset argument: accepted, mask restored afterwards */
	wait_with_mask(false);
	struct timespec d = { 0, 50 * 1000000 };
	nanosleep(&d, NULL);   /* the kick of the second round lands */
	signal(SIGUSR1, SIG_DFL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_huge_timeout_waits),
		cmocka_unit_test(test_sigmask_applies_while_waiting),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
