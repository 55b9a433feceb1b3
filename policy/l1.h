/*
 * l1.h - the rules of the RAM tier L1, as pure functions (time is an argument, so tests drive
 * them with their own clock).
 *
 * A chunk enters L1 once it has been accessed promote_after times, counting accesses served by
 * L2 and by S3 (an access is a reader reaching the chunk, once per pass).  It leaves L1 when it
 * has not been accessed for demote_after (the demotion pass), or as L1's least recently used
 * chunk when L1 is over l1_size.  L2 keeps every chunk L1 has (L2 is inclusive of L1).
 */
#ifndef TIERFS_L1_H
#define TIERFS_L1_H

#include <stdbool.h>
#include <stdint.h>

#define L1_DEFAULT_PROMOTE_AFTER 5
#define L1_DEFAULT_DEMOTE_AFTER_S 3600
#define L1_DEFAULT_DEMOTE_INTERVAL_S 60
#define L1_DEFAULT_SIZE (512ull << 20) /* but at most an eighth of RAM */

static inline bool l1_should_promote(uint64_t accesses, uint64_t promote_after)
{
	return promote_after > 0 && accesses >= promote_after;
}

static inline bool l1_should_demote(uint64_t last_access_ms, uint64_t now_ms,
				    uint64_t demote_after_ms)
{
	return now_ms >= last_access_ms && now_ms - last_access_ms >= demote_after_ms;
}

#endif
