/* SPDX-License-Identifier: MIT */
/*
 * The owner (abi/serve.c) and its clients (abi/client.c, driver/remote.c)
 * as separate processes over the software controller model: the owner is a
 * forked child holding the model and serving it on a unix socket; clients
 * are this process and children of it. What each test shows:
 *   serve_rw_matches_data        reads, writes, vectored and fixed I/O,
 *                                fsync and nop through the owner give the
 *                                kernel's results and the right bytes
 *   serve_hostile_sqes_fail_alone  garbage SQEs, bad and foreign buffer
 *                                addresses, other files and another
 *                                client's ring id: each fails with the
 *                                kernel's errno and nothing else changes
 *   serve_client_killed_releases  kill -9 of a client with I/O in flight:
 *                                its queue pairs come back (all of them
 *                                can be allocated again), others go on
 *   serve_owner_killed_enodev    kill -9 of the owner: what it had taken
 *                                and what is submitted after complete with
 *                                -ENODEV, no wait hangs
 *   serve_refused_eacces         a refused client gets -EACCES
 *   serve_fork_child_shares_ring a fork child uses its parent's ring and
 *                                its own, and its exit leaves the parent's
 *   serve_embedded_qpair_io      the embedded API's queue pairs on a
 *                                connected controller: read, write, readv,
 *                                flush, write zeroes, deallocate, errors
 *   serve_mailbox_hostile        a raw client's mailbox (serve_proto.h):
 *                                calls answered through it, calls that
 *                                need the socket refused, garbage numbers
 *                                and unread kicks harm nobody else, and
 *                                the page cannot be shrunk under the owner
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "abi/serve_proto.h"
#include "tests/unit/test_uring_util.h"

#define NS_BLOCKS 2048u     /* 512 B blocks */
#define MAX_IOQ 8

static char sock_path[108], refuse_path[108];
static pid_t owner;

struct conn { struct nvr_ctrlr *c; int fd; };

static void *conn_main(void *p)
{
	struct conn *a = p;
	nvr_serve_conn(a->c, a->fd, "0000:00:00.0");
	close(a->fd);
	free(a);
	return NULL;
}

static int listen_on(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	strcpy(sa.sun_path, path);
	unlink(path);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 16))
		_exit(90);
	return fd;
}

/* The owner process: the model, a serving socket and a refusing one. */
static void owner_main(int ready)
{
	struct tu_env e;
	struct nvme_model_cfg cfg = { .ns_blocks = NS_BLOCKS, .max_ioq = MAX_IOQ };
	struct nvr_pci_dev *dev;
	if (nvme_model_create(&cfg, &e.m, &dev) || nvr_ctrlr_attach_dev(dev, NULL, &e.c))
		_exit(91);
	int l = listen_on(sock_path), rl = listen_on(refuse_path);
	if (write(ready, "x", 1) != 1)
		_exit(92);
	for (;;) {
		struct pollfd p[2] = { { .fd = l, .events = POLLIN }, { .fd = rl, .events = POLLIN } };
		if (poll(p, 2, -1) < 0)
			continue;
		if (p[1].revents) {
			int fd = accept4(rl, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0) {
				nvr_serve_refuse(fd, "test: refused");
				close(fd);
			}
		}
		if (p[0].revents) {
			struct conn *a = malloc(sizeof(*a));
			a->c = e.c;
			a->fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
			pthread_t t;
			if (a->fd < 0 || pthread_create(&t, NULL, conn_main, a)) {
				free(a);
				continue;
			}
			pthread_detach(t);
		}
	}
}

static void owner_start(void)
{
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	owner = fork();
	assert_true(owner >= 0);
	if (!owner) {
		close(pfd[0]);
		owner_main(pfd[1]);
		_exit(0);
	}
	close(pfd[1]);
	char x;
	assert_int_equal(read(pfd[0], &x, 1), 1);
	close(pfd[0]);
}

static void owner_stop(void)
{
	if (owner > 0) {
		kill(owner, SIGKILL);
		waitpid(owner, NULL, 0);
	}
	owner = 0;
}

static int setup(void **state)
{
	(void)state;
	snprintf(sock_path, sizeof(sock_path), "/tmp/nvring-test-serve-%d.sock", (int)getpid());
	snprintf(refuse_path, sizeof(refuse_path), "/tmp/nvring-test-refuse-%d.sock", (int)getpid());
	owner_start();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	owner_stop();
	unlink(sock_path);
	unlink(refuse_path);
	return 0;
}

/* Queue one SQE. */
static struct io_uring_sqe *prep(struct tu_ring *r, uint8_t op, int fd, const void *addr,
				 uint32_t len, uint64_t off, uint64_t ud)
{
	struct io_uring_sqe *s = tu_sqe(r);
	assert_non_null(s);
	s->opcode = op;
	s->fd = fd;
	s->addr = (uintptr_t)addr;
	s->len = len;
	s->off = off;
	s->user_data = ud;
	return s;
}

/* Submit all queued, wait for @n CQEs; results by user_data 1..n into res. */
static void run(struct tu_ring *r, unsigned n, int *res)
{
	tu_flush(r);
	unsigned sub = *r->sq_tail - *r->sq_head;
	assert_int_equal(tu_enter(r, sub, n, IORING_ENTER_GETEVENTS, NULL, 0), (int)sub);
	for (unsigned got = 0; got < n;) {
		struct io_uring_cqe c;
		if (!tu_cqe(r, &c)) {
			assert_int_equal(tu_enter(r, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0), 0);
			continue;
		}
		assert_true(c.user_data >= 1 && c.user_data <= n);
		res[c.user_data - 1] = c.res;
		got++;
	}
}

static void fill(uint8_t *b, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 9));
}

static void test_serve_rw_matches_data(void **state)
{
	(void)state;
	struct nvr_ctrlr *c;
	assert_int_equal(nvr_ctrlr_connect(sock_path, &c), 0);
	struct nvr_ns_info info;
	assert_int_equal(nvr_ns_get_info(c, 1, &info), 0);
	assert_int_equal(info.nlba, NS_BLOCKS);
	assert_int_equal(info.lba_size, 512);
	int ns = nvr_ns_open(c, 1);
	assert_true(ns >= 0);
	struct tu_ring r;
	assert_true(tu_ring_init(&r, c, 8, NULL) >= 0);

	uint8_t *w = aligned_alloc(4096, 16384), *rd = aligned_alloc(4096, 16384);
	fill(w, 16384, 3);
	memset(rd, 0, 16384);
	int res[8];
	prep(&r, IORING_OP_WRITE, ns, w, 8192, 4096, 1);
	prep(&r, IORING_OP_NOP, -1, NULL, 0, 0, 2);
	run(&r, 2, res);
	assert_int_equal(res[0], 8192);
	assert_int_equal(res[1], 0);
	struct iovec iov[2] = { { rd, 4096 }, { rd + 8192, 4096 } };
	prep(&r, IORING_OP_READV, ns, iov, 2, 4096, 1);
	prep(&r, IORING_OP_FSYNC, ns, NULL, 0, 0, 2);
	prep(&r, IORING_OP_READ, ns, rd + 4096, 4096, NS_BLOCKS * 512 - 2048, 3); /* short at end */
	run(&r, 3, res);
	assert_int_equal(res[0], 8192);
	assert_int_equal(res[1], 0);
	assert_int_equal(res[2], 2048);
	assert_memory_equal(rd, w, 4096);
	assert_memory_equal(rd + 8192, w + 4096, 4096);

	/* fixed buffers: registered (client memory: bounced by the owner) */
	struct iovec fb = { w, 16384 };
	assert_int_equal(tu_register(&r, IORING_REGISTER_BUFFERS, &fb, 1), 0);
	fill(w, 16384, 9);
	struct io_uring_sqe *s = prep(&r, IORING_OP_WRITE_FIXED, ns, w, 16384, 65536, 1);
	s->buf_index = 0;
	run(&r, 1, res);
	assert_int_equal(res[0], 16384);
	memset(rd, 0, 16384);
	prep(&r, IORING_OP_READ, ns, rd, 16384, 65536, 1);
	run(&r, 1, res);
	assert_int_equal(res[0], 16384);
	assert_memory_equal(rd, w, 16384);
	s = prep(&r, IORING_OP_READ_FIXED, ns, w + 4096, 4096, 0, 1);
	s->buf_index = 0;
	s = prep(&r, IORING_OP_READ_FIXED, ns, rd, 4096, 0, 2);   /* outside the buffer */
	s->buf_index = 0;
	run(&r, 2, res);
	assert_int_equal(res[0], 4096);
	assert_int_equal(res[1], -EFAULT);
	assert_int_equal(tu_register(&r, IORING_UNREGISTER_BUFFERS, NULL, 0), 0);

	tu_ring_exit(&r);
	assert_int_equal(nvr_ns_close(ns), 0);
	assert_int_equal(nvr_ctrlr_detach(c), 0);
	free(w);
	free(rd);
}

static void test_serve_hostile_sqes_fail_alone(void **state)
{
	(void)state;
	struct nvr_ctrlr *c;
	assert_int_equal(nvr_ctrlr_connect(sock_path, &c), 0);
	int ns = nvr_ns_open(c, 1);
	assert_true(ns >= 0);
	struct tu_ring r, other;
	assert_true(tu_ring_init(&r, c, 16, NULL) >= 0);
	assert_true(tu_ring_init(&other, c, 4, NULL) >= 0);
	uint8_t *buf = aligned_alloc(4096, 8192);
	fill(buf, 8192, 5);
	int res[8];
	prep(&r, IORING_OP_WRITE, ns, buf, 4096, 0, 1);
	run(&r, 1, res);
	assert_int_equal(res[0], 4096);

	/* an unmapped page, a kernel address, NULL, another file, garbage */
	void *hole = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(hole != MAP_FAILED);
	int pipefd[2];
	assert_int_equal(pipe(pipefd), 0);
	prep(&r, IORING_OP_READ, ns, hole, 4096, 0, 1);
	prep(&r, IORING_OP_WRITE, ns, (void *)0xffff888000000000ull, 4096, 0, 2);
	prep(&r, IORING_OP_WRITE, ns, NULL, 4096, 0, 3);
	prep(&r, IORING_OP_READ, pipefd[0], buf, 4096, 0, 4);
	struct io_uring_sqe *s = prep(&r, 250, ns, buf, 4096, 0, 5);
	s->flags = 0x80;   /* not a valid flag either */
	prep(&r, IORING_OP_READ, 12345, buf, 4096, 0, 6);
	prep(&r, IORING_OP_READ, ns, buf, 4096, 0, 7);
	tu_flush(&r);
	unsigned sub = *r.sq_tail - *r.sq_head;
	int ret = tu_enter(&r, sub, 0, 0, NULL, 0);
	assert_true(ret >= 1);
	/* the invalid SQE ends the batch (no SUBMIT_ALL), as in the kernel */
	while (*r.sq_head != *r.sq_tail)
		assert_true(tu_enter(&r, *r.sq_tail - *r.sq_head, 0, 0, NULL, 0) >= 1);
	for (unsigned got = 0; got < 7;) {
		struct io_uring_cqe cq;
		if (!tu_cqe(&r, &cq)) {
			assert_int_equal(tu_enter(&r, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0), 0);
			continue;
		}
		res[cq.user_data - 1] = cq.res;
		got++;
	}
	assert_int_equal(res[0], -EFAULT);
	assert_int_equal(res[1], -EFAULT);
	assert_int_equal(res[2], -EFAULT);
	assert_int_equal(res[3], -EBADF);    /* not a namespace: not reachable through the owner */
	assert_int_equal(res[4], -EINVAL);
	assert_int_equal(res[5], -EBADF);
	assert_int_equal(res[6], 4096);
	uint8_t *back = aligned_alloc(4096, 4096);
	memset(back, 0, 4096);   /* (written by the owner: memcheck cannot see it) */
	prep(&r, IORING_OP_READ, ns, back, 4096, 0, 1);
	run(&r, 1, res);
	assert_int_equal(res[0], 4096);
	assert_memory_equal(back, buf, 4096);   /* the hostile SQEs changed nothing */

	/* garbage in the shared words the owner writes, then a normal I/O */
	*r.sq_flags = ~0u;
	*r.sq_dropped = 0xdead;
	*r.cq_overflow = 0xbeef;
	*r.cq_tail = 12345;
	*r.cq_head = 12345;
	prep(&r, IORING_OP_NOP, -1, NULL, 0, 0, 1);
	tu_flush(&r);
	ret = tu_enter(&r, 1, 0, 0, NULL, 0);
	assert_true(ret >= 0);   /* whatever the ring makes of it: no crash, an answer */
	/* the other ring of the same client is undisturbed */
	prep(&other, IORING_OP_READ, ns, back, 4096, 0, 1);
	run(&other, 1, res);
	assert_int_equal(res[0], 4096);
	assert_memory_equal(back, buf, 4096);

	close(pipefd[0]);
	close(pipefd[1]);
	munmap(hole, 4096);
	tu_ring_exit(&r);
	tu_ring_exit(&other);
	nvr_ns_close(ns);
	nvr_ctrlr_detach(c);
	free(buf);
	free(back);
}

/* A client that takes @n rings with reads in flight, then dies. */
static void client_dies(unsigned n)
{
	pid_t p = fork();
	assert_true(p >= 0);
	if (!p) {
		struct nvr_ctrlr *c;
		if (nvr_ctrlr_connect(sock_path, &c))
			_exit(1);
		int ns = nvr_ns_open(c, 1);
		static uint8_t buf[4096] __attribute__((aligned(4096)));
		for (unsigned i = 0; i < n; i++) {
			struct tu_ring r;
			if (tu_ring_init(&r, c, 32, NULL) < 0)
				_exit(2);
			for (unsigned k = 0; k < 16; k++)
				prep(&r, IORING_OP_READ, ns, buf, 4096, k * 4096, k + 1);
			tu_flush(&r);
			tu_enter(&r, 16, 0, 0, NULL, 0);
		}
		kill(getpid(), SIGKILL);
		_exit(3);
	}
	int st;
	assert_int_equal(waitpid(p, &st, 0), p);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}

static void test_serve_client_killed_releases(void **state)
{
	(void)state;
	client_dies(MAX_IOQ);
	/* every queue pair comes back: this client gets them all */
	struct nvr_ctrlr *c;
	assert_int_equal(nvr_ctrlr_connect(sock_path, &c), 0);
	struct tu_ring r[MAX_IOQ];
	int ok = 0;
	for (int tries = 0; tries < 200 && ok < MAX_IOQ; tries++) {
		int fd = tu_ring_init(&r[ok], c, 4, NULL);
		if (fd >= 0)
			ok++;
		else
			usleep(10000);   /* the owner may still be closing its rings */
	}
	assert_int_equal(ok, MAX_IOQ);
	int ns = nvr_ns_open(c, 1);
	uint8_t *buf = aligned_alloc(4096, 4096);
	int res[1];
	prep(&r[MAX_IOQ - 1], IORING_OP_READ, ns, buf, 4096, 0, 1);
	run(&r[MAX_IOQ - 1], 1, res);
	assert_int_equal(res[0], 4096);
	for (int i = 0; i < ok; i++)
		tu_ring_exit(&r[i]);
	nvr_ns_close(ns);
	nvr_ctrlr_detach(c);
	free(buf);
}

static void test_serve_owner_killed_enodev(void **state)
{
	(void)state;
	struct nvr_ctrlr *c;
	assert_int_equal(nvr_ctrlr_connect(sock_path, &c), 0);
	int ns = nvr_ns_open(c, 1);
	struct tu_ring r;
	assert_true(tu_ring_init(&r, c, 8, NULL) >= 0);
	/* a request the owner holds: a timeout far in the future */
	struct __kernel_timespec ts = { .tv_sec = 3600 };
	struct io_uring_sqe *s = prep(&r, IORING_OP_TIMEOUT, -1, &ts, 1, 0, 1);
	(void)s;
	tu_flush(&r);
	assert_int_equal(tu_enter(&r, 1, 0, 0, NULL, 0), 1);
	owner_stop();
	/* an SQE submitted after */
	uint8_t *buf = aligned_alloc(4096, 4096);
	prep(&r, IORING_OP_READ, ns, buf, 4096, 0, 2);
	tu_flush(&r);
	assert_int_equal(tu_enter(&r, 1, 2, IORING_ENTER_GETEVENTS, NULL, 0), 1);
	int res[2] = { 1, 1 };
	for (unsigned got = 0; got < 2; got++) {
		struct io_uring_cqe cq;
		assert_true(tu_cqe(&r, &cq));
		assert_true(cq.user_data == 1 || cq.user_data == 2);
		res[cq.user_data - 1] = cq.res;
	}
	assert_int_equal(res[0], -ENODEV);
	assert_int_equal(res[1], -ENODEV);
	/* a wait for more than can come ends */
	assert_int_equal(tu_enter(&r, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0), -ENODEV);
	tu_ring_exit(&r);
	nvr_ns_close(ns);
	nvr_ctrlr_detach(c);
	free(buf);
	owner_start();   /* a new owner serves again */
	assert_int_equal(nvr_ctrlr_connect(sock_path, &c), 0);
	assert_int_equal(nvr_ctrlr_detach(c), 0);
}

/* A raw connection with a mailbox: the socket, the mapped page in *@mb. */
static int raw_mbox_conn(struct nvs_mbox **mb, int *memfd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	strcpy(sa.sun_path, sock_path);
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	assert_int_equal(connect(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	struct nvs_msg m = { .op = NVS_HELLO, .a = { NVS_MAGIC, NVS_VERSION, 0, NVS_HELLO_MBOX } };
	assert_int_equal(send(s, &m, sizeof(m), 0), (ssize_t)sizeof(m));
	_Alignas(8) char buf[sizeof(m) + NVS_MAX_PAYLOAD];
	union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int))]; } cb;
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cb.b,
			     .msg_controllen = sizeof(cb.b) };
	assert_true(recvmsg(s, &mh, MSG_CMSG_CLOEXEC) >= (ssize_t)sizeof(m));
	memcpy(&m, buf, sizeof(m));
	assert_int_equal(m.ret, 0);
	struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
	assert_non_null(h);
	assert_int_equal(h->cmsg_type, SCM_RIGHTS);
	memcpy(memfd, CMSG_DATA(h), sizeof(int));
	*mb = mmap(NULL, NVS_MBOX_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, *memfd, 0);
	assert_true(*mb != MAP_FAILED);
	return s;
}

/* One call through the mailbox, by the protocol (polling, kicking a
 * sleeping owner); the owner's result. */
static int64_t raw_mbox_call(int s, struct nvs_mbox *mb, uint32_t *seq, uint32_t op, int64_t a0)
{
	memset(&mb->req, 0, sizeof(mb->req));
	mb->req.op = op;
	mb->req.a[0] = a0;
	__atomic_store_n(&mb->req_seq, ++*seq, __ATOMIC_SEQ_CST);
	if (!__atomic_load_n(&mb->owner_awake, __ATOMIC_SEQ_CST)) {
		struct nvs_msg k = { .op = NVS_KICK };
		assert_int_equal(send(s, &k, sizeof(k), 0), (ssize_t)sizeof(k));
	}
	for (int i = 0; i < 5000 && __atomic_load_n(&mb->rep_seq, __ATOMIC_ACQUIRE) != *seq; i++)
		usleep(1000);
	assert_int_equal(__atomic_load_n(&mb->rep_seq, __ATOMIC_ACQUIRE), *seq);
	return mb->ret;
}

static void test_serve_mailbox_hostile(void **state)
{
	(void)state;
	struct nvs_mbox *mb;
	int memfd;
	int s = raw_mbox_conn(&mb, &memfd);
	/* sealed: a client cannot shrink the page under the owner (SIGBUS) */
	assert_int_equal(ftruncate(memfd, 0), -1);
	assert_int_equal(errno, EPERM);
	uint32_t seq = 0;
	/* calls that need the socket (payload, descriptors) are refused
	 * here; the others are validated as on the socket */
	assert_int_equal(raw_mbox_call(s, mb, &seq, NVS_SETUP, 8), -EINVAL);
	assert_int_equal(raw_mbox_call(s, mb, &seq, NVS_RING_ADOPT, 0), -EINVAL);
	assert_int_equal(raw_mbox_call(s, mb, &seq, NVS_HELLO, NVS_MAGIC), -EINVAL);
	assert_int_equal(raw_mbox_call(s, mb, &seq, 77, 0), -EINVAL);
	assert_int_equal(raw_mbox_call(s, mb, &seq, NVS_ENTER, 12345), -EBADF);
	assert_int_equal(raw_mbox_call(s, mb, &seq, NVS_CLOSE, -1), -EBADF);
	/* garbage: jumping numbers, a sleep flag never followed by a read
	 * of the kicks (they pile up unread in our socket) */
	for (unsigned i = 0; i < 300; i++) {
		mb->req.op = (uint32_t)(i * 2654435761u);
		mb->req.a[0] = (int64_t)i * 977;
		__atomic_store_n(&mb->client_sleeps, 1, __ATOMIC_SEQ_CST);
		__atomic_store_n(&mb->req_seq, (uint32_t)(i * 40503u), __ATOMIC_SEQ_CST);
		mb->rep_seq = 0xdeadbeef;
		mb->owner_awake = i & 1;
		if (i % 16 == 0) {
			struct nvs_msg k = { .op = NVS_KICK };
			if (send(s, &k, sizeof(k), MSG_DONTWAIT) < 0) {
				/* the owner need not keep up */
			}
		}
	}
	/* another client meanwhile: its I/O is untouched */
	struct nvr_ctrlr *c;
	assert_int_equal(nvr_ctrlr_connect(sock_path, &c), 0);
	int ns = nvr_ns_open(c, 1);
	assert_true(ns >= 0);
	struct tu_ring r;
	assert_true(tu_ring_init(&r, c, 8, NULL) >= 0);
	uint8_t *w = aligned_alloc(4096, 4096), *rd = aligned_alloc(4096, 4096);
	fill(w, 4096, 11);
	int res[2];
	prep(&r, IORING_OP_WRITE, ns, w, 4096, 8192, 1);
	run(&r, 1, res);
	assert_int_equal(res[0], 4096);
	memset(rd, 0, 4096);
	prep(&r, IORING_OP_READ, ns, rd, 4096, 8192, 1);
	prep(&r, IORING_OP_NOP, 0, NULL, 0, 0, 2);
	run(&r, 2, res);
	assert_int_equal(res[0], 4096);
	assert_int_equal(res[1], 0);
	assert_memory_equal(w, rd, 4096);
	/* and the hostile connection itself still gets answers */
	seq = __atomic_load_n(&mb->req_seq, __ATOMIC_SEQ_CST);
	mb->client_sleeps = 0;
	assert_int_equal(raw_mbox_call(s, mb, &seq, NVS_ENTER, 999), -EBADF);
	free(w);
	free(rd);
	tu_ring_exit(&r);
	nvr_ns_close(ns);
	nvr_ctrlr_detach(c);
	munmap(mb, NVS_MBOX_SIZE);
	close(memfd);
	close(s);
}

static void test_serve_refused_eacces(void **state)
{
	(void)state;
	struct nvr_ctrlr *c;
	assert_int_equal(nvr_ctrlr_connect(refuse_path, &c), -EACCES);
	assert_int_equal(nvr_ctrlr_connect("/tmp/nvring-test-no-such.sock", &c), -ENOENT);
}

static void test_serve_fork_child_shares_ring(void **state)
{
	(void)state;
	struct nvr_ctrlr *c;
	assert_int_equal(nvr_ctrlr_connect(sock_path, &c), 0);
	int ns = nvr_ns_open(c, 1);
	struct tu_ring r;
	assert_true(tu_ring_init(&r, c, 8, NULL) >= 0);
	uint8_t *buf = aligned_alloc(4096, 4096);
	fill(buf, 4096, 11);
	int res[1];
	prep(&r, IORING_OP_WRITE, ns, buf, 4096, 8192, 1);
	run(&r, 1, res);
	assert_int_equal(res[0], 4096);
	pid_t p = fork();
	assert_true(p >= 0);
	if (!p) {
		/* the child: the parent's ring (its memory is the child's copy) */
		uint8_t *b = aligned_alloc(4096, 4096);
		memset(b, 0, 4096);
		prep(&r, IORING_OP_READ, ns, b, 4096, 8192, 1);
		tu_flush(&r);
		if (nvr_uring_enter(r.fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) != 1)
			_exit(1);
		struct io_uring_cqe cq;
		if (!tu_cqe(&r, &cq) || cq.res != 4096 || memcmp(b, buf, 4096))
			_exit(2);
		/* and a ring of its own */
		struct tu_ring mine;
		if (tu_ring_init(&mine, c, 4, NULL) < 0)
			_exit(3);
		memset(b, 0, 4096);
		prep(&mine, IORING_OP_READ, ns, b, 4096, 8192, 1);
		tu_flush(&mine);
		if (nvr_uring_enter(mine.fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) != 1 ||
		    !tu_cqe(&mine, &cq) || cq.res != 4096 || memcmp(b, buf, 4096))
			_exit(4);
		_exit(0);
	}
	int st;
	assert_int_equal(waitpid(p, &st, 0), p);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	/* the parent's ring still works after the child is gone */
	r.sqe_tail = *r.sq_tail;
	prep(&r, IORING_OP_READ, ns, buf, 4096, 8192, 1);
	run(&r, 1, res);
	assert_int_equal(res[0], 4096);
	tu_ring_exit(&r);
	nvr_ns_close(ns);
	nvr_ctrlr_detach(c);
	free(buf);
}

struct done { int n; int res[16]; };
static void on_done(void *arg, const struct nvr_cpl *cpl)
{
	struct done *d = arg;
	d->res[d->n++ % 16] = cpl->res;
}

static void wait_done(struct nvr_qpair *qp, struct done *d, int want)
{
	for (long i = 0; d->n < want && i < 50000000; i++)
		assert_true(nvr_qpair_poll(qp, 0) >= 0);
	assert_int_equal(d->n, want);
}

static void test_serve_embedded_qpair_io(void **state)
{
	(void)state;
	struct nvr_ctrlr *c;
	assert_int_equal(nvr_ctrlr_connect(sock_path, &c), 0);
	struct nvr_qpair *qp;
	assert_int_equal(nvr_qpair_alloc(c, 32, &qp), 0);
	assert_true(nvr_qpair_depth(qp) >= 8);
	uint8_t *w, *r;
	assert_int_equal(nvr_dma_alloc(c, 16384, (void **)&w), 0);
	assert_int_equal(nvr_dma_alloc(c, 16384, (void **)&r), 0);
	fill(w, 16384, 21);
	struct done d = { 0 };
	assert_int_equal(nvr_write(qp, 1, w, 100, 32, on_done, &d), 0);   /* 16 KiB */
	assert_int_equal(nvr_flush(qp, 1, on_done, &d), 0);
	wait_done(qp, &d, 2);
	assert_int_equal(d.res[0], 0);
	assert_int_equal(d.res[1], 0);
	struct iovec iov[2] = { { r, 8192 }, { r + 8192, 8192 } };
	d.n = 0;
	assert_int_equal(nvr_readv(qp, 1, iov, 2, 100, on_done, &d), 0);
	wait_done(qp, &d, 1);
	assert_int_equal(d.res[0], 0);
	assert_memory_equal(r, w, 16384);
	d.n = 0;
	assert_int_equal(nvr_write_zeroes(qp, 1, 104, 8, on_done, &d), 0);
	assert_int_equal(nvr_read(qp, 1, r, 100, 32, on_done, &d), 0);
	wait_done(qp, &d, 2);
	assert_int_equal(d.res[0], 0);
	assert_int_equal(d.res[1], 0);
	static const uint8_t zero[4096];
	assert_memory_equal(r, w, 2048);
	assert_memory_equal(r + 2048, zero, 4096);
	assert_memory_equal(r + 6144, w + 6144, 16384 - 6144);
	/* errors: past the end (the owner's -EINVAL... as the kernel's), no
	 * bus addresses here, no such namespace */
	d.n = 0;
	assert_int_equal(nvr_read(qp, 1, r, NS_BLOCKS, 8, on_done, &d), 0);
	wait_done(qp, &d, 1);
	assert_true(d.res[0] < 0);
	struct nvr_seg seg = { 0x1000, 4096 };
	assert_int_equal(nvr_io(qp, NVR_IO_READ, 1, 0, 8, &seg, 1, on_done, &d), -EOPNOTSUPP);
	assert_int_equal(nvr_read(qp, 9, r, 0, 8, on_done, &d), -EINVAL);
	uint64_t iova;
	assert_int_equal(nvr_dma_iova(c, r, 4096, &iova), -EOPNOTSUPP);
	assert_int_equal(nvr_dma_free(c, r + 4096), -EINVAL);
	assert_int_equal(nvr_qpair_free(qp), 0);
	assert_int_equal(nvr_dma_free(c, w), 0);
	assert_int_equal(nvr_dma_free(c, r), 0);
	assert_int_equal(nvr_ctrlr_detach(c), 0);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_serve_rw_matches_data),
		cmocka_unit_test(test_serve_hostile_sqes_fail_alone),
		cmocka_unit_test(test_serve_client_killed_releases),
		cmocka_unit_test(test_serve_fork_child_shares_ring),
		cmocka_unit_test(test_serve_refused_eacces),
		cmocka_unit_test(test_serve_embedded_qpair_io),
		cmocka_unit_test(test_serve_mailbox_hostile),
		cmocka_unit_test(test_serve_owner_killed_enodev),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
