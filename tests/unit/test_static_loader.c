// SPDX-License-Identifier: MIT
/*
 * tests/unit/test_static_loader.c — nvring-static-loader on the host:
 *  - the static probe (tests/unit/static/probe.c, -static and -static-pie)
 *    prints the same argv, environment and auxv essentials run directly and
 *    through the loader;
 *  - a wanted site it cannot rewrite stops the loader with one line;
 *  - the site finder (shim/static/decode.c, elfscan.c) finds every
 *    `mov $io_uring_nr,%eax ... syscall` of the built static binaries and can
 *    rewrite each (none refused);
 *  - the freestanding client against a fake owner (a SOCK_SEQPACKET server
 *    in this test that answers as abi/serve_proto.h says and records what it
 *    got): HELLO first, SETUP returning the ring memfd that liburing maps,
 *    ENTER/REGISTER with the ring id, the namespace path opened as a memfd of
 *    the namespace's size and bound (NS_BIND, its dup too), CLOSE; then the
 *    owner dying with a request in flight: the crash state's live slot comes
 *    back as a -ENODEV CQE and the calls return -ENODEV, without a hang.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "abi/serve_proto.h"
#include "shim/static/elfscan.h"

static char dir[PATH_MAX - 64];   /* BUILD/tests/unit */

static void path_of(char *out, size_t n, const char *rel)
{
	if ((size_t)snprintf(out, n, "%s/%s", dir, rel) >= n)
		fail_msg("path too long: %s/%s", dir, rel);
}

static int run_fd(int which, char *const argv[], const char *env1, const char *env2,
		  const char *env3, char *out, size_t n);

/* Run argv with extra environment, stdout into out (NUL-terminated). */
static int run(char *const argv[], const char *env1, const char *env2, const char *env3,
	       char *out, size_t n)
{
	return run_fd(1, argv, env1, env2, env3, out, n);
}

/* The same, with fd @which (1 or 2) into out and the other to /dev/null. */
static int run_fd(int which, char *const argv[], const char *env1, const char *env2,
		  const char *env3, char *out, size_t n)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(p[1], which);
		if (null >= 0)
			dup2(null, 3 - which);   /* the programs' notes: paths and sizes */
		close(p[0]);
		close(p[1]);
		if (env1)
			putenv((char *)env1);
		if (env2)
			putenv((char *)env2);
		if (env3)
			putenv((char *)env3);
		execv(argv[0], argv);
		_exit(126);
	}
	close(p[1]);
	size_t got = 0;
	ssize_t r;
	while (got + 1 < n && (r = read(p[0], out + got, n - 1 - got)) > 0)
		got += (size_t)r;
	out[got] = 0;
	close(p[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void loader_matches(const char *probe)
{
	char prog[PATH_MAX], loader[PATH_MAX], direct[4096], loaded[4096];
	path_of(prog, sizeof(prog), probe);
	path_of(loader, sizeof(loader), "../../lib/nvring-static-loader");
	char *dargv[] = { prog, "env", "one", "two words", NULL };
	char *largv[] = { loader, prog, prog, "env", "one", "two words", NULL };
	assert_int_equal(run(dargv, "PROBE_VAR=seen", NULL, NULL, direct, sizeof(direct)), 0);
	assert_int_equal(run(largv, "PROBE_VAR=seen", "NVRING_DEVICE=0000:00:00.0",
			     "NVRING_SOCKET=/nonexistent", loaded, sizeof(loaded)), 0);
	assert_non_null(strstr(direct, "PROBE_VAR = seen"));
	assert_non_null(strstr(direct, "AT_ENTRY near main = 1"));
	assert_non_null(strstr(direct, "malloc = 1"));
	assert_string_equal(direct, loaded);
}

static void test_loader_static(void **state)
{
	(void)state;
	loader_matches("static_probe");
}

static void test_loader_static_pie(void **state)
{
	(void)state;
	loader_matches("static_probe_pie");
}

/* No symbol table: the functions' extents come from .eh_frame. */
static void test_loader_stripped(void **state)
{
	(void)state;
	loader_matches("static_probe_stripped");
}

/* A wanted site that cannot be rewritten (a branch lands on its syscall):
 * the loader stops before the program runs, with one line naming it. */
static void test_loader_refuses_site(void **state)
{
	(void)state;
	char prog[PATH_MAX], loader[PATH_MAX], err[1024];
	path_of(prog, sizeof(prog), "static_refuse");
	path_of(loader, sizeof(loader), "../../lib/nvring-static-loader");
	char *dargv[] = { prog, NULL };
	char *largv[] = { loader, prog, prog, NULL };
	assert_int_equal(run_fd(2, dargv, NULL, NULL, NULL, err, sizeof(err)), 3);
	assert_int_equal(run_fd(2, largv, "NVRING_DEVICE=0000:00:00.0", NULL, NULL, err,
				sizeof(err)), 127);
	print_message("%s", err);
	assert_non_null(strstr(err, "cannot rewrite the io_uring_enter call at 0x"));
	assert_non_null(strstr(err, "a branch lands inside it"));
	char *nl = strchr(err, '\n');
	assert_non_null(nl);
	assert_int_equal(nl[1], 0);   /* one line */
}

/* ---- site finding ------------------------------------------------------- */

struct count {
	int ok_uring, bad_uring, ok_total;
};

static void on_site(void *arg, size_t sys, enum st_site_why why, const struct st_site *s)
{
	struct count *c = arg;
	(void)sys;
	if (why == ST_SITE_OK) {
		c->ok_total++;
		if (s->nr >= 425 && s->nr <= 427)
			c->ok_uring++;
	} else if (why != ST_SITE_UNWANTED && why != ST_SITE_NO_ANCHOR && s->nr >= 425 &&
		   s->nr <= 427) {
		c->bad_uring++;
	}
}

/* Every `b8 a9|aa|ab 01 00 00` whose linear decode reaches a syscall: the
 * sites an independent (and simpler) reading of the bytes sees. */
static int naive_uring_sites(const uint8_t *seg, size_t len)
{
	int n = 0;
	for (size_t p = 0; p + 7 <= len; p++) {
		if (seg[p] != 0xb8 || seg[p + 2] != 0x01 || seg[p + 3] || seg[p + 4] ||
		    seg[p + 1] < 0xa9 || seg[p + 1] > 0xab)
			continue;
		size_t q = p + 5;
		for (int k = 0; k < 8 && q + 2 <= len; k++) {
			if (seg[q] == 0x0f && seg[q + 1] == 0x05) {
				n++;
				break;
			}
			struct x86_insn in;
			if (x86_decode(seg + q, len - q, &in) < 0 || (in.flags & X86_BRANCH))
				break;
			q += in.len;
		}
	}
	return n;
}

static void scan_file(const char *rel, int min_uring)
{
	char path[PATH_MAX];
	path_of(path, sizeof(path), rel);
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		print_message("%s missing: %s\n", path, strerror(errno));
		fail();
	}
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	uint8_t *f = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	assert_true(f != MAP_FAILED);
	close(fd);
	assert_int_equal(st_elf_check(f, (size_t)st.st_size), 0);
	const Elf64_Ehdr *eh = (const void *)f;
	const Elf64_Phdr *ph = (const void *)(f + eh->e_phoff);
	struct count c = { 0 };
	int naive = 0;
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type != PT_LOAD || !(ph[i].p_flags & PF_X))
			continue;
		size_t nb = ph[i].p_filesz / 8 + 1;
		uint8_t *map = calloc(3, nb);
		assert_non_null(map);
		st_elf_targets(f, (size_t)st.st_size, &ph[i], map, map + nb, map + 2 * nb);
		st_site_scan(f + ph[i].p_offset, ph[i].p_filesz, map, map + 2 * nb, on_site, &c);
		naive += naive_uring_sites(f + ph[i].p_offset, ph[i].p_filesz);
		free(map);
	}
	print_message("%s: %d io_uring sites rewritable (naive count %d), %d sites in all\n", rel,
		      c.ok_uring, naive, c.ok_total);
	assert_int_equal(c.bad_uring, 0);
	assert_true(c.ok_uring >= min_uring);
	assert_int_equal(c.ok_uring, naive);
	munmap(f, (size_t)st.st_size);
}

static void test_sites_probe(void **state)
{
	(void)state;
	scan_file("static_probe", 3);
	scan_file("static_probe_pie", 3);
	scan_file("static_probe_stripped", 3);
}

static void test_sites_shim_progs(void **state)
{
	(void)state;
	scan_file("../shim-static/uring_rw", 3);
	scan_file("../shim-static/uring_fixed", 3);
}

/* Decoder facts the site finder relies on. */
static void test_decode(void **state)
{
	(void)state;
	struct x86_insn in;
	static const uint8_t mov_eax[] = { 0xb8, 0xaa, 0x01, 0x00, 0x00 };
	assert_int_equal(x86_decode(mov_eax, sizeof(mov_eax), &in), 0);
	assert_int_equal(in.len, 5);
	assert_true(in.flags & X86_IMMNR);
	assert_int_equal(in.imm, 426);
	static const uint8_t mov_mem[] = { 0x41, 0x8b, 0xb9, 0xc4, 0x00, 0x00, 0x00 };   /* mov 0xc4(%r9),%edi */
	assert_int_equal(x86_decode(mov_mem, sizeof(mov_mem), &in), 0);
	assert_int_equal(in.len, 7);
	assert_false(in.flags & X86_WRAX);
	static const uint8_t rip[] = { 0x48, 0x8b, 0x05, 0x10, 0x00, 0x00, 0x00 };   /* mov 0x10(%rip),%rax */
	assert_int_equal(x86_decode(rip, sizeof(rip), &in), 0);
	assert_true(in.flags & X86_RIPREL);
	assert_int_equal(in.disp_off, 3);
	static const uint8_t movups[] = { 0x0f, 0x11, 0x44, 0x24, 0x10 };
	assert_int_equal(x86_decode(movups, sizeof(movups), &in), 0);
	assert_int_equal(in.len, 5);
	/* mov %r8d,%eax; syscall: the anchor with its REX prefix, not the
	 * `mov %eax,%eax` inside it */
	static const uint8_t rex[] = { 0x44, 0x89, 0xc0, 0x0f, 0x05, 0xc3 };
	struct st_site s;
	assert_int_equal(st_site_at(rex, sizeof(rex), 3, &s), ST_SITE_OK);
	assert_int_equal(s.start, 0);
	assert_int_equal(s.end, 5);
	assert_int_equal(s.nr, -1);
	/* mov %edx,%eax; syscall; ret: 4 bytes, the window takes the ret */
	static const uint8_t shortw[] = { 0x89, 0xd0, 0x0f, 0x05, 0xc3 };
	assert_int_equal(st_site_at(shortw, sizeof(shortw), 2, &s), ST_SITE_OK);
	assert_int_equal(s.start, 0);
	assert_int_equal(s.end, 5);
	/* ... but not a jrcxz, which has no rel32 form */
	static const uint8_t jr[] = { 0x89, 0xd0, 0x0f, 0x05, 0xe3, 0x00 };
	assert_int_equal(st_site_at(jr, sizeof(jr), 2, &s), ST_SITE_SHORT);
	/* a known number nobody wants stays */
	static const uint8_t wr[] = { 0xb8, 0x01, 0x00, 0x00, 0x00, 0x0f, 0x05 };
	assert_int_equal(st_site_at(wr, sizeof(wr), 5, &s), ST_SITE_UNWANTED);
	/* a branch to the syscall refuses the site */
	static const uint8_t br[] = { 0xeb, 0x05, 0xb8, 0xaa, 0x01, 0x00, 0x00, 0x0f, 0x05 };
	assert_true(st_branch_into(br, sizeof(br), 3, 9));
}

/* Every static shim program on a 64 MiB file, directly and through the
 * loader with NVRING_STATIC_KERNEL=1 (each rewritten site's trampoline and
 * the stub run, the kernel answers): the same stdout, the same status. */
static void test_rewritten_progs_kernel(void **state)
{
	(void)state;
	static const char *const progs[] = {
		"raw_cat", "uring_drain", "uring_eventfd", "uring_fixed", "uring_fork",
		"uring_hostile", "uring_links", "uring_mixed", "uring_overflow", "uring_probe", "uring_rw",
		"uring_threads", "uring_timeout", "uring_vectored",
	};
	char img[] = "/tmp/nvring-static-XXXXXX";
	int fd = mkstemp(img);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 64 << 20), 0);
	close(fd);
	char loader[PATH_MAX];
	path_of(loader, sizeof(loader), "../../lib/nvring-static-loader");
	int compared = 0;
	for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
		char prog[PATH_MAX], rel[64];
		static char direct[1 << 16], loaded[1 << 16];
		snprintf(rel, sizeof(rel), "../shim-static/%s", progs[i]);
		path_of(prog, sizeof(prog), rel);
		char *dargv[] = { prog, img, NULL };
		char *largv[] = { loader, prog, prog, img, NULL };
		int d = run(dargv, NULL, NULL, NULL, direct, sizeof(direct));
		if (d == 77) {
			print_message("%s: skipped on this host (exit 77)\n", progs[i]);
			continue;
		}
		int l = run(largv, "NVRING_STATIC_KERNEL=1", NULL, NULL, loaded, sizeof(loaded));
		if (d != l || strcmp(direct, loaded))
			print_message("%s: direct %d, through the loader %d\n--- direct\n%s--- loader\n%s",
				      progs[i], d, l, direct, loaded);
		assert_int_equal(d, 0);
		assert_int_equal(l, 0);
		assert_string_equal(direct, loaded);
		compared++;
	}
	unlink(img);
	print_message("%d programs: identical output\n", compared);
	if (!compared)
		skip();
}

/* ---- the fake owner ------------------------------------------------------- */

struct fake {
	int lsock;
	char path[108];
	pid_t dead_pid;
	char log[4096];
	size_t loglen;
	int nrings;
	int ring_fd[4];
	bool die_on_11;        /* the owner dies in the second ring's enter */
};

static void logf_(struct fake *f, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	f->loglen += (size_t)vsnprintf(f->log + f->loglen, sizeof(f->log) - f->loglen, fmt, ap);
	va_end(ap);
}

static void reply(int s, struct nvs_msg *m, const void *pay, size_t len, int fd)
{
	struct iovec iov[2] = { { m, sizeof(*m) }, { (void *)pay, len } };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr a;
	} cm;
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };
	m->len = (uint32_t)len;
	if (fd >= 0) {
		memset(&cm, 0, sizeof(cm));   /* the padding after the fd goes out too */
		mh.msg_control = cm.buf;
		mh.msg_controllen = sizeof(cm.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	if (sendmsg(s, &mh, MSG_NOSIGNAL) < 0)
		perror("fake owner sendmsg");
}

/* A ring memfd laid out as the params say (no SINGLE_MMAP). */
static int fake_ring(struct fake *f, unsigned entries, struct io_uring_params *p)
{
	int fd = memfd_create("fake-ring", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)NVS_OFF_STATE + 4096), 0);
	memset(p, 0, sizeof(*p));
	p->sq_entries = entries;
	p->cq_entries = 2 * entries;
	p->features = IORING_FEAT_NODROP;
	p->sq_off = (struct io_sqring_offsets){ .head = 0, .tail = 4, .ring_mask = 8,
						.ring_entries = 12, .flags = 16, .dropped = 20,
						.array = 64 };
	p->cq_off = (struct io_cqring_offsets){ .head = 0, .tail = 4, .ring_mask = 8,
						.ring_entries = 12, .overflow = 16, .flags = 20,
						.cqes = 64 };
	uint32_t v[2] = { entries - 1, entries };
	assert_int_equal(pwrite(fd, v, 8, 8), 8);
	uint32_t c[2] = { 2 * entries - 1, 2 * entries };
	assert_int_equal(pwrite(fd, c, 8, (off_t)IORING_OFF_CQ_RING + 8), 8);
	if (f->nrings == 1) {
		/* the second ring: the owner will die holding SQE user_data 9 */
		struct {
			struct nvs_ring_state h;
			struct nvs_slot s[4];
		} st = { { NVS_STATE_MAGIC, 4, 16, 0 }, { { 9, NVS_SLOT_LIVE, 0 } } };
		assert_int_equal(pwrite(fd, &st, sizeof(st), (off_t)NVS_OFF_STATE), (ssize_t)sizeof(st));
	}
	return fd;
}

/* One request of connection s: false when the connection is done. */
static bool fake_serve_one(struct fake *f, int s)
{
	union {
		struct nvs_msg m;
		char buf[sizeof(struct nvs_msg) + NVS_MAX_PAYLOAD];
	} in;
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr a;
	} cm;
	struct iovec iov = { &in, sizeof(in) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
			     .msg_controllen = sizeof(cm.buf) };
	ssize_t r = recvmsg(s, &mh, MSG_CMSG_CLOEXEC);
	if (r <= 0)
		return false;
	int passed = -1;
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	if (c && c->cmsg_type == SCM_RIGHTS)
		memcpy(&passed, CMSG_DATA(c), sizeof(int));
	struct nvs_msg m = in.m, out = { .op = m.op };
	switch (m.op) {
	case NVS_HELLO: {
		logf_(f, "HELLO %llx %lld\n", (unsigned long long)m.a[0], (long long)m.a[1]);
		struct nvs_hello_reply h = { .owner_pid = (uint32_t)f->dead_pid, .nns = 1 };
		snprintf(h.bdf, sizeof(h.bdf), "0000:00:00.0");
		h.ns[0] = (struct nvs_ns_desc){ .nsid = 1, .lba_size = 512, .nblocks = 65536 };
		reply(s, &out, &h, sizeof(h), -1);
		break;
	}
	case NVS_SETUP: {
		struct io_uring_params p;
		logf_(f, "SETUP %lld len %u\n", (long long)m.a[0], m.len);
		int fd = fake_ring(f, (unsigned)m.a[0], &p);
		f->ring_fd[f->nrings] = fd;
		out.ret = 10 + f->nrings++;
		reply(s, &out, &p, sizeof(p), fd);
		break;
	}
	case NVS_ENTER: {
		logf_(f, "ENTER %lld %lld %lld %llx\n", (long long)m.a[0], (long long)m.a[1],
		      (long long)m.a[2], (unsigned long long)m.a[3]);
		/* take the SQEs: SQ head = tail */
		int fd = f->ring_fd[m.a[0] - 10];
		uint32_t tail;
		assert_int_equal(pread(fd, &tail, 4, 4), 4);
		assert_int_equal(pwrite(fd, &tail, 4, 0), 4);
		if (m.a[0] == 11 && f->die_on_11)
			return false;   /* the owner dies mid-call */
		out.ret = m.a[1];
		reply(s, &out, NULL, 0, -1);
		break;
	}
	case NVS_RING_ADOPT: {
		struct stat a, b;
		out.ret = -EBADF;
		for (int i = 0; passed >= 0 && i < f->nrings; i++)
			if (!fstat(passed, &a) && !fstat(f->ring_fd[i], &b) && a.st_ino == b.st_ino)
				out.ret = 10 + i;
		logf_(f, "ADOPT -> %lld\n", (long long)out.ret);
		reply(s, &out, NULL, 0, -1);
		break;
	}
	case NVS_REGISTER:
		logf_(f, "REGISTER %lld %lld\n", (long long)m.a[0], (long long)m.a[1]);
		reply(s, &out, NULL, 0, -1);
		break;
	case NVS_CLOSE:
		logf_(f, "CLOSE %lld\n", (long long)m.a[0]);
		reply(s, &out, NULL, 0, -1);
		break;
	case NVS_NS_BIND:
		logf_(f, "NS_BIND nsid %lld\n", (long long)m.a[1]);
		reply(s, &out, NULL, 0, -1);
		break;
	case NVS_NS_UNBIND:
		logf_(f, "NS_UNBIND\n");
		reply(s, &out, NULL, 0, -1);
		break;
	default:
		logf_(f, "op %u\n", m.op);
		out.ret = -EINVAL;
		reply(s, &out, NULL, 0, -1);
	}
	if (passed >= 0)
		close(passed);
	return true;
}

/* Connections one at a time in order of arrival; done when every
 * connection made has closed. */
static void *fake_owner(void *arg)
{
	struct fake *f = arg;
	struct pollfd pf[8] = { { .fd = f->lsock, .events = POLLIN } };
	int n = 1, open_conns = 0, ever = 0;
	while (!ever || open_conns) {
		if (poll(pf, (nfds_t)n, 20000) <= 0)
			break;   /* a test that hangs fails, it does not block */
		if ((pf[0].revents & POLLIN) && n < 8) {
			pf[n] = (struct pollfd){ .fd = accept(f->lsock, NULL, NULL), .events = POLLIN };
			if (pf[n].fd >= 0) {
				n++;
				open_conns++;
				ever++;
			}
		}
		for (int i = 1; i < n; i++) {
			if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP)))
				continue;
			if (!fake_serve_one(f, pf[i].fd)) {
				close(pf[i].fd);
				pf[i].fd = -1;
				open_conns--;
			}
		}
	}
	for (int i = 1; i < n; i++)
		if (pf[i].fd >= 0)
			close(pf[i].fd);
	return NULL;
}

/* The fake owner on a fresh socket, its hello naming an exited pid (so
 * that the client's wait for a dead owner ends at once). */
static void fake_start(struct fake *f, pthread_t *th)
{
	snprintf(f->path, sizeof(f->path), "/tmp/nvring-fake-%d.sock", (int)getpid());
	unlink(f->path);
	f->lsock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	assert_true(f->lsock >= 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
	assert_int_equal(bind(f->lsock, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(f->lsock, 4), 0);
	f->dead_pid = fork();
	if (f->dead_pid == 0)
		_exit(0);
	waitpid(f->dead_pid, NULL, 0);
	assert_int_equal(pthread_create(th, NULL, fake_owner, f), 0);
}

static int fake_run_probe(struct fake *f, pthread_t th, const char *mode, char *out, size_t n)
{
	char prog[PATH_MAX], loader[PATH_MAX], sock_env[160];
	path_of(prog, sizeof(prog), "static_probe");
	path_of(loader, sizeof(loader), "../../lib/nvring-static-loader");
	snprintf(sock_env, sizeof(sock_env), "NVRING_SOCKET=%s", f->path);
	char *largv[] = { loader, prog, prog, (char *)mode, "/dev/nvring-test0n1", NULL };
	int rc = run(largv, sock_env, "NVRING_DEVICE=0000:00:00.0/1",
		     "NVRING_PATH=/dev/nvring-test0n1", out, n);
	pthread_join(th, NULL);
	close(f->lsock);
	unlink(f->path);
	for (int i = 0; i < f->nrings; i++)
		close(f->ring_fd[i]);
	print_message("probe output:\n%s", out);
	print_message("fake owner saw:\n%s", f->log);
	return rc;
}

/* A ring shared across fork(): the child's first call is on a connection
 * of its own, which adopts the ring (NVS_RING_ADOPT) before its enter. */
static void test_client_fork_adopts(void **state)
{
	(void)state;
	struct fake f = { 0 };
	pthread_t th;
	char out[4096];
	fake_start(&f, &th);
	int rc = fake_run_probe(&f, th, "forkring", out, sizeof(out));
	assert_int_equal(rc, 0);
	assert_string_equal(out, "setup = 0\n"
				 "child submit = 1\n"
				 "child exit = 0\n");
	assert_string_equal(f.log, "HELLO 4e565331 1\n"
				   "SETUP 4 len 120\n"
				   "HELLO 4e565331 1\n"
				   "ADOPT -> 10\n"
				   "ENTER 10 1 0 0\n"
				   "CLOSE 10\n");
}

static void test_client_fake_owner(void **state)
{
	(void)state;
	struct fake f = { .die_on_11 = true };
	pthread_t th;
	char out[4096];
	fake_start(&f, &th);
	int rc = fake_run_probe(&f, th, "uring", out, sizeof(out));
	assert_int_equal(rc, 0);
	assert_string_equal(out, "setup = 0\n"
				 "submit = 1\n"
				 "register_probe = 0\n"
				 "open = fd\n"
				 "block device = 1\n"
				 "size = 33554432, lba 512\n"
				 "path block device = 1\n"
				 "dup = fd\n"
				 "setup2 = 0\n"
				 "submit2 = -19\n"
				 "cqe 9 res -19\n"
				 "wait = -19\n");
	char want[1024];
	snprintf(want, sizeof(want),
		 "HELLO %x %u\n"
		 "SETUP 8 len %zu\n"
		 "ENTER 10 1 0 0\n"
		 "REGISTER 10 %d\n"
		 "NS_BIND nsid 1\n"
		 "NS_BIND nsid 1\n"
		 "NS_UNBIND\n"
		 "NS_UNBIND\n"
		 "CLOSE 10\n"
		 "SETUP 8 len %zu\n"
		 "ENTER 11 1 0 0\n",
		 NVS_MAGIC, NVS_VERSION, sizeof(struct io_uring_params),
		 IORING_REGISTER_FILES_UPDATE, sizeof(struct io_uring_params));
	assert_string_equal(f.log, want);
}

int main(void)
{
	ssize_t r = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
	if (r <= 0)
		return 1;
	dir[r] = 0;
	*strrchr(dir, '/') = 0;
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode),
		cmocka_unit_test(test_loader_static),
		cmocka_unit_test(test_loader_static_pie),
		cmocka_unit_test(test_loader_stripped),
		cmocka_unit_test(test_loader_refuses_site),
		cmocka_unit_test(test_sites_probe),
		cmocka_unit_test(test_sites_shim_progs),
		cmocka_unit_test(test_rewritten_progs_kernel),
		cmocka_unit_test(test_client_fake_owner),
		cmocka_unit_test(test_client_fork_adopts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
