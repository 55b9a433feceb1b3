/*
 * chunks.c - the chunk table: one fetch per missing chunk however many readers want it (single
 * flight), background fetches for readahead, and a bounded in-memory buffer of recently fetched
 * chunks, evicted least recently used first.
 *
 * A chunk is identified by (key, ETag, index); its bytes are fetched with a ranged GET that
 * names the ETag (If-Match, and the response's ETag is checked), so a chunk of one version never
 * lands under another version's identity.
 *
 * Life of a chunk: LOADING (linked in the table, maybe queued) -> READY (on the LRU) or FAILED
 * (unlinked at once, so the next reader tries again).  References: the table holds one while
 * linked, the queue one while queued, and each reader one; the last put frees it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l1.h"
#include "log.h"
#include "policy_i.h"
#include "util.h"

#define CHUNK_BUCKETS 4096
#define FETCH_RUN_BYTES (8u << 20) /* most bytes one background GET fetches */
#define FETCH_RUN_MAX 128          /* most chunks in one background GET */

enum chunk_state { CH_LOADING, CH_READY, CH_FAILED };

struct chunk {
	/* all fields guarded by p->chunk_lock, except data/len, immutable once READY */
	struct chunk *hnext;
	struct chunk *lru_prev, *lru_next;
	struct chunk *qnext;
	uint64_t hash;
	char *key;
	char etag[S3_ETAG_MAX];
	uint64_t idx;
	uint64_t obj_size;
	enum chunk_state state;
	bool linked, queued, on_lru;
	bool low;               /* queued on the low-priority queue */
	/* Prefetch accounting: pf_src is the predictor that asked for the chunk (PF_NONE for a
	 * reader's); inflight while that fetch is counted in pf_inflight_bytes; unread while it
	 * holds an unread prefetch (counted in pf_unread_bytes, ended by a reader: used, or by
	 * leaving the cache: wasted). */
	uint8_t pf_src;
	bool inflight, unread;
	bool from_s3;           /* fetched from S3: to be written to L2 once ready */
	bool in_l1;             /* on the L1 list (else on the transient LRU when READY) */
	uint64_t accesses;      /* readers' accesses, with those L2 counted before it loaded */
	uint64_t last_access_ms;
	int err;
	unsigned refs;
	char *data;
	size_t len;
};

static void free_list(struct policy *p, struct chunk *l);

static uint64_t now_ms(const struct policy *p)
{
	return p->cfg.now_ms ? p->cfg.now_ms() : tfs_now_ms();
}

static uint64_t chunk_hash(const char *key, const char *etag, uint64_t idx)
{
	uint64_t h = tfs_hash64(key, strlen(key), idx);
	return tfs_hash64(etag, strlen(etag), h);
}

int chunks_init(struct policy *p)
{
	pthread_mutex_init(&p->chunk_lock, NULL);
	pthread_cond_init(&p->chunk_done, NULL);
	pthread_cond_init(&p->queue_cond, NULL);
	pthread_mutex_init(&p->buf_lock, NULL);
	p->chunk_buckets = CHUNK_BUCKETS;
	p->chunk_tab = calloc(p->chunk_buckets, sizeof(*p->chunk_tab));
	return p->chunk_tab ? 0 : -ENOMEM;
}

const char *chunk_data(const struct chunk *c, size_t *len)
{
	*len = c->len;
	return c->data;
}

static size_t chunk_len(const struct policy *p, uint64_t obj_size, uint64_t idx)
{
	uint64_t start = idx * p->cfg.chunk_size;
	uint64_t left = obj_size - start;
	return (size_t)(left < p->cfg.chunk_size ? left : p->cfg.chunk_size);
}

/* A pool of chunk_size buffers: a freshly allocated 1 MiB buffer is a new mapping whose pages
 * fault and are zeroed on first touch, which cost a sixth of the warm (L2) read path. */
static char *buf_get(struct policy *p, size_t len)
{
	char *b = NULL;
	if (len == p->cfg.chunk_size) {
		pthread_mutex_lock(&p->buf_lock);
		if (p->nbufs)
			b = p->bufs[--p->nbufs];
		pthread_mutex_unlock(&p->buf_lock);
	}
	/* page-aligned, so that L2 can write it with O_DIRECT */
	if (!b && posix_memalign((void **)&b, 4096, len ? len : 1) != 0)
		b = NULL;
	return b;
}

static void buf_put(struct policy *p, char *b, size_t len)
{
	if (b && len == p->cfg.chunk_size) {
		pthread_mutex_lock(&p->buf_lock);
		if (p->nbufs < BUF_POOL_MAX) {
			p->bufs[p->nbufs++] = b;
			b = NULL;
		}
		pthread_mutex_unlock(&p->buf_lock);
	}
	free(b);
}

static void chunk_free(struct policy *p, struct chunk *c)
{
	if (c->unread) {
		/* leaving memory unread: L2 keeps the prefetch if it holds the chunk */
		if (!p->l2 || c->state != CH_READY ||
		    l2_take_prefetch(p->l2, c->key, c->etag, c->idx, c->pf_src, c->len) < 0) {
			atomic_fetch_add_explicit(&p->stats.pf[c->pf_src].wasted, 1,
						  memory_order_relaxed);
			atomic_fetch_sub_explicit(&p->stats.pf_unread_bytes, c->len,
						  memory_order_relaxed);
		}
	}
	if (c->inflight)
		atomic_fetch_sub_explicit(&p->stats.pf_inflight_bytes, c->len, memory_order_relaxed);
	buf_put(p, c->data, c->len);
	free(c->key);
	free(c);
}

static struct chunk *find_locked(struct policy *p, const char *key, const char *etag, uint64_t idx,
				 uint64_t h)
{
	for (struct chunk *c = p->chunk_tab[h % p->chunk_buckets]; c; c = c->hnext)
		if (c->hash == h && c->idx == idx && strcmp(c->etag, etag) == 0 &&
		    strcmp(c->key, key) == 0)
			return c;
	return NULL;
}

/* The two recency lists (the transient LRU and L1) share the links of a chunk, which is on at
 * most one of them. */
static void list_unlink(struct chunk **head, struct chunk **tail, struct chunk *c)
{
	if (c->lru_prev)
		c->lru_prev->lru_next = c->lru_next;
	else
		*head = c->lru_next;
	if (c->lru_next)
		c->lru_next->lru_prev = c->lru_prev;
	else
		*tail = c->lru_prev;
	c->lru_prev = c->lru_next = NULL;
}

static void list_push_front(struct chunk **head, struct chunk **tail, struct chunk *c)
{
	c->lru_prev = NULL;
	c->lru_next = *head;
	if (*head)
		(*head)->lru_prev = c;
	*head = c;
	if (!*tail)
		*tail = c;
}

static void lru_remove(struct policy *p, struct chunk *c)
{
	if (!c->on_lru)
		return;
	list_unlink(&p->lru_head, &p->lru_tail, c);
	c->on_lru = false;
}

static void lru_front(struct policy *p, struct chunk *c)
{
	lru_remove(p, c);
	list_push_front(&p->lru_head, &p->lru_tail, c);
	c->on_lru = true;
}

static void l1_remove(struct policy *p, struct chunk *c)
{
	if (!c->in_l1)
		return;
	list_unlink(&p->l1_head, &p->l1_tail, c);
	c->in_l1 = false;
	p->l1_used -= c->len;
	p->l1_entries--;
	p->mem_used += c->len; /* back under the transient budget until it goes */
}

static void l1_front(struct policy *p, struct chunk *c)
{
	if (c->in_l1) {
		if (p->l1_head == c)
			return;
		l1_remove(p, c);
	} else {
		lru_remove(p, c);
	}
	list_push_front(&p->l1_head, &p->l1_tail, c);
	c->in_l1 = true;
	p->l1_used += c->len;
	p->l1_entries++;
	p->mem_used -= c->len;
}

/* Unlinks c from the table; returns true when the table's reference was the last one. */
static bool unlink_locked(struct policy *p, struct chunk *c)
{
	struct chunk **pp = &p->chunk_tab[c->hash % p->chunk_buckets];
	while (*pp != c)
		pp = &(*pp)->hnext;
	*pp = c->hnext;
	c->linked = false;
	l1_remove(p, c);
	lru_remove(p, c);
	p->mem_used -= c->len;
	return --c->refs == 0;
}

/* Evicts unreferenced READY chunks from the LRU tail until under the cap.  Returns a list
 * (through qnext) of chunks to free once the lock is dropped. */
static struct chunk *evict_locked(struct policy *p, uint64_t want_free)
{
	struct chunk *victims = NULL;
	struct chunk *c = p->lru_tail;
	while (c && p->mem_used + want_free > p->cfg.mem_bytes) {
		struct chunk *prev = c->lru_prev;
		if (c->refs == 1 && unlink_locked(p, c)) {
			c->qnext = victims;
			victims = c;
		}
		c = prev;
	}
	return victims;
}

/* L1 over l1_size: its least recently used chunks leave memory (L2 keeps them).  Returns a
 * list of chunks to free once the lock is dropped. */
static struct chunk *l1_evict_locked(struct policy *p, struct chunk *victims)
{
	struct chunk *c = p->l1_tail;
	while (c && p->l1_used > p->cfg.l1_size) {
		struct chunk *prev = c->lru_prev;
		l1_remove(p, c);
		atomic_fetch_add_explicit(&p->stats.l1_evictions, 1, memory_order_relaxed);
		if (c->refs == 1 && unlink_locked(p, c)) {
			c->qnext = victims;
			victims = c;
		} else if (c->linked) {
			lru_front(p, c); /* in use: it goes with the transient ones */
		}
		c = prev;
	}
	return victims;
}

/* Counts a reader's access to the ready chunk c and promotes it to L1 at the threshold.  (The
 * caller tells L2 of the access after dropping the lock: l2_note_access hashes the identity
 * and takes L2's lock, work the chunk table's lock need not cover.) */
static struct chunk *access_locked(struct policy *p, struct chunk *c, bool count)
{
	struct chunk *victims = NULL;
	if (count) {
		c->accesses++;
		c->last_access_ms = now_ms(p);
		atomic_fetch_add_explicit(c->in_l1 ? &p->stats.l1_hits : &p->stats.l1_misses, 1,
					  memory_order_relaxed);
	}
	if (c->in_l1) {
		l1_front(p, c);
	} else if (count && c->linked && p->cfg.l1_size &&
		   l1_should_promote(c->accesses, p->cfg.promote_after)) {
		l1_front(p, c);
		atomic_fetch_add_explicit(&p->stats.promotions, 1, memory_order_relaxed);
		victims = l1_evict_locked(p, NULL);
	} else if (c->on_lru) {
		lru_front(p, c);
	}
	return victims;
}

uint64_t policy_demote(struct policy *p)
{
	uint64_t n = 0, now = now_ms(p);
	struct chunk *victims = NULL;
	pthread_mutex_lock(&p->chunk_lock);
	for (struct chunk *c = p->l1_tail, *prev; c; c = prev) {
		prev = c->lru_prev;
		if (!l1_should_demote(c->last_access_ms, now, p->cfg.demote_after_ms))
			continue;
		l1_remove(p, c);
		n++;
		if (c->refs == 1 && unlink_locked(p, c)) {
			c->qnext = victims;
			victims = c;
		} else if (c->linked) {
			lru_front(p, c);
		}
	}
	pthread_mutex_unlock(&p->chunk_lock);
	free_list(p, victims);
	if (n) {
		atomic_fetch_add_explicit(&p->stats.demotions, n, memory_order_relaxed);
		tfs_debug("l1: demoted %llu chunks not read for %llu s", (unsigned long long)n,
			  (unsigned long long)(p->cfg.demote_after_ms / 1000));
	}
	return n;
}

static void *demote_thread(void *arg)
{
	struct policy *p = arg;
	pthread_mutex_lock(&p->chunk_lock);
	while (!p->stopping) {
		struct timespec ts = tfs_deadline_in(p->cfg.demote_interval_ms);
		pthread_cond_timedwait(&p->queue_cond, &p->chunk_lock, &ts);
		if (p->stopping)
			break;
		pthread_mutex_unlock(&p->chunk_lock);
		policy_demote(p);
		pthread_mutex_lock(&p->chunk_lock);
	}
	pthread_mutex_unlock(&p->chunk_lock);
	return NULL;
}

/* Drops from memory every ready chunk pred() accepts; a chunk in use is unlinked and freed by
 * its last reader.  Returns how many. */
static uint64_t drop_where(struct policy *p, bool (*pred)(void *ctx, const struct chunk *c),
			  void *ctx)
{
	struct chunk *victims = NULL;
	uint64_t n = 0;
	pthread_mutex_lock(&p->chunk_lock);
	for (size_t b = 0; b < p->chunk_buckets; b++)
		for (struct chunk *c = p->chunk_tab[b], *next; c; c = next) {
			next = c->hnext;
			if (c->state != CH_READY || !pred(ctx, c))
				continue;
			n++;
			if (unlink_locked(p, c)) {
				c->qnext = victims;
				victims = c;
			}
		}
	pthread_mutex_unlock(&p->chunk_lock);
	free_list(p, victims);
	return n;
}

struct key_match {
	bool (*match)(void *ctx, const char *key);
	void *ctx;
};

static bool key_pred(void *arg, const struct chunk *c)
{
	struct key_match *m = arg;
	return m->match(m->ctx, c->key);
}

uint64_t chunks_drop_matching(struct policy *p, bool (*match)(void *ctx, const char *key),
			      void *ctx)
{
	struct key_match m = { match, ctx };
	return drop_where(p, key_pred, &m);
}

struct version {
	const char *key, *etag;
};

static bool other_version(void *arg, const struct chunk *c)
{
	const struct version *v = arg;
	return strcmp(c->key, v->key) == 0 && strcmp(c->etag, v->etag) != 0;
}

void policy_object_changed(struct policy *p, const char *key, const char *etag)
{
	struct version v = { key, etag };
	uint64_t n = drop_where(p, other_version, &v);
	atomic_fetch_add_explicit(&p->stats.revalidated_changed, 1, memory_order_relaxed);
	if (p->l2)
		l2_open_version(p->l2, key, etag);
	tfs_debug("'%s' changed: %llu chunks of old versions dropped from memory", key,
		  (unsigned long long)n);
}

bool chunk_in_l1(struct policy *p, const char *key, const char *etag, uint64_t idx, size_t *len)
{
	uint64_t h = chunk_hash(key, etag, idx);
	pthread_mutex_lock(&p->chunk_lock);
	struct chunk *c = find_locked(p, key, etag, idx, h);
	bool in = c && c->in_l1;
	if (in)
		*len = c->len;
	pthread_mutex_unlock(&p->chunk_lock);
	return in;
}

static void free_list(struct policy *p, struct chunk *l)
{
	while (l) {
		struct chunk *n = l->qnext;
		chunk_free(p, l);
		l = n;
	}
}

static struct chunk *new_chunk_locked(struct policy *p, const struct policy_object *o,
				      uint64_t idx, uint64_t h)
{
	struct chunk *c = calloc(1, sizeof(*c));
	if (!c || !(c->key = strdup(o->key))) {
		free(c);
		return NULL;
	}
	snprintf(c->etag, sizeof(c->etag), "%s", o->etag);
	c->idx = idx;
	c->hash = h;
	c->obj_size = o->size;
	c->len = chunk_len(p, o->size, idx);
	c->state = CH_LOADING;
	c->linked = true;
	c->refs = 1; /* the table's */
	c->hnext = p->chunk_tab[h % p->chunk_buckets];
	p->chunk_tab[h % p->chunk_buckets] = c;
	p->mem_used += c->len;
	return c;
}

static void l2_fill_done(void *owner, void *obj) { chunk_put(owner, obj); }

/* Records the outcome of a fetch of c and wakes its waiters.  Called with chunk_lock held;
 * returns chunks to free after unlocking. */
static struct chunk *complete_locked(struct policy *p, struct chunk *c, int err, uint8_t l2_src)
{
	struct chunk *victims = NULL;
	if (c->inflight) {
		c->inflight = false;
		atomic_fetch_sub_explicit(&p->stats.pf_inflight_bytes, c->len, memory_order_relaxed);
	}
	if (!err && c->pf_src && !c->unread) {
		/* a prefetch: a new one, or one L2 held unread (it comes back to memory) */
		if (l2_src) {
			c->pf_src = l2_src;
		} else {
			atomic_fetch_add_explicit(&p->stats.pf[c->pf_src].issued, 1,
						  memory_order_relaxed);
			atomic_fetch_add_explicit(&p->stats.pf_unread_bytes, c->len,
						  memory_order_relaxed);
		}
		c->unread = true;
	} else if (!err && l2_src) {
		/* a reader's fetch found in L2 what a predictor had put there */
		atomic_fetch_add_explicit(&p->stats.pf[l2_src].used, 1, memory_order_relaxed);
		atomic_fetch_sub_explicit(&p->stats.pf_unread_bytes, c->len, memory_order_relaxed);
	} else if (!err && c->from_s3) {
		atomic_fetch_add_explicit(&p->stats.demand_s3_chunks, 1, memory_order_relaxed);
	}
	if (err) {
		c->state = CH_FAILED;
		c->err = err;
		if (c->linked && unlink_locked(p, c)) {
			c->qnext = NULL;
			victims = c; /* nobody else held it */
		}
	} else {
		c->state = CH_READY;
		/* to L2 off the reader's path: the writer holds a reference meanwhile */
		if (c->from_s3 && p->l2) {
			c->refs++;
			if (l2_write_async(p->l2, c->key, c->etag, c->idx, c->data, c->len,
					   c->unread, l2_fill_done, p, c) < 0)
				c->refs--;
		}
		if (c->linked) {
			lru_front(p, c);
			victims = evict_locked(p, 0);
		}
	}
	pthread_cond_broadcast(&p->chunk_done);
	return victims;
}

/* Drops one reference; with the lock held, returns c if it must be freed after unlocking. */
static struct chunk *put_locked(struct chunk *c)
{
	if (--c->refs == 0) {
		c->qnext = NULL;
		return c;
	}
	return NULL;
}

/* One ranged GET for run[0..n), adjacent chunks of one version, scattered into bufs. */
static int fetch_s3(struct policy *p, struct chunk **run, char **bufs, int n)
{
	struct iovec iov[FETCH_RUN_MAX];
	uint64_t total = 0;
	for (int i = 0; i < n; i++) {
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = run[i]->len;
		total += run[i]->len;
	}
	struct s3_get g = {
		.key = run[0]->key,
		.ranged = true,
		.offset = run[0]->idx * p->cfg.chunk_size,
		.length = total,
		.if_match = run[0]->etag[0] ? run[0]->etag : NULL,
		.iov = iov,
		.iovcnt = n,
	};
	return s3_get(p->s3, &g);
}

/* Records the outcome of c's fetch and wakes its waiters; drops the fetcher's reference when
 * drop_ref (a fetch thread's) and not when the fetcher is a reader who goes on using c. */
static void finish(struct policy *p, struct chunk *c, int err, uint8_t l2_src, bool drop_ref)
{
	pthread_mutex_lock(&p->chunk_lock);
	struct chunk *victims = complete_locked(p, c, err, l2_src);
	struct chunk *f = drop_ref ? put_locked(c) : NULL;
	pthread_mutex_unlock(&p->chunk_lock);
	free_list(p, victims);
	if (f)
		chunk_free(p, f);
}

/* Fetches run[0..n), adjacent chunks of one object version (no lock held), and finishes each:
 * a chunk found in L2 as soon as it is read (so that a reader waiting for the first chunk of a
 * run does not wait for the whole run), the others from S3 with one ranged GET per stretch of
 * adjacent misses, scattered straight into each chunk's buffer. */
static void fetch_run(struct policy *p, struct chunk **run, int n, bool drop_ref)
{
	char *bufs[FETCH_RUN_MAX];
	bool hit[FETCH_RUN_MAX];
	uint8_t src = 0;

	if (p->l2 && n > 1)
		l2_will_read(p->l2, run[0]->key, run[0]->etag, run[0]->idx, (size_t)n);
	for (int i = 0; i < n; i++) {
		bufs[i] = buf_get(p, run[i]->len);
		size_t got = 0;
		uint64_t acc = 0, t0 = tfs_now_ns();
		hit[i] = bufs[i] && p->l2 &&
			 l2_read(p->l2, run[i]->key, run[i]->etag, run[i]->idx, bufs[i],
				 run[i]->len, &got, &acc, &src) == 0 && got == run[i]->len;
		if (hit[i])
			policy_lat_record(p, TIER_L2, (tfs_now_ns() - t0) / 1000);
		if (hit[i]) {
			run[i]->accesses = acc; /* what L2 has counted of it, across mounts */
			run[i]->data = bufs[i]; /* published by the state change in finish() */
			run[i]->from_s3 = false;
			finish(p, run[i], 0, src, drop_ref);
		}
	}
	for (int a = 0; a < n;) {
		if (hit[a]) {
			a++;
			continue;
		}
		int b = a;
		bool nomem = false;
		while (b < n && !hit[b])
			nomem |= !bufs[b++];
		uint64_t t0 = tfs_now_ns();
		int ret = nomem ? -ENOMEM : fetch_s3(p, run + a, bufs + a, b - a);
		if (ret == 0)
			policy_lat_record(p, TIER_S3, (tfs_now_ns() - t0) / 1000);
		for (int i = a; i < b; i++) {
			if (ret == 0) {
				run[i]->data = bufs[i];
				run[i]->from_s3 = true;
			} else {
				buf_put(p, bufs[i], run[i]->len);
			}
			finish(p, run[i], ret, 0, drop_ref);
		}
		a = b;
	}
}

void chunk_put(struct policy *p, struct chunk *c)
{
	pthread_mutex_lock(&p->chunk_lock);
	struct chunk *f = put_locked(c);
	pthread_mutex_unlock(&p->chunk_lock);
	if (f)
		chunk_free(p, f);
}

static void dequeue_locked(struct policy *p, struct chunk *c)
{
	struct chunk **head = c->low ? &p->lowq_head : &p->queue_head;
	struct chunk **tail = c->low ? &p->lowq_tail : &p->queue_tail;
	struct chunk **pp = head, *prev = NULL;
	while (*pp && *pp != c) {
		prev = *pp;
		pp = &(*pp)->qnext;
	}
	if (!*pp)
		return;
	*pp = c->qnext;
	if (*tail == c)
		*tail = prev;
	c->qnext = NULL;
	c->queued = c->low = false;
	c->refs--; /* the queue's reference; the caller holds another */
}

int chunk_get(struct policy *p, const struct policy_object *o, uint64_t idx, bool count,
	      struct chunk **out)
{
	uint64_t h = chunk_hash(o->key, o->etag, idx), t0 = tfs_now_ns();
	struct chunk *victims = NULL;
	int ret = 0;
	bool served_from_memory = false;

	pthread_mutex_lock(&p->chunk_lock);
	struct chunk *c = find_locked(p, o->key, o->etag, idx, h);
	bool mine = false;
	if (c) {
		c->refs++;
		if (c->state == CH_LOADING) /* not ready: a miss, though one on its way */
			atomic_fetch_add_explicit(&p->stats.chunk_misses, 1, memory_order_relaxed);
		if (c->state == CH_LOADING && c->queued) {
			/* Queued for readahead but not started: the reader fetches it now, and
			 * the prefetch did not help. */
			dequeue_locked(p, c);
			if (c->inflight) {
				c->inflight = false;
				atomic_fetch_sub_explicit(&p->stats.pf_inflight_bytes, c->len,
							  memory_order_relaxed);
			}
			c->pf_src = PF_NONE;
			mine = true;
		} else if (c->state == CH_LOADING) {
			atomic_fetch_add_explicit(&p->stats.chunk_waits, 1, memory_order_relaxed);
			while (c->state == CH_LOADING)
				pthread_cond_wait(&p->chunk_done, &p->chunk_lock);
		} else {
			atomic_fetch_add_explicit(&p->stats.chunk_hits, 1, memory_order_relaxed);
			served_from_memory = true;
		}
	} else {
		victims = evict_locked(p, chunk_len(p, o->size, idx));
		c = new_chunk_locked(p, o, idx, h);
		if (!c) {
			pthread_mutex_unlock(&p->chunk_lock);
			free_list(p, victims);
			return -ENOMEM;
		}
		c->refs++;
		mine = true;
		atomic_fetch_add_explicit(&p->stats.chunk_misses, 1, memory_order_relaxed);
	}
	pthread_mutex_unlock(&p->chunk_lock);
	free_list(p, victims);
	victims = NULL;

	if (mine)
		fetch_run(p, &c, 1, false);

	pthread_mutex_lock(&p->chunk_lock);
	if (c->state == CH_READY && c->unread) {
		/* a prefetched chunk reaches its first reader (having waited for it, maybe) */
		c->unread = false;
		atomic_fetch_add_explicit(&p->stats.pf[c->pf_src].used, 1, memory_order_relaxed);
		atomic_fetch_sub_explicit(&p->stats.pf_unread_bytes, c->len, memory_order_relaxed);
	}
	if (c->state == CH_READY) {
		bool l1 = c->in_l1;
		victims = access_locked(p, c, count);
		*out = c;
		if (served_from_memory && count)
			policy_lat_record(p, l1 ? TIER_L1 : TIER_MEM, (tfs_now_ns() - t0) / 1000);
	} else {
		ret = c->err ? c->err : -EIO;
		victims = put_locked(c);
	}
	pthread_mutex_unlock(&p->chunk_lock);
	free_list(p, victims);
	if (ret == 0 && count && p->l2) /* a no-op until the chunk is in L2 */
		l2_note_access(p->l2, o->key, o->etag, idx);
	return ret;
}

int chunk_prefetch(struct policy *p, const struct policy_object *o, uint64_t idx,
		   enum policy_pf_src src, bool if_absent_in_l2)
{
	uint64_t h = chunk_hash(o->key, o->etag, idx);
	size_t len = chunk_len(p, o->size, idx);
	struct chunk *victims = NULL;
	int ret = -EEXIST;

	if (src != PF_NONE &&
	    atomic_load_explicit(&p->stats.pf_inflight_bytes, memory_order_relaxed) +
	    atomic_load_explicit(&p->stats.pf_unread_bytes, memory_order_relaxed) + len >
	    p->cfg.prefetch_budget)
		return -ENOSPC;
	if (if_absent_in_l2 && p->l2 && l2_chunk_bytes(p->l2, o->key, o->etag, idx))
		return -EEXIST;
	pthread_mutex_lock(&p->chunk_lock);
	if (p->stopping || find_locked(p, o->key, o->etag, idx, h))
		goto out;
	/* memory: a prefetch displaces only the transient buffer (chunks already handed to L2),
	 * never L1 */
	victims = evict_locked(p, len);
	ret = -ENOSPC;
	if (p->mem_used + len > p->cfg.mem_bytes)
		goto out; /* the buffer is spent on chunks in use: prefetch yields */
	struct chunk *c = new_chunk_locked(p, o, idx, h);
	ret = -ENOMEM;
	if (!c)
		goto out;
	ret = 0;
	c->refs++; /* the queue's */
	c->queued = true;
	c->pf_src = (uint8_t)src;
	if (src != PF_NONE) {
		c->inflight = true;
		atomic_fetch_add_explicit(&p->stats.pf_inflight_bytes, len, memory_order_relaxed);
	}
	c->low = src == PF_INTERVAL;
	struct chunk **head = c->low ? &p->lowq_head : &p->queue_head;
	struct chunk **tail = c->low ? &p->lowq_tail : &p->queue_tail;
	if (*tail)
		(*tail)->qnext = c;
	else
		*head = c;
	*tail = c;
	pthread_cond_broadcast(&p->queue_cond); /* the demotion thread waits on it too */
out:
	pthread_mutex_unlock(&p->chunk_lock);
	free_list(p, victims);
	return ret;
}

/* Takes the head of the queue and the queued chunks right after it in the same object version,
 * up to FETCH_RUN_BYTES: readahead queues chunks in order, so one GET serves many. */
static int pop_run_locked(struct policy *p, struct chunk **run, bool low)
{
	struct chunk **head = low ? &p->lowq_head : &p->queue_head;
	struct chunk **tail = low ? &p->lowq_tail : &p->queue_tail;
	int n = 0;
	uint64_t bytes = 0;
	while (*head && n < FETCH_RUN_MAX) {
		struct chunk *c = *head;
		if (n > 0 && (c->idx != run[n - 1]->idx + 1 || bytes + c->len > FETCH_RUN_BYTES ||
			      strcmp(c->key, run[0]->key) != 0 || strcmp(c->etag, run[0]->etag) != 0))
			break;
		*head = c->qnext;
		if (!*head)
			*tail = NULL;
		c->qnext = NULL;
		c->queued = c->low = false; /* the queue's reference is now this thread's */
		run[n++] = c;
		bytes += c->len;
	}
	return n;
}

static void *fetch_thread(void *arg)
{
	struct policy *p = arg;
	struct chunk *run[FETCH_RUN_MAX];
	pthread_mutex_lock(&p->chunk_lock);
	for (;;) {
		/* the low queue (predicted accesses) only when readahead has nothing queued, and
		 * by one thread at a time: prefetch yields to readers */
		while (!p->stopping && !p->queue_head && !(p->lowq_head && p->low_busy == 0))
			pthread_cond_wait(&p->queue_cond, &p->chunk_lock);
		if (p->stopping)
			break;
		bool low = !p->queue_head;
		int n = pop_run_locked(p, run, low);
		p->low_busy += low;
		pthread_mutex_unlock(&p->chunk_lock);
		fetch_run(p, run, n, true);
		pthread_mutex_lock(&p->chunk_lock);
		if (low) {
			p->low_busy--;
			pthread_cond_broadcast(&p->queue_cond);
		}
	}
	pthread_mutex_unlock(&p->chunk_lock);
	return NULL;
}

int chunks_start(struct policy *p)
{
	if (p->cfg.l1_size && p->cfg.demote_interval_ms) {
		int r = pthread_create(&p->demoter, NULL, demote_thread, p);
		if (r)
			return -r;
		p->demoter_started = true;
	}
	p->threads = calloc(p->cfg.fetch_threads, sizeof(*p->threads));
	if (!p->threads)
		return -ENOMEM;
	for (unsigned i = 0; i < p->cfg.fetch_threads; i++) {
		int r = pthread_create(&p->threads[i], NULL, fetch_thread, p);
		if (r)
			return -r;
		p->nthreads++;
	}
	return 0;
}

void chunks_stop(struct policy *p)
{
	pthread_mutex_lock(&p->chunk_lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->queue_cond);
	pthread_mutex_unlock(&p->chunk_lock);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	p->nthreads = 0;
	if (p->demoter_started)
		pthread_join(p->demoter, NULL);
	p->demoter_started = false;
}

void chunks_destroy(struct policy *p)
{
	chunks_stop(p);
	free(p->threads);
	/* No thread is left: drop the queue's and the table's references. */
	for (int q = 0; q < 2; q++) {
		struct chunk **head = q ? &p->lowq_head : &p->queue_head;
		while (*head) {
			struct chunk *c = *head;
			*head = c->qnext;
			c->refs--;
		}
	}
	for (size_t b = 0; b < p->chunk_buckets; b++) {
		struct chunk *c = p->chunk_tab[b];
		while (c) {
			struct chunk *n = c->hnext;
			if (--c->refs == 0)
				chunk_free(p, c);
			c = n;
		}
	}
	free(p->chunk_tab);
	while (p->nbufs)
		free(p->bufs[--p->nbufs]);
	pthread_mutex_destroy(&p->buf_lock);
	pthread_cond_destroy(&p->chunk_done);
	pthread_cond_destroy(&p->queue_cond);
	pthread_mutex_destroy(&p->chunk_lock);
}
