/* SPDX-License-Identifier: MIT */
/*
 * The shim on the software controller: this program is linked with the
 * shim's objects, so its own libc calls are interposed as a preloaded
 * program's are. Checked: the namespace as a block device (stat, ioctls,
 * O_DIRECT rules, buffered I/O of any alignment against a reference copy,
 * the end of the device, lseek), liburing's exported functions and
 * syscall() on nvring rings, descriptors (dup shares, close releases, a
 * reused number is never ours), and error paths.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <liburing.h>

#include "driver/ctrlr.h"
#include "nvring/uring.h"
#include "shim/shim.h"
#include "tests/model/nvme_model.h"

#define PATH   "/dev/nvring-test0n1"
#define BLOCKS 4096u               /* 2 MiB of 512-byte blocks */

static struct nvme_model *model;
static uint8_t *ref;               /* what the namespace must hold */

static int model_attach(const char *bdf, struct nvr_ctrlr **out)
{
	struct nvr_pci_dev *dev;
	struct nvme_model_cfg cfg = { .ns_blocks = BLOCKS, .vwc = true };
	(void)bdf;
	int rc = nvme_model_create(&cfg, &model, &dev);
	if (rc < 0)
		return rc;
	return nvr_ctrlr_attach_dev(dev, NULL, out);
}

static uint64_t rng = 0x5eed;
static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static int setup(void **state)
{
	(void)state;
	shim_attach_fn = model_attach;
	shim_configure("model", PATH);
	ref = calloc(1, BLOCKS * 512);
	return ref ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	int rc = shim_detach();
	if (model)
		nvme_model_destroy(model);
	free(ref);
	return rc;
}

static void test_stat_and_ioctls(void **state)
{
	(void)state;
	struct stat st;
	assert_int_equal(stat(PATH, &st), 0);
	assert_true(S_ISBLK(st.st_mode));
	assert_int_equal(st.st_blksize, 4096);
	assert_int_equal(access(PATH, R_OK | W_OK), 0);
	int fd = open(PATH, O_RDWR | O_DIRECT | O_CLOEXEC);
	assert_true(fd >= shim_fd_floor);
	struct stat fst;
	assert_int_equal(fstat(fd, &fst), 0);
	assert_true(S_ISBLK(fst.st_mode));
	assert_int_equal(fst.st_rdev, st.st_rdev);
	uint64_t size = 0;
	int ssz = 0, ro = 1;
	unsigned pbs = 0;
	assert_int_equal(ioctl(fd, BLKGETSIZE64, &size), 0);
	assert_int_equal(size, BLOCKS * 512ull);
	assert_int_equal(ioctl(fd, BLKSSZGET, &ssz), 0);
	assert_int_equal(ssz, 512);
	assert_int_equal(ioctl(fd, BLKPBSZGET, &pbs), 0);
	assert_int_equal(pbs, 512);
	assert_int_equal(ioctl(fd, BLKROGET, &ro), 0);
	assert_int_equal(ro, 0);
	assert_int_equal(ioctl(fd, BLKFLSBUF, 0), 0);
	assert_int_equal(ioctl(fd, 0x1234, 0), -1);
	assert_int_equal(errno, ENOTTY);
	assert_int_equal(ioctl(fd, BLKGETSIZE64, (void *)8), -1);
	assert_int_equal(errno, EFAULT);
	assert_int_equal(fcntl(fd, F_GETFL) & O_DIRECT, O_DIRECT);
	assert_int_equal(lseek(fd, 0, SEEK_END), (off_t)size);
	assert_int_equal(lseek(fd, -1, SEEK_SET), -1);
	assert_int_equal(errno, EINVAL);
	/* other paths are not ours */
	assert_int_equal(stat("/dev/nvring-test0n2", &st), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(close(fd), 0);
	assert_null(shim_fd_get(fd));
}

static void test_direct_io(void **state)
{
	(void)state;
	int fd = open(PATH, O_RDWR | O_DIRECT);
	assert_true(fd >= 0);
	uint8_t *buf = NULL, *rd = NULL;
	assert_int_equal(posix_memalign((void **)&buf, 4096, 65536), 0);
	assert_int_equal(posix_memalign((void **)&rd, 4096, 65536), 0);
	for (unsigned i = 0; i < 65536; i++)
		buf[i] = (uint8_t)next();
	assert_int_equal(pwrite(fd, buf, 65536, 8192), 65536);
	memcpy(ref + 8192, buf, 65536);
	memset(rd, 0, 65536);
	assert_int_equal(pread(fd, rd, 65536, 8192), 65536);
	assert_memory_equal(rd, buf, 65536);
	/* O_DIRECT: misaligned offset or length is -EINVAL, as Linux's blkdev */
	assert_int_equal(pread(fd, rd, 512, 100), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(pread(fd, rd, 100, 0), -1);
	assert_int_equal(errno, EINVAL);
	/* the end: a read is short, at the end 0; a write there -ENOSPC */
	uint64_t end = BLOCKS * 512ull;
	assert_int_equal(pread(fd, rd, 4096, (off_t)end - 1024), 1024);
	assert_int_equal(pread(fd, rd, 4096, (off_t)end), 0);
	/* vectored, and the file position */
	struct iovec iov[2] = { { rd, 4096 }, { rd + 4096, 4096 } };
	assert_int_equal(lseek(fd, 8192, SEEK_SET), 8192);
	assert_int_equal(readv(fd, iov, 2), 8192);
	assert_memory_equal(rd, buf, 8192);
	assert_int_equal(lseek(fd, 0, SEEK_CUR), 16384);
	assert_int_equal(preadv2(fd, iov, 2, 8192, RWF_HIPRI), 8192);
	/* a bad buffer is -EFAULT, not a crash */
	assert_int_equal(pwrite(fd, (void *)4096, 4096, 0), -1);
	assert_int_equal(errno, EFAULT);
	assert_int_equal(fsync(fd), 0);
	assert_int_equal(fdatasync(fd), 0);
	close(fd);
	free(buf);
	free(rd);
}

static void test_buffered_any_alignment(void **state)
{
	(void)state;
	int fd = open(PATH, O_RDWR);
	assert_true(fd >= 0);
	uint8_t *buf = malloc(70000), *rd = malloc(70000);
	for (int round = 0; round < 64; round++) {
		size_t len = 1 + next() % 70000;
		uint64_t off = next() % (BLOCKS * 512ull - len);
		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)next();
		assert_int_equal(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
		memcpy(ref + off, buf, len);
		size_t rlen = 1 + next() % 70000;
		uint64_t roff = next() % (BLOCKS * 512ull - rlen);
		assert_int_equal(pread(fd, rd, rlen, (off_t)roff), (ssize_t)rlen);
		assert_memory_equal(rd, ref + roff, rlen);
	}
	/* and the whole device read back through O_DIRECT */
	int dfd = open(PATH, O_RDONLY | O_DIRECT);
	uint8_t *all = NULL;
	assert_int_equal(posix_memalign((void **)&all, 4096, BLOCKS * 512), 0);
	assert_int_equal(pread(dfd, all, BLOCKS * 512, 0), BLOCKS * 512);
	assert_memory_equal(all, ref, BLOCKS * 512);
	/* writing through a read-only descriptor */
	assert_int_equal(pwrite(dfd, all, 512, 0), -1);
	assert_int_equal(errno, EBADF);
	/* a buffered write at the end is -ENOSPC, one crossing it is short */
	assert_int_equal(pwrite(fd, buf, 10, BLOCKS * 512), -1);
	assert_int_equal(errno, ENOSPC);
	assert_int_equal(pwrite(fd, buf, 10, BLOCKS * 512 - 3), 3);
	memcpy(ref + BLOCKS * 512 - 3, buf, 3);
	close(dfd);
	close(fd);
	free(all);
	free(buf);
	free(rd);
}

static void test_discard_zeroout(void **state)
{
	(void)state;
	int fd = open(PATH, O_RDWR);
	uint64_t range[2] = { 4096, 8192 };
	assert_int_equal(ioctl(fd, BLKZEROOUT, range), 0);
	memset(ref + 4096, 0, 8192);
	uint8_t rd[8192];
	assert_int_equal(pread(fd, rd, sizeof(rd), 4096), 8192);
	assert_memory_equal(rd, ref + 4096, 8192);
	uint64_t bad[2] = { 100, 512 };
	assert_int_equal(ioctl(fd, BLKDISCARD, bad), -1);
	assert_int_equal(errno, EINVAL);
	uint64_t past[2] = { BLOCKS * 512ull - 512, 1024 };
	assert_int_equal(ioctl(fd, BLKZEROOUT, past), -1);
	assert_int_equal(errno, EINVAL);
	close(fd);
}

static void test_liburing_on_nvring(void **state)
{
	(void)state;
	int fd = open(PATH, O_RDWR | O_DIRECT);
	struct io_uring ring;
	assert_int_equal(io_uring_queue_init(8, &ring, 0), 0);
	assert_non_null(shim_fd_get(ring.ring_fd));
	uint8_t *w = NULL, *r = NULL;
	assert_int_equal(posix_memalign((void **)&w, 4096, 8192), 0);
	assert_int_equal(posix_memalign((void **)&r, 4096, 8192), 0);
	for (int i = 0; i < 8192; i++)
		w[i] = (uint8_t)next();
	struct iovec iov = { w, 8192 };
	assert_int_equal(io_uring_register_buffers(&ring, &iov, 1), 0);
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
	io_uring_prep_write_fixed(sqe, fd, w, 8192, 65536, 0);
	sqe->flags |= IOSQE_IO_LINK;
	sqe->user_data = 1;
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_read(sqe, fd, r, 8192, 65536);
	sqe->user_data = 2;
	assert_int_equal(io_uring_submit_and_wait(&ring, 2), 2);
	struct io_uring_cqe *cqe;
	for (unsigned ud = 1; ud <= 2; ud++) {
		assert_int_equal(io_uring_wait_cqe(&ring, &cqe), 0);
		assert_int_equal(cqe->user_data, ud);
		assert_int_equal(cqe->res, 8192);
		io_uring_cqe_seen(&ring, cqe);
	}
	assert_memory_equal(w, r, 8192);
	memcpy(ref + 65536, w, 8192);
	/* nothing pending: a timed wait times out */
	struct __kernel_timespec ts = { 0, 1000000 };
	assert_int_equal(io_uring_wait_cqe_timeout(&ring, &cqe, &ts), -ETIME);
	/* the probe says what a block device gets */
	struct io_uring_probe *p = io_uring_get_probe_ring(&ring);
	assert_non_null(p);
	assert_true(io_uring_opcode_supported(p, IORING_OP_READV));
	io_uring_free_probe(p);
	int rfd = ring.ring_fd;
	io_uring_queue_exit(&ring);
	assert_null(shim_fd_get(rfd));
	assert_int_equal(fcntl(rfd, F_GETFD), -1);   /* closed */
	close(fd);
	free(w);
	free(r);
}

static void test_raw_syscalls(void **state)
{
	(void)state;
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	int rfd = (int)syscall(__NR_io_uring_setup, 4, &p);
	assert_true(rfd >= shim_fd_floor);
	assert_int_equal(p.sq_entries, 4);
	/* the program maps the rings itself */
	void *sq = mmap(NULL, p.sq_off.array + 4 * 4, PROT_READ | PROT_WRITE, MAP_SHARED, rfd,
			IORING_OFF_SQ_RING);
	assert_true(sq != MAP_FAILED);
	munmap(sq, p.sq_off.array + 4 * 4);
	assert_int_equal(syscall(__NR_io_uring_enter, rfd, 0, 0, 0, NULL, 0), 0);
	assert_int_equal(syscall(__NR_io_uring_register, rfd, 9999, NULL, 0), -1);
	assert_int_equal(errno, EINVAL);
	/* a dup is the same ring; closing the original leaves it usable */
	int d = dup(rfd);
	assert_true(d >= 0);
	assert_ptr_equal(shim_fd_get(d), shim_fd_get(rfd));
	assert_int_equal(close(rfd), 0);
	assert_int_equal(syscall(__NR_io_uring_enter, d, 0, 0, 0, NULL, 0), 0);
	assert_int_equal(close(d), 0);
	assert_null(shim_fd_get(d));
	/* a new file given the old number is not a ring */
	int m = memfd_create("x", 0);
	assert_int_equal(dup2(m, d), d);
	assert_null(shim_fd_get(d));
	assert_int_equal(syscall(__NR_io_uring_enter, d, 0, 0, 0, NULL, 0), -1);
	assert_int_equal(errno, EOPNOTSUPP);   /* the kernel's answer for a non-ring */
	close(d);
	close(m);
	/* non-io_uring calls pass through */
	assert_int_equal(syscall(SYS_getpid), getpid());
}

static void test_dup_shares_position(void **state)
{
	(void)state;
	int fd = open(PATH, O_RDONLY);
	int d = dup(fd);
	assert_true(d >= 0);
	uint8_t a[512], b[512];
	assert_int_equal(read(fd, a, 512), 512);
	assert_int_equal(lseek(d, 0, SEEK_CUR), 512);   /* one open file */
	assert_int_equal(close(fd), 0);
	assert_int_equal(read(d, b, 512), 512);
	assert_memory_equal(a, ref, 512);
	assert_memory_equal(b, ref + 512, 512);
	int e = fcntl(d, F_DUPFD_CLOEXEC, 0);
	assert_true(e >= 0);
	assert_int_equal(fcntl(e, F_GETFD), FD_CLOEXEC);
	struct stat st;
	assert_int_equal(fstat(e, &st), 0);
	assert_true(S_ISBLK(st.st_mode));
	close(e);
	close(d);
	/* close_range releases ours in the range */
	int g = open(PATH, O_RDONLY);
	assert_non_null(shim_fd_get(g));
	assert_int_equal(close_range((unsigned)g, (unsigned)g, 0), 0);
	assert_null(shim_fd_get(g));
	assert_int_equal(fcntl(g, F_GETFD), -1);
	/* a ring SQE naming a closed descriptor: -EBADF */
	struct io_uring ring;
	assert_int_equal(io_uring_queue_init(2, &ring, 0), 0);
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
	io_uring_prep_read(sqe, d, a, 512, 0);
	assert_int_equal(io_uring_submit(&ring), 1);
	struct io_uring_cqe *cqe;
	assert_int_equal(io_uring_wait_cqe(&ring, &cqe), 0);
	assert_int_equal(cqe->res, -EBADF);
	io_uring_cqe_seen(&ring, cqe);
	io_uring_queue_exit(&ring);
}

/* exec: a descriptor without O_CLOEXEC is found again by the new image's
 * shim, with its flags and file position (simulated: the table forgets it,
 * as a fresh image starts, then adopts what /proc/self/fd shows). */
static void test_exec_keeps_descriptor(void **state)
{
	(void)state;
	int fd = open(PATH, O_RDONLY | O_DIRECT);
	int cl = open(PATH, O_RDONLY | O_CLOEXEC);
	assert_int_equal(lseek(fd, 4096, SEEK_SET), 4096);
	shim_blk_exec_prepare();
	struct shim_file *f = shim_fd_take(fd);
	assert_non_null(f);
	nvr_ns_close(fd);
	shim_file_put(f);
	assert_null(shim_fd_get(fd));
	shim_blk_adopt();
	f = shim_fd_get(fd);
	assert_non_null(f);
	assert_int_equal(f->oflags & (O_ACCMODE | O_DIRECT), O_RDONLY | O_DIRECT);
	assert_int_equal(lseek(fd, 0, SEEK_CUR), 4096);
	uint8_t *b = NULL;
	assert_int_equal(posix_memalign((void **)&b, 4096, 512), 0);
	assert_int_equal(read(fd, b, 512), 512);       /* bound again on use */
	assert_memory_equal(b, ref + 4096, 512);
	free(b);
	close(fd);
	close(cl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stat_and_ioctls),
		cmocka_unit_test(test_direct_io),
		cmocka_unit_test(test_buffered_any_alignment),
		cmocka_unit_test(test_discard_zeroout),
		cmocka_unit_test(test_liburing_on_nvring),
		cmocka_unit_test(test_raw_syscalls),
		cmocka_unit_test(test_dup_shares_position),
		cmocka_unit_test(test_exec_keeps_descriptor),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
