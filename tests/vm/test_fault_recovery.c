/* SPDX-License-Identifier: MIT */
/*
 * Timeouts and resets on QEMU's controller, through the io_uring ring ABI
 * (liburing's struct io_uring over nvring: nvr_uring_queue_init()).
 *
 *  - fault_timeout_*: entry $NVRING_SLOW_INDEX of $NVRING_BDFS (boot F) is a
 *    vfio controller whose drive is
 *    QEMU's null-co with a fixed latency ($NVRING_SLOW_LATENCY_MS, ~2 s):
 *    every I/O takes that long, admin commands do not. With an I/O timeout
 *    above the latency nothing times out; with one a little below it, the
 *    Abort goes out (QEMU 7.2 never aborts) and the command then completes
 *    by itself; with one far below, every attempt is aborted and then reset
 *    away, and after the first send and 5 retries the read ends with -EIO
 *    (Linux: "host aborted", BLK_STS_IOERR), within a bound.
 *  - fault_reset_*: on controller 0, QD32 writes of seeded data through the
 *    ring while another thread resets the controller (nvr_ctrlr_reset())
 *    three times: every write completes in full and the data read back
 *    afterwards is what was written.
 * Skips what the boot lacks (no slow controller outside the fault boot).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <stdio.h>
#include <unistd.h>

#include <cmocka.h>
#include <liburing.h>

#include <nvring/nvring.h>
#include <nvring/uring.h>

#define BS 4096u

/* Seeded bytes (xorshift64*): the same on every run. */
static void fill_seeded(uint64_t *s, uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		*s ^= *s >> 12;
		*s ^= *s << 25;
		*s ^= *s >> 27;
		p[i] = (uint8_t)((*s * 0x2545f4914f6cdd1dull) >> 56);
	}
}

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct rig {
	struct nvr_ctrlr *c;
	struct io_uring ring;
	int nsfd;
	uint8_t *mem;
	size_t memlen;
};

static void rig_up(struct rig *g, const char *bdf, uint32_t tmo_ms, unsigned depth, size_t memlen)
{
	struct nvr_ctrlr_opts o = { .io_timeout_ms = tmo_ms };

	memset(g, 0, sizeof(*g));
	assert_int_equal(nvr_ctrlr_attach(bdf, &o, &g->c), 0);
	g->nsfd = nvr_ns_open(g->c, 1);
	assert_true(g->nsfd >= 0);
	assert_int_equal(nvr_uring_queue_init(g->c, depth, &g->ring, NULL), 0);
	g->memlen = memlen;
	/* DMA memory, registered: no-IOMMU mode refuses to register plain
	 * pages (not physically contiguous) */
	assert_int_equal(nvr_dma_alloc(g->c, memlen, (void **)&g->mem), 0);
	struct iovec iov = { g->mem, memlen };
	assert_int_equal(nvr_uring_register(g->ring.ring_fd, IORING_REGISTER_BUFFERS, &iov, 1), 0);
	assert_int_equal(nvr_uring_register(g->ring.ring_fd, IORING_REGISTER_FILES, &g->nsfd, 1), 0);
}

static void rig_down(struct rig *g)
{
	uint64_t t0 = ms_now();

	nvr_uring_queue_exit(&g->ring);
	assert_true(ms_now() - t0 < 60000);   /* close() is bounded */
	assert_int_equal(nvr_dma_free(g->c, g->mem), 0);
	nvr_ns_close(g->nsfd);
	assert_int_equal(nvr_ctrlr_detach(g->c), 0);
}

/* One READ_FIXED of @len at @off; its CQE's res. */
static int read_one(struct rig *g, uint64_t off, unsigned len)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&g->ring);
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	int res = 0;

	io_uring_prep_read_fixed(sqe, 0, g->mem, len, off, 0);
	sqe->flags |= IOSQE_FIXED_FILE;
	sqe->user_data = 7;
	assert_int_equal(nvr_uring_submit_and_wait(&g->ring, 1), 1);
	io_uring_for_each_cqe(&g->ring, head, cqe) {
		assert_int_equal(cqe->user_data, 7);
		res = cqe->res;
		n++;
	}
	io_uring_cq_advance(&g->ring, n);
	assert_int_equal(n, 1);
	return res;
}

/* The slow controller: entry $NVRING_SLOW_INDEX of $NVRING_BDFS (boot F). */
static const char *slow_bdf(uint32_t *lat_ms)
{
	static char bdf[32];
	const char *all = getenv("NVRING_BDFS");
	const char *idx = getenv("NVRING_SLOW_INDEX");
	const char *lat = getenv("NVRING_SLOW_LATENCY_MS");

	if (!all || !idx || !lat)
		return NULL;
	int want = atoi(idx), k = 0, used;
	while (sscanf(all, "%31s%n", bdf, &used) == 1) {
		if (k++ == want) {
			*lat_ms = (uint32_t)strtoul(lat, NULL, 10);
			return bdf;
		}
		all += used;
	}
	return NULL;
}

/* Timeout above the latency: slow, not lost. */
static void fault_timeout_slow_not_lost(void **state)
{
	uint32_t lat;
	const char *bdf = slow_bdf(&lat);
	struct rig g;

	if (!bdf)
		skip();
	rig_up(&g, bdf, lat * 2, 8, BS);
	uint64_t t0 = ms_now();
	assert_int_equal(read_one(&g, 0, BS), (int)BS);
	assert_true(ms_now() - t0 >= lat);
	assert_int_equal(nvr_ctrlr_resets(g.c), 0);
	rig_down(&g);
}

/* Timeout a little below the latency: Abort sent (not honoured), then
 * the command completes by itself before the second expiry. */
static void fault_timeout_abort_then_completes(void **state)
{
	uint32_t lat;
	const char *bdf = slow_bdf(&lat);
	struct rig g;

	if (!bdf)
		skip();
	rig_up(&g, bdf, lat * 3 / 4, 8, BS);
	assert_int_equal(read_one(&g, 0, BS), (int)BS);
	assert_int_equal(nvr_ctrlr_resets(g.c), 0);
	rig_down(&g);
}

/* Timeout far below: every attempt aborted, then reset; -EIO after the
 * first send and 5 retries, within a bound; the ring still works (and
 * closes) afterwards. */
static void fault_timeout_retries_exhausted(void **state)
{
	uint32_t lat;
	const char *bdf = slow_bdf(&lat);
	struct rig g;

	if (!bdf)
		skip();
	rig_up(&g, bdf, lat / 8 ? lat / 8 : 1, 8, BS);
	uint64_t t0 = ms_now();
	assert_int_equal(read_one(&g, 0, BS), -EIO);
	uint64_t took = ms_now() - t0;
	print_message("retries exhausted after %llu ms, %llu resets\n",
		      (unsigned long long)took, (unsigned long long)nvr_ctrlr_resets(g.c));
	assert_int_equal(nvr_ctrlr_resets(g.c), 6);
	assert_true(took < 6 * (2 * lat + 5000));
	rig_down(&g);
}

struct resetter {
	struct nvr_ctrlr *c;
	int rc[3];
	volatile int go;
};

static void *reset_thread(void *arg)
{
	struct resetter *r = arg;

	while (!r->go)
		;
	for (int i = 0; i < 3; i++) {
		usleep(40000);
		r->rc[i] = nvr_ctrlr_reset(r->c);
	}
	return NULL;
}

/* QD32 writes through the ring with three resets meanwhile. */
static void fault_reset_ring_qd32(void **state)
{
	const char *bdf = getenv("NVRING_BDFS");
	char first[32];
	struct rig g;
	uint64_t seed = 0x5eed0008;
	const unsigned nblk = 512;   /* 2 MiB in 4 KiB writes */

	/* not in boot F: its controllers 0 and 1 are hot-removed by then */
	if (!bdf || sscanf(bdf, "%31s", first) != 1 || getenv("NVRING_SLOW_INDEX"))
		skip();
	rig_up(&g, first, 0, 64, (size_t)nblk * BS * 2);
	uint8_t *wr = g.mem, *rd = g.mem + (size_t)nblk * BS;
	fill_seeded(&seed, wr, (size_t)nblk * BS);

	struct resetter r = { .c = g.c };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, reset_thread, &r), 0);
	unsigned sent = 0, done = 0, bad = 0;
	r.go = 1;
	uint64_t deadline = ms_now() + 120000;
	while (done < nblk && ms_now() < deadline) {
		while (sent < nblk && sent - done < 32) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&g.ring);
			io_uring_prep_write_fixed(sqe, 0, wr + (size_t)sent * BS, BS,
						  (uint64_t)sent * BS, 0);
			sqe->flags |= IOSQE_FIXED_FILE;
			sqe->user_data = sent++;
		}
		assert_true(nvr_uring_submit_and_wait(&g.ring, 1) >= 0);
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		io_uring_for_each_cqe(&g.ring, head, cqe) {
			if (cqe->res != (int)BS)
				bad++;
			n++;
		}
		io_uring_cq_advance(&g.ring, n);
		done += n;
	}
	pthread_join(t, NULL);
	assert_int_equal(done, nblk);
	assert_int_equal(bad, 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(r.rc[i], 0);
	assert_int_equal(nvr_ctrlr_resets(g.c), 3);
	for (unsigned i = 0; i < nblk; i += 64) {   /* read back, 256 KiB each */
		struct io_uring_sqe *sqe = io_uring_get_sqe(&g.ring);
		io_uring_prep_read_fixed(sqe, 0, rd + (size_t)i * BS, 64 * BS, (uint64_t)i * BS, 0);
		sqe->flags |= IOSQE_FIXED_FILE;
		assert_int_equal(nvr_uring_submit_and_wait(&g.ring, 1), 1);
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		io_uring_for_each_cqe(&g.ring, head, cqe) {
			assert_int_equal(cqe->res, (int)(64 * BS));
			n++;
		}
		io_uring_cq_advance(&g.ring, n);
	}
	assert_memory_equal(rd, wr, (size_t)nblk * BS);
	rig_down(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fault_timeout_slow_not_lost),
		cmocka_unit_test(fault_timeout_abort_then_completes),
		cmocka_unit_test(fault_timeout_retries_exhausted),
		cmocka_unit_test(fault_reset_ring_qd32),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
