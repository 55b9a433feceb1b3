/*
 * inode.c - the inode table: FUSE inode numbers <-> (parent, name, S3 key).
 *
 * FUSE inode numbers (the kernel's handles) are handed out from a counter and never reused
 * while the mount lives; the numbers tools see (st_ino) are stat_ino()'s, kept unique among the
 * live inodes by a third index.  An inode
 * lives while the kernel holds lookups on it (nlookup > 0); the root lives forever.  A child
 * needs nothing from its parent's inode (it carries its own full key), so forgetting a parent
 * before its children is harmless.
 */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "inode.h"
#include "util.h"

#define ITABLE_BUCKETS 4096 /* at first; a power of two, doubled as the inodes grow */

static size_t ino_bucket(const struct tfs_itable *t, fuse_ino_t ino)
{
	return tfs_hash64(&ino, sizeof(ino), 1) & (t->nbuckets - 1);
}

static size_t stino_bucket(const struct tfs_itable *t, uint64_t st_ino)
{
	return tfs_hash64(&st_ino, sizeof(st_ino), 2) & (t->nbuckets - 1);
}

static size_t name_bucket(const struct tfs_itable *t, fuse_ino_t parent, const char *name,
			  size_t len)
{
	return tfs_hash64(name, len, parent) & (t->nbuckets - 1);
}

static const char *name_of(const struct tfs_inode *i)
{
	return i->key + i->name_off;
}

uint64_t stat_ino(const char *key, const char *etag)
{
	uint64_t h = tfs_hash64(key, strlen(key), 0x7469657266730001ull);
	if (etag && etag[0])
		h = tfs_hash64(etag, strlen(etag), h);
	h &= (1ull << 63) - 1;
	return h < 2 ? h + 2 : h;
}

static bool stino_taken_locked(const struct tfs_itable *t, uint64_t st_ino)
{
	for (struct tfs_inode *i = t->by_stino[stino_bucket(t, st_ino)]; i; i = i->stino_next)
		if (i->st_ino == st_ino)
			return true;
	return false;
}

static void stino_insert_locked(struct tfs_itable *t, struct tfs_inode *i)
{
	size_t b = stino_bucket(t, i->st_ino);
	i->stino_next = t->by_stino[b];
	t->by_stino[b] = i;
}

/* Gives i its number: stat_ino's, or on a collision with a live inode the next free one. */
static void stino_assign_locked(struct tfs_itable *t, struct tfs_inode *i)
{
	char etag[S3_ETAG_MAX];
	tfs_cattr_etag(&i->attr, etag, sizeof(etag));
	uint64_t n = stat_ino(i->key, etag);
	while (stino_taken_locked(t, n))
		n = n + 1 >= (1ull << 63) ? 2 : n + 1;
	i->st_ino = n;
	stino_insert_locked(t, i);
}

static void stino_remove_locked(struct tfs_itable *t, struct tfs_inode *i)
{
	struct tfs_inode **pp = &t->by_stino[stino_bucket(t, i->st_ino)];
	while (*pp && *pp != i)
		pp = &(*pp)->stino_next;
	if (*pp)
		*pp = i->stino_next;
}

static void ino_insert_locked(struct tfs_itable *t, struct tfs_inode *i)
{
	size_t b = ino_bucket(t, i->ino);
	i->ino_next = t->by_ino[b];
	t->by_ino[b] = i;
}

static void name_insert_locked(struct tfs_itable *t, struct tfs_inode *i)
{
	size_t b = name_bucket(t, i->parent, name_of(i), i->name_len);
	i->name_next = t->by_name[b];
	t->by_name[b] = i;
}

/* Doubles the buckets when the inodes outnumber them twice (then keeps going on failure). */
static void grow_locked(struct tfs_itable *t)
{
	if (t->count <= 2 * t->nbuckets)
		return;
	size_t n = t->nbuckets * 2;
	struct tfs_inode **by_ino = calloc(n, sizeof(*by_ino)), **by_name = calloc(n, sizeof(*by_name)),
			 **by_stino = calloc(n, sizeof(*by_stino));
	if (!by_ino || !by_name || !by_stino) {
		free(by_ino);
		free(by_name);
		free(by_stino);
		return;
	}
	struct tfs_inode **old = t->by_ino;
	size_t nold = t->nbuckets;
	free(t->by_name);
	free(t->by_stino);
	t->by_ino = by_ino;
	t->by_name = by_name;
	t->by_stino = by_stino;
	t->nbuckets = n;
	for (size_t b = 0; b < nold; b++)
		for (struct tfs_inode *i = old[b], *next; i; i = next) {
			next = i->ino_next;
			ino_insert_locked(t, i);
			stino_insert_locked(t, i);
			if (i->hashed)
				name_insert_locked(t, i);
		}
	free(old);
}

/* A new inode of the key prefix + name (+ '/' for a directory): its name in the parent. */
static struct tfs_inode *inode_new(const char *prefix, const char *name, bool is_dir)
{
	size_t plen = strlen(prefix), nlen = strlen(name), klen = plen + nlen + (is_dir && nlen);
	if (nlen > UINT16_MAX || plen > UINT32_MAX)
		return NULL;
	struct tfs_inode *i = calloc(1, sizeof(*i) + klen + 1);
	if (!i)
		return NULL;
	memcpy(i->key, prefix, plen);
	memcpy(i->key + plen, name, nlen);
	if (is_dir && nlen)
		i->key[plen + nlen] = '/';
	i->key[klen] = '\0';
	i->name_off = (uint32_t)plen;
	i->name_len = (uint16_t)nlen;
	i->is_dir = is_dir;
	return i;
}

int itable_init(struct tfs_itable *t, const char *root_key)
{
	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	t->nbuckets = ITABLE_BUCKETS;
	t->by_ino = calloc(t->nbuckets, sizeof(*t->by_ino));
	t->by_name = calloc(t->nbuckets, sizeof(*t->by_name));
	t->by_stino = calloc(t->nbuckets, sizeof(*t->by_stino));
	struct tfs_inode *root = inode_new(root_key, "", true);
	if (!t->by_ino || !t->by_name || !t->by_stino || !root) {
		free(root);
		free(t->by_ino);
		free(t->by_name);
		free(t->by_stino);
		return -ENOMEM;
	}
	root->ino = FUSE_ROOT_ID;
	root->attr.is_dir = true;
	root->nlookup = 1;
	root->st_ino = FUSE_ROOT_ID;
	stino_insert_locked(t, root);
	ino_insert_locked(t, root);
	t->next_ino = FUSE_ROOT_ID + 1;
	t->count = 1;
	return 0;
}

static void inode_free(struct tfs_inode *i)
{
	tfs_cattr_clear(&i->attr);
	free(i);
}

void itable_destroy(struct tfs_itable *t)
{
	for (size_t b = 0; b < t->nbuckets; b++) {
		struct tfs_inode *i = t->by_ino[b];
		while (i) {
			struct tfs_inode *n = i->ino_next;
			inode_free(i);
			i = n;
		}
	}
	free(t->by_ino);
	free(t->by_name);
	free(t->by_stino);
	for (size_t k = 0; k < ITABLE_ABSENT_MAX; k++)
		free(t->absent[k].key);
	pthread_mutex_destroy(&t->lock);
}

static struct tfs_inode *get_locked(struct tfs_itable *t, fuse_ino_t ino)
{
	for (struct tfs_inode *i = t->by_ino[ino_bucket(t, ino)]; i; i = i->ino_next)
		if (i->ino == ino)
			return i;
	return NULL;
}

struct tfs_inode *itable_get(struct tfs_itable *t, fuse_ino_t ino)
{
	pthread_mutex_lock(&t->lock);
	struct tfs_inode *i = get_locked(t, ino);
	pthread_mutex_unlock(&t->lock);
	return i;
}

static void unhash_name_locked(struct tfs_itable *t, struct tfs_inode *i)
{
	if (!i->hashed)
		return;
	struct tfs_inode **pp = &t->by_name[name_bucket(t, i->parent, name_of(i), i->name_len)];
	while (*pp != i)
		pp = &(*pp)->name_next;
	*pp = i->name_next;
	i->hashed = false;
}

/* What an inode keeps of the version its page cache holds: a hash of the ETag, never 0. */
static uint64_t version_of(const char *etag)
{
	uint64_t h = tfs_hash64(etag, strlen(etag), 0x63616368650001ull);
	return h ? h : 1;
}

bool itable_keep_cache(struct tfs_itable *t, struct tfs_inode *i, const char *etag)
{
	uint64_t v = etag[0] ? version_of(etag) : 0;
	pthread_mutex_lock(&t->lock);
	bool keep = v && i->cache_version == v;
	if (!keep)
		i->cache_version = v;
	pthread_mutex_unlock(&t->lock);
	return keep;
}

struct tfs_inode *itable_link(struct tfs_itable *t, struct tfs_inode *parent, const char *name,
			      struct tfs_attr *a, uint64_t *learned_ms, enum tfs_seen *seen)
{
	size_t nlen = strlen(name);
	struct tfs_inode *i, *fresh = NULL;
	bool changed = false;
	/* made before the lock is taken, and freed if not needed */
	struct tfs_inode *made = inode_new(parent->key, name, a->is_dir);
	if (!made || tfs_cattr_set(&made->attr, a) < 0) {
		free(made);
		return NULL;
	}

	pthread_mutex_lock(&t->lock);
	size_t nb = name_bucket(t, parent->ino, name, nlen);
	for (i = t->by_name[nb]; i; i = i->name_next)
		if (i->parent == parent->ino && i->name_len == nlen &&
		    memcmp(name_of(i), name, nlen) == 0)
			break;
	if (i && i->is_dir != a->is_dir) {
		/* A file became a directory or back: a new inode; the old one lives on until
		 * the kernel forgets it, unreachable by name. */
		unhash_name_locked(t, i);
		i = NULL;
	} else if (i && !i->is_dir && tfs_cattr_has_etag(&i->attr) &&
		   !tfs_cattr_etag_is(&i->attr, a->etag) && *learned_ms >= i->attr_ms) {
		/* A new version: a new file at this name (see inode.h). */
		unhash_name_locked(t, i);
		i = NULL;
		changed = true;
	}
	if (!i) {
		i = fresh = made;
		made = NULL;
		i->ino = t->next_ino++;
		i->parent = parent->ino;
		i->attr_ms = *learned_ms;
		stino_assign_locked(t, i);
		i->hashed = true;
		name_insert_locked(t, i);
		ino_insert_locked(t, i);
		t->count++;
		grow_locked(t);
	}
	if (seen)
		*seen = changed ? SEEN_CHANGED
			: fresh || a->is_dir || !tfs_cattr_has_etag(&i->attr) ? SEEN_NEW
			: *learned_ms > i->attr_ms ? SEEN_SAME
						   : SEEN_AGAIN;
	/* A directory's attributes come from nowhere but its existence: keep them.  A file's
	 * are replaced by what was learned later, never by what was learned earlier. */
	if (!a->is_dir) {
		if (!fresh && *learned_ms >= i->attr_ms) {
			/* a listing has no user metadata: what the headers of this version said stays */
			struct tfs_attr known, now = *a;
			tfs_cattr_get(&i->attr, &known);
			if (!(a->meta & TFS_META_READ) && (known.meta & TFS_META_READ) &&
			    strcmp(known.etag, a->etag) == 0)
				tfs_attr_copy_meta(&now, &known);
			if (tfs_cattr_set(&i->attr, &now) == 0) /* (else: what it knew stays) */
				i->attr_ms = *learned_ms;
		}
		tfs_cattr_get(&i->attr, a);
		*learned_ms = i->attr_ms;
	}
	i->nlookup++;
	pthread_mutex_unlock(&t->lock);
	if (made)
		inode_free(made);
	return i;
}

bool itable_supersede(struct tfs_itable *t, struct tfs_inode *i)
{
	pthread_mutex_lock(&t->lock);
	bool was = i->hashed;
	unhash_name_locked(t, i);
	pthread_mutex_unlock(&t->lock);
	return was;
}

void itable_forget(struct tfs_itable *t, fuse_ino_t ino, uint64_t n)
{
	struct tfs_inode *victim = NULL;
	pthread_mutex_lock(&t->lock);
	struct tfs_inode *i = get_locked(t, ino);
	if (i && ino != FUSE_ROOT_ID) {
		i->nlookup = n >= i->nlookup ? 0 : i->nlookup - n;
		if (i->nlookup == 0) {
			unhash_name_locked(t, i);
			struct tfs_inode **pp = &t->by_ino[ino_bucket(t, ino)];
			while (*pp != i)
				pp = &(*pp)->ino_next;
			*pp = i->ino_next;
			stino_remove_locked(t, i);
			t->count--;
			victim = i;
		}
	}
	pthread_mutex_unlock(&t->lock);
	if (victim)
		inode_free(victim);
}

void itable_get_attr(struct tfs_itable *t, struct tfs_inode *i, struct tfs_attr *a, uint64_t *ms,
		     bool *current)
{
	pthread_mutex_lock(&t->lock);
	tfs_cattr_get(&i->attr, a);
	*ms = i->attr_ms;
	if (current)
		*current = i->hashed || i->ino == FUSE_ROOT_ID;
	pthread_mutex_unlock(&t->lock);
}

void itable_set_attr_at(struct tfs_itable *t, struct tfs_inode *i, const struct tfs_attr *a,
			uint64_t ms)
{
	pthread_mutex_lock(&t->lock);
	if (tfs_cattr_set(&i->attr, a) == 0) /* (else: what it knew stays, and when) */
		i->attr_ms = ms;
	pthread_mutex_unlock(&t->lock);
}

long itable_expire_matching(struct tfs_itable *t, bool (*match)(void *ctx, const char *key),
			    void *mctx, void (*cb)(void *ctx, fuse_ino_t ino, const char *name),
			    void *cctx)
{
	fuse_ino_t *inos = NULL;
	struct tfs_absent *gone = NULL;
	size_t n = 0, ngone = 0;
	pthread_mutex_lock(&t->lock);
	inos = malloc((t->count ? t->count : 1) * sizeof(*inos));
	gone = malloc(ITABLE_ABSENT_MAX * sizeof(*gone));
	if (!inos || !gone) {
		pthread_mutex_unlock(&t->lock);
		free(inos);
		free(gone);
		return -ENOMEM;
	}
	for (size_t b = 0; b < t->nbuckets; b++)
		for (struct tfs_inode *i = t->by_ino[b]; i; i = i->ino_next) {
			if (i->ino == FUSE_ROOT_ID || (match && !match(mctx, i->key)))
				continue;
			i->attr_ms = 0;
			i->cache_version = 0;
			inos[n++] = i->ino;
		}
	for (size_t k = 0; k < ITABLE_ABSENT_MAX; k++) {
		struct tfs_absent *a = &t->absent[k];
		if (a->key && (!match || match(mctx, a->key))) {
			gone[ngone++] = *a;
			a->key = NULL;
		}
	}
	pthread_mutex_unlock(&t->lock);
	for (size_t k = 0; k < n; k++)
		cb(cctx, inos[k], NULL);
	for (size_t k = 0; k < ngone; k++) {
		cb(cctx, gone[k].parent, gone[k].key + gone[k].name_off);
		free(gone[k].key);
	}
	free(inos);
	free(gone);
	return (long)n;
}

void itable_note_absent(struct tfs_itable *t, fuse_ino_t parent, const char *parent_key,
			const char *name)
{
	char *key = tfs_strdup_printf("%s%s", parent_key, name);
	if (!key)
		return; /* then an invalidation cannot take this one back: it expires with its TTL */
	pthread_mutex_lock(&t->lock);
	struct tfs_absent *a = &t->absent[t->absent_next];
	t->absent_next = (t->absent_next + 1) % ITABLE_ABSENT_MAX;
	char *old = a->key;
	*a = (struct tfs_absent){ .parent = parent, .key = key, .name_off = strlen(parent_key) };
	pthread_mutex_unlock(&t->lock);
	free(old);
}

void itable_expire_attr(struct tfs_itable *t, struct tfs_inode *i)
{
	pthread_mutex_lock(&t->lock);
	i->attr_ms = 0;
	pthread_mutex_unlock(&t->lock);
}
