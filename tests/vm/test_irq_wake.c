/* SPDX-License-Identifier: MIT */
/*
 * VM test: interrupt-driven waiting on QEMU's controller behind VFIO (type1
 * in boots A and B, no-IOMMU in boot N). Each I/O queue pair has an MSI-X
 * vector routed to an eventfd; a completion fires it with nobody polling;
 * nvr_qpair_wait() sleeps until it; a ring's GETEVENTS that sleeps at once
 * (NVRING_SPIN_US=0, set before anything waits) gets its reads delivered
 * with the right data. A missing interrupt fails a poll() bounded at 10 s.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>

#include "tests/vm/vm_util.h"
#include "tests/vm/vm_io.h"
#include "tests/unit/test_uring_util.h"

#define ROUNDS 32

/* vm_io_open() with its queue pair swapped for one with NVR_QPAIR_IRQ. */
static struct vm_io *irq_io_open(void **state, struct vm_ctrlr *v, uint64_t salt)
{
	struct vm_io *io = vm_io_open(state, v, 0, 4096, salt);
	int rc;

	assert_int_equal(nvr_qpair_free(io->qp), 0);
	io->qp = NULL;
	rc = nvr_qpair_alloc_flags(v->ctrlr, 0, NVR_QPAIR_IRQ, &io->qp);
	if (rc < 0)
		fail_msg("nvr_qpair_alloc_flags(%s, IRQ): %s", v->bdf, strerror(-rc));
	return io;
}

/* The queue pair has a vector, and a read's completion signals it before
 * anyone polls: the eventfd is seen by poll() alone. */
static void irq_completion_fires_vector_eventfd(void **state)
{
	struct vm_io *io = irq_io_open(state, VM_CTRLR(0), 1);
	int fd = nvr_qpair_irq_fd(io->qp);

	if (fd < 0)
		fail_msg("%s: no interrupt for the queue pair (%s)", io->v->bdf, strerror(-fd));
	for (int i = 0; i < ROUNDS; i++) {
		struct vm_wait w = { 0 };
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int tmo = -1;

		vm_fill_random(&io->rng, io->wbuf, 4096);
		VM_OK(io->qp, NVR_IO_WRITE, io->v->nsid, io->wbuf, 64 + (uint64_t)i * 8,
		      4096 / io->v->ns.lba_size);
		assert_int_equal(nvr_qpair_irq_arm(io->qp, &tmo), 0);
		assert_int_equal(nvr_read(io->qp, io->v->nsid, io->rbuf, 64 + (uint64_t)i * 8,
					  4096 / io->v->ns.lba_size, vm_wait_cb, &w), 0);
		nvr_qpair_kick(io->qp);
		assert_int_equal(poll(&p, 1, 10000), 1);   /* the MSI-X interrupt */
		assert_false(w.done);                      /* reaped by the poll only */
		assert_int_equal(vm_poll_until(io->qp, &w), 0);
		assert_int_equal(w.cpl.res, 0);
		VM_SAME(io->rbuf, io->wbuf, 4096, "read after the interrupt");
	}
}

/* nvr_qpair_wait() until each read completes, then the poll reaps it. */
static void irq_qpair_wait_sleeps_until_completion(void **state)
{
	struct vm_io *io = irq_io_open(state, VM_CTRLR(0), 2);
	int woken = 0;

	for (int i = 0; i < ROUNDS; i++) {
		struct vm_wait w = { 0 };
		double deadline = vm_now() + VM_TIMEOUT_SEC;

		vm_fill_random(&io->rng, io->wbuf, 4096);
		VM_OK(io->qp, NVR_IO_WRITE, io->v->nsid, io->wbuf, 512 + (uint64_t)i * 8,
		      4096 / io->v->ns.lba_size);
		assert_int_equal(nvr_read(io->qp, io->v->nsid, io->rbuf, 512 + (uint64_t)i * 8,
					  4096 / io->v->ns.lba_size, vm_wait_cb, &w), 0);
		while (!w.done && vm_now() < deadline) {
			int rc = nvr_qpair_wait(io->qp, 10000);
			assert_true(rc == 0 || rc == 1);
			woken += rc;
			assert_true(nvr_qpair_poll(io->qp, 0) >= 0);
		}
		assert_true(w.done);
		assert_int_equal(w.cpl.res, 0);
		VM_SAME(io->rbuf, io->wbuf, 4096, "read after nvr_qpair_wait");
	}
	assert_true(woken >= 1);
}

/* io_uring_enter(GETEVENTS, 1) with a read outstanding, the wait sleeping
 * on the interrupt at once: the CQE and the data arrive after the sleep. */
static void irq_ring_read_delivered_after_sleep(void **state)
{
	struct vm_io *io = vm_io_open(state, VM_CTRLR(0), 0, 4096, 3);
	struct tu_ring r;
	uint8_t *buf = aligned_alloc(4096, 4096);
	int ns = nvr_ns_open(io->v->ctrlr, io->v->nsid);

	assert_non_null(buf);
	assert_true(ns >= 0);
	assert_true(tu_ring_init(&r, io->v->ctrlr, 8, NULL) >= 0);
	for (int i = 0; i < ROUNDS; i++) {
		uint64_t lba = 1024 + (uint64_t)i * 8;
		struct io_uring_cqe c;

		vm_fill_random(&io->rng, io->wbuf, 4096);
		VM_OK(io->qp, NVR_IO_WRITE, io->v->nsid, io->wbuf, lba, 4096 / io->v->ns.lba_size);
		memset(buf, 0xa5, 4096);
		struct io_uring_sqe *s = tu_sqe(&r);
		assert_non_null(s);
		s->opcode = IORING_OP_READ;
		s->fd = ns;
		s->addr = (uintptr_t)buf;
		s->len = 4096;
		s->off = lba * io->v->ns.lba_size;
		s->user_data = 1000 + (uint64_t)i;
		tu_flush(&r);
		assert_int_equal(tu_enter(&r, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0), 1);
		assert_true(tu_cqe(&r, &c));
		assert_int_equal(c.user_data, 1000 + (uint64_t)i);
		assert_int_equal(c.res, 4096);
		VM_SAME(buf, io->wbuf, 4096, "ring read after the sleep");
	}
	tu_ring_exit(&r);
	nvr_ns_close(ns);
	free(buf);
}

int main(void)
{
	/* every ring wait sleeps on the interrupt without spinning first */
	setenv("NVRING_SPIN_US", "0", 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(irq_completion_fires_vector_eventfd, vm_io_setup,
						vm_io_teardown),
		cmocka_unit_test_setup_teardown(irq_qpair_wait_sleeps_until_completion, vm_io_setup,
						vm_io_teardown),
		cmocka_unit_test_setup_teardown(irq_ring_read_delivered_after_sleep, vm_io_setup,
						vm_io_teardown),
	};
	return cmocka_run_group_tests(tests, vm_setup, vm_teardown);
}
