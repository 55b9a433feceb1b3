/*
 * chunks.h - the chunk table: the memory tier (a bounded transient buffer and L1), one fetch per
 * missing chunk however many readers want it (single flight), references, and the queue of
 * chunks waiting for a fetch thread.
 *
 * A chunk is identified by (key, ETag, index).  Life of a chunk: LOADING (linked in the table,
 * maybe queued) -> READY (on the transient LRU or in L1) or FAILED (unlinked at once, so the
 * next reader tries again).  References: the table holds one while linked, the queue one while
 * queued, and each reader one; the last put frees it.  Who fetches a LOADING chunk is its
 * fetcher: the reader that created it or took it over from the queue, or the fetch thread that
 * took it from the queue; the fetcher ends the load with chunks_complete.
 *
 * The table calls only down: into the tiers below memory (touch: L2 learns of accesses in
 * memory; keep_unread: an unread prefetch leaving memory), and into the statistics.
 *
 * Thread-safe.  Lock: ct->lock (chunks.c) guards the whole table; no tier is called under it.
 */
#ifndef TIERFS_CHUNKS_H
#define TIERFS_CHUNKS_H

#include <stdbool.h>
#include <stdint.h>

#include "policy.h"
#include "tier.h"

struct chunks;
struct chunk;

struct chunks_config {
	uint64_t chunk_size;
	uint64_t mem_bytes;        /* cap of the transient buffer */
	uint64_t l1_size;          /* 0: no L1 */
	uint64_t promote_after, demote_after_ms, demote_interval_ms;
	uint64_t prefetch_budget;
	uint64_t (*now_ms)(void);  /* NULL: the real clock */
};

/* lower[0..nlower) are the tiers below memory, top down (not owned); stats is the policy's.  Starts the demotion pass (every demote_interval, when there is an L1). */
int chunks_new(const struct chunks_config *cfg, struct policy_stats *stats,
	       struct tier *const *lower, int nlower, struct chunks **out);
/* Stops queueing and wakes the fetch threads waiting in chunks_next_run (they return 0). */
void chunks_stop(struct chunks *ct);
/* Frees everything; no thread may use the table any more. */
void chunks_free(struct chunks *ct);
/* The memory tier's face (has: bytes in L1; drop_*; usage: L1). */
struct tier *chunks_tier(struct chunks *ct);

/* The chunk's identity and length: immutable. */
struct chunk_id {
	const char *key;
	const char *etag;
	uint64_t idx;
	size_t len;
};
const struct chunk_id *chunk_id(const struct chunk *c);
/* The bytes of a READY chunk the caller holds a reference to. */
const char *chunk_data(const struct chunk *c);
/* Whether a predictor asked for this load (read by its fetcher, for which it is stable). */
bool chunk_prefetched(const struct chunk *c);

/* How chunks_acquire found the chunk. */
enum chunk_got {
	CHUNK_HIT,      /* READY in memory */
	CHUNK_WAITED,   /* another fetcher loaded it meanwhile: READY or FAILED */
	CHUNK_MINE,     /* missing, or queued and not started (taken over): the caller loads it */
};
/* A reader wants chunk idx of o: a referenced chunk in *out, found as *got says. */
int chunks_acquire(struct chunks *ct, const struct policy_object *o, uint64_t idx,
		   struct chunk **out, enum chunk_got *got);
/* chunks_acquire for a reader that can do without the chunk: when it is READY in memory, a
 * referenced chunk in *out (a hit, as chunks_acquire's; end it with chunks_ready), else -ENOENT
 * (absent) or -EBUSY (on its way), and nothing changes. */
int chunks_find(struct chunks *ct, const struct policy_object *o, uint64_t idx, struct chunk **out);
/* Whether L1 has room for len more bytes (false without L1). */
bool chunks_l1_room(struct chunks *ct, size_t len);
/* The reader's chunk is loaded: 0 when READY (counting the access toward promotion when count,
 * t0_ns the time the read asked), else its error, and the reference is dropped. */
int chunks_ready(struct chunks *ct, struct chunk *c, bool count, bool from_memory, uint64_t t0_ns);
/* Ends a load: err, or buf (the table takes the caller's reference) served by a tier; pf_src
 * and accesses are what that tier held with it; from_source: served by the last tier.
 * drop_ref: the fetcher's reference goes too (a fetch thread's; not a reader's). */
void chunks_complete(struct chunks *ct, struct chunk *c, int err, struct tfs_buf *buf,
		     uint8_t pf_src, uint64_t accesses, bool from_source, bool drop_ref);
void chunks_put(struct chunks *ct, struct chunk *c);
/* chunks_put for a sequential reader that is done with c (drop-behind): c leaves memory now
 * unless it is in L1 or someone else holds it, so that a stream's memory is its readahead,
 * not everything it read (the page cache has those bytes; L2 keeps the chunk). */
void chunks_put_behind(struct chunks *ct, struct chunk *c);

/* Queues a load of the chunk for predictor src (PF_NONE: a chunk the current read needs,
 * outside the prefetch accounting and budget).  PF_INTERVAL work waits in a second queue
 * served only when the first is empty, by one thread at a time.  0 when queued, -EEXIST when
 * present (in memory, or in a lower tier for if_absent_below), -ENOSPC when the budget or the
 * memory buffer is spent. */
int chunks_queue(struct chunks *ct, const struct policy_object *o, uint64_t idx,
		 enum policy_pf_src src, bool if_absent_below);
/* For a fetch thread: waits for queued work and takes a run of adjacent queued chunks of one
 * version (their references become the caller's).  Returns how many, 0 once stopped; *low
 * says it came from the low queue (end it with chunks_run_done). */
int chunks_next_run(struct chunks *ct, struct chunk **run, int max, uint64_t max_bytes,
		    bool *low);
void chunks_run_done(struct chunks *ct, bool low);

/* The demotion pass (it also runs every demote_interval): chunks demoted. */
uint64_t chunks_demote(struct chunks *ct);
/* Bytes and chunks in L1, and bytes of the transient buffer. */
void chunks_usage(struct chunks *ct, uint64_t *l1_used, uint64_t *l1_entries, uint64_t *mem_used);
/* Chunks waiting on the queue and on the low (interval predictor) queue. */
void chunks_queued(struct chunks *ct, uint64_t *queued, uint64_t *queued_low);

#endif
