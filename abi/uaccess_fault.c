/* SPDX-License-Identifier: MIT */
/*
 * Copying user memory without a system call, faults and all: the kernel's
 * own method (an exception table, arch/x86/lib/copy_user_64.S). The copy
 * is an assembly routine whose few instructions that touch memory are
 * known; a SIGSEGV/SIGBUS handler installed once finds the faulting
 * instruction's address in the signal's ucontext and, when it is one of
 * them, resumes at a fixup that returns the bytes not copied. Every other
 * fault goes to the handler that was there before ours, as if we were not
 * there. The results are those of the process_vm path (abi/uaccess.h);
 * tests/unit/test_uaccess.c compares the two on many layouts.
 *
 * Exactness: `rep movsb` stops at a fault with RCX/RSI/RDI consistent,
 * but fast-string microcode may stop some bytes before the one that
 * faults, so the fixup goes on one byte at a time up to it (as the
 * kernel's copy_user_handle_tail does). Access
 * rights are per page, so the count ends where process_vm's does: at the
 * first page that cannot be read (or, copying to the user, written).
 * Exceptions (layouts neither the difftest nor any program we know uses):
 * a page the CPU can access but get_user_pages() refuses (VM_IO/VM_PFNMAP
 * mappings such as a device BAR; PROT_WRITE- or PROT_EXEC-only mappings,
 * which x86 page tables make readable) copies here and is -EFAULT through
 * process_vm, and an execute-only protection key the other way round.
 *
 * Cost per 4 KiB copy (bench/uacopy.c): on the development host (Debian
 * 12, Linux 6.1, 2 vCPUs, FSRM) ~0.05-0.1 us, memcpy's cost, against
 * ~1.2-1.7 us through process_vm_readv; in the TCG guest of the VM tests
 * 2.3 us against 20 us. Each thread asks the kernel every UR_FAULT_RECHECK
 * copies whether the handler is still ours (two sigaction() and one
 * sigprocmask() query, ~0.6 us: ~2 ns per copy).
 *
 * When not to use it (ur_fault_usable() is false, the caller uses
 * process_vm): not x86-64; under valgrind (its memcheck would report the
 * accesses that fault as errors); a thread with SIGSEGV or SIGBUS
 * blocked (a fault there would kill the process: force_sig_fault()
 * resets the handler to SIG_DFL); and a handler installed after ours. We
 * never install ours over such a handler: it may chain to ours, which
 * would chain back. Ours goes in at the first copy, over whatever is
 * there then (it chains to that); again later only over SIG_DFL (a
 * program that put the default back) or over ours put back by signal()
 * without SA_SIGINFO. An SQPOLL poller has the signal mask of the thread
 * that set the ring up. The window: a program that installs a
 * handler while a thread is between two checks, and then passes a bad
 * pointer in that thread before it checks again, has that fault go to
 * its handler (at most UR_FAULT_RECHECK copies, or until the next ring
 * setup, which makes every thread check).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "abi/ring.h"
#include "abi/uaccess.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#define UR_FAULT_RECHECK 256u

#if defined(__x86_64__) && defined(__linux__)
#define UR_HAVE_FAULT_COPY 1

/*
 * size_t ur_xcopy(void *dst, const void *src, size_t len): the bytes NOT
 * copied (0 when all were). 64-byte blocks with SSE (four loads, then
 * four stores), the rest with `rep movsb`. A fault at any block load or
 * store, or at ur_xc_rep, resumes at ur_xc_tail with RSI/RDI/RCX at the
 * first byte not known to be copied (a block's start: stores of it done
 * before the fault are redone, same bytes); a fault at ur_xc_ld or
 * ur_xc_st resumes at ur_xc_out. Blocks rather than one `rep movsb`:
 * QEMU's TCG (the guest the VM tests and bench/ run in) emulates a
 * string instruction one element at a time, ~15 us per 4 KiB, against
 * ~0.1 us for the loop there; on hardware both cost about what memcpy
 * does (bench/uacopy.c).
 */
#define UR_XC_LABEL(name) "	.globl " name "\n	.hidden " name "\n" name ":\n"
__asm__(
	"	.text\n"
	"	.p2align 4\n"
	"	.globl ur_xcopy\n"
	"	.hidden ur_xcopy\n"
	"	.type ur_xcopy, @function\n"
	"ur_xcopy:\n"
	"	.cfi_startproc\n"
#ifdef __CET__
	"	endbr64\n"
#endif
	"	movq %rdx, %rcx\n"
	"	cmpq $64, %rcx\n"
	"	jb 2f\n"
	"1:\n"
	UR_XC_LABEL("ur_xc_l0") "	movdqu (%rsi), %xmm0\n"
	UR_XC_LABEL("ur_xc_l1") "	movdqu 16(%rsi), %xmm1\n"
	UR_XC_LABEL("ur_xc_l2") "	movdqu 32(%rsi), %xmm2\n"
	UR_XC_LABEL("ur_xc_l3") "	movdqu 48(%rsi), %xmm3\n"
	UR_XC_LABEL("ur_xc_s0") "	movdqu %xmm0, (%rdi)\n"
	UR_XC_LABEL("ur_xc_s1") "	movdqu %xmm1, 16(%rdi)\n"
	UR_XC_LABEL("ur_xc_s2") "	movdqu %xmm2, 32(%rdi)\n"
	UR_XC_LABEL("ur_xc_s3") "	movdqu %xmm3, 48(%rdi)\n"
	"	addq $64, %rsi\n"
	"	addq $64, %rdi\n"
	"	subq $64, %rcx\n"
	"	cmpq $64, %rcx\n"
	"	jae 1b\n"
	"2:\n"
	UR_XC_LABEL("ur_xc_rep")
	"	rep movsb\n"
	"	xorl %eax, %eax\n"
	"	ret\n"
	UR_XC_LABEL("ur_xc_tail")         /* RCX bytes left, RSI/RDI at the first */
	"	testq %rcx, %rcx\n"
	"	jz ur_xc_out\n"
	UR_XC_LABEL("ur_xc_ld")
	"	movb (%rsi), %al\n"
	UR_XC_LABEL("ur_xc_st")
	"	movb %al, (%rdi)\n"
	"	incq %rsi\n"
	"	incq %rdi\n"
	"	decq %rcx\n"
	"	jnz ur_xc_ld\n"
	UR_XC_LABEL("ur_xc_out")
	"	movq %rcx, %rax\n"
	"	ret\n"
	"	.cfi_endproc\n"
	"	.size ur_xcopy, .-ur_xcopy\n");

#define UR_XC_SYM(name) extern const char name[] __attribute__((visibility("hidden")))
__attribute__((visibility("hidden"))) size_t ur_xcopy(void *dst, const void *src, size_t len);
UR_XC_SYM(ur_xc_l0); UR_XC_SYM(ur_xc_l1); UR_XC_SYM(ur_xc_l2); UR_XC_SYM(ur_xc_l3);
UR_XC_SYM(ur_xc_s0); UR_XC_SYM(ur_xc_s1); UR_XC_SYM(ur_xc_s2); UR_XC_SYM(ur_xc_s3);
UR_XC_SYM(ur_xc_rep); UR_XC_SYM(ur_xc_tail); UR_XC_SYM(ur_xc_ld); UR_XC_SYM(ur_xc_st);
UR_XC_SYM(ur_xc_out);

/* The exception table: where to resume a fault at @ip, or 0. */
static uintptr_t ur_fixup(uintptr_t ip)
{
	static const char *const to_tail[] = { ur_xc_l0, ur_xc_l1, ur_xc_l2, ur_xc_l3, ur_xc_s0,
					       ur_xc_s1, ur_xc_s2, ur_xc_s3, ur_xc_rep };
	for (unsigned i = 0; i < sizeof(to_tail) / sizeof(to_tail[0]); i++)
		if (ip == (uintptr_t)to_tail[i])
			return (uintptr_t)ur_xc_tail;
	if (ip == (uintptr_t)ur_xc_ld || ip == (uintptr_t)ur_xc_st)
		return (uintptr_t)ur_xc_out;
	return 0;
}

static greg_t *ur_ctx_ip(void *uctx)
{
	return &((ucontext_t *)uctx)->uc_mcontext.gregs[REG_RIP];
}
#else
#define UR_HAVE_FAULT_COPY 0
#endif

/* The disposition we replaced, per signal (0: SIGSEGV, 1: SIGBUS). Two
 * slots, so a handler running while we install again reads a whole one:
 * the slot is written, then published by the index (release). */
static struct sigaction ur_prev[2][2];
static _Atomic unsigned ur_prev_slot[2];
static bool ur_claimed[2];            /* under ur_claim_lock */
static pthread_mutex_t ur_claim_lock = PTHREAD_MUTEX_INITIALIZER;

static _Atomic unsigned ur_fault_gen = 1;
static _Atomic int ur_path = UR_UA_AUTO;

static int ur_sig_index(int sig) { return sig == SIGBUS; }

#if UR_HAVE_FAULT_COPY
/*
 * Hand a fault that is not ours to the previous disposition, as the
 * kernel would have delivered it. Runs in the signal handler: only
 * async-signal-safe calls.
 */
static void ur_fault_chain(int sig, siginfo_t *si, void *uctx)
{
	int i = ur_sig_index(sig);
	const struct sigaction *old =
		&ur_prev[i][atomic_load_explicit(&ur_prev_slot[i], memory_order_acquire)];
	int saved_errno = errno;
	if (old->sa_flags & SA_SIGINFO) {
		if (old->sa_flags & SA_RESETHAND) {
			struct sigaction dfl = { .sa_handler = SIG_DFL };
			sigaction(sig, &dfl, NULL);
		}
		old->sa_sigaction(sig, si, uctx);
	} else if (old->sa_handler == SIG_IGN && si->si_code <= 0) {
		/* sent by kill() and friends, and ignored */
	} else if (old->sa_handler == SIG_DFL || old->sa_handler == SIG_IGN) {
		/* The default action (a fault is fatal even when ignored:
		 * force_sig_fault()). Put SIG_DFL back and queue the same
		 * siginfo to this thread: it is blocked while we run, so it
		 * is delivered, and kills, as we return. */
		struct sigaction dfl = { .sa_handler = SIG_DFL };
		sigaction(sig, &dfl, NULL);
		syscall(SYS_rt_tgsigqueueinfo, getpid(), (pid_t)syscall(SYS_gettid), sig, si);
	} else {
		if (old->sa_flags & SA_RESETHAND) {
			struct sigaction dfl = { .sa_handler = SIG_DFL };
			sigaction(sig, &dfl, NULL);
		}
		old->sa_handler(sig);
	}
	errno = saved_errno;
}

static void ur_fault_handler(int sig, siginfo_t *si, void *uctx)
{
	/* si_code > 0: raised by the kernel for this instruction, not sent */
	if (si->si_code > 0) {
		greg_t *ip = ur_ctx_ip(uctx);
		uintptr_t fix = ur_fixup((uintptr_t)*ip);
		if (fix) {
			*ip = (greg_t)fix;
			return;
		}
	}
	ur_fault_chain(sig, si, uctx);
}

static bool ur_is_ours(const struct sigaction *sa)
{
	return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == ur_fault_handler;
}

/* Make our handler @sig's disposition if it is not (see the top for
 * when we may); true if it is ours afterwards. Under ur_claim_lock. */
static bool ur_claim(int sig, bool force)
{
	int i = ur_sig_index(sig);
	struct sigaction cur;
	if (sigaction(sig, NULL, &cur))
		return false;
	if (ur_is_ours(&cur))
		return true;
	/* Ours without SA_SIGINFO: put back by signal() with the pointer
	 * that signal() returned (cmocka does, around each test). Still
	 * ours, chaining to what it did: reinstall it whole. */
	struct sigaction me = { .sa_sigaction = ur_fault_handler };
	bool ours = !(cur.sa_flags & SA_SIGINFO) &&
		    !memcmp(&cur.sa_sigaction, &me.sa_sigaction, sizeof(me.sa_sigaction));
	bool dfl = !(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_DFL;
	if (ur_claimed[i] && !dfl && !ours && !force)
		return false;
	unsigned slot = atomic_load_explicit(&ur_prev_slot[i], memory_order_relaxed);
	if (!ours) {
		slot ^= 1;
		ur_prev[i][slot] = cur;
		/* the previous disposition is complete before it is published */
		atomic_store_explicit(&ur_prev_slot[i], slot, memory_order_release);
	}
	/* SA_ONSTACK: a previous handler that catches stack overflows on an
	 * alternate stack still gets them there. Its mask and NODEFER and
	 * RESTART flags are kept for the signals we hand on. */
	const struct sigaction *basis = &ur_prev[i][slot];
	struct sigaction sa = { .sa_sigaction = ur_fault_handler };
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | (basis->sa_flags & (SA_NODEFER | SA_RESTART));
	sa.sa_mask = basis->sa_mask;
	struct sigaction was;
	if (sigaction(sig, &sa, &was))
		return false;
	if (!ours && (memcmp(&was.sa_sigaction, &cur.sa_sigaction, sizeof(cur.sa_sigaction)) ||
		      was.sa_flags != cur.sa_flags)) {
		/* the program changed it between the two calls */
		ur_prev[i][slot] = was;
	}
	ur_claimed[i] = true;
	return true;
}

static bool ur_fault_process_ok(bool force)
{
	/* trylock when asked from a copy: a thread that loses the race (or a
	 * fork()ed child whose parent held the lock) copies through
	 * process_vm until it asks again */
	if (!force) {
		if (pthread_mutex_trylock(&ur_claim_lock))
			return false;
	} else {
		pthread_mutex_lock(&ur_claim_lock);
	}
	bool ok = ur_claim(SIGSEGV, force) && ur_claim(SIGBUS, force);
	pthread_mutex_unlock(&ur_claim_lock);
	return ok;
}
#endif

/* Per thread: the answer, the generation it was given for and how many
 * more calls may use it. initial-exec: no __tls_get_addr() per copy. */
struct ur_fault_tls {
	unsigned gen, left;
	bool ok;
};
static __thread struct ur_fault_tls ur_tls __attribute__((tls_model("initial-exec")));

static bool ur_fault_ask(unsigned gen)
{
	bool ok = false;
#if UR_HAVE_FAULT_COPY
	if (atomic_load_explicit(&ur_path, memory_order_relaxed) != UR_UA_PVM && !RUNNING_ON_VALGRIND) {
		sigset_t m;
		ok = !pthread_sigmask(SIG_BLOCK, NULL, &m) && !sigismember(&m, SIGSEGV) &&
		     !sigismember(&m, SIGBUS) && ur_fault_process_ok(false);
	}
#endif
	ur_tls = (struct ur_fault_tls){ .gen = gen, .left = UR_FAULT_RECHECK, .ok = ok };
	return ok;
}

bool ur_fault_usable(void)
{
	unsigned gen = atomic_load_explicit(&ur_fault_gen, memory_order_relaxed);
	if (__builtin_expect(ur_tls.left && ur_tls.gen == gen, 1)) {
		ur_tls.left--;
		return ur_tls.ok;
	}
	return ur_fault_ask(gen);
}

void ur_fault_recheck(void)
{
	/* relaxed: the threads need to see it eventually, nothing else
	 * is published with it */
	atomic_fetch_add_explicit(&ur_fault_gen, 1, memory_order_relaxed);
}

int ur_uaccess_set_path(enum ur_ua_path p)
{
	int ret = 0;
	atomic_store_explicit(&ur_path, p == UR_UA_PVM ? UR_UA_PVM : UR_UA_AUTO, memory_order_relaxed);
	if (p == UR_UA_FAULT) {
#if UR_HAVE_FAULT_COPY
		if (RUNNING_ON_VALGRIND)
			ret = -ENOTSUP;
		else if (!ur_fault_process_ok(true))
			ret = errno ? -errno : -EINVAL;
#else
		ret = -ENOTSUP;
#endif
	}
	ur_fault_recheck();
	return ret;
}

ssize_t ur_fault_move(bool to_user, void *buf, size_t len, const struct iovec *iov,
		      unsigned long n)
{
#if UR_HAVE_FAULT_COPY
	/* process_vm_rw(): nothing to copy returns before the remote iovec
	 * is read; a remote length above SSIZE_MAX is -EINVAL (-EFAULT to
	 * our callers, as pvm() maps it) before anything is copied; the
	 * local length is cut to MAX_RW_COUNT (import_iovec()). */
	if (!len)
		return 0;
	for (unsigned long i = 0; i < n; i++)
		if ((ssize_t)iov[i].iov_len < 0)
			return -EFAULT;
	if (len > UR_MAX_RW_COUNT)
		len = UR_MAX_RW_COUNT;
	uint8_t *b = buf;
	size_t done = 0;
	for (unsigned long i = 0; i < n && done < len; i++) {
		size_t seg = iov[i].iov_len < len - done ? iov[i].iov_len : len - done;
		if (!seg)
			continue;
		size_t left = to_user ? ur_xcopy(iov[i].iov_base, b + done, seg)
				      : ur_xcopy(b + done, iov[i].iov_base, seg);
		done += seg - left;
		if (left)
			return done ? (ssize_t)done : -EFAULT;
	}
	return (ssize_t)done;
#else
	(void)to_user, (void)buf, (void)len, (void)iov, (void)n;
	return -ENOTSUP;
#endif
}
