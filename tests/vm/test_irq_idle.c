/* SPDX-License-Identifier: MIT */
/*
 * VM test (boot A only: it takes 10 s): an idle ring does not burn a core.
 * A program with an open ring blocked in io_uring_enter(GETEVENTS,
 * min_complete 1) with a 10 s EXT_ARG timeout and no I/O at all: the wait
 * ends with -ETIME after the 10 s, and the process's CPU time over them
 * (getrusage: user + system, every thread) stays below 1% of a core
 * (0.1 s). Polling would spend about 10 s. Then one read through the same
 * ring, to show the ring still works after the long sleep.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/resource.h>

#include "tests/vm/vm_util.h"
#include "tests/vm/vm_io.h"
#include "tests/unit/test_uring_util.h"

static double cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void irq_idle_ring_10s_getevents_below_1pct_cpu(void **state)
{
	struct vm_io *io = vm_io_open(state, VM_CTRLR(0), 0, 4096, 4);
	struct tu_ring r;
	struct io_uring_cqe c;
	uint8_t *buf = aligned_alloc(4096, 4096);
	int ns = nvr_ns_open(io->v->ctrlr, io->v->nsid);

	assert_non_null(buf);
	assert_true(ns >= 0);
	assert_true(tu_ring_init(&r, io->v->ctrlr, 8, NULL) >= 0);

	struct __kernel_timespec ts = { .tv_sec = 10 };
	struct io_uring_getevents_arg arg = { .ts = (uintptr_t)&ts };
	double t0 = vm_now(), c0 = cpu_seconds();
	int rc = tu_enter(&r, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg,
			  sizeof(arg));
	double wall = vm_now() - t0, cpu = cpu_seconds() - c0;

	print_message("idle wait: %.3f s wall, %.4f s CPU (%.3f%% of a core)\n", wall, cpu,
		      100.0 * cpu / wall);
	assert_int_equal(rc, -ETIME);
	assert_false(tu_cqe(&r, &c));
	assert_true(wall >= 9.99);
	if (cpu >= 0.1)
		fail_msg("an idle ring used %.3f s of CPU in %.1f s (limit 0.1 s: 1%% of a core)",
			 cpu, wall);

	/* the ring still works: a read, delivered with the right data */
	vm_fill_random(&io->rng, io->wbuf, 4096);
	VM_OK(io->qp, NVR_IO_WRITE, io->v->nsid, io->wbuf, 2048, 4096 / io->v->ns.lba_size);
	struct io_uring_sqe *s = tu_sqe(&r);
	s->opcode = IORING_OP_READ;
	s->fd = ns;
	s->addr = (uintptr_t)buf;
	s->len = 4096;
	s->off = 2048ull * io->v->ns.lba_size;
	s->user_data = 77;
	tu_flush(&r);
	assert_int_equal(tu_enter(&r, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0), 1);
	assert_true(tu_cqe(&r, &c));
	assert_int_equal(c.user_data, 77);
	assert_int_equal(c.res, 4096);
	VM_SAME(buf, io->wbuf, 4096, "read after the idle wait");
	tu_ring_exit(&r);
	nvr_ns_close(ns);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(irq_idle_ring_10s_getevents_below_1pct_cpu,
						vm_io_setup, vm_io_teardown),
	};
	return cmocka_run_group_tests(tests, vm_setup, vm_teardown);
}
