/*
 * reader.c - one read: a FUSE read becomes a range of chunks, each taken from the chunk table
 * (the memory tier) or, when missing, loaded by the reader itself through the tier loop
 * (fetch.c), with a readahead window that grows while the reader stays sequential.
 *
 * Sequential detection tolerates small jumps, forward and back (the reorderings of a
 * multi-threaded FUSE loop, a reader skipping a little): a read starting within
 * max(chunk, window/4) of where the last one ended counts as sequential.  Any other jump resets
 * the window, so a random reader pays for no readahead.  The window starts at one chunk and
 * doubles with each sequential read up to readahead_max.
 *
 * A random reader's read of part of a chunk that is not in memory is served from the first
 * tier below memory that holds it (L2: only the blocks that hold the bytes, read and checked),
 * without loading the whole chunk: a 4 KiB read costs a 16 KiB disk read, not 1 MiB.  While L1
 * has room, the chunk is also loaded whole in the background, so that a small hot set ends in
 * RAM; once L1 is full, parts do not displace it (demotion makes room again).
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "policy_i.h"
#include "stats.h"
#include "util.h"

void policy_stream_init(struct policy_stream *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
}

void policy_stream_destroy(struct policy_stream *s) { pthread_mutex_destroy(&s->lock); }

/* One chunk for a reader: from memory, else loaded now through the tier loop (or waited for,
 * when another fetcher loads it).  count: this is a reader's access (toward promotion). */
static int chunk_get(struct policy *p, const struct policy_object *o, uint64_t idx, bool count,
		     struct chunk **out)
{
	uint64_t t0 = tfs_now_ns();
	enum chunk_got got;
	int ret = chunks_acquire(p->chunks, o, idx, out, &got);
	if (ret < 0)
		return ret;
	if (got == CHUNK_MINE)
		fetch_run(p->fetcher, out, 1, false);
	return chunks_ready(p->chunks, *out, count, got == CHUNK_HIT, t0);
}

/* Updates the reader's sequential state and returns the range to read ahead, [*ra_from, *ra_to)
 * (none when readahead is off); *seq: the read continues the reader's last one. */
static void readahead_plan(struct policy *p, const struct policy_object *o, struct policy_stream *s,
			   uint64_t off, uint64_t end, uint64_t *ra_from, uint64_t *ra_to, bool *seq_out)
{
	uint64_t cs = p->cfg.chunk_size;
	bool ra = p->cfg.readahead_max && p->cfg.prefetch;
	*ra_from = *ra_to = 0;
	pthread_mutex_lock(&s->lock);
	uint64_t tol = s->window / 4 > cs ? s->window / 4 : cs;
	bool seq = off + tol >= s->next_off && off <= s->next_off + tol;
	*seq_out = seq;
	if (seq && !ra) {
		s->window = cs; /* sequential, with nothing to read ahead */
	} else if (seq) {
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

/* A random reader's read of [from, from + len) of chunk idx, which is not in memory: served by
 * the first tier below memory that holds it and serves parts, into a buffer of the read's own
 * (out's next entry).  0 when served, else the caller loads the chunk. */
static int part_get(struct policy *p, const struct policy_object *o, uint64_t idx, uint64_t from,
		    size_t len, struct policy_read *out)
{
	uint64_t t0 = tfs_now_ns();
	char *buf = malloc(len ? len : 1);
	if (!buf)
		return -ENOMEM;
	for (struct tier *const *t = policy_lower(p); !(*t)->is_source; t++) {
		size_t got = 0;
		uint64_t acc = 0;
		if ((*t)->ops->read_part(*t, o->key, o->etag, idx, from, len, buf, &got, &acc) < 0)
			continue;
		if (got != len)
			break; /* a chunk shorter than the object's size says: load it */
		stats_lat_record(&p->stats, (*t)->lat_slot, (tfs_now_ns() - t0) / 1000);
		atomic_fetch_add_explicit(&p->stats.chunk_misses, 1, memory_order_relaxed);
		if (chunks_l1_room(p->chunks, p->cfg.chunk_size))
			chunks_queue(p->chunks, o, idx, PF_NONE, false); /* RAM has room: load it */
		out->chunks[out->n] = NULL;
		out->parts[out->n] = buf;
		out->behind[out->n] = false;
		out->iov[out->n].iov_base = buf;
		out->iov[out->n].iov_len = len;
		out->bytes += len;
		out->n++;
		return 0;
	}
	free(buf);
	return -ENOENT;
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

	uint64_t ra_from = 0, ra_to = 0;
	bool seq = true;
	if (s)
		readahead_plan(p, o, s, off, end, &ra_from, &ra_to, &seq);
	/* Chunks after the first one of this read are fetched in the background meanwhile (a
	 * random reader's part reads ask them when their turn comes). */
	for (uint64_t i = first + 1; seq && i <= last; i++)
		chunks_queue(p->chunks, o, i, PF_NONE, false);
	if (ra_to > ra_from)
		for (uint64_t i = ra_from / cs; i <= (ra_to - 1) / cs; i++)
			if (i > last && chunks_queue(p->chunks, o, i, PF_READAHEAD, false) == -ENOSPC) {
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
		bool count = true, ahead_on = false;
		if (s) {
			pthread_mutex_lock(&s->lock);
			count = s->last_counted != i + 1;
			s->last_counted = i + 1;
			ahead_on = s->window >= 2 * cs; /* an established sequential stream */
			pthread_mutex_unlock(&s->lock);
		}
		uint64_t cstart = i * cs;
		uint64_t from = off > cstart ? off - cstart : 0;
		if (!seq) {
			/* a part of a chunk not in memory: from the tier that holds it */
			uint64_t clen = o->size - cstart < cs ? o->size - cstart : cs;
			uint64_t to = end - cstart < clen ? end - cstart : clen;
			uint64_t t0 = tfs_now_ns();
			int f = to - from < clen ? chunks_find(p->chunks, o, i, &c) : -EBUSY;
			if (f == 0 && chunks_ready(p->chunks, c, count, true, t0) < 0)
				f = -EBUSY; /* (cannot happen: it was READY) */
			if (f == -ENOENT && part_get(p, o, i, from, (size_t)(to - from), out) == 0)
				continue;
			if (f == 0)
				goto have;
		}
		if ((ret = chunk_get(p, o, i, count, &c)) < 0) {
			policy_read_release(p, out);
			return ret;
		}
have:;
		size_t clen = chunk_id(c)->len;
		const char *data = chunk_data(c);
		uint64_t to = end - cstart < clen ? end - cstart : clen;
		out->chunks[out->n] = c;
		out->parts[out->n] = NULL;
		/* a sequential reader that read to the chunk's end is past it: it leaves memory
		 * at the release (the page cache has its bytes, the next fetch its buffer) */
		out->behind[out->n] = ahead_on && to == clen;
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
		if (r->parts[i])
			free(r->parts[i]);
		else if (r->behind[i])
			chunks_put_behind(p->chunks, r->chunks[i]);
		else
			chunks_put(p->chunks, r->chunks[i]);
	r->n = 0;
	r->bytes = 0;
}
