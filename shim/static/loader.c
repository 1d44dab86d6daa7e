// SPDX-License-Identifier: MIT
/*
 * shim/static/loader.c — nvring-static-loader: run a statically linked
 * io_uring program with the freestanding client in its process.
 *
 *   nvring-static-loader PROGRAM ARGV0 [ARGS...]   (what `nvring run` execs)
 *
 * The loader is itself a static executable without libc, linked at a high
 * fixed address (Makefile) so that a program's ET_EXEC segments at 0x400000
 * never collide with it. It maps PROGRAM's PT_LOAD segments (ET_EXEC at
 * their addresses, a static-pie ET_DYN at a base the kernel picks), rewrites
 * its system-call sites (decode.c, patch.c) so that io_uring and the file
 * calls on rings and the namespace path reach the client (client.c), builds
 * the program's initial stack (argc, argv, envp, and an auxv describing the
 * program: AT_PHDR, AT_PHNUM, AT_ENTRY, AT_BASE 0; AT_RANDOM and the vDSO
 * kept from the kernel's), and jumps to its entry. A wanted site it cannot
 * rewrite stops it before the program runs, with one line naming the site.
 *
 * What differs from the kernel's exec: /proc/self/exe and /proc/self/cmdline
 * name the loader (AT_EXECFN and argv are the program's); the heap (brk)
 * starts after the loader's image, not the program's.
 *
 * NVRING_STATIC_DEBUG=1 prints the sites and what became of them;
 * NVRING_STATIC_KERNEL=1 sends every rewritten call to the kernel (the
 * rewriting alone, compared with a direct run: tests/vm/shim_static.sh).
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/prctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "shim/static/client.h"
#include "shim/static/elfscan.h"
#include "shim/static/patch.h"
#include "shim/static/sys.h"

#define PAGE 4096ul

static const char *prog_path;
static bool debug;

__attribute__((noreturn)) static void die(const char *what, long err)
{
	char b[24];
	st_say("nvring-static-loader: ", prog_path ? prog_path : "", ": ", what,
	       err ? " (errno " : "", err ? st_utoa(b, (unsigned long)-err, 10) : "",
	       err ? ")" : "", NULL);
	st_exit(127);
}

static const char *nr_name(long nr)
{
	switch (nr) {
	case 425: return "io_uring_setup";
	case 426: return "io_uring_enter";
	case 427: return "io_uring_register";
	case 3: return "close";
	case 2: return "open";
	case 257: return "openat";
	case 32: return "dup";
	case 33: return "dup2";
	case 292: return "dup3";
	case 72: return "fcntl";
	case 4: return "stat";
	case 5: return "fstat";
	case 6: return "lstat";
	case 262: return "newfstatat";
	case 332: return "statx";
	case 16: return "ioctl";
	default: return "a syscall";
	}
}

static const char *why_name(enum st_site_why w)
{
	switch (w) {
	case ST_SITE_NO_ANCHOR: return "the instructions that load its number do not decode";
	case ST_SITE_SHORT: return "too short for a jmp";
	case ST_SITE_BRANCH_IN: return "a branch lands inside it";
	default: return "?";
	}
}

struct patch_ctx {
	uint8_t *seg;          /* the segment as mapped */
	size_t len;
	uintptr_t vaddr;       /* its link-time address (for messages) */
	struct st_pool *pool;
	size_t last_end;
	unsigned done, skipped;
};

static void on_site(void *arg, size_t sys, enum st_site_why why, const struct st_site *s)
{
	struct patch_ctx *c = arg;
	char b1[24], b2[24];

	if (why == ST_SITE_UNWANTED)
		return;
	if (why == ST_SITE_OK && s->start < c->last_end)
		why = ST_SITE_BRANCH_IN;   /* overlaps the window before: treat as refused */
	if (why != ST_SITE_OK) {
		/* A known wanted number that stays on the kernel would run the
		 * program half-caught; one loaded from a register (or no
		 * decodable number at all) is most likely another call. */
		if (why != ST_SITE_NO_ANCHOR && s->nr >= 0 && st_nr_wanted(s->nr)) {
			st_say("nvring-static-loader: ", prog_path, ": cannot rewrite the ",
			       nr_name(s->nr), " call at 0x", st_utoa(b1, c->vaddr + sys, 16), ": ",
			       why_name(why), NULL);
			st_exit(127);
		}
		if (debug)
			st_say("nvring-static-loader: left 0x", st_utoa(b1, c->vaddr + sys, 16),
			       " (nr ", s->nr >= 0 && why != ST_SITE_NO_ANCHOR ? st_utoa(b2, (unsigned long)s->nr, 10) : "?",
			       "): ", why_name(why), NULL);
		c->skipped++;
		return;
	}
	int rc = st_site_patch(c->pool, c->seg, c->len, s);
	if (rc < 0) {
		if (s->nr >= 0) {
			st_say("nvring-static-loader: ", prog_path, ": cannot rewrite the ",
			       nr_name(s->nr), " call at 0x", st_utoa(b1, c->vaddr + sys, 16),
			       ": no trampoline (errno ", st_utoa(b2, (unsigned long)-rc, 10), ")", NULL);
			st_exit(127);
		}
		c->skipped++;
		return;
	}
	if (debug)
		st_say("nvring-static-loader: rewrote 0x", st_utoa(b1, c->vaddr + sys, 16), " (",
		       s->nr >= 0 ? nr_name(s->nr) : "number from a register", ")", NULL);
	c->last_end = s->end;
	c->done++;
}

static int prot_of(uint32_t f)
{
	return (f & PF_R ? PROT_READ : 0) | (f & PF_W ? PROT_WRITE : 0) | (f & PF_X ? PROT_EXEC : 0);
}

/* Map the program; returns the load bias. */
static uintptr_t map_program(int fd, const uint8_t *file, size_t size, uintptr_t *phdr_addr)
{
	const Elf64_Ehdr *eh = (const void *)file;
	const Elf64_Phdr *ph = (const void *)(file + eh->e_phoff);
	uintptr_t lo = ~0ul, hi = 0;

	for (unsigned i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type == PT_INTERP)
			die("has an interpreter (a dynamic program): nvring run preloads the shim for those", 0);
		if (ph[i].p_type != PT_LOAD)
			continue;
		if (ph[i].p_vaddr < lo)
			lo = ph[i].p_vaddr;
		if (ph[i].p_vaddr + ph[i].p_memsz > hi)
			hi = ph[i].p_vaddr + ph[i].p_memsz;
	}
	if (hi <= lo)
		die("has no loadable segment", 0);
	lo &= ~(PAGE - 1);
	hi = (hi + PAGE - 1) & ~(PAGE - 1);

	uintptr_t bias = 0;
	if (eh->e_type == ET_DYN) {
		/* static-pie: any base; reserve the span, then map inside it */
		long r = sys6(__NR_mmap, 0, hi - lo, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (sys_err(r))
			die("cannot reserve address space", r);
		bias = (uintptr_t)r - lo;
	} else {
		long r = sys6(__NR_mmap, lo, hi - lo, PROT_NONE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (sys_err(r) || (uintptr_t)r != lo)
			die("its addresses are taken in this process", sys_err(r) ? r : -EEXIST);
	}

	*phdr_addr = 0;
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type == PT_PHDR)
			*phdr_addr = bias + ph[i].p_vaddr;
		if (ph[i].p_type != PT_LOAD)
			continue;
		if (ph[i].p_offset <= eh->e_phoff &&
		    eh->e_phoff + eh->e_phnum * sizeof(*ph) <= ph[i].p_offset + ph[i].p_filesz &&
		    !*phdr_addr)
			*phdr_addr = bias + ph[i].p_vaddr + (eh->e_phoff - ph[i].p_offset);
		uintptr_t va = bias + ph[i].p_vaddr;
		uintptr_t start = va & ~(PAGE - 1);
		uintptr_t fend = va + ph[i].p_filesz;
		uintptr_t mend = (va + ph[i].p_memsz + PAGE - 1) & ~(PAGE - 1);
		uintptr_t off = ph[i].p_offset - (va - start);
		/* writable while the sites are rewritten; final protection after */
		int prot = prot_of(ph[i].p_flags) | PROT_WRITE;
		if (ph[i].p_filesz) {
			long r = sys6(__NR_mmap, start, fend - start, prot, MAP_PRIVATE | MAP_FIXED, fd,
				      (long)off);
			if (sys_err(r))
				die("cannot map a segment", r);
		}
		uintptr_t fpage = (fend + PAGE - 1) & ~(PAGE - 1);
		if (ph[i].p_memsz > ph[i].p_filesz) {
			if (ph[i].p_filesz)
				memset((void *)fend, 0, fpage - fend);   /* bss in the file's last page */
			else
				fpage = start;
			if (mend > fpage) {
				long r = sys6(__NR_mmap, fpage, mend - fpage, prot,
					      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
				if (sys_err(r))
					die("cannot map the bss", r);
			}
		}
	}
	(void)size;
	return bias;
}

static void patch_program(const uint8_t *file, size_t size, uintptr_t bias)
{
	const Elf64_Ehdr *eh = (const void *)file;
	const Elf64_Phdr *ph = (const void *)(file + eh->e_phoff);
	uintptr_t lo = ~0ul, hi = 0;

	for (unsigned i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type != PT_LOAD || !(ph[i].p_flags & PF_X))
			continue;
		if (bias + ph[i].p_vaddr < lo)
			lo = bias + ph[i].p_vaddr;
		if (bias + ph[i].p_vaddr + ph[i].p_filesz > hi)
			hi = bias + ph[i].p_vaddr + ph[i].p_filesz;
	}
	if (hi <= lo)
		return;
	static struct st_pool pool;
	long rc = st_pool_new(&pool, lo, hi);
	if (rc < 0)
		die("no room for trampolines near its code", rc);

	for (unsigned i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type != PT_LOAD || !(ph[i].p_flags & PF_X) || !ph[i].p_filesz)
			continue;
		size_t nb = ph[i].p_filesz / 8 + 1;
		long m = sys6(__NR_mmap, 0, 3 * nb, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (sys_err(m))
			die("out of memory", m);
		uint8_t *map = (uint8_t *)m;
		st_elf_targets(file, size, &ph[i], map, map + nb, map + 2 * nb);
		struct patch_ctx c = { .seg = (uint8_t *)(bias + ph[i].p_vaddr),
				       .len = ph[i].p_filesz, .vaddr = ph[i].p_vaddr,
				       .pool = &pool };
		st_site_scan(c.seg, c.len, map, map + 2 * nb, on_site, &c);
		sys2(__NR_munmap, m, 3 * nb);
		if (debug) {
			char b1[24], b2[24];
			st_say("nvring-static-loader: ", st_utoa(b1, c.done, 10), " sites rewritten, ",
			       st_utoa(b2, c.skipped, 10), " left", NULL);
		}
	}
	rc = st_pool_seal(&pool);
	if (rc < 0)
		die("cannot seal the trampolines", rc);
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type != PT_LOAD)
			continue;
		uintptr_t va = bias + ph[i].p_vaddr;
		uintptr_t start = va & ~(PAGE - 1);
		uintptr_t end = (va + ph[i].p_memsz + PAGE - 1) & ~(PAGE - 1);
		long r = sys3(__NR_mprotect, start, end - start, prot_of(ph[i].p_flags));
		if (sys_err(r))
			die("cannot set a segment's protection", r);
	}
}

__attribute__((noreturn)) static void jump(uintptr_t sp, uintptr_t entry)
{
	/* rdx = 0: no rtld_fini for __libc_start_main (the kernel's ABI) */
	__asm__ volatile("mov %0, %%rsp\n"
			 "xor %%edx, %%edx\n"
			 "xor %%ebp, %%ebp\n"
			 "jmp *%1\n"
			 :
			 : "r"(sp), "r"(entry)
			 : "memory");
	__builtin_unreachable();
}

__attribute__((noreturn, used)) void st_main(uintptr_t *sp)
{
	long argc = (long)sp[0];
	char **argv = (char **)(sp + 1);
	char **envp = argv + argc + 1;
	st_environ = envp;
	char **e = envp;
	while (*e)
		e++;
	Elf64_auxv_t *auxv = (Elf64_auxv_t *)(e + 1);
	size_t nenv = (size_t)(e - envp), naux = 0;
	while (auxv[naux].a_type != AT_NULL)
		naux++;

	if (argc < 3) {
		st_say("usage: nvring-static-loader PROGRAM ARGV0 [ARGS...] (run by `nvring run`)", NULL);
		st_exit(2);
	}
	prog_path = argv[1];
	const char *dbg = st_getenv("NVRING_STATIC_DEBUG");
	debug = dbg && *dbg && *dbg != '0';

	long fd = sys3(__NR_open, prog_path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		die("cannot open", fd);
	struct stat st;
	long r = sys2(__NR_fstat, fd, &st);
	if (r < 0)
		die("cannot stat", r);
	long img = sys6(__NR_mmap, 0, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (sys_err(img))
		die("cannot read", img);
	const uint8_t *file = (const uint8_t *)img;
	if (st_elf_check(file, (size_t)st.st_size) < 0)
		die("is not an x86-64 ELF executable", 0);
	const Elf64_Ehdr *eh = (const void *)file;

	uintptr_t phdr;
	uintptr_t bias = map_program((int)fd, file, (size_t)st.st_size, &phdr);
	patch_program(file, (size_t)st.st_size, bias);
	sys1(__NR_close, fd);
	/* the program's name in ps and in the owner's log, not the loader's */
	const char *base = argv[2];
	for (const char *q = argv[2]; *q; q++)
		if (*q == '/')
			base = q + 1;
	char comm[16] = { 0 };
	for (size_t i = 0; i < 15 && base[i]; i++)
		comm[i] = base[i];
	sys2(__NR_prctl, PR_SET_NAME, comm);
	if (st_client_init() < 0)
		die("NVRING_DEVICE is not set (run it through `nvring run`)", 0);

	/* The program's stack below ours: argc, argv from ARGV0 on, envp, auxv;
	 * the strings and AT_RANDOM's bytes stay where the kernel put them. */
	size_t pargc = (size_t)argc - 2;
	size_t words = 1 + pargc + 1 + nenv + 1 + 2 * (naux + 1);
	uintptr_t nsp = ((uintptr_t)sp - 4096 - words * 8) & ~15ul;
	uintptr_t *w = (uintptr_t *)nsp;
	*w++ = pargc;
	for (size_t i = 0; i < pargc; i++)
		*w++ = (uintptr_t)argv[2 + i];
	*w++ = 0;
	for (size_t i = 0; i < nenv; i++)
		*w++ = (uintptr_t)envp[i];
	*w++ = 0;
	for (size_t i = 0; i < naux; i++) {
		uintptr_t t = auxv[i].a_type, v = auxv[i].a_un.a_val;
		switch (t) {
		case AT_PHDR: v = phdr; break;
		case AT_PHENT: v = sizeof(Elf64_Phdr); break;
		case AT_PHNUM: v = eh->e_phnum; break;
		case AT_ENTRY: v = bias + eh->e_entry; break;
		case AT_BASE: v = 0; break;
		case AT_EXECFN: v = (uintptr_t)prog_path; break;
		}
		*w++ = t;
		*w++ = v;
	}
	*w++ = AT_NULL;
	*w++ = 0;
	jump(nsp, bias + eh->e_entry);
}

__asm__(
	"    .text\n"
	"    .globl _start\n"
	"    .type _start, @function\n"
	"_start:\n"
	"    xor %ebp, %ebp\n"
	"    mov %rsp, %rdi\n"
	"    and $-16, %rsp\n"
	"    call st_main\n"
	"    hlt\n");
