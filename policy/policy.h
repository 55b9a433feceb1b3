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

#include "cattr.h"
#include "conc.h"
#include "s3.h"
#include "shared.h"
#include "ssd.h"
#include "tier.h"

#define POLICY_DEFAULT_CHUNK_SIZE (1u << 20)
#define POLICY_MIN_CHUNK_SIZE (64u << 10)
#define POLICY_MAX_CHUNK_SIZE (64u << 20)
#define POLICY_DEFAULT_TTL_S 60
#define POLICY_DEFAULT_MEM_BYTES (512ull << 20)   /* chunk buffer (in-flight + readahead) */
#define POLICY_DEFAULT_READAHEAD_MAX (256ull << 20)
#define POLICY_DEFAULT_PREFETCH_WINDOW_S 60
#define POLICY_DEFAULT_PREFETCH_INTERVAL_MS 2000
#define POLICY_DEFAULT_PREFETCH_BUDGET (256ull << 20)
#define POLICY_DEFAULT_CONNECTIONS 64 /* a 10 Gb/s link at 20 MB/s per connection */
#define POLICY_MAX_CONNECTIONS 256
#define POLICY_MAX_READ (1u << 20)                /* the largest FUSE read */
#define POLICY_READ_MAX_CHUNKS (POLICY_MAX_READ / POLICY_MIN_CHUNK_SIZE + 2)
#define POLICY_DEFAULT_L2_SIZE (10ull << 30)
#define POLICY_DEFAULT_L2_MIN_FREE_PCT 10

struct policy_config {
	uint64_t chunk_size;
	uint64_t ttl_s;            /* the mount's default TTL; TFS_TTL_NEVER for never */
	const char *root_key;      /* the mount's root prefix ("" or ending in '/'), not owned */
	uint64_t mem_bytes;        /* cap of the in-memory chunk buffer */
	uint64_t readahead_max;    /* bytes ahead of a sequential reader; 0 disables readahead */
	bool prefetch;             /* all three predictors on (readahead, interval, directory) */
	uint64_t prefetch_window_ms; /* interval predictor: act on accesses predicted this soon */
	uint64_t prefetch_interval_ms; /* the interval predictor's pass runs this often */
	uint64_t prefetch_budget;  /* most bytes prefetched and not yet read (in flight or held) */
	bool prefetch_manual;      /* no predictor thread: the caller runs policy_prefetch_pass */
	unsigned connections;      /* most S3 GETs in flight (the gate's cap, conc.h) and fetch
				    * threads; 0: no fetch threads (a test drives the queue) */
	uint64_t l1_size;          /* RAM tier capacity; 0 for no L1 */
	uint64_t promote_after;    /* accesses before a chunk enters L1 */
	uint64_t demote_after_ms;  /* an L1 chunk idle this long leaves L1 */
	uint64_t demote_interval_ms;
	uint64_t (*now_ms)(void);  /* monotonic clock in ms (tests inject one); NULL: the real one */
	struct ssd_store *ssd;     /* the L2 store (not owned), or NULL for no L2 */
	uint64_t l2_size;          /* L2 capacity in bytes */
	uint64_t l2_min_free_pct;  /* free-space floor of the cache's file system, percent ... */
	uint64_t l2_min_free_bytes;/* ... or bytes, whichever is more */
	uint64_t l2_upkeep_interval_ms; /* L2's free-space check runs this often (0: 5 s) */
	uint64_t l2_write_delay_ms;  /* tests: each L2 write takes this much longer (a slow disk) */
	bool object_meta;          /* read S3 user metadata (modes, owners, times) */
	/* The shared tier (shared.h) between L2 and S3, when shared_s3 is set: the cache
	 * bucket's client (owned by the policy from policy_new on, even when it fails), the
	 * prefix in it, the source's identity, the fleet key (or NULL). */
	struct s3_client *shared_s3;
	const char *shared_prefix, *shared_source;
	const unsigned char *shared_key;
	size_t shared_key_len;
	unsigned shared_breaker_ms;  /* tests: a shorter breaker (0: the default) */
	uint64_t shared_queue_bytes; /* tests: a shorter write queue (0: the default) */
	unsigned shared_slow_ms;     /* an answer slower than this counts as a failure */
	unsigned shared_wait_ms;     /* the longest wait for another machine's fetch (0: none) */
};

/* Latency histograms: fixed buckets, upper bounds in microseconds; the last is +Inf. */
#define POLICY_LAT_BUCKETS 16
extern const uint64_t policy_lat_bounds_us[POLICY_LAT_BUCKETS - 1];

struct policy_lat {
	_Atomic uint64_t bucket[POLICY_LAT_BUCKETS];
	_Atomic uint64_t count, sum_us;
};

/* The three predictors that prefetch. */
enum policy_pf_src { PF_NONE, PF_READAHEAD, PF_INTERVAL, PF_DIRORDER, PF_NSRC };
extern const char *const policy_pf_names[PF_NSRC];

/* Prefetched chunks of one predictor: issued (fetched ahead of any reader), used (then read by
 * a reader, from memory or L2), wasted (left the cache unread). */
struct policy_pf_stats {
	_Atomic uint64_t issued, used, wasted;
};

struct policy_stats {
	_Atomic uint64_t chunk_hits, chunk_misses, chunk_waits;
	struct policy_pf_stats pf[PF_NSRC];    /* [PF_NONE] unused */
	_Atomic uint64_t demand_s3_chunks;     /* chunks readers had to fetch from S3 themselves */
	_Atomic uint64_t pf_revalidations;     /* the interval predictor's conditional HEADs */
	_Atomic uint64_t l1_hits, l1_misses, promotions, demotions, l1_evictions;
	_Atomic uint64_t demote_passes;        /* L1 demotion passes run */
	_Atomic uint64_t warm_files_total, warm_files_done, warm_bytes, warm_errors;
	_Atomic uint64_t warm_running;
	/* gauges, kept by a reset: prefetched bytes in flight, and held (memory, L2) unread */
	_Atomic uint64_t pf_inflight_bytes, pf_unread_bytes;
	struct policy_lat lat[POLICY_NTIERS];  /* time to serve a chunk, by the tier serving it */
	_Atomic uint64_t revalidated_kept, revalidated_changed;
};

/* What S3 user metadata said of a file (x-amz-meta-mode, -uid, -gid, -mtime: s3fs's and
 * rclone's names): TFS_META_READ once the object's headers were read (a HEAD), then the
 * S3_META_* bits (s3.h, shifted by one) of the fields it carried. */
#define TFS_META_READ 0x1u
#define TFS_META_MODE (S3_META_MODE << 1)
#define TFS_META_UID (S3_META_UID << 1)
#define TFS_META_GID (S3_META_GID << 1)
#define TFS_META_MTIME (S3_META_MTIME << 1)

struct tfs_attr {
	bool is_dir;
	uint8_t meta;              /* TFS_META_*; 0: from a listing, headers not read */
	uint16_t mode;             /* permission bits, when TFS_META_MODE */
	uint32_t uid, gid;         /* when TFS_META_UID, TFS_META_GID */
	uint64_t size;
	time_t mtime;              /* x-amz-meta-mtime when TFS_META_MTIME, else Last-Modified */
	char etag[S3_ETAG_MAX];
};

/* The user metadata of src (meta, mode, owners, the time it sets) into dst. */
static inline void tfs_attr_copy_meta(struct tfs_attr *dst, const struct tfs_attr *src)
{
	dst->meta = src->meta;
	dst->mode = src->mode;
	dst->uid = src->uid;
	dst->gid = src->gid;
	dst->mtime = src->mtime;
}

struct tfs_dirent {
	const char *name;          /* in the listing's names */
	struct tfs_cattr attr;     /* packed (cattr.h): tfs_cattr_get() unpacks it */
};

/* An immutable snapshot of one directory, sorted by name, shared by reference. */
struct tfs_listing {
	_Atomic unsigned refs;
	uint64_t fetched_ms;       /* monotonic time of the listing */
	size_t n;
	struct tfs_dirent *ents;
	char *names;               /* every entry's name, one after the other */
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
 * (HEAD of the object and a one-key listing of the prefix).  -ENOENT when nothing is there.
 * *learned_ms (may be NULL) gets when what *out (or the absence) says was learned from S3
 * (monotonic): a listing's time, not the lookup's, so that its TTL runs from then. */
int policy_lookup(struct policy *p, const char *dir_key, const char *name, struct tfs_attr *out,
		  uint64_t *learned_ms);

/* Fresh attributes of the file key (HEAD), its user metadata included. */
int policy_stat_file(struct policy *p, const char *key, struct tfs_attr *out);
/* What this mount (or a lookup of an earlier one, in the L2 index) has read of the user
 * metadata of key at a's version, if a has none yet (a listing's attributes): copied into *a.
 * Memory, and the index once per key. */
void policy_attr_meta(struct policy *p, const char *key, struct tfs_attr *a);

/* Revalidates what is known of the file key (old): a conditional HEAD (If-None-Match).  304:
 * *out = *old, every cached chunk stays, the TTL restarts.  A new ETag: *out is the new
 * version, *changed is set, and the old version's chunks are dropped from memory and L2 (the
 * caller tells the kernel).  Both outcomes are counted. */
int policy_revalidate(struct policy *p, const char *key, const struct tfs_attr *old,
		      struct tfs_attr *out, bool *changed);
/* Fresh metadata (a listing, a lookup) confirmed a known file's ETag: counted as kept. */
void policy_revalidation_kept(struct policy *p);
/* The object key has a new version etag (however it was noticed: a revalidation, a listing):
 * drop every other version's chunks, from memory and from L2, and count a change. */
void policy_object_changed(struct policy *p, const char *key, const char *etag);

/* Everything the statistics files show, taken at one moment. */
struct policy_snapshot {
	struct policy_stats st;          /* a copy (atomics read one by one) */
	uint64_t s3_get, s3_head, s3_list, s3_bytes, s3_get_bytes, s3_errors, s3_retries,
		 s3_not_modified;
	uint64_t checksum_failures, orphans_reclaimed;
	uint64_t l1_used, l1_entries, l1_capacity;
	uint64_t mem_used, mem_capacity;
	struct tier_stats l2;            /* the L2 tier's own (zeros without L2) */
	uint64_t queued, queued_low;     /* chunks waiting for a fetch thread */
	uint64_t uptime_ms;
	uint64_t s3_throttled;           /* 429/503 SlowDown answers */
	struct conc_stats conn;          /* the S3 gate (conc.h) */
	bool shared_on;                  /* a shared tier is configured */
	struct shared_stats shared;      /* its figures (zeros without one) */
	unsigned fetch_threads;
};
void policy_snapshot(struct policy *p, struct policy_snapshot *out);
/* Latency quantile q (0..1) of a histogram, in ms, interpolated within its bucket. */
double policy_lat_quantile(const struct policy_lat *h, double q);
/* Zeroes every counter (not the gauges: bytes and entries held). */
void policy_reset_stats(struct policy *p);

/* ---- administration (admin.c): what the control file asks for ---- */

/* What an invalidation names: a path relative to the mount's root (a file, or a directory and
 * everything below it; "" is everything), or a shell-style glob (*, ?, [...]) matched against
 * relative keys, a match on a directory covering everything below it. */
struct policy_match {
	char *root;
	char *path;   /* path mode: relative, no leading or trailing '/' */
	char *glob;   /* glob mode */
};
int policy_match_init(struct policy *p, const char *spec, struct policy_match *m);
void policy_match_free(struct policy_match *m);
bool policy_match_key(const struct policy_match *m, const char *key);

/* Drops everything cached of what m names: chunks in every tier, persisted attributes, what
 * the predictors confirmed, and every listing (a listing names versions).  *dropped gets the
 * chunks dropped; a tier's failure is returned (after trying everything else). */
int policy_invalidate(struct policy *p, const struct policy_match *m, uint64_t *dropped);
/* Drops everything cached: every tier, listings, attributes. */
int policy_purge(struct policy *p, uint64_t *dropped);
/* Queues fetching key (a file) or everything below it (a directory prefix) into L2, in the
 * background; progress in the warm_* statistics. */
int policy_warm(struct policy *p, const char *key, bool is_dir);

/* A one-line summary of the statistics for the log. */
void policy_stats_line(struct policy *p, char *buf, size_t n);

/* Bytes of the object version (key, etag, size) held in L1 and in L2. */
void policy_tier_usage(struct policy *p, const char *key, const char *etag, uint64_t size,
		       uint64_t *l1, uint64_t *l2);
/* Runs the demotion pass now (it also runs every demote_interval); returns chunks demoted. */
uint64_t policy_demote(struct policy *p);

/* A file is opened with the kernel keeping its page cache: its reads may never reach tierfs,
 * so the open counts as an access to its chunks in L2 (the first 1,024), which keeps L2 from
 * evicting a file that is hot in the page cache. */
void policy_note_open(struct policy *p, const char *key, const char *etag, uint64_t size);

/* ---- prediction (prefetch.c) ---- */

/* A reader opened the file key, version a, whose attributes were learned (or confirmed with
 * S3) at learned_ms: the interval and directory-order predictors learn from it, and the
 * directory predictor may queue the first chunks of the files that come next. */
void policy_file_opened(struct policy *p, const char *key, const struct tfs_attr *a,
			uint64_t learned_ms);
/* The interval predictor revalidated key with S3 later than since_ms: *out is what S3 said and
 * *at_ms when (the caller may adopt it instead of asking S3 again).  -ENOENT otherwise. */
int policy_prefetch_confirmed(struct policy *p, const char *key, uint64_t since_ms,
			      struct tfs_attr *out, uint64_t *at_ms);
/* Runs one pass of the interval predictor now (it also runs every prefetch_interval). */
void policy_prefetch_pass(struct policy *p);

/* Tells policy that key is being opened at version etag: tiers that track versions (L2) drop
 * the chunks of other versions (versions.c). */
void policy_open_object(struct policy *p, const char *key, const char *etag);

/* ---- TTL settings (ttl.c): user.tierfs.ttl on a file's key or a directory's prefix ---- */

int policy_ttl_set(struct policy *p, const char *key, uint64_t ttl_s);
/* -ENODATA when key has no setting of its own. */
int policy_ttl_get(struct policy *p, const char *key, uint64_t *ttl_s);
int policy_ttl_remove(struct policy *p, const char *key);
/* The TTL in force for key: its own setting, else the nearest directory's above it (up to the
 * mount's root), else the mount's.  from (may be NULL) gets the key the setting is on, or ""
 * for the mount's default. */
uint64_t policy_ttl_effective(struct policy *p, const char *key, char *from, size_t fromsz);
/* Whether something about key learned at learned_ms (monotonic) is still fresh at now_ms. */
bool policy_fresh(struct policy *p, const char *key, uint64_t learned_ms, uint64_t now_ms);

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
	uint64_t last_counted;  /* the chunk whose access was counted last, plus one (0: none) */
	uint64_t window;        /* readahead bytes, 0 when not sequential */
	uint64_t ra_end;        /* readahead has been issued up to this offset */
};
void policy_stream_init(struct policy_stream *s);
void policy_stream_destroy(struct policy_stream *s);

/* The bytes of one read: iovecs pointing into chunks the result holds references to. */
struct policy_read {
	struct iovec iov[POLICY_READ_MAX_CHUNKS];
	void *chunks[POLICY_READ_MAX_CHUNKS];
	char *parts[POLICY_READ_MAX_CHUNKS]; /* or: a part of a chunk read for this read alone */
	bool behind[POLICY_READ_MAX_CHUNKS]; /* a sequential reader is done with it: drop-behind */
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
