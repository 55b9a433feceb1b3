/*
 * tier.h - one table of functions for a tier, and the chunk buffers tiers pass between them.
 *
 * A tier is a place a chunk (key, ETag, index) can be served from: the memory tier (the chunk
 * table: the transient buffer and L1), L2 (the SSD store), S3 (the source, always last).  A
 * tier that is not configured is the do-nothing tier (tier_null_new), so that no caller ever
 * asks whether a tier exists.  New tiers (a shared cache, staged writes) are new
 * implementations of this table, not new branches.
 *
 * The read path (fetch.c) is one loop over the tiers below memory, top down: each is asked for
 * the chunks the ones above it missed; a chunk served by tier k is filled into tiers 0..k-1
 * (copy-up), off the reader's path.  The model is CernVM-FS's TieredCacheManager.  A tier may
 * defer a chunk another party is fetching into it (tier_run.later): the loop serves the rest of
 * the run first, then asks that tier again, once.
 *
 * Contract of every function in tier_ops:
 *  - returns 0 or -errno (counts are returned through pointers); thread-safe;
 *  - never calls back into the tier loop, the chunk table or anything above policy's tiers;
 *  - a function a tier has nothing to do for is a no-op returning 0 (never NULL in the table).
 *
 * Chunk buffers (struct tfs_buf) are reference counted: the chunk table holds one while the
 * chunk is in memory, a fill queued in a tier holds another, and the last tfs_buf_put gives the
 * memory back to its pool.  Their data is page-aligned (L2 writes it with O_DIRECT) and
 * immutable once the chunk is served.
 */
#ifndef TIERFS_TIER_H
#define TIERFS_TIER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "s3.h"
#include "ssd.h"

/* ---- chunk buffers (buf.c) ---- */

#define BUF_POOL_MAX 32 /* free buffers kept for reuse, unless buf_pool_limit says more */

struct buf_pool {
	size_t size;            /* the size pooled (the chunk size); others are not pooled */
	pthread_mutex_t lock;   /* guards the three below */
	char **free;            /* [max], allocated on the first put */
	unsigned nfree, max;
};

struct tfs_buf {
	_Atomic unsigned refs;
	struct buf_pool *pool;
	size_t len;             /* payload bytes */
	char *data;             /* page-aligned, len bytes (at least 1) */
	bool has_bsums;         /* bsums are the checksums of data's blocks (ssd_block_sums of
				 * the chunk size), taken as it arrived */
	uint64_t bsums[SSD_MAX_BLOCKS];
};

void buf_pool_init(struct buf_pool *bp, size_t size);
/* Keeps up to max free buffers (before the pool is used): as many as the memory the owner
 * budgets for chunks, so that a buffer's pages fault and are zeroed once, not at every reuse. */
void buf_pool_limit(struct buf_pool *bp, unsigned max);
void buf_pool_destroy(struct buf_pool *bp);
/* A buffer of len bytes with one reference, or NULL (ENOMEM). */
struct tfs_buf *tfs_buf_get(struct buf_pool *bp, size_t len);
void tfs_buf_ref(struct tfs_buf *b);
void tfs_buf_put(struct tfs_buf *b);

/* ---- the tier table ---- */

/* Which latency histogram and counters a tier's reads go to (policy_stats.lat[]). */
enum policy_tier { TIER_L1, TIER_MEM, TIER_L2, TIER_S3, TIER_SHARED, POLICY_NTIERS };

#define TIER_RUN_MAX 128 /* most chunks in one run */

/* Adjacent chunks first..first+n-1 of one object version, asked of the tiers in turn.  The
 * fetcher sets the identity, the lengths and the buffers; a tier that serves chunk i fills
 * bufs[i]->data and sets done[i]; one that fails a chunk for good sets err[i]. */
struct tier_run {
	const char *key, *etag;
	uint64_t first;             /* index of run chunk 0 */
	uint64_t chunk_size;        /* the offset of chunk i is (first + i) * chunk_size */
	int n;
	bool urgent;                /* a reader waits for chunk 0 now (a tier does not queue it) */
	bool again;                 /* the second pass, over deferred chunks: no more deferring */
	bool stream;                /* for a sequential stream (more than one chunk, or read
				     * ahead): its bytes go on to a reader's page cache, so L2
				     * reads them past its own (ssd_get_direct) */
	bool quiet;                 /* a tier reading back what it holds for another tier (the
				     * shared tier's write-behind): no reader's access, so no hit
				     * is counted and nothing moves in the eviction order */
	struct tfs_buf *bufs[TIER_RUN_MAX];
	bool done[TIER_RUN_MAX];
	bool skip[TIER_RUN_MAX];    /* not this tier's to serve now (done, deferred above, or
				     * not in this pass): a tier serves only chunks not skipped */
	bool later[TIER_RUN_MAX];   /* set by a tier that defers the chunk: another party (a
				     * machine of the fleet) is fetching it into that tier.  The
				     * tiers below skip it; once they served the rest of the run,
				     * the tier is asked again (again), and then waits for it */
	int err[TIER_RUN_MAX];      /* the last tier's error for a chunk nobody served */
	uint8_t pf_src[TIER_RUN_MAX];     /* an unread prefetch the tier held with the chunk */
	uint64_t accesses[TIER_RUN_MAX];  /* readers' accesses the tier has counted */
};

struct tier;
typedef bool (*tier_match_fn)(void *ctx, const char *key);

/* What a tier has counted (counters since start or the last reset) and holds (gauges). */
struct tier_stats {
	uint64_t hits, misses;          /* chunks asked of it: served, and not */
	uint64_t part_hits;             /* of hits: parts of a chunk served (read_part) */
	uint64_t fills;                 /* copy-ups stored */
	uint64_t fills_no_room;         /* refused: no room could be made for it */
	uint64_t fills_failed;          /* lost: a disk error, no memory, or the writer stalled
					 * beyond the fill deadline (a failing disk) */
	uint64_t fills_waited;          /* copy-ups that waited for the writer (backpressure) */
	uint64_t evictions;             /* chunks it dropped for room */
	uint64_t upkeep_passes;         /* its background passes */
	uint64_t used, entries, capacity; /* gauges: bytes and chunks held, capacity in bytes */
};

struct tier_ops {
	/* Serves chunks of r from index from on, those not skipped: at least the first of them,
	 * and as many after it as it does in one go (L2: one chunk, S3: one GET for the stretch
	 * of adjacent missing ones, the shared tier: all of them at once).  *next gets the index
	 * after the last one tried.  It may defer chunks (later[], see tier_run). */
	int (*get)(struct tier *t, struct tier_run *r, int from, int *next);
	/* Serves bytes [off, off + len) of one chunk without loading all of it (L2: the blocks
	 * that hold them, checked), into buf; *got gets the bytes (clipped at the chunk's end).
	 * A reader's access, counted as get counts one; *accesses gets what the tier has
	 * counted of the chunk.  -ENOENT when the tier does not hold the chunk (or cannot serve
	 * a part of it): the caller then loads it whole through get. */
	int (*read_part)(struct tier *t, const char *key, const char *etag, uint64_t idx,
			 uint64_t off, size_t len, char *buf, size_t *got, uint64_t *accesses);
	/* Copy-up: queues storing the chunk, off the caller's path; takes a reference of b
	 * (dropped when written or refused).  prefetch: nobody has read it yet.  When the
	 * tier's queue is full the caller waits for room (backpressure: a disk slower than the
	 * network slows the reader, and nothing read is lost), up to a deadline after which
	 * the disk counts as failing and the chunk is not stored (-ETIMEDOUT). */
	int (*fill)(struct tier *t, const char *key, const char *etag, uint64_t idx,
		    struct tfs_buf *b, bool prefetch);
	/* The payload bytes of the chunk the tier holds (0: none). */
	int (*has)(struct tier *t, const char *key, const char *etag, uint64_t idx,
		   uint64_t *bytes);
	/* A reader accessed the chunk in a tier above: this tier's eviction order learns it (a
	 * lower tier keeps what an upper one holds). */
	int (*touch)(struct tier *t, const char *key, const char *etag, uint64_t idx);
	/* The chunk leaves the tier above unread after predictor src prefetched it: this tier
	 * keeps the unread prefetch (len bytes) if it holds the chunk, else -ENOENT. */
	int (*keep_unread)(struct tier *t, const char *key, const char *etag, uint64_t idx,
			   uint8_t src, size_t len);
	/* key is now at version etag.  changed: S3 said so, every other version goes; else a
	 * reader opened it (a tier may drop what it tracks of other versions, cheaply). */
	int (*drop_version)(struct tier *t, const char *key, const char *etag, bool changed);
	/* Drops every chunk whose key match() accepts (NULL: every chunk); *n gets how many. */
	int (*drop_matching)(struct tier *t, tier_match_fn match, void *ctx, uint64_t *n);
	/* Waits until every queued fill is stored. */
	int (*flush)(struct tier *t);
	int (*usage)(struct tier *t, uint64_t *used, uint64_t *entries, uint64_t *capacity);
	/* Its counters and gauges; reset: the counters start again from 0 (not the gauges). */
	int (*stats)(struct tier *t, struct tier_stats *out, bool reset);
	/* Stops the tier's threads (queued fills are stored first) and frees it. */
	void (*destroy)(struct tier *t);
};

struct tier {
	const struct tier_ops *ops;
	const char *name;           /* "memory", "l2", "s3", "none" */
	enum policy_tier lat_slot;  /* where the time of its gets is recorded */
	bool is_source;             /* S3: what it serves is fetched, not cached */
	void *impl;
};

/* A copy-up waiting in a tier's queue for its writer: the chunk's identity and the job's
 * reference of its buffer (taken by tier_job_new, dropped by tier_job_free; a job about the
 * chunk without its bytes has none). */
struct tier_job {
	struct tier_job *next;
	char *key;
	char etag[S3_ETAG_MAX];
	uint64_t idx;
	struct tfs_buf *buf;        /* or NULL */
	size_t len;                 /* without buf: the chunk's length, when its bytes are read
				     * back from a tier below when the job's turn comes (reread) */
	bool reread;
	bool prefetch;              /* nobody has read it yet */
};
/* NULL when out of memory. */
struct tier_job *tier_job_new(const char *key, const char *etag, uint64_t idx,
			      struct tfs_buf *b, bool prefetch);
void tier_job_free(struct tier_job *j);

/* A counter of tier_stats read; reset: it starts again from 0. */
static inline uint64_t tier_count_take(_Atomic uint64_t *v, bool reset)
{
	return reset ? atomic_exchange_explicit(v, 0, memory_order_relaxed)
		     : atomic_load_explicit(v, memory_order_relaxed);
}

/* Operations for a tier that has nothing to do for them (the do-nothing tier's, S3's, the
 * shared tier's): holds nothing, tracks no access, keeps no unread prefetch and serves no part
 * of a chunk (-ENOENT), drops nothing, uses nothing. */
int tier_nop_has(struct tier *t, const char *key, const char *etag, uint64_t idx,
		 uint64_t *bytes);
int tier_nop_touch(struct tier *t, const char *key, const char *etag, uint64_t idx);
int tier_nop_keep_unread(struct tier *t, const char *key, const char *etag, uint64_t idx,
			 uint8_t src, size_t len);
int tier_nop_read_part(struct tier *t, const char *key, const char *etag, uint64_t idx,
		       uint64_t off, size_t len, char *buf, size_t *got, uint64_t *accesses);
int tier_nop_drop_version(struct tier *t, const char *key, const char *etag, bool changed);
int tier_nop_drop_matching(struct tier *t, tier_match_fn match, void *ctx, uint64_t *n);
int tier_nop_usage(struct tier *t, uint64_t *used, uint64_t *entries, uint64_t *capacity);

/* The do-nothing tier: holds nothing, serves nothing, stores nothing. */
struct tier *tier_null_new(void);
/* S3 as the last tier: ranged GETs naming the ETag (If-Match), one per stretch of adjacent
 * missing chunks, scattered into their buffers, at most as many at once as the gate of conc.h
 * allows (up to connections).  s3 is not owned.  What the responses say of the objects' user
 * metadata goes to xmeta (xmeta.h; NULL: nowhere), so that a file read needs no HEAD for it. */
struct xmeta;
struct tier *tier_s3_new(struct s3_client *s3, unsigned connections, struct xmeta *xmeta);
struct conc_stats;
/* What the gate knows: the limit it found, GETs in flight, throughput. */
void tier_s3_gate_stats(struct tier *t, struct conc_stats *out);

#endif
