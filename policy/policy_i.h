/*
 * policy_i.h - the insides of struct policy, shared by meta.c, chunks.c and reader.c.
 *
 * Lock order: meta_lock and chunk_lock are never held together.  No S3 request is made with
 * either held.
 */
#ifndef TIERFS_POLICY_I_H
#define TIERFS_POLICY_I_H

#include <pthread.h>

#include "policy.h"

struct dir_entry;       /* meta.c */
struct chunk;           /* chunks.c */

struct policy {
	struct policy_config cfg;       /* immutable */
	struct s3_client *s3;           /* not owned */
	struct policy_stats stats;

	/* metadata: cached directory listings, LRU */
	pthread_mutex_t meta_lock;      /* guards dir_tab, dir_lru and ndirs */
	struct dir_entry **dir_tab;
	size_t dir_buckets;
	struct dir_entry *dir_lru_head, *dir_lru_tail;
	size_t ndirs;

	/* chunks: the table of chunks being fetched or recently fetched, LRU, and the queue of
	 * prefetches not yet started */
	pthread_mutex_t chunk_lock;     /* guards everything below up to threads */
	pthread_cond_t chunk_done;      /* broadcast when any fetch completes */
	pthread_cond_t queue_cond;      /* signalled when the queue gains work or on stop */
	struct chunk **chunk_tab;
	size_t chunk_buckets;
	struct chunk *lru_head, *lru_tail;  /* READY chunks, most recent first */
	struct chunk *queue_head, *queue_tail;
	uint64_t mem_used;              /* bytes of all linked chunks, loading ones included */
	bool stopping;
	pthread_t *threads;
	unsigned nthreads;
};

int meta_init(struct policy *p);
/* Builds a listing of dir_key from ListObjectsV2 pages by the naming rules of meta.c (exposed
 * for unit tests). */
int meta_listing_from_pages(const char *dir_key, const struct s3_list_page *pages, size_t npages,
			    struct tfs_listing **out);
void meta_destroy(struct policy *p);

int chunks_init(struct policy *p);
/* Starts the fetch threads. */
int chunks_start(struct policy *p);
void chunks_destroy(struct policy *p);
/* Blocks until the chunk is ready; returns a referenced chunk. */
int chunk_get(struct policy *p, const struct policy_object *o, uint64_t idx, struct chunk **out);
/* Queues a background fetch of the chunk unless it is present or the budget is spent. */
void chunk_prefetch(struct policy *p, const struct policy_object *o, uint64_t idx);
void chunk_put(struct policy *p, struct chunk *c);
const char *chunk_data(const struct chunk *c, size_t *len);

#endif
