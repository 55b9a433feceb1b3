/*
 * shared.h - the shared tier: chunks kept as objects in an S3-compatible bucket that a fleet of
 * machines shares (S3 Express One Zone, a Ceph RGW or MinIO cluster near the machines), between
 * L2 and the source: L1 -> L2 -> shared -> S3.  A miss in L2 asks it; a chunk fetched from the
 * source is written to it in the background, after L2, off the reader's path.  Each chunk is an
 * object named and checked as backends/chunkobj.h says: a version is never mixed with another,
 * and what fails verification is never served (it is deleted, counted, and the chunk fetched
 * from the source).
 *
 * It never makes a read worse: its client has a short deadline; after breaker_errors failures
 * (or answers slower than slow_ms) in a row it is not asked for breaker_ms (reads go straight to the source, writes are
 * skipped, a log line says so), then one request probes it.  Its errors never reach a reader.
 * Writes wait in a queue of at most queue_bytes; beyond, they queue without their bytes (up to
 * reread_bytes more), which the writer reads back from the tier below (L2, quietly: no access
 * is counted) when their turn comes; beyond that, or when L2 dropped the chunk meanwhile, they
 * are skipped.  A write is never waited for.
 * Eviction is the bucket's lifecycle rule: tierfs deletes only objects it found corrupt, and
 * its own leases.
 *
 * Fetch leases: machines that miss the same chunk at the same moment (a job starting on a
 * fleet) fetch it from the source once.  After a miss, a machine creates the chunk's lease
 * object (its name and ".lease") with If-None-Match: *.  If that succeeds, it fetches the chunk
 * from the source; the write that stores the chunk deletes the lease after it (so does a write
 * skipped for want of room, without storing).  If the lease exists, another machine is
 * fetching: it polls for the chunk object (5 ms, then half as long again each time, up to
 * 100 ms) for at most wait_ms, then goes to the source itself: a machine that died holding a
 * lease costs its successors that wait once, and the one that then stores the chunk deletes
 * the stale lease.  A bucket that ignores conditional writes (s3rver) would let everyone
 * take every lease: a probe at the first miss finds which (two conditional creates of one
 * object), and leases stay off where it does, with a log line.
 * Chunks of an object without an ETag have no version to name: they never go through it.
 *
 * Writes of staged uploads (a later issue) are the same objects, under the new version's ETag.
 */
#ifndef TIERFS_SHARED_H
#define TIERFS_SHARED_H

#include <stdbool.h>
#include <stdint.h>

#include "s3.h"
#include "tier.h"

#define SHARED_DEFAULT_BREAKER_ERRORS 3
#define SHARED_DEFAULT_BREAKER_MS 30000
#define SHARED_DEFAULT_QUEUE_BYTES (128ull << 20)
#define SHARED_WRITERS 4
#define SHARED_HELPERS 15 /* with the run's own thread: 16 requests of a run at once */
#define SHARED_DEFAULT_TIMEOUT_MS 2000 /* shared_cache_timeout */
#define SHARED_DEFAULT_WAIT_MS 5000    /* shared_cache_wait */

struct shared_config {
	struct s3_client *s3;        /* the cache bucket's client: owned by the tier once made */
	const char *prefix;          /* in the cache bucket: "" or ending in '/' (copied) */
	const char *source;          /* the source's identity, "ENDPOINT/BUCKET" (copied) */
	uint64_t chunk_size;
	const unsigned char *key;    /* the fleet key (copied), or NULL */
	size_t key_len;
	unsigned breaker_errors;     /* 0: the default */
	unsigned breaker_ms;         /* 0: the default */
	unsigned slow_ms;            /* an answer slower than this counts as a failure (0: none) */
	uint64_t queue_bytes;        /* 0: the default */
	unsigned wait_ms;            /* the longest wait for another machine's fetch (0: leases
				      * off) */
	struct tier *below;          /* where a write whose bytes were not kept reads them back
				      * (L2), or NULL */
	uint64_t reread_bytes;       /* the most such writes queue, in chunk bytes (0: 8 times
				      * queue_bytes) */
};

struct shared_stats {
	uint64_t hits, misses;           /* chunks asked of it: served, and not (absent, failed, or
					  * not asked while the breaker is open) */
	uint64_t writes, writes_skipped; /* stored; not stored (queue full, breaker open) */
	uint64_t writes_read_back;       /* of the stored, those read back from L2 */
	uint64_t errors;                 /* requests that failed (GET and PUT) */
	uint64_t verify_failures;        /* objects that failed verification (corrupt, truncated,
					  * another chunk's, or without the fleet's key) */
	uint64_t bytes_down, bytes_up;   /* payload bytes served and stored */
	uint64_t breaker_opens;
	uint64_t leases;                 /* chunks this machine fetched for the fleet */
	uint64_t lease_waits;            /* misses another machine was fetching */
	uint64_t lease_waited;           /* of those, served once its write landed */
	uint64_t lease_timeouts;         /* of those, not there within wait_ms: the source */
	const char *leases_state;        /* "on", "unsupported" (the bucket ignores conditional
					  * writes), "unknown" (not probed yet) */
	bool breaker_open;               /* gauge */
	uint64_t queued_bytes;           /* gauge: writes waiting (with or without their bytes) */
};

/* The tier; -errno when it cannot be made (cfg->s3 is then still the caller's). */
int tier_shared_new(const struct shared_config *cfg, struct tier **out);
/* Its figures; reset: the counters start again from 0 (not the gauges). */
void tier_shared_stats(struct tier *t, struct shared_stats *out, bool reset);

#endif
