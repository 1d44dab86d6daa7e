/* SPDX-License-Identifier: MIT */
/*
 * The shim's start and its controller: configuration from the environment
 * (set by `nvring run`), the attachment made on first need, and its hand-
 * over across fork().
 *
 * Environment:
 *   NVRING_DEVICE=BDF[/NSID]  the vfio-bound controller (namespace 1 unless
 *                             given); unset: the shim stays out of the way
 *   NVRING_PATH=PATH          where the namespace appears as a block device
 *                             (default /dev/nvring0n1)
 *   NVRING_LOG=LEVEL[:FILE]   the library's messages (err, warn, info,
 *                             debug; default: none), to FILE or stderr
 *   NVRING_SHIM_NOPATCH=1, NVRING_SHIM_NOTRAP=1   leave out layer (c)
 *
 * One process at a time drives the controller (VFIO gives its group to one
 * opener). fio stats and opens the device in its parent and then forks a
 * process per job: so the controller is attached only when first needed,
 * and a process that forks while it holds no live ring detaches first, so
 * the child can attach. A process that forks with live rings keeps the
 * controller; the child gets EBUSY and one line naming the holder.
 * Who holds a controller is written to /run/nvring/BDF.pid.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nvring/uring.h"
#include "pci/log.h"
#include "shim/shim.h"

struct shim_cfg shim_cfg;
int shim_fd_floor;

static pthread_mutex_t ctrl_lock = PTHREAD_MUTEX_INITIALIZER;
static struct nvr_ctrlr *ctrl;      /* attached controller, under ctrl_lock */
static _Atomic int live_rings;      /* the program's rings (not the private one) */
static _Atomic bool foreign;        /* fork child of a holder: the device is the parent's */
static bool served;                 /* ctrl is an owner's (nvr_ctrlr_connect_bdf()) */

void *shim_real_cached(void **slot, const char *name)
{
	void *f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
	if (!f) {
		f = dlsym(RTLD_NEXT, name);
		__atomic_store_n(slot, f, __ATOMIC_RELEASE);
	}
	return f;
}

/* ---- logging ----
 * The library's messages (and the shim's own details) go through nvr_log():
 * silent unless NVRING_LOG=LEVEL[:FILE] asks. shim_say() is for the one line
 * a user must see, printed unless NVRING_LOG=off. */

static bool log_off;

void shim_log(int level, const char *fmt, ...)
{
	char line[NVR_LOG_LINE_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	nvr_log(level + NVR_LOG_ERR, "%s", line);
}

void shim_say(const char *fmt, ...)
{
	if (log_off)
		return;
	char line[NVR_LOG_LINE_MAX];
	int n = snprintf(line, sizeof(line), "nvring: ");
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	ssize_t w = write(2, line, (size_t)n);
	(void)w;
}

static void log_init(void)
{
	const char *v = getenv("NVRING_LOG");
	log_off = v && !strncmp(v, "off", 3) && (v[3] == 0 || v[3] == ':');
}

/* ---- who holds the controller ---- */

static void pid_path(char *buf, size_t n)
{
	snprintf(buf, n, "/run/nvring/%s.pid", shim_cfg.bdf);
}

/* The holder keeps an exclusive flock on /run/nvring/BDF.pid, with its
 * pid and name inside, for as long as it is attached: a second process
 * learns who it is before it even tries VFIO (whose EBUSY names nobody). */
static int holder_fd = -1;

static int holder_open(void)
{
	char path[96];
	mkdir("/run/nvring", 0755);
	pid_path(path, sizeof(path));
	return open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
}

/* "pid 1234 (fio)" read from the file of a holder other than us. */
static void holder_name(int fd, char *out, size_t n)
{
	char line[128];
	out[0] = 0;
	for (int tries = 0; tries < 50 && !out[0]; tries++) {
		ssize_t r = pread(fd, line, sizeof(line) - 1, 0);
		if (r > 0) {
			line[r] = 0;
			line[strcspn(line, "\n")] = 0;
			int pid = atoi(line);
			const char *comm = strchr(line, ' ');
			if (pid > 0 && pid != getpid())
				snprintf(out, n, "pid %d (%s)", pid, comm ? comm + 1 : "?");
		}
		if (!out[0])
			usleep(2000);     /* the holder has the lock, not yet its line */
	}
}

/* Take the holder's lock, or name who has it: 0 or -EBUSY. */
static int holder_claim(char *who, size_t n)
{
	who[0] = 0;
	int fd = holder_open();
	if (fd < 0)
		return 0;     /* no /run: VFIO's own exclusion still holds */
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		holder_name(fd, who, n);
		close(fd);
		return -EBUSY;
	}
	char comm[64] = "?", line[128];
	int cf = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
	if (cf >= 0) {
		ssize_t r = read(cf, comm, sizeof(comm) - 1);
		comm[r > 0 ? r : 0] = 0;
		comm[strcspn(comm, "\n")] = 0;
		close(cf);
	}
	int len = snprintf(line, sizeof(line), "%d %s\n", (int)getpid(), comm);
	if (ftruncate(fd, 0) == 0 && pwrite(fd, line, (size_t)len, 0) == len)
		fsync(fd);
	holder_fd = fd;
	return 0;
}

static void holder_release(void)
{
	if (holder_fd < 0)
		return;
	if (ftruncate(holder_fd, 0) < 0) {
		/* the lock going is what matters */
	}
	close(holder_fd);     /* drops the flock */
	holder_fd = -1;
}

/* ---- attach, detach ---- */

static int attach_default(const char *bdf, struct nvr_ctrlr **out)
{
	return nvr_ctrlr_attach(bdf, NULL, out);
}
int (*shim_attach_fn)(const char *bdf, struct nvr_ctrlr **out) = attach_default;

int shim_ctrlr_get(struct nvr_ctrlr **out)
{
	if (!shim_cfg.on)
		return -ENODEV;
	pthread_mutex_lock(&ctrl_lock);
	if (ctrl) {
		*out = ctrl;
		pthread_mutex_unlock(&ctrl_lock);
		return 0;
	}
	if (atomic_load(&foreign)) {
		pthread_mutex_unlock(&ctrl_lock);
		shim_say("%s is driven by the parent process (it forked with live rings); "
			 "several processes on one controller need the owner process "
			 "(with fio: --thread)", shim_cfg.bdf);
		return -EBUSY;
	}
	struct nvr_ctrlr *c;
	char who[96] = "";
	/* An owner serving the controller (`nvring serve`) is used when there
	 * is one (many processes, forks included); else it is attached here. */
	int rc = shim_attach_fn == attach_default ? nvr_ctrlr_connect_bdf(shim_cfg.bdf, &c)
						  : -ENOENT;
	if (rc == 0) {
		served = true;
	} else if (rc == -ENOENT) {
		rc = holder_claim(who, sizeof(who));
		if (rc == 0)
			rc = shim_attach_fn(shim_cfg.bdf, &c);
	}
	if (rc < 0) {
		holder_release();
		pthread_mutex_unlock(&ctrl_lock);
		if (rc == -EBUSY && who[0])
			shim_say("%s is in use by %s; one process at a time drives a "
				 "controller (with fio: --thread), or run `nvring serve %s` to "
				 "share it", shim_cfg.bdf, who, shim_cfg.bdf);
		else if (rc == -EACCES)
			shim_say("%s is served by an owner process that does not allow uid %u "
				 "(`nvring serve --allow-uid %u` allows it)", shim_cfg.bdf,
				 (unsigned)getuid(), (unsigned)getuid());
		else
			shim_say("cannot attach %s: %s", shim_cfg.bdf, strerror(-rc));
		return rc;
	}
	rc = shim_blk_bind_all(c);
	if (rc < 0) {
		shim_blk_unbind_all();
		nvr_ctrlr_detach(c);
		pthread_mutex_unlock(&ctrl_lock);
		return rc;
	}
	ctrl = c;
	*out = c;
	pthread_mutex_unlock(&ctrl_lock);
	return 0;
}

struct nvr_ctrlr *shim_ctrlr_peek(void)
{
	return __atomic_load_n(&ctrl, __ATOMIC_ACQUIRE);
}

void shim_ring_count(int delta)
{
	atomic_fetch_add(&live_rings, delta);
}

/* Under ctrl_lock. */
static void detach_locked(void)
{
	if (!ctrl)
		return;
	shim_blk_fini();
	shim_blk_unbind_all();
	int rc = nvr_ctrlr_detach(ctrl);
	if (rc < 0)
		shim_log(1, "detach of %s failed (%d)", shim_cfg.bdf, rc);
	ctrl = NULL;
	holder_release();
}

int shim_detach(void)
{
	pthread_mutex_lock(&ctrl_lock);
	int rc = atomic_load(&live_rings) ? -EBUSY : 0;
	if (!rc)
		detach_locked();
	pthread_mutex_unlock(&ctrl_lock);
	return rc;
}

/* fork(): a holder without live rings lets go, so the child may attach. */
static bool held_over_fork;

static void fork_prepare(void)
{
	pthread_mutex_lock(&ctrl_lock);
	held_over_fork = false;
	if (ctrl && !served) {
		if (atomic_load(&live_rings) == 0)
			detach_locked();
		else
			held_over_fork = true;
	}
}

static void fork_parent(void)
{
	pthread_mutex_unlock(&ctrl_lock);
}

static void fork_child(void)
{
	if (held_over_fork) {
		/* The controller, its queues and DMA mappings are the parent's:
		 * never touch them. Rings inherited from the parent are not
		 * ours to drive (nvring cannot share a queue pair between
		 * processes yet); the namespace descriptors stay, unbound. */
		atomic_store(&foreign, true);
		ctrl = NULL;
		if (holder_fd >= 0)
			close(holder_fd);     /* our copy: the parent keeps the lock */
		holder_fd = -1;
		shim_fd_forget_all();
	}
	if (!served)
		atomic_store(&live_rings, 0);   /* (an owner's rings are shared, as the kernel's) */
	pthread_mutex_unlock(&ctrl_lock);
}

static void at_exit(void)
{
	pthread_mutex_lock(&ctrl_lock);
	if (ctrl && !atomic_load(&foreign) && !served)
		holder_release();
	pthread_mutex_unlock(&ctrl_lock);
}

/* ---- start ---- */

/* Our descriptors go to the top 256 numbers below the soft RLIMIT_NOFILE
 * (at most SHIM_MAX_FD): the kernel hands out the lowest free number, so a
 * program reaches them only with that many files open, and a number we
 * lose track of (a close we did not see) is not handed out again soon. */
static int fd_floor(void)
{
	struct rlimit rl;
	rlim_t top = SHIM_MAX_FD;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < top)
		top = rl.rlim_cur;
	return top > 512 ? (int)top - 256 : (int)top / 2;
}

void shim_configure(const char *dev, const char *path)
{
	snprintf(shim_cfg.path, sizeof(shim_cfg.path), "%s",
		 path && *path ? path : "/dev/nvring0n1");
	shim_cfg.nsid = 1;
	shim_cfg.on = false;
	if (dev && *dev) {
		snprintf(shim_cfg.bdf, sizeof(shim_cfg.bdf), "%s", dev);
		char *slash = strchr(shim_cfg.bdf, '/');
		if (slash) {
			*slash = 0;
			shim_cfg.nsid = (uint32_t)strtoul(slash + 1, NULL, 0);
		}
		shim_cfg.on = true;
	}
	if (!shim_cfg.on)
		return;
	shim_fd_floor = fd_floor();
	nvr_uring_set_fd_floor(shim_fd_floor);
	nvr_uring_set_kernel_syscall(shim_raw_syscall);   /* the hidden rings' */
	static bool hooked;
	if (!hooked) {
		hooked = true;
		pthread_atfork(fork_prepare, fork_parent, fork_child);
		atexit(at_exit);
	}
}

__attribute__((constructor)) static void shim_init(void)
{
	log_init();
	shim_configure(getenv("NVRING_DEVICE"), getenv("NVRING_PATH"));
	if (!shim_cfg.on)
		return;
	shim_blk_adopt();
	const char *np = getenv("NVRING_SHIM_NOPATCH"), *nt = getenv("NVRING_SHIM_NOTRAP");
	if (!np || *np != '1') {
		int n = shim_patch_init();
		shim_log(2, "patched %d inline io_uring call site(s)", n);
	}
	if (!nt || *nt != '1') {
		int rc = shim_trap_init();
		if (rc < 0)
			shim_log(1, "no seccomp net for inline io_uring calls (%d)", rc);
	}
}

/* Until layer (c) is linked in (shim/patch.c, shim/trap.c). */
__attribute__((weak)) int shim_patch_init(void) { return 0; }
__attribute__((weak)) int shim_trap_init(void) { return -ENOSYS; }

/* Until shim/raw.c is linked in: the real call through libc's syscall(). */
__attribute__((weak)) const char shim_raw_begin[1], shim_raw_end[1];
__attribute__((weak)) long shim_raw_syscall(long nr, long a0, long a1, long a2, long a3, long a4,
					    long a5)
{
	static void *real;
	long (*fn)(long, ...) = (long (*)(long, ...))shim_real_cached(&real, "syscall");
	int saved = errno;
	long r = fn(nr, a0, a1, a2, a3, a4, a5);
	if (r == -1) {
		r = -errno;
		errno = saved;
	}
	return r;
}
