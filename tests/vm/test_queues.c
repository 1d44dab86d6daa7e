/* SPDX-License-Identifier: MIT */
/*
 * VM test: queue pairs. Two threads on two queue pairs at once over
 * disjoint LBA ranges, verified; tiny queues (4 and 2 entries) kept full
 * and wrapped many times, verified; allocating every granted queue pair,
 * then one more (-EBUSY), then all again after freeing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>

#include "tests/vm/vm_util.h"
#include "tests/vm/vm_io.h"

/* ---- many commands in flight on a small queue ------------------------------ */

struct slot_cpl {
	int  calls;
	int  res;
	int *outstanding;
};

static void slot_cb(void *arg, const struct nvr_cpl *cpl)
{
	struct slot_cpl *s = arg;

	s->calls++;
	s->res = cpl->res;
	(*s->outstanding)--;
}

/* What callbacks may still touch after a failed test: heap memory, leaked
 * when the test fails (the driver runs the callbacks of outstanding
 * commands at qpair free, after the test has longjmp'd away). */
struct flight {
	int             outstanding;
	struct slot_cpl slots[];
};

/*
 * Issue @n one-block commands (@op) at LBAs @lba.. from consecutive blocks
 * of @buf, keeping the queue as full as it will go. Records the deepest
 * queue seen and how often submission said -EAGAIN.
 */
static void run_full_queue(struct vm_io *io, enum nvr_io_op op, uint8_t *buf, uint64_t lba,
			   uint32_t n, int *max_out, int *eagain)
{
	struct flight *f = calloc(1, sizeof(*f) + n * sizeof(f->slots[0]));
	uint32_t bs = io->v->ns.lba_size, depth = nvr_qpair_depth(io->qp);
	double deadline = vm_now() + VM_TIMEOUT_SEC;

	assert_non_null(f);
	for (uint32_t next = 0; next < n || f->outstanding > 0;) {
		while (next < n) {
			struct slot_cpl *s = &f->slots[next];
			int rc;

			s->outstanding = &f->outstanding;
			rc = op == NVR_IO_WRITE
				? nvr_write(io->qp, io->v->nsid, buf + (size_t)next * bs, lba + next, 1,
					    slot_cb, s)
				: nvr_read(io->qp, io->v->nsid, buf + (size_t)next * bs, lba + next, 1,
					   slot_cb, s);
			if (rc == -EAGAIN) {
				(*eagain)++;
				break;
			}
			if (rc < 0)
				fail_msg("%s #%u refused: %s (outstanding %d, depth %u)",
					 vm_op_names[op], next, strerror(-rc), f->outstanding, depth);
			f->outstanding++;
			next++;
			if (f->outstanding > *max_out)
				*max_out = f->outstanding;
			if ((uint32_t)f->outstanding > depth)
				fail_msg("%d commands accepted on a queue pair of depth %u",
					 f->outstanding, depth);
		}
		int rc = nvr_qpair_poll(io->qp, 0);

		if (rc < 0 || vm_now() > deadline)
			fail_msg("poll: %s with %d outstanding", rc < 0 ? strerror(-rc) : "timed out",
				 f->outstanding);
	}
	for (uint32_t i = 0; i < n; i++)
		if (f->slots[i].calls != 1 || f->slots[i].res != 0)
			fail_msg("%s #%u: %d callbacks, res %d (%s)", vm_op_names[op], i,
				 f->slots[i].calls, f->slots[i].res, strerror(-f->slots[i].res));
	free(f);
}

static void small_queue(void **state, uint32_t entries, uint64_t salt)
{
	struct vm_ctrlr *v = VM_CTRLR(0);
	uint32_t bs = v->ns.lba_size;
	uint32_t n = 25 * (entries < 4 ? 4 : entries);   /* >= 10x depth, depth <= entries */
	struct vm_io *io = vm_io_open(state, v, entries, (size_t)n * bs, salt);
	uint32_t depth = nvr_qpair_depth(io->qp);
	uint64_t lba = vm_rand_range(&io->rng, 0, v->ns.nlba - n);
	int max_w = 0, max_r = 0, eagain = 0;

	print_message("entries %u: depth %u, %u writes then %u reads at LBA %" PRIu64 "\n",
		      entries, depth, n, n, lba);
	assert_true(depth >= 1 && depth <= entries);
	assert_true(n >= 10 * depth);
	vm_fill_random(&io->rng, io->wbuf, (size_t)n * bs);
	memset(io->rbuf, 0xa5, (size_t)n * bs);
	run_full_queue(io, NVR_IO_WRITE, io->wbuf, lba, n, &max_w, &eagain);
	run_full_queue(io, NVR_IO_READ, io->rbuf, lba, n, &max_r, &eagain);
	print_message("deepest: %d writes, %d reads in flight; %d x -EAGAIN\n", max_w, max_r,
		      eagain);
	/* The queue really was filled, and full was reported as -EAGAIN. */
	assert_int_equal(max_w, (int)depth);
	assert_int_equal(max_r, (int)depth);
	assert_true(eagain > 0);
	VM_SAME(io->rbuf, io->wbuf, (size_t)n * bs, "small queue round trip");
}

static void test_queue_4_entries(void **state)
{
	small_queue(state, 4, 21);
}

static void test_queue_2_entries(void **state)
{
	small_queue(state, 2, 22);
}

/* ---- two threads, two queue pairs, disjoint ranges ------------------------- */

#define THREAD_SPAN_BLOCKS 512
#define THREAD_ROUNDS      40

struct worker {
	struct vm_ctrlr *v;
	int       id;
	uint64_t  base;          /* first LBA of this thread's range */
	uint8_t  *shadow;        /* what the range should hold (malloc) */
	uint64_t  rng;
	uint32_t  commands;
	char      err[256];      /* empty on success */
};

/* One synchronous command; returns 0 or fills w->err. */
static int worker_cmd(struct worker *w, struct nvr_qpair *qp, enum nvr_io_op op, void *buf,
		      uint64_t lba, uint32_t nlb)
{
	bool submitted;
	uint16_t status;
	int rc = vm_cmd(qp, op, w->v->nsid, buf, lba, nlb, &submitted, &status);

	w->commands++;
	if (rc != 0)
		snprintf(w->err, sizeof(w->err), "thread %d: %s %u at LBA %" PRIu64 ": %s (%s, status 0x%03x)",
			 w->id, vm_op_names[op], nlb, lba, strerror(-rc),
			 submitted ? "completion" : "submit", status);
	return rc;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct nvr_qpair *qp = NULL;
	uint32_t bs = w->v->ns.lba_size;
	size_t span = (size_t)THREAD_SPAN_BLOCKS * bs;
	uint8_t *wb = NULL, *rb = NULL;
	int rc;

	/* Queue pair and DMA memory allocated from this thread: both are
	 * documented thread safe. */
	if ((rc = nvr_qpair_alloc(w->v->ctrlr, 32, &qp)) < 0 ||
	    (rc = nvr_dma_alloc(w->v->ctrlr, span, (void **)&wb)) < 0 ||
	    (rc = nvr_dma_alloc(w->v->ctrlr, span, (void **)&rb)) < 0) {
		snprintf(w->err, sizeof(w->err), "thread %d: setup: %s", w->id, strerror(-rc));
		goto out;
	}
	/* Fill the whole range once, then random overwrites and checks. */
	vm_fill_random(&w->rng, w->shadow, span);
	memcpy(wb, w->shadow, span);
	if (worker_cmd(w, qp, NVR_IO_WRITE, wb, w->base, THREAD_SPAN_BLOCKS))
		goto out;
	for (int r = 0; r < THREAD_ROUNDS; r++) {
		uint32_t nlb = (uint32_t)vm_rand_range(&w->rng, 1, 64);
		uint32_t at = (uint32_t)vm_rand_range(&w->rng, 0, THREAD_SPAN_BLOCKS - nlb);
		size_t bytes = (size_t)nlb * bs;

		vm_fill_random(&w->rng, wb, bytes);
		if (worker_cmd(w, qp, NVR_IO_WRITE, wb, w->base + at, nlb))
			goto out;
		memcpy(w->shadow + (size_t)at * bs, wb, bytes);
		/* Read back a different random piece of the range. */
		nlb = (uint32_t)vm_rand_range(&w->rng, 1, 64);
		at = (uint32_t)vm_rand_range(&w->rng, 0, THREAD_SPAN_BLOCKS - nlb);
		memset(rb, 0xa5, (size_t)nlb * bs);
		if (worker_cmd(w, qp, NVR_IO_READ, rb, w->base + at, nlb))
			goto out;
		long d = vm_first_diff(rb, w->shadow + (size_t)at * bs, (size_t)nlb * bs);

		if (d >= 0) {
			snprintf(w->err, sizeof(w->err), "thread %d: round %d: LBA %" PRIu64 " byte %ld differs",
				 w->id, r, w->base + at + (uint64_t)d / bs, d % bs);
			goto out;
		}
	}
out:
	if (rb)
		nvr_dma_free(w->v->ctrlr, rb);
	if (wb)
		nvr_dma_free(w->v->ctrlr, wb);
	if (qp && (rc = nvr_qpair_free(qp)) < 0 && !w->err[0])
		snprintf(w->err, sizeof(w->err), "thread %d: nvr_qpair_free: %s", w->id, strerror(-rc));
	return NULL;
}

static void test_two_threads(void **state)
{
	struct vm_ctrlr *v = VM_CTRLR(0);
	uint32_t bs = v->ns.lba_size;
	size_t span = (size_t)THREAD_SPAN_BLOCKS * bs;
	struct vm_io *io = vm_io_open(state, v, 0, span, 31);
	struct worker w[2];
	pthread_t tid[2];
	uint64_t base;

	if (v->info->max_io_qpairs < 3)
		skip();   /* two workers plus the checker's queue pair */
	assert_true(v->ns.nlba >= 2 * THREAD_SPAN_BLOCKS);
	base = vm_rand_range(&io->rng, 0, v->ns.nlba - 2 * THREAD_SPAN_BLOCKS);
	for (int i = 0; i < 2; i++) {
		w[i] = (struct worker){ .v = v, .id = i, .base = base + (uint64_t)i * THREAD_SPAN_BLOCKS,
					.rng = vm_rng(100 + i) };
		w[i].shadow = malloc(span);
		assert_non_null(w[i].shadow);
	}
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&tid[i], NULL, worker_main, &w[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(tid[i], NULL);
	for (int i = 0; i < 2; i++) {
		if (w[i].err[0]) {
			char msg[256];

			snprintf(msg, sizeof(msg), "%s", w[i].err);
			free(w[0].shadow);
			free(w[1].shadow);
			fail_msg("%s", msg);
		}
	}
	/* Each range holds exactly what its thread last wrote. */
	for (int i = 0; i < 2; i++) {
		memset(io->rbuf, 0xa5, span);
		VM_OK(io->qp, NVR_IO_READ, v->nsid, io->rbuf, w[i].base, THREAD_SPAN_BLOCKS);
		long d = vm_first_diff(io->rbuf, w[i].shadow, span);

		if (d >= 0) {
			free(w[0].shadow);
			free(w[1].shadow);
			fail_msg("range of thread %d: LBA %" PRIu64 " differs after both threads finished",
				 i, w[i].base + (uint64_t)d / bs);
		}
	}
	print_message("2 threads x %u commands on 2 queue pairs, LBAs %" PRIu64 "..%" PRIu64 "\n",
		      w[0].commands, base, base + 2 * THREAD_SPAN_BLOCKS - 1);
	free(w[0].shadow);
	free(w[1].shadow);
}

/* ---- queue pair accounting ------------------------------------------------ */

static void test_qpair_exhaustion(void **state)
{
	struct vm_ctrlr *v = VM_CTRLR(0);
	uint32_t granted = v->info->max_io_qpairs;
	struct nvr_qpair **qps = calloc(granted + 1, sizeof(*qps));
	uint32_t got = 0;
	int rc = 0;

	(void)state;
	assert_non_null(qps);
	for (int round = 0; round < 2; round++) {
		for (got = 0; got <= granted; got++) {
			rc = nvr_qpair_alloc(v->ctrlr, 2, &qps[got]);
			if (rc < 0)
				break;
			assert_true(nvr_qpair_depth(qps[got]) >= 1);
		}
		for (uint32_t i = 0; i < got; i++)
			assert_int_equal(nvr_qpair_free(qps[i]), 0);
		print_message("round %d: %u of %u granted queue pairs allocated, then %s\n", round,
			      got, granted, strerror(-rc));
		if (got != granted || rc != -EBUSY) {
			free(qps);
			fail_msg("allocated %u queue pairs of %u granted, next gave %d (want -EBUSY)",
				 got, granted, rc);
		}
	}
	free(qps);
}

/* The default depth is what the options and CAP.MQES allow. */
static void test_default_depth(void **state)
{
	struct vm_ctrlr *v = VM_CTRLR(0);
	struct vm_io *io = vm_io_open(state, v, 0, 4096, 41);
	uint32_t depth = nvr_qpair_depth(io->qp);

	print_message("default depth %u (CAP.MQES + 1 = %u)\n", depth, v->info->max_io_entries);
	assert_true(depth >= 2 && depth <= v->info->max_io_entries);
	assert_true(depth <= 256);   /* opts.io_entries default */
	/* Asking for more than MQES + 1 is clamped, not refused. */
	struct nvr_qpair *big;

	assert_int_equal(nvr_qpair_alloc(v->ctrlr, v->info->max_io_entries + 100, &big), 0);
	assert_true(nvr_qpair_depth(big) <= v->info->max_io_entries);
	assert_int_equal(nvr_qpair_free(big), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_queue_4_entries, vm_io_setup, vm_io_teardown),
		cmocka_unit_test_setup_teardown(test_queue_2_entries, vm_io_setup, vm_io_teardown),
		cmocka_unit_test_setup_teardown(test_two_threads, vm_io_setup, vm_io_teardown),
		cmocka_unit_test(test_qpair_exhaustion),
		cmocka_unit_test_setup_teardown(test_default_depth, vm_io_setup, vm_io_teardown),
	};

	return cmocka_run_group_tests_name("vm_queues", tests, vm_setup, vm_teardown);
}
