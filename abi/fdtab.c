/* SPDX-License-Identifier: MIT */
/*
 * The fd table: which fd numbers are our rings and namespace descriptors.
 * Both are real fds (memfds), so their numbers never clash with other
 * files; this table only says which of them are ours. Lookups are
 * lock-free (one acquire load per level); insertion and removal take a
 * mutex (setup/close only), and so does taking a namespace reference
 * (ur_ns_get()). Rings are looked up lock-free: a ring is closed by its
 * owner, never while another thread is entering it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "abi/ring.h"
#include "driver/ctrlr.h"

#define FDTAB_PAGE   UR_FDTAB_PAGE
#define FDTAB_PAGES  UR_FDTAB_PAGES

_Atomic(ur_fdslot_t *) ur_fdtab[FDTAB_PAGES];   /* read inline by ur_fdtab_get() (ring.h) */
static pthread_mutex_t fdtab_lock = PTHREAD_MUTEX_INITIALIZER;

int ur_fdtab_put(struct ur_obj *o)
{
	unsigned fd = (unsigned)o->fd;
	if (o->fd < 0 || fd >= FDTAB_PAGE * FDTAB_PAGES)
		return -EMFILE;
	pthread_mutex_lock(&fdtab_lock);
	ur_fdslot_t *page = atomic_load_explicit(&ur_fdtab[fd / FDTAB_PAGE], memory_order_relaxed);
	if (!page) {
		page = calloc(FDTAB_PAGE, sizeof(*page));
		if (!page) {
			pthread_mutex_unlock(&fdtab_lock);
			return -ENOMEM;
		}
		/* release: the zeroed page before its pointer */
		atomic_store_explicit(&ur_fdtab[fd / FDTAB_PAGE], page, memory_order_release);
	}
	/* release: the object's fields before the pointer readers follow */
	atomic_store_explicit(&page[fd % FDTAB_PAGE], o, memory_order_release);
	pthread_mutex_unlock(&fdtab_lock);
	return 0;
}


void ur_fdtab_del(int fd)
{
	if (fd < 0 || (unsigned)fd >= FDTAB_PAGE * FDTAB_PAGES)
		return;
	pthread_mutex_lock(&fdtab_lock);
	ur_fdslot_t *page = atomic_load_explicit(&ur_fdtab[fd / FDTAB_PAGE], memory_order_relaxed);
	if (page)
		atomic_store_explicit(&page[fd % FDTAB_PAGE], NULL, memory_order_release);
	pthread_mutex_unlock(&fdtab_lock);
}

/* Lookup and reference under fdtab_lock: nvr_ns_close() removes the
 * entry under the same lock before it drops the table's reference, so an
 * object found here is not freed before our increment. (A lock-free
 * lookup could follow the pointer just as the closer frees it.) One
 * uncontended mutex round trip per non-fixed SQE; fixed files take none. */
struct ur_ns *ur_ns_get(int fd)
{
	pthread_mutex_lock(&fdtab_lock);
	struct ur_obj *o = ur_fdtab_get(fd);
	if (o && o->kind == UR_NS)
		atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
	else
		o = NULL;
	pthread_mutex_unlock(&fdtab_lock);
	return (struct ur_ns *)o;
}

void ur_ns_put(struct ur_ns *ns)
{
	/* acq_rel: the last user's accesses happen before the free */
	if (ns && atomic_fetch_sub_explicit(&ns->obj.refs, 1, memory_order_acq_rel) == 1)
		free(ns);
}

int ur_ns_make(struct nvr_ctrlr *ctrlr, uint32_t nsid, struct ur_ns **out)
{
	struct nvr_ns_info info;
	int ret = nvr_ns_get_info(ctrlr, nsid, &info);
	if (ret < 0)
		return ret;
	if (!info.lba_size || (info.lba_size & (info.lba_size - 1)))
		return -EINVAL;

	struct ur_ns *ns = calloc(1, sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	ns->ctrlr = ctrlr;
	ns->dns = nvr_ctrlr_find_ns(ctrlr, nsid);   /* found: nvr_ns_get_info() succeeded */
	ns->nsid = nsid;
	ns->lba_size = info.lba_size;
	ns->lba_shift = (uint32_t)__builtin_ctz(info.lba_size);
	ns->bytes = info.nlba << ns->lba_shift;
	ns->dlfeat = info.dlfeat;
	ns->obj.kind = UR_NS;
	atomic_init(&ns->obj.refs, 1);
	atomic_init(&ns->fpos, 0);
	*out = ns;
	return 0;
}

/* A served controller: the owner must know what our @fd stands for. On
 * failure the descriptor is unbound again. */
static int ns_tell_owner(struct nvr_ctrlr *ctrlr, int fd, uint32_t nsid)
{
	ur_client_hook(ctrlr);
	int ret = ur_remote_ns_bind(ctrlr, fd, nsid);
	if (ret < 0)
		nvr_ns_close(fd);
	return ret;
}

NVR_API int nvr_ns_open(struct nvr_ctrlr *ctrlr, uint32_t nsid)
{
	struct ur_ns *ns;
	int ret = ur_ns_make(ctrlr, nsid, &ns);
	if (ret < 0)
		return ret;

	/* A memfd as large as the namespace (sparse): fstat() then shows the
	 * size, and the number is a real, unique fd. */
	int fd = ur_memfd("nvring-ns");
	if (fd < 0) {
		free(ns);
		return fd;
	}
	if (ftruncate(fd, (off_t)ns->bytes) < 0) {
		/* size is cosmetic; keep going */
	}
	ns->obj.fd = fd;
	ns->own_fd = true;
	ret = ur_fdtab_put(&ns->obj);
	if (ret < 0) {
		close(fd);
		free(ns);
		return ret;
	}
	if (nvr_ctrlr_is_remote(ctrlr)) {
		ret = ns_tell_owner(ctrlr, fd, nsid);
		if (ret < 0)
			return ret;
	}
	return fd;
}

NVR_API int nvr_ns_bind(struct nvr_ctrlr *ctrlr, uint32_t nsid, int fd)
{
	if (fd < 0 || fcntl(fd, F_GETFD) < 0)
		return -EBADF;
	struct ur_ns *ns;
	int ret = ur_ns_make(ctrlr, nsid, &ns);
	if (ret < 0)
		return ret;
	ns->obj.fd = fd;
	pthread_mutex_lock(&fdtab_lock);
	struct ur_obj *old = ur_fdtab_get(fd);
	pthread_mutex_unlock(&fdtab_lock);
	if (old) {
		free(ns);
		return -EEXIST;
	}
	ret = ur_fdtab_put(&ns->obj);
	if (ret < 0) {
		free(ns);
		return ret;
	}
	return nvr_ctrlr_is_remote(ctrlr) ? ns_tell_owner(ctrlr, fd, nsid) : 0;
}

NVR_API int nvr_ns_close(int fd)
{
	/* look up and unpublish in one critical section (see ur_ns_get()) */
	pthread_mutex_lock(&fdtab_lock);
	struct ur_obj *o = ur_fdtab_get(fd);
	if (!o || o->kind != UR_NS) {
		pthread_mutex_unlock(&fdtab_lock);
		return -EBADF;
	}
	ur_fdslot_t *page = atomic_load_explicit(&ur_fdtab[fd / FDTAB_PAGE], memory_order_relaxed);
	atomic_store_explicit(&page[fd % FDTAB_PAGE], NULL, memory_order_release);
	pthread_mutex_unlock(&fdtab_lock);
	struct nvr_ctrlr *c = ((struct ur_ns *)o)->ctrlr;
	if (c && nvr_ctrlr_is_remote(c))
		ur_remote_ns_unbind(c, fd);
	if (((struct ur_ns *)o)->own_fd)
		close(fd);
	ur_ns_put((struct ur_ns *)o);
	return 0;
}

NVR_API int nvr_uring_is_ring(int fd)
{
	struct ur_obj *o = ur_fdtab_get(fd);
	return o && (o->kind == UR_RING || o->kind == UR_RRING);
}

NVR_API int nvr_uring_is_ns(int fd)
{
	struct ur_obj *o = ur_fdtab_get(fd);
	return o && o->kind == UR_NS;
}

/* The fd floor (nvr_uring_set_fd_floor): 0 = wherever the kernel puts it. */
static _Atomic int ur_fd_floor;

NVR_API int nvr_uring_set_fd_floor(int floor)
{
	if (floor < 0)
		return -EINVAL;
	atomic_store_explicit(&ur_fd_floor, floor, memory_order_relaxed);
	return 0;
}

int ur_memfd(const char *name)
{
	return ur_memfd_flags(name, 0);
}

int ur_memfd_flags(const char *name, unsigned flags)
{
	int fd = memfd_create(name, MFD_CLOEXEC | flags);
	if (fd < 0)
		return -errno;
	return ur_fd_raise(fd);
}

int ur_fd_raise(int fd)
{
	int floor = atomic_load_explicit(&ur_fd_floor, memory_order_relaxed);
	if (floor > 0 && fd < floor) {
		int hi = fcntl(fd, F_DUPFD_CLOEXEC, floor);
		int err = -errno;
		close(fd);
		if (hi < 0)
			return err;
		fd = hi;
	}
	return fd;
}

struct ur_ring *ur_ring_get_fail(int fd, const struct ur_obj *o, int *err)
{
	/* the kernel: -EBADF for no file, -EOPNOTSUPP for a file that is
	 * not an io_uring */
	if (!o)
		*err = fcntl(fd, F_GETFD) < 0 ? -EBADF : -EOPNOTSUPP;
	else
		*err = -EOPNOTSUPP;
	return NULL;
}
