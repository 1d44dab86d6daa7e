/* SPDX-License-Identifier: MIT */
/*
 * A small JSON validator for tests: json_ok(s) says whether @s is one JSON
 * object (RFC 8259 grammar: objects, arrays, strings with escapes, numbers,
 * true/false/null) and nothing but white space after it. Used on the
 * `nvring log --json` output by tests/unit/test_log_page.c and the VM test
 * tests/vm/test_fault_media_error.c. Header only: everything static.
 */
#ifndef NVRING_TESTS_UNIT_JSON_CHECK_H
#define NVRING_TESTS_UNIT_JSON_CHECK_H

#include <stdbool.h>
#include <string.h>

static inline const char *json_ws(const char *p)
{
	while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
		p++;
	return p;
}

static inline const char *json_value(const char *p, int depth);

static inline const char *json_string(const char *p)
{
	if (*p++ != '"')
		return NULL;
	while (*p && *p != '"') {
		if ((unsigned char)*p < 0x20)
			return NULL;
		if (*p == '\\') {
			p++;
			if (*p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i])
						return NULL;
				p += 4;
			} else if (!*p || !strchr("\"\\/bfnrt", *p)) {
				return NULL;
			}
		}
		p++;
	}
	return *p == '"' ? p + 1 : NULL;
}

static inline const char *json_number(const char *p)
{
	const char *s = p;

	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (*p >= '0' && *p <= '9')
			p++;
	else
		return NULL;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return NULL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	return p > s ? p : NULL;
}

static inline const char *json_seq(const char *p, int depth, char close, bool keys)
{
	p = json_ws(p + 1);
	if (*p == close)
		return p + 1;
	for (;;) {
		if (keys) {
			p = json_string(json_ws(p));
			if (!p)
				return NULL;
			p = json_ws(p);
			if (*p++ != ':')
				return NULL;
		}
		p = json_value(p, depth + 1);
		if (!p)
			return NULL;
		p = json_ws(p);
		if (*p == close)
			return p + 1;
		if (*p++ != ',')
			return NULL;
	}
}

static inline const char *json_value(const char *p, int depth)
{
	if (depth > 16)
		return NULL;
	p = json_ws(p);
	switch (*p) {
	case '{': return json_seq(p, depth, '}', true);
	case '[': return json_seq(p, depth, ']', false);
	case '"': return json_string(p);
	case 't': return strncmp(p, "true", 4) ? NULL : p + 4;
	case 'f': return strncmp(p, "false", 5) ? NULL : p + 5;
	case 'n': return strncmp(p, "null", 4) ? NULL : p + 4;
	default:  return json_number(p);
	}
}

/* One JSON object and nothing but white space after it. */
static inline bool json_ok(const char *s)
{
	const char *end = json_value(s, 0);

	return end && *json_ws(s) == '{' && *json_ws(end) == 0;
}

#endif
