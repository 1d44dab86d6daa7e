// SPDX-License-Identifier: MIT
/*
 * tests/unit/test_shim_patch.c — shim/patch.c and shim/stub.c on the host:
 * the matcher and branch check on crafted bytes and on Debian's fio, then
 * this program's own fio-shaped sites rewritten by shim_patch_init() and
 * proved to reach the (fake) dispatcher with every register the syscall ABI
 * preserves intact.
 *
 * Under valgrind the live tests skip: valgrind runs its own translation of
 * the code, so a rewrite of the original bytes is not what runs (and its
 * mprotect/mmap bookkeeping does not expect it); the byte-level tests run.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cpuid.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <valgrind/valgrind.h>

#include "shim/patch.h"
#include "shim/shim.h"
#include "tests/unit/shim_sites.h"

#define MARKER 0x5a5a1234l

int shim_fd_floor;

static struct {
    int calls;
    long nr;
    long a[6];
} seen;

static bool have_avx(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_AVX) || !(c & bit_OSXSAVE))
        return false;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 6) == 6;
}

/* What C code in a real dispatcher may do to the state the stub must keep:
 * every caller-saved register, the vector registers, MXCSR, the x87 control
 * word. */
__attribute__((noinline)) static void clobber_sse(void)
{
    static const unsigned mxcsr = 0x9fc0;   /* FTZ|DAZ, masks kept */
    static const unsigned short cw = 0x0f7f;
    __asm__ volatile("pcmpeqd %%xmm0,%%xmm0\n pcmpeqd %%xmm1,%%xmm1\n pcmpeqd %%xmm2,%%xmm2\n"
                     "pcmpeqd %%xmm3,%%xmm3\n pcmpeqd %%xmm4,%%xmm4\n pcmpeqd %%xmm5,%%xmm5\n"
                     "pcmpeqd %%xmm6,%%xmm6\n pcmpeqd %%xmm7,%%xmm7\n pcmpeqd %%xmm8,%%xmm8\n"
                     "pcmpeqd %%xmm9,%%xmm9\n pcmpeqd %%xmm10,%%xmm10\n pcmpeqd %%xmm11,%%xmm11\n"
                     "pcmpeqd %%xmm12,%%xmm12\n pcmpeqd %%xmm13,%%xmm13\n pcmpeqd %%xmm14,%%xmm14\n"
                     "pcmpeqd %%xmm15,%%xmm15\n ldmxcsr %0\n fldcw %1\n"
                     "mov $-1,%%rdi\n mov $-1,%%rsi\n mov $-1,%%rdx\n mov $-1,%%rcx\n"
                     "mov $-1,%%r8\n mov $-1,%%r9\n mov $-1,%%r10\n mov $-1,%%r11\n"
                     :
                     : "m"(mxcsr), "m"(cw)
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
                       "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "rdi", "rsi",
                       "rdx", "rcx", "r8", "r9", "r10", "r11", "memory");
}

__attribute__((noinline, target("avx"))) static void clobber_avx(void)
{
    __asm__ volatile("vpcmpeqd %%ymm0,%%ymm0,%%ymm0\n vpcmpeqd %%ymm3,%%ymm3,%%ymm3\n"
                     "vpcmpeqd %%ymm7,%%ymm7,%%ymm7\n vpcmpeqd %%ymm8,%%ymm8,%%ymm8\n"
                     "vpcmpeqd %%ymm15,%%ymm15,%%ymm15\n"
                     ::: "xmm0", "xmm3", "xmm7", "xmm8", "xmm15");
}

/* The fake dispatcher: claims io_uring_enter, records its arguments,
 * clobbers what C may clobber, and dirties errno. */
bool shim_dispatch(long nr, const long a[6], long *ret)
{
    if (nr != __NR_io_uring_enter)
        return false;
    seen.calls++;
    seen.nr = nr;
    memcpy(seen.a, a, sizeof seen.a);
    clobber_sse();
    if (have_avx())
        clobber_avx();
    errno = EPERM;
    *ret = MARKER;
    return true;
}

static int patched_sites = -1;

static void ensure_patched(void)
{
    if (patched_sites < 0)
        patched_sites = shim_patch_init();
}

static bool live_ok(void)
{
    return !RUNNING_ON_VALGRIND;
}

/* --- the byte-level checks --- */

static void test_match(void **state)
{
    struct shim_site s;
    static const uint8_t plain[] = { 0xb8, 0xaa, 0x01, 0x00, 0x00, 0x0f, 0x05 };
    static const uint8_t mid[] = { 0xb8, 0xaa, 0x01, 0x00, 0x00, 0x89, 0xea, 0x0f, 0x05 };
    static const uint8_t setup[] = { 0xb8, 0xa9, 0x01, 0x00, 0x00, 0x0f, 0x05 };
    static const uint8_t reg[] = { 0xb8, 0xab, 0x01, 0x00, 0x00, 0x44, 0x89, 0xc2, 0x0f, 0x05 };
    static const uint8_t getpid[] = { 0xb8, 0x27, 0x00, 0x00, 0x00, 0x0f, 0x05 };
    static const uint8_t to_eax[] = { 0xb8, 0xaa, 0x01, 0x00, 0x00, 0x89, 0xe8, 0x0f, 0x05 };
    static const uint8_t to_rsp[] = { 0xb8, 0xaa, 0x01, 0x00, 0x00, 0x48, 0x89, 0xc4, 0x0f, 0x05 };
    static const uint8_t mem[] = { 0xb8, 0xaa, 0x01, 0x00, 0x00, 0x89, 0x2a, 0x0f, 0x05 };

    assert_true(shim_site_match(plain, sizeof plain, &s));
    assert_int_equal(s.nr, 0x1aa);
    assert_int_equal(s.len, 7);
    assert_false(shim_site_match(plain, sizeof plain - 1, &s));
    assert_true(shim_site_match(mid, sizeof mid, &s));
    assert_int_equal(s.len, 9);
    assert_int_equal(s.mid_len, 2);
    assert_true(shim_site_match(setup, sizeof setup, &s));
    assert_int_equal(s.nr, 0x1a9);
    assert_true(shim_site_match(reg, sizeof reg, &s));   /* mov %r8d,%edx */
    assert_int_equal(s.len, 10);
    assert_false(shim_site_match(getpid, sizeof getpid, &s));
    assert_false(shim_site_match(to_eax, sizeof to_eax, &s));   /* mov %ebp,%eax */
    assert_false(shim_site_match(to_rsp, sizeof to_rsp, &s));   /* mov %rax,%rsp */
    assert_false(shim_site_match(mem, sizeof mem, &s));         /* mov %ebp,(%rdx) */
}

static void test_branch(void **state)
{
    /* 0: jmp rel8 to 4 (inside the mov at 3), or rel32, or jcc rel32 */
    uint8_t b[64];
    memset(b, 0x90, sizeof b);
    memcpy(b + 20, (uint8_t[]){ 0xb8, 0xaa, 0x01, 0x00, 0x00, 0x0f, 0x05 }, 7);
    size_t offs[4];
    assert_int_equal(shim_site_scan(b, sizeof b, offs, 4), 1);
    assert_int_equal(offs[0], 20);

    b[0] = 0xeb, b[1] = 21 - 2;   /* jmp to 21 */
    assert_true(shim_branch_into(b, sizeof b, 21, 25));
    assert_int_equal(shim_site_scan(b, sizeof b, offs, 4), 0);
    b[1] = 20 - 2;   /* to the mov itself: fine, it becomes the jmp */
    assert_false(shim_branch_into(b, sizeof b, 21, 25));
    b[1] = 25 - 2;   /* to the syscall: fine, it is left in place */
    assert_int_equal(shim_site_scan(b, sizeof b, offs, 4), 1);

    memset(b, 0x90, 8);
    b[40] = 0xe8;   /* call rel32 back to 24 */
    int32_t rel = 24 - 45;
    memcpy(b + 41, &rel, 4);
    assert_int_equal(shim_site_scan(b, sizeof b, offs, 4), 0);
    memset(b + 40, 0x90, 5);
    b[2] = 0x0f, b[3] = 0x84;   /* je rel32 to 22 */
    rel = 22 - 8;
    memcpy(b + 4, &rel, 4);
    assert_int_equal(shim_site_scan(b, sizeof b, offs, 4), 0);
}

/* Debian's fio 3.33: its three io_uring_enter sites pass the scan (no false
 * branch hits them) and nothing else matches. */
static void test_fio_binary(void **state)
{
    int fd = open("/usr/bin/fio", O_RDONLY);
    if (fd < 0)
        skip();
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    uint8_t *f = malloc((size_t)st.st_size);
    assert_non_null(f);
    assert_int_equal(pread(fd, f, (size_t)st.st_size, 0), st.st_size);
    close(fd);

    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)f;
    assert_memory_equal(eh->e_ident, ELFMAG, SELFMAG);
    size_t total = 0, lens[8] = { 0 };
    for (int i = 0; i < eh->e_phnum; i++) {
        const Elf64_Phdr *ph = (const Elf64_Phdr *)(f + eh->e_phoff + (size_t)i * eh->e_phentsize);
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        size_t offs[8];
        size_t n = shim_site_scan(f + ph->p_offset, ph->p_filesz, offs, 8);
        for (size_t j = 0; j < n && total + j < 8; j++) {
            struct shim_site s;
            assert_true(shim_site_match(f + ph->p_offset + offs[j], ph->p_filesz - offs[j], &s));
            assert_int_equal(s.nr, __NR_io_uring_enter);
            lens[total + j] = s.len;
        }
        total += n;
    }
    free(f);
    if (total == 0)
        skip();   /* not Debian's 3.33 */
    assert_int_equal(total, 3);
    assert_int_equal(lens[0] + lens[1] + lens[2], 7 + 7 + 9);
}

/* --- live: this program's own sites --- */

static void test_patch_sites(void **state)
{
    if (!live_ok())
        skip();
    assert_int_equal(patched_sites, -1);   /* runs first */
    /* Before: the kernel answers (fd 0x7fff0001 is no ring). */
    seen.calls = 0;
    assert_int_equal(site7(0x7fff0001, 1, 0, 0, 0, 0), -EBADF);
    assert_int_equal(site9(0x7fff0001, 1, 0, 0, 0, 0), -EBADF);
    assert_int_equal(seen.calls, 0);

    ensure_patched();
    /* site7, site9, both probes; site_branched and site_getpid not. */
    assert_true(patched_sites >= 4);
    assert_int_equal(shim_patch_count(), patched_sites);
    assert_int_equal(code_byte(site7_mov + 0), 0xe9);
    assert_int_equal(code_byte(site9_mov + 0), 0xe9);
    assert_int_equal(code_byte(site9_mov + 5), 0x89);   /* the in-between mov stays */
    assert_int_equal(code_byte(probe_sse_mov + 0), 0xe9);
    assert_int_equal(code_byte(site_branched_mov + 0), 0xb8);

    errno = 4321;
    assert_int_equal(site7(3, 4, 5, 6, 7, 8), MARKER);
    assert_int_equal(errno, 4321);
    assert_int_equal(seen.calls, 1);
    assert_int_equal(seen.nr, __NR_io_uring_enter);
    long want7[6] = { 3, 4, 5, 6, 7, 8 };
    assert_memory_equal(seen.a, want7, sizeof want7);

    /* fio's shape: edx comes from ebp, its upper half zero */
    assert_int_equal(site9(9, 10, 0x1ffffffffl, 12, 13, 14), MARKER);
    assert_int_equal(errno, 4321);
    long want9[6] = { 9, 10, 0xffffffffl, 12, 13, 14 };
    assert_memory_equal(seen.a, want9, sizeof want9);

    /* not patched: still the kernel */
    assert_int_equal(site_branched(0x7fff0001, 1, 0, 0, 0, 0), -EBADF);
    assert_int_equal(seen.calls, 2);
    /* a second init finds nothing left to rewrite */
    assert_true(shim_patch_init() <= 0);
    assert_int_equal(shim_patch_count(), patched_sites);
}

static void test_other_syscalls(void **state)
{
    if (!live_ok())
        skip();
    ensure_patched();
    int before = seen.calls;
    assert_int_equal(site_getpid(), getpid());
    assert_int_equal(raw6(__NR_getppid, 0, 0, 0, 0, 0), getppid());
    /* a non-io_uring call through the stub's pass-through: the fake
     * dispatcher declines, shim_stub_call asks the kernel */
    assert_int_equal(shim_stub_call(__NR_getpid, (long[6]){ 0 }), getpid());
    assert_int_equal(seen.calls, before);
}

static void fill(struct probe_regs *r, unsigned seed, bool ymm)
{
    uint8_t *p = (uint8_t *)r;
    for (size_t i = 0; i < sizeof *r; i++)
        p[i] = (uint8_t)(seed * 131 + i * 7 + 1);
    r->gpr[6] = 0x7fff0001;   /* rdi: no fd, so the kernel path fails fast */
    r->rflags = 0x202 | 0x1 | 0x4 | 0x40 | 0x80 | 0x800 | 0x400;   /* CF PF ZF SF OF DF */
    r->rax = 0;
    r->mxcsr = 0x1f80 | 0x6000;   /* round toward zero */
    r->fpucw = 0x037f | 0x0c00;
    if (!ymm)
        for (int i = 0; i < 16; i++)
            memset(r->vec[i] + 16, 0, 16);
}

static void check_probe(void (*probe)(const struct probe_regs *, struct probe_regs *), bool ymm)
{
    static struct probe_regs in, out;
    fill(&in, 7, ymm);
    memset(&out, 0, sizeof out);
    int before = seen.calls;
    probe(&in, &out);
    assert_int_equal(seen.calls, before + 1);
    assert_int_equal(out.rax, MARKER);
    assert_int_equal(seen.a[0], (long)in.gpr[6]);   /* rdi */
    assert_int_equal(seen.a[3], (long)in.gpr[11]);  /* r10 */
    for (int i = 0; i < 12; i++)
        if (out.gpr[i] != in.gpr[i])
            fail_msg("gpr %d: %#lx, want %#lx", i, (unsigned long)out.gpr[i], (unsigned long)in.gpr[i]);
    assert_int_equal(out.rflags & 0xcd5, in.rflags & 0xcd5);
    assert_int_equal(out.mxcsr, in.mxcsr);
    assert_int_equal(out.fpucw, in.fpucw);
    assert_memory_equal(out.red, in.red, sizeof in.red);
    for (int i = 0; i < 16; i++)
        assert_memory_equal(out.vec[i], in.vec[i], ymm ? 32 : 16);
}

static void test_registers_sse(void **state)
{
    if (!live_ok())
        skip();
    ensure_patched();
    assert_int_equal(code_byte(probe_sse_mov + 0), 0xe9);
    check_probe(probe_sse, false);
}

static void test_registers_avx(void **state)
{
    if (!live_ok() || !have_avx())
        skip();
    ensure_patched();
    assert_int_equal(code_byte(probe_avx_mov + 0), 0xe9);
    check_probe(probe_avx, true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_branch),
        cmocka_unit_test(test_fio_binary),
        cmocka_unit_test(test_patch_sites),
        cmocka_unit_test(test_other_syscalls),
        cmocka_unit_test(test_registers_sse),
        cmocka_unit_test(test_registers_avx),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
