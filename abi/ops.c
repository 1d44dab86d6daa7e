/* SPDX-License-Identifier: MIT */
/*
 * Opcodes on a namespace: what the kernel does for the same SQE on the
 * namespace opened as a block device with O_DIRECT (Linux 6.1:
 * io_uring/rw.c, fs/read_write.c rw_verify_area(), block/fops.c
 * blkdev_read_iter()/blkdev_write_iter()/blkdev_direct_IO()/
 * blkdev_fallocate(), fs/open.c vfs_fallocate()), and the device commands
 * that carry them out.
 *
 * Data of non-fixed READ/WRITE/READV/WRITEV goes through a bounce buffer
 * from the ring's pre-mapped DMA pool (abi/bounce.c): copied in before a
 * write, out after a read, by process_vm_readv/writev (abi/uaccess.c), so
 * a bad user pointer is -EFAULT or a short transfer, as in the kernel. Why bounce and not map-on-demand: the IOMMU maps
 * whole pages, so mapping an application buffer exposes its neighbours on
 * the same pages to the device for as long as the mapping lives (the brief
 * forbids it), a mapping costs an ioctl (VFIO_IOMMU_MAP_DMA, microseconds)
 * while copying 4 KiB costs ~0.1-0.2 µs, and a cache of mappings must be
 * invalidated when the application unmaps memory, which we cannot see.
 * Programs that want zero copy register their buffers (READ_FIXED /
 * WRITE_FIXED build segments by arithmetic, nothing is mapped per I/O).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "abi/ring.h"
#include "driver/qpair.h"

/* linux/fs.h RWF_* (the 6.1 set, RWF_SUPPORTED). */
#define UR_RWF_HIPRI   0x01
#define UR_RWF_DSYNC   0x02
#define UR_RWF_SYNC    0x04
#define UR_RWF_NOWAIT  0x08
#define UR_RWF_APPEND  0x10
#define UR_RWF_SUPPORTED (UR_RWF_HIPRI | UR_RWF_DSYNC | UR_RWF_SYNC | UR_RWF_NOWAIT | UR_RWF_APPEND)

/* linux/falloc.h */
#define UR_FL_KEEP_SIZE       0x01
#define UR_FL_PUNCH_HOLE      0x02
#define UR_FL_NO_HIDE_STALE   0x04
#define UR_FL_COLLAPSE_RANGE  0x08
#define UR_FL_ZERO_RANGE      0x10
#define UR_FL_INSERT_RANGE    0x20
#define UR_FL_UNSHARE_RANGE   0x40
#define UR_FL_SUPPORTED (UR_FL_KEEP_SIZE | UR_FL_PUNCH_HOLE | UR_FL_COLLAPSE_RANGE | \
			 UR_FL_ZERO_RANGE | UR_FL_INSERT_RANGE | UR_FL_UNSHARE_RANGE)
#define UR_BLKDEV_FL_SUPPORTED (UR_FL_KEEP_SIZE | UR_FL_PUNCH_HOLE | UR_FL_ZERO_RANGE | \
				UR_FL_NO_HIDE_STALE)

/* NVMe's queue limits in the kernel: data addresses need dword alignment
 * (nvme core sets blk_queue_dma_alignment(q, 3), Linux >= 6.0); lengths
 * and offsets need the logical block size. */
#define UR_DMA_ALIGN_MASK 3u

static inline bool ur_access_ok(uint64_t addr, uint64_t len)
{
	return addr <= UR_TASK_SIZE_MAX && len <= UR_TASK_SIZE_MAX - addr;
}

/*
 * Import the data description (io_import_iovec()): at submission for
 * chain members after the head (the kernel's io_req_prep_async()), at
 * issue for the others. Fills req->iov/iovcnt and req->want.
 */
int ur_import(struct ur_ring *r, struct ur_req *req)
{
	uint8_t op = req->opcode;
	if (req->sqe_flags & IOSQE_BUFFER_SELECT) {
		/* Only READ and READV get here (io_init_req() refuses the
		 * flag elsewhere; READV's iovec was checked at prep); no
		 * buffers are ever provided, so selection fails. */
		return -ENOBUFS;
	}
	if (ur_op_is_fixed(op)) {
		const struct ur_fixed_buf *b = &r->bufs[req->buf_index];
		uint64_t end;
		if (__builtin_add_overflow(req->addr, (uint64_t)req->len, &end))
			return -EFAULT;
		if (!b->len || req->addr < b->base || end > b->base + b->len)
			return -EFAULT;
		req->iov = req->iov_inline;
		req->iov_inline[0].iov_base = (void *)(uintptr_t)req->addr;
		req->iov_inline[0].iov_len = req->len;
		req->iovcnt = 1;
		req->want = req->len;
		return 0;
	}
	if (op == IORING_OP_READ || op == IORING_OP_WRITE) {
		uint32_t len = req->len > UR_MAX_RW_COUNT ? UR_MAX_RW_COUNT : req->len;
		if (!ur_access_ok(req->addr, len))
			return -EFAULT;
		req->iov = req->iov_inline;
		req->iov_inline[0].iov_base = (void *)(uintptr_t)req->addr;
		req->iov_inline[0].iov_len = len;
		req->iovcnt = 1;
		req->want = len;
		return 0;
	}
	/* READV / WRITEV */
	uint32_t n = req->len;
	if (n > UR_UIO_MAXIOV)
		return -EINVAL;
	req->iovcnt = (int)n;
	req->want = 0;
	if (!n) {
		req->iov = req->iov_inline;
		return 0;
	}
	if (!ur_access_ok(req->addr, (uint64_t)n * sizeof(struct iovec)))
		return -EFAULT;
	struct iovec *iov = req->iov_inline;
	if (n > sizeof(req->iov_inline) / sizeof(req->iov_inline[0])) {
		iov = malloc(n * sizeof(*iov));   /* rare: more than 8 segments */
		if (!iov)
			return -ENOMEM;
	}
	req->iov = iov;   /* freed with the request, also on error */
	if (ur_copy_from_user(iov, req->addr, n * sizeof(*iov)))
		return -EFAULT;
	for (uint32_t i = 0; i < n; i++)
		if ((ssize_t)iov[i].iov_len < 0)
			return -EINVAL;
	uint64_t total = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t len = iov[i].iov_len;
		if (!ur_access_ok((uintptr_t)iov[i].iov_base, len))
			return -EFAULT;
		if (len > UR_MAX_RW_COUNT - total) {
			len = UR_MAX_RW_COUNT - total;
			iov[i].iov_len = len;
		}
		total += len;
	}
	req->want = (uint32_t)total;
	return 0;
}

/* Resolve sqe->fd (io_assign_file()): -EBADF if it names no namespace of
 * this ring's controller. A fixed file is used without a reference: the
 * file table outlives every request that uses it (IORING_UNREGISTER_FILES
 * waits for them, as the kernel's quiesce does). */
static int ur_assign_file(struct ur_ring *r, struct ur_req *req)
{
	if (req->ns)
		return 0;
	if (req->sqe_flags & IOSQE_FIXED_FILE) {
		if ((uint32_t)req->fd >= r->nfiles || !r->files[req->fd])
			return -EBADF;
		req->ns = r->files[req->fd];
	} else {
		struct ur_client *cl = ur_ring_client(r);
		req->ns = cl ? ur_client_ns_get(cl, req->fd) : ur_ns_get(req->fd);
		if (!req->ns)
			return -EBADF;
		req->rflags |= UR_F_NS_REF;
	}
	if (req->ns->ctrlr != r->ctrlr)
		return -EBADF;
	return 0;
}

/* Linux 6.1's blkdev_direct_IO() takes one of two paths by the pages the
 * user iovecs span (iov_iter_npages(), after the truncation at the end of
 * the device): up to BIO_MAX_VECS (256) one bio, where a fault shortens
 * the transfer to the whole blocks pinned before it (nothing pinned:
 * -EFAULT); beyond, __blkdev_direct_IO() and a bio per 256 pages, where a
 * fault fails the bio being built with BLK_STS_IOERR after the bios
 * before it went to the device: the prefix is read or written and the
 * result is -EIO (measured in the guest: a 5 MiB WRITE from NULL is -EIO,
 * a 32 KiB one -EFAULT). */
#define UR_BIO_MAX_VECS 256

static bool ur_multi_bio(const struct ur_req *req, uint32_t count)
{
	if (ur_op_is_fixed(req->opcode))
		return false;   /* a bvec iterator: one bio of its own */
	uint64_t pages = 0;
	for (int i = 0; i < req->iovcnt && count && pages <= UR_BIO_MAX_VECS; i++) {
		uint64_t len = req->iov[i].iov_len < count ? req->iov[i].iov_len : count;
		if (!len)
			continue;
		uint64_t off = (uintptr_t)req->iov[i].iov_base & 4095;
		pages += (off + len + 4095) >> 12;
		count -= (uint32_t)len;
	}
	return pages > UR_BIO_MAX_VECS;
}

/* A fault cut @req's transfer to @n bytes (0: nothing): the result the
 * kernel gives for it, or 0 to go on with the shorter transfer. */
static int ur_fault_cut(struct ur_req *req, uint32_t count, ssize_t n)
{
	bool multi = ur_multi_bio(req, count);
	if (n <= 0)
		return multi ? -EIO : -EFAULT;
	if (multi)
		req->rflags |= UR_F_FAULT_EIO;
	return 0;
}

/* The block device's O_DIRECT alignment check (blkdev_dio_unaligned()):
 * offset and every segment's length a multiple of the logical block size,
 * every segment's address dword aligned. A fixed buffer is a list of
 * pages (bio_vecs) in the kernel, so its segments break at 4 KiB. */
static bool ur_dio_aligned(const struct ur_req *req, uint64_t pos, uint32_t count, uint32_t lbs)
{
	uint32_t lmask = lbs - 1;
	if (pos & lmask)
		return false;
	bool fixed = ur_op_is_fixed(req->opcode);
	for (int i = 0; i < req->iovcnt && count; i++) {
		uint64_t a = (uintptr_t)req->iov[i].iov_base;
		uint64_t len = req->iov[i].iov_len < count ? req->iov[i].iov_len : count;
		count -= (uint32_t)len;
		/* iov_iter_aligned_iovec(): an empty segment before the last
		 * byte still needs an aligned address (measured in the guest,
		 * Linux 6.1: READV with a 0-byte segment at an address 2 past
		 * a page boundary between full ones is -EINVAL) */
		if (!len && (a & UR_DMA_ALIGN_MASK))
			return false;
		while (len) {
			uint64_t piece = len;
			if (fixed && piece > UR_PAGE - (a & (UR_PAGE - 1)))
				piece = UR_PAGE - (a & (UR_PAGE - 1));
			if ((piece & lmask) || (a & UR_DMA_ALIGN_MASK))
				return false;
			a += piece;
			len -= piece;
		}
	}
	return true;
}

static void ur_io_done(void *arg, const struct nvr_cpl *cpl);

/* Blocks per nvr_io() for Write Zeroes/Deallocate (nlb is 32 bits; the
 * driver splits further at its own limits). */
#define UR_NLB_MAX 0xffff8000u

/*
 * Send @req's next device command: the whole transfer of a read or write
 * in one nvr_io() (the driver splits it at max_xfer and queues the parts),
 * a Write Zeroes/Deallocate range, a flush, or the next piece of an
 * emulated Write Zeroes. Returns -EAGAIN when the queue pair has no free
 * request slot or the bounce pool no free run (the caller queues it for
 * retry; nothing is held meanwhile), another negative errno to fail it.
 */
static int ur_start_io(struct ur_ring *r, struct ur_req *req)
{
	if (r->in_device >= r->qdepth)
		return -EAGAIN;   /* every nvr_io() takes one request slot */
	struct nvr_seg segs[UR_NVR_MAX_SEGS];
	unsigned nseg = 0;
	uint64_t nlb = 0;
	uint32_t shift = req->ns->lba_shift;
	if (req->rflags & UR_F_ZERO_FILL) {
		uint64_t max = ((uint64_t)UR_NVR_MAX_SEGS * UR_ZERO_BYTES) >> shift;
		nlb = req->nlb_left < max ? req->nlb_left : max;
		for (uint64_t left = nlb << shift; left; nseg++) {
			segs[nseg].iova = r->zero_iova;
			segs[nseg].len = left < UR_ZERO_BYTES ? (uint32_t)left : UR_ZERO_BYTES;
			left -= segs[nseg].len;
		}
	} else if (req->dev_op == NVR_IO_READ || req->dev_op == NVR_IO_WRITE) {
		if (ur_op_is_fixed(req->opcode) && !r->client) {
			const struct ur_fixed_buf *b = &r->bufs[req->buf_index];
			segs[0].iova = b->iova + (req->addr - b->base);
		} else {
			/* (a served ring's fixed buffers are client memory,
			 * never mapped: they bounce too, abi/served.h) */
			int ret = ur_pool_get(r, req, req->xfer);
			if (ret < 0)
				return ret;
			if (!req->is_read) {
				/* copy in; a fault shortens the write to the
				 * whole blocks before it (see ur_issue_rw()) */
				ssize_t n = ur_gather_user(req->dma, req->iov, req->iovcnt, req->xfer);
				if (n >= 0)
					n &= ~(ssize_t)(req->ns->lba_size - 1);
				int cut = (uint32_t)n < req->xfer || n <= 0 ?
					  ur_fault_cut(req, req->xfer, n) : 0;
				if (cut < 0) {
					ur_pool_put(r, req);
					return cut;
				}
				req->xfer = (uint32_t)n;
			}
			segs[0].iova = req->dma_iova;
		}
		segs[0].len = req->xfer;
		nseg = 1;
		nlb = req->nlb_left = req->xfer >> shift;
	} else if (req->dev_op != NVR_IO_FLUSH) {
		nlb = req->nlb_left < UR_NLB_MAX ? req->nlb_left : UR_NLB_MAX;
	}
	int ret = nvr_io(r->qp, (enum nvr_io_op)req->dev_op, req->ns->nsid, req->lba,
			 (uint32_t)nlb, segs, nseg, ur_io_done, req);
	if (ret < 0) {
		if (req->dma)
			ur_pool_put(r, req);   /* hold nothing while not in the device */
		return ret;
	}
	req->chunk = (uint32_t)nlb;
	r->in_device++;
	return 0;
}

/* Start @req now, or queue it behind others waiting for room. */
static void ur_start_or_queue(struct ur_ring *r, struct ur_req *req)
{
	int ret = r->retry.head ? -EAGAIN : ur_start_io(r, req);
	if (ret == -EAGAIN)
		ur_q_push(&r->retry, req);
	else if (ret < 0)
		ur_complete(r, req, ret);
}

/* Start waiting requests in order; the first that still finds no room
 * stops the pass (in-device requests free slots and pool pages as they
 * complete, so it will find room). */
void ur_retry_issue(struct ur_ring *r)
{
	struct ur_req *req;
	while ((req = r->retry.head)) {
		int ret = ur_start_io(r, req);
		if (ret == -EAGAIN)
			break;
		ur_q_pop(&r->retry);
		if (ret < 0)
			ur_complete(r, req, ret);
	}
}

/* Device callback: runs inside nvr_qpair_poll(). Copies a bounced read
 * out, gives the bounce memory back, and either queues the request's next
 * command (for ur_retry_issue()) or completes it (for ur_finish_done()). */
static void ur_io_done(void *arg, const struct nvr_cpl *cpl)
{
	struct ur_req *req = arg;
	struct ur_ring *r = req->ring;
	int res = cpl->res;
	r->in_device--;
	if (res < 0)
		goto complete;
	if (req->dev_op == NVR_IO_FLUSH) {
		res = ur_op_is_rw(req->opcode) ? (int)req->xfer : 0;
		if (req->rflags & UR_F_FAULT_EIO)
			res = -EIO;
		goto complete;
	}
	req->nlb_left -= req->chunk;
	req->lba += req->chunk;
	if (req->nlb_left) {
		ur_q_push(&r->retry, req);
		return;
	}
	if (req->dma && req->is_read) {
		/* copy out; a fault shortens the read (see ur_issue_rw()) */
		ssize_t n = ur_scatter_user(req->iov, req->iovcnt, req->dma, req->xfer);
		if (n >= 0)
			n &= ~(ssize_t)(req->ns->lba_size - 1);
		if (n <= 0 || (uint32_t)n < req->xfer) {
			res = ur_fault_cut(req, req->xfer, n);
			if (res < 0)
				goto complete;
		}
		req->xfer = (uint32_t)n;
	}
	if (req->dma)
		ur_pool_put(r, req);
	if (req->flush_after) {
		req->dev_op = NVR_IO_FLUSH;
		ur_q_push(&r->retry, req);
		return;
	}
	res = ur_op_is_rw(req->opcode) ? (int)req->xfer : 0;
	if (req->rflags & UR_F_FAULT_EIO)
		res = -EIO;
complete:
	if (req->dma)
		ur_pool_put(r, req);
	ur_complete_io(r, req, res);
}

static void ur_issue_rw(struct ur_ring *r, struct ur_req *req)
{
	int ret = ur_assign_file(r, req);
	if (ret < 0)
		goto fail;
	if (req->rflags & UR_F_HAS_ERR) {
		ret = req->err;
		goto fail;
	}
	if (!req->iov) {
		ret = ur_import(r, req);
		if (ret < 0)
			goto fail;
	}
	if (req->rw_flags & ~UR_RWF_SUPPORTED) {
		ret = -EOPNOTSUPP;
		goto fail;
	}
	/* io_rw_init_file(): measured in the guest, Linux 6.1: RWF_HIPRI
	 * on a ring without IORING_SETUP_IOPOLL is -EINVAL */
	if ((req->rw_flags & UR_RWF_HIPRI) && !(r->flags & IORING_SETUP_IOPOLL)) {
		ret = -EINVAL;
		goto fail;
	}
	struct ur_ns *ns = req->ns;
	req->is_read = req->opcode == IORING_OP_READ || req->opcode == IORING_OP_READV ||
		       req->opcode == IORING_OP_READ_FIXED;
	uint64_t pos = req->off;
	if (pos == UINT64_MAX) {
		req->rflags |= UR_F_CUR_POS;
		pos = atomic_load_explicit(&ns->fpos, memory_order_relaxed);
	}
	uint32_t count = req->want;
	/* rw_verify_area() */
	if ((int64_t)pos < 0 || (int64_t)(pos + count) < 0) {
		ret = -EINVAL;
		goto fail;
	}
	req->pos = pos;
	if (req->is_read) {
		if (pos + count > ns->bytes) {
			if (pos >= ns->bytes) {
				ret = 0;
				goto fail;
			}
			count = (uint32_t)(ns->bytes - pos);
		}
		if (!count) {
			ret = 0;
			goto fail;
		}
	} else {
		if (!count) {
			ret = 0;
			goto fail;
		}
		if (pos >= ns->bytes) {
			ret = -ENOSPC;
			goto fail;
		}
		if (pos + count > ns->bytes)
			count = (uint32_t)(ns->bytes - pos);
	}
	if (!ur_dio_aligned(req, pos, count, ns->lba_size)) {
		ret = -EINVAL;
		goto fail;
	}
	if (req->is_read && !ur_op_is_fixed(req->opcode)) {
		/* Pinning the user pages (bio_iov_iter_get_pages()) stops at
		 * the first page that faults; the bio carries the whole blocks
		 * pinned before it, and nothing pinned is -EFAULT. Measured in
		 * the guest, Linux 6.1: WRITEV of 2560 + 1024 + 512 bytes whose
		 * last segment is NULL returns 3584 (a short write); a fault in
		 * the first segment is -EFAULT. Writes find the fault when
		 * they copy in (ur_start_io()); reads when they copy out
		 * (ur_io_done()), which is exact when every segment starts on
		 * a block boundary (a fault then falls on one). Otherwise the
		 * copy out would write a partial block the kernel leaves
		 * alone, so such reads probe their pages first. (The probe
		 * reads: a readable but read-only page found only at the copy
		 * out still gets the part of a block before it written.) */
		uint32_t lmask = ns->lba_size - 1, left = count;
		bool probe = false;
		for (int i = 0; i < req->iovcnt && left && !probe; i++) {
			uint32_t n = req->iov[i].iov_len < left ? (uint32_t)req->iov[i].iov_len : left;
			probe = n && ((uintptr_t)req->iov[i].iov_base & lmask);
			left -= n;
		}
		if (probe) {
			uint32_t n = (uint32_t)ur_user_prefix(req->iov, req->iovcnt, count) & ~lmask;
			if (n < count && (ret = ur_fault_cut(req, count, n)) < 0)
				goto fail;
			count = n;
		}
	}
	req->xfer = count;
	req->dev_op = req->is_read ? NVR_IO_READ : NVR_IO_WRITE;
	req->lba = pos >> ns->lba_shift;
	req->flush_after = !req->is_read && r->vwc && (req->rw_flags & (UR_RWF_DSYNC | UR_RWF_SYNC));
	ur_start_or_queue(r, req);
	return;
fail:
	ur_complete(r, req, ret);
}

static void ur_issue_fsync(struct ur_ring *r, struct ur_req *req)
{
	int ret = ur_assign_file(r, req);
	if (!ret)
		req->rflags |= UR_F_NO_FAIL;   /* see ur_finish_one() */
	if (ret < 0 || !r->vwc) {
		/* no volatile cache: nothing to commit (the block layer
		 * completes an empty flush at once) */
		ur_complete(r, req, ret < 0 ? ret : 0);
		return;
	}
	req->dev_op = NVR_IO_FLUSH;
	ur_start_or_queue(r, req);
}

/* vfs_fallocate() then blkdev_fallocate(), Linux 6.1. */
static void ur_issue_fallocate(struct ur_ring *r, struct ur_req *req)
{
	int ret = ur_assign_file(r, req);
	if (ret < 0)
		goto fail;
	req->rflags |= UR_F_NO_FAIL;   /* see ur_finish_one() */
	int64_t start = (int64_t)req->off, len = (int64_t)req->addr;
	uint32_t mode = req->len;
	if (start < 0 || len <= 0) {
		ret = -EINVAL;
		goto fail;
	}
	if (mode & ~UR_FL_SUPPORTED) {
		ret = -EOPNOTSUPP;
		goto fail;
	}
	if ((mode & (UR_FL_PUNCH_HOLE | UR_FL_ZERO_RANGE)) == (UR_FL_PUNCH_HOLE | UR_FL_ZERO_RANGE) ||
	    ((mode & UR_FL_PUNCH_HOLE) && !(mode & UR_FL_KEEP_SIZE))) {
		ret = -EOPNOTSUPP;
		goto fail;
	}
	if (((mode & UR_FL_COLLAPSE_RANGE) && (mode & ~UR_FL_COLLAPSE_RANGE)) ||
	    ((mode & UR_FL_INSERT_RANGE) && (mode & ~UR_FL_INSERT_RANGE)) ||
	    ((mode & UR_FL_UNSHARE_RANGE) && (mode & ~(UR_FL_UNSHARE_RANGE | UR_FL_KEEP_SIZE)))) {
		ret = -EINVAL;
		goto fail;
	}
	uint64_t sum;
	if (__builtin_add_overflow((uint64_t)start, (uint64_t)len, &sum) || (int64_t)sum < 0) {
		ret = -EFBIG;
		goto fail;
	}
	if (mode & ~UR_BLKDEV_FL_SUPPORTED) {
		ret = -EOPNOTSUPP;
		goto fail;
	}
	struct ur_ns *ns = req->ns;
	if ((uint64_t)start >= ns->bytes) {
		ret = -EINVAL;
		goto fail;
	}
	if ((uint64_t)start + (uint64_t)len - 1 >= ns->bytes) {
		if (!(mode & UR_FL_KEEP_SIZE)) {
			ret = -EINVAL;
			goto fail;
		}
		len = (int64_t)(ns->bytes - (uint64_t)start);
	}
	if (((uint64_t)start | (uint64_t)len) & (ns->lba_size - 1)) {
		ret = -EINVAL;
		goto fail;
	}
	const struct nvr_ctrlr_info *ci = nvr_ctrlr_get_info(r->ctrlr);
	switch (mode) {
	case UR_FL_ZERO_RANGE:
	case UR_FL_ZERO_RANGE | UR_FL_KEEP_SIZE:
	case UR_FL_PUNCH_HOLE | UR_FL_KEEP_SIZE:
		/* Both are blkdev_issue_zeroout(): Write Zeroes. PUNCH_HOLE
		 * lets the device deallocate: Linux's nvme driver sets DEAC
		 * when DLFEAT says deallocated blocks read as zeroes and
		 * Write Zeroes may deallocate ((dlfeat & 7) == 1 and bit 3);
		 * so do we. Reads return zeroes either way. Without Write
		 * Zeroes, ZERO_RANGE falls back to writing zero pages;
		 * PUNCH_HOLE (BLKDEV_ZERO_NOFALLBACK) does not. */
		req->dev_op = NVR_IO_WRITE_ZEROES;
		if ((mode & UR_FL_PUNCH_HOLE) && (ns->dlfeat & 7) == 1 && (ns->dlfeat & 8))
			req->dev_op = NVR_IO_WRITE_ZEROES_DEAC;
		if (ci && ci->write_zeroes)
			break;
		if (mode & UR_FL_PUNCH_HOLE) {
			ret = -EOPNOTSUPP;
			goto fail;
		}
		ret = ur_zero_buf_get(r);
		if (ret < 0)
			goto fail;
		req->dev_op = NVR_IO_WRITE;
		req->rflags |= UR_F_ZERO_FILL;
		break;
	case UR_FL_PUNCH_HOLE | UR_FL_KEEP_SIZE | UR_FL_NO_HIDE_STALE:
		/* unreachable through vfs_fallocate() in 6.1; kept for
		 * completeness: a discard */
		if (!ci || !ci->dsm) {
			ret = -EOPNOTSUPP;
			goto fail;
		}
		req->dev_op = NVR_IO_DEALLOCATE;
		break;
	default:
		ret = -EOPNOTSUPP;
		goto fail;
	}
	req->lba = (uint64_t)start >> ns->lba_shift;
	req->nlb_left = (uint64_t)len >> ns->lba_shift;
	ur_start_or_queue(r, req);
	return;
fail:
	ur_complete(r, req, ret);
}

/* Device callback of what ur_submit_fixed() sent: ur_io_done() for one
 * command on a fixed buffer (no bounce memory, no flush after, no
 * further chunk), which reduces to the transfer's size or the error. */
static void ur_fixed_done(void *arg, const struct nvr_cpl *cpl)
{
	struct ur_req *req = arg;
	struct ur_ring *r = req->ring;
	r->in_device--;
	ur_complete_io(r, req, cpl->res < 0 ? cpl->res : (int)req->xfer);
}

/*
 * The common SQE in one step: READ_FIXED/WRITE_FIXED on a registered file
 * with no other flag, no ioprio/rw_flags/personality, whole blocks inside
 * one registered buffer and inside the namespace, with no link being
 * built and nothing drained or deferred. For it, ur_init_req(),
 * ur_import() and ur_issue_rw() can only succeed and reach
 * ur_start_or_queue() with the fields set below; this decides that from
 * the SQE alone and sets them directly. Returns false, having changed
 * nothing, for any other SQE (the general path then decides, errors
 * included).
 */
bool ur_submit_fixed(struct ur_ring *r, struct ur_req *req, const struct io_uring_sqe *sqe)
{
	uint8_t op = sqe->opcode;
	if (!ur_op_is_fixed(op) || sqe->flags != IOSQE_FIXED_FILE || r->client)
		return false;
	if (r->link_head || r->drain_next || r->defer.head)
		return false;   /* joins a chain, or waits: ur_submit_sqe() and ur_queue() */
	if (sqe->ioprio || sqe->rw_flags || sqe->personality)
		return false;
	uint16_t bi = sqe->buf_index;
	uint32_t fd = (uint32_t)sqe->fd;
	if (bi >= r->nbufs || fd >= r->nfiles)
		return false;
	struct ur_ns *ns = r->files[fd];
	if (!ns || ns->ctrlr != r->ctrlr)
		return false;
	const struct ur_fixed_buf *b = &r->bufs[bi];
	uint64_t addr = sqe->addr, off = sqe->off;
	uint32_t len = sqe->len, lmask = ns->lba_size - 1;
	/* ur_import(): inside the buffer (an empty slot has len 0) */
	if (!len || addr < b->base || len > b->len || addr - b->base > b->len - len)
		return false;
	/* ur_dio_aligned(): with address, length and offset whole blocks of
	 * at most a page, every page piece is whole blocks too */
	if (ns->lba_size > UR_PAGE || ((addr | len | off) & lmask))
		return false;
	/* rw_verify_area() and the device's end: all of it, no short count
	 * (offset -1, the file position, fails this too) */
	if (off >= ns->bytes || len > ns->bytes - off)
		return false;

	req->opcode = op;
	req->sqe_flags = IOSQE_FIXED_FILE;
	req->user_data = sqe->user_data;
	req->fd = (int32_t)fd;
	req->off = off;
	req->buf_index = bi;
	req->addr = addr;
	req->len = len;
	req->iov = req->iov_inline;
	req->iov_inline[0] = (struct iovec){ (void *)(uintptr_t)addr, len };
	req->iovcnt = 1;
	req->want = len;
	req->ns = ns;
	req->is_read = op == IORING_OP_READ_FIXED;
	req->pos = off;
	req->xfer = len;
	req->dev_op = req->is_read ? NVR_IO_READ : NVR_IO_WRITE;
	req->lba = off >> ns->lba_shift;
	req->flush_after = false;
	r->active++;   /* ur_queue() */
	if (r->retry.head || r->in_device >= r->qdepth) {
		ur_start_or_queue(r, req);   /* waits its turn: ur_start_io() later */
		return true;
	}
	/* ur_start_io() for a fixed buffer: IOVA by arithmetic (the buffer
	 * was mapped and held at registration), and the driver's entry for
	 * what was checked above (driver/qpair.h: nvr_io()'s result without
	 * its lookup and generic checks) */
	uint32_t nlb = len >> ns->lba_shift;
	req->nlb_left = nlb;
	int ret = nvr_io_ring_rw(r->qp, ns->dns, req->is_read, req->lba, len,
				 b->iova + (addr - b->base), ur_fixed_done, req);
	if (ret < 0) {
		if (ret == -EAGAIN)
			ur_q_push(&r->retry, req);
		else
			ur_complete(r, req, ret);
		return true;
	}
	req->chunk = nlb;
	r->in_device++;
	return true;
}

void ur_issue(struct ur_ring *r, struct ur_req *req)
{
	/* a LINK_TIMEOUT right behind it starts its timer now */
	if (req->link && req->link->opcode == IORING_OP_LINK_TIMEOUT)
		ur_link_timeout_arm(r, req);
	if (req->rflags & UR_F_KRING) {
		ur_kring_issue(r, req);
		return;
	}
	switch (req->opcode) {
	case IORING_OP_NOP:
		ur_complete(r, req, 0);
		return;
	case IORING_OP_READ:
	case IORING_OP_WRITE:
	case IORING_OP_READV:
	case IORING_OP_WRITEV:
	case IORING_OP_READ_FIXED:
	case IORING_OP_WRITE_FIXED:
		ur_issue_rw(r, req);
		return;
	case IORING_OP_FSYNC:
		ur_issue_fsync(r, req);
		return;
	case IORING_OP_FALLOCATE:
		ur_issue_fallocate(r, req);
		return;
	case IORING_OP_TIMEOUT:
	case IORING_OP_TIMEOUT_REMOVE:
	case IORING_OP_LINK_TIMEOUT:
	case IORING_OP_ASYNC_CANCEL:
		ur_timeout_issue(r, req);
		return;
	default:
		ur_complete(r, req, -EOPNOTSUPP);
		return;
	}
}
