/* SPDX-License-Identifier: MIT */
/*
 * nvring run — run an unmodified program on a namespace driven by nvring:
 * LD_PRELOAD the shim (build/lib/libnvring-preload.so beside this binary's
 * bin/), tell it the controller and the path, exec the program. Before the
 * exec, every reason it could not work is one line: no controller bound,
 * the controller in use (by which process), RLIMIT_MEMLOCK too low, the
 * program not found.
 *
 * A statically linked program (no PT_INTERP: LD_PRELOAD never runs in it)
 * goes through build/lib/nvring-static-loader instead, which maps it with a
 * freestanding client inside and rewrites its io_uring calls to reach the
 * owner process (`nvring serve BDF`, on /run/nvring/BDF.sock), which must
 * already be serving the controller.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pci/sysfs.h"
#include "tools/cli.h"

#define RUN_MEMLOCK_MIN (32ull << 20)   /* a ring's queues + bounce pool, with room */

static const char run_help[] =
	"usage: nvring run [--device BDF[/NSID]] [--path PATH] -- PROGRAM [ARGS...]\n"
	"\n"
	"Run PROGRAM with the NVMe namespace NSID (default 1) of the vfio-bound\n"
	"controller BDF presented as the block device PATH (default /dev/nvring0n1):\n"
	"its io_uring rings (liburing, raw system calls, fio's io_uring engine) and\n"
	"its file calls on PATH are served by nvring. With one vfio-bound controller\n"
	"--device may be left out.\n"
	"\n"
	"A statically linked PROGRAM (liburing.a) runs through nvring-static-loader,\n"
	"which puts a client of the owner process in it: `nvring serve BDF` must be\n"
	"serving the controller.\n"
	"\n"
	"Environment (the same settings): NVRING_DEVICE=BDF[/NSID], NVRING_PATH=PATH;\n"
	"NVRING_LOG=LEVEL[:FILE] (err, warn, info, debug) for the library's messages,\n"
	"silent by default; NVRING_PRELOAD=FILE another shim library;\n"
	"NVRING_STATIC_LOADER=FILE another loader for static programs.\n";

/* The one vfio-bound NVMe controller, or a line saying why not. */
static int pick_device(char bdf[16])
{
	struct nvr_pci_fn fns[64];
	int n = nvr_pci_list_nvme(fns, 64);
	if (n < 0)
		return cli_fail(EXIT_RUNTIME, "cannot list PCI devices: %s", strerror(-n));
	int found = 0;
	char list[512] = "";
	for (int i = 0; i < n && i < 64; i++) {
		if (strcmp(fns[i].driver, "vfio-pci"))
			continue;
		if (!found)
			snprintf(bdf, 16, "%s", fns[i].bdf);
		size_t used = strlen(list);
		snprintf(list + used, sizeof(list) - used, "%s%s", found ? " " : "", fns[i].bdf);
		found++;
	}
	if (!found)
		return cli_fail(EXIT_RUNTIME, "no NVMe controller is bound to vfio-pci: run "
				"`nvring list`, then `nvring bind BDF`");
	if (found > 1)
		return cli_fail(EXIT_USAGE, "%d controllers are bound to vfio-pci (%s): choose one "
				"with --device BDF", found, list);
	return 0;
}

/* The holder of the controller: the shim keeps an flock on
 * /run/nvring/BDF.pid with its pid and name inside while attached. */
static int check_holder(const char *bdf)
{
	char path[96], line[128];
	snprintf(path, sizeof(path), "/run/nvring/%s.pid", bdf);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		close(fd);       /* nobody holds it */
		return 0;
	}
	ssize_t r = pread(fd, line, sizeof(line) - 1, 0);
	close(fd);
	line[r > 0 ? r : 0] = 0;
	line[strcspn(line, "\n")] = 0;
	int pid = atoi(line);
	const char *comm = strchr(line, ' ');
	if (pid <= 0)
		return cli_fail(EXIT_RUNTIME, "%s is in use by another process", bdf);
	return cli_fail(EXIT_RUNTIME, "%s is in use by pid %d (%s): one process at a time drives "
			"a controller", bdf, pid, comm ? comm + 1 : "?");
}

static int check_memlock(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_MEMLOCK, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur >= RUN_MEMLOCK_MIN || geteuid() == 0)
		return 0;
	return cli_fail(EXIT_RUNTIME, "RLIMIT_MEMLOCK is %llu KiB; nvring pins its DMA memory and "
			"needs at least %llu KiB: run `ulimit -l unlimited` (or raise memlock in "
			"/etc/security/limits.conf)", (unsigned long long)rl.rlim_cur >> 10,
			RUN_MEMLOCK_MIN >> 10);
}

/* PROGRAM as execvp() would find it, into @out. */
static int find_program(const char *prog, char *out, size_t n)
{
	if (strchr(prog, '/')) {
		snprintf(out, n, "%s", prog);
		return access(out, X_OK) == 0 ? 0 : -errno;
	}
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	int err = -ENOENT;
	for (const char *p = path; *p;) {
		size_t len = strcspn(p, ":");
		snprintf(out, n, "%.*s/%s", (int)len, len ? p : ".", prog);
		struct stat st;
		if (stat(out, &st) == 0 && S_ISREG(st.st_mode)) {
			if (access(out, X_OK) == 0)
				return 0;
			err = -EACCES;
		}
		p += len;
		if (*p == ':')
			p++;
	}
	return err;
}

/* 1 if @file is an ELF without an interpreter (static), 0 otherwise. */
static int is_static_elf(const char *file)
{
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	Elf64_Ehdr eh;
	int st = 0;
	if (pread(fd, &eh, sizeof(eh), 0) == sizeof(eh) && !memcmp(eh.e_ident, ELFMAG, SELFMAG) &&
	    eh.e_ident[EI_CLASS] == ELFCLASS64 && eh.e_phentsize == sizeof(Elf64_Phdr)) {
		st = 1;
		for (unsigned i = 0; i < eh.e_phnum; i++) {
			Elf64_Phdr ph;
			if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + i * sizeof(ph))) !=
			    sizeof(ph))
				break;
			if (ph.p_type == PT_INTERP)
				st = 0;
		}
	}
	close(fd);
	return st;
}

/* @name beside our binary's ../lib (or the file @env names), into out. */
static int find_lib(const char *env_name, const char *name, char *out, size_t n)
{
	const char *env = getenv(env_name);
	if (env && *env) {
		snprintf(out, n, "%s", env);
	} else {
		char self[PATH_MAX];
		ssize_t r = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (r <= 0)
			return -errno;
		self[r] = 0;
		char *slash = strrchr(self, '/');
		if (slash)
			*slash = 0;
		if ((size_t)snprintf(out, n, "%.*s/../lib/%s", (int)(n > 64 ? n - 64 : 0), self,
				     name) >= n)
			return -ENAMETOOLONG;
	}
	return access(out, R_OK) == 0 ? 0 : -errno;
}

/* The shim: NVRING_PRELOAD, else ../lib/libnvring-preload.so from our binary. */
static int find_preload(char *out, size_t n)
{
	return find_lib("NVRING_PRELOAD", "libnvring-preload.so", out, n);
}

/* A static program: exec the loader with PROGRAM and its argv; the owner
 * must be there (its socket), the controller is its, not ours. */
static int run_static(const char *prog, char **argv, const char *bdf, const char *nsid,
		      const char *path, bool served)
{
	char loader[PATH_MAX], sock[112];
	int rc = find_lib("NVRING_STATIC_LOADER", "nvring-static-loader", loader, sizeof(loader));
	if (rc < 0)
		return cli_fail(EXIT_RUNTIME, "%s is statically linked and needs %s, which is "
				"missing (%s): run `make`", prog, loader, strerror(-rc));
	const char *sock_env = getenv("NVRING_SOCKET"), *rundir = getenv("NVRING_RUN_DIR");
	snprintf(sock, sizeof(sock), "%.80s/%s.sock", rundir && *rundir ? rundir : "/run/nvring", bdf);
	if (!served && !(sock_env && *sock_env) && access(sock, F_OK) < 0)
		return cli_fail(EXIT_RUNTIME, "%s is statically linked: it runs on %s only through "
				"the owner process, and none is serving it (no %s): start `nvring "
				"serve %s` first", prog, bdf, sock, bdf);
	char dev_env[48];
	snprintf(dev_env, sizeof(dev_env), "%s/%s", bdf, nsid);
	if (setenv("NVRING_DEVICE", dev_env, 1) || setenv("NVRING_PATH", path, 1))
		return cli_fail(EXIT_RUNTIME, "setenv: %s", strerror(errno));
	size_t n = 0;
	while (argv[n])
		n++;
	char **largv = calloc(n + 3, sizeof(*largv));
	if (!largv)
		return cli_fail(EXIT_RUNTIME, "out of memory");
	largv[0] = loader;
	largv[1] = (char *)prog;
	for (size_t k = 0; k < n; k++)
		largv[2 + k] = argv[k];
	fflush(NULL);
	execv(loader, largv);
	int err = errno;
	free(largv);
	return cli_fail(126, "cannot run %s: %s", loader, strerror(err));
}

int cmd_run(int argc, char **argv)
{
	const char *device = getenv("NVRING_DEVICE"), *path = getenv("NVRING_PATH");
	int i = 1;
	for (; i < argc; i++) {
		if (!strcmp(argv[i], "--")) {
			i++;
			break;
		}
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(run_help, stdout);
			return EXIT_OK;
		}
		if (!strcmp(argv[i], "--device") && i + 1 < argc)
			device = argv[++i];
		else if (!strcmp(argv[i], "--path") && i + 1 < argc)
			path = argv[++i];
		else if (argv[i][0] == '-')
			return cli_usage("run", "unknown option '%s'", argv[i]);
		else
			break;      /* PROGRAM without "--" */
	}
	if (i >= argc)
		return cli_usage("run", "no PROGRAM given");

	char bdf[16], nsid[16] = "1";
	if (device && *device) {
		char dev[64];
		snprintf(dev, sizeof(dev), "%s", device);
		char *slash = strchr(dev, '/');
		if (slash) {
			*slash = 0;
			uint64_t v;
			if (!cli_parse_u64(slash + 1, 1, 0xfffffffe, &v))
				return cli_usage("run", "'%s' is not a namespace ID", slash + 1);
			snprintf(nsid, sizeof(nsid), "%llu", (unsigned long long)v);
		}
		int rc = cli_check_vfio_bdf("run", dev, bdf);
		if (rc)
			return rc;
	} else {
		int rc = pick_device(bdf);
		if (rc)
			return rc;
	}
	if (!path || !*path)
		path = "/dev/nvring0n1";
	if (path[0] != '/')
		return cli_usage("run", "--path wants an absolute path, got '%s'", path);
	/* An owner serving the controller (`nvring serve`) holds it and pins
	 * the memory: then neither check applies; the program's shim connects. */
	struct nvr_ctrlr *owner;
	int lvl = nvr_set_log_level(NVR_LOG_OFF);   /* our own line says it */
	int rc = nvr_ctrlr_connect_bdf(bdf, &owner);
	bool served = rc == 0;
	nvr_set_log_level(lvl);
	if (rc == -EACCES)
		return cli_fail(EXIT_RUNTIME, "%s is served by an owner process that does not allow "
				"uid %u: its owner can add `--allow-uid %u` to `nvring serve`", bdf,
				(unsigned)getuid(), (unsigned)getuid());
	if (rc == 0) {
		nvr_ctrlr_detach(owner);
	} else {
		rc = check_holder(bdf);
		if (rc)
			return rc;
		rc = check_memlock();
		if (rc)
			return rc;
	}

	char prog[PATH_MAX], shim[PATH_MAX];
	rc = find_program(argv[i], prog, sizeof(prog));
	if (rc < 0)
		return cli_fail(127, "%s: %s", argv[i], rc == -EACCES ? "permission denied"
								       : "command not found");
	if (is_static_elf(prog))
		return run_static(prog, argv + i, bdf, nsid, path, served);
	rc = find_preload(shim, sizeof(shim));
	if (rc < 0)
		return cli_fail(EXIT_RUNTIME, "the shim library %s is missing (%s): run `make`",
				shim, strerror(-rc));

	char dev_env[48], preload[2 * PATH_MAX];
	snprintf(dev_env, sizeof(dev_env), "%s/%s", bdf, nsid);
	const char *old = getenv("LD_PRELOAD");
	snprintf(preload, sizeof(preload), "%s%s%s", shim, old && *old ? ":" : "", old ? old : "");
	if (setenv("NVRING_DEVICE", dev_env, 1) || setenv("NVRING_PATH", path, 1) ||
	    setenv("LD_PRELOAD", preload, 1))
		return cli_fail(EXIT_RUNTIME, "setenv: %s", strerror(errno));
	fflush(NULL);
	execv(prog, argv + i);
	return cli_fail(126, "cannot run %s: %s", prog, strerror(errno));
}
