/* SPDX-License-Identifier: MIT */
/*
 * Get Log Page (driver/log_page.c) against the software model, and the
 * `nvring log` printers (tools/log_fmt.c, included here) on the pages it
 * returns: SMART counters and Error Information entries match the I/O the
 * test did, the text names them, the JSON parses. Also the pci seam's
 * removal notice (ops->removal_requested) as the model gives it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tests/unit/driver_env.h"
#include "tests/unit/json_check.h"

#include "tools/log_fmt.c"
#include "tools/util.c"

#define SEED 20261202u

static void test_json_validator(void **state)
{
	(void)state;
	assert_true(json_ok("{\"a\":[1,2,{\"b\":\"x\\n\"}],\"c\":true}\n"));
	assert_false(json_ok("{\"a\":1,}"));
	assert_false(json_ok("{\"a\":01}"));
	assert_false(json_ok("{\"a\":[1 2]}"));
	assert_false(json_ok("{\"a\":1} x"));
}

/* ---- helpers ---- */

static char *print_to_string(void (*fn)(FILE *, const void *, const void *), const void *a,
			     const void *b)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	fn(f, a, b);
	assert_int_equal(fclose(f), 0);
	return buf;
}

static uint64_t u128_lo(const uint8_t b[16])
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | b[i];
	for (int i = 8; i < 16; i++)
		assert_int_equal(b[i], 0);
	return v;
}

/* @n synchronous one-block reads or writes at seeded LBAs; returns the
 * first error (or 0) and the LBAs in @lbas. */
static int do_io(struct nvr_qpair *qp, void *buf, bool write, int n, unsigned *seed,
		 uint64_t *lbas)
{
	int first = 0;

	for (int i = 0; i < n; i++) {
		struct done d = { 0 };
		uint64_t lba = (uint64_t)rand_r(seed) % 2048;
		int rc = write ? nvr_write(qp, 1, buf, lba, 1, on_done, &d)
			       : nvr_read(qp, 1, buf, lba, 1, on_done, &d);

		assert_int_equal(rc, 0);
		assert_int_equal(wait_for(qp, &d, 1), 0);
		if (lbas)
			lbas[i] = lba;
		if (d.res && !first)
			first = d.res;
	}
	return first;
}

static void print_smart_text(FILE *f, const void *page, const void *unused)
{
	(void)unused;
	cli_print_smart(f, "model0", page, false);
}

static void print_smart_json(FILE *f, const void *page, const void *unused)
{
	(void)unused;
	cli_print_smart(f, "model0", page, true);
}

struct err_args {
	unsigned n;
	bool json;
	int shown;
};

static void print_errors(FILE *f, const void *page, const void *args)
{
	struct err_args *a = (struct err_args *)args;

	a->shown = cli_print_error_log(f, "model0", page, a->n, a->json);
}

/* ---- tests ---- */

/* SMART after 7 good reads, 5 good writes and 3 reads failed with a media
 * status: the counters say exactly that, and so do text and JSON. */
static void fault_media_smart_counts(void **state)
{
	struct env e;
	struct nvr_qpair *qp;
	struct nvme_smart_log smart;
	unsigned seed = SEED;
	void *buf;
	(void)state;

	attach(&e, NULL, NULL);
	assert_int_equal(nvr_qpair_alloc(e.c, 0, &qp), 0);
	assert_int_equal(nvr_dma_alloc(e.c, 4096, &buf), 0);
	assert_int_equal(do_io(qp, buf, false, 7, &seed, NULL), 0);
	assert_int_equal(do_io(qp, buf, true, 5, &seed, NULL), 0);
	/* DNR: a driver that retries like Linux must not absorb them. */
	nvme_model_fail_next(e.m, NVME_MODEL_Q_IO, NVME_CMD_READ, 0x281 | NVME_MODEL_DNR, 3);
	assert_int_equal(do_io(qp, buf, false, 3, &seed, NULL), -ENODATA);

	memset(&smart, 0xa5, sizeof(smart));
	assert_int_equal(nvr_ctrlr_get_log_page(e.c, NVME_LOG_SMART, 0xffffffff, &smart,
						sizeof(smart)), 0);
	assert_int_equal(u128_lo(smart.host_reads), 7);
	assert_int_equal(u128_lo(smart.host_writes), 5);
	assert_int_equal(u128_lo(smart.media_errors), 3);
	assert_int_equal(u128_lo(smart.num_err_log_entries), 3);
	assert_int_equal(u128_lo(smart.data_units_read), 1);    /* 7 x 512 B, rounded up */
	assert_int_equal(smart.temperature[0] | smart.temperature[1] << 8, 313);

	char *text = print_to_string(print_smart_text, &smart, NULL);
	assert_non_null(strstr(text, "temperature                         : 40 C (313 K)\n"));
	assert_non_null(strstr(text, "host_read_commands                  : 7\n"));
	assert_non_null(strstr(text, "host_write_commands                 : 5\n"));
	assert_non_null(strstr(text, "media_errors                        : 3\n"));
	assert_non_null(strstr(text, "num_err_log_entries                 : 3\n"));
	assert_non_null(strstr(text, "available_spare                     : 100%\n"));
	free(text);
	char *json = print_to_string(print_smart_json, &smart, NULL);
	assert_true(json_ok(json));
	assert_non_null(strstr(json, "\"media_errors\":3,"));
	assert_non_null(strstr(json, "\"host_read_commands\":7,"));
	assert_non_null(strstr(json, "\"temperature\":313,"));
	free(json);

	assert_int_equal(nvr_dma_free(e.c, buf), 0);
	assert_int_equal(nvr_qpair_free(qp), 0);
	detach(&e);
}

/* Six failed reads into a 4-entry log: the newest four, newest first,
 * with the SQ, CID, status and LBA of each command. */
static void fault_media_error_log_entries(void **state)
{
	struct env e;
	struct nvr_qpair *qp;
	struct nvme_error_log log[4];
	uint64_t lbas[6];
	unsigned seed = SEED + 1;
	void *buf;
	(void)state;

	attach(&e, NULL, NULL);
	assert_int_equal(nvr_ctrlr_error_log_entries(e.c), 4);
	assert_int_equal(nvr_qpair_alloc(e.c, 0, &qp), 0);
	assert_int_equal(nvr_dma_alloc(e.c, 4096, &buf), 0);

	/* Empty at first: every entry has Error Count 0. */
	assert_int_equal(nvr_ctrlr_get_log_page(e.c, NVME_LOG_ERROR, 0, log, sizeof(log)), 0);
	struct err_args a = { .n = 4, .json = false };
	char *text = print_to_string(print_errors, log, &a);
	assert_int_equal(a.shown, 0);
	assert_non_null(strstr(text, "no errors logged\n"));
	free(text);

	nvme_model_fail_next(e.m, NVME_MODEL_Q_IO, NVME_CMD_READ, 0x281 | NVME_MODEL_DNR, 6);
	assert_int_equal(do_io(qp, buf, false, 6, &seed, lbas), -ENODATA);
	assert_int_equal(nvr_ctrlr_get_log_page(e.c, NVME_LOG_ERROR, 0, log, sizeof(log)), 0);
	for (int i = 0; i < 4; i++) {
		unsigned st = log[i].status >> 1;

		assert_int_equal(log[i].error_count, 6 - i);
		assert_int_equal(log[i].lba, lbas[5 - i]);
		assert_int_equal(log[i].nsid, 1);
		assert_int_not_equal(log[i].sqid, 0);
		assert_int_equal(st & 0x7ff, 0x281);   /* SCT 2, SC 81h */
		assert_true(st & 0x4000);              /* DNR */
	}

	a = (struct err_args){ .n = 4, .json = false };
	text = print_to_string(print_errors, log, &a);
	assert_int_equal(a.shown, 4);
	char want[128];
	snprintf(want, sizeof(want), "entry 0: error_count 6 sqid %u cid %#x status 0x4281 "
		 "(sct 2 sc 0x81 dnr) lba %llu nsid 1\n", log[0].sqid, log[0].cid,
		 (unsigned long long)lbas[5]);
	assert_non_null(strstr(text, want));
	free(text);
	a = (struct err_args){ .n = 4, .json = true };
	char *json = print_to_string(print_errors, log, &a);
	assert_true(json_ok(json));
	snprintf(want, sizeof(want), "{\"error_count\":6,\"sqid\":%u,\"cid\":%u,\"status\":%u,"
		 "\"sct\":2,\"sc\":129,\"dnr\":true,\"lba\":%llu,\"nsid\":1}", log[0].sqid,
		 log[0].cid, 0x4281u, (unsigned long long)lbas[5]);
	assert_non_null(strstr(json, want));
	free(json);

	assert_int_equal(nvr_dma_free(e.c, buf), 0);
	assert_int_equal(nvr_qpair_free(qp), 0);
	detach(&e);
}

/* Lengths the call refuses, a page the controller refuses, a short page. */
static void test_log_page_args(void **state)
{
	struct env e;
	uint8_t buf[4100];
	(void)state;

	attach(&e, NULL, NULL);
	assert_int_equal(nvr_ctrlr_get_log_page(NULL, NVME_LOG_SMART, 0, buf, 512), -EINVAL);
	assert_int_equal(nvr_ctrlr_get_log_page(e.c, NVME_LOG_SMART, 0, NULL, 512), -EINVAL);
	assert_int_equal(nvr_ctrlr_get_log_page(e.c, NVME_LOG_SMART, 0, buf, 0), -EINVAL);
	assert_int_equal(nvr_ctrlr_get_log_page(e.c, NVME_LOG_SMART, 0, buf, 6), -EINVAL);
	assert_int_equal(nvr_ctrlr_get_log_page(e.c, NVME_LOG_SMART, 0, buf, 4100), -EINVAL);
	assert_int_equal(nvr_ctrlr_error_log_entries(NULL), -EINVAL);
	/* LID 7Fh: Invalid Log Page from the controller, as a negative errno. */
	assert_true(nvr_ctrlr_get_log_page(e.c, 0x7f, 0, buf, 512) < 0);
	/* The first 8 bytes of SMART only: the temperature is there. */
	memset(buf, 0, sizeof(buf));
	assert_int_equal(nvr_ctrlr_get_log_page(e.c, NVME_LOG_SMART, 0xffffffff, buf, 8), 0);
	assert_int_equal(buf[1] | buf[2] << 8, 313);
	/* A 4 KiB request gets the 512-byte page; the rest stays zero. */
	memset(buf, 0, sizeof(buf));
	assert_int_equal(nvr_ctrlr_get_log_page(e.c, NVME_LOG_SMART, 0xffffffff, buf, 4096), 0);
	assert_int_equal(buf[3], 100);
	for (int i = 512; i < 4096; i++)
		assert_int_equal(buf[i], 0);
	check_clean(&e);
	detach(&e);
}

/* The pci seam's removal notice: false until the model asks, then true
 * and staying true (as VFIO's device request is polled). */
static void fault_hotremove_seam_notice(void **state)
{
	struct nvme_model *m;
	struct nvr_pci_dev *dev;
	(void)state;

	assert_int_equal(nvme_model_create(NULL, &m, &dev), 0);
	assert_non_null(dev->ops->removal_requested);
	assert_false(dev->ops->removal_requested(dev));
	assert_false(dev->ops->removal_requested(dev));
	nvme_model_request_removal(m);
	assert_true(dev->ops->removal_requested(dev));
	assert_true(dev->ops->removal_requested(dev));
	nvme_model_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_validator),
		cmocka_unit_test(fault_media_smart_counts),
		cmocka_unit_test(fault_media_error_log_entries),
		cmocka_unit_test(test_log_page_args),
		cmocka_unit_test(fault_hotremove_seam_notice),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
