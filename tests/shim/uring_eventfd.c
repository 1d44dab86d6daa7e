/* SPDX-License-Identifier: MIT */
/*
 * uring_eventfd DEVICE — io_uring_register_eventfd: a completed write, then
 * a completed read, each signal the eventfd once (read(2) of it returns 1
 * after each); after io_uring_unregister_eventfd a completion leaves it
 * unsignalled (a non-blocking read gets EAGAIN).
 */
#include <sys/eventfd.h>

#include "uring_prog.h"

#define TAG 0x6576   /* "ev" */
#define OFF (11u << 20)

/* The eventfd's counter (reset by reading it), or -errno. */
static long long efd_take(int efd)
{
	eventfd_t v = 0;

	if (eventfd_read(efd, &v) < 0)
		return -errno;
	return (long long)v;
}

static bool one_io(struct io_uring *ring, bool write, int fd, void *buf, uint64_t off, int *res)
{
	struct io_uring_sqe *sqe = sqe_get(ring);

	if (write)
		io_uring_prep_write(sqe, fd, buf, BLOCK, off);
	else
		io_uring_prep_read(sqe, fd, buf, BLOCK, off);
	sqe->user_data = 0;
	return submit_n(ring, 1) && reap(ring, 1, res, 1, NULL);
}

int main(int argc, char **argv)
{
	struct dev d;
	struct io_uring ring;
	int res = 0;
	int rc = dev_open(argc, argv, &d);

	if (rc)
		return rc;
	ring_init(&ring, 4, 0);
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!check(efd >= 0, "eventfd"))
		return prog_exit();
	rc = io_uring_register_eventfd(&ring, efd);
	check(rc == 0, "register_eventfd: %d", rc);
	long long v = efd_take(efd);
	check(v == -EAGAIN, "eventfd before any completion: %lld", v);

	char *buf = buf_alloc(BLOCK);
	pattern(buf, OFF, BLOCK, TAG);
	bool ok = one_io(&ring, true, d.fd, buf, d.base + OFF, &res);
	check(ok && res == BLOCK, "write: res %d", res);
	v = efd_take(efd);
	check(v == 1, "eventfd after the write's completion: %lld", v);

	memset(buf, 0, BLOCK);
	ok = one_io(&ring, false, d.fd, buf, d.base + OFF, &res);
	check(ok && res == BLOCK && pattern_ok(buf, OFF, BLOCK, TAG), "read: res %d, data %016" PRIx64, res,
	      fnv64(buf, BLOCK, FNV_INIT));
	v = efd_take(efd);
	check(v == 1, "eventfd after the read's completion: %lld", v);

	rc = io_uring_unregister_eventfd(&ring);
	check(rc == 0, "unregister_eventfd: %d", rc);
	ok = one_io(&ring, false, d.fd, buf, d.base + OFF, &res);
	check(ok && res == BLOCK, "read after unregister: res %d", res);
	v = efd_take(efd);
	check(v == -EAGAIN, "eventfd after unregister and a completion: %lld", v);
	close(efd);
	io_uring_queue_exit(&ring);
	return prog_exit();
}
