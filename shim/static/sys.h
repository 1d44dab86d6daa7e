/* SPDX-License-Identifier: MIT */
/*
 * shim/static/sys.h — the freestanding runtime of nvring-static-loader:
 * raw system calls and the few helpers its C code needs. No libc exists in
 * the loader's image (the program it loads brings its own, which must not
 * share a process with a second one), so nothing here may touch TLS, errno
 * or a libc symbol. Every call returns the kernel's value (-errno on error).
 */
#ifndef NVRING_STATIC_SYS_H
#define NVRING_STATIC_SYS_H

#include <stddef.h>
#include <stdint.h>

static inline long sys6(long n, long a, long b, long c, long d, long e, long f)
{
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}
#define sys0(n) sys6(n, 0, 0, 0, 0, 0, 0)
#define sys1(n, a) sys6(n, (long)(a), 0, 0, 0, 0, 0)
#define sys2(n, a, b) sys6(n, (long)(a), (long)(b), 0, 0, 0, 0)
#define sys3(n, a, b, c) sys6(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define sys4(n, a, b, c, d) sys6(n, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define sys5(n, a, b, c, d, e) sys6(n, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

static inline int sys_err(long r)
{
	return r < 0 && r > -4096;
}

/* lib.c */
void *memcpy(void *d, const void *s, size_t n);
void *memset(void *d, int c, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int st_streq(const char *a, const char *b);
const char *st_getenv(const char *name);
/* Text to stderr: each argument a string, NULL-terminated. */
void st_say(const char *first, ...);
char *st_utoa(char buf[24], unsigned long v, unsigned base);
__attribute__((noreturn)) void st_exit(int code);

/* The environment the loader started with (for st_getenv). */
extern char **st_environ;

#endif
