/* SPDX-License-Identifier: MIT */
/*
 * NVMe status → errno (driver/status.c), entry by entry, against the
 * Linux kernel's nvme_error_status() + blk_status_to_errno(). The
 * expected values are written out here independently of the table.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "nvring/nvring.h"

struct expect {
	uint16_t status;
	int err;
	const char *name_part;   /* a word the name must contain */
};

/* SCT << 8 | SC, as include/linux/nvme.h numbers them. */
static const struct expect kernel_map[] = {
	{ 0x000, 0,             "success" },
	/* BLK_STS_NOSPC */
	{ 0x081, -ENOSPC,       "capacity" },
	/* BLK_STS_TARGET → -EREMOTEIO */
	{ 0x080, -EREMOTEIO,    "LBA out of range" },
	{ 0x021, -EREMOTEIO,    "interrupted" },
	{ 0x082, -EREMOTEIO,    "not ready" },
	/* BLK_STS_NOTSUPP */
	{ 0x180, -EOPNOTSUPP,   "attributes" },
	{ 0x183, -EOPNOTSUPP,   "ONCS" },
	{ 0x001, -EOPNOTSUPP,   "opcode" },
	{ 0x002, -EOPNOTSUPP,   "invalid field" },
	{ 0x00b, -EOPNOTSUPP,   "namespace" },
	/* BLK_STS_MEDIUM → -ENODATA */
	{ 0x280, -ENODATA,      "write fault" },
	{ 0x281, -ENODATA,      "read error" },
	{ 0x287, -ENODATA,      "unwritten" },
	{ 0x286, -ENODATA,      "access denied" },
	{ 0x182, -ENODATA,      "read only" },
	{ 0x285, -ENODATA,      "compare" },
	/* BLK_STS_PROTECTION → -EILSEQ */
	{ 0x282, -EILSEQ,       "guard" },
	{ 0x283, -EILSEQ,       "application tag" },
	{ 0x284, -EILSEQ,       "reference tag" },
	{ 0x181, -EILSEQ,       "protection" },
	/* BLK_STS_RESV_CONFLICT → -EBADE */
	{ 0x083, -EBADE,        "reservation" },
	/* BLK_STS_TRANSPORT → -ENOLINK */
	{ 0x370, -ENOLINK,      "host pathing" },
	/* zoned resources */
	{ 0x1bd, -EOVERFLOW,    "active zones" },
	{ 0x1be, -ETOOMANYREFS, "open zones" },
	/* default: BLK_STS_IOERR → -EIO */
	{ 0x004, -EIO,          "data transfer" },
	{ 0x006, -EIO,          "internal" },
	{ 0x007, -EIO,          "abort" },
	{ 0x008, -EIO,          "SQ deletion" },
	{ 0x00c, -EIO,          "sequence" },
	{ 0x013, -EIO,          "PRP offset" },
	{ 0x100, -EIO,          "completion queue" },
	{ 0x101, -EIO,          "queue identifier" },
	{ 0x102, -EIO,          "queue size" },
	{ 0x300, -EIO,          "path" },
	{ 0x371, -EIO,          "aborted by host" },
};

static void test_kernel_table(void **state)
{
	for (size_t i = 0; i < sizeof(kernel_map) / sizeof(kernel_map[0]); i++) {
		const struct expect *e = &kernel_map[i];
		int got = nvr_status_errno(e->status);
		const char *name = nvr_status_str(e->status);

		if (got != e->err)
			fail_msg("status 0x%03x: errno %d, expected %d", e->status, got, e->err);
		assert_non_null(name);
		if (!strcasestr(name, e->name_part))
			fail_msg("status 0x%03x: name \"%s\" lacks \"%s\"", e->status, name,
				 e->name_part);
	}
}

/* Codes absent from the kernel's switch are -EIO, with a generic name per
 * status code type. */
static void test_unknown_codes(void **state)
{
	assert_int_equal(nvr_status_errno(0x0ff), -EIO);
	assert_int_equal(nvr_status_errno(0x1ff), -EIO);
	assert_int_equal(nvr_status_errno(0x2ff), -EIO);
	assert_int_equal(nvr_status_errno(0x7c0), -EIO);   /* vendor specific */
	assert_string_equal(nvr_status_str(0x0ff), "generic command error");
	assert_string_equal(nvr_status_str(0x1ff), "command specific error");
	assert_string_equal(nvr_status_str(0x2ff), "media error");
	assert_string_equal(nvr_status_str(0x3ff), "path error");
	assert_string_equal(nvr_status_str(0x7c0), "vendor specific error");
	assert_string_equal(nvr_status_str(0x4ff), "reserved status code type");
}

/* Only SCT and SC count: bits above (as the kernel's & 0x7ff) are ignored. */
static void test_mask(void **state)
{
	assert_int_equal(nvr_status_errno(0x4000 | 0x081), -ENOSPC);
	assert_int_equal(nvr_status_errno(0x0800), 0);
	assert_int_equal(nvr_status_errno(0xf800 | 0x286), -ENODATA);
}

/* Every error is negative and every name non-empty over the whole space. */
static void test_whole_space(void **state)
{
	for (unsigned s = 1; s <= 0x7ff; s++) {
		assert_true(nvr_status_errno((uint16_t)s) < 0);
		assert_true(strlen(nvr_status_str((uint16_t)s)) > 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kernel_table),
		cmocka_unit_test(test_unknown_codes),
		cmocka_unit_test(test_mask),
		cmocka_unit_test(test_whole_space),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
