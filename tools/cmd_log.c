/* SPDX-License-Identifier: MIT */
/*
 * nvring log: attach, read the SMART / Health or the Error Information log
 * page (Get Log Page, NVMe 2.0 §5.16), print it (tools/log_fmt.c), detach.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli.h"

static const char log_help[] =
	"usage: nvring log ADDRESS --smart|--error [--json]\n\n"
	"Attach the controller at PCI ADDRESS (bound to vfio-pci) and print a log page:\n"
	"  --smart  SMART / Health Information (controller wide): critical warning,\n"
	"           temperature, spare, percentage used, data units and commands,\n"
	"           power cycles and hours, unsafe shutdowns, media errors, error\n"
	"           log entries\n"
	"  --error  Error Information: the non-empty entries (error count, SQID, CID,\n"
	"           status, LBA, NSID), at most the first 64\n"
	"  --json   one JSON object instead of text\n";

#define LOG_MAX_ERR_ENTRIES 64   /* 4 KiB: one Get Log Page into one page */

int cmd_log(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help",  no_argument, NULL, 'h' },
		{ "json",  no_argument, NULL, 'j' },
		{ "smart", no_argument, NULL, 's' },
		{ "error", no_argument, NULL, 'e' },
		{ NULL, 0, NULL, 0 },
	};
	static uint8_t page[LOG_MAX_ERR_ENTRIES * 64];
	struct nvr_ctrlr *ctrlr;
	bool json = false;
	int which = 0, c, rc, code = EXIT_OK;
	char bdf[16];

	opterr = 0;
	while ((c = getopt_long(argc, argv, "hjse", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(log_help, stdout);
			return EXIT_OK;
		case 'j':
			json = true;
			break;
		case 's':
		case 'e':
			if (which && which != c)
				return cli_usage("log", "--smart and --error exclude each other");
			which = c;
			break;
		default:
			return cli_usage("log", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (!which)
		return cli_usage("log", "say which page: --smart or --error");
	if (optind >= argc)
		return cli_usage("log", "missing PCI address");
	if (optind + 1 < argc)
		return cli_usage("log", "unexpected argument '%s'", argv[optind + 1]);
	rc = cli_check_vfio_bdf("log", argv[optind], bdf);
	if (rc)
		return rc;
	rc = cli_attach(bdf, &ctrlr);
	if (rc)
		return rc;

	if (which == 's') {
		rc = nvr_ctrlr_get_log_page(ctrlr, 0x02, 0xffffffff, page, 512);
		if (rc < 0)
			code = cli_fail(EXIT_RUNTIME, "SMART / Health log of %s: %s", bdf, strerror(-rc));
		else
			cli_print_smart(stdout, bdf, page, json);
	} else {
		int n = nvr_ctrlr_error_log_entries(ctrlr);

		if (n > LOG_MAX_ERR_ENTRIES)
			n = LOG_MAX_ERR_ENTRIES;
		rc = n < 0 ? n : nvr_ctrlr_get_log_page(ctrlr, 0x01, 0, page, (size_t)n * 64);
		if (rc < 0)
			code = cli_fail(EXIT_RUNTIME, "Error Information log of %s: %s", bdf,
					strerror(-rc));
		else
			cli_print_error_log(stdout, bdf, page, (unsigned)n, json);
	}
	if (code == EXIT_OK && fflush(stdout) != 0)
		code = cli_fail(EXIT_RUNTIME, "writing to stdout failed");
	rc = nvr_ctrlr_detach(ctrlr);
	if (rc < 0 && code == EXIT_OK)
		code = cli_fail(EXIT_RUNTIME, "detaching %s: %s", bdf, strerror(-rc));
	return code;
}
