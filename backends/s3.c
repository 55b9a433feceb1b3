/*
 * s3.c - the S3 client: URL building, SigV4 through libcurl, retries with backoff and a deadline,
 * a pool of curl handles for connection reuse, and HTTP status -> errno mapping.
 *
 * Facts this file relies on (curl 7.88, see DESIGN.md): curl signs the path and the query string
 * exactly as written, so keys are percent-encoded here (RFC 3986, upper-case hex, '/' kept) and
 * query parameters are written sorted by name with encoded values; curl does not add
 * x-amz-content-sha256, so every request carries it; CURLOPT_PATH_AS_IS keeps "." and ".." in keys
 * from being squashed by curl's URL normalisation.
 */
#include "s3.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the request, not one malloc each */
#include <xxhash.h>
#include <xxh_x86dispatch.h>

#include "log.h"
#include "util.h"

#define POOL_MAX 256 /* the most GETs in flight (connections=) and a few more */
#define ERRBODY_MAX (64 * 1024)
#define LIST_BODY_MAX (32u << 20) /* a 1000-key page is at most a few MiB */
#define LOW_SPEED_TIME_S 5   /* an attempt that moves no byte for this long is retried */
#define BACKOFF_BASE_MS 50
#define BACKOFF_CAP_MS 2000
/* SHA-256 of the empty string: the payload hash of every body-less request. */
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* An easy handle, and the socket of the connection it keeps (curl tells the socket only when
 * it opens one: CURLINFO_ACTIVESOCKET answers only after a transfer). */
struct handle {
	CURL *h;
	curl_socket_t fd;
};

struct s3_client {
	struct s3_config cfg;   /* immutable after s3_client_new */
	char *base_url;         /* scheme://host[:port][/bucket], no trailing slash */
	char *sigv4;            /* "aws:amz:REGION:s3" */
	char *token_header;     /* "x-amz-security-token: ..." or NULL */
	pthread_mutex_t pool_lock; /* guards pool[] and npool */
	struct handle *pool[POOL_MAX];
	int npool;
	struct s3_stats stats;
};

/* The state of one request, shared by its attempts. */
struct request {
	const char *method;     /* "GET", "HEAD", "LIST", "PUT", "DELETE": for log lines, and the
				 * verb of PUT and DELETE */
	const char *key;        /* for log lines */
	char *url;
	struct curl_slist *headers;
	bool head;
	const char *range;      /* "a-b" or NULL */
	const char *body;       /* PUT: the body sent (body_len bytes) */
	size_t body_len;
	bool quiet_404;         /* a missing key is an expected answer: log at debug level */
	bool if_absent;         /* a conditional create: 412 (and 409, a concurrent create) is
				 * the expected -EEXIST, logged at debug level */
	unsigned throttled;     /* 429 and 503 answers (SlowDown) on the way */
	_Atomic uint64_t *arriving; /* the client's count of body bytes as they arrive */
	struct handle *h;       /* the handle running it */
	/* response, reset per attempt */
	long status;
	char *buf;
	size_t cap, len;
	bool own_buf, overflow;
	size_t max_body;        /* with own_buf, or a whole GET into iov: a longer body is refused
				 * at once (0: no limit) */
	const struct iovec *iov; /* scatter target instead of buf, when set */
	int iovcnt, iov_i;
	size_t iov_off;
	XXH3_state_t *sum;       /* the checksum of buffer iov_i so far, when the caller wants
				 * each buffer's (they fill in order: one state serves them all) */
	uint64_t *sums;          /* [iovcnt]: the caller's, set as each buffer fills */
	char *err;
	size_t errlen;
	struct s3_object obj;
	uint64_t content_length;
	bool have_length, have_total;
	char s3_code[64], s3_msg[256];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static bool host_is_ip_or_localhost(const char *host, size_t n)
{
	const char *colon = memchr(host, ':', n);
	if (colon && host[0] != '[')
		n = (size_t)(colon - host); /* without the port */
	if (n == 9 && strncasecmp(host, "localhost", 9) == 0)
		return true;
	if (n > 10 && strncasecmp(host + n - 10, ".localhost", 10) == 0)
		return false; /* already a virtual host name */
	if (n >= 9 && strncasecmp(host, "localhost", 9) == 0)
		return true;
	if (n && host[0] == '[')
		return true; /* IPv6 literal */
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)host[i]) && host[i] != '.')
			return false;
	return n > 0;
}

static bool bucket_needs_path_style(const char *bucket)
{
	for (const char *p = bucket; *p; p++)
		if (*p == '.' || isupper((unsigned char)*p) || *p == '_')
			return true;
	return false;
}

/* Builds base_url from the endpoint, bucket and addressing style. */
static int build_base_url(struct s3_client *c)
{
	const struct s3_config *cfg = &c->cfg;
	char *aws = NULL;
	const char *ep = cfg->endpoint;
	if (!ep) {
		aws = tfs_strdup_printf("https://s3.%s.amazonaws.com", cfg->region);
		if (!aws)
			return -ENOMEM;
		ep = aws;
	}
	const char *sep = strstr(ep, "://");
	if (!sep || (strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0)) {
		tfs_err("endpoint must start with http:// or https://");
		free(aws);
		return -EINVAL;
	}
	const char *host = sep + 3;
	size_t hostlen = strcspn(host, "/?#");
	if (hostlen == 0 || (host[hostlen] && strcmp(host + hostlen, "/") != 0)) {
		tfs_err("endpoint must be scheme://host[:port] with no path");
		free(aws);
		return -EINVAL;
	}
	/* Virtual-host style needs a DNS name the bucket can prefix: not an IP, not localhost, and
	 * a bucket name that is a valid host label (no dots, for TLS). */
	bool path_style = cfg->path_style || host_is_ip_or_localhost(host, hostlen) ||
			  bucket_needs_path_style(cfg->bucket);
	c->cfg.path_style = path_style;
	if (path_style)
		c->base_url = tfs_strdup_printf("%.*s%.*s/%s", (int)(host - ep), ep, (int)hostlen,
						host, cfg->bucket);
	else
		c->base_url = tfs_strdup_printf("%.*s%s.%.*s", (int)(host - ep), ep, cfg->bucket,
						(int)hostlen, host);
	free(aws);
	return c->base_url ? 0 : -ENOMEM;
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

struct s3_client *s3_client_new(const struct s3_config *cfg, int *err)
{
	struct s3_client *c = calloc(1, sizeof(*c));
	int ret = -ENOMEM;
	pthread_once(&curl_once, curl_init_once);
	if (!c)
		goto fail;
	c->cfg = *cfg;
	c->cfg.endpoint = dup_or_null(cfg->endpoint);
	c->cfg.region = strdup(cfg->region ? cfg->region : S3_DEFAULT_REGION);
	c->cfg.bucket = dup_or_null(cfg->bucket);
	c->cfg.access_key = dup_or_null(cfg->access_key);
	c->cfg.secret_key = dup_or_null(cfg->secret_key);
	c->cfg.session_token = dup_or_null(cfg->session_token);
	c->cfg.ca_file = dup_or_null(cfg->ca_file);
	if (!c->cfg.timeout_ms)
		c->cfg.timeout_ms = S3_DEFAULT_TIMEOUT_MS;
	if (!c->cfg.connect_timeout_ms)
		c->cfg.connect_timeout_ms = S3_DEFAULT_CONNECT_TIMEOUT_MS;
	pthread_mutex_init(&c->pool_lock, NULL);
	if (!c->cfg.region || !c->cfg.bucket)
		goto fail_free;
	if ((ret = build_base_url(c)) < 0)
		goto fail_free;
	ret = -ENOMEM;
	if (!c->cfg.anonymous) {
		if (!c->cfg.access_key || !c->cfg.secret_key) {
			ret = -ENOKEY;
			goto fail_free;
		}
		c->sigv4 = tfs_strdup_printf("aws:amz:%s:s3", c->cfg.region);
		if (!c->sigv4)
			goto fail_free;
		if (c->cfg.session_token) {
			c->token_header =
				tfs_strdup_printf("x-amz-security-token: %s", c->cfg.session_token);
			if (!c->token_header)
				goto fail_free;
		}
	}
	return c;
fail_free:
	s3_client_free(c);
	c = NULL;
fail:
	*err = ret;
	return NULL;
}

void s3_client_free(struct s3_client *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->npool; i++) {
		curl_easy_cleanup(c->pool[i]->h);
		free(c->pool[i]);
	}
	pthread_mutex_destroy(&c->pool_lock);
	free(c->base_url);
	free(c->sigv4);
	if (c->token_header) {
		explicit_bzero(c->token_header, strlen(c->token_header));
		free(c->token_header);
	}
	s3_config_clear(&c->cfg);
	free(c);
}

const struct s3_stats *s3_client_stats(const struct s3_client *c) { return &c->stats; }
const char *s3_client_bucket(const struct s3_client *c) { return c->cfg.bucket; }

void s3_client_reset_stats(struct s3_client *c)
{
	_Atomic uint64_t *f = (_Atomic uint64_t *)&c->stats;
	for (size_t i = 0; i < sizeof(c->stats) / sizeof(uint64_t); i++)
		atomic_store_explicit(&f[i], 0, memory_order_relaxed);
}

static struct handle *pool_get(struct s3_client *c)
{
	struct handle *h = NULL;
	pthread_mutex_lock(&c->pool_lock);
	if (c->npool > 0)
		h = c->pool[--c->npool];
	pthread_mutex_unlock(&c->pool_lock);
	if (!h && (h = malloc(sizeof(*h)))) {
		h->fd = CURL_SOCKET_BAD;
		if (!(h->h = curl_easy_init())) {
			free(h);
			h = NULL;
		}
	}
	return h;
}

static void pool_put(struct s3_client *c, struct handle *h)
{
	pthread_mutex_lock(&c->pool_lock);
	if (c->npool < POOL_MAX) {
		c->pool[c->npool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&c->pool_lock);
	if (h) {
		curl_easy_cleanup(h->h);
		free(h);
	}
}

static int on_sockopt(void *arg, curl_socket_t fd, curlsocktype purpose)
{
	(void)purpose;
	((struct handle *)arg)->fd = fd;
	return CURL_SOCKOPT_OK;
}

/* ACKs what arrived at once, and what arrives next.  On a connection kept alive, Linux
 * delays ACKs (by 40 ms) once it sees requests and answers take turns, and a server that
 * writes an answer in pieces without TCP_NODELAY (Ceph RGW does) holds its last small piece
 * back (Nagle) until its earlier ones are ACKed: every GET on a reused connection then ended
 * 40 ms late (a cold read's first byte took 55 ms instead of 15 from RGW on loopback).  The
 * kernel re-enters that mode at the next request, so this is asked as the answer arrives. */
static void quick_ack(struct request *r)
{
	int one = 1;
	if (r->h->fd != CURL_SOCKET_BAD)
		(void)setsockopt(r->h->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct request *r = arg;
	size_t n = size * nmemb;
	quick_ack(r);
	if (r->status == 0 || r->status >= 300) {
		/* An error body: keep the first ERRBODY_MAX bytes for the code and message. */
		if (r->errlen < ERRBODY_MAX) {
			size_t take = n < ERRBODY_MAX - r->errlen ? n : ERRBODY_MAX - r->errlen;
			if (!r->err)
				r->err = malloc(ERRBODY_MAX + 1);
			if (r->err) {
				memcpy(r->err + r->errlen, data, take);
				r->errlen += take;
			}
		}
		return n;
	}
	atomic_fetch_add_explicit(r->arriving, n, memory_order_relaxed);
	if (r->iov) {
		size_t left = n;
		while (left) {
			if (r->iov_i >= r->iovcnt) {
				r->overflow = true;
				return 0;
			}
			const struct iovec *v = &r->iov[r->iov_i];
			size_t take = v->iov_len - r->iov_off;
			if (take > left)
				take = left;
			memcpy((char *)v->iov_base + r->iov_off, data + (n - left), take);
			if (r->sum) /* while the bytes are in the cache */
				XXH3_64bits_update_dispatch(r->sum, (char *)v->iov_base + r->iov_off,
							    take);
			r->iov_off += take;
			left -= take;
			if (r->iov_off == v->iov_len) {
				if (r->sum) {
					r->sums[r->iov_i] = XXH3_64bits_digest(r->sum);
					XXH3_64bits_reset(r->sum);
				}
				r->iov_i++;
				r->iov_off = 0;
			}
		}
		r->len += n;
		return n;
	}
	if (r->max_body && r->len + n > r->max_body) {
		r->overflow = true;
		return 0;
	}
	if (r->len + n > r->cap) {
		if (!r->own_buf) {
			r->overflow = true; /* longer than asked for: a broken response */
			return 0;
		}
		size_t ncap = r->cap ? r->cap * 2 : 64 * 1024;
		while (ncap < r->len + n)
			ncap *= 2;
		char *nb = realloc(r->buf, ncap);
		if (!nb)
			return 0;
		r->buf = nb;
		r->cap = ncap;
	}
	memcpy(r->buf + r->len, data, n);
	r->len += n;
	return n;
}

static void strip_copy(char *dst, size_t dstsz, const char *src, size_t n)
{
	while (n && isspace((unsigned char)*src))
		src++, n--;
	while (n && isspace((unsigned char)src[n - 1]))
		n--;
	if (n >= dstsz)
		n = dstsz - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* An unsigned decimal (or 0x/0-prefixed) number that is the whole of v, within max. */
static bool meta_number(const char *v, unsigned long long max, bool frac_ok,
			unsigned long long *out)
{
	char *end;
	if (!isdigit((unsigned char)v[0]))
		return false;
	errno = 0;
	unsigned long long n = strtoull(v, &end, frac_ok ? 10 : 0);
	if (frac_ok && *end == '.') /* rclone writes seconds with a fraction */
		for (end++; isdigit((unsigned char)*end); end++)
			;
	if (errno || *end || n > max)
		return false;
	*out = n;
	return true;
}

/* One x-amz-meta-NAME header; values that do not parse are ignored (the mount's defaults). */
static void meta_header(struct s3_object *o, const char *name, size_t nlen, const char *v)
{
	unsigned long long n;
	if (nlen == 4 && strncasecmp(name, "mode", 4) == 0 && meta_number(v, 0xFFFFFFFFu, false, &n)) {
		o->mode = (unsigned)n & 07777;
		o->meta |= S3_META_MODE;
	} else if (nlen == 3 && strncasecmp(name, "uid", 3) == 0 &&
		   meta_number(v, 0xFFFFFFFEu, false, &n)) {
		o->uid = (uint32_t)n;
		o->meta |= S3_META_UID;
	} else if (nlen == 3 && strncasecmp(name, "gid", 3) == 0 &&
		   meta_number(v, 0xFFFFFFFEu, false, &n)) {
		o->gid = (uint32_t)n;
		o->meta |= S3_META_GID;
	} else if (nlen == 5 && strncasecmp(name, "mtime", 5) == 0 &&
		   meta_number(v, (1ull << 40), true, &n)) {
		o->meta_mtime = (time_t)n;
		o->meta |= S3_META_MTIME;
	}
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	struct request *r = arg;
	size_t n = size * nmemb;
	char val[S3_ETAG_MAX + 64];
	if (n <= 2 && (n == 0 || data[0] == '\r' || data[0] == '\n'))
		quick_ack(r); /* the headers' end: the body may be held back (quick_ack) */
	const char *colon = memchr(data, ':', n);

	if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
		/* A new response (e.g. after 100-continue): forget the previous headers. */
		r->have_length = r->have_total = false;
		r->obj.etag[0] = '\0';
		r->obj.meta = 0;
		char line[64];
		strip_copy(line, sizeof(line), data, n);
		const char *sp = strchr(line, ' ');
		r->status = sp ? strtol(sp + 1, NULL, 10) : 0;
		return n;
	}
	if (!colon)
		return n;
	size_t nlen = (size_t)(colon - data);
	strip_copy(val, sizeof(val), colon + 1, n - nlen - 1);
	if (nlen == 4 && strncasecmp(data, "etag", 4) == 0) {
		size_t vl = strlen(val);
		if (vl < sizeof(r->obj.etag))
			memcpy(r->obj.etag, val, vl + 1);
	} else if (nlen == 13 && strncasecmp(data, "last-modified", 13) == 0) {
		time_t t = curl_getdate(val, NULL);
		if (t != -1)
			r->obj.mtime = t;
	} else if (nlen > 11 && strncasecmp(data, "x-amz-meta-", 11) == 0) {
		meta_header(&r->obj, data + 11, nlen - 11, val);
	} else if (nlen == 14 && strncasecmp(data, "content-length", 14) == 0) {
		r->content_length = strtoull(val, NULL, 10);
		r->have_length = true;
	} else if (nlen == 13 && strncasecmp(data, "content-range", 13) == 0) {
		const char *slash = strchr(val, '/');
		if (slash && isdigit((unsigned char)slash[1])) {
			r->obj.size = strtoull(slash + 1, NULL, 10);
			r->have_total = true;
		}
	}
	return n;
}

static bool curl_error_is_transient(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_WRITE_ERROR: /* our callback refused an over-long body */
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return true;
	default:
		return false;
	}
}

static bool status_is_transient(long status)
{
	return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

static int status_to_errno(long status)
{
	switch (status) {
	case 400: return -EINVAL;
	case 403: return -EACCES;
	case 404: return -ENOENT;
	case 412: return -ESTALE;
	case 416: return -EINVAL;
	default: return -EIO;
	}
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = { .tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Full jitter (a uniformly random delay up to the exponential bound), as AWS recommends. */
static uint64_t backoff_ms(unsigned attempt)
{
	uint64_t bound = BACKOFF_BASE_MS << (attempt < 10 ? attempt : 10);
	if (bound > BACKOFF_CAP_MS)
		bound = BACKOFF_CAP_MS;
	static _Thread_local unsigned seed;
	if (!seed)
		seed = (unsigned)tfs_now_ns() ^ (unsigned)(uintptr_t)&seed;
	return bound / 2 + (uint64_t)rand_r(&seed) % (bound / 2 + 1);
}

static void setup_handle(struct s3_client *c, struct handle *hd, struct request *r,
			 long timeout_ms)
{
	CURL *h = hd->h;
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, r->url);
	curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	long cto = (long)c->cfg.connect_timeout_ms < timeout_ms ? (long)c->cfg.connect_timeout_ms
								: timeout_ms;
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, cto);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)LOW_SPEED_TIME_S);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 256L * 1024);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "tierfs/" "0.1");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, r->headers);
	r->arriving = &c->stats.arriving;
	r->h = hd;
	curl_easy_setopt(h, CURLOPT_SOCKOPTFUNCTION, on_sockopt);
	curl_easy_setopt(h, CURLOPT_SOCKOPTDATA, hd);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
	if (r->head)
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	if (strcmp(r->method, "PUT") == 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
	} else if (strcmp(r->method, "DELETE") == 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
	}
	if (r->range)
		curl_easy_setopt(h, CURLOPT_RANGE, r->range);
	if (c->cfg.ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->cfg.ca_file);
	if (!c->cfg.anonymous) {
		curl_easy_setopt(h, CURLOPT_AWS_SIGV4, c->sigv4);
		curl_easy_setopt(h, CURLOPT_USERNAME, c->cfg.access_key);
		curl_easy_setopt(h, CURLOPT_PASSWORD, c->cfg.secret_key);
	}
}

static void reset_response(struct request *r)
{
	r->status = 0;
	r->len = 0;
	r->iov_i = 0;
	r->iov_off = 0;
	r->overflow = false;
	r->errlen = 0;
	if (r->sum)
		XXH3_64bits_reset(r->sum);
	r->have_length = r->have_total = false;
	memset(&r->obj, 0, sizeof(r->obj));
	r->s3_code[0] = r->s3_msg[0] = '\0';
}

/*
 * Runs the request with retries until success, a final answer, or the deadline.  expect_len is
 * the exact body length a ranged GET must deliver (0: check against Content-Length only).
 */
static int perform(struct s3_client *c, struct request *r, uint64_t expect_len)
{
	uint64_t deadline = tfs_now_ms() + c->cfg.timeout_ms;
	char kbuf[160];
	const char *why = "";
	char whybuf[160];
	int ret = -EIO;

	for (unsigned attempt = 0;; attempt++) {
		uint64_t now = tfs_now_ms();
		if (now >= deadline) {
			why = "deadline passed";
			break;
		}
		struct handle *h = pool_get(c);
		if (!h)
			return -ENOMEM;
		reset_response(r);
		setup_handle(c, h, r, (long)(deadline - now));
		CURLcode rc = curl_easy_perform(h->h);
		long status = 0;
		curl_easy_getinfo(h->h, CURLINFO_RESPONSE_CODE, &status);
		pool_put(c, h);
		r->status = status;

		if (rc == CURLE_OK && status >= 200 && status < 300) {
			bool short_body = false;
			if (!r->head) {
				if (expect_len && r->len != expect_len)
					short_body = true;
				else if (r->have_length && r->len != r->content_length)
					short_body = true;
			}
			if (!short_body) {
				atomic_fetch_add_explicit(&c->stats.bytes_down, r->len,
							  memory_order_relaxed);
				if (!r->have_total)
					r->obj.size = r->have_length ? r->content_length : r->len;
				return 0;
			}
			snprintf(whybuf, sizeof(whybuf), "body of %zu bytes, expected %llu", r->len,
				 (unsigned long long)(expect_len ? expect_len : r->content_length));
			why = whybuf;
		} else if (rc == CURLE_OK && status == 304) {
			return 1;
		} else if (rc == CURLE_OK) {
			if (r->errlen)
				s3_parse_error_xml(r->err, r->errlen, r->s3_code, sizeof(r->s3_code),
						   r->s3_msg, sizeof(r->s3_msg));
			if (!status_is_transient(status)) {
				ret = status_to_errno(status);
				if (r->if_absent && (status == 412 || status == 409)) {
					tfs_debug("s3: %s '%s': HTTP %ld, it exists", r->method,
						  tfs_printable(r->key, kbuf, sizeof(kbuf)), status);
					return -EEXIST;
				}
				if (!r->s3_code[0] && status == 404)
					snprintf(r->s3_code, sizeof(r->s3_code), "NoSuchKey");
				char cbuf[96], mbuf[300];
				if (ret == -ENOENT && r->quiet_404)
					tfs_debug("s3: %s '%s': HTTP 404 %s", r->method,
						  tfs_printable(r->key, kbuf, sizeof(kbuf)), r->s3_code);
				else
					tfs_warn("s3: %s '%s' failed: HTTP %ld %s%s%s", r->method,
						 tfs_printable(r->key, kbuf, sizeof(kbuf)), status,
						 tfs_printable(r->s3_code, cbuf, sizeof(cbuf)),
						 r->s3_msg[0] ? ": " : "",
						 tfs_printable(r->s3_msg, mbuf, sizeof(mbuf)));
				if (ret != -ENOENT)
					atomic_fetch_add_explicit(&c->stats.errors, 1,
								  memory_order_relaxed);
				return ret;
			}
			snprintf(whybuf, sizeof(whybuf), "HTTP %ld %s", status, r->s3_code);
			why = whybuf;
			if (status == 429 || status == 503) {
				r->throttled++;
				atomic_fetch_add_explicit(&c->stats.throttled, 1,
							  memory_order_relaxed);
			}
		} else {
			if (rc == CURLE_WRITE_ERROR && r->overflow && r->max_body) {
				tfs_warn("s3: %s '%s' failed: response larger than %zu bytes",
					 r->method, tfs_printable(r->key, kbuf, sizeof(kbuf)),
					 r->max_body);
				atomic_fetch_add_explicit(&c->stats.errors, 1, memory_order_relaxed);
				return r->iov ? -EFBIG : -EIO;
			}
			if (!curl_error_is_transient(rc)) {
				tfs_warn("s3: %s '%s' failed: %s", r->method,
					 tfs_printable(r->key, kbuf, sizeof(kbuf)),
					 curl_easy_strerror(rc));
				atomic_fetch_add_explicit(&c->stats.errors, 1, memory_order_relaxed);
				return -EIO;
			}
			snprintf(whybuf, sizeof(whybuf), "%s", curl_easy_strerror(rc));
			why = whybuf;
		}

		if (attempt >= c->cfg.max_retries)
			break;
		uint64_t wait = backoff_ms(attempt);
		now = tfs_now_ms();
		if (now + wait >= deadline) {
			why = "deadline passed";
			break;
		}
		atomic_fetch_add_explicit(&c->stats.retries, 1, memory_order_relaxed);
		tfs_debug("s3: %s '%s': %s; retry %u in %llu ms", r->method,
			  tfs_printable(r->key, kbuf, sizeof(kbuf)), why, attempt + 1,
			  (unsigned long long)wait);
		sleep_ms(wait);
	}
	atomic_fetch_add_explicit(&c->stats.errors, 1, memory_order_relaxed);
	tfs_warn("s3: %s '%s' failed after retries: %s", r->method,
		 tfs_printable(r->key, kbuf, sizeof(kbuf)), why);
	return ret;
}

/* Common headers: payload hash (of the empty body, or unsigned for a body), optional session
 * token, and extra (may be NULL). */
static int build_headers(struct s3_client *c, struct request *r, const char *h1, const char *h2)
{
	struct curl_slist *l = NULL, *t;
	const char *hs[] = { r->body ? "x-amz-content-sha256: UNSIGNED-PAYLOAD"
				     : "x-amz-content-sha256: " EMPTY_SHA256,
			     c->token_header, h1, h2 };
	for (size_t i = 0; i < sizeof(hs) / sizeof(hs[0]); i++) {
		if (!hs[i])
			continue;
		t = curl_slist_append(l, hs[i]);
		if (!t) {
			curl_slist_free_all(l);
			return -ENOMEM;
		}
		l = t;
	}
	r->headers = l;
	return 0;
}

static char *object_url(struct s3_client *c, const char *key)
{
	char *enc = tfs_uri_encode(key, true);
	if (!enc)
		return NULL;
	char *url = tfs_strdup_printf("%s/%s", c->base_url, enc);
	free(enc);
	return url;
}

static void request_clear(struct request *r)
{
	free(r->url);
	curl_slist_free_all(r->headers);
	free(r->err);
	free(r->sum);
}

static bool etag_matches(const char *want, const char *got)
{
	/* Servers differ in quoting; compare the ETag without quotes or a W/ prefix. */
	if (strncmp(want, "W/", 2) == 0)
		want += 2;
	if (strncmp(got, "W/", 2) == 0)
		got += 2;
	size_t wl = strlen(want), gl = strlen(got);
	if (wl >= 2 && want[0] == '"' && want[wl - 1] == '"')
		want++, wl -= 2;
	if (gl >= 2 && got[0] == '"' && got[gl - 1] == '"')
		got++, gl -= 2;
	return wl == gl && memcmp(want, got, wl) == 0;
}

int s3_head_if(struct s3_client *c, const char *key, const char *if_none_match,
	       struct s3_object *out, bool *not_modified)
{
	struct request r = { .method = "HEAD", .key = key, .head = true, .quiet_404 = true };
	char *h = NULL;
	int ret = -ENOMEM;
	if (not_modified)
		*not_modified = false;
	atomic_fetch_add_explicit(&c->stats.requests_head, 1, memory_order_relaxed);
	if (if_none_match && !(h = tfs_strdup_printf("If-None-Match: %s", if_none_match)))
		goto out;
	if (!(r.url = object_url(c, key)) || build_headers(c, &r, h, NULL) < 0)
		goto out;
	ret = perform(c, &r, 0);
	if (ret == 0)
		*out = r.obj;
	else if (ret == 1) {
		atomic_fetch_add_explicit(&c->stats.not_modified, 1, memory_order_relaxed);
		if (not_modified)
			*not_modified = true;
		ret = 0;
	}
out:
	free(h);
	request_clear(&r);
	return ret;
}

int s3_head(struct s3_client *c, const char *key, struct s3_object *out)
{
	return s3_head_if(c, key, NULL, out, NULL);
}

int s3_get(struct s3_client *c, struct s3_get *g)
{
	struct request r = { .method = "GET", .key = g->key, .quiet_404 = g->quiet_404 };
	char range[64], *h1 = NULL, *h2 = NULL;
	int ret = -ENOMEM;
	uint64_t expect = 0;

	atomic_fetch_add_explicit(&c->stats.requests_get, 1, memory_order_relaxed);
	g->len = 0;
	g->throttled = 0;
	g->not_modified = false;
	if (g->ranged) {
		if (g->length == 0)
			return -EINVAL;
		snprintf(range, sizeof(range), "%llu-%llu", (unsigned long long)g->offset,
			 (unsigned long long)(g->offset + g->length - 1));
		r.range = range;
		expect = g->length;
	}
	if (g->if_match && !(h1 = tfs_strdup_printf("If-Match: %s", g->if_match)))
		goto out;
	if (g->if_none_match && !(h2 = tfs_strdup_printf("If-None-Match: %s", g->if_none_match)))
		goto out;
	if (!(r.url = object_url(c, g->key)) || build_headers(c, &r, h1, h2) < 0)
		goto out;
	/* a whole GET into buffers: a body longer than they hold fails at once (no retry) */
	for (int i = 0; g->iov && !g->ranged && i < g->iovcnt; i++)
		r.max_body += g->iov[i].iov_len;
	r.iov = g->iov;
	r.iovcnt = g->iovcnt;
	if (g->iov_sums && g->iovcnt > 0) {
		if (!(r.sum = aligned_alloc(64, sizeof(*r.sum)))) {
			ret = -ENOMEM;
			goto out;
		}
		r.sums = g->iov_sums;
	}
	r.buf = g->buf;
	r.cap = g->buf ? g->cap : 0;
	r.own_buf = !g->buf && !g->iov;
	ret = perform(c, &r, expect);
	g->throttled = r.throttled;
	if (ret == 1) {
		atomic_fetch_add_explicit(&c->stats.not_modified, 1, memory_order_relaxed);
		g->not_modified = true;
		ret = 0;
	} else if (ret == 0) {
		if (g->if_match && r.obj.etag[0] && !etag_matches(g->if_match, r.obj.etag)) {
			/* The server ignored If-Match (some do): the object changed under us. */
			char kbuf[160];
			tfs_info("s3: '%s' changed during the read (ETag %s, expected %s)",
				 tfs_printable(g->key, kbuf, sizeof(kbuf)), r.obj.etag, g->if_match);
			ret = -ESTALE;
		}
		/* A ranged GET that was answered 200 (range ignored) with the whole object. */
		if (ret == 0 && g->ranged && r.len != g->length)
			ret = -EIO;
	}
	if (ret == 0) {
		atomic_fetch_add_explicit(&c->stats.get_bytes, r.len, memory_order_relaxed);
		/* a buffer not filled to its end (a whole GET's last): what it got */
		for (int i = r.iov_i; r.sum && i < r.iovcnt; i++) {
			g->iov_sums[i] = XXH3_64bits_digest(r.sum);
			XXH3_64bits_reset(r.sum);
		}
		g->obj = r.obj;
		g->len = r.len;
		if (r.own_buf)
			g->buf = r.buf, g->cap = r.cap;
	} else if (r.own_buf) {
		free(r.buf);
	}
out:
	free(h1);
	free(h2);
	request_clear(&r);
	return ret;
}

static int put(struct s3_client *c, const char *key, const void *body, size_t len,
	       bool if_absent)
{
	/* a response body (servers send none, or a little XML) is read and dropped */
	struct request r = { .method = "PUT", .key = key, .body = body ? body : "",
			     .body_len = len, .own_buf = true, .max_body = 65536,
			     .if_absent = if_absent };
	int ret = -ENOMEM;
	atomic_fetch_add_explicit(&c->stats.requests_put, 1, memory_order_relaxed);
	if ((r.url = object_url(c, key)) &&
	    build_headers(c, &r, "Content-Type: application/octet-stream",
			  if_absent ? "If-None-Match: *" : NULL) == 0)
		ret = perform(c, &r, 0);
	if (ret == 0)
		atomic_fetch_add_explicit(&c->stats.bytes_up, len, memory_order_relaxed);
	free(r.buf);
	request_clear(&r);
	return ret;
}

int s3_put(struct s3_client *c, const char *key, const void *body, size_t len)
{
	return put(c, key, body, len, false);
}

int s3_put_new(struct s3_client *c, const char *key, const void *body, size_t len)
{
	return put(c, key, body, len, true);
}

int s3_delete(struct s3_client *c, const char *key)
{
	struct request r = { .method = "DELETE", .key = key, .quiet_404 = true, .own_buf = true,
			     .max_body = 65536 };
	int ret = -ENOMEM;
	atomic_fetch_add_explicit(&c->stats.requests_delete, 1, memory_order_relaxed);
	if ((r.url = object_url(c, key)) && build_headers(c, &r, NULL, NULL) == 0)
		ret = perform(c, &r, 0);
	free(r.buf);
	request_clear(&r);
	return ret == -ENOENT ? 0 : ret;
}

int s3_list_page(struct s3_client *c, const char *prefix, const char *delimiter, const char *token,
		 unsigned max_keys, struct s3_list_page *out)
{
	struct request r = { .method = "LIST", .key = prefix, .quiet_404 = false };
	char *eprefix = NULL, *edelim = NULL, *etoken = NULL, mk[32] = "";
	int ret = -ENOMEM;

	memset(out, 0, sizeof(*out));
	atomic_fetch_add_explicit(&c->stats.requests_list, 1, memory_order_relaxed);
	if (!(eprefix = tfs_uri_encode(prefix ? prefix : "", false)) ||
	    !(edelim = tfs_uri_encode(delimiter ? delimiter : "", false)) ||
	    (token && !(etoken = tfs_uri_encode(token, false))))
		goto out;
	if (max_keys)
		snprintf(mk, sizeof(mk), "&max-keys=%u", max_keys);
	/* Parameters sorted by name, values encoded: curl signs the query exactly as written. */
	/* encoding-type=url lets S3 return keys that XML 1.0 cannot carry (control characters);
	 * the parser decodes only when the response says it was honoured. */
	r.url = tfs_strdup_printf("%s/?%s%s%s%s%s%sencoding-type=url&list-type=2%s&prefix=%s",
				  c->base_url, etoken ? "continuation-token=" : "",
				  etoken ? etoken : "", etoken ? "&" : "",
				  delimiter ? "delimiter=" : "", delimiter ? edelim : "",
				  delimiter ? "&" : "", mk, eprefix);
	if (!r.url)
		goto out;
	if (build_headers(c, &r, NULL, NULL) < 0)
		goto out;
	r.own_buf = true;
	r.max_body = LIST_BODY_MAX;
	ret = perform(c, &r, 0);
	if (ret == 0) {
		ret = s3_parse_list_xml(r.buf, r.len, out);
		if (ret < 0) {
			char kbuf[160];
			tfs_warn("s3: LIST '%s': malformed ListObjectsV2 response (%zu bytes)",
				 tfs_printable(prefix, kbuf, sizeof(kbuf)), r.len);
			ret = -EIO;
		}
	} else if (ret > 0) {
		ret = -EIO;
	}
	free(r.buf);
out:
	free(eprefix);
	free(edelim);
	free(etoken);
	request_clear(&r);
	return ret;
}
