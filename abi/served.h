/* SPDX-License-Identifier: MIT */
/*
 * Rings served to other processes (internal to abi/): the owner side of
 * abi/serve_proto.h. A served ring is an ordinary ring of this process
 * (abi/setup.c ... abi/complete.c run it unchanged) with three differences,
 * all keyed on ring->client:
 *  - user memory is the client's: abi/uaccess.c reads and writes it with
 *    process_vm_readv/writev on the client's pid (ur_tls_client names the
 *    client of the call in progress; the SQPOLL poller sets it to the
 *    ring's), never with the in-process fault path or memcpy;
 *  - file descriptors in SQEs and file tables are the client's: namespaces
 *    come from the client's table (NVS_NS_BIND), other files are refused
 *    (-EBADF), as are opcodes the hidden kernel ring would run
 *    (-EOPNOTSUPP): this process cannot act on another's files or memory
 *    through its own kernel ring;
 *  - registered buffers are client memory: nothing is pinned or mapped for
 *    DMA (the device never sees client memory); fixed I/O bounces through
 *    the ring's pool as non-fixed I/O does.
 * And the ring memfd carries the crash state (struct nvs_ring_state).
 */
#ifndef NVRING_ABI_SERVED_H
#define NVRING_ABI_SERVED_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "abi/serve_proto.h"

struct ur_ring;
struct ur_ns;

struct ur_client_ns {
	int fd;                  /* the client's fd number */
	struct ur_ns *ns;        /* referenced */
};

struct ur_client {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	int pidfd;               /* pidfd_open(pid): pidfd_getfd() of its files */
	_Atomic int refs;        /* connections, and served rings */
	pthread_mutex_t lock;    /* the namespace table */
	struct ur_client_ns *ns;
	unsigned nns, ns_cap;
	struct ur_client *next;  /* the owner's list (serve.c) */
};

/* The client of the call this thread is serving, or NULL (our own). */
extern __thread struct ur_client *ur_tls_client;

/* The client's namespace bound to its @fd, referenced; NULL if none. */
struct ur_ns *ur_client_ns_get(struct ur_client *c, int fd);
/* A duplicate of the client's @fd in this process (pidfd_getfd), or -errno. */
int ur_client_getfd(struct ur_client *c, int fd);
/* The client process has exited (its pidfd is readable). */
bool ur_client_gone(const struct ur_client *c);

/* Slots of the crash state (serve_proto.h) per ring: requests beyond this
 * many at once get none (never reached: the region is sparse). */
#define UR_STATE_SLOTS (1u << 18)
#define UR_STATE_BYTES (sizeof(struct nvs_ring_state) + UR_STATE_SLOTS * sizeof(struct nvs_slot))

#endif
