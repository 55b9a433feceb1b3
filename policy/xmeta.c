/*
 * xmeta.c - the user metadata this mount has read, by key: a chained hash table under one
 * mutex (see xmeta.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "xmeta.h"

#define XMETA_BUCKETS 65536

struct xent {
	struct xent *next;
	uint64_t seq;               /* insertion order, for forgetting the oldest */
	struct tfs_cattr a;         /* the version (ETag) and what its headers said */
	char key[];
};

struct xmeta {
	pthread_mutex_t lock;       /* guards everything below */
	struct xent **tab;
	size_t n, max;
	uint64_t seq;
};

struct xmeta *xmeta_new(size_t max)
{
	struct xmeta *x = calloc(1, sizeof(*x));
	if (!x || !(x->tab = calloc(XMETA_BUCKETS, sizeof(*x->tab)))) {
		free(x);
		return NULL;
	}
	x->max = max < 2 ? 2 : max;
	pthread_mutex_init(&x->lock, NULL);
	return x;
}

/* Drops the entries older than seq (all, for UINT64_MAX). */
static void drop_older_locked(struct xmeta *x, uint64_t seq)
{
	for (size_t b = 0; b < XMETA_BUCKETS; b++) {
		struct xent **pp = &x->tab[b];
		while (*pp) {
			struct xent *e = *pp;
			if (e->seq < seq) {
				*pp = e->next;
				tfs_cattr_clear(&e->a);
				free(e);
				x->n--;
			} else {
				pp = &e->next;
			}
		}
	}
}

void xmeta_clear(struct xmeta *x)
{
	pthread_mutex_lock(&x->lock);
	drop_older_locked(x, UINT64_MAX);
	pthread_mutex_unlock(&x->lock);
}

void xmeta_free(struct xmeta *x)
{
	if (!x)
		return;
	xmeta_clear(x);
	free(x->tab);
	pthread_mutex_destroy(&x->lock);
	free(x);
}

static size_t bucket(const char *key) { return tfs_hash64(key, strlen(key), 3) % XMETA_BUCKETS; }

static struct xent *find_locked(struct xmeta *x, const char *key, size_t b)
{
	for (struct xent *e = x->tab[b]; e; e = e->next)
		if (strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

void xmeta_put(struct xmeta *x, const char *key, const struct tfs_attr *a)
{
	size_t b = bucket(key), kl = strlen(key);
	struct xent *fresh = NULL;
	pthread_mutex_lock(&x->lock);
	struct xent *e = find_locked(x, key, b);
	if (!e) {
		pthread_mutex_unlock(&x->lock);
		if (!(fresh = calloc(1, sizeof(*fresh) + kl + 1)))
			return; /* then a listing shows the defaults until it is read again */
		memcpy(fresh->key, key, kl + 1);
		pthread_mutex_lock(&x->lock);
		if (!(e = find_locked(x, key, b))) {
			if (x->n >= x->max)
				drop_older_locked(x, x->seq - x->max / 2);
			e = fresh;
			fresh = NULL;
			e->next = x->tab[b];
			x->tab[b] = e;
			x->n++;
		}
	}
	e->seq = x->seq++;
	if (tfs_cattr_set(&e->a, a) < 0) /* (an odd ETag and no memory for its copy) */
		tfs_cattr_clear(&e->a);  /* then it matches no version that has an ETag */
	pthread_mutex_unlock(&x->lock);
	free(fresh);
}

void xmeta_fill(struct tfs_attr *a, const struct s3_object *o)
{
	a->meta = (uint8_t)(TFS_META_READ | (o->meta << 1));
	a->mode = (uint16_t)o->mode;
	a->uid = o->uid;
	a->gid = o->gid;
	a->mtime = (o->meta & S3_META_MTIME) ? o->meta_mtime : o->mtime;
}

void xmeta_put_object(struct xmeta *x, const char *key, const struct s3_object *o)
{
	struct tfs_attr a = { 0 };
	memcpy(a.etag, o->etag, sizeof(a.etag));
	xmeta_fill(&a, o);
	xmeta_put(x, key, &a);
}

bool xmeta_get(struct xmeta *x, const char *key, struct tfs_attr *a)
{
	bool found = false;
	pthread_mutex_lock(&x->lock);
	struct xent *e = find_locked(x, key, bucket(key));
	struct tfs_attr known;
	if (e) {
		tfs_cattr_get(&e->a, &known);
		if (strcmp(known.etag, a->etag) == 0) {
			tfs_attr_copy_meta(a, &known);
			found = true;
		}
	}
	pthread_mutex_unlock(&x->lock);
	return found;
}
