/* SPDX-License-Identifier: MIT */
/*
 * PCI functions through sysfs (Documentation/ABI/testing/sysfs-bus-pci):
 * attributes under /sys/bus/pci/devices/BDF, drivers under
 * /sys/bus/pci/drivers, IOMMU groups under /sys/kernel/iommu_groups.
 */
#include "pci/sysfs.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *nvr_sysfs_root(void)
{
	const char *root = getenv("NVRING_SYSFS_ROOT");

	return root && *root ? root : "/sys";
}

/* snprintf into a PATH_MAX buffer: -ENAMETOOLONG rather than truncation. */
static int sysfs_path(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int sysfs_path(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	return 0;
}

/* Read a small attribute, trailing newline removed. */
static int read_attr(const char *path, char *buf, size_t size)
{
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	if (n < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	close(fd);
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return 0;
}

/* Write @val to a sysfs attribute in one write(), as the kernel expects. */
static int write_attr(const char *path, const char *val)
{
	size_t len = strlen(val);
	ssize_t n;
	int fd, err = 0;

	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, val, len);
	if (n < 0)
		err = -errno;
	else if ((size_t)n != len)
		err = -EIO;
	if (close(fd) < 0 && !err)
		err = -errno;
	return err;
}

/* Parse "0x..." hex into *out, which must fit in @max. */
static int parse_hex_attr(const char *s, uint32_t max, uint32_t *out)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 16);
	if (errno || end == s || *end != '\0' || v > max)
		return -EIO;
	*out = (uint32_t)v;
	return 0;
}

/* The last path component of a symlink's target, e.g. the driver's name. */
static int read_link_name(const char *path, char *buf, size_t size)
{
	char target[PATH_MAX];
	const char *base;
	ssize_t n;

	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return -errno;
	target[n] = '\0';
	base = strrchr(target, '/');
	base = base ? base + 1 : target;
	if (strlen(base) >= size)
		return -ENAMETOOLONG;
	strcpy(buf, base);
	return 0;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Exactly @n hex digits at *s, advancing it. */
static int take_hex(const char **s, int n, unsigned *out)
{
	unsigned v = 0;

	for (int i = 0; i < n; i++) {
		int d = hexval((unsigned char)(*s)[i]);

		if (d < 0)
			return -EINVAL;
		v = v << 4 | (unsigned)d;
	}
	*s += n;
	*out = v;
	return 0;
}

int nvr_pci_parse_bdf(const char *in, char out[16])
{
	unsigned domain = 0, bus, dev, fn;
	const char *s = in;

	if (!in)
		return -EINVAL;
	/* With a domain the string is "DDDD:BB:DD.F" (12), without "BB:DD.F" (7). */
	if (strlen(in) == 12) {
		if (take_hex(&s, 4, &domain) || *s++ != ':')
			return -EINVAL;
	} else if (strlen(in) != 7) {
		return -EINVAL;
	}
	if (take_hex(&s, 2, &bus) || *s++ != ':' ||
	    take_hex(&s, 2, &dev) || *s++ != '.' ||
	    take_hex(&s, 1, &fn) || *s != '\0')
		return -EINVAL;
	if (dev > 0x1f || fn > 7)
		return -EINVAL;
	snprintf(out, 16, "%04x:%02x:%02x.%x", domain, bus, dev, fn);
	return 0;
}

int nvr_pci_fn_info(const char *bdf_in, struct nvr_pci_fn *out)
{
	char bdf[16], dir[PATH_MAX], path[PATH_MAX], val[64];
	uint32_t v;
	struct stat st;
	int err;

	err = nvr_pci_parse_bdf(bdf_in, bdf);
	if (err)
		return err;
	err = sysfs_path(dir, sizeof(dir), "%s/bus/pci/devices/%s", nvr_sysfs_root(), bdf);
	if (err)
		return err;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return -ENODEV;

	memset(out, 0, sizeof(*out));
	memcpy(out->bdf, bdf, sizeof(out->bdf));

	if ((err = sysfs_path(path, sizeof(path), "%s/class", dir)) ||
	    (err = read_attr(path, val, sizeof(val))) ||
	    (err = parse_hex_attr(val, 0xffffff, &out->class_code)))
		return err == -ENOENT ? -EIO : err;
	if ((err = sysfs_path(path, sizeof(path), "%s/vendor", dir)) ||
	    (err = read_attr(path, val, sizeof(val))) ||
	    (err = parse_hex_attr(val, 0xffff, &v)))
		return err == -ENOENT ? -EIO : err;
	out->vendor = (uint16_t)v;
	if ((err = sysfs_path(path, sizeof(path), "%s/device", dir)) ||
	    (err = read_attr(path, val, sizeof(val))) ||
	    (err = parse_hex_attr(val, 0xffff, &v)))
		return err == -ENOENT ? -EIO : err;
	out->device = (uint16_t)v;

	/* No driver link means no driver bound. */
	if ((err = sysfs_path(path, sizeof(path), "%s/driver", dir)))
		return err;
	err = read_link_name(path, out->driver, sizeof(out->driver));
	if (err == -ENOENT)
		out->driver[0] = '\0';
	else if (err)
		return err;

	/* No iommu_group link means no IOMMU translates for this function. */
	out->iommu_group = -1;
	if ((err = sysfs_path(path, sizeof(path), "%s/iommu_group", dir)))
		return err;
	err = read_link_name(path, val, sizeof(val));
	if (err == 0) {
		char *end;
		long g;

		errno = 0;
		g = strtol(val, &end, 10);
		if (errno || end == val || *end || g < 0 || g > INT_MAX)
			return -EIO;
		out->iommu_group = (int)g;
	} else if (err != -ENOENT) {
		return err;
	}
	return 0;
}

static int cmp_fn(const void *a, const void *b)
{
	return strcmp(((const struct nvr_pci_fn *)a)->bdf, ((const struct nvr_pci_fn *)b)->bdf);
}

static int cmp_bdf(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

int nvr_pci_list_nvme(struct nvr_pci_fn *out, unsigned max)
{
	struct nvr_pci_fn *all = NULL, fn;
	unsigned n = 0, cap = 0;
	char path[PATH_MAX], bdf[16];
	struct dirent *de;
	DIR *d;
	int err;

	err = sysfs_path(path, sizeof(path), "%s/bus/pci/devices", nvr_sysfs_root());
	if (err)
		return err;
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (nvr_pci_parse_bdf(de->d_name, bdf) || strcmp(bdf, de->d_name))
			continue;
		/* A function that vanishes or is garbled is skipped, not fatal. */
		if (nvr_pci_fn_info(bdf, &fn) || fn.class_code != NVR_PCI_CLASS_NVME)
			continue;
		if (n == cap) {
			unsigned ncap = cap ? cap * 2 : 8;
			struct nvr_pci_fn *p = realloc(all, ncap * sizeof(*all));

			if (!p) {
				free(all);
				closedir(d);
				return -ENOMEM;
			}
			all = p;
			cap = ncap;
		}
		all[n++] = fn;
	}
	closedir(d);
	if (n)
		qsort(all, n, sizeof(*all), cmp_fn);
	if (n && max)
		memcpy(out, all, (n < max ? n : max) * sizeof(*all));
	free(all);
	return (int)n;
}

int nvr_pci_group_devices(int group, char (*bdfs)[16], unsigned max)
{
	char (*all)[16] = NULL;
	unsigned n = 0, cap = 0;
	char path[PATH_MAX], bdf[16];
	struct dirent *de;
	DIR *d;
	int err;

	if (group < 0)
		return -EINVAL;
	err = sysfs_path(path, sizeof(path), "%s/kernel/iommu_groups/%d/devices",
			 nvr_sysfs_root(), group);
	if (err)
		return err;
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (nvr_pci_parse_bdf(de->d_name, bdf))
			continue;
		if (n == cap) {
			unsigned ncap = cap ? cap * 2 : 8;
			char (*p)[16] = realloc(all, ncap * sizeof(*all));

			if (!p) {
				free(all);
				closedir(d);
				return -ENOMEM;
			}
			all = p;
			cap = ncap;
		}
		memcpy(all[n++], bdf, 16);
	}
	closedir(d);
	if (n)
		qsort(all, n, sizeof(*all), cmp_bdf);
	if (n && max)
		memcpy(bdfs, all, (n < max ? n : max) * sizeof(*all));
	free(all);
	return (int)n;
}

int nvr_pci_bind(const char *bdf_in, const char *driver)
{
	char bdf[16], dir[PATH_MAX], path[PATH_MAX];
	struct nvr_pci_fn fn;
	struct stat st;
	bool to_nvme;
	int err;

	if (!driver)
		return -EINVAL;
	to_nvme = strcmp(driver, "nvme") == 0;
	if (!to_nvme && strcmp(driver, "vfio-pci") != 0)
		return -EINVAL;
	err = nvr_pci_parse_bdf(bdf_in, bdf);
	if (err)
		return err;
	err = nvr_pci_fn_info(bdf, &fn);
	if (err)
		return err;
	if ((err = sysfs_path(path, sizeof(path), "%s/bus/pci/drivers/%s",
			      nvr_sysfs_root(), driver)))
		return err;
	if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
		return -ENOENT;
	if ((err = sysfs_path(dir, sizeof(dir), "%s/bus/pci/devices/%s", nvr_sysfs_root(), bdf)))
		return err;

	if (strcmp(fn.driver, driver) == 0) {
		/* Already bound. Keep vfio-pci's override so a rescan or a
		 * driver reload cannot hand the function back to nvme. */
		if (to_nvme)
			return 0;
		if ((err = sysfs_path(path, sizeof(path), "%s/driver_override", dir)))
			return err;
		return write_attr(path, driver);
	}

	if (fn.driver[0]) {
		if ((err = sysfs_path(path, sizeof(path), "%s/driver/unbind", dir)) ||
		    (err = write_attr(path, bdf)))
			return err;
	}
	/* driver_override makes only @driver match this function, whatever
	 * its ID tables say: vfio-pci has no IDs of its own. */
	if ((err = sysfs_path(path, sizeof(path), "%s/driver_override", dir)) ||
	    (err = write_attr(path, driver)))
		return err;
	if ((err = sysfs_path(path, sizeof(path), "%s/bus/pci/drivers/%s/bind",
			      nvr_sysfs_root(), driver)))
		return err;
	err = write_attr(path, bdf);
	if (to_nvme) {
		/* A lone newline clears the override (the kernel strips it
		 * and an empty name means none). */
		char ovr[PATH_MAX];
		int err2 = sysfs_path(ovr, sizeof(ovr), "%s/driver_override", dir);

		if (!err2)
			err2 = write_attr(ovr, "\n");
		if (!err)
			err = err2;
	}
	return err;
}

int nvr_pci_explain_not_viable(const char *bdf, int group, char *msg, size_t n)
{
	char members[32][16], list[384] = "";
	size_t used = 0;
	int count = nvr_pci_group_devices(group, members, 32), named = 0;

	for (int i = 0; i < count && i < 32; i++) {
		struct nvr_pci_fn fn;

		if (!strcmp(members[i], bdf) || nvr_pci_fn_info(members[i], &fn))
			continue;
		/* Unbound functions and these drivers do not spoil a group. */
		if (!fn.driver[0] || !strcmp(fn.driver, "vfio-pci") || !strcmp(fn.driver, "pci-stub"))
			continue;
		int w = snprintf(list + used, sizeof(list) - used, "%s%s (%s)", used ? ", " : "",
				 members[i], fn.driver);

		if (w < 0 || (size_t)w >= sizeof(list) - used)
			break;
		used += (size_t)w;
		named++;
	}
	snprintf(msg, n, "%s: IOMMU group %d is not viable: %s %s also in it; bind every function "
		 "of the group to vfio-pci (`nvring bind BDF`) or unbind it", bdf, group,
		 named ? list : "other functions", named == 1 ? "is" : "are");
	return named;
}
