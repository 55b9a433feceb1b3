/*
 * ctl.c - the control directory MOUNT/.tierfs: statistics to read, commands to write.
 *
 *   stats        the figures for people, one section per tier and one overall
 *   stats.json   the same, machine-readable (field names documented in the README)
 *   metrics      the Prometheus text exposition format
 *   ctl          one command per line: invalidate PATH|GLOB, warm PATH..., demote, purge,
 *                reset-stats (write-only, the mount's owner or root)
 *
 * Reading a statistics file gives one snapshot, taken at open.  A write to ctl returns when its
 * commands have been applied (warm queues its work and returns; its progress is in stats); a bad
 * command fails the write with EINVAL and a log line saying why.  The name .tierfs at the mount's
 * root is reserved: S3 keys under it are hidden, with a warning.  It is reachable by name but not
 * listed, so that tools walking a mount (cp -r, find, du, rsync) see exactly the bucket.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "fs_i.h"
#include "log.h"
#include "util.h"

enum { CTL_DIR, CTL_STATS, CTL_JSON, CTL_METRICS, CTL_CTL, CTL_N };
#define CTL_BASE ((fuse_ino_t)0xFFFFFFFFFFFFF000ull)
#define CTL_LINE_MAX 65536

static const struct {
	const char *name;
	mode_t mode;
} ctl_entries[CTL_N] = {
	[CTL_DIR] = { CTL_DIR_NAME, S_IFDIR | 0555 },
	[CTL_STATS] = { "stats", S_IFREG | 0444 },
	[CTL_JSON] = { "stats.json", S_IFREG | 0444 },
	[CTL_METRICS] = { "metrics", S_IFREG | 0444 },
	[CTL_CTL] = { "ctl", S_IFREG | 0200 },
};

struct ctl_handle {
	struct tfs_handle h;    /* first: freed at shutdown if never released */
	int which;
	char *buf;              /* a rendered snapshot, or the partial line written to ctl */
	size_t len;
};

bool ctl_is_ino(fuse_ino_t ino) { return ino >= CTL_BASE && ino < CTL_BASE + CTL_N; }
static int which_of(fuse_ino_t ino) { return (int)(ino - CTL_BASE); }

static void ctl_stat(const struct tfs_fs *fs, int which, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = CTL_BASE + (fuse_ino_t)which;
	st->st_mode = ctl_entries[which].mode;
	st->st_nlink = which == CTL_DIR ? 2 : 1;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_mtime = st->st_ctime = st->st_atime = fs->mount_time;
}

bool ctl_lookup(fuse_req_t req, struct tfs_fs *fs, fuse_ino_t parent, const char *name)
{
	int which = -1;
	if (parent == FUSE_ROOT_ID && strcmp(name, CTL_DIR_NAME) == 0)
		which = CTL_DIR;
	else if (parent == CTL_BASE + CTL_DIR)
		for (int k = 1; k < CTL_N; k++)
			if (strcmp(name, ctl_entries[k].name) == 0)
				which = k;
	if (which < 0) {
		if (parent != CTL_BASE + CTL_DIR)
			return false;
		fuse_reply_err(req, ENOENT);
		return true;
	}
	struct fuse_entry_param e = { .ino = CTL_BASE + (fuse_ino_t)which };
	e.attr_timeout = e.entry_timeout = 1.0;
	ctl_stat(fs, which, &e.attr);
	fuse_reply_entry(req, &e);
	return true;
}

void ctl_getattr(fuse_req_t req, struct tfs_fs *fs, fuse_ino_t ino)
{
	struct stat st;
	ctl_stat(fs, which_of(ino), &st);
	fuse_reply_attr(req, &st, 1.0);
}

void ctl_setattr(fuse_req_t req, struct tfs_fs *fs, fuse_ino_t ino, int to_set)
{
	/* "echo cmd > ctl" opens with O_TRUNC: truncating ctl is allowed and does nothing */
	if (which_of(ino) != CTL_CTL || (to_set & ~FUSE_SET_ATTR_SIZE)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	ctl_getattr(req, fs, ino);
}

/* Appends one dirent for an entry of .tierfs. */
static size_t ctl_dirent(fuse_req_t req, struct tfs_fs *fs, int which, char *buf, size_t size, off_t next,
		  bool plus)
{
	struct fuse_entry_param e = { 0 };
	ctl_stat(fs, which, &e.attr);
	if (plus) {
		e.ino = CTL_BASE + (fuse_ino_t)which;
		e.attr_timeout = e.entry_timeout = 1.0;
		return fuse_add_direntry_plus(req, buf, size, ctl_entries[which].name, &e, next);
	}
	return fuse_add_direntry(req, buf, size, ctl_entries[which].name, &e.attr, next);
}

void ctl_readdir(fuse_req_t req, struct tfs_fs *fs, size_t size, off_t off, bool plus)
{
	char *buf = malloc(size);
	size_t pos = 0;
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (off_t k = off; k < CTL_N + 1; k++) {
		size_t need;
		if (k < 2) {
			struct stat st = { .st_ino = k == 0 ? CTL_BASE : FUSE_ROOT_ID,
					   .st_mode = S_IFDIR };
			const char *n = k == 0 ? "." : "..";
			struct fuse_entry_param e = { .attr = st };
			need = plus ? fuse_add_direntry_plus(req, NULL, 0, n, NULL, 0)
				    : fuse_add_direntry(req, NULL, 0, n, NULL, 0);
			if (pos + need > size)
				break;
			pos += plus ? fuse_add_direntry_plus(req, buf + pos, size - pos, n, &e, k + 1)
				    : fuse_add_direntry(req, buf + pos, size - pos, n, &st, k + 1);
			continue;
		}
		int which = (int)k - 1; /* 2.. -> CTL_STATS.. */
		need = plus ? fuse_add_direntry_plus(req, NULL, 0, ctl_entries[which].name, NULL, 0)
			    : fuse_add_direntry(req, NULL, 0, ctl_entries[which].name, NULL, 0);
		if (pos + need > size)
			break;
		pos += ctl_dirent(req, fs, which, buf + pos, size - pos, k + 1, plus);
	}
	fuse_reply_buf(req, buf, pos);
	free(buf);
}

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
	r[2] = (struct tier_row){ "L2 (disk)", "l2", st->l2_hits, st->l2_misses, s->l2_used,
				  s->l2_entries, s->l2_capacity, &st->lat[TIER_L2] };
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

static void render_text(const struct tfs_fs *fs, const struct policy_snapshot *s, FILE *f)
{
	const struct policy_stats *st = &s->st;
	struct tier_row r[4];
	rows_of(s, r);
	fprintf(f, "tierfs %s  bucket %s%s%s  up %llus\n\n", TIERFS_VERSION, fs->opts->bucket,
		fs->opts->prefix[0] ? "  prefix " : "", fs->opts->prefix,
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
	uint64_t served = st->chunk_hits + st->l2_hits, asked = st->chunk_hits + st->chunk_misses;
	fprintf(f, "%-14s %10llu %10llu %7.1f%%  (chunk requests served without S3)\n\n",
		"overall", (unsigned long long)(served < asked ? served : asked),
		(unsigned long long)(asked > served ? asked - served : 0),
		100 * (asked ? (served < asked ? (double)served : (double)asked) / (double)asked
			     : 0));
	fprintf(f, "movement       promotions %llu  demotions %llu  L1 evictions %llu  "
		"L2 evictions %llu  L2 writes %llu (dropped %llu)\n",
		(unsigned long long)st->promotions, (unsigned long long)st->demotions,
		(unsigned long long)st->l1_evictions, (unsigned long long)st->l2_evictions,
		(unsigned long long)st->l2_writes, (unsigned long long)st->l2_write_dropped);
	fprintf(f, "revalidations  kept %llu  changed %llu\n", (unsigned long long)st->revalidated_kept,
		(unsigned long long)st->revalidated_changed);
	char inflight[32], unread[32], budget[32];
	human_bytes(st->pf_inflight_bytes, inflight, sizeof(inflight));
	human_bytes(st->pf_unread_bytes, unread, sizeof(unread));
	human_bytes(fs->pol ? policy_config(fs->pol)->prefetch_budget : 0, budget, sizeof(budget));
	fprintf(f, "prefetch       %s  in flight %s  unread %s  budget %s  revalidations %llu\n",
		fs->pol && policy_config(fs->pol)->prefetch ? "on" : "off", inflight, unread, budget,
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

static void render_json(const struct tfs_fs *fs, const struct policy_snapshot *s, FILE *f)
{
	const struct policy_stats *st = &s->st;
	struct tier_row r[4];
	rows_of(s, r);
	fprintf(f, "{\"version\": 1, \"tierfs\": \"%s\", \"uptime_s\": %llu,\n \"tiers\": {",
		TIERFS_VERSION, (unsigned long long)(s->uptime_ms / 1000));
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
	fprintf(f, "}},\n \"movement\": {\"promotions\": %llu, \"demotions\": %llu, "
		"\"l1_evictions\": %llu, \"l2_evictions\": %llu, \"l2_writes\": %llu, "
		"\"l2_write_dropped\": %llu},\n",
		(unsigned long long)st->promotions, (unsigned long long)st->demotions,
		(unsigned long long)st->l1_evictions, (unsigned long long)st->l2_evictions,
		(unsigned long long)st->l2_writes, (unsigned long long)st->l2_write_dropped);
	fprintf(f, " \"revalidations\": {\"kept\": %llu, \"changed\": %llu},\n",
		(unsigned long long)st->revalidated_kept, (unsigned long long)st->revalidated_changed);
	struct pf_row pr;
	pf_row_of(st, PF_NONE, &pr);
	fprintf(f, " \"prefetch\": {\"enabled\": %s, \"issued\": %llu, \"used\": %llu, "
		"\"wasted\": %llu, \"accuracy\": %.4f, \"coverage\": %.4f, "
		"\"inflight_bytes\": %llu, \"unread_bytes\": %llu, \"budget_bytes\": %llu, "
		"\"revalidations\": %llu, \"demand_s3_chunks\": %llu, \"predictors\": {",
		fs->pol && policy_config(fs->pol)->prefetch ? "true" : "false",
		(unsigned long long)pr.issued, (unsigned long long)pr.used,
		(unsigned long long)pr.wasted, pr.accuracy, pr.coverage,
		(unsigned long long)st->pf_inflight_bytes, (unsigned long long)st->pf_unread_bytes,
		(unsigned long long)(fs->pol ? policy_config(fs->pol)->prefetch_budget : 0),
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

static void render_metrics(const struct tfs_fs *fs, const struct policy_snapshot *s, FILE *f)
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
		(unsigned long long)s->l1_entries, (unsigned long long)s->l2_entries);
	metric(f, "promotions_total", "counter", "Chunks promoted into L1.");
	fprintf(f, "tierfs_promotions_total %llu\n", (unsigned long long)st->promotions);
	metric(f, "demotions_total", "counter", "Chunks demoted out of L1 for being cold.");
	fprintf(f, "tierfs_demotions_total %llu\n", (unsigned long long)st->demotions);
	metric(f, "evictions_total", "counter", "Chunks evicted from a tier under pressure.");
	fprintf(f, "tierfs_evictions_total{tier=\"l1\"} %llu\ntierfs_evictions_total{tier=\"l2\"} %llu\n",
		(unsigned long long)st->l1_evictions, (unsigned long long)st->l2_evictions);
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
	metric(f, "checksum_failures_total", "counter", "L2 chunks that failed verification.");
	fprintf(f, "tierfs_checksum_failures_total %llu\n", (unsigned long long)s->checksum_failures);
	metric(f, "warm_files_total", "counter", "Files queued for warming.");
	fprintf(f, "tierfs_warm_files_total %llu\n", (unsigned long long)st->warm_files_total);
	metric(f, "warm_files_done_total", "counter", "Files warmed.");
	fprintf(f, "tierfs_warm_files_done_total %llu\n", (unsigned long long)st->warm_files_done);
	metric(f, "uptime_seconds", "gauge", "Seconds since the mount.");
	fprintf(f, "tierfs_uptime_seconds %llu\n", (unsigned long long)(s->uptime_ms / 1000));
	metric(f, "read_latency_seconds", "histogram", "Time to serve a chunk, by the tier serving it.");
	for (int i = 0; i < 4; i++) {
		uint64_t cum = 0;
		for (int b = 0; b < POLICY_LAT_BUCKETS; b++) {
			cum += r[i].lat->bucket[b];
			if (b < POLICY_LAT_BUCKETS - 1)
				fprintf(f, "tierfs_read_latency_seconds_bucket{tier=\"%s\",le=\"%g\"} %llu\n",
					r[i].json, (double)policy_lat_bounds_us[b] / 1e6,
					(unsigned long long)cum);
			else
				fprintf(f, "tierfs_read_latency_seconds_bucket{tier=\"%s\",le=\"+Inf\"} %llu\n",
					r[i].json, (unsigned long long)cum);
		}
		fprintf(f, "tierfs_read_latency_seconds_sum{tier=\"%s\"} %.6f\n", r[i].json,
			(double)r[i].lat->sum_us / 1e6);
		fprintf(f, "tierfs_read_latency_seconds_count{tier=\"%s\"} %llu\n", r[i].json,
			(unsigned long long)r[i].lat->count);
	}
	(void)fs;
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

static void log_refusal(const char *why, const char *line)
{
	char buf[200];
	tfs_warn("ctl: refusing '%s': %s", tfs_printable(line, buf, sizeof(buf)), why);
}

static bool match_key(void *m, const char *key) { return policy_match_key(m, key); }

static int cmd_invalidate(struct tfs_fs *fs, const char *arg)
{
	struct policy_match m;
	int ret = policy_match_init(fs->pol, arg, &m);
	if (ret < 0)
		return ret;
	uint64_t chunks = policy_invalidate(fs->pol, &m);
	fuse_ino_t inos[1024];
	size_t n = itable_expire_matching(&fs->itab, match_key, &m, inos, 1024);
	for (size_t i = 0; i < n; i++)
		notify_inval(fs, inos[i]);
	char buf[300];
	tfs_info("ctl: invalidate '%s': %llu chunks dropped, %zu inodes expired",
		 tfs_printable(arg, buf, sizeof(buf)), (unsigned long long)chunks, n);
	policy_match_free(&m);
	return 0;
}

static int cmd_warm(struct tfs_fs *fs, const char *arg)
{
	char *rel = strdup(arg), *r;
	int ret = 0;
	if (!rel)
		return -ENOMEM;
	for (r = rel; *r == '/'; r++)
		;
	size_t n = strlen(r);
	while (n && r[n - 1] == '/')
		r[--n] = '\0';
	bool is_dir = n == 0;
	if (!is_dir) {
		/* what is it: ask the parent */
		char *slash = strrchr(r, '/');
		char *parent = slash ? tfs_strdup_printf("%s%.*s/", fs->opts->prefix, (int)(slash - r), r)
				     : strdup(fs->opts->prefix);
		struct tfs_attr a;
		ret = parent ? policy_lookup(fs->pol, parent, slash ? slash + 1 : r, &a) : -ENOMEM;
		free(parent);
		if (ret == 0)
			is_dir = a.is_dir;
	}
	if (ret == 0) {
		char *key = tfs_strdup_printf("%s%s%s", fs->opts->prefix, r, is_dir && n ? "/" : "");
		ret = key ? policy_warm(fs->pol, key, is_dir) : -ENOMEM;
		char buf[300];
		if (ret == 0)
			tfs_info("ctl: warm '%s' queued", tfs_printable(key, buf, sizeof(buf)));
		free(key);
	}
	free(rel);
	return ret;
}

/* Applies one command line; 0 or -errno (EINVAL for anything malformed, logged). */
static int run_command(struct tfs_fs *fs, char *line)
{
	char copy[256], *words[64];
	snprintf(copy, sizeof(copy), "%s", line);
	int n = split_words(line, words, 64);
	if (n < 0) {
		log_refusal("unbalanced quotes or too many words", copy);
		return -EINVAL;
	}
	if (n == 0)
		return 0; /* an empty line */
	const char *cmd = words[0];
	if (strcmp(cmd, "invalidate") == 0) {
		if (n != 2) {
			log_refusal("usage: invalidate PATH-OR-GLOB", copy);
			return -EINVAL;
		}
		return cmd_invalidate(fs, words[1]);
	}
	if (strcmp(cmd, "warm") == 0) {
		if (n < 2) {
			log_refusal("usage: warm PATH...", copy);
			return -EINVAL;
		}
		for (int i = 1; i < n; i++) {
			int ret = cmd_warm(fs, words[i]);
			if (ret < 0) {
				log_refusal(ret == -ENOENT ? "no such path" : strerror(-ret), copy);
				return ret;
			}
		}
		return 0;
	}
	if (strcmp(cmd, "demote") == 0 || strcmp(cmd, "purge") == 0 ||
	    strcmp(cmd, "reset-stats") == 0) {
		if (n != 1) {
			log_refusal("takes no arguments", copy);
			return -EINVAL;
		}
		if (cmd[0] == 'd') {
			tfs_info("ctl: demote: %llu chunks left L1",
				 (unsigned long long)policy_demote(fs->pol));
		} else if (cmd[0] == 'p') {
			uint64_t k = policy_purge(fs->pol);
			fuse_ino_t inos[1024];
			size_t m = itable_expire_matching(&fs->itab, NULL, NULL, inos, 1024);
			for (size_t i = 0; i < m; i++)
				notify_inval(fs, inos[i]);
			tfs_info("ctl: purge: %llu chunks dropped", (unsigned long long)k);
		} else {
			policy_reset_stats(fs->pol);
			tfs_info("ctl: statistics reset");
		}
		return 0;
	}
	log_refusal("unknown command (known: invalidate, warm, demote, purge, reset-stats)", copy);
	return -EINVAL;
}

/* ---- file operations ---- */

static void ctl_free(struct tfs_handle *hh)
{
	struct ctl_handle *h = (struct ctl_handle *)hh;
	free(h->buf);
	free(h);
}

void ctl_open(fuse_req_t req, struct tfs_fs *fs, fuse_ino_t ino, struct fuse_file_info *fi)
{
	int which = which_of(ino);
	struct ctl_handle *h = calloc(1, sizeof(*h));
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	h->which = which;
	if (which == CTL_CTL) {
		const struct fuse_ctx *c = fuse_req_ctx(req);
		if ((fi->flags & O_ACCMODE) == O_RDONLY || (c->uid != 0 && c->uid != fs->uid)) {
			free(h);
			fuse_reply_err(req, EACCES);
			return;
		}
	} else if (which == CTL_DIR) {
		free(h);
		fuse_reply_err(req, EISDIR);
		return;
	} else {
		if ((fi->flags & O_ACCMODE) != O_RDONLY) {
			free(h);
			fuse_reply_err(req, EACCES);
			return;
		}
		struct policy_snapshot snap;
		policy_snapshot(fs->pol, &snap);
		FILE *f = open_memstream(&h->buf, &h->len);
		if (!f) {
			free(h);
			fuse_reply_err(req, ENOMEM);
			return;
		}
		if (which == CTL_STATS)
			render_text(fs, &snap, f);
		else if (which == CTL_JSON)
			render_json(fs, &snap, f);
		else
			render_metrics(fs, &snap, f);
		fclose(f);
	}
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->direct_io = 1; /* sizes are not known ahead: every read comes here */
	fi->nonseekable = which == CTL_CTL;
	handle_add(fs, &h->h, ctl_free);
	if (fuse_reply_open(req, fi) == -ENOENT) {
		handle_del(fs, &h->h);
		ctl_free(&h->h);
	}
}

void ctl_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct ctl_handle *h = (struct ctl_handle *)(uintptr_t)fi->fh;
	if (h->which == CTL_CTL || (size_t)off >= h->len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	size_t n = h->len - (size_t)off < size ? h->len - (size_t)off : size;
	/* Reply from a copy: the reader may close the file (and RELEASE free h) as soon as the
	 * kernel has the data, before fuse_reply_buf returns here (ASan saw it, in CI). */
	char *copy = malloc(n ? n : 1);
	if (!copy) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	memcpy(copy, h->buf + off, n);
	fuse_reply_buf(req, copy, n);
	free(copy);
	(void)ino;
}

/* Runs every complete line in h's buffer; keeps a partial last line unless flush. */
static int run_lines(struct tfs_fs *fs, struct ctl_handle *h, bool flush)
{
	int ret = 0;
	size_t start = 0;
	for (size_t i = 0; i <= h->len; i++) {
		bool eol = i < h->len && h->buf[i] == '\n';
		bool last = i == h->len && flush && i > start;
		if (!eol && !last)
			continue;
		h->buf[i < h->len ? i : h->len] = '\0';
		if (ret == 0)
			ret = run_command(fs, h->buf + start);
		start = i + 1;
	}
	if (start > h->len)
		start = h->len;
	memmove(h->buf, h->buf + start, h->len - start);
	h->len -= start;
	return ret;
}

void ctl_write(fuse_req_t req, struct tfs_fs *fs, const char *data, size_t size,
	       struct fuse_file_info *fi)
{
	struct ctl_handle *h = (struct ctl_handle *)(uintptr_t)fi->fh;
	if (memchr(data, '\0', size)) {
		log_refusal("binary data", "(NUL bytes)");
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (h->len + size > CTL_LINE_MAX) {
		h->len = 0;
		log_refusal("line longer than 64 KiB", "(long line)");
		fuse_reply_err(req, EINVAL);
		return;
	}
	char *nb = realloc(h->buf, h->len + size + 1);
	if (!nb) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	h->buf = nb;
	memcpy(h->buf + h->len, data, size);
	h->len += size;
	int ret = run_lines(fs, h, false);
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_write(req, size);
}

void ctl_flush(fuse_req_t req, struct tfs_fs *fs, struct fuse_file_info *fi)
{
	struct ctl_handle *h = (struct ctl_handle *)(uintptr_t)fi->fh;
	int ret = h->which == CTL_CTL && h->len ? run_lines(fs, h, true) : 0;
	fuse_reply_err(req, ret < 0 ? -ret : 0);
}

void ctl_release(fuse_req_t req, struct tfs_fs *fs, struct fuse_file_info *fi)
{
	struct ctl_handle *h = (struct ctl_handle *)(uintptr_t)fi->fh;
	handle_del(fs, &h->h);
	ctl_free(&h->h);
	fuse_reply_err(req, 0);
}
