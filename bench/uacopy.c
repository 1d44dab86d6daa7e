/* SPDX-License-Identifier: MIT */
/*
 * uacopy — the cost of one copy between user memory and a bounce buffer
 * (abi/uaccess), on the host: memcpy, the process_vm path and the
 * exception-table path, and ur_gather_user()/ur_scatter_user() as the
 * ring calls them (path chosen per call). Not a guest program: run
 * `make build/bench/uacopy && build/bench/uacopy [CALLS]`.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "abi/ring.h"
#include "abi/uaccess.h"

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

enum how { MEMCPY, PVM, FAULT, GATHER, SCATTER };
static const char *const names[] = { "memcpy", "process_vm", "fault-fixup", "gather(auto)",
				     "scatter(auto)" };

static double per_call(enum how h, uint8_t *user, uint8_t *bounce, size_t len, long calls)
{
	struct iovec v = { user, len };
	volatile ssize_t sink = 0;
	double t0 = now_ns();
	for (long i = 0; i < calls; i++) {
		switch (h) {
		case MEMCPY: memcpy(bounce, user, len); sink += bounce[i % len]; break;
		case PVM: sink += ur_pvm_move(false, bounce, len, &v, 1); break;
		case FAULT: sink += ur_fault_move(false, bounce, len, &v, 1); break;
		case GATHER: sink += ur_gather_user(bounce, &v, 1, len); break;
		case SCATTER: sink += ur_scatter_user(&v, 1, bounce, len); break;
		}
	}
	(void)sink;
	return (now_ns() - t0) / (double)calls;
}

int main(int argc, char **argv)
{
	long calls = argc > 1 ? atol(argv[1]) : 200000;
	static const size_t sizes[] = { 64, 4096, 65536 };
	uint8_t *user = aligned_alloc(4096, 65536), *bounce = aligned_alloc(4096, 65536);
	if (!user || !bounce || calls <= 0)
		return 2;
	memset(user, 1, 65536);
	memset(bounce, 2, 65536);
	int fault_ok = ur_uaccess_set_path(UR_UA_FAULT) == 0;
	ur_uaccess_set_path(UR_UA_AUTO);
	printf("uacopy: %ld calls each, ns per call (fault path %s, auto path now %s)\n", calls,
	       fault_ok ? "available" : "unavailable", ur_fault_usable() ? "fault-fixup" : "process_vm");
	printf("%-14s %10s %10s %10s\n", "", "64 B", "4 KiB", "64 KiB");
	for (enum how h = MEMCPY; h <= SCATTER; h++) {
		if (h == FAULT && !fault_ok)
			continue;
		printf("%-14s", names[h]);
		for (unsigned s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
			long n = sizes[s] > 4096 ? calls / 8 : calls;
			per_call(h, user, bounce, sizes[s], n / 10);   /* warm-up */
			printf(" %10.1f", per_call(h, user, bounce, sizes[s], n));
		}
		printf("\n");
	}
	free(user);
	free(bounce);
	return 0;
}
