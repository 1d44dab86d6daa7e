/* SPDX-License-Identifier: MIT */
/*
 * tests/shim/ — helpers shared by the unmodified io_uring programs that run
 * once on the kernel's io_uring and once through `nvring run`, whose stdout
 * tests/vm/shim_progs.sh compares byte for byte. So everything printed here
 * is deterministic: offsets relative to the test region (never the device
 * path, size or an address), results, and checksums of seeded patterns.
 *
 * The test region is the last 16 MiB of the device (or of a regular file,
 * for host runs): the rest of the device belongs to other tests. Every
 * program writes what it later reads, so the region's prior contents do not
 * matter.
 *
 * Exit status, as liburing's own tests: 0 pass, 1 fail, 77 skip.
 */
#ifndef NVRING_TESTS_SHIM_PROG_H
#define NVRING_TESTS_SHIM_PROG_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROG_PASS 0
#define PROG_FAIL 1
#define PROG_SKIP 77

#define REGION_BYTES (16u << 20)
#define BLOCK 4096u

struct dev {
	int fd;
	uint64_t bytes;     /* device (or file) size */
	uint64_t base;      /* byte offset of the test region: bytes - REGION_BYTES */
};

static int prog_failures;

/* One check, one line: "WHAT: ok" or "WHAT: FAIL". */
__attribute__((format(printf, 2, 3)))
static inline bool check(bool ok, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(": %s\n", ok ? "ok" : "FAIL");
	fflush(stdout);
	if (!ok)
		prog_failures++;
	return ok;
}

/* Diagnostics go to stderr: not compared, so they may name paths and sizes. */
__attribute__((format(printf, 1, 2)))
static inline void note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

static inline int prog_exit(void)
{
	printf("result: %s\n", prog_failures ? "FAIL" : "PASS");
	return prog_failures ? PROG_FAIL : PROG_PASS;
}

/* Open argv[1] O_RDWR|O_DIRECT and find the region. Returns 0, or the exit
 * status to leave with (usage or an unusable device fails; a device smaller
 * than two regions skips). */
static inline int dev_open(int argc, char **argv, struct dev *d)
{
	struct stat st;

	if (argc < 2) {
		note("usage: %s DEVICE (a block device or a file of at least 32 MiB)\n", argv[0]);
		return PROG_FAIL;
	}
	d->fd = open(argv[1], O_RDWR | O_DIRECT);
	if (d->fd < 0) {
		note("%s: open %s: %s\n", argv[0], argv[1], strerror(errno));
		return PROG_FAIL;
	}
	if (fstat(d->fd, &st) < 0) {
		note("%s: fstat: %s\n", argv[0], strerror(errno));
		return PROG_FAIL;
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(d->fd, BLKGETSIZE64, &d->bytes) < 0) {
			note("%s: BLKGETSIZE64: %s\n", argv[0], strerror(errno));
			return PROG_FAIL;
		}
	} else {
		d->bytes = (uint64_t)st.st_size;
	}
	if (d->bytes < 2ull * REGION_BYTES) {
		note("%s: %s has %" PRIu64 " bytes, fewer than 32 MiB: skipped\n", argv[0], argv[1],
		     d->bytes);
		return PROG_SKIP;
	}
	d->base = (d->bytes - REGION_BYTES) & ~(uint64_t)(BLOCK - 1);
	note("%s: %s, %" PRIu64 " bytes, region at byte %" PRIu64 "\n", argv[0], argv[1], d->bytes,
	     d->base);
	return 0;
}

/* A 4096-aligned buffer (O_DIRECT); exits the program on failure. */
static inline void *buf_alloc(size_t len)
{
	void *p = NULL;

	if (posix_memalign(&p, BLOCK, len ? len : BLOCK)) {
		note("out of memory (%zu bytes)\n", len);
		exit(PROG_FAIL);
	}
	memset(p, 0xee, len);
	return p;
}

static inline uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* The pattern of region bytes [off, off + len) for TAG (off, len multiples
 * of 8): each 8-byte word depends on its offset and the tag, so data read
 * from the wrong place or an older write never matches. */
static inline void pattern(void *buf, uint64_t off, size_t len, uint32_t tag)
{
	uint64_t *w = buf;

	for (size_t i = 0; i < len / 8; i++)
		w[i] = mix64(((off / 8 + i) << 16) ^ tag);
}

static inline bool pattern_ok(const void *buf, uint64_t off, size_t len, uint32_t tag)
{
	const uint64_t *w = buf;

	for (size_t i = 0; i < len / 8; i++)
		if (w[i] != mix64(((off / 8 + i) << 16) ^ tag))
			return false;
	return true;
}

/* FNV-1a, 64 bit: the checksum printed for data. */
static inline uint64_t fnv64(const void *buf, size_t len, uint64_t h)
{
	const unsigned char *p = buf;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

#define FNV_INIT 0xcbf29ce484222325ull

#endif
