// SPDX-License-Identifier: MIT
/*
 * shim/static/elfscan.c — branch targets of an executable segment from the
 * symbol table (elfscan.h). Decoding every offset of a whole segment finds
 * "branches" inside the displacements and immediates of other instructions
 * (about one offset in ten), enough to refuse a third of liburing's sites;
 * decoding each function from its start finds only the real ones. A
 * stripped binary has no symbols and gets the every-offset answer.
 */
#include <errno.h>

#include "shim/static/elfscan.h"

int st_elf_check(const uint8_t *file, size_t size)
{
	const Elf64_Ehdr *eh = (const void *)file;
	if (size < sizeof(*eh) || eh->e_ident[0] != ELFMAG0 || eh->e_ident[1] != ELFMAG1 ||
	    eh->e_ident[2] != ELFMAG2 || eh->e_ident[3] != ELFMAG3 ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_machine != EM_X86_64 ||
	    (eh->e_type != ET_EXEC && eh->e_type != ET_DYN) ||
	    eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phoff > size ||
	    (size - eh->e_phoff) / sizeof(Elf64_Phdr) < eh->e_phnum)
		return -ENOEXEC;
	return 0;
}

static void bits_set(uint8_t *m, size_t lo, size_t hi)
{
	for (size_t t = lo; t < hi; t++)
		m[t >> 3] |= (uint8_t)(1u << (t & 7));
}

void st_elf_targets(const uint8_t *file, size_t size, const Elf64_Phdr *ph, uint8_t *map,
		    uint8_t *cov, uint8_t *starts)
{
	const Elf64_Ehdr *eh = (const void *)file;
	const uint8_t *seg = file + ph->p_offset;
	size_t len = ph->p_filesz;
	size_t nb = len / 8 + 1;

	for (size_t i = 0; i < nb; i++)
		map[i] = cov[i] = starts[i] = 0;
	if (eh->e_shoff && eh->e_shentsize == sizeof(Elf64_Shdr) && eh->e_shoff < size &&
	    (size - eh->e_shoff) / sizeof(Elf64_Shdr) >= eh->e_shnum) {
		const Elf64_Shdr *sh = (const void *)(file + eh->e_shoff);
		for (unsigned i = 0; i < eh->e_shnum; i++) {
			if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_offset > size ||
			    sh[i].sh_size > size - sh[i].sh_offset)
				continue;
			const Elf64_Sym *sym = (const void *)(file + sh[i].sh_offset);
			size_t n = sh[i].sh_size / sizeof(*sym);
			for (size_t k = 0; k < n; k++) {
				if (ELF64_ST_TYPE(sym[k].st_info) != STT_FUNC || !sym[k].st_size ||
				    sym[k].st_value < ph->p_vaddr ||
				    sym[k].st_value - ph->p_vaddr >= len)
					continue;
				size_t from = sym[k].st_value - ph->p_vaddr;
				size_t to = from + sym[k].st_size > len ? len : from + sym[k].st_size;
				st_targets_precise(seg, len, from, to, map, starts);
				bits_set(cov, from, to);
			}
		}
	}
	/* bytes outside every function: padding, or code the table omits */
	for (size_t p = 0; p < len; p++) {
		if (cov[p >> 3] == 0xff && !(p & 7)) {
			p += 7;
			continue;
		}
		if (!(cov[p >> 3] & (1u << (p & 7))))
			st_targets_any(seg, len, p, p + 1, map);
	}
}
