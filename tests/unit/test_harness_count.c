/* SPDX-License-Identifier: MIT */
/*
 * qemu/cmocka-count, the rule every runner (tests/run-unit, tests/run-vm)
 * counts results by: a cmocka summary is counted as printed; a crash
 * without one is a failure; a program that exits 0 without a summary is a
 * failure too (it stopped before its tests ran), and only a declared
 * script (--script) passes by its exit status alone.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#ifndef NVRING_SRCDIR
#define NVRING_SRCDIR "."
#endif

/* Runs cmocka-count over a log holding @text; returns "P F S". */
static void count(const char *text, int status, const char *kind, char *out, size_t n)
{
	char log[] = "/tmp/nvring-count.XXXXXX";
	int fd = mkstemp(log);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "%s/qemu/cmocka-count %s %d %s", NVRING_SRCDIR, log, status, kind);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(out, (int)n, p));
	assert_int_equal(pclose(p), 0);
	unlink(log);
	out[strcspn(out, "\n")] = 0;
}

static void test_summary_counted(void **state)
{
	(void)state;
	char r[64];
	count("[  PASSED  ] 3 test(s).\n[  FAILED  ] 1 test(s), listed below:\n", 1, "", r, sizeof(r));
	assert_string_equal(r, "3 1 0");
	count("[  PASSED  ] 2 test(s).\n[  SKIPPED ] 1 test(s), listed below:\n", 0, "", r, sizeof(r));
	assert_string_equal(r, "2 0 1");
}

static void test_crash_without_summary_fails(void **state)
{
	(void)state;
	char r[64];
	count("Segmentation fault\n", 139, "", r, sizeof(r));
	assert_string_equal(r, "0 1 0");
	count("[  PASSED  ] 4 test(s).\n", 134, "", r, sizeof(r));   /* died in teardown */
	assert_string_equal(r, "4 1 0");
	count("", 77, "", r, sizeof(r));
	assert_string_equal(r, "0 0 1");
}

static void test_exit_zero_without_summary(void **state)
{
	(void)state;
	char r[64];
	count("usage: prog ...\n", 0, "", r, sizeof(r));
	assert_string_equal(r, "0 1 0");   /* a program: failed */
	count("all fine\n", 0, "--script", r, sizeof(r));
	assert_string_equal(r, "1 0 0");   /* a declared script: passed */
	count("[  PASSED  ] 5 test(s).\n", 0, "--script", r, sizeof(r));
	assert_string_equal(r, "5 0 0");   /* a script's own summaries count as printed */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_summary_counted),
		cmocka_unit_test(test_crash_without_summary_fails),
		cmocka_unit_test(test_exit_zero_without_summary),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
