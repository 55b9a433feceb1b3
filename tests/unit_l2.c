/*
 * unit_l2.c - the L2 store and tier, driven directly (no mount, no S3): put/get round trips,
 * corruption caught and dropped, versions dropped, slots reused, orphaned slots reclaimed, the
 * eviction order's state across a restart, a format from another chunk size emptied, reads of
 * part of a chunk (checksums per block), reads racing a writer that stores the same chunks
 * again (a replaced slot is a retry, never a drop), a store opened before its index is read
 * (deferred), a cache of format 1 emptied, and opening a store whose index holds 100,000
 * chunks (the time it takes is printed, not asserted), and the L2 side of prefetch: a
 * prefetched fill displaces only HIR chunks (evict.h), unread prefetches are used by a read or
 * counted wasted when evicted.  The order itself: unit_evict.c.
 *
 * usage: unit_l2 [--startup-chunks N]     (or $TIERFS_UNIT_STARTUP_CHUNKS; default 100000)
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <rocksdb/c.h>
#include <xxhash.h>

#include "check.h"
#include "log.h"
#include "l2.h"
#include "ssd.h"
#include "util.h"

#define CS 65536

static char *mkdtemp_dir(void)
{
	char *d = strdup("/tmp/tierfs-unit-XXXXXX");
	return mkdtemp(d);
}

static void rm_rf(const char *d)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", d);
}

static void fill(char *buf, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)(seed * 31 + i * 7);
}

static void test_store(void)
{
	char *dir = mkdtemp_dir(), path[600];
	struct ssd_store *s;
	static char data[CS], out[CS];
	size_t len;
	struct ssd_id a, b, a2;

	CHECK(ssd_open(dir, CS, &s) == 0);
	struct ssd_store *other;
	CHECK(ssd_open(dir, CS, &other) == -EBUSY); /* one tierfs per cache directory */

	ssd_id_init(&a, "dir/obj", "\"v1\"", 0);
	ssd_id_init(&b, "dir/obj", "\"v1\"", 1);
	ssd_id_init(&a2, "dir/obj", "\"v2\"", 0);
	fill(data, CS, 1);
	CHECK(ssd_get(s, &a, out, CS, &len, NULL) == -ENOENT);
	CHECK(ssd_put(s, &a, data, CS, NULL, 1, 1, NULL) == 0);
	CHECK(ssd_get(s, &a, out, CS, &len, NULL) == 0 && len == CS && memcmp(out, data, CS) == 0);
	fill(data, 1000, 2);
	CHECK(ssd_put(s, &b, data, 1000, NULL, 1, 1, NULL) == 0);
	CHECK(ssd_get(s, &b, out, CS, &len, NULL) == 0 && len == 1000 &&
	      memcmp(out, data, 1000) == 0);
	CHECK(ssd_get(s, &a2, out, CS, &len, NULL) == -ENOENT); /* another version: a miss */
	CHECK(ssd_put(s, &a2, data, 1000, NULL, 1, 1, NULL) == 0);

	/* checksums the caller took as the bytes arrived: right ones are kept, a wrong one is
	 * caught at the first read of its block like any corruption (a miss), never served */
	struct ssd_id p1, p2;
	ssd_id_init(&p1, "presummed", "\"e\"", 0);
	ssd_id_init(&p2, "presummed", "\"e\"", 1);
	fill(data, CS, 7);
	uint64_t good[SSD_MAX_BLOCKS], bad[SSD_MAX_BLOCKS];
	CHECK(ssd_block_size(CS) == 16384);
	ssd_block_sums(CS, data, CS, good);
	CHECK(good[0] == XXH3_64bits(data, 16384) && good[3] == XXH3_64bits(data + 49152, 16384));
	memcpy(bad, good, sizeof(bad));
	bad[2] ^= 1;
	CHECK(ssd_put(s, &p1, data, CS, good, 1, 1, NULL) == 0);
	CHECK(ssd_get(s, &p1, out, CS, &len, NULL) == 0 && len == CS && memcmp(out, data, CS) == 0);
	CHECK(ssd_put(s, &p2, data, CS, bad, 1, 1, NULL) == 0);
	CHECK(ssd_read_part(s, &p2, 100, 4096, out, &len, NULL) == 0 && len == 4096 &&
	      memcmp(out, data + 100, 4096) == 0);  /* block 0 is right */
	CHECK(ssd_read_part(s, &p2, 32768, 10, out, &len, NULL) == -ENOENT); /* block 2 */
	CHECK(ssd_get(s, &p2, out, CS, &len, NULL) == -ENOENT); /* dropped */

	/* a new version: the old one's chunks go */
	CHECK(ssd_remove_other_versions(s, "dir/obj", "\"v2\"", NULL, NULL) == 0);
	CHECK(ssd_get(s, &a, out, CS, &len, NULL) == -ENOENT);
	CHECK(ssd_get(s, &b, out, CS, &len, NULL) == -ENOENT);
	CHECK(ssd_get(s, &a2, out, CS, &len, NULL) == 0 && len == 1000);

	/* corruption of the payload and of the header: dropped, counted, a miss */
	struct ssd_id c1, c2;
	ssd_id_init(&c1, "x", "\"e\"", 0);
	ssd_id_init(&c2, "y", "\"e\"", 0);
	fill(data, CS, 3);
	CHECK(ssd_put(s, &c1, data, CS, NULL, 1, 1, NULL) == 0);
	CHECK(ssd_put(s, &c2, data, CS, NULL, 1, 1, NULL) == 0);
	snprintf(path, sizeof(path), "%s/slab", dir);
	int fd = open(path, O_RDWR);
	CHECK(fd >= 0);
	/* find the slots by scanning for the header of each */
	uint64_t slot_size = 4096 + CS, nslots = (uint64_t)lseek(fd, 0, SEEK_END) / slot_size + 1;
	int corrupted = 0;
	for (uint64_t i = 0; i < nslots; i++) {
		char hdr[64];
		if (pread(fd, hdr, sizeof(hdr), (off_t)(i * slot_size)) != sizeof(hdr))
			continue;
		if (hdr[40] == 'x' && hdr[32] == 1) {        /* c1: flip a payload byte */
			char byte;
			CHECK(pread(fd, &byte, 1, (off_t)(i * slot_size + 4096 + 500)) == 1);
			byte ^= 0x55;
			CHECK(pwrite(fd, &byte, 1, (off_t)(i * slot_size + 4096 + 500)) == 1);
			corrupted++;
		} else if (hdr[40] == 'y' && hdr[32] == 1) { /* c2: flip a header byte */
			hdr[20] ^= 1;
			CHECK(pwrite(fd, hdr, sizeof(hdr), (off_t)(i * slot_size)) == sizeof(hdr));
			corrupted++;
		}
	}
	close(fd);
	CHECK(corrupted == 2);
	uint64_t before = ssd_stats(s)->checksum_failures;
	CHECK(ssd_get(s, &c1, out, CS, &len, NULL) == -ENOENT);
	CHECK(ssd_get(s, &c2, out, CS, &len, NULL) == -ENOENT);
	CHECK(ssd_stats(s)->checksum_failures == before + 2);
	CHECK(ssd_get(s, &c1, out, CS, &len, NULL) == -ENOENT); /* and gone for good */

	/* slots are reused: filling and removing many times does not grow the slab */
	for (int round = 0; round < 5; round++) {
		struct ssd_id ids[8];
		char keys[8][16];
		for (int i = 0; i < 8; i++) {
			snprintf(keys[i], sizeof(keys[i]), "k%d", i);
			ssd_id_init(&ids[i], keys[i], "\"e\"", (uint64_t)round);
			CHECK(ssd_put(s, &ids[i], data, CS, NULL, 1, 1, NULL) == 0);
		}
		for (int i = 0; i < 8; i++)
			CHECK(ssd_remove(s, ids[i].ikey) == 0);
	}
	struct stat st;
	CHECK(stat(path, &st) == 0 && (uint64_t)st.st_size <= 12 * slot_size);
	CHECK(ssd_disk_bytes(s) <= 4 * slot_size); /* holes punched: only a2 and b remain */
	ssd_close(s);

	/* a slot written but never indexed (a crash before the index write) is reclaimed */
	CHECK(ssd_open(dir, CS, &s) == 0);
	fd = open(path, O_RDWR);
	CHECK(fd >= 0 && pwrite(fd, data, CS, (off_t)(20 * slot_size)) == CS);
	close(fd);
	ssd_close(s);
	CHECK(ssd_open(dir, CS, &s) == 0);
	uint64_t disk_before = ssd_disk_bytes(s);
	CHECK(ssd_reclaim_orphans(s, NULL) >= 1);
	CHECK(ssd_disk_bytes(s) + CS <= disk_before);
	CHECK(ssd_get(s, &a2, out, CS, &len, NULL) == 0 && len == 1000); /* live data kept */

	/* metadata records */
	void *v;
	size_t vl;
	CHECK(ssd_meta_put(s, 'o', "some/key", "\"etag\"", 6) == 0);
	CHECK(ssd_meta_get(s, 'o', "some/key", &v, &vl) == 0 && vl == 6 && memcmp(v, "\"etag\"", 6) == 0);
	free(v);
	CHECK(ssd_meta_get(s, 'o', "other", &v, &vl) == -ENOENT);
	ssd_close(s);

	/* another chunk size: the chunks cannot be reused, the store is emptied */
	CHECK(ssd_open(dir, 2 * CS, &s) == 0);
	CHECK(ssd_get(s, &a2, out, CS, &len, NULL) == -ENOENT);
	ssd_close(s);
	rm_rf(dir);
	free(dir);
}

/* The byte at off of the slot that holds key (found by its header), XORed with x; 1 when found. */
static int flip_in_slot(const char *dir, uint64_t chunk_size, const char *key, uint64_t off,
			unsigned char x)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/slab", dir);
	int fd = open(path, O_RDWR), found = 0;
	uint64_t slot_size = 4096 + chunk_size, nslots;
	if (fd < 0)
		return 0;
	nslots = (uint64_t)lseek(fd, 0, SEEK_END) / slot_size + 1;
	size_t kl = strlen(key);
	for (uint64_t i = 0; i < nslots && !found; i++) {
		char hdr[64];
		unsigned char b;
		if (pread(fd, hdr, sizeof(hdr), (off_t)(i * slot_size)) != sizeof(hdr) ||
		    (unsigned char)hdr[32] != kl || memcmp(hdr + 40, key, kl) != 0)
			continue;
		if (pread(fd, &b, 1, (off_t)(i * slot_size + off)) == 1) {
			b ^= x;
			found = pwrite(fd, &b, 1, (off_t)(i * slot_size + off)) == 1;
		}
	}
	close(fd);
	return found;
}

/* Reads of part of a chunk: the right bytes for every range (within a block, across blocks, to
 * the end, past it, in a short last chunk); a flipped byte is caught by the read that covers
 * its block (dropped, counted, a miss), and not by one that does not need that block. */
static void test_parts(void)
{
	char *dir = mkdtemp_dir();
	struct ssd_store *s;
	static char data[CS], out[CS];
	size_t got;
	struct ssd_id full, shrt;
	CHECK(ssd_open(dir, CS, &s) == 0);
	ssd_id_init(&full, "parts/full", "\"e\"", 0);
	ssd_id_init(&shrt, "parts/short", "\"e\"", 3);
	fill(data, CS, 11);
	CHECK(ssd_put(s, &full, data, CS, NULL, 1, 1, NULL) == 0);
	const struct { uint64_t off; size_t len, want; } r[] = {
		{ 0, 4096, 4096 },         /* the first page */
		{ 16384 - 100, 200, 200 }, /* across blocks 0 and 1 */
		{ 5, 1, 1 },
		{ 20000, 40000, 40000 },   /* blocks 1..3 */
		{ CS - 10, 4096, 10 },     /* clipped at the end */
		{ 0, CS, CS },
		{ CS, 10, 0 },             /* past the end */
	};
	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
		memset(out, 0, sizeof(out));
		CHECK(ssd_read_part(s, &full, r[i].off, r[i].len, out, &got, NULL) == 0 &&
		      got == r[i].want && memcmp(out, data + r[i].off, got) == 0);
	}
	/* a short chunk whose end is not page-aligned: 20,000 bytes, two blocks */
	CHECK(ssd_put(s, &shrt, data, 20000, NULL, 1, 1, NULL) == 0);
	CHECK(ssd_read_part(s, &shrt, 19990, 100, out, &got, NULL) == 0 && got == 10 &&
	      memcmp(out, data + 19990, 10) == 0);
	CHECK(ssd_read_part(s, &shrt, 0, 20000, out, &got, NULL) == 0 && got == 20000 &&
	      memcmp(out, data, 20000) == 0);

	/* a flipped byte in block 3 (the payload starts 4 KiB into the slot) */
	CHECK(flip_in_slot(dir, CS, "parts/full", 4096 + 3 * 16384 + 77, 0x20));
	uint64_t before = ssd_stats(s)->checksum_failures;
	CHECK(ssd_read_part(s, &full, 0, 4096, out, &got, NULL) == 0 && got == 4096 &&
	      memcmp(out, data, 4096) == 0);
	CHECK(ssd_stats(s)->checksum_failures == before);
	CHECK(ssd_read_part(s, &full, 3 * 16384 + 4000, 100, out, &got, NULL) == -ENOENT);
	CHECK(ssd_stats(s)->checksum_failures == before + 1);
	CHECK(ssd_read_part(s, &full, 0, 4096, out, &got, NULL) == -ENOENT); /* gone */
	/* a flipped byte in the blocks' checksums in the header: every read of it fails */
	CHECK(flip_in_slot(dir, CS, "parts/short", 40 + strlen("parts/short") + 3 + 1, 0x01));
	CHECK(ssd_read_part(s, &shrt, 0, 10, out, &got, NULL) == -ENOENT);
	CHECK(ssd_stats(s)->checksum_failures == before + 2);
	/* whole chunks past the page cache (a stream's reads): the right bytes, a short chunk
	 * through the page cache, and a flipped byte caught as by ssd_get */
	size_t len = 0;
	struct ssd_id dir_id;
	ssd_id_init(&dir_id, "parts/direct", "\"e\"", 0);
	CHECK(ssd_put(s, &dir_id, data, CS, NULL, 1, 1, NULL) == 0);
	memset(out, 0, sizeof(out));
	CHECK(ssd_get_direct(s, &dir_id, out, CS, &len, NULL) == 0 && len == CS &&
	      memcmp(out, data, CS) == 0);
	CHECK(ssd_put(s, &shrt, data, 20000, NULL, 1, 1, NULL) == 0);
	CHECK(ssd_get_direct(s, &shrt, out, CS, &len, NULL) == 0 && len == 20000 &&
	      memcmp(out, data, 20000) == 0);
	CHECK(flip_in_slot(dir, CS, "parts/direct", 4096 + 2 * 16384 + 5, 0x08));
	CHECK(ssd_get_direct(s, &dir_id, out, CS, &len, NULL) == -ENOENT);
	CHECK(ssd_stats(s)->checksum_failures == before + 3);
	CHECK(ssd_remove(s, shrt.ikey) == 0);

	uint64_t ok, bad;
	CHECK(ssd_check(s, &ok, &bad) == 0 && ok == 0 && bad == 0);
	ssd_close(s);
	rm_rf(dir);
	free(dir);
}

/* A reader racing a writer that keeps storing the same chunks again (each put of a chunk the
 * index no longer names takes a slot, maybe the one just freed and punched, and writes it
 * with O_DIRECT while buffered reads of the slab run): a read returns the right bytes or a
 * miss, and a slot replaced under a read is never counted as corrupt nor dropped. */
struct race {
	struct ssd_store *s;
	struct ssd_id ids[4];
	const char *data;
	atomic_bool stop;
	unsigned long reads, misses, wrong, put_failed; /* (CHECK is for the main thread) */
};

static void *race_writer(void *arg)
{
	struct race *r = arg;
	for (unsigned i = 0; i < 3000; i++) {
		const struct ssd_id *id = &r->ids[i % 4];
		ssd_remove(r->s, id->ikey);
		if (ssd_put(r->s, id, r->data, CS, NULL, 1, 1, NULL) != 0)
			r->put_failed++;
	}
	atomic_store(&r->stop, true);
	return NULL;
}

static void *race_reader(void *arg)
{
	struct race *r = arg;
	static char out[CS];
	for (unsigned i = 0; !atomic_load(&r->stop); i++) {
		const struct ssd_id *id = &r->ids[i % 4];
		size_t got = 0;
		uint64_t off = (uint64_t)(i * 4099) % CS;
		int ret = i % 3 ? ssd_read_part(r->s, id, off, 4096, out, &got, NULL)
				: ssd_get(r->s, id, out, CS, &got, NULL);
		if (ret == -ENOENT || ret == -EAGAIN) { /* a miss, or slots kept changing */
			r->misses++;
			continue;
		}
		r->reads++;
		if (ret != 0 || memcmp(out, r->data + (i % 3 ? off : 0),
				       got < (i % 3 ? 4096 : CS) ? got : (i % 3 ? 4096 : CS)) != 0)
			r->wrong++;
	}
	return NULL;
}

static void test_refill_race(void)
{
	char *dir = mkdtemp_dir();
	static char data[CS];
	struct race r = { .data = data };
	fill(data, CS, 5);
	CHECK(ssd_open(dir, CS, &r.s) == 0);
	static const char *const keys[4] = { "race/0", "race/1", "race/2", "race/3" };
	for (int i = 0; i < 4; i++)
		ssd_id_init(&r.ids[i], keys[i], "\"e\"", 0);
	pthread_t w, rd;
	CHECK(pthread_create(&rd, NULL, race_reader, &r) == 0);
	CHECK(pthread_create(&w, NULL, race_writer, &r) == 0);
	pthread_join(w, NULL);
	pthread_join(rd, NULL);
	printf("refill race: %lu reads, %lu misses, %llu counted corrupt\n", r.reads, r.misses,
	       (unsigned long long)ssd_stats(r.s)->checksum_failures);
	CHECK(r.reads > 0 && r.wrong == 0 && r.put_failed == 0);
	CHECK(ssd_stats(r.s)->checksum_failures == 0);
	ssd_close(r.s);
	rm_rf(dir);
	free(dir);
}

static int count_one(void *ctx, const struct ssd_entry *e)
{
	(*(uint64_t *)ctx)++;
	(void)e;
	return 0;
}

/* A store opened without reading its index (a mount's start): until ssd_load has marked the used
 * slots, new chunks take slots past the slab's end and orphans are not reclaimed; afterwards
 * free slots are reused.  Every chunk reads back right throughout. */
static void test_deferred(void)
{
	char *dir = mkdtemp_dir(), path[600];
	struct ssd_store *s;
	static char data[CS], out[CS];
	size_t len;
	struct ssd_id id[5];
	const char *keys[5] = { "d/a", "d/b", "d/c", "d/d", "d/e" };
	for (int i = 0; i < 5; i++)
		ssd_id_init(&id[i], keys[i], "\"e\"", 0);
	snprintf(path, sizeof(path), "%s/slab", dir);
	CHECK(ssd_open(dir, CS, &s) == 0);
	for (int i = 0; i < 3; i++) {
		fill(data, CS, 20 + i);
		CHECK(ssd_put(s, &id[i], data, CS, NULL, 1, 1, NULL) == 0);
	}
	CHECK(ssd_remove(s, id[1].ikey) == 0); /* slot 1 is free */
	ssd_close(s);
	struct stat st;
	CHECK(stat(path, &st) == 0 && st.st_size == 3 * (4096 + CS));

	CHECK(ssd_open_deferred(dir, CS, &s) == 0);
	CHECK(ssd_reclaim_orphans(s, NULL) == -EAGAIN);
	fill(data, CS, 23);
	CHECK(ssd_put(s, &id[3], data, CS, NULL, 1, 1, NULL) == 0); /* past the end: slot 3 */
	CHECK(stat(path, &st) == 0 && st.st_size == 4 * (4096 + CS));
	uint64_t n = 0;
	CHECK(ssd_load(s, count_one, &n, NULL) == 0 && n == 3); /* a, c and d */
	CHECK(ssd_reclaim_orphans(s, NULL) >= 0);
	fill(data, CS, 24);
	CHECK(ssd_put(s, &id[4], data, CS, NULL, 1, 1, NULL) == 0); /* slot 1, reused */
	CHECK(stat(path, &st) == 0 && st.st_size == 4 * (4096 + CS));
	for (int i = 0; i < 5; i++) {
		fill(data, CS, 20 + i);
		int r = ssd_get(s, &id[i], out, CS, &len, NULL);
		CHECK(i == 1 ? r == -ENOENT : r == 0 && len == CS && memcmp(out, data, CS) == 0);
	}
	uint64_t ok, bad;
	CHECK(ssd_check(s, &ok, &bad) == 0 && ok == 4 && bad == 0);
	ssd_close(s);
	rm_rf(dir);
	free(dir);
}

/* A cache of format 1 (a checksum per chunk) is emptied at open, with a log line saying so. */
static void test_format1(void)
{
	char *dir = mkdtemp_dir(), path[600], logp[600], *err = NULL;
	struct ssd_store *s;
	static char data[CS], out[CS];
	size_t len;
	struct ssd_id a;
	ssd_id_init(&a, "old/format", "\"e\"", 0);
	fill(data, CS, 5);
	CHECK(ssd_open(dir, CS, &s) == 0);
	CHECK(ssd_put(s, &a, data, CS, NULL, 1, 1, NULL) == 0);
	CHECK(ssd_meta_put(s, 'o', "old/format", "\"e\"", 3) == 0);
	ssd_close(s);
	/* the format record as format 1 wrote it */
	snprintf(path, sizeof(path), "%s/index", dir);
	rocksdb_options_t *o = rocksdb_options_create();
	rocksdb_t *db = rocksdb_open(o, path, &err);
	CHECK(db != NULL);
	if (db) {
		rocksdb_writeoptions_t *w = rocksdb_writeoptions_create();
		const char *v1 = "tierfs-l2-slab 1 chunk=65536";
		rocksdb_put(db, w, "Fformat", 7, v1, strlen(v1), &err);
		CHECK(err == NULL);
		rocksdb_writeoptions_destroy(w);
		rocksdb_close(db);
	}
	rocksdb_options_destroy(o);
	snprintf(logp, sizeof(logp), "%s.log", dir);
	CHECK(tfs_log_to_file(logp) == 0);
	tfs_log_set_level(TFS_LOG_INFO);
	CHECK(ssd_open(dir, CS, &s) == 0);
	tfs_log_set_level(TFS_LOG_ERROR); /* the log stays in that file: this test runs last */
	CHECK(ssd_get(s, &a, out, CS, &len, NULL) == -ENOENT); /* its chunks are gone */
	void *v;
	size_t vl;
	CHECK(ssd_meta_get(s, 'o', "old/format", &v, &vl) == 0); /* the metadata kept */
	free(v);
	CHECK(ssd_put(s, &a, data, CS, NULL, 1, 1, NULL) == 0);
	ssd_close(s);
	CHECK(ssd_open(dir, CS, &s) == 0); /* now of format 2: kept */
	CHECK(ssd_get(s, &a, out, CS, &len, NULL) == 0 && len == CS);
	ssd_close(s);
	FILE *f = fopen(logp, "r");
	char line[512];
	bool said = false;
	while (f && fgets(line, sizeof(line), f))
		said |= strstr(line, "holds cache format 1") != NULL;
	if (f)
		fclose(f);
	CHECK(said);
	unlink(logp);
	rm_rf(dir);
	free(dir);
}

/* A policy over the store s, with S3 a closed port (nothing here asks it anything). */
static struct policy *policy_on(struct ssd_store *s, struct s3_client **s3)
{
	struct policy_config cfg = { .chunk_size = CS, .ttl_s = 60, .root_key = "", .ssd = s,
				     .prefetch_manual = true };
	int err = 0;
	*s3 = closed_s3();
	return *s3 ? policy_new(&cfg, *s3, &err) : NULL;
}

/* TTL settings persist in the store and come back at the next start. */
static void test_ttl_persist(void)
{
	char *dir = mkdtemp_dir();
	struct ssd_store *s;
	struct s3_client *s3;
	struct policy *p;
	uint64_t v;
	CHECK(ssd_open(dir, CS, &s) == 0);
	CHECK((p = policy_on(s, &s3)) != NULL);
	if (!p)
		return;
	CHECK(policy_ttl_set(p, "logs/", 7200) == 0);
	CHECK(policy_ttl_set(p, "logs/today.txt", 30) == 0);
	CHECK(policy_ttl_set(p, "gone", 1) == 0);
	CHECK(policy_ttl_remove(p, "gone") == 0);
	policy_free(p);
	s3_client_free(s3);
	ssd_close(s);
	CHECK(ssd_open(dir, CS, &s) == 0);
	CHECK((p = policy_on(s, &s3)) != NULL);
	if (!p)
		return;
	CHECK(policy_ttl_get(p, "logs/", &v) == 0 && v == 7200);
	CHECK(policy_ttl_get(p, "logs/today.txt", &v) == 0 && v == 30);
	CHECK(policy_ttl_get(p, "gone", &v) == -ENODATA);
	CHECK(policy_ttl_effective(p, "logs/old.txt", NULL, 0) == 7200);
	policy_free(p);
	s3_client_free(s3);
	ssd_close(s);
	rm_rf(dir);
	free(dir);
}

/* A fill through the tier table, from a buffer of the pool. */
static int tier_put(struct tier *t, struct buf_pool *bp, const char *key, const char *data,
		    bool prefetch)
{
	struct tfs_buf *b = tfs_buf_get(bp, CS);
	if (!b)
		return -ENOMEM;
	memcpy(b->data, data, CS);
	int ret = t->ops->fill(t, key, "\"e\"", 0, b, prefetch);
	tfs_buf_put(b); /* the tier holds its own reference while the fill is queued */
	return ret;
}

static uint64_t tier_bytes(struct tier *t, const char *key)
{
	uint64_t n = 0;
	t->ops->has(t, key, "\"e\"", 0, &n);
	return n;
}

/* A read through the tier table: 0 and *src (the unread prefetch it held), or -ENOENT. */
static int tier_read(struct tier *t, struct buf_pool *bp, const char *key, char *out,
		     uint8_t *src)
{
	struct tier_run r;
	memset(&r, 0, sizeof(r));
	r.key = key;
	r.etag = "\"e\"";
	r.chunk_size = CS;
	r.n = 1;
	r.bufs[0] = tfs_buf_get(bp, CS);
	int next;
	t->ops->get(t, &r, 0, &next);
	if (r.done[0])
		memcpy(out, r.bufs[0]->data, CS);
	*src = r.pf_src[0];
	tfs_buf_put(r.bufs[0]);
	return r.done[0] ? 0 : -ENOENT;
}

/* A prefetched fill displaces no LIR chunk; an unread prefetch handed to L2 is used by the next
 * reader, or counted wasted when evicted. */
static void test_prefetch_in_l2(void)
{
	char *dir = mkdtemp_dir();
	struct ssd_store *s;
	struct tier *l;
	struct policy_stats st;
	struct buf_pool bp;
	static char data[6][CS];
	static char out[CS];
	char key[32];
	memset(&st, 0, sizeof(st));
	buf_pool_init(&bp, CS);
	CHECK(ssd_open(dir, CS, &s) == 0);
	struct l2_config cfg = { .cap = 4 * (4096 + CS), .min_free_pct = 0, .min_free_bytes = 0 };
	CHECK(tier_l2_new(s, &cfg, &st, &l) == 0);
	for (int i = 0; i < 4; i++) { /* four hot chunks fill L2 */
		snprintf(key, sizeof(key), "hot/%d", i);
		fill(data[i], CS, (unsigned)i + 10);
		CHECK(tier_put(l, &bp, key, data[i], false) == 0);
	}
	l->ops->flush(l);
	for (int i = 0; i < 4; i++) {
		snprintf(key, sizeof(key), "hot/%d", i);
		for (int k = 0; k < (i == 0 ? 1 : 20); k++) /* hot/0 is the coldest */
			l->ops->touch(l, key, "\"e\"", 0);
	}
	uint64_t used, entries, cap;
	l->ops->usage(l, &used, &entries, &cap);
	CHECK(entries == 4 && cap == cfg.cap);

	/* hot/1..3 were read again (LIR), hot/0 once: a prefetch displaces hot/0, the HIR
	 * chunk, and never an LIR one (nor does the prefetch after it) */
	fill(data[4], CS, 4);
	CHECK(tier_put(l, &bp, "pf/0", data[4], true) == 0);
	l->ops->flush(l);
	CHECK(tier_bytes(l, "pf/0") > 0 && tier_bytes(l, "hot/0") == 0);
	fill(data[0], CS, 6);
	CHECK(tier_put(l, &bp, "pf/1", data[0], true) == 0);
	l->ops->flush(l);
	CHECK(tier_bytes(l, "pf/1") > 0 && tier_bytes(l, "pf/0") == 0);
	for (int i = 1; i < 4; i++) {
		snprintf(key, sizeof(key), "hot/%d", i);
		CHECK(tier_bytes(l, key) > 0);
	}
	struct tier_stats ts;
	l->ops->stats(l, &ts, false);
	CHECK(ts.fills_no_room == 0 && ts.fills_failed == 0 && ts.evictions == 2);
	l->ops->usage(l, &used, &entries, &cap);
	CHECK(entries == 4);

	/* an unread prefetch in L2: the first read takes it (used), the second finds none */
	uint8_t src = 9;
	CHECK(l->ops->keep_unread(l, "hot/1", "\"e\"", 0, PF_DIRORDER, CS) == 0);
	CHECK(l->ops->keep_unread(l, "nope", "\"e\"", 0, PF_DIRORDER, CS) == -ENOENT);
	CHECK(tier_read(l, &bp, "hot/1", out, &src) == 0 && src == PF_DIRORDER &&
	      memcmp(out, data[1], CS) == 0);
	CHECK(tier_read(l, &bp, "hot/1", out, &src) == 0 && src == 0);
	CHECK(tier_read(l, &bp, "nope", out, &src) == -ENOENT);

	/* an unread prefetch evicted: wasted.  A reader's fill evicts the HIR chunk, pf/1 */
	CHECK(l->ops->keep_unread(l, "pf/1", "\"e\"", 0, PF_INTERVAL, CS) == 0);
	fill(data[5], CS, 5);
	CHECK(tier_put(l, &bp, "demand/0", data[5], false) == 0);
	l->ops->flush(l);
	CHECK(tier_bytes(l, "demand/0") > 0);
	CHECK(tier_bytes(l, "pf/1") == 0);
	CHECK(st.pf[PF_INTERVAL].wasted == 1 && st.pf[PF_DIRORDER].wasted == 0);
	/* the evicted chunks left the store too (removed by their slots: the table keeps no
	 * keys), and the rest are there */
	uint64_t stored = 0;
	l->ops->usage(l, &used, &entries, &cap);
	CHECK(ssd_foreach(s, count_one, &stored) == 0 && stored == entries && entries == 4);
	CHECK(tier_bytes(l, "hot/1") > 0 && tier_bytes(l, "pf/0") == 0);

	/* dropping what matches, through the table */
	uint64_t n = 0;
	l->ops->usage(l, &used, &entries, &cap);
	CHECK(entries > 0 && l->ops->drop_matching(l, NULL, NULL, &n) == 0 && n == entries);
	l->ops->usage(l, &used, &entries, &cap);
	CHECK(entries == 0 && used == 0);
	l->ops->destroy(l);
	ssd_close(s);
	buf_pool_destroy(&bp);
	rm_rf(dir);
	free(dir);
}

/* The order's state comes back from the index at start: chunks read more than once are LIR
 * again, so a scan after a restart passes through the HIR part and leaves them. */
static void test_order_across_restart(void)
{
	char *dir = mkdtemp_dir();
	struct ssd_store *s;
	struct tier *l;
	struct policy_stats st;
	struct buf_pool bp;
	static char data[CS], out[CS];
	char key[32];
	uint8_t src;
	memset(&st, 0, sizeof(st));
	buf_pool_init(&bp, CS);
	fill(data, CS, 3);
	struct l2_config cfg = { .cap = 300 * (4096 + CS) };
	CHECK(ssd_open(dir, CS, &s) == 0);
	CHECK(tier_l2_new(s, &cfg, &st, &l) == 0);
	for (int i = 0; i < 300; i++) { /* 200 to be read again, 100 read once */
		snprintf(key, sizeof(key), "%s/%d", i < 200 ? "hot" : "once", i);
		CHECK(tier_put(l, &bp, key, data, false) == 0);
	}
	l->ops->flush(l);
	int bad = 0;
	for (int i = 0; i < 200; i++) { /* read from L2: the index counts it */
		snprintf(key, sizeof(key), "hot/%d", i);
		bad += tier_read(l, &bp, key, out, &src) != 0;
	}
	CHECK(bad == 0);
	l->ops->destroy(l);
	ssd_close(s);

	CHECK(ssd_open(dir, CS, &s) == 0);
	CHECK(tier_l2_new(s, &cfg, &st, &l) == 0);
	for (int i = 0; i < 900; i++) { /* a scan of three times the cache */
		snprintf(key, sizeof(key), "scan/%d", i);
		CHECK(tier_put(l, &bp, key, data, false) == 0);
	}
	l->ops->flush(l);
	int kept = 0;
	for (int i = 0; i < 200; i++) {
		snprintf(key, sizeof(key), "hot/%d", i);
		kept += tier_bytes(l, key) > 0;
	}
	printf("after a restart and a scan: %d of 200 chunks read twice kept\n", kept);
	CHECK(kept == 200);
	CHECK(tier_bytes(l, "once/250") == 0 && tier_bytes(l, "scan/899") > 0);
	uint64_t used, entries, cap;
	l->ops->usage(l, &used, &entries, &cap);
	CHECK(entries == 300 && used <= cap);
	l->ops->destroy(l);
	ssd_close(s);
	buf_pool_destroy(&bp);
	rm_rf(dir);
	free(dir);
}

/* Regression: upkeep ran once per fill (it shared the writer's condition variable): 100 fills
 * in well under the upkeep interval are followed by no upkeep pass at all. */
static void test_upkeep_interval(void)
{
	char *dir = mkdtemp_dir();
	struct ssd_store *s;
	struct tier *l;
	struct policy_stats st;
	struct buf_pool bp;
	static char data[CS];
	char key[32];
	memset(&st, 0, sizeof(st));
	buf_pool_init(&bp, CS);
	CHECK(ssd_open(dir, CS, &s) == 0);
	struct l2_config cfg = { .cap = 1000 * (4096 + CS), .upkeep_interval_ms = 60000 };
	CHECK(tier_l2_new(s, &cfg, &st, &l) == 0);
	fill(data, CS, 7);
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "up/%d", i);
		CHECK(tier_put(l, &bp, key, data, false) == 0);
	}
	l->ops->flush(l);
	struct tier_stats ts;
	l->ops->stats(l, &ts, false);
	CHECK(ts.fills == 100);
	printf("upkeep passes during 100 fills: %llu (interval 60 s)\n",
	       (unsigned long long)ts.upkeep_passes);
	CHECK(ts.upkeep_passes == 0);
	l->ops->stats(l, &ts, true); /* a reset zeroes the counters, not the gauges */
	l->ops->stats(l, &ts, false);
	CHECK(ts.fills == 0 && ts.entries == 100 && ts.used > 0);
	l->ops->destroy(l);
	ssd_close(s);
	buf_pool_destroy(&bp);
	rm_rf(dir);
	free(dir);
}

static void test_startup(unsigned long n)
{
	char *dir = mkdtemp_dir();
	struct ssd_store *s;
	char key[64];
	CHECK(ssd_open(dir, CS, &s) == 0);
	for (unsigned long i = 0; i < n; i++) {
		struct ssd_id id;
		snprintf(key, sizeof(key), "objects/%06lu", i / 16);
		ssd_id_init(&id, key, "\"0123456789abcdef0123456789abcdef\"", i % 16);
		if (ssd_put(s, &id, key, 8, NULL, 1, 1, NULL) != 0) {
			CHECK(!"put failed");
			break;
		}
	}
	ssd_close(s);
	/* what a mount does before it serves (open the store), then in the background (one pass
	 * over the index: the used slots, and the table's entries) */
	uint64_t t0 = tfs_now_ms(), count = 0;
	CHECK(ssd_open_deferred(dir, CS, &s) == 0);
	uint64_t t1 = tfs_now_ms();
	CHECK(ssd_load(s, count_one, &count, NULL) == 0);
	uint64_t t2 = tfs_now_ms();
	/* Figures, not assertions (speed is measured, not asserted in tests): see
	 * docs/BENCHMARKS.md and tierfs-l2-bench for them on an optimized build. */
	printf("startup with %lu chunks indexed: ready in %llu ms, index read in %llu ms\n", n,
	       (unsigned long long)(t1 - t0), (unsigned long long)(t2 - t1));
	CHECK(count == n);
	ssd_close(s);
	rm_rf(dir);
	free(dir);
}

int main(int argc, char **argv)
{
	unsigned long startup = 100000;
	const char *env = getenv("TIERFS_UNIT_STARTUP_CHUNKS"); /* smaller under valgrind */
	if (env)
		startup = strtoul(env, NULL, 10);
	if (argc == 3 && strcmp(argv[1], "--startup-chunks") == 0)
		startup = strtoul(argv[2], NULL, 10);
	tfs_log_set_level(TFS_LOG_ERROR);
	test_store();
	test_parts();
	test_refill_race();
	test_deferred();
	test_ttl_persist();
	test_prefetch_in_l2();
	test_order_across_restart();
	test_upkeep_interval();
	test_startup(startup);
	test_format1();
	return CHECK_SUMMARY();
}
