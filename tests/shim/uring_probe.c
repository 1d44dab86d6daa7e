/* SPDX-License-Identifier: MIT */
/*
 * uring_probe DEVICE — io_uring_get_probe_ring: the opcodes a block device
 * program relies on are reported as supported. Only these are printed: the
 * full list differs between the kernel and nvring by design (nvring
 * supports fewer opcodes), so last_op and the rest are not compared.
 */
#include "uring_prog.h"

static const struct { int op; const char *name; } ops[] = {
	{ IORING_OP_NOP, "NOP" },             { IORING_OP_READV, "READV" },
	{ IORING_OP_WRITEV, "WRITEV" },       { IORING_OP_FSYNC, "FSYNC" },
	{ IORING_OP_READ_FIXED, "READ_FIXED" }, { IORING_OP_WRITE_FIXED, "WRITE_FIXED" },
	{ IORING_OP_TIMEOUT, "TIMEOUT" },     { IORING_OP_READ, "READ" },
	{ IORING_OP_WRITE, "WRITE" },
};

int main(int argc, char **argv)
{
	struct dev d;
	struct io_uring ring;
	int rc = dev_open(argc, argv, &d);

	if (rc)
		return rc;
	ring_init(&ring, 4, 0);
	struct io_uring_probe *probe = io_uring_get_probe_ring(&ring);
	if (!check(probe != NULL, "io_uring_get_probe_ring"))
		return prog_exit();
	check(probe->last_op >= IORING_OP_WRITE, "last_op covers WRITE (%d)", IORING_OP_WRITE);
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		bool yes = io_uring_opcode_supported(probe, ops[i].op);
		check(yes, "opcode %d %s: %s", ops[i].op, ops[i].name, yes ? "supported" : "not supported");
	}
	/* An opcode past last_op is never supported (liburing checks the range). */
	check(!io_uring_opcode_supported(probe, probe->last_op + 1), "opcode last_op+1: not supported");
	io_uring_free_probe(probe);
	io_uring_queue_exit(&ring);
	return prog_exit();
}
