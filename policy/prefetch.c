/*
 * prefetch.c - the two predictors that look beyond one open file (readahead within a file is in
 * reader.c; the budget and the accounting of all three are in chunks.c and the tiers).
 *
 * Across time (the interval predictor): each open of a file is an access; predict.h turns an
 * object's recent accesses into the time of its next one.  A background pass, every
 * prefetch_interval, looks at the objects predicted to be read within prefetch_window and
 *  - fetches the chunks (up to readahead_max bytes from the start) that neither memory nor L2
 *    holds, through the low-priority queue (one fetch thread, only when readahead is idle);
 *  - revalidates, shortly before the predicted access (2 passes ahead), an object whose
 *    metadata would have expired by then, so that the reader finds the current version already
 *    confirmed (policy_prefetch_confirmed) and, when it changed, its chunks already fetched.
 * Each predicted access is acted on once.
 *
 * Across files (the directory-order predictor): opens of the files of one directory in name
 * order (steps of up to PF_DIR_SKIP names) are an epoch over a data set.  After two in-order
 * opens, the first chunks of the next files are queued, twice as many per step in a row, up to
 * PF_DIR_AHEAD_MAX files ahead.  It needs the directory's listing in the cache (it never lists).
 *
 * Memory: at most PF_MAX_OBJS objects and PF_MAX_DIRS directories are tracked; beyond, the one
 * opened least recently is forgotten.  Nothing here persists across mounts.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "policy_i.h"
#include "predict.h"
#include "util.h"
#include "worker.h"

#define PF_OBJ_BUCKETS 1024
#define PF_MAX_OBJS 4096
#define PF_DIR_BUCKETS 64
#define PF_MAX_DIRS 256
#define PF_DIR_SKIP 3
#define PF_DIR_AHEAD_MAX 16

struct pf_obj {
	struct pf_obj *next;
	char *key;
	struct tfs_attr attr;      /* the version opened last, or what the predictor's HEAD said */
	uint64_t learned_ms;       /* when attr was learned or confirmed with S3 (monotonic) */
	bool confirmed;            /* attr is the predictor's own revalidation */
	struct pred_hist hist;
	uint64_t used_ms;          /* the last open (for forgetting the least recent) */
	uint64_t data_for;         /* the predicted access whose data was fetched ... */
	char data_etag[S3_ETAG_MAX]; /* ... at this version */
	uint64_t reval_for;        /* the predicted access revalidated for */
};

struct pf_dir {
	struct pf_dir *next;
	char *key;
	char *last;                /* the name opened last */
	uint32_t run;              /* in-order steps in a row */
	size_t ahead_to;           /* listing index prefetched up to (exclusive) */
	uint64_t used_ms;
};

/* What the predictors know: per-object access history, per-directory reading order. */
struct predictor {
	pthread_mutex_t lock;           /* guards everything below but the worker */
	struct pf_obj **objs;
	size_t nobjs;
	struct pf_dir **dirs;
	size_t ndirs;
	struct tfs_worker pass;         /* the interval predictor's pass, every prefetch_interval */
};

static uint64_t now_ms(const struct policy *p) { return policy_now_ms(p); }

int prefetch_init(struct policy *p)
{
	if (!(p->pf = calloc(1, sizeof(*p->pf))))
		return -ENOMEM;
	pthread_mutex_init(&p->pf->lock, NULL);
	p->pf->objs = calloc(PF_OBJ_BUCKETS, sizeof(*p->pf->objs));
	p->pf->dirs = calloc(PF_DIR_BUCKETS, sizeof(*p->pf->dirs));
	if (!p->pf->objs || !p->pf->dirs) {
		prefetch_destroy(p);
		return -ENOMEM;
	}
	return 0;
}

void prefetch_destroy(struct policy *p)
{
	if (!p->pf)
		return;
	prefetch_stop(p);
	for (size_t b = 0; p->pf->objs && b < PF_OBJ_BUCKETS; b++)
		for (struct pf_obj *o = p->pf->objs[b], *n; o; o = n) {
			n = o->next;
			free(o->key);
			free(o);
		}
	for (size_t b = 0; p->pf->dirs && b < PF_DIR_BUCKETS; b++)
		for (struct pf_dir *d = p->pf->dirs[b], *n; d; d = n) {
			n = d->next;
			free(d->key);
			free(d->last);
			free(d);
		}
	free(p->pf->objs);
	free(p->pf->dirs);
	pthread_mutex_destroy(&p->pf->lock);
	free(p->pf);
	p->pf = NULL;
}

static size_t bucket(const char *key, size_t n)
{
	return (size_t)(tfs_hash64(key, strlen(key), 0) % n);
}

static struct pf_obj *find_obj_locked(struct policy *p, const char *key)
{
	for (struct pf_obj *o = p->pf->objs[bucket(key, PF_OBJ_BUCKETS)]; o; o = o->next)
		if (strcmp(o->key, key) == 0)
			return o;
	return NULL;
}

/* Forgets the object opened least recently. */
static void forget_oldest_obj_locked(struct policy *p)
{
	struct pf_obj **victim = NULL;
	for (size_t b = 0; b < PF_OBJ_BUCKETS; b++)
		for (struct pf_obj **pp = &p->pf->objs[b]; *pp; pp = &(*pp)->next)
			if (!victim || (*pp)->used_ms < (*victim)->used_ms)
				victim = pp;
	if (victim) {
		struct pf_obj *o = *victim;
		*victim = o->next;
		free(o->key);
		free(o);
		p->pf->nobjs--;
	}
}

static struct pf_obj *obj_locked(struct policy *p, const char *key)
{
	struct pf_obj *o = find_obj_locked(p, key);
	if (o)
		return o;
	if (p->pf->nobjs >= PF_MAX_OBJS)
		forget_oldest_obj_locked(p);
	o = calloc(1, sizeof(*o));
	if (!o || !(o->key = strdup(key))) {
		free(o);
		return NULL;
	}
	size_t b = bucket(key, PF_OBJ_BUCKETS);
	o->next = p->pf->objs[b];
	p->pf->objs[b] = o;
	p->pf->nobjs++;
	return o;
}

static struct pf_dir *dir_locked(struct policy *p, const char *key)
{
	size_t b = bucket(key, PF_DIR_BUCKETS);
	for (struct pf_dir *d = p->pf->dirs[b]; d; d = d->next)
		if (strcmp(d->key, key) == 0)
			return d;
	if (p->pf->ndirs >= PF_MAX_DIRS) {
		struct pf_dir **victim = NULL;
		for (size_t i = 0; i < PF_DIR_BUCKETS; i++)
			for (struct pf_dir **pp = &p->pf->dirs[i]; *pp; pp = &(*pp)->next)
				if (!victim || (*pp)->used_ms < (*victim)->used_ms)
					victim = pp;
		struct pf_dir *d = *victim;
		*victim = d->next;
		free(d->key);
		free(d->last);
		free(d);
		p->pf->ndirs--;
	}
	struct pf_dir *d = calloc(1, sizeof(*d));
	if (!d || !(d->key = strdup(key))) {
		free(d);
		return NULL;
	}
	d->next = p->pf->dirs[b];
	p->pf->dirs[b] = d;
	p->pf->ndirs++;
	return d;
}

/* The index of name in the sorted listing, or -1. */
static long listing_index(const struct tfs_listing *l, const char *name)
{
	size_t lo = 0, hi = l->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(l->ents[mid].name, name);
		if (c == 0)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* The directory-order predictor learns that name was opened in dir_key. */
static void dir_opened(struct policy *p, const char *dir_key, const char *name, uint64_t now)
{
	struct tfs_listing *l = meta_cached_listing(p, dir_key);
	if (!l)
		return;
	long ci = listing_index(l, name);
	size_t from = 0, to = 0;
	if (ci >= 0) {
		pthread_mutex_lock(&p->pf->lock);
		struct pf_dir *d = dir_locked(p, dir_key);
		if (d) {
			long pi = d->last ? listing_index(l, d->last) : -1;
			if (pi >= 0 && ci > pi && ci - pi <= PF_DIR_SKIP + 1) {
				d->run++;
			} else if (pi != ci) {
				d->run = 0;
				d->ahead_to = 0;
			}
			char *last = strdup(name);
			if (last) {
				free(d->last);
				d->last = last;
			}
			d->used_ms = now;
			if (d->run >= 1) {
				size_t ahead = d->run >= PF_DIR_AHEAD_MAX / 2 ? PF_DIR_AHEAD_MAX
									    : 2 * (size_t)d->run;
				from = (size_t)ci + 1 > d->ahead_to ? (size_t)ci + 1 : d->ahead_to;
				to = (size_t)ci + 1 + ahead < l->n ? (size_t)ci + 1 + ahead : l->n;
				if (to > d->ahead_to)
					d->ahead_to = to;
			}
		}
		pthread_mutex_unlock(&p->pf->lock);
	}
	size_t klen = strlen(dir_key);
	for (size_t j = from; j < to; j++) {
		const struct tfs_dirent *e = &l->ents[j];
		if (e->attr.is_dir || !e->attr.size)
			continue;
		size_t nlen = strlen(e->name);
		char *key = malloc(klen + nlen + 1);
		if (!key)
			break;
		memcpy(key, dir_key, klen);
		memcpy(key + klen, e->name, nlen + 1);
		char etag[S3_ETAG_MAX];
		tfs_cattr_etag(&e->attr, etag, sizeof(etag));
		struct policy_object o = { .key = key, .etag = etag, .size = e->attr.size };
		int ret = chunks_queue(p->chunks, &o, 0, PF_DIRORDER, false);
		free(key);
		if (ret == -ENOSPC)
			break;
	}
	policy_listing_put(l);
}

void policy_file_opened(struct policy *p, const char *key, const struct tfs_attr *a,
			uint64_t learned_ms)
{
	if (!p->cfg.prefetch)
		return;
	uint64_t now = now_ms(p);
	pthread_mutex_lock(&p->pf->lock);
	struct pf_obj *o = obj_locked(p, key);
	if (o) {
		pred_note(&o->hist, now);
		o->used_ms = now;
		if (strcmp(o->attr.etag, a->etag) != 0 || learned_ms > o->learned_ms) {
			o->attr = *a;
			o->learned_ms = learned_ms;
			o->confirmed = false;
		}
	}
	pthread_mutex_unlock(&p->pf->lock);

	const char *slash = strrchr(key, '/');
	size_t dlen = slash ? (size_t)(slash - key) + 1 : 0;
	char *dir_key = strndup(key, dlen);
	if (dir_key) {
		dir_opened(p, dir_key, key + dlen, now);
		free(dir_key);
	}
}

int policy_prefetch_confirmed(struct policy *p, const char *key, uint64_t since_ms,
			      struct tfs_attr *out, uint64_t *at_ms)
{
	int ret = -ENOENT;
	pthread_mutex_lock(&p->pf->lock);
	struct pf_obj *o = find_obj_locked(p, key);
	if (o && o->confirmed && o->learned_ms > since_ms) {
		*out = o->attr;
		*at_ms = o->learned_ms;
		ret = 0;
	}
	pthread_mutex_unlock(&p->pf->lock);
	if (ret == 0 && !policy_fresh(p, key, *at_ms, now_ms(p)))
		ret = -ENOENT;
	return ret;
}

struct pf_cand {
	char *key;
	struct tfs_attr attr;
	uint64_t learned_ms, next;
	bool want_data, want_reval;
};

/* Fetches what memory and L2 lack of the first readahead_max bytes of the version. */
static void fetch_ahead(struct policy *p, const char *key, const struct tfs_attr *a)
{
	struct policy_object o = { .key = key, .etag = a->etag, .size = a->size };
	uint64_t cs = p->cfg.chunk_size;
	uint64_t bytes = a->size < p->cfg.readahead_max ? a->size : p->cfg.readahead_max;
	for (uint64_t i = 0; i * cs < bytes; i++)
		if (chunks_queue(p->chunks, &o, i, PF_INTERVAL, true) == -ENOSPC)
			break;
}

void policy_prefetch_pass(struct policy *p)
{
	if (!p->cfg.prefetch)
		return;
	uint64_t now = now_ms(p), lead = 2 * p->cfg.prefetch_interval_ms;
	struct pf_cand *c = NULL;
	size_t n = 0, cap = 0;

	pthread_mutex_lock(&p->pf->lock);
	for (size_t b = 0; b < PF_OBJ_BUCKETS; b++)
		for (struct pf_obj *o = p->pf->objs[b]; o; o = o->next) {
			uint64_t next;
			if (o->attr.is_dir || pred_next(&o->hist, now, &next) < 0 ||
			    next > now + p->cfg.prefetch_window_ms)
				continue;
			bool data = o->data_for != next || strcmp(o->data_etag, o->attr.etag) != 0;
			bool reval = o->reval_for != next && next <= now + lead;
			if (!data && !reval)
				continue;
			if (n == cap) {
				size_t ncap = cap ? 2 * cap : 16;
				struct pf_cand *nc = realloc(c, ncap * sizeof(*c));
				if (!nc)
					goto collected;
				c = nc;
				cap = ncap;
			}
			if (!(c[n].key = strdup(o->key)))
				goto collected;
			c[n].attr = o->attr;
			c[n].learned_ms = o->learned_ms;
			c[n].next = next;
			c[n].want_data = data;
			c[n].want_reval = reval;
			n++;
		}
collected:
	pthread_mutex_unlock(&p->pf->lock);

	for (size_t i = 0; i < n; i++) {
		struct pf_cand *x = &c[i];
		bool confirmed = false;
		/* metadata that would be stale when the reader comes: ask S3 now */
		if (x->want_reval && x->attr.etag[0] &&
		    !policy_fresh(p, x->key, x->learned_ms, x->next)) {
			struct tfs_attr fresh;
			bool changed = false;
			atomic_fetch_add_explicit(&p->stats.pf_revalidations, 1,
						  memory_order_relaxed);
			if (policy_revalidate(p, x->key, &x->attr, &fresh, &changed) == 0) {
				x->attr = fresh;
				confirmed = true;
				if (changed)
					x->want_data = true;
			}
		}
		if (x->want_data)
			fetch_ahead(p, x->key, &x->attr);
		pthread_mutex_lock(&p->pf->lock);
		struct pf_obj *o = find_obj_locked(p, x->key);
		if (o) {
			if (x->want_reval)
				o->reval_for = x->next;
			if (confirmed) {
				o->attr = x->attr;
				o->learned_ms = now_ms(p);
				o->confirmed = true;
			}
			if (x->want_data) {
				o->data_for = x->next;
				memcpy(o->data_etag, x->attr.etag, sizeof(o->data_etag));
			}
		}
		pthread_mutex_unlock(&p->pf->lock);
		free(x->key);
	}
	free(c);
}

static void pass(void *arg) { policy_prefetch_pass(arg); }

int prefetch_start(struct policy *p)
{
	if (!p->cfg.prefetch || p->cfg.prefetch_manual)
		return 0;
	return tfs_worker_start(&p->pf->pass, p->cfg.prefetch_interval_ms, pass, p);
}

void prefetch_stop(struct policy *p)
{
	if (p->pf)
		tfs_worker_stop(&p->pf->pass);
}

void prefetch_forget(struct policy *p, const struct policy_match *m)
{
	pthread_mutex_lock(&p->pf->lock);
	for (size_t b = 0; b < PF_OBJ_BUCKETS; b++)
		for (struct pf_obj *o = p->pf->objs[b]; o; o = o->next)
			if (!m || policy_match_key(m, o->key)) {
				o->confirmed = false;
				o->learned_ms = 0;
			}
	pthread_mutex_unlock(&p->pf->lock);
}
