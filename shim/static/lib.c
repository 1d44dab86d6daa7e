// SPDX-License-Identifier: MIT
/*
 * shim/static/lib.c — the helpers of the freestanding runtime (sys.h). The
 * compiler may emit calls to memcpy/memset/memmove/memcmp on its own, so
 * they exist under those names (the loader links no libc that could also
 * define them).
 */
#include <stdarg.h>
#include <sys/syscall.h>

#include "shim/static/sys.h"

char **st_environ;

void *memcpy(void *d, const void *s, size_t n)
{
	unsigned char *p = d;
	const unsigned char *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

void *memmove(void *d, const void *s, size_t n)
{
	unsigned char *p = d;
	const unsigned char *q = s;
	if (p < q) {
		while (n--)
			*p++ = *q++;
	} else {
		while (n--)
			p[n] = q[n];
	}
	return d;
}

void *memset(void *d, int c, size_t n)
{
	unsigned char *p = d;
	while (n--)
		*p++ = (unsigned char)c;
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const unsigned char *p = a, *q = b;
	for (; n; n--, p++, q++)
		if (*p != *q)
			return *p - *q;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

int st_streq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

const char *st_getenv(const char *name)
{
	size_t n = strlen(name);
	for (char **e = st_environ; e && *e; e++)
		if (!memcmp(*e, name, n) && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

char *st_utoa(char buf[24], unsigned long v, unsigned base)
{
	char *p = buf + 23;
	*p = 0;
	do {
		*--p = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	return p;
}

void st_say(const char *first, ...)
{
	char line[512];
	size_t n = 0;
	va_list ap;
	va_start(ap, first);
	for (const char *s = first; s; s = va_arg(ap, const char *))
		for (; *s && n < sizeof(line) - 1; s++)
			line[n++] = *s;
	va_end(ap);
	line[n++] = '\n';
	sys3(__NR_write, 2, line, n);
}

void st_exit(int code)
{
	for (;;)
		sys1(__NR_exit_group, code);
}
