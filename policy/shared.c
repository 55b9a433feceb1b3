/*
 * shared.c - the shared tier (shared.h): GETs of chunk objects, verified; PUTs of copied-up
 * chunks by writer threads from a bounded queue; a breaker that stops asking a failing bucket
 * for a while.
 *
 * Reads: the chunks a run asks of it are asked at once, each by a helper thread (the caller
 * takes one), and the run returns when all are answered.  A chunk another machine holds the
 * lease of is deferred (tier_run's later[]): the source serves the rest of the run first, then
 * the run asks again and waits for it.  So a machine never sits on leases it took while it
 * waits for another machine's, and waits do not chain from machine to machine.
 *
 * Locks: sh->lock guards the queues and the breaker; no request is made under it, and no other
 * lock is taken while it is held (a leaf in policy_i.h's order).  Counters are atomics.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
	uint64_t queue_max, reread_max;
	struct tier *below;          /* not owned: where writes without their bytes read them */
	struct buf_pool rbufs;       /* buffers of what is read back */
	struct {
		_Atomic uint64_t hits, misses, writes, skipped, errors, verify, down, up, opens;
		_Atomic uint64_t leases, waits, waited, wait_timeouts, read_back;
	} c;
	/* fetch leases (see shared.h): whether the bucket honours conditional creates, found by
	 * a probe at the first miss; after a probe that failed, the next one waits */
	unsigned wait_ms;            /* the longest a reader waits for another machine (0: off) */
	_Atomic int lease_state;     /* LEASE_* */
	_Atomic uint64_t probe_after_ms;

	pthread_mutex_t lock;        /* guards everything below but the threads */
	/* chunks of runs asked at once: the helpers take them in turn */
	struct ask *ahead, *atail;
	pthread_cond_t asked;        /* an ask queued, or stop */
	pthread_cond_t answered;     /* a run's last ask answered */
	pthread_cond_t work;         /* a job queued, or stop */
	pthread_cond_t idle;         /* a job done: flushes wait on it */
	struct tier_job *qhead, *qtail;
	uint64_t qbytes;             /* bytes of the jobs that hold them */
	uint64_t rbytes;             /* chunk bytes of the jobs that read them back */
	unsigned writing;
	bool stopping;
	/* the breaker: closed, or open until open_until (then one probe at a time) */
	unsigned errors_in_row;
	bool open, probing;
	uint64_t open_until_ms;

	pthread_t writers[SHARED_WRITERS], helpers[SHARED_HELPERS];
	unsigned nwriters, nhelpers;
	struct tier tier;
};

enum { LEASE_UNKNOWN, LEASE_PROBING, LEASE_ON, LEASE_OFF };

struct ask;

static struct shared *shared_of(struct tier *t) { return t->impl; }

/* Whether to send a request now: the breaker is closed, or open long enough for one probe. */
static bool breaker_shut_locked(const struct shared *sh)
{
	return sh->open && (sh->probing || tfs_now_ms() < sh->open_until_ms);
}

static bool breaker_allows(struct shared *sh)
{
	pthread_mutex_lock(&sh->lock);
	bool ok = !breaker_shut_locked(sh);
	if (ok && sh->open)
		sh->probing = true; /* the one probe */
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

/* The lease of a chunk object: its name and ".lease". */
static char *lease_name(const char *name) { return tfs_strdup_printf("%s.lease", name); }

static const char LEASE_BODY[] = "tierfs fetch lease: a machine is fetching this chunk from the "
				 "source\n";

/* Whether fetch leases are in use: at the first call, a probe finds whether the bucket
 * honours If-None-Match: * on PUT (a second conditional create of one object must fail); the
 * callers meanwhile wait for it.  A probe that failed (the bucket down) is made again after
 * breaker_ms; until then, no leases. */
static bool leases_on(struct shared *sh)
{
	int st = atomic_load_explicit(&sh->lease_state, memory_order_acquire);
	/* misses during the probe wait for its answer (a few requests): else they would fetch
	 * from the source what another machine may be fetching */
	while (st == LEASE_PROBING) {
		struct timespec ts = { 0, 2000000 };
		nanosleep(&ts, NULL);
		st = atomic_load_explicit(&sh->lease_state, memory_order_acquire);
	}
	if (st == LEASE_ON)
		return true;
	if (st != LEASE_UNKNOWN || !sh->wait_ms ||
	    tfs_now_ms() < atomic_load_explicit(&sh->probe_after_ms, memory_order_relaxed) ||
	    !atomic_compare_exchange_strong(&sh->lease_state, &st, LEASE_PROBING))
		return false;
	char *name = tfs_strdup_printf("%stierfs-chunks/v1/probe-%016llx", sh->prefix,
				       (unsigned long long)(tfs_now_ns() ^
							    ((uint64_t)getpid() << 40)));
	int a = name ? s3_put_new(sh->s3, name, LEASE_BODY, sizeof(LEASE_BODY) - 1) : -ENOMEM;
	int b = a == 0 ? s3_put_new(sh->s3, name, LEASE_BODY, sizeof(LEASE_BODY) - 1) : a;
	if (a == 0)
		s3_delete(sh->s3, name);
	free(name);
	if (a == 0 && b == -EEXIST) {
		st = LEASE_ON;
		tfs_info("shared cache: it honours conditional writes: a chunk that several machines "
			 "miss at once is fetched from the source by one of them");
	} else if (a == 0 && b == 0) {
		st = LEASE_OFF;
		tfs_info("shared cache: it ignores conditional writes (If-None-Match): machines that "
			 "miss a chunk at the same moment each fetch it from the source");
	} else {
		st = LEASE_UNKNOWN; /* asked again later */
		atomic_store_explicit(&sh->probe_after_ms, tfs_now_ms() + sh->breaker_ms,
				      memory_order_relaxed);
	}
	atomic_store_explicit(&sh->lease_state, st, memory_order_release);
	return st == LEASE_ON;
}

/* One request of the breaker's: a GET of the object into g (a 404 is an answer). */
static int get_obj(struct shared *sh, struct s3_get *g)
{
	uint64_t t0 = tfs_now_ms();
	int ret = s3_get(sh->s3, g);
	bool slow = sh->slow_ms && tfs_now_ms() - t0 > sh->slow_ms;
	/* -EFBIG: an answer, an object longer than any chunk of ours (the caller's to judge) */
	bool answer = ret == 0 || ret == -ENOENT || ret == -EFBIG;
	breaker_result(sh, answer && !slow, slow ? -ETIMEDOUT : ret);
	if (!answer)
		count(&sh->c.errors, 1);
	return ret;
}

/* Takes the chunk's lease: 0 (this machine fetches it from the source, and the fill that
 * follows stores it, see put_one), -EEXIST (another machine holds it), another -errno. */
static int take_lease(struct shared *sh, const char *name)
{
	char *lname = lease_name(name);
	int ret = lname ? s3_put_new(sh->s3, lname, LEASE_BODY, sizeof(LEASE_BODY) - 1) : -ENOMEM;
	free(lname);
	if (ret == 0)
		count(&sh->c.leases, 1);
	else if (ret == -EEXIST)
		count(&sh->c.waits, 1);
	else if (ret != -ENOMEM) {
		breaker_result(sh, false, ret);
		count(&sh->c.errors, 1);
	}
	return ret;
}

/* Polls for a chunk another machine is fetching, up to wait_ms: 0 with the object in g,
 * -ENOENT when it did not appear, another -errno when the bucket failed. */
static int wait_for_chunk(struct shared *sh, struct s3_get *g)
{
	uint64_t deadline = tfs_now_ms() + sh->wait_ms, pause = 5;
	for (bool first = true;; first = false) {
		uint64_t now = tfs_now_ms();
		if (!first) {
			if (now >= deadline) {
				count(&sh->c.wait_timeouts, 1);
				return -ENOENT;
			}
			if (pause > deadline - now)
				pause = deadline - now;
			struct timespec ts = { 0, (long)pause * 1000000 };
			nanosleep(&ts, NULL);
			pause = pause * 3 / 2 > 100 ? 100 : pause * 3 / 2;
		}
		if (!breaker_allows(sh))
			return -EIO;
		int ret = get_obj(sh, g);
		if (ret != -ENOENT) {
			if (ret == 0)
				count(&sh->c.waited, 1);
			return ret;
		}
	}
}

/* Asks the bucket for chunk i of r: served (done[i]), deferred (later[i]: another machine
 * holds its lease; asked again, r->again, it waits for it), or a miss (the source serves it;
 * with the lease taken, this machine stores it for the fleet).  Thread-safe for distinct i. */
static void ask_chunk(struct shared *sh, struct tier_run *r, int i)
{
	struct tfs_buf *b = r->bufs[i];
	struct chunkobj_id id = { sh->source, r->key, r->etag, sh->chunk_size,
				  r->first + (uint64_t)i };
	char *name = r->etag[0] ? chunkobj_name(sh->prefix, &id) : NULL;
	/* the body is read in parts, the payload straight into the chunk's buffer and hashed
	 * as it arrives (no copy, no second pass): the header where the identity says it ends,
	 * then the payload, then the trailer */
	size_t hl = chunkobj_header_len(&id);
	char hdr[CHUNKOBJ_HDR_MAX], tail[CHUNKOBJ_MAC_LEN];
	struct iovec iov[3] = { { hdr, hl }, { b->data, b->len }, { tail, sizeof(tail) } };
	uint64_t sums[3];
	struct s3_get g = { .key = name, .iov = iov, .iovcnt = 3, .iov_sums = sums,
			    .quiet_404 = true };
	/* everything that can fail before the request is done first: a breaker's probe, once
	 * allowed, always ends in breaker_result */
	if (!name || hl > sizeof(hdr) || (!r->again && !breaker_allows(sh))) {
		free(name);
		count(&sh->c.misses, 1);
		return;
	}
	int ret = r->again ? wait_for_chunk(sh, &g) : get_obj(sh, &g);
	if (ret == -ENOENT && !r->again && leases_on(sh) && take_lease(sh, name) == -EEXIST) {
		r->later[i] = true; /* asked again once the source served the rest of the run */
		free(name);
		return;
	}
	bool ok = false;
	if (ret == 0 || ret == -EFBIG) {
		struct chunkobj_key k = { sh->key, sh->key_len };
		size_t got = g.len, in_hdr = got < hl ? got : hl;
		size_t in_payload = got - in_hdr < b->len ? got - in_hdr : b->len;
		int v = ret == -EFBIG ? -EBADMSG : chunkobj_verify_parts(
			&id, hdr, in_hdr, b->data, in_payload, in_payload == b->len ? &sums[1] : NULL,
			b->len, tail, got - in_hdr - in_payload, &k);
		if (v < 0) {
			char kbuf[200];
			count(&sh->c.verify, 1);
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
		ok = v == 0;
	}
	if (ok) {
		r->done[i] = true;
		count(&sh->c.hits, 1);
		count(&sh->c.down, b->len);
	} else {
		count(&sh->c.misses, 1); /* b's bytes are the source's to write */
	}
	free(name);
}

/* A chunk handed to a helper thread, and the run it belongs to. */
struct ask {
	struct ask *next;
	struct tier_run *r;
	int i;
	unsigned *pending;           /* the run's count of asks not done (under sh->lock) */
};

static void *helper_thread(void *arg)
{
	struct shared *sh = arg;
	pthread_mutex_lock(&sh->lock);
	for (;;) {
		while (!sh->ahead && !sh->stopping)
			pthread_cond_wait(&sh->asked, &sh->lock);
		struct ask *a = sh->ahead;
		if (!a)
			break;
		if (!(sh->ahead = a->next))
			sh->atail = NULL;
		pthread_mutex_unlock(&sh->lock);
		ask_chunk(sh, a->r, a->i);
		pthread_mutex_lock(&sh->lock);
		if (--*a->pending == 0)
			pthread_cond_broadcast(&sh->answered);
	}
	pthread_mutex_unlock(&sh->lock);
	return NULL;
}

/* Every chunk of the run from index from on, at once: the helpers take all but one, the
 * caller that one; it returns when all are answered. */
static int shared_get(struct tier *t, struct tier_run *r, int from, int *next)
{
	struct shared *sh = shared_of(t);
	struct ask asks[TIER_RUN_MAX];
	int mine = -1, n = 0;
	unsigned pending = 0;
	*next = r->n;
	/* while the breaker keeps it closed, the whole run goes to the source at once */
	pthread_mutex_lock(&sh->lock);
	bool shut = breaker_shut_locked(sh);
	pthread_mutex_unlock(&sh->lock);
	if (shut && !r->again) {
		for (int i = from; i < r->n; i++)
			if (!r->skip[i])
				count(&sh->c.misses, 1);
		return 0;
	}
	for (int i = from; i < r->n; i++) {
		if (r->skip[i])
			continue;
		if (mine < 0) {
			mine = i;
			continue;
		}
		asks[n] = (struct ask){ .r = r, .i = i, .pending = &pending };
		if (n)
			asks[n - 1].next = &asks[n];
		n++;
	}
	if (n) {
		pthread_mutex_lock(&sh->lock);
		pending = (unsigned)n;
		if (sh->atail)
			sh->atail->next = &asks[0];
		else
			sh->ahead = &asks[0];
		struct ask *tl = &asks[n - 1];
		tl->next = NULL;
		sh->atail = tl;
		pthread_cond_broadcast(&sh->asked);
		pthread_mutex_unlock(&sh->lock);
	}
	if (mine >= 0)
		ask_chunk(sh, r, mine);
	if (n) {
		pthread_mutex_lock(&sh->lock);
		while (pending)
			pthread_cond_wait(&sh->answered, &sh->lock);
		pthread_mutex_unlock(&sh->lock);
	}
	return 0; /* a miss or a failure here is never the reader's: the source serves it */
}

/* Reads a chunk back from the tier below (L2) into rb, quietly: no reader's access is
 * counted.  L2 may not have written it yet (its own queue): it is asked again for up to 2 s. */
static bool read_back(struct shared *sh, const struct tier_job *j, struct tfs_buf *rb)
{
	struct tier_run r;
	memset(&r, 0, sizeof(r));
	r.key = j->key;
	r.etag = j->etag;
	r.first = j->idx;
	r.chunk_size = sh->chunk_size;
	r.n = 1;
	r.quiet = true;
	r.bufs[0] = rb;
	for (int tries = 0; tries < 40 && !r.done[0]; tries++) {
		if (tries) {
			struct timespec ts = { 0, 50 * 1000000L };
			nanosleep(&ts, NULL);
		}
		int next;
		sh->below->ops->get(sh->below, &r, 0, &next);
	}
	return r.done[0];
}

/* Stores a chunk (its bytes held by the job, or read back from L2).  With leases on, a job
 * without bytes (a write skipped for want of room), or a write that failed, deletes the
 * chunk's lease instead: other machines then fetch the chunk rather than wait for it in vain.
 * A stored chunk's lease stays (until the lifecycle rule takes it with the chunk): a machine
 * that missed the chunk a moment before it landed then finds the lease taken and the chunk
 * there, rather than a free lease and a second fetch from the source. */
static void put_one(struct shared *sh, const struct tier_job *j)
{
	struct chunkobj_id id = { sh->source, j->key, j->etag, sh->chunk_size, j->idx };
	struct chunkobj_key k = { sh->key, sh->key_len };
	char *name = chunkobj_name(sh->prefix, &id), *body = NULL;
	size_t len = 0;
	struct tfs_buf *b = j->buf, *rb = NULL;
	if (!b && j->reread && name && (rb = tfs_buf_get(&sh->rbufs, j->len)) && read_back(sh, j, rb))
		b = rb;
	int ret = !name ? -ENOMEM
	      : b ? chunkobj_encode(&id, b->data, b->len, NULL, &k, &body, &len)
		  : -ENOSPC;
	bool leases = atomic_load_explicit(&sh->lease_state, memory_order_acquire) == LEASE_ON;
	/* a request is made (and a breaker's probe, once allowed, ends in breaker_result) */
	if ((ret < 0 && !(leases && name)) || !breaker_allows(sh)) {
		if (j->buf || j->reread)
			count(&sh->c.skipped, 1);
		tfs_buf_put(rb);
		free(body);
		free(name);
		return;
	}
	if (ret == 0) {
		uint64_t t0 = tfs_now_ms();
		ret = s3_put(sh->s3, name, body, len);
		bool slow = sh->slow_ms && tfs_now_ms() - t0 > sh->slow_ms;
		breaker_result(sh, ret == 0 && !slow, slow ? -ETIMEDOUT : ret);
		if (ret == 0) {
			count(&sh->c.writes, 1);
			count(&sh->c.up, b->len);
			if (b == rb)
				count(&sh->c.read_back, 1);
		} else {
			count(&sh->c.errors, 1);
		}
	}
	if (ret < 0 && (j->buf || j->reread))
		count(&sh->c.skipped, 1);
	tfs_buf_put(rb);
	char *lname = ret < 0 && leases && name ? lease_name(name) : NULL;
	if (lname) {
		int d = s3_delete(sh->s3, lname);
		breaker_result(sh, d == 0, d);
		if (d < 0)
			count(&sh->c.errors, 1);
	}
	free(lname);
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
		size_t len = j->buf ? j->buf->len : 0, rlen = j->reread ? j->len : 0;
		tier_job_free(j);
		pthread_mutex_lock(&sh->lock);
		sh->qbytes -= len;
		sh->rbytes -= rlen;
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
	struct tier_job *j = tier_job_new(key, etag, idx, NULL, prefetch);
	if (!j) {
		count(&sh->c.skipped, 1);
		return -ENOMEM;
	}
	/* never waited for.  The job holds the bytes while the queue has room; beyond, it reads
	 * them back from L2 (up to reread_max); beyond that, or with the breaker open, the write
	 * is skipped.  With leases on, a write skipped for want of room still gives the lease back
	 * (the job without bytes), so that other machines do not wait for it in vain. */
	pthread_mutex_lock(&sh->lock);
	bool up = !sh->stopping && !sh->open;
	bool queued = true;
	if (up && !(sh->qbytes && sh->qbytes + b->len > sh->queue_max)) {
		j->buf = b;
		tfs_buf_ref(b);
		sh->qbytes += b->len;
	} else if (up && sh->below && sh->rbytes + b->len <= sh->reread_max) {
		j->reread = true;
		j->len = b->len;
		sh->rbytes += b->len;
	} else {
		queued = up && atomic_load_explicit(&sh->lease_state, memory_order_acquire) ==
				       LEASE_ON;
	}
	if (queued) {
		if (sh->qtail)
			sh->qtail->next = j;
		else
			sh->qhead = j;
		sh->qtail = j;
		pthread_cond_signal(&sh->work);
	}
	bool skipped = !j->buf && !j->reread; /* read before a writer may take the job */
	pthread_mutex_unlock(&sh->lock);
	if (skipped)
		count(&sh->c.skipped, 1);
	if (!queued)
		tier_job_free(j);
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
		.leases = tier_count_take(&sh->c.leases, reset),
		.lease_waits = tier_count_take(&sh->c.waits, reset),
		.lease_waited = tier_count_take(&sh->c.waited, reset),
		.lease_timeouts = tier_count_take(&sh->c.wait_timeouts, reset),
		.writes_read_back = tier_count_take(&sh->c.read_back, reset),
	};
	int st = atomic_load_explicit(&sh->lease_state, memory_order_acquire);
	o->leases_state = st == LEASE_ON ? "on" : st == LEASE_OFF ? "unsupported" : "unknown";
	pthread_mutex_lock(&sh->lock);
	o->breaker_open = sh->open;
	o->queued_bytes = sh->qbytes + sh->rbytes;
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
	pthread_cond_broadcast(&sh->asked);
	pthread_mutex_unlock(&sh->lock);
	for (unsigned i = 0; i < sh->nwriters; i++)
		pthread_join(sh->writers[i], NULL); /* after the queue is drained */
	for (unsigned i = 0; i < sh->nhelpers; i++)
		pthread_join(sh->helpers[i], NULL); /* no run is asked any more */
	pthread_cond_destroy(&sh->asked);
	pthread_cond_destroy(&sh->answered);
	pthread_cond_destroy(&sh->work);
	pthread_cond_destroy(&sh->idle);
	pthread_mutex_destroy(&sh->lock);
	buf_pool_destroy(&sh->rbufs);
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
	.read_part = tier_nop_read_part,
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
	sh->wait_ms = cfg->wait_ms;
	sh->queue_max = cfg->queue_bytes ? cfg->queue_bytes : SHARED_DEFAULT_QUEUE_BYTES;
	sh->reread_max = cfg->reread_bytes ? cfg->reread_bytes : 8 * sh->queue_max;
	sh->below = cfg->below;
	buf_pool_init(&sh->rbufs, cfg->chunk_size);
	buf_pool_limit(&sh->rbufs, SHARED_WRITERS);
	pthread_mutex_init(&sh->lock, NULL);
	pthread_cond_init(&sh->work, NULL);
	pthread_cond_init(&sh->idle, NULL);
	pthread_cond_init(&sh->asked, NULL);
	pthread_cond_init(&sh->answered, NULL);
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
	for (unsigned i = 0; i < SHARED_HELPERS; i++) {
		int ret = -pthread_create(&sh->helpers[i], NULL, helper_thread, sh);
		if (ret < 0) {
			sh->s3 = NULL;
			shared_free(sh);
			return ret;
		}
		sh->nhelpers++;
	}
	sh->s3 = cfg->s3;
	*out = &sh->tier;
	return 0;
}
