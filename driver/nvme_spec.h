/* SPDX-License-Identifier: MIT */
/*
 * NVMe wire formats: controller registers, queue entries, the admin and NVM
 * command sets and status codes, as the NVMe Base Specification 2.0 and the
 * NVM Command Set Specification 1.0 define them. Only what nvring uses.
 * No Linux uapi header carries these (linux/nvme_ioctl.h has only the
 * passthrough ioctl structs), so they live here, checked by _Static_assert.
 */
#ifndef NVRING_DRIVER_NVME_SPEC_H
#define NVRING_DRIVER_NVME_SPEC_H

#include <stddef.h>
#include <stdint.h>

/* Controller registers (NVMe 2.0 §3.1.3, Figure 33). */
enum {
	NVME_REG_CAP   = 0x00, /* 64-bit Controller Capabilities */
	NVME_REG_VS    = 0x08,
	NVME_REG_INTMS = 0x0c,
	NVME_REG_INTMC = 0x10,
	NVME_REG_CC    = 0x14,
	NVME_REG_CSTS  = 0x1c,
	NVME_REG_AQA   = 0x24,
	NVME_REG_ASQ   = 0x28, /* 64-bit */
	NVME_REG_ACQ   = 0x30, /* 64-bit */
	NVME_REG_DBS   = 0x1000, /* first doorbell (SQ0TDBL) */
};

#define NVME_CAP_MQES(cap)   ((uint32_t)((cap) & 0xffff))        /* 0's based */
#define NVME_CAP_CQR(cap)    ((uint32_t)(((cap) >> 16) & 0x1))
#define NVME_CAP_TO(cap)     ((uint32_t)(((cap) >> 24) & 0xff))  /* 500 ms units */
#define NVME_CAP_DSTRD(cap)  ((uint32_t)(((cap) >> 32) & 0xf))
#define NVME_CAP_NSSRS(cap)  ((uint32_t)(((cap) >> 36) & 0x1))
#define NVME_CAP_CSS(cap)    ((uint32_t)(((cap) >> 37) & 0xff))
#define NVME_CAP_MPSMIN(cap) ((uint32_t)(((cap) >> 48) & 0xf))   /* 2^(12+n) */
#define NVME_CAP_MPSMAX(cap) ((uint32_t)(((cap) >> 52) & 0xf))

#define NVME_CAP_CSS_NVM     (1u << 0)

#define NVME_CC_EN           (1u << 0)
#define NVME_CC_CSS_NVM      (0u << 4)
#define NVME_CC_MPS(n)       ((uint32_t)(n) << 7)   /* page = 2^(12+n) */
#define NVME_CC_AMS_RR       (0u << 11)
#define NVME_CC_SHN_NORMAL   (1u << 14)
#define NVME_CC_SHN_MASK     (3u << 14)
#define NVME_CC_IOSQES(n)    ((uint32_t)(n) << 16)  /* entry = 2^n bytes */
#define NVME_CC_IOCQES(n)    ((uint32_t)(n) << 20)

#define NVME_CSTS_RDY        (1u << 0)
#define NVME_CSTS_CFS        (1u << 1)
#define NVME_CSTS_SHST_MASK  (3u << 2)
#define NVME_CSTS_SHST_DONE  (2u << 2)

/* Doorbell offsets (NVMe 2.0 §3.1.3.22/23): stride is 4 << CAP.DSTRD. */
static inline uint32_t nvme_sq_tail_db(uint16_t qid, uint32_t dstrd)
{
	return NVME_REG_DBS + (2u * qid) * (4u << dstrd);
}
static inline uint32_t nvme_cq_head_db(uint16_t qid, uint32_t dstrd)
{
	return NVME_REG_DBS + (2u * qid + 1u) * (4u << dstrd);
}

/* Submission queue entry (NVMe 2.0 §4.2, Figure 88): 64 bytes. */
struct nvme_sqe {
	uint8_t  opc;
	uint8_t  fuse_psdt;   /* FUSE bits 1:0, PSDT bits 7:6 (0 = PRPs) */
	uint16_t cid;
	uint32_t nsid;
	uint32_t cdw2;
	uint32_t cdw3;
	uint64_t mptr;
	uint64_t prp1;
	uint64_t prp2;
	uint32_t cdw10;
	uint32_t cdw11;
	uint32_t cdw12;
	uint32_t cdw13;
	uint32_t cdw14;
	uint32_t cdw15;
};
_Static_assert(sizeof(struct nvme_sqe) == 64, "SQE is 64 bytes");
_Static_assert(offsetof(struct nvme_sqe, prp1) == 24, "DPTR at byte 24");
_Static_assert(offsetof(struct nvme_sqe, cdw10) == 40, "CDW10 at byte 40");

/* Completion queue entry (NVMe 2.0 §4.6, Figure 89): 16 bytes. */
struct nvme_cqe {
	uint32_t dw0;
	uint32_t dw1;
	uint16_t sqhd;
	uint16_t sqid;
	uint16_t cid;
	uint16_t status;      /* bit 0 = phase tag, bits 15:1 = status field */
};
_Static_assert(sizeof(struct nvme_cqe) == 16, "CQE is 16 bytes");
_Static_assert(offsetof(struct nvme_cqe, status) == 14, "status at byte 14");

#define NVME_CQE_PHASE(st)   ((st) & 1u)
#define NVME_CQE_SC(st)      (((st) >> 1) & 0xffu)   /* Status Code */
#define NVME_CQE_SCT(st)     (((st) >> 9) & 0x7u)    /* Status Code Type */
#define NVME_CQE_CRD(st)     (((st) >> 12) & 0x3u)   /* Command Retry Delay: CRDT index */
#define NVME_CQE_DNR(st)     (((st) >> 15) & 0x1u)
/* A status as the driver passes it around: SCT << 8 | SC, 0 = success. */
#define NVME_STATUS(st)      ((NVME_CQE_SCT(st) << 8) | NVME_CQE_SC(st))
/* ... and back into a CQE status field (phase 0, no CRD/More/DNR). */
#define NVME_CQE_STATUS(s)   ((uint16_t)((((s) & 0xffu) << 1) | (((s) >> 8) & 0x7u) << 9))
/* Command Aborted By Host (SCT 3, SC 71h): what a reset or a teardown
 * ends a command with, as Linux's nvme_cancel_request(). */
#define NVME_SC_HOST_ABORTED 0x371

/* Admin opcodes (NVMe 2.0 §5, Figure 138). */
enum {
	NVME_ADM_DELETE_SQ    = 0x00,
	NVME_ADM_CREATE_SQ    = 0x01,
	NVME_ADM_GET_LOG_PAGE = 0x02,
	NVME_ADM_DELETE_CQ    = 0x04,
	NVME_ADM_CREATE_CQ    = 0x05,
	NVME_ADM_IDENTIFY     = 0x06,
	NVME_ADM_ABORT        = 0x08,
	NVME_ADM_SET_FEATURES = 0x09,
	NVME_ADM_GET_FEATURES = 0x0a,
};

/* NVM command set I/O opcodes (NVM Cmd Set 1.0 §3, Figure 18). */
enum {
	NVME_CMD_FLUSH        = 0x00,
	NVME_CMD_WRITE        = 0x01,
	NVME_CMD_READ         = 0x02,
	NVME_CMD_WRITE_ZEROES = 0x08,
	NVME_CMD_DSM          = 0x09,
};

/* Identify CNS values (NVMe 2.0 §5.17.1, Figure 273). */
enum {
	NVME_CNS_NS          = 0x00,
	NVME_CNS_CTRLR       = 0x01,
	NVME_CNS_ACTIVE_NSL  = 0x02,
	NVME_CNS_CS_CTRLR    = 0x06,   /* I/O Command Set specific controller */
};
#define NVME_IDENTIFY_CSI_SHIFT 24  /* CDW11 bits 31:24 */
#define NVME_CSI_NVM            0x00

/* Feature identifiers. */
enum {
	NVME_FEAT_VOLATILE_WC = 0x06,
	NVME_FEAT_NUM_QUEUES  = 0x07,
};

/* Create I/O CQ / SQ CDW11 bits (NVMe 2.0 §5.4/5.5). */
#define NVME_QUEUE_PHYS_CONTIG (1u << 0)
#define NVME_CQ_IRQ_ENABLED    (1u << 1)

/* Dataset Management (NVM Cmd Set 1.0 §3.2.3). */
#define NVME_DSM_ATTR_DEALLOCATE (1u << 2)
/* Write Zeroes CDW12 (NVM Cmd Set 1.0 §3.2.8): deallocate the blocks. */
#define NVME_WZ_DEAC             (1u << 25)
struct nvme_dsm_range {
	uint32_t cattr;
	uint32_t nlb;     /* NOT 0's based */
	uint64_t slba;
};
_Static_assert(sizeof(struct nvme_dsm_range) == 16, "DSM range is 16 bytes");

/* Identify Controller data structure (NVMe 2.0 Figure 275): the fields used. */
struct nvme_id_ctrl {
	uint16_t vid;
	uint16_t ssvid;
	char     sn[20];
	char     mn[40];
	char     fr[8];
	uint8_t  rab;
	uint8_t  ieee[3];
	uint8_t  cmic;
	uint8_t  mdts;          /* byte 77: 2^n × CAP.MPSMIN, 0 = no limit */
	uint16_t cntlid;
	uint32_t ver;
	uint8_t  rsvd84[50];
	uint16_t crdt[3];       /* byte 134: Command Retry Delay Times, 100 ms units */
	uint8_t  rsvd140[116];
	uint16_t oacs;          /* byte 256 */
	uint8_t  acl;
	uint8_t  aerl;
	uint8_t  frmw;
	uint8_t  lpa;
	uint8_t  elpe;
	uint8_t  npss;
	uint8_t  rsvd264[248];
	uint8_t  sqes;          /* byte 512 */
	uint8_t  cqes;
	uint16_t maxcmd;
	uint32_t nn;            /* byte 516 */
	uint16_t oncs;          /* byte 520 */
	uint16_t fuses;
	uint8_t  fna;
	uint8_t  vwc;           /* byte 525 */
	uint16_t awun;
	uint16_t awupf;
	uint8_t  icsvscc;
	uint8_t  nwpc;
	uint16_t acwu;
	uint16_t ocfs;
	uint32_t sgls;
	uint8_t  rsvd540[4096 - 540];
};
_Static_assert(sizeof(struct nvme_id_ctrl) == 4096, "Identify Controller is 4 KiB");
_Static_assert(offsetof(struct nvme_id_ctrl, mdts) == 77, "MDTS at byte 77");
_Static_assert(offsetof(struct nvme_id_ctrl, oacs) == 256, "OACS at byte 256");
_Static_assert(offsetof(struct nvme_id_ctrl, crdt) == 134, "CRDT1 at byte 134");
_Static_assert(offsetof(struct nvme_id_ctrl, nn) == 516, "NN at byte 516");
_Static_assert(offsetof(struct nvme_id_ctrl, oncs) == 520, "ONCS at byte 520");
_Static_assert(offsetof(struct nvme_id_ctrl, vwc) == 525, "VWC at byte 525");

#define NVME_ONCS_DSM          (1u << 2)
#define NVME_ONCS_WRITE_ZEROES (1u << 3)
#define NVME_VWC_PRESENT       (1u << 0)
#define NVME_OACS_DBBUF        (1u << 8)

/* LBA format (NVM Cmd Set 1.0 Figure 98). */
struct nvme_lbaf {
	uint16_t ms;
	uint8_t  lbads;     /* 2^n bytes */
	uint8_t  rp;
};

/* Identify Namespace (NVM Cmd Set 1.0 Figure 97): the fields used. */
struct nvme_id_ns {
	uint64_t nsze;
	uint64_t ncap;
	uint64_t nuse;
	uint8_t  nsfeat;
	uint8_t  nlbaf;     /* 0's based */
	uint8_t  flbas;     /* bits 3:0 = format index (low bits) */
	uint8_t  mc;
	uint8_t  dpc;
	uint8_t  dps;
	uint8_t  nmic;
	uint8_t  rescap;
	uint8_t  fpi;
	uint8_t  dlfeat;
	uint16_t nawun;
	uint16_t nawupf;
	uint16_t nacwu;
	uint16_t nabsn;
	uint16_t nabo;
	uint16_t nabspf;
	uint16_t noiob;
	uint8_t  nvmcap[16];
	uint8_t  rsvd64[64];
	struct nvme_lbaf lbaf[64];  /* byte 128 */
	uint8_t  rsvd384[4096 - 384];
};
_Static_assert(sizeof(struct nvme_id_ns) == 4096, "Identify Namespace is 4 KiB");
_Static_assert(offsetof(struct nvme_id_ns, flbas) == 26, "FLBAS at byte 26");
_Static_assert(offsetof(struct nvme_id_ns, lbaf) == 128, "LBAF at byte 128");
#define NVME_FLBAS_META_EXT (1u << 4)   /* metadata at the end of each block */

/* Identify Controller, NVM Command Set specific (CNS 06h, CSI 00h; NVM
 * Command Set 1.0 Figure 112): the limits on non-data commands. */
struct nvme_id_ctrl_nvm {
	uint8_t  vsl;       /* Verify Size Limit: 2^n × CAP.MPSMIN, 0 = none */
	uint8_t  wzsl;      /* Write Zeroes Size Limit: 2^n × CAP.MPSMIN, 0 = none */
	uint8_t  wusl;      /* Write Uncorrectable Size Limit */
	uint8_t  dmrl;      /* DSM ranges per command, 0 = no limit beyond 256 */
	uint32_t dmrsl;     /* DSM blocks per range, 0 = no limit */
	uint64_t dmsl;      /* DSM blocks per command, 0 = no limit */
	uint8_t  rsvd16[4096 - 16];
};
_Static_assert(sizeof(struct nvme_id_ctrl_nvm) == 4096, "NVM Identify Controller is 4 KiB");
_Static_assert(offsetof(struct nvme_id_ctrl_nvm, dmrsl) == 4, "DMRSL at byte 4");
_Static_assert(offsetof(struct nvme_id_ctrl_nvm, dmsl) == 8, "DMSL at byte 8");

#define NVME_DSM_MAX_RANGES 256

/* Status code types and the generic codes (NVMe 2.0 §4.6.1.2). */
enum {
	NVME_SCT_GENERIC       = 0x0,
	NVME_SCT_CMD_SPECIFIC  = 0x1,
	NVME_SCT_MEDIA         = 0x2,
	NVME_SCT_PATH          = 0x3,
	NVME_SCT_VENDOR        = 0x7,
};
enum {
	NVME_SC_SUCCESS            = 0x00,
	NVME_SC_INVALID_OPCODE     = 0x01,
	NVME_SC_INVALID_FIELD      = 0x02,
	NVME_SC_CID_CONFLICT       = 0x03,
	NVME_SC_DATA_XFER_ERROR    = 0x04,
	NVME_SC_POWER_LOSS         = 0x05,
	NVME_SC_INTERNAL           = 0x06,
	NVME_SC_ABORT_REQ          = 0x07,
	NVME_SC_ABORT_SQ_DELETED   = 0x08,
	NVME_SC_INVALID_NS         = 0x0b,
	NVME_SC_CMD_SEQ_ERROR      = 0x0c,
	NVME_SC_INVALID_PRP_OFFSET = 0x13,
	NVME_SC_LBA_RANGE          = 0x80,
	NVME_SC_CAP_EXCEEDED       = 0x81,
	NVME_SC_NS_NOT_READY       = 0x82,
};
/* Command specific (SCT 1) codes used by queue creation. */
enum {
	NVME_SC_CQ_INVALID         = 0x00,
	NVME_SC_QID_INVALID        = 0x01,
	NVME_SC_QUEUE_SIZE         = 0x02,
};
/* Media errors (SCT 2). */
enum {
	NVME_SC_WRITE_FAULT        = 0x80,
	NVME_SC_READ_ERROR         = 0x81,
	NVME_SC_GUARD_CHECK        = 0x82,
	NVME_SC_APPTAG_CHECK       = 0x83,
	NVME_SC_REFTAG_CHECK       = 0x84,
	NVME_SC_COMPARE_FAILED     = 0x85,
	NVME_SC_ACCESS_DENIED      = 0x86,
	NVME_SC_UNWRITTEN_BLOCK    = 0x87,
};

/* Get Log Page (NVMe 2.0 §5.16): Log Page Identifiers (Figure 202) and the
 * CDW10/CDW11 fields. NUMD is a 0's based dword count, split NUMDL
 * (CDW10 31:16) / NUMDU (CDW11 15:0). */
enum {
	NVME_LOG_ERROR  = 0x01,   /* Error Information (§5.16.1.2) */
	NVME_LOG_SMART  = 0x02,   /* SMART / Health Information (§5.16.1.3) */
};
#define NVME_LOG_CDW10(lid, numd) ((uint32_t)(lid) | ((uint32_t)(numd) & 0xffff) << 16)
#define NVME_LOG_CDW11(numd)      ((uint32_t)(numd) >> 16)

/* Error Information Log Entry (NVMe 2.0 Figure 205), 64 bytes. status is
 * the completion's status field: bit 0 the phase tag, bits 15:1 the status
 * (SC 8:1, SCT 11:9, CRD 13:12, M 14, DNR 15). */
struct nvme_error_log {
	uint64_t error_count;       /* 0 = empty entry */
	uint16_t sqid;
	uint16_t cid;
	uint16_t status;
	uint16_t param_error_loc;
	uint64_t lba;
	uint32_t nsid;
	uint8_t  vs;
	uint8_t  trtype;
	uint8_t  rsvd30[2];
	uint64_t cs;                /* command specific information */
	uint16_t trtype_info;
	uint8_t  rsvd42[22];
};
_Static_assert(sizeof(struct nvme_error_log) == 64, "Error Information entry is 64 bytes");
_Static_assert(offsetof(struct nvme_error_log, lba) == 16, "LBA at byte 16");
_Static_assert(offsetof(struct nvme_error_log, nsid) == 24, "NSID at byte 24");

/* SMART / Health Information (NVMe 2.0 Figure 207), 512 bytes. The 128-bit
 * counters are little endian byte arrays; temperatures are in Kelvin. */
struct nvme_smart_log {
	uint8_t  critical_warning;
	uint8_t  temperature[2];    /* composite temperature, byte 1 */
	uint8_t  avail_spare;       /* percent */
	uint8_t  spare_thresh;
	uint8_t  percent_used;
	uint8_t  endu_grp_crit_warn;
	uint8_t  rsvd7[25];
	uint8_t  data_units_read[16];     /* thousands of 512-byte units */
	uint8_t  data_units_written[16];
	uint8_t  host_reads[16];
	uint8_t  host_writes[16];
	uint8_t  ctrl_busy_time[16];      /* minutes */
	uint8_t  power_cycles[16];
	uint8_t  power_on_hours[16];
	uint8_t  unsafe_shutdowns[16];
	uint8_t  media_errors[16];
	uint8_t  num_err_log_entries[16];
	uint32_t warning_temp_time;       /* minutes */
	uint32_t critical_comp_time;
	uint16_t temp_sensor[8];
	uint32_t thm_temp_trans_count[2];
	uint32_t thm_temp_total_time[2];
	uint8_t  rsvd232[280];
};
_Static_assert(sizeof(struct nvme_smart_log) == 512, "SMART / Health log is 512 bytes");
_Static_assert(offsetof(struct nvme_smart_log, data_units_read) == 32, "DUR at byte 32");
_Static_assert(offsetof(struct nvme_smart_log, media_errors) == 160, "media errors at byte 160");
_Static_assert(offsetof(struct nvme_smart_log, num_err_log_entries) == 176, "error entries at byte 176");
_Static_assert(offsetof(struct nvme_smart_log, temp_sensor) == 200, "sensors at byte 200");

#endif
