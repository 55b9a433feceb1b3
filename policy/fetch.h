/*
 * fetch.h - the fetcher: the read path's loop over the tiers below memory, and the threads that
 * serve the chunk table's queues (readahead and prefetch) with it.
 *
 * fetch_run asks each tier in turn, top down, for the chunks of a run that the tiers above it
 * missed; a chunk served by tier k is filled into the tiers above k (copy-up, queued: off the
 * reader's path), then handed to the chunk table, which wakes its readers at once (a reader
 * waiting for the first chunk of a run does not wait for the rest).  Each tier's time is
 * recorded in its latency histogram.  A chunk no tier serves fails with the last tier's error.
 *
 * The threads are elastic: start_threads at first, one more whenever every thread is busy, up
 * to max_threads (the connections= option); they wait at the S3 tier's gate (conc.h), which
 * decides how many GETs are in flight, so threads are never what limits the network.
 *
 * Thread-safe.  The fetcher's lock guards its thread list only (a leaf).
 */
#ifndef TIERFS_FETCH_H
#define TIERFS_FETCH_H

#include <stdbool.h>

#include "chunks.h"
#include "policy.h"
#include "tier.h"

#define FETCH_RUN_BYTES (8u << 20) /* most bytes one background run asks for */

struct fetcher;

/* tiers[0..ntiers) are the tiers below memory, top down, the source last (not owned); ct,
 * pool and stats are the policy's.  Starts start_threads fetch threads (at most max_threads). */
int fetcher_new(struct chunks *ct, struct tier *const *tiers, int ntiers, struct buf_pool *pool,
		uint64_t chunk_size, struct policy_stats *stats, unsigned start_threads,
		unsigned max_threads, struct fetcher **out);
/* How many fetch threads run now. */
unsigned fetcher_threads(struct fetcher *f);
/* Stops the table's queueing and joins the threads. */
void fetcher_stop(struct fetcher *f);
void fetcher_free(struct fetcher *f);
/* Loads run[0..n), adjacent LOADING chunks of one version whose fetcher the caller is, and
 * completes each.  drop_ref: the caller's references go with the completion. */
void fetch_run(struct fetcher *f, struct chunk **run, int n, bool drop_ref);

#endif
