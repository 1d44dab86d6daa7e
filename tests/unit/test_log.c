/* SPDX-License-Identifier: MIT */
/*
 * The library's logging (pci/log.c): the hook gets messages with their
 * level, the threshold filters, NVRING_LOG=LEVEL:FILE appends to FILE, a
 * NULL hook restores the default, and a library failure says why through
 * the hook with nothing on fd 2.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "nvring/nvring.h"
#include "pci/log.h"

struct seen {
	int n;
	int level;
	char msg[NVR_LOG_LINE_MAX];
};

static void record(void *arg, int level, const char *msg)
{
	struct seen *s = arg;

	s->n++;
	s->level = level;
	snprintf(s->msg, sizeof(s->msg), "%s", msg);
}

/* Point fd 2 at a fresh temporary file; returns the saved fd 2. */
static int stderr_to_file(int *file)
{
	char path[] = "/tmp/nvring-test-log-XXXXXX";
	int saved = dup(STDERR_FILENO);

	*file = mkstemp(path);
	assert_true(saved >= 0 && *file >= 0);
	unlink(path);
	assert_int_equal(dup2(*file, STDERR_FILENO), STDERR_FILENO);
	return saved;
}

static off_t stderr_restore(int saved, int file)
{
	off_t size = lseek(file, 0, SEEK_END);

	dup2(saved, STDERR_FILENO);
	close(saved);
	close(file);
	return size;
}

static int setup(void **state)
{
	unsetenv("NVRING_LOG");
	nvr_log_reset();
	nvr_set_log_hook(NULL, NULL);
	return 0;
}

static void test_hook_gets_level_and_line(void **state)
{
	struct seen s = { 0 };

	nvr_set_log_hook(record, &s);
	nvr_log(NVR_LOG_ERR, "%s: thing %d failed\n", "0000:00:02.0", 7);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.level, NVR_LOG_ERR);
	assert_string_equal(s.msg, "0000:00:02.0: thing 7 failed");   /* no newline */
	nvr_log(NVR_LOG_WARN, "skipped");
	assert_int_equal(s.n, 2);
	assert_int_equal(s.level, NVR_LOG_WARN);
	nvr_set_log_hook(NULL, NULL);
}

static void test_threshold_filters(void **state)
{
	struct seen s = { 0 };

	nvr_set_log_hook(record, &s);
	/* Unset NVRING_LOG: warn and more severe. */
	nvr_log(NVR_LOG_INFO, "info");
	assert_int_equal(s.n, 0);
	assert_int_equal(nvr_set_log_level(NVR_LOG_ERR), NVR_LOG_WARN);
	nvr_log(NVR_LOG_WARN, "warn");
	assert_int_equal(s.n, 0);
	nvr_log(NVR_LOG_ERR, "err");
	assert_int_equal(s.n, 1);
	assert_int_equal(nvr_set_log_level(NVR_LOG_DEBUG), NVR_LOG_ERR);
	nvr_log(NVR_LOG_DEBUG, "debug");
	assert_int_equal(s.n, 2);
	assert_int_equal(nvr_set_log_level(NVR_LOG_OFF), NVR_LOG_DEBUG);
	nvr_log(NVR_LOG_ERR, "err");
	assert_int_equal(s.n, 2);
	assert_int_equal(nvr_set_log_level(NVR_LOG_DEBUG + 1), -EINVAL);
	assert_int_equal(nvr_set_log_level(-1), -EINVAL);
	nvr_set_log_hook(NULL, NULL);
}

static void test_env_file(void **state)
{
	char path[] = "/tmp/nvring-test-logfile-XXXXXX";
	char buf[256] = "";
	int fd = mkstemp(path), err, saved;
	ssize_t n;

	assert_true(fd >= 0);
	close(fd);
	char env[128];
	snprintf(env, sizeof(env), "info:%s", path);
	setenv("NVRING_LOG", env, 1);
	nvr_log_reset();
	saved = stderr_to_file(&err);
	nvr_log(NVR_LOG_INFO, "first %d", 1);
	nvr_log(NVR_LOG_DEBUG, "filtered");
	nvr_log(NVR_LOG_ERR, "second");
	assert_int_equal(stderr_restore(saved, err), 0);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	unlink(path);
	assert_true(n > 0);
	assert_string_equal(buf, "nvring: first 1\nnvring: second\n");
	unsetenv("NVRING_LOG");
	nvr_log_reset();
}

static void test_env_stderr_and_null_hook(void **state)
{
	struct seen s = { 0 };
	char buf[128] = "";
	int err, saved;

	setenv("NVRING_LOG", "warn", 1);
	nvr_log_reset();
	nvr_set_log_hook(record, &s);
	saved = stderr_to_file(&err);
	nvr_log(NVR_LOG_WARN, "to the hook");
	assert_int_equal(lseek(err, 0, SEEK_END), 0);
	nvr_set_log_hook(NULL, NULL);       /* back to NVRING_LOG: stderr */
	nvr_log(NVR_LOG_WARN, "to stderr");
	assert_true(pread(err, buf, sizeof(buf) - 1, 0) > 0);
	stderr_restore(saved, err);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.msg, "to the hook");
	assert_string_equal(buf, "nvring: to stderr\n");
	unsetenv("NVRING_LOG");
	nvr_log_reset();
}

static void test_silent_by_default(void **state)
{
	int err, saved;

	saved = stderr_to_file(&err);
	nvr_log(NVR_LOG_ERR, "nobody asked");
	assert_int_equal(nvr_ctrlr_attach("0000:fe:1f.7", NULL, &(struct nvr_ctrlr *){ NULL }),
			 -ENODEV);
	assert_int_equal(stderr_restore(saved, err), 0);
}

static void test_attach_failure_through_hook(void **state)
{
	struct seen s = { 0 };
	struct nvr_ctrlr *c = NULL;
	int err, saved;

	nvr_set_log_hook(record, &s);
	saved = stderr_to_file(&err);
	errno = 1234;
	assert_int_equal(nvr_ctrlr_attach("0000:fe:1f.7", NULL, &c), -ENODEV);
	assert_int_equal(stderr_restore(saved, err), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.level, NVR_LOG_ERR);
	assert_non_null(strstr(s.msg, "no PCI function 0000:fe:1f.7"));
	nvr_set_log_hook(NULL, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_hook_gets_level_and_line, setup),
		cmocka_unit_test_setup(test_threshold_filters, setup),
		cmocka_unit_test_setup(test_env_file, setup),
		cmocka_unit_test_setup(test_env_stderr_and_null_hook, setup),
		cmocka_unit_test_setup(test_silent_by_default, setup),
		cmocka_unit_test_setup(test_attach_failure_through_hook, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
