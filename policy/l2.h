/*
 * l2.h - the L2 tier: chunks on local disk (the SSD store of backends/ssd.h), as a tier
 * (tier.h) with a capacity, an eviction order (evict.h), a writer thread for fills and a
 * periodic upkeep.
 *
 * The store is not owned and must outlive the tier; tier->ops->destroy writes what is queued,
 * then stops the threads.  Counters go to the policy's statistics (stats, not owned).
 */
#ifndef TIERFS_L2_H
#define TIERFS_L2_H

#include <stdint.h>

#include "policy.h"
#include "ssd.h"
#include "tier.h"

#define L2_DEFAULT_UPKEEP_INTERVAL_MS 5000

struct l2_config {
	uint64_t cap;                /* l2_size */
	uint64_t min_free_pct;       /* keep this much of the file system free ... */
	uint64_t min_free_bytes;     /* ... or this many bytes, whichever is more */
	uint64_t upkeep_interval_ms; /* the free-space floor is checked this often (0: default) */
	uint64_t write_delay_ms;     /* tests: a slow disk, this much more per chunk written */
	uint64_t queue_bytes;        /* chunks that may wait in memory for the disk (at least
				      * L2_QUEUE_MIN); beyond, a fill waits (backpressure) */
};

#define L2_QUEUE_MIN (64ull << 20)

/* The bytes of chunks that may wait for L2's writers, asked for want. */
static inline uint64_t l2_queue_bytes(uint64_t want)
{
	return want > L2_QUEUE_MIN ? want : L2_QUEUE_MIN;
}

/* Loads the table of what the store holds and starts the writer and the upkeep. */
int tier_l2_new(struct ssd_store *ssd, const struct l2_config *cfg, struct policy_stats *stats,
		struct tier **out);

#endif
