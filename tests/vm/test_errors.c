/* SPDX-License-Identifier: MIT */
/*
 * VM test: error paths. Each must fail the documented way and leave the
 * queue pair usable: a read past the end of the namespace, a bad namespace
 * ID or length at submit, memory that is not DMA memory, scattered buffers
 * that break the PRP rule, freeing what was never allocated.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/mman.h>

#include "tests/vm/vm_util.h"
#include "tests/vm/vm_io.h"

#define PAGE 4096u

/* After an error the queue pair still moves data. */
static void still_works(struct vm_io *io)
{
	uint32_t nlb = (uint32_t)(2 * PAGE / io->v->ns.lba_size) ?: 1;

	vm_io_roundtrip(io, 0, vm_rand_range(&io->rng, 0, io->v->ns.nlba - nlb), nlb);
}

/*
 * LBA range past the end: QEMU completes it with LBA Out of Range
 * (status 0x080), which the kernel's nvme driver reports as
 * BLK_STS_TARGET = -EREMOTEIO (not -ENOSPC: that is Capacity Exceeded).
 * Whatever the mapping, the completion's res must equal
 * nvr_status_errno(status).
 */
static void test_read_past_end(void **state)
{
	struct vm_ctrlr *v = VM_CTRLR(0);
	struct vm_io *io = vm_io_open(state, v, 0, 4 * PAGE, 11);
	const struct { uint64_t lba; uint32_t nlb; } cases[] = {
		{ v->ns.nlba - 1, 2 },          /* straddles the end */
		{ v->ns.nlba, 1 },              /* first block past it */
		{ v->ns.nlba + 1000, 1 },
		{ UINT64_MAX - 1, 1 },          /* would wrap */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (int op = NVR_IO_READ; op <= NVR_IO_WRITE; op++) {
			bool submitted;
			uint16_t status;
			int rc = vm_cmd(io->qp, op, v->nsid, io->rbuf, cases[i].lba, cases[i].nlb,
					&submitted, &status);

			print_message("%s %u at LBA %" PRIu64 " (nlba %" PRIu64 "): %s %d (%s), status 0x%03x\n",
				      vm_op_names[op], cases[i].nlb, cases[i].lba, v->ns.nlba,
				      submitted ? "completed" : "refused", rc, strerror(-rc), status);
			if (!submitted)
				fail_msg("a past-the-end %s was refused at submit (%s): expected the device's LBA Out of Range in the completion",
					 vm_op_names[op], strerror(-rc));
			assert_int_equal(status, 0x080);                 /* SCT 0, SC 0x80 */
			assert_int_equal(rc, nvr_status_errno(status));
			assert_int_equal(rc, -EREMOTEIO);
		}
	}
	still_works(io);
}

/* Bad namespace IDs and zero lengths never reach the device. */
static void test_bad_nsid_and_length(void **state)
{
	struct vm_ctrlr *v = VM_CTRLR(0);
	struct vm_io *io = vm_io_open(state, v, 0, 2 * PAGE, 12);
	const uint32_t bad_nsids[] = { 0, v->info->nn + 1, 0xfffffffeu, 0xffffffffu };
	struct vm_wait w = { 0 };
	const struct iovec iov = { io->rbuf, PAGE };

	for (size_t i = 0; i < sizeof(bad_nsids) / sizeof(bad_nsids[0]); i++) {
		uint32_t ns = bad_nsids[i];

		assert_int_equal(nvr_read(io->qp, ns, io->rbuf, 0, 1, vm_wait_cb, &w), -EINVAL);
		assert_int_equal(nvr_write(io->qp, ns, io->wbuf, 0, 1, vm_wait_cb, &w), -EINVAL);
		assert_int_equal(nvr_readv(io->qp, ns, &iov, 1, 0, vm_wait_cb, &w), -EINVAL);
		assert_int_equal(nvr_write_zeroes(io->qp, ns, 0, 1, vm_wait_cb, &w), -EINVAL);
		assert_int_equal(nvr_deallocate(io->qp, ns, 0, 1, vm_wait_cb, &w), -EINVAL);
		if (ns != 0xffffffffu)   /* Flush may take the broadcast NSID */
			assert_int_equal(nvr_flush(io->qp, ns, vm_wait_cb, &w), -EINVAL);
	}
	/* Zero blocks. */
	assert_int_equal(nvr_read(io->qp, v->nsid, io->rbuf, 0, 0, vm_wait_cb, &w), -EINVAL);
	assert_int_equal(nvr_write(io->qp, v->nsid, io->wbuf, 0, 0, vm_wait_cb, &w), -EINVAL);
	assert_int_equal(nvr_readv(io->qp, v->nsid, &iov, 0, 0, vm_wait_cb, &w), -EINVAL);
	assert_int_equal(nvr_write_zeroes(io->qp, v->nsid, 0, 0, vm_wait_cb, &w), -EINVAL);
	assert_int_equal(nvr_deallocate(io->qp, v->nsid, 0, 0, vm_wait_cb, &w), -EINVAL);
	/* Nothing was queued: no callback may ever run for them. */
	for (int i = 0; i < 10; i++)
		assert_true(nvr_qpair_poll(io->qp, 0) >= 0);
	assert_int_equal(w.calls, 0);
	still_works(io);
}

/* Buffers that are not DMA memory: -EFAULT, nothing submitted. */
static void test_not_dma_memory(void **state)
{
	struct vm_ctrlr *v = VM_CTRLR(0);
	struct vm_io *io = vm_io_open(state, v, 0, 2 * PAGE, 13);
	uint8_t stack_buf[PAGE] __attribute__((aligned(4096)));
	uint8_t *heap = aligned_alloc(PAGE, 2 * PAGE);
	uint8_t *anon = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			     -1, 0);
	struct vm_wait w = { 0 };
	uint64_t iova;
	uint32_t nlb = (uint32_t)(PAGE / v->ns.lba_size);

	assert_non_null(heap);
	assert_true(anon != MAP_FAILED);
	memset(heap, 0x11, 2 * PAGE);
	void *bufs[] = { stack_buf, heap, anon };

	for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) {
		struct iovec iov = { bufs[i], PAGE };

		assert_int_equal(nvr_read(io->qp, v->nsid, bufs[i], 0, nlb, vm_wait_cb, &w), -EFAULT);
		assert_int_equal(nvr_write(io->qp, v->nsid, bufs[i], 0, nlb, vm_wait_cb, &w), -EFAULT);
		assert_int_equal(nvr_readv(io->qp, v->nsid, &iov, 1, 0, vm_wait_cb, &w), -EFAULT);
		assert_int_equal(nvr_writev(io->qp, v->nsid, &iov, 1, 0, vm_wait_cb, &w), -EFAULT);
		assert_int_equal(nvr_dma_iova(v->ctrlr, bufs[i], PAGE, &iova), -EFAULT);
	}
	/* A scattered transfer with one good and one bad element. */
	struct iovec mixed[2] = { { io->wbuf, PAGE }, { heap, PAGE } };

	assert_int_equal(nvr_writev(io->qp, v->nsid, mixed, 2, 0, vm_wait_cb, &w), -EFAULT);
	/* The heap page was not touched (the device never saw it). */
	for (size_t k = 0; k < 2 * PAGE; k++)
		if (heap[k] != 0x11)
			fail_msg("non-DMA buffer modified at byte %zu", k);
	for (int i = 0; i < 10; i++)
		assert_true(nvr_qpair_poll(io->qp, 0) >= 0);
	assert_int_equal(w.calls, 0);

	/* Freeing memory nvr_dma_alloc() did not hand out: -EINVAL. */
	assert_int_equal(nvr_dma_free(v->ctrlr, heap), -EINVAL);
	assert_int_equal(nvr_dma_free(v->ctrlr, io->wbuf + PAGE), -EINVAL);
	free(heap);
	munmap(anon, 2 * PAGE);
	still_works(io);
}

/* The PRP rule for scattered buffers: inner element boundaries on page
 * boundaries, else -EINVAL. */
static void test_iovec_prp_rule(void **state)
{
	struct vm_ctrlr *v = VM_CTRLR(0);
	struct vm_io *io = vm_io_open(state, v, 0, 8 * PAGE, 14);
	struct vm_wait w = { 0 };
	uint8_t *b = io->wbuf;
	/* First element ends mid-page. */
	struct iovec bad1[2] = { { b, PAGE + 512 }, { b + 4 * PAGE, PAGE - 512 } };
	/* Second element starts mid-page. */
	struct iovec bad2[2] = { { b, PAGE }, { b + 4 * PAGE + 512, PAGE } };
	/* Middle element starts on a page but ends mid-page. */
	struct iovec bad3[3] = { { b, PAGE }, { b + 2 * PAGE, 512 }, { b + 4 * PAGE, PAGE - 512 } };

	if (v->ns.lba_size > 512)
		skip();   /* the shapes below are whole blocks only for 512-byte LBAs */
	assert_int_equal(nvr_writev(io->qp, v->nsid, bad1, 2, 0, vm_wait_cb, &w), -EINVAL);
	assert_int_equal(nvr_writev(io->qp, v->nsid, bad2, 2, 0, vm_wait_cb, &w), -EINVAL);
	assert_int_equal(nvr_writev(io->qp, v->nsid, bad3, 3, 0, vm_wait_cb, &w), -EINVAL);
	assert_int_equal(nvr_readv(io->qp, v->nsid, bad1, 2, 0, vm_wait_cb, &w), -EINVAL);
	/* Not a whole number of blocks. */
	struct iovec partial = { b, 100 };

	assert_int_equal(nvr_readv(io->qp, v->nsid, &partial, 1, 0, vm_wait_cb, &w), -EINVAL);
	assert_int_equal(w.calls, 0);
	still_works(io);
}

/* nvr_io() with bus addresses from nvr_dma_iova(), two segments. */
static void test_nvr_io_segments(void **state)
{
	struct vm_ctrlr *v = VM_CTRLR(0);
	struct vm_io *io = vm_io_open(state, v, 0, 8 * PAGE, 15);
	struct nvr_seg wseg[2], rseg[2];
	struct vm_wait w = { 0 };
	uint32_t nlb = (uint32_t)(4 * PAGE / v->ns.lba_size);
	uint64_t lba = vm_rand_range(&io->rng, 0, v->ns.nlba - nlb);

	vm_fill_random(&io->rng, io->wbuf, 8 * PAGE);
	memset(io->rbuf, 0xa5, 8 * PAGE);
	/* Data from pages 4-5 then 0-1 of wbuf; read into 2-3 then 6-7. */
	assert_int_equal(nvr_dma_iova(v->ctrlr, io->wbuf + 4 * PAGE, 2 * PAGE, &wseg[0].iova), 0);
	assert_int_equal(nvr_dma_iova(v->ctrlr, io->wbuf, 2 * PAGE, &wseg[1].iova), 0);
	assert_int_equal(nvr_dma_iova(v->ctrlr, io->rbuf + 2 * PAGE, 2 * PAGE, &rseg[0].iova), 0);
	assert_int_equal(nvr_dma_iova(v->ctrlr, io->rbuf + 6 * PAGE, 2 * PAGE, &rseg[1].iova), 0);
	wseg[0].len = wseg[1].len = rseg[0].len = rseg[1].len = 2 * PAGE;

	assert_int_equal(nvr_io(io->qp, NVR_IO_WRITE, v->nsid, lba, nlb, wseg, 2, vm_wait_cb, &w), 0);
	assert_int_equal(vm_poll_until(io->qp, &w), 0);
	assert_int_equal(w.cpl.res, 0);
	w = (struct vm_wait){ 0 };
	assert_int_equal(nvr_io(io->qp, NVR_IO_READ, v->nsid, lba, nlb, rseg, 2, vm_wait_cb, &w), 0);
	assert_int_equal(vm_poll_until(io->qp, &w), 0);
	assert_int_equal(w.cpl.res, 0);
	VM_SAME(io->rbuf + 2 * PAGE, io->wbuf + 4 * PAGE, 2 * PAGE, "nvr_io segment 0");
	VM_SAME(io->rbuf + 6 * PAGE, io->wbuf, 2 * PAGE, "nvr_io segment 1");
	assert_int_equal(io->rbuf[0], 0xa5);
	assert_int_equal(io->rbuf[4 * PAGE], 0xa5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_read_past_end, vm_io_setup, vm_io_teardown),
		cmocka_unit_test_setup_teardown(test_bad_nsid_and_length, vm_io_setup, vm_io_teardown),
		cmocka_unit_test_setup_teardown(test_not_dma_memory, vm_io_setup, vm_io_teardown),
		cmocka_unit_test_setup_teardown(test_iovec_prp_rule, vm_io_setup, vm_io_teardown),
		cmocka_unit_test_setup_teardown(test_nvr_io_segments, vm_io_setup, vm_io_teardown),
	};

	return cmocka_run_group_tests_name("vm_errors", tests, vm_setup, vm_teardown);
}
