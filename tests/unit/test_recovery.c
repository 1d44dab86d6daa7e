/* SPDX-License-Identifier: MIT */
/*
 * Recovery from commands that do not end well, against the software
 * controller: the command timeout (Abort, then a controller reset), the
 * reset asked for through the API, retries with the delay the controller
 * asks for. Test names say the fault class (fault_<class>_...): make test
 * counts them per class.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "tests/unit/driver_env.h"

/* Attach with a short I/O timeout: not 30 s, this is a unit test. */
static void attach_tmo(struct env *e, uint32_t tmo_ms)
{
	struct nvr_ctrlr_opts o = { .io_timeout_ms = tmo_ms };

	attach(e, NULL, &o);
}

static struct nvr_qpair_stats qstats(struct nvr_qpair *qp)
{
	struct nvr_qpair_stats st;

	assert_int_equal(nvr_qpair_get_stats(qp, &st), 0);
	return st;
}

/* A completion the device loses: one timeout sends an Abort (the model
 * never aborts), the next resets the controller, the read is sent again
 * and completes with its data; all within a few timeouts. */
static void fault_timeout_abort_then_reset(void **state)
{
	struct env e;
	struct nvr_qpair *qp;
	uint8_t *buf;
	struct done d = { 0 };

	attach_tmo(&e, 100);
	memset(nvme_model_ns_data(e.m, 1), 0x5a, 4096);
	assert_int_equal(nvr_qpair_alloc(e.c, 8, &qp), 0);
	assert_int_equal(nvr_dma_alloc(e.c, 4096, (void **)&buf), 0);
	nvme_model_drop_next(e.m, NVME_MODEL_Q_IO, 1);
	uint64_t t0 = now_ms();
	assert_int_equal(nvr_read(qp, 1, buf, 0, 8, on_done, &d), 0);
	assert_int_equal(wait_for(qp, &d, 1), 0);
	uint64_t took = now_ms() - t0;
	assert_int_equal(d.res, 0);
	assert_int_equal(buf[0], 0x5a);
	assert_int_equal(buf[4095], 0x5a);
	struct nvr_qpair_stats st = qstats(qp);
	assert_int_equal(st.timeouts, 2);
	assert_int_equal(st.aborts, 1);
	assert_int_equal(st.resets, 1);
	assert_int_equal(st.retries, 1);
	assert_int_equal(nvr_ctrlr_resets(e.c), 1);
	/* two timeouts, never early (bounded, loosely: valgrind is slow) */
	assert_true(took >= 200);
	assert_true(took < 20000);
	assert_int_equal(nvme_model_get_stats(e.m).disables, 1);
	check_clean(&e);
	assert_int_equal(nvr_qpair_free(qp), 0);
	nvr_dma_free(e.c, buf);
	detach(&e);
}

/* A device that loses the command every time: after the first send and 5
 * retries (each through Abort and reset) the read ends with -EIO, status
 * "command aborted by host", as Linux ends it. The queue pair still works. */
static void fault_timeout_retries_exhausted(void **state)
{
	struct env e;
	struct nvr_qpair *qp;
	uint8_t *buf;
	struct done d = { 0 };

	attach_tmo(&e, 50);
	assert_int_equal(nvr_qpair_alloc(e.c, 8, &qp), 0);
	assert_int_equal(nvr_dma_alloc(e.c, 4096, (void **)&buf), 0);
	nvme_model_drop_next(e.m, NVME_MODEL_Q_IO, 6);
	assert_int_equal(nvr_read(qp, 1, buf, 0, 8, on_done, &d), 0);
	assert_int_equal(wait_for(qp, &d, 1), 0);
	assert_int_equal(d.res, -EIO);
	assert_int_equal(d.status, 0x371);
	struct nvr_qpair_stats st = qstats(qp);
	assert_int_equal(st.retries, 5);
	assert_int_equal(st.resets, 6);
	assert_int_equal(st.aborts, 6);
	assert_int_equal(nvme_model_get_stats(e.m).dropped, 6);
	memset(&d, 0, sizeof(d));
	assert_int_equal(nvr_read(qp, 1, buf, 0, 8, on_done, &d), 0);
	assert_int_equal(wait_for(qp, &d, 1), 0);
	assert_int_equal(d.res, 0);
	assert_int_equal(nvr_qpair_free(qp), 0);
	nvr_dma_free(e.c, buf);
	detach(&e);
}

/* Slow is not lost, and a command's clock starts when a poll first sees
 * it: the device takes 1.6 timeouts, the application does not poll for 1.5
 * timeouts after submitting; the command completes about 0.1 timeout into
 * the polling, long before its timeout counted from then (a clock started
 * at submission would have expired at the first poll). Margins of half a
 * timeout and more, so that a slow host (valgrind) cannot change the
 * outcome. */
static void fault_timeout_never_early(void **state)
{
	struct env e;
	struct nvr_qpair *qp;
	uint8_t *buf;
	struct done d = { 0 };

	attach_tmo(&e, 1000);
	assert_int_equal(nvr_qpair_alloc(e.c, 8, &qp), 0);
	assert_int_equal(nvr_dma_alloc(e.c, 4096, (void **)&buf), 0);
	nvme_model_delay_cpl(e.m, 1600000);
	assert_int_equal(nvr_read(qp, 1, buf, 0, 8, on_done, &d), 0);
	nvr_qpair_kick(qp);
	struct timespec ts = { 1, 500000000 };
	nanosleep(&ts, NULL);
	assert_int_equal(wait_for(qp, &d, 1), 0);
	assert_int_equal(d.res, 0);
	nvme_model_delay_cpl(e.m, 0);
	struct nvr_qpair_stats st = qstats(qp);
	assert_int_equal(st.timeouts, 0);
	assert_int_equal(st.aborts, 0);
	assert_int_equal(st.resets, 0);
	assert_int_equal(nvr_qpair_free(qp), 0);
	nvr_dma_free(e.c, buf);
	detach(&e);
}

/* A retryable status with CRD = 1 is sent again only after CRDT1. */
static void fault_retry_waits_crd(void **state)
{
	struct env e;
	struct nvr_qpair *qp;
	uint8_t *buf;
	struct done d = { 0 };

	attach(&e, NULL, NULL);
	e.c->crdt_ms[0] = 200;   /* the model reports no CRDT: as if it did */
	assert_int_equal(nvr_qpair_alloc(e.c, 8, &qp), 0);
	assert_int_equal(nvr_dma_alloc(e.c, 4096, (void **)&buf), 0);
	nvme_model_fail_next(e.m, NVME_MODEL_Q_IO, NVME_CMD_READ, 0x006 | NVME_MODEL_CRD(1), 1);
	uint64_t t0 = now_ms();
	assert_int_equal(nvr_read(qp, 1, buf, 0, 8, on_done, &d), 0);
	assert_int_equal(wait_for(qp, &d, 1), 0);
	assert_int_equal(d.res, 0);
	assert_true(now_ms() - t0 >= 200);
	assert_int_equal(qstats(qp).retries, 1);
	assert_int_equal(nvme_model_get_stats(e.m).injected, 1);
	assert_int_equal(nvr_qpair_free(qp), 0);
	nvr_dma_free(e.c, buf);
	detach(&e);
}

/* nvr_ctrlr_reset() with writes in flight on two queue pairs: every write
 * completes, and what is read back afterwards is what was written. */
static void fault_reset_api_keeps_io(void **state)
{
	struct env e;
	struct nvr_qpair *qa, *qb;
	uint8_t *buf, *rd;
	struct done da = { 0 }, db = { 0 };
	unsigned seed = 8;

	attach(&e, NULL, NULL);
	assert_int_equal(nvr_qpair_alloc(e.c, 16, &qa), 0);
	assert_int_equal(nvr_qpair_alloc(e.c, 16, &qb), 0);
	assert_int_equal(nvr_dma_alloc(e.c, 30 * 4096, (void **)&buf), 0);
	assert_int_equal(nvr_dma_alloc(e.c, 30 * 4096, (void **)&rd), 0);
	fill_random(buf, 30 * 4096, &seed);
	nvme_model_delay_cpl(e.m, 20000);   /* still in flight at the reset */
	for (int i = 0; i < 15; i++) {
		assert_int_equal(nvr_write(qa, 1, buf + i * 4096, (uint64_t)i * 8, 8, on_done, &da), 0);
		assert_int_equal(nvr_write(qb, 1, buf + (15 + i) * 4096, (uint64_t)(15 + i) * 8, 8,
					   on_done, &db), 0);
	}
	nvr_qpair_kick(qa);
	nvr_qpair_kick(qb);
	assert_int_equal(nvr_ctrlr_reset(e.c), 0);
	nvme_model_delay_cpl(e.m, 0);
	assert_int_equal(wait_for(qa, &da, 15), 0);
	assert_int_equal(wait_for(qb, &db, 15), 0);
	assert_int_equal(da.res, 0);
	assert_int_equal(db.res, 0);
	assert_int_equal(nvr_ctrlr_resets(e.c), 1);
	assert_int_equal(qstats(qa).resets, 1);
	assert_int_equal(qstats(qb).resets, 1);
	memset(&da, 0, sizeof(da));
	assert_int_equal(nvr_read(qa, 1, rd, 0, 240, on_done, &da), 0);
	assert_int_equal(wait_for(qa, &da, 1), 0);
	assert_int_equal(da.res, 0);
	assert_memory_equal(rd, buf, 30 * 4096);
	check_clean(&e);
	assert_int_equal(nvr_qpair_free(qa), 0);
	assert_int_equal(nvr_qpair_free(qb), 0);
	nvr_dma_free(e.c, buf);
	nvr_dma_free(e.c, rd);
	detach(&e);
}

/* Resets that keep being needed do not loop: past 8 in a minute the
 * controller is failed, and everything says -EIO. */
static void fault_reset_gives_up(void **state)
{
	struct env e;
	struct nvr_qpair *qp;

	attach(&e, NULL, NULL);
	assert_int_equal(nvr_qpair_alloc(e.c, 8, &qp), 0);
	for (int i = 0; i < 8; i++)
		assert_int_equal(nvr_ctrlr_reset(e.c), 0);
	assert_int_equal(nvr_ctrlr_reset(e.c), -EIO);
	assert_int_equal(nvr_qpair_poll(qp, 0), -EIO);
	assert_int_equal(nvr_qpair_free(qp), 0);
	assert_int_equal(nvr_ctrlr_detach(e.c), 0);
	assert_int_equal(nvme_model_get_stats(e.m).dma_maps, 0);
	nvme_model_destroy(e.m);
}

struct revoke_seen {
	struct nvme_model *m;
	struct done d;
	uint32_t maps_at_cb;
};

static void on_revoke(void *arg, const struct nvr_cpl *cpl)
{
	struct revoke_seen *r = arg;

	r->maps_at_cb = nvme_model_get_stats(r->m).dma_maps;
	on_done(&r->d, cpl);
}

/* A controller that cannot be quiesced (CC.EN 1→0 ignored, function reset
 * failing) after CSTS.CFS: the reset fails, the controller is failed, and
 * the read in flight is handed back with -EIO only after its buffer left
 * the IOMMU (the device could still write it). */
static void fault_reset_unquiesced_revokes(void **state)
{
	struct env e;
	struct nvr_qpair *qp;
	void *buf;
	struct revoke_seen r = { 0 };

	attach(&e, NULL, NULL);
	r.m = e.m;
	assert_int_equal(nvr_qpair_alloc(e.c, 8, &qp), 0);
	uint32_t maps0 = nvme_model_get_stats(e.m).dma_maps;
	assert_int_equal(nvr_dma_alloc(e.c, 1 << 20, &buf), 0);   /* its own chunk */
	assert_int_equal(nvme_model_get_stats(e.m).dma_maps, maps0 + 1);
	nvme_model_drop_next(e.m, NVME_MODEL_Q_IO, 1);
	assert_int_equal(nvr_read(qp, 1, buf, 0, 8, on_revoke, &r), 0);
	nvr_qpair_kick(qp);
	uint64_t deadline = now_ms() + 10000;
	while (nvme_model_get_stats(e.m).dropped < 1 && now_ms() < deadline)
		;
	nvme_model_wedge(e.m, true);
	nvme_model_set_cfs(e.m);
	while (r.d.n == 0 && now_ms() < deadline)
		nvr_qpair_poll(qp, 0);
	assert_int_equal(r.d.n, 1);
	assert_int_equal(r.d.res, -EIO);
	assert_int_equal(r.maps_at_cb, maps0);   /* the buffer's mapping was gone */
	assert_int_equal(nvr_read(qp, 1, buf, 0, 8, on_done, &r.d), -EIO);
	assert_int_equal(nvr_qpair_free(qp), 0);
	assert_int_equal(nvr_dma_free(e.c, buf), 0);
	nvme_model_wedge(e.m, false);
	nvr_ctrlr_detach(e.c);
	assert_int_equal(nvme_model_get_stats(e.m).bad_unmaps, 0);
	nvme_model_destroy(e.m);
}

/* The device asks to be released (a VFIO device request before a
 * hot-remove): commands in flight end with -ENODEV, new ones are refused
 * with -ENODEV, freeing and detaching still work. */
static void fault_hotremove_request_ends_io(void **state)
{
	struct env e;
	struct nvr_qpair *qp;
	uint8_t *buf;
	struct done d = { 0 };

	attach(&e, NULL, NULL);
	assert_int_equal(nvr_qpair_alloc(e.c, 8, &qp), 0);
	assert_int_equal(nvr_dma_alloc(e.c, 8192, (void **)&buf), 0);
	nvme_model_drop_next(e.m, NVME_MODEL_Q_IO, 2);
	assert_int_equal(nvr_read(qp, 1, buf, 0, 1, on_done, &d), 0);
	assert_int_equal(nvr_read(qp, 1, buf + 4096, 1, 1, on_done, &d), 0);
	nvr_qpair_kick(qp);
	nvme_model_request_removal(e.m);
	uint64_t deadline = now_ms() + 10000;
	int rc = 0;
	while (d.n < 2 && now_ms() < deadline)
		rc = nvr_qpair_poll(qp, 0);
	assert_int_equal(d.n, 2);
	assert_int_equal(d.res, -ENODEV);
	assert_int_equal(rc, -ENODEV);
	assert_int_equal(nvr_read(qp, 1, buf, 0, 1, on_done, &d), -ENODEV);
	struct nvr_qpair *qb;
	assert_int_equal(nvr_qpair_alloc(e.c, 8, &qb), -ENODEV);
	assert_int_equal(nvr_qpair_free(qp), 0);
	assert_int_equal(nvr_dma_free(e.c, buf), 0);
	assert_int_equal(nvr_ctrlr_detach(e.c), 0);
	assert_int_equal(nvme_model_get_stats(e.m).dma_maps, 0);
	nvme_model_destroy(e.m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fault_timeout_abort_then_reset),
		cmocka_unit_test(fault_timeout_retries_exhausted),
		cmocka_unit_test(fault_timeout_never_early),
		cmocka_unit_test(fault_retry_waits_crd),
		cmocka_unit_test(fault_reset_api_keeps_io),
		cmocka_unit_test(fault_reset_gives_up),
		cmocka_unit_test(fault_reset_unquiesced_revokes),
		cmocka_unit_test(fault_hotremove_request_ends_io),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
