/*
 * admin.c - what the control file asks for: invalidate by path or glob, purge, and warm (fetch
 * a tree into L2 in the background).
 *
 * Locks: warm_lock guards the warm queue only; the warm thread reads through the ordinary
 * read path (policy_read), so it takes the chunk table's locks as any reader does.
 */
#include <errno.h>
#include <fnmatch.h>
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

int policy_match_init(struct policy *p, const char *spec, struct policy_match *m)
{
	memset(m, 0, sizeof(*m));
	while (*spec == '/')
		spec++;
	size_t n = strlen(spec);
	while (n && spec[n - 1] == '/')
		n--;
	if (!(m->root = strdup(p->cfg.root_key)))
		return -ENOMEM;
	char *s = strndup(spec, n);
	if (!s) {
		policy_match_free(m);
		return -ENOMEM;
	}
	if (strpbrk(s, "*?["))
		m->glob = s;
	else
		m->path = s;
	return 0;
}

void policy_match_free(struct policy_match *m)
{
	free(m->root);
	free(m->path);
	free(m->glob);
	memset(m, 0, sizeof(*m));
}

bool policy_match_key(const struct policy_match *m, const char *key)
{
	size_t rl = strlen(m->root);
	if (strncmp(key, m->root, rl) != 0)
		return false;
	const char *rel = key + rl;
	if (m->path) {
		size_t pl = strlen(m->path);
		if (pl == 0)
			return true; /* the whole mount */
		return strncmp(rel, m->path, pl) == 0 && (rel[pl] == '\0' || rel[pl] == '/');
	}
	/* the glob against the key and each directory above it */
	char *r = strdup(rel);
	bool yes = false;
	if (!r)
		return false;
	size_t n = strlen(r);
	if (n && r[n - 1] == '/')
		r[--n] = '\0';
	for (;;) {
		if (fnmatch(m->glob, r, FNM_PATHNAME) == 0) {
			yes = true;
			break;
		}
		char *slash = strrchr(r, '/');
		if (!slash)
			break;
		*slash = '\0';
	}
	free(r);
	return yes;
}

static bool match_cb(void *ctx, const char *key) { return policy_match_key(ctx, key); }
static bool match_all(void *ctx, const char *key) { (void)ctx; (void)key; return true; }

uint64_t policy_invalidate(struct policy *p, const struct policy_match *m)
{
	uint64_t n = chunks_drop_matching(p, match_cb, (void *)m);
	if (p->l2) {
		l2_flush(p->l2); /* fills still queued land first, then go with the rest */
		long k = ssd_remove_matching(l2_store(p->l2), match_cb, (void *)m, "a", l2_forget,
					     p->l2);
		if (k > 0)
			n += (uint64_t)k;
		/* listings name versions: a stale one would send reads to the old version */
		ssd_meta_remove_matching(l2_store(p->l2), 'd', match_all, NULL);
	}
	policy_forget_listings(p);
	return n;
}

uint64_t policy_purge(struct policy *p)
{
	uint64_t n = chunks_drop_matching(p, match_all, NULL);
	if (p->l2) {
		l2_flush(p->l2); /* fills still queued land first, then go with the rest */
		long k = ssd_remove_matching(l2_store(p->l2), match_all, NULL, "ad", l2_forget,
					     p->l2);
		if (k > 0)
			n += (uint64_t)k;
	}
	policy_forget_listings(p);
	return n;
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
	for (size_t i = 0; i < l->n && ret == 0 && !p->warm_stop; i++) {
		char *k = tfs_strdup_printf("%s%s%s", dir_key, l->ents[i].name,
					    l->ents[i].attr.is_dir ? "/" : "");
		if (!k) {
			ret = -ENOMEM;
			break;
		}
		if (l->ents[i].attr.is_dir) {
			ret = walk(p, k, w, depth + 1);
		} else {
			ret = add_file(w, k, &l->ents[i].attr);
			atomic_fetch_add_explicit(&p->stats.warm_files_total, 1,
						  memory_order_relaxed);
		}
		free(k);
	}
	policy_listing_put(l);
	return ret;
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
	for (uint64_t off = 0; off < f->size && !p->warm_stop; off += POLICY_MAX_READ) {
		if ((ret = policy_read(p, &o, &s, off, POLICY_MAX_READ, &r)) < 0)
			break;
		atomic_fetch_add_explicit(&p->stats.warm_bytes, r.bytes, memory_order_relaxed);
		policy_read_release(p, &r);
		if (p->l2 && (off / POLICY_MAX_READ) % 16 == 15)
			l2_flush(p->l2);
	}
	policy_stream_destroy(&s);
	if (p->l2)
		l2_flush(p->l2);
	return ret;
}

static void *warm_thread(void *arg)
{
	struct policy *p = arg;
	pthread_mutex_lock(&p->warm_lock);
	for (;;) {
		while (!p->warm_head && !p->warm_stop) {
			atomic_store(&p->stats.warm_running, 0);
			pthread_cond_wait(&p->warm_cond, &p->warm_lock);
		}
		if (p->warm_stop)
			break;
		struct warm_req *q = p->warm_head;
		p->warm_head = q->next;
		if (!p->warm_head)
			p->warm_tail = NULL;
		atomic_store(&p->stats.warm_running, 1);
		pthread_mutex_unlock(&p->warm_lock);

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
			if (!p->warm_stop && (ret = warm_file(p, &w.f[i])) < 0) {
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
		pthread_mutex_lock(&p->warm_lock);
	}
	pthread_mutex_unlock(&p->warm_lock);
	return NULL;
}

int admin_init(struct policy *p)
{
	pthread_mutex_init(&p->warm_lock, NULL);
	pthread_cond_init(&p->warm_cond, NULL);
	return 0;
}

int policy_warm(struct policy *p, const char *key, bool is_dir)
{
	struct warm_req *q = calloc(1, sizeof(*q));
	if (!q || !(q->key = strdup(key))) {
		free(q);
		return -ENOMEM;
	}
	q->is_dir = is_dir;
	pthread_mutex_lock(&p->warm_lock);
	int ret = 0;
	if (!p->warm_started) {
		ret = -pthread_create(&p->warm_thread, NULL, warm_thread, p);
		p->warm_started = ret == 0;
	}
	if (ret == 0 && !p->warm_stop) {
		if (p->warm_tail)
			p->warm_tail->next = q;
		else
			p->warm_head = q;
		p->warm_tail = q;
		atomic_store(&p->stats.warm_running, 1);
		pthread_cond_signal(&p->warm_cond);
		q = NULL;
	}
	pthread_mutex_unlock(&p->warm_lock);
	if (q) {
		free(q->key);
		free(q);
		return ret < 0 ? ret : -ESHUTDOWN;
	}
	return 0;
}

void admin_stop(struct policy *p)
{
	pthread_mutex_lock(&p->warm_lock);
	p->warm_stop = true;
	pthread_cond_signal(&p->warm_cond);
	bool started = p->warm_started;
	p->warm_started = false;
	pthread_mutex_unlock(&p->warm_lock);
	if (started)
		pthread_join(p->warm_thread, NULL);
	while (p->warm_head) {
		struct warm_req *q = p->warm_head;
		p->warm_head = q->next;
		free(q->key);
		free(q);
	}
	p->warm_tail = NULL;
}
