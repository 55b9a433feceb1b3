/*
 * inode.h - the inode table: FUSE inode numbers <-> (parent, name, S3 key), the attributes
 * learned of each and when, and the names the kernel was told are absent (inode.c).
 *
 * A file's inode is one version of its object: when S3 has a new version (a new ETag), the
 * name gets a new inode, as if the new version had been renamed over the old one, and the old
 * inode keeps the old version's attributes for the handles still open on it.  The inode number
 * tools see (st_ino) is derived from the key and the version (stat_ino), so it is the same
 * across remounts and cache drops while the version is, and new with a new version.
 *
 * Memory: an inode takes one allocation of 128 bytes and its key, and its three hash
 * buckets (at most two inodes per bucket: the buckets double when the inodes outnumber
 * them twice, rehashed at once under the lock, a pause of tens of milliseconds at a million
 * inodes, amortized over the million lookups that made them).
 *
 * Thread-safe.  Lock: t->lock guards the table and the mutable fields of every inode.
 */
#ifndef TIERFS_INODE_H
#define TIERFS_INODE_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "policy.h"

struct tfs_inode {
	fuse_ino_t ino;             /* immutable */
	fuse_ino_t parent;          /* immutable */
	uint64_t st_ino;            /* immutable: the number tools see (unique among the live) */
	uint32_t name_off;          /* immutable: the name in the parent is key + name_off, */
	uint16_t name_len;          /* name_len bytes (a directory's key ends in '/' after it) */
	bool is_dir;                /* immutable */
	/* below: guarded by the table's lock */
	bool hashed;                /* reachable by (parent, name) */
	struct tfs_cattr attr;      /* packed: itable_get_attr() unpacks it */
	uint64_t attr_ms;           /* monotonic time attr was learned; 0: must be refreshed */
	uint64_t nlookup;
	uint64_t cache_version;     /* a hash of the ETag the kernel page cache was filled with;
				     * 0: none */
	struct tfs_inode *ino_next, *name_next, *stino_next;
	char key[];                 /* immutable: the object key, or the prefix ending in '/' */
};

/* The inode number tools see for key (a directory's prefix, or an object key and its ETag):
 * a 63-bit hash, never 0 or 1 (the root's).  The table turns a collision between two live
 * inodes into the next free number. */
uint64_t stat_ino(const char *key, const char *etag);

/* A name the kernel was told is absent (a negative entry), so that an invalidation can take
 * it back: the most recent ITABLE_ABSENT_MAX are remembered. */
#define ITABLE_ABSENT_MAX 4096
struct tfs_absent {
	fuse_ino_t parent;
	char *key;                  /* the key the name would have; NULL: a free slot */
	size_t name_off;            /* the name is key + name_off */
};

struct tfs_itable {
	pthread_mutex_t lock;       /* guards everything in the table and the inodes' mutable fields */
	struct tfs_inode **by_ino, **by_name, **by_stino;
	size_t nbuckets, count;
	fuse_ino_t next_ino;
	struct tfs_absent absent[ITABLE_ABSENT_MAX]; /* a ring */
	size_t absent_next;
};

int itable_init(struct tfs_itable *t, const char *root_key);
void itable_destroy(struct tfs_itable *t);
/* The inode of ino, or NULL.  The kernel holds a lookup reference while it uses an ino, so the
 * pointer stays valid for the duration of the request. */
struct tfs_inode *itable_get(struct tfs_itable *t, fuse_ino_t ino);
/* Finds or creates the inode for name in parent with these attributes, and counts one lookup. */
/* What a link says of a file already known: new to the table; its ETag confirmed by what was
 * learned after the inode's attributes (a revalidation); the same information again (a cached
 * listing read twice); a new version (then a new inode). */
enum tfs_seen { SEEN_NEW = 0, SEEN_SAME, SEEN_AGAIN, SEEN_CHANGED };
/* *seen (may be NULL) says which.  learned_ms: when a was learned from S3 (monotonic; a
 * listing's time, not now), which its TTL runs from.  What the table knows is never replaced by
 * what was learned before it: *a and *learned_ms are set to what the inode holds. */
struct tfs_inode *itable_link(struct tfs_itable *t, struct tfs_inode *parent, const char *name,
			      struct tfs_attr *a, uint64_t *learned_ms, enum tfs_seen *seen);
/* The name of i now belongs to a newer version: i leaves the (parent, name) index (its
 * attributes stay, those of its version).  Returns false if it had left it already. */
bool itable_supersede(struct tfs_itable *t, struct tfs_inode *i);
/* Whether the kernel may keep the page cache of i at version etag (it was filled at that
 * version); if not, records etag as the version it is filled with from now on. */
bool itable_keep_cache(struct tfs_itable *t, struct tfs_inode *i, const char *etag);
void itable_forget(struct tfs_itable *t, fuse_ino_t ino, uint64_t n);
/* What is known of i and when (*ms); *current (may be NULL): i still holds its name (it was not
 * superseded by a newer version). */
void itable_get_attr(struct tfs_itable *t, struct tfs_inode *i, struct tfs_attr *a, uint64_t *ms,
		     bool *current);
/* Sets what is known of i, learned at ms (monotonic). */
void itable_set_attr_at(struct tfs_itable *t, struct tfs_inode *i, const struct tfs_attr *a,
			uint64_t ms);
void itable_expire_attr(struct tfs_itable *t, struct tfs_inode *i);
/* Expires the attributes (and the page-cache version) of every inode whose key match() accepts
 * (every inode when match is NULL: their attr_ms is 0, "invalidated"), and calls
 * cb(ctx, ino, NULL) for each, then cb(ctx, parent, name) for each absent name whose key it
 * accepts (forgetting it), after the table's lock is dropped.  Returns the inodes expired, or
 * -ENOMEM. */
long itable_expire_matching(struct tfs_itable *t, bool (*match)(void *ctx, const char *key),
			    void *mctx, void (*cb)(void *ctx, fuse_ino_t ino, const char *name),
			    void *cctx);
/* Remembers that name (key) in parent was answered "absent". */
void itable_note_absent(struct tfs_itable *t, fuse_ino_t parent, const char *parent_key,
			const char *name);

#endif
