/*
 * evict.h - the eviction order of L2: access-frequency weighted LRU.
 *
 * priority = last access (seconds) + EVICT_FREQ_BONUS_S * log2(1 + accesses)
 *
 * The lowest priority goes first.  Recency counts most, but each doubling of a chunk's access
 * count is worth EVICT_FREQ_BONUS_S more seconds of recency, so a chunk read many times
 * outlives one read once a little later (a scan does not flush the working set), and a chunk
 * that stops being read still ages out.  Pure functions: no locks, no I/O.
 */
#ifndef TIERFS_EVICT_H
#define TIERFS_EVICT_H

#include <stddef.h>
#include <stdint.h>

#define EVICT_FREQ_BONUS_S 600.0
/* When L2 must make room it frees what is needed and this much of its cap more, so that the
 * next fills find room without another pass. */
#define EVICT_LOW_WATER_PCT 5

struct evict_cand {
	double prio;
	uint64_t bytes;
	size_t ref; /* the caller's reference to the entry */
};

/* last_access_s: wall-clock seconds, with fractions (reads within one second keep their order). */
double evict_priority(double last_access_s, uint64_t accesses);
/* How many bytes to free so that need more fit under cap with used held: 0 if they fit. */
uint64_t evict_want(uint64_t used, uint64_t need, uint64_t cap);
/* Sorts cands by priority, lowest first, and returns how many of the first ones must go to
 * free at least need bytes (n when all of them together are not enough). */
size_t evict_choose(struct evict_cand *cands, size_t n, uint64_t need);

#endif
