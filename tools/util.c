/* SPDX-License-Identifier: MIT */
/*
 * The nvring CLI's shared helpers: one-line errors, number parsing, JSON
 * strings, the "is this device ready for us" check and attach.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pci/sysfs.h"
#include "tools/cli.h"

int cli_fail(int code, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("nvring: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return cli_fail(EXIT_USAGE, "%s: %s (see `nvring %s --help`)", cmd, msg, cmd);
}

bool cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	/* strtoull accepts a leading '-' and whitespace: refuse both. */
	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ' || *s == '\t')
		return false;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

void cli_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p >= 0x7f)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

int cli_check_vfio_bdf(const char *cmd, const char *arg, char bdf[16])
{
	struct nvr_pci_fn fn;
	int rc;

	if (nvr_pci_parse_bdf(arg, bdf) < 0)
		return cli_usage(cmd, "'%s' is not a PCI address (expected DDDD:BB:DD.F, e.g. 0000:00:02.0)",
				 arg);
	rc = nvr_pci_fn_info(bdf, &fn);
	if (rc == -ENODEV)
		return cli_fail(EXIT_RUNTIME, "no PCI function %s: see `nvring list` for the NVMe controllers",
				bdf);
	if (rc < 0)
		return cli_fail(EXIT_RUNTIME, "cannot read sysfs for %s: %s", bdf, strerror(-rc));
	if (fn.class_code != NVR_PCI_CLASS_NVME)
		return cli_fail(EXIT_RUNTIME, "%s is not an NVMe controller (class 0x%06x): see `nvring list`",
				bdf, fn.class_code);
	if (strcmp(fn.driver, "vfio-pci") != 0) {
		if (fn.driver[0])
			return cli_fail(EXIT_RUNTIME, "%s is bound to %s, not vfio-pci: run `nvring bind %s`",
					bdf, fn.driver, bdf);
		return cli_fail(EXIT_RUNTIME, "%s is bound to no driver: run `nvring bind %s`", bdf, bdf);
	}
	return 0;
}

/* The fix to suggest for an attach error ("%s" is the address). */
static const char *attach_fix(int err)
{
	switch (err) {
	case -ENODEV: return "see `nvring list` for the NVMe controllers";
	case -ENXIO:  return "run `nvring bind %s` first";
	case -EBUSY:  return "another process holds the device, or its IOMMU group has other devices bound to host drivers";
	case -EACCES:
	case -EPERM:  return "run as root (or give this user access to /dev/vfio)";
	case -ENOMEM: return "raise RLIMIT_MEMLOCK (ulimit -l unlimited) or free memory";
	case -ETIMEDOUT: return "the controller did not become ready; try `nvring unbind %1$s && nvring bind %1$s`";
	case -EIO:    return "the controller reported a fatal error; try `nvring unbind %1$s && nvring bind %1$s`";
	default:      return "see the kernel log (dmesg)";
	}
}

/* The library's messages (its log hook): printed as "nvring: MESSAGE", or,
 * while cli_attach() runs, held back so that a failure is one line. */
static struct {
	bool holding;
	size_t used;
	char buf[2048];   /* held messages, one per line */
} held;

static void cli_log_hook(void *arg, int level, const char *msg)
{
	size_t len = strlen(msg);

	if (!held.holding) {
		fflush(stdout);
		fprintf(stderr, "nvring: %s\n", msg);
		return;
	}
	if (len + 2 > sizeof(held.buf))
		len = sizeof(held.buf) - 2;
	/* Full: the newest message matters most (it is the failure's reason). */
	if (held.used + len + 2 > sizeof(held.buf))
		held.used = 0;
	memcpy(held.buf + held.used, msg, len);
	held.used += len;
	held.buf[held.used++] = '\n';
	held.buf[held.used] = '\0';
}

void cli_log_init(void)
{
	nvr_set_log_hook(cli_log_hook, NULL);
	if (getenv("NVRING_VERBOSE"))
		nvr_set_log_level(NVR_LOG_DEBUG);
}

/* Last non-empty line of @buf (modified in place), or NULL. */
static char *last_line(char *buf)
{
	char *line = NULL, *save = NULL;

	for (char *tok = strtok_r(buf, "\n", &save); tok; tok = strtok_r(NULL, "\n", &save))
		if (*tok)
			line = tok;
	return line;
}

int cli_attach(const char *bdf, struct nvr_ctrlr **out)
{
	int rc;

	/* With NVRING_VERBOSE set, messages go out as they come (debugging). */
	held.holding = !getenv("NVRING_VERBOSE");
	held.used = 0;
	held.buf[0] = '\0';
	rc = nvr_ctrlr_attach(bdf, NULL, out);
	held.holding = false;
	if (rc == 0) {
		/* Warnings on success pass through. */
		char *save = NULL;

		for (char *l = strtok_r(held.buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
			fprintf(stderr, "nvring: %s\n", l);
		return 0;
	}

	const char *reason = last_line(held.buf);
	char fix[256];

	/* The library's line already names the holder, or the group's other
	 * functions, and the fix: say it once. */
	if (rc == -EBUSY && reason && (strstr(reason, " is in use by ") || strstr(reason, " is not viable")))
		return cli_fail(EXIT_RUNTIME, "cannot attach: %s", reason);

	/* attach_fix() strings use the address as their only argument. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	snprintf(fix, sizeof(fix), attach_fix(rc), bdf);
#pragma GCC diagnostic pop
	return cli_fail(EXIT_RUNTIME, "cannot attach %s: %s (%s); %s", bdf,
			reason ? reason : strerror(-rc), strerrorname_np(-rc) ?: "?", fix);
}
