/*
 * xmeta.h - the user metadata this mount has read (xmeta.c): for each object key, the version
 * (ETag) its headers were read at and what x-amz-meta-* said.  A listing carries no user
 * metadata; this is what lets a listing's entries show the modes and owners a HEAD found.
 * In memory only, at most max keys (XMETA_MAX in the daemon; then the oldest half is forgotten); the L2 index keeps
 * what a lookup learned across remounts (meta.c).  Thread-safe; its lock is a leaf.
 */
#ifndef TIERFS_XMETA_H
#define TIERFS_XMETA_H

#include "policy.h"

#define XMETA_MAX (1u << 20)

struct xmeta;

struct xmeta *xmeta_new(size_t max);
void xmeta_free(struct xmeta *x);
/* Remembers a's metadata (a->meta has TFS_META_READ) for key at a->etag. */
void xmeta_put(struct xmeta *x, const char *key, const struct tfs_attr *a);
/* What a response (a HEAD's, a GET's) says of an object's user metadata, into a's meta, mode,
 * uid, gid and mtime (x-amz-meta-mtime, else Last-Modified). */
void xmeta_fill(struct tfs_attr *a, const struct s3_object *o);
/* Remembers what a response (a HEAD's, a GET's) said of key's user metadata, at o->etag. */
void xmeta_put_object(struct xmeta *x, const char *key, const struct s3_object *o);
/* If key's headers were read at a->etag: copies the metadata into *a and returns true. */
bool xmeta_get(struct xmeta *x, const char *key, struct tfs_attr *a);
/* Forgets everything (a purge, an invalidation). */
void xmeta_clear(struct xmeta *x);

#endif
