/*
 * meta.c - what the bucket looks like as directories: listings built from ListObjectsV2
 * (delimiter '/'), cached with the metadata TTL, and lookups of single names.
 *
 * How keys become names (documented in the README, "Object keys and file names"):
 *  - objects directly under a prefix are files; CommonPrefixes are directories;
 *  - a zero-byte marker key "dir/" makes "dir" exist even when empty; the marker of the directory
 *    being listed (key == prefix) is not an entry;
 *  - names that cannot be file names (empty, ".", "..", longer than NAME_MAX) are skipped with a
 *    warning: "a//b" and "a/./b" are not reachable through the mount;
 *  - a key "a" beside keys "a/..." : the directory wins, the object is hidden with a warning
 *    (as mountpoint-s3 does).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "policy_i.h"
#include "util.h"
#include "xmeta.h"

#define DIR_BUCKETS 1024
#define DIR_CACHE_MAX 4096  /* listings kept */
/* Entries kept in all listings at most (about 64 bytes each, names included), unless one
 * listing alone has more: the least recently used listings leave first.  One left is read
 * back from the L2 index while its TTL holds (load_listing), not from S3. */
#define DIR_CACHE_ENTRIES (1u << 18)

/* The cached listings: a hash table and an LRU. */
struct meta_cache {
	pthread_mutex_t lock;           /* guards everything below */
	struct dir_entry **tab;
	struct dir_entry *lru_head, *lru_tail;
	size_t n;
	size_t entries;                 /* in the n listings */
};

struct dir_entry {
	struct dir_entry *hnext;
	struct dir_entry *lru_prev, *lru_next;
	char *key;
	struct tfs_listing *listing; /* the cache's reference */
};

bool policy_name_ok(const char *name, size_t len, const char **why)
{
	if (len == 0)
		*why = "empty path component";
	else if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		*why = "'.' or '..' as a path component";
	else if (len > NAME_MAX)
		*why = "name longer than 255 bytes";
	else if (memchr(name, '/', len))
		*why = "slash in name";
	else
		return true;
	return false;
}

static bool fresh(struct policy *p, const char *key, uint64_t fetched_ms)
{
	return policy_fresh(p, key, fetched_ms, tfs_now_ms());
}

int meta_init(struct policy *p)
{
	if (!(p->meta = calloc(1, sizeof(*p->meta))))
		return -ENOMEM;
	pthread_mutex_init(&p->meta->lock, NULL);
	p->meta->tab = calloc(DIR_BUCKETS, sizeof(*p->meta->tab));
	p->xmeta = xmeta_new(XMETA_MAX);
	if (!p->meta->tab || !p->xmeta) {
		meta_destroy(p);
		return -ENOMEM;
	}
	return 0;
}

void policy_listing_put(struct tfs_listing *l)
{
	if (!l || atomic_fetch_sub(&l->refs, 1) != 1)
		return;
	for (size_t i = 0; i < l->n; i++)
		tfs_cattr_clear(&l->ents[i].attr);
	free(l->ents);
	free(l->names);
	free(l);
}

static void lru_unlink(struct policy *p, struct dir_entry *d)
{
	if (d->lru_prev)
		d->lru_prev->lru_next = d->lru_next;
	else
		p->meta->lru_head = d->lru_next;
	if (d->lru_next)
		d->lru_next->lru_prev = d->lru_prev;
	else
		p->meta->lru_tail = d->lru_prev;
	d->lru_prev = d->lru_next = NULL;
}

static void lru_push_front(struct policy *p, struct dir_entry *d)
{
	d->lru_prev = NULL;
	d->lru_next = p->meta->lru_head;
	if (p->meta->lru_head)
		p->meta->lru_head->lru_prev = d;
	p->meta->lru_head = d;
	if (!p->meta->lru_tail)
		p->meta->lru_tail = d;
}

/* Removes d from the table and the LRU (the lock held); the caller frees it (dir_free), after
 * dropping the lock. */
static struct dir_entry *dir_unlink(struct policy *p, struct dir_entry *d, size_t b)
{
	struct dir_entry **pp = &p->meta->tab[b];
	while (*pp != d)
		pp = &(*pp)->hnext;
	*pp = d->hnext;
	lru_unlink(p, d);
	p->meta->n--;
	p->meta->entries -= d->listing->n;
	return d;
}

/* Frees a list of unlinked entries (chained through hnext) and puts their listings. */
static void dir_free(struct dir_entry *d)
{
	while (d) {
		struct dir_entry *next = d->hnext;
		policy_listing_put(d->listing);
		free(d->key);
		free(d);
		d = next;
	}
}

void meta_destroy(struct policy *p)
{
	if (!p->meta)
		return;
	if (p->meta->tab)
		policy_forget_listings(p);
	free(p->meta->tab);
	xmeta_free(p->xmeta);
	p->xmeta = NULL;
	pthread_mutex_destroy(&p->meta->lock);
	free(p->meta);
	p->meta = NULL;
}

void policy_forget_listings(struct policy *p)
{
	struct dir_entry *gone = NULL;
	pthread_mutex_lock(&p->meta->lock);
	for (size_t b = 0; b < DIR_BUCKETS; b++)
		while (p->meta->tab[b]) {
			struct dir_entry *d = dir_unlink(p, p->meta->tab[b], b);
			d->hnext = gone;
			gone = d;
		}
	pthread_mutex_unlock(&p->meta->lock);
	dir_free(gone);
}

static size_t dir_bucket(const struct policy *p, const char *key)
{
	return tfs_hash64(key, strlen(key), 0) % DIR_BUCKETS;
}

/* A referenced listing of key if cached and fresh (or of any age), else NULL. */
static struct tfs_listing *cache_get(struct policy *p, const char *key, bool any_age)
{
	struct tfs_listing *l = NULL;
	size_t b = dir_bucket(p, key);
	pthread_mutex_lock(&p->meta->lock);
	for (struct dir_entry *d = p->meta->tab[b]; d; d = d->hnext) {
		if (strcmp(d->key, key) != 0)
			continue;
		if (any_age || fresh(p, key, d->listing->fetched_ms)) {
			l = d->listing;
			atomic_fetch_add(&l->refs, 1);
			lru_unlink(p, d);
			lru_push_front(p, d);
		}
		break;
	}
	pthread_mutex_unlock(&p->meta->lock);
	return l;
}

/* Inserts (or replaces) the listing of key; takes a new reference of l.  The least recently
 * used listings leave to keep DIR_CACHE_MAX and DIR_CACHE_ENTRIES. */
static void cache_put(struct policy *p, const char *key, struct tfs_listing *l)
{
	struct dir_entry *gone = NULL;
	size_t b = dir_bucket(p, key);
	struct dir_entry *d = calloc(1, sizeof(*d));
	if (!d || !(d->key = strdup(key))) {
		free(d);
		return;
	}
	atomic_fetch_add(&l->refs, 1);
	d->listing = l;
	pthread_mutex_lock(&p->meta->lock);
	for (struct dir_entry *o = p->meta->tab[b]; o; o = o->hnext)
		if (strcmp(o->key, key) == 0) {
			gone = dir_unlink(p, o, b);
			gone->hnext = NULL;
			break;
		}
	while (p->meta->lru_tail && (p->meta->n >= DIR_CACHE_MAX ||
				     p->meta->entries + l->n > DIR_CACHE_ENTRIES)) {
		struct dir_entry *old = p->meta->lru_tail;
		dir_unlink(p, old, dir_bucket(p, old->key));
		old->hnext = gone;
		gone = old;
	}
	d->hnext = p->meta->tab[b];
	p->meta->tab[b] = d;
	lru_push_front(p, d);
	p->meta->n++;
	p->meta->entries += l->n;
	pthread_mutex_unlock(&p->meta->lock);
	dir_free(gone);
}

static int cmp_dirent(const void *a, const void *b)
{
	const struct tfs_dirent *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c)
		return c;
	return (int)y->attr.is_dir - (int)x->attr.is_dir; /* directories first */
}

static void warn_skip(const char *key, const char *why)
{
	char kbuf[300];
	tfs_warn("skipping key '%s': %s", tfs_printable(key, kbuf, sizeof(kbuf)), why);
}

/* A listing being built: entries, and their names one after the other in one block (while it
 * grows, an entry's name pointer holds its offset in the block). */
struct builder {
	struct tfs_dirent *ents;
	size_t n, cap;
	char *names;
	size_t nlen, ncap;
};

static int builder_add(struct builder *bld, const char *name, size_t len, const struct tfs_attr *a)
{
	if (bld->n == bld->cap) {
		size_t ncap = bld->cap ? bld->cap * 2 : 64;
		struct tfs_dirent *ne = realloc(bld->ents, ncap * sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		bld->ents = ne;
		bld->cap = ncap;
	}
	if (bld->nlen + len + 1 > bld->ncap) {
		size_t ncap = bld->ncap ? bld->ncap * 2 : 4096;
		while (ncap < bld->nlen + len + 1)
			ncap *= 2;
		char *nn = realloc(bld->names, ncap);
		if (!nn)
			return -ENOMEM;
		bld->names = nn;
		bld->ncap = ncap;
	}
	struct tfs_dirent *e = &bld->ents[bld->n];
	memset(e, 0, sizeof(*e));
	if (tfs_cattr_set(&e->attr, a) < 0)
		return -ENOMEM;
	e->name = (const char *)(uintptr_t)bld->nlen;
	memcpy(bld->names + bld->nlen, name, len);
	bld->names[bld->nlen + len] = '\0';
	bld->nlen += len + 1;
	bld->n++;
	return 0;
}

static void builder_free(struct builder *bld)
{
	for (size_t i = 0; i < bld->n; i++)
		tfs_cattr_clear(&bld->ents[i].attr);
	free(bld->ents);
	free(bld->names);
	memset(bld, 0, sizeof(*bld));
}

static int add_page(struct builder *bld, const char *dir_key, const struct s3_list_page *pg)
{
	size_t plen = strlen(dir_key);
	const char *why;
	int ret;

	for (size_t i = 0; i < pg->nobjects; i++) {
		const struct s3_list_entry *o = &pg->objects[i];
		if (strncmp(o->key, dir_key, plen) != 0)
			continue; /* not under this prefix: a confused server */
		const char *name = o->key + plen;
		size_t len = strlen(name);
		if (len == 0)
			continue; /* the directory's own marker */
		if (name[len - 1] == '/')
			continue; /* a marker that the server did not roll up; its prefix is listed */
		if (!policy_name_ok(name, len, &why)) {
			warn_skip(o->key, why);
			continue;
		}
		struct tfs_attr a = { .is_dir = false, .size = o->size, .mtime = o->mtime };
		memcpy(a.etag, o->etag, sizeof(a.etag));
		if ((ret = builder_add(bld, name, len, &a)) < 0)
			return ret;
	}
	for (size_t i = 0; i < pg->nprefixes; i++) {
		const char *pre = pg->prefixes[i];
		size_t len = strlen(pre);
		if (strncmp(pre, dir_key, plen) != 0 || len <= plen || pre[len - 1] != '/')
			continue;
		const char *name = pre + plen;
		len -= plen + 1;
		if (!policy_name_ok(name, len, &why)) {
			warn_skip(pre, why);
			continue;
		}
		struct tfs_attr a = { .is_dir = true };
		if ((ret = builder_add(bld, name, len, &a)) < 0)
			return ret;
	}
	return 0;
}

/* The listing bld holds, sorted by name, a directory winning over a file of the same name; bld
 * is emptied (freed on failure too).  0 or -ENOMEM. */
static int builder_finish(struct builder *bld, const char *dir_key, struct tfs_listing **out)
{
	struct tfs_listing *l = calloc(1, sizeof(*l));
	char *names = bld->nlen ? realloc(bld->names, bld->nlen) : bld->names;
	if (!l || (bld->nlen && !names)) {
		free(l);
		builder_free(bld);
		return -ENOMEM;
	}
	bld->names = names;
	for (size_t i = 0; i < bld->n; i++)
		bld->ents[i].name = names + (uintptr_t)bld->ents[i].name;
	if (bld->n)
		qsort(bld->ents, bld->n, sizeof(*bld->ents), cmp_dirent);
	/* A file beside a directory of the same name: the directory wins. */
	size_t w = 0;
	for (size_t r = 0; r < bld->n; r++) {
		if (w > 0 && strcmp(bld->ents[w - 1].name, bld->ents[r].name) == 0) {
			char kbuf[300];
			if (!bld->ents[r].attr.is_dir)
				tfs_warn("hiding object '%s%s': a directory of the same name exists",
					 dir_key, tfs_printable(bld->ents[r].name, kbuf, sizeof(kbuf)));
			tfs_cattr_clear(&bld->ents[r].attr);
			continue;
		}
		bld->ents[w++] = bld->ents[r];
	}
	bld->n = w;
	if (w < bld->cap && w) { /* no room left over, for as long as the listing is cached */
		struct tfs_dirent *e = realloc(bld->ents, w * sizeof(*e));
		if (e)
			bld->ents = e;
	}
	atomic_init(&l->refs, 1);
	l->fetched_ms = tfs_now_ms();
	l->n = bld->n;
	l->ents = bld->ents;
	l->names = bld->names;
	memset(bld, 0, sizeof(*bld));
	*out = l;
	return 0;
}

int meta_listing_from_pages(const char *dir_key, const struct s3_list_page *pages, size_t npages,
			    struct tfs_listing **out)
{
	struct builder bld = { 0 };
	int ret = 0;
	for (size_t i = 0; i < npages && ret == 0; i++)
		ret = add_page(&bld, dir_key, &pages[i]);
	if (ret < 0) {
		builder_free(&bld);
		return ret;
	}
	return builder_finish(&bld, dir_key, out);
}

/* The listing of dir_key from S3, each page added as it comes (and freed). */
static int fetch_listing(struct policy *p, const char *dir_key, struct tfs_listing **out)
{
	struct builder bld = { 0 };
	char *token = NULL;
	int ret;

	do {
		struct s3_list_page pg;
		ret = s3_list_page(p->s3, dir_key, "/", token, 0, &pg);
		free(token);
		token = NULL;
		if (ret < 0)
			break;
		ret = add_page(&bld, dir_key, &pg);
		token = pg.next_token;
		pg.next_token = NULL;
		s3_list_page_free(&pg);
	} while (ret == 0 && token);
	free(token);
	if (ret < 0) {
		builder_free(&bld);
		return ret;
	}
	if ((ret = builder_finish(&bld, dir_key, out)) < 0)
		return ret;
	/* what this mount read of its files' headers, persisted with it */
	for (size_t i = 0; i < (*out)->n; i++) {
		struct tfs_dirent *e = &(*out)->ents[i];
		if (!e->attr.is_dir) {
			char *k = tfs_strdup_printf("%s%s", dir_key, e->name);
			struct tfs_attr a;
			tfs_cattr_get(&e->attr, &a);
			if (k && xmeta_get(p->xmeta, k, &a))
				tfs_cattr_set(&e->attr, &a); /* (kept as it was if no memory) */
			free(k);
		}
	}
	return 0;
}

/*
 * Listings persist in the L2 index (namespace 'd'), so that a remount, or a mount while S3 is
 * unreachable, has the metadata as long as its TTL holds.  Format: version u32, fetched (wall
 * clock seconds) u64, count u32, then per entry: name length u16, name, is_dir u8, size u64,
 * mtime i64, ETag length u8, ETag, then the user metadata: meta u8, mode u16, uid u32, gid u32.
 * A record of another version (1: before user metadata) is not read: the listing is fetched
 * again, and the record replaced.
 */
#define LISTING_FORMAT 2u
#define META_BYTES (1 + 2 + 4 + 4)

static void put_bytes(unsigned char **p, const void *v, size_t n);

static void put_meta(unsigned char **w, const struct tfs_attr *a)
{
	put_bytes(w, &a->meta, 1);
	put_bytes(w, &a->mode, 2);
	put_bytes(w, &a->uid, 4);
	put_bytes(w, &a->gid, 4);
}

static void put_bytes(unsigned char **p, const void *v, size_t n)
{
	memcpy(*p, v, n);
	*p += n;
}

static void persist_listing(struct policy *p, const char *dir_key, const struct tfs_listing *l)
{
	if (!p->cfg.ssd)
		return;
	size_t n = 16;
	char etag[S3_ETAG_MAX];
	for (size_t i = 0; i < l->n; i++)
		n += 2 + strlen(l->ents[i].name) + 1 + 8 + 8 + 1 +
		     tfs_cattr_etag(&l->ents[i].attr, etag, sizeof(etag)) + META_BYTES;
	unsigned char *buf = malloc(n), *w = buf;
	if (!buf)
		return;
	uint32_t ver = LISTING_FORMAT, cnt = (uint32_t)l->n;
	uint64_t wall = (uint64_t)time(NULL) - (tfs_now_ms() - l->fetched_ms) / 1000;
	put_bytes(&w, &ver, 4);
	put_bytes(&w, &wall, 8);
	put_bytes(&w, &cnt, 4);
	for (size_t i = 0; i < l->n; i++) {
		const struct tfs_dirent *e = &l->ents[i];
		struct tfs_attr a;
		tfs_cattr_get(&e->attr, &a);
		uint16_t nl = (uint16_t)strlen(e->name);
		uint8_t dir = a.is_dir, el = (uint8_t)strlen(a.etag);
		int64_t mt = a.mtime;
		put_bytes(&w, &nl, 2);
		put_bytes(&w, e->name, nl);
		put_bytes(&w, &dir, 1);
		put_bytes(&w, &a.size, 8);
		put_bytes(&w, &mt, 8);
		put_bytes(&w, &el, 1);
		put_bytes(&w, a.etag, el);
		put_meta(&w, &a);
	}
	ssd_meta_put(p->cfg.ssd, 'd', dir_key, buf, (size_t)(w - buf));
	free(buf);
}

static bool get_bytes(const unsigned char **r, const unsigned char *end, void *v, size_t n)
{
	if ((size_t)(end - *r) < n)
		return false;
	memcpy(v, *r, n);
	*r += n;
	return true;
}

static bool get_meta(const unsigned char **r, const unsigned char *end, struct tfs_attr *a)
{
	return get_bytes(r, end, &a->meta, 1) && get_bytes(r, end, &a->mode, 2) &&
	       get_bytes(r, end, &a->uid, 4) && get_bytes(r, end, &a->gid, 4);
}

/* The persisted listing of dir_key if it is still fresh, else NULL. */
static struct tfs_listing *load_listing(struct policy *p, const char *dir_key)
{
	void *raw;
	size_t n;
	if (!p->cfg.ssd || ssd_meta_get(p->cfg.ssd, 'd', dir_key, &raw, &n) < 0)
		return NULL;
	const unsigned char *r = raw, *end = r + n;
	uint32_t ver, cnt;
	uint64_t wall, now = (uint64_t)time(NULL);
	struct tfs_listing *l = NULL;
	struct builder bld = { 0 };
	if (!get_bytes(&r, end, &ver, 4) || ver != LISTING_FORMAT || !get_bytes(&r, end, &wall, 8) ||
	    !get_bytes(&r, end, &cnt, 4) || cnt > n)
		goto out;
	uint64_t age_ms = wall > now ? 0 : (now - wall) * 1000;
	if (age_ms > tfs_now_ms())
		goto out; /* older than this boot's monotonic clock can express: stale anyway */
	if (!fresh(p, dir_key, tfs_now_ms() - age_ms))
		goto out;
	for (uint32_t i = 0; i < cnt; i++) {
		struct tfs_attr a = { 0 };
		const char *name;
		uint16_t nl;
		uint8_t dir, el;
		int64_t mt;
		if (!get_bytes(&r, end, &nl, 2) || (size_t)(end - r) < nl)
			goto fail;
		name = (const char *)r;
		r += nl;
		if (!get_bytes(&r, end, &dir, 1) || !get_bytes(&r, end, &a.size, 8) ||
		    !get_bytes(&r, end, &mt, 8) || !get_bytes(&r, end, &el, 1) ||
		    el >= sizeof(a.etag) || !get_bytes(&r, end, a.etag, el) || !get_meta(&r, end, &a))
			goto fail;
		a.etag[el] = '\0';
		a.is_dir = dir;
		a.mtime = (time_t)mt;
		if (builder_add(&bld, name, nl, &a) < 0)
			goto fail;
	}
	if (builder_finish(&bld, dir_key, &l) == 0)
		l->fetched_ms = tfs_now_ms() - age_ms;
	goto out;
fail:
	builder_free(&bld);
	l = NULL;
out:
	free(raw);
	return l;
}

/* A fresh listing from memory, else from the L2 index (then kept in memory too), else NULL. */
static struct tfs_listing *fresh_listing(struct policy *p, const char *dir_key)
{
	struct tfs_listing *l = cache_get(p, dir_key, false);
	if (l || !(l = load_listing(p, dir_key)))
		return l;
	cache_put(p, dir_key, l);
	return l;
}

struct tfs_listing *meta_cached_listing(struct policy *p, const char *dir_key)
{
	return cache_get(p, dir_key, true);
}

int policy_list_dir(struct policy *p, const char *dir_key, struct tfs_listing **out)
{
	struct tfs_listing *l = fresh_listing(p, dir_key);
	if (l) {
		*out = l;
		return 0;
	}
	int ret = fetch_listing(p, dir_key, &l);
	if (ret < 0)
		return ret;
	cache_put(p, dir_key, l);
	persist_listing(p, dir_key, l);
	*out = l;
	return 0;
}

static const struct tfs_dirent *listing_find(const struct tfs_listing *l, const char *name)
{
	size_t lo = 0, hi = l->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(l->ents[mid].name, name);
		if (c == 0)
			return &l->ents[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/*
 * Attributes learned by single lookups persist in the L2 index too (namespace 'a', the key of a
 * file or the prefix of a directory), so that a path can be reached through a remount or an
 * S3 outage without its directory ever having been listed.  Format: version u32, fetched (wall
 * clock seconds) u64, is_dir u8, size u64, mtime i64, ETag length u8, ETag, the user metadata
 * as in a listing.
 */
static void persist_attr(struct policy *p, const char *key, const struct tfs_attr *a)
{
	if (!p->cfg.ssd)
		return;
	unsigned char buf[64 + S3_ETAG_MAX], *w = buf;
	uint32_t ver = LISTING_FORMAT;
	uint64_t wall = (uint64_t)time(NULL);
	uint8_t dir = a->is_dir, el = (uint8_t)strlen(a->etag);
	int64_t mt = a->mtime;
	put_bytes(&w, &ver, 4);
	put_bytes(&w, &wall, 8);
	put_bytes(&w, &dir, 1);
	put_bytes(&w, &a->size, 8);
	put_bytes(&w, &mt, 8);
	put_bytes(&w, &el, 1);
	put_bytes(&w, a->etag, el);
	put_meta(&w, a);
	ssd_meta_put(p->cfg.ssd, 'a', key, buf, (size_t)(w - buf));
}

/* The persisted attributes of key, fresh or not: 0 (*wall: when learned, wall clock seconds),
 * or -ENOENT. */
static int read_attr(struct policy *p, const char *key, struct tfs_attr *out, uint64_t *wall)
{
	void *raw;
	size_t n;
	if (!p->cfg.ssd || ssd_meta_get(p->cfg.ssd, 'a', key, &raw, &n) < 0)
		return -ENOENT;
	const unsigned char *r = raw, *end = r + n;
	uint32_t ver;
	uint8_t dir, el;
	int64_t mt;
	int ret = -ENOENT;
	memset(out, 0, sizeof(*out));
	if (get_bytes(&r, end, &ver, 4) && ver == LISTING_FORMAT && get_bytes(&r, end, wall, 8) &&
	    get_bytes(&r, end, &dir, 1) && get_bytes(&r, end, &out->size, 8) &&
	    get_bytes(&r, end, &mt, 8) && get_bytes(&r, end, &el, 1) && el < sizeof(out->etag) &&
	    get_bytes(&r, end, out->etag, el) && get_meta(&r, end, out)) {
		out->etag[el] = '\0';
		out->is_dir = dir;
		out->mtime = (time_t)mt;
		ret = 0;
	}
	free(raw);
	return ret;
}

/* The persisted attributes of key if still fresh: 0 (*learned_ms: when, monotonic), or
 * -ENOENT. */
static int load_attr(struct policy *p, const char *key, struct tfs_attr *out,
		     uint64_t *learned_ms)
{
	uint64_t wall, now = (uint64_t)time(NULL);
	if (read_attr(p, key, out, &wall) < 0)
		return -ENOENT;
	uint64_t age_ms = wall > now ? 0 : (now - wall) * 1000;
	if (age_ms > tfs_now_ms() || !fresh(p, key, tfs_now_ms() - age_ms))
		return -ENOENT;
	*learned_ms = tfs_now_ms() - age_ms;
	return 0;
}

/* The attributes a HEAD's answer gives: the user metadata read, and remembered. */
static void attr_from_object(struct policy *p, const char *key, const struct s3_object *o,
			     struct tfs_attr *out)
{
	memset(out, 0, sizeof(*out));
	out->size = o->size;
	out->mtime = o->mtime;
	memcpy(out->etag, o->etag, sizeof(out->etag));
	if (!p->cfg.object_meta)
		return;
	xmeta_fill(out, o);
	xmeta_put(p->xmeta, key, out);
}

void policy_attr_meta(struct policy *p, const char *key, struct tfs_attr *a)
{
	if (a->is_dir || (a->meta & TFS_META_READ) || !p->cfg.object_meta ||
	    xmeta_get(p->xmeta, key, a))
		return;
	/* Not read by this mount: what a lookup of an earlier one persisted, for this version
	 * (the metadata of a version never changes, whatever the TTL), then remembered.  Nothing
	 * is remembered of a key the index has nothing on: a listing of a million files would
	 * keep a million entries, and the index's Bloom filter answers such a miss from memory. */
	struct tfs_attr stored;
	uint64_t wall;
	if (read_attr(p, key, &stored, &wall) == 0 && strcmp(stored.etag, a->etag) == 0 &&
	    (stored.meta & TFS_META_READ)) {
		tfs_attr_copy_meta(a, &stored);
		xmeta_put(p->xmeta, key, a);
	}
}

int policy_stat_file(struct policy *p, const char *key, struct tfs_attr *out)
{
	struct s3_object o;
	int ret = s3_head(p->s3, key, &o);
	if (ret < 0)
		return ret;
	attr_from_object(p, key, &o, out);
	persist_attr(p, key, out);
	return 0;
}

void policy_revalidation_kept(struct policy *p)
{
	atomic_fetch_add_explicit(&p->stats.revalidated_kept, 1, memory_order_relaxed);
}

int policy_revalidate(struct policy *p, const char *key, const struct tfs_attr *old,
		      struct tfs_attr *out, bool *changed)
{
	struct s3_object o;
	bool same = false;
	*changed = false;
	int ret = s3_head_if(p->s3, key, old->etag[0] ? old->etag : NULL, &o, &same);
	if (ret < 0)
		return ret;
	if (same) {
		*out = *old;
		atomic_fetch_add_explicit(&p->stats.revalidated_kept, 1, memory_order_relaxed);
	} else {
		attr_from_object(p, key, &o, out);
		if (strcmp(out->etag, old->etag) != 0) {
			*changed = true;
			policy_object_changed(p, key, out->etag); /* counts it */
		} else {
			atomic_fetch_add_explicit(&p->stats.revalidated_kept, 1, memory_order_relaxed);
		}
	}
	persist_attr(p, key, out); /* the TTL restarts, across remounts too */
	return 0;
}

int policy_lookup(struct policy *p, const char *dir_key, const char *name, struct tfs_attr *out,
		  uint64_t *learned_ms)
{
	const char *why;
	uint64_t at = tfs_now_ms();
	int ret;
	size_t nlen = strlen(name);
	if (nlen > NAME_MAX)
		return -ENAMETOOLONG;
	if (!policy_name_ok(name, nlen, &why))
		return -ENOENT;

	struct tfs_listing *l = fresh_listing(p, dir_key);
	if (l) {
		const struct tfs_dirent *e = listing_find(l, name);
		if (e)
			tfs_cattr_get(&e->attr, out);
		if (learned_ms)
			*learned_ms = l->fetched_ms;
		policy_listing_put(l);
		if (!e)
			return -ENOENT;
		if (out->is_dir || (out->meta & TFS_META_READ))
			return 0;
		/* what this mount, or a lookup of an earlier one, read of its headers (a listing
		 * has none); no HEAD for it: fs asks when the kernel asks for the attributes */
		char *key = tfs_strdup_printf("%s%s", dir_key, name);
		if (!key)
			return -ENOMEM;
		policy_attr_meta(p, key, out);
		free(key);
		return 0;
	}

	/* No fresh listing: what an earlier lookup learned (a directory wins over an object),
	 * else ask S3 about this one name. */
	char *sub = tfs_strdup_printf("%s%s/", dir_key, name);
	char *key = tfs_strdup_printf("%s%s", dir_key, name);
	if (!sub || !key) {
		ret = -ENOMEM;
		goto out;
	}
	if ((ret = load_attr(p, sub, out, &at)) == 0 || (ret = load_attr(p, key, out, &at)) == 0)
		goto out;
	struct s3_list_page pg;
	ret = s3_list_page(p->s3, sub, "/", NULL, 1, &pg);
	if (ret < 0)
		goto out;
	bool is_dir = pg.nobjects > 0 || pg.nprefixes > 0;
	s3_list_page_free(&pg);
	if (is_dir) {
		memset(out, 0, sizeof(*out));
		out->is_dir = true;
		persist_attr(p, sub, out);
	} else {
		ret = policy_stat_file(p, key, out);
	}
out:
	if ((ret == 0 || ret == -ENOENT) && learned_ms)
		*learned_ms = at; /* an absence is learned too: its TTL runs from now */
	free(sub);
	free(key);
	return ret;
}

static bool forget_match(void *ctx, const char *key) { return !ctx || policy_match_key(ctx, key); }

int meta_forget(struct policy *p, const struct policy_match *m)
{
	policy_forget_listings(p);
	xmeta_clear(p->xmeta);
	if (!p->cfg.ssd)
		return 0;
	ssd_meta_remove_matching(p->cfg.ssd, 'a', forget_match, (void *)m);
	/* listings name versions: a stale one would send reads to the old version */
	ssd_meta_remove_matching(p->cfg.ssd, 'd', forget_match, NULL);
	return 0;
}
