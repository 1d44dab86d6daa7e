/* SPDX-License-Identifier: MIT */
/*
 * nvring — an nvme-cli style tool over the nvring driver: list NVMe
 * functions, bind them to vfio-pci, identify, read and write blocks.
 */
#include <string.h>

#include "tools/cli.h"

static const struct cli_cmd commands[] = {
	{ "list",     "list NVMe controllers: address, driver, IOMMU group, model", cmd_list },
	{ "bind",     "bind a controller to vfio-pci (for nvring)",                 cmd_bind },
	{ "unbind",   "give a controller back to the kernel's nvme driver",         cmd_unbind },
	{ "identify", "show a controller and its namespaces",                        cmd_identify },
	{ "read",     "read logical blocks to stdout or a file",                     cmd_read },
	{ "write",    "write logical blocks from stdin or a file",                   cmd_write },
	{ "run",      "run an unmodified program on a namespace (LD_PRELOAD shim)", cmd_run },
	{ "log",      "show the SMART / Health or Error Information log page",     cmd_log },
	{ "serve",    "own controllers and serve them to many processes (owner)",   cmd_serve },
};

static void usage(FILE *f)
{
	fputs("usage: nvring COMMAND [ARGS]   (nvring COMMAND --help for details)\n\n"
	      "commands:\n", f);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fputs("\nExit status: 0 success, 1 runtime failure, 2 usage error.\n", f);
}

int main(int argc, char **argv)
{
	/* The library is silent unless asked: the CLI asks. */
	cli_log_init();
	if (argc < 2)
		return cli_fail(EXIT_USAGE, "no command given (see `nvring --help`)");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	return cli_fail(EXIT_USAGE, "unknown command '%s' (see `nvring --help`)", argv[1]);
}
