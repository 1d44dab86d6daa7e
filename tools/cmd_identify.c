/* SPDX-License-Identifier: MIT */
/*
 * nvring identify: attach, print the controller and its active namespaces,
 * detach.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli.h"

static const char identify_help[] =
	"usage: nvring identify ADDRESS [--json]\n\n"
	"Attach the controller at PCI ADDRESS (bound to vfio-pci, see `nvring bind`)\n"
	"and print what it reports: vendor, serial, model, firmware, NVMe version,\n"
	"maximum transfer (MDTS), namespace count, volatile write cache, optional\n"
	"commands (ONCS), I/O queues granted; then each active namespace: ID,\n"
	"LBA size, blocks, capacity in bytes.\n";

/* The active namespace IDs in a malloc'd array; count in *n. */
static int get_nsids(struct nvr_ctrlr *ctrlr, uint32_t **out, int *n)
{
	uint32_t cap = 64, *ids = NULL;
	int rc;

	for (;;) {
		uint32_t *grown = realloc(ids, cap * sizeof(*ids));

		if (!grown) {
			free(ids);
			return cli_fail(EXIT_RUNTIME, "out of memory");
		}
		ids = grown;
		rc = nvr_ctrlr_ns_list(ctrlr, ids, cap);
		if (rc < 0) {
			free(ids);
			return cli_fail(EXIT_RUNTIME, "listing namespaces: %s", strerror(-rc));
		}
		if ((uint32_t)rc <= cap)
			break;
		cap = (uint32_t)rc;
	}
	*out = ids;
	*n = rc;
	return 0;
}

static void print_text(const struct nvr_ctrlr_info *ci, const struct nvr_ns_info *ns, int nns)
{
	printf("controller %s\n", ci->bdf);
	printf("  vid        0x%04x (ssvid 0x%04x)\n", ci->vid, ci->ssvid);
	printf("  sn         %s\n", ci->sn);
	printf("  mn         %s\n", ci->mn);
	printf("  fr         %s\n", ci->fr);
	printf("  version    %u.%u.%u\n", ci->version >> 16, (ci->version >> 8) & 0xff,
	       ci->version & 0xff);
	printf("  max_xfer   %u bytes (MDTS)\n", ci->max_xfer);
	printf("  nn         %u\n", ci->nn);
	printf("  vwc        %s\n", ci->vwc ? "present" : "absent");
	printf("  oncs       write_zeroes=%s dsm=%s\n", ci->write_zeroes ? "yes" : "no",
	       ci->dsm ? "yes" : "no");
	printf("  io_queues  %u granted, up to %u entries each\n", ci->max_io_qpairs,
	       ci->max_io_entries);
	for (int i = 0; i < nns; i++)
		printf("namespace %u: lba_size %u, blocks %llu, capacity %llu bytes%s\n",
		       ns[i].nsid, ns[i].lba_size, (unsigned long long)ns[i].nlba,
		       (unsigned long long)ns[i].nlba * ns[i].lba_size,
		       ns[i].ms ? " (with metadata)" : "");
}

static void print_json(const struct nvr_ctrlr_info *ci, const struct nvr_ns_info *ns, int nns)
{
	printf("{\n  \"bdf\": \"%s\",\n  \"vid\": %u,\n  \"ssvid\": %u,\n  \"sn\": ",
	       ci->bdf, ci->vid, ci->ssvid);
	cli_json_str(stdout, ci->sn);
	fputs(",\n  \"mn\": ", stdout);
	cli_json_str(stdout, ci->mn);
	fputs(",\n  \"fr\": ", stdout);
	cli_json_str(stdout, ci->fr);
	printf(",\n  \"version\": \"%u.%u.%u\",\n  \"max_xfer\": %u,\n  \"nn\": %u,\n"
	       "  \"vwc\": %s,\n  \"write_zeroes\": %s,\n  \"dsm\": %s,\n"
	       "  \"io_qpairs\": %u,\n  \"io_entries\": %u,\n  \"namespaces\": [",
	       ci->version >> 16, (ci->version >> 8) & 0xff, ci->version & 0xff, ci->max_xfer,
	       ci->nn, ci->vwc ? "true" : "false", ci->write_zeroes ? "true" : "false",
	       ci->dsm ? "true" : "false", ci->max_io_qpairs, ci->max_io_entries);
	for (int i = 0; i < nns; i++)
		printf("%s\n    {\"nsid\": %u, \"lba_size\": %u, \"blocks\": %llu, \"capacity\": %llu, \"ms\": %u}",
		       i ? "," : "", ns[i].nsid, ns[i].lba_size, (unsigned long long)ns[i].nlba,
		       (unsigned long long)ns[i].nlba * ns[i].lba_size, ns[i].ms);
	fputs(nns ? "\n  ]\n}\n" : "]\n}\n", stdout);
}

int cmd_identify(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct nvr_ctrlr *ctrlr;
	struct nvr_ns_info *ns = NULL;
	uint32_t *nsids = NULL;
	bool json = false;
	char bdf[16];
	int c, rc, nns = 0, code = EXIT_OK;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "hj", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(identify_help, stdout);
			return EXIT_OK;
		}
		if (c == 'j')
			json = true;
		else
			return cli_usage("identify", "unknown option '%s'", argv[optind - 1]);
	}
	if (optind >= argc)
		return cli_usage("identify", "missing PCI address");
	if (optind + 1 < argc)
		return cli_usage("identify", "unexpected argument '%s'", argv[optind + 1]);
	rc = cli_check_vfio_bdf("identify", argv[optind], bdf);
	if (rc)
		return rc;
	rc = cli_attach(bdf, &ctrlr);
	if (rc)
		return rc;

	const struct nvr_ctrlr_info *ci = nvr_ctrlr_get_info(ctrlr);

	code = get_nsids(ctrlr, &nsids, &nns);
	if (code)
		goto out;
	ns = calloc(nns ? (size_t)nns : 1, sizeof(*ns));
	if (!ns) {
		code = cli_fail(EXIT_RUNTIME, "out of memory");
		goto out;
	}
	for (int i = 0; i < nns; i++) {
		rc = nvr_ns_get_info(ctrlr, nsids[i], &ns[i]);
		if (rc < 0) {
			code = cli_fail(EXIT_RUNTIME, "namespace %u of %s: %s", nsids[i], bdf,
					strerror(-rc));
			goto out;
		}
	}
	if (json)
		print_json(ci, ns, nns);
	else
		print_text(ci, ns, nns);
	if (fflush(stdout) != 0)
		code = cli_fail(EXIT_RUNTIME, "writing to stdout failed");
out:
	free(ns);
	free(nsids);
	rc = nvr_ctrlr_detach(ctrlr);
	if (rc < 0 && code == EXIT_OK)
		code = cli_fail(EXIT_RUNTIME, "detaching %s: %s", bdf, strerror(-rc));
	return code;
}
