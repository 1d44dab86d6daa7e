/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers of the VM integration tests (tests/vm/X.c), which run in
 * the guest against QEMU's emulated controllers bound to vfio-pci.
 *
 * Each tests/vm/X.c is its own program, so everything here is static: the
 * controllers named by $NVRING_BDFS (attached once per program by
 * vm_setup()), a seeded PRNG whose seed is printed ($NVRING_SEED repeats a
 * run), and synchronous wrappers that submit one command and poll it to
 * completion with a timeout.
 *
 * Include after <cmocka.h> and its prerequisites.
 */
#ifndef NVRING_TESTS_VM_UTIL_H
#define NVRING_TESTS_VM_UTIL_H

#include <errno.h>
#include <glob.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nvring/nvring.h>

#define VM_MAX_CTRLRS   8
#define VM_TIMEOUT_SEC  30   /* one command taking longer than this has hung */

struct vm_ctrlr {
	char               bdf[16];
	char               serial[24];   /* what QEMU was given, "" if unknown */
	int                attach_rc;    /* nvr_ctrlr_attach()'s result */
	struct nvr_ctrlr  *ctrlr;        /* NULL unless attach_rc == 0 */
	const struct nvr_ctrlr_info *info;
	uint32_t           nsid;         /* first active namespace, 0 if none */
	struct nvr_ns_info ns;
};

static struct vm_ctrlr vm_ctrlrs[VM_MAX_CTRLRS];
static int vm_nctrlrs;
static uint64_t vm_seed_value;
#define VM_DEFAULT_SEED 20261201u

/* ---- PRNG: xorshift64*, one state per user (threads keep their own) ---- */

static inline uint64_t vm_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

/* Uniform-ish in [lo, hi]. */
static inline uint64_t vm_rand_range(uint64_t *s, uint64_t lo, uint64_t hi)
{
	return lo + vm_rand(s) % (hi - lo + 1);
}

static inline void vm_fill_random(uint64_t *s, void *buf, size_t len)
{
	uint8_t *p = buf;

	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = vm_rand(s);
		memcpy(p + i, &v, len - i < 8 ? len - i : 8);
	}
}

/* The first offset where @a and @b differ, or -1. */
static inline long vm_first_diff(const void *a, const void *b, size_t len)
{
	const uint8_t *x = a, *y = b;

	for (size_t i = 0; i < len; i++)
		if (x[i] != y[i])
			return (long)i;
	return -1;
}

static inline bool vm_all_zero(const void *buf, size_t len)
{
	const uint8_t *p = buf;

	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* ---- environment --------------------------------------------------------- */

/* Word @idx (0-based) of the space-separated $@var into @out; false if none. */
static inline bool vm_env_word(const char *var, int idx, char *out, size_t len)
{
	const char *s = getenv(var);

	if (!s)
		return false;
	for (int i = 0;; i++) {
		while (*s == ' ')
			s++;
		if (!*s)
			return false;
		size_t n = strcspn(s, " ");

		if (i == idx) {
			if (n >= len)
				return false;
			memcpy(out, s, n);
			out[n] = '\0';
			return true;
		}
		s += n;
	}
}

/* True when the guest's vfio controllers are in VFIO no-IOMMU mode: their
 * group nodes are /dev/vfio/noiommu-N (what the library chooses by). */
static inline bool vm_noiommu(void)
{
	glob_t g;
	bool any = glob("/dev/vfio/noiommu-*", 0, NULL, &g) == 0 && g.gl_pathc > 0;

	globfree(&g);
	return any;
}

static inline long vm_env_long(const char *var, long dflt)
{
	const char *s = getenv(var);

	return s && *s ? strtol(s, NULL, 0) : dflt;
}

/* A fresh per-test PRNG state derived from the run's seed and @salt. */
static inline uint64_t vm_rng(uint64_t salt)
{
	uint64_t s = vm_seed_value ^ (salt * 0x9e3779b97f4a7c15ull);

	return s ? s : 1;
}

/*
 * Attach every controller in $NVRING_BDFS (a cmocka group setup). Attach
 * failures are recorded, not fatal here: the tests that need a controller
 * assert on attach_rc, so the failure is reported against them.
 */
static int vm_setup(void **state)
{
	const char *seed = getenv("NVRING_SEED");
	struct nvr_ctrlr_opts opts = { 0 };

	(void)state;
	/* A fixed default: CI compares the same streams every run (fresh
	 * seeds belong in `make soak` / NVRING_SEED). */
	vm_seed_value = seed && *seed ? strtoull(seed, NULL, 0) : VM_DEFAULT_SEED;
	printf("[ INFO     ] seed %" PRIu64 " (NVRING_SEED=%" PRIu64 " repeats this run)\n",
	       vm_seed_value, vm_seed_value);

	for (vm_nctrlrs = 0; vm_nctrlrs < VM_MAX_CTRLRS; vm_nctrlrs++) {
		struct vm_ctrlr *v = &vm_ctrlrs[vm_nctrlrs];

		if (!vm_env_word("NVRING_BDFS", vm_nctrlrs, v->bdf, sizeof(v->bdf)))
			break;
		if (!vm_env_word("NVRING_SERIALS", vm_nctrlrs, v->serial, sizeof(v->serial)))
			v->serial[0] = '\0';
		v->attach_rc = nvr_ctrlr_attach(v->bdf, &opts, &v->ctrlr);
		if (v->attach_rc < 0) {
			printf("[ INFO     ] attach %s: %s\n", v->bdf, strerror(-v->attach_rc));
			v->ctrlr = NULL;
			continue;
		}
		v->info = nvr_ctrlr_get_info(v->ctrlr);
		if (nvr_ctrlr_ns_list(v->ctrlr, &v->nsid, 1) < 1 ||
		    nvr_ns_get_info(v->ctrlr, v->nsid, &v->ns) < 0)
			v->nsid = 0;
		printf("[ INFO     ] %s: sn '%s' mn '%s' max_xfer %u, ns %u: %" PRIu64 " x %u B\n",
		       v->bdf, v->info->sn, v->info->mn, v->info->max_xfer, v->nsid, v->ns.nlba,
		       v->ns.lba_size);
	}
	return 0;
}

static int vm_teardown(void **state)
{
	(void)state;
	for (int i = 0; i < vm_nctrlrs; i++) {
		if (vm_ctrlrs[i].ctrlr) {
			int rc = nvr_ctrlr_detach(vm_ctrlrs[i].ctrlr);

			vm_ctrlrs[i].ctrlr = NULL;
			if (rc < 0) {
				printf("[ ERROR    ] detach %s: %s\n", vm_ctrlrs[i].bdf, strerror(-rc));
				return -1;
			}
		}
	}
	return 0;
}

/* The controller to test with (@idx-th, usually 0), or skip() if there is
 * none; fails the test if it is there but did not attach. */
#define VM_CTRLR(idx) ({						\
	if ((idx) >= vm_nctrlrs) {					\
		print_message("no controller #%d in $NVRING_BDFS: skipped\n", (idx)); \
		skip();							\
	}								\
	struct vm_ctrlr *v_ = &vm_ctrlrs[idx];				\
	if (v_->attach_rc != 0)						\
		fail_msg("attach %s failed: %s", v_->bdf, strerror(-v_->attach_rc)); \
	if (v_->nsid == 0)						\
		fail_msg("%s has no usable active namespace", v_->bdf);	\
	v_;								\
})

/* The attached controller with the smallest max_xfer (the harness's
 * mdts=1 controller when there is one). */
static inline struct vm_ctrlr *vm_smallest_mdts(void)
{
	struct vm_ctrlr *best = VM_CTRLR(0);

	for (int i = 1; i < vm_nctrlrs; i++)
		if (vm_ctrlrs[i].ctrlr && vm_ctrlrs[i].nsid &&
		    vm_ctrlrs[i].info->max_xfer < best->info->max_xfer)
			best = &vm_ctrlrs[i];
	return best;
}

/* ---- synchronous commands ------------------------------------------------- */

struct vm_wait {
	volatile bool  done;
	int            calls;    /* callback invocations: must end up 1 */
	struct nvr_cpl cpl;
};

static inline void vm_wait_cb(void *arg, const struct nvr_cpl *cpl)
{
	struct vm_wait *w = arg;

	w->cpl = *cpl;
	w->calls++;
	w->done = true;
}

static inline double vm_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Poll @qp until @w completes: 0, -ETIMEDOUT, or nvr_qpair_poll()'s error. */
static inline int vm_poll_until(struct nvr_qpair *qp, struct vm_wait *w)
{
	double deadline = vm_now() + VM_TIMEOUT_SEC;

	while (!w->done) {
		int rc = nvr_qpair_poll(qp, 0);

		if (rc < 0)
			return rc;
		if (!w->done && vm_now() > deadline)
			return -ETIMEDOUT;
	}
	return 0;
}

/*
 * Run one command to completion. Returns the submission error if
 * submission failed (*submitted = false), else the completion's res
 * (*status set). A hang is -ETIMEDOUT with *submitted = true.
 */
static inline int vm_cmd(struct nvr_qpair *qp, enum nvr_io_op op, uint32_t nsid, void *buf,
			 uint64_t lba, uint32_t nlb, bool *submitted, uint16_t *status)
{
	/* On the heap: if the command hangs, the test fails and the driver
	 * may still run the callback later (at qpair free), so the wait
	 * must outlive this frame. It is leaked in that case only. */
	struct vm_wait *w = calloc(1, sizeof(*w));
	int rc;

	*submitted = false;
	*status = 0;
	if (!w)
		return -ENOMEM;
	switch (op) {
	case NVR_IO_READ:   rc = nvr_read(qp, nsid, buf, lba, nlb, vm_wait_cb, w); break;
	case NVR_IO_WRITE:  rc = nvr_write(qp, nsid, buf, lba, nlb, vm_wait_cb, w); break;
	case NVR_IO_FLUSH:  rc = nvr_flush(qp, nsid, vm_wait_cb, w); break;
	case NVR_IO_WRITE_ZEROES: rc = nvr_write_zeroes(qp, nsid, lba, nlb, vm_wait_cb, w); break;
	case NVR_IO_DEALLOCATE:   rc = nvr_deallocate(qp, nsid, lba, nlb, vm_wait_cb, w); break;
	default: rc = -EINVAL; break;
	}
	if (rc < 0) {
		free(w);
		return rc;
	}
	*submitted = true;
	rc = vm_poll_until(qp, w);
	if (rc < 0)
		return rc;   /* w leaked on purpose, see above */
	*status = w->cpl.status;
	rc = w->calls == 1 ? w->cpl.res : -EPROTO;   /* callback ran more than once */
	free(w);
	return rc;
}

static const char *const vm_op_names[] = {
	[NVR_IO_READ] = "read", [NVR_IO_WRITE] = "write", [NVR_IO_FLUSH] = "flush",
	[NVR_IO_WRITE_ZEROES] = "write-zeroes", [NVR_IO_DEALLOCATE] = "deallocate",
};

/* vm_cmd() that must succeed: fails the test with the command and status. */
#define VM_OK(qp, op, nsid, buf, lba, nlb) do {				\
	bool sub_; uint16_t st_;						\
	int r_ = vm_cmd((qp), (op), (nsid), (buf), (lba), (nlb), &sub_, &st_); \
	if (r_ != 0)							\
		fail_msg("%s nsid %u lba %" PRIu64 " nlb %u: %s %s (status 0x%03x %s)", \
			 vm_op_names[op], (unsigned)(nsid), (uint64_t)(lba), (unsigned)(nlb), \
			 sub_ ? "completed with" : "refused at submit:",	\
			 strerror(-r_), st_, nvr_status_str(st_));		\
} while (0)

/* Compare @len bytes; on mismatch fail with where and what. */
#define VM_SAME(got, want, len, what) do {				\
	long d_ = vm_first_diff((got), (want), (len));			\
	if (d_ >= 0)							\
		fail_msg("%s: data differs at byte %ld of %zu (got 0x%02x, wrote 0x%02x)", \
			 (what), d_, (size_t)(len), ((const uint8_t *)(got))[d_], \
			 ((const uint8_t *)(want))[d_]);			\
} while (0)

#endif
