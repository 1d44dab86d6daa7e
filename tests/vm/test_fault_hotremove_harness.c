/* SPDX-License-Identifier: MIT */
/*
 * The hot-remove harness, proved with the kernel's own driver: a kernel-
 * bound controller under a pcie-root-port (qemu/run --root-ports --qmp;
 * tests/run-vm's boot F) runs QD32 O_DIRECT reads through the guest
 * kernel's io_uring; the test asks the host for QMP device_del; the
 * kernel's nvme driver completes the I/O still in flight or submitted
 * after with errors, and the PCI function and the block device leave.
 * Skips without QMP or without such a controller (boots other than F).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <nvring/uring.h>

#include "tests/vm/diff_ring.h"
#include "tests/vm/hotremove.h"

#define QD       32
#define BS       4096
#define WARMUP   256   /* completions before the removal is asked for */

static void fault_hotremove_harness_kernel(void **state)
{
	char dev[64], id[32], link[128], real[PATH_MAX], bdf[16];
	struct dr_ring r;
	uint8_t *bufs = NULL;
	unsigned inflight = 0, ok_before = 0, ok_after = 0, err_after = 0;
	int first_err = 0, fd;
	double t_del = 0, gone;
	uint64_t nblocks, next = 0;
	(void)state;

	if (!hr_pick("NVRING_KERNEL_DEVS", "NVRING_BLKDEBUG_KERNEL_DEVS",
		     "NVRING_KERNEL_DEVICE_IDS", 0, dev, sizeof(dev), id, sizeof(id))) {
		print_message("no QMP or no kernel controller to remove (qemu/run --qmp "
			      "--root-ports; tests/run-vm boot F): skipped\n");
		skip();
	}
	/* /sys/block/nvmeXn1/device is the nvme controller; its device the
	 * PCI function. */
	snprintf(link, sizeof(link), "/sys/block/%s/device/device", dev + 5);
	assert_non_null(realpath(link, real));
	snprintf(bdf, sizeof(bdf), "%s", strrchr(real, '/') + 1);
	if (!hr_behind_port(bdf)) {
		print_message("%s (%s) is not behind a root port: skipped\n", dev, bdf);
		skip();
	}
	printf("[ INFO     ] %s at %s, QEMU id %s: QD%d reads, then device_del\n", dev, bdf, id, QD);

	fd = open(dev, O_RDONLY | O_DIRECT);
	assert_true(fd >= 0);
	nblocks = (uint64_t)lseek(fd, 0, SEEK_END) / BS;
	assert_true(nblocks > QD);
	assert_int_equal(posix_memalign((void **)&bufs, 4096, (size_t)QD * BS), 0);
	assert_true(dr_init(&r, NULL, QD, NULL) >= 0);

	double t0 = hr_now(), t_bad = 0;
	for (;;) {
		struct io_uring_cqe cqe;

		/* Keep QD32 in flight until the removal shows. */
		while (inflight < QD && !t_bad) {
			struct io_uring_sqe *sqe = dr_sqe(&r);

			if (!sqe)
				break;
			unsigned slot = (unsigned)(next % QD);
			sqe->opcode = IORING_OP_READ;
			sqe->fd = fd;
			sqe->addr = (uintptr_t)(bufs + (size_t)slot * BS);
			sqe->len = BS;
			sqe->off = (next++ % nblocks) * BS;
			inflight++;
		}
		dr_flush(&r);
		int rc = dr_enter(&r, dr_sq_pending(&r), inflight ? 1 : 0,
				  inflight ? IORING_ENTER_GETEVENTS : 0, NULL, 0);
		if (rc < 0 && rc != -EINTR && rc != -EAGAIN)
			fail_msg("io_uring_enter: %s", strerror(-rc));
		while (dr_cqe(&r, &cqe)) {
			inflight--;
			if (!t_del) {
				assert_int_equal(cqe.res, BS);   /* before the removal: all good */
				ok_before++;
			} else if (cqe.res == BS) {
				ok_after++;
			} else {
				if (!err_after++)
					first_err = cqe.res;
				if (!t_bad)
					t_bad = hr_now();
			}
		}
		if (!t_del && ok_before >= WARMUP) {
			t_del = hr_now();
			hr_device_del(id);
		}
		if (t_bad && !inflight)
			break;
		if (hr_now() - t0 > 60)
			fail_msg("after 60 s: %u in flight, %u ok and %u failed after device_del",
				 inflight, ok_after, err_after);
	}
	/* A read on the open fd of a removed disk. */
	ssize_t n = pread(fd, bufs, BS, 0);
	int late = n < 0 ? -errno : (int)n;

	/* Let go before the removal ends: Debian's 6.1 kernel oopses in
	 * nvme_dbbuf_dma_free() when the last close of a removed namespace
	 * comes after the PCI function is gone (seen here). */
	dr_exit(&r);
	close(fd);
	free(bufs);
	gone = hr_wait_gone(bdf, 20);
	printf("[ INFO     ] device_del: first failed read after %.2f s, %s left sysfs after %.2f s; "
	       "%u reads ok before, %u ok and %u failed after (first failure res %d%s%s); a pread "
	       "then: %d%s%s\n", t_bad - t_del, bdf, gone < 0 ? -1 : hr_now() - t_del,
	       ok_before, ok_after, err_after, first_err, first_err < 0 ? ", " : " = EOF",
	       first_err < 0 ? strerror(-first_err) : "", late, late < 0 ? ", " : "",
	       late < 0 ? strerror(-late) : "");
	assert_true(gone >= 0);
	/* In flight or submitted while the disk goes: they fail (-EIO), or
	 * read nothing once the disk's capacity is 0 (EOF, res 0). */
	assert_true(err_after > 0 && first_err <= 0);
	assert_true(late <= 0);
	assert_false(access(dev, F_OK) == 0);   /* the block device node went too */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fault_hotremove_harness_kernel),
	};

	setvbuf(stdout, NULL, _IOLBF, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
