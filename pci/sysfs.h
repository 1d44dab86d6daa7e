/* SPDX-License-Identifier: MIT */
/*
 * PCI functions as Linux's sysfs shows them: parse an address, describe a
 * function, list NVMe controllers, (re)bind a driver, list an IOMMU group.
 * Used by the VFIO backend (pci/vfio.c) and by the `nvring` CLI.
 *
 * The sysfs root is "/sys" unless the environment variable NVRING_SYSFS_ROOT
 * names another directory (unit tests build a fake tree in a tmpdir).
 *
 * Every function returns 0 (or a count) on success, a negative errno on
 * failure; nothing is printed.
 */
#ifndef NVRING_PCI_SYSFS_H
#define NVRING_PCI_SYSFS_H

#include <stddef.h>
#include <stdint.h>

#define NVR_PCI_CLASS_NVME 0x010802u  /* mass storage / NVM / NVMe */

/* What sysfs says about one PCI function. */
struct nvr_pci_fn {
	char     bdf[16];       /* "0000:00:02.0" */
	uint32_t class_code;    /* 24-bit class/subclass/prog-if, e.g. 0x010802 */
	uint16_t vendor, device;
	char     driver[32];    /* bound driver's name, "" if none */
	int      iommu_group;   /* IOMMU group number, -1 if none */
};

/* The sysfs root in use: $NVRING_SYSFS_ROOT or "/sys". */
const char *nvr_sysfs_root(void);

/**
 * nvr_pci_parse_bdf() - normalise a PCI address.
 * "00:02.0" or "0000:00:02.0" (hex digits, either case) → "0000:00:02.0"
 * (lower case, domain added). Errors: -EINVAL anything else (including
 * device > 0x1f or function > 7).
 */
int nvr_pci_parse_bdf(const char *in, char out[16]);

/**
 * nvr_pci_fn_info() - describe the function @bdf (any form
 * nvr_pci_parse_bdf() takes). Errors: -EINVAL bad address; -ENODEV no such
 * function; -EIO unreadable/garbled sysfs attribute.
 */
int nvr_pci_fn_info(const char *bdf, struct nvr_pci_fn *out);

/**
 * nvr_pci_list_nvme() - the NVMe functions (class 0x010802), sorted by
 * address. Fills up to @max entries of @out (@out may be NULL when @max is
 * 0) and returns how many exist, which may exceed @max.
 * Errors: -ENOENT no /sys/bus/pci/devices; -ENOMEM.
 */
int nvr_pci_list_nvme(struct nvr_pci_fn *out, unsigned max);

/**
 * nvr_pci_bind() - bind @bdf to @driver ("vfio-pci" or "nvme").
 * Unbinds the current driver (if any, and if it is not already @driver),
 * writes driver_override, then asks @driver to bind. For "nvme" the
 * override is cleared afterwards so the function behaves normally again.
 * Loads no kernel module. Errors: -EINVAL bad address or other driver;
 * -ENODEV no such function; -ENOENT driver not loaded (no
 * /sys/bus/pci/drivers/@driver); -EACCES/-EPERM not root; other errnos
 * from the sysfs writes (e.g. -ENODEV/-EBUSY when the driver refuses).
 */
int nvr_pci_bind(const char *bdf, const char *driver);

/**
 * nvr_pci_group_devices() - the functions in IOMMU group @group, sorted.
 * Fills up to @max entries of @bdfs; returns how many exist (may exceed
 * @max). Errors: -ENOENT no such group.
 */
int nvr_pci_group_devices(int group, char (*bdfs)[16], unsigned max);

/**
 * nvr_pci_explain_not_viable() - the one-line reason, with its fix, why
 * IOMMU group @group of @bdf is not viable: the other functions in it that
 * are bound to a host driver (every function of a group must be bound to
 * vfio-pci or pci-stub, or to no driver, before any can be used), into
 * @msg (@n bytes). Returns how many functions it named.
 */
int nvr_pci_explain_not_viable(const char *bdf, int group, char *msg, size_t n);

#endif
