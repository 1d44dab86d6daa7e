/* SPDX-License-Identifier: MIT */
/*
 * nvring log: the SMART / Health and Error Information log pages (NVMe 2.0
 * Figures 205, 207) as text, in the manner of nvme-cli's smart-log and
 * error-log, or as one JSON object. Pure formatting, so the unit tests run
 * it on pages the software model returns.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "driver/nvme_spec.h"
#include "tools/cli.h"

/* A 128-bit little endian counter in decimal (at most 39 digits). */
static const char *u128_str(const uint8_t b[16], char out[48])
{
	unsigned __int128 v = 0;
	char tmp[48];
	int n = 0;

	for (int i = 15; i >= 0; i--)
		v = v << 8 | b[i];
	do {
		tmp[n++] = (char)('0' + (int)(v % 10));
		v /= 10;
	} while (v);
	for (int i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	out[n] = 0;
	return out;
}

static unsigned le16(const uint8_t b[2])
{
	return (unsigned)b[0] | (unsigned)b[1] << 8;
}

/* SMART's 128-bit counters in the order nvme-cli prints them. */
static const struct {
	const char *text, *json;
	size_t off;
} smart_ctrs[] = {
	{ "data_units_read",      "data_units_read",      offsetof(struct nvme_smart_log, data_units_read) },
	{ "data_units_written",   "data_units_written",   offsetof(struct nvme_smart_log, data_units_written) },
	{ "host_read_commands",   "host_read_commands",   offsetof(struct nvme_smart_log, host_reads) },
	{ "host_write_commands",  "host_write_commands",  offsetof(struct nvme_smart_log, host_writes) },
	{ "controller_busy_time", "controller_busy_time", offsetof(struct nvme_smart_log, ctrl_busy_time) },
	{ "power_cycles",         "power_cycles",         offsetof(struct nvme_smart_log, power_cycles) },
	{ "power_on_hours",       "power_on_hours",       offsetof(struct nvme_smart_log, power_on_hours) },
	{ "unsafe_shutdowns",     "unsafe_shutdowns",     offsetof(struct nvme_smart_log, unsafe_shutdowns) },
	{ "media_errors",         "media_errors",         offsetof(struct nvme_smart_log, media_errors) },
	{ "num_err_log_entries",  "num_err_log_entries",  offsetof(struct nvme_smart_log, num_err_log_entries) },
};

void cli_print_smart(FILE *f, const char *bdf, const void *page, bool json)
{
	const struct nvme_smart_log *s = page;
	const uint8_t *raw = page;
	unsigned kelvin = le16(s->temperature);
	char num[48];

	if (json) {
		fputs("{\"bdf\":", f);
		cli_json_str(f, bdf);
		fprintf(f, ",\"critical_warning\":%u,\"temperature\":%u,\"avail_spare\":%u,"
			"\"spare_thresh\":%u,\"percent_used\":%u,\"endurance_grp_critical_warning\":%u",
			s->critical_warning, kelvin, s->avail_spare, s->spare_thresh,
			s->percent_used, s->endu_grp_crit_warn);
		/* Counters as JSON numbers: exact in any parser up to 2^53,
		 * which no emulated or real counter here comes near. */
		for (size_t i = 0; i < sizeof(smart_ctrs) / sizeof(smart_ctrs[0]); i++)
			fprintf(f, ",\"%s\":%s", smart_ctrs[i].json,
				u128_str(raw + smart_ctrs[i].off, num));
		fprintf(f, ",\"warning_temp_time\":%" PRIu32 ",\"critical_comp_time\":%" PRIu32 "}\n",
			s->warning_temp_time, s->critical_comp_time);
		return;
	}
	fprintf(f, "SMART / Health Information log of %s\n", bdf);
	fprintf(f, "critical_warning                    : %#x\n", s->critical_warning);
	if (kelvin)
		fprintf(f, "temperature                         : %d C (%u K)\n", (int)kelvin - 273,
			kelvin);
	else
		fprintf(f, "temperature                         : not reported\n");
	fprintf(f, "available_spare                     : %u%%\n", s->avail_spare);
	fprintf(f, "available_spare_threshold           : %u%%\n", s->spare_thresh);
	fprintf(f, "percentage_used                     : %u%%\n", s->percent_used);
	fprintf(f, "endurance group critical warning    : %#x\n", s->endu_grp_crit_warn);
	for (size_t i = 0; i < sizeof(smart_ctrs) / sizeof(smart_ctrs[0]); i++) {
		fprintf(f, "%-36s: %s", smart_ctrs[i].text, u128_str(raw + smart_ctrs[i].off, num));
		/* A data unit is 1000 x 512 bytes (Figure 207). */
		if (i < 2) {
			unsigned __int128 v = 0;

			for (int b = 15; b >= 0; b--)
				v = v << 8 | raw[smart_ctrs[i].off + (size_t)b];
			fprintf(f, " (%.2f MB)", (double)v * 512000.0 / 1e6);
		}
		fputc('\n', f);
	}
	fprintf(f, "warning_temperature_time            : %" PRIu32 " min\n", s->warning_temp_time);
	fprintf(f, "critical_composite_temperature_time : %" PRIu32 " min\n", s->critical_comp_time);
	for (int i = 0; i < 8; i++)
		if (s->temp_sensor[i])
			fprintf(f, "temperature_sensor_%d                : %d C (%u K)\n", i + 1,
				(int)s->temp_sensor[i] - 273, s->temp_sensor[i]);
}

int cli_print_error_log(FILE *f, const char *bdf, const void *page, unsigned entries, bool json)
{
	const struct nvme_error_log *e = page;
	int shown = 0;

	if (json) {
		fputs("{\"bdf\":", f);
		cli_json_str(f, bdf);
		fprintf(f, ",\"entries\":%u,\"errors\":[", entries);
	} else {
		fprintf(f, "Error Information log of %s (%u entries)\n", bdf, entries);
	}
	for (unsigned i = 0; i < entries; i++) {
		/* An entry with Error Count 0 is empty (§5.16.1.2). */
		if (!e[i].error_count)
			continue;
		/* Status field: bit 0 phase, bits 15:1 status (SC, SCT, CRD, M, DNR). */
		unsigned st = e[i].status >> 1;
		unsigned sct = st >> 8 & 7, sc = st & 0xff;
		bool dnr = st & 0x4000;

		if (json)
			fprintf(f, "%s{\"error_count\":%" PRIu64 ",\"sqid\":%u,\"cid\":%u,"
				"\"status\":%u,\"sct\":%u,\"sc\":%u,\"dnr\":%s,\"lba\":%" PRIu64
				",\"nsid\":%" PRIu32 "}",
				shown ? "," : "", e[i].error_count, e[i].sqid, e[i].cid, st, sct, sc,
				dnr ? "true" : "false", e[i].lba, e[i].nsid);
		else
			fprintf(f, "entry %u: error_count %" PRIu64 " sqid %u cid %#x status %#x "
				"(sct %u sc %#x%s) lba %" PRIu64 " nsid %" PRIu32 "\n",
				i, e[i].error_count, e[i].sqid, e[i].cid, st, sct, sc,
				dnr ? " dnr" : "", e[i].lba, e[i].nsid);
		shown++;
	}
	if (json)
		fputs("]}\n", f);
	else if (!shown)
		fputs("no errors logged\n", f);
	return shown;
}
