/* SPDX-License-Identifier: MIT */
/*
 * Layer (b): libc's syscall() and the libc file calls, for our descriptors
 * and the block device's path. Everything else goes straight to libc, so a
 * program's (and the library's own) other files cost one table lookup.
 * errno is set here, at the libc boundary, and nowhere else.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include "shim/shim.h"

#define EXPORT __attribute__((visibility("default")))

/* libc's headers declare path arguments nonnull; programs pass NULL anyway,
 * and the kernel answers -EFAULT: we check rather than trust. */
#pragma GCC diagnostic ignored "-Wnonnull-compare"

static long ret_errno(long r)
{
	if (r < 0 && r > -4096) {
		errno = (int)-r;
		return -1;
	}
	return r;
}

/* Ours? Then set *out (the libc return) and say so. */
static bool fd_call(long nr, long a0, long a1, long a2, long a3, long a4, long a5, long *out)
{
	if (!shim_fd_get((int)a0))
		return false;
	long a[6] = { a0, a1, a2, a3, a4, a5 }, r;
	if (!shim_dispatch(nr, a, &r))
		return false;
	*out = ret_errno(r);
	return true;
}

/* ---- syscall() ---- */

EXPORT long syscall(long nr, ...)
{
	va_list ap;
	long a[6];
	va_start(ap, nr);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	long r;
	if (shim_dispatch(nr, a, &r))
		return ret_errno(r);
	return ret_errno(shim_raw_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]));
}

/* ---- open ---- */

static int open_common(int dirfd, const char *path, int flags, mode_t mode, bool *ours)
{
	*ours = false;
	if (!shim_cfg.on || !path)
		return 0;
	if (path[0] != '/' && dirfd != AT_FDCWD)
		return 0;
	if (!shim_is_blk_path(path))
		return 0;
	*ours = true;
	return (int)ret_errno(shim_blk_open(path, flags, mode));
}

#define OPEN_MODE(flags, mode)                                              \
	mode_t mode = 0;                                                    \
	if ((flags) & (O_CREAT | __O_TMPFILE)) {                            \
		va_list ap;                                                 \
		va_start(ap, flags);                                        \
		mode = va_arg(ap, mode_t);                                  \
		va_end(ap);                                                 \
	}

SHIM_REAL_DECL(open);
EXPORT int open(const char *path, int flags, ...)
{
	OPEN_MODE(flags, mode);
	bool ours;
	int r = open_common(AT_FDCWD, path, flags, mode, &ours);
	return ours ? r : REAL(open)(path, flags, mode);
}

SHIM_REAL_DECL(open64);
EXPORT int open64(const char *path, int flags, ...)
{
	OPEN_MODE(flags, mode);
	bool ours;
	int r = open_common(AT_FDCWD, path, flags, mode, &ours);
	return ours ? r : REAL(open64)(path, flags, mode);
}

SHIM_REAL_DECL(openat);
EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
	OPEN_MODE(flags, mode);
	bool ours;
	int r = open_common(dirfd, path, flags, mode, &ours);
	return ours ? r : REAL(openat)(dirfd, path, flags, mode);
}

SHIM_REAL_DECL(openat64);
EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
	OPEN_MODE(flags, mode);
	bool ours;
	int r = open_common(dirfd, path, flags, mode, &ours);
	return ours ? r : REAL(openat64)(dirfd, path, flags, mode);
}

/* _FORTIFY_SOURCE's variants */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
SHIM_REAL_DECL(__open_2);
SHIM_REAL_DECL(__open64_2);
EXPORT int __open_2(const char *path, int flags)
{
	bool ours;
	int r = open_common(AT_FDCWD, path, flags, 0, &ours);
	return ours ? r : REAL(__open_2)(path, flags);
}
EXPORT int __open64_2(const char *path, int flags)
{
	bool ours;
	int r = open_common(AT_FDCWD, path, flags, 0, &ours);
	return ours ? r : REAL(__open64_2)(path, flags);
}

/* ---- stat ---- */

static bool stat_path(int dirfd, const char *path, struct stat *st, int *ret)
{
	if (!shim_cfg.on || !path || (path[0] != '/' && dirfd != AT_FDCWD) ||
	    !shim_is_blk_path(path))
		return false;
	*ret = shim_blk_stat(st);
	return true;
}

static bool stat_fd(int fd, struct stat *st, int *ret)
{
	struct shim_file *f = shim_fd_get(fd);
	if (!f || f->kind != SHIM_BLK)
		return false;
	*ret = shim_blk_stat(st);
	return true;
}

SHIM_REAL_DECL(stat);
EXPORT int stat(const char *path, struct stat *st)
{
	int r;
	return stat_path(AT_FDCWD, path, st, &r) ? r : REAL(stat)(path, st);
}
SHIM_REAL_DECL(stat64);
EXPORT int stat64(const char *path, struct stat64 *st)
{
	int r;
	return stat_path(AT_FDCWD, path, (struct stat *)st, &r) ? r : REAL(stat64)(path, st);
}
SHIM_REAL_DECL(lstat);
EXPORT int lstat(const char *path, struct stat *st)
{
	int r;
	return stat_path(AT_FDCWD, path, st, &r) ? r : REAL(lstat)(path, st);
}
SHIM_REAL_DECL(lstat64);
EXPORT int lstat64(const char *path, struct stat64 *st)
{
	int r;
	return stat_path(AT_FDCWD, path, (struct stat *)st, &r) ? r : REAL(lstat64)(path, st);
}
SHIM_REAL_DECL(fstat);
EXPORT int fstat(int fd, struct stat *st)
{
	int r;
	return stat_fd(fd, st, &r) ? r : REAL(fstat)(fd, st);
}
SHIM_REAL_DECL(fstat64);
EXPORT int fstat64(int fd, struct stat64 *st)
{
	int r;
	return stat_fd(fd, (struct stat *)st, &r) ? r : REAL(fstat64)(fd, st);
}
SHIM_REAL_DECL(fstatat);
EXPORT int fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
	int r;
	if ((flags & AT_EMPTY_PATH) && path && !path[0] && stat_fd(dirfd, st, &r))
		return r;
	return stat_path(dirfd, path, st, &r) ? r : REAL(fstatat)(dirfd, path, st, flags);
}
SHIM_REAL_DECL(fstatat64);
EXPORT int fstatat64(int dirfd, const char *path, struct stat64 *st, int flags)
{
	int r;
	if ((flags & AT_EMPTY_PATH) && path && !path[0] && stat_fd(dirfd, (struct stat *)st, &r))
		return r;
	return stat_path(dirfd, path, (struct stat *)st, &r) ? r
							     : REAL(fstatat64)(dirfd, path, st, flags);
}

static void statx_fill(struct statx *sx)
{
	struct stat st;
	shim_blk_stat(&st);
	memset(sx, 0, sizeof(*sx));
	sx->stx_mask = STATX_BASIC_STATS;
	sx->stx_blksize = (uint32_t)st.st_blksize;
	sx->stx_nlink = 1;
	sx->stx_mode = (uint16_t)st.st_mode;
	sx->stx_ino = st.st_ino;
	sx->stx_rdev_major = major(st.st_rdev);
	sx->stx_rdev_minor = minor(st.st_rdev);
	sx->stx_dev_major = major(st.st_dev);
	sx->stx_dev_minor = minor(st.st_dev);
	sx->stx_atime.tv_sec = sx->stx_mtime.tv_sec = sx->stx_ctime.tv_sec = st.st_mtim.tv_sec;
}

SHIM_REAL_DECL(statx);
EXPORT int statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *sx)
{
	struct shim_file *f;
	if ((flags & AT_EMPTY_PATH) && path && !path[0] && (f = shim_fd_get(dirfd)) &&
	    f->kind == SHIM_BLK) {
		statx_fill(sx);
		return 0;
	}
	if (shim_cfg.on && path && (path[0] == '/' || dirfd == AT_FDCWD) && shim_is_blk_path(path)) {
		statx_fill(sx);
		return 0;
	}
	return REAL(statx)(dirfd, path, flags, mask, sx);
}

SHIM_REAL_DECL(access);
EXPORT int access(const char *path, int mode)
{
	if (shim_cfg.on && shim_is_blk_path(path))
		return (mode & X_OK) ? (errno = EACCES, -1) : 0;
	return REAL(access)(path, mode);
}

SHIM_REAL_DECL(faccessat);
EXPORT int faccessat(int dirfd, const char *path, int mode, int flags)
{
	if (shim_cfg.on && path && (path[0] == '/' || dirfd == AT_FDCWD) && shim_is_blk_path(path))
		return (mode & X_OK) ? (errno = EACCES, -1) : 0;
	return REAL(faccessat)(dirfd, path, mode, flags);
}

/* realpath() of a path that does not exist in the file system */
SHIM_REAL_DECL(realpath);
EXPORT char *realpath(const char *path, char *resolved)
{
	if (shim_cfg.on && shim_is_blk_path(path)) {
		char *out = resolved ? resolved : malloc(PATH_MAX);
		if (out)
			snprintf(out, PATH_MAX, "%s", path);
		return out;
	}
	return REAL(realpath)(path, resolved);
}

/* ---- descriptors ---- */

SHIM_REAL_DECL(close);
EXPORT int close(int fd)
{
	if (shim_fd_get(fd)) {
		int rc = shim_close(fd);
		if (rc != 1)
			return (int)ret_errno(rc);
	}
	/* Numbers at the floor are the library's own memfds: close them from
	 * our syscall instruction, which the seccomp net lets by untrapped. */
	if (shim_fd_floor && fd >= shim_fd_floor)
		return (int)ret_errno(shim_raw_syscall(SYS_close, fd, 0, 0, 0, 0, 0));
	return REAL(close)(fd);
}

SHIM_REAL_DECL(close_range);
EXPORT int close_range(unsigned lo, unsigned hi, int flags)
{
	long a[6] = { lo, hi, flags }, r;
	if (shim_dispatch(SYS_close_range, a, &r))
		return (int)ret_errno(r);
	return REAL(close_range)(lo, hi, flags);
}

SHIM_REAL_DECL(closefrom);
EXPORT void closefrom(int lo)
{
	long a[6] = { lo, ~0u, 0 }, r;
	if (lo >= 0)
		shim_dispatch(SYS_close_range, a, &r);
	REAL(closefrom)(lo);
}

SHIM_REAL_DECL(dup);
EXPORT int dup(int fd)
{
	long r;
	if (fd_call(SYS_dup, fd, 0, 0, 0, 0, 0, &r))
		return (int)r;
	return REAL(dup)(fd);
}

static bool dup2_target(long nr, int oldfd, int newfd, int flags, long *out)
{
	long a[6] = { oldfd, newfd, flags, 0, 0, 0 }, r;
	if (!shim_fd_get(oldfd) && !shim_fd_get(newfd))
		return false;
	if (!shim_dispatch(nr, a, &r))
		return false;
	*out = ret_errno(r);
	return true;
}

SHIM_REAL_DECL(dup2);
EXPORT int dup2(int oldfd, int newfd)
{
	long r;
	if (dup2_target(SYS_dup2, oldfd, newfd, 0, &r))
		return (int)r;
	return REAL(dup2)(oldfd, newfd);
}

SHIM_REAL_DECL(dup3);
EXPORT int dup3(int oldfd, int newfd, int flags)
{
	long r;
	if (dup2_target(SYS_dup3, oldfd, newfd, flags, &r))
		return (int)r;
	return REAL(dup3)(oldfd, newfd, flags);
}

static int fcntl_common(int (*real)(int, int, ...), int fd, int cmd, va_list ap)
{
	long arg = va_arg(ap, long);
	long r;
	if (fd_call(SYS_fcntl, fd, cmd, arg, 0, 0, 0, &r))
		return (int)r;
	return real(fd, cmd, arg);
}

SHIM_REAL_DECL(fcntl);
EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	int r = fcntl_common(REAL(fcntl), fd, cmd, ap);
	va_end(ap);
	return r;
}

int fcntl64(int fd, int cmd, ...);
SHIM_REAL_DECL(fcntl64);
EXPORT int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	int r = fcntl_common(REAL(fcntl64), fd, cmd, ap);
	va_end(ap);
	return r;
}

/* ---- I/O ---- */

#define FD_CALL(nr, fd, a1, a2, a3, a4, a5)                                 \
	do {                                                                \
		long r_;                                                    \
		if (fd_call(nr, fd, (long)(a1), (long)(a2), (long)(a3),     \
			    (long)(a4), (long)(a5), &r_))                   \
			return r_;                                          \
	} while (0)

SHIM_REAL_DECL(read);
EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	FD_CALL(SYS_read, fd, buf, n, 0, 0, 0);
	return REAL(read)(fd, buf, n);
}
SHIM_REAL_DECL(write);
EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	FD_CALL(SYS_write, fd, buf, n, 0, 0, 0);
	return REAL(write)(fd, buf, n);
}
SHIM_REAL_DECL(pread);
EXPORT ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	FD_CALL(SYS_pread64, fd, buf, n, off, 0, 0);
	return REAL(pread)(fd, buf, n, off);
}
SHIM_REAL_DECL(pread64);
EXPORT ssize_t pread64(int fd, void *buf, size_t n, off64_t off)
{
	FD_CALL(SYS_pread64, fd, buf, n, off, 0, 0);
	return REAL(pread64)(fd, buf, n, off);
}
SHIM_REAL_DECL(pwrite);
EXPORT ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	FD_CALL(SYS_pwrite64, fd, buf, n, off, 0, 0);
	return REAL(pwrite)(fd, buf, n, off);
}
SHIM_REAL_DECL(pwrite64);
EXPORT ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
	FD_CALL(SYS_pwrite64, fd, buf, n, off, 0, 0);
	return REAL(pwrite64)(fd, buf, n, off);
}
SHIM_REAL_DECL(readv);
EXPORT ssize_t readv(int fd, const struct iovec *iov, int n)
{
	FD_CALL(SYS_readv, fd, iov, n, 0, 0, 0);
	return REAL(readv)(fd, iov, n);
}
SHIM_REAL_DECL(writev);
EXPORT ssize_t writev(int fd, const struct iovec *iov, int n)
{
	FD_CALL(SYS_writev, fd, iov, n, 0, 0, 0);
	return REAL(writev)(fd, iov, n);
}
SHIM_REAL_DECL(preadv);
EXPORT ssize_t preadv(int fd, const struct iovec *iov, int n, off_t off)
{
	FD_CALL(SYS_preadv, fd, iov, n, off, 0, 0);
	return REAL(preadv)(fd, iov, n, off);
}
SHIM_REAL_DECL(preadv64);
EXPORT ssize_t preadv64(int fd, const struct iovec *iov, int n, off64_t off)
{
	FD_CALL(SYS_preadv, fd, iov, n, off, 0, 0);
	return REAL(preadv64)(fd, iov, n, off);
}
SHIM_REAL_DECL(pwritev);
EXPORT ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
	FD_CALL(SYS_pwritev, fd, iov, n, off, 0, 0);
	return REAL(pwritev)(fd, iov, n, off);
}
SHIM_REAL_DECL(pwritev64);
EXPORT ssize_t pwritev64(int fd, const struct iovec *iov, int n, off64_t off)
{
	FD_CALL(SYS_pwritev, fd, iov, n, off, 0, 0);
	return REAL(pwritev64)(fd, iov, n, off);
}
SHIM_REAL_DECL(preadv2);
EXPORT ssize_t preadv2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
	FD_CALL(SYS_preadv2, fd, iov, n, off, 0, flags);
	return REAL(preadv2)(fd, iov, n, off, flags);
}
ssize_t preadv64v2(int fd, const struct iovec *iov, int n, off64_t off, int flags);
SHIM_REAL_DECL(preadv64v2);
EXPORT ssize_t preadv64v2(int fd, const struct iovec *iov, int n, off64_t off, int flags)
{
	FD_CALL(SYS_preadv2, fd, iov, n, off, 0, flags);
	return REAL(preadv64v2)(fd, iov, n, off, flags);
}
SHIM_REAL_DECL(pwritev2);
EXPORT ssize_t pwritev2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
	FD_CALL(SYS_pwritev2, fd, iov, n, off, 0, flags);
	return REAL(pwritev2)(fd, iov, n, off, flags);
}
ssize_t pwritev64v2(int fd, const struct iovec *iov, int n, off64_t off, int flags);
SHIM_REAL_DECL(pwritev64v2);
EXPORT ssize_t pwritev64v2(int fd, const struct iovec *iov, int n, off64_t off, int flags)
{
	FD_CALL(SYS_pwritev2, fd, iov, n, off, 0, flags);
	return REAL(pwritev64v2)(fd, iov, n, off, flags);
}
SHIM_REAL_DECL(lseek);
EXPORT off_t lseek(int fd, off_t off, int whence)
{
	FD_CALL(SYS_lseek, fd, off, whence, 0, 0, 0);
	return REAL(lseek)(fd, off, whence);
}
SHIM_REAL_DECL(lseek64);
EXPORT off64_t lseek64(int fd, off64_t off, int whence)
{
	FD_CALL(SYS_lseek, fd, off, whence, 0, 0, 0);
	return REAL(lseek64)(fd, off, whence);
}
SHIM_REAL_DECL(fsync);
EXPORT int fsync(int fd)
{
	FD_CALL(SYS_fsync, fd, 0, 0, 0, 0, 0);
	return REAL(fsync)(fd);
}
SHIM_REAL_DECL(fdatasync);
EXPORT int fdatasync(int fd)
{
	FD_CALL(SYS_fdatasync, fd, 0, 0, 0, 0, 0);
	return REAL(fdatasync)(fd);
}
SHIM_REAL_DECL(sync_file_range);
EXPORT int sync_file_range(int fd, off64_t off, off64_t n, unsigned int flags)
{
	FD_CALL(SYS_sync_file_range, fd, off, n, flags, 0, 0);
	return REAL(sync_file_range)(fd, off, n, flags);
}
SHIM_REAL_DECL(fallocate);
EXPORT int fallocate(int fd, int mode, off_t off, off_t len)
{
	FD_CALL(SYS_fallocate, fd, mode, off, len, 0, 0);
	return REAL(fallocate)(fd, mode, off, len);
}
SHIM_REAL_DECL(fallocate64);
EXPORT int fallocate64(int fd, int mode, off64_t off, off64_t len)
{
	FD_CALL(SYS_fallocate, fd, mode, off, len, 0, 0);
	return REAL(fallocate64)(fd, mode, off, len);
}
/* posix_fadvise returns the error number, without errno */
SHIM_REAL_DECL(posix_fadvise);
EXPORT int posix_fadvise(int fd, off_t off, off_t len, int advice)
{
	if (shim_fd_get(fd))
		return 0;
	return REAL(posix_fadvise)(fd, off, len, advice);
}
SHIM_REAL_DECL(posix_fadvise64);
EXPORT int posix_fadvise64(int fd, off64_t off, off64_t len, int advice)
{
	if (shim_fd_get(fd))
		return 0;
	return REAL(posix_fadvise64)(fd, off, len, advice);
}

SHIM_REAL_DECL(ioctl);
EXPORT int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	va_start(ap, req);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	long r;
	if (fd_call(SYS_ioctl, fd, (long)req, (long)arg, 0, 0, 0, &r))
		return (int)r;
	return REAL(ioctl)(fd, req, arg);
}

/* ---- exec: block descriptors without O_CLOEXEC carry their position ---- */

SHIM_REAL_DECL(execve);
EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	if (shim_cfg.on)
		shim_blk_exec_prepare();
	return REAL(execve)(path, argv, envp);
}
SHIM_REAL_DECL(execv);
EXPORT int execv(const char *path, char *const argv[])
{
	if (shim_cfg.on)
		shim_blk_exec_prepare();
	return REAL(execv)(path, argv);
}
SHIM_REAL_DECL(execvp);
EXPORT int execvp(const char *file, char *const argv[])
{
	if (shim_cfg.on)
		shim_blk_exec_prepare();
	return REAL(execvp)(file, argv);
}
SHIM_REAL_DECL(execvpe);
EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	if (shim_cfg.on)
		shim_blk_exec_prepare();
	return REAL(execvpe)(file, argv, envp);
}
