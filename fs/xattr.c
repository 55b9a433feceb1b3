/*
 * xattr.c - the extended attributes of the bucket's inodes.
 *
 *   user.tierfs.ttl            read-write: this path's own TTL setting (files and directories)
 *   user.tierfs.ttl.effective  the TTL in force and the path it comes from
 *   user.tierfs.tier           bytes of the file in L1 and in L2, and its size
 *   user.tierfs.etag           the object version the mount knows
 *   user.tierfs.expires        when what the mount knows of the file stops being fresh
 *
 * A bad value is EINVAL and changes nothing; writing a read-only name is EPERM; only the
 * mount's owner (or root) may change a setting (EACCES).  Other user.tierfs.* names are EINVAL
 * to set and ENODATA to get.  Other namespaces (security.*, system.* ACLs, trusted.*) are not
 * supported (ENOTSUP), so that tools ask once per file system rather than once per file (ls -l
 * remembers it per device).
 *
 * listxattr names only what a user set (user.tierfs.ttl): the other four describe the cache,
 * not the file, and change on their own, so that cp -a, rsync -aX and tar --xattrs would copy
 * them into every copy and a periodic rsync -aX would never settle.  They are read by name.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <time.h>

#include "fs.h"
#include "log.h"
#include "util.h"

#define X_TTL "user.tierfs.ttl"
#define X_EFFECTIVE "user.tierfs.ttl.effective"
#define X_TIER "user.tierfs.tier"
#define X_ETAG "user.tierfs.etag"
#define X_EXPIRES "user.tierfs.expires"
#define X_PREFIX "user.tierfs."
#define TTL_VALUE_MAX 32

static void format_ttl(uint64_t ttl, char *buf, size_t n)
{
	if (ttl == TFS_TTL_NEVER)
		snprintf(buf, n, "never");
	else
		snprintf(buf, n, "%llu", (unsigned long long)ttl);
}

/* The path of key in the mount, for people: "/" + key without the mount's prefix. */
static void mount_path(const struct tfs_fs *fs, const char *key, char *buf, size_t n)
{
	size_t pl = strlen(fs->opts->prefix);
	snprintf(buf, n, "/%s", strlen(key) >= pl ? key + pl : key);
}

static void reply_value(fuse_req_t req, const char *v, size_t size)
{
	size_t len = strlen(v);
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, v, len);
}

static bool is_owner(fuse_req_t req, const struct tfs_fs *fs)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	return c->uid == 0 || c->uid == fs->uid;
}

void bucket_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct tfs_fs *fs = fs_of(req);
	struct tfs_inode *i = itable_get(&fs->itab, ino);
	char v[4400], from[4096], path[4200];
	uint64_t ttl;
	if (!i) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (strncmp(name, "user.", 5) != 0) {
		fuse_reply_err(req, ENOTSUP);
		return;
	}
	if (strcmp(name, X_TTL) == 0) {
		if (policy_ttl_get(fs->pol, i->key, &ttl) < 0) {
			fuse_reply_err(req, ENODATA);
			return;
		}
		format_ttl(ttl, v, sizeof(v));
	} else if (strcmp(name, X_EFFECTIVE) == 0) {
		char t[32];
		format_ttl(policy_ttl_effective(fs->pol, i->key, from, sizeof(from)), t, sizeof(t));
		if (from[0]) {
			mount_path(fs, from, path, sizeof(path));
			snprintf(v, sizeof(v), "%s (from %s)", t, path);
		} else {
			snprintf(v, sizeof(v), "%s (mount default)", t);
		}
	} else if (!i->is_dir && (strcmp(name, X_TIER) == 0 || strcmp(name, X_ETAG) == 0 ||
				  strcmp(name, X_EXPIRES) == 0)) {
		struct tfs_attr a;
		uint64_t ms;
		itable_get_attr(&fs->itab, i, &a, &ms, NULL);
		if (strcmp(name, X_ETAG) == 0) {
			snprintf(v, sizeof(v), "%s", a.etag);
		} else if (strcmp(name, X_TIER) == 0) {
			uint64_t l1, l2;
			policy_tier_usage(fs->pol, i->key, a.etag, a.size, &l1, &l2);
			snprintf(v, sizeof(v), "l1=%llu l2=%llu size=%llu", (unsigned long long)l1,
				 (unsigned long long)l2, (unsigned long long)a.size);
		} else {
			ttl = policy_ttl_effective(fs->pol, i->key, NULL, 0);
			if (ttl == TFS_TTL_NEVER || ms == 0) {
				snprintf(v, sizeof(v), ms ? "never" : "expired");
			} else {
				/* monotonic learned time -> wall clock */
				int64_t left_ms = (int64_t)(ms + ttl * 1000) - (int64_t)tfs_now_ms();
				time_t t = time(NULL) + (time_t)(left_ms / 1000);
				struct tm tm;
				gmtime_r(&t, &tm);
				strftime(v, sizeof(v), "%Y-%m-%dT%H:%M:%SZ", &tm);
				if (left_ms <= 0)
					snprintf(v + strlen(v), sizeof(v) - strlen(v), " (expired)");
			}
		}
	} else {
		fuse_reply_err(req, ENODATA);
		return;
	}
	reply_value(req, v, size);
}

void bucket_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct tfs_fs *fs = fs_of(req);
	struct tfs_inode *i = itable_get(&fs->itab, ino);
	char buf[sizeof(X_TTL)];
	size_t n = 0;
	uint64_t ttl;
	if (!i) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (policy_ttl_get(fs->pol, i->key, &ttl) == 0) { /* listed only where set */
		memcpy(buf, X_TTL, sizeof(X_TTL));
		n = sizeof(X_TTL);
	}
	if (size == 0)
		fuse_reply_xattr(req, n);
	else if (size < n)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, buf, n);
}

static bool is_readonly_name(const char *name)
{
	return strcmp(name, X_EFFECTIVE) == 0 || strcmp(name, X_TIER) == 0 ||
	       strcmp(name, X_ETAG) == 0 || strcmp(name, X_EXPIRES) == 0;
}

void bucket_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		  size_t size, int flags)
{
	struct tfs_fs *fs = fs_of(req);
	struct tfs_inode *i = itable_get(&fs->itab, ino);
	char v[TTL_VALUE_MAX + 1];
	uint64_t ttl, old;
	if (!i) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (strncmp(name, X_PREFIX, strlen(X_PREFIX)) != 0) {
		fuse_reply_err(req, ENOTSUP);
		return;
	}
	if (is_readonly_name(name)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (strcmp(name, X_TTL) != 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (!is_owner(req, fs)) {
		fuse_reply_err(req, EACCES);
		return;
	}
	/* the value is bytes, not a C string: bounded, no NUL inside, a trailing newline allowed */
	if (size == 0 || size > TTL_VALUE_MAX || memchr(value, '\0', size)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	memcpy(v, value, size);
	v[size] = '\0';
	if (v[size - 1] == '\n')
		v[size - 1] = '\0';
	if (tfs_parse_duration(v, &ttl) < 0) {
		char pbuf[100];
		tfs_info("refusing user.tierfs.ttl='%s' on '%s': not a duration (300, 30s, 5m, 1h, "
			 "2d, never)", tfs_printable(v, pbuf, sizeof(pbuf)), i->key);
		fuse_reply_err(req, EINVAL);
		return;
	}
	bool exists = policy_ttl_get(fs->pol, i->key, &old) == 0;
	if ((flags & XATTR_CREATE) && exists) {
		fuse_reply_err(req, EEXIST);
		return;
	}
	if ((flags & XATTR_REPLACE) && !exists) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	int ret = policy_ttl_set(fs->pol, i->key, ttl);
	fuse_reply_err(req, ret < 0 ? -ret : 0);
}

void bucket_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct tfs_fs *fs = fs_of(req);
	struct tfs_inode *i = itable_get(&fs->itab, ino);
	if (!i) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (is_readonly_name(name)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (strcmp(name, X_TTL) != 0) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	if (!is_owner(req, fs)) {
		fuse_reply_err(req, EACCES);
		return;
	}
	int ret = policy_ttl_remove(fs->pol, i->key);
	fuse_reply_err(req, ret < 0 ? -ret : 0);
}
