/*
 * util.h - small helpers shared by all layers: clocks, size/duration parsing, string escaping,
 * and hashing.  All functions are thread-safe and return 0 or -errno unless stated otherwise.
 */
#ifndef TIERFS_UTIL_H
#define TIERFS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define TFS_TTL_NEVER UINT64_MAX /* a TTL that never expires */

/* Monotonic time in nanoseconds / milliseconds. */
uint64_t tfs_now_ns(void);
static inline uint64_t tfs_now_ms(void) { return tfs_now_ns() / 1000000u; }

/* The CLOCK_MONOTONIC time ms milliseconds from now, for pthread_cond_timedwait on a condition
 * variable whose clock is CLOCK_MONOTONIC (worker.h). */
static inline struct timespec tfs_deadline_in(uint64_t ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t ns = (uint64_t)ts.tv_nsec + ms % 1000 * 1000000;
	ts.tv_sec += (time_t)(ms / 1000 + ns / 1000000000);
	ts.tv_nsec = (long)(ns % 1000000000);
	return ts;
}

/* "4096", "64K", "1M", "10G", "1T" (powers of 1024) -> bytes.  -EINVAL on anything else,
 * including empty strings, negatives, trailing garbage and overflow. */
int tfs_parse_size(const char *s, uint64_t *out);

/* "300", "300s", "5m", "1h", "2d", "never" -> seconds (TFS_TTL_NEVER for never).  -EINVAL on
 * malformed, negative or absurd (> 100 years) values. */
int tfs_parse_duration(const char *s, uint64_t *out_s);

/* Unsigned decimal with bounds; -EINVAL outside [min, max] or malformed. */
int tfs_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* RFC 3986 percent-encoding with upper-case hex; unreserved characters stay as they are, and '/'
 * too when keep_slash.  Returns a malloc'ed string (caller frees) or NULL on ENOMEM. */
char *tfs_uri_encode(const char *s, bool keep_slash);

/* A printable, bounded rendering of an untrusted string for log lines: control characters,
 * DEL and backslash become \xNN (other bytes, UTF-8 included, pass as they are); what does not
 * fit in buf (size bufsz) is cut with "...".  Writes into buf and returns buf. */
const char *tfs_printable(const char *s, char *buf, size_t bufsz);

/* 64-bit hash of a byte string (xxHash3). */
uint64_t tfs_hash64(const void *data, size_t len, uint64_t seed);

/* ISO 8601 "2026-11-21T17:02:24.000Z" -> time_t; -EINVAL if malformed. */
int tfs_parse_iso8601(const char *s, time_t *out);

/* Cuts leading blanks (spaces, tabs) and trailing ones (and CR, LF) off s, in place; returns
 * the start. */
char *tfs_trim(char *s);

char *tfs_strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
