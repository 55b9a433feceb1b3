/*
 * buf.c - reference-counted chunk buffers and their pool, and the copy-up jobs that hold them
 * in a tier's queue (tier.h).
 *
 * A freshly allocated 1 MiB buffer is a new mapping whose pages fault and are zeroed on first
 * touch, which cost a sixth of the warm (L2) read path, and a quarter of the daemon's CPU on a
 * cold read through L2 while only 32 were kept: buffers of the chunk size are kept for reuse,
 * up to the pool's max (the policy's chunk memory).  Until the pool has them, a cold read
 * needs a new buffer per chunk: large ones are mapped with MAP_POPULATE, their pages made in
 * one call instead of a fault each (on a virtual machine a fault is dear: they were a quarter
 * of the daemon's samples in a cold read from the shared cache).
 */
#include <stdio.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <string.h>

#include "tier.h"

#define MAP_MIN (256u << 10) /* buffers this large are mappings of their own */

/* len bytes, page-aligned; NULL when out of memory. */
static char *data_alloc(size_t len)
{
	if (len >= MAP_MIN) {
		void *d = mmap(NULL, len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		return d == MAP_FAILED ? NULL : d;
	}
	char *d;
	return posix_memalign((void **)&d, 4096, len ? len : 1) == 0 ? d : NULL;
}

static void data_free(char *d, size_t len)
{
	if (d && len >= MAP_MIN)
		munmap(d, len);
	else
		free(d);
}

void buf_pool_init(struct buf_pool *bp, size_t size)
{
	bp->size = size;
	bp->free = NULL;
	bp->nfree = 0;
	bp->max = BUF_POOL_MAX;
	pthread_mutex_init(&bp->lock, NULL);
}

void buf_pool_limit(struct buf_pool *bp, unsigned max)
{
	pthread_mutex_lock(&bp->lock);
	if (!bp->free)
		bp->max = max;
	pthread_mutex_unlock(&bp->lock);
}

void buf_pool_destroy(struct buf_pool *bp)
{
	while (bp->nfree)
		data_free(bp->free[--bp->nfree], bp->size);
	free(bp->free);
	bp->free = NULL;
	pthread_mutex_destroy(&bp->lock);
}

struct tfs_buf *tfs_buf_get(struct buf_pool *bp, size_t len)
{
	struct tfs_buf *b = malloc(sizeof(*b));
	char *d = NULL;
	if (!b)
		return NULL;
	if (len == bp->size) {
		pthread_mutex_lock(&bp->lock);
		if (bp->nfree)
			d = bp->free[--bp->nfree];
		pthread_mutex_unlock(&bp->lock);
	}
	/* page-aligned, so that L2 can write it with O_DIRECT */
	if (!d)
		d = data_alloc(len);
	if (!d) {
		free(b);
		return NULL;
	}
	atomic_init(&b->refs, 1);
	b->pool = bp;
	b->len = len;
	b->data = d;
	b->has_bsums = false;
	return b;
}

void tfs_buf_ref(struct tfs_buf *b) { atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed); }

void tfs_buf_put(struct tfs_buf *b)
{
	if (!b || atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
		return;
	struct buf_pool *bp = b->pool;
	char *d = b->data;
	if (b->len == bp->size) {
		pthread_mutex_lock(&bp->lock);
		if (!bp->free && bp->max)
			bp->free = malloc(bp->max * sizeof(*bp->free)); /* NULL: nothing is kept */
		if (bp->free && bp->nfree < bp->max) {
			bp->free[bp->nfree++] = d;
			d = NULL;
		}
		pthread_mutex_unlock(&bp->lock);
	}
	data_free(d, b->len);
	free(b);
}

struct tier_job *tier_job_new(const char *key, const char *etag, uint64_t idx,
			      struct tfs_buf *b, bool prefetch)
{
	struct tier_job *j = calloc(1, sizeof(*j));
	if (!j || !(j->key = strdup(key))) {
		free(j);
		return NULL;
	}
	snprintf(j->etag, sizeof(j->etag), "%s", etag);
	j->idx = idx;
	j->prefetch = prefetch;
	j->buf = b;
	if (b)
		tfs_buf_ref(b);
	return j;
}

void tier_job_free(struct tier_job *j)
{
	tfs_buf_put(j->buf);
	free(j->key);
	free(j);
}
