/* SPDX-License-Identifier: MIT */
/*
 * io_uring_register(2): buffers, files, probe, enable (Linux 6.1
 * io_uring/rsrc.c, io_uring/io_uring.c __io_uring_register()).
 *
 * Registered buffers are pinned and mapped for DMA here, once: the page
 * ranges of all buffers are merged (adjacent and overlapping ones become
 * one IOMMU mapping: VFIO allows only 65,535) and each buffer's bus address
 * is recorded, so READ_FIXED/WRITE_FIXED build their data pointer by
 * arithmetic. Memory that is already DMA memory (nvr_dma_alloc()) is used
 * as it is.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>

#include "abi/ring.h"

struct range { uint64_t start, end; };

static int range_cmp(const void *a, const void *b)
{
	const struct range *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

/* Wait until no request of the ring is in flight (the kernel waits for
 * its resource references to drop). Under SQPOLL the caller holds the
 * lock, so the poller is parked meanwhile. */
static void ur_quiesce(struct ur_ring *r)
{
	while (r->active || r->in_device || r->retry.head || r->defer.head || r->done.head)
		ur_reap(r);
}

static void ur_buffers_release(struct ur_ring *r)
{
	for (unsigned i = 0; i < r->nbuf_maps; i++)
		nvr_dma_unregister(r->ctrlr, r->buf_maps[i]);
	free(r->buf_maps);
	free(r->bufs);
	r->buf_maps = NULL;
	r->nbuf_maps = 0;
	r->bufs = NULL;
	r->nbufs = 0;
	r->bufs_registered = false;
}

static int ur_register_buffers(struct ur_ring *r, const struct iovec *iov, unsigned nr)
{
	if (r->bufs_registered)
		return -EBUSY;
	if (!nr || nr > UR_MAX_REG_BUFFERS)
		return -EINVAL;
	if (!iov)
		return -EFAULT;
	struct ur_fixed_buf *bufs = calloc(nr, sizeof(*bufs));
	struct range *rg = calloc(nr, sizeof(*rg));
	void **maps = calloc(nr, sizeof(*maps));
	int ret = 0;
	unsigned nrg = 0, nmaps = 0;
	if (!bufs || !rg || !maps) {
		ret = -ENOMEM;
		goto out;
	}
	for (unsigned i = 0; i < nr; i++) {   /* io_buffer_validate() */
		uint64_t base = (uintptr_t)iov[i].iov_base, len = iov[i].iov_len, end;
		if (!base) {
			if (len) {
				ret = -EFAULT;
				goto out;
			}
			continue;
		}
		if (!len || len > UR_MAX_BUF_LEN) {
			ret = -EFAULT;
			goto out;
		}
		if (__builtin_add_overflow(base, len, &end)) {
			ret = -EOVERFLOW;
			goto out;
		}
		bufs[i].base = base;
		bufs[i].len = len;
		rg[nrg].start = base & ~(uint64_t)(UR_PAGE - 1);
		rg[nrg].end = (end + UR_PAGE - 1) & ~(uint64_t)(UR_PAGE - 1);
		nrg++;
	}
	qsort(rg, nrg, sizeof(*rg), range_cmp);
	unsigned m = 0;
	for (unsigned i = 0; i < nrg; i++) {
		if (m && rg[i].start <= rg[m - 1].end) {
			if (rg[i].end > rg[m - 1].end)
				rg[m - 1].end = rg[i].end;
		} else {
			rg[m++] = rg[i];
		}
	}
	for (unsigned i = 0; i < m; i++) {
		void *va = (void *)(uintptr_t)rg[i].start;
		size_t len = rg[i].end - rg[i].start;
		uint64_t iova;
		if (nvr_dma_iova(r->ctrlr, va, len, &iova) == 0)
			continue;   /* already DMA memory */
		ret = nvr_dma_register(r->ctrlr, va, len);
		if (ret < 0) {
			if (ret != -ENOMEM)
				ret = -EFAULT;   /* the kernel: pinning failed */
			goto out;
		}
		maps[nmaps++] = va;
	}
	for (unsigned i = 0; i < nr; i++) {
		if (!bufs[i].len)
			continue;
		ret = nvr_dma_iova(r->ctrlr, (void *)(uintptr_t)bufs[i].base, bufs[i].len,
				   &bufs[i].iova);
		if (ret < 0) {
			ret = -EFAULT;
			goto out;
		}
	}
	r->bufs = bufs;
	r->nbufs = nr;
	r->buf_maps = maps;
	r->nbuf_maps = nmaps;
	r->bufs_registered = true;
	free(rg);
	return 0;
out:
	for (unsigned i = 0; i < nmaps; i++)
		nvr_dma_unregister(r->ctrlr, maps[i]);
	free(bufs);
	free(rg);
	free(maps);
	return ret;
}

static void ur_files_release(struct ur_ring *r)
{
	for (unsigned i = 0; i < r->nfiles; i++)
		ur_ns_put(r->files[i]);
	free(r->files);
	r->files = NULL;
	r->nfiles = 0;
	r->files_registered = false;
}

static int ur_register_files(struct ur_ring *r, const int32_t *fds, unsigned nr)
{
	if (r->files_registered)
		return -EBUSY;
	if (!nr)
		return -EINVAL;
	struct rlimit rl;
	if (nr > UR_MAX_FIXED_FILES ||
	    (getrlimit(RLIMIT_NOFILE, &rl) == 0 && nr > rl.rlim_cur))
		return -EMFILE;
	struct ur_ns **files = calloc(nr, sizeof(*files));
	if (!files)
		return -ENOMEM;
	for (unsigned i = 0; i < nr; i++) {
		if (!fds || fds[i] == -1)
			continue;   /* sparse slot */
		struct ur_obj *o = ur_fdtab_get(fds[i]);
		if (o && o->kind == UR_RING) {
			r->files = files;
			r->nfiles = i;
			ur_files_release(r);
			return -EBADF;   /* rings can't be registered files */
		}
		files[i] = ur_ns_get(fds[i]);
		if (!files[i] && !o) {
			/* Not ours. An open fd leaves an empty slot (I/O on it
			 * fails with -EBADF; the shim forwards such files to the
			 * kernel); a closed one is -EBADF as in the kernel. */
			if (fcntl(fds[i], F_GETFD) < 0) {
				r->files = files;
				r->nfiles = i;
				ur_files_release(r);
				return -EBADF;
			}
		}
	}
	r->files = files;
	r->nfiles = nr;
	r->files_registered = true;
	return 0;
}

static int ur_probe(void *arg, unsigned nr)
{
	if (!arg)
		return -EFAULT;
	struct io_uring_probe *p = arg;
	size_t size = sizeof(*p) + (size_t)nr * sizeof(p->ops[0]);
	const uint8_t *b = arg;
	for (size_t i = 0; i < size; i++)
		if (b[i])
			return -EINVAL;
	p->last_op = IORING_OP_LAST - 1;
	if (nr > IORING_OP_LAST)
		nr = IORING_OP_LAST;
	for (unsigned i = 0; i < nr; i++) {
		p->ops[i].op = (uint8_t)i;
		if (ur_op_supported(i))
			p->ops[i].flags = IO_URING_OP_SUPPORTED;
	}
	p->ops_len = (uint8_t)nr;
	return 0;
}

NVR_API int nvr_uring_register(int fd, unsigned opcode, void *arg, unsigned nr_args)
{
	int err;
	struct ur_ring *r = ur_ring_get(fd, &err);
	if (!r)
		return err;
	if (opcode >= IORING_REGISTER_LAST)
		return -EINVAL;
	bool sqpoll = r->flags & IORING_SETUP_SQPOLL;
	if (sqpoll)
		pthread_mutex_lock(&r->lock);
	int ret;
	switch (opcode) {
	case IORING_REGISTER_BUFFERS:
		ret = ur_register_buffers(r, arg, nr_args);
		break;
	case IORING_UNREGISTER_BUFFERS:
		if (arg || nr_args) {
			ret = -EINVAL;
			break;
		}
		if (!r->bufs_registered) {
			ret = -ENXIO;
			break;
		}
		ur_quiesce(r);
		ur_buffers_release(r);
		ret = 0;
		break;
	case IORING_REGISTER_FILES:
		ret = ur_register_files(r, arg, nr_args);
		break;
	case IORING_UNREGISTER_FILES:
		if (arg || nr_args) {
			ret = -EINVAL;
			break;
		}
		ret = r->files_registered ? (ur_files_release(r), 0) : -ENXIO;
		break;
	case IORING_REGISTER_PROBE:
		ret = ur_probe(arg, nr_args);
		break;
	case IORING_REGISTER_ENABLE_RINGS:
		if (arg || nr_args) {
			ret = -EINVAL;
			break;
		}
		if (!(r->flags & IORING_SETUP_R_DISABLED)) {
			ret = -EBADFD;
			break;
		}
		r->flags &= ~IORING_SETUP_R_DISABLED;
		atomic_store_explicit(&r->disabled, false, memory_order_release);
		if (sqpoll) {
			pthread_mutex_unlock(&r->lock);
			atomic_fetch_add_explicit(&r->sq_wake, 1, memory_order_release);
			return 0;
		}
		ret = 0;
		break;
	default:
		ret = -EINVAL;   /* not offered here (the kernel knows more) */
		break;
	}
	if (sqpoll)
		pthread_mutex_unlock(&r->lock);
	return ret;
}

void ur_unregister_all(struct ur_ring *r)
{
	if (r->bufs_registered)
		ur_buffers_release(r);
	if (r->files_registered)
		ur_files_release(r);
}
