/*
 * admin.c - what the control file asks for: invalidate by path or glob, purge, and warm (fetch
 * a tree into L2 in the background).
 *
 * Locks: warm->lock guards the warm queue only; the warm thread reads through the ordinary
 * read path (policy_read), so it takes the chunk table's locks as any reader does.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "policy_i.h"
#include "util.h"

struct warm_req {
	struct warm_req *next;
	char *key;
	bool is_dir;
};

/* A queue of paths to fetch into L2, served by one thread, started at the first warm. */
struct warmer {
	pthread_mutex_t lock;           /* guards head, tail, stop and started */
	pthread_cond_t cond;            /* work queued, or stop */
	struct warm_req *head, *tail;
	_Atomic bool stop;              /* read without the lock by the warm thread's loops */
	bool started;
	pthread_t thread;
};

static bool match_cb(void *ctx, const char *key) { return policy_match_key(ctx, key); }

/* Drops what matches from every tier (m NULL: everything), then the metadata and what the
 * predictors confirmed; the first error is returned, after trying everything. */
static int drop_everywhere(struct policy *p, const struct policy_match *m, uint64_t *dropped)
{
	int ret = 0;
	*dropped = 0;
	for (int k = 0; k < p->ntiers; k++) {
		uint64_t n = 0;
		int r = p->tiers[k]->ops->drop_matching(p->tiers[k], m ? match_cb : NULL, (void *)m,
							&n);
		*dropped += n;
		if (r < 0 && ret == 0) {
			tfs_warn("%s: dropping cached chunks failed: %s", p->tiers[k]->name,
				 strerror(-r));
			ret = r;
		}
	}
	int r = meta_forget(p, m);
	prefetch_forget(p, m);
	return ret < 0 ? ret : r;
}

int policy_invalidate(struct policy *p, const struct policy_match *m, uint64_t *dropped)
{
	return drop_everywhere(p, m, dropped);
}

int policy_purge(struct policy *p, uint64_t *dropped)
{
	return drop_everywhere(p, NULL, dropped);
}

/* ---- warm ---- */

struct warm_file {
	char *key;
	char etag[S3_ETAG_MAX];
	uint64_t size;
};

struct warm_list {
	struct warm_file *f;
	size_t n, cap;
};

static int add_file(struct warm_list *w, const char *key, const struct tfs_attr *a)
{
	if (w->n == w->cap) {
		size_t nc = w->cap ? w->cap * 2 : 64;
		struct warm_file *nf = realloc(w->f, nc * sizeof(*nf));
		if (!nf)
			return -ENOMEM;
		w->f = nf;
		w->cap = nc;
	}
	struct warm_file *f = &w->f[w->n];
	if (!(f->key = strdup(key)))
		return -ENOMEM;
	memcpy(f->etag, a->etag, sizeof(f->etag));
	f->size = a->size;
	w->n++;
	return 0;
}

/* Collects the files below dir_key (depth first), counting them into the totals. */
static int walk(struct policy *p, const char *dir_key, struct warm_list *w, unsigned depth)
{
	struct tfs_listing *l;
	if (depth > 256)
		return -ELOOP;
	int ret = policy_list_dir(p, dir_key, &l);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < l->n && ret == 0 && !p->warm->stop; i++) {
		char *k = tfs_strdup_printf("%s%s%s", dir_key, l->ents[i].name,
					    l->ents[i].attr.is_dir ? "/" : "");
		if (!k) {
			ret = -ENOMEM;
			break;
		}
		if (l->ents[i].attr.is_dir) {
			ret = walk(p, k, w, depth + 1);
		} else {
			struct tfs_attr a;
			tfs_cattr_get(&l->ents[i].attr, &a);
			ret = add_file(w, k, &a);
			atomic_fetch_add_explicit(&p->stats.warm_files_total, 1,
						  memory_order_relaxed);
		}
		free(k);
	}
	policy_listing_put(l);
	return ret;
}

static void flush_lower(struct policy *p)
{
	for (int k = 1; k < p->ntiers; k++)
		p->tiers[k]->ops->flush(p->tiers[k]);
}

/* Reads a file through the read path (readahead batches its GETs), so that every chunk ends
 * up in L2; waits for L2's writer now and then, so that its queue never drops a fill. */
static int warm_file(struct policy *p, const struct warm_file *f)
{
	struct policy_object o = { .key = f->key, .etag = f->etag, .size = f->size };
	struct policy_stream s;
	struct policy_read r;
	int ret = 0;
	policy_open_object(p, f->key, f->etag);
	policy_stream_init(&s);
	for (uint64_t off = 0; off < f->size && !p->warm->stop; off += POLICY_MAX_READ) {
		if ((ret = policy_read(p, &o, &s, off, POLICY_MAX_READ, &r)) < 0)
			break;
		atomic_fetch_add_explicit(&p->stats.warm_bytes, r.bytes, memory_order_relaxed);
		policy_read_release(p, &r);
		if ((off / POLICY_MAX_READ) % 16 == 15)
			flush_lower(p);
	}
	policy_stream_destroy(&s);
	flush_lower(p);
	return ret;
}

static void *warm_thread(void *arg)
{
	struct policy *p = arg;
	pthread_mutex_lock(&p->warm->lock);
	for (;;) {
		while (!p->warm->head && !p->warm->stop) {
			atomic_store(&p->stats.warm_running, 0);
			pthread_cond_wait(&p->warm->cond, &p->warm->lock);
		}
		if (p->warm->stop)
			break;
		struct warm_req *q = p->warm->head;
		p->warm->head = q->next;
		if (!p->warm->head)
			p->warm->tail = NULL;
		atomic_store(&p->stats.warm_running, 1);
		pthread_mutex_unlock(&p->warm->lock);

		struct warm_list w = { 0 };
		struct tfs_attr a;
		char kbuf[300];
		int ret = 0;
		if (q->is_dir) {
			ret = walk(p, q->key, &w, 0);
		} else if ((ret = policy_stat_file(p, q->key, &a)) == 0) {
			ret = add_file(&w, q->key, &a);
			atomic_fetch_add_explicit(&p->stats.warm_files_total, 1,
						  memory_order_relaxed);
		}
		if (ret < 0) {
			atomic_fetch_add_explicit(&p->stats.warm_errors, 1, memory_order_relaxed);
			tfs_warn("warm '%s': %s", tfs_printable(q->key, kbuf, sizeof(kbuf)),
				 strerror(-ret));
		}
		for (size_t i = 0; i < w.n; i++) {
			if (!p->warm->stop && (ret = warm_file(p, &w.f[i])) < 0) {
				atomic_fetch_add_explicit(&p->stats.warm_errors, 1,
							  memory_order_relaxed);
				tfs_warn("warm '%s': %s",
					 tfs_printable(w.f[i].key, kbuf, sizeof(kbuf)), strerror(-ret));
			}
			atomic_fetch_add_explicit(&p->stats.warm_files_done, 1, memory_order_relaxed);
			free(w.f[i].key);
		}
		free(w.f);
		free(q->key);
		free(q);
		pthread_mutex_lock(&p->warm->lock);
	}
	pthread_mutex_unlock(&p->warm->lock);
	return NULL;
}

int admin_init(struct policy *p)
{
	if (!(p->warm = calloc(1, sizeof(*p->warm))))
		return -ENOMEM;
	pthread_mutex_init(&p->warm->lock, NULL);
	pthread_cond_init(&p->warm->cond, NULL);
	return 0;
}

void admin_destroy(struct policy *p)
{
	if (!p->warm)
		return;
	admin_stop(p);
	pthread_cond_destroy(&p->warm->cond);
	pthread_mutex_destroy(&p->warm->lock);
	free(p->warm);
	p->warm = NULL;
}

int policy_warm(struct policy *p, const char *key, bool is_dir)
{
	struct warm_req *q = calloc(1, sizeof(*q));
	if (!q || !(q->key = strdup(key))) {
		free(q);
		return -ENOMEM;
	}
	q->is_dir = is_dir;
	pthread_mutex_lock(&p->warm->lock);
	int ret = 0;
	if (!p->warm->started) {
		ret = -pthread_create(&p->warm->thread, NULL, warm_thread, p);
		p->warm->started = ret == 0;
	}
	if (ret == 0 && !p->warm->stop) {
		if (p->warm->tail)
			p->warm->tail->next = q;
		else
			p->warm->head = q;
		p->warm->tail = q;
		atomic_store(&p->stats.warm_running, 1);
		pthread_cond_signal(&p->warm->cond);
		q = NULL;
	}
	pthread_mutex_unlock(&p->warm->lock);
	if (q) {
		free(q->key);
		free(q);
		return ret < 0 ? ret : -ESHUTDOWN;
	}
	return 0;
}

void admin_stop(struct policy *p)
{
	pthread_mutex_lock(&p->warm->lock);
	p->warm->stop = true;
	pthread_cond_signal(&p->warm->cond);
	bool started = p->warm->started;
	p->warm->started = false;
	pthread_mutex_unlock(&p->warm->lock);
	if (started)
		pthread_join(p->warm->thread, NULL);
	while (p->warm->head) {
		struct warm_req *q = p->warm->head;
		p->warm->head = q->next;
		free(q->key);
		free(q);
	}
	p->warm->tail = NULL;
}
