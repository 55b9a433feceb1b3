/*
 * ctlproto.c - rendering of the statistics files, and the command language of ctl
 * (ctlproto.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctlproto.h"

/* ---- rendering ---- */

static double rate(uint64_t hits, uint64_t misses)
{
	return hits + misses ? (double)hits / (double)(hits + misses) : 0.0;
}

static double avg_ms(const struct policy_lat *h)
{
	return h->count ? (double)h->sum_us / (double)h->count / 1000.0 : 0.0;
}

struct tier_row {
	const char *name, *json;
	uint64_t hits, misses, bytes, entries, capacity;
	const struct policy_lat *lat;
};

static void rows_of(const struct policy_snapshot *s, struct tier_row r[4])
{
	const struct policy_stats *st = &s->st;
	r[0] = (struct tier_row){ "L1 (RAM)", "l1", st->l1_hits, st->l1_misses, s->l1_used,
				  s->l1_entries, s->l1_capacity, &st->lat[TIER_L1] };
	r[1] = (struct tier_row){ "memory buffer", "memory", st->chunk_hits, st->chunk_misses,
				  s->mem_used, 0, s->mem_capacity, &st->lat[TIER_MEM] };
	r[2] = (struct tier_row){ "L2 (disk)", "l2", s->l2.hits, s->l2.misses, s->l2.used,
				  s->l2.entries, s->l2.capacity, &st->lat[TIER_L2] };
	r[3] = (struct tier_row){ "L3 (S3)", "s3", s->s3_get, 0, 0, 0, 0, &st->lat[TIER_S3] };
}

static void human_bytes(uint64_t b, char *out, size_t n)
{
	const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)b;
	int i = 0;
	while (v >= 1024 && i < 4)
		v /= 1024, i++;
	snprintf(out, n, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

/* Prefetch figures of predictor i (PF_NONE: all of them). */
struct pf_row {
	uint64_t issued, used, wasted;
	double accuracy, coverage;
};

static void pf_row_of(const struct policy_stats *st, int i, struct pf_row *r)
{
	uint64_t all_used = 0;
	memset(r, 0, sizeof(*r));
	for (int k = PF_NONE + 1; k < PF_NSRC; k++) {
		all_used += st->pf[k].used;
		if (i == PF_NONE || i == k) {
			r->issued += st->pf[k].issued;
			r->used += st->pf[k].used;
			r->wasted += st->pf[k].wasted;
		}
	}
	/* accuracy: used / issued; coverage: the share of would-be misses (chunks readers took
	 * from a prefetch, plus those they had to fetch from S3 themselves) it turned into hits */
	r->accuracy = r->issued ? (double)(r->used < r->issued ? r->used : r->issued) /
				  (double)r->issued : 0;
	uint64_t would_miss = all_used + st->demand_s3_chunks;
	r->coverage = would_miss ? (double)r->used / (double)would_miss : 0;
}

void ctl_render_text(const struct ctl_info *in, const struct policy_snapshot *s, FILE *f)
{
	const struct policy_stats *st = &s->st;
	struct tier_row r[4];
	rows_of(s, r);
	fprintf(f, "tierfs %s  bucket %s%s%s  up %llus\n\n", in->version, in->bucket,
		in->prefix[0] ? "  prefix " : "", in->prefix,
		(unsigned long long)(s->uptime_ms / 1000));
	fprintf(f, "%-14s %10s %10s %8s %11s %9s %11s %9s %9s %9s\n", "tier", "hits", "misses",
		"hit rate", "held", "entries", "capacity", "avg ms", "p50 ms", "p99 ms");
	for (int i = 0; i < 4; i++) {
		char held[32], cap[32];
		human_bytes(r[i].bytes, held, sizeof(held));
		human_bytes(r[i].capacity, cap, sizeof(cap));
		if (i == 3)
			fprintf(f, "%-14s %10llu %10s %8s %11s %9s %11s", r[i].name,
				(unsigned long long)r[i].hits, "-", "-", "-", "-", "-");
		else
			fprintf(f, "%-14s %10llu %10llu %7.1f%% %11s %9llu %11s", r[i].name,
				(unsigned long long)r[i].hits, (unsigned long long)r[i].misses,
				100 * rate(r[i].hits, r[i].misses), held,
				(unsigned long long)r[i].entries, cap);
		fprintf(f, " %9.3f %9.3f %9.3f\n", avg_ms(r[i].lat),
			policy_lat_quantile(r[i].lat, 0.5), policy_lat_quantile(r[i].lat, 0.99));
	}
	uint64_t served = st->chunk_hits + s->l2.hits + s->shared.hits,
		 asked = st->chunk_hits + st->chunk_misses;
	fprintf(f, "%-14s %10llu %10llu %7.1f%%  (chunk requests served without S3)\n\n",
		"overall", (unsigned long long)(served < asked ? served : asked),
		(unsigned long long)(asked > served ? asked - served : 0),
		100 * (asked ? (served < asked ? (double)served : (double)asked) / (double)asked
			     : 0));
	fprintf(f, "movement       promotions %llu  demotions %llu  L1 evictions %llu  "
		"L2 evictions %llu\n"
		"L2 fills       written %llu  no room %llu  failed %llu  waited for the disk %llu\n"
		"L2 reads       parts of chunks %llu (of its hits: the blocks a read needs)\n",
		(unsigned long long)st->promotions, (unsigned long long)st->demotions,
		(unsigned long long)st->l1_evictions, (unsigned long long)s->l2.evictions,
		(unsigned long long)s->l2.fills, (unsigned long long)s->l2.fills_no_room,
		(unsigned long long)s->l2.fills_failed, (unsigned long long)s->l2.fills_waited,
		(unsigned long long)s->l2.part_hits);
	if (s->shared_on) {
		const struct shared_stats *sh = &s->shared;
		const struct policy_lat *lat = &st->lat[TIER_SHARED];
		fprintf(f, "shared cache   hits %llu  misses %llu  written %llu  skipped %llu  "
			"errors %llu  verify failures %llu  breaker %s (opened %llu)\n"
			"               bytes served %llu  stored %llu  queued %llu  "
			"avg %.3f ms  p50 %.3f ms  p99 %.3f ms\n"
			"               leases %s  taken %llu  waited %llu (served %llu, timed out "
			"%llu)\n",
			(unsigned long long)sh->hits, (unsigned long long)sh->misses,
			(unsigned long long)sh->writes, (unsigned long long)sh->writes_skipped,
			(unsigned long long)sh->errors, (unsigned long long)sh->verify_failures,
			sh->breaker_open ? "open" : "closed", (unsigned long long)sh->breaker_opens,
			(unsigned long long)sh->bytes_down, (unsigned long long)sh->bytes_up,
			(unsigned long long)sh->queued_bytes, avg_ms(lat),
			policy_lat_quantile(lat, 0.5), policy_lat_quantile(lat, 0.99),
			sh->leases_state ? sh->leases_state : "off", (unsigned long long)sh->leases,
			(unsigned long long)sh->lease_waits, (unsigned long long)sh->lease_waited,
			(unsigned long long)sh->lease_timeouts);
	}
	fprintf(f, "background     fetch queue %llu (interval %llu)  demotion passes %llu  "
		"L2 upkeep passes %llu\n", (unsigned long long)s->queued,
		(unsigned long long)s->queued_low, (unsigned long long)st->demote_passes,
		(unsigned long long)s->l2.upkeep_passes);
	fprintf(f, "revalidations  kept %llu  changed %llu\n", (unsigned long long)st->revalidated_kept,
		(unsigned long long)st->revalidated_changed);
	char inflight[32], unread[32], budget[32];
	human_bytes(st->pf_inflight_bytes, inflight, sizeof(inflight));
	human_bytes(st->pf_unread_bytes, unread, sizeof(unread));
	human_bytes(in->prefetch_budget, budget, sizeof(budget));
	fprintf(f, "prefetch       %s  in flight %s  unread %s  budget %s  revalidations %llu\n",
		in->prefetch ? "on" : "off", inflight, unread, budget,
		(unsigned long long)st->pf_revalidations);
	fprintf(f, "  %-12s %10s %10s %10s %9s %9s\n", "predictor", "issued", "used", "wasted",
		"accuracy", "coverage");
	for (int i = PF_NONE + 1; i <= PF_NSRC; i++) {
		struct pf_row pr;
		pf_row_of(st, i == PF_NSRC ? PF_NONE : i, &pr);
		fprintf(f, "  %-12s %10llu %10llu %10llu %8.1f%% %8.1f%%\n",
			i == PF_NSRC ? "all" : policy_pf_names[i], (unsigned long long)pr.issued,
			(unsigned long long)pr.used, (unsigned long long)pr.wasted,
			100 * pr.accuracy, 100 * pr.coverage);
	}
	fprintf(f, "S3             GET %llu  HEAD %llu  LIST %llu  not modified %llu  "
		"bytes %llu  errors %llu  retries %llu\n",
		(unsigned long long)s->s3_get, (unsigned long long)s->s3_head,
		(unsigned long long)s->s3_list, (unsigned long long)s->s3_not_modified,
		(unsigned long long)s->s3_bytes, (unsigned long long)s->s3_errors,
		(unsigned long long)s->s3_retries);
	fprintf(f, "connections    limit %u of %u  in flight %u (peak %u)  threads %u  "
		"waited %llu  throttled %llu  last %.1f MB/s\n",
		s->conn.limit, s->conn.cap, s->conn.in_flight, s->conn.peak, s->fetch_threads,
		(unsigned long long)s->conn.waits, (unsigned long long)s->s3_throttled,
		s->conn.throughput / 1e6);
	fprintf(f, "integrity      checksum failures %llu  orphans reclaimed %llu\n",
		(unsigned long long)s->checksum_failures, (unsigned long long)s->orphans_reclaimed);
	fprintf(f, "warm           %s  files %llu/%llu  bytes %llu  errors %llu\n",
		st->warm_running ? "running" : "idle", (unsigned long long)st->warm_files_done,
		(unsigned long long)st->warm_files_total, (unsigned long long)st->warm_bytes,
		(unsigned long long)st->warm_errors);
}

static void json_lat(FILE *f, const struct policy_lat *h)
{
	fprintf(f, "\"latency_ms\": {\"avg\": %.4f, \"p50\": %.4f, \"p99\": %.4f, \"count\": %llu}",
		avg_ms(h), policy_lat_quantile(h, 0.5), policy_lat_quantile(h, 0.99),
		(unsigned long long)h->count);
}

void ctl_render_json(const struct ctl_info *in, const struct policy_snapshot *s, FILE *f)
{
	const struct policy_stats *st = &s->st;
	struct tier_row r[4];
	rows_of(s, r);
	fprintf(f, "{\"version\": 3, \"tierfs\": \"%s\", \"uptime_s\": %llu,\n \"tiers\": {",
		in->version, (unsigned long long)(s->uptime_ms / 1000));
	for (int i = 0; i < 3; i++)
		fprintf(f, "%s\n  \"%s\": {\"hits\": %llu, \"misses\": %llu, \"hit_rate\": %.4f, "
			"\"bytes\": %llu, \"entries\": %llu, \"capacity\": %llu, ", i ? "," : "",
			r[i].json, (unsigned long long)r[i].hits, (unsigned long long)r[i].misses,
			rate(r[i].hits, r[i].misses), (unsigned long long)r[i].bytes,
			(unsigned long long)r[i].entries, (unsigned long long)r[i].capacity),
			json_lat(f, r[i].lat), fputc('}', f);
	fprintf(f, ",\n  \"s3\": {\"get\": %llu, \"head\": %llu, \"list\": %llu, "
		"\"not_modified\": %llu, \"bytes\": %llu, \"get_bytes\": %llu, \"errors\": %llu, "
		"\"retries\": %llu, ",
		(unsigned long long)s->s3_get, (unsigned long long)s->s3_head,
		(unsigned long long)s->s3_list, (unsigned long long)s->s3_not_modified,
		(unsigned long long)s->s3_bytes, (unsigned long long)s->s3_get_bytes,
		(unsigned long long)s->s3_errors, (unsigned long long)s->s3_retries);
	json_lat(f, r[3].lat);
	const struct shared_stats *sh = &s->shared;
	fprintf(f, "},\n  \"shared\": {\"enabled\": %s, \"hits\": %llu, \"misses\": %llu, "
		"\"hit_rate\": %.4f, \"writes\": %llu, \"writes_skipped\": %llu, \"errors\": %llu, "
		"\"verify_failures\": %llu, \"bytes_served\": %llu, \"bytes_stored\": %llu, "
		"\"queued_bytes\": %llu, \"breaker_open\": %s, \"breaker_opens\": %llu, "
		"\"writes_read_back\": %llu, "
		"\"leases\": \"%s\", \"leases_taken\": %llu, \"lease_waits\": %llu, "
		"\"lease_waited\": %llu, \"lease_timeouts\": %llu, ",
		s->shared_on ? "true" : "false", (unsigned long long)sh->hits,
		(unsigned long long)sh->misses, rate(sh->hits, sh->misses),
		(unsigned long long)sh->writes, (unsigned long long)sh->writes_skipped,
		(unsigned long long)sh->errors, (unsigned long long)sh->verify_failures,
		(unsigned long long)sh->bytes_down, (unsigned long long)sh->bytes_up,
		(unsigned long long)sh->queued_bytes, sh->breaker_open ? "true" : "false",
		(unsigned long long)sh->breaker_opens, (unsigned long long)sh->writes_read_back,
		sh->leases_state ? sh->leases_state : "off",
		(unsigned long long)sh->leases, (unsigned long long)sh->lease_waits,
		(unsigned long long)sh->lease_waited, (unsigned long long)sh->lease_timeouts);
	json_lat(f, &st->lat[TIER_SHARED]);
	fprintf(f, "}},\n \"movement\": {\"promotions\": %llu, \"demotions\": %llu, "
		"\"l1_evictions\": %llu, \"l2_evictions\": %llu, \"l2_writes\": %llu, "
		"\"l2_fills_no_room\": %llu, \"l2_fills_failed\": %llu, \"l2_fills_waited\": %llu, "
		"\"l2_part_reads\": %llu},\n",
		(unsigned long long)st->promotions, (unsigned long long)st->demotions,
		(unsigned long long)st->l1_evictions, (unsigned long long)s->l2.evictions,
		(unsigned long long)s->l2.fills, (unsigned long long)s->l2.fills_no_room,
		(unsigned long long)s->l2.fills_failed, (unsigned long long)s->l2.fills_waited,
		(unsigned long long)s->l2.part_hits);
	fprintf(f, " \"background\": {\"queued\": %llu, \"queued_low\": %llu, "
		"\"demote_passes\": %llu, \"l2_upkeep_passes\": %llu},\n",
		(unsigned long long)s->queued, (unsigned long long)s->queued_low,
		(unsigned long long)st->demote_passes, (unsigned long long)s->l2.upkeep_passes);
	fprintf(f, " \"connections\": {\"limit\": %u, \"cap\": %u, \"in_flight\": %u, "
		"\"peak\": %u, \"threads\": %u, \"waits\": %llu, \"raises\": %llu, "
		"\"cuts\": %llu, \"throttled\": %llu, \"throughput\": %.0f},\n",
		s->conn.limit, s->conn.cap, s->conn.in_flight, s->conn.peak, s->fetch_threads,
		(unsigned long long)s->conn.waits, (unsigned long long)s->conn.raises,
		(unsigned long long)s->conn.cuts, (unsigned long long)s->s3_throttled,
		s->conn.throughput);
	fprintf(f, " \"revalidations\": {\"kept\": %llu, \"changed\": %llu},\n",
		(unsigned long long)st->revalidated_kept, (unsigned long long)st->revalidated_changed);
	struct pf_row pr;
	pf_row_of(st, PF_NONE, &pr);
	fprintf(f, " \"prefetch\": {\"enabled\": %s, \"issued\": %llu, \"used\": %llu, "
		"\"wasted\": %llu, \"accuracy\": %.4f, \"coverage\": %.4f, "
		"\"inflight_bytes\": %llu, \"unread_bytes\": %llu, \"budget_bytes\": %llu, "
		"\"revalidations\": %llu, \"demand_s3_chunks\": %llu, \"predictors\": {",
		in->prefetch ? "true" : "false",
		(unsigned long long)pr.issued, (unsigned long long)pr.used,
		(unsigned long long)pr.wasted, pr.accuracy, pr.coverage,
		(unsigned long long)st->pf_inflight_bytes, (unsigned long long)st->pf_unread_bytes,
		(unsigned long long)(in->prefetch_budget),
		(unsigned long long)st->pf_revalidations, (unsigned long long)st->demand_s3_chunks);
	for (int i = PF_NONE + 1; i < PF_NSRC; i++) {
		pf_row_of(st, i, &pr);
		fprintf(f, "%s\"%s\": {\"issued\": %llu, \"used\": %llu, \"wasted\": %llu, "
			"\"accuracy\": %.4f, \"coverage\": %.4f}", i > PF_NONE + 1 ? ", " : "",
			policy_pf_names[i], (unsigned long long)pr.issued, (unsigned long long)pr.used,
			(unsigned long long)pr.wasted, pr.accuracy, pr.coverage);
	}
	fprintf(f, "}},\n");
	fprintf(f, " \"integrity\": {\"checksum_failures\": %llu, \"orphans_reclaimed\": %llu},\n",
		(unsigned long long)s->checksum_failures, (unsigned long long)s->orphans_reclaimed);
	fprintf(f, " \"warm\": {\"running\": %s, \"files_done\": %llu, \"files_total\": %llu, "
		"\"bytes\": %llu, \"errors\": %llu}\n}\n",
		st->warm_running ? "true" : "false", (unsigned long long)st->warm_files_done,
		(unsigned long long)st->warm_files_total, (unsigned long long)st->warm_bytes,
		(unsigned long long)st->warm_errors);
}

static void metric(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP tierfs_%s %s\n# TYPE tierfs_%s %s\n", name, help, name, type);
}

void ctl_render_metrics(const struct ctl_info *in, const struct policy_snapshot *s, FILE *f)
{
	const struct policy_stats *st = &s->st;
	struct tier_row r[4];
	rows_of(s, r);
	metric(f, "hits_total", "counter", "Chunk requests served by a tier.");
	for (int i = 0; i < 4; i++)
		fprintf(f, "tierfs_hits_total{tier=\"%s\"} %llu\n", r[i].json,
			(unsigned long long)r[i].hits);
	metric(f, "misses_total", "counter", "Chunk requests a tier could not serve.");
	for (int i = 0; i < 3; i++)
		fprintf(f, "tierfs_misses_total{tier=\"%s\"} %llu\n", r[i].json,
			(unsigned long long)r[i].misses);
	metric(f, "held_bytes", "gauge", "Bytes a tier holds.");
	for (int i = 0; i < 3; i++)
		fprintf(f, "tierfs_held_bytes{tier=\"%s\"} %llu\n", r[i].json,
			(unsigned long long)r[i].bytes);
	metric(f, "capacity_bytes", "gauge", "Capacity of a tier.");
	for (int i = 0; i < 3; i++)
		fprintf(f, "tierfs_capacity_bytes{tier=\"%s\"} %llu\n", r[i].json,
			(unsigned long long)r[i].capacity);
	metric(f, "entries", "gauge", "Chunks a tier holds.");
	fprintf(f, "tierfs_entries{tier=\"l1\"} %llu\ntierfs_entries{tier=\"l2\"} %llu\n",
		(unsigned long long)s->l1_entries, (unsigned long long)s->l2.entries);
	metric(f, "promotions_total", "counter", "Chunks promoted into L1.");
	fprintf(f, "tierfs_promotions_total %llu\n", (unsigned long long)st->promotions);
	metric(f, "demotions_total", "counter", "Chunks demoted out of L1 for being cold.");
	fprintf(f, "tierfs_demotions_total %llu\n", (unsigned long long)st->demotions);
	metric(f, "evictions_total", "counter", "Chunks evicted from a tier under pressure.");
	fprintf(f, "tierfs_evictions_total{tier=\"l1\"} %llu\ntierfs_evictions_total{tier=\"l2\"} %llu\n",
		(unsigned long long)st->l1_evictions, (unsigned long long)s->l2.evictions);
	metric(f, "fetch_queued", "gauge", "Chunks waiting for a fetch thread, by queue.");
	fprintf(f, "tierfs_fetch_queued{queue=\"readahead\"} %llu\n"
		"tierfs_fetch_queued{queue=\"interval\"} %llu\n",
		(unsigned long long)s->queued, (unsigned long long)s->queued_low);
	metric(f, "background_passes_total", "counter", "Passes of the background workers.");
	fprintf(f, "tierfs_background_passes_total{worker=\"demote\"} %llu\n"
		"tierfs_background_passes_total{worker=\"l2_upkeep\"} %llu\n",
		(unsigned long long)st->demote_passes, (unsigned long long)s->l2.upkeep_passes);
	metric(f, "revalidations_total", "counter", "Metadata revalidations with S3, by outcome.");
	fprintf(f, "tierfs_revalidations_total{outcome=\"kept\"} %llu\n"
		"tierfs_revalidations_total{outcome=\"changed\"} %llu\n",
		(unsigned long long)st->revalidated_kept, (unsigned long long)st->revalidated_changed);
	metric(f, "prefetch_chunks_total", "counter",
	       "Prefetched chunks by predictor: issued, used by a reader, wasted (left unread).");
	for (int i = PF_NONE + 1; i < PF_NSRC; i++)
		fprintf(f, "tierfs_prefetch_chunks_total{predictor=\"%s\",outcome=\"issued\"} %llu\n"
			"tierfs_prefetch_chunks_total{predictor=\"%s\",outcome=\"used\"} %llu\n"
			"tierfs_prefetch_chunks_total{predictor=\"%s\",outcome=\"wasted\"} %llu\n",
			policy_pf_names[i], (unsigned long long)st->pf[i].issued, policy_pf_names[i],
			(unsigned long long)st->pf[i].used, policy_pf_names[i],
			(unsigned long long)st->pf[i].wasted);
	metric(f, "demand_s3_chunks_total", "counter", "Chunks readers had to fetch from S3 themselves.");
	fprintf(f, "tierfs_demand_s3_chunks_total %llu\n", (unsigned long long)st->demand_s3_chunks);
	metric(f, "prefetch_bytes", "gauge", "Prefetched bytes not yet read, in flight or held.");
	fprintf(f, "tierfs_prefetch_bytes{state=\"inflight\"} %llu\n"
		"tierfs_prefetch_bytes{state=\"unread\"} %llu\n",
		(unsigned long long)st->pf_inflight_bytes, (unsigned long long)st->pf_unread_bytes);
	metric(f, "s3_requests_total", "counter", "Requests sent to S3, by kind.");
	fprintf(f, "tierfs_s3_requests_total{kind=\"get\"} %llu\n"
		"tierfs_s3_requests_total{kind=\"head\"} %llu\n"
		"tierfs_s3_requests_total{kind=\"list\"} %llu\n",
		(unsigned long long)s->s3_get, (unsigned long long)s->s3_head,
		(unsigned long long)s->s3_list);
	metric(f, "s3_bytes_total", "counter", "Bytes received from S3.");
	fprintf(f, "tierfs_s3_bytes_total %llu\n", (unsigned long long)s->s3_bytes);
	metric(f, "s3_errors_total", "counter", "S3 requests that failed for good.");
	fprintf(f, "tierfs_s3_errors_total %llu\n", (unsigned long long)s->s3_errors);
	metric(f, "s3_retries_total", "counter", "S3 requests retried.");
	fprintf(f, "tierfs_s3_retries_total %llu\n", (unsigned long long)s->s3_retries);
	metric(f, "s3_throttled_total", "counter", "S3 answers 429 or 503 SlowDown.");
	fprintf(f, "tierfs_s3_throttled_total %llu\n", (unsigned long long)s->s3_throttled);
	metric(f, "s3_connections", "gauge",
	       "S3 GETs: the limit found, the cap, in flight now, the most in flight.");
	fprintf(f, "tierfs_s3_connections{kind=\"limit\"} %u\ntierfs_s3_connections{kind=\"cap\"} %u\n"
		"tierfs_s3_connections{kind=\"in_flight\"} %u\ntierfs_s3_connections{kind=\"peak\"} %u\n",
		s->conn.limit, s->conn.cap, s->conn.in_flight, s->conn.peak);
	metric(f, "l2_fills_total", "counter",
	       "Chunks read from S3 for L2, by outcome: written, no room (a prefetch with too little HIR room, or the free-space floor), failed.");
	fprintf(f, "tierfs_l2_fills_total{outcome=\"written\"} %llu\n"
		"tierfs_l2_fills_total{outcome=\"no_room\"} %llu\n"
		"tierfs_l2_fills_total{outcome=\"failed\"} %llu\n",
		(unsigned long long)s->l2.fills, (unsigned long long)s->l2.fills_no_room,
		(unsigned long long)s->l2.fills_failed);
	metric(f, "l2_fill_waits_total", "counter", "L2 fills that waited for the disk (backpressure).");
	fprintf(f, "tierfs_l2_fill_waits_total %llu\n", (unsigned long long)s->l2.fills_waited);
	metric(f, "l2_part_reads_total", "counter",
	       "L2 hits that read only the blocks of a chunk a random read needs.");
	fprintf(f, "tierfs_l2_part_reads_total %llu\n", (unsigned long long)s->l2.part_hits);
	if (s->shared_on) {
		const struct shared_stats *sh = &s->shared;
		metric(f, "shared_chunks_total", "counter",
		       "Chunks asked of the shared cache and written to it, by outcome.");
		fprintf(f, "tierfs_shared_chunks_total{outcome=\"hit\"} %llu\n"
			"tierfs_shared_chunks_total{outcome=\"miss\"} %llu\n"
			"tierfs_shared_chunks_total{outcome=\"written\"} %llu\n"
			"tierfs_shared_chunks_total{outcome=\"skipped\"} %llu\n"
			"tierfs_shared_chunks_total{outcome=\"verify_failed\"} %llu\n",
			(unsigned long long)sh->hits, (unsigned long long)sh->misses,
			(unsigned long long)sh->writes, (unsigned long long)sh->writes_skipped,
			(unsigned long long)sh->verify_failures);
		metric(f, "shared_errors_total", "counter", "Requests to the shared cache that failed.");
		fprintf(f, "tierfs_shared_errors_total %llu\n", (unsigned long long)sh->errors);
		metric(f, "shared_bytes_total", "counter", "Payload bytes served by and stored in the shared cache.");
		fprintf(f, "tierfs_shared_bytes_total{direction=\"served\"} %llu\n"
			"tierfs_shared_bytes_total{direction=\"stored\"} %llu\n",
			(unsigned long long)sh->bytes_down, (unsigned long long)sh->bytes_up);
		metric(f, "shared_breaker_open", "gauge", "1 while the shared cache is not asked.");
		fprintf(f, "tierfs_shared_breaker_open %d\n", sh->breaker_open ? 1 : 0);
		metric(f, "shared_breaker_opens_total", "counter", "Times the breaker opened.");
		fprintf(f, "tierfs_shared_breaker_opens_total %llu\n",
			(unsigned long long)sh->breaker_opens);
		metric(f, "shared_leases_total", "counter",
		       "Fetch leases: taken (this machine fetched the chunk for the fleet), waited (another machine was fetching it), by outcome.");
		fprintf(f, "tierfs_shared_leases_total{outcome=\"taken\"} %llu\n"
			"tierfs_shared_leases_total{outcome=\"waited_served\"} %llu\n"
			"tierfs_shared_leases_total{outcome=\"waited_timed_out\"} %llu\n",
			(unsigned long long)sh->leases, (unsigned long long)sh->lease_waited,
			(unsigned long long)sh->lease_timeouts);
	}
	metric(f, "checksum_failures_total", "counter", "L2 chunks that failed verification.");
	fprintf(f, "tierfs_checksum_failures_total %llu\n", (unsigned long long)s->checksum_failures);
	metric(f, "warm_files_total", "counter", "Files queued for warming.");
	fprintf(f, "tierfs_warm_files_total %llu\n", (unsigned long long)st->warm_files_total);
	metric(f, "warm_files_done_total", "counter", "Files warmed.");
	fprintf(f, "tierfs_warm_files_done_total %llu\n", (unsigned long long)st->warm_files_done);
	metric(f, "uptime_seconds", "gauge", "Seconds since the mount.");
	fprintf(f, "tierfs_uptime_seconds %llu\n", (unsigned long long)(s->uptime_ms / 1000));
	metric(f, "read_latency_seconds", "histogram", "Time to serve a chunk, by the tier serving it.");
	struct tier_row lat_rows[5] = { r[0], r[1], r[2], r[3],
					{ .json = "shared", .lat = &st->lat[TIER_SHARED] } };
	for (int i = 0; i < (s->shared_on ? 5 : 4); i++) {
		const struct tier_row *row = &lat_rows[i];
		uint64_t cum = 0;
		for (int b = 0; b < POLICY_LAT_BUCKETS; b++) {
			cum += row->lat->bucket[b];
			if (b < POLICY_LAT_BUCKETS - 1)
				fprintf(f, "tierfs_read_latency_seconds_bucket{tier=\"%s\",le=\"%g\"} %llu\n",
					row->json, (double)policy_lat_bounds_us[b] / 1e6,
					(unsigned long long)cum);
			else
				fprintf(f, "tierfs_read_latency_seconds_bucket{tier=\"%s\",le=\"+Inf\"} %llu\n",
					row->json, (unsigned long long)cum);
		}
		fprintf(f, "tierfs_read_latency_seconds_sum{tier=\"%s\"} %.6f\n", row->json,
			(double)row->lat->sum_us / 1e6);
		fprintf(f, "tierfs_read_latency_seconds_count{tier=\"%s\"} %llu\n", row->json,
			(unsigned long long)row->lat->count);
	}
}

/* ---- commands ---- */

/* Splits a command line into words: whitespace separates, "double quotes" group, a backslash
 * escapes the next character.  Returns the number of words or -EINVAL. */
static int split_words(char *line, char **words, int max)
{
	int n = 0;
	char *r = line, *w = line;
	while (*r) {
		while (*r == ' ' || *r == '\t')
			r++;
		if (!*r)
			break;
		if (n == max)
			return -EINVAL;
		words[n++] = w;
		bool quoted = false;
		while (*r && (quoted || (*r != ' ' && *r != '\t'))) {
			if (*r == '"') {
				quoted = !quoted;
				r++;
			} else if (*r == '\\' && r[1]) {
				*w++ = r[1];
				r += 2;
			} else {
				*w++ = *r++;
			}
		}
		if (quoted)
			return -EINVAL;
		if (*r)
			r++;
		*w++ = '\0';
	}
	return n;
}

int ctl_parse(char *line, struct ctl_cmd *out, const char **why)
{
	static const struct {
		const char *name;
		enum ctl_verb verb;
		int min, max;
		const char *usage;
	} verbs[] = {
		{ "invalidate", CTL_INVALIDATE, 1, 1, "usage: invalidate PATH-OR-GLOB" },
		{ "warm", CTL_WARM, 1, CTL_MAX_WORDS - 1, "usage: warm PATH..." },
		{ "demote", CTL_DEMOTE, 0, 0, "takes no arguments" },
		{ "purge", CTL_PURGE, 0, 0, "takes no arguments" },
		{ "reset-stats", CTL_RESET_STATS, 0, 0, "takes no arguments" },
	};
	char *words[CTL_MAX_WORDS];
	memset(out, 0, sizeof(*out));
	int n = split_words(line, words, CTL_MAX_WORDS);
	if (n < 0) {
		*why = "unbalanced quotes or too many words";
		return -EINVAL;
	}
	if (n == 0)
		return 0; /* an empty line */
	for (size_t v = 0; v < sizeof(verbs) / sizeof(verbs[0]); v++) {
		if (strcmp(words[0], verbs[v].name) != 0)
			continue;
		if (n - 1 < verbs[v].min || n - 1 > verbs[v].max) {
			*why = verbs[v].usage;
			return -EINVAL;
		}
		out->verb = verbs[v].verb;
		out->nargs = n - 1;
		for (int i = 1; i < n; i++)
			out->args[i - 1] = words[i];
		return 0;
	}
	*why = "unknown command (known: invalidate, warm, demote, purge, reset-stats)";
	return -EINVAL;
}

int ctl_lines_feed(struct ctl_lines *cl, const char *data, size_t size, bool flush,
		   int (*run)(void *ctx, char *line), void *ctx)
{
	char *nb = realloc(cl->buf, cl->len + size + 1);
	if (!nb)
		return -ENOMEM;
	cl->buf = nb;
	memcpy(cl->buf + cl->len, data, size);
	cl->len += size;
	int ret = 0;
	size_t start = 0;
	for (size_t i = 0; i <= cl->len; i++) {
		bool eol = i < cl->len && cl->buf[i] == '\n';
		bool last = i == cl->len && flush && i > start;
		if (!eol && !last)
			continue;
		if (ret == 0 && i - start > CTL_LINE_MAX)
			ret = -EMSGSIZE;
		cl->buf[i] = '\0';
		if (ret == 0)
			ret = run(ctx, cl->buf + start);
		start = i + 1;
	}
	if (start > cl->len)
		start = cl->len;
	memmove(cl->buf, cl->buf + start, cl->len - start);
	cl->len -= start;
	if (ret == 0 && cl->len > CTL_LINE_MAX)
		ret = -EMSGSIZE; /* a partial line already too long */
	if (ret == -EMSGSIZE)
		cl->len = 0;
	return ret;
}

void ctl_lines_free(struct ctl_lines *cl)
{
	free(cl->buf);
	cl->buf = NULL;
	cl->len = 0;
}
