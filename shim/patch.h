/* SPDX-License-Identifier: MIT */
/*
 * shim/patch.h — internals shared by patch.c, stub.c and trap.c (and their
 * tests). shim.h is the interface between the shim's layers; this is the
 * inside of layer (c).
 */
#ifndef NVRING_SHIM_PATCH_H
#define NVRING_SHIM_PATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A site: `mov $nr,%eax` (b8 imm32), at most one register-to-register mov
 * that leaves rax and rsp alone, then `syscall` (0f 05). Only the 5-byte
 * mov is rewritten (see patch.c). */
#define SHIM_SITE_MOV_LEN 5
#define SHIM_SITE_MAX_LEN (SHIM_SITE_MOV_LEN + 3 + 2)

struct shim_site {
    uint32_t nr;        /* the syscall number the mov loads */
    uint8_t mid_len;    /* bytes between the mov and the syscall: 0, 2 or 3 */
    uint8_t len;        /* mov + mid + syscall */
};

/* Whether p (avail readable bytes) starts a site whose number is one of the
 * io_uring calls; fills *s. Pure: usable on a copy of a file's text. */
bool shim_site_match(const uint8_t *p, size_t avail, struct shim_site *s);

/* Whether a direct jmp/jcc/call (rel8 or rel32) decoded at any byte offset of
 * seg[0, len) targets an offset in [lo, hi). Every offset is tried, not
 * only instruction boundaries, so the answer errs towards "yes". */
bool shim_branch_into(const uint8_t *seg, size_t len, size_t lo, size_t hi);

/* Offsets in seg of the sites that shim_site_match() accepts and into whose
 * replaced bytes no branch leads; writes at most max, returns how many
 * there are. */
size_t shim_site_scan(const uint8_t *seg, size_t len, size_t *offs, size_t max);

/* Record the segments shim_patch_init() would scan without rewriting any
 * site, so that each site is rewritten by the trap handler on its first
 * call instead (a mode for tests and for diagnosing the trap path). 0 or
 * -EBUSY. */
int shim_patch_record(void);

/* Sites rewritten so far in this process (load time and trap time). */
int shim_patch_count(void);

/* From the SIGSYS handler: rewrite the site whose `syscall` ends at
 * after_syscall, if it lies in a segment shim_patch_init() recorded and the
 * rewrite can be done atomically. 1 rewritten, 0 not a site (or not now),
 * -errno on failure. Async-signal-safe; never blocks. */
int shim_patch_at(const void *after_syscall);

/* stub.c: the common stub every trampoline calls, with eax = nr and the
 * arguments in the syscall registers (not callable from C). */
extern const char shim_patch_stub[];

/* stub.c: what the stub and the SIGSYS handler run: shim_dispatch(), else
 * the kernel through shim_raw_syscall(); errno preserved. */
long shim_stub_call(long nr, const long a[6]);

/* stub.c: find the vector state the stub must save (XSAVE mask and area
 * size, or FXSAVE). Idempotent; called by shim_patch_init(). */
void shim_stub_init(void);

/* trap.c: SIGSYS traps taken so far (diagnostics, tests). */
unsigned long shim_trap_count(void);

#endif
