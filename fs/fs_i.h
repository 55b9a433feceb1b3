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
	char *config, *log_file, *log_level;
	char *config_bucket, *config_mountpoint; /* bucket = and mountpoint = of the config file */
	char *kernel_opts;  /* kernel mount flags passed on to FUSE: nosuid,nodev,noatime,... */
	/* set by fuse_opt, which stores an int: int, not bool (a bool let it overwrite the next
	 * field: -o direct_io zeroed the low byte of ttl_s) */
	int path_style, anonymous, direct_io;
	bool allow_other, foreground, debug, ro;
	uint64_t ttl_s, chunk_size, readahead_max, mem_bytes;
	uint64_t l2_size, l2_min_free_pct, l2_min_free_bytes;
	uint64_t read_ahead_kb;
	uint64_t l1_size, promote_after, demote_after_s, demote_interval_s;
	uint64_t timeout_ms, retries, fetch_threads;
	uint64_t prefetch_window_s, prefetch_interval_s, prefetch_budget;
	bool prefetch_off;
	bool help, version, l1_size_set;
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
	char cache_etag[S3_ETAG_MAX]; /* the version the kernel page cache was filled with */
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
/* What a link says of a file already known: */
enum tfs_seen { SEEN_NEW = 0, SEEN_SAME, SEEN_CHANGED };
/* *seen (may be NULL) tells whether a known file kept its ETag or now has another. */
struct tfs_inode *itable_link(struct tfs_itable *t, struct tfs_inode *parent, const char *name,
			      const struct tfs_attr *a, enum tfs_seen *seen);
/* Whether the kernel may keep the page cache of i at version etag (it was filled at that
 * version); if not, records etag as the version it is filled with from now on. */
bool itable_keep_cache(struct tfs_itable *t, struct tfs_inode *i, const char *etag);
void itable_forget(struct tfs_itable *t, fuse_ino_t ino, uint64_t n);
void itable_get_attr(struct tfs_itable *t, struct tfs_inode *i, struct tfs_attr *a, uint64_t *ms);
void itable_set_attr(struct tfs_itable *t, struct tfs_inode *i, const struct tfs_attr *a);
/* The same, learned at ms (monotonic) rather than now. */
void itable_set_attr_at(struct tfs_itable *t, struct tfs_inode *i, const struct tfs_attr *a,
			uint64_t ms);
void itable_expire_attr(struct tfs_itable *t, struct tfs_inode *i);
/* Expires the attributes (and the page-cache version) of every inode whose key match() accepts
 * (every inode when match is NULL); stores up to max of their numbers in out, returns how many. */
size_t itable_expire_matching(struct tfs_itable *t, bool (*match)(void *ctx, const char *key),
			      void *ctx, fuse_ino_t *out, size_t max);

/* ---- ops.c ---- */

/* Kernel cache invalidations, sent from a thread of their own: never from inside a FUSE
 * operation, where libfuse warns they can deadlock. */
struct tfs_notifier {
	pthread_mutex_t lock;       /* guards q, n and stop */
	pthread_cond_t cond;
	fuse_ino_t q[256];
	int n;
	bool stop, started;
	pthread_t thread;
	struct fuse_session *se;
};

/* Open file and directory handles, so that any the kernel never released (an unmount racing
 * with an asynchronous RELEASE) are freed at shutdown. */
struct tfs_handle {
	struct tfs_handle *prev, *next;
	void (*free_fn)(struct tfs_handle *h);
};

struct tfs_fs {
	struct tfs_options *opts;
	pthread_mutex_t handles_lock;   /* guards handles */
	struct tfs_handle handles;      /* list head */
	struct tfs_notifier notifier;
	struct s3_client *s3;
	struct policy *pol;
	struct tfs_itable itab;
	uid_t uid;
	gid_t gid;
	bool warned_ctl_name;       /* racy by design: at worst a second warning */
	time_t mount_time;
};

extern const struct fuse_lowlevel_ops tfs_ops;

void handles_init(struct tfs_fs *fs);
void handle_add(struct tfs_fs *fs, struct tfs_handle *h, void (*free_fn)(struct tfs_handle *));
void handle_del(struct tfs_fs *fs, struct tfs_handle *h);
/* Frees every handle still open (after the session ended). */
void handles_free_all(struct tfs_fs *fs);

int notifier_start(struct tfs_notifier *n, struct fuse_session *se);
void notifier_stop(struct tfs_notifier *n);
/* Queues "drop the kernel's cached pages and attributes of ino". */
void notify_inval(struct tfs_fs *fs, fuse_ino_t ino);

/* ---- ctl.c: MOUNT/.tierfs ---- */

#define CTL_DIR_NAME ".tierfs"
bool ctl_is_ino(fuse_ino_t ino);
/* Handles a lookup of .tierfs in the root or of a name in .tierfs; false when not ours. */
bool ctl_lookup(fuse_req_t req, struct tfs_fs *fs, fuse_ino_t parent, const char *name);
void ctl_getattr(fuse_req_t req, struct tfs_fs *fs, fuse_ino_t ino);
void ctl_setattr(fuse_req_t req, struct tfs_fs *fs, fuse_ino_t ino, int to_set);
void ctl_readdir(fuse_req_t req, struct tfs_fs *fs, size_t size, off_t off, bool plus);
void ctl_open(fuse_req_t req, struct tfs_fs *fs, fuse_ino_t ino, struct fuse_file_info *fi);
void ctl_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void ctl_write(fuse_req_t req, struct tfs_fs *fs, const char *data, size_t size,
	       struct fuse_file_info *fi);
void ctl_flush(fuse_req_t req, struct tfs_fs *fs, struct fuse_file_info *fi);
void ctl_release(fuse_req_t req, struct tfs_fs *fs, struct fuse_file_info *fi);

/* ---- xattr.c: extended attributes, and EROFS for every change ---- */

void tfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void tfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void tfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		  size_t size, int flags);
void tfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);
void tfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		 struct fuse_file_info *fi);
void tfs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev);
void tfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void tfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void tfs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void tfs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name);
void tfs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		const char *newname, unsigned int flags);
void tfs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname);
void tfs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		struct fuse_file_info *fi);
void tfs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
		   struct fuse_file_info *fi);

#endif
