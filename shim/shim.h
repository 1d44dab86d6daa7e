/* SPDX-License-Identifier: MIT */
/*
 * shim/ — the LD_PRELOAD library (build/lib/libnvring-preload.so) that puts
 * unmodified io_uring programs on nvring. Internal interface between its
 * layers; nothing here is exported.
 *
 * Layers, fastest first:
 *   liburing.c  liburing's exported functions (a)
 *   syscall.c   libc syscall() (b), and the libc file calls on our
 *               descriptors (close, dup*, the block device path)
 *   patch.c     inline `syscall` instructions rewritten at load to jump
 *               to a stub (c); trap.c: the seccomp SIGSYS net behind it
 * Every layer ends in shim_dispatch(); what it does not claim goes to the
 * kernel through shim_raw_syscall(), whose one `syscall` instruction lies
 * in [shim_raw_begin, shim_raw_end) so that the seccomp filter lets it by.
 */
#ifndef NVRING_SHIM_H
#define NVRING_SHIM_H

#include <stdatomic.h>
#include <stdbool.h>

/* The real system call, from the shim's own instruction (raw.c). Returns
 * what the kernel returns (-errno on failure; errno untouched). */
long shim_raw_syscall(long nr, long a0, long a1, long a2, long a3, long a4, long a5);
extern const char shim_raw_begin[], shim_raw_end[];

/* One intercepted system call, raw convention (a negative errno on failure).
 * Returns true with *ret set when the shim handled it; false when it is not
 * ours and must go to the kernel unchanged. Safe from a SIGSYS handler. */
bool shim_dispatch(long nr, const long a[6], long *ret);

/* The lowest fd number the shim gives its rings and namespace descriptors
 * (nvr_uring_set_fd_floor); the trap filter catches close/dup on these. */
extern int shim_fd_floor;

/* patch.c / trap.c: set up at load, after the fd floor is known. */
int shim_patch_init(void);   /* patch known inline io_uring sites; count or -errno */
int shim_trap_init(void);    /* install the seccomp net; 0 or -errno */

#endif

/* ---- preload.c: configuration, the controller, the real libc ---- */

#include <limits.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "nvring/nvring.h"

struct shim_cfg {
	bool on;                  /* a device is configured: rings are ours */
	char bdf[32];             /* NVRING_DEVICE=BDF[/NSID] */
	uint32_t nsid;            /* default 1 */
	char path[PATH_MAX];      /* NVRING_PATH, default /dev/nvring0n1 */
};
extern struct shim_cfg shim_cfg;

/* The attached controller, attaching first when needed (and binding every
 * open block-device descriptor to it). 0 or a negative errno; one log line
 * says why on failure (in use by which process, not bound, memlock). */
int  shim_ctrlr_get(struct nvr_ctrlr **out);
struct nvr_ctrlr *shim_ctrlr_peek(void);
int  shim_detach(void);      /* let the controller go; -EBUSY with live rings */
/* Configure as the environment would (NVRING_DEVICE, NVRING_PATH); the
 * constructor calls it, unit tests too. */
void shim_configure(const char *dev, const char *path);
/* How the controller is attached: nvr_ctrlr_attach(); tests put a model here. */
extern int (*shim_attach_fn)(const char *bdf, struct nvr_ctrlr **out);   /* attached controller or NULL */
void shim_ring_count(int delta);           /* live program rings */
void shim_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void shim_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* libc's own functions, behind ours (dlsym RTLD_NEXT, resolved on first use). */
void *shim_real_cached(void **slot, const char *name);
/* REAL(close)(fd): libc's close, whatever we define. Needs SHIM_REAL_DECL(close). */
#define SHIM_REAL_DECL(name) static void *shim_real_##name
#define REAL(name) ((__typeof__(&name))shim_real_cached(&shim_real_##name, #name))

/* ---- fdmap.c: the program's descriptors that are ours ---- */

enum shim_kind { SHIM_RING = 1, SHIM_BLK = 2 };

/* An open file description: shared by dup()s, as the kernel's struct file. */
struct shim_file {
	_Atomic int refs;
	enum shim_kind kind;
	int lib_fd;               /* RING: the library's ring fd */
	uint32_t nsid;            /* BLK */
	int oflags;               /* BLK: O_ACCMODE | O_DIRECT | O_APPEND | ... */
	_Atomic uint64_t pos;     /* BLK: the file position */
};

#define SHIM_MAX_FD 65536
struct shim_file *shim_fd_get(int fd);          /* lock-free; NULL if not ours */
int  shim_fd_set(int fd, struct shim_file *f);  /* takes a reference on f */
struct shim_file *shim_fd_take(int fd);         /* unpublish; caller drops the ref */
void shim_file_put(struct shim_file *f);        /* last ref: releases a ring */
/* Call fn on every descriptor that is ours (under the table lock). */
void shim_fd_each(void (*fn)(int fd, struct shim_file *f, void *arg), void *arg);
void shim_fd_forget_all(void);                  /* a fork child: nothing is ours */

/* ---- blkdev.c: the namespace as a block device ---- */

bool shim_is_blk_path(const char *path);        /* the configured path (or a link to it)? */
int  shim_blk_open(const char *path, int flags, mode_t mode);   /* fd or -errno */
int  shim_blk_stat(struct stat *st);            /* as a block device */
int  shim_blk_bind_all(struct nvr_ctrlr *c);    /* attach: bind every open fd */
void shim_blk_unbind_all(void);                 /* detach */
/* The file calls on one of our BLK descriptors; raw convention. */
long shim_blk_call(long nr, struct shim_file *f, int fd, const long a[6]);
void shim_blk_fini(void);                       /* detach: the private ring */
void shim_blk_exec_prepare(void);               /* positions into the memfds */
void shim_blk_adopt(void);                      /* after exec: inherited descriptors */

/* ---- dispatch.c ---- */
int shim_close(int fd);                         /* 0/-errno; not-ours: 1 */
