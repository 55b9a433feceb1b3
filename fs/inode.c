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

#define ITABLE_BUCKETS 65536

static size_t ino_bucket(const struct tfs_itable *t, fuse_ino_t ino)
{
	return tfs_hash64(&ino, sizeof(ino), 1) % t->nbuckets;
}

static size_t stino_bucket(const struct tfs_itable *t, uint64_t st_ino)
{
	return tfs_hash64(&st_ino, sizeof(st_ino), 2) % t->nbuckets;
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

/* Gives i its number: stat_ino's, or on a collision with a live inode the next free one. */
static void stino_assign_locked(struct tfs_itable *t, struct tfs_inode *i)
{
	uint64_t n = stat_ino(i->key, i->attr.etag);
	while (stino_taken_locked(t, n))
		n = n + 1 >= (1ull << 63) ? 2 : n + 1;
	i->st_ino = n;
	size_t b = stino_bucket(t, n);
	i->stino_next = t->by_stino[b];
	t->by_stino[b] = i;
}

static void stino_remove_locked(struct tfs_itable *t, struct tfs_inode *i)
{
	struct tfs_inode **pp = &t->by_stino[stino_bucket(t, i->st_ino)];
	while (*pp && *pp != i)
		pp = &(*pp)->stino_next;
	if (*pp)
		*pp = i->stino_next;
}

static size_t name_bucket(const struct tfs_itable *t, fuse_ino_t parent, const char *name)
{
	return tfs_hash64(name, strlen(name), parent) % t->nbuckets;
}

int itable_init(struct tfs_itable *t, const char *root_key)
{
	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	t->nbuckets = ITABLE_BUCKETS;
	t->by_ino = calloc(t->nbuckets, sizeof(*t->by_ino));
	t->by_name = calloc(t->nbuckets, sizeof(*t->by_name));
	t->by_stino = calloc(t->nbuckets, sizeof(*t->by_stino));
	struct tfs_inode *root = calloc(1, sizeof(*root));
	if (!t->by_ino || !t->by_name || !t->by_stino || !root || !(root->key = strdup(root_key)) ||
	    !(root->name = strdup(""))) {
		if (root) {
			free(root->key);
			free(root->name);
		}
		free(root);
		free(t->by_ino);
		free(t->by_name);
		free(t->by_stino);
		return -ENOMEM;
	}
	root->ino = FUSE_ROOT_ID;
	root->is_dir = true;
	root->attr.is_dir = true;
	root->nlookup = 1;
	root->st_ino = FUSE_ROOT_ID;
	t->by_stino[stino_bucket(t, root->st_ino)] = root;
	t->by_ino[ino_bucket(t, FUSE_ROOT_ID)] = root;
	t->next_ino = FUSE_ROOT_ID + 1;
	t->count = 1;
	return 0;
}

static void inode_free(struct tfs_inode *i)
{
	free(i->name);
	free(i->key);
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
	struct tfs_inode **pp = &t->by_name[name_bucket(t, i->parent, i->name)];
	while (*pp != i)
		pp = &(*pp)->name_next;
	*pp = i->name_next;
	i->hashed = false;
}

bool itable_keep_cache(struct tfs_itable *t, struct tfs_inode *i, const char *etag)
{
	pthread_mutex_lock(&t->lock);
	bool keep = etag[0] && strcmp(i->cache_etag, etag) == 0;
	if (!keep)
		snprintf(i->cache_etag, sizeof(i->cache_etag), "%s", etag);
	pthread_mutex_unlock(&t->lock);
	return keep;
}

struct tfs_inode *itable_link(struct tfs_itable *t, struct tfs_inode *parent, const char *name,
			      struct tfs_attr *a, uint64_t *learned_ms, enum tfs_seen *seen)
{
	size_t nb = name_bucket(t, parent->ino, name);
	struct tfs_inode *i, *fresh = NULL;
	bool changed = false;
	char *key = tfs_strdup_printf("%s%s%s", parent->key, name, a->is_dir ? "/" : "");
	if (!key)
		return NULL;

	pthread_mutex_lock(&t->lock);
	for (i = t->by_name[nb]; i; i = i->name_next)
		if (i->parent == parent->ino && strcmp(i->name, name) == 0)
			break;
	if (i && i->is_dir != a->is_dir) {
		/* A file became a directory or back: a new inode; the old one lives on until
		 * the kernel forgets it, unreachable by name. */
		unhash_name_locked(t, i);
		i = NULL;
	} else if (i && !i->is_dir && i->attr.etag[0] && strcmp(i->attr.etag, a->etag) != 0 &&
		   *learned_ms >= i->attr_ms) {
		/* A new version: a new file at this name (see inode.h). */
		unhash_name_locked(t, i);
		i = NULL;
		changed = true;
	}
	if (!i) {
		fresh = calloc(1, sizeof(*fresh));
		if (!fresh || !(fresh->name = strdup(name))) {
			pthread_mutex_unlock(&t->lock);
			free(fresh);
			free(key);
			return NULL;
		}
		i = fresh;
		i->key = key;
		key = NULL;
		i->ino = t->next_ino++;
		i->parent = parent->ino;
		i->is_dir = a->is_dir;
		i->attr = *a;
		i->attr_ms = *learned_ms;
		stino_assign_locked(t, i);
		i->hashed = true;
		i->name_next = t->by_name[nb];
		t->by_name[nb] = i;
		size_t ib = ino_bucket(t, i->ino);
		i->ino_next = t->by_ino[ib];
		t->by_ino[ib] = i;
		t->count++;
	}
	if (seen)
		*seen = changed ? SEEN_CHANGED
			: fresh || a->is_dir || !i->attr.etag[0] ? SEEN_NEW
			: *learned_ms > i->attr_ms ? SEEN_SAME
						   : SEEN_AGAIN;
	/* A directory's attributes come from nowhere but its existence: keep them.  A file's
	 * are replaced by what was learned later, never by what was learned earlier. */
	if (!a->is_dir) {
		if (!fresh && *learned_ms >= i->attr_ms) {
			/* a listing has no user metadata: what the headers of this version said stays */
			struct tfs_attr known = i->attr;
			i->attr = *a;
			i->attr_ms = *learned_ms;
			if (!(a->meta & TFS_META_READ) && (known.meta & TFS_META_READ) &&
			    strcmp(known.etag, a->etag) == 0)
				tfs_attr_copy_meta(&i->attr, &known);
		}
		*a = i->attr;
		*learned_ms = i->attr_ms;
	}
	i->nlookup++;
	pthread_mutex_unlock(&t->lock);
	free(key);
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
	*a = i->attr;
	*ms = i->attr_ms;
	if (current)
		*current = i->hashed || i->ino == FUSE_ROOT_ID;
	pthread_mutex_unlock(&t->lock);
}

void itable_set_attr_at(struct tfs_itable *t, struct tfs_inode *i, const struct tfs_attr *a,
			uint64_t ms)
{
	pthread_mutex_lock(&t->lock);
	i->attr = *a;
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
			i->cache_etag[0] = '\0';
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
