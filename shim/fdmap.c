/* SPDX-License-Identifier: MIT */
/*
 * Which of the program's descriptors are ours: rings (the library's ring
 * fd, and dup()s of it) and block-device descriptors of the namespace.
 * Each number points to a struct shim_file, the open file description,
 * shared by dup()s and counted. Lookups are lock-free (one acquire load);
 * changes take a mutex.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "nvring/uring.h"
#include "shim/shim.h"

static _Atomic(struct shim_file *) table[SHIM_MAX_FD];
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

struct shim_file *shim_fd_get(int fd)
{
	if (fd < 0 || fd >= SHIM_MAX_FD)
		return NULL;
	/* acquire: pairs with the release in shim_fd_set(): f's fields first */
	return atomic_load_explicit(&table[fd], memory_order_acquire);
}

int shim_fd_set(int fd, struct shim_file *f)
{
	if (fd < 0 || fd >= SHIM_MAX_FD)
		return -EMFILE;
	atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
	pthread_mutex_lock(&table_lock);
	struct shim_file *old = atomic_load_explicit(&table[fd], memory_order_relaxed);
	atomic_store_explicit(&table[fd], f, memory_order_release);
	pthread_mutex_unlock(&table_lock);
	/* A number we had lost track of (closed behind our back) is reused:
	 * the old description goes, it never leaks into the new file. */
	if (old)
		shim_file_put(old);
	return 0;
}

struct shim_file *shim_fd_take(int fd)
{
	if (fd < 0 || fd >= SHIM_MAX_FD)
		return NULL;
	pthread_mutex_lock(&table_lock);
	struct shim_file *f = atomic_load_explicit(&table[fd], memory_order_relaxed);
	atomic_store_explicit(&table[fd], NULL, memory_order_release);
	pthread_mutex_unlock(&table_lock);
	return f;
}

void shim_file_put(struct shim_file *f)
{
	/* acq_rel: every user's accesses happen before the release below */
	if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (f->kind == SHIM_RING && f->lib_fd >= 0) {
		nvr_uring_close(f->lib_fd);
		shim_ring_count(-1);
	}
	free(f);
}

void shim_fd_each(void (*fn)(int fd, struct shim_file *f, void *arg), void *arg)
{
	pthread_mutex_lock(&table_lock);
	for (int fd = 0; fd < SHIM_MAX_FD; fd++) {
		struct shim_file *f = atomic_load_explicit(&table[fd], memory_order_relaxed);
		if (f)
			fn(fd, f, arg);
	}
	pthread_mutex_unlock(&table_lock);
}

/* A fork child of a process that kept the controller: the rings are the
 * parent's (their memory, queue pair and DMA mappings), so the child
 * forgets them without closing anything of the parent's; its copies of the
 * ring fds are closed. Block descriptors stay (unbound). Runs in the child
 * right after fork, one thread, so no lock is needed beyond the table's. */
void shim_fd_forget_all(void)
{
	for (int fd = 0; fd < SHIM_MAX_FD; fd++) {
		struct shim_file *f = atomic_load_explicit(&table[fd], memory_order_relaxed);
		if (f && f->kind == SHIM_RING) {
			atomic_store_explicit(&table[fd], NULL, memory_order_relaxed);
			close(fd);
		}
	}
}
