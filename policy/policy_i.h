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
#include "ssd.h"

#define BUF_POOL_MAX 32 /* free chunk buffers kept for reuse (chunks.c) */

struct dir_entry;       /* meta.c */
struct chunk;           /* chunks.c */
struct l2;              /* l2.c */
struct ttl_setting;     /* ttl.c */
struct warm_req;        /* admin.c */

struct policy {
	struct policy_config cfg;       /* immutable */
	struct s3_client *s3;           /* not owned */
	struct l2 *l2;                  /* NULL when there is no L2 */
	uint64_t started_ms;            /* monotonic, for uptime */

	/* warm (admin.c): a queue of paths to fetch into L2, served by one thread */
	pthread_mutex_t warm_lock;      /* guards warm_head, warm_tail, warm_stop */
	pthread_cond_t warm_cond;
	struct warm_req *warm_head, *warm_tail;
	bool warm_stop, warm_started;
	pthread_t warm_thread;
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
	struct chunk *lru_head, *lru_tail;  /* READY chunks not in L1, most recent first */
	struct chunk *l1_head, *l1_tail;    /* READY chunks in L1, most recent first */
	uint64_t l1_used, l1_entries;       /* bytes and chunks in L1 (not in mem_used) */
	struct chunk *queue_head, *queue_tail;
	struct chunk *lowq_head, *lowq_tail;  /* PF_INTERVAL prefetches, after the queue */
	unsigned low_busy;              /* fetch threads working on the low queue */
	uint64_t mem_used;              /* bytes of linked chunks outside L1, loading ones included */
	bool stopping;
	pthread_t *threads;
	unsigned nthreads;
	pthread_t demoter;              /* the demotion pass, every demote_interval */
	bool demoter_started;

	pthread_mutex_t ttl_lock;       /* guards ttl_tab and nttl (ttl.c) */
	struct ttl_setting **ttl_tab;
	size_t nttl;

	/* prediction (prefetch.c): per-object access history, per-directory reading order */
	pthread_mutex_t pf_lock;        /* guards pf_objs, npf_objs, pf_dirs, npf_dirs, pf_stop; taken
					 * with no other lock held */
	pthread_cond_t pf_cond;
	struct pf_obj **pf_objs;
	size_t npf_objs;
	struct pf_dir **pf_dirs;
	size_t npf_dirs;
	bool pf_stop, pf_started;
	pthread_t pf_thread;

	pthread_mutex_t buf_lock;       /* guards bufs and nbufs: free chunk buffers for reuse */
	char *bufs[BUF_POOL_MAX];
	unsigned nbufs;
};

void policy_lat_record(struct policy *p, enum policy_tier t, uint64_t us);

int admin_init(struct policy *p);
/* Stops the warm thread (queued work is dropped). */
void admin_stop(struct policy *p);

int ttl_init(struct policy *p);
void ttl_destroy(struct policy *p);

int meta_init(struct policy *p);
/* Builds a listing of dir_key from ListObjectsV2 pages by the naming rules of meta.c (exposed
 * for unit tests). */
int meta_listing_from_pages(const char *dir_key, const struct s3_list_page *pages, size_t npages,
			    struct tfs_listing **out);
void meta_destroy(struct policy *p);
/* The listing of dir_key held in memory, fresh or not (no S3 request), or NULL: good enough
 * for predicting (a stale listing names old versions, whose prefetch is merely wasted). */
struct tfs_listing *meta_cached_listing(struct policy *p, const char *dir_key);

int prefetch_init(struct policy *p);
/* Starts the interval predictor's thread (when prefetch is on). */
int prefetch_start(struct policy *p);
void prefetch_stop(struct policy *p);
void prefetch_destroy(struct policy *p);

int chunks_init(struct policy *p);
/* Starts the fetch threads. */
int chunks_start(struct policy *p);
/* Stops the fetch threads (the table stays usable), then frees everything. */
void chunks_stop(struct policy *p);
void chunks_destroy(struct policy *p);
/* Blocks until the chunk is ready; returns a referenced chunk.  count: this is a reader's
 * access (counted toward promotion). */
int chunk_get(struct policy *p, const struct policy_object *o, uint64_t idx, bool count,
	      struct chunk **out);
/* Drops from memory every chunk whose key match() accepts; returns how many. */
uint64_t chunks_drop_matching(struct policy *p, bool (*match)(void *ctx, const char *key),
			      void *ctx);
/* Whether the chunk is in memory, and in L1. */
bool chunk_in_l1(struct policy *p, const char *key, const char *etag, uint64_t idx, size_t *len);
/* Queues a background fetch of the chunk for predictor src (PF_NONE: a chunk the current read
 * needs, outside the prefetch accounting and budget).  PF_INTERVAL work waits in a second queue
 * served only when the first is empty, by one thread at a time.  0 when queued, -EEXIST when
 * present (in memory, or L2 for if_absent_in_l2), -ENOSPC when the budget or the memory buffer
 * is spent. */
int chunk_prefetch(struct policy *p, const struct policy_object *o, uint64_t idx,
		   enum policy_pf_src src, bool if_absent_in_l2);
void chunk_put(struct policy *p, struct chunk *c);
const char *chunk_data(const struct chunk *c, size_t *len);

/* ---- l2.c ---- */

struct l2_config {
	uint64_t cap;            /* l2_size */
	uint64_t min_free_pct;   /* keep this much of the file system free ... */
	uint64_t min_free_bytes; /* ... or this many bytes, whichever is more */
};

/* Loads the table of what the store holds and starts the writer and upkeep threads.  The store
 * is not owned and must outlive the l2. */
int l2_start(struct ssd_store *ssd, const struct l2_config *cfg, struct policy_stats *stats,
	     struct l2 **out);
/* Writes what is queued, then stops the threads. */
void l2_stop(struct l2 *l);
/* A verified chunk from L2, counting the access; -ENOENT on a miss.  *pf_src: the predictor
 * whose unread prefetch the entry held (0: none), handed to the caller with the data. */
int l2_read(struct l2 *l, const char *key, const char *etag, uint64_t idx, char *buf, size_t cap,
	    size_t *len, uint64_t *accesses, uint8_t *pf_src);
/* The chunk leaves memory unread after predictor src prefetched it: L2 keeps the unread
 * prefetch (len payload bytes) until a reader reads it (used) or it is removed (wasted).
 * -ENOENT when L2 does not hold the chunk. */
int l2_take_prefetch(struct l2 *l, const char *key, const char *etag, uint64_t idx, uint8_t src,
		     size_t len);
/* Hints that chunks first..first+n-1 of this version will be read from L2 soon. */
void l2_will_read(struct l2 *l, const char *key, const char *etag, uint64_t first, size_t n);
/* Queues a fill; done(owner, obj) is called (from the writer thread, no lock held) when data is
 * no longer needed.  -EAGAIN when the queue is full: the fill is dropped and done is not called.
 * prefetch: nobody has read the data yet, so it may only displace colder entries. */
int l2_write_async(struct l2 *l, const char *key, const char *etag, uint64_t idx, const char *data,
		   size_t len, bool prefetch, void (*done)(void *owner, void *obj), void *owner,
		   void *obj);
/* Waits until every queued fill is written. */
void l2_flush(struct l2 *l);
void l2_usage(struct l2 *l, uint64_t *used, uint64_t *entries);
/* A reader accessed the chunk in memory (L1 or the buffer): L2's eviction order learns it,
 * so that L2 keeps what L1 holds (inclusion). */
void l2_note_access(struct l2 *l, const char *key, const char *etag, uint64_t idx);
/* The payload bytes of the chunk in L2, or 0 when absent. */
uint64_t l2_chunk_bytes(struct l2 *l, const char *key, const char *etag, uint64_t idx);
/* Forgets a chunk the store removed (a callback for ssd_remove_*; arg is the l2). */
void l2_forget(void *arg, const struct ssd_entry *e);
struct ssd_store *l2_store(struct l2 *l);
/* Records that key now has etag; the chunks of any other version are dropped. */
void l2_open_version(struct l2 *l, const char *key, const char *etag);

#endif
