/*
 * buf.c - reference-counted chunk buffers and their pool, and the copy-up jobs that hold them
 * in a tier's queue (tier.h).
 *
 * A freshly allocated 1 MiB buffer is a new mapping whose pages fault and are zeroed on first
 * touch, which cost a sixth of the warm (L2) read path, and a quarter of the daemon's CPU on a
 * cold read through L2 while only 32 were kept: buffers of the chunk size are kept for reuse,
 * up to the pool's max (the policy's chunk memory).
 *
 * Large buffers are made of transparent huge pages (2 MiB), made in one call
 * (MADV_POPULATE_WRITE): on this project's machines (virtual, shadow-paged) the first touch
 * from user space of each 4 KiB page the kernel made costs microseconds, so hashing a chunk
 * the disk had just read into fresh 4 KiB pages ran at 1 GB/s, against 20 GB/s on huge pages
 * (docs/BENCHMARKS.md).  A buffer smaller than a huge page is a piece of one: the other
 * pieces wait for the next buffers of that size.  Where huge pages are not to be had, the same
 * calls give 4 KiB pages, populated.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <string.h>

#include "tier.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

#define MAP_MIN (256u << 10) /* buffers this large are mappings of their own */
#define HUGE_PAGE (2u << 20)

/* A mapping of len bytes (a multiple of HUGE_PAGE) aligned to HUGE_PAGE, of huge pages where
 * the kernel has them, populated; NULL when out of memory. */
static char *huge_map(size_t len)
{
	char *m = mmap(NULL, len + HUGE_PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	char *d = (char *)(((uintptr_t)m + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
	if (d > m)
		munmap(m, (size_t)(d - m));
	munmap(d + len, (size_t)(m + HUGE_PAGE - d));
	madvise(d, len, MADV_HUGEPAGE);
	if (madvise(d, len, MADV_POPULATE_WRITE) < 0)
		memset(d, 0, len); /* (an older kernel) */
	return d;
}

/* Pieces of huge pages not handed out yet, per piece size (a power of two below HUGE_PAGE). */
#define PIECE_SIZES 4 /* 256 KiB .. 1 MiB */
static struct {
	pthread_mutex_t lock;
	char *spare[PIECE_SIZES][HUGE_PAGE / MAP_MIN];
	unsigned nspare[PIECE_SIZES];
} pieces = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* The piece size class of len bytes, or -1 when len is not a piece of a huge page. */
static int piece_class(size_t len)
{
	for (int c = 0; c < PIECE_SIZES; c++)
		if (len == (size_t)MAP_MIN << c)
			return c;
	return -1;
}

static size_t map_len(size_t len)
{
	return (len + HUGE_PAGE - 1) & ~(size_t)(HUGE_PAGE - 1);
}

/* len bytes, page-aligned; NULL when out of memory. */
static char *data_alloc(size_t len)
{
	int c = piece_class(len);
	if (c >= 0) {
		char *d = NULL;
		pthread_mutex_lock(&pieces.lock);
		if (pieces.nspare[c])
			d = pieces.spare[c][--pieces.nspare[c]];
		pthread_mutex_unlock(&pieces.lock);
		if (d || !(d = huge_map(HUGE_PAGE)))
			return d;
		pthread_mutex_lock(&pieces.lock);
		for (size_t off = len; off < HUGE_PAGE; off += len) {
			if (pieces.nspare[c] < HUGE_PAGE / MAP_MIN)
				pieces.spare[c][pieces.nspare[c]++] = d + off;
			else
				munmap(d + off, len);
		}
		pthread_mutex_unlock(&pieces.lock);
		return d;
	}
	if (len >= HUGE_PAGE)
		return huge_map(map_len(len));
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
	if (d && len >= HUGE_PAGE)
		munmap(d, map_len(len));
	else if (d && len >= MAP_MIN)
		munmap(d, len); /* (a piece: the rest of its huge page lives on) */
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
