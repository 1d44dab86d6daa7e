/* SPDX-License-Identifier: MIT */
/*
 * Who drives a controller: while a process has a controller attached it
 * holds an exclusive flock on RUN_DIR/BDF.pid (RUN_DIR is /run/nvring, or
 * $NVRING_RUN_DIR for tests) and has written "PID COMM" into it, so a
 * second process is told who the holder is before it even tries VFIO
 * (whose EBUSY names nobody). The shim (shim/preload.c) takes the same lock
 * before it attaches. The kernel drops a flock when its holder dies, so a
 * file left by a killed process names a dead pid and is simply taken over.
 */
#ifndef NVRING_PCI_HOLDER_H
#define NVRING_PCI_HOLDER_H

#include <stddef.h>

/* RUN_DIR: $NVRING_RUN_DIR or "/run/nvring". */
const char *nvr_run_dir(void);

/*
 * Take the lock of @bdf (normalised "0000:00:02.0"). 0 with *@fd the
 * lock's descriptor, or with *@fd = -1 when no lock was taken: RUN_DIR
 * cannot be made (VFIO's own exclusion still holds) or this process holds
 * the lock already through another descriptor (the shim). -EBUSY when
 * another process holds it, after one logged line naming its pid and the
 * fix.
 */
int nvr_holder_claim(const char *bdf, int *fd);

/* Drop a lock from nvr_holder_claim() (empties the file first); -1 is a
 * no-op. */
void nvr_holder_release(int fd);

#endif
