// SPDX-License-Identifier: MIT
/*
 * shim/static/elfscan.c — branch targets of an executable segment from the
 * symbol table (elfscan.h). Decoding every offset of a whole segment finds
 * "branches" inside the displacements and immediates of other instructions
 * (about one offset in ten), enough to refuse a third of liburing's sites;
 * decoding each function from its start finds only the real ones. A
 * stripped binary has no symbols, but its unwind table (.eh_frame, found
 * through the section headers) gives the functions' extents as well; with
 * neither, every offset is decoded.
 */
#include <errno.h>
#include <stdbool.h>

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

/* ---- function extents from .eh_frame (a stripped binary's) ------------------ */

struct rd {
	const uint8_t *p, *end;
	bool bad;
};

static uint64_t uleb(struct rd *r)
{
	uint64_t v = 0;
	for (unsigned sh = 0; r->p < r->end && sh < 64; sh += 7) {
		uint8_t b = *r->p++;
		v |= (uint64_t)(b & 0x7f) << sh;
		if (!(b & 0x80))
			return v;
	}
	r->bad = true;
	return 0;
}

static uint64_t rdn(struct rd *r, unsigned n)
{
	uint64_t v = 0;
	if ((size_t)(r->end - r->p) < n) {
		r->bad = true;
		return 0;
	}
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)r->p[i] << (8 * i);
	r->p += n;
	return v;
}

/* A DW_EH_PE-encoded pointer at r->p (file offset off_of_p maps to vaddr
 * va_of_p, for pcrel). Only the encodings compilers emit for code. */
static uint64_t eh_ptr(struct rd *r, uint8_t enc, uint64_t va_of_p)
{
	uint64_t v;
	switch (enc & 0x0f) {
	case 0x00: case 0x04: v = rdn(r, 8); break;
	case 0x0c: v = rdn(r, 8); break;
	case 0x03: v = rdn(r, 4); break;
	case 0x0b: v = (uint64_t)(int64_t)(int32_t)rdn(r, 4); break;
	default: r->bad = true; return 0;
	}
	if ((enc & 0x70) == 0x10)
		v += va_of_p;
	else if (enc & 0x70)
		r->bad = true;
	return v;
}

/* Call fn for every FDE's [pc_begin, pc_begin + pc_range) in the .eh_frame
 * section sh of the file. */
static unsigned eh_frame_funcs(const uint8_t *file, const Elf64_Shdr *sh,
			       void (*fn)(void *ctx, uint64_t lo, uint64_t hi), void *ctx)
{
	const uint8_t *base = file + sh->sh_offset, *end = base + sh->sh_size;
	/* the CIEs seen last, with their FDE pointer encodings */
	const uint8_t *cie_at[8] = { 0 };
	uint8_t cie_enc[8] = { 0 };
	unsigned ncie = 0, n = 0;

	for (const uint8_t *q = base; q + 8 <= end;) {
		uint32_t len = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 |
			       (uint32_t)q[3] << 24;
		if (len == 0 || len == 0xffffffffu || len > (size_t)(end - q - 4))
			break;   /* the terminator, 64-bit records (none on x86-64 gcc), or junk */
		const uint8_t *rec = q + 4, *next = rec + len;
		uint32_t id = (uint32_t)rec[0] | (uint32_t)rec[1] << 8 | (uint32_t)rec[2] << 16 |
			      (uint32_t)rec[3] << 24;
		struct rd r = { rec + 4, next, false };
		if (id == 0) {
			/* a CIE: find its FDE pointer encoding ('R') */
			uint8_t ver = (uint8_t)rdn(&r, 1);
			const char *aug = (const char *)r.p;
			while (r.p < r.end && *r.p)
				r.p++;
			r.p++;
			uleb(&r);
			uleb(&r);   /* data alignment: sleb, skipped alike */
			if (ver == 1)
				rdn(&r, 1);
			else
				uleb(&r);
			uint8_t enc = 0;
			if (aug[0] == 'z') {
				uleb(&r);
				for (const char *a = aug + 1; *a && !r.bad; a++) {
					if (*a == 'R') {
						enc = (uint8_t)rdn(&r, 1);
					} else if (*a == 'L') {
						rdn(&r, 1);
					} else if (*a == 'P') {
						uint8_t pe = (uint8_t)rdn(&r, 1);
						eh_ptr(&r, pe, 0);
					} else if (*a != 'S') {
						break;
					}
				}
			}
			if (!r.bad) {
				/* the CIE pointer of an FDE counts from itself to
				 * the CIE's length field */
				cie_at[ncie % 8] = q;
				cie_enc[ncie % 8] = enc;
				ncie++;
			}
		} else {
			int k = -1;
			for (int j = 0; j < 8; j++)
				if (cie_at[j] && (size_t)(rec - base) >= id && rec - id == cie_at[j])
					k = j;
			if (k >= 0) {
				uint64_t va = sh->sh_addr + (uint64_t)(r.p - base);
				uint64_t lo = eh_ptr(&r, cie_enc[k], va);
				uint64_t range = eh_ptr(&r, (uint8_t)(cie_enc[k] & 0x0f), 0);
				if (!r.bad && range) {
					fn(ctx, lo, lo + range);
					n++;
				}
			}
		}
		q = next;
	}
	return n;
}

struct func_ctx {
	const uint8_t *seg;
	size_t len;
	uint64_t vaddr;
	uint8_t *map, *cov, *starts;
};

static void bits_set(uint8_t *m, size_t lo, size_t hi);

static void on_func(void *arg, uint64_t lo, uint64_t hi)
{
	struct func_ctx *c = arg;
	if (lo < c->vaddr || lo - c->vaddr >= c->len || hi <= lo)
		return;
	size_t from = lo - c->vaddr;
	size_t to = hi - c->vaddr > c->len ? c->len : hi - c->vaddr;
	st_targets_precise(c->seg, c->len, from, to, c->map, c->starts);
	bits_set(c->cov, from, to);
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
	struct func_ctx fc = { seg, len, ph->p_vaddr, map, cov, starts };
	unsigned nfuncs = 0;
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
				if (ELF64_ST_TYPE(sym[k].st_info) != STT_FUNC || !sym[k].st_size)
					continue;
				on_func(&fc, sym[k].st_value, sym[k].st_value + sym[k].st_size);
				nfuncs++;
			}
		}
		/* stripped: the unwind table's FDEs cover the functions too */
		const Elf64_Shdr *strs = eh->e_shstrndx < eh->e_shnum ? &sh[eh->e_shstrndx] : NULL;
		for (unsigned i = 0; !nfuncs && strs && i < eh->e_shnum; i++) {
			if (sh[i].sh_type != SHT_PROGBITS || sh[i].sh_offset > size ||
			    sh[i].sh_size > size - sh[i].sh_offset || sh[i].sh_name >= strs->sh_size ||
			    strs->sh_offset > size || strs->sh_size > size - strs->sh_offset)
				continue;
			const char *nm = (const char *)file + strs->sh_offset + sh[i].sh_name;
			static const char want[] = ".eh_frame";
			size_t k = 0;
			while (k < sizeof(want) && nm[k] == want[k] &&
			       strs->sh_name + k < strs->sh_size)
				k++;
			if (k == sizeof(want))
				eh_frame_funcs(file, &sh[i], on_func, &fc);
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
