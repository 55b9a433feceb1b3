/*
 * cattr.h - a file's attributes packed for keeping (cattr.c): what a listing entry and an inode
 * hold of struct tfs_attr (policy.h), in 48 bytes instead of 160.
 *
 * The ETag takes 20 bytes when it has the form S3 servers give (a quoted MD5 in lower-case
 * hex, with "-N" after it for a multipart upload): the MD5 as 16 bytes and N; any other ETag
 * is a copy on the heap.  Packing is exact: unpacking gives back the same string, byte for
 * byte (a form that would not round-trip is kept as a copy).
 *
 * A zeroed struct tfs_cattr is valid: a file of size 0 with no ETag.  One that holds a copy
 * must be cleared (tfs_cattr_clear) before it is freed; a struct copy moves that ownership.
 * Not thread-safe: the container's lock guards it.
 */
#ifndef TIERFS_CATTR_H
#define TIERFS_CATTR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct tfs_attr;

struct tfs_cattr {
	uint64_t size;
	time_t mtime;
	uint32_t uid, gid;
	uint16_t mode;
	uint8_t meta;
	bool is_dir;
	uint32_t etag_form;        /* 0: none; 1: a heap copy; 2: a quoted MD5; 2 + N: with "-N" */
	union {
		unsigned char md5[16];
		char *copy;
	} etag;
};

/* Packs a into c, releasing what c held.  0, or -ENOMEM (then c is unchanged). */
int tfs_cattr_set(struct tfs_cattr *c, const struct tfs_attr *a);
/* The attributes c holds. */
void tfs_cattr_get(const struct tfs_cattr *c, struct tfs_attr *a);
/* The ETag c holds (always shorter than S3_ETAG_MAX) into buf: its length, or 0 for none. */
size_t tfs_cattr_etag(const struct tfs_cattr *c, char *buf, size_t n);
/* Whether c holds an ETag. */
static inline bool tfs_cattr_has_etag(const struct tfs_cattr *c)
{
	return c->etag_form != 0;
}
/* Whether c holds exactly this ETag (false for none). */
bool tfs_cattr_etag_is(const struct tfs_cattr *c, const char *etag);
/* Releases the heap copy, if any; c then holds no ETag. */
void tfs_cattr_clear(struct tfs_cattr *c);

#endif
