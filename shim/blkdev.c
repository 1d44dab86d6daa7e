/* SPDX-License-Identifier: MIT */
/*
 * The namespace as a block device at the configured path (default
 * /dev/nvring0n1): open, stat, the block ioctls, and the synchronous file
 * calls, so that setup code (fio's stat, BLKGETSIZE64, BLKSSZGET,
 * BLKFLSBUF) and synchronous engines (psync, pvsync2) work.
 *
 * The synchronous calls go through a private nvring ring of the process:
 * a pread() is one READV SQE on that ring, so its results are those the
 * differential test holds to Linux's (O_DIRECT alignment -EINVAL, -EFAULT,
 * short reads at the end, fallocate's rules). A descriptor opened without
 * O_DIRECT behaves as the kernel's buffered block device: any offset and
 * length, done here as whole blocks through an aligned bounce buffer
 * (read-modify-write at the edges); there is no page cache, so writes are
 * written through.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <pthread.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <liburing.h>

#include "abi/ring.h"
#include "nvring/uring.h"
#include "shim/shim.h"

#define SHIM_BLK_MEMFD "nvring-blk:"

/* st_rdev: the kernel's "blkext" major, a minor no disk uses. */
#define SHIM_BLK_MAJOR 259
#define SHIM_BLK_MINOR 0xfff00
#define BOUNCE_BYTES   (1u << 20)

static pthread_mutex_t blk_lock = PTHREAD_MUTEX_INITIALIZER;
static struct io_uring pring;          /* the private ring, under blk_lock */
static bool pring_up;
static uint8_t *bounce;
static struct nvr_ns_info ns_info;     /* of shim_cfg.nsid, once attached */
static bool ns_known;
static struct nvr_ctrlr *pring_ctrlr;   /* the controller pring runs on */
static pid_t pring_pid;                 /* the process that made it: a fork child
					 * of an owner's client makes its own */

bool shim_is_blk_path(const char *path)
{
	return shim_cfg.on && path && !strcmp(path, shim_cfg.path);
}

/* ---- binding descriptors to the attached controller ---- */

struct bind_arg { struct nvr_ctrlr *c; int rc; };

static void bind_one(int fd, struct shim_file *f, void *arg)
{
	struct bind_arg *b = arg;
	if (f->kind != SHIM_BLK || b->rc < 0)
		return;
	int rc = nvr_ns_bind(b->c, f->nsid, fd);
	if (rc < 0 && rc != -EEXIST)
		b->rc = rc;
}

int shim_blk_bind_all(struct nvr_ctrlr *c)
{
	int rc = nvr_ns_get_info(c, shim_cfg.nsid, &ns_info);
	if (rc < 0) {
		shim_say("%s has no namespace %u", shim_cfg.bdf, shim_cfg.nsid);
		return rc;
	}
	ns_known = true;
	struct bind_arg b = { c, 0 };
	shim_fd_each(bind_one, &b);
	return b.rc;
}

static void unbind_one(int fd, struct shim_file *f, void *arg)
{
	if (f->kind == SHIM_BLK)
		nvr_ns_close(fd);
}

void shim_blk_unbind_all(void)
{
	shim_fd_each(unbind_one, NULL);
}

void shim_blk_fini(void)
{
	pthread_mutex_lock(&blk_lock);
	if (pring_up) {
		nvr_uring_queue_exit(&pring);
		pring_up = false;
		pring_ctrlr = NULL;
	}
	free(bounce);
	bounce = NULL;
	pthread_mutex_unlock(&blk_lock);
}

/* Lock order: ctrl_lock (preload.c) before blk_lock, since a detach
 * (fork) frees the private ring under ctrl_lock. So the controller is
 * fetched before blk_lock is taken, and checked again under it. */
/* Take blk_lock with the private ring up (made on first use). */
static int blk_begin(void)
{
	for (;;) {
		struct nvr_ctrlr *c;
		int rc = shim_ctrlr_get(&c);
		if (rc < 0)
			return rc;
		pthread_mutex_lock(&blk_lock);
		if (c != shim_ctrlr_peek()) {    /* detached meanwhile: again */
			pthread_mutex_unlock(&blk_lock);
			continue;
		}
		if (pring_up && pring_ctrlr == c && pring_pid == getpid())
			return 0;
		if (pring_up && pring_pid != getpid()) {
			/* the parent's (shared through the owner): ours is another */
			nvr_uring_queue_exit(&pring);
			pring_up = false;
		}
		rc = nvr_uring_queue_init(c, 8, &pring, NULL);
		if (rc == 0 && !bounce && posix_memalign((void **)&bounce, 4096, BOUNCE_BYTES)) {
			nvr_uring_queue_exit(&pring);
			rc = -ENOMEM;
		}
		if (rc < 0) {
			pthread_mutex_unlock(&blk_lock);
			return rc;
		}
		pring_up = true;
		pring_ctrlr = c;
		pring_pid = getpid();
		return 0;
	}
}

static void blk_end(void)
{
	pthread_mutex_unlock(&blk_lock);
}

/* One SQE on the private ring, its result. Under blk_lock. */
static int pring_do(uint8_t op, int fd, uint64_t addr, uint32_t len, uint64_t off, uint32_t rwf)
{
	int rc;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&pring);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_rw(op, sqe, fd, (const void *)(uintptr_t)addr, len, off);
	sqe->rw_flags = (__kernel_rwf_t)rwf;
	rc = nvr_uring_submit_and_wait(&pring, 1);
	if (rc < 0)
		return rc;
	struct io_uring_cqe *cqe;
	rc = io_uring_peek_cqe(&pring, &cqe);
	if (rc < 0)
		return rc;
	int res = cqe->res;
	io_uring_cqe_seen(&pring, cqe);
	return res;
}

static int ns_geometry(void)
{
	if (ns_known)
		return 0;
	struct nvr_ctrlr *c;
	return shim_ctrlr_get(&c);   /* fills ns_info */
}

/* ---- open and stat ---- */

int shim_blk_open(const char *path, int flags, mode_t mode)
{
	(void)path;
	(void)mode;
	if (flags & O_DIRECTORY)
		return -ENOTDIR;
	if ((flags & O_CREAT) && (flags & O_EXCL))
		return -EEXIST;
	struct nvr_ctrlr *c;
	int rc = shim_ctrlr_get(&c);
	if (rc < 0)
		return rc;
	struct shim_file *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	atomic_init(&f->refs, 1);     /* ours until the table has it */
	f->kind = SHIM_BLK;
	f->nsid = shim_cfg.nsid;
	f->lib_fd = -1;
	f->oflags = flags & (O_ACCMODE | O_DIRECT | O_APPEND | O_NONBLOCK | O_SYNC | O_DSYNC);
	/* A real descriptor to stand for it (its number is the program's);
	 * at the shim's fd floor, see fd_floor(). */
	char name[48];
	snprintf(name, sizeof(name), "%s%u:%x", SHIM_BLK_MEMFD, f->nsid, (unsigned)f->oflags);
	int low = memfd_create(name, (flags & O_CLOEXEC) ? MFD_CLOEXEC : 0);
	if (low < 0) {
		free(f);
		return -errno;
	}
	int fd = fcntl(low, (flags & O_CLOEXEC) ? F_DUPFD_CLOEXEC : F_DUPFD, shim_fd_floor);
	close(low);
	if (fd < 0) {
		free(f);
		return -errno;
	}
	rc = shim_fd_set(fd, f);
	if (rc == 0) {
		rc = nvr_ns_bind(c, f->nsid, fd);
		if (rc < 0)
			shim_file_put(shim_fd_take(fd));
	}
	shim_file_put(f);     /* the table holds it now (or it is gone) */
	if (rc < 0) {
		close(fd);
		return rc;
	}
	return fd;
}

int shim_blk_stat(struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = S_IFBLK | 0660;
	st->st_rdev = makedev(SHIM_BLK_MAJOR, SHIM_BLK_MINOR + shim_cfg.nsid);
	st->st_dev = makedev(0, 5);    /* devtmpfs-like */
	st->st_ino = 0x6e7672u + shim_cfg.nsid;
	st->st_nlink = 1;
	st->st_blksize = 4096;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	st->st_atim = st->st_mtim = st->st_ctim = now;
	return 0;
}

/* ---- across execve() ----
 * A block descriptor opened without O_CLOEXEC survives exec, as the
 * kernel's does; the new image's shim knows it by its memfd's name
 * ("nvring-blk:NSID:OFLAGS") and takes its file position from the memfd's
 * own offset, which shim_blk_exec_prepare() sets just before the exec. */

static void save_pos(int fd, struct shim_file *f, void *arg)
{
	(void)arg;
	if (f->kind == SHIM_BLK)
		shim_raw_syscall(SYS_lseek, fd, (long)atomic_load(&f->pos), SEEK_SET, 0, 0, 0);
}

void shim_blk_exec_prepare(void)
{
	shim_fd_each(save_pos, NULL);
}

void shim_blk_adopt(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		int fd = atoi(de->d_name);
		if (fd <= 0 && strcmp(de->d_name, "0"))
			continue;
		char link[64], target[128];
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		ssize_t n = readlink(link, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = 0;
		unsigned nsid, oflags;
		if (sscanf(target, "/memfd:" SHIM_BLK_MEMFD "%u:%x", &nsid, &oflags) != 2)
			continue;
		struct shim_file *f = calloc(1, sizeof(*f));
		if (!f)
			break;
		atomic_init(&f->refs, 1);
		f->kind = SHIM_BLK;
		f->nsid = nsid;
		f->lib_fd = -1;
		f->oflags = (int)oflags;
		long pos = shim_raw_syscall(SYS_lseek, fd, 0, SEEK_CUR, 0, 0, 0);
		atomic_init(&f->pos, pos > 0 ? (uint64_t)pos : 0);
		shim_fd_set(fd, f);      /* bound now, or at the next attach */
		struct nvr_ctrlr *c = shim_ctrlr_peek();
		if (c)
			nvr_ns_bind(c, nsid, fd);
		shim_file_put(f);
	}
	closedir(d);
}

/* ---- the file calls ---- */

static uint64_t ns_bytes(void)
{
	return ns_info.nlba * ns_info.lba_size;
}

/* Buffered (no O_DIRECT) read or write of any alignment, in whole blocks
 * through the bounce buffer. Under blk_lock. */
static long buffered_rw(bool wr, int fd, const struct iovec *iov, int iovcnt, uint64_t pos,
			uint32_t rwf)
{
	size_t len = 0;
	for (int i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	uint64_t size = ns_bytes();
	if (pos >= size)
		return wr && len ? -ENOSPC : 0;
	if (len > size - pos)
		len = (size_t)(size - pos);
	uint32_t lbs = ns_info.lba_size;
	size_t done = 0;
	/* the iovec cursor */
	int vi = 0;
	size_t voff = 0;
	while (done < len) {
		uint64_t p = pos + done;
		uint64_t a0 = p & ~(uint64_t)(lbs - 1);
		size_t want = len - done;
		size_t span = (size_t)(p - a0) + want;
		if (span > BOUNCE_BYTES)
			span = BOUNCE_BYTES;
		span = (span + lbs - 1) & ~(size_t)(lbs - 1);
		size_t n = span - (size_t)(p - a0);
		if (n > want)
			n = want;
		/* a read, or a write that covers partial blocks, reads first */
		bool partial = (p != a0) || ((p + n) & (lbs - 1));
		if (!wr || partial) {
			int r = pring_do(IORING_OP_READ, fd, (uintptr_t)bounce, (uint32_t)span, a0, 0);
			if (r < 0)
				return done ? (long)done : r;
			if ((size_t)r < span)
				span = (size_t)r;
		}
		/* the user's side */
		size_t moved = 0;
		while (moved < n && vi < iovcnt) {
			size_t k = iov[vi].iov_len - voff;
			if (k > n - moved)
				k = n - moved;
			struct iovec one = { (uint8_t *)iov[vi].iov_base + voff, k };
			ssize_t c = wr ? ur_gather_user(bounce + (p - a0) + moved, &one, 1, k)
				       : ur_scatter_user(&one, 1, bounce + (p - a0) + moved, k);
			if (c < 0 || (size_t)c < k) {
				size_t got = c > 0 ? (size_t)c : 0;
				if (!wr)
					return done + moved + got ? (long)(done + moved + got) : -EFAULT;
				moved += got;
				n = moved;
				if (!n)
					return done ? (long)done : -EFAULT;
				break;
			}
			moved += k;
			voff += k;
			if (voff == iov[vi].iov_len) {
				vi++;
				voff = 0;
			}
		}
		if (wr) {
			size_t wspan = ((size_t)(p - a0) + n + lbs - 1) & ~(size_t)(lbs - 1);
			int r = pring_do(IORING_OP_WRITE, fd, (uintptr_t)bounce, (uint32_t)wspan, a0, rwf);
			if (r < 0)
				return done ? (long)done : r;
		}
		done += n;
		if (n < want && moved == n && !wr && span < (size_t)(p - a0) + want)
			break;
	}
	return (long)done;
}

static long blk_rw(struct shim_file *f, int fd, bool wr, const struct iovec *iov, int iovcnt,
		   int64_t off, uint32_t rwf)
{
	if (wr && (f->oflags & O_ACCMODE) == O_RDONLY)
		return -EBADF;
	if (!wr && (f->oflags & O_ACCMODE) == O_WRONLY)
		return -EBADF;
	if (iovcnt < 0 || iovcnt > UR_UIO_MAXIOV)
		return -EINVAL;
	bool use_pos = off < 0;
	long rc = blk_begin();
	if (rc < 0)
		return rc;
	uint64_t pos = use_pos ? atomic_load(&f->pos) : (uint64_t)off;
	if (f->oflags & (O_SYNC | O_DSYNC))
		rwf |= RWF_DSYNC;
	if (f->oflags & O_DIRECT) {
		rc = pring_do(wr ? IORING_OP_WRITEV : IORING_OP_READV, fd, (uintptr_t)iov,
			      (uint32_t)iovcnt, pos, rwf);
	} else {
		rc = buffered_rw(wr, fd, iov, iovcnt, pos, rwf);
	}
	if (rc > 0 && use_pos)
		atomic_store(&f->pos, pos + (uint64_t)rc);
	blk_end();
	return rc;
}

static long blk_sync_op(uint8_t op, int fd, uint32_t len, uint64_t off, uint64_t addr)
{
	long rc = blk_begin();
	if (rc < 0)
		return rc;
	rc = pring_do(op, fd, addr, len, off, 0);
	blk_end();
	return rc;
}

/* BLKDISCARD / BLKZEROOUT: {start, len} in bytes, 512-aligned, inside. */
static long blk_range_ioctl(int fd, unsigned long req, const uint64_t *range)
{
	uint64_t r[2];
	if (ur_copy_from_user(r, (uintptr_t)range, sizeof(r)) < 0)
		return -EFAULT;
	if ((r[0] | r[1]) & 511)
		return -EINVAL;
	long rc = ns_geometry();
	if (rc < 0)
		return rc;
	if (r[0] + r[1] < r[0] || r[0] + r[1] > ns_bytes())
		return -EINVAL;
	if (!r[1])
		return 0;
	int mode = req == BLKZEROOUT ? FALLOC_FL_ZERO_RANGE
				     : FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	/* FALLOCATE's SQE: len in sqe->addr, mode in sqe->len */
	rc = blk_begin();
	if (rc == 0) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&pring);
		io_uring_prep_fallocate(sqe, fd, mode, (off_t)r[0], (off_t)r[1]);
		rc = nvr_uring_submit_and_wait(&pring, 1);
		struct io_uring_cqe *cqe;
		if (rc >= 0 && (rc = io_uring_peek_cqe(&pring, &cqe)) == 0) {
			rc = cqe->res;
			io_uring_cqe_seen(&pring, cqe);
		}
		blk_end();
	}
	return rc;
}

static long put_user(void *dst, const void *src, size_t n)
{
	return ur_copy_to_user((uintptr_t)dst, src, n) < 0 ? -EFAULT : 0;
}

static long blk_ioctl(int fd, unsigned long req, void *argp)
{
	long rc = ns_geometry();
	if (rc < 0)
		return rc;
	uint32_t lbs = ns_info.lba_size;
	switch (req) {
	case BLKGETSIZE64: {
		uint64_t v = ns_bytes();
		return put_user(argp, &v, sizeof(v));
	}
	case BLKGETSIZE: {
		unsigned long v = (unsigned long)(ns_bytes() >> 9);
		return put_user(argp, &v, sizeof(v));
	}
	case BLKSSZGET: {
		int v = (int)lbs;
		return put_user(argp, &v, sizeof(v));
	}
	case BLKPBSZGET:
	case BLKIOMIN: {
		unsigned int v = lbs;
		return put_user(argp, &v, sizeof(v));
	}
	case BLKIOOPT: {
		unsigned int v = ns_info.noiob ? ns_info.noiob * lbs : 0;
		return put_user(argp, &v, sizeof(v));
	}
	case BLKBSZGET: {
		int v = 4096;
		return put_user(argp, &v, sizeof(v));
	}
	case BLKROGET: {
		int v = 0;
		return put_user(argp, &v, sizeof(v));
	}
	case BLKFLSBUF:
		return 0;      /* no page cache to drop */
	case BLKDISCARD:
	case BLKZEROOUT:
		return blk_range_ioctl(fd, req, argp);
	default:
		return -ENOTTY;
	}
}

static long blk_lseek(struct shim_file *f, int64_t off, int whence)
{
	long rc = ns_geometry();
	if (rc < 0)
		return rc;
	int64_t base;
	switch (whence) {
	case SEEK_SET: base = 0; break;
	case SEEK_CUR: base = (int64_t)atomic_load(&f->pos); break;
	case SEEK_END: base = (int64_t)ns_bytes(); break;
	default: return -EINVAL;
	}
	int64_t np = base + off;
	if (np < 0)
		return -EINVAL;
	atomic_store(&f->pos, (uint64_t)np);
	return np;
}

long shim_blk_call(long nr, struct shim_file *f, int fd, const long a[6])
{
	struct iovec one;
	switch (nr) {
	case SYS_read:
	case SYS_write:
		one = (struct iovec){ (void *)a[1], (size_t)a[2] };
		return blk_rw(f, fd, nr == SYS_write, &one, 1, -1, 0);
	case SYS_pread64:
	case SYS_pwrite64:
		if (a[3] < 0)
			return -EINVAL;
		one = (struct iovec){ (void *)a[1], (size_t)a[2] };
		return blk_rw(f, fd, nr == SYS_pwrite64, &one, 1, a[3], 0);
	case SYS_readv:
	case SYS_writev:
	case SYS_preadv:
	case SYS_pwritev:
	case SYS_preadv2:
	case SYS_pwritev2: {
		struct iovec iov[UR_UIO_MAXIOV];
		int n = (int)a[2];
		if (n < 0 || n > UR_UIO_MAXIOV)
			return -EINVAL;
		if (ur_copy_from_user(iov, (uintptr_t)a[1], (size_t)n * sizeof(*iov)) < 0)
			return -EFAULT;
		if (nr == SYS_readv || nr == SYS_writev)
			return blk_rw(f, fd, nr == SYS_writev, iov, n, -1, 0);
		int64_t off = a[3];   /* x86-64: pos_l carries it all */
		uint32_t rwf = 0;
		if (nr == SYS_preadv2 || nr == SYS_pwritev2)
			rwf = (uint32_t)a[5];
		else if (off < 0)
			return -EINVAL;
		if (rwf & ~(uint32_t)(RWF_HIPRI | RWF_DSYNC | RWF_SYNC | RWF_NOWAIT | RWF_APPEND))
			return -EOPNOTSUPP;
		/* NOWAIT: we never block on a lock the kernel would; HIPRI: a
		 * polling hint for a synchronous call (the private ring is not an
		 * IOPOLL ring, where the flag would be refused) */
		rwf &= ~(uint32_t)(RWF_NOWAIT | RWF_HIPRI);
		bool wr = nr == SYS_pwritev || nr == SYS_pwritev2;
		return blk_rw(f, fd, wr, iov, n, off < 0 ? -1 : off, rwf);
	}
	case SYS_lseek:
		return blk_lseek(f, a[1], (int)a[2]);
	case SYS_fsync:
	case SYS_fdatasync:
		return blk_sync_op(IORING_OP_FSYNC, fd, 0, 0, 0);
	case SYS_sync_file_range:
		return blk_sync_op(IORING_OP_FSYNC, fd, 0, 0, 0);
	case SYS_fallocate:
		/* FALLOCATE's SQE: mode in len, offset in off, length in addr */
		return blk_sync_op(IORING_OP_FALLOCATE, fd, (uint32_t)a[1], (uint64_t)a[2],
				   (uint64_t)a[3]);
	case SYS_ioctl:
		return blk_ioctl(fd, (unsigned long)a[1], (void *)a[2]);
	case SYS_fadvise64:
		return 0;
	default:
		return -ENOSYS;
	}
}
