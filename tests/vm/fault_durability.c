/* SPDX-License-Identifier: MIT */
/*
 * Durability through the io_uring ABI: what an FSYNC CQE promises survives
 * the machine dying (issue 8, item 6).
 *
 * The writer opens an nvring ring on the first vfio controller (liburing's
 * inline helpers over nvr_uring_queue_init(), as a program would), writes
 * the seeded stream of tests/vm/durable_gen.h at queue depth 16
 * (IORING_OP_WRITE and IORING_OP_WRITE_FIXED alternating; a write that
 * overlaps one still in the device waits for it, since NVMe does not order
 * outstanding commands and the last one submitted need not land last)
 * into the first
 * DUR_REGION blocks of namespace 1, and after every 1-64 writes submits an
 * IORING_OP_FSYNC. When an FSYNC CQE arrives it prints
 *
 *     @@durable gen G fsync N .
 *
 * where G is the highest generation such that every write up to G had its
 * CQE before that FSYNC was submitted (the closing "." tells a whole line
 * from one cut by the kill). stdout is the guest's ttyS1, which QEMU
 * writes to a file on the host as the guest sends it (qemu/run streams it
 * with tail -f); the line is flushed at once. A line still in the guest's
 * tty buffer at the kill never reaches the host, which only makes the
 * host's claim weaker, never wrong: everything the host reads was printed
 * after its FSYNC CQE. The host (tests/run-vm, durability_check)
 * kills QEMU with SIGKILL at a seeded moment and then checks the image with
 * this program's --check mode: every block must hold the last generation
 * <= G that covered it, or a newer one of the same block; zero lost.
 *
 * Why the image is qcow2 (found by trying, see tests/run-vm): with a raw
 * image and QEMU's default cache=writeback, every write QEMU completes is
 * already in the host's page cache, which a kill of QEMU does not lose, so
 * the test could not tell an FSYNC that flushed from one that did not.
 * cache=none/directsync do not change that (O_DIRECT writes are on the host
 * disk when they complete). A qcow2 image with 4 KiB clusters keeps the
 * mappings of newly allocated clusters in QEMU's own L2-table cache until
 * a flush writes them out; a kill loses them, and the data reads as zeroes.
 * So unflushed writes really are lost, as on a drive with a volatile write
 * cache (QEMU's nvme reports VWC for writeback drives); the --no-fsync
 * control run (NOPs where the FSYNCs were, same claims) must lose blocks,
 * which shows the check can fail. What the test then proves: nvring
 * forwards FSYNC as an NVMe Flush, orders it after the writes that were
 * acknowledged before it, and never posts a write's CQE before the device
 * completed it.
 *
 *   fault_durability                 cmocka: fault_durability_readback (the
 *                                    stream with fsyncs, then read back
 *                                    through the ring: every block as the
 *                                    last write left it)
 *   fault_durability --run SEED [--no-fsync] [--seconds S]
 *                                    the writer, until killed (or S s, 120)
 *   fault_durability --check RAW SEED LBA_SIZE GEN [--expect-loss]
 *                                    the host's check of a raw image
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "nvring/nvring.h"
#include "nvring/uring.h"
#include <liburing.h>

#include "tests/vm/vm_util.h"
#include "tests/vm/durable_gen.h"

#define QD         16u
#define RING_SIZE  64u
#define UD_FSYNC   (1ull << 63)   /* user_data: FSYNC (or its NOP) N, else write gen */

struct writer {
	struct nvr_ctrlr *c;
	struct nvr_ns_info ns;
	struct io_uring ring;
	bool ring_up;
	int nsfd;
	uint64_t seed;
	bool no_fsync;
	uint8_t *slots;            /* QD slots of DUR_MAX_NLB blocks: registered buffer 0 */
	size_t slot_len;
	uint64_t slot_gen[QD];     /* 0: free */
	uint8_t *acked;            /* acked[gen]: its CQE came */
	uint64_t acked_cap;
	uint64_t next_gen;         /* the next generation to submit */
	uint64_t max_gen;          /* submit no generation past it (0: no limit) */
	uint64_t contig;           /* every gen <= contig acknowledged */
	uint64_t *claims;          /* claims[n]: contig when FSYNC n was submitted */
	uint32_t nfsync, fsync_cap, fsyncs_done, inflight_fsyncs;
	uint32_t until_fsync;      /* writes left before the next FSYNC */
	uint64_t rng;
	uint64_t durable;          /* highest claim an FSYNC CQE confirmed */
	char err[256];
};

static int fail_w(struct writer *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int fail_w(struct writer *w, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(w->err, sizeof(w->err), fmt, ap);
	va_end(ap);
	return -1;
}

static void writer_close(struct writer *w)
{
	if (w->ring_up)
		nvr_uring_queue_exit(&w->ring);
	if (w->nsfd >= 0)
		nvr_ns_close(w->nsfd);
	if (w->slots)
		nvr_dma_free(w->c, w->slots);
	if (w->c)
		nvr_ctrlr_detach(w->c);
	free(w->acked);
	free(w->claims);
	w->c = NULL;
	w->ring_up = false;
}

static int writer_open(struct writer *w, uint64_t seed, bool no_fsync)
{
	char bdf[16];
	int rc;

	*w = (struct writer){ .nsfd = -1, .seed = seed, .no_fsync = no_fsync,
			      .next_gen = 1, .rng = dur_mix(seed) | 1 };
	if (!vm_env_word("NVRING_BDFS", 0, bdf, sizeof(bdf)))
		return fail_w(w, "no controller in $NVRING_BDFS");
	if ((rc = nvr_ctrlr_attach(bdf, NULL, &w->c)) < 0) {
		w->c = NULL;
		return fail_w(w, "attach %s: %s", bdf, strerror(-rc));
	}
	if ((rc = nvr_ns_get_info(w->c, 1, &w->ns)) < 0)
		return fail_w(w, "namespace 1: %s", strerror(-rc));
	if (w->ns.nlba < DUR_REGION)
		return fail_w(w, "namespace 1 has %" PRIu64 " blocks, the test writes %u", w->ns.nlba,
			      DUR_REGION);
	if ((w->nsfd = rc = nvr_ns_open(w->c, 1)) < 0)
		return fail_w(w, "nvr_ns_open: %s", strerror(-rc));
	if ((rc = nvr_uring_queue_init(w->c, RING_SIZE, &w->ring, NULL)) < 0)
		return fail_w(w, "nvr_uring_queue_init: %s", strerror(-rc));
	w->ring_up = true;
	w->slot_len = (size_t)DUR_MAX_NLB * w->ns.lba_size;
	/* DMA memory, registered: physically contiguous in no-IOMMU mode
	 * too, where registering plain pages is refused */
	if ((rc = nvr_dma_alloc(w->c, QD * w->slot_len, (void **)&w->slots)) < 0) {
		w->slots = NULL;
		return fail_w(w, "nvr_dma_alloc: %s", strerror(-rc));
	}
	struct iovec iov = { w->slots, QD * w->slot_len };
	if ((rc = nvr_uring_register(w->ring.ring_fd, IORING_REGISTER_BUFFERS, &iov, 1)) < 0 ||
	    (rc = nvr_uring_register(w->ring.ring_fd, IORING_REGISTER_FILES, &w->nsfd, 1)) < 0)
		return fail_w(w, "register: %s", strerror(-rc));
	w->until_fsync = 1 + (uint32_t)(dur_mix(w->rng++) % 64);
	return 0;
}

static int mark_acked(struct writer *w, uint64_t gen)
{
	if (gen >= w->acked_cap) {
		uint64_t cap = w->acked_cap ? w->acked_cap * 2 : 4096;
		uint8_t *p;

		while (cap <= gen)
			cap *= 2;
		p = realloc(w->acked, cap);
		if (!p)
			return fail_w(w, "out of memory");
		memset(p + w->acked_cap, 0, cap - w->acked_cap);
		w->acked = p;
		w->acked_cap = cap;
	}
	w->acked[gen] = 1;
	while (w->contig + 1 < w->acked_cap && w->acked[w->contig + 1])
		w->contig++;
	return 0;
}

/* Queue an FSYNC (a NOP in the control run) claiming what is acked now:
 * its SQE is published at the next enter, after every CQE counted here. */
static int queue_fsync(struct writer *w)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);

	if (!sqe)
		return fail_w(w, "SQ ring full");
	if (w->nfsync == w->fsync_cap) {
		uint32_t cap = w->fsync_cap ? w->fsync_cap * 2 : 256;
		uint64_t *p = realloc(w->claims, cap * sizeof(*p));

		if (!p)
			return fail_w(w, "out of memory");
		w->claims = p;
		w->fsync_cap = cap;
	}
	w->claims[w->nfsync] = w->contig;
	if (w->no_fsync) {
		io_uring_prep_nop(sqe);
	} else {
		io_uring_prep_fsync(sqe, 0, 0);
		sqe->flags |= IOSQE_FIXED_FILE;
	}
	sqe->user_data = UD_FSYNC | w->nfsync++;
	w->inflight_fsyncs++;
	return 0;
}

static int queue_write(struct writer *w, unsigned slot)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
	uint64_t gen = w->next_gen;
	struct dur_write d = dur_write_of(w->seed, gen, DUR_REGION);
	uint8_t *buf = w->slots + slot * w->slot_len;
	uint32_t len = d.nlb * w->ns.lba_size;

	if (!sqe)
		return fail_w(w, "SQ ring full");
	for (uint32_t i = 0; i < d.nlb; i++)
		dur_fill_block(buf + (size_t)i * w->ns.lba_size, w->ns.lba_size, w->seed, d.lba + i, gen);
	if (gen & 1) {
		io_uring_prep_write(sqe, 0, buf, len, d.lba * w->ns.lba_size);
	} else {
		io_uring_prep_write_fixed(sqe, 0, buf, len, d.lba * w->ns.lba_size, 0);
	}
	sqe->flags |= IOSQE_FIXED_FILE;
	sqe->user_data = gen;
	w->slot_gen[slot] = gen;
	w->next_gen++;
	return 0;
}

static bool overlaps_inflight(const struct writer *w, uint64_t gen)
{
	struct dur_write d = dur_write_of(w->seed, gen, DUR_REGION);

	for (unsigned s = 0; s < QD; s++) {
		if (!w->slot_gen[s])
			continue;
		struct dur_write o = dur_write_of(w->seed, w->slot_gen[s], DUR_REGION);

		if (d.lba < o.lba + o.nlb && o.lba < d.lba + d.nlb)
			return true;
	}
	return false;
}

/* Fill the free slots (FSYNCs in between), submit, wait for one CQE, reap
 * everything there. @fill false: only drain. */
static int writer_step(struct writer *w, bool fill, bool print)
{
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0;
	int rc;

	for (unsigned s = 0; fill && s < QD; s++) {
		if (w->slot_gen[s])
			continue;
		if (w->max_gen && w->next_gen > w->max_gen)
			break;
		/* Never two overlapping writes in the device at once: NVMe does
		 * not order outstanding commands, so the older one could land
		 * last (seen: a block holding gen 382 after gen 389's CQE).
		 * Wait for the one in the way; generations stay in order. */
		if (overlaps_inflight(w, w->next_gen))
			break;
		if (w->until_fsync == 0) {
			if (queue_fsync(w))
				return -1;
			w->until_fsync = 1 + (uint32_t)(dur_mix(w->rng++) % 64);
		}
		if (queue_write(w, s))
			return -1;
		w->until_fsync--;
	}
	rc = nvr_uring_submit_and_wait(&w->ring, 1);
	if (rc < 0)
		return fail_w(w, "enter: %s", strerror(-rc));
	io_uring_for_each_cqe(&w->ring, head, cqe) {   /* acquires the CQ tail */
		uint64_t ud = cqe->user_data;

		seen++;
		if (ud & UD_FSYNC) {
			uint32_t n = (uint32_t)(ud & ~UD_FSYNC);

			if (n >= w->nfsync)
				return fail_w(w, "CQE for FSYNC %u, only %u submitted", n, w->nfsync);
			if (cqe->res != 0)
				return fail_w(w, "FSYNC %u: res %d (%s)", n, cqe->res, strerror(-cqe->res));
			w->inflight_fsyncs--;
			w->fsyncs_done++;
			if (w->claims[n] > w->durable)
				w->durable = w->claims[n];
			if (print) {
				printf("@@durable gen %" PRIu64 " fsync %u .\n", w->claims[n], n);
				fflush(stdout);
			}
			continue;
		}
		unsigned s;

		for (s = 0; s < QD && w->slot_gen[s] != ud; s++)
			;
		if (ud == 0 || s == QD)
			return fail_w(w, "CQE with unknown user_data %" PRIu64, ud);
		struct dur_write d = dur_write_of(w->seed, ud, DUR_REGION);

		if (cqe->res != (int)(d.nlb * w->ns.lba_size))
			return fail_w(w, "write gen %" PRIu64 " (%u blocks at LBA %" PRIu64 "): res %d",
				      ud, d.nlb, d.lba, cqe->res);
		w->slot_gen[s] = 0;
		if (mark_acked(w, ud))
			return -1;
	}
	io_uring_cq_advance(&w->ring, seen);   /* releases the CQ head */
	return 0;
}

static bool writer_idle(const struct writer *w)
{
	for (unsigned s = 0; s < QD; s++)
		if (w->slot_gen[s])
			return false;
	return w->inflight_fsyncs == 0;
}

/* ---- the host's check ----------------------------------------------------- */

struct check_result {
	uint64_t required, lost, corrupt, misplaced, newer;
};

/*
 * Check @img (the region's blocks, @lba_size each) against the stream of
 * @seed up to generation @gen: every block must hold the last generation
 * <= @gen that covered it, or a newer one that covered it; blocks no such
 * write covered hold zeroes or a generation that covered them. @exact: the
 * newest generation that covered it, nothing else (all writes completed),
 * and blocks no write covered are not looked at (a used disk holds other
 * data there). Prints the first few problems.
 */
static void dur_check(const uint8_t *img, uint32_t lba_size, uint64_t seed, uint64_t gen,
		      bool exact, struct check_result *r)
{
	uint64_t *need = calloc(DUR_REGION, sizeof(*need));
	uint8_t *scratch = malloc(lba_size);
	unsigned printed = 0;

	*r = (struct check_result){ 0 };
	if (!need || !scratch) {
		r->corrupt = 1;
		free(need);
		free(scratch);
		return;
	}
	for (uint64_t g = 1; g <= gen; g++) {
		struct dur_write d = dur_write_of(seed, g, DUR_REGION);

		for (uint32_t i = 0; i < d.nlb; i++)
			need[d.lba + i] = g;
	}
	for (uint64_t lba = 0; lba < DUR_REGION; lba++) {
		int64_t got;
		const char *what = NULL;

		if (exact && !need[lba])
			continue;
		got = dur_decode_block(img + lba * lba_size, scratch, lba_size, seed, lba);
		if (need[lba])
			r->required++;
		if (got < 0) {
			r->corrupt++;
			what = "garbage (neither zeroes nor a block of this stream)";
		} else if (got > 0 && !dur_covers(seed, (uint64_t)got, DUR_REGION, lba)) {
			r->misplaced++;
			what = "a generation that never wrote this block";
		} else if ((uint64_t)got < need[lba] || (exact && (uint64_t)got != need[lba])) {
			r->lost += (uint64_t)got < need[lba];
			what = got ? "an older generation" : "zeroes";
		} else if ((uint64_t)got > need[lba]) {
			r->newer++;
		}
		if (what && printed++ < 10) {
			struct dur_write d = dur_write_of(seed, need[lba], DUR_REGION);

			printf("  LBA %" PRIu64 ": needs gen %" PRIu64 " (a write of %u blocks at LBA %" PRIu64
			       "), holds %s (gen %" PRId64 ")\n", lba, need[lba], need[lba] ? d.nlb : 0,
			       need[lba] ? d.lba : 0, what, got);
		}
	}
	free(need);
	free(scratch);
}

static int main_check(int argc, char **argv)
{
	if (argc < 6) {
		fprintf(stderr, "usage: %s --check RAW SEED LBA_SIZE GEN [--expect-loss]\n", argv[0]);
		return 2;
	}
	uint64_t seed = strtoull(argv[3], NULL, 0), gen = strtoull(argv[5], NULL, 0);
	uint32_t lba_size = (uint32_t)strtoul(argv[4], NULL, 0);
	bool expect_loss = argc > 6 && !strcmp(argv[6], "--expect-loss");
	size_t len = (size_t)DUR_REGION * lba_size;
	uint8_t *img = calloc(1, len);
	int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
	struct check_result r;

	if (lba_size < DUR_HDR || lba_size > 65536 || !img || fd < 0 ||
	    pread(fd, img, len, 0) != (ssize_t)len) {
		fprintf(stderr, "fault_durability: cannot read %zu bytes of %s (lba size %u)\n", len,
			argv[2], lba_size);
		return 2;
	}
	close(fd);
	dur_check(img, lba_size, seed, gen, false, &r);
	free(img);
	printf("fault_durability: seed %" PRIu64 ", fsync-confirmed through gen %" PRIu64 ": %" PRIu64
	       " blocks must hold that or newer; lost %" PRIu64 ", garbage %" PRIu64 ", misplaced %"
	       PRIu64 ", newer %" PRIu64 "\n", seed, gen, r.required, r.lost, r.corrupt, r.misplaced,
	       r.newer);
	if (r.corrupt || r.misplaced)
		return 1;
	if (expect_loss)
		return r.lost ? 0 : 1;
	return r.lost || !r.required ? 1 : 0;
}

/* ---- the guest's writer until killed ---------------------------------------- */

static int main_run(int argc, char **argv)
{
	struct writer w;
	uint64_t seed;
	bool no_fsync = false;
	double secs = 120, end;

	if (argc < 3) {
		fprintf(stderr, "usage: %s --run SEED [--no-fsync] [--seconds S]\n", argv[0]);
		return 2;
	}
	seed = strtoull(argv[2], NULL, 0);
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--no-fsync"))
			no_fsync = true;
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			secs = strtod(argv[++i], NULL);
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (writer_open(&w, seed, no_fsync)) {
		printf("@@durable-error %s\n", w.err);
		writer_close(&w);
		return 1;
	}
	const struct nvr_ctrlr_info *ci = nvr_ctrlr_get_info(w.c);

	printf("@@durable-start seed %" PRIu64 " lba_size %u region %u vwc %d%s\n", seed,
	       w.ns.lba_size, DUR_REGION, ci->vwc, no_fsync ? " no-fsync" : "");
	if (!ci->vwc) {
		/* FSYNC is then a no-op (as in Linux): there is nothing to test. */
		printf("@@durable-error the controller reports no volatile write cache\n");
		writer_close(&w);
		return 1;
	}
	end = vm_now() + secs;
	while (vm_now() < end) {
		if (writer_step(&w, true, true)) {
			printf("@@durable-error %s\n", w.err);
			writer_close(&w);
			return 1;
		}
	}
	printf("@@durable-end not killed after %.0f s: %" PRIu64 " writes, %u fsyncs\n", secs,
	       w.next_gen - 1, w.fsyncs_done);
	writer_close(&w);
	return 0;
}

/* ---- in every boot: the stream, then read back ------------------------------ */

static void fault_durability_readback(void **state)
{
	struct writer w;
	const uint64_t seed = vm_rng(0xd0ab1e), gens = 3000;
	uint8_t *back;
	size_t len;

	(void)state;
	if (writer_open(&w, seed, false))
		fail_msg("%s", w.err);
	print_message("seed %" PRIu64 ": %" PRIu64 " writes at QD %u, FSYNC every 1-64, then read back\n",
		      seed, gens, QD);
	w.max_gen = gens;
	while (w.next_gen <= gens)
		if (writer_step(&w, true, false))
			fail_msg("%s", w.err);
	for (int i = 0; !writer_idle(&w); i++)
		if (i > 1000 || writer_step(&w, false, false))
			fail_msg("draining: %s", w.err[0] ? w.err : "did not drain");
	assert_int_equal(w.contig, w.next_gen - 1);
	assert_true(w.fsyncs_done > gens / 64);
	print_message("%" PRIu64 " writes acknowledged, %u FSYNCs, confirmed through gen %" PRIu64 "\n",
		      w.contig, w.fsyncs_done, w.durable);

	/* Read the region back through the same ring (READ on a registered file). */
	len = (size_t)DUR_REGION * w.ns.lba_size;
	back = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(back != MAP_FAILED);
	for (size_t off = 0; off < len; off += 128 * 1024) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&w.ring);
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		uint32_t n = len - off < 128 * 1024 ? (uint32_t)(len - off) : 128 * 1024;

		assert_non_null(sqe);
		io_uring_prep_read(sqe, 0, back + off, n, off);
		sqe->flags |= IOSQE_FIXED_FILE;
		sqe->user_data = 1;
		assert_int_equal(nvr_uring_submit_and_wait(&w.ring, 1), 1);
		io_uring_for_each_cqe(&w.ring, head, cqe) {
			assert_int_equal(cqe->res, (int)n);
			seen++;
		}
		io_uring_cq_advance(&w.ring, seen);
	}
	struct check_result r;

	dur_check(back, w.ns.lba_size, seed, w.contig, true, &r);
	print_message("%" PRIu64 " blocks written: lost %" PRIu64 ", garbage %" PRIu64 ", misplaced %"
		      PRIu64 ", newer %" PRIu64 "\n", r.required, r.lost, r.corrupt, r.misplaced, r.newer);
	munmap(back, len);
	writer_close(&w);
	assert_true(r.required > DUR_REGION / 2);
	assert_int_equal(r.lost + r.corrupt + r.misplaced + r.newer, 0);
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--check"))
		return main_check(argc, argv);
	if (argc > 1 && !strcmp(argv[1], "--run"))
		return main_run(argc, argv);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fault_durability_readback),
	};
	const char *seed = getenv("NVRING_SEED");

	/* The writer attaches by itself: vm_util.h's group setup is not used. */
	(void)vm_setup;
	(void)vm_teardown;
	vm_seed_value = seed && *seed ? strtoull(seed, NULL, 0) : VM_DEFAULT_SEED;
	printf("[ INFO     ] seed %" PRIu64 " (NVRING_SEED=%" PRIu64 " repeats this run)\n",
	       vm_seed_value, vm_seed_value);
	return cmocka_run_group_tests_name("fault_durability", tests, NULL, NULL);
}
