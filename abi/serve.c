/* SPDX-License-Identifier: MIT */
/*
 * The owner side of abi/serve_proto.h: one connection's requests, run as
 * this process's own ring calls on rings served to the connection's
 * process (abi/served.h says what differs for such a ring). The listening
 * socket, who may connect and the threads are the caller's (`nvring serve`,
 * tools/cmd_serve.c): nvr_serve_conn() serves one accepted connection until
 * it closes.
 *
 * Clients: one struct ur_client per process (by pid, among live ones), any
 * number of connections each (one per client thread that makes calls).
 * When a process's last connection closes -- it exited, or was killed --
 * every ring it holds is closed as nvr_uring_close() closes one: commands
 * in the device complete or are ended by deleting the queue pair, the
 * bounce memory and the queue pair are freed. One log line says so.
 *
 * What a client can reach: its own rings (ids are checked against the
 * rings it holds), its own memory (process_vm on its pid), namespaces of
 * this controller. Every length and count in a request is checked here or
 * by the ring code exactly as for a program's own system call.
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "abi/ring.h"
#include "abi/serve_proto.h"
#include "driver/ctrlr.h"
#include "driver/msg.h"
#include "pci/log.h"

#define NVS_MAX_HOLDERS 16   /* processes sharing one ring (fork) */

struct served_ring {
	int fd;                      /* our ring fd: the ring id */
	ino_t ino;                   /* its memfd (RING_ADOPT finds it by this) */
	struct ur_client *holders[NVS_MAX_HOLDERS];
	unsigned nholders;
	struct served_ring *next;
};

struct ur_client_rec {
	struct ur_client c;
	unsigned conns;              /* live connections (serve_lock) */
	char comm[32];
};

static pthread_mutex_t serve_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ur_client *clients;       /* with live connections */
static struct served_ring *srings;

/* ---- clients ---- */

struct ur_ns *ur_client_ns_get(struct ur_client *c, int fd)
{
	struct ur_ns *ns = NULL;
	pthread_mutex_lock(&c->lock);
	for (unsigned i = 0; i < c->nns; i++)
		if (c->ns[i].fd == fd) {
			ns = c->ns[i].ns;
			atomic_fetch_add_explicit(&ns->obj.refs, 1, memory_order_relaxed);
			break;
		}
	pthread_mutex_unlock(&c->lock);
	return ns;
}

int ur_client_getfd(struct ur_client *c, int fd)
{
	if (fd < 0 || c->pidfd < 0)
		return -EBADF;
	int got = (int)syscall(SYS_pidfd_getfd, c->pidfd, fd, 0);
	if (got < 0)
		return -errno;
	fcntl(got, F_SETFD, FD_CLOEXEC);
	return got;
}

bool ur_client_gone(const struct ur_client *c)
{
	if (c->pidfd < 0)
		return kill(c->pid, 0) < 0 && errno == ESRCH;
	struct pollfd pfd = { .fd = c->pidfd, .events = POLLIN };
	return poll(&pfd, 1, 0) > 0;
}

static void client_ns_clear(struct ur_client *c)
{
	for (unsigned i = 0; i < c->nns; i++)
		ur_ns_put(c->ns[i].ns);
	free(c->ns);
	c->ns = NULL;
	c->nns = c->ns_cap = 0;
}

void ur_client_put(struct ur_client *c)
{
	/* acq_rel: every user's accesses before the free */
	if (!c || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
		return;
	client_ns_clear(c);
	if (c->pidfd >= 0)
		close(c->pidfd);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static void read_comm(pid_t pid, char *out, size_t len)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	out[0] = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, out, len - 1);
	close(fd);
	if (n < 0)
		n = 0;
	out[n] = 0;
	char *nl = strchr(out, '\n');
	if (nl)
		*nl = 0;
}

/* The process's client (serve_lock held), made on its first connection. */
static struct ur_client_rec *client_join(pid_t pid, uid_t uid, gid_t gid, int *err)
{
	for (struct ur_client *c = clients; c; c = c->next)
		if (c->pid == pid) {
			struct ur_client_rec *rec = (struct ur_client_rec *)c;
			rec->conns++;
			return rec;
		}
	struct ur_client_rec *rec = calloc(1, sizeof(*rec));
	if (!rec) {
		*err = -ENOMEM;
		return NULL;
	}
	struct ur_client *c = &rec->c;
	c->pid = pid;
	c->uid = uid;
	c->gid = gid;
	/* (no pidfd where the kernel -- or valgrind -- lacks pidfd_open:
	 * then kill(pid, 0) tells the death, and no fd can be taken) */
	c->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (c->pidfd >= 0)
		fcntl(c->pidfd, F_SETFD, FD_CLOEXEC);
	pthread_mutex_init(&c->lock, NULL);
	atomic_init(&c->refs, 1);     /* the list's, dropped when its last connection goes */
	read_comm(pid, rec->comm, sizeof(rec->comm));
	rec->conns = 1;
	c->next = clients;
	clients = c;
	return rec;
}

static struct served_ring *sring_find(int id, struct ur_client *c)
{
	for (struct served_ring *s = srings; s; s = s->next)
		if (s->fd == id) {
			for (unsigned i = 0; i < s->nholders; i++)
				if (s->holders[i] == c)
					return s;
			return NULL;
		}
	return NULL;
}

/* Drop @c's hold on @s (serve_lock held); true when nobody holds it now
 * (the caller closes it, unlinked). */
static bool sring_drop(struct served_ring *s, struct ur_client *c)
{
	for (unsigned i = 0; i < s->nholders; i++)
		if (s->holders[i] == c) {
			s->holders[i] = s->holders[--s->nholders];
			break;
		}
	if (s->nholders)
		return false;
	for (struct served_ring **pp = &srings; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	return true;
}

/* A connection ended. The last of its process: every ring it holds goes. */
static void client_leave(struct ur_client_rec *rec)
{
	struct ur_client *c = &rec->c;
	struct served_ring *closing = NULL;
	pthread_mutex_lock(&serve_lock);
	if (--rec->conns) {
		pthread_mutex_unlock(&serve_lock);
		return;
	}
	for (struct ur_client **pp = &clients; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	for (struct served_ring *s = srings, *next; s; s = next) {
		next = s->next;
		bool held = false;
		for (unsigned i = 0; i < s->nholders; i++)
			held |= s->holders[i] == c;
		if (held && sring_drop(s, c)) {
			s->next = closing;
			closing = s;
		}
	}
	pthread_mutex_unlock(&serve_lock);
	unsigned nrings = 0, inflight = 0;
	while (closing) {
		struct served_ring *s = closing;
		closing = s->next;
		int err;
		struct ur_ring *r = ur_ring_get(s->fd, &err);
		if (r)
			inflight += r->in_device;
		nvr_uring_close(s->fd);
		free(s);
		nrings++;
	}
	nvr_log(nrings ? NVR_LOG_INFO : NVR_LOG_DEBUG, "serve: client pid %d (%s, uid %u) gone: %u ring%s closed, %u command%s "
		"ended", (int)c->pid, rec->comm[0] ? rec->comm : "?", (unsigned)c->uid, nrings,
		nrings == 1 ? "" : "s", inflight, inflight == 1 ? "" : "s");
	ur_client_put(c);
}

/* ---- messages ---- */

static ssize_t recv_msg_flags(int sock, struct nvs_msg *m, void *payload, size_t max, int *fd,
			      int flags);
static ssize_t recv_msg(int sock, struct nvs_msg *m, void *payload, size_t max, int *fd)
{
	return recv_msg_flags(sock, m, payload, max, fd, 0);
}

static uint64_t mono_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* How long a connection's thread polls for the next request before it
 * sleeps in recvmsg(): waking a sleeping thread costs far more than a call
 * (measured in the TCG guest: a NOP round trip through the owner took
 * 1.5 ms with both sides sleeping, against 2.4 us for the NOP in-process),
 * so a busy client's next call is caught awake; an idle one lets us sleep
 * after this window. NVRING_SERVE_SPIN_US, default 2000. */
static uint64_t serve_spin_ns(void)
{
	static _Atomic uint64_t ns;
	uint64_t v = atomic_load_explicit(&ns, memory_order_relaxed);
	if (!v) {
		const char *e = getenv("NVRING_SERVE_SPIN_US");
		v = (e && *e ? strtoull(e, NULL, 10) : 2000) * 1000 + 1;
		atomic_store_explicit(&ns, v, memory_order_relaxed);
	}
	return v - 1;
}

/* A connection's mailbox (struct nvs_mbox), when its client asked for one:
 * @seen is the last request number taken from it. */
struct mbox {
	struct nvs_mbox *mb;
	uint32_t seen;
};

/* A request in the mailbox: copied out once (the client may change it
 * under us; what we serve is this copy). */
static bool mbox_take(struct mbox *x, struct nvs_msg *m, int order)
{
	if (!x->mb)
		return false;
	uint32_t seq = __atomic_load_n(&x->mb->req_seq, order);
	if (seq == x->seen)
		return false;
	memcpy(m, &x->mb->req, sizeof(*m));
	m->len = 0;
	x->seen = seq;
	/* only calls without payload or descriptors come this way */
	if (m->op != NVS_ENTER && m->op != NVS_REGISTER && m->op != NVS_CLOSE &&
	    m->op != NVS_NS_BIND && m->op != NVS_NS_UNBIND)
		m->op = 0;   /* -EINVAL */
	return true;
}

/* A kick carries nothing: a descriptor a client sent with one is closed
 * (kept, a client could fill our descriptor table). */
static void kick_drop(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* The next request, from the mailbox or the socket (*@from_mbox says
 * which): polled for the spin window, then waited for in recvmsg().
 * Polling the mailbox costs no system call; the socket, which brings the
 * calls that carry data or descriptors and tells of the client's end, is
 * looked at every 20 us of it. */
static ssize_t recv_next(int sock, struct mbox *x, struct nvs_msg *m, void *payload, size_t max,
			 int *fd, bool *from_mbox)
{
	uint64_t spin = serve_spin_ns(), t0 = mono_ns(), sock_at = 0;
	*from_mbox = false;
	*fd = -1;
	if (x->mb)
		__atomic_store_n(&x->mb->owner_awake, 1, __ATOMIC_SEQ_CST);
	for (;;) {
		if (mbox_take(x, m, __ATOMIC_ACQUIRE)) {
			*from_mbox = true;
			return (ssize_t)sizeof(*m);
		}
		uint64_t t = mono_ns();
		if (!x->mb || t >= sock_at) {
			ssize_t n = recv_msg_flags(sock, m, payload, max, fd, MSG_DONTWAIT);
			if (n > 0 && m->op == NVS_KICK) {
				kick_drop(fd);
				continue;   /* look at the mailbox */
			}
			if (n != -EAGAIN)
				return n;
			sock_at = t + 20000;
		}
		if (t - t0 > spin)
			break;
		if (!x->mb || t - t0 > 5000)
			sched_yield();   /* a client on this CPU gets to make the call */
	}
	for (;;) {
		if (x->mb) {
			/* asleep from here: the client kicks, or we see its request */
			__atomic_store_n(&x->mb->owner_awake, 0, __ATOMIC_SEQ_CST);
			if (mbox_take(x, m, __ATOMIC_SEQ_CST)) {
				*from_mbox = true;
				return (ssize_t)sizeof(*m);
			}
		}
		ssize_t n = recv_msg(sock, m, payload, max, fd);
		if (n > 0 && m->op == NVS_KICK) {
			kick_drop(fd);
			if (x->mb)
				__atomic_store_n(&x->mb->owner_awake, 1, __ATOMIC_SEQ_CST);
			if (mbox_take(x, m, __ATOMIC_SEQ_CST)) {
				*from_mbox = true;
				return (ssize_t)sizeof(*m);
			}
			continue;   /* a kick for a request already served */
		}
		return n;
	}
}

/* The reply to a mailbox request; a sleeping client is kicked (without
 * blocking: a client that never reads its kicks only loses its own). */
static void mbox_reply(int sock, struct mbox *x, int64_t ret)
{
	struct nvs_mbox *mb = x->mb;
	mb->ret = ret;
	__atomic_store_n(&mb->rep_seq, x->seen, __ATOMIC_RELEASE);
	if (__atomic_exchange_n(&mb->client_sleeps, 0, __ATOMIC_SEQ_CST)) {
		struct nvs_msg k = { .op = NVS_KICK };
		if (send(sock, &k, sizeof(k), MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
			/* its socket is full or gone: its end is seen by recv */
		}
	}
}

/* A mailbox for this connection: a sealed page, mapped here; its memfd
 * (for the hello reply) in *@memfd. */
static int mbox_make(struct mbox *x, int *memfd)
{
	int fd = memfd_create("nvring-mbox", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	void *va = MAP_FAILED;
	if (ftruncate(fd, NVS_MBOX_SIZE) == 0 &&
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0)
		va = mmap(NULL, NVS_MBOX_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (va == MAP_FAILED) {
		int err = -errno;
		close(fd);
		return err;
	}
	x->mb = va;
	x->seen = 0;
	*memfd = fd;
	return 0;
}

static ssize_t recv_msg_flags(int sock, struct nvs_msg *m, void *payload, size_t max, int *fd,
			      int flags)
{
	ssize_t n = nvr_msg_recv(sock, m, sizeof(*m), payload, max, fd, flags);
	if (n <= 0)
		return n;
	if ((size_t)n < sizeof(*m) || m->len != (size_t)n - sizeof(*m)) {
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		return -EPROTO;
	}
	return n;
}

static int send_reply(int sock, struct nvs_msg *m, int64_t ret, const void *payload,
		      size_t len, int fd)
{
	m->ret = ret;
	m->len = (uint32_t)len;
	ssize_t n = nvr_msg_send(sock, m, sizeof(*m), payload, len, fd);
	return n < 0 ? (int)n : 0;
}

NVR_API int nvr_serve_refuse(int sock, const char *why)
{
	/* take the hello first (for a second at most): a socket closed with
	 * unread data resets the connection, and the reply would be lost */
	struct pollfd p = { .fd = sock, .events = POLLIN };
	if (poll(&p, 1, 1000) > 0) {
		uint8_t skip[sizeof(struct nvs_msg)];
		if (recv(sock, skip, sizeof(skip), MSG_DONTWAIT | MSG_TRUNC) < 0) {
			/* nothing to take */
		}
	}
	struct nvs_msg m = { .op = NVS_HELLO };
	size_t len = strlen(why) + 1;
	if (len > NVS_MAX_PAYLOAD)
		len = NVS_MAX_PAYLOAD;
	return send_reply(sock, &m, -EACCES, why, len, -1);
}

static void hello_fill(struct nvr_ctrlr *ctrlr, const char *bdf, struct nvs_hello_reply *h)
{
	memset(h, 0, sizeof(*h));
	h->owner_pid = (uint32_t)getpid();
	snprintf(h->bdf, sizeof(h->bdf), "%s", bdf ? bdf : "");
	const struct nvr_ctrlr_info *ci = nvr_ctrlr_get_info(ctrlr);
	h->vwc = ci && ci->vwc;
	h->max_xfer = ci ? ci->max_xfer : 0;
	uint32_t nsids[NVS_MAX_NS];
	int n = nvr_ctrlr_ns_list(ctrlr, nsids, NVS_MAX_NS);
	for (int i = 0; i < n && i < (int)NVS_MAX_NS; i++) {
		struct nvr_ns_info info;
		if (nvr_ns_get_info(ctrlr, nsids[i], &info) < 0)
			continue;
		struct nvs_ns_desc *d = &h->ns[h->nns++];
		d->nsid = nsids[i];
		d->lba_size = info.lba_size;
		d->nblocks = info.nlba;
		d->dlfeat = info.dlfeat;
	}
}

static int ns_bind(struct nvr_ctrlr *ctrlr, struct ur_client *c, int fd, int64_t nsid)
{
	if (fd < 0 || fd >= (1 << 20))
		return -EBADF;
	if (nsid <= 0 || nsid > UINT32_MAX)
		return -ENOENT;
	struct ur_ns *ns;
	int ret = ur_ns_make(ctrlr, (uint32_t)nsid, &ns);
	if (ret < 0)
		return ret == -EINVAL ? -ENOENT : ret;
	ns->obj.fd = -1;
	pthread_mutex_lock(&c->lock);
	for (unsigned i = 0; i < c->nns; i++)
		if (c->ns[i].fd == fd) {   /* rebound: the client closed and reopened */
			ur_ns_put(c->ns[i].ns);
			c->ns[i].ns = ns;
			pthread_mutex_unlock(&c->lock);
			return 0;
		}
	if (c->nns == c->ns_cap) {
		unsigned cap = c->ns_cap ? 2 * c->ns_cap : 8;
		if (cap > 65536) {
			pthread_mutex_unlock(&c->lock);
			ur_ns_put(ns);
			return -EMFILE;
		}
		struct ur_client_ns *t = realloc(c->ns, cap * sizeof(*t));
		if (!t) {
			pthread_mutex_unlock(&c->lock);
			ur_ns_put(ns);
			return -ENOMEM;
		}
		c->ns = t;
		c->ns_cap = cap;
	}
	c->ns[c->nns++] = (struct ur_client_ns){ fd, ns };
	pthread_mutex_unlock(&c->lock);
	return 0;
}

static int ns_unbind(struct ur_client *c, int fd)
{
	int ret = -EBADF;
	pthread_mutex_lock(&c->lock);
	for (unsigned i = 0; i < c->nns; i++)
		if (c->ns[i].fd == fd) {
			ur_ns_put(c->ns[i].ns);
			c->ns[i] = c->ns[--c->nns];
			ret = 0;
			break;
		}
	pthread_mutex_unlock(&c->lock);
	return ret;
}

static int ring_setup(struct nvr_ctrlr *ctrlr, struct ur_client *c, const struct nvs_msg *m,
		      struct io_uring_params *p, size_t plen)
{
	if (plen != sizeof(*p))
		return -EINVAL;
	if (m->a[0] < 0 || m->a[0] > UINT32_MAX)
		return -EINVAL;
	int fd = ur_setup_served(ctrlr, (unsigned)m->a[0], p, c);
	if (fd < 0)
		return fd;
	struct served_ring *s = calloc(1, sizeof(*s));
	struct stat st;
	if (!s || fstat(fd, &st) < 0) {
		free(s);
		nvr_uring_close(fd);
		return -ENOMEM;
	}
	s->fd = fd;
	s->ino = st.st_ino;
	s->holders[s->nholders++] = c;
	pthread_mutex_lock(&serve_lock);
	s->next = srings;
	srings = s;
	pthread_mutex_unlock(&serve_lock);
	return fd;
}

static int ring_adopt(struct ur_client *c, int memfd)
{
	struct stat st;
	if (memfd < 0 || fstat(memfd, &st) < 0)
		return -EBADF;
	int ret = -EBADF;
	pthread_mutex_lock(&serve_lock);
	for (struct served_ring *s = srings; s; s = s->next) {
		if (s->ino != st.st_ino)
			continue;
		/* the fd really is our memfd (same inode on our device) */
		struct stat ours;
		if (fstat(s->fd, &ours) < 0 || ours.st_dev != st.st_dev)
			break;
		ret = s->fd;
		bool held = false;
		for (unsigned i = 0; i < s->nholders; i++)
			held |= s->holders[i] == c;
		if (!held) {
			if (s->nholders == NVS_MAX_HOLDERS)
				ret = -EMFILE;
			else
				s->holders[s->nholders++] = c;
		}
		break;
	}
	pthread_mutex_unlock(&serve_lock);
	return ret;
}

static int ring_close(struct ur_client *c, int id)
{
	pthread_mutex_lock(&serve_lock);
	struct served_ring *s = sring_find(id, c);
	if (!s) {
		pthread_mutex_unlock(&serve_lock);
		return -EBADF;
	}
	bool last = sring_drop(s, c);
	pthread_mutex_unlock(&serve_lock);
	if (last) {
		nvr_uring_close(s->fd);
		free(s);
	}
	return 0;
}

static bool ring_held(struct ur_client *c, int64_t id)
{
	if (id < 0 || id > INT32_MAX)
		return false;
	pthread_mutex_lock(&serve_lock);
	bool held = sring_find((int)id, c) != NULL;
	pthread_mutex_unlock(&serve_lock);
	return held;
}

NVR_API int nvr_serve_conn(struct nvr_ctrlr *ctrlr, int sock, const char *bdf)
{
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	if (!ctrlr || getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0)
		return -EINVAL;
	_Alignas(8) uint8_t payload[NVS_MAX_PAYLOAD];
	struct nvs_msg m;
	int fd;
	ssize_t n = recv_msg(sock, &m, payload, sizeof(payload), &fd);
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return n < 0 ? (int)n : 0;
	if (m.op != NVS_HELLO || m.a[0] != NVS_MAGIC || m.a[1] != NVS_VERSION) {
		static const char why[] = "nvring: not an nvring client of this version (protocol "
					  "1): upgrade the program's nvring";
		send_reply(sock, &m, -EPROTO, why, sizeof(why), -1);
		return -EPROTO;
	}
	if (m.a[2]) {
		/* can we reach its memory? (a uid we may not ptrace: no) */
		uint64_t got = 0;
		struct iovec l = { &got, sizeof(got) }, r = { (void *)(uintptr_t)m.a[2], sizeof(got) };
		if (process_vm_readv(cred.pid, &l, 1, &r, 1, 0) != sizeof(got) || got != NVS_MAGIC) {
			char why[200];
			snprintf(why, sizeof(why), "the owner (uid %u) cannot reach the memory of uid %u "
				 "(%s): run nvring serve as root, or as the clients' uid",
				 (unsigned)geteuid(), (unsigned)cred.uid, strerror(errno));
			send_reply(sock, &m, -EACCES, why, strlen(why) + 1, -1);
			nvr_log(NVR_LOG_WARN, "serve: refused pid %d: %s", (int)cred.pid, why);
			return -EACCES;
		}
	}
	int err = 0;
	pthread_mutex_lock(&serve_lock);
	struct ur_client_rec *rec = client_join(cred.pid, cred.uid, cred.gid, &err);
	pthread_mutex_unlock(&serve_lock);
	if (!rec)
		return err;
	struct ur_client *c = &rec->c;
	struct nvs_hello_reply hello;
	hello_fill(ctrlr, bdf, &hello);
	struct mbox mbox = { 0 };
	int mbfd = -1;
	if ((m.a[3] & NVS_HELLO_MBOX) && mbox_make(&mbox, &mbfd) < 0)
		mbfd = -1;   /* the socket alone, then */
	int hsent = send_reply(sock, &m, 0, &hello, sizeof(hello), mbfd);
	if (mbfd >= 0)
		close(mbfd);
	if (hsent < 0)
		goto out;

	for (;;) {
		bool from_mbox;
		n = recv_next(sock, &mbox, &m, payload, sizeof(payload), &fd, &from_mbox);
		if (n <= 0)
			break;
		int64_t ret;
		int rfd = -1;
		size_t rlen = 0;
		ur_tls_client = c;
		switch (m.op) {
		case NVS_SETUP:
			ret = ring_setup(ctrlr, c, &m, (struct io_uring_params *)payload, m.len);
			if (ret >= 0) {
				rfd = (int)ret;
				rlen = sizeof(struct io_uring_params);
			}
			break;
		case NVS_ENTER:
			if (!ring_held(c, m.a[0])) {
				ret = -EBADF;
				break;
			}
			if (m.a[5] < 0 || m.a[5] > INT32_MAX) {
				ret = -EINVAL;
				break;
			}
			ret = nvr_uring_enter((int)m.a[0], (unsigned)m.a[1], (unsigned)m.a[2],
					      (unsigned)m.a[3], (const void *)(uintptr_t)m.a[4],
					      (size_t)m.a[5]);
			break;
		case NVS_REGISTER:
			if (!ring_held(c, m.a[0])) {
				ret = -EBADF;
				break;
			}
			ret = nvr_uring_register((int)m.a[0], (unsigned)m.a[1],
						 (void *)(uintptr_t)m.a[2], (unsigned)m.a[3]);
			break;
		case NVS_CLOSE:
			ret = m.a[0] >= 0 && m.a[0] <= INT32_MAX ? ring_close(c, (int)m.a[0]) : -EBADF;
			break;
		case NVS_NS_BIND:
			ret = m.a[0] >= INT32_MIN && m.a[0] <= INT32_MAX ?
			      ns_bind(ctrlr, c, (int)m.a[0], m.a[1]) : -EBADF;
			break;
		case NVS_NS_UNBIND:
			ret = m.a[0] >= INT32_MIN && m.a[0] <= INT32_MAX ? ns_unbind(c, (int)m.a[0])
									 : -EBADF;
			break;
		case NVS_RING_ADOPT:
			ret = ring_adopt(c, fd);
			break;
		default:
			ret = -EINVAL;
			break;
		}
		ur_tls_client = NULL;
		if (fd >= 0)
			close(fd);
		if (from_mbox) {
			if (rfd >= 0)
				close(rfd);   /* (no mailbox request makes one) */
			mbox_reply(sock, &mbox, ret);
			continue;
		}
		int sent = send_reply(sock, &m, ret, payload, rlen, rfd);
		if (sent < 0)
			break;
	}
out:
	if (mbox.mb)
		munmap(mbox.mb, NVS_MBOX_SIZE);
	client_leave(rec);
	return 0;
}
