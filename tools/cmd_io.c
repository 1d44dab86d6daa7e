/* SPDX-License-Identifier: MIT */
/*
 * nvring read / write: move logical blocks between a namespace and
 * stdout/stdin or a file, through DMA memory and one polled queue pair.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools/cli.h"

#define IO_CHUNK_BYTES  (1u << 20)   /* DMA buffer size per command */
#define IO_TIMEOUT_SEC  30           /* a command that takes longer has hung */

static const char read_help[] =
	"usage: nvring read ADDRESS --lba L --count C [--nsid N] [--data FILE]\n\n"
	"Read C logical blocks starting at block L of namespace N (default 1) of\n"
	"the controller at PCI ADDRESS (bound to vfio-pci) and write them to FILE,\n"
	"or to stdout. Numbers may be decimal or 0x-prefixed hex.\n";

static const char write_help[] =
	"usage: nvring write ADDRESS --lba L --count C [--nsid N] [--data FILE]\n\n"
	"Write C logical blocks starting at block L of namespace N (default 1) of\n"
	"the controller at PCI ADDRESS (bound to vfio-pci), taking the data from\n"
	"FILE or stdin. The input must be exactly C x LBA-size bytes (see\n"
	"`nvring identify ADDRESS`); otherwise nothing is written.\n";

struct io_args {
	const char *cmd;
	bool        is_write;
	char        bdf[16];
	uint32_t    nsid;
	uint64_t    lba;
	uint32_t    count;
	const char *data;     /* NULL: stdin/stdout */
};

struct waiter {
	bool           done;
	struct nvr_cpl cpl;
};

static void on_complete(void *arg, const struct nvr_cpl *cpl)
{
	struct waiter *w = arg;

	w->cpl = *cpl;
	w->done = true;
}

static double now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Submit one read or write of @nlb blocks and poll until it completes. */
static int do_io(const struct io_args *a, struct nvr_qpair *qp, void *buf, uint64_t lba,
		 uint32_t nlb)
{
	struct waiter w = { 0 };
	const char *what = a->is_write ? "write" : "read";
	double deadline = now_sec() + IO_TIMEOUT_SEC;
	int rc;

	for (;;) {
		rc = a->is_write ? nvr_write(qp, a->nsid, buf, lba, nlb, on_complete, &w)
				 : nvr_read(qp, a->nsid, buf, lba, nlb, on_complete, &w);
		if (rc != -EAGAIN)
			break;
		if (nvr_qpair_poll(qp, 0) < 0 || now_sec() > deadline)
			break;
	}
	if (rc < 0)
		return cli_fail(EXIT_RUNTIME, "%s of %u blocks at LBA %llu (nsid %u) refused: %s",
				what, nlb, (unsigned long long)lba, a->nsid, strerror(-rc));
	while (!w.done) {
		rc = nvr_qpair_poll(qp, 0);
		if (rc < 0)
			return cli_fail(EXIT_RUNTIME, "%s: the controller failed (%s); try `nvring unbind %s && nvring bind %s`",
					what, strerror(-rc), a->bdf, a->bdf);
		if (!w.done && now_sec() > deadline)
			return cli_fail(EXIT_RUNTIME, "%s of %u blocks at LBA %llu timed out after %d s",
					what, nlb, (unsigned long long)lba, IO_TIMEOUT_SEC);
	}
	if (w.cpl.res < 0)
		return cli_fail(EXIT_RUNTIME, "%s of %u blocks at LBA %llu (nsid %u) failed: %s (NVMe status 0x%03x, %s)",
				what, nlb, (unsigned long long)lba, a->nsid,
				nvr_status_str(w.cpl.status), w.cpl.status, strerror(-w.cpl.res));
	return 0;
}

/* Read all of @f (at most @want + 1 bytes, to notice excess) into @buf. */
static size_t read_input(FILE *f, uint8_t *buf, size_t want, bool *err)
{
	size_t got = 0, n;

	while (got < want + 1 && (n = fread(buf + got, 1, want + 1 - got, f)) > 0)
		got += n;
	*err = ferror(f) != 0;
	return got;
}

static int parse_io_args(int argc, char **argv, struct io_args *a)
{
	static const struct option opts[] = {
		{ "help",  no_argument,       NULL, 'h' },
		{ "nsid",  required_argument, NULL, 'n' },
		{ "lba",   required_argument, NULL, 'l' },
		{ "count", required_argument, NULL, 'c' },
		{ "data",  required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	bool have_lba = false, have_count = false;
	uint64_t v;
	int c;

	a->nsid = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hn:l:c:d:", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(a->is_write ? write_help : read_help, stdout);
			return EXIT_OK;
		case 'n':
			if (!cli_parse_u64(optarg, 1, 0xfffffffeu, &v))
				return cli_usage(a->cmd, "--nsid '%s': expected a namespace ID from 1 to 4294967294",
						 optarg);
			a->nsid = (uint32_t)v;
			break;
		case 'l':
			if (!cli_parse_u64(optarg, 0, UINT64_MAX, &v))
				return cli_usage(a->cmd, "--lba '%s': expected a block number", optarg);
			a->lba = v;
			have_lba = true;
			break;
		case 'c':
			if (!cli_parse_u64(optarg, 1, UINT32_MAX, &v))
				return cli_usage(a->cmd, "--count '%s': expected a block count from 1 to 4294967295",
						 optarg);
			a->count = (uint32_t)v;
			have_count = true;
			break;
		case 'd':
			if (!*optarg)
				return cli_usage(a->cmd, "--data needs a file name");
			a->data = optarg;
			break;
		case ':':
			return cli_usage(a->cmd, "option '%s' needs a value", argv[optind - 1]);
		default:
			return cli_usage(a->cmd, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return cli_usage(a->cmd, "missing PCI address");
	if (optind + 1 < argc)
		return cli_usage(a->cmd, "unexpected argument '%s'", argv[optind + 1]);
	if (!have_lba)
		return cli_usage(a->cmd, "missing --lba");
	if (!have_count)
		return cli_usage(a->cmd, "missing --count");
	return cli_check_vfio_bdf(a->cmd, argv[optind], a->bdf) ?: -1;
}

static int run_io(int argc, char **argv, bool is_write)
{
	struct io_args a = { .cmd = argv[0], .is_write = is_write };
	struct nvr_ctrlr *ctrlr = NULL;
	struct nvr_qpair *qp = NULL;
	struct nvr_ns_info ns;
	uint8_t *input = NULL;
	void *dma = NULL;
	FILE *f = NULL;
	int rc, code = EXIT_OK;

	rc = parse_io_args(argc, argv, &a);
	if (rc >= 0)
		return rc;

	/* Open the input before touching the device: a typo costs nothing.
	 * The output is created only once the request has been checked. */
	if (is_write && a.data) {
		f = fopen(a.data, "rb");
		if (!f)
			return cli_fail(EXIT_RUNTIME, "%s: cannot open --data '%s': %s", a.cmd, a.data,
					strerror(errno));
	} else {
		f = is_write ? stdin : stdout;
	}

	code = cli_attach(a.bdf, &ctrlr);
	if (code)
		goto out;
	rc = nvr_ns_get_info(ctrlr, a.nsid, &ns);
	if (rc < 0) {
		code = cli_fail(EXIT_RUNTIME, "namespace %u is not active on %s: see `nvring identify %s`",
				a.nsid, a.bdf, a.bdf);
		goto out;
	}
	if (a.lba >= ns.nlba || a.count > ns.nlba - a.lba) {
		code = cli_fail(EXIT_RUNTIME, "%u blocks at LBA %llu run past the end of namespace %u (%llu blocks of %u bytes)",
				a.count, (unsigned long long)a.lba, a.nsid,
				(unsigned long long)ns.nlba, ns.lba_size);
		goto out;
	}

	if (!is_write && a.data) {
		f = fopen(a.data, "wb");
		if (!f) {
			code = cli_fail(EXIT_RUNTIME, "%s: cannot create --data '%s': %s", a.cmd, a.data,
					strerror(errno));
			goto out;
		}
	}

	size_t total = (size_t)a.count * ns.lba_size;
	uint32_t chunk_blocks = IO_CHUNK_BYTES / ns.lba_size ?: 1;

	if (is_write) {
		bool err;

		input = malloc(total + 1);
		if (!input) {
			code = cli_fail(EXIT_RUNTIME, "cannot buffer %zu bytes of input: out of memory; write fewer blocks at a time",
					total);
			goto out;
		}
		size_t got = read_input(f, input, total, &err);

		if (err) {
			code = cli_fail(EXIT_RUNTIME, "reading %s: %s", a.data ? a.data : "stdin",
					strerror(errno));
			goto out;
		}
		if (got != total) {
			code = cli_fail(EXIT_RUNTIME, "write: %s has %s%zu bytes, need exactly %u blocks x %u bytes = %zu; nothing written",
					a.data ? a.data : "stdin", got > total ? "more than " : "",
					got > total ? total : got, a.count, ns.lba_size, total);
			goto out;
		}
	}

	rc = nvr_qpair_alloc(ctrlr, 0, &qp);
	if (rc < 0) {
		code = cli_fail(EXIT_RUNTIME, "cannot create an I/O queue pair on %s: %s", a.bdf,
				strerror(-rc));
		goto out;
	}
	if (chunk_blocks > a.count)
		chunk_blocks = a.count;
	rc = nvr_dma_alloc(ctrlr, (size_t)chunk_blocks * ns.lba_size, &dma);
	if (rc < 0) {
		code = cli_fail(EXIT_RUNTIME, "cannot allocate %zu bytes of DMA memory: %s; raise RLIMIT_MEMLOCK (ulimit -l)",
				(size_t)chunk_blocks * ns.lba_size, strerror(-rc));
		goto out;
	}

	for (uint32_t done = 0; done < a.count;) {
		uint32_t nlb = a.count - done < chunk_blocks ? a.count - done : chunk_blocks;
		size_t bytes = (size_t)nlb * ns.lba_size;

		if (is_write)
			memcpy(dma, input + (size_t)done * ns.lba_size, bytes);
		code = do_io(&a, qp, dma, a.lba + done, nlb);
		if (code)
			goto out;
		if (!is_write && fwrite(dma, 1, bytes, f) != bytes) {
			code = cli_fail(EXIT_RUNTIME, "writing %s: %s", a.data ? a.data : "stdout",
					strerror(errno));
			goto out;
		}
		done += nlb;
	}
	if (!is_write && fflush(f) != 0)
		code = cli_fail(EXIT_RUNTIME, "writing %s: %s", a.data ? a.data : "stdout",
				strerror(errno));
out:
	if (dma)
		nvr_dma_free(ctrlr, dma);
	if (qp)
		nvr_qpair_free(qp);
	if (ctrlr)
		nvr_ctrlr_detach(ctrlr);
	free(input);
	if (f && f != stdin && f != stdout && fclose(f) != 0 && code == EXIT_OK)
		code = cli_fail(EXIT_RUNTIME, "closing %s: %s", a.data, strerror(errno));
	return code;
}

int cmd_read(int argc, char **argv)
{
	return run_io(argc, argv, false);
}

int cmd_write(int argc, char **argv)
{
	return run_io(argc, argv, true);
}
