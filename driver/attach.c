/* SPDX-License-Identifier: MIT */
/*
 * nvr_ctrlr_attach(): VFIO in front of the common bring-up. In a file of
 * its own so that programs using nvr_ctrlr_attach_dev() with another pci
 * backend (the unit tests' model) do not pull in pci/vfio.c.
 */
#include <errno.h>

#include "driver/ctrlr.h"

NVR_API int nvr_ctrlr_attach(const char *bdf, const struct nvr_ctrlr_opts *opts,
			     struct nvr_ctrlr **out)
{
	struct nvr_pci_dev *dev;
	int rc;

	if (!bdf || !out)
		return -EINVAL;
	*out = NULL;
	rc = nvr_vfio_open(bdf, &dev);
	if (rc)
		return rc;
	return nvr_ctrlr_attach_dev(dev, opts, out);
}
