/* SPDX-License-Identifier: MIT */
/*
 * cat: print bytes [offset, offset + length) of an NVMe namespace to
 * stdout, written against the raw io_uring ABI as a program would write it
 * for the kernel: setup, three mmap()s at IORING_OFF_SQ_RING /
 * IORING_OFF_CQ_RING / IORING_OFF_SQES, SQ index array, explicit
 * acquire/release on the shared heads and tails. Only the entry points
 * are nvring's (nvr_uring_setup/enter/close in place of io_uring_setup(2),
 * io_uring_enter(2), close(2)) and the file is a namespace descriptor from
 * nvr_ns_open().
 *
 *   cat BDF [NSID [OFFSET [LENGTH]]]     (defaults: 1, 0, 4096; bytes,
 *                                         any alignment)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "nvring/nvring.h"
#include "nvring/uring.h"

#define QD     8
#define CHUNK  (64u * 1024)

struct ring {
	int fd;
	void *sq_map, *cq_map;          /* the three mappings, for munmap() */
	size_t sq_sz, cq_sz, sqes_sz;
	unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
	unsigned *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
};

static int ring_open(struct nvr_ctrlr *c, struct ring *r)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	r->fd = nvr_uring_setup(c, QD, &p);
	if (r->fd < 0)
		return r->fd;
	/* the sizes liburing maps: each region up to the end of its array */
	r->sq_sz = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	r->cq_sz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	r->sqes_sz = p.sq_entries * sizeof(struct io_uring_sqe);
	r->sq_map = mmap(NULL, r->sq_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
			 r->fd, IORING_OFF_SQ_RING);
	r->cq_map = mmap(NULL, r->cq_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
			 r->fd, IORING_OFF_CQ_RING);
	r->sqes = mmap(NULL, r->sqes_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
		       r->fd, IORING_OFF_SQES);
	if (r->sq_map == MAP_FAILED || r->cq_map == MAP_FAILED || r->sqes == MAP_FAILED)
		return -errno;   /* ring_close() unmaps what was mapped */
	uint8_t *sq = r->sq_map, *cq = r->cq_map;
	r->sq_head = (unsigned *)(sq + p.sq_off.head);
	r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
	r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
	r->sq_array = (unsigned *)(sq + p.sq_off.array);
	r->cq_head = (unsigned *)(cq + p.cq_off.head);
	r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
	r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
	return 0;
}

static void ring_close(struct ring *r)
{
	if (r->sqes && r->sqes != MAP_FAILED)
		munmap(r->sqes, r->sqes_sz);
	if (r->cq_map && r->cq_map != MAP_FAILED)
		munmap(r->cq_map, r->cq_sz);
	if (r->sq_map && r->sq_map != MAP_FAILED)
		munmap(r->sq_map, r->sq_sz);
	if (r->fd >= 0)
		nvr_uring_close(r->fd);
}

/* A decimal or 0x number, or -1 with a message. */
static int parse_u64(const char *what, const char *arg, uint64_t *v)
{
	char *end;
	errno = 0;
	*v = strtoull(arg, &end, 0);
	if (errno || end == arg || *end || *arg == '-') {
		fprintf(stderr, "cat: %s: not a number: '%s'\n", what, arg);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t nsid = 1, off = 0, len = 4096;
	if (argc < 2 || argc > 5) {
		fprintf(stderr, "usage: %s BDF [NSID [OFFSET [LENGTH]]]\n", argv[0]);
		return 2;
	}
	if ((argc > 2 && parse_u64("NSID", argv[2], &nsid)) ||
	    (argc > 3 && parse_u64("OFFSET", argv[3], &off)) ||
	    (argc > 4 && parse_u64("LENGTH", argv[4], &len)) || nsid == 0 || nsid > UINT32_MAX)
		return 2;

	struct nvr_ctrlr *c;
	int ret = nvr_ctrlr_attach(argv[1], NULL, &c);
	if (ret < 0) {
		fprintf(stderr, "cat: attach %s: %s\n", argv[1], strerror(-ret));
		return 1;
	}
	struct nvr_ns_info ni;
	int nsfd = -1;
	struct ring r = { .fd = -1 };
	uint8_t *buf = NULL;
	if ((ret = nvr_ns_get_info(c, (uint32_t)nsid, &ni)) < 0)
		goto out;
	uint64_t lbs = ni.lba_size, bytes = ni.nlba * lbs;
	if (off > bytes || len > bytes - off) {
		fprintf(stderr, "cat: [%llu, +%llu) is past the end of namespace %llu (%llu bytes)\n",
			(unsigned long long)off, (unsigned long long)len,
			(unsigned long long)nsid, (unsigned long long)bytes);
		ret = -EINVAL;
		goto out;
	}
	if ((nsfd = ret = nvr_ns_open(c, (uint32_t)nsid)) < 0 || (ret = ring_open(c, &r)) < 0)
		goto out;
	/* O_DIRECT rules: read whole blocks, print the asked-for bytes */
	uint64_t start = off & ~(lbs - 1), end = (off + len + lbs - 1) & ~(lbs - 1);
	buf = aligned_alloc(4096, QD * CHUNK);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	/* Windows of up to QD chunk reads: submit them in one enter, wait for
	 * all of them, print them in order. The rings are empty at the start
	 * of each window (we waited for everything), so there is room for QD. */
	uint32_t want[QD];
	for (uint64_t win = start; win < end; win += (uint64_t)QD * CHUNK) {
		unsigned tail = *r.sq_tail, n = 0;   /* only we write the SQ tail */
		for (uint64_t at = win; at < end && n < QD; at += CHUNK, n++) {
			unsigned idx = tail & *r.sq_mask;
			struct io_uring_sqe *s = &r.sqes[idx];
			memset(s, 0, sizeof(*s));
			s->opcode = IORING_OP_READ;
			s->fd = nsfd;
			s->off = at;
			s->len = want[n] = (uint32_t)(end - at < CHUNK ? end - at : CHUNK);
			s->addr = (uintptr_t)(buf + (size_t)n * CHUNK);
			s->user_data = n;
			r.sq_array[idx] = idx;
			tail++;
		}
		/* release: the SQEs and array entries before the tail */
		__atomic_store_n(r.sq_tail, tail, __ATOMIC_RELEASE);
		/* io_uring_enter(2): submit n, wait for n (it waits only if all
		 * n were submitted, as the kernel does) */
		ret = nvr_uring_enter(r.fd, n, n, IORING_ENTER_GETEVENTS, NULL, 0);
		if (ret < 0)
			goto out;
		if ((unsigned)ret != n) {
			fprintf(stderr, "cat: %d of %u reads submitted\n", ret, n);
			ret = -EIO;
			goto out;
		}
		/* acquire: the CQEs before the tail that published them */
		unsigned ctail = __atomic_load_n(r.cq_tail, __ATOMIC_ACQUIRE), head = *r.cq_head;
		unsigned done = 0;
		for (; head != ctail; head++, done++) {
			struct io_uring_cqe *cqe = &r.cqes[head & *r.cq_mask];
			if (cqe->user_data >= n || cqe->res != (int32_t)want[cqe->user_data]) {
				fprintf(stderr, "cat: read %llu: %s\n", (unsigned long long)cqe->user_data,
					cqe->res < 0 ? strerror(-cqe->res) : "short");
				ret = -EIO;
			}
		}
		/* release: our reads of the CQEs before the slots are reused */
		__atomic_store_n(r.cq_head, head, __ATOMIC_RELEASE);
		if (ret == -EIO || done != n) {
			ret = -EIO;
			goto out;
		}
		uint64_t wend = win + (uint64_t)n * CHUNK < end ? win + (uint64_t)n * CHUNK : end;
		uint64_t lo = win < off ? off : win, hi = wend < off + len ? wend : off + len;
		if (hi > lo && fwrite(buf + (lo - win), 1, hi - lo, stdout) != hi - lo) {
			ret = errno ? -errno : -EIO;
			goto out;
		}
	}
	ret = fflush(stdout) ? (errno ? -errno : -EIO) : 0;
out:
	if (ret < 0)
		fprintf(stderr, "cat: %s\n", strerror(-ret));
	free(buf);
	ring_close(&r);
	if (nsfd >= 0)
		nvr_ns_close(nsfd);
	nvr_ctrlr_detach(c);
	return ret < 0 ? 1 : 0;
}
