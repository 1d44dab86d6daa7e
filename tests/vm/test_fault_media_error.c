/* SPDX-License-Identifier: MIT */
/*
 * Media errors (issue 8 item 5): a vfio controller and its kernel-bound
 * twin whose drives sit behind QEMU's blkdebug with the same inject-error
 * rules (qemu/run --blkdebug; tests/run-vm's boot F with
 * tests/vm/fault_media.blkdebug). The same seeded reads and writes go
 * through an nvring ring (the io_uring ABI) and through the guest kernel's
 * io_uring on /dev/nvmeXn1 (O_DIRECT, raw syscalls): exactly the I/Os that
 * cover an injected sector fail, with the same errno on both sides (the
 * kernel's, checked, not assumed: -ENODATA, BLK_STS_MEDIUM, after its
 * retries), the others succeed with the data intact. Then the log pages
 * the controller keeps, through the library and through `nvring log`.
 *
 * QEMU 7.2 (hw/nvme/ctrl.c nvme_aio_err): a failed read completes with
 * Unrecovered Read Error (02h/81h), a failed write or flush with Write
 * Fault (02h/80h), both without DNR, so Linux retries them
 * (nvme_max_retries = 5) before failing the bio.
 *
 * Name contains "error": the pci_nvme_err_aio trace hits are expected.
 * Skips without $NVRING_BLKDEBUG_BDFS (boots other than F).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <nvring/nvring.h>
#include <nvring/uring.h>

#include "tests/unit/json_check.h"
#include "tests/vm/diff_ring.h"

#define MAX_RULES  16
#define MAX_IOS    96
#define MAX_NLB    8
#define RING_SIZE  64
#define SEED_DFLT  20261202u

struct rule {
	bool     write;     /* write_aio, else read_aio */
	bool     once;
	uint64_t sector;    /* 512-byte units */
};

struct io {
	bool     write;
	uint64_t lba;
	uint32_t nlb;
	int      want;      /* expected res */
	int      res[2];    /* nvring, kernel */
};

/* The SMART / Health counters the log test follows (low 64 bits). */
struct smart_view {
	uint64_t reads, writes, media, errs;
};

struct side {
	const char   *name;
	struct dr_ring r;
	int           fd;   /* what goes in sqe->fd */
	uint8_t      *bufs; /* MAX_IOS x MAX_NLB blocks, 4 KiB aligned */
};

static struct {
	bool          ready;
	char          bdf[16];
	const char   *kdev;
	struct nvr_ctrlr *c;
	uint32_t      lbasz;
	uint64_t      nlba;
	int           kfd;
	struct side   s[2];   /* 0 nvring, 1 kernel */
	struct rule   rules[MAX_RULES];
	int           nrules;
	uint64_t      seed;
	struct smart_view smart0;
	unsigned      ok_reads, ok_writes, failed;   /* nvring side, for the SMART deltas */
} F;

/* ---- seeded data: the bytes of LBA @lba in generation @gen ---- */

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ x >> 33;
}

static void pattern(uint8_t *dst, uint64_t lba, unsigned gen)
{
	for (uint32_t i = 0; i < F.lbasz; i += 8) {
		uint64_t v = mix(F.seed ^ lba * 0x9e3779b97f4a7c15ull ^ (uint64_t)gen << 56 ^ i);

		memcpy(dst + i, &v, 8);
	}
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

/* ---- the rules, from $NVRING_BLKDEBUG_RULES (the blkdebug config) ---- */

static void parse_rules(const char *text)
{
	struct rule *cur = NULL;
	char line[256];

	while (text && *text) {
		size_t n = strcspn(text, "\n");
		char key[32], val[64];

		snprintf(line, sizeof(line), "%.*s", (int)(n < 255 ? n : 255), text);
		text += n + (text[n] == '\n');
		if (!strncmp(line, "[inject-error]", 14)) {
			cur = F.nrules < MAX_RULES ? &F.rules[F.nrules++] : NULL;
			if (cur)
				*cur = (struct rule){ 0 };
			continue;
		}
		if (line[0] == '[')
			cur = NULL;   /* another section (set-state, ...) */
		if (!cur || sscanf(line, " %31[a-z_-] = \"%63[^\"]\"", key, val) != 2)
			continue;
		if (!strcmp(key, "event"))
			cur->write = !strcmp(val, "write_aio");
		else if (!strcmp(key, "sector"))
			cur->sector = strtoull(val, NULL, 0);
		else if (!strcmp(key, "once"))
			cur->once = !strcmp(val, "on");
	}
}

/* Does [lba, lba + nlb) cover the sector of a rule of kind @write? @once
 * -1: any rule, else only rules with that once value. */
static bool covers(bool write, uint64_t lba, uint32_t nlb, int once)
{
	uint64_t a = lba * F.lbasz / 512, b = (lba + nlb) * F.lbasz / 512;

	for (int i = 0; i < F.nrules; i++) {
		const struct rule *r = &F.rules[i];

		if (write == r->write && r->sector >= a && r->sector < b &&
		    (once < 0 || r->once == (bool)once))
			return true;
	}
	return false;
}

static bool covers_any(uint64_t lba, uint32_t nlb)
{
	return covers(false, lba, nlb, -1) || covers(true, lba, nlb, -1);
}

/* ---- rings ---- */

static int setup(void **state)
{
	char *bdfs = getenv("NVRING_BLKDEBUG_BDFS"), *kdevs = getenv("NVRING_BLKDEBUG_KERNEL_DEVS");
	const char *seed = getenv("NVRING_SEED");
	struct nvr_ns_info ns;
	int rc;

	(void)state;
	if (!bdfs || !*bdfs || !kdevs || !*kdevs)
		return 0;   /* each test skips */
	F.seed = seed && *seed ? strtoull(seed, NULL, 0) : SEED_DFLT;
	sscanf(bdfs, "%15s", F.bdf);
	F.kdev = strtok(kdevs, " ");
	parse_rules(getenv("NVRING_BLKDEBUG_RULES"));
	printf("[ INFO     ] seed %" PRIu64 "; %s and %s, %d blkdebug rule(s):\n", F.seed, F.bdf,
	       F.kdev, F.nrules);
	for (int i = 0; i < F.nrules; i++)
		printf("[ INFO     ]   %s sector %" PRIu64 " once=%s\n",
		       F.rules[i].write ? "write_aio" : "read_aio", F.rules[i].sector,
		       F.rules[i].once ? "on" : "off");
	rc = nvr_ctrlr_attach(F.bdf, NULL, &F.c);
	if (rc < 0) {
		printf("[ ERROR    ] attach %s: %s\n", F.bdf, strerror(-rc));
		return -1;
	}
	if (nvr_ns_get_info(F.c, 1, &ns) < 0)
		return -1;
	F.lbasz = ns.lba_size;
	F.nlba = ns.nlba;
	F.kfd = open(F.kdev, O_RDWR | O_DIRECT);
	if (F.kfd < 0) {
		printf("[ ERROR    ] open %s: %s\n", F.kdev, strerror(errno));
		return -1;
	}
	F.s[0].name = "nvring";
	F.s[1].name = "kernel";
	F.s[0].fd = nvr_ns_open(F.c, 1);
	F.s[1].fd = F.kfd;
	if (F.s[0].fd < 0 || dr_init(&F.s[0].r, F.c, RING_SIZE, NULL) < 0 ||
	    dr_init(&F.s[1].r, NULL, RING_SIZE, NULL) < 0)
		return -1;
	for (int k = 0; k < 2; k++)
		if (posix_memalign((void **)&F.s[k].bufs, 4096, (size_t)MAX_IOS * MAX_NLB * F.lbasz))
			return -1;
	F.ready = true;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (!F.ready)
		return 0;
	for (int k = 0; k < 2; k++) {
		dr_exit(&F.s[k].r);
		free(F.s[k].bufs);
	}
	close(F.kfd);
	if (F.c && nvr_ctrlr_detach(F.c) < 0)
		return -1;
	return 0;
}

#define NEED_FAULT_BOOT() do {						\
	if (!F.ready) {							\
		print_message("no blkdebug controllers ($NVRING_BLKDEBUG_BDFS unset: " \
			      "not tests/run-vm's boot F): skipped\n");	\
		skip();							\
	}								\
} while (0)

static uint8_t *io_buf(int k, int i)
{
	return F.s[k].bufs + (size_t)i * MAX_NLB * F.lbasz;
}

/* Run @ios on side @k, up to RING_SIZE at a time; res[k] of each. */
static void run(int k, struct io *ios, int n)
{
	struct side *s = &F.s[k];

	for (int done = 0; done < n;) {
		int batch = n - done < RING_SIZE ? n - done : RING_SIZE, got = 0;
		time_t deadline = time(NULL) + 120;

		for (int i = done; i < done + batch; i++) {
			struct io_uring_sqe *sqe = dr_sqe(&s->r);

			assert_non_null(sqe);
			sqe->opcode = ios[i].write ? IORING_OP_WRITE : IORING_OP_READ;
			sqe->fd = s->fd;
			sqe->addr = (uintptr_t)io_buf(k, i);
			sqe->len = ios[i].nlb * F.lbasz;
			sqe->off = ios[i].lba * F.lbasz;
			sqe->user_data = (uint64_t)i;
		}
		dr_flush(&s->r);
		int rc = dr_enter(&s->r, (unsigned)batch, 0, 0, NULL, 0);
		if (rc != batch)
			fail_msg("%s: io_uring_enter submitted %d of %d", s->name, rc, batch);
		while (got < batch) {
			struct io_uring_cqe cqe;

			if (dr_cqe(&s->r, &cqe)) {
				assert_true(cqe.user_data < (uint64_t)n);
				ios[cqe.user_data].res[k] = cqe.res;
				got++;
				continue;
			}
			rc = dr_enter(&s->r, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0);
			if (rc < 0 && rc != -EINTR)
				fail_msg("%s: io_uring_enter(GETEVENTS): %s", s->name, strerror(-rc));
			if (time(NULL) > deadline)
				fail_msg("%s: %d of %d completions after 120 s", s->name, got, batch);
		}
		done += batch;
	}
}

/* Both sides: each I/O's res is what it should be, and the same. Fills
 * write buffers with generation @gen first; checks read data against it. */
static void run_both(struct io *ios, int n, unsigned gen, const char *what)
{
	int bad = 0;

	for (int k = 0; k < 2; k++) {
		for (int i = 0; i < n; i++) {
			ios[i].res[k] = 1;   /* never a real res here: not yet completed */
			for (uint32_t b = 0; b < ios[i].nlb; b++)
				if (ios[i].write)
					pattern(io_buf(k, i) + b * F.lbasz, ios[i].lba + b, gen);
				else
					memset(io_buf(k, i) + b * F.lbasz, 0x5a, F.lbasz);
		}
		run(k, ios, n);
	}
	for (int i = 0; i < n; i++) {
		struct io *o = &ios[i];

		if (o->res[0] != o->want || o->res[1] != o->want) {
			printf("[ ERROR    ] %s %s LBA %" PRIu64 " +%u: nvring %d, kernel %d, want %d%s\n",
			       what, o->write ? "write" : "read", o->lba, o->nlb, o->res[0], o->res[1],
			       o->want, o->want < 0 ? " (covers an injected sector)" : "");
			bad++;
			continue;
		}
		if (o->write || o->want < 0)
			continue;
		for (int k = 0; k < 2; k++)
			for (uint32_t b = 0; b < o->nlb; b++) {
				uint8_t want[4096];

				pattern(want, o->lba + b, gen);
				if (memcmp(io_buf(k, i) + b * F.lbasz, want, F.lbasz)) {
					printf("[ ERROR    ] %s read LBA %" PRIu64 " on %s: data differ\n",
					       what, o->lba + b, F.s[k].name);
					bad++;
				}
			}
	}
	for (int i = 0; i < n; i++) {
		if (ios[i].want < 0)
			F.failed++;
		else if (ios[i].write)
			F.ok_writes++;
		else
			F.ok_reads++;
	}
	if (bad)
		fail_msg("%s: %d of %d I/Os differ from the expectation (see above)", what, bad, n);
}

/* Ranges around every "once = off" rule of kind @write (exactly it, and
 * two that straddle it), then @nrand seeded ones that cover no rule of
 * any kind. Returns the count. */
static int make_ios(struct io *ios, bool write, int nrand, uint64_t *rs)
{
	static const struct { int before; uint32_t nlb; } around[] = { { 0, 1 }, { 2, 4 }, { 7, 8 } };
	int n = 0;

	for (int i = 0; i < F.nrules; i++) {
		const struct rule *r = &F.rules[i];
		uint64_t lba = r->sector * 512 / F.lbasz;

		if (r->write != write || r->once)
			continue;
		for (size_t j = 0; j < sizeof(around) / sizeof(around[0]) && n < MAX_IOS; j++) {
			uint64_t start = lba - (uint64_t)around[j].before;

			/* A straddling range must not also cover a rule of the
			 * other kind or a once rule: its outcome would be the
			 * other rule's. */
			if (covers(!write, start, around[j].nlb, -1) ||
			    covers(write, start, around[j].nlb, 1))
				continue;
			ios[n++] = (struct io){ .write = write, .lba = start, .nlb = around[j].nlb };
		}
	}
	for (int i = 0; i < nrand && n < MAX_IOS;) {
		uint32_t nlb = 1 + (uint32_t)(rng_next(rs) % MAX_NLB);
		uint64_t lba = 64 + rng_next(rs) % (F.nlba - 128 - nlb);

		if (covers_any(lba, nlb))
			continue;
		ios[n++] = (struct io){ .write = write, .lba = lba, .nlb = nlb };
		i++;
	}
	for (int i = 0; i < n; i++)
		ios[i].want = covers(write, ios[i].lba, ios[i].nlb, 0) ? -ENODATA
								      : (int)(ios[i].nlb * F.lbasz);
	return n;
}

/* SMART / Health through the library: the counters this test follows. */
static void smart_now(struct smart_view *v)
{
	uint8_t page[512];

	assert_int_equal(nvr_ctrlr_get_log_page(F.c, 0x02, 0xffffffff, page, sizeof(page)), 0);
	/* Figure 207: 128-bit counters; the low 64 bits are plenty here. */
	memcpy(&v->reads, page + 64, 8);
	memcpy(&v->writes, page + 80, 8);
	memcpy(&v->media, page + 160, 8);
	memcpy(&v->errs, page + 176, 8);
}

/* Reads and writes with "once = off" rules: exactly the covering ones
 * fail, with -ENODATA on both sides; the rest keep their data. */
static void fault_media_read_write(void **state)
{
	struct io rd[MAX_IOS], wr[MAX_IOS], fill[MAX_IOS];
	uint64_t rs = F.seed | 1;
	int nrd, nwr, nfill = 0, nfail_r = 0, nfail_w = 0;
	(void)state;

	NEED_FAULT_BOOT();
	smart_now(&F.smart0);
	nrd = make_ios(rd, false, 24, &rs);
	nwr = make_ios(wr, true, 12, &rs);
	for (int i = 0; i < nrd; i++)
		nfail_r += rd[i].want < 0;
	for (int i = 0; i < nwr; i++)
		nfail_w += wr[i].want < 0;
	assert_true(nfail_r > 0 && nfail_w > 0);   /* the rules are there and used */

	/* Fill what the reads will read (writes there succeed: no write
	 * rule is covered by a read range). */
	for (int i = 0; i < nrd; i++) {
		fill[nfill] = rd[i];
		fill[nfill].write = true;
		fill[nfill].want = (int)(rd[i].nlb * F.lbasz);
		assert_false(covers(true, rd[i].lba, rd[i].nlb, -1));
		nfill++;
	}
	run_both(fill, nfill, 1, "fill");
	run_both(rd, nrd, 1, "read");
	run_both(wr, nwr, 2, "write");

	/* Read back what the successful writes wrote. */
	struct io back[MAX_IOS];
	int nback = 0;
	for (int i = 0; i < nwr; i++)
		if (wr[i].want > 0 && !covers(false, wr[i].lba, wr[i].nlb, -1)) {
			back[nback] = wr[i];
			back[nback].write = false;
			nback++;
		}
	run_both(back, nback, 2, "read-back");
	printf("[ INFO     ] %d reads (%d failed), %d writes (%d failed), %d read back; "
	       "the same res on nvring and the kernel, failures %d (%s)\n",
	       nrd, nfail_r, nwr, nfail_w, nback, -ENODATA, strerror(ENODATA));
}

/* "once = on": the first attempt fails, a retry succeeds. The kernel
 * retries (no DNR); nvring does once the driver retries like Linux. */
static void fault_media_once_retry(void **state)
{
	struct io once[MAX_RULES];
	int n = 0;
	(void)state;

	NEED_FAULT_BOOT();
	for (int i = 0; i < F.nrules; i++)
		if (F.rules[i].once && !F.rules[i].write)
			once[n++] = (struct io){ .lba = F.rules[i].sector * 512 / F.lbasz, .nlb = 1,
						 .want = (int)F.lbasz };
	if (!n) {
		print_message("no once = on read rule: skipped\n");
		skip();
	}
	for (int i = 0; i < n; i++) {
		once[i].res[1] = 1;
		memset(io_buf(1, i), 0x5a, F.lbasz);
	}
	run(1, once, n);
	for (int i = 0; i < n; i++) {
		if (once[i].res[1] != once[i].want)
			fail_msg("kernel: read of LBA %" PRIu64 " (once rule) gave %d, want %d: "
				 "the kernel did not retry?", once[i].lba, once[i].res[1], once[i].want);
		assert_true(all_zero(io_buf(1, i), F.lbasz));   /* never written: zeroes */
	}
	printf("[ INFO     ] kernel: %d read(s) of a once = on sector succeeded (retried)\n", n);
	for (int i = 0; i < n; i++) {
		once[i].res[0] = 1;
		memset(io_buf(0, i), 0x5a, F.lbasz);
	}
	run(0, once, n);
	for (int i = 0; i < n; i++) {
		if (once[i].res[0] != once[i].want)
			fail_msg("nvring: read of LBA %" PRIu64 " (once rule) gave %d, want %d",
				 once[i].lba, once[i].res[0], once[i].want);
		assert_true(all_zero(io_buf(0, i), F.lbasz));
		F.ok_reads++;
	}
}

/* Run @cmd, its stdout in a malloc'd string; exit status in *st. */
static char *run_cmd(const char *cmd, int *st)
{
	FILE *p = popen(cmd, "r");
	char *out = calloc(1, 65536);
	size_t n = 0, r;

	assert_non_null(p);
	assert_non_null(out);
	while (n < 65535 && (r = fread(out + n, 1, 65535 - n, p)) > 0)
		n += r;
	*st = pclose(p);
	return out;
}

/* What the controller logs about it: SMART counts every successful read
 * and write command (QEMU's block accounting); media errors and the Error
 * Information log as QEMU 7.2 keeps them (it may keep none: then they must
 * say zero consistently). Then `nvring log` prints both, and its JSON
 * parses. */
static void fault_media_log_pages(void **state)
{
	struct smart_view now;
	uint8_t elog[64 * 64] = { 0 };
	int entries, used = 0, st;
	char cmd[128], *out;
	(void)state;

	NEED_FAULT_BOOT();
	if (!F.smart0.reads && !F.ok_reads)
		skip();   /* fault_media_read_write did not run */
	smart_now(&now);
	printf("[ INFO     ] SMART since the first test: host reads +%" PRIu64 ", writes +%" PRIu64
	       ", media errors +%" PRIu64 ", error log entries +%" PRIu64 "; this test: %u reads "
	       "and %u writes succeeded, %u failed\n", now.reads - F.smart0.reads,
	       now.writes - F.smart0.writes, now.media - F.smart0.media, now.errs - F.smart0.errs,
	       F.ok_reads, F.ok_writes, F.failed);
	assert_int_equal(now.reads - F.smart0.reads, F.ok_reads);
	assert_int_equal(now.writes - F.smart0.writes, F.ok_writes);
	/* Media errors: none counted (QEMU 7.2) or every failure. */
	assert_true(now.media == F.smart0.media || now.media - F.smart0.media == F.failed);

	entries = nvr_ctrlr_error_log_entries(F.c);
	assert_true(entries >= 1 && entries <= 256);
	if (entries > 64)
		entries = 64;
	assert_int_equal(nvr_ctrlr_get_log_page(F.c, 0x01, 0, elog, (size_t)entries * 64), 0);
	for (int i = 0; i < entries; i++) {
		uint64_t count;

		memcpy(&count, elog + i * 64, 8);
		used += count != 0;
	}
	printf("[ INFO     ] Error Information log: %d of %d entries used; SMART says %" PRIu64
	       " error log entries, %" PRIu64 " media errors\n", used, entries, now.errs, now.media);
	assert_true((uint64_t)used <= now.errs);
	if (now.errs && now.errs <= (uint64_t)entries)
		assert_int_equal((uint64_t)used, now.errs);
	if (!now.media && !used)
		printf("[ INFO     ] the controller recorded the media errors nowhere "
		       "(QEMU 7.2 counts neither media errors nor error log entries)\n");

	/* The CLI opens the device itself: let go of it first. */
	for (int k = 0; k < 2; k++)
		dr_exit(&F.s[k].r);
	assert_int_equal(nvr_ctrlr_detach(F.c), 0);
	F.c = NULL;
	F.ready = false;
	for (int k = 0; k < 2; k++)
		free(F.s[k].bufs);
	close(F.kfd);

	snprintf(cmd, sizeof(cmd), "nvring log %s --smart --json", F.bdf);
	out = run_cmd(cmd, &st);
	printf("[ INFO     ] %s: %s", cmd, out);
	assert_int_equal(st, 0);
	assert_true(json_ok(out));
	char want[64];
	snprintf(want, sizeof(want), "\"media_errors\":%" PRIu64 ",", now.media);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, "\"host_read_commands\":"));
	free(out);

	snprintf(cmd, sizeof(cmd), "nvring log %s --error --json", F.bdf);
	out = run_cmd(cmd, &st);
	printf("[ INFO     ] %s: %s", cmd, out);
	assert_int_equal(st, 0);
	assert_true(json_ok(out));
	free(out);

	snprintf(cmd, sizeof(cmd), "nvring log %s --smart", F.bdf);
	out = run_cmd(cmd, &st);
	assert_int_equal(st, 0);
	assert_non_null(strstr(out, "media_errors "));
	assert_non_null(strstr(out, "temperature "));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fault_media_read_write),
		cmocka_unit_test(fault_media_once_retry),
		cmocka_unit_test(fault_media_log_pages),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
