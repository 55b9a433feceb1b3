/*
 * stats.h - recording into the statistics (struct policy_stats, policy.h): latency histograms,
 * and the one-line summary of a snapshot for the log.  Pure functions over the structures they
 * are given: no locks (the counters are atomics), no I/O.
 */
#ifndef TIERFS_STATS_H
#define TIERFS_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "policy.h"

/* Counts one chunk served by tier t in us microseconds. */
void stats_lat_record(struct policy_stats *st, enum policy_tier t, uint64_t us);
/* The statistics' one-line summary (the unmount line, SIGUSR1). */
void stats_line(const struct policy_snapshot *s, char *buf, size_t n);

#endif
