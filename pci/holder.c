/* SPDX-License-Identifier: MIT */
/*
 * The holder lock of a controller (pci/holder.h).
 */
#include "pci/holder.h"
#include "pci/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

const char *nvr_run_dir(void)
{
	const char *d = getenv("NVRING_RUN_DIR");

	return d && *d ? d : "/run/nvring";
}

static int lock_open(const char *bdf, int flags)
{
	char path[256];

	if (snprintf(path, sizeof(path), "%s/%s.pid", nvr_run_dir(), bdf) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	int fd = open(path, flags | O_CLOEXEC, 0644);

	return fd < 0 ? -errno : fd;
}

/* "PID COMM" from the lock file: the pid (0 if none), @comm filled. */
static int read_holder(int fd, char *comm, size_t n)
{
	char line[128];
	ssize_t r = pread(fd, line, sizeof(line) - 1, 0);
	const char *sp;
	int pid;

	line[r > 0 ? r : 0] = '\0';
	line[strcspn(line, "\n")] = '\0';
	pid = atoi(line);
	sp = strchr(line, ' ');
	snprintf(comm, n, "%s", sp ? sp + 1 : "?");
	return pid > 0 ? pid : 0;
}

int nvr_holder_claim(const char *bdf, int *fd_out)
{
	char comm[64] = "?", line[96];
	int fd, pid = 0, len;

	*fd_out = -1;
	mkdir(nvr_run_dir(), 0755);
	fd = lock_open(bdf, O_RDWR | O_CREAT);
	if (fd < 0)
		return 0;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		/* The holder writes its line right after taking the lock: give
		 * it a moment (at most 100 ms) rather than name nobody. */
		for (int tries = 0; tries < 50 && !(pid = read_holder(fd, comm, sizeof(comm))); tries++)
			usleep(2000);
		close(fd);
		if (pid == getpid())
			return 0;    /* ours already, taken by the shim */
		if (pid)
			nvr_log(NVR_LOG_ERR, "%s is in use by pid %d (%s): one process at a time drives a "
				"controller; stop that process first (or share it as threads of one)",
				bdf, pid, comm);
		else
			nvr_log(NVR_LOG_ERR, "%s is in use by another process (%s/%s.pid is locked); "
				"stop it first", bdf, nvr_run_dir(), bdf);
		return -EBUSY;
	}
	int cf = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);

	if (cf >= 0) {
		ssize_t r = read(cf, comm, sizeof(comm) - 1);

		comm[r > 0 ? r : 0] = '\0';
		comm[strcspn(comm, "\n")] = '\0';
		close(cf);
	}
	len = snprintf(line, sizeof(line), "%d %s\n", (int)getpid(), comm);
	/* A stale line of a dead holder goes first. */
	if (ftruncate(fd, 0) < 0 || pwrite(fd, line, (size_t)len, 0) != len)
		nvr_log(NVR_LOG_WARN, "%s: cannot write %s/%s.pid: %s", bdf, nvr_run_dir(), bdf,
			strerror(errno));
	*fd_out = fd;
	return 0;
}

void nvr_holder_release(int fd)
{
	if (fd < 0)
		return;
	if (ftruncate(fd, 0) < 0) {
		/* the lock going away is what matters */
	}
	close(fd);
}
