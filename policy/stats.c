/*
 * stats.c - latency histograms and the stats line (stats.h).
 */
#include <stdio.h>

#include "stats.h"

const char *const policy_pf_names[PF_NSRC] = { "none", "readahead", "interval", "dirorder" };

const uint64_t policy_lat_bounds_us[POLICY_LAT_BUCKETS - 1] = {
	25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000,
	10000000,
};

void stats_lat_record(struct policy_stats *st, enum policy_tier t, uint64_t us)
{
	struct policy_lat *h = &st->lat[t];
	int b = 0;
	while (b < POLICY_LAT_BUCKETS - 1 && us > policy_lat_bounds_us[b])
		b++;
	atomic_fetch_add_explicit(&h->bucket[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
}

double policy_lat_quantile(const struct policy_lat *h, double q)
{
	uint64_t n = h->count, seen = 0;
	if (!n)
		return 0;
	uint64_t want = (uint64_t)(q * (double)n + 0.5);
	if (want < 1)
		want = 1;
	for (int b = 0; b < POLICY_LAT_BUCKETS; b++) {
		uint64_t c = h->bucket[b];
		if (seen + c >= want && c) {
			double lo = b ? (double)policy_lat_bounds_us[b - 1] : 0;
			double hi = b < POLICY_LAT_BUCKETS - 1 ? (double)policy_lat_bounds_us[b] : lo * 2;
			return (lo + (hi - lo) * (double)(want - seen) / (double)c) / 1000.0;
		}
		seen += c;
	}
	return (double)policy_lat_bounds_us[POLICY_LAT_BUCKETS - 2] / 1000.0;
}

void stats_line(const struct policy_snapshot *s, char *buf, size_t n)
{
	const struct policy_stats *st = &s->st;
	snprintf(buf, n,
		 "stats: s3 get=%llu head=%llu list=%llu bytes=%llu get_bytes=%llu errors=%llu "
		 "retries=%llu; "
		 "l2 hits=%llu parts=%llu misses=%llu writes=%llu no_room=%llu failed=%llu waited=%llu "
		 "evictions=%llu "
		 "checksum_failures=%llu orphans_reclaimed=%llu used=%llu entries=%llu; "
		 "memory hits=%llu misses=%llu waits=%llu; prefetch readahead=%llu/%llu "
		 "interval=%llu/%llu dirorder=%llu/%llu (used/issued); "
		 "l1 hits=%llu promotions=%llu demotions=%llu evictions=%llu used=%llu entries=%llu; "
		 "revalidations kept=%llu changed=%llu",
		 (unsigned long long)s->s3_get, (unsigned long long)s->s3_head,
		 (unsigned long long)s->s3_list, (unsigned long long)s->s3_bytes,
		 (unsigned long long)s->s3_get_bytes,
		 (unsigned long long)s->s3_errors, (unsigned long long)s->s3_retries,
		 (unsigned long long)s->l2.hits, (unsigned long long)s->l2.part_hits,
		 (unsigned long long)s->l2.misses,
		 (unsigned long long)s->l2.fills, (unsigned long long)s->l2.fills_no_room,
		 (unsigned long long)s->l2.fills_failed, (unsigned long long)s->l2.fills_waited,
		 (unsigned long long)s->l2.evictions,
		 (unsigned long long)s->checksum_failures,
		 (unsigned long long)s->orphans_reclaimed, (unsigned long long)s->l2.used,
		 (unsigned long long)s->l2.entries, (unsigned long long)st->chunk_hits,
		 (unsigned long long)st->chunk_misses, (unsigned long long)st->chunk_waits,
		 (unsigned long long)st->pf[PF_READAHEAD].used,
		 (unsigned long long)st->pf[PF_READAHEAD].issued,
		 (unsigned long long)st->pf[PF_INTERVAL].used,
		 (unsigned long long)st->pf[PF_INTERVAL].issued,
		 (unsigned long long)st->pf[PF_DIRORDER].used,
		 (unsigned long long)st->pf[PF_DIRORDER].issued, (unsigned long long)st->l1_hits,
		 (unsigned long long)st->promotions, (unsigned long long)st->demotions,
		 (unsigned long long)st->l1_evictions, (unsigned long long)s->l1_used,
		 (unsigned long long)s->l1_entries, (unsigned long long)st->revalidated_kept,
		 (unsigned long long)st->revalidated_changed);
}
