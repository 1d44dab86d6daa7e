/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the driver's completion path fed by a hostile device.
 *
 * The software model (tests/model) serves the admin queue as usual, but in
 * passive mode it leaves the I/O queue pair to this harness, which plays
 * the device from the fuzz input: it fetches the SQEs the driver rang,
 * runs them on the model (data moves, PRPs checked), and writes CQEs as
 * the input says: proper ones, unknown CIDs, wrong phase tags, SQ heads
 * out of range, garbage status, duplicates, completions for CIDs not in
 * use (never submitted, or done already), early completions, entries
 * anywhere in the CQ, in any order, over entries not yet consumed. What
 * it never does: complete a command it has not fetched (see poll_dev()).
 * A completion it overwrote itself is lost until settle() completes that
 * CID again: without command timeouts nothing else could end it. The
 * driver is driven only through
 * the public API (nvr_qpair_alloc, nvr_read/nvr_write/nvr_flush,
 * nvr_qpair_poll/kick, nvr_qpair_free) and the pci seam, so the target does
 * not depend on how the driver's queue engine is written.
 *
 * Invariants (abort() on violation, which libFuzzer reports):
 *  - no callback for a request whose submission did not return 0;
 *  - no request completed twice; every result 0 or a negative errno;
 *  - after the device is made to behave (every fetched command completed
 *    properly, until nothing is outstanding), or after nvr_qpair_free(),
 *    every submitted request has completed exactly once;
 *  - the model saw no PRP or DMA error (the driver built valid commands)
 *    and no invalid doorbell on the admin queue.
 * (ASan/UBSan report the rest.)
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver/ctrlr.h"
#include "driver/nvme_spec.h"
#include "nvring/nvring.h"
#include "tests/fuzz/fuzz_input.h"
#include "tests/model/nvme_model.h"

#define NS_BLOCKS   256u           /* 512-byte blocks: 128 KiB namespace */
#define BUF_BYTES   (64u * 1024)   /* the DMA buffer requests use */
#define MAX_TAGS    4096u
#define MAX_STEPS   512u
#define MAX_OUT     4096u          /* fetched commands the device still owes */
#define SETTLE_ROUNDS 20000u

static struct nvme_model *model;
static struct nvr_ctrlr *ctrlr;
static uint8_t *dbuf;              /* nvr_dma_alloc() memory */

/* One request the harness submitted (cb_arg points here). */
struct tag {
	bool submitted;   /* its nvr_* call returned 0 */
	uint32_t done;    /* callbacks seen */
	int res;
};
static struct tag tags[MAX_TAGS];
static uint32_t ntags;

/* The device's side of the I/O queue pair. */
struct dev {
	struct nvme_model_ioq q;
	uint32_t sq_head;              /* next SQ entry to fetch */
	uint32_t cq_tail;              /* next CQ slot a proper CQE goes to */
	uint8_t phase;                 /* phase tag of the proper CQEs now */
	uint32_t drv_head;             /* where the driver's CQ head must be */
	uint8_t drv_phase;             /* and the phase it expects there */
	struct { uint16_t cid, status; uint32_t dw0; } out[MAX_OUT];
	uint32_t nout;
	uint16_t last_cid;             /* CID of the last proper completion */
	/* Every CID fetched since the queue was created, with the status
	 * its last command got: a proper CQE the device itself overwrote
	 * before the driver read it is a lost completion, which only a
	 * command timeout could end; settle() completes these CIDs again. */
	uint16_t seen[65536];
	uint32_t nseen;
};
static struct dev dv;
static struct { bool valid; uint16_t status; uint32_t dw0; } seen_cmd[65536];

static void seen_clear(void)
{
	for (uint32_t i = 0; i < dv.nseen; i++)
		seen_cmd[dv.seen[i]].valid = false;
	dv.nseen = 0;
}

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "fuzz_cpl: invariant broken: " __VA_ARGS__); \
			fprintf(stderr, " (%s:%d)\n", __FILE__, __LINE__); \
			abort();                                           \
		}                                                          \
	} while (0)

static void on_done(void *arg, const struct nvr_cpl *cpl)
{
	struct tag *t = arg;

	CHECK(t >= tags && t < tags + MAX_TAGS, "callback with a cb_arg never given");
	CHECK(t->submitted, "callback for request %td, whose submission failed", t - tags);
	CHECK(t->done == 0, "request %td completed twice", t - tags);
	CHECK(cpl->res <= 0 && cpl->res >= -4095, "request %td: res %d", t - tags, cpl->res);
	t->done++;
	t->res = cpl->res;
}

static void setup_ctrlr(void)
{
	struct nvme_model_cfg cfg = { .ns_blocks = NS_BLOCKS, .vwc = true, .mqes = 63 };
	struct nvr_pci_dev *dev;
	void *buf;

	if (nvme_model_create(&cfg, &model, &dev) || nvr_ctrlr_attach_dev(dev, NULL, &ctrlr) ||
	    nvr_dma_alloc(ctrlr, BUF_BYTES, &buf)) {
		fprintf(stderr, "fuzz_cpl: cannot set up the model controller\n");
		abort();
	}
	dbuf = buf;
	nvme_model_set_io_passive(model, true);
}

static void teardown_ctrlr(void)
{
	nvr_dma_free(ctrlr, dbuf);
	nvr_ctrlr_detach(ctrlr);
	nvme_model_destroy(model);
	ctrlr = NULL;
	model = NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	setenv("NVRING_LOG", "none", 0);   /* the driver's failure lines are expected */
	setup_ctrlr();
	return 0;
}

/* Re-read the queue from the model if it was (re)created. */
static bool dev_sync(uint16_t qid)
{
	if (dv.q.sq && nvme_model_queue_gen(model) == dv.q.gen)
		return true;
	seen_clear();
	memset(&dv, 0, sizeof(dv));
	if (nvme_model_io_queue(model, qid, &dv.q))
		return false;
	dv.phase = dv.drv_phase = 1;
	return true;
}

/* The driver consumed every entry from its head that carries the phase it
 * expects (nvr_qpair_poll(qp, 0) reaps all there are): follow it. */
static void dev_follow_driver(void)
{
	for (uint32_t n = 0; n < dv.q.cq_size; n++) {
		uint16_t st = __atomic_load_n(&dv.q.cq[dv.drv_head].status, __ATOMIC_ACQUIRE);

		if (NVME_CQE_PHASE(st) != dv.drv_phase)
			break;
		if (++dv.drv_head == dv.q.cq_size) {
			dv.drv_head = 0;
			dv.drv_phase ^= 1;
		}
	}
}

static void dev_fetch(uint32_t max);

/* Before the driver looks at its CQ, every command it wrote is rung and
 * fetched. A CQE the driver takes for a command still in the SQ lets it
 * reuse the CID and fill the SQ until its tail meets the device's head,
 * and a full queue then reads as empty: no device behaving afterwards
 * can see those commands, only a command timeout can end them (the
 * driver trusts completions for SQ room, as Linux and SPDK do, and SQHD
 * comes from the same liar). So the device here lies about completions,
 * never about what it fetched. */
static int poll_dev(struct nvr_qpair *qp, uint32_t max)
{
	nvr_qpair_kick(qp);
	dev_fetch(UINT32_MAX);
	return nvr_qpair_poll(qp, max);
}

static int poll_all(struct nvr_qpair *qp)
{
	int rc = poll_dev(qp, 0);

	dev_follow_driver();
	return rc;
}

/* Fetch up to @max SQEs the driver rang and run them on the model. */
static void dev_fetch(uint32_t max)
{
	uint32_t tail = *dv.q.sq_tail_db;

	if (tail >= dv.q.sq_size)
		return;   /* a driver bug the model would count in bad_dbs */
	while (dv.sq_head != tail && max-- && dv.nout < MAX_OUT) {
		struct nvme_sqe sqe;
		uint32_t dw0 = 0;

		memcpy(&sqe, &dv.q.sq[dv.sq_head], sizeof(sqe));
		dv.sq_head = (dv.sq_head + 1) % dv.q.sq_size;
		uint16_t st = nvme_model_io_execute(model, &sqe, &dw0);
		if (!seen_cmd[sqe.cid].valid)
			dv.seen[dv.nseen++] = sqe.cid;
		seen_cmd[sqe.cid].valid = true;
		seen_cmd[sqe.cid].status = st;
		seen_cmd[sqe.cid].dw0 = dw0;
		dv.out[dv.nout].cid = sqe.cid;
		dv.out[dv.nout].status = st;
		dv.out[dv.nout].dw0 = dw0;
		dv.nout++;
	}
}

/* Write a CQE at @slot. The status word goes last, with release order,
 * as a device's posted write of the phase tag comes after the body. */
static void put_cqe(uint32_t slot, uint16_t cid, uint16_t sqhd, uint16_t status,
		    uint8_t phase, uint32_t dw0)
{
	struct nvme_cqe *c = &dv.q.cq[slot % dv.q.cq_size];
	uint16_t wire = (uint16_t)(((status & 0xff) << 1) | (((status >> 8) & 0x7) << 9) |
				   ((status & 0x8000) ? 0x8000 : 0) | (phase & 1));

	c->dw0 = dw0;
	c->dw1 = 0;
	c->sqhd = sqhd;
	c->sqid = dv.q.sqid;
	c->cid = cid;
	__atomic_store_n(&c->status, wire, __ATOMIC_RELEASE);
}

/* Entries the device posted that the driver has not consumed. */
static uint32_t dev_unconsumed(void)
{
	return (dv.cq_tail + dv.q.cq_size - dv.drv_head) % dv.q.cq_size;
}

/* A proper CQE at the device's tail; false when the CQ is full. */
static bool post_proper(uint16_t cid, uint16_t status, uint32_t dw0)
{
	if (dev_unconsumed() + 1 >= dv.q.cq_size)
		return false;
	put_cqe(dv.cq_tail, cid, (uint16_t)dv.sq_head, status, dv.phase, dw0);
	if (++dv.cq_tail == dv.q.cq_size) {
		dv.cq_tail = 0;
		dv.phase ^= 1;
	}
	dv.last_cid = cid;
	return true;
}

static bool complete_out(uint32_t i)
{
	if (!post_proper(dv.out[i].cid, dv.out[i].status, dv.out[i].dw0))
		return false;
	dv.out[i] = dv.out[--dv.nout];
	return true;
}

/* Make the CQ look like a real device's: no entry the driver would take
 * before the device writes it, and the device's tail where the driver's
 * head is. */
static void dev_clean_cq(void)
{
	for (uint32_t i = 0; i < dv.q.cq_size; i++) {
		uint8_t expect = i >= dv.drv_head ? dv.drv_phase : (uint8_t)!dv.drv_phase;
		struct nvme_cqe *c = &dv.q.cq[i];
		uint16_t st = __atomic_load_n(&c->status, __ATOMIC_RELAXED);

		__atomic_store_n(&c->status, (uint16_t)((st & ~1u) | !expect), __ATOMIC_RELEASE);
	}
	dv.cq_tail = dv.drv_head;
	dv.phase = dv.drv_phase;
}

static uint32_t outstanding(void)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < ntags; i++)
		n += tags[i].submitted && !tags[i].done;
	return n;
}

/* Submit one request of kind @k; records its tag when accepted. */
static void submit(struct nvr_qpair *qp, struct fz *in, unsigned k)
{
	if (ntags == MAX_TAGS)
		return;
	struct tag *t = &tags[ntags++];
	uint32_t nsid = fz_u8(in) < 250 ? 1 : fz_u32(in);
	uint64_t lba = fz_u8(in) < 240 ? fz_u8(in) : fz_u64(in);
	uint32_t nlb = 1 + fz_u8(in) % 32;
	uint32_t off = (fz_u8(in) % 32) * 4096u;
	int rc;

	if (off + (nlb << 9) > BUF_BYTES)
		off = 0;
	switch (k % 3) {
	case 0:
		rc = nvr_read(qp, nsid, dbuf + off, lba, nlb, on_done, t);
		break;
	case 1:
		rc = nvr_write(qp, nsid, dbuf + off, lba, nlb, on_done, t);
		break;
	default:
		rc = nvr_flush(qp, nsid, on_done, t);
		break;
	}
	CHECK(rc <= 0 && rc >= -4095, "submission returned %d", rc);
	if (rc == 0)
		t->submitted = true;
}

/* One hostile step of the device (see poll_dev() for what it never does). */
static void hostile(struct fz *in)
{
	uint8_t what = fz_u8(in) % 8;
	uint32_t slot = dv.cq_tail + fz_u8(in) % 4;   /* at the tail or a little past */
	uint16_t cid, sqhd, status;
	uint8_t phase = dv.phase;

	switch (what) {
	case 0: /* an unknown CID */
		cid = fz_u16(in);
		break;
	case 1: /* a CID the driver used and got back (duplicate) */
		cid = dv.last_cid;
		break;
	case 2: /* a small CID, maybe one not submitted yet */
		cid = fz_u8(in) % 64;
		break;
	case 3: /* a fetched command, completed out of order, wrong phase maybe */
		if (!dv.nout)
			return;
		cid = dv.out[fz_u8(in) % dv.nout].cid;
		phase = fz_u8(in) & 1;
		break;
	default: /* a fetched command, at a random slot */
		if (!dv.nout)
			return;
		cid = dv.out[fz_u8(in) % dv.nout].cid;
		slot = fz_u16(in);
		break;
	}
	sqhd = fz_u8(in) < 128 ? (uint16_t)dv.sq_head : fz_u16(in);
	status = fz_u8(in) < 128 ? 0 : fz_u16(in);
	put_cqe(slot, cid, sqhd, status, phase, fz_u32(in));
	if (slot % dv.q.cq_size == dv.cq_tail && phase == dv.phase && fz_u8(in) & 1) {
		if (++dv.cq_tail == dv.q.cq_size) {
			dv.cq_tail = 0;
			dv.phase ^= 1;
		}
	}
}

/* Make the device behave until every request has completed. */
static void settle(struct nvr_qpair *qp)
{
	poll_all(qp);
	dev_clean_cq();
	uint32_t sweep = 0;
	for (uint32_t round = 0; outstanding(); round++) {
		CHECK(round < SETTLE_ROUNDS, "%u requests never completed on a well-behaved device",
		      outstanding());
		nvr_qpair_kick(qp);
		dev_fetch(UINT32_MAX);
		bool owed = dv.nout;
		while (dv.nout && complete_out(dv.nout - 1))
			;
		/* nothing owed and still outstanding: completions lost to the
		 * device's own overwrites; every CID fetched once more */
		while (!owed && sweep < dv.nseen) {
			uint16_t cid = dv.seen[sweep];
			if (!post_proper(cid, seen_cmd[cid].status, seen_cmd[cid].dw0))
				break;
			sweep++;
		}
		if (sweep == dv.nseen)
			sweep = 0;
		int rc = poll_all(qp);
		CHECK(rc >= 0 || rc == -EIO || rc == -ECANCELED, "poll returned %d", rc);
		if (!dev_sync(1))
			break;   /* queues gone (the driver reset or failed it) */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t depths[] = { 2, 3, 4, 8, 16, 64 };
	struct fz in = { data, size };
	struct nvme_model_stats st0;
	struct nvr_qpair *qp;
	int rc;

	if (!ctrlr)
		setup_ctrlr();
	st0 = nvme_model_get_stats(model);
	rc = nvr_qpair_alloc(ctrlr, depths[fz_u8(&in) % 6], &qp);
	if (rc) {
		/* a failed controller from an earlier input: start afresh */
		teardown_ctrlr();
		setup_ctrlr();
		st0 = nvme_model_get_stats(model);
		rc = nvr_qpair_alloc(ctrlr, depths[fz_u8(&in) % 6], &qp);
		CHECK(rc == 0, "nvr_qpair_alloc on a fresh controller: %d", rc);
	}
	seen_clear();
	memset(&dv, 0, sizeof(dv));
	CHECK(dev_sync(1), "no I/O queue 1 after nvr_qpair_alloc");
	ntags = 0;
	memset(tags, 0, sizeof(tags));

	bool free_early = false;
	for (unsigned step = 0; step < MAX_STEPS && fz_left(&in) && !free_early; step++) {
		uint8_t op = fz_u8(&in);

		switch (op % 10) {
		case 0: case 1: case 2:
			submit(qp, &in, op / 10);
			break;
		case 3: { /* poll, maybe for a few only; then all, so the
			   * harness knows where the driver's head is */
			uint32_t max = fz_u8(&in) % 4;
			rc = poll_dev(qp, max);
			CHECK(rc >= -4095 && (max == 0 || rc <= (int)max), "poll(%u) returned %d",
			      max, rc);
			poll_all(qp);
			break;
		}
		case 4:
			nvr_qpair_kick(qp);
			break;
		case 5:
			dev_fetch(1 + fz_u8(&in) % 8);
			break;
		case 6:   /* a proper completion of a fetched command */
			if (dv.nout)
				complete_out(fz_u8(&in) % dv.nout);
			break;
		case 7: case 8:
			hostile(&in);
			break;
		default:
			free_early = fz_u8(&in) < 32;
			break;
		}
		if (!dev_sync(1))
			break;   /* the driver recreated or dropped its queues */
	}

	if (!free_early && fz_u8(&in) < 200)
		settle(qp);
	rc = nvr_qpair_free(qp);
	(void)rc;   /* a refused Delete is the driver's business: it fails the controller */
	seen_clear();
	memset(&dv, 0, sizeof(dv));
	for (uint32_t i = 0; i < ntags; i++)
		CHECK(tags[i].done == (tags[i].submitted ? 1u : 0u),
		      "request %u: submitted %d, completed %u times", i, tags[i].submitted,
		      tags[i].done);
	struct nvme_model_stats st = nvme_model_get_stats(model);
	CHECK(st.prp_errors == st0.prp_errors, "the model saw %llu bad PRPs or DMA addresses",
	      (unsigned long long)(st.prp_errors - st0.prp_errors));
	CHECK(st.bad_dbs == st0.bad_dbs, "the model saw %llu invalid doorbell writes",
	      (unsigned long long)(st.bad_dbs - st0.bad_dbs));
	return 0;
}
