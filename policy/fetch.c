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
	pthread_t *threads;             /* the owner's */
	unsigned nthreads;
};

void fetch_run(struct fetcher *f, struct chunk **run, int n, bool drop_ref)
{
	struct tier_run r;
	bool prefetch[TIER_RUN_MAX];
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
	for (int i = 0; i < n; i++) {
		r.bufs[i] = key ? tfs_buf_get(f->pool, chunk_id(run[i])->len) : NULL;
		r.done[i] = false;
		r.err[i] = r.bufs[i] ? -EIO : -ENOMEM;
		r.pf_src[i] = 0;
		r.accesses[i] = 0;
		prefetch[i] = chunk_prefetched(run[i]);
	}
	for (int k = 0; k < f->ntiers; k++) {
		struct tier *t = f->tiers[k];
		for (int i = 0, next; i < n; i = next) {
			if (r.done[i] || !r.bufs[i]) {
				next = i + 1;
				continue;
			}
			uint64_t t0 = tfs_now_ns();
			t->ops->get(t, &r, i, &next);
			if (next <= i)
				next = i + 1;
			bool served = false;
			for (int j = i; j < next; j++) {
				if (!r.done[j])
					continue;
				served = true;
				/* copy-up: the tiers above this one keep it (a prefetch displaces
				 * only colder data there) */
				for (int m = 0; m < k; m++)
					f->tiers[m]->ops->fill(f->tiers[m], r.key, r.etag,
							       r.first + (uint64_t)j, r.bufs[j],
							       prefetch[j] && !r.pf_src[j]);
				chunks_complete(f->ct, run[j], 0, r.bufs[j], r.pf_src[j],
						r.accesses[j], t->is_source, drop_ref);
			}
			if (served)
				stats_lat_record(f->stats, t->lat_slot, (tfs_now_ns() - t0) / 1000);
		}
	}
	for (int i = 0; i < n; i++)
		if (!r.done[i]) {
			tfs_buf_put(r.bufs[i]);
			chunks_complete(f->ct, run[i], r.err[i] ? r.err[i] : -EIO, NULL, 0, 0, false,
					drop_ref);
		}
	free(key);
}

static void *fetch_thread(void *arg)
{
	struct fetcher *f = arg;
	struct chunk *run[TIER_RUN_MAX];
	bool low;
	int n;
	while ((n = chunks_next_run(f->ct, run, TIER_RUN_MAX, FETCH_RUN_BYTES, &low)) > 0) {
		fetch_run(f, run, n, true);
		chunks_run_done(f->ct, low);
	}
	return NULL;
}

int fetcher_new(struct chunks *ct, struct tier *const *tiers, int ntiers, struct buf_pool *pool,
		uint64_t chunk_size, struct policy_stats *stats, unsigned nthreads,
		struct fetcher **out)
{
	struct fetcher *f = calloc(1, sizeof(*f));
	if (!f || (nthreads && !(f->threads = calloc(nthreads, sizeof(*f->threads))))) {
		free(f);
		return -ENOMEM;
	}
	*f = (struct fetcher){ .ct = ct, .tiers = tiers, .ntiers = ntiers, .pool = pool,
			       .chunk_size = chunk_size, .stats = stats, .threads = f->threads };
	for (unsigned i = 0; i < nthreads; i++) {
		int r = pthread_create(&f->threads[i], NULL, fetch_thread, f);
		if (r) {
			fetcher_free(f);
			return -r;
		}
		f->nthreads++;
	}
	*out = f;
	return 0;
}

void fetcher_stop(struct fetcher *f)
{
	if (!f)
		return;
	chunks_stop(f->ct);
	for (unsigned i = 0; i < f->nthreads; i++)
		pthread_join(f->threads[i], NULL);
	f->nthreads = 0;
}

void fetcher_free(struct fetcher *f)
{
	if (!f)
		return;
	fetcher_stop(f);
	free(f->threads);
	free(f);
}
