/* SPDX-License-Identifier: MIT */
/*
 * A controller served by an owner process (`nvring serve`): the transport
 * under nvr_ctrlr_connect(). No device here: the controller object carries
 * the identity and namespaces the owner reported, and every ring on it
 * lives in the owner (abi/client.c makes the calls, abi/serve_proto.h is
 * the protocol). This file is the connection: one socket per calling
 * thread (a call blocks until its reply, and an enter may wait long), made
 * on the thread's first call and closed when the thread exits; in a fork
 * child every inherited connection is the parent's and is replaced.
 *
 * The owner's death: a call whose reply does not come (EOF) waits until
 * the owner process has exited -- then no store of it into shared ring
 * memory and no DMA of its devices is still to come -- and returns
 * -ENODEV; so does every later call.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "abi/serve_proto.h"
#include "driver/ctrlr.h"
#include "driver/msg.h"
#include "pci/holder.h"
#include "pci/log.h"

#define OWNER_EXIT_WAIT_MS 10000

struct nvr_remote {
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	pid_t owner_pid;
	int owner_pidfd;
	pthread_mutex_t ns_lock;      /* nsfd, mem */
	struct rmem { void *va; size_t len; struct rmem *next; } *mem;
	int nsfd[NVS_MAX_NS];         /* the remote queue pairs' namespace fds (by index) */
	pthread_key_t key;            /* this thread's struct conn */
	_Atomic bool dead;
	_Atomic uint32_t gen_seen;    /* fork generation of the last hello */
	void (*new_process)(struct nvr_ctrlr *c);
};

struct conn {
	int fd;
	uint32_t gen;
	struct nvs_mbox *mb;   /* this connection's mailbox, or NULL */
	uint32_t seq;          /* the last request number put in it */
};

/* Bumped in every fork child: connections of older generations are the
 * parent's. */
static _Atomic uint32_t fork_gen = 1;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static void on_fork_child(void) { atomic_fetch_add(&fork_gen, 1); }
static void fork_hook(void) { pthread_atfork(NULL, NULL, on_fork_child); }

/* The connection's socket and mailbox go (also a fork child's copies of
 * its parent's: the parent's owner thread still serves those). */
static void conn_drop(struct conn *cn)
{
	if (cn->fd >= 0)
		close(cn->fd);
	if (cn->mb)
		munmap(cn->mb, NVS_MBOX_SIZE);
	cn->fd = -1;
	cn->mb = NULL;
}

static void conn_free(void *p)
{
	conn_drop(p);
	free(p);
}

/* The mailbox whose memfd came with the hello reply (the socket alone
 * when there is none or it cannot be mapped). */
static void conn_map(struct conn *cn, int memfd)
{
	cn->mb = NULL;
	cn->seq = 0;
	if (memfd < 0)
		return;
	void *va = mmap(NULL, NVS_MBOX_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	close(memfd);
	if (va != MAP_FAILED)
		cn->mb = va;
}

static ssize_t xfer_flags(int fd, bool out, struct nvs_msg *m, void *pl, size_t plen, int *fdp,
			  int flags);
static ssize_t xfer(int fd, bool out, struct nvs_msg *m, void *pl, size_t plen, int *fdp)
{
	return xfer_flags(fd, out, m, pl, plen, fdp, 0);
}

/* How long a call polls for its reply before it sleeps, at most (see
 * abi/serve.c: a sleeping thread's wake-up costs more than a short call):
 * NVRING_CLIENT_SPIN_US, default 2000. Within that, a call polls for twice
 * the recent mean time of this thread's calls (and 20 us at least): a
 * short call (a submission) is caught awake, and a long wait (for the
 * device, a timeout) sleeps early instead of taking a CPU from the owner
 * and from QEMU's device emulation. */
static uint64_t client_spin_ns(void)
{
	static _Atomic uint64_t ns;
	uint64_t v = atomic_load_explicit(&ns, memory_order_relaxed);
	if (!v) {
		const char *e = getenv("NVRING_CLIENT_SPIN_US");
		v = (e && *e ? strtoull(e, NULL, 10) : 2000) * 1000 + 1;
		atomic_store_explicit(&ns, v, memory_order_relaxed);
	}
	return v - 1;
}

static uint64_t mono_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static __thread uint64_t call_mean_ns;   /* EWMA (1/8) of this thread's calls */

/* How long this call polls before it sleeps (see client_spin_ns()). */
static uint64_t spin_window(void)
{
	uint64_t cap = client_spin_ns(), spin = 2 * call_mean_ns;
	if (spin < 20000)
		spin = 20000;
	return spin > cap ? cap : spin;
}

static void call_took(uint64_t t0)
{
	uint64_t took = mono_ns() - t0;
	call_mean_ns = call_mean_ns ? call_mean_ns - call_mean_ns / 8 + took / 8 : took;
}

/* A call through the mailbox (struct nvs_mbox, the protocol there): its
 * result in m->ret. Returns > 0, 0 when the owner is gone, or -errno. */
static ssize_t mbox_call(struct conn *cn, struct nvs_msg *m)
{
	struct nvs_mbox *mb = cn->mb;
	uint64_t t0 = mono_ns(), spin = spin_window();
	memcpy(&mb->req, m, sizeof(*m));
	uint32_t seq = ++cn->seq;
	__atomic_store_n(&mb->req_seq, seq, __ATOMIC_SEQ_CST);
	if (!__atomic_load_n(&mb->owner_awake, __ATOMIC_SEQ_CST)) {
		struct nvs_msg k = { .op = NVS_KICK };
		ssize_t n = xfer(cn->fd, true, &k, NULL, 0, NULL);
		if (n < 0)
			return n;
	}
	for (;;) {
		if (__atomic_load_n(&mb->rep_seq, __ATOMIC_ACQUIRE) == seq)
			goto done;
		uint64_t t = mono_ns() - t0;
		if (t > spin)
			break;
		if (t > 5000)
			sched_yield();   /* the owner's thread may share this CPU */
	}
	__atomic_store_n(&mb->client_sleeps, 1, __ATOMIC_SEQ_CST);
	for (;;) {
		/* answered meanwhile: if we take our flag back no kick comes,
		 * else the owner took it and its kick is on the way */
		if (__atomic_load_n(&mb->rep_seq, __ATOMIC_SEQ_CST) == seq &&
		    __atomic_exchange_n(&mb->client_sleeps, 0, __ATOMIC_SEQ_CST))
			goto done;
		struct nvs_msg k;
		ssize_t n = xfer(cn->fd, false, &k, NULL, 0, NULL);
		if (n <= 0)
			return n;
		if (k.op != NVS_KICK)
			return -EPROTO;
		if (__atomic_load_n(&mb->rep_seq, __ATOMIC_ACQUIRE) == seq)
			goto done;
		__atomic_store_n(&mb->client_sleeps, 1, __ATOMIC_SEQ_CST);
	}
done:
	m->ret = mb->ret;
	call_took(t0);
	return (ssize_t)sizeof(*m);
}

static ssize_t reply_wait(int fd, struct nvs_msg *m, void *pl, size_t plen, int *fdp)
{
	uint64_t cap = client_spin_ns(), t0 = mono_ns(), spin = spin_window();
	ssize_t n = -EAGAIN;
	while (cap) {
		n = xfer_flags(fd, false, m, pl, plen, fdp, MSG_DONTWAIT);
		if (n != -EAGAIN || mono_ns() - t0 > spin)
			break;
		sched_yield();
	}
	if (n == -EAGAIN)
		n = xfer(fd, false, m, pl, plen, fdp);
	call_took(t0);
	return n;
}

static ssize_t xfer_flags(int fd, bool out, struct nvs_msg *m, void *pl, size_t plen, int *fdp,
			  int flags)
{
	if (out)
		return nvr_msg_send(fd, m, sizeof(*m), pl, plen, fdp ? *fdp : -1);
	int got;
	ssize_t n = nvr_msg_recv(fd, m, sizeof(*m), pl, plen, &got, flags);
	if (fdp)
		*fdp = got;
	else if (got >= 0)
		close(got);
	if (n > 0 && (size_t)n < sizeof(*m)) {
		if (fdp && *fdp >= 0)
			close(*fdp);
		if (fdp)
			*fdp = -1;
		return -EPROTO;
	}
	return n;
}

/* Connect and say hello; the reply into @h. Returns the socket or -errno,
 * with one line saying why when the owner refused. */
static int dial(const char *path, struct nvs_hello_reply *h, bool quiet, int *mbfd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	/* The owner copies our data with process_vm_readv/writev: under Yama
	 * (ptrace_scope 1) a process may only be reached by a tracer it names */
	struct ucred peer;
	socklen_t pl = sizeof(peer);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &pl) == 0 && peer.pid > 0)
		prctl(PR_SET_PTRACER, (unsigned long)peer.pid, 0, 0, 0);
	static const uint64_t probe = NVS_MAGIC;
	struct nvs_msg m = { .op = NVS_HELLO,
			     .a = { NVS_MAGIC, NVS_VERSION, (int64_t)(uintptr_t)&probe,
				    NVS_HELLO_MBOX } };
	/* a refusing owner answers and closes without reading: its reply may
	 * be there even when our hello could not be sent */
	xfer(fd, true, &m, NULL, 0, NULL);
	_Alignas(8) char buf[NVS_MAX_PAYLOAD];
	ssize_t n = xfer(fd, false, &m, buf, sizeof(buf), mbfd);
	if (n <= 0) {
		close(fd);
		return n < 0 ? (int)n : -ECONNRESET;
	}
	if (m.ret < 0 || (size_t)n - sizeof(m) < sizeof(*h)) {
		if (*mbfd >= 0)
			close(*mbfd);
		*mbfd = -1;
	}
	size_t plen = (size_t)n - sizeof(m);
	if (m.ret < 0) {
		if (!quiet) {
			buf[plen ? (plen < sizeof(buf) ? plen : sizeof(buf)) - 1 : 0] = 0;
			nvr_log(NVR_LOG_ERR, "%s: %s", path, plen ? buf : "refused");
		}
		close(fd);
		return (int)m.ret;
	}
	if (plen < sizeof(*h)) {
		close(fd);
		return -EPROTO;
	}
	memcpy(h, buf, sizeof(*h));
	return fd;
}

/* This thread's connection to @c's owner, made when needed. */
static int conn_get(struct nvr_ctrlr *c)
{
	struct nvr_remote *rm = c->remote;
	uint32_t gen = atomic_load(&fork_gen);
	struct conn *cn = pthread_getspecific(rm->key);
	if (cn && cn->gen == gen)
		return cn->fd;
	if (!cn) {
		cn = calloc(1, sizeof(*cn));
		if (!cn)
			return -ENOMEM;
		cn->fd = -1;
		pthread_setspecific(rm->key, cn);
	}
	conn_drop(cn);    /* our copy of the parent's connection */
	struct nvs_hello_reply h;
	int mbfd;
	int fd = dial(rm->path, &h, false, &mbfd);
	if (fd < 0)
		return fd;
	cn->fd = fd;
	cn->gen = gen;
	conn_map(cn, mbfd);
	if (atomic_exchange(&rm->gen_seen, gen) != gen) {
		/* a new process (fork child): the owner must learn what it
		 * inherited (its rings and namespace descriptors) */
		if (rm->owner_pidfd >= 0)
			close(rm->owner_pidfd);
		rm->owner_pidfd = (int)syscall(SYS_pidfd_open, rm->owner_pid, 0);
		if (rm->new_process)
			rm->new_process(c);
	}
	return fd;
}

/* The owner is gone: wait until its process has exited (bounded). */
static void owner_wait_exit(struct nvr_remote *rm)
{
	if (rm->owner_pidfd < 0) {
		/* no pidfd (valgrind): look every 10 ms */
		for (int i = 0; i < OWNER_EXIT_WAIT_MS / 10; i++) {
			if (kill(rm->owner_pid, 0) < 0 && errno == ESRCH)
				return;
			struct timespec ts = { 0, 10000000 };
			nanosleep(&ts, NULL);
		}
		return;
	}
	struct pollfd p = { .fd = rm->owner_pidfd, .events = POLLIN };
	while (poll(&p, 1, OWNER_EXIT_WAIT_MS) < 0 && errno == EINTR)
		;
}

int nvr_remote_call(struct nvr_ctrlr *c, struct nvs_msg *m, const void *pl, size_t plen,
		    void *rpl, size_t rmax, int sendfd, int *rfd)
{
	struct nvr_remote *rm = c->remote;
	if (rfd)
		*rfd = -1;
	if (atomic_load_explicit(&rm->dead, memory_order_acquire))
		return -ENODEV;
	int fd = conn_get(c);
	if (fd < 0) {
		if (fd == -ECONNREFUSED || fd == -ENOENT || fd == -ECONNRESET) {
			owner_wait_exit(rm);
			atomic_store(&rm->dead, true);
			return -ENODEV;
		}
		return fd;
	}
	uint32_t op = m->op;
	m->len = (uint32_t)plen;
	int cpu = sched_getcpu();
	m->ret = cpu >= 0 ? cpu + 1 : 0;
	struct conn *cn = pthread_getspecific(rm->key);
	ssize_t n;
	if (cn && cn->mb && !plen && sendfd < 0 && !rmax && !rfd) {
		n = mbox_call(cn, m);
	} else {
		n = xfer(fd, true, m, (void *)pl, plen, &sendfd);
		if (n >= 0)
			n = reply_wait(fd, m, rpl, rmax, rfd);
	}
	if (n <= 0 || m->op != op) {
		if (rfd && *rfd >= 0) {
			close(*rfd);
			*rfd = -1;
		}
		if (n == 0 || n == -ECONNRESET || n == -EPIPE) {
			nvr_log(NVR_LOG_ERR, "%s: the owner process is gone: its rings complete "
				"with -ENODEV", rm->path);
			/* dead only once it has exited: then nothing of it is
			 * still to come (see nvr_remote_dead()'s users) */
			owner_wait_exit(rm);
			atomic_store_explicit(&rm->dead, true, memory_order_release);
			return -ENODEV;
		}
		return n < 0 ? (int)n : -EPROTO;
	}
	return (int)m->ret;
}

bool nvr_remote_dead(const struct nvr_ctrlr *c)
{
	return atomic_load_explicit(&c->remote->dead, memory_order_acquire);
}

bool nvr_remote_check_owner(struct nvr_ctrlr *c)
{
	struct nvr_remote *rm = c->remote;
	if (atomic_load_explicit(&rm->dead, memory_order_acquire))
		return true;
	bool gone;
	if (rm->owner_pidfd >= 0) {
		struct pollfd p = { .fd = rm->owner_pidfd, .events = POLLIN };
		gone = poll(&p, 1, 0) > 0;
	} else {
		gone = kill(rm->owner_pid, 0) < 0 && errno == ESRCH;
	}
	if (gone) {
		nvr_log(NVR_LOG_ERR, "%s: the owner process is gone: its queue pairs complete with "
			"-ENODEV", rm->path);
		atomic_store_explicit(&rm->dead, true, memory_order_release);
	}
	return gone;
}

int nvr_remote_ns_fd(struct nvr_ctrlr *c, uint32_t nsid)
{
	struct nvr_remote *rm = c->remote;
	if (!nsid)
		return 0;
	uint32_t i = 0;
	while (i < c->nns && c->ns[i].info.nsid != nsid)
		i++;
	if (i == c->nns)
		return -EINVAL;
	pthread_mutex_lock(&rm->ns_lock);
	int fd = rm->nsfd[i];
	if (fd <= 0) {
		fd = memfd_create("nvring-ns", MFD_CLOEXEC);
		if (fd >= 0) {
			struct nvs_msg m = { .op = NVS_NS_BIND, .a = { fd, nsid } };
			int rc = nvr_remote_call(c, &m, NULL, 0, NULL, 0, -1, NULL);
			if (rc < 0) {
				close(fd);
				fd = rc;
			} else {
				rm->nsfd[i] = fd;
			}
		} else {
			fd = -errno;
		}
	}
	pthread_mutex_unlock(&rm->ns_lock);
	return fd;
}

void nvr_remote_set_new_process(struct nvr_ctrlr *c, void (*fn)(struct nvr_ctrlr *c))
{
	c->remote->new_process = fn;
}

NVR_API int nvr_ctrlr_connect(const char *path, struct nvr_ctrlr **out)
{
	if (!path || !out)
		return -EINVAL;
	pthread_once(&fork_once, fork_hook);
	struct nvs_hello_reply h;
	int mbfd;
	int fd = dial(path, &h, false, &mbfd);
	if (fd < 0)
		return fd;
	struct nvr_ctrlr *c = calloc(1, sizeof(*c));
	struct nvr_remote *rm = calloc(1, sizeof(*rm));
	struct conn *cn = calloc(1, sizeof(*cn));
	if (h.nns > NVS_MAX_NS)
		h.nns = NVS_MAX_NS;
	struct nvr_ns *ns = calloc(h.nns ? h.nns : 1, sizeof(*ns));
	if (!c || !rm || !cn || !ns || pthread_key_create(&rm->key, conn_free)) {
		free(c);
		free(rm);
		free(cn);
		free(ns);
		close(fd);
		if (mbfd >= 0)
			close(mbfd);
		return -ENOMEM;
	}
	snprintf(rm->path, sizeof(rm->path), "%s", path);
	pthread_mutex_init(&rm->ns_lock, NULL);
	rm->owner_pid = (pid_t)h.owner_pid;
	rm->owner_pidfd = (int)syscall(SYS_pidfd_open, rm->owner_pid, 0);
	if (rm->owner_pidfd >= 0)
		fcntl(rm->owner_pidfd, F_SETFD, FD_CLOEXEC);
	atomic_init(&rm->gen_seen, atomic_load(&fork_gen));
	cn->fd = fd;
	cn->gen = atomic_load(&fork_gen);
	conn_map(cn, mbfd);
	pthread_setspecific(rm->key, cn);
	c->remote = rm;
	snprintf(c->info.bdf, sizeof(c->info.bdf), "%.15s", h.bdf);
	c->info.vwc = h.vwc != 0;
	c->info.max_xfer = h.max_xfer;
	for (uint32_t i = 0; i < h.nns; i++) {
		ns[i].info.nsid = h.ns[i].nsid;
		ns[i].info.lba_size = h.ns[i].lba_size;
		ns[i].info.nlba = ns[i].info.ncap = h.ns[i].nblocks;
		ns[i].info.dlfeat = h.ns[i].dlfeat;
		ns[i].lba_shift = h.ns[i].lba_size ? (uint32_t)__builtin_ctz(h.ns[i].lba_size) : 0;
	}
	c->ns = ns;
	c->nns = h.nns;
	c->info.nn = h.nns;
	*out = c;
	return 0;
}

NVR_API int nvr_ctrlr_connect_bdf(const char *bdf, struct nvr_ctrlr **out)
{
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	if (!bdf || !out)
		return -EINVAL;
	if (nvr_remote_socket_path(bdf, path, sizeof(path)) < 0)
		return -ENAMETOOLONG;
	int rc = nvr_ctrlr_connect(path, out);
	/* a socket file nobody listens on: a dead owner's */
	return rc == -ECONNREFUSED ? -ENOENT : rc;
}

NVR_API int nvr_ctrlr_open(const char *bdf, const struct nvr_ctrlr_opts *opts,
			   struct nvr_ctrlr **out)
{
	int rc = nvr_ctrlr_connect_bdf(bdf, out);
	return rc == -ENOENT ? nvr_ctrlr_attach(bdf, opts, out) : rc;
}

int nvr_remote_mem_alloc(struct nvr_ctrlr *c, size_t len, void **buf)
{
	struct nvr_remote *rm = c->remote;
	size_t bytes = (len + 4095) & ~(size_t)4095;
	struct rmem *m = malloc(sizeof(*m));
	void *va = bytes >= len ? mmap(NULL, bytes, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) : MAP_FAILED;
	if (!m || va == MAP_FAILED) {
		free(m);
		return -ENOMEM;
	}
	m->va = va;
	m->len = bytes;
	pthread_mutex_lock(&rm->ns_lock);
	m->next = rm->mem;
	rm->mem = m;
	pthread_mutex_unlock(&rm->ns_lock);
	*buf = va;
	return 0;
}

int nvr_remote_mem_free(struct nvr_ctrlr *c, void *buf)
{
	struct nvr_remote *rm = c->remote;
	struct rmem *m = NULL;
	pthread_mutex_lock(&rm->ns_lock);
	for (struct rmem **pp = &rm->mem; *pp; pp = &(*pp)->next)
		if ((*pp)->va == buf) {
			m = *pp;
			*pp = m->next;
			break;
		}
	pthread_mutex_unlock(&rm->ns_lock);
	if (!m)
		return -EINVAL;
	munmap(m->va, m->len);
	free(m);
	return 0;
}

/* nvr_ctrlr_detach() of a connected controller: connections go. */
int nvr_remote_detach(struct nvr_ctrlr *c)
{
	struct nvr_remote *rm = c->remote;
	struct conn *cn = pthread_getspecific(rm->key);
	if (cn) {
		pthread_setspecific(rm->key, NULL);
		conn_free(cn);
	}
	/* other threads' connections close when they exit (the key's
	 * destructor); the key itself is never deleted, so that no
	 * destructor runs on a deleted key */
	if (rm->owner_pidfd >= 0)
		close(rm->owner_pidfd);
	for (uint32_t i = 0; i < NVS_MAX_NS; i++)
		if (rm->nsfd[i] > 0)
			close(rm->nsfd[i]);
	while (rm->mem) {
		struct rmem *m = rm->mem;
		rm->mem = m->next;
		munmap(m->va, m->len);
		free(m);
	}
	free(c->ns);
	free(rm);
	free(c);
	return 0;
}

/* The owner's socket for @bdf: $NVRING_SOCKET, else RUN_DIR/BDF.sock
 * (RUN_DIR: $NVRING_RUN_DIR or /run/nvring, as for the holder file). */
int nvr_remote_socket_path(const char *bdf, char *out, size_t len)
{
	const char *env = getenv("NVRING_SOCKET");
	int n = env && *env ? snprintf(out, len, "%s", env)
			    : snprintf(out, len, "%s/%s.sock", nvr_run_dir(), bdf);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}
