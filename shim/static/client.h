/* SPDX-License-Identifier: MIT */
/*
 * shim/static/client.h — the freestanding client of nvring-static-loader:
 * the calls the rewritten sites of a static program reach (the io_uring
 * calls and the file calls on rings and on the namespace path), forwarded
 * to the owner process over abi/serve_proto.h's protocol.
 */
#ifndef NVRING_STATIC_CLIENT_H
#define NVRING_STATIC_CLIENT_H

#include <stdbool.h>

/* Read the settings (NVRING_DEVICE, NVRING_PATH, NVRING_SOCKET) from the
 * environment before the program runs. 0 or -EINVAL (no device). */
int st_client_init(void);

/* The call nr with arguments a[]: true and *ret if the client answered it,
 * false if it goes to the kernel unchanged. */
bool st_client_call(long nr, const long a[6], long *ret);

/* What every rewritten site calls (stub.c): st_client_call(), else the
 * kernel. */
long st_stub_call(long nr, const long a[6]);

/* stub.c: the stub every trampoline calls (not callable from C). */
extern const char st_stub[];

#endif
