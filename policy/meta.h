/*
 * meta.h - what the bucket looks like as directories (meta.c): listings built from
 * ListObjectsV2 pages by the naming rules (README, "Object keys and file names"), cached with
 * the TTL in memory and in the L2 index, and lookups of single names.  The functions the
 * policy's other modules use; policy.h has the rest.  Thread-safe; meta->lock is a leaf.
 */
#ifndef TIERFS_META_H
#define TIERFS_META_H

#include <stddef.h>

#include "policy.h"
#include "s3.h"

int meta_init(struct policy *p);
/* Builds a listing of dir_key from ListObjectsV2 pages by the naming rules of meta.c (exposed
 * for unit tests). */
int meta_listing_from_pages(const char *dir_key, const struct s3_list_page *pages, size_t npages,
			    struct tfs_listing **out);
void meta_destroy(struct policy *p);
/* The listing of dir_key held in memory, fresh or not (no S3 request), or NULL: good enough
 * for predicting (a stale listing names old versions, whose prefetch is merely wasted). */
struct tfs_listing *meta_cached_listing(struct policy *p, const char *dir_key);
/* Forgets what is cached of metadata that m names (NULL: all): listings (all of them: a
 * listing names versions), attributes learned by lookups, in memory and persisted. */
int meta_forget(struct policy *p, const struct policy_match *m);

#endif
