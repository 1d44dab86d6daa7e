/* SPDX-License-Identifier: MIT */
/*
 * pci/sysfs.c against a fake sysfs tree built in a tmpdir and selected with
 * NVRING_SYSFS_ROOT. The tree mimics the real layout: bus/pci/devices/BDF
 * are symlinks into devices/pci0000:00/, each with class/vendor/device
 * attributes and optional driver and iommu_group links.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pci/sysfs.h"

static char root[64];

static void mkpath(const char *fmt, ...)
{
	char p[PATH_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p, sizeof(p), fmt, ap);
	va_end(ap);
	for (char *s = p + strlen(root) + 1; *s; s++) {
		if (*s == '/') {
			*s = '\0';
			mkdir(p, 0755);
			*s = '/';
		}
	}
	assert_true(mkdir(p, 0755) == 0 || errno == EEXIST);
}

static void put(const char *rel, const char *val)
{
	char p[PATH_MAX];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(val, f);
	fclose(f);
}

static void get(const char *rel, char *buf, size_t size)
{
	char p[PATH_MAX];
	FILE *f;
	size_t n;

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	f = fopen(p, "r");
	assert_non_null(f);
	n = fread(buf, 1, size - 1, f);
	buf[n] = '\0';
	fclose(f);
}

static void link_to(const char *target, const char *rel)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	assert_int_equal(symlink(target, p), 0);
}

/* A PCI function; driver NULL for none, group < 0 for none. */
static void add_fn(const char *bdf, const char *class, const char *vendor, const char *device,
		   const char *driver, int group)
{
	char rel[256], target[256];

	mkpath("%s/devices/pci0000:00/%s", root, bdf);
	snprintf(rel, sizeof(rel), "devices/pci0000:00/%s/class", bdf);
	put(rel, class);
	snprintf(rel, sizeof(rel), "devices/pci0000:00/%s/vendor", bdf);
	put(rel, vendor);
	snprintf(rel, sizeof(rel), "devices/pci0000:00/%s/device", bdf);
	put(rel, device);
	snprintf(rel, sizeof(rel), "devices/pci0000:00/%s/driver_override", bdf);
	put(rel, "(null)\n");
	snprintf(target, sizeof(target), "../../../devices/pci0000:00/%s", bdf);
	snprintf(rel, sizeof(rel), "bus/pci/devices/%s", bdf);
	link_to(target, rel);
	if (driver) {
		snprintf(target, sizeof(target), "../../../bus/pci/drivers/%s", driver);
		snprintf(rel, sizeof(rel), "devices/pci0000:00/%s/driver", bdf);
		link_to(target, rel);
	}
	if (group >= 0) {
		snprintf(target, sizeof(target), "../../../kernel/iommu_groups/%d", group);
		snprintf(rel, sizeof(rel), "devices/pci0000:00/%s/iommu_group", bdf);
		link_to(target, rel);
		mkpath("%s/kernel/iommu_groups/%d/devices", root, group);
		snprintf(target, sizeof(target), "../../../../devices/pci0000:00/%s", bdf);
		snprintf(rel, sizeof(rel), "kernel/iommu_groups/%d/devices/%s", group, bdf);
		link_to(target, rel);
	}
}

static void add_driver(const char *name)
{
	char rel[256];

	mkpath("%s/bus/pci/drivers/%s", root, name);
	snprintf(rel, sizeof(rel), "bus/pci/drivers/%s/bind", name);
	put(rel, "");
	snprintf(rel, sizeof(rel), "bus/pci/drivers/%s/unbind", name);
	put(rel, "");
}

static int setup_tree(void **state)
{
	snprintf(root, sizeof(root), "/tmp/nvring-sysfs-XXXXXX");
	assert_non_null(mkdtemp(root));
	mkpath("%s/bus/pci/devices", root);
	add_driver("nvme");
	add_driver("vfio-pci");
	add_fn("0000:00:03.0", "0x010802\n", "0x1b36\n", "0x0010\n", "nvme", 4);
	add_fn("0000:00:02.0", "0x010802\n", "0x1b36\n", "0x0010\n", "nvme", 3);
	add_fn("0000:00:01.0", "0x030000\n", "0x1234\n", "0x1111\n", NULL, 3);
	add_fn("0000:00:1f.2", "0x010601\n", "0x8086\n", "0x2922\n", NULL, -1);
	setenv("NVRING_SYSFS_ROOT", root, 1);
	return 0;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p);
}

static int teardown_tree(void **state)
{
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	unsetenv("NVRING_SYSFS_ROOT");
	return 0;
}

static void test_parse_bdf(void **state)
{
	char out[16];

	assert_int_equal(nvr_pci_parse_bdf("00:02.0", out), 0);
	assert_string_equal(out, "0000:00:02.0");
	assert_int_equal(nvr_pci_parse_bdf("0000:00:02.0", out), 0);
	assert_string_equal(out, "0000:00:02.0");
	assert_int_equal(nvr_pci_parse_bdf("ABCD:EF:1F.7", out), 0);
	assert_string_equal(out, "abcd:ef:1f.7");

	assert_int_equal(nvr_pci_parse_bdf("00:20.0", out), -EINVAL);   /* device > 31 */
	assert_int_equal(nvr_pci_parse_bdf("00:02.8", out), -EINVAL);   /* function > 7 */
	assert_int_equal(nvr_pci_parse_bdf("0:02.0", out), -EINVAL);
	assert_int_equal(nvr_pci_parse_bdf("00:02.0 ", out), -EINVAL);
	assert_int_equal(nvr_pci_parse_bdf("000:00:02.0", out), -EINVAL);
	assert_int_equal(nvr_pci_parse_bdf("0000-00:02.0", out), -EINVAL);
	assert_int_equal(nvr_pci_parse_bdf("0000:0g:02.0", out), -EINVAL);
	assert_int_equal(nvr_pci_parse_bdf("", out), -EINVAL);
	assert_int_equal(nvr_pci_parse_bdf(NULL, out), -EINVAL);
}

static void test_root_default(void **state)
{
	unsetenv("NVRING_SYSFS_ROOT");
	assert_string_equal(nvr_sysfs_root(), "/sys");
	setenv("NVRING_SYSFS_ROOT", root, 1);
	assert_string_equal(nvr_sysfs_root(), root);
}

static void test_fn_info(void **state)
{
	struct nvr_pci_fn fn;

	assert_int_equal(nvr_pci_fn_info("00:02.0", &fn), 0);
	assert_string_equal(fn.bdf, "0000:00:02.0");
	assert_int_equal(fn.class_code, 0x010802);
	assert_int_equal(fn.vendor, 0x1b36);
	assert_int_equal(fn.device, 0x0010);
	assert_string_equal(fn.driver, "nvme");
	assert_int_equal(fn.iommu_group, 3);

	assert_int_equal(nvr_pci_fn_info("0000:00:1f.2", &fn), 0);
	assert_int_equal(fn.class_code, 0x010601);
	assert_int_equal(fn.vendor, 0x8086);
	assert_string_equal(fn.driver, "");
	assert_int_equal(fn.iommu_group, -1);

	assert_int_equal(nvr_pci_fn_info("0000:00:05.0", &fn), -ENODEV);
	assert_int_equal(nvr_pci_fn_info("garbage", &fn), -EINVAL);
}

static void test_fn_info_garbled(void **state)
{
	struct nvr_pci_fn fn;

	put("devices/pci0000:00/0000:00:1f.2/class", "nonsense\n");
	assert_int_equal(nvr_pci_fn_info("0000:00:1f.2", &fn), -EIO);
}

static void test_list_nvme(void **state)
{
	struct nvr_pci_fn fns[4];

	memset(fns, 0xaa, sizeof(fns));
	assert_int_equal(nvr_pci_list_nvme(fns, 4), 2);
	assert_string_equal(fns[0].bdf, "0000:00:02.0");
	assert_string_equal(fns[1].bdf, "0000:00:03.0");
	assert_int_equal(fns[1].iommu_group, 4);

	/* Fewer slots than functions: count still reported, no overrun. */
	memset(fns, 0xaa, sizeof(fns));
	assert_int_equal(nvr_pci_list_nvme(fns, 1), 2);
	assert_string_equal(fns[0].bdf, "0000:00:02.0");
	assert_int_equal((unsigned char)fns[1].bdf[0], 0xaa);
	assert_int_equal(nvr_pci_list_nvme(NULL, 0), 2);
}

static void test_list_nvme_no_bus(void **state)
{
	setenv("NVRING_SYSFS_ROOT", "/nonexistent/nvring", 1);
	assert_int_equal(nvr_pci_list_nvme(NULL, 0), -ENOENT);
	setenv("NVRING_SYSFS_ROOT", root, 1);
}

static void test_group_devices(void **state)
{
	char bdfs[4][16];

	assert_int_equal(nvr_pci_group_devices(3, bdfs, 4), 2);
	assert_string_equal(bdfs[0], "0000:00:01.0");
	assert_string_equal(bdfs[1], "0000:00:02.0");
	assert_int_equal(nvr_pci_group_devices(4, bdfs, 4), 1);
	assert_string_equal(bdfs[0], "0000:00:03.0");
	assert_int_equal(nvr_pci_group_devices(3, bdfs, 1), 2);
	assert_string_equal(bdfs[0], "0000:00:01.0");
	assert_int_equal(nvr_pci_group_devices(9, bdfs, 4), -ENOENT);
	assert_int_equal(nvr_pci_group_devices(-1, bdfs, 4), -EINVAL);
}

static void test_bind_vfio_then_nvme(void **state)
{
	char buf[64];

	/* Away from nvme: unbind via the current driver, override, bind. */
	assert_int_equal(nvr_pci_bind("00:02.0", "vfio-pci"), 0);
	get("bus/pci/drivers/nvme/unbind", buf, sizeof(buf));
	assert_string_equal(buf, "0000:00:02.0");
	get("devices/pci0000:00/0000:00:02.0/driver_override", buf, sizeof(buf));
	assert_string_equal(buf, "vfio-pci");
	get("bus/pci/drivers/vfio-pci/bind", buf, sizeof(buf));
	assert_string_equal(buf, "0000:00:02.0");

	/* The fake kernel: move the driver link as the real one would. */
	unlink(strcat(strcpy(buf, root), "/devices/pci0000:00/0000:00:02.0/driver"));
	link_to("../../../bus/pci/drivers/vfio-pci", "devices/pci0000:00/0000:00:02.0/driver");
	put("bus/pci/drivers/nvme/unbind", "");

	/* Back to nvme: the override is cleared afterwards. */
	assert_int_equal(nvr_pci_bind("0000:00:02.0", "nvme"), 0);
	get("bus/pci/drivers/vfio-pci/unbind", buf, sizeof(buf));
	assert_string_equal(buf, "0000:00:02.0");
	get("bus/pci/drivers/nvme/bind", buf, sizeof(buf));
	assert_string_equal(buf, "0000:00:02.0");
	get("devices/pci0000:00/0000:00:02.0/driver_override", buf, sizeof(buf));
	assert_string_equal(buf, "\n");
}

static void test_bind_unbound_and_already_bound(void **state)
{
	char buf[64];

	/* No current driver: nothing to unbind. */
	put("bus/pci/drivers/nvme/unbind", "");
	assert_int_equal(nvr_pci_bind("0000:00:1f.2", "vfio-pci"), 0);
	get("bus/pci/drivers/nvme/unbind", buf, sizeof(buf));
	assert_string_equal(buf, "");
	get("bus/pci/drivers/vfio-pci/bind", buf, sizeof(buf));
	assert_string_equal(buf, "0000:00:1f.2");

	/* Already on nvme: nothing written. */
	put("bus/pci/drivers/nvme/bind", "");
	assert_int_equal(nvr_pci_bind("0000:00:03.0", "nvme"), 0);
	get("bus/pci/drivers/nvme/bind", buf, sizeof(buf));
	assert_string_equal(buf, "");
	get("bus/pci/drivers/nvme/unbind", buf, sizeof(buf));
	assert_string_equal(buf, "");
}

static void test_bind_errors(void **state)
{
	char p[PATH_MAX];

	assert_int_equal(nvr_pci_bind("0000:00:02.0", "uio_pci_generic"), -EINVAL);
	assert_int_equal(nvr_pci_bind("0000:00:02.0", NULL), -EINVAL);
	assert_int_equal(nvr_pci_bind("bogus", "vfio-pci"), -EINVAL);
	assert_int_equal(nvr_pci_bind("0000:00:09.0", "vfio-pci"), -ENODEV);

	/* Driver not loaded: its directory is absent. */
	snprintf(p, sizeof(p), "%s/bus/pci/drivers/vfio-pci", root);
	assert_int_equal(rename(p, strcat(strcpy((char[PATH_MAX]){0}, p), ".gone")), 0);
	assert_int_equal(nvr_pci_bind("0000:00:03.0", "vfio-pci"), -ENOENT);
}

/* A group with a function on a host driver is not viable: the message
 * names that function, its driver and the fix (issue 8, item 11; the VM's
 * functions each have a group of their own, so this is tested here). */
static void fault_limits_group_not_viable(void **state)
{
	char msg[512];

	add_driver("e1000e");
	add_fn("0000:00:04.0", "0x020000\n", "0x8086\n", "0x10d3\n", "e1000e", 3);
	/* 00:01.0 (no driver) does not count; 00:04.0 (e1000e) does. */
	assert_int_equal(nvr_pci_explain_not_viable("0000:00:02.0", 3, msg, sizeof(msg)), 1);
	if (!strstr(msg, "0000:00:02.0: IOMMU group 3 is not viable: 0000:00:04.0 (e1000e) is also in it") ||
	    !strstr(msg, "nvring bind"))
		fail_msg("message: '%s'", msg);
	assert_null(strstr(msg, "0000:00:01.0"));
	/* From 00:01.0's side both others are bound to host drivers. */
	assert_int_equal(nvr_pci_explain_not_viable("0000:00:01.0", 3, msg, sizeof(msg)), 2);
	if (!strstr(msg, "0000:00:02.0 (nvme), 0000:00:04.0 (e1000e) are also in it"))
		fail_msg("message: '%s'", msg);
	/* Functions on vfio-pci do not spoil a group: nobody is named. */
	add_fn("0000:00:06.0", "0x010802\n", "0x1b36\n", "0x0010\n", "vfio-pci", 5);
	add_fn("0000:00:07.0", "0x010802\n", "0x1b36\n", "0x0010\n", "vfio-pci", 5);
	assert_int_equal(nvr_pci_explain_not_viable("0000:00:06.0", 5, msg, sizeof(msg)), 0);
	if (!strstr(msg, "other functions are also in it"))
		fail_msg("message: '%s'", msg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_bdf),
		cmocka_unit_test_setup_teardown(test_root_default, setup_tree, teardown_tree),
		cmocka_unit_test_setup_teardown(test_fn_info, setup_tree, teardown_tree),
		cmocka_unit_test_setup_teardown(test_fn_info_garbled, setup_tree, teardown_tree),
		cmocka_unit_test_setup_teardown(test_list_nvme, setup_tree, teardown_tree),
		cmocka_unit_test_setup_teardown(test_list_nvme_no_bus, setup_tree, teardown_tree),
		cmocka_unit_test_setup_teardown(test_group_devices, setup_tree, teardown_tree),
		cmocka_unit_test_setup_teardown(test_bind_vfio_then_nvme, setup_tree, teardown_tree),
		cmocka_unit_test_setup_teardown(test_bind_unbound_and_already_bound, setup_tree,
						teardown_tree),
		cmocka_unit_test_setup_teardown(test_bind_errors, setup_tree, teardown_tree),
		cmocka_unit_test_setup_teardown(fault_limits_group_not_viable, setup_tree, teardown_tree),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
