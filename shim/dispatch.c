/* SPDX-License-Identifier: MIT */
/*
 * shim_dispatch(): one intercepted system call, whichever layer caught it
 * (liburing's functions call the ring parts directly; syscall(), the libc
 * file calls, patched sites and the SIGSYS net come here). What is not
 * ours returns false and goes to the kernel unchanged.
 *
 * Ours: io_uring_setup while a device is configured (every ring of the
 * program is an nvring ring); io_uring_enter/register, close and dup on
 * our descriptors; the file calls on our block-device descriptors.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "nvring/uring.h"
#include "shim/shim.h"

static long ring_setup(unsigned entries, struct io_uring_params *p)
{
	struct nvr_ctrlr *c;
	int rc = shim_ctrlr_get(&c);
	if (rc < 0)
		return rc;
	if (!p)
		return -EFAULT;
	struct shim_file *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	int fd = nvr_uring_setup(c, entries, p);
	if (fd < 0) {
		free(f);
		return fd;
	}
	atomic_init(&f->refs, 1);     /* ours until the table has it */
	f->kind = SHIM_RING;
	f->lib_fd = fd;
	shim_ring_count(1);
	rc = shim_fd_set(fd, f);
	if (rc < 0) {
		shim_file_put(f);     /* closes the ring */
		return rc;
	}
	shim_file_put(f);         /* the table's reference remains */
	return fd;
}

int shim_close(int fd)
{
	struct shim_file *f = shim_fd_get(fd);
	if (!f)
		return 1;
	f = shim_fd_take(fd);
	if (!f)
		return 1;
	if (f->kind == SHIM_BLK)
		nvr_ns_close(fd);      /* unbind (no-op when detached) */
	/* The library's own ring fd is closed by nvr_uring_close() when the
	 * last reference goes; any other number is the program's to close. */
	int rc = 0;
	if (!(f->kind == SHIM_RING && fd == f->lib_fd))
		rc = (int)shim_raw_syscall(SYS_close, fd, 0, 0, 0, 0, 0);
	shim_file_put(f);
	return rc;
}

/* dup/dup2/dup3/F_DUPFD of one of ours: the new number shares the file. */
static long shim_dup(int oldfd, struct shim_file *f, long nr, long newfd, long flags)
{
	long rc;
	switch (nr) {
	case SYS_dup:
		rc = shim_raw_syscall(SYS_fcntl, oldfd, F_DUPFD, shim_fd_floor, 0, 0, 0);
		break;
	case SYS_fcntl:     /* newfd = F_DUPFD or F_DUPFD_CLOEXEC, flags = min */
		rc = shim_raw_syscall(SYS_fcntl, oldfd, newfd,
				      flags > shim_fd_floor ? flags : shim_fd_floor, 0, 0, 0);
		break;
	default:            /* dup2, dup3 */
		if (newfd == oldfd)
			return nr == SYS_dup3 ? -EINVAL : newfd;
		/* the target's old file, if ours, is closed first (as dup2 does) */
		if (shim_fd_get((int)newfd))
			shim_close((int)newfd);
		rc = shim_raw_syscall(SYS_dup3, oldfd, newfd, nr == SYS_dup3 ? flags : 0, 0, 0, 0);
		break;
	}
	if (rc < 0)
		return rc;
	if (f->kind == SHIM_BLK) {
		struct nvr_ctrlr *c = shim_ctrlr_peek();
		if (c)
			nvr_ns_bind(c, f->nsid, (int)rc);
	}
	shim_fd_set((int)rc, f);
	return rc;
}

bool shim_dispatch(long nr, const long a[6], long *ret)
{
	switch (nr) {
	case SYS_io_uring_setup:
		if (!shim_cfg.on)
			return false;
		*ret = ring_setup((unsigned)a[0], (struct io_uring_params *)a[1]);
		return true;
	case SYS_io_uring_enter:
	case SYS_io_uring_register: {
		struct shim_file *f = shim_fd_get((int)a[0]);
		if (!f || f->kind != SHIM_RING) {
			if (!f)
				return false;
			*ret = -EOPNOTSUPP;     /* a block device is not a ring */
			return true;
		}
		if (nr == SYS_io_uring_enter)
			*ret = nvr_uring_enter(f->lib_fd, (unsigned)a[1], (unsigned)a[2],
					       (unsigned)a[3], (const void *)a[4], (size_t)a[5]);
		else
			*ret = nvr_uring_register(f->lib_fd, (unsigned)a[1], (void *)a[2],
						  (unsigned)a[3]);
		return true;
	}
	case SYS_close: {
		int rc = shim_close((int)a[0]);
		if (rc == 1)
			return false;
		*ret = rc;
		return true;
	}
	case SYS_close_range: {
		/* ours in the range are released first (CLOSE_RANGE_CLOEXEC only
		 * marks: nothing to release yet); then the kernel does the rest */
		unsigned lo = (unsigned)a[0], hi = (unsigned)a[1];
		if (lo > hi) {
			*ret = -EINVAL;
			return true;
		}
		if (!((unsigned)a[2] & CLOSE_RANGE_CLOEXEC))
			for (unsigned fd = lo; fd <= hi && fd < SHIM_MAX_FD; fd++)
				if (shim_fd_get((int)fd))
					shim_close((int)fd);
		return false;
	}
	case SYS_dup:
	case SYS_dup2:
	case SYS_dup3: {
		struct shim_file *f = shim_fd_get((int)a[0]);
		if (!f) {
			/* dup2 onto one of ours: ours is closed first */
			if (nr != SYS_dup && shim_fd_get((int)a[1]) && a[0] != a[1]) {
				if (shim_raw_syscall(SYS_fcntl, a[0], F_GETFD, 0, 0, 0, 0) < 0) {
					*ret = -EBADF;
					return true;
				}
				shim_close((int)a[1]);
			}
			return false;
		}
		*ret = shim_dup((int)a[0], f, nr, a[1], a[2]);
		return true;
	}
	case SYS_fcntl: {
		struct shim_file *f = shim_fd_get((int)a[0]);
		if (!f)
			return false;
		if (a[1] == F_DUPFD || a[1] == F_DUPFD_CLOEXEC) {
			*ret = shim_dup((int)a[0], f, nr, a[1], a[2]);
			return true;
		}
		if (f->kind == SHIM_BLK && a[1] == F_GETFL) {
			*ret = f->oflags | O_LARGEFILE;
			return true;
		}
		if (f->kind == SHIM_BLK && a[1] == F_SETFL) {
			int keep = f->oflags & ~(O_APPEND | O_NONBLOCK | O_DIRECT);
			f->oflags = keep | ((int)a[2] & (O_APPEND | O_NONBLOCK | O_DIRECT));
			*ret = 0;
			return true;
		}
		return false;
	}
	case SYS_read: case SYS_write: case SYS_pread64: case SYS_pwrite64:
	case SYS_readv: case SYS_writev: case SYS_preadv: case SYS_pwritev:
	case SYS_preadv2: case SYS_pwritev2: case SYS_lseek: case SYS_fsync:
	case SYS_fdatasync: case SYS_sync_file_range: case SYS_fallocate:
	case SYS_ioctl: case SYS_fadvise64: {
		struct shim_file *f = shim_fd_get((int)a[0]);
		if (!f)
			return false;
		if (f->kind != SHIM_BLK) {
			/* a ring fd is a memfd here; the kernel's ring refuses these */
			if (nr == SYS_read || nr == SYS_write || nr == SYS_pread64 ||
			    nr == SYS_pwrite64 || nr == SYS_readv || nr == SYS_writev)
				*ret = -EINVAL;
			else if (nr == SYS_lseek)
				*ret = -ESPIPE;
			else if (nr == SYS_ioctl)
				*ret = -ENOTTY;
			else
				*ret = -EINVAL;
			return true;
		}
		*ret = shim_blk_call(nr, f, (int)a[0], a);
		return true;
	}
	default:
		return false;
	}
}
