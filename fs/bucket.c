/*
 * bucket.c - the operations of the bucket's inodes: a read-only view of a bucket.
 *
 * Replies follow one rule: policy returns 0 or -errno, and fs replies fuse_reply_err(req, -ret).
 * The kernel caches entries and attributes for what is left of their TTL (counted from when
 * S3 said it, a listing's time included), and keeps a file's page cache across opens while its
 * version is unchanged (keep_cache): the page cache is a tier too.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs.h"
#include "log.h"
#include "util.h"

struct tfs_file {
	struct tfs_handle h;    /* first: a handle is a file or a dir handle */
	char *key;
	char etag[S3_ETAG_MAX];
	uint64_t size;
	struct policy_stream stream;
};

struct dir_handle {
	struct tfs_handle h;    /* first */
	struct tfs_listing *listing;
};

static void file_free(struct tfs_handle *h)
{
	struct tfs_file *f = (struct tfs_file *)h;
	policy_stream_destroy(&f->stream);
	free(f->key);
	free(f);
}

static void dir_free(struct tfs_handle *h)
{
	struct dir_handle *d = (struct dir_handle *)h;
	policy_listing_put(d->listing);
	free(d);
}

/* A file seen with a new ETag: the old version's chunks go.  (The kernel needs no word: the
 * new version is a new inode, and the old inode's pages are the old version's.)
 * policy_knows: policy found the change itself (a revalidation), dropped the old chunks and
 * counted it; otherwise (a lookup, a listing) it is told here. */
static void file_changed(struct tfs_fs *fs, const char *key, const char *etag, bool policy_knows)
{
	char kbuf[300];
	tfs_info("'%s' changed in S3 (new ETag %s): cached copies dropped",
		 tfs_printable(key, kbuf, sizeof(kbuf)), etag);
	if (!policy_knows)
		policy_object_changed(fs->pol, key, etag);
}

/* Directories have no time in S3 (a prefix is not an object): a fixed one, so that rsync -a
 * and make see the same time on every mount: 2000-01-01T00:00:00Z. */
#define DIR_MTIME 946684800

/* What tools see of an inode (st_ino: stat_ino's, see inode.h).  Modes: the object's
 * x-amz-meta-mode, else file_mode/dir_mode, less the umask, and no write bit while tierfs is
 * read-only (so access(W_OK) is false and editors open files read-only).  Owners: uid=/gid=,
 * else the object's x-amz-meta-uid/-gid, else the mount's user. */
static void fill_stat(const struct tfs_fs *fs, uint64_t st_ino, const struct tfs_attr *a,
		      struct stat *st)
{
	const struct tfs_options *o = fs->opts;
	memset(st, 0, sizeof(*st));
	st->st_ino = st_ino;
	st->st_uid = o->uid_set ? (uid_t)o->uid : (a->meta & TFS_META_UID) ? a->uid : fs->uid;
	st->st_gid = o->gid_set ? (gid_t)o->gid : (a->meta & TFS_META_GID) ? a->gid : fs->gid;
	mode_t mode = (a->meta & TFS_META_MODE) ? (mode_t)a->mode & 0777
			: a->is_dir ? (mode_t)o->dir_mode : (mode_t)o->file_mode;
	mode &= ~(mode_t)o->umask & ~(mode_t)0222;
	if (a->is_dir) {
		st->st_mode = S_IFDIR | mode;
		st->st_nlink = 2;
		st->st_mtime = st->st_ctime = st->st_atime = DIR_MTIME;
	} else {
		st->st_mode = S_IFREG | mode;
		st->st_nlink = 1;
		st->st_size = (off_t)a->size;
		st->st_blocks = (blkcnt_t)((a->size + 511) / 512);
		st->st_mtime = st->st_ctime = st->st_atime = a->mtime;
	}
	st->st_blksize = (blksize_t)(o->chunk_size < (1u << 20) ? o->chunk_size : (1u << 20));
}

/* How long the kernel may keep what it learns of key, learned from S3 at learned_ms: what is
 * left of the TTL in force for it (not the whole TTL again: a listing's entries are as old as
 * the listing). */
static double kernel_timeout(struct tfs_fs *fs, const char *key, uint64_t learned_ms)
{
	uint64_t ttl = policy_ttl_effective(fs->pol, key, NULL, 0), now = tfs_now_ms();
	if (ttl == TFS_TTL_NEVER || ttl > 365ull * 86400)
		return 365.0 * 86400;
	uint64_t age = now > learned_ms ? now - learned_ms : 0;
	return age >= ttl * 1000 ? 0.0 : (double)(ttl * 1000 - age) / 1000.0;
}

static void reply_entry(fuse_req_t req, struct tfs_fs *fs, struct tfs_inode *i,
			const struct tfs_attr *a, uint64_t learned_ms)
{
	struct fuse_entry_param e = { 0 };
	e.ino = i->ino;
	e.attr_timeout = kernel_timeout(fs, i->key, learned_ms);
	e.entry_timeout = e.attr_timeout;
	fill_stat(fs, i->st_ino, a, &e.attr);
	if (fuse_reply_entry(req, &e) == -ENOENT)
		itable_forget(&fs->itab, i->ino, 1); /* the lookup was interrupted */
}

/* Fresh metadata of a known file (a lookup, a listing) is a revalidation too. */
static void file_seen(struct tfs_fs *fs, struct tfs_inode *i, const struct tfs_attr *a,
		      enum tfs_seen seen)
{
	if (seen == SEEN_CHANGED)
		file_changed(fs, i->key, a->etag, false);
	else if (seen == SEEN_SAME)
		policy_revalidation_kept(fs->pol);
}

static void b_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct tfs_fs *fs = fs_of(req);
	struct tfs_inode *dir = itable_get(&fs->itab, parent);
	struct tfs_attr a;
	uint64_t learned = tfs_now_ms();
	if (!dir || !dir->is_dir) {
		fuse_reply_err(req, dir ? ENOTDIR : ENOENT);
		return;
	}
	int ret = policy_lookup(fs->pol, dir->key, name, &a, &learned);
	if (ret == -ENOENT) {
		/* A negative entry, cached by the kernel for what is left of the directory's TTL,
		 * and remembered, so that an invalidation can take it back. */
		struct fuse_entry_param e = { .ino = 0,
					      .entry_timeout = kernel_timeout(fs, dir->key, learned) };
		itable_note_absent(&fs->itab, dir->ino, dir->key, name);
		fuse_reply_entry(req, &e);
		return;
	}
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	enum tfs_seen seen;
	struct tfs_inode *i = itable_link(&fs->itab, dir, name, &a, &learned, &seen);
	if (!i) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	file_seen(fs, i, &a, seen);
	reply_entry(req, fs, i, &a, learned);
}

static void b_forget(struct tfs_fs *fs, fuse_ino_t ino, uint64_t nlookup)
{
	itable_forget(&fs->itab, ino, nlookup);
}

/* The attributes of i, and when they were learned (*ms, may be NULL); for a file whose TTL
 * ran out, revalidated with S3 first (a conditional HEAD: 304 keeps everything cached and
 * restarts the TTL), unless the prefetcher revalidated it since (then what it learned).  With
 * want_meta (a getattr), a file whose user metadata this mount has not read is asked with a
 * plain HEAD: the kernel asks before running a file it knows no x bit for, and a stat past the
 * kernel's attribute timeout; an open or a read never waits for it.  When S3 has a new version, i is superseded
 * (inode.h): it keeps its attributes and *superseded is set (as it is for an inode superseded
 * before).  The kernel learns of the new inode by a lookup: when a TTL ran out, its entry ran
 * out with the attributes; when an invalidation expired the attributes alone, -ESTALE makes the
 * kernel look the path up again (stat and open retry once on ESTALE), so that no notification
 * that takes the directory's lock is needed (one blocked in the kernel when the daemon is
 * killed keeps the killed process, and the mount, from ever finishing). */
static int current_attr(struct tfs_fs *fs, struct tfs_inode *i, struct tfs_attr *a, uint64_t *ms,
			bool want_meta, bool *superseded)
{
	uint64_t learned, at;
	bool current;
	itable_get_attr(&fs->itab, i, a, &learned, &current);
	*superseded = !current;
	if (ms)
		*ms = learned;
	bool need_meta = want_meta && policy_config(fs->pol)->object_meta && !i->is_dir &&
			 !(a->meta & TFS_META_READ);
	if (need_meta && current) {
		policy_attr_meta(fs->pol, i->key, a); /* read before, by this mount or another */
		if ((need_meta = !(a->meta & TFS_META_READ)) == false)
			itable_set_attr_at(&fs->itab, i, a, learned);
	}
	bool fresh_ttl = policy_fresh(fs->pol, i->key, learned, tfs_now_ms());
	if (i->is_dir || !current || (fresh_ttl && !need_meta))
		return 0;
	struct tfs_attr fresh;
	bool changed = false;
	if (!need_meta && a->etag[0] &&
	    policy_prefetch_confirmed(fs->pol, i->key, learned, &fresh, &at) == 0) {
		changed = strcmp(fresh.etag, a->etag) != 0; /* the prefetcher revalidated it */
	} else {
		int ret = a->etag[0] && !need_meta
				  ? policy_revalidate(fs->pol, i->key, a, &fresh, &changed)
				  : policy_stat_file(fs->pol, i->key, &fresh);
		if (ret < 0 && need_meta && fresh_ttl && ret != -ENOENT) {
			/* the HEAD was for the metadata alone: best effort, not asked again */
			a->meta = TFS_META_READ;
			itable_set_attr_at(&fs->itab, i, a, learned);
			return 0;
		}
		if (ret < 0)
			return ret;
		if (need_meta && a->etag[0] && strcmp(fresh.etag, a->etag) != 0) {
			changed = true;
			policy_object_changed(fs->pol, i->key, fresh.etag); /* drops and counts */
		}
		at = tfs_now_ms();
	}
	if (changed) { /* either way, policy found the change and dropped the old chunks */
		file_changed(fs, i->key, fresh.etag, true);
		itable_supersede(&fs->itab, i);
		*superseded = true;
		return learned == 0 ? -ESTALE : 0;
	}
	itable_set_attr_at(&fs->itab, i, &fresh, at);
	*a = fresh;
	if (ms)
		*ms = at;
	return 0;
}

static void b_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tfs_fs *fs = fs_of(req);
	struct tfs_inode *i = itable_get(&fs->itab, ino);
	struct tfs_attr a;
	struct stat st;
	if (!i) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	uint64_t learned;
	bool superseded;
	int ret = current_attr(fs, i, &a, &learned, true, &superseded);
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	fill_stat(fs, i->st_ino, &a, &st);
	/* a directory's attributes are its existence, which lookups in its parent revalidate;
	 * a superseded file's are those of its version, for good (fstat of an open handle) */
	fuse_reply_attr(req, &st, superseded ? 86400.0
			: kernel_timeout(fs, i->key, i->is_dir ? tfs_now_ms() : learned));
	(void)fi;
}

static void b_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tfs_fs *fs = fs_of(req);
	struct tfs_inode *i = itable_get(&fs->itab, ino);
	struct tfs_attr a;
	if (!i) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (i->is_dir) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	/* O_TRUNC (the kernel passes it on: atomic_o_trunc) would change the file too */
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	uint64_t learned;
	bool superseded;
	int ret = current_attr(fs, i, &a, &learned, false, &superseded);
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	if (superseded) {
		/* S3 has a newer version: the kernel looks the name up again and opens that */
		fuse_reply_err(req, ESTALE);
		return;
	}
	struct tfs_file *h = calloc(1, sizeof(*h));
	if (!h || !(h->key = strdup(i->key))) {
		free(h);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	memcpy(h->etag, a.etag, sizeof(h->etag));
	h->size = a.size;
	policy_open_object(fs->pol, h->key, h->etag);
	policy_file_opened(fs->pol, h->key, &a, learned);
	policy_stream_init(&h->stream);
	fi->fh = (uint64_t)(uintptr_t)h;
	/* the page cache is a tier too: kept while the version it was filled with is current */
	fi->keep_cache = !fs->opts->direct_io && itable_keep_cache(&fs->itab, i, a.etag);
	if (fi->keep_cache)
		policy_note_open(fs->pol, h->key, h->etag, h->size);
	fi->direct_io = fs->opts->direct_io;
	handle_add(&fs->handles, &h->h, file_free);
	if (fuse_reply_open(req, fi) == -ENOENT) {
		handle_del(&fs->handles, &h->h);
		file_free(&h->h);
	}
}

static void b_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	struct tfs_fs *fs = fs_of(req);
	struct tfs_file *h = (struct tfs_file *)(uintptr_t)fi->fh;
	struct policy_object o = { .key = h->key, .etag = h->etag, .size = h->size };
	struct policy_read r;

	int ret = policy_read(fs->pol, &o, &h->stream, (uint64_t)off, size, &r);
	if (ret == -ESTALE) {
		/* S3 holds a newer version than the one this file was opened at: this handle can
		 * no longer be served; a new open sees the new version. */
		struct tfs_inode *i = itable_get(&fs->itab, ino);
		if (i)
			itable_expire_attr(&fs->itab, i);
		char kbuf[300];
		tfs_warn("read of '%s' failed: the object changed in S3 since it was opened; "
			 "reopen the file", tfs_printable(h->key, kbuf, sizeof(kbuf)));
		fuse_reply_err(req, EIO);
		return;
	}
	if (ret < 0) {
		fuse_reply_err(req, ret == -ENOENT ? EIO : -ret);
		return;
	}
	fuse_reply_iov(req, r.iov, r.n);
	policy_read_release(fs->pol, &r);
}

static void b_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static void b_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

static void b_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		      struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static void b_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tfs_file *h = (struct tfs_file *)(uintptr_t)fi->fh;
	handle_del(&fs_of(req)->handles, &h->h);
	file_free(&h->h);
	fuse_reply_err(req, 0);
	(void)ino;
}

static void b_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tfs_fs *fs = fs_of(req);
	struct tfs_inode *i = itable_get(&fs->itab, ino);
	if (!i || !i->is_dir) {
		fuse_reply_err(req, i ? ENOTDIR : ENOENT);
		return;
	}
	struct dir_handle *d = calloc(1, sizeof(*d));
	if (!d) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	int ret = policy_list_dir(fs->pol, i->key, &d->listing);
	if (ret < 0) {
		free(d);
		fuse_reply_err(req, -ret);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)d;
	fi->cache_readdir = 0;
	handle_add(&fs->handles, &d->h, dir_free);
	if (fuse_reply_open(req, fi) == -ENOENT) {
		handle_del(&fs->handles, &d->h);
		dir_free(&d->h);
	}
}

/* Room for a key: S3's keys are at most 1024 bytes, and a name at most NAME_MAX. */
#define KEY_BUF (2048 + NAME_MAX + 2)

/* The number tools see for the parent of directory dir (its ".."). */
static uint64_t parent_st_ino(const struct tfs_inode *dir)
{
	if (dir->ino == FUSE_ROOT_ID || dir->parent == FUSE_ROOT_ID)
		return FUSE_ROOT_ID;
	size_t n = strlen(dir->key) - 1; /* the parent's prefix: up to the '/' before the last */
	while (n > 0 && dir->key[n - 1] != '/')
		n--;
	char *pk = strndup(dir->key, n);
	uint64_t ino = pk ? stat_ino(pk, NULL) : FUSE_ROOT_ID;
	free(pk);
	return ino;
}

static void b_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		      struct fuse_file_info *fi, bool plus)
{
	struct tfs_fs *fs = fs_of(req);
	struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
	struct tfs_inode *dir = itable_get(&fs->itab, ino);
	struct tfs_listing *l = d->listing;
	char *buf = malloc(size);
	size_t pos = 0;
	/* .tierfs is reachable by name but not listed, so that cp -r, find, du and rsync of a
	 * mount see exactly the bucket (an S3 prefix of that name is hidden, see below) */
	off_t extra = 0;
	bool root = ino == FUSE_ROOT_ID;
	if (!buf || !dir) {
		free(buf);
		fuse_reply_err(req, buf ? ENOENT : ENOMEM);
		return;
	}
	/* Offset k: 0 is ".", 1 "..", entry i at i + 2; each cookie is the offset of the next. */
	for (off_t k = off; k < (off_t)l->n + 2 + extra; k++) {
		struct stat st = { 0 };
		struct fuse_entry_param e = { 0 };
		const char *name;
		struct tfs_attr a;
		bool entry = k >= 2;
		if (k >= 2 && root && strcmp(l->ents[k - 2].name, CTL_DIR_NAME) == 0) {
			if (!atomic_exchange(&fs->warned_ctl_name, true)) {
				tfs_warn("hiding the S3 prefix '%s%s/': the name is reserved for the "
					 "control directory", dir->key, CTL_DIR_NAME);
			}
			continue;
		}
		if (k < 2) {
			name = k == 0 ? "." : "..";
			st.st_mode = S_IFDIR;
			st.st_ino = k == 0 ? dir->st_ino : parent_st_ino(dir);
		} else {
			name = l->ents[k - 2 - extra].name;
			tfs_cattr_get(&l->ents[k - 2 - extra].attr, &a);
			st.st_mode = a.is_dir ? S_IFDIR : S_IFREG;
			if (!plus) {
				char key[KEY_BUF];
				snprintf(key, sizeof(key), "%s%s%s", dir->key, name, a.is_dir ? "/" : "");
				st.st_ino = stat_ino(key, a.is_dir ? NULL : a.etag);
			}
		}
		size_t need = plus ? fuse_add_direntry_plus(req, NULL, 0, name, NULL, 0)
				   : fuse_add_direntry(req, NULL, 0, name, NULL, 0);
		if (pos + need > size)
			break;
		if (plus) {
			if (entry) {
				enum tfs_seen seen;
				uint64_t learned = l->fetched_ms;
				struct tfs_inode *i;
				if (!a.is_dir) {
					char key[KEY_BUF];
					snprintf(key, sizeof(key), "%s%s", dir->key, name);
					policy_attr_meta(fs->pol, key, &a);
				}
				if (!(i = itable_link(&fs->itab, dir, name, &a, &learned, &seen)))
					break;
				file_seen(fs, i, &a, seen);
				e.ino = i->ino;
				e.attr_timeout = e.entry_timeout = kernel_timeout(fs, i->key, learned);
				fill_stat(fs, i->st_ino, &a, &e.attr);
			} else {
				/* "." and "..": no lookup count is taken for them. */
				e.attr = st;
			}
			pos += fuse_add_direntry_plus(req, buf + pos, size - pos, name, &e, k + 1);
		} else {
			pos += fuse_add_direntry(req, buf + pos, size - pos, name, &st, k + 1);
		}
	}
	fuse_reply_buf(req, buf, pos);
	free(buf);
}

static void b_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
	handle_del(&fs_of(req)->handles, &d->h);
	dir_free(&d->h);
	fuse_reply_err(req, 0);
	(void)ino;
}

static void expire_one(void *ctx, fuse_ino_t ino, const char *name)
{
	struct tfs_fs *fs = ctx;
	if (name)
		notify_inval_entry(&fs->notifier, ino, name);
	else
		notify_inval_inode(&fs->notifier, ino);
}

long fs_expire_matching(struct tfs_fs *fs, bool (*match)(void *ctx, const char *key), void *ctx)
{
	return itable_expire_matching(&fs->itab, match, ctx, expire_one, fs);
}

const struct node_ops bucket_node_ops = {
	.lookup = b_lookup,
	.forget = b_forget,
	.getattr = b_getattr,
	.setattr = b_setattr,
	.open = b_open,
	.read = b_read,
	.write = b_write,
	.flush = b_flush,
	.release = b_release,
	.opendir = b_opendir,
	.readdir = b_readdir,
	.releasedir = b_releasedir,
	.getxattr = bucket_getxattr,
	.listxattr = bucket_listxattr,
	.setxattr = bucket_setxattr,
	.removexattr = bucket_removexattr,
};
