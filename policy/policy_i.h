/*
 * policy_i.h - what the modules of policy/ share: the policy object, which holds the
 * configuration, the statistics and one pointer to each module's own state, and the modules'
 * functions that are not part of policy.h.
 *
 * Modules and their state (each kept private in its file, behind its own lock):
 *   policy.c    the life of a policy: it builds the tiers and the modules, and takes them down
 *   stats.c     histograms, the stats line (pure)
 *   cattr.c     attributes packed for keeping (listing entries, inodes)          [pure]
 *   tier.h      the tier table; tier_basic.c (do-nothing, S3), l2.c (L2), chunks.c (memory),
 *               shared.c (the fleet's shared bucket)                          [sh->lock]
 *   chunks.c    the chunk table: single flight, references, memory tier, queues  [ct->lock]
 *   fetch.c     the tier loop with copy-up, and the fetch threads                 [no lock]
 *   reader.c    one read: readahead, chunks, the tier loop               [policy_stream.lock]
 *   versions.c  "key has a new ETag", across every tier                           [no lock]
 *   meta.c      listings and lookups, cached with the TTL                         [meta->lock]
 *   xmeta.c     the user metadata (modes, owners) read, by key                    [xmeta lock]
 *   ttl.c       TTL settings                                                      [ttl->lock]
 *   prefetch.c  the interval and directory-order predictors                       [pf->lock]
 *   admin.c     invalidate, purge, warm                                           [warm->lock]
 *
 * Lock order, once for all of tierfs.  No lock is held across an S3 request, a store call, a
 * tier call or a callback into another module, so nearly every lock is a leaf, taken with no
 * other held; the one nesting is meta->lock -> ttl->lock (a cached listing's freshness is
 * checked under the listing cache's lock).  The leaves: in fs/, the handles', the inode
 * table's and the notifier's locks; in policy/, stream->lock, ct->lock, pf->lock, warm->lock,
 * the xmeta table's, l2->lock, sh->lock (shared.c), buf_pool.lock, the S3 gate's (conc.h: released while a GET
 * runs), the fetcher's thread list and each worker's lock; in backends/, the SSD store's and the S3 client's handle
 * pool.
 */
#ifndef TIERFS_POLICY_I_H
#define TIERFS_POLICY_I_H

#include "chunks.h"
#include "fetch.h"
#include "meta.h"
#include "policy.h"
#include "tier.h"
#include "util.h"

#define POLICY_NLEVELS 4 /* memory, L2, the shared tier (when configured), S3 */

struct meta_cache;      /* meta.c */
struct ttl_table;       /* ttl.c */
struct predictor;       /* prefetch.c */
struct warmer;          /* admin.c */

struct policy {
	struct policy_config cfg;       /* immutable */
	struct s3_client *s3;           /* not owned */
	uint64_t started_ms;            /* monotonic, for uptime */
	struct policy_stats stats;      /* atomics */
	struct buf_pool pool;           /* chunk buffers */

	/* The tiers, top down: memory (the chunk table's face), L2 (or the do-nothing tier), S3.
	 * Built at start, immutable after; owned (but tiers[0], the table's). */
	struct tier *tiers[POLICY_NLEVELS];
	int ntiers;
	struct tier *shared;            /* the shared tier among them, or NULL */
	struct chunks *chunks;
	struct fetcher *fetcher;

	struct meta_cache *meta;
	struct xmeta *xmeta;            /* user metadata read (xmeta.h) */
	struct ttl_table *ttl;
	struct predictor *pf;
	struct warmer *warm;
};

static inline uint64_t policy_now_ms(const struct policy *p)
{
	return p->cfg.now_ms ? p->cfg.now_ms() : tfs_now_ms();
}

/* The tiers below memory, top down, the source last. */
static inline struct tier *const *policy_lower(const struct policy *p) { return p->tiers + 1; }

int admin_init(struct policy *p);
/* Stops the warm thread (queued work is dropped). */
void admin_stop(struct policy *p);
void admin_destroy(struct policy *p);

int ttl_init(struct policy *p);
void ttl_destroy(struct policy *p);

int prefetch_init(struct policy *p);
/* Starts the interval predictor's pass (when prefetch is on). */
int prefetch_start(struct policy *p);
void prefetch_stop(struct policy *p);
void prefetch_destroy(struct policy *p);
/* Forgets what the predictors confirmed with S3 of the keys m names (NULL: all): an
 * invalidation must not be undone by a confirmation made before it. */
void prefetch_forget(struct policy *p, const struct policy_match *m);

#endif
