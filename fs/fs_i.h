/*
 * fs_i.h - the insides of fs/: options, the inode table, and the state the FUSE operations share.
 */
#ifndef TIERFS_FS_I_H
#define TIERFS_FS_I_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "policy.h"

/* ---- options.c ---- */

struct tfs_options {
	char *bucket;       /* BUCKET of BUCKET[:PREFIX] */
	char *prefix;       /* "" or a prefix ending in '/' */
	char *mountpoint;
	char *endpoint, *region, *profile, *cache_dir, *ca_file;
	bool path_style, anonymous, allow_other, foreground, debug, direct_io;
	uint64_t ttl_s, chunk_size, readahead_max, mem_bytes;
	uint64_t l2_size, l2_min_free_pct, l2_min_free_bytes;
	uint64_t read_ahead_kb;
	uint64_t timeout_ms, retries, fetch_threads;
	bool help, version;
};

/* Returns -1 to go on, or an exit status to leave with (0 after --help/--version, 2 on bad
 * options, with a message on stderr).  Fills fargs with the arguments for fuse_session_new. */
int tfs_parse_options(int argc, char **argv, struct tfs_options *o, struct fuse_args *fargs);
void tfs_options_free(struct tfs_options *o);
void tfs_print_help(const char *prog);

/* ---- inode.c ---- */

struct tfs_inode {
	fuse_ino_t ino;             /* immutable */
	fuse_ino_t parent;          /* immutable */
	char *name;                 /* immutable: the name in the parent */
	char *key;                  /* immutable: the object key, or the prefix ending in '/' */
	bool is_dir;                /* immutable */
	/* below: guarded by the table's lock */
	struct tfs_attr attr;
	uint64_t attr_ms;           /* monotonic time attr was learned; 0: must be refreshed */
	uint64_t nlookup;
	bool hashed;                /* reachable by (parent, name) */
	struct tfs_inode *ino_next, *name_next;
};

struct tfs_itable {
	pthread_mutex_t lock;       /* guards everything in the table and the inodes' mutable fields */
	struct tfs_inode **by_ino, **by_name;
	size_t nbuckets, count;
	fuse_ino_t next_ino;
};

int itable_init(struct tfs_itable *t, const char *root_key);
void itable_destroy(struct tfs_itable *t);
/* The inode of ino, or NULL.  The kernel holds a lookup reference while it uses an ino, so the
 * pointer stays valid for the duration of the request. */
struct tfs_inode *itable_get(struct tfs_itable *t, fuse_ino_t ino);
/* Finds or creates the inode for name in parent with these attributes, and counts one lookup. */
struct tfs_inode *itable_link(struct tfs_itable *t, struct tfs_inode *parent, const char *name,
			      const struct tfs_attr *a);
void itable_forget(struct tfs_itable *t, fuse_ino_t ino, uint64_t n);
void itable_get_attr(struct tfs_itable *t, struct tfs_inode *i, struct tfs_attr *a, uint64_t *ms);
void itable_set_attr(struct tfs_itable *t, struct tfs_inode *i, const struct tfs_attr *a);
void itable_expire_attr(struct tfs_itable *t, struct tfs_inode *i);

/* ---- ops.c ---- */

struct tfs_fs {
	struct tfs_options *opts;
	struct s3_client *s3;
	struct policy *pol;
	struct tfs_itable itab;
	uid_t uid;
	gid_t gid;
	time_t mount_time;
	double timeout_s;           /* kernel entry/attr cache time: the TTL */
};

extern const struct fuse_lowlevel_ops tfs_ops;

#endif
