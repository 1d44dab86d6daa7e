/* SPDX-License-Identifier: MIT */
/*
 * shim/static/elfscan.h — the system-call sites of an ELF file's executable
 * segments, as nvring-static-loader rewrites them (and its tests check).
 * Pure: works on the file's bytes in memory, allocates nothing.
 */
#ifndef NVRING_STATIC_ELFSCAN_H
#define NVRING_STATIC_ELFSCAN_H

#include <elf.h>

#include "shim/static/decode.h"

/* The branch-target map of the executable segment @ph of the file image
 * (size bytes) into map, its instruction starts into starts (each
 * ph->p_filesz / 8 + 1 bytes) with cov as scratch (the same size):
 * functions of the symbol table decoded linearly, the bytes no function
 * covers at every offset. */
void st_elf_targets(const uint8_t *file, size_t size, const Elf64_Phdr *ph, uint8_t *map,
		    uint8_t *cov, uint8_t *starts);

/* 0 if file is an x86-64 ELF executable (ET_EXEC or ET_DYN) that fits in
 * size bytes with its program headers, else -ENOEXEC. */
int st_elf_check(const uint8_t *file, size_t size);

#endif
