/*
 * s3.h - L3: a small S3 client over libcurl with AWS Signature V4 (CURLOPT_AWS_SIGV4).
 *
 * Requests: HEAD, GET (whole or ranged, optionally conditional), PUT (optionally a conditional
 * create), DELETE, ListObjectsV2.
 *
 * Contract:
 *  - Every function returns 0 or -errno: -ENOENT (404 / NoSuchKey / NoSuchBucket), -EACCES (403),
 *    -ESTALE (412: the object no longer matches If-Match), -EINVAL (400), -EIO (anything else,
 *    including retries exhausted and the deadline passed).  Each failure is logged once, naming the
 *    key and the S3 error code; secrets never appear in a log line.
 *  - Every operation finishes within the configured deadline (timeout_ms), retries included:
 *    nothing hangs.  Retries use exponential backoff with full jitter on 5xx, 429, 503 SlowDown,
 *    connection errors, resets, timeouts and short bodies.
 *  - All functions are thread-safe.  Connections are reused: each request borrows a curl handle
 *    from a pool (handles keep their connections alive between requests) and returns it.
 *  - Memory returned in out-structures is owned by the caller and freed with the matching
 *    *_free() function or free().
 */
#ifndef TIERFS_S3_H
#define TIERFS_S3_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>

#define S3_ETAG_MAX 128 /* bytes, with quotes and NUL; longer ETags are refused */

#define S3_DEFAULT_REGION "us-east-1"
#define S3_DEFAULT_TIMEOUT_MS 20000    /* deadline of one operation, retries included */
#define S3_DEFAULT_CONNECT_TIMEOUT_MS 3000
#define S3_DEFAULT_RETRIES 6

struct s3_config {
	char *endpoint;      /* "http(s)://host[:port]", no trailing path; NULL means AWS */
	char *region;        /* signing region */
	char *bucket;
	char *access_key;    /* secret material: never logged */
	char *secret_key;
	char *session_token; /* may be NULL */
	bool path_style;     /* bucket in the path instead of the host name */
	bool anonymous;      /* no credentials: send unsigned requests */
	char *ca_file;       /* PEM bundle to trust for https, or NULL for the system's */
	unsigned timeout_ms;
	unsigned connect_timeout_ms;
	unsigned max_retries;
};

/* Request counters; updated with relaxed atomics, read at any time. */
struct s3_stats {
	_Atomic uint64_t requests_head, requests_get, requests_list, requests_put, requests_delete;
	_Atomic uint64_t bytes_up;           /* PUT bodies stored */
	_Atomic uint64_t bytes_down;         /* every response body */
	_Atomic uint64_t get_bytes;          /* object data (GET bodies) */
	_Atomic uint64_t errors, retries, not_modified;
	_Atomic uint64_t throttled;          /* 429 and 503 SlowDown answers (each retried) */
	_Atomic uint64_t arriving;           /* body bytes as they arrive (throughput, live) */
};

/* User metadata as s3fs and rclone write it (x-amz-meta-mode, -uid, -gid, -mtime): which of
 * the fields of struct s3_object a response carried. */
#define S3_META_MODE 0x1u
#define S3_META_UID 0x2u
#define S3_META_GID 0x4u
#define S3_META_MTIME 0x8u

struct s3_object {
	uint64_t size;
	time_t mtime;               /* Last-Modified */
	char etag[S3_ETAG_MAX];
	unsigned meta;              /* S3_META_* */
	unsigned mode;              /* x-amz-meta-mode & 07777 (decimal st_mode, or 0-prefixed octal) */
	uint32_t uid, gid;
	time_t meta_mtime;          /* x-amz-meta-mtime, whole seconds */
};

struct s3_client;

/* Takes a copy of cfg's strings.  Returns NULL and sets *err (-errno) on failure. */
struct s3_client *s3_client_new(const struct s3_config *cfg, int *err);
void s3_client_free(struct s3_client *c);
const struct s3_stats *s3_client_stats(const struct s3_client *c);
void s3_client_reset_stats(struct s3_client *c);
const char *s3_client_bucket(const struct s3_client *c);

int s3_head(struct s3_client *c, const char *key, struct s3_object *out);
/* HEAD with If-None-Match: *not_modified is set when S3 answers 304 (out is then untouched). */
int s3_head_if(struct s3_client *c, const char *key, const char *if_none_match,
	       struct s3_object *out, bool *not_modified);

struct s3_get {
	/* in */
	const char *key;
	bool ranged;                /* false: whole object */
	uint64_t offset, length;    /* the range, when ranged (length > 0) */
	const char *if_match;       /* ETag the object must still have (412 -> -ESTALE), or NULL */
	const char *if_none_match;  /* ETag we hold: 304 sets not_modified, or NULL */
	bool quiet_404;             /* a missing key is an expected answer (-ENOENT, no warning) */
	char *buf;                  /* caller's buffer of cap bytes; NULL: allocate (caller frees) */
	size_t cap;
	const struct iovec *iov;    /* or: scatter the body over these buffers (a ranged GET fills
				     * them exactly; a whole GET at most: len says how much, and a
				     * longer body fails with -EFBIG at once) */
	int iovcnt;
	uint64_t *iov_sums;         /* [iovcnt] or NULL: gets the XXH3-64 of each buffer's bytes,
				     * hashed as they arrive (while in the CPU's cache) */
	/* out */
	size_t len;                 /* bytes in buf */
	bool not_modified;
	unsigned throttled;         /* 429/503 answers before the final one (S3 asked to slow down) */
	struct s3_object obj;       /* size is the whole object's size, from Content-Range */
};

/* A ranged GET must return exactly the bytes asked for (clipped at the object's end), or it is
 * retried and finally fails with -EIO: a short or long body is never handed out. */
int s3_get(struct s3_client *c, struct s3_get *req);

struct s3_list_entry {
	char *key;
	uint64_t size;
	time_t mtime;
	char etag[S3_ETAG_MAX];
};

struct s3_list_page {
	struct s3_list_entry *objects;
	size_t nobjects;
	char **prefixes;        /* CommonPrefixes, full keys ending in the delimiter */
	size_t nprefixes;
	char *next_token;       /* NULL when this was the last page */
};

/* One ListObjectsV2 page.  token is NULL for the first page.  max_keys 0 means the server's
 * default (1000). */
/* Stores body (len bytes) as key, replacing any object of that name. */
int s3_put(struct s3_client *c, const char *key, const void *body, size_t len);
/* Stores body as key only if no object of that name exists (If-None-Match: *): -EEXIST when
 * one does (412, or 409: a concurrent create of it).  A server that ignores the condition
 * (s3rver; RGW and S3 honour it) stores it anyway and returns 0: a caller that relies on it
 * probes first.  A retried attempt may find its own first attempt's object: -EEXIST. */
int s3_put_new(struct s3_client *c, const char *key, const void *body, size_t len);
/* Deletes key; a key already absent is no error. */
int s3_delete(struct s3_client *c, const char *key);

int s3_list_page(struct s3_client *c, const char *prefix, const char *delimiter, const char *token,
		 unsigned max_keys, struct s3_list_page *out);
void s3_list_page_free(struct s3_list_page *p);

/* Parsers, exposed for tests and fuzzing (s3_xml.c).  Return 0 or -EINVAL on malformed XML. */
int s3_parse_list_xml(const char *xml, size_t len, struct s3_list_page *out);
/* Extracts <Code> and <Message> of an S3 error body into code/msg (may be empty strings). */
void s3_parse_error_xml(const char *xml, size_t len, char *code, size_t codesz, char *msg,
			size_t msgsz);

/* Credentials resolution (creds.c), AWS conventions, first match wins:
 * AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY(/AWS_SESSION_TOKEN) when no profile was asked for on the
 * command line, else the profile (option, then AWS_PROFILE, then "default") in
 * AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials.  Region: option, AWS_REGION,
 * AWS_DEFAULT_REGION, the profile's region in ~/.aws/config, then us-east-1.  Endpoint: option,
 * AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL.  Fills the corresponding cfg fields (malloc'ed) where
 * they are NULL.  Returns -ENOKEY when no credentials were found (cfg->anonymous stays false). */
int s3_resolve_credentials(struct s3_config *cfg, const char *profile_opt);
void s3_config_clear(struct s3_config *cfg);

#endif
