/* SPDX-License-Identifier: MIT */
/*
 * Reading and writing the application's memory the way the kernel's
 * copy_from_user()/copy_to_user() do: a bad pointer (unmapped, PROT_NONE,
 * non-canonical, a read-only page written) is -EFAULT or a short count,
 * never SIGSEGV in the library (or in the SQPOLL thread).
 *
 * Two ways, with the same results (abi/uaccess.h): the exception-table
 * copy of abi/uaccess_fault.c, no system call, used whenever
 * ur_fault_usable() says this thread may; otherwise process_vm_readv(2)/
 * process_vm_writev(2) on our own pid: the kernel does the copy and stops
 * at the first page it cannot pin, returning the bytes copied before it
 * (mm/process_vm_access.c copies page by page, so a partial count may end
 * inside an iovec element).
 *
 * Cost of the process_vm way, measured on the development host (Debian
 * 12, Linux 6.1, a 2-vCPU VM; 200,000 calls each, on one page already
 * faulted in): one 4 KiB copy takes 1.19 us against 0.04-0.05 us for
 * memcpy (64 B: 1.16 us vs 0.003 us; 64 KiB: 5.4 us vs 1.16 us). It is
 * the syscall, not the copy: per non-fixed 4 KiB I/O that is one such
 * call (the copy in before a write, or the copy out after a read; a read
 * into a buffer not aligned to the block size adds one probe call). The
 * fault way costs about what memcpy does (bench/uacopy.c).
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "abi/ring.h"
#include "abi/uaccess.h"

/* Memcheck does not see process_vm_writev() writing our own memory (the
 * "remote" side): tell it, so programs under valgrind get no false
 * uninitialised-value reports after a bounced read. A no-op otherwise. */
#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#endif
#endif
#ifndef VALGRIND_MAKE_MEM_DEFINED
#define VALGRIND_MAKE_MEM_DEFINED(a, n) ((void)(a), (void)(n))
#endif

static void ur_mark_written(const struct iovec *iov, int iovcnt, size_t len)
{
	for (int i = 0; i < iovcnt && len; i++) {
		size_t n = iov[i].iov_len < len ? iov[i].iov_len : len;
		VALGRIND_MAKE_MEM_DEFINED(iov[i].iov_base, n);
		len -= n;
	}
}

/* Our pid, asked once (glibc does not cache getpid()); a fork()ed child
 * forgets it. */
static _Atomic pid_t ur_pid;
static pthread_once_t ur_pid_once = PTHREAD_ONCE_INIT;
static void ur_pid_forget(void) { atomic_store_explicit(&ur_pid, 0, memory_order_relaxed); }
static void ur_pid_hook(void) { pthread_atfork(NULL, NULL, ur_pid_forget); }

static pid_t ur_self(void)
{
	pid_t p = atomic_load_explicit(&ur_pid, memory_order_relaxed);
	if (__builtin_expect(!p, 0)) {
		pthread_once(&ur_pid_once, ur_pid_hook);
		p = getpid();
		atomic_store_explicit(&ur_pid, p, memory_order_relaxed);
	}
	return p;
}

/* Set when the syscalls are refused (a seccomp sandbox: EPERM/ENOSYS):
 * then we copy with memcpy, as before -- working I/O, but a bad pointer
 * faults in the process again. */
static _Atomic bool ur_pvm_refused;

/* The same copy by memcpy, for the fallback: local is one element. */
static ssize_t ur_memcpy_vec(bool to_user, const struct iovec *local, const struct iovec *remote,
			     unsigned long nremote)
{
	uint8_t *l = local->iov_base;
	size_t left = local->iov_len, done = 0;
	for (unsigned long i = 0; i < nremote && left; i++) {
		size_t n = remote[i].iov_len < left ? remote[i].iov_len : left;
		if (to_user)
			memcpy(remote[i].iov_base, l + done, n);
		else
			memcpy(l + done, remote[i].iov_base, n);
		done += n;
		left -= n;
	}
	return (ssize_t)done;
}

/* One process_vm_* call (abi/uaccess.h); more than UR_UIO_MAXIOV remote
 * elements are split by the caller. */
ssize_t ur_pvm_move(bool to_user, void *buf, size_t len, const struct iovec *remote,
		    unsigned long nremote)
{
	struct iovec l = { buf, len };
	const struct iovec *local = &l;
	if (__builtin_expect(atomic_load_explicit(&ur_pvm_refused, memory_order_relaxed), 0))
		return ur_memcpy_vec(to_user, local, remote, nremote);
	ssize_t n;
	do {
		n = to_user ? process_vm_writev(ur_self(), local, 1, remote, nremote, 0)
			    : process_vm_readv(ur_self(), local, 1, remote, nremote, 0);
	} while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EPERM || errno == ENOSYS)) {
		atomic_store_explicit(&ur_pvm_refused, true, memory_order_relaxed);
		return ur_memcpy_vec(to_user, local, remote, nremote);
	}
	if (n < 0)
		return errno == EFAULT || errno == ENOMEM || errno == EINVAL ? -EFAULT : -errno;
	if (to_user)
		ur_mark_written(remote, (int)nremote, (size_t)n);
	return n;
}

__thread struct ur_client *ur_tls_client;

/* A served ring's client (abi/served.h): its memory, by process_vm on its
 * pid, never by memcpy (its addresses mean nothing here). */
static ssize_t ur_pvm_client(const struct ur_client *c, bool to_user, void *buf, size_t len,
			     const struct iovec *remote, unsigned long nremote)
{
	struct iovec l = { buf, len };
	ssize_t n;
	do {
		n = to_user ? process_vm_writev(c->pid, &l, 1, remote, nremote, 0)
			    : process_vm_readv(c->pid, &l, 1, remote, nremote, 0);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EFAULT || errno == ENOMEM || errno == EINVAL ? -EFAULT :
		       errno == ESRCH ? -ENODEV : -errno;
	return n;
}

/* Either way, the same result. */
static ssize_t ur_move(bool to_user, void *buf, size_t len, const struct iovec *iov,
		       unsigned long n)
{
	if (__builtin_expect(ur_tls_client != NULL, 0))
		return ur_pvm_client(ur_tls_client, to_user, buf, len, iov, n);
	if (ur_fault_usable())
		return ur_fault_move(to_user, buf, len, iov, n);
	return ur_pvm_move(to_user, buf, len, iov, n);
}

int ur_copy_from_user(void *dst, uint64_t src, size_t len)
{
	if (!len)
		return 0;
	struct iovec r = { (void *)(uintptr_t)src, len };
	return ur_move(false, dst, len, &r, 1) == (ssize_t)len ? 0 : -EFAULT;
}

int ur_copy_to_user(uint64_t dst, const void *src, size_t len)
{
	if (!len)
		return 0;
	struct iovec r = { (void *)(uintptr_t)dst, len };
	return ur_move(true, (void *)src, len, &r, 1) == (ssize_t)len ? 0 : -EFAULT;
}

/* The user's segments <-> one contiguous buffer, up to @len bytes: the
 * bytes moved (short at the first page that faults), -EFAULT if none. */
static ssize_t ur_move_user(bool to_user, void *buf, const struct iovec *iov, int iovcnt,
			    size_t len)
{
	size_t done = 0;
	while (iovcnt > 0 && done < len) {
		int n = iovcnt > UR_UIO_MAXIOV ? UR_UIO_MAXIOV : iovcnt;
		ssize_t got = ur_move(to_user, (uint8_t *)buf + done, len - done, iov, (unsigned long)n);
		if (got <= 0)
			break;
		done += (size_t)got;
		size_t want = 0;
		for (int i = 0; i < n; i++)
			want += iov[i].iov_len;
		if ((size_t)got < want && done < len)
			break;   /* stopped at a fault */
		iov += n;
		iovcnt -= n;
	}
	return done ? (ssize_t)done : (len ? -EFAULT : 0);
}

/* One segment (every READ/WRITE): ur_move_user()'s result without its
 * loop over the segments. */
static ssize_t ur_move_one(bool to_user, void *buf, const struct iovec *iov, size_t len)
{
	if (!len)
		return 0;
	ssize_t got = ur_move(to_user, buf, len, iov, 1);
	return got > 0 ? got : -EFAULT;
}

ssize_t ur_gather_user(void *dst, const struct iovec *iov, int iovcnt, size_t len)
{
	if (iovcnt == 1)
		return ur_move_one(false, dst, iov, len);
	return ur_move_user(false, dst, iov, iovcnt, len);
}

ssize_t ur_scatter_user(const struct iovec *iov, int iovcnt, const void *src, size_t len)
{
	if (iovcnt == 1)
		return ur_move_one(true, (void *)src, iov, len);
	return ur_move_user(true, (void *)src, iov, iovcnt, len);
}

/*
 * How many of the first @len bytes of the segments lie on pages we can
 * read: the transfer offset of the first byte on a page that faults, or
 * @len. One byte per page is read (into a scratch byte), so the probe
 * costs one syscall however large the transfer.
 */
size_t ur_user_prefix(const struct iovec *iov, int iovcnt, size_t len)
{
	struct iovec probe[64];
	size_t at[64];
	uint8_t scratch[64];
	size_t off = 0;
	unsigned n = 0;
	for (int i = 0; i < iovcnt && off < len; i++) {
		uint64_t a = (uintptr_t)iov[i].iov_base;
		size_t seg = iov[i].iov_len < len - off ? iov[i].iov_len : len - off;
		size_t k = 0;
		while (k < seg) {
			probe[n] = (struct iovec){ (void *)(uintptr_t)(a + k), 1 };
			at[n] = off + k;
			n++;
			k += UR_PAGE - ((a + k) & (UR_PAGE - 1));
			if (n == 64) {
				ssize_t got = ur_move(false, scratch, n, probe, n);
				if (got < (ssize_t)n)
					return at[got < 0 ? 0 : got];
				n = 0;
			}
		}
		off += seg;
	}
	if (n) {
		ssize_t got = ur_move(false, scratch, n, probe, n);
		if (got < (ssize_t)n)
			return at[got < 0 ? 0 : got];
	}
	return len;
}
