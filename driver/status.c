/* SPDX-License-Identifier: MIT */
/*
 * NVMe status → errno, the way the Linux kernel reports it.
 *
 * Linux maps an NVMe status to a block status in nvme_error_status()
 * (drivers/nvme/host/core.c) and that to an errno in blk_status_to_errno()
 * (block/blk-core.c, the blk_errors[] table):
 *
 *   BLK_STS_NOSPC                -ENOSPC       capacity exceeded
 *   BLK_STS_TARGET               -EREMOTEIO    LBA out of range, NS not ready,
 *                                              command interrupted
 *   BLK_STS_NOTSUPP              -EOPNOTSUPP   invalid opcode/field/namespace,
 *                                              conflicting attributes, ONCS
 *   BLK_STS_MEDIUM               -ENODATA      write fault, read error,
 *                                              unwritten block, access denied,
 *                                              read-only, compare failure
 *   BLK_STS_PROTECTION           -EILSEQ       PI guard/apptag/reftag, invalid PI
 *   BLK_STS_RESV_CONFLICT        -EBADE        reservation conflict
 *   BLK_STS_TRANSPORT            -ENOLINK      host path error
 *   BLK_STS_ZONE_ACTIVE_RESOURCE -EOVERFLOW    too many active zones
 *   BLK_STS_ZONE_OPEN_RESOURCE   -ETOOMANYREFS too many open zones
 *   BLK_STS_IOERR                -EIO          everything else
 *
 * The kernel switches on status & 0x7ff, i.e. SCT << 8 | SC without the
 * More and DNR bits: the same encoding nvring uses. Codes as the kernel's
 * include/linux/nvme.h numbers them (0x183 is its NVME_SC_ONCS_NOT_SUPPORTED).
 */
#include <errno.h>
#include <stddef.h>

#include "nvring/nvring.h"

struct nvr_status_ent {
	uint16_t status;   /* SCT << 8 | SC */
	int      err;      /* negative errno */
	const char *name;
};

/* Sorted by status. Entries with -EIO are here only for their names. */
static const struct nvr_status_ent status_table[] = {
	/* SCT 0: generic command status (NVMe 2.0 §4.6.1.2.1) */
	{ 0x000, 0,             "success" },
	{ 0x001, -EOPNOTSUPP,   "invalid command opcode" },
	{ 0x002, -EOPNOTSUPP,   "invalid field in command" },
	{ 0x003, -EIO,          "command ID conflict" },
	{ 0x004, -EIO,          "data transfer error" },
	{ 0x005, -EIO,          "aborted: power loss notification" },
	{ 0x006, -EIO,          "internal error" },
	{ 0x007, -EIO,          "aborted: abort requested" },
	{ 0x008, -EIO,          "aborted: SQ deletion" },
	{ 0x009, -EIO,          "aborted: failed fused command" },
	{ 0x00a, -EIO,          "aborted: missing fused command" },
	{ 0x00b, -EOPNOTSUPP,   "invalid namespace or format" },
	{ 0x00c, -EIO,          "command sequence error" },
	{ 0x00d, -EIO,          "invalid SGL segment descriptor" },
	{ 0x00f, -EIO,          "invalid SGL descriptor count" },
	{ 0x013, -EIO,          "invalid PRP offset" },
	{ 0x021, -EREMOTEIO,    "command interrupted" },
	{ 0x080, -EREMOTEIO,    "LBA out of range" },
	{ 0x081, -ENOSPC,       "capacity exceeded" },
	{ 0x082, -EREMOTEIO,    "namespace not ready" },
	{ 0x083, -EBADE,        "reservation conflict" },
	/* SCT 1: command specific (NVMe 2.0 §4.6.1.2.2, NVM Cmd Set §4.1.1.2) */
	{ 0x100, -EIO,          "completion queue invalid" },
	{ 0x101, -EIO,          "invalid queue identifier" },
	{ 0x102, -EIO,          "invalid queue size" },
	{ 0x180, -EOPNOTSUPP,   "conflicting attributes" },
	{ 0x181, -EILSEQ,       "invalid protection information" },
	{ 0x182, -ENODATA,      "write to read only range" },
	{ 0x183, -EOPNOTSUPP,   "ONCS not supported" },
	{ 0x1bd, -EOVERFLOW,    "too many active zones" },
	{ 0x1be, -ETOOMANYREFS, "too many open zones" },
	/* SCT 2: media and data integrity errors (NVMe 2.0 §4.6.1.2.3) */
	{ 0x280, -ENODATA,      "write fault" },
	{ 0x281, -ENODATA,      "unrecovered read error" },
	{ 0x282, -EILSEQ,       "end-to-end guard check error" },
	{ 0x283, -EILSEQ,       "end-to-end application tag check error" },
	{ 0x284, -EILSEQ,       "end-to-end reference tag check error" },
	{ 0x285, -ENODATA,      "compare failure" },
	{ 0x286, -ENODATA,      "access denied" },
	{ 0x287, -ENODATA,      "deallocated or unwritten logical block" },
	/* SCT 3: path related (NVMe 2.0 §4.6.1.2.4) */
	{ 0x300, -EIO,          "internal path error" },
	{ 0x301, -EIO,          "asymmetric access persistent loss" },
	{ 0x302, -EIO,          "asymmetric access inaccessible" },
	{ 0x303, -EIO,          "asymmetric access transition" },
	{ 0x360, -EIO,          "controller pathing error" },
	{ 0x370, -ENOLINK,      "host pathing error" },
	{ 0x371, -EIO,          "command aborted by host" },
};

static const struct nvr_status_ent *status_find(uint16_t status)
{
	size_t lo = 0, hi = sizeof(status_table) / sizeof(status_table[0]);

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (status_table[mid].status == status)
			return &status_table[mid];
		if (status_table[mid].status < status)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

NVR_API int nvr_status_errno(uint16_t status)
{
	const struct nvr_status_ent *e;

	status &= 0x7ff;
	if (status == 0)
		return 0;
	e = status_find(status);
	return e ? e->err : -EIO;
}

NVR_API const char *nvr_status_str(uint16_t status)
{
	const struct nvr_status_ent *e = status_find(status & 0x7ff);

	if (e)
		return e->name;
	switch ((status >> 8) & 0x7) {
	case 0:  return "generic command error";
	case 1:  return "command specific error";
	case 2:  return "media error";
	case 3:  return "path error";
	case 7:  return "vendor specific error";
	default: return "reserved status code type";
	}
}
