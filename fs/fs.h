/*
 * fs.h - the state every part of fs/ shares (one struct tfs_fs per mount), and the two kinds of
 * inode behind one table of operations each: the bucket's (bucket.c) and the control
 * directory's (ctl.c).  ops.c routes every FUSE operation once, by inode kind; no other file
 * asks which kind an inode is.
 *
 * Lock order in fs/: the handles' lock, the inode table's lock and the notifier's lock are
 * leaves: none is held while another lock is taken or policy is called (policy_i.h has the
 * rest of the order).
 */
#ifndef TIERFS_FS_H
#define TIERFS_FS_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#include "handles.h"
#include "inode.h"
#include "notify.h"
#include "options.h"
#include "policy.h"

struct tfs_fs {
	struct tfs_options *opts;       /* immutable */
	struct tfs_handles handles;
	struct tfs_notifier notifier;
	struct s3_client *s3;
	struct policy *pol;
	struct tfs_itable itab;
	uid_t uid;                      /* immutable: the mount's owner */
	gid_t gid;
	_Atomic bool warned_ctl_name;   /* one warning about a hidden .tierfs prefix */
	time_t mount_time;
	/* the control directory's statistics files (ctl.c), by kind: */
	_Atomic size_t ctl_len[8];      /* the size of the newest open snapshot */
	_Atomic int ctl_open[8];        /* open snapshots */
};

static inline struct tfs_fs *fs_of(fuse_req_t req) { return fuse_req_userdata(req); }

/* The operations of one kind of inode (the FUSE operations that name an inode). */
struct node_ops {
	/* parent is of this kind */
	void (*lookup)(fuse_req_t req, fuse_ino_t parent, const char *name);
	void (*forget)(struct tfs_fs *fs, fuse_ino_t ino, uint64_t nlookup);
	void (*getattr)(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
	void (*setattr)(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			struct fuse_file_info *fi);
	void (*open)(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
	void (*read)(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi);
	void (*write)(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		      struct fuse_file_info *fi);
	void (*flush)(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
	void (*release)(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
	void (*opendir)(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
	void (*readdir)(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi, bool plus);
	void (*releasedir)(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
	void (*getxattr)(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
	void (*listxattr)(fuse_req_t req, fuse_ino_t ino, size_t size);
	void (*setxattr)(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			 size_t size, int flags);
	void (*removexattr)(fuse_req_t req, fuse_ino_t ino, const char *name);
};

extern const struct node_ops bucket_node_ops; /* bucket.c (xattrs: xattr.c) */
extern const struct node_ops ctl_node_ops;    /* ctl.c */

#define CTL_DIR_NAME ".tierfs"
/* Whether ino is one of the control directory's. */
bool ctl_is_ino(fuse_ino_t ino);

/* The bucket's extended attributes (xattr.c). */
void bucket_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void bucket_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void bucket_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		     size_t size, int flags);
void bucket_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

/* What the kernel is told when S3 has something new: the attributes of every inode whose key
 * match() accepts (NULL: all) and the absent names it accepts are invalidated (bucket.c).
 * Returns the inodes invalidated, or -errno. */
long fs_expire_matching(struct tfs_fs *fs, bool (*match)(void *ctx, const char *key), void *ctx);

/* The FUSE table (ops.c). */
extern const struct fuse_lowlevel_ops tfs_ops;

#endif
