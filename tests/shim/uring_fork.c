/* SPDX-License-Identifier: MIT */
/*
 * uring_fork DEVICE — the device is opened, then the process forks: the
 * child sets up its own ring on the inherited descriptor, writes and reads
 * back 64 KiB and exits with the result; the parent waits, checks the
 * child's exit status, then sets up its ring and reads what the child wrote
 * (so both reached the same device) and does its own write and read.
 */
#include <sys/wait.h>

#include "uring_prog.h"

#define TAG 0x666b   /* "fk" */
#define OFF (15u << 20)
#define LEN (64u << 10)

/* A write of LEN at region offset OFF linked to a read of it back. */
static bool write_read(struct io_uring *ring, const struct dev *d, uint64_t off, uint32_t tag, uint64_t *sum)
{
	char *w = buf_alloc(LEN), *r = buf_alloc(LEN);
	int res[2] = { 0 };

	pattern(w, off, LEN, tag);
	struct io_uring_sqe *sqe = sqe_get(ring);
	io_uring_prep_write(sqe, d->fd, w, LEN, d->base + off);
	sqe->flags |= IOSQE_IO_LINK;
	sqe->user_data = 0;
	sqe = sqe_get(ring);
	io_uring_prep_read(sqe, d->fd, r, LEN, d->base + off);
	sqe->user_data = 1;
	bool ok = submit_n(ring, 2) && reap(ring, 2, res, 2, NULL) && res[0] == (int)LEN && res[1] == (int)LEN &&
		  !memcmp(w, r, LEN);
	*sum = fnv64(r, LEN, FNV_INIT);
	free(w);
	free(r);
	return ok;
}

int main(int argc, char **argv)
{
	struct dev d;
	struct io_uring ring;
	uint64_t sum = 0;
	int rc = dev_open(argc, argv, &d);

	if (rc)
		return rc;
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0) {
		check(false, "fork");
		return prog_exit();
	}
	if (pid == 0) {
		/* Child: prints nothing (its output would interleave); exit 0, 1 or 77. */
		rc = io_uring_queue_init(4, &ring, 0);
		if (rc < 0) {
			note("child: io_uring_queue_init: %s\n", strerror(-rc));
			_exit(rc == -ENOSYS ? PROG_SKIP : PROG_FAIL);
		}
		bool ok = write_read(&ring, &d, OFF, TAG, &sum);
		io_uring_queue_exit(&ring);
		_exit(ok ? 0 : PROG_FAIL);
	}
	int st = 0;
	pid_t w = waitpid(pid, &st, 0);
	if (w == pid && WIFEXITED(st) && WEXITSTATUS(st) == PROG_SKIP)
		return PROG_SKIP;
	check(w == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: ring, linked write and read: exit %d",
	      WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));

	ring_init(&ring, 4, 0);
	char *r = buf_alloc(LEN);
	struct io_uring_sqe *sqe = sqe_get(&ring);
	io_uring_prep_read(sqe, d.fd, r, LEN, d.base + OFF);
	sqe->user_data = 0;
	int res = 0;
	bool ok = submit_n(&ring, 1) && reap(&ring, 1, &res, 1, NULL);
	check(ok && res == (int)LEN && pattern_ok(r, OFF, LEN, TAG), "parent reads the child's data: res %d, data %016" PRIx64,
	      res, fnv64(r, LEN, FNV_INIT));
	ok = write_read(&ring, &d, OFF + LEN, TAG ^ 1, &sum);
	check(ok, "parent: its own linked write and read: data %016" PRIx64, sum);
	io_uring_queue_exit(&ring);
	return prog_exit();
}
