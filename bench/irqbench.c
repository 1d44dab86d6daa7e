/* SPDX-License-Identifier: MIT */
/*
 * irqbench: interrupt-driven waiting against pure polling on one nvring
 * controller (run in the guest by bench/run after nvbench, or alone:
 * `irqbench --bdf BDF [--secs S] [--rounds N] [--idle-secs S] [--idle-rings N]`).
 *
 * 1. QD1 4 KiB random read latency through an nvring ring (READ_FIXED on a
 *    registered buffer, io_uring_enter(1, 1, GETEVENTS) per I/O), the
 *    controller attached with interrupts (each I/O queue pair has its
 *    MSI-X vector; the wait spins for half its recent mean, then sleeps on
 *    the interrupt) and with NVR_ATTACH_POLL (the wait spins until the
 *    completion). The modes alternate per round and both draw the same
 *    seeded LBAs; a fresh attach per run. Per run: IOPS, latency mean,
 *    p50 and p99 (rdtsc, calibrated against CLOCK_MONOTONIC: the TCG
 *    guest's clock_gettime() is a system call and an HPET read), and the
 *    thread's CPU time per I/O. Reported: medians over the rounds and the
 *    ratio interrupt / polling.
 * 2. Idle CPU with open rings: N rings, each with a thread blocked in
 *    io_uring_enter(GETEVENTS, min_complete 1) with an EXT_ARG timeout of
 *    S seconds and nothing in flight; the process's CPU time (getrusage,
 *    every thread) over the S seconds as a share of one core, for both
 *    modes.
 *
 * The measuring thread is pinned to vCPU --cpu (default 0, as nvbench pins
 * its thread 0; -1: not pinned).
 *
 * Prints a table and, between "=== irqbench json begin/end", one JSON
 * object. Measures only; asserts nothing.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include <nvring/nvring.h>
#include <nvring/uring.h>

#define BS        4096u
#define MAX_LAT   (1u << 21)

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double proc_cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static double ns_per_tick;

static void tsc_calibrate(void)
{
	uint64_t n0 = mono_ns(), t0 = __rdtsc();
	struct timespec ts = { 0, 200 * 1000000 };
	nanosleep(&ts, NULL);
	ns_per_tick = (double)(mono_ns() - n0) / (double)(__rdtsc() - t0);
}

static uint64_t xs(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

/* A raw ring: the three mmaps. */
struct ring {
	int fd;
	struct io_uring_params p;
	uint8_t *sq, *cq;
	size_t sq_sz, cq_sz, sqes_sz;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
	unsigned *sq_tail, *sq_array, *cq_head, *cq_tail;
};

static int ring_open(struct nvr_ctrlr *c, struct ring *r)
{
	memset(r, 0, sizeof(*r));
	r->fd = nvr_uring_setup(c, 8, &r->p);
	if (r->fd < 0)
		return r->fd;
	r->sq_sz = r->p.sq_off.array + r->p.sq_entries * sizeof(unsigned);
	r->cq_sz = r->p.cq_off.cqes + r->p.cq_entries * sizeof(struct io_uring_cqe);
	r->sqes_sz = r->p.sq_entries * sizeof(struct io_uring_sqe);
	r->sq = mmap(NULL, r->sq_sz, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, IORING_OFF_SQ_RING);
	r->cq = mmap(NULL, r->cq_sz, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, IORING_OFF_CQ_RING);
	r->sqes = mmap(NULL, r->sqes_sz, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, IORING_OFF_SQES);
	if (r->sq == MAP_FAILED || r->cq == MAP_FAILED || r->sqes == MAP_FAILED)
		return -ENOMEM;
	r->sq_tail = (unsigned *)(r->sq + r->p.sq_off.tail);
	r->sq_array = (unsigned *)(r->sq + r->p.sq_off.array);
	r->cq_head = (unsigned *)(r->cq + r->p.cq_off.head);
	r->cq_tail = (unsigned *)(r->cq + r->p.cq_off.tail);
	r->cqes = (struct io_uring_cqe *)(r->cq + r->p.cq_off.cqes);
	return 0;
}

static void ring_close(struct ring *r)
{
	munmap(r->sq, r->sq_sz);
	munmap(r->cq, r->cq_sz);
	munmap(r->sqes, r->sqes_sz);
	nvr_uring_close(r->fd);
}

struct run {
	double iops, mean_us, p50_us, p99_us, cpu_us_per_io;
	uint64_t ios, errors;
};

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* One QD1 randread run on a fresh attach; 0 or a negative errno. */
static int qd1_run(const char *bdf, bool poll, double secs, uint64_t seed, uint32_t *lat,
		   struct run *out)
{
	struct nvr_ctrlr_opts opts = { .flags = poll ? NVR_ATTACH_POLL : 0 };
	struct nvr_ctrlr *c;
	struct ring r;
	void *buf;
	int rc = nvr_ctrlr_attach(bdf, &opts, &c);
	if (rc)
		return rc;
	uint32_t nsid;
	struct nvr_ns_info ni;
	if (nvr_ctrlr_ns_list(c, &nsid, 1) < 1 || nvr_ns_get_info(c, nsid, &ni)) {
		nvr_ctrlr_detach(c);
		return -ENODEV;
	}
	int ns = nvr_ns_open(c, nsid);
	rc = ns < 0 ? ns : ring_open(c, &r);
	if (rc) {
		nvr_ctrlr_detach(c);
		return rc;
	}
	rc = nvr_dma_alloc(c, BS, &buf);
	struct iovec iov = { .iov_base = buf, .iov_len = BS };
	if (!rc)
		rc = nvr_uring_register(r.fd, IORING_REGISTER_BUFFERS, &iov, 1);
	uint64_t blocks = ni.nlba * ni.lba_size / BS, s = seed | 1, n = 0;
	uint64_t warm_end = mono_ns() + 250000000ull, end = 0, cpu0 = 0, t_start = 0;
	memset(out, 0, sizeof(*out));
	for (unsigned tail = *r.sq_tail; !rc;) {
		uint64_t now = mono_ns();
		if (!end && now >= warm_end) {
			end = now + (uint64_t)(secs * 1e9);
			cpu0 = thread_cpu_ns();
			t_start = now;
		}
		if (end && now >= end)
			break;
		unsigned idx = tail & (r.p.sq_entries - 1);
		struct io_uring_sqe *e = &r.sqes[idx];
		memset(e, 0, sizeof(*e));
		e->opcode = IORING_OP_READ_FIXED;
		e->fd = ns;
		e->addr = (uintptr_t)buf;
		e->len = BS;
		e->off = (xs(&s) % blocks) * BS;
		e->buf_index = 0;
		r.sq_array[idx] = idx;
		__atomic_store_n(r.sq_tail, ++tail, __ATOMIC_RELEASE);
		uint64_t t0 = __rdtsc();
		int got = nvr_uring_enter(r.fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0);
		uint64_t t1 = __rdtsc();
		if (got != 1) {
			rc = got < 0 ? got : -EIO;
			break;
		}
		unsigned head = *r.cq_head;
		while (head == __atomic_load_n(r.cq_tail, __ATOMIC_ACQUIRE))
			;   /* enter returned: the CQE is there */
		if (r.cqes[head & (r.p.cq_entries - 1)].res != (int)BS)
			out->errors++;
		__atomic_store_n(r.cq_head, head + 1, __ATOMIC_RELEASE);
		if (end && n < MAX_LAT)
			lat[n++] = (uint32_t)((double)(t1 - t0) * ns_per_tick);
	}
	if (!rc && n) {
		double wall = (double)(mono_ns() - t_start) / 1e9, sum = 0;
		uint64_t cpu = thread_cpu_ns() - cpu0;
		for (uint64_t i = 0; i < n; i++)
			sum += lat[i];
		qsort(lat, n, sizeof(*lat), cmp_u32);
		out->ios = n;
		out->iops = (double)n / wall;
		out->mean_us = sum / (double)n / 1e3;
		out->p50_us = lat[n / 2] / 1e3;
		out->p99_us = lat[n * 99 / 100] / 1e3;
		out->cpu_us_per_io = (double)cpu / (double)n / 1e3;
	}
	ring_close(&r);
	nvr_ns_close(ns);
	if (buf)
		nvr_dma_free(c, buf);
	int rc2 = nvr_ctrlr_detach(c);
	return rc ? rc : rc2;
}

struct idler {
	struct ring r;
	double secs;
	int ret;
};

static void *idle_thread(void *arg)
{
	struct idler *w = arg;
	struct __kernel_timespec ts = { .tv_sec = (long long)w->secs,
					.tv_nsec = (long long)((w->secs - (long long)w->secs) * 1e9) };
	struct io_uring_getevents_arg a = { .ts = (uintptr_t)&ts };
	w->ret = nvr_uring_enter(w->r.fd, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &a,
				 sizeof(a));
	return NULL;
}

/* N rings idle for @secs: the process's CPU as a share of one core. */
static int idle_run(const char *bdf, bool poll, int nrings, double secs, double *share)
{
	struct nvr_ctrlr_opts opts = { .flags = poll ? NVR_ATTACH_POLL : 0 };
	struct nvr_ctrlr *c;
	struct idler *w = calloc((size_t)nrings, sizeof(*w));
	pthread_t *t = calloc((size_t)nrings, sizeof(*t));
	int rc = w && t ? nvr_ctrlr_attach(bdf, &opts, &c) : -ENOMEM;
	if (rc) {
		free(w);
		free(t);
		return rc;
	}
	int n = 0;
	for (; n < nrings && !rc; n++) {
		w[n].secs = secs;
		rc = ring_open(c, &w[n].r);
	}
	if (rc)
		n--;
	double c0 = proc_cpu_s();
	uint64_t w0 = mono_ns();
	int started = 0;
	for (int i = 0; i < n && !rc; i++, started++)
		rc = -pthread_create(&t[i], NULL, idle_thread, &w[i]);
	for (int i = 0; i < started; i++) {
		pthread_join(t[i], NULL);
		if (w[i].ret != -ETIME && !rc)
			rc = w[i].ret < 0 ? w[i].ret : -EIO;
	}
	double wall = (double)(mono_ns() - w0) / 1e9;
	*share = (proc_cpu_s() - c0) / wall;
	for (int i = 0; i < n; i++)
		ring_close(&w[i].r);
	nvr_ctrlr_detach(c);
	free(w);
	free(t);
	return rc;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
	const char *bdf = NULL;
	double secs = 2, idle_secs = 5;
	int rounds = 3, idle_rings = 4, cpu = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--bdf") && i + 1 < argc)
			bdf = argv[++i];
		else if (!strcmp(argv[i], "--secs") && i + 1 < argc)
			secs = atof(argv[++i]);
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--idle-secs") && i + 1 < argc)
			idle_secs = atof(argv[++i]);
		else if (!strcmp(argv[i], "--idle-rings") && i + 1 < argc)
			idle_rings = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--cpu") && i + 1 < argc)
			cpu = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: irqbench --bdf BDF [--secs S] [--rounds N] "
				"[--idle-secs S] [--idle-rings N] [--cpu N]\n");
			return 2;
		}
	}
	if (!bdf || rounds < 1 || rounds > 64 || secs <= 0 || idle_rings < 1) {
		fprintf(stderr, "irqbench: --bdf BDF needed (and sane numbers)\n");
		return 2;
	}
	uint32_t *lat = malloc(MAX_LAT * sizeof(*lat));
	if (!lat)
		return 1;
	if (cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set))
			fprintf(stderr, "irqbench: cannot pin to CPU %d\n", cpu);
	}
	tsc_calibrate();
	static const char *mode_name[2] = { "irq", "poll" };
	double v[2][5][64];   /* mode, metric (iops mean p50 p99 cpu), round */
	int good[2] = { 0, 0 }, bad = 0;
	printf("irqbench: %s, QD1 %u B randread, %d rounds of %.2f s, modes alternate, cpu %d\n",
	       bdf, BS, rounds, secs, cpu);
	for (int round = 0; round < rounds; round++) {
		for (int k = 0; k < 2; k++) {
			int m = (round + k) % 2;   /* round r starts with mode r mod 2 */
			struct run rr;
			int rc = qd1_run(bdf, m == 1, secs, 4242 + (uint64_t)round, lat, &rr);
			if (rc || rr.errors || !rr.ios) {
				printf("  round %d %-4s FAILED (%s, %" PRIu64 " errors)\n", round,
				       mode_name[m], rc ? strerror(-rc) : "no I/O", rr.errors);
				bad++;
				continue;
			}
			printf("  round %d %-4s %8.0f IOPS  lat mean %7.1f us  p50 %7.1f  p99 %7.1f  "
			       "cpu %6.1f us/io\n", round, mode_name[m], rr.iops, rr.mean_us, rr.p50_us,
			       rr.p99_us, rr.cpu_us_per_io);
			double *row[5] = { &v[m][0][good[m]], &v[m][1][good[m]], &v[m][2][good[m]],
					   &v[m][3][good[m]], &v[m][4][good[m]] };
			*row[0] = rr.iops;
			*row[1] = rr.mean_us;
			*row[2] = rr.p50_us;
			*row[3] = rr.p99_us;
			*row[4] = rr.cpu_us_per_io;
			good[m]++;
		}
	}
	double med[2][5] = { { 0 } };
	for (int m = 0; m < 2; m++)
		for (int x = 0; x < 5 && good[m]; x++)
			med[m][x] = median(v[m][x], good[m]);
	double idle[2] = { -1, -1 };
	for (int m = 0; m < 2; m++) {
		int rc = idle_run(bdf, m == 1, idle_rings, idle_secs, &idle[m]);
		if (rc) {
			printf("  idle %-4s FAILED (%s)\n", mode_name[m], strerror(-rc));
			idle[m] = -1;
			bad++;
		}
	}
	printf("\nQD1 4 KiB randread, medians       %10s %10s %8s\n", "irq", "poll", "irq/poll");
	static const char *metric[5] = { "IOPS", "latency mean (us)", "latency p50 (us)",
					 "latency p99 (us)", "CPU per I/O (us)" };
	for (int x = 0; x < 5; x++)
		printf("  %-30s %10.1f %10.1f %8.2f\n", metric[x], med[0][x], med[1][x],
		       med[1][x] ? med[0][x] / med[1][x] : 0);
	printf("idle: %d rings blocked in GETEVENTS for %.1f s: irq %.2f%% of a core, poll %.2f%%\n",
	       idle_rings, idle_secs, 100 * idle[0], 100 * idle[1]);
	printf("=== irqbench json begin\n");
	printf("{\"bdf\": \"%s\", \"bs\": %u, \"qd\": 1, \"secs\": %.2f, \"rounds\": %d, "
	       "\"runs_ok\": {\"irq\": %d, \"poll\": %d}, \"failed\": %d,\n", bdf, BS, secs, rounds,
	       good[0], good[1], bad);
	for (int m = 0; m < 2; m++)
		printf(" \"%s\": {\"iops\": %.1f, \"lat_mean_us\": %.2f, \"lat_p50_us\": %.2f, "
		       "\"lat_p99_us\": %.2f, \"cpu_us_per_io\": %.2f, \"idle_core_share\": %.5f},\n",
		       mode_name[m], med[m][0], med[m][1], med[m][2], med[m][3], med[m][4], idle[m]);
	printf(" \"ratio_irq_over_poll\": {\"lat_mean\": %.3f, \"lat_p50\": %.3f, \"lat_p99\": %.3f, "
	       "\"iops\": %.3f, \"cpu_per_io\": %.3f},\n",
	       med[1][1] ? med[0][1] / med[1][1] : 0, med[1][2] ? med[0][2] / med[1][2] : 0,
	       med[1][3] ? med[0][3] / med[1][3] : 0, med[1][0] ? med[0][0] / med[1][0] : 0,
	       med[1][4] ? med[0][4] / med[1][4] : 0);
	printf(" \"idle_rings\": %d, \"idle_secs\": %.1f}\n", idle_rings, idle_secs);
	printf("=== irqbench json end\n");
	free(lat);
	return bad ? 1 : 0;
}
