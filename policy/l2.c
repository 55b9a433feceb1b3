/*
 * l2.c - the L2 tier (tier.h): which chunks the SSD store holds (an in-memory table loaded from
 * the index in the background at start, without reading any data: a mount serves at once, and
 * until the table is complete L2 serves what the index names, while fills wait), reads with
 * access accounting, fills off the
 * reader's path (two writer threads), capacity (l2_size and the free-space floor) enforced before
 * every fill by evicting in the order of evict.h, and background upkeep every
 * upkeep_interval_ms (orphaned slots once, then the floor when other programs fill the disk).
 *
 * The table is the eviction order's: evict.h finds a chunk by a 64-bit digest of its index key
 * and gives a handle, and l->ents[handle] is the chunk's entry (which holds the full index key,
 * compared on every lookup).  Two chunks whose digests collide cannot both be in the table: the
 * second is not stored (a miss, never wrong data).
 *
 * Locks: l->lock guards the table, the order, used bytes and the write queue; no store I/O
 * happens under it, and no other lock is taken while it is held (the lock order in policy_i.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "evict.h"
#include "l2.h"
#include "log.h"
#include "ssd.h"
#include "util.h"
#include "worker.h"

#define FILL_DEADLINE_MS 30000       /* a fill waits this long for room, then the disk is failing */
#define L2_WRITERS 2                 /* one hashes and indexes while the other's write is on the disk */

/* What L2 keeps in memory of a chunk: 24 bytes, in pages of ENTRY_PAGE by the order's handle
 * (no allocation per chunk); the order's own node and table slot come on top (evict.h).  Its
 * index key is not kept: the order's 64-bit digest of it and 32 more bits (check) tell chunks
 * apart, and an eviction reads the key back from the slot's header (ssd_remove_slot). */
struct l2_entry {
	uint32_t slot;               /* the store's slot (ssd_entry.slot) */
	uint32_t check;              /* check_of(ikey) */
	uint32_t disk_bytes;         /* 0: no chunk has this handle (a ghost's, or unused) */
	uint32_t last_access;        /* wall-clock seconds */
	uint32_t accesses;           /* (at most UINT32_MAX) */
	/* An unread prefetch (chunks.c hands it over when the chunk leaves memory unread): the
	 * predictor, and the payload bytes counted in pf_unread_bytes.  Read by a reader: used;
	 * removed: wasted. */
	uint32_t pf_len : 28;        /* (chunks are at most POLICY_MAX_CHUNK_SIZE, 2^26) */
	uint32_t pf_src : 4;         /* enum policy_pf_src */
};
_Static_assert(POLICY_MAX_CHUNK_SIZE < (1u << 28) && PF_NSRC <= 16, "l2_entry's bit fields");

#define ENTRY_PAGE 4096u             /* entries per page of the table */

struct l2 {
	struct ssd_store *ssd;       /* not owned */
	struct l2_config cfg;        /* immutable */
	struct policy_stats *stats;  /* the policy's: prefetch accounting */
	struct {                     /* this tier's counters (tier_stats) */
		_Atomic uint64_t hits, misses, writes, no_room, failed, waited, evictions, upkeep;
		_Atomic uint64_t part_hits; /* of hits: parts of a chunk (read_part) */
	} c;

	pthread_mutex_t lock;        /* guards everything below but the threads */
	pthread_cond_t work;         /* a job queued, or stop: the writers wait on it */
	pthread_cond_t room;         /* a job done (room in the queue), or stop: fills and flushes */
	struct evict_order *order;   /* the eviction order, and the table through its handles */
	struct l2_entry **pages;     /* entry h is pages[h / ENTRY_PAGE][h % ENTRY_PAGE] */
	uint32_t npages;             /* (a page is NULL until a handle in it is used) */
	uint64_t used, entries;
	uint64_t reserved;           /* room made for chunks being written (make_room) */
	struct tier_job *qhead, *qtail; /* a prefetch's job evicts only HIR chunks */
	uint64_t qbytes, queue_max;  /* bytes queued, and how many may be (beyond, fills wait) */
	unsigned writing;            /* jobs the writers hold */
	_Atomic bool stopping;

	bool load_done;              /* the loader is done: loaded, or not (stopped, or failed) */
	bool loaded;                 /* the table holds every chunk of the index: fills may go */
	pthread_t loader;
	bool has_loader;
	pthread_t writers[L2_WRITERS];
	unsigned nwriters;
	bool reclaimed;
	struct tfs_worker upkeep;    /* every cfg.upkeep_interval_ms */
	struct tier tier;            /* the face: tier.impl is this l2 */
};

/* Wall-clock milliseconds: access times persist across restarts, so not the monotonic clock. */
static uint64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t digest(const unsigned char *ikey) { return tfs_hash64(ikey, SSD_IKEY_LEN, 0); }
static uint32_t check_of(const unsigned char *ikey)
{
	return (uint32_t)(tfs_hash64(ikey, SSD_IKEY_LEN, 0x9e3779b97f4a7c15ull) >> 32);
}

static uint32_t sat32(uint64_t v) { return v < UINT32_MAX ? (uint32_t)v : UINT32_MAX; }

/* The entry of handle h, chunk or not; NULL when its page was never made. */
static struct l2_entry *entry_of(const struct l2 *l, uint32_t h)
{
	uint32_t p = h / ENTRY_PAGE;
	return h != EVICT_NONE && p < l->npages && l->pages[p] ? &l->pages[p][h % ENTRY_PAGE]
							       : NULL;
}

/* The entry of ikey, and its handle in *h (may be NULL); NULL when absent. */
static struct l2_entry *find_locked(struct l2 *l, const unsigned char *ikey, uint32_t *h)
{
	uint32_t k = evict_find(l->order, digest(ikey));
	struct l2_entry *x = entry_of(l, k);
	if (!x || !x->disk_bytes || x->check != check_of(ikey))
		return NULL;
	if (h)
		*h = k;
	return x;
}

/* The entry of handle h, its page made if needed; NULL when out of memory. */
static struct l2_entry *entry_make(struct l2 *l, uint32_t h)
{
	uint32_t p = h / ENTRY_PAGE;
	if (p >= l->npages) {
		uint32_t n = l->npages ? l->npages : 16;
		while (n <= p)
			n *= 2; /* handles are below EVICT_NONE / 2 */
		struct l2_entry **np = realloc(l->pages, n * sizeof(*np));
		if (!np)
			return NULL;
		memset(np + l->npages, 0, (n - l->npages) * sizeof(*np));
		l->pages = np;
		l->npages = n;
	}
	if (!l->pages[p] && !(l->pages[p] = calloc(ENTRY_PAGE, sizeof(struct l2_entry))))
		return NULL;
	return &l->pages[p][h % ENTRY_PAGE];
}

/* Adds what the store holds of a chunk to the table (how: evict_admit's, or EVICT_RESTORE at
 * start); -EEXIST when another chunk with the same digest is there, -ENOMEM. */
static int insert_locked(struct l2 *l, const struct ssd_entry *e, enum evict_how how)
{
	if (e->slot > UINT32_MAX)
		return -EFBIG; /* a slab of more than 2^32 slots: not kept in the table */
	struct l2_entry *x = find_locked(l, e->ikey, NULL);
	if (x) {
		l->used -= x->disk_bytes;
	} else {
		uint32_t h;
		int ret = how == EVICT_RESTORE
				  ? evict_restore(l->order, digest(e->ikey), (uint32_t)e->disk_bytes,
						  e->accesses, &h)
				  : evict_admit(l->order, digest(e->ikey), (uint32_t)e->disk_bytes, how,
						&h);
		if (ret < 0)
			return ret;
		if (!(x = entry_make(l, h))) {
			evict_drop(l->order, h);
			return -ENOMEM;
		}
		memset(x, 0, sizeof(*x));
		x->check = check_of(e->ikey);
		l->entries++;
	}
	x->slot = (uint32_t)e->slot;
	x->disk_bytes = (uint32_t)e->disk_bytes;
	x->last_access = (uint32_t)(e->last_access / 1000);
	x->accesses = sat32(e->accesses);
	l->used += x->disk_bytes;
	return 0;
}

/* Takes x out of the table; evicted: the order chose it (evict_next), else it is dropped from
 * the order too. */
static void remove_locked(struct l2 *l, struct l2_entry *x, uint32_t h, bool evicted)
{
	if (x->pf_src) {
		atomic_fetch_add_explicit(&l->stats->pf[x->pf_src].wasted, 1, memory_order_relaxed);
		atomic_fetch_sub_explicit(&l->stats->pf_unread_bytes, x->pf_len,
					  memory_order_relaxed);
	}
	if (!evicted)
		evict_drop(l->order, h);
	l->used -= x->disk_bytes;
	l->entries--;
	memset(x, 0, sizeof(*x)); /* disk_bytes 0: no chunk */
}

/* At start: the index's entries, loaded oldest last access first into the order. */
struct load {
	struct ssd_entry *e;
	size_t n, cap;
};

static int load_one(void *arg, const struct ssd_entry *e)
{
	struct load *ld = arg;
	if (ld->n == ld->cap) {
		size_t nc = ld->cap ? ld->cap * 2 : 4096;
		struct ssd_entry *ne = realloc(ld->e, nc * sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		ld->e = ne;
		ld->cap = nc;
	}
	ld->e[ld->n++] = *e;
	return 0;
}

static int by_last_access(const void *a, const void *b)
{
	const struct ssd_entry *x = a, *y = b;
	return x->last_access < y->last_access ? -1 : x->last_access > y->last_access;
}

#define LOAD_BATCH 4096 /* entries put in the table per hold of the lock while loading */

static int load_table(struct l2 *l)
{
	struct load ld = { 0 };
	/* the store's one pass over its index: it learns its used slots, the table its chunks */
	int ret = ssd_load(l->ssd, load_one, &ld, &l->stopping);
	if (ret == 0 && ld.n)
		qsort(ld.e, ld.n, sizeof(*ld.e), by_last_access);
	for (size_t i = 0; ret == 0 && i < ld.n; i += LOAD_BATCH) {
		size_t end = i + LOAD_BATCH < ld.n ? i + LOAD_BATCH : ld.n;
		unsigned char (*collide)[SSD_IKEY_LEN] = NULL;
		size_t ncollide = 0;
		pthread_mutex_lock(&l->lock);
		for (size_t k = i; ret == 0 && k < end; k++) {
			int r = insert_locked(l, &ld.e[k], EVICT_RESTORE);
			if (r != -EEXIST) {
				ret = r;
			} else if ((collide || (collide = malloc(LOAD_BATCH * SSD_IKEY_LEN)))) {
				memcpy(collide[ncollide++], ld.e[k].ikey, SSD_IKEY_LEN);
			}
		}
		pthread_mutex_unlock(&l->lock);
		for (size_t k = 0; k < ncollide; k++)
			ssd_remove(l->ssd, collide[k]); /* its digest collides: unreachable */
		free(collide);
		if (ret == 0 && atomic_load_explicit(&l->stopping, memory_order_relaxed))
			ret = -ECANCELED;
	}
	free(ld.e);
	return ret;
}

static void *loader_thread(void *arg)
{
	struct l2 *l = arg;
	uint64_t t0 = tfs_now_ms();
	int ret = load_table(l);
	pthread_mutex_lock(&l->lock);
	l->load_done = true;
	l->loaded = ret == 0;
	uint64_t n = l->entries, used = l->used;
	pthread_cond_broadcast(&l->work); /* the writers may go */
	pthread_mutex_unlock(&l->lock);
	if (ret == 0) {
		tfs_info("cache: %llu chunks (%llu MiB) in L2, index loaded in %llu ms",
			 (unsigned long long)n, (unsigned long long)(used >> 20),
			 (unsigned long long)(tfs_now_ms() - t0));
		tfs_worker_kick(&l->upkeep); /* the orphans first */
	} else if (ret != -ECANCELED) {
		tfs_err("cache: cannot load L2's index (%s): L2 serves what it holds and stores "
			"nothing until the next mount", strerror(-ret));
	}
	return NULL;
}

#define EVICT_BATCH 64 /* victims taken from the table per hold of the lock */

/* A chunk evicted from the table, to be removed from the store. */
struct victim {
	uint64_t digest;
	uint32_t slot, check;
};

/* Whether the key read back from a victim's slot is the victim's (ssd_remove_slot's match). */
static bool is_victim(void *ctx, const unsigned char ikey[SSD_IKEY_LEN])
{
	const struct victim *v = ctx;
	return digest(ikey) == v->digest && check_of(ikey) == v->check;
}

/* Makes room for need more bytes under the cap and above the free-space floor, in the
 * order's choice (only HIR chunks when hir_only: a prefetch displaces no LIR chunk), and
 * reserves it for the caller, who gives it back once the chunk is in the table or is not.
 * The victims leave the table and the room is reserved under one hold of the lock, so two
 * writers never take the same room; the lock is held for a batch of victims at a time, never
 * across the store's removals.  Room on the disk (the floor) shows only once the store has
 * removed the victims, so it is asked again after each batch.  -ENOSPC when nothing more may
 * go and the room is still short. */
static int make_room(struct l2 *l, uint64_t need, bool hir_only)
{
	struct victim victims[EVICT_BATCH];
	uint64_t evicted = 0, freed_all = 0;
	int ret = -ENOSPC;
	for (;;) {
		uint64_t fb = 0, tb = 0, freed = 0, floor_want = 0;
		bool fs = ssd_fs_space(l->ssd, &fb, &tb) == 0;
		size_t n = 0;
		pthread_mutex_lock(&l->lock);
		uint64_t want = evict_want(l->used + l->reserved, need, l->cfg.cap);
		if (fs) {
			uint64_t floor = tb / 100 * l->cfg.min_free_pct;
			if (l->cfg.min_free_bytes > floor)
				floor = l->cfg.min_free_bytes;
			floor += need + l->reserved; /* reserved: not on the disk yet */
			floor_want = fb < floor ? floor - fb : 0;
		}
		uint64_t goal = want > floor_want ? want : floor_want;
		while (freed < goal && n < EVICT_BATCH) {
			uint32_t h = evict_next(l->order, hir_only);
			if (h == EVICT_NONE)
				break;
			struct l2_entry *x = entry_of(l, h);
			victims[n++] = (struct victim){ evict_key(l->order, h), x->slot, x->check };
			freed += x->disk_bytes;
			remove_locked(l, x, h, true); /* the table first: nothing finds it after this */
		}
		bool done = freed >= want && floor_want == 0;
		if (done) {
			l->reserved += need;
			ret = 0;
		}
		pthread_mutex_unlock(&l->lock);
		/* A victim stored again meanwhile is in another slot: left alone.  (Stored again
		 * in the same slot, it is removed from the store while the table has it, as when
		 * victims were removed by key: the next read misses and the table forgets it.) */
		for (size_t j = 0; j < n; j++)
			ssd_remove_slot(l->ssd, victims[j].slot, is_victim, &victims[j]);
		evicted += n;
		freed_all += freed;
		if (done || n == 0)
			break;
	}
	if (evicted) {
		atomic_fetch_add_explicit(&l->c.evictions, evicted, memory_order_relaxed);
		tfs_debug("cache: evicted %llu chunks (%llu bytes)", (unsigned long long)evicted,
			  (unsigned long long)freed_all);
	}
	return ret;
}

static void *writer_thread(void *arg)
{
	struct l2 *l = arg;
	pthread_mutex_lock(&l->lock);
	for (;;) {
		/* the queue is drained before the writer stops: an unmount keeps what was read;
		 * nothing is written before the table is loaded (or the loader gave up) */
		while ((!l->qhead && !l->stopping) || !l->load_done)
			pthread_cond_wait(&l->work, &l->lock);
		struct tier_job *j = l->qhead;
		if (!j)
			break;
		l->qhead = j->next;
		if (!l->qhead)
			l->qtail = NULL;
		l->writing++;
		struct ssd_id id;
		ssd_id_init(&id, j->key, j->etag, j->idx);
		bool have = find_locked(l, id.ikey, NULL) != NULL, loaded = l->loaded;
		pthread_mutex_unlock(&l->lock);

		if (!loaded) { /* the table is not all there: room cannot be counted */
			atomic_fetch_add_explicit(&l->c.failed, 1, memory_order_relaxed);
			have = true;
		}

		if (!have && l->cfg.write_delay_ms) {
			struct timespec d = { (time_t)(l->cfg.write_delay_ms / 1000),
					      (long)(l->cfg.write_delay_ms % 1000) * 1000000L };
			nanosleep(&d, NULL);
		}
		if (!have) {
			uint64_t need = 4096 + ((uint64_t)j->buf->len + 4095) / 4096 * 4096;
			struct ssd_entry e;
			/* a prefetch brings data read by nobody yet: it displaces no LIR chunk */
			if (make_room(l, need, j->prefetch) < 0) {
				atomic_fetch_add_explicit(&l->c.no_room, 1, memory_order_relaxed);
			} else {
				int put = ssd_put(l->ssd, &id, j->buf->data, j->buf->len,
						  j->buf->has_bsums ? j->buf->bsums : NULL,
						  wall_ms(), 1, &e);
				int r = put;
				pthread_mutex_lock(&l->lock);
				l->reserved -= need;
				if (put == 0)
					r = insert_locked(l, &e,
							  j->prefetch ? EVICT_PREFETCH : EVICT_READ);
				pthread_mutex_unlock(&l->lock);
				if (put == 0 && r < 0)
					ssd_remove(l->ssd, id.ikey); /* not in the table: not kept */
				atomic_fetch_add_explicit(r == 0 ? &l->c.writes : &l->c.failed, 1,
							  memory_order_relaxed);
			}
		}
		size_t len = j->buf->len;
		tier_job_free(j);

		pthread_mutex_lock(&l->lock);
		l->qbytes -= len;
		l->writing--;
		/* one job done: room for one fill (one chunk), and a flush may be over */
		if (!l->qhead && !l->writing)
			pthread_cond_broadcast(&l->room);
		else
			pthread_cond_signal(&l->room);
	}
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

/* Upkeep: the slots an earlier crash left (once), then the free-space floor, when something
 * else filled the disk. */
static void upkeep_pass(void *arg)
{
	struct l2 *l = arg;
	pthread_mutex_lock(&l->lock);
	bool loaded = l->loaded;
	pthread_mutex_unlock(&l->lock);
	if (!loaded)
		return; /* the loader kicks it when done */
	if (!l->reclaimed) {
		long n = ssd_reclaim_orphans(l->ssd, &l->stopping);
		if (n > 0)
			tfs_info("cache: reclaimed %ld slots left by an earlier crash", n);
		l->reclaimed = true;
		return;
	}
	atomic_fetch_add_explicit(&l->c.upkeep, 1, memory_order_relaxed);
	make_room(l, 0, false);
}

static void l2_destroy(struct l2 *l)
{
	pthread_mutex_lock(&l->lock);
	l->stopping = true;
	pthread_cond_broadcast(&l->work);
	pthread_cond_broadcast(&l->room);
	pthread_mutex_unlock(&l->lock);
	if (l->has_loader)
		pthread_join(l->loader, NULL); /* it stops at its next batch */
	pthread_mutex_lock(&l->lock);
	l->load_done = true; /* (it never started) */
	pthread_cond_broadcast(&l->work);
	pthread_mutex_unlock(&l->lock);
	tfs_worker_stop(&l->upkeep);
	for (unsigned i = 0; i < l->nwriters; i++)
		pthread_join(l->writers[i], NULL); /* after draining the queue */
	for (uint32_t p = 0; p < l->npages; p++)
		free(l->pages[p]);
	free(l->pages);
	evict_free(l->order);
	pthread_cond_destroy(&l->work);
	pthread_cond_destroy(&l->room);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

static struct l2 *l2_of(struct tier *t) { return t->impl; }

static int l2_touch(struct tier *t, const char *key, const char *etag, uint64_t idx)
{
	struct l2 *l = l2_of(t);
	struct ssd_id id;
	ssd_id_init(&id, key, etag, idx);
	pthread_mutex_lock(&l->lock);
	uint32_t h;
	struct l2_entry *x = find_locked(l, id.ikey, &h);
	if (x) {
		x->last_access = (uint32_t)(wall_ms() / 1000);
		x->accesses = sat32((uint64_t)x->accesses + 1);
		evict_hit(l->order, h);
	}
	pthread_mutex_unlock(&l->lock);
	return 0;
}

static int l2_keep_unread(struct tier *t, const char *key, const char *etag, uint64_t idx,
			  uint8_t src, size_t len)
{
	struct l2 *l = l2_of(t);
	struct ssd_id id;
	ssd_id_init(&id, key, etag, idx);
	pthread_mutex_lock(&l->lock);
	uint32_t h = EVICT_NONE;
	struct l2_entry *x = find_locked(l, id.ikey, &h);
	int ret = x && !x->pf_src ? 0 : -ENOENT;
	if (ret == 0) {
		x->pf_src = src;
		x->pf_len = (uint32_t)len;
	}
	pthread_mutex_unlock(&l->lock);
	return ret;
}

static int l2_has(struct tier *t, const char *key, const char *etag, uint64_t idx,
		  uint64_t *bytes)
{
	struct l2 *l = l2_of(t);
	struct ssd_id id;
	ssd_id_init(&id, key, etag, idx);
	pthread_mutex_lock(&l->lock);
	uint32_t h = EVICT_NONE;
	struct l2_entry *x = find_locked(l, id.ikey, &h);
	uint64_t n = x ? x->disk_bytes : 0;
	pthread_mutex_unlock(&l->lock);
	*bytes = n ? n - 4096 : 0; /* payload, rounded to blocks */
	return 0;
}

/* Whether a reader's access to a chunk goes to its index entry: the first ones, then at every
 * doubling of the count, and after a minute without access.  The order at the next start needs
 * no more, and a random reader's every read is then not an index write. */
static bool save_access(uint64_t prev_ms, uint64_t now_ms, uint64_t accesses)
{
	return (accesses & (accesses - 1)) == 0 || now_ms - prev_ms >= 60000;
}

/* A reader's access to x (L2's lock held): counted, and the order learns it.  Returns the
 * accesses to save in the index, 0 for none. */
static uint64_t access_locked(struct l2 *l, struct l2_entry *x, uint32_t h, uint64_t now)
{
	uint64_t prev = (uint64_t)x->last_access * 1000;
	x->last_access = (uint32_t)(now / 1000);
	x->accesses = sat32((uint64_t)x->accesses + 1);
	evict_hit(l->order, h);
	return save_access(prev, now, x->accesses) ? x->accesses : 0;
}

static int l2_read_part(struct tier *t, const char *key, const char *etag, uint64_t idx,
			uint64_t off, size_t len, char *buf, size_t *got, uint64_t *accesses)
{
	struct l2 *l = l2_of(t);
	struct ssd_id id;
	ssd_id_init(&id, key, etag, idx);
	pthread_mutex_lock(&l->lock);
	bool have = find_locked(l, id.ikey, NULL) != NULL;
	pthread_mutex_unlock(&l->lock);
	if (!have)
		return -ENOENT; /* not counted: the whole chunk's load asks get, which counts */
	int ret = ssd_read_part(l->ssd, &id, off, len, buf, got, NULL);
	uint64_t la = wall_ms(), save = 0;
	pthread_mutex_lock(&l->lock);
	uint32_t h = EVICT_NONE;
	struct l2_entry *x = find_locked(l, id.ikey, &h);
	*accesses = 0;
	if (ret == 0 && x) {
		save = access_locked(l, x, h, la);
		*accesses = x->accesses;
		if (x->pf_src) { /* a predictor brought it, and now a reader used it */
			atomic_fetch_add_explicit(&l->stats->pf[x->pf_src].used, 1,
						  memory_order_relaxed);
			atomic_fetch_sub_explicit(&l->stats->pf_unread_bytes, x->pf_len,
						  memory_order_relaxed);
			x->pf_src = 0;
			x->pf_len = 0;
		}
	} else if (ret == -ENOENT && x) {
		remove_locked(l, x, h, false); /* dropped by the store (failed verification) */
	}
	pthread_mutex_unlock(&l->lock);
	if (ret < 0)
		return ret;
	atomic_fetch_add_explicit(&l->c.hits, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&l->c.part_hits, 1, memory_order_relaxed);
	if (save)
		ssd_touch(l->ssd, id.ikey, la, save);
	return 0;
}

/* Reads one chunk, verified; a run of several is announced to the store first, so that the
 * disk reads ahead while the first chunks are handed to their readers. */
static int l2_get(struct tier *t, struct tier_run *r, int from, int *next)
{
	struct l2 *l = l2_of(t);
	*next = from + 1;
	if (from == 0 && r->n > 1) {
		struct ssd_id ids[64];
		for (uint64_t first = r->first, left = (uint64_t)r->n; left;) {
			size_t k = left < 64 ? (size_t)left : 64;
			for (size_t i = 0; i < k; i++)
				ssd_id_init(&ids[i], r->key, r->etag, first + i);
			ssd_will_read(l->ssd, ids, k);
			first += k;
			left -= k;
		}
	}
	struct tfs_buf *b = r->bufs[from];
	struct ssd_id id;
	size_t len = 0;
	ssd_id_init(&id, r->key, r->etag, r->first + (uint64_t)from);
	int ret = (r->stream ? ssd_get_direct : ssd_get)(l->ssd, &id, b->data, b->len, &len, NULL);
	if (ret == 0 && len != b->len) {
		ssd_remove(l->ssd, id.ikey); /* not the length this version's chunk has: useless */
		ret = -ENOENT;
	}
	pthread_mutex_lock(&l->lock);
	uint32_t h = EVICT_NONE;
	struct l2_entry *x = find_locked(l, id.ikey, &h);
	uint64_t la = wall_ms(), acc = 0, save = 0;
	uint8_t src = 0;
	if (ret == 0 && x && r->quiet) {
		/* read back for another tier: no access */
	} else if (ret == 0 && x) {
		save = access_locked(l, x, h, la);
		acc = x->accesses;
		src = x->pf_src; /* the unread prefetch goes with the data */
		x->pf_src = 0;
		x->pf_len = 0;
	} else if (ret == -ENOENT && x) {
		remove_locked(l, x, h, false); /* dropped by the store (failed verification) */
	}
	pthread_mutex_unlock(&l->lock);
	if (ret == 0) {
		r->done[from] = true;
		r->accesses[from] = acc; /* what L2 has counted of it, across mounts */
		r->pf_src[from] = src;
		if (!r->quiet)
			atomic_fetch_add_explicit(&l->c.hits, 1, memory_order_relaxed);
		if (save)
			ssd_touch(l->ssd, id.ikey, la, save);
	} else if (!r->quiet) {
		atomic_fetch_add_explicit(&l->c.misses, 1, memory_order_relaxed);
	}
	return 0; /* a miss or a bad chunk is not an error: the tier below serves it */
}

/* Whether a job of len bytes must wait for the writers (one job always fits an empty queue). */
static bool queue_full_locked(const struct l2 *l, size_t len)
{
	return l->qbytes && l->qbytes + len > l->queue_max;
}

static int l2_fill(struct tier *t, const char *key, const char *etag, uint64_t idx,
		   struct tfs_buf *b, bool prefetch)
{
	struct l2 *l = l2_of(t);
	struct tier_job *j = tier_job_new(key, etag, idx, b, prefetch);
	if (!j) {
		atomic_fetch_add_explicit(&l->c.failed, 1, memory_order_relaxed);
		return -ENOMEM;
	}
	pthread_mutex_lock(&l->lock);
	/* backpressure: the caller (a fetch) waits while the writer is behind */
	if (!l->stopping && queue_full_locked(l, b->len)) {
		atomic_fetch_add_explicit(&l->c.waited, 1, memory_order_relaxed);
		struct timespec dl = tfs_deadline_in(FILL_DEADLINE_MS);
		int w = 0;
		while (!l->stopping && queue_full_locked(l, b->len) && w != ETIMEDOUT) {
			w = pthread_cond_timedwait(&l->room, &l->lock, &dl);
			if (w == ETIMEDOUT && !l->load_done) { /* not the disk: the table loads */
				dl = tfs_deadline_in(FILL_DEADLINE_MS);
				w = 0;
			}
		}
		if (w == ETIMEDOUT && queue_full_locked(l, b->len)) {
			pthread_mutex_unlock(&l->lock);
			atomic_fetch_add_explicit(&l->c.failed, 1, memory_order_relaxed);
			tfs_warn("cache: the disk took no chunk for %d s: a chunk of '%s' is not "
				 "stored", FILL_DEADLINE_MS / 1000, key);
			tier_job_free(j);
			return -ETIMEDOUT;
		}
	}
	if (l->stopping) {
		pthread_mutex_unlock(&l->lock);
		atomic_fetch_add_explicit(&l->c.failed, 1, memory_order_relaxed);
		tier_job_free(j);
		return -ESHUTDOWN;
	}
	if (l->qtail)
		l->qtail->next = j;
	else
		l->qhead = j;
	l->qtail = j;
	l->qbytes += b->len;
	pthread_cond_signal(&l->work);
	pthread_mutex_unlock(&l->lock);
	return 0;
}

static int l2_flush(struct tier *t)
{
	struct l2 *l = l2_of(t);
	pthread_mutex_lock(&l->lock);
	while (!l->load_done) /* the table first: the writers wait for it */
		pthread_cond_wait(&l->work, &l->lock);
	while (l->qhead || l->writing)
		pthread_cond_wait(&l->room, &l->lock);
	pthread_mutex_unlock(&l->lock);
	return 0;
}

static int l2_usage(struct tier *t, uint64_t *used, uint64_t *entries, uint64_t *capacity)
{
	struct l2 *l = l2_of(t);
	pthread_mutex_lock(&l->lock);
	*used = l->used;
	*entries = l->entries;
	pthread_mutex_unlock(&l->lock);
	*capacity = l->cfg.cap;
	return 0;
}

static int l2_stats(struct tier *t, struct tier_stats *out, bool reset)
{
	struct l2 *l = l2_of(t);
	memset(out, 0, sizeof(*out));
	out->hits = tier_count_take(&l->c.hits, reset);
	out->misses = tier_count_take(&l->c.misses, reset);
	out->part_hits = tier_count_take(&l->c.part_hits, reset);
	out->fills = tier_count_take(&l->c.writes, reset);
	out->fills_no_room = tier_count_take(&l->c.no_room, reset);
	out->fills_failed = tier_count_take(&l->c.failed, reset);
	out->fills_waited = tier_count_take(&l->c.waited, reset);
	out->evictions = tier_count_take(&l->c.evictions, reset);
	out->upkeep_passes = tier_count_take(&l->c.upkeep, reset);
	return l2_usage(t, &out->used, &out->entries, &out->capacity);
}

/* Forgets a chunk the store removed (a callback for ssd_remove_*). */
static void l2_forget(void *arg, const struct ssd_entry *e)
{
	struct l2 *l = arg;
	pthread_mutex_lock(&l->lock);
	uint32_t h;
	struct l2_entry *x = find_locked(l, e->ikey, &h);
	if (x)
		remove_locked(l, x, h, false);
	pthread_mutex_unlock(&l->lock);
}

/* The version each key was last seen at is recorded (namespace 'o'), so that the chunks of
 * other versions are looked for only when it changes. */
static int l2_drop_version(struct tier *t, const char *key, const char *etag, bool changed)
{
	struct l2 *l = l2_of(t);
	void *old = NULL;
	size_t n = 0;
	if (!etag[0])
		return 0;
	int ret = ssd_meta_get(l->ssd, 'o', key, &old, &n);
	bool same = ret == 0 && n == strlen(etag) && memcmp(old, etag, n) == 0;
	free(old);
	if (same)
		return 0;
	char kbuf[200];
	tfs_debug("cache: '%s' has a new ETag: dropping the chunks of other versions",
		  tfs_printable(key, kbuf, sizeof(kbuf)));
	ret = ssd_remove_other_versions(l->ssd, key, etag, l2_forget, l);
	int r2 = ssd_meta_put(l->ssd, 'o', key, etag, strlen(etag));
	return ret < 0 ? ret : r2;
}

static bool match_any(void *ctx, const char *key) { return true; }

static int l2_drop_matching(struct tier *t, tier_match_fn match, void *ctx, uint64_t *n)
{
	struct l2 *l = l2_of(t);
	l2_flush(t); /* fills still queued land first, then go with the rest */
	long k = ssd_remove_matching(l->ssd, match ? match : match_any, ctx, NULL, l2_forget, l);
	*n = k > 0 ? (uint64_t)k : 0;
	return k < 0 ? (int)k : 0;
}

static void l2_tier_destroy(struct tier *t) { l2_destroy(l2_of(t)); }

static const struct tier_ops l2_ops = {
	.get = l2_get,
	.fill = l2_fill,
	.has = l2_has,
	.touch = l2_touch,
	.keep_unread = l2_keep_unread,
	.read_part = l2_read_part,
	.drop_version = l2_drop_version,
	.drop_matching = l2_drop_matching,
	.flush = l2_flush,
	.usage = l2_usage,
	.stats = l2_stats,
	.destroy = l2_tier_destroy,
};

int tier_l2_new(struct ssd_store *ssd, const struct l2_config *cfg, struct policy_stats *stats,
		struct tier **out)
{
	struct l2 *l = calloc(1, sizeof(*l));
	int ret = -ENOMEM;
	if (!l)
		return ret;
	l->ssd = ssd;
	l->cfg = *cfg;
	if (!l->cfg.upkeep_interval_ms)
		l->cfg.upkeep_interval_ms = L2_DEFAULT_UPKEEP_INTERVAL_MS;
	l->stats = stats;
	l->tier = (struct tier){ .ops = &l2_ops, .name = "l2", .lat_slot = TIER_L2, .impl = l };
	pthread_mutex_init(&l->lock, NULL);
	l->queue_max = l2_queue_bytes(cfg->queue_bytes);
	pthread_condattr_t ca; /* fills wait on it with a monotonic deadline */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->room, &ca);
	pthread_cond_init(&l->work, NULL);
	pthread_condattr_destroy(&ca);
	if ((ret = evict_new(cfg->cap, &l->order)) < 0)
		goto fail;
	for (unsigned i = 0; i < L2_WRITERS; i++) {
		if ((ret = -pthread_create(&l->writers[i], NULL, writer_thread, l)) < 0)
			goto fail;
		l->nwriters++;
	}
	if ((ret = tfs_worker_start(&l->upkeep, l->cfg.upkeep_interval_ms, upkeep_pass, l)) < 0)
		goto fail;
	if ((ret = -pthread_create(&l->loader, NULL, loader_thread, l)) < 0)
		goto fail;
	l->has_loader = true;
	*out = &l->tier;
	return 0;
fail:
	l2_destroy(l);
	return ret;
}
