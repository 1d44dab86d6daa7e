// SPDX-License-Identifier: MIT
/*
 * bench/shim_cost.c — host microbenchmark: ns per io_uring_enter-like round
 * trip into a dispatcher that claims the call at once, through
 *   direct   a C call (what liburing's interposed exports cost),
 *   syscall  libc's syscall() as the shim defines it (shim/libc.c: the
 *            varargs unpacked, the dispatcher, errno at the boundary),
 *   patched  an inline `mov $0x1aa,%eax; syscall` site rewritten by
 *            shim_patch_init() (fio's sites),
 *   trap     the same call from a site with no pattern, through seccomp's
 *            SIGSYS (a forked child: the filter stays),
 *   kernel   the real system call (io_uring_enter on a non-fd: -EBADF).
 * Median of 5 runs. Runs on the host (no device, not in the guest; bench/run
 * does not run it): `make build/bench/shim_cost && build/bench/shim_cost`.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shim/patch.h"
#include "shim/shim.h"
#include "tests/unit/shim_sites.h"

int shim_fd_floor;
static volatile long sink;

bool shim_dispatch(long nr, const long a[6], long *ret)
{
    if (nr != __NR_io_uring_enter)
        return false;
    sink = a[0];
    *ret = 0;
    return true;
}

/* Stands for an interposed liburing export. */
__attribute__((noinline)) static long direct_enter(long fd, long a1, long a2, long a3, long a4, long a5)
{
    long a[6] = { fd, a1, a2, a3, a4, a5 }, ret;
    return shim_dispatch(__NR_io_uring_enter, a, &ret) ? ret : -1;
}

static long (*volatile direct_fn)(long, long, long, long, long, long) = direct_enter;

/* Stands for the shim's syscall(): layer (b). */
__attribute__((noinline)) static long shim_syscall(long nr, ...)
{
    va_list ap;
    long a[6], r;
    va_start(ap, nr);
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    if (!shim_dispatch(nr, a, &r))
        return -1;
    if (r < 0 && r > -4096) {
        errno = (int)-r;
        return -1;
    }
    return r;
}

static long (*volatile syscall_fn)(long, ...) = shim_syscall;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

enum path { DIRECT, SYSCALL, PATCHED, TRAP, KERNEL };

static double run(enum path p, long iters)
{
    double t0 = now_ns();
    for (long i = 0; i < iters; i++) {
        switch (p) {
        case DIRECT: direct_fn(0x7fff0001, 1, 0, 0, 0, 0); break;
        case SYSCALL: syscall_fn(__NR_io_uring_enter, 0x7fff0001L, 1L, 0L, 0L, 0L, 0L); break;
        case PATCHED: site7(0x7fff0001, 1, 0, 0, 0, 0); break;
        case TRAP: raw6(__NR_io_uring_enter, 0x7fff0001, 1, 0, 0, 0); break;
        case KERNEL: shim_raw_syscall(__NR_io_uring_enter, 0x7fff0001, 1, 0, 0, 0, 0); break;
        }
    }
    return (now_ns() - t0) / (double)iters;
}

static double median5(enum path p, long iters)
{
    double v[5];
    for (int i = 0; i < 5; i++)
        v[i] = run(p, iters);
    for (int i = 0; i < 5; i++)
        for (int j = i + 1; j < 5; j++)
            if (v[j] < v[i]) {
                double t = v[i];
                v[i] = v[j];
                v[j] = t;
            }
    return v[2];
}

int main(void)
{
    printf("kernel   %8.1f ns  (io_uring_enter -EBADF)\n", median5(KERNEL, 200000));
    printf("direct   %8.1f ns\n", median5(DIRECT, 2000000));
    printf("syscall  %8.1f ns  (the shim's syscall())\n", median5(SYSCALL, 2000000));
    int n = shim_patch_init();
    if (n < 1 || code_byte(site7_mov) != 0xe9) {
        fprintf(stderr, "shim_cost: site not patched (%d)\n", n);
        return 1;
    }
    printf("patched  %8.1f ns  (%d sites)\n", median5(PATCHED, 2000000), n);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (shim_trap_init() < 0)
            _exit(2);
        printf("trap     %8.1f ns\n", median5(TRAP, 20000));
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
