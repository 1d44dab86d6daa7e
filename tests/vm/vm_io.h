/* SPDX-License-Identifier: MIT */
/*
 * Per-test I/O fixture of the VM tests: one queue pair and two DMA buffers
 * on one controller, released by the teardown even when the test fails
 * half way (cmocka's fail longjmps out of the test).
 *
 * Include after vm_util.h.
 */
#ifndef NVRING_TESTS_VM_IO_H
#define NVRING_TESTS_VM_IO_H

struct vm_io {
	struct vm_ctrlr  *v;
	struct nvr_qpair *qp;
	uint8_t          *wbuf, *rbuf;   /* DMA memory, @len bytes each */
	size_t            len;
	uint64_t          rng;
};

static int vm_io_setup(void **state)
{
	struct vm_io *io = calloc(1, sizeof(*io));

	*state = io;
	return io ? 0 : -1;
}

static int vm_io_teardown(void **state)
{
	struct vm_io *io = *state;
	int bad = 0;

	if (!io)
		return 0;
	if (io->wbuf)
		bad |= nvr_dma_free(io->v->ctrlr, io->wbuf) != 0;
	if (io->rbuf)
		bad |= nvr_dma_free(io->v->ctrlr, io->rbuf) != 0;
	if (io->qp)
		bad |= nvr_qpair_free(io->qp) != 0;
	free(io);
	if (bad)
		print_error("teardown: freeing the queue pair or DMA buffers failed\n");
	return bad ? -1 : 0;
}

/* Open the fixture on @v: a queue pair of @entries (0: default) and two
 * @len-byte DMA buffers. Fails the test on any error. */
static inline struct vm_io *vm_io_open(void **state, struct vm_ctrlr *v, uint32_t entries,
				       size_t len, uint64_t salt)
{
	struct vm_io *io = *state;
	int rc;

	io->v = v;
	io->len = len;
	io->rng = vm_rng(salt);
	rc = nvr_qpair_alloc(v->ctrlr, entries, &io->qp);
	if (rc < 0)
		fail_msg("nvr_qpair_alloc(%s, %u): %s", v->bdf, entries, strerror(-rc));
	rc = nvr_dma_alloc(v->ctrlr, len, (void **)&io->wbuf);
	if (rc < 0)
		fail_msg("nvr_dma_alloc(%zu): %s", len, strerror(-rc));
	rc = nvr_dma_alloc(v->ctrlr, len, (void **)&io->rbuf);
	if (rc < 0)
		fail_msg("nvr_dma_alloc(%zu): %s", len, strerror(-rc));
	/* nvr_dma_alloc() promises zeroed, 4 KiB aligned memory. */
	assert_int_equal((uintptr_t)io->wbuf & 4095, 0);
	assert_int_equal((uintptr_t)io->rbuf & 4095, 0);
	assert_true(vm_all_zero(io->wbuf, len));
	return io;
}

/*
 * Write random data from wbuf + @off, read it back into rbuf + @off (first
 * filled with a different pattern so a read that moves nothing is seen),
 * compare.
 */
static inline void vm_io_roundtrip(struct vm_io *io, size_t off, uint64_t lba, uint32_t nlb)
{
	uint32_t nsid = io->v->nsid;
	size_t bytes = (size_t)nlb * io->v->ns.lba_size;
	char what[128];

	assert_true(off + bytes <= io->len);
	assert_true(lba + nlb <= io->v->ns.nlba);
	vm_fill_random(&io->rng, io->wbuf + off, bytes);
	memset(io->rbuf + off, 0xa5, bytes);
	VM_OK(io->qp, NVR_IO_WRITE, nsid, io->wbuf + off, lba, nlb);
	VM_OK(io->qp, NVR_IO_READ, nsid, io->rbuf + off, lba, nlb);
	snprintf(what, sizeof(what), "%s: %u blocks at LBA %" PRIu64 ", buffer offset %zu",
		 io->v->bdf, nlb, lba, off);
	VM_SAME(io->rbuf + off, io->wbuf + off, bytes, what);
}

#endif
