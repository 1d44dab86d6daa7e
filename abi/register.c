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
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

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
void ur_quiesce(struct ur_ring *r)
{
	/* armed timeouts and forwarded requests hold no resource of ours:
	 * not waited for */
	while (r->active > r->ntimeouts + r->kring_inflight || r->in_device || r->retry.head || r->defer.head ||
	       r->done.head)
		ur_reap(r);
}

static void ur_buffers_release(struct ur_ring *r)
{
	for (unsigned i = 0; i < r->nbufs; i++)
		if (r->bufs[i].len && !r->client)   /* served: nothing was held */
			nvr_dma_unhold(r->ctrlr, (void *)(uintptr_t)r->bufs[i].base);
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

static inline uint64_t page_down(uint64_t a) { return a & ~(uint64_t)(UR_PAGE - 1); }
static inline uint64_t page_up(uint64_t a) { return (a + UR_PAGE - 1) & ~(uint64_t)(UR_PAGE - 1); }

/*
 * Each buffer is classified first: one lying in memory that is already
 * DMA memory (an nvr_dma_alloc() allocation, or a mapping registered by
 * the application or another ring) gets a registration of its own pages
 * there (nvr_dma_register() adds one, or a hold on an allocation); the
 * others are plain memory, and only those are merged into ranges and
 * mapped. Then every buffer takes a hold (nvr_dma_hold()) until
 * IORING_UNREGISTER_BUFFERS: while the ring may send the device there, no
 * one can free or unmap it (they get -EBUSY), so its IOVA is never reused
 * under us.
 */
static int ur_register_buffers(struct ur_ring *r, const void *uarg, unsigned nr)
{
	if (r->bufs_registered)
		return -EBUSY;
	if (!nr || nr > UR_MAX_REG_BUFFERS)
		return -EINVAL;
	if (!uarg)
		return -EFAULT;
	struct iovec *iov = malloc(nr * sizeof(*iov));
	struct ur_fixed_buf *bufs = calloc(nr, sizeof(*bufs));
	struct range *rg = calloc(nr, sizeof(*rg));
	void **maps = calloc(nr, sizeof(*maps));
	int ret = 0;
	unsigned nrg = 0, nmaps = 0, nheld = 0;
	if (!iov || !bufs || !rg || !maps) {
		ret = -ENOMEM;
		goto out;
	}
	if (ur_copy_from_user(iov, (uintptr_t)uarg, nr * sizeof(*iov))) {
		ret = -EFAULT;
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
	}
	if (r->client) {
		/* served (abi/served.h): client memory is never mapped; the
		 * kernel's pinning would fail on pages that are not there */
		for (unsigned i = 0; i < nr; i++) {
			struct iovec v = { (void *)(uintptr_t)bufs[i].base, bufs[i].len };
			if (bufs[i].len && ur_user_prefix(&v, 1, bufs[i].len) != bufs[i].len) {
				ret = -EFAULT;
				goto out;
			}
		}
		nheld = 0;
		goto done;
	}
	for (unsigned i = 0; i < nr; i++) {
		if (!bufs[i].len)
			continue;
		uint64_t lo = page_down(bufs[i].base), hi = page_up(bufs[i].base + bufs[i].len);
		uint64_t iova;
		if (nvr_dma_iova(r->ctrlr, (void *)(uintptr_t)lo, hi - lo, &iova) < 0) {
			rg[nrg++] = (struct range){ lo, hi };   /* plain memory */
			continue;
		}
		ret = nvr_dma_register(r->ctrlr, (void *)(uintptr_t)lo, hi - lo);
		if (ret < 0)
			goto pin_failed;
		maps[nmaps++] = (void *)(uintptr_t)lo;
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
		ret = nvr_dma_register(r->ctrlr, va, rg[i].end - rg[i].start);
		if (ret < 0)
			goto pin_failed;
		maps[nmaps++] = va;
	}
	for (nheld = 0; nheld < nr; nheld++) {
		if (!bufs[nheld].len)
			continue;
		ret = nvr_dma_hold(r->ctrlr, (void *)(uintptr_t)bufs[nheld].base, bufs[nheld].len,
				   &bufs[nheld].iova);
		if (ret < 0) {
			ret = -EFAULT;
			goto out;
		}
	}
done:
	r->bufs = bufs;
	r->nbufs = nr;
	r->buf_maps = maps;
	r->nbuf_maps = nmaps;
	r->bufs_registered = true;
	free(rg);
	free(iov);
	return 0;
pin_failed:
	if (ret != -ENOMEM)
		ret = -EFAULT;   /* the kernel: pinning failed */
out:
	for (unsigned i = 0; i < nheld; i++)
		if (bufs[i].len)
			nvr_dma_unhold(r->ctrlr, (void *)(uintptr_t)bufs[i].base);
	for (unsigned i = 0; i < nmaps; i++)
		nvr_dma_unregister(r->ctrlr, maps[i]);
	free(bufs);
	free(rg);
	free(maps);
	free(iov);
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

static int ur_register_files(struct ur_ring *r, const void *uarg, unsigned nr)
{
	if (r->files_registered)
		return -EBUSY;
	if (!nr)
		return -EINVAL;
	struct rlimit rl;
	if (nr > UR_MAX_FIXED_FILES ||
	    (getrlimit(RLIMIT_NOFILE, &rl) == 0 && nr > rl.rlim_cur))
		return -EMFILE;
	int32_t *fds = NULL;
	if (uarg) {   /* NULL: all slots empty (the kernel's sparse table) */
		fds = malloc(nr * sizeof(*fds));
		if (!fds)
			return -ENOMEM;
		if (ur_copy_from_user(fds, (uintptr_t)uarg, nr * sizeof(*fds))) {
			free(fds);
			return -EFAULT;
		}
	}
	struct ur_ns **files = calloc(nr, sizeof(*files));
	if (!files) {
		free(fds);
		return -ENOMEM;
	}
	int ret = 0;
	for (unsigned i = 0; i < nr; i++) {
		if (!fds || fds[i] == -1)
			continue;   /* sparse slot */
		struct ur_client *cl = ur_ring_client(r);
		if (cl) {
			/* served: the client's namespace descriptors; any other
			 * open file of its leaves an empty slot, as ours do */
			files[i] = ur_client_ns_get(cl, fds[i]);
			if (!files[i]) {
				int dup = ur_client_getfd(cl, fds[i]);
				if (dup < 0) {
					ret = -EBADF;
					goto fail;
				}
				close(dup);
			}
			continue;
		}
		struct ur_obj *o = ur_fdtab_get(fds[i]);
		if (o && o->kind == UR_RING) {
			ret = -EBADF;   /* rings can't be registered files */
			goto fail;
		}
		files[i] = ur_ns_get(fds[i]);
		if (!files[i] && !o) {
			/* Not ours. An open fd leaves an empty slot (I/O on it
			 * fails with -EBADF; the shim forwards such files to the
			 * kernel); a closed one is -EBADF as in the kernel. */
			if (fcntl(fds[i], F_GETFD) < 0) {
				ret = -EBADF;
				goto fail;
			}
		}
	}
	free(fds);
	r->files = files;
	r->nfiles = nr;
	r->files_registered = true;
	return 0;
fail:
	free(fds);
	r->files = files;
	r->nfiles = nr;
	ur_files_release(r);
	return ret;
}

/* io_probe(): the argument must be zero on entry (-EINVAL); read and
 * written through uaccess.c, so a bad pointer is -EFAULT. */
/* nvring's own opcodes, and what the hidden kernel ring takes for other
 * files (not on IOPOLL rings, which forward nothing). */
static int ur_probe(struct ur_ring *r, void *arg, unsigned nr)
{
	if (!arg)
		return -EFAULT;
	if (nr > IORING_OP_LAST)
		nr = IORING_OP_LAST;   /* the kernel reads and writes only these */
	_Alignas(struct io_uring_probe) uint8_t buf[sizeof(struct io_uring_probe) +
						     IORING_OP_LAST * sizeof(struct io_uring_probe_op)];
	struct io_uring_probe *p = (struct io_uring_probe *)buf;
	size_t size = sizeof(*p) + (size_t)nr * sizeof(p->ops[0]);
	if (ur_copy_from_user(buf, (uintptr_t)arg, size))
		return -EFAULT;
	for (size_t i = 0; i < size; i++)
		if (buf[i])
			return -EINVAL;
	p->last_op = IORING_OP_LAST - 1;
	for (unsigned i = 0; i < nr; i++) {
		p->ops[i].op = (uint8_t)i;
		if (ur_op_supported(i) || ur_kring_op_supported(r, i))
			p->ops[i].flags = IO_URING_OP_SUPPORTED;
	}
	p->ops_len = (uint8_t)nr;
	return ur_copy_to_user((uintptr_t)arg, buf, size);
}

/* ---- eventfd (io_uring/io_uring.c io_eventfd_register, 6.1) ---- */

/* After CQEs were published: 1 to the eventfd, unless the application set
 * IORING_CQ_EVENTFD_DISABLED. The kernel signals _ASYNC eventfds only for
 * completions an io-wq worker posts; nvring has none, as the kernel has
 * none for a block device's reads and writes. */
void ur_eventfd_signal(struct ur_ring *r)
{
	r->eventfd_tail = r->cq_tail;
	if (r->eventfd_async)
		return;
	_Atomic uint32_t *cq_flags = (_Atomic uint32_t *)(r->cq_ring + 40);  /* cq_off.flags */
	if (atomic_load_explicit(cq_flags, memory_order_relaxed) & IORING_CQ_EVENTFD_DISABLED)
		return;
	uint64_t one = 1;
	ssize_t w = write(r->eventfd, &one, sizeof(one));
	(void)w;      /* EAGAIN at the counter's maximum: the kernel drops it too */
}

static int ur_register_eventfd(struct ur_ring *r, void *arg, unsigned nr, bool async)
{
	if (nr != 1)
		return -EINVAL;
	if (r->eventfd >= 0)
		return -EBUSY;
	int efd;
	if (ur_copy_from_user(&efd, (uintptr_t)arg, sizeof(efd)))
		return -EFAULT;
	struct ur_client *cl = ur_ring_client(r);
	int taken = -1;
	if (cl) {
		/* served: the client's eventfd, taken into this process */
		taken = ur_client_getfd(cl, efd);
		if (taken < 0)
			return -EBADF;
		efd = taken;
	}
	char link[64], target[64];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", efd);
	ssize_t n = efd >= 0 ? readlink(link, target, sizeof(target) - 1) : -1;
	if (n < 0 || (target[n] = 0, strcmp(target, "anon_inode:[eventfd]"))) {
		if (taken >= 0)
			close(taken);
		return n < 0 ? -EBADF : -EINVAL;   /* eventfd_ctx_fdget(): not an eventfd */
	}
	/* the kernel holds the eventfd itself: the program may close its fd */
	int dup = taken >= 0 ? taken : fcntl(efd, F_DUPFD_CLOEXEC, 0);
	if (dup < 0)
		return -errno;
	r->eventfd_tail = r->cq_tail;
	r->eventfd_async = async;
	r->eventfd = dup;
	return 0;
}

static int ur_unregister_eventfd(struct ur_ring *r, void *arg, unsigned nr)
{
	if (arg || nr)
		return -EINVAL;
	if (r->eventfd < 0)
		return -ENXIO;
	close(r->eventfd);
	r->eventfd = -1;
	return 0;
}

NVR_API int nvr_uring_register(int fd, unsigned opcode, void *arg, unsigned nr_args)
{
	int err;
	struct ur_ring *r = ur_ring_get(fd, &err);
	if (!r)   /* or a ring an owner serves (client.c) */
		return ur_remote_register(fd, opcode, arg, nr_args, err);
	if (opcode >= IORING_REGISTER_LAST)
		return -EINVAL;
	/* the ring's lock: the SQPOLL poller parks, and on other rings a
	 * thread in enter waits its turn (the kernel's uring_lock) */
	bool sqpoll = r->flags & IORING_SETUP_SQPOLL;
	ur_lock(&r->lock);
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
		if (!r->files_registered) {
			ret = -ENXIO;
			break;
		}
		ur_quiesce(r);   /* requests use fixed files without a reference */
		ur_files_release(r);
		ret = 0;
		break;
	case IORING_REGISTER_EVENTFD:
	case IORING_REGISTER_EVENTFD_ASYNC:
		ret = ur_register_eventfd(r, arg, nr_args, opcode == IORING_REGISTER_EVENTFD_ASYNC);
		break;
	case IORING_UNREGISTER_EVENTFD:
		ret = ur_unregister_eventfd(r, arg, nr_args);
		break;
	case IORING_REGISTER_PROBE:
		ret = ur_probe(r, arg, nr_args);
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
		ur_unlock(&r->lock);
		if (sqpoll)
			ur_sq_wakeup(r);   /* the poller may be asleep since setup */
		return 0;
	default:
		ret = -EINVAL;   /* not offered here (the kernel knows more) */
		break;
	}
	ur_unlock(&r->lock);
	return ret;
}

void ur_unregister_all(struct ur_ring *r)
{
	if (r->eventfd >= 0) {
		close(r->eventfd);
		r->eventfd = -1;
	}
	if (r->bufs_registered)
		ur_buffers_release(r);
	if (r->files_registered)
		ur_files_release(r);
}
