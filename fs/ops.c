/*
 * ops.c - the FUSE low-level operations: each is routed once, by the kind of inode it names,
 * to that kind's table (bucket.c, ctl.c); what names no inode is answered here (init, statfs,
 * and EROFS for every change of a read-only file system).
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/statvfs.h>

#include "fs.h"

/* The kind of an inode, and of a lookup: .tierfs in the root is the control directory's. */
static const struct node_ops *kind(fuse_ino_t ino)
{
	return ctl_is_ino(ino) ? &ctl_node_ops : &bucket_node_ops;
}

static const struct node_ops *lookup_kind(fuse_ino_t parent, const char *name)
{
	if (parent == FUSE_ROOT_ID && strcmp(name, CTL_DIR_NAME) == 0)
		return &ctl_node_ops;
	return kind(parent);
}

static void tfs_init(void *userdata, struct fuse_conn_info *conn)
{
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->want &= ~(unsigned)FUSE_CAP_READDIRPLUS_AUTO;
	conn->max_readahead = POLICY_MAX_READ;
	if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)
		conn->want |= FUSE_CAP_AUTO_INVAL_DATA; /* a new mtime drops cached pages */
	(void)userdata;
}

static void tfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	lookup_kind(parent, name)->lookup(req, parent, name);
}

static void tfs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	kind(ino)->forget(fs_of(req), ino, nlookup);
	fuse_reply_none(req);
}

static void tfs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t n = 0; n < count; n++)
		kind(forgets[n].ino)->forget(fs_of(req), forgets[n].ino, forgets[n].nlookup);
	fuse_reply_none(req);
}

static void tfs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	kind(ino)->getattr(req, ino, fi);
}

static void tfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			struct fuse_file_info *fi)
{
	kind(ino)->setattr(req, ino, attr, to_set, fi);
}

static void tfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	kind(ino)->open(req, ino, fi);
}

static void tfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	kind(ino)->read(req, ino, size, off, fi);
}

static void tfs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	kind(ino)->write(req, ino, buf, size, off, fi);
}

static void tfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	kind(ino)->flush(req, ino, fi);
}

static void tfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	kind(ino)->release(req, ino, fi);
}

static void tfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	kind(ino)->opendir(req, ino, fi);
}

static void tfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	kind(ino)->readdir(req, ino, size, off, fi, false);
}

static void tfs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			    struct fuse_file_info *fi)
{
	kind(ino)->readdir(req, ino, size, off, fi, true);
}

static void tfs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	kind(ino)->releasedir(req, ino, fi);
}

static void tfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	kind(ino)->getxattr(req, ino, name, size);
}

static void tfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	kind(ino)->listxattr(req, ino, size);
}

static void tfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			 size_t size, int flags)
{
	kind(ino)->setxattr(req, ino, name, value, size, flags);
}

static void tfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	kind(ino)->removexattr(req, ino, name);
}

static void tfs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv = { 0 };
	/* A bucket has no size and no inode count to speak of: a large file system with
	 * everything free, so that df and disk-full alarms do not see a full disk (nothing can be
	 * written here either way: every change is EROFS). */
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_blocks = sv.f_bfree = sv.f_bavail = 1ull << 50 >> 12; /* 1 PiB */
	sv.f_files = sv.f_ffree = sv.f_favail = 1ull << 32;
	sv.f_namemax = NAME_MAX;
	fuse_reply_statfs(req, &sv);
	(void)ino;
}

/* ---- a read-only file system: every change of the namespace is EROFS ---- */

static void erofs(fuse_req_t req) { fuse_reply_err(req, EROFS); }

static void tfs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      dev_t rdev)
{
	erofs(req);
}
static void tfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	erofs(req);
}
static void tfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name) { erofs(req); }
static void tfs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name) { erofs(req); }
static void tfs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	erofs(req);
}
static void tfs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		       const char *newname, unsigned int flags)
{
	erofs(req);
}
static void tfs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	erofs(req);
}
static void tfs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		       struct fuse_file_info *fi)
{
	erofs(req);
}
static void tfs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
			  struct fuse_file_info *fi)
{
	erofs(req);
}

const struct fuse_lowlevel_ops tfs_ops = {
	.init = tfs_init,
	.lookup = tfs_lookup,
	.forget = tfs_forget,
	.forget_multi = tfs_forget_multi,
	.getattr = tfs_getattr,
	.setattr = tfs_setattr,
	.open = tfs_open,
	.read = tfs_read,
	.write = tfs_write,
	.flush = tfs_flush,
	.release = tfs_release,
	.opendir = tfs_opendir,
	.readdir = tfs_readdir,
	.readdirplus = tfs_readdirplus,
	.releasedir = tfs_releasedir,
	.statfs = tfs_statfs,
	.getxattr = tfs_getxattr,
	.listxattr = tfs_listxattr,
	.setxattr = tfs_setxattr,
	.removexattr = tfs_removexattr,
	.mknod = tfs_mknod,
	.mkdir = tfs_mkdir,
	.unlink = tfs_unlink,
	.rmdir = tfs_rmdir,
	.symlink = tfs_symlink,
	.rename = tfs_rename,
	.link = tfs_link,
	.create = tfs_create,
	.fallocate = tfs_fallocate,
};
