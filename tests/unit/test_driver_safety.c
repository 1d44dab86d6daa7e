/* SPDX-License-Identifier: MIT */
/*
 * The driver's safety rules against the software controller model: what it
 * must refuse (metadata formats, driver-internal IOVAs, detach with live
 * queue pairs) and how it quiesces a controller that failed (admin timeout,
 * CSTS.CFS) before any memory the device may still write is handed back.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "driver/qpair.h"
#include "tests/unit/driver_env.h"

/* ---- finding: namespaces whose LBA format carries metadata ---------------- */

/* Both metadata layouts: the namespace is listed with its ms, every I/O
 * command is refused at submission and none reaches the device. */
static void test_metadata_ns_refused(void **state)
{
	for (int ext = 0; ext < 2; ext++) {
		struct nvme_model_cfg cfg = { .ns_blocks = 1024, .lba_shift = 9, .ms = 8,
					      .meta_ext = ext };
		struct env e;
		struct nvr_qpair *qp;
		struct nvr_ns_info ni;
		struct nvr_seg seg;
		struct done d = { 0 };
		void *buf;

		attach(&e, &cfg, NULL);
		assert_int_equal(nvr_ns_get_info(e.c, 1, &ni), 0);
		assert_int_equal(ni.ms, 8);
		assert_int_equal(ni.lba_size, 512);
		assert_int_equal(nvr_qpair_alloc(e.c, 8, &qp), 0);
		assert_int_equal(nvr_dma_alloc(e.c, 8192, &buf), 0);
		assert_int_equal(nvr_dma_iova(e.c, buf, 8192, &seg.iova), 0);
		seg.len = 8192;
		uint64_t before = nvme_model_get_stats(e.m).io_cmds;

		assert_int_equal(nvr_read(qp, 1, buf, 0, 8, on_done, &d), -EOPNOTSUPP);
		assert_int_equal(nvr_write(qp, 1, buf, 0, 8, on_done, &d), -EOPNOTSUPP);
		assert_int_equal(nvr_io(qp, NVR_IO_READ, 1, 0, 16, &seg, 1, on_done, &d),
				 -EOPNOTSUPP);
		assert_int_equal(nvr_write_zeroes(qp, 1, 0, 8, on_done, &d), -EOPNOTSUPP);
		assert_int_equal(nvr_deallocate(qp, 1, 0, 8, on_done, &d), -EOPNOTSUPP);
		assert_int_equal(nvr_flush(qp, 1, on_done, &d), -EOPNOTSUPP);
		for (int i = 0; i < 20; i++)
			assert_int_equal(nvr_qpair_poll(qp, 0), 0);
		assert_int_equal(d.n, 0);
		assert_int_equal(nvme_model_get_stats(e.m).io_cmds, before);
		assert_int_equal(qp->nfree_tr, 7);   /* every slot still free */
		nvr_dma_free(e.c, buf);
		nvr_qpair_free(qp);
		detach(&e);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_metadata_ns_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
