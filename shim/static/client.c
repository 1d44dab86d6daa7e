// SPDX-License-Identifier: MIT
/*
 * shim/static/client.c — the freestanding client (client.h): what a static
 * program's rewritten io_uring and file calls do instead of the kernel.
 *
 * io_uring_setup/enter/register go to the owner (abi/serve_proto.h); the
 * ring fd the program gets is the ring memfd the owner sent, so its own
 * mmap() calls map the rings unchanged. A table maps those fds to ring ids;
 * close() of one tells the owner (NVS_CLOSE), dup() of one names the same
 * ring. The namespace path (NVRING_PATH, exactly) opens a memfd as large as
 * the namespace, bound with NVS_NS_BIND, as the library's nvr_ns_open()
 * does; its dups are bound too. stat/fstat/statx of it (or of the path)
 * show a block device and its ioctls answer the geometry, as the dynamic
 * shim's shim/blkdev.c does.
 *
 * The owner's socket: $NVRING_SOCKET, else RUN_DIR/BDF.sock (RUN_DIR:
 * $NVRING_RUN_DIR or /run/nvring), BDF from NVRING_DEVICE=BDF[/NSID].
 *
 * One connection per thread (the owner runs one call per connection at a
 * time, and a thread may block in io_uring_enter while another submits),
 * found by gettid; HELLO first on each. A fork()ed child has copies of its
 * parent's connections, which it must not use: a changed getpid() drops
 * them, and the child adopts its rings on a fresh one (NVS_RING_ADOPT).
 *
 * Owner death: a reply that never comes (EOF or an error on the socket)
 * makes every ring dead: once the owner process is gone (its pidfd, bounded
 * wait), in-flight requests get -ENODEV CQEs per the crash state in the
 * memfd, and the call returns -ENODEV; later enters complete their SQEs the
 * same way. Nothing waits forever.
 *
 * Not handled (yet): IORING_REGISTER_RING_FDS (refused with -EINVAL, so
 * liburing keeps using the fd: a registered index could not be mapped to a
 * ring id here); BLKDISCARD/BLKZEROOUT (-EOPNOTSUPP); a signal handler that
 * makes io_uring calls while its thread waits in one (the two would share
 * the thread's connection); a vfork()/posix_spawn() child that closes or
 * dups a ring or namespace fd before its exec (it shares these tables).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/io_uring.h>
#include <linux/prctl.h>
#include <linux/stat.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>

#include "abi/serve_proto.h"
#include "shim/static/client.h"
#include "shim/static/sys.h"

#define MAX_FDS 1024
#define MAX_CONNS 64

enum fd_kind { FD_NONE, FD_RING, FD_NS };

struct fdent {
	uint8_t kind;
	int32_t ring;          /* FD_RING: index in rings[] */
};

struct ring {
	bool used, dead;
	int32_t id;            /* the owner's ring id */
	int memfd;             /* one fd of it (for crash-state and adopt) */
	struct io_uring_params p;
	unsigned refs;         /* fds naming it */
};

struct conn {
	int tid, sock;
};

static struct {
	char sock_path[108];
	char ns_path[256];
	uint32_t nsid;
	bool ok;
	bool kernel;           /* NVRING_STATIC_KERNEL=1: every call to the kernel */
} cfg;

static struct fdent fds[MAX_FDS];
static struct ring rings[64];
static struct conn conns[MAX_CONNS];
static struct nvs_hello_reply hello;
static bool have_hello;
static int owner_pidfd = -1;
static int my_pid;
static atomic_flag lock = ATOMIC_FLAG_INIT;

static void lock_take(void)
{
	while (atomic_flag_test_and_set_explicit(&lock, memory_order_acquire))
		sys0(__NR_sched_yield);
}

static void lock_drop(void)
{
	atomic_flag_clear_explicit(&lock, memory_order_release);
}

static void copy_str(char *d, size_t n, const char *s)
{
	size_t i = 0;
	for (; s && s[i] && i + 1 < n; i++)
		d[i] = s[i];
	d[i] = 0;
}

int st_client_init(void)
{
	const char *dev = st_getenv("NVRING_DEVICE"), *path = st_getenv("NVRING_PATH");
	const char *sock = st_getenv("NVRING_SOCKET"), *kern = st_getenv("NVRING_STATIC_KERNEL");
	char bdf[64];
	size_t i = 0;

	/* A diagnostic mode: the rewritten sites reach the stub and the
	 * kernel, never the owner (proves the rewriting alone). */
	if (kern && *kern == '1') {
		cfg.kernel = true;
		return 0;
	}
	cfg.nsid = 1;
	if (!dev || !*dev)
		return -EINVAL;
	for (; dev[i] && dev[i] != '/' && i < sizeof(bdf) - 1; i++)
		bdf[i] = dev[i];
	bdf[i] = 0;
	if (dev[i] == '/') {
		uint32_t v = 0;
		for (const char *q = dev + i + 1; *q >= '0' && *q <= '9'; q++)
			v = v * 10 + (uint32_t)(*q - '0');
		if (v)
			cfg.nsid = v;
	}
	if (sock && *sock) {
		copy_str(cfg.sock_path, sizeof(cfg.sock_path), sock);
	} else {
		/* as the library's client: RUN_DIR/BDF.sock, RUN_DIR being
		 * $NVRING_RUN_DIR or /run/nvring */
		const char *rd = st_getenv("NVRING_RUN_DIR");
		char p[108];
		copy_str(p, sizeof(p) - 24, rd && *rd ? rd : "/run/nvring");
		size_t n = strlen(p);
		p[n++] = '/';
		for (i = 0; bdf[i] && n < sizeof(p) - 6; i++)
			p[n++] = bdf[i];
		memcpy(p + n, ".sock", 6);
		copy_str(cfg.sock_path, sizeof(cfg.sock_path), p);
	}
	copy_str(cfg.ns_path, sizeof(cfg.ns_path), path && *path ? path : "/dev/nvring0n1");
	cfg.ok = true;
	my_pid = (int)sys0(__NR_getpid);
	return 0;
}

/* ---- the wire ------------------------------------------------------------ */

/* One request, its reply (header into *rep, payload into pay up to paylen,
 * one passed fd into *rfd if wanted). 0 or -errno; -EPIPE when the owner is
 * gone (EOF, reset). */
static int xfer(int sock, struct nvs_msg *req, const void *out, size_t outlen,
		struct nvs_msg *rep, void *pay, size_t paylen, int *rfd)
{
	struct iovec iov[2] = { { req, sizeof(*req) }, { (void *)out, outlen } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = outlen ? 2 : 1 };
	req->len = (uint32_t)outlen;
	long r;
	do
		r = sys3(__NR_sendmsg, sock, &mh, MSG_NOSIGNAL);
	while (r == -EINTR);
	if (r < 0)
		return r == -EPIPE || r == -ECONNRESET || r == -ENOTCONN ? -EPIPE : (int)r;

	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cm;
	struct iovec riov[2] = { { rep, sizeof(*rep) }, { pay, paylen } };
	struct msghdr rh = { .msg_iov = riov, .msg_iovlen = paylen ? 2 : 1,
			     .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf) };
	do
		r = sys3(__NR_recvmsg, sock, &rh, MSG_CMSG_CLOEXEC);
	while (r == -EINTR);
	if (r == 0 || r == -ECONNRESET)
		return -EPIPE;
	if (r < 0)
		return (int)r;
	if ((size_t)r < sizeof(*rep) || rep->op != req->op)
		return -EPROTO;
	if (rfd) {
		*rfd = -1;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&rh); c; c = CMSG_NXTHDR(&rh, c))
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
				memcpy(rfd, CMSG_DATA(c), sizeof(int));
	} else {
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&rh); c; c = CMSG_NXTHDR(&rh, c))
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
				int x;
				memcpy(&x, CMSG_DATA(c), sizeof(int));
				sys1(__NR_close, x);
			}
	}
	return 0;
}

static int connect_owner(void)
{
	long s = sys3(__NR_socket, AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s < 0)
		return (int)s;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	copy_str(sa.sun_path, sizeof(sa.sun_path), cfg.sock_path);
	long r = sys3(__NR_connect, s, &sa, sizeof(sa));
	if (r < 0) {
		sys1(__NR_close, s);
		return (int)r;
	}
	/* The owner copies this process's data with process_vm_readv/writev:
	 * under Yama (ptrace_scope 1) only a tracer we name may reach us */
	struct ucred peer;
	unsigned pl = sizeof(peer);
	if (sys5(__NR_getsockopt, s, SOL_SOCKET, SO_PEERCRED, &peer, &pl) == 0 && peer.pid > 0)
		sys2(__NR_prctl, PR_SET_PTRACER, peer.pid);
	/* and a probe it reads to check that it can reach our memory at all
	 * (refused with one line if not, as for dynamic clients) */
	static const uint64_t probe = NVS_MAGIC;
	struct nvs_msg req = { .op = NVS_HELLO,
			       .a = { NVS_MAGIC, NVS_VERSION, (int64_t)(uintptr_t)&probe } }, rep;
	struct nvs_hello_reply h;
	int err = xfer((int)s, &req, NULL, 0, &rep, &h, sizeof(h), NULL);
	if (!err && rep.ret < 0) {
		err = (int)rep.ret;
		char *why = (char *)&h;
		why[sizeof(h) - 1] = 0;
		st_say("nvring-static: the owner refused this process: ", rep.len ? why : "?", NULL);
	}
	if (err) {
		sys1(__NR_close, s);
		return err;
	}
	if (!have_hello) {
		hello = h;
		have_hello = true;
		owner_pidfd = (int)sys2(__NR_pidfd_open, h.owner_pid, 0);
	}
	return (int)s;
}

static void rings_adopt(int sock);

/* This thread's connection, made at first use; -errno if the owner cannot
 * be reached. */
static int conn_get(void)
{
	int tid = (int)sys0(__NR_gettid), pid = (int)sys0(__NR_getpid);
	lock_take();
	if (pid != my_pid) {
		/* a fork()ed child: the parent's connections are not ours */
		for (int i = 0; i < MAX_CONNS; i++) {
			if (conns[i].tid)
				sys1(__NR_close, conns[i].sock);
			conns[i].tid = 0;
		}
		my_pid = pid;
		int s = connect_owner();
		if (s >= 0) {
			conns[0] = (struct conn){ tid, s };
			rings_adopt(s);
		}
		lock_drop();
		return s;
	}
	int free_i = -1;
	for (int i = 0; i < MAX_CONNS; i++) {
		if (conns[i].tid == tid) {
			int s = conns[i].sock;
			lock_drop();
			return s;
		}
		if (!conns[i].tid && free_i < 0)
			free_i = i;
	}
	int s = connect_owner();
	if (s >= 0 && free_i >= 0)
		conns[free_i] = (struct conn){ tid, s };
	lock_drop();
	return s;
}

/* One call on this thread's connection. */
static int call(struct nvs_msg *req, const void *out, size_t outlen, struct nvs_msg *rep,
		void *pay, size_t paylen, int *rfd)
{
	int s = conn_get();
	if (s < 0)
		return s;
	return xfer(s, req, out, outlen, rep, pay, paylen, rfd);
}

/* ---- owner death ---------------------------------------------------------- */

static void wait_owner_gone(void)
{
	if (owner_pidfd < 0)
		return;
	struct pollfd pfd = { .fd = owner_pidfd, .events = POLLIN };
	struct timespec ts = { 10, 0 };   /* a dying owner closes VFIO and exits in far less */
	sys5(__NR_ppoll, &pfd, 1, &ts, NULL, 8);
}

static void cqe_post(uint8_t *cq, const struct io_uring_params *p, uint32_t cqe_size,
		     uint64_t user_data, int32_t res)
{
	uint32_t *tailp = (uint32_t *)(cq + p->cq_off.tail);
	uint32_t head = __atomic_load_n((uint32_t *)(cq + p->cq_off.head), __ATOMIC_ACQUIRE);
	uint32_t tail = *tailp;
	if (tail - head >= p->cq_entries) {
		uint32_t *ovf = (uint32_t *)(cq + p->cq_off.overflow);
		*ovf += 1;
		return;
	}
	struct io_uring_cqe *cqe = (void *)(cq + p->cq_off.cqes +
					    (size_t)(tail & (p->cq_entries - 1)) * cqe_size);
	memset(cqe, 0, cqe_size);
	cqe->user_data = user_data;
	cqe->res = res;
	/* the program's reader acquires the tail: the CQE is visible first */
	__atomic_store_n(tailp, tail + 1, __ATOMIC_RELEASE);
}

/* Complete what the dead owner had taken (crash state) and, with
 * sq_too, every SQE still in the SQ ring, with -ENODEV. */
static void ring_crash_complete(struct ring *r, bool first, bool sq_too)
{
	const struct io_uring_params *p = &r->p;
	uint32_t cqe_size = (p->flags & IORING_SETUP_CQE32) ? 32 : 16;
	size_t cq_len = p->cq_off.cqes + (size_t)p->cq_entries * cqe_size;
	long cq = sys6(__NR_mmap, 0, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED, r->memfd,
		       IORING_OFF_CQ_RING);
	if (sys_err(cq))
		return;
	if (first) {
		long st = sys6(__NR_mmap, 0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, r->memfd,
			       (long)NVS_OFF_STATE);
		if (!sys_err(st)) {
			struct nvs_ring_state *rs = (void *)st;
			size_t slen = sizeof(*rs) + (size_t)rs->nslots * sizeof(rs->slots[0]);
			if (rs->magic == NVS_STATE_MAGIC && slen > 4096) {
				sys2(__NR_munmap, st, 4096);
				st = sys6(__NR_mmap, 0, slen, PROT_READ | PROT_WRITE, MAP_SHARED,
					  r->memfd, (long)NVS_OFF_STATE);
				rs = (void *)st;
			}
			if (!sys_err(st) && rs->magic == NVS_STATE_MAGIC) {
				uint32_t tail = *(uint32_t *)((uint8_t *)cq + p->cq_off.tail);
				for (uint32_t i = 0; i < rs->nslots; i++) {
					struct nvs_slot *sl = &rs->slots[i];
					if (__atomic_load_n(&sl->state, __ATOMIC_ACQUIRE) !=
					    NVS_SLOT_LIVE)
						continue;
					if (sl->cq_pos && (int32_t)(sl->cq_pos - 1 - tail) < 0)
						continue;   /* its CQE is already visible */
					cqe_post((uint8_t *)cq, p, cqe_size, sl->user_data, -ENODEV);
					sl->state = NVS_SLOT_FREE;
				}
				sys2(__NR_munmap, st, slen > 4096 ? slen : 4096);
			} else if (!sys_err(st)) {
				sys2(__NR_munmap, st, 4096);
			}
		}
	}
	if (sq_too) {
		size_t sq_len = p->sq_off.array + p->sq_entries * sizeof(uint32_t);
		size_t sqe_size = (p->flags & IORING_SETUP_SQE128) ? 128 : 64;
		long sq = sys6(__NR_mmap, 0, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED, r->memfd,
			       IORING_OFF_SQ_RING);
		long sqes = sys6(__NR_mmap, 0, p->sq_entries * sqe_size, PROT_READ, MAP_SHARED,
				 r->memfd, IORING_OFF_SQES);
		if (!sys_err(sq) && !sys_err(sqes)) {
			uint8_t *sb = (uint8_t *)sq;
			uint32_t *headp = (uint32_t *)(sb + p->sq_off.head);
			uint32_t tail = __atomic_load_n((uint32_t *)(sb + p->sq_off.tail),
							__ATOMIC_ACQUIRE);
			uint32_t *arr = (uint32_t *)(sb + p->sq_off.array);
			for (uint32_t h = *headp; h != tail; h++) {
				uint32_t idx = arr[h & (p->sq_entries - 1)];
				if (idx >= p->sq_entries)
					continue;
				const struct io_uring_sqe *sqe =
					(const void *)((uint8_t *)sqes + idx * sqe_size);
				cqe_post((uint8_t *)cq, p, cqe_size, sqe->user_data, -ENODEV);
			}
			__atomic_store_n(headp, tail, __ATOMIC_RELEASE);
		}
		if (!sys_err(sq))
			sys2(__NR_munmap, sq, sq_len);
		if (!sys_err(sqes))
			sys2(__NR_munmap, sqes, p->sq_entries * sqe_size);
	}
	sys2(__NR_munmap, cq, cq_len);
}

static void owner_died(void)
{
	wait_owner_gone();
	lock_take();
	for (unsigned i = 0; i < sizeof(rings) / sizeof(rings[0]); i++) {
		if (rings[i].used && !rings[i].dead) {
			rings[i].dead = true;
			ring_crash_complete(&rings[i], true, false);
		}
	}
	lock_drop();
}

/* ---- rings and namespace fds ---------------------------------------------- */

static struct ring *fd_ring(long fd)
{
	if (fd < 0 || fd >= MAX_FDS || fds[fd].kind != FD_RING)
		return NULL;
	return &rings[fds[fd].ring];
}

static void rings_adopt(int sock)
{
	for (unsigned i = 0; i < sizeof(rings) / sizeof(rings[0]); i++) {
		struct ring *r = &rings[i];
		if (!r->used || r->dead)
			continue;
		union {
			char buf[CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} cm;
		struct nvs_msg req = { .op = NVS_RING_ADOPT }, rep;
		memset(&cm, 0, sizeof(cm));
		struct iovec iov = { &req, sizeof(req) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
				     .msg_controllen = sizeof(cm.buf) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &r->memfd, sizeof(int));
		long s = sys3(__NR_sendmsg, sock, &mh, MSG_NOSIGNAL);
		struct iovec riov = { &rep, sizeof(rep) };
		struct msghdr rh = { .msg_iov = &riov, .msg_iovlen = 1 };
		if (s < 0 || sys3(__NR_recvmsg, sock, &rh, 0) < (long)sizeof(rep) || rep.ret < 0)
			r->dead = true;
		else
			r->id = (int32_t)rep.ret;
	}
	for (int fd = 0; fd < MAX_FDS; fd++) {
		if (fds[fd].kind != FD_NS)
			continue;
		struct nvs_msg req = { .op = NVS_NS_BIND, .a = { fd, cfg.nsid } }, rep;
		xfer(sock, &req, NULL, 0, &rep, NULL, 0, NULL);
	}
}

static long do_setup(const long a[6])
{
	struct io_uring_params p;
	void *up = (void *)a[1];
	memcpy(&p, up, sizeof(p));
	struct nvs_msg req = { .op = NVS_SETUP, .a = { a[0] } }, rep;
	int memfd = -1;
	int err = call(&req, &p, sizeof(p), &rep, &p, sizeof(p), &memfd);
	if (err == -EPIPE)
		return -ENODEV;
	if (err)
		return err == -ENOENT || err == -ECONNREFUSED ? -ENODEV : err;
	if (rep.ret < 0) {
		if (memfd >= 0)
			sys1(__NR_close, memfd);
		return rep.ret;
	}
	if (memfd < 0 || memfd >= MAX_FDS) {
		if (memfd >= 0)
			sys1(__NR_close, memfd);
		return -EMFILE;
	}
	lock_take();
	int slot = -1;
	for (unsigned i = 0; i < sizeof(rings) / sizeof(rings[0]); i++)
		if (!rings[i].used) {
			slot = (int)i;
			break;
		}
	if (slot < 0) {
		lock_drop();
		sys1(__NR_close, memfd);
		return -ENOMEM;
	}
	rings[slot] = (struct ring){ .used = true, .id = (int32_t)rep.ret, .memfd = memfd,
				     .p = p, .refs = 1 };
	fds[memfd] = (struct fdent){ FD_RING, slot };
	lock_drop();
	memcpy(up, &p, sizeof(p));
	return memfd;
}

static long do_enter(struct ring *r, const long a[6])
{
	if (r->dead) {
		ring_crash_complete(r, false, true);
		return -ENODEV;
	}
	/* The owner ignores a signal mask: the wait runs here with it, as the
	 * kernel's does (a signal it lets through runs its handler, and the
	 * wait goes on, as the library's enter does). A malformed arg is the
	 * owner's to refuse. */
	uint64_t umask = 0;
	if (!(a[3] & IORING_ENTER_EXT_ARG))
		umask = a[5] == 8 ? (uint64_t)a[4] : 0;
	else if (a[4] && a[5] == sizeof(struct io_uring_getevents_arg) &&
		 ((const struct io_uring_getevents_arg *)a[4])->sigmask_sz == 8)
		umask = ((const struct io_uring_getevents_arg *)a[4])->sigmask;
	uint64_t saved;
	bool masked = umask && sys4(__NR_rt_sigprocmask, SIG_SETMASK, umask, &saved, 8) == 0;
	struct nvs_msg req = { .op = NVS_ENTER, .a = { r->id, a[1], a[2], a[3], a[4], a[5] } }, rep;
	int err = call(&req, NULL, 0, &rep, NULL, 0, NULL);
	if (masked)
		sys4(__NR_rt_sigprocmask, SIG_SETMASK, &saved, NULL, 8);
	if (err == -EPIPE || err == -ECONNREFUSED || err == -ENOENT) {
		owner_died();
		ring_crash_complete(r, false, true);
		return -ENODEV;
	}
	return err ? err : rep.ret;
}

static long do_register(struct ring *r, const long a[6])
{
	if (r->dead)
		return -ENODEV;
	struct nvs_msg req = { .op = NVS_REGISTER, .a = { r->id, a[1], a[2], a[3] } }, rep;
	int err = call(&req, NULL, 0, &rep, NULL, 0, NULL);
	if (err == -EPIPE) {
		owner_died();
		return -ENODEV;
	}
	return err ? err : rep.ret;
}

/* fd stops being a ring or a namespace (close, or the target of dup2).
 * The tables change under the lock; the owner hears of it after. */
static void fd_forget(long fd)
{
	if (fd < 0 || fd >= MAX_FDS)
		return;
	struct nvs_msg req = { 0 }, rep;
	lock_take();
	if (fds[fd].kind == FD_RING) {
		struct ring *r = &rings[fds[fd].ring];
		int ri = fds[fd].ring;
		fds[fd].kind = FD_NONE;
		if (--r->refs) {
			/* another fd still names it: keep one that stays open */
			if (r->memfd == fd)
				for (int k = 0; k < MAX_FDS; k++)
					if (fds[k].kind == FD_RING && fds[k].ring == ri) {
						r->memfd = k;
						break;
					}
			lock_drop();
			return;
		}
		bool tell = !r->dead;
		req.op = NVS_CLOSE;
		req.a[0] = r->id;
		r->used = false;
		lock_drop();
		if (tell)
			call(&req, NULL, 0, &rep, NULL, 0, NULL);
	} else if (fds[fd].kind == FD_NS) {
		fds[fd].kind = FD_NONE;
		lock_drop();
		req.op = NVS_NS_UNBIND;
		req.a[0] = fd;
		call(&req, NULL, 0, &rep, NULL, 0, NULL);
	} else {
		lock_drop();
	}
}

/* newfd now names what oldfd names. */
static void fd_dup(long oldfd, long newfd)
{
	if (oldfd < 0 || oldfd >= MAX_FDS || newfd < 0 || newfd >= MAX_FDS || newfd == oldfd)
		return;
	lock_take();
	enum fd_kind k = (enum fd_kind)fds[oldfd].kind;
	if (k == FD_RING) {
		fds[newfd] = fds[oldfd];
		rings[fds[oldfd].ring].refs++;
	}
	lock_drop();
	if (k == FD_NS) {
		struct nvs_msg req = { .op = NVS_NS_BIND, .a = { newfd, cfg.nsid } }, rep;
		if (!call(&req, NULL, 0, &rep, NULL, 0, NULL) && rep.ret == 0)
			fds[newfd].kind = FD_NS;
	}
}

static long ns_open(long flags)
{
	int s = conn_get();
	if (s < 0)
		return -ENODEV;   /* no owner: as if the device were missing */
	uint64_t bytes = 0;
	for (uint32_t i = 0; i < hello.nns && i < NVS_MAX_NS; i++)
		if (hello.ns[i].nsid == cfg.nsid)
			bytes = hello.ns[i].nblocks * hello.ns[i].lba_size;
	if (!bytes)
		return -ENXIO;
	long fd = sys2(__NR_memfd_create, "nvring-ns", (flags & O_CLOEXEC) ? MFD_CLOEXEC : 0);
	if (fd < 0)
		return fd;
	sys2(__NR_ftruncate, fd, bytes);   /* sparse; the size is what fstat shows */
	if (fd >= MAX_FDS) {
		sys1(__NR_close, fd);
		return -EMFILE;
	}
	struct nvs_msg req = { .op = NVS_NS_BIND, .a = { fd, cfg.nsid } }, rep;
	int err = xfer(s, &req, NULL, 0, &rep, NULL, 0, NULL);
	if (err || rep.ret < 0) {
		sys1(__NR_close, fd);
		return err ? -ENODEV : rep.ret;
	}
	fds[fd].kind = FD_NS;
	return fd;
}

/* ---- the block device's face ----------------------------------------------- */

#define BLK_MAJOR 259            /* blkext, as shim/blkdev.c */
#define BLK_MINOR 0xfff00u

static const struct nvs_ns_desc *ns_desc(void)
{
	for (uint32_t i = 0; have_hello && i < hello.nns && i < NVS_MAX_NS; i++)
		if (hello.ns[i].nsid == cfg.nsid)
			return &hello.ns[i];
	return NULL;
}

static bool is_ns_fd(long fd)
{
	return fd >= 0 && fd < MAX_FDS && fds[fd].kind == FD_NS;
}

/* Whether a path call names the namespace: the path itself, or an empty
 * path with AT_EMPTY_PATH on a namespace fd. */
static bool names_ns(long dirfd, const char *path, long flags)
{
	if (!path)
		return false;
	if (!path[0])
		return (flags & AT_EMPTY_PATH) && is_ns_fd(dirfd);
	return st_streq(path, cfg.ns_path);
}

static long blk_stat(struct stat *st)
{
	if (!ns_desc() && conn_get() < 0)
		return -ENODEV;   /* no owner: as if the device were missing */
	memset(st, 0, sizeof(*st));
	unsigned maj = BLK_MAJOR, min = BLK_MINOR + cfg.nsid;
	st->st_mode = S_IFBLK | 0660;
	st->st_rdev = (min & 0xff) | ((maj & 0xfff) << 8) | ((uint64_t)(min & ~0xffu) << 12);
	st->st_dev = 5;
	st->st_ino = 0x6e7672u + cfg.nsid;
	st->st_nlink = 1;
	st->st_blksize = 4096;
	return 0;
}

static long blk_statx(struct statx *sx)
{
	struct stat st;
	long rc = blk_stat(&st);
	if (rc < 0)
		return rc;
	memset(sx, 0, sizeof(*sx));
	sx->stx_mask = STATX_BASIC_STATS;
	sx->stx_blksize = 4096;
	sx->stx_nlink = 1;
	sx->stx_mode = (uint16_t)st.st_mode;
	sx->stx_ino = st.st_ino;
	sx->stx_rdev_major = BLK_MAJOR;
	sx->stx_rdev_minor = BLK_MINOR + cfg.nsid;
	sx->stx_dev_minor = 5;
	return 0;
}

static long blk_ioctl(unsigned long req, void *argp)
{
	const struct nvs_ns_desc *d = ns_desc();
	if (!d)
		return -ENODEV;
	uint64_t bytes = d->nblocks * d->lba_size;
	switch (req) {
	case BLKGETSIZE64: *(uint64_t *)argp = bytes; return 0;
	case BLKGETSIZE: *(unsigned long *)argp = (unsigned long)(bytes >> 9); return 0;
	case BLKSSZGET: *(int *)argp = (int)d->lba_size; return 0;
	case BLKPBSZGET:
	case BLKIOMIN: *(unsigned int *)argp = d->lba_size; return 0;
	case BLKIOOPT: *(unsigned int *)argp = 0; return 0;
	case BLKBSZGET: *(int *)argp = 4096; return 0;
	case BLKROGET: *(int *)argp = 0; return 0;
	case BLKFLSBUF: return 0;   /* no page cache to drop */
	case BLKDISCARD:
	case BLKZEROOUT: return -EOPNOTSUPP;   /* not through the static client yet */
	default: return -ENOTTY;
	}
}

bool st_client_call(long nr, const long a[6], long *ret)
{
	if (!cfg.ok)
		return false;
	if (cfg.kernel)
		return false;
	switch (nr) {
	case __NR_io_uring_setup:
		*ret = do_setup(a);
		return true;
	case __NR_io_uring_enter: {
		struct ring *r = (a[3] & IORING_ENTER_REGISTERED_RING) ? NULL : fd_ring(a[0]);
		if (!r)
			return false;
		*ret = do_enter(r, a);
		return true;
	}
	case __NR_io_uring_register: {
		struct ring *r = fd_ring(a[0]);
		if (!r)
			return false;
		if (a[1] == IORING_REGISTER_RING_FDS) {
			/* a registered ring index would reach enter as a number the
			 * client cannot map; liburing then keeps using the fd */
			*ret = -EINVAL;
			return true;
		}
		*ret = do_register(r, a);
		return true;
	}
	case __NR_close:
		if (a[0] >= 0 && a[0] < MAX_FDS && fds[a[0]].kind != FD_NONE)
			fd_forget(a[0]);
		return false;   /* the kernel closes the fd itself */
	case __NR_open:
	case __NR_openat: {
		const char *path = (const char *)(nr == __NR_open ? a[0] : a[1]);
		long flags = nr == __NR_open ? a[1] : a[2];
		if (!path || !st_streq(path, cfg.ns_path))
			return false;
		*ret = ns_open(flags);
		return true;
	}
	case __NR_fstat:
		if (!is_ns_fd(a[0]))
			return false;
		*ret = blk_stat((struct stat *)a[1]);
		return true;
	case __NR_stat:
	case __NR_lstat:
		if (!names_ns(AT_FDCWD, (const char *)a[0], 0))
			return false;
		*ret = blk_stat((struct stat *)a[1]);
		return true;
	case __NR_newfstatat:
		if (!names_ns(a[0], (const char *)a[1], a[3]))
			return false;
		*ret = blk_stat((struct stat *)a[2]);
		return true;
	case __NR_statx:
		if (!names_ns(a[0], (const char *)a[1], a[2]))
			return false;
		*ret = blk_statx((struct statx *)a[4]);
		return true;
	case __NR_ioctl:
		if (!is_ns_fd(a[0]))
			return false;
		*ret = blk_ioctl((unsigned long)a[1], (void *)a[2]);
		return true;
	case __NR_dup:
	case __NR_dup2:
	case __NR_dup3:
	case __NR_fcntl: {
		if (nr == __NR_fcntl && a[1] != F_DUPFD && a[1] != F_DUPFD_CLOEXEC)
			return false;
		if (a[0] < 0 || a[0] >= MAX_FDS)
			return false;
		bool tracked = fds[a[0]].kind != FD_NONE;
		bool target = nr != __NR_dup && nr != __NR_fcntl && a[1] >= 0 && a[1] < MAX_FDS &&
			      fds[a[1]].kind != FD_NONE && a[1] != a[0];
		if (!tracked && !target)
			return false;
		*ret = sys6(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
		if (*ret >= 0) {
			if (target)
				fd_forget(a[1]);
			fd_dup(a[0], *ret);
		}
		return true;
	}
	}
	return false;
}
