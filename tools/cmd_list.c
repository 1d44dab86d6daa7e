/* SPDX-License-Identifier: MIT */
/*
 * nvring list / bind / unbind: sysfs only (pci/sysfs.h), no device access,
 * so these stay cheap and work on controllers bound to any driver.
 */
#include <errno.h>
#include <getopt.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>

#include "pci/sysfs.h"
#include "tools/cli.h"

/* Model string of a controller bound to the kernel's nvme driver, from
 * /sys/bus/pci/devices/BDF/nvme/nvme* /model; "" when there is none. */
static void kernel_model(const char *bdf, char *model, size_t len)
{
	char pattern[512];
	glob_t g;

	model[0] = '\0';
	snprintf(pattern, sizeof(pattern), "%s/bus/pci/devices/%s/nvme/nvme*/model",
		 nvr_sysfs_root(), bdf);
	if (glob(pattern, 0, NULL, &g) != 0)
		return;
	FILE *f = fopen(g.gl_pathv[0], "r");

	if (f) {
		if (!fgets(model, (int)len, f))
			model[0] = '\0';
		fclose(f);
	}
	globfree(&g);
	/* sysfs pads the Identify string with blanks and ends it with '\n'. */
	for (size_t n = strlen(model); n && (model[n - 1] == '\n' || model[n - 1] == ' '); n--)
		model[n - 1] = '\0';
}

static const char list_help[] =
	"usage: nvring list [--json|-j]\n\n"
	"List the NVMe functions (PCI class 0x010802), one a line:\n"
	"  ADDRESS  DRIVER  IOMMU-GROUP  VENDOR:DEVICE  MODEL\n"
	"DRIVER and IOMMU-GROUP are \"-\" when there is none. MODEL is read from\n"
	"sysfs when the kernel's nvme driver owns the controller, else \"-\"\n"
	"(use `nvring identify` for a vfio-pci controller).\n";

/* Parse options that are only --help and perhaps --json; returns -1 to go
 * on, else an exit code. */
static int parse_simple(int argc, char **argv, const char *help, bool allow_json, bool *json)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+hj", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(help, stdout);
			return EXIT_OK;
		case 'j':
			if (!allow_json)
				return cli_usage(argv[0], "--json is not an option of this command");
			*json = true;
			break;
		default:
			return cli_usage(argv[0], "unknown option '%s'", argv[optind - 1]);
		}
	}
	return -1;
}

int cmd_list(int argc, char **argv)
{
	struct nvr_pci_fn *fns = NULL;
	bool json = false;
	int rc, n;

	rc = parse_simple(argc, argv, list_help, true, &json);
	if (rc >= 0)
		return rc;
	if (optind != argc)
		return cli_usage("list", "unexpected argument '%s'", argv[optind]);

	n = nvr_pci_list_nvme(NULL, 0);
	if (n > 0) {
		fns = calloc((size_t)n, sizeof(*fns));
		if (!fns)
			return cli_fail(EXIT_RUNTIME, "out of memory");
		/* Functions can appear between the two calls: keep what fits. */
		rc = nvr_pci_list_nvme(fns, (unsigned)n);
		if (rc >= 0 && rc < n)
			n = rc;
		else if (rc < 0)
			n = rc;
	}
	if (n < 0) {
		free(fns);
		return cli_fail(EXIT_RUNTIME, "cannot list PCI devices in %s/bus/pci/devices: %s",
				nvr_sysfs_root(), strerror(-n));
	}

	if (json)
		fputs("[", stdout);
	for (int i = 0; i < n; i++) {
		const struct nvr_pci_fn *fn = &fns[i];
		char model[128] = "", group[16] = "-";

		if (!strcmp(fn->driver, "nvme"))
			kernel_model(fn->bdf, model, sizeof(model));
		if (fn->iommu_group >= 0)
			snprintf(group, sizeof(group), "%d", fn->iommu_group);
		if (!json) {
			printf("%s  %-8s  %-3s  %04x:%04x  %s\n", fn->bdf,
			       fn->driver[0] ? fn->driver : "-", group, fn->vendor, fn->device,
			       model[0] ? model : "-");
			continue;
		}
		printf("%s\n  {\"bdf\": \"%s\", \"driver\": ", i ? "," : "", fn->bdf);
		if (fn->driver[0])
			cli_json_str(stdout, fn->driver);
		else
			fputs("null", stdout);
		if (fn->iommu_group >= 0)
			printf(", \"iommu_group\": %d", fn->iommu_group);
		else
			fputs(", \"iommu_group\": null", stdout);
		printf(", \"vendor\": \"0x%04x\", \"device\": \"0x%04x\", \"model\": ",
		       fn->vendor, fn->device);
		if (model[0])
			cli_json_str(stdout, model);
		else
			fputs("null", stdout);
		fputs("}", stdout);
	}
	if (json)
		fputs(n ? "\n]\n" : "]\n", stdout);
	free(fns);
	if (fflush(stdout) != 0)
		return cli_fail(EXIT_RUNTIME, "writing the list: %s", strerror(errno));
	return EXIT_OK;
}

/* bind/unbind: move @argv's one address to @driver. */
static int rebind(int argc, char **argv, const char *help, const char *driver)
{
	const char *cmd = argv[0];
	struct nvr_pci_fn fn;
	char bdf[16];
	bool json = false;
	int rc;

	rc = parse_simple(argc, argv, help, false, &json);
	if (rc >= 0)
		return rc;
	if (optind >= argc)
		return cli_usage(cmd, "missing PCI address");
	if (optind + 1 < argc)
		return cli_usage(cmd, "unexpected argument '%s'", argv[optind + 1]);
	if (nvr_pci_parse_bdf(argv[optind], bdf) < 0)
		return cli_usage(cmd, "'%s' is not a PCI address (expected DDDD:BB:DD.F, e.g. 0000:00:02.0)",
				 argv[optind]);
	rc = nvr_pci_fn_info(bdf, &fn);
	if (rc == -ENODEV)
		return cli_fail(EXIT_RUNTIME, "no PCI function %s: see `nvring list`", bdf);
	if (rc < 0)
		return cli_fail(EXIT_RUNTIME, "cannot read sysfs for %s: %s", bdf, strerror(-rc));
	if (fn.class_code != NVR_PCI_CLASS_NVME)
		return cli_fail(EXIT_RUNTIME, "%s is not an NVMe controller (class 0x%06x); refusing to rebind it",
				bdf, fn.class_code);
	if (!strcmp(fn.driver, driver))
		return EXIT_OK;   /* already there */

	rc = nvr_pci_bind(bdf, driver);
	switch (rc) {
	case 0:
		break;
	case -ENOENT:
		if (!strcmp(driver, "vfio-pci"))
			return cli_fail(EXIT_RUNTIME, "no %s/bus/pci/drivers/vfio-pci: load the vfio-pci module (modprobe vfio-pci)",
					nvr_sysfs_root());
		return cli_fail(EXIT_RUNTIME, "no %s/bus/pci/drivers/%s: load the %s module (modprobe %s)",
				nvr_sysfs_root(), driver, driver, driver);
	case -EACCES:
	case -EPERM:
		return cli_fail(EXIT_RUNTIME, "binding %s to %s: permission denied: run as root", bdf, driver);
	default:
		return cli_fail(EXIT_RUNTIME, "binding %s to %s failed: %s; see the kernel log (dmesg)",
				bdf, driver, strerror(-rc));
	}

	/* Say so if the kernel did not actually take it. */
	rc = nvr_pci_fn_info(bdf, &fn);
	if (rc == 0 && strcmp(fn.driver, driver) != 0)
		return cli_fail(EXIT_RUNTIME, "%s did not bind to %s (now: %s); see the kernel log (dmesg)",
				bdf, driver, fn.driver[0] ? fn.driver : "no driver");
	return EXIT_OK;
}

int cmd_bind(int argc, char **argv)
{
	static const char help[] =
		"usage: nvring bind ADDRESS\n\n"
		"Bind the NVMe controller at PCI ADDRESS (e.g. 0000:00:02.0) to vfio-pci\n"
		"through driver_override, so nvring can drive it. Unbinds the kernel's\n"
		"nvme driver first (its block devices disappear). Loads no module: if\n"
		"vfio-pci is absent, `modprobe vfio-pci` first. Needs root.\n";

	return rebind(argc, argv, help, "vfio-pci");
}

int cmd_unbind(int argc, char **argv)
{
	static const char help[] =
		"usage: nvring unbind ADDRESS\n\n"
		"Give the controller at PCI ADDRESS back to the kernel's nvme driver\n"
		"(clears driver_override). Needs root.\n";

	return rebind(argc, argv, help, "nvme");
}
