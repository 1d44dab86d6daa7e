/* SPDX-License-Identifier: MIT */
/*
 * Between abi/uaccess.c (the user-memory API of ring.h, and the
 * process_vm_readv/writev way of doing it) and abi/uaccess_fault.c (the
 * exception-table way: a copy routine whose faults a signal handler turns
 * into a short count). Both implement one primitive with the same
 * results, so either may serve any call: the user's segments @iov[0..n)
 * (n <= UR_UIO_MAXIOV) <-> our buffer @buf of @len bytes, returning what
 * process_vm_readv(2) (!to_user) or process_vm_writev(2) (to_user) with
 * one local element {buf, len} returns -- the bytes copied, which stop at
 * the first page that cannot be accessed, or -EFAULT when that is before
 * the first byte.
 */
#ifndef NVRING_ABI_UACCESS_H
#define NVRING_ABI_UACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

ssize_t ur_pvm_move(bool to_user, void *buf, size_t len, const struct iovec *iov, unsigned long n);
ssize_t ur_fault_move(bool to_user, void *buf, size_t len, const struct iovec *iov,
		      unsigned long n);

/* Whether this thread may use ur_fault_move() now: our handler is the
 * process's SIGSEGV and SIGBUS disposition and neither signal is blocked
 * here. Cached per thread, asked again every so many calls and after
 * ur_fault_recheck(). */
bool ur_fault_usable(void);

/* Every thread asks again at its next copy (ring setup calls it). */
void ur_fault_recheck(void);

/* Tests and bench/: UR_UA_PVM uses process_vm only; UR_UA_FAULT installs
 * our handler now even over a handler installed after ours (which
 * ur_fault_usable() otherwise leaves alone), then behaves as UR_UA_AUTO.
 * Returns 0, or -ENOTSUP where the fault path does not exist (not
 * x86-64, or under valgrind) or -errno from sigaction(). */
enum ur_ua_path { UR_UA_AUTO, UR_UA_PVM, UR_UA_FAULT };
int ur_uaccess_set_path(enum ur_ua_path p);

#endif
