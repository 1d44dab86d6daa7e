/* SPDX-License-Identifier: MIT */
/*
 * shim/static/patch.h — rewriting the sites decode.c finds, in a program
 * nvring-static-loader has mapped but not yet started (one thread, nothing
 * running the code: plain stores suffice).
 */
#ifndef NVRING_STATIC_PATCH_H
#define NVRING_STATIC_PATCH_H

#include <stdint.h>

#include "shim/static/decode.h"

struct st_pool {
	uint8_t *base;         /* slot 0: the stub's address */
	size_t size, used;
};

/* A pool of trampolines within rel32 reach of [lo, hi): 0 or -errno. */
int st_pool_new(struct st_pool *pool, uintptr_t lo, uintptr_t hi);

/* Rewrite site s of the code at seg (mapped writable): a trampoline in
 * pool, a jmp to it at seg + s->start. 0, -ENOSPC (pool full), -ERANGE
 * (beyond rel32 reach), -ENOEXEC (an instruction it cannot move). */
int st_site_patch(struct st_pool *pool, uint8_t *seg, size_t len, const struct st_site *s);

/* Make the pool executable and read-only once every site is in. */
int st_pool_seal(struct st_pool *pool);

#endif
