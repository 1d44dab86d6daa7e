/* SPDX-License-Identifier: MIT */
/*
 * nvbench: the same I/O loop over kernel and nvring engines on two identical
 * controllers, alternated inside one boot so that the host's noise hits
 * every engine alike.
 *
 *   k-irq       kernel io_uring on /dev/nvmeXnY (O_DIRECT), interrupts
 *   k-poll      kernel io_uring, IOPOLL + fixed buffers + registered file
 *   k-sqpoll    kernel io_uring, SQPOLL (poller on the next vCPU) + fixed
 *               buffers + registered file
 *   k-cmd       kernel NVMe passthrough: IORING_OP_URING_CMD on /dev/ngXnY
 *               (SQE128/CQE32 ring, registered file, registered buffers:
 *               IORING_URING_CMD_FIXED), interrupts
 *   k-cmd-poll  the same on an IOPOLL ring (the nvme driver's poll queues)
 *   n-plain     nvring's io_uring ABI, plain ring, READ/WRITE (bounced)
 *   n-fixed     nvring's io_uring ABI, plain ring, fixed buffers + file
 *   n-poll      nvring's io_uring ABI, IOPOLL + fixed buffers + file
 *   n-api       nvring's embedded API (nvr_read/nvr_write + nvr_qpair_poll)
 *   spdk        spdk_nvme_perf (--spdk PATH) on the vfio controller, which
 *               nvring gives up for the run and takes back after it
 *
 * Fairness: every run of a cell starts its offset generator from one fixed
 * seed (--seed; thread t gets stream t), so every engine draws the same LBA
 * sequence; the engine order rotates every round; a run with any failed or
 * short I/O is reported FAILED and left out of the medians; ratios are
 * against the best kernel engine of each cell. Timestamps come from rdtsc,
 * calibrated against CLOCK_MONOTONIC, because the TCG guest's clocksource is
 * the HPET (a system call and an emulated MMIO read per clock_gettime()).
 *
 *   nvbench [--kdev DEV] [--bdf BDF] [--secs S] [--warm S] [--rounds N]
 *           [--qd 1,4,32,128] [--seq-qd 1,32] [--rw read,write]
 *           [--pattern rand,seq] [--bs 4096] [--seq-bs 131072]
 *           [--threads 1,2] [--engines k-irq,...] [--seed N] [--spdk PATH]
 *           [--marks] [--json] [--show-offsets] [--ios N] [--model] [--mmio N] [--yield]
 *           [--nap NS]
 *
 * --marks: read two controller registers nobody else reads (CMBLOC at the
 * start of a run, CMBSZ at its end) through nvring's BAR mapping, so that
 * bench/run can cut QEMU's doorbell trace into runs. --json prints every
 * run and the medians as JSON between marker lines at the end.
 * --show-offsets prints the first 8 offsets thread 0 drew in each run
 * (bench/test/selftest checks that every engine drew the same).
 * --ios N ends each run after N completions instead of a time (used under
 * callgrind); --model (bench/profile's build only) attaches the software
 * controller model instead of a BDF. --yield (for callgrind, where threads
 * take turns): never wait inside enter() (no GETEVENTS: one reap pass) and
 * sched_yield() after a call that reaped nothing, so the count of
 * instructions is not swamped by spinning. --nap NS (n-api only): sleep NS
 * after a poll that found nothing, so the vCPU halts and gives its host
 * core back to QEMU's device emulation (an experiment in hybrid polling).
 * --mmio N only times N rewrites of an idle queue pair's doorbells with
 * their current values (harmless: the controller sees no new command and no
 * consumed entry) and N reads of CSTS: the price of one MMIO access under
 * emulation.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>   /* NAN, isnan: macros, no libm */
#include <pthread.h>
#include <sched.h>
#include <linux/fs.h>
#include <linux/nvme_ioctl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include "nvring/nvring.h"
#include "nvring/uring.h"
/* Internal headers, read only: --mmio touches an idle queue pair's
 * doorbells directly, --marks reads two registers through the BAR. */
#include "driver/ctrlr.h"
#include "driver/qpair.h"
#include "driver/nvme_spec.h"
#ifdef NVBENCH_MODEL
#include "tests/model/nvme_model.h"
#endif

#define MAX_QD     128
#define MAX_BS     (1u << 20)
#define MAX_THR    4
#define RING_ENT   256    /* > MAX_QD: a full queue never blocks a submit */
#define NB         2048   /* latency histogram buckets */
#define MARK_START 0x38   /* CMBLOC: read by nobody but --marks */
#define MARK_END   0x3c   /* CMBSZ */
#define NVME_CMD_WRITE 0x01
#define NVME_CMD_READ  0x02

enum { K_IRQ, K_POLL, K_SQPOLL, K_CMD, K_CMD_POLL, N_PLAIN, N_FIXED, N_POLL, N_API, SPDK, NENG };
static const char *const eng_name[NENG] = {
	"k-irq", "k-poll", "k-sqpoll", "k-cmd", "k-cmd-poll",
	"n-plain", "n-fixed", "n-poll", "n-api", "spdk",
};
static const char *const eng_desc[NENG] = {
	"kernel io_uring, O_DIRECT, interrupts",
	"kernel io_uring, IOPOLL+fixed buf+reg file",
	"kernel io_uring, SQPOLL+fixed buf+reg file",
	"kernel NVMe passthrough (URING_CMD on /dev/ngXnY), interrupts",
	"kernel NVMe passthrough, IOPOLL ring",
	"nvring uring, plain (bounce)",
	"nvring uring, fixed buf+reg file",
	"nvring uring, IOPOLL+fixed buf+reg file",
	"nvring embedded API",
	"spdk_nvme_perf on the vfio controller (no -L: no percentiles)",
};
static bool is_kernel(int e) { return e <= K_CMD_POLL; }
static bool is_nvring(int e) { return e >= N_PLAIN && e <= N_API; }

enum { W_RANDREAD, W_RANDWRITE, W_SEQREAD, W_SEQWRITE, NWL };
static const char *const wl_name[NWL] = { "randread", "randwrite", "seqread", "seqwrite" };
static const char *const spdk_wl[NWL] = { "randread", "randwrite", "read", "write" };
static bool wl_write(int w) { return w == W_RANDWRITE || w == W_SEQWRITE; }
static bool wl_seq(int w) { return w >= W_SEQREAD; }

struct opts {
	const char *kdev, *bdf, *spdk;
	double secs, warm;
	int rounds;
	int qds[8], nqd, sqds[8], nsqd, thr[4], nthr;
	bool rw[2], pat[2];   /* [0] read / rand, [1] write / seq */
	unsigned bs, seq_bs;
	bool eng[NENG];
	uint64_t seed;
	uint64_t ios;         /* 0: timed */
	bool model, yield, marks, json, show_offsets;
	uint64_t mmio;        /* --mmio N */
	long nap_ns;          /* --nap NS */
};

struct hist {
	uint64_t b[NB];
	uint64_t n, max;
	double sum;
};

struct result {
	int eng, wl, qd, thr, round, seq;
	unsigned bs;
	bool failed, marked, has_pct;
	uint64_t ios, done, errors;   /* in the window; in the whole run */
	double iops, mbps, mean_us, p50_us, p99_us, p999_us, max_us;
	double cpu_ns_per_io;  /* submitting threads' CPU time / I/Os done; -1: unknown */
	double calls_per_io;   /* enter() or qpair_poll() calls per I/O */
};

static struct result *results;
static int nresults, maxresults;
static double tsc_per_ns;

/* ---- clock, PRNG, histogram ---- */

static inline uint64_t tsc(void) { return __rdtsc(); }

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void tsc_calibrate(void)
{
	uint64_t n0 = clock_ns(CLOCK_MONOTONIC), t0 = tsc();
	struct timespec d = { 0, 200000000 };
	nanosleep(&d, NULL);
	uint64_t n1 = clock_ns(CLOCK_MONOTONIC), t1 = tsc();
	tsc_per_ns = (double)(t1 - t0) / (double)(n1 - n0);
}

static inline uint64_t xrand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

/* splitmix64 of (seed, stream): a nonzero xorshift state per thread. */
static uint64_t seed_state(uint64_t seed, unsigned stream)
{
	uint64_t z = seed + 0x9e3779b97f4a7c15ull * (stream + 1);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return z ? z : 1;
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
	if (ticks > h->max)
		h->max = ticks;   /* exact, not a bucket's middle */
}

static void hmerge(struct hist *d, const struct hist *s)
{
	for (unsigned i = 0; i < NB; i++)
		d->b[i] += s->b[i];
	d->n += s->n;
	d->sum += s->sum;
	if (s->max > d->max)
		d->max = s->max;
}

static double ticks_us(double t) { return t / tsc_per_ns / 1000.0; }

static double hpct_us(const struct hist *h, double pct)
{
	uint64_t want = (uint64_t)(pct / 100.0 * (double)h->n), seen = 0;
	for (unsigned i = 0; i < NB; i++) {
		seen += h->b[i];
		if (seen > want) {
			uint64_t v = hval(i);
			return ticks_us((double)(v < h->max ? v : h->max));
		}
	}
	return 0;
}

/* ---- one thread's run state ---- */

struct run {
	int eng, qd;
	bool write, seq;
	unsigned bs, lba_size;
	uint64_t span;              /* bytes addressable, a multiple of bs */
	uint64_t rng, pos;          /* random state / next sequential offset */
	uint64_t first[8];          /* the first offsets drawn (--show-offsets) */
	unsigned nfirst;
	uint64_t t_meas, t_end;     /* measured window [t_meas, t_end) in ticks */
	uint64_t ios_target;        /* --ios: stop after this many */
	uint64_t t0[MAX_QD];
	uint8_t *bufs;              /* qd × bs */
	struct hist h;
	uint64_t counted, done, errors, calls, cpu_ns;
	bool stopping, yield;
	long nap_ns;
	int inflight, ret;
};

static inline uint64_t next_off(struct run *r)
{
	uint64_t off;
	if (r->seq) {
		off = r->pos;
		r->pos = off + r->bs >= r->span ? 0 : off + r->bs;
	} else {
		off = (xrand(&r->rng) % (r->span / r->bs)) * r->bs;
	}
	if (r->nfirst < 8)
		r->first[r->nfirst++] = off;
	return off;
}

/* @slot completed at @now with result @res (bytes, or <0): count it if it
 * falls in the measured window; true to issue the slot again. */
static inline bool on_complete(struct run *r, uint64_t now, unsigned slot, int res)
{
	r->done++;
	if (res != (int)r->bs && r->errors++ < 3)
		fprintf(stderr, "nvbench: %s: I/O returned %d\n", eng_name[r->eng], res);
	if (now >= r->t_meas && now < r->t_end &&
	    (!r->ios_target || r->counted < r->ios_target)) {
		r->counted++;
		hadd(&r->h, now - r->t0[slot]);
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

/* How an engine drives its ring. */
struct ucfg {
	const struct uops *o;
	int fd;
	unsigned flags;        /* IORING_SETUP_* */
	int sq_cpu;            /* SQPOLL: the poller's vCPU */
	bool fixed;            /* fixed buffers + registered file */
	bool cmd;              /* NVMe passthrough SQEs */
	uint32_t nsid;         /* cmd: the namespace */
};

struct uring {
	int fd;
	unsigned *sq_tail, *sq_mask, *sq_array, *sq_flags, *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
	unsigned sqe_shift, cqe_shift;   /* log2 of 64-/16-byte units per entry */
	void *maps[3];
	size_t lens[3];
};

static int uring_open(const struct uops *o, unsigned entries, unsigned flags, int sq_cpu,
		      struct uring *u)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	p.flags = flags;
	p.sq_thread_idle = 1000;   /* SQPOLL: ms before the poller sleeps */
	if ((flags & IORING_SETUP_SQPOLL) && sq_cpu >= 0) {
		p.flags |= IORING_SETUP_SQ_AFF;
		p.sq_thread_cpu = (unsigned)sq_cpu;
	}
	u->fd = o->setup(entries, &p);
	if (u->fd < 0)
		return u->fd;
	u->sqe_shift = flags & IORING_SETUP_SQE128 ? 1 : 0;
	u->cqe_shift = flags & IORING_SETUP_CQE32 ? 1 : 0;
	u->lens[0] = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	u->lens[1] = p.cq_off.cqes + (p.cq_entries * sizeof(struct io_uring_cqe) << u->cqe_shift);
	u->lens[2] = p.sq_entries * sizeof(struct io_uring_sqe) << u->sqe_shift;
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
	u->sq_flags = (unsigned *)(sq + p.sq_off.flags);
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

static inline void uring_prep(struct run *r, struct uring *u, const struct ucfg *c,
			      unsigned *tail, unsigned slot)
{
	unsigned idx = *tail & *u->sq_mask;
	struct io_uring_sqe *s = &u->sqes[idx << u->sqe_shift];
	memset(s, 0, sizeof(*s) << u->sqe_shift);
	uint64_t off = next_off(r);
	void *buf = r->bufs + (size_t)slot * r->bs;
	if (c->cmd) {
		/* The NVMe command itself, in the 80 bytes an SQE128 has after
		 * its common header. */
		struct nvme_uring_cmd *nc = (struct nvme_uring_cmd *)s->cmd;
		uint64_t slba = off / r->lba_size;
		s->opcode = IORING_OP_URING_CMD;
		s->cmd_op = NVME_URING_CMD_IO;
		s->flags = IOSQE_FIXED_FILE;
		s->fd = 0;
		nc->opcode = r->write ? NVME_CMD_WRITE : NVME_CMD_READ;
		nc->nsid = c->nsid;
		nc->addr = (uintptr_t)buf;
		nc->data_len = r->bs;
		/* the registered buffer of this slot (Linux 6.1's nvme
		 * passthrough imports it instead of pinning per I/O) */
		s->uring_cmd_flags = IORING_URING_CMD_FIXED;
		s->buf_index = (uint16_t)slot;
		nc->cdw10 = (uint32_t)slba;
		nc->cdw11 = (uint32_t)(slba >> 32);
		nc->cdw12 = r->bs / r->lba_size - 1;   /* 0-based block count */
	} else if (c->fixed) {
		s->opcode = r->write ? IORING_OP_WRITE_FIXED : IORING_OP_READ_FIXED;
		s->buf_index = (uint16_t)slot;
		s->flags = IOSQE_FIXED_FILE;
		s->fd = 0;
	} else {
		s->opcode = r->write ? IORING_OP_WRITE : IORING_OP_READ;
		s->fd = c->fd;
	}
	if (!c->cmd) {
		s->off = off;
		s->addr = (uintptr_t)buf;
		s->len = r->bs;
	}
	s->user_data = slot;
	u->sq_array[idx] = idx;
	(*tail)++;
	r->t0[slot] = tsc();
}

static int uring_prepare(struct run *r, const struct ucfg *c, struct uring *u)
{
	int ret = uring_open(c->o, RING_ENT, c->flags, c->sq_cpu, u);
	if (ret < 0)
		return ret;
	if (c->fixed) {
		struct iovec iov[MAX_QD];
		for (int i = 0; i < r->qd; i++)
			iov[i] = (struct iovec){ r->bufs + (size_t)i * r->bs, r->bs };
		if ((ret = c->o->reg(u->fd, IORING_REGISTER_BUFFERS, iov, (unsigned)r->qd)) < 0)
			return ret;
		int fd = c->fd;
		if ((ret = c->o->reg(u->fd, IORING_REGISTER_FILES, &fd, 1)) < 0)
			return ret;
	}
	return 0;
}

static int uring_loop(struct run *r, const struct ucfg *c, struct uring *u)
{
	bool sqpoll = c->flags & IORING_SETUP_SQPOLL;
	unsigned tail = *u->sq_tail, to_submit = 0;
	int ret;
	for (int i = 0; i < r->qd; i++)
		uring_prep(r, u, c, &tail, (unsigned)i);
	to_submit = (unsigned)r->qd;
	r->inflight = r->qd;
	while (r->inflight) {
		/* release: SQEs and array entries before the tail */
		__atomic_store_n(u->sq_tail, tail, __ATOMIC_RELEASE);
		unsigned flags = r->yield ? 0 : IORING_ENTER_GETEVENTS, min = r->yield ? 0 : 1;
		if (sqpoll) {
			/* seq_cst: the tail store before the NEED_WAKEUP load,
			 * against the poller's flag store before its tail load */
			__atomic_thread_fence(__ATOMIC_SEQ_CST);
			if (__atomic_load_n(u->sq_flags, __ATOMIC_RELAXED) & IORING_SQ_NEED_WAKEUP)
				flags |= IORING_ENTER_SQ_WAKEUP;
		}
		ret = c->o->enter(u->fd, to_submit, min, flags, NULL, 0);
		r->calls++;
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
			return ret;
		to_submit = 0;
		/* acquire: the CQEs before the tail that publishes them */
		unsigned ch = *u->cq_head, ct = __atomic_load_n(u->cq_tail, __ATOMIC_ACQUIRE);
		if (ch == ct && r->yield)
			sched_yield();
		uint64_t now = tsc();
		for (; ch != ct; ch++) {
			struct io_uring_cqe *cqe = &u->cqes[(ch & *u->cq_mask) << u->cqe_shift];
			unsigned slot = (unsigned)cqe->user_data;
			/* passthrough: 0 is success, >0 an NVMe status */
			int res = c->cmd ? (cqe->res == 0 ? (int)r->bs : cqe->res > 0 ? -EIO : cqe->res)
					 : cqe->res;
			if (on_complete(r, now, slot, res)) {
				uring_prep(r, u, c, &tail, slot);
				to_submit++;
			} else {
				r->inflight--;
			}
		}
		/* release: CQE reads before the slots are reused */
		__atomic_store_n(u->cq_head, ch, __ATOMIC_RELEASE);
		check_stop(r, now);
	}
	return 0;
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
	uint32_t nsid;
	struct api_slot slots[MAX_QD];
};

static void api_done(void *arg, const struct nvr_cpl *cpl);

static int api_issue(struct api_ctx *c, unsigned slot)
{
	struct run *r = c->r;
	uint64_t lba = next_off(r) / r->lba_size;
	void *buf = r->bufs + (size_t)slot * r->bs;
	uint32_t nlb = r->bs / r->lba_size;
	r->t0[slot] = tsc();
	return r->write ? nvr_write(c->qp, c->nsid, buf, lba, nlb, api_done, &c->slots[slot])
			: nvr_read(c->qp, c->nsid, buf, lba, nlb, api_done, &c->slots[slot]);
}

static void api_done(void *arg, const struct nvr_cpl *cpl)
{
	struct api_slot *s = arg;
	struct api_ctx *c = s->c;
	struct run *r = c->r;
	if (on_complete(r, tsc(), s->slot, cpl->res ? cpl->res : (int)r->bs) &&
	    api_issue(c, s->slot) == 0)
		return;
	r->inflight--;
}

static int api_loop(struct run *r, struct api_ctx *c)
{
	int ret;
	for (int i = 0; i < r->qd; i++) {
		c->slots[i].c = c;
		c->slots[i].slot = (unsigned)i;
		if ((ret = api_issue(c, (unsigned)i)) < 0)
			return ret;
		r->inflight++;
	}
	while (r->inflight) {
		ret = nvr_qpair_poll(c->qp, 0);
		r->calls++;
		if (ret < 0)
			return ret;
		if (ret == 0) {
			if (r->yield)
				sched_yield();
			if (r->nap_ns) {
				struct timespec ts = { 0, r->nap_ns };
				nanosleep(&ts, NULL);
			}
		}
		check_stop(r, tsc());
	}
	return 0;
}

/* ---- threads ---- */

struct target {
	int kfd;                    /* O_DIRECT kernel block device, -1 if none */
	int ngfd;                   /* its NVMe generic char device, -1 if none */
	uint32_t knsid, klba_size;
	int nsfd;                   /* nvr_ns_open(), -1 if none */
	struct nvr_ctrlr *ctrlr;
	uint32_t nsid, lba_size;
	uint64_t span;
	uint8_t *kbufs[MAX_THR], *nbufs[MAX_THR], *dbufs[MAX_THR];   /* plain, ring, DMA */
};

struct worker {
	pthread_t tid;
	int cpu;
	struct run r;
	struct target *t;
	pthread_barrier_t *ready, *go;
};

static pthread_mutex_t setup_lock = PTHREAD_MUTEX_INITIALIZER;

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct run *r = &w->r;
	struct target *t = w->t;
	cpu_set_t cs;
	CPU_ZERO(&cs);
	CPU_SET(w->cpu, &cs);
	sched_setaffinity(0, sizeof(cs), &cs);   /* best effort: thread t on vCPU t */

	struct ucfg c = { .o = &kops, .fd = t->kfd, .nsid = t->knsid, .sq_cpu = -1 };
	struct uring u = { .fd = -1 };
	static __thread struct api_ctx a;
	bool api = r->eng == N_API;
	int ret = 0;
	switch (r->eng) {
	case K_IRQ: break;
	case K_POLL: c.flags = IORING_SETUP_IOPOLL; c.fixed = true; break;
	case K_SQPOLL:
		/* The poller on the next vCPU, not on the submitter's own (the
		 * submitter is pinned; sharing one vCPU with a spinning poller
		 * costs a scheduler tick per wake-up). */
		c.flags = IORING_SETUP_SQPOLL;
		c.fixed = true;
		c.sq_cpu = (w->cpu + 1) % (int)sysconf(_SC_NPROCESSORS_ONLN);
		break;
	case K_CMD_POLL: c.flags = IORING_SETUP_IOPOLL; /* fall through */
	case K_CMD:
		c.flags |= IORING_SETUP_SQE128 | IORING_SETUP_CQE32;
		c.fd = t->ngfd; c.fixed = true; c.cmd = true;
		break;
	case N_PLAIN: c.o = &nops; c.fd = t->nsfd; break;
	case N_FIXED: c.o = &nops; c.fd = t->nsfd; c.fixed = true; break;
	case N_POLL: c.o = &nops; c.fd = t->nsfd; c.fixed = true; c.flags = IORING_SETUP_IOPOLL; break;
	default: break;
	}
	/* Set up one at a time: both threads share one controller. */
	pthread_mutex_lock(&setup_lock);
	if (api) {
		memset(&a, 0, sizeof(a));
		a.r = r;
		a.nsid = t->nsid;
		ret = nvr_qpair_alloc(t->ctrlr, RING_ENT, &a.qp);
	} else {
		ret = uring_prepare(r, &c, &u);
	}
	pthread_mutex_unlock(&setup_lock);
	pthread_barrier_wait(w->ready);
	pthread_barrier_wait(w->go);      /* main has set the window */
	uint64_t cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
	if (ret == 0)
		ret = api ? api_loop(r, &a) : uring_loop(r, &c, &u);
	r->cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
	if (api) {
		if (a.qp)
			nvr_qpair_free(a.qp);
	} else {
		uring_close(c.o, &u);
	}
	r->ret = ret;
	return NULL;
}

/* ---- spdk_nvme_perf ---- */

static int attach(const struct opts *o, struct nvr_ctrlr **c);
static int target_nvring_open(const struct opts *o, struct target *t, int nthr);
static void target_nvring_close(struct target *t, int nthr);

/* One spdk_nvme_perf run on the vfio controller, which nvring releases for
 * it. Parses the "Total" line: IOPS, MiB/s, average, min, max (us). */
static int run_spdk(const struct opts *o, struct target *t, int wl, int qd, int thr,
		    struct result *res, int nthr_max)
{
	char cmd[1024], line[512], warm[32] = "";
	/* -t and -a take whole seconds */
	int secs = (int)(o->secs + 0.999);
	if ((int)o->warm > 0)
		snprintf(warm, sizeof(warm), " -a %d", (int)o->warm);
	target_nvring_close(t, nthr_max);
	snprintf(cmd, sizeof(cmd),
		 "%s %s -q %d -o %u -w %s -t %d%s -c %#x -r 'trtype:PCIe traddr:%s' 2>&1",
		 thr == 1 ? "taskset 1" : "", o->spdk, qd, res->bs, spdk_wl[wl], secs, warm,
		 (1u << thr) - 1, o->bdf ? o->bdf : "model");
	FILE *p = popen(cmd, "r");
	bool got = false;
	if (p) {
		while (fgets(line, sizeof(line), p)) {
			double iops, mibs, avg, mn, mx;
			if (!strncmp(line, "Total", 5) && strchr(line, ':') &&
			    sscanf(strchr(line, ':') + 1, "%lf %lf %lf %lf %lf", &iops, &mibs, &avg,
				   &mn, &mx) == 5) {
				res->iops = iops;
				res->mbps = mibs * 1048576.0 / 1e6;
				res->mean_us = avg;
				res->max_us = mx;
				got = true;
			}
		}
	}
	int st = p ? pclose(p) : -1;
	int ret = target_nvring_open(o, t, nthr_max);
	res->cpu_ns_per_io = -1;
	res->failed = !got || st != 0;
	if (res->failed)
		fprintf(stderr, "nvbench: spdk: %s: exit status %d%s\n", cmd, st,
			got ? "" : ", no Total line");
	return ret;
}

/* ---- one run ---- */

/* @v with format @f, or "-" where there is no value (NAN, or < 0) */
static void fmt(char *b, size_t n, double v, const char *f)
{
	if (isnan(v) || v < 0)
		snprintf(b, n, "-");
	else
		snprintf(b, n, f, v);
}


static void mark(struct target *t, unsigned reg)
{
	if (t->ctrlr && t->ctrlr->bar)
		(void)*(volatile uint32_t *)(t->ctrlr->bar + reg);
}

static int run_one(struct target *t, const struct opts *o, int eng, int wl, int qd, int thr,
		   int round, int nthr_max)
{
	static struct worker w[MAX_THR];
	pthread_barrier_t ready, go;
	struct result *res = &results[nresults];
	*res = (struct result){ .eng = eng, .wl = wl, .qd = qd, .thr = thr, .round = round,
				.seq = nresults, .bs = wl_seq(wl) ? o->seq_bs : o->bs };
	if (eng == SPDK) {
		int ret = run_spdk(o, t, wl, qd, thr, res, nthr_max);
		nresults++;
		if (ret < 0)
			return ret;
		goto print;
	}
	pthread_barrier_init(&ready, NULL, (unsigned)thr + 1);
	pthread_barrier_init(&go, NULL, (unsigned)thr + 1);
	for (int i = 0; i < thr; i++) {
		struct run *r = &w[i].r;
		memset(r, 0, sizeof(*r));
		r->eng = eng;
		r->qd = qd;
		r->write = wl_write(wl);
		r->seq = wl_seq(wl);
		r->bs = res->bs;
		r->lba_size = is_kernel(eng) ? t->klba_size : t->lba_size;
		r->span = t->span / r->bs * r->bs;
		/* The same offsets for every engine: one seed, stream i. */
		r->rng = seed_state(o->seed, (unsigned)i);
		r->pos = r->span / r->bs / (unsigned)thr * (unsigned)i * r->bs;
		r->ios_target = o->ios;
		r->yield = o->yield;
		r->nap_ns = o->nap_ns;
		r->bufs = is_kernel(eng) ? t->kbufs[i] : eng == N_API ? t->dbufs[i] : t->nbufs[i];
		w[i].cpu = i % (int)sysconf(_SC_NPROCESSORS_ONLN);
		w[i].t = t;
		w[i].ready = &ready;
		w[i].go = &go;
	}
	if (o->marks)
		mark(t, MARK_START);
	for (int i = 0; i < thr; i++)
		pthread_create(&w[i].tid, NULL, worker_main, &w[i]);
	pthread_barrier_wait(&ready);
	uint64_t start = tsc(), t_meas = start + (uint64_t)(o->warm * 1e9 * tsc_per_ns);
	uint64_t t_end = t_meas + (uint64_t)(o->secs * 1e9 * tsc_per_ns);
	for (int i = 0; i < thr; i++) {
		w[i].r.t_meas = o->ios ? 0 : t_meas;
		w[i].r.t_end = o->ios ? UINT64_MAX : t_end;
	}
	pthread_barrier_wait(&go);   /* orders the window stores before the threads read it */
	int ret = 0;
	struct hist h;
	memset(&h, 0, sizeof(h));
	uint64_t counted = 0, done = 0, cpu = 0, calls = 0;
	for (int i = 0; i < thr; i++) {
		pthread_join(w[i].tid, NULL);
		struct run *r = &w[i].r;
		if (r->ret < 0 && !ret)
			ret = r->ret;
		hmerge(&h, &r->h);
		counted += r->counted;
		done += r->done;
		cpu += r->cpu_ns;
		calls += r->calls;
		res->errors += r->errors;
	}
	uint64_t end = tsc();
	if (o->marks)
		mark(t, MARK_END);
	res->marked = o->marks && t->ctrlr;
	pthread_barrier_destroy(&ready);
	pthread_barrier_destroy(&go);
	nresults++;
	if (ret < 0) {
		fprintf(stderr, "nvbench: %s %s qd%d t%d: %s\n", eng_name[eng], wl_name[wl], qd, thr,
			strerror(-ret));
		res->failed = true;
		res->errors++;
	}
	double secs = o->ios ? (double)(end - start) / tsc_per_ns / 1e9 : o->secs;
	res->ios = counted;
	res->done = done;
	res->failed |= res->errors > 0;
	res->has_pct = true;
	res->iops = (double)counted / secs;
	res->mbps = res->iops * res->bs / 1e6;
	res->mean_us = h.n ? ticks_us(h.sum / (double)h.n) : 0;
	res->p50_us = hpct_us(&h, 50);
	res->p99_us = hpct_us(&h, 99);
	res->p999_us = hpct_us(&h, 99.9);
	res->max_us = ticks_us((double)h.max);
	res->cpu_ns_per_io = done ? (double)cpu / (double)done : 0;
	res->calls_per_io = done ? (double)calls / (double)done : 0;
print:
	char pct[3][16], cpus[16];
	fmt(pct[0], 16, res->has_pct ? res->p50_us : NAN, "%7.1f");
	fmt(pct[1], 16, res->has_pct ? res->p99_us : NAN, "%7.1f");
	fmt(pct[2], 16, res->has_pct ? res->p999_us : NAN, "%7.1f");
	fmt(cpus, 16, res->cpu_ns_per_io, "%6.0f");
	printf("run %-10s %-9s qd%-3d t%d round %d: %8.0f IOPS %7.1f MB/s  mean %7.1f  p50 %7s"
	       "  p99 %7s  p99.9 %7s  max %8.1f us  cpu/io %6s ns  calls/io %.2f%s\n",
	       eng_name[eng], wl_name[wl], qd, thr, round, res->iops, res->mbps, res->mean_us,
	       pct[0], pct[1], pct[2], res->max_us, cpus, res->calls_per_io,
	       res->failed ? "  FAILED" : "");
	if (o->show_offsets && eng != SPDK) {
		/* what a test compares across engines: thread 0's first offsets */
		printf("offsets %s %s qd%d t%d round %d:", eng_name[eng], wl_name[wl], qd, thr, round);
		for (unsigned i = 0; i < w[0].r.nfirst; i++)
			printf(" %" PRIu64, w[0].r.first[i]);
		printf("\n");
	}
	fflush(stdout);
	return 0;
}

/* ---- medians, table, JSON ---- */

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Median of @field over the good runs of a cell; NAN if none. */
static double median(int eng, int wl, int qd, int thr, size_t field)
{
	double *v = malloc(sizeof(double) * (size_t)(nresults + 1));
	int n = 0;
	for (int i = 0; i < nresults; i++) {
		const struct result *r = &results[i];
		if (r->eng == eng && r->wl == wl && r->qd == qd && r->thr == thr && !r->failed)
			v[n++] = *(const double *)((const char *)r + field);
	}
	double m = NAN;
	if (n) {
		qsort(v, (size_t)n, sizeof(v[0]), cmp_dbl);
		m = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	}
	free(v);
	return m;
}
#define MED(e, w, q, t, f) median(e, w, q, t, offsetof(struct result, f))

static int best_kernel(const struct opts *o, int wl, int qd, int thr)
{
	int best = -1;
	double bi = 0;
	for (int e = 0; e <= K_CMD_POLL; e++) {
		double v = o->eng[e] ? MED(e, wl, qd, thr, iops) : NAN;
		if (!isnan(v) && v > bi) {
			bi = v;
			best = e;
		}
	}
	return best;
}

static const int *wl_qds(const struct opts *o, int wl, int *n)
{
	*n = wl_seq(wl) ? o->nsqd : o->nqd;
	return wl_seq(wl) ? o->sqds : o->qds;
}

static bool wl_on(const struct opts *o, int wl) { return o->rw[wl_write(wl)] && o->pat[wl_seq(wl)]; }

static int good_runs(int eng, int wl, int qd, int thr)
{
	int n = 0;
	for (int i = 0; i < nresults; i++)
		n += results[i].eng == eng && results[i].wl == wl && results[i].qd == qd &&
		     results[i].thr == thr && !results[i].failed;
	return n;
}

static void print_table(const struct opts *o)
{
	printf("\nmedians over %d rounds (FAILED runs left out), %.2f s each after %.2f s warm-up;"
	       " every engine drew the same seeded offsets (seed %" PRIu64 "), engine order rotated"
	       " each round; ratio against the best kernel engine of the cell\n",
	       o->rounds, o->secs, o->warm, o->seed);
	for (int wl = 0; wl < NWL; wl++) {
		if (!wl_on(o, wl))
			continue;
		int nq;
		const int *qds = wl_qds(o, wl, &nq);
		for (int ti = 0; ti < o->nthr; ti++)
			for (int q = 0; q < nq; q++) {
				int thr = o->thr[ti], qd = qds[q];
				int bk = best_kernel(o, wl, qd, thr);
				double kb = bk >= 0 ? MED(bk, wl, qd, thr, iops) : NAN;
				printf("\n%s %u KiB qd%d t%d (best kernel: %s)\n", wl_name[wl],
				       (wl_seq(wl) ? o->seq_bs : o->bs) >> 10, qd, thr,
				       bk >= 0 ? eng_name[bk] : "none");
				printf("  %-10s %9s %8s %8s %8s %8s %9s %8s %7s %5s\n", "engine", "IOPS",
				       "MB/s", "p50 us", "p99 us", "p99.9", "max us", "cpu ns/io",
				       "x bestk", "runs");
				for (int e = 0; e < NENG; e++) {
					if (!o->eng[e])
						continue;
					char c[8][24];
					double iops = MED(e, wl, qd, thr, iops);
					fmt(c[0], 24, iops, "%.0f");
					fmt(c[1], 24, MED(e, wl, qd, thr, mbps), "%.1f");
					bool pct = e != SPDK;
					fmt(c[2], 24, pct ? MED(e, wl, qd, thr, p50_us) : NAN, "%.1f");
					fmt(c[3], 24, pct ? MED(e, wl, qd, thr, p99_us) : NAN, "%.1f");
					fmt(c[4], 24, pct ? MED(e, wl, qd, thr, p999_us) : NAN, "%.1f");
					fmt(c[5], 24, MED(e, wl, qd, thr, max_us), "%.1f");
					fmt(c[6], 24, MED(e, wl, qd, thr, cpu_ns_per_io), "%.0f");
					fmt(c[7], 24, kb > 0 ? iops / kb : NAN, "%.2f");
					printf("  %-10s %9s %8s %8s %8s %8s %9s %8s %7s %2d/%-2d\n",
					       eng_name[e], c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
					       good_runs(e, wl, qd, thr), o->rounds);
				}
			}
	}
	printf("\nengines:\n");
	for (int e = 0; e < NENG; e++)
		if (o->eng[e])
			printf("  %-10s %s\n", eng_name[e], eng_desc[e]);
}

static void jnum(const char *k, double v, bool comma)
{
	if (isnan(v) || isinf(v))
		printf("\"%s\": null%s", k, comma ? ", " : "");
	else
		printf("\"%s\": %.3f%s", k, v, comma ? ", " : "");
}

/* One object per line (bench/run and bench/plot read it line by line). */
static void print_json(const struct opts *o, const char *cmdline)
{
	struct utsname un;
	uname(&un);
	printf("=== nvbench json begin ===\n{\"nvbench\": {\"secs\": %.3f, \"warm\": %.3f, "
	       "\"rounds\": %d, \"seed\": %" PRIu64 ", \"bs\": %u, \"seq_bs\": %u, "
	       "\"guest_kernel\": \"%s\", \"tsc_ghz\": %.3f, \"command\": \"%s\"},\n\"runs\": [\n",
	       o->secs, o->warm, o->rounds, o->seed, o->bs, o->seq_bs, un.release, tsc_per_ns,
	       cmdline);
	for (int i = 0; i < nresults; i++) {
		const struct result *r = &results[i];
		printf("{\"run\": %d, \"engine\": \"%s\", \"workload\": \"%s\", \"bs\": %u, "
		       "\"qd\": %d, \"threads\": %d, \"round\": %d, \"ios\": %" PRIu64 ", \"ios_total\": %" PRIu64 ", "
		       "\"errors\": %" PRIu64 ", \"failed\": %s, \"mark\": %s, ",
		       r->seq, eng_name[r->eng], wl_name[r->wl], r->bs, r->qd, r->thr, r->round,
		       r->ios, r->done, r->errors, r->failed ? "true" : "false", r->marked ? "true" : "false");
		jnum("iops", r->iops, true);
		jnum("mbps", r->mbps, true);
		jnum("lat_mean_us", r->mean_us, true);
		jnum("lat_p50_us", r->has_pct ? r->p50_us : NAN, true);
		jnum("lat_p99_us", r->has_pct ? r->p99_us : NAN, true);
		jnum("lat_p999_us", r->has_pct ? r->p999_us : NAN, true);
		jnum("lat_max_us", r->max_us, true);
		jnum("cpu_ns_per_io", r->cpu_ns_per_io < 0 ? NAN : r->cpu_ns_per_io, true);
		printf("\"sq_doorbells_per_io\": null, \"cq_doorbells_per_io\": null}%s\n",
		       i + 1 < nresults ? "," : "");
	}
	printf("],\n\"medians\": [\n");
	bool first = true;
	for (int wl = 0; wl < NWL; wl++) {
		if (!wl_on(o, wl))
			continue;
		int nq;
		const int *qds = wl_qds(o, wl, &nq);
		for (int ti = 0; ti < o->nthr; ti++)
			for (int q = 0; q < nq; q++) {
				int thr = o->thr[ti], qd = qds[q];
				int bk = best_kernel(o, wl, qd, thr);
				double kb = bk >= 0 ? MED(bk, wl, qd, thr, iops) : NAN;
				for (int e = 0; e < NENG; e++) {
					if (!o->eng[e])
						continue;
					double iops = MED(e, wl, qd, thr, iops);
					printf("%s{\"median\": 1, \"engine\": \"%s\", \"workload\": \"%s\", "
					       "\"qd\": %d, \"threads\": %d, \"good_runs\": %d, "
					       "\"best_kernel\": \"%s\", ", first ? "" : ",\n", eng_name[e],
					       wl_name[wl], qd, thr, good_runs(e, wl, qd, thr),
					       bk >= 0 ? eng_name[bk] : "");
					first = false;
					bool pct = e != SPDK;
					jnum("iops", iops, true);
					jnum("mbps", MED(e, wl, qd, thr, mbps), true);
					jnum("lat_p50_us", pct ? MED(e, wl, qd, thr, p50_us) : NAN, true);
					jnum("lat_p99_us", pct ? MED(e, wl, qd, thr, p99_us) : NAN, true);
					jnum("lat_p999_us", pct ? MED(e, wl, qd, thr, p999_us) : NAN, true);
					jnum("lat_max_us", MED(e, wl, qd, thr, max_us), true);
					double cpu = MED(e, wl, qd, thr, cpu_ns_per_io);
					jnum("cpu_ns_per_io", cpu < 0 ? NAN : cpu, true);
					jnum("x_best_kernel", kb > 0 ? iops / kb : NAN, false);
					printf("}");
				}
			}
	}
	printf("\n]}\n=== nvbench json end ===\n");
	fflush(stdout);
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

static int parse_ints(const char *s, int *out, int max, int lo, int hi, const char *what)
{
	char buf[128];
	int n = 0;
	snprintf(buf, sizeof(buf), "%s", s);
	for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
		int v = atoi(t);
		if (n == max || v < lo || v > hi) {
			fprintf(stderr, "nvbench: %s: at most %d values in %d..%d\n", what, max, lo, hi);
			return -EINVAL;
		}
		out[n++] = v;
	}
	return n ? n : -EINVAL;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const char *const rws[2] = { "read", "write" }, *const pats[2] = { "rand", "seq" };
	*o = (struct opts){ .secs = 1, .warm = 0.25, .rounds = 3,
			    .qds = { 1, 4, 32, 128 }, .nqd = 4, .sqds = { 1, 32 }, .nsqd = 2,
			    .thr = { 1, 2 }, .nthr = 2, .rw = { true, true }, .pat = { true, true },
			    .bs = 4096, .seq_bs = 131072, .seed = 4242 };
	bool engines_given = false;
	for (int e = 0; e < NENG; e++)
		o->eng[e] = e != SPDK;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int n = 0;
		if (!strcmp(a, "--model")) { o->model = true; continue; }
		if (!strcmp(a, "--yield")) { o->yield = true; continue; }
		if (!strcmp(a, "--marks")) { o->marks = true; continue; }
		if (!strcmp(a, "--json"))  { o->json = true; continue; }
		if (!strcmp(a, "--show-offsets")) { o->show_offsets = true; continue; }
		if (!v) {
			fprintf(stderr, "nvbench: %s needs a value\n", a);
			return -EINVAL;
		}
		i++;
		if (!strcmp(a, "--kdev"))
			o->kdev = v;
		else if (!strcmp(a, "--bdf"))
			o->bdf = v;
		else if (!strcmp(a, "--spdk"))
			o->spdk = v;
		else if (!strcmp(a, "--secs"))
			o->secs = atof(v);
		else if (!strcmp(a, "--warm"))
			o->warm = atof(v);
		else if (!strcmp(a, "--rounds"))
			o->rounds = atoi(v);
		else if (!strcmp(a, "--seed"))
			o->seed = strtoull(v, NULL, 0);
		else if (!strcmp(a, "--bs"))
			o->bs = (unsigned)strtoul(v, NULL, 0);
		else if (!strcmp(a, "--seq-bs"))
			o->seq_bs = (unsigned)strtoul(v, NULL, 0);
		else if (!strcmp(a, "--nap"))
			o->nap_ns = atol(v);
		else if (!strcmp(a, "--mmio"))
			o->mmio = strtoull(v, NULL, 0);
		else if (!strcmp(a, "--ios"))
			o->ios = strtoull(v, NULL, 0);
		else if (!strcmp(a, "--rw"))
			n = parse_list(v, rws, 2, o->rw);
		else if (!strcmp(a, "--pattern"))
			n = parse_list(v, pats, 2, o->pat);
		else if (!strcmp(a, "--engines")) {
			n = parse_list(v, eng_name, NENG, o->eng);
			engines_given = true;
		} else if (!strcmp(a, "--qd"))
			n = o->nqd = parse_ints(v, o->qds, 8, 1, MAX_QD, "--qd");
		else if (!strcmp(a, "--seq-qd"))
			n = o->nsqd = parse_ints(v, o->sqds, 8, 1, MAX_QD, "--seq-qd");
		else if (!strcmp(a, "--threads"))
			n = o->nthr = parse_ints(v, o->thr, 4, 1, MAX_THR, "--threads");
		else {
			fprintf(stderr, "nvbench: unknown option %s\n", a);
			return -EINVAL;
		}
		if (n < 0)
			return -EINVAL;
	}
	if (o->spdk && !engines_given)
		o->eng[SPDK] = true;
	if (o->eng[SPDK] && (!o->spdk || (!o->bdf && !o->model))) {
		fprintf(stderr, "nvbench: engine spdk needs --spdk PATH and --bdf\n");
		return -EINVAL;
	}
	for (unsigned b = 0; b < 2; b++) {
		unsigned v = b ? o->seq_bs : o->bs;
		if (v < 512 || v > MAX_BS || v % 512) {
			fprintf(stderr, "nvbench: block sizes are multiples of 512 up to %u\n", MAX_BS);
			return -EINVAL;
		}
	}
	if (o->rounds < 1 || o->secs <= 0 || o->warm < 0) {
		fprintf(stderr, "nvbench: --rounds >= 1, --secs > 0, --warm >= 0\n");
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

static size_t buf_len(const struct opts *o)
{
	unsigned bs = o->bs > o->seq_bs ? o->bs : o->seq_bs;
	return (size_t)MAX_QD * bs;
}

/* Attach nvring to the vfio controller, open its namespace, allocate the
 * DMA buffers of @nthr threads (again after an spdk run). */
static int target_nvring_open(const struct opts *o, struct target *t, int nthr)
{
	int ret;
	if ((ret = attach(o, &t->ctrlr)) < 0)
		return ret;
	g_ctrlr = t->ctrlr;
	uint32_t nsids[1];
	struct nvr_ns_info ni;
	if (nvr_ctrlr_ns_list(t->ctrlr, nsids, 1) < 1 || nvr_ns_get_info(t->ctrlr, nsids[0], &ni))
		return -ENODEV;
	t->nsid = nsids[0];
	t->lba_size = ni.lba_size;
	if ((t->nsfd = nvr_ns_open(t->ctrlr, t->nsid)) < 0)
		return t->nsfd;
	for (int i = 0; i < nthr; i++) {
		if ((ret = nvr_dma_alloc(t->ctrlr, buf_len(o), (void **)&t->dbufs[i])) < 0)
			return ret;
		memcpy(t->dbufs[i], t->kbufs[i], buf_len(o));
	}
	return 0;
}

static void target_nvring_close(struct target *t, int nthr)
{
	if (!t->ctrlr)
		return;
	for (int i = 0; i < nthr; i++)
		if (t->dbufs[i]) {
			nvr_dma_free(t->ctrlr, t->dbufs[i]);
			t->dbufs[i] = NULL;
		}
	if (t->nsfd >= 0)
		nvr_ns_close(t->nsfd);
	t->nsfd = -1;
	nvr_ctrlr_detach(t->ctrlr);
	t->ctrlr = g_ctrlr = NULL;
}

/* /dev/nvme0n1 -> /dev/ng0n1, the namespace's generic char device. */
static int open_ng(const char *kdev)
{
	const char *p = strstr(kdev, "nvme");
	char path[64];
	if (!p)
		return -ENODEV;
	snprintf(path, sizeof(path), "%.*sng%s", (int)(p - kdev), kdev, p + 4);
	int fd = open(path, O_RDWR);
	return fd < 0 ? -errno : fd;
}

static int mmio_cost(struct nvr_ctrlr *c, uint64_t n)
{
	struct nvr_qpair *qp;
	int ret = nvr_qpair_alloc(c, 64, &qp);
	if (ret < 0)
		return ret;
	uint64_t t0 = tsc();
	for (uint64_t i = 0; i < n; i++)
		*qp->q.sq_db = qp->q.sq_tail;          /* same tail: no new command */
	uint64_t t1 = tsc();
	for (uint64_t i = 0; i < n; i++)
		*qp->q.cq_db = qp->q.cq_head;          /* same head: nothing consumed */
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
	struct target t = { .kfd = -1, .ngfd = -1, .nsfd = -1 };
	bool want_k = false, want_n = o.eng[SPDK] || o.marks;
	for (int e = 0; e < NENG; e++) {
		want_k |= o.eng[e] && is_kernel(e);
		want_n |= o.eng[e] && is_nvring(e);
	}
	int nthr_max = 1;
	for (int i = 0; i < o.nthr; i++)
		nthr_max = o.thr[i] > nthr_max ? o.thr[i] : nthr_max;
	uint64_t kbytes = UINT64_MAX, nbytes = UINT64_MAX;
	int ret;

	for (int i = 0; i < nthr_max; i++) {
		t.kbufs[i] = aligned_alloc(4096, buf_len(&o));
		t.nbufs[i] = aligned_alloc(4096, buf_len(&o));
		if (!t.kbufs[i] || !t.nbufs[i])
			return fprintf(stderr, "nvbench: no memory\n"), 1;
		for (size_t j = 0; j < buf_len(&o); j++)
			t.kbufs[i][j] = t.nbufs[i][j] = (uint8_t)(j * 7 + 1);
	}
	if (want_k) {
		if (!o.kdev || (t.kfd = open(o.kdev, O_RDWR | O_DIRECT)) < 0) {
			fprintf(stderr, "nvbench: open %s: %s\n", o.kdev ? o.kdev : "(no --kdev)",
				strerror(errno));
			return 1;
		}
		if (ioctl(t.kfd, BLKGETSIZE64, &kbytes) < 0)
			return perror("BLKGETSIZE64"), 1;
		int lbs = 512;
		ioctl(t.kfd, BLKSSZGET, &lbs);
		t.klba_size = (uint32_t)lbs;
		if (o.eng[K_CMD] || o.eng[K_CMD_POLL]) {
			if ((t.ngfd = open_ng(o.kdev)) < 0) {
				fprintf(stderr, "nvbench: no generic char device for %s: %s\n", o.kdev,
					strerror(-t.ngfd));
				return 1;
			}
			int id = ioctl(t.ngfd, NVME_IOCTL_ID);
			if (id <= 0)
				return fprintf(stderr, "nvbench: NVME_IOCTL_ID: %s\n", strerror(errno)), 1;
			t.knsid = (uint32_t)id;
		}
	}
	if (want_n) {
		if (!o.bdf && !o.model) {
			fprintf(stderr, "nvbench: nvring engines need --bdf\n");
			return 1;
		}
		if ((ret = target_nvring_open(&o, &t, nthr_max)) < 0) {
			fprintf(stderr, "nvbench: nvring attach: %s\n", strerror(-ret));
			return 1;
		}
		struct nvr_ns_info ni;
		nvr_ns_get_info(t.ctrlr, t.nsid, &ni);
		nbytes = ni.nlba * ni.lba_size;
	}
	t.span = kbytes < nbytes ? kbytes : nbytes;
	if (!t.span || t.span == UINT64_MAX)
		return fprintf(stderr, "nvbench: no device\n"), 1;

	if (o.nap_ns)
		prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);   /* naps as short as asked */
	tsc_calibrate();
	printf("nvbench: span %" PRIu64 " MiB, kdev %s (nsid %u), bdf %s, tsc %.3f GHz, seed %" PRIu64
	       "\n", t.span >> 20, want_k ? o.kdev : "-", t.knsid,
	       want_n ? (o.model ? "model" : o.bdf) : "-", tsc_per_ns, o.seed);
	fflush(stdout);

	if (o.mmio) {
		if (!t.ctrlr)
			return fprintf(stderr, "nvbench: --mmio needs an nvring engine\n"), 1;
		ret = mmio_cost(t.ctrlr, o.mmio);
		if (ret < 0)
			fprintf(stderr, "nvbench: mmio: %s\n", strerror(-ret));
		target_nvring_close(&t, nthr_max);
		return ret < 0;
	}

	int engs[NENG], neng = 0, total = 0;
	for (int e = 0; e < NENG; e++)
		if (o.eng[e])
			engs[neng++] = e;
	for (int wl = 0; wl < NWL; wl++)
		if (wl_on(&o, wl))
			total += (wl_seq(wl) ? o.nsqd : o.nqd) * o.nthr * neng * o.rounds;
	maxresults = total;
	results = calloc((size_t)total + 1, sizeof(*results));
	if (!results)
		return 1;

	/* Workload by workload (reads before writes); inside, rounds of every
	 * cell, the engines of a round starting at engine round mod N. */
	int fatal = 0;
	for (int wl = 0; wl < NWL && !fatal; wl++) {
		if (!wl_on(&o, wl))
			continue;
		int nq;
		const int *qds = wl_qds(&o, wl, &nq);
		for (int round = 0; round < o.rounds && !fatal; round++)
			for (int ti = 0; ti < o.nthr && !fatal; ti++)
				for (int q = 0; q < nq && !fatal; q++)
					for (int k = 0; k < neng && !fatal; k++) {
						int e = engs[(round + k) % neng];
						fprintf(stderr, "[%3d/%d] round %d %s %s qd%d t%d\n",
							nresults + 1, total, round, eng_name[e], wl_name[wl],
							qds[q], o.thr[ti]);
						if (run_one(&t, &o, e, wl, qds[q], o.thr[ti], round, nthr_max) < 0) {
							fprintf(stderr, "nvbench: lost the nvring controller\n");
							fatal = 1;
						}
					}
	}
	print_table(&o);
	if (o.json) {
		char cmdline[1024] = "";
		size_t len = 0;
		for (int i = 0; i < argc && len + 2 < sizeof(cmdline); i++)
			len += (size_t)snprintf(cmdline + len, sizeof(cmdline) - len, "%s%s",
						i ? " " : "", argv[i]);
		for (char *c = cmdline; *c; c++)
			if (*c == '"' || *c == '\\')
				*c = '\'';
		print_json(&o, cmdline);
	}

	int failed = 0;
	for (int i = 0; i < nresults; i++)
		failed += results[i].failed;
	target_nvring_close(&t, nthr_max);
	if (t.kfd >= 0)
		close(t.kfd);
	if (t.ngfd >= 0)
		close(t.ngfd);
	for (int i = 0; i < nthr_max; i++) {
		free(t.kbufs[i]);
		free(t.nbufs[i]);
	}
	free(results);
	if (failed)
		fprintf(stderr, "nvbench: %d run(s) FAILED (left out of the medians)\n", failed);
	return failed || fatal ? 1 : 0;
}
