/*
 * ssd.h - L2: the on-disk chunk store.  RocksDB holds the index; chunk bytes live in one sparse
 * slab file of fixed-size slots beside it (docs/L2-LAYOUT.md says why, by measurement).
 *
 * Layout of a cache directory (0700, files 0600):
 *   lock            flock'ed by the one tierfs that uses the directory
 *   index/          RocksDB: chunk index, object versions, persisted listings and attributes
 *   slab            slot i at i * (4 KiB + chunk_size): a 4 KiB header block (magic, format,
 *                   key, ETag, index, length, a checksum per block of the payload, their root,
 *                   the header's own checksum), then the payload; a free slot is a hole
 *
 * Crash safety without fsync: a fill writes a free slot, then adds the index entry that names
 * it; a removal deletes the index entry, then punches the slot's hole.  A kill -9 (or power
 * loss) at any point leaves at worst a slot with data but no index entry (reclaimed by
 * ssd_reclaim_orphans) or an index entry whose slot is torn or empty: every read checks the
 * header and the xxHash3 checksums of the payload's blocks it reads, so such an entry is dropped
 * and reported as a miss, never served.
 *
 * Checksums per block (ssd_block_size: 16 KiB for chunks up to 2 MiB, at most SSD_MAX_BLOCKS a
 * chunk): a read of part of a chunk reads and checks the header and only the blocks it needs.
 * The index entry holds the root (the XXH3-64 of the blocks' checksums), which the header must
 * match.  A cache of format 1 (one checksum per chunk) is emptied at open, with a log line.
 *
 * Identity: a chunk is (object key, ETag, index).  Names and index keys use 128-bit and 64-bit
 * xxHash3 digests of key and ETag for fixed sizes; the header and the index value carry the full
 * key and ETag, compared on every read, so a hash collision is a miss, never wrong data.
 *
 * All functions are thread-safe and return 0 or -errno.
 */
#ifndef TIERFS_SSD_H
#define TIERFS_SSD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SSD_IKEY_LEN 33 /* 'c' + H128(key) + H64(etag) + index (big endian) */

struct ssd_store;

/* A chunk's identity and its index key. */
struct ssd_id {
	const char *key;
	const char *etag;
	uint64_t idx;
	unsigned char ikey[SSD_IKEY_LEN];
};
void ssd_id_init(struct ssd_id *id, const char *key, const char *etag, uint64_t idx);

/* What the index says of a chunk (for the eviction table). */
struct ssd_entry {
	unsigned char ikey[SSD_IKEY_LEN];
	uint32_t len;           /* payload bytes */
	uint64_t disk_bytes;    /* what its slot takes on disk (header block + payload, in blocks) */
	uint64_t last_access;   /* wall-clock milliseconds */
	uint64_t accesses;
	uint64_t slot;          /* where it is: ssd_remove_slot's argument */
};

#define SSD_BLOCK_MIN (16u << 10)
#define SSD_MAX_BLOCKS 128u
/* The bytes a block checksum covers in a store of chunk_size chunks (the last block of a
 * payload is shorter). */
size_t ssd_block_size(uint64_t chunk_size);
/* The XXH3-64 of each block of data (len bytes): out has room for SSD_MAX_BLOCKS. */
void ssd_block_sums(uint64_t chunk_size, const char *data, size_t len, uint64_t *out);

struct ssd_stats {
	_Atomic uint64_t checksum_failures, write_errors, orphans_reclaimed;
};

/* Opens (creating if needed) the store in dir for chunks of at most chunk_size bytes, and takes
 * its lock (-EBUSY when another process holds it).  A store made for another chunk size is
 * emptied (its chunks cannot be reused).  -EPROTO when the directory holds an unknown format. */
int ssd_open(const char *dir, uint64_t chunk_size, struct ssd_store **out);
/* ssd_open without reading the index: which slots are used is learnt by ssd_load, which the
 * owner runs (in the background: a mount serves at once, however many chunks the index holds).
 * Until it is done every chunk stored takes a new slot past the slab's end, and
 * ssd_reclaim_orphans refuses (-EAGAIN). */
int ssd_open_deferred(const char *dir, uint64_t chunk_size, struct ssd_store **out);
/* The one pass over the index a deferred store needs: marks the slots in use, and calls cb
 * (may be NULL; it returns 0 to go on) for every chunk.  Stops with -ECANCELED once *stop (may
 * be NULL) is true; the store is then still not loaded. */
int ssd_load(struct ssd_store *s, int (*cb)(void *ctx, const struct ssd_entry *e), void *ctx,
	     const _Atomic bool *stop);
void ssd_close(struct ssd_store *s);
const struct ssd_stats *ssd_stats(const struct ssd_store *s);
void ssd_reset_stats(struct ssd_store *s);
const char *ssd_dir(const struct ssd_store *s);

/* Reads the payload of id into buf (cap bytes), through the page cache.  -ENOENT when absent; a chunk that fails
 * verification is removed, counted, and reported as -ENOENT too.  A failure that may be a race
 * (its slot replaced under the read, or pages of it cached stale) is read again first (see
 * read_failed in ssd.c); -EAGAIN when slots kept changing under every read: a miss, but the
 * chunk is not removed.  *e (may be NULL) gets the entry's index data. */
int ssd_get(struct ssd_store *s, const struct ssd_id *id, char *buf, size_t cap, size_t *len,
	    struct ssd_entry *e);
/* The same past the page cache (O_DIRECT, where the file system allows it and buf and the
 * length are page-aligned): for a sequential stream, whose bytes go on to a reader's page
 * cache (no copy out of the slab's, and no second cached copy).  Chunks read with ssd_get stay
 * in the page cache, where reads of their parts (ssd_read_part) find them. */
int ssd_get_direct(struct ssd_store *s, const struct ssd_id *id, char *buf, size_t cap,
		   size_t *len, struct ssd_entry *e);
/* Reads bytes [off, off + len) of id's payload (clipped at its end) into buf: the header block
 * and only the blocks that hold them (through the page cache, without readahead), which are
 * checked.  *got gets the bytes read.  -ENOENT and -EAGAIN as ssd_get. */
int ssd_read_part(struct ssd_store *s, const struct ssd_id *id, uint64_t off, size_t len,
		  char *buf, size_t *got, struct ssd_entry *e);
/* Tells the kernel that these chunks will be read soon (their slots are read ahead
 * asynchronously), so that reading a run of them does not wait for the disk chunk by chunk.
 * Nothing where ssd_get_direct reads past the page cache (runs are read with it). */
void ssd_will_read(struct ssd_store *s, const struct ssd_id *ids, size_t n);
/* Stores a chunk (replacing any).  sums: its blocks' checksums (ssd_block_sums) when the caller
 * has them (taken as the bytes arrived), else NULL and they are computed; a wrong one is caught
 * at the first read of its block, like any corruption.  *e (may be NULL) gets its index data. */
int ssd_put(struct ssd_store *s, const struct ssd_id *id, const char *data, size_t len,
	    const uint64_t *sums, uint64_t last_access, uint64_t accesses, struct ssd_entry *e);
/* Records access statistics in the index entry. */
int ssd_touch(struct ssd_store *s, const unsigned char ikey[SSD_IKEY_LEN], uint64_t last_access,
	      uint64_t accesses);
/* Removes a chunk by index key: index entry first, then the slot. */
int ssd_remove(struct ssd_store *s, const unsigned char ikey[SSD_IKEY_LEN]);
/* Removes the chunk in slot (ssd_entry.slot) whose index key match() accepts, for a caller that
 * keeps slots rather than keys: the key is read back from the slot's header.  -ENOENT when the
 * slot holds no such chunk any more (freed, or refilled since), or its header cannot be read
 * (then the entry stays, and is dropped when a read finds the slot bad). */
int ssd_remove_slot(struct ssd_store *s, uint64_t slot,
		    bool (*match)(void *ctx, const unsigned char ikey[SSD_IKEY_LEN]), void *ctx);
/* Calls cb for every chunk in the index (no data file is read).  cb returns 0 to go on. */
int ssd_foreach(struct ssd_store *s, int (*cb)(void *ctx, const struct ssd_entry *e), void *ctx);
/* Removes every chunk of key whose ETag is not keep_etag; cb (may be NULL) sees each one. */
int ssd_remove_other_versions(struct ssd_store *s, const char *key, const char *keep_etag,
			      void (*cb)(void *ctx, const struct ssd_entry *e), void *ctx);
/* Removes every chunk whose object key match() accepts (a scan of the index: keys are stored
 * as digests), and every metadata record of namespaces nss whose name it accepts; cb (may be
 * NULL) sees each chunk removed.  Returns the number of chunks removed or -errno. */
long ssd_remove_matching(struct ssd_store *s, bool (*match)(void *ctx, const char *key),
			 void *ctx, const char *nss, void (*cb)(void *cb_ctx, const struct ssd_entry *e),
			 void *cb_ctx);
/* Deletes the records of namespace ns whose name match() accepts. */
void ssd_meta_remove_matching(struct ssd_store *s, char ns,
			      bool (*match)(void *ctx, const char *name), void *ctx);
/* Verifies every chunk the index names against its slot (read-only: nothing is dropped);
 * counts those that agree and those that do not.  For checkers and tests. */
int ssd_check(struct ssd_store *s, uint64_t *ok, uint64_t *bad);
/* Punches the holes of slots that hold data but are free (left by a crash); stops early when
 * *stop becomes true.  Returns the number of slots reclaimed or -errno (-EAGAIN: not loaded). */
long ssd_reclaim_orphans(struct ssd_store *s, const _Atomic bool *stop);
/* Bytes the slab file takes on disk (allocated blocks). */
uint64_t ssd_disk_bytes(struct ssd_store *s);

/* Small metadata records beside the index, under a one-byte namespace ('o' objects,
 * 'd' listings).  ssd_meta_get returns a malloc'ed copy (caller frees) or -ENOENT. */
int ssd_meta_put(struct ssd_store *s, char ns, const char *name, const void *val, size_t len);
int ssd_meta_get(struct ssd_store *s, char ns, const char *name, void **val, size_t *len);
int ssd_meta_delete(struct ssd_store *s, char ns, const char *name);
/* Calls cb(ctx, name, value, len) for every record of namespace ns; cb returns 0 to go on. */
int ssd_meta_foreach(struct ssd_store *s, char ns,
		     int (*cb)(void *ctx, const char *name, const void *val, size_t len), void *ctx);

/* Bytes free and total on the file system of the store. */
int ssd_fs_space(struct ssd_store *s, uint64_t *free_bytes, uint64_t *total_bytes);

#endif
