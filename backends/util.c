/*
 * util.c - parsing, escaping, hashing and clock helpers.
 */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

uint64_t tfs_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Parses leading decimal digits; -EINVAL on no digits or overflow. */
static int parse_digits(const char **sp, uint64_t *out)
{
	const char *s = *sp;
	uint64_t v = 0;
	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	while (isdigit((unsigned char)*s)) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
		s++;
	}
	*sp = s;
	*out = v;
	return 0;
}

int tfs_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v;
	if (!s || parse_digits(&s, &v) < 0 || *s || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int tfs_parse_size(const char *s, uint64_t *out)
{
	uint64_t v, mult = 1;
	if (!s || parse_digits(&s, &v) < 0)
		return -EINVAL;
	switch (*s) {
	case '\0': break;
	case 'k': case 'K': mult = 1ull << 10; s++; break;
	case 'm': case 'M': mult = 1ull << 20; s++; break;
	case 'g': case 'G': mult = 1ull << 30; s++; break;
	case 't': case 'T': mult = 1ull << 40; s++; break;
	default: return -EINVAL;
	}
	/* Accept an optional "B" or "iB" after the unit: 64KiB, 1MB. */
	if (mult > 1 && (*s == 'i' || *s == 'I'))
		s++;
	if (mult > 1 && (*s == 'b' || *s == 'B'))
		s++;
	if (*s || (v && mult > UINT64_MAX / v))
		return -EINVAL;
	*out = v * mult;
	return 0;
}

int tfs_parse_duration(const char *s, uint64_t *out_s)
{
	uint64_t v, mult = 1;
	const uint64_t max_s = 100ull * 366 * 86400;
	if (!s)
		return -EINVAL;
	if (strcmp(s, "never") == 0) {
		*out_s = TFS_TTL_NEVER;
		return 0;
	}
	if (parse_digits(&s, &v) < 0)
		return -EINVAL;
	switch (*s) {
	case '\0': break;
	case 's': mult = 1; s++; break;
	case 'm': mult = 60; s++; break;
	case 'h': mult = 3600; s++; break;
	case 'd': mult = 86400; s++; break;
	default: return -EINVAL;
	}
	if (*s || v > max_s / mult)
		return -EINVAL;
	*out_s = v * mult;
	return 0;
}

char *tfs_uri_encode(const char *s, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *out = malloc(n * 3 + 1), *o = out;
	if (!out)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~' ||
		    (keep_slash && *p == '/')) {
			*o++ = (char)*p;
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	return out;
}

const char *tfs_printable(const char *s, char *buf, size_t bufsz)
{
	size_t o = 0;
	if (!s)
		s = "(null)";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (o + 8 >= bufsz) {
			if (bufsz >= 4)
				memcpy(buf + (o < bufsz - 4 ? o : bufsz - 4), "...", 4);
			return buf;
		}
		if (*p < 0x20 || *p == 0x7f || *p == '\\')
			o += (size_t)snprintf(buf + o, bufsz - o, "\\x%02x", *p);
		else
			buf[o++] = (char)*p;
	}
	buf[o] = '\0';
	return buf;
}

uint64_t tfs_hash64(const void *data, size_t len, uint64_t seed)
{
	return XXH3_64bits_withSeed(data, len, seed);
}

int tfs_parse_iso8601(const char *s, time_t *out)
{
	struct tm tm = { 0 };
	const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end)
		return -EINVAL;
	*out = timegm(&tm);
	return 0;
}

char *tfs_trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
	return s;
}

char *tfs_strdup_printf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : s;
}
