/* SPDX-License-Identifier: MIT */
/*
 * uring_diffstream DEVICE — tests/vm/difftest's seeded SQE streams from a
 * liburing program: the same generator (tests/vm/diff_gen.h), one ring per
 * stream set up, registered, filled and reaped through liburing 2.3's API.
 * shim_progs.sh runs it on the kernel's device and through `nvring run` on
 * the vfio twin; its stdout (per stream: SQEs, batches, CQEs and a digest
 * of every submit result, every CQE and every byte of the buffers after
 * each batch; then the test region's digest) must be the same.
 *
 * difftest drives both rings in one process with raw system calls; this
 * is the path an application takes (liburing's functions -> the shim's
 * liburing layer). Only the streams where every request posts exactly one
 * CQE run here (no CQE_SKIP_SUCCESS, no SQPOLL), so a side can tell on its
 * own when a batch is done, and not the IOPOLL ones: once, in a make test
 * boot without hugepages, the kernel's own digest of the SQE128/CQE32/IOPOLL
 * stream differed from every other run of it (not reproduced in six more;
 * difftest compares IOPOLL rings side by side instead). That leaves the
 * plain, SQE128/CQE32 and big-transfer configurations. NVRING_SEED=N picks the seed (default 20261201);
 * NVRING_DIFF_TRACE=i prints every CQE of stream i.
 */
#include <liburing.h>   /* before diff_gen.h: its io_uring.h guards the uapi one */
#include <linux/fs.h>
#include <sys/mman.h>

#include "shim_prog.h"
#include "../vm/diff_gen.h"

#define WAIT_SEC 10

static uint8_t *arena, *hole;
static struct iovec *iovs;
static int devfd;
static struct dgen G;
static bool trace;   /* NVRING_DIFF_TRACE=stream: every CQE of that stream */

struct rec { uint64_t ud; int32_t res; uint32_t flags; };
static struct rec cqs[DG_MAX_OPS * 2];

static int rec_cmp(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;
	return x->ud < y->ud ? -1 : x->ud > y->ud;
}

/* One batch: submit its pieces through io_uring_submit(), reap every CQE
 * (each request posts one), fold it all into @h. False on a stuck ring. */
static bool run_batch(struct io_uring *ring, const unsigned *pieces, unsigned np, uint64_t *h)
{
	struct dg_mem m = { devfd, arena, hole, iovs };
	unsigned hole_cmp = dg_mem_prepare(&G, &m, G.batches);
	unsigned first = 0, ncq = 0;
	for (unsigned p = 0; p < np; p++) {
		for (unsigned i = first; i < first + pieces[p]; i++) {
			struct io_uring_sqe *q = io_uring_get_sqe(ring);
			if (!q) {
				note("stream batch %u: no free SQE\n", G.batches);
				return false;
			}
			memset(q, 0, sizeof(*q));
			dg_put_sqe(q, &G.ops[i], &m);
		}
		first += pieces[p];
		for (int tries = 0; io_uring_sq_ready(ring) && tries < 4 * DG_MAX_OPS; tries++) {
			int ret = io_uring_submit(ring);
			dg_mix(h, (uint64_t)(int64_t)ret);
			if (ret < 0)
				break;
		}
	}
	time_t t0 = time(NULL);
	while (ncq < G.nops) {
		struct io_uring_cqe *c;
		struct __kernel_timespec ts = { 0, 50 * 1000 * 1000 };
		int ret = io_uring_wait_cqe_timeout(ring, &c, &ts);
		if (ret == -ETIME || ret == -EINTR) {
			if (time(NULL) - t0 > WAIT_SEC) {
				note("batch %u: %u of %u CQEs after %d s\n", G.batches, ncq, G.nops, WAIT_SEC);
				return false;
			}
			continue;
		}
		if (ret < 0) {
			note("io_uring_wait_cqe_timeout: %s\n", strerror(-ret));
			return false;
		}
		unsigned head, n = 0;
		io_uring_for_each_cqe(ring, head, c) {
			if (ncq < sizeof(cqs) / sizeof(cqs[0]))
				cqs[ncq++] = (struct rec){ c->user_data, c->res, c->flags };
			n++;
		}
		io_uring_cq_advance(ring, n);
	}
	qsort(cqs, ncq, sizeof(cqs[0]), rec_cmp);
	if (trace)
		for (unsigned i = 0; i < ncq; i++) {
			char d[320];
			const struct gop *o = NULL;
			for (unsigned j = 0; j < G.nops && !o; j++)
				if (G.ops[j].ud == cqs[i].ud)
					o = &G.ops[j];
			if (o)
				dg_describe(o, d, sizeof(d));
			printf("  b%u %s -> %d\n", G.batches, o ? d : "?", cqs[i].res);
		}
	for (unsigned i = 0; i < ncq; i++) {
		dg_mix(h, cqs[i].ud);
		dg_mix(h, (uint64_t)(uint32_t)cqs[i].res | (uint64_t)cqs[i].flags << 32);
	}
	*h = fnv64(arena, G.bump, *h);
	*h = fnv64(hole, hole_cmp, *h);
	return true;
}

/* One request at a time (the region's pattern, and reading it back). */
static int sync_rw(struct io_uring *ring, bool wr, uint64_t off, uint32_t len)
{
	struct io_uring_sqe *q = io_uring_get_sqe(ring);
	if (wr)
		io_uring_prep_write(q, devfd, arena, len, off);
	else
		io_uring_prep_read(q, devfd, arena, len, off);
	struct io_uring_cqe *c;
	int ret = io_uring_submit_and_wait(ring, 1);
	if (ret < 0 || (ret = io_uring_wait_cqe(ring, &c)) < 0)
		return ret;
	ret = c->res;
	io_uring_cqe_seen(ring, c);
	return ret;
}

int main(int argc, char **argv)
{
	struct dev d;
	int rc = dev_open(argc, argv, &d);
	if (rc)
		return rc;
	int lbs = 0;
	struct stat st;
	if (fstat(d.fd, &st) || !S_ISBLK(st.st_mode) || ioctl(d.fd, BLKSSZGET, &lbs) || lbs <= 0) {
		note("%s: not a block device: skipped\n", argv[1]);
		return PROG_SKIP;
	}
	devfd = d.fd;
	const char *s = getenv("NVRING_SEED");
	uint64_t seed = s && *s ? strtoull(s, NULL, 0) : 20261201;
	arena = mmap(NULL, DG_ARENA, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	hole = mmap(NULL, DG_HOLE_SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	iovs = calloc(DG_MAX_SEGS, sizeof(*iovs));
	if (arena == MAP_FAILED || hole == MAP_FAILED || !iovs ||
	    mprotect(hole + 4096, DG_HOLE_SZ - 4096, PROT_NONE)) {
		note("out of memory\n");
		return PROG_FAIL;
	}
	printf("seed %llu\n", (unsigned long long)seed);

	struct io_uring ring;
	if ((rc = io_uring_queue_init(8, &ring, 0)) < 0) {
		note("io_uring_queue_init: %s\n", strerror(-rc));
		return rc == -ENOSYS ? PROG_SKIP : PROG_FAIL;
	}
	uint64_t rng = seed | 1;
	unsigned bad = 0;
	for (uint64_t off = d.bytes - DG_REGION; off < d.bytes; off += 128 << 10) {
		for (unsigned i = 0; i < (128u << 10); i += 8) {
			uint64_t v = dg_next(&rng);
			memcpy(arena + i, &v, 8);
		}
		bad += sync_rw(&ring, true, off, 128 << 10) != 128 << 10;
	}
	check(!bad, "the last %u MiB written with the seed's pattern", DG_REGION >> 20);
	io_uring_queue_exit(&ring);

	for (unsigned idx = 0; idx < DG_NSTREAMS; idx++) {
		const struct dg_stream_cfg *c = &dg_streams[idx];
		if (c->skip || (c->flags & (IORING_SETUP_SQPOLL | IORING_SETUP_IOPOLL)))
			continue;
		struct io_uring_params p = { .flags = c->flags, .cq_entries = c->cq };
		if ((rc = io_uring_queue_init_params(c->entries, &ring, &p)) < 0) {
			check(false, "stream %u: io_uring_queue_init_params(%u, 0x%x): %d", idx, c->entries,
			      c->flags, rc);
			continue;
		}
		struct iovec bufs[DG_NBUFS] = {
			{ arena, DG_ARENA / 2 }, { arena + DG_BUF1_OFF, DG_ARENA - DG_BUF1_OFF }, { NULL, 0 },
		};
		int files[DG_NFILES] = { devfd, -1, devfd };
		rc = io_uring_register_buffers(&ring, bufs, DG_NBUFS);
		if (!rc)
			rc = io_uring_register_files(&ring, files, DG_NFILES);
		if (rc) {
			check(false, "stream %u: register: %d", idx, rc);
			io_uring_queue_exit(&ring);
			continue;
		}
		const char *t = getenv("NVRING_DIFF_TRACE");
		trace = t && *t && strtoul(t, NULL, 0) == idx;
		dg_stream_init(&G, seed, idx, d.bytes, (uint32_t)lbs, arena);
		uint64_t h = seed ^ idx;
		unsigned pieces[3], np, cqes = 0;
		bool ok = true;
		while (ok && dg_stream_next(&G, pieces, &np)) {
			ok = run_batch(&ring, pieces, np, &h);
			cqes += G.nops;
		}
		check(ok, "stream %u (entries %u flags 0x%x): %u SQEs in %u batches, %u CQEs, digest %016llx",
		      idx, c->entries, c->flags, G.sqes, G.batches, cqes, (unsigned long long)h);
		io_uring_queue_exit(&ring);
	}

	/* the region read back */
	if ((rc = io_uring_queue_init(8, &ring, 0)) < 0)
		return PROG_FAIL;
	uint64_t h = FNV_INIT;
	bool ok = true;
	for (uint64_t off = d.bytes - DG_REGION; off < d.bytes && ok; off += 128 << 10) {
		ok = sync_rw(&ring, false, off, 128 << 10) == 128 << 10;
		h = fnv64(arena, 128 << 10, h);
	}
	check(ok, "region digest %016llx", (unsigned long long)h);
	io_uring_queue_exit(&ring);
	return prog_exit();
}
