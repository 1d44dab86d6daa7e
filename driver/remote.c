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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "abi/serve_proto.h"
#include "driver/ctrlr.h"
#include "pci/holder.h"
#include "pci/log.h"

#define OWNER_EXIT_WAIT_MS 10000

struct nvr_remote {
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	pid_t owner_pid;
	int owner_pidfd;
	pthread_key_t key;            /* this thread's struct conn */
	_Atomic bool dead;
	_Atomic uint32_t gen_seen;    /* fork generation of the last hello */
	void (*new_process)(struct nvr_ctrlr *c);
};

struct conn {
	int fd;
	uint32_t gen;
};

/* Bumped in every fork child: connections of older generations are the
 * parent's. */
static _Atomic uint32_t fork_gen = 1;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static void on_fork_child(void) { atomic_fetch_add(&fork_gen, 1); }
static void fork_hook(void) { pthread_atfork(NULL, NULL, on_fork_child); }

static void conn_free(void *p)
{
	struct conn *cn = p;
	if (cn->fd >= 0)
		close(cn->fd);
	free(cn);
}

static ssize_t xfer(int fd, bool out, struct nvs_msg *m, void *pl, size_t plen, int *fdp)
{
	struct iovec iov[2] = { { m, sizeof(*m) }, { pl, plen } };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} cbuf;
	memset(&cbuf, 0, sizeof(cbuf));
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = plen ? 2 : 1 };
	ssize_t n;
	if (out) {
		if (fdp && *fdp >= 0) {
			mh.msg_control = cbuf.buf;
			mh.msg_controllen = sizeof(cbuf.buf);
			struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
			h->cmsg_level = SOL_SOCKET;
			h->cmsg_type = SCM_RIGHTS;
			h->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(h), fdp, sizeof(int));
		}
		do {
			n = sendmsg(fd, &mh, MSG_NOSIGNAL);
		} while (n < 0 && errno == EINTR);
		return n < 0 ? -errno : n;
	}
	mh.msg_control = cbuf.buf;
	mh.msg_controllen = sizeof(cbuf.buf);
	do {
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (fdp)
		*fdp = -1;
	if (n <= 0)
		return n < 0 ? -errno : 0;
	for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h))
		if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS) {
			int got;
			memcpy(&got, CMSG_DATA(h), sizeof(int));
			if (fdp && *fdp < 0)
				*fdp = got;
			else
				close(got);
		}
	if ((size_t)n < sizeof(*m))
		return -EPROTO;
	return n;
}

/* Connect and say hello; the reply into @h. Returns the socket or -errno,
 * with one line saying why when the owner refused. */
static int dial(const char *path, struct nvs_hello_reply *h, bool quiet)
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
	struct nvs_msg m = { .op = NVS_HELLO, .a = { NVS_MAGIC, NVS_VERSION } };
	/* a refusing owner answers and closes without reading: its reply may
	 * be there even when our hello could not be sent */
	xfer(fd, true, &m, NULL, 0, NULL);
	_Alignas(8) char buf[NVS_MAX_PAYLOAD];
	ssize_t n = xfer(fd, false, &m, buf, sizeof(buf), NULL);
	if (n <= 0) {
		close(fd);
		return n < 0 ? (int)n : -ECONNRESET;
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
	if (cn->fd >= 0)
		close(cn->fd);    /* our copy of the parent's connection */
	cn->fd = -1;
	struct nvs_hello_reply h;
	int fd = dial(rm->path, &h, false);
	if (fd < 0)
		return fd;
	cn->fd = fd;
	cn->gen = gen;
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
			atomic_store(&rm->dead, true);
			owner_wait_exit(rm);
			return -ENODEV;
		}
		return fd;
	}
	uint32_t op = m->op;
	m->len = (uint32_t)plen;
	ssize_t n = xfer(fd, true, m, (void *)pl, plen, &sendfd);
	if (n >= 0)
		n = xfer(fd, false, m, rpl, rmax, rfd);
	if (n <= 0 || m->op != op) {
		if (rfd && *rfd >= 0) {
			close(*rfd);
			*rfd = -1;
		}
		if (n == 0 || n == -ECONNRESET || n == -EPIPE) {
			nvr_log(NVR_LOG_ERR, "%s: the owner process is gone: its rings complete "
				"with -ENODEV", rm->path);
			atomic_store_explicit(&rm->dead, true, memory_order_release);
			owner_wait_exit(rm);
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
	int fd = dial(path, &h, false);
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
		return -ENOMEM;
	}
	snprintf(rm->path, sizeof(rm->path), "%s", path);
	rm->owner_pid = (pid_t)h.owner_pid;
	rm->owner_pidfd = (int)syscall(SYS_pidfd_open, rm->owner_pid, 0);
	if (rm->owner_pidfd >= 0)
		fcntl(rm->owner_pidfd, F_SETFD, FD_CLOEXEC);
	atomic_init(&rm->gen_seen, atomic_load(&fork_gen));
	cn->fd = fd;
	cn->gen = atomic_load(&fork_gen);
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
