/* SPDX-License-Identifier: MIT */
/*
 * Hot-remove of a vfio-bound controller (issue 8 item 4), under a
 * pcie-root-port, QMP device_del asked for from here (qemu/run
 * --root-ports --qmp; tests/run-vm's boot F has two such controllers).
 *
 * fault_hotremove_vfio_request (the pci layer, runs now): the device is
 * opened through pci/vfio.c, device_del is asked for, and the VFIO device
 * request arrives: ops->removal_requested() turns true within seconds,
 * BAR0 still answers (the kernel holds the removal until the release), a
 * BAR read with memory decoding off -- what a vanished device answers --
 * raises no SIGBUS and reads 0 under QEMU (unassigned memory; real
 * hardware reads all ones), BAR0 answers again once decoding is back on;
 * after close the function leaves sysfs.
 *
 * fault_hotremove_ring_qd32 (for the driver's hot-remove handling; skips
 * unless NVRING_EXPECT_HOTREMOVE=1): nvring attached, QD32 reads through
 * an nvring ring (the io_uring ABI), device_del; then every read in flight
 * completes with -ENODEV, new SQEs complete with -ENODEV, the process does
 * not crash, closing the ring and detaching return within a bound, and the
 * PCI function leaves sysfs within a few seconds.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <nvring/nvring.h>
#include <nvring/uring.h>

#include "pci/pci.h"
#include "tests/vm/diff_ring.h"
#include "tests/vm/hotremove.h"

#define QD          32
#define BS          4096
#define WARMUP      256    /* completions before the removal is asked for */
#define ENODEV_TMO  10.0   /* s for every in-flight read to end with -ENODEV */
#define CLOSE_TMO   5.0    /* s for ring close + detach */
#define GONE_TMO    10.0   /* s for the function to leave sysfs after that */
#define VS          0x08   /* NVMe 2.0 §3.1.3.2: non-zero on any controller */

static sigjmp_buf bus_jmp;
static volatile sig_atomic_t bus_hits;

static void on_sigbus(int sig)
{
	(void)sig;
	bus_hits++;
	siglongjmp(bus_jmp, 1);
}

/* Read a 32-bit register of a mapped BAR; *bus set if it raised SIGBUS. */
static uint32_t bar_read(volatile void *bar, size_t off, bool *bus)
{
	struct sigaction sa = { .sa_handler = on_sigbus }, old;
	volatile uint32_t v = 0;

	*bus = false;
	sigaction(SIGBUS, &sa, &old);
	if (sigsetjmp(bus_jmp, 1) == 0)
		v = *(volatile uint32_t *)((volatile uint8_t *)bar + off);
	else
		*bus = true;
	sigaction(SIGBUS, &old, NULL);
	return v;
}

/* The command register through sysfs (not VFIO's virtualised view), to
 * turn memory decoding off behind VFIO's back like a vanished device. */
static int sysfs_command(const char *bdf, uint16_t *get, const uint16_t *set)
{
	char path[96];
	int fd, rc = 0;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", bdf);
	fd = open(path, O_RDWR);
	if (fd < 0)
		return -errno;
	if (get && pread(fd, get, 2, 4) != 2)
		rc = -EIO;
	if (set && pwrite(fd, set, 2, 4) != 2)
		rc = -EIO;
	close(fd);
	return rc;
}

static void fault_hotremove_vfio_request(void **state)
{
	char bdf[16], id[32];
	struct nvr_pci_dev *dev;
	volatile void *bar;
	size_t barlen;
	uint16_t cmd, off_cmd;
	uint32_t vs, vs_req, vs_off, vs_on;
	bool bus, bus_req, bus_off;
	double t0, t_req = -1, gone, t_close;
	(void)state;

	if (!hr_pick("NVRING_BDFS", "NVRING_BLKDEBUG_BDFS", "NVRING_DEVICE_IDS", 1, bdf,
		     sizeof(bdf), id, sizeof(id)) || !hr_behind_port(bdf)) {
		print_message("no QMP or no second vfio controller under a root port "
			      "(tests/run-vm boot F): skipped\n");
		skip();
	}
	assert_int_equal(nvr_vfio_open(bdf, &dev), 0);
	assert_non_null(dev->ops->removal_requested);
	assert_int_equal(dev->ops->map_bar(dev, 0, &bar, &barlen), 0);
	assert_false(dev->ops->removal_requested(dev));
	vs = bar_read(bar, VS, &bus);
	assert_false(bus);
	assert_true(vs != 0 && vs != 0xffffffff);

	t0 = hr_now();
	hr_device_del(id);
	while (hr_now() - t0 < 20) {
		if (dev->ops->removal_requested(dev)) {
			t_req = hr_now() - t0;
			break;
		}
		usleep(10000);
	}
	/* Still there: the kernel holds the removal until we let go. */
	usleep(200000);
	vs_req = bar_read(bar, VS, &bus_req);

	/* Memory decoding off through sysfs: the BAR reads like a device
	 * that is gone. Then back on. */
	assert_int_equal(sysfs_command(bdf, &cmd, NULL), 0);
	off_cmd = cmd & (uint16_t)~0x2;   /* PCI_COMMAND_MEMORY */
	assert_int_equal(sysfs_command(bdf, NULL, &off_cmd), 0);
	vs_off = bar_read(bar, VS, &bus_off);
	assert_int_equal(sysfs_command(bdf, NULL, &cmd), 0);
	vs_on = bar_read(bar, VS, &bus);
	bool still = dev->ops->removal_requested(dev), present = hr_sysfs_present(bdf);

	t_close = hr_now();
	dev->ops->close(dev);
	gone = hr_wait_gone(bdf, GONE_TMO);
	printf("[ INFO     ] %s (%s): VS %#x; device request after %.2f s; 0.2 s later VS %#x%s, "
	       "function %s; memory decoding off: VS %#x%s; back on: %#x; closed, left sysfs "
	       "%.2f s later\n", bdf, id, vs, t_req, vs_req, bus_req ? " (SIGBUS)" : "",
	       present ? "still in sysfs" : "gone from sysfs", vs_off, bus_off ? " (SIGBUS)" : "",
	       vs_on, gone < 0 ? -1 : hr_now() - t_close);
	assert_true(t_req >= 0);      /* the request IRQ arrived */
	assert_true(still);           /* and stays seen */
	assert_true(present);         /* the removal waits for our release */
	assert_false(bus_req);
	assert_int_equal(vs_req, vs);
	assert_false(bus_off);
	assert_true(vs_off == 0 || vs_off == 0xffffffff);
	assert_int_equal(vs_on, vs);
	assert_true(gone >= 0);
}

/* ---- the ring test, for the driver's hot-remove handling ---- */

static struct {
	struct nvr_ctrlr *c;
	struct dr_ring r;
	bool ring;
	uint8_t *bufs;
} H;

static int ring_teardown(void **state)
{
	(void)state;
	if (H.ring)
		dr_exit(&H.r);
	H.ring = false;
	if (H.c)
		nvr_ctrlr_detach(H.c);
	H.c = NULL;
	free(H.bufs);
	H.bufs = NULL;
	return 0;
}

static void fault_hotremove_ring_qd32(void **state)
{
	char bdf[16], id[32];
	unsigned inflight = 0, ok_before = 0, ok_after = 0, enodev = 0, other = 0;
	unsigned new_after = 0, new_enodev = 0;
	int other_res = 0, nsfd, rc;
	uint64_t next = 0, nblocks;
	double t_del = 0, t_drained = -1, t0;
	struct nvr_ns_info ns;
	(void)state;

	if (!hr_pick("NVRING_BDFS", "NVRING_BLKDEBUG_BDFS", "NVRING_DEVICE_IDS", 0, bdf,
		     sizeof(bdf), id, sizeof(id)) || !hr_behind_port(bdf)) {
		print_message("no QMP or no vfio controller under a root port "
			      "(tests/run-vm boot F): skipped\n");
		skip();
	}
	assert_int_equal(nvr_ctrlr_attach(bdf, NULL, &H.c), 0);
	assert_int_equal(nvr_ns_get_info(H.c, 1, &ns), 0);
	nblocks = ns.nlba * ns.lba_size / BS;
	nsfd = nvr_ns_open(H.c, 1);
	assert_true(nsfd >= 0);
	assert_true(dr_init(&H.r, H.c, QD, NULL) >= 0);
	H.ring = true;
	assert_int_equal(posix_memalign((void **)&H.bufs, 4096, (size_t)QD * BS), 0);
	printf("[ INFO     ] %s (%s): QD%d reads through an nvring ring, then device_del\n", bdf,
	       id, QD);

	t0 = hr_now();
	for (;;) {
		struct io_uring_cqe cqe;
		bool drained = t_drained >= 0;

		/* QD32 until the removal; afterwards a trickle of new SQEs. */
		while (inflight < (drained ? 1u : (unsigned)QD)) {
			struct io_uring_sqe *sqe = dr_sqe(&H.r);

			if (!sqe)
				break;
			sqe->opcode = IORING_OP_READ;
			sqe->fd = nsfd;
			sqe->addr = (uintptr_t)(H.bufs + (size_t)(next % QD) * BS);
			sqe->len = BS;
			sqe->off = (next++ % nblocks) * BS;
			sqe->user_data = drained;   /* 1: submitted after the drain */
			inflight++;
			if (drained)
				new_after++;
		}
		dr_flush(&H.r);
		rc = dr_enter(&H.r, dr_sq_pending(&H.r), 1, IORING_ENTER_GETEVENTS, NULL, 0);
		if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -ENODEV)
			fail_msg("nvr_uring_enter: %d (%s)", rc, strerror(-rc));
		while (dr_cqe(&H.r, &cqe)) {
			inflight--;
			if (!t_del) {
				assert_int_equal(cqe.res, BS);
				ok_before++;
			} else if (cqe.user_data) {
				new_enodev += cqe.res == -ENODEV;
				if (cqe.res != -ENODEV && !other_res)
					other_res = cqe.res;
			} else if (cqe.res == BS) {
				ok_after++;
			} else if (cqe.res == -ENODEV) {
				enodev++;
			} else {
				if (!other_res)
					other_res = cqe.res;
				other++;
			}
		}
		if (!t_del && ok_before >= WARMUP) {
			t_del = hr_now();
			hr_device_del(id);
		}
		/* Drained: the first -ENODEV seen and nothing else in flight. */
		if (t_del && t_drained < 0 && enodev && !inflight)
			t_drained = hr_now() - t_del;
		if (t_drained >= 0 && new_after >= 8 && !inflight)
			break;
		if (t_del && hr_now() - t_del > ENODEV_TMO)
			fail_msg("%.0f s after device_del: %u in flight, %u ok, %u -ENODEV, %u other "
				 "(first %d) after it; removal requested seen by nvring? no -ENODEV "
				 "drain", ENODEV_TMO, inflight, ok_after, enodev, other, other_res);
		if (hr_now() - t0 > 60)
			fail_msg("no removal within 60 s");
	}
	double tc = hr_now();
	dr_exit(&H.r);
	H.ring = false;
	rc = nvr_ctrlr_detach(H.c);
	H.c = NULL;
	double t_close = hr_now() - tc, gone = hr_wait_gone(bdf, GONE_TMO);

	printf("[ INFO     ] device_del: %u ok before; after: %u ok, %u -ENODEV, %u other (first %d); "
	       "drained after %.2f s; %u new SQEs, %u -ENODEV; close+detach %.2f s (detach %d); "
	       "left sysfs %.2f s later\n", ok_before, ok_after, enodev, other, other_res,
	       t_drained, new_after, new_enodev, t_close, rc, gone);
	assert_int_equal(other, 0);
	assert_true(enodev > 0);
	assert_int_equal(new_enodev, new_after);
	assert_true(t_close < CLOSE_TMO);
	assert_true(gone >= 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fault_hotremove_vfio_request),
		cmocka_unit_test_teardown(fault_hotremove_ring_qd32, ring_teardown),
	};

	setvbuf(stdout, NULL, _IOLBF, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
