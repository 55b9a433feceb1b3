/*
 * shared.c - the shared tier (shared.h): GETs of chunk objects, verified; PUTs of copied-up
 * chunks by writer threads from a bounded queue; a breaker that stops asking a failing bucket
 * for a while.
 *
 * Locks: sh->lock guards the queue and the breaker; no request is made under it, and no other
 * lock is taken while it is held (a leaf in policy_i.h's order).  Counters are atomics.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunkobj.h"
#include "log.h"
#include "shared.h"
#include "util.h"

struct shared {
	struct s3_client *s3;        /* owned */
	char *prefix, *source;
	uint64_t chunk_size;
	unsigned char *key;
	size_t key_len;
	unsigned breaker_errors, breaker_ms, slow_ms;
	uint64_t queue_max;
	/* the GETs' buffers (a header, the largest payload, a trailer): pooled, so that a GET
	 * does not map and fault a fresh megabyte each time (a third of the daemon's time) */
	struct buf_pool getbufs;
	struct {
		_Atomic uint64_t hits, misses, writes, skipped, errors, verify, down, up, opens;
	} c;

	pthread_mutex_t lock;        /* guards everything below but the threads */
	pthread_cond_t work;         /* a job queued, or stop */
	pthread_cond_t idle;         /* a job done: flushes wait on it */
	struct tier_job *qhead, *qtail;
	uint64_t qbytes;
	unsigned writing;
	bool stopping;
	/* the breaker: closed, or open until open_until (then one probe at a time) */
	unsigned errors_in_row;
	bool open, probing;
	uint64_t open_until_ms;

	pthread_t writers[SHARED_WRITERS];
	unsigned nwriters;
	struct tier tier;
};

static struct shared *shared_of(struct tier *t) { return t->impl; }

/* Whether to send a request now: the breaker is closed, or open long enough for one probe. */
static bool breaker_allows(struct shared *sh)
{
	pthread_mutex_lock(&sh->lock);
	bool ok = !sh->open;
	if (!ok && !sh->probing && tfs_now_ms() >= sh->open_until_ms)
		ok = sh->probing = true;
	pthread_mutex_unlock(&sh->lock);
	return ok;
}

/* What a request found: an answer (ok, a 404 included) or a failure. */
static void breaker_result(struct shared *sh, bool ok, int err)
{
	bool opened = false, closed = false;
	pthread_mutex_lock(&sh->lock);
	if (ok) {
		sh->errors_in_row = 0;
		closed = sh->open;
		sh->open = false;
	} else if (++sh->errors_in_row >= sh->breaker_errors || sh->open) {
		opened = !sh->open || sh->probing;
		sh->open = true;
		sh->open_until_ms = tfs_now_ms() + sh->breaker_ms;
	}
	sh->probing = false;
	pthread_mutex_unlock(&sh->lock);
	if (opened) {
		atomic_fetch_add_explicit(&sh->c.opens, 1, memory_order_relaxed);
		tfs_warn("shared cache: %u failures in a row (last: %s): not asked for %u s, reads go "
			 "to the source", sh->breaker_errors, strerror(-err), sh->breaker_ms / 1000);
	}
	if (closed)
		tfs_info("shared cache: answering again");
}

static void count(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static int shared_get(struct tier *t, struct tier_run *r, int from, int *next)
{
	struct shared *sh = shared_of(t);
	*next = from + 1;
	struct tfs_buf *b = r->bufs[from];
	struct chunkobj_id id = { sh->source, r->key, r->etag, sh->chunk_size,
				  r->first + (uint64_t)from };
	char *name = r->etag[0] ? chunkobj_name(sh->prefix, &id) : NULL;
	struct tfs_buf *gb = name ? tfs_buf_get(&sh->getbufs, sh->getbufs.size) : NULL;
	struct s3_get g = { .key = name, .buf = gb ? gb->data : NULL, .cap = sh->getbufs.size,
			    .quiet_404 = true };
	/* everything that can fail before the request is done first: a breaker's probe, once
	 * allowed, always ends in breaker_result */
	if (!name || !gb || !breaker_allows(sh)) {
		free(name);
		if (gb)
			tfs_buf_put(gb);
		count(&sh->c.misses, 1);
		return 0;
	}
	uint64_t t0 = tfs_now_ms();
	int ret = s3_get(sh->s3, &g);
	bool slow = sh->slow_ms && tfs_now_ms() - t0 > sh->slow_ms;
	breaker_result(sh, (ret == 0 || ret == -ENOENT) && !slow, slow ? -ETIMEDOUT : ret);
	const char *payload = NULL;
	if (ret == 0) {
		struct chunkobj_key k = { sh->key, sh->key_len };
		int v = chunkobj_verify(&id, g.buf, g.len, b->len, &k, &payload);
		if (v < 0) {
			char kbuf[200];
			count(&sh->c.verify, 1);
			payload = NULL;
			tfs_warn("shared cache: '%s' (chunk %llu of '%s') %s: served from the source%s",
				 name, (unsigned long long)id.index,
				 tfs_printable(r->key, kbuf, sizeof(kbuf)),
				 v == -EKEYREJECTED ? "was not written with the fleet's key"
						    : "fails verification",
				 v == -EBADMSG ? "; deleted" : "");
			/* corrupt or truncated: useless to everyone.  One that lacks the fleet's
			 * key may be another fleet's: left alone. */
			if (v == -EBADMSG)
				s3_delete(sh->s3, name);
		}
	} else if (ret != -ENOENT) {
		count(&sh->c.errors, 1);
	}
	if (payload) {
		memcpy(b->data, payload, b->len);
		b->has_sum = false;
		r->done[from] = true;
		count(&sh->c.hits, 1);
		count(&sh->c.down, b->len);
	} else {
		count(&sh->c.misses, 1);
	}
	tfs_buf_put(gb);
	free(name);
	return 0; /* a miss or a failure here is never the reader's: the source serves it */
}

static void put_one(struct shared *sh, const struct tier_job *j)
{
	struct chunkobj_id id = { sh->source, j->key, j->etag, sh->chunk_size, j->idx };
	struct chunkobj_key k = { sh->key, sh->key_len };
	char *name = chunkobj_name(sh->prefix, &id), *body = NULL;
	size_t len = 0;
	int ret = name ? chunkobj_encode(&id, j->buf->data, j->buf->len,
					 j->buf->has_sum ? &j->buf->sum : NULL, &k, &body, &len)
		       : -ENOMEM;
	if (ret == 0 && !breaker_allows(sh)) {
		count(&sh->c.skipped, 1);
		free(body);
		free(name);
		return;
	}
	if (ret == 0) {
		uint64_t t0 = tfs_now_ms();
		ret = s3_put(sh->s3, name, body, len);
		bool slow = sh->slow_ms && tfs_now_ms() - t0 > sh->slow_ms;
		breaker_result(sh, ret == 0 && !slow, slow ? -ETIMEDOUT : ret);
	}
	if (ret == 0) {
		count(&sh->c.writes, 1);
		count(&sh->c.up, j->buf->len);
	} else {
		count(&sh->c.errors, 1);
		count(&sh->c.skipped, 1);
	}
	free(body);
	free(name);
}

static void *writer_thread(void *arg)
{
	struct shared *sh = arg;
	pthread_mutex_lock(&sh->lock);
	for (;;) {
		while (!sh->qhead && !sh->stopping)
			pthread_cond_wait(&sh->work, &sh->lock);
		struct tier_job *j = sh->qhead;
		if (!j)
			break;
		if (!(sh->qhead = j->next))
			sh->qtail = NULL;
		sh->writing++;
		pthread_mutex_unlock(&sh->lock);
		put_one(sh, j);
		size_t len = j->buf->len;
		tier_job_free(j);
		pthread_mutex_lock(&sh->lock);
		sh->qbytes -= len;
		sh->writing--;
		pthread_cond_broadcast(&sh->idle);
	}
	pthread_mutex_unlock(&sh->lock);
	return NULL;
}

static int shared_fill(struct tier *t, const char *key, const char *etag, uint64_t idx,
		       struct tfs_buf *b, bool prefetch)
{
	struct shared *sh = shared_of(t);
	if (!etag[0])
		return 0; /* no version to name it by */
	struct tier_job *j = tier_job_new(key, etag, idx, b, prefetch);
	if (!j) {
		count(&sh->c.skipped, 1);
		return -ENOMEM;
	}
	pthread_mutex_lock(&sh->lock);
	/* never waited for: a full queue or an open breaker skips the write */
	if (sh->stopping || sh->open || (sh->qbytes && sh->qbytes + b->len > sh->queue_max)) {
		pthread_mutex_unlock(&sh->lock);
		count(&sh->c.skipped, 1);
		tier_job_free(j);
		return 0;
	}
	if (sh->qtail)
		sh->qtail->next = j;
	else
		sh->qhead = j;
	sh->qtail = j;
	sh->qbytes += b->len;
	pthread_cond_signal(&sh->work);
	pthread_mutex_unlock(&sh->lock);
	return 0;
}

static int shared_flush(struct tier *t)
{
	struct shared *sh = shared_of(t);
	pthread_mutex_lock(&sh->lock);
	while (sh->qhead || sh->writing)
		pthread_cond_wait(&sh->idle, &sh->lock);
	pthread_mutex_unlock(&sh->lock);
	return 0;
}

void tier_shared_stats(struct tier *t, struct shared_stats *o, bool reset)
{
	struct shared *sh = shared_of(t);
	*o = (struct shared_stats){
		.hits = tier_count_take(&sh->c.hits, reset),
		.misses = tier_count_take(&sh->c.misses, reset),
		.writes = tier_count_take(&sh->c.writes, reset),
		.writes_skipped = tier_count_take(&sh->c.skipped, reset),
		.errors = tier_count_take(&sh->c.errors, reset),
		.verify_failures = tier_count_take(&sh->c.verify, reset),
		.bytes_down = tier_count_take(&sh->c.down, reset),
		.bytes_up = tier_count_take(&sh->c.up, reset),
		.breaker_opens = tier_count_take(&sh->c.opens, reset),
	};
	pthread_mutex_lock(&sh->lock);
	o->breaker_open = sh->open;
	o->queued_bytes = sh->qbytes;
	pthread_mutex_unlock(&sh->lock);
}

static int shared_stats(struct tier *t, struct tier_stats *out, bool reset)
{
	struct shared_stats s;
	tier_shared_stats(t, &s, reset);
	*out = (struct tier_stats){ .hits = s.hits, .misses = s.misses, .fills = s.writes,
				    .fills_failed = s.writes_skipped };
	return 0;
}

static void shared_free(struct shared *sh)
{
	pthread_mutex_lock(&sh->lock);
	sh->stopping = true;
	pthread_cond_broadcast(&sh->work);
	pthread_mutex_unlock(&sh->lock);
	for (unsigned i = 0; i < sh->nwriters; i++)
		pthread_join(sh->writers[i], NULL); /* after the queue is drained */
	pthread_cond_destroy(&sh->work);
	pthread_cond_destroy(&sh->idle);
	pthread_mutex_destroy(&sh->lock);
	buf_pool_destroy(&sh->getbufs);
	s3_client_free(sh->s3);
	if (sh->key)
		memset(sh->key, 0, sh->key_len);
	free(sh->key);
	free(sh->prefix);
	free(sh->source);
	free(sh);
}

static void shared_destroy(struct tier *t) { shared_free(shared_of(t)); }

static const struct tier_ops shared_ops = {
	.get = shared_get,
	.fill = shared_fill,
	/* it holds nothing it can name without a request; the lifecycle rule decides what goes;
	 * other versions' objects have other names; the fleet's cache is not one machine's to
	 * purge */
	.has = tier_nop_has,
	.touch = tier_nop_touch,
	.keep_unread = tier_nop_keep_unread,
	.drop_version = tier_nop_drop_version,
	.drop_matching = tier_nop_drop_matching,
	.flush = shared_flush,
	.usage = tier_nop_usage,
	.stats = shared_stats,
	.destroy = shared_destroy,
};

int tier_shared_new(const struct shared_config *cfg, struct tier **out)
{
	struct shared *sh = calloc(1, sizeof(*sh));
	if (!sh)
		return -ENOMEM;
	sh->prefix = strdup(cfg->prefix ? cfg->prefix : "");
	sh->source = strdup(cfg->source);
	if (cfg->key_len && (sh->key = malloc(cfg->key_len)))
		memcpy(sh->key, cfg->key, cfg->key_len), sh->key_len = cfg->key_len;
	if (!sh->prefix || !sh->source || (cfg->key_len && !sh->key)) {
		free(sh->prefix);
		free(sh->source);
		free(sh->key);
		free(sh);
		return -ENOMEM;
	}
	sh->chunk_size = cfg->chunk_size;
	sh->breaker_errors = cfg->breaker_errors ? cfg->breaker_errors : SHARED_DEFAULT_BREAKER_ERRORS;
	sh->breaker_ms = cfg->breaker_ms ? cfg->breaker_ms : SHARED_DEFAULT_BREAKER_MS;
	sh->slow_ms = cfg->slow_ms;
	sh->queue_max = cfg->queue_bytes ? cfg->queue_bytes : SHARED_DEFAULT_QUEUE_BYTES;
	buf_pool_init(&sh->getbufs, CHUNKOBJ_HDR_MAX + cfg->chunk_size + CHUNKOBJ_MAC_LEN);
	pthread_mutex_init(&sh->lock, NULL);
	pthread_cond_init(&sh->work, NULL);
	pthread_cond_init(&sh->idle, NULL);
	sh->tier = (struct tier){ .ops = &shared_ops, .name = "shared", .lat_slot = TIER_SHARED,
				  .impl = sh };
	for (unsigned i = 0; i < SHARED_WRITERS; i++) {
		int ret = -pthread_create(&sh->writers[i], NULL, writer_thread, sh);
		if (ret < 0) {
			sh->s3 = NULL; /* still the caller's */
			shared_free(sh);
			return ret;
		}
		sh->nwriters++;
	}
	sh->s3 = cfg->s3;
	*out = &sh->tier;
	return 0;
}
