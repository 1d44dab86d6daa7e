/* SPDX-License-Identifier: MIT */
/*
 * What the hot-remove VM tests share: finding the controller to remove
 * (the last one of its kind not behind blkdebug, under a pcie-root-port),
 * asking the host for QMP device_del (qemu/run --qmp), and waiting for the
 * PCI function to leave sysfs. Header only: everything static inline.
 */
#ifndef NVRING_TESTS_VM_HOTREMOVE_H
#define NVRING_TESTS_VM_HOTREMOVE_H

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Word @idx (0-based) of the space-separated list in $@var. */
static inline bool hr_word(const char *var, int idx, char *out, size_t len)
{
	const char *s = getenv(var);

	for (int i = 0; s && *s; i++) {
		size_t n;

		s += strspn(s, " ");
		n = strcspn(s, " ");
		if (!n)
			break;
		if (i == idx) {
			snprintf(out, len, "%.*s", (int)n, s);
			return true;
		}
		s += n;
	}
	return false;
}

static inline bool hr_in_list(const char *var, const char *word)
{
	char w[64];

	for (int i = 0; hr_word(var, i, w, sizeof(w)); i++)
		if (!strcmp(w, word))
			return true;
	return false;
}

/*
 * The controller to remove from list $@list (NVRING_BDFS or
 * NVRING_KERNEL_DEVS): of those not in $@blk (the blkdebug ones), the last
 * (@from_end 0) or the one @from_end places before it; its QEMU device id
 * from $@ids at the same index. False if there is none, or no QMP
 * (NVRING_QMP unset).
 */
static inline bool hr_pick(const char *list, const char *blk, const char *ids, int from_end,
			   char *name, size_t nlen, char *id, size_t idlen)
{
	char w[64];
	int idx[32], n = 0;

	if (!getenv("NVRING_QMP"))
		return false;
	for (int i = 0; n < 32 && hr_word(list, i, w, sizeof(w)); i++)
		if (!hr_in_list(blk, w))
			idx[n++] = i;
	if (from_end >= n)
		return false;
	return hr_word(list, idx[n - 1 - from_end], name, nlen) &&
	       hr_word(ids, idx[n - 1 - from_end], id, idlen);
}

/* Is PCI function @bdf behind a bridge (a root port), i.e. not on bus 00? */
static inline bool hr_behind_port(const char *bdf)
{
	return strlen(bdf) >= 7 && strncmp(bdf + 5, "00", 2) != 0;
}

/* Ask the host (qemu/run --qmp) to take device @id away. */
static inline void hr_device_del(const char *id)
{
	printf("@@nvring-qmp {\"execute\":\"device_del\",\"arguments\":{\"id\":\"%s\"}}\n", id);
	fflush(stdout);
}

static inline double hr_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline bool hr_sysfs_present(const char *bdf)
{
	char path[96];

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s", bdf);
	return access(path, F_OK) == 0;
}

/* Seconds until /sys/bus/pci/devices/@bdf is gone, or -1 after @tmo. */
static inline double hr_wait_gone(const char *bdf, double tmo)
{
	double t0 = hr_now();

	while (hr_sysfs_present(bdf)) {
		if (hr_now() - t0 > tmo)
			return -1;
		usleep(20000);
	}
	return hr_now() - t0;
}

#endif
