/* SPDX-License-Identifier: MIT */
/*
 * uring_links DEVICE — IOSQE_IO_LINK chains: a write linked to a read of the
 * same blocks (the read sees the write); a chain whose second member fails
 * (a misaligned O_DIRECT offset: -EINVAL) cancels the rest (-ECANCELED); a
 * short read ends its chain too; IOSQE_IO_HARDLINK keeps going after a
 * failure. Prints each chain's results in completion order.
 */
#include "uring_prog.h"

#define TAG 0x6c6b   /* "lk" */
#define OFF (4u << 20)

enum kind { K_NOP, K_READ, K_WRITE };
struct member { enum kind kind; uint64_t off; unsigned len; unsigned char flags; };

/* Submit one chain of N members; res[i] per member, order[] of CQEs. */
static bool chain(struct io_uring *ring, const struct dev *d, const struct member *m, unsigned n,
		  char *buf, int *res, unsigned *order)
{
	for (unsigned i = 0; i < n; i++) {
		struct io_uring_sqe *sqe = sqe_get(ring);
		char *p = buf + (size_t)i * 2 * BLOCK;

		if (m[i].kind == K_NOP)
			io_uring_prep_nop(sqe);
		else if (m[i].kind == K_READ)
			io_uring_prep_read(sqe, d->fd, p, m[i].len, d->base + m[i].off);
		else
			io_uring_prep_write(sqe, d->fd, p, m[i].len, d->base + m[i].off);
		sqe->flags |= m[i].flags;
		sqe->user_data = i;
		res[i] = -99999;
	}
	return submit_n(ring, (int)n) && reap(ring, n, res, n, order);
}

static void print_chain(const char *name, unsigned n, const int *res, const unsigned *order, const int *want)
{
	bool ok = true;
	char line[256];
	int at = 0;

	for (unsigned k = 0; k < n; k++)
		at += snprintf(line + at, sizeof(line) - at, " #%u=%d", order[k], res[order[k]]);
	for (unsigned i = 0; i < n; i++)
		ok &= res[i] == want[i];
	check(ok, "%s: completions%s", name, line);
}

int main(int argc, char **argv)
{
	struct dev d;
	struct io_uring ring;
	int res[4] = { 0 };
	unsigned order[4] = { 0 };
	int rc = dev_open(argc, argv, &d);

	if (rc)
		return rc;
	ring_init(&ring, 8, 0);
	char *buf = buf_alloc(8 * BLOCK);

	/* write -> read of the same 8 KiB: the read runs after the write. */
	const struct member wr[] = {
		{ K_WRITE, OFF, 2 * BLOCK, IOSQE_IO_LINK }, { K_READ, OFF, 2 * BLOCK, 0 },
	};
	pattern(buf, OFF, 2 * BLOCK, TAG);
	memset(buf + 2 * BLOCK, 0, 2 * BLOCK);
	bool ok = chain(&ring, &d, wr, 2, buf, res, order);
	print_chain("write->read", 2, res, order, (int[]){ 2 * BLOCK, 2 * BLOCK });
	check(ok && pattern_ok(buf + 2 * BLOCK, OFF, 2 * BLOCK, TAG), "write->read: the read saw the write, data %016" PRIx64,
	      fnv64(buf + 2 * BLOCK, 2 * BLOCK, FNV_INIT));

	/* nop -> misaligned read (fails) -> read -> write: the last two canceled,
	 * and the write must not reach the device. */
	const struct member bad[] = {
		{ K_NOP, 0, 0, IOSQE_IO_LINK }, { K_READ, OFF + 1, BLOCK, IOSQE_IO_LINK },
		{ K_READ, OFF, BLOCK, IOSQE_IO_LINK }, { K_WRITE, OFF, BLOCK, 0 },
	};
	memset(buf + 6 * BLOCK, 0x5a, BLOCK);   /* what the canceled write would write */
	chain(&ring, &d, bad, 4, buf, res, order);
	print_chain("nop->bad read->read->write", 4, res, order, (int[]){ 0, -EINVAL, -ECANCELED, -ECANCELED });
	memset(buf, 0, BLOCK);
	const struct member rd[] = { { K_READ, OFF, BLOCK, 0 } };
	ok = chain(&ring, &d, rd, 1, buf, res, order);
	check(ok && res[0] == BLOCK && pattern_ok(buf, OFF, BLOCK, TAG),
	      "the canceled write left the data alone: res %d, data %016" PRIx64, res[0], fnv64(buf, BLOCK, FNV_INIT));

	/* A short read (across the end of the device) breaks the chain. */
	const struct member shortr[] = {
		{ K_READ, REGION_BYTES - BLOCK, 2 * BLOCK, IOSQE_IO_LINK }, { K_NOP, 0, 0, 0 },
	};
	chain(&ring, &d, shortr, 2, buf, res, order);
	print_chain("short read->nop", 2, res, order, (int[]){ BLOCK, -ECANCELED });

	/* Hard links go on after a failure. */
	const struct member hard[] = {
		{ K_READ, OFF + 512 + 1, BLOCK, IOSQE_IO_HARDLINK }, { K_READ, OFF, BLOCK, IOSQE_IO_HARDLINK },
		{ K_NOP, 0, 0, 0 },
	};
	memset(buf + 2 * BLOCK, 0, BLOCK);
	chain(&ring, &d, hard, 3, buf, res, order);
	print_chain("bad read=>read=>nop (hardlink)", 3, res, order, (int[]){ -EINVAL, BLOCK, 0 });
	check(pattern_ok(buf + 2 * BLOCK, OFF, BLOCK, TAG), "hardlinked read after the failure: data %016" PRIx64,
	      fnv64(buf + 2 * BLOCK, BLOCK, FNV_INIT));
	io_uring_queue_exit(&ring);
	return prog_exit();
}
