/* SPDX-License-Identifier: MIT */
/*
 * The owner protocol: how a client process hands its io_uring calls to the
 * owner (`nvring serve`), which holds the controller and runs every ring of
 * every client itself. Shared by the owner (abi/serve.c), the library's
 * client (abi/client.c, used by the LD_PRELOAD shim and the embedded API)
 * and the freestanding client of statically linked programs: fixed-size
 * plain-C structs, no libc types beyond <stdint.h> and the uapi
 * <linux/io_uring.h>, so a client without libc can include it.
 *
 * Transport: a unix SOCK_SEQPACKET socket (/run/nvring/BDF.sock); one
 * message per datagram, one reply per request, in order. Who may connect
 * is decided by the owner from SO_PEERCRED; a refused client gets one
 * NVS_HELLO reply with ret -EACCES and a text line, then the socket closes.
 *
 * The model is the kernel's: the client's SQEs, iovecs and buffers stay in
 * the client's memory; the owner reads and writes that memory with
 * process_vm_readv/writev on the client's pid (as copy_from_user and
 * copy_to_user do) and moves data through DMA memory of its own, so the
 * device never touches client memory and a client can name nothing but its
 * own memory. The ring memory itself (SQ ring, CQ ring, SQEs) is a memfd
 * the owner creates and seals against resizing, passed to the client with
 * SCM_RIGHTS: the client's ring fd *is* that memfd, and its own mmap()
 * calls at IORING_OFF_SQ_RING / IORING_OFF_CQ_RING / IORING_OFF_SQES map
 * it (no SINGLE_MMAP). The owner identifies a client by its connection,
 * and the memory it accesses for a call is that of the connection's peer
 * (SO_PEERCRED pid): one client per process, any number of connections
 * (one per thread that makes calls, so that calls may block concurrently).
 *
 * Client pointers (ENTER's arg, REGISTER's arg) travel as numbers and are
 * resolved by the owner in the client's address space.
 */
#ifndef NVRING_SERVE_PROTO_H
#define NVRING_SERVE_PROTO_H

#include <linux/io_uring.h>
#include <stdint.h>

#define NVS_MAGIC   0x4e565331u     /* "NVS1" */
#define NVS_VERSION 1u

enum nvs_op {
	/* a[0] = NVS_MAGIC, a[1] = NVS_VERSION, a[2] = the address of a
	 * uint64_t holding NVS_MAGIC in the client (or 0): the owner reads it
	 * to check that it can reach the client's memory at all. Reply: ret 0
	 * and struct nvs_hello_reply as payload, or -EACCES/-EPROTO and a
	 * text line (NUL-terminated) as payload. Must be a connection's
	 * first. a[3] & NVS_HELLO_MBOX: the client wants a mailbox (see
	 * struct nvs_mbox); the reply then carries its memfd (SCM_RIGHTS). */
	NVS_HELLO = 1,
	/* a[0] = entries; payload: struct io_uring_params (in). Reply: ret =
	 * ring id (>= 0) or -errno; payload: struct io_uring_params (out);
	 * one fd (SCM_RIGHTS): the ring memfd. */
	NVS_SETUP = 2,
	/* a[0] = ring id, a[1] = to_submit, a[2] = min_complete, a[3] =
	 * flags, a[4] = arg (client address), a[5] = argsz. Reply: ret.
	 * The owner ignores a signal mask in arg: the client waits with it. */
	NVS_ENTER = 3,
	/* a[0] = ring id, a[1] = opcode, a[2] = arg (client address), a[3]
	 * = nr_args. File descriptors in arg (REGISTER_FILES, EVENTFD) are
	 * the client's: the owner takes them with pidfd_getfd(2) or looks
	 * them up in the client's namespace table. Reply: ret. */
	NVS_REGISTER = 4,
	/* a[0] = ring id. Reply: ret. The client closes its memfd itself. */
	NVS_CLOSE = 5,
	/* a[0] = client fd, a[1] = nsid: from now on the client's fd @a[0]
	 * stands for namespace @a[1] in its SQEs and file tables (the
	 * client opened or dup'ed its block-device descriptor). Reply: ret
	 * 0, -ENOENT no such namespace, -EBADF bad fd number. */
	NVS_NS_BIND = 6,
	/* a[0] = client fd: no longer a namespace. Reply: ret 0 / -EBADF. */
	NVS_NS_UNBIND = 7,
	/* One fd (SCM_RIGHTS): a ring memfd this process got from a parent
	 * across fork(). Reply: ret = ring id on this connection's client,
	 * or -EBADF (not a ring of this owner). The ring stays the same
	 * ring (the kernel's rings are shared across fork). */
	NVS_RING_ADOPT = 8,
	/* Mailbox hand-over (struct nvs_mbox), no reply. Client to owner: a
	 * request is in the mailbox and the owner was not polling it. Owner
	 * to client: the mailbox holds the reply the client sleeps for. */
	NVS_KICK = 9,
};


struct nvs_msg {
	uint32_t op;          /* enum nvs_op (request); the same op (reply) */
	uint32_t len;         /* payload bytes after this header */
	int64_t  a[6];        /* request arguments */
	int64_t  ret;         /* reply: result, the kernel's convention.
			       * Request: the CPU the caller runs on + 1, or 0
			       * (unused: serving each call on its caller's CPU
			       * measured slower, see README "Cost, measured") */
};

#define NVS_HELLO_MBOX 1u

/*
 * The mailbox: one page per connection, a memfd the owner creates and seals
 * against resizing, mapped by both. A call without payload or descriptors
 * (ENTER above all) goes through it instead of the socket, so that while
 * both sides poll, a call costs no system call on either (each costs
 * microseconds in a TCG guest). Sleeping stays the socket's:
 *
 * Client: writes req, then req_seq = its next number (seq_cst), then
 * reads owner_awake (seq_cst): 0 -> sends NVS_KICK on the socket. It polls
 * rep_seq (acquire) for its reply; to sleep instead it sets client_sleeps
 * = 1 (seq_cst) and reads rep_seq again: answered -> exchanges
 * client_sleeps back to 0, and if the owner had already taken it (the
 * exchange gives 0) receives the owner's NVS_KICK; not answered -> sleeps
 * in recv for that NVS_KICK.
 * Owner: polls req_seq (acquire) with owner_awake = 1; to sleep it stores
 * owner_awake = 0 (seq_cst) and reads req_seq again (seq_cst) before it
 * sleeps in recv -- so either it sees the request or the client sees it
 * asleep and kicks. It copies req out once, serves it, writes ret, then
 * rep_seq = req_seq (release), then exchanges client_sleeps to 0: was 1
 * -> sends NVS_KICK. A client's garbage here is a garbage request of its
 * own (validated like any) or kicks it does not read.
 */
struct nvs_mbox {
	uint32_t req_seq;        /* atomic; client */
	uint32_t owner_awake;    /* atomic; owner */
	uint32_t pad0[14];
	uint32_t rep_seq;        /* atomic; owner */
	uint32_t client_sleeps;  /* atomic; both */
	uint32_t pad1[14];
	struct nvs_msg req;      /* the client's request (ret: its CPU + 1) */
	int64_t ret;             /* the owner's reply */
};
#define NVS_MBOX_SIZE 4096u

/* Largest payload: a hello reply. */
#define NVS_MAX_NS     32u
#define NVS_MAX_PAYLOAD 4096u

struct nvs_ns_desc {
	uint32_t nsid;
	uint32_t lba_size;
	uint64_t nblocks;
	uint8_t  dlfeat;
	uint8_t  pad[7];
};

struct nvs_hello_reply {
	uint32_t owner_pid;   /* for pidfd_open(): the owner's death */
	uint32_t nns;
	char     bdf[32];
	uint32_t vwc;         /* the controller has a volatile write cache */
	uint32_t max_xfer;    /* bytes per command */
	struct nvs_ns_desc ns[NVS_MAX_NS];
};

/*
 * Crash state in each ring memfd, at NVS_OFF_STATE (beyond the SQEs, never
 * mapped by programs): which requests the owner has taken from the SQ ring
 * and not yet completed, so that a client whose owner died can complete
 * them itself with -ENODEV (and no SQE is lost or completed twice).
 *
 * Owner: when it consumes an SQE it writes slot.user_data, then
 * slot.state = NVS_SLOT_LIVE, before it publishes the new SQ head
 * (release). When it posts the request's CQE it writes slot.cq_pos = the
 * CQ index + 1 before publishing the CQ tail (release), and frees the slot
 * (state = NVS_SLOT_FREE) after. A request that ends without a CQE (CQE
 * skip) frees its slot.
 * Client, once the owner process has exited (its pidfd is readable, so no
 * store of it is still to come, and its VFIO devices are closed, so no DMA
 * either): every LIVE slot whose cq_pos is 0 or not below the CQ tail
 * (cq_pos - 1 - tail as int32 >= 0) gets a CQE {user_data, -ENODEV};
 * every SQE between the SQ head and tail later gets one at its enter.
 */
#define NVS_OFF_STATE  0x20000000ull
#define NVS_STATE_MAGIC 0x4e565354u   /* "NVST" */

enum { NVS_SLOT_FREE = 0, NVS_SLOT_LIVE = 1 };

struct nvs_slot {
	uint64_t user_data;
	uint32_t state;       /* atomic: NVS_SLOT_* */
	uint32_t cq_pos;      /* CQ index + 1 of its CQE once written, else 0 */
};

struct nvs_ring_state {
	uint32_t magic;       /* NVS_STATE_MAGIC */
	uint32_t nslots;
	uint32_t cqe_size;    /* 16 or 32 (CQE32) */
	uint32_t used;        /* slots ever used: [0, used) is all there is to scan */
	struct nvs_slot slots[];
};

#endif
