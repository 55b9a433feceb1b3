/*
 * evict.h - the eviction order of L2: LIRS with an adaptive resident-HIR part (issue 16).
 *
 * The order decides which cached chunk leaves when room is needed; it holds no data, only
 * what it needs to decide, in O(1) per access and per eviction:
 *   - LIR chunks: seen twice within a short reuse distance; they stay while their reuse
 *     distance is below that of the coldest LIR chunk (a loop over a data set larger than the
 *     cache keeps a stable part of it instead of flushing it, a scan passes through);
 *   - resident HIR chunks (the queue Q): new chunks and chunks demoted from LIR; evictions take
 *     Q's oldest first, so the LIR part is only reached when Q is empty;
 *   - ghosts: chunks evicted recently (ids, no data), in the recency stack S for LIRS's reuse
 *     test and in a FIFO for the adaptation.
 * How big the HIR part is adapts, as ARC's target does, to the cache's own reuse: a miss on a
 * ghost that entered new and that a larger Q would have kept grows it; a miss on a ghost that
 * was demoted from LIR shrinks it.  No time enters the order, only the order of accesses, so it
 * follows the cache's own time scale.
 *
 * Sizes are bytes (a chunk's slot on disk); handles are small integers, stable while the chunk
 * is resident.  Not thread-safe: the caller serialises every call (l2.c under l2->lock).  No
 * call does I/O; allocation failures leave the order consistent (an admission then returns
 * -ENOMEM and the caller does not keep the chunk).
 */
#ifndef TIERFS_EVICT_H
#define TIERFS_EVICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EVICT_NONE UINT32_MAX

struct evict_order;

/* How a chunk enters the cache. */
enum evict_how {
	EVICT_READ,     /* read by someone (a miss filled) */
	EVICT_PREFETCH, /* read by nobody yet: a resident HIR outside S, so that it displaces only
			 * other HIR chunks and earns its place when it is read */
	EVICT_RESTORE,  /* loaded from the index at start, oldest first (evict_restore) */
};

struct evict_stats {
	uint64_t resident_bytes, lir_bytes, hir_target; /* hir_target: what the HIR part adapts to */
	uint64_t nodes, ghosts;                         /* entries kept, of which ghosts */
};

/* An order for a cache of cap bytes (at least one chunk). */
int evict_new(uint64_t cap, struct evict_order **out);
void evict_free(struct evict_order *o);

/* The resident chunk of key, or EVICT_NONE. */
uint32_t evict_find(const struct evict_order *o, uint64_t key);
/* The key of handle h (resident, or the ghost evict_next just made of it). */
uint64_t evict_key(const struct evict_order *o, uint32_t h);
/* A resident chunk was read (from this tier or a tier above). */
void evict_hit(struct evict_order *o, uint32_t h);
/* A chunk not resident enters the cache (room made first, by evict_next); *h its handle.
 * -EEXIST when key is resident already. */
int evict_admit(struct evict_order *o, uint64_t key, uint32_t bytes, enum evict_how how,
		uint32_t *h);
/* At start, the chunks the index holds, oldest last access first: the ones read more than
 * once fill the LIR part from the most recent down, the rest are resident HIR. */
int evict_restore(struct evict_order *o, uint64_t key, uint32_t bytes, uint64_t accesses,
		  uint32_t *h);
/* Chooses the next chunk to leave and makes it a ghost: its handle, or EVICT_NONE when nothing
 * may go (hir_only: only resident HIR chunks may go, for a prefetch). */
uint32_t evict_next(struct evict_order *o, bool hir_only);
/* A resident chunk leaves for another reason (dropped, invalidated, a new version): forgotten
 * entirely, no ghost. */
void evict_drop(struct evict_order *o, uint32_t h);
void evict_get_stats(const struct evict_order *o, struct evict_stats *st);
/* Checks every invariant (byte counts, lists, states); 0 or -EUCLEAN.  For tests. */
int evict_check(const struct evict_order *o);

/* How many bytes to free so that need more fit under cap with used held: 0 if they fit. */
uint64_t evict_want(uint64_t used, uint64_t need, uint64_t cap);

#endif
