/*
 * unit_inode.c - the inode table (fs/inode.c) driven directly: names and keys, versions,
 * forgetting, the page-cache version, and its buckets growing under many inodes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "inode.h"
#include "log.h"

static struct tfs_attr file_attr(const char *etag, uint64_t size)
{
	struct tfs_attr a = { .size = size, .mtime = 1795280544 };
	snprintf(a.etag, sizeof(a.etag), "%s", etag);
	return a;
}

static const char *E1 = "\"0123456789abcdef0123456789abcdef\"";
static const char *E2 = "\"fedcba9876543210fedcba9876543210-2\"";

static void test_names_and_versions(void)
{
	struct tfs_itable t;
	CHECK(itable_init(&t, "pre/") == 0);
	struct tfs_inode *root = itable_get(&t, FUSE_ROOT_ID);
	CHECK(root && strcmp(root->key, "pre/") == 0 && root->is_dir);

	struct tfs_attr d = { .is_dir = true };
	uint64_t ms = 100;
	enum tfs_seen seen;
	struct tfs_inode *dir = itable_link(&t, root, "dir", &d, &ms, &seen);
	CHECK(dir && dir->is_dir && strcmp(dir->key, "pre/dir/") == 0 && seen == SEEN_NEW);

	struct tfs_attr a = file_attr(E1, 5);
	ms = 200;
	struct tfs_inode *f = itable_link(&t, dir, "f.txt", &a, &ms, &seen);
	CHECK(f && !f->is_dir && strcmp(f->key, "pre/dir/f.txt") == 0 && seen == SEEN_NEW);
	CHECK(f && f->parent == dir->ino && f->st_ino > 1 && f->st_ino != dir->st_ino);

	/* the same version again: the same inode; learned later, it counts as a revalidation */
	a = file_attr(E1, 5);
	ms = 200;
	CHECK(itable_link(&t, dir, "f.txt", &a, &ms, &seen) == f && seen == SEEN_AGAIN);
	ms = 300;
	CHECK(itable_link(&t, dir, "f.txt", &a, &ms, &seen) == f && seen == SEEN_SAME);
	CHECK(ms == 300 && strcmp(a.etag, E1) == 0 && a.size == 5);

	/* user metadata read from the headers stays when a listing (none) says the same version */
	struct tfs_attr h = file_attr(E1, 5);
	h.meta = TFS_META_READ | TFS_META_MODE;
	h.mode = 0600;
	itable_set_attr_at(&t, f, &h, 400);
	a = file_attr(E1, 5);
	ms = 500;
	CHECK(itable_link(&t, dir, "f.txt", &a, &ms, &seen) == f);
	CHECK(a.mode == 0600 && (a.meta & TFS_META_READ) && ms == 500);
	struct tfs_attr got;
	uint64_t at;
	bool current;
	itable_get_attr(&t, f, &got, &at, &current);
	CHECK(got.mode == 0600 && at == 500 && current && strcmp(got.etag, E1) == 0);

	/* what was learned earlier never replaces what the table knows */
	a = file_attr(E1, 99);
	ms = 450;
	CHECK(itable_link(&t, dir, "f.txt", &a, &ms, &seen) == f && a.size == 5 && ms == 500);

	/* a new version: a new inode at the name; the old one keeps its version */
	a = file_attr(E2, 7);
	ms = 600;
	struct tfs_inode *f2 = itable_link(&t, dir, "f.txt", &a, &ms, &seen);
	CHECK(f2 && f2 != f && seen == SEEN_CHANGED && f2->st_ino != f->st_ino);
	itable_get_attr(&t, f, &got, &at, &current);
	CHECK(!current && strcmp(got.etag, E1) == 0 && got.size == 5);
	CHECK(!itable_supersede(&t, f));

	/* a file that became a directory: a new inode */
	struct tfs_inode *fd = itable_link(&t, dir, "f.txt", &d, &ms, &seen);
	CHECK(fd && fd != f2 && fd->is_dir && strcmp(fd->key, "pre/dir/f.txt/") == 0);

	/* the page cache is kept only at the version it was filled with */
	CHECK(!itable_keep_cache(&t, f2, E2));
	CHECK(itable_keep_cache(&t, f2, E2));
	CHECK(!itable_keep_cache(&t, f2, E1));
	CHECK(!itable_keep_cache(&t, f2, ""));
	CHECK(!itable_keep_cache(&t, f2, ""));
	CHECK(!itable_keep_cache(&t, f2, E2) && itable_keep_cache(&t, f2, E2));

	/* forgetting: the inode leaves when its lookups are all forgotten */
	fuse_ino_t ino = f->ino;
	itable_forget(&t, ino, 4);
	CHECK(itable_get(&t, ino) == f);
	itable_forget(&t, ino, 1);
	CHECK(itable_get(&t, ino) == NULL);
	itable_forget(&t, FUSE_ROOT_ID, 1000);
	CHECK(itable_get(&t, FUSE_ROOT_ID) == root);
	itable_destroy(&t);
}

static void noop(void *ctx, fuse_ino_t ino, const char *name)
{
	(*(long *)ctx)++;
}

/* 200,000 inodes in 200 directories: the buckets grow, and every inode is found by number and
 * by name afterwards, and leaves when forgotten. */
static void test_many(void)
{
	enum { DIRS = 200, PER = 1000 };
	struct tfs_itable t;
	CHECK(itable_init(&t, "") == 0);
	struct tfs_inode *root = itable_get(&t, FUSE_ROOT_ID), *dirs[DIRS];
	fuse_ino_t *inos = malloc(sizeof(*inos) * DIRS * PER);
	struct tfs_attr d = { .is_dir = true };
	uint64_t ms = 1;
	char name[32], etag[64];
	for (int k = 0; k < DIRS; k++) {
		snprintf(name, sizeof(name), "d%03d", k);
		dirs[k] = itable_link(&t, root, name, &d, &ms, NULL);
	}
	size_t before = t.nbuckets;
	bool ok = true;
	for (int i = 0; i < DIRS * PER; i++) {
		snprintf(name, sizeof(name), "k%07d", i);
		snprintf(etag, sizeof(etag), "\"%032x\"", i);
		struct tfs_attr a = file_attr(etag, (uint64_t)i);
		ms = 1;
		struct tfs_inode *f = itable_link(&t, dirs[i % DIRS], name, &a, &ms, NULL);
		ok &= f != NULL;
		inos[i] = f ? f->ino : 0;
	}
	CHECK(ok);
	CHECK(t.nbuckets > before && t.count <= 2 * t.nbuckets);
	for (int i = 0; i < DIRS * PER; i++) {
		struct tfs_inode *f = itable_get(&t, inos[i]);
		char key[64];
		snprintf(key, sizeof(key), "d%03d/k%07d", i % DIRS, i);
		snprintf(name, sizeof(name), "k%07d", i);
		snprintf(etag, sizeof(etag), "\"%032x\"", i);
		struct tfs_attr a = file_attr(etag, (uint64_t)i);
		enum tfs_seen seen;
		ms = 1;
		ok &= f && strcmp(f->key, key) == 0 &&
		      itable_link(&t, dirs[i % DIRS], name, &a, &ms, &seen) == f &&
		      seen == SEEN_AGAIN && a.size == (uint64_t)i && strcmp(a.etag, etag) == 0;
	}
	CHECK(ok);
	long n = 0;
	CHECK(itable_expire_matching(&t, NULL, NULL, noop, &n) == DIRS * PER + DIRS &&
	      n == DIRS * PER + DIRS);
	for (int i = 0; i < DIRS * PER; i++)
		itable_forget(&t, inos[i], 2);
	for (int i = 0; i < DIRS * PER; i += 997)
		ok &= itable_get(&t, inos[i]) == NULL;
	CHECK(ok && t.count == DIRS + 1);
	free(inos);
	itable_destroy(&t);
}

int main(void)
{
	tfs_log_set_level(TFS_LOG_ERROR);
	test_names_and_versions();
	test_many();
	return CHECK_SUMMARY();
}
