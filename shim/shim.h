/* SPDX-License-Identifier: MIT */
/*
 * shim/ — the LD_PRELOAD library (build/lib/libnvring-preload.so) that puts
 * unmodified io_uring programs on nvring. Internal interface between its
 * layers; nothing here is exported.
 *
 * Layers, fastest first:
 *   liburing.c  liburing's exported functions (a)
 *   syscall.c   libc syscall() (b), and the libc file calls on our
 *               descriptors (close, dup*, the block device path)
 *   patch.c     inline `syscall` instructions rewritten at load to jump
 *               to a stub (c); trap.c: the seccomp SIGSYS net behind it
 * Every layer ends in shim_dispatch(); what it does not claim goes to the
 * kernel through shim_raw_syscall(), whose one `syscall` instruction lies
 * in [shim_raw_begin, shim_raw_end) so that the seccomp filter lets it by.
 */
#ifndef NVRING_SHIM_H
#define NVRING_SHIM_H

#include <stdbool.h>

/* The real system call, from the shim's own instruction (raw.c). Returns
 * what the kernel returns (-errno on failure; errno untouched). */
long shim_raw_syscall(long nr, long a0, long a1, long a2, long a3, long a4, long a5);
extern const char shim_raw_begin[], shim_raw_end[];

/* One intercepted system call, raw convention (a negative errno on failure).
 * Returns true with *ret set when the shim handled it; false when it is not
 * ours and must go to the kernel unchanged. Safe from a SIGSYS handler. */
bool shim_dispatch(long nr, const long a[6], long *ret);

/* The lowest fd number the shim gives its rings and namespace descriptors
 * (nvr_uring_set_fd_floor); the trap filter catches close/dup on these. */
extern int shim_fd_floor;

/* patch.c / trap.c: set up at load, after the fd floor is known. */
int shim_patch_init(void);   /* patch known inline io_uring sites; count or -errno */
int shim_trap_init(void);    /* install the seccomp net; 0 or -errno */

#endif
