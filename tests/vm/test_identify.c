/* SPDX-License-Identifier: MIT */
/*
 * VM test: what attach learns from the controller matches what QEMU was
 * told (serial, model, vendor), namespace geometry is sane, and attach of
 * an absent function fails with -ENODEV.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/vm/vm_util.h"

#define QEMU_VID   0x1b36
#define QEMU_MODEL "QEMU NVMe Ctrl"

/* Identify matches the serial/model QEMU was given, for every controller. */
static void test_identify_matches_qemu(void **state)
{
	(void)state;
	if (vm_nctrlrs == 0)
		skip();
	for (int i = 0; i < vm_nctrlrs; i++) {
		struct vm_ctrlr *v = VM_CTRLR(i);
		const struct nvr_ctrlr_info *ci = v->info;

		assert_non_null(ci);
		assert_string_equal(ci->bdf, v->bdf);
		if (v->serial[0])
			assert_string_equal(ci->sn, v->serial);
		assert_string_equal(ci->mn, QEMU_MODEL);
		assert_int_equal(ci->vid, QEMU_VID);
		/* Firmware revision: QEMU's version, non-empty, blanks trimmed. */
		assert_true(ci->fr[0] != '\0');
		assert_true(ci->fr[strlen(ci->fr) - 1] != ' ');
		/* QEMU 7.2 reports NVMe 1.4. */
		assert_true(ci->version >= 0x10400);
		assert_int_equal(ci->version >> 16, 1);
		/* CAP.MQES + 1: QEMU's is 2048, at least 2 by the spec. */
		assert_true(ci->max_io_entries >= 2);
		assert_int_equal(ci->max_io_entries, (uint32_t)(ci->cap & 0xffff) + 1);
		assert_true(ci->max_io_qpairs >= 1);
		assert_true(ci->nn >= 1);
		/* MDTS is a power of two times 4 KiB (CAP.MPSMIN 0 on QEMU). */
		assert_true(ci->max_xfer >= 4096);
		assert_int_equal(ci->max_xfer & (ci->max_xfer - 1), 0);
		/* QEMU 7.2 implements Write Zeroes and Dataset Management. */
		assert_true(ci->write_zeroes);
		assert_true(ci->dsm);
		print_message("%s: sn %s mn '%s' fr %s vs %x max_xfer %u qpairs %u vwc %d\n",
			      ci->bdf, ci->sn, ci->mn, ci->fr, ci->version, ci->max_xfer,
			      ci->max_io_qpairs, ci->vwc);
	}
}

/* The namespace list is ascending and each entry has sane geometry. */
static void test_namespaces(void **state)
{
	uint32_t ids[64];

	(void)state;
	if (vm_nctrlrs == 0)
		skip();
	for (int i = 0; i < vm_nctrlrs; i++) {
		struct vm_ctrlr *v = VM_CTRLR(i);
		int n = nvr_ctrlr_ns_list(v->ctrlr, ids, 64);

		assert_true(n >= 1);
		assert_true((uint32_t)n <= v->info->nn);
		for (int k = 0; k < n && k < 64; k++) {
			struct nvr_ns_info ns;

			if (k)
				assert_true(ids[k] > ids[k - 1]);
			assert_true(ids[k] >= 1 && ids[k] <= v->info->nn);
			assert_int_equal(nvr_ns_get_info(v->ctrlr, ids[k], &ns), 0);
			assert_int_equal(ns.nsid, ids[k]);
			assert_true(ns.lba_size >= 512 && ns.lba_size <= 65536);
			assert_int_equal(ns.lba_size & (ns.lba_size - 1), 0);
			assert_true(ns.nlba > 0);
			assert_true(ns.ncap <= ns.nlba);
			print_message("%s ns %u: %" PRIu64 " blocks of %u B\n", v->bdf, ns.nsid,
				      ns.nlba, ns.lba_size);
		}
		/* Asking for fewer still reports the full count. */
		assert_int_equal(nvr_ctrlr_ns_list(v->ctrlr, ids, 0), n);
	}
}

/* nvr_ns_get_info() of a namespace that is not active: -ENOENT. */
static void test_inactive_namespace(void **state)
{
	struct vm_ctrlr *v = VM_CTRLR(0);
	struct nvr_ns_info ns;
	uint32_t ids[64];
	int n = nvr_ctrlr_ns_list(v->ctrlr, ids, 64);
	uint32_t absent = 0;

	(void)state;
	/* The first ID in 1..NN that is not in the active list. */
	for (uint32_t id = 1; id <= v->info->nn && !absent; id++) {
		bool active = false;

		for (int k = 0; k < n && k < 64; k++)
			active |= ids[k] == id;
		if (!active)
			absent = id;
	}
	assert_int_equal(nvr_ns_get_info(v->ctrlr, 0, &ns), -ENOENT);
	assert_int_equal(nvr_ns_get_info(v->ctrlr, 0xffffffffu, &ns), -ENOENT);
	if (absent)
		assert_int_equal(nvr_ns_get_info(v->ctrlr, absent, &ns), -ENOENT);
	assert_int_equal(nvr_ns_get_info(v->ctrlr, v->info->nn + 1, &ns), -ENOENT);
}

/* Attach of a PCI function that does not exist: -ENODEV. */
static void test_attach_absent(void **state)
{
	struct nvr_ctrlr *c = (struct nvr_ctrlr *)0x1;

	(void)state;
	/* Bus 0xfe does not exist on QEMU's q35 machine. */
	assert_int_equal(nvr_ctrlr_attach("0000:fe:1f.7", NULL, &c), -ENODEV);
	assert_int_equal(nvr_ctrlr_attach("fe:1f.6", NULL, &c), -ENODEV);
}

/* Attaching a controller that this process already holds fails cleanly
 * (VFIO allows one open of a group) and leaves the first handle usable. */
static void test_attach_twice(void **state)
{
	struct vm_ctrlr *v = VM_CTRLR(0);
	struct nvr_ctrlr *c = NULL;
	int rc;

	(void)state;
	rc = nvr_ctrlr_attach(v->bdf, NULL, &c);
	if (rc == 0) {
		nvr_ctrlr_detach(c);
		fail_msg("second attach of %s succeeded: two drivers on one controller", v->bdf);
	}
	assert_true(rc == -EBUSY || rc == -EEXIST);
	assert_string_equal(nvr_ctrlr_get_info(v->ctrlr)->sn, v->info->sn);
}

/*
 * The status → errno table follows the kernel's nvme driver: 6.1's
 * nvme_error_status() (drivers/nvme/host/core.c) gives BLK_STS_* and
 * blk_status_to_errno() the errno. Note LBA Out of Range is BLK_STS_TARGET
 * (-EREMOTEIO); only Capacity Exceeded is BLK_STS_NOSPC (-ENOSPC).
 */
static void test_status_errno(void **state)
{
	(void)state;
	assert_int_equal(nvr_status_errno(0), 0);
	assert_int_equal(nvr_status_errno(0x080), -EREMOTEIO);  /* LBA Out of Range */
	assert_int_equal(nvr_status_errno(0x081), -ENOSPC);     /* Capacity Exceeded */
	assert_int_equal(nvr_status_errno(0x00b), -EOPNOTSUPP); /* Invalid Namespace */
	assert_int_equal(nvr_status_errno(0x002), -EOPNOTSUPP); /* Invalid Field */
	assert_int_equal(nvr_status_errno(0x281), -ENODATA);    /* Unrecovered Read Error */
	assert_int_equal(nvr_status_errno(0x006), -EIO);        /* Internal Error */
	assert_non_null(nvr_status_str(0x080));
	assert_non_null(nvr_status_str(0x7ff));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identify_matches_qemu),
		cmocka_unit_test(test_namespaces),
		cmocka_unit_test(test_inactive_namespace),
		cmocka_unit_test(test_attach_absent),
		cmocka_unit_test(test_attach_twice),
		cmocka_unit_test(test_status_errno),
	};

	return cmocka_run_group_tests_name("vm_identify", tests, vm_setup, vm_teardown);
}
