/*
 * policy.c - the life of a policy: it builds the tiers (memory, L2 or the do-nothing tier, S3)
 * and the modules over them, takes them down in the reverse order, and gathers the snapshot
 * of the statistics.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "conc.h"
#include "l1.h"
#include "l2.h"
#include "log.h"
#include "policy_i.h"
#include "stats.h"
#include "util.h"

const struct policy_config *policy_config(const struct policy *p) { return &p->cfg; }
const struct policy_stats *policy_stats(const struct policy *p) { return &p->stats; }

/* The configuration with its defaults and bounds applied. */
static int settle_config(struct policy_config *c)
{
	if (c->chunk_size < POLICY_MIN_CHUNK_SIZE || c->chunk_size > POLICY_MAX_CHUNK_SIZE)
		return -EINVAL;
	if (c->mem_bytes < 4 * c->chunk_size)
		c->mem_bytes = 4 * c->chunk_size;
	if (c->connections > POLICY_MAX_CONNECTIONS)
		c->connections = POLICY_MAX_CONNECTIONS;
	if (c->ssd && c->l2_size && c->l1_size > c->l2_size)
		c->l1_size = c->l2_size; /* L2 holds everything L1 does: L1 cannot be larger */
	if (!c->prefetch_interval_ms)
		c->prefetch_interval_ms = POLICY_DEFAULT_PREFETCH_INTERVAL_MS;
	if (!c->prefetch_window_ms)
		c->prefetch_window_ms = POLICY_DEFAULT_PREFETCH_WINDOW_S * 1000;
	if (!c->demote_interval_ms)
		c->demote_interval_ms = L1_DEFAULT_DEMOTE_INTERVAL_S * 1000;
	if (!c->root_key)
		c->root_key = "";
	return 0;
}

/* The tiers below memory: L2 (or the do-nothing tier), the shared tier when configured, then
 * S3. */
static int build_lower_tiers(struct policy *p)
{
	struct policy_config *c = &p->cfg;
	int ret = 0;
	if (c->ssd && c->l2_size) {
		struct l2_config l2cfg = { .cap = c->l2_size, .min_free_pct = c->l2_min_free_pct,
					   .min_free_bytes = c->l2_min_free_bytes,
					   .upkeep_interval_ms = c->l2_upkeep_interval_ms,
					   .write_delay_ms = c->l2_write_delay_ms,
					   .queue_bytes = c->mem_bytes / 2 };
		ret = tier_l2_new(c->ssd, &l2cfg, &p->stats, &p->tiers[1]);
	} else if (!(p->tiers[1] = tier_null_new())) {
		ret = -ENOMEM;
	}
	if (ret < 0)
		return ret;
	p->ntiers = 2;
	if (c->shared_s3) {
		struct shared_config scfg = { .s3 = c->shared_s3, .prefix = c->shared_prefix,
					      .source = c->shared_source, .chunk_size = c->chunk_size,
					      .key = c->shared_key, .key_len = c->shared_key_len,
					      .breaker_ms = c->shared_breaker_ms,
					      .queue_bytes = c->shared_queue_bytes,
					      .slow_ms = c->shared_slow_ms,
					      .wait_ms = c->shared_wait_ms,
					      .below = p->tiers[1] };
		if ((ret = tier_shared_new(&scfg, &p->tiers[p->ntiers])) < 0)
			return ret;
		c->shared_s3 = NULL; /* the tier's now */
		p->shared = p->tiers[p->ntiers++];
	}
	if (!(p->tiers[p->ntiers] = tier_s3_new(p->s3, p->cfg.connections,
						p->cfg.object_meta ? p->xmeta : NULL)))
		return -ENOMEM;
	p->ntiers++;
	return 0;
}

struct policy *policy_new(const struct policy_config *cfg, struct s3_client *s3, int *err)
{
	struct policy *p = calloc(1, sizeof(*p));
	int ret = -ENOMEM;
	if (!p) {
		s3_client_free(cfg->shared_s3); /* the policy's, even when it fails */
		goto fail;
	}
	p->cfg = *cfg;
	p->s3 = s3;
	p->started_ms = tfs_now_ms();
	buf_pool_init(&p->pool, p->cfg.chunk_size);
	if ((ret = settle_config(&p->cfg)) < 0)
		goto fail;
	/* the chunk memory, and the fills that may wait for L2's writers beyond it */
	buf_pool_limit(&p->pool, (unsigned)((p->cfg.mem_bytes + l2_queue_bytes(p->cfg.mem_bytes / 2)) /
					    p->cfg.chunk_size));
	struct chunks_config ccfg = {
		.chunk_size = p->cfg.chunk_size, .mem_bytes = p->cfg.mem_bytes,
		.l1_size = p->cfg.l1_size, .promote_after = p->cfg.promote_after,
		.demote_after_ms = p->cfg.demote_after_ms,
		.demote_interval_ms = p->cfg.demote_interval_ms,
		.prefetch_budget = p->cfg.prefetch_budget, .now_ms = p->cfg.now_ms,
	};
	/* Each step has its undo in policy_free, which takes what was built. */
	if ((ret = admin_init(p)) < 0 || (ret = ttl_init(p)) < 0 || (ret = meta_init(p)) < 0 ||
	    (ret = prefetch_init(p)) < 0 || (ret = build_lower_tiers(p)) < 0 ||
	    (ret = chunks_new(&ccfg, &p->stats, policy_lower(p), p->ntiers - 1, &p->chunks)) < 0)
		goto fail;
	p->tiers[0] = chunks_tier(p->chunks);
	if ((ret = fetcher_new(p->chunks, policy_lower(p), p->ntiers - 1, &p->pool,
			       p->cfg.chunk_size, &p->stats, CONC_INITIAL, p->cfg.connections,
			       &p->fetcher)) < 0 ||
	    (ret = prefetch_start(p)) < 0)
		goto fail;
	return p;
fail:
	policy_free(p);
	*err = ret;
	return NULL;
}

void policy_quiesce(struct policy *p)
{
	admin_stop(p);          /* the warm thread reads through everything below */
	prefetch_stop(p);       /* the interval predictor too */
	fetcher_stop(p->fetcher); /* no new fills after this ... */
	for (int k = 1; k < p->ntiers; k++)
		p->tiers[k]->ops->flush(p->tiers[k]); /* ... and the queued ones are written */
}

void policy_free(struct policy *p)
{
	if (!p)
		return;
	if (p->fetcher || p->chunks)
		policy_quiesce(p);
	fetcher_free(p->fetcher);
	/* The chunk table goes before the tiers below it: chunks leaving memory unread hand
	 * their prefetch down. */
	chunks_free(p->chunks);
	for (int k = p->ntiers - 1; k >= 1; k--)
		p->tiers[k]->ops->destroy(p->tiers[k]);
	s3_client_free(p->cfg.shared_s3); /* when no shared tier took it */
	prefetch_destroy(p);
	meta_destroy(p);
	ttl_destroy(p);
	admin_destroy(p);
	buf_pool_destroy(&p->pool);
	free(p);
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
	o->s3_throttled = s3->throttled;
	tier_s3_gate_stats(p->tiers[p->ntiers - 1], &o->conn);
	o->fetch_threads = fetcher_threads(p->fetcher);
	if (p->cfg.ssd) {
		o->checksum_failures = ssd_stats(p->cfg.ssd)->checksum_failures;
		o->orphans_reclaimed = ssd_stats(p->cfg.ssd)->orphans_reclaimed;
	}
	chunks_usage(p->chunks, &o->l1_used, &o->l1_entries, &o->mem_used);
	chunks_queued(p->chunks, &o->queued, &o->queued_low);
	o->l1_capacity = p->cfg.l1_size;
	o->mem_capacity = p->cfg.mem_bytes;
	p->tiers[1]->ops->stats(p->tiers[1], &o->l2, false);
	o->shared_on = p->shared != NULL;
	if (p->shared)
		tier_shared_stats(p->shared, &o->shared, false);
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
	struct tier_stats ignored;
	for (int k = 0; k < p->ntiers; k++)
		p->tiers[k]->ops->stats(p->tiers[k], &ignored, true);
	if (p->cfg.ssd)
		ssd_reset_stats(p->cfg.ssd);
}

void policy_stats_line(struct policy *p, char *buf, size_t n)
{
	struct policy_snapshot s;
	policy_snapshot(p, &s);
	stats_line(&s, buf, n);
}

void policy_tier_usage(struct policy *p, const char *key, const char *etag, uint64_t size,
		       uint64_t *l1, uint64_t *l2)
{
	uint64_t cs = p->cfg.chunk_size, n = (size + cs - 1) / cs;
	*l1 = *l2 = 0;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t in_l1 = 0, in_l2 = 0, want = i + 1 < n ? cs : size - i * cs;
		p->tiers[0]->ops->has(p->tiers[0], key, etag, i, &in_l1);
		p->tiers[1]->ops->has(p->tiers[1], key, etag, i, &in_l2);
		*l1 += in_l1;
		*l2 += in_l2 ? want : 0;
	}
}

void policy_note_open(struct policy *p, const char *key, const char *etag, uint64_t size)
{
	uint64_t n = (size + p->cfg.chunk_size - 1) / p->cfg.chunk_size;
	for (uint64_t i = 0; i < n && i < 1024; i++)
		for (int k = 1; k < p->ntiers; k++)
			p->tiers[k]->ops->touch(p->tiers[k], key, etag, i);
}

uint64_t policy_demote(struct policy *p) { return chunks_demote(p->chunks); }
