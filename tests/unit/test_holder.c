/* SPDX-License-Identifier: MIT */
/*
 * pci/holder.c: the lock that names the process driving a controller
 * (issue 8, item 11: "device held by another process"). Runs in a tmpdir
 * given as NVRING_RUN_DIR; the other process is a forked child.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nvring/nvring.h"
#include "pci/holder.h"

#define BDF "0000:00:02.0"

static char dir[64], logged[1024];
static int nlogged;

static void hook(void *arg, int level, const char *msg)
{
	(void)arg;
	(void)level;
	snprintf(logged, sizeof(logged), "%s", msg);
	nlogged++;
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/nvring-run-XXXXXX");
	assert_non_null(mkdtemp(dir));
	setenv("NVRING_RUN_DIR", dir, 1);
	nvr_set_log_hook(hook, NULL);
	logged[0] = '\0';
	nlogged = 0;
	return 0;
}

static int teardown(void **state)
{
	char p[128];

	(void)state;
	snprintf(p, sizeof(p), "%s/%s.pid", dir, BDF);
	unlink(p);
	rmdir(dir);
	unsetenv("NVRING_RUN_DIR");
	nvr_set_log_hook(NULL, NULL);
	return 0;
}

static void read_file(char *buf, size_t n)
{
	char p[128];
	int fd;
	ssize_t r;

	snprintf(p, sizeof(p), "%s/%s.pid", dir, BDF);
	fd = open(p, O_RDONLY);
	assert_true(fd >= 0);
	r = read(fd, buf, n - 1);
	buf[r > 0 ? r : 0] = '\0';
	close(fd);
}

/* A child that takes the lock and waits to be killed; its pid. */
static pid_t child_holder(void)
{
	int p[2];
	char c;

	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		int fd;

		close(p[0]);
		if (nvr_holder_claim(BDF, &fd) != 0 || fd < 0)
			_exit(1);
		if (write(p[1], "x", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), 1);
	close(p[0]);
	return pid;
}

/* Another process holds it: -EBUSY and one line with its pid and the fix. */
static void fault_limits_held_by_pid(void **state)
{
	char want[64];
	int fd, st;
	pid_t pid = child_holder();

	(void)state;
	assert_int_equal(nvr_holder_claim(BDF, &fd), -EBUSY);
	assert_int_equal(fd, -1);
	assert_int_equal(nlogged, 1);
	snprintf(want, sizeof(want), "in use by pid %d (", (int)pid);
	if (!strstr(logged, want) || !strstr(logged, BDF) || !strstr(logged, "stop that process"))
		fail_msg("message lacks the holder's pid or the fix: '%s'", logged);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &st, 0), pid);
}

/* A killed holder's file names a dead pid: the next claim takes it over
 * and writes its own pid; release empties it. */
static void fault_limits_stale_lock_taken_over(void **state)
{
	char buf[128], want[32];
	int fd, st;
	pid_t pid = child_holder();

	(void)state;
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	read_file(buf, sizeof(buf));
	assert_int_equal(atoi(buf), (int)pid);   /* stale: the dead child's line */
	assert_int_equal(nvr_holder_claim(BDF, &fd), 0);
	assert_true(fd >= 0);
	assert_int_equal(nlogged, 0);
	read_file(buf, sizeof(buf));
	snprintf(want, sizeof(want), "%d ", (int)getpid());
	assert_int_equal(strncmp(buf, want, strlen(want)), 0);
	nvr_holder_release(fd);
	read_file(buf, sizeof(buf));
	assert_string_equal(buf, "");
}

/* The lock already held by this process through another descriptor (the
 * shim claims it before attaching): 0, no second lock, nothing logged. */
static void fault_limits_own_lock(void **state)
{
	char p[128], line[32];
	int fd, mine;

	(void)state;
	snprintf(p, sizeof(p), "%s/%s.pid", dir, BDF);
	mine = open(p, O_RDWR | O_CREAT, 0644);
	assert_true(mine >= 0);
	assert_int_equal(flock(mine, LOCK_EX | LOCK_NB), 0);
	snprintf(line, sizeof(line), "%d shim\n", (int)getpid());
	assert_int_equal(pwrite(mine, line, strlen(line), 0), (ssize_t)strlen(line));
	assert_int_equal(nvr_holder_claim(BDF, &fd), 0);
	assert_int_equal(fd, -1);
	assert_int_equal(nlogged, 0);
	close(mine);
}

/* No usable run directory: no lock, and no failure (VFIO's own exclusion
 * still holds). */
static void fault_limits_no_run_dir(void **state)
{
	int fd;

	(void)state;
	setenv("NVRING_RUN_DIR", "/proc/nvring-cannot-exist", 1);
	assert_int_equal(nvr_holder_claim(BDF, &fd), 0);
	assert_int_equal(fd, -1);
	nvr_holder_release(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(fault_limits_held_by_pid, setup, teardown),
		cmocka_unit_test_setup_teardown(fault_limits_stale_lock_taken_over, setup, teardown),
		cmocka_unit_test_setup_teardown(fault_limits_own_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(fault_limits_no_run_dir, setup, teardown),
	};

	return cmocka_run_group_tests_name("holder", tests, NULL, NULL);
}
