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

/* Submit, expecting WANT SQEs consumed. */
static inline bool submit_n(struct io_uring *ring, int want)
{
	int rc = io_uring_submit(ring);

	if (rc != want)
		note("io_uring_submit: %d, expected %d\n", rc, want);
	return rc == want;
}

/* Wait for N completions whose user_data are indices below NRES; res[i] is
 * the result of index i, order[k] (when not NULL) the index of the k-th CQE.
 * Returns true when all N arrived with valid indices. */
static inline bool reap(struct io_uring *ring, unsigned n, int *res, unsigned nres, unsigned *order)
{
	for (unsigned k = 0; k < n; k++) {
		struct io_uring_cqe *cqe;
		int rc = io_uring_wait_cqe(ring, &cqe);

		if (rc < 0) {
			note("io_uring_wait_cqe: %s (after %u of %u CQEs)\n", strerror(-rc), k, n);
			return false;
		}
		uint64_t ud = cqe->user_data;

		if (ud >= nres) {
			note("CQE with user_data %" PRIu64 " (res %d): not one of ours\n", ud, cqe->res);
			io_uring_cqe_seen(ring, cqe);
			return false;
		}
		res[ud] = cqe->res;
		if (order)
			order[k] = (unsigned)ud;
		io_uring_cqe_seen(ring, cqe);
	}
	return true;
}

#endif
