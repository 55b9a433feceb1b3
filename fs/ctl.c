/*
 * ctl.c - the control directory MOUNT/.tierfs, the FUSE side: statistics to read, commands to
 * write.  What the files say and what the commands mean is the control protocol (ctlproto.h).
 *
 *   stats        the figures for people, one section per tier and one overall
 *   stats.json   the same, machine-readable (field names documented in the README)
 *   metrics      the Prometheus text exposition format
 *   ctl          one command per line: invalidate PATH|GLOB, warm PATH..., demote, purge,
 *                reset-stats (write-only, the mount's owner or root)
 *
 * Reading a statistics file gives one snapshot, taken at open.  Its size is real, so that tools
 * that copy st_size bytes (rsync) copy it all: while a handle is open, the size of the newest
 * open snapshot (what fstat after open must say), else the size of a snapshot rendered for the
 * stat; the kernel keeps no statistics attributes (timeout 0).  A write to ctl returns when its
 * commands have been applied (warm queues its work and returns; its progress is in stats); a bad
 * command fails the write with EINVAL and a log line saying why.  The name .tierfs at the mount's
 * root is reserved: S3 keys under it are hidden, with a warning.  It is reachable by name but not
 * listed, so that tools walking a mount (cp -r, find, du, rsync) see exactly the bucket.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "ctlproto.h"
#include "fs.h"
#include "log.h"
#include "util.h"

enum { CTL_DIR, CTL_STATS, CTL_JSON, CTL_METRICS, CTL_CTL, CTL_N };
#define CTL_BASE ((fuse_ino_t)0xFFFFFFFFFFFFF000ull)

static const struct {
	const char *name;
	mode_t mode;
} ctl_entries[CTL_N] = {
	[CTL_DIR] = { CTL_DIR_NAME, S_IFDIR | 0555 },
	[CTL_STATS] = { "stats", S_IFREG | 0444 },
	[CTL_JSON] = { "stats.json", S_IFREG | 0444 },
	[CTL_METRICS] = { "metrics", S_IFREG | 0444 },
	[CTL_CTL] = { "ctl", S_IFREG | 0200 },
};

struct ctl_handle {
	struct tfs_handle h;    /* first: freed at shutdown if never released */
	int which;
	char *buf;              /* a rendered snapshot */
	size_t len;
	struct ctl_lines lines; /* what was written to ctl and not yet run */
};

_Static_assert(CTL_N <= sizeof(((struct tfs_fs *)0)->ctl_len) / sizeof(size_t),
	       "struct tfs_fs has a statistics slot for every kind of control file");

bool ctl_is_ino(fuse_ino_t ino) { return ino >= CTL_BASE && ino < CTL_BASE + CTL_N; }
static int which_of(fuse_ino_t ino) { return (int)(ino - CTL_BASE); }

static void render(struct tfs_fs *fs, int which, FILE *f);

static bool is_stats(int which)
{
	return which == CTL_STATS || which == CTL_JSON || which == CTL_METRICS;
}

/* The size a statistics file reports (see the top of the file). */
static off_t stats_size(struct tfs_fs *fs, int which)
{
	if (atomic_load(&fs->ctl_open[which]) > 0)
		return (off_t)atomic_load(&fs->ctl_len[which]);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return 0;
	render(fs, which, f);
	fclose(f);
	free(buf);
	return (off_t)len;
}

static double attr_timeout(int which) { return is_stats(which) ? 0.0 : 1.0; }

static void ctl_stat(struct tfs_fs *fs, int which, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	if (is_stats(which))
		st->st_size = stats_size(fs, which);
	st->st_ino = CTL_BASE + (fuse_ino_t)which;
	st->st_mode = ctl_entries[which].mode;
	st->st_nlink = which == CTL_DIR ? 2 : 1;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_mtime = st->st_ctime = st->st_atime = fs->mount_time;
}

/* A lookup in .tierfs, or of .tierfs itself in the root (ops.c routes it here). */
static void ctl_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	int which = -1;
	if (parent == FUSE_ROOT_ID && strcmp(name, CTL_DIR_NAME) == 0)
		which = CTL_DIR;
	else if (parent == CTL_BASE + CTL_DIR)
		for (int k = 1; k < CTL_N; k++)
			if (strcmp(name, ctl_entries[k].name) == 0)
				which = k;
	if (which < 0) {
		fuse_reply_err(req, parent == CTL_BASE + CTL_DIR ? ENOENT : ENOTDIR);
		return;
	}
	struct fuse_entry_param e = { .ino = CTL_BASE + (fuse_ino_t)which };
	e.entry_timeout = 1.0;
	e.attr_timeout = attr_timeout(which);
	ctl_stat(fs_of(req), which, &e.attr);
	fuse_reply_entry(req, &e);
}

static void ctl_forget(struct tfs_fs *fs, fuse_ino_t ino, uint64_t nlookup) {}

static void ctl_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	ctl_stat(fs_of(req), which_of(ino), &st);
	fuse_reply_attr(req, &st, attr_timeout(which_of(ino)));
}

static void ctl_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			struct fuse_file_info *fi)
{
	/* "echo cmd > ctl" opens with O_TRUNC: truncating ctl is allowed and does nothing */
	if (which_of(ino) != CTL_CTL || (to_set & ~FUSE_SET_ATTR_SIZE)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	ctl_getattr(req, ino, fi);
}

/* Appends one dirent for an entry of .tierfs. */
static size_t ctl_dirent(fuse_req_t req, struct tfs_fs *fs, int which, char *buf, size_t size,
			 off_t next, bool plus)
{
	struct fuse_entry_param e = { 0 };
	ctl_stat(fs, which, &e.attr);
	if (plus) {
		e.ino = CTL_BASE + (fuse_ino_t)which;
		e.entry_timeout = 1.0;
		e.attr_timeout = attr_timeout(which);
		return fuse_add_direntry_plus(req, buf, size, ctl_entries[which].name, &e, next);
	}
	return fuse_add_direntry(req, buf, size, ctl_entries[which].name, &e.attr, next);
}

static void ctl_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi, bool plus)
{
	struct tfs_fs *fs = fs_of(req);
	char *buf = malloc(size);
	size_t pos = 0;
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (off_t k = off; k < CTL_N + 1; k++) {
		size_t need;
		if (k < 2) {
			struct stat st = { .st_ino = k == 0 ? CTL_BASE : FUSE_ROOT_ID,
					   .st_mode = S_IFDIR };
			const char *n = k == 0 ? "." : "..";
			struct fuse_entry_param e = { .attr = st };
			need = plus ? fuse_add_direntry_plus(req, NULL, 0, n, NULL, 0)
				    : fuse_add_direntry(req, NULL, 0, n, NULL, 0);
			if (pos + need > size)
				break;
			pos += plus ? fuse_add_direntry_plus(req, buf + pos, size - pos, n, &e, k + 1)
				    : fuse_add_direntry(req, buf + pos, size - pos, n, &st, k + 1);
			continue;
		}
		int which = (int)k - 1; /* 2.. -> CTL_STATS.. */
		need = plus ? fuse_add_direntry_plus(req, NULL, 0, ctl_entries[which].name, NULL, 0)
			    : fuse_add_direntry(req, NULL, 0, ctl_entries[which].name, NULL, 0);
		if (pos + need > size)
			break;
		pos += ctl_dirent(req, fs, which, buf + pos, size - pos, k + 1, plus);
	}
	fuse_reply_buf(req, buf, pos);
	free(buf);
}

/* ---- commands ---- */

static void log_refusal(const char *why, const char *line)
{
	char buf[200];
	tfs_warn("ctl: refusing '%s': %s", tfs_printable(line, buf, sizeof(buf)), why);
}

static bool match_key(void *m, const char *key) { return policy_match_key(m, key); }

/* The kernel forgets what it knows of what matches (attributes, entries, absent names). */
static void expire_in_kernel(struct tfs_fs *fs, struct policy_match *m, long *n)
{
	*n = fs_expire_matching(fs, m ? match_key : NULL, m);
	if (*n < 0)
		tfs_warn("ctl: the kernel's caches could not be told: %s", strerror((int)-*n));
}

static int cmd_invalidate(struct tfs_fs *fs, const char *arg)
{
	struct policy_match m;
	uint64_t chunks = 0;
	long n;
	int ret = policy_match_init(fs->pol, arg, &m);
	if (ret < 0)
		return ret;
	ret = policy_invalidate(fs->pol, &m, &chunks);
	expire_in_kernel(fs, &m, &n);
	char buf[300];
	tfs_info("ctl: invalidate '%s': %llu chunks dropped, %ld inodes expired%s",
		 tfs_printable(arg, buf, sizeof(buf)), (unsigned long long)chunks, n,
		 ret < 0 ? " (the cache reported an error)" : "");
	policy_match_free(&m);
	return ret;
}

static int cmd_warm(struct tfs_fs *fs, const char *arg)
{
	char *rel = strdup(arg), *r;
	int ret = 0;
	if (!rel)
		return -ENOMEM;
	for (r = rel; *r == '/'; r++)
		;
	size_t n = strlen(r);
	while (n && r[n - 1] == '/')
		r[--n] = '\0';
	bool is_dir = n == 0;
	if (!is_dir) {
		/* what is it: ask the parent */
		char *slash = strrchr(r, '/');
		char *parent = slash ? tfs_strdup_printf("%s%.*s/", fs->opts->prefix, (int)(slash - r), r)
				     : strdup(fs->opts->prefix);
		struct tfs_attr a;
		ret = parent ? policy_lookup(fs->pol, parent, slash ? slash + 1 : r, &a, NULL)
			     : -ENOMEM;
		free(parent);
		if (ret == 0)
			is_dir = a.is_dir;
	}
	if (ret == 0) {
		char *key = tfs_strdup_printf("%s%s%s", fs->opts->prefix, r, is_dir && n ? "/" : "");
		ret = key ? policy_warm(fs->pol, key, is_dir) : -ENOMEM;
		char buf[300];
		if (ret == 0)
			tfs_info("ctl: warm '%s' queued", tfs_printable(key, buf, sizeof(buf)));
		free(key);
	}
	free(rel);
	return ret;
}

/* Carries out one command line; 0 or -errno (EINVAL for anything malformed, logged). */
static int run_command(void *ctx, char *line)
{
	struct tfs_fs *fs = ctx;
	char copy[256];
	const char *why = NULL;
	struct ctl_cmd cmd;
	snprintf(copy, sizeof(copy), "%s", line);
	if (ctl_parse(line, &cmd, &why) < 0) {
		log_refusal(why, copy);
		return -EINVAL;
	}
	int ret = 0;
	uint64_t k = 0;
	long n;
	switch (cmd.verb) {
	case CTL_NOP:
		break;
	case CTL_INVALIDATE:
		ret = cmd_invalidate(fs, cmd.args[0]);
		break;
	case CTL_WARM:
		for (int i = 0; i < cmd.nargs && ret == 0; i++)
			if ((ret = cmd_warm(fs, cmd.args[i])) < 0)
				log_refusal(ret == -ENOENT ? "no such path" : strerror(-ret), copy);
		break;
	case CTL_DEMOTE:
		tfs_info("ctl: demote: %llu chunks left L1",
			 (unsigned long long)policy_demote(fs->pol));
		break;
	case CTL_PURGE:
		ret = policy_purge(fs->pol, &k);
		expire_in_kernel(fs, NULL, &n);
		tfs_info("ctl: purge: %llu chunks dropped%s", (unsigned long long)k,
			 ret < 0 ? " (the cache reported an error)" : "");
		break;
	case CTL_RESET_STATS:
		policy_reset_stats(fs->pol);
		tfs_info("ctl: statistics reset");
		break;
	}
	return ret;
}

/* ---- file operations ---- */

static void ctl_free(struct tfs_handle *hh)
{
	struct ctl_handle *h = (struct ctl_handle *)hh;
	ctl_lines_free(&h->lines);
	free(h->buf);
	free(h);
}

static void render(struct tfs_fs *fs, int which, FILE *f)
{
	struct policy_snapshot snap;
	const struct policy_config *pc = policy_config(fs->pol);
	struct ctl_info in = { .version = TIERFS_VERSION, .bucket = fs->opts->bucket,
			       .prefix = fs->opts->prefix, .prefetch = pc->prefetch,
			       .prefetch_budget = pc->prefetch_budget };
	policy_snapshot(fs->pol, &snap);
	if (which == CTL_STATS)
		ctl_render_text(&in, &snap, f);
	else if (which == CTL_JSON)
		ctl_render_json(&in, &snap, f);
	else
		ctl_render_metrics(&in, &snap, f);
}

static void ctl_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tfs_fs *fs = fs_of(req);
	int which = which_of(ino);
	struct ctl_handle *h = calloc(1, sizeof(*h));
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	h->which = which;
	if (which == CTL_CTL) {
		const struct fuse_ctx *c = fuse_req_ctx(req);
		if ((fi->flags & O_ACCMODE) == O_RDONLY || (c->uid != 0 && c->uid != fs->uid)) {
			free(h);
			fuse_reply_err(req, EACCES);
			return;
		}
	} else if (which == CTL_DIR) {
		free(h);
		fuse_reply_err(req, EISDIR);
		return;
	} else {
		if ((fi->flags & O_ACCMODE) != O_RDONLY) {
			free(h);
			fuse_reply_err(req, EACCES);
			return;
		}
		FILE *f = open_memstream(&h->buf, &h->len);
		if (!f) {
			free(h);
			fuse_reply_err(req, ENOMEM);
			return;
		}
		render(fs, which, f);
		fclose(f);
		atomic_store(&fs->ctl_len[which], h->len);
		atomic_fetch_add(&fs->ctl_open[which], 1);
	}
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->direct_io = 1; /* sizes are not known ahead: every read comes here */
	fi->nonseekable = which == CTL_CTL;
	handle_add(&fs->handles, &h->h, ctl_free);
	if (fuse_reply_open(req, fi) == -ENOENT) {
		handle_del(&fs->handles, &h->h);
		ctl_free(&h->h);
	}
}

static void ctl_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct ctl_handle *h = (struct ctl_handle *)(uintptr_t)fi->fh;
	if (h->which == CTL_CTL || (size_t)off >= h->len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	size_t n = h->len - (size_t)off < size ? h->len - (size_t)off : size;
	/* Reply from a copy: the reader may close the file (and RELEASE free h) as soon as the
	 * kernel has the data, before fuse_reply_buf returns here (ASan saw it, in CI). */
	char *copy = malloc(n ? n : 1);
	if (!copy) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	memcpy(copy, h->buf + off, n);
	fuse_reply_buf(req, copy, n);
	free(copy);
}

static int feed(struct tfs_fs *fs, struct ctl_handle *h, const char *data, size_t size,
		bool flush)
{
	int ret = ctl_lines_feed(&h->lines, data, size, flush, run_command, fs);
	if (ret == -EMSGSIZE) {
		log_refusal("line longer than 64 KiB", "(long line)");
		ret = -EINVAL;
	}
	return ret;
}

static void ctl_write(fuse_req_t req, fuse_ino_t ino, const char *data, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	struct ctl_handle *h = (struct ctl_handle *)(uintptr_t)fi->fh;
	if (h->which != CTL_CTL) {
		fuse_reply_err(req, EBADF);
		return;
	}
	if (memchr(data, '\0', size)) {
		log_refusal("binary data", "(NUL bytes)");
		fuse_reply_err(req, EINVAL);
		return;
	}
	int ret = feed(fs_of(req), h, data, size, false);
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_write(req, size);
}

static void ctl_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ctl_handle *h = (struct ctl_handle *)(uintptr_t)fi->fh;
	int ret = h->which == CTL_CTL && h->lines.len ? feed(fs_of(req), h, "", 0, true) : 0;
	fuse_reply_err(req, ret < 0 ? -ret : 0);
}

static void ctl_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ctl_handle *h = (struct ctl_handle *)(uintptr_t)fi->fh;
	if (is_stats(h->which))
		atomic_fetch_sub(&fs_of(req)->ctl_open[h->which], 1);
	handle_del(&fs_of(req)->handles, &h->h);
	ctl_free(&h->h);
	fuse_reply_err(req, 0);
}

static void ctl_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (which_of(ino) != CTL_DIR) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	fi->fh = 0;
	fuse_reply_open(req, fi);
}

static void ctl_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

static void ctl_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	fuse_reply_err(req, strncmp(name, "user.", 5) == 0 ? ENODATA : ENOTSUP);
}

static void ctl_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, 0);
	else
		fuse_reply_buf(req, NULL, 0); /* an empty list, not a size */
}

static void ctl_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			 size_t size, int flags)
{
	fuse_reply_err(req, ENOTSUP);
}

static void ctl_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	fuse_reply_err(req, ENODATA);
}

const struct node_ops ctl_node_ops = {
	.lookup = ctl_lookup,
	.forget = ctl_forget,
	.getattr = ctl_getattr,
	.setattr = ctl_setattr,
	.open = ctl_open,
	.read = ctl_read,
	.write = ctl_write,
	.flush = ctl_flush,
	.release = ctl_release,
	.opendir = ctl_opendir,
	.readdir = ctl_readdir,
	.releasedir = ctl_releasedir,
	.getxattr = ctl_getxattr,
	.listxattr = ctl_listxattr,
	.setxattr = ctl_setxattr,
	.removexattr = ctl_removexattr,
};
