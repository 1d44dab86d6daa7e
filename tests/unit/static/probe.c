// SPDX-License-Identifier: MIT
/*
 * tests/unit/static/probe.c — the statically linked program that
 * tests/unit/test_static_loader.c runs directly and through
 * nvring-static-loader (built -static and -static-pie, liburing.a linked in).
 *
 *   probe env ARGS...   print argv, one environment variable and the auxv
 *                       entries a static libc reads, so that the two runs can
 *                       be compared line for line
 *   probe uring PATH    a ring's life against the test's fake owner: setup,
 *                       a NOP submitted, a register call, PATH opened (the
 *                       namespace), fstat'ed, ioctl'ed, stat'ed by path
 *                       and dup'ed, the ring closed; then
 *                       a second ring whose owner dies: its in-flight request
 *                       must come back -ENODEV, never hang
 *   probe forkring      a ring shared across fork(): the child submits on it
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/auxv.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int probe_env(int argc, char **argv)
{
	for (int i = 0; i < argc; i++)
		printf("argv[%d] = %s\n", i, argv[i]);
	const char *v = getenv("PROBE_VAR");
	printf("PROBE_VAR = %s\n", v ? v : "(unset)");
	printf("AT_PHNUM = %lu\n", getauxval(AT_PHNUM));
	printf("AT_PHENT = %lu\n", getauxval(AT_PHENT));
	printf("AT_BASE = %lu\n", getauxval(AT_BASE));
	printf("AT_PAGESZ = %lu\n", getauxval(AT_PAGESZ));
	printf("AT_RANDOM set = %d\n", getauxval(AT_RANDOM) != 0);
	printf("AT_SYSINFO_EHDR set = %d\n", getauxval(AT_SYSINFO_EHDR) != 0);
	/* AT_ENTRY is the program's entry: main's own code is near it */
	long d = (long)getauxval(AT_ENTRY) - (long)(uintptr_t)&probe_env;
	printf("AT_ENTRY near main = %d\n", d > -(1l << 24) && d < (1l << 24));
	const Elf64_Phdr *ph = (const void *)getauxval(AT_PHDR);
	int loads = 0;
	for (unsigned long i = 0; ph && i < getauxval(AT_PHNUM); i++)
		loads += ph[i].p_type == PT_LOAD;
	printf("PT_LOAD in AT_PHDR = %d\n", loads);
	char *m = malloc(1 << 20);   /* brk and mmap both work */
	printf("malloc = %d\n", m != NULL);
	free(m);
	return 0;
}

static int probe_uring(const char *path)
{
	struct io_uring ring;
	int rc = io_uring_queue_init(8, &ring, 0);
	printf("setup = %d\n", rc);
	if (rc < 0)
		return 1;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
	io_uring_prep_nop(sqe);
	sqe->user_data = 7;
	printf("submit = %d\n", io_uring_submit(&ring));
	printf("register_probe = %d\n", io_uring_register_files_update(&ring, 0, NULL, 0));

	int fd = open(path, O_RDWR | O_DIRECT);
	printf("open = %s\n", fd >= 0 ? "fd" : strerror(errno));
	struct stat st;
	if (fd >= 0 && fstat(fd, &st) == 0)
		printf("block device = %d\n", S_ISBLK(st.st_mode));
	uint64_t bytes = 0;
	int lbs = 0;
	if (ioctl(fd, BLKGETSIZE64, &bytes) == 0 && ioctl(fd, BLKSSZGET, &lbs) == 0)
		printf("size = %llu, lba %d\n", (unsigned long long)bytes, lbs);
	if (stat(path, &st) == 0)
		printf("path block device = %d\n", S_ISBLK(st.st_mode));
	int fd2 = dup(fd);
	printf("dup = %s\n", fd2 >= 0 ? "fd" : strerror(errno));
	close(fd2);
	close(fd);
	io_uring_queue_exit(&ring);

	/* the owner dies with a request in flight */
	rc = io_uring_queue_init(8, &ring, 0);
	printf("setup2 = %d\n", rc);
	if (rc < 0)
		return 1;
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_nop(sqe);
	sqe->user_data = 9;
	printf("submit2 = %d\n", io_uring_submit(&ring));
	struct io_uring_cqe *cqe;
	for (int i = 0; i < 2; i++) {
		rc = io_uring_wait_cqe(&ring, &cqe);
		if (rc < 0 && rc != -ENODEV) {
			printf("wait = %d\n", rc);
			break;
		}
		if (rc == 0) {
			printf("cqe %llu res %d\n", (unsigned long long)cqe->user_data, cqe->res);
			io_uring_cqe_seen(&ring, cqe);
		} else if (io_uring_peek_cqe(&ring, &cqe) == 0) {
			printf("cqe %llu res %d\n", (unsigned long long)cqe->user_data, cqe->res);
			io_uring_cqe_seen(&ring, cqe);
		} else {
			printf("wait = %d\n", rc);
		}
	}
	io_uring_queue_exit(&ring);
	return 0;
}

static int probe_forkring(void)
{
	struct io_uring ring;
	int rc = io_uring_queue_init(4, &ring, 0);
	printf("setup = %d\n", rc);
	if (rc < 0)
		return 1;
	pid_t pid = fork();
	if (pid == 0) {
		/* the child submits on the ring it shares with its parent */
		io_uring_prep_nop(io_uring_get_sqe(&ring));
		printf("child submit = %d\n", io_uring_submit(&ring));
		_exit(0);
	}
	int st = -1;
	waitpid(pid, &st, 0);
	printf("child exit = %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	/* (liburing's SQ tail is private memory: the parent's view of the
	 * ring is stale after the child's submit, as with the kernel) */
	io_uring_queue_exit(&ring);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 2 && !strcmp(argv[1], "env"))
		return probe_env(argc, argv);
	if (argc >= 3 && !strcmp(argv[1], "uring"))
		return probe_uring(argv[2]);
	if (argc >= 2 && !strcmp(argv[1], "forkring"))
		return probe_forkring();
	fprintf(stderr, "usage: probe env ARGS... | probe uring PATH | probe forkring\n");
	return 2;
}
