// SPDX-License-Identifier: MIT
/*
 * shim/patch.c — rewrite inline io_uring `syscall` sites to jump to the stub.
 *
 * A site is `mov $nr,%eax` (b8 imm32, nr one of io_uring_setup/enter/
 * register), at most one register-to-register mov, then `syscall` — the shape
 * of fio 3.33's three io_uring_enter sites and of liburing's inline calls.
 * Sites are found by byte pattern in the executable segments, never by
 * address.
 *
 * Only the 5-byte mov is rewritten, to `jmp rel32` to a per-site trampoline
 * that loads the number, re-does the mov in between (if any), steps over the
 * red zone, calls the stub (stub.c) and jumps back past the `syscall`. The
 * bytes after the mov stay as they were, which buys three things: a thread
 * that already executed the mov when the rewrite lands still runs the
 * original instructions; a branch that targets the in-between mov or the
 * `syscall` still runs the original code (the seccomp net catches it); and
 * the rewrite is one 5-byte store, done atomically (an aligned 8- or 16-byte
 * store) so an instruction fetch on another CPU sees the old mov or the new
 * jmp, never a mix. A non-atomic write (the 5 bytes straddle a 16-byte
 * boundary) is done only while the process has one thread.
 *
 * The bytes are checked by a linear scan for direct branches into the
 * 4 interior bytes of the mov: if one decodes at any offset, the match may be
 * the middle of other instructions (or a real branch lands there) and the
 * site is left to the trap net. Decoding every offset errs towards skipping
 * (about one random position in ten has such a false branch; fio's sites
 * have none).
 *
 * Which objects: the main program first, then every loaded object except
 * the skip list below and the object holding the shim itself. libc and
 * ld.so issue no io_uring system calls, are the largest objects to scan at
 * every start, and are what the stub and the SIGSYS handler run on; the
 * vDSO belongs to the kernel; the shim reaches the kernel only through
 * shim_raw_syscall(), which must never be redirected (it would loop). The
 * unit tests link the shim into the main program, which is always scanned.
 * Objects dlopen()ed later are not scanned: their sites go through the trap.
 */
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "shim/patch.h"
#include "shim/shim.h"

#define PAGE 4096ul
#define MAX_SEGS 64
#define MAX_SITES_PER_SEG 256
#define MAX_POOLS 32
#define SLOT 32u
#define SLOTS_PER_POOL ((unsigned)(PAGE / SLOT))
/* rel32 reach, less a page of margin for the offsets inside the slot. */
#define REACH ((long)0x7fffffff - (long)PAGE)

struct seg {
    uintptr_t start;
    size_t len;
    int prot;
};

/* One page of trampolines: slot 0 holds the stub's address (each
 * trampoline calls through it, the stub may be beyond rel32 reach). */
struct pool {
    uint8_t *base;
    unsigned used;
};

/* Written by shim_patch_init() and read by shim_patch_at(), both under
 * patch_lock, so a signal handler never sees a half-built table. */
static struct seg segs[MAX_SEGS];
static int nsegs;
static struct pool pools[MAX_POOLS];
static int npools;
static atomic_flag patch_lock = ATOMIC_FLAG_INIT;
static atomic_int patched;

static const char *const skip_names[] = {
    "libc.so.6", "ld-linux-x86-64.so.2", "linux-vdso.so.1", "libnvring-preload.so",
};

int shim_patch_count(void)
{
    return atomic_load_explicit(&patched, memory_order_relaxed);
}

static bool is_io_uring_nr(uint32_t nr)
{
    return nr == __NR_io_uring_setup || nr == __NR_io_uring_enter || nr == __NR_io_uring_register;
}

/* Length of a register-to-register mov (89 /r or 8b /r, mod 11, optional
 * REX) at q that writes neither rax (the trampoline loads it first) nor rsp
 * (the trampoline moves rsp after it); 0 if q holds anything else. */
static size_t reg_mov_len(const uint8_t *q, size_t n)
{
    size_t i = 0;
    unsigned rex = 0;

    if (n > 0 && (q[0] & 0xf0) == 0x40) {
        rex = q[0];
        i = 1;
    }
    if (n < i + 2 || (q[i] != 0x89 && q[i] != 0x8b) || (q[i + 1] >> 6) != 3)
        return 0;
    unsigned reg = ((q[i + 1] >> 3) & 7) | (rex & 4 ? 8 : 0);
    unsigned rm = (q[i + 1] & 7) | (rex & 1 ? 8 : 0);
    unsigned dst = q[i] == 0x89 ? rm : reg;
    if (dst == 0 || dst == 4)
        return 0;
    return i + 2;
}

bool shim_site_match(const uint8_t *p, size_t avail, struct shim_site *s)
{
    uint32_t nr;

    if (avail < SHIM_SITE_MOV_LEN + 2 || p[0] != 0xb8)
        return false;
    memcpy(&nr, p + 1, sizeof nr);
    if (!is_io_uring_nr(nr))
        return false;
    size_t mid = 0;
    if (!(p[5] == 0x0f && p[6] == 0x05)) {
        mid = reg_mov_len(p + 5, avail - 5);
        if (!mid || avail < 5 + mid + 2 || p[5 + mid] != 0x0f || p[6 + mid] != 0x05)
            return false;
    }
    s->nr = nr;
    s->mid_len = (uint8_t)mid;
    s->len = (uint8_t)(SHIM_SITE_MOV_LEN + mid + 2);
    return true;
}

static int32_t rd32(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

bool shim_branch_into(const uint8_t *seg, size_t len, size_t lo, size_t hi)
{
    for (size_t p = 0; p + 2 <= len; p++) {
        uint8_t b = seg[p];
        long t;
        /* jcc rel8, jrcxz, jmp rel8. loop/loopcc (e0-e2) are left out:
         * compilers do not emit them, and e0 is a common disp8 (-0x20). */
        if ((b & 0xf0) == 0x70 || b == 0xe3 || b == 0xeb)
            t = (long)p + 2 + (int8_t)seg[p + 1];
        else if ((b == 0xe8 || b == 0xe9) && p + 5 <= len)   /* call/jmp rel32 */
            t = (long)p + 5 + rd32(seg + p + 1);
        else if (b == 0x0f && (seg[p + 1] & 0xf0) == 0x80 && p + 6 <= len)   /* jcc rel32 */
            t = (long)p + 6 + rd32(seg + p + 2);
        else
            continue;
        if (t >= (long)lo && t < (long)hi)
            return true;
    }
    return false;
}

static bool site_ok(const uint8_t *seg, size_t len, size_t off, struct shim_site *s)
{
    return shim_site_match(seg + off, len - off, s) &&
           !shim_branch_into(seg, len, off + 1, off + SHIM_SITE_MOV_LEN);
}

size_t shim_site_scan(const uint8_t *seg, size_t len, size_t *offs, size_t max)
{
    size_t n = 0;
    struct shim_site s;

    for (size_t off = 0; off + SHIM_SITE_MOV_LEN + 2 <= len; off++) {
        if (seg[off] != 0xb8 || !site_ok(seg, len, off, &s))
            continue;
        if (n < max)
            offs[n] = off;
        n++;
        off += s.len - 1;
    }
    return n;
}

static long raw_mmap(void *hint, size_t len, int prot, int flags)
{
    return shim_raw_syscall(__NR_mmap, (long)hint, (long)len, prot, flags, -1, 0);
}

static long raw_mprotect(uintptr_t start, size_t len, int prot)
{
    return shim_raw_syscall(__NR_mprotect, (long)start, (long)len, prot, 0, 0, 0);
}

static bool reaches(uintptr_t a, uintptr_t b)
{
    long d = (long)(a - b);
    return d > -REACH && d < REACH;
}

/* A new trampoline page within rel32 reach of site: below it first (the
 * space above the main program is where its heap grows), at doubling
 * distances. MAP_FIXED_NOREPLACE never evicts a mapping; a kernel that
 * ignores the flag treats the address as a hint, hence the reach check. */
static struct pool *pool_new(uintptr_t site)
{
    if (npools == MAX_POOLS)
        return NULL;
    for (unsigned long dist = 1ul << 20; dist < (1ul << 31); dist <<= 1) {
        for (int dir = -1; dir <= 1; dir += 2) {
            uintptr_t hint = ((site & ~(PAGE - 1)) + (uintptr_t)(dir * (long)dist));
            long r = raw_mmap((void *)hint, PAGE, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE);
            if (r < 0 && r > -4096)
                continue;
            if (!reaches((uintptr_t)r, site)) {
                shim_raw_syscall(__NR_munmap, r, PAGE, 0, 0, 0, 0);
                continue;
            }
            uint8_t *base = (uint8_t *)r;
            const void *stub = shim_patch_stub;
            memset(base, 0xcc, PAGE);   /* int3 between trampolines */
            memcpy(base, &stub, sizeof stub);
            if (raw_mprotect((uintptr_t)base, PAGE, PROT_READ | PROT_EXEC) < 0) {
                shim_raw_syscall(__NR_munmap, r, PAGE, 0, 0, 0, 0);
                return NULL;
            }
            pools[npools] = (struct pool){ .base = base, .used = 1 };
            return &pools[npools++];
        }
    }
    return NULL;
}

static uint8_t *slot_alloc(uintptr_t site, struct pool **pp)
{
    for (int i = 0; i < npools; i++) {
        if (pools[i].used < SLOTS_PER_POOL && reaches((uintptr_t)pools[i].base, site)) {
            *pp = &pools[i];
            return pools[i].base + pools[i].used * SLOT;
        }
    }
    *pp = pool_new(site);
    return *pp ? (*pp)->base + (*pp)->used * SLOT : NULL;
}

static size_t put_rel32(uint8_t *code, size_t at, uint8_t op, uintptr_t code_addr, uintptr_t target)
{
    int32_t rel = (int32_t)(long)(target - (code_addr + at + 5));
    code[at] = op;
    memcpy(code + at + 1, &rel, sizeof rel);
    return at + 5;
}

/* The trampoline for the site at site (description s) into code[], which
 * will live at tr. Returns its length (at most SLOT). */
static size_t tramp_build(uint8_t code[SLOT], uintptr_t tr, uintptr_t pool_base,
                          const uint8_t *site, const struct shim_site *s)
{
    static const uint8_t lea_down[] = { 0x48, 0x8d, 0x64, 0x24, 0x80 };   /* lea -128(%rsp),%rsp */
    static const uint8_t lea_up[] = { 0x48, 0x8d, 0xa4, 0x24, 0x80, 0x00, 0x00, 0x00 };   /* lea 128(%rsp),%rsp */
    size_t n = 0;

    code[n++] = 0xb8;   /* mov $nr,%eax */
    memcpy(code + n, &s->nr, 4);
    n += 4;
    memcpy(code + n, site + SHIM_SITE_MOV_LEN, s->mid_len);   /* the mov in between */
    n += s->mid_len;
    /* lea, unlike sub, leaves rflags alone */
    memcpy(code + n, lea_down, sizeof lea_down);
    n += sizeof lea_down;
    code[n++] = 0xff;   /* call *slot0(%rip) */
    code[n++] = 0x15;
    int32_t rel = (int32_t)(long)(pool_base - (tr + n + 4));
    memcpy(code + n, &rel, 4);
    n += 4;
    memcpy(code + n, lea_up, sizeof lea_up);
    n += sizeof lea_up;
    return put_rel32(code, n, 0xe9, tr, (uintptr_t)site + s->len);   /* jmp past the syscall */
}

static bool cas16(void *p, uint64_t old[2], const uint64_t new[2])
{
    bool ok;
    __asm__ volatile("lock cmpxchg16b %1"
                     : "=@ccz"(ok), "+m"(*(volatile __int128 *)p), "+a"(old[0]), "+d"(old[1])
                     : "b"(new[0]), "c"(new[1])
                     : "memory");
    return ok;
}

/* Store the 5 bytes at site in one access if they share an aligned 8- or
 * 16-byte block; otherwise only when no other thread can be fetching them.
 * The page is made writable but kept executable meanwhile: other threads
 * may be running code on it. */
static int code_write(uint8_t *site, const uint8_t new5[5], int prot, bool alone)
{
    uintptr_t a = (uintptr_t)site;
    uintptr_t lo = a & ~(PAGE - 1), hi = (a + 5 + PAGE - 1) & ~(PAGE - 1);
    long rc = raw_mprotect(lo, hi - lo, prot | PROT_WRITE | PROT_EXEC);
    if (rc < 0)
        return (int)rc;

    if ((a & 7) + 5 <= 8) {
        uint64_t *w = (uint64_t *)(a & ~7ul);
        uint64_t v = __atomic_load_n(w, __ATOMIC_RELAXED);
        memcpy((uint8_t *)&v + (a & 7), new5, 5);
        __atomic_store_n(w, v, __ATOMIC_SEQ_CST);
    } else if ((a & 15) + 5 <= 16) {
        uint64_t *w = (uint64_t *)(a & ~15ul);
        uint64_t old[2] = { w[0], w[1] }, nw[2];
        do {
            memcpy(nw, old, sizeof nw);
            memcpy((uint8_t *)nw + (a & 15), new5, 5);
        } while (!cas16(w, old, nw));
    } else if (alone) {
        memcpy(site, new5, 5);
    } else {
        rc = -EAGAIN;
    }
    long rc2 = raw_mprotect(lo, hi - lo, prot);
    return (int)(rc < 0 ? rc : rc2 < 0 ? rc2 : 0);
}

/* Patch one site already checked by site_ok(). 1 on success. */
static int site_patch(uint8_t *site, const struct shim_site *s, int prot, bool alone)
{
    struct pool *pool;
    uint8_t *tr = slot_alloc((uintptr_t)site, &pool);
    if (!tr)
        return -ENOMEM;

    uint8_t code[SLOT];
    size_t n = tramp_build(code, (uintptr_t)tr, (uintptr_t)pool->base, site, s);
    /* Nothing jumps to the slot before the site is rewritten, so the slot
     * write needs no atomicity; the page stays executable for the
     * trampolines already in it. */
    long rc = raw_mprotect((uintptr_t)pool->base, PAGE, PROT_READ | PROT_WRITE | PROT_EXEC);
    if (rc < 0)
        return (int)rc;
    memcpy(tr, code, n);
    rc = raw_mprotect((uintptr_t)pool->base, PAGE, PROT_READ | PROT_EXEC);
    if (rc < 0)
        return (int)rc;

    uint8_t jmp[5];
    put_rel32(jmp, 0, 0xe9, (uintptr_t)site, (uintptr_t)tr);
    int err = code_write(site, jmp, prot, alone);
    if (err < 0)
        return err;   /* the slot stays unused: a few bytes, not worth a free list */
    pool->used++;
    atomic_fetch_add_explicit(&patched, 1, memory_order_relaxed);
    return 1;
}

struct collect {
    unsigned seen;
    uintptr_t self;
};

static bool object_holds(const struct dl_phdr_info *info, uintptr_t addr)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && addr >= start && addr < start + ph->p_memsz)
            return true;
    }
    return false;
}

static bool object_skipped(const struct dl_phdr_info *info, const struct collect *c)
{
    if (c->seen == 0)
        return false;   /* the main program */
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    for (size_t i = 0; i < sizeof skip_names / sizeof skip_names[0]; i++)
        if (strcmp(base, skip_names[i]) == 0)
            return true;
    return object_holds(info, c->self);
}

static int collect_segs(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct collect *c = arg;
    bool skip = object_skipped(info, c);

    c->seen++;
    for (int i = 0; !skip && i < info->dlpi_phnum && nsegs < MAX_SEGS; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X) || !(ph->p_flags & PF_R))
            continue;
        segs[nsegs++] = (struct seg){
            .start = info->dlpi_addr + ph->p_vaddr,
            .len = ph->p_filesz,
            .prot = PROT_READ | PROT_EXEC | (ph->p_flags & PF_W ? PROT_WRITE : 0),
        };
    }
    return 0;
}

/* Whether this is the process's only thread (/proc/self/task has one
 * entry); false when that cannot be told. */
static bool single_threaded(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return false;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n == 1;
}

static void record_segs(void)
{
    struct collect c = { .self = (uintptr_t)shim_patch_init };
    nsegs = 0;
    dl_iterate_phdr(collect_segs, &c);
}

int shim_patch_record(void)
{
    shim_stub_init();
    if (atomic_flag_test_and_set_explicit(&patch_lock, memory_order_acquire))
        return -EBUSY;
    record_segs();
    atomic_flag_clear_explicit(&patch_lock, memory_order_release);
    return 0;
}

int shim_patch_init(void)
{
    shim_stub_init();
    if (atomic_flag_test_and_set_explicit(&patch_lock, memory_order_acquire))
        return -EBUSY;

    bool alone = single_threaded();
    record_segs();

    int n = 0, err = 0;
    for (int i = 0; i < nsegs; i++) {
        size_t offs[MAX_SITES_PER_SEG];
        uint8_t *seg = (uint8_t *)segs[i].start;
        size_t found = shim_site_scan(seg, segs[i].len, offs, MAX_SITES_PER_SEG);
        for (size_t j = 0; j < found && j < MAX_SITES_PER_SEG; j++) {
            struct shim_site s;
            if (!shim_site_match(seg + offs[j], segs[i].len - offs[j], &s))
                continue;
            int rc = site_patch(seg + offs[j], &s, segs[i].prot, alone);
            if (rc > 0)
                n++;
            else if (!err)
                err = rc;
        }
    }
    atomic_flag_clear_explicit(&patch_lock, memory_order_release);
    /* Sites that could not be patched stay on the trap path; only a
     * failure with nothing patched at all is worth reporting. */
    return n ? n : err;
}

int shim_patch_at(const void *after_syscall)
{
    uintptr_t end = (uintptr_t)after_syscall;
    int rc = 0;

    if (atomic_flag_test_and_set_explicit(&patch_lock, memory_order_acquire))
        return 0;   /* init or another thread is patching: the next trap retries */
    for (int i = 0; i < nsegs; i++) {
        const struct seg *sg = &segs[i];
        if (end < sg->start + SHIM_SITE_MOV_LEN + 2 || end > sg->start + sg->len)
            continue;
        static const uint8_t lens[] = { 7, 9, 10 };
        for (size_t k = 0; k < sizeof lens; k++) {
            if (end - sg->start < lens[k])
                break;
            uint8_t *seg = (uint8_t *)sg->start, *site = (uint8_t *)(end - lens[k]);
            struct shim_site s;
            if (site_ok(seg, sg->len, (size_t)(site - seg), &s) && s.len == lens[k]) {
                rc = site_patch(site, &s, sg->prot, false);
                break;
            }
        }
        break;
    }
    atomic_flag_clear_explicit(&patch_lock, memory_order_release);
    return rc;
}
