/* SPDX-License-Identifier: MIT */
/*
 * One datagram of the owner protocol (abi/serve_proto.h) on its
 * SOCK_SEQPACKET socket: a fixed header, a payload, at most one file
 * descriptor (SCM_RIGHTS). Shared by the owner (abi/serve.c) and the
 * library's client (driver/remote.c).
 */
#ifndef NVRING_DRIVER_MSG_H
#define NVRING_DRIVER_MSG_H

#include <stddef.h>
#include <sys/types.h>

/* Sends @hdr (@hlen bytes), then @pl (@plen), with @fd when >= 0 (the
 * descriptor stays ours). Returns the bytes sent or -errno (-EPIPE when
 * the peer is gone: no SIGPIPE). */
ssize_t nvr_msg_send(int sock, const void *hdr, size_t hlen, const void *pl, size_t plen, int fd);

/* Receives one datagram into @hdr (@hlen bytes) and @pl (up to @max);
 * @flags for recvmsg() (MSG_DONTWAIT). *@fd: the descriptor it carried
 * (close-on-exec) or -1; any more are closed. Returns the bytes received,
 * 0 when the peer closed, -EMSGSIZE when the datagram or its descriptors
 * did not fit, or -errno. */
ssize_t nvr_msg_recv(int sock, void *hdr, size_t hlen, void *pl, size_t max, int *fd, int flags);

#endif
