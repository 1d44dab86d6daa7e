/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the driver tests that run against the software
 * controller model (test_driver.c, test_driver_safety.c): attach, wait for
 * completions, detach with the model's bookkeeping checked.
 */
#ifndef NVRING_TESTS_UNIT_DRIVER_ENV_H
#define NVRING_TESTS_UNIT_DRIVER_ENV_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "driver/ctrlr.h"
#include "nvring/nvring.h"
#include "tests/model/nvme_model.h"

struct env {
	struct nvme_model *m;
	struct nvr_ctrlr *c;
	bool cq_rewound;   /* the test moved the CQ head back by hand */
};

/* Completion counter for callbacks. */
struct done {
	int n;
	int res;         /* first non-zero res seen */
	uint16_t status;
	int order[64];   /* tags in completion order */
};

static inline void on_done(void *arg, const struct nvr_cpl *cpl)
{
	struct done *d = arg;

	if (cpl->res && !d->res) {
		d->res = cpl->res;
		d->status = cpl->status;
	}
	d->n++;
}

struct tagged {
	struct done *d;
	int tag;
};

static inline void on_tagged(void *arg, const struct nvr_cpl *cpl)
{
	struct tagged *t = arg;

	if (t->d->n < 64)
		t->d->order[t->d->n] = t->tag;
	on_done(t->d, cpl);
}

static inline uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Poll until @d has seen @n completions; fail after 20 s. Returns the
 * last poll result that was an error, else 0. */
static inline int wait_for(struct nvr_qpair *qp, struct done *d, int n)
{
	uint64_t deadline = now_ms() + 20000;

	while (d->n < n) {
		int rc = nvr_qpair_poll(qp, 0);
		if (rc < 0)
			return rc;
		if (now_ms() > deadline)
			fail_msg("timed out: %d of %d completions", d->n, n);
	}
	return 0;
}

static inline void attach(struct env *e, const struct nvme_model_cfg *cfg,
		   const struct nvr_ctrlr_opts *opts)
{
	struct nvr_pci_dev *dev;

	*e = (struct env){ 0 };
	assert_int_equal(nvme_model_create(cfg, &e->m, &dev), 0);
	assert_int_equal(nvr_ctrlr_attach_dev(dev, opts, &e->c), 0);
}

/* The model saw no protocol mistakes so far. */
static inline void check_clean(struct env *e)
{
	struct nvme_model_stats st = nvme_model_get_stats(e->m);
	assert_int_equal(st.bad_dbs, 0);
	assert_int_equal(st.prp_errors, 0);
}

/* Detach cleanly: queues deleted, shutdown done, DMA memory returned. */
static inline void detach(struct env *e)
{
	assert_int_equal(nvr_ctrlr_detach(e->c), 0);
	struct nvme_model_stats st = nvme_model_get_stats(e->m);
	if (!e->cq_rewound)
		assert_int_equal(st.bad_dbs, 0);   /* teardown rang no wrong doorbell */
	assert_int_equal(st.prp_errors, 0);
	assert_int_equal(st.io_sqs, 0);
	assert_int_equal(st.io_cqs, 0);
	assert_int_equal(st.shutdowns, 1);
	assert_int_equal(st.dma_maps, 0);   /* all our DMA memory returned */
	nvme_model_destroy(e->m);
}

static inline void fill_random(uint8_t *p, size_t n, unsigned *seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)rand_r(seed);
}

#endif
