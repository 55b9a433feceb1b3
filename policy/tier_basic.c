/*
 * tier_basic.c - the two tiers that hold nothing: the do-nothing tier, which stands where no tier
 * is configured (no L2) so that the tier loop and the administration never ask whether a tier
 * exists, and S3, the source, always the last tier.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "conc.h"
#include "tier.h"
#include "xmeta.h"

static int null_get(struct tier *t, struct tier_run *r, int from, int *next)
{
	*next = from + 1; /* a miss */
	return 0;
}

static int null_fill(struct tier *t, const char *key, const char *etag, uint64_t idx,
		     struct tfs_buf *b, bool prefetch)
{
	return 0; /* the caller keeps its reference; nothing is taken */
}

int tier_nop_has(struct tier *t, const char *key, const char *etag, uint64_t idx,
		 uint64_t *bytes)
{
	*bytes = 0;
	return 0;
}

int tier_nop_touch(struct tier *t, const char *key, const char *etag, uint64_t idx)
{
	return 0;
}

int tier_nop_keep_unread(struct tier *t, const char *key, const char *etag, uint64_t idx,
			 uint8_t src, size_t len)
{
	return -ENOENT;
}

int tier_nop_read_part(struct tier *t, const char *key, const char *etag, uint64_t idx,
		       uint64_t off, size_t len, char *buf, size_t *got, uint64_t *accesses)
{
	return -ENOENT;
}

int tier_nop_drop_version(struct tier *t, const char *key, const char *etag, bool changed)
{
	return 0;
}

int tier_nop_drop_matching(struct tier *t, tier_match_fn match, void *ctx, uint64_t *n)
{
	*n = 0;
	return 0;
}

static int null_flush(struct tier *t) { return 0; }

int tier_nop_usage(struct tier *t, uint64_t *used, uint64_t *entries, uint64_t *capacity)
{
	*used = *entries = *capacity = 0;
	return 0;
}

static int null_stats(struct tier *t, struct tier_stats *out, bool reset)
{
	memset(out, 0, sizeof(*out));
	return 0;
}

static void null_destroy(struct tier *t) { free(t); }

static const struct tier_ops null_ops = {
	.get = null_get,
	.fill = null_fill,
	.has = tier_nop_has,
	.touch = tier_nop_touch,
	.keep_unread = tier_nop_keep_unread,
	.read_part = tier_nop_read_part,
	.drop_version = tier_nop_drop_version,
	.drop_matching = tier_nop_drop_matching,
	.flush = null_flush,
	.usage = tier_nop_usage,
	.stats = null_stats,
	.destroy = null_destroy,
};

struct tier *tier_null_new(void)
{
	struct tier *t = calloc(1, sizeof(*t));
	if (t) {
		t->ops = &null_ops;
		t->name = "none";
		t->lat_slot = TIER_L2;
	}
	return t;
}

/* The S3 tier is the do-nothing tier but for get: it stores nothing.  Its GETs pass the gate. */
struct s3_tier {
	struct tier tier;           /* the face: tier.impl is this */
	struct s3_client *s3;       /* not owned */
	struct conc gate;
	struct xmeta *xmeta;        /* not owned, or NULL */
};

static int s3_tier_get(struct tier *t, struct tier_run *r, int from, int *next)
{
	struct s3_tier *st = t->impl;
	int b = from;
	uint64_t total = 0;
	size_t bs = ssd_block_size(r->chunk_size), niov = 0;
	while (b < r->n && !r->skip[b]) {
		total += r->bufs[b]->len;
		niov += (r->bufs[b]->len + bs - 1) / bs;
		b++;
	}
	*next = b;
	if (b == from)
		return 0;
	/* One buffer for each block of each chunk, so that the client hands back the blocks'
	 * checksums (L2 stores the chunks with these: no second pass over the bytes). */
	struct iovec *iov = malloc(niov * (sizeof(*iov) + sizeof(uint64_t)));
	if (!iov) {
		for (int i = from; i < b; i++)
			r->err[i] = -ENOMEM;
		return -ENOMEM;
	}
	uint64_t *sums = (uint64_t *)(iov + niov);
	for (int i = from, k = 0; i < b; i++)
		for (size_t off = 0; off < r->bufs[i]->len; off += bs, k++) {
			iov[k].iov_base = r->bufs[i]->data + off;
			iov[k].iov_len = r->bufs[i]->len - off < bs ? r->bufs[i]->len - off : bs;
		}
	struct s3_get g = {
		.key = r->key,
		.ranged = true,
		.offset = (r->first + (uint64_t)from) * r->chunk_size,
		.length = total,
		.if_match = r->etag[0] ? r->etag : NULL, /* a chunk never lands under another version */
		.iov = iov,
		.iovcnt = (int)niov,
		.iov_sums = sums,
	};
	conc_enter(&st->gate, r->urgent && from == 0);
	int ret = s3_get(st->s3, &g);
	conc_leave(&st->gate, ret == 0 && g.throttled ? -EAGAIN : ret);
	if (ret == 0 && st->xmeta && g.obj.etag[0])
		xmeta_put_object(st->xmeta, r->key, &g.obj);
	for (int i = from, k = 0; i < b; i++) {
		size_t nb = (r->bufs[i]->len + bs - 1) / bs;
		r->done[i] = ret == 0;
		r->err[i] = ret;
		if (ret == 0) {
			memcpy(r->bufs[i]->bsums, sums + k, nb * sizeof(*sums));
			r->bufs[i]->has_bsums = true;
		}
		k += (int)nb;
	}
	free(iov);
	return ret;
}

/* The S3 client's own counters (of every request, metadata too) are its statistics; the tier
 * reports the GETs, and a reset zeroes them all. */
static int s3_tier_stats(struct tier *t, struct tier_stats *out, bool reset)
{
	struct s3_tier *st = t->impl;
	memset(out, 0, sizeof(*out));
	out->hits = s3_client_stats(st->s3)->requests_get;
	if (reset)
		s3_client_reset_stats(st->s3);
	return 0;
}

static void s3_tier_destroy(struct tier *t)
{
	struct s3_tier *st = t->impl;
	conc_destroy(&st->gate);
	free(st);
}

static const struct tier_ops s3_ops = {
	.get = s3_tier_get,
	.fill = null_fill,
	.has = tier_nop_has,
	.touch = tier_nop_touch,
	.keep_unread = tier_nop_keep_unread,
	.read_part = tier_nop_read_part,
	.drop_version = tier_nop_drop_version,
	.drop_matching = tier_nop_drop_matching,
	.flush = null_flush,
	.usage = tier_nop_usage,
	.stats = s3_tier_stats,
	.destroy = s3_tier_destroy,
};

struct tier *tier_s3_new(struct s3_client *s3, unsigned connections, struct xmeta *xmeta)
{
	struct s3_tier *st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	st->s3 = s3;
	st->xmeta = xmeta;
	conc_init(&st->gate, connections, &s3_client_stats(s3)->arriving);
	st->tier = (struct tier){ .ops = &s3_ops, .name = "s3", .lat_slot = TIER_S3,
				  .is_source = true, .impl = st };
	return &st->tier;
}

void tier_s3_gate_stats(struct tier *t, struct conc_stats *out)
{
	conc_get_stats(&((struct s3_tier *)t->impl)->gate, out);
}
