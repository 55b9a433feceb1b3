/*
 * ttl.c - freshness settings: user.tierfs.ttl on files and directories.
 *
 * A setting is attached to an S3 key: a file's key, or a directory's prefix (ending in '/').
 * The TTL in force for a key is the setting on the key itself, else on the nearest directory
 * above it (up to the mount's root), else the mount's ttl= option.  Settings live in memory
 * (a small table; they are read on every freshness check) and persist in the L2 index
 * (namespace 's'), loaded once at start.  Without L2 they last as long as the mount.
 *
 * Locks: ttl->lock guards the table; no other lock is taken while it is held, and no store
 * call is made under it (meta.c checks freshness under its own lock: meta->lock, then this).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "policy_i.h"
#include "util.h"

struct ttl_setting {
	struct ttl_setting *next;
	uint64_t ttl_s;
	char key[];
};

#define TTL_BUCKETS 256

struct ttl_table {
	pthread_mutex_t lock;           /* guards tab and n */
	struct ttl_setting **tab;
	size_t n;
};

static size_t ttl_bucket(const char *key) { return tfs_hash64(key, strlen(key), 7) % TTL_BUCKETS; }

static struct ttl_setting **find_locked(struct policy *p, const char *key)
{
	struct ttl_setting **pp = &p->ttl->tab[ttl_bucket(key)];
	while (*pp && strcmp((*pp)->key, key) != 0)
		pp = &(*pp)->next;
	return pp;
}

static int put_locked(struct policy *p, const char *key, uint64_t ttl_s)
{
	struct ttl_setting **pp = find_locked(p, key);
	if (*pp) {
		(*pp)->ttl_s = ttl_s;
		return 0;
	}
	size_t n = strlen(key);
	struct ttl_setting *t = malloc(sizeof(*t) + n + 1);
	if (!t)
		return -ENOMEM;
	memcpy(t->key, key, n + 1);
	t->ttl_s = ttl_s;
	t->next = NULL;
	*pp = t;
	p->ttl->n++;
	return 0;
}

static int load_one(void *ctx, const char *name, const void *val, size_t len)
{
	struct policy *p = ctx;
	uint64_t v;
	if (len == sizeof(v)) {
		memcpy(&v, val, sizeof(v));
		put_locked(p, name, v); /* at start: nobody else runs yet */
	}
	return 0;
}

int ttl_init(struct policy *p)
{
	if (!(p->ttl = calloc(1, sizeof(*p->ttl))))
		return -ENOMEM;
	pthread_mutex_init(&p->ttl->lock, NULL);
	p->ttl->tab = calloc(TTL_BUCKETS, sizeof(*p->ttl->tab));
	if (!p->ttl->tab) {
		ttl_destroy(p);
		return -ENOMEM;
	}
	if (p->cfg.ssd)
		ssd_meta_foreach(p->cfg.ssd, 's', load_one, p);
	if (p->ttl->n)
		tfs_info("ttl: %zu settings loaded", p->ttl->n);
	return 0;
}

void ttl_destroy(struct policy *p)
{
	if (!p->ttl)
		return;
	for (size_t b = 0; p->ttl->tab && b < TTL_BUCKETS; b++)
		while (p->ttl->tab[b]) {
			struct ttl_setting *t = p->ttl->tab[b];
			p->ttl->tab[b] = t->next;
			free(t);
		}
	free(p->ttl->tab);
	pthread_mutex_destroy(&p->ttl->lock);
	free(p->ttl);
	p->ttl = NULL;
}

int policy_ttl_set(struct policy *p, const char *key, uint64_t ttl_s)
{
	int ret = 0;
	if (p->cfg.ssd)
		ret = ssd_meta_put(p->cfg.ssd, 's', key, &ttl_s, sizeof(ttl_s));
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&p->ttl->lock);
	ret = put_locked(p, key, ttl_s);
	pthread_mutex_unlock(&p->ttl->lock);
	return ret;
}

int policy_ttl_get(struct policy *p, const char *key, uint64_t *ttl_s)
{
	pthread_mutex_lock(&p->ttl->lock);
	struct ttl_setting *t = *find_locked(p, key);
	if (t)
		*ttl_s = t->ttl_s;
	pthread_mutex_unlock(&p->ttl->lock);
	return t ? 0 : -ENODATA;
}

int policy_ttl_remove(struct policy *p, const char *key)
{
	pthread_mutex_lock(&p->ttl->lock);
	struct ttl_setting **pp = find_locked(p, key), *t = *pp;
	if (t) {
		*pp = t->next;
		p->ttl->n--;
	}
	pthread_mutex_unlock(&p->ttl->lock);
	if (!t)
		return -ENODATA;
	free(t);
	if (p->cfg.ssd)
		ssd_meta_delete(p->cfg.ssd, 's', key);
	return 0;
}

uint64_t policy_ttl_effective(struct policy *p, const char *key, char *from, size_t fromsz)
{
	size_t rootlen = strlen(p->cfg.root_key), n = strlen(key);
	char *k = strdup(key);
	uint64_t ttl = p->cfg.ttl_s;
	bool found = false;
	if (from && fromsz)
		from[0] = '\0';
	if (!k)
		return ttl;
	pthread_mutex_lock(&p->ttl->lock);
	for (;;) {
		struct ttl_setting *t = p->ttl->n ? *find_locked(p, k) : NULL;
		if (t) {
			ttl = t->ttl_s;
			found = true;
			break;
		}
		if (n <= rootlen)
			break; /* the mount's root: nothing above it counts */
		/* up one level: "a/b/c" or "a/b/c/" -> "a/b/" */
		size_t end = n - (k[n - 1] == '/' ? 1 : 0);
		while (end > 0 && k[end - 1] != '/')
			end--;
		if (end < rootlen)
			end = rootlen;
		k[end] = '\0';
		n = end;
	}
	pthread_mutex_unlock(&p->ttl->lock);
	if (found && from && fromsz)
		snprintf(from, fromsz, "%s", k);
	free(k);
	return ttl;
}

bool policy_fresh(struct policy *p, const char *key, uint64_t learned_ms, uint64_t now_ms)
{
	if (learned_ms == 0)
		return false;
	uint64_t ttl = policy_ttl_effective(p, key, NULL, 0);
	if (ttl == TFS_TTL_NEVER)
		return true;
	return now_ms >= learned_ms && now_ms - learned_ms < ttl * 1000;
}
