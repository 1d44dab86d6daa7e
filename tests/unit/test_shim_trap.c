// SPDX-License-Identifier: MIT
/*
 * tests/unit/test_shim_trap.c — shim/trap.c on the host: the seccomp filter
 * and SIGSYS handler, each scenario in a forked child (the filter cannot be
 * removed once installed). A child exits 0, or the line of its first failed
 * check. Skipped under valgrind, which cannot run a process under its own
 * seccomp filter (its syscalls come from its own instructions, its signal
 * frames are its own).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <valgrind/valgrind.h>

#include "shim/patch.h"
#include "shim/shim.h"
#include "tests/unit/shim_sites.h"

#define MARKER 0x5a5a0000l

int shim_fd_floor;

static struct {
    int calls;
    long nr;
    long a[6];
} seen;

/* Claims the io_uring calls, and close/dup onto a fd at or above the floor. */
bool shim_dispatch(long nr, const long a[6], long *ret)
{
    bool io_uring = nr == __NR_io_uring_setup || nr == __NR_io_uring_enter ||
                    nr == __NR_io_uring_register;
    bool ours = (nr == __NR_close && a[0] >= shim_fd_floor) ||
                ((nr == __NR_dup2 || nr == __NR_dup3) && a[1] >= shim_fd_floor);
    if (!io_uring && !(shim_fd_floor && ours))
        return false;
    seen.calls++;
    seen.nr = nr;
    memcpy(seen.a, a, sizeof seen.a);
    errno = EPERM;   /* the handler must hide this */
    *ret = io_uring ? MARKER + nr : 0;
    return true;
}

#define CHECK(c) \
    do { \
        if (!(c)) \
            return __LINE__; \
    } while (0)

static int child_floor(void)
{
    shim_fd_floor = 900;
    CHECK(shim_patch_record() == 0);
    CHECK(shim_trap_init() == 0);

    /* io_uring_setup from a site with no pattern: trapped, errno kept */
    errno = 4321;
    CHECK(raw6(__NR_io_uring_setup, 8, 0x1000, 0, 0, 0) == MARKER + __NR_io_uring_setup);
    CHECK(errno == 4321);
    CHECK(seen.calls == 1 && seen.nr == __NR_io_uring_setup && seen.a[0] == 8 && seen.a[1] == 0x1000);
    CHECK(shim_trap_count() == 1);
    CHECK(shim_patch_count() == 0);

    /* a fio-shaped site: trapped once, rewritten by the handler, then the
     * stub's path (no further trap) */
    CHECK(code_byte(site7_mov + 0) == 0xb8);
    CHECK(site7(5, 6, 7, 8, 9, 10) == MARKER + __NR_io_uring_enter);
    CHECK(seen.a[0] == 5 && seen.a[3] == 8 && seen.a[5] == 10);
    CHECK(shim_trap_count() == 2);
    CHECK(shim_patch_count() == 1 && code_byte(site7_mov + 0) == 0xe9);
    CHECK(site7(11, 0, 0, 0, 0, 0) == MARKER + __NR_io_uring_enter && seen.a[0] == 11);
    CHECK(shim_trap_count() == 2 && seen.calls == 3);
    /* fio's 9-byte shape too */
    CHECK(site9(12, 0, 13, 0, 0, 0) == MARKER + __NR_io_uring_enter && seen.a[2] == 13);
    CHECK(shim_patch_count() == 2 && code_byte(site9_mov + 0) == 0xe9);
    /* never the site with a branch into it */
    CHECK(site_branched(14, 0, 0, 0, 0, 0) == MARKER + __NR_io_uring_enter);
    CHECK(code_byte(site_branched_mov + 0) == 0xb8 && shim_patch_count() == 2);
    int traps = (int)shim_trap_count();

    /* the shim's own instruction is let through: the kernel answers */
    CHECK(shim_raw_syscall(__NR_io_uring_setup, 0, 0, 0, 0, 0, 0) < 0);
    CHECK(shim_raw_syscall(__NR_close, 950, 0, 0, 0, 0, 0) == -EBADF);
    CHECK((int)shim_trap_count() == traps);

    /* close/dup at or above the floor: trapped */
    int calls = seen.calls;
    CHECK(raw6(__NR_close, 950, 0, 0, 0, 0) == 0);
    CHECK(seen.calls == calls + 1 && seen.nr == __NR_close && seen.a[0] == 950);
    CHECK(raw6(__NR_dup2, 0, 900, 0, 0, 0) == 0 && seen.nr == __NR_dup2 && seen.a[1] == 900);
    CHECK(raw6(__NR_dup3, 0, 951, 0, 0, 0) == 0 && seen.nr == __NR_dup3 && seen.a[1] == 951);
    CHECK(seen.calls == calls + 3);

    /* below the floor: the kernel's */
    int fd = open("/dev/null", O_RDONLY);
    CHECK(fd >= 0 && fd < 900);
    CHECK(raw6(__NR_dup2, fd, 899, 0, 0, 0) == 899);
    CHECK(raw6(__NR_close, 899, 0, 0, 0, 0) == 0);
    CHECK(raw6(__NR_close, fd, 0, 0, 0, 0) == 0);
    CHECK(fcntl(fd, F_GETFD) == -1 && errno == EBADF);
    CHECK(seen.calls == calls + 3);
    /* and everything else */
    CHECK(raw6(__NR_getpid, 0, 0, 0, 0, 0) == getpid());
    CHECK(site_getpid() == getpid());
    CHECK((int)shim_trap_count() == traps + 3);
    return 0;
}

static int child_no_floor(void)
{
    shim_fd_floor = 0;
    CHECK(shim_trap_init() == 0);
    CHECK(raw6(__NR_close, 950, 0, 0, 0, 0) == -EBADF);
    CHECK(raw6(__NR_dup2, 0, 950, 0, 0, 0) == 950);
    CHECK(seen.calls == 0 && shim_trap_count() == 0);
    CHECK(raw6(__NR_io_uring_register, 950, 0, 0, 0, 0) == MARKER + __NR_io_uring_register);
    CHECK(shim_trap_count() == 1);
    return 0;
}

static void run_child(int (*fn)(void))
{
    if (RUNNING_ON_VALGRIND)
        skip();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(fn());
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (WIFSIGNALED(st))
        fail_msg("child killed by signal %d", WTERMSIG(st));
    if (WEXITSTATUS(st))
        fail_msg("child failed at tests/unit/test_shim_trap.c:%d", WEXITSTATUS(st));
}

static void test_trap_floor(void **state)
{
    run_child(child_floor);
}

static void test_trap_no_floor(void **state)
{
    run_child(child_no_floor);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trap_floor),
        cmocka_unit_test(test_trap_no_floor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
