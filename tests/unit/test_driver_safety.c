/* SPDX-License-Identifier: MIT */
/*
 * The driver's safety rules against the software controller model: what it
 * must refuse (metadata formats, driver-internal IOVAs, detach with live
 * queue pairs) and how it quiesces a controller that failed (admin timeout,
 * CSTS.CFS) before any memory the device may still write is handed back.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "driver/qpair.h"
#include "tests/unit/driver_env.h"

/* ---- finding: namespaces whose LBA format carries metadata ---------------- */

/* Both metadata layouts: the namespace is listed with its ms, every I/O
 * command is refused at submission and none reaches the device. */
static void test_metadata_ns_refused(void **state)
{
	for (int ext = 0; ext < 2; ext++) {
		struct nvme_model_cfg cfg = { .ns_blocks = 1024, .lba_shift = 9, .ms = 8,
					      .meta_ext = ext };
		struct env e;
		struct nvr_qpair *qp;
		struct nvr_ns_info ni;
		struct nvr_seg seg;
		struct done d = { 0 };
		void *buf;

		attach(&e, &cfg, NULL);
		assert_int_equal(nvr_ns_get_info(e.c, 1, &ni), 0);
		assert_int_equal(ni.ms, 8);
		assert_int_equal(ni.lba_size, 512);
		assert_int_equal(nvr_qpair_alloc(e.c, 8, &qp), 0);
		assert_int_equal(nvr_dma_alloc(e.c, 8192, &buf), 0);
		assert_int_equal(nvr_dma_iova(e.c, buf, 8192, &seg.iova), 0);
		seg.len = 8192;
		uint64_t before = nvme_model_get_stats(e.m).io_cmds;

		assert_int_equal(nvr_read(qp, 1, buf, 0, 8, on_done, &d), -EOPNOTSUPP);
		assert_int_equal(nvr_write(qp, 1, buf, 0, 8, on_done, &d), -EOPNOTSUPP);
		assert_int_equal(nvr_io(qp, NVR_IO_READ, 1, 0, 16, &seg, 1, on_done, &d),
				 -EOPNOTSUPP);
		assert_int_equal(nvr_write_zeroes(qp, 1, 0, 8, on_done, &d), -EOPNOTSUPP);
		assert_int_equal(nvr_deallocate(qp, 1, 0, 8, on_done, &d), -EOPNOTSUPP);
		assert_int_equal(nvr_flush(qp, 1, on_done, &d), -EOPNOTSUPP);
		for (int i = 0; i < 20; i++)
			assert_int_equal(nvr_qpair_poll(qp, 0), 0);
		assert_int_equal(d.n, 0);
		assert_int_equal(nvme_model_get_stats(e.m).io_cmds, before);
		assert_int_equal(qp->q.nfree_tr, 7);   /* every slot still free */
		nvr_dma_free(e.c, buf);
		nvr_qpair_free(qp);
		detach(&e);
	}
}

/* ---- finding: a failed controller is quiesced before buffers go back ------- */

/* A callback that records whether the controller had been disabled (CC.EN
 * 1→0 seen by the model) when the buffer was handed back. */
struct quiesce_seen {
	struct nvme_model *m;
	struct done d;
	uint64_t disables_at_cb;
};

static void on_quiesce(void *arg, const struct nvr_cpl *cpl)
{
	struct quiesce_seen *q = arg;

	q->disables_at_cb = nvme_model_get_stats(q->m).disables;
	on_done(&q->d, cpl);
}

/* An admin command whose completion never comes (dropped by the model, but
 * executed: a Create I/O CQ on memory the driver then frees). The timeout
 * resets the controller, as Linux does: it is disabled (the late queue is
 * gone with it) before nvr_qpair_alloc() returns -ETIMEDOUT; the other
 * queue pair recreates its queues at its next poll, and its read, which
 * the device had swallowed, is sent again, completes, and is handed back
 * only after the disable. */
static void test_admin_timeout_resets(void **state)
{
	struct env e;
	struct nvr_qpair *qa, *qb = NULL;
	struct quiesce_seen q = { 0 };
	void *buf;

	attach(&e, NULL, NULL);
	q.m = e.m;
	e.c->admin_timeout_ms = 300;   /* not 5 s: this is a unit test */
	assert_int_equal(nvr_qpair_alloc(e.c, 8, &qa), 0);
	assert_int_equal(nvr_dma_alloc(e.c, 8192, &buf), 0);
	/* one read the device swallows: outstanding when the controller resets */
	nvme_model_drop_next(e.m, NVME_MODEL_Q_IO, 1);
	assert_int_equal(nvr_read(qa, 1, buf, 0, 8, on_quiesce, &q), 0);
	nvr_qpair_kick(qa);
	uint64_t deadline = now_ms() + 10000;
	while (nvme_model_get_stats(e.m).dropped < 1 && now_ms() < deadline)
		;
	assert_int_equal(nvme_model_get_stats(e.m).io_cqs, 1);

	nvme_model_drop_next(e.m, NVME_MODEL_Q_ADMIN, 1);
	assert_int_equal(nvr_qpair_alloc(e.c, 8, &qb), -ETIMEDOUT);
	assert_null(qb);
	struct nvme_model_stats st = nvme_model_get_stats(e.m);
	assert_int_equal(st.dropped, 2);
	assert_int_equal(st.disables, 1);   /* CC.EN 1→0 before the return */
	assert_int_equal(st.io_cqs, 0);     /* no queue left on freed memory */
	assert_int_equal(st.io_sqs, 0);
	assert_int_equal(nvr_ctrlr_resets(e.c), 1);

	/* the other queue pair recovers; its read completes, after the disable */
	while (q.d.n == 0 && now_ms() < deadline)
		assert_true(nvr_qpair_poll(qa, 0) >= 0);
	assert_int_equal(q.d.n, 1);
	assert_int_equal(q.d.res, 0);
	assert_int_equal(q.disables_at_cb, 1);
	assert_int_equal(nvme_model_get_stats(e.m).io_cqs, 1);
	/* and everything works again */
	assert_int_equal(nvr_qpair_alloc(e.c, 8, &qb), 0);
	assert_int_equal(nvr_qpair_free(qb), 0);
	assert_int_equal(nvr_qpair_free(qa), 0);
	assert_int_equal(nvr_dma_free(e.c, buf), 0);
	assert_int_equal(nvr_ctrlr_detach(e.c), 0);
	st = nvme_model_get_stats(e.m);
	assert_int_equal(st.dma_maps, 0);
	assert_int_equal(st.shutdowns, 1);
	assert_int_equal(st.bad_dbs, 0);    /* no doorbell of a queue that is gone */
	nvme_model_destroy(e.m);
}

/* CSTS.CFS: the controller is reset (CC.EN = 0, RDY = 0) before the
 * outstanding command is sent again; its buffer comes back after that,
 * with the data. */
static void test_cfs_resets(void **state)
{
	struct env e;
	struct nvr_qpair *qp;
	struct quiesce_seen q = { 0 };
	void *buf;

	attach(&e, NULL, NULL);
	q.m = e.m;
	assert_int_equal(nvr_qpair_alloc(e.c, 8, &qp), 0);
	assert_int_equal(nvr_dma_alloc(e.c, 8192, &buf), 0);
	nvme_model_drop_next(e.m, NVME_MODEL_Q_IO, 1);
	assert_int_equal(nvr_read(qp, 1, buf, 0, 8, on_quiesce, &q), 0);
	nvr_qpair_kick(qp);
	uint64_t deadline = now_ms() + 10000;
	while (nvme_model_get_stats(e.m).dropped < 1 && now_ms() < deadline)
		;
	nvme_model_set_cfs(e.m);
	while (q.d.n == 0 && now_ms() < deadline)
		assert_true(nvr_qpair_poll(qp, 0) >= 0);
	assert_int_equal(q.d.n, 1);
	assert_int_equal(q.d.res, 0);
	assert_int_equal(q.disables_at_cb, 1);
	assert_int_equal(nvme_model_get_stats(e.m).io_sqs, 1);
	assert_int_equal(nvr_qpair_free(qp), 0);
	assert_int_equal(nvr_dma_free(e.c, buf), 0);
	assert_int_equal(nvr_ctrlr_detach(e.c), 0);
	nvme_model_destroy(e.m);
}

/* Delete I/O SQ refused (an error status, not a timeout) while a read is
 * still in the device: the queues stay live in the controller, so before
 * the read's callback runs and the queue memory goes, the controller is
 * quiesced (disabled), and the read ends with -EIO, not as if cancelled. */
static void test_failed_sq_delete_quiesces(void **state)
{
	struct env e;
	struct nvr_qpair *qp;
	struct quiesce_seen q = { 0 };
	void *buf;

	attach(&e, NULL, NULL);
	q.m = e.m;
	assert_int_equal(nvr_qpair_alloc(e.c, 8, &qp), 0);
	assert_int_equal(nvr_dma_alloc(e.c, 8192, &buf), 0);
	nvme_model_delay_cpl(e.m, 200000);   /* the read stays in the device */
	assert_int_equal(nvr_read(qp, 1, buf, 0, 8, on_quiesce, &q), 0);
	nvr_qpair_kick(qp);
	nvme_model_fail_next(e.m, NVME_MODEL_Q_ADMIN, NVME_ADM_DELETE_SQ,
			     NVME_SC_INTERNAL | NVME_MODEL_DNR, 1);
	assert_int_not_equal(nvr_qpair_free(qp), 0);
	assert_int_equal(q.d.n, 1);
	assert_int_equal(q.d.res, -EIO);
	assert_int_equal(q.disables_at_cb, 1);   /* disabled before the callback */
	assert_int_equal(nvme_model_get_stats(e.m).io_sqs, 0);
	assert_int_equal(nvme_model_get_stats(e.m).io_cqs, 0);
	assert_int_equal(nvr_qpair_alloc(e.c, 8, &qp), -EIO);
	assert_int_equal(nvr_dma_free(e.c, buf), 0);
	assert_int_equal(nvr_ctrlr_detach(e.c), 0);
	nvme_model_destroy(e.m);
}

/* ---- finding: detach while queue pairs exist -------------------------------- */

/* A queue pair (maybe a ring's) outlives nothing it points to: detach
 * refuses while one is allocated, and the queue pair keeps working. */
static void test_detach_busy_with_qpairs(void **state)
{
	struct env e;
	struct nvr_qpair *qp;
	struct done d = { 0 };
	void *buf;

	attach(&e, NULL, NULL);
	assert_int_equal(nvr_qpair_alloc(e.c, 8, &qp), 0);
	assert_int_equal(nvr_dma_alloc(e.c, 4096, &buf), 0);
	assert_int_equal(nvr_ctrlr_detach(e.c), -EBUSY);
	assert_int_equal(nvme_model_get_stats(e.m).shutdowns, 0);
	assert_int_equal(nvr_read(qp, 1, buf, 0, 8, on_done, &d), 0);
	assert_int_equal(wait_for(qp, &d, 1), 0);
	assert_int_equal(d.res, 0);
	assert_int_equal(nvr_qpair_free(qp), 0);
	assert_int_equal(nvr_dma_free(e.c, buf), 0);
	detach(&e);
}

/* ---- finding: PRP pages pinned per queue pair ------------------------------- */

/* A 4096-entry queue pair has 1024 trackers (4 MiB of PRP pages, not
 * 16 MiB); they all go out at once and the queue still works. */
static void test_tracker_cap(void **state)
{
	struct nvme_model_cfg cfg = { .ns_blocks = 2048, .lba_shift = 9, .mqes = 4095 };
	struct env e;
	struct nvr_qpair *qp;
	struct done d = { 0 };
	uint8_t *buf;

	attach(&e, &cfg, NULL);
	assert_int_equal(nvr_qpair_alloc(e.c, 4096, &qp), 0);
	assert_int_equal(qp->q.entries, 4096);
	assert_int_equal(nvr_qpair_depth(qp), 1024);
	assert_int_equal(nvr_dma_alloc(e.c, 1024 * 512, (void **)&buf), 0);
	for (uint32_t i = 0; i < 1024; i++)
		assert_int_equal(nvr_read(qp, 1, buf + i * 512, i, 1, on_done, &d), 0);
	assert_int_equal(nvr_read(qp, 1, buf, 0, 1, on_done, &d), -EAGAIN);
	assert_int_equal(wait_for(qp, &d, 1024), 0);
	assert_int_equal(d.res, 0);
	assert_int_equal(qp->q.nfree_tr, 1024);
	nvr_dma_free(e.c, buf);
	check_clean(&e);
	assert_int_equal(nvr_qpair_free(qp), 0);
	detach(&e);
}

/* ---- finding: nvr_io() and driver-internal memory --------------------------- */

/* Queues, PRP lists and Identify data live in an IOVA window of their own:
 * nvr_io() refuses any segment reaching into it, and the public DMA calls
 * do not know that memory at all. Nothing reaches the device. */
static void test_internal_iova_refused(void **state)
{
	struct env e;
	struct nvr_qpair *qp;
	struct done d = { 0 };
	void *buf;
	uint64_t iova, t;

	attach(&e, NULL, NULL);
	assert_int_equal(nvr_qpair_alloc(e.c, 8, &qp), 0);
	assert_int_equal(nvr_dma_alloc(e.c, 8192, &buf), 0);
	assert_int_equal(nvr_dma_iova(e.c, buf, 8192, &iova), 0);
	uint64_t lo = e.c->internal_iova_lo, hi = e.c->internal_iova_hi;
	assert_true(lo < hi);
	assert_true(iova + 8192 <= lo || iova >= hi);   /* user memory is outside */
	assert_true(qp->q.sq_iova >= lo && qp->q.sq_iova < hi);
	uint64_t before = nvme_model_get_stats(e.m).io_cmds;

	const struct nvr_seg bad[] = {
		{ qp->q.sq_iova, 4096 }, { qp->q.cq_iova, 4096 }, { qp->q.prp_block_iova, 4096 },
		{ e.c->adminq.q.sq_iova, 4096 }, { e.c->scratch_iova, 4096 },
		{ lo - 2048, 8192 },       /* starts below, the 4 KiB used end inside */
		{ hi - 4096, 4096 },       /* the last page */
		{ UINT64_MAX & ~4095ull, 4096 },   /* wraps */
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(nvr_io(qp, NVR_IO_READ, 1, 0, 8, &bad[i], 1, on_done, &d), -EFAULT);
		assert_int_equal(nvr_io(qp, NVR_IO_WRITE, 1, 0, 8, &bad[i], 1, on_done, &d), -EFAULT);
	}
	/* a good first segment does not excuse a bad second one */
	const struct nvr_seg two[2] = { { iova, 4096 }, { qp->q.sq_iova, 4096 } };
	assert_int_equal(nvr_io(qp, NVR_IO_READ, 1, 0, 16, two, 2, on_done, &d), -EFAULT);
	/* user memory goes through */
	const struct nvr_seg good = { iova, 4096 };
	assert_int_equal(nvr_io(qp, NVR_IO_READ, 1, 0, 8, &good, 1, on_done, &d), 0);
	assert_int_equal(wait_for(qp, &d, 1), 0);
	assert_int_equal(d.res, 0);

	/* the CPU side: not DMA memory as far as users go */
	assert_int_equal(nvr_read(qp, 1, qp->q.sq, 0, 8, on_done, &d), -EFAULT);
	assert_int_equal(nvr_dma_iova(e.c, qp->q.prp_block, 4096, &t), -EFAULT);
	assert_int_equal(nvr_dma_hold(e.c, qp->q.cq, 16, &t), -EFAULT);
	assert_int_equal(nvr_dma_free(e.c, qp->q.sq), -EINVAL);
	assert_int_equal(nvr_dma_register(e.c, qp->q.sq, 4096), -EEXIST);

	assert_int_equal(nvme_model_get_stats(e.m).io_cmds, before + 1);
	assert_int_equal(d.n, 1);
	assert_int_equal(qp->q.nfree_tr, 7);
	nvr_dma_free(e.c, buf);
	check_clean(&e);
	assert_int_equal(nvr_qpair_free(qp), 0);
	detach(&e);
}

/* ---- finding: a lock on every nvr_read()/nvr_write() ------------------------ */

struct lock_holder {
	pthread_rwlock_t *lock;
	atomic_bool held, release;
};

static void *hold_write_lock(void *arg)
{
	struct lock_holder *h = arg;

	pthread_rwlock_wrlock(h->lock);
	atomic_store(&h->held, true);
	uint64_t deadline = now_ms() + 2000;   /* the test never waits this long */
	while (!atomic_load(&h->release) && now_ms() < deadline)
		;
	pthread_rwlock_unlock(h->lock);
	return NULL;
}

/* Once a buffer's mapping was looked up, further I/O on it needs no lock:
 * it is submitted at once while another thread holds the DMA table's write
 * lock (before: it waited for that thread). */
static void test_io_translation_lock_free(void **state)
{
	struct env e;
	struct nvr_qpair *qp;
	struct done d = { 0 };
	uint8_t *buf;
	pthread_t th;

	attach(&e, NULL, NULL);
	assert_int_equal(nvr_qpair_alloc(e.c, 8, &qp), 0);
	assert_int_equal(nvr_dma_alloc(e.c, 64 * 1024, (void **)&buf), 0);
	assert_int_equal(nvr_write(qp, 1, buf, 0, 8, on_done, &d), 0);
	assert_int_equal(wait_for(qp, &d, 1), 0);

	struct lock_holder h = { .lock = &e.c->dev->dma_lock };
	assert_int_equal(pthread_create(&th, NULL, hold_write_lock, &h), 0);
	while (!atomic_load(&h.held))
		;
	uint64_t t0 = now_ms();
	int rc = nvr_read(qp, 1, buf + 8192, 8, 8, on_done, &d);
	uint64_t took = now_ms() - t0;
	atomic_store(&h.release, true);
	pthread_join(th, NULL);
	assert_int_equal(rc, 0);
	assert_true(took < 500);
	assert_int_equal(wait_for(qp, &d, 2), 0);
	assert_int_equal(d.res, 0);

	/* freed and gone: the cached translation is not used */
	uint8_t *other;
	assert_int_equal(nvr_dma_alloc(e.c, 3 << 20, (void **)&other), 0);
	assert_int_equal(nvr_read(qp, 1, other, 0, 8, on_done, &d), 0);
	assert_int_equal(wait_for(qp, &d, 3), 0);
	assert_int_equal(nvr_dma_free(e.c, other), 0);
	assert_int_equal(nvr_read(qp, 1, other, 0, 8, on_done, &d), -EFAULT);
	assert_int_equal(d.n, 3);
	nvr_dma_free(e.c, buf);
	check_clean(&e);
	assert_int_equal(nvr_qpair_free(qp), 0);
	detach(&e);
}

/* ---- hardening: what the device only reads it cannot write --------------- */

/* SQs and PRP list pages (admin and I/O) are mapped read-only for the
 * device, CQs and data buffers are not; I/O with PRP lists works and the
 * device never wrote where it may not. */
static void test_device_reads_only_queues(void **state)
{
	struct env e;
	struct nvr_qpair *qp;
	uint8_t *buf;
	struct done d = { 0 };

	attach(&e, NULL, NULL);
	assert_int_equal(nvr_qpair_alloc(e.c, 8, &qp), 0);
	assert_true(nvme_model_iova_read_only(e.m, e.c->adminq.q.sq_iova));
	assert_false(nvme_model_iova_read_only(e.m, e.c->adminq.q.cq_iova));
	assert_true(nvme_model_iova_read_only(e.m, qp->q.sq_iova));
	assert_true(nvme_model_iova_read_only(e.m, qp->q.prp_block_iova));
	assert_false(nvme_model_iova_read_only(e.m, qp->q.cq_iova));
	assert_int_equal(nvr_dma_alloc(e.c, 128 << 10, (void **)&buf), 0);
	uint64_t iova;
	assert_int_equal(nvr_dma_iova(e.c, buf, 1, &iova), 0);
	assert_false(nvme_model_iova_read_only(e.m, iova));
	assert_int_equal(nvr_write(qp, 1, buf, 0, 256, on_done, &d), 0);   /* a PRP list */
	assert_int_equal(nvr_read(qp, 1, buf, 0, 256, on_done, &d), 0);
	assert_int_equal(wait_for(qp, &d, 2), 0);
	assert_int_equal(d.res, 0);
	assert_int_equal(nvme_model_get_stats(e.m).ro_writes, 0);
	assert_int_equal(nvr_qpair_free(qp), 0);
	nvr_dma_free(e.c, buf);
	detach(&e);
}

/* ---- finding: small ones ------------------------------------------------------ */

/* Admin command IDs go round every generation of every tracker without
 * ever using FFFFh (reserved): 4,400 commands, past the 63 × 63 CIDs. */
static void test_admin_cid_skips_reserved(void **state)
{
	struct env e;
	struct nvr_qpair *qp;

	attach(&e, NULL, NULL);
	for (int i = 0; i < 1100; i++) {   /* Create CQ, SQ, Delete SQ, CQ */
		assert_int_equal(nvr_qpair_alloc(e.c, 8, &qp), 0);
		assert_int_equal(nvr_qpair_free(qp), 0);
	}
	assert_int_equal(nvme_model_get_stats(e.m).reserved_cids, 0);
	assert_int_equal(e.c->adminq.q.bad_cids, 0);
	detach(&e);
}

/* A status the controller gives an admin command maps like an I/O status
 * (nvr_status_errno()), not to -EIO across the board. */
static void test_admin_status_mapped(void **state)
{
	struct env e;
	struct nvr_qpair *qp = NULL;

	attach(&e, NULL, NULL);
	nvme_model_fail_next(e.m, NVME_MODEL_Q_ADMIN, NVME_ADM_CREATE_CQ, 0x002 | NVME_MODEL_DNR, 1);
	assert_int_equal(nvr_qpair_alloc(e.c, 8, &qp), nvr_status_errno(0x002));
	assert_int_equal(nvr_status_errno(0x002), -EOPNOTSUPP);
	assert_null(qp);
	nvme_model_fail_next(e.m, NVME_MODEL_Q_ADMIN, NVME_ADM_CREATE_SQ, 0x102 | NVME_MODEL_DNR, 1);
	assert_int_equal(nvr_qpair_alloc(e.c, 8, &qp), -EIO);   /* invalid queue size */
	assert_int_equal(nvme_model_get_stats(e.m).io_cqs, 0);  /* its CQ deleted again */
	assert_int_equal(nvr_qpair_alloc(e.c, 8, &qp), 0);      /* the controller is fine */
	assert_int_equal(nvr_qpair_free(qp), 0);
	detach(&e);
}

/* Callbacks may submit: each completion starts the next read from inside
 * the callback, on a 3-deep queue pair kept full, and a large request
 * waiting in the FIFO keeps its place. */
struct chain {
	struct nvr_qpair *qp;
	uint8_t *buf;
	int started, done, limit, errors;
};

static void on_chain(void *arg, const struct nvr_cpl *cpl)
{
	struct chain *c = arg;

	c->done++;
	if (cpl->res)
		c->errors++;
	if (c->started < c->limit) {
		int rc = nvr_read(c->qp, 1, c->buf + (c->started % 3) * 4096,
				  (uint64_t)c->started % 64, 8, on_chain, c);
		if (rc)
			c->errors++;
		else
			c->started++;
	}
}

static void test_callback_submits(void **state)
{
	struct env e;
	struct chain c = { .limit = 300 };
	struct done big = { 0 };
	uint8_t *bigbuf;

	attach(&e, NULL, NULL);
	assert_int_equal(nvr_qpair_alloc(e.c, 4, &c.qp), 0);   /* 3 slots */
	assert_int_equal(nvr_dma_alloc(e.c, 3 * 4096, (void **)&c.buf), 0);
	assert_int_equal(nvr_dma_alloc(e.c, 1 << 20, (void **)&bigbuf), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(nvr_read(c.qp, 1, c.buf + i * 4096, 0, 8, on_chain, &c), 0);
		c.started++;
	}
	/* 1 MiB: 8 commands at MDTS 128 KiB, most of them wait in the FIFO */
	assert_int_equal(nvr_write(c.qp, 1, bigbuf, 0, 2048, on_done, &big), 0);
	uint64_t deadline = now_ms() + 20000;
	while ((c.done < c.limit || big.n < 1) && now_ms() < deadline)
		assert_true(nvr_qpair_poll(c.qp, 0) >= 0);
	assert_int_equal(c.done, c.limit);
	assert_int_equal(c.errors, 0);
	assert_int_equal(big.n, 1);
	assert_int_equal(big.res, 0);
	assert_int_equal(c.qp->q.nfree_tr, 3);
	nvr_dma_free(e.c, c.buf);
	nvr_dma_free(e.c, bigbuf);
	check_clean(&e);
	assert_int_equal(nvr_qpair_free(c.qp), 0);
	detach(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_metadata_ns_refused),
		cmocka_unit_test(test_admin_timeout_resets),
		cmocka_unit_test(test_cfs_resets),
		cmocka_unit_test(test_failed_sq_delete_quiesces),
		cmocka_unit_test(test_detach_busy_with_qpairs),
		cmocka_unit_test(test_tracker_cap),
		cmocka_unit_test(test_internal_iova_refused),
		cmocka_unit_test(test_io_translation_lock_free),
		cmocka_unit_test(test_device_reads_only_queues),
		cmocka_unit_test(test_admin_cid_skips_reserved),
		cmocka_unit_test(test_admin_status_mapped),
		cmocka_unit_test(test_callback_submits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
