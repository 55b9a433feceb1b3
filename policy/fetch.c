/*
 * fetch.c - the tier loop with copy-up, and the fetch threads (fetch.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetch.h"
#include "stats.h"
#include "util.h"

struct fetcher {
	struct chunks *ct;              /* not owned */
	struct tier *const *tiers;      /* not owned */
	int ntiers;
	struct buf_pool *pool;
	uint64_t chunk_size;
	struct policy_stats *stats;
	unsigned max_threads;
	_Atomic unsigned idle;          /* threads waiting for work */

	pthread_mutex_t lock;           /* guards the three below; a leaf */
	pthread_t *threads;             /* [max_threads] */
	unsigned nthreads;
	bool stopping;
};

/* One pass of the tier loop over the chunks of r whose first tier to ask (start[i]) is at or
 * above each tier: every tier is asked for what the ones above it missed; a tier may defer a
 * chunk (later[i]), which the tiers below then skip in this pass. */
static void tier_pass(struct fetcher *f, struct chunk **run, struct tier_run *r,
		      const int *start, int *later_tier, const bool *prefetch, bool drop_ref)
{
	for (int k = 0; k < f->ntiers; k++) {
		struct tier *t = f->tiers[k];
		for (int i = 0; i < r->n; i++)
			r->skip[i] = r->done[i] || !r->bufs[i] || start[i] > k || r->later[i];
		for (int i = 0, next; i < r->n; i = next) {
			if (r->skip[i]) {
				next = i + 1;
				continue;
			}
			uint64_t t0 = tfs_now_ns();
			t->ops->get(t, r, i, &next);
			if (next <= i)
				next = i + 1;
			bool served = false;
			for (int j = i; j < next; j++) {
				if (r->later[j] && later_tier[j] < 0)
					later_tier[j] = k;
				if (r->skip[j] || !r->done[j])
					continue;
				r->skip[j] = true;
				served = true;
				/* the readers first; then copy-up: the tiers above this one keep
				 * it (a prefetch displaces only colder data there).  A fill may
				 * wait for a slow disk: that slows this fetch, not the readers of
				 * this chunk, and loses nothing. */
				struct tfs_buf *b = r->bufs[j];
				tfs_buf_ref(b);
				chunks_complete(f->ct, run[j], 0, b, r->pf_src[j], r->accesses[j],
						t->is_source, drop_ref);
				for (int m = 0; m < k; m++)
					f->tiers[m]->ops->fill(f->tiers[m], r->key, r->etag,
							       r->first + (uint64_t)j, b,
							       prefetch[j] && !r->pf_src[j]);
				tfs_buf_put(b);
			}
			if (served)
				stats_lat_record(f->stats, t->lat_slot, (tfs_now_ns() - t0) / 1000);
		}
	}
}

void fetch_run(struct fetcher *f, struct chunk **run, int n, bool drop_ref)
{
	struct tier_run r;
	bool prefetch[TIER_RUN_MAX] = { false };
	int start[TIER_RUN_MAX] = { 0 }, later_tier[TIER_RUN_MAX] = { 0 };
	memset(&r, 0, offsetof(struct tier_run, bufs));
	const struct chunk_id *id0 = chunk_id(run[0]);
	/* the run's identity is copied: run[0] may be completed, and freed, before the others */
	char *key = strdup(id0->key), etag[S3_ETAG_MAX];
	snprintf(etag, sizeof(etag), "%s", id0->etag);
	r.key = key;
	r.etag = etag;
	r.first = id0->idx;
	r.chunk_size = f->chunk_size;
	r.n = n;
	r.urgent = !drop_ref;
	for (int i = 0; i < n; i++) {
		r.bufs[i] = key ? tfs_buf_get(f->pool, chunk_id(run[i])->len) : NULL;
		r.done[i] = r.later[i] = false;
		r.err[i] = r.bufs[i] ? -EIO : -ENOMEM;
		r.pf_src[i] = 0;
		r.accesses[i] = 0;
		prefetch[i] = chunk_prefetched(run[i]);
		r.stream = r.stream || n > 1 || prefetch[i];
		start[i] = 0;
		later_tier[i] = -1;
	}
	tier_pass(f, run, &r, start, later_tier, prefetch, drop_ref);
	/* what a tier deferred (another machine is fetching it into that tier): asked of it
	 * again, now that the tiers below served the rest; it waits this time */
	bool again = false;
	for (int i = 0; i < n; i++) {
		start[i] = f->ntiers;
		if (r.later[i] && !r.done[i]) {
			start[i] = later_tier[i];
			again = true;
		}
		r.later[i] = false;
	}
	if (again) {
		r.again = true;
		tier_pass(f, run, &r, start, later_tier, prefetch, drop_ref);
	}
	for (int i = 0; i < n; i++)
		if (!r.done[i]) {
			tfs_buf_put(r.bufs[i]);
			chunks_complete(f->ct, run[i], r.err[i] ? r.err[i] : -EIO, NULL, 0, 0, false,
					drop_ref);
		}
	free(key);
}

static void *fetch_thread(void *arg);

/* One more thread, unless stopping or at the most; 0 or -errno. */
static int grow(struct fetcher *f)
{
	int r = 0;
	pthread_mutex_lock(&f->lock);
	if (!f->stopping && f->nthreads < f->max_threads &&
	    (r = -pthread_create(&f->threads[f->nthreads], NULL, fetch_thread, f)) == 0)
		f->nthreads++;
	pthread_mutex_unlock(&f->lock);
	return r;
}

static void *fetch_thread(void *arg)
{
	struct fetcher *f = arg;
	struct chunk *run[TIER_RUN_MAX];
	bool low;
	for (;;) {
		atomic_fetch_add_explicit(&f->idle, 1, memory_order_relaxed);
		int n = chunks_next_run(f->ct, run, TIER_RUN_MAX, FETCH_RUN_BYTES, &low);
		/* the last idle thread took work: one more waits for the next (up to the most,
		 * the S3 gate deciding how many of them fetch at once) */
		if (atomic_fetch_sub_explicit(&f->idle, 1, memory_order_relaxed) == 1 && n > 0)
			grow(f);
		if (n <= 0)
			break;
		fetch_run(f, run, n, true);
		chunks_run_done(f->ct, low);
	}
	return NULL;
}

int fetcher_new(struct chunks *ct, struct tier *const *tiers, int ntiers, struct buf_pool *pool,
		uint64_t chunk_size, struct policy_stats *stats, unsigned start_threads,
		unsigned max_threads, struct fetcher **out)
{
	if (start_threads > max_threads)
		start_threads = max_threads;
	struct fetcher *f = calloc(1, sizeof(*f));
	if (!f || (max_threads && !(f->threads = calloc(max_threads, sizeof(*f->threads))))) {
		free(f);
		return -ENOMEM;
	}
	*f = (struct fetcher){ .ct = ct, .tiers = tiers, .ntiers = ntiers, .pool = pool,
			       .chunk_size = chunk_size, .stats = stats,
			       .max_threads = max_threads, .threads = f->threads };
	pthread_mutex_init(&f->lock, NULL);
	for (unsigned i = 0; i < start_threads; i++) {
		int r = grow(f);
		if (r) {
			fetcher_free(f);
			return r;
		}
	}
	*out = f;
	return 0;
}

void fetcher_stop(struct fetcher *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	f->stopping = true; /* no thread starts after this */
	pthread_mutex_unlock(&f->lock);
	chunks_stop(f->ct);
	for (unsigned i = 0; i < f->nthreads; i++)
		pthread_join(f->threads[i], NULL);
	f->nthreads = 0;
}

unsigned fetcher_threads(struct fetcher *f)
{
	pthread_mutex_lock(&f->lock);
	unsigned n = f->nthreads;
	pthread_mutex_unlock(&f->lock);
	return n;
}

void fetcher_free(struct fetcher *f)
{
	if (!f)
		return;
	fetcher_stop(f);
	pthread_mutex_destroy(&f->lock);
	free(f->threads);
	free(f);
}
