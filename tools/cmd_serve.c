/* SPDX-License-Identifier: MIT */
/*
 * nvring serve — the owner process: attach the controllers, listen on a
 * unix socket per controller and serve every allowed client's rings
 * (nvr_serve_conn(), abi/serve.c), one thread per connection. Who may
 * connect: SO_PEERCRED against the allow list (root and the owner's own
 * uid unless told otherwise); anyone else gets one line saying so, and so
 * does the owner's log. Ends on SIGINT/SIGTERM: the sockets are removed
 * and, as the process exits, its devices are closed (the kernel resets
 * them); connected clients see their rings fail with -ENODEV.
 */
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <nvring/uring.h>

#include "tools/cli.h"

static const char serve_help[] =
	"usage: nvring serve [OPTIONS] BDF...\n"
	"\n"
	"Hold the vfio-bound NVMe controllers BDF... and serve their namespaces to\n"
	"other processes: `nvring run` programs and nvr_ctrlr_connect() users reach a\n"
	"controller through RUN_DIR/BDF.sock (RUN_DIR: $NVRING_RUN_DIR or /run/nvring)\n"
	"whenever it is served, and each of their rings gets its own I/O queue pair\n"
	"here. Clients are isolated: the device only ever reads and writes this\n"
	"process's memory, into and out of which the owner copies each client's data\n"
	"with process_vm_readv/writev, so a client reaches nothing but its own memory.\n"
	"\n"
	"  --allow-uid LIST   uids (numbers or names, comma separated) that may connect\n"
	"  --allow-gid LIST   gids (numbers or names) whose members may connect\n"
	"  --allow-all        anyone who can open the socket may connect\n"
	"                     (default: root and the uid running nvring serve)\n"
	"  --mode OCTAL       the socket's mode (default 0666: the allow list decides)\n"
	"  --group GROUP      the socket's group\n"
	"  --pidfile FILE     write our pid there once the sockets listen\n"
	"\n"
	"Runs in the foreground until SIGINT or SIGTERM; logs one line per refused\n"
	"client and per client gone (NVRING_VERBOSE=1: everything). As a service:\n"
	"tools/nvring-serve@.service (systemd, instance = BDF).\n";

#define MAX_ALLOW 64
#define MAX_CTRLRS 8

static uid_t allow_uid[MAX_ALLOW];
static gid_t allow_gid[MAX_ALLOW];
static unsigned nallow_uid, nallow_gid;
static bool allow_all;

struct served {
	char bdf[16];
	char path[108];
	struct nvr_ctrlr *ctrlr;
	int lfd;
};

struct conn_arg {
	struct served *s;
	int fd;
};

static bool parse_ids(const char *list, bool gid)
{
	char buf[512];
	snprintf(buf, sizeof(buf), "%s", list);
	char *save = NULL;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		uint64_t v;
		unsigned long id;
		if (cli_parse_u64(t, 0, 0xfffffffe, &v)) {
			id = (unsigned long)v;
		} else if (gid) {
			struct group *g = getgrnam(t);
			if (!g)
				return false;
			id = g->gr_gid;
		} else {
			struct passwd *pw = getpwnam(t);
			if (!pw)
				return false;
			id = pw->pw_uid;
		}
		if (gid) {
			if (nallow_gid == MAX_ALLOW)
				return false;
			allow_gid[nallow_gid++] = (gid_t)id;
		} else {
			if (nallow_uid == MAX_ALLOW)
				return false;
			allow_uid[nallow_uid++] = (uid_t)id;
		}
	}
	return true;
}

/* May the peer with @cr connect? Its primary gid or any supplementary
 * group of its uid (from the group database) counts for --allow-gid. */
static bool allowed(const struct ucred *cr)
{
	if (allow_all)
		return true;
	for (unsigned i = 0; i < nallow_uid; i++)
		if (allow_uid[i] == cr->uid)
			return true;
	for (unsigned i = 0; i < nallow_gid; i++) {
		if (allow_gid[i] == cr->gid)
			return true;
		struct group *g = getgrgid(allow_gid[i]);
		struct passwd *pw = getpwuid(cr->uid);
		if (g && pw)
			for (char **m = g->gr_mem; *m; m++)
				if (!strcmp(*m, pw->pw_name))
					return true;
	}
	return false;
}

static void *conn_main(void *p)
{
	struct conn_arg *a = p;
	nvr_serve_conn(a->s->ctrlr, a->fd, a->s->bdf);
	close(a->fd);
	free(a);
	return NULL;
}

static void accept_one(struct served *s)
{
	int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	struct ucred cr;
	socklen_t len = sizeof(cr);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
		close(fd);
		return;
	}
	if (!allowed(&cr)) {
		char why[200];
		snprintf(why, sizeof(why), "uid %u may not use %.15s: the owner allows it with "
			 "`nvring serve --allow-uid %u` (or --allow-gid)", (unsigned)cr.uid, s->bdf,
			 (unsigned)cr.uid);
		nvr_serve_refuse(fd, why);
		close(fd);
		fprintf(stderr, "nvring: serve: refused pid %d uid %u on %s (not in the allow "
			"list)\n", (int)cr.pid, (unsigned)cr.uid, s->bdf);
		return;
	}
	struct conn_arg *a = malloc(sizeof(*a));
	pthread_t t;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (!a) {
		close(fd);
		return;
	}
	a->s = s;
	a->fd = fd;
	if (pthread_create(&t, &at, conn_main, a)) {
		close(fd);
		free(a);
	}
	pthread_attr_destroy(&at);
}

/* A socket at @path that nobody serves any more is removed first; one
 * that answers is another owner's: refuse. */
static int listen_at(const char *path, mode_t mode, gid_t group)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (probe >= 0) {
		if (connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(probe);
			return -EADDRINUSE;
		}
		close(probe);
	}
	unlink(path);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0 ||
	    chmod(path, mode) < 0 || (group != (gid_t)-1 && chown(path, (uid_t)-1, group) < 0)) {
		int err = -errno;
		close(fd);
		unlink(path);
		return err;
	}
	return fd;
}

int cmd_serve(int argc, char **argv)
{
	mode_t mode = 0666;
	gid_t group = (gid_t)-1;
	const char *pidfile = NULL;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *o = argv[i];
		if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
			fputs(serve_help, stdout);
			return EXIT_OK;
		} else if (!strcmp(o, "--allow-all")) {
			allow_all = true;
		} else if (i + 1 >= argc) {
			return cli_usage("serve", "option '%s' needs a value, or is unknown", o);
		} else if (!strcmp(o, "--allow-uid")) {
			if (!parse_ids(argv[++i], false))
				return cli_usage("serve", "bad --allow-uid list '%s'", argv[i]);
		} else if (!strcmp(o, "--allow-gid")) {
			if (!parse_ids(argv[++i], true))
				return cli_usage("serve", "bad --allow-gid list '%s'", argv[i]);
		} else if (!strcmp(o, "--mode")) {
			char *end;
			unsigned long m = strtoul(argv[++i], &end, 8);
			if (*end || m > 07777)
				return cli_usage("serve", "bad --mode '%s' (octal, e.g. 0660)", argv[i]);
			mode = (mode_t)m;
		} else if (!strcmp(o, "--group")) {
			struct group *g = getgrnam(argv[++i]);
			uint64_t v;
			if (g)
				group = g->gr_gid;
			else if (cli_parse_u64(argv[i], 0, 0xfffffffe, &v))
				group = (gid_t)v;
			else
				return cli_usage("serve", "no group '%s'", argv[i]);
		} else if (!strcmp(o, "--pidfile")) {
			pidfile = argv[++i];
		} else {
			return cli_usage("serve", "unknown option '%s'", o);
		}
	}
	if (i >= argc)
		return cli_usage("serve", "no controller given (BDF, see `nvring list`)");
	if (argc - i > MAX_CTRLRS)
		return cli_usage("serve", "at most %d controllers", MAX_CTRLRS);
	/* the one line per refused or gone client is the library's info */
	if (!getenv("NVRING_VERBOSE"))
		nvr_set_log_level(NVR_LOG_INFO);
	if (!allow_all) {
		allow_uid[nallow_uid++] = 0;
		allow_uid[nallow_uid++] = geteuid();
	}

	/* SIGINT/SIGTERM end the loop; SIGPIPE never kills the owner */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);   /* before any thread: all inherit it */
	signal(SIGPIPE, SIG_IGN);
	int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);

	struct served srv[MAX_CTRLRS];
	int n = 0, rc = EXIT_OK;
	const char *rundir = getenv("NVRING_RUN_DIR");
	if (!rundir || !*rundir)
		rundir = "/run/nvring";
	mkdir(rundir, 0755);
	for (; i < argc; i++, n++) {
		struct served *s = &srv[n];
		rc = cli_check_vfio_bdf("serve", argv[i], s->bdf);
		if (rc)
			goto out;
		rc = cli_attach(s->bdf, &s->ctrlr);
		if (rc)
			goto out;
		snprintf(s->path, sizeof(s->path), "%.80s/%.15s.sock", rundir, s->bdf);
		s->lfd = listen_at(s->path, mode, group);
		if (s->lfd < 0) {
			rc = cli_fail(EXIT_RUNTIME, "cannot listen on %s: %s", s->path,
				      s->lfd == -EADDRINUSE ? "another owner serves it"
							    : strerror(-s->lfd));
			nvr_ctrlr_detach(s->ctrlr);
			goto out;
		}
		fprintf(stderr, "nvring: serving %s on %s\n", s->bdf, s->path);
	}
	if (pidfile) {
		FILE *f = fopen(pidfile, "w");
		if (f) {
			fprintf(f, "%d\n", (int)getpid());
			fclose(f);
		}
	}
	for (;;) {
		struct pollfd p[MAX_CTRLRS + 1];
		for (int k = 0; k < n; k++)
			p[k] = (struct pollfd){ .fd = srv[k].lfd, .events = POLLIN };
		p[n] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		if (poll(p, (nfds_t)n + 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[n].revents)
			break;
		for (int k = 0; k < n; k++)
			if (p[k].revents & POLLIN)
				accept_one(&srv[k]);
	}
	fprintf(stderr, "nvring: serve: stopping\n");
out:
	for (int k = 0; k < n; k++) {
		close(srv[k].lfd);
		unlink(srv[k].path);
	}
	if (pidfile)
		unlink(pidfile);
	/* Clients may still hold rings: exiting closes the devices (the
	 * kernel resets them) and their rings fail with -ENODEV. */
	fflush(NULL);
	_exit(rc);
}
