/*
 * policy.h - the brain of tierfs: what the file system sees of the bucket (metadata with a TTL),
 * and the chunked read path across the tiers.
 *
 * policy knows nothing of FUSE: fs/ drives it, and so can a unit test or a trace replayer.
 *
 * Contract:
 *  - Functions return 0 or -errno and are thread-safe unless stated otherwise.
 *  - Keys: a directory's key is the S3 prefix it stands for, ending in '/' (the root of a mount of
 *    the whole bucket is ""); a file's key is the object key.
 *  - Names: what S3 keys become in a directory listing is decided here (policy_name_ok and the
 *    listing rules in meta.c); fs/ shows exactly what a listing holds.
 *  - Reads: data is cut into chunks of chunk_size bytes of one object *version* (key, ETag,
 *    index).  A chunk of one version is never served as part of another.
 */
#ifndef TIERFS_POLICY_H
#define TIERFS_POLICY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>

#include "s3.h"
#include "ssd.h"

#define POLICY_DEFAULT_CHUNK_SIZE (1u << 20)
#define POLICY_MIN_CHUNK_SIZE (64u << 10)
#define POLICY_MAX_CHUNK_SIZE (64u << 20)
#define POLICY_DEFAULT_TTL_S 60
#define POLICY_DEFAULT_MEM_BYTES (64ull << 20)    /* chunk buffer (in-flight + readahead) */
#define POLICY_DEFAULT_READAHEAD_MAX (32ull << 20)
#define POLICY_DEFAULT_FETCH_THREADS 4
#define POLICY_MAX_READ (1u << 20)                /* the largest FUSE read */
#define POLICY_READ_MAX_CHUNKS (POLICY_MAX_READ / POLICY_MIN_CHUNK_SIZE + 2)
#define POLICY_DEFAULT_L2_SIZE (10ull << 30)
#define POLICY_DEFAULT_L2_MIN_FREE_PCT 10

struct policy_config {
	uint64_t chunk_size;
	uint64_t ttl_s;            /* freshness of metadata; TFS_TTL_NEVER for never */
	uint64_t mem_bytes;        /* cap of the in-memory chunk buffer */
	uint64_t readahead_max;    /* bytes ahead of a sequential reader; 0 disables readahead */
	unsigned fetch_threads;
	struct ssd_store *ssd;     /* the L2 store (not owned), or NULL for no L2 */
	uint64_t l2_size;          /* L2 capacity in bytes */
	uint64_t l2_min_free_pct;  /* free-space floor of the cache's file system, percent ... */
	uint64_t l2_min_free_bytes;/* ... or bytes, whichever is more */
};

struct policy_stats {
	_Atomic uint64_t chunk_hits, chunk_misses, chunk_waits, readahead_issued, readahead_used;
	_Atomic uint64_t listings, lookups_direct, stale_reads;
	_Atomic uint64_t l2_hits, l2_misses, l2_writes, l2_write_dropped, l2_evictions;
};

struct tfs_attr {
	bool is_dir;
	uint64_t size;
	time_t mtime;
	char etag[S3_ETAG_MAX];
};

struct tfs_dirent {
	char *name;
	struct tfs_attr attr;
};

/* An immutable snapshot of one directory, sorted by name, shared by reference. */
struct tfs_listing {
	_Atomic unsigned refs;
	uint64_t fetched_ms;       /* monotonic time of the listing */
	size_t n;
	struct tfs_dirent *ents;
};

struct policy;

/* Takes no ownership of s3, which must outlive the policy.  Starts the fetch threads. */
struct policy *policy_new(const struct policy_config *cfg, struct s3_client *s3, int *err);
/* Stops background fetches and writes what is queued for L2 (before a final stats line). */
void policy_quiesce(struct policy *p);
void policy_free(struct policy *p);
const struct policy_config *policy_config(const struct policy *p);
const struct policy_stats *policy_stats(const struct policy *p);

/* Whether a name taken from an S3 key can be a file name here: non-empty, not "." or "..",
 * at most NAME_MAX bytes, no '/'.  When not, *why says why (for the log). */
bool policy_name_ok(const char *name, size_t len, const char **why);

/* The listing of a directory, from the cache while fresh, else from S3.  The caller owns one
 * reference and drops it with policy_listing_put. */
int policy_list_dir(struct policy *p, const char *dir_key, struct tfs_listing **out);
void policy_listing_put(struct tfs_listing *l);

/* What name is in the directory dir_key: from a fresh cached listing, else asked of S3 directly
 * (HEAD of the object and a one-key listing of the prefix).  -ENOENT when nothing is there. */
int policy_lookup(struct policy *p, const char *dir_key, const char *name, struct tfs_attr *out);

/* Fresh attributes of the file key (HEAD). */
int policy_stat_file(struct policy *p, const char *key, struct tfs_attr *out);

/* L2 occupancy (0 when there is no L2) and a one-line summary of the statistics for the log. */
void policy_l2_usage(struct policy *p, uint64_t *used, uint64_t *entries);
void policy_stats_line(struct policy *p, char *buf, size_t n);

/* Tells policy that key is being opened at version etag: chunks of other versions are dropped
 * from L2. */
void policy_open_object(struct policy *p, const char *key, const char *etag);

/* Drops every cached listing (e.g. after S3 reported a change). */
void policy_forget_listings(struct policy *p);

/* ---- reads ---- */

/* One version of one object, as the reader saw it when it opened the file. */
struct policy_object {
	const char *key;
	const char *etag;
	uint64_t size;
};

/* Per open file: what the readahead knows of the reader.  Guarded by its own lock, so one
 * open file may be read by several threads at once. */
struct policy_stream {
	pthread_mutex_t lock;
	uint64_t next_off;      /* where a sequential reader reads next */
	uint64_t window;        /* readahead bytes, 0 when not sequential */
	uint64_t ra_end;        /* readahead has been issued up to this offset */
};
void policy_stream_init(struct policy_stream *s);
void policy_stream_destroy(struct policy_stream *s);

/* The bytes of one read: iovecs pointing into chunks the result holds references to. */
struct policy_read {
	struct iovec iov[POLICY_READ_MAX_CHUNKS];
	void *chunks[POLICY_READ_MAX_CHUNKS];
	int n;
	size_t bytes;
};

/* Reads [off, off+len) of the object, clipped at its size; len at most POLICY_MAX_READ.
 * -ESTALE when S3 now holds another version (the caller should refresh and tell the kernel).
 * On success the caller must call policy_read_release once it has used the iovecs. */
int policy_read(struct policy *p, const struct policy_object *o, struct policy_stream *s,
		uint64_t off, size_t len, struct policy_read *out);
void policy_read_release(struct policy *p, struct policy_read *r);

#endif
