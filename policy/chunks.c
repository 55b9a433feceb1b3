/*
 * chunks.c - the chunk table (chunks.h): single flight, references, the memory tier (the
 * transient buffer, evicted least recently used first, and L1), and the queues of loads waiting
 * for a fetch thread.
 *
 * Lock: ct->lock guards everything in the table and the mutable fields of every chunk.  It is
 * never held while a tier is called or a buffer is freed: victims are collected under it (on
 * qnext lists) and freed after.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunks.h"
#include "l1.h"
#include "log.h"
#include "stats.h"
#include "util.h"
#include "worker.h"

#define CHUNK_BUCKETS 4096

enum chunk_state { CH_LOADING, CH_READY, CH_FAILED };

struct chunk {
	struct chunk_id id;     /* immutable; id.key is owned */
	/* all below guarded by ct->lock, except buf, immutable once READY */
	struct chunk *hnext;
	struct chunk *lru_prev, *lru_next;
	struct chunk *qnext;
	uint64_t hash;
	enum chunk_state state;
	bool linked, queued, on_lru;
	bool low;               /* queued on the low-priority queue */
	/* Prefetch accounting: pf_src is the predictor that asked for the chunk (PF_NONE for a
	 * reader's); inflight while that fetch is counted in pf_inflight_bytes; unread while it
	 * holds an unread prefetch (counted in pf_unread_bytes, ended by a reader: used, or by
	 * leaving the cache: wasted). */
	uint8_t pf_src;
	bool inflight, unread;
	bool in_l1;             /* on the L1 list (else on the transient LRU when READY) */
	uint64_t accesses;      /* readers' accesses, with those L2 counted before it loaded */
	uint64_t last_access_ms;
	int err;
	unsigned refs;
	struct tfs_buf *buf;
	char etag[S3_ETAG_MAX];
};

struct chunks {
	struct chunks_config cfg;       /* immutable */
	struct policy_stats *stats;     /* the policy's */
	struct tier *const *lower;      /* the tiers below memory, not owned */
	int nlower;

	pthread_mutex_t lock;           /* guards everything below up to demoter */
	pthread_cond_t done;            /* broadcast when any load completes */
	pthread_cond_t queue_cond;      /* the queues gained work, a low run ended, or stop */
	struct chunk **tab;
	struct chunk *lru_head, *lru_tail;  /* READY chunks not in L1, most recent first */
	struct chunk *l1_head, *l1_tail;    /* READY chunks in L1, most recent first */
	uint64_t l1_used, l1_entries;       /* bytes and chunks in L1 (not in mem_used) */
	struct chunk *queue_head, *queue_tail;
	struct chunk *lowq_head, *lowq_tail;  /* PF_INTERVAL prefetches, after the queue */
	uint64_t nqueue, nlowq;         /* chunks on each queue */
	unsigned low_busy;              /* fetch threads working on the low queue */
	uint64_t mem_used;              /* bytes of linked chunks outside L1, loading ones included */
	bool stopping;

	struct tfs_worker demoter;      /* the demotion pass, every demote_interval */
	struct tier tier;               /* the memory tier's face */
};

static void free_list(struct chunks *ct, struct chunk *l);

static uint64_t now_ms(const struct chunks *ct)
{
	return ct->cfg.now_ms ? ct->cfg.now_ms() : tfs_now_ms();
}

static uint64_t chunk_hash(const char *key, const char *etag, uint64_t idx)
{
	uint64_t h = tfs_hash64(key, strlen(key), idx);
	return tfs_hash64(etag, strlen(etag), h);
}

const struct chunk_id *chunk_id(const struct chunk *c) { return &c->id; }
const char *chunk_data(const struct chunk *c) { return c->buf->data; }
bool chunk_prefetched(const struct chunk *c) { return c->pf_src != PF_NONE; }

static size_t chunk_len(const struct chunks *ct, uint64_t obj_size, uint64_t idx)
{
	uint64_t start = idx * ct->cfg.chunk_size;
	uint64_t left = obj_size - start;
	return (size_t)(left < ct->cfg.chunk_size ? left : ct->cfg.chunk_size);
}

static void chunk_free(struct chunks *ct, struct chunk *c)
{
	if (c->unread) {
		/* leaving memory unread: a lower tier keeps the prefetch if it holds the chunk */
		int kept = -ENOENT;
		for (int k = 0; k < ct->nlower && kept < 0 && c->state == CH_READY; k++)
			kept = ct->lower[k]->ops->keep_unread(ct->lower[k], c->id.key, c->etag,
							      c->id.idx, c->pf_src, c->id.len);
		if (kept < 0) {
			atomic_fetch_add_explicit(&ct->stats->pf[c->pf_src].wasted, 1,
						  memory_order_relaxed);
			atomic_fetch_sub_explicit(&ct->stats->pf_unread_bytes, c->id.len,
						  memory_order_relaxed);
		}
	}
	if (c->inflight)
		atomic_fetch_sub_explicit(&ct->stats->pf_inflight_bytes, c->id.len,
					  memory_order_relaxed);
	tfs_buf_put(c->buf);
	free((char *)c->id.key);
	free(c);
}

static void free_list(struct chunks *ct, struct chunk *l)
{
	while (l) {
		struct chunk *n = l->qnext;
		chunk_free(ct, l);
		l = n;
	}
}

static struct chunk *find_locked(struct chunks *ct, const char *key, const char *etag,
				 uint64_t idx, uint64_t h)
{
	for (struct chunk *c = ct->tab[h % CHUNK_BUCKETS]; c; c = c->hnext)
		if (c->hash == h && c->id.idx == idx && strcmp(c->etag, etag) == 0 &&
		    strcmp(c->id.key, key) == 0)
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

static void lru_remove(struct chunks *ct, struct chunk *c)
{
	if (!c->on_lru)
		return;
	list_unlink(&ct->lru_head, &ct->lru_tail, c);
	c->on_lru = false;
}

static void lru_front(struct chunks *ct, struct chunk *c)
{
	lru_remove(ct, c);
	list_push_front(&ct->lru_head, &ct->lru_tail, c);
	c->on_lru = true;
}

static void l1_remove(struct chunks *ct, struct chunk *c)
{
	if (!c->in_l1)
		return;
	list_unlink(&ct->l1_head, &ct->l1_tail, c);
	c->in_l1 = false;
	ct->l1_used -= c->id.len;
	ct->l1_entries--;
	ct->mem_used += c->id.len; /* back under the transient budget until it goes */
}

static void l1_front(struct chunks *ct, struct chunk *c)
{
	if (c->in_l1) {
		if (ct->l1_head == c)
			return;
		l1_remove(ct, c);
	} else {
		lru_remove(ct, c);
	}
	list_push_front(&ct->l1_head, &ct->l1_tail, c);
	c->in_l1 = true;
	ct->l1_used += c->id.len;
	ct->l1_entries++;
	ct->mem_used -= c->id.len;
}

/* Unlinks c from the table; returns true when the table's reference was the last one. */
static bool unlink_locked(struct chunks *ct, struct chunk *c)
{
	struct chunk **pp = &ct->tab[c->hash % CHUNK_BUCKETS];
	while (*pp != c)
		pp = &(*pp)->hnext;
	*pp = c->hnext;
	c->linked = false;
	l1_remove(ct, c);
	lru_remove(ct, c);
	ct->mem_used -= c->id.len;
	return --c->refs == 0;
}

/* Drops one reference; returns c if it must be freed once the lock is dropped. */
static struct chunk *put_locked(struct chunk *c)
{
	if (--c->refs == 0) {
		c->qnext = NULL;
		return c;
	}
	return NULL;
}

/* Evicts unreferenced READY chunks from the LRU tail until under the cap.  Returns a list
 * (through qnext) of chunks to free once the lock is dropped. */
static struct chunk *evict_locked(struct chunks *ct, uint64_t want_free)
{
	struct chunk *victims = NULL;
	struct chunk *c = ct->lru_tail;
	while (c && ct->mem_used + want_free > ct->cfg.mem_bytes) {
		struct chunk *prev = c->lru_prev;
		if (c->refs == 1 && unlink_locked(ct, c)) {
			c->qnext = victims;
			victims = c;
		}
		c = prev;
	}
	return victims;
}

/* c leaves L1 (over its size, or demoted): it leaves memory too unless in use. */
static struct chunk *l1_leave_locked(struct chunks *ct, struct chunk *c, struct chunk *victims)
{
	l1_remove(ct, c);
	if (c->refs == 1 && unlink_locked(ct, c)) {
		c->qnext = victims;
		victims = c;
	} else if (c->linked) {
		lru_front(ct, c); /* in use: it goes with the transient ones */
	}
	return victims;
}

/* L1 over l1_size: its least recently used chunks leave memory (L2 keeps them). */
static struct chunk *l1_evict_locked(struct chunks *ct, struct chunk *victims)
{
	struct chunk *c = ct->l1_tail;
	while (c && ct->l1_used > ct->cfg.l1_size) {
		struct chunk *prev = c->lru_prev;
		atomic_fetch_add_explicit(&ct->stats->l1_evictions, 1, memory_order_relaxed);
		victims = l1_leave_locked(ct, c, victims);
		c = prev;
	}
	return victims;
}

/* Counts a reader's access to the ready chunk c and promotes it to L1 at the threshold. */
static struct chunk *access_locked(struct chunks *ct, struct chunk *c, bool count)
{
	struct chunk *victims = NULL;
	if (count) {
		c->accesses++;
		c->last_access_ms = now_ms(ct);
		atomic_fetch_add_explicit(c->in_l1 ? &ct->stats->l1_hits : &ct->stats->l1_misses, 1,
					  memory_order_relaxed);
	}
	if (c->in_l1) {
		l1_front(ct, c);
	} else if (count && c->linked && ct->cfg.l1_size &&
		   l1_should_promote(c->accesses, ct->cfg.promote_after)) {
		l1_front(ct, c);
		atomic_fetch_add_explicit(&ct->stats->promotions, 1, memory_order_relaxed);
		victims = l1_evict_locked(ct, NULL);
	} else if (c->on_lru) {
		lru_front(ct, c);
	}
	return victims;
}

uint64_t chunks_demote(struct chunks *ct)
{
	uint64_t n = 0, now = now_ms(ct);
	struct chunk *victims = NULL;
	pthread_mutex_lock(&ct->lock);
	for (struct chunk *c = ct->l1_tail, *prev; c; c = prev) {
		prev = c->lru_prev;
		if (!l1_should_demote(c->last_access_ms, now, ct->cfg.demote_after_ms))
			continue;
		victims = l1_leave_locked(ct, c, victims);
		n++;
	}
	pthread_mutex_unlock(&ct->lock);
	free_list(ct, victims);
	if (n) {
		atomic_fetch_add_explicit(&ct->stats->demotions, n, memory_order_relaxed);
		tfs_debug("l1: demoted %llu chunks not read for %llu s", (unsigned long long)n,
			  (unsigned long long)(ct->cfg.demote_after_ms / 1000));
	}
	return n;
}

static void demote_pass(void *arg)
{
	struct chunks *ct = arg;
	atomic_fetch_add_explicit(&ct->stats->demote_passes, 1, memory_order_relaxed);
	chunks_demote(ct);
}

/* Drops from memory every ready chunk pred() accepts; a chunk in use is unlinked and freed by
 * its last reader.  Returns how many. */
static uint64_t drop_where(struct chunks *ct, bool (*pred)(void *ctx, const struct chunk *c),
			   void *ctx)
{
	struct chunk *victims = NULL;
	uint64_t n = 0;
	pthread_mutex_lock(&ct->lock);
	for (size_t b = 0; b < CHUNK_BUCKETS; b++)
		for (struct chunk *c = ct->tab[b], *next; c; c = next) {
			next = c->hnext;
			if (c->state != CH_READY || !pred(ctx, c))
				continue;
			n++;
			if (unlink_locked(ct, c)) {
				c->qnext = victims;
				victims = c;
			}
		}
	pthread_mutex_unlock(&ct->lock);
	free_list(ct, victims);
	return n;
}

static struct chunk *new_chunk_locked(struct chunks *ct, const struct policy_object *o,
				      uint64_t idx, uint64_t h)
{
	struct chunk *c = calloc(1, sizeof(*c));
	char *key = c ? strdup(o->key) : NULL;
	if (!key) {
		free(c);
		return NULL;
	}
	snprintf(c->etag, sizeof(c->etag), "%s", o->etag);
	c->id = (struct chunk_id){ .key = key, .etag = c->etag, .idx = idx,
				   .len = chunk_len(ct, o->size, idx) };
	c->hash = h;
	c->state = CH_LOADING;
	c->linked = true;
	c->refs = 1; /* the table's */
	c->hnext = ct->tab[h % CHUNK_BUCKETS];
	ct->tab[h % CHUNK_BUCKETS] = c;
	ct->mem_used += c->id.len;
	return c;
}

void chunks_complete(struct chunks *ct, struct chunk *c, int err, struct tfs_buf *buf,
		     uint8_t l2_src, uint64_t accesses, bool from_source, bool drop_ref)
{
	struct chunk *victims = NULL, *f = NULL;
	pthread_mutex_lock(&ct->lock);
	if (c->inflight) {
		c->inflight = false;
		atomic_fetch_sub_explicit(&ct->stats->pf_inflight_bytes, c->id.len,
					  memory_order_relaxed);
	}
	if (!err && c->pf_src && !c->unread) {
		/* a prefetch: a new one, or one a lower tier held unread (it comes back) */
		if (l2_src) {
			c->pf_src = l2_src;
		} else {
			atomic_fetch_add_explicit(&ct->stats->pf[c->pf_src].issued, 1,
						  memory_order_relaxed);
			atomic_fetch_add_explicit(&ct->stats->pf_unread_bytes, c->id.len,
						  memory_order_relaxed);
		}
		c->unread = true;
	} else if (!err && l2_src) {
		/* a reader's fetch found in a lower tier what a predictor had put there */
		atomic_fetch_add_explicit(&ct->stats->pf[l2_src].used, 1, memory_order_relaxed);
		atomic_fetch_sub_explicit(&ct->stats->pf_unread_bytes, c->id.len,
					  memory_order_relaxed);
	} else if (!err && from_source) {
		atomic_fetch_add_explicit(&ct->stats->demand_s3_chunks, 1, memory_order_relaxed);
	}
	if (err) {
		c->state = CH_FAILED;
		c->err = err;
		if (c->linked && unlink_locked(ct, c)) {
			c->qnext = NULL;
			victims = c; /* nobody else held it */
		}
	} else {
		c->buf = buf; /* published by the state change */
		if (accesses)
			c->accesses = accesses;
		c->state = CH_READY;
		if (c->linked) {
			lru_front(ct, c);
			victims = evict_locked(ct, 0);
		}
	}
	pthread_cond_broadcast(&ct->done);
	if (drop_ref && c != victims)
		f = put_locked(c);
	pthread_mutex_unlock(&ct->lock);
	free_list(ct, victims);
	if (f)
		chunk_free(ct, f);
}

void chunks_put(struct chunks *ct, struct chunk *c)
{
	pthread_mutex_lock(&ct->lock);
	struct chunk *f = put_locked(c);
	pthread_mutex_unlock(&ct->lock);
	if (f)
		chunk_free(ct, f);
}

void chunks_put_behind(struct chunks *ct, struct chunk *c)
{
	pthread_mutex_lock(&ct->lock);
	/* only the table's reference and the caller's: nobody else is reading it */
	if (c->linked && c->on_lru && c->refs == 2)
		unlink_locked(ct, c);
	struct chunk *f = put_locked(c);
	pthread_mutex_unlock(&ct->lock);
	if (f)
		chunk_free(ct, f);
}

static void dequeue_locked(struct chunks *ct, struct chunk *c)
{
	struct chunk **head = c->low ? &ct->lowq_head : &ct->queue_head;
	struct chunk **tail = c->low ? &ct->lowq_tail : &ct->queue_tail;
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
	*(c->low ? &ct->nlowq : &ct->nqueue) -= 1;
	c->queued = c->low = false;
	c->refs--; /* the queue's reference; the caller holds another */
}

int chunks_acquire(struct chunks *ct, const struct policy_object *o, uint64_t idx,
		   struct chunk **out, enum chunk_got *got)
{
	uint64_t h = chunk_hash(o->key, o->etag, idx);
	struct chunk *victims = NULL;
	*got = CHUNK_HIT;
	pthread_mutex_lock(&ct->lock);
	struct chunk *c = find_locked(ct, o->key, o->etag, idx, h);
	if (c) {
		c->refs++;
		if (c->state == CH_LOADING) /* not ready: a miss, though one on its way */
			atomic_fetch_add_explicit(&ct->stats->chunk_misses, 1, memory_order_relaxed);
		if (c->state == CH_LOADING && c->queued) {
			/* Queued for readahead but not started: the reader fetches it now, and
			 * the prefetch did not help. */
			dequeue_locked(ct, c);
			if (c->inflight) {
				c->inflight = false;
				atomic_fetch_sub_explicit(&ct->stats->pf_inflight_bytes, c->id.len,
							  memory_order_relaxed);
			}
			c->pf_src = PF_NONE;
			*got = CHUNK_MINE;
		} else if (c->state == CH_LOADING) {
			*got = CHUNK_WAITED;
			atomic_fetch_add_explicit(&ct->stats->chunk_waits, 1, memory_order_relaxed);
			while (c->state == CH_LOADING)
				pthread_cond_wait(&ct->done, &ct->lock);
		} else {
			atomic_fetch_add_explicit(&ct->stats->chunk_hits, 1, memory_order_relaxed);
		}
	} else {
		victims = evict_locked(ct, chunk_len(ct, o->size, idx));
		c = new_chunk_locked(ct, o, idx, h);
		if (c) {
			c->refs++;
			*got = CHUNK_MINE;
			atomic_fetch_add_explicit(&ct->stats->chunk_misses, 1, memory_order_relaxed);
		}
	}
	pthread_mutex_unlock(&ct->lock);
	free_list(ct, victims);
	*out = c;
	return c ? 0 : -ENOMEM;
}

int chunks_find(struct chunks *ct, const struct policy_object *o, uint64_t idx, struct chunk **out)
{
	uint64_t h = chunk_hash(o->key, o->etag, idx);
	pthread_mutex_lock(&ct->lock);
	struct chunk *c = find_locked(ct, o->key, o->etag, idx, h);
	int ret = !c ? -ENOENT : c->state == CH_READY ? 0 : -EBUSY;
	if (ret == 0) {
		c->refs++;
		atomic_fetch_add_explicit(&ct->stats->chunk_hits, 1, memory_order_relaxed);
		*out = c;
	}
	pthread_mutex_unlock(&ct->lock);
	return ret;
}

bool chunks_l1_room(struct chunks *ct, size_t len)
{
	if (!ct->cfg.l1_size)
		return false; /* no L1: no lock taken on a reader's path */
	pthread_mutex_lock(&ct->lock);
	bool room = ct->cfg.l1_size && ct->l1_used + len <= ct->cfg.l1_size;
	pthread_mutex_unlock(&ct->lock);
	return room;
}

int chunks_ready(struct chunks *ct, struct chunk *c, bool count, bool from_memory, uint64_t t0_ns)
{
	struct chunk *victims = NULL;
	int ret = 0;
	pthread_mutex_lock(&ct->lock);
	if (c->state == CH_READY && c->unread) {
		/* a prefetched chunk reaches its first reader (having waited for it, maybe) */
		c->unread = false;
		atomic_fetch_add_explicit(&ct->stats->pf[c->pf_src].used, 1, memory_order_relaxed);
		atomic_fetch_sub_explicit(&ct->stats->pf_unread_bytes, c->id.len,
					  memory_order_relaxed);
	}
	if (c->state == CH_READY) {
		bool l1 = c->in_l1;
		victims = access_locked(ct, c, count);
		if (from_memory && count)
			stats_lat_record(ct->stats, l1 ? TIER_L1 : TIER_MEM,
					 (tfs_now_ns() - t0_ns) / 1000);
	} else {
		ret = c->err ? c->err : -EIO;
		victims = put_locked(c);
	}
	pthread_mutex_unlock(&ct->lock);
	free_list(ct, victims);
	/* the tiers below learn of the access (a no-op until the chunk is in them) */
	for (int k = 0; ret == 0 && count && k < ct->nlower; k++)
		ct->lower[k]->ops->touch(ct->lower[k], c->id.key, c->etag, c->id.idx);
	return ret;
}

int chunks_queue(struct chunks *ct, const struct policy_object *o, uint64_t idx,
		 enum policy_pf_src src, bool if_absent_below)
{
	uint64_t h = chunk_hash(o->key, o->etag, idx);
	size_t len = chunk_len(ct, o->size, idx);
	struct chunk *victims = NULL;
	int ret = -EEXIST;

	if (src != PF_NONE &&
	    atomic_load_explicit(&ct->stats->pf_inflight_bytes, memory_order_relaxed) +
	    atomic_load_explicit(&ct->stats->pf_unread_bytes, memory_order_relaxed) + len >
	    ct->cfg.prefetch_budget)
		return -ENOSPC;
	for (int k = 0; if_absent_below && k < ct->nlower; k++) {
		uint64_t bytes = 0;
		ct->lower[k]->ops->has(ct->lower[k], o->key, o->etag, idx, &bytes);
		if (bytes)
			return -EEXIST;
	}
	pthread_mutex_lock(&ct->lock);
	if (ct->stopping || find_locked(ct, o->key, o->etag, idx, h))
		goto out;
	/* memory: a prefetch displaces only the transient buffer (chunks already handed to L2),
	 * never L1 */
	victims = evict_locked(ct, len);
	ret = -ENOSPC;
	if (ct->mem_used + len > ct->cfg.mem_bytes)
		goto out; /* the buffer is spent on chunks in use: prefetch yields */
	struct chunk *c = new_chunk_locked(ct, o, idx, h);
	ret = -ENOMEM;
	if (!c)
		goto out;
	ret = 0;
	c->refs++; /* the queue's */
	c->queued = true;
	c->pf_src = (uint8_t)src;
	if (src != PF_NONE) {
		c->inflight = true;
		atomic_fetch_add_explicit(&ct->stats->pf_inflight_bytes, len, memory_order_relaxed);
	}
	c->low = src == PF_INTERVAL;
	struct chunk **head = c->low ? &ct->lowq_head : &ct->queue_head;
	struct chunk **tail = c->low ? &ct->lowq_tail : &ct->queue_tail;
	if (*tail)
		(*tail)->qnext = c;
	else
		*head = c;
	*tail = c;
	*(c->low ? &ct->nlowq : &ct->nqueue) += 1;
	pthread_cond_signal(&ct->queue_cond);
out:
	pthread_mutex_unlock(&ct->lock);
	free_list(ct, victims);
	return ret;
}

/* Takes the head of a queue and the queued chunks right after it in the same object version,
 * up to max_bytes: readahead queues chunks in order, so one GET serves many. */
static int pop_run_locked(struct chunks *ct, struct chunk **run, int max, uint64_t max_bytes,
			  bool low)
{
	struct chunk **head = low ? &ct->lowq_head : &ct->queue_head;
	struct chunk **tail = low ? &ct->lowq_tail : &ct->queue_tail;
	int n = 0;
	uint64_t bytes = 0;
	while (*head && n < max) {
		struct chunk *c = *head;
		if (n > 0 && (c->id.idx != run[n - 1]->id.idx + 1 || bytes + c->id.len > max_bytes ||
			      strcmp(c->id.key, run[0]->id.key) != 0 ||
			      strcmp(c->etag, run[0]->etag) != 0))
			break;
		*head = c->qnext;
		if (!*head)
			*tail = NULL;
		c->qnext = NULL;
		*(low ? &ct->nlowq : &ct->nqueue) -= 1;
		c->queued = c->low = false; /* the queue's reference is now the caller's */
		run[n++] = c;
		bytes += c->id.len;
	}
	return n;
}

int chunks_next_run(struct chunks *ct, struct chunk **run, int max, uint64_t max_bytes,
		    bool *low)
{
	int n = 0;
	pthread_mutex_lock(&ct->lock);
	/* the low queue (predicted accesses) only when readahead has nothing queued, and by one
	 * thread at a time: prefetch yields to readers */
	while (!ct->stopping && !ct->queue_head && !(ct->lowq_head && ct->low_busy == 0))
		pthread_cond_wait(&ct->queue_cond, &ct->lock);
	if (!ct->stopping) {
		*low = !ct->queue_head;
		n = pop_run_locked(ct, run, max, max_bytes, *low);
		ct->low_busy += *low;
	}
	pthread_mutex_unlock(&ct->lock);
	return n;
}

void chunks_run_done(struct chunks *ct, bool low)
{
	if (!low)
		return;
	pthread_mutex_lock(&ct->lock);
	ct->low_busy--;
	pthread_cond_broadcast(&ct->queue_cond);
	pthread_mutex_unlock(&ct->lock);
}

void chunks_usage(struct chunks *ct, uint64_t *l1_used, uint64_t *l1_entries, uint64_t *mem_used)
{
	pthread_mutex_lock(&ct->lock);
	*l1_used = ct->l1_used;
	*l1_entries = ct->l1_entries;
	*mem_used = ct->mem_used;
	pthread_mutex_unlock(&ct->lock);
}

void chunks_queued(struct chunks *ct, uint64_t *queued, uint64_t *queued_low)
{
	pthread_mutex_lock(&ct->lock);
	*queued = ct->nqueue;
	*queued_low = ct->nlowq;
	pthread_mutex_unlock(&ct->lock);
}

/* ---- the memory tier's face ---- */

static struct chunks *ct_of(struct tier *t) { return t->impl; }

static int mem_get(struct tier *t, struct tier_run *r, int from, int *next)
{
	*next = from + 1; /* the table is asked before the tier loop, by chunks_acquire */
	return 0;
}

static int mem_fill(struct tier *t, const char *key, const char *etag, uint64_t idx,
		    struct tfs_buf *b, bool prefetch)
{
	return 0; /* a chunk is in memory from the moment it is loaded */
}

static int mem_has(struct tier *t, const char *key, const char *etag, uint64_t idx,
		   uint64_t *bytes)
{
	struct chunks *ct = ct_of(t);
	uint64_t h = chunk_hash(key, etag, idx);
	pthread_mutex_lock(&ct->lock);
	struct chunk *c = find_locked(ct, key, etag, idx, h);
	*bytes = c && c->in_l1 ? c->id.len : 0;
	pthread_mutex_unlock(&ct->lock);
	return 0;
}

static int mem_touch(struct tier *t, const char *key, const char *etag, uint64_t idx)
{
	return 0;
}

static int mem_keep_unread(struct tier *t, const char *key, const char *etag, uint64_t idx,
			   uint8_t src, size_t len)
{
	return -ENOENT;
}

struct version {
	const char *key, *etag;
};

static bool other_version(void *arg, const struct chunk *c)
{
	const struct version *v = arg;
	return strcmp(c->id.key, v->key) == 0 && strcmp(c->etag, v->etag) != 0;
}

/* Only a known change scans the table: on an open, chunks of other versions are never served
 * (the ETag is in their identity) and age out of memory by themselves. */
static int mem_drop_version(struct tier *t, const char *key, const char *etag, bool changed)
{
	struct version v = { key, etag };
	if (changed) {
		uint64_t n = drop_where(ct_of(t), other_version, &v);
		tfs_debug("'%s' changed: %llu chunks of old versions dropped from memory", key,
			  (unsigned long long)n);
	}
	return 0;
}

struct key_match {
	tier_match_fn match;
	void *ctx;
};

static bool key_pred(void *arg, const struct chunk *c)
{
	struct key_match *m = arg;
	return !m->match || m->match(m->ctx, c->id.key);
}

static int mem_drop_matching(struct tier *t, tier_match_fn match, void *ctx, uint64_t *n)
{
	struct key_match m = { match, ctx };
	*n = drop_where(ct_of(t), key_pred, &m);
	return 0;
}

static int mem_flush(struct tier *t) { return 0; }

static int mem_usage(struct tier *t, uint64_t *used, uint64_t *entries, uint64_t *capacity)
{
	struct chunks *ct = ct_of(t);
	uint64_t mem;
	chunks_usage(ct, used, entries, &mem);
	*capacity = ct->cfg.l1_size;
	return 0;
}

/* The memory tier's counters are the chunk table's, in the policy's statistics (a policy reset
 * zeroes them there). */
static int mem_stats(struct tier *t, struct tier_stats *out, bool reset)
{
	struct chunks *ct = ct_of(t);
	memset(out, 0, sizeof(*out));
	out->hits = atomic_load_explicit(&ct->stats->chunk_hits, memory_order_relaxed);
	out->misses = atomic_load_explicit(&ct->stats->chunk_misses, memory_order_relaxed);
	out->evictions = atomic_load_explicit(&ct->stats->l1_evictions, memory_order_relaxed);
	out->upkeep_passes = atomic_load_explicit(&ct->stats->demote_passes, memory_order_relaxed);
	return mem_usage(t, &out->used, &out->entries, &out->capacity);
}

static void mem_destroy(struct tier *t) { (void)t; /* chunks_free frees the table */ }

static const struct tier_ops mem_ops = {
	.get = mem_get,
	.fill = mem_fill,
	.has = mem_has,
	.touch = mem_touch,
	.keep_unread = mem_keep_unread,
	.read_part = tier_nop_read_part, /* readers take parts from memory themselves */
	.drop_version = mem_drop_version,
	.drop_matching = mem_drop_matching,
	.flush = mem_flush,
	.usage = mem_usage,
	.stats = mem_stats,
	.destroy = mem_destroy,
};

struct tier *chunks_tier(struct chunks *ct) { return &ct->tier; }

/* ---- life ---- */

int chunks_new(const struct chunks_config *cfg, struct policy_stats *stats,
	       struct tier *const *lower, int nlower, struct chunks **out)
{
	struct chunks *ct = calloc(1, sizeof(*ct));
	if (!ct || !(ct->tab = calloc(CHUNK_BUCKETS, sizeof(*ct->tab)))) {
		free(ct);
		return -ENOMEM;
	}
	ct->cfg = *cfg;
	ct->stats = stats;
	ct->lower = lower;
	ct->nlower = nlower;
	ct->tier = (struct tier){ .ops = &mem_ops, .name = "memory", .lat_slot = TIER_MEM,
				  .impl = ct };
	pthread_mutex_init(&ct->lock, NULL);
	pthread_cond_init(&ct->done, NULL);
	pthread_cond_init(&ct->queue_cond, NULL);
	int ret = 0;
	if (cfg->l1_size && cfg->demote_interval_ms)
		ret = tfs_worker_start(&ct->demoter, cfg->demote_interval_ms, demote_pass, ct);
	if (ret < 0) {
		chunks_free(ct);
		return ret;
	}
	*out = ct;
	return 0;
}

void chunks_stop(struct chunks *ct)
{
	tfs_worker_stop(&ct->demoter);
	pthread_mutex_lock(&ct->lock);
	ct->stopping = true;
	pthread_cond_broadcast(&ct->queue_cond);
	pthread_mutex_unlock(&ct->lock);
}

void chunks_free(struct chunks *ct)
{
	if (!ct)
		return;
	chunks_stop(ct);
	/* No thread is left: drop the queue's and the table's references. */
	for (int q = 0; q < 2; q++) {
		struct chunk **head = q ? &ct->lowq_head : &ct->queue_head;
		while (*head) {
			struct chunk *c = *head;
			*head = c->qnext;
			c->refs--;
		}
	}
	for (size_t b = 0; b < CHUNK_BUCKETS; b++) {
		struct chunk *c = ct->tab[b];
		while (c) {
			struct chunk *n = c->hnext;
			if (--c->refs == 0)
				chunk_free(ct, c);
			c = n;
		}
	}
	free(ct->tab);
	pthread_cond_destroy(&ct->done);
	pthread_cond_destroy(&ct->queue_cond);
	pthread_mutex_destroy(&ct->lock);
	free(ct);
}
