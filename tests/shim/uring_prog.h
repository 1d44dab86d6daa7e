/* SPDX-License-Identifier: MIT */
/*
 * tests/shim/ — liburing helpers for the programs (on top of shim_prog.h).
 * Only liburing 2.3's public API: these programs are what an unmodified
 * application does.
 */
#ifndef NVRING_TESTS_SHIM_URING_PROG_H
#define NVRING_TESTS_SHIM_URING_PROG_H

#include <liburing.h>

#include "shim_prog.h"

/* io_uring_queue_init(ENTRIES, FLAGS); a kernel without io_uring skips. */
static inline void ring_init(struct io_uring *ring, unsigned entries, unsigned flags)
{
	int rc = io_uring_queue_init(entries, ring, flags);

	if (rc == -ENOSYS) {
		note("io_uring is not available: skipped\n");
		exit(PROG_SKIP);
	}
	if (rc < 0) {
		note("io_uring_queue_init(%u, 0x%x): %s\n", entries, flags, strerror(-rc));
		exit(PROG_FAIL);
	}
}

/* A free SQE; the rings here are sized so that running out is a bug. */
static inline struct io_uring_sqe *sqe_get(struct io_uring *ring)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	if (!sqe) {
		note("io_uring_get_sqe: the SQ ring is full\n");
		exit(PROG_FAIL);
	}
	return sqe;
}

/* The ring is not in the state the program expects (a short submit, a
 * missing or foreign CQE): every later check would fail for the same reason,
 * so say so on stdout, where the comparison with the kernel's run shows it,
 * and stop. */
__attribute__((noreturn, format(printf, 1, 2)))
static inline void ring_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(": FAIL (stopping)\n");
	prog_failures++;
	exit(prog_exit());
}

/* Submit, expecting all WANT SQEs consumed, as the kernel does. */
static inline bool submit_n(struct io_uring *ring, int want)
{
	int rc = io_uring_submit(ring);

	if (rc != want)
		ring_fatal("io_uring_submit: %d, expected %d", rc, want);
	return true;
}

/* Wait for N completions whose user_data are indices below NRES; res[i] is
 * the result of index i, order[k] (when not NULL) the index of the k-th CQE.
 * Returns true (anything else is fatal). */
static inline bool reap(struct io_uring *ring, unsigned n, int *res, unsigned nres, unsigned *order)
{
	for (unsigned k = 0; k < n; k++) {
		struct io_uring_cqe *cqe;
		int rc = io_uring_wait_cqe(ring, &cqe);

		if (rc < 0)
			ring_fatal("io_uring_wait_cqe: %d (after %u of %u CQEs)", rc, k, n);
		uint64_t ud = cqe->user_data;

		if (ud >= nres)
			ring_fatal("CQE with user_data %" PRIu64 " (res %d): not one of the %u expected", ud, cqe->res,
				   nres);
		res[ud] = cqe->res;
		if (order)
			order[k] = (unsigned)ud;
		io_uring_cqe_seen(ring, cqe);
	}
	return true;
}

#endif
