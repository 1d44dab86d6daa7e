/* SPDX-License-Identifier: MIT */
/*
 * Interrupt-driven waiting over the software model's MSI-X emulation:
 * I/O completion queues created with IEN and a vector of their own, the
 * vector's eventfd signalled when a CQE is posted, nvr_qpair_wait() and
 * the ring's sleeping wait waking on it, the fallback to pure polling
 * without (enough) vectors, and a reset that keeps the vectors.
 *
 * No timing is asserted: a missing interrupt shows as a poll() that never
 * sees the eventfd within a generous bound (a failure), not as a slow run.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "driver/ctrlr.h"
#include "nvring/nvring.h"
#include "nvring/uring.h"
#include "tests/model/nvme_model.h"
#include "tests/unit/test_uring_util.h"

#define BOUND_MS 20000   /* "never": a loaded host still gets there well before */

struct cnt {
	int n, res;
};

static void on_cpl(void *arg, const struct nvr_cpl *cpl)
{
	struct cnt *c = arg;
	if (cpl->res && !c->res)
		c->res = cpl->res;
	c->n++;
}

static void attach_cfg(struct tu_env *e, const struct nvme_model_cfg *cfg,
		       const struct nvr_ctrlr_opts *opts)
{
	struct nvr_pci_dev *dev;
	assert_int_equal(nvme_model_create(cfg, &e->m, &dev), 0);
	assert_int_equal(nvr_ctrlr_attach_dev(dev, opts, &e->c), 0);
}

/* Seed namespace 1 block @lba (512 bytes) with a pattern of @seed. */
static void seed(struct tu_env *e, uint64_t lba, uint8_t seed_byte)
{
	uint8_t *ns = nvme_model_ns_data(e->m, 1);
	for (int i = 0; i < 512; i++)
		ns[lba * 512 + (uint64_t)i] = (uint8_t)(seed_byte + i * 7);
}

static void check_block(const uint8_t *buf, uint8_t seed_byte)
{
	for (int i = 0; i < 512; i++)
		assert_int_equal(buf[i], (uint8_t)(seed_byte + i * 7));
}

/* Sleep on the fd alone until it signals; 1 if it did within the bound. */
static int fd_fires(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, BOUND_MS);
}

/* One 512-byte read of @lba, completed by polling; the data checked. */
static void read_polled(struct nvr_ctrlr *c, struct nvr_qpair *qp, struct tu_env *e,
			uint64_t lba, uint8_t seed_byte)
{
	void *buf;
	struct cnt done = { 0 };
	seed(e, lba, seed_byte);
	assert_int_equal(nvr_dma_alloc(c, 4096, &buf), 0);
	assert_int_equal(nvr_read(qp, 1, buf, lba, 1, on_cpl, &done), 0);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		assert_true(nvr_qpair_poll(qp, 0) >= 0);
		clock_gettime(CLOCK_MONOTONIC, &t1);
	} while (!done.n && t1.tv_sec - t0.tv_sec < BOUND_MS / 1000);
	assert_int_equal(done.n, 1);
	assert_int_equal(done.res, 0);
	check_block(buf, seed_byte);
	nvr_dma_free(c, buf);
}

/* A queue pair gets its own vector; a completion posted to its CQ
 * signals that vector's eventfd before anyone polls. */
static void test_irq_completion_signals_vector_eventfd(void **state)
{
	(void)state;
	struct tu_env e;
	struct nvr_qpair *qp;
	void *buf;
	struct cnt done = { 0 };

	attach_cfg(&e, NULL, NULL);
	assert_int_equal(nvme_model_get_stats(e.m).irq_vectors, e.c->info.max_io_qpairs + 1);
	assert_int_equal(nvr_qpair_alloc_flags(e.c, 16, NVR_QPAIR_IRQ, &qp), 0);
	int fd = nvr_qpair_irq_fd(qp);
	assert_true(fd >= 0);
	seed(&e, 3, 0x21);
	assert_int_equal(nvr_dma_alloc(e.c, 4096, &buf), 0);
	int tmo = -1;
	assert_int_equal(nvr_qpair_irq_arm(qp, &tmo), 0);   /* nothing there: may sleep */
	assert_true(tmo >= 0);                               /* but not for ever: the checks */
	assert_int_equal(nvr_read(qp, 1, buf, 3, 1, on_cpl, &done), 0);
	tmo = -1;
	assert_int_equal(nvr_qpair_irq_arm(qp, &tmo), 1);   /* unrung command: poll first */
	nvr_qpair_kick(qp);
	assert_int_equal(fd_fires(fd), 1);                   /* the interrupt, nobody polling */
	assert_int_equal(done.n, 0);                         /* reaped only by the poll */
	assert_int_equal(nvr_qpair_wait(qp, 0), 1);          /* a CQE is there: at once */
	assert_int_equal(nvr_qpair_poll(qp, 0), 1);
	assert_int_equal(done.n, 1);
	assert_int_equal(done.res, 0);
	check_block(buf, 0x21);
	assert_true(nvme_model_get_stats(e.m).irqs >= 1);
	/* reaped, the count cleared by the arm: nothing wakes the next wait */
	assert_int_equal(nvr_qpair_wait(qp, 10), 0);
	nvr_dma_free(e.c, buf);
	assert_int_equal(nvr_qpair_free(qp), 0);
	tu_detach(&e);
}

/* nvr_qpair_wait() sleeps until a late completion's interrupt (the model
 * posts it 30 ms after the fetch) and the poll then reaps it. */
static void test_irq_wait_wakes_for_late_completion(void **state)
{
	(void)state;
	struct tu_env e;
	struct nvr_qpair *qp;
	void *buf;
	struct cnt done = { 0 };

	attach_cfg(&e, NULL, NULL);
	assert_int_equal(nvr_qpair_alloc_flags(e.c, 16, NVR_QPAIR_IRQ, &qp), 0);
	nvme_model_delay_cpl(e.m, 30000);
	seed(&e, 9, 0x5a);
	assert_int_equal(nvr_dma_alloc(e.c, 4096, &buf), 0);
	assert_int_equal(nvr_read(qp, 1, buf, 9, 1, on_cpl, &done), 0);
	nvr_qpair_kick(qp);
	int woken = 0;
	for (int i = 0; i < BOUND_MS / 100 && !done.n; i++) {
		int rc = nvr_qpair_wait(qp, BOUND_MS);
		assert_true(rc == 0 || rc == 1);
		woken += rc;
		assert_true(nvr_qpair_poll(qp, 0) >= 0);
	}
	assert_int_equal(done.n, 1);
	assert_int_equal(done.res, 0);
	assert_true(woken >= 1);
	check_block(buf, 0x5a);
	nvme_model_delay_cpl(e.m, 0);
	nvr_dma_free(e.c, buf);
	assert_int_equal(nvr_qpair_free(qp), 0);
	tu_detach(&e);
}

/* nvr_qpair_alloc() (no NVR_QPAIR_IRQ): no interrupts, even with vectors
 * free; completions signal nothing. */
static void test_irq_plain_alloc_raises_no_interrupts(void **state)
{
	(void)state;
	struct tu_env e;
	struct nvr_qpair *qp;

	attach_cfg(&e, NULL, NULL);
	assert_int_equal(nvr_qpair_alloc(e.c, 16, &qp), 0);
	assert_int_equal(nvr_qpair_irq_fd(qp), -ENOTSUP);
	read_polled(e.c, qp, &e, 12, 0x24);
	assert_int_equal(nvme_model_get_stats(e.m).irqs, 0);
	assert_int_equal(nvr_qpair_free(qp), 0);
	assert_int_equal(nvr_qpair_alloc_flags(e.c, 16, 0x80, &qp), -EINVAL);
	tu_detach(&e);
}

/* No MSI-X at all: every queue pair is polled, and works. */
static void test_irq_fallback_without_msix(void **state)
{
	(void)state;
	struct tu_env e;
	struct nvr_qpair *qp;
	struct nvme_model_cfg cfg = { .msix = NVME_MODEL_MSIX_NONE };

	attach_cfg(&e, &cfg, NULL);
	assert_int_equal(nvme_model_get_stats(e.m).irq_vectors, 0);
	assert_int_equal(nvr_qpair_alloc_flags(e.c, 16, NVR_QPAIR_IRQ, &qp), 0);
	assert_int_equal(nvr_qpair_irq_fd(qp), -ENOTSUP);
	assert_int_equal(nvr_qpair_wait(qp, 10), -ENOTSUP);
	int tmo = -1;
	assert_int_equal(nvr_qpair_irq_arm(qp, &tmo), -ENOTSUP);
	read_polled(e.c, qp, &e, 4, 0x33);
	assert_int_equal(nvme_model_get_stats(e.m).irqs, 0);
	assert_int_equal(nvr_qpair_free(qp), 0);
	tu_detach(&e);
}

/* Three vectors (admin + 2): queue pairs 1 and 2 get one each, the third
 * is polled; all three move data. */
static void test_irq_too_few_vectors_polls_the_rest(void **state)
{
	(void)state;
	struct tu_env e;
	struct nvr_qpair *qp[3];
	struct nvme_model_cfg cfg = { .msix = 3 };

	attach_cfg(&e, &cfg, NULL);
	assert_int_equal(nvme_model_get_stats(e.m).irq_vectors, 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(nvr_qpair_alloc_flags(e.c, 16, NVR_QPAIR_IRQ, &qp[i]), 0);
	int with = 0;
	for (int i = 0; i < 3; i++) {
		int fd = nvr_qpair_irq_fd(qp[i]);
		assert_true(fd >= 0 || fd == -ENOTSUP);
		with += fd >= 0;
		read_polled(e.c, qp[i], &e, 10 + (uint64_t)i, (uint8_t)(0x40 + i));
	}
	assert_int_equal(with, 2);
	for (int i = 0; i < 3; i++)
		assert_int_equal(nvr_qpair_free(qp[i]), 0);
	tu_detach(&e);
}

/* NVR_ATTACH_POLL, and NVRING_POLL=1: no vector is enabled at all. */
static void test_irq_poll_forced_by_flag_and_env(void **state)
{
	(void)state;
	struct tu_env e;
	struct nvr_qpair *qp;
	struct nvr_ctrlr_opts opts = { .flags = NVR_ATTACH_POLL };

	attach_cfg(&e, NULL, &opts);
	assert_int_equal(nvme_model_get_stats(e.m).irq_vectors, 0);
	assert_int_equal(nvr_qpair_alloc_flags(e.c, 16, NVR_QPAIR_IRQ, &qp), 0);
	assert_int_equal(nvr_qpair_irq_fd(qp), -ENOTSUP);
	read_polled(e.c, qp, &e, 5, 0x11);
	assert_int_equal(nvr_qpair_free(qp), 0);
	tu_detach(&e);

	setenv("NVRING_POLL", "1", 1);
	attach_cfg(&e, NULL, NULL);
	unsetenv("NVRING_POLL");
	assert_int_equal(nvme_model_get_stats(e.m).irq_vectors, 0);
	assert_int_equal(nvr_qpair_alloc_flags(e.c, 16, NVR_QPAIR_IRQ, &qp), 0);
	assert_int_equal(nvr_qpair_irq_fd(qp), -ENOTSUP);
	assert_int_equal(nvr_qpair_free(qp), 0);
	tu_detach(&e);
}

/* A controller reset drops every queue; the queue pair recreates its CQ
 * with the same vector, so completions after the reset interrupt too. */
static void test_irq_reset_keeps_vector(void **state)
{
	(void)state;
	struct tu_env e;
	struct nvr_qpair *qp;
	void *buf;
	struct cnt done = { 0 };

	attach_cfg(&e, NULL, NULL);
	assert_int_equal(nvr_qpair_alloc_flags(e.c, 16, NVR_QPAIR_IRQ, &qp), 0);
	int fd = nvr_qpair_irq_fd(qp);
	assert_true(fd >= 0);
	read_polled(e.c, qp, &e, 6, 0x61);
	assert_int_equal(nvr_ctrlr_reset(e.c), 0);
	read_polled(e.c, qp, &e, 7, 0x62);   /* recovers at its first poll */
	struct nvr_qpair_stats st;
	assert_int_equal(nvr_qpair_get_stats(qp, &st), 0);
	assert_int_equal(st.resets, 1);
	assert_int_equal(nvr_qpair_irq_fd(qp), fd);

	uint64_t irqs = nvme_model_get_stats(e.m).irqs;
	int tmo = -1;
	assert_int_equal(nvr_qpair_irq_arm(qp, &tmo), 0);   /* count cleared */
	seed(&e, 8, 0x63);
	assert_int_equal(nvr_dma_alloc(e.c, 4096, &buf), 0);
	assert_int_equal(nvr_read(qp, 1, buf, 8, 1, on_cpl, &done), 0);
	nvr_qpair_kick(qp);
	assert_int_equal(fd_fires(fd), 1);
	assert_true(nvme_model_get_stats(e.m).irqs > irqs);
	assert_int_equal(nvr_qpair_poll(qp, 0), 1);
	assert_int_equal(done.n, 1);
	check_block(buf, 0x63);
	nvr_dma_free(e.c, buf);
	assert_int_equal(nvr_qpair_free(qp), 0);
	tu_detach(&e);
}

/* ---- the ring's wait ---- */

static void prep_read(struct tu_ring *r, uint64_t ud, int fd, void *buf, uint32_t len,
		      uint64_t off)
{
	struct io_uring_sqe *s = tu_sqe(r);
	assert_non_null(s);
	s->opcode = IORING_OP_READ;
	s->fd = fd;
	s->addr = (uintptr_t)buf;
	s->len = len;
	s->off = off;
	s->user_data = ud;
}

/* GETEVENTS with a read the model completes 30 ms late: the waiter
 * sleeps on the interrupt and returns with the right data. */
static void test_irq_ring_wait_delivers_late_read(void **state)
{
	(void)state;
	struct tu_env e;
	struct tu_ring r;
	struct io_uring_cqe c;
	uint8_t *buf = aligned_alloc(4096, 4096);

	attach_cfg(&e, NULL, NULL);
	int ns = nvr_ns_open(e.c, 1);
	assert_true(ns >= 0);
	assert_true(tu_ring_init(&r, e.c, 8, NULL) >= 0);
	seed(&e, 2, 0x77);
	nvme_model_delay_cpl(e.m, 30000);
	uint64_t irqs = nvme_model_get_stats(e.m).irqs;
	prep_read(&r, 42, ns, buf, 512, 1024);
	tu_flush(&r);
	assert_int_equal(tu_enter(&r, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0), 1);
	assert_true(tu_cqe(&r, &c));
	assert_int_equal(c.user_data, 42);
	assert_int_equal(c.res, 512);
	check_block(buf, 0x77);
	assert_true(nvme_model_get_stats(e.m).irqs > irqs);
	nvme_model_delay_cpl(e.m, 0);
	tu_ring_exit(&r);
	nvr_ns_close(ns);
	free(buf);
	tu_detach(&e);
}

/* An IOPOLL ring polls, as the kernel's: its queue pair raises no
 * interrupts; a plain ring's does. */
static void test_irq_iopoll_ring_has_no_interrupts(void **state)
{
	(void)state;
	struct tu_env e;
	struct tu_ring r;
	struct io_uring_cqe c;
	uint8_t *buf = aligned_alloc(4096, 4096);

	attach_cfg(&e, NULL, NULL);
	int ns = nvr_ns_open(e.c, 1);
	struct io_uring_params p = { .flags = IORING_SETUP_IOPOLL };
	assert_true(tu_ring_init(&r, e.c, 8, &p) >= 0);
	seed(&e, 14, 0x3c);
	prep_read(&r, 5, ns, buf, 512, 14 * 512);
	tu_flush(&r);
	assert_int_equal(tu_enter(&r, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0), 1);
	for (int i = 0; i < 1000000 && !tu_cqe(&r, &c); i++)
		tu_enter(&r, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0);
	assert_int_equal(c.user_data, 5);
	assert_int_equal(c.res, 512);
	check_block(buf, 0x3c);
	assert_int_equal(nvme_model_get_stats(e.m).irqs, 0);
	tu_ring_exit(&r);

	assert_true(tu_ring_init(&r, e.c, 8, NULL) >= 0);   /* plain: interrupts */
	prep_read(&r, 6, ns, buf, 512, 14 * 512);
	tu_flush(&r);
	assert_int_equal(tu_enter(&r, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0), 1);
	assert_true(tu_cqe(&r, &c));
	assert_int_equal(c.res, 512);
	assert_true(nvme_model_get_stats(e.m).irqs >= 1);
	tu_ring_exit(&r);
	nvr_ns_close(ns);
	free(buf);
	tu_detach(&e);
}

/* An EXT_ARG timeout on a ring with nothing in it: -ETIME, no CQE. */
static void test_irq_ring_idle_wait_times_out(void **state)
{
	(void)state;
	struct tu_env e;
	struct tu_ring r;
	struct io_uring_cqe c;

	attach_cfg(&e, NULL, NULL);
	assert_true(tu_ring_init(&r, e.c, 8, NULL) >= 0);
	struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 30 * 1000000 };
	struct io_uring_getevents_arg arg = { .ts = (uintptr_t)&ts };
	assert_int_equal(tu_enter(&r, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
				  &arg, sizeof(arg)), -ETIME);
	assert_false(tu_cqe(&r, &c));
	tu_ring_exit(&r);
	tu_detach(&e);
}

/* A ring TIMEOUT fires while the waiter sleeps (nothing in the device). */
static void test_irq_ring_timer_fires_during_sleep(void **state)
{
	(void)state;
	struct tu_env e;
	struct tu_ring r;
	struct io_uring_cqe c;

	attach_cfg(&e, NULL, NULL);
	assert_true(tu_ring_init(&r, e.c, 8, NULL) >= 0);
	struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 40 * 1000000 };
	struct io_uring_sqe *s = tu_sqe(&r);
	s->opcode = IORING_OP_TIMEOUT;
	s->addr = (uintptr_t)&ts;
	s->len = 1;
	s->user_data = 7;
	tu_flush(&r);
	assert_int_equal(tu_enter(&r, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0), 1);
	assert_true(tu_cqe(&r, &c));
	assert_int_equal(c.user_data, 7);
	assert_int_equal(c.res, -ETIME);
	tu_ring_exit(&r);
	tu_detach(&e);
}

struct waiter {
	struct tu_ring *r;
	int ret;
	struct io_uring_cqe c;
	bool got;
};

static void *wait_thread(void *arg)
{
	struct waiter *w = arg;
	/* a minute: only the submission below can end it in time */
	struct __kernel_timespec ts = { .tv_sec = 60 };
	struct io_uring_getevents_arg a = { .ts = (uintptr_t)&ts };
	w->ret = tu_enter(w->r, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &a, sizeof(a));
	w->got = tu_cqe(w->r, &w->c);
	return NULL;
}

/* A waiter asleep on an empty ring is woken by another thread's
 * submission (a NOP completes at once, a read through the device). */
static void test_irq_ring_sleeper_woken_by_other_thread(void **state)
{
	(void)state;
	struct tu_env e;
	struct tu_ring r;
	uint8_t *buf = aligned_alloc(4096, 4096);

	attach_cfg(&e, NULL, NULL);
	int ns = nvr_ns_open(e.c, 1);
	assert_true(tu_ring_init(&r, e.c, 8, NULL) >= 0);
	seed(&e, 1, 0x19);
	for (int round = 0; round < 2; round++) {
		struct waiter w = { .r = &r };
		pthread_t t;
		assert_int_equal(pthread_create(&t, NULL, wait_thread, &w), 0);
		struct timespec pause = { 0, 20 * 1000000 };   /* let it fall asleep */
		nanosleep(&pause, NULL);
		if (round == 0) {
			struct io_uring_sqe *s = tu_sqe(&r);
			s->opcode = IORING_OP_NOP;
			s->user_data = 100;
		} else {
			prep_read(&r, 101, ns, buf, 512, 512);
		}
		tu_flush(&r);
		assert_int_equal(tu_enter(&r, 1, 0, 0, NULL, 0), 1);
		pthread_join(t, NULL);
		assert_int_equal(w.ret, 0);
		assert_true(w.got);
		assert_int_equal(w.c.user_data, 100 + (uint64_t)round);
		assert_int_equal(w.c.res, round ? 512 : 0);
	}
	check_block(buf, 0x19);
	tu_ring_exit(&r);
	nvr_ns_close(ns);
	free(buf);
	tu_detach(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_irq_completion_signals_vector_eventfd),
		cmocka_unit_test(test_irq_wait_wakes_for_late_completion),
		cmocka_unit_test(test_irq_plain_alloc_raises_no_interrupts),
		cmocka_unit_test(test_irq_fallback_without_msix),
		cmocka_unit_test(test_irq_too_few_vectors_polls_the_rest),
		cmocka_unit_test(test_irq_poll_forced_by_flag_and_env),
		cmocka_unit_test(test_irq_reset_keeps_vector),
		cmocka_unit_test(test_irq_ring_wait_delivers_late_read),
		cmocka_unit_test(test_irq_iopoll_ring_has_no_interrupts),
		cmocka_unit_test(test_irq_ring_idle_wait_times_out),
		cmocka_unit_test(test_irq_ring_timer_fires_during_sleep),
		cmocka_unit_test(test_irq_ring_sleeper_woken_by_other_thread),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
