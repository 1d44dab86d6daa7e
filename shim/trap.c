// SPDX-License-Identifier: MIT
/*
 * shim/trap.c — the seccomp net behind the patched sites.
 *
 * A BPF filter returns SECCOMP_RET_TRAP for every io_uring_setup, _enter
 * and _register (under the shim every ring is ours) and for close, dup2 and
 * dup3 onto a descriptor at or above shim_fd_floor (the shim's rings and
 * namespace descriptors), unless the instruction is shim_raw_syscall()'s
 * own. The SIGSYS handler runs the call through shim_stub_call() and, where
 * the bytes before the instruction are a patchable site, rewrites it so the
 * next call from there takes the fast path.
 *
 * The filter is inherited by every child and survives execve; the handler
 * does not survive execve. A program exec'ed from under the shim is fine
 * when the shim is preloaded into it too (LD_PRELOAD is inherited, and the
 * new image's constructor installs the handler before the program runs):
 * its own io_uring calls go to its shim, and the filter stack only grows by
 * one. A static binary exec'ed from under the shim loads no preload and is
 * killed by its first trapped call; `nvring run` refuses static binaries,
 * and a shell script's static helpers (busybox) are the case to know about.
 * A program that blocks SIGSYS or installs its own SIGSYS handler also loses
 * the net (a trapped call with SIGSYS blocked kills the process).
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>

#include "shim/patch.h"
#include "shim/shim.h"

#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1   /* si_code of a seccomp SIGSYS */
#endif

static atomic_ulong traps;
static bool installed;

unsigned long shim_trap_count(void)
{
    return atomic_load_explicit(&traps, memory_order_relaxed);
}

static void on_sigsys(int sig, siginfo_t *si, void *ctx)
{
    int saved = errno;
    ucontext_t *uc = ctx;
    greg_t *g = uc->uc_mcontext.gregs;

    if (si->si_code != SYS_SECCOMP || si->si_arch != AUDIT_ARCH_X86_64)
        return;   /* a SIGSYS someone sent: not a call to complete */
    long nr = si->si_syscall;
    const long a[6] = { g[REG_RDI], g[REG_RSI], g[REG_RDX], g[REG_R10], g[REG_R8], g[REG_R9] };
    /* The kernel resumes at the instruction after the syscall with the
     * registers of this context: the result goes into its rax. */
    g[REG_RAX] = shim_stub_call(nr, a);
    atomic_fetch_add_explicit(&traps, 1, memory_order_relaxed);
    if (nr == __NR_io_uring_enter || nr == __NR_io_uring_setup || nr == __NR_io_uring_register)
        shim_patch_at(si->si_call_addr);   /* the address after the syscall */
    errno = saved;
}

/* A tiny BPF assembler: jumps name labels, resolved once the program is
 * laid out (jt/jf count instructions from the next one). */
enum label { L_NEXT, L_NR, L_ALLOW, L_TRAP, L_CLOSE, L_ARG1, L_NLABELS };

#define PROG_MAX 32

struct prog {
    struct sock_filter insn[PROG_MAX];
    unsigned char jt[PROG_MAX], jf[PROG_MAX];   /* labels, for jumps */
    unsigned n;
    unsigned at[L_NLABELS];
};

static void emit(struct prog *p, unsigned short code, unsigned k, enum label jt, enum label jf)
{
    p->insn[p->n] = (struct sock_filter)BPF_JUMP(code, k, 0, 0);
    p->jt[p->n] = jt;
    p->jf[p->n] = jf;
    p->n++;
}

static void label(struct prog *p, enum label l)
{
    p->at[l] = p->n;
}

static unsigned char offset_to(const struct prog *p, unsigned from, enum label l)
{
    return l == L_NEXT ? 0 : (unsigned char)(p->at[l] - from - 1);
}

#define DATA_OFF(field) ((unsigned)offsetof(struct seccomp_data, field))
#define ARG_LO(i) (DATA_OFF(args) + 8u * (i))   /* little-endian low word */
#define LD(off) emit(p, BPF_LD | BPF_W | BPF_ABS, (off), L_NEXT, L_NEXT)
#define JEQ(k, jt, jf) emit(p, BPF_JMP | BPF_JEQ | BPF_K, (k), (jt), (jf))
#define JGE(k, jt, jf) emit(p, BPF_JMP | BPF_JGE | BPF_K, (k), (jt), (jf))
#define RET(k) emit(p, BPF_RET | BPF_K, (k), L_NEXT, L_NEXT)

/* The filter; close/dup rules only with a floor. */
static void build(struct prog *p, unsigned floor)
{
    uint64_t raw_ip = (uint64_t)(uintptr_t)shim_raw_end;

    p->n = 0;
    /* int 0x80 and x32 callers use other numbers and 32-bit pointers the
     * shim could not serve: they go to the kernel untouched. */
    LD(DATA_OFF(arch));
    JEQ(AUDIT_ARCH_X86_64, L_NEXT, L_ALLOW);
    /* The shim's own instruction: instruction_pointer is the address after
     * it, shim_raw_end, compared as two 32-bit words. */
    LD(DATA_OFF(instruction_pointer));
    JEQ((uint32_t)raw_ip, L_NEXT, L_NR);
    LD(DATA_OFF(instruction_pointer) + 4);
    JEQ((uint32_t)(raw_ip >> 32), L_ALLOW, L_NR);
    label(p, L_NR);
    LD(DATA_OFF(nr));
    JEQ(__NR_io_uring_setup, L_TRAP, L_NEXT);
    JEQ(__NR_io_uring_enter, L_TRAP, L_NEXT);
    JEQ(__NR_io_uring_register, L_TRAP, L_NEXT);
    if (floor) {
        JEQ(__NR_close, L_CLOSE, L_NEXT);
        JEQ(__NR_dup2, L_ARG1, L_NEXT);
        JEQ(__NR_dup3, L_ARG1, L_ALLOW);
        /* The kernel takes these descriptors as unsigned int: the low word
         * is the whole argument (a negative fd lands above the floor, where
         * the dispatcher passes it on to fail as it would). */
        label(p, L_CLOSE);
        LD(ARG_LO(0));
        JGE(floor, L_TRAP, L_ALLOW);
        label(p, L_ARG1);
        LD(ARG_LO(1));
        JGE(floor, L_TRAP, L_ALLOW);
    }
    /* BPF jumps only forward: both returns come last. */
    label(p, L_ALLOW);
    RET(SECCOMP_RET_ALLOW);
    label(p, L_TRAP);
    RET(SECCOMP_RET_TRAP);

    for (unsigned i = 0; i < p->n; i++) {
        if (BPF_CLASS(p->insn[i].code) != BPF_JMP)
            continue;
        p->insn[i].jt = offset_to(p, i, p->jt[i]);
        p->insn[i].jf = offset_to(p, i, p->jf[i]);
    }
}

static long raw(long nr, long a0, long a1, long a2)
{
    return shim_raw_syscall(nr, a0, a1, a2, 0, 0, 0);
}

int shim_trap_init(void)
{
    if (installed)
        return 0;

    struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO }, old;
    /* Other handlers are held off while a trapped call runs: one that made
     * a trapped call itself would raise SIGSYS while SIGSYS is blocked,
     * which the kernel answers by killing the process. */
    sigfillset(&sa.sa_mask);
    if (sigaction(SIGSYS, &sa, &old) < 0)
        return -errno;

    static struct prog p;
    build(&p, shim_fd_floor > 0 ? (unsigned)shim_fd_floor : 0);
    struct sock_fprog fprog = { .len = (unsigned short)p.n, .filter = p.insn };

    /* TSYNC: threads started before us (a constructor that ran earlier may
     * have made some) get the filter too; a positive result names a thread
     * that could not be synchronised. Without CAP_SYS_ADMIN the kernel
     * wants no_new_privs first; it is set only then, because it is
     * inherited and irreversible (setuid programs exec'ed later, sudo say,
     * would no longer gain privileges) — as root it is left alone. */
    long rc = raw(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, (long)&fprog);
    if (rc == -EACCES && raw(__NR_prctl, PR_GET_NO_NEW_PRIVS, 0, 0) == 0) {
        rc = shim_raw_syscall(__NR_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0);
        if (rc == 0)
            rc = raw(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, (long)&fprog);
    }
    if (rc > 0)
        rc = -EBUSY;
    if (rc < 0) {
        sigaction(SIGSYS, &old, NULL);
        return (int)rc;
    }
    installed = true;
    return 0;
}
