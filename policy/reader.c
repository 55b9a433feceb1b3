/*
 * reader.c - the policy object and the read path: a FUSE read becomes a range of chunks, each
 * taken from the chunk table (which fetches it from S3 once, however many readers wait), with a
 * readahead window that grows while the reader stays sequential.
 *
 * Sequential detection tolerates small jumps, forward and back (the reorderings of a
 * multi-threaded FUSE loop, a reader skipping a little): a read starting within
 * max(chunk, window/4) of where the last one ended counts as sequential.  Any other jump resets
 * the window, so a random reader pays for no readahead.  The window starts at one chunk and
 * doubles with each sequential read up to readahead_max.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l1.h"
#include "log.h"
#include "policy_i.h"
#include "util.h"

const char *const policy_pf_names[PF_NSRC] = { "none", "readahead", "interval", "dirorder" };

const uint64_t policy_lat_bounds_us[POLICY_LAT_BUCKETS - 1] = {
	25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000,
	10000000,
};

void policy_lat_record(struct policy *p, enum policy_tier t, uint64_t us)
{
	struct policy_lat *h = &p->stats.lat[t];
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

void policy_snapshot(struct policy *p, struct policy_snapshot *o)
{
	memset(o, 0, sizeof(*o));
	const _Atomic uint64_t *src = (const _Atomic uint64_t *)&p->stats;
	uint64_t *dst = (uint64_t *)&o->st;
	for (size_t i = 0; i < sizeof(p->stats) / sizeof(uint64_t); i++)
		dst[i] = atomic_load_explicit(&src[i], memory_order_relaxed);
	const struct s3_stats *s3 = s3_client_stats(p->s3);
	o->s3_get = s3->requests_get;
	o->s3_head = s3->requests_head;
	o->s3_list = s3->requests_list;
	o->s3_bytes = s3->bytes_down;
	o->s3_get_bytes = s3->get_bytes;
	o->s3_errors = s3->errors;
	o->s3_retries = s3->retries;
	o->s3_not_modified = s3->not_modified;
	if (p->cfg.ssd) {
		o->checksum_failures = ssd_stats(p->cfg.ssd)->checksum_failures;
		o->orphans_reclaimed = ssd_stats(p->cfg.ssd)->orphans_reclaimed;
	}
	policy_l1_usage(p, &o->l1_used, &o->l1_entries);
	o->l1_capacity = p->cfg.l1_size;
	pthread_mutex_lock(&p->chunk_lock);
	o->mem_used = p->mem_used;
	pthread_mutex_unlock(&p->chunk_lock);
	o->mem_capacity = p->cfg.mem_bytes;
	policy_l2_usage(p, &o->l2_used, &o->l2_entries);
	o->l2_capacity = p->l2 ? p->cfg.l2_size : 0;
	o->uptime_ms = tfs_now_ms() - p->started_ms;
}

void policy_reset_stats(struct policy *p)
{
	_Atomic uint64_t *f = (_Atomic uint64_t *)&p->stats;
	size_t keep_from = offsetof(struct policy_stats, warm_files_total) / sizeof(uint64_t);
	size_t keep_to = offsetof(struct policy_stats, lat) / sizeof(uint64_t);
	for (size_t i = 0; i < sizeof(p->stats) / sizeof(uint64_t); i++)
		if (i < keep_from || i >= keep_to) /* a warm in progress keeps its progress */
			atomic_store_explicit(&f[i], 0, memory_order_relaxed);
	s3_client_reset_stats(p->s3);
	if (p->cfg.ssd)
		ssd_reset_stats(p->cfg.ssd);
}

struct policy *policy_new(const struct policy_config *cfg, struct s3_client *s3, int *err)
{
	struct policy *p = calloc(1, sizeof(*p));
	int ret = -ENOMEM;
	if (!p)
		goto fail;
	p->cfg = *cfg;
	if (p->cfg.chunk_size < POLICY_MIN_CHUNK_SIZE || p->cfg.chunk_size > POLICY_MAX_CHUNK_SIZE) {
		ret = -EINVAL;
		goto fail_free;
	}
	if (p->cfg.mem_bytes < 4 * p->cfg.chunk_size)
		p->cfg.mem_bytes = 4 * p->cfg.chunk_size;
	if (cfg->ssd && cfg->l2_size && p->cfg.l1_size > cfg->l2_size)
		p->cfg.l1_size = cfg->l2_size; /* L2 holds everything L1 does: L1 cannot be larger */
	if (!p->cfg.prefetch_interval_ms)
		p->cfg.prefetch_interval_ms = POLICY_DEFAULT_PREFETCH_INTERVAL_MS;
	if (!p->cfg.prefetch_window_ms)
		p->cfg.prefetch_window_ms = POLICY_DEFAULT_PREFETCH_WINDOW_S * 1000;
	if (!p->cfg.demote_interval_ms)
		p->cfg.demote_interval_ms = L1_DEFAULT_DEMOTE_INTERVAL_S * 1000;
	p->s3 = s3;
	p->started_ms = tfs_now_ms();
	if (!p->cfg.root_key)
		p->cfg.root_key = "";
	admin_init(p);
	if ((ret = ttl_init(p)) < 0)
		goto fail_free;
	if ((ret = meta_init(p)) < 0)
		goto fail_ttl;
	if ((ret = chunks_init(p)) < 0)
		goto fail_meta;
	if ((ret = prefetch_init(p)) < 0)
		goto fail_chunks;
	if (cfg->ssd && cfg->l2_size) {
		struct l2_config l2cfg = { .cap = cfg->l2_size, .min_free_pct = cfg->l2_min_free_pct,
					   .min_free_bytes = cfg->l2_min_free_bytes };
		if ((ret = l2_start(cfg->ssd, &l2cfg, &p->stats, &p->l2)) < 0)
			goto fail_chunks;
	}
	if ((ret = chunks_start(p)) < 0 || (ret = prefetch_start(p)) < 0)
		goto fail_l2;
	return p;
fail_l2:
	prefetch_stop(p);
	chunks_stop(p);
	l2_stop(p->l2);
	p->l2 = NULL;
	prefetch_destroy(p);
fail_chunks:
	chunks_destroy(p);
fail_meta:
	meta_destroy(p);
fail_ttl:
	ttl_destroy(p);
fail_free:
	free(p);
fail:
	*err = ret;
	return NULL;
}

void policy_free(struct policy *p)
{
	if (!p)
		return;
	admin_stop(p);    /* the warm thread reads through everything below */
	prefetch_stop(p); /* the interval predictor too */
	chunks_stop(p);   /* no new fills after this ... */
	l2_stop(p->l2);   /* ... and the queued ones are written (they hold chunk references) */
	p->l2 = NULL;     /* chunks freed from now on count their unread prefetches as wasted */
	prefetch_destroy(p);
	chunks_destroy(p);
	meta_destroy(p);
	ttl_destroy(p);
	free(p);
}

void policy_quiesce(struct policy *p)
{
	admin_stop(p);
	prefetch_stop(p);
	chunks_stop(p);
	if (p->l2)
		l2_flush(p->l2);
}

void policy_tier_usage(struct policy *p, const char *key, const char *etag, uint64_t size,
		       uint64_t *l1, uint64_t *l2)
{
	uint64_t cs = p->cfg.chunk_size, n = (size + cs - 1) / cs;
	*l1 = *l2 = 0;
	for (uint64_t i = 0; i < n; i++) {
		size_t len;
		uint64_t want = i + 1 < n ? cs : size - i * cs;
		if (chunk_in_l1(p, key, etag, i, &len))
			*l1 += len;
		if (p->l2 && l2_chunk_bytes(p->l2, key, etag, i))
			*l2 += want;
	}
}

void policy_note_open(struct policy *p, const char *key, const char *etag, uint64_t size)
{
	uint64_t n = (size + p->cfg.chunk_size - 1) / p->cfg.chunk_size;
	if (!p->l2)
		return;
	for (uint64_t i = 0; i < n && i < 1024; i++)
		l2_note_access(p->l2, key, etag, i);
}

void policy_l1_usage(struct policy *p, uint64_t *used, uint64_t *entries)
{
	pthread_mutex_lock(&p->chunk_lock);
	*used = p->l1_used;
	*entries = p->l1_entries;
	pthread_mutex_unlock(&p->chunk_lock);
}

void policy_l2_usage(struct policy *p, uint64_t *used, uint64_t *entries)
{
	*used = *entries = 0;
	if (p->l2)
		l2_usage(p->l2, used, entries);
}

void policy_open_object(struct policy *p, const char *key, const char *etag)
{
	if (p->l2 && etag[0])
		l2_open_version(p->l2, key, etag);
}

void policy_stats_line(struct policy *p, char *buf, size_t n)
{
	const struct s3_stats *s3 = s3_client_stats(p->s3);
	const struct policy_stats *st = &p->stats;
	uint64_t used, entries, l1u, l1e;
	policy_l2_usage(p, &used, &entries);
	policy_l1_usage(p, &l1u, &l1e);
	const struct ssd_stats *ss = p->cfg.ssd ? ssd_stats(p->cfg.ssd) : NULL;
	snprintf(buf, n,
		 "stats: s3 get=%llu head=%llu list=%llu bytes=%llu get_bytes=%llu errors=%llu "
		 "retries=%llu; "
		 "l2 hits=%llu misses=%llu writes=%llu dropped=%llu evictions=%llu "
		 "checksum_failures=%llu orphans_reclaimed=%llu used=%llu entries=%llu; "
		 "memory hits=%llu misses=%llu waits=%llu; prefetch readahead=%llu/%llu "
		 "interval=%llu/%llu dirorder=%llu/%llu (used/issued); "
		 "l1 hits=%llu promotions=%llu demotions=%llu evictions=%llu used=%llu entries=%llu; "
		 "revalidations kept=%llu changed=%llu",
		 (unsigned long long)s3->requests_get, (unsigned long long)s3->requests_head,
		 (unsigned long long)s3->requests_list, (unsigned long long)s3->bytes_down,
		 (unsigned long long)s3->get_bytes,
		 (unsigned long long)s3->errors, (unsigned long long)s3->retries,
		 (unsigned long long)st->l2_hits, (unsigned long long)st->l2_misses,
		 (unsigned long long)st->l2_writes, (unsigned long long)st->l2_write_dropped,
		 (unsigned long long)st->l2_evictions,
		 (unsigned long long)(ss ? ss->checksum_failures : 0),
		 (unsigned long long)(ss ? ss->orphans_reclaimed : 0), (unsigned long long)used,
		 (unsigned long long)entries, (unsigned long long)st->chunk_hits,
		 (unsigned long long)st->chunk_misses, (unsigned long long)st->chunk_waits,
		 (unsigned long long)st->pf[PF_READAHEAD].used,
		 (unsigned long long)st->pf[PF_READAHEAD].issued,
		 (unsigned long long)st->pf[PF_INTERVAL].used,
		 (unsigned long long)st->pf[PF_INTERVAL].issued,
		 (unsigned long long)st->pf[PF_DIRORDER].used,
		 (unsigned long long)st->pf[PF_DIRORDER].issued, (unsigned long long)st->l1_hits,
		 (unsigned long long)st->promotions, (unsigned long long)st->demotions,
		 (unsigned long long)st->l1_evictions, (unsigned long long)l1u,
		 (unsigned long long)l1e, (unsigned long long)st->revalidated_kept,
		 (unsigned long long)st->revalidated_changed);
}

const struct policy_config *policy_config(const struct policy *p) { return &p->cfg; }
const struct policy_stats *policy_stats(const struct policy *p) { return &p->stats; }

void policy_stream_init(struct policy_stream *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
}

void policy_stream_destroy(struct policy_stream *s) { pthread_mutex_destroy(&s->lock); }

/* Updates the reader's sequential state and returns the range to read ahead, [*ra_from, *ra_to). */
static void readahead_plan(struct policy *p, const struct policy_object *o, struct policy_stream *s,
			   uint64_t off, uint64_t end, uint64_t *ra_from, uint64_t *ra_to)
{
	uint64_t cs = p->cfg.chunk_size;
	*ra_from = *ra_to = 0;
	if (!p->cfg.readahead_max || !p->cfg.prefetch)
		return;
	pthread_mutex_lock(&s->lock);
	uint64_t tol = s->window / 4 > cs ? s->window / 4 : cs;
	bool seq = off + tol >= s->next_off && off <= s->next_off + tol;
	if (seq) {
		s->window = s->window ? s->window * 2 : cs;
		if (s->window > p->cfg.readahead_max)
			s->window = p->cfg.readahead_max;
		/* Top up only when less than half a window is left ahead of the reader, and then
		 * by a whole batch, so that the fetch threads get long runs of adjacent chunks
		 * (one GET each) instead of one chunk per read. */
		uint64_t target = end + s->window;
		if (target > o->size)
			target = o->size;
		uint64_t from = s->ra_end > end ? s->ra_end : end;
		if (s->ra_end < end + s->window / 2 && target > from) {
			*ra_from = from;
			*ra_to = target;
			s->ra_end = target;
		}
	} else {
		s->window = 0;
		s->ra_end = 0;
	}
	if (end > s->next_off || !seq)
		s->next_off = end;
	pthread_mutex_unlock(&s->lock);
}

int policy_read(struct policy *p, const struct policy_object *o, struct policy_stream *s,
		uint64_t off, size_t len, struct policy_read *out)
{
	uint64_t cs = p->cfg.chunk_size;
	int ret = 0;

	out->n = 0;
	out->bytes = 0;
	if (off >= o->size || len == 0)
		return 0;
	if (len > POLICY_MAX_READ)
		len = POLICY_MAX_READ;
	uint64_t end = off + len < o->size ? off + len : o->size;
	uint64_t first = off / cs, last = (end - 1) / cs;

	uint64_t ra_from, ra_to;
	if (s)
		readahead_plan(p, o, s, off, end, &ra_from, &ra_to);
	else
		ra_from = ra_to = 0;
	/* Chunks after the first one of this read are fetched in the background meanwhile. */
	for (uint64_t i = first + 1; i <= last; i++)
		chunk_prefetch(p, o, i, PF_NONE, false);
	if (ra_to > ra_from)
		for (uint64_t i = ra_from / cs; i <= (ra_to - 1) / cs; i++)
			if (i > last && chunk_prefetch(p, o, i, PF_READAHEAD, false) == -ENOSPC) {
				/* the budget or the buffer is spent: the next read tries again */
				pthread_mutex_lock(&s->lock);
				if (s->ra_end > i * cs)
					s->ra_end = i * cs;
				pthread_mutex_unlock(&s->lock);
				break;
			}

	for (uint64_t i = first; i <= last; i++) {
		struct chunk *c;
		/* one access per chunk per pass of this reader, however many reads it takes */
		bool count = true;
		if (s) {
			pthread_mutex_lock(&s->lock);
			count = s->last_counted != i + 1;
			s->last_counted = i + 1;
			pthread_mutex_unlock(&s->lock);
		}
		if ((ret = chunk_get(p, o, i, count, &c)) < 0) {
			policy_read_release(p, out);
			return ret;
		}
		size_t clen;
		const char *data = chunk_data(c, &clen);
		uint64_t cstart = i * cs;
		uint64_t from = off > cstart ? off - cstart : 0;
		uint64_t to = end - cstart < clen ? end - cstart : clen;
		out->chunks[out->n] = c;
		out->iov[out->n].iov_base = (void *)(data + from);
		out->iov[out->n].iov_len = (size_t)(to - from);
		out->bytes += (size_t)(to - from);
		out->n++;
	}
	return 0;
}

void policy_read_release(struct policy *p, struct policy_read *r)
{
	for (int i = 0; i < r->n; i++)
		chunk_put(p, r->chunks[i]);
	r->n = 0;
	r->bytes = 0;
}
