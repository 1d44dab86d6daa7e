/* SPDX-License-Identifier: MIT */
/*
 * The nvring command-line tool: what the subcommand files share.
 *
 * Exit codes: 0 success, 1 runtime failure (device absent, unbound, I/O
 * error), 2 usage error (bad or missing argument). Every failure prints
 * exactly one line on stderr, prefixed "nvring: ", naming the fix.
 */
#ifndef NVRING_TOOLS_CLI_H
#define NVRING_TOOLS_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <nvring/nvring.h>

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

/* One subcommand: run(argc, argv) with argv[0] the subcommand's name. */
struct cli_cmd {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

/* Subcommands (tools/cmd_*.c). */
int cmd_list(int argc, char **argv);
int cmd_bind(int argc, char **argv);
int cmd_unbind(int argc, char **argv);
int cmd_identify(int argc, char **argv);
int cmd_read(int argc, char **argv);
int cmd_write(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_log(int argc, char **argv);
int cmd_serve(int argc, char **argv);

/* Print "nvring: <message>\n" on stderr; returns @code so callers can
 * `return cli_fail(EXIT_USAGE, ...)`. */
int cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Usage error for subcommand @cmd: one line, pointing at --help. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parse an unsigned decimal/hex (0x) number into [min, max]; false on
 * garbage, sign, overflow or out of range. */
bool cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Print @s as a JSON string literal (quotes and escapes included). */
void cli_json_str(FILE *f, const char *s);

/*
 * Normalise @arg into @bdf and check, through sysfs, that the function
 * exists and is bound to vfio-pci. On failure prints one line naming the
 * fix and returns the exit code (EXIT_USAGE for a malformed address,
 * EXIT_RUNTIME otherwise); 0 when the device is ready to attach.
 */
int cli_check_vfio_bdf(const char *cmd, const char *arg, char bdf[16]);

/* Install the log hook that prints the library's messages as
 * "nvring: MESSAGE" on stderr (all levels with NVRING_VERBOSE set). */
void cli_log_init(void);

/*
 * Attach @bdf with default options. The library's messages meanwhile are
 * held back: on success they are printed, on failure the last one is
 * folded into the single "nvring: " line. Returns 0 or an exit code.
 */
int cli_attach(const char *bdf, struct nvr_ctrlr **out);

/* tools/log_fmt.c: print a SMART / Health page (512 bytes) or @entries
 * Error Information entries (64 bytes each) of controller @bdf, as text
 * or one JSON object; the error log printer returns the non-empty entries
 * it showed. */
void cli_print_smart(FILE *f, const char *bdf, const void *page, bool json);
int  cli_print_error_log(FILE *f, const char *bdf, const void *page, unsigned entries, bool json);

#endif
