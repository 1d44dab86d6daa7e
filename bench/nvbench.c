/* SPDX-License-Identifier: MIT */
/*
 * nvbench: 4 KiB random reads and writes for a fixed time, the same loop
 * over several engines on two identical controllers, alternated inside one
 * boot so that the host's noise hits every engine alike.
 *
 *   k-irq    kernel io_uring on /dev/nvmeXn1 (O_DIRECT), interrupts
 *   k-poll   kernel io_uring, IOPOLL + fixed buffers + registered file
 *   n-plain  nvring's io_uring ABI, plain ring, READ/WRITE (bounced)
 *   n-fixed  nvring's io_uring ABI, plain ring, fixed buffers + file
 *   n-poll   nvring's io_uring ABI, IOPOLL + fixed buffers + file
 *   n-api    nvring's embedded API (nvr_read/nvr_write + nvr_qpair_poll)
 *
 * The io_uring engines share one loop; only the three entry points differ
 * (raw syscalls vs nvr_uring_*). Timestamps come from rdtsc, calibrated
 * against CLOCK_MONOTONIC, because the TCG guest's clocksource is the HPET
 * (a system call and an emulated MMIO read per clock_gettime()).
 *
 *   nvbench [--kdev DEV] [--bdf BDF] [--secs S] [--warm S] [--rounds N]
 *           [--qd 1,32] [--rw read,write] [--engines k-irq,...]
 *           [--ios N] [--model] [--mmio N] [--yield] [--nap NS]
 *
 * --ios N ends each run after N completions instead of a time (used under
 * callgrind); --model (bench/profile's build only) attaches the software
 * controller model instead of a BDF. --yield (for callgrind, where threads
 * take turns): never wait inside enter() (no GETEVENTS: one reap pass) and
 * sched_yield() after a call that reaped nothing, so the count of
 * instructions is not swamped by spinning. --nap NS (n-api only): sleep NS
 * after a poll that found nothing, so the vCPU halts and gives its host
 * core back to QEMU's device emulation (an experiment in hybrid polling).
 * --mmio N only times N rewrites of an
 * idle queue pair's doorbells with their current values (harmless: the
 * controller sees no new command and no consumed entry) and N reads of
 * CSTS: the price of one MMIO access under emulation.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include "nvring/nvring.h"
#include "nvring/uring.h"
/* Internal headers, read only: --mmio touches an idle queue pair's
 * doorbells directly to time one MMIO access. */
#include "driver/ctrlr.h"
#include "driver/qpair.h"
#ifdef NVBENCH_MODEL
#include "tests/model/nvme_model.h"
#endif

#define BS        4096u
#define MAX_QD    256
#define MAX_RUNS  512
#define NB        2048   /* latency histogram buckets */

enum { K_IRQ, K_POLL, N_PLAIN, N_FIXED, N_POLL, N_API, NENG };
static const char *eng_name[NENG] = { "k-irq", "k-poll", "n-plain", "n-fixed", "n-poll", "n-api" };
static const char *eng_desc[NENG] = {
	"kernel io_uring, interrupts",
	"kernel io_uring, IOPOLL+fixed buf+reg file",
	"nvring uring, plain (bounce)",
	"nvring uring, fixed buf+reg file",
	"nvring uring, IOPOLL+fixed buf+reg file",
	"nvring embedded API",
};

struct opts {
	const char *kdev, *bdf;
	double secs, warm;
	int rounds;
	int qds[4], nqd;
	bool rw[2];           /* [0] read, [1] write */
	bool eng[NENG];
	uint64_t ios;         /* 0: timed */
	bool model;
	uint64_t mmio;        /* --mmio N */
	bool yield;
	long nap_ns;          /* --nap NS */
};

struct hist {
	uint64_t b[NB];
	uint64_t n;
	double sum;
};

struct result {
	int eng, write, qd, round;
	uint64_t ios, errors;
	double iops, mean_us, p50_us, p99_us;
	double calls_per_io;  /* enter() or qpair_poll() calls per I/O */
	double idle_calls;    /* calls that reaped nothing, per I/O */
};

static struct result results[MAX_RUNS];
static int nresults;
static double tsc_per_ns;

/* ---- clock, PRNG, histogram ---- */

static inline uint64_t tsc(void) { return __rdtsc(); }

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void tsc_calibrate(void)
{
	uint64_t n0 = mono_ns(), t0 = tsc();
	struct timespec d = { 0, 200000000 };
	nanosleep(&d, NULL);
	uint64_t n1 = mono_ns(), t1 = tsc();
	tsc_per_ns = (double)(t1 - t0) / (double)(n1 - n0);
}

static inline uint64_t xrand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

static inline unsigned hidx(uint64_t v)
{
	if (v < 64)
		return (unsigned)v;
	unsigned e = 63 - (unsigned)__builtin_clzll(v) - 5;   /* v >> e in [32, 64) */
	return 64 + (e - 1) * 32 + (unsigned)((v >> e) - 32);
}

static uint64_t hval(unsigned i)   /* middle of bucket i */
{
	if (i < 64)
		return i;
	unsigned e = (i - 64) / 32 + 1;
	return (((uint64_t)(i - 64) % 32 + 32) << e) + ((1ull << e) >> 1);
}

static inline void hadd(struct hist *h, uint64_t ticks)
{
	unsigned i = hidx(ticks);
	h->b[i < NB ? i : NB - 1]++;
	h->n++;
	h->sum += (double)ticks;
}

static double hpct_us(const struct hist *h, double pct)
{
	uint64_t want = (uint64_t)(pct / 100.0 * (double)h->n), seen = 0;
	for (unsigned i = 0; i < NB; i++) {
		seen += h->b[i];
		if (seen > want)
			return (double)hval(i) / tsc_per_ns / 1000.0;
	}
	return 0;
}

/* ---- one run's shared state ---- */

struct run {
	int eng, write, qd;
	uint64_t span_blocks;       /* 4 KiB blocks addressable */
	uint64_t rng;
	uint64_t t_meas, t_end;     /* measured window [t_meas, t_end) in ticks */
	uint64_t ios_target;        /* --ios: stop after this many */
	uint64_t t0[MAX_QD];
	uint8_t *bufs;              /* qd × 4 KiB */
	struct hist *h;
	uint64_t counted, errors, calls, idle_calls;
	bool stopping, yield;
	long nap_ns;
	int inflight;
};

static inline uint64_t next_off(struct run *r)
{
	return (xrand(&r->rng) % r->span_blocks) * BS;
}

/* @slot completed at @now with result @res: count it if it falls in the
 * measured window; true to issue the slot again. */
static inline bool on_complete(struct run *r, uint64_t now, unsigned slot, int res)
{
	if (res != (int)BS && r->errors++ < 3)
		fprintf(stderr, "nvbench: %s: I/O returned %d\n", eng_name[r->eng], res);
	if (now >= r->t_meas && now < r->t_end &&
	    (!r->ios_target || r->counted < r->ios_target)) {
		r->counted++;
		hadd(r->h, now - r->t0[slot]);
	}
	return !r->stopping;
}

static inline void check_stop(struct run *r, uint64_t now)
{
	if (r->ios_target ? r->counted >= r->ios_target : now >= r->t_end)
		r->stopping = true;
}

/* ---- io_uring engines (kernel or nvring underneath) ---- */

struct uops {
	int (*setup)(unsigned, struct io_uring_params *);
	int (*enter)(int, unsigned, unsigned, unsigned, const void *, size_t);
	int (*reg)(int, unsigned, void *, unsigned);
	int (*close)(int);
};

static int k_setup(unsigned e, struct io_uring_params *p)
{
	long r = syscall(__NR_io_uring_setup, e, p);
	return r < 0 ? -errno : (int)r;
}
static int k_enter(int fd, unsigned s, unsigned m, unsigned f, const void *a, size_t z)
{
	long r = syscall(__NR_io_uring_enter, fd, s, m, f, a, z);
	return r < 0 ? -errno : (int)r;
}
static int k_register(int fd, unsigned op, void *arg, unsigned nr)
{
	long r = syscall(__NR_io_uring_register, fd, op, arg, nr);
	return r < 0 ? -errno : (int)r;
}
static int k_close(int fd) { return close(fd) ? -errno : 0; }

static struct nvr_ctrlr *g_ctrlr;   /* for n_setup */
static int n_setup(unsigned e, struct io_uring_params *p) { return nvr_uring_setup(g_ctrlr, e, p); }

static const struct uops kops = { k_setup, k_enter, k_register, k_close };
static const struct uops nops = { n_setup, nvr_uring_enter, nvr_uring_register, nvr_uring_close };

struct uring {
	int fd;
	unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
	void *maps[3];
	size_t lens[3];
};

static int uring_open(const struct uops *o, unsigned entries, unsigned flags, struct uring *u)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	p.flags = flags;
	u->fd = o->setup(entries, &p);
	if (u->fd < 0)
		return u->fd;
	u->lens[0] = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	u->lens[1] = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	u->lens[2] = p.sq_entries * sizeof(struct io_uring_sqe);
	static const off_t offs[3] = { IORING_OFF_SQ_RING, IORING_OFF_CQ_RING, IORING_OFF_SQES };
	for (int i = 0; i < 3; i++) {
		u->maps[i] = mmap(NULL, u->lens[i], PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
				  u->fd, offs[i]);
		if (u->maps[i] == MAP_FAILED)
			return -errno;
	}
	uint8_t *sq = u->maps[0], *cq = u->maps[1];
	u->sq_tail = (unsigned *)(sq + p.sq_off.tail);
	u->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
	u->sq_array = (unsigned *)(sq + p.sq_off.array);
	u->cq_head = (unsigned *)(cq + p.cq_off.head);
	u->cq_tail = (unsigned *)(cq + p.cq_off.tail);
	u->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
	u->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
	u->sqes = u->maps[2];
	return 0;
}

static void uring_close(const struct uops *o, struct uring *u)
{
	for (int i = 0; i < 3; i++)
		if (u->maps[i] && u->maps[i] != MAP_FAILED)
			munmap(u->maps[i], u->lens[i]);
	if (u->fd >= 0)
		o->close(u->fd);
}

static inline void uring_prep(struct run *r, struct uring *u, unsigned *tail, unsigned slot,
			      int fd, bool fixed)
{
	unsigned idx = *tail & *u->sq_mask;
	struct io_uring_sqe *s = &u->sqes[idx];
	memset(s, 0, sizeof(*s));
	if (fixed) {
		s->opcode = r->write ? IORING_OP_WRITE_FIXED : IORING_OP_READ_FIXED;
		s->buf_index = (uint16_t)slot;
		s->flags = IOSQE_FIXED_FILE;
		s->fd = 0;
	} else {
		s->opcode = r->write ? IORING_OP_WRITE : IORING_OP_READ;
		s->fd = fd;
	}
	s->off = next_off(r);
	s->addr = (uintptr_t)(r->bufs + (size_t)slot * BS);
	s->len = BS;
	s->user_data = slot;
	u->sq_array[idx] = idx;
	(*tail)++;
	r->t0[slot] = tsc();
}

static int run_uring(struct run *r, const struct uops *o, int fd, bool iopoll, bool fixed)
{
	struct uring u = { .fd = -1 };
	int ret = uring_open(o, 64, iopoll ? IORING_SETUP_IOPOLL : 0, &u);
	if (ret < 0)
		goto out;
	if (fixed) {
		struct iovec iov[MAX_QD];
		for (int i = 0; i < r->qd; i++)
			iov[i] = (struct iovec){ r->bufs + (size_t)i * BS, BS };
		if ((ret = o->reg(u.fd, IORING_REGISTER_BUFFERS, iov, (unsigned)r->qd)) < 0 ||
		    (ret = o->reg(u.fd, IORING_REGISTER_FILES, &fd, 1)) < 0)
			goto out;
	}
	unsigned tail = *u.sq_tail, to_submit = 0;
	for (int i = 0; i < r->qd; i++)
		uring_prep(r, &u, &tail, (unsigned)i, fd, fixed);
	to_submit = (unsigned)r->qd;
	r->inflight = r->qd;
	while (r->inflight) {
		/* release: SQEs and array entries before the tail */
		__atomic_store_n(u.sq_tail, tail, __ATOMIC_RELEASE);
		ret = r->yield ? o->enter(u.fd, to_submit, 0, 0, NULL, 0)
			       : o->enter(u.fd, to_submit, 1, IORING_ENTER_GETEVENTS, NULL, 0);
		r->calls++;
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN)
			goto out;
		to_submit = 0;
		unsigned ch = *u.cq_head, ct = __atomic_load_n(u.cq_tail, __ATOMIC_ACQUIRE);
		if (ch == ct) {
			r->idle_calls++;
			if (r->yield)
				sched_yield();
		}
		uint64_t now = tsc();
		for (; ch != ct; ch++) {
			struct io_uring_cqe *c = &u.cqes[ch & *u.cq_mask];
			unsigned slot = (unsigned)c->user_data;
			if (on_complete(r, now, slot, c->res)) {
				uring_prep(r, &u, &tail, slot, fd, fixed);
				to_submit++;
			} else {
				r->inflight--;
			}
		}
		/* release: CQE reads before the slots are reused */
		__atomic_store_n(u.cq_head, ch, __ATOMIC_RELEASE);
		check_stop(r, now);
	}
	ret = 0;
out:
	uring_close(o, &u);
	return ret;
}

/* ---- the embedded API ---- */

struct api_ctx;
struct api_slot {
	struct api_ctx *c;
	unsigned slot;
};
struct api_ctx {
	struct run *r;
	struct nvr_qpair *qp;
	uint32_t nsid, nlb, lba_div;
	struct api_slot slots[MAX_QD];
};

static void api_done(void *arg, const struct nvr_cpl *cpl);

static int api_issue(struct api_ctx *c, unsigned slot)
{
	struct run *r = c->r;
	uint64_t lba = next_off(r) / c->lba_div;
	void *buf = r->bufs + (size_t)slot * BS;
	r->t0[slot] = tsc();
	return r->write ? nvr_write(c->qp, c->nsid, buf, lba, c->nlb, api_done, &c->slots[slot])
			: nvr_read(c->qp, c->nsid, buf, lba, c->nlb, api_done, &c->slots[slot]);
}

static void api_done(void *arg, const struct nvr_cpl *cpl)
{
	struct api_slot *s = arg;
	struct api_ctx *c = s->c;
	struct run *r = c->r;
	if (on_complete(r, tsc(), s->slot, cpl->res ? cpl->res : (int)BS) &&
	    api_issue(c, s->slot) == 0)
		return;
	r->inflight--;
}

static int run_api(struct run *r, struct nvr_ctrlr *ctrlr, uint32_t nsid, uint32_t lba_size)
{
	static struct api_ctx c;
	int ret = nvr_qpair_alloc(ctrlr, 64, &c.qp);
	if (ret < 0)
		return ret;
	c.r = r;
	c.nsid = nsid;
	c.nlb = BS / lba_size;
	c.lba_div = lba_size;
	for (int i = 0; i < r->qd; i++) {
		c.slots[i].c = &c;
		c.slots[i].slot = (unsigned)i;
		if ((ret = api_issue(&c, (unsigned)i)) < 0)
			goto out;
		r->inflight++;
	}
	while (r->inflight) {
		ret = nvr_qpair_poll(c.qp, 0);
		r->calls++;
		if (ret < 0)
			goto out;
		if (ret == 0) {
			r->idle_calls++;
			if (r->yield)
				sched_yield();
			if (r->nap_ns) {
				struct timespec ts = { 0, r->nap_ns };
				nanosleep(&ts, NULL);
			}
		}
		check_stop(r, tsc());
	}
	ret = 0;
out:
	nvr_qpair_free(c.qp);
	return ret;
}

/* ---- driver ---- */

struct target {
	int kfd;                    /* O_DIRECT kernel block device, -1 if none */
	int nsfd;                   /* nvr_ns_open(), -1 if none */
	struct nvr_ctrlr *ctrlr;
	uint32_t nsid, lba_size;
	uint64_t span_blocks;
	uint8_t *kbufs, *nbufs, *dbufs;   /* plain, registered-with-ring, DMA */
};

static int run_one(struct target *t, const struct opts *o, int eng, int write, int qd, int round)
{
	static struct hist h;
	memset(&h, 0, sizeof(h));
	struct run r = { .eng = eng, .write = write, .qd = qd, .h = &h,
			 .span_blocks = t->span_blocks, .ios_target = o->ios, .yield = o->yield,
			 .nap_ns = o->nap_ns,
			 .rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)(round + 1) << 32 | (unsigned)eng) };
	uint64_t start = tsc();
	r.t_meas = start + (uint64_t)(o->warm * 1e9 * tsc_per_ns);
	r.t_end = r.t_meas + (uint64_t)(o->secs * 1e9 * tsc_per_ns);
	if (o->ios) {
		r.t_meas = 0;
		r.t_end = UINT64_MAX;
	}
	int ret;
	switch (eng) {
	case K_IRQ:   r.bufs = t->kbufs; ret = run_uring(&r, &kops, t->kfd, false, false); break;
	case K_POLL:  r.bufs = t->kbufs; ret = run_uring(&r, &kops, t->kfd, true, true); break;
	case N_PLAIN: r.bufs = t->nbufs; ret = run_uring(&r, &nops, t->nsfd, false, false); break;
	case N_FIXED: r.bufs = t->nbufs; ret = run_uring(&r, &nops, t->nsfd, false, true); break;
	case N_POLL:  r.bufs = t->nbufs; ret = run_uring(&r, &nops, t->nsfd, true, true); break;
	default:      r.bufs = t->dbufs; ret = run_api(&r, t->ctrlr, t->nsid, t->lba_size); break;
	}
	uint64_t end = tsc();
	if (ret < 0) {
		fprintf(stderr, "nvbench: %s %s qd%d: %s\n", eng_name[eng], write ? "write" : "read",
			qd, strerror(-ret));
		return ret;
	}
	double secs = o->ios ? (double)(end - start) / tsc_per_ns / 1e9
			     : (double)(r.t_end - r.t_meas) / tsc_per_ns / 1e9;
	struct result *res = &results[nresults++];
	*res = (struct result){ .eng = eng, .write = write, .qd = qd, .round = round,
				.ios = r.counted, .errors = r.errors,
				.iops = (double)r.counted / secs,
				.mean_us = h.n ? h.sum / (double)h.n / tsc_per_ns / 1000.0 : 0,
				.p50_us = hpct_us(&h, 50), .p99_us = hpct_us(&h, 99),
				.calls_per_io = r.counted ? (double)r.calls / (double)r.counted : 0,
				.idle_calls = r.counted ? (double)r.idle_calls / (double)r.counted : 0 };
	printf("run %-7s %-5s qd%-2d round %d: %8.0f IOPS  mean %7.1f us  p50 %7.1f  p99 %7.1f"
	       "  calls/io %.2f (idle %.2f)%s\n",
	       eng_name[eng], write ? "write" : "read", qd, round, res->iops, res->mean_us,
	       res->p50_us, res->p99_us, res->calls_per_io, res->idle_calls,
	       r.errors ? "  ERRORS" : "");
	fflush(stdout);
	return r.errors ? -EIO : 0;
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Median over the rounds of @field for (eng, write, qd); 0 if none. */
static double median(int eng, int write, int qd, size_t field)
{
	double v[MAX_RUNS];
	int n = 0;
	for (int i = 0; i < nresults; i++)
		if (results[i].eng == eng && results[i].write == write && results[i].qd == qd)
			v[n++] = *(const double *)((const char *)&results[i] + field);
	if (!n)
		return 0;
	qsort(v, (size_t)n, sizeof(v[0]), cmp_dbl);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void print_table(const struct opts *o)
{
	printf("\nmedians over %d rounds, %.1f s each (+%.2f s warm-up), 4 KiB random, "
	       "engines alternated\n", o->rounds, o->secs, o->warm);
	printf("%-5s %-4s %-7s %9s %8s %8s %8s %8s %9s %9s\n", "rw", "qd", "engine", "IOPS",
	       "mean us", "p50 us", "p99 us", "calls/io", "x k-irq", "x k-poll");
	for (int w = 0; w < 2; w++) {
		if (!o->rw[w])
			continue;
		for (int q = 0; q < o->nqd; q++) {
			int qd = o->qds[q];
			double ki = median(K_IRQ, w, qd, offsetof(struct result, iops));
			double kp = median(K_POLL, w, qd, offsetof(struct result, iops));
			for (int e = 0; e < NENG; e++) {
				if (!o->eng[e])
					continue;
				double iops = median(e, w, qd, offsetof(struct result, iops));
				char rk[16] = "-", rp[16] = "-";
				if (ki > 0)
					snprintf(rk, sizeof(rk), "%.2f", iops / ki);
				if (kp > 0)
					snprintf(rp, sizeof(rp), "%.2f", iops / kp);
				printf("%-5s %-4d %-7s %9.0f %8.1f %8.1f %8.1f %8.2f %9s %9s\n",
				       w ? "write" : "read", qd, eng_name[e], iops,
				       median(e, w, qd, offsetof(struct result, mean_us)),
				       median(e, w, qd, offsetof(struct result, p50_us)),
				       median(e, w, qd, offsetof(struct result, p99_us)),
				       median(e, w, qd, offsetof(struct result, calls_per_io)), rk, rp);
			}
		}
	}
	printf("\nengines:\n");
	for (int e = 0; e < NENG; e++)
		if (o->eng[e])
			printf("  %-7s %s\n", eng_name[e], eng_desc[e]);
}

/* ---- setup ---- */

static int parse_list(const char *s, const char *const *names, int n, bool *out)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", s);
	memset(out, 0, (size_t)n * sizeof(*out));
	for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
		int i;
		for (i = 0; i < n && strcmp(tok, names[i]); i++)
			;
		if (i == n) {
			fprintf(stderr, "nvbench: unknown name '%s'\n", tok);
			return -EINVAL;
		}
		out[i] = true;
	}
	return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const char *const rws[2] = { "read", "write" };
	*o = (struct opts){ .secs = 2, .warm = 0.25, .rounds = 3, .qds = { 1, 32 }, .nqd = 2,
			    .rw = { true, true } };
	for (int e = 0; e < NENG; e++)
		o->eng[e] = true;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--model") || !strcmp(a, "--yield")) {
			*(a[2] == 'm' ? &o->model : &o->yield) = true;
			continue;
		}
		if (!v) {
			fprintf(stderr, "nvbench: %s needs a value\n", a);
			return -EINVAL;
		}
		i++;
		if (!strcmp(a, "--kdev"))
			o->kdev = v;
		else if (!strcmp(a, "--bdf"))
			o->bdf = v;
		else if (!strcmp(a, "--secs"))
			o->secs = atof(v);
		else if (!strcmp(a, "--warm"))
			o->warm = atof(v);
		else if (!strcmp(a, "--rounds"))
			o->rounds = atoi(v);
		else if (!strcmp(a, "--nap"))
			o->nap_ns = atol(v);
		else if (!strcmp(a, "--mmio"))
			o->mmio = strtoull(v, NULL, 0);
		else if (!strcmp(a, "--ios"))
			o->ios = strtoull(v, NULL, 0);
		else if (!strcmp(a, "--rw")) {
			if (parse_list(v, rws, 2, o->rw))
				return -EINVAL;
		} else if (!strcmp(a, "--engines")) {
			if (parse_list(v, eng_name, NENG, o->eng))
				return -EINVAL;
		} else if (!strcmp(a, "--qd")) {
			char buf[64];
			snprintf(buf, sizeof(buf), "%s", v);
			o->nqd = 0;
			for (char *t = strtok(buf, ","); t && o->nqd < 4; t = strtok(NULL, ","))
				o->qds[o->nqd++] = atoi(t);
		} else {
			fprintf(stderr, "nvbench: unknown option %s\n", a);
			return -EINVAL;
		}
	}
	for (int q = 0; q < o->nqd; q++)
		if (o->qds[q] < 1 || o->qds[q] > 32) {
			fprintf(stderr, "nvbench: qd must be 1..32\n");
			return -EINVAL;
		}
	return 0;
}

static int attach(const struct opts *o, struct nvr_ctrlr **c)
{
#ifdef NVBENCH_MODEL
	if (o->model) {
		struct nvme_model *m;
		struct nvr_pci_dev *dev;
		struct nvme_model_cfg cfg = { .ns_blocks = 131072, .lba_shift = 9 };
		int ret = nvme_model_create(&cfg, &m, &dev);
		return ret ? ret : nvr_ctrlr_attach_dev(dev, NULL, c);   /* model leaks at exit */
	}
#endif
	return nvr_ctrlr_attach(o->bdf, NULL, c);
}

static int mmio_cost(struct nvr_ctrlr *c, uint64_t n)
{
	struct nvr_qpair *qp;
	int ret = nvr_qpair_alloc(c, 64, &qp);
	if (ret < 0)
		return ret;
	uint64_t t0 = tsc();
	for (uint64_t i = 0; i < n; i++)
		*qp->sq_db = qp->sq_tail;          /* same tail: no new command */
	uint64_t t1 = tsc();
	for (uint64_t i = 0; i < n; i++)
		*qp->cq_db = qp->cq_head;          /* same head: nothing consumed */
	uint64_t t2 = tsc();
	uint32_t acc = 0;
	for (uint64_t i = 0; i < n; i++)
		acc |= *(volatile uint32_t *)(c->bar + NVME_REG_CSTS);
	uint64_t t3 = tsc();
	for (uint64_t i = 0; i < n; i++)
		nvr_qpair_poll(qp, 0);             /* empty poll: no MMIO unless CFS check */
	uint64_t t4 = tsc();
	double k = 1.0 / tsc_per_ns / (double)n;
	printf("mmio: SQ tail doorbell write %.0f ns, CQ head doorbell write %.0f ns, "
	       "CSTS read %.0f ns (csts %#x), empty nvr_qpair_poll %.0f ns; n=%" PRIu64 "\n",
	       (double)(t1 - t0) * k, (double)(t2 - t1) * k, (double)(t3 - t2) * k, acc,
	       (double)(t4 - t3) * k, n);
	return nvr_qpair_free(qp);
}

int main(int argc, char **argv)
{
	struct opts o;
	if (parse_opts(argc, argv, &o))
		return 2;
	struct target t = { .kfd = -1, .nsfd = -1 };
	bool want_k = o.eng[K_IRQ] || o.eng[K_POLL];
	bool want_n = o.eng[N_PLAIN] || o.eng[N_FIXED] || o.eng[N_POLL] || o.eng[N_API];
	uint64_t kbytes = UINT64_MAX, nbytes = UINT64_MAX;
	int ret;

	if (want_k) {
		if (!o.kdev || (t.kfd = open(o.kdev, O_RDWR | O_DIRECT)) < 0) {
			fprintf(stderr, "nvbench: open %s: %s\n", o.kdev ? o.kdev : "(no --kdev)",
				strerror(errno));
			return 1;
		}
		if (ioctl(t.kfd, BLKGETSIZE64, &kbytes) < 0)
			return perror("BLKGETSIZE64"), 1;
	}
	if (want_n) {
		if (!o.bdf && !o.model) {
			fprintf(stderr, "nvbench: nvring engines need --bdf\n");
			return 1;
		}
		if ((ret = attach(&o, &t.ctrlr)) < 0) {
			fprintf(stderr, "nvbench: attach: %s\n", strerror(-ret));
			return 1;
		}
		g_ctrlr = t.ctrlr;
		uint32_t nsids[1];
		struct nvr_ns_info ni;
		if (nvr_ctrlr_ns_list(t.ctrlr, nsids, 1) < 1 || nvr_ns_get_info(t.ctrlr, nsids[0], &ni))
			return fprintf(stderr, "nvbench: no namespace\n"), 1;
		t.nsid = nsids[0];
		t.lba_size = ni.lba_size;
		nbytes = ni.nlba * ni.lba_size;
		if ((t.nsfd = nvr_ns_open(t.ctrlr, t.nsid)) < 0)
			return fprintf(stderr, "nvbench: ns_open: %s\n", strerror(-t.nsfd)), 1;
		if ((ret = nvr_dma_alloc(t.ctrlr, (size_t)MAX_QD * BS, (void **)&t.dbufs)) < 0)
			return fprintf(stderr, "nvbench: dma_alloc: %s\n", strerror(-ret)), 1;
	}
	t.span_blocks = (kbytes < nbytes ? kbytes : nbytes) / BS;
	t.kbufs = aligned_alloc(BS, (size_t)MAX_QD * BS);
	t.nbufs = aligned_alloc(BS, (size_t)MAX_QD * BS);
	if (!t.kbufs || !t.nbufs || !t.span_blocks)
		return fprintf(stderr, "nvbench: no memory or empty device\n"), 1;
	for (size_t i = 0; i < (size_t)MAX_QD * BS; i++)
		t.kbufs[i] = t.nbufs[i] = (uint8_t)(i * 7 + 1);
	if (t.dbufs)
		memcpy(t.dbufs, t.kbufs, (size_t)MAX_QD * BS);

	if (o.nap_ns)
		prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);   /* naps as short as asked */
	tsc_calibrate();
	printf("nvbench: span %" PRIu64 " MiB, kdev %s, bdf %s, tsc %.3f GHz\n",
	       t.span_blocks * BS >> 20, want_k ? o.kdev : "-", want_n ? (o.model ? "model" : o.bdf) : "-",
	       tsc_per_ns);
	fflush(stdout);

	if (o.mmio) {
		if (!t.ctrlr)
			return fprintf(stderr, "nvbench: --mmio needs an nvring engine\n"), 1;
		ret = mmio_cost(t.ctrlr, o.mmio);
		if (ret < 0)
			fprintf(stderr, "nvbench: mmio: %s\n", strerror(-ret));
		nvr_ns_close(t.nsfd);
		nvr_dma_free(t.ctrlr, t.dbufs);
		nvr_ctrlr_detach(t.ctrlr);
		return ret < 0;
	}

	int failed = 0;
	/* All reads first (the images stay as the writes will leave them
	 * for neither), then all writes; inside, rounds of every engine. */
	for (int w = 0; w < 2; w++) {
		if (!o.rw[w])
			continue;
		for (int round = 0; round < o.rounds; round++)
			for (int q = 0; q < o.nqd; q++)
				for (int e = 0; e < NENG; e++)
					if (o.eng[e] && nresults < MAX_RUNS &&
					    run_one(&t, &o, e, w, o.qds[q], round) < 0)
						failed++;
	}
	print_table(&o);

	if (t.nsfd >= 0)
		nvr_ns_close(t.nsfd);
	if (t.dbufs)
		nvr_dma_free(t.ctrlr, t.dbufs);
	if (t.ctrlr)
		nvr_ctrlr_detach(t.ctrlr);
	if (t.kfd >= 0)
		close(t.kfd);
	free(t.kbufs);
	free(t.nbufs);
	if (failed)
		fprintf(stderr, "nvbench: %d run(s) failed\n", failed);
	return failed ? 1 : 0;
}
