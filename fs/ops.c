/*
 * ops.c - the FUSE low-level operations of a read-only view of a bucket.
 *
 * Replies follow one rule: policy returns 0 or -errno, and fs replies fuse_reply_err(req, -ret).
 * The kernel caches entries and attributes for the metadata TTL; reads always come here
 * (open drops the page cache: keep_cache arrives with the version tracking of the L1 issue).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs_i.h"
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

void handles_init(struct tfs_fs *fs)
{
	pthread_mutex_init(&fs->handles_lock, NULL);
	fs->handles.prev = fs->handles.next = &fs->handles;
}

void handle_add(struct tfs_fs *fs, struct tfs_handle *h, void (*free_fn)(struct tfs_handle *))
{
	h->free_fn = free_fn;
	pthread_mutex_lock(&fs->handles_lock);
	h->next = fs->handles.next;
	h->prev = &fs->handles;
	fs->handles.next->prev = h;
	fs->handles.next = h;
	pthread_mutex_unlock(&fs->handles_lock);
}

void handle_del(struct tfs_fs *fs, struct tfs_handle *h)
{
	pthread_mutex_lock(&fs->handles_lock);
	h->prev->next = h->next;
	h->next->prev = h->prev;
	pthread_mutex_unlock(&fs->handles_lock);
}

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

void handles_free_all(struct tfs_fs *fs)
{
	size_t n = 0;
	while (fs->handles.next != &fs->handles) {
		struct tfs_handle *h = fs->handles.next;
		handle_del(fs, h);
		h->free_fn(h);
		n++;
	}
	if (n)
		tfs_debug("freed %zu handles the kernel did not release before unmounting", n);
	pthread_mutex_destroy(&fs->handles_lock);
}

static struct tfs_fs *fs_of(fuse_req_t req) { return fuse_req_userdata(req); }

static void *notifier_main(void *arg)
{
	struct tfs_notifier *n = arg;
	fuse_ino_t batch[256];
	pthread_mutex_lock(&n->lock);
	for (;;) {
		while (!n->n && !n->stop)
			pthread_cond_wait(&n->cond, &n->lock);
		if (n->stop)
			break;
		int k = n->n;
		memcpy(batch, n->q, (size_t)k * sizeof(batch[0]));
		n->n = 0;
		pthread_mutex_unlock(&n->lock);
		for (int j = 0; j < k; j++) {
			/* Attributes only (offset -1): invalidating pages makes the kernel wait for
			 * page locks that a read in flight holds, and a daemon killed at that moment
			 * can never finish dying (a kill -9 test found it).  The pages go anyway: at
			 * the next open (keep_cache is off for a new version) and, for a file held
			 * open, when the kernel sees the new mtime (auto_inval_data). */
			int r = fuse_lowlevel_notify_inval_inode(n->se, batch[j], -1, 0);
			if (r < 0 && r != -ENOENT)
				tfs_debug("kernel cache invalidation of inode %llu: %s",
					  (unsigned long long)batch[j], strerror(-r));
		}
		pthread_mutex_lock(&n->lock);
	}
	pthread_mutex_unlock(&n->lock);
	return NULL;
}

int notifier_start(struct tfs_notifier *n, struct fuse_session *se)
{
	pthread_mutex_init(&n->lock, NULL);
	pthread_cond_init(&n->cond, NULL);
	n->se = se;
	int r = pthread_create(&n->thread, NULL, notifier_main, n);
	n->started = r == 0;
	return -r;
}

void notifier_stop(struct tfs_notifier *n)
{
	if (!n->started)
		return;
	pthread_mutex_lock(&n->lock);
	n->stop = true;
	pthread_cond_signal(&n->cond);
	pthread_mutex_unlock(&n->lock);
	pthread_join(n->thread, NULL);
	pthread_cond_destroy(&n->cond);
	pthread_mutex_destroy(&n->lock);
	n->started = false;
}

void notify_inval(struct tfs_fs *fs, fuse_ino_t ino)
{
	struct tfs_notifier *n = &fs->notifier;
	if (!n->started)
		return;
	pthread_mutex_lock(&n->lock);
	if (n->n < (int)(sizeof(n->q) / sizeof(n->q[0])))
		n->q[n->n++] = ino;
	pthread_cond_signal(&n->cond);
	pthread_mutex_unlock(&n->lock);
}

/* A file seen with a new ETag: the old version's chunks go, and the kernel's copy too.
 * policy_knows: policy found the change itself (a revalidation), dropped the old chunks and
 * counted it; otherwise (a lookup, a listing) it is told here. */
static void file_changed(struct tfs_fs *fs, struct tfs_inode *i, const char *etag,
			 bool policy_knows)
{
	char kbuf[300];
	tfs_info("'%s' changed in S3 (new ETag %s): cached copies dropped",
		 tfs_printable(i->key, kbuf, sizeof(kbuf)), etag);
	if (!policy_knows)
		policy_object_changed(fs->pol, i->key, etag);
	notify_inval(fs, i->ino);
}

static void fill_stat(const struct tfs_fs *fs, fuse_ino_t ino, const struct tfs_attr *a,
		      struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	if (a->is_dir) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		st->st_mtime = st->st_ctime = st->st_atime = fs->mount_time;
	} else {
		st->st_mode = S_IFREG | 0644;
		st->st_nlink = 1;
		st->st_size = (off_t)a->size;
		st->st_blocks = (blkcnt_t)((a->size + 511) / 512);
		st->st_mtime = st->st_ctime = st->st_atime = a->mtime;
	}
	st->st_blksize = (blksize_t)(fs->opts->chunk_size < (1u << 20) ? fs->opts->chunk_size
								       : (1u << 20));
}

/* How long the kernel may keep what it learns of key: the TTL in force for it. */
static double kernel_timeout(struct tfs_fs *fs, const char *key)
{
	uint64_t ttl = policy_ttl_effective(fs->pol, key, NULL, 0);
	return ttl == TFS_TTL_NEVER || ttl > 365ull * 86400 ? 365.0 * 86400 : (double)ttl;
}

static void reply_entry(fuse_req_t req, struct tfs_fs *fs, struct tfs_inode *i,
			const struct tfs_attr *a)
{
	struct fuse_entry_param e = { 0 };
	e.ino = i->ino;
	e.attr_timeout = kernel_timeout(fs, i->key);
	e.entry_timeout = e.attr_timeout;
	fill_stat(fs, i->ino, a, &e.attr);
	if (fuse_reply_entry(req, &e) == -ENOENT)
		itable_forget(&fs->itab, i->ino, 1); /* the lookup was interrupted */
}

/* Fresh metadata of a known file (a lookup, a listing) is a revalidation too. */
static void file_seen(struct tfs_fs *fs, struct tfs_inode *i, const struct tfs_attr *a,
		      enum tfs_seen seen)
{
	if (seen == SEEN_CHANGED)
		file_changed(fs, i, a->etag, false);
	else if (seen == SEEN_SAME)
		policy_revalidation_kept(fs->pol);
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
	struct tfs_fs *fs = fs_of(req);
	if (ctl_lookup(req, fs, parent, name))
		return;
	struct tfs_inode *dir = itable_get(&fs->itab, parent);
	struct tfs_attr a;
	if (!dir || !dir->is_dir) {
		fuse_reply_err(req, dir ? ENOTDIR : ENOENT);
		return;
	}
	int ret = policy_lookup(fs->pol, dir->key, name, &a);
	if (ret == -ENOENT) {
		/* A negative entry, cached by the kernel for the directory's TTL. */
		struct fuse_entry_param e = { .ino = 0, .entry_timeout = kernel_timeout(fs, dir->key) };
		fuse_reply_entry(req, &e);
		return;
	}
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	enum tfs_seen seen;
	struct tfs_inode *i = itable_link(&fs->itab, dir, name, &a, &seen);
	if (!i) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	file_seen(fs, i, &a, seen);
	reply_entry(req, fs, i, &a);
}

static void tfs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	if (!ctl_is_ino(ino))
		itable_forget(&fs_of(req)->itab, ino, nlookup);
	fuse_reply_none(req);
}

static void tfs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct tfs_fs *fs = fs_of(req);
	for (size_t n = 0; n < count; n++)
		if (!ctl_is_ino(forgets[n].ino))
			itable_forget(&fs->itab, forgets[n].ino, forgets[n].nlookup);
	fuse_reply_none(req);
}

/* The attributes of i, and when they were learned (*ms, may be NULL); for a file whose TTL
 * ran out, revalidated with S3 first (a conditional HEAD: 304 keeps everything cached and
 * restarts the TTL), unless the prefetcher revalidated it since (then what it learned). */
static int current_attr(struct tfs_fs *fs, struct tfs_inode *i, struct tfs_attr *a, uint64_t *ms)
{
	uint64_t learned, at;
	itable_get_attr(&fs->itab, i, a, &learned);
	if (ms)
		*ms = learned;
	if (i->is_dir || policy_fresh(fs->pol, i->key, learned, tfs_now_ms()))
		return 0;
	struct tfs_attr fresh;
	bool changed = false;
	if (a->etag[0] && policy_prefetch_confirmed(fs->pol, i->key, learned, &fresh, &at) == 0) {
		changed = strcmp(fresh.etag, a->etag) != 0; /* the prefetcher revalidated it */
	} else {
		int ret = a->etag[0] ? policy_revalidate(fs->pol, i->key, a, &fresh, &changed)
				     : policy_stat_file(fs->pol, i->key, &fresh);
		if (ret < 0)
			return ret;
		at = tfs_now_ms();
	}
	itable_set_attr_at(&fs->itab, i, &fresh, at);
	if (changed) /* either way, policy found the change and dropped the old chunks */
		file_changed(fs, i, fresh.etag, true);
	*a = fresh;
	if (ms)
		*ms = at;
	return 0;
}

static void tfs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tfs_fs *fs = fs_of(req);
	if (ctl_is_ino(ino)) {
		ctl_getattr(req, fs, ino);
		return;
	}
	struct tfs_inode *i = itable_get(&fs->itab, ino);
	struct tfs_attr a;
	struct stat st;
	if (!i) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	int ret = current_attr(fs, i, &a, NULL);
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	fill_stat(fs, ino, &a, &st);
	fuse_reply_attr(req, &st, kernel_timeout(fs, i->key));
	(void)fi;
}

static void tfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tfs_fs *fs = fs_of(req);
	if (ctl_is_ino(ino)) {
		ctl_open(req, fs, ino, fi);
		return;
	}
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
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EROFS);
		return;
	}
	uint64_t learned;
	int ret = current_attr(fs, i, &a, &learned);
	if (ret < 0) {
		fuse_reply_err(req, -ret);
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
	handle_add(fs, &h->h, file_free);
	if (fuse_reply_open(req, fi) == -ENOENT) {
		handle_del(fs, &h->h);
		file_free(&h->h);
	}
}

static void tfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct tfs_fs *fs = fs_of(req);
	if (ctl_is_ino(ino)) {
		ctl_read(req, ino, size, off, fi);
		return;
	}
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

static void tfs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	if (ctl_is_ino(ino))
		ctl_write(req, fs_of(req), buf, size, fi);
	else
		fuse_reply_err(req, EROFS);
	(void)off;
}

static void tfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ctl_is_ino(ino))
		ctl_flush(req, fs_of(req), fi);
	else
		fuse_reply_err(req, 0);
}

static void tfs_setattr_ops(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			    struct fuse_file_info *fi)
{
	if (ctl_is_ino(ino))
		ctl_setattr(req, fs_of(req), ino, to_set);
	else
		tfs_setattr(req, ino, attr, to_set, fi);
}

static void tfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ctl_is_ino(ino)) {
		ctl_release(req, fs_of(req), fi);
		return;
	}
	struct tfs_file *h = (struct tfs_file *)(uintptr_t)fi->fh;
	handle_del(fs_of(req), &h->h);
	file_free(&h->h);
	fuse_reply_err(req, 0);
	(void)ino;
}

static void tfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tfs_fs *fs = fs_of(req);
	if (ctl_is_ino(ino)) {
		fi->fh = 0;
		fuse_reply_open(req, fi);
		return;
	}
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
	handle_add(fs, &d->h, dir_free);
	if (fuse_reply_open(req, fi) == -ENOENT) {
		handle_del(fs, &d->h);
		dir_free(&d->h);
	}
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct tfs_fs *fs = fs_of(req);
	if (ctl_is_ino(ino)) {
		ctl_readdir(req, fs, size, off, plus);
		return;
	}
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
		const struct tfs_attr *a = NULL;
		if (k >= 2 && root && strcmp(l->ents[k - 2].name, CTL_DIR_NAME) == 0) {
			if (!fs->warned_ctl_name) {
				fs->warned_ctl_name = true;
				tfs_warn("hiding the S3 prefix '%s%s/': the name is reserved for the "
					 "control directory", dir->key, CTL_DIR_NAME);
			}
			continue;
		}
		if (k < 2) {
			name = k == 0 ? "." : "..";
			st.st_mode = S_IFDIR;
			st.st_ino = k == 0 ? ino : dir->parent ? dir->parent : FUSE_ROOT_ID;
		} else {
			name = l->ents[k - 2 - extra].name;
			a = &l->ents[k - 2 - extra].attr;
			st.st_mode = a->is_dir ? S_IFDIR : S_IFREG;
		}
		size_t need = plus ? fuse_add_direntry_plus(req, NULL, 0, name, NULL, 0)
				   : fuse_add_direntry(req, NULL, 0, name, NULL, 0);
		if (pos + need > size)
			break;
		if (plus) {
			if (a) {
				enum tfs_seen seen;
				struct tfs_inode *i = itable_link(&fs->itab, dir, name, a, &seen);
				if (!i)
					break;
				file_seen(fs, i, a, seen);
				e.ino = i->ino;
				e.attr_timeout = e.entry_timeout = kernel_timeout(fs, i->key);
				fill_stat(fs, i->ino, a, &e.attr);
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

static void tfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

static void tfs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			    struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

static void tfs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ctl_is_ino(ino)) {
		fuse_reply_err(req, 0);
		return;
	}
	struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
	handle_del(fs_of(req), &d->h);
	dir_free(&d->h);
	fuse_reply_err(req, 0);
	(void)ino;
}

static void tfs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv = { 0 };
	/* A bucket has no size to speak of: report a large, full, read-only file system. */
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_blocks = 1ull << 40 >> 12;
	sv.f_files = 1ull << 30;
	sv.f_namemax = NAME_MAX;
	fuse_reply_statfs(req, &sv);
	(void)ino;
}

const struct fuse_lowlevel_ops tfs_ops = {
	.init = tfs_init,
	.lookup = tfs_lookup,
	.forget = tfs_forget,
	.forget_multi = tfs_forget_multi,
	.getattr = tfs_getattr,
	.open = tfs_open,
	.read = tfs_read,
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
	.setattr = tfs_setattr_ops,
	.flush = tfs_flush,
	.mknod = tfs_mknod,
	.mkdir = tfs_mkdir,
	.unlink = tfs_unlink,
	.rmdir = tfs_rmdir,
	.symlink = tfs_symlink,
	.rename = tfs_rename,
	.link = tfs_link,
	.create = tfs_create,
	.write = tfs_write,
	.fallocate = tfs_fallocate,
};
